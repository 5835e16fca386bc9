/* test_model.c - the model module: configuration, initialisation,
 * checkpoints, the CPU kernels against naive double-precision references,
 * the whole backward pass against finite differences, the optimizer, and
 * bad input.  (Conformance with PyTorch: tests/t_model_torch.py.) */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "model/model.h"

/* ------------------------------------------------------------- helpers */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 1; }
static uint32_t rng_u32(void) {
    /* xorshift64*: deterministic test data */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}
static float rng_unif(void) { return (float)rng_u32() / 4294967296.0f * 2.0f - 1.0f; } /* [-1, 1) */

static void rand_tokens(int32_t *t, int n, int V) {
    for (int i = 0; i < n; i++) t[i] = (int32_t)(rng_u32() % (uint32_t)V);
}

static model *make_model(const char *preset, bool tied, int B, int T) {
    ts_err e = {0};
    model_config c;
    if (model_preset(preset, 0, &c, &e)) return NULL;
    c.tie_word_embeddings = tied;
    model *m = NULL;
    if (model_create(&c, kn_cpu(), B, T, &m, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return NULL;
    }
    model_init(m, 1234);
    return m;
}

static double mean_loss(model *m, const int32_t *tok, int B, int T) {
    double s;
    int64_t c;
    ts_err e = {0};
    if (model_eval_loss(m, tok, B, T, &s, &c, NULL, &e)) return NAN;
    return c ? s / (double)c : 0.0;
}

/* ---------------------------------------------------------------- config */

TEST(config_presets) {
    ts_err e = {0};
    model_config c;
    const char *names[] = {"tiny", "small", "124m", "150m", "1b"};
    const int64_t want[] = {
        /* tiny: embed 257*64 + 2 layers * (q 64*64 + k,v 2*32*64 + o 64*64 + mlp 3*128*64 + 2*64) + norm */
        257 * 64 + 2 * (4096 + 4096 + 4096 + 3 * 8192 + 128) + 64,
        -1, 123587328, -1, -1};
    for (int i = 0; i < 5; i++) {
        CHECK_MSG(model_preset(names[i], 0, &c, &e) == TS_OK, "%s: %s", names[i], e.msg);
        CHECK(model_config_validate(&c, &e) == TS_OK);
        if (want[i] > 0) CHECK_EQ_INT(model_config_num_params(&c), want[i]);
    }
    /* small is "a few million": between 2 and 10 */
    REQUIRE(model_preset("small", 0, &c, &e) == TS_OK);
    CHECK(model_config_num_params(&c) > 2000000 && model_config_num_params(&c) < 10000000);
    CHECK_EQ_INT(c.vocab_size, 257);
    REQUIRE(model_preset("150m", 0, &c, &e) == TS_OK);
    CHECK_EQ_INT(c.hidden_size, 1024);
    CHECK_EQ_INT(c.intermediate_size, 2688);
    CHECK_EQ_INT(c.num_attention_heads, 16);
    CHECK_EQ_INT(c.vocab_size, 32000);
    REQUIRE(model_preset("1b", 0, &c, &e) == TS_OK);
    CHECK_EQ_INT(c.hidden_size, 2048);
    CHECK_EQ_INT(c.num_hidden_layers, 16);
    CHECK_EQ_INT(c.intermediate_size, 8192);
    REQUIRE(model_preset("tiny", 1000, &c, &e) == TS_OK);
    CHECK_EQ_INT(c.vocab_size, 1000);
    CHECK_ERR(model_preset("huge", 0, &c, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "huge") != NULL);
}

TEST(config_validation_names_the_field) {
    ts_err e = {0};
    model_config c, base;
    REQUIRE(model_preset("tiny", 0, &base, &e) == TS_OK);
    c = base;
    c.num_key_value_heads = 3;
    CHECK_ERR(model_config_validate(&c, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "num_key_value_heads") != NULL);
    c = base;
    c.head_dim = 15;
    CHECK_ERR(model_config_validate(&c, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "head_dim") != NULL);
    c = base;
    c.num_hidden_layers = 0;
    CHECK_ERR(model_config_validate(&c, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "num_hidden_layers") != NULL);
    c = base;
    c.rms_norm_eps = -1;
    CHECK_ERR(model_config_validate(&c, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "rms_norm_eps") != NULL);
    c = base;
    c.vocab_size = 0;
    CHECK_ERR(model_config_validate(&c, &e), TS_EINVAL);
    /* an inconsistent JSON config */
    const char *bad = "{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128,"
                      " \"num_hidden_layers\": 2, \"num_attention_heads\": 6}";
    CHECK_ERR(model_config_parse(bad, strlen(bad), &c, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "hidden_size") != NULL);
    const char *bad2 = "{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128,"
                       " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 3}";
    CHECK_ERR(model_config_parse(bad2, strlen(bad2), &c, &e), TS_EINVAL);
    const char *missing = "{\"hidden_size\": 64, \"intermediate_size\": 128,"
                          " \"num_hidden_layers\": 2, \"num_attention_heads\": 4}";
    CHECK_ERR(model_config_parse(missing, strlen(missing), &c, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "vocab_size") != NULL);
    const char *frac = "{\"vocab_size\": 100.5, \"hidden_size\": 64, \"intermediate_size\": 128,"
                       " \"num_hidden_layers\": 2, \"num_attention_heads\": 4}";
    CHECK_ERR(model_config_parse(frac, strlen(frac), &c, &e), TS_EINVAL);
    CHECK_ERR(model_config_parse("[1,2]", 5, &c, &e), TS_EFORMAT);
    CHECK_ERR(model_config_parse("{\"vocab", 7, &c, &e), TS_EFORMAT);
}

TEST(config_json_roundtrip_and_refusals) {
    ts_err e = {0};
    model_config c, d;
    const char *names[] = {"tiny", "small", "124m", "150m", "1b"};
    for (int i = 0; i < 5; i++) {
        REQUIRE(model_preset(names[i], 0, &c, &e) == TS_OK);
        char *j = model_config_to_json(&c);
        REQUIRE(j != NULL);
        CHECK_MSG(model_config_parse(j, strlen(j), &d, &e) == TS_OK, "%s", e.msg);
        CHECK(model_config_equal(&c, &d));
        CHECK(strstr(j, "\"LlamaForCausalLM\"") != NULL);
        free(j);
    }
    /* a Hugging Face config with keys we do not use, and defaults */
    const char *hf = "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\","
                     " \"bos_token_id\": 1, \"eos_token_id\": 2, \"vocab_size\": 32000,"
                     " \"hidden_size\": 256, \"intermediate_size\": 688, \"num_hidden_layers\": 2,"
                     " \"num_attention_heads\": 8, \"transformers_version\": \"4.40.0\"}";
    REQUIRE(model_config_parse(hf, strlen(hf), &c, &e) == TS_OK);
    CHECK_EQ_INT(c.num_key_value_heads, 8);
    CHECK_EQ_INT(c.head_dim, 32);
    CHECK_EQ_INT(c.max_position_embeddings, 2048);
    CHECK(c.rms_norm_eps == 1e-6 && c.rope_theta == 10000.0 && !c.tie_word_embeddings);
    const char *refuse[] = {
        "\"hidden_act\": \"gelu\"", "\"attention_bias\": true", "\"mlp_bias\": true",
        "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", "\"model_type\": \"mistral\""};
    for (int i = 0; i < 5; i++) {
        char buf[512];
        snprintf(buf, sizeof buf,
                 "{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128,"
                 " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, %s}",
                 refuse[i]);
        CHECK_MSG(model_config_parse(buf, strlen(buf), &c, &e) == TS_EUNSUPPORTED, "accepted %s", refuse[i]);
    }
}

TEST(config_hash_canonical) {
    ts_err e = {0};
    model_config c;
    REQUIRE(model_preset("124m", 0, &c, &e) == TS_OK);
    uint8_t h[32], h2[32], want[32];
    model_config_hash(&c, h);
    /* rebuild the canonical bytes of docs/FORMATS.md section 6 by hand */
    uint8_t buf[128];
    size_t at = 0;
    memcpy(buf, "tessera-model-config-v1", 24); /* with its NUL */
    at = 24;
    uint32_t ints[8] = {50304, 768, 2048, 12, 12, 12, 64, 1024};
    for (int i = 0; i < 8; i++, at += 4) ts_put_u32(buf + at, ints[i]);
    double r[2] = {1e-6, 10000.0};
    for (int i = 0; i < 2; i++, at += 8) {
        uint64_t u;
        memcpy(&u, &r[i], 8);
        ts_put_u64(buf + at, u);
    }
    buf[at++] = 1;
    ts_blake2b(want, 32, buf, at);
    CHECK(memcmp(h, want, 32) == 0);
    /* every field changes the hash */
    model_config d = c;
    d.rope_theta = 500000.0;
    model_config_hash(&d, h2);
    CHECK(memcmp(h, h2, 32) != 0);
    d = c;
    d.tie_word_embeddings = false;
    model_config_hash(&d, h2);
    CHECK(memcmp(h, h2, 32) != 0);
    d = c;
    d.max_position_embeddings = 2048;
    model_config_hash(&d, h2);
    CHECK(memcmp(h, h2, 32) != 0);
}

/* -------------------------------------------------------- model creation */

static int fake_gemm_missing(void) { return 0; }

TEST(backend_without_model_ops_is_refused) {
    ts_err e = {0};
    model_config c;
    REQUIRE(model_preset("tiny", 0, &c, &e) == TS_OK);
    kn_backend fake = *kn_cpu();
    fake.name = "cuda:0";
    fake.attn_bwd = NULL;
    (void)fake_gemm_missing;
    model *m = NULL;
    CHECK_ERR(model_create(&c, &fake, 2, 16, &m, &e), TS_EUNSUPPORTED);
    CHECK(m == NULL);
    CHECK(strstr(e.msg, "attn_bwd") != NULL && strstr(e.msg, "cuda:0") != NULL);
    CHECK_ERR(model_create(&c, kn_cpu(), 2, 1000, &m, &e), TS_EINVAL); /* > max_position_embeddings */
    CHECK(strstr(e.msg, "max_position_embeddings") != NULL);
    CHECK_ERR(model_create(&c, kn_cpu(), 0, 16, &m, &e), TS_EINVAL);
}

TEST(params_layout_is_contiguous_hf_order) {
    model *m = make_model("tiny", false, 2, 16);
    REQUIRE(m != NULL);
    int n;
    const ts_tensor *t = model_params(m, &n);
    CHECK_EQ_INT(n, 1 + 2 * 9 + 1 + 1);
    CHECK_STR(t[0].name, "model.embed_tokens.weight");
    CHECK_STR(t[1].name, "model.layers.0.self_attn.q_proj.weight");
    CHECK_STR(t[2].name, "model.layers.0.self_attn.k_proj.weight");
    CHECK_EQ_INT(t[2].shape[0], 32);
    CHECK_EQ_INT(t[2].shape[1], 64);
    CHECK_STR(t[4].name, "model.layers.0.self_attn.o_proj.weight");
    CHECK_STR(t[7].name, "model.layers.0.mlp.down_proj.weight");
    CHECK_EQ_INT(t[7].shape[0], 64);
    CHECK_EQ_INT(t[7].shape[1], 128);
    CHECK_STR(t[9].name, "model.layers.0.post_attention_layernorm.weight");
    CHECK_STR(t[19].name, "model.norm.weight");
    CHECK_STR(t[20].name, "lm_head.weight");
    size_t count;
    float *base = model_param_data(m, &count);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        CHECK((float *)t[i].data == base + at);
        at += t[i].nbytes / 4;
    }
    CHECK_EQ_INT(at, count);
    CHECK_EQ_INT((int64_t)count, model_config_num_params(model_get_config(m)));
    int ng;
    const ts_tensor *g = model_grads(m, &ng);
    CHECK_EQ_INT(ng, n);
    CHECK_STR(g[5].name, t[5].name);
    CHECK_EQ_INT(model_param_index(m, "model.layers.1.mlp.up_proj.weight"), 15);
    /* the plan of a model not created matches what creation allocated */
    size_t p1, g1, o1, a1, p2, g2, o2, a2;
    ts_err e = {0};
    model_memory(m, &p1, &g1, &o1, &a1);
    model_options mo = {.max_batch = 2, .max_seq = 16};
    REQUIRE(model_memory_plan(model_get_config(m), &mo, &p2, &g2, &o2, &a2, &e) == TS_OK);
    CHECK(p1 == p2 && g1 == g2 && o1 == o2 && a1 == a2);
    CHECK_EQ_INT(p1, count * 4);
    mo.max_seq = 100000;
    CHECK_ERR(model_memory_plan(model_get_config(m), &mo, &p2, &g2, &o2, &a2, &e), TS_EINVAL);
    CHECK_EQ_INT(model_param_index(m, "nope"), -1);
    model_free(m);
}

TEST(init_is_seeded_and_thread_independent) {
    model *a = make_model("tiny", false, 1, 8), *b = make_model("tiny", false, 1, 8);
    REQUIRE(a && b);
    size_t n;
    float *pa = model_param_data(a, &n), *pb = model_param_data(b, NULL);
    omp_set_num_threads(1);
    model_init(b, 1234);
    omp_set_num_threads(2);
    CHECK(memcmp(pa, pb, n * 4) == 0);
    model_init(b, 1235);
    CHECK(memcmp(pa, pb, n * 4) != 0);
    /* statistics: norms are 1, the rest normal(0, 0.02) */
    int nt;
    const ts_tensor *t = model_params(a, &nt);
    double s = 0, s2 = 0;
    size_t cnt = 0;
    for (int i = 0; i < nt; i++) {
        const float *x = t[i].data;
        size_t k = t[i].nbytes / 4;
        for (size_t j = 0; j < k; j++) {
            if (t[i].ndim == 1) {
                CHECK(x[j] == 1.0f);
                continue;
            }
            s += x[j];
            s2 += (double)x[j] * x[j];
            cnt++;
        }
    }
    double mean = s / cnt, sd = sqrt(s2 / cnt - mean * mean);
    CHECK_NEAR(mean, 0.0, 0.001);
    CHECK_NEAR(sd, 0.02, 0.0005);
    model_free(a);
    model_free(b);
}

/* ------------------------------------------------------------- kernels */

/* Naive double-precision attention with grouped KV heads; (B*T, ...) rows.
 * lse (B, nh, T), the logsumexp of each row's scaled scores, when not NULL. */
static void ref_attn(double *out, double *lse, const float *qkv, int B, int T, int nh, int nkv,
                     int hd) {
    int ld = (nh + 2 * nkv) * hd, rep = nh / nkv;
    double *p = malloc(sizeof(double) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < T; i++) {
                const float *q = qkv + (size_t)(b * T + i) * ld + h * hd;
                double mx = -1e300, s = 0;
                for (int j = 0; j <= i; j++) {
                    const float *k = qkv + (size_t)(b * T + j) * ld + (nh + h / rep) * hd;
                    double d = 0;
                    for (int x = 0; x < hd; x++) d += (double)q[x] * k[x];
                    p[j] = d / sqrt((double)hd);
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j <= i; j++) s += (p[j] = exp(p[j] - mx));
                if (lse) lse[((size_t)b * nh + h) * T + i] = mx + log(s);
                for (int x = 0; x < hd; x++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++)
                        o += p[j] / s * qkv[(size_t)(b * T + j) * ld + (nh + nkv + h / rep) * hd + x];
                    out[(size_t)(b * T + i) * nh * hd + h * hd + x] = o;
                }
            }
    free(p);
}

/* One attention case: forward (out and lse) against the double reference,
 * backward against central differences of the reference's forward. */
static void attn_case(int B, int T, int nh, int nkv, int hd, int nfd, uint32_t seed) {
    const int ld = (nh + 2 * nkv) * hd;
    size_t nq = (size_t)B * T * ld, no = (size_t)B * T * nh * hd, nl = (size_t)B * nh * T;
    size_t ns = kn_attn_scratch_floats(B, T, nh, nkv, hd);
    /* the scratch is far below the (B, nh, T, T) probabilities once T > 64 */
    CHECK(ns >= nl);
    if (T > 128) CHECK(ns < (size_t)B * nh * T * T / 2);
    float *qkv = malloc(nq * 4), *out = malloc(no * 4), *lse = malloc(nl * 4);
    float *scr = malloc((ns + 1) * 4), *dout = malloc(no * 4), *dqkv = malloc(nq * 4);
    double *ref = malloc(no * 8), *rlse = malloc(nl * 8);
    rng_seed(seed);
    for (size_t i = 0; i < nq; i++) qkv[i] = rng_unif();
    for (size_t i = 0; i < no; i++) dout[i] = rng_unif();
    /* guard float past the scratch: the ops must stay within the size */
    scr[ns] = 12345.0f;
    for (size_t i = 0; i < ns; i++) scr[i] = NAN; /* holds nothing between passes */
    kn_cpu_attn_fwd(out, lse, scr, qkv, B, T, nh, nkv, hd);
    ref_attn(ref, rlse, qkv, B, T, nh, nkv, hd);
    double err = 0, nrm = 0, lerr = 0;
    for (size_t i = 0; i < no; i++) {
        err += (out[i] - ref[i]) * (out[i] - ref[i]);
        nrm += ref[i] * ref[i];
    }
    CHECK_MSG(sqrt(err / nrm) < 1e-6, "forward relative error %g (T %d)", sqrt(err / nrm), T);
    for (size_t i = 0; i < nl; i++) lerr = fmax(lerr, fabs(lse[i] - rlse[i]) / fmax(1.0, fabs(rlse[i])));
    CHECK_MSG(lerr < 1e-6, "lse error %g (T %d)", lerr, T);
    /* backward: <dout, d out/d x> against central differences in double of
     * the naive forward, for sampled inputs (q, k and v of several heads) */
    for (size_t i = 0; i < ns; i++) scr[i] = NAN;
    kn_cpu_attn_bwd(dqkv, scr, dout, qkv, out, lse, B, T, nh, nkv, hd);
    CHECK(scr[ns] == 12345.0f);
    for (size_t i = 0; i < nq; i++)
        if (!isfinite(dqkv[i])) {
            th_fail(__FILE__, __LINE__, "dqkv[%zu] = %g (T %d)", i, dqkv[i], T);
            break;
        }
    double *r1 = malloc(no * 8), *r2 = malloc(no * 8);
    int bad = 0;
    for (int s = 0; s < nfd; s++) {
        size_t i = rng_u32() % nq;
        float keep = qkv[i];
        const float h = 1e-2f;
        qkv[i] = keep + h;
        ref_attn(r1, NULL, qkv, B, T, nh, nkv, hd);
        qkv[i] = keep - h;
        ref_attn(r2, NULL, qkv, B, T, nh, nkv, hd);
        qkv[i] = keep;
        double fd = 0;
        for (size_t j = 0; j < no; j++) fd += dout[j] * (r1[j] - r2[j]) / (2.0 * h);
        double tol = 1e-3 * fmax(1.0, fabs(fd));
        if (fabs(fd - dqkv[i]) > tol) {
            if (bad++ < 5)
                th_fail(__FILE__, __LINE__, "dqkv[%zu] = %g, finite difference %g (T %d)", i, dqkv[i],
                        fd, T);
        }
    }
    /* the same again on one thread gives the same bits (deterministic,
     * independent of the thread count, nothing kept in the scratch) */
    float *out2 = malloc(no * 4), *lse2 = malloc(nl * 4), *dqkv2 = malloc(nq * 4);
    int nthr = omp_get_max_threads();
    omp_set_num_threads(1);
    kn_cpu_attn_fwd(out2, lse2, scr, qkv, B, T, nh, nkv, hd);
    kn_cpu_attn_bwd(dqkv2, scr, dout, qkv, out2, lse2, B, T, nh, nkv, hd);
    omp_set_num_threads(nthr);
    CHECK(memcmp(out, out2, no * 4) == 0 && memcmp(lse, lse2, nl * 4) == 0 &&
          memcmp(dqkv, dqkv2, nq * 4) == 0);
    free(out2), free(lse2), free(dqkv2);
    free(r1);
    free(r2);
    free(qkv), free(out), free(lse), free(scr), free(dout), free(dqkv), free(ref), free(rlse);
}

TEST(kernel_attention_matches_naive_and_fd) {
    /* T = 150 spans three row blocks, the last one partial */
    attn_case(2, 150, 4, 2, 16, 24, 7);
    /* shorter than a block; one KV head for all; plain multi-head */
    attn_case(1, 37, 3, 1, 8, 8, 8);
    attn_case(2, 64, 2, 2, 8, 8, 9);
}

TEST(kernel_rope_inverse_and_values) {
    const int B = 1, T = 5, nh = 3, hd = 8, ld = 30;
    float x[5 * 30], y[5 * 30], c[5 * 4], s[5 * 4];
    rng_seed(3);
    for (int i = 0; i < 5 * 30; i++) x[i] = y[i] = rng_unif();
    for (int t = 0; t < T; t++)
        for (int i = 0; i < 4; i++) {
            double a = t * pow(10000.0, -2.0 * i / hd);
            c[t * 4 + i] = (float)cos(a);
            s[t * 4 + i] = (float)sin(a);
        }
    kn_cpu_rope_fwd(y, ld, c, s, B, T, nh, hd);
    /* head 1 of position 3, pair 2: the rotate-half formula */
    int t = 3, h = 1, i = 2;
    const float *a = x + t * ld + h * hd;
    CHECK_NEAR(y[t * ld + h * hd + i], a[i] * c[t * 4 + i] - a[i + 4] * s[t * 4 + i], 1e-6);
    CHECK_NEAR(y[t * ld + h * hd + i + 4], a[i + 4] * c[t * 4 + i] + a[i] * s[t * 4 + i], 1e-6);
    /* columns past nh heads are untouched; position 0 is the identity */
    for (int r = 0; r < T; r++)
        for (int j = nh * hd; j < ld; j++) CHECK(y[r * ld + j] == x[r * ld + j]);
    for (int j = 0; j < nh * hd; j++) CHECK(y[j] == x[j]);
    /* the backward pass is the inverse rotation */
    kn_cpu_rope_bwd(y, ld, c, s, B, T, nh, hd);
    for (int j = 0; j < 5 * 30; j++) CHECK_NEAR(y[j], x[j], 1e-6);
}

TEST(kernel_xent_and_swiglu) {
    const int N = 5, V = 300;
    float lg[5 * 300], d[5 * 300], loss[5], loss2[5];
    int32_t tg[5] = {3, KN_IGNORE_INDEX, 299, 0, 150};
    rng_seed(11);
    for (int i = 0; i < N * V; i++) lg[i] = d[i] = 8.0f * rng_unif();
    kn_cpu_xent_fwd(loss, lg, tg, N, V);
    kn_cpu_xent_fwd_bwd(loss2, d, tg, N, V, 0.25f);
    for (int i = 0; i < N; i++) {
        double mx = -1e300, s = 0;
        for (int j = 0; j < V; j++) mx = fmax(mx, lg[i * V + j]);
        for (int j = 0; j < V; j++) s += exp(lg[i * V + j] - mx);
        double want = tg[i] == KN_IGNORE_INDEX ? 0.0 : mx + log(s) - lg[i * V + tg[i]];
        CHECK_NEAR(loss[i], want, 1e-5 * fmax(1.0, fabs(want)));
        CHECK(loss[i] == loss2[i]);
        for (int j = 0; j < V; j++) {
            double g = tg[i] == KN_IGNORE_INDEX ? 0.0 : 0.25 * (exp(lg[i * V + j] - mx) / s - (j == tg[i]));
            CHECK_NEAR(d[i * V + j], g, 1e-7);
        }
    }
    /* SwiGLU against the formula, and its backward against differences */
    const int F = 37;
    float gu[3 * 74], h[3 * 37], dh[3 * 37], dgu[3 * 74];
    for (int i = 0; i < 3 * 74; i++) gu[i] = 6.0f * rng_unif();
    for (int i = 0; i < 3 * 37; i++) dh[i] = rng_unif();
    kn_cpu_swiglu_fwd(h, gu, 3, F);
    kn_cpu_swiglu_bwd(dgu, dh, gu, 3, F);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < F; j++) {
            double g = gu[i * 74 + j], u = gu[i * 74 + F + j];
            double silu = g / (1 + exp(-g));
            CHECK_NEAR(h[i * F + j], silu * u, 1e-6 * fmax(1, fabs(silu * u)));
            double eps = 1e-4;
            double dg = ((g + eps) / (1 + exp(-(g + eps))) - (g - eps) / (1 + exp(-(g - eps)))) / (2 * eps);
            CHECK_NEAR(dgu[i * 74 + j], dh[i * F + j] * u * dg, 1e-5);
            CHECK_NEAR(dgu[i * 74 + F + j], dh[i * F + j] * silu, 1e-5);
        }
}

TEST(kernel_rmsnorm_backward_and_reductions) {
    const int N = 70, C = 130; /* more than one 64-column block */
    size_t n = (size_t)N * C;
    float *x = malloc(n * 4), *y = malloc(n * 4), *dy = malloc(n * 4), *dx = calloc(n, 4);
    float w[130], dw[130] = {0}, rstd[70];
    rng_seed(5);
    for (size_t i = 0; i < n; i++) x[i] = rng_unif(), dy[i] = rng_unif();
    for (int j = 0; j < C; j++) w[j] = 1.0f + 0.5f * rng_unif();
    kn_cpu_rmsnorm_fwd(y, rstd, x, w, N, C, 1e-6f);
    kn_cpu_rmsnorm_bwd(dx, dw, dy, x, w, rstd, N, C);
    /* dx of row 7 against the formula in double */
    for (int k = 0; k < C; k += 13) {
        const float *r = x + 7 * C;
        double ss = 0, dot = 0;
        for (int j = 0; j < C; j++) ss += (double)r[j] * r[j], dot += (double)dy[7 * C + j] * w[j] * r[j];
        double rs = 1 / sqrt(ss / C + 1e-6);
        double want = rs * w[k] * dy[7 * C + k] - rs * rs * rs / C * r[k] * dot;
        CHECK_NEAR(dx[7 * C + k], want, 1e-5);
    }
    for (int j = 0; j < C; j += 17) {
        double s = 0;
        for (int i = 0; i < N; i++) s += (double)dy[i * C + j] * x[i * C + j] * rstd[i];
        CHECK_NEAR(dw[j], s, 1e-4);
    }
    /* sumsq and the embedding gradient do not depend on the thread count */
    size_t big = 3000000;
    float *v = malloc(big * 4);
    for (size_t i = 0; i < big; i++) v[i] = rng_unif();
    omp_set_num_threads(1);
    double s1 = kn_cpu_sumsq(v, big);
    omp_set_num_threads(2);
    double s2 = kn_cpu_sumsq(v, big);
    CHECK(s1 == s2);
    double s3 = 0;
    for (size_t i = 0; i < big; i++) s3 += (double)v[i] * v[i];
    CHECK_NEAR(s1, s3, 1e-9 * s3);
    free(v);
    free(x), free(y), free(dy), free(dx);
}

TEST(kernel_adamw_matches_formula) {
    float p[3] = {0.5f, -1.0f, 2.0f}, g[3] = {0.1f, -0.2f, 0.0f}, m[3] = {0.01f, 0, -0.02f},
          v[3] = {1e-4f, 0, 4e-4f};
    float p0[3], m0[3], v0[3];
    memcpy(p0, p, 12), memcpy(m0, m, 12), memcpy(v0, v, 12);
    kn_adamw_args a = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    double t = 3, bc1 = 1 - pow(0.9, t), bc2 = 1 - pow(0.95, t);
    a.step_size = (float)(1e-2 / bc1);
    a.bc2_sqrt = (float)sqrt(bc2);
    kn_cpu_adamw(p, g, m, v, 3, &a);
    for (int i = 0; i < 3; i++) {
        double mm = 0.9 * m0[i] + 0.1 * g[i], vv = 0.95 * v0[i] + 0.05 * (double)g[i] * g[i];
        double pp = p0[i] * (1 - 1e-3) - (1e-2 / bc1) * mm / (sqrt(vv) / sqrt(bc2) + 1e-8);
        CHECK_NEAR(m[i], mm, 1e-7);
        CHECK_NEAR(v[i], vv, 1e-9);
        CHECK_NEAR(p[i], pp, 1e-6);
    }
}

/* --------------------------------------------------- the whole backward */

/* Central differences with Richardson extrapolation, in double, of the mean
 * loss along a direction u over the parameter buffer. */
static double fd_dir(model *m, float *w, const int32_t *tok, int B, int T, const size_t *idx,
                     const float *u, int k, double h) {
    float *keep = malloc(sizeof(float) * k);
    for (int i = 0; i < k; i++) keep[i] = w[idx[i]];
    double d[2];
    for (int r = 0; r < 2; r++) {
        double hh = r ? h / 2 : h;
        for (int i = 0; i < k; i++) w[idx[i]] = (float)(keep[i] + hh * u[i]);
        double lp = mean_loss(m, tok, B, T);
        for (int i = 0; i < k; i++) w[idx[i]] = (float)(keep[i] - hh * u[i]);
        double lm = mean_loss(m, tok, B, T);
        for (int i = 0; i < k; i++) w[idx[i]] = keep[i];
        /* the perturbation actually applied is the float difference */
        d[r] = (lp - lm) / (2 * hh);
    }
    free(keep);
    return (4 * d[1] - d[0]) / 3;
}

static void gradcheck(bool tied) {
    const int B = 2, T = 24;
    model *m = make_model("tiny", tied, B, T);
    REQUIRE(m != NULL);
    /* larger weights than the init make every path of the gradient matter */
    size_t np;
    float *w = model_param_data(m, &np);
    int nt;
    const ts_tensor *pt = model_params(m, &nt);
    rng_seed(tied ? 21 : 22);
    for (int i = 0; i < nt; i++) {
        float *x = pt[i].data;
        for (size_t j = 0; j < pt[i].nbytes / 4; j++)
            x[j] = pt[i].ndim == 1 ? 1.0f + 0.3f * rng_unif() : 5.0f * x[j];
    }
    int32_t tok[2 * 25];
    rand_tokens(tok, B * (T + 1), 257);
    tok[7] = MODEL_IGNORE_INDEX; /* an ignored target that is also a (padding) input */
    tok[25 + 24] = MODEL_IGNORE_INDEX;
    ts_err e = {0};
    float loss;
    model_zero_grad(m);
    REQUIRE(model_forward_backward(m, tok, B, T, &loss, &e) == TS_OK);
    CHECK_NEAR(loss, mean_loss(m, tok, B, T), 1e-6);
    const float *g = model_grad_data(m, NULL);
    int bad = 0;
    for (int ti = 0; ti < nt; ti++) {
        size_t off = (size_t)((float *)pt[ti].data - w), n = pt[ti].nbytes / 4;
        /* (1) a direction over the whole tensor: sign(g) times random
         * magnitudes, so every element takes part with its sign */
        size_t *idx = malloc(sizeof(size_t) * n);
        float *u = malloc(sizeof(float) * n);
        double gu = 0, un = 0;
        for (size_t j = 0; j < n; j++) {
            idx[j] = off + j;
            u[j] = (g[off + j] >= 0 ? 1.0f : -1.0f) * (0.5f + 0.5f * fabsf(rng_unif()));
            un += (double)u[j] * u[j];
        }
        for (size_t j = 0; j < n; j++) {
            u[j] = (float)(u[j] / sqrt(un));
            gu += (double)g[off + j] * u[j];
        }
        double fd = fd_dir(m, w, tok, B, T, idx, u, (int)n, 1e-2);
        if (getenv("GC_VERBOSE")) fprintf(stderr, "%-50s dir rel %.2e\n", pt[ti].name, fabs(fd - gu) / fabs(gu));
        if (fabs(fd - gu) > 5e-4 * fabs(gu) + 1e-6) {
            bad++;
            th_fail(__FILE__, __LINE__, "%s: directional derivative %.8g, finite difference %.8g",
                    pt[ti].name, gu, fd);
        }
        /* (2) single elements: the two largest |g| and three random */
        size_t pick[5] = {0, 0, 0, 0, 0};
        for (size_t j = 0; j < n; j++) {
            if (fabsf(g[off + j]) > fabsf(g[off + pick[0]])) pick[1] = pick[0], pick[0] = j;
            else if (j != pick[0] && fabsf(g[off + j]) > fabsf(g[off + pick[1]])) pick[1] = j;
        }
        for (int r = 2; r < 5; r++) pick[r] = rng_u32() % n;
        for (int r = 0; r < 5; r++) {
            size_t ii = off + pick[r];
            float one = 1.0f;
            double f1 = fd_dir(m, w, tok, B, T, &ii, &one, 1, 1e-2);
            double an = g[ii];
            if (getenv("GC_VERBOSE")) fprintf(stderr, "   elem %.3e vs %.3e  abs %.1e\n", an, f1, fabs(an - f1));
            if (fabs(f1 - an) > 5e-3 * fabs(an) + 5e-5) {
                bad++;
                th_fail(__FILE__, __LINE__, "%s[%zu]: gradient %.8g, finite difference %.8g",
                        pt[ti].name, pick[r], an, f1);
            }
        }
        free(idx);
        free(u);
        if (bad > 10) break;
    }
    model_free(m);
}

TEST(gradcheck_tiny_tied) { gradcheck(true); }
TEST(gradcheck_tiny_untied) { gradcheck(false); }

/* ------------------------------------------------------------- training */

TEST(overfit_one_batch) {
    const int B = 4, T = 32;
    model *m = make_model("tiny", true, B, T);
    REQUIRE(m != NULL);
    int32_t tok[4 * 33];
    rng_seed(99);
    rand_tokens(tok, B * (T + 1), 257);
    model_adamw h;
    model_adamw_defaults(&h);
    h.weight_decay = 0.0;
    ts_err e = {0};
    float first = 0, loss = 0;
    double norm;
    for (int s = 0; s < 300; s++) {
        REQUIRE(model_train_step(m, &h, 1e-2, tok, B, T, &loss, &norm, &e) == TS_OK);
        if (s == 0) first = loss;
    }
    CHECK_MSG(first > 5.0f && loss < 0.05f, "loss %g -> %g after 300 steps", first, loss);
    CHECK_EQ_INT(model_adam_steps(m), 300);
    model_adam_reset(m);
    CHECK_EQ_INT(model_adam_steps(m), 0);
    model_free(m);
}

TEST(eval_loss_matches_training_loss_and_logits) {
    const int B = 3, T = 20, V = 257;
    model *m = make_model("tiny", false, B, T);
    REQUIRE(m != NULL);
    int32_t tok[3 * 21], in[3 * 20];
    rng_seed(5);
    rand_tokens(tok, B * (T + 1), V);
    tok[21 + 20] = MODEL_IGNORE_INDEX;
    ts_err e = {0};
    float loss;
    model_zero_grad(m);
    REQUIRE(model_forward_backward(m, tok, B, T, &loss, &e) == TS_OK);
    double sum, rows[3];
    int64_t cnt;
    REQUIRE(model_eval_loss(m, tok, B, T, &sum, &cnt, rows, &e) == TS_OK);
    CHECK_EQ_INT(cnt, B * T - 1);
    CHECK_NEAR(sum / cnt, loss, 1e-6);
    CHECK_NEAR(rows[0] + rows[1] + rows[2], sum, 1e-9);
    /* an eval-only model with the same weights gives the same sums */
    model_config c = *model_get_config(m);
    model *ev = NULL;
    model_options o = {.max_batch = B, .max_seq = T, .eval_only = true};
    REQUIRE(model_create_opts(&c, kn_cpu(), &o, &ev, &e) == TS_OK);
    size_t n;
    const float *src = model_param_data(m, &n);
    memcpy(model_param_data(ev, NULL), src, n * 4);
    double sum2, rows2[3];
    int64_t cnt2;
    REQUIRE(model_eval_loss(ev, tok, B, T, &sum2, &cnt2, rows2, &e) == TS_OK);
    CHECK(sum2 == sum && cnt2 == cnt);
    CHECK(model_grad_data(ev, NULL) == NULL);
    CHECK_ERR(model_forward_backward(ev, tok, B, T, &loss, &e), TS_ESTATE);
    model_adamw h;
    model_adamw_defaults(&h);
    CHECK_ERR(model_adamw_step(ev, &h, 1e-3, &e), TS_ESTATE);
    size_t pa, ga, oa, aa, ae;
    model_memory(m, &pa, &ga, &oa, &aa);
    model_memory(ev, NULL, NULL, NULL, &ae);
    CHECK(ga == pa && oa == 2 * pa && ae < aa);
    /* logits: the loss recomputed from them in double */
    for (int b = 0; b < B; b++) memcpy(in + b * T, tok + b * (T + 1), T * 4);
    float *lg = malloc(sizeof(float) * B * T * V);
    REQUIRE(model_logits(m, in, B, T, lg, &e) == TS_OK);
    double s = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int tg = tok[b * (T + 1) + t + 1];
            if (tg == MODEL_IGNORE_INDEX) continue;
            const float *r = lg + (size_t)(b * T + t) * V;
            double mx = -1e300, z = 0;
            for (int j = 0; j < V; j++) mx = fmax(mx, r[j]);
            for (int j = 0; j < V; j++) z += exp(r[j] - mx);
            s += mx + log(z) - r[tg];
        }
    CHECK_NEAR(s, sum, 1e-4);
    free(lg);
    model_free(ev);
    model_free(m);
}

TEST(padding_leaves_earlier_tokens_alone) {
    /* a row padded at its end: the losses of the real tokens are unchanged */
    const int T = 16;
    model *m = make_model("tiny", true, 1, T);
    REQUIRE(m != NULL);
    int32_t a[17], b[17];
    rng_seed(8);
    rand_tokens(a, 17, 257);
    memcpy(b, a, sizeof a);
    for (int t = 10; t <= 16; t++) b[t] = MODEL_IGNORE_INDEX;
    double sa, sb;
    int64_t ca, cb;
    ts_err e = {0};
    REQUIRE(model_eval_loss(m, a, 1, 9, &sa, &ca, NULL, &e) == TS_OK); /* tokens 0..9 */
    REQUIRE(model_eval_loss(m, b, 1, T, &sb, &cb, NULL, &e) == TS_OK);
    CHECK_EQ_INT(ca, 9);
    CHECK_EQ_INT(cb, 9);
    CHECK_NEAR(sa, sb, 1e-5);
    /* an all-padding row counts nothing and contributes no gradient */
    int32_t pad[17];
    for (int t = 0; t < 17; t++) pad[t] = MODEL_IGNORE_INDEX;
    float loss = -1;
    model_zero_grad(m);
    REQUIRE(model_forward_backward(m, pad, 1, T, &loss, &e) == TS_OK);
    CHECK(loss == 0.0f);
    CHECK(model_grad_norm(m) == 0.0);
    model_free(m);
}

TEST(gradients_accumulate_and_clip) {
    const int B = 2, T = 12;
    model *m = make_model("tiny", true, B, T);
    REQUIRE(m != NULL);
    int32_t tok[2 * 13];
    rng_seed(4);
    rand_tokens(tok, B * (T + 1), 257);
    ts_err e = {0};
    float l1, l2;
    model_zero_grad(m);
    REQUIRE(model_forward_backward(m, tok, B, T, &l1, &e) == TS_OK);
    double n1 = model_grad_norm(m);
    size_t n;
    float *g = model_grad_data(m, &n);
    float *copy = malloc(n * 4);
    memcpy(copy, g, n * 4);
    REQUIRE(model_forward_backward(m, tok, B, T, &l2, &e) == TS_OK);
    CHECK(l1 == l2);
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(g[i] - 2 * copy[i]));
    CHECK(worst < 1e-6);
    CHECK_NEAR(model_grad_norm(m), 2 * n1, 1e-6 * n1);
    model_scale_grads(m, 0.5f);
    CHECK_NEAR(model_grad_norm(m), n1, 1e-6 * n1);
    /* clip: above the threshold scales to max_norm / (norm + 1e-6) */
    double before = model_clip_grad(m, n1 / 2);
    CHECK_NEAR(before, n1, 1e-6 * n1);
    CHECK_NEAR(model_grad_norm(m), n1 / 2 * n1 / (n1 + 1e-6), 1e-6 * n1);
    double now = model_grad_norm(m);
    model_clip_grad(m, 10 * n1); /* below: untouched */
    CHECK(model_grad_norm(m) == now);
    model_zero_grad(m);
    CHECK(model_grad_norm(m) == 0.0);
    free(copy);
    model_free(m);
}

TEST(schedule_values) {
    model_schedule s;
    model_schedule_defaults(&s, 1.3e-4, 10, 110);
    CHECK_NEAR(model_schedule_lr(&s, 0), 1.3e-5, 1e-15);
    CHECK_NEAR(model_schedule_lr(&s, 4), 6.5e-5, 1e-15);
    CHECK_NEAR(model_schedule_lr(&s, 9), 1.3e-4, 1e-15);
    CHECK_NEAR(model_schedule_lr(&s, 10), 1.3e-4, 1e-15);
    CHECK_NEAR(model_schedule_lr(&s, 60), 1.3e-5 + (1.3e-4 - 1.3e-5) * 0.5, 1e-15); /* half way */
    CHECK_NEAR(model_schedule_lr(&s, 110), 1.3e-5, 1e-15);
    CHECK_NEAR(model_schedule_lr(&s, 5000), 1.3e-5, 1e-15); /* keeps advancing, stays at the floor */
    /* monotone after warm-up */
    for (int i = 10; i < 120; i++) CHECK(model_schedule_lr(&s, i + 1) <= model_schedule_lr(&s, i));
    model_schedule_defaults(&s, 1e-3, 0, 10);
    CHECK_NEAR(model_schedule_lr(&s, 0), 1e-3, 1e-15);
    model_adamw h;
    model_adamw_defaults(&h);
    CHECK(h.lr == 1.3e-4 && h.beta1 == 0.9 && h.beta2 == 0.95 && h.eps == 1e-8 && h.weight_decay == 0.1 &&
          h.clip == 1.0);
}

TEST(bad_tokens_are_refused) {
    const int B = 2, T = 8;
    model *m = make_model("tiny", true, B, T);
    REQUIRE(m != NULL);
    int32_t tok[2 * 9];
    rng_seed(1);
    rand_tokens(tok, 18, 257);
    size_t n;
    float *w = model_param_data(m, &n);
    float *before = malloc(n * 4);
    memcpy(before, w, n * 4);
    ts_err e = {0};
    float loss;
    double s;
    int64_t c;
    tok[12] = 257;
    CHECK_ERR(model_forward_backward(m, tok, B, T, &loss, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "257") && strstr(e.msg, "row 1") && strstr(e.msg, "vocabulary"));
    CHECK_ERR(model_eval_loss(m, tok, B, T, &s, &c, NULL, &e), TS_EINVAL);
    tok[12] = -5;
    CHECK_ERR(model_eval_loss(m, tok, B, T, &s, &c, NULL, &e), TS_EINVAL);
    tok[12] = 3;
    CHECK_ERR(model_eval_loss(m, tok, 3, T, &s, &c, NULL, &e), TS_EINVAL); /* B > max_batch */
    CHECK(strstr(e.msg, "max_batch") != NULL);
    CHECK_ERR(model_eval_loss(m, tok, 1, 9, &s, &c, NULL, &e), TS_EINVAL); /* T > max_seq */
    CHECK_ERR(model_eval_loss(m, tok, 0, T, &s, &c, NULL, &e), TS_EINVAL);
    int32_t in[8] = {1, 2, 3, 100000, 4, 5, 6, 7};
    float lg[8 * 257];
    CHECK_ERR(model_logits(m, in, 1, 8, lg, &e), TS_EINVAL);
    model_train_step(m, &(model_adamw){.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .clip = 1}, 1e-3,
                     (int32_t[]){300, 1, 2, 3, 4, 5, 6, 7, 8}, 1, T, &loss, NULL, &e);
    CHECK(memcmp(before, w, n * 4) == 0); /* nothing ran */
    CHECK_EQ_INT(model_adam_steps(m), 0);
    free(before);
    model_free(m);
}

/* ----------------------------------------------------------- checkpoints */

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

TEST(save_load_roundtrip) {
    const char *dir = th_tmpdir();
    char ck[600], file[700];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    model *a = make_model("tiny", false, 2, 16), *b = make_model("tiny", false, 2, 16);
    REQUIRE(a && b);
    model_init(b, 99);
    ts_err e = {0};
    REQUIRE(model_save(a, ck, &e) == TS_OK);
    REQUIRE(model_load(b, ck, &e) == TS_OK);
    size_t n;
    const float *pa = model_param_data(a, &n);
    CHECK(memcmp(pa, model_param_data(b, NULL), n * 4) == 0);
    /* the bare file loads too, and the config reads back equal */
    model_init(b, 98);
    snprintf(file, sizeof file, "%s/model.safetensors", ck);
    REQUIRE(model_load(b, file, &e) == TS_OK);
    CHECK(memcmp(model_param_data(a, NULL), model_param_data(b, NULL), n * 4) == 0);
    model_config c;
    REQUIRE(model_config_load(ck, &c, &e) == TS_OK);
    CHECK(model_config_equal(&c, model_get_config(a)));
    /* one write holds every tensor, in order, right after the header */
    ts_st_file *f;
    REQUIRE(ts_st_open(file, &f, &e) == TS_OK);
    CHECK_EQ_INT(ts_st_count(f), 21);
    CHECK_STR(ts_st_meta(f, "format"), "pt");
    CHECK_STR(ts_st_get(f, 0)->name, "model.embed_tokens.weight");
    ts_st_close(f);
    /* a tied model writes no lm_head, as transformers does */
    model *t = make_model("tiny", true, 1, 8);
    snprintf(ck, sizeof ck, "%s/tied", dir);
    REQUIRE(model_save(t, ck, &e) == TS_OK);
    snprintf(file, sizeof file, "%s/model.safetensors", ck);
    REQUIRE(ts_st_open(file, &f, &e) == TS_OK);
    CHECK(ts_st_find(f, "lm_head.weight") == NULL);
    CHECK_EQ_INT(ts_st_count(f), 20);
    ts_st_close(f);
    /* gradients save under the same names */
    snprintf(file, sizeof file, "%s/grads.safetensors", dir);
    REQUIRE(model_save_grads(a, file, &e) == TS_OK);
    REQUIRE(ts_st_open(file, &f, &e) == TS_OK);
    CHECK_EQ_INT(ts_st_count(f), 21);
    CHECK(ts_st_find(f, "lm_head.weight") != NULL);
    ts_st_close(f);
    model_free(t);
    model_free(a);
    model_free(b);
}

/* Writes the model's tensors, with one of them replaced, removed or added. */
static int save_variant(model *m, const char *path, const char *drop, const ts_tensor *replace,
                        const ts_tensor *add) {
    int n;
    const ts_tensor *t = model_params(m, &n);
    const ts_tensor *list[64];
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (drop && !strcmp(t[i].name, drop)) continue;
        list[k++] = replace && !strcmp(t[i].name, replace->name) ? replace : &t[i];
    }
    if (add) list[k++] = add;
    ts_err e = {0};
    return ts_st_write(path, list, k, NULL, &e);
}

TEST(load_refuses_bad_checkpoints) {
    const char *dir = th_tmpdir();
    char p[600];
    model *m = make_model("tiny", false, 1, 8);
    REQUIRE(m != NULL);
    size_t n;
    float *w = model_param_data(m, &n);
    float *keep = malloc(n * 4);
    memcpy(keep, w, n * 4);
    ts_err e = {0};
    /* missing tensor */
    snprintf(p, sizeof p, "%s/missing.safetensors", dir);
    REQUIRE(save_variant(m, p, "model.layers.1.mlp.up_proj.weight", NULL, NULL) == 0);
    CHECK_ERR(model_load(m, p, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "model.layers.1.mlp.up_proj.weight") && strstr(e.msg, "missing"));
    /* misshaped tensor */
    ts_tensor bad;
    int64_t shp[2] = {64, 63};
    REQUIRE(ts_tensor_alloc(&bad, "model.layers.0.self_attn.o_proj.weight", TS_F32, 2, shp, &e) == TS_OK);
    snprintf(p, sizeof p, "%s/shape.safetensors", dir);
    REQUIRE(save_variant(m, p, NULL, &bad, NULL) == 0);
    CHECK_ERR(model_load(m, p, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "o_proj") && strstr(e.msg, "[64, 63]") && strstr(e.msg, "[64, 64]"));
    ts_tensor_free(&bad);
    /* wrong dtype */
    int64_t s1[1] = {64};
    REQUIRE(ts_tensor_alloc(&bad, "model.norm.weight", TS_I32, 1, s1, &e) == TS_OK);
    snprintf(p, sizeof p, "%s/dtype.safetensors", dir);
    REQUIRE(save_variant(m, p, NULL, &bad, NULL) == 0);
    CHECK_ERR(model_load(m, p, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "I32") != NULL);
    ts_tensor_free(&bad);
    /* non-finite values */
    REQUIRE(ts_tensor_alloc(&bad, "model.norm.weight", TS_F32, 1, s1, &e) == TS_OK);
    ((float *)bad.data)[5] = NAN;
    snprintf(p, sizeof p, "%s/nan.safetensors", dir);
    REQUIRE(save_variant(m, p, NULL, &bad, NULL) == 0);
    CHECK_ERR(model_load(m, p, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "non-finite") != NULL);
    ts_tensor_free(&bad);
    /* an unexpected extra tensor (a third layer) */
    int64_t s2[1] = {64};
    REQUIRE(ts_tensor_alloc(&bad, "model.layers.2.input_layernorm.weight", TS_F32, 1, s2, &e) == TS_OK);
    snprintf(p, sizeof p, "%s/extra.safetensors", dir);
    REQUIRE(save_variant(m, p, NULL, NULL, &bad) == 0);
    CHECK_ERR(model_load(m, p, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "unexpected") && strstr(e.msg, "layers.2"));
    ts_tensor_free(&bad);
    /* truncated file, garbage file, no file */
    snprintf(p, sizeof p, "%s/trunc.safetensors", dir);
    REQUIRE(save_variant(m, p, NULL, NULL, NULL) == 0);
    REQUIRE(truncate(p, 5000) == 0);
    CHECK(model_load(m, p, &e) != TS_OK);
    snprintf(p, sizeof p, "%s/garbage.safetensors", dir);
    REQUIRE(write_file(p, "this is not a checkpoint") == 0);
    CHECK(model_load(m, p, &e) != TS_OK);
    snprintf(p, sizeof p, "%s/none", dir);
    CHECK_ERR(model_load(m, p, &e), TS_ENOTFOUND);
    /* a directory whose config.json is another model */
    snprintf(p, sizeof p, "%s/other", dir);
    REQUIRE(model_save(m, p, &e) == TS_OK);
    model_config c = *model_get_config(m);
    c.intermediate_size = 192;
    char cj[700];
    snprintf(cj, sizeof cj, "%s/config.json", p);
    REQUIRE(model_config_save(&c, cj, &e) == TS_OK);
    CHECK_ERR(model_load(m, p, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "intermediate_size") != NULL);
    /* a tied checkpoint lacks lm_head for an untied model */
    model *t = make_model("tiny", true, 1, 8);
    snprintf(p, sizeof p, "%s/tied/model.safetensors", dir);
    char td[600];
    snprintf(td, sizeof td, "%s/tied", dir);
    REQUIRE(model_save(t, td, &e) == TS_OK);
    CHECK_ERR(model_load(m, p, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "lm_head.weight") != NULL);
    /* after all that, the parameters are untouched */
    CHECK(memcmp(keep, w, n * 4) == 0);
    /* BF16 tensors load, converted */
    ts_tensor h16;
    REQUIRE(ts_tensor_alloc(&h16, "model.norm.weight", TS_BF16, 1, s1, &e) == TS_OK);
    for (int i = 0; i < 64; i++) ((uint16_t *)h16.data)[i] = ts_f32_to_bf16(0.5f + i / 64.0f);
    snprintf(p, sizeof p, "%s/bf16.safetensors", dir);
    REQUIRE(save_variant(m, p, NULL, &h16, NULL) == 0);
    REQUIRE(model_load(m, p, &e) == TS_OK);
    const float *nw = model_params(m, NULL)[model_param_index(m, "model.norm.weight")].data;
    CHECK(nw[0] == 0.5f && nw[32] == 1.0f);
    ts_tensor_free(&h16);
    model_free(t);
    free(keep);
    model_free(m);
}
