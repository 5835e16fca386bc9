/*
 * extrinsic.h - signed transactions (extrinsics, format v4) for a Substrate
 * chain, built from its metadata: the call, the signed extensions the
 * runtime declares, the mortal era, the signing payload and the envelope that
 * author_submitExtrinsic takes.  Also the decoding of a DispatchError into
 * "Pallet.ErrorName".
 *
 *   scale_writer call = SCALE_WRITER_INIT;
 *   xt_call_encode(md, "SubtensorModule", "set_weights", args, &call, &e);
 *   xt_params p = {.nonce = ..., .spec_version = ..., ...,
 *                  .era = xt_era_mortal(64, best), .era_block_hash = <hash of
 *                  block xt_era_birth(p.era, best)>};
 *   xt_signed x;
 *   xt_sign(md, call.p, call.len, &p, my_sr25519_sign, key, &x, &e);
 *   ... submit "0x" + hex(x.bytes, x.len); x.hash is the transaction hash
 *   xt_signed_free(&x);
 *
 * Signed extensions: each one the metadata lists contributes its "extra"
 * (carried in the extrinsic) and its "additional signed" data (signed only),
 * encoded with the types the metadata gives:
 *   CheckSpecVersion, CheckTxVersion   additional u32 spec / transaction version
 *   CheckGenesis                       additional genesis hash
 *   CheckMortality, CheckEra           extra era; additional hash of the era's birth block
 *   CheckNonce                         extra Compact nonce (u32 or u64 as typed)
 *   ChargeTransactionPayment           extra Compact tip (also subtensor's
 *   ChargeTransactionPaymentWrapper    { inner: ChargeTransactionPayment })
 *   ChargeAssetTxPayment               extra tip + asset id None
 *   CheckMetadataHash                  extra mode Disabled; additional None
 *   CheckNonZeroSender, CheckWeight and any other extension whose extra and
 *   additional types are both empty    nothing (subtensor's
 *                                      SudoTransactionExtension, CheckShieldedTxValidity,
 *                                      SubtensorTransactionExtension, DrandPriority...)
 * Any other extension is an error naming it: a runtime upgrade that adds one
 * must fail loudly rather than produce transactions the chain rejects.
 */
#ifndef TESSERA_CHAIN_EXTRINSIC_H
#define TESSERA_CHAIN_EXTRINSIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain/metadata.h"
#include "chain/scale.h"
#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

/* ----------------------------------------------------------------- eras
 * A mortal transaction is valid for `period` blocks from its birth block.
 * The period is rounded up to a power of two in [4, 65536]; the phase is the
 * block number modulo the period (quantized for periods over 4096). */
typedef struct xt_era {
    bool mortal;
    uint64_t period, phase;
} xt_era;

xt_era xt_era_immortal(void);
xt_era xt_era_mortal(uint64_t period, uint64_t current_block);
/* 1 byte (immortal: 0x00) or 2 bytes (mortal); returns the count. */
size_t xt_era_encode(xt_era era, uint8_t out[2]);
int xt_era_decode(const uint8_t *p, size_t len, xt_era *era, size_t *used);
/* The block the era starts at, seen from a current block; the hash of this
 * block goes into the signature (xt_params.era_block_hash).  0 for immortal. */
uint64_t xt_era_birth(xt_era era, uint64_t current_block);
/* The first block at which the transaction is no longer valid
 * (UINT64_MAX for immortal). */
uint64_t xt_era_death(xt_era era, uint64_t current_block);

/* ------------------------------------------------------------- signing */

typedef struct xt_params {
    uint8_t signer[32];          /* sr25519 public key (AccountId32) */
    uint64_t nonce;              /* System.Account nonce of the signer */
    uint64_t tip;                /* in the chain's smallest unit */
    uint32_t spec_version;       /* state_getRuntimeVersion */
    uint32_t tx_version;
    uint8_t genesis_hash[32];
    xt_era era;
    uint8_t era_block_hash[32];  /* block xt_era_birth(era, ...) (genesis when immortal) */
} xt_params;

/* Signs payload[0..len) (at most 256 bytes: longer payloads are hashed
 * first) with sr25519, context "substrate"; returns 0 or non-zero. */
typedef int (*xt_sign_fn)(void *ctx, const uint8_t *payload, size_t len, uint8_t sig[64]);

typedef struct xt_signed {
    uint8_t *bytes;    /* the extrinsic with its compact length prefix */
    size_t len;
    uint8_t hash[32];  /* BLAKE2b-256 of bytes: the transaction hash */
} xt_signed;

/* Encodes a call: pallet index, call index, then the fields from args, a JSON
 * object keyed by field name (NULL or {} for a call without fields).  Every
 * field must be given, and no other; errors name "Pallet.call", the field and
 * the type expected. */
int xt_call_encode(const md_metadata *m, const char *pallet, const char *call,
                   const struct cJSON *args, scale_writer *w, ts_err *e);

/* The signed extensions' extra and additional-signed bytes. */
int xt_extensions(const md_metadata *m, const xt_params *p, scale_writer *extra,
                  scale_writer *additional, ts_err *e);
/* The bytes signed: call || extra || additional, before the >256-byte
 * hashing xt_sign applies. */
int xt_signing_payload(const md_metadata *m, const uint8_t *call, size_t call_len,
                       const xt_params *p, scale_writer *w, ts_err *e);
/* Builds, signs (through the callback) and envelopes a v4 extrinsic:
 * compact length || 0x84 || address MultiAddress::Id(signer) ||
 * signature MultiSignature::Sr25519 || extra || call. */
int xt_sign(const md_metadata *m, const uint8_t *call, size_t call_len, const xt_params *p,
            xt_sign_fn sign, void *ctx, xt_signed *out, ts_err *e);
void xt_signed_free(xt_signed *x);

/* --------------------------------------------------------- dispatch errors */

/* A DispatchError as decoded by md_decode ({"Module": {"index": 7, "error":
 * "0x06000000"}}, {"BadOrigin": null}, {"Token": {"FundsUnavailable": null}},
 * ...) as text: "Pallet.ErrorName" for module errors (the error's name from
 * the pallet's error enum), otherwise "BadOrigin", "Token.FundsUnavailable"... */
int xt_dispatch_error(const md_metadata *m, const struct cJSON *err, char *out, size_t cap,
                      ts_err *e);
/* The same from SCALE bytes of sp_runtime::DispatchError. */
int xt_dispatch_error_bytes(const md_metadata *m, const uint8_t *p, size_t len, char *out,
                            size_t cap, ts_err *e);

#ifdef __cplusplus
}
#endif
#endif
