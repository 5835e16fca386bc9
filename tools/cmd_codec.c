/* cmd_codec.c - tessera codec: compress, inspect, decode, aggregate and
 * compare SparseLoCo uploads (codec/codec.h, docs/FORMATS.md section 7).
 *
 * The tools work on local files without a model at hand: the tensor layout
 * is read from the upload itself (after its signature is checked against
 * the hotkey it names, or against --signer when given).  Having no model,
 * they cannot know the body size to expect, so the first upload's body may
 * declare at most --max-size bytes (1 GiB by default), checked before
 * anything is decompressed; the uploads after it (aggregate, overlap) must
 * be what the first one's model allows, as a node checks them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <zstd.h>

#include "codec/codec.h"
#include "tools.h"

/* --max-size: the largest body the first upload may declare */
#define CLI_DEFAULT_MAX_BODY "1073741824" /* 1 GiB */
#define CLI_MAX_BODY_LIMIT 1099511627776.0 /* 1 TiB: what --max-size may say */
#define MAX_SIZE_OPT(v, what)                                                                               \
    {"max_size", TS_OPT_INT, &(v), CLI_DEFAULT_MAX_BODY,                                                    \
     "refuse " what " whose body declares more bytes than this, before decompressing", 0, 0}
#define MAX_SIZE_RANGE {"max_size", 1, CLI_MAX_BODY_LIMIT, 0}

static const unsigned SKIP_ALL = SPL_SKIP_RUN | SPL_SKIP_WINDOW | SPL_SKIP_UID | SPL_SKIP_SIGNER | SPL_SKIP_CONFIG;

static int parse_key(const char *s, uint8_t pk[TS_PK_BYTES], ts_err *e) {
    if (!ts_unhex(pk, TS_PK_BYTES, s) || !ts_ss58_decode(pk, s)) return TS_OK;
    return ts_fail(e, TS_EINVAL, "'%s' is neither a 32-byte hex public key nor an SS58 address", s);
}

static int parse_hash(const char *opt, const char *s, uint8_t out[TS_HASH_BYTES], ts_err *e) {
    memset(out, 0, TS_HASH_BYTES);
    if (!s) return TS_OK;
    if (ts_unhex(out, TS_HASH_BYTES, s)) return ts_fail(e, TS_EINVAL, "--%s: expected 64 hex digits", opt);
    return TS_OK;
}

/* ------------------------------------------------------------ loading */

typedef struct loaded {
    char *path;
    uint8_t *buf;
    size_t len;
    spl_ctx *c;
    spl_upload *u;
    spl_reject why;
    int rc;
    ts_err err; /* why it did not decode */
    bool peeked, sig_ok;
    spl_meta meta;
    spl_params params;
    spl_wire_info info;
} loaded;

static void loaded_free(loaded *l) {
    spl_upload_free(l->u);
    spl_ctx_free(l->c);
    free(l->buf);
    memset(l, 0, sizeof *l);
}

static bool signature_held(int rc, spl_reject why);

/* Reads and decodes an upload; a file that cannot be read fails, a file
 * that does not decode is returned with l->rc and l->why set.  With a
 * context given (aggregate, overlap) the upload must fit it and match
 * `like`'s run, window and config. */
static int load_upload(const char *path, const uint8_t *signer, spl_ctx *shared, const spl_meta *like,
                       size_t max_body, loaded *l, ts_err *e) {
    memset(l, 0, sizeof *l);
    l->path = (char *)path;
    /* the largest file an upload of such a body can be: with a context, the
     * largest its model allows; else a header, the zstd bound of max_body
     * and a signature */
    size_t max_wire = shared ? spl_ctx_wire_max(shared) : SPL_HEADER_BYTES + ZSTD_compressBound(max_body) + 64;
    int rc = ts_read_file(path, max_wire, &l->buf, &l->len, e);
    if (rc == TS_ETOOBIG && !shared) {
        size_t n = strlen(e->msg);
        snprintf(e->msg + n, sizeof e->msg - n, " (the largest upload of a body within --max-size)");
    }
    if (rc) return rc;
    spl_reject r;
    ts_err pe = {0};
    l->peeked = !spl_peek(l->buf, l->len, &l->meta, &l->params, &l->info, &r, &pe);
    spl_expect x = {0};
    x.skip = SKIP_ALL;
    if (signer) {
        x.signer = signer;
        x.skip &= ~SPL_SKIP_SIGNER;
    }
    if (like) {
        x.run_id = like->run_id;
        x.window = like->window;
        x.config_hash = like->config_hash;
        x.skip &= ~(SPL_SKIP_RUN | SPL_SKIP_WINDOW | SPL_SKIP_CONFIG);
    }
    spl_ctx *c = shared;
    if (!c) {
        l->rc = spl_ctx_from_wire(l->buf, l->len, max_body, &l->c, &l->why, &l->err);
        if (l->rc == TS_ENOMEM) return ts_fail(e, TS_ENOMEM, "%s: %s", path, l->err.msg);
        if (l->why == SPL_R_OVERSIZED) {
            /* say which limit: the tools', not the protocol's */
            size_t n = strlen(l->err.msg);
            snprintf(l->err.msg + n, sizeof l->err.msg - n, " (--max-size)");
        }
        if (l->rc) {
            l->sig_ok = signature_held(l->rc, l->why);
            return TS_OK;
        }
        c = l->c;
    }
    if ((rc = spl_upload_new(c, &l->u, e))) return rc;
    l->rc = spl_decode(c, l->buf, l->len, &x, l->u, &l->why, &l->err);
    if (l->rc == TS_ENOMEM) return ts_fail(e, TS_ENOMEM, "%s: %s", path, l->err.msg);
    l->sig_ok = signature_held(l->rc, l->why);
    return TS_OK;
}

/* Whether the signature was checked and held (the reasons before it in
 * the order of checks say nothing about the signature). */
static bool signature_held(int rc, spl_reject why) {
    if (rc == TS_OK) return true;
    switch (why) {
    case SPL_R_NONE:
    case SPL_R_TRUNCATED:
    case SPL_R_OVERSIZED:
    case SPL_R_TRAILING:
    case SPL_R_MAGIC:
    case SPL_R_VERSION:
    case SPL_R_SIGNATURE: return false;
    default: return true;
    }
}

static int require_decoded(const loaded *l, ts_err *e) {
    if (l->rc == TS_OK) return TS_OK;
    return ts_fail(e, l->rc, "%s: %s", l->path, l->err.msg);
}

/* ------------------------------------------------------------ compress */

static int load_f32(const ts_st_file *f, const char *what, ts_tensor **out, int *n, ts_err *e) {
    int cnt = ts_st_count(f);
    ts_tensor *t = calloc((size_t)(cnt ? cnt : 1), sizeof *t);
    if (!t) return ts_fail(e, TS_ENOMEM, "out of memory");
    for (int i = 0; i < cnt; i++) {
        const ts_tensor *src = ts_st_get(f, i);
        if (src->dtype != TS_F32) {
            for (int j = 0; j < i; j++) ts_tensor_free(&t[j]);
            free(t);
            return ts_fail(e, TS_EINVAL, "%s tensor %s is %s; the codec takes F32", what, src->name,
                           ts_dtype_name(src->dtype));
        }
        int rc = ts_tensor_alloc(&t[i], src->name, TS_F32, src->ndim, src->shape, e);
        if (rc) {
            for (int j = 0; j < i; j++) ts_tensor_free(&t[j]);
            free(t);
            return rc;
        }
        memcpy(t[i].data, src->data, src->nbytes); /* aligned copy of a possibly unaligned view */
    }
    *out = t;
    *n = cnt;
    return TS_OK;
}

static void free_tensors(ts_tensor *t, int n) {
    if (!t) return;
    for (int i = 0; i < n; i++) ts_tensor_free(&t[i]);
    free(t);
}

static int cmd_compress(int argc, char **argv) {
    char *delta_p = NULL, *ef_p = NULL, *out_p = NULL, *efout_p = NULL, *wallet = NULL, *hotkey = NULL;
    char *run = NULL, *base = NULL, *sample = NULL, *config = NULL;
    int64_t window = 0, uid = 0, k = 64, bins = 4, chunk = 64, level = 3;
    double beta = 0.95, alpha = 1.0, range = 6.0;
    const ts_opt opts[] = {
        {"delta", TS_OPT_STR, &delta_p, NULL, "pseudo-gradient (safetensors, F32)", TS_OPT_REQUIRED, 0},
        {"ef", TS_OPT_STR, &ef_p, NULL, "error feedback to fold in (default: zeros)", 0, 0},
        {"out", TS_OPT_STR, &out_p, NULL, "where to write the signed upload", TS_OPT_REQUIRED, 'o'},
        {"ef-out", TS_OPT_STR, &efout_p, NULL, "where to write the new error feedback", TS_OPT_REQUIRED, 0},
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "hotkey that signs", TS_OPT_REQUIRED, 0},
        {"run", TS_OPT_STR, &run, NULL, "run id", TS_OPT_REQUIRED, 0},
        {"window", TS_OPT_INT, &window, NULL, "window", TS_OPT_REQUIRED, 0},
        {"uid", TS_OPT_INT, &uid, NULL, "the miner's uid", TS_OPT_REQUIRED, 0},
        {"k", TS_OPT_INT, &k, "64", "values kept per tile (at most the tile's values, made even)", 0, 0},
        {"bins", TS_OPT_INT, &bins, "4", "quantizer bins: 4 (2-bit) or 256 (8-bit)", 0, 0},
        {"chunk", TS_OPT_INT, &chunk, "64", "target chunk per dimension", 0, 0},
        {"beta", TS_OPT_F64, &beta, "0.95", "error-feedback decay", 0, 0},
        {"alpha", TS_OPT_F64, &alpha, "1.0", "weight of the delta in the error feedback", 0, 0},
        {"range", TS_OPT_F64, &range, "6", "quantizer range in standard deviations", 0, 0},
        {"base-hash", TS_OPT_STR, &base, NULL, "BLAKE2b of the checkpoint trained from (hex)", 0, 0},
        {"sample-digest", TS_OPT_STR, &sample, NULL, "digest of the sample ids trained on (hex)", 0, 0},
        {"config-hash", TS_OPT_STR, &config, NULL, "model config hash (hex)", 0, 0},
        {"zstd-level", TS_OPT_INT, &level, "3", "zstd level", 0, 0},
    };
    const int nopts = (int)(sizeof opts / sizeof *opts);
    /* what the wire format holds (u64 window as a JSON-exact integer, u32
     * uid, u16 k of 2..4096, 4 or 256 bins, chunk 1..64) and what the
     * arithmetic can use: the fp32 parameters finite, a decay in [0, 1] */
    const ts_opt_range ranges[] = {
        {"window", 0, 9007199254740991.0, 0},
        {"uid", 0, 4294967295.0, 0},
        {"k", 2, SPL_MAX_TILE, 0},
        {"bins", 4, 256, 0},
        {"chunk", 1, SPL_MAX_CHUNK, 0},
        {"beta", 0, 1, 0},
        {"alpha", 0, 1000, 0},
        {"range", 0, 1000, TS_RANGE_MIN_OPEN},
        {"zstd-level", 1, 22, 0},
    };
    const ts_cmdline cl = {
        .prog = "tessera codec compress",
        .usage = "--delta D.safetensors [--ef EF.safetensors] --out G --ef-out EF2.safetensors "
                 "--wallet W --hotkey H --run R --window N --uid U [--k 64 --bins 4]",
        .summary = "Folds the delta into the error feedback (ef = beta*ef + alpha*delta), keeps the k\n"
                   "largest values of every tile, quantizes them, and writes the upload signed by the\n"
                   "hotkey, and the new error feedback (what was not sent).",
        .opts = opts,
        .nopts = nopts,
        .env = true,
        .max_pos = 0,
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
    };
    int rc = tool_parse(&cl, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    ts_st_file *df = NULL, *ef = NULL;
    ts_tensor *delta = NULL, *eft = NULL;
    int nd = 0, ne = 0;
    spl_ctx *c = NULL;
    spl_meta m;
    memset(&m, 0, sizeof m);
    ts_keypair kp;
    spl_params p = {(int)k, (int)bins, (int)chunk, (float)beta, (float)alpha, (float)range};
    if (!spl_run_id_valid(run)) {
        rc = ts_fail(&e, TS_EINVAL, "--run: '%s' is not 1..64 of [A-Za-z0-9._-]", run);
        goto done;
    }
    snprintf(m.run_id, sizeof m.run_id, "%s", run);
    m.window = (uint64_t)window;
    m.uid = (uint32_t)uid;
    if ((rc = parse_hash("base-hash", base, m.base_hash, &e)) ||
        (rc = parse_hash("sample-digest", sample, m.sample_digest, &e)) ||
        (rc = parse_hash("config-hash", config, m.config_hash, &e)))
        goto done;
    if ((rc = ts_key_load(wallet, hotkey, &kp, &e))) goto done;
    if ((rc = ts_st_open(delta_p, &df, &e)) || (rc = load_f32(df, "delta", &delta, &nd, &e))) goto done;
    if (nd == 0) {
        rc = ts_fail(&e, TS_EINVAL, "%s holds no tensors", delta_p);
        goto done;
    }
    if ((rc = spl_ctx_new(&p, delta, nd, &c, &e))) goto done;
    spl_ctx_set_zstd_level(c, (int)level);
    eft = calloc((size_t)nd, sizeof *eft);
    if (!eft) {
        rc = ts_fail(&e, TS_ENOMEM, "out of memory");
        goto done;
    }
    ne = nd;
    for (int i = 0; i < nd; i++)
        if ((rc = ts_tensor_alloc(&eft[i], delta[i].name, TS_F32, delta[i].ndim, delta[i].shape, &e))) goto done;
    if (ef_p) {
        if ((rc = ts_st_open(ef_p, &ef, &e))) goto done;
        if (ts_st_count(ef) != nd) {
            rc = ts_fail(&e, TS_EINVAL, "%s holds %d tensors, the delta %d", ef_p, ts_st_count(ef), nd);
            goto done;
        }
        for (int i = 0; i < nd; i++) {
            const ts_tensor *s = ts_st_find(ef, delta[i].name);
            if (!s || s->dtype != TS_F32 || s->nbytes != eft[i].nbytes || s->ndim != delta[i].ndim ||
                memcmp(s->shape, delta[i].shape, sizeof(int64_t) * (size_t)s->ndim)) {
                rc = ts_fail(&e, TS_EINVAL, "%s: tensor %s is missing or not F32 of the delta's shape", ef_p,
                             delta[i].name);
                goto done;
            }
            memcpy(eft[i].data, s->data, s->nbytes);
        }
    }
    const uint8_t *wire;
    size_t wlen;
    double t0 = ts_mono();
    if ((rc = spl_compress(c, delta, eft, &m, &kp, &wire, &wlen, &e))) goto done;
    double dt = ts_mono() - t0;
    if ((rc = ts_write_atomic(out_p, wire, wlen, &e))) goto done;
    const ts_tensor **ptrs = malloc((size_t)nd * sizeof *ptrs);
    if (!ptrs) {
        rc = ts_fail(&e, TS_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < nd; i++) ptrs[i] = &eft[i];
    char win[32];
    snprintf(win, sizeof win, "%llu", (unsigned long long)m.window);
    const char *meta[] = {"format", "tessera-error-feedback", "run", m.run_id, "window", win, NULL};
    rc = ts_st_write(efout_p, ptrs, nd, meta, &e);
    free(ptrs);
    if (rc) goto done;
    double dense = (double)spl_ctx_numel(c) * 4.0;
    char sz[32];
    ts_fmt_bytes(sz, sizeof sz, (double)wlen);
    printf("wrote %s: %s, %lld values of %lld (%.1fx smaller than fp32, %.1fx than bf16), %.2f s\n", out_p, sz,
           (long long)spl_ctx_values(c), (long long)spl_ctx_numel(c), dense / (double)wlen,
           dense / 2.0 / (double)wlen, dt);
    printf("wrote %s: the error feedback after this upload\n", efout_p);
done:
    free_tensors(delta, nd);
    free_tensors(eft, ne);
    ts_st_close(df);
    ts_st_close(ef);
    spl_ctx_free(c);
    ts_opts_free(opts, nopts);
    return rc ? tool_error(&e) : 0;
}

/* ------------------------------------------------------------ inspect */

static void add_hex(cJSON *o, const char *key, const uint8_t *b, size_t n) {
    char hex[2 * 64 + 3] = "0x";
    ts_hex(hex + 2, b, n);
    cJSON_AddStringToObject(o, key, hex);
}

static int cmd_inspect(int argc, char **argv) {
    char *signer_s = NULL;
    int64_t max_size = 0;
    const ts_opt opts[] = {
        {"signer", TS_OPT_STR, &signer_s, NULL, "verify against this hotkey (hex or SS58), not the one named inside", 0, 0},
        MAX_SIZE_OPT(max_size, "an upload"),
    };
    const ts_opt_range ranges[] = {MAX_SIZE_RANGE};
    const ts_cmdline cl = {
        .prog = "tessera codec inspect",
        .usage = "G [--signer KEY] [--max-size BYTES]",
        .summary = "Prints a JSON summary of an upload: metadata, codec parameters, tensors, sizes,\n"
                   "compression ratio, signer, and whether the signature and every check pass.\n"
                   "Exits 1 when the upload would be rejected (the JSON says why).",
        .opts = opts,
        .nopts = 2,
        .min_pos = 1,
        .max_pos = 1,
        .ranges = ranges,
        .nranges = 1,
    };
    char **pos = NULL;
    int npos = 0;
    int rc = tool_parse(&cl, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    uint8_t pk[TS_PK_BYTES];
    loaded l;
    memset(&l, 0, sizeof l);
    if (signer_s && (rc = parse_key(signer_s, pk, &e))) goto done;
    if ((rc = load_upload(pos[0], signer_s ? pk : NULL, NULL, NULL, (size_t)max_size, &l, &e))) goto done;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", pos[0]);
    cJSON_AddNumberToObject(o, "bytes", (double)l.len);
    if (l.peeked) {
        cJSON_AddStringToObject(o, "format", "tessera-gradient");
        cJSON_AddNumberToObject(o, "version", SPL_WIRE_VERSION);
        cJSON_AddStringToObject(o, "run", l.meta.run_id);
        cJSON_AddNumberToObject(o, "window", (double)l.meta.window);
        cJSON_AddNumberToObject(o, "uid", l.meta.uid);
        add_hex(o, "signer", l.meta.hotkey, TS_PK_BYTES);
        char ss[64];
        ts_ss58(ss, l.meta.hotkey);
        cJSON_AddStringToObject(o, "signer_ss58", ss);
        add_hex(o, "base_checkpoint_hash", l.meta.base_hash, TS_HASH_BYTES);
        add_hex(o, "sample_digest", l.meta.sample_digest, TS_HASH_BYTES);
        add_hex(o, "config_hash", l.meta.config_hash, TS_HASH_BYTES);
        cJSON *pj = cJSON_AddObjectToObject(o, "codec");
        cJSON_AddNumberToObject(pj, "k", l.params.k);
        cJSON_AddNumberToObject(pj, "bins", l.params.bins);
        cJSON_AddNumberToObject(pj, "chunk", l.params.chunk);
        cJSON_AddNumberToObject(pj, "beta", l.params.beta);
        cJSON_AddNumberToObject(pj, "alpha", l.params.alpha);
        cJSON_AddNumberToObject(pj, "range", l.params.range);
    }
    cJSON_AddBoolToObject(o, "signature_valid", l.sig_ok);
    cJSON_AddBoolToObject(o, "valid", l.rc == TS_OK);
    if (l.rc) {
        cJSON *rj = cJSON_AddObjectToObject(o, "reject");
        cJSON_AddStringToObject(rj, "reason", spl_reject_name(l.why));
        cJSON_AddStringToObject(rj, "message", l.err.msg);
    } else {
        const spl_ctx *c = l.c;
        const int bins = spl_ctx_params(c)->bins;
        double dense = (double)spl_ctx_numel(c) * 4.0;
        cJSON *sj = cJSON_AddObjectToObject(o, "sizes");
        cJSON_AddNumberToObject(sj, "wire", (double)l.len);
        cJSON_AddNumberToObject(sj, "body", (double)l.info.body_bytes);
        cJSON_AddNumberToObject(sj, "body_compressed", (double)l.info.zbody_bytes);
        cJSON_AddNumberToObject(sj, "elements", (double)spl_ctx_numel(c));
        cJSON_AddNumberToObject(sj, "values", (double)spl_ctx_values(c));
        cJSON_AddNumberToObject(sj, "dense_fp32", dense);
        cJSON_AddNumberToObject(sj, "dense_bf16", dense / 2);
        cJSON_AddNumberToObject(o, "ratio_fp32", round(dense / (double)l.len * 100) / 100);
        cJSON_AddNumberToObject(o, "ratio_bf16", round(dense / 2 / (double)l.len * 100) / 100);
        cJSON *ta = cJSON_AddArrayToObject(o, "tensors");
        for (int i = 0; i < spl_ctx_count(c); i++) {
            spl_tinfo ti;
            spl_tview tv;
            spl_ctx_tensor(c, i, &ti);
            spl_upload_tensor(l.u, i, &tv);
            cJSON *t = cJSON_CreateObject();
            cJSON_AddStringToObject(t, "name", ti.name);
            cJSON *sh = cJSON_AddArrayToObject(t, "shape");
            for (int d = 0; d < ti.ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)ti.shape[d]));
            cJSON *ch = cJSON_AddArrayToObject(t, "chunk");
            if (ti.ndim == 2) cJSON_AddItemToArray(ch, cJSON_CreateNumber(ti.chunk[0]));
            cJSON_AddItemToArray(ch, cJSON_CreateNumber(ti.chunk[1]));
            cJSON_AddNumberToObject(t, "tiles", (double)ti.tiles);
            cJSON_AddNumberToObject(t, "k", ti.k);
            cJSON_AddNumberToObject(t, "values", (double)ti.values);
            cJSON_AddNumberToObject(t, "record_bytes", (double)ti.record_bytes);
            cJSON_AddNumberToObject(t, "shift", tv.shift);
            if (bins == 4) {
                cJSON *lj = cJSON_AddArrayToObject(t, "lut");
                for (int b = 0; b < bins; b++) cJSON_AddItemToArray(lj, cJSON_CreateNumber(tv.lut[b]));
            }
            cJSON *cj = cJSON_AddArrayToObject(t, "codes_per_bin");
            for (int b = 0; b < bins; b++) cJSON_AddItemToArray(cj, cJSON_CreateNumber(tv.count[b]));
            cJSON_AddNumberToObject(t, "norm", tv.norm);
            cJSON_AddItemToArray(ta, t);
        }
    }
    char *s = cJSON_Print(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    rc = l.rc ? 1 : 0;
    loaded_free(&l);
    ts_opts_free(opts, 2);
    free(pos);
    return rc;
done:
    loaded_free(&l);
    ts_opts_free(opts, 2);
    free(pos);
    return rc ? tool_error(&e) : 0;
}

/* ------------------------------------------------------ decode, aggregate */

static int alloc_like(const spl_ctx *c, ts_tensor **out, ts_err *e) {
    int n = spl_ctx_count(c);
    ts_tensor *t = calloc((size_t)n, sizeof *t);
    if (!t) return ts_fail(e, TS_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        spl_tinfo ti;
        spl_ctx_tensor(c, i, &ti);
        int rc = ts_tensor_alloc(&t[i], ti.name, TS_F32, ti.ndim, ti.shape, e);
        if (rc) {
            free_tensors(t, i);
            return rc;
        }
    }
    *out = t;
    return TS_OK;
}

static int write_tensors(const char *path, ts_tensor *t, int n, const char *const *meta, ts_err *e) {
    const ts_tensor **ptrs = malloc((size_t)n * sizeof *ptrs);
    if (!ptrs) return ts_fail(e, TS_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) ptrs[i] = &t[i];
    int rc = ts_st_write(path, ptrs, n, meta, e);
    free(ptrs);
    return rc;
}

static int cmd_decode(int argc, char **argv) {
    char *out_p = NULL, *signer_s = NULL;
    int64_t max_size = 0;
    const ts_opt opts[] = {
        {"out", TS_OPT_STR, &out_p, NULL, "dense safetensors to write", TS_OPT_REQUIRED, 'o'},
        {"signer", TS_OPT_STR, &signer_s, NULL, "verify against this hotkey (hex or SS58)", 0, 0},
        MAX_SIZE_OPT(max_size, "an upload"),
    };
    const ts_opt_range ranges[] = {MAX_SIZE_RANGE};
    const ts_cmdline cl = {
        .prog = "tessera codec decode",
        .usage = "G --out dense.safetensors [--signer KEY] [--max-size BYTES]",
        .summary = "Verifies an upload and writes its dequantized values as dense F32 tensors\n"
                   "(zeros where nothing was sent): exactly what the sender's error feedback\n"
                   "subtracted.  No clipping.",
        .opts = opts,
        .nopts = 3,
        .min_pos = 1,
        .max_pos = 1,
        .ranges = ranges,
        .nranges = 1,
    };
    char **pos = NULL;
    int npos = 0;
    int rc = tool_parse(&cl, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    uint8_t pk[TS_PK_BYTES];
    loaded l;
    memset(&l, 0, sizeof l);
    ts_tensor *t = NULL;
    int n = 0;
    if (signer_s && (rc = parse_key(signer_s, pk, &e))) goto done;
    if ((rc = load_upload(pos[0], signer_s ? pk : NULL, NULL, NULL, (size_t)max_size, &l, &e)) ||
        (rc = require_decoded(&l, &e)))
        goto done;
    n = spl_ctx_count(l.c);
    if ((rc = alloc_like(l.c, &t, &e)) || (rc = spl_upload_dense(l.c, l.u, t, &e))) goto done;
    char win[32], uid[16], hk[2 * TS_PK_BYTES + 3] = "0x";
    snprintf(win, sizeof win, "%llu", (unsigned long long)l.meta.window);
    snprintf(uid, sizeof uid, "%u", l.meta.uid);
    ts_hex(hk + 2, l.meta.hotkey, TS_PK_BYTES);
    const char *meta[] = {"format", "tessera-decoded-gradient", "run", l.meta.run_id, "window", win,
                          "uid", uid, "signer", hk, NULL};
    if ((rc = write_tensors(out_p, t, n, meta, &e))) goto done;
    printf("wrote %s: %d tensors, %lld values from uid %u, window %s\n", out_p, n,
           (long long)spl_ctx_values(l.c), l.meta.uid, win);
done:
    free_tensors(t, n);
    loaded_free(&l);
    ts_opts_free(opts, 3);
    free(pos);
    return rc ? tool_error(&e) : 0;
}

/* The first upload within max_body; the others as its model allows. */
static int load_many(char **paths, int n, size_t max_body, loaded *ls, spl_ctx **ctx, ts_err *e) {
    int rc = load_upload(paths[0], NULL, NULL, NULL, max_body, &ls[0], e);
    if (rc || (rc = require_decoded(&ls[0], e))) return rc;
    *ctx = ls[0].c;
    for (int i = 1; i < n; i++) {
        if ((rc = load_upload(paths[i], NULL, *ctx, &ls[0].meta, 0, &ls[i], e))) return rc;
        if (ls[i].rc)
            return ts_fail(e, ls[i].rc, "%s: %s (uploads must share %s's model, codec, run and window)", paths[i],
                           ls[i].err.msg, paths[0]);
    }
    return TS_OK;
}

static int cmd_aggregate(int argc, char **argv) {
    char *out_p = NULL;
    int64_t max_size = 0;
    const ts_opt opts[] = {
        {"out", TS_OPT_STR, &out_p, NULL, "dense safetensors of the aggregate g", TS_OPT_REQUIRED, 'o'},
        MAX_SIZE_OPT(max_size, "the first upload (the others must fit its model)"),
    };
    const ts_opt_range ranges[] = {MAX_SIZE_RANGE};
    const ts_cmdline cl = {
        .prog = "tessera codec aggregate",
        .usage = "G1 G2 ... --out g.safetensors [--max-size BYTES]",
        .summary = "Aggregates uploads of one run and window exactly as the outer step does\n"
                   "(median-norm clip per tensor, mean over the peers that chose each coordinate,\n"
                   "peers in uid order) and writes g, so that theta - alpha * g is the next model.",
        .opts = opts,
        .nopts = 2,
        .min_pos = 1,
        .max_pos = SPL_MAX_PEERS,
        .ranges = ranges,
        .nranges = 1,
    };
    char **pos = NULL;
    int npos = 0;
    int rc = tool_parse(&cl, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    loaded *ls = calloc((size_t)npos, sizeof *ls);
    spl_ctx *c = NULL;
    ts_tensor *g = NULL;
    int n = 0;
    const spl_upload *peers[SPL_MAX_PEERS];
    if (!ls) {
        rc = ts_fail(&e, TS_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = load_many(pos, npos, (size_t)max_size, ls, &c, &e))) goto done;
    for (int i = 0; i < npos; i++) peers[i] = ls[i].u;
    n = spl_ctx_count(c);
    spl_apply_stats st;
    if ((rc = alloc_like(c, &g, &e)) || (rc = spl_aggregate_dense(c, peers, npos, NULL, g, &st, &e))) goto done;
    char uids[SPL_MAX_PEERS * 11 + 1] = "", win[32], skipped[16];
    /* the uids in the order the aggregation takes them */
    uint32_t sorted[SPL_MAX_PEERS];
    for (int i = 0; i < npos; i++) {
        uint32_t u = ls[i].meta.uid;
        int j = i;
        while (j > 0 && sorted[j - 1] > u) sorted[j] = sorted[j - 1], j--;
        sorted[j] = u;
    }
    for (int i = 0; i < npos; i++)
        snprintf(uids + strlen(uids), sizeof uids - strlen(uids), "%s%u", i ? "," : "", sorted[i]);
    snprintf(win, sizeof win, "%llu", (unsigned long long)ls[0].meta.window);
    snprintf(skipped, sizeof skipped, "%d", st.tensors_skipped);
    const char *meta[] = {"format", "tessera-aggregate", "run", ls[0].meta.run_id, "window", win,
                          "uids", uids, "tensors_skipped", skipped, NULL};
    if ((rc = write_tensors(out_p, g, n, meta, &e))) goto done;
    printf("wrote %s: aggregate of %d uploads (uids %s), %lld coordinates, %d tensors skipped as non-finite\n",
           out_p, npos, uids, (long long)st.coords, st.tensors_skipped);
done:
    free_tensors(g, n);
    for (int i = 0; ls && i < npos; i++) {
        if (i > 0) ls[i].c = NULL; /* shared with ls[0] */
        loaded_free(&ls[i]);
    }
    free(ls);
    ts_opts_free(opts, 2);
    free(pos);
    return rc ? tool_error(&e) : 0;
}

static int cmd_overlap(int argc, char **argv) {
    bool json = false;
    int64_t max_size = 0;
    const ts_opt opts[] = {
        {"json", TS_OPT_BOOL, &json, "false", "print JSON", 0, 0},
        MAX_SIZE_OPT(max_size, "the first upload (the other must fit its model)"),
    };
    const ts_opt_range ranges[] = {MAX_SIZE_RANGE};
    const ts_cmdline cl = {
        .prog = "tessera codec overlap",
        .usage = "G1 G2 [--json] [--max-size BYTES]",
        .summary = "Prints the mean per-tile share of top-k indices two uploads have in common\n"
                   "(0: independent, 1: identical choice); the copycat check of the Gauntlet.",
        .opts = opts,
        .nopts = 2,
        .min_pos = 2,
        .max_pos = 2,
        .ranges = ranges,
        .nranges = 1,
    };
    char **pos = NULL;
    int npos = 0;
    int rc = tool_parse(&cl, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    loaded ls[2];
    memset(ls, 0, sizeof ls);
    spl_ctx *c = NULL;
    double share = 0;
    if ((rc = load_many(pos, 2, (size_t)max_size, ls, &c, &e)) || (rc = spl_overlap(c, ls[0].u, ls[1].u, &share, &e)))
        goto done;
    if (json)
        printf("{\"overlap\": %.6f, \"uids\": [%u, %u], \"window\": %llu}\n", share, ls[0].meta.uid, ls[1].meta.uid,
               (unsigned long long)ls[0].meta.window);
    else
        printf("%.6f\n", share);
done:
    ls[1].c = NULL;
    loaded_free(&ls[0]);
    loaded_free(&ls[1]);
    ts_opts_free(opts, 2);
    free(pos);
    return rc ? tool_error(&e) : 0;
}

static int cmd_codec(int argc, char **argv) {
    static const tool_verb verbs[] = {
        {"compress", "compress a delta into a signed upload (and the new error feedback)", cmd_compress},
        {"inspect", "print a JSON summary of an upload and whether it is valid", cmd_inspect},
        {"decode", "verify an upload and write its values as dense tensors", cmd_decode},
        {"aggregate", "aggregate uploads into the outer step's g", cmd_aggregate},
        {"overlap", "share of common top-k indices between two uploads", cmd_overlap},
    };
    return tool_dispatch("tessera codec", "SparseLoCo uploads: compress, inspect, decode, aggregate, compare.", verbs,
                         5, argc, argv);
}

TS_COMMAND("codec", "SparseLoCo uploads: compress, inspect, decode, aggregate, overlap", 40, cmd_codec)
