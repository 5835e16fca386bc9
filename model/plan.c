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

size_t model_gemm_staging(const model_config *cfg, const model_options *o) {
    const int N = o->max_batch * o->max_seq, C = cfg->hidden_size, F = cfg->intermediate_size,
              V = cfg->vocab_size;
    const int Q = cfg->num_attention_heads * cfg->head_dim;
    const int QKV = Q + 2 * cfg->num_key_value_heads * cfg->head_dim, R = (int)lm_rows((size_t)N, (size_t)V);
    /* every product model.c runs, as (trans_a, trans_b, M, N, K) */
    const int fwd[][5] = {
        {0, 1, N, QKV, C}, {0, 1, N, C, Q}, {0, 1, N, 2 * F, C}, {0, 1, N, C, F}, {0, 1, R, V, C},
    };
    const int bwd[][5] = {
        {0, 0, R, C, V},   {1, 0, V, C, R},       {0, 0, N, F, C},   {1, 0, C, F, N},
        {0, 0, N, C, 2 * F}, {1, 0, 2 * F, C, N}, {0, 0, N, Q, C},   {1, 0, C, Q, N},
        {0, 0, N, C, QKV}, {1, 0, QKV, C, N},
    };
    size_t m = 0;
    for (size_t i = 0; i < sizeof fwd / sizeof *fwd; i++)
        m = max_sz(m, kn_gemm_staging_bytes(fwd[i][0], fwd[i][1], fwd[i][2], fwd[i][3], fwd[i][4]));
    if (!o->eval_only)
        for (size_t i = 0; i < sizeof bwd / sizeof *bwd; i++)
            m = max_sz(m, kn_gemm_staging_bytes(bwd[i][0], bwd[i][1], bwd[i][2], bwd[i][3], bwd[i][4]));
    return m;
}

int model_memory_plan_on(const model_config *cfg, const model_options *o, bool gpu, model_mem_plan *p,
                         ts_err *e) {
    *p = (model_mem_plan){0};
    int rc = model_memory_plan(cfg, o, &p->params, &p->grads, &p->optim, &p->acts, e);
    if (rc) return rc;
    if (gpu) {
        p->gemm_staging = model_gemm_staging(cfg, o);
        p->blas_workspace = KN_GPU_BLAS_WORKSPACE;
    }
    p->total = p->params + p->grads + p->optim + p->acts + p->gemm_staging + p->blas_workspace;
    return TS_OK;
}
