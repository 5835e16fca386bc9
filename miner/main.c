/* main.c - tessera-miner.
 *
 * Per window w (PROTOCOL.md sections 5-8):
 *   the pool of (run, uid, w) -> H inner AdamW steps from the synced model
 *   delta = theta_start - theta_end; theta restored to theta_start
 *   SparseLoCo with error feedback -> a signed upload, put at T(w+1) + delay
 *   after T(w+1) + grace: gather the peer list's uploads, the outer step
 *   a signed sync record, the local state, retention of old objects
 * A node that is behind (restart, store outage) catches up from the
 * leader's checkpoint and bundles first. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "node/daemon.h"

typedef enum { ADV_HONEST, ADV_COPYCAT, ADV_GARBAGE, ADV_LAZY, ADV_LATE } adversary;

typedef struct miner {
    node_daemon d;
    node *n;
    const node_run *r;
    adversary adv;
    uint32_t copy_uid;
    uint64_t start;
    const kn_backend *be; /* where the model lives: theta0 and delta live there too */
    size_t count;         /* parameters */
    float *theta0;        /* the model at the start of the window */
    ts_tensor *delta;     /* pseudo-gradient views into one buffer */
    float *delta_buf;
    float *copy_host;     /* copycat on a GPU: the copied values in host memory */
    int32_t *tokens;      /* B rows of T + 1 */
    uint32_t *sample;     /* one sample */
    uint64_t *pool;
    int windows_done;
    double skew;          /* own clock minus the store's, measured on uploads (0: within what the put and the date resolution allow) */
} miner;

/* A clock offset is corrected when it exceeds what the put's duration and
 * the store's date resolution allow by this much (seconds). */
#define SKEW_MIN_S 0.5

static int parse_adversary(const char *s, adversary *a) {
    static const char *names[] = {"honest", "copycat", "garbage", "lazy", "late"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) {
            *a = (adversary)i;
            return 0;
        }
    return -1;
}

/* Buffers of the parameters' size where the model lives. */
static float *dev_alloc(const miner *m) {
    return m->be->is_gpu ? m->be->alloc(m->be, m->count * sizeof(float)) : malloc(m->count * sizeof(float));
}

static void dev_free(const miner *m, float *p) {
    if (!p) return;
    if (m->be->is_gpu) m->be->free(m->be, p);
    else free(p);
}

static int setup(miner *m, ts_err *e) {
    m->n = m->d.n;
    m->r = node_get_run(m->n);
    m->be = node_backend(m->n);
    model_param_data(node_model(m->n), &m->count);
    m->theta0 = dev_alloc(m);
    m->delta_buf = dev_alloc(m);
    if (m->be->is_gpu && (!m->theta0 || !m->delta_buf))
        return ts_fail(e, TS_ENOMEM, "%s: out of device memory for the window's start and its delta (2 x %zu bytes)",
                       m->be->name, m->count * sizeof(float));
    int np;
    ts_tensor *p = node_params(m->n, &np);
    m->delta = calloc((size_t)np, sizeof *m->delta);
    m->tokens = malloc(sizeof(int32_t) * (size_t)m->r->batch_size * (size_t)(m->r->seq_len + 1));
    m->sample = malloc(sizeof(uint32_t) * (size_t)(m->r->seq_len + 1));
    m->pool = malloc(sizeof(uint64_t) * node_run_pool_size(m->r));
    if (!m->theta0 || !m->delta_buf || !m->delta || !m->tokens || !m->sample || !m->pool)
        return ts_fail(e, TS_ENOMEM, "out of memory");
    size_t off = 0;
    for (int i = 0; i < np; i++) {
        m->delta[i] = p[i];
        m->delta[i].owned = false;
        m->delta[i].data = m->delta_buf + off;
        off += p[i].nbytes / sizeof(float);
    }
    return TS_OK;
}

static void teardown(miner *m) {
    if (m->be) {
        dev_free(m, m->theta0);
        dev_free(m, m->delta_buf);
    }
    free(m->copy_host);
    free(m->delta);
    free(m->tokens);
    free(m->sample);
    free(m->pool);
}

/* Copies rows [first, first + B) of the pool into the token batch. */
static int load_batch(miner *m, const uint64_t *pool, uint64_t first, ts_err *e) {
    int T = m->r->seq_len;
    for (int b = 0; b < m->r->batch_size; b++) {
        if (data_sample(node_data(m->n), (uint32_t)T, pool[first + (uint64_t)b], m->sample, e)) return e->code;
        for (int t = 0; t <= T; t++) m->tokens[(size_t)b * (size_t)(T + 1) + (size_t)t] = (int32_t)m->sample[t];
    }
    return TS_OK;
}

/* H inner steps on the window's pool; leaves delta = theta_start - theta_end
 * and restores theta_start.  Stops early when the window is about to end. */
static int train_window(miner *m, uint64_t w, uint8_t digest[TS_HASH_BYTES], int *steps_done, ts_err *e) {
    node *n = m->n;
    const node_run *r = m->r;
    model *mod = node_model(n);
    uint64_t pool_n = node_run_pool_size(r);
    if (data_pool(node_data(n), r->run_id, node_uid(n), w, (uint32_t)r->seq_len, pool_n, m->pool, e)) return e->code;
    if (data_pool_digest(node_data(n), (uint32_t)r->seq_len, m->pool, pool_n, digest, e)) return e->code;
    const uint64_t *train_pool = m->pool;
    uint64_t *lazy = NULL;
    if (m->adv == ADV_LAZY) {
        /* a lazy miner trains on data that is not its own, but claims its own */
        lazy = malloc(sizeof *lazy * pool_n);
        if (!lazy || data_pool(node_data(n), r->run_id, DATA_RANDOM_UID - 1, w, (uint32_t)r->seq_len, pool_n, lazy, e)) {
            free(lazy);
            return e->code ? e->code : ts_fail(e, TS_ENOMEM, "out of memory");
        }
        train_pool = lazy;
    }
    data_prefetch(node_data(n), (uint32_t)r->seq_len, train_pool, pool_n, NULL);
    size_t count;
    float *theta = model_param_data(mod, &count);
    const kn_backend *be = m->be;
    /* theta0, delta and theta all live on the model's device */
    if (be->copy(be, m->theta0, theta, count)) {
        free(lazy);
        return ts_fail(e, TS_EIO, "%s: saving the window's start model failed", be->name);
    }
    double end = node_window_time(n, w + 1) + m->skew;
    double t0 = ts_now(), step_time = 0;
    model_schedule sched;
    model_schedule_defaults(&sched, r->adamw.lr, r->warmup_steps, r->total_steps);
    int64_t base_step = (int64_t)(w - m->start) * r->inner_steps;
    int done = 0;
    double loss_sum = 0;
    for (int i = 0; i < r->inner_steps; i++) {
        double now = ts_now();
        /* keep room for one more step and the compression before the window ends */
        if (i > 0 && now + 1.5 * step_time + 0.5 > end) {
            TS_WARN("window %llu ends: %d of %d inner steps done", (unsigned long long)w, i, r->inner_steps);
            break;
        }
        if (node_stopping(n)) break;
        float loss;
        double gnorm;
        double lr = model_schedule_lr(&sched, base_step + i);
        double s0 = ts_now();
        int rc = load_batch(m, train_pool, (uint64_t)i * (uint64_t)r->batch_size, e);
        if (!rc) {
            s0 = ts_now();
            rc = model_train_step(mod, &r->adamw, lr, m->tokens, r->batch_size, r->seq_len, &loss, &gnorm, e);
        }
        if (rc) {
            free(lazy);
            /* the synced model comes back: the window is retried from it */
            if (be->copy(be, theta, m->theta0, count)) {
                node_model_changed(n);
                TS_ERROR("%s: restoring the window's start model failed", be->name);
            }
            return ts_wrap(e, "inner step %d", i);
        }
        double dt = ts_now() - s0;
        step_time = i == 0 ? dt : 0.7 * step_time + 0.3 * dt;
        loss_sum += loss;
        done = i + 1;
        double toks = (double)done * r->batch_size * r->seq_len / (ts_now() - t0);
        char left[32];
        ts_fmt_duration(left, sizeof left, end - ts_now());
        ts_progress("window %llu  step %d/%d  loss %.4f  lr %.2e  %.0f tok/s  %s left in the window",
                    (unsigned long long)w, done, r->inner_steps, loss, lr, toks, left);
        node_daemon_metric(&m->d, "tessera_train_loss", NULL, loss);
        node_daemon_metric(&m->d, "tessera_tokens_per_second", NULL, toks);
    }
    ts_progress_done();
    free(lazy);
    /* delta = theta0 - theta, then theta = theta0 (bit for bit: the model's
     * hash is unchanged) */
    if (be->sub(be, m->delta_buf, m->theta0, theta, count) || be->copy(be, theta, m->theta0, count)) {
        node_model_changed(n);
        return ts_fail(e, TS_EIO, "%s: the pseudo-gradient or the restore failed", be->name);
    }
    *steps_done = done;
    if (done)
        TS_INFO("window %llu: %d inner steps, mean loss %.4f, %.0f tokens/s", (unsigned long long)w, done,
                loss_sum / done, (double)done * r->batch_size * r->seq_len / (ts_now() - t0));
    return TS_OK;
}

/* The copycat: takes another miner's upload, decodes it and re-signs the
 * same values as its own (the overlap check catches it). */
static int copy_upload(miner *m, uint64_t w, const uint8_t **wire, size_t *len, ts_err *e) {
    node *n = m->n;
    node_fetch f = {0};
    double deadline = node_window_time(n, w + 1) + m->r->upload_grace_s * 0.8;
    for (;;) {
        if (node_fetch_upload(n, m->copy_uid, w, &f, e)) return e->code;
        if (f.status == GAUNTLET_UPLOAD_OK) break;
        node_fetch_clear(&f);
        if (ts_now() > deadline || !node_sleep_until(n, ts_now() + 0.3))
            return ts_fail(e, TS_ENOTFOUND, "nothing to copy from uid %u", m->copy_uid);
    }
    int np;
    node_params(n, &np);
    int rc;
    if (m->be->is_gpu) {
        /* the values are decoded into host memory, then uploaded */
        if (!m->copy_host && !(m->copy_host = malloc(m->count * sizeof(float) + 1))) {
            node_fetch_clear(&f);
            return ts_fail(e, TS_ENOMEM, "out of memory");
        }
        ts_tensor *h = calloc((size_t)np, sizeof *h);
        rc = h ? TS_OK : ts_fail(e, TS_ENOMEM, "out of memory");
        for (int i = 0; !rc && i < np; i++) {
            h[i] = m->delta[i];
            h[i].data = m->copy_host + ((float *)m->delta[i].data - m->delta_buf);
        }
        if (!rc) rc = spl_upload_dense(node_codec(n), f.upload, h, e);
        if (!rc && m->be->upload(m->be, m->delta_buf, m->copy_host, m->count * sizeof(float)))
            rc = ts_fail(e, TS_EIO, "%s: uploading the copy failed", m->be->name);
        free(h);
    } else {
        rc = spl_upload_dense(node_codec(n), f.upload, m->delta, e);
    }
    node_fetch_clear(&f);
    if (rc) return rc;
    ts_tensor *ef = node_ef(n);
    node_ef_zero(n);
    spl_meta meta = {0};
    snprintf(meta.run_id, sizeof meta.run_id, "%s", m->r->run_id);
    meta.window = w;
    meta.uid = node_uid(n);
    uint8_t digest[TS_HASH_BYTES];
    if (data_pool(node_data(n), m->r->run_id, node_uid(n), w, (uint32_t)m->r->seq_len, node_run_pool_size(m->r),
                  m->pool, e) ||
        data_pool_digest(node_data(n), (uint32_t)m->r->seq_len, m->pool, node_run_pool_size(m->r), digest, e))
        return e->code;
    memcpy(meta.sample_digest, digest, TS_HASH_BYTES);
    node_model_hash(n, meta.base_hash);
    model_config_hash(&m->r->model, meta.config_hash);
    /* alpha scales the copy back to what was sent */
    return spl_compress(node_codec(n), m->delta, ef, &meta, node_keys(n), wire, len, e);
}

static void retention(miner *m, uint64_t w) {
    int64_t keep = (int64_t)w - m->r->retention_windows;
    if (keep <= 0) return;
    ts_err e = {0};
    int deleted = 0, d2 = 0;
    if (store_prune_windows(node_store(m->n), "gradients", (uint64_t)keep, &deleted, &e) ||
        store_prune_windows(node_store(m->n), "debug", (uint64_t)keep, &d2, &e))
        TS_WARN("retention: %s", e.msg);
    else if (deleted + d2)
        TS_DEBUG("retention: deleted %d old objects", deleted + d2);
}

/* The copycat also lies about time: it dates its copy 10 ms after the
 * acceptance window opened (a file store's mtime is the uploader's to set;
 * a hostile S3 endpoint answers any date), so that by LastModified the
 * miner it copied looks like the later uploader.  Validators must not be
 * fooled (t_e2e). */
static void backdate(miner *m, uint64_t w, const char *key) {
    const char *url = store_url(node_store(m->n));
    if (strncmp(url, "file://", 7)) return;
    char *path = ts_path_join(url + 7, key);
    double t = node_window_time(m->n, w + 1) + 0.01;
    struct timespec ts[2] = {{(time_t)t, (long)((t - floor(t)) * 1e9)}, {(time_t)t, (long)((t - floor(t)) * 1e9)}};
    if (path && utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW)) TS_DEBUG("backdating %s: %s", path, strerror(errno));
    free(path);
}

/* The miner checks its own upload as validators will (PROTOCOL.md 2): the
 * store dates it (LastModified, the store's clock), the chain gives T(w+1).
 * It also measures its clock against the store's (the put's midpoint minus
 * LastModified).  An upload dated before the acceptance window opened is
 * put again (same key: a new LastModified) once the store's clock is past
 * T(w+1) + upload_delay_s; one dated late is too late to mend.  Either way
 * the log names the uid, the window and the offset.  An offset beyond its
 * bound (below) becomes m->skew (the latest measurement), by which the
 * next windows' training end, upload and gather are moved (an NTP-like
 * estimate: the store's clock stands in for the chain's). */
static void check_upload(miner *m, uint64_t w, const char *key, const void *wire, size_t len, double t0, double t1) {
    node *n = m->n;
    double open = node_window_time(n, w + 1), grace = m->r->upload_grace_s;
    for (int put = 1;; put++) {
        store_info info;
        ts_err he = {0};
        if (store_head(node_store(n), key, &info, &he)) {
            TS_WARN("window %llu: cannot check the upload's date: %s", (unsigned long long)w, he.msg);
            return;
        }
        /* The offset is known only within a bound: the put ran somewhere in
         * [t0, t1] by our clock, and a date to the whole second (S3's
         * Last-Modified) may be rounded down (R2, AWS) or up (Swift), so the
         * store's time of the put lies within a second of it either way.  An
         * offset is taken as real only when it exceeds that bound by
         * SKEW_MIN_S; a node with a right clock then never corrects itself
         * by what a slow put or a rounded date look like. */
        double lm = info.last_modified, off = 0.5 * (t0 + t1) - lm;
        double bound = 0.5 * (t1 - t0) + (lm == floor(lm) ? 1.0 : 0.0);
        double was = m->skew;
        m->skew = fabs(off) >= bound + SKEW_MIN_S ? off : 0;
        char clk[80];
        snprintf(clk, sizeof clk, "clock about %.1f s %s the store's", fabs(off), off >= 0 ? "ahead of" : "behind");
        if ((m->skew == 0) != (was == 0) || fabs(m->skew - was) >= 0.5)
            TS_WARN("uid %u: %s; correcting training end, upload and gather times by %+.1f s from window %llu on",
                    node_uid(n), clk, m->skew, (unsigned long long)w + 1);
        if (!isfinite(open) || (lm >= open && lm <= open + grace)) {
            if (put > 1)
                TS_INFO("window %llu: uid %u: re-upload dated %.1fs into the acceptance window (%s)",
                        (unsigned long long)w, node_uid(n), lm - open, clk);
            return;
        }
        if (lm > open + grace) {
            TS_WARN("window %llu: uid %u: upload dated %.1fs after the acceptance window closed (%s): validators "
                    "count it as missing (too late)", (unsigned long long)w, node_uid(n), lm - open - grace, clk);
            return;
        }
        TS_WARN("window %llu: uid %u: upload dated %.1fs before the acceptance window opened (%s)%s",
                (unsigned long long)w, node_uid(n), open - lm, clk, put < 3 ? ": uploading again once it is open" : "");
        if (put >= 3) return;
        /* the store's clock read about lm at the put: it reads open + delay
         * (open - lm) + delay after it */
        if (!node_sleep_until(n, t1 + (open - lm) + m->r->upload_delay_s)) return;
        ts_err pe = {0};
        t0 = ts_now();
        if (store_put(node_store(n), key, wire, len, &pe)) {
            TS_ERROR("window %llu: upload failed, this window counts as missing: %s", (unsigned long long)w, pe.msg);
            return;
        }
        t1 = ts_now();
    }
}

/* One window: train, upload, gather, step, publish the sync record. */
static int run_window(miner *m, uint64_t w, ts_err *e) {
    node *n = m->n;
    const node_run *r = m->r;
    node_daemon_metric(&m->d, "tessera_window", NULL, (double)w);
    uint8_t digest[TS_HASH_BYTES];
    int steps = 0;
    if (m->adv != ADV_COPYCAT && m->adv != ADV_GARBAGE) {
        if (train_window(m, w, digest, &steps, e)) return e->code;
        if (node_stopping(n)) return TS_OK;
    }
    const uint8_t *wire = NULL;
    size_t len = 0;
    uint8_t *garbage = NULL;
    double open = node_window_time(n, w + 1);
    if (m->adv == ADV_COPYCAT) {
        if (!node_sleep_past_window_start(n, w + 1, r->upload_delay_s)) return TS_OK;
        ts_err ce = {0};
        if (copy_upload(m, w, &wire, &len, &ce)) {
            TS_WARN("window %llu: copycat found nothing to copy: %s", (unsigned long long)w, ce.msg);
            wire = NULL;
        }
    } else if (m->adv == ADV_GARBAGE) {
        len = 4096;
        garbage = malloc(len);
        ts_random_bytes(garbage, len);
        memcpy(garbage, SPL_WIRE_MAGIC, 8);
        wire = garbage;
    } else if (steps > 0) {
        spl_meta meta = {0};
        snprintf(meta.run_id, sizeof meta.run_id, "%s", r->run_id);
        meta.window = w;
        meta.uid = node_uid(n);
        memcpy(meta.sample_digest, digest, TS_HASH_BYTES);
        node_model_hash(n, meta.base_hash);
        model_config_hash(&r->model, meta.config_hash);
        if (spl_compress(node_codec(n), m->delta, node_ef(n), &meta, node_keys(n), &wire, &len, e))
            return ts_wrap(e, "compressing window %llu", (unsigned long long)w);
    }
    /* upload inside [T(w+1), T(w+1) + grace] (by the store's clock, when
     * ours is off by m->skew) */
    if (wire && (m->adv == ADV_LATE ? node_sleep_until(n, open + r->upload_grace_s + 1.0)
                 : m->skew != 0     ? node_sleep_until(n, open + m->skew + r->upload_delay_s)
                                    : node_sleep_past_window_start(n, w + 1, r->upload_delay_s))) {
        char key[STORE_LAYOUT_KEY_MAX];
        store_key_gradient(key, w, node_uid(n));
        double t0 = ts_now();
        ts_err pe = {0};
        int prc = store_put(node_store(n), key, wire, len, &pe);
        double t1 = ts_now();
        if (!prc && m->adv == ADV_COPYCAT) backdate(m, w, key);
        if (prc) {
            TS_ERROR("window %llu: upload failed, this window counts as missing: %s", (unsigned long long)w, pe.msg);
            node_daemon_metric_add(&m->d, "tessera_upload_failures_total", NULL, 1);
        } else {
            double dt = ts_now() - t0;
            char sz[32];
            ts_fmt_bytes(sz, sizeof sz, (double)len);
            TS_INFO("window %llu: uploaded %s in %.2fs (%.1fs into the acceptance window)", (unsigned long long)w, sz,
                    dt, ts_now() - m->skew - node_window_time(n, w + 1));
            node_daemon_metric(&m->d, "tessera_upload_bytes", NULL, (double)len);
            node_daemon_metric(&m->d, "tessera_upload_seconds", NULL, dt);
            if (m->adv != ADV_COPYCAT && m->adv != ADV_LATE) check_upload(m, w, key, wire, len, t0, t1);
        }
    }
    free(garbage);
    if (node_stopping(n)) return TS_OK;
    /* gather and the outer step, once the acceptance window has closed */
    if (!node_sleep_until(n, open + m->skew + r->upload_grace_s + r->gather_delay_s)) return TS_OK;
    node_refresh(n, NULL);
    node_peers peers;
    ts_err pe = {0};
    int prc = node_peers_for(n, w, &peers, &pe);
    node_gather g = {0};
    if (prc == TS_OK) {
        double t0 = ts_now();
        if (node_gather_window(n, w, &peers, &g, e)) return e->code;
        TS_INFO("window %llu: gathered %d of %u peers in %.2fs", (unsigned long long)w, g.n, peers.n_gather,
                ts_now() - t0);
        node_daemon_metric(&m->d, "tessera_gather_peers", NULL, g.n);
        node_daemon_metric(&m->d, "tessera_gather_success_ratio", NULL, peers.n_gather ? (double)g.n / peers.n_gather : 1);
    } else if (prc == TS_ENOTFOUND) {
        TS_INFO("window %llu: no peer list yet: a null round", (unsigned long long)w);
    } else {
        TS_WARN("window %llu: cannot read the peer list (%s); will catch up", (unsigned long long)w, pe.msg);
        return TS_OK;
    }
    if (g.n == 0) node_ef_zero(n); /* null round */
    spl_apply_stats st;
    int rc = node_outer_step(n, w, &g, &st, e);
    node_gather_clear(&g);
    if (rc) return rc;
    node_sync s;
    node_sync_make(n, w, &s);
    char hex[17];
    ts_hex(hex, s.model_hash, 8);
    TS_INFO("window %llu: outer step with %d tensors (%d skipped); model %s...", (unsigned long long)w,
            st.tensors_applied, st.tensors_skipped, hex);
    if (node_forked(n)) TS_WARN("window %llu: forked: no sync record goes out", (unsigned long long)w);
    else if (node_publish_sync(n, &s, &pe))
        TS_WARN("window %llu: sync record not published: %s", (unsigned long long)w, pe.msg);
    if (node_save_state(n, &pe)) TS_ERROR("saving local state: %s", pe.msg);
    retention(m, w);
    m->windows_done++;
    return TS_OK;
}

/* The window by the store's clock when ours is off by m->skew (the chain's
 * window otherwise: on a local subnet our clock gives it). */
static uint64_t store_window(miner *m, uint64_t w) {
    while (m->skew != 0 && ts_now() - m->skew >= node_window_time(m->n, w + 1)) w++;
    while (m->skew != 0 && w > 0 && ts_now() - m->skew < node_window_time(m->n, w)) w--;
    return w;
}

int main(int argc, char **argv) {
    miner m = {0};
    int rc = node_daemon_parse(&m.d, NODE_MINER, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    if (parse_adversary(m.d.adversary, &m.adv)) {
        fprintf(stderr, "tessera-miner: --adversary must be honest, copycat, garbage, lazy or late\n");
        node_daemon_stop(&m.d);
        return 2;
    }
    if (m.adv == ADV_COPYCAT && m.d.copy_uid < 0) {
        fprintf(stderr, "tessera-miner: --adversary copycat needs --copy-uid\n");
        node_daemon_stop(&m.d);
        return 2;
    }
    m.copy_uid = (uint32_t)m.d.copy_uid;
    ts_err e = {0};
    if (node_daemon_start(&m.d, &e) || setup(&m, &e)) {
        fprintf(stderr, "tessera-miner: %s\n", e.msg);
        teardown(&m);
        node_daemon_stop(&m.d);
        return 1;
    }
    if (m.adv != ADV_HONEST) TS_WARN("running as a '%s' adversary (demos and tests only)", m.d.adversary);
    /* a counter is there from the start, at 0, so that a scrape tells "no
     * failures" from "no such metric" */
    node_daemon_metric(&m.d, "tessera_upload_failures_total", NULL, 0);
    node *n = m.n;
    const node_run *r = m.r;
    int status = 0;
    while (!node_stopping(n)) {
        if (m.d.max_windows > 0 && m.windows_done >= m.d.max_windows) break;
        ts_err le = {0};
        chain_clock clk;
        if (!node_daemon_tick(&m.d, &clk)) continue;
        if (node_start_window(n, &m.start, &le)) {
            node_daemon_waiting(&m.d, le.code, le.msg);
            node_sleep_until(n, ts_now() + 2);
            continue;
        }
        uint64_t w = store_window(&m, clk.window);
        if (w < m.start) {
            TS_INFO("the run starts at window %llu; waiting", (unsigned long long)m.start);
            node_sleep_until(n, node_window_time(n, m.start));
            continue;
        }
        /* agreement: our recent models against the published reference; a
         * fork drops the state, and the catch-up below resynchronises */
        if (node_check_agreement(n, &le) == TS_ESIG) TS_ERROR("%s", le.msg);
        if (node_next_window(n) != w) {
            /* behind: every window before w must have closed its acceptance window */
            double ready = node_window_time(n, w) + m.skew + r->upload_grace_s + r->gather_delay_s;
            if (ts_now() < ready && !node_sleep_until(n, ready)) break;
            if (node_catch_up(n, w, &le)) {
                TS_WARN("catching up to window %llu: %s; retrying", (unsigned long long)w, le.msg);
                node_sleep_until(n, ts_now() + 2);
                continue;
            }
            if (node_save_state(n, &le)) TS_ERROR("saving local state: %s", le.msg);
            /* the window may have ended while catching up */
            chain_now(node_chain(n), &clk, &le);
            if (store_window(&m, clk.window) != w) continue;
        }
        if (run_window(&m, w, &le)) {
            TS_ERROR("window %llu: %s", (unsigned long long)w, le.msg);
            if (le.code == TS_ENOMEM) {
                status = 1;
                break;
            }
            node_sleep_until(n, ts_now() + 1);
        }
    }
    if (node_fatal(n)) {
        TS_ERROR("stopped: this node cannot go on (see above)");
        status = 1;
    }
    TS_INFO("stopping after %d window(s)", m.windows_done);
    teardown(&m);
    node_daemon_stop(&m.d);
    return status;
}
