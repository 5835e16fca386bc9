/* plot.c - the lab's SVG: held-out loss against tokens and against bytes
 * each miner sent, one line per series (lab.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lab/lab.h"

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/* A "nice" tick step for a span: 1, 2 or 5 times a power of ten. */
static double nice_step(double span, int want) {
    double raw = span / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void fmt_si(char *out, size_t cap, double v) {
    const char *u[] = {"", "k", "M", "G", "T"};
    int i = 0;
    while (fabs(v) >= 1000 && i < 4) v /= 1000, i++;
    snprintf(out, cap, "%g%s", v, u[i]);
}

typedef struct panel {
    double x0, y0, w, h;       /* pixels */
    double xmin, xmax, ymin, ymax;
    bool logx;
} panel;

static double px(const panel *p, double x) {
    double t = p->logx ? (log10(x) - log10(p->xmin)) / (log10(p->xmax) - log10(p->xmin))
                       : (x - p->xmin) / (p->xmax - p->xmin);
    return p->x0 + t * p->w;
}
static double py(const panel *p, double y) { return p->y0 + p->h - (y - p->ymin) / (p->ymax - p->ymin) * p->h; }

static void axes(ts_sbuf *b, const panel *p, const char *xlabel, const char *title) {
    ts_sbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", p->x0, p->y0,
        p->w, p->h);
    ts_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n", p->x0 + p->w / 2,
        p->y0 - 10, title);
    ts_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", p->x0 + p->w / 2, p->y0 + p->h + 38, xlabel);
    ts_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 %.1f %.1f)\">held-out loss (nats/token)</text>\n",
        p->x0 - 48, p->y0 + p->h / 2, p->x0 - 48, p->y0 + p->h / 2);
    double ys = nice_step(p->ymax - p->ymin, 6);
    for (double y = ceil(p->ymin / ys) * ys; y <= p->ymax + 1e-12; y += ys) {
        ts_sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", p->x0, py(p, y), p->x0 + p->w,
            py(p, y));
        ts_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", p->x0 - 4, py(p, y) + 4, y);
    }
    char t[32];
    if (p->logx) {
        for (double d = floor(log10(p->xmin)); d <= ceil(log10(p->xmax)); d++) {
            double x = pow(10, d);
            if (x < p->xmin * 0.999 || x > p->xmax * 1.001) continue;
            fmt_si(t, sizeof t, x);
            ts_sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", px(p, x), p->y0, px(p, x),
                p->y0 + p->h);
            ts_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%sB</text>\n", px(p, x), p->y0 + p->h + 16, t);
        }
    } else {
        double xs = nice_step(p->xmax - p->xmin, 6);
        for (double x = ceil(p->xmin / xs) * xs; x <= p->xmax + 1e-9; x += xs) {
            fmt_si(t, sizeof t, x);
            ts_sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", px(p, x), p->y0, px(p, x),
                p->y0 + p->h);
            ts_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", px(p, x), p->y0 + p->h + 16, t);
        }
    }
}

static void esc(ts_sbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '<') ts_sbuf_printf(b, "&lt;");
        else if (*s == '>') ts_sbuf_printf(b, "&gt;");
        else if (*s == '&') ts_sbuf_printf(b, "&amp;");
        else if (*s == '"') ts_sbuf_printf(b, "&quot;");
        else ts_sbuf_printf(b, "%c", *s);
    }
}

int lab_plot_svg(const lab_series *s, int n, const char *title, char **svg, ts_err *e) {
    *svg = NULL;
    if (n < 1) return ts_fail(e, TS_EINVAL, "plot: no series");
    panel L = {.x0 = 70, .y0 = 60, .w = 400, .h = 300}, R = {.x0 = 560, .y0 = 60, .w = 400, .h = 300, .logx = true};
    L.xmin = 0, L.xmax = -INFINITY, L.ymin = INFINITY, L.ymax = -INFINITY;
    R.xmin = INFINITY, R.xmax = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < s[i].n; k++) {
            if (!isfinite(s[i].loss[k])) continue;
            if (s[i].tokens[k] > L.xmax) L.xmax = s[i].tokens[k];
            /* the loss axis leaves out the untrained model's loss when there
             * is more than it to show, so the curves' ends are readable */
            if (s[i].tokens[k] > 0 || s[i].n == 1) {
                if (s[i].loss[k] < L.ymin) L.ymin = s[i].loss[k];
                if (s[i].loss[k] > L.ymax) L.ymax = s[i].loss[k];
            }
            if (s[i].bytes[k] > 0) {
                if (s[i].bytes[k] < R.xmin) R.xmin = s[i].bytes[k];
                if (s[i].bytes[k] > R.xmax) R.xmax = s[i].bytes[k];
            }
        }
    if (!isfinite(L.ymin) || !(L.xmax > 0)) return ts_fail(e, TS_EINVAL, "plot: no finite point after round 0");
    if (L.ymax - L.ymin < 1e-6) L.ymax = L.ymin + 1e-3;
    double pad = (L.ymax - L.ymin) * 0.05;
    L.ymin -= pad, L.ymax += pad;
    R.ymin = L.ymin, R.ymax = L.ymax;
    bool right = isfinite(R.xmin);
    if (right) {
        R.xmin = pow(10, floor(log10(R.xmin)));
        R.xmax = pow(10, ceil(log10(R.xmax)));
        if (R.xmax <= R.xmin) R.xmax = R.xmin * 10;
    }
    ts_sbuf b = {0};
    int H = 420 + 18 * ((n + 1) / 2);
    ts_sbuf_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1000\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", H);
    ts_sbuf_printf(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    ts_sbuf_printf(&b, "<text x=\"500\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">");
    esc(&b, title ? title : "tessera lab");
    ts_sbuf_printf(&b, "</text>\n");
    axes(&b, &L, "tokens trained (all miners)", "against tokens");
    if (right) axes(&b, &R, "bytes sent per miner (log)", "against bytes communicated");
    for (int i = 0; i < n; i++) {
        const char *col = COLORS[i % 10];
        const char *dash = i >= 10 ? " stroke-dasharray=\"6 3\"" : "";
        for (int side = 0; side < 2; side++) {
            const panel *p = side ? &R : &L;
            if (side && !right) break;
            ts_sbuf_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s points=\"", col, dash);
            for (int k = 0; k < s[i].n; k++) {
                double x = side ? s[i].bytes[k] : s[i].tokens[k], y = s[i].loss[k];
                if (!isfinite(y) || (side && !(x > 0)) || (!side && x <= 0 && s[i].n > 1)) continue;
                if (y > p->ymax) y = p->ymax; /* clipped to the frame */
                ts_sbuf_printf(&b, "%.1f,%.1f ", px(p, x), py(p, y));
            }
            ts_sbuf_printf(&b, "\"/>\n");
        }
        double lx = 70 + (i % 2) * 490, ly = 420 + 18 * (i / 2);
        ts_sbuf_printf(&b, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"3\"%s/>\n", lx, ly - 4,
            lx + 24, ly - 4, col, dash);
        ts_sbuf_printf(&b, "<text x=\"%.0f\" y=\"%.0f\">", lx + 30, ly);
        esc(&b, s[i].label);
        ts_sbuf_printf(&b, "</text>\n");
    }
    ts_sbuf_printf(&b, "</svg>\n");
    if (b.oom) {
        free(b.p);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    *svg = b.p;
    return TS_OK;
}
