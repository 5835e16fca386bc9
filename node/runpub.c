/* runpub.c - the run description on a chain without a Tessera genesis
 * (subtensor): the subnet owner publishes it, every node fetches and checks
 * it before it starts (docs/CHAIN.md 4.2, docs/FORMATS.md 11.3).
 *
 *   the object   run.json in the owner's bucket: a signed node object of
 *                kind "run" (run_id, netuid, blocks_per_window, params: the
 *                run parameters as one line of JSON text), signed by the
 *                owner's hotkey
 *   the anchor   the owner hotkey's commitment on chain:
 *                    "run1 " <64 hex: BLAKE2b-256 of run.json> " " <bucket commitment>
 *                (70 bytes before the bucket: on runtimes whose commitments hold
 *                one 128-byte field, the bucket commitment has 58 bytes left)
 *                the bucket commitment (storage 8.4) says where run.json is,
 *                and the owner's own node keeps publishing it behind the prefix
 *
 * Invariant: a node starts only on the exact bytes the owner committed to:
 * their hash equals the committed one, their signature is the owner
 * hotkey's (the chain's SubnetOwnerHotkey), and they name this subnet.  Any
 * mismatch is an error naming what differs; nothing falls back to defaults. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "node.h"

#define RUN_PREFIX "run1 "
#define RUN_KEY "run.json"

const char *node_commitment_bucket(const char *text) {
    size_t pl = strlen(RUN_PREFIX);
    if (strncmp(text, RUN_PREFIX, pl) || strlen(text) < pl + 65 || text[pl + 64] != ' ') return text;
    return text + pl + 65;
}

int node_run_anchor(const char *text, uint8_t hash[TS_HASH_BYTES]) {
    size_t pl = strlen(RUN_PREFIX);
    if (node_commitment_bucket(text) == text) return TS_ENOTFOUND;
    char hex[65];
    memcpy(hex, text + pl, 64);
    hex[64] = 0;
    return ts_unhex(hash, TS_HASH_BYTES, hex) ? TS_EFORMAT : TS_OK;
}

int node_run_publish(chain *ch, const ts_keypair *owner, store *own, const char *bucket_commitment,
                     const char *run_id, uint64_t blocks_per_window, const char *params_json, ts_err *e) {
    const chain_params *p = chain_get_params(ch);
    cJSON *params = cJSON_Parse(params_json ? params_json : "");
    if (!cJSON_IsObject(params)) {
        cJSON_Delete(params);
        return ts_fail(e, TS_EFORMAT, "run parameters are not a JSON object");
    }
    /* the parameters exactly as every node will read them */
    node_run check;
    int rc = node_run_from_json(&check, run_id, params, e);
    char *line = rc ? NULL : cJSON_PrintUnformatted(params);
    cJSON_Delete(params);
    if (rc) return ts_wrap(e, "run parameters");
    if (!line) return ts_fail(e, TS_ENOMEM, "out of memory");
    store_commitment sc;
    if (store_commitment_parse(bucket_commitment, STORE_COMMIT_ANY, &sc, e)) {
        free(line);
        return ts_wrap(e, "bucket commitment");
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "run");
    cJSON_AddStringToObject(o, "run_id", run_id);
    cJSON_AddNumberToObject(o, "netuid", p->netuid);
    cJSON_AddNumberToObject(o, "blocks_per_window", (double)blocks_per_window);
    cJSON_AddStringToObject(o, "params", line);
    free(line);
    char *text = NULL;
    if (!(rc = node_obj_sign(o, owner, e)) && !(text = cJSON_PrintUnformatted(o))) rc = ts_fail(e, TS_ENOMEM, "out of memory");
    cJSON_Delete(o);
    if (rc) return rc;
    uint8_t h[TS_HASH_BYTES];
    ts_blake2b(h, sizeof h, text, strlen(text));
    rc = store_put(own, RUN_KEY, text, strlen(text), e);
    free(text);
    if (rc) return ts_wrap(e, "putting %s in the owner's bucket", RUN_KEY);
    char hex[2 * TS_HASH_BYTES + 1];
    ts_hex(hex, h, sizeof h);
    size_t n = strlen(RUN_PREFIX) + 65 + strlen(bucket_commitment) + 1;
    char *anchor = malloc(n);
    if (!anchor) return ts_fail(e, TS_ENOMEM, "out of memory");
    snprintf(anchor, n, "%s%s %s", RUN_PREFIX, hex, bucket_commitment);
    if (strlen(anchor) > CHAIN_COMMIT_MAX) rc = ts_fail(e, TS_ETOOBIG, "the run anchor is %zu bytes (at most %d)", strlen(anchor), CHAIN_COMMIT_MAX);
    else if ((rc = chain_commit(ch, owner, anchor, e))) ts_wrap(e, "committing the run's hash");
    free(anchor);
    return rc;
}

int node_run_fetch(chain *ch, const store_opts *so, ts_err *e) {
    const chain_params *p = chain_get_params(ch);
    static const uint8_t zero[TS_PK_BYTES];
    if (!memcmp(p->owner, zero, sizeof zero))
        return ts_fail(e, TS_ENOTFOUND, "the chain names no owner hotkey for subnet %u, so no run description can be "
                                        "found; give a private run in the chain URL (run=ID&bpw=B&params=FILE)", p->netuid);
    char ss[64];
    ts_ss58(ss, p->owner);
    chain_metagraph mg = {0};
    uint32_t uid;
    chain_commitment cm;
    int rc = chain_metagraph_get(ch, &mg, e);
    if (rc) return rc;
    rc = chain_uid_of(&mg, p->owner, &uid);
    chain_metagraph_free(&mg);
    if (rc)
        return ts_fail(e, TS_ENOTFOUND, "the subnet owner's hotkey %s is not registered on subnet %u, so it has published "
                                        "no run description (tessera chain publish-run)", ss, p->netuid);
    if ((rc = chain_commitment_of(ch, uid, &cm, e)))
        return rc == TS_ENOTFOUND ? ts_fail(e, rc, "the subnet owner (uid %u, %s) has published no run description "
                                                   "(tessera chain publish-run)", uid, ss)
                                  : rc;
    uint8_t want[TS_HASH_BYTES];
    if (node_run_anchor(cm.data, want))
        return ts_fail(e, TS_ENOTFOUND, "the subnet owner's commitment (uid %u) is not a run anchor "
                                        "(\"run1 HASH BUCKET\"); the owner publishes one with tessera chain publish-run", uid);
    store_commitment sc;
    store *s = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    cJSON *o = NULL;
    if ((rc = store_commitment_parse(node_commitment_bucket(cm.data), STORE_COMMIT_ANY, &sc, e))) {
        ts_wrap(e, "the subnet owner's bucket commitment");
        goto out;
    }
    store_opts o2 = so ? *so : (store_opts){0};
    o2.access_key = o2.secret_key = o2.session_token = NULL;
    o2.no_env = true;
    if ((rc = store_open_commitment(&s, &sc, &o2, e)) || (rc = store_get(s, RUN_KEY, NODE_OBJ_MAX, &buf, &len, e))) {
        ts_wrap(e, "the run description in the subnet owner's bucket");
        goto out;
    }
    uint8_t got[TS_HASH_BYTES];
    ts_blake2b(got, sizeof got, buf, len);
    if (memcmp(got, want, sizeof got)) {
        char a[65], b[65];
        ts_hex(a, want, 32);
        ts_hex(b, got, 32);
        rc = ts_fail(e, TS_ESIG, "the run description in the owner's bucket has hash %.16s..., but the owner committed "
                                 "%.16s... on chain: refusing to start on parameters the owner did not commit to", b, a);
        goto out;
    }
    if ((rc = node_obj_parse(buf, len, "run", NULL, p->owner, &o, e))) {
        ts_wrap(e, "the run description");
        goto out;
    }
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(o, "run_id"), *nu = cJSON_GetObjectItemCaseSensitive(o, "netuid"),
                *bpw = cJSON_GetObjectItemCaseSensitive(o, "blocks_per_window"),
                *pj = cJSON_GetObjectItemCaseSensitive(o, "params");
    if (!cJSON_IsNumber(nu) || nu->valuedouble != p->netuid)
        rc = ts_fail(e, TS_EDENIED, "the run description is for subnet %g, not %u", cJSON_IsNumber(nu) ? nu->valuedouble : -1.0,
                     p->netuid);
    else if (!cJSON_IsNumber(bpw) || !cJSON_IsString(pj) || !cJSON_IsString(rid))
        rc = ts_fail(e, TS_EFORMAT, "the run description lacks blocks_per_window, params or run_id");
    else
        rc = chain_set_run(ch, rid->valuestring, (uint64_t)bpw->valuedouble, pj->valuestring, e);
    if (!rc) TS_INFO("run %s from the subnet owner's description (uid %u, hash verified, signature verified)", rid->valuestring, uid);
out:
    cJSON_Delete(o);
    free(buf);
    store_close(s);
    return rc;
}
