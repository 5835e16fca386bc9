/* node.c - a node: keys, chain, stores, model, codec, data; the window
 * clock, uploads, the gather and the outer step, peer lists and the start
 * window, local state.  Sync records, catch-up and checkpoints are in
 * sync.c and ckpt.c. */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "node_internal.h"

/* ---------------------------------------------------------------- open */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static int check_data_hash(const data_dataset *ds, const char *path, const char *what,
                           const uint8_t want[TS_HASH_BYTES], ts_err *e) {
    uint8_t got[TS_HASH_BYTES];
    if (data_dataset_hash(ds, got, e)) return ts_wrap(e, "%s data %s", what, path);
    if (memcmp(got, want, TS_HASH_BYTES)) {
        char a[2 * TS_HASH_BYTES + 1], b[2 * TS_HASH_BYTES + 1];
        ts_hex(a, got, TS_HASH_BYTES);
        ts_hex(b, want, TS_HASH_BYTES);
        return ts_fail(e, TS_ECONFIG,
                       "%s data %s has dataset hash %.16s..., the run names %.16s... (other or changed shards; "
                       "tessera data hash %s)", what, path, a, b, path);
    }
    ts_log(TS_LOG_INFO, "%s data %s: dataset hash matches the run's", what, path);
    return TS_OK;
}

static int load_data(node *n, ts_err *e) {
    const char *path = n->opts.data && *n->opts.data ? n->opts.data : n->run.data;
    if (!path || !*path)
        return ts_fail(e, TS_ECONFIG, "no training data: the run parameters name none; pass --data DIR");
    if (data_dataset_open(path, &n->ds, e)) return ts_wrap(e, "training data");
    /* invariant: every node of a run trains and evaluates on the same
     * tokens; a dataset hash the run names is checked before any pool is
     * drawn from the data */
    if (n->run.has_data_hash && check_data_hash(n->ds, path, "training", n->run.data_hash, e)) return e->code;
    uint64_t samples = data_num_samples(n->ds, (uint32_t)n->run.seq_len);
    if (samples < node_run_pool_size(&n->run))
        return ts_fail(e, TS_EINVAL, "training data %s holds %llu samples of %d tokens, fewer than a window's pool of %llu",
                       path, (unsigned long long)samples, n->run.seq_len,
                       (unsigned long long)node_run_pool_size(&n->run));
    uint32_t vocab = data_vocab_size(n->ds);
    if (vocab > (uint32_t)n->run.model.vocab_size)
        return ts_fail(e, TS_EINVAL, "training data %s declares a vocabulary of %u tokens, the model has %d", path,
                       vocab, n->run.model.vocab_size);
    const char *val = n->opts.val_data && *n->opts.val_data ? n->opts.val_data : n->run.val_data;
    if (val && *val && n->run.val_samples > 0) {
        if (data_dataset_open(val, &n->val, e)) return ts_wrap(e, "held-out data");
        if (n->run.has_val_data_hash && check_data_hash(n->val, val, "held-out", n->run.val_data_hash, e))
            return e->code;
        if (data_num_samples(n->val, (uint32_t)n->run.seq_len) < (uint64_t)n->run.val_samples)
            return ts_fail(e, TS_EINVAL, "held-out data %s holds fewer than %d samples", val, n->run.val_samples);
    }
    return TS_OK;
}

static int choose_sync_positions(node *n, ts_err *e) {
    size_t count;
    model_param_data(n->m, &count);
    uint8_t seed[32];
    ts_hasher h;
    ts_hasher_init(&h, 32);
    ts_hasher_update(&h, "tessera-sync-positions-v1", 26);
    ts_hasher_update(&h, n->run.run_id, strlen(n->run.run_id));
    ts_hasher_final(&h, seed);
    n->nsync = (uint32_t)((uint64_t)n->run.sync_values < count ? (uint64_t)n->run.sync_values : count);
    n->sync_pos = malloc(sizeof *n->sync_pos * n->nsync);
    if (!n->sync_pos) return ts_fail(e, TS_ENOMEM, "out of memory");
    if (data_pool_draw(seed, count, n->nsync, n->sync_pos, e)) return e->code;
    /* ascending, so the record reads memory in order */
    for (uint32_t i = 1; i < n->nsync; i++)
        for (uint32_t j = i; j > 0 && n->sync_pos[j - 1] > n->sync_pos[j]; j--) {
            uint64_t t = n->sync_pos[j];
            n->sync_pos[j] = n->sync_pos[j - 1];
            n->sync_pos[j - 1] = t;
        }
    return TS_OK;
}

static int publish_commitment(node *n, ts_err *e) {
    char text[CHAIN_COMMIT_MAX + 1];
    if (n->opts.commitment && *n->opts.commitment) {
        snprintf(text, sizeof text, "%s", n->opts.commitment);
    } else if (!strcmp(store_kind(n->own), "file")) {
        snprintf(text, sizeof text, "%s", store_url(n->own));
    } else {
        return ts_fail(e, TS_ECONFIG,
                       "an s3 store needs --store-commitment: the read credentials peers use for your bucket "
                       "(see README, 'Running a miner and a validator')");
    }
    store_commitment c;
    if (store_commitment_parse(text, STORE_COMMIT_ANY, &c, e)) return ts_wrap(e, "commitment");
    free(n->commit_text);
    if (!(n->commit_text = strdup(text))) return ts_fail(e, TS_ENOMEM, "out of memory");
    chain_commitment cur;
    ts_err e2 = {0};
    bool have = chain_commitment_of(n->ch, n->uid, &cur, &e2) == TS_OK;
    /* the subnet owner's node keeps its run anchor in front of its bucket */
    if (have && node_commitment_bucket(cur.data) != cur.data) {
        size_t pl = (size_t)(node_commitment_bucket(cur.data) - cur.data);
        if (!strcmp(cur.data + pl, text)) return TS_OK;
        char full[CHAIN_COMMIT_MAX + 1];
        if (pl + strlen(text) > CHAIN_COMMIT_MAX)
            return ts_fail(e, TS_ETOOBIG, "the bucket commitment does not fit behind the run anchor");
        snprintf(full, sizeof full, "%.*s%s", (int)pl, cur.data, text);
        if (chain_commit(n->ch, &n->kp, full, e)) return ts_wrap(e, "publishing the bucket commitment");
        TS_INFO("published the bucket commitment for uid %u (behind the run anchor)", n->uid);
        return TS_OK;
    }
    if (have && !strcmp(cur.data, text)) return TS_OK;
    if (chain_commit(n->ch, &n->kp, text, e)) return ts_wrap(e, "publishing the bucket commitment");
    TS_INFO("published the bucket commitment for uid %u", n->uid);
    return TS_OK;
}

/* One process per state directory: an advisory lock on STATE_DIR/lock,
 * held for the node's life (released by the kernel when the process dies,
 * so a crash leaves nothing to clean up). */
static int lock_state_dir(node *n, ts_err *e) {
    if (ts_mkdirs(n->opts.state_dir, 0700, e)) return e->code;
    char *p = ts_path_join(n->opts.state_dir, "lock");
    if (!p) return ts_fail(e, TS_ENOMEM, "out of memory");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = ts_fail(e, TS_EIO, "%s: %s", p, strerror(errno));
        free(p);
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        char pid[32] = "";
        ssize_t k = pread(fd, pid, sizeof pid - 1, 0);
        if (k > 0) pid[k] = 0;
        pid[strcspn(pid, "\n")] = 0;
        int rc = ts_fail(e, TS_EDENIED,
                         "state directory %s is in use by another process (pid %s): two nodes never share one; "
                         "stop it or give this one its own --state-dir",
                         n->opts.state_dir, pid[0] ? pid : "?");
        close(fd);
        free(p);
        return rc;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)len, 0) != len) TS_WARN("%s: cannot record the pid", p);
    free(p);
    n->lock_fd = fd;
    return TS_OK;
}

int node_open(const node_opts *o, node **out, ts_err *e) {
    *out = NULL;
    if (ts_init(e)) return e->code;
    node *n = calloc(1, sizeof *n);
    if (!n) return ts_fail(e, TS_ENOMEM, "out of memory");
    n->opts = *o;
    n->lock_fd = -1;
    pthread_mutex_init(&n->peer_mu, NULL);
    n->opts.chain_url = dup_or_null(o->chain_url);
    n->opts.wallet = dup_or_null(o->wallet);
    n->opts.hotkey = dup_or_null(o->hotkey);
    n->opts.store_url = dup_or_null(o->store_url);
    n->opts.commitment = dup_or_null(o->commitment);
    n->opts.state_dir = dup_or_null(o->state_dir);
    n->opts.device = dup_or_null(o->device);
    n->opts.data = dup_or_null(o->data);
    n->opts.val_data = dup_or_null(o->val_data);
    if (o->sopts) n->sopts = *o->sopts;
    n->opts.sopts = &n->sopts;
    int rc;
    if (!n->opts.chain_url || !n->opts.store_url || !n->opts.state_dir || !n->opts.hotkey) {
        rc = ts_fail(e, TS_ECONFIG, "a node needs --chain, --store-url, --state-dir and --hotkey");
        goto fail;
    }
    if ((rc = ts_key_load(n->opts.wallet ? n->opts.wallet : "default", n->opts.hotkey, &n->kp, e))) goto fail;
    if ((rc = chain_open(n->opts.chain_url, &n->ch, e))) goto fail;
    /* on subtensor: the run the subnet owner committed to, or none */
    if (chain_run_pending(n->ch) && (rc = node_run_fetch(n->ch, &n->sopts, e))) goto fail;
    n->cp = chain_get_params(n->ch);
    if ((rc = node_run_from_json(&n->run, n->cp->run_id, chain_run_params(n->ch), e))) goto fail;
    model_config_hash(&n->run.model, n->config_hash);
    if ((rc = node_refresh(n, e))) goto fail;
    if (chain_uid_of(&n->mg, n->kp.pk, &n->uid)) {
        char ss[64];
        ts_ss58(ss, n->kp.pk);
        rc = ts_fail(e, TS_ENOTFOUND,
                     "hotkey %s (%s) is not registered on the subnet; register it first "
                     "(local subnet: tessera localnet register --dir DIR --wallet %s --hotkey %s)",
                     n->opts.hotkey, ss, n->opts.wallet ? n->opts.wallet : "default", n->opts.hotkey);
        goto fail;
    }
    if ((rc = lock_state_dir(n, e))) goto fail;
    if ((rc = store_open(&n->own, n->opts.store_url, &n->sopts, e))) goto fail;
    if ((rc = publish_commitment(n, e))) goto fail;
    if ((rc = kn_backend_open(n->opts.device ? n->opts.device : "cpu", &n->be, e))) goto fail;
    {
        int T = n->run.seq_len;
        int B = n->run.batch_size;
        if (o->role == NODE_VALIDATOR && B < n->run.gauntlet.eval_samples) B = (int)n->run.gauntlet.eval_samples;
        if (B < 8) B = 8;
        model_options mo = {.max_batch = B, .max_seq = T, .eval_only = o->role == NODE_VALIDATOR};
        if ((rc = model_create_opts(&n->run.model, n->be, &mo, &n->m, e))) goto fail;
    }
    n->params = (ts_tensor *)model_params(n->m, &n->nparams);
    if ((rc = spl_ctx_new(&n->run.codec, n->params, n->nparams, &n->codec, e))) goto fail;
    /* the codec reads and writes the model (and the error feedback) where
     * they live */
    if ((rc = spl_ctx_set_device(n->codec, n->be, e))) goto fail;
    if ((rc = load_data(n, e))) goto fail;
    if ((rc = choose_sync_positions(n, e))) goto fail;
    if (n->be->is_gpu) {
        size_t count;
        model_param_data(n->m, &count);
        n->host_params = malloc(count * sizeof(float) + 1);
        if (!n->host_params) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory (a host copy of the parameters)");
            goto fail;
        }
    }
    if (o->role == NODE_MINER) {
        n->ef = calloc((size_t)n->nparams, sizeof *n->ef);
        if (!n->ef) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            goto fail;
        }
        if (n->be->is_gpu) {
            /* one device buffer, laid out like the parameters */
            size_t count;
            model_param_data(n->m, &count);
            n->ef_dev = n->be->alloc(n->be, count * sizeof(float));
            if (!n->ef_dev || n->be->fill(n->be, n->ef_dev, 0.0f, count)) {
                rc = ts_fail(e, TS_ENOMEM, "%s: out of device memory for the error feedback (%zu bytes)",
                             n->be->name, count * sizeof(float));
                goto fail;
            }
            size_t off = 0;
            for (int i = 0; i < n->nparams; i++) {
                ts_tensor *t = &n->ef[i];
                snprintf(t->name, sizeof t->name, "%s", n->params[i].name);
                t->dtype = TS_F32;
                t->ndim = n->params[i].ndim;
                memcpy(t->shape, n->params[i].shape, sizeof t->shape);
                t->nbytes = n->params[i].nbytes;
                t->data = (float *)n->ef_dev + off;
                t->owned = false;
                off += t->nbytes / sizeof(float);
            }
        } else {
            for (int i = 0; i < n->nparams; i++)
                if ((rc = ts_tensor_alloc(&n->ef[i], n->params[i].name, TS_F32, n->params[i].ndim,
                                          n->params[i].shape, e)))
                    goto fail;
        }
    }
    if ((rc = ts_mkdirs(n->opts.state_dir, 0700, e))) goto fail;
    if ((rc = node_init_model(n, e))) goto fail; /* checks the run's initial weights early */
    if ((rc = node_load_state(n, e))) goto fail;
    *out = n;
    return TS_OK;
fail:
    node_close(n);
    return rc;
}

void node_close(node *n) {
    if (!n) return;
    for (uint32_t i = 0; i < n->npeer_stores; i++) {
        store_close(n->peer_stores[i].s);
        free(n->peer_stores[i].text);
    }
    free(n->peer_stores);
    if (n->ef)
        for (int i = 0; i < n->nparams; i++) ts_tensor_free(&n->ef[i]);
    free(n->ef);
    if (n->ef_dev) n->be->free(n->be, n->ef_dev);
    free(n->host_params);
    free(n->sync_pos);
    spl_ctx_free(n->codec);
    model_free(n->m);
    data_dataset_close(n->ds);
    data_dataset_close(n->val);
    store_close(n->own);
    chain_metagraph_free(&n->mg);
    free(n->commits);
    chain_close(n->ch);
    free((char *)n->opts.chain_url);
    free((char *)n->opts.wallet);
    free((char *)n->opts.hotkey);
    free((char *)n->opts.store_url);
    free((char *)n->opts.commitment);
    free((char *)n->opts.state_dir);
    free((char *)n->opts.device);
    free((char *)n->opts.data);
    free((char *)n->opts.val_data);
    free(n->commit_text);
    if (n->lock_fd >= 0) close(n->lock_fd);
    free(n);
}

const node_run *node_get_run(const node *n) { return &n->run; }
uint32_t node_uid(const node *n) { return n->uid; }
const ts_keypair *node_keys(const node *n) { return &n->kp; }
chain *node_chain(node *n) { return n->ch; }
store *node_store(node *n) { return n->own; }
model *node_model(node *n) { return n->m; }
spl_ctx *node_codec(node *n) { return n->codec; }
data_dataset *node_data(node *n) { return n->ds; }
data_dataset *node_val_data(node *n) { return n->val; }
ts_tensor *node_params(node *n, int *count) {
    if (count) *count = n->nparams;
    return n->params;
}
ts_tensor *node_ef(node *n) { return n->ef; }
const kn_backend *node_backend(const node *n) { return n->be; }

void node_device_name(const node *n, char *out, size_t cap) {
    snprintf(out, cap, "%s", n->be->name);
    if (!n->be->is_gpu) return;
    kn_device_info info[16];
    const char *why = NULL;
    int k = kn_cuda_devices(info, 16, &why);
    for (int i = 0; i < k; i++)
        if (info[i].index == n->be->device) snprintf(out, cap, "%s", info[i].name);
}

void node_ef_zero(node *n) {
    if (!n->ef) return;
    if (n->ef_dev) {
        size_t count;
        model_param_data(n->m, &count);
        if (n->be->fill(n->be, n->ef_dev, 0.0f, count)) TS_ERROR("%s: zeroing the error feedback failed", n->be->name);
        return;
    }
    for (int i = 0; i < n->nparams; i++) memset(n->ef[i].data, 0, n->ef[i].nbytes);
}

void node_model_changed(node *n) {
    n->hash_valid = false;
    n->host_valid = false;
}

const float *node_host_params(node *n, size_t *count, ts_err *e) {
    size_t c;
    const float *p = model_param_data(n->m, &c);
    if (count) *count = c;
    if (!n->host_params) return p; /* host memory already */
    if (!n->host_valid) {
        if (n->be->download(n->be, n->host_params, p, c * sizeof(float))) {
            ts_fail(e, TS_EIO, "%s: downloading the parameters failed", n->be->name);
            return NULL;
        }
        n->host_valid = true;
    }
    return n->host_params;
}
uint64_t node_next_window(const node *n) { return n->next_window; }

int node_init_model(node *n, ts_err *e) {
    node_model_changed(n);
    if (!n->run.init[0]) {
        model_init(n->m, n->run.seed);
        return TS_OK;
    }
    uint8_t h[TS_HASH_BYTES];
    if (ts_hash_file(n->run.init, h, e)) return ts_wrap(e, "the run's initial weights");
    if (memcmp(h, n->run.init_hash, TS_HASH_BYTES))
        return ts_fail(e, TS_ESIG, "the run's initial weights %s do not have the hash the run names", n->run.init);
    if (model_load(n->m, n->run.init, e)) return ts_wrap(e, "the run's initial weights");
    return TS_OK;
}

void node_model_hash(node *n, uint8_t out[TS_HASH_BYTES]) {
    if (!n->hash_valid) {
        size_t count;
        ts_err e = {0};
        const float *p = node_host_params(n, &count, &e);
        if (!p) {
            /* a hash nobody holds: the node is told it forked and resyncs */
            TS_ERROR("model hash: %s", e.msg);
            memset(out, 0, TS_HASH_BYTES);
            return;
        }
        ts_blake2b(n->hash, TS_HASH_BYTES, p, count * sizeof(float));
        n->hash_valid = true;
    }
    memcpy(out, n->hash, TS_HASH_BYTES);
}

/* ------------------------------------------------------ chain and stores */

int node_refresh(node *n, ts_err *e) {
    chain_metagraph mg;
    if (chain_metagraph_get(n->ch, &mg, e)) return ts_wrap(e, "reading the metagraph");
    chain_commitment *c;
    uint32_t nc;
    if (chain_commitments(n->ch, &c, &nc, e)) {
        chain_metagraph_free(&mg);
        return ts_wrap(e, "reading commitments");
    }
    chain_metagraph_free(&n->mg);
    n->mg = mg;
    free(n->commits);
    n->commits = c;
    n->ncommits = nc;
    /* this node's identity must not change under it */
    if (n->commit_text) {
        uint32_t uid;
        char ss[64];
        ts_ss58(ss, n->kp.pk);
        const char *why = NULL;
        if (chain_uid_of(&n->mg, n->kp.pk, &uid)) why = "is no longer registered (its uid was replaced)";
        else if (uid != n->uid) why = "holds another uid than when this node started";
        else {
            const chain_commitment *mine = NULL;
            for (uint32_t i = 0; i < n->ncommits; i++)
                if (n->commits[i].uid == n->uid) mine = &n->commits[i];
            /* (the subnet owner's run anchor in front of it is not part of it) */
            if (mine && strcmp(node_commitment_bucket(mine->data), n->commit_text))
                why = "has a commitment (bucket) that this node did not publish: another process runs with this "
                      "hotkey";
        }
        if (why) {
            n->fatal = true;
            n->stop = 1;
            return ts_fail(e, TS_EDENIED, "hotkey %s (uid %u) %s; stopping: one hotkey, one node", ss, n->uid, why);
        }
    }
    return TS_OK;
}

bool node_fatal(const node *n) { return n->fatal; }

const chain_metagraph *node_metagraph(const node *n) { return &n->mg; }

const uint8_t *node_hotkey_of(const node *n, uint32_t uid) {
    if (uid >= n->mg.n) return NULL;
    return n->mg.neurons[uid].hotkey;
}

double node_peer_budget(const node *n) {
    double window = n->cp->block_time * (double)n->cp->blocks_per_window;
    double b = window / 10;
    return b < 1 ? 1 : b > 60 ? 60 : b;
}

static int peer_store_locked(node *n, uint32_t uid, store **out, ts_err *e);

/* Serialised: the gather resolves stores from several threads. */
int node_peer_store(node *n, uint32_t uid, store **out, ts_err *e) {
    pthread_mutex_lock(&n->peer_mu);
    int rc = peer_store_locked(n, uid, out, e);
    pthread_mutex_unlock(&n->peer_mu);
    return rc;
}

static int peer_store_locked(node *n, uint32_t uid, store **out, ts_err *e) {
    *out = NULL;
    if (uid == n->uid) {
        *out = n->own;
        return TS_OK;
    }
    const chain_commitment *c = NULL;
    for (uint32_t i = 0; i < n->ncommits; i++)
        if (n->commits[i].uid == uid) c = &n->commits[i];
    if (!c || uid >= n->mg.n || memcmp(c->hotkey, n->mg.neurons[uid].hotkey, TS_PK_BYTES))
        return ts_fail(e, TS_ENOTFOUND, "uid %u has published no bucket commitment", uid);
    for (uint32_t i = 0; i < n->npeer_stores; i++)
        if (n->peer_stores[i].uid == uid) {
            if (!strcmp(n->peer_stores[i].text, c->data)) {
                *out = n->peer_stores[i].s;
                return TS_OK;
            }
            store_close(n->peer_stores[i].s);
            free(n->peer_stores[i].text);
            n->peer_stores[i] = n->peer_stores[--n->npeer_stores];
            break;
        }
    store_commitment sc;
    if (store_commitment_parse(node_commitment_bucket(c->data), n->opts.allow_local_peers ? STORE_COMMIT_ANY : STORE_COMMIT_REMOTE, &sc, e))
        return ts_wrap(e, "uid %u's commitment", uid);
    store *s;
    store_opts so = n->sopts;
    so.access_key = so.secret_key = so.session_token = NULL;
    so.no_env = true;
    /* A peer's endpoint is the peer's to make slow or dead: every request to
     * it has a deadline from the window's schedule (a tenth of a window,
     * 1..60 s, connection and stall limits within it) and one retry, so no
     * peer holds a window up for long; fetches run concurrently, so one
     * peer's slowness never delays another's (docs/FORMATS.md 11.6). */
    double budget = node_peer_budget(n);
    so.request_timeout_s = budget;
    so.retries = 1;
    if (so.connect_timeout_s <= 0 || so.connect_timeout_s > budget / 2) so.connect_timeout_s = budget / 2;
    if (so.stall_timeout_s <= 0 || so.stall_timeout_s > budget) so.stall_timeout_s = budget;
    if (store_open_commitment(&s, &sc, &so, e)) return ts_wrap(e, "uid %u's bucket", uid);
    peer_store *ps = realloc(n->peer_stores, sizeof *ps * (n->npeer_stores + 1));
    if (!ps) {
        store_close(s);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    n->peer_stores = ps;
    ps[n->npeer_stores].uid = uid;
    ps[n->npeer_stores].text = strdup(c->data);
    ps[n->npeer_stores].s = s;
    n->npeer_stores++;
    *out = s;
    return TS_OK;
}

/* ------------------------------------------------------------ the clock */

double node_window_time(node *n, uint64_t window) {
    double t = 0;
    ts_err e = {0};
    if (chain_window_start_time(n->ch, window, &t, &e)) return NAN;
    return t;
}

bool node_sleep_past_window_start(node *n, uint64_t window, double delay) {
    uint64_t start = chain_window_start_block(n->cp, window);
    for (;;) {
        double t = node_window_time(n, window);
        if (!isfinite(t)) t = ts_now() + 1.0 - delay; /* the chain did not answer: ask again in a second */
        if (!node_sleep_until(n, t + delay)) return false;
        uint64_t b;
        ts_err e = {0};
        if (chain_block(n->ch, &b, NULL, &e) == TS_OK && b >= start) {
            double final = node_window_time(n, window);
            if (isfinite(final) && final + delay <= ts_now()) return true;
            if (isfinite(final)) continue; /* later than projected: sleep on to it */
        }
        /* the block is not there yet (or the chain did not answer) */
        if (!node_sleep_until(n, ts_now() + 0.2)) return false;
    }
}

void node_stop(node *n) { n->stop = 1; }
bool node_stopping(const node *n) { return n->stop != 0; }

bool node_sleep_until(node *n, double t) {
    for (;;) {
        if (n->stop) return false;
        double left = t - ts_now();
        if (left <= 0) return true;
        double step = left < 0.2 ? left : 0.2;
        struct timespec ts = {(time_t)step, (long)((step - (double)(time_t)step) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* ------------------------------------------------------ signed objects */

int node_get_object(node *n, uint32_t uid, const char *key, const char *kind, cJSON **out, ts_err *e) {
    *out = NULL;
    store *s;
    if (node_peer_store(n, uid, &s, e)) return e->code;
    const uint8_t *pk = node_hotkey_of(n, uid);
    if (!pk) return ts_fail(e, TS_ENOTFOUND, "uid %u is not registered", uid);
    uint8_t *buf;
    size_t len;
    if (store_get(s, key, NODE_OBJ_MAX, &buf, &len, e)) return e->code;
    int rc = node_obj_parse(buf, len, kind, n->run.run_id, pk, out, e);
    free(buf);
    if (rc) return ts_wrap(e, "uid %u's %s", uid, key);
    return TS_OK;
}

int node_put_object(node *n, const char *key, cJSON *obj, ts_err *e) {
    if (node_obj_sign(obj, &n->kp, e)) return e->code;
    char *text = cJSON_Print(obj);
    if (!text) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = store_put(n->own, key, text, strlen(text), e);
    free(text);
    return rc;
}

cJSON *node_new_object(const node *n, const char *kind) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", kind);
    cJSON_AddStringToObject(o, "run_id", n->run.run_id);
    return o;
}

int node_json_u64(const cJSON *o, const char *key, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != floor(v->valuedouble))
        return TS_EFORMAT;
    *out = (uint64_t)v->valuedouble;
    return TS_OK;
}

/* ------------------------------------------------------------- uploads */

void node_fetch_clear(node_fetch *f) {
    free(f->wire);
    spl_upload_free(f->upload);
    uint32_t uid = f->uid;
    memset(f, 0, sizeof *f);
    f->uid = uid;
}

static gauntlet_upload timing(node *n, uint64_t window, double lm) {
    double open = node_window_time(n, window + 1);
    if (lm < open) return GAUNTLET_UPLOAD_EARLY;
    if (lm > open + n->run.upload_grace_s) return GAUNTLET_UPLOAD_LATE;
    return GAUNTLET_UPLOAD_OK;
}

gauntlet_upload node_upload_status(node *n, uint32_t uid, uint64_t window, double *last_modified) {
    store *s;
    ts_err e = {0};
    if (last_modified) *last_modified = 0;
    if (node_peer_store(n, uid, &s, &e)) return GAUNTLET_UPLOAD_MISSING;
    char key[STORE_LAYOUT_KEY_MAX];
    store_key_gradient(key, window, uid);
    store_info info;
    if (store_head(s, key, &info, &e)) return GAUNTLET_UPLOAD_MISSING;
    if (last_modified) *last_modified = info.last_modified;
    return timing(n, window, info.last_modified);
}

int node_fetch_upload(node *n, uint32_t uid, uint64_t window, node_fetch *f, ts_err *e) {
    node_fetch_clear(f);
    f->uid = uid;
    f->status = GAUNTLET_UPLOAD_MISSING;
    store *s;
    ts_err pe = {0};
    const uint8_t *pk = node_hotkey_of(n, uid);
    if (!pk || node_peer_store(n, uid, &s, &pe)) {
        snprintf(f->reason, sizeof f->reason, "%s", pk ? pe.msg : "not registered");
        return TS_OK;
    }
    char key[STORE_LAYOUT_KEY_MAX];
    store_key_gradient(key, window, uid);
    store_info info;
    if (store_head(s, key, &info, &pe)) {
        snprintf(f->reason, sizeof f->reason, "%s", pe.code == TS_ENOTFOUND ? "no upload" : pe.msg);
        return TS_OK;
    }
    f->last_modified = info.last_modified;
    f->status = timing(n, window, info.last_modified);
    if (f->status != GAUNTLET_UPLOAD_OK) {
        double open = node_window_time(n, window + 1);
        snprintf(f->reason, sizeof f->reason, "uploaded %.1fs %s the acceptance window",
                 f->status == GAUNTLET_UPLOAD_EARLY ? open - info.last_modified
                                                    : info.last_modified - open - n->run.upload_grace_s,
                 f->status == GAUNTLET_UPLOAD_EARLY ? "before" : "after");
        return TS_OK;
    }
    if (info.size > spl_ctx_wire_max(n->codec)) {
        f->status = GAUNTLET_UPLOAD_INVALID;
        f->why = SPL_R_OVERSIZED;
        snprintf(f->reason, sizeof f->reason, "%llu bytes, more than the model allows",
                 (unsigned long long)info.size);
        return TS_OK;
    }
    if (store_get(s, key, spl_ctx_wire_max(n->codec), &f->wire, &f->len, &pe)) {
        f->status = pe.code == TS_ETOOBIG ? GAUNTLET_UPLOAD_INVALID : GAUNTLET_UPLOAD_MISSING;
        snprintf(f->reason, sizeof f->reason, "%s", pe.msg);
        return TS_OK;
    }
    /* replaced after the HEAD: judge the object we actually read */
    store_info again;
    if (store_head(s, key, &again, &pe) == TS_OK && again.last_modified != info.last_modified) {
        f->last_modified = again.last_modified;
        f->status = timing(n, window, again.last_modified);
        if (f->status != GAUNTLET_UPLOAD_OK) {
            snprintf(f->reason, sizeof f->reason, "replaced outside the acceptance window");
            return TS_OK;
        }
    }
    int rc = spl_upload_new(n->codec, &f->upload, e);
    if (rc) return rc;
    spl_expect x = {.run_id = n->run.run_id, .window = window, .uid = uid, .signer = pk,
                    .config_hash = n->config_hash};
    rc = spl_decode(n->codec, f->wire, f->len, &x, f->upload, &f->why, &pe);
    if (rc) {
        if (f->why == SPL_R_NONE && rc == TS_ENOMEM) return ts_fail(e, rc, "%s", pe.msg);
        f->status = GAUNTLET_UPLOAD_INVALID;
        snprintf(f->reason, sizeof f->reason, "%s: %s", spl_reject_name(f->why), pe.msg);
        spl_upload_free(f->upload);
        f->upload = NULL;
        return TS_OK;
    }
    f->status = GAUNTLET_UPLOAD_OK;
    return TS_OK;
}

void node_gather_clear(node_gather *g) {
    for (int i = 0; i < g->n; i++) node_fetch_clear(&g->f[i]);
    g->n = 0;
}

static int cmp_fetch_uid(const void *a, const void *b) {
    uint32_t x = ((const node_fetch *)a)->uid, y = ((const node_fetch *)b)->uid;
    return x < y ? -1 : x > y;
}

int node_gather_window(node *n, uint64_t window, const node_peers *peers, node_gather *g, ts_err *e) {
    memset(g, 0, sizeof *g);
    if (!peers || peers->n_gather == 0) return TS_OK;
    /* resolve stores first (the cache is not thread-safe), fetch in parallel */
    uint32_t np = peers->n_gather > NODE_MAX_PEERS ? NODE_MAX_PEERS : peers->n_gather;
    for (uint32_t i = 0; i < np; i++) {
        store *s;
        ts_err pe = {0};
        node_peer_store(n, peers->gather[i], &s, &pe);
    }
    node_fetch *tmp = calloc(np, sizeof *tmp);
    if (!tmp) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = TS_OK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(4)
    for (uint32_t i = 0; i < np; i++) {
        ts_err fe = {0};
        if (node_fetch_upload(n, peers->gather[i], window, &tmp[i], &fe)) {
#pragma omp critical
            rc = ts_fail(e, fe.code, "%s", fe.msg);
        }
    }
    uint32_t next_reserve = 0;
    for (uint32_t i = 0; i < np && !rc; i++) {
        if (tmp[i].status == GAUNTLET_UPLOAD_OK) {
            g->f[g->n++] = tmp[i];
            memset(&tmp[i], 0, sizeof tmp[i]);
            continue;
        }
        TS_INFO("window %llu: peer %u %s (%s)%s", (unsigned long long)window, tmp[i].uid,
                gauntlet_upload_name(tmp[i].status), tmp[i].reason,
                next_reserve < peers->n_reserve ? "; trying a reserve" : "");
        while (next_reserve < peers->n_reserve) {
            uint32_t r = peers->reserve[next_reserve++];
            bool dup = false;
            for (int j = 0; j < g->n; j++) dup |= g->f[j].uid == r;
            for (uint32_t j = 0; j < np; j++) dup |= peers->gather[j] == r;
            if (dup) continue;
            node_fetch f = {0};
            if ((rc = node_fetch_upload(n, r, window, &f, e))) break;
            if (f.status == GAUNTLET_UPLOAD_OK) {
                g->f[g->n++] = f;
                TS_INFO("window %llu: reserve %u replaces peer %u", (unsigned long long)window, r, tmp[i].uid);
                break;
            }
            node_fetch_clear(&f);
        }
    }
    for (uint32_t i = 0; i < np; i++) node_fetch_clear(&tmp[i]);
    free(tmp);
    if (rc) {
        node_gather_clear(g);
        return rc;
    }
    qsort(g->f, (size_t)g->n, sizeof g->f[0], cmp_fetch_uid);
    return TS_OK;
}

int node_outer_step(node *n, uint64_t window, node_gather *g, spl_apply_stats *st, ts_err *e) {
    spl_apply_stats local = {0};
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    if (window != n->next_window)
        return ts_fail(e, TS_ESTATE, "outer step of window %llu on a model at window %llu",
                       (unsigned long long)window, (unsigned long long)n->next_window);
    if (g && g->n > 0) {
        const spl_upload *peers[NODE_MAX_PEERS];
        for (int i = 0; i < g->n; i++) peers[i] = g->f[i].upload;
        int rc = spl_outer_step(n->codec, n->params, peers, g->n, n->run.codec.alpha, st, e);
        node_model_changed(n);
        if (rc) return ts_wrap(e, "outer step of window %llu", (unsigned long long)window);
    }
    n->next_window = window + 1;
    node_hist_record(n, window, false);
    return TS_OK;
}

/* ---------------------------------------------------------- local state */

int node_save_state(node *n, ts_err *e) {
    if (n->forked || !n->have_state)
        return ts_fail(e, TS_ESTATE, "no state to save: the model is being resynchronised");
    if (model_save(n->m, n->opts.state_dir, e)) return ts_wrap(e, "saving the model");
    if (n->ef) {
        char *p = ts_path_join(n->opts.state_dir, "ef.safetensors");
        const ts_tensor **ts = malloc(sizeof *ts * (size_t)n->nparams);
        ts_tensor *host = n->ef_dev ? calloc((size_t)n->nparams, sizeof *host) : NULL;
        int rc = (!p || !ts || (n->ef_dev && !host)) ? ts_fail(e, TS_ENOMEM, "out of memory") : TS_OK;
        if (!rc && n->ef_dev) {
            /* written from a host copy (the parameters' host buffer, which
             * then no longer holds the model), so that any device loads it */
            size_t count;
            model_param_data(n->m, &count);
            n->host_valid = false;
            if (n->be->download(n->be, n->host_params, n->ef_dev, count * sizeof(float)))
                rc = ts_fail(e, TS_EIO, "%s: downloading the error feedback failed", n->be->name);
            for (int i = 0; !rc && i < n->nparams; i++) {
                host[i] = n->ef[i];
                host[i].data = n->host_params + ((float *)n->ef[i].data - (float *)n->ef_dev);
            }
        }
        for (int i = 0; !rc && i < n->nparams; i++) ts[i] = host ? &host[i] : &n->ef[i];
        if (!rc) rc = ts_st_write(p, ts, n->nparams, NULL, e);
        free(host);
        free(ts);
        free(p);
        if (rc) return ts_wrap(e, "saving the error feedback");
    }
    uint8_t h[TS_HASH_BYTES];
    node_model_hash(n, h);
    char hex[2 * TS_HASH_BYTES + 1], chex[2 * TS_HASH_BYTES + 1];
    ts_hex(hex, h, TS_HASH_BYTES);
    ts_hex(chex, n->config_hash, TS_HASH_BYTES);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", "tessera-node-state");
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "run_id", n->run.run_id);
    cJSON_AddNumberToObject(o, "next_window", (double)n->next_window);
    cJSON_AddStringToObject(o, "model_hash", hex);
    cJSON_AddStringToObject(o, "config_hash", chex);
    cJSON_AddBoolToObject(o, "error_feedback", n->ef != NULL);
    if (n->have_start) cJSON_AddNumberToObject(o, "start_window", (double)n->start);
    /* the model hash after each recent window, and whether it matched the
     * reference: a restarted node checks what it resumed */
    cJSON *hist = cJSON_AddArrayToObject(o, "history");
    for (int i = 0; i < n->nhist; i++) {
        cJSON *x = cJSON_CreateObject();
        char hh[2 * TS_HASH_BYTES + 1];
        ts_hex(hh, n->hist[i].hash, TS_HASH_BYTES);
        cJSON_AddNumberToObject(x, "window", (double)n->hist[i].window);
        cJSON_AddStringToObject(x, "model_hash", hh);
        cJSON_AddBoolToObject(x, "verified", n->hist[i].verified);
        cJSON_AddItemToArray(hist, x);
    }
    /* the newest checkpoint seen from each validator: windows never go back */
    cJSON *seen = cJSON_AddObjectToObject(o, "checkpoints_seen");
    for (int i = 0; i < n->nseen; i++) {
        char pk[2 * TS_PK_BYTES + 1];
        ts_hex(pk, n->seen[i].pk, TS_PK_BYTES);
        cJSON_AddNumberToObject(seen, pk, (double)n->seen[i].window);
    }
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    char *p = ts_path_join(n->opts.state_dir, "node.json");
    int rc = (!text || !p) ? ts_fail(e, TS_ENOMEM, "out of memory") : ts_write_atomic(p, text, strlen(text), e);
    free(text);
    free(p);
    return rc;
}

/* Loads state_dir's model (and error feedback) when node.json vouches for
 * them; anything inconsistent is logged and ignored (the node catches up). */
int node_load_state(node *n, ts_err *e) {
    n->have_state = false;
    n->next_window = 0;
    char *p = ts_path_join(n->opts.state_dir, "node.json");
    uint8_t *buf = NULL;
    size_t len;
    ts_err le = {0};
    int rc = ts_read_file(p, 1 << 16, &buf, &len, &le);
    free(p);
    if (rc == TS_ENOTFOUND) return TS_OK;
    if (rc) {
        TS_WARN("local state unreadable (%s); starting from the network", le.msg);
        return TS_OK;
    }
    cJSON *o = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(o, "run_id");
    const cJSON *mh = cJSON_GetObjectItemCaseSensitive(o, "model_hash");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "config_hash");
    uint64_t next;
    uint8_t want[TS_HASH_BYTES], cfg[TS_HASH_BYTES];
    if (!cJSON_IsObject(o) || !cJSON_IsString(run) || strcmp(run->valuestring, n->run.run_id) ||
        node_json_u64(o, "next_window", &next) || !cJSON_IsString(mh) || ts_unhex(want, TS_HASH_BYTES, mh->valuestring) ||
        !cJSON_IsString(ch) || ts_unhex(cfg, TS_HASH_BYTES, ch->valuestring) ||
        memcmp(cfg, n->config_hash, TS_HASH_BYTES)) {
        TS_WARN("local state in %s belongs to another run or is malformed; ignoring it", n->opts.state_dir);
        cJSON_Delete(o);
        return TS_OK;
    }
    /* what survives a failed model load too: the checkpoints seen */
    const cJSON *seen = cJSON_GetObjectItemCaseSensitive(o, "checkpoints_seen");
    for (const cJSON *x = seen ? seen->child : NULL; x; x = x->next) {
        uint8_t pk[TS_PK_BYTES];
        if (x->string && !ts_unhex(pk, TS_PK_BYTES, x->string) && cJSON_IsNumber(x) && x->valuedouble >= 0)
            node_seen_put(n, pk, (uint64_t)x->valuedouble);
    }
    uint64_t sw;
    if (!node_json_u64(o, "start_window", &sw)) {
        n->start = sw;
        n->have_start = true;
    }
    n->nhist = 0;
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(o, "history");
    for (const cJSON *x = hist ? hist->child : NULL; x && n->nhist < NODE_HIST; x = x->next) {
        uint64_t hw;
        const cJSON *hh = cJSON_GetObjectItemCaseSensitive(x, "model_hash");
        node_hist *h = &n->hist[n->nhist];
        if (node_json_u64(x, "window", &hw) || !cJSON_IsString(hh) || ts_unhex(h->hash, TS_HASH_BYTES, hh->valuestring) ||
            (n->nhist && hw <= n->hist[n->nhist - 1].window) || hw >= next)
            continue;
        h->window = hw;
        h->verified = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "verified"));
        n->nhist++;
    }
    cJSON_Delete(o);
    node_model_changed(n);
    if (model_load(n->m, n->opts.state_dir, &le)) {
        TS_WARN("local model unreadable (%s); starting from the network", le.msg);
        return TS_OK;
    }
    uint8_t got[TS_HASH_BYTES];
    node_model_hash(n, got);
    if (memcmp(got, want, TS_HASH_BYTES)) {
        TS_WARN("local model does not match node.json (interrupted save); starting from the network");
        return TS_OK;
    }
    if (n->ef) {
        char *ep = ts_path_join(n->opts.state_dir, "ef.safetensors");
        ts_st_file *f = NULL;
        bool ok = ts_st_open(ep, &f, &le) == TS_OK && ts_st_count(f) == n->nparams;
        for (int i = 0; ok && i < n->nparams; i++) {
            const ts_tensor *t = ts_st_find(f, n->ef[i].name);
            ok = t && t->dtype == TS_F32 && t->nbytes == n->ef[i].nbytes;
            if (ok && n->ef_dev) {
                if (n->be->upload(n->be, n->ef[i].data, t->data, t->nbytes)) {
                    ok = false;
                    ts_fail(&le, TS_EIO, "%s: uploading the error feedback failed", n->be->name);
                }
            } else if (ok) {
                memcpy(n->ef[i].data, t->data, t->nbytes);
            }
        }
        ts_st_close(f);
        free(ep);
        if (!ok) {
            TS_WARN("error feedback not restored (%s); starting it from zero", le.msg[0] ? le.msg : "mismatch");
            node_ef_zero(n);
        }
    }
    n->next_window = next;
    n->have_state = true;
    /* the resumed model is the one after window next - 1: it is checked
     * against that window's reference like any other */
    if (next > 0 && (n->nhist == 0 || n->hist[n->nhist - 1].window != next - 1)) node_hist_record(n, next - 1, false);
    else if (next > 0 && memcmp(n->hist[n->nhist - 1].hash, got, TS_HASH_BYTES)) {
        memcpy(n->hist[n->nhist - 1].hash, got, TS_HASH_BYTES);
        n->hist[n->nhist - 1].verified = false;
    }
    char hex[17];
    ts_hex(hex, got, 8);
    TS_INFO("resumed local state: model at window %llu (hash %s...)", (unsigned long long)next, hex);
    (void)e;
    return TS_OK;
}
