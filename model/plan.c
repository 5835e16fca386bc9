/* plan.c - the memory a model needs on a backend (model_memory_plan_on). */
#include "model_internal.h"

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* rows of an LM-head block: as model.c chooses them (at most 16 Mi logits) */
static size_t lm_rows(size_t N, size_t V) {
    size_t rows = ((size_t)16 << 20) / V;
    if (rows >= 64) rows -= rows % 64;
    if (rows < 1) rows = 1;
    return rows > N ? N : rows;
}

int model_memory_plan_on(const model_config *cfg, const model_options *o, bool gpu, model_mem_plan *p,
                         ts_err *e) {
    *p = (model_mem_plan){0};
    int rc = model_memory_plan(cfg, o, &p->params, &p->grads, &p->optim, &p->acts, e);
    if (rc) return rc;
    if (gpu) {
        /* elements of A plus B of every product the passes run (model.c) */
        const size_t N = (size_t)o->max_batch * o->max_seq, C = (size_t)cfg->hidden_size,
                     F = (size_t)cfg->intermediate_size, V = (size_t)cfg->vocab_size;
        const size_t hd = (size_t)cfg->head_dim, Q = (size_t)cfg->num_attention_heads * hd;
        const size_t QKV = Q + 2 * (size_t)cfg->num_key_value_heads * hd, R = lm_rows(N, V);
        size_t m = 0;
        m = max_sz(m, N * C + QKV * C);     /* qkv */
        m = max_sz(m, N * Q + C * Q);       /* o_proj */
        m = max_sz(m, N * C + 2 * F * C);   /* gate|up */
        m = max_sz(m, N * F + C * F);       /* down */
        m = max_sz(m, R * C + V * C);       /* LM head */
        if (!o->eval_only) {
            m = max_sz(m, R * V + V * C);   /* LM head dx */
            m = max_sz(m, R * V + R * C);   /* LM head dW */
            m = max_sz(m, N * C + N * F);   /* dW down */
            m = max_sz(m, N * 2 * F + 2 * F * C);
            m = max_sz(m, N * 2 * F + N * C);
            m = max_sz(m, N * C + N * Q);
            m = max_sz(m, N * QKV + QKV * C);
            m = max_sz(m, N * QKV + N * C);
        }
        p->gemm_staging = 2 * m;
        p->blas_workspace = KN_GPU_BLAS_WORKSPACE;
    }
    p->total = p->params + p->grads + p->optim + p->acts + p->gemm_staging + p->blas_workspace;
    return TS_OK;
}
