/* update.c - one window of scoring (PROTOCOL section 9), the weights, the
 * peer list and the selection of whom to evaluate next.
 *
 * The order inside a window, and the reading of each ambiguous point, is
 * documented in the README ("Scoring (the Gauntlet)"):
 *   1. registrations: a uid with a new hotkey starts afresh (bans cleared); a
 *      uid no longer registered is dropped;
 *   2. evaluations, in the given order: missing / early / late uploads
 *      multiply the positive scores (final score and binary moving average)
 *      by missing_factor; an invalid upload (or non-finite losses) sets the
 *      final score to 0; a valid one gets its gradient score, indicator,
 *      binary moving average and sync score;
 *   3. the valid ones play one Plackett-Luce match ranked by gradient score;
 *      final = ordinal * max(0, bma) * sync; then poor sync multiplies;
 *   4. copycats: the later uploader of each pair, at its highest overlap of
 *      the window: slash, reset, or reset and ban;
 *   5. inactivity: each window without an upload multiplies, and a spell
 *      longer than inactivity_reset_windows resets once;
 *   6. banned uids hold a final score of 0.
 * A positive score that a penalty pushes below score_floor becomes 0.
 * The whole update works on a copy: a failure leaves the state unchanged. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gauntlet.h"

const char *gauntlet_upload_name(gauntlet_upload u) {
    switch (u) {
    case GAUNTLET_UPLOAD_OK: return "ok";
    case GAUNTLET_UPLOAD_MISSING: return "missing";
    case GAUNTLET_UPLOAD_EARLY: return "early";
    case GAUNTLET_UPLOAD_LATE: return "late";
    case GAUNTLET_UPLOAD_INVALID: return "invalid";
    }
    return "?";
}

static void mark(gauntlet_uid *u, uint32_t bit, uint64_t window) {
    if (u->last_penalty_window != window) u->last_penalties = 0;
    u->last_penalty_window = window;
    u->last_penalties |= bit;
}

static void bump(gauntlet_uid *u, int c) {
    if (u->counts[c] != UINT32_MAX) u->counts[c]++;
}

/* Multiplies one positive score; below the floor it becomes 0. */
static void pen_one(double *x, double f, const gauntlet_params *p, gauntlet_uid *u, uint64_t w) {
    if (*x > 0) {
        *x *= f;
        if (*x < p->score_floor) {
            if (*x > 0) mark(u, GAUNTLET_PEN_FLOOR, w);
            *x = 0;
        }
    }
}

/* "x f on the miner's positive scores": the final score and the binary
 * moving average, the two scores that persist between evaluations and feed
 * the weights. */
static void penalize(gauntlet_uid *u, double f, const gauntlet_params *p, uint64_t w) {
    pen_one(&u->final_score, f, p, u, w);
    pen_one(&u->binary_ma, f, p, u, w);
}

static void fresh_scores(gauntlet_uid *u, const gauntlet_params *p) {
    u->gradient_score = 0;
    u->indicator = 0;
    u->binary_ma = 0;
    u->sync_score = 0;
    u->steps_behind = NAN;
    u->final_score = 0;
    u->rating.mu = p->openskill_mu;
    u->rating.sigma = p->openskill_sigma;
    u->last_eval_window = GAUNTLET_NEVER;
}

static void fresh_record(gauntlet_uid *u, uint32_t uid, const uint8_t hotkey[32],
                         const gauntlet_params *p, uint64_t window) {
    memset(u, 0, sizeof *u);
    u->uid = uid;
    memcpy(u->hotkey, hotkey, 32);
    fresh_scores(u, p);
    u->first_seen_window = window;
}

static int cmp_reg(const void *a, const void *b) {
    uint32_t x = (*(const gauntlet_reg *const *)a)->uid, y = (*(const gauntlet_reg *const *)b)->uid;
    return x < y ? -1 : x > y;
}

static gauntlet_uid *find_in(gauntlet_uid *arr, size_t n, uint32_t uid) {
    gauntlet_state tmp = {.n = n, .uids = arr};
    return gauntlet_state_find(&tmp, uid);
}

int gauntlet_update(gauntlet_state *s, const gauntlet_params *p, const gauntlet_window_input *in,
                    ts_err *e) {
    int rc = gauntlet_params_check(p, e);
    if (rc) return rc;
    uint64_t w = in->window;
    if (w == GAUNTLET_NEVER) return ts_fail(e, TS_EINVAL, "window out of range");
    if (s->window != GAUNTLET_NEVER && w <= s->window)
        return ts_fail(e, TS_ESTATE, "window %llu already applied (state is at window %llu)",
                       (unsigned long long)w, (unsigned long long)s->window);
    if (in->n_registered > GAUNTLET_MAX_UIDS || in->n_evals > GAUNTLET_MAX_UIDS ||
        in->n_overlaps > 4u * GAUNTLET_MAX_UIDS * 64u)
        return ts_fail(e, TS_ETOOBIG, "window input too large");
    if ((in->n_registered && !in->registered) || (in->n_evals && !in->evals) ||
        (in->n_overlaps && !in->overlaps))
        return ts_fail(e, TS_EINVAL, "window input: missing array");

    /* ---- validate everything before touching anything */
    const gauntlet_reg **reg = malloc((in->n_registered + 1) * sizeof *reg);
    uint8_t *seen = calloc(GAUNTLET_MAX_UIDS, 1);
    if (!reg || !seen) {
        free(reg);
        free(seen);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < in->n_registered; i++) {
        uint32_t uid = in->registered[i].uid;
        if (uid >= GAUNTLET_MAX_UIDS) {
            rc = ts_fail(e, TS_EINVAL, "registered uid %u out of range", uid);
            goto out_free;
        }
        if (seen[uid] & 1) {
            rc = ts_fail(e, TS_EINVAL, "uid %u registered twice", uid);
            goto out_free;
        }
        seen[uid] |= 1;
        reg[i] = &in->registered[i];
    }
    for (size_t i = 0; i < in->n_evals; i++) {
        const gauntlet_eval *ev = &in->evals[i];
        if (ev->uid >= GAUNTLET_MAX_UIDS) {
            rc = ts_fail(e, TS_EINVAL, "evaluated uid %u out of range", ev->uid);
            goto out_free;
        }
        if (seen[ev->uid] & 2) {
            rc = ts_fail(e, TS_EINVAL, "uid %u evaluated twice in one window", ev->uid);
            goto out_free;
        }
        seen[ev->uid] |= 2;
        if ((unsigned)ev->status > GAUNTLET_UPLOAD_INVALID) {
            rc = ts_fail(e, TS_EINVAL, "uid %u: unknown upload status %d", ev->uid, (int)ev->status);
            goto out_free;
        }
    }
    for (size_t i = 0; i < in->n_overlaps; i++) {
        const gauntlet_overlap *o = &in->overlaps[i];
        if (!(o->overlap >= 0 && o->overlap <= 1)) {
            rc = ts_fail(e, TS_EINVAL, "overlap of uids %u and %u is %g, outside [0, 1]", o->uid_a,
                         o->uid_b, o->overlap);
            goto out_free;
        }
        if (o->uid_a == o->uid_b || (o->later != o->uid_a && o->later != o->uid_b)) {
            rc = ts_fail(e, TS_EINVAL, "overlap pair (%u, %u): later uploader %u is not one of them",
                         o->uid_a, o->uid_b, o->later);
            goto out_free;
        }
    }
    qsort(reg, in->n_registered, sizeof *reg, cmp_reg);

    /* ---- 1. registrations */
    size_t n = in->n_registered;
    gauntlet_uid *nu = n ? calloc(n, sizeof *nu) : NULL;
    double *mscores = calloc(in->n_evals + 1, sizeof(double));
    os_rating *rin = calloc(in->n_evals + 1, sizeof(os_rating));
    os_rating *rout = calloc(in->n_evals + 1, sizeof(os_rating));
    gauntlet_uid **mplayers = calloc(in->n_evals + 1, sizeof *mplayers);
    int *sizes = calloc(in->n_evals + 1, sizeof(int));
    bool *measured = calloc(in->n_evals + 1, sizeof(bool));
    double *maxov = calloc(n + 1, sizeof(double));
    if ((n && !nu) || !mscores || !rin || !rout || !mplayers || !sizes || !measured || !maxov) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto out_arrays;
    }
    for (size_t i = 0; i < n; i++) {
        const gauntlet_reg *r = reg[i];
        gauntlet_uid *old = gauntlet_state_find(s, r->uid);
        if (old && !memcmp(old->hotkey, r->hotkey, 32)) {
            nu[i] = *old;
        } else {
            fresh_record(&nu[i], r->uid, r->hotkey, p, w);
            if (old) mark(&nu[i], GAUNTLET_PEN_REREGISTERED, w);
        }
    }

    /* ---- 2. evaluations */
    size_t nm = 0;
    for (size_t i = 0; i < in->n_evals; i++) {
        const gauntlet_eval *ev = &in->evals[i];
        gauntlet_uid *u = find_in(nu, n, ev->uid);
        if (!u || gauntlet_is_banned(u, w)) continue; /* deregistered or banned: ignored */
        u->last_eval_window = w;
        switch (ev->status) {
        case GAUNTLET_UPLOAD_MISSING:
        case GAUNTLET_UPLOAD_EARLY:
        case GAUNTLET_UPLOAD_LATE: {
            static const uint32_t bits[] = {0, GAUNTLET_PEN_MISSING, GAUNTLET_PEN_EARLY, GAUNTLET_PEN_LATE};
            static const int cnts[] = {0, GAUNTLET_CNT_MISSING, GAUNTLET_CNT_EARLY, GAUNTLET_CNT_LATE};
            penalize(u, p->missing_factor, p, w);
            mark(u, bits[ev->status], w);
            bump(u, cnts[ev->status]);
            continue;
        }
        default: break;
        }
        bool valid = ev->status == GAUNTLET_UPLOAD_OK && isfinite(ev->loss_own_before) &&
                     isfinite(ev->loss_own_after) && isfinite(ev->loss_rand_before) &&
                     isfinite(ev->loss_rand_after) && ev->loss_own_before > 0 &&
                     ev->loss_rand_before > 0 && ev->loss_own_after >= 0 && ev->loss_rand_after >= 0;
        if (!valid) {
            u->final_score = 0;
            u->gradient_score = 0;
            mark(u, GAUNTLET_PEN_INVALID, w);
            bump(u, GAUNTLET_CNT_INVALID);
            continue;
        }
        double rand_imp = (ev->loss_rand_before - ev->loss_rand_after) / ev->loss_rand_before;
        double own_imp = (ev->loss_own_before - ev->loss_own_after) / ev->loss_own_before;
        /* Templar keeps gradient scores in a float32 tensor: equal float32
         * scores tie in the match. */
        u->gradient_score = (double)(float)rand_imp;
        u->indicator = own_imp > rand_imp ? 1.0 : -1.0;
        u->binary_ma = (1 - p->binary_ma_alpha) * u->binary_ma + p->binary_ma_alpha * u->indicator;
        if (u->binary_ma > 1) u->binary_ma = 1;
        if (u->binary_ma < -1) u->binary_ma = -1;
        /* NaN: the validator could not measure (its own reference missing):
         * not the miner's fault, so the last measure stands.  +inf: the miner
         * published no usable sync record: sync 0. */
        measured[nm] = !isnan(ev->steps_behind);
        if (measured[nm]) {
            u->steps_behind = ev->steps_behind;
            if (isfinite(ev->steps_behind)) {
                double x = ev->steps_behind < 0 ? 0 : ev->steps_behind;
                double m = x < p->sync_cap_steps ? x : p->sync_cap_steps;
                double b = 1 - m / p->sync_cap_steps;
                u->sync_score = pow(b > 0 ? b : 0, p->sync_exponent);
            } else {
                u->sync_score = 0;
            }
        }
        bump(u, GAUNTLET_CNT_EVALS);
        mplayers[nm] = u;
        mscores[nm] = u->gradient_score;
        rin[nm] = u->rating;
        sizes[nm] = 1;
        nm++;
    }

    /* ---- 3. the match and the final scores */
    if (nm >= 2) {
        os_model m;
        gauntlet_params_model(p, &m);
        os_match mt = {.nteams = (int)nm, .team_sizes = sizes, .ratings = rin, .scores = mscores,
                       .limit_sigma = -1};
        rc = os_rate(&m, &mt, rout, e);
        if (rc) {
            ts_wrap(e, "window %llu match", (unsigned long long)w);
            goto out_arrays;
        }
        for (size_t i = 0; i < nm; i++) mplayers[i]->rating = rout[i];
    }
    for (size_t i = 0; i < nm; i++) {
        gauntlet_uid *u = mplayers[i];
        double bp = u->binary_ma > 0 ? u->binary_ma : 0.0;
        u->final_score = (double)(float)((os_ordinal(u->rating) * bp) * u->sync_score);
        if (u->final_score > 0 && u->final_score < p->score_floor) {
            u->final_score = 0;
            mark(u, GAUNTLET_PEN_FLOOR, w);
        }
        if (measured[i] && (!isfinite(u->steps_behind) || u->steps_behind > p->sync_poor_steps)) {
            penalize(u, p->sync_poor_factor, p, w);
            mark(u, GAUNTLET_PEN_POOR_SYNC, w);
            bump(u, GAUNTLET_CNT_POOR_SYNC);
        }
    }

    /* ---- 4. copycats: the later uploader, at its highest overlap */
    for (size_t i = 0; i < in->n_overlaps; i++) {
        const gauntlet_overlap *o = &in->overlaps[i];
        gauntlet_uid *u = find_in(nu, n, o->later);
        if (!u) continue;
        size_t k = (size_t)(u - nu);
        if (o->overlap > maxov[k]) maxov[k] = o->overlap;
    }
    for (size_t k = 0; k < n; k++) {
        gauntlet_uid *u = &nu[k];
        double ov = maxov[k];
        if (ov <= 0) continue;
        if (ov > u->last_overlap) u->last_overlap = ov;
        if (ov >= p->copycat_ban_overlap) {
            fresh_scores(u, p);
            u->ban_until = w + 1 + (uint64_t)p->copycat_ban_windows;
            mark(u, GAUNTLET_PEN_COPY_BAN, w);
            bump(u, GAUNTLET_CNT_COPY_BAN);
        } else if (ov >= p->copycat_reset_overlap) {
            fresh_scores(u, p);
            mark(u, GAUNTLET_PEN_COPY_RESET, w);
            bump(u, GAUNTLET_CNT_COPY_RESET);
        } else if (ov >= p->copycat_slash_overlap) {
            penalize(u, p->copycat_slash_factor, p, w);
            mark(u, GAUNTLET_PEN_COPY_SLASH, w);
            bump(u, GAUNTLET_CNT_COPY_SLASH);
        }
    }

    /* ---- 5. inactivity */
    for (size_t i = 0; i < n; i++) {
        gauntlet_uid *u = &nu[i];
        if (reg[i]->active) {
            u->inactive_windows = 0;
            continue;
        }
        if (u->inactive_windows != UINT32_MAX) u->inactive_windows++;
        bump(u, GAUNTLET_CNT_INACTIVE);
        if (u->inactive_windows <= (uint64_t)p->inactivity_reset_windows) {
            penalize(u, p->inactivity_factor, p, w);
            mark(u, GAUNTLET_PEN_INACTIVE, w);
        } else if (u->inactive_windows == (uint64_t)p->inactivity_reset_windows + 1 &&
                   (u->last_eval_window != GAUNTLET_NEVER || u->final_score != 0 ||
                    u->binary_ma != 0)) {
            fresh_scores(u, p);
            mark(u, GAUNTLET_PEN_INACTIVE_RESET, w);
            bump(u, GAUNTLET_CNT_INACTIVE_RESET);
        }
    }

    /* ---- 6. bans */
    for (size_t i = 0; i < n; i++)
        if (gauntlet_is_banned(&nu[i], w)) nu[i].final_score = 0;

    free(s->uids);
    s->uids = nu;
    s->n = s->cap = n;
    s->window = w;
    nu = NULL;
    rc = TS_OK;
out_arrays:
    free(nu);
    free(mscores);
    free(rin);
    free(rout);
    free(mplayers);
    free(sizes);
    free(measured);
    free(maxov);
out_free:
    free(reg);
    free(seen);
    return rc;
}

/* ------------------------------------------------------------ weights */

typedef struct ranked {
    uint32_t uid;
    double score;
} ranked;

static int cmp_ranked(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* Miners eligible for weight, best first; caller frees. */
static int rank_miners(const gauntlet_state *s, const gauntlet_params *p, ranked **out, size_t *n,
                       ts_err *e) {
    ranked *r = malloc((s->n + 1) * sizeof *r);
    if (!r) return ts_fail(e, TS_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        const gauntlet_uid *u = &s->uids[i];
        if (!(u->final_score > 0) || gauntlet_is_banned(u, s->window)) continue;
        if (p->burn_share > 0 && u->uid == (uint32_t)p->burn_uid) continue;
        r[k].uid = u->uid;
        r[k].score = u->final_score;
        k++;
    }
    qsort(r, k, sizeof *r, cmp_ranked);
    *out = r;
    *n = k;
    return TS_OK;
}


int gauntlet_weights(const gauntlet_state *s, const gauntlet_params *p, uint32_t *uids,
                     double *weights, size_t cap, size_t *nout, ts_err *e) {
    int rc = gauntlet_params_check(p, e);
    if (rc) return rc;
    ranked *r;
    size_t n;
    if ((rc = rank_miners(s, p, &r, &n, e))) return rc;
    size_t g = n < (size_t)p->gather_peers ? n : (size_t)p->gather_peers;
    size_t rs = n - g < (size_t)p->reserve_peers ? n - g : (size_t)p->reserve_peers;
    double burn = p->burn_share;
    size_t need = g + rs + (burn > 0 || g == 0 ? 1 : 0);
    if (cap < need) {
        free(r);
        return ts_fail(e, TS_EINVAL, "weights: room for %zu entries, need %zu", cap, need);
    }
    double *w = calloc(g + rs + 1, sizeof(double));
    if (!w) {
        free(r);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    /* gather: linear ramp from gather_ramp_top down to 1 over the tier */
    double gsum = 0, rsum = 0;
    for (size_t i = 0; i < g; i++) {
        w[i] = g == 1 ? p->gather_ramp_top
                      : p->gather_ramp_top + (1.0 - p->gather_ramp_top) * (double)i / (double)(g - 1);
        gsum += w[i];
    }
    for (size_t i = 0; i < rs; i++) {
        w[g + i] = pow(p->reserve_decay, (double)i);
        rsum += w[g + i];
    }
    double gtot = (1.0 - burn) * p->gather_share, rtot = (1.0 - burn) * (1.0 - p->gather_share);
    for (size_t i = 0; i < g; i++) w[i] = gtot * (w[i] / gsum);
    for (size_t i = 0; i < rs; i++) w[g + i] = rtot * (w[g + i] / rsum);
    if (p->reserve_cap && g && rs && w[g] > w[g - 1]) {
        double f = w[g - 1] / w[g] * p->reserve_decay;
        for (size_t i = 0; i < rs; i++) w[g + i] *= f;
    }
    /* renormalise the miners to exactly 1 - burn (a missing tier's share
     * goes to the tier that is there) */
    double msum = 0;
    for (size_t i = 0; i < g + rs; i++) msum += w[i];
    size_t k = 0;
    if (msum > 0) {
        for (size_t i = 0; i < g + rs; i++) {
            uids[k] = r[i].uid;
            weights[k] = w[i] * ((1.0 - burn) / msum);
            k++;
        }
        if (burn > 0) {
            uids[k] = (uint32_t)p->burn_uid;
            weights[k] = burn;
            k++;
        }
    } else {
        uids[k] = (uint32_t)p->burn_uid; /* nobody earns: all to the burn uid */
        weights[k] = 1.0;
        k++;
    }
    /* sort by uid */
    for (size_t i = 1; i < k; i++) {
        uint32_t u = uids[i];
        double x = weights[i];
        size_t j = i;
        while (j > 0 && uids[j - 1] > u) {
            uids[j] = uids[j - 1];
            weights[j] = weights[j - 1];
            j--;
        }
        uids[j] = u;
        weights[j] = x;
    }
    free(w);
    free(r);
    *nout = k;
    return TS_OK;
}

int gauntlet_peers(const gauntlet_state *s, const gauntlet_params *p, uint32_t *gather,
                   size_t *n_gather, uint32_t *reserve, size_t *n_reserve, ts_err *e) {
    ranked *r;
    size_t n;
    int rc = rank_miners(s, p, &r, &n, e);
    if (rc) return rc;
    size_t g = n < (size_t)p->gather_peers ? n : (size_t)p->gather_peers;
    size_t rs = n - g < (size_t)p->reserve_peers ? n - g : (size_t)p->reserve_peers;
    for (size_t i = 0; i < g; i++) gather[i] = r[i].uid;
    for (size_t i = 0; i < rs; i++) reserve[i] = r[g + i].uid;
    *n_gather = g;
    *n_reserve = rs;
    free(r);
    return TS_OK;
}

/* ------------------------------------------------------------ selection */

typedef struct cand {
    uint32_t uid;
    double ordinal;
    double weight;
    double key;
} cand;

static int cmp_cand_ordinal(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->ordinal != y->ordinal) return x->ordinal > y->ordinal ? -1 : 1;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int cmp_cand_uid(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int cmp_cand_key(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key ? -1 : 1;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

int gauntlet_select(const gauntlet_state *s, const gauntlet_params *p,
                    const gauntlet_reg *registered, size_t n_registered, uint64_t window,
                    uint64_t seed, uint32_t *out, size_t *n_out, ts_err *e) {
    int rc = gauntlet_params_check(p, e);
    if (rc) return rc;
    if (n_registered > GAUNTLET_MAX_UIDS) return ts_fail(e, TS_ETOOBIG, "too many registered uids");
    cand *c = malloc((n_registered + 1) * sizeof *c);
    if (!c) return ts_fail(e, TS_ENOMEM, "out of memory");
    size_t n = 0;
    double prior_ord = p->openskill_mu - 3.0 * p->openskill_sigma;
    for (size_t i = 0; i < n_registered; i++) {
        const gauntlet_reg *r = &registered[i];
        const gauntlet_uid *u = gauntlet_state_find(s, r->uid);
        if (u && memcmp(u->hotkey, r->hotkey, 32)) u = NULL; /* re-registered: fresh */
        if (gauntlet_is_banned(u, window)) continue;
        c[n].uid = r->uid;
        c[n].ordinal = u ? os_ordinal(u->rating) : prior_ord;
        double since;
        if (!u) since = 1;
        else if (u->last_eval_window != GAUNTLET_NEVER)
            since = window > u->last_eval_window ? (double)(window - u->last_eval_window) : 1;
        else
            since = window >= u->first_seen_window ? (double)(window - u->first_seen_window + 1) : 1;
        c[n].weight = since;
        n++;
    }
    size_t k = (size_t)p->uids_per_window;
    cand *pool = c;
    size_t np = n;
    if (p->eval_bins > 1 && n >= (size_t)p->eval_bins * k) {
        qsort(c, n, sizeof *c, cmp_cand_ordinal);
        size_t bins = (size_t)p->eval_bins, b = (size_t)(window % bins);
        size_t lo = b * n / bins, hi = (b + 1) * n / bins;
        pool = c + lo;
        np = hi - lo;
    }
    qsort(pool, np, sizeof *pool, cmp_cand_uid);
    /* weighted sampling without replacement (Efraimidis-Spirakis): key =
     * log(u) / weight, the largest keys win; u from a ChaCha20 stream seeded
     * by (seed, window). */
    uint8_t msg[40], sd[32];
    memcpy(msg, "tessera-gauntlet-select\0", 24);
    ts_put_u64(msg + 24, seed);
    ts_put_u64(msg + 32, window);
    ts_blake2b(sd, 32, msg, sizeof msg);
    uint64_t *rnd = malloc((np + 1) * sizeof *rnd);
    if (!rnd) {
        free(c);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    ts_det_bytes(rnd, (np + 1) * sizeof *rnd, sd);
    for (size_t i = 0; i < np; i++) {
        uint8_t b8[8];
        memcpy(b8, &rnd[i], 8);
        double u = ((double)(ts_get_u64(b8) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
        pool[i].key = log(u) / pool[i].weight;
    }
    free(rnd);
    qsort(pool, np, sizeof *pool, cmp_cand_key);
    size_t m = np < k ? np : k;
    for (size_t i = 0; i < m; i++) out[i] = pool[i].uid;
    *n_out = m;
    free(c);
    return TS_OK;
}
