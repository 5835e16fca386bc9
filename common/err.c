/* err.c - status codes with one readable line of context. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const char *const names[TS_ECOUNT] = {
    [TS_OK] = "ok",
    [TS_EINVAL] = "invalid argument",
    [TS_EIO] = "i/o error",
    [TS_ENOMEM] = "out of memory",
    [TS_EFORMAT] = "malformed data",
    [TS_ETOOBIG] = "too large",
    [TS_ESIG] = "signature or hash mismatch",
    [TS_ENOTFOUND] = "not found",
    [TS_EEXIST] = "already exists",
    [TS_ENET] = "network error",
    [TS_ETIMEOUT] = "timed out",
    [TS_ECONFIG] = "configuration error",
    [TS_EUNSUPPORTED] = "unsupported",
    [TS_ESTATE] = "invalid state",
    [TS_EDENIED] = "denied",
};

const char *ts_strerror(int code) {
    if (code < 0 || code >= TS_ECOUNT) return "unknown error";
    return names[code];
}

void ts_err_clear(ts_err *e) {
    if (!e) return;
    e->code = 0;
    e->msg[0] = 0;
}

int ts_fail(ts_err *e, int code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

int ts_wrap(ts_err *e, const char *fmt, ...) {
    if (!e) return TS_EINVAL;
    char prefix[256], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old);
    return e->code ? e->code : TS_EINVAL;
}

void ts_die(const char *prog, const ts_err *e) {
    fprintf(stderr, "%s: %s\n", prog ? prog : "tessera",
            e && e->msg[0] ? e->msg : ts_strerror(e ? e->code : TS_EINVAL));
    exit(1);
}
