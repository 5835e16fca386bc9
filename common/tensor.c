/* tensor.c - a plain tensor descriptor: name, dtype, shape, data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[TS_DTYPE_COUNT] = {
    [TS_F32] = {"F32", 4},   [TS_F16] = {"F16", 2},   [TS_BF16] = {"BF16", 2},
    [TS_F64] = {"F64", 8},   [TS_I8] = {"I8", 1},     [TS_U8] = {"U8", 1},
    [TS_I16] = {"I16", 2},   [TS_U16] = {"U16", 2},   [TS_I32] = {"I32", 4},
    [TS_U32] = {"U32", 4},   [TS_I64] = {"I64", 8},   [TS_U64] = {"U64", 8},
    [TS_BOOL] = {"BOOL", 1},
};

size_t ts_dtype_size(ts_dtype d) { return (unsigned)d < TS_DTYPE_COUNT ? dtypes[d].size : 0; }

const char *ts_dtype_name(ts_dtype d) {
    return (unsigned)d < TS_DTYPE_COUNT ? dtypes[d].name : "?";
}

int ts_dtype_parse(const char *s, ts_dtype *d) {
    for (int i = 0; i < TS_DTYPE_COUNT; i++)
        if (s && !strcmp(s, dtypes[i].name)) {
            *d = (ts_dtype)i;
            return TS_OK;
        }
    return TS_EINVAL;
}

int64_t ts_numel(int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > TS_MAX_DIMS) return -1;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] && n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

int ts_tensor_alloc(ts_tensor *t, const char *name, ts_dtype d, int ndim, const int64_t *shape,
                    ts_err *e) {
    memset(t, 0, sizeof *t);
    if (strlen(name) >= TS_MAX_NAME) return ts_fail(e, TS_EINVAL, "tensor name too long");
    int64_t n = ts_numel(ndim, shape);
    size_t es = ts_dtype_size(d);
    if (n < 0 || es == 0 || (uint64_t)n > SIZE_MAX / es)
        return ts_fail(e, TS_EINVAL, "tensor %s: invalid shape", name);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = d;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->nbytes = (size_t)n * es;
    t->data = calloc(t->nbytes ? t->nbytes : 1, 1);
    if (!t->data) return ts_fail(e, TS_ENOMEM, "tensor %s: out of memory (%zu bytes)", name, t->nbytes);
    t->owned = true;
    return TS_OK;
}

void ts_tensor_free(ts_tensor *t) {
    if (t->owned) free(t->data);
    t->data = NULL;
    t->owned = false;
}

void ts_shape_str(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t at = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && at < cap; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (at < cap) snprintf(out + at, cap - at, "]");
}
