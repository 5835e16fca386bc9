/* cpu_rope.c - rotary position embedding in the rotate-half convention of
 * Hugging Face Llama, applied in place to the query and key heads.
 *
 * For position t and pair index i < hd/2 (angle t * theta^(-2i/hd), whose
 * cos and sin the model tabulates once: cos_t, sin_t are (T, hd/2)):
 *   x'[i]        = x[i] cos - x[i + hd/2] sin
 *   x'[i + hd/2] = x[i + hd/2] cos + x[i] sin
 * The backward pass multiplies by the transpose, i.e. rotates by -angle. */
#include "cpu_math.h"
#include "kernels.h"

KN_VEC static void rope_row(float *x, const float *c, const float *s, int nh, int hd, float sign) {
    int h2 = hd / 2;
    for (int h = 0; h < nh; h++) {
        float *a = x + (size_t)h * hd, *b = a + h2;
#pragma omp simd
        for (int i = 0; i < h2; i++) {
            float x1 = a[i], x2 = b[i], si = sign * s[i];
            a[i] = x1 * c[i] - x2 * si;
            b[i] = x2 * c[i] + x1 * si;
        }
    }
}

static void rope(float *x, int ld, const float *cos_t, const float *sin_t, int B, int T, int nh,
                 int hd, float sign) {
    int N = B * T, h2 = hd / 2;
#pragma omp parallel for schedule(static) if ((size_t)N * (size_t)nh * (size_t)hd > 32768)
    for (int r = 0; r < N; r++) {
        int t = r % T;
        rope_row(x + (size_t)r * ld, cos_t + (size_t)t * h2, sin_t + (size_t)t * h2, nh, hd, sign);
    }
}

void kn_cpu_rope_fwd(float *x, int ld, const float *cos_t, const float *sin_t, int B, int T, int nh,
                     int hd) {
    rope(x, ld, cos_t, sin_t, B, T, nh, hd, 1.0f);
}

void kn_cpu_rope_bwd(float *dx, int ld, const float *cos_t, const float *sin_t, int B, int T, int nh,
                     int hd) {
    rope(dx, ld, cos_t, sin_t, B, T, nh, hd, -1.0f);
}
