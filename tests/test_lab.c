/* test_lab.c - the training-quality lab (lab/lab.h): a tiny lab (the tiny
 * preset, 3 miners, 3 outer steps) on a synthetic corpus. */
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "harness.h"
#include "lab/lab.h"

#define MAXP 16

typedef struct run_rec {
    int n;
    lab_point p[MAXP];
} run_rec;

static void rec(const lab_point *p, void *v) {
    run_rec *r = v;
    if (r->n < MAXP) r->p[r->n++] = *p;
}

static char g_train[512], g_val[512];

/* A synthetic corpus (data_synth: a Markov chain over 64 bytes) in the
 * test's directory. */
static void corpus(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/corpus", th_tmpdir());
    data_synth_opts o = {.out_dir = dir, .tokens = 60000, .seed = 5, .shard_tokens = 1 << 20, .val_fraction = 0.1};
    data_synth_stats st;
    ts_err e = {0};
    if (data_synth(&o, &st, &e)) th_fail(__FILE__, __LINE__, "synth: %s", e.msg);
    snprintf(g_train, sizeof g_train, "%s/train", dir);
    snprintf(g_val, sizeof g_val, "%s/val", dir);
}

static void tiny(lab_config *c, lab_method m) {
    lab_config_default(c);
    c->method = m;
    c->data = g_train;
    c->val_data = g_val;
    c->miners = 3;
    c->rounds = 3;
}

static int run(const lab_config *c, run_rec *r) {
    memset(r, 0, sizeof *r);
    ts_err e = {0};
    int rc = lab_run(c, rec, r, false, NULL, &e);
    if (rc) th_fail(__FILE__, __LINE__, "lab_run: %s", e.msg);
    return rc;
}

/* Every number of two runs equal but the wall time. */
static bool same(const run_rec *a, const run_rec *b) {
    if (a->n != b->n) return false;
    for (int i = 0; i < a->n; i++) {
        lab_point x = a->p[i], y = b->p[i];
        x.wall_s = y.wall_s = 0;
        char *jx = lab_point_json(&x), *jy = lab_point_json(&y);
        bool eq = jx && jy && !strcmp(jx, jy);
        if (!eq) fprintf(stderr, "  differs:\n  %s\n  %s\n", jx, jy);
        free(jx);
        free(jy);
        if (!eq) return false;
    }
    return true;
}

TEST(lab_is_deterministic_for_a_seed) {
    corpus();
    for (int m = LAB_SPARSELOCO; m <= LAB_SINGLE; m++) {
        lab_config c;
        tiny(&c, (lab_method)m);
        if (m != LAB_SINGLE) c.faults = (lab_faults){.garbage = 0.34, .offdata = 0.33};
        run_rec a, b, d;
        REQUIRE(run(&c, &a) == TS_OK && run(&c, &b) == TS_OK);
        REQUIRE(a.n == 4);
        CHECK_MSG(same(&a, &b), "%s: two runs with seed 1 differ", lab_method_name((lab_method)m));
        /* the loss falls, and another seed gives other numbers */
        CHECK_MSG(a.p[3].val_loss < a.p[0].val_loss - 0.05, "%s: held-out %.4f -> %.4f",
                  lab_method_name((lab_method)m), a.p[0].val_loss, a.p[3].val_loss);
        c.seed = 2;
        REQUIRE(run(&c, &d) == TS_OK);
        CHECK(d.p[3].val_loss != a.p[3].val_loss);
    }
}

TEST(lab_methods_train_on_equal_tokens) {
    corpus();
    uint64_t tok[4][4];
    double round_bytes[4];
    for (int m = LAB_SPARSELOCO; m <= LAB_SINGLE; m++) {
        lab_config c;
        tiny(&c, (lab_method)m);
        run_rec a;
        REQUIRE(run(&c, &a) == TS_OK && a.n == 4);
        for (int r = 0; r < 4; r++) tok[m][r] = a.p[r].tokens;
        /* bytes: the codec's wire objects, dense fp32 per round, per step, none */
        round_bytes[m] = a.p[1].bytes_round;
        if (m == LAB_SINGLE) CHECK(a.p[3].bytes_total == 0);
    }
    /* bytes a miner sends in a round: the codec's wire object; the dense fp32
     * pseudo-gradient (4 bytes a parameter); that once per inner step; none */
    lab_config c;
    tiny(&c, LAB_DILOCO);
    CHECK(round_bytes[LAB_DILOCO] == 4.0 * 90496);
    CHECK(round_bytes[LAB_DDP] == round_bytes[LAB_DILOCO] * c.inner_steps);
    CHECK(round_bytes[LAB_SPARSELOCO] > 0 && round_bytes[LAB_SPARSELOCO] < round_bytes[LAB_DILOCO] / 10);
    CHECK(round_bytes[LAB_SINGLE] == 0);
    for (int r = 0; r < 4; r++)
        for (int m = 1; m < 4; m++) CHECK_EQ_INT(tok[m][r], tok[0][r]);
    CHECK_EQ_INT(tok[0][3], 3ull * 3 * 4 * 4 * 64); /* rounds x miners x H x B x T */
}

/* k equal to the whole tile and 256 bins: every miner sends every value, so
 * the aggregate is the dense mean of what the miners compressed (after the
 * protocol's median-norm clipping), off by no more than the quantizer's
 * bound (lab.c's header), coordinate by coordinate. */
TEST(lab_full_tile_and_256_bins_give_the_dense_mean_within_the_quantizer_bound) {
    corpus();
    lab_config c;
    tiny(&c, LAB_SPARSELOCO);
    c.codec.k = 4096;
    c.codec.bins = 256;
    c.dense_check = true;
    run_rec fine, coarse, sparse;
    REQUIRE(run(&c, &fine) == TS_OK && fine.n == 4);
    c.codec.bins = 4;
    REQUIRE(run(&c, &coarse) == TS_OK && coarse.n == 4);
    c.codec.k = 64;
    c.codec.bins = 4;
    REQUIRE(run(&c, &sparse) == TS_OK && sparse.n == 4);
    for (int r = 1; r < 4; r++) {
        const lab_point *f = &fine.p[r], *q = &coarse.p[r];
        CHECK_EQ_INT(f->aggregated, 3);
        CHECK_EQ_INT(f->dense_violations, 0);
        CHECK_EQ_INT(q->dense_violations, 0);
        CHECK(f->dense_err_max > 0 && f->dense_err_max <= f->dense_bound_max);
        /* the bound is tight enough to tell the quantizers apart: 4 bins err
         * beyond what 256 bins allow */
        CHECK_MSG(q->dense_err_max > f->dense_bound_max, "round %d: 4-bin error %g, 256-bin bound %g", r,
                  q->dense_err_max, f->dense_bound_max);
        /* and the whole aggregate is close to the dense mean: within the
         * clipping of one miner in three and the 256-bin quantizer */
        CHECK_MSG(f->agg_rel_err < 0.05, "round %d: relative error %g", r, f->agg_rel_err);
        CHECK(f->agg_rel_err < q->agg_rel_err && q->agg_rel_err < sparse.p[r].agg_rel_err);
        printf("    round %d: 256 bins err %.3g <= bound %.3g, rel %.4f; 4 bins rel %.3f; k 64 rel %.3f\n", r,
               f->dense_err_max, f->dense_bound_max, f->agg_rel_err, q->agg_rel_err, sparse.p[r].agg_rel_err);
    }
}

TEST(lab_counts_faults) {
    corpus();
    /* 3 miners: uid 0 silent, uid 1 garbage, uid 2 joins at the second round */
    lab_config c;
    tiny(&c, LAB_SPARSELOCO);
    c.faults = (lab_faults){.silent = 0.34, .garbage = 0.33, .late_join = 1};
    run_rec a;
    REQUIRE(run(&c, &a) == TS_OK && a.n == 4);
    const lab_point *r1 = &a.p[1], *r2 = &a.p[2];
    CHECK_EQ_INT(r1->trained, 2);
    CHECK_EQ_INT(r1->waiting, 1);
    CHECK_EQ_INT(r1->silent, 1);
    CHECK_EQ_INT(r1->sent, 1);
    CHECK_EQ_INT(r1->refused, 1);
    CHECK_STR(r1->refused_reason, "bad_signature");
    CHECK_EQ_INT(r1->accepted, 0);
    /* nothing aggregated: the global model did not move */
    CHECK(r1->val_loss == a.p[0].val_loss);
    CHECK_EQ_INT(r2->trained, 3);
    CHECK_EQ_INT(r2->waiting, 0);
    CHECK_EQ_INT(r2->accepted, 1);
    CHECK_EQ_INT(r2->aggregated, 1);
    CHECK(r2->val_loss < r1->val_loss);
    /* the silent miner sent nothing; the others' bytes count */
    CHECK(r2->bytes_round > 0);

    tiny(&c, LAB_DILOCO);
    c.faults = (lab_faults){.garbage = 0.34, .offdata = 0.33};
    REQUIRE(run(&c, &a) == TS_OK && a.n == 4);
    for (int r = 1; r < 4; r++) {
        CHECK_EQ_INT(a.p[r].refused, 1);
        CHECK_STR(a.p[r].refused_reason, "non_finite");
        CHECK_EQ_INT(a.p[r].offdata, 1);
        CHECK_EQ_INT(a.p[r].accepted, 2);
    }
    /* training on other pages changes the result */
    run_rec b;
    c.faults = (lab_faults){.garbage = 0.34};
    REQUIRE(run(&c, &b) == TS_OK);
    CHECK(b.p[3].val_loss != a.p[3].val_loss);

    tiny(&c, LAB_DDP);
    c.faults = (lab_faults){.silent = 0.34};
    REQUIRE(run(&c, &a) == TS_OK);
    CHECK_EQ_INT(a.p[1].silent, 1);
    CHECK_EQ_INT(a.p[1].accepted, 2);
    CHECK_EQ_INT(a.p[1].sent, 2);
}

TEST(lab_spike_guard_undoes_a_harmful_outer_step) {
    corpus();
    lab_config c;
    tiny(&c, LAB_DILOCO);
    c.diloco_lr = 60; /* an outer step far too long */
    run_rec off, on;
    REQUIRE(run(&c, &off) == TS_OK);
    CHECK_MSG(off.p[1].val_loss > off.p[0].val_loss, "without the guard the step should hurt: %.4f -> %.4f",
              off.p[0].val_loss, off.p[1].val_loss);
    c.spike_guard = 0.01;
    REQUIRE(run(&c, &on) == TS_OK);
    CHECK(on.p[1].guard_skipped);
    CHECK(on.p[1].probe_after > on.p[1].probe_before * 1.01);
    CHECK(on.p[1].val_loss == on.p[0].val_loss); /* undone bit for bit */
    /* a sound step passes the guard */
    tiny(&c, LAB_SPARSELOCO);
    c.spike_guard = 0.01;
    REQUIRE(run(&c, &on) == TS_OK);
    for (int r = 1; r < 4; r++) CHECK(!on.p[r].guard_skipped && on.p[r].probe_after < on.p[r].probe_before);
}

TEST(lab_top_g_aggregates_the_best_uploads) {
    corpus();
    lab_config c;
    tiny(&c, LAB_SPARSELOCO);
    c.top_g = 1;
    c.faults.offdata = 0;
    run_rec a;
    REQUIRE(run(&c, &a) == TS_OK);
    for (int r = 1; r < 4; r++) {
        CHECK_EQ_INT(a.p[r].accepted, 3);
        CHECK_EQ_INT(a.p[r].aggregated, 1);
        CHECK(isfinite(a.p[r].probe_before));
    }
    CHECK(a.p[3].val_loss < a.p[0].val_loss);
}

static void expect_refused(lab_config *c, const char *word) {
    ts_err e = {0};
    int rc = lab_config_check(c, &e);
    CHECK_MSG(rc == TS_EINVAL && strstr(e.msg, word), "wanted a refusal naming '%s': rc %d, '%s'", word, rc, e.msg);
    ts_err e2 = {0};
    CHECK(lab_run(c, NULL, NULL, false, NULL, &e2) == TS_EINVAL);
}

TEST(lab_refuses_bad_configs) {
    corpus();
    lab_config c;
    ts_err e = {0};
    tiny(&c, LAB_SPARSELOCO);
    CHECK_EQ_INT(lab_config_check(&c, &e), TS_OK);
    tiny(&c, LAB_SPARSELOCO);
    c.codec.bins = 3;
    expect_refused(&c, "bins");
    tiny(&c, LAB_SPARSELOCO);
    c.miners = 0;
    expect_refused(&c, "miners");
    tiny(&c, LAB_SPARSELOCO);
    c.top_g = 4;
    expect_refused(&c, "top_g");
    tiny(&c, LAB_SPARSELOCO);
    c.faults.silent = 0.6, c.faults.garbage = 0.6;
    expect_refused(&c, "faults");
    tiny(&c, LAB_SPARSELOCO);
    c.faults.late_join = 3;
    expect_refused(&c, "late_join");
    tiny(&c, LAB_SINGLE);
    c.faults.silent = 0.3;
    expect_refused(&c, "single");
    tiny(&c, LAB_DILOCO);
    c.dense_check = true;
    expect_refused(&c, "dense_check");
    tiny(&c, LAB_SPARSELOCO);
    snprintf(c.label, sizeof c.label, "a\"b");
    expect_refused(&c, "label");
    tiny(&c, LAB_SPARSELOCO);
    c.seq = 100000;
    expect_refused(&c, "seq");
    tiny(&c, LAB_SPARSELOCO);
    c.spike_guard = 0.1, c.probe_samples = 0;
    expect_refused(&c, "probe_samples");
    /* data that cannot hold a round, or the held-out samples */
    tiny(&c, LAB_SPARSELOCO), c.inner_steps = 1000, c.batch = 100;
    CHECK(lab_run(&c, NULL, NULL, false, NULL, &e) == TS_EINVAL && strstr(e.msg, "H x B"));
    tiny(&c, LAB_SPARSELOCO), c.val_samples = 100000;
    CHECK(lab_run(&c, NULL, NULL, false, NULL, &e) == TS_EINVAL && strstr(e.msg, "val_samples"));
    tiny(&c, LAB_SPARSELOCO), c.data = "/nonexistent/train";
    CHECK(lab_run(&c, NULL, NULL, false, NULL, &e) != TS_OK && strstr(e.msg, "/nonexistent/train"));
}

/* The command: a JSON config, flags over it, JSON lines out, and the plot. */
TEST(lab_command_config_results_and_plot) {
    corpus();
    const char *d = th_tmpdir();
    char cfg[700], cmd[4096], *out = NULL, *bd = realpath(th_build_dir(), NULL);
    REQUIRE(bd);
    snprintf(cfg, sizeof cfg, "%s/lab.json", d);
    FILE *f = fopen(cfg, "w");
    REQUIRE(f);
    fprintf(f, "{\"method\": \"sparseloco\", \"miners\": 3, \"rounds\": 2, \"data\": \"%s\", \"val_data\": \"%s\",\n"
               " \"codec\": {\"k\": 32, \"bins\": 4}, \"label\": \"k32\"}\n", g_train, g_val);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "B=%s/bin/tessera; cd %s && $B lab --config lab.json --out r.jsonl 2>err && "
             "$B lab --config lab.json --method diloco --label diloco --out r.jsonl --append 2>>err && "
             "$B lab plot --out p.svg --title 'tiny lab' r.jsonl 2>>err; s=$?; cat r.jsonl err; [ $s = 0 ] && "
             "grep -o '>k32<\\|>diloco<' p.svg | tr '\\n' ' '",
             bd, d);
    int rc = th_run(cmd, &out);
    CHECK_MSG(rc == 0, "exit %d:\n%s", rc, out ? out : "");
    REQUIRE(out);
    CHECK(strstr(out, "\"label\": \"k32\", \"round\": 2") != NULL);
    CHECK(strstr(out, "\"label\": \"diloco\", \"round\": 2") != NULL);
    CHECK(strstr(out, "lab k32: held-out loss") != NULL);
    CHECK(strstr(out, "wrote p.svg: 2 series") != NULL);
    CHECK(strstr(out, ">k32< >diloco<") != NULL);
    free(out);
    /* a bad value in the file is named */
    snprintf(cmd, sizeof cmd, "cd %s && %s/bin/tessera lab --config lab.json --codec-bins 3 2>&1", d, bd);
    rc = th_run(cmd, &out);
    CHECK_MSG(rc != 0 && out && strstr(out, "bins"), "exit %d: %s", rc, out ? out : "");
    free(out);
    free(bd);
}

TEST(lab_plot_draws_every_series) {
    double t[3] = {0, 100, 200}, b1[3] = {0, 1e3, 2e3}, b0[3] = {0, 0, 0}, l1[3] = {5, 4, 3.5}, l2[3] = {5, 4.2, 3.9};
    lab_series s[2] = {{.label = "sparse <k=64>", .n = 3, .tokens = t, .bytes = b1, .loss = l1},
                       {.label = "single", .n = 3, .tokens = t, .bytes = b0, .loss = l2}};
    char *svg = NULL;
    ts_err e = {0};
    REQUIRE(lab_plot_svg(s, 2, "t & t", &svg, &e) == TS_OK);
    CHECK(strstr(svg, "<svg") == svg);
    CHECK(strstr(svg, "sparse &lt;k=64&gt;") && strstr(svg, ">single<") && strstr(svg, "t &amp; t"));
    /* tokens: two lines; bytes: only the series that sent anything */
    int lines = 0;
    for (const char *p = svg; (p = strstr(p, "<polyline")); p++) lines++;
    CHECK_EQ_INT(lines, 4);
    CHECK(strstr(svg, "points=\"\"") != NULL); /* single's empty bytes line */
    free(svg);
    CHECK_EQ_INT(lab_plot_svg(s, 0, NULL, &svg, &e), TS_EINVAL);
}
