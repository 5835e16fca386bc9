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
    /* the last peer list looked up */
    bool peers_cache_valid, peers_cache_found;
    uint32_t peers_cache_leader;
    uint64_t peers_cache_window;
    node_peers peers_cache;
};

const uint8_t *node_hotkey_of(const node *n, uint32_t uid);
int node_get_object(node *n, uint32_t uid, const char *key, const char *kind, struct cJSON **out, ts_err *e);
int node_put_object(node *n, const char *key, struct cJSON *obj, ts_err *e);
int node_json_u64(const struct cJSON *o, const char *key, uint64_t *out);
int node_load_state(node *n, ts_err *e);

#endif
