/* backend_ops.c - the kernel test driver: every op of the CUDA backend
 * against its CPU twin (as ggml's test-backend-ops runs every op against the
 * CPU backend), then whole training steps of the `tiny` and `small` models.
 *
 * One source for every GPU: tests/t_backend_ops.sh runs it in `make test`
 * under the device emulator (TESSERA_CUDA_LIB=build/lib/libtessera_cudaemu.so,
 * in the three thread orders CUDAEMU_ORDER=forward|reverse|shuffle:SEED), and
 * bench/gpu.sh runs it on a real GPU with the same cases and tolerances.
 * Not finding a CUDA backend is a failure here, never a skip: the script that
 * runs this binary is the one that knows whether a device should exist.
 *
 * Tolerances:
 *   bit-identical      conversions, fill, copy, scale, embedding forward, RoPE
 *   NSE <= 1e-7        fp32 paths (NSE: normalised squared error,
 *                      sum (x - ref)^2 / sum ref^2)
 *   bf16 GEMM          at most twice the NSE of a naive bf16 computation
 *                      (inputs rounded to bf16, fp32 accumulation) against
 *                      the fp32 reference
 *   training step      the loss within 1e-4 (relative) of the CPU's; every
 *                      gradient and the parameters after 3 AdamW steps:
 *                      their NSE against the fp32 CPU backend
 *                      at most twice that of the CPU backend with its GEMM
 *                      inputs rounded to bf16 (a naive bf16 computation of
 *                      the same step), and within 1e-4 of the latter.  (The
 *                      two bf16 computations are not bit-identical: fp32
 *                      sums in another order round a few GEMM inputs to the
 *                      neighbouring bf16 value, and that difference grows
 *                      through the layers.)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend_common.h"
#include "harness.h"
#include "kernels/kernels.h"
#include "model/model.h"

/* ------------------------------------------------------------ utilities */


static uint64_t rng_state;
static void seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 1; }
static uint32_t next_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
/* uniform in [-a, a) */
static float uni(float a) { return a * ((float)(next_u32() & 0xffffff) / 8388608.0f - 1.0f); }

static float *rand_vec(size_t n, float a) {
    float *x = malloc(n * sizeof *x + 1);
    for (size_t i = 0; i < n; i++) x[i] = uni(a);
    return x;
}

/* device copy of a host array */
static void *dev_from(const kn_backend *g, const void *h, size_t bytes) {
    void *d = g->alloc(g, bytes);
    if (d && bytes && g->upload(g, d, h, bytes) != TS_OK) {
        g->free(g, d);
        return NULL;
    }
    return d;
}

static void *host_from(const kn_backend *g, const void *d, size_t bytes) {
    void *h = malloc(bytes + 1);
    if (g->download(g, h, d, bytes) != TS_OK) {
        free(h);
        return NULL;
    }
    return h;
}

static double nse(const float *x, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return num / den;
}

/* BACKEND_OPS_VERBOSE=1 prints every measured error */
#define CHECK_NSE(x, ref, n, tol, what)                                                       \
    do {                                                                                      \
        double nse_ = nse((x), (ref), (n));                                                   \
        if (getenv("BACKEND_OPS_VERBOSE")) printf("    %s: NSE %.3g\n", (what), nse_);         \
        CHECK_MSG(nse_ <= (tol), "%s: NSE %.3g > %.3g", (what), nse_, (double)(tol));          \
    } while (0)

#define CHECK_SAME(x, ref, bytes, what)                                                       \
    do {                                                                                      \
        CHECK_MSG(memcmp((x), (ref), (bytes)) == 0, "%s: not bit-identical to the CPU twin", \
                  (what));                                                                    \
    } while (0)

/* ----------------------------------------------------- elementwise ops */

TEST(conversions_fill_copy_scale_bit_identical) {
    NEED_GPU(g);
    seed(1);
    size_t n = 100003; /* not a multiple of any block size */
    float *x = rand_vec(n, 3.0f);
    x[0] = NAN;
    x[1] = -INFINITY;
    x[2] = 3.0e38f; /* rounds to infinity in bf16 */
    float *dx = dev_from(g, x, n * 4), *dy = g->alloc(g, n * 4);
    uint16_t *dh = g->alloc(g, n * 2);
    REQUIRE(dx && dy && dh);
    uint16_t *href = malloc(n * 2);
    float *ref = malloc(n * 4);
    kn_cpu_f32_to_bf16(href, x, n);
    kn_cpu_bf16_to_f32(ref, href, n);
    REQUIRE(g->f32_to_bf16(g, dh, dx, n) == TS_OK);
    REQUIRE(g->bf16_to_f32(g, dy, dh, n) == TS_OK);
    uint16_t *h = host_from(g, dh, n * 2);
    float *y = host_from(g, dy, n * 4);
    CHECK_SAME(h, href, n * 2, "f32_to_bf16");
    CHECK_SAME(y, ref, n * 4, "bf16_to_f32");
    free(h);
    free(y);

    REQUIRE(g->copy(g, dy, dx, n) == TS_OK);
    REQUIRE(g->scale(g, dy, 0.37f, n) == TS_OK);
    memcpy(ref, x, n * 4);
    kn_cpu_scale(ref, 0.37f, n);
    y = host_from(g, dy, n * 4);
    CHECK_SAME(y, ref, n * 4, "copy + scale");
    free(y);
    /* sub: bit-identical */
    float *dz = g->alloc(g, n * 4), *zr = malloc(n * 4);
    REQUIRE(dz && g->sub(g, dz, dx, dy, n) == TS_OK);
    kn_cpu_sub(zr, x, ref, n);
    float *z = host_from(g, dz, n * 4);
    CHECK_SAME(z, zr, n * 4, "sub");
    free(z), free(zr);
    g->free(g, dz);
    REQUIRE(g->fill(g, dy, -2.5f, n - 1) == TS_OK);
    y = host_from(g, dy, n * 4);
    int bad = 0;
    for (size_t i = 0; i + 1 < n; i++) bad += y[i] != -2.5f;
    CHECK_EQ_INT(bad, 0);
    CHECK(memcmp(&y[n - 1], &ref[n - 1], 4) == 0); /* untouched past n - 1 */
    free(y);
    g->free(g, dx);
    g->free(g, dy);
    g->free(g, dh);
    free(x);
    free(ref);
    free(href);
}

/* ------------------------------------------------------------------ GEMM */

static void round_bf16(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = ts_bf16_to_f32(ts_f32_to_bf16(x[i]));
}

/* one product, both transposes, leading dimensions wider than the rows */
static void gemm_case(const kn_backend *g, int ta, int tb, int M, int N, int K, float alpha,
                      float beta, int pad) {
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    size_t na = (size_t)ar * lda, nb = (size_t)br * ldb, nc = (size_t)M * ldc;
    float *A = rand_vec(na, 1.0f), *B = rand_vec(nb, 1.0f), *C0 = rand_vec(nc, 1.0f);
    float *ref = malloc(nc * 4), *naive = malloc(nc * 4), *Ab = malloc(na * 4), *Bb = malloc(nb * 4);
    memcpy(ref, C0, nc * 4);
    kn_cpu_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, ref, ldc);
    memcpy(Ab, A, na * 4);
    memcpy(Bb, B, nb * 4);
    round_bf16(Ab, na);
    round_bf16(Bb, nb);
    memcpy(naive, C0, nc * 4);
    kn_cpu_gemm(ta, tb, M, N, K, alpha, Ab, lda, Bb, ldb, beta, naive, ldc);
    float *dA = dev_from(g, A, na * 4), *dB = dev_from(g, B, nb * 4), *dC = dev_from(g, C0, nc * 4);
    if (!dA || !dB || !dC) {
        CHECK_MSG(0, "gemm: device allocation failed");
    } else {
        int rc = g->gemm(g, ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc);
        CHECK_MSG(rc == TS_OK, "gemm %c%c %dx%dx%d failed", ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K);
        float *C = host_from(g, dC, nc * 4);
        /* compare the M x N product; the padding columns must be untouched */
        size_t n = (size_t)M * N;
        float *c1 = calloc(n + 1, 4), *r1 = calloc(n + 1, 4), *v1 = calloc(n + 1, 4);
        int pad_bad = 0;
        for (int i = 0; i < M; i++) {
            memcpy(c1 + (size_t)i * N, C + (size_t)i * ldc, (size_t)N * 4);
            memcpy(r1 + (size_t)i * N, ref + (size_t)i * ldc, (size_t)N * 4);
            memcpy(v1 + (size_t)i * N, naive + (size_t)i * ldc, (size_t)N * 4);
            for (int j = N; j < ldc; j++) pad_bad += memcmp(&C[(size_t)i * ldc + j], &C0[(size_t)i * ldc + j], 4) != 0;
        }
        double eg = nse(c1, r1, n), en = nse(v1, r1, n);
        if (getenv("BACKEND_OPS_VERBOSE"))
            printf("    gemm %c%c %dx%dx%d: NSE %.3g, naive bf16 %.3g, GPU vs naive %.3g\n", ta ? 'T' : 'N',
                   tb ? 'T' : 'N', M, N, K, eg, en, nse(c1, v1, n));
        CHECK_MSG(eg <= 2 * en + 1e-12, "gemm %c%c %dx%dx%d: NSE %.3g vs naive bf16 %.3g", ta ? 'T' : 'N',
                  tb ? 'T' : 'N', M, N, K, eg, en);
        CHECK_MSG(pad_bad == 0, "gemm wrote %d elements outside the product", pad_bad);
        free(c1), free(r1), free(v1), free(C);
    }
    g->free(g, dA), g->free(g, dB), g->free(g, dC);
    free(A), free(B), free(C0), free(ref), free(naive), free(Ab), free(Bb);
}

TEST(gemm_bf16_within_twice_naive_error) {
    NEED_GPU(g);
    seed(2);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            gemm_case(g, ta, tb, 37, 29, 53, 1.0f, 0.0f, 0);
            gemm_case(g, ta, tb, 64, 96, 128, 0.5f, 1.0f, 3);
            gemm_case(g, ta, tb, 1, 257, 65, 1.0f, 1.0f, 1);
            gemm_case(g, ta, tb, 80, 1536, 256, 1.0f, 1.0f, 0); /* small's shapes */
            gemm_case(g, ta, tb, 256, 768, 80, 1.0f, 1.0f, 0);
        }
}

/* ------------------------------------------------------- the model's ops */

TEST(embedding_forward_bit_identical_backward_close) {
    NEED_GPU(g);
    seed(3);
    const int shapes[][3] = {{1, 1, 8}, {77, 257, 67}, {256, 50, 64}}; /* N, V, C */
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int N = shapes[s][0], V = shapes[s][1], C = shapes[s][2];
        float *wte = rand_vec((size_t)V * C, 1.0f), *dout = rand_vec((size_t)N * C, 1.0f);
        float *dw0 = rand_vec((size_t)V * C, 1.0f);
        int32_t *tok = malloc((size_t)N * 4);
        /* every third token among the first five ids: repeated rows */
        for (int i = 0; i < N; i++) tok[i] = (int32_t)(next_u32() % (uint32_t)(i % 3 || V < 5 ? V : 5));
        float *out = malloc((size_t)N * C * 4), *dw = malloc((size_t)V * C * 4);
        kn_cpu_embed_fwd(out, wte, tok, N, C);
        memcpy(dw, dw0, (size_t)V * C * 4);
        kn_cpu_embed_bwd(dw, dout, tok, N, C);
        float *dwte = dev_from(g, wte, (size_t)V * C * 4), *ddout = dev_from(g, dout, (size_t)N * C * 4),
              *ddw = dev_from(g, dw0, (size_t)V * C * 4), *dout_g = g->alloc(g, (size_t)N * C * 4);
        int32_t *dtok = dev_from(g, tok, (size_t)N * 4);
        REQUIRE(dwte && ddout && ddw && dout_g && dtok);
        REQUIRE(g->embed_fwd(g, dout_g, dwte, dtok, N, C) == TS_OK);
        REQUIRE(g->embed_bwd(g, ddw, ddout, dtok, N, C) == TS_OK);
        float *o = host_from(g, dout_g, (size_t)N * C * 4), *w = host_from(g, ddw, (size_t)V * C * 4);
        CHECK_SAME(o, out, (size_t)N * C * 4, "embed_fwd");
        CHECK_NSE(w, dw, (size_t)V * C, 1e-7, "embed_bwd");
        free(o), free(w);
        g->free(g, dwte), g->free(g, ddout), g->free(g, ddw), g->free(g, dout_g), g->free(g, dtok);
        free(wte), free(dout), free(dw0), free(tok), free(out), free(dw);
    }
}

TEST(rmsnorm_forward_backward) {
    NEED_GPU(g);
    seed(4);
    const int shapes[][2] = {{1, 64}, {33, 67}, {130, 768}, {5, 2048}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        size_t nc = (size_t)N * C;
        float *x = rand_vec(nc, 2.0f), *w = rand_vec((size_t)C, 1.0f), *dout = rand_vec(nc, 1.0f);
        float *dx0 = rand_vec(nc, 1.0f), *dw0 = rand_vec((size_t)C, 1.0f);
        float *out = malloc(nc * 4), *rstd = malloc((size_t)N * 4), *dx = malloc(nc * 4), *dw = malloc((size_t)C * 4);
        kn_cpu_rmsnorm_fwd(out, rstd, x, w, N, C, 1e-5f);
        memcpy(dx, dx0, nc * 4);
        memcpy(dw, dw0, (size_t)C * 4);
        kn_cpu_rmsnorm_bwd(dx, dw, dout, x, w, rstd, N, C);
        float *gx = dev_from(g, x, nc * 4), *gw = dev_from(g, w, (size_t)C * 4), *gd = dev_from(g, dout, nc * 4),
              *gdx = dev_from(g, dx0, nc * 4), *gdw = dev_from(g, dw0, (size_t)C * 4),
              *go = g->alloc(g, nc * 4), *gr = g->alloc(g, (size_t)N * 4);
        REQUIRE(gx && gw && gd && gdx && gdw && go && gr);
        REQUIRE(g->rmsnorm_fwd(g, go, gr, gx, gw, N, C, 1e-5f) == TS_OK);
        REQUIRE(g->rmsnorm_bwd(g, gdx, gdw, gd, gx, gw, gr, N, C) == TS_OK);
        float *ho = host_from(g, go, nc * 4), *hr = host_from(g, gr, (size_t)N * 4),
              *hdx = host_from(g, gdx, nc * 4), *hdw = host_from(g, gdw, (size_t)C * 4);
        CHECK_NSE(ho, out, nc, 1e-7, "rmsnorm_fwd out");
        CHECK_NSE(hr, rstd, (size_t)N, 1e-7, "rmsnorm_fwd rstd");
        CHECK_NSE(hdx, dx, nc, 1e-7, "rmsnorm_bwd dx");
        CHECK_NSE(hdw, dw, (size_t)C, 1e-7, "rmsnorm_bwd dw");
        free(ho), free(hr), free(hdx), free(hdw);
        g->free(g, gx), g->free(g, gw), g->free(g, gd), g->free(g, gdx), g->free(g, gdw), g->free(g, go),
            g->free(g, gr);
        free(x), free(w), free(dout), free(dx0), free(dw0), free(out), free(rstd), free(dx), free(dw);
    }
}

TEST(rope_bit_identical) {
    NEED_GPU(g);
    seed(5);
    const int shapes[][4] = {{1, 1, 1, 2}, {2, 37, 6, 16}, {1, 70, 3, 64}}; /* B, T, nh, hd */
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int B = shapes[s][0], T = shapes[s][1], nh = shapes[s][2], hd = shapes[s][3];
        int ld = nh * hd + 5; /* a wider row, as in the fused qkv */
        size_t n = (size_t)B * T * ld, nt = (size_t)T * hd / 2;
        float *x = rand_vec(n, 2.0f), *ct = malloc(nt * 4), *st = malloc(nt * 4);
        for (size_t i = 0; i < nt; i++) {
            float a = uni(3.2f);
            ct[i] = cosf(a);
            st[i] = sinf(a);
        }
        float *f = malloc(n * 4), *b = malloc(n * 4);
        memcpy(f, x, n * 4);
        kn_cpu_rope_fwd(f, ld, ct, st, B, T, nh, hd);
        memcpy(b, x, n * 4);
        kn_cpu_rope_bwd(b, ld, ct, st, B, T, nh, hd);
        float *gf = dev_from(g, x, n * 4), *gb = dev_from(g, x, n * 4), *gc = dev_from(g, ct, nt * 4),
              *gs = dev_from(g, st, nt * 4);
        REQUIRE(gf && gb && gc && gs);
        REQUIRE(g->rope_fwd(g, gf, ld, gc, gs, B, T, nh, hd) == TS_OK);
        REQUIRE(g->rope_bwd(g, gb, ld, gc, gs, B, T, nh, hd) == TS_OK);
        float *hf = host_from(g, gf, n * 4), *hb = host_from(g, gb, n * 4);
        CHECK_SAME(hf, f, n * 4, "rope_fwd");
        CHECK_SAME(hb, b, n * 4, "rope_bwd");
        free(hf), free(hb);
        g->free(g, gf), g->free(g, gb), g->free(g, gc), g->free(g, gs);
        free(x), free(ct), free(st), free(f), free(b);
    }
}

TEST(swiglu_forward_backward) {
    NEED_GPU(g);
    seed(6);
    const int shapes[][2] = {{1, 1}, {31, 129}, {64, 768}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int N = shapes[s][0], F = shapes[s][1];
        size_t nf = (size_t)N * F;
        float *gu = rand_vec(2 * nf, 6.0f), *dh = rand_vec(nf, 1.0f);
        float *h = malloc(nf * 4), *dgu = malloc(2 * nf * 4);
        kn_cpu_swiglu_fwd(h, gu, N, F);
        kn_cpu_swiglu_bwd(dgu, dh, gu, N, F);
        float *ggu = dev_from(g, gu, 2 * nf * 4), *gdh = dev_from(g, dh, nf * 4), *gh = g->alloc(g, nf * 4),
              *gdgu = g->alloc(g, 2 * nf * 4);
        REQUIRE(ggu && gdh && gh && gdgu);
        REQUIRE(g->swiglu_fwd(g, gh, ggu, N, F) == TS_OK);
        REQUIRE(g->swiglu_bwd(g, gdgu, gdh, ggu, N, F) == TS_OK);
        float *hh = host_from(g, gh, nf * 4), *hd = host_from(g, gdgu, 2 * nf * 4);
        CHECK_NSE(hh, h, nf, 1e-7, "swiglu_fwd");
        CHECK_NSE(hd, dgu, 2 * nf, 1e-7, "swiglu_bwd");
        free(hh), free(hd);
        g->free(g, ggu), g->free(g, gdh), g->free(g, gh), g->free(g, gdgu);
        free(gu), free(dh), free(h), free(dgu);
    }
}

TEST(cross_entropy_forward_backward) {
    NEED_GPU(g);
    seed(7);
    const int shapes[][2] = {{1, 2}, {13, 257}, {9, 50304}, {4, 32000}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int N = shapes[s][0], V = shapes[s][1];
        size_t nv = (size_t)N * V;
        float *lg = rand_vec(nv, 8.0f);
        int32_t *tg = malloc((size_t)N * 4);
        for (int i = 0; i < N; i++) tg[i] = (int32_t)(next_u32() % (uint32_t)V);
        if (N > 2) tg[1] = KN_IGNORE_INDEX;
        float *loss = malloc((size_t)N * 4), *loss2 = malloc((size_t)N * 4), *d = malloc(nv * 4);
        kn_cpu_xent_fwd(loss, lg, tg, N, V);
        memcpy(d, lg, nv * 4);
        kn_cpu_xent_fwd_bwd(loss2, d, tg, N, V, 0.125f);
        float *glg = dev_from(g, lg, nv * 4), *gd = dev_from(g, lg, nv * 4), *gl = g->alloc(g, (size_t)N * 4),
              *gl2 = g->alloc(g, (size_t)N * 4);
        int32_t *gtg = dev_from(g, tg, (size_t)N * 4);
        REQUIRE(glg && gd && gl && gl2 && gtg);
        REQUIRE(g->xent_fwd(g, gl, glg, gtg, N, V) == TS_OK);
        REQUIRE(g->xent_fwd_bwd(g, gl2, gd, gtg, N, V, 0.125f) == TS_OK);
        float *hl = host_from(g, gl, (size_t)N * 4), *hl2 = host_from(g, gl2, (size_t)N * 4),
              *hd = host_from(g, gd, nv * 4);
        CHECK_NSE(hl, loss, (size_t)N, 1e-7, "xent_fwd");
        CHECK_NSE(hl2, loss2, (size_t)N, 1e-7, "xent_fwd_bwd loss");
        CHECK_NSE(hd, d, nv, 1e-7, "xent_fwd_bwd dlogits");
        if (N > 2) {
            CHECK(hl[1] == 0.0f && hl2[1] == 0.0f);
            int nz = 0;
            for (int j = 0; j < V; j++) nz += hd[(size_t)V + j] != 0.0f;
            CHECK_EQ_INT(nz, 0); /* an ignored target's row has no gradient */
        }
        free(hl), free(hl2), free(hd);
        g->free(g, glg), g->free(g, gd), g->free(g, gl), g->free(g, gl2), g->free(g, gtg);
        free(lg), free(tg), free(loss), free(loss2), free(d);
    }
}

TEST(sumsq_and_adamw) {
    NEED_GPU(g);
    seed(8);
    size_t sizes[] = {1, 1000, 1234567};
    for (size_t s = 0; s < 3; s++) {
        size_t n = sizes[s];
        float *x = rand_vec(n, 1.0f);
        double ref = kn_cpu_sumsq(x, n), got = -1, again = -2;
        float *gx = dev_from(g, x, n * 4);
        REQUIRE(gx);
        REQUIRE(g->sumsq(g, gx, n, &got) == TS_OK);
        REQUIRE(g->sumsq(g, gx, n, &again) == TS_OK);
        CHECK_MSG(fabs(got - ref) <= 1e-12 * ref, "sumsq n=%zu: %.17g vs %.17g", n, got, ref);
        CHECK_MSG(memcmp(&got, &again, sizeof got) == 0, "sumsq is not deterministic");
        g->free(g, gx);
        free(x);
    }
    size_t n = 300007;
    float *p = rand_vec(n, 0.1f), *gr = rand_vec(n, 1.0f), *m = rand_vec(n, 0.01f), *v = malloc(n * 4);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(uni(1e-4f));
    kn_adamw_args a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                       .step_size = 1e-3f / (1 - 0.9f * 0.9f), .bc2_sqrt = sqrtf(1 - 0.95f * 0.95f)};
    float *gp = dev_from(g, p, n * 4), *gg = dev_from(g, gr, n * 4), *gm = dev_from(g, m, n * 4),
          *gv = dev_from(g, v, n * 4);
    REQUIRE(gp && gg && gm && gv);
    kn_cpu_adamw(p, gr, m, v, n, &a);
    REQUIRE(g->adamw(g, gp, gg, gm, gv, n, &a) == TS_OK);
    float *hp = host_from(g, gp, n * 4), *hm = host_from(g, gm, n * 4), *hv = host_from(g, gv, n * 4);
    CHECK_NSE(hp, p, n, 1e-7, "adamw p");
    CHECK_NSE(hm, m, n, 1e-7, "adamw m");
    CHECK_NSE(hv, v, n, 1e-7, "adamw v");
    free(hp), free(hm), free(hv);
    g->free(g, gp), g->free(g, gg), g->free(g, gm), g->free(g, gv);
    free(p), free(gr), free(m), free(v);
}

/* attention: forward and backward, T not a multiple of the tile, nh != nkv */
TEST(attention_forward_backward) {
    NEED_GPU(g);
    seed(9);
    const int shapes[][5] = {
        /* B, T, nh, nkv, hd */
        {1, 1, 1, 1, 8}, {2, 37, 4, 2, 16}, {1, 70, 6, 1, 32}, {1, 33, 2, 2, 64}, {1, 20, 2, 1, 256},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int B = shapes[s][0], T = shapes[s][1], nh = shapes[s][2], nkv = shapes[s][3], hd = shapes[s][4];
        int ld = (nh + 2 * nkv) * hd, ldo = nh * hd;
        size_t nq = (size_t)B * T * ld, no = (size_t)B * T * ldo, nl = (size_t)B * nh * T;
        size_t ns = kn_attn_scratch_floats(B, T, nh, nkv, hd);
        float *qkv = rand_vec(nq, 1.5f), *dout = rand_vec(no, 1.0f);
        float *out = malloc(no * 4), *lse = malloc(nl * 4), *scr = malloc(ns * 4 + 4), *dqkv = malloc(nq * 4);
        kn_cpu_attn_fwd(out, lse, scr, qkv, B, T, nh, nkv, hd);
        kn_cpu_attn_bwd(dqkv, scr, dout, qkv, out, lse, B, T, nh, nkv, hd);
        float *gq = dev_from(g, qkv, nq * 4), *gdo = dev_from(g, dout, no * 4), *go = g->alloc(g, no * 4),
              *gl = g->alloc(g, nl * 4), *gs = g->alloc(g, ns * 4 + 4), *gdq = g->alloc(g, nq * 4);
        REQUIRE(gq && gdo && go && gl && gs && gdq);
        char what[96];
        snprintf(what, sizeof what, "attention B%d T%d nh%d nkv%d hd%d", B, T, nh, nkv, hd);
        CHECK_MSG(g->attn_fwd(g, go, gl, gs, gq, B, T, nh, nkv, hd) == TS_OK, "%s: forward failed", what);
        CHECK_MSG(g->attn_bwd(g, gdq, gs, gdo, gq, go, gl, B, T, nh, nkv, hd) == TS_OK, "%s: backward failed",
                  what);
        float *ho = host_from(g, go, no * 4), *hl = host_from(g, gl, nl * 4), *hd_ = host_from(g, gdq, nq * 4);
        CHECK_NSE(ho, out, no, 1e-7, what);
        CHECK_NSE(hl, lse, nl, 1e-7, what);
        CHECK_NSE(hd_, dqkv, nq, 1e-7, what);
        free(ho), free(hl), free(hd_);
        g->free(g, gq), g->free(g, gdo), g->free(g, go), g->free(g, gl), g->free(g, gs), g->free(g, gdq);
        free(qkv), free(dout), free(out), free(lse), free(scr), free(dqkv);
    }
}

/* --------------------------------------------- whole training steps */

/* The CPU backend with its GEMM inputs rounded to bf16, fp32 accumulation:
 * what the GPU's cuBLASLt path computes. */
static long bf16_gemm_calls;
static int bf16_gemm(const kn_backend *b, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    (void)b;
    bf16_gemm_calls++;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
    float *a = malloc(na * 4 + 4), *bb = malloc(nb * 4 + 4);
    if (!a || !bb) {
        free(a), free(bb);
        return TS_ENOMEM;
    }
    memcpy(a, A, na * 4);
    memcpy(bb, B, nb * 4);
    round_bf16(a, na);
    round_bf16(bb, nb);
    kn_cpu_gemm(ta, tb, M, N, K, alpha, a, lda, bb, ldb, beta, C, ldc);
    free(a), free(bb);
    return TS_OK;
}

static void train_case(const char *preset, int B, int T) {
    NEED_GPU(g);
    static kn_backend cpu16;
    cpu16 = *kn_cpu();
    cpu16.name = "cpu-bf16gemm";
    cpu16.gemm = bf16_gemm;
    ts_err e = {0};
    model_config cfg;
    REQUIRE(model_preset(preset, 0, &cfg, &e) == TS_OK);
    model *mg = NULL, *mc = NULL, *m32 = NULL;
    REQUIRE(model_create(&cfg, g, B, T, &mg, &e) == TS_OK);
    REQUIRE(model_create(&cfg, &cpu16, B, T, &mc, &e) == TS_OK);
    REQUIRE(model_create(&cfg, kn_cpu(), B, T, &m32, &e) == TS_OK);
    model_init(mg, 42);
    model_init(mc, 42);
    model_init(m32, 42);
    seed(10);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)B * (T + 1));
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)(next_u32() % (uint32_t)cfg.vocab_size);
    tok[B * (T + 1) - 1] = MODEL_IGNORE_INDEX; /* one padded target */

    /* loss and every gradient of one forward/backward */
    float lg, lc, l32;
    size_t free0 = 0, free1 = 1, total = 0;
    REQUIRE(kn_backend_mem_info(g, &free0, &total) == TS_OK);
    model_zero_grad(mg), model_zero_grad(mc), model_zero_grad(m32);
    REQUIRE(model_forward_backward(mg, tok, B, T, &lg, &e) == TS_OK);
    /* everything the step needs was allocated by model_create */
    REQUIRE(kn_backend_mem_info(g, &free1, &total) == TS_OK);
    CHECK_MSG(free1 == free0, "%s: the GPU step allocated %lld bytes beyond model_create's", preset,
              (long long)free0 - (long long)free1);
    REQUIRE(model_forward_backward(mc, tok, B, T, &lc, &e) == TS_OK);
    REQUIRE(model_forward_backward(m32, tok, B, T, &l32, &e) == TS_OK);
    /* the loss is a mean over many rows, where bf16 errors largely cancel:
     * within 1e-4 of both CPU computations */
    CHECK_MSG(fabsf(lg - l32) <= 1e-4f * fabsf(l32) && fabsf(lg - lc) <= 1e-4f * fabsf(lc),
              "%s: loss %.9g on the GPU, %.9g on the CPU (bf16 GEMM), %.9g (fp32)", preset, lg, lc, l32);
    int nt;
    const ts_tensor *tg = model_grads(mg, &nt), *tc = model_grads(mc, NULL), *t32 = model_grads(m32, NULL);
    size_t np;
    float *gbuf = model_grad_data(mg, &np);
    float *hg = host_from(g, gbuf, np * 4);
    REQUIRE(hg);
    double worst = 0, worst32 = 0, worst16 = 0;
    for (int i = 0; i < nt; i++) {
        size_t off = (size_t)((float *)tg[i].data - gbuf), n = tg[i].nbytes / 4;
        double d = nse(hg + off, tc[i].data, n), d32 = nse(hg + off, t32[i].data, n),
               d16 = nse(tc[i].data, t32[i].data, n);
        CHECK_MSG(d32 <= 2 * d16 + 1e-12 && d <= 1e-4,
                  "%s: gradient %s: NSE %.3g against fp32 (bf16-GEMM CPU: %.3g), %.3g against the bf16-GEMM CPU",
                  preset, tg[i].name, d32, d16, d);
        worst = d > worst ? d : worst;
        worst32 = d32 > worst32 ? d32 : worst32;
        worst16 = d16 > worst16 ? d16 : worst16;
    }
    if (getenv("BACKEND_OPS_VERBOSE")) printf("    bf16 GEMM calls on the CPU: %ld\n", bf16_gemm_calls);
    printf("    %s B%d T%d: loss %.6f (GPU) %.6f (CPU bf16 GEMM) %.6f (CPU fp32); worst gradient NSE: GPU vs fp32 "
           "%.2g, bf16-GEMM CPU vs fp32 %.2g, GPU vs bf16-GEMM CPU %.2g\n",
           preset, B, T, lg, lc, l32, worst32, worst16, worst);
    free(hg);

    /* the parameters after 3 AdamW steps */
    model_adamw h;
    model_adamw_defaults(&h);
    for (int s = 0; s < 3; s++) {
        float a, b, c;
        double na, nb, nc;
        REQUIRE(model_train_step(mg, &h, 1e-3, tok, B, T, &a, &na, &e) == TS_OK);
        REQUIRE(model_train_step(mc, &h, 1e-3, tok, B, T, &b, &nb, &e) == TS_OK);
        REQUIRE(model_train_step(m32, &h, 1e-3, tok, B, T, &c, &nc, &e) == TS_OK);
        CHECK_MSG(fabs(na - nb) <= 1e-3 * nb, "%s step %d: gradient norm %.9g vs %.9g", preset, s, na, nb);
    }
    float *pg = host_from(g, model_param_data(mg, NULL), np * 4);
    REQUIRE(pg);
    const float *pc = model_param_data(mc, NULL), *p32 = model_param_data(m32, NULL);
    double dp = nse(pg, pc, np), dp32 = nse(pg, p32, np), dp16 = nse(pc, p32, np);
    CHECK_MSG(dp32 <= 2 * dp16 + 1e-12 && dp <= 1e-4,
              "%s: parameters after 3 AdamW steps: NSE %.3g against fp32 (bf16-GEMM CPU: %.3g), %.3g against the "
              "bf16-GEMM CPU", preset, dp32, dp16, dp);
    printf("    %s: parameters after 3 AdamW steps, NSE: GPU vs fp32 %.2g, bf16-GEMM CPU vs fp32 %.2g, GPU vs "
           "bf16-GEMM CPU %.2g\n", preset, dp32, dp16, dp);

    /* evaluation: an eval-only model on the GPU gives the CPU's losses */
    model *ev = NULL;
    model_options o = {.max_batch = B, .max_seq = T, .eval_only = true};
    REQUIRE(model_create_opts(&cfg, g, &o, &ev, &e) == TS_OK);
    REQUIRE(g->upload(g, model_param_data(ev, NULL), pc, np * 4) == TS_OK);
    double sg, sc;
    int64_t cg, cc;
    REQUIRE(model_eval_loss(ev, tok, B, T, &sg, &cg, NULL, &e) == TS_OK);
    REQUIRE(model_eval_loss(mc, tok, B, T, &sc, &cc, NULL, &e) == TS_OK);
    CHECK_EQ_INT(cg, cc);
    CHECK_MSG(fabs(sg - sc) <= 1e-4 * fabs(sc), "%s: eval loss sum %.9g vs %.9g", preset, sg, sc);
    model_free(ev);
    free(pg);
    free(tok);
    model_free(mg);
    model_free(mc);
    model_free(m32);
}

TEST(training_step_tiny_matches_cpu) { train_case("tiny", 2, 37); }
TEST(training_step_small_matches_cpu) { train_case("small", 2, 40); }
