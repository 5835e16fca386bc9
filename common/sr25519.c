/*
 * sr25519.c - Schnorr signatures over Ristretto255 as schnorrkel 0.11 makes
 * them (the "sr25519" of Substrate, Polkadot and Bittensor).
 *
 * Layers, bottom up; each follows the published construction it is named
 * after, so a signature made here verifies in schnorrkel and the reverse:
 *
 *   Keccak-f[1600]   the 24-round permutation of FIPS 202, on 25 lanes of 64
 *                    bits; the byte state maps to lanes little-endian.
 *   STROBE-128       (strobe.sourceforge.io, v1.0.2) reduced to what Merlin
 *                    needs: the operations meta-AD, AD, PRF and KEY.  The
 *                    duplex rate is 166 bytes (200 - 2 * 16 security bytes -
 *                    2 padding bytes); a block ends by xoring the operation's
 *                    start position and the padding 0x04 at pos, 0x80 at
 *                    byte 167, then permuting.  Operations with the C or K
 *                    flag start on a fresh block.
 *   Merlin v1.0      (merlin.cool) transcripts over STROBE: a transcript
 *                    named L is STROBE("Merlin v1.0") then message "dom-sep"
 *                    = L; a message is meta-AD(label || u32le(len)) then
 *                    AD(data); a challenge is meta-AD(label || u32le(len))
 *                    then PRF(len).  The witness ("nonce") generator works on
 *                    a copy of the transcript: for each secret seed
 *                    meta-AD(label || u32le(len)) + KEY(seed), then
 *                    meta-AD("rng") + KEY(32 random bytes), then for the
 *                    output meta-AD(u32le(len)) + PRF(len).  The transcript
 *                    itself is left as it was.
 *   schnorrkel 0.11  keys, signatures and hard derivation:
 *     mini-secret (32) -> secret key, "Ed25519 expansion": h = SHA-512(mini),
 *       clamp h[0..32] as Ed25519 does (clear bits 0-2 and 255, set 254),
 *       divide the 256-bit number by the cofactor 8 (so the result is below
 *       2^252 < l and the public key is scalar * B in the prime-order group),
 *       nonce = h[32..64].
 *     secret key (64) = scalar (32, little-endian, < l) || nonce (32).  The
 *       "ed25519 bytes" layout that polkadot-js and to_ed25519_bytes write
 *       stores scalar * 8 instead (exact: the scalar is below 2^253).
 *     signature (64) = R || s, s = k * x + r, with bit 7 of byte 63 set to
 *       mark it as schnorrkel's (s < l < 2^253 leaves the bit free), where
 *       the transcript is "SigningContext": "" = ctx, "sign-bytes" = msg,
 *       "proto-name" = "Schnorr-sig", "sign:pk" = pk; r = witness("signing",
 *       nonce) reduced from 64 bytes, R = r * B, "sign:R" = R, and
 *       k = challenge("sign:c", 64 bytes) reduced mod l.
 *     hard derivation: transcript "SchnorrRistrettoHDKD": "sign-bytes" = "",
 *       "chain-code" = cc, "secret-key" = scalar; the child mini-secret is
 *       challenge("HDKD-hard", 32).
 *   Substrate        secret URIs ("//Alice//stash") and junction chain codes
 *                    (DeriveJunction: SCALE encoding, padded or hashed).
 *
 * The group and scalar arithmetic, SHA-512 and BLAKE2b are libsodium's.  Secret
 * scalar operations go through libsodium's constant-time code; verification
 * handles only public data.  Every temporary that held secret material is
 * wiped with sodium_memzero.
 *
 * One deliberate difference from schnorrkel: verification refuses the
 * identity as a public key (schnorrkel accepts it, and then anyone can sign
 * for it); @scure/sr25519 refuses it too.
 */
#include <string.h>

#include <sodium.h>

#include "sr25519.h"

const uint8_t SR25519_DEV_MINI[SR25519_MINI_BYTES] = {
    0xfa, 0xc7, 0x95, 0x9d, 0xbf, 0xe7, 0x2f, 0x05, 0x2e, 0x5a, 0x0c, 0x3c, 0x8d, 0x65, 0x30, 0xf2,
    0x02, 0xb0, 0x2f, 0xd8, 0xf9, 0xf5, 0xca, 0x35, 0x80, 0xec, 0x8d, 0xeb, 0x77, 0x97, 0x47, 0x9e,
};

/* ---------------------------------------------------------------- Keccak */

static uint64_t rotl64(uint64_t x, unsigned n) { return n ? (x << n) | (x >> (64 - n)) : x; }

void sr25519_keccak_f1600(uint64_t a[25]) {
    static const uint64_t rc[24] = {
        0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
        0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
        0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
        0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
        0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
        0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
    };
    /* rotation of lane x + 5y (rho) */
    static const uint8_t rho[25] = {0,  1,  62, 28, 27, 36, 44, 6,  55, 20, 3,  10, 43,
                                    25, 39, 41, 45, 15, 21, 8,  18, 2,  61, 56, 14};
    for (int round = 0; round < 24; round++) {
        uint64_t c[5], b[25];
        /* theta: xor every lane with the parities of two neighbouring columns */
        for (int x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        for (int x = 0; x < 5; x++) {
            uint64_t d = c[(x + 4) % 5] ^ rotl64(c[(x + 1) % 5], 1);
            for (int y = 0; y < 25; y += 5) a[x + y] ^= d;
        }
        /* rho and pi: lane (x, y) rotates and moves to (y, 2x + 3y) */
        for (int x = 0; x < 5; x++)
            for (int y = 0; y < 5; y++) b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl64(a[x + 5 * y], rho[x + 5 * y]);
        /* chi: the only non-linear step, along rows */
        for (int y = 0; y < 25; y += 5)
            for (int x = 0; x < 5; x++) a[x + y] = b[x + y] ^ (~b[(x + 1) % 5 + y] & b[(x + 2) % 5 + y]);
        /* iota */
        a[0] ^= rc[round];
    }
}

/* ---------------------------------------------------------------- STROBE */

enum {
    STROBE_R = 166,
    FLAG_I = 1,
    FLAG_A = 2,
    FLAG_C = 4,
    FLAG_M = 16,
    FLAG_K = 32,
};

static void strobe_permute(uint8_t st[200]) {
    uint64_t lanes[25];
    for (int i = 0; i < 25; i++) {
        uint64_t v = 0;
        for (int j = 7; j >= 0; j--) v = (v << 8) | st[8 * i + j];
        lanes[i] = v;
    }
    sr25519_keccak_f1600(lanes);
    for (int i = 0; i < 25; i++)
        for (int j = 0; j < 8; j++) st[8 * i + j] = (uint8_t)(lanes[i] >> (8 * j));
    sodium_memzero(lanes, sizeof lanes);
}

/* Ends the current block: the operation's start and the padding go in, then
 * the permutation. */
static void strobe_run_f(sr25519_strobe *s) {
    s->st[s->pos] ^= s->pos_begin;
    s->st[s->pos + 1] ^= 0x04;
    s->st[STROBE_R + 1] ^= 0x80;
    strobe_permute(s->st);
    s->pos = 0;
    s->pos_begin = 0;
}

static void strobe_absorb(sr25519_strobe *s, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        s->st[s->pos++] ^= p[i];
        if (s->pos == STROBE_R) strobe_run_f(s);
    }
}

/* KEY: the state bytes are replaced by the key (duplexing with C set, T not). */
static void strobe_overwrite(sr25519_strobe *s, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        s->st[s->pos++] = p[i];
        if (s->pos == STROBE_R) strobe_run_f(s);
    }
}

/* PRF: output the state bytes and zero them (duplexing zeros with C set). */
static void strobe_squeeze(sr25519_strobe *s, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        out[i] = s->st[s->pos];
        s->st[s->pos++] = 0;
        if (s->pos == STROBE_R) strobe_run_f(s);
    }
}

/* Starts an operation, or continues the previous one when `more` (which must
 * then have the same flags: every caller here passes matching ones). */
static void strobe_begin(sr25519_strobe *s, uint8_t flags, int more) {
    if (more) return;
    uint8_t hdr[2] = {s->pos_begin, flags};
    s->pos_begin = (uint8_t)(s->pos + 1);
    s->cur_flags = flags;
    strobe_absorb(s, hdr, 2);
    if ((flags & (FLAG_C | FLAG_K)) && s->pos != 0) strobe_run_f(s);
}

static void strobe_meta_ad(sr25519_strobe *s, const void *p, size_t n, int more) {
    strobe_begin(s, FLAG_M | FLAG_A, more);
    strobe_absorb(s, p, n);
}

static void strobe_ad(sr25519_strobe *s, const void *p, size_t n) {
    strobe_begin(s, FLAG_A, 0);
    strobe_absorb(s, p, n);
}

static void strobe_prf(sr25519_strobe *s, uint8_t *out, size_t n) {
    strobe_begin(s, FLAG_I | FLAG_A | FLAG_C, 0);
    strobe_squeeze(s, out, n);
}

static void strobe_key(sr25519_strobe *s, const void *p, size_t n) {
    strobe_begin(s, FLAG_A | FLAG_C, 0);
    strobe_overwrite(s, p, n);
}

static void strobe_init(sr25519_strobe *s, const char *protocol) {
    memset(s, 0, sizeof *s);
    static const uint8_t head[6] = {1, STROBE_R + 2, 1, 0, 1, 96};
    memcpy(s->st, head, 6);
    memcpy(s->st + 6, "STROBEv1.0.2", 12);
    strobe_permute(s->st);
    strobe_meta_ad(s, protocol, strlen(protocol), 0);
}

/* ---------------------------------------------------------------- Merlin */

static void le32(uint8_t out[4], size_t n) {
    for (int i = 0; i < 4; i++) out[i] = (uint8_t)(n >> (8 * i));
}

/* meta-AD(label || u32le(n)) as one operation. */
static void merlin_frame(sr25519_strobe *s, const char *label, size_t n) {
    uint8_t len[4];
    le32(len, n);
    strobe_meta_ad(s, label, strlen(label), 0);
    strobe_meta_ad(s, len, 4, 1);
}

void sr25519_transcript_init(sr25519_transcript *t, const char *label) {
    strobe_init(&t->s, "Merlin v1.0");
    sr25519_transcript_append(t, "dom-sep", label, strlen(label));
}

void sr25519_transcript_append(sr25519_transcript *t, const char *label, const void *msg, size_t len) {
    merlin_frame(&t->s, label, len);
    strobe_ad(&t->s, msg, len);
}

void sr25519_transcript_append_u64(sr25519_transcript *t, const char *label, uint64_t x) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(x >> (8 * i));
    sr25519_transcript_append(t, label, b, 8);
}

void sr25519_transcript_challenge(sr25519_transcript *t, const char *label, uint8_t *out, size_t len) {
    merlin_frame(&t->s, label, len);
    strobe_prf(&t->s, out, len);
}

void sr25519_transcript_witness(const sr25519_transcript *t, const char *label, const void *witness,
                                size_t wlen, const uint8_t rng[32], uint8_t *out, size_t len) {
    sr25519_strobe s = t->s;
    uint8_t n[4];
    if (witness) {
        merlin_frame(&s, label, wlen);
        strobe_key(&s, witness, wlen);
    }
    strobe_meta_ad(&s, "rng", 3, 0);
    strobe_key(&s, rng, 32);
    le32(n, len);
    strobe_meta_ad(&s, n, 4, 0);
    strobe_prf(&s, out, len);
    sodium_memzero(&s, sizeof s);
}

/* ---------------------------------------------------------------- scalars */

/* 1 when the little-endian s is below the group order l (constant time). */
static int scalar_canonical(const uint8_t s[32]) {
    static const uint8_t l[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                  0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                                  0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};
    unsigned borrow = 0;
    for (int i = 0; i < 32; i++) borrow = (((unsigned)s[i] - l[i] - borrow) >> 8) & 1;
    return (int)borrow; /* s - l borrows exactly when s < l */
}

/* A 64-byte little-endian number reduced mod l. */
static void scalar_wide(uint8_t out[32], uint8_t wide[64]) {
    crypto_core_ristretto255_scalar_reduce(out, wide);
    sodium_memzero(wide, 64);
}

/* The 256-bit little-endian number divided by 8 / multiplied by 8 (mod 2^256). */
static void div_cofactor(uint8_t out[32], const uint8_t in[32]) {
    for (int i = 0; i < 31; i++) out[i] = (uint8_t)((in[i] >> 3) | (in[i + 1] << 5));
    out[31] = (uint8_t)(in[31] >> 3);
}

static void mul_cofactor(uint8_t out[32], const uint8_t in[32]) {
    for (int i = 31; i > 0; i--) out[i] = (uint8_t)((in[i] << 3) | (in[i - 1] >> 5));
    out[0] = (uint8_t)(in[0] << 3);
}

/* ---------------------------------------------------------------- keys */

int sr25519_keypair_from_mini(uint8_t sk[SR25519_SECRET_BYTES], uint8_t pk[SR25519_PUBLIC_BYTES],
                              const uint8_t mini[SR25519_MINI_BYTES]) {
    uint8_t h[64], wide[64] = {0};
    crypto_hash_sha512(h, mini, SR25519_MINI_BYTES);
    h[0] &= 248;
    h[31] &= 63;
    h[31] |= 64;
    div_cofactor(wide, h); /* below 2^252 < l already; the reduction is a no-op */
    scalar_wide(sk, wide);
    memcpy(sk + 32, h + 32, 32);
    sodium_memzero(h, sizeof h);
    return sr25519_public_of(pk, sk);
}

/* Also -1 for the zero scalar, whose public key would be the identity. */
int sr25519_public_of(uint8_t pk[SR25519_PUBLIC_BYTES], const uint8_t sk[SR25519_SECRET_BYTES]) {
    if (!scalar_canonical(sk)) return -1;
    return crypto_scalarmult_ristretto255_base(pk, sk) == 0 ? 0 : -1;
}

int sr25519_secret_from_ed25519_bytes(uint8_t sk[SR25519_SECRET_BYTES], const uint8_t in[64]) {
    uint8_t x[32];
    div_cofactor(x, in);
    if (!scalar_canonical(x)) {
        sodium_memzero(x, sizeof x);
        return -1;
    }
    memcpy(sk, x, 32);
    memmove(sk + 32, in + 32, 32);
    sodium_memzero(x, sizeof x);
    return 0;
}

void sr25519_secret_to_ed25519_bytes(uint8_t out[64], const uint8_t sk[SR25519_SECRET_BYTES]) {
    uint8_t x[32];
    mul_cofactor(x, sk);
    memmove(out + 32, sk + 32, 32);
    memcpy(out, x, 32);
    sodium_memzero(x, sizeof x);
}

/* ---------------------------------------------------------------- signatures */

/* The transcript up to the commitment to R, shared by sign and verify. */
static void sig_transcript(sr25519_transcript *t, const uint8_t pk[32], const void *ctx, size_t ctxlen,
                           const void *msg, size_t len) {
    sr25519_transcript_init(t, "SigningContext");
    sr25519_transcript_append(t, "", ctx, ctxlen);
    sr25519_transcript_append(t, "sign-bytes", msg, len);
    sr25519_transcript_append(t, "proto-name", "Schnorr-sig", 11);
    sr25519_transcript_append(t, "sign:pk", pk, 32);
}

void sr25519_sign(uint8_t sig[SR25519_SIG_BYTES], const uint8_t sk[SR25519_SECRET_BYTES],
                  const uint8_t pk[SR25519_PUBLIC_BYTES], const void *ctx, size_t ctxlen,
                  const void *msg, size_t len, const uint8_t rng[32]) {
    sr25519_transcript t;
    uint8_t rb[32], wide[64], r[32], k[32], kx[32], big_r[32];
    if (rng) {
        memcpy(rb, rng, 32);
    } else {
        if (sodium_init() < 0) { /* cannot happen once the library loaded */ }
        randombytes_buf(rb, 32);
    }
    sig_transcript(&t, pk, ctx, ctxlen, msg, len);
    sr25519_transcript_witness(&t, "signing", sk + 32, 32, rb, wide, 64);
    scalar_wide(r, wide);
    /* r = 0 has probability 2^-252; its R would be the identity, still a valid
     * (if odd) commitment, and verify agrees with it. */
    if (crypto_scalarmult_ristretto255_base(big_r, r) != 0) memset(big_r, 0, 32);
    sr25519_transcript_append(&t, "sign:R", big_r, 32);
    sr25519_transcript_challenge(&t, "sign:c", wide, 64);
    scalar_wide(k, wide);
    crypto_core_ristretto255_scalar_mul(kx, k, sk);
    memcpy(sig, big_r, 32);
    crypto_core_ristretto255_scalar_add(sig + 32, kx, r);
    sig[63] |= 0x80;
    sodium_memzero(&t, sizeof t);
    sodium_memzero(rb, sizeof rb);
    sodium_memzero(r, sizeof r);
    sodium_memzero(kx, sizeof kx);
}

int sr25519_verify(const uint8_t sig[SR25519_SIG_BYTES], const uint8_t pk[SR25519_PUBLIC_BYTES],
                   const void *ctx, size_t ctxlen, const void *msg, size_t len) {
    uint8_t s[32], wide[64], k[32], neg_k[32], ka[32], sb[32], r_check[32];
    static const uint8_t zero[32];
    if (!(sig[63] & 0x80)) return -1;
    memcpy(s, sig + 32, 32);
    s[31] &= 0x7f;
    if (!scalar_canonical(s)) return -1;
    if (!crypto_core_ristretto255_is_valid_point(pk) || !memcmp(pk, zero, 32)) return -1;
    if (!crypto_core_ristretto255_is_valid_point(sig)) return -1;
    sr25519_transcript t;
    sig_transcript(&t, pk, ctx, ctxlen, msg, len);
    sr25519_transcript_append(&t, "sign:R", sig, 32);
    sr25519_transcript_challenge(&t, "sign:c", wide, 64);
    scalar_wide(k, wide);
    /* R' = s*B - k*A; libsodium reports an identity result as -1, which is a
     * legitimate intermediate here (s = 0 or k = 0), so it becomes zeros. */
    crypto_core_ristretto255_scalar_negate(neg_k, k);
    if (crypto_scalarmult_ristretto255(ka, neg_k, pk) != 0) memset(ka, 0, 32);
    if (crypto_scalarmult_ristretto255_base(sb, s) != 0) memset(sb, 0, 32);
    if (crypto_core_ristretto255_add(r_check, sb, ka) != 0) return -1;
    return sodium_memcmp(r_check, sig, 32) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- derivation */

/* Rust's u64::from_str, as Substrate's DeriveJunction uses it: an optional
 * '+', then one or more decimal digits, no overflow. */
static int parse_u64(const char *p, size_t len, uint64_t *out) {
    size_t i = 0;
    uint64_t v = 0;
    if (len > 0 && p[0] == '+') i = 1;
    if (i == len) return -1;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

void sr25519_junction_chaincode(uint8_t cc[SR25519_CHAINCODE_BYTES], const char *junction, size_t len) {
    uint8_t prefix[5];
    size_t plen;
    uint64_t n;
    memset(cc, 0, SR25519_CHAINCODE_BYTES);
    if (parse_u64(junction, len, &n) == 0) {
        for (int i = 0; i < 8; i++) cc[i] = (uint8_t)(n >> (8 * i));
        return;
    }
    /* SCALE compact length: modes 0-2 in the low two bits, else a length of
     * bytes (4 here, for a size_t up to 2^32 - 1 that fits) then the bytes */
    if (len < (1u << 6)) {
        prefix[0] = (uint8_t)(len << 2);
        plen = 1;
    } else if (len < (1u << 14)) {
        prefix[0] = (uint8_t)((len << 2) | 1);
        prefix[1] = (uint8_t)(len >> 6);
        plen = 2;
    } else if (len < (1u << 30)) {
        uint32_t v = (uint32_t)(len << 2) | 2;
        for (int i = 0; i < 4; i++) prefix[i] = (uint8_t)(v >> (8 * i));
        plen = 4;
    } else {
        prefix[0] = 3; /* (4 bytes - 4) << 2 | 3 */
        for (int i = 0; i < 4; i++) prefix[1 + i] = (uint8_t)((uint64_t)len >> (8 * i));
        plen = 5;
    }
    if (plen + len <= SR25519_CHAINCODE_BYTES) {
        memcpy(cc, prefix, plen);
        memcpy(cc + plen, junction, len);
        return;
    }
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, SR25519_CHAINCODE_BYTES);
    crypto_generichash_update(&h, prefix, plen);
    crypto_generichash_update(&h, (const uint8_t *)junction, len);
    crypto_generichash_final(&h, cc, SR25519_CHAINCODE_BYTES);
}

void sr25519_derive_hard(uint8_t child_mini[SR25519_MINI_BYTES], const uint8_t sk[SR25519_SECRET_BYTES],
                         const uint8_t cc[SR25519_CHAINCODE_BYTES]) {
    sr25519_transcript t;
    sr25519_transcript_init(&t, "SchnorrRistrettoHDKD");
    sr25519_transcript_append(&t, "sign-bytes", "", 0);
    sr25519_transcript_append(&t, "chain-code", cc, SR25519_CHAINCODE_BYTES);
    sr25519_transcript_append(&t, "secret-key", sk, 32);
    sr25519_transcript_challenge(&t, "HDKD-hard", child_mini, SR25519_MINI_BYTES);
    sodium_memzero(&t, sizeof t);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sr25519_keypair_from_uri(uint8_t sk[SR25519_SECRET_BYTES], uint8_t pk[SR25519_PUBLIC_BYTES],
                             const char *uri) {
    uint8_t mini[SR25519_MINI_BYTES], cc[SR25519_CHAINCODE_BYTES];
    const char *p = uri;
    int rc = -1;
    if (!uri) return -1;
    if (p[0] == '0' && p[1] == 'x') {
        p += 2;
        for (int i = 0; i < SR25519_MINI_BYTES; i++) {
            int hi = hexval(p[0]), lo = hi < 0 ? -1 : hexval(p[1]);
            if (hi < 0 || lo < 0) goto out;
            mini[i] = (uint8_t)(hi << 4 | lo);
            p += 2;
        }
    } else if (p[0] == '/' && p[1] == '/') {
        memcpy(mini, SR25519_DEV_MINI, SR25519_MINI_BYTES);
    } else {
        goto out; /* a phrase, a soft junction, or nothing */
    }
    if (sr25519_keypair_from_mini(sk, pk, mini)) goto out;
    while (*p) {
        if (p[0] != '/' || p[1] != '/') goto out; /* a soft junction or trailing text */
        p += 2;
        size_t n = strcspn(p, "/");
        if (n == 0) goto out; /* "///password" or an empty junction */
        sr25519_junction_chaincode(cc, p, n);
        sr25519_derive_hard(mini, sk, cc);
        if (sr25519_keypair_from_mini(sk, pk, mini)) goto out;
        p += n;
    }
    rc = 0;
out:
    sodium_memzero(mini, sizeof mini);
    if (rc) {
        sodium_memzero(sk, SR25519_SECRET_BYTES);
        memset(pk, 0, SR25519_PUBLIC_BYTES);
    }
    return rc;
}
