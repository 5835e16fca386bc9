/* cuda_api.h - the table of C entry points that the CUDA code (the .cu files
 * in kernels/) exports from build/lib/libtessera_cuda.so.  Private to
 * kernels/.  The binaries load that library with dlopen on first use, so
 * they start fast and run on machines with no CUDA libraries at all.
 *
 * The same table is exported by build/lib/libtessera_cudaemu.so, the same
 * .cu sources compiled with g++ under the device emulator
 * (tests/cudaemu/); TESSERA_CUDA_LIB=<that library> makes any binary see one
 * emulated GPU, which is how `make test` runs the CUDA backend everywhere.
 *
 * Every op runs on device `dev` (cudaSetDevice first), on the default stream,
 * and mirrors the kn_backend op of the same name (kernels.h gives the
 * contract); pointers are device memory.  Ops return TS_OK or TS_EIO (a CUDA
 * or cuBLAS error, printed with its place). */
#ifndef TESSERA_KERNELS_CUDA_API_H
#define TESSERA_KERNELS_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

#define KN_CU_API_VERSION 3

typedef struct kn_cu_api {
    int version; /* KN_CU_API_VERSION */
    int emulated; /* 1 in the device emulator's build */
    int (*devices)(kn_device_info *out, int max, const char **why);
    void *(*alloc)(int dev, size_t bytes);
    void (*free)(int dev, void *p);
    int (*upload)(int dev, void *dst, const void *src, size_t bytes);
    int (*download)(int dev, void *dst, const void *src, size_t bytes);
    int (*sync)(int dev);
    /* bytes free and total on the device */
    int (*mem_info)(int dev, size_t *free_bytes, size_t *total_bytes);
    int (*f32_to_bf16)(int dev, uint16_t *dst, const float *src, size_t n);
    int (*bf16_to_f32)(int dev, float *dst, const uint16_t *src, size_t n);
    /* cuBLAS(Lt) handle creation, proving the library links and loads */
    int (*blas_check)(int dev, const char **why);
    /* grows the GEMM staging to at least this many bytes now */
    int (*gemm_reserve)(int dev, size_t bytes);

    /* ---- model ops */
    int (*gemm)(int dev, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc);
    int (*fill)(int dev, float *x, float v, size_t n);
    int (*copy)(int dev, float *dst, const float *src, size_t n);
    int (*embed_fwd)(int dev, float *out, const float *wte, const int32_t *tok, int N, int C);
    int (*embed_bwd)(int dev, float *dwte, const float *dout, const int32_t *tok, int N, int C);
    int (*rmsnorm_fwd)(int dev, float *out, float *rstd, const float *x, const float *w, int N, int C,
                       float eps);
    int (*rmsnorm_bwd)(int dev, float *dx, float *dw, const float *dout, const float *x,
                       const float *w, const float *rstd, int N, int C);
    int (*rope_fwd)(int dev, float *x, int ld, const float *cos_t, const float *sin_t, int B, int T,
                    int nh, int hd);
    int (*rope_bwd)(int dev, float *dx, int ld, const float *cos_t, const float *sin_t, int B, int T,
                    int nh, int hd);
    int (*attn_fwd)(int dev, float *out, float *lse, float *scratch, const float *qkv, int B, int T,
                    int nh, int nkv, int hd);
    int (*attn_bwd)(int dev, float *dqkv, float *scratch, const float *dout, const float *qkv,
                    const float *out, const float *lse, int B, int T, int nh, int nkv, int hd);
    int (*swiglu_fwd)(int dev, float *h, const float *gu, int N, int F);
    int (*swiglu_bwd)(int dev, float *dgu, const float *dh, const float *gu, int N, int F);
    int (*xent_fwd)(int dev, float *loss, const float *logits, const int32_t *targets, int N, int V);
    int (*xent_fwd_bwd)(int dev, float *loss, float *logits, const int32_t *targets, int N, int V,
                        float dscale);
    int (*sumsq)(int dev, const float *x, size_t n, double *out);
    int (*scale)(int dev, float *x, float s, size_t n);
    int (*sub)(int dev, float *out, const float *x, const float *y, size_t n);
    int (*adamw)(int dev, float *p, const float *g, float *m, float *v, size_t n,
                 const kn_adamw_args *a);

    /* ---- codec ops: compression (codec/cuda_compress.cu) */
    int (*spl_comp_scratch)(int dev, int n, int64_t tiles, int64_t values, int bins, size_t *bytes);
    int (*spl_comp_run)(int dev, void *scratch, const int64_t *tab, int n, int64_t tiles,
                        int64_t values, int bins, float beta, float alpha, float range,
                        uint16_t *idx, uint8_t *codes, float *luts, float *shifts, int64_t *bad);
    int (*spl_comp_ef)(int dev, void *scratch, int n, int64_t tiles, int64_t values, int bins,
                       float beta, float alpha);
    /* ---- codec ops: aggregation (codec/cuda_aggregate.cu) */
    int (*agg_tiles)(int dev, int mode, float *x, float *saved, const uint8_t *idx,
                     const uint8_t *codes, const float *sv, int n, int64_t idx_stride,
                     int64_t code_stride, int vskip, int64_t tile0, int64_t ntl, int64_t cols, int ch,
                     int cw, int64_t ntx, int k, int bins, int per, float alpha, uint64_t *stats);
} kn_cu_api;

#ifdef __cplusplus
extern "C" {
#endif
/* The one symbol the library exports. */
const kn_cu_api *kn_cu_get_api(void);

/* The ops, defined across the .cu files (cuda_core.cu builds the table):
 * cuda_core.cu    memory, conversions, fill, copy, scale
 * cuda_gemm.cu    gemm (cuBLASLt, bf16 inputs, fp32 accumulation and output)
 * cuda_ops.cu     embedding, RMSNorm, RoPE, SwiGLU, cross-entropy, sumsq, AdamW
 * cuda_attention.cu  attention forward and backward (FlashAttention style) */
int kn_cu_blas_check(int dev, const char **why);
int kn_cu_gemm_reserve(int dev, size_t bytes);
int kn_cu_gemm(int dev, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc);
int kn_cu_embed_fwd(int dev, float *out, const float *wte, const int32_t *tok, int N, int C);
int kn_cu_embed_bwd(int dev, float *dwte, const float *dout, const int32_t *tok, int N, int C);
int kn_cu_rmsnorm_fwd(int dev, float *out, float *rstd, const float *x, const float *w, int N, int C,
                      float eps);
int kn_cu_rmsnorm_bwd(int dev, float *dx, float *dw, const float *dout, const float *x,
                      const float *w, const float *rstd, int N, int C);
int kn_cu_rope_fwd(int dev, float *x, int ld, const float *cos_t, const float *sin_t, int B, int T,
                   int nh, int hd);
int kn_cu_rope_bwd(int dev, float *dx, int ld, const float *cos_t, const float *sin_t, int B, int T,
                   int nh, int hd);
int kn_cu_attn_fwd(int dev, float *out, float *lse, float *scratch, const float *qkv, int B, int T,
                   int nh, int nkv, int hd);
int kn_cu_attn_bwd(int dev, float *dqkv, float *scratch, const float *dout, const float *qkv,
                   const float *out, const float *lse, int B, int T, int nh, int nkv, int hd);
int kn_cu_swiglu_fwd(int dev, float *h, const float *gu, int N, int F);
int kn_cu_swiglu_bwd(int dev, float *dgu, const float *dh, const float *gu, int N, int F);
int kn_cu_xent_fwd(int dev, float *loss, const float *logits, const int32_t *targets, int N, int V);
int kn_cu_xent_fwd_bwd(int dev, float *loss, float *logits, const int32_t *targets, int N, int V,
                       float dscale);
int kn_cu_sumsq(int dev, const float *x, size_t n, double *out);
int kn_cu_adamw(int dev, float *p, const float *g, float *m, float *v, size_t n,
                const kn_adamw_args *a);
/* codec ops: compression (codec/cuda_compress.cu) */
int kn_cu_spl_comp_scratch(int dev, int n, int64_t tiles, int64_t values, int bins, size_t *bytes);
int kn_cu_spl_comp_run(int dev, void *scratch, const int64_t *tab, int n, int64_t tiles,
                       int64_t values, int bins, float beta, float alpha, float range,
                       uint16_t *idx, uint8_t *codes, float *luts, float *shifts, int64_t *bad);
int kn_cu_spl_comp_ef(int dev, void *scratch, int n, int64_t tiles, int64_t values, int bins,
                      float beta, float alpha);
/* codec ops: aggregation (codec/cuda_aggregate.cu) */
int kn_cu_agg_tiles(int dev, int mode, float *x, float *saved, const uint8_t *idx,
                    const uint8_t *codes, const float *sv, int n, int64_t idx_stride,
                    int64_t code_stride, int vskip, int64_t tile0, int64_t ntl, int64_t cols, int ch,
                    int cw, int64_t ntx, int k, int bins, int per, float alpha, uint64_t *stats);
#ifdef __cplusplus
}
#endif

#endif
