/* fuzz_codec.c - the codec's decoders under hostile input.
 *
 * One entry point, spl_fuzz_one(), used by the libFuzzer target
 * (tests/fuzz/run.sh builds it with -DSPL_FUZZ_MAIN) and by the suite, which
 * replays tests/fuzz/corpus through it (tests/test_codec.c).
 *
 * The first input byte picks what the rest is:
 *   0  a whole wire object, decoded as is (and peeked, and turned into a
 *      context the way the tools do); mostly stops at the signature
 *   1  a wire object without its signature: signed here with the fuzz key,
 *      so every check after the signature is reachable (2-bit codes)
 *   2  the same with 8-bit codes (bins = 256)
 *   3  a raw body for spl_decode_body (2-bit), 4 the same with 8-bit
 *   5  a catch-up bundle signed by the fuzz leader key
 *   6  a bundle without its signature, signed here
 * Whatever decodes is then pushed through everything downstream (dense
 * view, overlap, clip thresholds, apply with undo and restore, dense
 * aggregate), and invariants that must hold for any accepted upload are
 * checked with abort(): restore gives the parameters back bit for bit, an
 * upload overlaps itself fully, the dense aggregate of one peer equals its
 * clipped values.
 *
 * The fuzz model is tiny so executions are fast but has every tile kind: a
 * square-ish tile, a tile with an odd chunk (29 rows), a 1-D tensor, and a
 * 6-value tile whose k is clamped to 6 (so its codes have padding bits).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "common/common.h"

#define FZ_NT 4
static const struct {
    const char *name;
    int ndim;
    int64_t s0, s1;
} fz_shapes[FZ_NT] = {
    {"a.weight", 2, 8, 12},
    {"b.weight", 2, 29, 6},
    {"n.weight", 1, 10, 0},
    {"o.weight", 2, 2, 3},
};

static struct {
    bool ready;
    spl_ctx *c4, *c256;
    spl_upload *u4, *u256, *ub;
    spl_undo *undo4, *undo256;
    ts_keypair kp;
    ts_tensor theta[FZ_NT], g[FZ_NT], save[FZ_NT];
    uint8_t config[TS_HASH_BYTES];
} fz;

static const char FZ_RUN[] = "fuzz";
static const uint64_t FZ_WINDOW = 1;
static const uint32_t FZ_UID = 3;

static void fz_die(const char *what, const ts_err *e) {
    fprintf(stderr, "fuzz_codec: %s: %s\n", what, e ? e->msg : "");
    abort();
}

static void fz_setup(void) {
    if (fz.ready) return;
    ts_err e = {0};
    if (ts_init(&e)) fz_die("init", &e);
    ts_tensor shapes[FZ_NT];
    memset(shapes, 0, sizeof shapes);
    for (int i = 0; i < FZ_NT; i++) {
        int64_t sh[2] = {fz_shapes[i].s0, fz_shapes[i].s1};
        if (ts_tensor_alloc(&fz.theta[i], fz_shapes[i].name, TS_F32, fz_shapes[i].ndim, sh, &e) ||
            ts_tensor_alloc(&fz.g[i], fz_shapes[i].name, TS_F32, fz_shapes[i].ndim, sh, &e) ||
            ts_tensor_alloc(&fz.save[i], fz_shapes[i].name, TS_F32, fz_shapes[i].ndim, sh, &e))
            fz_die("alloc", &e);
        shapes[i] = fz.theta[i];
        float *th = fz.theta[i].data;
        for (size_t j = 0; j < fz.theta[i].nbytes / 4; j++) th[j] = (float)((int)(j % 17) - 8) * 0.125f;
    }
    spl_params p;
    spl_params_default(&p);
    p.k = 8;
    if (spl_ctx_new(&p, shapes, FZ_NT, &fz.c4, &e)) fz_die("ctx", &e);
    p.bins = 256;
    if (spl_ctx_new(&p, shapes, FZ_NT, &fz.c256, &e)) fz_die("ctx", &e);
    if (spl_upload_new(fz.c4, &fz.u4, &e) || spl_upload_new(fz.c4, &fz.ub, &e) ||
        spl_upload_new(fz.c256, &fz.u256, &e))
        fz_die("upload", &e);
    if (spl_undo_new(fz.c4, 2, &fz.undo4, &e) || spl_undo_new(fz.c256, 2, &fz.undo256, &e)) fz_die("undo", &e);
    uint8_t seed[TS_SEED_BYTES];
    for (int i = 0; i < TS_SEED_BYTES; i++) seed[i] = (uint8_t)(0xf0 + i);
    if (ts_keypair_from_seed(&fz.kp, seed)) fz_die("key", NULL);
    ts_blake2b(fz.config, sizeof fz.config, "fuzz-config", 11);
    fz.ready = true;
}

static spl_expect fz_expect(void) {
    spl_expect x = {FZ_RUN, FZ_WINDOW, FZ_UID, fz.kp.pk, fz.config, 0};
    return x;
}

static void fz_check_bits(const ts_tensor *a, const ts_tensor *b, const char *what) {
    for (int i = 0; i < FZ_NT; i++)
        if (memcmp(a[i].data, b[i].data, a[i].nbytes)) {
            fprintf(stderr, "fuzz_codec: invariant broken: %s (tensor %s)\n", what, a[i].name);
            abort();
        }
}

/* Everything downstream of a decoded upload. */
static void fz_exercise(spl_ctx *c, spl_upload *u, spl_undo *undo) {
    ts_err e = {0};
    if (spl_upload_dense(c, u, fz.g, &e)) fz_die("dense", &e);
    double share = -1;
    if (spl_overlap(c, u, u, &share, &e)) fz_die("overlap", &e);
    if (share != 1.0) {
        fprintf(stderr, "fuzz_codec: an upload overlaps itself by %g\n", share);
        abort();
    }
    double thr[FZ_NT];
    const spl_upload *peers[1] = {u};
    if (spl_clip_thresholds(c, peers, 1, thr, &e)) fz_die("thresholds", &e);
    for (int i = 0; i < FZ_NT; i++) memcpy(fz.save[i].data, fz.theta[i].data, fz.theta[i].nbytes);
    spl_apply_stats st;
    if (spl_apply(c, fz.theta, peers, 1, thr, 0.2f, undo, &st, &e)) fz_die("apply", &e);
    if (spl_undo_restore(c, fz.theta, undo, &e)) fz_die("restore", &e);
    fz_check_bits(fz.theta, fz.save, "undo restores the parameters");
    if (spl_aggregate_dense(c, peers, 1, NULL, fz.g, &st, &e)) fz_die("aggregate", &e);
    /* one peer, its own median: f = min(1, n / (n + 1e-8)), every value scaled alike */
    for (int i = 0; i < FZ_NT; i++) {
        spl_tview tv;
        if (spl_upload_tensor(u, i, &tv)) fz_die("tensor view", NULL);
        double f = tv.norm / (tv.norm + 1e-8);
        if (!(f <= 1.0)) f = 1.0;
        spl_tinfo ti;
        spl_ctx_tensor(c, i, &ti);
        const float *g = fz.g[i].data;
        for (int64_t tile = 0; tile < ti.tiles && st.tensors_skipped == 0; tile++) {
            uint16_t idx[SPL_MAX_TILE];
            uint8_t codes[SPL_MAX_TILE];
            if (spl_upload_tile(u, i, tile, idx, codes)) fz_die("tile", NULL);
            int64_t ty = tile / ti.tiles_x, tx = tile % ti.tiles_x;
            int64_t cols = ti.ndim == 2 ? ti.shape[1] : ti.shape[0];
            for (int j = 0; j < ti.k; j++) {
                int64_t flat = (ty * ti.chunk[0] + idx[j] / ti.chunk[1]) * cols + tx * ti.chunk[1] + idx[j] % ti.chunk[1];
                float want = (tv.lut[codes[j]] + tv.shift) * (float)f;
                if (memcmp(&want, &g[flat], 4)) {
                    fprintf(stderr, "fuzz_codec: dense aggregate of one peer differs at %s[%lld]\n", ti.name,
                            (long long)flat);
                    abort();
                }
            }
        }
    }
}

static uint8_t *fz_sign(const uint8_t *msg, size_t n, const char *tag, size_t *len) {
    uint8_t *w = malloc(n + TS_SIG_BYTES);
    if (!w) abort();
    if (n) memcpy(w, msg, n);
    uint8_t hash[TS_HASH_BYTES];
    ts_blake2b(hash, sizeof hash, w, n);
    if (ts_sign(&fz.kp, tag, hash, sizeof hash, w + n, NULL)) abort();
    *len = n + TS_SIG_BYTES;
    return w;
}

static void fz_bundle(const uint8_t *b, size_t n) {
    spl_bundle_entry ent[4];
    int ne = 0;
    ts_err e = {0};
    if (spl_bundle_open(b, n, FZ_RUN, FZ_WINDOW, fz.kp.pk, fz.config, spl_ctx_wire_max(fz.c4), ent, 4, &ne, NULL,
                        NULL, NULL, &e))
        return;
    for (int i = 0; i < ne; i++) {
        spl_expect x = {FZ_RUN, FZ_WINDOW, ent[i].uid, ent[i].hotkey, fz.config, 0};
        if (!spl_decode(fz.c4, ent[i].wire, ent[i].len, &x, fz.ub, NULL, &e)) fz_exercise(fz.c4, fz.ub, fz.undo4);
    }
}

/* The tools' path: a context built from what the upload itself lists. */
static void fz_tools(const uint8_t *w, size_t n) {
    spl_ctx *c = NULL;
    spl_reject why;
    ts_err e = {0};
    if (spl_ctx_from_wire(w, n, 1 << 16, &c, &why, &e)) return;
    spl_upload *u = NULL;
    spl_expect any = {0};
    any.skip = SPL_SKIP_RUN | SPL_SKIP_WINDOW | SPL_SKIP_UID | SPL_SKIP_SIGNER | SPL_SKIP_CONFIG;
    if (spl_upload_new(c, &u, &e)) fz_die("upload", &e);
    if (!spl_decode(c, w, n, &any, u, &why, &e)) {
        double share;
        if (spl_overlap(c, u, u, &share, &e) || (share != 1.0 && share != 0.0)) {
            fprintf(stderr, "fuzz_codec: tools path: self-overlap %g\n", share);
            abort();
        }
    }
    spl_upload_free(u);
    spl_ctx_free(c);
}

int spl_fuzz_one(const uint8_t *data, size_t size) {
    fz_setup();
    if (size < 1) return 0;
    const int mode = data[0] % 7;
    data++, size--;
    ts_err e = {0};
    spl_reject why;
    spl_expect x = fz_expect();
    switch (mode) {
    case 0: {
        spl_meta m;
        spl_params p;
        spl_wire_info info;
        spl_peek(data, size, &m, &p, &info, &why, &e);
        if (!spl_decode(fz.c4, data, size, &x, fz.u4, &why, &e)) fz_exercise(fz.c4, fz.u4, fz.undo4);
        fz_tools(data, size);
        break;
    }
    case 1:
    case 2: {
        size_t n;
        uint8_t *w = fz_sign(data, size, SPL_SIG_TAG, &n);
        spl_ctx *c = mode == 1 ? fz.c4 : fz.c256;
        spl_upload *u = mode == 1 ? fz.u4 : fz.u256;
        if (!spl_decode(c, w, n, &x, u, &why, &e)) fz_exercise(c, u, mode == 1 ? fz.undo4 : fz.undo256);
        fz_tools(w, n);
        free(w);
        break;
    }
    case 3:
        if (!spl_decode_body(fz.c4, data, size, fz.u4, &why, &e)) fz_exercise(fz.c4, fz.u4, fz.undo4);
        break;
    case 4:
        if (!spl_decode_body(fz.c256, data, size, fz.u256, &why, &e)) fz_exercise(fz.c256, fz.u256, fz.undo256);
        break;
    case 5:
        fz_bundle(data, size);
        break;
    case 6: {
        size_t n;
        uint8_t *w = fz_sign(data, size, SPL_BUNDLE_TAG, &n);
        fz_bundle(w, n);
        free(w);
        break;
    }
    }
    return 0;
}

/* Seeds: valid objects of every mode, from seeded random deltas. */
static int fz_write(const char *dir, const char *name, uint8_t mode, const uint8_t *d, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *buf = malloc(n + 1);
    if (!buf) return 1;
    buf[0] = mode;
    memcpy(buf + 1, d, n);
    ts_err e = {0};
    int rc = ts_write_atomic(path, buf, n + 1, &e);
    free(buf);
    return rc;
}

int spl_fuzz_seeds(const char *dir) {
    fz_setup();
    ts_err e = {0};
    ts_tensor delta[FZ_NT], ef[FZ_NT];
    uint64_t s = 0x9e3779b97f4a7c15ull;
    uint8_t *bwire[3] = {0};
    size_t blen[3] = {0};
    for (int round = 0; round < 3; round++) {
        for (int b = 0; b < 2; b++) {
            spl_ctx *c = b ? fz.c256 : fz.c4;
            for (int i = 0; i < FZ_NT; i++) {
                int64_t sh[2] = {fz_shapes[i].s0, fz_shapes[i].s1};
                ts_tensor_alloc(&delta[i], fz_shapes[i].name, TS_F32, fz_shapes[i].ndim, sh, &e);
                ts_tensor_alloc(&ef[i], fz_shapes[i].name, TS_F32, fz_shapes[i].ndim, sh, &e);
                float *d = delta[i].data;
                for (size_t j = 0; j < delta[i].nbytes / 4; j++) {
                    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                    d[j] = ((float)(s >> 40) / (float)(1 << 24) - 0.5f) * (round == 2 ? 0.0f : 0.02f);
                }
            }
            spl_meta m = {0};
            snprintf(m.run_id, sizeof m.run_id, "%s", FZ_RUN);
            m.window = FZ_WINDOW;
            m.uid = FZ_UID + (uint32_t)round;
            memcpy(m.config_hash, fz.config, TS_HASH_BYTES);
            const uint8_t *w;
            size_t n;
            if (spl_compress(c, delta, ef, &m, &fz.kp, &w, &n, &e)) fz_die("compress", &e);
            char name[64];
            snprintf(name, sizeof name, "seed-wire-b%d-r%d", b ? 256 : 4, round);
            fz_write(dir, name, 0, w, n);
            snprintf(name, sizeof name, "seed-unsigned-b%d-r%d", b ? 256 : 4, round);
            fz_write(dir, name, b ? 2 : 1, w, n - TS_SIG_BYTES);
            /* the body, decompressed */
            uint8_t *body;
            size_t blen2;
            if (ts_zstd_decompress(w + SPL_HEADER_BYTES, n - SPL_HEADER_BYTES - TS_SIG_BYTES, 1 << 20, &body, &blen2, &e))
                fz_die("zstd", &e);
            snprintf(name, sizeof name, "seed-body-b%d-r%d", b ? 256 : 4, round);
            fz_write(dir, name, b ? 4 : 3, body, blen2);
            free(body);
            if (!b) {
                bwire[round] = malloc(n);
                memcpy(bwire[round], w, n);
                blen[round] = n;
            }
            for (int i = 0; i < FZ_NT; i++) {
                ts_tensor_free(&delta[i]);
                ts_tensor_free(&ef[i]);
            }
        }
    }
    uint8_t *bundle;
    size_t bl;
    const uint8_t *const ws[3] = {bwire[0], bwire[1], bwire[2]};
    if (spl_bundle_build(FZ_RUN, FZ_WINDOW, fz.config, fz.config, fz.config, &fz.kp, ws, blen, 3, &bundle, &bl, &e)) fz_die("bundle", &e);
    fz_write(dir, "seed-bundle", 5, bundle, bl);
    fz_write(dir, "seed-bundle-unsigned", 6, bundle, bl - TS_SIG_BYTES);
    free(bundle);
    for (int i = 0; i < 3; i++) free(bwire[i]);
    return 0;
}

#ifdef SPL_FUZZ_MAIN
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *dir = getenv("SPL_FUZZ_WRITE_SEEDS");
    if (dir && *dir) exit(spl_fuzz_seeds(dir));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return spl_fuzz_one(data, size); }
#endif
