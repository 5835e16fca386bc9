/* cpu_rmsnorm.c - RMSNorm forward and backward (Hugging Face LlamaRMSNorm).
 *
 *   rstd[i]  = 1 / sqrt(mean_j x[i,j]^2 + eps)        x: (N,C), rstd: (N)
 *   y[i,j]   = (x[i,j] * rstd[i]) * w[j]               the order HF uses
 *   dx[i,k] += rstd w_k dy_k - (rstd^3 / C) x_k sum_j dy_j w_j x_j
 *   dw[j]   += sum_i dy[i,j] x[i,j] rstd[i]
 *
 * Rows are independent, so the forward pass and dx split the rows among
 * threads; dw sums over rows, so its pass splits the columns instead (no
 * races, the same order of additions for any thread count). */
#include <math.h>

#include "cpu_math.h"
#include "kernels.h"

KN_VEC static void row_fwd(float *out, float *rstd, const float *x, const float *w, int C, float eps) {
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int j = 0; j < C; j++) ss += x[j] * x[j];
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    *rstd = r;
#pragma omp simd
    for (int j = 0; j < C; j++) out[j] = (x[j] * r) * w[j];
}

void kn_cpu_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int N, int C,
                        float eps) {
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C > 32768)
    for (int i = 0; i < N; i++)
        row_fwd(out + (size_t)i * C, rstd + i, x + (size_t)i * C, w, C, eps);
}

KN_VEC static void row_bwd(float *dx, const float *dy, const float *x, const float *w, float r, int C) {
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < C; j++) dot += dy[j] * w[j] * x[j];
    float c = r * r * r * dot / (float)C;
#pragma omp simd
    for (int j = 0; j < C; j++) dx[j] += r * w[j] * dy[j] - c * x[j];
}

KN_VEC static void col_block_dw(float *dw, const float *dy, const float *x, const float *rstd, int N,
                                int C, int c0, int c1) {
    float acc[64];
    int n = c1 - c0;
    for (int j = 0; j < n; j++) acc[j] = 0.0f;
    for (int i = 0; i < N; i++) {
        const float *a = dy + (size_t)i * C + c0, *b = x + (size_t)i * C + c0;
        float r = rstd[i];
#pragma omp simd
        for (int j = 0; j < n; j++) acc[j] += a[j] * b[j] * r;
    }
    for (int j = 0; j < n; j++) dw[c0 + j] += acc[j];
}

void kn_cpu_rmsnorm_bwd(float *dx, float *dw, const float *dout, const float *x, const float *w,
                        const float *rstd, int N, int C) {
    int par = (size_t)N * (size_t)C > 32768;
#pragma omp parallel if (par)
    {
#pragma omp for schedule(static)
        for (int i = 0; i < N; i++)
            row_bwd(dx + (size_t)i * C, dout + (size_t)i * C, x + (size_t)i * C, w, rstd[i], C);
        int nb = (C + 63) / 64;
#pragma omp for schedule(static)
        for (int cb = 0; cb < nb; cb++) {
            int c0 = cb * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
            col_block_dw(dw, dout, x, rstd, N, C, c0, c1);
        }
    }
}
