/*
 * extrinsic.c - calls, signed extensions, eras and the signed v4 envelope
 * (see extrinsic.h), plus DispatchError to "Pallet.ErrorName".
 *
 * Values go through the metadata-driven encoder wherever the metadata gives
 * a type (the nonce's width, the tip's, the address and signature enums), so
 * the bytes follow the runtime, not an assumption about it.  Signing is a
 * callback: this file holds no keys.
 */
#include "chain/extrinsic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ------------------------------------------------------------------- eras */

xt_era xt_era_immortal(void) { return (xt_era){.mortal = false}; }

xt_era xt_era_mortal(uint64_t period, uint64_t current_block) {
    uint64_t p = 4;
    while (p < period && p < (1u << 16)) p <<= 1;
    uint64_t phase = current_block % p;
    uint64_t q = p >> 12 ? p >> 12 : 1;
    return (xt_era){.mortal = true, .period = p, .phase = phase / q * q};
}

size_t xt_era_encode(xt_era era, uint8_t out[2]) {
    if (!era.mortal) {
        out[0] = 0;
        return 1;
    }
    int tz = __builtin_ctzll(era.period ? era.period : 4);
    unsigned low = (unsigned)(tz - 1 < 1 ? 1 : tz - 1 > 15 ? 15 : tz - 1);
    uint64_t q = era.period >> 12 ? era.period >> 12 : 1;
    uint16_t enc = (uint16_t)(low | (era.phase / q) << 4);
    out[0] = (uint8_t)enc;
    out[1] = (uint8_t)(enc >> 8);
    return 2;
}

int xt_era_decode(const uint8_t *p, size_t len, xt_era *era, size_t *used) {
    if (len < 1) return TS_EFORMAT;
    if (p[0] == 0) {
        *era = xt_era_immortal();
        if (used) *used = 1;
        return 0;
    }
    if (len < 2) return TS_EFORMAT;
    uint16_t enc = (uint16_t)(p[0] | p[1] << 8);
    uint64_t period = 2ull << (enc % 16);
    uint64_t q = period >> 12 ? period >> 12 : 1;
    uint64_t phase = (uint64_t)(enc >> 4) * q;
    if (period < 4 || phase >= period) return TS_EFORMAT;
    *era = (xt_era){.mortal = true, .period = period, .phase = phase};
    if (used) *used = 2;
    return 0;
}

uint64_t xt_era_birth(xt_era era, uint64_t current_block) {
    if (!era.mortal) return 0;
    uint64_t c = current_block > era.phase ? current_block : era.phase;
    return (c - era.phase) / era.period * era.period + era.phase;
}

uint64_t xt_era_death(xt_era era, uint64_t current_block) {
    if (!era.mortal) return UINT64_MAX;
    return xt_era_birth(era, current_block) + era.period;
}

/* ------------------------------------------------------------------- calls */

int xt_call_encode(const md_metadata *m, const char *pallet, const char *call, const cJSON *args,
                   scale_writer *w, ts_err *e) {
    const md_pallet *pl;
    const md_variant *v;
    int rc = md_call_find(m, pallet, call, &pl, &v, e);
    if (rc) return rc;
    bool by_name = v->nfields > 0 && v->fields[0].name;
    if (args && !cJSON_IsNull(args) && !(by_name ? cJSON_IsObject(args) : (cJSON_IsArray(args) || cJSON_IsObject(args))))
        return ts_fail(e, TS_EINVAL, "%s.%s: the arguments must be a JSON %s", pallet, call,
                       by_name ? "object keyed by field name" : "array");
    if (args && cJSON_IsObject(args)) {
        for (const cJSON *c = args->child; c; c = c->next) {
            bool known = false;
            for (uint32_t i = 0; i < v->nfields && !known; i++)
                known = v->fields[i].name && !strcmp(v->fields[i].name, c->string);
            if (!known) return ts_fail(e, TS_EINVAL, "%s.%s has no field '%s'", pallet, call, c->string);
        }
    } else if (args && cJSON_IsArray(args) && cJSON_GetArraySize(args) != (int)v->nfields) {
        return ts_fail(e, TS_EINVAL, "%s.%s takes %u arguments, %d given", pallet, call, v->nfields,
                       cJSON_GetArraySize(args));
    }
    size_t start = w->len;
    scale_put_u8(w, pl->index);
    scale_put_u8(w, v->index);
    for (uint32_t i = 0; i < v->nfields && !w->err; i++) {
        const md_field *f = &v->fields[i];
        char tn[160];
        const cJSON *val = NULL;
        if (args && cJSON_IsArray(args)) val = cJSON_GetArrayItem(args, (int)i);
        else if (args && f->name) val = cJSON_GetObjectItemCaseSensitive(args, f->name);
        if (!val) {
            w->len = start;
            return ts_fail(e, TS_EINVAL, "%s.%s: missing field '%s' (%s)", pallet, call,
                           f->name ? f->name : "?", md_type_name(m, f->type, tn, sizeof tn));
        }
        if ((rc = md_encode(m, f->type, val, w, e))) {
            w->len = start;
            if (f->name) return ts_wrap(e, "%s.%s: field '%s'", pallet, call, f->name);
            return ts_wrap(e, "%s.%s: argument %u", pallet, call, i + 1);
        }
    }
    if (w->err) return ts_fail(e, TS_ENOMEM, "out of memory");
    return 0;
}

/* ------------------------------------------------------- signed extensions */

/* A u64 as JSON the encoder takes at any width. */
static cJSON *u64_json(uint64_t v) {
    char s[24];
    snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    return cJSON_CreateString(s);
}

static cJSON *hash_json(const uint8_t h[32]) {
    char *s = scale_hex(h, 32);
    cJSON *j = s ? cJSON_CreateString(s) : NULL;
    free(s);
    return j;
}

/* Wraps a scalar (tip, nonce) in the single-field structs around it in the
 * extension's type: CheckNonce(Compact<u32>) takes the bare number, and
 * subtensor's ChargeTransactionPaymentWrapper { inner: ChargeTransactionPayment
 * (Compact<u64>) } takes {"inner": tip}.  Takes ownership of scalar. */
static cJSON *shape_scalar(const md_metadata *m, uint32_t type, cJSON *scalar, int depth) {
    const md_type *t = md_type_get(m, type);
    if (!scalar || !t || depth > MD_MAX_DEPTH || t->kind != MD_COMPOSITE || t->u.composite.nfields != 1)
        return scalar;
    const md_field *f = &t->u.composite.fields[0];
    cJSON *inner = shape_scalar(m, f->type, scalar, depth + 1);
    if (!f->name || !inner) return inner;
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        cJSON_Delete(inner);
        return NULL;
    }
    cJSON_AddItemToObject(o, f->name, inner);
    return o;
}

/* Encodes one part (extra or additional) of an extension: a JSON value
 * through its type, or nothing when val is NULL (the type must be empty). */
static int ext_part(const md_metadata *m, const md_signed_ext *x, uint32_t type, cJSON *val,
                    const char *part, scale_writer *w, ts_err *e) {
    int rc = 0;
    if (!val) {
        if (!md_type_is_empty(m, type)) {
            char tn[160];
            rc = ts_fail(e, TS_EUNSUPPORTED,
                         "signed extension %s: its %s (%s) is not empty and Tessera does not know what to put there",
                         x->identifier, part, md_type_name(m, type, tn, sizeof tn));
        }
        return rc;
    }
    if ((rc = md_encode(m, type, val, w, e))) ts_wrap(e, "signed extension %s %s", x->identifier, part);
    cJSON_Delete(val);
    return rc;
}

static bool is(const char *a, const char *b) { return !strcmp(a, b); }

int xt_extensions(const md_metadata *m, const xt_params *p, scale_writer *extra,
                  scale_writer *additional, ts_err *e) {
    if (m->extrinsic.version != 4)
        return ts_fail(e, TS_EUNSUPPORTED, "extrinsic format v%u is not supported (only v4 is)",
                       m->extrinsic.version);
    for (uint32_t i = 0; i < m->extrinsic.nexts; i++) {
        const md_signed_ext *x = &m->extrinsic.exts[i];
        const char *id = x->identifier;
        cJSON *ex = NULL, *ad = NULL;
        bool raw_era = false;
        if (is(id, "CheckSpecVersion")) {
            ad = cJSON_CreateNumber(p->spec_version);
        } else if (is(id, "CheckTxVersion")) {
            ad = cJSON_CreateNumber(p->tx_version);
        } else if (is(id, "CheckGenesis")) {
            ad = hash_json(p->genesis_hash);
        } else if (is(id, "CheckMortality") || is(id, "CheckEra")) {
            raw_era = true;
            ad = hash_json(p->era_block_hash);
        } else if (is(id, "CheckNonce")) {
            ex = shape_scalar(m, x->type, u64_json(p->nonce), 0);
        } else if (is(id, "ChargeTransactionPayment") || is(id, "ChargeTransactionPaymentWrapper")) {
            ex = shape_scalar(m, x->type, u64_json(p->tip), 0);
        } else if (is(id, "ChargeAssetTxPayment")) {
            ex = cJSON_CreateObject();
            if (ex) {
                cJSON_AddItemToObject(ex, "tip", u64_json(p->tip));
                cJSON_AddNullToObject(ex, "asset_id");
            }
        } else if (is(id, "CheckMetadataHash")) {
            ex = cJSON_Parse("{\"mode\": \"Disabled\"}");
            ad = cJSON_CreateNull();
        } else if (!is(id, "CheckNonZeroSender") && !is(id, "CheckWeight") &&
                   !(md_type_is_empty(m, x->type) && md_type_is_empty(m, x->additional))) {
            return ts_fail(e, TS_EUNSUPPORTED,
                           "signed extension %s is not supported (it carries data Tessera does not know how to fill)",
                           id);
        }
        int rc;
        if (raw_era) {
            uint8_t era[2];
            size_t n = xt_era_encode(p->era, era);
            rc = scale_put(extra, era, n) ? ts_fail(e, TS_ENOMEM, "out of memory") : 0;
        } else {
            rc = ext_part(m, x, x->type, ex, "extra data", extra, e);
            ex = NULL;
        }
        cJSON_Delete(ex);
        if (rc) {
            cJSON_Delete(ad);
            return rc;
        }
        if ((rc = ext_part(m, x, x->additional, ad, "additional signed data", additional, e))) return rc;
    }
    if (extra->err || additional->err) return ts_fail(e, TS_ENOMEM, "out of memory");
    return 0;
}

int xt_signing_payload(const md_metadata *m, const uint8_t *call, size_t call_len,
                       const xt_params *p, scale_writer *w, ts_err *e) {
    scale_writer extra = SCALE_WRITER_INIT, add = SCALE_WRITER_INIT;
    int rc = xt_extensions(m, p, &extra, &add, e);
    if (!rc && (scale_put(w, call, call_len) || scale_put(w, extra.p, extra.len) ||
                scale_put(w, add.p, add.len)))
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
    scale_writer_free(&extra);
    scale_writer_free(&add);
    return rc;
}

/* MultiAddress::Id(signer) (or a bare AccountId where the runtime uses one). */
static int put_address(const md_metadata *m, const xt_params *p, scale_writer *w, ts_err *e) {
    const md_type *t = md_type_get(m, m->extrinsic.address_type);
    if (!t) {
        scale_put_u8(w, 0);
        return scale_put(w, p->signer, 32) ? ts_fail(e, TS_ENOMEM, "out of memory") : 0;
    }
    cJSON *hex = hash_json(p->signer), *v = hex;
    if (hex && t->kind == MD_VARIANT) {
        v = cJSON_CreateObject();
        if (v) cJSON_AddItemToObject(v, "Id", hex);
        else cJSON_Delete(hex);
    }
    if (!v) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = md_encode(m, m->extrinsic.address_type, v, w, e);
    cJSON_Delete(v);
    return rc ? ts_wrap(e, "extrinsic address") : 0;
}

/* MultiSignature::Sr25519(sig). */
static int put_signature(const md_metadata *m, const uint8_t sig[64], scale_writer *w, ts_err *e) {
    const md_type *t = md_type_get(m, m->extrinsic.signature_type);
    if (!t) {
        scale_put_u8(w, 1);
        return scale_put(w, sig, 64) ? ts_fail(e, TS_ENOMEM, "out of memory") : 0;
    }
    char *h = scale_hex(sig, 64);
    cJSON *v = NULL;
    if (h && t->kind == MD_VARIANT) {
        v = cJSON_CreateObject();
        if (v) cJSON_AddStringToObject(v, "Sr25519", h);
    } else if (h) {
        v = cJSON_CreateString(h);
    }
    free(h);
    if (!v) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = md_encode(m, m->extrinsic.signature_type, v, w, e);
    cJSON_Delete(v);
    return rc ? ts_wrap(e, "extrinsic signature (sr25519)") : 0;
}

int xt_sign(const md_metadata *m, const uint8_t *call, size_t call_len, const xt_params *p,
            xt_sign_fn sign, void *ctx, xt_signed *out, ts_err *e) {
    memset(out, 0, sizeof *out);
    scale_writer extra = SCALE_WRITER_INIT, add = SCALE_WRITER_INIT, payload = SCALE_WRITER_INIT;
    scale_writer body = SCALE_WRITER_INIT, full = SCALE_WRITER_INIT;
    uint8_t sig[64];
    int rc = xt_extensions(m, p, &extra, &add, e);
    if (rc) goto done;
    scale_put(&payload, call, call_len);
    scale_put(&payload, extra.p, extra.len);
    scale_put(&payload, add.p, add.len);
    if (payload.err) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto done;
    }
    const uint8_t *msg = payload.p;
    size_t msg_len = payload.len;
    uint8_t digest[32];
    if (msg_len > 256) {
        scale_blake2_256(payload.p, payload.len, digest);
        msg = digest;
        msg_len = 32;
    }
    if (sign(ctx, msg, msg_len, sig)) {
        rc = ts_fail(e, TS_ESIG, "signing the extrinsic failed");
        goto done;
    }
    scale_put_u8(&body, 0x80 | 4); /* signed, format 4 */
    if ((rc = put_address(m, p, &body, e))) goto done;
    if ((rc = put_signature(m, sig, &body, e))) goto done;
    scale_put(&body, extra.p, extra.len);
    scale_put(&body, call, call_len);
    scale_put_vec(&full, body.p, body.len);
    if (body.err || full.err) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto done;
    }
    scale_blake2_256(full.p, full.len, out->hash);
    out->bytes = scale_writer_take(&full, &out->len);
done:
    scale_writer_free(&extra);
    scale_writer_free(&add);
    scale_writer_free(&payload);
    scale_writer_free(&body);
    scale_writer_free(&full);
    return rc;
}

void xt_signed_free(xt_signed *x) {
    free(x->bytes);
    memset(x, 0, sizeof *x);
}

/* -------------------------------------------------------- dispatch errors */

static void put_text(char *out, size_t cap, const char *fmt, const char *a, const char *b) {
    snprintf(out, cap, fmt, a, b);
}

int xt_dispatch_error(const md_metadata *m, const cJSON *err, char *out, size_t cap, ts_err *e) {
    if (cap) out[0] = 0;
    if (cJSON_IsString(err)) {
        snprintf(out, cap, "%s", err->valuestring);
        return 0;
    }
    if (!cJSON_IsObject(err) || !err->child || err->child->next)
        return ts_fail(e, TS_EFORMAT, "a DispatchError is a JSON object with one key");
    const char *kind = err->child->string;
    const cJSON *val = err->child;
    if (!strcmp(kind, "Module")) {
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(val, "index");
        const cJSON *er = cJSON_GetObjectItemCaseSensitive(val, "error");
        int pi = cJSON_IsNumber(idx) ? (int)idx->valuedouble : -1;
        int ei = -1;
        if (cJSON_IsNumber(er)) {
            ei = (int)er->valuedouble;
        } else if (cJSON_IsString(er)) {
            uint8_t *b;
            size_t n;
            if (!scale_unhex(er->valuestring, &b, &n)) {
                if (n >= 1) ei = b[0];
                free(b);
            }
        }
        if (pi < 0 || pi > 255 || ei < 0 || ei > 255)
            return ts_fail(e, TS_EFORMAT, "a Module DispatchError needs a pallet index and an error index");
        const md_pallet *p;
        const md_variant *v;
        if (md_error_find(m, (uint8_t)pi, (uint8_t)ei, &p, &v, NULL)) {
            snprintf(out, cap, "Module(pallet %d, error %d)", pi, ei);
            return 0;
        }
        put_text(out, cap, "%s.%s", p->name, v->name);
        return 0;
    }
    /* Token, Arithmetic, Transactional...: the inner enum's variant name */
    if (cJSON_IsObject(val) && val->child && !val->child->next) {
        put_text(out, cap, "%s.%s", kind, val->child->string);
    } else if (cJSON_IsString(val)) {
        put_text(out, cap, "%s.%s", kind, val->valuestring);
    } else {
        snprintf(out, cap, "%s", kind);
    }
    return 0;
}

int xt_dispatch_error_bytes(const md_metadata *m, const uint8_t *p, size_t len, char *out,
                            size_t cap, ts_err *e) {
    uint32_t t = md_type_by_path(m, "sp_runtime::DispatchError");
    if (t == MD_NO_TYPE)
        return ts_fail(e, TS_ENOTFOUND, "the metadata has no sp_runtime::DispatchError type");
    cJSON *j;
    int rc = md_decode(m, t, p, len, &j, e);
    if (rc) return ts_wrap(e, "DispatchError");
    rc = xt_dispatch_error(m, j, out, cap, e);
    cJSON_Delete(j);
    return rc;
}
