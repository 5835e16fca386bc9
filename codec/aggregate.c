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
 * otherwise is a separate checking pass run.
 *
 * With a GPU context (spl_ctx_set_device) theta and g are device memory:
 * the norms, thresholds, the sv table and the decision to run the checking
 * pass stay here, and the tile pass runs on the device (codec/cuda_aggregate.cu,
 * the backend's agg_tiles op) over the peers' packed offsets and codes,
 * staged a chunk of tiles at a time, with the same fp32 operations in the
 * same order, so the parameters, the dense aggregate and the stats are
 * bit-identical to this file's.  An undo used there keeps its saved values
 * on the device. */
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
    /* an application on a device: its saved values, at a fixed place per
     * tile (tensor base + tile * min(max_peers * k, tile_numel)) */
    const kn_backend *dbe; /* owner of dvals */
    float *dvals;          /* [cap] on dbe */
    const kn_backend *armed_be; /* where the armed application ran (NULL: the host) */
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

static int run_dev(spl_ctx *c, ts_tensor *x, const spl_upload *const *ps, int n, const double *thr, float alpha,
                   int mode, spl_undo *undo, spl_apply_stats *st, ts_err *e);

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
    if (c->be) return run_dev(c, x, ps, n, thr, alpha, mode, undo, st, e);
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
        undo->armed_be = NULL;
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
    if (u->dvals) u->dbe->free(u->dbe, u->dvals);
    free(u->vals);
    free(u->applied);
    free(u);
}

/* ------------------------------------------------------------------ GPU */

#define AGG_STAGE_MAX ((size_t)64 << 20) /* bytes of each staging buffer, at most */

static int dev_fail(const spl_ctx *c, int rc, const char *what, ts_err *e) {
    return ts_fail(e, rc == TS_EINVAL || rc == TS_EUNSUPPORTED ? rc : TS_EIO, "codec: %s on %s failed (%s)", what,
                   c->be->name, ts_strerror(rc));
}

/* Bytes of one peer's staged codes for a chunk of ntl tiles starting at any
 * tile (2-bit codes may start mid-byte: up to 3 values skipped). */
static int64_t dev_code_stride(const spl_ctx *c, const spl_tl *t, int64_t ntl) {
    return ((c->bits == 2 ? 3 : 0) + ntl * t->k) * c->bits / 8 + 1;
}

/* Device scratch, once per context: the staging of the peers' packed
 * offsets and codes (room for every tensor of SPL_MAX_PEERS peers at once,
 * capped at AGG_STAGE_MAX: a larger tensor is staged a chunk of tiles at a
 * time), the sv table and the two counters. */
static int dev_scratch(spl_ctx *c, ts_err *e) {
    if (c->agg_ready) return TS_OK;
    const kn_backend *be = c->be;
    if (!be->agg_tiles)
        return ts_fail(e, TS_EUNSUPPORTED, "codec: backend %s has no aggregation kernels", be->name);
    size_t most = 0, tile_most = 0;
    for (int i = 0; i < c->n; i++) {
        const spl_tl *t = &c->t[i];
        const size_t b = t->idx_bytes + t->code_bytes + 8;
        const size_t tb = (size_t)(t->k / 2 * 3 + dev_code_stride(c, t, 1)) + 3;
        if (b > most) most = b;
        if (tb > tile_most) tile_most = tb;
    }
    size_t bytes = most <= AGG_STAGE_MAX / SPL_MAX_PEERS ? most * SPL_MAX_PEERS : AGG_STAGE_MAX;
    if (c->agg_stage_cap && c->agg_stage_cap < bytes) bytes = c->agg_stage_cap;
    if (bytes < tile_most * SPL_MAX_PEERS) bytes = tile_most * SPL_MAX_PEERS; /* one tile of every peer */
    c->agg_stage_bytes = bytes;
    c->agg_hstage = malloc(bytes);
    c->agg_dstage = be->alloc(be, bytes);
    c->agg_dsv = be->alloc(be, (size_t)SPL_MAX_PEERS * 256 * sizeof(float));
    c->agg_dstats = be->alloc(be, 2 * sizeof(uint64_t));
    if (!c->agg_hstage || !c->agg_dstage || !c->agg_dsv || !c->agg_dstats) {
        /* spl_ctx_set_device(c, NULL) would drop the compression scratch too:
         * free ours alone */
        if (c->agg_dstage) be->free(be, c->agg_dstage);
        if (c->agg_dsv) be->free(be, c->agg_dsv);
        if (c->agg_dstats) be->free(be, c->agg_dstats);
        free(c->agg_hstage);
        c->agg_dstage = NULL, c->agg_dsv = NULL, c->agg_dstats = NULL, c->agg_hstage = NULL;
        return ts_fail(e, TS_ENOMEM, "codec: out of memory for the aggregation scratch on %s (%zu bytes)",
                       be->name, bytes);
    }
    c->agg_ready = true;
    return TS_OK;
}

/* Tiles per staged chunk for n peers (0 when not even one fits). */
static int64_t dev_chunk_tiles(const spl_ctx *c, const spl_tl *t, int n, bool codes) {
    const int64_t per_peer = (int64_t)(c->agg_stage_bytes / (size_t)n);
    const int64_t tb = t->k / 2 * 3, cb = codes ? (t->k * c->bits + 7) / 8 : 0;
    int64_t ntl = (per_peer - 3) / (tb + cb);
    if (ntl > t->ntiles) ntl = t->ntiles;
    while (ntl > 0 && ntl * tb + (codes ? dev_code_stride(c, t, ntl) : 0) > per_peer) ntl--;
    return ntl > 0 ? ntl : 0;
}

typedef struct dev_chunk {
    int64_t ntl, istride, cstride;
} dev_chunk;

/* Stages tiles tile0 .. tile0 + m - 1 of the n peers: offsets at
 * [p * istride], codes at [n * istride + p * cstride]; returns vskip. */
static int dev_stage(spl_ctx *c, int ti, const spl_upload *const *ps, int n, const dev_chunk *ck, int64_t tile0,
                     int64_t m, bool codes, int *vskip, ts_err *e) {
    const spl_tl *t = &c->t[ti];
    const int64_t tb = t->k / 2 * 3, v0 = tile0 * t->k;
    const int64_t cb0 = c->bits == 8 ? v0 : v0 >> 2;
    *vskip = c->bits == 8 ? 0 : (int)(v0 & 3);
    const int64_t clen = ((*vskip + m * t->k) * c->bits + 7) / 8;
    uint8_t *h = c->agg_hstage;
    for (int p = 0; p < n; p++) {
        const spl_rec *rec = &ps[p]->rec[ti];
        memcpy(h + (size_t)(p * ck->istride), rec->idx + tile0 * tb, (size_t)(m * tb));
        if (codes) memcpy(h + (size_t)(n * ck->istride + p * ck->cstride), rec->codes + cb0, (size_t)clen);
    }
    const size_t bytes = (size_t)(n * ck->istride + (codes ? n * ck->cstride : 0));
    int rc = c->be->upload(c->be, c->agg_dstage, h, bytes);
    return rc ? dev_fail(c, rc, "staging the peers' offsets and codes", e) : TS_OK;
}

/* One pass over tensor ti on the device (the sv table already there).
 * *staged: in, the whole tensor is already staged with codes (skip it);
 * out, it is after this pass. */
static int dev_pass(spl_ctx *c, int ti, const spl_upload *const *ps, int n, int mode, float alpha, float *x,
                    float *saved, int per, bool *staged, ts_err *e) {
    const spl_tl *t = &c->t[ti];
    const bool codes = mode != KN_AGG_RESTORE;
    dev_chunk ck;
    ck.ntl = dev_chunk_tiles(c, t, n, codes);
    if (ck.ntl < 1)
        return ts_fail(e, TS_EINVAL, "codec: internal error: the staging of %zu bytes is too small for %s",
                       c->agg_stage_bytes, t->name);
    ck.istride = ck.ntl * (t->k / 2 * 3);
    ck.cstride = codes ? dev_code_stride(c, t, ck.ntl) : 0;
    const bool whole = ck.ntl >= t->ntiles;
    const uint8_t *didx = c->agg_dstage, *dcodes = c->agg_dstage + n * ck.istride;
    for (int64_t tile0 = 0; tile0 < t->ntiles; tile0 += ck.ntl) {
        const int64_t m = t->ntiles - tile0 < ck.ntl ? t->ntiles - tile0 : ck.ntl;
        int vskip = 0, rc;
        if (!(whole && *staged)) {
            if ((rc = dev_stage(c, ti, ps, n, &ck, tile0, m, codes, &vskip, e))) return rc;
        }
        rc = c->be->agg_tiles(c->be, mode, x, saved, didx, codes ? dcodes : NULL, codes ? c->agg_dsv : NULL, n,
                              ck.istride, ck.cstride, vskip, tile0, m, t->cols, t->ch, t->cw, t->ntx, t->k,
                              c->p.bins, per, alpha, c->agg_dstats);
        if (rc) return dev_fail(c, rc, "the aggregation kernel", e);
    }
    *staged = whole && codes;
    return TS_OK;
}

/* Per-tile room of an undo for tensor t. */
static int undo_per(const spl_undo *u, const spl_tl *t) {
    const int64_t per = (int64_t)u->max_peers * t->k;
    return (int)(per < t->tile_numel ? per : t->tile_numel);
}

static int run_dev(spl_ctx *c, ts_tensor *x, const spl_upload *const *ps, int n, const double *thr, float alpha,
                   int mode, spl_undo *undo, spl_apply_stats *st, ts_err *e) {
    const kn_backend *be = c->be;
    int rc = dev_scratch(c, e);
    if (rc) return rc;
    if (undo && undo->dbe != be) {
        if (undo->dvals) undo->dbe->free(undo->dbe, undo->dvals);
        undo->dbe = NULL;
        undo->dvals = be->alloc(be, (size_t)(undo->cap ? undo->cap : 1) * sizeof(float));
        if (!undo->dvals)
            return ts_fail(e, TS_ENOMEM, "codec: out of memory on %s for the undo (%lld values)", be->name,
                           (long long)undo->cap);
        undo->dbe = be;
    }
    const uint64_t zero[2] = {0, 0};
    if ((rc = be->upload(be, c->agg_dstats, zero, sizeof zero))) return dev_fail(c, rc, "upload", e);
    const int kmode = mode == M_DENSE ? KN_AGG_DENSE : KN_AGG_APPLY;
    int64_t base = 0; /* the undo's place for tensor i */
    for (int i = 0; i < c->n; i++) {
        const spl_tl *t = &c->t[i];
        const int per = undo ? undo_per(undo, t) : 0;
        float *saved = undo ? undo->dvals + base : NULL;
        if (undo) base += t->ntiles * per;
        if (mode == M_DENSE && (rc = be->fill(be, x[i].data, 0.0f, (size_t)(t->rows * t->cols))))
            return dev_fail(c, rc, "zeroing the aggregate", e);
        if (undo) undo->applied[i] = 0;
        if (n == 0) continue;
        const double th = thr ? thr[i] : median_norm(i, ps, n);
        double bound;
        bool ok = scaled_values(c, i, ps, n, th, &bound), staged = false;
        if (ok && (rc = be->upload(be, c->agg_dsv, c->sv, (size_t)n * (size_t)c->p.bins * sizeof(float))))
            return dev_fail(c, rc, "upload", e);
        if (ok && !(bound < 1e38)) {
            /* the checking pass, as tensor_ok: whole tensor before any change */
            if ((rc = be->upload(be, c->agg_dstats + 1, zero, sizeof(uint64_t)))) return dev_fail(c, rc, "upload", e);
            if ((rc = dev_pass(c, i, ps, n, KN_AGG_CHECK, 0.0f, NULL, NULL, 0, &staged, e))) return rc;
            uint64_t flag = 0;
            if ((rc = be->download(be, &flag, c->agg_dstats + 1, sizeof flag))) return dev_fail(c, rc, "download", e);
            ok = flag == 0;
        }
        if (!ok) {
            st->tensors_skipped++;
            continue;
        }
        if ((rc = dev_pass(c, i, ps, n, kmode, alpha, x[i].data, saved, per, &staged, e))) return rc;
        if (undo) undo->applied[i] = 1;
        st->tensors_applied++;
    }
    uint64_t got[2];
    if ((rc = be->download(be, got, c->agg_dstats, sizeof got))) return dev_fail(c, rc, "download", e);
    st->coords = (int64_t)got[0];
    if (undo) {
        undo->used = st->coords;
        undo->armed = true;
        undo->armed_be = be;
        undo->n = n;
        for (int p = 0; p < n; p++) {
            undo->peers[p] = ps[p];
            undo->gens[p] = ps[p]->gen;
        }
    }
    return TS_OK;
}

static int restore_dev(spl_ctx *c, ts_tensor *theta, spl_undo *u, ts_err *e) {
    const kn_backend *be = c->be;
    int rc = dev_scratch(c, e);
    if (rc) return rc;
    if (u->dbe != be || !u->dvals) return ts_fail(e, TS_ESTATE, "codec: the undo holds no values on %s", be->name);
    const uint64_t zero[2] = {0, 0};
    if ((rc = be->upload(be, c->agg_dstats, zero, sizeof zero))) return dev_fail(c, rc, "upload", e);
    int64_t base = 0;
    for (int i = 0; i < c->n; i++) {
        const spl_tl *t = &c->t[i];
        const int per = undo_per(u, t);
        float *saved = u->dvals + base;
        base += t->ntiles * per;
        if (!u->applied[i] || u->n == 0) continue;
        bool staged = false;
        if ((rc = dev_pass(c, i, u->peers, u->n, KN_AGG_RESTORE, 0.0f, theta[i].data, saved, per, &staged, e)))
            return rc;
    }
    uint64_t got[2];
    if ((rc = be->download(be, got, c->agg_dstats, sizeof got))) return dev_fail(c, rc, "download", e);
    u->armed = false;
    if ((int64_t)got[0] != u->used)
        return ts_fail(e, TS_ESTATE, "codec: internal error: restored %lld values of %lld", (long long)got[0],
                       (long long)u->used);
    return TS_OK;
}

int spl_undo_restore(spl_ctx *c, ts_tensor *theta, spl_undo *u, ts_err *e) {
    if (!u || u->c != c) return ts_fail(e, TS_EINVAL, "codec: undo object belongs to another context");
    if (!u->armed) return ts_fail(e, TS_ESTATE, "codec: nothing to undo");
    int rc = spl_check_tensors(c, theta, "parameter", e);
    if (rc) return rc;
    for (int p = 0; p < u->n; p++)
        if (u->peers[p]->gen != u->gens[p] || !u->peers[p]->ok)
            return ts_fail(e, TS_ESTATE, "codec: a peer changed between apply and undo; cannot restore");
    if (u->armed_be != c->be)
        return ts_fail(e, TS_ESTATE, "codec: the application ran on %s, the context now computes on %s",
                       u->armed_be ? u->armed_be->name : "the host", c->be ? c->be->name : "the host");
    if (c->be) return restore_dev(c, theta, u, e);
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
