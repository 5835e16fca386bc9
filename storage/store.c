/* store.c - the storage front end: URLs, options, key rules, dispatch to the
 * file and s3 backends, collected listings and retention. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "storage/internal.h"

/* ------------------------------------------------------------------ keys */

int store_key_check(const char *key, ts_err *e) {
    if (!key || !*key) return ts_fail(e, TS_EINVAL, "empty object key");
    size_t n = strlen(key);
    if (n > STORE_KEY_MAX)
        return ts_fail(e, TS_EINVAL, "object key of %zu bytes, over the limit of %d", n,
                       STORE_KEY_MAX);
    const char *seg = key;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (i < n && (c < 0x20 || c == 0x7f))
            return ts_fail(e, TS_EINVAL, "object key has a control character (byte 0x%02x at %zu)",
                           c, i);
        if (c == '/' || c == 0) {
            size_t len = (size_t)(key + i - seg);
            if (len == 0)
                return ts_fail(e, TS_EINVAL, "object key '%.200s' has an empty segment", key);
            if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
                return ts_fail(e, TS_EINVAL, "object key '%.200s' has a '.' or '..' segment", key);
            seg = key + i + 1;
        }
    }
    /* UTF-8 well-formedness (S3 keys are UTF-8). */
    const unsigned char *p = (const unsigned char *)key;
    while (*p) {
        int extra = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2
                  : (*p & 0xf8) == 0xf0 ? 3 : -1;
        if (extra < 0 || (extra == 1 && *p < 0xc2))
            return ts_fail(e, TS_EINVAL, "object key is not valid UTF-8");
        uint32_t cp = extra == 0 ? *p : extra == 1 ? (*p & 0x1fu) : extra == 2 ? (*p & 0x0fu) : (*p & 0x07u);
        for (int k = 1; k <= extra; k++) {
            if ((p[k] & 0xc0) != 0x80) return ts_fail(e, TS_EINVAL, "object key is not valid UTF-8");
            cp = (cp << 6) | (p[k] & 0x3fu);
        }
        if ((extra == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return ts_fail(e, TS_EINVAL, "object key is not valid UTF-8");
        p += 1 + extra;
    }
    return TS_OK;
}

/* A prefix for listing may end in '/' or be a partial segment; it must not
 * contain what no key can. */
static int prefix_check(const char *prefix, ts_err *e) {
    if (!prefix || !*prefix) return TS_OK;
    size_t n = strlen(prefix);
    if (n > STORE_KEY_MAX) return ts_fail(e, TS_EINVAL, "prefix over %d bytes", STORE_KEY_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)prefix[i];
        if (c < 0x20 || c == 0x7f) return ts_fail(e, TS_EINVAL, "prefix has a control character");
    }
    if (prefix[0] == '/') return ts_fail(e, TS_EINVAL, "prefix '%.200s' starts with '/'", prefix);
    return TS_OK;
}

/* ------------------------------------------------------------------- URLs */

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes %XX escapes of in[0..n) into out; -1 on a bad escape, a NUL or no room. */
int store_pct_decode(const char *in, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)in[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (c == 0 || o + 1 >= cap) return -1;
        out[o++] = (char)c;
    }
    out[o] = 0;
    return (int)o;
}

int store_parse_file_url(const char *url, char *out, size_t cap, ts_err *e) {
    if (strncmp(url, "file://", 7))
        return ts_fail(e, TS_EINVAL, "not a file:// URL");
    const char *p = url + 7;
    if (*p != '/')
        return ts_fail(e, TS_EINVAL,
                       "file store URL needs an absolute path: file:///abs/path (got '%.200s')", url);
    if (strchr(p, '?') || strchr(p, '#'))
        return ts_fail(e, TS_EINVAL, "file store URL takes no query or fragment");
    if (store_pct_decode(p, strlen(p), out, cap) < 0)
        return ts_fail(e, TS_EINVAL, "file store URL has a bad %%-escape or is too long");
    /* drop trailing slashes (but keep "/") */
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') out[--n] = 0;
    return TS_OK;
}

static bool bucket_ok(const char *b) {
    size_t n = strlen(b);
    if (n < 3 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
    }
    return isalnum((unsigned char)b[0]) && isalnum((unsigned char)b[n - 1]);
}

static bool region_ok(const char *r) {
    if (!*r || strlen(r) > 63) return false;
    for (; *r; r++)
        if (!(isalnum((unsigned char)*r) || *r == '-' || *r == '_')) return false;
    return true;
}

/* scheme://host[:port] with an optional trailing '/', nothing else. */
static int endpoint_parse(const char *v, char *out, size_t cap, ts_err *e) {
    const char *rest;
    if (!strncmp(v, "https://", 8)) rest = v + 8;
    else if (!strncmp(v, "http://", 7)) rest = v + 7;
    else return ts_fail(e, TS_EINVAL, "endpoint '%.200s' must start with https:// or http://", v);
    size_t n = strlen(rest);
    while (n && rest[n - 1] == '/') n--;
    if (!n) return ts_fail(e, TS_EINVAL, "endpoint '%.200s' has no host", v);
    for (size_t i = 0; i < n; i++) {
        char c = rest[i];
        if (!(isalnum((unsigned char)c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
            return ts_fail(e, TS_EINVAL,
                           "endpoint '%.200s' must be scheme://host[:port] (no path, user or query)", v);
    }
    if ((size_t)(rest - v) + n + 1 > cap) return ts_fail(e, TS_EINVAL, "endpoint too long");
    memcpy(out, v, (size_t)(rest - v) + n);
    out[(size_t)(rest - v) + n] = 0;
    return TS_OK;
}

int store_parse_s3_url(const char *url, store_s3_url *u, ts_err *e) {
    memset(u, 0, sizeof *u);
    if (strncmp(url, "s3://", 5)) return ts_fail(e, TS_EINVAL, "not an s3:// URL");
    if (strlen(url) >= STORE_URL_MAX)
        return ts_fail(e, TS_EINVAL, "store URL longer than %d bytes", STORE_URL_MAX - 1);
    const char *p = url + 5;
    const char *q = strchr(p, '?');
    const char *pend = q ? q : p + strlen(p);
    if (memchr(p, '#', (size_t)(pend - p))) return ts_fail(e, TS_EINVAL, "s3 URL has a fragment");
    /* user info: everything up to the last '@' before the path */
    const char *slash = memchr(p, '/', (size_t)(pend - p));
    const char *hostend = slash ? slash : pend;
    const char *at = NULL;
    for (const char *c = p; c < hostend; c++)
        if (*c == '@') at = c;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) return ts_fail(e, TS_EINVAL, "s3 URL credentials must be ACCESS:SECRET@");
        if (store_pct_decode(p, (size_t)(colon - p), u->access_key, sizeof u->access_key) <= 0 ||
            store_pct_decode(colon + 1, (size_t)(at - colon - 1), u->secret_key,
                             sizeof u->secret_key) <= 0)
            return ts_fail(e, TS_EINVAL, "s3 URL credentials are empty, too long or badly escaped");
        u->has_userinfo = true;
        p = at + 1;
    }
    size_t blen = (size_t)(hostend - p);
    if (blen == 0 || blen >= sizeof u->bucket)
        return ts_fail(e, TS_EINVAL, "s3 URL needs a bucket name of 3 to 63 characters");
    memcpy(u->bucket, p, blen);
    u->bucket[blen] = 0;
    if (!bucket_ok(u->bucket))
        return ts_fail(e, TS_EINVAL,
                       "bad bucket name '%s' (3-63 of a-z 0-9 . -, starting and ending with a letter or digit)",
                       u->bucket);
    if (slash) {
        const char *pp = slash;
        while (pp < pend && *pp == '/') pp++;
        size_t plen = (size_t)(pend - pp);
        while (plen && pp[plen - 1] == '/') plen--;
        if (plen) {
            if (store_pct_decode(pp, plen, u->prefix, sizeof u->prefix) < 0)
                return ts_fail(e, TS_EINVAL, "s3 URL prefix is badly escaped or too long");
            if (store_key_check(u->prefix, e)) return ts_wrap(e, "s3 URL prefix");
        }
    }
    if (q) {
        const char *s = q + 1;
        while (*s) {
            const char *amp = strchr(s, '&');
            size_t len = amp ? (size_t)(amp - s) : strlen(s);
            const char *eq = memchr(s, '=', len);
            if (!eq) return ts_fail(e, TS_EINVAL, "s3 URL parameter '%.*s' has no value", (int)len, s);
            char name[32], val[512];
            if (store_pct_decode(s, (size_t)(eq - s), name, sizeof name) < 0 ||
                store_pct_decode(eq + 1, len - (size_t)(eq - s) - 1, val, sizeof val) < 0)
                return ts_fail(e, TS_EINVAL, "s3 URL parameter is badly escaped or too long");
            if (!strcmp(name, "endpoint")) {
                if (endpoint_parse(val, u->endpoint, sizeof u->endpoint, e)) return e ? e->code : TS_EINVAL;
                u->has_endpoint = true;
            } else if (!strcmp(name, "region")) {
                if (!region_ok(val)) return ts_fail(e, TS_EINVAL, "bad region '%.64s'", val);
                snprintf(u->region, sizeof u->region, "%s", val);
            } else {
                return ts_fail(e, TS_EINVAL,
                               "unknown s3 URL parameter '%s' (known: endpoint, region)", name);
            }
            s += len + (amp ? 1 : 0);
        }
    }
    if (!u->region[0]) snprintf(u->region, sizeof u->region, "%s", u->has_endpoint ? "auto" : "us-east-1");
    if (!u->has_endpoint) {
        if (!strcmp(u->region, "auto"))
            return ts_fail(e, TS_EINVAL, "region 'auto' needs an endpoint= parameter");
        snprintf(u->endpoint, sizeof u->endpoint, "https://s3.%s.amazonaws.com", u->region);
    }
    return TS_OK;
}

/* RFC 3986 escaping of a URL parameter value (for the credential-free URL). */
static void pct_encode(char *out, size_t cap, const char *in, const char *keep) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < cap; in++) {
        unsigned char c = (unsigned char)*in;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep && strchr(keep, c))) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
}

void store_s3_url_format(const store_s3_url *u, char *out, size_t cap) {
    char prefix[3 * STORE_KEY_MAX + 1], ep[3 * sizeof u->endpoint];
    pct_encode(prefix, sizeof prefix, u->prefix, "/");
    pct_encode(ep, sizeof ep, u->endpoint, ":/");
    snprintf(out, cap, "s3://%s%s%s?endpoint=%s&region=%s", u->bucket, u->prefix[0] ? "/" : "",
             prefix, ep, u->region);
}

/* --------------------------------------------------------------- open/close */

static void fill_defaults(store_opts *o) {
    if (o->connect_timeout_s <= 0) o->connect_timeout_s = 10;
    if (o->stall_timeout_s <= 0) o->stall_timeout_s = 30;
    if (o->stall_bytes_per_s <= 0) o->stall_bytes_per_s = 1024;
    if (o->request_timeout_s < 0) o->request_timeout_s = 0;
    if (o->retries == 0) o->retries = 5;
    if (o->retries < 0) o->retries = 0;
    if (o->retries > 100) o->retries = 100;
    if (o->backoff_s <= 0) o->backoff_s = 0.25;
    if (o->backoff_max_s <= 0) o->backoff_max_s = 20;
    if (o->multipart_threshold == 0) o->multipart_threshold = 64ull << 20;
    if (o->part_size == 0) o->part_size = 16ull << 20;
    if (o->part_size < (64u << 10)) o->part_size = 64u << 10;
    if (o->part_size > (5ull << 30)) o->part_size = 5ull << 30;
    if (o->parallel <= 0) o->parallel = 4;
    if (o->parallel > 64) o->parallel = 64;
}

int store_open(store **out, const char *url, const store_opts *o, ts_err *e) {
    *out = NULL;
    if (ts_init(e)) return e ? e->code : TS_EIO;
    if (!url || !*url) return ts_fail(e, TS_EINVAL, "empty store URL");
    store *s = calloc(1, sizeof *s);
    if (!s) return ts_fail(e, TS_ENOMEM, "out of memory");
    if (o) s->o = *o;
    const char *ak = s->o.access_key, *sk = s->o.secret_key, *tok = s->o.session_token;
    s->o.access_key = s->o.secret_key = s->o.session_token = NULL;
    fill_defaults(&s->o);
    int rc;
    if (!strncmp(url, "file://", 7)) {
        char root[4096];
        rc = store_parse_file_url(url, root, sizeof root, e);
        if (!rc) {
            snprintf(s->url, sizeof s->url, "%s", url);
            rc = store_local_open(s, root, e);
        }
    } else if (!strncmp(url, "s3://", 5)) {
        store_s3_url *u = malloc(sizeof *u);
        if (!u) {
            free(s);
            return ts_fail(e, TS_ENOMEM, "out of memory");
        }
        rc = store_parse_s3_url(url, u, e);
        if (!rc) {
            store_s3_url_format(u, s->url, sizeof s->url);
            if (!ak && u->has_userinfo) {
                ak = u->access_key;
                sk = u->secret_key;
            }
            if (!ak && !s->o.no_env) ak = getenv("AWS_ACCESS_KEY_ID");
            if (!sk && !s->o.no_env) sk = getenv("AWS_SECRET_ACCESS_KEY");
            if (!tok && !s->o.no_env) tok = getenv("AWS_SESSION_TOKEN");
            if (!ak || !*ak || !sk || !*sk)
                rc = ts_fail(e, TS_EINVAL,
                             "%s: no credentials (give an access key and secret, or set "
                             "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                             s->url);
            else
                rc = store_s3_open(s, u, ak, sk, tok && *tok ? tok : NULL, e);
        }
        sodium_memzero(u, sizeof *u);
        free(u);
    } else {
        rc = ts_fail(e, TS_EINVAL, "unknown store URL '%.100s' (use file:///path or s3://bucket/...)",
                     strstr(url, "@") ? "(redacted)" : url);
    }
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return TS_OK;
}

void store_close(store *s) {
    if (!s) return;
    if (s->be && s->be->close) s->be->close(s);
    free(s);
}

const char *store_url(const store *s) { return s->url; }
const char *store_kind(const store *s) { return s->be->kind; }

void store_progress(store *s, uint64_t done, uint64_t total) {
    if (s->o.progress) s->o.progress(s->o.progress_ud, done, total);
}

/* --------------------------------------------------------------- dispatch */

int store_put(store *s, const char *key, const void *data, size_t len, ts_err *e) {
    if (store_key_check(key, e)) return e ? e->code : TS_EINVAL;
    if (!data && len) return ts_fail(e, TS_EINVAL, "put %s: no data", key);
    return s->be->put(s, key, data ? data : "", len, e);
}

int store_put_file(store *s, const char *key, const char *path, ts_err *e) {
    if (store_key_check(key, e)) return e ? e->code : TS_EINVAL;
    return s->be->put_file(s, key, path, e);
}

int store_get(store *s, const char *key, size_t max, uint8_t **out, size_t *len, ts_err *e) {
    *out = NULL;
    *len = 0;
    if (store_key_check(key, e)) return e ? e->code : TS_EINVAL;
    return s->be->get(s, key, max, out, len, e);
}

int store_get_file(store *s, const char *key, const char *path, uint64_t max, ts_err *e) {
    if (store_key_check(key, e)) return e ? e->code : TS_EINVAL;
    return s->be->get_file(s, key, path, max ? max : UINT64_MAX, e);
}

int store_get_range(store *s, const char *key, uint64_t off, size_t len, void *buf, size_t *got,
                    ts_err *e) {
    *got = 0;
    if (store_key_check(key, e)) return e ? e->code : TS_EINVAL;
    if (len == 0) return TS_OK;
    if (off > UINT64_MAX - len) return ts_fail(e, TS_EINVAL, "range overflows");
    return s->be->get_range(s, key, off, len, buf, got, e);
}

int store_head(store *s, const char *key, store_info *info, ts_err *e) {
    memset(info, 0, sizeof *info);
    if (store_key_check(key, e)) return e ? e->code : TS_EINVAL;
    return s->be->head(s, key, info, e);
}

int store_delete(store *s, const char *key, ts_err *e) {
    if (store_key_check(key, e)) return e ? e->code : TS_EINVAL;
    return s->be->del(s, key, e);
}

int store_list(store *s, const char *prefix, store_list_fn fn, void *ud, ts_err *e) {
    if (!prefix) prefix = "";
    if (prefix_check(prefix, e)) return e ? e->code : TS_EINVAL;
    return s->be->list(s, prefix, fn, ud, e);
}

int store_abort_uploads(store *s, const char *prefix, double older_than_s, int *aborted, ts_err *e) {
    if (aborted) *aborted = 0;
    if (!prefix) prefix = "";
    if (prefix_check(prefix, e)) return e ? e->code : TS_EINVAL;
    if (!s->be->abort_uploads) return TS_OK;
    return s->be->abort_uploads(s, prefix, older_than_s, aborted, e);
}

typedef struct collect_ctx {
    store_listing *l;
    size_t cap, max;
    int err;
} collect_ctx;

static int collect_cb(void *ud, const char *key, const store_info *info) {
    collect_ctx *c = ud;
    if (c->l->n >= c->max) {
        c->err = TS_ETOOBIG;
        return 1;
    }
    if (c->l->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 64;
        store_entry *nv = realloc(c->l->v, ncap * sizeof *nv);
        if (!nv) {
            c->err = TS_ENOMEM;
            return 1;
        }
        c->l->v = nv;
        c->cap = ncap;
    }
    char *k = strdup(key);
    if (!k) {
        c->err = TS_ENOMEM;
        return 1;
    }
    c->l->v[c->l->n].key = k;
    c->l->v[c->l->n].info = *info;
    c->l->n++;
    return 0;
}

int store_list_all(store *s, const char *prefix, size_t max_keys, store_listing *out, ts_err *e) {
    memset(out, 0, sizeof *out);
    collect_ctx c = {.l = out, .max = max_keys};
    int rc = store_list(s, prefix, collect_cb, &c, e);
    if (!rc && c.err == TS_ETOOBIG)
        rc = ts_fail(e, TS_ETOOBIG, "%s: more than %zu objects under '%s'", s->url, max_keys,
                     prefix ? prefix : "");
    else if (!rc && c.err)
        rc = ts_fail(e, c.err, "listing %s: out of memory", s->url);
    if (rc) store_listing_free(out);
    return rc;
}

void store_listing_free(store_listing *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) free(l->v[i].key);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* ------------------------------------------------------------- key layout */

void store_key_gradient(char *out, uint64_t window, uint32_t uid) {
    snprintf(out, STORE_LAYOUT_KEY_MAX, "gradients/%" PRIu64 "/%" PRIu32, window, uid);
}
void store_key_debug(char *out, uint64_t window, uint32_t uid) {
    snprintf(out, STORE_LAYOUT_KEY_MAX, "debug/%" PRIu64 "/%" PRIu32, window, uid);
}
void store_key_peers(char *out, uint64_t w) {
    snprintf(out, STORE_LAYOUT_KEY_MAX, "peers/%" PRIu64, w);
}
void store_key_checkpoint(char *out, uint64_t w) {
    snprintf(out, STORE_LAYOUT_KEY_MAX, "checkpoints/%" PRIu64 "/model.safetensors", w);
}
void store_key_manifest(char *out, uint64_t w) {
    snprintf(out, STORE_LAYOUT_KEY_MAX, "checkpoints/%" PRIu64 "/manifest.json", w);
}
void store_key_aggregate(char *out, uint64_t w) {
    snprintf(out, STORE_LAYOUT_KEY_MAX, "aggregates/%" PRIu64, w);
}

/* Canonical decimal (no sign, no leading zero unless "0") of at most max;
 * returns the characters consumed or 0. */
static size_t parse_dec(const char *s, uint64_t max, uint64_t *out) {
    size_t i = 0;
    uint64_t v = 0;
    if (s[0] == '0' && s[1] >= '0' && s[1] <= '9') return 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return i;
}

static bool starts(const char *s, const char *p, const char **rest) {
    size_t n = strlen(p);
    if (strncmp(s, p, n)) return false;
    *rest = s + n;
    return true;
}

store_obj_kind store_key_parse(const char *key, uint64_t *window, uint32_t *uid) {
    const char *r;
    uint64_t w = 0, u = 0;
    size_t n;
    if (!key) return STORE_OBJ_UNKNOWN;
    if (!strcmp(key, STORE_KEY_START_WINDOW)) return STORE_OBJ_START_WINDOW;
    if (!strcmp(key, STORE_KEY_LATEST)) return STORE_OBJ_LATEST;
    bool grad = starts(key, "gradients/", &r), dbg = !grad && starts(key, "debug/", &r);
    if (grad || dbg) {
        if (!(n = parse_dec(r, UINT64_MAX, &w)) || r[n] != '/') return STORE_OBJ_UNKNOWN;
        r += n + 1;
        if (!(n = parse_dec(r, UINT32_MAX, &u)) || r[n]) return STORE_OBJ_UNKNOWN;
        if (window) *window = w;
        if (uid) *uid = (uint32_t)u;
        return grad ? STORE_OBJ_GRADIENT : STORE_OBJ_DEBUG;
    }
    bool peers = starts(key, "peers/", &r), agg = !peers && starts(key, "aggregates/", &r);
    if (peers || agg) {
        if (!(n = parse_dec(r, UINT64_MAX, &w)) || r[n]) return STORE_OBJ_UNKNOWN;
        if (window) *window = w;
        return peers ? STORE_OBJ_PEERS : STORE_OBJ_AGGREGATE;
    }
    if (starts(key, "checkpoints/", &r)) {
        if (!(n = parse_dec(r, UINT64_MAX, &w)) || r[n] != '/') return STORE_OBJ_UNKNOWN;
        r += n + 1;
        store_obj_kind k = !strcmp(r, "model.safetensors") ? STORE_OBJ_CHECKPOINT
                         : !strcmp(r, "manifest.json")     ? STORE_OBJ_MANIFEST
                                                           : STORE_OBJ_UNKNOWN;
        if (k != STORE_OBJ_UNKNOWN && window) *window = w;
        return k;
    }
    return STORE_OBJ_UNKNOWN;
}

typedef struct prune_ctx {
    size_t dirlen;
    uint64_t keep_from;
    store_listing doomed;
    size_t cap;
    int err;
} prune_ctx;

static int prune_cb(void *ud, const char *key, const store_info *info) {
    prune_ctx *c = ud;
    const char *r = key + c->dirlen; /* after "dir/" */
    uint64_t w;
    size_t n = parse_dec(r, UINT64_MAX, &w);
    if (!n || (r[n] && r[n] != '/') || w >= c->keep_from) return 0;
    if (c->doomed.n == c->cap) {
        size_t ncap = c->cap ? 2 * c->cap : 64;
        store_entry *nv = realloc(c->doomed.v, ncap * sizeof *nv);
        if (!nv) {
            c->err = TS_ENOMEM;
            return 1;
        }
        c->doomed.v = nv;
        c->cap = ncap;
    }
    if (!(c->doomed.v[c->doomed.n].key = strdup(key))) {
        c->err = TS_ENOMEM;
        return 1;
    }
    c->doomed.v[c->doomed.n++].info = *info;
    return 0;
}

int store_prune_windows(store *s, const char *dir, uint64_t keep_from, int *deleted, ts_err *e) {
    if (deleted) *deleted = 0;
    if (store_key_check(dir, e)) return ts_wrap(e, "prune");
    char prefix[STORE_KEY_MAX + 2];
    snprintf(prefix, sizeof prefix, "%s/", dir);
    prune_ctx c = {.dirlen = strlen(prefix), .keep_from = keep_from};
    int rc = store_list(s, prefix, prune_cb, &c, e);
    if (!rc && c.err) rc = ts_fail(e, c.err, "prune %s: out of memory", prefix);
    for (size_t i = 0; !rc && i < c.doomed.n; i++) {
        rc = store_delete(s, c.doomed.v[i].key, e);
        if (!rc && deleted) (*deleted)++;
    }
    store_listing_free(&c.doomed);
    return rc;
}
