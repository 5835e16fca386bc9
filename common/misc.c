/* misc.c - strict number parsing, human formatting, a progress line. */
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

bool ts_run_id_valid(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > TS_RUN_ID_MAX) return false;
    for (; *s; s++)
        if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') || ('0' <= *s && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}

int ts_parse_i64(const char *s, int64_t *out) {
    if (!s || !*s) return TS_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return TS_EINVAL;
    *out = v;
    return TS_OK;
}

int ts_parse_f64(const char *s, double *out) {
    if (!s || !*s) return TS_EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return TS_EINVAL;
    *out = v;
    return TS_OK;
}

void ts_fmt_bytes(char *out, size_t cap, double b) {
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (fabs(b) >= 1000 && i < 4) {
        b /= 1000;
        i++;
    }
    if (i == 0) snprintf(out, cap, "%.0f B", b);
    else snprintf(out, cap, "%.*f %s", b < 10 ? 2 : b < 100 ? 1 : 0, b, u[i]);
}

void ts_fmt_duration(char *out, size_t cap, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    if (s < 60) snprintf(out, cap, "%.1fs", s);
    else if (s < 3600) snprintf(out, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(out, cap, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

static int g_progress_tty = -1;
static double g_progress_last;
static size_t g_progress_width;

void ts_progress(const char *fmt, ...) {
    if (g_progress_tty < 0) g_progress_tty = isatty(STDERR_FILENO);
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (g_progress_tty) {
        size_t n = strlen(line);
        fprintf(stderr, "\r%s", line);
        for (size_t i = n; i < g_progress_width; i++) fputc(' ', stderr);
        g_progress_width = n;
        fflush(stderr);
    } else {
        double now = ts_mono();
        if (now - g_progress_last >= 5.0) {
            g_progress_last = now;
            fprintf(stderr, "%s\n", line);
        }
    }
}

void ts_progress_done(void) {
    if (g_progress_tty > 0 && g_progress_width) fputc('\n', stderr);
    g_progress_width = 0;
    g_progress_last = 0;
}

static bool sbuf_room(ts_sbuf *b, size_t n) {
    if (b->oom) return false;
    if (b->len + n + 1 <= b->cap) return true;
    size_t nc = (b->cap + n + 1) * 2;
    char *np = realloc(b->p, nc);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = nc;
    return true;
}

void ts_sbuf_put(ts_sbuf *b, const char *s, size_t n) {
    if (!sbuf_room(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void ts_sbuf_printf(ts_sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->oom = true;
        return;
    }
    if (!sbuf_room(b, (size_t)k)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)k;
}
