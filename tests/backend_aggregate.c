/* backend_aggregate.c - the kernel test driver of the codec's aggregation on
 * the GPU (codec/cuda_aggregate.cu behind spl_ctx_set_device): the outer
 * step, the validator's one-peer application and its undo, the dense
 * aggregate and the skipping of a tensor whose aggregate is not finite, each
 * against the CPU path, bit for bit (memcmp of the parameters, equal stats).
 *
 * The uploads are real: several miners' random deltas compressed with
 * spl_compress on the CPU and decoded with spl_decode, once into a context
 * on the host and once into a twin context on the GPU.  The tensors are the
 * model presets' shapes scaled down: a prime row count (257 tiles of one
 * row), odd tile counts, 1-D tensors, small clamped tiles; k = 64 and k = 30
 * (2-bit codes of a tile then start mid-byte), 4 and 256 bins, and a
 * staging buffer shrunk so that tensors go to the device in several chunks.
 *
 * Run by tests/t_backend_ops.sh under the device emulator in three thread
 * orders, and on a real GPU by running the binary.  A missing CUDA backend
 * is a failure, never a skip. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "codec/internal.h"
#include "backend_common.h"
#include "harness.h"
#include "kernels/kernels.h"


static uint64_t rs;
static void rseed(uint64_t s) { rs = s * 0x9E3779B97F4A7C15ull + 1; }
static uint64_t rnext(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static float runif(void) { return (float)(rnext() >> 40) / (float)(1 << 24); }
static float rnorm(void) { return (runif() + runif() + runif() + runif() - 2.0f) * 1.7320508f; }

/* ------------------------------------------------------------- the model */

#define NT 10
#define HUGE_T 3 /* the tensor the huge miners blow up */
static const struct {
    const char *name;
    int ndim;
    int64_t s0, s1;
} SH[NT] = {
    {"model.embed_tokens.weight", 2, 257, 64},                /* 257 tiles of 1 x 64 */
    {"model.layers.0.self_attn.q_proj.weight", 2, 64, 64},    /* one tile of 4096 */
    {"model.layers.0.self_attn.k_proj.weight", 2, 32, 64},    /* one tile of 32 x 64 */
    {"model.layers.0.mlp.gate_proj.weight", 2, 192, 64},      /* 3 tiles down */
    {"model.layers.0.mlp.down_proj.weight", 2, 64, 192},      /* 3 tiles across */
    {"model.layers.0.input_layernorm.weight", 1, 64, 0},      /* 1-D, one tile */
    {"model.norm.weight", 1, 96, 0},                          /* 1-D, 2 tiles of 48 */
    {"lm_head.weight", 2, 257, 96},                           /* 514 tiles of 1 x 48 */
    {"odd.weight", 2, 3, 10},                                 /* one tile of 30 */
    {"model.layers.0.bias", 1, 250, 0},                       /* 1-D, 5 tiles of 50 */
};

static void alloc_host(ts_tensor *t) {
    ts_err e = {0};
    for (int i = 0; i < NT; i++) {
        int64_t sh[2] = {SH[i].s0, SH[i].s1};
        if (ts_tensor_alloc(&t[i], SH[i].name, TS_F32, SH[i].ndim, sh, &e)) abort();
    }
}
static void free_host(ts_tensor *t) {
    for (int i = 0; i < NT; i++) ts_tensor_free(&t[i]);
}
static size_t numel(const ts_tensor *t) { return t->nbytes / 4; }

/* device twins of host tensors (same names and shapes) */
static int alloc_dev(const kn_backend *g, const ts_tensor *h, ts_tensor *d) {
    for (int i = 0; i < NT; i++) {
        d[i] = h[i];
        d[i].owned = false;
        d[i].data = g->alloc(g, h[i].nbytes);
        if (!d[i].data) return -1;
    }
    return 0;
}
static void free_dev(const kn_backend *g, ts_tensor *d) {
    for (int i = 0; i < NT; i++) g->free(g, d[i].data);
}
static int to_dev(const kn_backend *g, ts_tensor *d, const ts_tensor *h) {
    for (int i = 0; i < NT; i++)
        if (g->upload(g, d[i].data, h[i].data, h[i].nbytes)) return -1;
    return 0;
}
/* the tensors whose device values differ from host (bit for bit), as a mask */
static unsigned diff_dev(const kn_backend *g, const ts_tensor *d, const ts_tensor *h) {
    unsigned bad = 0;
    for (int i = 0; i < NT; i++) {
        float *x = malloc(h[i].nbytes);
        if (g->download(g, x, d[i].data, h[i].nbytes) || memcmp(x, h[i].data, h[i].nbytes)) bad |= 1u << i;
        free(x);
    }
    return bad;
}

/* ------------------------------------------------------------- fixtures */

#define MINERS 20
typedef struct fixture {
    spl_ctx *cc, *cg;                 /* host context, GPU context (same shapes) */
    spl_upload *uc[MINERS], *ug[MINERS];
    uint32_t uid[MINERS];
    ts_tensor theta0[NT];
} fixture;

static ts_keypair test_key(int which) {
    uint8_t seed[TS_SEED_BYTES];
    for (int i = 0; i < TS_SEED_BYTES; i++) seed[i] = (uint8_t)(i + 3 + 40 * which);
    ts_keypair kp;
    ts_keypair_from_seed(&kp, seed);
    return kp;
}

/* Miners' deltas: N(0, sd) with sd depending on the miner (so that the
 * clipping bites); `huge` miners put 2e38 in every value of HUGE_T. */
static int make_fixture(fixture *f, const kn_backend *g, int k, int bins, bool small_stage, int huge,
                        uint64_t seed) {
    memset(f, 0, sizeof *f);
    ts_err e = {0};
    ts_tensor d[NT], ef[NT];
    alloc_host(d);
    alloc_host(ef);
    spl_params p;
    spl_params_default(&p);
    p.k = k;
    p.bins = bins;
    if (spl_ctx_new(&p, d, NT, &f->cc, &e) || spl_ctx_new(&p, d, NT, &f->cg, &e)) {
        fprintf(stderr, "ctx: %s\n", e.msg);
        return -1;
    }
    if (huge) {
        spl_ctx_set_max_abs(f->cc, FLT_MAX);
        spl_ctx_set_max_abs(f->cg, FLT_MAX);
    }
    if (small_stage) f->cg->agg_stage_cap = 1; /* the least: one tile of every peer */
    if (spl_ctx_set_device(f->cg, g, &e)) {
        fprintf(stderr, "set_device: %s\n", e.msg);
        return -1;
    }
    uint8_t cfg[TS_HASH_BYTES];
    ts_blake2b(cfg, sizeof cfg, "config", 6);
    rseed(seed);
    for (int m = 0; m < MINERS; m++) {
        f->uid[m] = (uint32_t)((m * 37) % 101 + 1);
        const float sd = 0.25f + 0.1f * (float)((m * 7) % 11);
        for (int i = 0; i < NT; i++) {
            float *x = d[i].data, *y = ef[i].data;
            for (size_t j = 0; j < numel(&d[i]); j++) {
                x[j] = m < huge && i == HUGE_T ? 2.0e38f : rnorm() * sd;
                y[j] = 0.0f;
            }
        }
        ts_keypair kp = test_key(m);
        spl_meta meta;
        memset(&meta, 0, sizeof meta);
        snprintf(meta.run_id, sizeof meta.run_id, "agg-run");
        meta.window = 9;
        meta.uid = f->uid[m];
        memcpy(meta.config_hash, cfg, TS_HASH_BYTES);
        const uint8_t *w;
        size_t len;
        if (spl_compress(f->cc, d, ef, &meta, &kp, &w, &len, &e)) {
            fprintf(stderr, "compress: %s\n", e.msg);
            return -1;
        }
        uint8_t *copy = malloc(len);
        memcpy(copy, w, len);
        spl_expect x = {"agg-run", 9, f->uid[m], kp.pk, cfg, 0};
        if (spl_upload_new(f->cc, &f->uc[m], &e) || spl_upload_new(f->cg, &f->ug[m], &e) ||
            spl_decode(f->cc, copy, len, &x, f->uc[m], NULL, &e) ||
            spl_decode(f->cg, copy, len, &x, f->ug[m], NULL, &e)) {
            fprintf(stderr, "decode: %s\n", e.msg);
            free(copy);
            return -1;
        }
        free(copy);
    }
    alloc_host(f->theta0);
    for (int i = 0; i < NT; i++) {
        float *x = f->theta0[i].data;
        for (size_t j = 0; j < numel(&f->theta0[i]); j++) x[j] = rnorm() * 0.05f;
    }
    /* a few exact zeros and negative zeros among the parameters */
    ((float *)f->theta0[5].data)[3] = -0.0f;
    ((float *)f->theta0[5].data)[4] = 0.0f;
    free_host(d);
    free_host(ef);
    return 0;
}

static void free_fixture(fixture *f) {
    for (int m = 0; m < MINERS; m++) {
        spl_upload_free(f->uc[m]);
        spl_upload_free(f->ug[m]);
    }
    free_host(f->theta0);
    spl_ctx_free(f->cc);
    spl_ctx_free(f->cg);
}

/* The peers `sel` (miner numbers) in one random order each for the host
 * and the GPU lists. */
static void pick(const fixture *f, const int *sel, int n, const spl_upload **pc, const spl_upload **pg) {
    int a[MINERS], b[MINERS];
    for (int i = 0; i < n; i++) a[i] = b[i] = sel[i];
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rnext() % (uint64_t)(i + 1)), t = a[i];
        a[i] = a[j], a[j] = t;
        j = (int)(rnext() % (uint64_t)(i + 1)), t = b[i];
        b[i] = b[j], b[j] = t;
    }
    for (int i = 0; i < n; i++) pc[i] = f->uc[a[i]], pg[i] = f->ug[b[i]];
}

#define CHECK_STATS(a, b, what)                                                                  \
    do {                                                                                         \
        CHECK_MSG((a).tensors_applied == (b).tensors_applied && (a).tensors_skipped == (b).tensors_skipped && \
                      (a).coords == (b).coords,                                                  \
                  "%s: stats differ: cpu %d applied %d skipped %lld coords, gpu %d %d %lld", (what), \
                  (a).tensors_applied, (a).tensors_skipped, (long long)(a).coords, (b).tensors_applied, \
                  (b).tensors_skipped, (long long)(b).coords);                                 \
    } while (0)

static const struct {
    int k, bins;
    bool small_stage;
} CFG[] = {
    {64, 4, false},
    {30, 4, true},
    {64, 256, true},
    {30, 256, false},
};
#define NCFG (int)(sizeof CFG / sizeof CFG[0])

/* ------------------------------------------------------------------ tests */

TEST(outer_step_bit_identical) {
    NEED_GPU(g);
    for (int ci = 0; ci < NCFG; ci++) {
        fixture f;
        REQUIRE(make_fixture(&f, g, CFG[ci].k, CFG[ci].bins, CFG[ci].small_stage, 0, 100 + (uint64_t)ci) == 0);
        ts_tensor th[NT], dth[NT];
        alloc_host(th);
        REQUIRE(alloc_dev(g, th, dth) == 0);
        static const int ns[] = {1, 2, 20};
        for (int r = 0; r < 3; r++) {
            const int n = ns[r];
            int sel[MINERS];
            for (int i = 0; i < n; i++) sel[i] = (i * 7 + r) % MINERS;
            const spl_upload *pc[MINERS], *pg[MINERS];
            pick(&f, sel, n, pc, pg);
            for (int i = 0; i < NT; i++) memcpy(th[i].data, f.theta0[i].data, th[i].nbytes);
            REQUIRE(to_dev(g, dth, th) == 0);
            const float alpha = r == 1 ? 0.7f : 1.0f;
            spl_apply_stats sc, sg;
            ts_err e = {0};
            REQUIRE(spl_outer_step(f.cc, th, pc, n, alpha, &sc, &e) == TS_OK);
            int rc = spl_outer_step(f.cg, dth, pg, n, alpha, &sg, &e);
            CHECK_MSG(rc == TS_OK, "gpu outer step: %s", e.msg);
            unsigned bad = diff_dev(g, dth, th);
            CHECK_MSG(bad == 0, "k %d bins %d, %d peers: tensors 0x%x differ from the CPU's", CFG[ci].k,
                      CFG[ci].bins, n, bad);
            CHECK_STATS(sc, sg, "outer step");
            CHECK(sc.coords > 0 && sc.tensors_applied == NT);
            /* a second step on top of the first */
            REQUIRE(spl_outer_step(f.cc, th, pc, n, -0.3f, &sc, &e) == TS_OK);
            REQUIRE(spl_outer_step(f.cg, dth, pg, n, -0.3f, &sg, &e) == TS_OK);
            CHECK_EQ_INT(diff_dev(g, dth, th), 0);
            CHECK_STATS(sc, sg, "second outer step");
        }
        free_dev(g, dth);
        free_host(th);
        free_fixture(&f);
    }
}

TEST(apply_one_peer_and_undo_exact) {
    NEED_GPU(g);
    for (int ci = 0; ci < NCFG; ci++) {
        fixture f;
        REQUIRE(make_fixture(&f, g, CFG[ci].k, CFG[ci].bins, CFG[ci].small_stage, 0, 200 + (uint64_t)ci) == 0);
        ts_err e = {0};
        double thr[NT];
        const spl_upload *all[MINERS];
        for (int m = 0; m < MINERS; m++) all[m] = f.ug[MINERS - 1 - m];
        REQUIRE(spl_clip_thresholds(f.cg, all, MINERS, thr, &e) == TS_OK);
        ts_tensor th[NT], dth[NT];
        alloc_host(th);
        REQUIRE(alloc_dev(g, th, dth) == 0);
        spl_undo *uc, *ug, *ug3, *uc3;
        REQUIRE(spl_undo_new(f.cc, 1, &uc, &e) == TS_OK);
        REQUIRE(spl_undo_new(f.cg, 1, &ug, &e) == TS_OK);
        REQUIRE(spl_undo_new(f.cc, 3, &uc3, &e) == TS_OK);
        REQUIRE(spl_undo_new(f.cg, 3, &ug3, &e) == TS_OK);
        for (int i = 0; i < NT; i++) memcpy(th[i].data, f.theta0[i].data, th[i].nbytes);
        REQUIRE(to_dev(g, dth, th) == 0);
        for (int m = 0; m < MINERS; m += 3) {
            const float a = 0.5f + 0.25f * (float)(m % 4);
            spl_apply_stats sc, sg;
            const spl_upload *pc = f.uc[m], *pg = f.ug[m];
            REQUIRE(spl_apply(f.cc, th, &pc, 1, thr, a, uc, &sc, &e) == TS_OK);
            int rc = spl_apply(f.cg, dth, &pg, 1, thr, a, ug, &sg, &e);
            CHECK_MSG(rc == TS_OK, "gpu apply: %s", e.msg);
            CHECK_MSG(diff_dev(g, dth, th) == 0, "k %d bins %d miner %d: applied theta differs", CFG[ci].k,
                      CFG[ci].bins, m);
            CHECK_STATS(sc, sg, "apply");
            /* armed: a second application is refused on the device too */
            CHECK(spl_apply(f.cg, dth, &pg, 1, thr, a, ug, NULL, &e) == TS_ESTATE);
            REQUIRE(spl_undo_restore(f.cc, th, uc, &e) == TS_OK);
            rc = spl_undo_restore(f.cg, dth, ug, &e);
            CHECK_MSG(rc == TS_OK, "gpu undo: %s", e.msg);
            CHECK_MSG(diff_dev(g, dth, f.theta0) == 0, "k %d bins %d miner %d: undo did not restore theta",
                      CFG[ci].k, CFG[ci].bins, m);
            CHECK(spl_undo_restore(f.cg, dth, ug, &e) == TS_ESTATE);
        }
        /* three peers, the gather's own thresholds */
        {
            int sel[3] = {4, 11, 17};
            const spl_upload *pc[3], *pg[3];
            pick(&f, sel, 3, pc, pg);
            spl_apply_stats sc, sg;
            REQUIRE(spl_apply(f.cc, th, pc, 3, NULL, 1.0f, uc3, &sc, &e) == TS_OK);
            REQUIRE(spl_apply(f.cg, dth, pg, 3, NULL, 1.0f, ug3, &sg, &e) == TS_OK);
            CHECK_EQ_INT(diff_dev(g, dth, th), 0);
            CHECK_STATS(sc, sg, "apply 3");
            /* more peers than the undo holds */
            CHECK(spl_apply(f.cg, dth, pg, 3, NULL, 1.0f, ug, NULL, &e) == TS_EINVAL);
            REQUIRE(spl_undo_restore(f.cg, dth, ug3, &e) == TS_OK);
            CHECK_EQ_INT(diff_dev(g, dth, f.theta0), 0);
            /* an undo armed on the device is not restored by a host context */
            REQUIRE(spl_apply(f.cg, dth, pg, 3, NULL, 1.0f, ug3, &sg, &e) == TS_OK);
            REQUIRE(spl_ctx_set_device(f.cg, NULL, &e) == TS_OK);
            CHECK(spl_undo_restore(f.cg, th, ug3, &e) == TS_ESTATE);
            REQUIRE(spl_ctx_set_device(f.cg, g, &e) == TS_OK);
            REQUIRE(spl_undo_restore(f.cg, dth, ug3, &e) == TS_OK);
            CHECK_EQ_INT(diff_dev(g, dth, f.theta0), 0);
            REQUIRE(spl_undo_restore(f.cc, th, uc3, &e) == TS_OK);
        }
        spl_undo_free(uc);
        spl_undo_free(ug);
        spl_undo_free(uc3);
        spl_undo_free(ug3);
        free_dev(g, dth);
        free_host(th);
        free_fixture(&f);
    }
}

TEST(aggregate_dense_bit_identical) {
    NEED_GPU(g);
    for (int ci = 0; ci < NCFG; ci++) {
        fixture f;
        REQUIRE(make_fixture(&f, g, CFG[ci].k, CFG[ci].bins, CFG[ci].small_stage, 0, 300 + (uint64_t)ci) == 0);
        ts_tensor gh[NT], gd[NT];
        alloc_host(gh);
        REQUIRE(alloc_dev(g, gh, gd) == 0);
        static const int ns[] = {0, 1, 5, 20};
        for (int r = 0; r < 4; r++) {
            const int n = ns[r];
            int sel[MINERS];
            for (int i = 0; i < n; i++) sel[i] = (i * 3 + r) % MINERS;
            const spl_upload *pc[MINERS], *pg[MINERS];
            pick(&f, sel, n, pc, pg);
            REQUIRE(to_dev(g, gd, f.theta0) == 0); /* garbage to be overwritten */
            spl_apply_stats sc, sg;
            ts_err e = {0};
            REQUIRE(spl_aggregate_dense(f.cc, pc, n, NULL, gh, &sc, &e) == TS_OK);
            int rc = spl_aggregate_dense(f.cg, pg, n, NULL, gd, &sg, &e);
            CHECK_MSG(rc == TS_OK, "gpu dense: %s", e.msg);
            CHECK_MSG(diff_dev(g, gd, gh) == 0, "k %d bins %d, %d peers: dense aggregate differs", CFG[ci].k,
                      CFG[ci].bins, n);
            CHECK_STATS(sc, sg, "dense");
        }
        /* thresholds so small that every clipped value underflows to +0 or
         * -0: a coordinate's first value is stored, not added to 0, so -0
         * means stay -0, in the aggregate and in theta (which holds a -0) */
        {
            double thr[NT];
            for (int i = 0; i < NT; i++) thr[i] = 1e-300;
            int sel[3] = {2, 9, 13};
            const spl_upload *pc[3], *pg[3];
            pick(&f, sel, 3, pc, pg);
            spl_apply_stats sc, sg;
            ts_err e = {0};
            const spl_upload *oc = f.uc[sel[0]], *og = f.ug[sel[0]];
            REQUIRE(spl_aggregate_dense(f.cc, &oc, 1, thr, gh, &sc, &e) == TS_OK);
            REQUIRE(spl_aggregate_dense(f.cg, &og, 1, thr, gd, &sg, &e) == TS_OK);
            CHECK_MSG(diff_dev(g, gd, gh) == 0, "k %d bins %d: signed zeros of the aggregate differ", CFG[ci].k,
                      CFG[ci].bins);
            CHECK_STATS(sc, sg, "dense, signed zeros");
            int negz = 0;
            for (int i = 0; i < NT; i++)
                for (size_t j = 0; j < numel(&gh[i]); j++) negz += signbit(((float *)gh[i].data)[j]) != 0;
            CHECK(negz > 0);
            ts_tensor th[NT], dth[NT];
            alloc_host(th);
            REQUIRE(alloc_dev(g, th, dth) == 0);
            for (int i = 0; i < NT; i++) {
                memcpy(th[i].data, f.theta0[i].data, th[i].nbytes);
                float *x = th[i].data;
                for (size_t j = 0; j < numel(&th[i]); j += 2) x[j] = j % 4 ? -0.0f : 0.0f;
            }
            REQUIRE(to_dev(g, dth, th) == 0);
            REQUIRE(spl_apply(f.cc, th, pc, 3, thr, 0.5f, NULL, &sc, &e) == TS_OK);
            REQUIRE(spl_apply(f.cg, dth, pg, 3, thr, 0.5f, NULL, &sg, &e) == TS_OK);
            CHECK_EQ_INT(diff_dev(g, dth, th), 0);
            CHECK_STATS(sc, sg, "apply, signed zeros");
            free_dev(g, dth);
            free_host(th);
        }
        free_dev(g, gd);
        free_host(gh);
        free_fixture(&f);
    }
}

TEST(nonfinite_aggregate_skipped_the_same_way) {
    NEED_GPU(g);
    for (int ci = 0; ci < NCFG; ci++) {
        fixture f;
        /* miners 0 and 1 put 2e38 in every value of HUGE_T */
        REQUIRE(make_fixture(&f, g, CFG[ci].k, CFG[ci].bins, CFG[ci].small_stage, 2, 400 + (uint64_t)ci) == 0);
        ts_tensor th[NT], dth[NT];
        alloc_host(th);
        REQUIRE(alloc_dev(g, th, dth) == 0);
        ts_err e = {0};
        /* both huge miners and one normal: the median norm is a huge one, the
         * two 2e38 values of a coordinate overflow: HUGE_T is skipped */
        {
            int sel[3] = {0, 1, 5};
            const spl_upload *pc[3], *pg[3];
            pick(&f, sel, 3, pc, pg);
            for (int i = 0; i < NT; i++) memcpy(th[i].data, f.theta0[i].data, th[i].nbytes);
            REQUIRE(to_dev(g, dth, th) == 0);
            spl_apply_stats sc, sg;
            REQUIRE(spl_outer_step(f.cc, th, pc, 3, 1.0f, &sc, &e) == TS_OK);
            int rc = spl_outer_step(f.cg, dth, pg, 3, 1.0f, &sg, &e);
            CHECK_MSG(rc == TS_OK, "gpu outer step: %s", e.msg);
            CHECK_EQ_INT(sc.tensors_skipped, 1);
            CHECK_EQ_INT(sc.tensors_applied, NT - 1);
            CHECK_STATS(sc, sg, "skip");
            CHECK_EQ_INT(diff_dev(g, dth, th), 0);
            CHECK(!memcmp(th[HUGE_T].data, f.theta0[HUGE_T].data, th[HUGE_T].nbytes));
            /* the dense aggregate: zeros for the skipped tensor */
            REQUIRE(spl_aggregate_dense(f.cc, pc, 3, NULL, th, &sc, &e) == TS_OK);
            REQUIRE(spl_aggregate_dense(f.cg, pg, 3, NULL, dth, &sg, &e) == TS_OK);
            CHECK_EQ_INT(diff_dev(g, dth, th), 0);
            CHECK_STATS(sc, sg, "skip dense");
        }
        /* one huge miner and normal ones, no clipping: the sum stays finite
         * but the bound calls for the checking pass, then it is applied */
        {
            double thr[NT];
            for (int i = 0; i < NT; i++) thr[i] = 1e300;
            int sel[4] = {1, 6, 7, 8};
            const spl_upload *pc[4], *pg[4];
            pick(&f, sel, 4, pc, pg);
            for (int i = 0; i < NT; i++) memcpy(th[i].data, f.theta0[i].data, th[i].nbytes);
            REQUIRE(to_dev(g, dth, th) == 0);
            spl_undo *uc, *ug;
            REQUIRE(spl_undo_new(f.cc, 4, &uc, &e) == TS_OK);
            REQUIRE(spl_undo_new(f.cg, 4, &ug, &e) == TS_OK);
            spl_apply_stats sc, sg;
            REQUIRE(spl_apply(f.cc, th, pc, 4, thr, 1.0f, uc, &sc, &e) == TS_OK);
            int rc = spl_apply(f.cg, dth, pg, 4, thr, 1.0f, ug, &sg, &e);
            CHECK_MSG(rc == TS_OK, "gpu apply: %s", e.msg);
            CHECK_EQ_INT(sc.tensors_skipped, 0);
            CHECK_STATS(sc, sg, "huge applied");
            CHECK_EQ_INT(diff_dev(g, dth, th), 0);
            /* and two huge ones unclipped: skipped again, undo restores */
            REQUIRE(spl_undo_restore(f.cg, dth, ug, &e) == TS_OK);
            CHECK_EQ_INT(diff_dev(g, dth, f.theta0), 0);
            REQUIRE(spl_undo_restore(f.cc, th, uc, &e) == TS_OK);
            int sel2[2] = {0, 1};
            pick(&f, sel2, 2, pc, pg);
            REQUIRE(spl_apply(f.cc, th, pc, 2, thr, 1.0f, uc, &sc, &e) == TS_OK);
            REQUIRE(spl_apply(f.cg, dth, pg, 2, thr, 1.0f, ug, &sg, &e) == TS_OK);
            CHECK_EQ_INT(sc.tensors_skipped, 1);
            CHECK_STATS(sc, sg, "huge pair");
            CHECK_EQ_INT(diff_dev(g, dth, th), 0);
            REQUIRE(spl_undo_restore(f.cg, dth, ug, &e) == TS_OK);
            CHECK_EQ_INT(diff_dev(g, dth, f.theta0), 0);
            spl_undo_free(uc);
            spl_undo_free(ug);
        }
        free_dev(g, dth);
        free_host(th);
        free_fixture(&f);
    }
}
