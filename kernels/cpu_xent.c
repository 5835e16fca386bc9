/* cpu_xent.c - softmax cross-entropy over the vocabulary, fused with its
 * backward pass.
 *
 *   loss[i]   = log sum_j e^{x_ij} - x_{i,t_i}          (max-shifted)
 *   dx_ij     = dscale * (softmax(x_i)_j - [j == t_i])
 * Rows whose target is KN_IGNORE_INDEX get loss 0 and a zero gradient.  The
 * fused version overwrites the logits with their gradient, so the model only
 * ever holds one (rows, V) block of logits at a time. */
#include <math.h>
#include <string.h>

#include "cpu_math.h"
#include "kernels.h"

KN_VEC static float row_max(const float *x, int V) {
    float m = x[0];
#pragma omp simd reduction(max : m)
    for (int j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
    return m;
}

KN_VEC static float row_sumexp(const float *x, int V, float m) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < V; j++) s += kn_expf(x[j] - m);
    return s;
}

/* x <- e^{x - m}; returns the sum */
KN_VEC static float row_exp_inplace(float *x, int V, float m) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < V; j++) {
        float e = kn_expf(x[j] - m);
        x[j] = e;
        s += e;
    }
    return s;
}

KN_VEC static void row_scale(float *x, int V, float c) {
#pragma omp simd
    for (int j = 0; j < V; j++) x[j] *= c;
}

void kn_cpu_xent_fwd(float *loss, const float *logits, const int32_t *targets, int N, int V) {
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)V > 65536)
    for (int i = 0; i < N; i++) {
        const float *x = logits + (size_t)i * V;
        int t = targets[i];
        if (t == KN_IGNORE_INDEX) {
            loss[i] = 0.0f;
            continue;
        }
        float m = row_max(x, V);
        float s = row_sumexp(x, V, m);
        loss[i] = (m + logf(s)) - x[t];
    }
}

void kn_cpu_xent_fwd_bwd(float *loss, float *logits, const int32_t *targets, int N, int V,
                         float dscale) {
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)V > 65536)
    for (int i = 0; i < N; i++) {
        float *x = logits + (size_t)i * V;
        int t = targets[i];
        if (t == KN_IGNORE_INDEX) {
            loss[i] = 0.0f;
            memset(x, 0, sizeof(float) * (size_t)V);
            continue;
        }
        float xt = x[t];
        float m = row_max(x, V);
        float s = row_exp_inplace(x, V, m);
        loss[i] = (m + logf(s)) - xt;
        row_scale(x, V, dscale / s);
        x[t] -= dscale;
    }
}
