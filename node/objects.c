/* objects.c - signed JSON objects: peer lists, start window, sync records,
 * checkpoint manifests, LATEST.  Each names its signature scheme in a signed
 * "scheme" member ("sr25519"); a reader refuses any other before it verifies
 * the signature.
 *
 * JSON is for people and tools to read; what is signed is a canonical text
 * derived from it (docs/FORMATS.md 11.1), so re-encoding the JSON (key
 * order, spacing, escapes) never breaks a signature and an implementation in
 * another language needs no canonical JSON encoder.  Floating-point values
 * are not allowed in signed fields: their decimal spelling differs between
 * languages.  Binary values travel as hex strings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "node.h"

/* Keys excluded from the canonical text (bound by a hash field instead). */
static bool unsigned_key(const char *k) { return !strcmp(k, "signature") || !strcmp(k, "config"); }

static void puts_(ts_sbuf *b, const char *s) { ts_sbuf_put(b, s, strlen(s)); }

static int cmp_keys(const void *a, const void *b) {
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

static int int_text(const cJSON *v, char *out, size_t cap) {
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0) return -1;
    snprintf(out, cap, "%.0f", d);
    return 0;
}

static int emit(const cJSON *obj, const char *prefix, bool top, ts_sbuf *b, ts_err *e) {
    int n = cJSON_GetArraySize(obj);
    const cJSON **items = malloc(sizeof *items * (size_t)(n ? n : 1));
    if (!items) return ts_fail(e, TS_ENOMEM, "out of memory");
    int k = 0;
    for (const cJSON *it = obj->child; it; it = it->next) items[k++] = it;
    qsort(items, (size_t)k, sizeof *items, cmp_keys);
    int rc = TS_OK;
    for (int i = 0; i < k && !rc; i++) {
        const cJSON *it = items[i];
        if (i && !strcmp(items[i - 1]->string, it->string)) {
            rc = ts_fail(e, TS_EFORMAT, "object: key '%s' appears twice", it->string);
            break;
        }
        if (top && unsigned_key(it->string)) continue;
        for (const char *p = it->string; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == '=' || *p == '.') {
                rc = ts_fail(e, TS_EFORMAT, "object: key '%s' has a character keys may not have", it->string);
                break;
            }
        if (rc) break;
        char key[512];
        snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", it->string);
        char num[64];
        if (cJSON_IsObject(it)) {
            rc = emit(it, key, false, b, e);
            continue;
        }
        puts_(b, key);
        puts_(b, "=");
        if (cJSON_IsString(it)) {
            for (const char *p = it->valuestring; *p; p++)
                if ((unsigned char)*p < 0x20) {
                    rc = ts_fail(e, TS_EFORMAT, "object: '%s' holds a control character", key);
                    break;
                }
            puts_(b, it->valuestring);
        } else if (cJSON_IsNumber(it)) {
            if (int_text(it, num, sizeof num)) {
                rc = ts_fail(e, TS_EFORMAT, "object: '%s' is not an integer (signed fields hold no floats)", key);
                break;
            }
            puts_(b, num);
        } else if (cJSON_IsBool(it)) {
            puts_(b, cJSON_IsTrue(it) ? "true" : "false");
        } else if (cJSON_IsArray(it)) {
            int j = 0;
            for (const cJSON *x = it->child; x; x = x->next, j++) {
                if (!cJSON_IsNumber(x) || int_text(x, num, sizeof num)) {
                    rc = ts_fail(e, TS_EFORMAT, "object: '%s' holds something other than integers", key);
                    break;
                }
                if (j) puts_(b, ",");
                puts_(b, num);
            }
        } else {
            rc = ts_fail(e, TS_EFORMAT, "object: '%s' has a type signed objects may not hold", key);
        }
        puts_(b, "\n");
    }
    free(items);
    if (!rc && b->oom) rc = ts_fail(e, TS_ENOMEM, "out of memory");
    return rc;
}

char *node_obj_canonical(const cJSON *obj, ts_err *e) {
    if (!cJSON_IsObject(obj)) {
        ts_fail(e, TS_EFORMAT, "object: not a JSON object");
        return NULL;
    }
    ts_sbuf b = {0};
    puts_(&b, "tessera-object-v1\n");
    if (emit(obj, "", true, &b, e)) {
        free(b.p);
        return NULL;
    }
    if (b.oom) {
        free(b.p);
        ts_fail(e, TS_ENOMEM, "out of memory");
        return NULL;
    }
    return b.p;
}

int node_obj_sign(cJSON *obj, const ts_keypair *kp, ts_err *e) {
    char pk[2 * TS_PK_BYTES + 1];
    ts_hex(pk, kp->pk, TS_PK_BYTES);
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "signature");
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "signer");
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "scheme");
    cJSON_AddStringToObject(obj, "scheme", TS_SIG_SCHEME_NAME);
    cJSON_AddStringToObject(obj, "signer", pk);
    char *text = node_obj_canonical(obj, e);
    if (!text) return e ? e->code : TS_EFORMAT;
    uint8_t sig[TS_SIG_BYTES];
    int rc = ts_sign(kp, NODE_OBJ_TAG, text, strlen(text), sig, e);
    free(text);
    if (rc) return rc;
    char hex[2 * TS_SIG_BYTES + 1];
    ts_hex(hex, sig, TS_SIG_BYTES);
    cJSON_AddStringToObject(obj, "signature", hex);
    return TS_OK;
}

int node_obj_parse(const uint8_t *buf, size_t len, const char *kind, const char *run_id,
                   const uint8_t *pk, cJSON **out, ts_err *e) {
    *out = NULL;
    if (len > NODE_OBJ_MAX) return ts_fail(e, TS_ETOOBIG, "object of %zu bytes is over the limit", len);
    cJSON *o = cJSON_ParseWithLength((const char *)buf, len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return ts_fail(e, TS_EFORMAT, "not a JSON object");
    }
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kind");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "scheme");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "run_id");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "signer");
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "signature");
    uint8_t signer[TS_PK_BYTES], sig[TS_SIG_BYTES];
    int rc = TS_OK;
    if (!cJSON_IsString(k) || strcmp(k->valuestring, kind))
        rc = ts_fail(e, TS_EFORMAT, "object is not a %s (kind '%s')", kind, cJSON_IsString(k) ? k->valuestring : "?");
    else if (!sc)
        rc = ts_fail(e, TS_EFORMAT,
                     "%s has no \"scheme\" member: made by an earlier Tessera with Ed25519 keys, no longer "
                     "accepted (objects are signed with %s)",
                     kind, TS_SIG_SCHEME_NAME);
    else if (!cJSON_IsString(sc) || strcmp(sc->valuestring, TS_SIG_SCHEME_NAME))
        rc = ts_fail(e, TS_EFORMAT, "%s is signed with scheme '%s', not %s, the only one accepted%s", kind,
                     cJSON_IsString(sc) ? sc->valuestring : "?", TS_SIG_SCHEME_NAME,
                     cJSON_IsString(sc) && !strcmp(sc->valuestring, "ed25519")
                         ? " (Ed25519 is from an earlier Tessera)"
                         : "");
    else if (!cJSON_IsString(r) || (run_id && strcmp(r->valuestring, run_id)))
        rc = ts_fail(e, TS_EDENIED, "%s belongs to run '%s', not '%s'", kind, cJSON_IsString(r) ? r->valuestring : "?",
                     run_id ? run_id : "");
    else if (!cJSON_IsString(s) || ts_unhex(signer, TS_PK_BYTES, s->valuestring))
        rc = ts_fail(e, TS_EFORMAT, "%s has no valid signer", kind);
    else if (!cJSON_IsString(g) || ts_unhex(sig, TS_SIG_BYTES, g->valuestring))
        rc = ts_fail(e, TS_EFORMAT, "%s has no valid signature", kind);
    else if (pk && memcmp(pk, signer, TS_PK_BYTES))
        rc = ts_fail(e, TS_ESIG, "%s is signed by another key than the expected one", kind);
    if (!rc) {
        char *text = node_obj_canonical(o, e);
        if (!text) rc = e ? e->code : TS_EFORMAT;
        else {
            rc = ts_verify(signer, NODE_OBJ_TAG, text, strlen(text), sig, e);
            free(text);
            if (rc) rc = ts_fail(e, TS_ESIG, "%s signature does not verify", kind);
        }
    }
    if (rc) {
        cJSON_Delete(o);
        return rc;
    }
    *out = o;
    return TS_OK;
}
