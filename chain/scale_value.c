/*
 * scale_value.c - any value of a metadata type, SCALE <-> JSON (md_decode,
 * md_encode; the JSON conventions are in metadata.h).
 *
 * Both directions walk the type registry.  Since the registry comes from the
 * network, the walk is bounded in depth (MD_MAX_DEPTH; a type may refer to
 * itself) and the decoder in the JSON nodes it creates (a budget proportional
 * to the input, so a Vec of empty tuples cannot make a billion nulls); length
 * prefixes are checked against the smallest size their items can take.
 */
#include "chain/metadata.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define SAFE_INT 9007199254740991.0 /* 2^53 - 1: the largest integer a double holds exactly */

/* bytes of each primitive (str: variable) */
static const uint8_t prim_width[] = {1, 4, 0, 1, 2, 4, 8, 16, 32, 1, 2, 4, 8, 16, 32};
static const char *prim_name[] = {"bool", "char", "str", "u8", "u16", "u32", "u64", "u128",
                                  "u256", "i8", "i16", "i32", "i64", "i128", "i256"};

static bool prim_signed(md_prim p) { return p >= MD_I8; }

static bool is_u8(const md_metadata *m, uint32_t id) {
    const md_type *t = md_type_get(m, id);
    return t && t->kind == MD_PRIMITIVE && t->u.prim == MD_U8;
}

static bool fields_named(const md_field *f, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (!f[i].name) return false;
    return n > 0;
}

static uint32_t option_inner(const md_metadata *m, const md_type *t, int depth);

/* True when the JSON form of some value of the type is null, which would make
 * an Option of it ambiguous. */
static bool renders_null(const md_metadata *m, uint32_t id, int depth) {
    const md_type *t = md_type_get(m, id);
    if (!t || depth > MD_MAX_DEPTH) return true;
    switch (t->kind) {
    case MD_TUPLE: return t->u.tuple.ntypes == 0;
    case MD_COMPOSITE:
        if (t->u.composite.nfields == 0) return true;
        if (t->u.composite.nfields == 1 && !t->u.composite.fields[0].name)
            return renders_null(m, t->u.composite.fields[0].type, depth + 1);
        return false;
    case MD_VARIANT: return option_inner(m, t, depth + 1) != MD_NO_TYPE;
    default: return false;
    }
}

/* The T of an Option<T> rendered naturally (null / value), else MD_NO_TYPE. */
static uint32_t option_inner(const md_metadata *m, const md_type *t, int depth) {
    if (t->kind != MD_VARIANT || t->npath != 1 || strcmp(t->path[0], "Option") ||
        t->u.variant.nvariants != 2)
        return MD_NO_TYPE;
    const md_variant *none = md_variant_by_index(t, 0), *some = md_variant_by_index(t, 1);
    if (!none || !some || strcmp(none->name, "None") || strcmp(some->name, "Some") ||
        none->nfields != 0 || some->nfields != 1)
        return MD_NO_TYPE;
    uint32_t inner = some->fields[0].type;
    return renders_null(m, inner, depth + 1) ? MD_NO_TYPE : inner;
}

/* The unsigned primitive a Compact<T> stands for (T itself, or the single
 * field of a newtype such as Perbill). */
static bool compact_prim(const md_metadata *m, uint32_t id, md_prim *p) {
    for (int depth = 0; depth < MD_MAX_DEPTH; depth++) {
        const md_type *t = md_type_get(m, id);
        if (!t) return false;
        if (t->kind == MD_PRIMITIVE) {
            *p = t->u.prim;
            return t->u.prim >= MD_U8 && t->u.prim <= MD_U128;
        }
        if (t->kind == MD_COMPOSITE && t->u.composite.nfields == 1) {
            id = t->u.composite.fields[0].type;
            continue;
        }
        if (t->kind == MD_TUPLE && t->u.tuple.ntypes == 1) {
            id = t->u.tuple.types[0];
            continue;
        }
        return false;
    }
    return false;
}

/* Bytes of one store word of a bit sequence (u8..u64). */
static size_t bitstore_bytes(const md_metadata *m, uint32_t store) {
    const md_type *t = md_type_get(m, store);
    if (!t || t->kind != MD_PRIMITIVE) return 0;
    switch (t->u.prim) {
    case MD_U8: return 1;
    case MD_U16: return 2;
    case MD_U32: return 4;
    case MD_U64: return 8;
    default: return 0;
    }
}

/* ================================================================= decode */

typedef struct {
    const md_metadata *m;
    ts_err *e;
    size_t budget; /* JSON nodes still allowed */
    bool failed;   /* the message is set: outer levels keep it */
} D;

static int d_fail(D *d, scale_reader *r, uint32_t id, int code, const char *why) {
    if (d->failed) return code;
    d->failed = true;
    char name[160];
    md_type_name(d->m, id, name, sizeof name);
    return ts_fail(d->e, code, "at byte %zu: %s (decoding %s)", r->pos, why, name);
}

static int d_reader(D *d, scale_reader *r, uint32_t id) {
    return d_fail(d, r, id, TS_EFORMAT, r->why ? r->why : "malformed input");
}

static int d_nomem(D *d, scale_reader *r, uint32_t id) {
    return d_fail(d, r, id, TS_ENOMEM, "out of memory");
}

static uint64_t load_le(const uint8_t *q, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | q[i];
    return v;
}

/* An integer of n little-endian bytes: a number when exact in a double, else
 * decimal text. */
static cJSON *int_json(const uint8_t *le, size_t n, bool sgn) {
    uint8_t mag[32];
    memcpy(mag, le, n);
    bool neg = sgn && (le[n - 1] & 0x80);
    if (neg) {
        unsigned carry = 1;
        for (size_t i = 0; i < n; i++) {
            unsigned t = (unsigned)(uint8_t)~mag[i] + carry;
            mag[i] = (uint8_t)t;
            carry = t >> 8;
        }
    }
    bool small = true;
    for (size_t i = 8; i < n; i++) small &= mag[i] == 0;
    uint64_t v = load_le(mag, n < 8 ? n : 8);
    if (small && v <= (uint64_t)SAFE_INT) return cJSON_CreateNumber(neg ? -(double)v : (double)v);
    char dec[100];
    if (scale_le_to_dec(le, n, sgn, dec, sizeof dec)) return NULL;
    return cJSON_CreateString(dec);
}

static size_t utf8_put(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static int dec(D *d, uint32_t id, scale_reader *r, cJSON **out, int depth);

static cJSON *hex_json(const uint8_t *p, size_t n) {
    char *h = scale_hex(p, n);
    cJSON *j = h ? cJSON_CreateString(h) : NULL;
    free(h);
    return j;
}

/* Fields of a struct or an enum variant, by the struct rules. */
static int dec_fields(D *d, uint32_t id, const md_field *f, uint32_t n, scale_reader *r,
                      cJSON **out, int depth) {
    if (n == 0) {
        *out = cJSON_CreateNull();
        return *out ? 0 : d_nomem(d, r, id);
    }
    if (n == 1 && !f[0].name) return dec(d, f[0].type, r, out, depth + 1);
    bool named = fields_named(f, n);
    cJSON *c = named ? cJSON_CreateObject() : cJSON_CreateArray();
    if (!c) return d_nomem(d, r, id);
    for (uint32_t i = 0; i < n; i++) {
        cJSON *v;
        int rc = dec(d, f[i].type, r, &v, depth + 1);
        if (rc) {
            cJSON_Delete(c);
            return rc;
        }
        if (named) cJSON_AddItemToObject(c, f[i].name, v);
        else cJSON_AddItemToArray(c, v);
    }
    *out = c;
    return 0;
}

/* n items of one type into a JSON array. */
static int dec_items(D *d, uint32_t id, uint32_t elem, size_t n, scale_reader *r, cJSON **out,
                     int depth) {
    cJSON *a = cJSON_CreateArray();
    if (!a) return d_nomem(d, r, id);
    for (size_t i = 0; i < n; i++) {
        cJSON *v;
        int rc = dec(d, elem, r, &v, depth + 1);
        if (rc) {
            cJSON_Delete(a);
            return rc;
        }
        cJSON_AddItemToArray(a, v);
    }
    *out = a;
    return 0;
}

static int dec(D *d, uint32_t id, scale_reader *r, cJSON **out, int depth) {
    *out = NULL;
    const md_type *t = md_type_get(d->m, id);
    if (!t) return d_fail(d, r, id, TS_EFORMAT, "unknown type id");
    if (depth > MD_MAX_DEPTH) return d_fail(d, r, id, TS_EFORMAT, "types nest too deeply");
    if (d->budget == 0) return d_fail(d, r, id, TS_ETOOBIG, "value too large for its input");
    d->budget--;
    switch (t->kind) {
    case MD_PRIMITIVE: {
        md_prim p = t->u.prim;
        if (p == MD_BOOL) {
            bool b;
            if (scale_get_bool(r, &b)) return d_reader(d, r, id);
            *out = cJSON_CreateBool(b);
        } else if (p == MD_CHAR) {
            uint32_t cp;
            if (scale_get_u32(r, &cp)) return d_reader(d, r, id);
            if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0)
                return d_fail(d, r, id, TS_EFORMAT, "not a Unicode scalar value");
            char s[5] = {0};
            utf8_put(s, cp);
            *out = cJSON_CreateString(s);
        } else if (p == MD_STR) {
            size_t n;
            const uint8_t *q = NULL;
            if (scale_get_len(r, &n, 1, 0) || !(q = scale_get_ptr(r, n))) return d_reader(d, r, id);
            if (!scale_utf8_ok(q, n)) return d_fail(d, r, id, TS_EFORMAT, "string is not valid UTF-8");
            if (memchr(q, 0, n)) { /* a C string cannot hold it: {"hex": "0x..."} */
                cJSON *h = hex_json(q, n);
                *out = h ? cJSON_CreateObject() : NULL;
                if (*out) cJSON_AddItemToObject(*out, "hex", h);
                else cJSON_Delete(h);
            } else {
                char *s = malloc(n + 1);
                if (s) {
                    memcpy(s, q, n);
                    s[n] = 0;
                    *out = cJSON_CreateString(s);
                    free(s);
                }
            }
        } else {
            uint8_t le[32];
            if (scale_get_bytes(r, le, prim_width[p])) return d_reader(d, r, id);
            *out = int_json(le, prim_width[p], prim_signed(p));
        }
        return *out ? 0 : d_nomem(d, r, id);
    }
    case MD_COMPACT: {
        md_prim p;
        if (!compact_prim(d->m, t->u.sequence.type, &p))
            return d_fail(d, r, id, TS_EUNSUPPORTED, "compact of a type that is not an unsigned integer");
        uint8_t le[16];
        if (scale_get_compact_le(r, le)) return d_reader(d, r, id);
        for (size_t i = prim_width[p]; i < 16; i++)
            if (le[i]) return d_fail(d, r, id, TS_EFORMAT, "compact value too large for its type");
        *out = int_json(le, 16, false);
        return *out ? 0 : d_nomem(d, r, id);
    }
    case MD_SEQUENCE: {
        uint32_t elem = t->u.sequence.type;
        size_t n;
        if (is_u8(d->m, elem)) {
            if (scale_get_len(r, &n, 1, 0)) return d_reader(d, r, id);
            const uint8_t *q = scale_get_ptr(r, n);
            if (!q) return d_reader(d, r, id);
            *out = hex_json(q, n);
            return *out ? 0 : d_nomem(d, r, id);
        }
        size_t ms = md_type_min_size(d->m, elem);
        if (scale_get_len(r, &n, ms, SIZE_MAX)) return d_reader(d, r, id);
        if (ms == 0 && n > d->budget) return d_fail(d, r, id, TS_ETOOBIG, "value too large for its input");
        return dec_items(d, id, elem, n, r, out, depth);
    }
    case MD_ARRAY: {
        uint32_t elem = t->u.array.type;
        size_t n = t->u.array.len;
        if (is_u8(d->m, elem)) {
            const uint8_t *q = scale_get_ptr(r, n);
            if (!q) return d_reader(d, r, id);
            *out = hex_json(q, n);
            return *out ? 0 : d_nomem(d, r, id);
        }
        size_t ms = md_type_min_size(d->m, elem);
        if (ms && n > scale_remaining(r) / ms) return d_fail(d, r, id, TS_EFORMAT, "input ends too early");
        if (!ms && n > d->budget) return d_fail(d, r, id, TS_ETOOBIG, "value too large for its input");
        return dec_items(d, id, elem, n, r, out, depth);
    }
    case MD_TUPLE: {
        uint32_t n = t->u.tuple.ntypes;
        if (n == 0) {
            *out = cJSON_CreateNull();
            return *out ? 0 : d_nomem(d, r, id);
        }
        cJSON *a = cJSON_CreateArray();
        if (!a) return d_nomem(d, r, id);
        for (uint32_t i = 0; i < n; i++) {
            cJSON *v;
            int rc = dec(d, t->u.tuple.types[i], r, &v, depth + 1);
            if (rc) {
                cJSON_Delete(a);
                return rc;
            }
            cJSON_AddItemToArray(a, v);
        }
        *out = a;
        return 0;
    }
    case MD_COMPOSITE:
        return dec_fields(d, id, t->u.composite.fields, t->u.composite.nfields, r, out, depth);
    case MD_VARIANT: {
        uint8_t idx;
        if (scale_get_u8(r, &idx)) return d_reader(d, r, id);
        const md_variant *v = md_variant_by_index(t, idx);
        if (!v) {
            char why[64];
            snprintf(why, sizeof why, "no variant with index %u", idx);
            return d_fail(d, r, id, TS_EFORMAT, why);
        }
        uint32_t inner = option_inner(d->m, t, depth);
        if (inner != MD_NO_TYPE) {
            if (idx == 0) {
                *out = cJSON_CreateNull();
                return *out ? 0 : d_nomem(d, r, id);
            }
            return dec(d, inner, r, out, depth + 1);
        }
        cJSON *val;
        int rc = dec_fields(d, id, v->fields, v->nfields, r, &val, depth);
        if (rc) return rc;
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            cJSON_Delete(val);
            return d_nomem(d, r, id);
        }
        cJSON_AddItemToObject(o, v->name, val);
        *out = o;
        return 0;
    }
    case MD_BITSEQ: {
        size_t sb = bitstore_bytes(d->m, t->u.bits.store);
        if (!sb) return d_fail(d, r, id, TS_EUNSUPPORTED, "bit sequence store is not u8..u64");
        uint64_t bits;
        if (scale_get_compact(r, &bits)) return d_reader(d, r, id);
        uint64_t words = bits / (8 * sb) + (bits % (8 * sb) != 0);
        if (words > scale_remaining(r) / sb) return d_fail(d, r, id, TS_EFORMAT, "input ends too early");
        size_t n = (size_t)words * sb;
        const uint8_t *q = scale_get_ptr(r, n);
        if (!q) return d_reader(d, r, id);
        if (bits == (uint64_t)n * 8) {
            *out = hex_json(q, n);
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON *h = hex_json(q, n);
            if (o && h) {
                cJSON_AddNumberToObject(o, "bits", (double)bits);
                cJSON_AddItemToObject(o, "data", h);
                *out = o;
            } else {
                cJSON_Delete(o);
                cJSON_Delete(h);
            }
        }
        return *out ? 0 : d_nomem(d, r, id);
    }
    }
    return d_fail(d, r, id, TS_EFORMAT, "unknown kind of type");
}

int md_decode_value(const md_metadata *m, uint32_t type, scale_reader *r, cJSON **out, ts_err *e) {
    size_t left = scale_remaining(r);
    D d = {.m = m, .e = e, .budget = (left > SIZE_MAX / 16 ? SIZE_MAX / 2 : 8 * left) + 65536};
    return dec(&d, type, r, out, 0);
}

int md_decode(const md_metadata *m, uint32_t type, const uint8_t *p, size_t len, cJSON **out,
              ts_err *e) {
    scale_reader r;
    scale_reader_init(&r, p, len);
    *out = NULL;
    int rc = md_decode_value(m, type, &r, out, e);
    if (rc) return rc;
    if (scale_remaining(&r)) {
        char name[160];
        size_t left = scale_remaining(&r);
        cJSON_Delete(*out);
        *out = NULL;
        return ts_fail(e, TS_EFORMAT, "%zu bytes left over after a %s", left,
                       md_type_name(m, type, name, sizeof name));
    }
    return 0;
}

/* ================================================================= encode */

typedef struct {
    const md_metadata *m;
    ts_err *e;
    scale_writer *w;
    char path[200]; /* where in the value we are: ".hotkey[3]" */
    size_t plen;
    bool failed;
} E;

static int e_fail(E *x, uint32_t id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int e_fail(E *x, uint32_t id, int code, const char *fmt, ...) {
    if (x->failed) return code;
    x->failed = true;
    char msg[300], name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    md_type_name(x->m, id, name, sizeof name);
    if (x->plen)
        return ts_fail(x->e, code, "at %s: %s (type %s)", x->path[0] == '.' ? x->path + 1 : x->path,
                       msg, name);
    return ts_fail(x->e, code, "%s (type %s)", msg, name);
}

static size_t path_push(E *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t path_push(E *x, const char *fmt, ...) {
    size_t old = x->plen;
    if (x->plen + 1 < sizeof x->path) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(x->path + x->plen, sizeof x->path - x->plen, fmt, ap);
        va_end(ap);
        if (n > 0) x->plen = x->plen + (size_t)n < sizeof x->path ? x->plen + (size_t)n : sizeof x->path - 1;
    }
    return old;
}

static void path_pop(E *x, size_t old) {
    x->plen = old;
    x->path[old] = 0;
}

static const char *json_kind(const cJSON *v) {
    if (!v) return "nothing";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an unknown JSON value";
}

static int e_nomem(E *x, uint32_t id) { return e_fail(x, id, TS_ENOMEM, "out of memory"); }

/* An integer from a JSON number or decimal string into width bytes. */
static int json_int(E *x, uint32_t id, const cJSON *v, md_prim p, uint8_t le[32]) {
    size_t width = prim_width[p];
    bool sgn = prim_signed(p);
    memset(le, 0, 32);
    if (cJSON_IsNumber(v)) {
        double dv = v->valuedouble;
        if (!isfinite(dv) || dv != floor(dv)) return e_fail(x, id, TS_EINVAL, "%g is not an integer", dv);
        if (fabs(dv) > SAFE_INT)
            return e_fail(x, id, TS_EINVAL,
                          "%.17g is beyond 2^53 and may have lost digits in JSON: give it as a decimal string", dv);
        int64_t iv = (int64_t)dv;
        if (!sgn && iv < 0) return e_fail(x, id, TS_EINVAL, "%lld is negative", (long long)iv);
        if (width < 8) {
            int64_t lo = sgn ? -((int64_t)1 << (8 * width - 1)) : 0;
            int64_t hi = sgn ? ((int64_t)1 << (8 * width - 1)) - 1 : ((int64_t)1 << (8 * width)) - 1;
            if (iv < lo || iv > hi)
                return e_fail(x, id, TS_EINVAL, "%lld does not fit in %s", (long long)iv, prim_name[p]);
        }
        uint64_t u = (uint64_t)iv;
        for (size_t i = 0; i < width; i++) le[i] = i < 8 ? (uint8_t)(u >> (8 * i)) : (iv < 0 ? 0xff : 0);
        return 0;
    }
    if (cJSON_IsString(v)) {
        if (scale_dec_to_le(v->valuestring, le, width, sgn))
            return e_fail(x, id, TS_EINVAL, "\"%.40s\" is not a decimal integer that fits in %s",
                          v->valuestring, prim_name[p]);
        return 0;
    }
    return e_fail(x, id, TS_EINVAL, "expected an integer (a number or a decimal string), got %s",
                  json_kind(v));
}

/* Bytes from "0x..." hex or an array of numbers 0..255 (or, when want is
 * 32, an SS58 address). */
static int json_bytes(E *x, uint32_t id, const cJSON *v, size_t want, uint8_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        if (want == 32 && !(s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))) {
            uint8_t pk[32];
            if (ts_ss58_decode(pk, s))
                return e_fail(x, id, TS_EINVAL, "\"%.60s\" is neither 0x-hex nor an SS58 address (prefix 42)", s);
            if (!(*out = malloc(32))) return e_nomem(x, id);
            memcpy(*out, pk, 32);
            *n = 32;
            return 0;
        }
        int rc = scale_unhex(s, out, n);
        if (rc == TS_ENOMEM) return e_nomem(x, id);
        if (rc) return e_fail(x, id, TS_EINVAL, "\"%.40s\" is not 0x-prefixed hex of whole bytes", s);
        return 0;
    }
    if (cJSON_IsArray(v)) {
        int cnt = cJSON_GetArraySize(v);
        uint8_t *b = malloc((size_t)cnt + 1);
        if (!b) return e_nomem(x, id);
        int i = 0;
        for (const cJSON *c = v->child; c; c = c->next, i++) {
            if (!cJSON_IsNumber(c) || c->valuedouble != floor(c->valuedouble) || c->valuedouble < 0 ||
                c->valuedouble > 255) {
                free(b);
                return e_fail(x, id, TS_EINVAL, "byte %d is not a number 0..255", i);
            }
            b[i] = (uint8_t)c->valuedouble;
        }
        *out = b;
        *n = (size_t)cnt;
        return 0;
    }
    return e_fail(x, id, TS_EINVAL, "expected bytes (\"0x...\" hex or an array of numbers), got %s",
                  json_kind(v));
}

static int enc(E *x, uint32_t id, const cJSON *v, int depth);

static bool json_is_nothing(const cJSON *v) {
    return cJSON_IsNull(v) || ((cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child);
}

static int enc_fields(E *x, uint32_t id, const md_field *f, uint32_t n, const cJSON *v, int depth) {
    if (n == 0) {
        if (!json_is_nothing(v)) return e_fail(x, id, TS_EINVAL, "expected null (no fields), got %s", json_kind(v));
        return 0;
    }
    if (n == 1 && !f[0].name) return enc(x, f[0].type, v, depth + 1);
    if (fields_named(f, n)) {
        if (!cJSON_IsObject(v))
            return e_fail(x, id, TS_EINVAL, "expected an object with field%s %s%s, got %s", n > 1 ? "s" : "",
                          f[0].name, n > 1 ? ", ..." : "", json_kind(v));
        for (const cJSON *c = v->child; c; c = c->next) {
            bool known = false;
            for (uint32_t i = 0; i < n && !known; i++) known = !strcmp(c->string, f[i].name);
            if (!known) return e_fail(x, id, TS_EINVAL, "unknown field '%.60s'", c->string);
        }
        for (uint32_t i = 0; i < n; i++) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, f[i].name);
            if (!c) return e_fail(x, id, TS_EINVAL, "missing field '%s'", f[i].name);
            size_t old = path_push(x, ".%s", f[i].name);
            int rc = enc(x, f[i].type, c, depth + 1);
            if (rc) return rc;
            path_pop(x, old);
        }
        return 0;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != (int)n)
        return e_fail(x, id, TS_EINVAL, "expected an array of %u values, got %s", n, json_kind(v));
    uint32_t i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        size_t old = path_push(x, "[%u]", i);
        int rc = enc(x, f[i].type, c, depth + 1);
        if (rc) return rc;
        path_pop(x, old);
    }
    return 0;
}

static int enc_items(E *x, uint32_t elem, const cJSON *v, int depth) {
    int i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        size_t old = path_push(x, "[%d]", i);
        int rc = enc(x, elem, c, depth + 1);
        if (rc) return rc;
        path_pop(x, old);
    }
    return 0;
}

static int put(E *x, uint32_t id, const void *p, size_t n) {
    return scale_put(x->w, p, n) ? e_nomem(x, id) : 0;
}

static int enc(E *x, uint32_t id, const cJSON *v, int depth) {
    const md_type *t = md_type_get(x->m, id);
    if (!t) return e_fail(x, id, TS_EFORMAT, "unknown type id %u", id);
    if (depth > MD_MAX_DEPTH) return e_fail(x, id, TS_EFORMAT, "types nest too deeply");
    if (!v) return e_fail(x, id, TS_EINVAL, "no value given");
    switch (t->kind) {
    case MD_PRIMITIVE: {
        md_prim p = t->u.prim;
        if (p == MD_BOOL) {
            if (!cJSON_IsBool(v)) return e_fail(x, id, TS_EINVAL, "expected true or false, got %s", json_kind(v));
            uint8_t b = cJSON_IsTrue(v) ? 1 : 0;
            return put(x, id, &b, 1);
        }
        if (p == MD_STR) {
            const cJSON *h = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "hex") : NULL;
            if (h && !h->next && h == v->child) { /* {"hex": "0x..."}: a string holding NULs */
                uint8_t *b;
                size_t n;
                int rc = json_bytes(x, id, h, 0, &b, &n);
                if (rc) return rc;
                if (!scale_utf8_ok(b, n)) rc = e_fail(x, id, TS_EINVAL, "the bytes are not valid UTF-8");
                else rc = scale_put_vec(x->w, b, n) ? e_nomem(x, id) : 0;
                free(b);
                return rc;
            }
            if (!cJSON_IsString(v)) return e_fail(x, id, TS_EINVAL, "expected a string, got %s", json_kind(v));
            return scale_put_str(x->w, v->valuestring) ? e_nomem(x, id) : 0;
        }
        if (p == MD_CHAR) {
            const uint8_t *s = cJSON_IsString(v) ? (const uint8_t *)v->valuestring : NULL;
            uint32_t cp = 0;
            size_t k = !s ? 0 : s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
                                              : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
            bool ok = s && s[0] && k && strlen((const char *)s) == k;
            if (ok) {
                cp = k == 1 ? s[0] : (uint32_t)(s[0] & (0x7f >> k));
                for (size_t i = 1; i < k; i++) {
                    ok &= (s[i] & 0xc0) == 0x80;
                    cp = cp << 6 | (s[i] & 0x3f);
                }
                char back[5] = {0};
                ok &= cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) && utf8_put(back, cp) == k;
            }
            if (!ok) return e_fail(x, id, TS_EINVAL, "expected a string of one character");
            return scale_put_u32(x->w, cp) ? e_nomem(x, id) : 0;
        }
        uint8_t le[32];
        int rc = json_int(x, id, v, p, le);
        return rc ? rc : put(x, id, le, prim_width[p]);
    }
    case MD_COMPACT: {
        md_prim p;
        if (!compact_prim(x->m, t->u.sequence.type, &p))
            return e_fail(x, id, TS_EUNSUPPORTED, "compact of a type that is not an unsigned integer");
        uint8_t le[32];
        int rc = json_int(x, id, v, p, le);
        if (rc) return rc;
        return scale_put_compact_le(x->w, le, prim_width[p]) ? e_nomem(x, id) : 0;
    }
    case MD_SEQUENCE: {
        uint32_t elem = t->u.sequence.type;
        if (is_u8(x->m, elem)) {
            uint8_t *b;
            size_t n;
            int rc = json_bytes(x, id, v, 0, &b, &n);
            if (rc) return rc;
            rc = scale_put_vec(x->w, b, n) ? e_nomem(x, id) : 0;
            free(b);
            return rc;
        }
        if (!cJSON_IsArray(v)) return e_fail(x, id, TS_EINVAL, "expected an array, got %s", json_kind(v));
        if (scale_put_compact(x->w, (uint64_t)cJSON_GetArraySize(v))) return e_nomem(x, id);
        return enc_items(x, elem, v, depth);
    }
    case MD_ARRAY: {
        uint32_t elem = t->u.array.type, len = t->u.array.len;
        if (is_u8(x->m, elem)) {
            uint8_t *b;
            size_t n;
            int rc = json_bytes(x, id, v, len, &b, &n);
            if (rc) return rc;
            if (n != len) rc = e_fail(x, id, TS_EINVAL, "expected %u bytes, got %zu", len, n);
            else rc = put(x, id, b, n);
            free(b);
            return rc;
        }
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != (int)len || (int)len < 0)
            return e_fail(x, id, TS_EINVAL, "expected an array of %u values, got %s", len, json_kind(v));
        return enc_items(x, elem, v, depth);
    }
    case MD_TUPLE: {
        uint32_t n = t->u.tuple.ntypes;
        if (n == 0) {
            if (!json_is_nothing(v)) return e_fail(x, id, TS_EINVAL, "expected null, got %s", json_kind(v));
            return 0;
        }
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != (int)n)
            return e_fail(x, id, TS_EINVAL, "expected an array of %u values, got %s", n, json_kind(v));
        uint32_t i = 0;
        for (const cJSON *c = v->child; c; c = c->next, i++) {
            size_t old = path_push(x, "[%u]", i);
            int rc = enc(x, t->u.tuple.types[i], c, depth + 1);
            if (rc) return rc;
            path_pop(x, old);
        }
        return 0;
    }
    case MD_COMPOSITE:
        return enc_fields(x, id, t->u.composite.fields, t->u.composite.nfields, v, depth);
    case MD_VARIANT: {
        uint32_t inner = option_inner(x->m, t, depth);
        if (inner != MD_NO_TYPE) {
            uint8_t tag = cJSON_IsNull(v) ? 0 : 1;
            int rc = put(x, id, &tag, 1);
            if (rc) return rc;
            return tag ? enc(x, inner, v, depth + 1) : 0;
        }
        const char *name = NULL;
        const cJSON *val = NULL;
        if (cJSON_IsString(v)) {
            name = v->valuestring;
        } else if (cJSON_IsObject(v) && v->child && !v->child->next) {
            name = v->child->string;
            val = v->child;
        } else {
            return e_fail(x, id, TS_EINVAL, "expected {\"Variant\": value} or \"Variant\", got %s", json_kind(v));
        }
        const md_variant *var = md_variant_by_name(t, name);
        if (!var) return e_fail(x, id, TS_EINVAL, "no variant named '%.60s'", name);
        int rc = put(x, id, &var->index, 1);
        if (rc) return rc;
        if (!val) {
            for (uint32_t i = 0; i < var->nfields; i++)
                if (!md_type_is_empty(x->m, var->fields[i].type))
                    return e_fail(x, id, TS_EINVAL, "variant %s needs a value: {\"%s\": ...}", var->name, var->name);
            return 0;
        }
        size_t old = path_push(x, ".%s", var->name);
        rc = enc_fields(x, id, var->fields, var->nfields, val, depth);
        if (!rc) path_pop(x, old);
        return rc;
    }
    case MD_BITSEQ: {
        size_t sb = bitstore_bytes(x->m, t->u.bits.store);
        if (!sb) return e_fail(x, id, TS_EUNSUPPORTED, "bit sequence store is not u8..u64");
        const cJSON *data = v;
        uint64_t bits = 0;
        bool explicit_bits = cJSON_IsObject(v);
        if (explicit_bits) {
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(v, "bits");
            data = cJSON_GetObjectItemCaseSensitive(v, "data");
            if (!cJSON_IsNumber(b) || b->valuedouble < 0 || b->valuedouble > SAFE_INT ||
                b->valuedouble != floor(b->valuedouble) || !data)
                return e_fail(x, id, TS_EINVAL, "expected {\"bits\": N, \"data\": \"0x...\"}");
            bits = (uint64_t)b->valuedouble;
        }
        uint8_t *bytes;
        size_t n;
        int rc = json_bytes(x, id, data, 0, &bytes, &n);
        if (rc) return rc;
        if (!explicit_bits) bits = (uint64_t)n * 8;
        uint64_t words = bits / (8 * sb) + (bits % (8 * sb) != 0);
        if (words * sb != n) {
            free(bytes);
            return e_fail(x, id, TS_EINVAL, "%zu data bytes do not hold %llu bits in %zu-byte words", n,
                          (unsigned long long)bits, sb);
        }
        rc = scale_put_compact(x->w, bits) || scale_put(x->w, bytes, n) ? e_nomem(x, id) : 0;
        free(bytes);
        return rc;
    }
    }
    return e_fail(x, id, TS_EFORMAT, "unknown kind of type");
}

int md_encode(const md_metadata *m, uint32_t type, const cJSON *v, scale_writer *w, ts_err *e) {
    E x = {.m = m, .e = e, .w = w};
    size_t start = w->len;
    int rc = enc(&x, type, v, 0);
    if (rc && !w->err) w->len = start; /* leave nothing half-written */
    return rc;
}
