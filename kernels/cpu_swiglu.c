/* cpu_swiglu.c - the SwiGLU activation of the Llama MLP.
 *
 * gu (N, 2F) is the output of the fused gate/up projection: gate in columns
 * [0,F), up in [F,2F).
 *   h      = silu(g) * u,            silu(g) = g / (1 + e^-g) = g sig(g)
 *   dg     = dh * u * sig(g) (1 + g (1 - sig(g)))
 *   du     = dh * silu(g)
 */
#include "cpu_math.h"
#include "kernels.h"

KN_VEC static void fwd_row(float *h, const float *g, const float *u, int F) {
#pragma omp simd
    for (int j = 0; j < F; j++) h[j] = g[j] / (1.0f + kn_expf(-g[j])) * u[j];
}

void kn_cpu_swiglu_fwd(float *h, const float *gu, int N, int F) {
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)F > 32768)
    for (int i = 0; i < N; i++) {
        const float *g = gu + (size_t)i * 2 * F;
        fwd_row(h + (size_t)i * F, g, g + F, F);
    }
}

KN_VEC static void bwd_row(float *dg, float *du, const float *dh, const float *g, const float *u, int F) {
#pragma omp simd
    for (int j = 0; j < F; j++) {
        float s = 1.0f / (1.0f + kn_expf(-g[j]));
        float silu = g[j] * s;
        dg[j] = dh[j] * u[j] * (s * (1.0f + g[j] * (1.0f - s)));
        du[j] = dh[j] * silu;
    }
}

void kn_cpu_swiglu_bwd(float *dgu, const float *dh, const float *gu, int N, int F) {
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)F > 32768)
    for (int i = 0; i < N; i++) {
        const float *g = gu + (size_t)i * 2 * F;
        float *d = dgu + (size_t)i * 2 * F;
        bwd_row(d, d + F, dh + (size_t)i * F, g, g + F, F);
    }
}
