/* aggregate.c - clipping, scatter-mean, the outer step, its exact undo, the
 * dense aggregate and index overlap (PROTOCOL.md section 8 and 9).
 *
 * Work goes tile by tile: for each tile, every peer (in uid order) adds its
 * k clipped values into a 4096-entry accumulator owned by the context; the
 * coordinates touched are listed in first-touch order; then each touched
 * coordinate's mean (fp32 sum in peer order / count) is applied, written or
 * checked.  The same pass serves the outer step, the validator's one-peer
 * evaluation, the dense aggregate and the undo, so they agree bit for bit.
 *
 * A tensor whose aggregate has a non-finite value is skipped.  Decoded
 * uploads hold finite values of bounded size, so a non-finite mean can only
 * come from a non-finite clipped value or from an fp32 overflow of the sum;
 * the first is checked per peer and bin, and when the sum of the peers'
 * largest magnitudes stays under 1e38 the second cannot happen.  Only
 * otherwise is a separate checking pass run. */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

struct spl_undo {
    const spl_ctx *c;
    int max_peers;
    int64_t cap, used;
    float *vals;
    bool armed;
    int n;
    const spl_upload *peers[SPL_MAX_PEERS];
    uint64_t gens[SPL_MAX_PEERS];
    uint8_t *applied; /* per tensor */
};

enum { M_CHECK, M_APPLY, M_DENSE, M_RESTORE };

static int order_peers(const spl_ctx *c, const spl_upload *const *peers, int n, const spl_upload **out,
                       ts_err *e) {
    if (n < 0 || n > SPL_MAX_PEERS)
        return ts_fail(e, TS_EINVAL, "codec: %d peers (at most %d)", n, SPL_MAX_PEERS);
    if (n > 0 && !peers) return ts_fail(e, TS_EINVAL, "codec: no peers given");
    for (int i = 0; i < n; i++) {
        const spl_upload *p = peers[i];
        if (!p || !p->ok || p->c != c)
            return ts_fail(e, TS_EINVAL, "codec: peer %d is not a decoded upload of this context", i);
        int j = i;
        while (j > 0 && out[j - 1]->meta.uid > p->meta.uid) {
            out[j] = out[j - 1];
            j--;
        }
        if (j > 0 && out[j - 1]->meta.uid == p->meta.uid)
            return ts_fail(e, TS_EINVAL, "codec: two uploads from uid %u in one aggregation", p->meta.uid);
        out[j] = p;
    }
    return TS_OK;
}

static double median_norm(int ti, const spl_upload *const *ps, int n) {
    double v[SPL_MAX_PEERS];
    for (int i = 0; i < n; i++) {
        double x = ps[i]->rec[ti].norm;
        int j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    return n ? v[(n - 1) / 2] : 0.0;
}

int spl_clip_thresholds(const spl_ctx *c, const spl_upload *const *peers, int n, double *thr, ts_err *e) {
    const spl_upload *ps[SPL_MAX_PEERS];
    int rc = order_peers(c, peers, n, ps, e);
    if (rc) return rc;
    for (int i = 0; i < c->n; i++) thr[i] = median_norm(i, ps, n);
    return TS_OK;
}

/* c->sv[p * bins + b] = fl(fl(lut_b + shift) * (float)min(1, thr / (norm + 1e-8))).
 * Returns false when one is not finite; *bound = sum over peers of the
 * largest |value|. */
static bool scaled_values(spl_ctx *c, int ti, const spl_upload *const *ps, int n, double thr, double *bound) {
    const int bins = c->p.bins;
    bool fin = true;
    double sum = 0.0;
    for (int p = 0; p < n; p++) {
        const spl_rec *rec = &ps[p]->rec[ti];
        const float *lut = ps[p]->luts + (size_t)ti * bins;
        double f = thr / (rec->norm + 1e-8);
        if (!(f <= 1.0)) f = 1.0;
        const float ff = (float)f;
        double mx = 0.0;
        for (int b = 0; b < bins; b++) {
            const float s = (lut[b] + rec->shift) * ff;
            c->sv[p * bins + b] = s;
            if (!isfinite(s)) fin = false;
            else if (fabs((double)s) > mx) mx = fabs((double)s);
        }
        sum += mx;
    }
    *bound = sum;
    return fin;
}

/* One pass over tensor ti; returns the number of coordinates touched.  In
 * M_CHECK mode *finite is cleared when a mean is not finite. */
static int64_t tensor_pass(spl_ctx *c, int ti, const spl_upload *const *ps, int n, int mode, float alpha, float *x,
                           float *saved, int64_t *pos, bool *finite) {
    const spl_tl *t = &c->t[ti];
    const int k = t->k, bins = c->p.bins, bits = c->bits;
    int64_t touched = 0;
    spl_fill_tab(c, t);
    for (int64_t tile = 0; tile < t->ntiles; tile++) {
        const int64_t ty = tile / t->ntx, tx = tile % t->ntx;
        const int64_t origin = ty * t->ch * t->cols + tx * t->cw;
        const int64_t v0 = tile * k;
        int nt = 0;
        for (int p = 0; p < n; p++) {
            const spl_rec *rec = &ps[p]->rec[ti];
            spl_unpack12(rec->idx + (size_t)v0 / 2 * 3, (size_t)k, c->tidx);
            if (mode == M_RESTORE) {
                for (int j = 0; j < k; j++) {
                    const unsigned o = c->tidx[j];
                    if (!c->cnt[o]) c->touched[nt++] = (uint16_t)o, c->cnt[o] = 1;
                }
                continue;
            }
            const float *s = c->sv + p * bins;
            for (int j = 0; j < k; j++) {
                const unsigned o = c->tidx[j];
                const int64_t v = v0 + j;
                const unsigned code = bits == 8 ? rec->codes[v] : (rec->codes[v >> 2] >> ((v & 3) * 2)) & 3u;
                const float val = s[code];
                if (!c->cnt[o]) {
                    c->touched[nt++] = (uint16_t)o;
                    c->acc[o] = val;
                    c->cnt[o] = 1;
                } else {
                    c->acc[o] += val;
                    c->cnt[o]++;
                }
            }
        }
        touched += nt;
        for (int q = 0; q < nt; q++) {
            const unsigned o = c->touched[q];
            const int64_t flat = origin + c->tab[o];
            const float g = c->acc[o] / (float)c->cnt[o];
            c->cnt[o] = 0;
            switch (mode) {
            case M_CHECK:
                if (!isfinite(g)) *finite = false;
                break;
            case M_APPLY:
                if (saved) saved[(*pos)++] = x[flat];
                x[flat] = x[flat] - alpha * g;
                break;
            case M_DENSE:
                x[flat] = g;
                break;
            case M_RESTORE:
                x[flat] = saved[(*pos)++];
                break;
            }
        }
    }
    return touched;
}

/* Whether tensor ti gets applied: clipped values finite and no overflow. */
static bool tensor_ok(spl_ctx *c, int ti, const spl_upload *const *ps, int n, double thr) {
    double bound;
    if (!scaled_values(c, ti, ps, n, thr, &bound)) return false;
    if (bound < 1e38) return true;
    bool finite = true;
    tensor_pass(c, ti, ps, n, M_CHECK, 0.0f, NULL, NULL, NULL, &finite);
    return finite;
}

static int run(spl_ctx *c, ts_tensor *x, const spl_upload *const *peers, int n, const double *thr, float alpha,
               int mode, spl_undo *undo, spl_apply_stats *st, ts_err *e) {
    spl_apply_stats s0;
    if (!st) st = &s0;
    memset(st, 0, sizeof *st);
    int rc = spl_check_tensors(c, x, mode == M_DENSE ? "aggregate" : "parameter", e);
    if (rc) return rc;
    const spl_upload *ps[SPL_MAX_PEERS];
    if ((rc = order_peers(c, peers, n, ps, e))) return rc;
    if (!isfinite(alpha)) return ts_fail(e, TS_EINVAL, "codec: alpha is not finite");
    if (thr)
        for (int i = 0; i < c->n; i++)
            if (!isfinite(thr[i]) || thr[i] < 0.0)
                return ts_fail(e, TS_EINVAL, "codec: clip threshold of %s is not a finite non-negative number",
                               c->t[i].name);
    if (undo) {
        if (undo->c != c) return ts_fail(e, TS_EINVAL, "codec: undo object belongs to another context");
        if (undo->armed)
            return ts_fail(e, TS_ESTATE, "codec: the previous application has not been undone yet");
        if (n > undo->max_peers)
            return ts_fail(e, TS_EINVAL, "codec: undo holds room for %d peers, %d given", undo->max_peers, n);
        undo->used = 0;
    }
    for (int i = 0; i < c->n; i++) {
        if (mode == M_DENSE) memset(x[i].data, 0, x[i].nbytes);
        const double th = thr ? thr[i] : median_norm(i, ps, n);
        const bool ok = n > 0 && tensor_ok(c, i, ps, n, th);
        if (undo) undo->applied[i] = ok;
        if (!ok) {
            if (n > 0) st->tensors_skipped++;
            continue;
        }
        st->coords += tensor_pass(c, i, ps, n, mode, alpha, x[i].data, undo ? undo->vals : NULL,
                                  undo ? &undo->used : NULL, NULL);
        st->tensors_applied++;
    }
    if (undo) {
        undo->armed = true;
        undo->n = n;
        for (int p = 0; p < n; p++) {
            undo->peers[p] = ps[p];
            undo->gens[p] = ps[p]->gen;
        }
    }
    return TS_OK;
}

int spl_apply(spl_ctx *c, ts_tensor *theta, const spl_upload *const *peers, int n, const double *thr, float alpha,
              spl_undo *undo, spl_apply_stats *st, ts_err *e) {
    return run(c, theta, peers, n, thr, alpha, M_APPLY, undo, st, e);
}

int spl_outer_step(spl_ctx *c, ts_tensor *theta, const spl_upload *const *peers, int n, float alpha,
                   spl_apply_stats *st, ts_err *e) {
    return run(c, theta, peers, n, NULL, alpha, M_APPLY, NULL, st, e);
}

int spl_aggregate_dense(spl_ctx *c, const spl_upload *const *peers, int n, const double *thr, ts_tensor *g,
                        spl_apply_stats *st, ts_err *e) {
    return run(c, g, peers, n, thr, 1.0f, M_DENSE, NULL, st, e);
}

/* ----------------------------------------------------------------- undo */

int spl_undo_new(const spl_ctx *c, int max_peers, spl_undo **out, ts_err *e) {
    *out = NULL;
    if (max_peers < 1 || max_peers > SPL_MAX_PEERS)
        return ts_fail(e, TS_EINVAL, "codec: undo for %d peers (1..%d)", max_peers, SPL_MAX_PEERS);
    int64_t cap = 0;
    for (int i = 0; i < c->n; i++) {
        const spl_tl *t = &c->t[i];
        int64_t per = (int64_t)max_peers * t->k;
        if (per > t->tile_numel) per = t->tile_numel;
        cap += t->ntiles * per;
    }
    spl_undo *u = calloc(1, sizeof *u);
    if (!u) return ts_fail(e, TS_ENOMEM, "codec: out of memory");
    u->c = c;
    u->max_peers = max_peers;
    u->cap = cap;
    u->vals = malloc((size_t)(cap ? cap : 1) * sizeof *u->vals);
    u->applied = calloc((size_t)c->n, 1);
    if (!u->vals || !u->applied) {
        spl_undo_free(u);
        return ts_fail(e, TS_ENOMEM, "codec: out of memory for the undo buffer (%lld values)", (long long)cap);
    }
    *out = u;
    return TS_OK;
}

void spl_undo_free(spl_undo *u) {
    if (!u) return;
    free(u->vals);
    free(u->applied);
    free(u);
}

int spl_undo_restore(spl_ctx *c, ts_tensor *theta, spl_undo *u, ts_err *e) {
    if (!u || u->c != c) return ts_fail(e, TS_EINVAL, "codec: undo object belongs to another context");
    if (!u->armed) return ts_fail(e, TS_ESTATE, "codec: nothing to undo");
    int rc = spl_check_tensors(c, theta, "parameter", e);
    if (rc) return rc;
    for (int p = 0; p < u->n; p++)
        if (u->peers[p]->gen != u->gens[p] || !u->peers[p]->ok)
            return ts_fail(e, TS_ESTATE, "codec: a peer changed between apply and undo; cannot restore");
    int64_t pos = 0;
    for (int i = 0; i < c->n; i++)
        if (u->applied[i]) tensor_pass(c, i, u->peers, u->n, M_RESTORE, 0.0f, theta[i].data, u->vals, &pos, NULL);
    u->armed = false;
    if (pos != u->used)
        return ts_fail(e, TS_ESTATE, "codec: internal error: restored %lld values of %lld", (long long)pos,
                       (long long)u->used);
    return TS_OK;
}

/* -------------------------------------------------------------- overlap */

int spl_overlap(const spl_ctx *c, const spl_upload *a, const spl_upload *b, double *share, ts_err *e) {
    *share = 0.0;
    if (!a || !b || !a->ok || !b->ok || a->c != c || b->c != c)
        return ts_fail(e, TS_EINVAL, "codec: overlap needs two decoded uploads of this context");
    uint16_t ia[SPL_MAX_TILE], ib[SPL_MAX_TILE];
    double sum = 0.0;
    int64_t tiles = 0;
    for (int i = 0; i < c->n; i++) {
        const spl_tl *t = &c->t[i];
        if (t->k >= t->tile_numel) continue; /* dense tiles say nothing */
        const size_t tb = (size_t)t->k / 2 * 3;
        for (int64_t tile = 0; tile < t->ntiles; tile++) {
            spl_unpack12(a->rec[i].idx + (size_t)tile * tb, (size_t)t->k, ia);
            spl_unpack12(b->rec[i].idx + (size_t)tile * tb, (size_t)t->k, ib);
            int common = 0;
            for (int x = 0, y = 0; x < t->k && y < t->k;) {
                if (ia[x] == ib[y]) common++, x++, y++;
                else if (ia[x] < ib[y]) x++;
                else y++;
            }
            sum += (double)common / (double)t->k;
            tiles++;
        }
    }
    *share = tiles ? sum / (double)tiles : 0.0;
    return TS_OK;
}
