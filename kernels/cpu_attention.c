/* cpu_attention.c - causal self-attention with grouped KV heads, forward and
 * backward, for the CPU.
 *
 * Layout: qkv (B*T, (nh + 2 nkv) hd): per row the nh query heads, then the
 * nkv key heads, then the nkv value heads (the fused q/k/v projection writes
 * it so).  Query head h reads KV head h / (nh / nkv), the repeat_kv rule of
 * Hugging Face Llama.  The softmax probabilities are kept, (B, nh, T, T), for
 * the backward pass (T is at most a few thousand here; at T = 256 they are a
 * few percent of the activations).
 *
 * Work is split by (batch, head) in the forward pass and by (batch, KV head)
 * in the backward pass, so that the query heads sharing a KV head accumulate
 * their dk and dv on one thread, in a fixed order.  Inside, each product is an
 * sgemm on the calling thread (OpenBLAS runs single-threaded inside an OpenMP
 * region).  Causality: rows go in blocks of 64 and a block only multiplies the
 * key columns at or before its last row, which skips most of the upper
 * triangle without giving up sgemm. */
#include <math.h>
#include <string.h>

#include "cpu_math.h"
#include "kernels.h"

#define BLK 64

/* p[0..n): softmax of p[0..n) in place; p[n..T) = 0 */
KN_VEC static void softmax_row(float *p, int n, int T) {
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
    for (int j = n; j < T; j++) p[j] = 0.0f;
}

void kn_cpu_attn_fwd(float *out, float *att, const float *qkv, int B, int T, int nh, int nkv,
                     int hd) {
    const int ld = (nh + 2 * nkv) * hd, ldo = nh * hd, rep = nh / nkv;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < nh; h++) {
            int kvh = h / rep;
            const float *base = qkv + (size_t)b * T * ld;
            const float *q = base + (size_t)h * hd;
            const float *k = base + (size_t)(nh + kvh) * hd;
            const float *v = base + (size_t)(nh + nkv + kvh) * hd;
            float *A = att + ((size_t)b * nh + h) * (size_t)T * T;
            float *o = out + (size_t)b * T * ldo + (size_t)h * hd;
            for (int i0 = 0; i0 < T; i0 += BLK) {
                int i1 = i0 + BLK < T ? i0 + BLK : T;
                /* A[i0:i1, 0:i1] = scale * q[i0:i1] k[0:i1]^T */
                kn_cpu_gemm(0, 1, i1 - i0, i1, hd, scale, q + (size_t)i0 * ld, ld, k, ld, 0.0f,
                            A + (size_t)i0 * T, T);
                for (int i = i0; i < i1; i++) softmax_row(A + (size_t)i * T, i + 1, T);
                /* o[i0:i1] = A[i0:i1, 0:i1] v[0:i1] */
                kn_cpu_gemm(0, 0, i1 - i0, hd, i1, 1.0f, A + (size_t)i0 * T, T, v, ld, 0.0f,
                            o + (size_t)i0 * ldo, ldo);
            }
        }
    }
}

/* dS[j] = scale * P[j] (dP[j] - sum_k P[k] dP[k]), j < n, in place over dP */
KN_VEC static void dsoftmax_row(float *dp, const float *p, int n, float scale) {
    float d = 0.0f;
#pragma omp simd reduction(+ : d)
    for (int j = 0; j < n; j++) d += p[j] * dp[j];
#pragma omp simd
    for (int j = 0; j < n; j++) dp[j] = scale * p[j] * (dp[j] - d);
}

void kn_cpu_attn_bwd(float *dqkv, float *scratch, const float *dout, const float *qkv,
                     const float *att, int B, int T, int nh, int nkv, int hd) {
    const int ld = (nh + 2 * nkv) * hd, ldo = nh * hd, rep = nh / nkv;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
    for (int b = 0; b < B; b++) {
        for (int kvh = 0; kvh < nkv; kvh++) {
            const float *base = qkv + (size_t)b * T * ld;
            float *dbase = dqkv + (size_t)b * T * ld;
            const float *k = base + (size_t)(nh + kvh) * hd;
            const float *v = base + (size_t)(nh + nkv + kvh) * hd;
            float *dk = dbase + (size_t)(nh + kvh) * hd;
            float *dv = dbase + (size_t)(nh + nkv + kvh) * hd;
            for (int t = 0; t < T; t++) {
                memset(dk + (size_t)t * ld, 0, sizeof(float) * (size_t)hd);
                memset(dv + (size_t)t * ld, 0, sizeof(float) * (size_t)hd);
            }
            for (int r = 0; r < rep; r++) {
                int h = kvh * rep + r;
                const float *q = base + (size_t)h * hd;
                float *dq = dbase + (size_t)h * hd;
                const float *dO = dout + (size_t)b * T * ldo + (size_t)h * hd;
                const float *P = att + ((size_t)b * nh + h) * (size_t)T * T;
                float *dP = scratch + ((size_t)b * nh + h) * (size_t)T * T;
                for (int i0 = 0; i0 < T; i0 += BLK) {
                    int i1 = i0 + BLK < T ? i0 + BLK : T, m = i1 - i0;
                    /* dP[i0:i1, 0:i1] = dO[i0:i1] v[0:i1]^T */
                    kn_cpu_gemm(0, 1, m, i1, hd, 1.0f, dO + (size_t)i0 * ldo, ldo, v, ld, 0.0f,
                                dP + (size_t)i0 * T, T);
                    for (int i = i0; i < i1; i++)
                        dsoftmax_row(dP + (size_t)i * T, P + (size_t)i * T, i + 1, scale);
                    /* zero the part of the block above the diagonal so the
                     * block products below see exact zeros there */
                    for (int i = i0; i < i1; i++)
                        memset(dP + (size_t)i * T + i + 1, 0, sizeof(float) * (size_t)(i1 - i - 1));
                    /* dq[i0:i1] = dS[i0:i1, 0:i1] k[0:i1] */
                    kn_cpu_gemm(0, 0, m, hd, i1, 1.0f, dP + (size_t)i0 * T, T, k, ld, 0.0f,
                                dq + (size_t)i0 * ld, ld);
                    /* dk[0:i1] += dS[i0:i1, 0:i1]^T q[i0:i1] */
                    kn_cpu_gemm(1, 0, i1, hd, m, 1.0f, dP + (size_t)i0 * T, T, q + (size_t)i0 * ld, ld,
                                1.0f, dk, ld);
                    /* dv[0:i1] += P[i0:i1, 0:i1]^T dO[i0:i1] */
                    kn_cpu_gemm(1, 0, i1, hd, m, 1.0f, P + (size_t)i0 * T, T, dO + (size_t)i0 * ldo,
                                ldo, 1.0f, dv, ld);
                }
            }
        }
    }
}
