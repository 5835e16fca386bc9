/* cpu_attention.c - causal self-attention with grouped KV heads, forward and
 * backward, for the CPU, in the FlashAttention style: no (T,T) matrix is
 * kept between the passes.
 *
 * Layout: qkv (B*T, (nh + 2 nkv) hd): per row the nh query heads, then the
 * nkv key heads, then the nkv value heads (the fused q/k/v projection writes
 * it so).  Query head h reads KV head h / (nh / nkv), the repeat_kv rule of
 * Hugging Face Llama.  The forward pass keeps, per query row, the logsumexp
 * of its scaled scores (lse, (B, nh, T)); the backward pass recomputes the
 * probabilities P = exp(S - lse) from it, block by block, and uses
 * D_i = sum_d dO[i,d] O[i,d] (= sum_j P_ij dP_ij) for the softmax gradient.
 *
 * Work is split by (batch, head) in the forward pass and by (batch, KV head)
 * in the backward pass, so that the query heads sharing a KV head accumulate
 * their dk and dv on one thread, in a fixed order.  Each task owns a fixed
 * slice of `scratch` (a block of scores in the forward pass, blocks of P and
 * dP in the backward pass), so the result does not depend on the thread
 * count.  Inside, each product is an sgemm on the calling thread (OpenBLAS
 * runs single-threaded inside an OpenMP region).  Causality: rows go in
 * blocks of 64 and a block only multiplies the key columns at or before its
 * last row, which skips most of the upper triangle without giving up sgemm. */
#include <math.h>
#include <string.h>

#include "cpu_math.h"
#include "kernels.h"

#define BLK 64

/* rows of a task's score block */
static int blk_rows(int T) { return T < BLK ? T : BLK; }

size_t kn_attn_scratch_floats(int B, int T, int nh, int nkv, int hd) {
    (void)hd;
    /* CPU: forward, one (BLK, T) block per (b, h); backward, two per
     * (b, kv head).  CUDA: D, (B, nh, T), in the backward pass -- never more
     * than the CPU's forward share. */
    size_t per = (size_t)blk_rows(T) * (size_t)T;
    size_t heads = (size_t)nh > 2 * (size_t)nkv ? (size_t)nh : 2 * (size_t)nkv;
    return (size_t)B * heads * per;
}

/* p[0..n): softmax of p[0..n) in place, returning the logsumexp */
KN_VEC static float softmax_row(float *p, int n) {
    float m = p[0];
    for (int j = 1; j < n; j++) m = p[j] > m ? p[j] : m;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < n; j++) {
        float e = kn_expf(p[j] - m);
        p[j] = e;
        s += e;
    }
    float inv = 1.0f / s;
#pragma omp simd
    for (int j = 0; j < n; j++) p[j] *= inv;
    return m + logf(s);
}

void kn_cpu_attn_fwd(float *out, float *lse, float *scratch, const float *qkv, int B, int T, int nh,
                     int nkv, int hd) {
    const int ld = (nh + 2 * nkv) * hd, ldo = nh * hd, rep = nh / nkv;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t per = (size_t)blk_rows(T) * (size_t)T;
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < nh; h++) {
            int kvh = h / rep;
            const float *base = qkv + (size_t)b * T * ld;
            const float *q = base + (size_t)h * hd;
            const float *k = base + (size_t)(nh + kvh) * hd;
            const float *v = base + (size_t)(nh + nkv + kvh) * hd;
            float *A = scratch + ((size_t)b * nh + h) * per;
            float *L = lse + ((size_t)b * nh + h) * (size_t)T;
            float *o = out + (size_t)b * T * ldo + (size_t)h * hd;
            for (int i0 = 0; i0 < T; i0 += BLK) {
                int i1 = i0 + BLK < T ? i0 + BLK : T;
                /* A (i1-i0, i1) = scale * q[i0:i1] k[0:i1]^T */
                kn_cpu_gemm(0, 1, i1 - i0, i1, hd, scale, q + (size_t)i0 * ld, ld, k, ld, 0.0f, A,
                            i1);
                for (int i = i0; i < i1; i++) {
                    float *p = A + (size_t)(i - i0) * i1;
                    L[i] = softmax_row(p, i + 1);
                    memset(p + i + 1, 0, sizeof(float) * (size_t)(i1 - i - 1));
                }
                /* o[i0:i1] = A v[0:i1] */
                kn_cpu_gemm(0, 0, i1 - i0, hd, i1, 1.0f, A, i1, v, ld, 0.0f, o + (size_t)i0 * ldo,
                            ldo);
            }
        }
    }
}

/* Row i of a block: p[j] = exp(s[j] - lse) and
 * dp[j] = scale * p[j] (dp[j] - D) for j < n; both 0 for n <= j < w. */
KN_VEC static void dsoftmax_row(float *p, float *dp, int n, int w, float lse, float D, float scale) {
#pragma omp simd
    for (int j = 0; j < n; j++) {
        float e = kn_expf(p[j] - lse);
        p[j] = e;
        dp[j] = scale * e * (dp[j] - D);
    }
    for (int j = n; j < w; j++) p[j] = dp[j] = 0.0f;
}

void kn_cpu_attn_bwd(float *dqkv, float *scratch, const float *dout, const float *qkv,
                     const float *out, const float *lse, int B, int T, int nh, int nkv, int hd) {
    const int ld = (nh + 2 * nkv) * hd, ldo = nh * hd, rep = nh / nkv;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t per = (size_t)blk_rows(T) * (size_t)T;
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
    for (int b = 0; b < B; b++) {
        for (int kvh = 0; kvh < nkv; kvh++) {
            const float *base = qkv + (size_t)b * T * ld;
            float *dbase = dqkv + (size_t)b * T * ld;
            const float *k = base + (size_t)(nh + kvh) * hd;
            const float *v = base + (size_t)(nh + nkv + kvh) * hd;
            float *dk = dbase + (size_t)(nh + kvh) * hd;
            float *dv = dbase + (size_t)(nh + nkv + kvh) * hd;
            float *P = scratch + ((size_t)b * nkv + kvh) * 2 * per, *dP = P + per;
            for (int t = 0; t < T; t++) {
                memset(dk + (size_t)t * ld, 0, sizeof(float) * (size_t)hd);
                memset(dv + (size_t)t * ld, 0, sizeof(float) * (size_t)hd);
            }
            for (int r = 0; r < rep; r++) {
                int h = kvh * rep + r;
                const float *q = base + (size_t)h * hd;
                float *dq = dbase + (size_t)h * hd;
                const float *dO = dout + (size_t)b * T * ldo + (size_t)h * hd;
                const float *O = out + (size_t)b * T * ldo + (size_t)h * hd;
                const float *L = lse + ((size_t)b * nh + h) * (size_t)T;
                for (int i0 = 0; i0 < T; i0 += BLK) {
                    int i1 = i0 + BLK < T ? i0 + BLK : T, m = i1 - i0;
                    /* P (m, i1) = scale * q[i0:i1] k[0:i1]^T, the scores */
                    kn_cpu_gemm(0, 1, m, i1, hd, scale, q + (size_t)i0 * ld, ld, k, ld, 0.0f, P, i1);
                    /* dP (m, i1) = dO[i0:i1] v[0:i1]^T */
                    kn_cpu_gemm(0, 1, m, i1, hd, 1.0f, dO + (size_t)i0 * ldo, ldo, v, ld, 0.0f, dP,
                                i1);
                    for (int i = i0; i < i1; i++) {
                        const float *oi = O + (size_t)i * ldo, *gi = dO + (size_t)i * ldo;
                        float D = 0.0f;
                        for (int x = 0; x < hd; x++) D += gi[x] * oi[x];
                        size_t row = (size_t)(i - i0) * i1;
                        dsoftmax_row(P + row, dP + row, i + 1, i1, L[i], D, scale);
                    }
                    /* dq[i0:i1] = dS k[0:i1] */
                    kn_cpu_gemm(0, 0, m, hd, i1, 1.0f, dP, i1, k, ld, 0.0f, dq + (size_t)i0 * ld, ld);
                    /* dk[0:i1] += dS^T q[i0:i1] */
                    kn_cpu_gemm(1, 0, i1, hd, m, 1.0f, dP, i1, q + (size_t)i0 * ld, ld, 1.0f, dk, ld);
                    /* dv[0:i1] += P^T dO[i0:i1] */
                    kn_cpu_gemm(1, 0, i1, hd, m, 1.0f, P, i1, dO + (size_t)i0 * ldo, ldo, 1.0f, dv,
                                ld);
                }
            }
        }
    }
}
