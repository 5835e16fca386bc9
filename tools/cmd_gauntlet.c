/* cmd_gauntlet.c - tessera gauntlet rate | params | sim | state. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "gauntlet/gauntlet.h"
#include "tools.h"

#define MAX_STDIN (16u << 20)

static int known_keys(const cJSON *o, const char *const *keys, const char *ctx, ts_err *e) {
    for (const cJSON *it = o->child; it; it = it->next) {
        bool ok = false;
        for (int i = 0; keys[i]; i++)
            if (!strcmp(it->string, keys[i])) ok = true;
        if (!ok) return ts_fail(e, TS_EINVAL, "%s: unknown key '%s'", ctx, it->string);
    }
    return TS_OK;
}

static int get_num(const cJSON *o, const char *k, double *out, const char *ctx, ts_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return TS_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return ts_fail(e, TS_EINVAL, "%s key '%s': expected a finite number", ctx, k);
    *out = v->valuedouble;
    return TS_OK;
}

static int get_bool(const cJSON *o, const char *k, bool *out, const char *ctx, ts_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return TS_OK;
    if (!cJSON_IsBool(v)) return ts_fail(e, TS_EINVAL, "%s key '%s': expected true or false", ctx, k);
    *out = cJSON_IsTrue(v);
    return TS_OK;
}

/* A numeric array of exactly n entries. */
static int get_array(const cJSON *o, const char *k, int n, double **out, ts_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return TS_OK;
    if (!cJSON_IsArray(v)) return ts_fail(e, TS_EINVAL, "key '%s': expected an array", k);
    if (cJSON_GetArraySize(v) == 0) return TS_OK; /* empty means "not given", as in the library */
    if (cJSON_GetArraySize(v) != n)
        return ts_fail(e, TS_EINVAL, "key '%s': %d entries for %d teams", k, cJSON_GetArraySize(v), n);
    double *a = malloc((size_t)n * sizeof *a);
    if (!a) return ts_fail(e, TS_ENOMEM, "out of memory");
    int i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
            free(a);
            return ts_fail(e, TS_EINVAL, "key '%s' entry %d: expected a finite number", k, i);
        }
        a[i] = it->valuedouble;
    }
    *out = a;
    return TS_OK;
}

static int rate_json(const char *text, size_t len, char **out_text, ts_err *e) {
    static const char *const top[] = {"model", "version", "params", "teams", "scores", "ranks",
                                      "weights", "tau", "limit_sigma", NULL};
    static const char *const pk[] = {"mu", "sigma", "beta", "kappa", "tau", "limit_sigma", "balance",
                                     "margin", "epsilon", "window_size", "weight_bounds", NULL};
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) return ts_fail(e, TS_EINVAL, "input is not valid JSON");
    int rc = TS_OK, nteams = 0, np = 0;
    int *sizes = NULL;
    os_rating *in = NULL, *out = NULL;
    double *scores = NULL, *ranks = NULL, *weights = NULL;
    cJSON *res = NULL;
    if (!cJSON_IsObject(j)) {
        rc = ts_fail(e, TS_EINVAL, "input must be a JSON object");
        goto done;
    }
    if ((rc = known_keys(j, top, "input", e))) goto done;
    os_model_kind kind = OS_PLACKETT_LUCE;
    os_version ver = OS_V6_1_3;
    const cJSON *mv = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (mv && (!cJSON_IsString(mv) || os_model_parse(mv->valuestring, &kind))) {
        rc = ts_fail(e, TS_EINVAL, "key 'model': expected plackett-luce, bradley-terry-full, "
                                   "thurstone-mosteller-full, bradley-terry-part or thurstone-mosteller-part");
        goto done;
    }
    const cJSON *vv = cJSON_GetObjectItemCaseSensitive(j, "version");
    if (vv && (!cJSON_IsString(vv) || os_version_parse(vv->valuestring, &ver))) {
        rc = ts_fail(e, TS_EINVAL, "key 'version': expected \"6.1.3\" or \"6.2.0\"");
        goto done;
    }
    os_model m;
    os_model_init(&m, kind, ver);
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(j, "params");
    if (pp) {
        if (!cJSON_IsObject(pp)) {
            rc = ts_fail(e, TS_EINVAL, "key 'params': expected an object");
            goto done;
        }
        double ws = m.window_size;
        if ((rc = known_keys(pp, pk, "params", e)) || (rc = get_num(pp, "mu", &m.mu, "params", e)) ||
            (rc = get_num(pp, "sigma", &m.sigma, "params", e)) ||
            (rc = get_num(pp, "beta", &m.beta, "params", e)) ||
            (rc = get_num(pp, "kappa", &m.kappa, "params", e)) ||
            (rc = get_num(pp, "tau", &m.tau, "params", e)) ||
            (rc = get_num(pp, "margin", &m.margin, "params", e)) ||
            (rc = get_num(pp, "epsilon", &m.epsilon, "params", e)) ||
            (rc = get_num(pp, "window_size", &ws, "params", e)) ||
            (rc = get_bool(pp, "limit_sigma", &m.limit_sigma, "params", e)) ||
            (rc = get_bool(pp, "balance", &m.balance, "params", e)) ||
            (rc = get_bool(pp, "weight_bounds", &m.weight_bounds, "params", e)))
            goto done;
        if (ws != floor(ws) || ws < 1 || ws > 1e6) {
            rc = ts_fail(e, TS_EINVAL, "params key 'window_size': expected a positive integer");
            goto done;
        }
        m.window_size = (int)ws;
    }
    const cJSON *teams = cJSON_GetObjectItemCaseSensitive(j, "teams");
    if (!cJSON_IsArray(teams) || cJSON_GetArraySize(teams) < 2 || cJSON_GetArraySize(teams) > 100000) {
        rc = ts_fail(e, TS_EINVAL, "key 'teams': expected an array of at least 2 teams");
        goto done;
    }
    nteams = cJSON_GetArraySize(teams);
    sizes = calloc((size_t)nteams, sizeof *sizes);
    if (!sizes) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto done;
    }
    int t = 0;
    for (const cJSON *tm = teams->child; tm; tm = tm->next, t++) {
        if (!cJSON_IsArray(tm) || cJSON_GetArraySize(tm) < 1) {
            rc = ts_fail(e, TS_EINVAL, "team %d: expected a non-empty array of players", t);
            goto done;
        }
        sizes[t] = cJSON_GetArraySize(tm);
        np += sizes[t];
        if (np > 1000000) {
            rc = ts_fail(e, TS_ETOOBIG, "too many players");
            goto done;
        }
    }
    in = calloc((size_t)np, sizeof *in);
    out = calloc((size_t)np, sizeof *out);
    if (!in || !out) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto done;
    }
    int at = 0;
    t = 0;
    for (const cJSON *tm = teams->child; tm; tm = tm->next, t++)
        for (const cJSON *pl = tm->child; pl; pl = pl->next, at++) {
            static const char *const plk[] = {"mu", "sigma", NULL};
            char ctx[64];
            snprintf(ctx, sizeof ctx, "team %d player %d", t, at);
            if (!cJSON_IsObject(pl)) {
                rc = ts_fail(e, TS_EINVAL, "%s: expected {\"mu\": ..., \"sigma\": ...}", ctx);
                goto done;
            }
            in[at] = (os_rating){m.mu, m.sigma}; /* model.rating() defaults */
            if ((rc = known_keys(pl, plk, ctx, e)) || (rc = get_num(pl, "mu", &in[at].mu, ctx, e)) ||
                (rc = get_num(pl, "sigma", &in[at].sigma, ctx, e)))
                goto done;
        }
    if ((rc = get_array(j, "scores", nteams, &scores, e)) || (rc = get_array(j, "ranks", nteams, &ranks, e)))
        goto done;
    const cJSON *wv = cJSON_GetObjectItemCaseSensitive(j, "weights");
    if (wv && !cJSON_IsNull(wv) && !(cJSON_IsArray(wv) && cJSON_GetArraySize(wv) == 0)) {
        if (!cJSON_IsArray(wv) || cJSON_GetArraySize(wv) != nteams) {
            rc = ts_fail(e, TS_EINVAL, "key 'weights': expected one array per team");
            goto done;
        }
        weights = calloc((size_t)np, sizeof *weights);
        if (!weights) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            goto done;
        }
        at = 0;
        t = 0;
        for (const cJSON *tw = wv->child; tw; tw = tw->next, t++) {
            if (!cJSON_IsArray(tw) || cJSON_GetArraySize(tw) != sizes[t]) {
                rc = ts_fail(e, TS_EINVAL, "weights of team %d: expected %d numbers", t, sizes[t]);
                goto done;
            }
            for (const cJSON *x = tw->child; x; x = x->next, at++) {
                if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) {
                    rc = ts_fail(e, TS_EINVAL, "weights of team %d: expected finite numbers", t);
                    goto done;
                }
                weights[at] = x->valuedouble;
            }
        }
    }
    double tau = 0;
    bool has_tau = cJSON_GetObjectItemCaseSensitive(j, "tau") != NULL, ls = false;
    int lsv = -1;
    if ((rc = get_num(j, "tau", &tau, "input", e))) goto done;
    if (cJSON_GetObjectItemCaseSensitive(j, "limit_sigma")) {
        if ((rc = get_bool(j, "limit_sigma", &ls, "input", e))) goto done;
        lsv = ls;
    }
    os_match mt = {.nteams = nteams, .team_sizes = sizes, .ratings = in, .ranks = ranks,
                   .scores = scores, .weights = weights, .tau = has_tau ? &tau : NULL,
                   .limit_sigma = lsv};
    if ((rc = os_rate(&m, &mt, out, e))) goto done;
    /* output: 17 significant digits round-trip every double */
    size_t cap = 64 + (size_t)np * 96 + (size_t)nteams * 8;
    char *s = malloc(cap), *p = s;
    if (!s) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto done;
    }
    p += sprintf(p, "{\"teams\": [");
    at = 0;
    for (t = 0; t < nteams; t++) {
        p += sprintf(p, "%s[", t ? ", " : "");
        for (int i = 0; i < sizes[t]; i++, at++)
            p += sprintf(p, "%s{\"mu\": %.17g, \"sigma\": %.17g}", i ? ", " : "", out[at].mu, out[at].sigma);
        p += sprintf(p, "]");
    }
    sprintf(p, "]}\n");
    *out_text = s;
done:
    cJSON_Delete(res);
    cJSON_Delete(j);
    free(sizes);
    free(in);
    free(out);
    free(scores);
    free(ranks);
    free(weights);
    return rc;
}

static int cmd_rate(int argc, char **argv) {
    const ts_cmdline c = {
        .prog = "tessera gauntlet rate",
        .usage = "< MATCH.json",
        .summary =
            "Rates one match as openskill.py would and prints the new ratings.\n"
            "Input on stdin: {\"model\": \"plackett-luce\", \"version\": \"6.1.3\",\n"
            "  \"params\": {\"beta\": 7, \"tau\": 0.1, ...}, \"teams\": [[{\"mu\": 25, \"sigma\": 8.33}], ...],\n"
            "  \"scores\": [...]} (or \"ranks\"; optional \"weights\", \"tau\", \"limit_sigma\").\n"
            "Models: plackett-luce, bradley-terry-full, thurstone-mosteller-full (and the -part\n"
            "variants); params: mu sigma beta kappa tau limit_sigma balance margin (library\n"
            "defaults for any left out).  Output: {\"teams\": [[{\"mu\": ..., \"sigma\": ...}], ...]}.",
        .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    char *in = NULL, *out = NULL;
    size_t len = 0;
    if ((rc = tool_read_stdin(MAX_STDIN, &in, &len, &e)) == TS_OK) rc = rate_json(in, len, &out, &e);
    free(in);
    if (rc) return tool_error(&e);
    fputs(out, stdout);
    free(out);
    return 0;
}

static int cmd_params(int argc, char **argv) {
    char *path = NULL;
    const ts_opt opts[] = {
        {"params", TS_OPT_STR, &path, NULL, "parameter file to check and print (default: the defaults)", TS_OPT_NOENV, 'p'},
    };
    const ts_cmdline c = {
        .prog = "tessera gauntlet params",
        .usage = "[--params FILE]",
        .summary = "Prints every scoring parameter as JSON: the defaults, or FILE's values over\n"
                   "them after checking it (unknown keys, wrong types and values out of range\n"
                   "are errors naming the key).",
        .opts = opts,
        .nopts = 1,
        .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    gauntlet_params p;
    gauntlet_params_default(&p);
    if (path && (rc = gauntlet_params_load(&p, path, &e))) {
        ts_opts_free(opts, 1);
        return tool_error(&e);
    }
    char *s = gauntlet_params_to_json(&p);
    if (s) printf("%s\n", s);
    free(s);
    ts_opts_free(opts, 1);
    return 0;
}

static int cmd_sim(int argc, char **argv) {
    char *params = NULL, *pop = NULL, *plot = NULL;
    int64_t windows = 0, seed = 0, seeds = 0;
    bool rules_table = false;
    const ts_opt opts[] = {
        {"params", TS_OPT_STR, &params, NULL, "scoring parameter file (default: the defaults)", TS_OPT_NOENV, 'p'},
        {"population", TS_OPT_STR, &pop, NULL, "population file (see gauntlet/population.json)", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
        {"windows", TS_OPT_INT, &windows, "200", "windows to simulate", TS_OPT_NOENV, 'n'},
        {"seed", TS_OPT_INT, &seed, "1", "seed of every random draw", TS_OPT_NOENV, 's'},
        {"plot", TS_OPT_STR, &plot, NULL, "write an SVG of emission shares and ratings here", TS_OPT_NOENV, 0},
        {"rules", TS_OPT_BOOL, &rules_table, "false", "instead: each rule on and off, the share of the group it targets", TS_OPT_NOENV, 0},
        {"seeds", TS_OPT_INT, &seeds, "1", "--rules: average over this many seeds from --seed", TS_OPT_NOENV, 0},
    };
    const ts_opt_range ranges[] = {
        {"windows", 1, 10000000, 0},
        {"seed", 0, INFINITY, 0},
        {"seeds", 1, 1000, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera gauntlet sim",
        .usage = "--population POP.json [--params P.json] [--windows N] [--seed S] [--plot FILE.svg] [--rules [--seeds N]]",
        .summary = "Runs the scoring (selection, window update, weights, peer list: the\n"
                   "validator's code) over a synthetic population and prints, per behaviour, the\n"
                   "share of emission over time, the time a newcomer needs to earn and the rank\n"
                   "correlation between true quality and weight.",
        .opts = opts,
        .nopts = 7,
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
        .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    gauntlet_params p;
    gauntlet_params_default(&p);
    cJSON *j = NULL;
    gauntlet_sim_result *r = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (params && (rc = gauntlet_params_load(&p, params, &e))) goto out;
    if (windows < 1 || windows > 10000000) {
        rc = ts_fail(&e, TS_EINVAL, "--windows must be between 1 and 10000000");
        goto out;
    }
    if ((rc = ts_read_file(pop, 4u << 20, &buf, &len, &e))) goto out;
    j = cJSON_ParseWithLength((const char *)buf, len);
    if (!j) {
        rc = ts_fail(&e, TS_ECONFIG, "%s: not valid JSON", pop);
        goto out;
    }
    if (rules_table) {
        if ((rc = gauntlet_sim_rules(&p, j, (uint64_t)windows, (uint64_t)seed, (uint64_t)seeds, stdout, &e))) ts_wrap(&e, "%s", pop);
        goto out;
    }
    if ((rc = gauntlet_sim_run(&p, j, (uint64_t)windows, (uint64_t)seed, isatty(2), &r, &e))) {
        ts_wrap(&e, "%s", pop);
        goto out;
    }
    gauntlet_sim_print(r, stdout);
    if (plot) {
        if ((rc = gauntlet_sim_svg(r, plot, &e))) goto out;
        printf("plot written to %s\n", plot);
    }
out:
    gauntlet_sim_free(r);
    cJSON_Delete(j);
    free(buf);
    ts_opts_free(opts, 7);
    return rc ? tool_error(&e) : 0;
}

static int cmd_state(int argc, char **argv) {
    const ts_cmdline c = {
        .prog = "tessera gauntlet state",
        .usage = "FILE",
        .summary = "Checks a scoring state file and prints it, one uid per line.",
        .min_pos = 1,
        .max_pos = 1,
    };
    char **pos;
    int npos;
    int rc = tool_parse(&c, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    gauntlet_state s;
    gauntlet_state_init(&s);
    rc = gauntlet_state_load(&s, pos[0], &e);
    free(pos);
    if (rc) return tool_error(&e);
    if (s.window == GAUNTLET_NEVER) printf("window     none\n");
    else printf("window     %llu\n", (unsigned long long)s.window);
    printf("uids       %zu\n", s.n);
    printf("started    window %llu\n", (unsigned long long)s.first_window);
    printf("%6s %10s %8s %7s %6s %9s %8s %9s %6s %s\n", "uid", "final", "gradient", "bma", "sync",
           "mu", "sigma", "last_eval", "banned",
           "penalties (miss/early/late/inv/sync/inact/slash/reset/ban gather-miss/gather-ban/neg-slash/neg-excl)");
    for (size_t i = 0; i < s.n; i++) {
        const gauntlet_uid *u = &s.uids[i];
        char le[24];
        if (u->last_eval_window == GAUNTLET_NEVER) snprintf(le, sizeof le, "never");
        else snprintf(le, sizeof le, "%llu", (unsigned long long)u->last_eval_window);
        printf("%6u %10.6f %8.5f %7.4f %6.3f %9.4f %8.4f %9s %6s %u/%u/%u/%u/%u/%u/%u/%u/%u %u/%u/%u/%u%s\n",
               u->uid, u->final_score, u->gradient_score, u->binary_ma, u->sync_score, u->rating.mu,
               u->rating.sigma, le, gauntlet_is_banned(u, s.window) ? "yes" : "no",
               u->counts[GAUNTLET_CNT_MISSING], u->counts[GAUNTLET_CNT_EARLY],
               u->counts[GAUNTLET_CNT_LATE], u->counts[GAUNTLET_CNT_INVALID],
               u->counts[GAUNTLET_CNT_POOR_SYNC], u->counts[GAUNTLET_CNT_INACTIVE],
               u->counts[GAUNTLET_CNT_COPY_SLASH], u->counts[GAUNTLET_CNT_COPY_RESET],
               u->counts[GAUNTLET_CNT_COPY_BAN], u->counts[GAUNTLET_CNT_GATHER_MISS],
               u->counts[GAUNTLET_CNT_GATHER_BAN], u->counts[GAUNTLET_CNT_NEG_SLASH],
               u->counts[GAUNTLET_CNT_NEG_EXCLUDE], u->excluded ? " (out of the peer list)" : "");
    }
    gauntlet_state_free(&s);
    return 0;
}

static int cmd_gauntlet(int argc, char **argv) {
    static const tool_verb verbs[] = {
        {"rate", "rate one OpenSkill match read as JSON on stdin", cmd_rate},
        {"params", "print (and check) the scoring parameters", cmd_params},
        {"sim", "simulate the scoring over a synthetic population", cmd_sim},
        {"state", "check and print a scoring state file", cmd_state},
    };
    return tool_dispatch("tessera gauntlet", "Scoring: OpenSkill, parameters, simulator, state.", verbs, 4,
                         argc, argv);
}

TS_COMMAND("gauntlet", "scoring: OpenSkill ratings, parameters, simulator", 60, cmd_gauntlet)
