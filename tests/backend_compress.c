/* backend_compress.c - spl_compress on the CUDA backend against the CPU
 * codec: the same wire bytes (memcmp) and the same error feedback, bit for
 * bit, after every window.
 *
 * Like backend_ops.c, one source for every GPU: tests/t_backend_ops.sh runs
 * it under the device emulator in the three thread orders, bench/gpu.sh on a
 * real GPU.  Not finding a CUDA backend is a failure, never a skip.
 *
 * Cases: the LLaMA layout of the model presets scaled down (odd tile counts,
 * chunks that are not 64, 1-D tensors, a dense 1-D tensor, a 1-row 2-D
 * tensor, tiles of 3 columns), 4 and 256 bins, k = 64 and a small k, many
 * equal magnitudes (ties), all-zero tiles, heavy tails, NaN and infinity
 * (refused on both, ef unchanged on both), several windows with ef carried.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend_common.h"
#include "harness.h"
#include "codec/codec.h"
#include "kernels/kernels.h"


static uint64_t rng_state;
static void seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 1; }
static uint32_t next_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float uni(float a) { return a * ((float)(next_u32() & 0xffffff) / 8388608.0f - 1.0f); }

/* ------------------------------------------------------------- shapes */

typedef struct {
    const char *name;
    int ndim;
    int64_t a, b;
} shp;

/* the presets' layout (embeddings, q k v o, gate up down, norms, lm head),
 * width 96 (chunk 48), kv 48, ffn 160 (chunk 40), vocab 250 (chunk 50),
 * plus odd ones */
static const shp LLAMA[] = {
    {"model.embed_tokens.weight", 2, 250, 96},
    {"model.layers.0.input_layernorm.weight", 1, 96, 0},
    {"model.layers.0.self_attn.q_proj.weight", 2, 96, 96},
    {"model.layers.0.self_attn.k_proj.weight", 2, 48, 96},
    {"model.layers.0.self_attn.v_proj.weight", 2, 48, 96},
    {"model.layers.0.self_attn.o_proj.weight", 2, 96, 96},
    {"model.layers.0.post_attention_layernorm.weight", 1, 96, 0},
    {"model.layers.0.mlp.gate_proj.weight", 2, 160, 96},
    {"model.layers.0.mlp.up_proj.weight", 2, 160, 96},
    {"model.layers.0.mlp.down_proj.weight", 2, 96, 160},
    {"model.norm.weight", 1, 10, 0},
    {"lm_head.weight", 2, 250, 96},
    {"odd.full_tiles", 2, 192, 64},    /* 3 x 1 tiles of 64 x 64 */
    {"odd.narrow", 2, 130, 3},         /* tiles of 26 x 3 */
    {"odd.one_row", 2, 1, 200},        /* tiles of 1 x 50 */
    {"odd.vector", 1, 4096, 0},        /* 64 tiles of 1 x 64 */
    {"odd.small", 2, 7, 5},            /* one tile of 35 */
};
#define NLLAMA ((int)(sizeof LLAMA / sizeof LLAMA[0]))

typedef struct {
    int n;
    ts_tensor *hd, *he;   /* host delta, host ef (the CPU path's) */
    ts_tensor *dd, *de;   /* device twins */
    float **ef_save;      /* host copies to check "unchanged" */
} model_t;

static void mk(ts_tensor *t, const shp *s, void *data) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", s->name);
    t->dtype = TS_F32;
    t->ndim = s->ndim;
    t->shape[0] = s->a;
    if (s->ndim == 2) t->shape[1] = s->b;
    t->data = data;
    t->nbytes = (size_t)(s->a * (s->ndim == 2 ? s->b : 1)) * 4;
}

static int model_new(const kn_backend *g, const shp *s, int n, model_t *m) {
    m->n = n;
    m->hd = calloc((size_t)n, sizeof *m->hd);
    m->he = calloc((size_t)n, sizeof *m->he);
    m->dd = calloc((size_t)n, sizeof *m->dd);
    m->de = calloc((size_t)n, sizeof *m->de);
    m->ef_save = calloc((size_t)n, sizeof *m->ef_save);
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)(s[i].a * (s[i].ndim == 2 ? s[i].b : 1)) * 4;
        mk(&m->hd[i], &s[i], calloc(1, bytes));
        mk(&m->he[i], &s[i], calloc(1, bytes));
        mk(&m->dd[i], &s[i], g->alloc(g, bytes));
        mk(&m->de[i], &s[i], g->alloc(g, bytes));
        m->ef_save[i] = malloc(bytes);
        if (!m->hd[i].data || !m->he[i].data || !m->dd[i].data || !m->de[i].data) return -1;
        if (g->upload(g, m->de[i].data, m->he[i].data, bytes)) return -1;
    }
    return 0;
}

static void model_free(const kn_backend *g, model_t *m) {
    for (int i = 0; i < m->n; i++) {
        free(m->hd[i].data), free(m->he[i].data), free(m->ef_save[i]);
        g->free(g, m->dd[i].data), g->free(g, m->de[i].data);
    }
    free(m->hd), free(m->he), free(m->dd), free(m->de), free(m->ef_save);
}

/* the kinds of delta a window gets */
/* D_WIDE: magnitudes over 80 binades, so that the quantizer's double sums
 * round and their order (FORMATS 7.3) shows in the bytes */
/* D_CANCEL: in 1-D tensors (every tile kept whole), tiles of ~2^60 and their
 * exact negatives between tiles of ~1, so that the sum behind the shift
 * depends on the grouping (a sequential sum over the tiles gives another
 * shift than the pairwise tree); likewise tiles of +-2^50, which share the
 * middle bin with the values of ~1, for the bins' sums */
enum { D_NORMAL, D_TIES, D_ZERO_TILES, D_HEAVY, D_WIDE, D_CANCEL, D_NAN, D_INF };

static void fill_delta(model_t *m, int kind) {
    for (int i = 0; i < m->n; i++) {
        float *x = m->hd[i].data;
        size_t n = m->hd[i].nbytes / 4;
        for (size_t j = 0; j < n; j++) {
            float v = uni(1.0f) + uni(1.0f) + uni(1.0f);
            switch (kind) {
            case D_TIES: { /* few distinct magnitudes, both signs: ties everywhere */
                static const float lv[] = {0.0f, 0.25f, 0.5f, 1.0f};
                v = lv[next_u32() & 3] * ((next_u32() & 1) ? -1.0f : 1.0f);
                break;
            }
            case D_ZERO_TILES: /* the first half of every tensor zero */
                if (j < n / 2) v = 0.0f;
                break;
            case D_WIDE:
                v = ldexpf(v, (int)(next_u32() % 81) - 40);
                break;
            case D_HEAVY:
                if ((next_u32() & 63) == 0) v *= 1000.0f;
                if ((next_u32() & 127) == 0) v = 1e-40f; /* subnormal */
                break;
            default: break;
            }
            x[j] = v;
        }
    }
    if (kind == D_CANCEL)
        for (int i = 0; i < m->n; i++) {
            if (m->hd[i].ndim != 1) continue;
            float *x = m->hd[i].data;
            const int64_t n = m->hd[i].shape[0], cw = spl_chunk_of(n, 64);
            for (int64_t j = 0; j < n; j++) {
                const int64_t t = j / cw;
                if (n / cw >= 256) { /* the same across groups of 64 tiles */
                    /* other magnitudes in the next pair of groups, so that
                     * adding one pair's remainder to the other rounds */
                    if (t % 128 == 1) x[j] = ldexpf(1.0f + uni(0.5f), (t / 128) % 2 ? 62 : 58);
                    else if (t % 128 == 5) x[j] = ldexpf(1.0f + uni(0.5f), (t / 128) % 2 ? 52 : 48);
                    else if (t % 128 == 65 || t % 128 == 69) x[j] = -x[j - 64 * cw];
                } else if (t % 8 == 1) x[j] = ldexpf(1.0f + uni(0.5f), 60);
                else if (t % 8 == 5) x[j] = ldexpf(1.0f + uni(0.5f), 50);
                else if (t % 4 == 2) x[j] = -x[j - cw];
            }
        }
    if (kind == D_NAN || kind == D_INF) {
        int i = m->n / 2;
        float *x = m->hd[i].data;
        x[m->hd[i].nbytes / 4 / 3] = kind == D_NAN ? NAN : -INFINITY;
    }
}

static spl_meta meta_for(uint64_t window) {
    spl_meta mt;
    memset(&mt, 0, sizeof mt);
    snprintf(mt.run_id, sizeof mt.run_id, "gpu-test");
    mt.window = window;
    mt.uid = 7;
    for (int i = 0; i < TS_HASH_BYTES; i++) mt.base_hash[i] = (uint8_t)i, mt.config_hash[i] = (uint8_t)(3 * i);
    return mt;
}

/* Runs `windows` compressions with the given delta kinds on both paths and
 * compares everything after each. */
static void run_case(const shp *s, int n, int k, int bins, float beta, float alpha, const int *kinds,
                     int windows, uint64_t sd) {
    NEED_GPU(g);
    seed(sd);
    model_t m;
    REQUIRE(model_new(g, s, n, &m) == 0);
    spl_params p;
    spl_params_default(&p);
    p.k = k;
    p.bins = bins;
    p.beta = beta;
    p.alpha = alpha;
    spl_ctx *cc = NULL, *cg = NULL;
    ts_err e = {0};
    REQUIRE(spl_ctx_new(&p, m.hd, n, &cc, &e) == TS_OK);
    REQUIRE(spl_ctx_new(&p, m.hd, n, &cg, &e) == TS_OK);
    REQUIRE(spl_ctx_set_device(cg, g, &e) == TS_OK);
    uint8_t sk[TS_SEED_BYTES];
    for (int i = 0; i < TS_SEED_BYTES; i++) sk[i] = (uint8_t)(i * 7 + 1);
    ts_keypair kp;
    ts_keypair_from_seed(&kp, sk);
    float *back = NULL;
    size_t maxb = 0;
    for (int i = 0; i < n; i++) maxb = m.hd[i].nbytes > maxb ? m.hd[i].nbytes : maxb;
    back = malloc(maxb);
    for (int w = 0; w < windows; w++) {
        fill_delta(&m, kinds[w]);
        for (int i = 0; i < n; i++) {
            REQUIRE(g->upload(g, m.dd[i].data, m.hd[i].data, m.hd[i].nbytes) == TS_OK);
            memcpy(m.ef_save[i], m.he[i].data, m.he[i].nbytes);
        }
        spl_meta mt = meta_for(100 + (uint64_t)w);
        const uint8_t *wc = NULL, *wg = NULL;
        size_t lc = 0, lg = 0;
        ts_err ec = {0}, eg = {0};
        int rc_c = spl_compress(cc, m.hd, m.he, &mt, &kp, &wc, &lc, &ec);
        int rc_g = spl_compress(cg, m.dd, m.de, &mt, &kp, &wg, &lg, &eg);
        CHECK_MSG(rc_c == rc_g, "window %d (kind %d): cpu rc %d (%s), gpu rc %d (%s)", w, kinds[w], rc_c,
                  ec.msg, rc_g, eg.msg);
        if (kinds[w] == D_NAN || kinds[w] == D_INF) {
            CHECK_MSG(rc_c == TS_EINVAL && rc_g == TS_EINVAL, "window %d: a non-finite input was not refused",
                      w);
            for (int i = 0; i < n; i++)
                CHECK_MSG(!memcmp(m.he[i].data, m.ef_save[i], m.he[i].nbytes), "cpu changed ef %s on refusal",
                          m.he[i].name);
        } else {
            CHECK_MSG(rc_c == TS_OK && rc_g == TS_OK, "window %d: %s / %s", w, ec.msg, eg.msg);
            CHECK_MSG(lc == lg && wc && wg && !memcmp(wc, wg, lc),
                      "window %d (kind %d, k %d, bins %d): wire bytes differ (%zu vs %zu bytes)", w, kinds[w], k,
                      bins, lc, lg);
        }
        for (int i = 0; i < n; i++) {
            REQUIRE(g->download(g, back, m.de[i].data, m.de[i].nbytes) == TS_OK);
            if (memcmp(back, m.he[i].data, m.he[i].nbytes)) {
                size_t j = 0, nn = m.he[i].nbytes / 4;
                const float *h = m.he[i].data;
                while (j < nn && !memcmp(&back[j], &h[j], 4)) j++;
                CHECK_MSG(0, "window %d (kind %d, k %d, bins %d): ef %s differs first at %zu: gpu %a cpu %a", w,
                          kinds[w], k, bins, m.he[i].name, j, (double)back[j], (double)h[j]);
                break;
            }
        }
        if (th_failed()) break;
    }
    free(back);
    spl_ctx_free(cc);
    spl_ctx_free(cg);
    model_free(g, &m);
}

static const int KINDS[] = {D_NORMAL, D_TIES, D_NAN, D_ZERO_TILES, D_WIDE, D_HEAVY, D_INF, D_NORMAL};
#define NKINDS ((int)(sizeof KINDS / sizeof KINDS[0]))

TEST(compress_llama_k64_bins4) { run_case(LLAMA, NLLAMA, 64, 4, 0.95f, 1.0f, KINDS, NKINDS, 1); }
TEST(compress_llama_k64_bins256) { run_case(LLAMA, NLLAMA, 64, 256, 0.95f, 1.0f, KINDS, NKINDS, 2); }
TEST(compress_llama_k6_bins4) { run_case(LLAMA, NLLAMA, 6, 4, 0.9f, 0.5f, KINDS, NKINDS, 3); }
TEST(compress_llama_k6_bins256) { run_case(LLAMA, NLLAMA, 6, 256, 0.95f, 1.0f, KINDS, NKINDS, 4); }

static const int CANCEL[] = {D_CANCEL, D_NORMAL};
TEST(compress_cancelling_sums_k64_bins4) { run_case(LLAMA, NLLAMA, 64, 4, 0.95f, 1.0f, CANCEL, 2, 7); }
TEST(compress_cancelling_sums_k64_bins256) { run_case(LLAMA, NLLAMA, 64, 256, 0.95f, 1.0f, CANCEL, 2, 8); }

/* more tiles than a group of 64 (the tree over groups), k above 64 */
static const shp BIG[] = {
    {"big.a", 2, 1024, 640}, /* 16 x 10 = 160 tiles of 64 x 64 */
    {"big.b", 1, 16384, 0},  /* 1-D: 256 tiles of 1 x 64 (four groups of 64) */
    {"big.c", 2, 65, 130},   /* 13 x 5: tiles of 5 x 26 */
};
static const int BIGK[] = {D_CANCEL, D_WIDE, D_NORMAL, D_HEAVY, D_TIES};
TEST(compress_many_tiles_k64_bins256) { run_case(BIG, 3, 64, 256, 0.95f, 1.0f, BIGK, 5, 5); }
TEST(compress_many_tiles_k200_bins4) { run_case(BIG, 3, 200, 4, 0.95f, 1.0f, BIGK, 5, 6); }
