/* main.c - tessera-validator.
 *
 * Per window w, once its acceptance window has closed (PROTOCOL.md sections
 * 8-10):
 *   gather the peer list's uploads (the same outer-step input as the miners)
 *   choose whom to evaluate; fetch and verify their uploads
 *   losses on the miner's own samples and on random samples, before and
 *   after applying that miner's update alone at eval_lr_factor (with the
 *   gather's median-norm clip); the model restored bit for bit
 *   sync: the miner's published model slice against ours
 *   copycats: index overlap between every pair of fetched uploads
 *   the Gauntlet update, saved atomically; weights every N windows
 *   the outer step; our own sync record; the held-out loss
 *   leader: the catch-up bundle, peer lists, the start window
 *   every K windows: a signed checkpoint
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "node/daemon.h"

#define MAX_EVAL NODE_MAX_EVAL
#define PEER_THREADS 16 /* concurrent fetches from peers (I/O bound) */

/* What the validator itself saw of each miner's upload while the acceptance
 * window was open: per poll round, whether the object was there and the
 * last 64 bytes it ended in (its signature, which binds its content and
 * cannot exist before that content does). */
#define WATCH_MAX_OBS 160
typedef struct watch_obs {
    double t0, t1;          /* the round's start and end (validator clock) */
    bool present;
    uint8_t sig[TS_SIG_BYTES];
} watch_obs;
typedef struct watch_uid {
    uint32_t uid;
    int n;
    watch_obs obs[WATCH_MAX_OBS];
} watch_uid;
typedef struct watch {
    uint64_t window;
    bool valid;
    size_t n;
    watch_uid *u;
} watch;

typedef struct validator {
    node_daemon d;
    node *n;
    const node_run *r;
    gauntlet_state gs;
    char *gs_path, *log_path;
    uint64_t select_seed;
    uint8_t secret[32];   /* derived from the hotkey: seeds the validator's private draws */
    uint64_t start;
    int32_t *tokens;      /* eval_samples rows of T + 1 */
    uint32_t *sample;
    uint64_t *val_idx;
    int nval;
    spl_undo *undo;
    /* our own sync records of the last windows (window -> record) */
    node_sync sync[3];
    bool sync_valid[3];
    /* per sampled position, the EMA of our model's per-step change (the
     * unit of steps behind), folded in once per window */
    double sync_step[NODE_SYNC_MAX];
    bool sync_step_have;
    uint64_t sync_step_window;
    int windows_done;
    watch wt;
} validator;

/* ------------------------------------------------------------- helpers */

static void derive(const validator *v, const char *what, uint64_t a, uint64_t b, uint8_t out[32]) {
    ts_hasher h;
    ts_hasher_init(&h, 32);
    ts_hasher_update(&h, what, strlen(what) + 1);
    ts_hasher_update(&h, v->secret, 32);
    uint8_t x[16];
    ts_put_u64(x, a);
    ts_put_u64(x + 8, b);
    ts_hasher_update(&h, x, 16);
    ts_hasher_final(&h, out);
}

static void remember_sync(validator *v, const node_sync *s) {
    int slot = (int)(s->window % 3);
    v->sync[slot] = *s;
    v->sync_valid[slot] = true;
}

/* Our record of a window: from memory, else from our own bucket. */
static const node_sync *own_sync(validator *v, uint64_t w) {
    int slot = (int)(w % 3);
    if (v->sync_valid[slot] && v->sync[slot].window == w) return &v->sync[slot];
    ts_err e = {0};
    node_sync s;
    if (node_fetch_sync(v->n, node_uid(v->n), w, &s, &e)) return NULL;
    remember_sync(v, &s);
    return &v->sync[slot];
}

/* Loads rows of samples (indices into ds) into the token batch. */
static int load_rows(validator *v, data_dataset *ds, const uint64_t *idx, int rows, ts_err *e) {
    int T = v->r->seq_len;
    for (int b = 0; b < rows; b++) {
        if (data_sample(ds, (uint32_t)T, idx[b], v->sample, e)) return e->code;
        for (int t = 0; t <= T; t++) v->tokens[(size_t)b * (size_t)(T + 1) + (size_t)t] = (int32_t)v->sample[t];
    }
    return TS_OK;
}

static int loss_of(validator *v, data_dataset *ds, const uint64_t *idx, int rows, double *sum, ts_err *e) {
    if (load_rows(v, ds, idx, rows, e)) return e->code;
    int64_t count;
    return model_eval_loss(node_model(v->n), v->tokens, rows, v->r->seq_len, sum, &count, NULL, e);
}

/* Mean held-out loss of the current model. */
static double held_out_loss(validator *v) {
    if (v->nval <= 0) return NAN;
    data_dataset *ds = node_val_data(v->n);
    if (!ds) return NAN;
    int rows = (int)v->r->gauntlet.eval_samples;
    double total = 0;
    int64_t counted = 0;
    ts_err e = {0};
    for (int i = 0; i < v->nval; i += rows) {
        int k = v->nval - i < rows ? v->nval - i : rows;
        double sum;
        int64_t count;
        if (load_rows(v, ds, v->val_idx + i, k, &e) ||
            model_eval_loss(node_model(v->n), v->tokens, k, v->r->seq_len, &sum, &count, NULL, &e)) {
            TS_WARN("held-out loss: %s", e.msg);
            return NAN;
        }
        total += sum;
        counted += count;
    }
    return counted ? total / (double)counted : NAN;
}

/* One line of windows.jsonl per window.  A line the disk cannot hold (full,
 * or a write error) is cut off again, so that the next window's line does
 * not join a half-written one: the file keeps only whole lines. */
static void append_log(validator *v, uint64_t w, cJSON *rec) {
    char *line = cJSON_PrintUnformatted(rec);
    if (!line) {
        TS_ERROR("window %llu: %s: out of memory; its line is not written", (unsigned long long)w, v->log_path);
        return;
    }
    size_t l = strlen(line), done = 0;
    line[l++] = '\n'; /* in place of the terminator: written by length */
    int err = 0;
    struct stat st;
    int fd = open(v->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 || fstat(fd, &st)) err = errno;
    while (!err && done < l) {
        ssize_t k = write(fd, line + done, l - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) err = k < 0 ? errno : EIO;
        else done += (size_t)k;
    }
    if (!err && fsync(fd)) err = errno;
    if (err) {
        bool cut = done > 0 && done < l;
        if (cut && ftruncate(fd, st.st_size))
            TS_ERROR("window %llu: %s: cannot remove a partial line (%s)", (unsigned long long)w, v->log_path,
                     strerror(errno));
        TS_ERROR("window %llu: %s: %s; its line is not written", (unsigned long long)w, v->log_path, strerror(err));
    }
    if (fd >= 0) close(fd);
    free(line);
}

static int is_miner(const validator *v, const chain_neuron *nu) {
    return nu->uid != node_uid(v->n) && !nu->validator_permit;
}

/* The newest peer list or checkpoint manifest of a window at most `at`. */
typedef struct newest_ctx {
    store_obj_kind kind;
    uint64_t at, best;
    bool found;
} newest_ctx;

static int newest_cb(void *ud, const char *key, const store_info *info) {
    (void)info;
    newest_ctx *c = ud;
    uint64_t w;
    if (store_key_parse(key, &w, NULL) == c->kind && w <= c->at && (!c->found || w > c->best)) {
        c->best = w;
        c->found = true;
    }
    return 0;
}

/* Deletes dir's windows before the newest one (of kind) at or before keep:
 * that one is still in force at keep (a peer list) or the start of a replay
 * (a checkpoint), the newer ones are kept whole. */
static int prune_superseded(store *s, const char *dir, store_obj_kind kind, uint64_t keep, ts_err *e) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s/", dir);
    newest_ctx c = {.kind = kind, .at = keep};
    if (store_list(s, prefix, newest_cb, &c, e)) return e->code;
    int deleted = 0;
    return c.found ? store_prune_windows(s, dir, c.best, &deleted, e) : TS_OK;
}

/* Old objects: our sync records and bundles past the retention (the run
 * parameters guarantee it spans two checkpoint intervals, so a node can
 * replay from either of the last two checkpoints), and the peer lists and
 * checkpoints that a newer one at or before the retention's start
 * supersedes; without that last part a bucket grows by a peer list every
 * peers_interval windows and a whole model every checkpoint_interval
 * (bench/soak.sh found it). */
static void retention(validator *v, uint64_t w) {
    int64_t keep = (int64_t)w - v->r->retention_windows;
    if (keep <= 0) return;
    ts_err e = {0};
    int deleted = 0;
    store *s = node_store(v->n);
    if (store_prune_windows(s, "debug", (uint64_t)keep, &deleted, &e) ||
        store_prune_windows(s, "aggregates", (uint64_t)keep, &deleted, &e) ||
        prune_superseded(s, "peers", STORE_OBJ_PEERS, (uint64_t)keep, &e) ||
        prune_superseded(s, "checkpoints", STORE_OBJ_MANIFEST, (uint64_t)keep, &e))
        TS_WARN("retention: %s", e.msg);
}

/* ----------------------------------------------------- upload watching
 *
 * Who uploaded first, for the copycat rule, is decided only from what the
 * validator observed itself (docs/FORMATS.md 11.7): a miner controls its
 * object's LastModified (a file store's mtime, or a hostile endpoint's
 * answer), so that proves nothing.  While window W's acceptance window is
 * open the validator polls every miner's upload; an upload B is later than
 * A only when B's final content was seen absent (no object, or another
 * one) in a poll that began after A's final content had been seen.  A copy
 * cannot exist before its original, so the original is never judged later;
 * when the order cannot be told, nobody is charged. */

static void watch_reset(validator *v, uint64_t window) {
    const chain_metagraph *mg = node_metagraph(v->n);
    free(v->wt.u);
    memset(&v->wt, 0, sizeof v->wt);
    v->wt.u = calloc(mg->n + 1, sizeof *v->wt.u);
    if (!v->wt.u) return;
    for (uint32_t i = 0; i < mg->n; i++)
        if (is_miner(v, &mg->neurons[i])) v->wt.u[v->wt.n++].uid = i;
    v->wt.window = window;
    v->wt.valid = true;
}

/* One poll of every miner's upload of the watched window, concurrently. */
static void watch_round(validator *v) {
    node *n = v->n;
    double t0 = ts_now();
    watch_obs *res = calloc(v->wt.n + 1, sizeof *res);
    bool *ok = calloc(v->wt.n + 1, sizeof *ok);
    if (!res || !ok) {
        free(res);
        free(ok);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(PEER_THREADS)
    for (size_t k = 0; k < v->wt.n; k++) {
        store *st;
        ts_err pe = {0};
        char key[STORE_LAYOUT_KEY_MAX];
        store_key_gradient(key, v->wt.window, v->wt.u[k].uid);
        store_info info;
        if (node_peer_store(n, v->wt.u[k].uid, &st, &pe)) continue;
        int rc = store_head(st, key, &info, &pe);
        if (rc == TS_ENOTFOUND) {
            ok[k] = true; /* seen absent */
            continue;
        }
        size_t got = 0;
        if (rc || info.size < TS_SIG_BYTES ||
            store_get_range(st, key, info.size - TS_SIG_BYTES, TS_SIG_BYTES, res[k].sig, &got, &pe) ||
            got != TS_SIG_BYTES)
            continue; /* nothing learnt this round */
        res[k].present = true;
        ok[k] = true;
    }
    double t1 = ts_now();
    for (size_t k = 0; k < v->wt.n; k++) {
        watch_uid *u = &v->wt.u[k];
        if (!ok[k] || u->n == WATCH_MAX_OBS) continue;
        res[k].t0 = t0;
        res[k].t1 = t1;
        u->obs[u->n++] = res[k];
    }
    free(res);
    free(ok);
}

/* Polls window's uploads from T(window + 1) until `until`. */
static void watch_window(validator *v, uint64_t window, double until) {
    node *n = v->n;
    if (!v->wt.valid || v->wt.window != window) watch_reset(v, window);
    if (!v->wt.valid) return;
    double open = node_window_time(n, window + 1);
    double every = v->r->upload_grace_s / 20;
    if (every < 0.1) every = 0.1;
    if (every > 1) every = 1;
    if (!node_sleep_until(n, open)) return;
    while (!node_stopping(n) && ts_now() < until) {
        double t = ts_now();
        watch_round(v);
        double next = t + every;
        if (!node_sleep_until(n, next < until ? next : until)) return;
    }
}

/* Index of uid's first observation showing the content ending in sig, and
 * whether before it there was a poll (begun after `after`) that saw the
 * content absent.  -1 when the content was never seen. */
static int watch_first_seen(const watch *wt, uint32_t uid, const uint8_t *sig, double after, bool *absent_after) {
    *absent_after = false;
    for (size_t k = 0; k < wt->n; k++) {
        if (wt->u[k].uid != uid) continue;
        const watch_uid *u = &wt->u[k];
        for (int i = 0; i < u->n; i++) {
            if (u->obs[i].present && !memcmp(u->obs[i].sig, sig, TS_SIG_BYTES)) return i;
            if (u->obs[i].t0 > after) *absent_after = true;
        }
        return -1;
    }
    return -1;
}

static const watch_obs *watch_obs_of(const watch *wt, uint32_t uid, int i) {
    for (size_t k = 0; k < wt->n; k++)
        if (wt->u[k].uid == uid) return &wt->u[k].obs[i];
    return NULL;
}

/* 1: b's upload appeared after a's; 2: a's after b's; 0: cannot be told. */
static int watch_order(const validator *v, uint64_t window, uint32_t ua, const node_fetch *fa, uint32_t ub,
                       const node_fetch *fb) {
    const watch *wt = &v->wt;
    if (!wt->valid || wt->window != window || !fa || !fb || fa->len < TS_SIG_BYTES || fb->len < TS_SIG_BYTES) return 0;
    const uint8_t *sa = fa->wire + fa->len - TS_SIG_BYTES, *sb = fb->wire + fb->len - TS_SIG_BYTES;
    bool dummy, b_after, a_after;
    int ia = watch_first_seen(wt, ua, sa, INFINITY, &dummy);
    int ib = watch_first_seen(wt, ub, sb, INFINITY, &dummy);
    if (ia < 0 || ib < 0) return 0;
    double seen_a = watch_obs_of(wt, ua, ia)->t1, seen_b = watch_obs_of(wt, ub, ib)->t1;
    watch_first_seen(wt, ub, sb, seen_a, &b_after);
    watch_first_seen(wt, ua, sa, seen_b, &a_after);
    if (b_after && !a_after) return 1;
    if (a_after && !b_after) return 2;
    return 0;
}

/* --------------------------------------------------------- one window */

typedef struct {
    uint32_t uid;
    node_fetch *f;        /* the fetched upload (in the gather or ours) */
    bool own_fetch;
    gauntlet_eval ev;
    char reason[160];
} evaluated;

static int process_window(validator *v, uint64_t w, ts_err *e) {
    node *n = v->n;
    const node_run *r = v->r;
    const gauntlet_params *gp = &r->gauntlet;
    double t0 = ts_now();
    node_daemon_metric(&v->d, "tessera_window", NULL, (double)w);
    TS_INFO("window %llu: evaluating", (unsigned long long)w);
    bool scored = v->gs.window == GAUNTLET_NEVER || w > v->gs.window;

    /* registered miners and whether they uploaded anything */
    const chain_metagraph *mg = node_metagraph(n);
    gauntlet_reg *regs = calloc(mg->n + 1, sizeof *regs);
    size_t nregs = 0;
    for (uint32_t i = 0; i < mg->n; i++) {
        if (!is_miner(v, &mg->neurons[i])) continue;
        regs[nregs].uid = i;
        memcpy(regs[nregs].hotkey, mg->neurons[i].hotkey, 32);
        nregs++;
    }
    /* every peer's endpoint at once, each request bounded (node_peer_budget):
     * a slow or dead one costs its own deadline, never the others' */
#pragma omp parallel for schedule(dynamic, 1) num_threads(PEER_THREADS)
    for (size_t k = 0; k < nregs; k++)
        regs[k].active = node_upload_status(n, regs[k].uid, w, NULL) != GAUNTLET_UPLOAD_MISSING;

    /* the gather: the outer-step input, as every miner computes it */
    node_peers peers;
    ts_err pe = {0};
    int prc = node_peers_for(n, w, &peers, &pe);
    node_gather g = {0};
    if (prc == TS_OK) {
        if (node_gather_window(n, w, &peers, &g, e)) {
            free(regs);
            return e->code;
        }
    } else if (prc != TS_ENOTFOUND) {
        free(regs);
        return ts_fail(e, prc, "peer list: %s", pe.msg);
    }

    /* whom to evaluate */
    uint32_t chosen[MAX_EVAL];
    size_t nchosen = 0;
    evaluated ev[MAX_EVAL];
    int nev = 0;
    if (scored && nregs && gauntlet_select(&v->gs, gp, regs, nregs, w, v->select_seed, chosen, &nchosen, e)) {
        free(regs);
        node_gather_clear(&g);
        return e->code;
    }
    for (size_t i = 0; i < nchosen && nev < MAX_EVAL; i++) {
        evaluated *x = &ev[nev++];
        memset(x, 0, sizeof *x);
        x->uid = chosen[i];
        for (int j = 0; j < g.n; j++)
            if (g.f[j].uid == chosen[i]) x->f = &g.f[j];
        if (!x->f) {
            x->f = calloc(1, sizeof *x->f);
            x->own_fetch = true;
            if (!x->f) {
                nev--;
                continue;
            }
        }
    }
    /* The chosen miners' uploads (those the gather did not fetch) and their
     * sync records of w - 1, all at once: one peer's slowness never delays
     * the evaluation of another; a fetch past its deadline is that peer's
     * upload or record missing, with the reason logged. */
    node_sync *their_sync = calloc((size_t)nev + 1, sizeof *their_sync);
    int *their_rc = calloc((size_t)nev + 1, sizeof *their_rc);
    int fetch_rc = their_sync && their_rc ? TS_OK : ts_fail(e, TS_ENOMEM, "out of memory");
    double tf = ts_now();
#pragma omp parallel for schedule(dynamic, 1) num_threads(PEER_THREADS)
    for (int k = 0; k < 2 * nev; k++) {
        if (fetch_rc) continue;
        evaluated *x = &ev[k / 2];
        ts_err fe = {0};
        if (k % 2 == 0) {
            if (x->own_fetch && node_fetch_upload(n, x->uid, w, x->f, &fe)) {
#pragma omp critical
                fetch_rc = ts_fail(e, fe.code, "%s", fe.msg);
            }
        } else if (w > v->start) {
            their_rc[k / 2] = node_fetch_sync(n, x->uid, w - 1, &their_sync[k / 2], &fe);
            if (their_rc[k / 2] && their_rc[k / 2] != TS_ENOTFOUND)
                TS_INFO("window %llu: uid %u's sync record of window %llu: %s", (unsigned long long)w, x->uid,
                        (unsigned long long)(w - 1), fe.msg);
        }
    }
    if (fetch_rc) {
        for (int i = 0; i < nev; i++)
            if (ev[i].own_fetch) {
                node_fetch_clear(ev[i].f);
                free(ev[i].f);
            }
        free(their_sync);
        free(their_rc);
        free(regs);
        node_gather_clear(&g);
        return e->code;
    }
    TS_DEBUG("window %llu: fetched %d uploads and sync records in %.2fs", (unsigned long long)w, nev, ts_now() - tf);

    /* the clip thresholds of the current gather: every valid upload fetched */
    const spl_upload *valid[NODE_MAX_PEERS + MAX_EVAL];
    uint32_t valid_uid[NODE_MAX_PEERS + MAX_EVAL];
    const node_fetch *valid_f[NODE_MAX_PEERS + MAX_EVAL];
    int nvalid = 0;
    for (int j = 0; j < g.n; j++) {
        valid[nvalid] = g.f[j].upload;
        valid_uid[nvalid] = g.f[j].uid;
        valid_f[nvalid++] = &g.f[j];
    }
    for (int i = 0; i < nev; i++)
        if (ev[i].own_fetch && ev[i].f->status == GAUNTLET_UPLOAD_OK) {
            valid[nvalid] = ev[i].f->upload;
            valid_uid[nvalid] = ev[i].uid;
            valid_f[nvalid++] = ev[i].f;
        }
    int ntens = spl_ctx_count(node_codec(n));
    double *thr = calloc((size_t)ntens, sizeof *thr);
    if (nvalid && spl_clip_thresholds(node_codec(n), valid, nvalid, thr, e)) {
        free(thr);
        free(regs);
        node_gather_clear(&g);
        return e->code;
    }

    /* evaluate */
    int rows = (int)gp->eval_samples;
    uint64_t nsamples = data_num_samples(node_data(n), (uint32_t)r->seq_len);
    uint64_t rand_idx[NODE_MAX_EVAL_SAMPLES], own_pos[NODE_MAX_EVAL_SAMPLES], own_idx[NODE_MAX_EVAL_SAMPLES];
    uint64_t pool_n = node_run_pool_size(r);
    uint64_t *pool = malloc(sizeof *pool * pool_n);
    uint8_t seed[32];
    derive(v, "tessera-eval-random", w, 0, seed);
    double lr_before = NAN;
    if (nev && data_pool_draw(seed, nsamples, (uint64_t)rows, rand_idx, e) == TS_OK &&
        loss_of(v, node_data(n), rand_idx, rows, &lr_before, e) != TS_OK)
        lr_before = NAN;
    /* Sync: each miner's record of w - 1 against the reference hash of w - 1
     * (the model every node must hold; ours, when we agree with it), and
     * its distance from our model in per-step units otherwise.  A record
     * the miner did not publish counts as far behind (+inf); a measure we
     * cannot take (no record of our own of w - 2) is unknown (NaN), which
     * the Gauntlet does not count against the miner. */
    node_sync ours_now;
    node_sync_make(n, w - 1, &ours_now); /* the model before w's step is the one after w - 1's */
    const node_sync *ours = &ours_now, *prev = w >= 2 ? own_sync(v, w - 2) : NULL;
    if (prev && (!v->sync_step_have || v->sync_step_window < w - 1)) {
        node_sync_step_ema(v->sync_step, &v->sync_step_have, ours, prev, gp->sync_ema_alpha);
        v->sync_step_window = w - 1;
    }
    node_ref ref;
    ts_err rfe = {0};
    bool have_ref = w > v->start && node_reference(n, w - 1, &ref, NULL, NULL, &rfe) == TS_OK;
    float factor = r->codec.alpha * (float)gp->eval_lr_factor;
    for (int i = 0; i < nev; i++) {
        /* a stop leaves the window unscored and unapplied: nothing of it is
         * saved, and after a restart it is caught up like any other */
        if (node_stopping(n)) {
            ts_fail(e, TS_ESTATE, "stopping before the end of its evaluation");
            break;
        }
        evaluated *x = &ev[i];
        x->ev.uid = x->uid;
        x->ev.status = x->f->status;
        x->ev.steps_behind = NAN;
        snprintf(x->reason, sizeof x->reason, "%s", x->f->reason);
        const node_sync *theirs = &their_sync[i];
        if (w == v->start) {
            x->ev.steps_behind = 0; /* every node starts from the run's initial model */
        } else if (their_rc[i] != TS_OK) {
            x->ev.steps_behind = INFINITY;
        } else if ((have_ref && !memcmp(theirs->model_hash, ref.model, TS_HASH_BYTES)) ||
                   !memcmp(theirs->model_hash, ours->model_hash, TS_HASH_BYTES)) {
            x->ev.steps_behind = 0;
        } else if (v->sync_step_have) {
            x->ev.steps_behind = node_steps_behind(theirs, ours, v->sync_step);
        }
        if (x->f->status != GAUNTLET_UPLOAD_OK) continue;
        const spl_meta *meta = spl_upload_meta(x->f->upload);
        /* the miner must have trained on its own pool */
        uint8_t digest[TS_HASH_BYTES];
        if (data_pool(node_data(n), r->run_id, x->uid, w, (uint32_t)r->seq_len, pool_n, pool, e) ||
            data_pool_digest(node_data(n), (uint32_t)r->seq_len, pool, pool_n, digest, e))
            break;
        if (memcmp(digest, meta->sample_digest, TS_HASH_BYTES)) {
            x->ev.status = GAUNTLET_UPLOAD_INVALID;
            snprintf(x->reason, sizeof x->reason, "sample digest differs from the assigned pool");
            continue;
        }
        derive(v, "tessera-eval-own", w, x->uid, seed);
        if (data_pool_draw(seed, pool_n, (uint64_t)rows, own_pos, e)) break;
        for (int k = 0; k < rows; k++) own_idx[k] = pool[own_pos[k]];
        double lo_b, lo_a, lr_a;
        if (loss_of(v, node_data(n), own_idx, rows, &lo_b, e)) break;
        const spl_upload *one = x->f->upload;
        /* the model (device memory on a GPU) is changed and restored bit for
         * bit: its cached hash stays valid unless that fails */
        if (spl_apply(node_codec(n), node_params(n, NULL), &one, 1, nvalid ? thr : NULL, factor, v->undo, NULL, e)) {
            node_model_changed(n);
            break;
        }
        int rc1 = loss_of(v, node_data(n), own_idx, rows, &lo_a, e);
        int rc2 = rc1 ? rc1 : loss_of(v, node_data(n), rand_idx, rows, &lr_a, e);
        if (spl_undo_restore(node_codec(n), node_params(n, NULL), v->undo, e)) {
            node_model_changed(n);
            break;
        }
        if (rc2) break;
        x->ev.loss_own_before = lo_b;
        x->ev.loss_own_after = lo_a;
        x->ev.loss_rand_before = lr_before;
        x->ev.loss_rand_after = lr_a;
        TS_INFO("window %llu: uid %u  own %.4f -> %.4f  random %.4f -> %.4f  steps behind %.2f",
                (unsigned long long)w, x->uid, lo_b / rows, lo_a / rows, lr_before / rows, lr_a / rows,
                x->ev.steps_behind);
    }
    free(pool);
    int rc = e->code;
    /* the model must be exactly what it was: restore checked above */

    /* copycats: every pair of valid uploads */
    gauntlet_overlap ov[512];
    size_t nov = 0;
    int too_many = 0;
    for (int a = 0; !rc && a < nvalid; a++)
        for (int b = a + 1; b < nvalid; b++) {
            double share;
            if (spl_overlap(node_codec(n), valid[a], valid[b], &share, e)) {
                rc = e->code;
                break;
            }
            if (share >= gp->copycat_slash_overlap && nov == 512) {
                if (!too_many++)
                    TS_WARN("window %llu: more than 512 overlapping pairs; the rest are not charged", (unsigned long long)w);
            } else if (share >= gp->copycat_slash_overlap) {
                /* the later uploader, by what this validator saw (never by
                 * the objects' LastModified, which the uploader controls) */
                int order = watch_order(v, w, valid_uid[a], valid_f[a], valid_uid[b], valid_f[b]);
                if (!order) {
                    TS_WARN("window %llu: uploads of uids %u and %u share %.0f%% of their indices; which came first "
                            "cannot be told from what this validator saw: neither is charged",
                            (unsigned long long)w, valid_uid[a], valid_uid[b], 100 * share);
                    continue;
                }
                ov[nov].uid_a = valid_uid[a];
                ov[nov].uid_b = valid_uid[b];
                ov[nov].overlap = share;
                ov[nov].later = order == 1 ? valid_uid[b] : valid_uid[a];
                TS_WARN("window %llu: uploads of uids %u and %u share %.0f%% of their indices; %u appeared later "
                        "(seen absent after the other was seen)",
                        (unsigned long long)w, ov[nov].uid_a, ov[nov].uid_b, 100 * share, ov[nov].later);
                nov++;
            }
        }

    /* the Gauntlet */
    if (!rc && scored) {
        gauntlet_eval evs[MAX_EVAL];
        for (int i = 0; i < nev; i++) evs[i] = ev[i].ev;
        /* the gather's outcome: peers whose uploads were used (reserves that
         * stood in included) and gather-tier peers whose uploads were
         * missing or invalid */
        uint32_t gok[NODE_MAX_PEERS], gmiss[NODE_MAX_PEERS];
        size_t nok = 0, nmiss = 0;
        for (int j = 0; j < g.n; j++) gok[nok++] = g.f[j].uid;
        for (uint32_t k = 0; prc == TS_OK && k < peers.n_gather; k++) {
            bool used = false; /* (or already listed: a list never names a uid twice, but be sure) */
            for (int j = 0; j < g.n; j++) used |= g.f[j].uid == peers.gather[k];
            for (size_t j = 0; j < nmiss; j++) used |= gmiss[j] == peers.gather[k];
            if (!used) {
                gmiss[nmiss++] = peers.gather[k];
                TS_INFO("window %llu: gather peer %u's upload was missing or invalid", (unsigned long long)w,
                        peers.gather[k]);
            }
        }
        gauntlet_window_input in = {.window = w, .evals = evs, .n_evals = (size_t)nev, .overlaps = ov,
                                    .n_overlaps = nov, .registered = regs, .n_registered = nregs,
                                    .gather_ok = gok, .n_gather_ok = nok, .gather_missed = gmiss,
                                    .n_gather_missed = nmiss};
        rc = gauntlet_update(&v->gs, gp, &in, e);
        for (size_t i = 0; !rc && i < v->gs.n; i++) {
            const gauntlet_uid *u = &v->gs.uids[i];
            if (u->last_penalty_window == w && (u->last_penalties & GAUNTLET_PEN_COPY_BAN))
                TS_WARN("window %llu: uid %u banned as a copycat until window %llu (overlap %.0f %%)",
                        (unsigned long long)w, u->uid, (unsigned long long)u->ban_until, 100 * u->last_overlap);
        }
        /* scores that cannot be saved (a full disk) stay in memory and go
         * out with the next window's save: the window still counts, its
         * outer step and weights go ahead */
        if (!rc && gauntlet_state_save(&v->gs, v->gs_path, &pe))
            TS_ERROR("window %llu: saving the scores: %s; kept in memory until a save succeeds",
                     (unsigned long long)w, pe.msg);
    }

    /* the outer step */
    spl_apply_stats st = {0};
    uint8_t base_hash[TS_HASH_BYTES];
    memcpy(base_hash, ours_now.model_hash, TS_HASH_BYTES);
    if (!rc) rc = node_outer_step(n, w, &g, &st, e);
    node_sync mine;
    if (!rc) {
        node_sync_make(n, w, &mine);
        remember_sync(v, &mine);
        if (node_publish_sync(n, &mine, &pe)) TS_WARN("sync record not published: %s", pe.msg);
    }

    /* every validator publishes its bundle of the window: whoever leads, a
     * node catching up finds the reference (node_reference) */
    uint32_t leader = UINT32_MAX;
    node_leader_of(n, w, &leader, NULL);
    bool is_leader = !rc && leader == node_uid(n);
    if (!rc && node_publish_bundle(n, w, &g, base_hash, &pe))
        TS_WARN("bundle of window %llu: %s", (unsigned long long)w, pe.msg);

    /* weights and peer lists */
    uint32_t wuids[2 * NODE_MAX_PEERS + 1];
    double wts[2 * NODE_MAX_PEERS + 1];
    size_t nw = 0;
    if (!rc && gauntlet_weights(&v->gs, gp, wuids, wts, 2 * NODE_MAX_PEERS + 1, &nw, e)) rc = e->code;
    /* nothing to reward yet (every weight would go to the burn uid): set none */
    bool any_miner = false;
    for (size_t i = 0; i < nw; i++) any_miner |= wts[i] > 0 && (int64_t)wuids[i] != gp->burn_uid;
    if (!any_miner) nw = 0;
    if (!rc && scored && any_miner && gauntlet_is_weights_window(gp, w)) {
        float wf[2 * NODE_MAX_PEERS + 1];
        for (size_t i = 0; i < nw; i++) wf[i] = (float)wts[i];
        if (chain_set_weights(node_chain(n), node_keys(n), wuids, wf, (uint32_t)nw, &pe))
            TS_WARN("setting weights: %s", pe.msg);
        else
            TS_INFO("window %llu: set weights on %zu uids", (unsigned long long)w, nw);
    }
    /* Every validator posts its peer list (whoever leads when it takes
     * effect, the list exists), on the peers schedule and at its first window
     * after a start; never an empty one. */
    if (!rc && (gauntlet_is_peers_window(gp, w) || v->windows_done == 0)) {
        node_peers np = {.window = w + 1 + (uint64_t)gp->peers_delay};
        size_t ng = 0, nr = 0;
        uint32_t gl[NODE_MAX_PEERS], rl[NODE_MAX_PEERS];
        if (gauntlet_peers(&v->gs, gp, gl, &ng, rl, &nr, &pe) == TS_OK) {
            np.n_gather = (uint32_t)ng;
            np.n_reserve = (uint32_t)nr;
            memcpy(np.gather, gl, sizeof(uint32_t) * np.n_gather);
            memcpy(np.reserve, rl, sizeof(uint32_t) * np.n_reserve);
            if (np.n_gather == 0)
                TS_INFO("window %llu: no miner has a positive score yet: no peer list posted", (unsigned long long)w);
            else if (node_publish_peers(n, &np, &pe)) TS_WARN("peer list: %s", pe.msg);
            else TS_INFO("posted a peer list of %u + %u reserves, effective at window %llu", np.n_gather,
                         np.n_reserve, (unsigned long long)np.window);
        }
    }
    /* checkpoints: the leader's, and others' once their model of the window
     * before was confirmed by the reference */
    bool prev_ok = false;
    uint8_t ph[TS_HASH_BYTES];
    if (w > 0) node_window_hash(n, w - 1, ph, &prev_ok);
    if (!rc && (w + 1 - v->start) % (uint64_t)r->checkpoint_interval == 0) {
        if (!is_leader && !prev_ok)
            TS_INFO("window %llu: no checkpoint: this model is not confirmed by the reference yet", (unsigned long long)w);
        else if (node_publish_checkpoint(n, w, &pe))
            TS_WARN("checkpoint: %s", pe.msg);
    }
    if (!rc && node_save_state(n, &pe)) TS_ERROR("saving local state: %s", pe.msg);
    if (!rc) retention(v, w);
    /* a sign of life on chain, so that leadership can move when we stop */
    if (!rc && node_heartbeat(n, &pe)) TS_WARN("heartbeat: %s", pe.msg);

    /* report */
    double hol = rc ? NAN : held_out_loss(v);
    if (!rc) {
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddNumberToObject(rec, "window", (double)w);
        cJSON_AddNumberToObject(rec, "time", ts_now());
        if (isfinite(hol)) cJSON_AddNumberToObject(rec, "held_out_loss", hol);
        char hex[2 * TS_HASH_BYTES + 1];
        ts_hex(hex, mine.model_hash, TS_HASH_BYTES);
        cJSON_AddStringToObject(rec, "model_hash", hex);
        if (leader != UINT32_MAX) cJSON_AddNumberToObject(rec, "leader", leader);
        if (prc == TS_OK) cJSON_AddNumberToObject(rec, "peers_from", peers.from);
        cJSON *ga = cJSON_AddArrayToObject(rec, "gathered");
        for (int j = 0; j < g.n; j++) cJSON_AddItemToArray(ga, cJSON_CreateNumber(g.f[j].uid));
        cJSON *ea = cJSON_AddArrayToObject(rec, "evaluated");
        for (int i = 0; i < nev; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "uid", ev[i].uid);
            cJSON_AddStringToObject(x, "status", gauntlet_upload_name(ev[i].ev.status));
            if (ev[i].reason[0]) cJSON_AddStringToObject(x, "reason", ev[i].reason);
            const gauntlet_uid *u = gauntlet_state_find(&v->gs, ev[i].uid);
            if (u) {
                cJSON_AddNumberToObject(x, "gradient_score", u->gradient_score);
                cJSON_AddNumberToObject(x, "final_score", u->final_score);
                cJSON_AddNumberToObject(x, "binary_ma", u->binary_ma);
                cJSON_AddNumberToObject(x, "sync_score", u->sync_score);
            }
            if (isfinite(ev[i].ev.steps_behind)) cJSON_AddNumberToObject(x, "steps_behind", ev[i].ev.steps_behind);
            cJSON_AddItemToArray(ea, x);
        }
        cJSON *wa = cJSON_AddObjectToObject(rec, "weights");
        for (size_t i = 0; i < nw; i++) {
            char k[16];
            snprintf(k, sizeof k, "%u", wuids[i]);
            cJSON_AddNumberToObject(wa, k, wts[i]);
        }
        append_log(v, w, rec);
        cJSON_Delete(rec);
        if (isfinite(hol)) node_daemon_metric(&v->d, "tessera_held_out_loss", NULL, hol);
        node_daemon_metric(&v->d, "tessera_gather_peers", NULL, g.n);
        /* the gathered share of the peer list's gather tier (1 without a list:
         * nothing was expected), as a miner reports it */
        node_daemon_metric(&v->d, "tessera_gather_success_ratio", NULL,
                           prc == TS_OK && peers.n_gather ? (double)g.n / peers.n_gather : 1);
        for (size_t i = 0; i < v->gs.n; i++) {
            char lab[32];
            snprintf(lab, sizeof lab, "uid=\"%u\"", v->gs.uids[i].uid);
            node_daemon_metric(&v->d, "tessera_final_score", lab, v->gs.uids[i].final_score);
            node_daemon_metric(&v->d, "tessera_ordinal", lab, os_ordinal(v->gs.uids[i].rating));
        }
        TS_INFO("window %llu done in %.1fs: gathered %d, evaluated %d, held-out loss %.4f", (unsigned long long)w,
                ts_now() - t0, g.n, nev, hol);
    }
    for (int i = 0; i < nev; i++)
        if (ev[i].own_fetch) {
            node_fetch_clear(ev[i].f);
            free(ev[i].f);
        }
    node_gather_clear(&g);
    free(thr);
    free(regs);
    free(their_sync);
    free(their_rc);
    if (!rc) v->windows_done++;
    return rc;
}

/* ------------------------------------------------------------------ main */

static int setup(validator *v, ts_err *e) {
    v->n = v->d.n;
    v->r = node_get_run(v->n);
    gauntlet_state_init(&v->gs);
    v->gs_path = ts_path_join(v->d.state_dir, "gauntlet.state");
    v->log_path = ts_path_join(v->d.state_dir, "windows.jsonl");
    int rc = gauntlet_state_load(&v->gs, v->gs_path, e);
    if (rc == TS_ENOTFOUND) {
        gauntlet_state_init(&v->gs);
        ts_err_clear(e);
    } else if (rc) {
        return ts_wrap(e, "the saved scores (%s) are damaged; move the file away to start scoring afresh", v->gs_path);
    } else {
        TS_INFO("resumed scores of %zu uids at window %llu", v->gs.n, (unsigned long long)v->gs.window);
    }
    /* the validator's private seeds come from its hotkey's secret */
    ts_hasher h;
    ts_hasher_init(&h, 32);
    ts_hasher_update(&h, "tessera-validator-secret-v1", 28);
    ts_hasher_update(&h, node_keys(v->n)->sk, 32);
    ts_hasher_final(&h, v->secret);
    uint8_t s8[32];
    derive(v, "tessera-select", 0, 0, s8);
    v->select_seed = ts_get_u64(s8);
    int rows = (int)v->r->gauntlet.eval_samples;
    v->tokens = malloc(sizeof(int32_t) * (size_t)rows * (size_t)(v->r->seq_len + 1));
    v->sample = malloc(sizeof(uint32_t) * (size_t)(v->r->seq_len + 1));
    if (!v->tokens || !v->sample) return ts_fail(e, TS_ENOMEM, "out of memory");
    if (spl_undo_new(node_codec(v->n), 1, &v->undo, e)) return e->code;
    data_dataset *val = node_val_data(v->n);
    if (val && v->r->val_samples > 0) {
        v->nval = v->r->val_samples;
        v->val_idx = malloc(sizeof *v->val_idx * (size_t)v->nval);
        uint8_t seed[32];
        ts_blake2b(seed, 32, "tessera-held-out-v1", 19);
        if (!v->val_idx ||
            data_pool_draw(seed, data_num_samples(val, (uint32_t)v->r->seq_len), (uint64_t)v->nval, v->val_idx, e))
            return e->code ? e->code : ts_fail(e, TS_ENOMEM, "out of memory");
    }
    return TS_OK;
}

static void teardown(validator *v) {
    free(v->wt.u);
    gauntlet_state_free(&v->gs);
    spl_undo_free(v->undo);
    free(v->gs_path);
    free(v->log_path);
    free(v->tokens);
    free(v->sample);
    free(v->val_idx);
}

int main(int argc, char **argv) {
    validator v = {0};
    int rc = node_daemon_parse(&v.d, NODE_VALIDATOR, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    if (node_daemon_start(&v.d, &e) || setup(&v, &e)) {
        fprintf(stderr, "tessera-validator: %s\n", e.msg);
        teardown(&v);
        node_daemon_stop(&v.d);
        return 1;
    }
    node *n = v.n;
    const node_run *r = v.r;
    int status = 0;
    const chain_metagraph *mg = node_metagraph(n);
    if (!mg->neurons[node_uid(n)].validator_permit)
        TS_WARN("this hotkey holds no validator permit: it cannot set weights (stake it)");
    double settle = r->upload_grace_s + r->gather_delay_s;
    bool start_published = false;
    while (!node_stopping(n)) {
        if (v.d.max_windows > 0 && v.windows_done >= v.d.max_windows) break;
        ts_err le = {0};
        chain_clock clk;
        if (!node_daemon_tick(&v.d, &clk)) continue;
        int src = node_start_window(n, &v.start, &le);
        if (src) {
            uint32_t leader;
            if (src == TS_ENOTFOUND && node_leader(n, &leader, NULL) == TS_OK && leader == node_uid(n)) {
                if (node_publish_start_window(n, clk.window + 1, &le)) TS_WARN("start window: %s", le.msg);
            } else {
                node_daemon_waiting(&v.d, le.code, le.msg);
            }
            node_sleep_until(n, ts_now() + 1);
            continue;
        }
        if (!start_published) {
            /* every validator carries the run's start, so it outlives any one of them */
            if (node_publish_start_window(n, v.start, &le)) TS_WARN("start window: %s", le.msg);
            else start_published = true;
        }
        /* the newest window whose acceptance window has closed */
        uint64_t c = clk.window;
        double now = ts_now();
        int64_t target = (int64_t)c - 1;
        if (now < node_window_time(n, c) + settle) target--;
        if (target < (int64_t)v.start) {
            node_sleep_until(n, node_window_time(n, v.start + 1) + settle);
            continue;
        }
        uint64_t w = (uint64_t)target;
        if (node_next_window(n) > w) {
            /* until the next window can be processed, watch its uploads arrive */
            uint64_t nw = node_next_window(n);
            watch_window(&v, nw, node_window_time(n, nw + 1) + settle);
            continue;
        }
        /* agreement: our recent models against the published reference */
        if (node_check_agreement(n, &le) == TS_ESIG) TS_ERROR("%s", le.msg);
        if (node_catch_up(n, w, &le)) {
            TS_WARN("catching up to window %llu: %s; retrying", (unsigned long long)w, le.msg);
            node_sleep_until(n, ts_now() + 2);
            continue;
        }
        ts_err_clear(&le);
        if (process_window(&v, w, &le)) {
            if (node_stopping(n)) TS_INFO("window %llu: %s", (unsigned long long)w, le.msg);
            else TS_ERROR("window %llu: %s", (unsigned long long)w, le.msg);
            if (le.code == TS_ENOMEM) {
                status = 1;
                break;
            }
            node_sleep_until(n, ts_now() + 2);
        }
    }
    if (node_fatal(n)) {
        TS_ERROR("stopped: this node cannot go on (see above)");
        status = 1;
    }
    TS_INFO("stopping after %d window(s)", v.windows_done);
    teardown(&v);
    node_daemon_stop(&v.d);
    return status;
}
