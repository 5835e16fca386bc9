/* compress.c - error feedback, per-tile top-k, quantization and the signed
 * wire object (PROTOCOL.md section 7, docs/FORMATS.md 7.1-7.3).
 *
 * The work is split so that a failure changes nothing:
 *   1. select: per tile, the k largest |beta*ef + alpha*delta| (computed on
 *      the fly, not stored), ties to the lower offset; kept offsets ascending;
 *   2. quantize each tensor's kept values;
 *   3. serialize the body, zstd it, header, BLAKE2b, sr25519 (ts_sign);
 *   4. only then write ef = beta*ef + alpha*delta and subtract what was sent.
 * With a GPU backend (spl_ctx_set_device) steps 1, 2 and 4 run on the device
 * (codec/cuda_compress.cu) and only the compact result comes to the host:
 * the same wire bytes and the same ef, bit for bit.
 *
 * Selection reads a band of tiles (chunk rows of the tensor) row by row, so
 * memory is read sequentially, first for a safe threshold per tile, then to
 * collect the few values that reach it (see select_tensor).  Magnitudes are compared as the bit patterns of |v|
 * (monotone for non-negative floats), and candidates are (|v| bits << 32 |
 * 0xffff - offset), so the order is total and
 * the lower offset wins a tie. */
#include <math.h>
#include <stdlib.h>

#include <zstd.h>

#include "internal.h"

static int alloc_scratch(spl_ctx *c, ts_err *e) {
    if (c->have_scratch) return TS_OK;
    size_t cand = 1, band = 1, groups = 1;
    for (int i = 0; i < c->n; i++) {
        const spl_tl *t = &c->t[i];
        size_t h = (size_t)t->ntx * (size_t)(2 * t->k + SPL_MAX_CHUNK);
        if (h > cand) cand = h;
        size_t g = (size_t)t->ntx * (size_t)t->ch * (size_t)((t->cw + 3) / 4);
        if (g > groups) groups = g;
        if ((size_t)c->t[i].ntx > band) band = (size_t)c->t[i].ntx;
    }
    size_t nv = (size_t)c->nvals;
    c->idx = malloc(nv * sizeof *c->idx);
    c->vals = malloc(nv * sizeof *c->vals);
    c->codes = malloc(nv);
    c->luts = malloc((size_t)c->n * (size_t)c->p.bins * sizeof(float));
    c->shifts = malloc((size_t)c->n * sizeof(float));
    c->cand = malloc(cand * sizeof *c->cand);
    c->thr = malloc(band * sizeof *c->thr);
    c->gmax = malloc(groups * sizeof *c->gmax);
    c->ncand = malloc(band * sizeof *c->ncand);
    c->body = malloc(c->body_bytes);
    c->wire = malloc(c->wire_max);
    c->zc = ZSTD_createCCtx();
    if (!c->idx || !c->vals || !c->codes || !c->luts || !c->shifts || !c->cand || !c->thr || !c->ncand || !c->gmax || !c->body || !c->wire ||
        !c->zc) {
        free(c->idx), free(c->vals), free(c->codes), free(c->luts), free(c->shifts);
        free(c->cand), free(c->thr), free(c->ncand), free(c->gmax), free(c->body), free(c->wire);
        ZSTD_freeCCtx(c->zc);
        c->idx = NULL, c->vals = NULL, c->codes = NULL, c->luts = NULL, c->shifts = NULL;
        c->cand = NULL, c->thr = NULL, c->ncand = NULL, c->gmax = NULL, c->body = NULL, c->wire = NULL, c->zc = NULL;
        return ts_fail(e, TS_ENOMEM, "codec: out of memory for the compression buffers");
    }
    c->have_scratch = true;
    return TS_OK;
}

/* Puts the k largest of a[0..n) (distinct values) in a[0..k), any order. */
static void top_k(uint64_t *a, int n, int k) {
    int lo = 0, hi = n - 1;
    const int want = k - 1;
    while (lo < hi) {
        uint64_t x = a[lo], y = a[(lo + hi) / 2], z = a[hi];
        uint64_t pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                uint64_t t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
}

/* Reduces a candidate buffer to its k best; returns the new threshold (the
 * smallest kept magnitude: a later value must beat it strictly). */
static int32_t reduce(uint64_t *b, int n, int k) {
    top_k(b, n, k);
    uint32_t m = UINT32_MAX;
    for (int j = 0; j < k; j++)
        if ((uint32_t)(b[j] >> 32) < m) m = (uint32_t)(b[j] >> 32);
    return (int32_t)m;
}

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
static inline v4f ld4(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The k-th largest of a[0..n) (reorders a). */
static uint32_t kth_largest(uint32_t *a, int n, int k) {
    int lo = 0, hi = n - 1;
    const int want = k - 1;
    while (lo < hi) {
        uint32_t x = a[lo], y = a[(lo + hi) / 2], z = a[hi];
        uint32_t pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                uint32_t t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    return a[want];
}

/* Selects the kept offsets and values of one tensor into c->idx / c->vals.
 * Returns the flat position of a non-finite kept value, or -1.  (A tile
 * with any non-finite value keeps at least one: such a value outranks every
 * finite one.)
 *
 * Two passes over each band of tiles (chunk rows of the tensor, read row by
 * row so memory is read sequentially):
 *   1. the largest magnitude of every group of up to G consecutive values
 *      of a tile row (G = 16, or 8 or 4 when the tile is small for k); the
 *      k-th largest of a tile's group maxima, M, is a lower bound of its
 *      k-th largest value (k distinct values reach M);
 *   2. every value with magnitude >= M is a candidate (for normal-like data
 *      barely more than k per tile); a candidate buffer that could overflow
 *      (many ties) is cut to its k best by quickselect, raising the bar.
 * Both passes test 16 values at a time with vector instructions. */
static int64_t select_tensor(spl_ctx *c, const spl_tl *t, const float *d, const float *ef) {
    const float beta = c->p.beta, alpha = c->p.alpha;
    const int k = t->k, cw = t->cw, ch = t->ch, cap = 2 * k + SPL_MAX_CHUNK;
    /* groups of G = 16, 8 or 4 values: the largest G that gives 4k groups per tile */
    int G = 16;
    while (G > 4 && ch * ((cw + G - 1) / G) < 4 * k) G /= 2;
    const int gpr = (cw + G - 1) / G, ngroups = ch * gpr;
    const int64_t cols = t->cols, ntx = t->ntx;
    uint16_t *out_idx = c->idx + t->val_off;
    float *out_val = c->vals + t->val_off;
    const int words = (t->tile_numel + 63) / 64;
    int32_t *thr = c->thr;
    int *cnt = c->ncand;
    const v4f vb = {beta, beta, beta, beta}, va = {alpha, alpha, alpha, alpha};
    const v4i mask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
    spl_fill_tab(c, t);
    for (int64_t ty = 0; ty < t->nty; ty++) {
        /* 1. group maxima -> a safe threshold per tile */
        if (ngroups >= k) {
            for (int r = 0; r < ch; r++) {
                const int64_t row = (ty * ch + r) * cols;
                for (int64_t tx = 0; tx < ntx; tx++) {
                    const float *dp = d + row + tx * cw, *ep = ef + row + tx * cw;
                    uint32_t *g = c->gmax + tx * ngroups + r * gpr;
                    for (int j = 0; j < gpr; j++) {
                        const int c0 = G * j;
                        uint32_t m = 0;
                        if (c0 + G <= cw) {
                            union {
                                v4i v;
                                uint32_t u[4];
                            } x;
                            x.v = (v4i)(vb * ld4(ep + c0) + va * ld4(dp + c0)) & mask;
                            for (int q = 4; q < G; q += 4) {
                                const v4i kq = (v4i)(vb * ld4(ep + c0 + q) + va * ld4(dp + c0 + q)) & mask;
                                const v4i gt = kq > x.v;
                                x.v = (kq & gt) | (x.v & ~gt);
                            }
                            m = x.u[0];
                            for (int q = 1; q < 4; q++) m = x.u[q] > m ? x.u[q] : m;
                        } else {
                            for (int q = c0; q < cw; q++) {
                                const uint32_t key = spl_f2u(beta * ep[q] + alpha * dp[q]) & 0x7fffffffu;
                                m = key > m ? key : m;
                            }
                        }
                        g[j] = m;
                    }
                }
            }
            for (int64_t tx = 0; tx < ntx; tx++)
                thr[tx] = (int32_t)kth_largest(c->gmax + tx * ngroups, ngroups, k) - 1;
        } else {
            for (int64_t tx = 0; tx < ntx; tx++) thr[tx] = -1;
        }
        for (int64_t tx = 0; tx < ntx; tx++) cnt[tx] = 0;
        /* 2. candidates */
        for (int r = 0; r < ch; r++) {
            const int64_t row = (ty * ch + r) * cols;
            const unsigned o0 = (unsigned)(r * cw);
            for (int64_t tx = 0; tx < ntx; tx++) {
                uint64_t *b = c->cand + tx * cap;
                int nb = cnt[tx];
                int32_t th = thr[tx];
                if (nb + cw > cap) {
                    th = reduce(b, nb, k);
                    nb = k;
                }
                const float *dp = d + row + tx * cw, *ep = ef + row + tx * cw;
                const v4i tv = {th, th, th, th};
                int cc = 0;
                for (; cc + 16 <= cw; cc += 16) {
                    union {
                        v4i v[4];
                        uint32_t u[16];
                    } key;
                    key.v[0] = (v4i)(vb * ld4(ep + cc) + va * ld4(dp + cc)) & mask;
                    key.v[1] = (v4i)(vb * ld4(ep + cc + 4) + va * ld4(dp + cc + 4)) & mask;
                    key.v[2] = (v4i)(vb * ld4(ep + cc + 8) + va * ld4(dp + cc + 8)) & mask;
                    key.v[3] = (v4i)(vb * ld4(ep + cc + 12) + va * ld4(dp + cc + 12)) & mask;
                    union {
                        v4i v;
                        uint64_t u[2];
                    } any;
                    any.v = (key.v[0] > tv) | (key.v[1] > tv) | (key.v[2] > tv) | (key.v[3] > tv);
                    if (!(any.u[0] | any.u[1])) continue;
                    for (int j = 0; j < 16; j++) { /* branch-free: write always, keep when it beats th */
                        b[nb] = ((uint64_t)key.u[j] << 32) | (0xffffu - (o0 + (unsigned)(cc + j)));
                        nb += (int32_t)key.u[j] > th;
                    }
                }
                for (; cc < cw; cc++) {
                    const float v = beta * ep[cc] + alpha * dp[cc];
                    const uint32_t key = spl_f2u(v) & 0x7fffffffu;
                    if ((int32_t)key > th) b[nb++] = ((uint64_t)key << 32) | (0xffffu - (o0 + (unsigned)cc));
                }
                cnt[tx] = nb;
                thr[tx] = th;
            }
        }
        /* each tile of the band: its k best, offsets ascending, values recomputed */
        for (int64_t tx = 0; tx < ntx; tx++) {
            uint64_t *b = c->cand + tx * cap;
            if (cnt[tx] > k) reduce(b, cnt[tx], k);
            uint64_t bm[SPL_MAX_TILE / 64];
            memset(bm, 0, (size_t)words * sizeof *bm);
            for (int j = 0; j < k; j++) {
                unsigned o = 0xffffu - (unsigned)(b[j] & 0xffffu);
                bm[o >> 6] |= 1ull << (o & 63);
            }
            const int64_t tile = ty * ntx + tx;
            const int64_t origin = ty * ch * cols + tx * cw;
            uint16_t *oi = out_idx + tile * k;
            float *ov = out_val + tile * k;
            int j = 0;
            for (int w = 0; w < words; w++)
                for (uint64_t m = bm[w]; m; m &= m - 1) {
                    const int o = w * 64 + __builtin_ctzll(m);
                    const int64_t flat = origin + c->tab[o];
                    const float v = beta * ef[flat] + alpha * d[flat];
                    if (!isfinite(v)) return flat;
                    oi[j] = (uint16_t)o;
                    ov[j] = v;
                    j++;
                }
        }
    }
    return -1;
}

/* E = beta * E + alpha * D, four at a time (the same IEEE operations as the
 * scalar expression, so the same bits). */
static void ef_update(float *E, const float *D, int64_t n, float beta, float alpha) {
    const v4f vb = {beta, beta, beta, beta}, va = {alpha, alpha, alpha, alpha};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const v4f x = vb * ld4(E + j) + va * ld4(D + j);
        memcpy(E + j, &x, sizeof x);
    }
    for (; j < n; j++) E[j] = beta * E[j] + alpha * D[j];
}

static uint8_t *put_record(const spl_ctx *c, int i, uint8_t *p) {
    const spl_tl *t = &c->t[i];
    const int bins = c->p.bins;
    ts_put_u16(p, (uint16_t)t->name_len);
    p += 2;
    memcpy(p, t->name, t->name_len);
    p += t->name_len;
    *p++ = (uint8_t)t->ndim;
    for (int d = 0; d < t->ndim; d++, p += 4) ts_put_u32(p, (uint32_t)t->shape[d]);
    if (t->ndim == 2) *p++ = (uint8_t)t->ch;
    *p++ = (uint8_t)t->cw;
    ts_put_u16(p, (uint16_t)t->k);
    p += 2;
    ts_put_u32(p, (uint32_t)t->nvals);
    p += 4;
    spl_put_f32(p, c->shifts[i]);
    p += 4;
    for (int b = 0; b < bins; b++, p += 4) spl_put_f32(p, c->luts[(size_t)i * bins + b]);
    ts_put_u32(p, (uint32_t)t->idx_bytes);
    ts_put_u32(p + 4, (uint32_t)t->code_bytes);
    p += 8;
    spl_pack12(c->idx + t->val_off, (size_t)t->nvals, p);
    p += t->idx_bytes;
    spl_pack_codes(c->codes + t->val_off, (size_t)t->nvals, c->bits, p);
    p += t->code_bytes;
    return p;
}

static void put_header(const spl_ctx *c, uint8_t *w, const spl_meta *m, const ts_keypair *kp, size_t zlen) {
    memset(w, 0, H_END);
    memcpy(w + H_MAGIC, SPL_WIRE_MAGIC, 8);
    ts_put_u16(w + H_VERSION, SPL_WIRE_VERSION);
    ts_put_u16(w + H_FLAGS, 0);
    ts_put_u32(w + H_HDRLEN, H_END);
    size_t rl = strlen(m->run_id);
    w[H_RUNLEN] = (uint8_t)rl;
    memcpy(w + H_RUN, m->run_id, rl);
    w[H_SCHEME] = TS_SIG_SCHEME_SR25519;
    ts_put_u32(w + H_UID, m->uid);
    ts_put_u64(w + H_WINDOW, m->window);
    memcpy(w + H_HOTKEY, kp->pk, TS_PK_BYTES);
    memcpy(w + H_BASE, m->base_hash, TS_HASH_BYTES);
    memcpy(w + H_SAMPLE, m->sample_digest, TS_HASH_BYTES);
    memcpy(w + H_CONFIG, m->config_hash, TS_HASH_BYTES);
    ts_put_u16(w + H_K, (uint16_t)c->p.k);
    ts_put_u16(w + H_BINS, (uint16_t)c->p.bins);
    ts_put_u16(w + H_CHUNK, (uint16_t)c->p.chunk);
    spl_put_f32(w + H_BETA, c->p.beta);
    spl_put_f32(w + H_ALPHA, c->p.alpha);
    spl_put_f32(w + H_RANGE, c->p.range);
    ts_put_u32(w + H_NTENS, (uint32_t)c->n);
    ts_put_u64(w + H_BODY, c->body_bytes);
    ts_put_u64(w + H_ZBODY, zlen);
}

/* The residual kept at a sent coordinate: r with fl(r + sent) == ef_new, so
 * the error feedback's invariant ef_after + sent == ef_new holds exactly in
 * fp32.  fl(ef_new - sent) is that r whenever the subtraction is exact
 * (always when sent / 2 <= ef_new <= 2 sent); otherwise one of its fp32
 * neighbours is, and the residual moves by one ulp at most. */
static float ef_residual(float en, float sent) {
    float r = en - sent;
    if (r + sent == en) return r;
    float up = nextafterf(r, INFINITY), down = nextafterf(r, -INFINITY);
    if (up + sent == en) return up;
    if (down + sent == en) return down;
    return r;
}

/* quant.c: the quantizer over the kept values of T tiles of k values */
float spl_quantize_tiled(const float *v, int64_t T, int64_t k, int bins, float range, uint8_t *codes,
                         float *lut, float *shift_out);

static int refuse_nonfinite(const spl_ctx *c, int i, int64_t flat, ts_err *e) {
    return ts_fail(e, TS_EINVAL,
                   "codec: tensor %s: beta*ef + alpha*delta is not finite at element %lld "
                   "(delta or error feedback holds NaN or Inf); nothing was changed",
                   c->t[i].name, (long long)flat);
}

/* Steps 1 and 2 on a GPU backend (codec/cuda_compress.cu): selection and
 * quantization on the device, the compact result (offsets, codes, LUTs,
 * shifts) downloaded into the host arrays the CPU path fills. */
static int select_quantize_gpu(spl_ctx *c, const ts_tensor *delta, ts_tensor *ef, ts_err *e) {
    const kn_backend *be = c->be;
    if (!be->spl_comp_scratch || !be->spl_comp_run || !be->spl_comp_ef)
        return ts_fail(e, TS_EUNSUPPORTED, "codec: backend %s cannot compress on its device", be->name);
    int64_t tiles = 0;
    for (int i = 0; i < c->n; i++) tiles += c->t[i].ntiles;
    int rc;
    if (!c->cd_scratch) {
        size_t bytes = 0;
        if ((rc = be->spl_comp_scratch(be, c->n, tiles, c->nvals, c->p.bins, &bytes)))
            return ts_fail(e, rc, "codec: backend %s cannot compress this model on its device", be->name);
        c->cd_tab = malloc((size_t)c->n * KN_SPL_TAB * sizeof *c->cd_tab);
        c->cd_scratch = c->cd_tab ? be->alloc(be, bytes) : NULL;
        if (!c->cd_scratch) {
            free(c->cd_tab);
            c->cd_tab = NULL;
            return ts_fail(e, TS_ENOMEM, "codec: out of device memory for the compression scratch (%zu bytes on %s)",
                           bytes, be->name);
        }
    }
    int64_t tile0 = 0;
    for (int i = 0; i < c->n; i++) {
        const spl_tl *t = &c->t[i];
        int64_t *r = c->cd_tab + (size_t)i * KN_SPL_TAB;
        r[KN_SPL_DELTA] = (int64_t)(uintptr_t)delta[i].data;
        r[KN_SPL_EF] = (int64_t)(uintptr_t)ef[i].data;
        r[KN_SPL_ROWS] = t->rows;
        r[KN_SPL_COLS] = t->cols;
        r[KN_SPL_CH] = t->ch;
        r[KN_SPL_CW] = t->cw;
        r[KN_SPL_K] = t->k;
        r[KN_SPL_TILE0] = tile0;
        r[KN_SPL_VAL0] = t->val_off;
        tile0 += t->ntiles;
    }
    int64_t bad = -1;
    if ((rc = be->spl_comp_run(be, c->cd_scratch, c->cd_tab, c->n, tiles, c->nvals, c->p.bins, c->p.beta,
                               c->p.alpha, c->p.range, c->idx, c->codes, c->luts, c->shifts, &bad)))
        return ts_fail(e, rc, "codec: compression on %s failed", be->name);
    if (bad >= 0) return refuse_nonfinite(c, (int)(bad >> 40), bad & (((int64_t)1 << 40) - 1), e);
    return TS_OK;
}

int spl_compress(spl_ctx *c, const ts_tensor *delta, ts_tensor *ef, const spl_meta *m,
                 const ts_keypair *kp, const uint8_t **wire, size_t *wire_len, ts_err *e) {
    *wire = NULL;
    *wire_len = 0;
    if (!m || !kp) return ts_fail(e, TS_EINVAL, "codec: compress needs metadata and a key pair");
    if (!spl_run_id_valid(m->run_id))
        return ts_fail(e, TS_EINVAL, "codec: run id '%s' is not 1..64 of [A-Za-z0-9._-]", m->run_id);
    int rc = spl_check_tensors(c, delta, "delta", e);
    if (!rc) rc = spl_check_tensors(c, ef, "error-feedback", e);
    if (rc) return rc;
    for (int i = 0; i < c->n; i++)
        if (delta[i].data == ef[i].data)
            return ts_fail(e, TS_EINVAL, "codec: delta and error feedback of %s share memory", c->t[i].name);
    if ((rc = alloc_scratch(c, e))) return rc;

    const int bins = c->p.bins;
    if (c->be) {
        /* 1 and 2 on the device */
        if ((rc = select_quantize_gpu(c, delta, ef, e))) return rc;
    } else {
        /* 1. select */
        for (int i = 0; i < c->n; i++) {
            int64_t bad = select_tensor(c, &c->t[i], delta[i].data, ef[i].data);
            if (bad >= 0) return refuse_nonfinite(c, i, bad, e);
        }
        /* 2. quantize */
        for (int i = 0; i < c->n; i++) {
            const spl_tl *t = &c->t[i];
            spl_quantize_tiled(c->vals + t->val_off, t->ntiles, t->k, bins, c->p.range, c->codes + t->val_off,
                               c->luts + (size_t)i * bins, &c->shifts[i]);
        }
    }
    for (int i = 0; i < c->n; i++) {
        const float *lut = c->luts + (size_t)i * bins;
        bool fin = isfinite(c->shifts[i]);
        for (int b = 0; b < bins && fin; b++) fin = isfinite(lut[b]) && isfinite(lut[b] + c->shifts[i]);
        if (!fin)
            return ts_fail(e, TS_EINVAL,
                           "codec: tensor %s: values too large to quantize (LUT overflows); nothing was changed",
                           c->t[i].name);
    }
    /* 3. body, zstd, header, signature */
    uint8_t *p = c->body;
    for (int i = 0; i < c->n; i++) p = put_record(c, i, p);
    if ((size_t)(p - c->body) != c->body_bytes)
        return ts_fail(e, TS_ESTATE, "codec: internal error: body is %zu bytes, expected %zu",
                       (size_t)(p - c->body), c->body_bytes);
    ZSTD_CCtx *zc = c->zc;
    ZSTD_CCtx_reset(zc, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(zc, ZSTD_c_compressionLevel, c->zlevel);
    ZSTD_CCtx_setParameter(zc, ZSTD_c_contentSizeFlag, 1);
    ZSTD_CCtx_setParameter(zc, ZSTD_c_checksumFlag, 1);
    size_t zcap = c->wire_max - H_END - TS_SIG_BYTES;
    size_t zlen = ZSTD_compress2(zc, c->wire + H_END, zcap, c->body, c->body_bytes);
    if (ZSTD_isError(zlen)) return ts_fail(e, TS_EIO, "codec: zstd: %s", ZSTD_getErrorName(zlen));
    put_header(c, c->wire, m, kp, zlen);
    uint8_t hash[TS_HASH_BYTES];
    ts_blake2b(hash, sizeof hash, c->wire, H_END + zlen);
    if ((rc = ts_sign(kp, SPL_SIG_TAG, hash, sizeof hash, c->wire + H_END + zlen, e))) return rc;

    /* 4. error feedback: ef_new everywhere, minus what was sent where kept */
    const float beta = c->p.beta, alpha = c->p.alpha;
    if (c->be) {
        int64_t tiles = 0;
        for (int i = 0; i < c->n; i++) tiles += c->t[i].ntiles;
        if ((rc = c->be->spl_comp_ef(c->be, c->cd_scratch, c->n, tiles, c->nvals, bins, beta, alpha)))
            return ts_fail(e, rc, "codec: error-feedback update on %s failed", c->be->name);
    } else {
        for (int i = 0; i < c->n; i++) {
            const spl_tl *t = &c->t[i];
            ef_update(ef[i].data, delta[i].data, t->rows * t->cols, beta, alpha);
            float *E = ef[i].data;
            spl_fill_tab(c, t);
            const float *lut = c->luts + (size_t)i * bins;
            const float shift = c->shifts[i];
            const uint16_t *oi = c->idx + t->val_off;
            const uint8_t *cd = c->codes + t->val_off;
            const float *ov = c->vals + t->val_off;
            for (int64_t tile = 0; tile < t->ntiles; tile++) {
                const int64_t ty = tile / t->ntx, tx = tile % t->ntx;
                const int64_t origin = ty * t->ch * t->cols + tx * t->cw;
                for (int j = 0; j < t->k; j++) {
                    const int64_t v = tile * t->k + j;
                    E[origin + c->tab[oi[v]]] = ef_residual(ov[v], lut[cd[v]] + shift);
                }
            }
        }
    }
    *wire = c->wire;
    *wire_len = H_END + zlen + TS_SIG_BYTES;
    return TS_OK;
}
