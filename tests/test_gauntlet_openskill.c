/* test_gauntlet_openskill.c - the OpenSkill port against openskill.py's own
 * fixtures (both releases, every model, every scenario), the specification's
 * worked examples, the predictions, and long Templar-style chains. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/common.h"
#include "gauntlet/gauntlet.h"
#include "harness.h"

/* The fixtures live beside the repository (shared/openskill/...), never in
 * it: $TESSERA_OPENSKILL_FIXTURES, else $TESSERA_REPO/../shared/..., else
 * ../shared/... from the working directory. */
static const char *fixtures_dir(void) {
    static char buf[4096];
    const char *env = getenv("TESSERA_OPENSKILL_FIXTURES");
    if (env && *env) return ts_path_exists(env) ? env : NULL;
    const char *repo = getenv("TESSERA_REPO");
    if (repo && *repo) {
        snprintf(buf, sizeof buf, "%s/../shared/openskill/upstream_fixtures", repo);
        if (ts_path_exists(buf)) return buf;
    }
    snprintf(buf, sizeof buf, "../shared/openskill/upstream_fixtures");
    if (ts_path_exists(buf)) return buf;
    return NULL;
}

static cJSON *load_json(const char *path) {
    uint8_t *b;
    size_t n;
    ts_err e = {0};
    if (ts_read_file(path, 1 << 20, &b, &n, &e)) return NULL;
    cJSON *j = cJSON_ParseWithLength((const char *)b, n);
    free(b);
    return j;
}

static double relerr(double got, double want) {
    double d = fabs(got - want);
    return want == 0 ? d : d / fabs(want);
}

/* One scenario: teams of the given sizes, all players at the model prior. */
static double check_scenario(const os_model *m, const cJSON *fx, const char *key, int nteams,
                             const int *sizes, const double *ranks, const double *scores,
                             const double *weights, int limit_sigma) {
    os_rating in[32], out[32];
    int np = 0;
    for (int t = 0; t < nteams; t++) np += sizes[t];
    for (int i = 0; i < np; i++) in[i] = (os_rating){m->mu, m->sigma};
    os_match mt = {.nteams = nteams, .team_sizes = sizes, .ratings = in, .ranks = ranks,
                   .scores = scores, .weights = weights, .limit_sigma = limit_sigma};
    ts_err e = {0};
    if (os_rate(m, &mt, out, &e)) {
        th_fail(__FILE__, __LINE__, "%s: os_rate failed: %s", key, e.msg);
        return INFINITY;
    }
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(fx, key);
    if (!sc) {
        th_fail(__FILE__, __LINE__, "fixture has no scenario %s", key);
        return INFINITY;
    }
    double worst = 0;
    int at = 0;
    for (int t = 0; t < nteams; t++) {
        char tk[32];
        snprintf(tk, sizeof tk, "team_%d", t + 1);
        const cJSON *team = cJSON_GetObjectItemCaseSensitive(sc, tk);
        if (cJSON_GetArraySize(team) != sizes[t]) {
            th_fail(__FILE__, __LINE__, "%s %s: size mismatch", key, tk);
            return INFINITY;
        }
        for (int j = 0; j < sizes[t]; j++, at++) {
            const cJSON *pl = cJSON_GetArrayItem(team, j);
            double mu = cJSON_GetObjectItemCaseSensitive(pl, "mu")->valuedouble;
            double sg = cJSON_GetObjectItemCaseSensitive(pl, "sigma")->valuedouble;
            double a = relerr(out[at].mu, mu), b = relerr(out[at].sigma, sg);
            if (a > worst) worst = a;
            if (b > worst) worst = b;
        }
    }
    return worst;
}

TEST(openskill_upstream_fixtures_all_models_both_versions) {
    const char *dir = fixtures_dir();
    if (!dir)
        SKIP("openskill fixtures not found (set TESSERA_OPENSKILL_FIXTURES or keep shared/ beside the repository)");
    static const char *const files[] = {"plackettluce", "bradleyterryfull", "thurstonemostellerfull",
                                        "bradleyterrypart", "thurstonemostellerpart"};
    static const os_model_kind kinds[] = {OS_PLACKETT_LUCE, OS_BRADLEY_TERRY_FULL,
                                          OS_THURSTONE_MOSTELLER_FULL, OS_BRADLEY_TERRY_PART,
                                          OS_THURSTONE_MOSTELLER_PART};
    static const char *const vers[] = {"v6.1.3", "v6.2.0"};
    int files_checked = 0;
    for (int v = 0; v < 2; v++)
        for (int f = 0; f < 5; f++) {
            char path[4300];
            snprintf(path, sizeof path, "%s/%s/%s.json", dir, vers[v], files[f]);
            cJSON *fx = load_json(path);
            CHECK_MSG(fx != NULL, "cannot read %s", path);
            if (!fx) continue;
            files_checked++;
            os_model m;
            os_model_init(&m, kinds[f], v ? OS_V6_2_0 : OS_V6_1_3);
            const cJSON *mo = cJSON_GetObjectItemCaseSensitive(fx, "model");
            m.mu = cJSON_GetObjectItemCaseSensitive(mo, "mu")->valuedouble;
            m.sigma = cJSON_GetObjectItemCaseSensitive(mo, "sigma")->valuedouble;
            double worst = 0, w;
            /* The upstream test runs these in order on one model object. */
            { int s[] = {1, 2};
              w = check_scenario(&m, fx, "normal", 2, s, NULL, NULL, NULL, -1); if (w > worst) worst = w; }
            { int s[] = {1, 2, 1, 2}; double r[] = {2, 1, 4, 3};
              w = check_scenario(&m, fx, "ranks", 4, s, r, NULL, NULL, -1); if (w > worst) worst = w; }
            { int s[] = {1, 2}; double sc[] = {1, 2};
              w = check_scenario(&m, fx, "scores", 2, s, NULL, sc, NULL, -1); if (w > worst) worst = w; }
            { int s[] = {2, 2, 2, 2, 2}; double sc[] = {10, 5, 5, 2, 1};
              double wt[] = {1, 2, 2, 1, 1, 2, 3, 1, 1, 2};
              m.margin = 2.0;
              w = check_scenario(&m, fx, "margins", 5, s, NULL, sc, wt, -1); if (w > worst) worst = w;
              m.margin = 0.0; }
            { int s[] = {1, 2, 3}; double r[] = {2, 1, 3};
              w = check_scenario(&m, fx, "limit_sigma", 3, s, r, NULL, NULL, 1); if (w > worst) worst = w;
              m.limit_sigma = true; /* the library's rate(limit_sigma=True) is sticky */ }
            { int s[] = {1, 2, 3}; double r[] = {1, 2, 1};
              w = check_scenario(&m, fx, "ties", 3, s, r, NULL, NULL, -1); if (w > worst) worst = w; }
            { int s[] = {3, 2, 3, 2}; double r[] = {2, 1, 4, 3};
              double wt[] = {2, 0, 0, 1, 2, 0, 0, 1, 0, 1};
              w = check_scenario(&m, fx, "weights", 4, s, r, NULL, wt, -1); if (w > worst) worst = w; }
            { os_model mb;
              os_model_init(&mb, kinds[f], v ? OS_V6_2_0 : OS_V6_1_3);
              mb.mu = m.mu; mb.sigma = m.sigma; mb.balance = true;
              int s[] = {2, 2}; double r[] = {1, 2};
              w = check_scenario(&mb, fx, "balance", 2, s, r, NULL, NULL, -1); if (w > worst) worst = w; }
            CHECK_MSG(worst <= 1e-9, "%s/%s: worst relative error %.3g > 1e-9", vers[v], files[f], worst);
            cJSON_Delete(fx);
        }
    CHECK_EQ_INT(files_checked, 10);
}

static os_model templar_model(os_version v) {
    os_model m;
    os_model_init(&m, OS_PLACKETT_LUCE, v);
    m.beta = 7;
    m.tau = 0.1;
    return m;
}

/* docs/OPENSKILL.md 5.5, every intermediate worked by hand there. */
TEST(openskill_templar_worked_example) {
    os_model m = templar_model(OS_V6_1_3);
    os_rating in[3] = {{25, 25.0 / 3.0}, {30, 5}, {20, 7}}, out[3];
    int sizes[3] = {1, 1, 1};
    double scores[3] = {0.02, -0.01, 0.005};
    os_match mt = {.nteams = 3, .team_sizes = sizes, .ratings = in, .scores = scores, .limit_sigma = -1};
    ts_err e = {0};
    REQUIRE(os_rate(&m, &mt, out, &e) == TS_OK);
    CHECK_NEAR(out[0].mu, 27.75493064143286, 1e-12);
    CHECK_NEAR(out[0].sigma, 8.22653738899004, 1e-12);
    CHECK_NEAR(os_ordinal(out[0]), 3.075318474462737, 1e-12);
    CHECK_NEAR(out[1].mu, 28.419505071283737, 1e-12);
    CHECK_NEAR(out[1].sigma, 4.970878960456462, 1e-12);
    CHECK_NEAR(os_ordinal(out[1]), 13.506868189914352, 1e-12);
    CHECK_NEAR(out[2].mu, 21.153167557691077, 1e-12);
    CHECK_NEAR(out[2].sigma, 6.899823118085989, 1e-12);
    /* the input is never changed */
    CHECK(in[0].mu == 25 && in[1].sigma == 5);
    /* a fresh rating's ordinal is exactly 0 */
    CHECK(os_ordinal((os_rating){25.0, 25.0 / 3.0}) == 0.0);
}

/* 5.2: the tie rule, the one formula difference between the releases. */
TEST(openskill_tie_rule_6_1_3_vs_6_2_0) {
    os_rating in[4] = {{25, 25.0 / 3}, {25, 25.0 / 3}, {25, 25.0 / 3}, {25, 25.0 / 3}}, a[4], b[4], c[4];
    int sizes[4] = {1, 1, 1, 1};
    double scores[4] = {1, 1, 0.5, 0.2};
    os_match mt = {.nteams = 4, .team_sizes = sizes, .ratings = in, .scores = scores, .limit_sigma = -1};
    ts_err e = {0};
    os_model m1 = templar_model(OS_V6_1_3), m2 = templar_model(OS_V6_2_0);
    REQUIRE(os_rate(&m1, &mt, a, &e) == TS_OK);
    REQUIRE(os_rate(&m2, &mt, b, &e) == TS_OK);
    CHECK_NEAR(a[0].mu, 27.393071, 5e-7);
    CHECK_NEAR(a[1].mu, 27.393071, 5e-7);
    CHECK_NEAR(b[0].mu, 25.797690, 5e-7);
    CHECK(a[0].mu == a[1].mu && b[0].mu == b[1].mu);
    /* 6.1.3: a tied winner gets what an untied winner gets */
    double s3[4] = {1, 0.9, 0.5, 0.2};
    os_match m3 = {.nteams = 4, .team_sizes = sizes, .ratings = in, .scores = s3, .limit_sigma = -1};
    REQUIRE(os_rate(&m1, &m3, c, &e) == TS_OK);
    CHECK_NEAR(c[0].mu, a[0].mu, 1e-12);
    /* 6.2.0: tied winners get what the third-placed team gets */
    CHECK_NEAR(b[0].mu, b[2].mu, 1e-12);
}

/* 3.3: in 6.1.3 a score of exactly 0 at position i >= 1 ranks as -i. */
TEST(openskill_zero_score_quirk) {
    os_rating in[3] = {{25, 25.0 / 3}, {25, 25.0 / 3}, {25, 25.0 / 3}}, a[3], b[3], c[3];
    int sizes[3] = {1, 1, 1};
    double zero[3] = {0.01, 0.0, -0.5};  /* 6.1.3 keys: -0.01, 1, 0.5 -> the zero is last */
    double same[3] = {0.01, -0.9, -0.5}; /* what 6.1.3 makes of it */
    ts_err e = {0};
    os_model m1 = templar_model(OS_V6_1_3), m2 = templar_model(OS_V6_2_0);
    os_match mt = {.nteams = 3, .team_sizes = sizes, .ratings = in, .scores = zero, .limit_sigma = -1};
    os_match ms = {.nteams = 3, .team_sizes = sizes, .ratings = in, .scores = same, .limit_sigma = -1};
    REQUIRE(os_rate(&m1, &mt, a, &e) == TS_OK);
    REQUIRE(os_rate(&m1, &ms, b, &e) == TS_OK);
    REQUIRE(os_rate(&m2, &mt, c, &e) == TS_OK);
    CHECK(a[1].mu == b[1].mu && a[2].mu == b[2].mu);
    CHECK(a[1].mu < a[2].mu);  /* 6.1.3: zero ranked last */
    CHECK(c[1].mu > c[2].mu);  /* 6.2.0: zero ranked second, as its value says */
}

TEST(openskill_rejects_bad_input) {
    os_model m = templar_model(OS_V6_1_3);
    os_rating in[2] = {{25, 25.0 / 3}, {25, 25.0 / 3}}, out[2];
    int sizes[2] = {1, 1}, bad_sizes[2] = {1, 0};
    double sc[2] = {1, 2}, nan_sc[2] = {NAN, 1};
    ts_err e = {0};
    os_match one = {.nteams = 1, .team_sizes = sizes, .ratings = in, .limit_sigma = -1};
    CHECK_ERR(os_rate(&m, &one, out, &e), TS_EINVAL);
    os_match both = {.nteams = 2, .team_sizes = sizes, .ratings = in, .ranks = sc, .scores = sc, .limit_sigma = -1};
    CHECK_ERR(os_rate(&m, &both, out, &e), TS_EINVAL);
    os_match empty = {.nteams = 2, .team_sizes = bad_sizes, .ratings = in, .limit_sigma = -1};
    CHECK_ERR(os_rate(&m, &empty, out, &e), TS_EINVAL);
    os_match nan = {.nteams = 2, .team_sizes = sizes, .ratings = in, .scores = nan_sc, .limit_sigma = -1};
    CHECK_ERR(os_rate(&m, &nan, out, &e), TS_EINVAL);
    os_rating huge[2] = {{1e6, 1}, {0, 1}};
    os_match of = {.nteams = 2, .team_sizes = sizes, .ratings = huge, .limit_sigma = -1};
    CHECK_ERR(os_rate(&m, &of, out, &e), TS_EINVAL); /* exp overflow: the library raises */
}

TEST(openskill_tau_zero_means_default_and_limit_sigma) {
    os_model m = templar_model(OS_V6_1_3);
    os_rating in[2] = {{40, 3}, {-20, 3}}, a[2], b[2], c[2];
    int sizes[2] = {1, 1};
    double zero = 0.0, big = 0.3;
    ts_err e = {0};
    os_match mt = {.nteams = 2, .team_sizes = sizes, .ratings = in, .limit_sigma = -1};
    REQUIRE(os_rate(&m, &mt, a, &e) == TS_OK);
    mt.tau = &zero;
    REQUIRE(os_rate(&m, &mt, b, &e) == TS_OK);
    CHECK(a[0].mu == b[0].mu && a[1].sigma == b[1].sigma); /* rate(tau=0) uses the model's tau */
    mt.tau = &big;
    mt.limit_sigma = 1;
    REQUIRE(os_rate(&m, &mt, c, &e) == TS_OK);
    CHECK(c[0].sigma == 3 && c[1].sigma == 3); /* sigma never rises above its input */
}

TEST(openskill_predictions) {
    os_model m;
    os_model_init(&m, OS_PLACKETT_LUCE, OS_V6_1_3);
    CHECK_NEAR(os_phi_major_inverse(0.975), 1.959963984540054, 1e-15);
    CHECK_NEAR(os_phi_major_inverse(0.5), 0.0, 0);
    CHECK_NEAR(os_phi_major_inverse(1e-10), -6.361340902404056, 1e-13);
    CHECK_NEAR(os_phi_major(0), 0.5, 0);
    os_rating r[5] = {{25, 25.0 / 3}, {32.444, 5.123}, {73.381, 1.421}, {25.188, 6.211}, {25, 25.0 / 3}};
    int sizes[3] = {2, 2, 1};
    double win[3], prob[3], draw;
    int rank[3];
    ts_err e = {0};
    REQUIRE(os_predict_win(&m, 3, sizes, r, win, &e) == TS_OK);
    CHECK_NEAR(win[0] + win[1] + win[2], 1.0, 1e-15);
    CHECK(win[1] > win[0] && win[0] > win[2]);
    REQUIRE(os_predict_rank(&m, 3, sizes, r, rank, prob, &e) == TS_OK);
    CHECK(rank[1] == 1 && rank[0] == 2 && rank[2] == 3);
    /* equal teams share a rank */
    int s2[2] = {1, 1};
    os_rating eq[2] = {{25, 8}, {25, 8}};
    REQUIRE(os_predict_rank(&m, 2, s2, eq, rank, prob, &e) == TS_OK);
    CHECK(rank[0] == 1 && rank[1] == 1);
    CHECK_NEAR(prob[0], 0.5, 0);
    REQUIRE(os_predict_win(&m, 2, s2, eq, win, &e) == TS_OK);
    CHECK_NEAR(win[0], 0.5, 0);
    /* draw: two identical players draw with the probability
     * 2 Phi(dm / den) - 1 where dm = sqrt(2) beta PhiInv(0.75) */
    REQUIRE(os_predict_draw(&m, 2, s2, eq, &draw, &e) == TS_OK);
    double dm = sqrt(2.0) * m.beta * os_phi_major_inverse(0.75);
    double den = sqrt(2 * m.beta * m.beta + 64 + 64);
    CHECK_NEAR(draw, os_phi_major(dm / den) - os_phi_major(-dm / den), 1e-15);
}

/* Templar's match: 15 one-player teams, scores with ties (the float32
 * rounding of close scores, the -99 penalty score of the newer code) and
 * exact zeros, chained over 100 windows.  Every rating stays finite, sigma
 * stays in (0, prior], ordinals stay bounded, and a rerun is bit-identical. */
static void chain(os_version v, os_rating *r, int n, int windows, uint64_t seed) {
    os_model m = templar_model(v);
    for (int i = 0; i < n; i++) r[i] = (os_rating){25, 25.0 / 3};
    uint8_t sd[32] = {0};
    memcpy(sd, &seed, sizeof seed);
    uint32_t *rnd = malloc((size_t)windows * 15 * 2 * sizeof *rnd);
    ts_det_bytes(rnd, (size_t)windows * 15 * 2 * sizeof *rnd, sd);
    for (int w = 0; w < windows; w++) {
        int idx[15], sizes[15];
        os_rating in[15], out[15];
        double sc[15];
        for (int j = 0; j < 15; j++) {
            idx[j] = (int)((w * 7 + j * 3) % n); /* a rotating subset */
            for (int k = 0; k < j; k++)
                if (idx[k] == idx[j]) idx[j] = (idx[j] + 1) % n;
            uint32_t x = rnd[(w * 15 + j) * 2], y = rnd[(w * 15 + j) * 2 + 1];
            /* quality grows with the index; some exact zeros and ties */
            double q = (idx[j] + 1) * 1e-4 + (double)(x % 1000) * 1e-7;
            if (y % 7 == 0) q = 0.0;
            else if (y % 11 == 0) q = -99.0;
            else if (y % 5 == 0) q = 0.003;
            sc[j] = (double)(float)q;
            in[j] = r[idx[j]];
            sizes[j] = 1;
        }
        os_match mt = {.nteams = 15, .team_sizes = sizes, .ratings = in, .scores = sc, .limit_sigma = -1};
        ts_err e = {0};
        if (os_rate(&m, &mt, out, &e)) {
            th_fail(__FILE__, __LINE__, "window %d: %s", w, e.msg);
            break;
        }
        for (int j = 0; j < 15; j++) r[idx[j]] = out[j];
    }
    free(rnd);
}

TEST(openskill_templar_chain_100_windows_stable) {
    for (int v = 0; v < 2; v++) {
        os_rating a[40], b[40];
        chain(v ? OS_V6_2_0 : OS_V6_1_3, a, 40, 100, 7);
        chain(v ? OS_V6_2_0 : OS_V6_1_3, b, 40, 100, 7);
        CHECK(memcmp(a, b, sizeof a) == 0); /* deterministic */
        double lo_mean = 0, hi_mean = 0;
        for (int i = 0; i < 40; i++) {
            CHECK_MSG(isfinite(a[i].mu) && isfinite(a[i].sigma), "uid %d not finite", i);
            CHECK_MSG(a[i].sigma > 0.5 && a[i].sigma <= 25.0 / 3 + 1e-9, "uid %d sigma %g", i, a[i].sigma);
            CHECK_MSG(fabs(a[i].mu) < 200, "uid %d mu %g", i, a[i].mu);
            if (i < 10) lo_mean += a[i].mu / 10;
            if (i >= 30) hi_mean += a[i].mu / 10;
        }
        /* the better (higher-index) players end with the higher ratings */
        CHECK_MSG(hi_mean > lo_mean + 1, "hi %g lo %g", hi_mean, lo_mean);
    }
}
