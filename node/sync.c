/* sync.c - sync records: a signed sample of a node's model after a window's
 * outer step, and the "steps behind" measure the validator derives from it
 * (PROTOCOL.md section 9, item 5). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "node_internal.h"

int node_sync_positions(const node *n, const uint64_t **pos, uint32_t *count) {
    *pos = n->sync_pos;
    *count = n->nsync;
    return TS_OK;
}

void node_sync_make(node *n, uint64_t window, node_sync *s) {
    s->window = window;
    s->uid = n->uid;
    node_model_hash(n, s->model_hash);
    s->n = n->nsync;
    /* on a GPU the hash has just downloaded the model into the host buffer
     * (or it is still there): the values come from it, no transfer */
    ts_err e = {0};
    const float *p = node_host_params(n, NULL, &e);
    if (!p) {
        TS_ERROR("sync record: %s", e.msg);
        memset(s->values, 0, sizeof s->values[0] * s->n);
        return;
    }
    for (uint32_t i = 0; i < n->nsync; i++) s->values[i] = p[n->sync_pos[i]];
}

int node_publish_sync(node *n, const node_sync *s, ts_err *e) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "sync");
    cJSON_AddStringToObject(o, "run_id", n->run.run_id);
    cJSON_AddNumberToObject(o, "window", (double)s->window);
    cJSON_AddNumberToObject(o, "uid", s->uid);
    char mh[2 * TS_HASH_BYTES + 1];
    ts_hex(mh, s->model_hash, TS_HASH_BYTES);
    cJSON_AddStringToObject(o, "model_hash", mh);
    cJSON_AddNumberToObject(o, "count", s->n);
    uint8_t *raw = malloc((size_t)s->n * 4 + 1);
    char *hex = malloc((size_t)s->n * 8 + 1);
    if (!raw || !hex) {
        free(raw);
        free(hex);
        cJSON_Delete(o);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < s->n; i++) {
        uint32_t u;
        memcpy(&u, &s->values[i], 4);
        ts_put_u32(raw + 4 * i, u);
    }
    ts_hex(hex, raw, (size_t)s->n * 4);
    cJSON_AddStringToObject(o, "values", hex);
    free(raw);
    free(hex);
    char key[STORE_LAYOUT_KEY_MAX];
    store_key_debug(key, s->window, s->uid);
    int rc = node_put_object(n, key, o, e);
    cJSON_Delete(o);
    return rc;
}

int node_fetch_sync(node *n, uint32_t uid, uint64_t window, node_sync *s, ts_err *e) {
    char key[STORE_LAYOUT_KEY_MAX];
    store_key_debug(key, window, uid);
    cJSON *o;
    if (node_get_object(n, uid, key, "sync", &o, e)) return e->code;
    uint64_t w, u, count;
    const cJSON *mh = cJSON_GetObjectItemCaseSensitive(o, "model_hash");
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(o, "values");
    int rc = TS_OK;
    if (node_json_u64(o, "window", &w) || w != window || node_json_u64(o, "uid", &u) || u != uid ||
        node_json_u64(o, "count", &count) || count != n->nsync || !cJSON_IsString(mh) ||
        ts_unhex(s->model_hash, TS_HASH_BYTES, mh->valuestring) || !cJSON_IsString(vals) ||
        strlen(vals->valuestring) != count * 8) {
        rc = ts_fail(e, TS_EFORMAT, "uid %u's sync record for window %llu does not match the run", uid,
                     (unsigned long long)window);
    } else {
        uint8_t *raw = malloc(count * 4 + 1);
        if (!raw || ts_unhex(raw, count * 4, vals->valuestring)) {
            rc = ts_fail(e, TS_EFORMAT, "uid %u's sync record has malformed values", uid);
        } else {
            for (uint32_t i = 0; i < count; i++) {
                uint32_t v = ts_get_u32(raw + 4 * i);
                memcpy(&s->values[i], &v, 4);
            }
            s->window = w;
            s->uid = uid;
            s->n = (uint32_t)count;
        }
        free(raw);
    }
    cJSON_Delete(o);
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* torch.quantile's linear interpolation on sorted values. */
static double quantile_sorted(const double *v, uint32_t n, double q) {
    double pos = q * (double)(n - 1);
    uint32_t lo = (uint32_t)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
}

double node_steps_behind(const node_sync *theirs, const node_sync *ours, const double *step) {
    uint32_t n = ours->n;
    if (theirs->n != n || n == 0) return INFINITY;
    if (!memcmp(theirs->model_hash, ours->model_hash, TS_HASH_BYTES)) return 0;
    for (uint32_t i = 0; i < n; i++)
        if (!isfinite(theirs->values[i])) return INFINITY;
    if (!step) return NAN;
    double *d = malloc(sizeof *d * n);
    if (!d) return NAN;
    for (uint32_t i = 0; i < n; i++) {
        double s = step[i] > 1e-9 ? step[i] : 1e-9;
        d[i] = fabs((double)theirs->values[i] - (double)ours->values[i]) / s;
    }
    qsort(d, n, sizeof *d, cmp_double);
    double q1 = quantile_sorted(d, n, 0.25), q3 = quantile_sorted(d, n, 0.75), sum = 0;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (d[i] >= q1 && d[i] <= q3) {
            sum += d[i];
            k++;
        }
    free(d);
    return k ? sum / k : 0;
}

void node_sync_step_ema(double *step, bool *have, const node_sync *now, const node_sync *before, double alpha) {
    if (now->n != before->n || now->n == 0) return;
    for (uint32_t i = 0; i < now->n; i++) {
        double delta = fabs((double)now->values[i] - (double)before->values[i]);
        step[i] = *have ? (1 - alpha) * step[i] + alpha * delta : delta;
    }
    *have = true;
}
