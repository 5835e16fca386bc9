/* safetensors.c - the Hugging Face tensor container, read defensively.
 *
 * Layout: u64 LE header length N | N bytes of JSON | data.  The JSON maps each
 * tensor name to {"dtype", "shape", "data_offsets": [begin, end]} relative to
 * the start of the data, plus an optional "__metadata__" of strings.
 *
 * Nothing in the header is trusted: N is capped and checked against the file,
 * each tensor's byte size must equal prod(shape) * dtype size (with overflow
 * checks), and the tensors, sorted by offset, must tile the data exactly with
 * no overlap, no gap and nothing past the end (the rule the reference
 * implementation applies). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common.h"

struct ts_st_file {
    ts_mmap map;     /* when opened from a path */
    bool mapped;
    int n;
    ts_tensor *t;
    int nmeta;
    char **meta;     /* key, value, key, value ... */
};

void ts_st_close(ts_st_file *f) {
    if (!f) return;
    if (f->mapped) ts_mmap_close(&f->map);
    for (int i = 0; i < 2 * f->nmeta; i++) free(f->meta[i]);
    free(f->meta);
    free(f->t);
    free(f);
}

int ts_st_count(const ts_st_file *f) { return f->n; }
const ts_tensor *ts_st_get(const ts_st_file *f, int i) {
    return (i >= 0 && i < f->n) ? &f->t[i] : NULL;
}

const ts_tensor *ts_st_find(const ts_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

const char *ts_st_meta(const ts_st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
    return NULL;
}

typedef struct {
    uint64_t begin, end;
    int idx;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Reads a JSON number that must be a non-negative integer below 2^53. */
static int get_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

int ts_st_parse(const uint8_t *buf, size_t len, ts_st_file **out, ts_err *e) {
    *out = NULL;
    if (len < 8) return ts_fail(e, TS_EFORMAT, "safetensors: file shorter than its 8-byte header length");
    uint64_t hlen = ts_get_u64(buf);
    if (hlen > TS_ST_MAX_HEADER)
        return ts_fail(e, TS_EFORMAT, "safetensors: header length %llu is absurd (limit %u)",
                       (unsigned long long)hlen, TS_ST_MAX_HEADER);
    if (hlen > len - 8)
        return ts_fail(e, TS_EFORMAT, "safetensors: header length %llu passes the end of the file (%zu bytes)",
                       (unsigned long long)hlen, len);
    if (hlen < 2) return ts_fail(e, TS_EFORMAT, "safetensors: header too short");
    const uint8_t *data = buf + 8 + hlen;
    uint64_t dlen = len - 8 - hlen;
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ts_fail(e, TS_EFORMAT, "safetensors: header is not a JSON object");
    }
    ts_st_file *f = calloc(1, sizeof *f);
    int count = cJSON_GetArraySize(root);
    span *sp = NULL;
    if (!f) goto nomem;
    f->t = calloc((size_t)count + 1, sizeof *f->t);
    sp = calloc((size_t)count + 1, sizeof *sp);
    if (!f->t || !sp) goto nomem;
    int rc = TS_OK;
    for (const cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string;
        if (!strcmp(name, "__metadata__")) {
            if (!cJSON_IsObject(it)) {
                rc = ts_fail(e, TS_EFORMAT, "safetensors: __metadata__ is not an object");
                goto fail;
            }
            int nm = cJSON_GetArraySize(it);
            f->meta = calloc((size_t)nm * 2 + 1, sizeof *f->meta);
            if (!f->meta) goto nomem;
            for (const cJSON *m = it->child; m; m = m->next) {
                if (!cJSON_IsString(m)) {
                    rc = ts_fail(e, TS_EFORMAT, "safetensors: metadata '%s' is not a string", m->string);
                    goto fail;
                }
                f->meta[2 * f->nmeta] = strdup(m->string);
                f->meta[2 * f->nmeta + 1] = strdup(m->valuestring);
                f->nmeta++;
                if (!f->meta[2 * f->nmeta - 2] || !f->meta[2 * f->nmeta - 1]) goto nomem;
            }
            continue;
        }
        if (strlen(name) >= TS_MAX_NAME || !name[0]) {
            rc = ts_fail(e, TS_EFORMAT, "safetensors: tensor name empty or longer than %d bytes", TS_MAX_NAME - 1);
            goto fail;
        }
        for (int i = 0; i < f->n; i++)
            if (!strcmp(f->t[i].name, name)) {
                rc = ts_fail(e, TS_EFORMAT, "safetensors: tensor '%s' appears twice", name);
                goto fail;
            }
        ts_tensor *t = &f->t[f->n];
        snprintf(t->name, sizeof t->name, "%s", name);
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsObject(it) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off)) {
            rc = ts_fail(e, TS_EFORMAT, "safetensors: tensor '%s' lacks dtype, shape or data_offsets", name);
            goto fail;
        }
        if (ts_dtype_parse(dt->valuestring, &t->dtype)) {
            rc = ts_fail(e, TS_EFORMAT, "safetensors: tensor '%s' has unknown dtype '%s'", name, dt->valuestring);
            goto fail;
        }
        int nd = cJSON_GetArraySize(sh);
        if (nd > TS_MAX_DIMS) {
            rc = ts_fail(e, TS_EFORMAT, "safetensors: tensor '%s' has %d dimensions (limit %d)", name, nd, TS_MAX_DIMS);
            goto fail;
        }
        t->ndim = nd;
        int d = 0;
        for (const cJSON *x = sh->child; x; x = x->next, d++) {
            uint64_t v;
            if (get_u64(x, &v)) {
                rc = ts_fail(e, TS_EFORMAT, "safetensors: tensor '%s' has an invalid dimension", name);
                goto fail;
            }
            t->shape[d] = (int64_t)v;
        }
        uint64_t b, en;
        if (cJSON_GetArraySize(off) != 2 || get_u64(off->child, &b) || get_u64(off->child->next, &en)) {
            rc = ts_fail(e, TS_EFORMAT, "safetensors: tensor '%s' has invalid data_offsets", name);
            goto fail;
        }
        if (en < b || en > dlen) {
            rc = ts_fail(e, TS_EFORMAT, "safetensors: tensor '%s' offsets [%llu, %llu] fall outside the %llu data bytes",
                         name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)dlen);
            goto fail;
        }
        int64_t numel = ts_numel(t->ndim, t->shape);
        size_t es = ts_dtype_size(t->dtype);
        if (numel < 0 || (uint64_t)numel > UINT64_MAX / es || (uint64_t)numel * es != en - b) {
            rc = ts_fail(e, TS_EFORMAT, "safetensors: tensor '%s' holds %llu bytes but its shape needs %lld x %zu",
                         name, (unsigned long long)(en - b), (long long)numel, es);
            goto fail;
        }
        t->data = (void *)(data + b);
        t->nbytes = (size_t)(en - b);
        sp[f->n] = (span){b, en, f->n};
        f->n++;
    }
    qsort(sp, (size_t)f->n, sizeof *sp, span_cmp);
    uint64_t at = 0;
    for (int i = 0; i < f->n; i++) {
        if (sp[i].begin != at) {
            rc = ts_fail(e, TS_EFORMAT, "safetensors: tensor '%s' %s (offset %llu, expected %llu)",
                         f->t[sp[i].idx].name, sp[i].begin < at ? "overlaps the one before it" : "leaves a gap",
                         (unsigned long long)sp[i].begin, (unsigned long long)at);
            goto fail;
        }
        at = sp[i].end;
    }
    if (at != dlen) {
        rc = ts_fail(e, TS_EFORMAT, "safetensors: %llu data bytes but the tensors cover %llu",
                     (unsigned long long)dlen, (unsigned long long)at);
        goto fail;
    }
    free(sp);
    cJSON_Delete(root);
    *out = f;
    return TS_OK;
nomem:
    rc = ts_fail(e, TS_ENOMEM, "safetensors: out of memory");
fail:
    free(sp);
    cJSON_Delete(root);
    ts_st_close(f);
    return rc;
}

int ts_st_open(const char *path, ts_st_file **out, ts_err *e) {
    *out = NULL;
    ts_mmap m;
    int rc = ts_mmap_open(path, &m, e);
    if (rc) return rc;
    ts_st_file *f;
    rc = ts_st_parse(m.data, m.len, &f, e);
    if (rc) {
        ts_mmap_close(&m);
        return ts_wrap(e, "%s", path);
    }
    f->map = m;
    f->mapped = true;
    *out = f;
    return TS_OK;
}

/* Builds the JSON header, padded with spaces to a multiple of 8 so the data
 * that follows is aligned. */
static char *build_header(const ts_tensor *const *ts, int n, const char *const *meta, size_t *hlen,
                          size_t *dlen, ts_err *e) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    if (meta && meta[0]) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; meta[i] && meta[i + 1]; i += 2) cJSON_AddStringToObject(m, meta[i], meta[i + 1]);
    }
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        const ts_tensor *t = ts[i];
        int64_t numel = ts_numel(t->ndim, t->shape);
        if (numel < 0 || (size_t)numel * ts_dtype_size(t->dtype) != t->nbytes) {
            ts_fail(e, TS_EINVAL, "safetensors: tensor '%s' size does not match its shape", t->name);
            cJSON_Delete(root);
            return NULL;
        }
        if (cJSON_GetObjectItemCaseSensitive(root, t->name)) {
            ts_fail(e, TS_EINVAL, "safetensors: tensor '%s' given twice", t->name);
            cJSON_Delete(root);
            return NULL;
        }
        cJSON *o = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(o, "dtype", ts_dtype_name(t->dtype));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON *off = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)at));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(at + t->nbytes)));
        at += t->nbytes;
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s) return NULL;
    size_t l = strlen(s), padded = (l + 7) & ~(size_t)7;
    char *p = realloc(s, padded + 1);
    if (!p) {
        free(s);
        return NULL;
    }
    memset(p + l, ' ', padded - l);
    p[padded] = 0;
    *hlen = padded;
    *dlen = (size_t)at;
    return p;
}

int ts_st_write(const char *path, const ts_tensor *const *ts, int n, const char *const *meta,
                ts_err *e) {
    size_t hlen, dlen;
    ts_err_clear(e);
    char *h = build_header(ts, n, meta, &hlen, &dlen, e);
    if (!h) return e && e->code ? e->code : ts_fail(e, TS_ENOMEM, "safetensors: out of memory");
    uint8_t lenbuf[8];
    ts_put_u64(lenbuf, hlen);
    const void **parts = malloc(sizeof(void *) * ((size_t)n + 2));
    size_t *lens = malloc(sizeof(size_t) * ((size_t)n + 2));
    if (!parts || !lens) {
        free(h);
        free(parts);
        free(lens);
        return ts_fail(e, TS_ENOMEM, "safetensors: out of memory");
    }
    parts[0] = lenbuf;
    lens[0] = 8;
    parts[1] = h;
    lens[1] = hlen;
    for (int i = 0; i < n; i++) {
        parts[i + 2] = ts[i]->data;
        lens[i + 2] = ts[i]->nbytes;
    }
    int rc = ts_write_atomicv(path, parts, lens, n + 2, e);
    free(h);
    free(parts);
    free(lens);
    return rc;
}

int ts_st_serialize(const ts_tensor *const *ts, int n, const char *const *meta, uint8_t **out,
                    size_t *len, ts_err *e) {
    size_t hlen, dlen;
    ts_err_clear(e);
    char *h = build_header(ts, n, meta, &hlen, &dlen, e);
    if (!h) return e && e->code ? e->code : ts_fail(e, TS_ENOMEM, "safetensors: out of memory");
    uint8_t *buf = malloc(8 + hlen + dlen);
    if (!buf) {
        free(h);
        return ts_fail(e, TS_ENOMEM, "safetensors: out of memory");
    }
    ts_put_u64(buf, hlen);
    memcpy(buf + 8, h, hlen);
    size_t at = 8 + hlen;
    for (int i = 0; i < n; i++) {
        if (ts[i]->nbytes) memcpy(buf + at, ts[i]->data, ts[i]->nbytes);
        at += ts[i]->nbytes;
    }
    free(h);
    *out = buf;
    *len = at;
    return TS_OK;
}
