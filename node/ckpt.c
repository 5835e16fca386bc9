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
        uint64_t lw;
        /* a validator deletes only checkpoints older than the newest one at
         * the retention's start (validator/main.c), never the one its LATEST
         * names: a LATEST naming a deleted one was put back */
        if (rc == TS_ENOTFOUND && !node_json_u64(*latest, "window", &lw))
            ts_fail(e, rc, "LATEST names the checkpoint of window %llu, which the store no longer holds: "
                           "refused (an older LATEST put back?)", (unsigned long long)lw);
        else
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

/* The newest manifest a store holds (by listing checkpoints/). */
typedef struct {
    uint64_t best;
    bool found;
} manifest_scan;

static int scan_manifests(void *ud, const char *key, const store_info *info) {
    (void)info;
    manifest_scan *ms = ud;
    uint64_t w;
    uint32_t uid;
    if (store_key_parse(key, &w, &uid) == STORE_OBJ_MANIFEST && (!ms->found || w > ms->best)) {
        ms->best = w;
        ms->found = true;
    }
    return 0;
}

static int newest_manifest(store *s, uint64_t *window, bool *found, ts_err *e) {
    manifest_scan ms = {0};
    if (store_list(s, "checkpoints/", scan_manifests, &ms, e)) return ts_wrap(e, "listing checkpoints");
    *found = ms.found;
    *window = ms.best;
    return TS_OK;
}

/* checkpoints/{window}/manifest.json, verified (signer pk, or its own when
 * pk is NULL) and its hash. */
static int read_manifest(store *s, const char *run_id, const uint8_t *pk, uint64_t window, cJSON **man,
                         uint8_t hash[TS_HASH_BYTES], ts_err *e) {
    *man = NULL;
    char key[STORE_LAYOUT_KEY_MAX];
    store_key_manifest(key, window);
    uint8_t *buf;
    size_t len;
    if (store_get(s, key, NODE_OBJ_MAX, &buf, &len, e)) return e->code;
    ts_blake2b(hash, TS_HASH_BYTES, buf, len);
    int rc = node_obj_parse(buf, len, "manifest", run_id, pk, man, e);
    free(buf);
    if (rc) return ts_wrap(e, "%s", key);
    uint64_t w;
    if (node_json_u64(*man, "window", &w) || w != window) {
        cJSON_Delete(*man);
        *man = NULL;
        return ts_fail(e, TS_EFORMAT, "%s names another window", key);
    }
    return TS_OK;
}

/* The head of a validator's checkpoints: the manifest LATEST names, which
 * must be the newest manifest the store holds (windows never go back: an
 * older LATEST put back is refused).  With `fallback`, a refused or missing
 * LATEST gives way to the newest manifest the store holds, verified on its
 * own.  TS_ENOTFOUND when the store holds no checkpoint. */
static int read_head(store *s, const char *run_id, const uint8_t *pk, bool fallback, cJSON **man, uint64_t *window,
                     uint8_t hash_out[TS_HASH_BYTES], ts_err *e) {
    *man = NULL;
    uint64_t newest = 0;
    bool any = false;
    if (newest_manifest(s, &newest, &any, e)) return e->code;
    cJSON *latest = NULL, *m = NULL;
    uint8_t mh[TS_HASH_BYTES];
    ts_err le = {0};
    int rc = read_latest(s, run_id, pk, &latest, &m, mh, &le);
    uint64_t lw = 0, lw2 = 0;
    if (rc == TS_OK && (node_json_u64(m, "window", &lw) || node_json_u64(latest, "window", &lw2) || lw != lw2))
        rc = ts_fail(&le, TS_EFORMAT, "LATEST and its manifest name different windows");
    cJSON_Delete(latest);
    if (rc == TS_OK && any && lw < newest)
        rc = ts_fail(&le, TS_ESIG,
                     "LATEST names the checkpoint of window %llu, but the store holds the newer one of window %llu: "
                     "refused (an older LATEST put back?)",
                     (unsigned long long)lw, (unsigned long long)newest);
    if (rc == TS_OK) {
        *man = m;
        *window = lw;
        if (hash_out) memcpy(hash_out, mh, TS_HASH_BYTES);
        return TS_OK;
    }
    cJSON_Delete(m);
    if (rc == TS_ENOTFOUND && !any) return ts_fail(e, TS_ENOTFOUND, "no checkpoint");
    if (!fallback || !any) return ts_fail(e, rc == TS_ENOTFOUND ? TS_EFORMAT : rc, "%s", le.msg);
    TS_ERROR("%s; using the newest manifest the store holds (window %llu)", le.msg, (unsigned long long)newest);
    if (read_manifest(s, run_id, pk, newest, man, mh, e)) return e->code;
    *window = newest;
    if (hash_out) memcpy(hash_out, mh, TS_HASH_BYTES);
    return TS_OK;
}

/* Removes the checkpoint's staging directory (state_dir/checkpoint.tmp) and
 * frees its paths. */
static void unstage_checkpoint(char *dir, char *wpath) {
    unlink(wpath);
    char *cpath = ts_path_join(dir, "config.json");
    if (cpath) unlink(cpath);
    free(cpath);
    rmdir(dir);
    free(dir);
    free(wpath);
}

int node_publish_checkpoint(node *n, uint64_t window, ts_err *e) {
    if (n->forked) return ts_fail(e, TS_ESTATE, "forked: no checkpoint goes out");
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
        /* never leave a model-sized staging file behind (a full disk would
         * keep it full) */
        unstage_checkpoint(dir, wpath);
        return ts_wrap(e, "checkpoint of window %llu", (unsigned long long)window);
    }
    /* the previous manifest: the newest this validator published (never an
     * older LATEST someone put back) */
    cJSON *pm = NULL;
    uint8_t prev_hash[TS_HASH_BYTES];
    ts_err pe = {0};
    uint64_t prev_window = 0;
    bool have_prev = read_head(n->own, n->run.run_id, n->kp.pk, true, &pm, &prev_window, prev_hash, &pe) == TS_OK;
    if (have_prev && prev_window >= window) have_prev = false;
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
    unstage_checkpoint(dir, wpath);
    if (rc) return ts_wrap(e, "checkpoint of window %llu", (unsigned long long)window);
    TS_INFO("published the checkpoint of window %llu (%s)", (unsigned long long)window, wkey);
    return TS_OK;
}

/* ------------------------------------------------------------- verify */

static int verify_weights(store *s, const char *key, const uint8_t want[TS_HASH_BYTES], uint64_t bytes,
                          const model_config *cfg, const uint8_t *model_hash, ts_err *e) {
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
        if (!rc && model_hash) {
            size_t count;
            const float *p = model_param_data(m, &count);
            uint8_t mh[TS_HASH_BYTES];
            ts_blake2b(mh, TS_HASH_BYTES, p, count * sizeof(float));
            if (memcmp(mh, model_hash, TS_HASH_BYTES))
                rc = ts_fail(e, TS_ESIG, "%s: the weights do not have the model hash the manifest records", key);
        }
        model_free(m);
    }
    unlink(tmpl);
    return rc;
}

int node_verify_checkpoints(store *s, const char *run_id, const uint8_t *pk, uint64_t min_window, void *fpv,
                            uint64_t *window, char *weights_key, size_t key_cap, ts_err *e) {
    FILE *fp = fpv;
    cJSON *latest, *man;
    uint8_t mhash[TS_HASH_BYTES];
    uint64_t newest = 0;
    bool any = false;
    if (newest_manifest(s, &newest, &any, e)) return e->code;
    if (read_latest(s, run_id, pk, &latest, &man, mhash, e)) return e->code;
    {
        uint64_t lw0 = 0;
        node_json_u64(latest, "window", &lw0);
        int brc = TS_OK;
        if (any && lw0 < newest)
            brc = ts_fail(e, TS_ESIG,
                          "LATEST names the checkpoint of window %llu, but the store holds the newer one of window %llu "
                          "(an older LATEST put back?)",
                          (unsigned long long)lw0, (unsigned long long)newest);
        else if (lw0 < min_window)
            brc = ts_fail(e, TS_ESIG, "LATEST names the checkpoint of window %llu, older than window %llu seen before",
                          (unsigned long long)lw0, (unsigned long long)min_window);
        if (brc) {
            cJSON_Delete(latest);
            cJSON_Delete(man);
            return brc;
        }
    }
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
        const cJSON *mhj = cJSON_GetObjectItemCaseSensitive(man, "model_hash");
        uint8_t modelh[TS_HASH_BYTES];
        bool have_mh = cJSON_IsString(mhj) && !ts_unhex(modelh, TS_HASH_BYTES, mhj->valuestring);
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
        if (!rc) rc = verify_weights(s, wk->valuestring, whash, bytes, &cfg, have_mh ? modelh : NULL, e);
        if (rc) break;
        if (first) {
            if (window) *window = w;
            if (weights_key) snprintf(weights_key, key_cap, "%s", wk->valuestring);
        }
        count++;
        if (fp) fprintf(fp, "checkpoint  window %llu: manifest signature ok, config ok, weights %s (%llu bytes) hash ok, loads%s\n",
                        (unsigned long long)w, wk->valuestring, (unsigned long long)bytes,
                        have_mh ? ", model hash ok" : "");
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

int node_publish_bundle(node *n, uint64_t window, const node_gather *g, const uint8_t base_hash[TS_HASH_BYTES],
                        ts_err *e) {
    if (n->forked) return ts_fail(e, TS_ESTATE, "forked: no bundle goes out");
    const uint8_t *wires[NODE_MAX_PEERS];
    size_t lens[NODE_MAX_PEERS];
    for (int i = 0; i < g->n; i++) {
        wires[i] = g->f[i].wire;
        lens[i] = g->f[i].len;
    }
    uint8_t after[TS_HASH_BYTES];
    node_model_hash(n, after);
    uint8_t *buf;
    size_t len;
    if (spl_bundle_build(n->run.run_id, window, n->config_hash, base_hash, after, &n->kp, wires, lens, g->n, &buf, &len,
                         e))
        return ts_wrap(e, "bundle of window %llu", (unsigned long long)window);
    char key[STORE_LAYOUT_KEY_MAX];
    store_key_aggregate(key, window);
    int rc = store_put(n->own, key, buf, len, e);
    free(buf);
    return rc;
}

/* The first 8 bytes of a hash in hex, for messages. */
static const char *hex8(char out[17], const uint8_t *h) {
    ts_hex(out, h, 8);
    return out;
}

/* The hash of a host-memory (CPU) model's parameters. */
static void params_hash(const model *m, uint8_t out[TS_HASH_BYTES]) {
    size_t count;
    const float *p = model_param_data(m, &count);
    ts_blake2b(out, TS_HASH_BYTES, p, count * sizeof(float));
}

/* The model's hash: the node's (any device, cached) or a CPU model's. */
static void apply_hash(node *n, const model *m, uint8_t out[TS_HASH_BYTES]) {
    if (n) node_model_hash(n, out);
    else params_hash(m, out);
}

/* Applies a verified bundle to a model (the node's, n; or, n NULL, a CPU
 * model m): its base hash must be the model's, and the step must reproduce
 * its model hash.  TS_ESIG otherwise (the model is then changed only in the
 * second case). */
static int bundle_apply(node *n, spl_ctx *c, model *m, const node_run *run, const uint8_t config_hash[TS_HASH_BYTES],
                        uint64_t window, const uint8_t *pk, const uint8_t *buf, size_t len, ts_err *e) {
    spl_bundle_entry ent[NODE_MAX_PEERS];
    int count = 0;
    spl_reject why = SPL_R_NONE;
    uint8_t base[TS_HASH_BYTES], after[TS_HASH_BYTES], have[TS_HASH_BYTES];
    size_t max_wire = spl_ctx_wire_max(c);
    if (spl_bundle_open(buf, len, run->run_id, window, pk, config_hash, max_wire, ent, NODE_MAX_PEERS, &count, base,
                        after, &why, e))
        return ts_wrap(e, "bundle of window %llu (%s)", (unsigned long long)window, spl_reject_name(why));
    char hx[2][17];
    apply_hash(n, m, have);
    if (memcmp(have, base, TS_HASH_BYTES))
        return ts_fail(e, TS_ESIG, "the bundle of window %llu starts from model %s..., this model is %s...",
                       (unsigned long long)window, hex8(hx[0], base), hex8(hx[1], have));
    spl_upload *ups[NODE_MAX_PEERS] = {0};
    int rc = TS_OK;
    for (int i = 0; !rc && i < count; i++) {
        if ((rc = spl_upload_new(c, &ups[i], e))) break;
        spl_expect x = {.run_id = run->run_id, .window = window, .uid = ent[i].uid, .signer = ent[i].hotkey,
                        .config_hash = config_hash};
        spl_reject w2;
        if ((rc = spl_decode(c, ent[i].wire, ent[i].len, &x, ups[i], &w2, e)))
            ts_wrap(e, "bundle of window %llu, uid %u (%s)", (unsigned long long)window, ent[i].uid, spl_reject_name(w2));
    }
    int np;
    ts_tensor *params = (ts_tensor *)model_params(m, &np);
    if (!rc && count > 0) {
        rc = spl_outer_step(c, params, (const spl_upload *const *)ups, count, run->codec.alpha, NULL, e);
        if (n) node_model_changed(n);
    }
    for (int i = 0; i < count; i++) spl_upload_free(ups[i]);
    if (rc) return rc;
    apply_hash(n, m, have);
    if (memcmp(have, after, TS_HASH_BYTES))
        return ts_fail(e, TS_ESIG, "replaying window %llu gives model %s..., the bundle records %s...",
                       (unsigned long long)window, hex8(hx[0], have), hex8(hx[1], after));
    return TS_OK;
}

/* ------------------------------------------------------------ catch-up */

/* Downloads, verifies and loads one manifest's weights into the node's
 * model.  Errors are local (disk, download) or the publisher's (hash). */
static int load_manifest_weights(node *n, uint32_t uid, store *s, const cJSON *m, uint64_t w, ts_err *e) {
    uint64_t bytes;
    const cJSON *wk = cJSON_GetObjectItemCaseSensitive(m, "weights_key");
    const cJSON *wh = cJSON_GetObjectItemCaseSensitive(m, "weights_hash");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(m, "config_hash");
    const cJSON *mhj = cJSON_GetObjectItemCaseSensitive(m, "model_hash");
    uint8_t whash[TS_HASH_BYTES], chash[TS_HASH_BYTES], mhash[TS_HASH_BYTES], got[TS_HASH_BYTES];
    if (node_json_u64(m, "weights_bytes", &bytes) || !cJSON_IsString(wk) || !cJSON_IsString(wh) ||
        ts_unhex(whash, TS_HASH_BYTES, wh->valuestring) || !cJSON_IsString(ch) ||
        ts_unhex(chash, TS_HASH_BYTES, ch->valuestring) || !cJSON_IsString(mhj) ||
        ts_unhex(mhash, TS_HASH_BYTES, mhj->valuestring))
        return ts_fail(e, TS_EFORMAT, "uid %u's manifest of window %llu is malformed", uid, (unsigned long long)w);
    if (memcmp(chash, n->config_hash, TS_HASH_BYTES))
        return ts_fail(e, TS_EFORMAT, "uid %u's checkpoint of window %llu is of another model", uid, (unsigned long long)w);
    char *tmp = ts_path_join(n->opts.state_dir, "download.safetensors");
    if (!tmp) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = store_get_file(s, wk->valuestring, tmp, bytes, e);
    if (rc) ts_wrap(e, "downloading uid %u's checkpoint of window %llu", uid, (unsigned long long)w);
    if (!rc && (rc = ts_hash_file(tmp, got, e)) == TS_OK && memcmp(got, whash, TS_HASH_BYTES))
        rc = ts_fail(e, TS_ESIG, "uid %u's checkpoint of window %llu: weights hash mismatch", uid, (unsigned long long)w);
    if (!rc) node_model_changed(n);
    if (!rc && (rc = model_load(n->m, tmp, e))) ts_wrap(e, "uid %u's checkpoint of window %llu", uid, (unsigned long long)w);
    unlink(tmp);
    free(tmp);
    if (rc) {
        n->have_state = false; /* the model may be half loaded */
        return rc;
    }
    node_model_hash(n, got);
    if (memcmp(got, mhash, TS_HASH_BYTES)) {
        n->have_state = false;
        return ts_fail(e, TS_ESIG, "uid %u's checkpoint of window %llu does not have the model hash its manifest records",
                       uid, (unsigned long long)w);
    }
    return TS_OK;
}

int node_load_checkpoint(node *n, uint64_t min_window, uint64_t before, bool *loaded, ts_err *e) {
    *loaded = false;
    if (before == 0) return ts_fail(e, TS_ENOTFOUND, "no checkpoint can precede window 0");
    node_validators v;
    ts_err ve = {0};
    uint32_t leader;
    if (node_leader(n, &leader, &ve)) return ts_fail(e, ve.code, "%s", ve.msg);
    chain_clock clk;
    if (chain_now(n->ch, &clk, e)) return e->code;
    int vrc = node_validators_of(n, clk.window, &v, &ve);
    if (vrc == TS_ESTATE && clk.window > 0) vrc = node_validators_of(n, clk.window - 1, &v, &ve);
    if (vrc) return ts_fail(e, vrc, "%s", ve.msg);
    int err = TS_OK;
    char errmsg[512] = "";
    bool any = false;
    for (uint32_t i = 0; i < v.n && !*loaded; i++) {
        uint32_t uid = v.uid[i];
        const uint8_t *pk = node_hotkey_of(n, uid);
        store *s;
        ts_err le = {0};
        if (!pk || node_peer_store(n, uid, &s, &le)) continue;
        cJSON *man = NULL;
        uint64_t hw = 0;
        int rc = read_head(s, n->run.run_id, pk, true, &man, &hw, NULL, &le);
        if (rc == TS_ENOTFOUND) continue;
        if (rc) {
            TS_WARN("validator uid %u's checkpoints: %s", uid, le.msg);
            if (!err) {
                err = rc;
                snprintf(errmsg, sizeof errmsg, "validator uid %u's checkpoints: %s", uid, le.msg);
            }
            continue;
        }
        any = true;
        uint64_t seen;
        if (node_seen_get(n, pk, &seen) && hw < seen) {
            TS_ERROR("validator uid %u's newest checkpoint is of window %llu, older than window %llu seen before: refused",
                     uid, (unsigned long long)hw, (unsigned long long)seen);
            cJSON_Delete(man);
            continue;
        }
        node_seen_put(n, pk, hw);
        /* back along the chain to the newest one at or before before - 1 */
        uint64_t w = hw;
        while (man && w + 1 > before) {
            uint64_t pw;
            const cJSON *ph = cJSON_GetObjectItemCaseSensitive(man, "prev_manifest_hash");
            uint8_t want[TS_HASH_BYTES], got[TS_HASH_BYTES];
            cJSON *prev = NULL;
            if (!cJSON_IsString(ph) || ts_unhex(want, TS_HASH_BYTES, ph->valuestring) || node_json_u64(man, "prev_window", &pw) ||
                read_manifest(s, n->run.run_id, pk, pw, &prev, got, &le) != TS_OK || memcmp(got, want, TS_HASH_BYTES)) {
                cJSON_Delete(prev);
                prev = NULL;
            }
            cJSON_Delete(man);
            man = prev;
            w = prev ? pw : 0;
        }
        if (!man || w < min_window) {
            cJSON_Delete(man);
            continue;
        }
        rc = load_manifest_weights(n, uid, s, man, w, &le);
        cJSON_Delete(man);
        if (rc) {
            TS_WARN("%s", le.msg);
            if (!err || rc != TS_ESIG) {
                err = rc;
                snprintf(errmsg, sizeof errmsg, "%s", le.msg);
            }
            continue;
        }
        /* on the reference chain, where the reference is still published */
        node_ref ref;
        uint8_t h[TS_HASH_BYTES];
        node_model_hash(n, h);
        if (node_reference(n, w, &ref, NULL, NULL, &le) == TS_OK && memcmp(ref.model, h, TS_HASH_BYTES)) {
            TS_ERROR("validator uid %u's checkpoint of window %llu is not the model the reference bundle (uid %u) records: "
                     "refused", uid, (unsigned long long)w, ref.uid);
            n->have_state = false;
            continue;
        }
        n->next_window = w + 1;
        n->have_state = true;
        node_hist_record(n, w, true);
        node_ef_zero(n);
        *loaded = true;
        TS_INFO("loaded validator uid %u's checkpoint of window %llu (signature, weights and model hash verified)", uid,
                (unsigned long long)w);
    }
    if (*loaded) return TS_OK;
    if (err) return ts_fail(e, err, "%s", errmsg);
    return ts_fail(e, TS_ENOTFOUND, any ? "no validator holds a checkpoint of a window in [%llu, %llu]"
                                        : "no validator has published a checkpoint (%llu, %llu)",
                   (unsigned long long)min_window, (unsigned long long)(before - 1));
}

int node_catch_up(node *n, uint64_t window, ts_err *e) {
    if (n->have_state && n->next_window == window) return TS_OK;
    uint64_t start;
    ts_err se = {0};
    int src = node_start_window(n, &start, &se);
    if (src) return ts_fail(e, src, "%s", se.msg);
    if (!n->have_state || n->next_window > window) {
        bool loaded = false;
        ts_err ce = {0};
        int rc = node_load_checkpoint(n, 0, window, &loaded, &ce);
        if (rc == TS_ENOTFOUND) {
            /* no checkpoint at or before window - 1 anywhere: the run's
             * initialisation, replayed from the start window (every bundle's
             * base hash checked, so a wrong start cannot go unnoticed) */
            if (node_init_model(n, e)) return e->code;
            n->next_window = start < window ? start : window;
            n->have_state = true;
            n->nhist = 0;
            node_ef_zero(n);
            TS_INFO("no checkpoint before window %llu: starting from the run's initial model at window %llu",
                    (unsigned long long)window, (unsigned long long)n->next_window);
        } else if (rc) {
            return ts_fail(e, rc, "loading a checkpoint (retrying; never the initial model instead): %s", ce.msg);
        }
    }
    while (n->next_window < window) {
        uint64_t w = n->next_window;
        if (n->stop) return ts_fail(e, TS_ESTATE, "stopping");
        if (w < start) {
            n->next_window = w + 1; /* before the run: the initial model */
            continue;
        }
        node_ref ref;
        uint8_t *buf = NULL;
        size_t len = 0;
        ts_err re = {0};
        int rc = node_reference(n, w, &ref, &buf, &len, &re);
        if (rc == TS_OK) {
            rc = bundle_apply(n, n->codec, n->m, &n->run, n->config_hash, w, node_hotkey_of(n, ref.uid), buf, len, &re);
            free(buf);
            if (rc == TS_OK) {
                n->next_window = w + 1;
                node_hist_record(n, w, true);
                TS_INFO("caught up window %llu from validator uid %u's bundle (model hash verified)",
                        (unsigned long long)w, ref.uid);
                continue;
            }
            if (rc != TS_ESIG) return ts_fail(e, rc, "%s", re.msg);
            /* this model is not the one the network holds at w */
            TS_ERROR("window %llu: %s; loading a checkpoint past it", (unsigned long long)w, re.msg);
            n->have_state = false;
            bool loaded = false;
            rc = node_load_checkpoint(n, w, window, &loaded, &re);
            if (rc) return ts_fail(e, rc == TS_ENOTFOUND ? TS_ENOTFOUND : rc,
                                   "window %llu cannot be replayed onto this model and %s; waiting", (unsigned long long)w,
                                   re.msg);
            continue;
        }
        if (rc != TS_ENOTFOUND) return ts_fail(e, rc, "catching up window %llu: %s", (unsigned long long)w, re.msg);
        /* no validator published a bundle of w: gather it while its uploads
         * are certainly still stored (checked later against the reference),
         * else never guess */
        chain_clock clk;
        if (chain_now(n->ch, &clk, e)) return e->code;
        /* miners delete the uploads of windows older than retention_windows;
         * one window of margin */
        bool fresh = w + (uint64_t)n->run.retention_windows >= clk.window + 2;
        if (!fresh) {
            TS_WARN("window %llu cannot be reproduced exactly: no validator published its bundle and its uploads are past "
                    "retention; loading the newest checkpoint past it",
                    (unsigned long long)w);
            bool loaded = false;
            n->have_state = false;
            rc = node_load_checkpoint(n, w, window, &loaded, &re);
            if (rc) return ts_fail(e, rc, "window %llu cannot be reproduced and %s; waiting", (unsigned long long)w, re.msg);
            continue;
        }
        node_peers peers;
        int prc = node_peers_for(n, w, &peers, &re);
        if (prc && prc != TS_ENOTFOUND) return ts_fail(e, prc, "catching up window %llu: %s", (unsigned long long)w, re.msg);
        node_gather g = {0};
        if (prc == TS_OK && node_gather_window(n, w, &peers, &g, e)) return e->code;
        rc = node_outer_step(n, w, &g, NULL, e);
        node_gather_clear(&g);
        if (rc) return rc;
        TS_INFO("caught up window %llu by gathering it (%s; to be checked against the reference)", (unsigned long long)w,
                prc == TS_OK ? "its peer list" : "no peer list: a null round");
    }
    if (n->forked) {
        char hex[17];
        uint8_t h[TS_HASH_BYTES];
        node_model_hash(n, h);
        ts_hex(hex, h, 8);
        TS_INFO("resynchronised: model at window %llu is %s..., on the reference chain again", (unsigned long long)window,
                hex);
        n->forked = false;
    }
    return TS_OK;
}

/* ------------------------------------------------------------ replay */

int node_replay_checkpoints(store *s, const node_run *run, const uint8_t *pk, uint64_t from, uint64_t to, void *fpv,
                            ts_err *e) {
    FILE *fp = fpv;
    if (to == UINT64_MAX) {
        bool any = false;
        if (newest_manifest(s, &to, &any, e)) return e->code;
        if (!any) return ts_fail(e, TS_ENOTFOUND, "replay: the store holds no checkpoint");
    }
    if (from == UINT64_MAX) {
        cJSON *m = NULL;
        uint8_t h[TS_HASH_BYTES];
        if (read_manifest(s, run->run_id, pk, to, &m, h, e)) return e->code;
        int bad = node_json_u64(m, "prev_window", &from);
        cJSON_Delete(m);
        if (bad) return ts_fail(e, TS_ENOTFOUND, "replay: the checkpoint of window %llu is the first of its chain", (unsigned long long)to);
    }
    if (to <= from) return ts_fail(e, TS_EINVAL, "replay: the later checkpoint (%llu) must follow the earlier (%llu)",
                                   (unsigned long long)to, (unsigned long long)from);
    uint8_t cfg_hash[TS_HASH_BYTES];
    model_config_hash(&run->model, cfg_hash);
    model *m = NULL, *m2 = NULL;
    spl_ctx *c = NULL;
    cJSON *ma = NULL, *mb = NULL;
    uint8_t h[TS_HASH_BYTES];
    char tmpl[] = "/tmp/tessera-replay-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return ts_fail(e, TS_EIO, "temporary file: %s", strerror(errno));
    close(fd);
    model_options mo = {.max_batch = 1, .max_seq = 1, .eval_only = true};
    int rc = model_create_opts(&run->model, kn_cpu(), &mo, &m, e);
    int np = 0;
    ts_tensor *params = rc ? NULL : (ts_tensor *)model_params(m, &np);
    if (!rc) rc = spl_ctx_new(&run->codec, params, np, &c, e);
    if (!rc) rc = read_manifest(s, run->run_id, pk, from, &ma, h, e);
    if (!rc) rc = read_manifest(s, run->run_id, pk, to, &mb, h, e);
    const uint8_t *signer = pk;
    uint8_t spk[TS_PK_BYTES];
    if (!rc && !signer) {
        const cJSON *sj = cJSON_GetObjectItemCaseSensitive(ma, "signer");
        if (cJSON_IsString(sj) && !ts_unhex(spk, TS_PK_BYTES, sj->valuestring)) signer = spk;
        else rc = ts_fail(e, TS_EFORMAT, "manifest of window %llu has no signer", (unsigned long long)from);
    }
    for (int k = 0; !rc && k < 2; k++) {
        const cJSON *man = k ? mb : ma;
        uint64_t w = k ? to : from;
        const cJSON *wk = cJSON_GetObjectItemCaseSensitive(man, "weights_key");
        const cJSON *wh = cJSON_GetObjectItemCaseSensitive(man, "weights_hash");
        const cJSON *mh = cJSON_GetObjectItemCaseSensitive(man, "model_hash");
        uint8_t whash[TS_HASH_BYTES], mhash[TS_HASH_BYTES], got[TS_HASH_BYTES];
        uint64_t bytes;
        if (!cJSON_IsString(wk) || !cJSON_IsString(wh) || ts_unhex(whash, TS_HASH_BYTES, wh->valuestring) ||
            !cJSON_IsString(mh) || ts_unhex(mhash, TS_HASH_BYTES, mh->valuestring) ||
            node_json_u64(man, "weights_bytes", &bytes)) {
            rc = ts_fail(e, TS_EFORMAT, "manifest of window %llu is missing fields", (unsigned long long)w);
            break;
        }
        if ((rc = store_get_file(s, wk->valuestring, tmpl, bytes, e))) break;
        if ((rc = ts_hash_file(tmpl, got, e))) break;
        if (memcmp(got, whash, TS_HASH_BYTES)) {
            rc = ts_fail(e, TS_ESIG, "checkpoint of window %llu: weights hash mismatch", (unsigned long long)w);
            break;
        }
        if (k == 0) {
            if ((rc = model_load(m, tmpl, e))) break;
            params_hash(m, got);
            if (memcmp(got, mhash, TS_HASH_BYTES)) {
                rc = ts_fail(e, TS_ESIG, "checkpoint of window %llu: weights do not have its model hash", (unsigned long long)w);
                break;
            }
            if (fp) fprintf(fp, "replay      from the checkpoint of window %llu\n", (unsigned long long)w);
            for (uint64_t x = from + 1; !rc && x <= to; x++) {
                char key[STORE_LAYOUT_KEY_MAX];
                store_key_aggregate(key, x);
                uint8_t *buf;
                size_t len;
                size_t max = NODE_MAX_PEERS * (spl_ctx_wire_max(c) + 64) + 4096;
                if ((rc = store_get(s, key, max, &buf, &len, e))) {
                    ts_wrap(e, "the bundle of window %llu", (unsigned long long)x);
                    break;
                }
                rc = bundle_apply(NULL, c, m, run, cfg_hash, x, signer, buf, len, e);
                free(buf);
                if (!rc && fp) fprintf(fp, "replay      window %llu: bundle applied, model hash as recorded\n", (unsigned long long)x);
            }
        } else {
            params_hash(m, got);
            if (memcmp(got, mhash, TS_HASH_BYTES)) {
                char a[17], b[17];
                ts_hex(a, got, 8);
                ts_hex(b, mhash, 8);
                rc = ts_fail(e, TS_ESIG,
                             "the checkpoint of window %llu records model %s..., but replaying the bundles since window %llu "
                             "gives %s...: it is not what they produce",
                             (unsigned long long)to, b, (unsigned long long)from, a);
                break;
            }
            /* and its weights are that model, bit for bit */
            if ((rc = model_create_opts(&run->model, kn_cpu(), &mo, &m2, e)) || (rc = model_load(m2, tmpl, e))) break;
            size_t c1, c2;
            const float *p1 = model_param_data(m, &c1), *p2 = model_param_data(m2, &c2);
            if (c1 != c2 || memcmp(p1, p2, c1 * sizeof(float))) {
                rc = ts_fail(e, TS_ESIG, "the checkpoint of window %llu's weights differ from the replayed model",
                             (unsigned long long)to);
                break;
            }
            if (fp) fprintf(fp, "replay      the checkpoint of window %llu is exactly what the bundles produce\n", (unsigned long long)to);
        }
    }
    unlink(tmpl);
    cJSON_Delete(ma);
    cJSON_Delete(mb);
    spl_ctx_free(c);
    model_free(m);
    model_free(m2);
    return rc;
}
