/* lab.c - the training-quality lab (lab.h).
 *
 * One model object does all the training: a miner's round loads the global
 * model into it and swaps that miner's AdamW moments in, trains, and swaps
 * them out again, so N miners cost N optimizer states, not N models.
 *
 * The dense check (dense_check, sparseloco): with x_i what miner i
 * compressed (fl(fl(beta * ef) + fl(alpha * delta)), the codec's formula) and
 * f_i the clip factor the aggregation gave it (min(1, thr / (norm + 1e-8))),
 * every coordinate c of the aggregate g must satisfy
 *     |g_c - ref_c| <= bound_c,   ref_c = sum_i f_i x_ic / n_c,
 *     bound_c = sum_i f_i s_i(code_ic) / n_c + 1e-5 sum_i f_i |x_ic| / n_c,
 * the sums over the n_c miners that selected c, s_i(b) the spread (largest
 * minus smallest centred value) of the values miner i's quantizer put in
 * bin b of that tensor: the quantizer reconstructs each value as the mean of
 * its bin, so it is never further than the spread from it (inside the
 * quantizer's range a bin is at most range * std / bins wide; the two end
 * bins also hold what lies beyond it).  The second term covers fp32
 * rounding.  With k equal to the whole tile every miner selects every
 * coordinate and ref is the dense (clipped) mean. */
#include "lab/lab.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

const char *lab_method_name(lab_method m) {
    switch (m) {
    case LAB_SPARSELOCO: return "sparseloco";
    case LAB_DILOCO: return "diloco";
    case LAB_DDP: return "ddp";
    case LAB_SINGLE: return "single";
    }
    return "?";
}

int lab_method_parse(const char *s, lab_method *m, ts_err *e) {
    for (int i = LAB_SPARSELOCO; i <= LAB_SINGLE; i++)
        if (s && !strcmp(s, lab_method_name((lab_method)i))) {
            *m = (lab_method)i;
            return TS_OK;
        }
    return ts_fail(e, TS_EINVAL, "method '%s': one of sparseloco, diloco, ddp, single", s ? s : "");
}

void lab_config_default(lab_config *c) {
    memset(c, 0, sizeof *c);
    c->method = LAB_SPARSELOCO;
    model_preset("tiny", 0, &c->model, NULL);
    c->miners = 4;
    c->inner_steps = 4;
    c->batch = 4;
    c->seq = 64;
    c->rounds = 3;
    c->seed = 1;
    model_adamw_defaults(&c->adamw);
    c->adamw.lr = 1e-3;
    c->warmup_frac = 0.05;
    spl_params_default(&c->codec);
    c->diloco_lr = 0.7;
    c->diloco_momentum = 0.9;
    c->val_samples = 16;
    c->probe_samples = 8;
}

static int frac_count(double f, int n) { return (int)floor(f * n + 0.5); }

int lab_config_check(const lab_config *c, ts_err *e) {
    for (const char *p = c->label; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._=,+-:/()", *p))
            return ts_fail(e, TS_EINVAL, "label '%s': letters, digits, spaces and ._=,+-:/() only", c->label);
    if (model_config_validate(&c->model, e)) return ts_wrap(e, "model");
    if (spl_params_check(&c->codec, e)) return ts_wrap(e, "codec");
    if (!c->data || !*c->data) return ts_fail(e, TS_EINVAL, "data: no training shards named");
    if (!c->val_data || !*c->val_data) return ts_fail(e, TS_EINVAL, "val_data: no held-out shards named");
    if (c->miners < 1 || c->miners > LAB_MAX_MINERS)
        return ts_fail(e, TS_EINVAL, "miners: %d is outside [1, %d]", c->miners, LAB_MAX_MINERS);
    if (c->inner_steps < 1 || c->inner_steps > 100000)
        return ts_fail(e, TS_EINVAL, "inner_steps: %d is outside [1, 100000]", c->inner_steps);
    if (c->batch < 1 || c->batch > 4096) return ts_fail(e, TS_EINVAL, "batch: %d is outside [1, 4096]", c->batch);
    if (c->seq < 1 || c->seq > c->model.max_position_embeddings)
        return ts_fail(e, TS_EINVAL, "seq: %d is outside [1, %d] (the model's positions)", c->seq,
                       c->model.max_position_embeddings);
    if (c->rounds < 1 || c->rounds > 1000000) return ts_fail(e, TS_EINVAL, "rounds: %d is outside [1, 1000000]", c->rounds);
    if (!(c->adamw.lr > 0 && isfinite(c->adamw.lr))) return ts_fail(e, TS_EINVAL, "lr: %g is not positive", c->adamw.lr);
    if (!(c->warmup_frac >= 0 && c->warmup_frac <= 1))
        return ts_fail(e, TS_EINVAL, "warmup_frac: %g is outside [0, 1]", c->warmup_frac);
    if (c->top_g < 0 || c->top_g > c->miners)
        return ts_fail(e, TS_EINVAL, "top_g: %d is outside [0, miners = %d]", c->top_g, c->miners);
    if (!(c->diloco_lr > 0 && isfinite(c->diloco_lr))) return ts_fail(e, TS_EINVAL, "diloco_lr: %g is not positive", c->diloco_lr);
    if (!(c->diloco_momentum >= 0 && c->diloco_momentum < 1))
        return ts_fail(e, TS_EINVAL, "diloco_momentum: %g is outside [0, 1)", c->diloco_momentum);
    if (c->val_samples < 1 || c->val_samples > 1000000)
        return ts_fail(e, TS_EINVAL, "val_samples: %d is outside [1, 1000000]", c->val_samples);
    bool probe = c->spike_guard > 0 || (c->method == LAB_SPARSELOCO && c->top_g > 0);
    if (c->probe_samples < (probe ? 1 : 0) || c->probe_samples > 1000000)
        return ts_fail(e, TS_EINVAL, "probe_samples: %d is outside [%d, 1000000]", c->probe_samples, probe ? 1 : 0);
    if (!(c->spike_guard >= 0 && isfinite(c->spike_guard)))
        return ts_fail(e, TS_EINVAL, "spike_guard: %g is not a non-negative fraction", c->spike_guard);
    const lab_faults *f = &c->faults;
    if (!(f->silent >= 0 && f->garbage >= 0 && f->offdata >= 0 && f->silent + f->garbage + f->offdata <= 1))
        return ts_fail(e, TS_EINVAL, "faults: silent %g + garbage %g + offdata %g must be fractions summing to at most 1",
                       f->silent, f->garbage, f->offdata);
    if (f->late_join < 0 || f->late_join >= c->rounds)
        return ts_fail(e, TS_EINVAL, "faults.late_join: round %d is outside [0, rounds - 1 = %d]", f->late_join, c->rounds - 1);
    if (c->method == LAB_SINGLE && (f->silent > 0 || f->garbage > 0 || f->offdata > 0 || f->late_join > 0))
        return ts_fail(e, TS_EINVAL, "faults: the single method has no miners to fail");
    if (c->dense_check && c->method != LAB_SPARSELOCO)
        return ts_fail(e, TS_EINVAL, "dense_check: only for the sparseloco method");
    return TS_OK;
}

/* ---------------------------------------------------------------- state */

enum { F_NONE, F_SILENT, F_GARBAGE, F_OFFDATA };

typedef struct miner_st {
    int fault;
    int join;          /* first round it trains */
    float *mv;         /* AdamW m then v */
    int64_t adam_t;
    int64_t steps;     /* inner steps in the schedule */
    float *ef;         /* sparseloco */
    ts_tensor *eft;
    float *x;          /* dense_check: what it compressed this round */
    ts_keypair kp;
    uint8_t *wire;
    size_t wlen, wcap;
    uint64_t *pool;    /* this round's rows (H * B) */
    double bytes;      /* sent so far */
} miner_st;

typedef struct lab {
    const lab_config *c;
    model *m;
    size_t P;
    const ts_tensor *pt;
    int nt;
    float *theta;      /* model parameters (the model's buffer) */
    float *glob;       /* the global model (sparseloco, diloco) */
    ts_tensor *gt;
    float *delta, *xbuf, *acc, *mom, *backup, *mom_backup, *gbuf;
    ts_tensor *dt, *gbt;
    data_dataset *ds, *vs;
    uint32_t *sample;
    int32_t *tokens;
    uint64_t *val_idx, *probe_idx;
    spl_ctx *ctx;
    spl_upload **up;
    spl_undo *undo;
    miner_st *mi;
    char run_id[48];
    uint8_t config_hash[TS_HASH_BYTES];
    double t0;
    int64_t total_steps, warmup;
} lab;

static ts_tensor *views(const lab *L, float *buf) {
    ts_tensor *t = calloc((size_t)L->nt, sizeof *t);
    if (!t) return NULL;
    for (int i = 0; i < L->nt; i++) {
        t[i] = L->pt[i];
        t[i].owned = false;
        t[i].data = buf + ((const float *)L->pt[i].data - L->theta);
    }
    return t;
}

static float *fbuf(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static void lab_free(lab *L) {
    if (L->mi)
        for (int i = 0; i < L->c->miners; i++) {
            miner_st *q = &L->mi[i];
            free(q->mv);
            free(q->ef);
            free(q->eft);
            free(q->x);
            free(q->wire);
            free(q->pool);
            sodium_memzero(&q->kp, sizeof q->kp);
        }
    free(L->mi);
    if (L->up)
        for (int i = 0; i < L->c->miners; i++) spl_upload_free(L->up[i]);
    free(L->up);
    spl_undo_free(L->undo);
    spl_ctx_free(L->ctx);
    free(L->glob);
    free(L->gt);
    free(L->delta);
    free(L->dt);
    free(L->xbuf);
    free(L->acc);
    free(L->mom);
    free(L->backup);
    free(L->mom_backup);
    free(L->gbuf);
    free(L->gbt);
    free(L->sample);
    free(L->tokens);
    free(L->val_idx);
    free(L->probe_idx);
    if (L->ds) data_dataset_close(L->ds);
    if (L->vs) data_dataset_close(L->vs);
    model_free(L->m);
}

static int lab_open(lab *L, const lab_config *c, ts_err *e) {
    memset(L, 0, sizeof *L);
    L->c = c;
    L->t0 = ts_mono();
    snprintf(L->run_id, sizeof L->run_id, "lab-%llu", (unsigned long long)c->seed);
    model_config_hash(&c->model, L->config_hash);
    if (data_dataset_open(c->data, &L->ds, e)) return ts_wrap(e, "data %s", c->data);
    if (data_dataset_open(c->val_data, &L->vs, e)) return ts_wrap(e, "val_data %s", c->val_data);
    uint32_t vocab = data_vocab_size(L->ds) > data_vocab_size(L->vs) ? data_vocab_size(L->ds) : data_vocab_size(L->vs);
    if (vocab > (uint32_t)c->model.vocab_size)
        return ts_fail(e, TS_EINVAL, "the shards declare a vocabulary of %u tokens, the model has %d", vocab,
                       c->model.vocab_size);
    uint64_t rows = (uint64_t)c->inner_steps * (uint64_t)c->batch;
    uint64_t have = data_num_samples(L->ds, (uint32_t)c->seq);
    if (have < rows)
        return ts_fail(e, TS_EINVAL, "data %s: %llu samples of %d tokens, a miner's round needs %llu (H x B)", c->data,
                       (unsigned long long)have, c->seq + 1, (unsigned long long)rows);
    uint64_t vneed = (uint64_t)c->val_samples + (uint64_t)c->probe_samples;
    uint64_t vhave = data_num_samples(L->vs, (uint32_t)c->seq);
    if (vhave < vneed)
        return ts_fail(e, TS_EINVAL, "val_data %s: %llu samples of %d tokens, val_samples + probe_samples need %llu",
                       c->val_data, (unsigned long long)vhave, c->seq + 1, (unsigned long long)vneed);
    /* the held-out samples: one draw, split into measurement and probe */
    uint64_t *all = malloc(sizeof *all * (size_t)vneed);
    L->val_idx = malloc(sizeof *L->val_idx * (size_t)c->val_samples);
    L->probe_idx = malloc(sizeof *L->probe_idx * (size_t)(c->probe_samples + 1));
    if (!all || !L->val_idx || !L->probe_idx) {
        free(all);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    int rc = data_pool(L->vs, L->run_id, DATA_RANDOM_UID, 0, (uint32_t)c->seq, vneed, all, e);
    if (!rc) {
        memcpy(L->val_idx, all, sizeof *all * (size_t)c->val_samples);
        memcpy(L->probe_idx, all + c->val_samples, sizeof *all * (size_t)c->probe_samples);
    }
    free(all);
    if (rc) return rc;

    if (model_create(&c->model, kn_cpu(), c->batch, c->seq, &L->m, e)) return e->code;
    model_init(L->m, c->seed);
    L->pt = model_params(L->m, &L->nt);
    L->theta = model_param_data(L->m, &L->P);
    L->sample = malloc(sizeof *L->sample * (size_t)(c->seq + 1));
    L->tokens = malloc(sizeof *L->tokens * (size_t)c->batch * (size_t)(c->seq + 1));
    L->mi = calloc((size_t)c->miners, sizeof *L->mi);
    if (!L->sample || !L->tokens || !L->mi) return ts_fail(e, TS_ENOMEM, "out of memory");

    const int N = c->miners;
    bool dist = c->method == LAB_SPARSELOCO || c->method == LAB_DILOCO;
    if (dist) {
        if (!(L->glob = fbuf(L->P)) || !(L->gt = views(L, L->glob)) || !(L->delta = fbuf(L->P)) ||
            !(L->dt = views(L, L->delta)))
            return ts_fail(e, TS_ENOMEM, "out of memory for the global model (%zu floats)", L->P);
        memcpy(L->glob, L->theta, L->P * sizeof(float));
        if (c->spike_guard > 0 && !(L->backup = fbuf(L->P))) return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    if (c->method == LAB_DILOCO) {
        if (!(L->acc = fbuf(L->P)) || !(L->mom = fbuf(L->P))) return ts_fail(e, TS_ENOMEM, "out of memory");
        if (c->spike_guard > 0 && !(L->mom_backup = fbuf(L->P))) return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    if (c->method == LAB_SPARSELOCO) {
        if (spl_ctx_new(&c->codec, L->pt, L->nt, &L->ctx, e)) return ts_wrap(e, "codec");
        if (!(L->xbuf = fbuf(L->P)) || !(L->acc = fbuf(L->P)) || !(L->gbuf = fbuf(L->P)) ||
            !(L->gbt = views(L, L->gbuf)) || !(L->up = calloc((size_t)N, sizeof *L->up)))
            return ts_fail(e, TS_ENOMEM, "out of memory");
        for (int i = 0; i < N; i++)
            if (spl_upload_new(L->ctx, &L->up[i], e)) return e->code;
        if (c->top_g > 0 && spl_undo_new(L->ctx, 1, &L->undo, e)) return e->code;
    }

    /* faults: the first uids, in the order silent, garbage, off-data */
    int ns = frac_count(c->faults.silent, N), ng = frac_count(c->faults.garbage, N),
        no = frac_count(c->faults.offdata, N);
    for (int i = 0; i < N; i++) {
        miner_st *q = &L->mi[i];
        q->fault = i < ns ? F_SILENT : i < ns + ng ? F_GARBAGE : i < ns + ng + no ? F_OFFDATA : F_NONE;
        q->join = (c->faults.late_join > 0 && i == N - 1) ? c->faults.late_join : 0;
        if (!(q->pool = malloc(sizeof *q->pool * (size_t)rows))) return ts_fail(e, TS_ENOMEM, "out of memory");
        if (dist && !(q->mv = fbuf(2 * L->P)))
            return ts_fail(e, TS_ENOMEM, "out of memory for miner %d's optimizer (%zu floats)", i, 2 * L->P);
        if (c->method == LAB_SPARSELOCO) {
            if (!(q->ef = fbuf(L->P)) || !(q->eft = views(L, q->ef))) return ts_fail(e, TS_ENOMEM, "out of memory");
            if (c->dense_check && !(q->x = fbuf(L->P))) return ts_fail(e, TS_ENOMEM, "out of memory");
            uint8_t seed[TS_SEED_BYTES] = {0}, in[16];
            ts_put_u64(in, c->seed);
            ts_put_u64(in + 8, (uint64_t)i);
            crypto_generichash(seed, sizeof seed, in, sizeof in, (const uint8_t *)"tessera-lab-key", 15); /* FORMATS 12 */
            if (ts_keypair_from_seed(&q->kp, seed)) return ts_fail(e, TS_EINVAL, "deriving miner %d's key failed", i);
            sodium_memzero(seed, sizeof seed);
        }
    }
    int64_t per = (int64_t)c->rounds * c->inner_steps;
    L->total_steps = c->method == LAB_SINGLE ? per * N : per;
    L->warmup = (int64_t)ceil(c->warmup_frac * (double)L->total_steps);
    return TS_OK;
}

/* ----------------------------------------------------------- the passes */

static int load_rows(lab *L, data_dataset *ds, const uint64_t *idx, int n, ts_err *e) {
    const int T = L->c->seq;
    for (int b = 0; b < n; b++) {
        if (data_sample(ds, (uint32_t)T, idx[b], L->sample, e)) return e->code;
        for (int t = 0; t <= T; t++) L->tokens[(size_t)b * (size_t)(T + 1) + (size_t)t] = (int32_t)L->sample[t];
    }
    return TS_OK;
}

/* Mean loss of the model's current parameters over held-out samples. */
static int eval_mean(lab *L, const uint64_t *idx, int n, double *out, ts_err *e) {
    double sum = 0;
    int64_t count = 0;
    for (int k = 0; k < n; k += L->c->batch) {
        int b = n - k < L->c->batch ? n - k : L->c->batch;
        if (load_rows(L, L->vs, idx + k, b, e)) return e->code;
        double s;
        int64_t cnt;
        if (model_eval_loss(L->m, L->tokens, b, L->c->seq, &s, &cnt, NULL, e)) return e->code;
        sum += s;
        count += cnt;
    }
    *out = count ? sum / (double)count : NAN;
    return TS_OK;
}

static int eval_glob(lab *L, const uint64_t *idx, int n, double *out, ts_err *e) {
    if (L->glob) memcpy(L->theta, L->glob, L->P * sizeof(float));
    return eval_mean(L, idx, n, out, e);
}

/* The rows miner i trains on in round r: its own pages, or another's. */
static int miner_pool(lab *L, int i, int r, ts_err *e) {
    miner_st *q = &L->mi[i];
    uint32_t uid = q->fault == F_OFFDATA ? DATA_RANDOM_UID - 1 - (uint32_t)i : (uint32_t)i;
    return data_pool(L->ds, L->run_id, uid, (uint64_t)r, (uint32_t)L->c->seq,
                     (uint64_t)L->c->inner_steps * (uint64_t)L->c->batch, q->pool, e);
}

/* One AdamW step of the model on B rows, at the schedule's rate for step s. */
static int train_rows(lab *L, int64_t s, double *loss_sum, ts_err *e) {
    const lab_config *c = L->c;
    model_schedule sch;
    model_schedule_defaults(&sch, c->adamw.lr, L->warmup, L->total_steps);
    float loss;
    double gn;
    if (model_train_step(L->m, &c->adamw, model_schedule_lr(&sch, s), L->tokens, c->batch, c->seq, &loss, &gn, e))
        return e->code;
    *loss_sum += loss;
    return TS_OK;
}

/* Miner i's round: from the global model, H inner steps with its own
 * optimizer; leaves delta = glob - theta_end. */
static int miner_round(lab *L, int i, int r, double *loss_sum, ts_err *e) {
    const lab_config *c = L->c;
    miner_st *q = &L->mi[i];
    size_t nmv;
    float *mv = model_adam_data(L->m, &nmv);
    memcpy(L->theta, L->glob, L->P * sizeof(float));
    memcpy(mv, q->mv, 2 * L->P * sizeof(float));
    model_adam_set_steps(L->m, q->adam_t);
    for (int j = 0; j < c->inner_steps; j++) {
        if (load_rows(L, L->ds, q->pool + (size_t)j * (size_t)c->batch, c->batch, e) ||
            train_rows(L, q->steps, loss_sum, e))
            return ts_wrap(e, "miner %d, round %d, inner step %d", i, r, j);
        q->steps++;
    }
    memcpy(q->mv, mv, 2 * L->P * sizeof(float));
    q->adam_t = model_adam_steps(L->m);
    kn_cpu_sub(L->delta, L->glob, L->theta, L->P);
    return TS_OK;
}

/* Miner i's part of round r in the methods with inner loops: nothing while
 * it waits to join; else it trains (delta holds its pseudo-gradient) and is
 * counted.  *sends: it has something to send (it is not silent). */
static int miner_turn(lab *L, int i, int r, lab_point *pt, double *loss_sum, int *steps, bool *sends, ts_err *e) {
    miner_st *q = &L->mi[i];
    *sends = false;
    if (r < q->join) {
        pt->waiting++;
        return TS_OK;
    }
    if (r == q->join && q->join > 0) q->steps = (int64_t)r * L->c->inner_steps; /* the run's schedule */
    if (miner_pool(L, i, r, e) || miner_round(L, i, r, loss_sum, e)) return e->code;
    *steps += L->c->inner_steps;
    pt->trained++;
    if (q->fault == F_OFFDATA) pt->offdata++;
    if (q->fault == F_SILENT) pt->silent++;
    *sends = q->fault != F_SILENT;
    return TS_OK;
}

static int cmp_double_desc(const void *a, const void *b) {
    const double *x = a, *y = b; /* {score, uid} pairs */
    if (x[0] != y[0]) return x[0] > y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

static double l2(const float *a, const float *b, size_t n) { /* ||a - b|| (b may be NULL) */
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (b ? (double)b[i] : 0.0);
        s += d * d;
    }
    return sqrt(s);
}

/* The dense check of lab.c's header over the aggregated uploads sel. */
static int dense_check(lab *L, const int *sel, int n, lab_point *pt, ts_err *e) {
    const spl_upload *ups[LAB_MAX_MINERS];
    for (int j = 0; j < n; j++) ups[j] = L->up[sel[j]];
    int nt = spl_ctx_count(L->ctx);
    double *thr = malloc(sizeof *thr * (size_t)nt);
    int64_t maxn = 0;
    for (int t = 0; t < nt; t++) maxn = L->pt[t].nbytes / 4 > (size_t)maxn ? (int64_t)(L->pt[t].nbytes / 4) : maxn;
    double *ref = malloc(sizeof *ref * (size_t)maxn), *bnd = malloc(sizeof *bnd * (size_t)maxn),
           *mag = malloc(sizeof *mag * (size_t)maxn);
    int *cnt = malloc(sizeof *cnt * (size_t)maxn);
    uint16_t idx[SPL_MAX_TILE];
    uint8_t codes[SPL_MAX_TILE];
    int rc = (!thr || !ref || !bnd || !mag || !cnt) ? ts_fail(e, TS_ENOMEM, "out of memory") : TS_OK;
    if (!rc) rc = spl_clip_thresholds(L->ctx, ups, n, thr, e);
    for (int t = 0; !rc && t < nt; t++) {
        spl_tinfo ti;
        spl_ctx_tensor(L->ctx, t, &ti);
        int64_t cols = ti.ndim == 2 ? ti.shape[1] : ti.shape[0];
        int64_t numel = (int64_t)(L->pt[t].nbytes / 4);
        size_t off = (size_t)((const float *)L->pt[t].data - L->theta);
        for (int64_t c = 0; c < numel; c++) ref[c] = bnd[c] = mag[c] = 0, cnt[c] = 0;
        for (int j = 0; j < n; j++) {
            spl_tview v;
            spl_upload_tensor(ups[j], t, &v);
            double f = thr[t] / (v.norm + 1e-8);
            float ff = (float)(f < 1.0 ? f : 1.0);
            const float *x = L->mi[sel[j]].x + off;
            int bins = L->c->codec.bins;
            double lo[256], hi[256];
            for (int b = 0; b < bins; b++) lo[b] = INFINITY, hi[b] = -INFINITY;
            for (int pass = 0; pass < 2; pass++)
                for (int64_t tile = 0; tile < ti.tiles; tile++) {
                    spl_upload_tile(ups[j], t, tile, idx, codes);
                    int64_t ty = tile / ti.tiles_x, tx = tile % ti.tiles_x;
                    for (int q = 0; q < ti.k; q++) {
                        int64_t row = ty * ti.chunk[0] + idx[q] / ti.chunk[1];
                        int64_t col = tx * ti.chunk[1] + idx[q] % ti.chunk[1];
                        int64_t c = row * cols + col;
                        double cv = (double)(x[c] - v.shift);
                        if (pass == 0) {
                            if (cv < lo[codes[q]]) lo[codes[q]] = cv;
                            if (cv > hi[codes[q]]) hi[codes[q]] = cv;
                        } else {
                            ref[c] += (double)ff * x[c];
                            mag[c] += (double)ff * fabs(x[c]);
                            bnd[c] += (double)ff * (hi[codes[q]] - lo[codes[q]]);
                            cnt[c]++;
                        }
                    }
                }
        }
        const float *g = L->gbuf + off;
        for (int64_t c = 0; c < numel; c++) {
            if (!cnt[c]) continue;
            double r = ref[c] / cnt[c], b = (bnd[c] + 1e-5 * mag[c]) / cnt[c] + 1e-12;
            double err = fabs((double)g[c] - r);
            if (err > pt->dense_err_max) pt->dense_err_max = err;
            if (b > pt->dense_bound_max) pt->dense_bound_max = b;
            if (!(err <= b)) pt->dense_violations++;
        }
    }
    free(thr);
    free(ref);
    free(bnd);
    free(mag);
    free(cnt);
    return rc;
}

/* A round of sparseloco: train, compress, decode, (rank,) aggregate, apply. */
static int round_sparseloco(lab *L, int r, lab_point *pt, double *loss_sum, int *steps, ts_err *e) {
    const lab_config *c = L->c;
    const int N = c->miners;
    const float beta = c->codec.beta, alpha = c->codec.alpha;
    int acc_n = 0;
    memset(L->acc, 0, L->P * sizeof(float));
    for (int i = 0; i < N; i++) {
        miner_st *q = &L->mi[i];
        q->wlen = 0;
        bool sends;
        if (miner_turn(L, i, r, pt, loss_sum, steps, &sends, e)) return e->code;
        if (!sends) continue;
        /* what the codec compresses: fl(fl(beta * ef) + fl(alpha * delta)) */
        for (size_t k = 0; k < L->P; k++) L->xbuf[k] = beta * q->ef[k] + alpha * L->delta[k];
        spl_meta meta = {0};
        snprintf(meta.run_id, sizeof meta.run_id, "%s", L->run_id);
        meta.window = (uint64_t)r;
        meta.uid = (uint32_t)i;
        memcpy(meta.config_hash, L->config_hash, TS_HASH_BYTES);
        const uint8_t *wire;
        size_t len;
        if (spl_compress(L->ctx, L->dt, q->eft, &meta, &q->kp, &wire, &len, e))
            return ts_wrap(e, "miner %d, round %d: compress", i, r);
        if (len > q->wcap) {
            uint8_t *nw = realloc(q->wire, len);
            if (!nw) return ts_fail(e, TS_ENOMEM, "out of memory");
            q->wire = nw;
            q->wcap = len;
        }
        memcpy(q->wire, wire, len);
        q->wlen = len;
        if (q->fault == F_GARBAGE) {
            /* the body overwritten with bytes drawn from the seed */
            uint8_t s[randombytes_SEEDBYTES] = {0};
            ts_put_u64(s, c->seed);
            ts_put_u64(s + 8, (uint64_t)r);
            ts_put_u64(s + 16, (uint64_t)i);
            if (len > SPL_HEADER_BYTES) randombytes_buf_deterministic(q->wire + SPL_HEADER_BYTES, len - SPL_HEADER_BYTES, s);
        } else {
            if (c->dense_check) memcpy(q->x, L->xbuf, L->P * sizeof(float));
            for (size_t k = 0; k < L->P; k++) L->acc[k] += L->xbuf[k];
            acc_n++;
        }
        q->bytes += (double)len;
        pt->sent++;
        pt->bytes_round += (double)len;
    }
    if (pt->sent) pt->bytes_round /= pt->sent;

    /* the aggregation side: decode every upload as a validator does */
    int ok[LAB_MAX_MINERS], nok = 0;
    for (int i = 0; i < N; i++) {
        miner_st *q = &L->mi[i];
        if (!q->wlen) continue;
        spl_expect x = {.run_id = L->run_id, .window = (uint64_t)r, .uid = (uint32_t)i, .signer = q->kp.pk,
                        .config_hash = L->config_hash};
        spl_reject why = SPL_R_NONE;
        ts_err de = {0};
        if (spl_decode(L->ctx, q->wire, q->wlen, &x, L->up[i], &why, &de)) {
            if (why == SPL_R_NONE) return ts_fail(e, de.code, "%s", de.msg);
            pt->refused++;
            snprintf(pt->refused_reason, sizeof pt->refused_reason, "%s", spl_reject_name(why));
            continue;
        }
        ok[nok++] = i;
    }
    pt->accepted = nok;
    int sel[LAB_MAX_MINERS], nsel = nok;
    memcpy(sel, ok, sizeof(int) * (size_t)nok);
    if (c->top_g > 0 && nok > c->top_g) {
        /* rank by the probe's loss decrease when each upload is applied alone,
         * with the clip thresholds of all the accepted uploads */
        const spl_upload *all[LAB_MAX_MINERS];
        for (int j = 0; j < nok; j++) all[j] = L->up[ok[j]];
        double *thr = malloc(sizeof *thr * (size_t)spl_ctx_count(L->ctx)), sc[2 * LAB_MAX_MINERS], base = NAN;
        if (!thr) return ts_fail(e, TS_ENOMEM, "out of memory");
        int rc = spl_clip_thresholds(L->ctx, all, nok, thr, e);
        if (!rc) rc = eval_glob(L, L->probe_idx, c->probe_samples, &base, e);
        pt->probe_before = base;
        for (int j = 0; !rc && j < nok; j++) {
            double after;
            rc = spl_apply(L->ctx, L->gt, &all[j], 1, thr, alpha, L->undo, NULL, e);
            if (!rc) rc = eval_glob(L, L->probe_idx, c->probe_samples, &after, e);
            if (!rc) rc = spl_undo_restore(L->ctx, L->gt, L->undo, e);
            sc[2 * j] = base - after;
            sc[2 * j + 1] = ok[j];
        }
        free(thr);
        if (rc) return rc;
        qsort(sc, (size_t)nok, 2 * sizeof(double), cmp_double_desc);
        nsel = c->top_g;
        for (int j = 0; j < nsel; j++) sel[j] = (int)sc[2 * j + 1];
        for (int a = 1; a < nsel; a++) /* back to uid order */
            for (int b = a; b > 0 && sel[b] < sel[b - 1]; b--) {
                int t = sel[b];
                sel[b] = sel[b - 1];
                sel[b - 1] = t;
            }
    }
    pt->aggregated = nsel;
    if (nsel == 0) return TS_OK;
    const spl_upload *ups[LAB_MAX_MINERS];
    for (int j = 0; j < nsel; j++) ups[j] = L->up[sel[j]];
    if (spl_aggregate_dense(L->ctx, ups, nsel, NULL, L->gbt, NULL, e)) return ts_wrap(e, "round %d: aggregate", r);
    if (c->top_g == 0 || nok <= c->top_g) {
        /* acc holds the sum of what the aggregated miners compressed */
        float inv = 1.0f / (float)acc_n;
        for (size_t k = 0; k < L->P; k++) L->acc[k] *= inv;
        double den = l2(L->acc, NULL, L->P);
        pt->agg_rel_err = den > 0 ? l2(L->gbuf, L->acc, L->P) / den : NAN;
    }
    if (c->dense_check && dense_check(L, sel, nsel, pt, e)) return e->code;
    if (c->spike_guard > 0) {
        if (isnan(pt->probe_before) && eval_glob(L, L->probe_idx, c->probe_samples, &pt->probe_before, e))
            return e->code;
        memcpy(L->backup, L->glob, L->P * sizeof(float));
    }
    spl_apply_stats st;
    if (spl_outer_step(L->ctx, L->gt, ups, nsel, alpha, &st, e)) return ts_wrap(e, "round %d: outer step", r);
    return TS_OK;
}

/* A round of DiLoCo: train, average the dense pseudo-gradients, outer SGD
 * with Nesterov momentum. */
static int round_diloco(lab *L, int r, lab_point *pt, double *loss_sum, int *steps, ts_err *e) {
    const lab_config *c = L->c;
    const int N = c->miners;
    memset(L->acc, 0, L->P * sizeof(float));
    int n = 0;
    for (int i = 0; i < N; i++) {
        miner_st *q = &L->mi[i];
        bool sends;
        if (miner_turn(L, i, r, pt, loss_sum, steps, &sends, e)) return e->code;
        if (!sends) continue;
        double sent = 4.0 * (double)L->P;
        q->bytes += sent;
        pt->sent++;
        pt->bytes_round += sent;
        if (q->fault == F_GARBAGE) {
            /* a vector of NaN: the finiteness check refuses it */
            pt->refused++;
            snprintf(pt->refused_reason, sizeof pt->refused_reason, "non_finite");
            continue;
        }
        for (size_t k = 0; k < L->P; k++) L->acc[k] += L->delta[k];
        n++;
    }
    if (pt->sent) pt->bytes_round /= pt->sent;
    pt->accepted = pt->aggregated = n;
    if (!n) return TS_OK;
    float inv = 1.0f / (float)n, mu = (float)c->diloco_momentum, lr = (float)c->diloco_lr;
    if (c->spike_guard > 0) {
        if (eval_glob(L, L->probe_idx, c->probe_samples, &pt->probe_before, e)) return e->code;
        memcpy(L->backup, L->glob, L->P * sizeof(float));
        memcpy(L->mom_backup, L->mom, L->P * sizeof(float));
    }
    for (size_t k = 0; k < L->P; k++) {
        float g = L->acc[k] * inv;
        L->mom[k] = mu * L->mom[k] + g;
        L->glob[k] -= lr * (g + mu * L->mom[k]);
    }
    return TS_OK;
}

/* A round of synchronous data parallelism: H steps, each averaging the
 * gradients of the miners' rows of that step. */
static int round_ddp(lab *L, int r, lab_point *pt, double *loss_sum, int *steps, ts_err *e) {
    const lab_config *c = L->c;
    const int N = c->miners;
    for (int i = 0; i < N; i++) {
        miner_st *q = &L->mi[i];
        if (r < q->join) {
            pt->waiting++;
            continue;
        }
        if (miner_pool(L, i, r, e)) return e->code;
        pt->trained++;
        if (q->fault == F_OFFDATA) pt->offdata++;
        if (q->fault == F_SILENT) pt->silent++;
        if (q->fault == F_GARBAGE) {
            pt->refused++;
            snprintf(pt->refused_reason, sizeof pt->refused_reason, "non_finite");
        }
        if (q->fault != F_SILENT) {
            pt->sent++;
            q->bytes += 4.0 * (double)L->P * c->inner_steps;
        }
    }
    pt->bytes_round = pt->sent ? 4.0 * (double)L->P * c->inner_steps : 0;
    model_schedule sch;
    model_schedule_defaults(&sch, c->adamw.lr, L->warmup, L->total_steps);
    for (int j = 0; j < c->inner_steps; j++) {
        model_zero_grad(L->m);
        int n = 0;
        for (int i = 0; i < N; i++) {
            miner_st *q = &L->mi[i];
            if (r < q->join) continue;
            /* every active miner computes its gradient; silent and garbage
             * ones never reach the average */
            if (load_rows(L, L->ds, q->pool + (size_t)j * (size_t)c->batch, c->batch, e)) return e->code;
            float loss;
            if (q->fault == F_SILENT || q->fault == F_GARBAGE) {
                double s;
                int64_t cnt;
                if (model_eval_loss(L->m, L->tokens, c->batch, c->seq, &s, &cnt, NULL, e)) return e->code;
                loss = cnt ? (float)(s / (double)cnt) : 0.0f;
            } else {
                if (model_forward_backward(L->m, L->tokens, c->batch, c->seq, &loss, e))
                    return ts_wrap(e, "round %d, step %d, miner %d", r, j, i);
                n++;
            }
            *loss_sum += loss;
            (*steps)++;
        }
        if (!n) continue;
        model_scale_grads(L->m, 1.0f / (float)n);
        double norm = c->adamw.clip > 0 ? model_clip_grad(L->m, c->adamw.clip) : model_grad_norm(L->m);
        if (!isfinite(norm)) return ts_fail(e, TS_ESTATE, "round %d, step %d: the gradient norm is %g", r, j, norm);
        int64_t s = (int64_t)r * c->inner_steps + j;
        if (model_adamw_step(L->m, &c->adamw, model_schedule_lr(&sch, s), e)) return e->code;
    }
    pt->accepted = pt->aggregated = pt->trained - pt->silent - pt->refused;
    return TS_OK;
}

/* A round of one worker: the same rows, one step after another. */
static int round_single(lab *L, int r, lab_point *pt, double *loss_sum, int *steps, ts_err *e) {
    const lab_config *c = L->c;
    const int N = c->miners;
    for (int i = 0; i < N; i++)
        if (miner_pool(L, i, r, e)) return e->code;
    for (int j = 0; j < c->inner_steps; j++)
        for (int i = 0; i < N; i++) {
            int64_t s = ((int64_t)r * c->inner_steps + j) * N + i;
            if (load_rows(L, L->ds, L->mi[i].pool + (size_t)j * (size_t)c->batch, c->batch, e) ||
                train_rows(L, s, loss_sum, e))
                return ts_wrap(e, "round %d, step %lld", r, (long long)s);
            (*steps)++;
        }
    pt->trained = 1;
    return TS_OK;
}

/* ------------------------------------------------------------------ run */

int lab_run(const lab_config *c, lab_cb cb, void *ctx, bool progress, lab_summary *out, ts_err *e) {
    if (lab_config_check(c, e)) return e->code;
    lab L;
    int rc = lab_open(&L, c, e);
    lab_summary sum = {0};
    const char *label = c->label[0] ? c->label : lab_method_name(c->method);
    uint64_t tokens = 0;
    lab_point pt;
    for (int r = 0; !rc && r <= c->rounds; r++) {
        memset(&pt, 0, sizeof pt);
        pt.method = lab_method_name(c->method);
        pt.label = label;
        pt.round = r;
        pt.probe_before = pt.probe_after = pt.agg_rel_err = pt.train_loss = NAN;
        double loss_sum = 0;
        int steps = 0;
        if (r > 0) {
            switch (c->method) {
            case LAB_SPARSELOCO: rc = round_sparseloco(&L, r - 1, &pt, &loss_sum, &steps, e); break;
            case LAB_DILOCO: rc = round_diloco(&L, r - 1, &pt, &loss_sum, &steps, e); break;
            case LAB_DDP: rc = round_ddp(&L, r - 1, &pt, &loss_sum, &steps, e); break;
            case LAB_SINGLE: rc = round_single(&L, r - 1, &pt, &loss_sum, &steps, e); break;
            }
            if (rc) break;
            /* the spike guard, after the outer step */
            if (c->spike_guard > 0 && L.glob && pt.aggregated > 0) {
                if ((rc = eval_glob(&L, L.probe_idx, c->probe_samples, &pt.probe_after, e))) break;
                if (pt.probe_after > pt.probe_before * (1.0 + c->spike_guard)) {
                    TS_WARN("lab: round %d: the outer update raised the probe's loss from %.4f to %.4f (more than %g %%): undone",
                            r, pt.probe_before, pt.probe_after, 100 * c->spike_guard);
                    memcpy(L.glob, L.backup, L.P * sizeof(float));
                    if (L.mom) memcpy(L.mom, L.mom_backup, L.P * sizeof(float));
                    pt.guard_skipped = true;
                    sum.guard_skips++;
                }
            }
            tokens += (uint64_t)steps * (uint64_t)c->batch * (uint64_t)c->seq;
            pt.train_loss = steps ? loss_sum / steps : NAN;
        }
        pt.tokens = tokens;
        if ((rc = eval_glob(&L, L.val_idx, c->val_samples, &pt.val_loss, e))) break;
        double bytes = 0;
        for (int i = 0; i < c->miners; i++) bytes += L.mi[i].bytes;
        pt.bytes_total = bytes / c->miners;
        pt.wall_s = ts_mono() - L.t0;
        sum.refused += pt.refused;
        sum.silent += pt.silent;
        sum.offdata += pt.offdata;
        if (cb) cb(&pt, ctx);
        if (progress && r > 0) {
            char left[32];
            ts_fmt_duration(left, sizeof left, pt.wall_s / r * (c->rounds - r));
            ts_progress("lab %s  round %d/%d  held-out %.4f  train %.4f  %.0f tok/s  %s left", label, r, c->rounds,
                        pt.val_loss, pt.train_loss, (double)tokens / pt.wall_s, left);
        }
    }
    if (progress) ts_progress_done();
    if (!rc) {
        sum.final_val_loss = pt.val_loss;
        sum.bytes_per_miner = pt.bytes_total;
        sum.tokens = tokens;
        sum.seconds = ts_mono() - L.t0;
        if (out) *out = sum;
    }
    lab_free(&L);
    return rc;
}

/* ----------------------------------------------------------------- JSON */

static void jnum(char *b, size_t cap, size_t *o, const char *k, double v) {
    if (*o >= cap) return;
    if (isfinite(v)) *o += (size_t)snprintf(b + *o, cap - *o, ", \"%s\": %.9g", k, v);
    else *o += (size_t)snprintf(b + *o, cap - *o, ", \"%s\": null", k);
}

char *lab_point_json(const lab_point *p) {
    size_t cap = 1024, o = 0;
    char *b = malloc(cap);
    if (!b) return NULL;
    o += (size_t)snprintf(b, cap, "{\"method\": \"%s\", \"label\": \"%s\", \"round\": %d, \"tokens\": %llu", p->method,
                          p->label, p->round, (unsigned long long)p->tokens);
    jnum(b, cap, &o, "val_loss", p->val_loss);
    jnum(b, cap, &o, "train_loss", p->train_loss);
    jnum(b, cap, &o, "bytes_round", p->bytes_round);
    jnum(b, cap, &o, "bytes_total", p->bytes_total);
    jnum(b, cap, &o, "wall_s", p->wall_s);
    if (o < cap)
        o += (size_t)snprintf(b + o, cap - o,
                              ", \"trained\": %d, \"sent\": %d, \"accepted\": %d, \"aggregated\": %d, \"silent\": %d, "
                              "\"refused\": %d, \"offdata\": %d, \"waiting\": %d, \"refused_reason\": \"%s\", "
                              "\"guard_skipped\": %s",
                              p->trained, p->sent, p->accepted, p->aggregated, p->silent, p->refused, p->offdata,
                              p->waiting, p->refused_reason, p->guard_skipped ? "true" : "false");
    jnum(b, cap, &o, "probe_before", p->probe_before);
    jnum(b, cap, &o, "probe_after", p->probe_after);
    jnum(b, cap, &o, "agg_rel_err", p->agg_rel_err);
    jnum(b, cap, &o, "dense_err_max", p->dense_err_max);
    jnum(b, cap, &o, "dense_bound_max", p->dense_bound_max);
    if (o < cap) o += (size_t)snprintf(b + o, cap - o, ", \"dense_violations\": %lld}", (long long)p->dense_violations);
    return b;
}
