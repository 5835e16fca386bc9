/* cpu_adamw.c - the inner optimizer and the reductions around it: AdamW,
 * sum of squares (gradient norm) and scaling (clipping).
 *
 * AdamW follows torch.optim.AdamW (amsgrad off, decoupled weight decay)
 * operation for operation, in fp32:
 *   p  = p * (1 - lr wd)
 *   m  = b1 m + (1 - b1) g
 *   v  = b2 v + (1 - b2) g^2
 *   p  = p - step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps),
 *        step_size = lr / (1 - b1^t)
 */
#include <math.h>

#include "cpu_math.h"
#include "kernels.h"

KN_VEC static void adamw_span(float *p, const float *g, float *m, float *v, size_t n, float decay,
                              float b1, float b2, float eps, float step, float bc2s) {
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * decay;
        float mi = m[i] * b1 + gi * c1;
        float vi = v[i] * b2 + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step * (mi / (sqrtf(vi) / bc2s + eps));
    }
}

void kn_cpu_adamw(float *p, const float *g, float *m, float *v, size_t n, const kn_adamw_args *a) {
    const size_t chunk = 1 << 14;
    size_t nc = (n + chunk - 1) / chunk;
    float decay = 1.0f - a->lr * a->weight_decay;
#pragma omp parallel for schedule(static) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        size_t s = c * chunk, e = s + chunk < n ? s + chunk : n;
        adamw_span(p + s, g + s, m + s, v + s, e - s, decay, a->beta1, a->beta2, a->eps, a->step_size,
                   a->bc2_sqrt);
    }
}

KN_VEC static double sumsq_span(const float *x, size_t n) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

/* Blocks are a function of n alone (at most 1024 of them), summed one by one
 * in order: the result does not depend on the number of threads. */
double kn_cpu_sumsq(const float *x, size_t n) {
    if (n == 0) return 0.0;
    enum { MAXB = 1024 };
    double part[MAXB];
    size_t bs = (n + MAXB - 1) / MAXB;
    if (bs < 4096) bs = 4096;
    size_t nb = (n + bs - 1) / bs;
#pragma omp parallel for schedule(static) if (nb > 1)
    for (size_t b = 0; b < nb; b++) {
        size_t s = b * bs, e = s + bs < n ? s + bs : n;
        part[b] = sumsq_span(x + s, e - s);
    }
    double t = 0.0;
    for (size_t b = 0; b < nb; b++) t += part[b];
    return t;
}

void kn_cpu_scale(float *x, float s, size_t n) {
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++) x[i] *= s;
}
