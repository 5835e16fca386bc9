/*
 * chain.h - what a miner or a validator needs from the chain, and nothing
 * more: the clock (blocks, their timestamps, windows), the subnet's
 * parameters, the metagraph (uids, hotkeys, stake, validator permits),
 * commitments (each participant's published bucket credentials), weights,
 * and what the last epoch (Yuma consensus) gave each uid.
 *
 * One interface, several backends, chosen by the URL given to chain_open:
 *
 *   local:/path/to/subnet   a file-backed subnet on this machine (the embedded
 *                           default): genesis.json plus an append-only log of
 *                           signed transactions; blocks follow the wall clock
 *                           from genesis, so no server runs.  See
 *                           docs/FORMATS.md section 9.
 *   subtensor:URL?netuid=N  Bittensor's chain over a node's JSON-RPC (http://,
 *                           https://, ws:// or wss://: chain/subtensor.c);
 *                           docs/CHAIN.md section 4 says how each call maps.
 *
 * Conventions: functions that can fail return 0 or a TS_E* code and fill a
 * ts_err.  Snapshots handed out (metagraph, commitments, weights) are copies
 * the caller owns; they stay valid while the chain moves on.  A handle may be
 * used from several threads (calls are serialised inside); it must not be
 * shared across fork() - open a new one in the child.
 *
 * Stake is counted in rao (1 TAO = 10^9 rao), as on Bittensor.  Weights are
 * stored as u16 "max-upscaled" values the way subtensor stores them: the
 * largest weight a validator sets becomes 65535 and the others scale with it
 * (chain_weights_quantize).
 */
#ifndef TESSERA_CHAIN_H
#define TESSERA_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CHAIN_COMMIT_MAX 1024           /* bytes of one commitment, NUL excluded */
#define CHAIN_MAX_UIDS 4096             /* the largest max_uids a subnet may have */
#define CHAIN_RUN_ID_MAX 64
#define CHAIN_RAO_PER_TAO 1000000000ull
#define CHAIN_MAX_STAKE_RAO (21000000ull * CHAIN_RAO_PER_TAO) /* per hotkey */

typedef struct chain chain;

/* ------------------------------------------------------------ parameters */

typedef struct chain_params {
    char run_id[CHAIN_RUN_ID_MAX + 1];
    uint32_t netuid;
    double genesis_time;         /* seconds since the epoch: timestamp of block 0 */
    double block_time;           /* seconds per block (may be fractional) */
    uint64_t blocks_per_window;
    uint32_t max_uids;           /* registrations beyond this replace a uid */
    uint32_t max_validators;     /* validator permits: the top N by stake ... */
    uint64_t min_validator_stake;/* ... holding more than this (rao; 0: any stake > 0) */
    uint64_t immunity_period;    /* blocks a new registration cannot be replaced */
    uint64_t weights_rate_limit; /* blocks between two set_weights of one hotkey (0: none) */
    uint8_t owner[TS_PK_BYTES];  /* the subnet owner's key (signs stake changes) */
    uint8_t genesis_hash[TS_HASH_BYTES]; /* BLAKE2b-256 of genesis.json as stored */
    const char *run_params_json; /* the owner's run parameters: a JSON object (text) */
} chain_params;

/* ------------------------------------------------------- open and close */

/* url: "local:/path/to/subnet" (or "local:relative/path").  The local backend
 * replays the log at open (verifying every signature) and then reads only what
 * was appended since, so frequent reads stay cheap. */
int chain_open(const char *url, chain **out, ts_err *e);
void chain_close(chain *c);

/* Owned by the handle; valid until chain_close. */
const chain_params *chain_get_params(const chain *c);
/* The run parameters parsed (a cJSON object owned by the handle): the node
 * reads model preset, sequence length, codec k, ... from it. */
const struct cJSON *chain_run_params(const chain *c);

/* The run on a chain that has no Tessera genesis (subtensor): the run id,
 * the blocks per window and the run parameters come either from the URL (a
 * private run: run=ID&bpw=B&params=FILE) or from the run description the
 * subnet owner publishes (docs/CHAIN.md 4.2).  chain_run_pending is true
 * until one of them is known; chain_run_params is NULL meanwhile.
 * node_run_fetch (node/) finds and verifies the owner's description and
 * calls chain_set_run, which sets run_id, blocks_per_window and the run
 * parameters (a JSON object's text) once: TS_ESTATE when the run is set
 * already, TS_EINVAL for a malformed value. */
bool chain_run_pending(const chain *c);
int chain_set_run(chain *c, const char *run_id, uint64_t blocks_per_window, const char *params_json,
                  ts_err *e);

/* ----------------------------------------------------------------- clock
 *
 * block(t) = floor((t - genesis_time) / block_time), 0 before genesis;
 * T(b) = genesis_time + b * block_time, computed so that T(block(t)) <= t <
 * T(block(t) + 1) holds exactly in floating point.  window = block /
 * blocks_per_window.  The pure helpers below are the local backend's clock;
 * the chain_block* calls are the interface (on subtensor they ask the node). */
uint64_t chain_clock_block_at(const chain_params *p, double t);
double chain_clock_time_of(const chain_params *p, uint64_t block);
static inline uint64_t chain_window_of(const chain_params *p, uint64_t block) {
    return block / p->blocks_per_window;
}
static inline uint64_t chain_window_start_block(const chain_params *p, uint64_t window) {
    return window * p->blocks_per_window;
}

/* The current block and its timestamp (either pointer may be NULL). */
int chain_block(chain *c, uint64_t *block, double *timestamp, ts_err *e);
/* The timestamp of a block.  For a past or current block it is the chain's
 * record; for a future block it is projected from the block time (exact on
 * the local backend, an estimate on a live chain). */
int chain_block_time(chain *c, uint64_t block, double *timestamp, ts_err *e);

/* Everything a window loop wants to know at once. */
typedef struct chain_clock {
    double now;                 /* wall clock when read */
    uint64_t block;             /* current block */
    double block_timestamp;     /* T(block) */
    uint64_t window;            /* block / blocks_per_window */
    uint64_t window_start_block;
    double window_start_time;   /* T(window_start_block) */
    double next_window_time;    /* T((window + 1) * blocks_per_window) */
    double seconds_left;        /* next_window_time - now */
} chain_clock;
int chain_now(chain *c, chain_clock *out, ts_err *e);
/* The timestamp of the first block of a window (past or future). */
int chain_window_start_time(chain *c, uint64_t window, double *t, ts_err *e);

/* ------------------------------------------------------------- metagraph */

/* "No block": a uid that has not acted yet (chain_neuron.last_active). */
#define CHAIN_BLOCK_NONE UINT64_MAX

typedef struct chain_neuron {
    uint32_t uid;
    uint8_t hotkey[TS_PK_BYTES];
    uint64_t stake;             /* rao */
    bool validator_permit;
    uint64_t registered_block;
    /* The block of this uid's most recent accepted set-weights or commitment
     * in the snapshot (for chain_metagraph_at: strictly before its block), or
     * CHAIN_BLOCK_NONE.  Reset when the uid is replaced by a new registration. */
    uint64_t last_active;
    /* subtensor: the coldkey that owns the hotkey (SubtensorModule.Owner);
     * all zero on the local subnet, which has no coldkeys */
    uint8_t coldkey[TS_PK_BYTES];
} chain_neuron;

typedef struct chain_metagraph {
    uint64_t block;             /* current block when the snapshot was taken;
                                 * chain_metagraph_at: the block asked for */
    uint64_t log_seq;           /* log lines read so far (local backend; 0 elsewhere);
                                 * chain_metagraph_at: lines up to and including the
                                 * last transaction applied (0: none) */
    uint32_t n;                 /* uids 0..n-1 are registered */
    uint32_t max_uids;
    chain_neuron *neurons;      /* n entries, neurons[i].uid == i */
} chain_metagraph;

int chain_metagraph_get(chain *c, chain_metagraph *mg, ts_err *e);
/* The metagraph exactly as it stood at the start of `block`: every accepted
 * transaction of a block < `block` applied and none of a later one (uids,
 * hotkeys, stake, registration blocks, last_active; validator permits
 * recomputed from the stake of that moment by the same rule as now).
 * mg->block = block.  A pure function of the chain's history: every handle
 * gives the same answer whenever it asks.  TS_ESTATE ("block B is not final
 * yet") until the current block is at least block + 1, since a transaction
 * of block - 1 may still be being appended just after T(block).  Cheap to
 * call once per window (the local backend keeps a compact history and
 * caches the last snapshot). */
int chain_metagraph_at(chain *c, uint64_t block, chain_metagraph *mg, ts_err *e);
void chain_metagraph_free(chain_metagraph *mg);
/* The uid holding a hotkey: TS_OK, or TS_ENOTFOUND. */
int chain_uid_of(const chain_metagraph *mg, const uint8_t hotkey[TS_PK_BYTES], uint32_t *uid);
/* The leader: the validator (permit holder) with the most stake, ties to
 * the lowest uid.  TS_ENOTFOUND when no uid holds a permit. */
int chain_leader(const chain_metagraph *mg, uint32_t *uid);
/* Validators ranked with liveness.  A permit holder is live when it set
 * weights or published a commitment within the last liveness_blocks blocks
 * before mg->block: last_active != CHAIN_BLOCK_NONE and last_active +
 * liveness_blocks >= mg->block.  The ranking: the uids holding a validator
 * permit, first the live ones, then the others; within each group by stake
 * descending, ties to the lowest uid.  liveness_blocks == 0 turns liveness
 * off (everyone counts as live: stake order only, chain_leader's rule).
 * Writes the first min(cap, holders) uids to out and their count to *n.
 * TS_ENOTFOUND when no uid holds a permit (*n = 0); TS_ENOMEM. */
int chain_validators_ranked(const chain_metagraph *mg, uint64_t liveness_blocks, uint32_t *out,
                            uint32_t cap, uint32_t *n);
/* The leader with liveness: the first of chain_validators_ranked's ranking.
 * TS_ENOTFOUND when no uid holds a permit. */
int chain_leader_live(const chain_metagraph *mg, uint64_t liveness_blocks, uint32_t *uid);

/* ----------------------------------------------------------- commitments
 *
 * A commitment is an opaque string of 1..CHAIN_COMMIT_MAX bytes (no NUL)
 * that a registered hotkey publishes about itself - here, the read
 * credentials of its bucket (storage module).  Setting one replaces the
 * previous one; it is cleared when the uid is replaced. */
typedef struct chain_commitment {
    uint32_t uid;
    uint8_t hotkey[TS_PK_BYTES];
    uint64_t block;             /* block at which it was set */
    uint32_t len;
    char data[CHAIN_COMMIT_MAX + 1]; /* NUL-terminated */
} chain_commitment;

int chain_commit(chain *c, const ts_keypair *hotkey, const char *data, ts_err *e);
/* All commitments of registered uids, in uid order; *out is one allocation
 * (free()), NULL when *n is 0. */
int chain_commitments(chain *c, chain_commitment **out, uint32_t *n, ts_err *e);
/* One uid's commitment; TS_ENOTFOUND when it has none. */
int chain_commitment_of(chain *c, uint32_t uid, chain_commitment *out, ts_err *e);

/* --------------------------------------------------------------- weights */

typedef struct chain_weight {
    uint32_t uid;
    uint16_t weight;            /* max-upscaled: the row's largest is 65535 */
} chain_weight;

typedef struct chain_weight_row {
    uint32_t uid;               /* the validator */
    uint8_t hotkey[TS_PK_BYTES];
    uint64_t block;             /* block at which they were set */
    uint32_t n;
    chain_weight *w;            /* n entries, ascending uid, no zeros */
} chain_weight_row;

/* Sets the calling validator's weights (it needs a validator permit).
 * weights are finite and >= 0, not all 0; uids distinct and registered.
 * They are quantized with chain_weights_quantize; uids whose weight rounds to
 * 0 are dropped. */
int chain_set_weights(chain *c, const ts_keypair *hotkey, const uint32_t *uids,
                      const float *weights, uint32_t n, ts_err *e);
/* The latest weights of every uid that has set some, in uid order; *rows is
 * one allocation (free()), NULL when *n is 0.  Weights aimed at a uid that was
 * replaced since are removed from every row. */
int chain_weights(chain *c, chain_weight_row **rows, uint32_t *n, ts_err *e);
/* Bittensor's quantization: q[i] = round_half_even(w[i] / max(w) * 65535).
 * TS_EINVAL when a weight is negative or not finite, or all are 0. */
int chain_weights_quantize(const float *w, uint32_t n, uint16_t *q, ts_err *e);

/* ------------------------------------------------ operator actions
 *
 * Registration and stake.  On the local subnet they are transactions like any
 * other (the tests and the demo use them); on a live chain they are done with
 * Bittensor's own tools and these return TS_EUNSUPPORTED. */
typedef struct chain_registration {
    uint32_t uid;
    uint64_t block;
    bool replaced;              /* the uid belonged to another hotkey before */
    uint8_t old_hotkey[TS_PK_BYTES];
} chain_registration;

/* Registers a hotkey (signed by it).  When the subnet is full, the uid with
 * the least stake among those past their immunity period is replaced (ties:
 * the oldest registration, then the lowest uid; when every uid is immune,
 * the same rule over all uids), and the stake, commitment and weights of the
 * hotkey that held it are cleared.  TS_EDENIED if already registered. */
int chain_register(chain *c, const ts_keypair *hotkey, chain_registration *out, ts_err *e);
/* Changes a registered hotkey's stake by delta_rao (negative: unstake),
 * signed by the subnet owner's key.  The result must lie in
 * [0, CHAIN_MAX_STAKE_RAO]. */
int chain_stake(chain *c, const ts_keypair *owner, const uint8_t hotkey[TS_PK_BYTES],
                int64_t delta_rao, ts_err *e);

/* Bittensor's burned registration (subtensor only): the coldkey pays the
 * subnet's current burn and registers `hotkey` (burned_register), then the
 * registration is confirmed by reading the hotkey's uid back.  The local
 * subnet answers TS_EUNSUPPORTED (there, chain_register). */
int chain_register_burned(chain *c, const ts_keypair *coldkey, const uint8_t hotkey[TS_PK_BYTES],
                          chain_registration *out, ts_err *e);

/* Weight commits waiting for their reveal (subtensor subnets with
 * commit-reveal on): chain_set_weights commits there, and the reveal must
 * follow one reveal period later.  This reveals every pending commit of
 * `hotkey` whose reveal period has come; chain_set_weights calls it first,
 * a validator may also call it between windows.  *revealed / *pending (either
 * may be NULL) count what was revealed now and what still waits.  The local
 * subnet has nothing pending (TS_OK, 0 and 0). */
int chain_reveal_pending(chain *c, const ts_keypair *hotkey, uint32_t *revealed, uint32_t *pending,
                         ts_err *e);

/* The SCALE encoding of a call as this chain's runtime metadata defines it
 * (subtensor only): pallet and call by name, args a JSON object keyed by
 * argument name (chain/metadata.h has the value conventions).  *hex is
 * "0x..." (malloc'd).  For operators checking what a node would submit, and
 * for tests comparing with other implementations. */
int chain_encode_call(chain *c, const char *pallet, const char *call, const char *args_json, char **hex,
                      ts_err *e);

/* ---------------------------------------------------------------- epochs
 *
 * Every tempo the chain runs Yuma consensus (yuma/yuma.h) over the weights
 * the validators set and their stake, and distributes the emission that
 * accumulated since the previous epoch: incentive to the miners the
 * validators agree on, dividends to the validators that agreed early
 * (bonds).  chain_epoch_last reads what the last epoch left, as the chain
 * stores it: u16 proportions of 65535 (divide by 65535 for a fraction), rao.
 *
 *   local      computed by the subnet itself, in subtensor's arithmetic (spec
 *              143), at the blocks subtensor would run it, from the chain's
 *              history: a pure function of genesis and log, the same from
 *              every handle (docs/CHAIN.md 2.1; the genesis keys tempo,
 *              emission_per_block, owner_cut, kappa, bonds_moving_average,
 *              activity_cutoff are in docs/FORMATS.md 9.1).  Only final
 *              epochs count: one at block B once the current block is B + 1
 *              (chain_metagraph_at's rule).
 *   subtensor  read from storage at the best head (Rank, Trust, Consensus,
 *              Incentive, Dividends, ValidatorTrust, Emission, Active,
 *              ValidatorPermit; Tempo; LastMechansimStepBlock).  Storage a
 *              runtime lacks is named in `missing` and left 0. */
typedef struct chain_epoch_uid {
    uint32_t uid;
    /* local: the hotkey that held the uid at the epoch; subtensor: its holder
     * now (the values stay the last epoch's if the uid changed hands since) */
    uint8_t hotkey[TS_PK_BYTES];
    bool active;                 /* last weights (or registration) within
                                  * activity_cutoff blocks of the epoch */
    bool validator_permit;       /* the permit the epoch used */
    uint16_t rank, trust, consensus, incentive, dividends, validator_trust; /* of 65535 */
    uint64_t emission;           /* rao this epoch (storage Emission) */
    /* local: rao credited to this hotkey from its registration through this
     * epoch (server plus validator emission of every epoch; not stake).
     * subtensor: 0 (see has_earned) */
    uint64_t earned;
} chain_epoch_uid;

typedef struct chain_epoch {
    uint64_t block;              /* the block the epoch ran at (subtensor: 0 when
                                  * the runtime keeps no record of it) */
    uint64_t tempo;
    uint64_t next_block;         /* the next epoch's block */
    uint64_t count;              /* local: epochs run since genesis, this one
                                  * included; subtensor: 0 */
    uint64_t emission;           /* rao the epoch distributed (local: the blocks'
                                  * emission after the owner's cut; subtensor: the
                                  * sum of Emission) */
    uint64_t owner_emission;     /* local: rao of the owner's cut over the same blocks */
    uint64_t owner_earned;       /* local: the owner's cut since genesis */
    bool has_earned;             /* earned, owner_emission, owner_earned are known */
    char missing[200];           /* subtensor: storage items the runtime lacks */
    uint32_t n;                  /* uids at the epoch */
    chain_epoch_uid *uids;       /* n entries, uids[i].uid == i */
} chain_epoch;

/* The last final epoch.  TS_ENOTFOUND when none has run yet (local: the
 * message names the block of the first); TS_EUNSUPPORTED on a backend
 * without epochs.  *out owns its array: chain_epoch_free. */
int chain_epoch_last(chain *c, chain_epoch *out, ts_err *e);
void chain_epoch_free(chain_epoch *ep);
/* Blocks from `block` to the next epoch of subnet `netuid`, as subtensor
 * counts them (spec 143 blocks_until_next_epoch): tempo - (block + netuid +
 * 1) % (tempo + 1).  An epoch runs at every block where this is 0, i.e.
 * (b + netuid + 2) % (tempo + 1) == 0 (the runtime's comment says "+ 1";
 * its code and its table say this).  tempo 0: never (UINT64_MAX). */
uint64_t chain_epoch_blocks_until(uint32_t netuid, uint64_t tempo, uint64_t block);

/* What a backend says about itself, for `tessera chain status`. */
typedef struct chain_info {
    char backend[16];            /* "local", "subtensor" */
    char where[256];             /* the directory, or the node's host:port */
    char chain_name[64];         /* subtensor: system_chain */
    uint32_t spec_version;       /* subtensor: the runtime's spec and */
    uint32_t tx_version;         /* transaction versions (0 on local) */
    uint64_t tempo;              /* blocks per epoch (local: the genesis' tempo) */
    uint64_t weights_version_key;/* subtensor: WeightsVersionKey */
    bool commit_reveal;          /* subtensor: commit-reveal of weights on */
    uint64_t reveal_period_epochs;
    uint64_t burn_rao;           /* subtensor: the current registration burn */
    uint32_t pending_reveals;    /* commits waiting to be revealed by this machine */
} chain_info;
int chain_get_info(chain *c, chain_info *out, ts_err *e);

/* ------------------------------------------------- health of the record */

typedef struct chain_rejection {
    uint64_t line;              /* 0-based line number in the log */
    char reason[200];
} chain_rejection;

typedef struct chain_stats {
    uint64_t lines;             /* complete lines read */
    uint64_t accepted;
    uint64_t rejected;          /* lines ignored: malformed, forged or invalid */
    uint64_t log_bytes;         /* bytes of complete lines */
    uint64_t torn_bytes;        /* bytes after the last complete line (ignored) */
    uint64_t replays;           /* full replays (1 + rewrites detected) */
} chain_stats;

int chain_get_stats(chain *c, chain_stats *out, ts_err *e);
/* The most recent rejections (at most max, oldest first); returns how many. */
uint32_t chain_rejections(chain *c, chain_rejection *out, uint32_t max);

/* ---------------------------------------------------- the local subnet */

/* Genesis settings for chain_local_init; chain_local_genesis_defaults fills
 * the defaults (run "tessera", netuid 1, now, 12 s blocks, 125 blocks per
 * window, 256 uids, 64 validators, immunity 0, no rate limit, params {};
 * epochs: tempo 360, 1 TAO per block, owner cut 11796 (18 %), kappa 32767,
 * bonds moving average 900000, activity cutoff 5000: subtensor's). */
typedef struct chain_genesis {
    const char *run_id;
    uint32_t netuid;
    double genesis_time;         /* 0: now (rounded down to the millisecond) */
    double block_time;
    uint64_t blocks_per_window;
    uint32_t max_uids;
    uint32_t max_validators;
    uint64_t min_validator_stake;
    uint64_t immunity_period;
    uint64_t weights_rate_limit;
    uint8_t owner[TS_PK_BYTES];
    const char *run_params_json; /* a JSON object, or NULL for {} */
    /* epochs (docs/FORMATS.md 9.1) */
    uint64_t tempo;              /* blocks per epoch, 1..65535 */
    uint64_t emission_per_block; /* rao, 0..10^14 */
    uint32_t owner_cut;          /* of 65535: the owner's share of each block's emission */
    uint32_t kappa;              /* of 65535: the consensus majority */
    uint64_t bonds_moving_average; /* of 1,000,000: the part of old bonds a bond keeps */
    uint64_t activity_cutoff;    /* blocks, 0..65535: a validator whose weights are older is inactive */
} chain_genesis;

void chain_local_genesis_defaults(chain_genesis *g);
/* Creates dir (if needed), dir/genesis.json and an empty dir/chain.log.
 * Refuses (TS_EEXIST) when a genesis is already there. */
int chain_local_init(const char *dir, const chain_genesis *g, ts_err *e);

/* ----------------------------------------------------------------- units */

/* "12.5" TAO -> rao (up to 9 decimals, optional sign); TS_EINVAL otherwise. */
int chain_parse_tao(const char *s, int64_t *rao);
/* rao -> "12.500000000" trimmed to at least `decimals` decimals. */
void chain_fmt_tao(char *out, size_t cap, uint64_t rao, int decimals);

#ifdef __cplusplus
}
#endif

#endif
