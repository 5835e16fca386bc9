/* s3.c - the s3:// backend on libcurl.
 *
 * Requests are path-style (ENDPOINT/BUCKET/KEY) and signed by libcurl's
 * CURLOPT_AWS_SIGV4 ("aws:amz:REGION:s3").  What libcurl 7.88 leaves to us:
 *  - x-amz-content-sha256 is always sent: the SHA-256 of the body (sha256.c)
 *    or UNSIGNED-PAYLOAD; libcurl signs the header and uses its value as the
 *    payload hash.
 *  - The canonical query string is the query as sent, so every query is built
 *    here already canonical: names and values RFC 3986-encoded, sorted, and
 *    valueless parameters written as "name=".
 *  - The canonical URI is the path as sent: keys are RFC 3986-encoded with
 *    '/' kept (S3 does not double-encode), and the key rules (no "." or ".."
 *    segment, no empty segment) keep libcurl from normalising the path.
 *  - Credentials go in CURLOPT_USERNAME / CURLOPT_PASSWORD (never "user:pass",
 *    which would split an access key containing ':'), and no header is ever
 *    removed with "Name:" (libcurl 7.88 would sign the removed header).
 *
 * Every request runs with connect and stall timeouts and is retried with
 * exponential backoff and jitter on 5xx, 429 and network errors, never on
 * other 4xx.  Easy handles are kept in a pool so connections are reused, and
 * the pool makes one store usable from several threads.  Large puts are
 * multipart uploads with parts on parallel threads (aborted on failure); large
 * gets are parallel ranged requests checked against one ETag and size. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <sodium.h>

#include "storage/afile.h"
#include "storage/internal.h"
#include "storage/s3xml.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ERRBODY_MAX (64u << 10)
#define XML_MAX (64u << 20) /* cap on any XML answer (a listing page is ~300 KB) */
#define MAX_PARTS 1000      /* Swift's default cap; S3 allows 10000 */
#define MIN_PART (5ull << 20)

typedef struct s3 {
    char endpoint[256];
    char bucket[64];
    char prefix[STORE_KEY_MAX + 1]; /* "" or "p/q" */
    char region[64];
    char sigv4[96];
    char *access, *secret, *token;
    pthread_mutex_t mu;
    CURL **pool;
    int npool, cap;
} s3;

/* ------------------------------------------------------------- encoding */

static const char HEX[] = "0123456789ABCDEF";

static bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* RFC 3986 percent-encoding into a growing buffer; keep_slash for paths. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_grow(sbuf *b, size_t more) {
    if (b->oom || b->n + more + 1 <= b->cap) return;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->n + more + 1) ncap *= 2;
    char *np = realloc(b->p, ncap);
    if (!np) {
        b->oom = true;
        return;
    }
    b->p = np;
    b->cap = ncap;
}

static void sb_add(sbuf *b, const char *s, size_t n) {
    sb_grow(b, n);
    if (b->oom) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_enc(sbuf *b, const char *s, bool keep_slash) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (unreserved(c) || (keep_slash && c == '/')) {
            sb_add(b, (const char *)&c, 1);
        } else {
            char t[3] = {'%', HEX[c >> 4], HEX[c & 15]};
            sb_add(b, t, 3);
        }
    }
}

/* A canonical query: parameters sorted by encoded name, then value. */
typedef struct qparam {
    const char *name, *value;
} qparam;

static int qp_cmp(const void *a, const void *b) {
    const qparam *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Names are plain ASCII tokens (unreserved characters only), so sorting the
 * raw names sorts the encoded ones. */
static char *query_build(qparam *ps, int n) {
    qsort(ps, (size_t)n, sizeof *ps, qp_cmp);
    sbuf b = {0};
    sb_str(&b, "");
    for (int i = 0; i < n; i++) {
        if (i) sb_add(&b, "&", 1);
        sb_enc(&b, ps[i].name, false);
        sb_add(&b, "=", 1);
        sb_enc(&b, ps[i].value, false);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* The full key in the bucket: store prefix + "/" + key. */
static char *full_key(const s3 *x, const char *key) {
    size_t pl = strlen(x->prefix), kl = strlen(key);
    char *k = malloc(pl + kl + 2);
    if (!k) return NULL;
    if (pl) {
        memcpy(k, x->prefix, pl);
        k[pl] = '/';
        memcpy(k + pl + 1, key, kl + 1);
    } else {
        memcpy(k, key, kl + 1);
    }
    return k;
}

/* --------------------------------------------------------------- requests */

typedef enum { SINK_DISCARD, SINK_MEM, SINK_BUF, SINK_FILE } sink_kind;

typedef struct s3_req {
    /* request */
    const char *method;     /* GET HEAD PUT POST DELETE */
    const char *key;        /* relative key, for messages; NULL: the bucket */
    const char *fkey;       /* full key in the bucket; NULL: the bucket */
    const char *query;      /* canonical query or NULL */
    const uint8_t *body;
    size_t body_len;
    char payload[72];       /* hex SHA-256 of the body or UNSIGNED-PAYLOAD */
    char range[64];         /* "bytes=a-b" or "" */
    uint64_t range_start;
    const char *content_type;
    sink_kind sink;
    size_t mem_max;         /* SINK_MEM cap */
    uint8_t *buf;           /* SINK_BUF */
    size_t buf_cap;
    afile *file;            /* SINK_FILE, written at file_off + offset in the body */
    uint64_t file_off;
    uint64_t max_total;     /* refuse an object larger than this (0: no cap) */
    bool error_in_200;      /* CompleteMultipartUpload may fail inside a 200 */
    /* response */
    long status;
    uint8_t *mem;
    size_t mem_len, mem_cap;
    size_t got;
    char etag[STORE_ETAG_MAX];
    double last_modified;
    int64_t content_length;
    bool has_crange;
    uint64_t cr_start, cr_end, cr_total;
    double retry_after;
    char request_id[96];
    char *err;
    size_t err_len;
    int sink_rc;
    ts_err sink_err;
    size_t up_off;
    bool headers_done;
} s3_req;

static void req_reset_response(s3_req *r) {
    r->status = 0;
    r->mem_len = 0;
    r->got = 0;
    r->etag[0] = 0;
    r->last_modified = 0;
    r->content_length = -1;
    r->has_crange = false;
    r->cr_start = r->cr_end = r->cr_total = 0;
    r->retry_after = 0;
    r->request_id[0] = 0;
    r->err_len = 0;
    if (r->err) r->err[0] = 0;
    r->sink_rc = 0;
    r->up_off = 0;
    r->headers_done = false;
}

static void req_free(s3_req *r) {
    free(r->mem);
    free(r->err);
    r->mem = NULL;
    r->err = NULL;
}

static bool is2xx(long st) { return st >= 200 && st < 300; }

static void trim(const char **b, const char **e) {
    while (*b < *e && (**b == ' ' || **b == '\t')) (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r' || (*e)[-1] == '\n')) (*e)--;
}

static bool hdr_is(const char *line, size_t n, const char *name, const char **vb, const char **ve) {
    size_t nl = strlen(name);
    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl)) return false;
    *vb = line + nl + 1;
    *ve = line + n;
    trim(vb, ve);
    return true;
}

static uint64_t parse_u64(const char *b, const char *e, bool *ok) {
    uint64_t v = 0;
    *ok = b < e;
    for (; b < e; b++) {
        if (*b < '0' || *b > '9' || v > (UINT64_MAX - 9) / 10) {
            *ok = false;
            return 0;
        }
        v = v * 10 + (uint64_t)(*b - '0');
    }
    return v;
}

static int sink_fail(s3_req *r, int code, const char *fmt, const char *arg) {
    r->sink_rc = code;
    ts_fail(&r->sink_err, code, fmt, arg);
    return 1;
}

/* Called at the end of the headers of a 2xx answer: size checks before any
 * byte of the body is taken. */
static int headers_complete(s3_req *r) {
    r->headers_done = true;
    if (!is2xx(r->status)) return 0;
    uint64_t total = r->has_crange ? r->cr_total : r->content_length >= 0 ? (uint64_t)r->content_length : 0;
    if (r->max_total && total > r->max_total && strcmp(r->method, "HEAD")) {
        r->sink_rc = TS_ETOOBIG;
        ts_fail(&r->sink_err, TS_ETOOBIG, "%llu bytes, over the limit of %llu", (unsigned long long)total,
                (unsigned long long)r->max_total);
        return 1;
    }
    if (r->range[0] && r->status == 200 && r->range_start != 0 && r->sink == SINK_BUF)
        return sink_fail(r, TS_EFORMAT, "the server ignored the Range header%s", "");
    if (r->sink == SINK_MEM && r->content_length > 0) {
        size_t want = (uint64_t)r->content_length > r->mem_max ? r->mem_max : (size_t)r->content_length;
        if (want + 1 > r->mem_cap) {
            uint8_t *nm = realloc(r->mem, want + 1);
            if (!nm) return sink_fail(r, TS_ENOMEM, "out of memory%s", "");
            r->mem = nm;
            r->mem_cap = want + 1;
        }
    }
    return 0;
}

static size_t on_header(char *line, size_t sz, size_t nmemb, void *ud) {
    s3_req *r = ud;
    size_t n = sz * nmemb;
    const char *vb, *ve;
    if (n >= 5 && !strncmp(line, "HTTP/", 5)) {
        const char *sp = memchr(line, ' ', n);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        /* a new answer (after 100 Continue): forget earlier headers */
        r->etag[0] = 0;
        r->content_length = -1;
        r->has_crange = false;
        r->retry_after = 0;
        r->headers_done = false;
        return n;
    }
    if (n <= 2 && (line[0] == '\r' || line[0] == '\n')) {
        if (r->status >= 200 && headers_complete(r)) return 0;
        return n;
    }
    if (hdr_is(line, n, "etag", &vb, &ve)) {
        if (ve - vb >= 2 && *vb == '"' && ve[-1] == '"') vb++, ve--;
        size_t l = (size_t)(ve - vb) < sizeof r->etag - 1 ? (size_t)(ve - vb) : sizeof r->etag - 1;
        memcpy(r->etag, vb, l);
        r->etag[l] = 0;
    } else if (hdr_is(line, n, "last-modified", &vb, &ve)) {
        char d[64];
        size_t l = (size_t)(ve - vb) < sizeof d - 1 ? (size_t)(ve - vb) : sizeof d - 1;
        memcpy(d, vb, l);
        d[l] = 0;
        time_t t = curl_getdate(d, NULL);
        if (t != (time_t)-1) r->last_modified = (double)t;
    } else if (hdr_is(line, n, "content-length", &vb, &ve)) {
        bool ok;
        uint64_t v = parse_u64(vb, ve, &ok);
        if (ok && v <= INT64_MAX) r->content_length = (int64_t)v;
    } else if (hdr_is(line, n, "content-range", &vb, &ve)) {
        /* bytes a-b/total */
        if (ve - vb > 6 && !strncmp(vb, "bytes ", 6)) {
            const char *a = vb + 6, *dash = memchr(a, '-', (size_t)(ve - a));
            const char *sl = dash ? memchr(dash, '/', (size_t)(ve - dash)) : NULL;
            bool o1, o2, o3;
            if (dash && sl) {
                r->cr_start = parse_u64(a, dash, &o1);
                r->cr_end = parse_u64(dash + 1, sl, &o2);
                r->cr_total = parse_u64(sl + 1, ve, &o3);
                r->has_crange = o1 && o2 && o3 && r->cr_start <= r->cr_end && r->cr_end < r->cr_total;
            }
        }
    } else if (hdr_is(line, n, "retry-after", &vb, &ve)) {
        bool ok;
        uint64_t v = parse_u64(vb, ve, &ok);
        if (ok) r->retry_after = v > 3600 ? 3600 : (double)v;
    } else if (hdr_is(line, n, "x-amz-request-id", &vb, &ve)) {
        size_t l = (size_t)(ve - vb) < sizeof r->request_id - 1 ? (size_t)(ve - vb) : sizeof r->request_id - 1;
        memcpy(r->request_id, vb, l);
        r->request_id[l] = 0;
    }
    return n;
}

static size_t on_body(char *p, size_t sz, size_t nmemb, void *ud) {
    s3_req *r = ud;
    size_t n = sz * nmemb;
    if (!r->headers_done && headers_complete(r)) return 0;
    if (!is2xx(r->status)) {
        if (!r->err) {
            r->err = malloc(ERRBODY_MAX + 1);
            if (!r->err) return n;
        }
        size_t room = ERRBODY_MAX - r->err_len, k = n < room ? n : room;
        memcpy(r->err + r->err_len, p, k);
        r->err_len += k;
        r->err[r->err_len] = 0;
        return n;
    }
    switch (r->sink) {
    case SINK_DISCARD:
        return n;
    case SINK_MEM:
        if (n > r->mem_max - r->mem_len) {
            r->sink_rc = TS_ETOOBIG;
            ts_fail(&r->sink_err, TS_ETOOBIG, "over the limit of %zu bytes", r->mem_max);
            return 0;
        }
        if (r->mem_len + n + 1 > r->mem_cap) {
            size_t ncap = r->mem_cap ? r->mem_cap : 65536;
            while (ncap < r->mem_len + n + 1) ncap *= 2;
            if (ncap > r->mem_max + 1) ncap = r->mem_max + 1;
            uint8_t *nm = realloc(r->mem, ncap);
            if (!nm) {
                r->sink_rc = TS_ENOMEM;
                ts_fail(&r->sink_err, TS_ENOMEM, "out of memory");
                return 0;
            }
            r->mem = nm;
            r->mem_cap = ncap;
        }
        memcpy(r->mem + r->mem_len, p, n);
        r->mem_len += n;
        r->mem[r->mem_len] = 0;
        return n;
    case SINK_BUF:
        if (n > r->buf_cap - r->got) {
            if (r->range[0] && r->status == 200 && r->range_start == 0) {
                /* the server sent the whole object: keep what was asked for */
                size_t k = r->buf_cap - r->got;
                memcpy(r->buf + r->got, p, k);
                r->got += k;
                r->sink_rc = -1; /* done early, not an error */
                return 0;
            }
            r->sink_rc = TS_EFORMAT;
            ts_fail(&r->sink_err, TS_EFORMAT, "the server sent more bytes than the range asked for");
            return 0;
        }
        memcpy(r->buf + r->got, p, n);
        r->got += n;
        return n;
    case SINK_FILE:
        if (r->max_total && r->got + n > r->max_total) {
            r->sink_rc = TS_ETOOBIG;
            ts_fail(&r->sink_err, TS_ETOOBIG, "over the limit of %llu bytes", (unsigned long long)r->max_total);
            return 0;
        }
        if (afile_pwrite(r->file, p, n, r->file_off + r->got)) {
            r->sink_rc = TS_EIO;
            ts_fail(&r->sink_err, TS_EIO, "write failed: %s", strerror(errno));
            return 0;
        }
        r->got += n;
        return n;
    }
    return n;
}

static size_t on_read(char *p, size_t sz, size_t nmemb, void *ud) {
    s3_req *r = ud;
    size_t n = sz * nmemb, left = r->body_len - r->up_off;
    if (n > left) n = left;
    memcpy(p, r->body + r->up_off, n);
    r->up_off += n;
    return n;
}

static int on_seek(void *ud, curl_off_t off, int origin) {
    s3_req *r = ud;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->body_len) return CURL_SEEKFUNC_FAIL;
    r->up_off = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

/* ------------------------------------------------------------- the pool */

static CURL *pool_get(s3 *x) {
    CURL *h = NULL;
    pthread_mutex_lock(&x->mu);
    if (x->npool) h = x->pool[--x->npool];
    pthread_mutex_unlock(&x->mu);
    if (!h) h = curl_easy_init();
    return h;
}

static void pool_put(s3 *x, CURL *h) {
    pthread_mutex_lock(&x->mu);
    if (x->npool == x->cap) {
        int ncap = x->cap ? 2 * x->cap : 8;
        CURL **np = realloc(x->pool, (size_t)ncap * sizeof *np);
        if (!np) {
            pthread_mutex_unlock(&x->mu);
            curl_easy_cleanup(h);
            return;
        }
        x->pool = np;
        x->cap = ncap;
    }
    x->pool[x->npool++] = h;
    pthread_mutex_unlock(&x->mu);
}

/* --------------------------------------------------------------- perform */

static bool net_retryable(CURLcode c) {
    switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_AGAIN:
        return true;
    default:
        return false;
    }
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

static double backoff_delay(const store_opts *o, int attempt, double retry_after) {
    double d = o->backoff_s;
    for (int i = 0; i < attempt && d < o->backoff_max_s; i++) d *= 2;
    if (d > o->backoff_max_s) d = o->backoff_max_s;
    uint32_t r;
    ts_random_bytes(&r, sizeof r);
    d = d / 2 + d / 2 * ((double)r / 4294967296.0); /* "equal jitter" */
    if (retry_after > d) d = retry_after < o->backoff_max_s ? retry_after : o->backoff_max_s;
    return d;
}

/* "s3://bucket/full/key" (or the bucket) for messages. */
static void where(const s3 *x, const s3_req *r, char *out, size_t cap) {
    if (r->fkey) snprintf(out, cap, "s3://%s/%.300s", x->bucket, r->fkey);
    else snprintf(out, cap, "s3://%s%s%.300s", x->bucket, x->prefix[0] ? "/" : "", x->prefix);
}

/* Copies printable text only (a hostile server's message goes into our
 * one-line errors). */
static void clean(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = ' ';
}

static int status_code(long st, const char *code) {
    if (!strcmp(code, "SignatureDoesNotMatch") || !strcmp(code, "InvalidAccessKeyId") ||
        !strcmp(code, "AccessDenied") || !strcmp(code, "AuthorizationHeaderMalformed") ||
        !strcmp(code, "ExpiredToken") || !strcmp(code, "InvalidToken") ||
        !strcmp(code, "RequestTimeTooSkewed") || st == 401 || st == 403)
        return TS_EDENIED;
    if (st == 404) return TS_ENOTFOUND;
    if (st == 409 || st == 412) return TS_ESTATE;
    if (st == 413 || !strcmp(code, "EntityTooLarge")) return TS_ETOOBIG;
    if (st == 400 || st == 411 || st == 416) return TS_EINVAL;
    if (st >= 500 || st == 429) return TS_ENET;
    return TS_EIO;
}

/* Error for an HTTP answer: "s3 PUT s3://b/k: HTTP 403 SignatureDoesNotMatch:
 * message (request id)". */
static int http_error(const s3 *x, const s3_req *r, const char *body, size_t blen, ts_err *e) {
    char w[400], code[128] = "", msg[256] = "", rid[128] = "";
    where(x, r, w, sizeof w);
    if (body && blen) {
        const char *ib, *ie, *end = body + blen;
        if (s3xml_elem(body, end, "Error", &ib, &ie)) {
            if (s3xml_child_text(ib, ie, "Code", code, sizeof code) < 0) code[0] = 0;
            if (s3xml_child_text(ib, ie, "Message", msg, sizeof msg) < 0) {
                /* a long message: keep its start */
                const char *mb, *me;
                if (s3xml_elem(ib, ie, "Message", &mb, &me)) {
                    size_t l = (size_t)(me - mb) < sizeof msg - 4 ? (size_t)(me - mb) : sizeof msg - 4;
                    memcpy(msg, mb, l);
                    strcpy(msg + l, "...");
                }
            }
            if (s3xml_child_text(ib, ie, "RequestId", rid, sizeof rid) < 0) rid[0] = 0;
        }
    }
    if (!rid[0]) snprintf(rid, sizeof rid, "%s", r->request_id);
    clean(code);
    clean(msg);
    clean(rid);
    if (!code[0] && r->status == 404) snprintf(code, sizeof code, "%s", r->fkey ? "NoSuchKey" : "NoSuchBucket");
    return ts_fail(e, status_code(r->status, code), "s3 %s %s: HTTP %ld%s%s%s%s%s%s%s", r->method, w, r->status,
                   code[0] ? " " : "", code, msg[0] ? ": " : "", msg, rid[0] ? " (request " : "", rid,
                   rid[0] ? ")" : "");
}

static struct curl_slist *add_hdr(struct curl_slist *l, const char *fmt, const char *v, bool *oom) {
    char line[1200];
    snprintf(line, sizeof line, fmt, v);
    struct curl_slist *n = curl_slist_append(l, line);
    if (!n) {
        *oom = true;
        return l;
    }
    return n;
}

/* One attempt.  Returns the CURLcode. */
static CURLcode attempt(store *s, s3_req *r, char *errbuf) {
    s3 *x = s->impl;
    const store_opts *o = &s->o;
    sbuf url = {0};
    sb_str(&url, x->endpoint);
    sb_add(&url, "/", 1);
    sb_str(&url, x->bucket);
    if (r->fkey) {
        sb_add(&url, "/", 1);
        sb_enc(&url, r->fkey, true);
    } else {
        sb_add(&url, "/", 1);
    }
    if (r->query && *r->query) {
        sb_add(&url, "?", 1);
        sb_str(&url, r->query);
    }
    bool oom = url.oom;
    struct curl_slist *h = NULL;
    h = add_hdr(h, "x-amz-content-sha256: %s", r->payload, &oom);
    if (x->token) h = add_hdr(h, "x-amz-security-token: %s", x->token, &oom);
    if (r->range[0]) h = add_hdr(h, "Range: %s", r->range, &oom);
    if (r->content_type) h = add_hdr(h, "Content-Type: %s", r->content_type, &oom);
    CURL *c = oom ? NULL : pool_get(x);
    if (!c) {
        curl_slist_free_all(h);
        free(url.p);
        snprintf(errbuf, CURL_ERROR_SIZE, "out of memory");
        return CURLE_OUT_OF_MEMORY;
    }
    curl_easy_reset(c);
    errbuf[0] = 0;
    curl_easy_setopt(c, CURLOPT_URL, url.p);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, x->sigv4);
    curl_easy_setopt(c, CURLOPT_USERNAME, x->access);
    curl_easy_setopt(c, CURLOPT_PASSWORD, x->secret);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(o->connect_timeout_s * 1000));
    long stall = (long)(o->stall_timeout_s + 0.999);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall < 1 ? 1L : stall);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, (long)o->stall_bytes_per_s);
    if (o->request_timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(o->request_timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    if (!strcmp(r->method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(r->method, "PUT")) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, r);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, r);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
    } else if (!strcmp(r->method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "GET")) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK && !r->status) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    pool_put(x, c);
    curl_slist_free_all(h);
    free(url.p);
    return cc;
}

/* Runs a request with retries.  TS_OK for a 2xx answer (also when the caller
 * must look at r->status for e.g. a 404 it accepts: see ok404). */
static int perform(store *s, s3_req *r, bool ok404, ts_err *e) {
    s3 *x = s->impl;
    const store_opts *o = &s->o;
    char errbuf[CURL_ERROR_SIZE];
    char w[400];
    for (int att = 0;; att++) {
        req_reset_response(r);
        CURLcode cc = attempt(s, r, errbuf);
        char why[300];
        if (cc == CURLE_OK || (cc == CURLE_WRITE_ERROR && r->sink_rc == -1)) {
            if (is2xx(r->status)) {
                if (!r->error_in_200) return TS_OK;
                /* an <Error> inside a 200 (CompleteMultipartUpload) */
                const char *ib, *ie;
                if (!r->mem || !s3xml_elem((const char *)r->mem, (const char *)r->mem + r->mem_len, "Error", &ib, &ie))
                    return TS_OK;
                char code[128] = "";
                s3xml_child_text(ib, ie, "Code", code, sizeof code);
                if (strcmp(code, "InternalError") && strcmp(code, "SlowDown") && strcmp(code, "ServiceUnavailable"))
                    return http_error(x, r, (const char *)r->mem, r->mem_len, e);
                clean(code);
                snprintf(why, sizeof why, "HTTP %ld with error %s", r->status, code);
            } else if (r->status == 404 && ok404) {
                return TS_OK;
            } else if (r->status >= 500 || r->status == 429) {
                char code[128] = "";
                if (r->err_len) {
                    const char *ib, *ie;
                    if (s3xml_elem(r->err, r->err + r->err_len, "Error", &ib, &ie))
                        s3xml_child_text(ib, ie, "Code", code, sizeof code);
                }
                clean(code);
                snprintf(why, sizeof why, "HTTP %ld%s%s", r->status, code[0] ? " " : "", code);
            } else {
                return http_error(x, r, r->err, r->err_len, e);
            }
        } else if (r->sink_rc > 0) {
            where(x, r, w, sizeof w);
            return ts_fail(e, r->sink_rc, "s3 %s %s: %s", r->method, w, r->sink_err.msg);
        } else if (net_retryable(cc)) {
            snprintf(why, sizeof why, "%s%s%s%s", curl_easy_strerror(cc), errbuf[0] ? " (" : "", errbuf,
                     errbuf[0] ? ")" : "");
        } else {
            where(x, r, w, sizeof w);
            return ts_fail(e, cc == CURLE_OUT_OF_MEMORY ? TS_ENOMEM : TS_ENET, "s3 %s %s: %s%s%s%s", r->method, w,
                           curl_easy_strerror(cc), errbuf[0] ? " (" : "", errbuf, errbuf[0] ? ")" : "");
        }
        where(x, r, w, sizeof w);
        clean(why);
        if (att >= o->retries) {
            int code = cc == CURLE_OPERATION_TIMEDOUT ? TS_ETIMEOUT : TS_ENET;
            if (cc == CURLE_OK && r->status) {
                /* the last answer was an HTTP error: report it in full */
                int rc = http_error(x, r, r->err_len ? r->err : (const char *)r->mem,
                                    r->err_len ? r->err_len : r->mem_len, e);
                if (e) ts_wrap(e, "after %d attempts", att + 1);
                return rc;
            }
            return ts_fail(e, code, "s3 %s %s: %s, after %d attempt%s (endpoint %s)", r->method, w, why, att + 1,
                           att ? "s" : "", x->endpoint);
        }
        double d = backoff_delay(o, att, r->retry_after);
        TS_WARN("s3 %s %s: %s; retrying in %.2fs (attempt %d of %d)", r->method, w, why, d, att + 2,
                o->retries + 1);
        sleep_s(d);
    }
}

static void set_payload(const store *s, s3_req *r) {
    if (!r->body_len) {
        snprintf(r->payload, sizeof r->payload, "%s", EMPTY_SHA256);
    } else if (s->o.unsigned_payload) {
        snprintf(r->payload, sizeof r->payload, "UNSIGNED-PAYLOAD");
    } else {
        uint8_t h[32];
        store_sha256(h, r->body, r->body_len, false);
        ts_hex(r->payload, h, sizeof h);
    }
}

/* ---------------------------------------------------------- parallel jobs */

typedef int (*job_fn)(void *ctx, size_t idx, ts_err *e);

typedef struct jobs {
    job_fn fn;
    void *ctx;
    size_t n, next;
    bool failed;
    ts_err err;
    int rc;
    pthread_mutex_t mu;
} jobs;

static void *job_worker(void *arg) {
    jobs *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        if (j->failed || j->next >= j->n) {
            pthread_mutex_unlock(&j->mu);
            return NULL;
        }
        size_t i = j->next++;
        pthread_mutex_unlock(&j->mu);
        ts_err le = {0};
        int rc = j->fn(j->ctx, i, &le);
        if (rc) {
            pthread_mutex_lock(&j->mu);
            if (!j->failed) {
                j->failed = true;
                j->rc = rc;
                j->err = le;
            }
            pthread_mutex_unlock(&j->mu);
            return NULL;
        }
    }
}

/* Runs fn(ctx, 0..n-1) on up to nthreads threads; stops handing out jobs
 * after the first failure and returns it. */
static int run_jobs(int nthreads, size_t n, job_fn fn, void *ctx, ts_err *e) {
    jobs j = {.fn = fn, .ctx = ctx, .n = n};
    pthread_mutex_init(&j.mu, NULL);
    if ((size_t)nthreads > n) nthreads = (int)n;
    pthread_t th[64];
    int started = 0;
    for (int i = 1; i < nthreads && i < 64; i++) {
        if (pthread_create(&th[started], NULL, job_worker, &j)) break;
        started++;
    }
    job_worker(&j); /* this thread works too */
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&j.mu);
    if (j.failed) {
        if (e) *e = j.err;
        return j.rc;
    }
    return TS_OK;
}

/* ------------------------------------------------------------------- put */

static int put_single(store *s, const char *key, const char *fk, const uint8_t *data, size_t len, ts_err *e) {
    s3_req r = {.method = "PUT", .key = key, .fkey = fk, .body = data, .body_len = len,
                .content_type = "application/octet-stream", .sink = SINK_DISCARD};
    set_payload(s, &r);
    int rc = perform(s, &r, false, e);
    req_free(&r);
    if (!rc) store_progress(s, len, len);
    return rc;
}

typedef struct mpu {
    store *s;
    const char *key, *fk;
    char *upload_id;
    char *q_id;               /* "uploadId=..." */
    const uint8_t *mem;       /* source in memory, or */
    int fd;                   /* a file */
    const char *path;
    uint64_t size, part;
    size_t nparts;
    char (*etags)[STORE_ETAG_MAX];
    pthread_mutex_t mu;
    uint64_t done;
} mpu;

static int part_job(void *ctx, size_t i, ts_err *e) {
    mpu *m = ctx;
    uint64_t off = (uint64_t)i * m->part;
    size_t len = (size_t)(m->size - off < m->part ? m->size - off : m->part);
    uint8_t *owned = NULL;
    const uint8_t *data;
    if (m->mem) {
        data = m->mem + off;
    } else {
        owned = malloc(len ? len : 1);
        if (!owned) return ts_fail(e, TS_ENOMEM, "out of memory for a part of %zu bytes", len);
        size_t got = 0;
        while (got < len) {
            ssize_t n = pread(m->fd, owned + got, len - got, (off_t)(off + got));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                free(owned);
                return ts_fail(e, TS_EIO, "%s: %s", m->path,
                               n < 0 ? strerror(errno) : "the file shrank during the upload");
            }
            got += (size_t)n;
        }
        data = owned;
    }
    char pn[24];
    snprintf(pn, sizeof pn, "%zu", i + 1);
    qparam qp[2] = {{"partNumber", pn}, {"uploadId", m->upload_id}};
    char *q = query_build(qp, 2);
    if (!q) {
        free(owned);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    s3_req r = {.method = "PUT", .key = m->key, .fkey = m->fk, .query = q, .body = data, .body_len = len,
                .sink = SINK_DISCARD};
    set_payload(m->s, &r);
    int rc = perform(m->s, &r, false, e);
    if (!rc && !r.etag[0]) rc = ts_fail(e, TS_EFORMAT, "s3 PUT part %zu of %s: no ETag in the answer", i + 1, m->key);
    if (!rc) {
        memcpy(m->etags[i], r.etag, STORE_ETAG_MAX);
        pthread_mutex_lock(&m->mu);
        m->done += len;
        store_progress(m->s, m->done, m->size);
        pthread_mutex_unlock(&m->mu);
    }
    req_free(&r);
    free(q);
    free(owned);
    return rc;
}

static int mpu_abort(store *s, const char *key, const char *fk, const char *upload_id, ts_err *e) {
    qparam qp[1] = {{"uploadId", upload_id}};
    char *q = query_build(qp, 1);
    if (!q) return ts_fail(e, TS_ENOMEM, "out of memory");
    s3_req r = {.method = "DELETE", .key = key, .fkey = fk, .query = q, .sink = SINK_DISCARD};
    set_payload(s, &r);
    int rc = perform(s, &r, true, e);
    req_free(&r);
    free(q);
    return rc;
}

static void xml_escape(sbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': sb_str(b, "&lt;"); break;
        case '>': sb_str(b, "&gt;"); break;
        case '&': sb_str(b, "&amp;"); break;
        case '"': sb_str(b, "&quot;"); break;
        default: sb_add(b, s, 1);
        }
    }
}

static int put_multipart(store *s, const char *key, const char *fk, const uint8_t *mem, int fd,
                         const char *path, uint64_t size, ts_err *e) {
    s3 *x = s->impl;
    mpu m = {.s = s, .key = key, .fk = fk, .mem = mem, .fd = fd, .path = path, .size = size};
    m.part = s->o.part_size < MIN_PART ? MIN_PART : s->o.part_size;
    if ((size + m.part - 1) / m.part > MAX_PARTS) {
        m.part = (size + MAX_PARTS - 1) / MAX_PARTS;
        m.part = (m.part + (1u << 20) - 1) & ~((uint64_t)(1u << 20) - 1);
    }
    m.nparts = (size_t)((size + m.part - 1) / m.part);
    m.etags = calloc(m.nparts, sizeof *m.etags);
    if (!m.etags) return ts_fail(e, TS_ENOMEM, "out of memory");
    pthread_mutex_init(&m.mu, NULL);

    /* 1. initiate */
    qparam qi[1] = {{"uploads", ""}};
    char *q = query_build(qi, 1);
    s3_req r = {.method = "POST", .key = key, .fkey = fk, .query = q, .sink = SINK_MEM, .mem_max = XML_MAX,
                .content_type = "application/octet-stream"};
    set_payload(s, &r);
    int rc = q ? perform(s, &r, false, e) : ts_fail(e, TS_ENOMEM, "out of memory");
    if (!rc) {
        const char *ib, *ie;
        const char *end = (const char *)r.mem + r.mem_len;
        if (!r.mem || !s3xml_elem((const char *)r.mem, end, "UploadId", &ib, &ie) ||
            !(m.upload_id = s3xml_text_dup(ib, ie)) || !*m.upload_id)
            rc = ts_fail(e, TS_EFORMAT, "s3 POST s3://%s/%s?uploads: no UploadId in the answer", x->bucket, fk);
    }
    req_free(&r);
    free(q);
    if (rc) {
        free(m.upload_id);
        free(m.etags);
        pthread_mutex_destroy(&m.mu);
        return rc;
    }

    /* 2. the parts, in parallel */
    rc = run_jobs(s->o.parallel, m.nparts, part_job, &m, e);

    /* 3. complete */
    if (!rc) {
        sbuf b = {0};
        sb_str(&b, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
        for (size_t i = 0; i < m.nparts; i++) {
            char pn[24];
            snprintf(pn, sizeof pn, "%zu", i + 1);
            sb_str(&b, "<Part><PartNumber>");
            sb_str(&b, pn);
            sb_str(&b, "</PartNumber><ETag>&quot;");
            xml_escape(&b, m.etags[i]);
            sb_str(&b, "&quot;</ETag></Part>");
        }
        sb_str(&b, "</CompleteMultipartUpload>");
        qparam qc[1] = {{"uploadId", m.upload_id}};
        q = query_build(qc, 1);
        if (b.oom || !q) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
        } else {
            s3_req c = {.method = "POST", .key = key, .fkey = fk, .query = q, .body = (const uint8_t *)b.p,
                        .body_len = b.n, .content_type = "application/xml", .sink = SINK_MEM,
                        .mem_max = XML_MAX, .error_in_200 = true};
            set_payload(s, &c);
            rc = perform(s, &c, false, e);
            if (rc == TS_ENOTFOUND) {
                /* NoSuchUpload on a retry: an earlier attempt may have
                 * completed it; the object then has our size */
                s3_req h = {.method = "HEAD", .key = key, .fkey = fk, .sink = SINK_DISCARD};
                set_payload(s, &h);
                if (!perform(s, &h, false, NULL) && h.content_length == (int64_t)size) rc = TS_OK;
                req_free(&h);
            }
            req_free(&c);
        }
        free(b.p);
        free(q);
    }

    /* 4. abort on failure, so no half object and no stored parts remain */
    if (rc) {
        ts_err ae = {0};
        int arc = mpu_abort(s, key, fk, m.upload_id, &ae);
        if (e) {
            char extra[200];
            if (!arc)
                snprintf(extra, sizeof extra, "; the multipart upload was aborted");
            else
                snprintf(extra, sizeof extra, "; aborting the multipart upload failed too (upload id %.80s, "
                                              "remove it with 'tessera store abort')",
                         m.upload_id);
            size_t l = strlen(e->msg);
            snprintf(e->msg + l, sizeof e->msg - l, "%s", extra);
        }
    }
    free(m.upload_id);
    free(m.etags);
    pthread_mutex_destroy(&m.mu);
    return rc;
}

static int s3_put(store *s, const char *key, const void *data, size_t len, ts_err *e) {
    char *fk = full_key(s->impl, key);
    if (!fk) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = len > s->o.multipart_threshold ? put_multipart(s, key, fk, data, -1, NULL, len, e)
                                            : put_single(s, key, fk, data, len, e);
    free(fk);
    return rc;
}

static int s3_put_file(store *s, const char *key, const char *path, ts_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ts_fail(e, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return ts_fail(e, TS_EINVAL, "%s: not a regular file", path);
    }
    char *fk = full_key(s->impl, key);
    if (!fk) {
        close(fd);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    int rc;
    uint64_t size = (uint64_t)st.st_size;
    if (size > s->o.multipart_threshold) {
        rc = put_multipart(s, key, fk, NULL, fd, path, size, e);
    } else {
        uint8_t *buf = malloc(size ? size : 1);
        size_t got = 0;
        rc = buf ? TS_OK : ts_fail(e, TS_ENOMEM, "out of memory for %llu bytes", (unsigned long long)size);
        while (!rc && got < size) {
            ssize_t n = pread(fd, buf + got, size - got, (off_t)got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) rc = ts_fail(e, TS_EIO, "%s: %s", path, n < 0 ? strerror(errno) : "the file shrank");
            else got += (size_t)n;
        }
        if (!rc) rc = put_single(s, key, fk, buf, size, e);
        free(buf);
    }
    free(fk);
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------- get */

typedef struct dl {
    store *s;
    const char *key, *fk;
    uint64_t total, part;
    size_t nparts;
    char etag[STORE_ETAG_MAX];
    uint8_t *mem; /* or */
    afile *file;
    pthread_mutex_t mu;
    uint64_t done;
} dl;

static int range_job(void *ctx, size_t i, ts_err *e) {
    dl *d = ctx;
    uint64_t off = (uint64_t)(i + 1) * d->part; /* part 0 came with the first answer */
    uint64_t len = d->total - off < d->part ? d->total - off : d->part;
    s3_req r = {.method = "GET", .key = d->key, .fkey = d->fk, .range_start = off};
    snprintf(r.range, sizeof r.range, "bytes=%llu-%llu", (unsigned long long)off, (unsigned long long)(off + len - 1));
    if (d->mem) {
        r.sink = SINK_BUF;
        r.buf = d->mem + off;
        r.buf_cap = (size_t)len;
    } else {
        r.sink = SINK_FILE;
        r.file = d->file;
        r.file_off = off;
        r.max_total = 0;
    }
    set_payload(d->s, &r);
    int rc = perform(d->s, &r, false, e);
    if (!rc && (strcmp(r.etag, d->etag) || !r.has_crange || r.cr_total != d->total || r.cr_start != off))
        rc = ts_fail(e, TS_ESTATE, "s3 GET s3://%s/%s: the object changed during the download (ETag %s, then %s)",
                     ((s3 *)d->s->impl)->bucket, d->fk, d->etag, r.etag);
    if (!rc && r.got != len)
        rc = ts_fail(e, TS_EFORMAT, "s3 GET s3://%s/%s: range at %llu returned %zu of %llu bytes",
                     ((s3 *)d->s->impl)->bucket, d->fk, (unsigned long long)off, r.got, (unsigned long long)len);
    if (!rc && d->file) /* start writing back now, so the final fsync is short */
        sync_file_range(d->file->fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
    if (!rc) {
        pthread_mutex_lock(&d->mu);
        d->done += len;
        store_progress(d->s, d->done, d->total);
        pthread_mutex_unlock(&d->mu);
    }
    req_free(&r);
    return rc;
}

/* Downloads a whole object into memory (*out) or into an atomic file: the
 * first range request learns the size and ETag, the rest of the ranges run
 * in parallel and must match both. */
static int get_object(store *s, const char *key, uint64_t max, uint8_t **out, size_t *outlen, afile *file,
                      ts_err *e) {
    s3 *x = s->impl;
    char *fk = full_key(x, key);
    if (!fk) return ts_fail(e, TS_ENOMEM, "out of memory");
    uint64_t part = s->o.part_size;
    s3_req r = {.method = "GET", .key = key, .fkey = fk, .max_total = max};
    snprintf(r.range, sizeof r.range, "bytes=0-%llu", (unsigned long long)(part - 1));
    if (file) {
        r.sink = SINK_FILE;
        r.file = file;
    } else {
        r.sink = SINK_MEM;
        r.mem_max = max < SIZE_MAX - 1 ? (size_t)max : SIZE_MAX - 1;
    }
    set_payload(s, &r);
    int rc = perform(s, &r, false, e);
    if (rc == TS_EINVAL && r.status == 416) {
        /* a range of an empty object: ask for all of it */
        r.range[0] = 0;
        rc = perform(s, &r, false, e);
    }
    uint64_t first = file ? r.got : r.mem_len;
    uint64_t total = r.status == 206 && r.has_crange ? r.cr_total : first;
    if (!rc && r.status == 206 && (!r.has_crange || r.cr_start != 0 || r.cr_end + 1 != first))
        rc = ts_fail(e, TS_EFORMAT, "s3 GET s3://%s/%s: bad Content-Range in the answer", x->bucket, fk);
    if (!rc && total > max)
        rc = ts_fail(e, TS_ETOOBIG, "s3 GET s3://%s/%s: %llu bytes, over the limit of %llu", x->bucket, fk,
                     (unsigned long long)total, (unsigned long long)max);
    if (!rc && file && first) sync_file_range(file->fd, 0, (off64_t)first, SYNC_FILE_RANGE_WRITE);
    if (!rc && total > first) {
        dl d = {.s = s, .key = key, .fk = fk, .total = total, .part = first, .file = file, .done = first};
        snprintf(d.etag, sizeof d.etag, "%s", r.etag);
        d.nparts = (size_t)((total - first + first - 1) / first);
        if (!file) {
            if (total > SIZE_MAX - 1) {
                rc = ts_fail(e, TS_ETOOBIG, "object too large for memory");
            } else {
                uint8_t *nm = realloc(r.mem, (size_t)total + 1);
                if (!nm) rc = ts_fail(e, TS_ENOMEM, "out of memory for %llu bytes", (unsigned long long)total);
                else r.mem = nm;
                d.mem = r.mem;
            }
        }
        if (!rc) {
            store_progress(s, first, total);
            pthread_mutex_init(&d.mu, NULL);
            rc = run_jobs(s->o.parallel, d.nparts, range_job, &d, e);
            pthread_mutex_destroy(&d.mu);
        }
    } else if (!rc) {
        store_progress(s, total, total);
    }
    if (!rc && !file) {
        if (!r.mem) r.mem = malloc(1);
        if (!r.mem) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
        } else {
            r.mem[total] = 0;
            *out = r.mem;
            *outlen = (size_t)total;
            r.mem = NULL;
        }
    }
    req_free(&r);
    free(fk);
    return rc;
}

static int s3_get(store *s, const char *key, size_t max, uint8_t **out, size_t *len, ts_err *e) {
    return get_object(s, key, max, out, len, NULL, e);
}

static int s3_get_file(store *s, const char *key, const char *path, uint64_t max, ts_err *e) {
    afile a;
    int rc = afile_open(&a, path, NULL, e);
    if (rc) return rc;
    rc = get_object(s, key, max, NULL, NULL, &a, e);
    if (rc) afile_abort(&a);
    else rc = afile_commit(&a, e);
    return rc;
}

static int s3_get_range(store *s, const char *key, uint64_t off, size_t len, void *buf, size_t *got, ts_err *e) {
    char *fk = full_key(s->impl, key);
    if (!fk) return ts_fail(e, TS_ENOMEM, "out of memory");
    s3_req r = {.method = "GET", .key = key, .fkey = fk, .sink = SINK_BUF, .buf = buf, .buf_cap = len,
                .range_start = off};
    snprintf(r.range, sizeof r.range, "bytes=%llu-%llu", (unsigned long long)off,
             (unsigned long long)(off + len - 1));
    set_payload(s, &r);
    int rc = perform(s, &r, false, e);
    if (rc == TS_EINVAL && r.status == 416)
        rc = ts_fail(e, TS_EINVAL, "s3 GET s3://%s/%s: range starts at %llu, past the end of the object",
                     ((s3 *)s->impl)->bucket, fk, (unsigned long long)off);
    if (!rc) *got = r.got;
    req_free(&r);
    free(fk);
    return rc;
}

static int s3_head(store *s, const char *key, store_info *info, ts_err *e) {
    s3 *x = s->impl;
    char *fk = full_key(x, key);
    if (!fk) return ts_fail(e, TS_ENOMEM, "out of memory");
    s3_req r = {.method = "HEAD", .key = key, .fkey = fk, .sink = SINK_DISCARD};
    set_payload(s, &r);
    int rc = perform(s, &r, false, e);
    if (!rc) {
        info->size = r.content_length >= 0 ? (uint64_t)r.content_length : 0;
        snprintf(info->etag, sizeof info->etag, "%s", r.etag);
        info->last_modified = r.last_modified;
    }
    req_free(&r);
    free(fk);
    return rc;
}

static int s3_del(store *s, const char *key, ts_err *e) {
    char *fk = full_key(s->impl, key);
    if (!fk) return ts_fail(e, TS_ENOMEM, "out of memory");
    s3_req r = {.method = "DELETE", .key = key, .fkey = fk, .sink = SINK_DISCARD};
    set_payload(s, &r);
    int rc = perform(s, &r, true, e);
    req_free(&r);
    free(fk);
    return rc;
}

/* ------------------------------------------------------------------ list */

static int s3_list(store *s, const char *prefix, store_list_fn fn, void *ud, ts_err *e) {
    s3 *x = s->impl;
    size_t pl = strlen(x->prefix);
    char *fp = malloc(pl + strlen(prefix) + 2);
    if (!fp) return ts_fail(e, TS_ENOMEM, "out of memory");
    if (pl) sprintf(fp, "%s/%s", x->prefix, prefix);
    else strcpy(fp, prefix);
    size_t strip = pl ? pl + 1 : 0;
    char *token = NULL;
    int rc = TS_OK;
    bool stop = false;
    for (int page = 0; !rc && !stop; page++) {
        qparam qp[4] = {{"list-type", "2"}, {"max-keys", "1000"}, {"prefix", fp}, {"continuation-token", token}};
        char *q = query_build(qp, token ? 4 : 3);
        if (!q) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            break;
        }
        s3_req r = {.method = "GET", .key = NULL, .fkey = NULL, .query = q, .sink = SINK_MEM, .mem_max = XML_MAX};
        set_payload(s, &r);
        rc = perform(s, &r, false, e);
        free(q);
        if (rc) {
            req_free(&r);
            break;
        }
        const char *p = (const char *)r.mem, *end = p ? p + r.mem_len : NULL;
        const char *rb, *re;
        if (!p || !s3xml_elem(p, end, "ListBucketResult", &rb, &re)) {
            rc = ts_fail(e, TS_EFORMAT, "s3 list s3://%s/%s: the answer is not a ListBucketResult", x->bucket, fp);
            req_free(&r);
            break;
        }
        const char *cur = rb, *ib, *ie;
        while (!rc && !stop && (cur = s3xml_elem(cur, re, "Contents", &ib, &ie))) {
            const char *kb, *ke;
            char num[32], date[64];
            store_info info = {0};
            char *k = s3xml_elem(ib, ie, "Key", &kb, &ke) ? s3xml_text_dup(kb, ke) : NULL;
            bool ok;
            if (!k || s3xml_child_text(ib, ie, "Size", num, sizeof num) < 0 ||
                (info.size = parse_u64(num, num + strlen(num), &ok), !ok)) {
                free(k);
                rc = ts_fail(e, TS_EFORMAT, "s3 list s3://%s/%s: an entry without a valid Key or Size", x->bucket, fp);
                break;
            }
            char etag[STORE_ETAG_MAX + 2];
            if (s3xml_child_text(ib, ie, "ETag", etag, sizeof etag) > 0) {
                char *eb = etag;
                size_t el = strlen(eb);
                if (el >= 2 && eb[0] == '"' && eb[el - 1] == '"') {
                    eb[el - 1] = 0;
                    eb++;
                }
                snprintf(info.etag, sizeof info.etag, "%s", eb);
            }
            if (s3xml_child_text(ib, ie, "LastModified", date, sizeof date) > 0)
                s3xml_parse_iso8601(date, &info.last_modified);
            if (strlen(k) > strip && !strncmp(k, fp, pl)) stop = fn(ud, k + strip, &info) != 0;
            free(k);
        }
        char trunc[16] = "";
        s3xml_child_text(rb, re, "IsTruncated", trunc, sizeof trunc);
        char *prev = token;
        token = NULL;
        if (!rc && !stop && !strcmp(trunc, "true")) {
            const char *tb, *te;
            if (!s3xml_elem(rb, re, "NextContinuationToken", &tb, &te) || !(token = s3xml_text_dup(tb, te)) ||
                !*token)
                rc = ts_fail(e, TS_EFORMAT, "s3 list s3://%s/%s: truncated listing without a continuation token",
                             x->bucket, fp);
            else if (prev && !strcmp(prev, token)) /* a server that would loop forever */
                rc = ts_fail(e, TS_EFORMAT, "s3 list s3://%s/%s: the continuation token did not advance",
                             x->bucket, fp);
            free(prev);
        } else {
            free(prev);
            stop = true;
        }
        req_free(&r);
    }
    free(token);
    free(fp);
    return rc;
}

/* Lists unfinished multipart uploads under prefix and aborts the old ones. */
static int s3_abort_uploads(store *s, const char *prefix, double older_than_s, int *aborted, ts_err *e) {
    s3 *x = s->impl;
    size_t pl = strlen(x->prefix);
    char *fp = malloc(pl + strlen(prefix) + 2);
    if (!fp) return ts_fail(e, TS_ENOMEM, "out of memory");
    if (pl) sprintf(fp, "%s/%s", x->prefix, prefix);
    else strcpy(fp, prefix);
    double cutoff = ts_now() - older_than_s;
    char *kmark = NULL, *umark = NULL;
    int rc = TS_OK;
    for (int page = 0; !rc && page < 10000; page++) {
        qparam qp[4] = {{"prefix", fp}, {"uploads", ""}, {"key-marker", kmark}, {"upload-id-marker", umark}};
        char *q = query_build(qp, kmark ? 4 : 2);
        if (!q) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            break;
        }
        s3_req r = {.method = "GET", .query = q, .sink = SINK_MEM, .mem_max = XML_MAX};
        set_payload(s, &r);
        rc = perform(s, &r, false, e);
        free(q);
        const char *rb = NULL, *re = NULL;
        if (!rc && (!r.mem || !s3xml_elem((const char *)r.mem, (const char *)r.mem + r.mem_len,
                                          "ListMultipartUploadsResult", &rb, &re)))
            rc = ts_fail(e, TS_EFORMAT, "s3 list uploads s3://%s/%s: unexpected answer", x->bucket, fp);
        const char *cur = rb, *ib, *ie;
        while (!rc && (cur = s3xml_elem(cur, re, "Upload", &ib, &ie))) {
            const char *kb, *ke, *ub, *ue;
            char date[64];
            double t = 0;
            if (!s3xml_elem(ib, ie, "Key", &kb, &ke) || !s3xml_elem(ib, ie, "UploadId", &ub, &ue)) continue;
            if (s3xml_child_text(ib, ie, "Initiated", date, sizeof date) > 0) s3xml_parse_iso8601(date, &t);
            if (t > cutoff) continue;
            char *k = s3xml_text_dup(kb, ke), *id = s3xml_text_dup(ub, ue);
            if (k && id) {
                const char *rel = strlen(k) > (pl ? pl + 1 : 0) ? k + (pl ? pl + 1 : 0) : k;
                rc = mpu_abort(s, rel, k, id, e);
                if (!rc && aborted) (*aborted)++;
            }
            free(k);
            free(id);
        }
        char trunc[16] = "";
        if (!rc) s3xml_child_text(rb, re, "IsTruncated", trunc, sizeof trunc);
        free(kmark);
        free(umark);
        kmark = umark = NULL;
        if (!rc && !strcmp(trunc, "true")) {
            const char *b1, *e1, *b2, *e2;
            if (s3xml_elem(rb, re, "NextKeyMarker", &b1, &e1) && s3xml_elem(rb, re, "NextUploadIdMarker", &b2, &e2)) {
                kmark = s3xml_text_dup(b1, e1);
                umark = s3xml_text_dup(b2, e2);
            }
            if (!kmark || !umark) rc = ts_fail(e, TS_EFORMAT, "s3 list uploads: truncated without markers");
        } else {
            req_free(&r);
            break;
        }
        req_free(&r);
    }
    free(kmark);
    free(umark);
    free(fp);
    return rc;
}

/* ------------------------------------------------------------ open/close */

static void wipe_free(char *p) {
    if (!p) return;
    sodium_memzero(p, strlen(p));
    free(p);
}

static void s3_close(store *s) {
    s3 *x = s->impl;
    if (!x) return;
    for (int i = 0; i < x->npool; i++) curl_easy_cleanup(x->pool[i]);
    free(x->pool);
    pthread_mutex_destroy(&x->mu);
    wipe_free(x->access);
    wipe_free(x->secret);
    wipe_free(x->token);
    sodium_memzero(x, sizeof *x);
    free(x);
}

static const store_backend s3_backend = {
    .kind = "s3",
    .put = s3_put,
    .put_file = s3_put_file,
    .get = s3_get,
    .get_file = s3_get_file,
    .get_range = s3_get_range,
    .head = s3_head,
    .del = s3_del,
    .list = s3_list,
    .abort_uploads = s3_abort_uploads,
    .close = s3_close,
};

static bool cred_ok(const char *c) {
    for (; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) return false;
    return true;
}

int store_s3_open(store *s, const store_s3_url *u, const char *access, const char *secret, const char *token,
                  ts_err *e) {
    if (ts_curl_init()) return ts_fail(e, TS_EIO, "libcurl failed to initialise");
    if (!cred_ok(access) || !cred_ok(secret) || (token && !cred_ok(token)) || strlen(access) >= STORE_CRED_MAX ||
        strlen(secret) >= STORE_CRED_MAX)
        return ts_fail(e, TS_EINVAL, "%s: credentials contain control characters or are too long", s->url);
    s3 *x = calloc(1, sizeof *x);
    if (!x) return ts_fail(e, TS_ENOMEM, "out of memory");
    snprintf(x->endpoint, sizeof x->endpoint, "%s", u->endpoint);
    snprintf(x->bucket, sizeof x->bucket, "%s", u->bucket);
    snprintf(x->prefix, sizeof x->prefix, "%s", u->prefix);
    snprintf(x->region, sizeof x->region, "%s", u->region);
    snprintf(x->sigv4, sizeof x->sigv4, "aws:amz:%s:s3", u->region);
    x->access = strdup(access);
    x->secret = strdup(secret);
    x->token = token ? strdup(token) : NULL;
    if (!x->access || !x->secret || (token && !x->token)) {
        wipe_free(x->access);
        wipe_free(x->secret);
        wipe_free(x->token);
        free(x);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&x->mu, NULL);
    s->impl = x;
    s->be = &s3_backend;
    return TS_OK;
}
