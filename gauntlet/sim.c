/* sim.c - the subnet owner's simulator: the real scoring code (selection,
 * window update, weights, peer list) driven by a synthetic population.
 *
 * The loss model (documented in the README) stands in for the validator's
 * measurements.  Per window w the loss of one sample is
 *     l(w) = loss_floor + (loss_start - loss_floor) exp(-w / loss_decay_windows)
 * and a "before" loss is the sum over eval_samples samples times (1 + 0.02 N).
 * An honest miner of quality q improves the random-data loss by the relative
 *     r = improvement q (1 + noise N)
 * and its own data by r + |r| own_bonus (1 + noise N) (it trained on exactly
 * those pages), so its indicator is +1 almost always.  A lazy miner trains on
 * pages of its own choosing: its own pages are as unseen as random ones, so
 * its own-data improvement is an independent draw of the same law and the
 * indicator is a coin flip.  A copycat uploads the current best miner's
 * update a little later (random-data improvement of its victim, coin-flip
 * indicator, overlap `overlap` with its victim when both are gathered).
 * Faults are per-window draws: missing (no upload: inactive), early or late
 * (uploaded, wrong time), NaN (invalid).  Steps behind are |N(0, lag)|.
 * Newcomers register at join_window, leavers deregister at leave_window. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gauntlet.h"
#include "yuma/yuma.h"

enum { BEH_HONEST, BEH_LAZY, BEH_COPYCAT };

typedef struct sim_group {
    char name[32];
    int behaviour;
    int64_t count;
    double q_lo, q_hi;
    double p_missing, p_early, p_late, p_nan;
    double lag;
    double overlap;
    bool smart;              /* copycat that also trains on its own pages (its indicator looks honest) */
    double p_regress;        /* a window's update makes the random-data loss worse */
    double p_spike, spike;   /* a window's update is `spike` times its usual size */
    int64_t join, leave; /* leave < 0: never */
} sim_group;

typedef struct sim_miner {
    uint32_t uid;
    int group;
    double quality;
    uint64_t join, leave;
    double r_now;            /* this window's random-data improvement */
    gauntlet_upload status;  /* this window's upload */
    bool uploaded;
    int64_t first_paid;      /* first window with weight, -1 before */
    double wsum;             /* sum of weights over the last quarter */
} sim_miner;

typedef struct rng {
    uint64_t s[4];
} rng;

/* ------------------------------------------------------------ validators */

enum { VAL_HONEST, VAL_COPY, VAL_FAVOUR };

typedef struct sim_val {
    char name[32];
    int behaviour;
    double stake;            /* TAO */
    uint64_t seed;
    int target;              /* VAL_FAVOUR: the group it favours */
    gauntlet_params p;
    gauntlet_state st;
    rng r;
    uint32_t *wu;            /* its weights on chain */
    double *ww;
    size_t wn;
    uint64_t last_update;    /* block (window + 1) of its last weights; 0: none */
    double dividends, vtrust; /* sums over the epochs counted */
} sim_val;

typedef struct sim_yuma {
    int nval;
    sim_val *vals;
    bool listed;             /* the population has "validators" */
    int64_t tempo;           /* windows per epoch */
    yuma_params yp;
    uint64_t epochs;         /* counted (from window 20) */
    double *incentive;       /* [ngroups + 1]: summed server emission by group; last: the burn uid */
    double miners, validators; /* summed server and validator emission */
} sim_yuma;

struct gauntlet_sim_result {
    int ngroups;
    sim_group *groups;
    int nminers;
    sim_miner *miners;
    uint64_t windows;
    float *share;   /* [(ngroups + 1) * windows]: last group is the burn */
    float *ordinal; /* [ngroups * windows], NaN when the group has nobody */
    double seconds;
    uint64_t evals, bans;
    uint64_t *fired; /* [ngroups * 32]: windows a GAUNTLET_PEN_* bit was set, per group; bit 31: capped */
    sim_yuma y;
};
#define SIM_CAPPED 31



/* ------------------------------------------------------------ randomness */


static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static uint64_t rng_next(rng *r) { /* xoshiro256** */
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5, res = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return res;
}

static double rng_u(rng *r) { return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }

static double rng_n(rng *r) {
    return sqrt(-2.0 * log(rng_u(r))) * cos(2.0 * M_PI * rng_u(r));
}

/* ------------------------------------------------------------ population */

typedef struct loss_model {
    double loss_start, loss_floor, loss_decay, improvement, noise, own_bonus, lag;
} loss_model;

static int num_key(const cJSON *o, const char *k, double lo, double hi, double *out, const char *ctx,
                   ts_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return TS_OK;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return ts_fail(e, TS_ECONFIG, "population %s key '%s': expected a number in [%g, %g]", ctx, k, lo, hi);
    *out = v->valuedouble;
    return TS_OK;
}

static int check_keys(const cJSON *o, const char *const *keys, const char *ctx, ts_err *e) {
    for (const cJSON *it = o->child; it; it = it->next) {
        bool ok = false;
        for (int i = 0; keys[i]; i++)
            if (!strcmp(it->string, keys[i])) ok = true;
        if (!ok) return ts_fail(e, TS_ECONFIG, "population %s: unknown key '%s'", ctx, it->string);
    }
    return TS_OK;
}

static int parse_population(const cJSON *pop, sim_group **gout, int *ng, loss_model *lm, ts_err *e) {
    static const char *const top[] = {"groups", "model", "validators", "yuma", "_comment", NULL};
    static const char *const gk[] = {"name", "behaviour", "count", "quality", "missing_prob",
                                     "early_prob", "late_prob", "nan_prob", "steps_behind",
                                     "overlap", "join_window", "leave_window", "regress_prob",
                                     "spike_prob", "spike_factor", "smart", "_comment", NULL};
    static const char *const mk[] = {"loss_start", "loss_floor", "loss_decay_windows", "improvement",
                                     "noise", "own_bonus", "steps_behind", "_comment", NULL};
    if (!cJSON_IsObject(pop)) return ts_fail(e, TS_ECONFIG, "population must be a JSON object");
    int rc = check_keys(pop, top, "file", e);
    if (rc) return rc;
    *lm = (loss_model){3.0, 2.2, 400, 0.002, 0.3, 0.5, 0.3};
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(pop, "model");
    if (m) {
        if (!cJSON_IsObject(m)) return ts_fail(e, TS_ECONFIG, "population key 'model': expected an object");
        if ((rc = check_keys(m, mk, "model", e)) ||
            (rc = num_key(m, "loss_start", 0.01, 100, &lm->loss_start, "model", e)) ||
            (rc = num_key(m, "loss_floor", 0.001, 100, &lm->loss_floor, "model", e)) ||
            (rc = num_key(m, "loss_decay_windows", 1, 1e9, &lm->loss_decay, "model", e)) ||
            (rc = num_key(m, "improvement", 0, 0.5, &lm->improvement, "model", e)) ||
            (rc = num_key(m, "noise", 0, 10, &lm->noise, "model", e)) ||
            (rc = num_key(m, "own_bonus", 0, 100, &lm->own_bonus, "model", e)) ||
            (rc = num_key(m, "steps_behind", 0, 1000, &lm->lag, "model", e)))
            return rc;
        if (lm->loss_floor > lm->loss_start)
            return ts_fail(e, TS_ECONFIG, "population model: loss_floor above loss_start");
    }
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(pop, "groups");
    int n = cJSON_GetArraySize(gs);
    if (!cJSON_IsArray(gs) || n < 1 || n > 32)
        return ts_fail(e, TS_ECONFIG, "population key 'groups': expected an array of 1 to 32 groups");
    sim_group *g = calloc((size_t)n, sizeof *g);
    if (!g) return ts_fail(e, TS_ENOMEM, "out of memory");
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *o = cJSON_GetArrayItem(gs, i);
        char ctx[48];
        snprintf(ctx, sizeof ctx, "group %d", i);
        if (!cJSON_IsObject(o)) {
            rc = ts_fail(e, TS_ECONFIG, "population %s: expected an object", ctx);
            goto fail;
        }
        if ((rc = check_keys(o, gk, ctx, e))) goto fail;
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
        const cJSON *bh = cJSON_GetObjectItemCaseSensitive(o, "behaviour");
        if (!cJSON_IsString(nm) || !nm->valuestring[0] || strlen(nm->valuestring) >= sizeof g[i].name) {
            rc = ts_fail(e, TS_ECONFIG, "population %s key 'name': expected a string of 1 to 31 bytes", ctx);
            goto fail;
        }
        snprintf(g[i].name, sizeof g[i].name, "%s", nm->valuestring);
        const char *b = cJSON_IsString(bh) ? bh->valuestring : "honest";
        if (bh && !cJSON_IsString(bh)) b = "?";
        if (!strcmp(b, "honest")) g[i].behaviour = BEH_HONEST;
        else if (!strcmp(b, "lazy")) g[i].behaviour = BEH_LAZY;
        else if (!strcmp(b, "copycat")) g[i].behaviour = BEH_COPYCAT;
        else {
            rc = ts_fail(e, TS_ECONFIG, "population %s key 'behaviour': expected honest, lazy or copycat", ctx);
            goto fail;
        }
        double cnt = 0, join = 0, leave = -1;
        g[i].q_lo = 0.5;
        g[i].q_hi = 1.5;
        g[i].lag = lm->lag;
        g[i].overlap = 0.8;
        g[i].spike = 10;
        const cJSON *sm = cJSON_GetObjectItemCaseSensitive(o, "smart");
        if (sm && !cJSON_IsBool(sm)) {
            rc = ts_fail(e, TS_ECONFIG, "population %s key 'smart': expected true or false", ctx);
            goto fail;
        }
        g[i].smart = cJSON_IsTrue(sm);
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "quality");
        if (q) {
            if (!cJSON_IsArray(q) || cJSON_GetArraySize(q) != 2 ||
                !cJSON_IsNumber(cJSON_GetArrayItem(q, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(q, 1))) {
                rc = ts_fail(e, TS_ECONFIG, "population %s key 'quality': expected [low, high]", ctx);
                goto fail;
            }
            g[i].q_lo = cJSON_GetArrayItem(q, 0)->valuedouble;
            g[i].q_hi = cJSON_GetArrayItem(q, 1)->valuedouble;
            if (!(g[i].q_lo >= 0 && g[i].q_lo <= g[i].q_hi && g[i].q_hi <= 100)) {
                rc = ts_fail(e, TS_ECONFIG, "population %s key 'quality': need 0 <= low <= high <= 100", ctx);
                goto fail;
            }
        }
        if ((rc = num_key(o, "count", 0, 65000, &cnt, ctx, e)) ||
            (rc = num_key(o, "missing_prob", 0, 1, &g[i].p_missing, ctx, e)) ||
            (rc = num_key(o, "early_prob", 0, 1, &g[i].p_early, ctx, e)) ||
            (rc = num_key(o, "late_prob", 0, 1, &g[i].p_late, ctx, e)) ||
            (rc = num_key(o, "nan_prob", 0, 1, &g[i].p_nan, ctx, e)) ||
            (rc = num_key(o, "steps_behind", 0, 1000, &g[i].lag, ctx, e)) ||
            (rc = num_key(o, "overlap", 0, 1, &g[i].overlap, ctx, e)) ||
            (rc = num_key(o, "join_window", 0, 1e12, &join, ctx, e)) ||
            (rc = num_key(o, "leave_window", 0, 1e12, &leave, ctx, e)) ||
            (rc = num_key(o, "regress_prob", 0, 1, &g[i].p_regress, ctx, e)) ||
            (rc = num_key(o, "spike_prob", 0, 1, &g[i].p_spike, ctx, e)) ||
            (rc = num_key(o, "spike_factor", 1, 1000, &g[i].spike, ctx, e)))
            goto fail;
        if (cnt != floor(cnt) || join != floor(join) || (leave >= 0 && leave != floor(leave))) {
            rc = ts_fail(e, TS_ECONFIG, "population %s: count and windows must be integers", ctx);
            goto fail;
        }
        if (g[i].p_missing + g[i].p_early + g[i].p_late + g[i].p_nan > 1) {
            rc = ts_fail(e, TS_ECONFIG, "population %s: fault probabilities add up to more than 1", ctx);
            goto fail;
        }
        g[i].count = (int64_t)cnt;
        g[i].join = (int64_t)join;
        g[i].leave = leave < 0 ? -1 : (int64_t)leave;
        total += g[i].count;
    }
    if (total < 1 || total > 65000) {
        rc = ts_fail(e, TS_ECONFIG, "population: %lld miners (1 to 65000)", (long long)total);
        goto fail;
    }
    *gout = g;
    *ng = n;
    return TS_OK;
fail:
    free(g);
    return rc;
}

/* ------------------------------------------------------------ the run */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* What a validator measures of miner m this window (its own noise from
 * `r`); count: tally the gradient cap's use. */
static void measure(gauntlet_sim_result *R, const loss_model *lm, const gauntlet_params *p, const sim_miner *m,
                    double victim_r, double l, rng *r, gauntlet_eval *x, bool count) {
    const sim_group *g = &R->groups[m->group];
    double samples = (double)p->eval_samples;
    memset(x, 0, sizeof *x);
    x->uid = m->uid;
    x->status = m->status;
    double rr = m->r_now, own;
    if (g->behaviour == BEH_COPYCAT) {
        rr = victim_r * (1 + 0.05 * rng_n(r));
        own = lm->improvement * m->quality * (1 + lm->noise * rng_n(r));
        own = own < rr ? own : rr * (1 + 0.02 * rng_n(r)); /* its own pages are unseen */
        if (g->smart) own = rr + fabs(rr) * lm->own_bonus * (1 + lm->noise * rng_n(r));
    } else if (g->behaviour == BEH_LAZY) {
        own = lm->improvement * m->quality * (1 + lm->noise * rng_n(r));
    } else {
        own = rr + fabs(rr) * lm->own_bonus * (1 + lm->noise * rng_n(r));
    }
    x->loss_rand_before = samples * l * (1 + 0.02 * rng_n(r));
    x->loss_rand_after = x->loss_rand_before * (1 - rr);
    x->loss_own_before = samples * l * (1 + 0.02 * rng_n(r));
    x->loss_own_after = x->loss_own_before * (1 - own);
    x->steps_behind = fabs(g->lag * rng_n(r));
    if (count && p->gradient_cap > 0 && m->status == GAUNTLET_UPLOAD_OK && rr > p->gradient_cap)
        R->fired[(size_t)m->group * 32 + SIM_CAPPED]++;
    if (m->status == GAUNTLET_UPLOAD_INVALID) x->loss_rand_after = NAN;
}

/* Copycat overlaps among the valid uploads a validator holds, as it checks
 * them: the gathered peers' and the miners it evaluated.  Returns how many
 * pairs were written to ov. */
static size_t overlaps(const gauntlet_sim_result *R, const int *by_uid, const uint32_t *gather, size_t n_gather,
                       const uint32_t *sel, size_t nsel, uint32_t victim, uint64_t w, uint32_t *opool, rng *r,
                       gauntlet_overlap *ov) {
    size_t nov = 0, npool = 0;
    for (size_t a = 0; a < n_gather; a++) {
        const sim_miner *ma = &R->miners[by_uid[gather[a]]];
        if (w >= ma->join && w < ma->leave && ma->status == GAUNTLET_UPLOAD_OK) opool[npool++] = ma->uid;
    }
    for (size_t k = 0; k < nsel; k++) {
        const sim_miner *ma = &R->miners[by_uid[sel[k]]];
        bool dup = false;
        for (size_t a = 0; a < npool; a++) dup |= opool[a] == ma->uid;
        if (!dup && ma->status == GAUNTLET_UPLOAD_OK) opool[npool++] = ma->uid;
    }
    for (size_t a = 0; a < npool; a++)
        for (size_t b = a + 1; b < npool; b++) {
            const sim_miner *ma = &R->miners[by_uid[opool[a]]], *mb = &R->miners[by_uid[opool[b]]];
            bool ca = R->groups[ma->group].behaviour == BEH_COPYCAT;
            bool cb = R->groups[mb->group].behaviour == BEH_COPYCAT;
            double o = 0.02 + 0.06 * rng_u(r);
            uint32_t later = rng_u(r) < 0.5 ? ma->uid : mb->uid;
            if (ca && (mb->uid == victim || cb)) {
                o = R->groups[ma->group].overlap * (1 + 0.05 * rng_n(r));
                later = ma->uid;
            } else if (cb && ma->uid == victim) {
                o = R->groups[mb->group].overlap * (1 + 0.05 * rng_n(r));
                later = mb->uid;
            }
            if (o > 1) o = 1;
            if (o < 0) o = 0;
            ov[nov++] = (gauntlet_overlap){ma->uid, mb->uid, o, later};
        }
    return nov;
}

/* ------------------------------------------------------------ validators and Yuma */

static void free_validators(sim_yuma *y) {
    for (int v = 0; v < y->nval; v++) {
        gauntlet_state_free(&y->vals[v].st);
        free(y->vals[v].wu);
        free(y->vals[v].ww);
    }
    free(y->vals);
    free(y->incentive);
    memset(y, 0, sizeof *y);
}

/* "validators": [{"name", "stake" (TAO), "seed", "behaviour" (honest, copy,
 * favour), "favours" (a group name), "params" (parameter overrides)}, ...]
 * and "yuma": {"tempo_windows", "kappa", "bonds_moving_average"}.  Without
 * "validators" there is one honest validator.  The first validator is the
 * leader: its parameters are the run's (p; "params" is refused there), it
 * posts the peer list, and the "share of emission" table is its weights. */
static int parse_validators(const cJSON *pop, gauntlet_sim_result *R, const gauntlet_params *p, uint64_t seed,
                            ts_err *e) {
    static const char *const vk[] = {"name", "stake", "seed", "behaviour", "favours", "params", "_comment", NULL};
    static const char *const yk[] = {"tempo_windows", "kappa", "bonds_moving_average", "_comment", NULL};
    sim_yuma *y = &R->y;
    yuma_params_default(&y->yp);
    y->tempo = 3;
    int rc;
    const cJSON *yj = cJSON_GetObjectItemCaseSensitive(pop, "yuma");
    if (yj) {
        double t = 3, kappa = y->yp.kappa, bma = (double)y->yp.bonds_moving_average;
        if (!cJSON_IsObject(yj)) return ts_fail(e, TS_ECONFIG, "population key 'yuma': expected an object");
        if ((rc = check_keys(yj, yk, "yuma", e)) || (rc = num_key(yj, "tempo_windows", 1, 1e6, &t, "yuma", e)) ||
            (rc = num_key(yj, "kappa", 0, 65535, &kappa, "yuma", e)) ||
            (rc = num_key(yj, "bonds_moving_average", 0, 1e6, &bma, "yuma", e)))
            return rc;
        if (t != floor(t) || kappa != floor(kappa) || bma != floor(bma))
            return ts_fail(e, TS_ECONFIG, "population yuma: tempo_windows, kappa and bonds_moving_average are integers");
        y->tempo = (int64_t)t;
        y->yp.kappa = (uint16_t)kappa;
        y->yp.bonds_moving_average = (uint64_t)bma;
    }
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(pop, "validators");
    int n = vs ? cJSON_GetArraySize(vs) : 1;
    if (vs && (!cJSON_IsArray(vs) || n < 1 || n > 64))
        return ts_fail(e, TS_ECONFIG, "population key 'validators': expected an array of 1 to 64 validators");
    y->listed = vs != NULL;
    y->vals = calloc((size_t)n, sizeof *y->vals);
    y->incentive = calloc((size_t)R->ngroups + 1, sizeof(double));
    if (!y->vals || !y->incentive) return ts_fail(e, TS_ENOMEM, "out of memory");
    y->nval = n;
    size_t wcap = (size_t)R->nminers + 2;
    for (int v = 0; v < n; v++) {
        sim_val *V = &y->vals[v];
        gauntlet_state_init(&V->st);
        V->p = *p;
        V->stake = 1000;
        V->seed = seed + (uint64_t)v;
        snprintf(V->name, sizeof V->name, "v%d", v);
        V->wu = calloc(wcap, sizeof *V->wu);
        V->ww = calloc(wcap, sizeof *V->ww);
        if (!V->wu || !V->ww) return ts_fail(e, TS_ENOMEM, "out of memory");
        if (!vs) continue;
        const cJSON *o = cJSON_GetArrayItem(vs, v);
        char ctx[48];
        snprintf(ctx, sizeof ctx, "validator %d", v);
        if (!cJSON_IsObject(o)) return ts_fail(e, TS_ECONFIG, "population %s: expected an object", ctx);
        if ((rc = check_keys(o, vk, ctx, e))) return rc;
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (nm) {
            if (!cJSON_IsString(nm) || !nm->valuestring[0] || strlen(nm->valuestring) >= sizeof V->name)
                return ts_fail(e, TS_ECONFIG, "population %s key 'name': expected a string of 1 to 31 bytes", ctx);
            snprintf(V->name, sizeof V->name, "%s", nm->valuestring);
        }
        double sd = (double)V->seed;
        if ((rc = num_key(o, "stake", 0, 21e6, &V->stake, ctx, e)) || (rc = num_key(o, "seed", 0, 9e15, &sd, ctx, e)))
            return rc;
        if (sd != floor(sd)) return ts_fail(e, TS_ECONFIG, "population %s key 'seed': expected an integer", ctx);
        V->seed = (uint64_t)sd;
        const cJSON *bh = cJSON_GetObjectItemCaseSensitive(o, "behaviour");
        const char *b = bh ? (cJSON_IsString(bh) ? bh->valuestring : "?") : "honest";
        if (!strcmp(b, "honest")) V->behaviour = VAL_HONEST;
        else if (!strcmp(b, "copy")) V->behaviour = VAL_COPY;
        else if (!strcmp(b, "favour")) V->behaviour = VAL_FAVOUR;
        else return ts_fail(e, TS_ECONFIG, "population %s key 'behaviour': expected honest, copy or favour", ctx);
        if (v == 0 && V->behaviour != VAL_HONEST)
            return ts_fail(e, TS_ECONFIG, "population %s: the first validator leads and must be honest", ctx);
        if (V->behaviour == VAL_FAVOUR) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "favours");
            V->target = -1;
            for (int g = 0; f && cJSON_IsString(f) && g < R->ngroups; g++)
                if (!strcmp(R->groups[g].name, f->valuestring)) V->target = g;
            if (V->target < 0)
                return ts_fail(e, TS_ECONFIG, "population %s key 'favours': expected the name of a group", ctx);
        }
        const cJSON *pj = cJSON_GetObjectItemCaseSensitive(o, "params");
        if (pj) {
            if (v == 0)
                return ts_fail(e, TS_ECONFIG, "population %s: the leader uses the run's parameters (--params)", ctx);
            if ((rc = gauntlet_params_from_json(&V->p, pj, e))) return ts_wrap(e, "population %s", ctx);
        }
    }
    for (int v = 0; v < n; v++) rng_seed(&y->vals[v].r, y->vals[v].seed ^ 0x7a1ee7a1ee7ull);
    return TS_OK;
}

/* Bittensor's u16 max-upscaling of a weight vector (round half to even). */
static uint16_t quantize(double w, double max) {
    double x = rint(w / max * 65535.0);
    return x < 0 ? 0 : x > 65535 ? 65535 : (uint16_t)x;
}

/* One epoch over every validator's weights: uid 0 the owner (burn), 1..nm
 * the miners, nm + 1 + v the validators; blocks are windows + 1. */
static int sim_epoch(gauntlet_sim_result *R, uint64_t w, yuma_output *prev, bool count, ts_err *e) {
    sim_yuma *y = &R->y;
    uint32_t nm = (uint32_t)R->nminers, n = 1 + nm + (uint32_t)y->nval;
    if (n > YUMA_MAX_UIDS) return ts_fail(e, TS_EINVAL, "simulating Yuma: %u uids, at most %d", n, YUMA_MAX_UIDS);
    uint64_t *stake = calloc(n, sizeof *stake), *lu = calloc(n, sizeof *lu), *rg = calloc(n, sizeof *rg);
    bool *permit = calloc(n, sizeof *permit);
    yuma_row *rows = calloc(n, sizeof *rows);
    yuma_entry *ent = calloc((size_t)y->nval * (nm + 2) + 1, sizeof *ent);
    int rc = TS_OK;
    if (!stake || !lu || !rg || !permit || !rows || !ent) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < nm; i++) rg[1 + i] = R->miners[i].join;
    size_t at = 0;
    for (int v = 0; v < y->nval; v++) {
        const sim_val *V = &y->vals[v];
        uint32_t uid = 1 + nm + (uint32_t)v;
        stake[uid] = (uint64_t)(V->stake * 1e9);
        lu[uid] = V->last_update;
        double max = 0;
        for (size_t k = 0; k < V->wn; k++) max = V->ww[k] > max ? V->ww[k] : max;
        rows[uid].e = ent + at;
        for (size_t k = 0; max > 0 && k < V->wn; k++) {
            uint16_t q = quantize(V->ww[k], max);
            if (q == 0 || V->wu[k] >= n) continue;
            ent[at].uid = (uint16_t)V->wu[k];
            ent[at].value = q;
            at++;
            rows[uid].n++;
        }
    }
    if (prev->n == n) memcpy(permit, prev->validator_permit, n * sizeof *permit);
    yuma_input in = {.n = n, .block = w + 1, .emission = (uint64_t)y->tempo * 1000000000ull, .stake = stake,
                     .last_update = lu, .registered = rg, .validator_permit = permit, .weights = rows,
                     .bonds = prev->n == n ? prev->bonds : NULL};
    yuma_output o;
    if ((rc = yuma_epoch(&y->yp, &in, &o, e))) goto out;
    if (count) {
        y->epochs++;
        y->incentive[R->ngroups] += (double)o.server_emission[0];
        for (uint32_t i = 0; i < nm; i++) {
            const sim_miner *m = &R->miners[i];
            if (w < m->join || w >= m->leave) y->incentive[R->ngroups] += (double)o.server_emission[1 + i];
            else y->incentive[m->group] += (double)o.server_emission[1 + i];
        }
        for (uint32_t i = 0; i < n; i++) {
            y->miners += (double)o.server_emission[i];
            y->validators += (double)o.validator_emission[i];
        }
        for (int v = 0; v < y->nval; v++) {
            y->vals[v].dividends += (double)o.validator_emission[1 + nm + (uint32_t)v];
            y->vals[v].vtrust += o.validator_trust[1 + nm + (uint32_t)v] / 65535.0;
        }
    }
    yuma_output_free(prev);
    *prev = o;
out:
    free(stake);
    free(lu);
    free(rg);
    free(permit);
    free(rows);
    free(ent);
    return rc;
}

/* The other validators' window: an honest one selects, measures (its own
 * noise), updates its own state and sets its own weights; a copier sets the
 * leader's weights as they stood at the last epoch; a favouring validator
 * puts equal weight on the registered miners of one group. */
static int other_validators(gauntlet_sim_result *R, const loss_model *lm, uint64_t w, double l, const int *by_uid,
                            const gauntlet_reg *reg, size_t nreg, const uint32_t *gather, size_t n_gather,
                            uint32_t victim, double victim_r, const uint32_t *gok, size_t nok, const uint32_t *gmiss,
                            size_t nmiss, const uint32_t *copy_u, const double *copy_w, size_t copy_n,
                            uint32_t *opool, gauntlet_overlap *ov, ts_err *e) {
    sim_yuma *y = &R->y;
    for (int v = 1; v < y->nval; v++) {
        sim_val *V = &y->vals[v];
        const gauntlet_params *vp = &V->p;
        bool wwin = gauntlet_is_weights_window(vp, w);
        if (V->behaviour == VAL_HONEST) {
            uint32_t sel[4096];
            gauntlet_eval ev[4096];
            size_t nsel = 0;
            int rc = gauntlet_select(&V->st, vp, reg, nreg, w, V->seed, sel, &nsel, e);
            if (rc) return rc;
            for (size_t k = 0; k < nsel; k++)
                measure(R, lm, vp, &R->miners[by_uid[sel[k]]], victim_r, l, &V->r, &ev[k], false);
            size_t nov = overlaps(R, by_uid, gather, n_gather, sel, nsel, victim, w, opool, &V->r, ov);
            gauntlet_window_input in = {.window = w, .evals = ev, .n_evals = nsel, .overlaps = ov, .n_overlaps = nov,
                                        .registered = reg, .n_registered = nreg, .gather_ok = gok,
                                        .n_gather_ok = nok, .gather_missed = gmiss, .n_gather_missed = nmiss};
            if ((rc = gauntlet_update(&V->st, vp, &in, e))) return rc;
            if (wwin) {
                size_t wn = 0;
                if ((rc = gauntlet_weights(&V->st, vp, V->wu, V->ww, (size_t)R->nminers + 2, &wn, e))) return rc;
                bool any = false; /* as the validator: nothing to reward yet, no weights */
                for (size_t k = 0; k < wn; k++) any |= V->ww[k] > 0 && (int64_t)V->wu[k] != vp->burn_uid;
                if (any) {
                    V->wn = wn;
                    V->last_update = w + 1;
                }
            }
        } else if (wwin && V->behaviour == VAL_COPY && copy_n) {
            memcpy(V->wu, copy_u, copy_n * sizeof *copy_u);
            memcpy(V->ww, copy_w, copy_n * sizeof *copy_w);
            V->wn = copy_n;
            V->last_update = w + 1;
        } else if (wwin && V->behaviour == VAL_FAVOUR) {
            size_t k = 0;
            for (size_t i = 0; i < nreg; i++)
                if (R->miners[by_uid[reg[i].uid]].group == V->target) {
                    V->wu[k] = reg[i].uid;
                    V->ww[k++] = 1.0;
                }
            if (k) {
                V->wn = k;
                V->last_update = w + 1;
            }
        }
    }
    return TS_OK;
}

int gauntlet_sim_run(const gauntlet_params *p, const void *population_json, uint64_t windows,
                     uint64_t seed, bool progress, gauntlet_sim_result **out, ts_err *e) {
    int rc = gauntlet_params_check(p, e);
    if (rc) return rc;
    if (windows < 1 || windows > 10000000) return ts_fail(e, TS_EINVAL, "windows must be 1 to 10000000");
    gauntlet_sim_result *R = calloc(1, sizeof *R);
    if (!R) return ts_fail(e, TS_ENOMEM, "out of memory");
    loss_model lm;
    if ((rc = parse_population(population_json, &R->groups, &R->ngroups, &lm, e))) {
        free(R);
        return rc;
    }
    for (int g = 0; g < R->ngroups; g++) R->nminers += (int)R->groups[g].count;
    if ((rc = parse_validators(population_json, R, p, seed, e))) {
        gauntlet_sim_free(R);
        return rc;
    }
    yuma_output yprev;
    memset(&yprev, 0, sizeof yprev);
    uint32_t *copy_u = calloc((size_t)R->nminers + 2, sizeof *copy_u);
    double *copy_w = calloc((size_t)R->nminers + 2, sizeof *copy_w);
    size_t copy_n = 0;
    double t0 = ts_mono();
    R->windows = windows;
    int nm = R->nminers;
    R->miners = calloc((size_t)nm, sizeof *R->miners);
    R->share = calloc((size_t)(R->ngroups + 1) * windows, sizeof(float));
    R->ordinal = calloc((size_t)R->ngroups * windows, sizeof(float));
    R->fired = calloc((size_t)R->ngroups * 32, sizeof(uint64_t));
    gauntlet_reg *reg = calloc((size_t)nm, sizeof *reg);
    gauntlet_eval *ev = calloc((size_t)p->uids_per_window, sizeof *ev);
    uint32_t *sel = calloc((size_t)p->uids_per_window, sizeof *sel);
    size_t wcap = (size_t)(p->gather_peers + p->reserve_peers + 2);
    uint32_t *wu = calloc(wcap, sizeof *wu), *chain_u = calloc(wcap, sizeof *chain_u);
    double *ww = calloc(wcap, sizeof *ww), *chain_w = calloc(wcap, sizeof *chain_w);
    size_t chain_n = 0;
    size_t pcap = (size_t)(p->gather_peers + p->reserve_peers);
    uint32_t *gather = calloc(pcap + 1, sizeof *gather), *posted = calloc(pcap + 1, sizeof *posted);
    uint32_t *reserve = calloc(pcap + 1, sizeof *reserve);
    uint32_t *gok = calloc(pcap + 1, sizeof *gok), *gmiss = calloc(pcap + 1, sizeof *gmiss);
    size_t n_gather = 0, n_posted = 0;
    uint64_t posted_effective = GAUNTLET_NEVER;
    size_t ocap = pcap + (size_t)p->uids_per_window;
    gauntlet_overlap *ov = calloc(ocap * ocap / 2 + 1, sizeof *ov);
    uint32_t *opool = calloc(ocap + 1, sizeof *opool);
    int *by_uid = malloc(((size_t)nm + 2) * sizeof(int));
    double *ordsum = calloc((size_t)R->ngroups, sizeof(double));
    int *ordcnt = calloc((size_t)R->ngroups, sizeof(int));
    gauntlet_state st;
    gauntlet_state_init(&st);
    if (!R->miners || !R->share || !R->ordinal || !R->fired || !reg || !ev || !sel || !wu || !chain_u || !ww ||
        !chain_w || !gather || !posted || !reserve || !gok || !gmiss || !ov || !opool || !by_uid || !ordsum || !ordcnt || !copy_u || !copy_w) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto done;
    }
    rng r;
    rng_seed(&r, seed ^ 0x5eed5eed5eedull);
    /* miners: uid 0 is the owner (burn uid); miners take 1..N */
    int at = 0;
    for (int g = 0; g < R->ngroups; g++)
        for (int64_t i = 0; i < R->groups[g].count; i++, at++) {
            sim_miner *m = &R->miners[at];
            m->uid = (uint32_t)at + 1;
            m->group = g;
            m->quality = R->groups[g].q_lo + (R->groups[g].q_hi - R->groups[g].q_lo) * rng_u(&r);
            m->join = (uint64_t)R->groups[g].join;
            m->leave = R->groups[g].leave < 0 ? UINT64_MAX : (uint64_t)R->groups[g].leave;
            m->first_paid = -1;
            by_uid[m->uid] = at;
        }
    uint64_t quarter = windows - windows / 4;
    for (uint64_t w = 0; w < windows; w++) {
        double l = lm.loss_floor + (lm.loss_start - lm.loss_floor) * exp(-(double)w / lm.loss_decay);
        /* the gather set in force: the last posted peer list once effective */
        if (posted_effective != GAUNTLET_NEVER && w >= posted_effective) {
            memcpy(gather, posted, n_posted * sizeof *gather);
            n_gather = n_posted;
        }
        /* the best miner now (the copycats' victim) */
        uint32_t victim = n_gather ? gather[0] : 0;
        /* uploads of this window */
        size_t nreg = 0;
        for (int i = 0; i < nm; i++) {
            sim_miner *m = &R->miners[i];
            if (w < m->join || w >= m->leave) continue;
            const sim_group *g = &R->groups[m->group];
            double u = rng_u(&r);
            m->status = GAUNTLET_UPLOAD_OK;
            m->uploaded = true;
            if (u < g->p_missing) {
                m->status = GAUNTLET_UPLOAD_MISSING;
                m->uploaded = false;
            } else if ((u -= g->p_missing) < g->p_early) {
                m->status = GAUNTLET_UPLOAD_EARLY;
            } else if ((u -= g->p_early) < g->p_late) {
                m->status = GAUNTLET_UPLOAD_LATE;
            } else if ((u -= g->p_late) < g->p_nan) {
                m->status = GAUNTLET_UPLOAD_INVALID;
            }
            m->r_now = lm.improvement * m->quality * (1 + lm.noise * rng_n(&r));
            /* a regressing update hurts by about half a good one; a spike is
             * an outsized one (drawn even when the group has none, so adding
             * such a group changes no other miner's draws) */
            double ur = rng_u(&r), us = rng_u(&r);
            if (ur < g->p_regress) m->r_now = -0.5 * fabs(m->r_now);
            else if (us < g->p_spike) m->r_now *= g->spike;
            reg[nreg].uid = m->uid;
            memset(reg[nreg].hotkey, 0, 32);
            memcpy(reg[nreg].hotkey, &m->uid, sizeof m->uid);
            reg[nreg].active = m->uploaded;
            nreg++;
        }
        double victim_r = lm.improvement * 1.5;
        if (victim) {
            const sim_miner *vm = &R->miners[by_uid[victim]];
            if (R->groups[vm->group].behaviour != BEH_COPYCAT) victim_r = vm->r_now;
        }
        /* whom to evaluate, and what the validator measures */
        size_t nsel = 0;
        if ((rc = gauntlet_select(&st, p, reg, nreg, w, seed, sel, &nsel, e))) goto done;
        for (size_t k = 0; k < nsel; k++)
            measure(R, &lm, p, &R->miners[by_uid[sel[k]]], victim_r, l, &r, &ev[k], true);
        R->evals += nsel;
        size_t nov = overlaps(R, by_uid, gather, n_gather, sel, nsel, victim, w, opool, &r, ov);
        /* the gather's outcome: the gather tier's peers that uploaded in
         * time are used, the others missed (reserves stand in for them) */
        size_t nok = 0, nmiss = 0;
        for (size_t a = 0; a < n_gather; a++) {
            const sim_miner *ma = &R->miners[by_uid[gather[a]]];
            if (w < ma->join || w >= ma->leave) continue;
            if (ma->status == GAUNTLET_UPLOAD_OK) gok[nok++] = ma->uid;
            else gmiss[nmiss++] = ma->uid;
        }
        gauntlet_window_input in = {.window = w, .evals = ev, .n_evals = nsel, .overlaps = ov,
                                    .n_overlaps = nov, .registered = reg, .n_registered = nreg,
                                    .gather_ok = gok, .n_gather_ok = nok, .gather_missed = gmiss,
                                    .n_gather_missed = nmiss};
        if ((rc = gauntlet_update(&st, p, &in, e))) goto done;
        /* weights on chain every weights_interval windows */
        if (gauntlet_is_weights_window(p, w) || chain_n == 0) {
            if ((rc = gauntlet_weights(&st, p, wu, ww, wcap, &chain_n, e))) goto done;
            memcpy(chain_u, wu, chain_n * sizeof *wu);
            memcpy(chain_w, ww, chain_n * sizeof *ww);
            /* the leader's weights for Yuma: as the validator, none while
             * nothing but the burn would get weight */
            bool any = false;
            for (size_t k = 0; k < chain_n; k++) any |= chain_w[k] > 0 && (int64_t)chain_u[k] != p->burn_uid;
            if (any) {
                sim_val *L = &R->y.vals[0];
                memcpy(L->wu, chain_u, chain_n * sizeof *chain_u);
                memcpy(L->ww, chain_w, chain_n * sizeof *chain_w);
                L->wn = chain_n;
                L->last_update = w + 1;
            }
        }
        /* the other validators, then Yuma every tempo */
        if ((rc = other_validators(R, &lm, w, l, by_uid, reg, nreg, gather, n_gather, victim, victim_r, gok, nok,
                                   gmiss, nmiss, copy_u, copy_w, copy_n, opool, ov, e)))
            goto done;
        if ((w + 1) % (uint64_t)R->y.tempo == 0) {
            if ((rc = sim_epoch(R, w, &yprev, w >= 20, e))) goto done;
            const sim_val *L = &R->y.vals[0];
            memcpy(copy_u, L->wu, L->wn * sizeof *copy_u);
            memcpy(copy_w, L->ww, L->wn * sizeof *copy_w);
            copy_n = L->wn;
        }
        if (gauntlet_is_peers_window(p, w)) {
            size_t ng, nr;
            /* the simulator gathers the primaries (reserves only stand in
             * for missing primaries, which changes no score) */
            if ((rc = gauntlet_peers(&st, p, posted, &ng, reserve, &nr, e))) goto done;
            n_posted = ng;
            posted_effective = w + (uint64_t)p->peers_delay;
        }
        /* record shares and ordinals */
        float *sh = R->share + (size_t)w;
        for (size_t k = 0; k < chain_n; k++) {
            uint32_t u = chain_u[k];
            if (u == 0 || u > (uint32_t)nm) {
                sh[(size_t)R->ngroups * windows] += (float)chain_w[k];
                continue;
            }
            sim_miner *m = &R->miners[by_uid[u]];
            if (w < m->join || w >= m->leave) {
                sh[(size_t)R->ngroups * windows] += (float)chain_w[k];
                continue;
            }
            sh[(size_t)m->group * windows] += (float)chain_w[k];
            if (chain_w[k] > 0 && m->first_paid < 0) m->first_paid = (int64_t)w;
            if (w >= quarter) m->wsum += chain_w[k];
        }
        for (size_t k = 0; k < st.n; k++) {
            const gauntlet_uid *u = &st.uids[k];
            if (u->uid == 0 || u->uid > (uint32_t)nm || u->last_penalty_window != w) continue;
            int g = R->miners[by_uid[u->uid]].group;
            for (int b = 0; b < 31; b++)
                if (u->last_penalties & (1u << b)) R->fired[(size_t)g * 32 + (size_t)b]++;
        }
        memset(ordsum, 0, (size_t)R->ngroups * sizeof(double));
        memset(ordcnt, 0, (size_t)R->ngroups * sizeof(int));
        for (size_t k = 0; k < st.n; k++) {
            uint32_t u = st.uids[k].uid;
            if (u == 0 || u > (uint32_t)nm) continue;
            int g = R->miners[by_uid[u]].group;
            ordsum[g] += os_ordinal(st.uids[k].rating);
            ordcnt[g]++;
        }
        for (int g = 0; g < R->ngroups; g++)
            R->ordinal[(size_t)g * windows + w] = ordcnt[g] ? (float)(ordsum[g] / ordcnt[g]) : NAN;
        if (progress && (w % 50 == 0 || w + 1 == windows))
            ts_progress("simulating window %llu / %llu", (unsigned long long)w + 1,
                        (unsigned long long)windows);
    }
    for (size_t k = 0; k < st.n; k++)
        if (st.uids[k].counts[GAUNTLET_CNT_COPY_BAN]) R->bans += st.uids[k].counts[GAUNTLET_CNT_COPY_BAN];
    if (progress) ts_progress_done();
    R->seconds = ts_mono() - t0;
    rc = TS_OK;
done:
    yuma_output_free(&yprev);
    free(copy_u);
    free(copy_w);
    gauntlet_state_free(&st);
    free(reg);
    free(ev);
    free(sel);
    free(wu);
    free(chain_u);
    free(ww);
    free(chain_w);
    free(gather);
    free(posted);
    free(reserve);
    free(gok);
    free(gmiss);
    free(ov);
    free(opool);
    free(by_uid);
    free(ordsum);
    free(ordcnt);
    if (rc) {
        gauntlet_sim_free(R);
        return rc;
    }
    *out = R;
    return TS_OK;
}

void gauntlet_sim_free(gauntlet_sim_result *r) {
    if (!r) return;
    free(r->groups);
    free(r->miners);
    free(r->share);
    free(r->ordinal);
    free(r->fired);
    free_validators(&r->y);
    free(r);
}

/* ------------------------------------------------------------ summaries */

int gauntlet_sim_groups(const gauntlet_sim_result *r) { return r->ngroups; }

const char *gauntlet_sim_group_name(const gauntlet_sim_result *r, int g) {
    return g == r->ngroups ? "burn" : r->groups[g].name;
}

double gauntlet_sim_share(const gauntlet_sim_result *r, int g, uint64_t from, uint64_t to) {
    if (to > r->windows) to = r->windows;
    if (from >= to) return NAN;
    double s = 0;
    for (uint64_t w = from; w < to; w++) s += r->share[(size_t)g * r->windows + w];
    return s / (double)(to - from);
}

static void avg_ranks(const double *v, int n, double *rank) {
    int *ix = malloc((size_t)n * sizeof *ix);
    for (int i = 0; i < n; i++) ix[i] = i;
    for (int i = 1; i < n; i++) {
        int p = ix[i], j = i - 1;
        while (j >= 0 && v[ix[j]] > v[p]) {
            ix[j + 1] = ix[j];
            j--;
        }
        ix[j + 1] = p;
    }
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && v[ix[j + 1]] == v[ix[i]]) j++;
        for (int k = i; k <= j; k++) rank[ix[k]] = (i + j) / 2.0 + 1;
        i = j + 1;
    }
    free(ix);
}

double gauntlet_sim_rank_corr(const gauntlet_sim_result *r) {
    int n = 0;
    double *q = malloc(((size_t)r->nminers + 1) * sizeof *q), *w = malloc(((size_t)r->nminers + 1) * sizeof *w);
    uint64_t quarter = r->windows - r->windows / 4;
    for (int i = 0; i < r->nminers; i++) {
        const sim_miner *m = &r->miners[i];
        const sim_group *g = &r->groups[m->group];
        if (g->behaviour != BEH_HONEST || m->join > quarter || m->leave < r->windows) continue;
        q[n] = m->quality;
        w[n] = m->wsum;
        n++;
    }
    double rho = NAN;
    if (n >= 3) {
        double *rq = malloc((size_t)n * sizeof *rq), *rw = malloc((size_t)n * sizeof *rw);
        avg_ranks(q, n, rq);
        avg_ranks(w, n, rw);
        double mq = 0, mw = 0, sqq = 0, sww = 0, sqw = 0;
        for (int i = 0; i < n; i++) mq += rq[i] / n, mw += rw[i] / n;
        for (int i = 0; i < n; i++) {
            sqq += (rq[i] - mq) * (rq[i] - mq);
            sww += (rw[i] - mw) * (rw[i] - mw);
            sqw += (rq[i] - mq) * (rw[i] - mw);
        }
        if (sqq > 0 && sww > 0) rho = sqw / sqrt(sqq * sww);
        free(rq);
        free(rw);
    }
    free(q);
    free(w);
    return rho;
}

double gauntlet_sim_newcomer_windows(const gauntlet_sim_result *r, int *earned, int *total) {
    double *t = malloc(((size_t)r->nminers + 1) * sizeof *t);
    int ne = 0, nt = 0;
    for (int i = 0; i < r->nminers; i++) {
        const sim_miner *m = &r->miners[i];
        if (m->join == 0 || m->join >= r->windows) continue;
        nt++;
        if (m->first_paid >= 0) t[ne++] = (double)((uint64_t)m->first_paid - m->join);
    }
    double med = -1;
    if (ne) {
        qsort(t, (size_t)ne, sizeof *t, cmp_double);
        med = ne % 2 ? t[ne / 2] : (t[ne / 2 - 1] + t[ne / 2]) / 2;
    }
    free(t);
    if (earned) *earned = ne;
    if (total) *total = nt;
    return med;
}

int gauntlet_sim_newcomers_within(const gauntlet_sim_result *r, uint64_t windows, double *median_all) {
    double *t = malloc(((size_t)r->nminers + 1) * sizeof *t);
    int n = 0, within = 0;
    for (int i = 0; i < r->nminers; i++) {
        const sim_miner *m = &r->miners[i];
        if (m->join == 0 || m->join >= r->windows) continue;
        double d = m->first_paid >= 0 ? (double)((uint64_t)m->first_paid - m->join) : INFINITY;
        within += d <= (double)windows;
        t[n++] = d;
    }
    if (median_all) {
        *median_all = NAN;
        if (n) {
            qsort(t, (size_t)n, sizeof *t, cmp_double);
            *median_all = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
        }
    }
    free(t);
    return within;
}

double gauntlet_sim_seconds(const gauntlet_sim_result *r) { return r->seconds; }

void gauntlet_sim_print(const gauntlet_sim_result *r, void *fpv) {
    FILE *fp = fpv;
    int G = r->ngroups;
    fprintf(fp, "%d miners, %llu windows, %llu evaluations, %llu copycat bans, %.2f s\n\n", r->nminers,
            (unsigned long long)r->windows, (unsigned long long)r->evals, (unsigned long long)r->bans,
            r->seconds);
    fprintf(fp, "share of emission by behaviour (weights as set on chain)\n");
    fprintf(fp, "%-14s", "window");
    for (int g = 0; g <= G; g++) fprintf(fp, " %10.10s", gauntlet_sim_group_name(r, g));
    fprintf(fp, "\n");
    static const uint64_t marks[] = {1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 0};
    for (int i = 0; marks[i]; i++) {
        if (marks[i] > r->windows) break;
        fprintf(fp, "%-14llu", (unsigned long long)marks[i]);
        for (int g = 0; g <= G; g++) fprintf(fp, " %10.3f", r->share[(size_t)g * r->windows + marks[i] - 1]);
        fprintf(fp, "\n");
    }
    if (r->windows > 20) {
        fprintf(fp, "%-14s", "mean 20..end");
        for (int g = 0; g <= G; g++) fprintf(fp, " %10.3f", gauntlet_sim_share(r, g, 20, r->windows));
        fprintf(fp, "\n");
    }
    fprintf(fp, "%-14s", "mean all");
    for (int g = 0; g <= G; g++) fprintf(fp, " %10.3f", gauntlet_sim_share(r, g, 0, r->windows));
    fprintf(fp, "\n%-14s", "miners");
    for (int g = 0; g < G; g++) fprintf(fp, " %10lld", (long long)r->groups[g].count);
    fprintf(fp, "\n\n");
    int earned, total;
    double med = gauntlet_sim_newcomer_windows(r, &earned, &total);
    if (total == 0) fprintf(fp, "newcomers: none in this population\n");
    else if (earned == 0) fprintf(fp, "newcomers: %d joined, none earned yet\n", total);
    else {
        double all;
        int w20 = gauntlet_sim_newcomers_within(r, 20, &all);
        fprintf(fp, "newcomers: %d of %d earned; median %.1f windows from joining to first weight\n", earned,
                total, med);
        fprintf(fp, "newcomers earning within 20 windows: %d of %d; median over all newcomers: %.1f windows\n",
                w20, total, all);
    }
    double rho = gauntlet_sim_rank_corr(r);
    if (isnan(rho)) fprintf(fp, "rank correlation of true quality and weight: undefined\n");
    else fprintf(fp, "rank correlation of true quality and weight (honest miners, last quarter): %.3f\n", rho);
    const sim_yuma *y = &r->y;
    if (!y->listed) return;
    fprintf(fp, "\nafter Yuma consensus (subtensor's epoch, runtime spec 143), every %lld windows, %llu epochs "
                "from window 20:\n",
            (long long)y->tempo, (unsigned long long)y->epochs);
    if (!y->epochs || !(y->miners > 0)) {
        fprintf(fp, "no emission counted yet\n");
        return;
    }
    fprintf(fp, "share of the miners' emission (incentive) by behaviour\n%-14s", "");
    for (int g = 0; g <= G; g++) fprintf(fp, " %10.10s", gauntlet_sim_group_name(r, g));
    fprintf(fp, "\n%-14s", "after Yuma");
    for (int g = 0; g <= G; g++) fprintf(fp, " %10.3f", gauntlet_sim_yuma_share(r, g));
    fprintf(fp, "\n%-14s", "leader alone");
    for (int g = 0; g <= G; g++) fprintf(fp, " %10.3f", gauntlet_sim_share(r, g, 20, r->windows));
    fprintf(fp, "\n\n%-16s %12s %-10s %10s %12s %8s\n", "validator", "stake (TAO)", "behaviour", "dividends",
            "per stake", "vtrust");
    static const char *const bn[] = {"honest", "copy", "favour"};
    double total_stake = 0;
    for (int v = 0; v < y->nval; v++) total_stake += y->vals[v].stake;
    for (int v = 0; v < y->nval; v++) {
        const sim_val *V = &y->vals[v];
        double d = V->dividends / y->validators;
        char beh[48];
        snprintf(beh, sizeof beh, "%s%s%s", bn[V->behaviour], V->behaviour == VAL_FAVOUR ? ":" : "",
                 V->behaviour == VAL_FAVOUR ? r->groups[V->target].name : "");
        fprintf(fp, "%-16s %12.0f %-10s %10.4f %12.3f %8.3f\n", V->name, V->stake, beh, d,
                total_stake > 0 && V->stake > 0 ? d / (V->stake / total_stake) : 0.0, V->vtrust / (double)y->epochs);
    }
    fprintf(fp, "(dividends: share of the validators' emission; per stake: that share over the stake share, 1 = "
                "paid in proportion to stake)\n");
}

double gauntlet_sim_yuma_share(const gauntlet_sim_result *r, int g) {
    if (!r->y.epochs || !(r->y.miners > 0) || g < 0 || g > r->ngroups) return NAN;
    return r->y.incentive[g] / r->y.miners;
}

int gauntlet_sim_validators(const gauntlet_sim_result *r) { return r->y.nval; }

int gauntlet_sim_validator(const gauntlet_sim_result *r, int v, const char **name, double *dividends,
                           double *vtrust) {
    if (v < 0 || v >= r->y.nval || !r->y.epochs || !(r->y.validators > 0)) return TS_EINVAL;
    if (name) *name = r->y.vals[v].name;
    if (dividends) *dividends = r->y.vals[v].dividends / r->y.validators;
    if (vtrust) *vtrust = r->y.vals[v].vtrust / (double)r->y.epochs;
    return TS_OK;
}

/* ------------------------------------------------------------ rules on and off */

/* Each rule of the final release (and Tessera's newcomer rules): the
 * parameters that turn it off (or back to Tessera's earlier value) and the
 * population group it aims at. */
static const struct {
    const char *rule, *off, *group;
    uint32_t bits; /* what counts as the rule acting (0: nothing to count) */
} rules[] = {
    {"gradient cap 2 %", "{\"gradient_cap\": 0}", "spiky", 1u << SIM_CAPPED},
    {"binary MA threshold 0.10", "{\"bma_threshold\": 0}", "lazy", GAUNTLET_PEN_BMA_THRESHOLD},
    {"sync: cap 3 steps, poor beyond 2", "{\"sync_cap_steps\": 5, \"sync_poor_steps\": 3}", "stale-sync",
     GAUNTLET_PEN_POOR_SYNC},
    {"gather reliability", "{\"gather_miss_factor_1\": 1, \"gather_miss_factor_2\": 1, \"gather_miss_factor_3\": 1, "
                           "\"gather_success_min\": 0, \"gather_ban_share\": 1.5}", "flaky",
     GAUNTLET_PEN_GATHER_MISS | GAUNTLET_PEN_GATHER_BAN},
    {"negative evaluations", "{\"negative_slash_count\": 8, \"negative_exclude_consecutive\": 0}", "regressing",
     GAUNTLET_PEN_NEG_SLASH | GAUNTLET_PEN_NEG_EXCLUDE},
    {"copycat checks from window 20", "{\"copycat_start_windows\": 0}", "early-copy",
     GAUNTLET_PEN_COPY_SLASH | GAUNTLET_PEN_COPY_RESET | GAUNTLET_PEN_COPY_BAN},
    {"copycat ban 20 windows (off: 200)", "{\"copycat_ban_windows\": 200}", "copycat", GAUNTLET_PEN_COPY_BAN},
    {"missing uploads play at -99", "{\"missing_in_match\": false}", "missing", GAUNTLET_PEN_MISSING},
    {"weights every 3 windows (off: 2)", "{\"weights_interval\": 2}", "honest", 0},
    {"newcomer priority and places", "{\"newcomer_eval_slots\": 0, \"newcomer_slots\": 0}", "newcomer", 0},
    {"burn share 0 (off: Templar's 0.5)", "{\"burn_share\": 0.5, \"burn_uid\": 0}", "burn", 0},
};

/* Windows in which any of `bits` was set on a uid of group g. */
static uint64_t fired(const gauntlet_sim_result *r, int g, uint32_t bits) {
    uint64_t n = 0;
    for (int b = 0; b < 32; b++)
        if (bits & (1u << b)) n += r->fired[(size_t)g * 32 + (size_t)b];
    return n;
}

static int group_index(const gauntlet_sim_result *r, const char *name) {
    for (int g = 0; g <= r->ngroups; g++)
        if (!strcmp(gauntlet_sim_group_name(r, g), name)) return g;
    return -1;
}

int gauntlet_sim_rules(const gauntlet_params *p, const void *population_json, uint64_t windows, uint64_t seed,
                       uint64_t nseeds, void *fpv, ts_err *e) {
    FILE *fp = fpv;
    enum { NR = sizeof rules / sizeof *rules };
    double on_share[NR] = {0}, off_share[NR] = {0};
    uint64_t acted[NR] = {0};
    int nc_on = 0, nc_off[NR] = {0}, total = 0, gidx[NR];
    if (nseeds < 1 || nseeds > 1000) return ts_fail(e, TS_EINVAL, "seeds must be 1 to 1000");
    for (uint64_t k = 0; k < nseeds; k++) {
        gauntlet_sim_result *on = NULL;
        int rc = gauntlet_sim_run(p, population_json, windows, seed + k, false, &on, e);
        if (rc) return rc;
        int t = 0;
        gauntlet_sim_newcomer_windows(on, NULL, &t);
        total += t;
        nc_on += gauntlet_sim_newcomers_within(on, 20, NULL);
        for (size_t i = 0; i < NR; i++) {
            int g = gidx[i] = group_index(on, rules[i].group);
            if (g < 0) continue;
            gauntlet_params q = *p;
            cJSON *j = cJSON_Parse(rules[i].off);
            rc = j ? gauntlet_params_from_json(&q, j, e) : ts_fail(e, TS_ENOMEM, "out of memory");
            cJSON_Delete(j);
            gauntlet_sim_result *off = NULL;
            if (!rc) rc = gauntlet_sim_run(&q, population_json, windows, seed + k, false, &off, e);
            if (rc) {
                gauntlet_sim_free(on);
                return rc;
            }
            on_share[i] += gauntlet_sim_share(on, g, 0, windows) / (double)nseeds;
            off_share[i] += gauntlet_sim_share(off, g, 0, windows) / (double)nseeds;
            if (rules[i].bits && g < on->ngroups) acted[i] += fired(on, g, rules[i].bits);
            nc_off[i] += gauntlet_sim_newcomers_within(off, 20, NULL);
            gauntlet_sim_free(off);
        }
        gauntlet_sim_free(on);
    }
    fprintf(fp, "emission share of the targeted group (the leader's weights), mean over all %llu windows and "
                "seeds %llu..%llu\n",
            (unsigned long long)windows, (unsigned long long)seed, (unsigned long long)(seed + nseeds - 1));
    fprintf(fp, "%-34s %-11s %8s %8s %7s   %s\n", "rule", "group", "rule on", "rule off", "acted",
            "newcomers earning within 20 windows (on, off)");
    for (size_t i = 0; i < NR; i++) {
        if (gidx[i] < 0) {
            fprintf(fp, "%-34s %-11s %8s %8s\n", rules[i].rule, rules[i].group, "-", "-");
            continue;
        }
        char a[24] = "-";
        if (rules[i].bits) snprintf(a, sizeof a, "%llu", (unsigned long long)acted[i]);
        fprintf(fp, "%-34s %-11s %8.4f %8.4f %7s   %d/%d, %d/%d\n", rules[i].rule, rules[i].group, on_share[i],
                off_share[i], a, nc_on, total, nc_off[i], total);
    }
    fprintf(fp, "(acted: windows in which the rule acted on a miner of the group, all seeds together)\n");
    return TS_OK;
}

/* ------------------------------------------------------------ SVG */

static const char *const colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

static void svg_panel(FILE *f, const gauntlet_sim_result *r, const float *data, int nseries,
                      double x0, double y0, double wd, double ht, double lo, double hi,
                      const char *title, const char *ylabel) {
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n",
            x0, y0, wd, ht);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", x0,
            y0 - 8, title);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" transform=\"rotate(-90 %.1f %.1f)\" "
               "text-anchor=\"middle\">%s</text>\n",
            x0 - 48, y0 + ht / 2, x0 - 48, y0 + ht / 2, ylabel);
    for (int t = 0; t <= 4; t++) {
        double v = lo + (hi - lo) * t / 4, y = y0 + ht - ht * t / 4;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, y,
                x0 + wd, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.3g</text>\n",
                x0 - 4, y + 3, v);
    }
    for (int t = 0; t <= 5; t++) {
        double x = x0 + wd * t / 5;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x,
                y0 + ht, x, y0 + ht + 4);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%llu</text>\n",
                x, y0 + ht + 16, (unsigned long long)(r->windows * (uint64_t)t / 5));
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">window</text>\n",
            x0 + wd / 2, y0 + ht + 30);
    uint64_t step = r->windows > 1000 ? r->windows / 1000 : 1;
    for (int s = 0; s < nseries; s++) {
        const float *d = data + (size_t)s * r->windows;
        fprintf(f, "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"%s\" points=\"",
                s == r->ngroups ? "#000" : colours[s % 10]);
        for (uint64_t w = 0; w < r->windows; w += step) {
            if (isnan(d[w])) continue;
            double v = d[w] < lo ? lo : d[w] > hi ? hi : d[w];
            double x = x0 + wd * (r->windows > 1 ? (double)w / (double)(r->windows - 1) : 0);
            double y = y0 + ht - ht * (v - lo) / (hi - lo);
            fprintf(f, "%.1f,%.1f ", x, y);
        }
        fprintf(f, "\"/>\n");
    }
}

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

int gauntlet_sim_svg(const gauntlet_sim_result *r, const char *path, ts_err *e) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return ts_fail(e, TS_ENOMEM, "out of memory");
    double W = 960, H = 700, x0 = 80, wd = 640;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    svg_panel(f, r, r->share, r->ngroups + 1, x0, 40, wd, 260, 0, 1,
              "Share of emission by behaviour", "share");
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < (size_t)r->ngroups * r->windows; i++)
        if (!isnan(r->ordinal[i])) {
            if (r->ordinal[i] < lo) lo = r->ordinal[i];
            if (r->ordinal[i] > hi) hi = r->ordinal[i];
        }
    if (!(lo < hi)) lo = -1, hi = 1;
    double pad = (hi - lo) * 0.05;
    svg_panel(f, r, r->ordinal, r->ngroups, x0, 380, wd, 260, lo - pad, hi + pad,
              "Mean OpenSkill ordinal (mu - 3 sigma) by behaviour", "ordinal");
    for (int g = 0; g <= r->ngroups; g++) {
        double y = 60 + 20 * g;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n",
                x0 + wd + 24, y, x0 + wd + 48, y, g == r->ngroups ? "#000" : colours[g % 10]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">", x0 + wd + 54, y + 4);
        xml_text(f, gauntlet_sim_group_name(r, g));
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</svg>\n");
    fclose(f);
    int rc = ts_write_atomic(path, buf, len, e);
    free(buf);
    return rc;
}
