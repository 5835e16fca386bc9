/* test_gauntlet.c - the scoring engine: every score and penalty of PROTOCOL
 * section 9 with hand-worked numbers, the weights, the peer list, the
 * selection, the parameter file, the state file (round trip, corruption,
 * crash safety) and the simulator's headline property. */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/common.h"
#include "gauntlet/gauntlet.h"
#include "harness.h"

/* ------------------------------------------------------------ helpers */

/* The rules before Templar's final release, for the hand-worked tests
 * written for them (each rule they leave out has its own test below, under
 * the defaults: PF()). */
static gauntlet_params P(void) {
    gauntlet_params p;
    gauntlet_params_default(&p);
    p.sync_cap_steps = 5;
    p.sync_poor_steps = 3;
    p.copycat_ban_windows = 200;
    p.copycat_start_windows = 0;
    p.gradient_cap = 0;
    p.bma_threshold = 0;
    p.missing_in_match = false;
    p.weights_interval = 2;
    p.negative_slash_count = p.negative_history; /* never */
    p.negative_exclude_consecutive = 0;
    p.newcomer_eval_slots = 0;
    p.newcomer_slots = 0;
    p.reserve_cap = false;
    return p;
}

/* The defaults: Templar's final rules and Tessera's newcomer rules. */
static gauntlet_params PF(void) {
    gauntlet_params p;
    gauntlet_params_default(&p);
    return p;
}

static gauntlet_reg reg_of(uint32_t uid, bool active) {
    gauntlet_reg r;
    memset(&r, 0, sizeof r);
    r.uid = uid;
    memcpy(r.hotkey, &uid, sizeof uid);
    r.active = active;
    return r;
}

/* An evaluation: relative improvements on random and own data, steps behind. */
static gauntlet_eval ev_of(uint32_t uid, double rand_imp, double own_imp, double steps) {
    gauntlet_eval x = {.uid = uid, .status = GAUNTLET_UPLOAD_OK, .steps_behind = steps};
    x.loss_rand_before = 24.0;
    x.loss_rand_after = 24.0 * (1 - rand_imp);
    x.loss_own_before = 20.0;
    x.loss_own_after = 20.0 * (1 - own_imp);
    return x;
}

static gauntlet_eval ev_status(uint32_t uid, gauntlet_upload st) {
    gauntlet_eval x = {.uid = uid, .status = st, .steps_behind = NAN};
    return x;
}

/* Registers uids 1..n (active unless inactive[uid]) and applies one window,
 * with the gather's outcome (ok / missed, may be empty). */
static int apply_full(gauntlet_state *s, const gauntlet_params *p, uint64_t w, uint32_t n,
                      const gauntlet_eval *ev, size_t nev, const gauntlet_overlap *ov, size_t nov,
                      const bool *inactive, const uint32_t *ok, size_t nok, const uint32_t *missed,
                      size_t nmissed) {
    gauntlet_reg reg[64];
    for (uint32_t i = 0; i < n; i++) reg[i] = reg_of(i + 1, !(inactive && inactive[i + 1]));
    gauntlet_window_input in = {.window = w, .evals = ev, .n_evals = nev, .overlaps = ov,
                                .n_overlaps = nov, .registered = reg, .n_registered = n,
                                .gather_ok = ok, .n_gather_ok = nok, .gather_missed = missed,
                                .n_gather_missed = nmissed};
    ts_err e = {0};
    int rc = gauntlet_update(s, p, &in, &e);
    if (rc) fprintf(stderr, "update: %s\n", e.msg);
    return rc;
}

/* Registers uids 1..n (all active) and applies one window. */
static int apply(gauntlet_state *s, const gauntlet_params *p, uint64_t w, uint32_t n,
                 const gauntlet_eval *ev, size_t nev, const gauntlet_overlap *ov, size_t nov,
                 const bool *inactive) {
    return apply_full(s, p, w, n, ev, nev, ov, nov, inactive, NULL, 0, NULL, 0);
}

static gauntlet_uid *U(gauntlet_state *s, uint32_t uid) { return gauntlet_state_find(s, uid); }

/* ------------------------------------------------------------ scores */

TEST(gauntlet_scores_hand_worked) {
    gauntlet_params p = P();
    gauntlet_state s;
    gauntlet_state_init(&s);
    /* uid 1: random data 24 -> 23.76 (1 %), own 20 -> 19.6 (2 %): indicator +1;
     * uid 2: random 0.5 %, own 0.25 %: indicator -1.  Steps behind 1 and 2.5. */
    gauntlet_eval ev[2] = {ev_of(1, 0.01, 0.02, 1.0), ev_of(2, 0.005, 0.0025, 2.5)};
    REQUIRE(apply(&s, &p, 10, 2, ev, 2, NULL, 0, NULL) == TS_OK);
    gauntlet_uid *a = U(&s, 1), *b = U(&s, 2);
    REQUIRE(a && b);
    CHECK(a->gradient_score == (double)(float)((24.0 - 24.0 * 0.99) / 24.0));
    CHECK_NEAR(a->gradient_score, 0.01, 1e-8);
    CHECK(a->indicator == 1 && b->indicator == -1);
    CHECK_NEAR(a->binary_ma, 0.05, 1e-15);   /* 0.95 * 0 + 0.05 * 1 */
    CHECK_NEAR(b->binary_ma, -0.05, 1e-15);
    CHECK_NEAR(a->sync_score, pow(0.8, 2.5), 1e-15);  /* (1 - 1/5)^2.5 = 0.57243... */
    CHECK_NEAR(a->sync_score, 0.5724334022399462, 1e-15);
    CHECK_NEAR(b->sync_score, 0.1767766952966369, 1e-15); /* (1 - 2.5/5)^2.5 */
    /* the match: the same as rating the pair directly with Templar's model */
    os_model m;
    gauntlet_params_model(&p, &m);
    CHECK(m.beta == 7 && m.tau == 0.1 && m.kind == OS_PLACKETT_LUCE && m.version == OS_V6_1_3);
    os_rating in[2] = {{25, 25.0 / 3}, {25, 25.0 / 3}}, out[2];
    int sizes[2] = {1, 1};
    double sc[2] = {a->gradient_score, b->gradient_score};
    os_match mt = {.nteams = 2, .team_sizes = sizes, .ratings = in, .scores = sc, .limit_sigma = -1};
    ts_err e = {0};
    REQUIRE(os_rate(&m, &mt, out, &e) == TS_OK);
    CHECK(a->rating.mu == out[0].mu && a->rating.sigma == out[0].sigma);
    CHECK(b->rating.mu == out[1].mu);
    CHECK(os_ordinal(a->rating) > 0 && os_ordinal(b->rating) < 0);
    /* final = ordinal * max(0, bma) * sync, stored as float32 */
    CHECK(a->final_score == (double)(float)(os_ordinal(out[0]) * 0.05 * pow(0.8, 2.5)));
    CHECK(b->final_score == 0);  /* max(0, -0.05) = 0 */
    CHECK(a->last_eval_window == 10 && b->last_eval_window == 10);
    CHECK_EQ_INT(a->counts[GAUNTLET_CNT_EVALS], 1);
    gauntlet_state_free(&s);
}

TEST(gauntlet_sync_score_formula) {
    gauntlet_params p = P();
    static const double steps[] = {0, -1, 2.5, 4, 5, 7};
    static const double want[] = {1, 1, 0.1767766952966369, 0.01788854381999832, 0, 0};
    for (int i = 0; i < 6; i++) {
        gauntlet_state s;
        gauntlet_state_init(&s);
        gauntlet_eval ev[2] = {ev_of(1, 0.01, 0.02, steps[i]), ev_of(2, 0.005, 0.01, 0)};
        REQUIRE(apply(&s, &p, 1, 2, ev, 2, NULL, 0, NULL) == TS_OK);
        CHECK_NEAR(U(&s, 1)->sync_score, want[i], 1e-15);
        gauntlet_state_free(&s);
    }
}

/* Sets a uid's scores directly (after a first window registered it). */
static void seed_scores(gauntlet_state *s, uint32_t uid, double final, double bma) {
    gauntlet_uid *u = U(s, uid);
    u->final_score = final;
    u->binary_ma = bma;
}

TEST(gauntlet_penalty_missing_early_late_invalid) {
    gauntlet_params p = P();
    gauntlet_state s;
    gauntlet_state_init(&s);
    REQUIRE(apply(&s, &p, 1, 6, NULL, 0, NULL, 0, NULL) == TS_OK);
    seed_scores(&s, 1, 0.4, 0.5);
    seed_scores(&s, 2, 0.4, 0.5);
    seed_scores(&s, 3, 0.4, 0.5);
    seed_scores(&s, 4, 0.4, 0.5);
    seed_scores(&s, 5, -0.2, -0.3);  /* penalties multiply positive scores only */
    seed_scores(&s, 6, 0.00012, 0.5); /* pushed below the floor -> 0 */
    gauntlet_eval ev[6] = {ev_status(1, GAUNTLET_UPLOAD_MISSING), ev_status(2, GAUNTLET_UPLOAD_EARLY),
                           ev_status(3, GAUNTLET_UPLOAD_LATE), ev_status(4, GAUNTLET_UPLOAD_INVALID),
                           ev_status(5, GAUNTLET_UPLOAD_MISSING), ev_status(6, GAUNTLET_UPLOAD_LATE)};
    REQUIRE(apply(&s, &p, 2, 6, ev, 6, NULL, 0, NULL) == TS_OK);
    for (uint32_t u = 1; u <= 3; u++) {
        CHECK_NEAR(U(&s, u)->final_score, 0.3, 1e-15);  /* 0.4 x 0.75 */
        CHECK_NEAR(U(&s, u)->binary_ma, 0.375, 1e-15); /* 0.5 x 0.75 */
    }
    CHECK(U(&s, 1)->counts[GAUNTLET_CNT_MISSING] == 1 && U(&s, 2)->counts[GAUNTLET_CNT_EARLY] == 1 &&
          U(&s, 3)->counts[GAUNTLET_CNT_LATE] == 1);
    CHECK(U(&s, 4)->final_score == 0 && U(&s, 4)->binary_ma == 0.5); /* invalid: final 0 */
    CHECK(U(&s, 4)->last_penalties & GAUNTLET_PEN_INVALID);
    CHECK(U(&s, 5)->final_score == -0.2 && U(&s, 5)->binary_ma == -0.3);
    CHECK(U(&s, 6)->final_score == 0); /* 0.00012 x 0.75 = 0.00009 < 1e-4 */
    CHECK(U(&s, 6)->last_penalties & GAUNTLET_PEN_FLOOR);
    /* non-finite losses are an invalid upload (a NaN sender) */
    seed_scores(&s, 1, 0.4, 0.5);
    gauntlet_eval nan_ev = ev_of(1, 0.01, 0.02, 0);
    nan_ev.loss_rand_after = NAN;
    REQUIRE(apply(&s, &p, 3, 6, &nan_ev, 1, NULL, 0, NULL) == TS_OK);
    CHECK(U(&s, 1)->final_score == 0 && U(&s, 1)->counts[GAUNTLET_CNT_INVALID] == 1);
    gauntlet_state_free(&s);
}

TEST(gauntlet_penalty_poor_sync) {
    gauntlet_params p = P();
    gauntlet_state s;
    gauntlet_state_init(&s);
    /* uid 1 wins; 4 steps behind is poor sync (> 3): x 0.75 after the final */
    gauntlet_eval ev[2] = {ev_of(1, 0.01, 0.02, 4.0), ev_of(2, 0.005, 0.01, 0)};
    REQUIRE(apply(&s, &p, 1, 2, ev, 2, NULL, 0, NULL) == TS_OK);
    gauntlet_uid *a = U(&s, 1);
    double f = (double)(float)(os_ordinal(a->rating) * 0.05 * pow(0.2, 2.5));
    CHECK(f > 0);
    double want = f * 0.75;
    if (want < 1e-4) want = 0;
    CHECK_NEAR(a->final_score, want, 1e-18);
    CHECK_NEAR(a->binary_ma, 0.05 * 0.75, 1e-15);
    CHECK(a->counts[GAUNTLET_CNT_POOR_SYNC] == 1);
    /* exactly 3 steps is not poor; no sync record from the miner (+inf) is */
    gauntlet_eval ev2[2] = {ev_of(1, 0.01, 0.02, 3.0), ev_of(2, 0.005, 0.01, INFINITY)};
    REQUIRE(apply(&s, &p, 2, 2, ev2, 2, NULL, 0, NULL) == TS_OK);
    CHECK(U(&s, 1)->counts[GAUNTLET_CNT_POOR_SYNC] == 1);
    CHECK(U(&s, 2)->counts[GAUNTLET_CNT_POOR_SYNC] == 1 && U(&s, 2)->sync_score == 0);
    double sync1 = U(&s, 1)->sync_score;
    CHECK_NEAR(sync1, pow(1 - 3.0 / 5, 2.5), 1e-15);
    /* a sync the validator could not measure (NaN) is not the miner's
     * fault: its last measure stands and nothing is charged */
    gauntlet_eval ev3[2] = {ev_of(1, 0.01, 0.02, NAN), ev_of(2, 0.005, 0.01, NAN)};
    REQUIRE(apply(&s, &p, 3, 2, ev3, 2, NULL, 0, NULL) == TS_OK);
    CHECK(U(&s, 1)->sync_score == sync1 && U(&s, 1)->steps_behind == 3.0);
    CHECK(U(&s, 1)->counts[GAUNTLET_CNT_POOR_SYNC] == 1 && U(&s, 2)->counts[GAUNTLET_CNT_POOR_SYNC] == 1);
    CHECK(U(&s, 1)->final_score > 0);
    gauntlet_state_free(&s);
}

TEST(gauntlet_penalty_inactivity_and_reset) {
    gauntlet_params p = P();
    gauntlet_state s;
    gauntlet_state_init(&s);
    gauntlet_eval ev[2] = {ev_of(1, 0.01, 0.02, 0), ev_of(2, 0.005, 0.01, 0)};
    REQUIRE(apply(&s, &p, 1, 2, ev, 2, NULL, 0, NULL) == TS_OK);
    seed_scores(&s, 1, 0.4, 0.5);
    os_rating before = U(&s, 1)->rating;
    bool inactive[3] = {false, true, false};
    double want[3] = {0.3, 0.225, 0.16875};
    for (int i = 0; i < 3; i++) {
        REQUIRE(apply(&s, &p, 2 + (uint64_t)i, 2, NULL, 0, NULL, 0, inactive) == TS_OK);
        CHECK_NEAR(U(&s, 1)->final_score, want[i], 1e-15);
        CHECK_EQ_INT(U(&s, 1)->inactive_windows, i + 1);
    }
    CHECK(U(&s, 1)->rating.mu == before.mu); /* the rating is not a score */
    /* the fourth inactive window (longer than 3): full reset */
    REQUIRE(apply(&s, &p, 5, 2, NULL, 0, NULL, 0, inactive) == TS_OK);
    gauntlet_uid *u = U(&s, 1);
    CHECK(u->final_score == 0 && u->binary_ma == 0 && u->sync_score == 0 && u->gradient_score == 0);
    CHECK(u->rating.mu == 25 && u->rating.sigma == 25.0 / 3);
    CHECK(u->last_eval_window == GAUNTLET_NEVER);
    CHECK_EQ_INT(u->counts[GAUNTLET_CNT_INACTIVE_RESET], 1);
    CHECK_EQ_INT(u->counts[GAUNTLET_CNT_EVALS], 1); /* history survives a reset */
    /* uploading again clears the counter */
    REQUIRE(apply(&s, &p, 6, 2, NULL, 0, NULL, 0, NULL) == TS_OK);
    CHECK_EQ_INT(U(&s, 1)->inactive_windows, 0);
    gauntlet_state_free(&s);
}

TEST(gauntlet_penalty_copycat_tiers_ban_and_reregistration) {
    gauntlet_params p = P();
    gauntlet_state s;
    gauntlet_state_init(&s);
    REQUIRE(apply(&s, &p, 1, 8, NULL, 0, NULL, 0, NULL) == TS_OK);
    for (uint32_t u = 1; u <= 8; u++) seed_scores(&s, u, 0.4, 0.5);
    /* later uploaders 2, 4, 6 at 0.45 (slash), 0.55 (reset), 0.65 (ban);
     * 8 is charged twice: its highest overlap counts, once */
    gauntlet_overlap ov[5] = {{1, 2, 0.45, 2}, {3, 4, 0.55, 4}, {5, 6, 0.65, 6},
                              {7, 8, 0.41, 8}, {1, 8, 0.39, 8}};
    REQUIRE(apply(&s, &p, 2, 8, NULL, 0, ov, 5, NULL) == TS_OK);
    CHECK_NEAR(U(&s, 2)->final_score, 0.2, 1e-15);  /* x 0.5 */
    CHECK_NEAR(U(&s, 2)->binary_ma, 0.25, 1e-15);
    CHECK(U(&s, 1)->final_score == 0.4);             /* the earlier uploader is untouched */
    CHECK(U(&s, 4)->final_score == 0 && U(&s, 4)->binary_ma == 0 && U(&s, 4)->rating.mu == 25);
    CHECK(!gauntlet_is_banned(U(&s, 4), 3));
    CHECK(U(&s, 6)->final_score == 0 && gauntlet_is_banned(U(&s, 6), 2));
    CHECK(U(&s, 6)->ban_until == 2 + 1 + 200);
    CHECK(gauntlet_is_banned(U(&s, 6), 202) && !gauntlet_is_banned(U(&s, 6), 203));
    CHECK_NEAR(U(&s, 8)->final_score, 0.2, 1e-15); /* one slash, not two */
    CHECK_EQ_INT(U(&s, 8)->counts[GAUNTLET_CNT_COPY_SLASH], 1);
    CHECK_NEAR(U(&s, 8)->last_overlap, 0.41, 0);
    /* a banned uid's evaluation is ignored; it is never selected nor weighted */
    gauntlet_eval ev[2] = {ev_of(6, 0.05, 0.1, 0), ev_of(1, 0.01, 0.02, 0)};
    REQUIRE(apply(&s, &p, 3, 8, ev, 2, NULL, 0, NULL) == TS_OK);
    CHECK(U(&s, 6)->final_score == 0 && U(&s, 6)->counts[GAUNTLET_CNT_EVALS] == 0);
    gauntlet_reg reg[8];
    for (uint32_t i = 0; i < 8; i++) reg[i] = reg_of(i + 1, true);
    uint32_t sel[16];
    size_t nsel;
    ts_err e = {0};
    for (uint64_t seed = 0; seed < 20; seed++) {
        REQUIRE(gauntlet_select(&s, &p, reg, 8, 4, seed, sel, &nsel, &e) == TS_OK);
        CHECK_EQ_INT(nsel, 7);
        for (size_t i = 0; i < nsel; i++) CHECK(sel[i] != 6);
    }
    /* re-registration (a new hotkey on uid 6) clears the ban and the state */
    reg[5].hotkey[31] ^= 1;
    gauntlet_window_input in = {.window = 4, .registered = reg, .n_registered = 8};
    REQUIRE(gauntlet_update(&s, &p, &in, &e) == TS_OK);
    CHECK(!gauntlet_is_banned(U(&s, 6), 4) && U(&s, 6)->counts[GAUNTLET_CNT_COPY_BAN] == 0);
    CHECK(U(&s, 6)->first_seen_window == 4 && (U(&s, 6)->last_penalties & GAUNTLET_PEN_REREGISTERED));
    /* a deregistered uid is dropped */
    gauntlet_window_input in2 = {.window = 5, .registered = reg, .n_registered = 7};
    REQUIRE(gauntlet_update(&s, &p, &in2, &e) == TS_OK);
    CHECK(U(&s, 8) == NULL && s.n == 7);
    gauntlet_state_free(&s);
}

TEST(gauntlet_update_rejects_bad_input_and_replays) {
    gauntlet_params p = P();
    gauntlet_state s;
    gauntlet_state_init(&s);
    gauntlet_eval ev[2] = {ev_of(1, 0.01, 0.02, 0), ev_of(2, 0.005, 0.01, 0)};
    REQUIRE(apply(&s, &p, 5, 2, ev, 2, NULL, 0, NULL) == TS_OK);
    uint8_t *a, *b;
    size_t la, lb;
    ts_err e = {0};
    REQUIRE(gauntlet_state_serialize(&s, &a, &la, &e) == TS_OK);
    CHECK_EQ_INT(apply(&s, &p, 5, 2, ev, 2, NULL, 0, NULL), TS_ESTATE); /* never twice */
    CHECK_EQ_INT(apply(&s, &p, 4, 2, ev, 2, NULL, 0, NULL), TS_ESTATE);
    gauntlet_eval dup[2] = {ev_of(1, 0.01, 0.02, 0), ev_of(1, 0.005, 0.01, 0)};
    CHECK_EQ_INT(apply(&s, &p, 6, 2, dup, 2, NULL, 0, NULL), TS_EINVAL);
    gauntlet_eval bad = ev_of(1, 0.01, 0.02, 0);
    bad.status = (gauntlet_upload)9;
    CHECK_EQ_INT(apply(&s, &p, 6, 2, &bad, 1, NULL, 0, NULL), TS_EINVAL);
    gauntlet_overlap ov = {1, 2, 1.5, 2};
    CHECK_EQ_INT(apply(&s, &p, 6, 2, NULL, 0, &ov, 1, NULL), TS_EINVAL);
    gauntlet_overlap ov2 = {1, 2, 0.5, 3};
    CHECK_EQ_INT(apply(&s, &p, 6, 2, NULL, 0, &ov2, 1, NULL), TS_EINVAL);
    REQUIRE(gauntlet_state_serialize(&s, &b, &lb, &e) == TS_OK);
    CHECK(la == lb && memcmp(a, b, la) == 0); /* nothing changed */
    free(a);
    free(b);
    gauntlet_state_free(&s);
}

/* ------------------------------------------------------------ weights */

static void state_with_scores(gauntlet_state *s, int n, const double *scores) {
    gauntlet_state_init(s);
    s->window = 100;
    s->uids = calloc((size_t)n, sizeof *s->uids);
    s->n = s->cap = (size_t)n;
    for (int i = 0; i < n; i++) {
        s->uids[i].uid = (uint32_t)i + 1;
        s->uids[i].final_score = scores[i];
        s->uids[i].rating = (os_rating){25, 25.0 / 3};
        s->uids[i].last_eval_window = GAUNTLET_NEVER;
    }
}

static double weight_of(const uint32_t *u, const double *w, size_t n, uint32_t uid) {
    for (size_t i = 0; i < n; i++)
        if (u[i] == uid) return w[i];
    return 0;
}

TEST(gauntlet_weights_tiers_ramp_decay) {
    gauntlet_params p = P();
    double sc[45];
    for (int i = 0; i < 40; i++) sc[i] = 1.0 + i; /* uid 40 best ... uid 1 worst */
    sc[40] = 0;
    sc[41] = -3;
    sc[42] = 0;
    sc[43] = -1e-9;
    sc[44] = 0.5;
    gauntlet_state s;
    state_with_scores(&s, 45, sc);
    uint32_t u[64];
    double w[64];
    size_t n;
    ts_err e = {0};
    REQUIRE(gauntlet_weights(&s, &p, u, w, 64, &n, &e) == TS_OK);
    CHECK_EQ_INT(n, 30);
    double sum = 0, gsum = 0, rsum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += w[i];
        CHECK(i == 0 || u[i] > u[i - 1]); /* sorted by uid */
    }
    CHECK_NEAR(sum, 1.0, 1e-12);
    /* gather: uids 40..21, ramp from 2 to 1 in equal steps */
    double w0 = weight_of(u, w, n, 40), w19 = weight_of(u, w, n, 21);
    CHECK_NEAR(w0 / w19, 2.0, 1e-12);
    CHECK_NEAR(w0, 0.75 * 2.0 / 30.0, 1e-15); /* ramp sum = 20 * 1.5 = 30 */
    for (uint32_t k = 40; k >= 21; k--) {
        gsum += weight_of(u, w, n, k);
        if (k < 40)
            CHECK_NEAR(weight_of(u, w, n, k + 1) - weight_of(u, w, n, k), 0.75 / 30.0 / 19.0, 1e-15);
    }
    CHECK_NEAR(gsum, 0.75, 1e-12);
    /* reserve: uids 20..11, each half the one before */
    for (uint32_t k = 20; k >= 11; k--) {
        rsum += weight_of(u, w, n, k);
        if (k < 20) CHECK_NEAR(weight_of(u, w, n, k) / weight_of(u, w, n, k + 1), 0.5, 1e-12);
    }
    CHECK_NEAR(rsum, 0.25, 1e-12);
    CHECK_NEAR(weight_of(u, w, n, 20), 0.25 / (2 - pow(0.5, 9)), 1e-15);
    /* the rest, and every non-positive score, get nothing */
    for (uint32_t k = 1; k <= 10; k++) CHECK(weight_of(u, w, n, k) == 0);
    for (uint32_t k = 41; k <= 45; k++) CHECK(weight_of(u, w, n, k) == 0);
    /* peer list: top 20 best first, then 10 reserves */
    uint32_t g[64], r[64];
    size_t ng, nr;
    REQUIRE(gauntlet_peers(&s, &p, g, &ng, r, &nr, &e) == TS_OK);
    CHECK(ng == 20 && nr == 10 && g[0] == 40 && g[19] == 21 && r[0] == 20 && r[9] == 11);
    /* banned miners earn nothing */
    s.uids[39].ban_until = 500;
    REQUIRE(gauntlet_weights(&s, &p, u, w, 64, &n, &e) == TS_OK);
    CHECK(weight_of(u, w, n, 40) == 0 && weight_of(u, w, n, 10) > 0);
    /* too little room is an error, not a truncation */
    CHECK_ERR(gauntlet_weights(&s, &p, u, w, 10, &n, &e), TS_EINVAL);
    gauntlet_state_free(&s);
}

TEST(gauntlet_weights_fewer_miners_burn_and_cap) {
    gauntlet_params p = P();
    uint32_t u[64];
    double w[64];
    size_t n;
    ts_err e = {0};
    gauntlet_state s;
    /* 5 miners: the gather tier alone gets everything, ramp 2 .. 1 */
    double five[5] = {5, 4, 3, 2, 1};
    state_with_scores(&s, 5, five);
    REQUIRE(gauntlet_weights(&s, &p, u, w, 64, &n, &e) == TS_OK);
    CHECK_EQ_INT(n, 5);
    CHECK_NEAR(w[0], 2.0 / 7.5, 1e-15);  /* ramp 2, 1.75, 1.5, 1.25, 1 sums to 7.5 */
    CHECK_NEAR(w[4], 1.0 / 7.5, 1e-15);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += w[i];
    CHECK_NEAR(sum, 1.0, 1e-15);
    gauntlet_state_free(&s);
    /* one miner takes everything */
    double one[1] = {0.3};
    state_with_scores(&s, 1, one);
    REQUIRE(gauntlet_weights(&s, &p, u, w, 64, &n, &e) == TS_OK);
    CHECK(n == 1 && u[0] == 1 && w[0] == 1.0);
    gauntlet_state_free(&s);
    /* 25 miners: 75 % / 25 % with a short reserve tier */
    double tf[25];
    for (int i = 0; i < 25; i++) tf[i] = 100 - i;
    state_with_scores(&s, 25, tf);
    REQUIRE(gauntlet_weights(&s, &p, u, w, 64, &n, &e) == TS_OK);
    double gs = 0, rs = 0;
    for (size_t i = 0; i < n; i++) *(u[i] <= 20 ? &gs : &rs) += w[i];
    CHECK_NEAR(gs, 0.75, 1e-12);
    CHECK_NEAR(rs, 0.25, 1e-12);
    CHECK_NEAR(weight_of(u, w, n, 21), 0.25 / (1 + 0.5 + 0.25 + 0.125 + 0.0625), 1e-15);
    /* burn 10 % to uid 0 */
    p.burn_share = 0.1;
    REQUIRE(gauntlet_weights(&s, &p, u, w, 64, &n, &e) == TS_OK);
    gs = rs = 0;
    double burn = 0;
    for (size_t i = 0; i < n; i++) *(u[i] == 0 ? &burn : u[i] <= 20 ? &gs : &rs) += w[i];
    CHECK_NEAR(burn, 0.1, 0);
    CHECK_NEAR(gs, 0.675, 1e-12);
    CHECK_NEAR(rs, 0.225, 1e-12);
    /* Templar's guard: the reserve never exceeds the last gather weight */
    p.reserve_cap = true;
    REQUIRE(gauntlet_weights(&s, &p, u, w, 64, &n, &e) == TS_OK);
    sum = 0;
    for (size_t i = 0; i < n; i++) sum += w[i];
    CHECK_NEAR(sum, 1.0, 1e-12);
    CHECK(weight_of(u, w, n, 21) <= weight_of(u, w, n, 20) + 1e-15);
    CHECK_NEAR(weight_of(u, w, n, 0), 0.1, 0);
    gauntlet_state_free(&s);
    /* nobody with a positive score: everything to the burn uid */
    p = P();
    double none[3] = {0, -1, 0};
    state_with_scores(&s, 3, none);
    REQUIRE(gauntlet_weights(&s, &p, u, w, 64, &n, &e) == TS_OK);
    CHECK(n == 1 && u[0] == 0 && w[0] == 1.0);
    gauntlet_state_free(&s);
}

/* ------------------------------------------------------------ selection */

TEST(gauntlet_selection_weighted_binned_deterministic) {
    gauntlet_params p = P();
    gauntlet_state s;
    double sc[30] = {0};
    state_with_scores(&s, 30, sc);
    for (int i = 0; i < 30; i++) {
        s.uids[i].last_eval_window = 99; /* evaluated last window */
        memcpy(s.uids[i].hotkey, &s.uids[i].uid, 4);
    }
    s.uids[6].last_eval_window = 20; /* uid 7: not evaluated for 80 windows */
    gauntlet_reg reg[100];
    for (uint32_t i = 0; i < 30; i++) reg[i] = reg_of(i + 1, true);
    uint32_t a[32], b[32];
    size_t na, nb;
    ts_err e = {0};
    int picked7 = 0, picked8 = 0;
    for (uint64_t seed = 0; seed < 200; seed++) {
        REQUIRE(gauntlet_select(&s, &p, reg, 30, 100, seed, a, &na, &e) == TS_OK);
        REQUIRE(gauntlet_select(&s, &p, reg, 30, 100, seed, b, &nb, &e) == TS_OK);
        CHECK(na == 15 && nb == 15 && memcmp(a, b, sizeof(uint32_t) * 15) == 0);
        for (size_t i = 0; i < na; i++) {
            for (size_t j = 0; j < i; j++) CHECK(a[i] != a[j]);
            picked7 += a[i] == 7;
            picked8 += a[i] == 8;
        }
    }
    CHECK_MSG(picked7 >= 195, "the overdue uid picked %d / 200", picked7); /* weight 80 vs 1 */
    CHECK_MSG(picked8 > 60 && picked8 < 160, "an ordinary uid picked %d / 200", picked8);
    REQUIRE(gauntlet_select(&s, &p, reg, 30, 100, 1, a, &na, &e) == TS_OK);
    REQUIRE(gauntlet_select(&s, &p, reg, 30, 100, 2, b, &nb, &e) == TS_OK);
    CHECK(memcmp(a, b, sizeof(uint32_t) * 15) != 0);
    gauntlet_state_free(&s);
    /* 100 candidates, 5 bins of 20 by ordinal: window 100 takes bin 0 (the best) */
    double sc2[100] = {0};
    state_with_scores(&s, 100, sc2);
    for (int i = 0; i < 100; i++) {
        s.uids[i].rating.mu = 10 + i; /* uid 100 has the best ordinal */
        s.uids[i].last_eval_window = 50;
        memcpy(s.uids[i].hotkey, &s.uids[i].uid, 4);
    }
    for (uint32_t i = 0; i < 100; i++) reg[i] = reg_of(i + 1, true);
    REQUIRE(gauntlet_select(&s, &p, reg, 100, 100, 7, a, &na, &e) == TS_OK);
    CHECK_EQ_INT(na, 15);
    for (size_t i = 0; i < na; i++) CHECK_MSG(a[i] >= 81, "uid %u outside the top bin", a[i]);
    REQUIRE(gauntlet_select(&s, &p, reg, 100, 102, 7, a, &na, &e) == TS_OK);
    for (size_t i = 0; i < na; i++) CHECK_MSG(a[i] >= 41 && a[i] <= 60, "uid %u outside bin 2", a[i]);
    gauntlet_state_free(&s);
}

/* ------------------------------------------------------------ parameters */

TEST(gauntlet_params_defaults_and_errors) {
    gauntlet_params p = P();
    CHECK(p.uids_per_window == 15 && p.eval_lr_factor == 0.2 && p.binary_ma_alpha == 0.05);
    CHECK(p.sync_cap_steps == 5 && p.sync_exponent == 2.5 && p.sync_poor_steps == 3);
    CHECK(p.openskill_beta == 7 && p.openskill_tau == 0.1 && p.openskill_mu == 25);
    CHECK(p.openskill_sigma == 25.0 / 3 && p.openskill_kappa == 1e-4);
    CHECK(p.missing_factor == 0.75 && p.inactivity_factor == 0.75 && p.inactivity_reset_windows == 3);
    CHECK(p.copycat_slash_overlap == 0.4 && p.copycat_reset_overlap == 0.5 && p.copycat_ban_overlap == 0.6);
    CHECK(p.copycat_ban_windows == 200 && p.score_floor == 1e-4);
    CHECK(p.gather_peers == 20 && p.reserve_peers == 10 && p.gather_share == 0.75);
    CHECK(p.gather_ramp_top == 2 && p.reserve_decay == 0.5 && p.burn_share == 0);
    CHECK(p.weights_interval == 2 && p.peers_interval == 5 && !strcmp(p.openskill_version, "6.1.3"));
    ts_err e = {0};
    CHECK(gauntlet_params_check(&p, &e) == TS_OK);
    /* round trip through JSON */
    char *js = gauntlet_params_to_json(&p);
    REQUIRE(js);
    cJSON *j = cJSON_Parse(js);
    gauntlet_params q;
    memset(&q, 0x55, sizeof q);
    gauntlet_params_default(&q);
    q.uids_per_window = 3;
    REQUIRE(gauntlet_params_from_json(&q, j, &e) == TS_OK);
    CHECK(memcmp(&p, &q, sizeof p) == 0);
    cJSON_Delete(j);
    free(js);
    struct { const char *json, *key; } bad[] = {
        {"{\"uids_per_windw\": 15}", "uids_per_windw"},
        {"{\"uids_per_window\": \"15\"}", "uids_per_window"},
        {"{\"uids_per_window\": 1.5}", "uids_per_window"},
        {"{\"binary_ma_alpha\": 1.5}", "binary_ma_alpha"},
        {"{\"openskill_version\": \"6.0\"}", "openskill_version"},
        {"{\"copycat_reset_overlap\": 0.3}", "copycat_reset_overlap"},
        {"{\"gather_share\": 0}", "gather_share"},
        {"{\"burn_share\": -0.1}", "burn_share"},
        {"{\"reserve_cap\": 1}", "reserve_cap"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gauntlet_params r = P();
        cJSON *b = cJSON_Parse(bad[i].json);
        REQUIRE(b);
        CHECK_MSG(gauntlet_params_from_json(&r, b, &e) == TS_ECONFIG, "%s accepted", bad[i].json);
        CHECK_MSG(strstr(e.msg, bad[i].key) != NULL, "error '%s' does not name %s", e.msg, bad[i].key);
        CHECK(r.uids_per_window == 15); /* unchanged on error */
        cJSON_Delete(b);
    }
    cJSON *ok = cJSON_Parse("{\"_comment\": \"tuned\", \"burn_share\": 0.2, \"openskill_version\": \"6.2.0\"}");
    gauntlet_params r = P();
    REQUIRE(gauntlet_params_from_json(&r, ok, &e) == TS_OK);
    CHECK(r.burn_share == 0.2 && !strcmp(r.openskill_version, "6.2.0"));
    cJSON_Delete(ok);
}

/* ------------------------------------------------------------ Templar's final rules */

/* One window with the gather's outcome, every uid active. */
static int apply_gather(gauntlet_state *s, const gauntlet_params *p, uint64_t w, uint32_t n,
                        const gauntlet_eval *ev, size_t nev, const uint32_t *ok, size_t nok,
                        const uint32_t *missed, size_t nmissed) {
    return apply_full(s, p, w, n, ev, nev, NULL, 0, NULL, ok, nok, missed, nmissed);
}

TEST(gauntlet_rule_gradient_cap) {
    /* uid 1 improves the random loss by 5 %, uid 2 by 3 %: both are capped at
     * 2 % (float32 0.02), so they tie: equal ratings after the match.  Without
     * the cap uid 1 wins. */
    gauntlet_params p = PF();
    gauntlet_state s;
    gauntlet_state_init(&s);
    gauntlet_eval ev[2] = {ev_of(1, 0.05, 0.06, 0), ev_of(2, 0.03, 0.04, 0)};
    REQUIRE(apply(&s, &p, 1, 2, ev, 2, NULL, 0, NULL) == TS_OK);
    CHECK(U(&s, 1)->gradient_score == (double)0.02f && U(&s, 2)->gradient_score == (double)0.02f);
    CHECK(U(&s, 1)->rating.mu == U(&s, 2)->rating.mu && U(&s, 1)->rating.sigma == U(&s, 2)->rating.sigma);
    gauntlet_state_free(&s);
    gauntlet_state_init(&s);
    p.gradient_cap = 0;
    REQUIRE(apply(&s, &p, 1, 2, ev, 2, NULL, 0, NULL) == TS_OK);
    CHECK_NEAR(U(&s, 1)->gradient_score, 0.05, 1e-7);
    CHECK(U(&s, 1)->rating.mu > U(&s, 2)->rating.mu);
    gauntlet_state_free(&s);
}

TEST(gauntlet_rule_bma_threshold_after_warmup) {
    /* The state starts at window 100.  During the warm-up (windows 100..109)
     * a first +1 indicator (bma 0.05) gives a positive final score; from
     * window 110 a bma below 0.10 counts as 0: 0.05 and 0.0975 do, 0.142625
     * (the third +1) does not. */
    gauntlet_params p = PF();
    gauntlet_state s;
    gauntlet_state_init(&s);
    gauntlet_eval ev[2] = {ev_of(1, 0.01, 0.02, 0), ev_of(2, 0.005, 0.01, 0)};
    REQUIRE(apply(&s, &p, 100, 3, ev, 2, NULL, 0, NULL) == TS_OK);
    CHECK(s.first_window == 100);
    CHECK_NEAR(U(&s, 1)->binary_ma, 0.05, 1e-15);
    CHECK(U(&s, 1)->final_score > 0);
    /* uid 3 evaluated for the first time after the warm-up */
    gauntlet_eval e3[2] = {ev_of(3, 0.01, 0.02, 0), ev_of(2, 0.005, 0.01, 0)};
    REQUIRE(apply(&s, &p, 110, 3, e3, 2, NULL, 0, NULL) == TS_OK);
    CHECK_NEAR(U(&s, 3)->binary_ma, 0.05, 1e-15);
    CHECK(U(&s, 3)->final_score == 0);
    CHECK(U(&s, 3)->last_penalties & GAUNTLET_PEN_BMA_THRESHOLD);
    REQUIRE(apply(&s, &p, 111, 3, e3, 2, NULL, 0, NULL) == TS_OK);
    CHECK_NEAR(U(&s, 3)->binary_ma, 0.0975, 1e-15);
    CHECK(U(&s, 3)->final_score == 0);
    REQUIRE(apply(&s, &p, 112, 3, e3, 2, NULL, 0, NULL) == TS_OK);
    CHECK_NEAR(U(&s, 3)->binary_ma, 0.142625, 1e-15);
    double bma = U(&s, 3)->binary_ma;
    CHECK(U(&s, 3)->final_score == (double)(float)(os_ordinal(U(&s, 3)->rating) * bma * 1.0));
    CHECK(U(&s, 3)->final_score > 0);
    gauntlet_state_free(&s);
}

TEST(gauntlet_rule_missing_plays_the_match_at_minus_99) {
    /* uid 3 did not upload: it enters the match with -99 and loses, as
     * os_rate rates teams [1, 2, 3] with scores [g1, g2, -99]. */
    gauntlet_params p = PF();
    gauntlet_state s;
    gauntlet_state_init(&s);
    gauntlet_eval ev[3] = {ev_of(1, 0.01, 0.02, 0), ev_of(2, 0.005, 0.01, 0), ev_status(3, GAUNTLET_UPLOAD_MISSING)};
    REQUIRE(apply(&s, &p, 1, 3, ev, 3, NULL, 0, NULL) == TS_OK);
    os_model m;
    gauntlet_params_model(&p, &m);
    os_rating in[3] = {{25, 25.0 / 3}, {25, 25.0 / 3}, {25, 25.0 / 3}}, out[3];
    int sizes[3] = {1, 1, 1};
    double scores[3] = {(double)(float)0.01, (double)(float)0.005, -99};
    /* the stored gradient scores are float32 of the measured improvements */
    scores[0] = U(&s, 1)->gradient_score;
    scores[1] = U(&s, 2)->gradient_score;
    os_match mt = {.nteams = 3, .team_sizes = sizes, .ratings = in, .scores = scores, .limit_sigma = -1};
    ts_err e = {0};
    REQUIRE(os_rate(&m, &mt, out, &e) == TS_OK);
    CHECK(U(&s, 3)->rating.mu == out[2].mu && U(&s, 3)->rating.sigma == out[2].sigma);
    CHECK(U(&s, 1)->rating.mu == out[0].mu);
    CHECK(out[2].mu < 25 && U(&s, 3)->final_score == 0);
    CHECK(U(&s, 3)->counts[GAUNTLET_CNT_EVALS] == 0);
    /* an invalid upload plays too; with missing_in_match off neither does */
    gauntlet_state_free(&s);
    gauntlet_state_init(&s);
    p.missing_in_match = false;
    REQUIRE(apply(&s, &p, 1, 3, ev, 3, NULL, 0, NULL) == TS_OK);
    CHECK(U(&s, 3)->rating.mu == 25);
    gauntlet_state_free(&s);
    gauntlet_state_init(&s);
    p.missing_in_match = true;
    ev[2] = ev_status(3, GAUNTLET_UPLOAD_INVALID);
    REQUIRE(apply(&s, &p, 1, 3, ev, 3, NULL, 0, NULL) == TS_OK);
    CHECK(U(&s, 3)->rating.mu == out[2].mu);
    gauntlet_state_free(&s);
}

/* One window where uids 2..6 improve (0.01) and uid 1 scores `g1`; the
 * others score `others` instead when it is given (a regressing field). */
static int neg_window(gauntlet_state *s, const gauntlet_params *p, uint64_t w, double g1, double others) {
    gauntlet_eval ev[6];
    ev[0] = ev_of(1, g1, g1 + 0.01, 0);
    for (int i = 1; i < 6; i++) ev[i] = ev_of((uint32_t)i + 1, others, others + 0.01, 0);
    return apply(s, p, w, 6, ev, 6, NULL, 0, NULL);
}

TEST(gauntlet_rule_negative_evaluations) {
    gauntlet_params p = PF();
    p.bma_threshold = 0; /* keep uid 1's score positive to watch the slash */
    gauntlet_state s;
    gauntlet_state_init(&s);
    /* eight evaluations of uid 1: + - + - + - - (3 positive, 4 negative so
     * far: no slash with 4 of 7, nor with 4 of 8 after another +) */
    const double g[8] = {0.01, -0.002, 0.01, -0.002, 0.01, -0.002, -0.002, 0.01};
    for (int i = 0; i < 8; i++) REQUIRE(neg_window(&s, &p, (uint64_t)i, g[i], 0.01) == TS_OK);
    gauntlet_uid *u = U(&s, 1);
    CHECK_EQ_INT(u->neg_n, 8);
    CHECK_EQ_INT(u->neg_hist, 0x56); /* bit 0 the latest: + - - + - + - + -> 0b01010110 */
    CHECK_EQ_INT(u->counts[GAUNTLET_CNT_NEG_SLASH], 0);
    /* a fifth negative (5 of the last 8: - - + - + - - then -, dropping the
     * first +): slashed x 0.25, after the match */
    REQUIRE(neg_window(&s, &p, 8, -0.002, 0.01) == TS_OK);
    u = U(&s, 1);
    CHECK_EQ_INT(__builtin_popcount(u->neg_hist), 5);
    CHECK(u->last_penalties & GAUNTLET_PEN_NEG_SLASH);
    double bma = u->binary_ma / 0.25;
    CHECK(u->final_score == (double)(float)(os_ordinal(u->rating) * bma * 1.0) * 0.25);
    /* ... and again the next window while the history says so, evaluated or not */
    double before = u->final_score;
    gauntlet_eval none[1] = {ev_of(2, 0.01, 0.02, 0)};
    REQUIRE(apply(&s, &p, 9, 6, none, 1, NULL, 0, NULL) == TS_OK);
    CHECK(U(&s, 1)->final_score == before * 0.25 || U(&s, 1)->final_score == 0);
    /* three negatives in a row (windows 6, 7 were -, +; now 8 -, then 10, 11 -):
     * out of the peer list, not out of the weights */
    REQUIRE(neg_window(&s, &p, 10, -0.002, 0.01) == TS_OK);
    CHECK(!U(&s, 1)->excluded);
    REQUIRE(neg_window(&s, &p, 11, -0.002, 0.01) == TS_OK);
    CHECK(U(&s, 1)->excluded && U(&s, 1)->neg_consecutive == 3);
    CHECK(U(&s, 1)->counts[GAUNTLET_CNT_NEG_EXCLUDE] == 1);
    U(&s, 1)->final_score = 100; /* the best score: still not a peer */
    uint32_t gl[32], rl[32], wu[64];
    double wt[64];
    size_t ng, nr, nw;
    ts_err e = {0};
    REQUIRE(gauntlet_peers(&s, &p, gl, &ng, rl, &nr, &e) == TS_OK);
    for (size_t i = 0; i < ng; i++) CHECK(gl[i] != 1);
    for (size_t i = 0; i < nr; i++) CHECK(rl[i] != 1);
    REQUIRE(gauntlet_weights(&s, &p, wu, wt, 64, &nw, &e) == TS_OK);
    CHECK(weight_of(wu, wt, nw, 1) > 0);
    /* a non-negative evaluation ends the exclusion */
    REQUIRE(neg_window(&s, &p, 12, 0.01, 0.01) == TS_OK);
    CHECK(!U(&s, 1)->excluded && U(&s, 1)->neg_consecutive == 0);
    gauntlet_state_free(&s);

    /* the whole field regressed (the 5th best of the window is negative):
     * neither the slash nor the exclusion applies */
    gauntlet_state_init(&s);
    for (int i = 0; i < 8; i++) REQUIRE(neg_window(&s, &p, (uint64_t)i, -0.002, -0.001) == TS_OK);
    CHECK_EQ_INT(U(&s, 1)->neg_n, 8);
    CHECK_EQ_INT(U(&s, 1)->neg_hist, 0xff);
    CHECK(!U(&s, 1)->excluded && U(&s, 1)->counts[GAUNTLET_CNT_NEG_SLASH] == 0);
    gauntlet_state_free(&s);
}

TEST(gauntlet_rule_gather_reliability) {
    gauntlet_params p = PF();
    gauntlet_state s;
    gauntlet_state_init(&s);
    REQUIRE(apply(&s, &p, 0, 4, NULL, 0, NULL, 0, NULL) == TS_OK);
    seed_scores(&s, 1, 1.0, 1.0);
    uint32_t one = 1, others[2] = {2, 3};
    /* consecutive misses: x 0.75, then x 0.5 */
    REQUIRE(apply_gather(&s, &p, 1, 4, NULL, 0, others, 2, &one, 1) == TS_OK);
    CHECK_NEAR(U(&s, 1)->final_score, 0.75, 1e-15);
    CHECK_NEAR(U(&s, 1)->binary_ma, 0.75, 1e-15);
    REQUIRE(apply_gather(&s, &p, 2, 4, NULL, 0, others, 2, &one, 1) == TS_OK);
    CHECK_NEAR(U(&s, 1)->final_score, 0.375, 1e-15);
    /* a delivered window ends the run of misses */
    uint32_t all[3] = {1, 2, 3};
    REQUIRE(apply_gather(&s, &p, 3, 4, NULL, 0, all, 3, NULL, 0) == TS_OK);
    CHECK_EQ_INT(U(&s, 1)->gather_consecutive, 0);
    CHECK_EQ_INT(U(&s, 1)->gather_hist, 0x6); /* latest first: ok, miss, miss */
    /* the next miss is a first miss (x 0.75) by the run, but its success
     * rate over 4 recorded windows (half the history) is 1/4 < 0.4: x 0 */
    REQUIRE(apply_gather(&s, &p, 4, 4, NULL, 0, others, 2, &one, 1) == TS_OK);
    CHECK(U(&s, 1)->final_score == 0 && U(&s, 1)->binary_ma == 0);
    CHECK_EQ_INT(U(&s, 1)->counts[GAUNTLET_CNT_GATHER_MISS], 3);
    gauntlet_state_free(&s);

    /* a third consecutive miss multiplies by 0 */
    gauntlet_state_init(&s);
    REQUIRE(apply(&s, &p, 0, 4, NULL, 0, NULL, 0, NULL) == TS_OK);
    for (uint64_t w = 1; w <= 5; w++) REQUIRE(apply_gather(&s, &p, w, 4, NULL, 0, &one, 1, NULL, 0) == TS_OK);
    seed_scores(&s, 1, 1.0, 1.0);
    for (uint64_t w = 6; w <= 8; w++) REQUIRE(apply_gather(&s, &p, w, 4, NULL, 0, NULL, 0, &one, 1) == TS_OK);
    CHECK(U(&s, 1)->final_score == 0); /* 1 x 0.75 x 0.5 x 0 */
    CHECK(!gauntlet_is_banned(U(&s, 1), 9)); /* 3 of 8 missed: no ban */
    /* the fourth miss of the last 8: reset and banned for 20 windows */
    REQUIRE(apply_gather(&s, &p, 9, 4, NULL, 0, NULL, 0, &one, 1) == TS_OK);
    CHECK(U(&s, 1)->last_penalties & GAUNTLET_PEN_GATHER_BAN);
    CHECK(U(&s, 1)->ban_until == 9 + 1 + 20);
    CHECK(gauntlet_is_banned(U(&s, 1), 29) && !gauntlet_is_banned(U(&s, 1), 30));
    CHECK(U(&s, 1)->rating.mu == 25 && U(&s, 1)->gather_n == 0);
    gauntlet_state_free(&s);
}

TEST(gauntlet_rule_copycat_starts_after_warmup) {
    gauntlet_params p = PF();
    gauntlet_state s;
    gauntlet_state_init(&s);
    REQUIRE(apply(&s, &p, 100, 4, NULL, 0, NULL, 0, NULL) == TS_OK);
    gauntlet_overlap ov[1] = {{1, 2, 0.7, 2}};
    REQUIRE(apply(&s, &p, 119, 4, NULL, 0, ov, 1, NULL) == TS_OK); /* 19 windows in: not yet */
    CHECK(!gauntlet_is_banned(U(&s, 2), 120) && U(&s, 2)->counts[GAUNTLET_CNT_COPY_BAN] == 0);
    REQUIRE(apply(&s, &p, 120, 4, NULL, 0, ov, 1, NULL) == TS_OK);
    CHECK(U(&s, 2)->ban_until == 120 + 1 + 20);
    gauntlet_state_free(&s);
}

TEST(gauntlet_rule_newcomers_evaluated_first_and_reserve_slot) {
    gauntlet_params p = PF();
    gauntlet_state s;
    gauntlet_state_init(&s);
    /* 60 incumbents, evaluated often, with scores 60..1; at window 200 three
     * newcomers (61..63) register */
    gauntlet_reg reg[64];
    for (uint32_t i = 0; i < 60; i++) reg[i] = reg_of(i + 1, true);
    gauntlet_window_input in = {.window = 100, .registered = reg, .n_registered = 60};
    ts_err e = {0};
    REQUIRE(gauntlet_update(&s, &p, &in, &e) == TS_OK);
    for (uint32_t i = 0; i < 60; i++) {
        s.uids[i].counts[GAUNTLET_CNT_EVALS] = 10;
        s.uids[i].last_eval_window = 99;
        s.uids[i].final_score = 60 - i;
    }
    for (uint32_t i = 60; i < 63; i++) reg[i] = reg_of(i + 1, true);
    in = (gauntlet_window_input){.window = 200, .registered = reg, .n_registered = 63};
    REQUIRE(gauntlet_update(&s, &p, &in, &e) == TS_OK);
    for (uint64_t w = 201; w < 211; w++) {
        uint32_t sel[32];
        size_t nsel;
        REQUIRE(gauntlet_select(&s, &p, reg, 63, w, 7, sel, &nsel, &e) == TS_OK);
        CHECK_EQ_INT(nsel, 15);
        int news = 0;
        for (size_t i = 0; i < nsel; i++) news += sel[i] > 60;
        CHECK_EQ_INT(news, 3); /* every newcomer, every window, until it has 3 evaluations */
    }
    /* a newcomer with a small positive score (below all 30 tiers' worth of
     * incumbents) takes one of the two reserve places kept for newcomers */
    U(&s, 62)->final_score = 0.5;
    uint32_t gl[32], rl[32], wu[64];
    double wt[64];
    size_t ng, nr, nw;
    REQUIRE(gauntlet_peers(&s, &p, gl, &ng, rl, &nr, &e) == TS_OK);
    CHECK(ng == 20 && nr == 10 && rl[9] == 62 && rl[8] == 29);
    REQUIRE(gauntlet_weights(&s, &p, wu, wt, 64, &nw, &e) == TS_OK);
    CHECK(weight_of(wu, wt, nw, 62) > 0 && weight_of(wu, wt, nw, 30) == 0);
    /* with newcomer_slots 0 there is no such place */
    p.newcomer_slots = 0;
    REQUIRE(gauntlet_peers(&s, &p, gl, &ng, rl, &nr, &e) == TS_OK);
    CHECK(nr == 10 && rl[9] == 30);
    p.newcomer_slots = 2;
    /* past newcomer_windows it competes like anyone */
    gauntlet_reg reg2[64];
    memcpy(reg2, reg, sizeof reg);
    in = (gauntlet_window_input){.window = 250, .registered = reg2, .n_registered = 63};
    REQUIRE(gauntlet_update(&s, &p, &in, &e) == TS_OK);
    U(&s, 62)->final_score = 0.5;
    REQUIRE(gauntlet_peers(&s, &p, gl, &ng, rl, &nr, &e) == TS_OK);
    CHECK(nr == 10 && rl[9] == 30);
    gauntlet_state_free(&s);
}

/* ------------------------------------------------------------ state file */

/* A deterministic run: window w's input depends only on w. */
static int run_window(gauntlet_state *s, const gauntlet_params *p, uint64_t w) {
    gauntlet_eval ev[6];
    gauntlet_overlap ov[1] = {{3, 4, (w % 7) / 10.0, 4}};
    bool inactive[13] = {0};
    inactive[1 + (w % 12)] = (w % 3 == 0);
    for (int i = 0; i < 6; i++) {
        uint32_t uid = (uint32_t)(1 + (w * 5 + (uint64_t)i * 2) % 12);
        double q = 0.001 * (1 + (uid * 7 + w) % 11);
        ev[i] = ev_of(uid, q, q * (uid % 3 ? 1.5 : 0.5), (double)((uid + w) % 6));
        if ((uid + w) % 13 == 0) ev[i].status = GAUNTLET_UPLOAD_LATE;
        for (int j = 0; j < i; j++)
            if (ev[j].uid == uid) ev[i].uid = 0; /* keep uids distinct: 0 is never registered */
    }
    size_t nev = 0;
    for (int i = 0; i < 6; i++)
        if (ev[i].uid) ev[nev++] = ev[i];
    return apply(s, p, w, 12, ev, nev, ov, 1, inactive);
}

TEST(gauntlet_state_round_trip_and_corruption) {
    gauntlet_params p = P();
    gauntlet_state s, t;
    gauntlet_state_init(&s);
    gauntlet_state_init(&t);
    for (uint64_t w = 0; w < 30; w++) REQUIRE(run_window(&s, &p, w) == TS_OK);
    CHECK(s.n == 12 && s.window == 29);
    uint8_t *a, *b;
    size_t la, lb;
    ts_err e = {0};
    REQUIRE(gauntlet_state_serialize(&s, &a, &la, &e) == TS_OK);
    CHECK_EQ_INT(la, 48 + 12 * 256 + 32);
    REQUIRE(gauntlet_state_parse(a, la, &t, &e) == TS_OK);
    REQUIRE(gauntlet_state_serialize(&t, &b, &lb, &e) == TS_OK);
    CHECK(la == lb && memcmp(a, b, la) == 0);
    for (size_t i = 0; i < s.n; i++) {
        CHECK(s.uids[i].rating.mu == t.uids[i].rating.mu);
        CHECK(s.uids[i].final_score == t.uids[i].final_score);
    }
    {
        /* a miner without a usable sync record is +inf steps behind: that
         * state saves and loads (a restart must not find it "damaged"); a
         * negative measure is refused */
        gauntlet_state u, v2;
        gauntlet_state_init(&u);
        gauntlet_state_init(&v2);
        uint8_t *x;
        size_t lx;
        REQUIRE(gauntlet_state_parse(a, la, &u, &e) == TS_OK);
        u.uids[0].steps_behind = INFINITY;
        u.uids[1].steps_behind = NAN;
        REQUIRE(gauntlet_state_serialize(&u, &x, &lx, &e) == TS_OK);
        CHECK_ERR(gauntlet_state_parse(x, lx, &v2, &e), TS_OK);
        CHECK(gauntlet_state_find(&v2, u.uids[0].uid) && isinf(gauntlet_state_find(&v2, u.uids[0].uid)->steps_behind));
        free(x);
        gauntlet_state_free(&v2);
        gauntlet_state_init(&v2);
        u.uids[0].steps_behind = -1;
        REQUIRE(gauntlet_state_serialize(&u, &x, &lx, &e) == TS_OK);
        CHECK_ERR(gauntlet_state_parse(x, lx, &v2, &e), TS_EFORMAT);
        free(x);
        gauntlet_state_free(&u);
        gauntlet_state_free(&v2);
    }
    /* and the next window gives the same result from either */
    REQUIRE(run_window(&s, &p, 30) == TS_OK);
    REQUIRE(run_window(&t, &p, 30) == TS_OK);
    free(b);
    REQUIRE(gauntlet_state_serialize(&t, &b, &lb, &e) == TS_OK);
    uint8_t *c;
    size_t lc;
    REQUIRE(gauntlet_state_serialize(&s, &c, &lc, &e) == TS_OK);
    CHECK(lb == lc && memcmp(b, c, lb) == 0);
    free(c);
    /* every single-bit flip and every truncation is refused */
    int accepted = 0;
    for (size_t i = 0; i < la; i++) {
        a[i] ^= 0x10;
        gauntlet_state x;
        gauntlet_state_init(&x);
        if (gauntlet_state_parse(a, la, &x, &e) == TS_OK) accepted++;
        gauntlet_state_free(&x);
        a[i] ^= 0x10;
    }
    CHECK_EQ_INT(accepted, 0);
    for (size_t n = 0; n < la; n += 7) {
        gauntlet_state x;
        gauntlet_state_init(&x);
        CHECK(gauntlet_state_parse(a, n, &x, &e) != TS_OK);
        gauntlet_state_free(&x);
    }
    {
        /* the new fields round-trip, and a version-1 file (the same record
         * layout, no first window, zeros where version 2 keeps its
         * histories) still loads, as a state past every warm-up */
        gauntlet_state u, v1;
        gauntlet_state_init(&u);
        gauntlet_state_init(&v1);
        REQUIRE(gauntlet_state_parse(a, la, &u, &e) == TS_OK);
        u.first_window = 3;
        u.uids[2].neg_hist = 0x5;
        u.uids[2].neg_n = 3;
        u.uids[2].gather_hist = 0x1;
        u.uids[2].gather_n = 8;
        u.uids[2].excluded = true;
        u.uids[2].neg_consecutive = 1;
        u.uids[2].gather_consecutive = 1;
        u.uids[2].counts[GAUNTLET_CNT_NEG_EXCLUDE] = 7;
        uint8_t *x;
        size_t lx;
        REQUIRE(gauntlet_state_serialize(&u, &x, &lx, &e) == TS_OK);
        REQUIRE(gauntlet_state_parse(x, lx, &v1, &e) == TS_OK);
        CHECK(v1.first_window == 3 && v1.uids[2].neg_hist == 0x5 && v1.uids[2].gather_n == 8 &&
              v1.uids[2].excluded && v1.uids[2].counts[GAUNTLET_CNT_NEG_EXCLUDE] == 7);
        gauntlet_state_free(&v1);
        gauntlet_state_init(&v1);
        /* a history with bits beyond its count is refused */
        u.uids[2].neg_n = 2;
        free(x);
        REQUIRE(gauntlet_state_serialize(&u, &x, &lx, &e) == TS_OK);
        CHECK_EQ_INT(gauntlet_state_parse(x, lx, &v1, &e), TS_EFORMAT);
        free(x);
        /* version 1 */
        uint8_t *o = malloc(la);
        memcpy(o, a, la);
        ts_put_u32(o + 8, 1);
        memset(o + 32, 0, 8);
        for (size_t i = 0; i < u.n; i++) memset(o + 48 + 256 * i + 196, 0, 256 - 196);
        ts_blake2b(o + la - 32, 32, o, la - 32);
        REQUIRE(gauntlet_state_parse(o, la, &v1, &e) == TS_OK);
        CHECK(v1.first_window == 0 && v1.window == u.window && v1.n == u.n);
        for (size_t i = 0; i < v1.n; i++)
            CHECK(v1.uids[i].final_score == u.uids[i].final_score && v1.uids[i].neg_n == 0);
        /* a version-1 file with a version-2 field set is damaged */
        o[48 + 196] = 1;
        ts_blake2b(o + la - 32, 32, o, la - 32);
        CHECK_EQ_INT(gauntlet_state_parse(o, la, &v1, &e), TS_EFORMAT);
        free(o);
        gauntlet_state_free(&u);
        gauntlet_state_free(&v1);
    }
    /* a huge count in the header fails on the size check, before allocating */
    uint8_t hdr[80];
    memcpy(hdr, a, 80);
    ts_put_u32(hdr + 20, 0xffffffffu);
    CHECK_EQ_INT(gauntlet_state_parse(hdr, 80, &t, &e), TS_EFORMAT);
    ts_put_u32(hdr + 20, 1000);
    CHECK_EQ_INT(gauntlet_state_parse(hdr, 80, &t, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "bytes") != NULL);
    memcpy(hdr, a, 80);
    ts_put_u32(hdr + 8, 3);
    CHECK_EQ_INT(gauntlet_state_parse(hdr, 80, &t, &e), TS_EUNSUPPORTED);
    /* a well-formed file (valid checksum) with a value out of range */
    {
        gauntlet_state y;
        gauntlet_state_init(&y);
        REQUIRE(gauntlet_state_parse(a, la, &y, &e) == TS_OK);
        y.uids[3].binary_ma = 2.0;
        uint8_t *d;
        size_t ld;
        REQUIRE(gauntlet_state_serialize(&y, &d, &ld, &e) == TS_OK);
        CHECK_EQ_INT(gauntlet_state_parse(d, ld, &t, &e), TS_EFORMAT);
        CHECK(strstr(e.msg, "binary moving average") != NULL);
        free(d);
        gauntlet_state_free(&y);
    }
    /* files */
    char path[512];
    snprintf(path, sizeof path, "%s/gauntlet.state", th_tmpdir());
    gauntlet_state z;
    gauntlet_state_init(&z);
    CHECK_EQ_INT(gauntlet_state_load(&z, path, &e), TS_ENOTFOUND);
    REQUIRE(gauntlet_state_save(&s, path, &e) == TS_OK);
    REQUIRE(gauntlet_state_load(&z, path, &e) == TS_OK);
    CHECK(z.window == 30 && z.n == 12);
    gauntlet_state_free(&z);
    free(a);
    free(b);
    gauntlet_state_free(&s);
    gauntlet_state_free(&t);
}

/* A validator killed (SIGKILL) at random moments while it saves its state
 * every window: every restart loads a valid state, of a window it had
 * reached, equal byte for byte to a clean replay up to that window, and
 * resumes from there. */
TEST(gauntlet_state_crash_safety_sigkill) {
    gauntlet_params p = P();
    char path[512];
    snprintf(path, sizeof path, "%s/validator.state", th_tmpdir());
    uint64_t seed = 0x9e3779b97f4a7c15ull, last = 0;
    bool have = false;
    int kills = 0, restarts_with_state = 0;
    for (int round = 0; round < 40; round++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            gauntlet_state s;
            gauntlet_state_init(&s);
            ts_err e = {0};
            int rc = gauntlet_state_load(&s, path, &e);
            if (rc != TS_OK && rc != TS_ENOTFOUND) _exit(3);
            uint64_t w = s.window == GAUNTLET_NEVER ? 0 : s.window + 1;
            for (;; w++) {
                if (run_window(&s, &p, w)) _exit(4);
                if (gauntlet_state_save(&s, path, &e)) _exit(5);
            }
        }
        /* the first state must exist before the first kill (a slow disk or a
         * sanitizer build must not make the test vacuous); then kill at a
         * random moment, now and then after a longer run */
        for (int i = 0; i < 10000 && !ts_path_exists(path); i++) {
            struct timespec one = {0, 1000000};
            nanosleep(&one, NULL);
        }
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        long ns = (long)((seed >> 33) % 15000000) + (round % 5 == 4 ? 60000000L : 0);
        struct timespec ts = {0, ns}; /* 0 .. 15 ms, every fifth round 60 ms more */
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        CHECK_MSG(WIFSIGNALED(st), "the child exited by itself (status %d)", st);
        kills++;
        gauntlet_state s;
        gauntlet_state_init(&s);
        ts_err e = {0};
        int rc = gauntlet_state_load(&s, path, &e);
        if (rc == TS_ENOTFOUND) {
            CHECK(!have);
            continue;
        }
        CHECK_MSG(rc == TS_OK, "restart %d: %s", round, e.msg);
        if (rc != TS_OK) break;
        restarts_with_state++;
        CHECK_MSG(!have || s.window >= last, "went back from window %llu to %llu",
                  (unsigned long long)last, (unsigned long long)s.window);
        /* equal to a clean replay */
        gauntlet_state r;
        gauntlet_state_init(&r);
        for (uint64_t w = 0; w <= s.window; w++) REQUIRE(run_window(&r, &p, w) == TS_OK);
        uint8_t *a, *b;
        size_t la, lb;
        REQUIRE(gauntlet_state_serialize(&s, &a, &la, &e) == TS_OK);
        REQUIRE(gauntlet_state_serialize(&r, &b, &lb, &e) == TS_OK);
        CHECK_MSG(la == lb && memcmp(a, b, la) == 0, "restart %d: state of window %llu differs from a replay",
                  round, (unsigned long long)s.window);
        free(a);
        free(b);
        gauntlet_state_free(&r);
        last = s.window;
        have = true;
        gauntlet_state_free(&s);
    }
    CHECK_EQ_INT(kills, 40);
    CHECK_MSG(restarts_with_state == 40 && last >= 8, "only %d restarts found a state (last window %llu)",
              restarts_with_state, (unsigned long long)last);
}

/* ------------------------------------------------------------ simulator */

static const char *small_pop =
    "{\"groups\": ["
    "{\"name\": \"honest\", \"behaviour\": \"honest\", \"count\": 48},"
    "{\"name\": \"lazy\", \"behaviour\": \"lazy\", \"count\": 8},"
    "{\"name\": \"copycat\", \"behaviour\": \"copycat\", \"count\": 6},"
    "{\"name\": \"newcomer\", \"behaviour\": \"honest\", \"count\": 4, \"quality\": [1.2, 1.5], \"join_window\": 40}"
    "]}";

TEST(gauntlet_sim_honest_miners_earn_copycats_and_lazy_do_not) {
    gauntlet_params p = P();
    cJSON *j = cJSON_Parse(small_pop);
    REQUIRE(j);
    gauntlet_sim_result *a = NULL, *b = NULL;
    ts_err e = {0};
    REQUIRE(gauntlet_sim_run(&p, j, 120, 1, false, &a, &e) == TS_OK);
    REQUIRE(gauntlet_sim_run(&p, j, 120, 1, false, &b, &e) == TS_OK);
    CHECK_EQ_INT(gauntlet_sim_groups(a), 4);
    double honest = gauntlet_sim_share(a, 0, 20, 120) + gauntlet_sim_share(a, 3, 20, 120);
    double lazy = gauntlet_sim_share(a, 1, 20, 120), copy = gauntlet_sim_share(a, 2, 20, 120);
    CHECK_MSG(honest >= 0.9, "honest share after window 20: %.3f", honest);
    CHECK_MSG(lazy + copy <= 0.05, "lazy %.3f + copycat %.3f after window 20", lazy, copy);
    CHECK_MSG(gauntlet_sim_share(a, 2, 60, 120) < 0.01, "copycats still earn late in the run");
    for (int g = 0; g <= 4; g++)
        CHECK(gauntlet_sim_share(a, g, 0, 120) == gauntlet_sim_share(b, g, 0, 120)); /* seeded */
    double rho = gauntlet_sim_rank_corr(a);
    CHECK_MSG(rho > 0.2, "rank correlation %.3f", rho);
    char path[512];
    snprintf(path, sizeof path, "%s/sim.svg", th_tmpdir());
    REQUIRE(gauntlet_sim_svg(a, path, &e) == TS_OK);
    uint8_t *svg;
    size_t n;
    REQUIRE(ts_read_file(path, 1 << 22, &svg, &n, &e) == TS_OK);
    CHECK(strstr((char *)svg, "<svg") && strstr((char *)svg, "polyline") && strstr((char *)svg, "copycat"));
    free(svg);
    gauntlet_sim_free(a);
    gauntlet_sim_free(b);
    cJSON_Delete(j);
    /* population errors name the key */
    cJSON *bad = cJSON_Parse("{\"groups\": [{\"name\": \"x\", \"count\": 3, \"quallity\": [0, 1]}]}");
    CHECK_EQ_INT(gauntlet_sim_run(&p, bad, 10, 1, false, &a, &e), TS_ECONFIG);
    CHECK(strstr(e.msg, "quallity") != NULL);
    cJSON_Delete(bad);
}

/* The README's headline figures for the shipped population (`tessera
 * gauntlet sim --population gauntlet/population.json --windows 1000 --seed
 * 1`), to the digits the README gives: the run is deterministic. */
TEST(gauntlet_sim_shipped_population_headline) {
    uint8_t *buf;
    size_t len;
    ts_err e = {0};
    REQUIRE(ts_read_file("gauntlet/population.json", 1 << 22, &buf, &len, &e) == TS_OK);
    cJSON *j = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    REQUIRE(j);
    gauntlet_params p = PF();
    gauntlet_sim_result *r = NULL;
    REQUIRE(gauntlet_sim_run(&p, j, 1000, 1, false, &r, &e) == TS_OK);
    double honest = 0, lazy = 0, copy = 0;
    for (int g = 0; g < gauntlet_sim_groups(r); g++) {
        const char *n = gauntlet_sim_group_name(r, g);
        double x = gauntlet_sim_share(r, g, 20, 1000);
        if (!strcmp(n, "lazy")) lazy += x;
        else if (!strcmp(n, "copycat") || !strcmp(n, "early-copy")) copy += x;
        else honest += x;
    }
    CHECK_MSG(fabs(honest - 0.9988) < 5e-4, "honest-behaving share %.4f", honest);
    CHECK_MSG(lazy < 0.001 && fabs(lazy - 0.0007) < 5e-5, "lazy share %.5f", lazy);
    CHECK_MSG(copy < 0.001 && fabs(copy - 0.0004) < 5e-5, "copycat share %.5f", copy);
    CHECK_NEAR(gauntlet_sim_rank_corr(r), 0.597, 5e-4);
    double all;
    int total = 0;
    gauntlet_sim_newcomer_windows(r, NULL, &total);
    CHECK_EQ_INT(total, 10);
    CHECK_EQ_INT(gauntlet_sim_newcomers_within(r, 20, &all), 7);
    CHECK_MSG(all <= 20, "median newcomer: %.1f windows to a first weight", all);
    /* after Yuma: the five validators of the file */
    CHECK_EQ_INT(gauntlet_sim_validators(r), 5);
    double sum = 0;
    for (int g = 0; g <= gauntlet_sim_groups(r); g++) sum += gauntlet_sim_yuma_share(r, g);
    CHECK_NEAR(sum, 1.0, 1e-9);
    double dsum = 0, d, t;
    const char *name;
    for (int v = 0; v < 5; v++) {
        REQUIRE(gauntlet_sim_validator(r, v, &name, &d, &t) == TS_OK);
        dsum += d;
        if (!strcmp(name, "colluder")) CHECK_MSG(d < 0.001 && t < 0.01, "colluder dividends %.4f vtrust %.3f", d, t);
        if (!strcmp(name, "copier")) CHECK_MSG(t > 0.8, "the copier agrees with the consensus: vtrust %.3f", t);
    }
    CHECK_NEAR(dsum, 1.0, 1e-9);
    gauntlet_sim_free(r);
    cJSON_Delete(j);
}

/* Several validators: a colluding validator's weight on its friends is
 * clipped to the stake-weighted consensus (its friends earn nothing after
 * Yuma, and neither does it); adding validators leaves the leader's world
 * (its weights, the shares table) unchanged. */
TEST(gauntlet_sim_validators_and_yuma) {
    gauntlet_params p = P();
    cJSON *one = cJSON_Parse(small_pop);
    cJSON *many = cJSON_Parse(
        "{\"validators\": ["
        "{\"name\": \"a\", \"stake\": 500},"
        "{\"name\": \"b\", \"stake\": 300, \"seed\": 9},"
        "{\"name\": \"c\", \"stake\": 200, \"behaviour\": \"favour\", \"favours\": \"lazy\"}],"
        "\"yuma\": {\"tempo_windows\": 2},"
        "\"groups\": ["
        "{\"name\": \"honest\", \"behaviour\": \"honest\", \"count\": 48},"
        "{\"name\": \"lazy\", \"behaviour\": \"lazy\", \"count\": 8},"
        "{\"name\": \"copycat\", \"behaviour\": \"copycat\", \"count\": 6},"
        "{\"name\": \"newcomer\", \"behaviour\": \"honest\", \"count\": 4, \"quality\": [1.2, 1.5], \"join_window\": 40}"
        "]}");
    REQUIRE(one && many);
    gauntlet_sim_result *a = NULL, *b = NULL;
    ts_err e = {0};
    REQUIRE(gauntlet_sim_run(&p, one, 120, 1, false, &a, &e) == TS_OK);
    REQUIRE(gauntlet_sim_run(&p, many, 120, 1, false, &b, &e) == TS_OK);
    for (int g = 0; g <= 4; g++) CHECK(gauntlet_sim_share(a, g, 0, 120) == gauntlet_sim_share(b, g, 0, 120));
    CHECK_MSG(gauntlet_sim_yuma_share(b, 1) < 0.01, "lazy incentive after Yuma %.4f", gauntlet_sim_yuma_share(b, 1));
    CHECK(gauntlet_sim_yuma_share(b, 0) > 0.8);
    const char *name;
    double d, t;
    REQUIRE(gauntlet_sim_validator(b, 2, &name, &d, &t) == TS_OK);
    CHECK(!strcmp(name, "c") && d < 0.01 && t < 0.05);
    REQUIRE(gauntlet_sim_validator(b, 0, &name, &d, &t) == TS_OK);
    CHECK(!strcmp(name, "a") && d > 0.5 && t > 0.5);
    CHECK_EQ_INT(gauntlet_sim_validator(b, 3, &name, &d, &t), TS_EINVAL);
    /* one validator, no "validators" key: Yuma still runs, consensus is its weights */
    CHECK_NEAR(gauntlet_sim_yuma_share(a, 0) + gauntlet_sim_yuma_share(a, 3), gauntlet_sim_share(a, 0, 20, 120) + gauntlet_sim_share(a, 3, 20, 120), 0.02);
    gauntlet_sim_free(a);
    gauntlet_sim_free(b);
    /* errors name the key */
    static const char *const bad[][2] = {
        {"{\"validators\": [{\"name\": \"x\", \"behaviour\": \"copy\"}], \"groups\": [{\"name\": \"h\", \"count\": 3}]}", "leads"},
        {"{\"validators\": [{\"name\": \"x\"}, {\"behaviour\": \"favour\", \"favours\": \"nobody\"}], \"groups\": [{\"name\": \"h\", \"count\": 3}]}", "favours"},
        {"{\"validators\": [{\"name\": \"x\", \"params\": {\"uids_per_window\": 3}}], \"groups\": [{\"name\": \"h\", \"count\": 3}]}", "--params"},
        {"{\"validators\": [{\"name\": \"x\"}, {\"params\": {\"uids_per_windw\": 3}}], \"groups\": [{\"name\": \"h\", \"count\": 3}]}", "uids_per_windw"},
        {"{\"yuma\": {\"tempo_windows\": 0}, \"groups\": [{\"name\": \"h\", \"count\": 3}]}", "tempo_windows"},
        {"{\"validators\": [{\"stak\": 3}], \"groups\": [{\"name\": \"h\", \"count\": 3}]}", "stak"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cJSON *x = cJSON_Parse(bad[i][0]);
        REQUIRE(x);
        CHECK_EQ_INT(gauntlet_sim_run(&p, x, 10, 1, false, &a, &e), TS_ECONFIG);
        CHECK_MSG(strstr(e.msg, bad[i][1]) != NULL, "case %zu: '%s' lacks '%s'", i, e.msg, bad[i][1]);
        cJSON_Delete(x);
    }
    cJSON_Delete(one);
    cJSON_Delete(many);
}

/* ------------------------------------------------------------ command line */

TEST(gauntlet_cli_rate_and_params) {
    char cmd[2048], *out = NULL;
    const char *bin = th_build_dir();
    snprintf(cmd, sizeof cmd,
             "echo '{\"model\": \"plackett-luce\", \"version\": \"6.1.3\", \"params\": {\"beta\": 7, \"tau\": 0.1},"
             " \"teams\": [[{\"mu\": 25, \"sigma\": 8.333333333333334}], [{\"mu\": 30, \"sigma\": 5}],"
             " [{\"mu\": 20, \"sigma\": 7}]], \"scores\": [0.02, -0.01, 0.005]}' | %s/bin/tessera gauntlet rate",
             bin);
    CHECK_EQ_INT(th_run(cmd, &out), 0);
    REQUIRE(out);
    cJSON *j = cJSON_Parse(out);
    REQUIRE(j);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "teams");
    CHECK_EQ_INT(cJSON_GetArraySize(t), 3);
    double mu0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetArrayItem(t, 0), 0), "mu")->valuedouble;
    double sg2 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetArrayItem(t, 2), 0), "sigma")->valuedouble;
    CHECK(mu0 == 27.75493064143286);  /* 17 digits round-trip exactly */
    CHECK(sg2 == 6.899823118085989);
    CHECK(strstr(out, "27.75493064143286") != NULL);
    cJSON_Delete(j);
    free(out);
    out = NULL;
    snprintf(cmd, sizeof cmd, "echo '{\"teams\": [[{\"mu\": 25}]], \"scores\": [1]}' | %s/bin/tessera gauntlet rate 2>&1",
             bin);
    CHECK(th_run(cmd, &out) != 0);
    CHECK(out && strstr(out, "teams") != NULL);
    free(out);
    out = NULL;
    snprintf(cmd, sizeof cmd, "echo '{\"teams\": [[{}], [{}]], \"ranks\": [1, 2], \"bogus\": 1}' | %s/bin/tessera gauntlet rate 2>&1",
             bin);
    CHECK(th_run(cmd, &out) != 0);
    CHECK(out && strstr(out, "bogus") != NULL);
    free(out);
    out = NULL;
    char pf[512];
    snprintf(pf, sizeof pf, "%s/p.json", th_tmpdir());
    FILE *f = fopen(pf, "w");
    REQUIRE(f);
    fputs("{\"uids_per_window\": 20, \"score_flor\": 1}", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/bin/tessera gauntlet params --params %s 2>&1", bin, pf);
    CHECK(th_run(cmd, &out) != 0);
    CHECK(out && strstr(out, "score_flor") != NULL);
    free(out);
    out = NULL;
    snprintf(cmd, sizeof cmd, "%s/bin/tessera gauntlet params", bin);
    CHECK_EQ_INT(th_run(cmd, &out), 0);
    CHECK(out && strstr(out, "\"uids_per_window\":\t15") != NULL);
    free(out);
}
