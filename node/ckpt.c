/* ckpt.c - checkpoints, the leader's catch-up bundles, and catching up.
 *
 * A checkpoint of window w is the model after w's outer step (the start of
 * window w + 1): checkpoints/{w}/model.safetensors, a signed manifest.json
 * that binds the run, the window, the config, the weights' hash and the hash
 * of the previous manifest, and a signed checkpoints/LATEST pointing at the
 * newest manifest.  Objects are written weights first, LATEST last, so LATEST
 * never names something absent.  Readers verify signature and hashes before
 * loading anything. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "node_internal.h"

#define MAX_WEIGHTS (64ull << 30)

/* ------------------------------------------------------------- publish */

static int read_latest(store *s, const char *run_id, const uint8_t *pk, cJSON **latest, cJSON **manifest,
                       uint8_t manifest_hash[TS_HASH_BYTES], ts_err *e) {
    *latest = *manifest = NULL;
    uint8_t *buf;
    size_t len;
    if (store_get(s, STORE_KEY_LATEST, NODE_OBJ_MAX, &buf, &len, e)) return e->code;
    int rc = node_obj_parse(buf, len, "latest", run_id, pk, latest, e);
    free(buf);
    if (rc) return ts_wrap(e, "%s", STORE_KEY_LATEST);
    const cJSON *mk = cJSON_GetObjectItemCaseSensitive(*latest, "manifest_key");
    const cJSON *mh = cJSON_GetObjectItemCaseSensitive(*latest, "manifest_hash");
    uint8_t want[TS_HASH_BYTES];
    if (!cJSON_IsString(mk) || !cJSON_IsString(mh) || ts_unhex(want, TS_HASH_BYTES, mh->valuestring)) {
        rc = ts_fail(e, TS_EFORMAT, "LATEST lacks manifest_key or manifest_hash");
        goto fail;
    }
    if ((rc = store_get(s, mk->valuestring, NODE_OBJ_MAX, &buf, &len, e))) {
        ts_wrap(e, "the manifest LATEST names");
        goto fail;
    }
    ts_blake2b(manifest_hash, TS_HASH_BYTES, buf, len);
    if (memcmp(manifest_hash, want, TS_HASH_BYTES)) {
        free(buf);
        rc = ts_fail(e, TS_ESIG, "%s does not have the hash LATEST records", mk->valuestring);
        goto fail;
    }
    /* the manifest must be signed by the same key as LATEST */
    const cJSON *signer = cJSON_GetObjectItemCaseSensitive(*latest, "signer");
    uint8_t spk[TS_PK_BYTES];
    ts_unhex(spk, TS_PK_BYTES, signer->valuestring);
    rc = node_obj_parse(buf, len, "manifest", run_id, spk, manifest, e);
    free(buf);
    if (rc) {
        ts_wrap(e, "%s", mk->valuestring);
        goto fail;
    }
    return TS_OK;
fail:
    cJSON_Delete(*latest);
    *latest = NULL;
    return rc;
}

int node_publish_checkpoint(node *n, uint64_t window, ts_err *e) {
    if (n->next_window != window + 1)
        return ts_fail(e, TS_ESTATE, "checkpoint of window %llu asked of a model at window %llu",
                       (unsigned long long)window, (unsigned long long)n->next_window);
    char *dir = ts_path_join(n->opts.state_dir, "checkpoint.tmp");
    char *wpath = dir ? ts_path_join(dir, "model.safetensors") : NULL;
    if (!dir || !wpath) {
        free(dir);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    int rc = model_save(n->m, dir, e);
    uint8_t wh[TS_HASH_BYTES];
    char wkey[STORE_LAYOUT_KEY_MAX], mkey[STORE_LAYOUT_KEY_MAX];
    store_key_checkpoint(wkey, window);
    store_key_manifest(mkey, window);
    store_info wi = {0};
    if (!rc) rc = ts_hash_file(wpath, wh, e);
    if (!rc) rc = store_put_file(n->own, wkey, wpath, e);
    if (!rc) rc = store_head(n->own, wkey, &wi, e);
    if (rc) {
        free(dir);
        free(wpath);
        return ts_wrap(e, "checkpoint of window %llu", (unsigned long long)window);
    }
    /* the previous manifest, if this validator published one */
    cJSON *pl = NULL, *pm = NULL;
    uint8_t prev_hash[TS_HASH_BYTES];
    ts_err pe = {0};
    bool have_prev = read_latest(n->own, n->run.run_id, n->kp.pk, &pl, &pm, prev_hash, &pe) == TS_OK;
    uint64_t prev_window = 0;
    if (have_prev && (node_json_u64(pm, "window", &prev_window) || prev_window >= window)) have_prev = false;
    cJSON_Delete(pl);
    cJSON_Delete(pm);

    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "kind", "manifest");
    cJSON_AddStringToObject(m, "run_id", n->run.run_id);
    cJSON_AddNumberToObject(m, "window", (double)window);
    cJSON_AddNumberToObject(m, "next_window", (double)(window + 1));
    uint64_t start = 0;
    ts_err se = {0};
    if (node_start_window(n, &start, &se) || start > window + 1) start = window + 1;
    cJSON_AddNumberToObject(m, "global_step", (double)(window + 1 - start));
    char *cfg = model_config_to_json(&n->run.model);
    cJSON *cj = cfg ? cJSON_Parse(cfg) : NULL;
    free(cfg);
    if (cj) cJSON_AddItemToObject(m, "config", cj);
    char hex[2 * TS_HASH_BYTES + 1];
    ts_hex(hex, n->config_hash, TS_HASH_BYTES);
    cJSON_AddStringToObject(m, "config_hash", hex);
    cJSON_AddStringToObject(m, "weights_key", wkey);
    ts_hex(hex, wh, TS_HASH_BYTES);
    cJSON_AddStringToObject(m, "weights_hash", hex);
    cJSON_AddNumberToObject(m, "weights_bytes", (double)wi.size);
    uint8_t mh[TS_HASH_BYTES];
    node_model_hash(n, mh);
    ts_hex(hex, mh, TS_HASH_BYTES);
    cJSON_AddStringToObject(m, "model_hash", hex);
    if (have_prev) {
        cJSON_AddNumberToObject(m, "prev_window", (double)prev_window);
        ts_hex(hex, prev_hash, TS_HASH_BYTES);
        cJSON_AddStringToObject(m, "prev_manifest_hash", hex);
    } else {
        cJSON_AddStringToObject(m, "prev_manifest_hash", "");
    }
    cJSON_AddNumberToObject(m, "created", floor(ts_now()));
    rc = node_obj_sign(m, &n->kp, e);
    char *text = rc ? NULL : cJSON_Print(m);
    cJSON_Delete(m);
    if (!rc && !text) rc = ts_fail(e, TS_ENOMEM, "out of memory");
    if (!rc) rc = store_put(n->own, mkey, text, strlen(text), e);
    uint8_t this_hash[TS_HASH_BYTES];
    if (!rc) ts_blake2b(this_hash, TS_HASH_BYTES, text, strlen(text));
    free(text);
    if (!rc) {
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "kind", "latest");
        cJSON_AddStringToObject(l, "run_id", n->run.run_id);
        cJSON_AddNumberToObject(l, "window", (double)window);
        cJSON_AddStringToObject(l, "manifest_key", mkey);
        ts_hex(hex, this_hash, TS_HASH_BYTES);
        cJSON_AddStringToObject(l, "manifest_hash", hex);
        rc = node_put_object(n, STORE_KEY_LATEST, l, e);
        cJSON_Delete(l);
    }
    unlink(wpath);
    char *cpath = ts_path_join(dir, "config.json");
    if (cpath) unlink(cpath);
    free(cpath);
    rmdir(dir);
    free(dir);
    free(wpath);
    if (rc) return ts_wrap(e, "checkpoint of window %llu", (unsigned long long)window);
    TS_INFO("published the checkpoint of window %llu (%s)", (unsigned long long)window, wkey);
    return TS_OK;
}

/* ------------------------------------------------------------- verify */

static int verify_weights(store *s, const char *key, const uint8_t want[TS_HASH_BYTES], uint64_t bytes,
                          const model_config *cfg, ts_err *e) {
    char tmpl[] = "/tmp/tessera-ckpt-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return ts_fail(e, TS_EIO, "temporary file: %s", strerror(errno));
    close(fd);
    int rc = store_get_file(s, key, tmpl, bytes ? bytes : MAX_WEIGHTS, e);
    uint8_t got[TS_HASH_BYTES];
    if (!rc) rc = ts_hash_file(tmpl, got, e);
    if (!rc && memcmp(got, want, TS_HASH_BYTES)) rc = ts_fail(e, TS_ESIG, "%s: weights hash mismatch", key);
    if (!rc && cfg) {
        /* the weights load into a model of the manifest's config */
        model *m = NULL;
        rc = model_create_opts(cfg, kn_cpu(), &(model_options){.max_batch = 1, .max_seq = 1, .eval_only = true}, &m, e);
        if (!rc) rc = model_load(m, tmpl, e);
        model_free(m);
    }
    unlink(tmpl);
    return rc;
}

int node_verify_checkpoints(store *s, const char *run_id, const uint8_t *pk, void *fpv, uint64_t *window,
                            char *weights_key, size_t key_cap, ts_err *e) {
    FILE *fp = fpv;
    cJSON *latest, *man;
    uint8_t mhash[TS_HASH_BYTES];
    if (read_latest(s, run_id, pk, &latest, &man, mhash, e)) return e->code;
    const char *rid = cJSON_GetObjectItemCaseSensitive(latest, "run_id")->valuestring;
    const char *signer = cJSON_GetObjectItemCaseSensitive(latest, "signer")->valuestring;
    uint64_t lw = 0;
    node_json_u64(latest, "window", &lw);
    if (fp) fprintf(fp, "LATEST      run %s, window %llu, signed by %s: signature ok\n", rid, (unsigned long long)lw, signer);
    uint8_t spk[TS_PK_BYTES];
    ts_unhex(spk, TS_PK_BYTES, signer);
    int rc = TS_OK;
    int count = 0;
    bool first = true;
    while (man) {
        uint64_t w;
        const cJSON *wk = cJSON_GetObjectItemCaseSensitive(man, "weights_key");
        const cJSON *wh = cJSON_GetObjectItemCaseSensitive(man, "weights_hash");
        const cJSON *ch = cJSON_GetObjectItemCaseSensitive(man, "config_hash");
        const cJSON *cfgj = cJSON_GetObjectItemCaseSensitive(man, "config");
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(man, "prev_manifest_hash");
        uint64_t bytes = 0;
        uint8_t whash[TS_HASH_BYTES], chash[TS_HASH_BYTES], got[TS_HASH_BYTES];
        model_config cfg;
        char *cfgtxt = cfgj ? cJSON_PrintUnformatted(cfgj) : NULL;
        if (node_json_u64(man, "window", &w) || !cJSON_IsString(wk) || !cJSON_IsString(wh) ||
            ts_unhex(whash, TS_HASH_BYTES, wh->valuestring) || !cJSON_IsString(ch) ||
            ts_unhex(chash, TS_HASH_BYTES, ch->valuestring) || node_json_u64(man, "weights_bytes", &bytes) ||
            !cJSON_IsString(ph) || !cfgtxt) {
            rc = ts_fail(e, TS_EFORMAT, "manifest of window %llu is missing fields", (unsigned long long)w);
        } else if (model_config_parse(cfgtxt, strlen(cfgtxt), &cfg, e)) {
            rc = ts_wrap(e, "manifest of window %llu: config", (unsigned long long)w);
        } else {
            model_config_hash(&cfg, got);
            if (memcmp(got, chash, TS_HASH_BYTES))
                rc = ts_fail(e, TS_ESIG, "manifest of window %llu: config does not match config_hash", (unsigned long long)w);
        }
        free(cfgtxt);
        if (first && !rc && w != lw) rc = ts_fail(e, TS_EFORMAT, "LATEST names window %llu but its manifest window %llu",
                                                  (unsigned long long)lw, (unsigned long long)w);
        if (!rc) rc = verify_weights(s, wk->valuestring, whash, bytes, &cfg, e);
        if (rc) break;
        if (first) {
            if (window) *window = w;
            if (weights_key) snprintf(weights_key, key_cap, "%s", wk->valuestring);
        }
        count++;
        if (fp) fprintf(fp, "checkpoint  window %llu: manifest signature ok, config ok, weights %s (%llu bytes) hash ok, loads\n",
                        (unsigned long long)w, wk->valuestring, (unsigned long long)bytes);
        first = false;
        /* follow the chain */
        uint64_t pw;
        if (!ph->valuestring[0] || node_json_u64(man, "prev_window", &pw)) {
            if (fp) fprintf(fp, "chain       starts at window %llu: %d checkpoint(s) verified\n", (unsigned long long)w, count);
            break;
        }
        uint8_t want[TS_HASH_BYTES];
        if (ts_unhex(want, TS_HASH_BYTES, ph->valuestring)) {
            rc = ts_fail(e, TS_EFORMAT, "manifest of window %llu: bad prev_manifest_hash", (unsigned long long)w);
            break;
        }
        char pkey[STORE_LAYOUT_KEY_MAX];
        store_key_manifest(pkey, pw);
        uint8_t *buf;
        size_t len;
        ts_err ge = {0};
        if (store_get(s, pkey, NODE_OBJ_MAX, &buf, &len, &ge)) {
            if (fp) fprintf(fp, "chain       the manifest of window %llu is no longer stored: %d checkpoint(s) verified\n",
                            (unsigned long long)pw, count);
            break;
        }
        ts_blake2b(got, TS_HASH_BYTES, buf, len);
        cJSON *prev = NULL;
        if (memcmp(got, want, TS_HASH_BYTES))
            rc = ts_fail(e, TS_ESIG, "manifest of window %llu does not have the hash window %llu's manifest records",
                         (unsigned long long)pw, (unsigned long long)w);
        else
            rc = node_obj_parse(buf, len, "manifest", run_id, spk, &prev, e);
        free(buf);
        cJSON_Delete(man);
        man = prev;
        if (rc) break;
    }
    cJSON_Delete(man);
    cJSON_Delete(latest);
    return rc;
}

/* ------------------------------------------------------------- bundles */

int node_publish_bundle(node *n, uint64_t window, const node_gather *g, ts_err *e) {
    const uint8_t *wires[NODE_MAX_PEERS];
    size_t lens[NODE_MAX_PEERS];
    for (int i = 0; i < g->n; i++) {
        wires[i] = g->f[i].wire;
        lens[i] = g->f[i].len;
    }
    uint8_t *buf;
    size_t len;
    uint8_t after[TS_HASH_BYTES];
    node_model_hash(n, after);
    if (spl_bundle_build(n->run.run_id, window, n->config_hash, after, after, &n->kp, wires, lens, g->n, &buf, &len, e))
        return ts_wrap(e, "bundle of window %llu", (unsigned long long)window);
    char key[STORE_LAYOUT_KEY_MAX];
    store_key_aggregate(key, window);
    int rc = store_put(n->own, key, buf, len, e);
    free(buf);
    return rc;
}

/* Applies the leader's bundle of a window; TS_ENOTFOUND when there is none. */
static int replay_bundle(node *n, uint32_t leader, uint64_t window, ts_err *e) {
    store *s;
    if (node_peer_store(n, leader, &s, e)) return e->code;
    char key[STORE_LAYOUT_KEY_MAX];
    store_key_aggregate(key, window);
    size_t max_wire = spl_ctx_wire_max(n->codec);
    size_t max = NODE_MAX_PEERS * (max_wire + 64) + 4096;
    uint8_t *buf;
    size_t len;
    int rc = store_get(s, key, max, &buf, &len, e);
    if (rc) return rc;
    spl_bundle_entry ent[NODE_MAX_PEERS];
    int count = 0;
    spl_reject why = SPL_R_NONE;
    rc = spl_bundle_open(buf, len, n->run.run_id, window, node_hotkey_of(n, leader), n->config_hash, max_wire, ent,
                         NODE_MAX_PEERS, &count, NULL, NULL, &why, e);
    node_gather g = {0};
    for (int i = 0; !rc && i < count; i++) {
        node_fetch *f = &g.f[g.n];
        memset(f, 0, sizeof *f);
        f->uid = ent[i].uid;
        if ((rc = spl_upload_new(n->codec, &f->upload, e))) break;
        g.n++;
        spl_expect x = {.run_id = n->run.run_id, .window = window, .uid = ent[i].uid, .signer = ent[i].hotkey,
                        .config_hash = n->config_hash};
        spl_reject w2;
        if ((rc = spl_decode(n->codec, ent[i].wire, ent[i].len, &x, f->upload, &w2, e)))
            ts_wrap(e, "bundle of window %llu, uid %u (%s)", (unsigned long long)window, ent[i].uid, spl_reject_name(w2));
    }
    if (!rc) rc = node_outer_step(n, window, &g, NULL, e);
    node_gather_clear(&g);
    free(buf);
    if (rc && rc != TS_ENOTFOUND) ts_wrap(e, "replaying window %llu", (unsigned long long)window);
    return rc == TS_ENOTFOUND ? TS_EFORMAT : rc;
}

/* ------------------------------------------------------------ catch-up */

static int load_leader_checkpoint(node *n, uint32_t leader, uint64_t before, bool *loaded, ts_err *e) {
    *loaded = false;
    store *s;
    if (node_peer_store(n, leader, &s, e)) return e->code;
    cJSON *l, *m;
    uint8_t mh[TS_HASH_BYTES];
    ts_err le = {0};
    int rc = read_latest(s, n->run.run_id, node_hotkey_of(n, leader), &l, &m, mh, &le);
    if (rc == TS_ENOTFOUND) return TS_OK;
    if (rc) {
        TS_WARN("the leader's checkpoint is not usable: %s", le.msg);
        return TS_OK;
    }
    uint64_t w, bytes;
    const cJSON *wk = cJSON_GetObjectItemCaseSensitive(m, "weights_key");
    const cJSON *wh = cJSON_GetObjectItemCaseSensitive(m, "weights_hash");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(m, "config_hash");
    uint8_t whash[TS_HASH_BYTES], chash[TS_HASH_BYTES];
    rc = TS_OK;
    if (node_json_u64(m, "window", &w) || node_json_u64(m, "weights_bytes", &bytes) || !cJSON_IsString(wk) ||
        !cJSON_IsString(wh) || ts_unhex(whash, TS_HASH_BYTES, wh->valuestring) || !cJSON_IsString(ch) ||
        ts_unhex(chash, TS_HASH_BYTES, ch->valuestring) || memcmp(chash, n->config_hash, TS_HASH_BYTES)) {
        TS_WARN("the leader's newest manifest is malformed or for another model; ignoring it");
    } else if (w + 1 > before) {
        TS_DEBUG("the leader's checkpoint (window %llu) is newer than needed", (unsigned long long)w);
    } else {
        char *tmp = ts_path_join(n->opts.state_dir, "download.safetensors");
        uint8_t got[TS_HASH_BYTES];
        if (!tmp) rc = ts_fail(e, TS_ENOMEM, "out of memory");
        else if (store_get_file(s, wk->valuestring, tmp, bytes, &le) || ts_hash_file(tmp, got, &le) ||
                 memcmp(got, whash, TS_HASH_BYTES)) {
            TS_WARN("the leader's checkpoint of window %llu is refused: %s", (unsigned long long)w,
                    le.msg[0] ? le.msg : "weights hash mismatch");
        } else if (model_load(n->m, tmp, &le)) {
            TS_WARN("the leader's checkpoint of window %llu does not load: %s", (unsigned long long)w, le.msg);
        } else {
            n->next_window = w + 1;
            *loaded = true;
            TS_INFO("loaded the leader's checkpoint of window %llu (signature and hash verified)", (unsigned long long)w);
        }
        if (tmp) unlink(tmp);
        free(tmp);
    }
    cJSON_Delete(l);
    cJSON_Delete(m);
    return rc;
}

int node_catch_up(node *n, uint64_t window, ts_err *e) {
    if (n->have_state && n->next_window == window) return TS_OK;
    uint32_t leader;
    if (node_leader(n, &leader, e)) return e->code;
    uint64_t start;
    ts_err se = {0};
    int src = node_start_window(n, &start, &se);
    if (src && src != TS_ENOTFOUND) return ts_fail(e, src, "%s", se.msg);
    bool have_start = src == TS_OK;
    if (!n->have_state || n->next_window > window) {
        bool loaded = false;
        if (load_leader_checkpoint(n, leader, window, &loaded, e)) return e->code;
        if (!loaded) {
            if (!have_start) return ts_fail(e, TS_ENOTFOUND, "the leader has not published a start window yet");
            if (node_init_model(n, e)) return e->code;
            n->next_window = start < window ? start : window;
            TS_INFO("starting from the run's seeded initialisation at window %llu", (unsigned long long)n->next_window);
        }
        if (n->ef)
            for (int i = 0; i < n->nparams; i++) memset(n->ef[i].data, 0, n->ef[i].nbytes);
        n->have_state = true;
    }
    while (n->next_window < window) {
        uint64_t w = n->next_window;
        if (n->stop) return ts_fail(e, TS_ESTATE, "stopping");
        if (have_start && w < start) {
            n->next_window = w + 1;
            continue;
        }
        ts_err be = {0};
        int rc = replay_bundle(n, leader, w, &be);
        if (rc == TS_OK) {
            TS_INFO("caught up window %llu from the leader's bundle", (unsigned long long)w);
            continue;
        }
        if (rc != TS_ENOTFOUND) TS_WARN("window %llu: %s; gathering it instead", (unsigned long long)w, be.msg);
        node_peers peers;
        int prc = node_peers_for(n, w, &peers, &be);
        if (prc == TS_ENOTFOUND) {
            n->next_window = w + 1; /* a null round */
            continue;
        }
        if (prc) return ts_fail(e, prc, "catching up window %llu: %s", (unsigned long long)w, be.msg);
        node_gather g;
        if (node_gather_window(n, w, &peers, &g, e)) return e->code;
        rc = node_outer_step(n, w, &g, NULL, e);
        node_gather_clear(&g);
        if (rc) return rc;
        TS_INFO("caught up window %llu by gathering it", (unsigned long long)w);
    }
    return TS_OK;
}
