/* bench_window.c - the codec and a validator's window on a compute device.
 *
 *   build/bench/bench_window codec  [--preset 124m|1b] [--k 64] [--device cuda] [--reps 3]
 *   build/bench/bench_window window [--preset 1b] [--peers 20] [--miners 15]
 *                                   [--samples 8] [--seq 2048] [--device cuda]
 *
 * codec:  compress (delta + error feedback on the device -> signed wire
 *         bytes), decode-then-aggregate (wire bytes of 20 peers -> the outer
 *         step on the device parameters) and the outer step alone, in GB/s
 *         of fp32 model size (the input each operation covers).
 * window: what a validator does in one window, timed as a whole: read 20
 *         uploads from local files and decode them, evaluate 15 miners
 *         (each on 8 of its own samples and 8 random ones, before and after
 *         applying its upload alone, then undoing it), and the outer step
 *         with all 20.  Uploads are made beforehand (not timed) with random
 *         deltas compressed on the same device.
 *
 * The model is the preset's shape with a seeded initialisation; tokens are
 * random.  Prints one line per figure and the command that reproduces it,
 * and with --json one JSON object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/codec.h"
#include "common/common.h"
#include "model/model.h"

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static float rnd(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return ((float)(rs >> 40) / 16777216.0f - 0.5f) * 2e-3f;
}

static int die(const char *what, const ts_err *e) {
    fprintf(stderr, "bench_window: %s: %s\n", what, e->msg[0] ? e->msg : "failed");
    return 1;
}

typedef struct {
    const char *mode, *preset, *device;
    int k, reps, peers, miners, samples, seq;
    bool json;
} args;

/* A device buffer of n random floats (generated on the host in slices). */
static float *dev_random(const kn_backend *be, size_t n) {
    float *d = be->alloc(be, n * 4);
    size_t slice = (size_t)1 << 22;
    float *h = malloc(slice * 4);
    if (!d || !h) {
        free(h);
        return NULL;
    }
    for (size_t at = 0; at < n; at += slice) {
        size_t m = n - at < slice ? n - at : slice;
        for (size_t i = 0; i < m; i++) h[i] = rnd();
        if (be->upload(be, d + at, h, m * 4)) {
            free(h);
            return NULL;
        }
    }
    free(h);
    return d;
}

/* Tensors with the layout of ref but data in buf (device or host). */
static ts_tensor *views(const ts_tensor *ref, int n, float *buf) {
    ts_tensor *t = calloc((size_t)n, sizeof *t);
    if (!t) return NULL;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        t[i] = ref[i];
        t[i].data = buf + at;
        at += ref[i].nbytes / 4;
    }
    return t;
}

int main(int argc, char **argv) {
    args a = {.mode = argc > 1 ? argv[1] : "", .preset = "124m", .device = "cuda", .k = 64, .reps = 3,
              .peers = 20, .miners = 15, .samples = 8, .seq = 2048};
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--json")) {
            a.json = true;
            continue;
        }
        if (!v) goto usage;
        i++;
        if (!strcmp(o, "--preset")) a.preset = v;
        else if (!strcmp(o, "--device")) a.device = v;
        else if (!strcmp(o, "--k")) a.k = atoi(v);
        else if (!strcmp(o, "--reps")) a.reps = atoi(v);
        else if (!strcmp(o, "--peers")) a.peers = atoi(v);
        else if (!strcmp(o, "--miners")) a.miners = atoi(v);
        else if (!strcmp(o, "--samples")) a.samples = atoi(v);
        else if (!strcmp(o, "--seq")) a.seq = atoi(v);
        else goto usage;
    }
    if ((strcmp(a.mode, "codec") && strcmp(a.mode, "window")) || a.k < 2 || a.reps < 1 || a.peers < 1 ||
        a.peers > SPL_MAX_PEERS || a.miners < 0 || (!strcmp(a.mode, "window") && a.miners > a.peers) || a.samples < 1 || a.seq < 1)
        goto usage;

    ts_err e = {0};
    const kn_backend *be;
    model_config cfg;
    if (ts_init(&e) || kn_backend_open(a.device, &be, &e) || model_preset(a.preset, 0, &cfg, &e))
        return die("setup", &e);
    bool window = !strcmp(a.mode, "window");
    model *m = NULL;
    model_options mo = {.max_batch = window ? a.samples : 1, .max_seq = window ? a.seq : 1, .eval_only = true};
    if (model_create_opts(&cfg, be, &mo, &m, &e)) return die("model", &e);
    model_init(m, 1);
    int np;
    const ts_tensor *params = model_params(m, &np);
    size_t count;
    model_param_data(m, &count);
    double gb = (double)count * 4 / 1e9;

    spl_params sp;
    spl_params_default(&sp);
    sp.k = a.k;
    spl_ctx *ctx = NULL;
    if (spl_ctx_new(&sp, params, np, &ctx, &e) || spl_ctx_set_device(ctx, be, &e)) return die("codec", &e);
    float *dbuf = dev_random(be, count), *efbuf = be->alloc(be, count * 4);
    if (!dbuf || !efbuf || be->fill(be, efbuf, 0.0f, count)) {
        fprintf(stderr, "bench_window: cannot allocate the delta and error feedback (%.1f GB each)\n", gb);
        return 1;
    }
    ts_tensor *delta = views(params, np, dbuf), *ef = views(params, np, efbuf);
    ts_keypair kp;
    ts_keypair_from_seed(&kp, (const uint8_t *)"bench_window seed 0123456789abcd");
    uint8_t chash[TS_HASH_BYTES];
    model_config_hash(&cfg, chash);

    /* the uploads: one compress per peer (its own uid); the first few timed */
    uint8_t **wires = calloc((size_t)a.peers, sizeof *wires);
    size_t *wlen = calloc((size_t)a.peers, sizeof *wlen);
    double t_comp = 0;
    for (int p = 0; p < a.peers; p++) {
        spl_meta md = {.window = 7, .uid = (uint32_t)p};
        snprintf(md.run_id, sizeof md.run_id, "bench");
        memcpy(md.config_hash, chash, TS_HASH_BYTES);
        if (be->scale(be, dbuf, 1.0f + 0.01f * (float)p, count) || be->fill(be, efbuf, 0.0f, count))
            return die("device", &e);
        const uint8_t *w;
        size_t wl;
        be->sync(be);
        double t0 = ts_mono();
        if (spl_compress(ctx, delta, ef, &md, &kp, &w, &wl, &e)) return die("compress", &e);
        be->sync(be);
        if (p < a.reps) t_comp += ts_mono() - t0;
        wires[p] = malloc(wl);
        memcpy(wires[p], w, wl);
        wlen[p] = wl;
    }
    t_comp /= a.reps < a.peers ? a.reps : a.peers;

    spl_upload **ups = calloc((size_t)a.peers, sizeof *ups);
    for (int p = 0; p < a.peers; p++)
        if (spl_upload_new(ctx, &ups[p], &e)) return die("upload", &e);
    spl_expect x = {.run_id = "bench", .window = 7, .signer = kp.pk, .config_hash = chash, .skip = SPL_SKIP_UID};
    char dir[] = "/tmp/bench_window_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    for (int p = 0; p < a.peers; p++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%d.bin", dir, p);
        if (ts_write_atomic(path, wires[p], wlen[p], &e)) return die("write", &e);
    }

    if (!window) {
        /* decode + aggregate + outer step, and the outer step alone */
        double t_dec = 0, t_step = 0;
        for (int r = 0; r < a.reps; r++) {
            be->sync(be);
            double t0 = ts_mono();
            for (int p = 0; p < a.peers; p++) {
                spl_reject why;
                if (spl_decode(ctx, wires[p], wlen[p], &x, ups[p], &why, &e)) return die("decode", &e);
            }
            double t1 = ts_mono();
            spl_apply_stats st;
            if (spl_outer_step(ctx, (ts_tensor *)params, (const spl_upload *const *)ups, a.peers, 1.0f, &st, &e))
                return die("outer step", &e);
            be->sync(be);
            double t2 = ts_mono();
            t_dec += t2 - t0;
            t_step += t2 - t1;
        }
        t_dec /= a.reps, t_step /= a.reps;
        if (a.json)
            printf("{\"bench\": \"codec\", \"preset\": \"%s\", \"device\": \"%s\", \"k\": %d, \"peers\": %d, "
                   "\"model_gb\": %.3f, \"compress_gbps\": %.1f, \"decode_aggregate_gbps\": %.1f, "
                   "\"outer_step_gbps\": %.1f, \"wire_mb\": %.2f}\n",
                   a.preset, be->name, a.k, a.peers, gb, gb / t_comp, gb / t_dec, gb / t_step, wlen[0] / 1e6);
        else
            printf("codec %s on %s, k %d: compress %.1f GB/s (%.0f ms), decode %d + aggregate + step %.1f GB/s "
                   "(%.0f ms), outer step alone %.1f GB/s (%.0f ms); upload %.2f MB\n",
                   a.preset, be->name, a.k, gb / t_comp, 1e3 * t_comp, a.peers, gb / t_dec, 1e3 * t_dec,
                   gb / t_step, 1e3 * t_step, wlen[0] / 1e6);
    } else {
        /* the validator's window */
        int B = a.samples, T = a.seq;
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)B * (T + 1));
        double *rows = malloc(sizeof(double) * (size_t)B);
        spl_undo *undo = NULL;
        double *thr = malloc(sizeof(double) * (size_t)np);
        if (!tok || !rows || !thr || spl_undo_new(ctx, 1, &undo, &e)) return die("setup", &e);
        be->sync(be);
        double t0 = ts_mono(), t_eval = 0;
        for (int p = 0; p < a.peers; p++) {
            char path[128];
            snprintf(path, sizeof path, "%s/%d.bin", dir, p);
            uint8_t *buf;
            size_t len;
            spl_reject why;
            if (ts_read_file(path, 1u << 31, &buf, &len, &e) || spl_decode(ctx, buf, len, &x, ups[p], &why, &e))
                return die("gather", &e);
            free(buf);
        }
        double t_gather = ts_mono() - t0;
        if (spl_clip_thresholds(ctx, (const spl_upload *const *)ups, a.peers, thr, &e)) return die("clip", &e);
        for (int mi = 0; mi < a.miners; mi++) {
            double e0 = ts_mono();
            for (int pass = 0; pass < 2; pass++) {
                if (pass == 1) {
                    const spl_upload *one = ups[mi];
                    if (spl_apply(ctx, (ts_tensor *)params, &one, 1, thr, 1.0f, undo, NULL, &e)) return die("apply", &e);
                }
                for (int set = 0; set < 2; set++) { /* own samples, then random ones */
                    for (int i = 0; i < B * (T + 1); i++)
                        tok[i] = (int32_t)((rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17) % (uint64_t)cfg.vocab_size);
                    double s;
                    int64_t c;
                    if (model_eval_loss(m, tok, B, T, &s, &c, rows, &e)) return die("eval", &e);
                }
            }
            if (spl_undo_restore(ctx, (ts_tensor *)params, undo, &e)) return die("undo", &e);
            t_eval += ts_mono() - e0;
        }
        double s0 = ts_mono();
        spl_apply_stats st;
        if (spl_outer_step(ctx, (ts_tensor *)params, (const spl_upload *const *)ups, a.peers, 1.0f, &st, &e))
            return die("outer step", &e);
        be->sync(be);
        double t_step = ts_mono() - s0, total = ts_mono() - t0;
        if (a.json)
            printf("{\"bench\": \"window\", \"preset\": \"%s\", \"device\": \"%s\", \"peers\": %d, \"miners\": %d, "
                   "\"batch\": %d, \"seq\": %d, \"gather_s\": %.2f, \"eval_s\": %.2f, \"step_s\": %.2f, "
                   "\"total_s\": %.2f}\n",
                   a.preset, be->name, a.peers, a.miners, B, T, t_gather, t_eval, t_step, total);
        else
            printf("validator window %s on %s: gather+decode %d uploads %.2f s, evaluate %d miners (2 x %d samples "
                   "of %d tokens, before and after) %.2f s, outer step %.2f s; total %.2f s\n",
                   a.preset, be->name, a.peers, t_gather, a.miners, B, T, t_eval, t_step, total);
        free(tok), free(rows), free(thr);
        spl_undo_free(undo);
    }
    printf("# reproduce: %s %s --preset %s --device %s --k %d --peers %d --miners %d --samples %d --seq %d --reps %d\n",
           argv[0], a.mode, a.preset, a.device, a.k, a.peers, a.miners, a.samples, a.seq, a.reps);
    for (int p = 0; p < a.peers; p++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%d.bin", dir, p);
        unlink(path);
        spl_upload_free(ups[p]);
        free(wires[p]);
    }
    rmdir(dir);
    free(ups), free(wires), free(wlen), free(delta), free(ef);
    be->free(be, dbuf), be->free(be, efbuf);
    spl_ctx_free(ctx);
    model_free(m);
    return 0;
usage:
    fprintf(stderr, "usage: bench_window codec|window [--preset P] [--k K] [--device D] [--reps N] [--peers N] "
                    "[--miners N] [--samples B] [--seq T] [--json]\n");
    return 2;
}
