/* compress.c - error feedback, per-tile top-k, quantization and the signed
 * wire object (PROTOCOL.md section 7, docs/FORMATS.md 7.1-7.2).
 *
 * The work is split so that a failure changes nothing:
 *   1. select: per tile, the k largest |beta*ef + alpha*delta| (computed on
 *      the fly, not stored), ties to the lower offset; kept offsets ascending;
 *   2. quantize each tensor's kept values;
 *   3. serialize the body, zstd it, header, BLAKE2b, Ed25519;
 *   4. only then write ef = beta*ef + alpha*delta and subtract what was sent.
 *
 * Selection is a min-heap of k per tile fed in offset order.  A band of
 * tiles (chunk rows of the tensor) is scanned row by row so memory is read
 * sequentially; a value enters a full heap only when its magnitude beats the
 * heap's minimum, which for k = 64 of 4096 happens a few hundred times per
 * tile, so the scan is one compare per value.  Magnitudes are compared as
 * the bit patterns of |v| (monotone for non-negative floats), and heap
 * entries are (|v| bits << 32 | 0xffff - offset), so the order is total and
 * the lower offset wins a tie. */
#include <math.h>
#include <stdlib.h>

#include <zstd.h>

#include "internal.h"

static int alloc_scratch(spl_ctx *c, ts_err *e) {
    if (c->have_scratch) return TS_OK;
    size_t heap = 1;
    for (int i = 0; i < c->n; i++) {
        size_t h = (size_t)(c->t[i].ntx * c->t[i].k);
        if (h > heap) heap = h;
    }
    size_t nv = (size_t)c->nvals;
    c->idx = malloc(nv * sizeof *c->idx);
    c->vals = malloc(nv * sizeof *c->vals);
    c->codes = malloc(nv);
    c->luts = malloc((size_t)c->n * (size_t)c->p.bins * sizeof(float));
    c->shifts = malloc((size_t)c->n * sizeof(float));
    c->heap = malloc(heap * sizeof *c->heap);
    c->body = malloc(c->body_bytes);
    c->wire = malloc(c->wire_max);
    c->zc = ZSTD_createCCtx();
    if (!c->idx || !c->vals || !c->codes || !c->luts || !c->shifts || !c->heap || !c->body || !c->wire ||
        !c->zc) {
        free(c->idx), free(c->vals), free(c->codes), free(c->luts), free(c->shifts);
        free(c->heap), free(c->body), free(c->wire);
        ZSTD_freeCCtx(c->zc);
        c->idx = NULL, c->vals = NULL, c->codes = NULL, c->luts = NULL, c->shifts = NULL;
        c->heap = NULL, c->body = NULL, c->wire = NULL, c->zc = NULL;
        return ts_fail(e, TS_ENOMEM, "codec: out of memory for the compression buffers");
    }
    c->have_scratch = true;
    return TS_OK;
}

static inline void heap_sift_down(uint64_t *h, int n, uint64_t x) {
    int i = 0;
    for (;;) {
        int l = 2 * i + 1;
        if (l >= n) break;
        int m = (l + 1 < n && h[l + 1] < h[l]) ? l + 1 : l;
        if (h[m] >= x) break;
        h[i] = h[m];
        i = m;
    }
    h[i] = x;
}

static inline void heap_push(uint64_t *h, int n, uint64_t x) {
    int i = n;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (h[p] <= x) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static inline uint64_t entry(float v, int o) {
    return ((uint64_t)(spl_f2u(v) & 0x7fffffffu) << 32) | (uint64_t)(0xffffu - (unsigned)o);
}

/* Selects the kept offsets and values of one tensor into c->idx / c->vals.
 * Returns the flat position of a non-finite kept value, or -1.  (A tile
 * with any non-finite value keeps at least one: such a value outranks every
 * finite one.) */
static int64_t select_tensor(spl_ctx *c, const spl_tl *t, const float *d, const float *ef) {
    const float beta = c->p.beta, alpha = c->p.alpha;
    const int k = t->k, cw = t->cw, ch = t->ch;
    const int64_t cols = t->cols, ntx = t->ntx;
    uint16_t *out_idx = c->idx + t->val_off;
    float *out_val = c->vals + t->val_off;
    const int words = (t->tile_numel + 63) / 64;
    spl_fill_tab(c, t);
    for (int64_t ty = 0; ty < t->nty; ty++) {
        for (int r = 0; r < ch; r++) {
            const int64_t row = (ty * ch + r) * cols;
            const int o0 = r * cw;
            for (int64_t tx = 0; tx < ntx; tx++) {
                uint64_t *h = c->heap + tx * k;
                const float *dp = d + row + tx * cw, *ep = ef + row + tx * cw;
                int cc = 0;
                for (; cc < cw && o0 + cc < k; cc++) heap_push(h, o0 + cc, entry(beta * ep[cc] + alpha * dp[cc], o0 + cc));
                if (cc == cw) continue;
                uint32_t thr = (uint32_t)(h[0] >> 32);
                for (; cc < cw; cc++) {
                    const float v = beta * ep[cc] + alpha * dp[cc];
                    if ((spl_f2u(v) & 0x7fffffffu) > thr) {
                        heap_sift_down(h, k, entry(v, o0 + cc));
                        thr = (uint32_t)(h[0] >> 32);
                    }
                }
            }
        }
        /* each tile of the band: kept offsets in ascending order, values recomputed */
        for (int64_t tx = 0; tx < ntx; tx++) {
            const uint64_t *h = c->heap + tx * k;
            uint64_t bm[SPL_MAX_TILE / 64];
            memset(bm, 0, (size_t)words * sizeof *bm);
            for (int j = 0; j < k; j++) {
                unsigned o = 0xffffu - (unsigned)(h[j] & 0xffffu);
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

    /* 1. select */
    for (int i = 0; i < c->n; i++) {
        int64_t bad = select_tensor(c, &c->t[i], delta[i].data, ef[i].data);
        if (bad >= 0)
            return ts_fail(e, TS_EINVAL,
                           "codec: tensor %s: beta*ef + alpha*delta is not finite at element %lld "
                           "(delta or error feedback holds NaN or Inf); nothing was changed",
                           c->t[i].name, (long long)bad);
    }
    /* 2. quantize */
    const int bins = c->p.bins;
    for (int i = 0; i < c->n; i++) {
        const spl_tl *t = &c->t[i];
        float *lut = c->luts + (size_t)i * bins;
        spl_quantize(c->vals + t->val_off, t->nvals, bins, c->p.range, c->codes + t->val_off, lut,
                     &c->shifts[i]);
        bool fin = isfinite(c->shifts[i]);
        for (int b = 0; b < bins && fin; b++) fin = isfinite(lut[b]) && isfinite(lut[b] + c->shifts[i]);
        if (!fin)
            return ts_fail(e, TS_EINVAL,
                           "codec: tensor %s: values too large to quantize (LUT overflows); nothing was changed",
                           t->name);
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
    for (int i = 0; i < c->n; i++) {
        const spl_tl *t = &c->t[i];
        float *E = ef[i].data;
        const float *D = delta[i].data;
        const int64_t numel = t->rows * t->cols;
        for (int64_t j = 0; j < numel; j++) E[j] = beta * E[j] + alpha * D[j];
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
                E[origin + c->tab[oi[v]]] = ov[v] - (lut[cd[v]] + shift);
            }
        }
    }
    *wire = c->wire;
    *wire_len = H_END + zlen + TS_SIG_BYTES;
    return TS_OK;
}
