/*
 * sr25519.h - Schnorr signatures over the Ristretto group (schnorrkel), the
 * signature scheme of Substrate and Bittensor hotkeys and coldkeys.
 *
 * Built on libsodium's ristretto255 group and scalar arithmetic, its SHA-512
 * and BLAKE2b; the Keccak-f[1600] permutation, STROBE-128 and Merlin
 * transcripts are here.  Byte layouts follow schnorrkel 0.11:
 *
 *   public key  32 bytes: a compressed Ristretto point
 *   secret key  64 bytes: scalar (32, little-endian, canonical, < l) || nonce (32)
 *   mini-secret 32 bytes: expanded to a secret key "Ed25519-style"
 *                (SHA-512, clamp, divide by the cofactor), as Substrate does
 *   signature   64 bytes: R (32) || s (32) with bit 7 of byte 63 set
 *                (schnorrkel's marker that tells it from an Ed25519 signature)
 *
 * Everything returns 0 on success and -1 on a malformed input (a
 * non-canonical scalar or point, a signature without the marker).
 */
#ifndef TESSERA_SR25519_H
#define TESSERA_SR25519_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SR25519_PUBLIC_BYTES 32
#define SR25519_SECRET_BYTES 64
#define SR25519_MINI_BYTES 32
#define SR25519_SIG_BYTES 64
#define SR25519_CHAINCODE_BYTES 32

/* ------------------------------------------------ Keccak, STROBE, Merlin
 * Exposed for tests that compare intermediate states with other
 * implementations; nodes use only the sr25519_* calls below. */

void sr25519_keccak_f1600(uint64_t st[25]);

typedef struct sr25519_strobe {
    uint8_t st[200];  /* the Keccak state as bytes (little-endian lanes) */
    uint8_t pos, pos_begin, cur_flags;
} sr25519_strobe;

typedef struct sr25519_transcript {
    sr25519_strobe s;
} sr25519_transcript;

/* Merlin v1.0: a transcript labelled `label`. */
void sr25519_transcript_init(sr25519_transcript *t, const char *label);
void sr25519_transcript_append(sr25519_transcript *t, const char *label, const void *msg, size_t len);
void sr25519_transcript_append_u64(sr25519_transcript *t, const char *label, uint64_t x);
void sr25519_transcript_challenge(sr25519_transcript *t, const char *label, uint8_t *out, size_t len);
/* schnorrkel's witness bytes (merlin's TranscriptRng), drawn from a copy of
 * t, which is left unchanged: the copy is rekeyed with `witness` under
 * `label` (skipped when witness is NULL), then with the 32 rng bytes, and
 * gives len bytes.  Signing draws its nonce this way. */
void sr25519_transcript_witness(const sr25519_transcript *t, const char *label, const void *witness,
                                size_t wlen, const uint8_t rng[32], uint8_t *out, size_t len);

/* ------------------------------------------------------------- keys */

/* Expands a mini-secret (ExpansionMode::Ed25519) into a secret key and its
 * public key. */
int sr25519_keypair_from_mini(uint8_t sk[SR25519_SECRET_BYTES], uint8_t pk[SR25519_PUBLIC_BYTES],
                              const uint8_t mini[SR25519_MINI_BYTES]);
/* The public key of a secret key; -1 when the scalar is not canonical. */
int sr25519_public_of(uint8_t pk[SR25519_PUBLIC_BYTES], const uint8_t sk[SR25519_SECRET_BYTES]);

/* The other common 64-byte secret layout ("ed25519 bytes": scalar * 8 ||
 * nonce, what schnorrkel's to_ed25519_bytes and polkadot-js write). */
int sr25519_secret_from_ed25519_bytes(uint8_t sk[SR25519_SECRET_BYTES], const uint8_t in[64]);
void sr25519_secret_to_ed25519_bytes(uint8_t out[64], const uint8_t sk[SR25519_SECRET_BYTES]);

/* ------------------------------------------------------ signatures */

/* Signs msg under a signing context (Substrate uses "substrate").  rng: 32
 * bytes mixed into the nonce witness as schnorrkel does with its RNG; NULL
 * draws them from the system.  The nonce also depends on the secret nonce and
 * the whole transcript, so a fixed rng still gives a secure (deterministic)
 * signature. */
void sr25519_sign(uint8_t sig[SR25519_SIG_BYTES], const uint8_t sk[SR25519_SECRET_BYTES],
                  const uint8_t pk[SR25519_PUBLIC_BYTES], const void *ctx, size_t ctxlen,
                  const void *msg, size_t len, const uint8_t rng[32]);
/* 0 when the signature verifies, -1 otherwise. */
int sr25519_verify(const uint8_t sig[SR25519_SIG_BYTES], const uint8_t pk[SR25519_PUBLIC_BYTES],
                   const void *ctx, size_t ctxlen, const void *msg, size_t len);

/* ------------------------------------------------------ derivation
 * Substrate's secret URIs: "//hard" junctions (soft "/x" junctions are not
 * supported).  A junction's chain code is its SCALE encoding (a decimal
 * number as u64 little-endian, anything else as a compact-length-prefixed
 * string) zero-padded to 32 bytes, or its BLAKE2b-256 when longer. */
void sr25519_junction_chaincode(uint8_t cc[SR25519_CHAINCODE_BYTES], const char *junction, size_t len);
/* Hard derivation (schnorrkel hard_derive_mini_secret_key with an empty
 * extra): the child's mini-secret. */
void sr25519_derive_hard(uint8_t child_mini[SR25519_MINI_BYTES], const uint8_t sk[SR25519_SECRET_BYTES],
                         const uint8_t cc[SR25519_CHAINCODE_BYTES]);

/* The mini-secret of Substrate's development phrase ("bottom drive obey lake
 * curtain smoke basket hold race lonely fit walk"), from which //Alice, //Bob,
 * ... are derived. */
extern const uint8_t SR25519_DEV_MINI[SR25519_MINI_BYTES];

/* A secret URI: "//Alice", "//Alice//stash" (from the dev phrase), or
 * "0x<64 hex mini-secret>" followed by any "//junction"s.  -1 on anything
 * else (soft junctions, phrases, passwords). */
int sr25519_keypair_from_uri(uint8_t sk[SR25519_SECRET_BYTES], uint8_t pk[SR25519_PUBLIC_BYTES],
                             const char *uri);

#ifdef __cplusplus
}
#endif
#endif
