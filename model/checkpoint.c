/* checkpoint.c - seeded initialisation, and checkpoints: model.safetensors
 * with Hugging Face names plus config.json (docs/FORMATS.md section 6). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model_internal.h"

#define INIT_STD 0.02
#define INIT_BLOCK 16384 /* values per generator block */

/* ------------------------------------------------------------ host views
 * On the CPU backend the parameters are host memory already; on a GPU they
 * pass through a host copy. */

static float *host_copy(const model *m, const float *dev, size_t n, ts_err *e) {
    if (!m->be->is_gpu) return (float *)dev;
    float *h = malloc(n * sizeof(float) + 1);
    if (!h) {
        ts_fail(e, TS_ENOMEM, "out of memory");
        return NULL;
    }
    if (m->be->download(m->be, h, dev, n * sizeof(float))) {
        free(h);
        ts_fail(e, TS_EIO, "model: downloading from %s failed", m->be->name);
        return NULL;
    }
    return h;
}

static void host_release(const model *m, float *h) {
    if (m->be->is_gpu) free(h);
}

/* ------------------------------------------------------------------ init */

/* One block of normal(0, std) values: ChaCha20 bytes from a per-block seed,
 * two u32 per pair of values, Box-Muller in double.  The random bytes are
 * generated into the output itself and consumed pair by pair. */
static void init_block(float *out, size_t n, uint64_t seed, const char *name, uint64_t block) {
    static const char tag[] = "tessera-init-v1";
    ts_hasher h;
    uint8_t le[8], key[32];
    ts_hasher_init(&h, 32);
    ts_hasher_update(&h, tag, sizeof tag); /* with its terminating zero */
    ts_put_u64(le, seed);
    ts_hasher_update(&h, le, 8);
    ts_put_u64(le, block);
    ts_hasher_update(&h, le, 8);
    ts_hasher_update(&h, name, strlen(name));
    ts_hasher_final(&h, key);
    size_t pairs = (n + 1) / 2;
    uint8_t buf[INIT_BLOCK * 4];
    ts_det_bytes(buf, pairs * 8, key);
    for (size_t k = 0; k < pairs; k++) {
        uint32_t a = ts_get_u32(buf + 8 * k), b = ts_get_u32(buf + 8 * k + 4);
        double u1 = ((double)a + 1.0) / 4294967296.0; /* (0, 1] */
        double u2 = (double)b / 4294967296.0;          /* [0, 1) */
        double r = sqrt(-2.0 * log(u1)), th = 2.0 * M_PI * u2;
        out[2 * k] = (float)(INIT_STD * r * cos(th));
        if (2 * k + 1 < n) out[2 * k + 1] = (float)(INIT_STD * r * sin(th));
    }
}

void model_init(model *m, uint64_t seed) {
    ts_err e = {0};
    float *p = host_copy(m, m->params, m->nparams, &e);
    if (!p) {
        TS_ERROR("model_init: %s", e.msg);
        return;
    }
    for (int i = 0; i < m->ntensors; i++) {
        const ts_tensor *t = &m->pt[i];
        float *x = p + ((float *)t->data - m->params);
        size_t n = t->nbytes / sizeof(float);
        if (t->ndim == 1) { /* RMSNorm weights */
            for (size_t j = 0; j < n; j++) x[j] = 1.0f;
            continue;
        }
        size_t nb = (n + INIT_BLOCK - 1) / INIT_BLOCK;
#pragma omp parallel for schedule(static)
        for (size_t b = 0; b < nb; b++) {
            size_t s = b * INIT_BLOCK, len = n - s < INIT_BLOCK ? n - s : INIT_BLOCK;
            init_block(x + s, len, seed, t->name, b);
        }
    }
    if (m->be->is_gpu) {
        if (m->be->upload(m->be, m->params, p, m->nparams * sizeof(float)))
            TS_ERROR("model_init: uploading to %s failed", m->be->name);
        free(p);
    }
    model_adam_reset(m);
}

/* ------------------------------------------------------------------ load */

static float half_to_f32(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (ex == 0) {
        if (man == 0) {
            u = s;
        } else { /* subnormal: renormalise */
            int k = -1;
            do {
                k++;
                man <<= 1;
            } while (!(man & 0x400));
            u = s | ((uint32_t)(127 - 15 - k) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (ex == 31) {
        u = s | 0x7f800000u | (man << 13);
    } else {
        u = s | ((ex - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float elem(const ts_tensor *t, size_t i) {
    const uint8_t *d = t->data;
    if (t->dtype == TS_F32) {
        float f;
        memcpy(&f, d + 4 * i, 4);
        return f;
    }
    uint16_t h = ts_get_u16(d + 2 * i);
    return t->dtype == TS_BF16 ? ts_bf16_to_f32(h) : half_to_f32(h);
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static const char *config_diff(const model_config *a, const model_config *b, char *buf, size_t cap) {
#define DIFF(f)                                                                       \
    if (a->f != b->f) {                                                               \
        snprintf(buf, cap, "%s %g in the checkpoint, %g in the model", #f, (double)b->f, \
                 (double)a->f);                                                       \
        return buf;                                                                   \
    }
    DIFF(vocab_size) DIFF(hidden_size) DIFF(intermediate_size) DIFF(num_hidden_layers)
    DIFF(num_attention_heads) DIFF(num_key_value_heads) DIFF(head_dim)
    DIFF(max_position_embeddings) DIFF(rms_norm_eps) DIFF(rope_theta) DIFF(tie_word_embeddings)
#undef DIFF
    return NULL;
}

int model_load(model *m, const char *path, ts_err *e) {
    struct stat st;
    if (stat(path, &st) != 0) return ts_fail(e, TS_ENOTFOUND, "checkpoint %s: no such file or directory", path);
    char *file = NULL;
    int rc = TS_OK;
    if (S_ISDIR(st.st_mode)) {
        file = ts_path_join(path, "model.safetensors");
        char *cfgp = ts_path_join(path, "config.json");
        char *idx = ts_path_join(path, "model.safetensors.index.json");
        if (!file || !cfgp || !idx) {
            free(file), free(cfgp), free(idx);
            return ts_fail(e, TS_ENOMEM, "out of memory");
        }
        if (!ts_path_exists(file) && ts_path_exists(idx))
            rc = ts_fail(e, TS_EUNSUPPORTED,
                         "checkpoint %s is sharded (model.safetensors.index.json); only single-file "
                         "checkpoints are supported",
                         path);
        if (rc == TS_OK && ts_path_exists(cfgp)) {
            model_config c;
            char why[160];
            if ((rc = model_config_load(cfgp, &c, e)) == TS_OK && config_diff(&m->cfg, &c, why, sizeof why))
                rc = ts_fail(e, TS_EINVAL, "checkpoint %s does not match the model: %s", path, why);
        }
        free(cfgp);
        free(idx);
        if (rc) {
            free(file);
            return rc;
        }
    }
    const char *fname = file ? file : path;
    ts_st_file *f = NULL;
    if ((rc = ts_st_open(fname, &f, e))) {
        ts_wrap(e, "checkpoint");
        free(file);
        return rc;
    }
    /* pass 1: every tensor present, with the right dtype, shape and finite
     * values; nothing unexpected */
    const ts_tensor **src = calloc((size_t)m->ntensors, sizeof *src);
    if (!src) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < m->ntensors && rc == TS_OK; i++) {
        const ts_tensor *want = &m->pt[i];
        const ts_tensor *t = ts_st_find(f, want->name);
        char ws[64], hs[64];
        if (!t) {
            rc = ts_fail(e, TS_EFORMAT, "checkpoint %s: tensor '%s' is missing", fname, want->name);
            break;
        }
        if (t->dtype != TS_F32 && t->dtype != TS_BF16 && t->dtype != TS_F16) {
            rc = ts_fail(e, TS_EFORMAT, "checkpoint %s: tensor '%s' is %s (F32, BF16 or F16 expected)",
                         fname, want->name, ts_dtype_name(t->dtype));
            break;
        }
        bool same = t->ndim == want->ndim;
        for (int d = 0; same && d < want->ndim; d++) same = t->shape[d] == want->shape[d];
        if (!same) {
            ts_shape_str(ws, sizeof ws, want->ndim, want->shape);
            ts_shape_str(hs, sizeof hs, t->ndim, t->shape);
            rc = ts_fail(e, TS_EFORMAT, "checkpoint %s: tensor '%s' has shape %s, expected %s", fname,
                         want->name, hs, ws);
            break;
        }
        size_t n = want->nbytes / sizeof(float);
        int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n > (1u << 16))
        for (size_t j = 0; j < n; j++) bad |= !isfinite(elem(t, j));
        if (bad) {
            rc = ts_fail(e, TS_EFORMAT, "checkpoint %s: tensor '%s' holds non-finite values", fname,
                         want->name);
            break;
        }
        src[i] = t;
    }
    for (int i = 0; i < ts_st_count(f) && rc == TS_OK; i++) {
        const char *name = ts_st_get(f, i)->name;
        if (model_param_index(m, name) >= 0 || ends_with(name, ".rotary_emb.inv_freq")) continue;
        if (m->cfg.tie_word_embeddings && !strcmp(name, "lm_head.weight")) continue; /* as transformers */
        rc = ts_fail(e, TS_EFORMAT, "checkpoint %s: unexpected tensor '%s' (not part of this model)",
                     fname, name);
    }
    if (rc) goto out;
    /* pass 2: copy, converting to fp32 */
    {
        float *p = m->be->is_gpu ? malloc(m->nparams * sizeof(float) + 1) : m->params;
        if (!p) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            goto out;
        }
        for (int i = 0; i < m->ntensors; i++) {
            const ts_tensor *t = src[i];
            float *x = p + ((float *)m->pt[i].data - m->params);
            size_t n = m->pt[i].nbytes / sizeof(float);
            if (t->dtype == TS_F32) {
                memcpy(x, t->data, n * sizeof(float));
                continue;
            }
#pragma omp parallel for schedule(static) if (n > (1u << 16))
            for (size_t j = 0; j < n; j++) x[j] = elem(t, j);
        }
        if (m->be->is_gpu) {
            if (m->be->upload(m->be, m->params, p, m->nparams * sizeof(float)))
                rc = ts_fail(e, TS_EIO, "model: uploading to %s failed", m->be->name);
            free(p);
        }
    }
out:
    free(src);
    ts_st_close(f);
    free(file);
    return rc;
}

/* ------------------------------------------------------------------ save */

static int write_tensors(const model *m, const ts_tensor *views, const float *dev, const char *path,
                         ts_err *e) {
    float *h = host_copy(m, dev, m->nparams, e);
    if (!h) return e ? e->code : TS_ENOMEM;
    ts_tensor *t = malloc((size_t)m->ntensors * sizeof *t);
    const ts_tensor **pp = malloc((size_t)m->ntensors * sizeof *pp);
    int rc;
    if (!t || !pp) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
    } else {
        for (int i = 0; i < m->ntensors; i++) {
            t[i] = views[i];
            t[i].data = h + ((const float *)views[i].data - dev);
            t[i].owned = false;
            pp[i] = &t[i];
        }
        static const char *const meta[] = {"format", "pt", NULL};
        rc = ts_st_write(path, pp, m->ntensors, meta, e);
    }
    free(t);
    free(pp);
    host_release(m, h);
    return rc;
}

int model_save(const model *m, const char *dir, ts_err *e) {
    int rc = ts_mkdirs(dir, 0755, e);
    if (rc) return rc;
    char *st = ts_path_join(dir, "model.safetensors");
    char *cj = ts_path_join(dir, "config.json");
    if (!st || !cj) rc = ts_fail(e, TS_ENOMEM, "out of memory");
    if (rc == TS_OK) rc = write_tensors(m, m->pt, m->params, st, e);
    if (rc == TS_OK) rc = model_config_save(&m->cfg, cj, e);
    free(st);
    free(cj);
    return rc;
}

int model_save_grads(const model *m, const char *path, ts_err *e) {
    if (!m->grads) return ts_fail(e, TS_ESTATE, "model: created for evaluation only (no gradients)");
    return write_tensors(m, m->gt, m->grads, path, e);
}
