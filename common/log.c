/* log.c - levelled, timestamped log lines on stderr; JSON lines on request.
 *
 * One write(2) per line so lines from several threads or processes sharing a
 * terminal or file never interleave mid-line. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include "common.h"

static ts_log_level g_level = TS_LOG_INFO;
static bool g_json;
static char g_component[64];

void ts_log_set_level(ts_log_level lvl) { g_level = lvl; }
void ts_log_set_json(bool on) { g_json = on; }
void ts_log_set_component(const char *name) {
    snprintf(g_component, sizeof g_component, "%s", name ? name : "");
}

static const char *const lvl_names[] = {"debug", "info", "warn", "error"};

int ts_log_parse_level(const char *s, ts_log_level *out) {
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, lvl_names[i]) == 0) {
            *out = (ts_log_level)i;
            return TS_OK;
        }
    return TS_EINVAL;
}

double ts_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double ts_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Appends s to buf as a JSON string body (no quotes). */
static size_t json_escape(char *buf, size_t cap, size_t at, const char *s) {
    for (; *s && at + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[at++] = '\\';
            buf[at++] = (char)c;
        } else if (c < 0x20) {
            at += (size_t)snprintf(buf + at, cap - at, "\\u%04x", c);
        } else {
            buf[at++] = (char)c;
        }
    }
    return at;
}

void ts_vlog(ts_log_level lvl, const char *fmt, va_list ap) {
    if (lvl < g_level) return;
    char msg[2048], line[4608], stamp[40];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof stamp - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    size_t at;
    if (g_json) {
        at = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",", stamp,
                              lvl_names[lvl]);
        if (g_component[0]) {
            at += (size_t)snprintf(line + at, sizeof line - at, "\"component\":\"");
            at = json_escape(line, sizeof line, at, g_component);
            at += (size_t)snprintf(line + at, sizeof line - at, "\",");
        }
        at += (size_t)snprintf(line + at, sizeof line - at, "\"msg\":\"");
        at = json_escape(line, sizeof line, at, msg);
        at += (size_t)snprintf(line + at, sizeof line - at, "\"}\n");
    } else {
        at = (size_t)snprintf(line, sizeof line, "%s %-5s %s%s%s\n", stamp, lvl_names[lvl],
                              g_component, g_component[0] ? ": " : "", msg);
    }
    if (at >= sizeof line) {
        at = sizeof line - 1;
        line[at - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, at);
    (void)w;
}

void ts_log(ts_log_level lvl, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ts_vlog(lvl, fmt, ap);
    va_end(ap);
}
