/* cmd_lab.c - tessera lab: the training-quality lab (lab/lab.h) and its
 * plot. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lab/lab.h"
#include "tools/tools.h"

typedef struct out_ctx {
    FILE *fp;
    bool failed;
} out_ctx;

static void on_point(const lab_point *p, void *v) {
    out_ctx *o = v;
    char *j = lab_point_json(p);
    if (!j || fprintf(o->fp, "%s\n", j) < 0 || fflush(o->fp)) o->failed = true;
    free(j);
}

static int cmd_run(int argc, char **argv) {
    char *method = NULL, *label = NULL, *preset = NULL, *data = NULL, *val = NULL, *out = NULL;
    int64_t miners, H, B, T, rounds, seed, vocab, k, bins, chunk, top_g, val_samples, probe_samples, late_join;
    double lr, warmup, wd, clip, beta, alpha, dl_lr, dl_mom, guard, silent, garbage, offdata;
    bool dense = false, append = false;
    const ts_opt opts[] = {
        {"method", TS_OPT_STR, &method, "sparseloco", "sparseloco, diloco, ddp or single", TS_OPT_NOENV, 'm'},
        {"label", TS_OPT_STR, &label, NULL, "the series' name in the results and the plot (default: the method)", TS_OPT_NOENV, 0},
        {"model", TS_OPT_STR, &preset, "tiny", "model preset, or a config.json", TS_OPT_NOENV, 0},
        {"vocab_size", TS_OPT_INT, &vocab, "0", "vocabulary (0: the preset's)", TS_OPT_NOENV, 0},
        {"data", TS_OPT_STR, &data, NULL, "training shards (file, directory or glob)", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
        {"val_data", TS_OPT_STR, &val, NULL, "held-out shards", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
        {"miners", TS_OPT_INT, &miners, "4", "simulated miners N", TS_OPT_NOENV, 'n'},
        {"inner_steps", TS_OPT_INT, &H, "4", "inner steps H per round", TS_OPT_NOENV, 0},
        {"batch", TS_OPT_INT, &B, "4", "rows B per inner step", TS_OPT_NOENV, 0},
        {"seq", TS_OPT_INT, &T, "64", "sequence length T", TS_OPT_NOENV, 0},
        {"rounds", TS_OPT_INT, &rounds, "3", "outer steps", TS_OPT_NOENV, 'r'},
        {"seed", TS_OPT_INT, &seed, "1", "seed of the model, the pools, the keys and the faults", TS_OPT_NOENV, 's'},
        {"lr", TS_OPT_F64, &lr, "1e-3", "peak inner learning rate (AdamW)", TS_OPT_NOENV, 0},
        {"warmup_frac", TS_OPT_F64, &warmup, "0.05", "share of the method's steps spent warming up", TS_OPT_NOENV, 0},
        {"weight_decay", TS_OPT_F64, &wd, "0.1", "AdamW weight decay", TS_OPT_NOENV, 0},
        {"clip", TS_OPT_F64, &clip, "1.0", "gradient-norm clip of the inner steps (0: none)", TS_OPT_NOENV, 0},
        {"codec.k", TS_OPT_INT, &k, "64", "sparseloco: values kept per tile (of up to 64 x 64)", TS_OPT_NOENV, 0},
        {"codec.bins", TS_OPT_INT, &bins, "4", "sparseloco: quantizer bins, 4 or 256", TS_OPT_NOENV, 0},
        {"codec.chunk", TS_OPT_INT, &chunk, "64", "sparseloco: tile side", TS_OPT_NOENV, 0},
        {"codec.beta", TS_OPT_F64, &beta, "0.95", "sparseloco: error-feedback decay", TS_OPT_NOENV, 0},
        {"codec.alpha", TS_OPT_F64, &alpha, "1.0", "sparseloco: outer learning rate (the protocol's alpha)", TS_OPT_NOENV, 0},
        {"top_g", TS_OPT_INT, &top_g, "0", "sparseloco: aggregate the G uploads that lower the probe most (0: all)", TS_OPT_NOENV, 0},
        {"diloco.lr", TS_OPT_F64, &dl_lr, "0.7", "diloco: outer learning rate", TS_OPT_NOENV, 0},
        {"diloco.momentum", TS_OPT_F64, &dl_mom, "0.9", "diloco: Nesterov momentum", TS_OPT_NOENV, 0},
        {"val_samples", TS_OPT_INT, &val_samples, "16", "held-out samples per measurement", TS_OPT_NOENV, 0},
        {"probe_samples", TS_OPT_INT, &probe_samples, "8", "held-out samples of the probe (top_g, spike_guard)", TS_OPT_NOENV, 0},
        {"spike_guard", TS_OPT_F64, &guard, "0", "undo an outer step that raises the probe's loss by more than this fraction (0: off)", TS_OPT_NOENV, 0},
        {"faults.silent", TS_OPT_F64, &silent, "0", "fraction of miners that send nothing", TS_OPT_NOENV, 0},
        {"faults.garbage", TS_OPT_F64, &garbage, "0", "fraction of miners that send garbage", TS_OPT_NOENV, 0},
        {"faults.offdata", TS_OPT_F64, &offdata, "0", "fraction of miners that train on other pages", TS_OPT_NOENV, 0},
        {"faults.late_join", TS_OPT_INT, &late_join, "0", "the last miner sits out the first J rounds, then starts from the current model (0: none)", TS_OPT_NOENV, 0},
        {"dense_check", TS_OPT_BOOL, &dense, "false", "sparseloco: check the aggregate against the dense mean and the quantizer's bound", TS_OPT_NOENV, 0},
        {"out", TS_OPT_STR, &out, NULL, "write the JSON lines here (default: standard output)", TS_OPT_NOENV, 'o'},
        {"append", TS_OPT_BOOL, &append, "false", "append to --out instead of replacing it", TS_OPT_NOENV, 0},
    };
    enum { NOPTS = sizeof opts / sizeof *opts };
    const ts_opt_range ranges[] = {
        {"miners", 1, LAB_MAX_MINERS, 0},      {"inner_steps", 1, 100000, 0}, {"batch", 1, 4096, 0},
        {"seq", 1, 1 << 20, 0},                {"rounds", 1, 1000000, 0},     {"seed", 0, INFINITY, 0},
        {"vocab_size", 0, 1 << 24, 0},         {"codec.k", 2, 4096, 0},       {"codec.bins", 4, 256, 0},
        {"codec.chunk", 1, 64, 0},             {"top_g", 0, LAB_MAX_MINERS, 0}, {"val_samples", 1, 1000000, 0},
        {"probe_samples", 0, 1000000, 0},      {"faults.late_join", 0, 1000000, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera lab",
        .usage = "[--config LAB.json] --data TRAIN --val-data VAL [--method M] [options]\n"
                 "       tessera lab plot [--out PLOT.svg] RESULTS.jsonl...",
        .summary = "Runs the subnet's algorithm for N simulated miners in one process (the data\n"
                   "pools, the inner AdamW loop, the codec with error feedback, clipping,\n"
                   "aggregation and the outer step: Tessera's own code) or a baseline (diloco,\n"
                   "ddp, single) on the same rows, and prints one JSON line per measurement:\n"
                   "held-out loss after every outer step, tokens, bytes each miner sent, wall\n"
                   "time, faults.  Deterministic for a seed.  `tessera lab plot` draws results\n"
                   "of several runs as an SVG (held-out loss against tokens and against bytes).",
        .opts = opts,
        .nopts = NOPTS,
        .config_file = true,
        .max_pos = 0,
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    lab_config lc;
    lab_config_default(&lc);
    rc = lab_method_parse(method, &lc.method, &e);
    if (!rc && label) snprintf(lc.label, sizeof lc.label, "%s", label);
    if (!rc && label && strlen(label) >= sizeof lc.label)
        rc = ts_fail(&e, TS_EINVAL, "--label: at most %zu bytes", sizeof lc.label - 1);
    if (!rc && model_preset(preset, (int)vocab, &lc.model, &e)) {
        ts_err e2 = {0};
        rc = model_config_load(preset, &lc.model, &e2);
        if (rc) e = e2;
    }
    lc.data = data;
    lc.val_data = val;
    lc.miners = (int)miners;
    lc.inner_steps = (int)H;
    lc.batch = (int)B;
    lc.seq = (int)T;
    lc.rounds = (int)rounds;
    lc.seed = (uint64_t)seed;
    lc.adamw.lr = lr;
    lc.adamw.weight_decay = wd;
    lc.adamw.clip = clip;
    lc.warmup_frac = warmup;
    lc.codec.k = (int)k;
    lc.codec.bins = (int)bins;
    lc.codec.chunk = (int)chunk;
    lc.codec.beta = (float)beta;
    lc.codec.alpha = (float)alpha;
    lc.top_g = (int)top_g;
    lc.diloco_lr = dl_lr;
    lc.diloco_momentum = dl_mom;
    lc.val_samples = (int)val_samples;
    lc.probe_samples = (int)probe_samples;
    lc.spike_guard = guard;
    lc.faults = (lab_faults){.silent = silent, .garbage = garbage, .offdata = offdata, .late_join = (int)late_join};
    lc.dense_check = dense;
    out_ctx o = {.fp = stdout};
    if (!rc && out && !(o.fp = fopen(out, append ? "a" : "w"))) rc = ts_fail(&e, TS_EIO, "%s: %s", out, strerror(errno));
    lab_summary s = {0};
    if (!rc) rc = lab_run(&lc, on_point, &o, true, &s, &e);
    if (o.fp && o.fp != stdout && fclose(o.fp) && !rc) rc = ts_fail(&e, TS_EIO, "%s: write failed", out);
    if (!rc && o.failed) rc = ts_fail(&e, TS_EIO, "%s: write failed", out ? out : "standard output");
    if (!rc) {
        char by[32];
        ts_fmt_bytes(by, sizeof by, s.bytes_per_miner);
        fprintf(stderr,
                "lab %s: held-out loss %.4f after %d rounds, %.3g M tokens, %s sent per miner, %d refused, %d silent, "
                "%d spike-guard skips, %.1f s\n",
                lc.label[0] ? lc.label : lab_method_name(lc.method), s.final_val_loss, lc.rounds, (double)s.tokens / 1e6,
                by, s.refused, s.silent, s.guard_skips, s.seconds);
    }
    ts_opts_free(opts, NOPTS);
    return rc ? tool_error(&e) : 0;
}

/* ----------------------------------------------------------------- plot */

static int add_point(lab_series **ss, int *n, const char *label, double tok, double by, double loss, ts_err *e) {
    lab_series *s = NULL;
    for (int i = 0; i < *n; i++)
        if (!strcmp((*ss)[i].label, label)) s = &(*ss)[i];
    if (!s) {
        lab_series *ns = realloc(*ss, sizeof *ns * (size_t)(*n + 1));
        if (!ns) return ts_fail(e, TS_ENOMEM, "out of memory");
        *ss = ns;
        s = &ns[(*n)++];
        memset(s, 0, sizeof *s);
        snprintf(s->label, sizeof s->label, "%s", label);
    }
    double *t = realloc(s->tokens, sizeof *t * (size_t)(s->n + 1)), *b = t ? realloc(s->bytes, sizeof *b * (size_t)(s->n + 1)) : NULL;
    if (t) s->tokens = t;
    if (b) s->bytes = b;
    double *l = b ? realloc(s->loss, sizeof *l * (size_t)(s->n + 1)) : NULL;
    if (!l) return ts_fail(e, TS_ENOMEM, "out of memory");
    s->loss = l;
    s->tokens[s->n] = tok;
    s->bytes[s->n] = by;
    s->loss[s->n] = loss;
    s->n++;
    return TS_OK;
}

static int cmd_plot(int argc, char **argv) {
    char *out = NULL, *title = NULL;
    const ts_opt opts[] = {
        {"out", TS_OPT_STR, &out, "lab.svg", "the SVG to write", TS_OPT_NOENV, 'o'},
        {"title", TS_OPT_STR, &title, "tessera lab", "the plot's title", TS_OPT_NOENV, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera lab plot",
        .usage = "[--out PLOT.svg] [--title T] RESULTS.jsonl...",
        .summary = "Draws the held-out loss of `tessera lab` results against tokens and against\n"
                   "bytes each miner sent, one line per label.",
        .opts = opts,
        .nopts = 2,
        .min_pos = 1,
        .max_pos = -1,
    };
    char **pos;
    int npos;
    int rc = tool_parse(&c, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    lab_series *ss = NULL;
    int ns = 0;
    for (int f = 0; !rc && f < npos; f++) {
        FILE *fp = fopen(pos[f], "r");
        if (!fp) {
            rc = ts_fail(&e, TS_EIO, "%s: %s", pos[f], strerror(errno));
            break;
        }
        char line[8192];
        int ln = 0;
        while (!rc && fgets(line, sizeof line, fp)) {
            ln++;
            if (line[strspn(line, " \t\r\n")] == 0) continue;
            cJSON *j = cJSON_Parse(line);
            const cJSON *lb = cJSON_GetObjectItem(j, "label"), *tk = cJSON_GetObjectItem(j, "tokens"),
                        *by = cJSON_GetObjectItem(j, "bytes_total"), *vl = cJSON_GetObjectItem(j, "val_loss");
            if (!cJSON_IsString(lb) || !cJSON_IsNumber(tk) || !cJSON_IsNumber(by) || !(cJSON_IsNumber(vl) || cJSON_IsNull(vl)))
                rc = ts_fail(&e, TS_EFORMAT, "%s:%d: not a lab result line (label, tokens, bytes_total, val_loss)", pos[f], ln);
            else
                rc = add_point(&ss, &ns, lb->valuestring, tk->valuedouble, by->valuedouble,
                               cJSON_IsNumber(vl) ? vl->valuedouble : NAN, &e);
            cJSON_Delete(j);
        }
        fclose(fp);
    }
    char *svg = NULL;
    if (!rc) rc = lab_plot_svg(ss, ns, title, &svg, &e);
    if (!rc) rc = ts_write_atomic(out, svg, strlen(svg), &e);
    if (!rc) fprintf(stderr, "wrote %s: %d series\n", out, ns);
    free(svg);
    for (int i = 0; i < ns; i++) {
        free(ss[i].tokens);
        free(ss[i].bytes);
        free(ss[i].loss);
    }
    free(ss);
    free(pos);
    ts_opts_free(opts, 2);
    return rc ? tool_error(&e) : 0;
}

static int cmd_lab(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "plot")) return cmd_plot(argc - 1, argv + 1);
    return cmd_run(argc, argv);
}

TS_COMMAND("lab", "training quality: the subnet's algorithm against DiLoCo, DDP and one worker", 75, cmd_lab)
