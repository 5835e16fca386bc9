/* model.c - memory layout, the forward pass and the backward pass.
 *
 * Shapes: N = B*T token rows, C width, nh/nkv heads of width hd, Q = nh hd,
 * QKV = (nh + 2 nkv) hd, F the MLP width, V the vocabulary.  Per layer:
 *
 *   ln1  = rmsnorm(x)                       (N,C)
 *   qkv  = ln1 Wqkv^T ; rope(q, k)          (N,QKV)
 *   y    = attention(qkv)                   (N,Q)
 *   mid  = x + y Wo^T                       (N,C)
 *   ln2  = rmsnorm(mid)                     (N,C)
 *   gu   = ln2 Wgu^T                        (N,2F)
 *   h    = silu(gate) * up                  (N,F)
 *   out  = mid + h Wd^T                     (N,C)
 *
 * then the final norm and the LM head with the cross-entropy, which runs in
 * blocks of rows_lm rows: logits for a block, loss and dlogits in place,
 * then dx and dW of the head, so the (N,V) logits never exist at once.  The
 * residual adds are folded into the projections (the GEMM accumulates onto a
 * copy of the residual), and the backward pass accumulates each RMSNorm's dx
 * straight into the residual gradient. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

#define LM_BLOCK_FLOATS ((size_t)16 << 20) /* logits block: at most 64 MiB */

/* Runs a backend op; a failure returns its code with context. */
#define K(call)                                                                    \
    do {                                                                           \
        int rc_ = (call);                                                          \
        if (rc_) return ts_fail(e, rc_, "backend %s: %s failed", m->be->name, #call); \
    } while (0)

const model_config *model_get_config(const model *m) { return &m->cfg; }

const ts_tensor *model_params(const model *m, int *n) {
    if (n) *n = m->ntensors;
    return m->pt;
}

const ts_tensor *model_grads(const model *m, int *n) {
    if (n) *n = m->gt ? m->ntensors : 0;
    return m->gt;
}

float *model_param_data(const model *m, size_t *count) {
    if (count) *count = m->nparams;
    return m->params;
}

float *model_grad_data(const model *m, size_t *count) {
    if (count) *count = m->grads ? m->nparams : 0;
    return m->grads;
}

int model_param_index(const model *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (!strcmp(m->pt[i].name, name)) return i;
    return -1;
}

void model_memory(const model *m, size_t *params, size_t *grads, size_t *optim, size_t *acts) {
    if (params) *params = m->nparams * sizeof(float);
    if (grads) *grads = m->grads ? m->nparams * sizeof(float) : 0;
    if (optim) *optim = m->mv ? 2 * m->nparams * sizeof(float) : 0;
    if (acts) *acts = m->nacts * sizeof(float);
}

void model_free(model *m) {
    if (!m) return;
    if (m->params) m->be->free(m->be, m->params);
    if (m->grads) m->be->free(m->be, m->grads);
    if (m->mv) m->be->free(m->be, m->mv);
    if (m->acts) m->be->free(m->be, m->acts);
    free(m->pt);
    free(m->gt);
    free(m->lw);
    free(m->lg);
    free(m->la);
    free(m->res);
    free(m->h_in);
    free(m->h_tg);
    free(m->h_loss);
    free(m);
}

/* ------------------------------------------------------------ the layout */

typedef struct tdesc {
    char name[96];
    int ndim;
    int64_t shape[2];
} tdesc;

/* The parameter tensors in their fixed order; returns the count (desc may be
 * NULL to count). */
static int describe(const model *m, tdesc *d) {
    int n = 0;
#define ADD(nd, s0, s1, ...)                                                   \
    do {                                                                       \
        if (d) {                                                               \
            snprintf(d[n].name, sizeof d[n].name, __VA_ARGS__);                \
            d[n].ndim = nd;                                                    \
            d[n].shape[0] = s0;                                                \
            d[n].shape[1] = s1;                                                \
        }                                                                      \
        n++;                                                                   \
    } while (0)
    ADD(2, m->V, m->C, "model.embed_tokens.weight");
    for (int l = 0; l < m->L; l++) {
        ADD(2, m->Q, m->C, "model.layers.%d.self_attn.q_proj.weight", l);
        ADD(2, m->KVd, m->C, "model.layers.%d.self_attn.k_proj.weight", l);
        ADD(2, m->KVd, m->C, "model.layers.%d.self_attn.v_proj.weight", l);
        ADD(2, m->C, m->Q, "model.layers.%d.self_attn.o_proj.weight", l);
        ADD(2, m->F, m->C, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(2, m->F, m->C, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(2, m->C, m->F, "model.layers.%d.mlp.down_proj.weight", l);
        ADD(1, m->C, 0, "model.layers.%d.input_layernorm.weight", l);
        ADD(1, m->C, 0, "model.layers.%d.post_attention_layernorm.weight", l);
    }
    ADD(1, m->C, 0, "model.norm.weight");
    if (!m->cfg.tie_word_embeddings) ADD(2, m->V, m->C, "lm_head.weight");
#undef ADD
    return n;
}

/* Builds the tensor views over buf and the per-layer pointers. */
static void carve(const model *m, const tdesc *d, float *buf, ts_tensor *t, layer_w *lw, float **wte,
                  float **wnorm, float **wlm) {
    size_t at = 0;
    for (int i = 0; i < m->ntensors; i++) {
        ts_tensor *x = &t[i];
        memset(x, 0, sizeof *x);
        snprintf(x->name, sizeof x->name, "%s", d[i].name);
        x->dtype = TS_F32;
        x->ndim = d[i].ndim;
        x->shape[0] = d[i].shape[0];
        x->shape[1] = d[i].shape[1];
        size_t n = (size_t)d[i].shape[0] * (size_t)(d[i].ndim == 2 ? d[i].shape[1] : 1);
        x->data = buf + at;
        x->nbytes = n * sizeof(float);
        at += n;
    }
    /* index arithmetic follows describe() */
    *wte = t[0].data;
    for (int l = 0; l < m->L; l++) {
        const ts_tensor *b = &t[1 + 9 * l];
        lw[l] = (layer_w){.wqkv = b[0].data, .wo = b[3].data, .wgu = b[4].data, .wd = b[6].data,
                          .ln1 = b[7].data, .ln2 = b[8].data};
    }
    *wnorm = t[1 + 9 * m->L].data;
    *wlm = m->cfg.tie_word_embeddings ? *wte : t[2 + 9 * m->L].data;
}

static void rope_tables(model *m, float *cos_t, float *sin_t) {
    /* As Hugging Face computes them, in fp32: inv_freq = 1 / theta^(2i/hd),
     * angle = t * inv_freq; then cos and sin of that fp32 angle. */
    int h2 = m->hd / 2;
    for (int i = 0; i < h2; i++) {
        float ex = (float)(2 * i) / (float)m->hd;
        float inv = 1.0f / powf((float)m->cfg.rope_theta, ex);
        for (int t = 0; t < m->opt.max_seq; t++) {
            float ang = (float)t * inv;
            cos_t[(size_t)t * h2 + i] = (float)cos((double)ang);
            sin_t[(size_t)t * h2 + i] = (float)sin((double)ang);
        }
    }
}

/* Floats of the activation family, and the rows of an LM-head block. */
static size_t act_floats(const model_config *cfg, const model_options *o, size_t *rows_lm) {
    const size_t N = (size_t)o->max_batch * o->max_seq, C = (size_t)cfg->hidden_size,
                 F = (size_t)cfg->intermediate_size, V = (size_t)cfg->vocab_size;
    const size_t nh = (size_t)cfg->num_attention_heads, hd = (size_t)cfg->head_dim;
    const size_t Q = nh * hd, QKV = Q + 2 * (size_t)cfg->num_key_value_heads * hd;
    const size_t LSE = (size_t)o->max_batch * nh * (size_t)o->max_seq;
    const size_t ATT = kn_attn_scratch_floats(o->max_batch, o->max_seq, (int)nh,
                                              cfg->num_key_value_heads, (int)hd);
    size_t rows = LM_BLOCK_FLOATS / V;
    if (rows >= 64) rows -= rows % 64;
    if (rows < 1) rows = 1;
    if (rows > N) rows = N;
    if (rows_lm) *rows_lm = rows;
    size_t slots = o->eval_only ? 1 : (size_t)cfg->num_hidden_layers;
    size_t nres = o->eval_only ? 2 : (size_t)cfg->num_hidden_layers + 1;
    /* per layer: ln1, mid, ln2 (N,C); rstd1, rstd2 (N); qkv; lse; y; gu; h */
    size_t per_layer = 3 * N * C + 2 * N + N * QKV + LSE + N * Q + 2 * N * F + N * F;
    size_t total = per_layer * slots + nres * N * C /* residual streams */ + N * C + N /* lnf, rstdf */ +
                   rows * V /* logits block */ + N /* losses */ + 2 * N /* tokens, int32 */ +
                   2 * (size_t)o->max_seq * (hd / 2) /* rotary tables */ +
                   ATT /* attention scratch, both passes */;
    size_t big = 2 * F > QKV ? 2 * F : QKV, small = F > Q ? F : Q;
    if (!o->eval_only) total += 2 * N * C + N * big + N * small; /* backward scratch */
    return total;
}

static int check_options(const model_config *cfg, const model_options *o, ts_err *e) {
    if (o->max_batch < 1 || o->max_seq < 1)
        return ts_fail(e, TS_EINVAL, "model: max_batch (%d) and max_seq (%d) must be positive",
                       o->max_batch, o->max_seq);
    if (o->max_seq > cfg->max_position_embeddings)
        return ts_fail(e, TS_EINVAL, "model: sequence length %d exceeds max_position_embeddings %d",
                       o->max_seq, cfg->max_position_embeddings);
    if ((int64_t)o->max_batch * o->max_seq > (1 << 24))
        return ts_fail(e, TS_EINVAL, "model: batch x sequence %d x %d is too large", o->max_batch,
                       o->max_seq);
    return TS_OK;
}

int model_memory_plan(const model_config *cfg, const model_options *o, size_t *params, size_t *grads,
                      size_t *optim, size_t *acts, ts_err *e) {
    int rc = model_config_validate(cfg, e);
    if (rc || (rc = check_options(cfg, o, e))) return rc;
    size_t np = (size_t)model_config_num_params(cfg) * sizeof(float);
    if (params) *params = np;
    if (grads) *grads = o->eval_only ? 0 : np;
    if (optim) *optim = o->eval_only ? 0 : 2 * np;
    if (acts) *acts = act_floats(cfg, o, NULL) * sizeof(float);
    return TS_OK;
}

int model_create(const model_config *cfg, const kn_backend *be, int max_batch, int max_seq,
                 model **out, ts_err *e) {
    model_options o = {.max_batch = max_batch, .max_seq = max_seq};
    return model_create_opts(cfg, be, &o, out, e);
}

static void *be_alloc(const kn_backend *be, size_t floats) {
    return be->alloc(be, floats * sizeof(float));
}

int model_create_opts(const model_config *cfg, const kn_backend *be, const model_options *o,
                      model **out, ts_err *e) {
    *out = NULL;
    int rc = model_config_validate(cfg, e);
    if (rc) return rc;
    if (!be) be = kn_cpu();
    if ((rc = kn_backend_has_model_ops(be, e))) return rc;
    if ((rc = check_options(cfg, o, e))) return rc;

    model *m = calloc(1, sizeof *m);
    if (!m) return ts_fail(e, TS_ENOMEM, "out of memory");
    const char *what = NULL;
    size_t want = 0;
    m->cfg = *cfg;
    m->be = be;
    m->opt = *o;
    m->L = cfg->num_hidden_layers;
    m->C = cfg->hidden_size;
    m->F = cfg->intermediate_size;
    m->V = cfg->vocab_size;
    m->nh = cfg->num_attention_heads;
    m->nkv = cfg->num_key_value_heads;
    m->hd = cfg->head_dim;
    m->Q = m->nh * m->hd;
    m->KVd = m->nkv * m->hd;
    m->QKV = m->Q + 2 * m->KVd;
    m->max_n = o->max_batch * o->max_seq;
    const size_t N = (size_t)m->max_n, C = (size_t)m->C, F = (size_t)m->F, V = (size_t)m->V;
    const size_t LSE = (size_t)o->max_batch * m->nh * (size_t)o->max_seq;
    const size_t ATT = kn_attn_scratch_floats(o->max_batch, o->max_seq, m->nh, m->nkv, m->hd);
    size_t rows;
    const size_t total = act_floats(cfg, o, &rows);
    m->rows_lm = (int)rows;

    /* parameters */
    m->ntensors = describe(m, NULL);
    tdesc *d = calloc((size_t)m->ntensors, sizeof *d);
    m->pt = calloc((size_t)m->ntensors, sizeof *m->pt);
    m->lw = calloc((size_t)m->L, sizeof *m->lw);
    if (!d || !m->pt || !m->lw) goto nomem;
    describe(m, d);
    m->nparams = (size_t)model_config_num_params(cfg);
    m->params = be_alloc(be, m->nparams);
    if (!m->params) {
        what = "parameters";
        want = m->nparams * sizeof(float);
        goto nomem;
    }
    carve(m, d, m->params, m->pt, m->lw, &m->wte, &m->wnorm, &m->wlm);
    if ((rc = be->fill(be, m->params, 0.0f, m->nparams))) goto fail;

    if (!o->eval_only) {
        m->gt = calloc((size_t)m->ntensors, sizeof *m->gt);
        m->lg = calloc((size_t)m->L, sizeof *m->lg);
        m->grads = be_alloc(be, m->nparams);
        m->mv = be_alloc(be, 2 * m->nparams);
        what = "gradients and optimizer state";
        want = 3 * m->nparams * sizeof(float);
        if (!m->gt || !m->lg || !m->grads || !m->mv) goto nomem;
        carve(m, d, m->grads, m->gt, m->lg, &m->dwte, &m->dwnorm, &m->dwlm);
        if ((rc = be->fill(be, m->grads, 0.0f, m->nparams))) goto fail;
        if ((rc = be->fill(be, m->mv, 0.0f, 2 * m->nparams))) goto fail;
    }
    free(d);
    d = NULL;

    /* activations: one allocation carved in order (sizes: act_floats) */
    int slots = o->eval_only ? 1 : m->L;
    int nres = o->eval_only ? 2 : m->L + 1;
    size_t h2 = (size_t)m->hd / 2;
    size_t big = 2 * F > (size_t)m->QKV ? 2 * F : (size_t)m->QKV;
    size_t small = F > (size_t)m->Q ? F : (size_t)m->Q;
    m->nacts = total;
    m->acts = be_alloc(be, total);
    what = "activations";
    want = total * sizeof(float);
    m->la = calloc((size_t)slots, sizeof *m->la);
    m->res = calloc((size_t)m->L + 1, sizeof *m->res);
    m->h_in = malloc(N * sizeof(int32_t));
    m->h_tg = malloc(N * sizeof(int32_t));
    m->h_loss = malloc(N * sizeof(float));
    if (!m->acts || !m->la || !m->res || !m->h_in || !m->h_tg || !m->h_loss) goto nomem;
    float *p = m->acts;
#define TAKE(ptr, n)  \
    do {              \
        (ptr) = p;    \
        p += (n);     \
    } while (0)
    for (int s = 0; s < slots; s++) {
        layer_a *a = &m->la[s];
        TAKE(a->ln1, N * C);
        TAKE(a->rstd1, N);
        TAKE(a->qkv, N * (size_t)m->QKV);
        TAKE(a->lse, LSE);
        TAKE(a->y, N * (size_t)m->Q);
        TAKE(a->mid, N * C);
        TAKE(a->ln2, N * C);
        TAKE(a->rstd2, N);
        TAKE(a->gu, N * 2 * F);
        TAKE(a->h, N * F);
    }
    float *resbuf;
    TAKE(resbuf, (size_t)nres * N * C);
    for (int l = 0; l <= m->L; l++) m->res[l] = resbuf + (size_t)(o->eval_only ? l % 2 : l) * N * C;
    TAKE(m->lnf, N * C);
    TAKE(m->rstdf, N);
    TAKE(m->logits, rows * V);
    TAKE(m->losses, N);
    float *tok;
    TAKE(tok, 2 * N);
    m->tok_in = (int32_t *)tok;
    m->tok_tg = (int32_t *)(tok + N);
    TAKE(m->cos_t, (size_t)o->max_seq * h2);
    TAKE(m->sin_t, (size_t)o->max_seq * h2);
    TAKE(m->attn_scratch, ATT);
    if (!o->eval_only) {
        TAKE(m->dres, N * C);
        TAKE(m->dln, N * C);
        TAKE(m->dbig, N * big);
        TAKE(m->dsmall, N * small);
    }
#undef TAKE
    if ((size_t)(p - m->acts) != total) {
        rc = ts_fail(e, TS_ESTATE, "model: activation layout mismatch (internal error)");
        goto fail;
    }
    if ((rc = be->fill(be, m->acts, 0.0f, total))) goto fail;
    if (be->reserve) {
        /* the GEMM staging, once, now: too little memory shows here */
        want = model_gemm_staging(cfg, o);
        what = "GEMM staging (bf16 copies of the products' inputs)";
        if (be->reserve(be, want)) goto nomem;
        want = 0;
    }
    {
        size_t nt = (size_t)o->max_seq * h2;
        float *ct = malloc(2 * nt * sizeof(float) + 1);
        if (!ct) goto nomem;
        rope_tables(m, ct, ct + nt);
        rc = be->upload(be, m->cos_t, ct, 2 * nt * sizeof(float)); /* cos_t, sin_t are adjacent */
        free(ct);
        if (rc) {
            ts_fail(e, rc, "model: uploading the rotary tables failed");
            goto fail;
        }
    }
    *out = m;
    return TS_OK;
nomem:
    if (want) {
        char sz[32];
        ts_fmt_bytes(sz, sizeof sz, (double)want);
        rc = ts_fail(e, TS_ENOMEM, "model: cannot allocate %s of %s (batch %d x sequence %d) on %s", sz, what,
                     o->max_batch, o->max_seq, be->name);
    } else {
        rc = ts_fail(e, TS_ENOMEM, "model: out of memory");
    }
fail:
    free(d);
    model_free(m);
    return rc;
}

/* ----------------------------------------------------------------- tokens */

int model_check_tokens(const model *m, const int32_t *tokens, int B, int T, ts_err *e) {
    if (B < 1 || T < 1)
        return ts_fail(e, TS_EINVAL, "model: batch %d x sequence %d must be positive", B, T);
    if (B > m->opt.max_batch)
        return ts_fail(e, TS_EINVAL, "model: batch %d exceeds the model's max_batch %d", B, m->opt.max_batch);
    if (T > m->opt.max_seq)
        return ts_fail(e, TS_EINVAL, "model: sequence %d exceeds the model's max_seq %d", T, m->opt.max_seq);
    if (!tokens) return TS_OK;
    for (int b = 0; b < B; b++) {
        const int32_t *r = tokens + (size_t)b * (T + 1);
        for (int t = 0; t <= T; t++) {
            int32_t x = r[t];
            if ((x >= 0 && x < m->V) || x == MODEL_IGNORE_INDEX) continue;
            return ts_fail(e, TS_EINVAL,
                           "model: token %d at row %d, position %d is outside the vocabulary [0, %d)",
                           (int)x, b, t, m->V);
        }
    }
    return TS_OK;
}

/* Splits rows of T+1 tokens into inputs and targets (host), uploads them,
 * and returns the number of targets that count. */
static int stage_tokens(model *m, const int32_t *tokens, int B, int T, int64_t *count, ts_err *e) {
    int64_t c = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *r = tokens + (size_t)b * (T + 1);
        int32_t *in = m->h_in + (size_t)b * T, *tg = m->h_tg + (size_t)b * T;
        for (int t = 0; t < T; t++) {
            in[t] = r[t] == MODEL_IGNORE_INDEX ? 0 : r[t]; /* padding reads as token 0 */
            tg[t] = r[t + 1];
            c += r[t + 1] != MODEL_IGNORE_INDEX;
        }
    }
    size_t N = (size_t)B * T;
    if (m->be->upload(m->be, m->tok_in, m->h_in, N * sizeof(int32_t)) ||
        m->be->upload(m->be, m->tok_tg, m->h_tg, N * sizeof(int32_t)))
        return ts_fail(e, TS_EIO, "model: uploading tokens failed");
    *count = c;
    return TS_OK;
}

/* --------------------------------------------------------------- forward */

/* Runs the layers and the final norm.  When train, layer l keeps its
 * activations in slot l; otherwise everything reuses slot 0. */
static int forward_layers(model *m, int B, int T, ts_err *e) {
    const kn_backend *be = m->be;
    const int N = B * T, C = m->C, F = m->F;
    const float eps = (float)m->cfg.rms_norm_eps;
    K(be->embed_fwd(be, m->res[0], m->wte, m->tok_in, N, C));
    for (int l = 0; l < m->L; l++) {
        layer_a *a = &m->la[m->opt.eval_only ? 0 : l];
        const layer_w *w = &m->lw[l];
        const float *x = m->res[l];
        float *xo = m->res[l + 1];
        K(be->rmsnorm_fwd(be, a->ln1, a->rstd1, x, w->ln1, N, C, eps));
        /* (N,C) x (QKV,C)^T -> (N,QKV) */
        K(be->gemm(be, 0, 1, N, m->QKV, C, 1.0f, a->ln1, C, w->wqkv, C, 0.0f, a->qkv, m->QKV));
        K(be->rope_fwd(be, a->qkv, m->QKV, m->cos_t, m->sin_t, B, T, m->nh + m->nkv, m->hd));
        K(be->attn_fwd(be, a->y, a->lse, m->attn_scratch, a->qkv, B, T, m->nh, m->nkv, m->hd));
        /* mid = x + y Wo^T: (N,Q) x (C,Q)^T accumulated onto a copy of x */
        K(be->copy(be, a->mid, x, (size_t)N * C));
        K(be->gemm(be, 0, 1, N, C, m->Q, 1.0f, a->y, m->Q, w->wo, m->Q, 1.0f, a->mid, C));
        K(be->rmsnorm_fwd(be, a->ln2, a->rstd2, a->mid, w->ln2, N, C, eps));
        /* (N,C) x (2F,C)^T -> (N,2F) */
        K(be->gemm(be, 0, 1, N, 2 * F, C, 1.0f, a->ln2, C, w->wgu, C, 0.0f, a->gu, 2 * F));
        K(be->swiglu_fwd(be, a->h, a->gu, N, F));
        /* out = mid + h Wd^T: (N,F) x (C,F)^T */
        K(be->copy(be, xo, a->mid, (size_t)N * C));
        K(be->gemm(be, 0, 1, N, C, F, 1.0f, a->h, F, w->wd, F, 1.0f, xo, C));
    }
    K(be->rmsnorm_fwd(be, m->lnf, m->rstdf, m->res[m->L], m->wnorm, N, C, eps));
    return TS_OK;
}

/* Sums the per-row losses (downloaded) in row order, in double. */
static int sum_losses(model *m, int N, int B, int T, double *sum, double *row_sum, ts_err *e) {
    if (m->be->download(m->be, m->h_loss, m->losses, (size_t)N * sizeof(float)))
        return ts_fail(e, TS_EIO, "model: downloading losses failed");
    double s = 0.0;
    for (int b = 0; b < B; b++) {
        double r = 0.0;
        for (int t = 0; t < T; t++) r += m->h_loss[(size_t)b * T + t];
        if (row_sum) row_sum[b] = r;
        s += r;
    }
    *sum = s;
    return TS_OK;
}

int model_eval_loss(model *m, const int32_t *tokens, int B, int T, double *sum_loss, int64_t *count,
                    double *row_sum, ts_err *e) {
    int rc = model_check_tokens(m, tokens, B, T, e);
    if (rc) return rc;
    int64_t cnt;
    if ((rc = stage_tokens(m, tokens, B, T, &cnt, e))) return rc;
    if ((rc = forward_layers(m, B, T, e))) return rc;
    const kn_backend *be = m->be;
    const int N = B * T, C = m->C, V = m->V;
    for (int r0 = 0; r0 < N; r0 += m->rows_lm) {
        int R = N - r0 < m->rows_lm ? N - r0 : m->rows_lm;
        /* (R,C) x (V,C)^T -> (R,V) */
        K(be->gemm(be, 0, 1, R, V, C, 1.0f, m->lnf + (size_t)r0 * C, C, m->wlm, C, 0.0f, m->logits, V));
        K(be->xent_fwd(be, m->losses + r0, m->logits, m->tok_tg + r0, R, V));
    }
    double s;
    if ((rc = sum_losses(m, N, B, T, &s, row_sum, e))) return rc;
    *sum_loss = s;
    *count = cnt;
    return TS_OK;
}

int model_logits(model *m, const int32_t *inputs, int B, int T, float *out, ts_err *e) {
    int rc = model_check_tokens(m, NULL, B, T, e);
    if (rc) return rc;
    const int N = B * T, C = m->C, V = m->V;
    for (int i = 0; i < N; i++)
        if (inputs[i] < 0 || inputs[i] >= V)
            return ts_fail(e, TS_EINVAL, "model: token %d at row %d, position %d is outside the vocabulary [0, %d)",
                           (int)inputs[i], i / T, i % T, V);
    if (m->be->upload(m->be, m->tok_in, inputs, (size_t)N * sizeof(int32_t)))
        return ts_fail(e, TS_EIO, "model: uploading tokens failed");
    if ((rc = forward_layers(m, B, T, e))) return rc;
    const kn_backend *be = m->be;
    for (int r0 = 0; r0 < N; r0 += m->rows_lm) {
        int R = N - r0 < m->rows_lm ? N - r0 : m->rows_lm;
        K(be->gemm(be, 0, 1, R, V, C, 1.0f, m->lnf + (size_t)r0 * C, C, m->wlm, C, 0.0f, m->logits, V));
        if (be->download(be, out + (size_t)r0 * V, m->logits, (size_t)R * V * sizeof(float)))
            return ts_fail(e, TS_EIO, "model: downloading logits failed");
    }
    return TS_OK;
}

/* -------------------------------------------------------------- backward */

int model_forward_backward(model *m, const int32_t *tokens, int B, int T, float *loss, ts_err *e) {
    if (m->opt.eval_only) return ts_fail(e, TS_ESTATE, "model: created for evaluation only (no gradients)");
    int rc = model_check_tokens(m, tokens, B, T, e);
    if (rc) return rc;
    int64_t cnt;
    if ((rc = stage_tokens(m, tokens, B, T, &cnt, e))) return rc;
    if ((rc = forward_layers(m, B, T, e))) return rc;
    const kn_backend *be = m->be;
    const int N = B * T, C = m->C, V = m->V, F = m->F;
    const float dscale = cnt > 0 ? 1.0f / (float)cnt : 0.0f;

    /* LM head and loss, block by block; dlnf lands in dln */
    for (int r0 = 0; r0 < N; r0 += m->rows_lm) {
        int R = N - r0 < m->rows_lm ? N - r0 : m->rows_lm;
        const float *xf = m->lnf + (size_t)r0 * C;
        /* (R,C) x (V,C)^T -> (R,V) */
        K(be->gemm(be, 0, 1, R, V, C, 1.0f, xf, C, m->wlm, C, 0.0f, m->logits, V));
        K(be->xent_fwd_bwd(be, m->losses + r0, m->logits, m->tok_tg + r0, R, V, dscale));
        /* dxf (R,C) = dlogits (R,V) x W (V,C) */
        K(be->gemm(be, 0, 0, R, C, V, 1.0f, m->logits, V, m->wlm, C, 0.0f, m->dln + (size_t)r0 * C, C));
        /* dW (V,C) += dlogits^T (V,R) x xf (R,C) */
        K(be->gemm(be, 1, 0, V, C, R, 1.0f, m->logits, V, xf, C, 1.0f, m->dwlm, C));
    }
    K(be->fill(be, m->dres, 0.0f, (size_t)N * C));
    K(be->rmsnorm_bwd(be, m->dres, m->dwnorm, m->dln, m->res[m->L], m->wnorm, m->rstdf, N, C));

    for (int l = m->L - 1; l >= 0; l--) {
        const layer_a *a = &m->la[l];
        const layer_w *w = &m->lw[l];
        const layer_w *g = &m->lg[l];
        float *dh = m->dsmall, *dgu = m->dbig, *dy = m->dsmall, *dqkv = m->dbig;
        /* MLP: dh (N,F) = dres (N,C) x Wd (C,F); dWd (C,F) += dres^T h */
        K(be->gemm(be, 0, 0, N, F, C, 1.0f, m->dres, C, w->wd, F, 0.0f, dh, F));
        K(be->gemm(be, 1, 0, C, F, N, 1.0f, m->dres, C, a->h, F, 1.0f, g->wd, F));
        K(be->swiglu_bwd(be, dgu, dh, a->gu, N, F));
        /* dln2 (N,C) = dgu (N,2F) x Wgu (2F,C); dWgu (2F,C) += dgu^T ln2 */
        K(be->gemm(be, 0, 0, N, C, 2 * F, 1.0f, dgu, 2 * F, w->wgu, C, 0.0f, m->dln, C));
        K(be->gemm(be, 1, 0, 2 * F, C, N, 1.0f, dgu, 2 * F, a->ln2, C, 1.0f, g->wgu, C));
        K(be->rmsnorm_bwd(be, m->dres, g->ln2, m->dln, a->mid, w->ln2, a->rstd2, N, C));
        /* attention: dy (N,Q) = dres x Wo (C,Q); dWo (C,Q) += dres^T y */
        K(be->gemm(be, 0, 0, N, m->Q, C, 1.0f, m->dres, C, w->wo, m->Q, 0.0f, dy, m->Q));
        K(be->gemm(be, 1, 0, C, m->Q, N, 1.0f, m->dres, C, a->y, m->Q, 1.0f, g->wo, m->Q));
        K(be->attn_bwd(be, dqkv, m->attn_scratch, dy, a->qkv, a->y, a->lse, B, T, m->nh, m->nkv, m->hd));
        K(be->rope_bwd(be, dqkv, m->QKV, m->cos_t, m->sin_t, B, T, m->nh + m->nkv, m->hd));
        /* dln1 (N,C) = dqkv (N,QKV) x Wqkv (QKV,C); dWqkv += dqkv^T ln1 */
        K(be->gemm(be, 0, 0, N, C, m->QKV, 1.0f, dqkv, m->QKV, w->wqkv, C, 0.0f, m->dln, C));
        K(be->gemm(be, 1, 0, m->QKV, C, N, 1.0f, dqkv, m->QKV, a->ln1, C, 1.0f, g->wqkv, C));
        K(be->rmsnorm_bwd(be, m->dres, g->ln1, m->dln, m->res[l], w->ln1, a->rstd1, N, C));
    }
    K(be->embed_bwd(be, m->dwte, m->dres, m->tok_in, N, C));

    double s;
    if ((rc = sum_losses(m, N, B, T, &s, NULL, e))) return rc;
    *loss = cnt > 0 ? (float)(s / (double)cnt) : 0.0f;
    return TS_OK;
}
