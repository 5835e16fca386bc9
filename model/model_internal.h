/* model_internal.h - the model's private structure, shared by the files of
 * model/ (model.c: memory and the passes; checkpoint.c: init, load, save;
 * optim.c: AdamW, clipping, schedule). */
#ifndef TESSERA_MODEL_INTERNAL_H
#define TESSERA_MODEL_INTERNAL_H

#include "model.h"

/* Per-layer views into the parameter (or gradient) buffer.  q, k and v are
 * adjacent in the buffer, so wqkv is one ((nh + 2 nkv) hd, C) matrix; gate and
 * up likewise form wgu, (2F, C). */
typedef struct layer_w {
    float *wqkv; /* (QKV, C) = q_proj, k_proj, v_proj */
    float *wo;   /* (C, Q) */
    float *wgu;  /* (2F, C) = gate_proj, up_proj */
    float *wd;   /* (C, F) */
    float *ln1;  /* (C) input_layernorm */
    float *ln2;  /* (C) post_attention_layernorm */
} layer_w;

/* Activations kept for the backward pass, per layer (slot). */
typedef struct layer_a {
    float *ln1;   /* (N, C) */
    float *rstd1; /* (N) */
    float *qkv;   /* (N, QKV), q and k rotated */
    float *lse;   /* (B, nh, T) attention logsumexp per query row */
    float *y;     /* (N, Q) attention output before o_proj */
    float *mid;   /* (N, C) residual after attention */
    float *ln2;   /* (N, C) */
    float *rstd2; /* (N) */
    float *gu;    /* (N, 2F) gate | up */
    float *h;     /* (N, F) silu(gate) * up */
} layer_a;

struct model {
    model_config cfg;
    const kn_backend *be;
    model_options opt;
    int L, C, F, V, nh, nkv, hd, Q, KVd, QKV;
    int max_n;    /* max_batch * max_seq */
    int rows_lm;  /* rows per LM-head chunk */

    /* parameters: one buffer, ntensors views in HF order */
    float *params;
    size_t nparams;
    ts_tensor *pt;
    int ntensors;
    float *wte, *wnorm, *wlm;
    layer_w *lw;

    /* gradients: same layout */
    float *grads;
    ts_tensor *gt;
    float *dwte, *dwnorm, *dwlm;
    layer_w *lg;

    /* AdamW: m then v, one buffer */
    float *mv;
    int64_t adam_t;

    /* activations: one buffer */
    float *acts;
    size_t nacts;
    layer_a *la;     /* L entries (1 when eval_only) */
    float **res;     /* L + 1 residual streams (2 alternating when eval_only) */
    float *lnf;      /* (N, C) final norm output */
    float *rstdf;    /* (N) */
    float *logits;   /* (rows_lm, V) */
    float *losses;   /* (N) */
    int32_t *tok_in; /* (N) */
    int32_t *tok_tg; /* (N) */
    float *cos_t, *sin_t; /* (max_seq, hd/2) */
    float *attn_scratch;  /* kn_attn_scratch_floats(max_batch, max_seq, ...): both passes */
    /* backward scratch (training only) */
    float *dres;  /* (N, C) */
    float *dln;   /* (N, C) */
    float *dbig;  /* (N, max(2F, QKV)) */
    float *dsmall; /* (N, max(F, Q)) */

    /* host staging: tokens in and losses out */
    int32_t *h_in, *h_tg;
    float *h_loss;
};

/* The GEMM staging the CUDA backend needs for the largest product of the
 * passes (plan.c; the list of products mirrors model.c). */
size_t model_gemm_staging(const model_config *cfg, const model_options *o);

#endif
