/* cpu_embed.c - token embedding forward/backward, and the plain memory ops
 * (fill, copy, scale) of the CPU backend. */
#include <string.h>

#include "cpu_math.h"
#include "kernels.h"

#define PAR_MIN ((size_t)1 << 16) /* below this many floats, one thread */

/* (N) tokens, wte (V,C) -> out (N,C) */
void kn_cpu_embed_fwd(float *out, const float *wte, const int32_t *tok, int N, int C) {
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C > PAR_MIN)
    for (int i = 0; i < N; i++)
        memcpy(out + (size_t)i * C, wte + (size_t)tok[i] * C, sizeof(float) * (size_t)C);
}

/* dwte[tok[i], :] += dout[i, :].  Two rows may hold the same token, so the
 * threads split the columns, not the rows: no races, and every element is
 * summed in row order whatever the thread count. */
void kn_cpu_embed_bwd(float *dwte, const float *dout, const int32_t *tok, int N, int C) {
    const int W = 64;
    int nb = (C + W - 1) / W;
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)C > PAR_MIN)
    for (int cb = 0; cb < nb; cb++) {
        int c0 = cb * W, c1 = c0 + W < C ? c0 + W : C;
        for (int i = 0; i < N; i++) {
            float *d = dwte + (size_t)tok[i] * C;
            const float *s = dout + (size_t)i * C;
            for (int j = c0; j < c1; j++) d[j] += s[j];
        }
    }
}

void kn_cpu_fill(float *x, float v, size_t n) {
    if (v == 0.0f) {
        const size_t chunk = (size_t)1 << 20;
        size_t nc = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (nc > 1)
        for (size_t c = 0; c < nc; c++) {
            size_t a = c * chunk, b = a + chunk < n ? a + chunk : n;
            memset(x + a, 0, (b - a) * sizeof(float));
        }
        return;
    }
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = v;
}

void kn_cpu_copy(float *dst, const float *src, size_t n) {
    const size_t chunk = (size_t)1 << 20;
    size_t nc = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        size_t a = c * chunk, b = a + chunk < n ? a + chunk : n;
        memcpy(dst + a, src + a, (b - a) * sizeof(float));
    }
}
