/* ctx.c - the codec context: every tensor's chunking, tiles, clamped k and
 * record size, computed once from the shapes and the parameters, plus the
 * buffers the hot paths use. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <zstd.h>

#include "internal.h"

void spl_params_default(spl_params *p) {
    p->k = 64;
    p->bins = 4;
    p->chunk = 64;
    p->beta = 0.95f;
    p->alpha = 1.0f;
    p->range = 6.0f;
}

int spl_params_check(const spl_params *p, ts_err *e) {
    if (p->k < 2 || p->k > SPL_MAX_TILE)
        return ts_fail(e, TS_EINVAL, "codec: k = %d is outside 2..%d", p->k, SPL_MAX_TILE);
    if (p->bins != 4 && p->bins != 256)
        return ts_fail(e, TS_EINVAL, "codec: bins = %d (must be 4 or 256)", p->bins);
    if (p->chunk < 1 || p->chunk > SPL_MAX_CHUNK)
        return ts_fail(e, TS_EINVAL, "codec: chunk = %d is outside 1..%d", p->chunk, SPL_MAX_CHUNK);
    if (!isfinite(p->beta) || !isfinite(p->alpha))
        return ts_fail(e, TS_EINVAL, "codec: beta and alpha must be finite");
    if (!isfinite(p->range) || !(p->range > 0.0f))
        return ts_fail(e, TS_EINVAL, "codec: range must be a positive number");
    return TS_OK;
}

int64_t spl_chunk_of(int64_t s, int target) {
    if (s <= 0 || target <= 0) return 0;
    for (int64_t d = target < s ? target : s; d > 1; d--)
        if (s % d == 0) return d;
    return 1;
}

bool spl_run_id_valid(const char *s) { return ts_run_id_valid(s); }

size_t spl_record_bytes(size_t name_len, int ndim, int bins, size_t idx_bytes, size_t code_bytes) {
    /* name_len u16, name, ndim u8, shape u32[ndim], chunk u8[ndim], k u16,
     * n_values u32, shift f32, lut f32[bins], index_bytes u32, code_bytes u32 */
    return 2 + name_len + 1 + 5 * (size_t)ndim + 2 + 4 + 4 + 4 * (size_t)bins + 4 + 4 + idx_bytes +
           code_bytes;
}

static int name_cmp(const void *a, const void *b, void *arg) {
    const spl_ctx *c = arg;
    return strcmp(c->t[*(const int *)a].name, c->t[*(const int *)b].name);
}

int spl_find_n(const spl_ctx *c, const char *name, size_t len) {
    int lo = 0, hi = c->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const spl_tl *t = &c->t[c->by_name[mid]];
        size_t m = t->name_len < len ? t->name_len : len;
        int r = memcmp(t->name, name, m);
        if (r == 0) r = t->name_len < len ? -1 : t->name_len > len ? 1 : 0;
        if (r == 0) return c->by_name[mid];
        if (r < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int spl_ctx_find(const spl_ctx *c, const char *name) { return spl_find_n(c, name, strlen(name)); }

int spl_ctx_new(const spl_params *p, const ts_tensor *ts, int n, spl_ctx **out, ts_err *e) {
    *out = NULL;
    int rc = spl_params_check(p, e);
    if (rc) return rc;
    if (n < 1 || n > (1 << 20)) return ts_fail(e, TS_EINVAL, "codec: %d tensors (must be 1..%d)", n, 1 << 20);
    spl_ctx *c = calloc(1, sizeof *c);
    if (!c) return ts_fail(e, TS_ENOMEM, "codec: out of memory");
    c->p = *p;
    c->bits = p->bins == 4 ? 2 : 8;
    c->n = n;
    c->max_abs = SPL_DEFAULT_MAX_ABS;
    c->zlevel = 3;
    c->t = calloc((size_t)n, sizeof *c->t);
    c->by_name = calloc((size_t)n, sizeof *c->by_name);
    if (!c->t || !c->by_name) {
        rc = ts_fail(e, TS_ENOMEM, "codec: out of memory");
        spl_ctx_free(c);
        return rc;
    }
    size_t body = 0;
    for (int i = 0; i < n; i++) {
        const ts_tensor *x = &ts[i];
        spl_tl *t = &c->t[i];
        size_t nl = strnlen(x->name, TS_MAX_NAME);
        if (nl < 1 || nl >= TS_MAX_NAME) {
            rc = ts_fail(e, TS_EINVAL, "codec: tensor %d has an empty or over-long name", i);
            spl_ctx_free(c);
            return rc;
        }
        memcpy(t->name, x->name, nl);
        t->name_len = nl;
        if (x->ndim != 1 && x->ndim != 2) {
            rc = ts_fail(e, TS_EUNSUPPORTED, "codec: tensor %s has %d dimensions (1 or 2 supported)",
                           t->name, x->ndim);
            spl_ctx_free(c);
            return rc;
        }
        t->ndim = x->ndim;
        for (int d = 0; d < x->ndim; d++) {
            if (x->shape[d] < 1 || x->shape[d] > (int64_t)UINT32_MAX) {
                rc = ts_fail(e, TS_EINVAL, "codec: tensor %s has dimension %lld (must be 1..2^32-1)",
                               t->name, (long long)x->shape[d]);
                spl_ctx_free(c);
                return rc;
            }
            t->shape[d] = x->shape[d];
        }
        t->rows = x->ndim == 2 ? x->shape[0] : 1;
        t->cols = x->ndim == 2 ? x->shape[1] : x->shape[0];
        if (t->rows > INT64_MAX / t->cols) {
            rc = ts_fail(e, TS_EINVAL, "codec: tensor %s is too large", t->name);
            spl_ctx_free(c);
            return rc;
        }
        t->ch = (int)spl_chunk_of(t->rows, p->chunk);
        t->cw = (int)spl_chunk_of(t->cols, p->chunk);
        t->nty = t->rows / t->ch;
        t->ntx = t->cols / t->cw;
        t->ntiles = t->nty * t->ntx;
        t->tile_numel = t->ch * t->cw;
        t->k = p->k < t->tile_numel ? p->k : t->tile_numel;
        t->k &= ~1;
        if (t->k == 0) {
            rc = ts_fail(e, TS_EUNSUPPORTED,
                           "codec: tensor %s %s: its tiles hold one value each (no divisor of its "
                           "dimensions in 2..%d), so no even k fits; pad the dimension",
                           t->name, x->ndim == 2 ? "(2-D)" : "(1-D)", p->chunk);
            spl_ctx_free(c);
            return rc;
        }
        t->nvals = t->ntiles * t->k;
        t->idx_bytes = (size_t)t->nvals / 2 * 3;
        t->code_bytes = spl_code_bytes(t->nvals, c->bits);
        if (t->nvals > (int64_t)UINT32_MAX || t->idx_bytes > UINT32_MAX) {
            rc = ts_fail(e, TS_EINVAL, "codec: tensor %s carries too many values for the wire format",
                           t->name);
            spl_ctx_free(c);
            return rc;
        }
        t->val_off = c->nvals;
        c->nvals += t->nvals;
        c->numel += t->rows * t->cols;
        t->rec_bytes = spl_record_bytes(nl, t->ndim, p->bins, t->idx_bytes, t->code_bytes);
        body += t->rec_bytes;
        c->by_name[i] = i;
    }
    qsort_r(c->by_name, (size_t)n, sizeof *c->by_name, name_cmp, c);
    for (int i = 1; i < n; i++)
        if (!strcmp(c->t[c->by_name[i]].name, c->t[c->by_name[i - 1]].name)) {
            int rc2 = ts_fail(e, TS_EINVAL, "codec: tensor %s appears twice", c->t[c->by_name[i]].name);
            spl_ctx_free(c);
            return rc2;
        }
    c->body_bytes = body;
    size_t bound = ZSTD_compressBound(body);
    if (ZSTD_isError(bound) || bound > SIZE_MAX / 2) {
        rc = ts_fail(e, TS_ETOOBIG, "codec: the model is too large for one upload");
        spl_ctx_free(c);
        return rc;
    }
    c->wire_max = SPL_HEADER_BYTES + bound + TS_SIG_BYTES;
    *out = c;
    return TS_OK;
}

/* Frees the device scratch of both paths (each path adds its buffers). */
static void free_device_scratch(spl_ctx *c) {
    if (!c->be) return;
    /* device scratch: compression */
    if (c->cd_scratch) c->be->free(c->be, c->cd_scratch);
    c->cd_scratch = NULL;
    free(c->cd_tab);
    c->cd_tab = NULL;
    /* device scratch: aggregation */
    if (c->agg_dstage) c->be->free(c->be, c->agg_dstage);
    if (c->agg_dsv) c->be->free(c->be, c->agg_dsv);
    if (c->agg_dstats) c->be->free(c->be, c->agg_dstats);
    free(c->agg_hstage);
    c->agg_dstage = NULL, c->agg_dsv = NULL, c->agg_dstats = NULL, c->agg_hstage = NULL;
    c->agg_ready = false;
}

int spl_ctx_set_device(spl_ctx *c, const struct kn_backend *be, ts_err *e) {
    if (be && !be->is_gpu) be = NULL;
    if (be == c->be) return TS_OK;
    free_device_scratch(c);
    c->be = be;
    (void)e;
    return TS_OK;
}

void spl_ctx_free(spl_ctx *c) {
    if (!c) return;
    free_device_scratch(c);
    free(c->t);
    free(c->by_name);
    free(c->idx);
    free(c->vals);
    free(c->codes);
    free(c->luts);
    free(c->shifts);
    free(c->cand);
    free(c->thr);
    free(c->ncand);
    free(c->gmax);
    free(c->body);
    free(c->wire);
    ZSTD_freeCCtx(c->zc);
    free(c);
}

int spl_ctx_count(const spl_ctx *c) { return c->n; }
const spl_params *spl_ctx_params(const spl_ctx *c) { return &c->p; }
int64_t spl_ctx_values(const spl_ctx *c) { return c->nvals; }
int64_t spl_ctx_numel(const spl_ctx *c) { return c->numel; }
size_t spl_ctx_body_bytes(const spl_ctx *c) { return c->body_bytes; }
size_t spl_ctx_wire_max(const spl_ctx *c) { return c->wire_max; }
void spl_ctx_set_max_abs(spl_ctx *c, float max_abs) { c->max_abs = max_abs; }
void spl_ctx_set_zstd_level(spl_ctx *c, int level) { c->zlevel = level; }

int spl_ctx_tensor(const spl_ctx *c, int i, spl_tinfo *o) {
    if (i < 0 || i >= c->n) return TS_EINVAL;
    const spl_tl *t = &c->t[i];
    o->name = t->name;
    o->ndim = t->ndim;
    o->shape[0] = t->shape[0];
    o->shape[1] = t->ndim == 2 ? t->shape[1] : 0;
    o->chunk[0] = t->ch;
    o->chunk[1] = t->cw;
    o->tiles_y = t->nty;
    o->tiles_x = t->ntx;
    o->tiles = t->ntiles;
    o->tile_numel = t->tile_numel;
    o->k = t->k;
    o->values = t->nvals;
    o->record_bytes = t->rec_bytes;
    return TS_OK;
}

int spl_check_tensors(const spl_ctx *c, const ts_tensor *ts, const char *what, ts_err *e) {
    if (!ts) return ts_fail(e, TS_EINVAL, "codec: no %s tensors given", what);
    for (int i = 0; i < c->n; i++) {
        const spl_tl *t = &c->t[i];
        const ts_tensor *x = &ts[i];
        if (strcmp(x->name, t->name))
            return ts_fail(e, TS_EINVAL, "codec: %s tensor %d is '%s', expected '%s'", what, i, x->name,
                           t->name);
        if (x->dtype != TS_F32)
            return ts_fail(e, TS_EINVAL, "codec: %s tensor %s is %s, expected F32", what, t->name,
                           ts_dtype_name(x->dtype));
        bool same = x->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = x->shape[d] == t->shape[d];
        if (!same) {
            char a[96], b[96];
            ts_shape_str(a, sizeof a, x->ndim, x->shape);
            ts_shape_str(b, sizeof b, t->ndim, t->shape);
            return ts_fail(e, TS_EINVAL, "codec: %s tensor %s has shape %s, expected %s", what, t->name, a, b);
        }
        if (!x->data || x->nbytes != (size_t)(t->rows * t->cols) * sizeof(float))
            return ts_fail(e, TS_EINVAL, "codec: %s tensor %s has no data or the wrong size", what, t->name);
    }
    return TS_OK;
}

void spl_fill_tab(spl_ctx *c, const spl_tl *t) {
    for (int o = 0; o < t->tile_numel; o++) c->tab[o] = (int64_t)(o / t->cw) * t->cols + o % t->cw;
}

int spl_ef_zero(const spl_ctx *c, ts_tensor *ef, ts_err *e) {
    int rc = spl_check_tensors(c, ef, "error-feedback", e);
    if (rc) return rc;
    for (int i = 0; i < c->n; i++) {
        if (c->be) { /* device memory (spl_ctx_set_device) */
            if (c->be->fill(c->be, ef[i].data, 0.0f, ef[i].nbytes / sizeof(float)))
                return ts_fail(e, TS_EIO, "codec: zeroing the error feedback on %s failed", c->be->name);
        } else {
            memset(ef[i].data, 0, ef[i].nbytes);
        }
    }
    return TS_OK;
}

/* ----------------------------------------------------------- rejections */

static const struct {
    const char *name, *desc;
} reasons[SPL_R_COUNT] = {
    [SPL_R_NONE] = {"none", "accepted"},
    [SPL_R_TRUNCATED] = {"truncated", "shorter than its declared sizes"},
    [SPL_R_OVERSIZED] = {"oversized", "larger than the model allows"},
    [SPL_R_TRAILING] = {"trailing_bytes", "bytes beyond its declared sizes"},
    [SPL_R_MAGIC] = {"bad_magic", "not a Tessera gradient (wrong magic)"},
    [SPL_R_VERSION] = {"bad_version", "unsupported wire version or signature scheme"},
    [SPL_R_HEADER] = {"bad_header", "malformed header field"},
    [SPL_R_SIGNATURE] = {"bad_signature", "signature does not verify"},
    [SPL_R_SIGNER] = {"wrong_signer", "signed by another hotkey than expected"},
    [SPL_R_RUN] = {"wrong_run", "made for another run"},
    [SPL_R_WINDOW] = {"wrong_window", "made for another window"},
    [SPL_R_UID] = {"wrong_uid", "made for another uid"},
    [SPL_R_CONFIG] = {"wrong_config", "made for another model config"},
    [SPL_R_PARAMS] = {"wrong_params", "made with other codec parameters"},
    [SPL_R_MISSING_TENSOR] = {"missing_tensor", "a model tensor is missing"},
    [SPL_R_UNKNOWN_TENSOR] = {"unknown_tensor", "a tensor the model does not have"},
    [SPL_R_DUP_TENSOR] = {"duplicate_tensor", "a tensor appears twice"},
    [SPL_R_BODY_SIZE] = {"bad_body_size", "body size differs from what the model gives"},
    [SPL_R_ZSTD] = {"bad_zstd", "body is not a valid zstd frame"},
    [SPL_R_ZSTD_BOMB] = {"zstd_bomb", "body decompresses past its expected size"},
    [SPL_R_RECORD] = {"bad_record", "malformed tensor record"},
    [SPL_R_SHAPE] = {"wrong_shape", "tensor shape differs from the model's"},
    [SPL_R_CHUNK] = {"wrong_chunk", "chunk sizes differ from the rule"},
    [SPL_R_K] = {"wrong_k", "k differs from the clamped k"},
    [SPL_R_SECTION_SIZE] = {"bad_section_size", "a section's size is wrong"},
    [SPL_R_NONFINITE] = {"non_finite", "shift or LUT not finite"},
    [SPL_R_ABSURD] = {"absurd_scale", "shift or LUT beyond the plausible bound"},
    [SPL_R_INDEX_RANGE] = {"index_out_of_range", "an index past the end of its tile"},
    [SPL_R_INDEX_DUP] = {"duplicate_index", "an index repeated within a tile"},
    [SPL_R_INDEX_ORDER] = {"unsorted_indices", "indices within a tile not ascending"},
    [SPL_R_PADDING] = {"bad_padding", "non-zero padding bits"},
};

const char *spl_reject_name(spl_reject r) {
    return (r >= 0 && r < SPL_R_COUNT && reasons[r].name) ? reasons[r].name : "unknown";
}
const char *spl_reject_str(spl_reject r) {
    return (r >= 0 && r < SPL_R_COUNT && reasons[r].desc) ? reasons[r].desc : "unknown reason";
}

int spl_reject_code(spl_reject r) {
    switch (r) {
    case SPL_R_NONE: return TS_OK;
    case SPL_R_OVERSIZED:
    case SPL_R_ZSTD_BOMB: return TS_ETOOBIG;
    case SPL_R_SIGNATURE:
    case SPL_R_SIGNER: return TS_ESIG;
    case SPL_R_RUN:
    case SPL_R_WINDOW:
    case SPL_R_UID:
    case SPL_R_CONFIG:
    case SPL_R_PARAMS: return TS_EDENIED;
    default: return TS_EFORMAT;
    }
}

int spl_rej(spl_reject *why, ts_err *e, spl_reject r, const char *fmt, ...) {
    if (why) *why = r;
    char buf[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ts_fail(e, spl_reject_code(r), "upload rejected (%s): %s", spl_reject_name(r), buf);
}

int spl_check_scheme(unsigned scheme, const char *what, spl_reject *why, ts_err *e) {
    if (scheme == TS_SIG_SCHEME_SR25519) return TS_OK;
    if (scheme == 0)
        return spl_rej(why, e, SPL_R_VERSION,
                       "%ssignature scheme 0 is Ed25519, from an earlier Tessera, no longer accepted (this node "
                       "reads scheme %d, %s, only)",
                       what, TS_SIG_SCHEME_SR25519, TS_SIG_SCHEME_NAME);
    return spl_rej(why, e, SPL_R_VERSION, "%ssignature scheme %u is not %s (scheme %d), the only one this node reads",
                   what, scheme, TS_SIG_SCHEME_NAME, TS_SIG_SCHEME_SR25519);
}
