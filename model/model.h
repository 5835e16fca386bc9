/*
 * model.h - the LLaMA-style decoder that miners train and validators
 * evaluate: configuration, parameters, forward and backward pass, the inner
 * optimizer (AdamW) and checkpoints.  PROTOCOL.md section 6.
 *
 * The model is the Hugging Face LlamaForCausalLM: token embedding; per layer
 * RMSNorm, attention with rotary positions (rotate-half convention) and
 * grouped KV heads, residual, RMSNorm, SwiGLU MLP, residual; final RMSNorm;
 * LM head (tied to the embedding or not); no biases.  Everything is fp32.
 * Checkpoints are model.safetensors with the Hugging Face tensor names plus a
 * config.json in the LlamaConfig layout, loadable by `transformers` as is.
 *
 * Memory: model_create makes one allocation per family (parameters,
 * gradients, AdamW state, activations), sized from the config and the
 * largest batch, and nothing else allocates afterwards.  The parameters are
 * one contiguous buffer in a fixed order (model_params), so a node can hash,
 * copy or save the whole model in one call; the gradients have the same
 * layout.  Compute goes through a kernels backend (kernels/kernels.h); only
 * the CPU backend implements the model ops today.
 *
 * Results are deterministic for a given build, CPU and thread count
 * (OpenBLAS may split a product differently under another thread count);
 * initialisation and loading do not depend on the thread count.  A model is
 * used by one caller at a time (its calls use OpenMP inside).
 *
 * Tokens are int32 ids.  A training or evaluation batch is B rows of T + 1
 * tokens: row b's inputs are its first T tokens and its targets its last T
 * (the next-token shift).  A token equal to MODEL_IGNORE_INDEX marks
 * padding: as a target it is left out of the loss, as an input it reads as
 * token 0 (causal attention makes padding at the end of a row harmless to
 * the tokens before it).  Any other token outside [0, vocab_size) is an
 * error, reported before anything runs.
 */
#ifndef TESSERA_MODEL_H
#define TESSERA_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "kernels/kernels.h"

#define MODEL_IGNORE_INDEX KN_IGNORE_INDEX /* -100, as in PyTorch and HF */

/* ------------------------------------------------------------------ config */

typedef struct model_config {
    int vocab_size;
    int hidden_size;          /* C */
    int intermediate_size;    /* F, the SwiGLU width */
    int num_hidden_layers;    /* L */
    int num_attention_heads;  /* nh */
    int num_key_value_heads;  /* nkv; divides nh */
    int head_dim;             /* hd; even; hidden_size / nh unless the config says */
    int max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;
    bool tie_word_embeddings; /* lm_head shares model.embed_tokens.weight */
} model_config;

/* Presets (docs/FORMATS.md section 6 lists their shapes):
 *   tiny   2 layers, width 64, 4 heads, 2 KV heads, FFN 128 (tests; tied)
 *   small  6 layers, width 256, 4 heads, 2 KV heads, FFN 768 (CPU demo)
 *   124m   12 layers, width 768, 12 heads, FFN 2048, tied (GPT-2 size)
 *   150m   12 layers, width 1024, 16 heads, FFN 2688 (Templar's shape)
 *   1b     16 layers, width 2048, 8 heads, FFN 8192 (Templar's shape)
 * vocab_size 0 picks the preset's default: 257 (the byte-level demo
 * tokenizer) for tiny and small, 50304 for 124m (GPT-2's 50257 padded to a
 * multiple of 64, as llm.c does), 32000 for 150m and 1b. */
int model_preset(const char *name, int vocab_size, model_config *cfg, ts_err *e);
/* Space-separated preset names, for help texts. */
const char *model_preset_names(void);
/* Checks every field and their consistency (heads divide, head_dim even,
 * sizes in range, total parameter count representable); TS_EINVAL with the
 * offending field named. */
int model_config_validate(const model_config *cfg, ts_err *e);
/* Hugging Face LlamaConfig JSON.  Missing optional keys take LlamaConfig's
 * defaults; settings this model cannot honour (another activation, biases,
 * rope_scaling, ...) are refused, not ignored.  The result is validated. */
int model_config_parse(const char *json, size_t len, model_config *cfg, ts_err *e);
/* Reads path, or path/config.json when path is a directory. */
int model_config_load(const char *path, model_config *cfg, ts_err *e);
/* config.json text (malloc'd, NUL-terminated), loadable by transformers. */
char *model_config_to_json(const model_config *cfg);
int model_config_save(const model_config *cfg, const char *path, ts_err *e);
bool model_config_equal(const model_config *a, const model_config *b);
/* BLAKE2b-256 of the canonical encoding of docs/FORMATS.md section 6. */
void model_config_hash(const model_config *cfg, uint8_t out[TS_HASH_BYTES]);
/* Number of parameters (floats), -1 if it does not fit. */
int64_t model_config_num_params(const model_config *cfg);
/* "124m: 12 layers, width 768, ..." one-line description into out. */
void model_config_describe(const model_config *cfg, char *out, size_t cap);

/* ------------------------------------------------------------------- model */

typedef struct model model;

typedef struct model_options {
    int max_batch;  /* largest B of any later call */
    int max_seq;    /* largest T; at most max_position_embeddings */
    bool eval_only; /* no gradients, no optimizer state, activations for one
                       layer: for evaluation (validators) */
} model_options;

/* Allocates the model with parameters zeroed (call model_init or
 * model_load).  Refuses a backend without the model ops with a clear error. */
int model_create(const model_config *cfg, const kn_backend *be, int max_batch, int max_seq,
                 model **out, ts_err *e);
int model_create_opts(const model_config *cfg, const kn_backend *be, const model_options *o,
                      model **out, ts_err *e);
void model_free(model *m);
const model_config *model_get_config(const model *m);
/* Bytes held by each family (any pointer may be NULL). */
void model_memory(const model *m, size_t *params, size_t *grads, size_t *optim, size_t *acts);
/* The same, for a model not created: what model_create_opts would allocate
 * (it also checks the config and options). */
int model_memory_plan(const model_config *cfg, const model_options *o, size_t *params, size_t *grads,
                      size_t *optim, size_t *acts, ts_err *e);

/* The memory a model needs on a backend, by family.  On a GPU the GEMMs
 * read bf16 copies of their inputs (a staging buffer the CUDA library grows
 * to the largest product's inputs) and cuBLASLt gets a fixed workspace;
 * everything else is the same layout as on the CPU (fp32 master weights,
 * gradients and AdamW state; fp32 activations). */
typedef struct model_mem_plan {
    size_t params, grads, optim, acts;
    size_t gemm_staging;   /* GPU only: bf16 inputs of the largest GEMM */
    size_t blas_workspace; /* GPU only: KN_GPU_BLAS_WORKSPACE */
    size_t total;
} model_mem_plan;
int model_memory_plan_on(const model_config *cfg, const model_options *o, bool gpu, model_mem_plan *p,
                         ts_err *e);

/* Views (HF names, fp32, shapes) of the parameters or the gradients in
 * their fixed order: model.embed_tokens.weight; per layer N
 * model.layers.N.self_attn.{q,k,v,o}_proj.weight,
 * model.layers.N.mlp.{gate,up,down}_proj.weight,
 * model.layers.N.{input,post_attention}_layernorm.weight; model.norm.weight;
 * lm_head.weight unless tied.  The arrays belong to the model (data is
 * borrowed, host memory on the CPU backend; NULL grads on an eval-only
 * model). */
const ts_tensor *model_params(const model *m, int *n);
const ts_tensor *model_grads(const model *m, int *n);
/* The whole parameter (gradient) buffer: the tensors above back to back. */
float *model_param_data(const model *m, size_t *count);
float *model_grad_data(const model *m, size_t *count);
/* Index of a named parameter, or -1. */
int model_param_index(const model *m, const char *name);

/* Deterministic initialisation from a seed, as Hugging Face initialises
 * Llama: every projection and the embedding (and an untied lm_head) drawn
 * from normal(0, 0.02), norm weights 1.  The generator (docs/FORMATS.md
 * section 6) is ChaCha20 per block of 65536 values, so the result does not
 * depend on the thread count. */
void model_init(model *m, uint64_t seed);

/* Loads model.safetensors: path is a checkpoint directory (holding
 * model.safetensors and, when present, a config.json that must match the
 * model's config) or a .safetensors file.  Every tensor must be present with
 * its exact shape (F32, BF16 or F16; converted to fp32); unknown tensors are
 * refused.  On error the parameters are left as they were. */
int model_load(model *m, const char *path, ts_err *e);
/* Writes dir/model.safetensors and dir/config.json (atomically; dir is
 * created).  A tied model stores no lm_head.weight, as transformers does. */
int model_save(const model *m, const char *dir, ts_err *e);
/* Writes the gradients as safetensors with the parameters' names. */
int model_save_grads(const model *m, const char *path, ts_err *e);

/* Checks a batch (B rows of T + 1 tokens) against the model's limits and
 * vocabulary without running anything. */
int model_check_tokens(const model *m, const int32_t *tokens, int B, int T, ts_err *e);

/* Forward and backward pass over B rows of T + 1 tokens.  *loss is the mean
 * cross-entropy over the targets that are not MODEL_IGNORE_INDEX (0 when all
 * are ignored), and its gradient is ADDED to the gradients (call
 * model_zero_grad first; repeated calls accumulate). */
int model_forward_backward(model *m, const int32_t *tokens, int B, int T, float *loss, ts_err *e);
/* Forward pass only.  Adds nothing to the gradients.  *sum_loss is the sum of
 * the per-token losses, *count the number of targets counted; row_sum
 * (B entries, may be NULL) receives each row's sum. */
int model_eval_loss(model *m, const int32_t *tokens, int B, int T, double *sum_loss,
                    int64_t *count, double *row_sum, ts_err *e);
/* Forward pass over B rows of T input tokens (no targets); writes the
 * logits, (B, T, vocab_size), to out (host memory). */
int model_logits(model *m, const int32_t *inputs, int B, int T, float *out, ts_err *e);

void model_zero_grad(model *m);
/* L2 norm of all gradients together (in double). */
double model_grad_norm(model *m);
/* Scales the gradients by s (gradient accumulation, averaging). */
void model_scale_grads(model *m, float s);
/* torch.nn.utils.clip_grad_norm_: if the norm exceeds max_norm, scales the
 * gradients by max_norm / (norm + 1e-6).  Returns the norm before clipping. */
double model_clip_grad(model *m, double max_norm);

/* ----------------------------------------------------------- optimization */

typedef struct model_adamw {
    double lr;           /* peak learning rate: 1.3e-4 */
    double beta1, beta2; /* 0.9, 0.95 */
    double eps;          /* 1e-8 */
    double weight_decay; /* 0.1, applied to every parameter as torch.optim.AdamW
                            over model.parameters() does */
    double clip;         /* gradient-norm clip: 1.0 (0: none) */
} model_adamw;

/* PROTOCOL.md section 6 defaults. */
void model_adamw_defaults(model_adamw *h);

/* One AdamW step at learning rate lr (the schedule's value for this step;
 * h->lr is not read here).  Clipping is the caller's (model_clip_grad) or
 * model_train_step's.  Advances the optimizer's step count. */
int model_adamw_step(model *m, const model_adamw *h, double lr, ts_err *e);
/* Zeroes AdamW's moments and step count (a fresh optimizer). */
void model_adam_reset(model *m);
/* AdamW steps taken since the last reset. */
int64_t model_adam_steps(const model *m);
/* The optimizer's moments (m, then v: 2 * count floats in the parameters'
 * layout, the backend's memory) and the step count, for a caller that keeps
 * several optimizers over one model (the lab's simulated miners swap theirs
 * in and out).  NULL on an eval-only model. */
float *model_adam_data(model *m, size_t *count);
void model_adam_set_steps(model *m, int64_t steps);

/* Learning-rate schedule, per inner step s = 0, 1, 2, ...:
 *   s <  warmup:          lr * (s + 1) / warmup
 *   warmup <= s < total:  lr_min + (lr - lr_min) (1 + cos(pi p)) / 2,
 *                         p = (s - warmup) / (total - warmup)
 *   s >= total:           lr_min,          lr_min = min_ratio * lr
 * The caller keeps s running across windows (a window that ends early does
 * not reset it). */
typedef struct model_schedule {
    double lr;
    double min_ratio; /* 0.1 */
    int64_t warmup;   /* steps of linear warm-up */
    int64_t total;    /* step at which the cosine reaches lr_min */
} model_schedule;
void model_schedule_defaults(model_schedule *s, double lr, int64_t warmup, int64_t total);
double model_schedule_lr(const model_schedule *s, int64_t step);

/* One training step: zero the gradients, forward/backward, clip at h->clip,
 * AdamW at lr.  Reports the loss and the gradient norm before clipping. */
int model_train_step(model *m, const model_adamw *h, double lr, const int32_t *tokens, int B, int T,
                     float *loss, double *grad_norm, ts_err *e);

#endif
