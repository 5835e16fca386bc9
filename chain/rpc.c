/*
 * rpc.c - JSON-RPC 2.0 over HTTP POST with libcurl (see rpc.h).
 *
 * One easy handle per client keeps its connection open between calls; a
 * mutex serialises calls, so the handle, the id counter and the answer
 * buffer are only ever touched by one thread.  An attempt ends in one of
 * three ways: an answer (a JSON-RPC response we could read, result or error:
 * final), a failure worth repeating (the network, HTTP 5xx/429: retried
 * after a pause), or a failure that would repeat identically (a bad URL, an
 * oversized or unreadable answer, HTTP 4xx: final).
 */
#include "chain/rpc.h"

#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

struct rpc_client {
    pthread_mutex_t mu;
    CURL *h;
    struct curl_slist *headers;
    char *url;                 /* http(s)://... as sent */
    char host[300];            /* "host:port" for messages */
    rpc_opts o;                /* with the defaults filled in */
    uint64_t next_id;
    uint64_t rng;              /* xorshift state for the backoff jitter */
    rpc_stats stats;
    char errbuf[CURL_ERROR_SIZE];
    /* the answer being received */
    char *body;
    size_t len, cap;
    int too_big;
};

/* ----------------------------------------------------------------- helpers */

/* Copies at most max bytes of untrusted text, with anything unprintable
 * shown as '.', and "..." when cut. */
static void clean_text(char *out, size_t cap, const char *in, size_t n, size_t max) {
    size_t o = 0;
    if (!cap) return;
    for (size_t i = 0; i < n && i < max && o + 1 < cap; i++) {
        unsigned char ch = (unsigned char)in[i];
        out[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '.';
    }
    if (n > max && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = 0;
}

static bool method_ok(const char *m) {
    size_t n = 0;
    for (; m[n]; n++) {
        unsigned char ch = (unsigned char)m[n];
        if (!(isalnum(ch) || ch == '_' || ch == '.' || ch == ':' || ch == '-')) return false;
    }
    return n > 0 && n <= 128;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud) {
    rpc_client *c = ud;
    size_t n = sz * nm;
    if (c->len + n > c->o.max_response) {
        c->too_big = 1;
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 16384;
        while (cap < c->len + n + 1) cap *= 2;
        if (cap > c->o.max_response + 1) cap = c->o.max_response + 1;
        char *q = realloc(c->body, cap);
        if (!q) return 0;
        c->body = q;
        c->cap = cap;
    }
    memcpy(c->body + c->len, p, n);
    c->len += n;
    c->body[c->len] = 0;
    return n;
}

static void pause_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static double jitter01(rpc_client *c) {
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return (double)(x >> 11) / 9007199254740992.0;
}

/* ------------------------------------------------------------ open, close */

static void fill_defaults(rpc_opts *o, const rpc_opts *in) {
    *o = in ? *in : (rpc_opts){0};
    if (!(o->timeout_s > 0)) o->timeout_s = RPC_DEFAULT_TIMEOUT_S;
    if (!(o->connect_timeout_s > 0)) o->connect_timeout_s = RPC_DEFAULT_CONNECT_TIMEOUT_S;
    if (o->connect_timeout_s > o->timeout_s) o->connect_timeout_s = o->timeout_s;
    if (o->retries == 0) o->retries = RPC_DEFAULT_RETRIES;
    if (o->retries < 0) o->retries = 0;
    if (o->retries > 100) o->retries = 100;
    if (!(o->backoff_s > 0)) o->backoff_s = RPC_DEFAULT_BACKOFF_S;
    if (!(o->backoff_max_s > 0)) o->backoff_max_s = RPC_DEFAULT_BACKOFF_MAX_S;
    if (!o->max_response) o->max_response = RPC_MAX_RESPONSE;
}

/* ws:// -> http://, wss:// -> https://; other schemes are kept as given and
 * checked by the caller. */
static char *map_scheme(const char *url) {
    const char *rest = NULL, *scheme = NULL;
    if (!strncasecmp(url, "ws://", 5)) rest = url + 5, scheme = "http://";
    else if (!strncasecmp(url, "wss://", 6)) rest = url + 6, scheme = "https://";
    if (!rest) return strdup(url);
    size_t n = strlen(scheme) + strlen(rest) + 1;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s%s", scheme, rest);
    return out;
}

int rpc_open(const char *url, const rpc_opts *opts, rpc_client **out, ts_err *e) {
    *out = NULL;
    if (!url || !*url) return ts_fail(e, TS_EINVAL, "rpc: empty node URL");
    int crc = ts_curl_init();
    if (crc != CURLE_OK)
        return ts_fail(e, TS_ENET, "rpc: libcurl failed to initialise: %s", curl_easy_strerror((CURLcode)crc));
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return ts_fail(e, TS_EINVAL, "rpc: node URL contains a space or control character");

    rpc_client *c = calloc(1, sizeof *c);
    if (!c) return ts_fail(e, TS_ENOMEM, "rpc: out of memory");
    fill_defaults(&c->o, opts);
    pthread_mutex_init(&c->mu, NULL);
    c->url = map_scheme(url);
    int rc = TS_OK;
    char *scheme = NULL, *host = NULL, *port = NULL;
    CURLU *u = curl_url();
    if (!c->url || !u) {
        rc = ts_fail(e, TS_ENOMEM, "rpc: out of memory");
        goto done;
    }
    /* what the URL names, parsed the way libcurl will read it */
    if (curl_url_set(u, CURLUPART_URL, c->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
        char shown[120];
        clean_text(shown, sizeof shown, url, strlen(url), 80);
        rc = ts_fail(e, TS_EINVAL, "rpc: cannot read the node URL '%s' (want http://, https://, ws:// or wss://HOST[:PORT])",
                     shown);
        goto done;
    }
    if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")) {
        rc = ts_fail(e, TS_EINVAL, "rpc: node URL scheme '%s' is not http, https, ws or wss", scheme);
        goto done;
    }
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    snprintf(c->host, sizeof c->host, "%s:%s", host, port ? port : "?");

    c->h = curl_easy_init();
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (c->headers) c->headers = curl_slist_append(c->headers, "Accept: application/json");
    if (c->headers) c->headers = curl_slist_append(c->headers, "Expect:");
    if (!c->h || !c->headers) {
        rc = ts_fail(e, TS_ENOMEM, "rpc: out of memory");
        goto done;
    }
    CURL *h = c->h;
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "tessera/" TESSERA_VERSION);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* the cap counts decoded bytes */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->o.connect_timeout_s * 1000));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(c->o.timeout_s * 1000));
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->o.max_response);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    c->rng = ((uint64_t)(uintptr_t)c * 0x9E3779B97F4A7C15ull) ^ (uint64_t)(ts_mono() * 1e9) ^ 0x2545F4914F6CDD1Dull;
    if (!c->rng) c->rng = 1;

done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    if (u) curl_url_cleanup(u);
    if (rc) {
        rpc_close(c);
        return rc;
    }
    *out = c;
    return TS_OK;
}

void rpc_close(rpc_client *c) {
    if (!c) return;
    if (c->h) curl_easy_cleanup(c->h);
    curl_slist_free_all(c->headers);
    pthread_mutex_destroy(&c->mu);
    free(c->body);
    free(c->url);
    free(c);
}

const char *rpc_url(const rpc_client *c) { return c->url; }
const char *rpc_host(const rpc_client *c) { return c->host; }

void rpc_get_stats(rpc_client *c, rpc_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------- reading answers */

static int map_rpc_code(long code) {
    if (code == -32601) return TS_EUNSUPPORTED;
    if (code == -32700 || code == -32600 || code == -32602) return TS_EINVAL;
    if (code >= 1010 && code <= 1019) return TS_EDENIED; /* author_*: pool refusals */
    return TS_ESTATE;
}

/* An error object -> the error it stands for.  JSON-RPC 2.0 requires a
 * numeric code, but chopsticks sends {"message": ...} alone; such objects
 * are accepted and classified by their message. */
static int error_member(rpc_client *c, const char *method, const cJSON *err, long *rpc_code, ts_err *e) {
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    bool has_code = cJSON_IsNumber(code) && code->valuedouble == (double)(long)code->valuedouble;
    if (!cJSON_IsObject(err) || (code && !has_code) || (!has_code && !cJSON_IsString(msg)))
        return ts_fail(e, TS_EFORMAT, "%s (%s): malformed JSON-RPC error object in the answer", method, c->host);
    long k = has_code ? (long)code->valuedouble : 0;
    if (rpc_code) *rpc_code = k;
    char m[200] = "", d[240] = "";
    if (cJSON_IsString(msg)) clean_text(m, sizeof m, msg->valuestring, strlen(msg->valuestring), 180);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(err, "data");
    if (cJSON_IsString(data)) {
        clean_text(d, sizeof d, data->valuestring, strlen(data->valuestring), 220);
    } else if (data && !cJSON_IsNull(data)) {
        char *t = cJSON_PrintUnformatted(data);
        if (t) clean_text(d, sizeof d, t, strlen(t), 220);
        free(t);
    }
    int ts;
    char num[32] = "";
    if (has_code) {
        ts = map_rpc_code(k);
        snprintf(num, sizeof num, "%ld ", k);
    } else if (!strncmp(m, "Method not found", 16)) {
        ts = TS_EUNSUPPORTED;
    } else if (strstr(m, "\"invalid\"") || strstr(m, "Invalid Transaction")) {
        ts = TS_EDENIED; /* chopsticks' transaction pool refusals: {"invalid":{"stale":null}} */
    } else {
        ts = TS_ESTATE;
    }
    if (d[0]) return ts_fail(e, ts, "%s (%s): %s%s (%s)", method, c->host, num, m, d);
    return ts_fail(e, ts, "%s (%s): %s%s", method, c->host, num, m);
}

/* The answer's body -> *result, or the error it carries.  *is_answer tells
 * whether the body was a JSON-RPC response for this request at all (a 5xx
 * carrying one is an answer, not a reason to retry). */
static int read_answer(rpc_client *c, const char *method, uint64_t id, long status, cJSON **result,
                       long *rpc_code, bool *is_answer, ts_err *e) {
    *is_answer = false;
    if (!c->len) return ts_fail(e, TS_EFORMAT, "%s (%s): empty answer (HTTP %ld)", method, c->host, status);
    /* the body is NUL-terminated one byte past len; a NUL inside is garbage */
    cJSON *root = memchr(c->body, 0, c->len) ? NULL : cJSON_ParseWithLengthOpts(c->body, c->len + 1, NULL, 1);
    if (!root || !cJSON_IsObject(root)) {
        char shown[120];
        clean_text(shown, sizeof shown, c->body, c->len, 80);
        cJSON_Delete(root);
        return ts_fail(e, TS_EFORMAT, "%s (%s): the answer is not a JSON-RPC object (HTTP %ld, %zu bytes: \"%s\")",
                       method, c->host, status, c->len, shown);
    }
    int rc = TS_OK;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "jsonrpc");
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(root, "id");
    cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (!cJSON_IsString(ver) || strcmp(ver->valuestring, "2.0")) {
        rc = ts_fail(e, TS_EFORMAT, "%s (%s): the answer lacks \"jsonrpc\": \"2.0\"", method, c->host);
    } else if (res && err) {
        rc = ts_fail(e, TS_EFORMAT, "%s (%s): the answer has both a result and an error", method, c->host);
    } else if (!res && !err) {
        rc = ts_fail(e, TS_EFORMAT, "%s (%s): the answer has neither a result nor an error", method, c->host);
    } else if (!(cJSON_IsNumber(jid) && jid->valuedouble == (double)id) &&
               !(err && (cJSON_IsNull(jid) || !jid))) {
        /* an error about a request the node could not read may carry id null */
        char shown[64] = "(none)";
        if (jid) {
            char *t = cJSON_PrintUnformatted(jid);
            if (t) clean_text(shown, sizeof shown, t, strlen(t), 40);
            free(t);
        }
        rc = ts_fail(e, TS_EFORMAT, "%s (%s): the answer is for id %s, not %llu", method, c->host, shown,
                     (unsigned long long)id);
    } else if (err) {
        *is_answer = true;
        rc = error_member(c, method, err, rpc_code, e);
    } else if (status < 200 || status > 299) {
        rc = ts_fail(e, TS_EFORMAT, "%s (%s): a result came with HTTP %ld", method, c->host, status);
    } else {
        *is_answer = true;
        *result = cJSON_DetachItemViaPointer(root, res);
    }
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ calls */

static bool curl_retryable(CURLcode rc) {
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

static int call_text(rpc_client *c, const char *method, const char *params_text, cJSON **result,
                     long *rpc_code, ts_err *e) {
    pthread_mutex_lock(&c->mu);
    c->stats.calls++;
    uint64_t id = ++c->next_id;
    size_t cap = strlen(method) + strlen(params_text) + 96;
    char *req = malloc(cap);
    if (!req) {
        pthread_mutex_unlock(&c->mu);
        return ts_fail(e, TS_ENOMEM, "%s (%s): out of memory", method, c->host);
    }
    int n = snprintf(req, cap, "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"%s\",\"params\":%s}",
                     (unsigned long long)id, method, params_text);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, req);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);

    int rc = TS_OK;
    for (int attempt = 0;; attempt++) {
        c->len = 0;
        c->too_big = 0;
        c->errbuf[0] = 0;
        if (c->body) c->body[0] = 0;
        c->stats.attempts++;
        CURLcode cr = curl_easy_perform(c->h);
        c->stats.bytes_in += c->len;
        long status = 0;
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
        bool retry = false;
        char why[CURL_ERROR_SIZE + 64];
        if (c->too_big || cr == CURLE_FILESIZE_EXCEEDED) {
            rc = ts_fail(e, TS_ETOOBIG, "%s (%s): the answer is larger than %zu bytes; refused", method, c->host,
                         c->o.max_response);
            break;
        }
        if (cr != CURLE_OK) {
            retry = curl_retryable(cr);
            rc = cr == CURLE_OPERATION_TIMEDOUT ? TS_ETIMEOUT : TS_ENET;
            char eb[CURL_ERROR_SIZE];
            clean_text(eb, sizeof eb, c->errbuf, strlen(c->errbuf), 200);
            snprintf(why, sizeof why, "%s%s%s", curl_easy_strerror(cr), eb[0] ? ": " : "", eb);
        } else {
            bool is_answer;
            ts_err ae = {0};
            rc = read_answer(c, method, id, status, result, rpc_code, &is_answer, &ae);
            if (is_answer || (status >= 200 && status <= 299)) {
                /* an answer, or a 2xx whose body is wrong: both final */
                if (rc && e) *e = ae;
                break;
            }
            /* an HTTP error without a JSON-RPC answer in it */
            char shown[120];
            clean_text(shown, sizeof shown, c->body ? c->body : "", c->len, 80);
            snprintf(why, sizeof why, "HTTP %ld%s%s%s", status, c->len ? " \"" : "", shown, c->len ? "\"" : "");
            if (status >= 500 || status == 429) {
                retry = true;
                rc = TS_ENET;
            } else {
                rc = (status == 401 || status == 403) ? TS_EDENIED : status == 413 ? TS_ETOOBIG : TS_ENET;
                ts_fail(e, rc, "%s (%s): %s", method, c->host, why);
                break;
            }
        }
        if (!retry || attempt >= c->o.retries) {
            if (attempt)
                ts_fail(e, rc, "%s (%s): %s (gave up after %d attempts)", method, c->host, why, attempt + 1);
            else
                ts_fail(e, rc, "%s (%s): %s", method, c->host, why);
            break;
        }
        double d = c->o.backoff_s;
        for (int i = 0; i < attempt && d < c->o.backoff_max_s; i++) d *= 2;
        if (d > c->o.backoff_max_s) d = c->o.backoff_max_s;
        c->stats.retries++;
        pause_s(d * (0.5 + 0.5 * jitter01(c)));
    }
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, NULL);
    free(req);
    /* do not keep a huge answer's buffer around */
    if (c->cap > (4u << 20)) {
        free(c->body);
        c->body = NULL;
        c->cap = 0;
    }
    c->len = 0;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int rpc_call_ex(rpc_client *c, const char *method, const char *params_json, cJSON **result, long *rpc_code,
                ts_err *e) {
    *result = NULL;
    if (rpc_code) *rpc_code = 0;
    if (!method || !method_ok(method))
        return ts_fail(e, TS_EINVAL, "rpc (%s): invalid method name", c->host);
    if (!params_json) return call_text(c, method, "[]", result, rpc_code, e);
    cJSON *p = cJSON_ParseWithOpts(params_json, NULL, 1);
    bool ok = p && (cJSON_IsArray(p) || cJSON_IsObject(p));
    cJSON_Delete(p);
    if (!ok) return ts_fail(e, TS_EINVAL, "%s (%s): params must be a JSON array or object", method, c->host);
    return call_text(c, method, params_json, result, rpc_code, e);
}

int rpc_call(rpc_client *c, const char *method, const char *params_json, cJSON **result, ts_err *e) {
    return rpc_call_ex(c, method, params_json, result, NULL, e);
}

int rpc_call_json(rpc_client *c, const char *method, const cJSON *params, cJSON **result, ts_err *e) {
    *result = NULL;
    if (!method || !method_ok(method))
        return ts_fail(e, TS_EINVAL, "rpc (%s): invalid method name", c->host);
    if (!params) return call_text(c, method, "[]", result, NULL, e);
    if (!cJSON_IsArray(params) && !cJSON_IsObject(params))
        return ts_fail(e, TS_EINVAL, "%s (%s): params must be a JSON array or object", method, c->host);
    char *t = cJSON_PrintUnformatted(params);
    if (!t) return ts_fail(e, TS_ENOMEM, "%s (%s): out of memory", method, c->host);
    int rc = call_text(c, method, t, result, NULL, e);
    free(t);
    return rc;
}

/* -------------------------------------------------------------------- hex */

char *rpc_hex(const uint8_t *in, size_t n) {
    static const char digits[] = "0123456789abcdef";
    char *out = malloc(2 * n + 3);
    if (!out) return NULL;
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        out[2 + 2 * i] = digits[in[i] >> 4];
        out[3 + 2 * i] = digits[in[i] & 15];
    }
    out[2 + 2 * n] = 0;
    return out;
}

static int nibble(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

int rpc_unhex(const char *hex, uint8_t **out, size_t *len, ts_err *e) {
    *out = NULL;
    *len = 0;
    if (!hex || hex[0] != '0' || (hex[1] != 'x' && hex[1] != 'X'))
        return ts_fail(e, TS_EFORMAT, "hex value does not start with 0x");
    size_t n = strlen(hex + 2);
    if (n % 2) return ts_fail(e, TS_EFORMAT, "hex value has an odd number of digits (%zu)", n);
    uint8_t *b = malloc(n / 2 ? n / 2 : 1);
    if (!b) return ts_fail(e, TS_ENOMEM, "out of memory for %zu bytes of hex", n / 2);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = nibble(hex[2 + 2 * i]), lo = nibble(hex[3 + 2 * i]);
        if (hi < 0 || lo < 0) {
            free(b);
            return ts_fail(e, TS_EFORMAT, "hex value has a non-hex character at offset %zu", 2 + 2 * i);
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = b;
    *len = n / 2;
    return TS_OK;
}

int rpc_call_hex(rpc_client *c, const char *method, const char *params_json, uint8_t **out, size_t *len,
                 ts_err *e) {
    *out = NULL;
    *len = 0;
    cJSON *r = NULL;
    int rc = rpc_call(c, method, params_json, &r, e);
    if (rc) return rc;
    if (cJSON_IsNull(r)) {
        rc = ts_fail(e, TS_ENOTFOUND, "%s (%s): no value (null result)", method, c->host);
    } else if (!cJSON_IsString(r)) {
        rc = ts_fail(e, TS_EFORMAT, "%s (%s): the result is not a hex string", method, c->host);
    } else if ((rc = rpc_unhex(r->valuestring, out, len, e))) {
        ts_wrap(e, "%s (%s): result", method, c->host);
    }
    cJSON_Delete(r);
    return rc;
}
