/* cmd_model.c - tessera model init|info, tessera train, tessera eval: the
 * single-node trainer and evaluator around model/model.h.
 *
 * Token shards come through the data module (data/data.h): llm.c-layout
 * files, directories or globs, comma-separated, read in the order given.
 * A sample is T + 1 consecutive tokens (data_sample); training takes B
 * consecutive samples per step from --start-sample on (wrapping around),
 * evaluation the first N samples. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

#include "data/data.h"
#include "model/model.h"
#include "tools.h"

/* ------------------------------------------------------------- shards */

typedef struct shard_set {
    data_dataset *ds;
    int n;            /* shards */
    int64_t nsamples; /* samples of T + 1 tokens */
    uint32_t *tmp;
} shard_set;

static void shards_close(shard_set *ss) {
    data_dataset_close(ss->ds);
    free(ss->tmp);
    memset(ss, 0, sizeof *ss);
}

/* SPEC: comma-separated shard files, directories or globs. */
static int shards_open(shard_set *ss, const char *spec, int T, ts_err *e) {
    memset(ss, 0, sizeof *ss);
    char *dup = strdup(spec);
    char **paths = NULL;
    int np = 0, rc = dup ? TS_OK : ts_fail(e, TS_ENOMEM, "out of memory");
    for (char *save = NULL, *it = dup ? strtok_r(dup, ",", &save) : NULL; it && !rc; it = strtok_r(NULL, ",", &save)) {
        data_dataset *part;
        if ((rc = data_dataset_open(it, &part, e))) break;
        int k = data_num_shards(part);
        char **np2 = realloc(paths, sizeof *paths * (size_t)(np + k));
        if (!np2) rc = ts_fail(e, TS_ENOMEM, "out of memory");
        else paths = np2;
        for (int i = 0; !rc && i < k; i++)
            if (!(paths[np++] = strdup(data_shard(part, i)->path))) rc = ts_fail(e, TS_ENOMEM, "out of memory");
        data_dataset_close(part);
    }
    free(dup);
    if (!rc) rc = data_dataset_open_files((const char *const *)paths, np, &ss->ds, e);
    for (int i = 0; i < np; i++) free(paths[i]);
    free(paths);
    if (!rc) {
        ss->n = data_num_shards(ss->ds);
        ss->nsamples = (int64_t)data_num_samples(ss->ds, (uint32_t)T);
        ss->tmp = malloc(sizeof *ss->tmp * (size_t)(T + 1));
        if (!ss->tmp) rc = ts_fail(e, TS_ENOMEM, "out of memory");
        else if (ss->nsamples == 0)
            rc = ts_fail(e, TS_EINVAL, "data '%s': no shard holds a whole sample of %d tokens", spec, T + 1);
    }
    if (rc) shards_close(ss);
    return rc;
}

/* Samples first .. first + B - 1 (modulo the total) into out, B rows of
 * T + 1 int32 tokens. */
static int shards_batch(const shard_set *ss, int64_t first, int B, int T, int32_t *out, ts_err *e) {
    for (int b = 0; b < B; b++) {
        int64_t k = (first + b) % ss->nsamples;
        if (data_sample(ss->ds, (uint32_t)T, (uint64_t)k, ss->tmp, e)) return e->code;
        for (int t = 0; t <= T; t++) out[(size_t)b * (size_t)(T + 1) + (size_t)t] = (int32_t)ss->tmp[t];
    }
    return TS_OK;
}

/* ------------------------------------------------------------- helpers */

static void set_threads(int64_t n) {
    if (n <= 0) return;
    omp_set_num_threads((int)n);
    openblas_set_num_threads((int)n);
}

/* The most threads --threads accepts: as the daemons, 4 per core, at most 1024. */
static double max_threads(void) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    return ncpu > 0 && ncpu < 256 ? 4.0 * (double)ncpu : 1024;
}

#define MODEL_MAX_VOCAB (1 << 24) /* model_config_validate's bound */
#define MODEL_MAX_SEQ (1 << 20)
#define MODEL_MAX_BATCH 65536
#define MODEL_MAX_BETA 0.999999 /* AdamW needs beta < 1 (model/optim.c) */

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* --model: a preset name or a checkpoint directory / config.json path. */
static int resolve_config(const char *spec, int64_t vocab, model_config *cfg, bool *from_dir, ts_err *e) {
    *from_dir = false;
    if (!ts_path_exists(spec)) {
        if (strchr(spec, '/'))
            return ts_fail(e, TS_ENOTFOUND, "model '%s': no such file or directory", spec);
        ts_err pe = {0};
        if (model_preset(spec, (int)vocab, cfg, &pe) == TS_OK) return TS_OK;
        return ts_fail(e, TS_EINVAL, "model '%s': neither a checkpoint directory nor a preset (%s)", spec,
                       model_preset_names());
    }
    if (vocab > 0) return ts_fail(e, TS_EINVAL, "--vocab applies to presets only; '%s' has a config", spec);
    *from_dir = is_dir(spec);
    return model_config_load(spec, cfg, e);
}

static void hash_hex(const model_config *c, char out[65]) {
    uint8_t h[TS_HASH_BYTES];
    model_config_hash(c, h);
    ts_hex(out, h, TS_HASH_BYTES);
}

/* ---------------------------------------------------------- model init */

static int cmd_model_init(int argc, char **argv) {
    char *config = NULL, *preset = NULL, *outdir = NULL;
    int64_t seed = 0, vocab = 0, threads = 0;
    const ts_opt opts[] = {
        {"config", TS_OPT_STR, &config, NULL, "a Hugging Face LlamaConfig config.json (or its directory)", 0, 0},
        {"preset", TS_OPT_STR, &preset, NULL, "a preset: tiny small 124m 150m 1b", 0, 0},
        {"vocab", TS_OPT_INT, &vocab, "0", "vocabulary size for a preset (0: the preset's)", 0, 0},
        {"seed", TS_OPT_INT, &seed, "0", "initialisation seed", 0, 0},
        {"out", TS_OPT_STR, &outdir, NULL, "output directory (model.safetensors + config.json)",
         TS_OPT_REQUIRED, 'o'},
        {"threads", TS_OPT_INT, &threads, "0", "threads (0: all cores)", 0, 0},
    };
    const int nopt = sizeof opts / sizeof opts[0];
    const ts_opt_range ranges[] = {
        {"vocab", 0, MODEL_MAX_VOCAB, 0},
        {"seed", 0, INFINITY, 0},
        {"threads", 0, max_threads(), 0},
    };
    const ts_cmdline c = {
        .prog = "tessera model init",
        .usage = "--config C | --preset P [--vocab V] --seed S --out DIR",
        .summary = "Writes a seeded initialisation (normal(0, 0.02) projections and embeddings,\n"
                   "norm weights 1; see docs/FORMATS.md section 6) as DIR/model.safetensors\n"
                   "and DIR/config.json, loadable by transformers as they are.",
        .opts = opts,
        .nopts = nopt,
        .max_pos = 0,
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    model_config cfg;
    model *m = NULL;
    if ((config != NULL) == (preset != NULL)) {
        fprintf(stderr, "tessera model init: give exactly one of --config and --preset\n");
        rc = 2;
        goto out;
    }
    if (seed < 0) {
        fprintf(stderr, "tessera model init: --seed must be non-negative\n");
        rc = 2;
        goto out;
    }
    set_threads(threads);
    if (preset) rc = model_preset(preset, (int)vocab, &cfg, &e);
    else rc = vocab ? ts_fail(&e, TS_EINVAL, "--vocab applies to presets only") : model_config_load(config, &cfg, &e);
    if (!rc) rc = model_create_opts(&cfg, kn_cpu(), &(model_options){.max_batch = 1, .max_seq = 1, .eval_only = true},
                                    &m, &e);
    if (!rc) {
        model_init(m, (uint64_t)seed);
        rc = model_save(m, outdir, &e);
    }
    if (rc) {
        rc = tool_error(&e);
    } else {
        char d[256], hx[65];
        model_config_describe(&cfg, d, sizeof d);
        hash_hex(&cfg, hx);
        printf("wrote %s (seed %lld)\n  %s\n  config hash %s\n", outdir, (long long)seed, d, hx);
    }
out:
    model_free(m);
    ts_opts_free(opts, nopt);
    return rc;
}

/* The memory plan of a trainer at batch x seq on the --device backend. */
static int print_plan(const model_config *cfg, int batch, int seq, const char *device) {
    ts_err e = {0};
    bool gpu = false;
    int dev = 0;
    if (device && strcmp(device, "cpu")) {
        int64_t v = 0;
        if (!strcmp(device, "cuda")) {
            gpu = true;
        } else if (!strncmp(device, "cuda:", 5) && !ts_parse_i64(device + 5, &v) && v >= 0 && v < 16) {
            gpu = true;
            dev = (int)v;
        } else {
            ts_fail(&e, TS_EINVAL, "--device '%s': expected cpu, cuda or cuda:N", device);
            return tool_error(&e);
        }
    }
    model_options mo = {.max_batch = batch, .max_seq = seq};
    model_mem_plan p;
    if (model_memory_plan_on(cfg, &mo, gpu, &p, &e)) return tool_error(&e);
    char s[7][32];
    ts_fmt_bytes(s[0], sizeof s[0], (double)p.params);
    ts_fmt_bytes(s[1], sizeof s[1], (double)p.grads);
    ts_fmt_bytes(s[2], sizeof s[2], (double)p.optim);
    ts_fmt_bytes(s[3], sizeof s[3], (double)p.acts);
    ts_fmt_bytes(s[4], sizeof s[4], (double)p.total);
    ts_fmt_bytes(s[5], sizeof s[5], (double)p.gemm_staging);
    ts_fmt_bytes(s[6], sizeof s[6], (double)p.blas_workspace);
    printf("training memory at batch %d x seq %d: %s (parameters %s, gradients %s, AdamW %s, activations %s",
           batch, seq, s[4], s[0], s[1], s[2], s[3]);
    if (gpu) printf(", GEMM bf16 staging %s, cuBLASLt workspace %s", s[5], s[6]);
    printf(")%s\n", gpu ? " on a GPU" : "");
    if (gpu) {
        kn_device_info info[16];
        const char *why = NULL;
        int n = kn_cuda_devices(info, 16, &why);
        if (dev < n) {
            char tm[32];
            ts_fmt_bytes(tm, sizeof tm, (double)info[dev].total_mem);
            printf("cuda:%d %s has %s: %s\n", dev, info[dev].name, tm,
                   p.total <= info[dev].total_mem ? "fits" : "does NOT fit");
        } else {
            printf("(no GPU cuda:%d here to check against: %s)\n", dev, why ? why : "none found");
        }
    }
    return 0;
}

static int cmd_model_info(int argc, char **argv) {
    char *spec = NULL, *device = NULL;
    int64_t vocab = 0, batch = 0, seq = 0;
    bool json = false;
    const ts_opt opts[] = {
        {"model", TS_OPT_STR, &spec, NULL, "checkpoint directory, config.json or preset", TS_OPT_REQUIRED, 'm'},
        {"vocab", TS_OPT_INT, &vocab, "0", "vocabulary size for a preset (0: the preset's)", 0, 0},
        {"batch", TS_OPT_INT, &batch, "0", "with --seq: also print the memory a trainer needs", 0, 0},
        {"seq", TS_OPT_INT, &seq, "0", "sequence length for the memory estimate", 0, 0},
        {"json", TS_OPT_BOOL, &json, "false", "print the config.json", 0, 0},
        {"device", TS_OPT_STR, &device, "cpu",
         "memory plan for this backend: cpu, or cuda / cuda:N (the GPU layout; checked against the "
         "GPU's memory when one is present)", 0, 0},
    };
    const int nopt = sizeof opts / sizeof opts[0];
    const ts_opt_range ranges[] = {
        {"vocab", 0, MODEL_MAX_VOCAB, 0},
        {"batch", 0, MODEL_MAX_BATCH, 0},
        {"seq", 0, MODEL_MAX_SEQ, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera model info",
        .usage = "--model DIR_OR_PRESET [--batch B --seq T [--device cuda]] [--json]",
        .summary = "Prints a model's shape, parameter count and config hash.",
        .opts = opts,
        .nopts = nopt,
        .max_pos = 0,
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    model_config cfg;
    bool from_dir;
    rc = resolve_config(spec, vocab, &cfg, &from_dir, &e);
    if (rc) {
        rc = tool_error(&e);
    } else if (json) {
        char *j = model_config_to_json(&cfg);
        if (j) fputs(j, stdout);
        free(j);
    } else {
        char d[256], hx[65];
        model_config_describe(&cfg, d, sizeof d);
        hash_hex(&cfg, hx);
        printf("%s\nconfig hash %s\n", d, hx);
        if (batch > 0 && seq > 0) rc = print_plan(&cfg, (int)batch, (int)seq, device);
    }
    ts_opts_free(opts, nopt);
    return rc;
}

/* Forward pass only, logits to a safetensors file: for comparing with other
 * implementations (tests/t_model_torch.py) and for debugging. */
static int cmd_model_logits(int argc, char **argv) {
    char *spec = NULL, *data = NULL, *outp = NULL, *device = NULL;
    int64_t samples = 0, seq = 0, threads = 0;
    const ts_opt opts[] = {
        {"model", TS_OPT_STR, &spec, NULL, "checkpoint directory", TS_OPT_REQUIRED, 'm'},
        {"data", TS_OPT_STR, &data, NULL, "shards", TS_OPT_REQUIRED, 'd'},
        {"samples", TS_OPT_INT, &samples, "1", "the first N samples", 0, 'n'},
        {"seq", TS_OPT_INT, &seq, "256", "tokens per sample (T; the inputs are a sample's first T)", 0, 't'},
        {"out", TS_OPT_STR, &outp, NULL, "output .safetensors (tensor \"logits\", (N, T, vocab), F32)",
         TS_OPT_REQUIRED, 'o'},
        {"threads", TS_OPT_INT, &threads, "0", "threads (0: all cores)", 0, 0},
        {"device", TS_OPT_STR, &device, "cpu", "compute backend: cpu, cuda, cuda:N or auto", 0, 0},
    };
    const int nopt = sizeof opts / sizeof opts[0];
    const ts_opt_range ranges[] = {
        {"samples", 1, 4096, 0},
        {"seq", 1, MODEL_MAX_SEQ, 0},
        {"threads", 0, max_threads(), 0},
    };
    const ts_cmdline c = {
        .prog = "tessera model logits",
        .usage = "--model DIR --data SHARDS --samples N --seq T --out FILE",
        .summary = "Runs the forward pass over the first N samples and writes the logits.",
        .opts = opts,
        .nopts = nopt,
        .max_pos = 0,
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    model *m = NULL;
    model_config cfg;
    shard_set ss = {0};
    int32_t *tok = NULL, *in = NULL;
    ts_tensor lt = {0};
    set_threads(threads);
    if (samples < 1 || samples > 4096 || seq < 1 || seq > (1 << 20)) {
        rc = ts_fail(&e, TS_EINVAL, "--samples must lie in [1, 4096] and --seq be positive");
        goto done;
    }
    const kn_backend *be = NULL;
    if ((rc = tool_open_device(device, &be, &e))) goto done;
    if ((rc = model_config_load(spec, &cfg, &e))) goto done;
    model_options o = {.max_batch = (int)samples, .max_seq = (int)seq, .eval_only = true};
    if ((rc = model_create_opts(&cfg, be, &o, &m, &e)) || (rc = model_load(m, spec, &e)) ||
        (rc = shards_open(&ss, data, (int)seq, &e)))
        goto done;
    int64_t shape[3] = {samples, seq, cfg.vocab_size};
    tok = malloc(sizeof(int32_t) * (size_t)samples * (size_t)(seq + 1));
    in = malloc(sizeof(int32_t) * (size_t)samples * (size_t)seq);
    if (!tok || !in) {
        rc = ts_fail(&e, TS_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = ts_tensor_alloc(&lt, "logits", TS_F32, 3, shape, &e))) goto done;
    if ((rc = shards_batch(&ss, 0, (int)samples, (int)seq, tok, &e))) goto done;
    for (int64_t b = 0; b < samples; b++)
        memcpy(in + b * seq, tok + b * (seq + 1), sizeof(int32_t) * (size_t)seq);
    if ((rc = model_logits(m, in, (int)samples, (int)seq, lt.data, &e))) goto done;
    const ts_tensor *tp = &lt;
    rc = ts_st_write(outp, &tp, 1, NULL, &e);
done:
    if (rc) rc = tool_error(&e);
    ts_tensor_free(&lt);
    free(tok);
    free(in);
    shards_close(&ss);
    model_free(m);
    ts_opts_free(opts, nopt);
    return rc;
}

static int cmd_model(int argc, char **argv) {
    static const tool_verb verbs[] = {
        {"init", "write a seeded initialisation as a checkpoint", cmd_model_init},
        {"info", "print a model's shape, size and config hash", cmd_model_info},
        {"logits", "run the forward pass and write the logits", cmd_model_logits},
    };
    return tool_dispatch("tessera model", "Create and inspect model checkpoints.", verbs, 3, argc, argv);
}

/* --------------------------------------------------------------- train */

/* Mean loss over the first n samples of ss, in batches of at most B. */
static int eval_samples(model *m, const shard_set *ss, int64_t n, int B, int T, int32_t *buf, double *mean,
                        int64_t *count, ts_err *e) {
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t k = 0; k < n; k += B) {
        int b = n - k < B ? (int)(n - k) : B;
        if (shards_batch(ss, k, b, T, buf, e)) return e->code;
        double s;
        int64_t c;
        int rc = model_eval_loss(m, buf, b, T, &s, &c, NULL, e);
        if (rc) return ts_wrap(e, "evaluating samples %lld..%lld", (long long)k, (long long)(k + b - 1));
        sum += s;
        cnt += c;
    }
    *mean = cnt ? sum / (double)cnt : 0.0;
    if (count) *count = cnt;
    return TS_OK;
}

static int cmd_train(int argc, char **argv) {
    char *spec = NULL, *data = NULL, *init = NULL, *outdir = NULL, *logjson = NULL, *savegrads = NULL,
         *valdata = NULL, *device = NULL;
    int64_t batch = 0, seq = 0, steps = 0, threads = 0, seed = 0, vocab = 0, warmup = -1, lr_total = 0,
            val_every = 0, val_samples = 0, save_every = 0, start = 0;
    double lr = 0, min_ratio = 0, wd = 0, clip = 0, b1 = 0, b2 = 0, eps = 0;
    const ts_opt opts[] = {
        {"model", TS_OPT_STR, &spec, NULL, "checkpoint directory, config.json or preset", TS_OPT_REQUIRED, 'm'},
        {"data", TS_OPT_STR, &data, NULL, "training shards: files, directories or globs, comma-separated",
         TS_OPT_REQUIRED, 'd'},
        {"batch", TS_OPT_INT, &batch, "8", "samples per step (B)", 0, 'b'},
        {"seq", TS_OPT_INT, &seq, "256", "tokens per sample (T; a sample holds T + 1)", 0, 't'},
        {"steps", TS_OPT_INT, &steps, "100", "optimizer steps", 0, 'n'},
        {"init", TS_OPT_STR, &init, NULL, "initial weights (checkpoint directory or .safetensors)", 0, 0},
        {"seed", TS_OPT_INT, &seed, "0", "initialisation seed when no weights are given", 0, 0},
        {"vocab", TS_OPT_INT, &vocab, "0", "vocabulary size for a preset (0: the preset's)", 0, 0},
        {"out", TS_OPT_STR, &outdir, NULL, "output checkpoint directory", TS_OPT_REQUIRED, 'o'},
        {"log-json", TS_OPT_STR, &logjson, NULL, "write one JSON object per step to FILE", 0, 0},
        {"save-grads", TS_OPT_STR, &savegrads, NULL, "write the first step's gradients (before clipping) as safetensors", 0, 0},
        {"lr", TS_OPT_F64, &lr, "1.3e-4", "peak learning rate", 0, 0},
        {"warmup", TS_OPT_INT, &warmup, "-1", "warm-up steps (-1: steps / 10, at most 750)", 0, 0},
        {"lr-total", TS_OPT_INT, &lr_total, "0", "step at which the cosine reaches its floor (0: --steps)", 0, 0},
        {"min-lr-ratio", TS_OPT_F64, &min_ratio, "0.1", "floor of the cosine, as a fraction of --lr", 0, 0},
        {"weight-decay", TS_OPT_F64, &wd, "0.1", "AdamW decoupled weight decay", 0, 0},
        {"beta1", TS_OPT_F64, &b1, "0.9", "AdamW beta1", 0, 0},
        {"beta2", TS_OPT_F64, &b2, "0.95", "AdamW beta2", 0, 0},
        {"eps", TS_OPT_F64, &eps, "1e-8", "AdamW epsilon", 0, 0},
        {"clip", TS_OPT_F64, &clip, "1.0", "gradient-norm clip (0: none)", 0, 0},
        {"start-sample", TS_OPT_INT, &start, "0", "first training sample", 0, 0},
        {"val-data", TS_OPT_STR, &valdata, NULL, "held-out shards for evaluation", 0, 0},
        {"val-every", TS_OPT_INT, &val_every, "0", "evaluate every K steps (and at the end; 0: only at the end)", 0, 0},
        {"val-samples", TS_OPT_INT, &val_samples, "32", "held-out samples per evaluation", 0, 0},
        {"save-every", TS_OPT_INT, &save_every, "0", "also save the checkpoint every K steps", 0, 0},
        {"threads", TS_OPT_INT, &threads, "0", "threads (0: all cores)", 0, 0},
        {"device", TS_OPT_STR, &device, "cpu", "compute backend: cpu, cuda, cuda:N or auto", 0, 0},
    };
    const int nopt = sizeof opts / sizeof opts[0];
    const ts_opt_range ranges[] = {
        {"batch", 1, MODEL_MAX_BATCH, 0},
        {"seq", 1, MODEL_MAX_SEQ, 0},
        {"steps", 0, INFINITY, 0},
        {"seed", 0, INFINITY, 0},
        {"vocab", 0, MODEL_MAX_VOCAB, 0},
        {"lr", 0, 10, 0},
        {"warmup", -1, INFINITY, 0},
        {"lr-total", 0, INFINITY, 0},
        {"min-lr-ratio", 0, 1, 0},
        {"weight-decay", 0, 10, 0},
        {"beta1", 0, MODEL_MAX_BETA, 0},
        {"beta2", 0, MODEL_MAX_BETA, 0},
        {"eps", 0, 1, TS_RANGE_MIN_OPEN},
        {"clip", 0, INFINITY, 0},
        {"start-sample", 0, INFINITY, 0},
        {"val-every", 0, INFINITY, 0},
        {"val-samples", 0, INFINITY, 0},
        {"save-every", 0, INFINITY, 0},
        {"threads", 0, max_threads(), 0},
    };
    const ts_cmdline c = {
        .prog = "tessera train",
        .usage = "--model DIR_OR_PRESET --data SHARDS --batch B --seq T --steps N [--init DIR] --out DIR",
        .summary =
            "Trains a model on token shards with AdamW (PROTOCOL.md section 6 defaults: lr 1.3e-4,\n"
            "betas 0.9/0.95, eps 1e-8, weight decay 0.1, clip 1.0, linear warm-up then cosine to\n"
            "0.1 x lr) and saves the result to --out.  Weights come from --init, else from the\n"
            "--model directory's model.safetensors, else a seeded initialisation.  Samples are\n"
            "T + 1 consecutive tokens, taken in order from the shards (llm.c layout).",
        .opts = opts,
        .nopts = nopt,
        .max_pos = 0,
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    model *m = NULL;
    shard_set tr = {0}, va = {0};
    int32_t *buf = NULL;
    FILE *lj = NULL;
    model_config cfg;
    bool from_dir = false;
    const kn_backend *be = NULL;

    if (batch < 1 || batch > 65536 || seq < 1 || seq > (1 << 20) || steps < 0 || val_samples < 0 ||
        val_every < 0 || save_every < 0 || start < 0 || seed < 0) {
        rc = ts_fail(&e, TS_EINVAL, "--batch, --seq must be positive; --steps, --seed, --val-*, --save-every non-negative");
        goto fail;
    }
    set_threads(threads);
    if ((rc = tool_open_device(device, &be, &e))) goto fail;
    if ((rc = resolve_config(spec, vocab, &cfg, &from_dir, &e))) goto fail;
    if ((rc = model_create(&cfg, be, (int)batch, (int)seq, &m, &e))) goto fail;
    {
        const char *wsrc = init;
        char *dirst = NULL;
        if (!wsrc && from_dir) {
            dirst = ts_path_join(spec, "model.safetensors");
            if (dirst && ts_path_exists(dirst)) wsrc = spec;
        }
        if (wsrc) rc = model_load(m, wsrc, &e);
        else model_init(m, (uint64_t)seed);
        free(dirst);
        if (rc) goto fail;
        fprintf(stderr, "weights: %s\n", wsrc ? wsrc : "seeded initialisation");
    }
    if ((rc = shards_open(&tr, data, (int)seq, &e))) goto fail;
    if (valdata && (rc = shards_open(&va, valdata, (int)seq, &e))) goto fail;
    buf = malloc(sizeof(int32_t) * (size_t)batch * (size_t)(seq + 1));
    if (!buf) {
        rc = ts_fail(&e, TS_ENOMEM, "out of memory");
        goto fail;
    }
    if (logjson && !(lj = fopen(logjson, "w"))) {
        rc = ts_fail(&e, TS_EIO, "%s: cannot create", logjson);
        goto fail;
    }
    model_adamw h = {.lr = lr, .beta1 = b1, .beta2 = b2, .eps = eps, .weight_decay = wd, .clip = clip};
    if (warmup < 0) warmup = steps / 10 < 750 ? steps / 10 : 750;
    model_schedule sch;
    model_schedule_defaults(&sch, lr, warmup, lr_total > 0 ? lr_total : steps);
    sch.min_ratio = min_ratio;
    {
        char d[256];
        model_config_describe(&cfg, d, sizeof d);
        fprintf(stderr, "model: %s\ndata: %lld samples of %lld tokens in %d shard(s); %lld steps of %lld samples\n",
                d, (long long)tr.nsamples, (long long)seq + 1, tr.n, (long long)steps, (long long)batch);
    }
    const int B = (int)batch, T = (int)seq;
    double t0 = ts_mono(), tok_total = 0;
    int64_t sample = start;
    for (int64_t s = 0; s < steps; s++) {
        double ts = ts_mono();
        if ((rc = shards_batch(&tr, sample, B, T, buf, &e))) goto fail;
        sample += B;
        double lr_s = model_schedule_lr(&sch, s);
        float loss;
        double norm;
        model_zero_grad(m);
        if ((rc = model_forward_backward(m, buf, B, T, &loss, &e))) {
            ts_wrap(&e, "step %lld", (long long)s + 1);
            goto fail;
        }
        if (s == 0 && savegrads && (rc = model_save_grads(m, savegrads, &e))) goto fail;
        norm = clip > 0 ? model_clip_grad(m, clip) : model_grad_norm(m);
        if (!isfinite(norm) || !isfinite(loss)) {
            rc = ts_fail(&e, TS_ESTATE, "step %lld: training diverged (loss %g, gradient norm %g)",
                         (long long)s + 1, loss, norm);
            goto fail;
        }
        if ((rc = model_adamw_step(m, &h, lr_s, &e))) goto fail;
        double dt = ts_mono() - ts;
        tok_total += (double)B * T;
        double tps = (double)B * T / dt, avg = tok_total / (ts_mono() - t0);
        double val = NAN;
        if (va.n && ((val_every && (s + 1) % val_every == 0) || s + 1 == steps)) {
            if ((rc = eval_samples(m, &va, val_samples, B, T, buf, &val, NULL, &e))) goto fail;
        }
        char left[32];
        ts_fmt_duration(left, sizeof left, (double)(steps - s - 1) * (double)B * T / avg);
        if (!isnan(val)) {
            ts_progress_done();
            fprintf(stderr, "step %lld: held-out loss %.4f\n", (long long)s + 1, val);
        }
        ts_progress("step %lld/%lld  loss %.4f  lr %.3g  norm %.3f  %.0f tok/s  %s left", (long long)s + 1,
                    (long long)steps, loss, lr_s, norm, avg, left);
        if (lj) {
            fprintf(lj, "{\"step\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, \"tokens_per_s\": %.1f, "
                        "\"time_s\": %.4f",
                    (long long)s + 1, loss, lr_s, norm, tps, dt);
            if (!isnan(val)) fprintf(lj, ", \"val_loss\": %.9g", val);
            fprintf(lj, "}\n");
            fflush(lj);
        }
        if (save_every && (s + 1) % save_every == 0 && s + 1 < steps && (rc = model_save(m, outdir, &e))) goto fail;
    }
    ts_progress_done();
    if ((rc = model_save(m, outdir, &e))) goto fail;
    fprintf(stderr, "saved %s (%lld steps, %.1f s, %.0f tokens/s)\n", outdir, (long long)steps, ts_mono() - t0,
            steps ? tok_total / (ts_mono() - t0) : 0.0);
    rc = 0;
    goto out;
fail:
    ts_progress_done();
    rc = tool_error(&e);
out:
    if (lj) fclose(lj);
    free(buf);
    shards_close(&tr);
    shards_close(&va);
    model_free(m);
    ts_opts_free(opts, nopt);
    return rc;
}

/* ---------------------------------------------------------------- eval */

static int cmd_eval(int argc, char **argv) {
    char *spec = NULL, *data = NULL, *weights = NULL, *device = NULL;
    int64_t samples = 0, seq = 0, batch = 0, threads = 0, vocab = 0;
    bool json = false;
    const ts_opt opts[] = {
        {"model", TS_OPT_STR, &spec, NULL, "checkpoint directory (or a preset with --init)", TS_OPT_REQUIRED, 'm'},
        {"data", TS_OPT_STR, &data, NULL, "shards: files, directories or globs, comma-separated", TS_OPT_REQUIRED, 'd'},
        {"samples", TS_OPT_INT, &samples, "64", "number of samples (the first N)", 0, 'n'},
        {"seq", TS_OPT_INT, &seq, "256", "tokens per sample (T; a sample holds T + 1)", 0, 't'},
        {"batch", TS_OPT_INT, &batch, "8", "samples per forward pass", 0, 'b'},
        {"init", TS_OPT_STR, &weights, NULL, "weights to use instead of the model directory's", 0, 0},
        {"vocab", TS_OPT_INT, &vocab, "0", "vocabulary size for a preset", 0, 0},
        {"threads", TS_OPT_INT, &threads, "0", "threads (0: all cores)", 0, 0},
        {"json", TS_OPT_BOOL, &json, "false", "print a JSON object", 0, 0},
        {"device", TS_OPT_STR, &device, "cpu", "compute backend: cpu, cuda, cuda:N or auto", 0, 0},
    };
    const int nopt = sizeof opts / sizeof opts[0];
    const ts_opt_range ranges[] = {
        {"samples", 1, INFINITY, 0},
        {"seq", 1, MODEL_MAX_SEQ, 0},
        {"batch", 1, MODEL_MAX_BATCH, 0},
        {"vocab", 0, MODEL_MAX_VOCAB, 0},
        {"threads", 0, max_threads(), 0},
    };
    const ts_cmdline c = {
        .prog = "tessera eval",
        .usage = "--model DIR --data SHARDS --samples N [--seq T]",
        .summary = "Prints the mean cross-entropy of a checkpoint over the first N samples of the shards.",
        .opts = opts,
        .nopts = nopt,
        .max_pos = 0,
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    model *m = NULL;
    shard_set ss = {0};
    int32_t *buf = NULL;
    model_config cfg;
    bool from_dir;
    if (samples < 1 || seq < 1 || seq > (1 << 20) || batch < 1 || batch > 65536) {
        rc = ts_fail(&e, TS_EINVAL, "--samples, --seq and --batch must be positive");
        goto fail;
    }
    set_threads(threads);
    const kn_backend *be = NULL;
    if ((rc = tool_open_device(device, &be, &e))) goto fail;
    if ((rc = resolve_config(spec, vocab, &cfg, &from_dir, &e))) goto fail;
    if (!weights && !from_dir) {
        rc = ts_fail(&e, TS_EINVAL, "'%s' holds no weights: give a checkpoint directory or --init", spec);
        goto fail;
    }
    if (batch > samples) batch = samples;
    model_options o = {.max_batch = (int)batch, .max_seq = (int)seq, .eval_only = true};
    if ((rc = model_create_opts(&cfg, be, &o, &m, &e))) goto fail;
    if ((rc = model_load(m, weights ? weights : spec, &e))) goto fail;
    if ((rc = shards_open(&ss, data, (int)seq, &e))) goto fail;
    if (samples > ss.nsamples) {
        rc = ts_fail(&e, TS_EINVAL, "--samples %lld: the data holds only %lld samples of %lld tokens",
                     (long long)samples, (long long)ss.nsamples, (long long)seq + 1);
        goto fail;
    }
    buf = malloc(sizeof(int32_t) * (size_t)batch * (size_t)(seq + 1));
    if (!buf) {
        rc = ts_fail(&e, TS_ENOMEM, "out of memory");
        goto fail;
    }
    double t0 = ts_mono(), mean;
    int64_t cnt;
    if ((rc = eval_samples(m, &ss, samples, (int)batch, (int)seq, buf, &mean, &cnt, &e))) goto fail;
    double dt = ts_mono() - t0;
    if (json)
        printf("{\"loss\": %.9g, \"tokens\": %lld, \"samples\": %lld, \"seq\": %lld, \"seconds\": %.3f}\n", mean,
               (long long)cnt, (long long)samples, (long long)seq, dt);
    else
        printf("loss %.6f  (perplexity %.3f) over %lld samples, %lld tokens, %.1f s\n", mean, exp(mean),
               (long long)samples, (long long)cnt, dt);
    rc = 0;
    goto out;
fail:
    rc = tool_error(&e);
out:
    free(buf);
    shards_close(&ss);
    model_free(m);
    ts_opts_free(opts, nopt);
    return rc;
}

TS_COMMAND("model", "create and inspect model checkpoints", 40, cmd_model)
TS_COMMAND("train", "train a model on token shards (single node)", 41, cmd_train)
TS_COMMAND("eval", "mean loss of a checkpoint on token shards", 42, cmd_eval)
