/* cmd_report.c - tessera report: what a validator saw, as tables and a plot.
 *
 * Reads a validator's state directory (windows.jsonl, one line per window it
 * processed, and gauntlet.state) and prints the global model's held-out loss
 * per window and, per miner, its final score, weight and the reason for any
 * penalty.  --svg draws the loss curve, the final scores and the weights over
 * windows.  With --chain it adds the weights this validator has on chain; the
 * state directory does not say whose it is, so the validator is named by its
 * hotkey (--hotkey), or found from the daemons' default state directory
 * $TESSERA_HOME/nodes/HOTKEY. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "chain/chain.h"
#include "gauntlet/gauntlet.h"
#include "tools.h"

#define MAXW 4096
#define MAXU 256

typedef struct {
    int n;
    uint64_t window[MAXW];
    double loss[MAXW];
    int gathered[MAXW];
    double score[MAXW][MAXU]; /* NaN when not evaluated */
    double weight[MAXW][MAXU];
    char reason[MAXU][200];   /* last non-ok reason per uid */
    char hash[MAXW][17];
    bool seen[MAXU];
} report;

static int load_windows(const char *path, report *r, ts_err *e) {
    uint8_t *buf;
    size_t len;
    if (ts_read_file(path, 256u << 20, &buf, &len, e)) return e->code;
    char *save = NULL;
    for (char *line = strtok_r((char *)buf, "\n", &save); line && r->n < MAXW; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        if (!o) continue; /* a torn last line after a crash */
        int i = r->n++;
        const cJSON *w = cJSON_GetObjectItem(o, "window"), *l = cJSON_GetObjectItem(o, "held_out_loss");
        const cJSON *h = cJSON_GetObjectItem(o, "model_hash");
        r->window[i] = cJSON_IsNumber(w) ? (uint64_t)w->valuedouble : 0;
        r->loss[i] = cJSON_IsNumber(l) ? l->valuedouble : NAN;
        r->gathered[i] = cJSON_GetArraySize(cJSON_GetObjectItem(o, "gathered"));
        snprintf(r->hash[i], sizeof r->hash[i], "%.16s", cJSON_IsString(h) ? h->valuestring : "");
        for (int u = 0; u < MAXU; u++) r->score[i][u] = NAN;
        const cJSON *ev;
        cJSON_ArrayForEach(ev, cJSON_GetObjectItem(o, "evaluated")) {
            const cJSON *uid = cJSON_GetObjectItem(ev, "uid"), *fs = cJSON_GetObjectItem(ev, "final_score");
            const cJSON *st = cJSON_GetObjectItem(ev, "status"), *rs = cJSON_GetObjectItem(ev, "reason");
            if (!cJSON_IsNumber(uid) || uid->valuedouble < 0 || uid->valuedouble >= MAXU) continue;
            int u = (int)uid->valuedouble;
            r->seen[u] = true;
            if (cJSON_IsNumber(fs)) r->score[i][u] = fs->valuedouble;
            if (cJSON_IsString(st) && strcmp(st->valuestring, "ok"))
                snprintf(r->reason[u], sizeof r->reason[u], "%s%s%s", st->valuestring, cJSON_IsString(rs) ? ": " : "",
                         cJSON_IsString(rs) ? rs->valuestring : "");
        }
        const cJSON *wt;
        cJSON_ArrayForEach(wt, cJSON_GetObjectItem(o, "weights")) {
            int u = atoi(wt->string);
            if (u >= 0 && u < MAXU && cJSON_IsNumber(wt)) {
                r->weight[i][u] = wt->valuedouble;
                if (wt->valuedouble > 0) r->seen[u] = true;
            }
        }
        cJSON_Delete(o);
    }
    free(buf);
    return TS_OK;
}

static const char *penalty_text(const gauntlet_uid *u, const char *last_reason, char *out, size_t cap) {
    out[0] = 0;
    size_t at = 0;
#define ADD(cond, ...)                                                                        \
    do {                                                                                      \
        if ((cond) && at < cap) at += (size_t)snprintf(out + at, cap - at, "%s", at ? "; " : ""); \
        if ((cond) && at < cap) at += (size_t)snprintf(out + at, cap - at, __VA_ARGS__);     \
    } while (0)
    ADD(u->ban_until > 0 && u->counts[GAUNTLET_CNT_COPY_BAN], "copycat: banned until window %llu",
        (unsigned long long)u->ban_until);
    ADD(u->counts[GAUNTLET_CNT_COPY_RESET], "copycat resets %u", u->counts[GAUNTLET_CNT_COPY_RESET]);
    ADD(u->counts[GAUNTLET_CNT_COPY_SLASH], "copycat slashes %u", u->counts[GAUNTLET_CNT_COPY_SLASH]);
    ADD(u->ban_until > 0 && u->counts[GAUNTLET_CNT_GATHER_BAN] && !u->counts[GAUNTLET_CNT_COPY_BAN],
        "missed half its gathers: banned until window %llu", (unsigned long long)u->ban_until);
    ADD(u->counts[GAUNTLET_CNT_GATHER_MISS], "gather misses %u", u->counts[GAUNTLET_CNT_GATHER_MISS]);
    ADD(u->excluded, "out of the peer list (%u negative evaluations in a row)", u->neg_consecutive);
    ADD(u->counts[GAUNTLET_CNT_NEG_SLASH], "negative-evaluation slashes %u", u->counts[GAUNTLET_CNT_NEG_SLASH]);
    ADD(u->counts[GAUNTLET_CNT_INVALID], "invalid uploads %u", u->counts[GAUNTLET_CNT_INVALID]);
    ADD(u->counts[GAUNTLET_CNT_MISSING], "missing %u", u->counts[GAUNTLET_CNT_MISSING]);
    ADD(u->counts[GAUNTLET_CNT_LATE], "late %u", u->counts[GAUNTLET_CNT_LATE]);
    ADD(u->counts[GAUNTLET_CNT_EARLY], "early %u", u->counts[GAUNTLET_CNT_EARLY]);
    ADD(u->counts[GAUNTLET_CNT_POOR_SYNC], "poor sync %u", u->counts[GAUNTLET_CNT_POOR_SYNC]);
    ADD(u->counts[GAUNTLET_CNT_INACTIVE], "inactive %u", u->counts[GAUNTLET_CNT_INACTIVE]);
    ADD(u->final_score <= 0 && u->binary_ma <= 0 && !u->counts[GAUNTLET_CNT_INVALID] && !u->ban_until,
        "no positive score yet (indicator average %.3f)", u->binary_ma);
    if (last_reason && last_reason[0] && u->counts[GAUNTLET_CNT_INVALID]) ADD(1, "last: %.90s", last_reason);
#undef ADD
    return out[0] ? out : "-";
}

/* ------------------------------------------------------------ the validator */


/* HOTKEY when dir is the daemons' default state directory
 * $TESSERA_HOME/nodes/HOTKEY (malloc'd), else NULL. */
static char *default_dir_hotkey(const char *dir) {
    char *home = ts_home_dir(), *nodes = home ? ts_path_join(home, "nodes") : NULL, *name = NULL;
    char a[PATH_MAX], b[PATH_MAX];
    if (nodes && realpath(dir, a) && realpath(nodes, b)) {
        size_t n = strlen(b);
        if (!strncmp(a, b, n) && a[n] == '/' && a[n + 1] && !strchr(a + n + 1, '/')) name = strdup(a + n + 1);
    }
    free(home);
    free(nodes);
    return name;
}

/* ------------------------------------------------------------------ SVG */

static const char *colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

static void panel(FILE *f, const report *r, int y0, const char *title, int kind, const int *uids, int nu) {
    const int x0 = 70, W = 640, H = 180;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < r->n; i++) {
        if (kind == 0) {
            if (isfinite(r->loss[i])) lo = fmin(lo, r->loss[i]), hi = fmax(hi, r->loss[i]);
        } else {
            for (int k = 0; k < nu; k++) {
                double v = kind == 1 ? r->score[i][uids[k]] : r->weight[i][uids[k]];
                if (isfinite(v)) lo = fmin(lo, v), hi = fmax(hi, v);
            }
        }
    }
    if (!isfinite(lo)) lo = 0, hi = 1;
    if (kind != 0) lo = fmin(lo, 0);
    if (hi - lo < 1e-9) hi = lo + 1;
    double pad = (hi - lo) * 0.05;
    lo -= pad;
    hi += pad;
    uint64_t w0 = r->n ? r->window[0] : 0, w1 = r->n ? r->window[r->n - 1] : 1;
    if (w1 == w0) w1 = w0 + 1;
#define X(w) (x0 + (double)((w) - w0) / (double)(w1 - w0) * W)
#define Y(v) (y0 + H - ((v) - lo) / (hi - lo) * H)
    fprintf(f, "<text x='%d' y='%d' font-size='14' font-weight='bold'>%s</text>\n", x0, y0 - 8, title);
    fprintf(f, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#888'/>\n", x0, y0, W, H);
    for (int t = 0; t <= 4; t++) {
        double v = lo + (hi - lo) * t / 4;
        fprintf(f, "<text x='%d' y='%.1f' font-size='10' text-anchor='end'>%.3g</text>\n", x0 - 4, Y(v) + 3, v);
        fprintf(f, "<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' stroke='#eee'/>\n", x0, x0 + W, Y(v), Y(v));
    }
    for (int i = 0; i < r->n; i += (r->n + 9) / 10)
        fprintf(f, "<text x='%.1f' y='%d' font-size='10' text-anchor='middle'>%llu</text>\n", X(r->window[i]),
                y0 + H + 14, (unsigned long long)r->window[i]);
    int series = kind == 0 ? 1 : nu;
    for (int k = 0; k < series; k++) {
        const char *c = colors[k % 8];
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='", c);
        for (int i = 0; i < r->n; i++) {
            double v = kind == 0 ? r->loss[i] : kind == 1 ? r->score[i][uids[k]] : r->weight[i][uids[k]];
            if (isfinite(v)) fprintf(f, "%.1f,%.1f ", X(r->window[i]), Y(v));
        }
        fprintf(f, "'/>\n");
        if (kind != 0)
            fprintf(f, "<text x='%d' y='%d' font-size='11' fill='%s'>uid %d</text>\n", x0 + W + 10, y0 + 12 + 14 * k, c,
                    uids[k]);
    }
#undef X
#undef Y
}

static int write_svg(const char *path, const report *r, const int *uids, int nu, ts_err *e) {
    char *tmp = malloc(strlen(path) + 8);
    sprintf(tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        free(tmp);
        return ts_fail(e, TS_EIO, "%s: cannot write", path);
    }
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='800' height='760' font-family='sans-serif'>\n"
               "<rect width='100%%' height='100%%' fill='white'/>\n");
    panel(f, r, 40, "Global model: held-out loss per window", 0, uids, nu);
    panel(f, r, 290, "Final score per miner", 1, uids, nu);
    panel(f, r, 540, "Weight per miner", 2, uids, nu);
    fprintf(f, "<text x='70' y='750' font-size='11'>window</text>\n</svg>\n");
    int bad = ferror(f);
    bad |= fclose(f);
    if (bad || rename(tmp, path)) {
        free(tmp);
        return ts_fail(e, TS_EIO, "%s: write failed", path);
    }
    free(tmp);
    return TS_OK;
}

static int cmd_report(int argc, char **argv) {
    char *dir = NULL, *svg = NULL, *chain_url = NULL, *wallet = NULL, *hotkey = NULL;
    bool json = false;
    const ts_opt opts[] = {
        {"state_dir", TS_OPT_STR, &dir, NULL, "the validator's state directory", TS_OPT_REQUIRED, 0},
        {"svg", TS_OPT_STR, &svg, NULL, "also draw loss, scores and weights to this SVG file", 0, 0},
        {"chain", TS_OPT_STR, &chain_url, NULL, "chain URL (adds this validator's weights on chain)", 0, 0},
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet of the validator's hotkey", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL,
         "the validator's hotkey: name in the wallet, SS58 address or 0x public key "
         "[default: HOTKEY when DIR is $TESSERA_HOME/nodes/HOTKEY]", 0, 'k'},
        {"json", TS_OPT_BOOL, &json, "false", "print the per-miner table as JSON", 0, 0},
    };
    const int nopts = (int)(sizeof opts / sizeof opts[0]);
    const ts_cmdline c = {
        .prog = "tessera report",
        .usage = "--state-dir DIR [--svg FILE] [--chain URL [--wallet W] [--hotkey H]] [--json]",
        .summary = "Prints what a validator saw: the global model's held-out loss per window and, per\n"
                   "miner, its final score, weight and the reason for any penalty.  With --chain, the\n"
                   "'on chain' column shows the weights this validator set on chain (quantized, the\n"
                   "largest 65535).  The state directory does not record whose it is: the validator is\n"
                   "the hotkey --hotkey names, by default the HOTKEY of the validator's default state\n"
                   "directory $TESSERA_HOME/nodes/HOTKEY; without either the column shows '-'.",
        .opts = opts,
        .nopts = nopts,
        .env = true,
        .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    report *r = calloc(1, sizeof *r);
    char *wpath = ts_path_join(dir, "windows.jsonl"), *gpath = ts_path_join(dir, "gauntlet.state");
    char *dkey = NULL;
    gauntlet_state gs;
    gauntlet_state_init(&gs);
    chain_weight_row *rows = NULL, *mine = NULL; /* mine: this validator's row */
    uint32_t nrows = 0;
    chain_metagraph mg = {0};
    char who[200] = "";
    if ((rc = load_windows(wpath, r, &e)) || (rc = gauntlet_state_load(&gs, gpath, &e))) goto out;
    if (chain_url) {
        /* Who the validator is, before reading the chain: a --hotkey that
         * names nothing is an error; the default is used only when it is a key. */
        uint8_t pk[TS_PK_BYTES];
        bool have_pk = false;
        if (hotkey) {
            if ((rc = tool_resolve_pubkey(wallet, hotkey, pk, &e))) goto out;
            have_pk = true;
        } else if ((dkey = default_dir_hotkey(dir))) {
            ts_err ke = {0};
            have_pk = tool_resolve_pubkey(wallet, dkey, pk, &ke) == TS_OK;
        }
        chain *ch;
        if ((rc = chain_open(chain_url, &ch, &e))) goto out;
        if (!(rc = chain_metagraph_get(ch, &mg, &e))) rc = chain_weights(ch, &rows, &nrows, &e);
        chain_close(ch);
        if (rc) goto out;
        char ss[64];
        uint32_t uid;
        if (have_pk) ts_ss58(ss, pk);
        for (uint32_t i = 0; have_pk && i < nrows; i++)
            if (!memcmp(rows[i].hotkey, pk, TS_PK_BYTES)) mine = &rows[i];
        if (!have_pk)
            snprintf(who, sizeof who, "not shown: name this validator with --hotkey (its state directory does not "
                                      "say)");
        else if (mine)
            snprintf(who, sizeof who, "the weights uid %u (%s) set at block %llu", mine->uid, ss,
                     (unsigned long long)mine->block);
        else if (chain_uid_of(&mg, pk, &uid) == TS_OK)
            snprintf(who, sizeof who, "none: uid %u (%s) has set no weights", uid, ss);
        else
            snprintf(who, sizeof who, "none: %s is not registered on this chain", ss);
    }
    int uids[MAXU], nu = 0;
    for (int u = 0; u < MAXU; u++)
        if (r->seen[u] || gauntlet_state_find(&gs, (uint32_t)u)) uids[nu++] = u;
    if (!json) {
        printf("Global model, per window\n  %-8s %-14s %-8s %s\n", "window", "held-out loss", "peers", "model");
        for (int i = 0; i < r->n; i++) {
            char l[32] = "-";
            if (isfinite(r->loss[i])) snprintf(l, sizeof l, "%.4f", r->loss[i]);
            printf("  %-8llu %-14s %-8d %s...\n", (unsigned long long)r->window[i], l, r->gathered[i], r->hash[i]);
        }
        printf("\nMiners (scores as of window %llu)\n",
               (unsigned long long)(gs.window == GAUNTLET_NEVER ? 0 : gs.window));
        if (who[0]) printf("  on chain: %s\n", who);
        printf("  %-4s %-10s %-10s %-10s %s\n", "uid", "final", "weight", "on chain", "penalties and reasons");
    }
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    double last_w[MAXU] = {0};
    if (r->n)
        for (int k = 0; k < nu; k++) last_w[uids[k]] = r->weight[r->n - 1][uids[k]];
    for (int k = 0; k < nu; k++) {
        int u = uids[k];
        const gauntlet_uid *g = gauntlet_state_find(&gs, (uint32_t)u);
        gauntlet_uid empty = {0};
        if (!g) g = &empty;
        char why[400], chainw[32] = "-";
        long onchain = -1; /* this validator's weight for u; -1: no row known */
        if (mine) {
            onchain = 0; /* rows leave out zeros */
            for (uint32_t j = 0; j < mine->n; j++)
                if (mine->w[j].uid == (uint32_t)u) onchain = (long)mine->w[j].weight;
            snprintf(chainw, sizeof chainw, "%ld", onchain);
        }
        penalty_text(g, r->reason[u], why, sizeof why);
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "uid", u);
            cJSON_AddNumberToObject(o, "final_score", g->final_score);
            cJSON_AddNumberToObject(o, "weight", last_w[u]);
            cJSON_AddBoolToObject(o, "banned", g->ban_until > gs.window);
            cJSON_AddNumberToObject(o, "invalid", g->counts[GAUNTLET_CNT_INVALID]);
            cJSON_AddStringToObject(o, "penalties", why);
            if (chain_url) {
                if (onchain >= 0) cJSON_AddNumberToObject(o, "on_chain", (double)onchain);
                else cJSON_AddNullToObject(o, "on_chain");
            }
            cJSON_AddItemToArray(arr, o);
        } else {
            printf("  %-4d %-10.4f %-10.4f %-10s %s\n", u, g->final_score, last_w[u], chainw, why);
        }
    }
    if (json) {
        char *s = cJSON_Print(arr);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(arr);
    }
    if (svg) {
        if ((rc = write_svg(svg, r, uids, nu, &e))) goto out;
        if (!json) printf("\nplot: %s\n", svg);
    }
out:
    if (rc) fprintf(stderr, "tessera report: %s\n", e.msg);
    free(rows);
    chain_metagraph_free(&mg);
    gauntlet_state_free(&gs);
    free(dkey);
    free(wpath);
    free(gpath);
    free(r);
    ts_opts_free(opts, nopts);
    return rc ? 1 : 0;
}

TS_COMMAND("report", "tables and a plot of a validator's view (loss, scores, weights)", 70, cmd_report)
