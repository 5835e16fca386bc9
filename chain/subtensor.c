/*
 * subtensor.c - the chain interface on Bittensor's chain (subtensor), over a
 * node's JSON-RPC (chain/rpc.h), with every pallet, call, storage item and
 * type looked up by name in the runtime's metadata (chain/metadata.h).
 *
 * URL:  subtensor:http://HOST:PORT?netuid=N[&run=ID&params=FILE&bpw=B][&timeout=S&retries=R]
 *       (https://, ws:// and wss:// as well; rpc.h maps WebSocket URLs onto
 *       HTTP on the same port, which substrate nodes serve).
 *
 * What each call reads or writes (docs/CHAIN.md section 4 has the whole map):
 *   clock        chain_getHeader (best head), chain_getBlockHash +
 *                Timestamp.Now at that block
 *   metagraph    SubtensorModule storage: SubnetworkN, Keys, stake
 *                (TotalHotkeyAlpha or TotalHotkeyStake, whichever the runtime
 *                has), ValidatorPermit, BlockAtRegistration, LastUpdate; the
 *                past metagraph (chain_metagraph_at) is the same reads at the
 *                hash of block b - 1, once that block is finalized
 *   commitments  Commitments.CommitmentOf(netuid, hotkey), Raw fields joined
 *   weights      SubtensorModule.Weights(netuid, uid) of permit holders
 *   epochs       what the last epoch stored: Rank, Trust, Consensus,
 *                Incentive, Dividends, ValidatorTrust, Emission, Active,
 *                ValidatorPermit (vectors by uid), Tempo and
 *                LastMechansimStepBlock (or BlocksSinceLastStep), all at
 *                the best head; an item the runtime lacks is named in
 *                chain_epoch.missing and left 0
 *   writes       signed extrinsics (chain/extrinsic.h): set_weights, or
 *                commit_weights then reveal_weights where the subnet has
 *                commit-reveal on; Commitments.set_commitment;
 *                burned_register (coldkey)
 *
 * Invariant: a write is done only when the chain says so.  After
 * author_submitExtrinsic the backend follows new blocks (a bounded number)
 * until it finds the extrinsic, reads that block's events and reports the
 * dispatch error by name (SubtensorModule.SettingWeightsTooFast, ...) when it
 * failed; then it reads back the storage the call changed.  A node that times
 * out or answers garbage gives TS_ENET / TS_ETIMEOUT / TS_EFORMAT, never a
 * crash, and the caller (a miner or validator) retries in a later window.
 *
 * Run parameters: a subtensor subnet has no genesis of Tessera's.  The run
 * id, the blocks per window and the run parameters come from the URL (a
 * private run: run=, bpw=, params=FILE); otherwise the run stays pending
 * (chain_run_pending) until node_run_fetch (node/runpub.c) has read and
 * checked the description the subnet owner published (docs/CHAIN.md 4.2).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "chain_internal.h"
#include "common/sr25519.h"
#include "extrinsic.h"
#include "metadata.h"
#include "rpc.h"
#include "scale.h"

#define ST_PALLET "SubtensorModule"
#define ST_COMMITMENTS "Commitments"
#define ST_ERA_PERIOD 64          /* blocks a signed extrinsic stays valid */
#define ST_CONFIRM_BLOCKS 24      /* blocks to wait for an extrinsic's inclusion */
#define ST_CONFIRM_SECONDS 120.0  /* ... and at most this long */
#define ST_MAX_PENDING 64         /* weight commits waiting for their reveal */

typedef struct pending_reveal {
    uint8_t hotkey[TS_PK_BYTES];
    uint64_t commit_block;
    uint32_t n;
    uint16_t uids[CHAIN_MAX_UIDS];
    uint16_t values[CHAIN_MAX_UIDS];
    uint16_t salt[8];
    uint64_t version_key;
} pending_reveal;

typedef struct st {
    rpc_client *rpc;
    char node[256];               /* host:port, for messages */
    uint16_t netuid;
    md_metadata *md;
    uint32_t spec_version, tx_version;
    uint8_t genesis[32];
    char chain_name[64];
    char run_id[CHAIN_RUN_ID_MAX + 1];
    char *run_params;             /* JSON text */
    const char *stake_item;       /* "TotalHotkeyAlpha" or "TotalHotkeyStake" */
    bool stake_by_netuid;         /* its keys are (hotkey, netuid) */
    double block_time;            /* measured from recent blocks (12 s nominal) */
    uint64_t min_stake;           /* StakeThreshold / WeightsMinStake (rao) */
    char *pending_path;           /* pending reveals of this machine */
    pending_reveal *pending;
    uint32_t npending;
} st;

/* ------------------------------------------------------------- helpers */

static int json_u64(const cJSON *v, uint64_t *out) {
    if (cJSON_IsNumber(v)) {
        if (!(v->valuedouble >= 0) || v->valuedouble > 9007199254740991.0 ||
            v->valuedouble != floor(v->valuedouble))
            return -1;
        *out = (uint64_t)v->valuedouble;
        return 0;
    }
    if (cJSON_IsString(v)) {
        uint8_t le[8];
        if (scale_dec_to_le(v->valuestring, le, 8, false)) return -1;
        uint64_t x = 0;
        for (int i = 7; i >= 0; i--) x = x << 8 | le[i];
        *out = x;
        return 0;
    }
    return -1;
}

static int json_hex32(const cJSON *v, uint8_t out[32]) {
    if (!cJSON_IsString(v) || strlen(v->valuestring) != 66) return -1;
    return ts_unhex(out, 32, v->valuestring) ? -1 : 0;
}

static int hex_block_number(const cJSON *v, uint64_t *out) {
    if (cJSON_IsNumber(v)) return json_u64(v, out);
    if (!cJSON_IsString(v) || strncmp(v->valuestring, "0x", 2)) return -1;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(v->valuestring + 2, &end, 16);
    if (errno || *end || end == v->valuestring + 2) return -1;
    *out = x;
    return 0;
}

static int bad_answer(st *s, ts_err *e, const char *what) {
    return ts_fail(e, TS_EFORMAT, "subtensor %s: unexpected answer to %s", s->node, what);
}

/* The hash of block `b` ("0x..." into hash), TS_ENOTFOUND past the head. */
static int block_hash(st *s, uint64_t b, char hash[67], ts_err *e) {
    char params[48];
    snprintf(params, sizeof params, "[%llu]", (unsigned long long)b);
    cJSON *r = NULL;
    int rc = rpc_call(s->rpc, "chain_getBlockHash", params, &r, e);
    if (rc) return rc;
    if (cJSON_IsNull(r)) rc = ts_fail(e, TS_ENOTFOUND, "subtensor %s: no block %llu yet", s->node, (unsigned long long)b);
    else if (!cJSON_IsString(r) || strlen(r->valuestring) != 66) rc = bad_answer(s, e, "chain_getBlockHash");
    else memcpy(hash, r->valuestring, 67);
    cJSON_Delete(r);
    return rc;
}

/* The best head's number (and hash, when hash is not NULL). */
static int head(st *s, const char *method, uint64_t *number, char hash[67], ts_err *e) {
    cJSON *r = NULL;
    int rc;
    if (!strcmp(method, "chain_getFinalizedHead")) {
        if ((rc = rpc_call(s->rpc, method, NULL, &r, e))) return rc;
        if (!cJSON_IsString(r) || strlen(r->valuestring) != 66) {
            cJSON_Delete(r);
            return bad_answer(s, e, method);
        }
        char params[80];
        snprintf(params, sizeof params, "[\"%s\"]", r->valuestring);
        if (hash) memcpy(hash, r->valuestring, 67);
        cJSON_Delete(r);
        r = NULL;
        if ((rc = rpc_call(s->rpc, "chain_getHeader", params, &r, e))) return rc;
    } else if ((rc = rpc_call(s->rpc, "chain_getHeader", NULL, &r, e))) {
        return rc;
    }
    if (!cJSON_IsObject(r) || hex_block_number(cJSON_GetObjectItemCaseSensitive(r, "number"), number))
        rc = bad_answer(s, e, "chain_getHeader");
    cJSON_Delete(r);
    if (!rc && hash && strcmp(method, "chain_getFinalizedHead")) rc = block_hash(s, *number, hash, e);
    return rc;
}

/* One storage value as JSON (the item's default when absent).  keys: a JSON
 * array text or NULL; at: a block hash or NULL for the best head. */
static int storage_get(st *s, const char *pallet, const char *item, const cJSON *keys, const char *at,
                       cJSON **out, ts_err *e) {
    *out = NULL;
    const md_pallet *p;
    const md_storage_entry *se;
    int rc = md_storage_find(s->md, pallet, item, &p, &se, e);
    if (rc) return rc;
    scale_writer w = SCALE_WRITER_INIT;
    if ((rc = md_storage_key(s->md, pallet, item, keys, &w, e))) {
        scale_writer_free(&w);
        return rc;
    }
    char *key = scale_hex(w.p, w.len);
    scale_writer_free(&w);
    if (!key) return ts_fail(e, TS_ENOMEM, "out of memory");
    size_t pl = strlen(key) + 100;
    char *params = malloc(pl);
    if (!params) {
        free(key);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    if (at) snprintf(params, pl, "[\"%s\", \"%s\"]", key, at);
    else snprintf(params, pl, "[\"%s\"]", key);
    free(key);
    uint8_t *val = NULL;
    size_t len = 0;
    rc = rpc_call_hex(s->rpc, "state_getStorage", params, &val, &len, e);
    free(params);
    bool present = rc == TS_OK;
    if (rc && rc != TS_ENOTFOUND) return rc;
    rc = md_storage_decode(s->md, se, val, len, present, out, e);
    free(val);
    if (rc) ts_wrap(e, "%s.%s", pallet, item);
    return rc;
}

/* Many values of one map at once (state_queryStorageAt): out[i] for
 * keys[i] (a JSON array of key arrays). */
static int storage_multi(st *s, const char *pallet, const char *item, const cJSON *keyss, const char *at,
                         cJSON ***out, ts_err *e) {
    *out = NULL;
    const md_pallet *p;
    const md_storage_entry *se;
    int rc = md_storage_find(s->md, pallet, item, &p, &se, e);
    if (rc) return rc;
    int n = cJSON_GetArraySize(keyss);
    cJSON **vals = calloc((size_t)n + 1, sizeof *vals);
    char **hex = calloc((size_t)n + 1, sizeof *hex);
    cJSON *params = cJSON_CreateArray(), *karr = cJSON_CreateArray();
    if (!vals || !hex || !params || !karr) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto out;
    }
    cJSON_AddItemToArray(params, karr);
    for (int i = 0; i < n; i++) {
        scale_writer w = SCALE_WRITER_INIT;
        if ((rc = md_storage_key(s->md, pallet, item, cJSON_GetArrayItem(keyss, i), &w, e))) {
            scale_writer_free(&w);
            goto out;
        }
        hex[i] = scale_hex(w.p, w.len);
        scale_writer_free(&w);
        if (!hex[i]) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            goto out;
        }
        cJSON_AddItemToArray(karr, cJSON_CreateString(hex[i]));
    }
    if (at) cJSON_AddItemToArray(params, cJSON_CreateString(at));
    cJSON *r = NULL;
    if (n > 0 && (rc = rpc_call_json(s->rpc, "state_queryStorageAt", params, &r, e))) goto out;
    /* [{"block": H, "changes": [[key, value or null], ...]}] */
    const cJSON *set = cJSON_GetArrayItem(r, 0);
    const cJSON *changes = cJSON_GetObjectItemCaseSensitive(set, "changes");
    if (n > 0 && !cJSON_IsArray(changes)) {
        cJSON_Delete(r);
        rc = bad_answer(s, e, "state_queryStorageAt");
        goto out;
    }
    for (int i = 0; i < n && !rc; i++) {
        const cJSON *found = NULL;
        const cJSON *ch;
        cJSON_ArrayForEach(ch, changes) {
            const cJSON *k = cJSON_GetArrayItem(ch, 0);
            if (cJSON_IsString(k) && !strcasecmp(k->valuestring, hex[i])) found = cJSON_GetArrayItem(ch, 1);
        }
        uint8_t *val = NULL;
        size_t len = 0;
        bool present = found && cJSON_IsString(found);
        if (present && scale_unhex(found->valuestring, &val, &len)) {
            rc = bad_answer(s, e, "state_queryStorageAt");
            break;
        }
        rc = md_storage_decode(s->md, se, val, len, present, &vals[i], e);
        free(val);
        if (rc) ts_wrap(e, "%s.%s", pallet, item);
    }
    cJSON_Delete(r);
out:
    cJSON_Delete(params);
    if (hex)
        for (int i = 0; i < n; i++) free(hex[i]);
    free(hex);
    if (rc && vals) {
        for (int i = 0; i < n; i++) cJSON_Delete(vals[i]);
        free(vals);
        vals = NULL;
    }
    *out = vals;
    return rc;
}

static void free_vals(cJSON **v, int n) {
    if (!v) return;
    for (int i = 0; i < n; i++) cJSON_Delete(v[i]);
    free(v);
}

static cJSON *keys1(uint64_t a) {
    cJSON *k = cJSON_CreateArray();
    cJSON_AddItemToArray(k, cJSON_CreateNumber((double)a));
    return k;
}

static cJSON *keys2n(uint64_t a, uint64_t b) {
    cJSON *k = keys1(a);
    cJSON_AddItemToArray(k, cJSON_CreateNumber((double)b));
    return k;
}

static cJSON *key_hex(const uint8_t pk[32]) {
    char h[67] = "0x";
    ts_hex(h + 2, pk, 32);
    return cJSON_CreateString(h);
}

/* A netuid-keyed value as u64. */
static int hyper_u64(st *s, const char *item, uint64_t *v, ts_err *e) {
    cJSON *k = keys1(s->netuid), *r = NULL;
    int rc = storage_get(s, ST_PALLET, item, k, NULL, &r, e);
    cJSON_Delete(k);
    if (!rc && json_u64(r, v)) rc = ts_fail(e, TS_EFORMAT, "%s.%s: not an integer", ST_PALLET, item);
    cJSON_Delete(r);
    return rc;
}

static int hyper_bool(st *s, const char *item, bool *v, ts_err *e) {
    cJSON *k = keys1(s->netuid), *r = NULL;
    int rc = storage_get(s, ST_PALLET, item, k, NULL, &r, e);
    cJSON_Delete(k);
    if (!rc && !cJSON_IsBool(r)) rc = ts_fail(e, TS_EFORMAT, "%s.%s: not a bool", ST_PALLET, item);
    if (!rc) *v = cJSON_IsTrue(r);
    cJSON_Delete(r);
    return rc;
}

/* ----------------------------------------------------------------- time */

static int timestamp_at(st *s, const char *hash, double *t, ts_err *e) {
    cJSON *r = NULL;
    int rc = storage_get(s, "Timestamp", "Now", NULL, hash, &r, e);
    uint64_t ms;
    if (!rc && json_u64(r, &ms)) rc = bad_answer(s, e, "Timestamp.Now");
    if (!rc) *t = (double)ms / 1000.0;
    cJSON_Delete(r);
    return rc;
}

static int st_block(void *impl, uint64_t *block, double *timestamp, ts_err *e) {
    st *s = impl;
    char h[67];
    int rc = head(s, "chain_getHeader", block, h, e);
    if (!rc) rc = timestamp_at(s, h, timestamp, e);
    return rc;
}

static int st_block_time(void *impl, uint64_t block, double *timestamp, ts_err *e) {
    st *s = impl;
    uint64_t cur;
    char h[67];
    int rc = head(s, "chain_getHeader", &cur, h, e);
    if (rc) return rc;
    double tcur;
    if ((rc = timestamp_at(s, h, &tcur, e))) return rc;
    if (block >= cur) {
        /* a future block: projected from the measured block time */
        *timestamp = tcur + (double)(block - cur) * s->block_time;
        return TS_OK;
    }
    if ((rc = block_hash(s, block, h, e))) return rc;
    return timestamp_at(s, h, timestamp, e);
}

/* The mean block time over the last (up to) 20 blocks; the nominal 12 s when
 * the chain is too young or its timestamps do not move. */
static void measure_block_time(st *s) {
    ts_err e = {0};
    uint64_t cur;
    char h[67];
    double t1, t0;
    s->block_time = 12.0;
    if (head(s, "chain_getHeader", &cur, h, &e) || cur < 2 || timestamp_at(s, h, &t1, &e)) return;
    uint64_t back = cur > 20 ? 20 : cur - 1;
    if (block_hash(s, cur - back, h, &e) || timestamp_at(s, h, &t0, &e)) return;
    if (t1 > t0) s->block_time = (t1 - t0) / (double)back;
}

/* ------------------------------------------------------------ metagraph */

/* The metagraph at block hash `at`.  cm_out (optional) receives the
 * CommitmentOf values it read, one per uid (free_vals(.., mg->n)), so that
 * st_commitments does not read them a second time. */
static int metagraph_read(st *s, const char *at, chain_metagraph *mg, cJSON ***cm_out, ts_err *e) {
    cJSON *k = keys1(s->netuid), *r = NULL;
    cJSON **hot = NULL, **stake = NULL, **reg = NULL, **cm = NULL, **own = NULL;
    cJSON *permits = NULL, *last = NULL, *kk = NULL;
    uint64_t n = 0, maxu = 0;
    int rc = storage_get(s, ST_PALLET, "SubnetworkN", k, at, &r, e);
    if (!rc && json_u64(r, &n)) rc = bad_answer(s, e, "SubnetworkN");
    cJSON_Delete(r);
    r = NULL;
    if (!rc) rc = storage_get(s, ST_PALLET, "MaxAllowedUids", k, at, &r, e);
    if (!rc && json_u64(r, &maxu)) rc = bad_answer(s, e, "MaxAllowedUids");
    cJSON_Delete(r);
    if (!rc && n > CHAIN_MAX_UIDS) rc = ts_fail(e, TS_EFORMAT, "subnet %u has %llu uids (at most %u supported)", s->netuid, (unsigned long long)n, CHAIN_MAX_UIDS);
    if (!rc) rc = storage_get(s, ST_PALLET, "ValidatorPermit", k, at, &permits, e);
    if (!rc) rc = storage_get(s, ST_PALLET, "LastUpdate", k, at, &last, e);
    cJSON_Delete(k);
    if (rc) goto out;
    kk = cJSON_CreateArray();
    for (uint64_t u = 0; u < n; u++) cJSON_AddItemToArray(kk, keys2n(s->netuid, u));
    if ((rc = storage_multi(s, ST_PALLET, "Keys", kk, at, &hot, e))) goto out;
    if ((rc = storage_multi(s, ST_PALLET, "BlockAtRegistration", kk, at, &reg, e))) goto out;
    cJSON_Delete(kk);
    kk = cJSON_CreateArray();
    cJSON *ck = cJSON_CreateArray(), *ok = cJSON_CreateArray();
    for (uint64_t u = 0; u < n; u++) {
        cJSON *a = cJSON_CreateArray(), *b = cJSON_CreateArray(), *o = cJSON_CreateArray();
        cJSON_AddItemToArray(o, cJSON_Duplicate(hot[u], 1));
        cJSON_AddItemToArray(ok, o);
        if (s->stake_by_netuid) {
            cJSON_AddItemToArray(a, cJSON_Duplicate(hot[u], 1));
            cJSON_AddItemToArray(a, cJSON_CreateNumber(s->netuid));
        } else {
            cJSON_AddItemToArray(a, cJSON_Duplicate(hot[u], 1));
        }
        cJSON_AddItemToArray(b, cJSON_CreateNumber(s->netuid));
        cJSON_AddItemToArray(b, cJSON_Duplicate(hot[u], 1));
        cJSON_AddItemToArray(kk, a);
        cJSON_AddItemToArray(ck, b);
    }
    rc = storage_multi(s, ST_PALLET, s->stake_item, kk, at, &stake, e);
    if (!rc) rc = storage_multi(s, ST_COMMITMENTS, "CommitmentOf", ck, at, &cm, e);
    if (!rc) rc = storage_multi(s, ST_PALLET, "Owner", ok, at, &own, e);
    cJSON_Delete(ck);
    cJSON_Delete(ok);
    if (rc) goto out;
    mg->n = (uint32_t)n;
    mg->max_uids = (uint32_t)(maxu ? maxu : n);
    mg->neurons = calloc(n ? n : 1, sizeof *mg->neurons);
    if (!mg->neurons) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto out;
    }
    for (uint64_t u = 0; u < n && !rc; u++) {
        chain_neuron *x = &mg->neurons[u];
        x->uid = (uint32_t)u;
        uint64_t v;
        if (json_hex32(hot[u], x->hotkey)) rc = bad_answer(s, e, "Keys");
        else if (json_u64(stake[u], &x->stake)) rc = bad_answer(s, e, s->stake_item);
        else if (json_u64(reg[u], &x->registered_block)) rc = bad_answer(s, e, "BlockAtRegistration");
        else if (json_hex32(own[u], x->coldkey)) rc = bad_answer(s, e, "Owner");
        /* A validator, as on the local subnet: the chain's permit and stake
         * above the subnet's threshold (any stake when it is 0).  Subtensor
         * hands permits to the top MaxAllowedValidators uids by stake, so on
         * a subnet with fewer uids every miner holds one too (and runtimes
         * whose epoch is a mock give every uid one): a permit with no stake
         * is not a validator Tessera can follow. */
        x->validator_permit = cJSON_IsTrue(cJSON_GetArrayItem(permits, (int)u)) && x->stake > s->min_stake;
        x->last_active = CHAIN_BLOCK_NONE;
        /* subtensor stamps LastUpdate at registration too; only a later
         * block is a sign of life (weights set) */
        if (!json_u64(cJSON_GetArrayItem(last, (int)u), &v) && v > 0 && v > x->registered_block)
            x->last_active = v;
        const cJSON *cb = cJSON_GetObjectItemCaseSensitive(cm[u], "block");
        if (cJSON_IsObject(cm[u]) && !json_u64(cb, &v) && v >= x->registered_block &&
            (x->last_active == CHAIN_BLOCK_NONE || v > x->last_active))
            x->last_active = v;
    }
out:
    cJSON_Delete(kk);
    cJSON_Delete(permits);
    cJSON_Delete(last);
    free_vals(hot, (int)n);
    free_vals(stake, (int)n);
    free_vals(reg, (int)n);
    if (!rc && cm_out) *cm_out = cm;
    else free_vals(cm, (int)n);
    free_vals(own, (int)n);
    if (rc) chain_metagraph_free(mg);
    return rc;
}

static int st_metagraph(void *impl, chain_metagraph *mg, ts_err *e) {
    st *s = impl;
    char h[67];
    uint64_t b;
    int rc = head(s, "chain_getHeader", &b, h, e);
    if (!rc) rc = metagraph_read(s, h, mg, NULL, e);
    if (!rc) mg->block = b;
    return rc;
}

/* The metagraph at the start of `block`: the state after block - 1, once it
 * is final (so every node that asks gets the same answer). */
static int st_metagraph_at(void *impl, uint64_t block, chain_metagraph *mg, ts_err *e) {
    st *s = impl;
    uint64_t fin;
    char h[67];
    int rc = head(s, "chain_getFinalizedHead", &fin, h, e);
    if (rc) return rc;
    if (block == 0 || block - 1 > fin)
        return ts_fail(e, TS_ESTATE, "block %llu is not final yet (finalized: %llu)", (unsigned long long)block,
                       (unsigned long long)fin);
    if ((rc = block_hash(s, block - 1, h, e))) return rc;
    if (!(rc = metagraph_read(s, h, mg, NULL, e))) mg->block = block;
    return rc;
}

/* --------------------------------------------------------- commitments */

/* The bytes of a CommitmentInfo's Raw fields, joined in order. */
static int commitment_bytes(const cJSON *reg, char *out, uint32_t *len) {
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(reg, "info");
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(info, "fields");
    if (!cJSON_IsArray(fields)) return -1;
    uint32_t n = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, fields) {
        const cJSON *v = f->child;
        if (!cJSON_IsObject(f) || !v || strncmp(v->string, "Raw", 3)) continue; /* None, hashes */
        uint8_t *b = NULL;
        size_t bl = 0;
        if (!cJSON_IsString(v) || scale_unhex(v->valuestring, &b, &bl)) return -1;
        if (n + bl > CHAIN_COMMIT_MAX) {
            free(b);
            return -1;
        }
        memcpy(out + n, b, bl);
        n += (uint32_t)bl;
        free(b);
    }
    out[n] = 0;
    if (memchr(out, 0, n)) return -1;
    *len = n;
    return n ? 0 : -1;
}

static int st_commitments(void *impl, chain_commitment **out, uint32_t *nout, ts_err *e) {
    st *s = impl;
    *out = NULL;
    *nout = 0;
    chain_metagraph mg = {0};
    cJSON **cm = NULL;
    char h[67];
    uint64_t blk;
    /* the metagraph's read brings every uid's CommitmentOf, at the same block */
    int rc = head(s, "chain_getHeader", &blk, h, e);
    if (!rc) rc = metagraph_read(s, h, &mg, &cm, e);
    if (rc) return rc;
    chain_commitment *res = NULL;
    uint32_t n = 0;
    if (!rc && mg.n && !(res = calloc(mg.n, sizeof *res))) rc = ts_fail(e, TS_ENOMEM, "out of memory");
    for (uint32_t u = 0; u < mg.n && !rc; u++) {
        if (!cJSON_IsObject(cm[u])) continue;
        chain_commitment *c = &res[n];
        uint64_t b = 0;
        json_u64(cJSON_GetObjectItemCaseSensitive(cm[u], "block"), &b);
        if (b < mg.neurons[u].registered_block) continue; /* left by the uid's previous holder */
        if (commitment_bytes(cm[u], c->data, &c->len)) {
            TS_WARN("subtensor: uid %u: commitment is not text Tessera can read; ignored", u);
            continue;
        }
        c->uid = u;
        memcpy(c->hotkey, mg.neurons[u].hotkey, TS_PK_BYTES);
        c->block = b;
        n++;
    }
    free_vals(cm, (int)mg.n);
    chain_metagraph_free(&mg);
    if (rc || !n) {
        free(res);
        res = NULL;
    }
    *out = res;
    *nout = rc ? 0 : n;
    return rc;
}

/* ------------------------------------------------------------- weights */

static int st_weights(void *impl, chain_weight_row **rows, uint32_t *nrows, ts_err *e) {
    st *s = impl;
    *rows = NULL;
    *nrows = 0;
    chain_metagraph mg = {0};
    int rc = st_metagraph(s, &mg, e);
    if (rc) return rc;
    cJSON *kk = cJSON_CreateArray(), *last = NULL, *k = keys1(s->netuid);
    for (uint32_t u = 0; u < mg.n; u++) cJSON_AddItemToArray(kk, keys2n(s->netuid, u));
    cJSON **w = NULL;
    rc = storage_multi(s, ST_PALLET, "Weights", kk, NULL, &w, e);
    if (!rc) rc = storage_get(s, ST_PALLET, "LastUpdate", k, NULL, &last, e);
    cJSON_Delete(kk);
    cJSON_Delete(k);
    /* one allocation: the rows, then every entry */
    size_t total = 0;
    for (uint32_t u = 0; u < mg.n && !rc; u++) total += (size_t)cJSON_GetArraySize(w[u]);
    chain_weight_row *res = NULL;
    if (!rc && total) {
        res = calloc(1, mg.n * sizeof *res + total * sizeof(chain_weight));
        if (!res) rc = ts_fail(e, TS_ENOMEM, "out of memory");
    }
    chain_weight *pool = res ? (chain_weight *)(res + mg.n) : NULL;
    uint32_t n = 0;
    for (uint32_t u = 0; u < mg.n && !rc && res; u++) {
        int m = cJSON_GetArraySize(w[u]);
        if (!m) continue;
        chain_weight_row *row = &res[n];
        row->uid = u;
        memcpy(row->hotkey, mg.neurons[u].hotkey, TS_PK_BYTES);
        json_u64(cJSON_GetArrayItem(last, (int)u), &row->block);
        row->w = pool;
        for (int i = 0; i < m; i++) {
            const cJSON *pair = cJSON_GetArrayItem(w[u], i);
            uint64_t dst, val;
            if (json_u64(cJSON_GetArrayItem(pair, 0), &dst) || json_u64(cJSON_GetArrayItem(pair, 1), &val) ||
                val > 65535) {
                rc = bad_answer(s, e, "Weights");
                break;
            }
            /* an entry aimed at a uid registered after these weights were
             * set belongs to that uid's previous holder (the local subnet
             * drops such entries; so do we) */
            if (dst >= mg.n || !val || mg.neurons[dst].registered_block > row->block) continue;
            pool[row->n].uid = (uint32_t)dst;
            pool[row->n].weight = (uint16_t)val;
            row->n++;
        }
        pool += row->n;
        if (row->n) n++;
    }
    free_vals(w, (int)mg.n);
    cJSON_Delete(last);
    chain_metagraph_free(&mg);
    if (rc || !n) {
        free(res);
        res = NULL;
        n = 0;
    }
    *rows = res;
    *nrows = n;
    return rc;
}

/* --------------------------------------------------------------- epochs */

/* Appends `item` to the epoch's list of storage the runtime lacks. */
static void epoch_missing(chain_epoch *out, const char *item) {
    size_t l = strlen(out->missing);
    snprintf(out->missing + l, sizeof out->missing - l, "%s%s", l ? ", " : "", item);
}

/* A netuid-keyed value at block hash h: the decoded JSON (NULL and
 * TS_ENOTFOUND, with the item noted as missing, when the runtime lacks it). */
static int epoch_item(st *s, const char *item, const char *h, chain_epoch *out, cJSON **v, ts_err *e) {
    *v = NULL;
    if (md_storage_find(s->md, ST_PALLET, item, NULL, NULL, NULL) != TS_OK) {
        epoch_missing(out, item);
        return TS_ENOTFOUND;
    }
    cJSON *k = keys1(s->netuid);
    int rc = storage_get(s, ST_PALLET, item, k, h, v, e);
    cJSON_Delete(k);
    return rc;
}

static int st_epoch_last(void *impl, chain_epoch *out, ts_err *e) {
    st *s = impl;
    char h[67];
    uint64_t headb, n = 0, v;
    cJSON *r = NULL, **hot = NULL;
    int rc = head(s, "chain_getHeader", &headb, h, e);
    if (rc) return rc;
    /* everything at one block, so that the values belong together */
    if ((rc = epoch_item(s, "SubnetworkN", h, out, &r, e))) return rc;
    if (json_u64(r, &n)) rc = bad_answer(s, e, "SubnetworkN");
    cJSON_Delete(r);
    if (!rc && n > CHAIN_MAX_UIDS)
        rc = ts_fail(e, TS_EFORMAT, "subnet %u has %llu uids (at most %u supported)", s->netuid, (unsigned long long)n,
                     CHAIN_MAX_UIDS);
    if (!rc && !(rc = epoch_item(s, "Tempo", h, out, &r, e)) && json_u64(r, &out->tempo)) rc = bad_answer(s, e, "Tempo");
    cJSON_Delete(r);
    r = NULL;
    if (rc) return rc;
    /* the block of the last epoch: recorded by the runtime (spec 143 on:
     * LastMechansimStepBlock, sic), or counted back from BlocksSinceLastStep */
    rc = epoch_item(s, "LastMechansimStepBlock", h, out, &r, e);
    if (!rc && json_u64(r, &out->block)) rc = bad_answer(s, e, "LastMechansimStepBlock");
    cJSON_Delete(r);
    r = NULL;
    if (rc == TS_ENOTFOUND) {
        rc = epoch_item(s, "BlocksSinceLastStep", h, out, &r, e);
        if (!rc && !json_u64(r, &v)) out->block = v <= headb ? headb - v : 0;
        else if (!rc) rc = bad_answer(s, e, "BlocksSinceLastStep");
        cJSON_Delete(r);
        r = NULL;
        if (rc == TS_ENOTFOUND) rc = TS_OK; /* block stays 0: unknown */
    }
    if (rc) return rc;
    out->next_block = headb + 1 + chain_epoch_blocks_until(s->netuid, out->tempo, headb + 1);
    out->n = (uint32_t)n;
    out->uids = calloc(n ? n : 1, sizeof *out->uids);
    if (!out->uids) return ts_fail(e, TS_ENOMEM, "out of memory");
    cJSON *kk = cJSON_CreateArray();
    for (uint64_t u = 0; u < n; u++) cJSON_AddItemToArray(kk, keys2n(s->netuid, u));
    rc = storage_multi(s, ST_PALLET, "Keys", kk, h, &hot, e);
    cJSON_Delete(kk);
    for (uint64_t u = 0; u < n && !rc; u++) {
        out->uids[u].uid = (uint32_t)u;
        if (json_hex32(hot[u], out->uids[u].hotkey)) rc = bad_answer(s, e, "Keys");
    }
    free_vals(hot, (int)n);
    /* the vectors the epoch writes, indexed by uid */
    static const char *const items[] = {"Rank", "Trust", "Consensus", "Incentive", "Dividends", "ValidatorTrust",
                                        "Emission", "Active", "ValidatorPermit"};
    for (size_t i = 0; i < sizeof items / sizeof *items && !rc; i++) {
        rc = epoch_item(s, items[i], h, out, &r, e);
        if (rc == TS_ENOTFOUND) {
            rc = TS_OK;
            continue;
        }
        if (!rc && !cJSON_IsArray(r)) rc = bad_answer(s, e, items[i]);
        for (uint32_t u = 0; u < out->n && !rc; u++) {
            const cJSON *x = cJSON_GetArrayItem(r, (int)u);
            if (!x) break; /* a shorter vector: the rest stay 0 */
            chain_epoch_uid *y = &out->uids[u];
            if (i >= 7) { /* Active, ValidatorPermit */
                if (!cJSON_IsBool(x)) rc = bad_answer(s, e, items[i]);
                else if (i == 7) y->active = cJSON_IsTrue(x);
                else y->validator_permit = cJSON_IsTrue(x);
                continue;
            }
            if (json_u64(x, &v) || (i < 6 && v > 65535)) {
                rc = bad_answer(s, e, items[i]);
                break;
            }
            switch (i) {
            case 0: y->rank = (uint16_t)v; break;
            case 1: y->trust = (uint16_t)v; break;
            case 2: y->consensus = (uint16_t)v; break;
            case 3: y->incentive = (uint16_t)v; break;
            case 4: y->dividends = (uint16_t)v; break;
            case 5: y->validator_trust = (uint16_t)v; break;
            default:
                y->emission = v;
                out->emission = out->emission > UINT64_MAX - v ? UINT64_MAX : out->emission + v;
            }
        }
        cJSON_Delete(r);
        r = NULL;
    }
    if (rc) chain_epoch_free(out);
    return rc;
}

/* ------------------------------------------------------ submitting calls */

typedef struct sign_ctx {
    const ts_keypair *kp;
} sign_ctx;

static int sign_cb(void *ctx, const uint8_t *payload, size_t len, uint8_t sig[64]) {
    const sign_ctx *c = ctx;
    sr25519_sign(sig, c->kp->sk, c->kp->pk, "substrate", 9, payload, len, NULL);
    return 0;
}

/* The dispatch error of a failed extrinsic as "Pallet.Error" (or the
 * DispatchError variant's name). */
static void describe_failure(st *s, const cJSON *data, char *out, size_t cap) {
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(data, "dispatch_error");
    if (!err) err = cJSON_GetArrayItem(data, 0);
    if (xt_dispatch_error(s->md, err, out, cap, NULL)) snprintf(out, cap, "an undecodable dispatch error");
}

/* Finds our extrinsic in the blocks after `from` and reads its outcome from
 * the events of its block.  TS_OK when it succeeded; TS_EDENIED naming the
 * dispatch error when it failed; TS_ETIMEOUT when it was not included within
 * ST_CONFIRM_BLOCKS blocks or ST_CONFIRM_SECONDS. */
static int await_inclusion(st *s, const char *what, const uint8_t xt_hash[32], uint64_t from,
                           uint64_t *included, ts_err *e) {
    double t0 = ts_now();
    uint64_t next = from + 1;
    int rc;
    for (;;) {
        uint64_t cur;
        if ((rc = head(s, "chain_getHeader", &cur, NULL, e))) return rc;
        for (; next <= cur; next++) {
            char h[67], params[80];
            if ((rc = block_hash(s, next, h, e))) return rc;
            snprintf(params, sizeof params, "[\"%s\"]", h);
            cJSON *blk = NULL;
            if ((rc = rpc_call(s->rpc, "chain_getBlock", params, &blk, e))) return rc;
            const cJSON *xts = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(blk, "block"), "extrinsics");
            int idx = -1, i = 0;
            const cJSON *x;
            cJSON_ArrayForEach(x, xts) {
                uint8_t *b = NULL;
                size_t bl = 0;
                if (cJSON_IsString(x) && !scale_unhex(x->valuestring, &b, &bl)) {
                    uint8_t hh[32];
                    scale_blake2_256(b, bl, hh);
                    if (!memcmp(hh, xt_hash, 32)) idx = i;
                }
                free(b);
                i++;
            }
            cJSON_Delete(blk);
            if (idx < 0) continue;
            *included = next;
            /* its events: System.Events at that block, phase ApplyExtrinsic(idx) */
            cJSON *ev = NULL;
            if ((rc = storage_get(s, "System", "Events", NULL, h, &ev, e))) return ts_wrap(e, "%s was included in block %llu, but its events could not be read", what, (unsigned long long)next);
            const cJSON *rec;
            int outcome = 0; /* 1 success, -1 failure */
            char why[160] = "";
            cJSON_ArrayForEach(rec, ev) {
                const cJSON *phase = cJSON_GetObjectItemCaseSensitive(rec, "phase");
                const cJSON *ap = cJSON_GetObjectItemCaseSensitive(phase, "ApplyExtrinsic");
                uint64_t pi;
                if (!ap || json_u64(ap, &pi) || pi != (uint64_t)idx) continue;
                const cJSON *event = cJSON_GetObjectItemCaseSensitive(rec, "event");
                const cJSON *sys = cJSON_GetObjectItemCaseSensitive(event, "System");
                if (!sys) continue;
                if (cJSON_GetObjectItemCaseSensitive(sys, "ExtrinsicSuccess")) outcome = 1;
                const cJSON *f = cJSON_GetObjectItemCaseSensitive(sys, "ExtrinsicFailed");
                if (f) {
                    outcome = -1;
                    describe_failure(s, f, why, sizeof why);
                }
            }
            cJSON_Delete(ev);
            if (outcome < 0)
                return ts_fail(e, TS_EDENIED, "%s failed in block %llu: %s", what, (unsigned long long)next, why);
            if (outcome == 0)
                return ts_fail(e, TS_EFORMAT, "%s was included in block %llu but its outcome is not in the events", what,
                               (unsigned long long)next);
            return TS_OK;
        }
        if (next > from + ST_CONFIRM_BLOCKS || ts_now() - t0 > ST_CONFIRM_SECONDS)
            return ts_fail(e, TS_ETIMEOUT, "%s was not included within %d blocks (%.0f s); it may still be", what,
                           ST_CONFIRM_BLOCKS, ts_now() - t0);
        usleep(200 * 1000);
    }
}

/* Encodes pallet.call(args), signs it with kp and submits it; then waits for
 * its inclusion and outcome (await_inclusion). */
static int submit(st *s, const ts_keypair *kp, const char *pallet, const char *call, const cJSON *args,
                  uint64_t *included, ts_err *e) {
    char what[96];
    snprintf(what, sizeof what, "%s.%s", pallet, call);
    scale_writer cw = SCALE_WRITER_INIT;
    int rc = xt_call_encode(s->md, pallet, call, args, &cw, e);
    if (rc) {
        scale_writer_free(&cw);
        return rc;
    }
    /* nonce, era birth */
    char ss[64], params[128];
    ts_ss58(ss, kp->pk);
    snprintf(params, sizeof params, "[\"%s\"]", ss);
    cJSON *r = NULL;
    uint64_t nonce, cur;
    char h[67];
    xt_params xp = {0};
    if ((rc = rpc_call(s->rpc, "system_accountNextIndex", params, &r, e))) goto out;
    if (json_u64(r, &nonce)) {
        rc = bad_answer(s, e, "system_accountNextIndex");
        goto out;
    }
    if ((rc = head(s, "chain_getHeader", &cur, h, e))) goto out;
    xp.spec_version = s->spec_version;
    xp.tx_version = s->tx_version;
    memcpy(xp.genesis_hash, s->genesis, 32);
    memcpy(xp.signer, kp->pk, 32);
    xp.nonce = nonce;
    xp.tip = 0;
    xp.era = xt_era_mortal(ST_ERA_PERIOD, cur);
    if ((rc = block_hash(s, xt_era_birth(xp.era, cur), h, e))) goto out;
    if (ts_unhex(xp.era_block_hash, 32, h)) {
        rc = bad_answer(s, e, "chain_getBlockHash");
        goto out;
    }
    xt_signed x = {0};
    sign_ctx sc = {kp};
    if ((rc = xt_sign(s->md, cw.p, cw.len, &xp, sign_cb, &sc, &x, e))) goto out;
    uint8_t xh[32];
    memcpy(xh, x.hash, 32);
    char *hex = scale_hex(x.bytes, x.len);
    xt_signed_free(&x);
    if (!hex) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto out;
    }
    cJSON *pa = cJSON_CreateArray();
    cJSON_AddItemToArray(pa, cJSON_CreateString(hex));
    free(hex);
    cJSON_Delete(r);
    r = NULL;
    rc = rpc_call_json(s->rpc, "author_submitExtrinsic", pa, &r, e);
    cJSON_Delete(pa);
    if (rc) {
        ts_wrap(e, "%s", what);
        goto out;
    }
    uint64_t at = 0;
    rc = await_inclusion(s, what, xh, cur, &at, e);
    if (included) *included = at;
out:
    cJSON_Delete(r);
    scale_writer_free(&cw);
    return rc;
}

/* ------------------------------------------------------------- writes */

static int uid_of(st *s, const uint8_t pk[32], uint32_t *uid, ts_err *e) {
    cJSON *k = keys1(s->netuid), *r = NULL;
    cJSON_AddItemToArray(k, key_hex(pk));
    int rc = storage_get(s, ST_PALLET, "Uids", k, NULL, &r, e);
    cJSON_Delete(k);
    uint64_t u;
    if (!rc && (cJSON_IsNull(r) || json_u64(r, &u))) {
        char ss[64];
        ts_ss58(ss, pk);
        rc = ts_fail(e, TS_ENOTFOUND, "hotkey %s is not registered on subnet %u", ss, s->netuid);
    }
    if (!rc) *uid = (uint32_t)u;
    cJSON_Delete(r);
    return rc;
}

static int st_commit(void *impl, const ts_keypair *kp, const char *data, size_t len, ts_err *e) {
    st *s = impl;
    uint32_t uid;
    int rc = uid_of(s, kp->pk, &uid, e);
    if (rc) return rc;
    /* Raw fields of up to 128 bytes each, in order */
    const md_constant *mf;
    uint64_t max_fields = 3;
    if (!md_constant_find(s->md, ST_COMMITMENTS, "MaxFields", &mf, NULL)) {
        cJSON *v = NULL;
        if (!md_decode(s->md, mf->type, mf->value, mf->nvalue, &v, NULL)) json_u64(v, &max_fields);
        cJSON_Delete(v);
    }
    if (len > max_fields * 128)
        return ts_fail(e, TS_ETOOBIG, "a commitment of %zu bytes does not fit in %llu fields of 128 bytes", len,
                       (unsigned long long)max_fields);
    /* The pallet allows one commitment per RateLimit blocks per hotkey; a
     * commitment it would refuse is not sent (a refused extrinsic still
     * costs its fee). */
    uint64_t limit = 0, last = 0, cur = 0;
    const md_constant *rl;
    if (!md_constant_find(s->md, ST_COMMITMENTS, "RateLimit", &rl, NULL) &&
        md_storage_find(s->md, ST_COMMITMENTS, "LastCommitment", NULL, NULL, NULL) == TS_OK) {
        cJSON *v = NULL, *k = keys1(s->netuid), *r = NULL;
        if (!md_decode(s->md, rl->type, rl->value, rl->nvalue, &v, NULL)) json_u64(v, &limit);
        cJSON_Delete(v);
        cJSON_AddItemToArray(k, key_hex(kp->pk));
        if (!storage_get(s, ST_COMMITMENTS, "LastCommitment", k, NULL, &r, NULL)) json_u64(r, &last);
        cJSON_Delete(k);
        cJSON_Delete(r);
        if (limit && last && (rc = head(s, "chain_getHeader", &cur, NULL, e))) return rc;
        if (limit && last && cur < last + limit)
            return ts_fail(e, TS_EDENIED,
                           "commitments are limited to one per %llu blocks: this hotkey's last was at block %llu, the "
                           "next may be at block %llu (now %llu)",
                           (unsigned long long)limit, (unsigned long long)last, (unsigned long long)(last + limit),
                           (unsigned long long)cur);
    }
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "netuid", s->netuid);
    cJSON *info = cJSON_AddObjectToObject(args, "info");
    cJSON *fields = cJSON_AddArrayToObject(info, "fields");
    for (size_t off = 0; off < len; off += 128) {
        size_t m = len - off < 128 ? len - off : 128;
        char name[16];
        snprintf(name, sizeof name, "Raw%zu", m);
        char *hex = scale_hex(data + off, m);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, name, hex ? hex : "");
        free(hex);
        cJSON_AddItemToArray(fields, f);
    }
    rc = submit(s, kp, ST_COMMITMENTS, "set_commitment", args, NULL, e);
    cJSON_Delete(args);
    if (rc) return rc;
    /* read it back */
    cJSON *k = keys1(s->netuid), *r = NULL;
    cJSON_AddItemToArray(k, key_hex(kp->pk));
    rc = storage_get(s, ST_COMMITMENTS, "CommitmentOf", k, NULL, &r, e);
    cJSON_Delete(k);
    char back[CHAIN_COMMIT_MAX + 1];
    uint32_t bl;
    if (!rc && (commitment_bytes(r, back, &bl) || bl != len || memcmp(back, data, len)))
        rc = ts_fail(e, TS_ESTATE, "Commitments.set_commitment succeeded but CommitmentOf does not hold the new commitment");
    cJSON_Delete(r);
    return rc;
}

/* ---- commit-reveal (hash commits, "v2") */

static int pending_save(st *s, ts_err *e) {
    cJSON *a = cJSON_CreateArray();
    for (uint32_t i = 0; i < s->npending; i++) {
        const pending_reveal *p = &s->pending[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "hotkey", key_hex(p->hotkey));
        cJSON_AddNumberToObject(o, "commit_block", (double)p->commit_block);
        char vk[24];
        snprintf(vk, sizeof vk, "%llu", (unsigned long long)p->version_key);
        cJSON_AddStringToObject(o, "version_key", vk);
        cJSON *u = cJSON_AddArrayToObject(o, "uids"), *v = cJSON_AddArrayToObject(o, "values"),
              *sa = cJSON_AddArrayToObject(o, "salt");
        for (uint32_t j = 0; j < p->n; j++) {
            cJSON_AddItemToArray(u, cJSON_CreateNumber(p->uids[j]));
            cJSON_AddItemToArray(v, cJSON_CreateNumber(p->values[j]));
        }
        for (int j = 0; j < 8; j++) cJSON_AddItemToArray(sa, cJSON_CreateNumber(p->salt[j]));
        cJSON_AddItemToArray(a, o);
    }
    char *txt = cJSON_Print(a);
    cJSON_Delete(a);
    if (!txt) return ts_fail(e, TS_ENOMEM, "out of memory");
    char *dir = strdup(s->pending_path);
    int rc = dir ? TS_OK : ts_fail(e, TS_ENOMEM, "out of memory");
    if (!rc) {
        *strrchr(dir, '/') = 0;
        rc = ts_mkdirs(dir, 0700, e);
    }
    free(dir);
    if (!rc) rc = ts_write_atomic(s->pending_path, txt, strlen(txt), e);
    free(txt);
    return rc;
}

static void pending_load(st *s) {
    uint8_t *buf = NULL;
    size_t len = 0;
    ts_err e = {0};
    if (ts_read_file(s->pending_path, 16u << 20, &buf, &len, &e)) return;
    cJSON *a = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    if (!cJSON_IsArray(a)) {
        TS_WARN("%s: not a list of pending weight commits; ignored", s->pending_path);
        cJSON_Delete(a);
        return;
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, a) {
        if (s->npending == ST_MAX_PENDING) break;
        pending_reveal *p = &s->pending[s->npending];
        memset(p, 0, sizeof *p);
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "uids"), *v = cJSON_GetObjectItemCaseSensitive(o, "values"),
                    *sa = cJSON_GetObjectItemCaseSensitive(o, "salt");
        int n = cJSON_GetArraySize(u);
        bool ok = !json_hex32(cJSON_GetObjectItemCaseSensitive(o, "hotkey"), p->hotkey) &&
                  !json_u64(cJSON_GetObjectItemCaseSensitive(o, "commit_block"), &p->commit_block) &&
                  !json_u64(cJSON_GetObjectItemCaseSensitive(o, "version_key"), &p->version_key) && n > 0 &&
                  n <= CHAIN_MAX_UIDS && cJSON_GetArraySize(v) == n && cJSON_GetArraySize(sa) == 8;
        for (int j = 0; ok && j < n; j++) {
            uint64_t a1, a2;
            ok = !json_u64(cJSON_GetArrayItem(u, j), &a1) && !json_u64(cJSON_GetArrayItem(v, j), &a2) && a1 < 65536 &&
                 a2 < 65536;
            p->uids[j] = (uint16_t)a1;
            p->values[j] = (uint16_t)a2;
        }
        for (int j = 0; ok && j < 8; j++) {
            uint64_t x;
            ok = !json_u64(cJSON_GetArrayItem(sa, j), &x) && x < 65536;
            p->salt[j] = (uint16_t)x;
        }
        if (!ok) {
            TS_WARN("%s: a malformed pending weight commit; ignored", s->pending_path);
            continue;
        }
        p->n = (uint32_t)n;
        s->npending++;
    }
    cJSON_Delete(a);
}

static cJSON *u16_array(const uint16_t *v, uint32_t n) {
    cJSON *a = cJSON_CreateArray();
    for (uint32_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* The commit hash: BLAKE2b-256 of SCALE(account, netuid u16, uids Vec<u16>,
 * values Vec<u16>, salt Vec<u16>, version_key u64), as subtensor computes
 * it in reveal_weights. */
static void commit_hash(const st *s, const pending_reveal *p, uint8_t out[32]) {
    scale_writer w = SCALE_WRITER_INIT;
    scale_put(&w, p->hotkey, 32);
    scale_put_u16(&w, s->netuid);
    scale_put_compact(&w, p->n);
    for (uint32_t i = 0; i < p->n; i++) scale_put_u16(&w, p->uids[i]);
    scale_put_compact(&w, p->n);
    for (uint32_t i = 0; i < p->n; i++) scale_put_u16(&w, p->values[i]);
    scale_put_compact(&w, 8);
    for (int i = 0; i < 8; i++) scale_put_u16(&w, p->salt[i]);
    scale_put_u64(&w, p->version_key);
    scale_blake2_256(w.p, w.len, out);
    scale_writer_free(&w);
}

/* Subtensor's epochs: block b belongs to epoch (b + netuid + 1) / (tempo + 1). */
static uint64_t epoch_of(const st *s, uint64_t block, uint64_t tempo) {
    return (block + s->netuid + 1) / (tempo + 1);
}

static int st_reveal_pending(void *impl, const ts_keypair *kp, uint32_t *revealed, uint32_t *left,
                             ts_err *e) {
    st *s = impl;
    uint64_t tempo = 0, period = 1, cur;
    int rc = hyper_u64(s, "Tempo", &tempo, e);
    if (!rc && md_storage_find(s->md, ST_PALLET, "RevealPeriodEpochs", NULL, NULL, NULL) == TS_OK)
        rc = hyper_u64(s, "RevealPeriodEpochs", &period, e);
    if (!rc) rc = head(s, "chain_getHeader", &cur, NULL, e);
    if (rc) return rc;
    for (uint32_t i = 0; i < s->npending;) {
        pending_reveal *p = &s->pending[i];
        if (memcmp(p->hotkey, kp->pk, 32) || epoch_of(s, cur, tempo) < epoch_of(s, p->commit_block, tempo) + period) {
            if (!memcmp(p->hotkey, kp->pk, 32)) (*left)++;
            i++;
            continue;
        }
        cJSON *args = cJSON_CreateObject();
        cJSON_AddNumberToObject(args, "netuid", s->netuid);
        cJSON_AddItemToObject(args, "uids", u16_array(p->uids, p->n));
        cJSON_AddItemToObject(args, "values", u16_array(p->values, p->n));
        cJSON_AddItemToObject(args, "salt", u16_array(p->salt, 8));
        char vk[24];
        snprintf(vk, sizeof vk, "%llu", (unsigned long long)p->version_key);
        cJSON_AddStringToObject(args, "version_key", vk);
        rc = submit(s, kp, ST_PALLET, "reveal_weights", args, NULL, e);
        cJSON_Delete(args);
        if (rc == TS_EDENIED && strstr(e->msg, "Expired")) {
            TS_WARN("subtensor: a weight commit of block %llu expired before it could be revealed; dropped",
                    (unsigned long long)p->commit_block);
            rc = TS_OK;
        } else if (rc) {
            return rc;
        } else {
            (*revealed)++;
        }
        s->pending[i] = s->pending[--s->npending];
        if ((rc = pending_save(s, e))) return rc;
    }
    return TS_OK;
}

static int st_set_weights(void *impl, const ts_keypair *kp, const chain_weight *w, uint32_t n, ts_err *e) {
    st *s = impl;
    uint32_t uid;
    int rc = uid_of(s, kp->pk, &uid, e);
    if (rc) return rc;
    uint64_t vk = 0;
    bool cr = false;
    if ((rc = hyper_u64(s, "WeightsVersionKey", &vk, e))) return rc;
    if (md_storage_find(s->md, ST_PALLET, "CommitRevealWeightsEnabled", NULL, NULL, NULL) == TS_OK &&
        (rc = hyper_bool(s, "CommitRevealWeightsEnabled", &cr, e)))
        return rc;
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "netuid", s->netuid);
    char vks[24];
    snprintf(vks, sizeof vks, "%llu", (unsigned long long)vk);
    if (!cr) {
        cJSON *d = cJSON_AddArrayToObject(args, "dests"), *v = cJSON_AddArrayToObject(args, "weights");
        for (uint32_t i = 0; i < n; i++) {
            cJSON_AddItemToArray(d, cJSON_CreateNumber(w[i].uid));
            cJSON_AddItemToArray(v, cJSON_CreateNumber(w[i].weight));
        }
        cJSON_AddStringToObject(args, "version_key", vks);
        rc = submit(s, kp, ST_PALLET, "set_weights", args, NULL, e);
        cJSON_Delete(args);
        if (rc) return rc;
        /* read back: the row the chain stores is exactly what was sent */
        cJSON *k = keys2n(s->netuid, uid), *r = NULL;
        rc = storage_get(s, ST_PALLET, "Weights", k, NULL, &r, e);
        cJSON_Delete(k);
        bool same = !rc && cJSON_GetArraySize(r) == (int)n;
        for (uint32_t i = 0; same && i < n; i++) {
            const cJSON *pair = cJSON_GetArrayItem(r, (int)i);
            uint64_t dst, val;
            same = !json_u64(cJSON_GetArrayItem(pair, 0), &dst) && !json_u64(cJSON_GetArrayItem(pair, 1), &val) &&
                   dst == w[i].uid && val == w[i].weight;
        }
        cJSON_Delete(r);
        if (!rc && !same)
            rc = ts_fail(e, TS_ESTATE, "SubtensorModule.set_weights succeeded but Weights(%u, %u) does not hold what was sent",
                         s->netuid, uid);
        return rc;
    }
    /* Commit-reveal with hash commits ("v2": commit_weights, then
     * reveal_weights) is what Tessera implements.  Runtimes whose subnets
     * commit weights encrypted to a future drand round (commit_crv3_weights /
     * commit_timelocked_weights, commit-reveal v3 and later) need timelock
     * encryption over BLS12-381, which Tessera does not have: refused by name
     * rather than sent in a form the chain would not reveal. */
    uint64_t crv = 2;
    if (md_storage_find(s->md, ST_PALLET, "CommitRevealWeightsVersion", NULL, NULL, NULL) == TS_OK) {
        cJSON *r = NULL;
        if (!storage_get(s, ST_PALLET, "CommitRevealWeightsVersion", NULL, NULL, &r, NULL)) json_u64(r, &crv);
        cJSON_Delete(r);
    }
    if (crv >= 3 || md_call_find(s->md, ST_PALLET, "commit_weights", NULL, NULL, NULL)) {
        cJSON_Delete(args);
        return ts_fail(e, TS_EUNSUPPORTED,
                       "subnet %u has commit-reveal on with drand-timelocked commits (commit-reveal v%llu: "
                       "commit_timelocked_weights / commit_crv3_weights), which Tessera does not implement; "
                       "only hash commits (commit_weights + reveal_weights) are supported",
                       s->netuid, (unsigned long long)crv);
    }
    /* commit-reveal: reveal what is due, then commit these */
    uint32_t rv = 0, left = 0;
    if ((rc = st_reveal_pending(s, kp, &rv, &left, e))) {
        cJSON_Delete(args);
        return rc;
    }
    if (s->npending == ST_MAX_PENDING) {
        cJSON_Delete(args);
        return ts_fail(e, TS_ESTATE, "%u weight commits are waiting for their reveal; not committing more", ST_MAX_PENDING);
    }
    pending_reveal p = {0};
    memcpy(p.hotkey, kp->pk, 32);
    p.n = n;
    for (uint32_t i = 0; i < n; i++) {
        p.uids[i] = (uint16_t)w[i].uid;
        p.values[i] = w[i].weight;
    }
    randombytes_buf(p.salt, sizeof p.salt);
    p.version_key = vk;
    uint8_t h[32];
    commit_hash(s, &p, h);
    char hx[67] = "0x";
    ts_hex(hx + 2, h, 32);
    cJSON_AddStringToObject(args, "commit_hash", hx);
    if ((rc = head(s, "chain_getHeader", &p.commit_block, NULL, e))) {
        cJSON_Delete(args);
        return rc;
    }
    /* saved before it is sent: a commit the chain took must never be lost */
    s->pending[s->npending++] = p;
    if ((rc = pending_save(s, e))) {
        s->npending--;
        cJSON_Delete(args);
        return rc;
    }
    uint64_t at = 0;
    rc = submit(s, kp, ST_PALLET, "commit_weights", args, &at, e);
    cJSON_Delete(args);
    if (rc && rc != TS_ETIMEOUT) { /* refused: nothing to reveal */
        s->npending--;
        ts_err e2 = {0};
        pending_save(s, &e2);
    } else if (!rc && at) {
        /* the reveal epoch counts from the block that included the commit */
        s->pending[s->npending - 1].commit_block = at;
        rc = pending_save(s, e);
    }
    return rc;
}

static int st_reg_burned(void *impl, const ts_keypair *coldkey, const uint8_t hotkey[TS_PK_BYTES],
                         chain_registration *out, ts_err *e) {
    st *s = impl;
    uint32_t uid;
    ts_err e0 = {0};
    if (uid_of(s, hotkey, &uid, &e0) == TS_OK) {
        char ss[64];
        ts_ss58(ss, hotkey);
        return ts_fail(e, TS_EDENIED, "hotkey %s is already registered on subnet %u (uid %u)", ss, s->netuid, uid);
    }
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "netuid", s->netuid);
    cJSON_AddItemToObject(args, "hotkey", key_hex(hotkey));
    int rc = submit(s, coldkey, ST_PALLET, "burned_register", args, NULL, e);
    cJSON_Delete(args);
    if (rc) return rc;
    if ((rc = uid_of(s, hotkey, &uid, e))) return ts_wrap(e, "burned_register succeeded, but");
    out->uid = uid;
    uint64_t b = 0;
    cJSON *k = keys2n(s->netuid, uid), *r = NULL;
    if (!storage_get(s, ST_PALLET, "BlockAtRegistration", k, NULL, &r, NULL)) json_u64(r, &b);
    cJSON_Delete(k);
    cJSON_Delete(r);
    out->block = b;
    return TS_OK;
}

static int st_reg(void *impl, const ts_keypair *kp, chain_registration *out, ts_err *e) {
    return ts_fail(e, TS_EUNSUPPORTED,
                   "on subtensor a coldkey registers a hotkey (tessera chain register --wallet W --hotkey H, "
                   "which pays the burn with W's coldkey)");
}

static int st_stake(void *impl, const ts_keypair *owner, const uint8_t hotkey[TS_PK_BYTES], int64_t delta,
                    ts_err *e) {
    return ts_fail(e, TS_EUNSUPPORTED, "on subtensor stake is moved by coldkeys (btcli stake add)");
}

static int st_stats(void *impl, chain_stats *out, ts_err *e) { return TS_OK; }

static uint32_t st_rejections(void *impl, chain_rejection *out, uint32_t max) { return 0; }

static int st_info(void *impl, chain_info *o, ts_err *e) {
    st *s = impl;
    snprintf(o->where, sizeof o->where, "%s", s->node);
    snprintf(o->chain_name, sizeof o->chain_name, "%s", s->chain_name);
    o->spec_version = s->spec_version;
    o->tx_version = s->tx_version;
    int rc = hyper_u64(s, "Tempo", &o->tempo, e);
    if (!rc) rc = hyper_u64(s, "WeightsVersionKey", &o->weights_version_key, e);
    if (!rc && md_storage_find(s->md, ST_PALLET, "CommitRevealWeightsEnabled", NULL, NULL, NULL) == TS_OK)
        rc = hyper_bool(s, "CommitRevealWeightsEnabled", &o->commit_reveal, e);
    if (!rc && md_storage_find(s->md, ST_PALLET, "RevealPeriodEpochs", NULL, NULL, NULL) == TS_OK)
        rc = hyper_u64(s, "RevealPeriodEpochs", &o->reveal_period_epochs, e);
    if (!rc && md_storage_find(s->md, ST_PALLET, "Burn", NULL, NULL, NULL) == TS_OK) rc = hyper_u64(s, "Burn", &o->burn_rao, e);
    o->pending_reveals = s->npending;
    return rc;
}

static int st_encode_call(void *impl, const char *pallet, const char *call, const char *args_json, char **hex,
                          ts_err *e) {
    st *s = impl;
    cJSON *args = cJSON_Parse(args_json ? args_json : "{}");
    if (!cJSON_IsObject(args)) {
        cJSON_Delete(args);
        return ts_fail(e, TS_EINVAL, "the call's arguments are not a JSON object");
    }
    scale_writer w = SCALE_WRITER_INIT;
    int rc = xt_call_encode(s->md, pallet, call, args, &w, e);
    cJSON_Delete(args);
    if (!rc && !(*hex = scale_hex(w.p, w.len))) rc = ts_fail(e, TS_ENOMEM, "out of memory");
    scale_writer_free(&w);
    return rc;
}

/* ----------------------------------------------------------- open/close */

static void st_close(void *impl) {
    st *s = impl;
    if (!s) return;
    rpc_close(s->rpc);
    md_free(s->md);
    free(s->run_params);
    free(s->pending_path);
    free(s->pending);
    free(s);
}

/* Every call and storage item the backend uses must be in the runtime's
 * metadata with the argument names it passes: checked once at open, so a
 * runtime that moved or renamed one fails with its name rather than at the
 * first write. */
static int check_runtime(st *s, ts_err *e) {
    static const struct {
        const char *pallet, *call, *args[6];
    } calls[] = {
        {ST_PALLET, "set_weights", {"netuid", "dests", "weights", "version_key"}},
        {ST_PALLET, "burned_register", {"netuid", "hotkey"}},
        {ST_COMMITMENTS, "set_commitment", {"netuid", "info"}},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        const md_pallet *p;
        const md_variant *v;
        int rc = md_call_find(s->md, calls[i].pallet, calls[i].call, &p, &v, e);
        if (rc) return ts_wrap(e, "the runtime (spec %u) lacks a call Tessera needs", s->spec_version);
        for (int j = 0; calls[i].args[j]; j++) {
            bool found = false;
            for (uint32_t k = 0; k < v->nfields; k++) found |= v->fields[k].name && !strcmp(v->fields[k].name, calls[i].args[j]);
            if (!found)
                return ts_fail(e, TS_EUNSUPPORTED, "the runtime (spec %u): %s.%s has no argument '%s'", s->spec_version,
                               calls[i].pallet, calls[i].call, calls[i].args[j]);
        }
    }
    static const char *items[] = {"SubnetworkN", "Keys", "Uids", "Owner", "ValidatorPermit", "BlockAtRegistration", "LastUpdate",
                                  "Weights", "Tempo", "MaxAllowedUids", "ImmunityPeriod", "WeightsVersionKey",
                                  "NetworksAdded"};
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++)
        if (md_storage_find(s->md, ST_PALLET, items[i], NULL, NULL, e))
            return ts_wrap(e, "the runtime (spec %u) lacks a storage item Tessera needs", s->spec_version);
    if (md_storage_find(s->md, ST_COMMITMENTS, "CommitmentOf", NULL, NULL, e) ||
        md_storage_find(s->md, "Timestamp", "Now", NULL, NULL, e) || md_storage_find(s->md, "System", "Events", NULL, NULL, e))
        return ts_wrap(e, "the runtime (spec %u) lacks a storage item Tessera needs", s->spec_version);
    if (!md_storage_find(s->md, ST_PALLET, "TotalHotkeyAlpha", NULL, NULL, NULL)) {
        s->stake_item = "TotalHotkeyAlpha";
        s->stake_by_netuid = true;
    } else if (!md_storage_find(s->md, ST_PALLET, "TotalHotkeyStake", NULL, NULL, NULL)) {
        s->stake_item = "TotalHotkeyStake";
    } else {
        return ts_fail(e, TS_EUNSUPPORTED, "the runtime (spec %u) has neither TotalHotkeyAlpha nor TotalHotkeyStake", s->spec_version);
    }
    return TS_OK;
}

static int query_param(const char *q, const char *name, char *out, size_t cap) {
    size_t nl = strlen(name);
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t l = amp ? (size_t)(amp - p) : strlen(p);
        if (l > nl && !strncmp(p, name, nl) && p[nl] == '=') {
            if (l - nl - 1 >= cap) return -1;
            memcpy(out, p + nl + 1, l - nl - 1);
            out[l - nl - 1] = 0;
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

static int st_open(const char *where, void **impl, chain_params *p, ts_err *e) {
    *impl = NULL;
    st *s = calloc(1, sizeof *s);
    if (!s || !(s->pending = calloc(ST_MAX_PENDING, sizeof *s->pending))) {
        free(s);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    char url[1024], q[1024] = "", v[1024];
    const char *qm = strchr(where, '?');
    size_t ul = qm ? (size_t)(qm - where) : strlen(where);
    int rc = TS_OK;
    if (ul >= sizeof url || (qm && strlen(qm + 1) >= sizeof q)) {
        rc = ts_fail(e, TS_EINVAL, "subtensor URL is too long");
        goto fail;
    }
    memcpy(url, where, ul);
    url[ul] = 0;
    if (qm) snprintf(q, sizeof q, "%s", qm + 1);
    int64_t netuid = -1;
    if (query_param(q, "netuid", v, sizeof v) != 1 || ts_parse_i64(v, &netuid) || netuid < 0 || netuid > 65535) {
        rc = ts_fail(e, TS_EINVAL, "subtensor:%s: give the subnet as ?netuid=N (0..65535)", url);
        goto fail;
    }
    s->netuid = (uint16_t)netuid;
    /* timeout=SECONDS (one RPC attempt) and retries=N (on network errors) */
    rpc_opts ro = {0};
    if (query_param(q, "timeout", v, sizeof v) == 1 && (ts_parse_f64(v, &ro.timeout_s) || !(ro.timeout_s > 0) || ro.timeout_s > 3600)) {
        rc = ts_fail(e, TS_EINVAL, "subtensor URL: timeout=%s is not 0..3600 seconds", v);
        goto fail;
    }
    if (ro.timeout_s > 0 && ro.timeout_s < RPC_DEFAULT_CONNECT_TIMEOUT_S) ro.connect_timeout_s = ro.timeout_s;
    if (query_param(q, "retries", v, sizeof v) == 1) {
        int64_t r;
        if (ts_parse_i64(v, &r) || r < 0 || r > 20) {
            rc = ts_fail(e, TS_EINVAL, "subtensor URL: retries=%s is not 0..20", v);
            goto fail;
        }
        ro.retries = r ? (int)r : -1;
    }
    if ((rc = rpc_open(url, &ro, &s->rpc, e))) goto fail;
    snprintf(s->node, sizeof s->node, "%s", rpc_host(s->rpc));
    /* the chain, its runtime and its metadata */
    char h[67];
    cJSON *r = NULL;
    if ((rc = block_hash(s, 0, h, e))) goto fail;
    ts_unhex(s->genesis, 32, h);
    if ((rc = rpc_call(s->rpc, "system_chain", NULL, &r, e))) goto fail;
    snprintf(s->chain_name, sizeof s->chain_name, "%s", cJSON_IsString(r) ? r->valuestring : "?");
    cJSON_Delete(r);
    r = NULL;
    if ((rc = rpc_call(s->rpc, "state_getRuntimeVersion", NULL, &r, e))) goto fail;
    uint64_t sv, tv;
    if (json_u64(cJSON_GetObjectItemCaseSensitive(r, "specVersion"), &sv) ||
        json_u64(cJSON_GetObjectItemCaseSensitive(r, "transactionVersion"), &tv)) {
        cJSON_Delete(r);
        rc = bad_answer(s, e, "state_getRuntimeVersion");
        goto fail;
    }
    cJSON_Delete(r);
    s->spec_version = (uint32_t)sv;
    s->tx_version = (uint32_t)tv;
    uint8_t *mb = NULL;
    size_t ml = 0;
    if ((rc = rpc_call_hex(s->rpc, "state_getMetadata", NULL, &mb, &ml, e))) goto fail;
    rc = md_parse(mb, ml, &s->md, e);
    free(mb);
    if (rc) {
        ts_wrap(e, "subtensor %s: runtime metadata", s->node);
        goto fail;
    }
    if ((rc = check_runtime(s, e))) goto fail;
    /* the subnet */
    bool added = false;
    if ((rc = hyper_bool(s, "NetworksAdded", &added, e))) goto fail;
    if (!added) {
        rc = ts_fail(e, TS_ENOTFOUND, "subtensor %s: there is no subnet with netuid %u", s->node, s->netuid);
        goto fail;
    }
    measure_block_time(s);
    uint64_t x;
    p->netuid = s->netuid;
    p->block_time = s->block_time;
    p->genesis_time = 0;
    if ((rc = hyper_u64(s, "MaxAllowedUids", &x, e))) goto fail;
    p->max_uids = (uint32_t)x;
    if (md_storage_find(s->md, ST_PALLET, "MaxAllowedValidators", NULL, NULL, NULL) == TS_OK &&
        !hyper_u64(s, "MaxAllowedValidators", &x, NULL))
        p->max_validators = (uint32_t)x;
    if ((rc = hyper_u64(s, "ImmunityPeriod", &p->immunity_period, e))) goto fail;
    /* the stake a validator needs (a plain value; named per runtime) */
    static const char *const thresholds[] = {"StakeThreshold", "WeightsMinStake"};
    for (size_t i = 0; i < 2; i++) {
        if (md_storage_find(s->md, ST_PALLET, thresholds[i], NULL, NULL, NULL) != TS_OK) continue;
        cJSON *th = NULL;
        if (!storage_get(s, ST_PALLET, thresholds[i], NULL, NULL, &th, NULL)) json_u64(th, &s->min_stake);
        cJSON_Delete(th);
        break;
    }
    p->min_validator_stake = s->min_stake;
    if (md_storage_find(s->md, ST_PALLET, "WeightsSetRateLimit", NULL, NULL, NULL) == TS_OK)
        hyper_u64(s, "WeightsSetRateLimit", &p->weights_rate_limit, NULL);
    memcpy(p->genesis_hash, s->genesis, 32);
    /* the owner's hotkey: it publishes the run description (node_run_fetch) */
    if (md_storage_find(s->md, ST_PALLET, "SubnetOwnerHotkey", NULL, NULL, NULL) == TS_OK) {
        cJSON *k = keys1(s->netuid), *ow = NULL;
        if (!storage_get(s, ST_PALLET, "SubnetOwnerHotkey", k, NULL, &ow, NULL) && json_hex32(ow, p->owner))
            memset(p->owner, 0, sizeof p->owner);
        cJSON_Delete(k);
        cJSON_Delete(ow);
    }
    /* the run: a private run described in the URL */
    snprintf(s->run_id, sizeof s->run_id, "%s", "tessera");
    if (query_param(q, "run", v, sizeof v) == 1) {
        if (strlen(v) > CHAIN_RUN_ID_MAX || !v[0]) {
            rc = ts_fail(e, TS_EINVAL, "subtensor URL: run=%s is not a run id (1..64 bytes)", v);
            goto fail;
        }
        snprintf(s->run_id, sizeof s->run_id, "%s", v);
    }
    snprintf(p->run_id, sizeof p->run_id, "%s", s->run_id);
    p->blocks_per_window = 100;
    if (query_param(q, "bpw", v, sizeof v) == 1) {
        int64_t b;
        if (ts_parse_i64(v, &b) || b < 1 || b > 1000000) {
            rc = ts_fail(e, TS_EINVAL, "subtensor URL: bpw=%s is not 1..1000000 blocks per window", v);
            goto fail;
        }
        p->blocks_per_window = (uint64_t)b;
    }
    if (query_param(q, "params", v, sizeof v) == 1) {
        uint8_t *pb = NULL;
        size_t pl = 0;
        if ((rc = ts_read_file(v, 1u << 20, &pb, &pl, e))) {
            ts_wrap(e, "subtensor URL: params=%s", v);
            goto fail;
        }
        s->run_params = malloc(pl + 1);
        if (!s->run_params) {
            free(pb);
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(s->run_params, pb, pl);
        s->run_params[pl] = 0;
        free(pb);
    }
    p->run_params_json = s->run_params;
    /* pending reveals of this machine, per chain, subnet */
    char *home = ts_home_dir();
    if (!home) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto fail;
    }
    char gh[17];
    ts_hex(gh, s->genesis, 8);
    size_t pl = strlen(home) + 96;
    s->pending_path = malloc(pl);
    if (s->pending_path) snprintf(s->pending_path, pl, "%s/subtensor/%s-%u-reveals.json", home, gh, s->netuid);
    free(home);
    if (!s->pending_path) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto fail;
    }
    pending_load(s);
    *impl = s;
    return TS_OK;
fail:
    st_close(s);
    return rc;
}

const chain_backend chain_subtensor_backend = {
    .scheme = "subtensor",
    .open = st_open,
    .close = st_close,
    .block = st_block,
    .block_time = st_block_time,
    .metagraph = st_metagraph,
    .metagraph_at = st_metagraph_at,
    .commitments = st_commitments,
    .weights = st_weights,
    .commit = st_commit,
    .set_weights = st_set_weights,
    .reg = st_reg,
    .stake = st_stake,
    .reg_burned = st_reg_burned,
    .reveal_pending = st_reveal_pending,
    .info = st_info,
    .epoch_last = st_epoch_last,
    .encode_call = st_encode_call,
    .stats = st_stats,
    .rejections = st_rejections,
};
