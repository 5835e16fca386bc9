/* metrics.c - a small Prometheus text exposition endpoint.
 *
 * One thread accepts connections on a loopback (or any-interface) socket and
 * answers GET /metrics with the current samples and GET /healthz with "ok".
 * Requests are read with a deadline and a size cap; anything else gets 404.
 * Samples live in a mutex-protected table; updates never block on I/O. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "metrics.h"

#define MAX_FAMILIES 64
#define MAX_SAMPLES 1024

typedef struct {
    char name[64], type[16], help[160];
} family;

typedef struct {
    int fam;
    char labels[96];
    double value;
} sample;

struct node_metrics {
    pthread_mutex_t mu;
    family fams[MAX_FAMILIES];
    int nfams;
    sample samples[MAX_SAMPLES];
    int nsamples;
    int fd;
    int stop_pipe[2];
    pthread_t thread;
    bool running;
};

static int find_family(node_metrics *m, const char *name) {
    for (int i = 0; i < m->nfams; i++)
        if (!strcmp(m->fams[i].name, name)) return i;
    return -1;
}

void node_metrics_declare(node_metrics *m, const char *name, const char *type, const char *help) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    if (find_family(m, name) < 0 && m->nfams < MAX_FAMILIES) {
        family *f = &m->fams[m->nfams++];
        snprintf(f->name, sizeof f->name, "%s", name);
        snprintf(f->type, sizeof f->type, "%s", type);
        snprintf(f->help, sizeof f->help, "%s", help);
    }
    pthread_mutex_unlock(&m->mu);
}

static sample *get_sample(node_metrics *m, const char *name, const char *labels) {
    int f = find_family(m, name);
    if (f < 0) {
        if (m->nfams >= MAX_FAMILIES) return NULL;
        f = m->nfams++;
        snprintf(m->fams[f].name, sizeof m->fams[f].name, "%s", name);
        snprintf(m->fams[f].type, sizeof m->fams[f].type, "gauge");
        m->fams[f].help[0] = 0;
    }
    const char *l = labels ? labels : "";
    for (int i = 0; i < m->nsamples; i++)
        if (m->samples[i].fam == f && !strcmp(m->samples[i].labels, l)) return &m->samples[i];
    if (m->nsamples >= MAX_SAMPLES) return NULL;
    sample *s = &m->samples[m->nsamples++];
    s->fam = f;
    snprintf(s->labels, sizeof s->labels, "%s", l);
    s->value = 0;
    return s;
}

void node_metrics_set(node_metrics *m, const char *name, const char *labels, double value) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    sample *s = get_sample(m, name, labels);
    if (s) s->value = value;
    pthread_mutex_unlock(&m->mu);
}

void node_metrics_add(node_metrics *m, const char *name, const char *labels, double delta) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    sample *s = get_sample(m, name, labels);
    if (s) s->value += delta;
    pthread_mutex_unlock(&m->mu);
}

char *node_metrics_render(node_metrics *m) {
    pthread_mutex_lock(&m->mu);
    size_t cap = 4096 + (size_t)m->nsamples * 200 + (size_t)m->nfams * 300, at = 0;
    char *out = malloc(cap);
    if (!out) {
        pthread_mutex_unlock(&m->mu);
        return NULL;
    }
    out[0] = 0;
    for (int f = 0; f < m->nfams; f++) {
        if (m->fams[f].help[0])
            at += (size_t)snprintf(out + at, cap - at, "# HELP %s %s\n", m->fams[f].name, m->fams[f].help);
        at += (size_t)snprintf(out + at, cap - at, "# TYPE %s %s\n", m->fams[f].name, m->fams[f].type);
        for (int i = 0; i < m->nsamples; i++) {
            if (m->samples[i].fam != f) continue;
            if (m->samples[i].labels[0])
                at += (size_t)snprintf(out + at, cap - at, "%s{%s} %.17g\n", m->fams[f].name,
                                       m->samples[i].labels, m->samples[i].value);
            else
                at += (size_t)snprintf(out + at, cap - at, "%s %.17g\n", m->fams[f].name, m->samples[i].value);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return out;
}

static void send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, const char *status, const char *ctype, const char *body) {
    char head[256];
    size_t bl = strlen(body);
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      status, ctype, bl);
    send_all(fd, head, (size_t)hl);
    send_all(fd, body, bl);
}

static void serve_one(node_metrics *m, int fd) {
    char req[2048];
    size_t n = 0;
    double deadline = ts_mono() + 2.0;
    while (n < sizeof req - 1 && !memmem(req, n, "\r\n\r\n", 4)) {
        int left = (int)((deadline - ts_mono()) * 1000);
        if (left <= 0) return;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, left) <= 0) return;
        ssize_t r = recv(fd, req + n, sizeof req - 1 - n, 0);
        if (r <= 0) return;
        n += (size_t)r;
    }
    req[n] = 0;
    if (!strncmp(req, "GET /metrics ", 13) || !strncmp(req, "GET /metrics?", 13)) {
        char *body = node_metrics_render(m);
        respond(fd, "200 OK", "text/plain; version=0.0.4", body ? body : "");
        free(body);
    } else if (!strncmp(req, "GET /healthz ", 13)) {
        respond(fd, "200 OK", "text/plain", "ok\n");
    } else {
        respond(fd, "404 Not Found", "text/plain", "not found\n");
    }
}

static void *serve(void *arg) {
    node_metrics *m = arg;
    for (;;) {
        struct pollfd p[2] = {{m->fd, POLLIN, 0}, {m->stop_pipe[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents) break;
        if (p[0].revents & POLLIN) {
            int c = accept(m->fd, NULL, NULL);
            if (c < 0) continue;
            serve_one(m, c);
            close(c);
        }
    }
    return NULL;
}

int node_metrics_start(int port, bool bind_all, node_metrics **out, int *port_out, ts_err *e) {
    *out = NULL;
    if (port < 0 || port > 65535) return ts_fail(e, TS_EINVAL, "metrics port %d out of range", port);
    node_metrics *m = calloc(1, sizeof *m);
    if (!m) return ts_fail(e, TS_ENOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    m->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(bind_all ? INADDR_ANY : INADDR_LOOPBACK);
    if (m->fd < 0 || bind(m->fd, (struct sockaddr *)&a, sizeof a) || listen(m->fd, 16) ||
        pipe(m->stop_pipe)) {
        int err = errno;
        if (m->fd >= 0) close(m->fd);
        free(m);
        return ts_fail(e, TS_EIO, "metrics endpoint on port %d: %s", port, strerror(err));
    }
    socklen_t al = sizeof a;
    getsockname(m->fd, (struct sockaddr *)&a, &al);
    if (port_out) *port_out = ntohs(a.sin_port);
    if (pthread_create(&m->thread, NULL, serve, m)) {
        close(m->fd);
        free(m);
        return ts_fail(e, TS_EIO, "metrics thread failed to start");
    }
    m->running = true;
    *out = m;
    return TS_OK;
}

void node_metrics_stop(node_metrics *m) {
    if (!m) return;
    if (m->running) {
        ssize_t w = write(m->stop_pipe[1], "x", 1);
        (void)w;
        pthread_join(m->thread, NULL);
    }
    close(m->fd);
    close(m->stop_pipe[0]);
    close(m->stop_pipe[1]);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
