/* node_internal.h - the insides of a node, shared by the files of node/ only. */
#ifndef TESSERA_NODE_INTERNAL_H
#define TESSERA_NODE_INTERNAL_H

#include <pthread.h>
#include <signal.h>

#include "node.h"

typedef struct peer_store {
    uint32_t uid;
    char *text; /* the commitment it was opened from */
    store *s;
} peer_store;

#define NODE_HIST 16
#define NODE_VCACHE 8

typedef struct node_hist {
    uint64_t window;
    uint8_t hash[TS_HASH_BYTES];
    bool verified;
} node_hist;

typedef struct node_seen {
    uint8_t pk[TS_PK_BYTES];
    uint64_t window;
} node_seen;

struct node {
    node_opts opts; /* strings owned */
    store_opts sopts;
    ts_keypair kp;
    uint32_t uid;
    chain *ch;
    const chain_params *cp;
    node_run run;
    uint8_t config_hash[TS_HASH_BYTES];
    chain_metagraph mg;
    chain_commitment *commits;
    uint32_t ncommits;
    store *own;
    pthread_mutex_t peer_mu;
    peer_store *peer_stores;
    uint32_t npeer_stores;
    const kn_backend *be;
    model *m;
    ts_tensor *params;
    int nparams;
    spl_ctx *codec;
    data_dataset *ds, *val;
    ts_tensor *ef;
    uint64_t *sync_pos;
    uint32_t nsync;
    uint64_t next_window;
    bool have_state;
    volatile sig_atomic_t stop;
    /* the last peer list found */
    bool peers_cache_valid;
    uint64_t peers_cache_window;
    node_peers peers_cache;
    /* the run's start window, once known */
    bool have_start;
    uint64_t start;
    /* validators of recent windows */
    node_validators vcache[NODE_VCACHE];
    bool vcache_valid[NODE_VCACHE];
    /* the model hash after each recent outer step, and whether it matched
     * the window's reference hash (saved in node.json) */
    node_hist hist[NODE_HIST];
    int nhist;
    bool forked;
    /* one process per state directory (flock), and the commitment this node
     * stands behind: another process publishing a different one for the
     * same hotkey is noticed and stops this node */
    int lock_fd;
    char *commit_text;
    bool fatal;
    /* the newest checkpoint seen from each validator (windows never go back) */
    node_seen seen[NODE_MAX_VALIDATORS];
    int nseen;
    /* Device memory (a GPU backend): the model and the error feedback stay
     * on the device for the whole run.  host_params is one host buffer of
     * the parameters' size, allocated once: the model downloaded for its
     * hash and the sync record's values (host_valid), or the error feedback
     * on its way to ef.safetensors.  NULL on the CPU, where the parameters
     * are host memory already. */
    float *host_params;
    bool host_valid;
    void *ef_dev;        /* the error feedback's device buffer (GPU) */
    /* the model hash, computed once per model state (node_model_changed) */
    bool hash_valid;
    uint8_t hash[TS_HASH_BYTES];
};

/* The current parameters in host memory (count floats): the model's own
 * buffer on the CPU, else host_params, downloaded unless current.  NULL
 * (and e set) when the download failed. */
const float *node_host_params(node *n, size_t *count, ts_err *e);
const uint8_t *node_hotkey_of(const node *n, uint32_t uid);
int node_get_object(node *n, uint32_t uid, const char *key, const char *kind, struct cJSON **out, ts_err *e);
int node_put_object(node *n, const char *key, struct cJSON *obj, ts_err *e);
int node_json_u64(const struct cJSON *o, const char *key, uint64_t *out);
int node_load_state(node *n, ts_err *e);
struct cJSON *node_new_object(const node *n, const char *kind);
/* Records the model hash after a window's outer step (the current model). */
void node_hist_record(node *n, uint64_t window, bool verified);
/* The newest checkpoint window seen from a signer (0 / false when none). */
bool node_seen_get(const node *n, const uint8_t pk[TS_PK_BYTES], uint64_t *window);
void node_seen_put(node *n, const uint8_t pk[TS_PK_BYTES], uint64_t window);
/* Loads the newest verified checkpoint with min_window <= its window and
 * its window + 1 <= before, from the current validators' stores.  TS_OK
 * with *loaded; TS_ENOTFOUND when no validator has such a checkpoint and
 * none has any; other codes are errors to retry. */
int node_load_checkpoint(node *n, uint64_t min_window, uint64_t before, bool *loaded, ts_err *e);

#endif
