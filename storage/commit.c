/* commit.c - bucket commitments: the read credentials a participant publishes
 * on chain, in Templar's 128-character R2 layout or as a store URL with the
 * credentials as user information (docs/FORMATS.md section 8).
 *
 * A commitment comes from the chain, that is from anyone: it is parsed
 * strictly, and under the default policy it may only name an https S3
 * endpoint, so a hostile commitment cannot make a node read its own files
 * (file://) or talk plain http to a service on its network. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "storage/internal.h"

static bool all_of(const char *s, size_t n, int (*pred)(int)) {
    for (size_t i = 0; i < n; i++)
        if (!pred((unsigned char)s[i])) return false;
    return true;
}

static int is_lower_hex(int c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
static int is_alnum(int c) { return isalnum(c); }

int store_commitment_r2(store_commitment *c, const char *account_id, const char *access_key,
                        const char *secret_key, ts_err *e) {
    memset(c, 0, sizeof *c);
    if (strlen(account_id) != 32 || !all_of(account_id, 32, is_lower_hex))
        return ts_fail(e, TS_EINVAL, "R2 account id must be 32 lower-case hex characters");
    if (strlen(access_key) != 32 || !all_of(access_key, 32, is_alnum))
        return ts_fail(e, TS_EINVAL, "R2 access key id must be 32 letters or digits");
    if (strlen(secret_key) != 64 || !all_of(secret_key, 64, is_alnum))
        return ts_fail(e, TS_EINVAL, "R2 secret must be 64 letters or digits");
    snprintf(c->url, sizeof c->url, "s3://%s?endpoint=https://%s.r2.cloudflarestorage.com&region=auto", account_id,
             account_id);
    snprintf(c->access_key, sizeof c->access_key, "%s", access_key);
    snprintf(c->secret_key, sizeof c->secret_key, "%s", secret_key);
    return TS_OK;
}

/* The policy check on an endpoint "scheme://host[:port]". */
static int endpoint_allowed(const char *ep, store_commit_policy policy, ts_err *e) {
    if (policy == STORE_COMMIT_ANY) return TS_OK;
    if (strncmp(ep, "https://", 8))
        return ts_fail(e, TS_EDENIED, "commitment names a plain http endpoint (only https is accepted; --allow-local-peers accepts http:// and file://)");
    return TS_OK;
}

/* The user information of "s3://USERINFO@bucket...": found as the store URL
 * parser finds it (up to the last '@' before the path and the query); it must
 * hold exactly one unencoded ':', the one between ACCESS and SECRET.  With
 * more, "a:b:c" could be the key "a:b" or the secret "b:c": both halves are
 * percent-encoded (FORMATS 8.4), so a ':' inside either one is %3A. */
static int userinfo_check(const char *url, ts_err *e) {
    const char *p = url + 5, *q = strchr(p, '?');
    const char *pend = q ? q : p + strlen(p);
    const char *slash = memchr(p, '/', (size_t)(pend - p));
    const char *hostend = slash ? slash : pend, *at = NULL;
    for (const char *x = p; x < hostend; x++)
        if (*x == '@') at = x;
    int colons = 0;
    for (const char *x = p; at && x < at; x++) colons += *x == ':';
    if (colons > 1)
        return ts_fail(e, TS_EINVAL,
                       "commitment credentials hold %d unencoded ':' (ACCESS:SECRET@ takes one): a ':' inside the "
                       "access key or the secret must be percent-encoded as %%3A",
                       colons);
    return TS_OK;
}

int store_commitment_parse(const char *text, store_commit_policy policy, store_commitment *c, ts_err *e) {
    memset(c, 0, sizeof *c);
    if (!text) return ts_fail(e, TS_EINVAL, "empty commitment");
    size_t n = strnlen(text, STORE_URL_MAX + 1);
    if (n == STORE_COMMIT_R2_LEN && all_of(text, n, is_alnum)) {
        char acct[33], ak[33], sk[65];
        memcpy(acct, text, 32);
        acct[32] = 0;
        memcpy(ak, text + 32, 32);
        ak[32] = 0;
        memcpy(sk, text + 64, 64);
        sk[64] = 0;
        int rc = store_commitment_r2(c, acct, ak, sk, e);
        sodium_memzero(sk, sizeof sk);
        return rc ? ts_wrap(e, "commitment") : TS_OK;
    }
    if (n > STORE_URL_MAX - 1) return ts_fail(e, TS_EINVAL, "commitment longer than %d bytes", STORE_URL_MAX - 1);
    if (!strncmp(text, "file://", 7)) {
        if (policy != STORE_COMMIT_ANY)
            return ts_fail(e, TS_EDENIED, "commitment names a local directory (file://), refused for remote peers");
        char path[STORE_URL_MAX];
        if (store_parse_file_url(text, path, sizeof path, e)) return ts_wrap(e, "commitment");
        snprintf(c->url, sizeof c->url, "%s", text);
        return TS_OK;
    }
    if (!strncmp(text, "s3://", 5)) {
        int rc = userinfo_check(text, e);
        if (rc) return rc;
        store_s3_url *u = malloc(sizeof *u);
        if (!u) return ts_fail(e, TS_ENOMEM, "out of memory");
        if ((rc = store_parse_s3_url(text, u, e))) rc = ts_wrap(e, "commitment");
        else if (!u->has_userinfo)
            rc = ts_fail(e, TS_EINVAL, "commitment URL carries no credentials (s3://ACCESS:SECRET@bucket/...)");
        else if (!u->has_endpoint && policy != STORE_COMMIT_ANY)
            rc = TS_OK; /* the AWS endpoint of the region: https */
        else
            rc = endpoint_allowed(u->endpoint, policy, e);
        if (!rc) {
            store_s3_url_format(u, c->url, sizeof c->url);
            snprintf(c->access_key, sizeof c->access_key, "%s", u->access_key);
            snprintf(c->secret_key, sizeof c->secret_key, "%s", u->secret_key);
        }
        sodium_memzero(u, sizeof *u);
        free(u);
        if (rc) sodium_memzero(c, sizeof *c);
        return rc;
    }
    return ts_fail(e, TS_EINVAL,
                   "commitment is neither the 128-character R2 form nor an s3:// or file:// URL (%zu bytes)", n);
}

static void pct(char *out, size_t cap, const char *in) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < cap; in++) {
        unsigned char ch = (unsigned char)*in;
        if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = 0;
}

int store_commitment_format(const store_commitment *c, char *out, size_t cap, ts_err *e) {
    if (!strncmp(c->url, "file://", 7)) {
        if (strlen(c->url) + 1 > cap) return ts_fail(e, TS_EINVAL, "commitment does not fit");
        snprintf(out, cap, "%s", c->url);
        return TS_OK;
    }
    store_s3_url u;
    if (store_parse_s3_url(c->url, &u, e)) return ts_wrap(e, "commitment");
    if (!c->access_key[0] || !c->secret_key[0]) return ts_fail(e, TS_EINVAL, "commitment needs credentials");
    char r2[256];
    snprintf(r2, sizeof r2, "https://%s.r2.cloudflarestorage.com", u.bucket);
    size_t al = strlen(c->access_key), sl = strlen(c->secret_key);
    if (!strcmp(u.endpoint, r2) && !strcmp(u.region, "auto") && !u.prefix[0] && strlen(u.bucket) == 32 &&
        all_of(u.bucket, 32, is_lower_hex) && al == 32 && all_of(c->access_key, 32, is_alnum) && sl == 64 &&
        all_of(c->secret_key, 64, is_alnum)) {
        if (cap < STORE_COMMIT_R2_LEN + 1) return ts_fail(e, TS_EINVAL, "commitment does not fit");
        snprintf(out, cap, "%s%s%s", u.bucket, c->access_key, c->secret_key);
        return TS_OK;
    }
    char ak[3 * STORE_CRED_MAX], sk[3 * STORE_CRED_MAX];
    pct(ak, sizeof ak, c->access_key);
    pct(sk, sizeof sk, c->secret_key);
    /* s3://AK:SK@ + the rest of the credential-free URL */
    int n = snprintf(out, cap, "s3://%s:%s@%s", ak, sk, c->url + 5);
    sodium_memzero(sk, sizeof sk);
    if (n < 0 || (size_t)n >= cap || n >= STORE_URL_MAX) {
        sodium_memzero(out, cap);
        return ts_fail(e, TS_EINVAL, "commitment longer than %d bytes", STORE_URL_MAX - 1);
    }
    return TS_OK;
}

int store_open_commitment(store **out, const store_commitment *c, const store_opts *o, ts_err *e) {
    store_opts oo = o ? *o : (store_opts){0};
    oo.access_key = c->access_key[0] ? c->access_key : NULL;
    oo.secret_key = c->secret_key[0] ? c->secret_key : NULL;
    oo.session_token = NULL;
    oo.no_env = true; /* a peer's bucket never gets our own credentials */
    return store_open(out, c->url, &oo, e);
}
