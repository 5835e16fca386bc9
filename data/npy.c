/* npy.c - NumPy .npy token shards: a strict parser of the header.
 *
 * Layout (docs/FORMATS.md 5.1.1):
 *   "\x93NUMPY" major minor     versions 1.0, 2.0 and 3.0
 *   header length L             uint16 LE (1.0) or uint32 LE (2.0, 3.0)
 *   L bytes                     a Python dict literal, ASCII (3.0: UTF-8),
 *                               padded with spaces and ending in '\n'
 *   the tokens                  from offset 10 + L (1.0) or 12 + L
 * e.g. {'descr': '<u4', 'fortran_order': False, 'shape': (123456,), }
 *
 * A token shard has exactly the keys 'descr', 'fortran_order' and 'shape'
 * (in any order, each once), dtype '<u2' or '<u4', fortran_order False and a
 * 1-D shape (N,), and the file is exactly offset + N * width bytes.
 *
 * The dict is read by a small recursive-descent parser of the literal subset
 * numpy writes (quoted strings without escapes, True/False, tuples of
 * decimal integers), never by searching for substrings: a crafted header
 * such as {'descr': "'<u4'", ...} or a key hidden inside a string cannot
 * fool it.  Anything outside that subset is refused.  Nothing is allocated:
 * the caller reads the header into memory once its length is checked
 * (data_npy_header_bytes), and the parser only walks those bytes.
 *
 * dtype: only '<u2' and '<u4' are accepted.  '>' is big-endian; '|' ("not
 * applicable") is what numpy writes for 1-byte types only, never for u2/u4;
 * '=' means the writer's native order, which a file cannot tell.  numpy itself
 * always writes '<' for little-endian u2/u4, so refusing the other forms
 * loses no file numpy wrote on a little-endian machine. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "data.h"

#define NPY_PREFIX_V1 10u     /* magic, version, uint16 length */
#define NPY_PREFIX_V2 12u     /* magic, version, uint32 length */
#define NPY_MAX_DIMS 32       /* numpy's NPY_MAXDIMS (1.x) */
#define NPY_STR_MAX 32        /* longest key or dtype string kept */
#define NPY_DIM_SATURATED 1000000000000000000ull /* larger dimensions are not kept exactly */

int data_npy_header_bytes(const uint8_t *buf, size_t n, uint64_t file_bytes, size_t *out,
                          ts_err *e) {
    *out = 0;
    if (n < NPY_PREFIX_V2 && n < file_bytes)
        return ts_fail(e, TS_EINVAL, ".npy header: only %zu bytes of the file given (need 12)", n);
    if (file_bytes < 8) {
        if (file_bytes >= DATA_NPY_MAGIC_BYTES && memcmp(buf, DATA_NPY_MAGIC, DATA_NPY_MAGIC_BYTES))
            return ts_fail(e, TS_EFORMAT, "not a .npy file: bad magic (expected \\x93NUMPY)");
        return ts_fail(e, TS_EFORMAT,
                       "truncated .npy file: %llu bytes, shorter than its 10-byte prefix",
                       (unsigned long long)file_bytes);
    }
    if (memcmp(buf, DATA_NPY_MAGIC, DATA_NPY_MAGIC_BYTES))
        return ts_fail(e, TS_EFORMAT, "not a .npy file: bad magic (expected \\x93NUMPY)");
    unsigned major = buf[6], minor = buf[7];
    if (major < 1 || major > 3 || minor != 0)
        return ts_fail(e, TS_EFORMAT, "unsupported .npy version %u.%u (known: 1.0, 2.0, 3.0)",
                       major, minor);
    size_t prefix = major == 1 ? NPY_PREFIX_V1 : NPY_PREFIX_V2;
    if (file_bytes < prefix)
        return ts_fail(e, TS_EFORMAT,
                       "truncated .npy file: %llu bytes, shorter than its %zu-byte prefix",
                       (unsigned long long)file_bytes, prefix);
    uint32_t len = major == 1 ? ts_get_u16(buf + 8) : ts_get_u32(buf + 8);
    if (len > DATA_NPY_MAX_HEADER)
        return ts_fail(e, TS_EFORMAT, ".npy header length %u exceeds the limit of %u bytes", len,
                       (unsigned)DATA_NPY_MAX_HEADER);
    if (prefix + len > file_bytes)
        return ts_fail(e, TS_EFORMAT,
                       ".npy header length %u goes past the end of the file (%llu bytes)", len,
                       (unsigned long long)file_bytes);
    *out = prefix + len;
    return TS_OK;
}

/* ------------------------------------------------------------ the parser */

typedef struct npy_parser {
    const uint8_t *s;
    size_t n, i;
    ts_err *e;
} npy_parser;

static int syntax(npy_parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int syntax(npy_parser *p, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ts_fail(p->e, TS_EFORMAT, ".npy header: %s (byte %zu of the dict)", what, p->i);
}

static int peek(const npy_parser *p) { return p->i < p->n ? p->s[p->i] : -1; }

static void skip_ws(npy_parser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

/* What the next byte is, for messages. */
static const char *next_desc(const npy_parser *p, char *buf, size_t cap) {
    int c = peek(p);
    if (c < 0) snprintf(buf, cap, "the end of the header");
    else if (c >= 0x21 && c < 0x7f) snprintf(buf, cap, "'%c'", c);
    else snprintf(buf, cap, "byte 0x%02x", c);
    return buf;
}

static int expect(npy_parser *p, char c, const char *where) {
    if (peek(p) == c) {
        p->i++;
        return TS_OK;
    }
    char d[32];
    return syntax(p, "expected '%c' %s, found %s", c, where, next_desc(p, d, sizeof d));
}

/* A quoted string without escapes: printable ASCII only.  out receives at
 * most NPY_STR_MAX bytes (longer strings end in "..."; *too_long is set). */
static int parse_str(npy_parser *p, char out[NPY_STR_MAX + 4], bool *too_long, const char *what) {
    int q = peek(p);
    *too_long = false;
    if (q != '\'' && q != '"') {
        char d[32];
        return syntax(p, "expected %s (a quoted string), found %s", what, next_desc(p, d, sizeof d));
    }
    p->i++;
    size_t k = 0;
    for (;;) {
        int c = peek(p);
        if (c < 0) return syntax(p, "unterminated string");
        if (c == q) break;
        if (c == '\\') return syntax(p, "escape sequences are not accepted in strings");
        if (c < 0x20 || c >= 0x7f) return syntax(p, "byte 0x%02x inside a string", c);
        if (k < NPY_STR_MAX) out[k++] = (char)c;
        else *too_long = true;
        p->i++;
    }
    p->i++;
    if (*too_long) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = 0;
    return TS_OK;
}

static bool is_ident(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool take_word(npy_parser *p, const char *w) {
    size_t k = strlen(w);
    if (p->n - p->i < k || memcmp(p->s + p->i, w, k)) return false;
    if (p->i + k < p->n && is_ident(p->s[p->i + k])) return false;
    p->i += k;
    return true;
}

static int parse_bool(npy_parser *p, bool *v) {
    if (take_word(p, "True")) *v = true;
    else if (take_word(p, "False")) *v = false;
    else {
        char d[32];
        return syntax(p, "the value of 'fortran_order' must be True or False, found %s",
                      next_desc(p, d, sizeof d));
    }
    return TS_OK;
}

/* A decimal integer as Python writes it (no sign, no leading zeros, no '_');
 * values above NPY_DIM_SATURATED saturate (they are refused as too large). */
static int parse_uint(npy_parser *p, uint64_t *v) {
    int c = peek(p);
    if (c < '0' || c > '9') {
        char d[32];
        return syntax(p, "expected a dimension (a non-negative integer), found %s",
                      next_desc(p, d, sizeof d));
    }
    if (c == '0' && p->i + 1 < p->n && p->s[p->i + 1] >= '0' && p->s[p->i + 1] <= '9')
        return syntax(p, "a dimension has a leading zero");
    uint64_t x = 0;
    while ((c = peek(p)) >= '0' && c <= '9') {
        if (x <= NPY_DIM_SATURATED) x = x * 10 + (uint64_t)(c - '0');
        p->i++;
    }
    if (is_ident(c)) return syntax(p, "unexpected '%c' after a dimension", c);
    *v = x;
    return TS_OK;
}

/* A tuple of dimensions: (), (N,), (N, M), ... ("(N)" is an int, not a tuple). */
static int parse_shape(npy_parser *p, uint64_t dims[NPY_MAX_DIMS], int *ndim) {
    *ndim = 0;
    if (peek(p) != '(') {
        char d[32];
        return syntax(p, "the value of 'shape' must be a tuple, found %s", next_desc(p, d, sizeof d));
    }
    p->i++;
    skip_ws(p);
    if (peek(p) == ')') {
        p->i++;
        return TS_OK;
    }
    for (;;) {
        uint64_t v = 0;
        int rc = parse_uint(p, &v);
        if (rc) return rc;
        if (*ndim == NPY_MAX_DIMS) return syntax(p, "the shape has more than %d dimensions", NPY_MAX_DIMS);
        dims[(*ndim)++] = v;
        skip_ws(p);
        if (peek(p) == ',') {
            p->i++;
            skip_ws(p);
            if (peek(p) == ')') break;
            continue;
        }
        if (peek(p) == ')') {
            if (*ndim == 1) return syntax(p, "the value of 'shape' is a parenthesised integer, not a tuple");
            break;
        }
        char d[32];
        return syntax(p, "expected ',' or ')' in the shape, found %s", next_desc(p, d, sizeof d));
    }
    p->i++;
    return TS_OK;
}

enum { KEY_DESCR, KEY_FORTRAN, KEY_SHAPE, NKEYS };
static const char *const key_names[NKEYS] = {"descr", "fortran_order", "shape"};

typedef struct npy_dict {
    bool seen[NKEYS];
    char descr[NPY_STR_MAX + 4];
    bool fortran;
    uint64_t dims[NPY_MAX_DIMS];
    int ndim;
} npy_dict;

static int parse_dict(npy_parser *p, npy_dict *d) {
    memset(d, 0, sizeof *d);
    skip_ws(p);
    int rc = expect(p, '{', "at the start of the dict");
    if (rc) return rc;
    skip_ws(p);
    while (peek(p) != '}') {
        char key[NPY_STR_MAX + 4];
        bool long_key;
        rc = parse_str(p, key, &long_key, "a key");
        if (rc) return rc;
        int k = 0;
        while (k < NKEYS && (long_key || strcmp(key, key_names[k]))) k++;
        if (k == NKEYS) return ts_fail(p->e, TS_EFORMAT, ".npy header: unknown key '%s'", key);
        if (d->seen[k]) return ts_fail(p->e, TS_EFORMAT, ".npy header: duplicate key '%s'", key);
        d->seen[k] = true;
        skip_ws(p);
        rc = expect(p, ':', "after a key");
        if (rc) return rc;
        skip_ws(p);
        if (k == KEY_DESCR) {
            bool long_descr;
            rc = parse_str(p, d->descr, &long_descr, "the value of 'descr'");
        } else if (k == KEY_FORTRAN) {
            rc = parse_bool(p, &d->fortran);
        } else {
            rc = parse_shape(p, d->dims, &d->ndim);
        }
        if (rc) return rc;
        skip_ws(p);
        if (peek(p) == ',') {
            p->i++;
            skip_ws(p);
        } else if (peek(p) != '}') {
            char nd[32];
            return syntax(p, "expected ',' or '}' after the value of '%s', found %s", key_names[k],
                          next_desc(p, nd, sizeof nd));
        }
    }
    p->i++;
    skip_ws(p);
    if (p->i != p->n) {
        char nd[32];
        return syntax(p, "unexpected %s after the dict", next_desc(p, nd, sizeof nd));
    }
    return TS_OK;
}

/* "(3, 4)" for messages (cut short for many dimensions). */
static void shape_text(char *buf, size_t cap, const uint64_t *dims, int ndim) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && k + 24 < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    snprintf(buf + k, cap - k, "%s)", ndim == 1 ? "," : "");
}

int data_npy_check(const uint8_t *buf, size_t n, uint64_t file_bytes, data_shard_info *info,
                   ts_err *e) {
    memset(info, 0, sizeof *info);
    info->file_bytes = file_bytes;
    info->format = DATA_FMT_NPY;
    size_t hbytes;
    int rc = data_npy_header_bytes(buf, n, file_bytes, &hbytes, e);
    if (rc) return rc;
    if (n < hbytes)
        return ts_fail(e, TS_EINVAL, ".npy header: only %zu of its %zu bytes given", n, hbytes);
    info->version = buf[6];
    size_t prefix = info->version == 1 ? NPY_PREFIX_V1 : NPY_PREFIX_V2;
    npy_parser p = {.s = buf + prefix, .n = hbytes - prefix, .i = 0, .e = e};
    if (p.n == 0 || p.s[p.n - 1] != '\n')
        return ts_fail(e, TS_EFORMAT, ".npy header does not end in a newline");
    npy_dict d;
    rc = parse_dict(&p, &d);
    if (rc) return rc;
    for (int k = 0; k < NKEYS; k++)
        if (!d.seen[k]) return ts_fail(e, TS_EFORMAT, ".npy header: missing key '%s'", key_names[k]);
    if (!strcmp(d.descr, "<u2")) info->width = 2;
    else if (!strcmp(d.descr, "<u4")) info->width = 4;
    else
        return ts_fail(e, TS_EFORMAT,
                       ".npy dtype '%s' is not a token type (accepted: '<u2', '<u4': little-endian "
                       "uint16, uint32)",
                       d.descr);
    if (d.fortran)
        return ts_fail(e, TS_EFORMAT, ".npy array in Fortran order (fortran_order True) is not accepted");
    if (d.ndim != 1) {
        char s[128];
        shape_text(s, sizeof s, d.dims, d.ndim);
        return ts_fail(e, TS_EFORMAT, ".npy shape %s is %d-D%s: a token shard is 1-D, (N,)", s, d.ndim,
                       d.ndim == 0 ? " (a scalar)" : "");
    }
    if (d.dims[0] > NPY_DIM_SATURATED)
        return ts_fail(e, TS_EFORMAT, ".npy shape (N,) with N over 10^18 exceeds the shard limit of %u tokens",
                       DATA_MAX_SHARD_TOKENS);
    if (d.dims[0] > DATA_MAX_SHARD_TOKENS)
        return ts_fail(e, TS_EFORMAT, ".npy shape (%llu,) exceeds the shard limit of %u tokens",
                       (unsigned long long)d.dims[0], DATA_MAX_SHARD_TOKENS);
    info->ntokens = d.dims[0];
    info->data_offset = hbytes;
    info->vocab_size = 0;
    info->tokenizer = DATA_TOK_UNKNOWN;
    return data_shard_check_size(info, hbytes, file_bytes, ".npy ", "shape", e);
}
