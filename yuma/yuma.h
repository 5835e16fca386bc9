/*
 * yuma.h - Yuma consensus: what subtensor's epoch computes, once per tempo,
 * from every validator's weights and stake: the stake-weighted median
 * consensus per miner (kappa), clipped weights, ranks, trust, incentive,
 * validator trust, bonds with their moving average, dividends, and the split
 * of the epoch's emission between miners (incentive) and validators
 * (dividends).
 *
 * The version followed is the classic Yuma of runtime spec 143 (the runtime
 * Bittensor's main chain ran in March 2024, opentensor/subtensor commit
 * bc8a966cd, pallets/subtensor/src/epoch.rs, the sparse `epoch`), in the
 * chain's own fixed point: I64F64 for the stake normalisation, I32F32 for
 * everything else, I96F32 for the emission in rao; every output as the chain
 * stores it (u16 proportions of 65535, u64 rao, u16 bonds).  Because the
 * arithmetic is the chain's, the outputs are integers that agree with the
 * runtime's storage exactly, not to a tolerance.
 *
 * Pure computation (no I/O): the local subnet applies it every tempo, the
 * Gauntlet's simulator applies it to several validators' weights, and
 * `tessera chain yuma` applies it to a JSON description of one epoch.
 */
#ifndef TESSERA_YUMA_H
#define TESSERA_YUMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define YUMA_MAX_UIDS 4096 /* a subnet's largest max_uids */

/* One sparse entry of a weight or bond row: (uid, value) as the chain keeps
 * it (weights max-upscaled so the row's largest is 65535; bonds column
 * max-upscaled). */
typedef struct yuma_entry {
    uint16_t uid;
    uint16_t value;
} yuma_entry;

/* A row: n entries, ascending uid, no duplicates (zeros allowed). */
typedef struct yuma_row {
    uint32_t n;
    yuma_entry *e;
} yuma_row;

/* The subnet's hyperparameters that the epoch reads (subtensor's names). */
typedef struct yuma_params {
    uint16_t kappa;                /* 32767: majority ratio, of 65535 */
    uint64_t bonds_moving_average; /* 900000: of 1e6 (bond EMA keeps 0.9) */
    uint64_t activity_cutoff;      /* 5000 blocks: a uid whose last update is older is inactive */
    uint16_t max_validators;       /* 64: validator permits go to the top N by stake (ties: the
                                    * higher uid wins); the runtime's initial value is 128 */
} yuma_params;

void yuma_params_default(yuma_params *p);

/* The state of the subnet when the epoch runs.  Arrays have n entries,
 * indexed by uid. */
typedef struct yuma_input {
    uint32_t n;                   /* uids 0..n-1 (1..YUMA_MAX_UIDS) */
    uint64_t block;               /* the current block */
    uint64_t emission;            /* rao to distribute (after the owner's cut) */
    const uint64_t *stake;        /* rao per hotkey */
    const uint64_t *last_update;  /* block of the uid's last weights */
    const uint64_t *registered;   /* block at registration */
    const bool *validator_permit; /* the permits the previous epoch left */
    const yuma_row *weights;      /* n rows, as stored (may be NULL: nobody set any) */
    const yuma_row *bonds;        /* n rows, as stored (may be NULL: no bonds yet) */
} yuma_input;

/* What the epoch writes to storage, per uid (all arrays n entries). */
typedef struct yuma_output {
    uint32_t n;
    bool *active;
    bool *validator_permit;       /* the new permits (top max_validators by stake) */
    uint16_t *rank, *trust, *consensus, *incentive, *dividends, *validator_trust, *pruning_score;
    uint64_t *emission;           /* the combined emission (storage Emission) */
    uint64_t *server_emission;    /* the incentive part, paid to the uid as a miner */
    uint64_t *validator_emission; /* the dividends part, paid to the uid as a validator */
    yuma_row *bonds;              /* the bonds as stored after the epoch (a uid losing its
                                   * permit gets an empty row; one that neither had nor gets
                                   * a permit keeps its input row: the runtime writes none) */
} yuma_output;

/* Runs one epoch.  Bad input (n out of range, a row with an uid >= n or out
 * of order, a NULL array) is TS_EINVAL naming the uid and leaves *out
 * zeroed; so are two values the runtime's own arithmetic cannot take (a
 * total stake over 2^63 - 1 rao, bonds_moving_average over 1000000).  *out
 * is filled with fresh allocations: yuma_output_free. */
int yuma_epoch(const yuma_params *p, const yuma_input *in, yuma_output *out, ts_err *e);
void yuma_output_free(yuma_output *o);

/* The subnet owner's cut of a block's emission (SubnetOwnerCut, a u16 of
 * 65535; 11796 = 18 %), as the chain computes it. */
#define YUMA_OWNER_CUT_DEFAULT 11796
uint64_t yuma_owner_cut(uint64_t block_emission, uint16_t cut);
/* What the same block adds to the subnet's PendingEmission (the epoch's
 * `emission` is the sum of these over the tempo): the I96F32 difference
 * e - cut, floored, so block_emission - yuma_owner_cut(..) - 1 whenever the
 * cut has a fractional part (that rao is minted to nobody). */
uint64_t yuma_owner_remaining(uint64_t block_emission, uint16_t cut);

/* The JSON form used by `tessera chain yuma` and the tests (docs/CHAIN.md):
 *   input  {"block": B, "emission": E, "params": {"kappa": ..,
 *           "bonds_moving_average": .., "activity_cutoff": .., "max_validators": ..},
 *           "neurons": [{"stake": S, "last_update": L, "registered": R,
 *                        "validator_permit": true, "weights": [[uid, u16], ..],
 *                        "bonds": [[uid, u16], ..]}, ..]}      (index = uid)
 *   output {"neurons": [{"uid": i, "active": .., "validator_permit": ..,
 *           "rank": u16, "trust": u16, "consensus": u16, "incentive": u16,
 *           "dividends": u16, "validator_trust": u16, "pruning_score": u16,
 *           "emission": rao, "server_emission": rao, "validator_emission": rao,
 *           "bonds": [[uid, u16], ..]}, ..]}
 * yuma_input_from_json takes a parsed object (const cJSON *); the arrays it
 * allocates are freed with yuma_input_free.  params and every neuron field
 * are optional (defaults, 0, false, []), unknown keys are errors, an integer
 * above 2^53 may be given as a string of digits, and rows are sorted by uid
 * (a uid named twice is an error).  yuma_output_to_json returns malloc'd
 * text with every integer in full (NULL when out of memory). */
int yuma_input_from_json(const void *json, yuma_params *p, yuma_input *in, ts_err *e);
void yuma_input_free(yuma_input *in);
char *yuma_output_to_json(const yuma_output *o);

#ifdef __cplusplus
}
#endif

#endif
