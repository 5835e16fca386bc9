/*
 * node.h - what the miner and the validator share: one implementation of the
 * protocol used by both sides.
 *
 *   node_run       the run parameters (from the chain's genesis) every node
 *                  must agree on: model, data, schedule, codec, timing, scoring
 *   node_obj_*     signed JSON objects: peer lists, the start window, sync
 *                  records, checkpoint manifests and the LATEST pointer
 *   node_*         a node: its keys, chain, stores, model, codec and data;
 *                  the window clock, the gather, the outer step, sync
 *                  records, local state, catch-up from checkpoints and the
 *                  leader's per-window bundles, and checkpoint publication
 *
 * The formats are in docs/FORMATS.md section 11.  Everything a node reads
 * from another participant is verified against the hotkey the chain lists
 * for that participant before any field is trusted.
 */
#ifndef TESSERA_NODE_H
#define TESSERA_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain/chain.h"
#include "codec/codec.h"
#include "common/common.h"
#include "data/data.h"
#include "gauntlet/gauntlet.h"
#include "model/model.h"
#include "storage/storage.h"

struct cJSON;

/* ------------------------------------------------------------ run params */

/* Limits of a node (the run parameters are checked against them). */
#define NODE_MAX_PEERS 64          /* gather_peers, reserve_peers */
#define NODE_MAX_EVAL 256          /* uids_per_window */
#define NODE_MAX_EVAL_SAMPLES 256  /* eval_samples */

typedef struct node_run {
    char run_id[CHAIN_RUN_ID_MAX + 1];
    char model_name[32];          /* preset name, or "custom" */
    model_config model;
    uint64_t seed;                /* initialisation seed of the global model */
    char init[1024];              /* or: start from these weights (a .safetensors path) */
    uint8_t init_hash[TS_HASH_BYTES]; /* ... whose BLAKE2b-256 every node checks */
    int seq_len;                  /* T */
    int batch_size;               /* B: rows per inner step */
    int inner_steps;              /* H: inner steps per window */
    model_adamw adamw;
    int64_t warmup_steps;         /* inner-step learning-rate schedule */
    int64_t total_steps;
    spl_params codec;             /* codec.alpha is also the outer learning rate */
    char data[1024];              /* training shards (path) */
    char val_data[1024];          /* held-out shards for the global loss ("" none) */
    bool has_data_hash, has_val_data_hash;
    uint8_t data_hash[TS_HASH_BYTES];     /* data_dataset_hash every node checks, */
    uint8_t val_data_hash[TS_HASH_BYTES]; /* when the run names one */
    int val_samples;              /* held-out samples per measurement */
    double upload_grace_s;        /* accepted: LastModified in [T(w+1), T(w+1) + grace] */
    double upload_delay_s;        /* miners upload this long after T(w+1) (clock skew) */
    double gather_delay_s;        /* gathers start this long after T(w+1) + grace */
    int64_t warmup_windows;       /* null rounds after the start window */
    int64_t retention_windows;    /* old gradients and debug records are deleted */
    int64_t checkpoint_interval;  /* windows between checkpoints (leader) */
    int64_t sync_values;          /* parameter values in a sync record */
    int64_t leader_liveness_windows; /* a validator that set weights or committed within this many
                                     windows before a window starts is live for it (0: stake alone) */
    gauntlet_params gauntlet;
} node_run;

/* The defaults (PROTOCOL.md), for a run id. */
void node_run_default(node_run *r, const char *run_id);
/* Defaults, then the keys of a JSON object (the genesis "params"); unknown
 * keys and wrong types are errors naming the key. */
int node_run_from_json(node_run *r, const char *run_id, const struct cJSON *params, ts_err *e);
/* Every key, as the JSON object a genesis holds (malloc'd text). */
char *node_run_to_json(const node_run *r);
/* Samples a miner trains on per window: H * B. */
static inline uint64_t node_run_pool_size(const node_run *r) {
    return (uint64_t)r->inner_steps * (uint64_t)r->batch_size;
}

/* ---------------------------------------------------- signed JSON objects
 *
 * A node object is a JSON object with "kind", "run_id", "scheme" (the
 * signature scheme, TS_SIG_SCHEME_NAME; a reader refuses any other, or none,
 * before it verifies the signature), "signer" (hex public key) and
 * "signature" (hex), signed with ts_sign under the tag
 * "tessera/object/v1" over its canonical text (docs/FORMATS.md 11.1): every
 * key but "signature" sorted, one "key=value\n" line each; strings, integers,
 * booleans, arrays of integers and nested objects (dotted keys) only.  A
 * key listed in `unsigned_keys` (the manifest's "config") is left out; the
 * object binds it through a hash of its own. */
#define NODE_OBJ_TAG "tessera/object/v1"
#define NODE_OBJ_MAX (4u << 20)

/* Adds "scheme", "signer" and "signature" to obj (replacing any). */
int node_obj_sign(struct cJSON *obj, const ts_keypair *kp, ts_err *e);
/* Parses and verifies an object: its kind, scheme and run id must be as
 * expected and its signature must verify with pk (the hotkey the chain lists
 * for the publisher; NULL accepts the object's own "signer", for tools
 * only).  *out (cJSON, cJSON_Delete) on success. */
int node_obj_parse(const uint8_t *buf, size_t len, const char *kind, const char *run_id,
                   const uint8_t *pk, struct cJSON **out, ts_err *e);
/* The canonical text that is signed (malloc'd), for docs and tests. */
char *node_obj_canonical(const struct cJSON *obj, ts_err *e);

/* ------------------------------------------- the run on subtensor (runpub.c)
 * The subnet owner publishes the run description (run.json, a signed object
 * of kind "run") in its bucket and anchors its hash in its hotkey's
 * commitment: "run1 <64 hex> <bucket commitment>" (docs/FORMATS.md
 * 11.3).  node_run_publish writes both; node_run_fetch finds the owner's
 * anchor, fetches run.json, checks its hash and the owner's signature and
 * calls chain_set_run.  node_commitment_bucket strips the anchor from a
 * commitment (the bucket commitment that follows it); node_run_anchor reads
 * the committed hash (TS_ENOTFOUND when there is none). */
int node_run_publish(chain *ch, const ts_keypair *owner, store *own, const char *bucket_commitment,
                     const char *run_id, uint64_t blocks_per_window, const char *params_json, ts_err *e);
int node_run_fetch(chain *ch, const store_opts *so, ts_err *e);
const char *node_commitment_bucket(const char *text);
int node_run_anchor(const char *text, uint8_t hash[TS_HASH_BYTES]);

/* ------------------------------------------------------------- the node */

typedef enum { NODE_MINER, NODE_VALIDATOR } node_role;

typedef struct node_opts {
    node_role role;
    const char *chain_url;      /* local:/path */
    const char *wallet, *hotkey;
    const char *store_url;      /* own bucket, written with store_opts' credentials */
    const char *commitment;     /* read credentials published on chain (NULL: the
                                   store URL itself, for file:// stores) */
    const store_opts *sopts;
    const char *state_dir;      /* local state (model, error feedback, scores) */
    const char *device;         /* cpu, auto, cuda:N */
    const char *data;           /* overrides the run's training data path */
    const char *val_data;       /* overrides the run's held-out data path */
    bool allow_local_peers;     /* accept file:// and http:// peer stores */
} node_opts;

typedef struct node node;

/* Opens everything a node needs; checks the hotkey is registered (a clear
 * error says how to register otherwise) and publishes the commitment when
 * the chain's differs.  Takes the state directory's lock (a second process
 * on it is refused).  Loads local state when it is there and consistent. */
int node_open(const node_opts *o, node **out, ts_err *e);
void node_close(node *n);

const node_run *node_get_run(const node *n);
uint32_t node_uid(const node *n);
const ts_keypair *node_keys(const node *n);
chain *node_chain(node *n);
store *node_store(node *n);
model *node_model(node *n);
spl_ctx *node_codec(node *n);
data_dataset *node_data(node *n);
/* The held-out shards, or NULL when the run names none. */
data_dataset *node_val_data(node *n);
/* Parameter views (fp32, in codec order; device memory on a GPU backend). */
ts_tensor *node_params(node *n, int *count);
/* The window whose training starts from the node's current model: every
 * outer step before it is applied. */
uint64_t node_next_window(const node *n);
/* Sets the model to the run's starting point: the weights named by the run
 * parameters (hash checked), else the seeded initialisation. */
int node_init_model(node *n, ts_err *e);
/* BLAKE2b-256 of the parameter buffer.  Computed once per model state (on
 * a GPU backend the parameters are downloaded into one host buffer the node
 * allocates once) and cached until the model changes: the node's own
 * operations (outer step, loads, catch-up) invalidate it. */
void node_model_hash(node *n, uint8_t out[TS_HASH_BYTES]);
/* Callers that change the parameters through node_model / node_params and
 * do not restore them bit for bit call this (drops the cached hash). */
void node_model_changed(node *n);
/* The compute backend the model, the error feedback and the codec's
 * tensors live on (node_params, node_ef: device memory on a GPU). */
const kn_backend *node_backend(const node *n);
/* A device name for logs and metrics ("cpu", or the GPU's name). */
void node_device_name(const node *n, char *out, size_t cap);

/* Refreshes the metagraph and commitments (cheap; call once per phase).
 * TS_EDENIED, and the node is stopped for good (node_fatal), when this
 * node's hotkey lost its uid or its commitment changed under it: another
 * process publishes for the same hotkey, and two nodes behind one hotkey
 * would split its peers' view of it. */
int node_refresh(node *n, ts_err *e);
/* The node stopped for a reason a restart does not cure (above). */
bool node_fatal(const node *n);
const chain_metagraph *node_metagraph(const node *n);
/* ------------------------------------------------------------ leadership
 *
 * The validators of window w are the validator-permit holders of the chain
 * as it stood at w's first block (chain_metagraph_at), ranked by
 * chain_validators_ranked with liveness = leader_liveness_windows windows:
 * those that set weights or published a commitment within that span come
 * first, each group by stake (ties: the lowest uid).  The first is w's
 * leader.  Every node computes the same ranking whenever it asks, so peer
 * lists, reference hashes and checkpoints are looked up in the same order by
 * everyone (docs/CHAIN.md 1.2, docs/FORMATS.md 11.5). */
#define NODE_MAX_VALIDATORS 64

typedef struct node_validators {
    uint64_t window;
    uint32_t n;
    uint32_t uid[NODE_MAX_VALIDATORS];
} node_validators;

/* TS_ESTATE while w's first block is not final yet; TS_ENOTFOUND when no
 * uid held a permit then. */
int node_validators_of(node *n, uint64_t window, node_validators *out, ts_err *e);
int node_leader_of(node *n, uint64_t window, uint32_t *uid, ts_err *e);
/* The leader of the current window (of the previous one during the first
 * block of a window).  TS_ENOTFOUND without validators. */
int node_leader(node *n, uint32_t *uid, ts_err *e);
/* A validator's sign of life: a commitment republished unless it set
 * weights or committed since the current window began. */
int node_heartbeat(node *n, ts_err *e);
/* The deadline of one request to a peer's store: a tenth of a window, in
 * [1, 60] s (one retry; connection and stall limits within it). */
double node_peer_budget(const node *n);
/* The store of a registered uid, from its commitment (cached; reopened when
 * the commitment changes).  TS_ENOTFOUND when it has none.  Requests to it
 * are bounded by node_peer_budget. */
int node_peer_store(node *n, uint32_t uid, store **out, ts_err *e);

/* Timestamps of the window boundaries: T(w) = start of window w. */
double node_window_time(node *n, uint64_t window);
/* Sleeps until wall clock t (or until node_stop was called: returns false). */
bool node_sleep_until(node *n, double t);
/* Sleeps until delay seconds after T(window), the timestamp of the window's
 * first block.  Until that block exists, T(window) is a projection (exact on
 * a local subnet, an estimate on subtensor, whose blocks come when they
 * come); once it exists its timestamp is final and the sleep is extended to
 * it, so what a node does "after T(window)" never happens before it by the
 * chain's own record.  false when the node is stopping. */
bool node_sleep_past_window_start(node *n, uint64_t window, double delay);
/* Asks a node's loops to stop (signal handlers call it). */
void node_stop(node *n);
bool node_stopping(const node *n);

/* -------------------------------------------------- start and peer lists */

/* The run's start window: the earliest one any validator (permit holder)
 * published; once found it never moves for this node.  TS_ENOTFOUND before
 * any has. */
int node_start_window(node *n, uint64_t *window, ts_err *e);
/* Publishes the start window in the node's own bucket unless it is there
 * (the leader starts the run; every validator republishes the run's start). */
int node_publish_start_window(node *n, uint64_t window, ts_err *e);

typedef struct node_peers {
    uint64_t window;            /* first effective window */
    uint32_t from;              /* the validator whose list it is */
    uint32_t n_gather, n_reserve;
    uint32_t gather[NODE_MAX_PEERS], reserve[NODE_MAX_PEERS];
} node_peers;

/* The peer list in force for a window: of the window's validators, in
 * their ranking, the first that published a list effective at or before
 * it; its list with the largest first effective window <= window.
 * TS_ENOTFOUND when none has (a null round); a store that cannot be read
 * is an error (never a skip: that would make nodes disagree).  Validators
 * publish only non-empty lists. */
int node_peers_for(node *n, uint64_t window, node_peers *out, ts_err *e);
int node_publish_peers(node *n, const node_peers *p, ts_err *e);

/* ------------------------------------------------------------- uploads */

/* Where an upload stands after fetching (gauntlet_upload values). */
typedef struct node_fetch {
    uint32_t uid;
    gauntlet_upload status;     /* OK, MISSING, EARLY, LATE, INVALID */
    spl_reject why;             /* for INVALID */
    char reason[160];           /* one line for logs */
    double last_modified;
    uint8_t *wire;              /* malloc'd upload bytes (OK or INVALID) */
    size_t len;
    spl_upload *upload;         /* decoded, when OK (the caller owns it) */
} node_fetch;

/* Fetches and checks uid's upload for a window: present, inside the
 * acceptance window, decodes with the run's identity and the uid's hotkey.
 * A failure of the peer's is a status, not an error; errors are local
 * (TS_ENOMEM). */
int node_fetch_upload(node *n, uint32_t uid, uint64_t window, node_fetch *f, ts_err *e);
void node_fetch_clear(node_fetch *f);
/* Whether uid uploaded anything for the window (a HEAD only): OK, MISSING,
 * EARLY or LATE. */
gauntlet_upload node_upload_status(node *n, uint32_t uid, uint64_t window, double *last_modified);

/* The gather of a window: the peer list's primaries, each missing or
 * invalid one replaced by the next reserve with a valid upload; the result
 * in uid order.  peers NULL means a null round (n_out 0). */
typedef struct node_gather {
    int n;
    node_fetch f[NODE_MAX_PEERS];
} node_gather;
int node_gather_window(node *n, uint64_t window, const node_peers *peers, node_gather *g,
                       ts_err *e);
void node_gather_clear(node_gather *g);

/* The outer step of a window (miners, validators and catch-up alike): with
 * no uploads it is a null round and the model is unchanged.  Advances the
 * node's next window to window + 1. */
int node_outer_step(node *n, uint64_t window, node_gather *g, spl_apply_stats *st, ts_err *e);

/* ----------------------------------------------------------- sync records */

#define NODE_SYNC_MAX 4096

typedef struct node_sync {
    uint64_t window;            /* the model after this window's outer step */
    uint32_t uid;
    uint8_t model_hash[TS_HASH_BYTES];
    uint32_t n;
    float values[NODE_SYNC_MAX]; /* the parameters at node_sync_positions */
} node_sync;

/* The positions a sync record samples (a fixed, seeded choice for the run). */
int node_sync_positions(const node *n, const uint64_t **pos, uint32_t *count);
/* The node's own record of its current model (which includes window's step). */
void node_sync_make(node *n, uint64_t window, node_sync *s);
int node_publish_sync(node *n, const node_sync *s, ts_err *e);
/* Reads and verifies uid's record for a window. */
int node_fetch_sync(node *n, uint32_t uid, uint64_t window, node_sync *s, ts_err *e);
/* Steps behind (Templar's final rule): per sampled position i the ratio
 * |theirs_i - ours_i| / max(step_i, 1e-9), step_i an EMA of that position's
 * per-step change |ours_i(w) - ours_i(w - 1)| (node_sync_step_ema); the
 * result is the interquartile mean of the ratios (the mean of those between
 * the first and third quartiles, quantiles interpolated linearly as
 * torch.quantile does).  0 when the hashes are equal; +inf when the records
 * do not match in size or theirs holds a non-finite value; NaN when step is
 * NULL (no per-step change known yet: not measurable). */
double node_steps_behind(const node_sync *theirs, const node_sync *ours, const double *step);
/* Folds one window's change (ours now against ours one window before) into
 * the per-position EMA: step_i = (1 - alpha) step_i + alpha |now_i - before_i|,
 * or |now_i - before_i| when *have is false (then *have becomes true).
 * Records of different sizes leave it unchanged. */
void node_sync_step_ema(double *step, bool *have, const node_sync *now, const node_sync *before, double alpha);

/* ------------------------------------------------------------ local state */

/* Saves the model, the error feedback (miners) and node.json atomically. */
int node_save_state(node *n, ts_err *e);
/* Error feedback buffers (miners), in codec order; on a GPU backend their
 * data is device memory (one buffer).  ef.safetensors is written from a
 * host copy and uploaded on load, so state moves between devices. */
ts_tensor *node_ef(node *n);
/* Zeroes the error feedback (null rounds, loaded checkpoints); no-op
 * without one. */
void node_ef_zero(node *n);

/* ------------------------------------------------------- catch-up, ckpts */

/* Brings the model to the start of `window`, exactly or not at all: from
 * the local state if it is at or before it, else from the newest verified
 * checkpoint at or before window - 1 (the validators' checkpoints, in the
 * current ranking), or from the run's initialisation when no validator has
 * published any.  Each window is then replayed from the reference bundle
 * (node_reference), whose base hash must equal the model's and whose model
 * hash the replay must reproduce.  A window without any bundle is gathered
 * only while its uploads are still stored (then checked later by
 * node_check_agreement); past that it is never guessed: the node loads the
 * newest verified checkpoint past it, or waits for one.  A checkpoint that
 * cannot be loaded (download, disk, hash) is an error to retry, never a
 * reason to start over from the initialisation.  TS_ENOTFOUND: what is
 * needed is not published yet (retry later). */
int node_catch_up(node *n, uint64_t window, ts_err *e);

/* Validators: the window's catch-up bundle (the gathered uploads, the model
 * hash before and after the outer step, signed).  base_hash: the model
 * before the step.  Not published while the node is forked. */
int node_publish_bundle(node *n, uint64_t window, const node_gather *g, const uint8_t base_hash[TS_HASH_BYTES],
                        ts_err *e);

/* ------------------------------------------------------ agreement
 *
 * The reference of window w: the bundle of the first of w's validators (in
 * their ranking) that published one; its model hash is the model every
 * node must hold after w's outer step. */
typedef struct node_ref {
    uint64_t window;
    uint32_t uid;                       /* the validator that published it */
    uint8_t base[TS_HASH_BYTES];        /* model before the window's step */
    uint8_t model[TS_HASH_BYTES];       /* ... and after it */
} node_ref;
/* TS_ENOTFOUND when no validator has published one (yet).  *bundle
 * receives the verified bundle bytes (free()).  With bundle NULL only the
 * hashes are wanted: the model hash then comes from that validator's sync
 * record of the window (small), published with the bundle; base is zero. */
int node_reference(node *n, uint64_t window, node_ref *ref, uint8_t **bundle, size_t *len, ts_err *e);

/* Compares the node's model hashes of recent windows (kept from each outer
 * step, and across restarts in node.json) with the reference hashes.
 * Windows without a reference yet stay pending.  On a difference it logs an
 * error, marks the node forked (no sync records, bundles, peer lists or
 * checkpoints go out) and drops its state, so that the next node_catch_up
 * resynchronises from a verified checkpoint: returns TS_ESIG. */
int node_check_agreement(node *n, ts_err *e);
bool node_forked(const node *n);
/* The node's hash of a window's model (after its outer step): TS_ENOTFOUND
 * when it is no longer remembered.  *verified: it matched the reference. */
int node_window_hash(const node *n, uint64_t window, uint8_t hash[TS_HASH_BYTES], bool *verified);

/* Validator: writes checkpoints/{w}/model.safetensors, manifest.json and
 * LATEST for the current model (after window w's outer step). */
int node_publish_checkpoint(node *n, uint64_t window, ts_err *e);

/* Verifies a checkpoint store (a URL or a directory): LATEST, then each
 * manifest back along its chain as far as they exist, each weights file's
 * hash and model hash.  LATEST must name the newest checkpoint the store
 * holds and be no older than min_window (what was seen before).  pk NULL:
 * self-consistency only (the signer named in the objects), else the signer
 * must be pk.  Prints a report to fp (FILE *, may be NULL).  *window (may be
 * NULL) receives the newest checkpoint's window. */
int node_verify_checkpoints(store *s, const char *run_id, const uint8_t *pk, uint64_t min_window, void *fp,
                            uint64_t *window, char *weights_key, size_t key_cap, ts_err *e);

/* Replays a store's bundles between two of its checkpoints: loads the
 * checkpoint of window `from`, applies the bundles of from + 1 .. to (each
 * one's base hash checked) and compares the result with the checkpoint of
 * window `to`.  TS_ESIG when the later checkpoint is not what they produce.
 * to UINT64_MAX: the newest checkpoint; from UINT64_MAX: the one before `to`.
 * run: the run parameters (node_run_from_json of the chain's genesis). */
int node_replay_checkpoints(store *s, const node_run *run, const uint8_t *pk, uint64_t from, uint64_t to, void *fp,
                            ts_err *e);

#endif
