/* lead.c - who leads a window, and agreement on the model.
 *
 * Invariants enforced here (docs/FORMATS.md 11.5):
 *   - The validators of window w, and their order, are a pure function of
 *     the chain as it stood at w's first block: every node that asks gets
 *     the same answer, whenever it asks.  Peer lists, reference bundles and
 *     checkpoints are looked up in that order.
 *   - The peer list in force for w is the first ranked validator's list
 *     effective at or before w.  A store that cannot be read is an error,
 *     never a reason to skip to the next validator.
 *   - The reference hash of w is the model hash in the first ranked
 *     validator's bundle of w.  A node whose model after w differs from it
 *     is forked: it says so, publishes nothing as if it were right, and
 *     resynchronises from a verified checkpoint. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "node_internal.h"

/* ------------------------------------------------------------ validators */

int node_validators_of(node *n, uint64_t window, node_validators *out, ts_err *e) {
    int slot = (int)(window % NODE_VCACHE);
    if (n->vcache_valid[slot] && n->vcache[slot].window == window) {
        *out = n->vcache[slot];
        return TS_OK;
    }
    memset(out, 0, sizeof *out);
    out->window = window;
    uint64_t block = chain_window_start_block(n->cp, window);
    chain_metagraph mg;
    if (chain_metagraph_at(n->ch, block, &mg, e)) return e->code;
    uint64_t live = (uint64_t)n->run.leader_liveness_windows * n->cp->blocks_per_window;
    int rc = chain_validators_ranked(&mg, live, out->uid, NODE_MAX_VALIDATORS, &out->n);
    chain_metagraph_free(&mg);
    if (rc) return ts_fail(e, rc, "no uid held a validator permit at window %llu", (unsigned long long)window);
    n->vcache[slot] = *out;
    n->vcache_valid[slot] = true;
    return TS_OK;
}

int node_leader_of(node *n, uint64_t window, uint32_t *uid, ts_err *e) {
    node_validators v;
    if (node_validators_of(n, window, &v, e)) return e->code;
    *uid = v.uid[0];
    return TS_OK;
}

int node_leader(node *n, uint32_t *uid, ts_err *e) {
    chain_clock clk;
    if (chain_now(n->ch, &clk, e)) return e->code;
    ts_err le = {0};
    int rc = node_leader_of(n, clk.window, uid, &le);
    if (rc == TS_ESTATE && clk.window > 0) rc = node_leader_of(n, clk.window - 1, uid, &le);
    if (rc) return ts_fail(e, rc, "%s", le.msg);
    return TS_OK;
}

int node_heartbeat(node *n, ts_err *e) {
    chain_clock clk;
    if (chain_now(n->ch, &clk, e)) return e->code;
    if (node_refresh(n, e)) return e->code;
    if (n->uid >= n->mg.n) return TS_OK;
    uint64_t last = n->mg.neurons[n->uid].last_active;
    if (last != CHAIN_BLOCK_NONE && last >= clk.window_start_block) return TS_OK;
    chain_commitment cur;
    if (chain_commitment_of(n->ch, n->uid, &cur, e)) return ts_wrap(e, "heartbeat");
    int rc = chain_commit(n->ch, &n->kp, cur.data, e);
    /* a chain that rate-limits commitments (subtensor): the weights this
     * validator sets are its signs of life there */
    if (rc == TS_EDENIED) {
        TS_DEBUG("heartbeat: %s", e->msg);
        return TS_OK;
    }
    if (rc) return ts_wrap(e, "heartbeat");
    TS_DEBUG("heartbeat at block %llu", (unsigned long long)clk.block);
    return TS_OK;
}

/* ---------------------------------------------------------- start window */

int node_start_window(node *n, uint64_t *window, ts_err *e) {
    if (n->have_start) {
        *window = n->start;
        return TS_OK;
    }
    bool found = false;
    int err = TS_OK;
    char msg[300] = "";
    for (uint32_t i = 0; i < n->mg.n; i++) {
        if (!n->mg.neurons[i].validator_permit) continue;
        cJSON *o;
        ts_err ge = {0};
        uint64_t w;
        int rc = node_get_object(n, i, STORE_KEY_START_WINDOW, "start_window", &o, &ge);
        if (rc == TS_ENOTFOUND) continue;
        if (rc) {
            /* validators republish the run's start, so another one has it */
            if (!err) snprintf(msg, sizeof msg, "start window of validator uid %u: %s", i, ge.msg);
            err = rc;
            continue;
        }
        if (!node_json_u64(o, "window", &w) && (!found || w < *window)) {
            *window = w;
            found = true;
        }
        cJSON_Delete(o);
    }
    if (!found && err) return ts_fail(e, err, "%s", msg);
    if (!found) return ts_fail(e, TS_ENOTFOUND, "no validator has published a start window");
    n->start = *window;
    n->have_start = true;
    return TS_OK;
}

int node_publish_start_window(node *n, uint64_t window, ts_err *e) {
    ts_err e2 = {0};
    cJSON *cur;
    if (node_get_object(n, n->uid, STORE_KEY_START_WINDOW, "start_window", &cur, &e2) == TS_OK) {
        cJSON_Delete(cur);
        return TS_OK; /* the run's start never moves */
    }
    cJSON *o = node_new_object(n, "start_window");
    cJSON_AddNumberToObject(o, "window", (double)window);
    int rc = node_put_object(n, STORE_KEY_START_WINDOW, o, e);
    cJSON_Delete(o);
    if (!rc) TS_INFO("published start window %llu", (unsigned long long)window);
    return rc;
}

/* ------------------------------------------------------------ peer lists */

typedef struct {
    uint64_t best;
    uint64_t limit;
    bool found;
} peers_scan;

static int scan_peers(void *ud, const char *key, const store_info *info) {
    (void)info;
    peers_scan *ps = ud;
    uint64_t w;
    uint32_t uid;
    if (store_key_parse(key, &w, &uid) == STORE_OBJ_PEERS && w <= ps->limit && (!ps->found || w > ps->best)) {
        ps->best = w;
        ps->found = true;
    }
    return 0;
}

static int parse_uid_array(const cJSON *a, uint32_t *out, uint32_t cap, uint32_t *n) {
    *n = 0;
    if (!cJSON_IsArray(a)) return -1;
    for (const cJSON *x = a->child; x; x = x->next) {
        if (*n >= cap || !cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= CHAIN_MAX_UIDS ||
            x->valuedouble != floor(x->valuedouble))
            return -1;
        out[(*n)++] = (uint32_t)x->valuedouble;
    }
    return 0;
}

/* uid's list in force for window: TS_ENOTFOUND when it has none. */
static int peers_of(node *n, uint32_t uid, uint64_t window, node_peers *out, ts_err *e) {
    store *s;
    if (node_peer_store(n, uid, &s, e)) return e->code;
    peers_scan ps = {.limit = window};
    if (store_list(s, "peers/", scan_peers, &ps, e)) return ts_wrap(e, "listing uid %u's peer lists", uid);
    if (!ps.found) return ts_fail(e, TS_ENOTFOUND, "uid %u has no peer list for window %llu", uid, (unsigned long long)window);
    char key[STORE_LAYOUT_KEY_MAX];
    store_key_peers(key, ps.best);
    cJSON *o;
    int rc = node_get_object(n, uid, key, "peers", &o, e);
    if (rc) return rc == TS_ENOTFOUND ? ts_fail(e, TS_EFORMAT, "uid %u's %s vanished while read", uid, key) : rc;
    uint64_t w;
    if (node_json_u64(o, "window", &w) || w != ps.best ||
        parse_uid_array(cJSON_GetObjectItemCaseSensitive(o, "gather"), out->gather, NODE_MAX_PEERS, &out->n_gather) ||
        parse_uid_array(cJSON_GetObjectItemCaseSensitive(o, "reserve"), out->reserve, NODE_MAX_PEERS, &out->n_reserve) ||
        out->n_gather == 0)
        rc = ts_fail(e, TS_EFORMAT, "uid %u's peer list %s is malformed or empty", uid, key);
    out->window = ps.best;
    out->from = uid;
    cJSON_Delete(o);
    return rc;
}

int node_peers_for(node *n, uint64_t window, node_peers *out, ts_err *e) {
    memset(out, 0, sizeof *out);
    if (n->peers_cache_valid && n->peers_cache_window == window) {
        *out = n->peers_cache;
        return TS_OK;
    }
    node_validators v;
    if (node_validators_of(n, window, &v, e)) return e->code;
    for (uint32_t i = 0; i < v.n; i++) {
        ts_err pe = {0};
        int rc = peers_of(n, v.uid[i], window, out, &pe);
        if (rc == TS_ENOTFOUND) continue;
        if (rc == TS_ENOMEM) return ts_fail(e, rc, "%s", pe.msg);
        if (rc) {
            /* A malformed list is that validator's fault, and a bucket that
             * cannot be read (after the store's own retries) is down for
             * everyone: every node skips it alike.  A node that alone cannot
             * read it gathers another list, reaches another model, and the
             * reference check catches and heals that. */
            TS_WARN("window %llu: %s; using the next validator's list", (unsigned long long)window, pe.msg);
            continue;
        }
        if (i > 0)
            TS_DEBUG("window %llu: leader uid %u has no peer list; uid %u's is in force", (unsigned long long)window,
                     v.uid[0], v.uid[i]);
        n->peers_cache = *out;
        n->peers_cache_window = window;
        n->peers_cache_valid = true;
        return TS_OK;
    }
    memset(out, 0, sizeof *out);
    return ts_fail(e, TS_ENOTFOUND, "no validator has a peer list for window %llu", (unsigned long long)window);
}

int node_publish_peers(node *n, const node_peers *p, ts_err *e) {
    if (n->forked) return ts_fail(e, TS_ESTATE, "forked: no peer list goes out");
    if (p->n_gather == 0) return ts_fail(e, TS_EINVAL, "an empty peer list is not published");
    cJSON *o = node_new_object(n, "peers");
    cJSON_AddNumberToObject(o, "window", (double)p->window);
    cJSON *g = cJSON_AddArrayToObject(o, "gather");
    for (uint32_t i = 0; i < p->n_gather; i++) cJSON_AddItemToArray(g, cJSON_CreateNumber(p->gather[i]));
    cJSON *r = cJSON_AddArrayToObject(o, "reserve");
    for (uint32_t i = 0; i < p->n_reserve; i++) cJSON_AddItemToArray(r, cJSON_CreateNumber(p->reserve[i]));
    char key[STORE_LAYOUT_KEY_MAX];
    store_key_peers(key, p->window);
    int rc = node_put_object(n, key, o, e);
    cJSON_Delete(o);
    n->peers_cache_valid = false;
    return rc;
}

/* ------------------------------------------------------------ references */

/* uid's bundle of a window, verified: TS_ENOTFOUND when it has none. */
static int bundle_of(node *n, uint32_t uid, uint64_t window, node_ref *ref, uint8_t **bundle, size_t *blen,
                     ts_err *e) {
    store *s;
    if (node_peer_store(n, uid, &s, e)) return e->code;
    const uint8_t *pk = node_hotkey_of(n, uid);
    if (!pk) return ts_fail(e, TS_ENOTFOUND, "uid %u is not registered", uid);
    char key[STORE_LAYOUT_KEY_MAX];
    store_key_aggregate(key, window);
    size_t max_wire = spl_ctx_wire_max(n->codec);
    size_t max = NODE_MAX_PEERS * (max_wire + 64) + 4096;
    uint8_t *buf;
    size_t len;
    int rc = store_get(s, key, max, &buf, &len, e);
    if (rc) return rc;
    spl_bundle_entry ent[NODE_MAX_PEERS];
    int count;
    spl_reject why;
    rc = spl_bundle_open(buf, len, n->run.run_id, window, pk, n->config_hash, max_wire, ent, NODE_MAX_PEERS, &count,
                         ref->base, ref->model, &why, e);
    if (rc) {
        free(buf);
        return ts_fail(e, TS_EFORMAT, "uid %u's bundle of window %llu is refused (%s): %s", uid,
                       (unsigned long long)window, spl_reject_name(why), e->msg);
    }
    ref->window = window;
    ref->uid = uid;
    if (bundle) {
        *bundle = buf;
        *blen = len;
    } else {
        free(buf);
    }
    return TS_OK;
}

static int reference_hash(node *n, uint64_t window, node_ref *ref, ts_err *e);

int node_reference(node *n, uint64_t window, node_ref *ref, uint8_t **bundle, size_t *len, ts_err *e) {
    if (!bundle) return reference_hash(n, window, ref, e);
    memset(ref, 0, sizeof *ref);
    *bundle = NULL;
    node_validators v;
    if (node_validators_of(n, window, &v, e)) return e->code;
    for (uint32_t i = 0; i < v.n; i++) {
        ts_err be = {0};
        int rc = bundle_of(n, v.uid[i], window, ref, bundle, len, &be);
        if (rc == TS_OK) return TS_OK;
        if (rc == TS_ENOTFOUND) continue;
        if (rc == TS_ENOMEM) return ts_fail(e, rc, "%s", be.msg);
        TS_WARN("window %llu: %s; trying the next validator's bundle", (unsigned long long)window, be.msg);
    }
    return ts_fail(e, TS_ENOTFOUND, "no validator has published a bundle of window %llu", (unsigned long long)window);
}

/* The reference hash of a window without downloading the bundle: the
 * first ranked validator with a bundle of w (a HEAD), and the model hash of
 * its sync record of w (published with the bundle; small); its bundle when
 * the record is missing. */
static int reference_hash(node *n, uint64_t window, node_ref *ref, ts_err *e) {
    memset(ref, 0, sizeof *ref);
    node_validators v;
    if (node_validators_of(n, window, &v, e)) return e->code;
    char key[STORE_LAYOUT_KEY_MAX];
    store_key_aggregate(key, window);
    for (uint32_t i = 0; i < v.n; i++) {
        store *s;
        ts_err pe = {0};
        if (node_peer_store(n, v.uid[i], &s, &pe)) continue;
        store_info info;
        int rc = store_head(s, key, &info, &pe);
        if (rc == TS_ENOTFOUND) continue;
        if (rc) {
            /* the reference is only known once it can be read: undecided */
            return ts_fail(e, rc, "validator uid %u's bundle of window %llu: %s", v.uid[i], (unsigned long long)window,
                           pe.msg);
        }
        node_sync sy;
        if (node_fetch_sync(n, v.uid[i], window, &sy, &pe) == TS_OK) {
            ref->window = window;
            ref->uid = v.uid[i];
            memcpy(ref->model, sy.model_hash, TS_HASH_BYTES);
            return TS_OK;
        }
        rc = bundle_of(n, v.uid[i], window, ref, NULL, NULL, &pe);
        if (rc == TS_OK) return TS_OK;
        if (rc == TS_ENOTFOUND || rc == TS_EFORMAT) continue;
        return ts_fail(e, rc, "%s", pe.msg);
    }
    return ts_fail(e, TS_ENOTFOUND, "no validator has published a bundle of window %llu", (unsigned long long)window);
}

/* ------------------------------------------------------------ agreement */

void node_hist_record(node *n, uint64_t window, bool verified) {
    node_hist h = {.window = window, .verified = verified};
    node_model_hash(n, h.hash);
    /* windows only move forward; a replay after a resync replaces the tail */
    while (n->nhist > 0 && n->hist[n->nhist - 1].window >= window) n->nhist--;
    if (n->nhist == NODE_HIST) {
        memmove(n->hist, n->hist + 1, sizeof n->hist[0] * (NODE_HIST - 1));
        n->nhist--;
    }
    n->hist[n->nhist++] = h;
}

int node_window_hash(const node *n, uint64_t window, uint8_t hash[TS_HASH_BYTES], bool *verified) {
    for (int i = 0; i < n->nhist; i++)
        if (n->hist[i].window == window) {
            memcpy(hash, n->hist[i].hash, TS_HASH_BYTES);
            if (verified) *verified = n->hist[i].verified;
            return TS_OK;
        }
    return TS_ENOTFOUND;
}

bool node_forked(const node *n) { return n->forked; }

int node_check_agreement(node *n, ts_err *e) {
    for (int i = 0; i < n->nhist; i++) {
        node_hist *h = &n->hist[i];
        if (h->verified) continue;
        node_ref ref;
        ts_err re = {0};
        int rc = reference_hash(n, h->window, &ref, &re);
        if (rc == TS_ENOTFOUND || rc == TS_ESTATE) continue; /* not yet: checked on a later call */
        if (rc) {
            TS_DEBUG("agreement: window %llu: %s", (unsigned long long)h->window, re.msg);
            continue;
        }
        if (!memcmp(ref.model, h->hash, TS_HASH_BYTES)) {
            h->verified = true;
            continue;
        }
        char ours[17], theirs[17];
        ts_hex(ours, h->hash, 8);
        ts_hex(theirs, ref.model, 8);
        uint32_t leader = UINT32_MAX;
        node_leader_of(n, h->window, &leader, &re);
        TS_ERROR("FORK: after window %llu this node's model is %s..., but the reference bundle of validator uid %u%s "
                 "says %s...; publishing nothing until it has resynchronised from a verified checkpoint",
                 (unsigned long long)h->window, ours, ref.uid, ref.uid == leader ? " (the leader)" : "", theirs);
        n->forked = true;
        n->have_state = false;
        n->next_window = 0;
        n->nhist = 0;
        return ts_fail(e, TS_ESIG, "fork after window %llu (model %s..., reference %s... by uid %u)",
                       (unsigned long long)h->window, ours, theirs, ref.uid);
    }
    return TS_OK;
}

/* ------------------------------------------------------------ seen */

bool node_seen_get(const node *n, const uint8_t pk[TS_PK_BYTES], uint64_t *window) {
    for (int i = 0; i < n->nseen; i++)
        if (!memcmp(n->seen[i].pk, pk, TS_PK_BYTES)) {
            *window = n->seen[i].window;
            return true;
        }
    return false;
}

void node_seen_put(node *n, const uint8_t pk[TS_PK_BYTES], uint64_t window) {
    for (int i = 0; i < n->nseen; i++)
        if (!memcmp(n->seen[i].pk, pk, TS_PK_BYTES)) {
            if (window > n->seen[i].window) n->seen[i].window = window;
            return;
        }
    if (n->nseen == NODE_MAX_VALIDATORS) {
        memmove(n->seen, n->seen + 1, sizeof n->seen[0] * (NODE_MAX_VALIDATORS - 1));
        n->nseen--;
    }
    memcpy(n->seen[n->nseen].pk, pk, TS_PK_BYTES);
    n->seen[n->nseen++].window = window;
}
