/*
 * scale.c - SCALE reading and writing, decimal text for integers wider than
 * 64 bits, xxHash64/TwoX and BLAKE2b storage hashers (see scale.h).
 *
 * The reader is the first line of defence against a hostile node: every read
 * checks the bytes left, compact integers must be in their shortest form, and
 * length prefixes are compared with what remains before a caller allocates.
 */
#include "chain/scale.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* ------------------------------------------------------------------ reader */

void scale_reader_init(scale_reader *r, const void *p, size_t len) {
    r->p = p;
    r->len = p ? len : 0;
    r->pos = 0;
    r->err = 0;
    r->why = NULL;
}

size_t scale_remaining(const scale_reader *r) { return r->err ? 0 : r->len - r->pos; }

int scale_fail(scale_reader *r, const char *why) {
    if (!r->err) {
        r->err = TS_EFORMAT;
        r->why = why;
    }
    return TS_EFORMAT;
}

const uint8_t *scale_get_ptr(scale_reader *r, size_t n) {
    if (r->err) return NULL;
    if (n == 0) return r->p ? r->p + r->pos : (const uint8_t *)""; /* never NULL on success */
    if (n > r->len - r->pos) {
        scale_fail(r, "input ends too early");
        return NULL;
    }
    const uint8_t *q = r->p + r->pos;
    r->pos += n;
    return q;
}

int scale_get_bytes(scale_reader *r, void *dst, size_t n) {
    const uint8_t *q = scale_get_ptr(r, n);
    if (!q) {
        if (n) memset(dst, 0, n);
        return r->err;
    }
    if (n) memcpy(dst, q, n);
    return 0;
}

static uint64_t load_le(const uint8_t *q, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | q[i];
    return v;
}

int scale_get_u8(scale_reader *r, uint8_t *v) {
    const uint8_t *q = scale_get_ptr(r, 1);
    *v = q ? q[0] : 0;
    return q ? 0 : r->err;
}

int scale_get_u16(scale_reader *r, uint16_t *v) {
    const uint8_t *q = scale_get_ptr(r, 2);
    *v = q ? (uint16_t)load_le(q, 2) : 0;
    return q ? 0 : r->err;
}

int scale_get_u32(scale_reader *r, uint32_t *v) {
    const uint8_t *q = scale_get_ptr(r, 4);
    *v = q ? (uint32_t)load_le(q, 4) : 0;
    return q ? 0 : r->err;
}

int scale_get_u64(scale_reader *r, uint64_t *v) {
    const uint8_t *q = scale_get_ptr(r, 8);
    *v = q ? load_le(q, 8) : 0;
    return q ? 0 : r->err;
}

int scale_get_bool(scale_reader *r, bool *v) {
    uint8_t b;
    *v = false;
    if (scale_get_u8(r, &b)) return r->err;
    if (b > 1) return scale_fail(r, "bool byte is neither 0 nor 1");
    *v = b == 1;
    return 0;
}

int scale_get_option(scale_reader *r, bool *some) {
    uint8_t b;
    *some = false;
    if (scale_get_u8(r, &b)) return r->err;
    if (b > 1) return scale_fail(r, "Option tag is neither 0 nor 1");
    *some = b == 1;
    return 0;
}

int scale_get_compact_le(scale_reader *r, uint8_t out[16]) {
    memset(out, 0, 16);
    uint8_t b;
    if (scale_get_u8(r, &b)) return r->err;
    switch (b & 3) {
    case 0:
        out[0] = b >> 2;
        return 0;
    case 1: {
        uint8_t b2;
        if (scale_get_u8(r, &b2)) return r->err;
        uint32_t v = ((uint32_t)b | (uint32_t)b2 << 8) >> 2;
        if (v < 64) return scale_fail(r, "non-canonical compact integer");
        out[0] = (uint8_t)v;
        out[1] = (uint8_t)(v >> 8);
        return 0;
    }
    case 2: {
        uint8_t rest[3];
        if (scale_get_bytes(r, rest, 3)) return r->err;
        uint32_t v = ((uint32_t)b | (uint32_t)rest[0] << 8 | (uint32_t)rest[1] << 16 |
                      (uint32_t)rest[2] << 24) >> 2;
        if (v < (1u << 14)) return scale_fail(r, "non-canonical compact integer");
        for (int i = 0; i < 4; i++) out[i] = (uint8_t)(v >> (8 * i));
        return 0;
    }
    default: {
        size_t n = (size_t)(b >> 2) + 4;
        if (n > 16) return scale_fail(r, "compact integer wider than 128 bits");
        if (scale_get_bytes(r, out, n)) {
            memset(out, 0, 16);
            return r->err;
        }
        bool canonical = n == 4 ? load_le(out, 4) >= (1u << 30) : out[n - 1] != 0;
        if (!canonical) {
            memset(out, 0, 16);
            return scale_fail(r, "non-canonical compact integer");
        }
        return 0;
    }
    }
}

int scale_get_compact(scale_reader *r, uint64_t *v) {
    uint8_t le[16];
    *v = 0;
    if (scale_get_compact_le(r, le)) return r->err;
    for (int i = 8; i < 16; i++)
        if (le[i]) return scale_fail(r, "compact integer does not fit in 64 bits");
    *v = load_le(le, 8);
    return 0;
}

int scale_get_compact_u32(scale_reader *r, uint32_t *v) {
    uint64_t x;
    *v = 0;
    if (scale_get_compact(r, &x)) return r->err;
    if (x > UINT32_MAX) return scale_fail(r, "compact integer does not fit in 32 bits");
    *v = (uint32_t)x;
    return 0;
}

int scale_get_len(scale_reader *r, size_t *n, size_t min_item, size_t max_zero_items) {
    uint64_t x;
    *n = 0;
    if (scale_get_compact(r, &x)) return r->err;
    size_t left = r->len - r->pos;
    if (min_item ? x > left / min_item : x > max_zero_items)
        return scale_fail(r, "length prefix larger than the input that remains");
    *n = (size_t)x;
    return 0;
}

/* Well-formed UTF-8 (no overlong forms, surrogates or values past U+10FFFF). */
bool scale_utf8_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) k = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0) k = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0) k = 3, cp = c & 0x07, min = 0x10000;
        else return false;
        if (n - i <= k) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += k + 1;
    }
    return true;
}

int scale_get_str(scale_reader *r, char **s, size_t *len) {
    size_t n;
    *s = NULL;
    if (len) *len = 0;
    if (scale_get_len(r, &n, 1, 0)) return r->err;
    const uint8_t *q = scale_get_ptr(r, n);
    if (!q) return r->err;
    if (memchr(q, 0, n)) return scale_fail(r, "string holds a NUL byte");
    if (!scale_utf8_ok(q, n)) return scale_fail(r, "string is not valid UTF-8");
    char *c = malloc(n + 1);
    if (!c) return TS_ENOMEM;
    memcpy(c, q, n);
    c[n] = 0;
    *s = c;
    if (len) *len = n;
    return 0;
}

/* ------------------------------------------------------------------ writer */

void scale_writer_init(scale_writer *w) { memset(w, 0, sizeof *w); }

void scale_writer_free(scale_writer *w) {
    free(w->p);
    memset(w, 0, sizeof *w);
}

uint8_t *scale_writer_take(scale_writer *w, size_t *len) {
    uint8_t *p = w->p;
    if (len) *len = w->len;
    memset(w, 0, sizeof *w);
    return p;
}

int scale_put(scale_writer *w, const void *p, size_t n) {
    if (w->err) return w->err;
    if (n > SIZE_MAX / 2 - w->len) return w->err = TS_ENOMEM;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 64;
        while (cap < w->len + n) cap *= 2;
        uint8_t *np = realloc(w->p, cap);
        if (!np) return w->err = TS_ENOMEM;
        w->p = np;
        w->cap = cap;
    }
    if (n) memcpy(w->p + w->len, p, n);
    w->len += n;
    return 0;
}

static int put_le(scale_writer *w, uint64_t v, size_t n) {
    uint8_t b[8];
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
    return scale_put(w, b, n);
}

int scale_put_u8(scale_writer *w, uint8_t v) { return scale_put(w, &v, 1); }
int scale_put_u16(scale_writer *w, uint16_t v) { return put_le(w, v, 2); }
int scale_put_u32(scale_writer *w, uint32_t v) { return put_le(w, v, 4); }
int scale_put_u64(scale_writer *w, uint64_t v) { return put_le(w, v, 8); }
int scale_put_bool(scale_writer *w, bool v) { return scale_put_u8(w, v ? 1 : 0); }

int scale_put_compact_le(scale_writer *w, const uint8_t *le, size_t n) {
    if (n > 16) {
        for (size_t i = 16; i < n; i++)
            if (le[i]) return TS_EINVAL;
        n = 16;
    }
    size_t used = n;
    while (used > 0 && le[used - 1] == 0) used--;
    if (used <= 4) {
        uint64_t v = load_le(le, used);
        if (v < 64) return scale_put_u8(w, (uint8_t)(v << 2));
        if (v < (1u << 14)) return put_le(w, v << 2 | 1, 2);
        if (v < (1u << 30)) return put_le(w, v << 2 | 2, 4);
        used = 4;
    }
    uint8_t head = (uint8_t)(((used - 4) << 2) | 3);
    if (scale_put_u8(w, head)) return w->err;
    return scale_put(w, le, used);
}

int scale_put_compact(scale_writer *w, uint64_t v) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(v >> (8 * i));
    return scale_put_compact_le(w, le, 8);
}

int scale_put_vec(scale_writer *w, const void *p, size_t n) {
    if (scale_put_compact(w, n)) return w->err;
    return scale_put(w, p, n);
}

int scale_put_str(scale_writer *w, const char *s) { return scale_put_vec(w, s, strlen(s)); }

/* ------------------------------------------------- big integers as text */

#define BIG_MAX 64 /* bytes: up to 512-bit integers */

int scale_le_to_dec(const uint8_t *le, size_t n, bool is_signed, char *out, size_t cap) {
    if (n > BIG_MAX || cap < 2) return TS_EINVAL;
    uint8_t v[BIG_MAX];
    memcpy(v, le, n);
    bool neg = is_signed && n > 0 && (v[n - 1] & 0x80);
    if (neg) { /* two's complement magnitude */
        unsigned carry = 1;
        for (size_t i = 0; i < n; i++) {
            unsigned t = (unsigned)(uint8_t)~v[i] + carry;
            v[i] = (uint8_t)t;
            carry = t >> 8;
        }
    }
    char tmp[BIG_MAX * 3 + 2];
    size_t nd = 0;
    size_t top = n;
    while (top > 0 && v[top - 1] == 0) top--;
    while (top > 0) {
        unsigned rem = 0;
        for (size_t i = top; i-- > 0;) {
            unsigned cur = rem << 8 | v[i];
            v[i] = (uint8_t)(cur / 10);
            rem = cur % 10;
        }
        tmp[nd++] = (char)('0' + rem);
        while (top > 0 && v[top - 1] == 0) top--;
    }
    if (nd == 0) tmp[nd++] = '0';
    if (nd + (neg ? 1 : 0) + 1 > cap) return TS_ETOOBIG;
    size_t o = 0;
    if (neg) out[o++] = '-';
    while (nd > 0) out[o++] = tmp[--nd];
    out[o] = 0;
    return 0;
}

int scale_dec_to_le(const char *s, uint8_t *le, size_t n, bool is_signed) {
    if (!s || n == 0 || n > BIG_MAX) return TS_EINVAL;
    bool neg = false;
    if (*s == '-') {
        if (!is_signed) return TS_EINVAL;
        neg = true;
        s++;
    }
    if (!*s) return TS_EINVAL;
    uint8_t v[BIG_MAX] = {0};
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9') return TS_EINVAL;
        unsigned carry = (unsigned)(*c - '0');
        for (size_t i = 0; i < n; i++) {
            unsigned t = (unsigned)v[i] * 10 + carry;
            v[i] = (uint8_t)t;
            carry = t >> 8;
        }
        if (carry) return TS_EINVAL;
    }
    if (is_signed && (v[n - 1] & 0x80)) {
        /* only -2^(8n-1) itself may have the top bit set */
        bool min = neg && v[n - 1] == 0x80;
        for (size_t i = 0; min && i + 1 < n; i++) min = v[i] == 0;
        if (!min) return TS_EINVAL;
    }
    if (neg) {
        unsigned carry = 1;
        for (size_t i = 0; i < n; i++) {
            unsigned t = (unsigned)(uint8_t)~v[i] + carry;
            v[i] = (uint8_t)t;
            carry = t >> 8;
        }
    }
    memcpy(le, v, n);
    return 0;
}

char *scale_hex(const void *p, size_t n) {
    static const char digits[] = "0123456789abcdef";
    if (n > (SIZE_MAX - 3) / 2) return NULL;
    char *s = malloc(2 * n + 3);
    if (!s) return NULL;
    const uint8_t *b = p;
    s[0] = '0';
    s[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        s[2 + 2 * i] = digits[b[i] >> 4];
        s[3 + 2 * i] = digits[b[i] & 15];
    }
    s[2 + 2 * n] = 0;
    return s;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int scale_unhex(const char *s, uint8_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!s || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) return TS_EINVAL;
    s += 2;
    size_t len = strlen(s);
    if (len % 2) return TS_EINVAL;
    uint8_t *b = malloc(len / 2 + 1);
    if (!b) return TS_ENOMEM;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return TS_EINVAL;
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = b;
    *n = len / 2;
    return 0;
}

/* ------------------------------------------------------------------ hashes */

#define XXP1 0x9E3779B185EBCA87ull
#define XXP2 0xC2B2AE3D27D4EB4Full
#define XXP3 0x165667B19E3779F9ull
#define XXP4 0x85EBCA77C2B2AE63ull
#define XXP5 0x27D4EB2F165667C5ull

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static uint64_t xx_round(uint64_t acc, uint64_t lane) {
    acc += lane * XXP2;
    return rotl64(acc, 31) * XXP1;
}

static uint64_t xx_merge(uint64_t h, uint64_t v) {
    h ^= xx_round(0, v);
    return h * XXP1 + XXP4;
}

uint64_t scale_xxh64(const void *data, size_t n, uint64_t seed) {
    const uint8_t *p = data;
    const uint8_t *end = p + n;
    uint64_t h;
    if (n >= 32) {
        uint64_t v1 = seed + XXP1 + XXP2, v2 = seed + XXP2, v3 = seed, v4 = seed - XXP1;
        while (end - p >= 32) {
            v1 = xx_round(v1, load_le(p, 8));
            v2 = xx_round(v2, load_le(p + 8, 8));
            v3 = xx_round(v3, load_le(p + 16, 8));
            v4 = xx_round(v4, load_le(p + 24, 8));
            p += 32;
        }
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xx_merge(h, v1);
        h = xx_merge(h, v2);
        h = xx_merge(h, v3);
        h = xx_merge(h, v4);
    } else {
        h = seed + XXP5;
    }
    h += (uint64_t)n;
    while (end - p >= 8) {
        h ^= xx_round(0, load_le(p, 8));
        h = rotl64(h, 27) * XXP1 + XXP4;
        p += 8;
    }
    if (end - p >= 4) {
        h ^= load_le(p, 4) * XXP1;
        h = rotl64(h, 23) * XXP2 + XXP3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)*p++ * XXP5;
        h = rotl64(h, 11) * XXP1;
    }
    h ^= h >> 33;
    h *= XXP2;
    h ^= h >> 29;
    h *= XXP3;
    h ^= h >> 32;
    return h;
}

static void twox(const void *p, size_t n, uint8_t *out, int lanes) {
    for (int s = 0; s < lanes; s++) {
        uint64_t h = scale_xxh64(p, n, (uint64_t)s);
        for (int i = 0; i < 8; i++) out[8 * s + i] = (uint8_t)(h >> (8 * i));
    }
}

void scale_twox64(const void *p, size_t n, uint8_t out[8]) { twox(p, n, out, 1); }
void scale_twox128(const void *p, size_t n, uint8_t out[16]) { twox(p, n, out, 2); }
void scale_twox256(const void *p, size_t n, uint8_t out[32]) { twox(p, n, out, 4); }

void scale_blake2_128(const void *p, size_t n, uint8_t out[16]) {
    crypto_generichash(out, 16, p, n, NULL, 0);
}

void scale_blake2_256(const void *p, size_t n, uint8_t out[32]) {
    crypto_generichash(out, 32, p, n, NULL, 0);
}

const char *scale_hasher_name(int h) {
    static const char *names[] = {"Blake2_128", "Blake2_256", "Blake2_128Concat", "Twox128",
                                  "Twox256", "Twox64Concat", "Identity"};
    return h >= 0 && h < SCALE_HASH_COUNT ? names[h] : "?";
}

size_t scale_hasher_hash_len(int h) {
    static const size_t lens[] = {16, 32, 16, 16, 32, 8, 0};
    return h >= 0 && h < SCALE_HASH_COUNT ? lens[h] : 0;
}

bool scale_hasher_concat(int h) {
    return h == SCALE_HASH_BLAKE2_128_CONCAT || h == SCALE_HASH_TWOX64_CONCAT ||
           h == SCALE_HASH_IDENTITY;
}

int scale_put_hashed(scale_writer *w, int h, const uint8_t *key, size_t n) {
    uint8_t d[32];
    switch (h) {
    case SCALE_HASH_BLAKE2_128:
    case SCALE_HASH_BLAKE2_128_CONCAT: scale_blake2_128(key, n, d); break;
    case SCALE_HASH_BLAKE2_256: scale_blake2_256(key, n, d); break;
    case SCALE_HASH_TWOX128: scale_twox128(key, n, d); break;
    case SCALE_HASH_TWOX256: scale_twox256(key, n, d); break;
    case SCALE_HASH_TWOX64_CONCAT: scale_twox64(key, n, d); break;
    case SCALE_HASH_IDENTITY: break;
    default: return TS_EINVAL;
    }
    if (scale_put(w, d, scale_hasher_hash_len(h))) return w->err;
    return scale_hasher_concat(h) ? scale_put(w, key, n) : 0;
}

int scale_put_storage_prefix(scale_writer *w, const char *pallet_prefix, const char *item) {
    uint8_t d[32];
    scale_twox128(pallet_prefix, strlen(pallet_prefix), d);
    scale_twox128(item, strlen(item), d + 16);
    return scale_put(w, d, 32);
}
