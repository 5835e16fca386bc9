/* run.c - the run parameters every node of a subnet must agree on.
 *
 * They live in the chain's genesis ("params"), so a node reads them from the
 * chain and not from its own configuration: a miner cannot pick a different
 * sequence length or codec by accident.  Paths to data may be overridden
 * locally (the same shards can sit in different places). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "node.h"

void node_run_default(node_run *r, const char *run_id) {
    memset(r, 0, sizeof *r);
    snprintf(r->run_id, sizeof r->run_id, "%s", run_id ? run_id : "tessera");
    snprintf(r->model_name, sizeof r->model_name, "small");
    model_preset("small", 0, &r->model, NULL);
    r->seed = 1;
    r->seq_len = 256;
    r->batch_size = 8;
    r->inner_steps = 30;
    model_adamw_defaults(&r->adamw);
    r->warmup_steps = 100;
    r->total_steps = 20000;
    spl_params_default(&r->codec);
    r->val_samples = 32;
    r->upload_grace_s = 70;
    r->upload_delay_s = 1;
    r->gather_delay_s = 2;
    r->warmup_windows = 0;
    r->retention_windows = 24;
    r->checkpoint_interval = 10;
    r->leader_liveness_windows = 3;
    r->sync_values = 256;
    gauntlet_params_default(&r->gauntlet);
}

/* Options of the flat part of the run parameters. */
typedef struct {
    char *data, *val_data, *init, *init_hash, *data_hash, *val_data_hash;
    int64_t seed, seq_len, batch_size, inner_steps, warmup_steps, total_steps, val_samples;
    int64_t warmup_windows, retention_windows, checkpoint_interval, sync_values, leader_liveness_windows;
    int64_t k, bins, chunk;
    double lr, beta1, beta2, eps, weight_decay, clip;
    double ef_beta, alpha, range;
    double grace, delay, gather_delay;
} flat;

#define RUN_OPTS(f)                                                                          \
    {                                                                                        \
        {"data", TS_OPT_STR, &(f).data, NULL, "training shards", 0, 0},                      \
        {"val_data", TS_OPT_STR, &(f).val_data, NULL, "held-out shards", 0, 0},              \
        {"init", TS_OPT_STR, &(f).init, NULL, "initial weights", 0, 0},                      \
        {"init_hash", TS_OPT_STR, &(f).init_hash, NULL, "their BLAKE2b-256", 0, 0},          \
        {"data_hash", TS_OPT_STR, &(f).data_hash, NULL, "the training data's dataset hash", 0, 0}, \
        {"val_data_hash", TS_OPT_STR, &(f).val_data_hash, NULL, "the held-out data's", 0, 0}, \
        {"seed", TS_OPT_INT, &(f).seed, NULL, "model init seed", 0, 0},                      \
        {"seq_len", TS_OPT_INT, &(f).seq_len, NULL, "sequence length", 0, 0},                \
        {"batch_size", TS_OPT_INT, &(f).batch_size, NULL, "rows per inner step", 0, 0},      \
        {"inner_steps", TS_OPT_INT, &(f).inner_steps, NULL, "inner steps per window", 0, 0}, \
        {"optimizer.lr", TS_OPT_F64, &(f).lr, NULL, "", 0, 0},                               \
        {"optimizer.beta1", TS_OPT_F64, &(f).beta1, NULL, "", 0, 0},                         \
        {"optimizer.beta2", TS_OPT_F64, &(f).beta2, NULL, "", 0, 0},                         \
        {"optimizer.eps", TS_OPT_F64, &(f).eps, NULL, "", 0, 0},                             \
        {"optimizer.weight_decay", TS_OPT_F64, &(f).weight_decay, NULL, "", 0, 0},           \
        {"optimizer.clip", TS_OPT_F64, &(f).clip, NULL, "", 0, 0},                           \
        {"optimizer.warmup_steps", TS_OPT_INT, &(f).warmup_steps, NULL, "", 0, 0},           \
        {"optimizer.total_steps", TS_OPT_INT, &(f).total_steps, NULL, "", 0, 0},             \
        {"codec.k", TS_OPT_INT, &(f).k, NULL, "", 0, 0},                                     \
        {"codec.bins", TS_OPT_INT, &(f).bins, NULL, "", 0, 0},                               \
        {"codec.chunk", TS_OPT_INT, &(f).chunk, NULL, "", 0, 0},                             \
        {"codec.beta", TS_OPT_F64, &(f).ef_beta, NULL, "", 0, 0},                            \
        {"codec.alpha", TS_OPT_F64, &(f).alpha, NULL, "", 0, 0},                             \
        {"codec.range", TS_OPT_F64, &(f).range, NULL, "", 0, 0},                             \
        {"upload_grace_s", TS_OPT_F64, &(f).grace, NULL, "", 0, 0},                          \
        {"upload_delay_s", TS_OPT_F64, &(f).delay, NULL, "", 0, 0},                          \
        {"gather_delay_s", TS_OPT_F64, &(f).gather_delay, NULL, "", 0, 0},                   \
        {"val_samples", TS_OPT_INT, &(f).val_samples, NULL, "", 0, 0},                       \
        {"warmup_windows", TS_OPT_INT, &(f).warmup_windows, NULL, "", 0, 0},                 \
        {"retention_windows", TS_OPT_INT, &(f).retention_windows, NULL, "", 0, 0},           \
        {"checkpoint_interval", TS_OPT_INT, &(f).checkpoint_interval, NULL, "", 0, 0},       \
        {"sync_values", TS_OPT_INT, &(f).sync_values, NULL, "", 0, 0},                       \
        {"leader_liveness_windows", TS_OPT_INT, &(f).leader_liveness_windows, NULL, "", 0, 0}, \
    }

static void to_flat(const node_run *r, flat *f) {
    f->data = strdup(r->data);
    f->val_data = strdup(r->val_data);
    f->init = r->init[0] ? strdup(r->init) : NULL;
    char h[2 * TS_HASH_BYTES + 1];
    ts_hex(h, r->init_hash, TS_HASH_BYTES);
    f->init_hash = r->init[0] ? strdup(h) : NULL; /* a hash must come with its path */
    ts_hex(h, r->data_hash, TS_HASH_BYTES);
    f->data_hash = r->has_data_hash ? strdup(h) : NULL;
    ts_hex(h, r->val_data_hash, TS_HASH_BYTES);
    f->val_data_hash = r->has_val_data_hash ? strdup(h) : NULL;
    f->seed = (int64_t)r->seed;
    f->seq_len = r->seq_len;
    f->batch_size = r->batch_size;
    f->inner_steps = r->inner_steps;
    f->warmup_steps = r->warmup_steps;
    f->total_steps = r->total_steps;
    f->val_samples = r->val_samples;
    f->warmup_windows = r->warmup_windows;
    f->retention_windows = r->retention_windows;
    f->checkpoint_interval = r->checkpoint_interval;
    f->sync_values = r->sync_values;
    f->leader_liveness_windows = r->leader_liveness_windows;
    f->k = r->codec.k;
    f->bins = r->codec.bins;
    f->chunk = r->codec.chunk;
    f->lr = r->adamw.lr;
    f->beta1 = r->adamw.beta1;
    f->beta2 = r->adamw.beta2;
    f->eps = r->adamw.eps;
    f->weight_decay = r->adamw.weight_decay;
    f->clip = r->adamw.clip;
    f->ef_beta = r->codec.beta;
    f->alpha = r->codec.alpha;
    f->range = r->codec.range;
    f->grace = r->upload_grace_s;
    f->delay = r->upload_delay_s;
    f->gather_delay = r->gather_delay_s;
}

static int check_range(const char *key, double v, double lo, double hi, ts_err *e) {
    if (!(v >= lo && v <= hi))
        return ts_fail(e, TS_ECONFIG, "run parameter '%s' = %g is outside [%g, %g]", key, v, lo, hi);
    return TS_OK;
}

int node_run_from_json(node_run *r, const char *run_id, const cJSON *params, ts_err *e) {
    node_run_default(r, run_id);
    if (!params) return TS_OK;
    if (!cJSON_IsObject(params)) return ts_fail(e, TS_ECONFIG, "run parameters must be a JSON object");
    cJSON *copy = cJSON_Duplicate(params, 1);
    if (!copy) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = TS_OK;
    /* "model": a preset name, or {"preset": name, "vocab_size": n}, or a
     * Hugging Face LlamaConfig object */
    cJSON *m = cJSON_DetachItemFromObjectCaseSensitive(copy, "model");
    if (m) {
        if (cJSON_IsString(m)) {
            rc = model_preset(m->valuestring, 0, &r->model, e);
            snprintf(r->model_name, sizeof r->model_name, "%s", m->valuestring);
        } else if (cJSON_IsObject(m) && cJSON_GetObjectItemCaseSensitive(m, "preset")) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "preset");
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "vocab_size");
            if (!cJSON_IsString(p) || (v && !cJSON_IsNumber(v)) || cJSON_GetArraySize(m) > (v ? 2 : 1)) {
                rc = ts_fail(e, TS_ECONFIG, "run parameter 'model': expected {\"preset\": NAME[, \"vocab_size\": N]}");
            } else {
                rc = model_preset(p->valuestring, v ? (int)v->valuedouble : 0, &r->model, e);
                snprintf(r->model_name, sizeof r->model_name, "%s", p->valuestring);
            }
        } else if (cJSON_IsObject(m)) {
            char *txt = cJSON_PrintUnformatted(m);
            rc = txt ? model_config_parse(txt, strlen(txt), &r->model, e) : ts_fail(e, TS_ENOMEM, "out of memory");
            free(txt);
            snprintf(r->model_name, sizeof r->model_name, "custom");
        } else {
            rc = ts_fail(e, TS_ECONFIG, "run parameter 'model': expected a preset name or a config object");
        }
        cJSON_Delete(m);
        if (rc) {
            cJSON_Delete(copy);
            return ts_wrap(e, "run parameter 'model'");
        }
    }
    cJSON *g = cJSON_DetachItemFromObjectCaseSensitive(copy, "gauntlet");
    if (g) {
        rc = gauntlet_params_from_json(&r->gauntlet, g, e);
        cJSON_Delete(g);
        if (rc) {
            cJSON_Delete(copy);
            return ts_wrap(e, "run parameter 'gauntlet'");
        }
    }
    flat f;
    to_flat(r, &f);
    ts_opt opts[] = RUN_OPTS(f);
    int nopts = (int)(sizeof opts / sizeof opts[0]);
    /* ts_opts_apply_json frees and replaces string values it sets */
    rc = ts_opts_apply_json(opts, nopts, copy, e);
    cJSON_Delete(copy);
    if (rc) {
        ts_opts_free(opts, nopts);
        return ts_wrap(e, "run parameters");
    }
    snprintf(r->data, sizeof r->data, "%s", f.data ? f.data : "");
    snprintf(r->val_data, sizeof r->val_data, "%s", f.val_data ? f.val_data : "");
    snprintf(r->init, sizeof r->init, "%s", f.init ? f.init : "");
    int bad_hash = r->init[0] && (!f.init_hash || ts_unhex(r->init_hash, TS_HASH_BYTES, f.init_hash));
    r->has_data_hash = f.data_hash != NULL;
    r->has_val_data_hash = f.val_data_hash != NULL;
    int bad_data = (f.data_hash && (strlen(f.data_hash) != 2 * TS_HASH_BYTES ||
                                    ts_unhex(r->data_hash, TS_HASH_BYTES, f.data_hash))) ? 1
                   : (f.val_data_hash && (strlen(f.val_data_hash) != 2 * TS_HASH_BYTES ||
                                          ts_unhex(r->val_data_hash, TS_HASH_BYTES, f.val_data_hash))) ? 2 : 0;
    ts_opts_free(opts, nopts);
    if (bad_hash)
        return ts_fail(e, TS_ECONFIG, "run parameter 'init_hash': the BLAKE2b-256 of 'init' (64 hex digits) is required");
    if (bad_data)
        return ts_fail(e, TS_ECONFIG, "run parameter '%s': a dataset hash is 64 hex digits (tessera data hash PATH)",
                       bad_data == 1 ? "data_hash" : "val_data_hash");
    r->seed = (uint64_t)f.seed;
    r->seq_len = (int)f.seq_len;
    r->batch_size = (int)f.batch_size;
    r->inner_steps = (int)f.inner_steps;
    r->warmup_steps = f.warmup_steps;
    r->total_steps = f.total_steps;
    r->val_samples = (int)f.val_samples;
    r->warmup_windows = f.warmup_windows;
    r->retention_windows = f.retention_windows;
    r->checkpoint_interval = f.checkpoint_interval;
    r->sync_values = f.sync_values;
    r->leader_liveness_windows = f.leader_liveness_windows;
    r->codec.k = (int)f.k;
    r->codec.bins = (int)f.bins;
    r->codec.chunk = (int)f.chunk;
    r->codec.beta = (float)f.ef_beta;
    r->codec.alpha = (float)f.alpha;
    r->codec.range = (float)f.range;
    r->adamw.lr = f.lr;
    r->adamw.beta1 = f.beta1;
    r->adamw.beta2 = f.beta2;
    r->adamw.eps = f.eps;
    r->adamw.weight_decay = f.weight_decay;
    r->adamw.clip = f.clip;
    r->upload_grace_s = f.grace;
    r->upload_delay_s = f.delay;
    r->gather_delay_s = f.gather_delay;
    if ((rc = check_range("seq_len", (double)f.seq_len, 1, r->model.max_position_embeddings, e)) ||
        (rc = check_range("batch_size", (double)f.batch_size, 1, 4096, e)) ||
        (rc = check_range("inner_steps", (double)f.inner_steps, 1, 100000, e)) ||
        (rc = check_range("optimizer.lr", f.lr, 0, 10, e)) ||
        (rc = check_range("optimizer.warmup_steps", (double)f.warmup_steps, 0, 1e12, e)) ||
        (rc = check_range("optimizer.total_steps", (double)f.total_steps, 1, 1e12, e)) ||
        (rc = check_range("val_samples", (double)f.val_samples, 0, 100000, e)) ||
        (rc = check_range("upload_grace_s", f.grace, 0.1, 86400, e)) ||
        (rc = check_range("upload_delay_s", f.delay, 0, f.grace, e)) ||
        (rc = check_range("gather_delay_s", f.gather_delay, 0, 3600, e)) ||
        (rc = check_range("warmup_windows", (double)f.warmup_windows, 0, 1e9, e)) ||
        (rc = check_range("retention_windows", (double)f.retention_windows, 2, 1e9, e)) ||
        (rc = check_range("checkpoint_interval", (double)f.checkpoint_interval, 1, 1e9, e)) ||
        (rc = check_range("sync_values", (double)f.sync_values, 1, NODE_SYNC_MAX, e)) ||
        (rc = check_range("leader_liveness_windows", (double)f.leader_liveness_windows, 0, 1e6, e)))
        return rc;
    /* Every per-window object (uploads, sync records, bundles) is kept
     * retention_windows windows.  A node replays from the newest checkpoint
     * (at most checkpoint_interval windows old) or, when that one is
     * refused, from the one before it: the bundles since that one must
     * still be there. */
    if (f.retention_windows < 2 * f.checkpoint_interval + 1)
        return ts_fail(e, TS_EINVAL,
                       "run parameter 'retention_windows' (%lld) must be at least 2 x checkpoint_interval + 1 (%lld): "
                       "a node catching up replays the bundles since one of the last two checkpoints",
                       (long long)f.retention_windows, (long long)(2 * f.checkpoint_interval + 1));
    if (spl_params_check(&r->codec, e)) return ts_wrap(e, "run parameter 'codec'");
    const gauntlet_params *gpar = &r->gauntlet;
    if ((rc = check_range("gauntlet.uids_per_window", (double)gpar->uids_per_window, 1, NODE_MAX_EVAL, e)) ||
        (rc = check_range("gauntlet.eval_samples", (double)gpar->eval_samples, 1, NODE_MAX_EVAL_SAMPLES, e)) ||
        (rc = check_range("gauntlet.gather_peers", (double)gpar->gather_peers, 1, NODE_MAX_PEERS, e)) ||
        (rc = check_range("gauntlet.reserve_peers", (double)gpar->reserve_peers, 0, NODE_MAX_PEERS, e)))
        return rc;
    return TS_OK;
}

char *node_run_to_json(const node_run *r) {
    cJSON *o = cJSON_CreateObject();
    if (!strcmp(r->model_name, "custom")) {
        char *cfg = model_config_to_json(&r->model);
        cJSON *c = cfg ? cJSON_Parse(cfg) : NULL;
        free(cfg);
        cJSON_AddItemToObject(o, "model", c ? c : cJSON_CreateNull());
    } else {
        cJSON *m = cJSON_AddObjectToObject(o, "model");
        cJSON_AddStringToObject(m, "preset", r->model_name);
        cJSON_AddNumberToObject(m, "vocab_size", r->model.vocab_size);
    }
    cJSON_AddNumberToObject(o, "seed", (double)r->seed);
    cJSON_AddStringToObject(o, "data", r->data);
    cJSON_AddStringToObject(o, "val_data", r->val_data);
    if (r->has_data_hash || r->has_val_data_hash) {
        char h[2 * TS_HASH_BYTES + 1];
        if (r->has_data_hash) {
            ts_hex(h, r->data_hash, TS_HASH_BYTES);
            cJSON_AddStringToObject(o, "data_hash", h);
        }
        if (r->has_val_data_hash) {
            ts_hex(h, r->val_data_hash, TS_HASH_BYTES);
            cJSON_AddStringToObject(o, "val_data_hash", h);
        }
    }
    if (r->init[0]) {
        char h[2 * TS_HASH_BYTES + 1];
        ts_hex(h, r->init_hash, TS_HASH_BYTES);
        cJSON_AddStringToObject(o, "init", r->init);
        cJSON_AddStringToObject(o, "init_hash", h);
    }
    cJSON_AddNumberToObject(o, "seq_len", r->seq_len);
    cJSON_AddNumberToObject(o, "batch_size", r->batch_size);
    cJSON_AddNumberToObject(o, "inner_steps", r->inner_steps);
    cJSON *opt = cJSON_AddObjectToObject(o, "optimizer");
    cJSON_AddNumberToObject(opt, "lr", r->adamw.lr);
    cJSON_AddNumberToObject(opt, "beta1", r->adamw.beta1);
    cJSON_AddNumberToObject(opt, "beta2", r->adamw.beta2);
    cJSON_AddNumberToObject(opt, "eps", r->adamw.eps);
    cJSON_AddNumberToObject(opt, "weight_decay", r->adamw.weight_decay);
    cJSON_AddNumberToObject(opt, "clip", r->adamw.clip);
    cJSON_AddNumberToObject(opt, "warmup_steps", (double)r->warmup_steps);
    cJSON_AddNumberToObject(opt, "total_steps", (double)r->total_steps);
    cJSON *c = cJSON_AddObjectToObject(o, "codec");
    cJSON_AddNumberToObject(c, "k", r->codec.k);
    cJSON_AddNumberToObject(c, "bins", r->codec.bins);
    cJSON_AddNumberToObject(c, "chunk", r->codec.chunk);
    cJSON_AddNumberToObject(c, "beta", r->codec.beta);
    cJSON_AddNumberToObject(c, "alpha", r->codec.alpha);
    cJSON_AddNumberToObject(c, "range", r->codec.range);
    cJSON_AddNumberToObject(o, "upload_grace_s", r->upload_grace_s);
    cJSON_AddNumberToObject(o, "upload_delay_s", r->upload_delay_s);
    cJSON_AddNumberToObject(o, "gather_delay_s", r->gather_delay_s);
    cJSON_AddNumberToObject(o, "val_samples", r->val_samples);
    cJSON_AddNumberToObject(o, "warmup_windows", (double)r->warmup_windows);
    cJSON_AddNumberToObject(o, "retention_windows", (double)r->retention_windows);
    cJSON_AddNumberToObject(o, "checkpoint_interval", (double)r->checkpoint_interval);
    cJSON_AddNumberToObject(o, "sync_values", (double)r->sync_values);
    cJSON_AddNumberToObject(o, "leader_liveness_windows", (double)r->leader_liveness_windows);
    char *g = gauntlet_params_to_json(&r->gauntlet);
    cJSON *gj = g ? cJSON_Parse(g) : NULL;
    free(g);
    if (gj) cJSON_AddItemToObject(o, "gauntlet", gj);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}
