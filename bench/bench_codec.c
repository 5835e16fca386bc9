/* bench_codec.c - SparseLoCo on one core: compress and decode throughput
 * (GB/s of fp32 input), the wire ratio against dense fp32 and bf16, and the
 * outer step, for the 124m and 1b shapes at k = 64 and k = 128.
 *
 * Shapes are generated here (LLaMA layout: q k v o, gate up down, two norms
 * per layer, a final norm, embeddings tied or not) and filled with seeded
 * random values (a sum of four uniforms: close to normal).  Memory: three
 * fp32 copies of the model (delta, error feedback, a second peer's delta
 * that then serves as the parameters), 1.8 GB for 124m and 13.7 GB for the
 * whole 1b; by default 1b runs 4 of its 16 layers (4.6 GB; its tiles are all
 * 64 x 64, so ratio and throughput per byte hardly depend on the layer
 * count); --full runs all 16.
 *
 *   build/bench/bench_codec [--full] [--reps N] [--only 124m|1b]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/codec.h"
#include "common/common.h"

typedef struct {
    const char *name;
    int width, layers, heads, kv_heads, ffn, vocab;
    bool tied;
} shape_cfg;

static int build_shapes(const shape_cfg *s, int layers, ts_tensor **out, ts_err *e) {
    int n = 2 + layers * 9 + (s->tied ? 0 : 1);
    ts_tensor *t = calloc((size_t)n, sizeof *t);
    if (!t) return ts_fail(e, TS_ENOMEM, "out of memory");
    int i = 0;
    const int64_t hd = s->width / s->heads, kvd = hd * s->kv_heads;
#define ADD(nm, nd, a, b)                                                          \
    do {                                                                           \
        int64_t sh_[2] = {(a), (b)};                                               \
        int rc_ = ts_tensor_alloc(&t[i], nm, TS_F32, nd, sh_, e);                  \
        if (rc_) return rc_;                                                       \
        i++;                                                                       \
    } while (0)
    ADD("model.embed_tokens.weight", 2, s->vocab, s->width);
    char nm[128];
    for (int l = 0; l < layers; l++) {
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.q_proj.weight", l);
        ADD(nm, 2, s->width, s->width);
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.k_proj.weight", l);
        ADD(nm, 2, kvd, s->width);
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.v_proj.weight", l);
        ADD(nm, 2, kvd, s->width);
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.o_proj.weight", l);
        ADD(nm, 2, s->width, s->width);
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(nm, 2, s->ffn, s->width);
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(nm, 2, s->ffn, s->width);
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.down_proj.weight", l);
        ADD(nm, 2, s->width, s->ffn);
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        ADD(nm, 1, s->width, 0);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(nm, 1, s->width, 0);
    }
    ADD("model.norm.weight", 1, s->width, 0);
    if (!s->tied) ADD("lm_head.weight", 2, s->vocab, s->width);
#undef ADD
    *out = t;
    return i;
}

static void fill(ts_tensor *t, int n, uint64_t seed, float sd) {
    uint64_t s = seed | 1;
    for (int i = 0; i < n; i++) {
        float *x = t[i].data;
        size_t m = t[i].nbytes / 4;
        for (size_t j = 0; j < m; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            int sum = (int)(s & 0xffff) + (int)((s >> 16) & 0xffff) + (int)((s >> 32) & 0xffff) + (int)(s >> 48);
            x[j] = (float)(sum - 131070) * (sd / 37837.0f); /* 4 uniforms: sd 37837 */
        }
    }
}

static void free_all(ts_tensor *t, int n) {
    if (!t) return;
    for (int i = 0; i < n; i++) ts_tensor_free(&t[i]);
    free(t);
}

/* CPU seconds of this process: on a shared machine the fairer measure of
 * what one core does (wall time is printed too). */
static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_model(const shape_cfg *s, int layers, int reps) {
    ts_err e = {0};
    ts_tensor *delta = NULL, *ef = NULL, *delta2 = NULL, *theta;
    int n = build_shapes(s, layers, &delta, &e);
    if (n < 0 || !delta) goto fail;
    if (build_shapes(s, layers, &ef, &e) != n || build_shapes(s, layers, &delta2, &e) != n) goto fail;
    theta = delta2; /* the second peer's delta, once compressed, serves as the parameters */
    fill(delta, n, 1, 0.01f);
    int64_t numel = 0;
    for (int i = 0; i < n; i++) numel += (int64_t)(delta[i].nbytes / 4);
    const double gb = (double)numel * 4.0 / 1e9;
    ts_keypair kp;
    ts_keypair_generate(&kp);
    spl_meta m;
    memset(&m, 0, sizeof m);
    snprintf(m.run_id, sizeof m.run_id, "bench");
    m.window = 1;
    for (int kk = 64; kk <= 128; kk *= 2) {
        spl_params p;
        spl_params_default(&p);
        p.k = kk;
        spl_ctx *c = NULL;
        spl_upload *u = NULL, *u2 = NULL;
        if (spl_ctx_new(&p, delta, n, &c, &e) || spl_upload_new(c, &u, &e) || spl_upload_new(c, &u2, &e)) goto fail;
        for (int i = 0; i < n; i++) memset(ef[i].data, 0, ef[i].nbytes);
        double tc[16], td[16], cc[16], cd[16];
        const uint8_t *w = NULL;
        size_t wl = 0;
        uint8_t *wire1 = NULL;
        size_t wl1 = 0;
        for (int r = 0; r < reps; r++) {
            double t0 = ts_mono(), c0 = cpu_s();
            m.uid = 1;
            if (spl_compress(c, delta, ef, &m, &kp, &w, &wl, &e)) goto fail;
            tc[r] = ts_mono() - t0;
            cc[r] = cpu_s() - c0;
            free(wire1);
            wire1 = malloc(wl);
            memcpy(wire1, w, wl);
            wl1 = wl;
            spl_expect x = {"bench", 1, 1, kp.pk, m.config_hash, 0};
            t0 = ts_mono(), c0 = cpu_s();
            if (spl_decode(c, wire1, wl1, &x, u, NULL, &e)) goto fail;
            td[r] = ts_mono() - t0;
            cd[r] = cpu_s() - c0;
            ts_progress("%s k=%d: rep %d/%d, compress %.2fs decode %.3fs", s->name, kk, r + 1, reps, tc[r], td[r]);
        }
        ts_progress_done();
        /* a second peer for the outer step */
        fill(delta2, n, 2, 0.01f);
        m.uid = 2;
        for (int i = 0; i < n; i++) memset(ef[i].data, 0, ef[i].nbytes);
        if (spl_compress(c, delta2, ef, &m, &kp, &w, &wl, &e)) goto fail;
        spl_expect x2 = {"bench", 1, 2, kp.pk, m.config_hash, 0};
        if (spl_decode(c, w, wl, &x2, u2, NULL, &e)) goto fail;
        fill(theta, n, 3, 0.02f);
        const spl_upload *peers[2] = {u, u2};
        double t0 = cpu_s();
        if (spl_outer_step(c, theta, peers, 2, 1.0f, NULL, &e)) goto fail;
        double tstep = cpu_s() - t0;
        spl_undo *undo = NULL;
        double thr[4096];
        if (n > 4096 || spl_clip_thresholds(c, peers, 2, thr, &e) || spl_undo_new(c, 1, &undo, &e)) goto fail;
        t0 = cpu_s();
        if (spl_apply(c, theta, peers, 1, thr, 0.2f, undo, NULL, &e)) goto fail;
        double tapply = cpu_s() - t0;
        t0 = cpu_s();
        if (spl_undo_restore(c, theta, undo, &e)) goto fail;
        double tundo = cpu_s() - t0;
        spl_undo_free(undo);
        qsort(tc, (size_t)reps, sizeof *tc, cmp_d);
        qsort(td, (size_t)reps, sizeof *td, cmp_d);
        qsort(cc, (size_t)reps, sizeof *cc, cmp_d);
        qsort(cd, (size_t)reps, sizeof *cd, cmp_d);
        const double ratio = (double)numel * 4.0 / (double)wl1;
        const double cgb = gb / cc[reps / 2], dgb = gb / cd[reps / 2];
        printf("%-9s %7.1fM k=%-3d wire %8.2f MB  ratio fp32 %6.1fx bf16 %5.1fx (body before zstd %6.1fx)\n", s->name,
               (double)numel / 1e6, kk, (double)wl1 / 1e6, ratio, ratio / 2.0,
               (double)numel * 4.0 / (double)spl_ctx_body_bytes(c));
        printf("          compress %5.2f GB/s cpu (%.3f s; wall %.3f s)  decode %6.2f GB/s cpu (%.4f s; wall %.4f s)\n",
               cgb, cc[reps / 2], tc[reps / 2], dgb, cd[reps / 2], td[reps / 2]);
        printf("          outer step, 2 peers %.3f s cpu;  one-peer evaluation apply %.3f s, undo %.3f s\n", tstep,
               tapply, tundo);
        if (kk == 64)
            printf("          targets at k=64: ratio >= 140x vs fp32 %s; compress >= 1 GB/s %s; decode >= 1 GB/s %s\n",
                   ratio >= 140 ? "met" : "NOT met", cgb >= 1.0 ? "met" : "NOT met", dgb >= 1.0 ? "met" : "NOT met");
        fflush(stdout);
        free(wire1);
        spl_upload_free(u);
        spl_upload_free(u2);
        spl_ctx_free(c);
    }
    free_all(delta, n), free_all(ef, n), free_all(delta2, n);
    return 0;
fail:
    fprintf(stderr, "bench_codec: %s\n", e.msg);
    return 1;
}

int main(int argc, char **argv) {
    ts_err e = {0};
    if (ts_init(&e)) return 1;
    bool full = false;
    int reps = 3;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--full")) full = true;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_codec [--full] [--reps N] [--only 124m|1b]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 16) reps = 3;
    /* the model presets' shapes (docs/FORMATS.md section 6) */
    const shape_cfg m124 = {"124m", 768, 12, 12, 12, 2048, 50304, true};
    const shape_cfg m124u = {"124m-v50257", 768, 12, 12, 12, 2048, 50257, true};
    const shape_cfg m1b = {full ? "1b" : "1b-4L", 2048, 16, 8, 8, 8192, 32000, false};
    printf("# bench_codec: SparseLoCo on one core, bins 4, chunk 64, zstd 3.  GB/s = GB of fp32 input per second of\n"
           "# process CPU time (median of the repetitions; the machine may be shared, wall time is shown too)\n");
    printf("# reproduce: %s%s --reps %d%s%s\n", argv[0], full ? " --full" : "", reps, only ? " --only " : "",
           only ? only : "");
    printf("# 124m: width 768, 12 layers, FFN 2048, vocab 50304 (GPT-2's padded to a multiple of 64), tied;\n"
           "# 124m-v50257: the same with GPT-2's unpadded vocab (29-row tiles in the embedding);\n"
           "# 1b: width 2048, 16 layers, 8 heads, FFN 8192, vocab 32000, untied%s\n",
           full ? "" : " (1b-4L: 4 of the 16 layers; --full for all)");
    int rc = 0;
    if (!only || !strcmp(only, "124m")) {
        rc |= run_model(&m124, m124.layers, reps);
        rc |= run_model(&m124u, m124u.layers, reps);
    }
    if (!only || !strcmp(only, "1b")) rc |= run_model(&m1b, full ? 16 : 4, reps);
    return rc;
}
