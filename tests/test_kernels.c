/* test_kernels.c - backends: choosing one, and the CPU twins.  The CUDA
 * kernels are checked against these twins by tests/backend_ops.c, on the
 * device emulator in every run of the suite and on a real GPU by
 * bench/gpu.sh. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/kernels.h"

static float rand_float(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    uint32_t bits = *s;
    /* a spread of magnitudes and signs, and some specials */
    union { uint32_t u; float f; } v = {.u = (bits & 0x8fffffffu) | 0x30000000u};
    return v.f;
}

TEST(cpu_bf16_twin_matches_scalar) {
    size_t n = 1 << 18;
    float *x = malloc(n * sizeof *x), *back = malloc(n * sizeof *back);
    uint16_t *h = malloc(n * sizeof *h);
    uint32_t s = 7;
    for (size_t i = 0; i < n; i++) x[i] = rand_float(&s);
    x[0] = 0.0f;
    x[1] = -0.0f;
    x[2] = INFINITY;
    x[3] = NAN;
    x[4] = FLT_MAX; /* rounds up to infinity */
    kn_cpu_f32_to_bf16(h, x, n);
    kn_cpu_bf16_to_f32(back, h, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i] != ts_f32_to_bf16(x[i])) bad++;
        if (isfinite(x[i]) && isfinite(back[i]) && fabsf(back[i] - x[i]) > fabsf(x[i]) * (1.0f / 256))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(isnan(back[3]));
    CHECK(isinf(back[4]));
    free(x);
    free(back);
    free(h);
}

TEST(backend_selection) {
    ts_err e = {0};
    const kn_backend *b;
    REQUIRE(kn_backend_open("cpu", &b, &e) == TS_OK);
    CHECK_STR(b->name, "cpu");
    REQUIRE(kn_backend_open("auto", &b, &e) == TS_OK);
    CHECK(b != NULL);
    CHECK_EQ_INT(kn_backend_open("tpu", &b, &e), TS_EINVAL);
    CHECK_EQ_INT(kn_backend_open("cuda:x", &b, &e), TS_EINVAL);
    kn_device_info info[4];
    const char *why = NULL;
    int n = kn_cuda_devices(info, 4, &why);
    if (n == 0) {
        CHECK(why != NULL);
        CHECK_EQ_INT(kn_backend_open("cuda:0", &b, &e), TS_EUNSUPPORTED);
        CHECK(strstr(e.msg, "no GPU") != NULL);
    }
}

