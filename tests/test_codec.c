/* test_codec.c - SparseLoCo codec: packing, chunking, quantizer, selection,
 * error feedback, the wire format and every way of rejecting it,
 * aggregation against a plain dense reference, clipping, determinism, the
 * single-peer evaluation and its undo, overlap, the catch-up bundle, and a
 * replay of the fuzz corpus.
 *
 * Malformed uploads are built here from the byte layout in docs/FORMATS.md
 * section 7 (header offsets, record layout) independently of the codec's
 * writer, then signed with the test key, so each check after the signature
 * is reached on its own. */
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <zstd.h>

#include "codec/codec.h"
#include "common/common.h"
#include "harness.h"

#include "fuzz/fuzz_codec.c"

/* ------------------------------------------------------------ helpers */

static uint64_t rs = 0x243f6a8885a308d3ull;
static void rseed(uint64_t s) { rs = s ? s : 1; }
static uint64_t rnext(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static float runif(void) { return (float)(rnext() >> 40) / (float)(1 << 24); }
static float rnorm(void) { return (runif() + runif() + runif() + runif() - 2.0f) * 1.7320508f; }

/* The test model: every tile kind.  k = 16 unless a test says otherwise. */
#define NT 6
static const struct {
    const char *name;
    int ndim;
    int64_t s0, s1;
} SHAPES[NT] = {
    {"emb.weight", 2, 58, 128},   /* chunks 58 x 64: 2 tiles of 3712 */
    {"l0.q.weight", 2, 128, 128}, /* 4 tiles of 4096 */
    {"l0.ln1.weight", 1, 128, 0}, /* 2 chunks of 64 */
    {"l0.o.weight", 2, 64, 96},   /* chunks 64 x 48: 2 tiles of 3072 */
    {"l0.ln2.weight", 1, 128, 0}, /* same record size as l0.ln1 */
    {"odd.weight", 2, 2, 3},      /* one tile of 6: k clamped to 6, codes padded */
};

static void alloc_model(ts_tensor *t) {
    ts_err e = {0};
    for (int i = 0; i < NT; i++) {
        int64_t sh[2] = {SHAPES[i].s0, SHAPES[i].s1};
        if (ts_tensor_alloc(&t[i], SHAPES[i].name, TS_F32, SHAPES[i].ndim, sh, &e)) abort();
    }
}
static void free_model(ts_tensor *t) {
    for (int i = 0; i < NT; i++) ts_tensor_free(&t[i]);
}
static size_t numel_of(const ts_tensor *t) { return t->nbytes / 4; }
static void fill_normal(ts_tensor *t, float sd) {
    for (int i = 0; i < NT; i++) {
        float *x = t[i].data;
        for (size_t j = 0; j < numel_of(&t[i]); j++) x[j] = rnorm() * sd;
    }
}
static void copy_model(ts_tensor *dst, const ts_tensor *src) {
    for (int i = 0; i < NT; i++) memcpy(dst[i].data, src[i].data, src[i].nbytes);
}
static bool same_bits(const ts_tensor *a, const ts_tensor *b) {
    for (int i = 0; i < NT; i++)
        if (memcmp(a[i].data, b[i].data, a[i].nbytes)) return false;
    return true;
}

static spl_ctx *make_ctx(int k, int bins, float alpha) {
    ts_tensor t[NT];
    alloc_model(t);
    spl_params p;
    spl_params_default(&p);
    p.k = k;
    p.bins = bins;
    p.alpha = alpha;
    spl_ctx *c = NULL;
    ts_err e = {0};
    if (spl_ctx_new(&p, t, NT, &c, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        abort();
    }
    free_model(t);
    return c;
}

static ts_keypair test_key(int which) {
    uint8_t seed[TS_SEED_BYTES];
    for (int i = 0; i < TS_SEED_BYTES; i++) seed[i] = (uint8_t)(i + 1 + 40 * which);
    ts_keypair kp;
    ts_keypair_from_seed(&kp, seed);
    return kp;
}

static uint8_t CONFIG[TS_HASH_BYTES];
static spl_meta test_meta(uint32_t uid) {
    spl_meta m;
    memset(&m, 0, sizeof m);
    snprintf(m.run_id, sizeof m.run_id, "test-run");
    m.window = 42;
    m.uid = uid;
    ts_blake2b(CONFIG, sizeof CONFIG, "config", 6);
    memcpy(m.config_hash, CONFIG, TS_HASH_BYTES);
    for (int i = 0; i < TS_HASH_BYTES; i++) m.base_hash[i] = (uint8_t)i, m.sample_digest[i] = (uint8_t)(255 - i);
    return m;
}

static spl_expect expect_for(const ts_keypair *kp, uint32_t uid) {
    spl_expect x = {"test-run", 42, uid, kp->pk, CONFIG, 0};
    return x;
}

/* Compresses delta (with ef, updated) and returns a malloc'd copy of the wire. */
static uint8_t *compress_copy(spl_ctx *c, ts_tensor *delta, ts_tensor *ef, uint32_t uid, const ts_keypair *kp,
                              size_t *len) {
    spl_meta m = test_meta(uid);
    const uint8_t *w;
    ts_err e = {0};
    if (spl_compress(c, delta, ef, &m, kp, &w, len, &e)) {
        fprintf(stderr, "compress: %s\n", e.msg);
        return NULL;
    }
    uint8_t *copy = malloc(*len);
    memcpy(copy, w, *len);
    return copy;
}

/* A decoded upload from random data: delta ~ N(0, sd), ef zero. */
static spl_upload *random_upload(spl_ctx *c, uint32_t uid, uint64_t seed, float sd, uint8_t **wire_out,
                                 size_t *len_out) {
    ts_tensor d[NT], ef[NT];
    alloc_model(d);
    alloc_model(ef);
    rseed(seed);
    fill_normal(d, sd);
    ts_keypair kp = test_key(0);
    size_t len;
    uint8_t *w = compress_copy(c, d, ef, uid, &kp, &len);
    spl_upload *u = NULL;
    ts_err e = {0};
    spl_upload_new(c, &u, &e);
    spl_expect x = expect_for(&kp, uid);
    if (!w || spl_decode(c, w, len, &x, u, NULL, &e)) {
        fprintf(stderr, "decode: %s\n", e.msg);
        abort();
    }
    if (wire_out) *wire_out = w, *len_out = len;
    else free(w);
    free_model(d);
    free_model(ef);
    return u;
}

/* Flat position of (tile, offset) per the layout rule. */
static int64_t flat_of(const spl_tinfo *t, int64_t tile, int o) {
    int64_t ty = tile / t->tiles_x, tx = tile % t->tiles_x;
    int64_t cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
    return (ty * t->chunk[0] + o / t->chunk[1]) * cols + tx * t->chunk[1] + o % t->chunk[1];
}

/* ------------------------------------------------------------ packing */

TEST(pack12_round_trip_every_value_and_position) {
    /* every 12-bit value in the first and in the second slot of a pair */
    uint16_t in[8192], out[8192];
    for (int i = 0; i < 4096; i++) {
        in[2 * i] = (uint16_t)i;
        in[2 * i + 1] = (uint16_t)(4095 - i);
    }
    uint8_t packed[8192 / 2 * 3];
    spl_pack12(in, 8192, packed);
    spl_unpack12(packed, 8192, out);
    CHECK(!memcmp(in, out, sizeof in));
    /* the documented byte layout */
    uint16_t pair[2] = {0xabc, 0x123};
    uint8_t b[3];
    spl_pack12(pair, 2, b);
    CHECK_EQ_INT(b[0], 0xbc);
    CHECK_EQ_INT(b[1], 0x3a);
    CHECK_EQ_INT(b[2], 0x12);
    /* every even length from 0 to 64, random values, nothing written past 3n/2 */
    rseed(7);
    for (int n = 0; n <= 64; n += 2) {
        uint16_t v[64], w[64];
        uint8_t p[100];
        memset(p, 0xee, sizeof p);
        for (int i = 0; i < n; i++) v[i] = (uint16_t)(rnext() & 0xfff);
        spl_pack12(v, (size_t)n, p);
        CHECK_EQ_INT(p[n / 2 * 3], 0xee);
        spl_unpack12(p, (size_t)n, w);
        CHECK(!memcmp(v, w, (size_t)n * 2));
    }
}

TEST(pack_codes_round_trip_every_residue) {
    /* 2-bit: every length residue mod 4, every code in every slot of a byte */
    for (int n = 0; n <= 67; n++) {
        uint8_t codes[67], back[67], p[32];
        for (int rep = 0; rep < 4; rep++) {
            for (int i = 0; i < n; i++) codes[i] = (uint8_t)((i + rep) & 3);
            memset(p, 0xff, sizeof p);
            size_t nb = spl_code_bytes(n, 2);
            CHECK_EQ_INT(nb, (size_t)(n + 3) / 4);
            spl_pack_codes(codes, (size_t)n, 2, p);
            if (n % 4) CHECK_MSG((p[nb - 1] >> (2 * (n % 4))) == 0, "padding bits set for n = %d", n);
            CHECK_EQ_INT(p[nb], 0xff);
            spl_unpack_codes(p, (size_t)n, 2, back);
            CHECK(!memcmp(codes, back, (size_t)n));
        }
    }
    uint8_t four[4] = {1, 2, 3, 0}, byte;
    spl_pack_codes(four, 4, 2, &byte);
    CHECK_EQ_INT(byte, 1 | 2 << 2 | 3 << 4);
    /* 8-bit: every byte value */
    uint8_t all[256], p8[256], b8[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)(255 - i);
    CHECK_EQ_INT(spl_code_bytes(256, 8), 256);
    spl_pack_codes(all, 256, 8, p8);
    spl_unpack_codes(p8, 256, 8, b8);
    CHECK(!memcmp(all, b8, 256));
}

/* ---------------------------------------------------- chunking and k */

TEST(chunk_rule_and_clamped_even_k) {
    CHECK_EQ_INT(spl_chunk_of(768, 64), 64);
    CHECK_EQ_INT(spl_chunk_of(3072, 64), 64);
    CHECK_EQ_INT(spl_chunk_of(50257, 64), 29); /* 29 x 1733 */
    CHECK_EQ_INT(spl_chunk_of(32000, 64), 64);
    CHECK_EQ_INT(spl_chunk_of(58, 64), 58);
    CHECK_EQ_INT(spl_chunk_of(67, 64), 1);
    CHECK_EQ_INT(spl_chunk_of(1, 64), 1);
    CHECK_EQ_INT(spl_chunk_of(96, 64), 48);

    ts_err e = {0};
    spl_params p;
    spl_params_default(&p);
    ts_tensor t[5];
    memset(t, 0, sizeof t);
    const char *names[5] = {"norm", "wide", "small", "tiny", "tall"};
    const int64_t sh[5][2] = {{768, 0}, {50257, 768}, {3, 10}, {3, 5}, {96, 2}};
    for (int i = 0; i < 5; i++) {
        snprintf(t[i].name, sizeof t[i].name, "%s", names[i]);
        t[i].dtype = TS_F32;
        t[i].ndim = sh[i][1] ? 2 : 1;
        t[i].shape[0] = sh[i][0];
        t[i].shape[1] = sh[i][1];
    }
    for (int k = 64; k <= 128; k += 64) {
        p.k = k;
        spl_ctx *c = NULL;
        REQUIRE(spl_ctx_new(&p, t, 5, &c, &e) == TS_OK);
        spl_tinfo ti;
        spl_ctx_tensor(c, 0, &ti); /* a norm vector travels dense */
        CHECK_EQ_INT(ti.chunk[0], 1);
        CHECK_EQ_INT(ti.chunk[1], 64);
        CHECK_EQ_INT(ti.tiles, 12);
        CHECK_EQ_INT(ti.k, 64);
        spl_ctx_tensor(c, 1, &ti); /* the 124m embedding: tiles of 29 x 64 */
        CHECK_EQ_INT(ti.chunk[0], 29);
        CHECK_EQ_INT(ti.chunk[1], 64);
        CHECK_EQ_INT(ti.tiles, 1733 * 12);
        CHECK_EQ_INT(ti.tile_numel, 1856);
        CHECK_EQ_INT(ti.k, k);
        spl_ctx_tensor(c, 2, &ti); /* tile of 30: k clamped to 30 */
        CHECK_EQ_INT(ti.k, 30);
        spl_ctx_tensor(c, 3, &ti); /* tile of 15: clamped to 15, made even */
        CHECK_EQ_INT(ti.k, 14);
        spl_ctx_tensor(c, 4, &ti); /* [96, 2]: chunks 48 x 2, tiles of 96 */
        CHECK_EQ_INT(ti.chunk[0], 48);
        CHECK_EQ_INT(ti.chunk[1], 2);
        CHECK_EQ_INT(ti.k, k < 96 ? k : 96);
        spl_ctx_free(c);
    }
    p.k = 7; /* an odd k is made even */
    spl_ctx *c = NULL;
    REQUIRE(spl_ctx_new(&p, t, 5, &c, &e) == TS_OK);
    spl_tinfo ti;
    spl_ctx_tensor(c, 1, &ti);
    CHECK_EQ_INT(ti.k, 6);
    spl_ctx_free(c);
    /* tiles of one value cannot carry an even k: refused with a reason */
    ts_tensor prime = t[0];
    prime.shape[0] = 67;
    CHECK_ERR(spl_ctx_new(&p, &prime, 1, &c, &e), TS_EUNSUPPORTED);
    CHECK(strstr(e.msg, "pad") != NULL);
    /* 3-D, empty and duplicate names are refused */
    ts_tensor bad = t[1];
    bad.ndim = 3;
    bad.shape[2] = 2;
    CHECK_ERR(spl_ctx_new(&p, &bad, 1, &c, &e), TS_EUNSUPPORTED);
    ts_tensor dup[2] = {t[0], t[0]};
    CHECK_ERR(spl_ctx_new(&p, dup, 2, &c, &e), TS_EINVAL);
    p.bins = 16;
    CHECK_ERR(spl_ctx_new(&p, t, 5, &c, &e), TS_EINVAL);
}

/* ---------------------------------------------------------- quantizer */

TEST(quantizer_hand_computed_ties_to_even) {
    /* mean 0, sum of squares 208 = 16 * 13: std = 4, scale = 6 * 4 / 4 = 6.
     * c / scale + 2: 3 -> 2.5 -> 2 (even), -3 -> 1.5 -> 2 (even),
     * 9 -> 3.5 -> 4 -> clamped 3, -9 -> 0.5 -> 0 (even); 1, 2 -> 2; -1, -2 -> 2. */
    const float v[14] = {3, -3, 9, -9, 1, -1, 1, -1, 2, -2, 2, -2, 2, -2};
    const uint8_t want[14] = {2, 2, 3, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
    uint8_t codes[14];
    float lut[4], shift;
    float scale = spl_quantize(v, 14, 4, 6.0f, codes, lut, &shift);
    CHECK(scale == 6.0f);
    CHECK(shift == 0.0f);
    CHECK(!memcmp(codes, want, 14));
    CHECK(lut[0] == -9.0f);
    CHECK(lut[1] == 0.0f); /* no value got code 1 */
    CHECK(lut[2] == 0.0f); /* mean of 3 -3 1 -1 1 -1 2 -2 2 -2 2 -2 */
    CHECK(lut[3] == 9.0f);
    /* shifted by 100: the same codes, shift 100 */
    float w[14];
    for (int i = 0; i < 14; i++) w[i] = v[i] + 100.0f;
    scale = spl_quantize(w, 14, 4, 6.0f, codes, lut, &shift);
    CHECK(shift == 100.0f);
    CHECK(scale == 6.0f);
    CHECK(!memcmp(codes, want, 14));
    CHECK(lut[0] + shift == 91.0f && lut[3] + shift == 109.0f && lut[2] + shift == 100.0f);
    /* 256 bins: scale 6 * 4 / 256 = 0.09375; codes rint(c / 0.09375 + 128) */
    float lut256[256];
    scale = spl_quantize(v, 14, 256, 6.0f, codes, lut256, &shift);
    CHECK(scale == 0.09375f);
    const uint8_t want256[14] = {160, 96, 224, 32, 139, 117, 139, 117, 149, 107, 149, 107, 149, 107};
    CHECK(!memcmp(codes, want256, 14));
    CHECK(lut256[224] == 9.0f && lut256[139] == 1.0f && lut256[107] == -2.0f && lut256[0] == 0.0f);
}

TEST(quantizer_all_equal_and_n_1_and_n_2) {
    uint8_t codes[8];
    float lut[4], shift;
    /* all equal: c = 0, std = 0 -> scale falls back to 1, code 2, lut[2] = 0 */
    const float eq[5] = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f};
    float scale = spl_quantize(eq, 5, 4, 6.0f, codes, lut, &shift);
    CHECK(scale == 1.0f);
    CHECK(shift == 0.25f);
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(codes[i], 2);
    CHECK(lut[0] == 0.0f && lut[1] == 0.0f && lut[2] == 0.0f && lut[3] == 0.0f);
    /* n = 1: std undefined -> scale 1; the value comes back exactly */
    const float one[1] = {-3.5f};
    scale = spl_quantize(one, 1, 4, 6.0f, codes, lut, &shift);
    CHECK(scale == 1.0f);
    CHECK(shift == -3.5f);
    CHECK_EQ_INT(codes[0], 2);
    CHECK(lut[codes[0]] + shift == -3.5f);
    /* n = 2: v = {1, 3}: shift 2, c = -1, 1, std = sqrt(2), scale = 1.5 sqrt(2);
     * c / scale = -+0.4714 -> both code 2, lut[2] = 0: both come back as 2 */
    const float two[2] = {1.0f, 3.0f};
    scale = spl_quantize(two, 2, 4, 6.0f, codes, lut, &shift);
    CHECK(scale == (float)(6.0 * sqrt(2.0) / 4.0));
    CHECK(shift == 2.0f);
    CHECK_EQ_INT(codes[0], 2);
    CHECK_EQ_INT(codes[1], 2);
    CHECK(lut[2] == 0.0f);
    /* n = 2 with 256 bins: scale = 6 sqrt(2) / 256, c / scale = -+30.17 -> 98, 158 */
    float lut256[256];
    scale = spl_quantize(two, 2, 256, 6.0f, codes, lut256, &shift);
    CHECK_EQ_INT(codes[0], 98);
    CHECK_EQ_INT(codes[1], 158);
    CHECK(lut256[98] + shift == 1.0f && lut256[158] + shift == 3.0f);
    /* a zero scale from a tiny range falls back too */
    scale = spl_quantize(two, 2, 4, 1e-45f, codes, lut, &shift);
    CHECK(scale == 1.0f);
}

/* ---------------------------------------------------------- selection */

TEST(topk_is_exact_with_ties_to_the_lower_index) {
    /* one [64, 64] tile, k = 16: magnitudes with ties (and sign flips, which
     * tie too); the reference sorts by (|v| desc, index asc). */
    ts_tensor t;
    ts_err e = {0};
    int64_t sh[2] = {64, 64};
    REQUIRE(ts_tensor_alloc(&t, "w", TS_F32, 2, sh, &e) == TS_OK);
    ts_tensor ef;
    REQUIRE(ts_tensor_alloc(&ef, "w", TS_F32, 2, sh, &e) == TS_OK);
    spl_params p;
    spl_params_default(&p);
    p.k = 16;
    spl_ctx *c;
    REQUIRE(spl_ctx_new(&p, &t, 1, &c, &e) == TS_OK);
    spl_upload *u;
    REQUIRE(spl_upload_new(c, &u, &e) == TS_OK);
    ts_keypair kp = test_key(0);
    for (int trial = 0; trial < 4; trial++) {
        float *x = t.data;
        rseed(100 + (uint64_t)trial);
        for (int i = 0; i < 4096; i++) {
            /* trial 0: all zero; 1: few distinct magnitudes; 2: distinct; 3: ties at the cut */
            if (trial == 0) x[i] = 0.0f;
            else if (trial == 1) x[i] = (float)((int)(rnext() % 7) - 3) * 0.5f;
            else if (trial == 2) x[i] = rnorm();
            else x[i] = (i % 97 == 5) ? ((rnext() & 1) ? 2.0f : -2.0f) : runif();
        }
        memset(ef.data, 0, ef.nbytes);
        spl_meta m = test_meta(1);
        const uint8_t *w;
        size_t len;
        REQUIRE(spl_compress(c, &t, &ef, &m, &kp, &w, &len, &e) == TS_OK);
        spl_expect xp = expect_for(&kp, 1);
        REQUIRE(spl_decode(c, w, len, &xp, u, NULL, &e) == TS_OK);
        uint16_t got[16];
        REQUIRE(spl_upload_tile(u, 0, 0, got, NULL) == TS_OK);
        /* reference: selection sort of the 16 best */
        bool taken[4096] = {false};
        uint16_t want[16];
        for (int j = 0; j < 16; j++) {
            int best = -1;
            for (int i = 0; i < 4096; i++)
                if (!taken[i] && (best < 0 || fabsf(x[i]) > fabsf(x[best]))) best = i;
            taken[best] = true;
            want[j] = (uint16_t)best;
        }
        /* ascending order on the wire */
        for (int a = 0; a < 16; a++)
            for (int b = a + 1; b < 16; b++)
                if (want[b] < want[a]) {
                    uint16_t tmp = want[a];
                    want[a] = want[b];
                    want[b] = tmp;
                }
        CHECK_MSG(!memcmp(got, want, sizeof want), "trial %d: selected offsets differ from the reference", trial);
    }
    spl_upload_free(u);
    spl_ctx_free(c);
    ts_tensor_free(&t);
    ts_tensor_free(&ef);
}

/* ----------------------------------------------------- error feedback */

/* ef_new = fl(fl(beta * ef) + fl(alpha * delta)) computed here; sent from
 * the decoded wire; ef_after from compress.  What must hold, bit for bit:
 *  - unsent coordinates: ef_after == ef_new;
 *  - sent coordinates: fl(ef_after + sent) == ef_new, the invariant of
 *    PROTOCOL section 7 in fp32; and ef_after is fl(ef_new - sent) itself
 *    wherever that subtraction is exact (always when sent/2 <= ef_new <=
 *    2 sent), else one of its fp32 neighbours. */
TEST(error_feedback_invariant_exact_in_fp32) {
    const float beta = 0.95f, alpha = 0.7f;
    spl_ctx *c = make_ctx(16, 4, alpha);
    ts_tensor d[NT], ef[NT], ef0[NT], sent[NT];
    alloc_model(d), alloc_model(ef), alloc_model(ef0), alloc_model(sent);
    rseed(11);
    fill_normal(d, 0.01f);
    fill_normal(ef, 0.05f); /* a previous round's residual */
    copy_model(ef0, ef);
    ts_keypair kp = test_key(0);
    size_t len;
    uint8_t *w = compress_copy(c, d, ef, 3, &kp, &len);
    REQUIRE(w != NULL);
    spl_upload *u;
    ts_err e = {0};
    REQUIRE(spl_upload_new(c, &u, &e) == TS_OK);
    spl_expect x = expect_for(&kp, 3);
    REQUIRE(spl_decode(c, w, len, &x, u, NULL, &e) == TS_OK);
    REQUIRE(spl_upload_dense(c, u, sent, &e) == TS_OK);
    int64_t kept = 0, exact = 0, sterbenz = 0, inexact = 0, impossible = 0;
    for (int i = 0; i < NT; i++) {
        spl_tinfo ti;
        spl_ctx_tensor(c, i, &ti);
        size_t n = numel_of(&d[i]);
        bool *mask = calloc(n, 1);
        for (int64_t tile = 0; tile < ti.tiles; tile++) {
            uint16_t idx[SPL_MAX_TILE];
            spl_upload_tile(u, i, tile, idx, NULL);
            for (int j = 0; j < ti.k; j++) mask[flat_of(&ti, tile, idx[j])] = true;
        }
        const float *D = d[i].data, *E0 = ef0[i].data, *E1 = ef[i].data, *S = sent[i].data;
        for (size_t j = 0; j < n; j++) {
            const float a = beta * E0[j];
            const float b = alpha * D[j];
            const float en = a + b;
            if (!mask[j]) {
                CHECK_MSG(!memcmp(&E1[j], &en, 4), "%s[%zu]: unsent coordinate changed", d[i].name, j);
                continue;
            }
            kept++;
            const float back = E1[j] + S[j];
            const float r = en - S[j];
            if (memcmp(&back, &en, 4)) {
                /* allowed only when no fp32 residual gives ef_new back: the
                 * sum's grid (the ulp of sent) is coarser than ef_new's */
                float cand = r;
                for (int s2 = 0; s2 < 2; s2++) cand = nextafterf(cand, -INFINITY);
                bool any = false;
                for (int s2 = 0; s2 < 5; s2++, cand = nextafterf(cand, INFINITY)) {
                    const float y = cand + S[j];
                    any |= !memcmp(&y, &en, 4);
                }
                CHECK_MSG(!any, "%s[%zu]: fl(ef_after + sent) != ef_new though a residual exists", d[i].name, j);
                CHECK_MSG(fabs(((double)E1[j] + (double)S[j]) - (double)en) <=
                              0.5 * (double)(nextafterf(fabsf(E1[j]), INFINITY) - fabsf(E1[j])),
                          "%s[%zu]: residual error above half an ulp", d[i].name, j);
                impossible++;
            }
            /* TwoSum of en and -S: err is the exact rounding error of r */
            const float ms = -S[j];
            const float bb = r - en;
            const float err = (en - (r - bb)) + (ms - bb);
            if ((S[j] / 2 <= en && en <= 2 * S[j]) || (S[j] / 2 >= en && en >= 2 * S[j])) {
                sterbenz++;
                CHECK_MSG(err == 0.0f, "%s[%zu]: Sterbenz case not exact", d[i].name, j);
            }
            if (err == 0.0f) {
                exact++;
                CHECK_MSG(!memcmp(&E1[j], &r, 4), "%s[%zu]: ef_after != fl(ef_new - sent)", d[i].name, j);
                CHECK_MSG((double)E1[j] + (double)S[j] == (double)en, "%s[%zu]: ef_after + sent != ef_new", d[i].name, j);
            } else {
                inexact++;
                CHECK_MSG(E1[j] == nextafterf(r, INFINITY) || E1[j] == nextafterf(r, -INFINITY) || E1[j] == r,
                          "%s[%zu]: residual more than one ulp from fl(ef_new - sent)", d[i].name, j);
            }
        }
        free(mask);
    }
    CHECK_EQ_INT(kept, spl_ctx_values(c));
    CHECK(exact > 0);
    CHECK(sterbenz > 0);
    printf("    ef: %lld sent; fl(ef_after + sent) == ef_new for %lld (%lld by an exact subtraction, %lld by Sterbenz, "
           "%lld nudged by one ulp); %lld have no fp32 residual that sums back exactly (each within half an ulp)\n",
           (long long)kept, (long long)(kept - impossible), (long long)exact, (long long)sterbenz,
           (long long)(inexact - impossible), (long long)impossible);
    CHECK(impossible * 20 < kept);
    free(w);
    spl_upload_free(u);
    free_model(d), free_model(ef), free_model(ef0), free_model(sent);
    spl_ctx_free(c);
}

TEST(compress_is_all_or_nothing_and_null_rounds_zero_ef) {
    spl_ctx *c = make_ctx(16, 4, 1.0f);
    ts_tensor d[NT], ef[NT], ef0[NT];
    alloc_model(d), alloc_model(ef), alloc_model(ef0);
    rseed(12);
    fill_normal(d, 0.01f);
    fill_normal(ef, 0.01f);
    copy_model(ef0, ef);
    ((float *)d[3].data)[77] = NAN;
    ts_keypair kp = test_key(0);
    spl_meta m = test_meta(1);
    const uint8_t *w;
    size_t len;
    ts_err e = {0};
    CHECK_ERR(spl_compress(c, d, ef, &m, &kp, &w, &len, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "l0.o.weight") != NULL);
    CHECK(same_bits(ef, ef0));
    ((float *)d[3].data)[77] = INFINITY;
    CHECK_ERR(spl_compress(c, d, ef, &m, &kp, &w, &len, &e), TS_EINVAL);
    CHECK(same_bits(ef, ef0));
    ((float *)d[3].data)[77] = 0.0f;
    /* a bad run id or a shape mismatch changes nothing either */
    snprintf(m.run_id, sizeof m.run_id, "bad run");
    CHECK_ERR(spl_compress(c, d, ef, &m, &kp, &w, &len, &e), TS_EINVAL);
    m = test_meta(1);
    d[0].shape[0]--;
    CHECK_ERR(spl_compress(c, d, ef, &m, &kp, &w, &len, &e), TS_EINVAL);
    d[0].shape[0]++;
    CHECK(same_bits(ef, ef0));
    REQUIRE(spl_compress(c, d, ef, &m, &kp, &w, &len, &e) == TS_OK);
    CHECK(!same_bits(ef, ef0));
    REQUIRE(spl_ef_zero(c, ef, &e) == TS_OK);
    for (int i = 0; i < NT; i++)
        for (size_t j = 0; j < numel_of(&ef[i]); j++) CHECK(((float *)ef[i].data)[j] == 0.0f);
    free_model(d), free_model(ef), free_model(ef0);
    spl_ctx_free(c);
}

TEST(compress_is_deterministic_and_sizes_match_the_layout) {
    spl_ctx *c = make_ctx(16, 4, 1.0f);
    ts_tensor d[NT], ef1[NT], ef2[NT];
    alloc_model(d), alloc_model(ef1), alloc_model(ef2);
    rseed(13);
    fill_normal(d, 0.01f);
    ts_keypair kp = test_key(0);
    size_t l1, l2;
    uint8_t *w1 = compress_copy(c, d, ef1, 5, &kp, &l1);
    uint8_t *w2 = compress_copy(c, d, ef2, 5, &kp, &l2);
    REQUIRE(w1 && w2);
    CHECK(l1 == l2 && !memcmp(w1, w2, l1)); /* the signature is deterministic too */
    CHECK(same_bits(ef1, ef2));
    CHECK(l1 <= spl_ctx_wire_max(c));
    CHECK(!memcmp(w1, "TESSGRAD", 8));
    /* byte 81: the signature scheme (1, sr25519); 82..83 reserved, zero */
    CHECK_EQ_INT(w1[81], TS_SIG_SCHEME_SR25519);
    CHECK_EQ_INT(w1[81], 1);
    CHECK_EQ_INT(w1[82], 0);
    CHECK_EQ_INT(w1[83], 0);
    CHECK_EQ_INT(ts_get_u64(w1 + 248), spl_ctx_body_bytes(c));
    CHECK_EQ_INT(ts_get_u64(w1 + 256) + SPL_HEADER_BYTES + TS_SIG_BYTES, l1);
    /* the body size is the sum of the documented record sizes */
    size_t body = 0;
    for (int i = 0; i < NT; i++) {
        spl_tinfo ti;
        spl_ctx_tensor(c, i, &ti);
        size_t ib = (size_t)ti.values / 2 * 3, cb = (size_t)(ti.values + 3) / 4;
        size_t rec = 2 + strlen(ti.name) + 1 + 5 * (size_t)ti.ndim + 2 + 4 + 4 + 16 + 8 + ib + cb;
        CHECK_EQ_INT(rec, ti.record_bytes);
        body += rec;
    }
    CHECK_EQ_INT(body, spl_ctx_body_bytes(c));
    free(w1), free(w2);
    free_model(d), free_model(ef1), free_model(ef2);
    spl_ctx_free(c);
}

/* ------------------------------------------------ malformed uploads
 *
 * The layout below is read from docs/FORMATS.md 7.1-7.2, not from the codec. */
enum {
    OFF_VERSION = 8, OFF_FLAGS = 10, OFF_HDRLEN = 12, OFF_RUN = 17, OFF_SCHEME = 81, OFF_RSV0 = 82, OFF_UID = 84,
    OFF_HOTKEY = 96, OFF_K = 224, OFF_BETA = 232, OFF_NTENS = 244, OFF_BODY = 248, OFF_ZBODY = 256,
    HDR = 264
};

typedef struct {
    size_t at, name, ndim, shape, chunk, k, nvals, shift, lut, ib, cb, idx, codes, end;
} recpos;

static bool find_rec(const uint8_t *b, size_t n, int bins, const char *name, recpos *r) {
    size_t p = 0;
    while (p + 2 <= n) {
        recpos x;
        x.at = p;
        size_t nl = ts_get_u16(b + p);
        x.name = p + 2;
        p += 2 + nl;
        x.ndim = p;
        int nd = b[p++];
        x.shape = p;
        p += 4 * (size_t)nd;
        x.chunk = p;
        p += (size_t)nd;
        x.k = p;
        p += 2;
        x.nvals = p;
        p += 4;
        x.shift = p;
        p += 4;
        x.lut = p;
        p += 4 * (size_t)bins;
        x.ib = p;
        x.cb = p + 4;
        size_t ib = ts_get_u32(b + p), cb = ts_get_u32(b + p + 4);
        p += 8;
        x.idx = p;
        p += ib;
        x.codes = p;
        p += cb;
        x.end = p;
        if (nl == strlen(name) && !memcmp(b + x.name, name, nl)) {
            *r = x;
            return true;
        }
    }
    return false;
}

static void put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    ts_put_u32(p, u);
}

/* Header (HDR bytes) + compressed body + ts_sign over BLAKE2b of both. */
static uint8_t *seal(const uint8_t *hdr, const uint8_t *z, size_t zlen, const ts_keypair *kp, size_t *len) {
    uint8_t *w = malloc(HDR + zlen + TS_SIG_BYTES);
    memcpy(w, hdr, HDR);
    ts_put_u64(w + OFF_ZBODY, zlen);
    memcpy(w + HDR, z, zlen);
    uint8_t hash[32];
    ts_blake2b(hash, 32, w, HDR + zlen);
    ts_sign(kp, "tessera/gradient/v1", hash, 32, w + HDR + zlen, NULL);
    *len = HDR + zlen + TS_SIG_BYTES;
    return w;
}

typedef struct {
    spl_ctx *c;
    spl_upload *u;
    ts_keypair kp, other;
    uint8_t *wire, *body;
    size_t len, blen;
    int bins;
    bool covered[SPL_R_COUNT];
} fixture;

static void fx_init(fixture *f, int bins) {
    memset(f, 0, sizeof *f);
    f->bins = bins;
    f->c = make_ctx(16, bins, 1.0f);
    f->kp = test_key(0);
    f->other = test_key(1);
    spl_upload *u0 = random_upload(f->c, 9, 21, 0.01f, &f->wire, &f->len);
    spl_upload_free(u0);
    ts_err e = {0};
    spl_upload_new(f->c, &f->u, &e);
    if (ts_zstd_decompress(f->wire + HDR, f->len - HDR - TS_SIG_BYTES, 1 << 24, &f->body, &f->blen, &e)) abort();
}
static void fx_free(fixture *f) {
    spl_upload_free(f->u);
    spl_ctx_free(f->c);
    free(f->wire);
    free(f->body);
}

static uint8_t *seal_body(fixture *f, const uint8_t *hdr, const uint8_t *body, size_t blen, size_t *len) {
    uint8_t h[HDR];
    memcpy(h, hdr ? hdr : f->wire, HDR);
    ts_put_u64(h + OFF_BODY, blen);
    uint8_t *z;
    size_t zl;
    ts_zstd_compress(body, blen, 3, &z, &zl, NULL);
    uint8_t *w = seal(h, z, zl, &f->kp, len);
    free(z);
    return w;
}

static void expect_reject(fixture *f, const spl_expect *x, const uint8_t *w, size_t n, spl_reject want,
                          int want_code, int line) {
    spl_reject why = SPL_R_NONE;
    ts_err e = {0};
    int rc = spl_decode(f->c, w, n, x, f->u, &why, &e);
    if (why != want || rc != want_code)
        th_fail(__FILE__, line, "expected %s (code %d), got %s (code %d): %s", spl_reject_name(want), want_code,
                spl_reject_name(why), rc, e.msg);
    else
        f->covered[want] = true;
    if (spl_upload_ok(f->u)) th_fail(__FILE__, line, "a rejected upload is left usable");
    if (rc && !strstr(e.msg, spl_reject_name(want))) th_fail(__FILE__, line, "message lacks the reason: %s", e.msg);
}
#define REJECT(w, n, R, CODE) expect_reject(&f, &x, (w), (n), (R), (CODE), __LINE__)

/* A body with one edit, sealed and decoded. */
#define BODY_CASE(R, CODE, ...)                                         \
    do {                                                                \
        uint8_t *B = malloc(f.blen);                                    \
        memcpy(B, f.body, f.blen);                                      \
        __VA_ARGS__;                                                    \
        size_t n_;                                                      \
        uint8_t *w_ = seal_body(&f, NULL, B, f.blen, &n_);              \
        REJECT(w_, n_, R, CODE);                                        \
        free(w_);                                                       \
        free(B);                                                        \
    } while (0)

/* A header with one edit, sealed with the original body. */
#define HDR_CASE(R, CODE, ...)                                          \
    do {                                                                \
        uint8_t H[HDR];                                                 \
        memcpy(H, f.wire, HDR);                                         \
        __VA_ARGS__;                                                    \
        size_t n_;                                                      \
        uint8_t *w_ = seal(H, f.wire + HDR, f.len - HDR - TS_SIG_BYTES, &f.kp, &n_); \
        REJECT(w_, n_, R, CODE);                                        \
        free(w_);                                                       \
    } while (0)

TEST(decode_accepts_the_valid_upload_and_reads_its_metadata) {
    fixture f;
    fx_init(&f, 4);
    spl_expect x = expect_for(&f.kp, 9);
    spl_reject why = SPL_R_COUNT;
    ts_err e = {0};
    REQUIRE(spl_decode(f.c, f.wire, f.len, &x, f.u, &why, &e) == TS_OK);
    CHECK_EQ_INT(why, SPL_R_NONE);
    const spl_meta *m = spl_upload_meta(f.u);
    CHECK_STR(m->run_id, "test-run");
    CHECK_EQ_INT(m->window, 42);
    CHECK_EQ_INT(m->uid, 9);
    CHECK(!memcmp(m->hotkey, f.kp.pk, 32));
    spl_meta want = test_meta(9);
    CHECK(!memcmp(m->base_hash, want.base_hash, 32));
    CHECK(!memcmp(m->sample_digest, want.sample_digest, 32));
    CHECK(!memcmp(m->config_hash, CONFIG, 32));
    spl_wire_info info;
    spl_upload_info(f.u, &info);
    CHECK_EQ_INT(info.wire_bytes, f.len);
    CHECK_EQ_INT(info.body_bytes, spl_ctx_body_bytes(f.c));
    CHECK_EQ_INT(info.tensors, NT);
    /* the same bytes decode again into the same object */
    REQUIRE(spl_decode(f.c, f.wire, f.len, &x, f.u, &why, &e) == TS_OK);
    /* a body with its records in another order is accepted too */
    recpos r0, r1;
    REQUIRE(find_rec(f.body, f.blen, 4, "emb.weight", &r0));
    REQUIRE(find_rec(f.body, f.blen, 4, "l0.q.weight", &r1));
    uint8_t *sw = malloc(f.blen);
    size_t a = r0.end - r0.at, b = r1.end - r1.at;
    memcpy(sw, f.body + r1.at, b);
    memcpy(sw + b, f.body + r0.at, a);
    memcpy(sw + a + b, f.body + r1.end, f.blen - r1.end);
    size_t n;
    uint8_t *w = seal_body(&f, NULL, sw, f.blen, &n);
    CHECK_EQ_INT(spl_decode(f.c, w, n, &x, f.u, &why, &e), TS_OK);
    free(w);
    free(sw);
    /* peek reads the header without checking it */
    spl_meta pm;
    spl_params pp;
    CHECK_EQ_INT(spl_peek(f.wire, f.len, &pm, &pp, &info, &why, &e), TS_OK);
    CHECK_EQ_INT(pm.uid, 9);
    CHECK_EQ_INT(pp.k, 16);
    CHECK_EQ_INT(pp.bins, 4);
    fx_free(&f);
}

TEST(decode_rejects_every_malformed_class_with_its_own_reason) {
    fixture f;
    fx_init(&f, 4);
    spl_expect x = expect_for(&f.kp, 9);
    uint8_t *w = malloc(f.len + 1);
    size_t z = f.len - HDR - TS_SIG_BYTES;

    /* framing */
    memcpy(w, f.wire, f.len);
    w[0] ^= 1;
    REJECT(w, f.len, SPL_R_MAGIC, TS_EFORMAT);
    memcpy(w, f.wire, f.len);
    ts_put_u16(w + OFF_VERSION, 2);
    REJECT(w, f.len, SPL_R_VERSION, TS_EFORMAT);
    REJECT(f.wire, 5, SPL_R_TRUNCATED, TS_EFORMAT);
    REJECT(f.wire, HDR + TS_SIG_BYTES - 1, SPL_R_TRUNCATED, TS_EFORMAT);
    REJECT(f.wire, f.len - 1, SPL_R_TRUNCATED, TS_EFORMAT);
    memcpy(w, f.wire, f.len);
    w[f.len] = 0;
    REJECT(w, f.len + 1, SPL_R_TRAILING, TS_EFORMAT);
    size_t big = spl_ctx_wire_max(f.c) + 1;
    uint8_t *huge = calloc(1, big);
    memcpy(huge, f.wire, HDR);
    REJECT(huge, big, SPL_R_OVERSIZED, TS_ETOOBIG);
    free(huge);

    /* signature */
    memcpy(w, f.wire, f.len);
    w[HDR + z / 2] ^= 0x40;
    REJECT(w, f.len, SPL_R_SIGNATURE, TS_ESIG);
    memcpy(w, f.wire, f.len);
    w[f.len - 1] ^= 1;
    REJECT(w, f.len, SPL_R_SIGNATURE, TS_ESIG);
    memcpy(w, f.wire, f.len);
    w[OFF_UID] ^= 1; /* a field changed after signing */
    REJECT(w, f.len, SPL_R_SIGNATURE, TS_ESIG);
    spl_expect xo = x;
    xo.signer = f.other.pk;
    expect_reject(&f, &xo, f.wire, f.len, SPL_R_SIGNATURE, TS_ESIG, __LINE__);
    HDR_CASE(SPL_R_SIGNER, TS_ESIG, memcpy(H + OFF_HOTKEY, f.other.pk, 32));

    /* binding: run, window, uid, config, parameters */
    spl_expect xr = x;
    xr.run_id = "other-run";
    expect_reject(&f, &xr, f.wire, f.len, SPL_R_RUN, TS_EDENIED, __LINE__);
    xr = x;
    xr.window = 43;
    expect_reject(&f, &xr, f.wire, f.len, SPL_R_WINDOW, TS_EDENIED, __LINE__);
    xr = x;
    xr.uid = 10;
    expect_reject(&f, &xr, f.wire, f.len, SPL_R_UID, TS_EDENIED, __LINE__);
    uint8_t cfg[32];
    memcpy(cfg, CONFIG, 32);
    cfg[5] ^= 1;
    xr = x;
    xr.config_hash = cfg;
    expect_reject(&f, &xr, f.wire, f.len, SPL_R_CONFIG, TS_EDENIED, __LINE__);
    HDR_CASE(SPL_R_PARAMS, TS_EDENIED, ts_put_u16(H + OFF_K, 18));
    HDR_CASE(SPL_R_PARAMS, TS_EDENIED, put_f32(H + OFF_BETA, 0.9f));

    /* header fields */
    HDR_CASE(SPL_R_HEADER, TS_EFORMAT, ts_put_u16(H + OFF_FLAGS, 1));
    HDR_CASE(SPL_R_HEADER, TS_EFORMAT, H[OFF_RSV0] = 1);
    HDR_CASE(SPL_R_HEADER, TS_EFORMAT, H[OFF_RSV0 + 1] = 1);
    /* the signature scheme: another one is unreadable, like another version */
    HDR_CASE(SPL_R_VERSION, TS_EFORMAT, H[OFF_SCHEME] = 0);
    HDR_CASE(SPL_R_VERSION, TS_EFORMAT, H[OFF_SCHEME] = 2);
    HDR_CASE(SPL_R_HEADER, TS_EFORMAT, ts_put_u32(H + OFF_HDRLEN, HDR + 1));
    HDR_CASE(SPL_R_HEADER, TS_EFORMAT, H[OFF_RUN + 4] = ' ');
    HDR_CASE(SPL_R_HEADER, TS_EFORMAT, H[OFF_RUN + 40] = 'x');
    HDR_CASE(SPL_R_MISSING_TENSOR, TS_EFORMAT, ts_put_u32(H + OFF_NTENS, NT - 1));
    HDR_CASE(SPL_R_UNKNOWN_TENSOR, TS_EFORMAT, ts_put_u32(H + OFF_NTENS, NT + 1));
    HDR_CASE(SPL_R_BODY_SIZE, TS_EFORMAT, ts_put_u64(H + OFF_BODY, f.blen + 1));
    HDR_CASE(SPL_R_BODY_SIZE, TS_EFORMAT, ts_put_u64(H + OFF_BODY, (uint64_t)1 << 40));

    /* compression */
    {
        uint8_t junk[64];
        for (int i = 0; i < 64; i++) junk[i] = (uint8_t)(i * 37 + 1);
        size_t n;
        uint8_t *s = seal(f.wire, junk, sizeof junk, &f.kp, &n);
        REJECT(s, n, SPL_R_ZSTD, TS_EFORMAT);
        free(s);
        uint8_t *zz = malloc(z);
        memcpy(zz, f.wire + HDR, z);
        zz[z - 1] ^= 0xff; /* the frame's content checksum */
        s = seal(f.wire, zz, z, &f.kp, &n);
        REJECT(s, n, SPL_R_ZSTD, TS_EFORMAT);
        free(s);
        free(zz);
        /* a body one byte short of what the header and the model say */
        uint8_t *zs;
        size_t zsl;
        ts_zstd_compress(f.body, f.blen - 1, 3, &zs, &zsl, NULL);
        s = seal(f.wire, zs, zsl, &f.kp, &n);
        REJECT(s, n, SPL_R_BODY_SIZE, TS_EFORMAT);
        free(s);
        free(zs);
    }
    /* zstd bombs: declared too large; real and larger; no declared size */
    {
        uint8_t frame[16] = {0x28, 0xb5, 0x2f, 0xfd, 0xe0};
        ts_put_u64(frame + 5, (uint64_t)1 << 36);
        frame[13] = 1; /* last block, raw, 0 bytes */
        size_t n;
        uint8_t *s = seal(f.wire, frame, sizeof frame, &f.kp, &n);
        REJECT(s, n, SPL_R_ZSTD_BOMB, TS_ETOOBIG);
        free(s);
        size_t zn = f.blen * 50;
        uint8_t *zeros = calloc(1, zn);
        uint8_t *zb;
        size_t zbl;
        ts_zstd_compress(zeros, zn, 19, &zb, &zbl, NULL);
        s = seal(f.wire, zb, zbl, &f.kp, &n);
        REJECT(s, n, SPL_R_ZSTD_BOMB, TS_ETOOBIG);
        free(s);
        free(zb);
        ZSTD_CCtx *cc = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
        size_t cap = ZSTD_compressBound(zn);
        zb = malloc(cap);
        ZSTD_outBuffer ob = {zb, cap, 0};
        ZSTD_inBuffer ib = {zeros, zn, 0};
        size_t r = ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end);
        REQUIRE(r == 0);
        ZSTD_freeCCtx(cc);
        s = seal(f.wire, zb, ob.pos, &f.kp, &n);
        REJECT(s, n, SPL_R_ZSTD_BOMB, TS_ETOOBIG);
        free(s);
        free(zb);
        free(zeros);
    }

    /* records */
    recpos q, ln1, ln2, emb, odd;
    REQUIRE(find_rec(f.body, f.blen, 4, "l0.q.weight", &q));
    REQUIRE(find_rec(f.body, f.blen, 4, "l0.ln1.weight", &ln1));
    REQUIRE(find_rec(f.body, f.blen, 4, "l0.ln2.weight", &ln2));
    REQUIRE(find_rec(f.body, f.blen, 4, "emb.weight", &emb));
    REQUIRE(find_rec(f.body, f.blen, 4, "odd.weight", &odd));
    CHECK_EQ_INT(ln1.end - ln1.at, ln2.end - ln2.at);
    BODY_CASE(SPL_R_UNKNOWN_TENSOR, TS_EFORMAT, B[q.name + 3] = 'X');
    BODY_CASE(SPL_R_DUP_TENSOR, TS_EFORMAT, memcpy(B + ln2.at, f.body + ln1.at, ln1.end - ln1.at));
    BODY_CASE(SPL_R_RECORD, TS_EFORMAT, ts_put_u16(B + q.at, 0));
    BODY_CASE(SPL_R_RECORD, TS_EFORMAT, B[q.ndim] = 3);
    BODY_CASE(SPL_R_SHAPE, TS_EFORMAT, ts_put_u32(B + q.shape, 129));
    BODY_CASE(SPL_R_SHAPE, TS_EFORMAT, B[q.ndim] = 1);
    BODY_CASE(SPL_R_CHUNK, TS_EFORMAT, B[emb.chunk] = 29);
    BODY_CASE(SPL_R_K, TS_EFORMAT, ts_put_u16(B + q.k, 14));
    BODY_CASE(SPL_R_SECTION_SIZE, TS_EFORMAT, ts_put_u32(B + q.nvals, ts_get_u32(B + q.nvals) + 2));
    BODY_CASE(SPL_R_SECTION_SIZE, TS_EFORMAT, ts_put_u32(B + q.ib, ts_get_u32(B + q.ib) + 3));
    BODY_CASE(SPL_R_SECTION_SIZE, TS_EFORMAT, ts_put_u32(B + q.cb, ts_get_u32(B + q.cb) - 1));
    BODY_CASE(SPL_R_NONFINITE, TS_EFORMAT, put_f32(B + q.shift, NAN));
    BODY_CASE(SPL_R_NONFINITE, TS_EFORMAT, put_f32(B + q.lut + 4, INFINITY));
    BODY_CASE(SPL_R_ABSURD, TS_EFORMAT, put_f32(B + q.lut, 2e4f));
    BODY_CASE(SPL_R_ABSURD, TS_EFORMAT, put_f32(B + q.shift, -2e4f));
    BODY_CASE(SPL_R_ABSURD, TS_EFORMAT, put_f32(B + q.shift, 9e3f); put_f32(B + q.lut + 12, 9e3f));
    /* indices: tile 0 of emb holds 3712 values; its last index is the largest */
    BODY_CASE(SPL_R_INDEX_RANGE, TS_EFORMAT, B[emb.idx + 22] |= 0xf0; B[emb.idx + 23] = 0xff);
    BODY_CASE(SPL_R_INDEX_DUP, TS_EFORMAT, {
        unsigned a = B[q.idx] | ((B[q.idx + 1] & 0xfu) << 8);
        B[q.idx + 1] = (uint8_t)((a >> 8) | ((a & 0xf) << 4));
        B[q.idx + 2] = (uint8_t)(a >> 4);
    });
    BODY_CASE(SPL_R_INDEX_ORDER, TS_EFORMAT, {
        uint16_t ab[2];
        spl_unpack12(B + q.idx, 2, ab);
        uint16_t ba[2] = {ab[1], ab[0]};
        spl_pack12(ba, 2, B + q.idx);
    });
    /* odd.weight: 6 codes in 2 bytes, the last byte uses 4 bits */
    CHECK_EQ_INT(ts_get_u32(f.body + odd.cb), 2);
    BODY_CASE(SPL_R_PADDING, TS_EFORMAT, B[odd.codes + 1] |= 0x40);

    /* every class was produced, each with its own reason */
    for (int r = 1; r < SPL_R_COUNT; r++)
        CHECK_MSG(f.covered[r], "no test produced %s", spl_reject_name((spl_reject)r));
    /* and the valid upload still decodes */
    CHECK_EQ_INT(spl_decode(f.c, f.wire, f.len, &x, f.u, NULL, NULL), TS_OK);
    free(w);
    fx_free(&f);
}

/* Byte 81 is the signature scheme (docs/FORMATS.md 7.1): only sr25519 (1) is
 * read.  0 (Ed25519, an earlier Tessera's) and any other value are refused
 * by the scheme, before the signature is verified, naming what was read. */
TEST(decode_refuses_another_signature_scheme_before_the_signature) {
    fixture f;
    fx_init(&f, 4);
    spl_expect x = expect_for(&f.kp, 9);
    REQUIRE(f.wire[OFF_SCHEME] == TS_SIG_SCHEME_SR25519);
    spl_reject why = SPL_R_NONE;
    ts_err e = {0};
    const size_t z = f.len - HDR - TS_SIG_BYTES;
    uint8_t H[HDR];
    size_t n;
    /* scheme 0, validly signed over it: an upload made by an earlier Tessera */
    memcpy(H, f.wire, HDR);
    H[OFF_SCHEME] = 0;
    uint8_t *w = seal(H, f.wire + HDR, z, &f.kp, &n);
    CHECK_EQ_INT(spl_decode(f.c, w, n, &x, f.u, &why, &e), TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_VERSION);
    CHECK_MSG(strstr(e.msg, "signature scheme 0") && strstr(e.msg, "Ed25519") && strstr(e.msg, "earlier Tessera"),
              "message: %s", e.msg);
    CHECK(!spl_upload_ok(f.u));
    /* peek and the tools' path (context from the wire) refuse it as well */
    spl_meta pm;
    spl_params pp;
    spl_wire_info info;
    why = SPL_R_NONE;
    CHECK_EQ_INT(spl_peek(w, n, &pm, &pp, &info, &why, &e), TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_VERSION);
    spl_ctx *tc = NULL;
    why = SPL_R_NONE;
    CHECK_EQ_INT(spl_ctx_from_wire(w, n, 1 << 24, &tc, &why, &e), TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_VERSION);
    CHECK(tc == NULL);
    CHECK_MSG(strstr(e.msg, "Ed25519") != NULL, "message: %s", e.msg);
    free(w);
    /* an unknown scheme: the message names the byte read */
    H[OFF_SCHEME] = 7;
    w = seal(H, f.wire + HDR, z, &f.kp, &n);
    CHECK_EQ_INT(spl_decode(f.c, w, n, &x, f.u, &why, &e), TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_VERSION);
    CHECK_MSG(strstr(e.msg, "signature scheme 7 is not sr25519") != NULL, "message: %s", e.msg);
    free(w);
    /* the byte flipped after signing: refused by its scheme, before the
     * signature is looked at (even under another signer) ... */
    w = malloc(f.len);
    memcpy(w, f.wire, f.len);
    w[OFF_SCHEME] = 0;
    CHECK_EQ_INT(spl_decode(f.c, w, f.len, &x, f.u, &why, &e), TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_VERSION);
    spl_expect xo = x;
    xo.signer = f.other.pk;
    CHECK_EQ_INT(spl_decode(f.c, w, f.len, &xo, f.u, &why, &e), TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_VERSION);
    /* ... and the byte is signed: the flipped object's signature fails too */
    uint8_t hash[TS_HASH_BYTES];
    ts_blake2b(hash, sizeof hash, w, f.len - TS_SIG_BYTES);
    CHECK(ts_verify(f.kp.pk, SPL_SIG_TAG, hash, sizeof hash, w + f.len - TS_SIG_BYTES, NULL) != TS_OK);
    w[OFF_SCHEME] = TS_SIG_SCHEME_SR25519;
    CHECK_EQ_INT(spl_decode(f.c, w, f.len, &x, f.u, &why, &e), TS_OK);
    free(w);
    fx_free(&f);
}

TEST(decode_body_stage_missing_and_extra_records) {
    fixture f;
    fx_init(&f, 256);
    spl_reject why;
    ts_err e = {0};
    CHECK_EQ_INT(spl_decode_body(f.c, f.body, f.blen, f.u, &why, &e), TS_OK);
    recpos last;
    REQUIRE(find_rec(f.body, f.blen, 256, "odd.weight", &last));
    CHECK_EQ_INT(last.end, f.blen);
    CHECK_EQ_INT(spl_decode_body(f.c, f.body, last.at, f.u, &why, &e), TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_MISSING_TENSOR);
    CHECK_EQ_INT(spl_decode_body(f.c, f.body, f.blen - 1, f.u, &why, &e), TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_TRUNCATED);
    uint8_t *more = malloc(f.blen + 8);
    memcpy(more, f.body, f.blen);
    memset(more + f.blen, 0, 8);
    CHECK_EQ_INT(spl_decode_body(f.c, more, f.blen + 8, f.u, &why, &e), TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_BODY_SIZE);
    free(more);
    CHECK(!spl_upload_ok(f.u));
    fx_free(&f);
}

/* A frame that declares 64 GiB, a header that declares a 1 TiB body: both
 * refused from the declared sizes, under an address-space limit that would
 * turn any attempt to allocate them into an out-of-memory error instead. */
TEST(sizes_are_checked_before_allocation) {
    fixture f;
    fx_init(&f, 4);
    spl_expect x = expect_for(&f.kp, 9);
#if !defined(__SANITIZE_ADDRESS__)
    struct rlimit rl = {(rlim_t)2 << 30, (rlim_t)2 << 30};
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
#endif
    uint8_t frame[16] = {0x28, 0xb5, 0x2f, 0xfd, 0xe0};
    ts_put_u64(frame + 5, (uint64_t)64 << 30);
    frame[13] = 1;
    size_t n;
    uint8_t *s = seal(f.wire, frame, sizeof frame, &f.kp, &n);
    REJECT(s, n, SPL_R_ZSTD_BOMB, TS_ETOOBIG);
    free(s);
    uint8_t h[HDR];
    memcpy(h, f.wire, HDR);
    ts_put_u64(h + OFF_BODY, (uint64_t)1 << 40);
    s = seal(h, frame, sizeof frame, &f.kp, &n);
    REJECT(s, n, SPL_R_BODY_SIZE, TS_EFORMAT);
    free(s);
    /* the tools' path, which has no model: the declared body is capped */
    spl_ctx *c2 = NULL;
    spl_reject why;
    ts_err e = {0};
    CHECK_EQ_INT(spl_ctx_from_wire(s = seal(h, frame, sizeof frame, &f.kp, &n), n, 1 << 30, &c2, &why, &e), TS_ETOOBIG);
    CHECK_EQ_INT(why, SPL_R_OVERSIZED);
    free(s);
    fx_free(&f);
}

TEST(ctx_from_wire_rebuilds_the_layout) {
    fixture f;
    fx_init(&f, 256);
    spl_ctx *c2 = NULL;
    spl_reject why;
    ts_err e = {0};
    REQUIRE(spl_ctx_from_wire(f.wire, f.len, 1 << 24, &c2, &why, &e) == TS_OK);
    CHECK_EQ_INT(spl_ctx_count(c2), NT);
    CHECK_EQ_INT(spl_ctx_body_bytes(c2), spl_ctx_body_bytes(f.c));
    CHECK_EQ_INT(spl_ctx_params(c2)->bins, 256);
    for (int i = 0; i < NT; i++) {
        spl_tinfo a, b;
        spl_ctx_tensor(f.c, i, &a);
        spl_ctx_tensor(c2, i, &b);
        CHECK_STR(a.name, b.name);
        CHECK(a.k == b.k && a.tiles == b.tiles && a.record_bytes == b.record_bytes);
    }
    spl_upload *u;
    REQUIRE(spl_upload_new(c2, &u, &e) == TS_OK);
    spl_expect any = {0};
    any.skip = SPL_SKIP_RUN | SPL_SKIP_WINDOW | SPL_SKIP_UID | SPL_SKIP_SIGNER | SPL_SKIP_CONFIG;
    CHECK_EQ_INT(spl_decode(c2, f.wire, f.len, &any, u, &why, &e), TS_OK);
    /* a forged upload: the embedded key does not match the signature */
    uint8_t *w = malloc(f.len);
    memcpy(w, f.wire, f.len);
    memcpy(w + OFF_HOTKEY, f.other.pk, 32);
    spl_ctx *c3 = NULL;
    CHECK_EQ_INT(spl_ctx_from_wire(w, f.len, 1 << 24, &c3, &why, &e), TS_ESIG);
    CHECK_EQ_INT(why, SPL_R_SIGNATURE);
    CHECK_EQ_INT(spl_decode(c2, w, f.len, &any, u, &why, &e), TS_ESIG);
    free(w);
    spl_upload_free(u);
    spl_ctx_free(c2);
    fx_free(&f);
}

/* ------------------------------------------------------- aggregation */

/* The outer step written plainly from PROTOCOL.md section 8, on dense
 * arrays: per tensor, each peer's dequantized values; norms (double, value
 * by value); the lower median; clip factors; per coordinate the mean over
 * the peers that selected it; theta -= alpha * g. */
static void reference_outer_step(const spl_ctx *c, spl_upload **by_uid, int n, float alpha, ts_tensor *theta) {
    for (int i = 0; i < NT; i++) {
        spl_tinfo ti;
        spl_ctx_tensor(c, i, &ti);
        size_t numel = numel_of(&theta[i]);
        float *val = calloc(numel * (size_t)n, sizeof(float));
        bool *sel = calloc(numel * (size_t)n, 1);
        double norm[16], sorted[16];
        for (int p = 0; p < n; p++) {
            spl_tview tv;
            spl_upload_tensor(by_uid[p], i, &tv);
            double sq = 0.0;
            for (int64_t tile = 0; tile < ti.tiles; tile++) {
                uint16_t idx[SPL_MAX_TILE];
                uint8_t codes[SPL_MAX_TILE];
                spl_upload_tile(by_uid[p], i, tile, idx, codes);
                for (int j = 0; j < ti.k; j++) {
                    int64_t fl = flat_of(&ti, tile, idx[j]);
                    float v = tv.lut[codes[j]] + tv.shift;
                    val[(size_t)p * numel + (size_t)fl] = v;
                    sel[(size_t)p * numel + (size_t)fl] = true;
                    sq += (double)v * (double)v;
                }
            }
            norm[p] = sorted[p] = sqrt(sq);
        }
        for (int a = 0; a < n; a++)
            for (int b = a + 1; b < n; b++)
                if (sorted[b] < sorted[a]) {
                    double t = sorted[a];
                    sorted[a] = sorted[b];
                    sorted[b] = t;
                }
        double med = sorted[(n - 1) / 2];
        float *th = theta[i].data;
        for (size_t j = 0; j < numel; j++) {
            float sum = 0.0f;
            int cnt = 0;
            for (int p = 0; p < n; p++) {
                if (!sel[(size_t)p * numel + j]) continue;
                double f = med / (norm[p] + 1e-8);
                if (f > 1.0) f = 1.0;
                sum += val[(size_t)p * numel + j] * (float)f;
                cnt++;
            }
            if (cnt) th[j] = th[j] - alpha * (sum / (float)cnt);
        }
        free(val);
        free(sel);
    }
}

#define PRIV(which) ((70 + 15 * (which)) * 128 + 100 + 3 * (which)) /* l0.q[70 + 15w, 100 + 3w], w < 4 */

/* Peers whose deltas share a spike at one coordinate (selected by all) and
 * have one private spike each (selected by that peer alone). */
static spl_upload *spiky_upload(spl_ctx *c, uint32_t uid, int which, float scale) {
    ts_tensor d[NT], ef[NT];
    alloc_model(d);
    alloc_model(ef);
    rseed(1000 + (uint64_t)which);
    fill_normal(d, 0.01f * scale);
    ((float *)d[1].data)[5 * 128 + 7] = 1.0f + 0.25f * (float)which; /* all peers: l0.q[5, 7] */
    ((float *)d[1].data)[PRIV(which)] = -3.0f;                       /* this peer alone */
    ts_keypair kp = test_key(0);
    size_t len;
    uint8_t *w = compress_copy(c, d, ef, uid, &kp, &len);
    spl_upload *u;
    spl_upload_new(c, &u, NULL);
    spl_expect x = expect_for(&kp, uid);
    if (spl_decode(c, w, len, &x, u, NULL, NULL)) abort();
    free(w);
    free_model(d);
    free_model(ef);
    return u;
}

static int selectors(const spl_ctx *c, spl_upload **ps, int n, int ti, int64_t flat) {
    spl_tinfo t;
    spl_ctx_tensor(c, ti, &t);
    int count = 0;
    for (int p = 0; p < n; p++)
        for (int64_t tile = 0; tile < t.tiles; tile++) {
            uint16_t idx[SPL_MAX_TILE];
            spl_upload_tile(ps[p], ti, tile, idx, NULL);
            for (int j = 0; j < t.k; j++)
                if (flat_of(&t, tile, idx[j]) == flat) count++;
        }
    return count;
}

TEST(outer_step_matches_a_plain_dense_reference) {
    for (int bins = 4; bins <= 256; bins += 252) {
        spl_ctx *c = make_ctx(16, bins, 1.0f);
        /* uids 2, 5, 7 with different norms so the clip bites */
        spl_upload *by_uid[3] = {spiky_upload(c, 2, 0, 1.0f), spiky_upload(c, 5, 1, 3.0f), spiky_upload(c, 7, 2, 0.5f)};
        CHECK_EQ_INT(selectors(c, by_uid, 3, 1, 5 * 128 + 7), 3);
        for (int p = 0; p < 3; p++) CHECK_EQ_INT(selectors(c, by_uid, 3, 1, PRIV(p)), 1);
        ts_tensor theta[NT], ref[NT], g[NT], viag[NT];
        alloc_model(theta), alloc_model(ref), alloc_model(g), alloc_model(viag);
        rseed(77);
        fill_normal(theta, 0.02f);
        copy_model(ref, theta);
        copy_model(viag, theta);
        const float alpha = 0.8f;
        const spl_upload *shuffled[3] = {by_uid[2], by_uid[0], by_uid[1]};
        spl_apply_stats st;
        ts_err e = {0};
        REQUIRE(spl_outer_step(c, theta, shuffled, 3, alpha, &st, &e) == TS_OK);
        CHECK_EQ_INT(st.tensors_applied, NT);
        CHECK_EQ_INT(st.tensors_skipped, 0);
        reference_outer_step(c, by_uid, 3, alpha, ref);
        double worst = 0.0;
        for (int i = 0; i < NT; i++) {
            const float *a = theta[i].data, *b = ref[i].data;
            for (size_t j = 0; j < numel_of(&theta[i]); j++) {
                double d = fabs((double)a[j] - (double)b[j]);
                if (d > worst) worst = d;
            }
        }
        CHECK_MSG(worst <= 1e-7, "bins %d: outer step differs from the dense reference by %g", bins, worst);
        /* the coordinate all three selected is the mean of three clipped values;
         * the private ones are one clipped value each */
        const float *t0 = viag[1].data, *t1 = theta[1].data;
        CHECK(t1[5 * 128 + 7] != t0[5 * 128 + 7]);
        for (int p = 0; p < 3; p++) CHECK(t1[PRIV(p)] > t0[PRIV(p)]);
        /* the dense aggregate gives the same step bit for bit */
        REQUIRE(spl_aggregate_dense(c, shuffled, 3, NULL, g, &st, &e) == TS_OK);
        for (int i = 0; i < NT; i++) {
            float *x = viag[i].data;
            const float *gg = g[i].data;
            for (size_t j = 0; j < numel_of(&viag[i]); j++) x[j] = x[j] - alpha * gg[j];
        }
        CHECK(same_bits(viag, theta));
        for (int p = 0; p < 3; p++) spl_upload_free(by_uid[p]);
        free_model(theta), free_model(ref), free_model(g), free_model(viag);
        spl_ctx_free(c);
    }
}

TEST(median_clipping_lower_middle_for_even_counts) {
    spl_ctx *c = make_ctx(16, 4, 1.0f);
    /* the same pattern scaled by 1, 2, 4, 8: quantization commutes with powers
     * of two, so the norms are exactly n, 2n, 4n, 8n */
    spl_upload *ps[4];
    for (int p = 0; p < 4; p++) {
        ts_tensor d[NT], ef[NT];
        alloc_model(d), alloc_model(ef);
        rseed(31);
        fill_normal(d, 0.01f * (float)(1 << p));
        ts_keypair kp = test_key(0);
        size_t len;
        uint8_t *w = compress_copy(c, d, ef, (uint32_t)(10 + p), &kp, &len);
        spl_upload_new(c, &ps[p], NULL);
        spl_expect x = expect_for(&kp, (uint32_t)(10 + p));
        REQUIRE(spl_decode(c, w, len, &x, ps[p], NULL, NULL) == TS_OK);
        free(w);
        free_model(d), free_model(ef);
    }
    double thr[NT];
    ts_err e = {0};
    const spl_upload *cp[4] = {ps[3], ps[1], ps[0], ps[2]};
    REQUIRE(spl_clip_thresholds(c, cp, 4, thr, &e) == TS_OK);
    for (int i = 0; i < NT; i++) {
        spl_tview v0, v1;
        spl_upload_tensor(ps[0], i, &v0);
        spl_upload_tensor(ps[1], i, &v1);
        CHECK(v1.norm == 2 * v0.norm);
        CHECK_MSG(thr[i] == v1.norm, "tensor %d: threshold %g, the lower middle norm is %g", i, thr[i], v1.norm);
    }
    /* three peers: the middle one */
    REQUIRE(spl_clip_thresholds(c, cp, 3, thr, &e) == TS_OK); /* norms 8n, 2n, n */
    spl_tview v1;
    spl_upload_tensor(ps[1], 0, &v1);
    CHECK(thr[0] == v1.norm);
    /* every coordinate is chosen by all four: g = (v + 2v + 4v/2 + 8v/4) / 4 = 1.75 v */
    ts_tensor g[NT];
    alloc_model(g);
    REQUIRE(spl_aggregate_dense(c, cp, 4, NULL, g, NULL, &e) == TS_OK);
    spl_tinfo ti;
    spl_ctx_tensor(c, 1, &ti);
    uint16_t idx[SPL_MAX_TILE];
    uint8_t codes[SPL_MAX_TILE];
    spl_upload_tile(ps[0], 1, 0, idx, codes);
    spl_tview v0;
    spl_upload_tensor(ps[0], 1, &v0);
    for (int j = 0; j < ti.k; j++) {
        float v = v0.lut[codes[j]] + v0.shift;
        float got = ((float *)g[1].data)[flat_of(&ti, 0, idx[j])];
        CHECK_NEAR(got, 1.75 * v, 1e-6 * fabs(v));
    }
    free_model(g);
    for (int p = 0; p < 4; p++) spl_upload_free(ps[p]);
    spl_ctx_free(c);
}

TEST(peer_order_does_not_change_a_bit) {
    spl_ctx *c = make_ctx(16, 4, 1.0f);
    spl_upload *ps[4];
    for (int p = 0; p < 4; p++) ps[p] = spiky_upload(c, (uint32_t)(40 - 3 * p), p, 1.0f + (float)p);
    ts_tensor first[NT], theta[NT];
    alloc_model(first), alloc_model(theta);
    int perm[4] = {0, 1, 2, 3}, count = 0;
    /* all 24 orders (Heap's algorithm) */
    int cnt[4] = {0};
    for (int i = 0; i < 4;) {
        const spl_upload *order[4];
        for (int j = 0; j < 4; j++) order[j] = ps[perm[j]];
        rseed(5);
        fill_normal(theta, 0.02f);
        REQUIRE(spl_outer_step(c, theta, order, 4, 1.0f, NULL, NULL) == TS_OK);
        if (count == 0) copy_model(first, theta);
        else CHECK_MSG(same_bits(first, theta), "order %d %d %d %d gives other bits", perm[0], perm[1], perm[2], perm[3]);
        count++;
        while (i < 4) {
            if (cnt[i] < i) {
                int a = i % 2 == 0 ? 0 : cnt[i];
                int t = perm[a];
                perm[a] = perm[i];
                perm[i] = t;
                cnt[i]++;
                i = 0;
                break;
            }
            cnt[i] = 0;
            i++;
        }
    }
    CHECK_EQ_INT(count, 24);
    /* two uploads from one uid are refused */
    const spl_upload *twice[2] = {ps[0], ps[0]};
    ts_err e = {0};
    CHECK_ERR(spl_outer_step(c, theta, twice, 2, 1.0f, NULL, &e), TS_EINVAL);
    for (int p = 0; p < 4; p++) spl_upload_free(ps[p]);
    free_model(first), free_model(theta);
    spl_ctx_free(c);
}

TEST(single_peer_evaluation_and_exact_undo) {
    spl_ctx *c = make_ctx(16, 4, 1.0f);
    spl_upload *ps[3] = {spiky_upload(c, 1, 0, 1.0f), spiky_upload(c, 2, 1, 4.0f), spiky_upload(c, 3, 2, 0.25f)};
    double thr[NT];
    ts_err e = {0};
    REQUIRE(spl_clip_thresholds(c, (const spl_upload *const *)ps, 3, thr, &e) == TS_OK);
    ts_tensor theta[NT], orig[NT];
    alloc_model(theta), alloc_model(orig);
    rseed(9);
    fill_normal(theta, 0.02f);
    copy_model(orig, theta);
    spl_undo *undo;
    REQUIRE(spl_undo_new(c, 1, &undo, &e) == TS_OK);
    const float a = 1.0f * 0.2f; /* alpha * eval_lr_factor */
    for (int p = 0; p < 3; p++) {
        const spl_upload *one[1] = {ps[p]};
        spl_apply_stats st;
        REQUIRE(spl_apply(c, theta, one, 1, thr, a, undo, &st, &e) == TS_OK);
        CHECK_EQ_INT(st.coords, spl_ctx_values(c));
        /* exactly the peer's coordinates moved, by the clipped value */
        for (int i = 0; i < NT; i++) {
            spl_tinfo ti;
            spl_ctx_tensor(c, i, &ti);
            spl_tview tv;
            spl_upload_tensor(ps[p], i, &tv);
            double f = thr[i] / (tv.norm + 1e-8);
            if (f > 1.0) f = 1.0;
            bool *hit = calloc(numel_of(&theta[i]), 1);
            const float *t0 = orig[i].data, *t1 = theta[i].data;
            for (int64_t tile = 0; tile < ti.tiles; tile++) {
                uint16_t idx[SPL_MAX_TILE];
                uint8_t codes[SPL_MAX_TILE];
                spl_upload_tile(ps[p], i, tile, idx, codes);
                for (int j = 0; j < ti.k; j++) {
                    int64_t fl = flat_of(&ti, tile, idx[j]);
                    float sv = (tv.lut[codes[j]] + tv.shift) * (float)f;
                    float want = t0[fl] - a * sv;
                    CHECK(!memcmp(&want, &t1[fl], 4));
                    hit[fl] = true;
                }
            }
            for (size_t j = 0; j < numel_of(&theta[i]); j++)
                if (!hit[j]) CHECK(!memcmp(&t0[j], &t1[j], 4));
            free(hit);
        }
        CHECK_ERR(spl_apply(c, theta, one, 1, thr, a, undo, NULL, &e), TS_ESTATE);
        REQUIRE(spl_undo_restore(c, theta, undo, &e) == TS_OK);
        CHECK(same_bits(theta, orig));
        CHECK_ERR(spl_undo_restore(c, theta, undo, &e), TS_ESTATE);
    }
    /* the same code path: one peer with its own threshold equals the outer step of one */
    ts_tensor t2[NT];
    alloc_model(t2);
    copy_model(t2, orig);
    const spl_upload *one[1] = {ps[1]};
    REQUIRE(spl_apply(c, theta, one, 1, NULL, 1.0f, NULL, NULL, &e) == TS_OK);
    REQUIRE(spl_outer_step(c, t2, one, 1, 1.0f, NULL, &e) == TS_OK);
    CHECK(same_bits(theta, t2));
    /* an undo for more peers restores a whole gather, and refuses a changed peer */
    copy_model(theta, orig);
    spl_undo *u3;
    REQUIRE(spl_undo_new(c, 3, &u3, &e) == TS_OK);
    CHECK_ERR(spl_apply(c, theta, (const spl_upload *const *)ps, 3, NULL, 1.0f, undo, NULL, &e), TS_EINVAL);
    REQUIRE(spl_apply(c, theta, (const spl_upload *const *)ps, 3, NULL, 1.0f, u3, NULL, &e) == TS_OK);
    CHECK(!same_bits(theta, orig));
    REQUIRE(spl_undo_restore(c, theta, u3, &e) == TS_OK);
    CHECK(same_bits(theta, orig));
    REQUIRE(spl_apply(c, theta, (const spl_upload *const *)ps, 3, NULL, 1.0f, u3, NULL, &e) == TS_OK);
    uint8_t *w;
    size_t len;
    spl_upload *tmp = random_upload(c, 3, 99, 0.01f, &w, &len); /* re-decode peer 3 */
    ts_keypair kp = test_key(0);
    spl_expect x = expect_for(&kp, 3);
    REQUIRE(spl_decode(c, w, len, &x, ps[2], NULL, &e) == TS_OK);
    CHECK_ERR(spl_undo_restore(c, theta, u3, &e), TS_ESTATE);
    free(w);
    spl_upload_free(tmp);
    spl_undo_free(u3);
    spl_undo_free(undo);
    for (int p = 0; p < 3; p++) spl_upload_free(ps[p]);
    free_model(theta), free_model(orig), free_model(t2);
    spl_ctx_free(c);
}

TEST(non_finite_aggregate_skips_the_tensor) {
    /* a receiver that allows huge values (max_abs = FLT_MAX): two peers send
     * 3e38 at the same coordinates; their mean overflows and the tensor is
     * skipped, the others are applied */
    fixture f;
    fx_init(&f, 4);
    spl_ctx_set_max_abs(f.c, FLT_MAX);
    recpos q;
    REQUIRE(find_rec(f.body, f.blen, 4, "l0.q.weight", &q));
    uint8_t *B = malloc(f.blen);
    memcpy(B, f.body, f.blen);
    put_f32(B + q.shift, 0.0f);
    for (int b = 0; b < 4; b++) put_f32(B + q.lut + 4 * b, 3e38f);
    spl_upload *ps[2];
    for (int p = 0; p < 2; p++) {
        uint8_t h[HDR];
        memcpy(h, f.wire, HDR);
        ts_put_u32(h + OFF_UID, (uint32_t)(20 + p));
        size_t n;
        uint8_t *w = seal_body(&f, h, B, f.blen, &n);
        spl_upload_new(f.c, &ps[p], NULL);
        spl_expect x = expect_for(&f.kp, (uint32_t)(20 + p));
        ts_err e = {0};
        REQUIRE(spl_decode(f.c, w, n, &x, ps[p], NULL, &e) == TS_OK);
        free(w);
    }
    ts_tensor theta[NT], orig[NT];
    alloc_model(theta), alloc_model(orig);
    rseed(3);
    fill_normal(theta, 0.02f);
    copy_model(orig, theta);
    spl_apply_stats st;
    REQUIRE(spl_outer_step(f.c, theta, (const spl_upload *const *)ps, 2, 1.0f, &st, NULL) == TS_OK);
    CHECK_EQ_INT(st.tensors_skipped, 1);
    CHECK_EQ_INT(st.tensors_applied, NT - 1);
    CHECK(!memcmp(theta[1].data, orig[1].data, theta[1].nbytes));
    CHECK(memcmp(theta[0].data, orig[0].data, theta[0].nbytes));
    /* one of them alone is finite and applied */
    REQUIRE(spl_outer_step(f.c, theta, (const spl_upload *const *)ps, 1, 1.0f, &st, NULL) == TS_OK);
    CHECK_EQ_INT(st.tensors_skipped, 0);
    for (int p = 0; p < 2; p++) spl_upload_free(ps[p]);
    free(B);
    free_model(theta), free_model(orig);
    fx_free(&f);
}

/* ------------------------------------------------------------ overlap */

TEST(overlap_is_the_mean_per_tile_share_of_common_indices) {
    spl_ctx *c = make_ctx(16, 4, 1.0f);
    spl_upload *a = random_upload(c, 1, 501, 0.01f, NULL, NULL);
    spl_upload *b = random_upload(c, 2, 502, 0.01f, NULL, NULL);
    double s;
    ts_err e = {0};
    REQUIRE(spl_overlap(c, a, a, &s, &e) == TS_OK);
    CHECK(s == 1.0);
    REQUIRE(spl_overlap(c, a, b, &s, &e) == TS_OK);
    /* reference: every tile where k < tile size, equal weight */
    double sum = 0.0;
    int tiles = 0;
    for (int i = 0; i < NT; i++) {
        spl_tinfo ti;
        spl_ctx_tensor(c, i, &ti);
        if (ti.k >= ti.tile_numel) continue;
        for (int64_t t = 0; t < ti.tiles; t++) {
            uint16_t x[SPL_MAX_TILE], y[SPL_MAX_TILE];
            spl_upload_tile(a, i, t, x, NULL);
            spl_upload_tile(b, i, t, y, NULL);
            int common = 0;
            for (int p = 0; p < ti.k; p++)
                for (int q = 0; q < ti.k; q++) common += x[p] == y[q];
            sum += (double)common / ti.k;
            tiles++;
        }
    }
    CHECK_EQ_INT(tiles, 2 + 4 + 2 + 2 + 2); /* odd.weight (k = tile) is left out */
    CHECK_NEAR(s, sum / tiles, 1e-15);
    CHECK(s < 0.2); /* independent random uploads barely overlap */
    double s2;
    REQUIRE(spl_overlap(c, b, a, &s2, &e) == TS_OK);
    CHECK(s == s2);
    spl_upload_free(a);
    spl_upload_free(b);
    spl_ctx_free(c);
}

/* ---------------------------------------------------- catch-up bundle */

static const uint8_t BASE[32] = {0xba, 0x5e, 1, 2, 3};
static const uint8_t MODEL[32] = {0x30, 0xde, 7, 8, 9};

/* Signs a (modified) bundle again with the leader's key. */
static void bundle_resign(uint8_t *b, size_t n, const ts_keypair *leader) {
    uint8_t hash[TS_HASH_BYTES];
    ts_blake2b(hash, sizeof hash, b, n - TS_SIG_BYTES);
    ts_sign(leader, SPL_BUNDLE_TAG, hash, sizeof hash, b + n - TS_SIG_BYTES, NULL);
}

TEST(bundle_round_trip_and_replay_is_bit_identical) {
    spl_ctx *c = make_ctx(16, 4, 1.0f);
    uint8_t *w[3];
    size_t len[3];
    spl_upload *direct[3];
    const uint32_t uids[3] = {12, 3, 7};
    for (int p = 0; p < 3; p++) direct[p] = random_upload(c, uids[p], 600 + (uint64_t)p, 0.01f, &w[p], &len[p]);
    ts_keypair leader = test_key(2), miner = test_key(0);
    uint8_t *b;
    size_t bl;
    ts_err e = {0};
    REQUIRE(spl_bundle_build("test-run", 42, CONFIG, BASE, MODEL, &leader, (const uint8_t *const *)w, len, 3, &b, &bl, &e) ==
            TS_OK);
    spl_bundle_entry ent[8];
    int n = 0;
    spl_reject why;
    uint8_t base[32], model[32];
    REQUIRE(spl_bundle_open(b, bl, "test-run", 42, leader.pk, CONFIG, spl_ctx_wire_max(c), ent, 8, &n, base, model, &why,
                            &e) == TS_OK);
    REQUIRE(n == 3);
    CHECK(!memcmp(base, BASE, 32) && !memcmp(model, MODEL, 32));
    CHECK(ent[0].uid == 3 && ent[1].uid == 7 && ent[2].uid == 12);
    CHECK(ent[0].len == len[1] && !memcmp(ent[0].wire, w[1], len[1]));
    CHECK(!memcmp(ent[2].hotkey, miner.pk, 32));
    /* replay: decode the entries and step; the same model as the direct step */
    spl_upload *rep[3];
    for (int p = 0; p < 3; p++) {
        spl_upload_new(c, &rep[p], NULL);
        spl_expect x = {"test-run", 42, ent[p].uid, ent[p].hotkey, CONFIG, 0};
        REQUIRE(spl_decode(c, ent[p].wire, ent[p].len, &x, rep[p], NULL, &e) == TS_OK);
    }
    ts_tensor t1[NT], t2[NT];
    alloc_model(t1), alloc_model(t2);
    rseed(4);
    fill_normal(t1, 0.02f);
    copy_model(t2, t1);
    REQUIRE(spl_outer_step(c, t1, (const spl_upload *const *)direct, 3, 1.0f, NULL, &e) == TS_OK);
    REQUIRE(spl_outer_step(c, t2, (const spl_upload *const *)rep, 3, 1.0f, NULL, &e) == TS_OK);
    CHECK(same_bits(t1, t2));
    /* refusals */
    CHECK_EQ_INT(spl_bundle_open(b, bl, "test-run", 43, leader.pk, CONFIG, spl_ctx_wire_max(c), ent, 8, &n, NULL, NULL, &why, &e),
                 TS_EDENIED);
    CHECK_EQ_INT(why, SPL_R_WINDOW);
    CHECK_EQ_INT(spl_bundle_open(b, bl, "test-run", 42, miner.pk, CONFIG, spl_ctx_wire_max(c), ent, 8, &n, NULL, NULL, &why, &e),
                 TS_ESIG);
    CHECK_EQ_INT(why, SPL_R_SIGNATURE);
    CHECK_EQ_INT(spl_bundle_open(b, bl - 1, "test-run", 42, leader.pk, CONFIG, spl_ctx_wire_max(c), ent, 8, &n, NULL, NULL, &why, &e),
                 TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_TRUNCATED);
    CHECK_EQ_INT(spl_bundle_open(b, bl, "test-run", 42, leader.pk, CONFIG, spl_ctx_wire_max(c), ent, 2, &n, NULL, NULL, &why, &e),
                 TS_ETOOBIG);
    CHECK_EQ_INT(spl_bundle_open(b, bl, "test-run", 42, leader.pk, CONFIG, 100, ent, 8, &n, NULL, NULL, &why, &e), TS_ETOOBIG);
    /* the recorded hashes are signed: a changed one is refused */
    b[200] ^= 1;
    CHECK_EQ_INT(spl_bundle_open(b, bl, "test-run", 42, leader.pk, CONFIG, spl_ctx_wire_max(c), ent, 8, &n, NULL, NULL, &why, &e),
                 TS_ESIG);
    b[200] ^= 1;
    /* a version-1 bundle (no hashes) is refused by its version */
    b[8] = 1;
    CHECK_EQ_INT(spl_bundle_open(b, bl, "test-run", 42, leader.pk, CONFIG, spl_ctx_wire_max(c), ent, 8, &n, NULL, NULL, &why, &e),
                 TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_VERSION);
    b[8] = 2;
    b[bl - 100] ^= 1; /* inside the last upload */
    CHECK_EQ_INT(spl_bundle_open(b, bl, "test-run", 42, leader.pk, CONFIG, spl_ctx_wire_max(c), ent, 8, &n, NULL, NULL, &why, &e),
                 TS_ESIG);
    b[bl - 100] ^= 1;
    /* byte 77: the signature scheme (1, sr25519), then 2 reserved zero bytes */
    CHECK_EQ_INT(b[77], TS_SIG_SCHEME_SR25519);
    CHECK_EQ_INT(b[77], 1);
    CHECK_EQ_INT(b[78], 0);
    CHECK_EQ_INT(b[79], 0);
    /* another scheme flipped in after signing: refused by it, before the signature */
    b[77] = 0;
    CHECK_EQ_INT(spl_bundle_open(b, bl, "test-run", 42, leader.pk, CONFIG, spl_ctx_wire_max(c), ent, 8, &n, NULL, NULL, &why, &e),
                 TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_VERSION);
    CHECK_MSG(strstr(e.msg, "bundle signature scheme 0") && strstr(e.msg, "Ed25519") &&
                  strstr(e.msg, "earlier Tessera"),
              "message: %s", e.msg);
    /* and signed over (an earlier Tessera's bundle, or an unknown scheme): refused all the same */
    bundle_resign(b, bl, &leader);
    CHECK_EQ_INT(spl_bundle_open(b, bl, "test-run", 42, leader.pk, CONFIG, spl_ctx_wire_max(c), ent, 8, &n, NULL, NULL, &why, &e),
                 TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_VERSION);
    b[77] = 9;
    bundle_resign(b, bl, &leader);
    CHECK_EQ_INT(spl_bundle_open(b, bl, "test-run", 42, leader.pk, CONFIG, spl_ctx_wire_max(c), ent, 8, &n, NULL, NULL, &why, &e),
                 TS_EFORMAT);
    CHECK_MSG(strstr(e.msg, "scheme 9 is not sr25519") != NULL, "message: %s", e.msg);
    /* the two bytes after it stay reserved */
    b[77] = 1;
    b[78] = 1;
    bundle_resign(b, bl, &leader);
    CHECK_EQ_INT(spl_bundle_open(b, bl, "test-run", 42, leader.pk, CONFIG, spl_ctx_wire_max(c), ent, 8, &n, NULL, NULL, &why, &e),
                 TS_EFORMAT);
    CHECK_EQ_INT(why, SPL_R_HEADER);
    b[78] = 0;
    bundle_resign(b, bl, &leader);
    CHECK_EQ_INT(spl_bundle_open(b, bl, "test-run", 42, leader.pk, CONFIG, spl_ctx_wire_max(c), ent, 8, &n, NULL, NULL, &why, &e),
                 TS_OK);
    /* a bundle is never built from an upload of another scheme */
    {
        uint8_t h0[SPL_HEADER_BYTES];
        memcpy(h0, w[0], SPL_HEADER_BYTES);
        h0[81] = 0;
        size_t l0;
        uint8_t *w0 = seal(h0, w[0] + SPL_HEADER_BYTES, len[0] - SPL_HEADER_BYTES - TS_SIG_BYTES, &miner, &l0);
        const uint8_t *old[3] = {w0, w[1], w[2]};
        size_t ol[3] = {l0, len[1], len[2]};
        uint8_t *b3;
        size_t bl3;
        CHECK_ERR(spl_bundle_build("test-run", 42, CONFIG, BASE, MODEL, &leader, old, ol, 3, &b3, &bl3, &e), TS_EINVAL);
        CHECK_MSG(strstr(e.msg, "Ed25519") != NULL, "message: %s", e.msg);
        free(w0);
    }
    /* duplicates and foreign windows are refused when building */
    const uint8_t *dup[2] = {w[0], w[0]};
    size_t dl[2] = {len[0], len[0]};
    uint8_t *b2;
    size_t bl2;
    CHECK_ERR(spl_bundle_build("test-run", 42, CONFIG, BASE, MODEL, &leader, dup, dl, 2, &b2, &bl2, &e), TS_EINVAL);
    CHECK_ERR(spl_bundle_build("test-run", 41, CONFIG, BASE, MODEL, &leader, (const uint8_t *const *)w, len, 3, &b2, &bl2, &e),
              TS_EINVAL);
    free(b);
    for (int p = 0; p < 3; p++) spl_upload_free(direct[p]), spl_upload_free(rep[p]), free(w[p]);
    free_model(t1), free_model(t2);
    spl_ctx_free(c);
}

/* ------------------------------------------------------- fuzz corpus */

TEST(fuzz_corpus_replays_without_a_fault) {
    char dir[1024];
    const char *repo = getenv("TESSERA_REPO");
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus", repo ? repo : ".");
    DIR *d = opendir(dir);
    if (!d) SKIP("no corpus at %s", dir);
    int files = 0, seeds = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        uint8_t *buf;
        size_t n;
        if (ts_read_file(path, 1 << 22, &buf, &n, NULL)) continue;
        spl_fuzz_one(buf, n); /* aborts on a broken invariant; sanitizers report the rest */
        free(buf);
        files++;
        seeds += !strncmp(de->d_name, "seed-", 5);
    }
    closedir(d);
    CHECK(files >= 10);
    CHECK(seeds >= 10);
    printf("    replayed %d corpus files\n", files);
}

TEST(fuzz_seeds_decode) {
    /* the seed generator's objects are valid: each mode accepts its seed */
    const char *dir = th_tmpdir();
    REQUIRE(spl_fuzz_seeds(dir) == 0);
    const char *names[] = {"seed-wire-b4-r0", "seed-unsigned-b256-r1", "seed-body-b4-r2", "seed-body-b256-r0", "seed-bundle"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        uint8_t *buf;
        size_t n;
        REQUIRE(ts_read_file(path, 1 << 20, &buf, &n, NULL) == TS_OK);
        spl_fuzz_one(buf, n);
        free(buf);
    }
    /* and they really decode (not just survive) */
    char path[1024];
    snprintf(path, sizeof path, "%s/seed-wire-b4-r1", dir);
    uint8_t *buf;
    size_t n;
    REQUIRE(ts_read_file(path, 1 << 20, &buf, &n, NULL) == TS_OK);
    spl_expect x = fz_expect();
    x.uid = FZ_UID + 1;
    ts_err e = {0};
    CHECK_EQ_INT(spl_decode(fz.c4, buf + 1, n - 1, &x, fz.u4, NULL, &e), TS_OK);
    free(buf);
}
