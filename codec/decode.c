/* decode.c - reading uploads, every byte hostile (docs/FORMATS.md 7.1, 7.2, 7.4).
 *
 * Order of checks, cheapest and most fundamental first:
 *   magic, version, fixed-header length; total length against the largest
 *   upload the model allows (before hashing anything); the signature scheme
 *   (sr25519 only); the declared compressed size against the length
 *   (truncated, trailing); the signature (BLAKE2b-256 of everything before
 *   it, sr25519 under the expected hotkey);
 *   reserved fields and run id syntax; signer, run, window, uid, config,
 *   codec parameters; tensor count; the declared body size against the exact
 *   size the model's shapes give; then decompression with exactly that cap
 *   (a frame that declares more is refused before any allocation); then each
 *   record: name known and not seen before, shape, chunks, k, value count,
 *   shift and LUT finite and plausible, section sizes, every index in range
 *   and strictly ascending within its tile, zero padding bits.
 * Nothing is allocated before the sizes are known to be what the model
 * allows, and the only allocation is the body itself. */
#include <math.h>
#include <stdlib.h>

#include <zstd.h>

#include "internal.h"

int spl_upload_new(const spl_ctx *c, spl_upload **out, ts_err *e) {
    *out = NULL;
    spl_upload *u = calloc(1, sizeof *u);
    if (!u) return ts_fail(e, TS_ENOMEM, "codec: out of memory");
    u->c = c;
    u->rec = calloc((size_t)c->n, sizeof *u->rec);
    u->luts = calloc((size_t)c->n * (size_t)c->p.bins, sizeof *u->luts);
    u->cnts = calloc((size_t)c->n * (size_t)c->p.bins, sizeof *u->cnts);
    if (!u->rec || !u->luts || !u->cnts) {
        spl_upload_free(u);
        return ts_fail(e, TS_ENOMEM, "codec: out of memory");
    }
    *out = u;
    return TS_OK;
}

static void upload_clear(spl_upload *u) {
    u->gen++;
    free(u->body);
    u->body = NULL;
    u->body_len = 0;
    u->ok = false;
    memset(&u->meta, 0, sizeof u->meta);
    memset(&u->info, 0, sizeof u->info);
    memset(u->rec, 0, (size_t)u->c->n * sizeof *u->rec);
}

void spl_upload_free(spl_upload *u) {
    if (!u) return;
    free(u->body);
    free(u->rec);
    free(u->luts);
    free(u->cnts);
    free(u);
}

bool spl_upload_ok(const spl_upload *u) { return u && u->ok; }
const spl_meta *spl_upload_meta(const spl_upload *u) { return &u->meta; }
void spl_upload_info(const spl_upload *u, spl_wire_info *out) { *out = u->info; }

int spl_upload_tensor(const spl_upload *u, int i, spl_tview *out) {
    if (!u->ok || i < 0 || i >= u->c->n) return TS_EINVAL;
    const int bins = u->c->p.bins;
    out->shift = u->rec[i].shift;
    out->lut = u->luts + (size_t)i * bins;
    out->count = u->cnts + (size_t)i * bins;
    out->norm = u->rec[i].norm;
    return TS_OK;
}

int spl_upload_tile(const spl_upload *u, int i, int64_t tile, uint16_t *idx, uint8_t *codes) {
    if (!u->ok || i < 0 || i >= u->c->n) return TS_EINVAL;
    const spl_tl *t = &u->c->t[i];
    if (tile < 0 || tile >= t->ntiles) return TS_EINVAL;
    const spl_rec *rec = &u->rec[i];
    const int64_t v0 = tile * t->k;
    if (idx) spl_unpack12(rec->idx + (size_t)v0 / 2 * 3, (size_t)t->k, idx);
    if (codes)
        for (int j = 0; j < t->k; j++) {
            const int64_t v = v0 + j;
            codes[j] = u->c->bits == 8 ? rec->codes[v] : (rec->codes[v >> 2] >> ((v & 3) * 2)) & 3u;
        }
    return TS_OK;
}

/* ------------------------------------------------------------ header */

int spl_parse_header(const uint8_t *buf, size_t len, spl_meta *m, spl_params *p, spl_wire_info *info,
                     spl_reject *why, ts_err *e) {
    if (len < 8) return spl_rej(why, e, SPL_R_TRUNCATED, "%zu bytes, shorter than the magic", len);
    if (memcmp(buf, SPL_WIRE_MAGIC, 8))
        return spl_rej(why, e, SPL_R_MAGIC, "the first 8 bytes are not \"%s\"", SPL_WIRE_MAGIC);
    if (len < 10) return spl_rej(why, e, SPL_R_TRUNCATED, "%zu bytes, shorter than the version", len);
    unsigned ver = ts_get_u16(buf + H_VERSION);
    if (ver != SPL_WIRE_VERSION)
        return spl_rej(why, e, SPL_R_VERSION, "wire version %u (this node reads version %d)", ver,
                       SPL_WIRE_VERSION);
    if (len < (size_t)H_END + TS_SIG_BYTES)
        return spl_rej(why, e, SPL_R_TRUNCATED, "%zu bytes, shorter than the header and signature (%d)",
                       len, H_END + TS_SIG_BYTES);
    /* the scheme says how the signature is made: checked before anything verifies it */
    int rc = spl_check_scheme(buf[H_SCHEME], "", why, e);
    if (rc) return rc;
    uint64_t zlen = ts_get_u64(buf + H_ZBODY);
    size_t room = len - H_END - TS_SIG_BYTES;
    if (zlen > room)
        return spl_rej(why, e, SPL_R_TRUNCATED, "declares a %llu-byte body but %zu bytes follow the header",
                       (unsigned long long)zlen, room);
    if (zlen < room)
        return spl_rej(why, e, SPL_R_TRAILING, "%zu bytes beyond the declared body and signature",
                       (size_t)(room - zlen));
    memset(m, 0, sizeof *m);
    unsigned rl = buf[H_RUNLEN];
    if (rl <= SPL_MAX_RUN_ID) memcpy(m->run_id, buf + H_RUN, rl);
    m->window = ts_get_u64(buf + H_WINDOW);
    m->uid = ts_get_u32(buf + H_UID);
    memcpy(m->hotkey, buf + H_HOTKEY, TS_PK_BYTES);
    memcpy(m->base_hash, buf + H_BASE, TS_HASH_BYTES);
    memcpy(m->sample_digest, buf + H_SAMPLE, TS_HASH_BYTES);
    memcpy(m->config_hash, buf + H_CONFIG, TS_HASH_BYTES);
    p->k = ts_get_u16(buf + H_K);
    p->bins = ts_get_u16(buf + H_BINS);
    p->chunk = ts_get_u16(buf + H_CHUNK);
    p->beta = spl_get_f32(buf + H_BETA);
    p->alpha = spl_get_f32(buf + H_ALPHA);
    p->range = spl_get_f32(buf + H_RANGE);
    info->wire_bytes = len;
    info->zbody_bytes = (size_t)zlen;
    uint64_t body = ts_get_u64(buf + H_BODY);
    info->body_bytes = body > SIZE_MAX ? SIZE_MAX : (size_t)body;
    info->tensors = ts_get_u32(buf + H_NTENS);
    return TS_OK;
}

/* Structural checks of the (already signature-checked) header. */
static int check_header_fields(const uint8_t *buf, spl_reject *why, ts_err *e) {
    if (ts_get_u16(buf + H_FLAGS)) return spl_rej(why, e, SPL_R_HEADER, "reserved flags are not zero");
    if (ts_get_u32(buf + H_HDRLEN) != H_END)
        return spl_rej(why, e, SPL_R_HEADER, "header size %u, expected %d", ts_get_u32(buf + H_HDRLEN), H_END);
    unsigned rl = buf[H_RUNLEN];
    if (rl < 1 || rl > SPL_MAX_RUN_ID) return spl_rej(why, e, SPL_R_HEADER, "run id length %u", rl);
    for (unsigned i = 0; i < SPL_MAX_RUN_ID; i++) {
        uint8_t ch = buf[H_RUN + i];
        bool okc = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                   ch == '.' || ch == '_' || ch == '-';
        if (i < rl ? !okc : ch != 0)
            return spl_rej(why, e, SPL_R_HEADER, "run id byte %u is %s", i,
                           i < rl ? "outside [A-Za-z0-9._-]" : "non-zero padding");
    }
    if (buf[H_RSV0] || buf[H_RSV0 + 1] || ts_get_u16(buf + H_RSV1))
        return spl_rej(why, e, SPL_R_HEADER, "reserved bytes are not zero");
    return TS_OK;
}

int spl_peek(const uint8_t *buf, size_t len, spl_meta *m, spl_params *p, spl_wire_info *info,
             spl_reject *why, ts_err *e) {
    spl_reject r = SPL_R_NONE;
    int rc = spl_parse_header(buf, len, m, p, info, &r, e);
    if (!rc) rc = check_header_fields(buf, &r, e);
    if (why) *why = r;
    return rc;
}

static bool same_f32(float a, float b) { return spl_f2u(a) == spl_f2u(b); }

static int verify_sig(const uint8_t *buf, size_t len, const uint8_t *pk, spl_reject *why, ts_err *e) {
    uint8_t hash[TS_HASH_BYTES];
    ts_blake2b(hash, sizeof hash, buf, len - TS_SIG_BYTES);
    ts_err se = {0};
    if (ts_verify(pk, SPL_SIG_TAG, hash, sizeof hash, buf + len - TS_SIG_BYTES, &se)) {
        char hex[2 * TS_PK_BYTES + 1];
        ts_hex(hex, pk, TS_PK_BYTES);
        return spl_rej(why, e, SPL_R_SIGNATURE, "the signature does not verify under hotkey 0x%.16s...", hex);
    }
    return TS_OK;
}

/* ------------------------------------------------------------- body */

typedef struct {
    const uint8_t *p, *end;
} rd;

static bool need(const rd *r, size_t n) { return (size_t)(r->end - r->p) >= n; }

static int parse_record(const spl_ctx *c, spl_upload *u, rd *r, int nth, spl_reject *why, ts_err *e) {
    const int bins = c->p.bins;
    if (!need(r, 2)) return spl_rej(why, e, SPL_R_TRUNCATED, "body ends inside record %d", nth);
    size_t nl = ts_get_u16(r->p);
    r->p += 2;
    if (nl < 1 || nl >= TS_MAX_NAME)
        return spl_rej(why, e, SPL_R_RECORD, "record %d: name length %zu (must be 1..%d)", nth, nl,
                       TS_MAX_NAME - 1);
    if (!need(r, nl)) return spl_rej(why, e, SPL_R_TRUNCATED, "body ends inside record %d's name", nth);
    const char *name = (const char *)r->p;
    r->p += nl;
    char shown[TS_MAX_NAME];
    size_t sl = 0;
    for (size_t i = 0; i < nl && sl + 1 < sizeof shown; i++)
        shown[sl++] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
    shown[sl] = 0;
    int ti = spl_find_n(c, name, nl);
    if (ti < 0) return spl_rej(why, e, SPL_R_UNKNOWN_TENSOR, "record %d names '%s', which the model lacks", nth, shown);
    const spl_tl *t = &c->t[ti];
    spl_rec *rec = &u->rec[ti];
    if (rec->present) return spl_rej(why, e, SPL_R_DUP_TENSOR, "tensor %s appears twice", t->name);
    if (!need(r, 1)) return spl_rej(why, e, SPL_R_TRUNCATED, "body ends inside %s", t->name);
    int ndim = *r->p++;
    if (ndim != 1 && ndim != 2) return spl_rej(why, e, SPL_R_RECORD, "%s: %d dimensions", t->name, ndim);
    const size_t fixed = 5 * (size_t)ndim + 2 + 4 + 4 + 4 * (size_t)bins + 8;
    if (!need(r, fixed)) return spl_rej(why, e, SPL_R_TRUNCATED, "body ends inside %s", t->name);
    int64_t shape[2] = {0, 0};
    for (int d = 0; d < ndim; d++, r->p += 4) shape[d] = ts_get_u32(r->p);
    if (ndim != t->ndim || shape[0] != t->shape[0] || (ndim == 2 && shape[1] != t->shape[1])) {
        char a[64], b[64];
        ts_shape_str(a, sizeof a, ndim, shape);
        ts_shape_str(b, sizeof b, t->ndim, t->shape);
        return spl_rej(why, e, SPL_R_SHAPE, "%s has shape %s, the model's is %s", t->name, a, b);
    }
    int ch = ndim == 2 ? *r->p++ : 1;
    int cw = *r->p++;
    if (ch != t->ch || cw != t->cw)
        return spl_rej(why, e, SPL_R_CHUNK, "%s: chunks %dx%d, the rule gives %dx%d", t->name, ch, cw, t->ch, t->cw);
    int k = ts_get_u16(r->p);
    r->p += 2;
    if (k != t->k) return spl_rej(why, e, SPL_R_K, "%s: k = %d, expected %d", t->name, k, t->k);
    uint32_t nv = ts_get_u32(r->p);
    r->p += 4;
    if ((int64_t)nv != t->nvals)
        return spl_rej(why, e, SPL_R_SECTION_SIZE, "%s: %u values, expected %lld", t->name, nv, (long long)t->nvals);
    const float shift = spl_get_f32(r->p);
    r->p += 4;
    float *lut = u->luts + (size_t)ti * bins;
    for (int b = 0; b < bins; b++, r->p += 4) lut[b] = spl_get_f32(r->p);
    if (!isfinite(shift)) return spl_rej(why, e, SPL_R_NONFINITE, "%s: shift is not finite", t->name);
    for (int b = 0; b < bins; b++)
        if (!isfinite(lut[b])) return spl_rej(why, e, SPL_R_NONFINITE, "%s: LUT entry %d is not finite", t->name, b);
    const float lim = c->max_abs;
    if (!(fabsf(shift) <= lim))
        return spl_rej(why, e, SPL_R_ABSURD, "%s: |shift| = %g exceeds %g", t->name, (double)fabsf(shift), (double)lim);
    for (int b = 0; b < bins; b++) {
        float x = lut[b] + shift;
        if (!(fabsf(lut[b]) <= lim) || !(fabsf(x) <= lim))
            return spl_rej(why, e, SPL_R_ABSURD, "%s: LUT entry %d (%g, dequantized %g) exceeds %g", t->name, b,
                           (double)lut[b], (double)x, (double)lim);
    }
    uint32_t ib = ts_get_u32(r->p), cb = ts_get_u32(r->p + 4);
    r->p += 8;
    if (ib != t->idx_bytes || cb != t->code_bytes)
        return spl_rej(why, e, SPL_R_SECTION_SIZE, "%s: sections of %u and %u bytes, expected %zu and %zu", t->name,
                       ib, cb, t->idx_bytes, t->code_bytes);
    if (!need(r, (size_t)ib + cb)) return spl_rej(why, e, SPL_R_TRUNCATED, "body ends inside %s's data", t->name);
    const uint8_t *ip = r->p, *cp = r->p + ib;
    r->p += (size_t)ib + cb;

    /* indices: in range, strictly ascending within each tile */
    const unsigned tn = (unsigned)t->tile_numel;
    const uint8_t *q = ip;
    for (int64_t tile = 0; tile < t->ntiles; tile++) {
        int prev = -1;
        for (int j = 0; j < k; j += 2, q += 3) {
            const unsigned a = q[0] | ((q[1] & 0xfu) << 8), b = (q[1] >> 4) | ((unsigned)q[2] << 4);
            const unsigned pair[2] = {a, b};
            for (int s = 0; s < 2; s++) {
                const int o = (int)pair[s];
                if ((unsigned)o >= tn)
                    return spl_rej(why, e, SPL_R_INDEX_RANGE, "%s tile %lld: index %d, the tile holds %u", t->name,
                                   (long long)tile, o, tn);
                if (o == prev)
                    return spl_rej(why, e, SPL_R_INDEX_DUP, "%s tile %lld: index %d twice", t->name, (long long)tile, o);
                if (o < prev)
                    return spl_rej(why, e, SPL_R_INDEX_ORDER, "%s tile %lld: index %d after %d", t->name,
                                   (long long)tile, o, prev);
                prev = o;
            }
        }
    }
    /* codes: counts per bin, zero padding */
    uint32_t *cnt = u->cnts + (size_t)ti * bins;
    memset(cnt, 0, (size_t)bins * sizeof *cnt);
    if (c->bits == 8) {
        for (uint32_t i = 0; i < nv; i++) cnt[cp[i]]++;
    } else {
        const uint32_t full = nv / 4;
        for (uint32_t i = 0; i < full; i++) {
            const uint8_t x = cp[i];
            cnt[x & 3]++, cnt[(x >> 2) & 3]++, cnt[(x >> 4) & 3]++, cnt[x >> 6]++;
        }
        if (nv % 4) {
            const uint8_t x = cp[full];
            const unsigned used = 2 * (nv % 4);
            if (x >> used) return spl_rej(why, e, SPL_R_PADDING, "%s: padding bits after the last code are not zero", t->name);
            for (unsigned j = 0; j < nv % 4; j++) cnt[(x >> (2 * j)) & 3]++;
        }
    }
    double sq = 0.0;
    for (int b = 0; b < bins; b++) {
        const double x = (double)(lut[b] + shift);
        sq += (double)cnt[b] * (x * x);
    }
    rec->present = true;
    rec->idx = ip;
    rec->codes = cp;
    rec->shift = shift;
    rec->norm = sqrt(sq);
    return TS_OK;
}

/* Takes ownership of body (freed on failure too). */
static int parse_body(const spl_ctx *c, spl_upload *u, uint8_t *body, size_t len, spl_reject *why, ts_err *e) {
    u->body = body;
    u->body_len = len;
    rd r = {body, body + len};
    int nth = 0;
    while (r.p < r.end) {
        if (nth >= c->n)
            return spl_rej(why, e, SPL_R_UNKNOWN_TENSOR, "more records than the model's %d tensors", c->n);
        int rc = parse_record(c, u, &r, nth, why, e);
        if (rc) return rc;
        nth++;
    }
    for (int i = 0; i < c->n; i++)
        if (!u->rec[i].present) return spl_rej(why, e, SPL_R_MISSING_TENSOR, "tensor %s is missing", c->t[i].name);
    return TS_OK;
}

int spl_decode_body(const spl_ctx *c, const uint8_t *body, size_t len, spl_upload *u, spl_reject *why,
                    ts_err *e) {
    spl_reject r0;
    if (!why) why = &r0;
    *why = SPL_R_NONE;
    if (u->c != c) return ts_fail(e, TS_EINVAL, "codec: upload object belongs to another context");
    upload_clear(u);
    if (len > c->body_bytes)
        return spl_rej(why, e, SPL_R_BODY_SIZE, "%zu-byte body, the model's is %zu", len, c->body_bytes);
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return ts_fail(e, TS_ENOMEM, "codec: out of memory");
    if (len) memcpy(copy, body, len);
    int rc = parse_body(c, u, copy, len, why, e);
    if (rc) {
        upload_clear(u);
        return rc;
    }
    u->info.body_bytes = len;
    u->info.tensors = (uint32_t)c->n;
    u->ok = true;
    return TS_OK;
}

int spl_decode(const spl_ctx *c, const uint8_t *buf, size_t len, const spl_expect *x, spl_upload *u,
               spl_reject *why, ts_err *e) {
    spl_reject r0;
    if (!why) why = &r0;
    *why = SPL_R_NONE;
    if (!u || u->c != c) return ts_fail(e, TS_EINVAL, "codec: upload object belongs to another context");
    upload_clear(u);
    if (!x) return ts_fail(e, TS_EINVAL, "codec: decode needs what is expected");
    if (!(x->skip & SPL_SKIP_SIGNER) && !x->signer)
        return ts_fail(e, TS_EINVAL, "codec: decode needs the expected signer");
    if (!(x->skip & SPL_SKIP_RUN) && !x->run_id) return ts_fail(e, TS_EINVAL, "codec: decode needs the run id");
    if (!(x->skip & SPL_SKIP_CONFIG) && !x->config_hash)
        return ts_fail(e, TS_EINVAL, "codec: decode needs the model config hash");
    if (!buf && len) return ts_fail(e, TS_EINVAL, "codec: no buffer");

    /* sizes first: nothing hashed or allocated for an object the model cannot produce */
    if (len >= 10 && !memcmp(buf, SPL_WIRE_MAGIC, 8) && ts_get_u16(buf + H_VERSION) == SPL_WIRE_VERSION &&
        len > c->wire_max)
        return spl_rej(why, e, SPL_R_OVERSIZED, "%zu bytes, the largest upload this model allows is %zu", len,
                       c->wire_max);
    spl_meta m;
    spl_params p;
    spl_wire_info info;
    int rc = spl_parse_header(buf, len, &m, &p, &info, why, e);
    if (rc) return rc;
    if ((rc = verify_sig(buf, len, (x->skip & SPL_SKIP_SIGNER) ? m.hotkey : x->signer, why, e))) return rc;
    if ((rc = check_header_fields(buf, why, e))) return rc;
    if (!(x->skip & SPL_SKIP_SIGNER) && memcmp(m.hotkey, x->signer, TS_PK_BYTES))
        return spl_rej(why, e, SPL_R_SIGNER, "the header names another hotkey than the expected signer");
    if (!(x->skip & SPL_SKIP_RUN) && strcmp(m.run_id, x->run_id))
        return spl_rej(why, e, SPL_R_RUN, "run '%s', expected '%s'", m.run_id, x->run_id);
    if (!(x->skip & SPL_SKIP_WINDOW) && m.window != x->window)
        return spl_rej(why, e, SPL_R_WINDOW, "window %llu, expected %llu", (unsigned long long)m.window,
                       (unsigned long long)x->window);
    if (!(x->skip & SPL_SKIP_UID) && m.uid != x->uid)
        return spl_rej(why, e, SPL_R_UID, "uid %u, expected %u", m.uid, x->uid);
    if (!(x->skip & SPL_SKIP_CONFIG) && memcmp(m.config_hash, x->config_hash, TS_HASH_BYTES))
        return spl_rej(why, e, SPL_R_CONFIG, "model config hash differs from this run's");
    if (p.k != c->p.k || p.bins != c->p.bins || p.chunk != c->p.chunk || !same_f32(p.beta, c->p.beta) ||
        !same_f32(p.alpha, c->p.alpha) || !same_f32(p.range, c->p.range))
        return spl_rej(why, e, SPL_R_PARAMS,
                       "k %d bins %d chunk %d beta %g alpha %g range %g; the run uses k %d bins %d chunk %d "
                       "beta %g alpha %g range %g",
                       p.k, p.bins, p.chunk, (double)p.beta, (double)p.alpha, (double)p.range, c->p.k, c->p.bins,
                       c->p.chunk, (double)c->p.beta, (double)c->p.alpha, (double)c->p.range);
    if (info.tensors < (uint32_t)c->n)
        return spl_rej(why, e, SPL_R_MISSING_TENSOR, "%u tensors, the model has %d", info.tensors, c->n);
    if (info.tensors > (uint32_t)c->n)
        return spl_rej(why, e, SPL_R_UNKNOWN_TENSOR, "%u tensors, the model has only %d", info.tensors, c->n);
    if (ts_get_u64(buf + H_BODY) != (uint64_t)c->body_bytes)
        return spl_rej(why, e, SPL_R_BODY_SIZE, "declares a %llu-byte body, the model's is exactly %zu bytes",
                       (unsigned long long)ts_get_u64(buf + H_BODY), c->body_bytes);

    uint8_t *body = NULL;
    size_t blen = 0;
    ts_err ze = {0};
    rc = ts_zstd_decompress(buf + H_END, info.zbody_bytes, c->body_bytes, &body, &blen, &ze);
    if (rc == TS_ETOOBIG) return spl_rej(why, e, SPL_R_ZSTD_BOMB, "%s", ze.msg);
    if (rc == TS_ENOMEM) return ts_fail(e, TS_ENOMEM, "codec: %s", ze.msg);
    if (rc) return spl_rej(why, e, SPL_R_ZSTD, "%s", ze.msg);
    if (blen != c->body_bytes) {
        free(body);
        return spl_rej(why, e, SPL_R_BODY_SIZE, "body decompresses to %zu bytes, expected %zu", blen, c->body_bytes);
    }
    if ((rc = parse_body(c, u, body, blen, why, e))) {
        upload_clear(u);
        return rc;
    }
    u->meta = m;
    u->info = info;
    u->ok = true;
    return TS_OK;
}

/* --------------------------------------------------------- dense view */

int spl_upload_dense(const spl_ctx *c, const spl_upload *u, ts_tensor *out, ts_err *e) {
    if (!u || !u->ok || u->c != c) return ts_fail(e, TS_EINVAL, "codec: no decoded upload of this context");
    int rc = spl_check_tensors(c, out, "output", e);
    if (rc) return rc;
    const int bins = c->p.bins;
    for (int i = 0; i < c->n; i++) {
        const spl_tl *t = &c->t[i];
        float *o = out[i].data;
        memset(o, 0, out[i].nbytes);
        const spl_rec *rec = &u->rec[i];
        const float *lut = u->luts + (size_t)i * bins;
        for (int64_t tile = 0; tile < t->ntiles; tile++) {
            const int64_t ty = tile / t->ntx, tx = tile % t->ntx;
            const int64_t origin = ty * t->ch * t->cols + tx * t->cw;
            uint16_t idx[SPL_MAX_TILE];
            spl_unpack12(rec->idx + (size_t)tile * (size_t)t->k / 2 * 3, (size_t)t->k, idx);
            for (int j = 0; j < t->k; j++) {
                const int64_t v = tile * t->k + j;
                const unsigned code = c->bits == 8 ? rec->codes[v] : (rec->codes[v >> 2] >> ((v & 3) * 2)) & 3u;
                const int64_t flat = origin + (int64_t)(idx[j] / t->cw) * t->cols + idx[j] % t->cw;
                o[flat] = lut[code] + rec->shift;
            }
        }
    }
    return TS_OK;
}

/* ------------------------------------------------ context from a wire */

int spl_ctx_from_wire(const uint8_t *buf, size_t len, size_t max_body, spl_ctx **out, spl_reject *why,
                      ts_err *e) {
    *out = NULL;
    spl_reject r0;
    if (!why) why = &r0;
    *why = SPL_R_NONE;
    spl_meta m;
    spl_params p;
    spl_wire_info info;
    int rc = spl_parse_header(buf, len, &m, &p, &info, why, e);
    if (rc) return rc;
    if ((rc = verify_sig(buf, len, m.hotkey, why, e))) return rc;
    if ((rc = check_header_fields(buf, why, e))) return rc;
    ts_err pe = {0};
    if (spl_params_check(&p, &pe)) return spl_rej(why, e, SPL_R_HEADER, "%s", pe.msg);
    if (info.body_bytes > max_body)
        return spl_rej(why, e, SPL_R_OVERSIZED, "declares a %zu-byte body, over the limit of %zu", info.body_bytes,
                       max_body);
    /* the smallest record: 1-byte name, 1 dimension, no data */
    const size_t min_rec = spl_record_bytes(1, 1, p.bins, 0, 0);
    if (info.tensors < 1 || info.tensors > 65536 || info.tensors > info.body_bytes / min_rec)
        return spl_rej(why, e, SPL_R_HEADER, "%u tensors in a %zu-byte body", info.tensors, info.body_bytes);
    uint8_t *body = NULL;
    size_t blen = 0;
    ts_err ze = {0};
    rc = ts_zstd_decompress(buf + H_END, info.zbody_bytes, info.body_bytes, &body, &blen, &ze);
    if (rc == TS_ETOOBIG) return spl_rej(why, e, SPL_R_ZSTD_BOMB, "%s", ze.msg);
    if (rc == TS_ENOMEM) return ts_fail(e, TS_ENOMEM, "codec: %s", ze.msg);
    if (rc) return spl_rej(why, e, SPL_R_ZSTD, "%s", ze.msg);
    if (blen != info.body_bytes) {
        free(body);
        return spl_rej(why, e, SPL_R_BODY_SIZE, "body decompresses to %zu bytes, declared %zu", blen, info.body_bytes);
    }
    ts_tensor *ts = calloc(info.tensors, sizeof *ts);
    if (!ts) {
        free(body);
        return ts_fail(e, TS_ENOMEM, "codec: out of memory");
    }
    rd r = {body, body + blen};
    for (uint32_t i = 0; i < info.tensors && !rc; i++) {
        if (!need(&r, 2)) {
            rc = spl_rej(why, e, SPL_R_TRUNCATED, "body ends inside record %u", i);
            break;
        }
        size_t nl = ts_get_u16(r.p);
        r.p += 2;
        if (nl < 1 || nl >= TS_MAX_NAME || !need(&r, nl + 1) || memchr(r.p, 0, nl)) {
            rc = spl_rej(why, e, SPL_R_RECORD, "record %u: bad name", i);
            break;
        }
        memcpy(ts[i].name, r.p, nl);
        r.p += nl;
        int nd = *r.p++;
        if (nd != 1 && nd != 2) {
            rc = spl_rej(why, e, SPL_R_RECORD, "record %u: %d dimensions", i, nd);
            break;
        }
        const size_t fixed = 5 * (size_t)nd + 2 + 4 + 4 + 4 * (size_t)p.bins + 8;
        if (!need(&r, fixed)) {
            rc = spl_rej(why, e, SPL_R_TRUNCATED, "body ends inside record %u", i);
            break;
        }
        ts[i].dtype = TS_F32;
        ts[i].ndim = nd;
        for (int d = 0; d < nd; d++, r.p += 4) ts[i].shape[d] = ts_get_u32(r.p);
        r.p += fixed - 4 * (size_t)nd - 8;
        size_t ib = ts_get_u32(r.p), cb = ts_get_u32(r.p + 4);
        r.p += 8;
        if (!need(&r, ib + cb)) {
            rc = spl_rej(why, e, SPL_R_TRUNCATED, "body ends inside record %u's data", i);
            break;
        }
        r.p += ib + cb;
    }
    if (!rc && r.p != r.end) rc = spl_rej(why, e, SPL_R_TRAILING, "bytes after the last record");
    free(body);
    if (!rc) {
        ts_err ce = {0};
        rc = spl_ctx_new(&p, ts, (int)info.tensors, out, &ce);
        if (rc == TS_ENOMEM) rc = ts_fail(e, TS_ENOMEM, "%s", ce.msg);
        else if (rc) rc = spl_rej(why, e, SPL_R_RECORD, "%s", ce.msg);
    }
    free(ts);
    return rc;
}
