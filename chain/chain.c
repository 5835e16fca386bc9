/* chain.c - the chain interface: picks a backend by URL scheme, serialises
 * calls on a handle, and holds what every backend shares: clock arithmetic,
 * weight quantization, metagraph look-ups and TAO formatting. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chain_internal.h"

struct chain {
    const chain_backend *be;
    void *impl;
    chain_params p;
    cJSON *run_params;           /* NULL while the run is pending */
    char *run_text;              /* chain_set_run's parameters */
    pthread_mutex_t mu;
};

static const chain_backend *const backends[] = {&chain_local_backend, &chain_subtensor_backend};

int chain_open(const char *url, chain **out, ts_err *e) {
    *out = NULL;
    int rc = ts_init(e);
    if (rc) return rc;
    if (!url || !*url) return ts_fail(e, TS_EINVAL, "no chain URL given (e.g. local:/path/to/subnet)");
    const char *colon = strchr(url, ':');
    if (!colon)
        return ts_fail(e, TS_EINVAL, "chain URL '%s' has no scheme (e.g. local:/path/to/subnet)", url);
    size_t sl = (size_t)(colon - url);
    const chain_backend *be = NULL;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strlen(backends[i]->scheme) == sl && !strncmp(url, backends[i]->scheme, sl)) be = backends[i];
    if (!be)
        return ts_fail(e, TS_EINVAL, "chain URL '%s': unknown scheme '%.*s' (known: local, subtensor)", url,
                       (int)sl, url);
    chain *c = calloc(1, sizeof *c);
    if (!c) return ts_fail(e, TS_ENOMEM, "out of memory");
    c->be = be;
    rc = be->open(colon + 1, &c->impl, &c->p, e);
    if (rc) {
        free(c);
        return rc;
    }
    /* a subtensor chain without a run in its URL: pending until the owner's
     * run description is read (chain_set_run) */
    c->run_params = c->p.run_params_json || be == &chain_local_backend ? cJSON_Parse(c->p.run_params_json ? c->p.run_params_json : "{}") : NULL;
    if ((c->p.run_params_json || be == &chain_local_backend) && !cJSON_IsObject(c->run_params)) {
        cJSON_Delete(c->run_params);
        be->close(c->impl);
        free(c);
        return ts_fail(e, TS_EFORMAT, "chain '%s': run parameters are not a JSON object", url);
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return TS_OK;
}

void chain_close(chain *c) {
    if (!c) return;
    c->be->close(c->impl);
    cJSON_Delete(c->run_params);
    free(c->run_text);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const chain_params *chain_get_params(const chain *c) { return &c->p; }
const struct cJSON *chain_run_params(const chain *c) { return c->run_params; }

bool chain_run_pending(const chain *c) { return c->run_params == NULL; }

int chain_set_run(chain *c, const char *run_id, uint64_t blocks_per_window, const char *params_json,
                  ts_err *e) {
    if (c->run_params) return ts_fail(e, TS_ESTATE, "the chain's run is set already (%s)", c->p.run_id);
    size_t n = run_id ? strlen(run_id) : 0;
    if (n < 1 || n > CHAIN_RUN_ID_MAX || strspn(run_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
        return ts_fail(e, TS_EINVAL, "run id '%s' is not 1..64 bytes of [A-Za-z0-9._-]", run_id ? run_id : "");
    if (blocks_per_window < 1 || blocks_per_window > 1000000)
        return ts_fail(e, TS_EINVAL, "blocks per window %llu is not in 1..1000000", (unsigned long long)blocks_per_window);
    cJSON *o = cJSON_Parse(params_json ? params_json : "");
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return ts_fail(e, TS_EFORMAT, "run parameters are not a JSON object");
    }
    char *t = strdup(params_json);
    if (!t) {
        cJSON_Delete(o);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&c->mu);
    snprintf(c->p.run_id, sizeof c->p.run_id, "%s", run_id);
    c->p.blocks_per_window = blocks_per_window;
    c->p.run_params_json = c->run_text = t;
    c->run_params = o;
    pthread_mutex_unlock(&c->mu);
    return TS_OK;
}

/* ----------------------------------------------------------------- clock */

double chain_clock_time_of(const chain_params *p, uint64_t block) {
    return p->genesis_time + (double)block * p->block_time;
}

uint64_t chain_clock_block_at(const chain_params *p, double t) {
    if (!(t > p->genesis_time) || !(p->block_time > 0)) return 0; /* also NaN */
    double x = floor((t - p->genesis_time) / p->block_time);
    if (!(x < 9.0e18)) return (uint64_t)9.0e18;
    uint64_t b = (uint64_t)x;
    /* The division rounds; settle on the exact floating-point answer so that
     * T(b) <= t < T(b + 1) holds for every caller alike. */
    while (b > 0 && chain_clock_time_of(p, b) > t) b--;
    while (chain_clock_time_of(p, b + 1) <= t) b++;
    return b;
}

#define LOCKED(call)                                                                     \
    do {                                                                                 \
        pthread_mutex_lock(&c->mu);                                                      \
        int rc_ = (call);                                                                \
        pthread_mutex_unlock(&c->mu);                                                    \
        return rc_;                                                                      \
    } while (0)

int chain_block(chain *c, uint64_t *block, double *timestamp, ts_err *e) {
    uint64_t b;
    double t;
    pthread_mutex_lock(&c->mu);
    int rc = c->be->block(c->impl, &b, &t, e);
    pthread_mutex_unlock(&c->mu);
    if (rc) return rc;
    if (block) *block = b;
    if (timestamp) *timestamp = t;
    return TS_OK;
}

int chain_block_time(chain *c, uint64_t block, double *timestamp, ts_err *e) {
    LOCKED(c->be->block_time(c->impl, block, timestamp, e));
}

int chain_window_start_time(chain *c, uint64_t window, double *t, ts_err *e) {
    if (window > UINT64_MAX / c->p.blocks_per_window)
        return ts_fail(e, TS_EINVAL, "window %llu is out of range", (unsigned long long)window);
    return chain_block_time(c, chain_window_start_block(&c->p, window), t, e);
}

int chain_now(chain *c, chain_clock *out, ts_err *e) {
    memset(out, 0, sizeof *out);
    int rc = chain_block(c, &out->block, &out->block_timestamp, e);
    if (rc) return rc;
    out->now = ts_now();
    out->window = chain_window_of(&c->p, out->block);
    out->window_start_block = chain_window_start_block(&c->p, out->window);
    if ((rc = chain_block_time(c, out->window_start_block, &out->window_start_time, e))) return rc;
    if ((rc = chain_window_start_time(c, out->window + 1, &out->next_window_time, e))) return rc;
    out->seconds_left = out->next_window_time - out->now;
    if (out->seconds_left < 0) out->seconds_left = 0;
    return TS_OK;
}

/* ------------------------------------------------------------- metagraph */

int chain_metagraph_get(chain *c, chain_metagraph *mg, ts_err *e) {
    memset(mg, 0, sizeof *mg);
    LOCKED(c->be->metagraph(c->impl, mg, e));
}

int chain_metagraph_at(chain *c, uint64_t block, chain_metagraph *mg, ts_err *e) {
    memset(mg, 0, sizeof *mg);
    if (!c->be->metagraph_at)
        return ts_fail(e, TS_EUNSUPPORTED, "the %s backend cannot read the metagraph at a past block",
                       c->be->scheme);
    LOCKED(c->be->metagraph_at(c->impl, block, mg, e));
}

void chain_metagraph_free(chain_metagraph *mg) {
    if (!mg) return;
    free(mg->neurons);
    memset(mg, 0, sizeof *mg);
}

int chain_uid_of(const chain_metagraph *mg, const uint8_t hotkey[TS_PK_BYTES], uint32_t *uid) {
    for (uint32_t i = 0; i < mg->n; i++)
        if (!memcmp(mg->neurons[i].hotkey, hotkey, TS_PK_BYTES)) {
            if (uid) *uid = mg->neurons[i].uid;
            return TS_OK;
        }
    return TS_ENOTFOUND;
}

int chain_leader(const chain_metagraph *mg, uint32_t *uid) {
    const chain_neuron *best = NULL;
    for (uint32_t i = 0; i < mg->n; i++) {
        const chain_neuron *nr = &mg->neurons[i];
        if (!nr->validator_permit) continue;
        if (!best || nr->stake > best->stake || (nr->stake == best->stake && nr->uid < best->uid))
            best = nr;
    }
    if (!best) return TS_ENOTFOUND;
    if (uid) *uid = best->uid;
    return TS_OK;
}

/* Liveness: acted within the last `liveness` blocks before mg->block (0:
 * liveness off, everyone is live).  Written without the sum, which could
 * overflow for a large liveness. */
static bool neuron_live(const chain_metagraph *mg, const chain_neuron *x, uint64_t liveness) {
    if (liveness == 0) return true;
    if (x->last_active == CHAIN_BLOCK_NONE) return false;
    return x->last_active >= mg->block || mg->block - x->last_active <= liveness;
}

typedef struct {
    uint32_t uid;
    bool live;
    uint64_t stake;
} ranked_entry;

/* < 0 when a ranks before b: live first, then more stake, then lower uid. */
static int ranked_cmp(const void *pa, const void *pb) {
    const ranked_entry *a = pa, *b = pb;
    if (a->live != b->live) return a->live ? -1 : 1;
    if (a->stake != b->stake) return a->stake > b->stake ? -1 : 1;
    return a->uid < b->uid ? -1 : a->uid > b->uid;
}

int chain_validators_ranked(const chain_metagraph *mg, uint64_t liveness_blocks, uint32_t *out,
                            uint32_t cap, uint32_t *n) {
    *n = 0;
    uint32_t m = 0;
    for (uint32_t i = 0; i < mg->n; i++) m += mg->neurons[i].validator_permit;
    if (m == 0) return TS_ENOTFOUND;
    ranked_entry *r = malloc(m * sizeof *r);
    if (!r) return TS_ENOMEM;
    uint32_t k = 0;
    for (uint32_t i = 0; i < mg->n; i++) {
        const chain_neuron *x = &mg->neurons[i];
        if (x->validator_permit)
            r[k++] = (ranked_entry){x->uid, neuron_live(mg, x, liveness_blocks), x->stake};
    }
    qsort(r, m, sizeof *r, ranked_cmp);
    for (k = 0; k < m && k < cap; k++) out[k] = r[k].uid;
    *n = k;
    free(r);
    return TS_OK;
}

int chain_leader_live(const chain_metagraph *mg, uint64_t liveness_blocks, uint32_t *uid) {
    ranked_entry best = {0}, cur;
    bool found = false;
    for (uint32_t i = 0; i < mg->n; i++) {
        const chain_neuron *x = &mg->neurons[i];
        if (!x->validator_permit) continue;
        cur = (ranked_entry){x->uid, neuron_live(mg, x, liveness_blocks), x->stake};
        if (!found || ranked_cmp(&cur, &best) < 0) best = cur;
        found = true;
    }
    if (!found) return TS_ENOTFOUND;
    if (uid) *uid = best.uid;
    return TS_OK;
}

/* ----------------------------------------------------------- commitments */

int chain_commit(chain *c, const ts_keypair *hotkey, const char *data, ts_err *e) {
    if (!data) return ts_fail(e, TS_EINVAL, "commitment is NULL");
    size_t len = strnlen(data, CHAIN_COMMIT_MAX + 1);
    if (len == 0) return ts_fail(e, TS_EINVAL, "commitment is empty");
    if (len > CHAIN_COMMIT_MAX)
        return ts_fail(e, TS_ETOOBIG, "commitment is longer than %d bytes", CHAIN_COMMIT_MAX);
    LOCKED(c->be->commit(c->impl, hotkey, data, len, e));
}

int chain_commitments(chain *c, chain_commitment **out, uint32_t *n, ts_err *e) {
    *out = NULL;
    *n = 0;
    LOCKED(c->be->commitments(c->impl, out, n, e));
}

int chain_commitment_of(chain *c, uint32_t uid, chain_commitment *out, ts_err *e) {
    chain_commitment *all;
    uint32_t n;
    int rc = chain_commitments(c, &all, &n, e);
    if (rc) return rc;
    rc = ts_fail(e, TS_ENOTFOUND, "uid %u has no commitment", uid);
    for (uint32_t i = 0; i < n; i++)
        if (all[i].uid == uid) {
            *out = all[i];
            ts_err_clear(e);
            rc = TS_OK;
        }
    free(all);
    return rc;
}

/* --------------------------------------------------------------- weights */

int chain_weights_quantize(const float *w, uint32_t n, uint16_t *q, ts_err *e) {
    if (n == 0) return ts_fail(e, TS_EINVAL, "no weights given");
    float mx = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!isfinite(w[i]) || w[i] < 0)
            return ts_fail(e, TS_EINVAL, "weight %u is %g: weights must be finite and >= 0", i,
                           (double)w[i]);
        if (w[i] > mx) mx = w[i];
    }
    if (mx == 0) return ts_fail(e, TS_EINVAL, "all weights are 0");
    for (uint32_t i = 0; i < n; i++) {
        /* As Bittensor's SDK: w / max(w) in double, times 65535, rounded
         * half to even (rint in the default rounding mode). */
        double v = rint((double)w[i] / (double)mx * 65535.0);
        q[i] = (uint16_t)(v > 65535 ? 65535 : v < 0 ? 0 : v);
    }
    return TS_OK;
}

static int cmp_weight(const void *a, const void *b) {
    const chain_weight *x = a, *y = b;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

int chain_set_weights(chain *c, const ts_keypair *hotkey, const uint32_t *uids,
                      const float *weights, uint32_t n, ts_err *e) {
    if (n == 0) return ts_fail(e, TS_EINVAL, "no weights given");
    if (n > c->p.max_uids)
        return ts_fail(e, TS_EINVAL, "%u weights given; the subnet has at most %u uids", n,
                       c->p.max_uids);
    uint16_t *q = malloc(n * sizeof *q);
    chain_weight *w = malloc(n * sizeof *w);
    if (!q || !w) {
        free(q);
        free(w);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    int rc = chain_weights_quantize(weights, n, q, e);
    uint32_t m = 0;
    for (uint32_t i = 0; rc == TS_OK && i < n; i++)
        if (q[i]) w[m++] = (chain_weight){uids[i], q[i]};
    if (rc == TS_OK) {
        qsort(w, m, sizeof *w, cmp_weight);
        for (uint32_t i = 1; i < m; i++)
            if (w[i].uid == w[i - 1].uid) {
                rc = ts_fail(e, TS_EINVAL, "uid %u is given twice", w[i].uid);
                break;
            }
    }
    if (rc == TS_OK) {
        pthread_mutex_lock(&c->mu);
        rc = c->be->set_weights(c->impl, hotkey, w, m, e);
        pthread_mutex_unlock(&c->mu);
    }
    free(q);
    free(w);
    return rc;
}

int chain_weights(chain *c, chain_weight_row **rows, uint32_t *n, ts_err *e) {
    *rows = NULL;
    *n = 0;
    LOCKED(c->be->weights(c->impl, rows, n, e));
}

/* ------------------------------------------------------ operator actions */

int chain_register(chain *c, const ts_keypair *hotkey, chain_registration *out, ts_err *e) {
    chain_registration tmp;
    if (!out) out = &tmp;
    memset(out, 0, sizeof *out);
    LOCKED(c->be->reg(c->impl, hotkey, out, e));
}

int chain_stake(chain *c, const ts_keypair *owner, const uint8_t hotkey[TS_PK_BYTES],
                int64_t delta_rao, ts_err *e) {
    if (delta_rao == 0) return ts_fail(e, TS_EINVAL, "stake change of 0");
    LOCKED(c->be->stake(c->impl, owner, hotkey, delta_rao, e));
}

int chain_register_burned(chain *c, const ts_keypair *coldkey, const uint8_t hotkey[TS_PK_BYTES],
                          chain_registration *out, ts_err *e) {
    chain_registration tmp;
    if (!out) out = &tmp;
    memset(out, 0, sizeof *out);
    if (!c->be->reg_burned)
        return ts_fail(e, TS_EUNSUPPORTED,
                       "the %s chain has no burned registration (local subnet: tessera localnet register)",
                       c->be->scheme);
    LOCKED(c->be->reg_burned(c->impl, coldkey, hotkey, out, e));
}

int chain_reveal_pending(chain *c, const ts_keypair *hotkey, uint32_t *revealed, uint32_t *pending,
                         ts_err *e) {
    uint32_t r0, p0;
    if (!revealed) revealed = &r0;
    if (!pending) pending = &p0;
    *revealed = *pending = 0;
    if (!c->be->reveal_pending) return TS_OK;
    LOCKED(c->be->reveal_pending(c->impl, hotkey, revealed, pending, e));
}

int chain_encode_call(chain *c, const char *pallet, const char *call, const char *args_json, char **hex,
                      ts_err *e) {
    *hex = NULL;
    if (!c->be->encode_call)
        return ts_fail(e, TS_EUNSUPPORTED, "the %s chain has no runtime calls to encode", c->be->scheme);
    LOCKED(c->be->encode_call(c->impl, pallet, call, args_json, hex, e));
}

int chain_get_info(chain *c, chain_info *out, ts_err *e) {
    memset(out, 0, sizeof *out);
    snprintf(out->backend, sizeof out->backend, "%s", c->be->scheme);
    if (!c->be->info) return TS_OK;
    LOCKED(c->be->info(c->impl, out, e));
}

/* ----------------------------------------------------------------- epochs */

uint64_t chain_epoch_blocks_until(uint32_t netuid, uint64_t tempo, uint64_t block) {
    /* subtensor spec 143, block_step.rs blocks_until_next_epoch:
     *   tempo - (block_number + netuid + 1) % (tempo + 1); tempo 0 never runs */
    if (tempo == 0 || tempo == UINT64_MAX) return UINT64_MAX;
    uint64_t t1 = tempo + 1;
    return tempo - ((block % t1) + ((uint64_t)netuid + 1) % t1) % t1;
}

int chain_epoch_last(chain *c, chain_epoch *out, ts_err *e) {
    memset(out, 0, sizeof *out);
    if (!c->be->epoch_last)
        return ts_fail(e, TS_EUNSUPPORTED, "the %s backend has no epochs", c->be->scheme);
    LOCKED(c->be->epoch_last(c->impl, out, e));
}

void chain_epoch_free(chain_epoch *ep) {
    if (!ep) return;
    free(ep->uids);
    memset(ep, 0, sizeof *ep);
}

int chain_get_stats(chain *c, chain_stats *out, ts_err *e) {
    memset(out, 0, sizeof *out);
    LOCKED(c->be->stats(c->impl, out, e));
}

uint32_t chain_rejections(chain *c, chain_rejection *out, uint32_t max) {
    pthread_mutex_lock(&c->mu);
    uint32_t n = c->be->rejections(c->impl, out, max);
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ----------------------------------------------------------------- units */

int chain_parse_tao(const char *s, int64_t *rao) {
    if (!s || !*s) return TS_EINVAL;
    bool neg = false;
    if (*s == '+' || *s == '-') neg = *s++ == '-';
    uint64_t whole = 0, frac = 0;
    int nd = 0, nf = 0;
    for (; *s >= '0' && *s <= '9'; s++, nd++) {
        if (whole > (UINT64_MAX - 9) / 10) return TS_EINVAL;
        whole = whole * 10 + (uint64_t)(*s - '0');
    }
    if (*s == '.') {
        s++;
        for (; *s >= '0' && *s <= '9'; s++, nf++) {
            if (nf >= 9) return TS_EINVAL;
            frac = frac * 10 + (uint64_t)(*s - '0');
        }
        if (nf == 0) return TS_EINVAL;
    }
    if (*s || nd == 0) return TS_EINVAL;
    for (int i = nf; i < 9; i++) frac *= 10;
    if (whole > (uint64_t)INT64_MAX / CHAIN_RAO_PER_TAO) return TS_EINVAL;
    uint64_t v = whole * CHAIN_RAO_PER_TAO + frac;
    if (v > (uint64_t)INT64_MAX) return TS_EINVAL;
    *rao = neg ? -(int64_t)v : (int64_t)v;
    return TS_OK;
}

void chain_fmt_tao(char *out, size_t cap, uint64_t rao, int decimals) {
    char frac[16];
    snprintf(frac, sizeof frac, "%09llu", (unsigned long long)(rao % CHAIN_RAO_PER_TAO));
    int keep = 9;
    if (decimals < 0) decimals = 0;
    while (keep > decimals && frac[keep - 1] == '0') keep--;
    frac[keep] = 0;
    snprintf(out, cap, "%llu%s%s", (unsigned long long)(rao / CHAIN_RAO_PER_TAO), keep ? "." : "",
             frac);
}
