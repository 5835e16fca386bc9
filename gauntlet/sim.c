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
};
#define SIM_CAPPED 31

/* ------------------------------------------------------------ randomness */

typedef struct rng {
    uint64_t s[4];
} rng;

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
    static const char *const top[] = {"groups", "model", "_comment", NULL};
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
    double t0 = ts_mono();
    R->windows = windows;
    int nm = 0;
    for (int g = 0; g < R->ngroups; g++) nm += (int)R->groups[g].count;
    R->nminers = nm;
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
        !chain_w || !gather || !posted || !reserve || !gok || !gmiss || !ov || !opool || !by_uid || !ordsum || !ordcnt) {
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
        double samples = (double)p->eval_samples;
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
        for (size_t k = 0; k < nsel; k++) {
            sim_miner *m = &R->miners[by_uid[sel[k]]];
            const sim_group *g = &R->groups[m->group];
            gauntlet_eval *x = &ev[k];
            memset(x, 0, sizeof *x);
            x->uid = m->uid;
            x->status = m->status;
            double rr = m->r_now, own;
            if (g->behaviour == BEH_COPYCAT) {
                rr = victim_r * (1 + 0.05 * rng_n(&r));
                own = lm.improvement * m->quality * (1 + lm.noise * rng_n(&r));
                own = own < rr ? own : rr * (1 + 0.02 * rng_n(&r)); /* its own pages are unseen */
                if (g->smart) own = rr + fabs(rr) * lm.own_bonus * (1 + lm.noise * rng_n(&r));
            } else if (g->behaviour == BEH_LAZY) {
                own = lm.improvement * m->quality * (1 + lm.noise * rng_n(&r));
            } else {
                own = rr + fabs(rr) * lm.own_bonus * (1 + lm.noise * rng_n(&r));
            }
            x->loss_rand_before = samples * l * (1 + 0.02 * rng_n(&r));
            x->loss_rand_after = x->loss_rand_before * (1 - rr);
            x->loss_own_before = samples * l * (1 + 0.02 * rng_n(&r));
            x->loss_own_after = x->loss_own_before * (1 - own);
            x->steps_behind = fabs(g->lag * rng_n(&r));
            if (p->gradient_cap > 0 && m->status == GAUNTLET_UPLOAD_OK && rr > p->gradient_cap)
                R->fired[(size_t)m->group * 32 + SIM_CAPPED]++;
            if (m->status == GAUNTLET_UPLOAD_INVALID) x->loss_rand_after = NAN;
        }
        R->evals += nsel;
        /* copycat overlaps among the valid uploads the validator holds, as
         * it checks them: the gathered peers' and the evaluated miners' */
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
                double o = 0.02 + 0.06 * rng_u(&r);
                uint32_t later = rng_u(&r) < 0.5 ? ma->uid : mb->uid;
                if (ca && (mb->uid == victim || cb)) {
                    o = R->groups[ma->group].overlap * (1 + 0.05 * rng_n(&r));
                    later = ma->uid;
                } else if (cb && ma->uid == victim) {
                    o = R->groups[mb->group].overlap * (1 + 0.05 * rng_n(&r));
                    later = mb->uid;
                }
                if (o > 1) o = 1;
                if (o < 0) o = 0;
                ov[nov++] = (gauntlet_overlap){ma->uid, mb->uid, o, later};
            }
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
        if (getenv("TS_SIM_DEBUG_W") && w >= (uint64_t)atoi(getenv("TS_SIM_DEBUG_W")) && w < (uint64_t)atoi(getenv("TS_SIM_DEBUG_W")) + 25)
            for (int i = 0; i < nm; i++) {
                sim_miner *m = &R->miners[i];
                if (m->join == 0 || m->join > w) continue;
                gauntlet_uid *u = gauntlet_state_find(&st, m->uid);
                if (u && u->last_eval_window == w)
                    fprintf(stderr, "w %llu uid %u q %.3f ev %u gs %.5f final %.3f mu %.2f sig %.2f bma %.3f\n", (unsigned long long)w, m->uid, m->quality,
                            u->counts[0], u->gradient_score, u->final_score, u->rating.mu, u->rating.sigma, u->binary_ma);
            }
        /* weights on chain every weights_interval windows */
        if (gauntlet_is_weights_window(p, w) || chain_n == 0) {
            if ((rc = gauntlet_weights(&st, p, wu, ww, wcap, &chain_n, e))) goto done;
            memcpy(chain_u, wu, chain_n * sizeof *wu);
            memcpy(chain_w, ww, chain_n * sizeof *ww);
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
    if (getenv("TS_SIM_DEBUG"))
        for (int i = 0; i < nm; i++) {
            sim_miner *m = &R->miners[i];
            if (m->join == 0) continue;
            gauntlet_uid *u = gauntlet_state_find(&st, m->uid);
            fprintf(stderr, "uid %u q %.3f join %llu paid %lld evals %u final %g ord %g bma %g\n", m->uid, m->quality,
                    (unsigned long long)m->join, (long long)m->first_paid, u ? u->counts[0] : 0, u ? u->final_score : 0,
                    u ? os_ordinal(u->rating) : 0, u ? u->binary_ma : 0);
        }
    if (progress) ts_progress_done();
    R->seconds = ts_mono() - t0;
    rc = TS_OK;
done:
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
                       void *fpv, ts_err *e) {
    FILE *fp = fpv;
    gauntlet_sim_result *on = NULL;
    int rc = gauntlet_sim_run(p, population_json, windows, seed, false, &on, e);
    if (rc) return rc;
    uint64_t from = 0; /* the whole run: some rules act in its first windows */
    fprintf(fp, "emission share of the targeted group, mean over all %llu windows, seed %llu\n",
            (unsigned long long)windows, (unsigned long long)seed);
    fprintf(fp, "%-36s %-11s %9s %9s %7s   %s\n", "rule", "group", "rule on", "rule off", "acted",
            "newcomers earning within 20 windows (on, off)");
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++) {
        int g = group_index(on, rules[i].group);
        if (g < 0) {
            fprintf(fp, "%-36s %-11s %9s %9s\n", rules[i].rule, rules[i].group, "-", "-");
            continue;
        }
        gauntlet_params q = *p;
        cJSON *j = cJSON_Parse(rules[i].off);
        rc = j ? gauntlet_params_from_json(&q, j, e) : ts_fail(e, TS_ENOMEM, "out of memory");
        cJSON_Delete(j);
        gauntlet_sim_result *off = NULL;
        if (!rc) rc = gauntlet_sim_run(&q, population_json, windows, seed, false, &off, e);
        if (rc) {
            gauntlet_sim_free(on);
            return rc;
        }
        int total = 0;
        gauntlet_sim_newcomer_windows(on, NULL, &total);
        char acted[24] = "-";
        if (rules[i].bits && g < on->ngroups)
            snprintf(acted, sizeof acted, "%llu", (unsigned long long)fired(on, g, rules[i].bits));
        fprintf(fp, "%-36s %-11s %9.4f %9.4f %7s   %d/%d, %d/%d\n", rules[i].rule, rules[i].group,
                gauntlet_sim_share(on, g, from, windows), gauntlet_sim_share(off, g, from, windows), acted,
                gauntlet_sim_newcomers_within(on, 20, NULL), total, gauntlet_sim_newcomers_within(off, 20, NULL),
                total);
        gauntlet_sim_free(off);
    }
    gauntlet_sim_free(on);
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
