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
 *      final score to 0; a valid one gets its gradient score (capped),
 *      indicator, binary moving average, sync score and negative history;
 *   3. one Plackett-Luce match ranked by gradient score, the missing and
 *      invalid ones playing with missing_score; for the valid ones final =
 *      ordinal * max(0, bma) * sync (bma below the threshold counts as 0
 *      after the warm-up); then poor sync multiplies;
 *   4. negative evaluations: slash and peer-list exclusion, unless the whole
 *      field regressed;
 *   5. gather reliability: escalating factors for a gather peer's misses,
 *      reset and ban for a peer missing half of its recent gathers;
 *   6. copycats (after the warm-up): the later uploader of each pair, at its
 *      highest overlap of the window: slash, reset, or reset and ban;
 *   7. inactivity: each window without an upload multiplies, and a spell
 *      longer than inactivity_reset_windows resets once;
 *   8. banned uids hold a final score of 0.
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
    u->neg_hist = u->gather_hist = 0;
    u->neg_n = u->gather_n = 0;
    u->neg_consecutive = u->gather_consecutive = 0;
    u->excluded = false;
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

/* Pushes one entry onto a history of at most len entries (bit 0 latest). */
static void hist_push(uint32_t *bits, uint8_t *n, bool v, int64_t len) {
    uint32_t mask = len >= 32 ? UINT32_MAX : ((1u << len) - 1);
    *bits = ((*bits << 1) | (v ? 1u : 0u)) & mask;
    if (*n < len) (*n)++;
}

static int popcount32(uint32_t x) { return __builtin_popcount(x); }

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
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
    if ((in->n_gather_ok && !in->gather_ok) || (in->n_gather_missed && !in->gather_missed) ||
        in->n_gather_ok > GAUNTLET_MAX_UIDS || in->n_gather_missed > GAUNTLET_MAX_UIDS) {
        rc = ts_fail(e, TS_EINVAL, "window input: bad gather lists");
        goto out_free;
    }
    for (size_t i = 0; i < in->n_gather_ok + in->n_gather_missed; i++) {
        uint32_t uid = i < in->n_gather_ok ? in->gather_ok[i] : in->gather_missed[i - in->n_gather_ok];
        if (uid >= GAUNTLET_MAX_UIDS) {
            rc = ts_fail(e, TS_EINVAL, "gather uid %u out of range", uid);
            goto out_free;
        }
        if (seen[uid] & 4) {
            rc = ts_fail(e, TS_EINVAL, "uid %u listed twice in the window's gather", uid);
            goto out_free;
        }
        seen[uid] |= 4;
    }
    qsort(reg, in->n_registered, sizeof *reg, cmp_reg);
    /* warm-ups count from the first window this state applied */
    uint64_t first = s->window == GAUNTLET_NEVER ? w : s->first_window;
    uint64_t age = w - first; /* windows applied before this one (by number) */

    /* ---- 1. registrations */
    size_t n = in->n_registered;
    gauntlet_uid *nu = n ? calloc(n, sizeof *nu) : NULL;
    double *mscores = calloc(in->n_evals + 1, sizeof(double));
    os_rating *rin = calloc(in->n_evals + 1, sizeof(os_rating));
    os_rating *rout = calloc(in->n_evals + 1, sizeof(os_rating));
    gauntlet_uid **mplayers = calloc(in->n_evals + 1, sizeof *mplayers);
    int *sizes = calloc(in->n_evals + 1, sizeof(int));
    bool *measured = calloc(in->n_evals + 1, sizeof(bool));
    bool *valid_player = calloc(in->n_evals + 1, sizeof(bool));
    double *maxov = calloc(n + 1, sizeof(double));
    if ((n && !nu) || !mscores || !rin || !rout || !mplayers || !sizes || !measured || !valid_player || !maxov) {
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
            if (p->missing_in_match) { /* plays the match and loses it */
                mplayers[nm] = u;
                mscores[nm] = p->missing_score;
                rin[nm] = u->rating;
                sizes[nm] = 1;
                nm++;
            }
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
            if (p->missing_in_match) {
                mplayers[nm] = u;
                mscores[nm] = p->missing_score;
                rin[nm] = u->rating;
                sizes[nm] = 1;
                nm++;
            }
            continue;
        }
        double rand_imp = (ev->loss_rand_before - ev->loss_rand_after) / ev->loss_rand_before;
        double own_imp = (ev->loss_own_before - ev->loss_own_after) / ev->loss_own_before;
        /* Templar keeps gradient scores in a float32 tensor: equal float32
         * scores tie in the match.  The cap: no single outsized update wins
         * a window by more than gradient_cap. */
        if (p->gradient_cap > 0 && rand_imp > p->gradient_cap) rand_imp = p->gradient_cap;
        u->gradient_score = (double)(float)rand_imp;
        /* the negative-evaluation history (a non-negative one ends an exclusion) */
        bool neg = u->gradient_score < 0;
        hist_push(&u->neg_hist, &u->neg_n, neg, p->negative_history);
        if (neg) {
            if (u->neg_consecutive != UINT32_MAX) u->neg_consecutive++;
        } else {
            u->neg_consecutive = 0;
            u->excluded = false;
        }
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
        valid_player[nm] = true;
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
        if (!valid_player[i]) continue; /* missing or invalid: rating only */
        gauntlet_uid *u = mplayers[i];
        double bp = u->binary_ma > 0 ? u->binary_ma : 0.0;
        /* past the warm-up a weak binary moving average counts as 0 */
        if (age >= (uint64_t)p->bma_warmup_windows && bp < p->bma_threshold) {
            if (bp > 0) mark(u, GAUNTLET_PEN_BMA_THRESHOLD, w);
            bp = 0;
        }
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

    /* ---- 4. negative evaluations.  Not in a window whose
     * negative_field_rank-th best score (the lowest, with fewer players) is
     * negative: then the whole field regressed, not the miner. */
    bool field_negative = false;
    if (nm) {
        double *sorted = malloc(nm * sizeof *sorted);
        if (!sorted) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            goto out_arrays;
        }
        memcpy(sorted, mscores, nm * sizeof *sorted);
        qsort(sorted, nm, sizeof *sorted, cmp_desc);
        size_t k = (size_t)p->negative_field_rank - 1;
        field_negative = sorted[k < nm ? k : nm - 1] < 0;
        free(sorted);
    }
    /* Every uid whose full history holds too many negatives is slashed each
     * window while it does (as Templar does); consecutive negatives take it
     * out of the peer list until a non-negative evaluation. */
    for (size_t i = 0; !field_negative && i < n; i++) {
        gauntlet_uid *u = &nu[i];
        if (gauntlet_is_banned(u, w)) continue;
        if (u->neg_n >= p->negative_history &&
            popcount32(u->neg_hist) > p->negative_slash_count && u->final_score > 0) {
            penalize(u, p->negative_slash_factor, p, w);
            mark(u, GAUNTLET_PEN_NEG_SLASH, w);
            bump(u, GAUNTLET_CNT_NEG_SLASH);
        }
        if (p->negative_exclude_consecutive > 0 && !u->excluded &&
            u->neg_consecutive >= (uint64_t)p->negative_exclude_consecutive) {
            u->excluded = true;
            mark(u, GAUNTLET_PEN_NEG_EXCLUDE, w);
            bump(u, GAUNTLET_CNT_NEG_EXCLUDE);
        }
    }

    /* ---- 5. gather reliability: each gather peer whose upload was missing
     * or invalid multiplies by gather_miss_factor_1, _2, _3 on consecutive
     * misses, by 0 when its success rate over its recorded gather windows
     * (once they fill half the history) is below gather_success_min; missing at least gather_ban_share of a full
     * history resets it and bans it for gather_ban_windows. */
    for (size_t i = 0; i < in->n_gather_ok; i++) {
        gauntlet_uid *u = find_in(nu, n, in->gather_ok[i]);
        if (!u) continue;
        hist_push(&u->gather_hist, &u->gather_n, false, p->gather_history);
        u->gather_consecutive = 0;
    }
    for (size_t i = 0; i < in->n_gather_missed; i++) {
        gauntlet_uid *u = find_in(nu, n, in->gather_missed[i]);
        if (!u || gauntlet_is_banned(u, w)) continue;
        hist_push(&u->gather_hist, &u->gather_n, true, p->gather_history);
        if (u->gather_consecutive != UINT32_MAX) u->gather_consecutive++;
        int missed = popcount32(u->gather_hist);
        bump(u, GAUNTLET_CNT_GATHER_MISS);
        mark(u, GAUNTLET_PEN_GATHER_MISS, w);
        if (u->gather_n >= p->gather_history &&
            (double)missed >= p->gather_ban_share * (double)p->gather_history) {
            fresh_scores(u, p);
            u->ban_until = w + 1 + (uint64_t)p->gather_ban_windows;
            mark(u, GAUNTLET_PEN_GATHER_BAN, w);
            bump(u, GAUNTLET_CNT_GATHER_BAN);
            continue;
        }
        /* the success rate counts once the history is half full */
        double rate = 1.0 - (double)missed / (double)u->gather_n;
        bool rate_low = 2 * (int64_t)u->gather_n >= p->gather_history && rate < p->gather_success_min;
        double f = rate_low ? 0.0
                   : u->gather_consecutive == 1 ? p->gather_miss_factor_1
                   : u->gather_consecutive == 2 ? p->gather_miss_factor_2
                                                : p->gather_miss_factor_3;
        penalize(u, f, p, w);
    }

    /* ---- 6. copycats (after the warm-up): the later uploader, at its
     * highest overlap */
    for (size_t i = 0; age >= (uint64_t)p->copycat_start_windows && i < in->n_overlaps; i++) {
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

    /* ---- 7. inactivity */
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

    /* ---- 8. bans */
    for (size_t i = 0; i < n; i++)
        if (gauntlet_is_banned(&nu[i], w)) nu[i].final_score = 0;

    free(s->uids);
    s->uids = nu;
    s->n = s->cap = n;
    s->window = w;
    s->first_window = first;
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
    free(valid_player);
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

static bool is_newcomer(const gauntlet_uid *u, const gauntlet_params *p, uint64_t window) {
    return window != GAUNTLET_NEVER && window >= u->first_seen_window &&
           window - u->first_seen_window < (uint64_t)p->newcomer_windows;
}

/* A newcomer's provisional standing: its rating's sigma shrinks slowly
 * (after a handful of 15-player matches it is still close to the prior), so
 * mu - 3 sigma says little yet.  A newcomer with newcomer_evals valid
 * evaluations, a binary moving average at the threshold or above (it trains
 * on its own pages), a positive sync score and a mean rating at least the
 * prior's (it beat as many as beat it) may take a newcomer place; they are
 * ranked by mu. */
static bool newcomer_eligible(const gauntlet_uid *u, const gauntlet_params *p) {
    if (u->final_score > 0) return true;
    return u->counts[GAUNTLET_CNT_EVALS] >= (uint64_t)p->newcomer_evals && u->binary_ma > 0 &&
           u->binary_ma >= p->bma_threshold && u->sync_score > 0 && u->rating.mu >= p->openskill_mu;
}

/* Miners eligible for weight (for the peer list: and not excluded), in
 * tiers: [0, g) the gather tier, the best final scores; [g, g + rs) the
 * reserve tier: the next best, of which up to newcomer_slots places at its
 * end go to newcomers not already placed (by mu, see newcomer_eligible).
 * Caller frees. */
static int rank_tiers(const gauntlet_state *s, const gauntlet_params *p, bool for_peers, ranked **out,
                      size_t *ng, size_t *nr, ts_err *e) {
    ranked *r = malloc((s->n + 1) * sizeof *r);
    ranked *cand = malloc(2 * (s->n + 1) * sizeof *cand); /* candidates, then scratch */
    bool *placed = calloc(GAUNTLET_MAX_UIDS, sizeof *placed);
    if (!r || !cand || !placed) {
        free(r);
        free(cand);
        free(placed);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        const gauntlet_uid *u = &s->uids[i];
        if (!(u->final_score > 0) || gauntlet_is_banned(u, s->window)) continue;
        if (p->burn_share > 0 && u->uid == (uint32_t)p->burn_uid) continue;
        if (for_peers && u->excluded) continue;
        r[k].uid = u->uid;
        r[k].score = u->final_score;
        k++;
    }
    qsort(r, k, sizeof *r, cmp_ranked);
    size_t g = k < (size_t)p->gather_peers ? k : (size_t)p->gather_peers;
    size_t rest = k - g, rs = rest < (size_t)p->reserve_peers ? rest : (size_t)p->reserve_peers;
    size_t have = 0;
    for (size_t i = 0; i < g + rs; i++) {
        placed[r[i].uid] = true;
        if (i >= g) have += is_newcomer(gauntlet_state_find(s, r[i].uid), p, s->window);
    }
    size_t want = (size_t)p->newcomer_slots > have ? (size_t)p->newcomer_slots - have : 0, nc = 0;
    for (size_t i = 0; want && i < s->n; i++) {
        const gauntlet_uid *u = &s->uids[i];
        if (placed[u->uid] || !is_newcomer(u, p, s->window) || gauntlet_is_banned(u, s->window)) continue;
        if (p->burn_share > 0 && u->uid == (uint32_t)p->burn_uid) continue;
        if ((for_peers && u->excluded) || !newcomer_eligible(u, p)) continue;
        cand[nc].uid = u->uid;
        cand[nc].score = u->rating.mu;
        nc++;
    }
    qsort(cand, nc, sizeof *cand, cmp_ranked);
    if (nc > want) nc = want;
    if (nc) {
        /* room: the reserve's free places, then its last non-newcomers */
        size_t free_places = (size_t)p->reserve_peers - rs, drop = nc > free_places ? nc - free_places : 0;
        ranked *res = cand + nc; /* scratch after the chosen candidates */
        size_t m = 0;
        for (size_t i = g + rs; i-- > g && drop;) {
            if (is_newcomer(gauntlet_state_find(s, r[i].uid), p, s->window)) continue;
            r[i].uid = UINT32_MAX; /* dropped */
            drop--;
        }
        for (size_t i = g; i < g + rs; i++)
            if (r[i].uid != UINT32_MAX) res[m++] = r[i];
        for (size_t i = 0; i < nc; i++) res[m++] = cand[i];
        memcpy(r + g, res, m * sizeof *r);
        rs = m;
    }
    free(cand);
    free(placed);
    *out = r;
    *ng = g;
    *nr = rs;
    return TS_OK;
}

int gauntlet_weights(const gauntlet_state *s, const gauntlet_params *p, uint32_t *uids,
                     double *weights, size_t cap, size_t *nout, ts_err *e) {
    int rc = gauntlet_params_check(p, e);
    if (rc) return rc;
    ranked *r;
    size_t g, rs;
    if ((rc = rank_tiers(s, p, false, &r, &g, &rs, e))) return rc;
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
    size_t g, rs;
    int rc = rank_tiers(s, p, true, &r, &g, &rs, e);
    if (rc) return rc;
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
    bool newcomer; /* few evaluations yet: evaluated first */
} cand;

/* Efraimidis-Spirakis keys for pool[0..np) (sorted by uid): key =
 * log(u) / weight, u from a ChaCha20 stream seeded by (tag, seed, window);
 * then the pool sorted by key, largest first. */
static int es_keys(cand *pool, size_t np, const char tag[24], uint64_t seed, uint64_t window, ts_err *e) {
    uint8_t msg[40], sd[32];
    memcpy(msg, tag, 24);
    ts_put_u64(msg + 24, seed);
    ts_put_u64(msg + 32, window);
    ts_blake2b(sd, 32, msg, sizeof msg);
    uint64_t *rnd = malloc((np + 1) * sizeof *rnd);
    if (!rnd) return ts_fail(e, TS_ENOMEM, "out of memory");
    ts_det_bytes(rnd, (np + 1) * sizeof *rnd, sd);
    for (size_t i = 0; i < np; i++) {
        uint8_t b8[8];
        memcpy(b8, &rnd[i], 8);
        double u = ((double)(ts_get_u64(b8) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
        pool[i].key = log(u) / pool[i].weight;
    }
    free(rnd);
    return TS_OK;
}

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
        c[n].newcomer = !u || (u->counts[GAUNTLET_CNT_EVALS] < (uint64_t)p->newcomer_evals &&
                               is_newcomer(u, p, window));
        n++;
    }
    size_t k = (size_t)p->uids_per_window, m = 0;
    /* newcomers first: up to newcomer_eval_slots of them, by the same
     * weighted sampling on a stream of their own */
    if (p->newcomer_eval_slots > 0) {
        qsort(c, n, sizeof *c, cmp_cand_uid);
        size_t nn = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].newcomer) {
                cand t = c[nn];
                c[nn++] = c[i];
                c[i] = t;
            }
        qsort(c, nn, sizeof *c, cmp_cand_uid);
        if ((rc = es_keys(c, nn, "tessera-gauntlet-novice", seed, window, e))) {
            free(c);
            return rc;
        }
        qsort(c, nn, sizeof *c, cmp_cand_key);
        size_t take = nn < (size_t)p->newcomer_eval_slots ? nn : (size_t)p->newcomer_eval_slots;
        for (size_t i = 0; i < take; i++) out[m++] = c[i].uid;
        memmove(c, c + take, (n - take) * sizeof *c);
        n -= take;
        k -= take;
    }
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
    if ((rc = es_keys(pool, np, "tessera-gauntlet-select\0", seed, window, e))) {
        free(c);
        return rc;
    }
    qsort(pool, np, sizeof *pool, cmp_cand_key);
    size_t take = np < k ? np : k;
    for (size_t i = 0; i < take; i++) out[m++] = pool[i].uid;
    *n_out = m;
    free(c);
    return TS_OK;
}
