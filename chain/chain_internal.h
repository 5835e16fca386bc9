/*
 * chain_internal.h - inside the chain module: the backend table that
 * chain.c dispatches to, and the local subnet's transaction encoder (which
 * the tests also use, to forge lines an attacker could append).
 * Nothing outside chain/, tests/test_chain.c and bench/bench_chain.c
 * includes this.
 */
#ifndef TESSERA_CHAIN_INTERNAL_H
#define TESSERA_CHAIN_INTERNAL_H

#include "chain.h"

/* One backend.  Every function gets the backend's own handle; chain.c holds
 * the lock that serialises calls on one chain handle. */
typedef struct chain_backend {
    const char *scheme; /* "local" */
    /* where: the URL after "scheme:".  Fills *p (strings it points to stay
     * owned by the backend handle). */
    int (*open)(const char *where, void **impl, chain_params *p, ts_err *e);
    void (*close)(void *impl);
    int (*block)(void *impl, uint64_t *block, double *timestamp, ts_err *e);
    int (*block_time)(void *impl, uint64_t block, double *timestamp, ts_err *e);
    int (*metagraph)(void *impl, chain_metagraph *mg, ts_err *e);
    /* the metagraph at the start of `block` (chain_metagraph_at); NULL: the
     * backend cannot answer (TS_EUNSUPPORTED) */
    int (*metagraph_at)(void *impl, uint64_t block, chain_metagraph *mg, ts_err *e);
    int (*commitments)(void *impl, chain_commitment **out, uint32_t *n, ts_err *e);
    int (*weights)(void *impl, chain_weight_row **rows, uint32_t *n, ts_err *e);
    int (*commit)(void *impl, const ts_keypair *kp, const char *data, size_t len, ts_err *e);
    /* w: ascending distinct uids, values 1..65535 with the largest 65535 */
    int (*set_weights)(void *impl, const ts_keypair *kp, const chain_weight *w, uint32_t n,
                       ts_err *e);
    int (*reg)(void *impl, const ts_keypair *kp, chain_registration *out, ts_err *e);
    int (*stake)(void *impl, const ts_keypair *owner, const uint8_t hotkey[TS_PK_BYTES],
                 int64_t delta_rao, ts_err *e);
    /* optional (NULL: TS_EUNSUPPORTED, or nothing to do for reveal_pending) */
    int (*reg_burned)(void *impl, const ts_keypair *coldkey, const uint8_t hotkey[TS_PK_BYTES],
                      chain_registration *out, ts_err *e);
    int (*reveal_pending)(void *impl, const ts_keypair *kp, uint32_t *revealed, uint32_t *pending,
                          ts_err *e);
    int (*info)(void *impl, chain_info *out, ts_err *e);
    /* the last final epoch (chain_epoch_last); NULL: TS_EUNSUPPORTED */
    int (*epoch_last)(void *impl, chain_epoch *out, ts_err *e);
    int (*encode_call)(void *impl, const char *pallet, const char *call, const char *args_json, char **hex,
                       ts_err *e);
    int (*stats)(void *impl, chain_stats *out, ts_err *e);
    uint32_t (*rejections)(void *impl, chain_rejection *out, uint32_t max);
} chain_backend;

extern const chain_backend chain_local_backend;
extern const chain_backend chain_subtensor_backend;

/* ----------------------------------------- local subnet transactions */

#define CHAIN_TX_TAG "chain-tx"        /* ts_sign domain tag of log lines */
#define CHAIN_TX_LINE_MAX (64u << 10)  /* longest line, '\n' included */

typedef enum {
    CHAIN_TX_REGISTER,
    CHAIN_TX_STAKE,
    CHAIN_TX_COMMIT,
    CHAIN_TX_WEIGHTS,
} chain_tx_kind;

typedef struct chain_tx {
    chain_tx_kind kind;
    uint64_t seq;               /* 0-based index of the line in the log */
    uint64_t block;
    uint8_t signer[TS_PK_BYTES];
    uint8_t target[TS_PK_BYTES];/* stake: the hotkey */
    int64_t delta;              /* stake: rao, non-zero */
    const uint8_t *data;        /* commit */
    size_t len;
    const chain_weight *w;      /* weights */
    uint32_t nw;
} chain_tx;

/* Formats one log line for tx and signs it with kp (which should, but for
 * forging in tests need not, match tx->signer).  *line is malloc'd and
 * NUL-terminated; *len counts its bytes up to and including the final '\n'. */
int chain_local_format_tx(const uint8_t genesis_hash[TS_HASH_BYTES], const chain_tx *tx,
                          const ts_keypair *kp, char **line, size_t *len, ts_err *e);

#endif
