/*
 * kernels.h - compute backends: the CPU reference and, when built with CUDA,
 * the GPU.  Model and codec code calls kernels through one table chosen at
 * start-up, so the same binary runs on a machine without a GPU and tests can
 * compare the two tables op by op.
 *
 * Memory passed to a backend's ops lives where that backend computes (host
 * memory for "cpu", device memory for "cuda:N"); kn_alloc / kn_upload /
 * kn_download move data between the two.
 */
#ifndef TESSERA_KERNELS_H
#define TESSERA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_device_info {
    int index;
    char name[128];
    size_t total_mem;
    int cc_major, cc_minor;
    int multiprocessors;
} kn_device_info;

/* True when this binary was built with CUDA support. */
int kn_cuda_built(void);
/* Lists GPUs; returns the count (0 when none or no driver) and sets *why to
 * a reason when there are none. */
int kn_cuda_devices(kn_device_info *out, int max, const char **why);

typedef struct kn_backend kn_backend;

/* One AdamW step's scalars (see kn_cpu_adamw). */
typedef struct kn_adamw_args {
    float lr, beta1, beta2, eps, weight_decay;
    float step_size;   /* lr / (1 - beta1^t) */
    float bc2_sqrt;    /* sqrt(1 - beta2^t) */
} kn_adamw_args;

/* Targets equal to this are skipped by the cross-entropy ops (the Hugging
 * Face / PyTorch convention). */
#define KN_IGNORE_INDEX (-100)

struct kn_backend {
    const char *name; /* "cpu" or "cuda:N" */
    int is_gpu;
    int device;
    void *(*alloc)(const kn_backend *b, size_t bytes);
    void (*free)(const kn_backend *b, void *p);
    int (*upload)(const kn_backend *b, void *dst, const void *host_src, size_t bytes);
    int (*download)(const kn_backend *b, void *host_dst, const void *src, size_t bytes);
    int (*sync)(const kn_backend *b);
    /* Optional (NULL on the CPU): allocates now the GEMM staging that products
     * up to this many kn_gemm_staging_bytes need, so that a model finds out
     * at creation, not in its first step, that the device is too small. */
    int (*reserve)(const kn_backend *b, size_t gemm_staging_bytes);
    /* ops */
    int (*f32_to_bf16)(const kn_backend *b, uint16_t *dst, const float *src, size_t n);
    int (*bf16_to_f32)(const kn_backend *b, float *dst, const uint16_t *src, size_t n);

    /* ---- model ops (fp32, row-major; see "Model ops" below for the
     * contract of each).  A backend that leaves any of them NULL cannot run
     * the model; kn_backend_has_model_ops says which one is missing. */
    int (*gemm)(const kn_backend *b, int trans_a, int trans_b, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
    int (*fill)(const kn_backend *b, float *x, float v, size_t n);
    int (*copy)(const kn_backend *b, float *dst, const float *src, size_t n);
    int (*embed_fwd)(const kn_backend *b, float *out, const float *wte, const int32_t *tok, int N,
                     int C);
    int (*embed_bwd)(const kn_backend *b, float *dwte, const float *dout, const int32_t *tok, int N,
                     int C);
    int (*rmsnorm_fwd)(const kn_backend *b, float *out, float *rstd, const float *x, const float *w,
                       int N, int C, float eps);
    int (*rmsnorm_bwd)(const kn_backend *b, float *dx, float *dw, const float *dout, const float *x,
                       const float *w, const float *rstd, int N, int C);
    int (*rope_fwd)(const kn_backend *b, float *x, int ld, const float *cos_t, const float *sin_t,
                    int B, int T, int nh, int hd);
    int (*rope_bwd)(const kn_backend *b, float *dx, int ld, const float *cos_t, const float *sin_t,
                    int B, int T, int nh, int hd);
    int (*attn_fwd)(const kn_backend *b, float *out, float *lse, float *scratch, const float *qkv,
                    int B, int T, int nh, int nkv, int hd);
    int (*attn_bwd)(const kn_backend *b, float *dqkv, float *scratch, const float *dout,
                    const float *qkv, const float *out, const float *lse, int B, int T, int nh,
                    int nkv, int hd);
    int (*swiglu_fwd)(const kn_backend *b, float *h, const float *gu, int N, int F);
    int (*swiglu_bwd)(const kn_backend *b, float *dgu, const float *dh, const float *gu, int N, int F);
    int (*xent_fwd)(const kn_backend *b, float *loss, const float *logits, const int32_t *targets,
                    int N, int V);
    int (*xent_fwd_bwd)(const kn_backend *b, float *loss, float *logits, const int32_t *targets,
                        int N, int V, float dscale);
    int (*sumsq)(const kn_backend *b, const float *x, size_t n, double *out);
    int (*scale)(const kn_backend *b, float *x, float s, size_t n);
    /* out = x - y, elementwise (out may be x or y) */
    int (*sub)(const kn_backend *b, float *out, const float *x, const float *y, size_t n);
    int (*adamw)(const kn_backend *b, float *p, const float *g, float *m, float *v, size_t n,
                 const struct kn_adamw_args *a);

    /* ---- codec ops: compression (GPU only; the CPU twin is codec/compress.c) */
    /* SparseLoCo compression on the device (codec/cuda_compress.cu; the
     * contract is spl_compress's, codec/codec.h and docs/FORMATS.md 7.3).
     * tab: KN_SPL_TAB int64 per tensor in host memory, tensors in wire order:
     * the device addresses of delta and ef, rows and columns of the 2-D view,
     * chunk rows and columns, k, the tensor's first tile and first kept value
     * (running sums over the tensors before it).  scratch: device memory of
     * the size spl_comp_scratch gives, kept from spl_comp_run to spl_comp_ef.
     * spl_comp_run selects and quantizes and downloads the compact result
     * into host arrays (idx, codes: [values]; luts: [n * bins]; shifts: [n]),
     * leaving ef untouched; *bad = -1, or the (tensor << 40 | element) of a
     * non-finite beta*ef + alpha*delta (the others then unspecified).
     * spl_comp_ef then writes ef = ef_new - sent (ef_new where not kept). */
#define KN_SPL_TAB 9
#define KN_SPL_DELTA 0
#define KN_SPL_EF 1
#define KN_SPL_ROWS 2
#define KN_SPL_COLS 3
#define KN_SPL_CH 4
#define KN_SPL_CW 5
#define KN_SPL_K 6
#define KN_SPL_TILE0 7
#define KN_SPL_VAL0 8
    int (*spl_comp_scratch)(const kn_backend *b, int n, int64_t tiles, int64_t values, int bins,
                            size_t *bytes);
    int (*spl_comp_run)(const kn_backend *b, void *scratch, const int64_t *tab, int n, int64_t tiles,
                        int64_t values, int bins, float beta, float alpha, float range,
                        uint16_t *idx, uint8_t *codes, float *luts, float *shifts, int64_t *bad);
    int (*spl_comp_ef)(const kn_backend *b, void *scratch, int n, int64_t tiles, int64_t values,
                       int bins, float beta, float alpha);
    /* ---- codec ops: aggregation (GPU only; the CPU twin is codec/aggregate.c) */
    /* One pass over tiles tile0 .. tile0 + ntl - 1 of one tensor (cols
     * columns, chunk ch x cw, ntx tiles a row, k values a tile, bins 4 or
     * 256): n peers, in this order, staged as 12-bit offsets (peer p's at
     * idx + p * idx_stride, k / 2 * 3 bytes a tile) and codes (at codes + p *
     * code_stride, the chunk's first value at value index vskip), sv[p * bins
     * + code] the clipped value.  Per coordinate the fp32 sum in peer order /
     * the count, then by mode: KN_AGG_CHECK sets stats[1] when one is not
     * finite; KN_AGG_APPLY x = fl(x - fl(alpha * g)), saving the old values
     * (saved non-NULL) at saved[tile * per + rank], rank the coordinate's
     * place in ascending offset order among the tile's touched ones;
     * KN_AGG_DENSE x = g; KN_AGG_RESTORE x = saved[...] (offsets only).
     * stats[0] += coordinates touched (not in KN_AGG_CHECK).  stats: two
     * device uint64. */
#define KN_AGG_CHECK 0
#define KN_AGG_APPLY 1
#define KN_AGG_DENSE 2
#define KN_AGG_RESTORE 3
    int (*agg_tiles)(const kn_backend *b, int mode, float *x, float *saved, const uint8_t *idx,
                     const uint8_t *codes, const float *sv, int n, int64_t idx_stride,
                     int64_t code_stride, int vskip, int64_t tile0, int64_t ntl, int64_t cols, int ch,
                     int cw, int64_t ntx, int k, int bins, int per, float alpha, uint64_t *stats);
};

/* The cuBLASLt workspace the CUDA backend allocates once per device. */
#define KN_GPU_BLAS_WORKSPACE ((size_t)32 << 20)

/* Bytes of the CUDA backend's GEMM staging (the bf16 copies of A and B, rows
 * padded to 8 elements, B at a 256-byte boundary) for one product; the
 * model reserves the largest of its products' once (kn_backend.reserve). */
static inline size_t kn_gemm_staging_bytes(int trans_a, int trans_b, int M, int N, int K) {
    size_t a_rows = (size_t)(trans_a ? K : M), a_cols = (size_t)(trans_a ? M : K);
    size_t b_rows = (size_t)(trans_b ? N : K), b_cols = (size_t)(trans_b ? K : N);
    size_t a_bytes = (a_rows * ((a_cols + 7) / 8 * 8) * 2 + 255) / 256 * 256;
    return a_bytes + b_rows * ((b_cols + 7) / 8 * 8) * 2;
}

/* "cpu", "cuda", "cuda:N" or "auto" (the first GPU if any, else the CPU).
 * "cuda" on a machine without a GPU fails with TS_EUNSUPPORTED and a
 * one-line reason. */
int kn_backend_open(const char *spec, const kn_backend **out, ts_err *e);
const kn_backend *kn_cpu(void);
/* True when the CUDA library loaded is the device emulator's
 * (TESSERA_CUDA_LIB=build/lib/libtessera_cudaemu.so, used by the tests). */
int kn_cuda_emulated(void);
/* Free and total bytes of a GPU backend's device (TS_EUNSUPPORTED on the CPU). */
int kn_backend_mem_info(const kn_backend *b, size_t *free_bytes, size_t *total_bytes);

/* Returns TS_OK when b implements every model op, else TS_EUNSUPPORTED with
 * a message naming the first missing one. */
int kn_backend_has_model_ops(const kn_backend *b, ts_err *e);

/* CPU twins, usable directly on host memory. */
void kn_cpu_f32_to_bf16(uint16_t *dst, const float *src, size_t n);
void kn_cpu_bf16_to_f32(float *dst, const uint16_t *src, size_t n);

/* ------------------------------------------------------------- Model ops
 *
 * The CPU twins of the model's ops.  All tensors are fp32, row-major and
 * dense unless a leading dimension (ld) is given.  N is a number of rows
 * (tokens: B*T), C a width.  "Accumulates" means the op adds into its
 * output (+=); the other ops overwrite.  Each op is deterministic for a given
 * input and thread count, and the reductions over rows (dw of RMSNorm, the
 * embedding gradient, sumsq) are also independent of the thread count.
 * OpenMP splits work across the cores; nothing here allocates.
 */

/* C(M,N) = alpha * op(A) op(B) + beta * C, op(X) = X or X^T (cblas_sgemm,
 * row-major).  A is (M,K) or, transposed, (K,M); B is (K,N) or (N,K). */
void kn_cpu_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);
void kn_cpu_fill(float *x, float v, size_t n);
/* dst and src must not overlap. */
void kn_cpu_copy(float *dst, const float *src, size_t n);

/* out(N,C) = wte(V,C)[tok[i]]; tokens must be in range (checked by callers). */
void kn_cpu_embed_fwd(float *out, const float *wte, const int32_t *tok, int N, int C);
/* dwte[tok[i]] += dout[i] (accumulates). */
void kn_cpu_embed_bwd(float *dwte, const float *dout, const int32_t *tok, int N, int C);

/* RMSNorm (Hugging Face LlamaRMSNorm): rstd[i] = 1/sqrt(mean_j x[i,j]^2 + eps),
 * out[i,j] = (x[i,j] * rstd[i]) * w[j].  x, out: (N,C); rstd: (N). */
void kn_cpu_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int N, int C,
                        float eps);
/* Backward: dx += d/dx, dw += d/dw (both accumulate). */
void kn_cpu_rmsnorm_bwd(float *dx, float *dw, const float *dout, const float *x, const float *w,
                        const float *rstd, int N, int C);

/* Rotary position embedding, in place, in the rotate-half convention of
 * Hugging Face Llama: for each of the nh heads of width hd stored at columns
 * [h*hd, (h+1)*hd) of the rows of x (row r = b*T + t, leading dimension ld),
 * with c = cos_t[t*hd/2 + i], s = sin_t[t*hd/2 + i], i < hd/2:
 *   x'[i]        = x[i] c - x[i + hd/2] s
 *   x'[i + hd/2] = x[i + hd/2] c + x[i] s
 * rope_bwd applies the transpose (the rotation by -angle) to a gradient. */
void kn_cpu_rope_fwd(float *x, int ld, const float *cos_t, const float *sin_t, int B, int T,
                     int nh, int hd);
void kn_cpu_rope_bwd(float *dx, int ld, const float *cos_t, const float *sin_t, int B, int T,
                     int nh, int hd);

/* Causal self-attention with grouped KV heads, in the FlashAttention style:
 * no (T,T) matrix is kept between the passes.  qkv: (B*T, (nh + 2 nkv) hd),
 * each row holding the nh query heads, then the nkv key heads, then the nkv
 * value heads; query head h reads KV head h / (nh / nkv).  Scores are scaled
 * by 1/sqrt(hd).  out: (B*T, nh*hd).  lse: (B, nh, T), the natural-log
 * logsumexp of each query row's scaled scores, kept for the backward pass,
 * which recomputes the probabilities from it.  scratch: at least
 * kn_attn_scratch_floats(B, T, nh, nkv, hd) floats, used by both passes and
 * holding nothing between them. */
void kn_cpu_attn_fwd(float *out, float *lse, float *scratch, const float *qkv, int B, int T, int nh,
                     int nkv, int hd);
/* Backward: dqkv (same layout as qkv) is overwritten with the gradients of
 * q, k and v, given dout (B*T, nh*hd) and the forward's out and lse. */
void kn_cpu_attn_bwd(float *dqkv, float *scratch, const float *dout, const float *qkv,
                     const float *out, const float *lse, int B, int T, int nh, int nkv, int hd);
/* Scratch floats the attention ops of every backend need. */
size_t kn_attn_scratch_floats(int B, int T, int nh, int nkv, int hd);

/* SwiGLU: gu (N, 2F) holds gate in columns [0,F) and up in [F,2F);
 * h(N,F) = silu(gate) * up, silu(x) = x / (1 + exp(-x)). */
void kn_cpu_swiglu_fwd(float *h, const float *gu, int N, int F);
/* dgu (N,2F) = gradient w.r.t. gate and up (overwrites). */
void kn_cpu_swiglu_bwd(float *dgu, const float *dh, const float *gu, int N, int F);

/* Cross-entropy per row: loss[i] = logsumexp(logits[i]) - logits[i, targets[i]],
 * 0 where targets[i] == KN_IGNORE_INDEX.  logits: (N,V). */
void kn_cpu_xent_fwd(float *loss, const float *logits, const int32_t *targets, int N, int V);
/* The same, then overwrites logits with dscale * (softmax - onehot(target))
 * (a zero row where the target is ignored). */
void kn_cpu_xent_fwd_bwd(float *loss, float *logits, const int32_t *targets, int N, int V,
                         float dscale);

/* sum x^2 in double, in a fixed order that depends only on n. */
double kn_cpu_sumsq(const float *x, size_t n);
void kn_cpu_scale(float *x, float s, size_t n);
void kn_cpu_sub(float *out, const float *x, const float *y, size_t n);
/* AdamW (PyTorch's torch.optim.AdamW, amsgrad off), elementwise:
 *   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps). */
void kn_cpu_adamw(float *p, const float *g, float *m, float *v, size_t n, const kn_adamw_args *a);

#ifdef __cplusplus
}
#endif

#endif
