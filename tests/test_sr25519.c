/* test_sr25519.c - sr25519 (common/sr25519.c): Keccak-f[1600], STROBE and
 * Merlin against published answers, Substrate's well-known dev keys, signing
 * and verification with every kind of tampering, the secret layouts, hard
 * derivation and secret URIs; then a cross-check against independent
 * implementations (@scure/sr25519 in JavaScript and schnorrkel itself compiled
 * to WebAssembly, via tests/npm/sr25519_oracle.mjs), skipped when npm cannot
 * install them.  Everything is seeded, but for one check that signing with
 * the system's randomness gives two different valid signatures. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "common/common.h"
#include "common/sr25519.h"
#include "harness.h"

/* Pinned versions of the npm oracles (the same list reuses one install). */
#define NPM_PACKAGES                                                                       \
    "@scure/sr25519@2.3.0 @polkadot/util-crypto@14.0.3 @polkadot/util@14.0.3 "            \
    "@polkadot/wasm-crypto@7.5.4"

static const char *ALICE_PK = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";
static const char *ALICE_SS58 = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
/* //Alice signs "hello" under "substrate" with rng bytes 0, 1, ..., 31 */
#define SIG_ALICE_HELLO                                                                   \
    "8af49a526b5ff9301228a823219bc2aa807ebd8516a8d42817b53e38f95df872"                      \
    "6c1d0b2a0e6561de1f3fc57fce280f14ce85cad8de155a125828d36a9bbb248b"
static const char *BOB_PK = "8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48";

/* ------------------------------------------------------------ helpers */

static void tohex(char *out, const uint8_t *b, size_t n) {
    if (n == 0) strcpy(out, "-");
    else sodium_bin2hex(out, 2 * n + 1, b, n);
}

static int unhex(uint8_t *out, size_t n, const char *h) {
    size_t got = 0;
    if (strlen(h) != 2 * n) return -1;
    return sodium_hex2bin(out, n, h, 2 * n, NULL, &got, NULL) == 0 && got == n ? 0 : -1;
}

/* Deterministic test bytes: stream `what`, index i. */
static void det_bytes(uint8_t *out, size_t n, const char *what, unsigned i) {
    uint8_t seed[randombytes_SEEDBYTES];
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, sizeof seed);
    crypto_generichash_update(&h, (const uint8_t *)what, strlen(what));
    crypto_generichash_update(&h, (const uint8_t *)&i, sizeof i);
    crypto_generichash_final(&h, seed, sizeof seed);
    randombytes_buf_deterministic(out, n, seed);
}

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)need + 1 > b->cap) {
        b->cap = (b->n + (size_t)need + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)need + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

static void sb_hex(sbuf *b, const uint8_t *p, size_t n) {
    char *h = malloc(2 * n + 2);
    tohex(h, p, n);
    sb_printf(b, "%s", h);
    free(h);
}

static void dev_keypair(uint8_t sk[64], uint8_t pk[32], const char *uri) {
    if (sr25519_keypair_from_uri(sk, pk, uri)) th_fail(__FILE__, __LINE__, "uri %s refused", uri);
}

static int pk_is(const uint8_t pk[32], const char *want) {
    char h[65];
    tohex(h, pk, 32);
    return strcmp(h, want) == 0;
}

/* ------------------------------------------------------------ Keccak */

TEST(keccak_f1600_zero_state) {
    uint64_t st[25] = {0};
    sr25519_keccak_f1600(st);
    CHECK(st[0] == 0xF1258F7940E1DDE7ULL);
    CHECK(st[1] == 0x84D5CCF933C0478AULL);
    CHECK(st[2] == 0xD598261EA65AA9EEULL);
    CHECK(st[3] == 0xBD1547306F80494DULL);
}

/* SHA3-256 as a sponge over the permutation: FIPS 202 answers check all 24
 * rounds and every lane. */
static void sha3_256(uint8_t out[32], const void *msg, size_t len) {
    uint64_t st[25] = {0};
    const uint8_t *m = msg;
    uint8_t block[136];
    for (;;) {
        size_t take = len < 136 ? len : 136;
        memset(block, 0, sizeof block);
        memcpy(block, m, take);
        if (take < 136) {
            block[take] ^= 0x06;
            block[135] ^= 0x80;
        }
        for (int i = 0; i < 17; i++)
            for (int j = 0; j < 8; j++) st[i] ^= (uint64_t)block[8 * i + j] << (8 * j);
        sr25519_keccak_f1600(st);
        if (take < 136) break;
        m += take;
        len -= take;
    }
    for (int i = 0; i < 32; i++) out[i] = (uint8_t)(st[i / 8] >> (8 * (i % 8)));
}

TEST(keccak_sha3_256_answers) {
    uint8_t h[32];
    char x[65];
    sha3_256(h, "", 0);
    tohex(x, h, 32);
    CHECK_STR(x, "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
    sha3_256(h, "abc", 3);
    tohex(x, h, 32);
    CHECK_STR(x, "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha3_256(h, m, strlen(m));
    tohex(x, h, 32);
    CHECK_STR(x, "41c0dba2a9d6240849100376a8235e2c82e1b9998a999e21db32dd97496d3376");
}

/* ------------------------------------------------------------ Merlin */

TEST(merlin_transcript_answer) {
    /* merlin's own test: "simple transcript" */
    sr25519_transcript t;
    uint8_t ch[32];
    char x[65];
    sr25519_transcript_init(&t, "test protocol");
    sr25519_transcript_append(&t, "some label", "some data", 9);
    sr25519_transcript_challenge(&t, "challenge", ch, 32);
    tohex(x, ch, 32);
    CHECK_STR(x, "d5a21972d0d5fe320c0d263fac7fffb8145aa640af6e9bca177c03c7efcf0615");
}

TEST(merlin_append_u64) {
    sr25519_transcript a, b;
    uint8_t le[8] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}, x[16], y[16];
    sr25519_transcript_init(&a, "u64");
    sr25519_transcript_init(&b, "u64");
    sr25519_transcript_append_u64(&a, "n", 0x0102030405060708ULL);
    sr25519_transcript_append(&b, "n", le, 8);
    sr25519_transcript_challenge(&a, "c", x, 16);
    sr25519_transcript_challenge(&b, "c", y, 16);
    CHECK(memcmp(x, y, 16) == 0);
}

TEST(merlin_witness_leaves_transcript) {
    sr25519_transcript t, copy;
    uint8_t rng[32] = {1}, a[64], b[64], c[64];
    sr25519_transcript_init(&t, "w");
    sr25519_transcript_append_u64(&t, "n", 7);
    copy = t;
    sr25519_transcript_witness(&t, "signing", "seed", 4, rng, a, 64);
    CHECK(memcmp(&t, &copy, sizeof t) == 0);
    sr25519_transcript_witness(&t, "signing", "seed", 4, rng, b, 64);
    CHECK(memcmp(a, b, 64) == 0);
    rng[0] = 2;
    sr25519_transcript_witness(&t, "signing", "seed", 4, rng, c, 64);
    CHECK(memcmp(a, c, 64) != 0);
    rng[0] = 1;
    sr25519_transcript_witness(&t, "signing", "seeD", 4, rng, c, 64);
    CHECK(memcmp(a, c, 64) != 0);
}

/* ------------------------------------------------------------ keys */

TEST(dev_keys_alice_bob) {
    uint8_t sk[64], pk[32];
    char addr[64];
    dev_keypair(sk, pk, "//Alice");
    CHECK(pk_is(pk, ALICE_PK));
    ts_ss58(addr, pk);
    CHECK_STR(addr, ALICE_SS58);
    dev_keypair(sk, pk, "//Bob");
    CHECK(pk_is(pk, BOB_PK));
    /* the same through an explicit mini-secret */
    char uri[128];
    char mh[65];
    tohex(mh, SR25519_DEV_MINI, 32);
    snprintf(uri, sizeof uri, "0x%s//Alice", mh);
    dev_keypair(sk, pk, uri);
    CHECK(pk_is(pk, ALICE_PK));
    /* the public key of a secret key */
    uint8_t pk2[32];
    CHECK_EQ_INT(sr25519_public_of(pk2, sk), 0);
    CHECK(memcmp(pk, pk2, 32) == 0);
}

TEST(keypair_from_mini_answer) {
    /* schnorrkel (via @polkadot/wasm-crypto 7.5.4) on the dev mini-secret */
    uint8_t sk[64], pk[32], ed[64];
    char x[129];
    CHECK_EQ_INT(sr25519_keypair_from_mini(sk, pk, SR25519_DEV_MINI), 0);
    CHECK(pk_is(pk, "46ebddef8cd9bb167dc30878d7113b7e168e6f0646beffd77d69d39bad76b47a"));
    sr25519_secret_to_ed25519_bytes(ed, sk);
    tohex(x, ed, 64);
    CHECK_STR(x, "28b0ae221c6bb06856b287f60d7ea0d98552ea5a16db16956849aa371db3eb51"
                 "fd190cce74df356432b410bd64682309d6dedb27c76845daf388557cbac3ca34");
}

TEST(secret_layouts) {
    for (unsigned i = 0; i < 16; i++) {
        uint8_t mini[32], sk[64], pk[32], ed[64], back[64], pk2[32];
        det_bytes(mini, 32, "layout", i);
        REQUIRE(sr25519_keypair_from_mini(sk, pk, mini) == 0);
        sr25519_secret_to_ed25519_bytes(ed, sk);
        CHECK((ed[0] & 7) == 0); /* a multiple of the cofactor */
        CHECK_EQ_INT(sr25519_secret_from_ed25519_bytes(back, ed), 0);
        CHECK(memcmp(back, sk, 64) == 0);
        CHECK_EQ_INT(sr25519_public_of(pk2, back), 0);
        CHECK(memcmp(pk, pk2, 32) == 0);
        /* in place */
        memcpy(back, sk, 64);
        sr25519_secret_to_ed25519_bytes(back, back);
        CHECK(memcmp(back, ed, 64) == 0);
        CHECK_EQ_INT(sr25519_secret_from_ed25519_bytes(back, back), 0);
        CHECK(memcmp(back, sk, 64) == 0);
    }
    /* a scalar >= l in either layout is refused */
    uint8_t ed[64], sk[64], pk[32];
    memset(ed, 0xff, 64);
    CHECK_EQ_INT(sr25519_secret_from_ed25519_bytes(sk, ed), -1);
    memset(sk, 0, 64);
    sk[31] = 0x10; /* 2^252, just below l = 2^252 + 2774...: canonical */
    CHECK_EQ_INT(sr25519_public_of(pk, sk), 0);
    /* l itself */
    static const uint8_t l[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                  0xa2, 0xde, 0xf9, 0xde, 0x14, [31] = 0x10};
    memcpy(sk, l, 32);
    CHECK_EQ_INT(sr25519_public_of(pk, sk), -1);
    sk[0]--; /* l - 1 */
    CHECK_EQ_INT(sr25519_public_of(pk, sk), 0);
    memset(sk, 0, 32); /* zero: no key */
    CHECK_EQ_INT(sr25519_public_of(pk, sk), -1);
}

/* ------------------------------------------------------------ signatures */

static const char CTX[] = "substrate";

TEST(sign_verify_round_trip) {
    uint8_t sk[64], pk[32], sig[64], msg[1100], rng[32];
    dev_keypair(sk, pk, "//Alice");
    static const size_t lens[] = {0, 1, 31, 165, 166, 167, 1100};
    for (unsigned i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        det_bytes(msg, sizeof msg, "msg", i);
        det_bytes(rng, sizeof rng, "msg-rng", i);
        sr25519_sign(sig, sk, pk, CTX, strlen(CTX), msg, lens[i], rng);
        CHECK(sig[63] & 0x80);
        CHECK_EQ_INT(sr25519_verify(sig, pk, CTX, strlen(CTX), msg, lens[i]), 0);
        /* an empty context is a context too */
        sr25519_sign(sig, sk, pk, "", 0, msg, lens[i], rng);
        CHECK_EQ_INT(sr25519_verify(sig, pk, "", 0, msg, lens[i]), 0);
        CHECK_EQ_INT(sr25519_verify(sig, pk, CTX, strlen(CTX), msg, lens[i]), -1);
    }
}

TEST(verify_refuses_tampering) {
    uint8_t sk[64], pk[32], bob_sk[64], bob_pk[32], sig[64], bad[64], msg[64];
    uint8_t rng[32];
    dev_keypair(sk, pk, "//Alice");
    dev_keypair(bob_sk, bob_pk, "//Bob");
    det_bytes(msg, sizeof msg, "tamper", 0);
    det_bytes(rng, sizeof rng, "tamper-rng", 0);
    sr25519_sign(sig, sk, pk, CTX, strlen(CTX), msg, sizeof msg, rng);
    REQUIRE(sr25519_verify(sig, pk, CTX, strlen(CTX), msg, sizeof msg) == 0);
    /* every bit of the message */
    for (unsigned b = 0; b < 8 * sizeof msg; b++) {
        msg[b / 8] ^= (uint8_t)(1u << (b % 8));
        CHECK_MSG(sr25519_verify(sig, pk, CTX, strlen(CTX), msg, sizeof msg) == -1, "message bit %u", b);
        msg[b / 8] ^= (uint8_t)(1u << (b % 8));
    }
    CHECK_EQ_INT(sr25519_verify(sig, pk, CTX, strlen(CTX), msg, sizeof msg - 1), -1);
    /* every bit of the signature but the marker (whose loss is tested below) */
    for (unsigned b = 0; b < 8 * 64; b++) {
        if (b == 8 * 63 + 7) continue;
        memcpy(bad, sig, 64);
        bad[b / 8] ^= (uint8_t)(1u << (b % 8));
        CHECK_MSG(sr25519_verify(bad, pk, CTX, strlen(CTX), msg, sizeof msg) == -1, "signature bit %u", b);
    }
    /* another key, another context */
    CHECK_EQ_INT(sr25519_verify(sig, bob_pk, CTX, strlen(CTX), msg, sizeof msg), -1);
    CHECK_EQ_INT(sr25519_verify(sig, pk, "substratf", 9, msg, sizeof msg), -1);
    CHECK_EQ_INT(sr25519_verify(sig, pk, "", 0, msg, sizeof msg), -1);
    /* a key that is not a point, and the identity */
    uint8_t notpt[32];
    memcpy(notpt, pk, 32);
    notpt[0] ^= 1; /* an odd ("negative") field element: never a Ristretto encoding */
    CHECK_EQ_INT(sr25519_verify(sig, notpt, CTX, strlen(CTX), msg, sizeof msg), -1);
    memset(notpt, 0, 32);
    CHECK_EQ_INT(sr25519_verify(sig, notpt, CTX, strlen(CTX), msg, sizeof msg), -1);
    /* signed by Bob under Alice's key */
    sr25519_sign(bad, bob_sk, pk, CTX, strlen(CTX), msg, sizeof msg, rng);
    CHECK_EQ_INT(sr25519_verify(bad, pk, CTX, strlen(CTX), msg, sizeof msg), -1);
    CHECK_EQ_INT(sr25519_verify(bad, bob_pk, CTX, strlen(CTX), msg, sizeof msg), -1);
}

TEST(verify_needs_marker) {
    uint8_t sk[64], pk[32], sig[64];
    dev_keypair(sk, pk, "//Alice");
    uint8_t rng[32] = {7};
    sr25519_sign(sig, sk, pk, CTX, strlen(CTX), "m", 1, rng);
    REQUIRE(sr25519_verify(sig, pk, CTX, strlen(CTX), "m", 1) == 0);
    sig[63] &= 0x7f;
    CHECK_EQ_INT(sr25519_verify(sig, pk, CTX, strlen(CTX), "m", 1), -1);
}

TEST(verify_refuses_noncanonical_s) {
    static const uint8_t l[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                  0xa2, 0xde, 0xf9, 0xde, 0x14, [31] = 0x10};
    uint8_t sk[64], pk[32], sig[64], bad[64], rng[32] = {9};
    dev_keypair(sk, pk, "//Alice");
    sr25519_sign(sig, sk, pk, CTX, strlen(CTX), "m", 1, rng);
    REQUIRE(sr25519_verify(sig, pk, CTX, strlen(CTX), "m", 1) == 0);
    /* s + l: the same residue, so only the canonical check stops it */
    memcpy(bad, sig, 64);
    bad[63] &= 0x7f;
    unsigned carry = 0;
    for (int i = 0; i < 32; i++) {
        carry += (unsigned)bad[32 + i] + l[i];
        bad[32 + i] = (uint8_t)carry;
        carry >>= 8;
    }
    REQUIRE(carry == 0 && !(bad[63] & 0x80));
    bad[63] |= 0x80;
    CHECK_EQ_INT(sr25519_verify(bad, pk, CTX, strlen(CTX), "m", 1), -1);
    /* s = l, and s = 0 (no crash, no pass) */
    memcpy(bad + 32, l, 32);
    bad[63] |= 0x80;
    CHECK_EQ_INT(sr25519_verify(bad, pk, CTX, strlen(CTX), "m", 1), -1);
    memset(bad + 32, 0, 32);
    bad[63] |= 0x80;
    CHECK_EQ_INT(sr25519_verify(bad, pk, CTX, strlen(CTX), "m", 1), -1);
}

/* Fixed rng: the same signature twice, a different one with other rng bytes,
 * and a fixed answer (byte for byte what @scure/sr25519 2.3.0 signs with the
 * same secret key and random bytes; see npm_cross_check). */
TEST(sign_deterministic_with_fixed_rng) {
    uint8_t sk[64], pk[32], a[64], b[64], rng[32];
    char x[129];
    dev_keypair(sk, pk, "//Alice");
    for (int i = 0; i < 32; i++) rng[i] = (uint8_t)i;
    sr25519_sign(a, sk, pk, CTX, strlen(CTX), "hello", 5, rng);
    sr25519_sign(b, sk, pk, CTX, strlen(CTX), "hello", 5, rng);
    CHECK(memcmp(a, b, 64) == 0);
    tohex(x, a, 64);
    CHECK_STR(x, SIG_ALICE_HELLO);
    rng[0] ^= 1;
    sr25519_sign(b, sk, pk, CTX, strlen(CTX), "hello", 5, rng);
    CHECK(memcmp(a, b, 64) != 0);
    CHECK_EQ_INT(sr25519_verify(b, pk, CTX, strlen(CTX), "hello", 5), 0);
    /* rng from the system (the one test that uses it): two different valid
     * signatures, but for a 2^-252 chance */
    sr25519_sign(a, sk, pk, CTX, strlen(CTX), "hello", 5, NULL);
    sr25519_sign(b, sk, pk, CTX, strlen(CTX), "hello", 5, NULL);
    CHECK(memcmp(a, b, 64) != 0);
    CHECK_EQ_INT(sr25519_verify(a, pk, CTX, strlen(CTX), "hello", 5), 0);
    CHECK_EQ_INT(sr25519_verify(b, pk, CTX, strlen(CTX), "hello", 5), 0);
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

TEST(sign_verify_speed) {
    enum { N = 200 };
    uint8_t sk[64], pk[32], sig[64], msg[128], rng[32] = {0};
    dev_keypair(sk, pk, "//Alice");
    det_bytes(msg, sizeof msg, "speed", 0);
    double t0 = now_us();
    for (int i = 0; i < N; i++) {
        rng[0] = (uint8_t)i;
        sr25519_sign(sig, sk, pk, CTX, strlen(CTX), msg, sizeof msg, rng);
    }
    double t1 = now_us();
    int bad = 0;
    for (int i = 0; i < N; i++) bad += sr25519_verify(sig, pk, CTX, strlen(CTX), msg, sizeof msg) != 0;
    double t2 = now_us();
    CHECK_EQ_INT(bad, 0);
    double sign_us = (t1 - t0) / N, verify_us = (t2 - t1) / N;
    fprintf(stderr, "# sr25519: sign %.1f us, verify %.1f us (128-byte message)\n", sign_us, verify_us);
    /* generous: a loaded 2-core machine, or a sanitizer build */
    CHECK_MSG(verify_us < 20000, "verify takes %.0f us", verify_us);
}

/* ------------------------------------------------------------ derivation */

TEST(junction_chaincodes) {
    uint8_t cc[32], want[32];
    char x[65];
    /* a string: compact length (5 << 2 = 0x14) then the bytes */
    sr25519_junction_chaincode(cc, "Alice", 5);
    tohex(x, cc, 32);
    CHECK_STR(x, "14416c6963650000000000000000000000000000000000000000000000000000");
    /* a number: u64 little-endian; Rust's parser takes a leading '+' and
     * leading zeros */
    memset(want, 0, 32);
    want[0] = 42;
    sr25519_junction_chaincode(cc, "42", 2);
    CHECK(memcmp(cc, want, 32) == 0);
    sr25519_junction_chaincode(cc, "+042", 4);
    CHECK(memcmp(cc, want, 32) == 0);
    memset(want, 0xff, 8);
    sr25519_junction_chaincode(cc, "18446744073709551615", 20);
    CHECK(memcmp(cc, want, 32) == 0);
    /* 2^64 does not fit: a 20-character string (0x50 prefix) */
    sr25519_junction_chaincode(cc, "18446744073709551616", 20);
    CHECK(cc[0] == 0x50 && memcmp(cc + 1, "18446744073709551616", 20) == 0 && cc[21] == 0);
    sr25519_junction_chaincode(cc, "-1", 2);
    CHECK(cc[0] == 0x08 && cc[1] == '-' && cc[2] == '1');
    sr25519_junction_chaincode(cc, "+", 1);
    CHECK(cc[0] == 0x04 && cc[1] == '+');
    /* 31 characters fit (with their 1-byte prefix); 32 are hashed */
    const char *s31 = "abcdefghijklmnopqrstuvwxyz01234";
    sr25519_junction_chaincode(cc, s31, 31);
    CHECK(cc[0] == 31 << 2 && memcmp(cc + 1, s31, 31) == 0);
    const char *s32 = "abcdefghijklmnopqrstuvwxyz012345";
    uint8_t enc[80];
    enc[0] = 32 << 2;
    memcpy(enc + 1, s32, 32);
    crypto_generichash(want, 32, enc, 33, NULL, 0);
    sr25519_junction_chaincode(cc, s32, 32);
    CHECK(memcmp(cc, want, 32) == 0);
    /* 70 characters: the 2-byte compact prefix (70 << 2 | 1, little-endian) */
    char s70[71];
    for (int i = 0; i < 70; i++) s70[i] = (char)('a' + i % 26);
    enc[0] = (uint8_t)((70 << 2) | 1);
    enc[1] = (uint8_t)((70 << 2 | 1) >> 8);
    memcpy(enc + 2, s70, 70);
    crypto_generichash(want, 32, enc, 72, NULL, 0);
    sr25519_junction_chaincode(cc, s70, 70);
    CHECK(memcmp(cc, want, 32) == 0);
}

TEST(derive_hard_answers) {
    uint8_t sk[64], pk[32], sk2[64], pk2[32], cc[32], mini[32];
    /* //Alice//stash, as Substrate's subkey prints it */
    dev_keypair(sk, pk, "//Alice//stash");
    CHECK(pk_is(pk, "be5ddb1579b72e84524fc29e78609e3caf42e85aa118ebfe0b0ad404b5bdd25f"));
    /* by hand: expand, derive, expand */
    REQUIRE(sr25519_keypair_from_mini(sk2, pk2, SR25519_DEV_MINI) == 0);
    sr25519_junction_chaincode(cc, "Alice", 5);
    sr25519_derive_hard(mini, sk2, cc);
    REQUIRE(sr25519_keypair_from_mini(sk2, pk2, mini) == 0);
    CHECK(pk_is(pk2, ALICE_PK));
    sr25519_junction_chaincode(cc, "stash", 5);
    sr25519_derive_hard(mini, sk2, cc);
    REQUIRE(sr25519_keypair_from_mini(sk2, pk2, mini) == 0);
    CHECK(memcmp(pk, pk2, 32) == 0 && memcmp(sk, sk2, 64) == 0);
    /* a different chain code, a different child */
    cc[0] ^= 1;
    uint8_t other[32];
    sr25519_derive_hard(other, sk2, cc);
    CHECK(memcmp(other, mini, 32) != 0);
}

TEST(uri_parsing) {
    uint8_t sk[64], pk[32], sk2[64], pk2[32];
    char mh[65], uri[200];
    tohex(mh, SR25519_DEV_MINI, 32);
    /* a bare mini-secret, in either case of hex digits */
    snprintf(uri, sizeof uri, "0x%s", mh);
    CHECK_EQ_INT(sr25519_keypair_from_uri(sk, pk, uri), 0);
    CHECK(pk_is(pk, "46ebddef8cd9bb167dc30878d7113b7e168e6f0646beffd77d69d39bad76b47a"));
    for (char *p = uri + 2; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 'a' + 'A');
    CHECK_EQ_INT(sr25519_keypair_from_uri(sk2, pk2, uri), 0);
    CHECK(memcmp(pk, pk2, 32) == 0);
    snprintf(uri, sizeof uri, "0x%s//Alice//stash", mh);
    CHECK_EQ_INT(sr25519_keypair_from_uri(sk, pk, uri), 0);
    dev_keypair(sk2, pk2, "//Alice//stash");
    CHECK(memcmp(pk, pk2, 32) == 0 && memcmp(sk, sk2, 64) == 0);
    dev_keypair(sk, pk, "//0//1");
    dev_keypair(sk2, pk2, "//0//+1"); /* the same junction to Substrate */
    CHECK(memcmp(pk, pk2, 32) == 0);

    const char *bad[] = {
        "",
        "//",
        "/Alice",
        "//Alice/soft",
        "//Alice//",
        "//Alice///password",
        "///password",
        "Alice",
        "bottom drive obey lake curtain smoke basket hold race lonely fit walk",
        "bottom drive obey lake curtain smoke basket hold race lonely fit walk//Alice",
        "0x",
        "0X" "fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e",
        "0x" "fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479",
        "0x" "fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e0",
        "0x" "fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e00",
        "0x" "fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479g",
        "0x" "fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e/x",
        "0x" "fac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e ",
        " //Alice",
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(sk, 0xaa, 64);
        CHECK_MSG(sr25519_keypair_from_uri(sk, pk, bad[i]) == -1, "accepted \"%s\"", bad[i]);
        uint8_t z[64] = {0};
        CHECK_MSG(memcmp(sk, z, 64) == 0, "secret left after refusing \"%s\"", bad[i]);
    }
    CHECK_EQ_INT(sr25519_keypair_from_uri(sk, pk, NULL), -1);
}

/* ------------------------------------------------------------ npm oracle */

/* A fixed Merlin script, mirrored by merlin() in tests/npm/sr25519_oracle.mjs:
 * the STROBE state (hex, pos, pos_begin, cur_flags) after each step, with the
 * challenge and witness outputs between. */
static void merlin_dump(sbuf *b, const sr25519_transcript *t) {
    sb_printf(b, " ");
    sb_hex(b, t->s.st, 200);
    sb_printf(b, " %u %u %u", t->s.pos, t->s.pos_begin, t->s.cur_flags);
}

static char *merlin_script(const uint8_t rng[32], const uint8_t *nonce, size_t nlen) {
    sbuf b = {0};
    sr25519_transcript t;
    uint8_t big[300], ch[200], w[64];
    for (int i = 0; i < 300; i++) big[i] = (uint8_t)i;
    sr25519_transcript_init(&t, "test protocol");
    merlin_dump(&b, &t);
    sr25519_transcript_append(&t, "some label", "some data", 9);
    merlin_dump(&b, &t);
    sr25519_transcript_append(&t, "big", big, sizeof big);
    merlin_dump(&b, &t);
    sr25519_transcript_challenge(&t, "challenge", ch, sizeof ch);
    sb_printf(&b, " ");
    sb_hex(&b, ch, sizeof ch);
    merlin_dump(&b, &t);
    sr25519_transcript_witness(&t, "signing", nonce, nlen, rng, w, sizeof w);
    sb_printf(&b, " ");
    sb_hex(&b, w, sizeof w);
    merlin_dump(&b, &t);
    memmove(b.p, b.p + 1, b.n); /* the leading space */
    return b.p;
}

/* One request to the oracle and what its answer must be (want); for a
 * schnorrkel signature (want NULL) the answer is checked by verifying it. */
typedef struct {
    char *req, *want;
    uint8_t pk[32];
    uint8_t msg[1100];
    size_t len;
} oracle_item;

typedef struct {
    oracle_item items[256];
    int n;
} oracle;

static oracle_item *add(oracle *o, sbuf *req, sbuf *want) {
    if (o->n == 256) abort();
    oracle_item *it = &o->items[o->n++];
    it->req = req->p;
    it->want = want ? want->p : NULL;
    memset(req, 0, sizeof *req);
    if (want) memset(want, 0, sizeof *want);
    return it;
}

/* The oracle's install directory, or NULL with why in *why (malloc'd). */
static char *npm_dir(char **why) {
    const char *repo = getenv("TESSERA_REPO");
    char cmd[1024], *out = NULL;
    /* a registry that does not answer fails in seconds, not npm's minutes */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && npm_config_fetch_retries=1 npm_config_fetch_retry_mintimeout=2000 "
             "npm_config_fetch_retry_maxtimeout=5000 npm_config_fetch_timeout=30000 "
             "bash tests/npm_oracle.sh sr25519 " NPM_PACKAGES " 2>&1",
             repo && *repo ? repo : ".");
    int rc = th_run(cmd, &out);
    if (!out) out = strdup("");
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = 0;
    if (rc != 0) {
        *why = out;
        return NULL;
    }
    char *last = strrchr(out, '\n');
    char *dir = strdup(last ? last + 1 : out);
    free(out);
    return dir;
}

/* Compares an answer line with the expected one word by word. */
static void check_answer(const char *req, const char *got, const char *want) {
    char *g = strdup(got), *w = strdup(want), *sg, *sw;
    char *tg = strtok_r(g, " ", &sg), *tw = strtok_r(w, " ", &sw);
    for (int i = 0;; i++, tg = strtok_r(NULL, " ", &sg), tw = strtok_r(NULL, " ", &sw)) {
        if (!tg && !tw) break;
        if (!tg || !tw || strcmp(tg, tw)) {
            th_fail(__FILE__, __LINE__, "%.60s...: word %d: oracle %.140s, Tessera %.140s", req, i,
                    tg ? tg : "(none)", tw ? tw : "(none)");
            break;
        }
    }
    free(g);
    free(w);
}

static void add_keypair_requests(oracle *o, const uint8_t seed[32]) {
    uint8_t sk[64], pk[32], ed[64];
    char addr[64];
    sbuf r = {0}, w = {0};
    if (sr25519_keypair_from_mini(sk, pk, seed)) abort();
    sr25519_secret_to_ed25519_bytes(ed, sk);
    sb_printf(&r, "keypair ");
    sb_hex(&r, seed, 32);
    for (int i = 0; i < 2; i++) {
        sb_hex(&w, ed, 64);
        sb_printf(&w, " ");
        sb_hex(&w, pk, 32);
        sb_printf(&w, "%s", i ? "" : " ");
    }
    add(o, &r, &w);
    ts_ss58(addr, pk);
    sb_printf(&r, "ss58 ");
    sb_hex(&r, pk, 32);
    sb_printf(&w, "%s", addr);
    add(o, &r, &w);
}

static void add_sign_requests(oracle *o, const uint8_t seed[32], unsigned k, size_t len) {
    uint8_t sk[64], pk[32], ed[64], rng[32], sig[64], bad[64];
    static uint8_t msg[1100];
    sbuf r = {0}, w = {0};
    if (sr25519_keypair_from_mini(sk, pk, seed)) abort();
    sr25519_secret_to_ed25519_bytes(ed, sk);
    det_bytes(msg, len, "oracle-msg", k);
    det_bytes(rng, 32, "oracle-rng", k);
    sr25519_sign(sig, sk, pk, CTX, strlen(CTX), msg, len, rng);
    /* @scure signs byte for byte the same */
    sb_printf(&r, "sign ");
    sb_hex(&r, ed, 64);
    sb_printf(&r, " ");
    sb_hex(&r, msg, len);
    sb_printf(&r, " ");
    sb_hex(&r, rng, 32);
    sb_hex(&w, sig, 64);
    add(o, &r, &w);
    /* both accept it; both refuse it tampered, unmarked, or with s + l */
    for (int v = 0; v < 4; v++) {
        memcpy(bad, sig, 64);
        if (v == 1) bad[k % 32] ^= 0x10;
        if (v == 2) bad[32 + k % 31] ^= 0x01;
        if (v == 3) bad[63] &= 0x7f;
        sb_printf(&r, "verify ");
        sb_hex(&r, bad, 64);
        sb_printf(&r, " ");
        sb_hex(&r, pk, 32);
        sb_printf(&r, " ");
        sb_hex(&r, msg, len);
        sb_printf(&w, "%s", v ? "0 0" : "1 1");
        add(o, &r, &w);
    }
    /* schnorrkel's own signature (random nonce) must verify here */
    sb_printf(&r, "wsign ");
    sb_hex(&r, ed, 64);
    sb_printf(&r, " ");
    sb_hex(&r, pk, 32);
    sb_printf(&r, " ");
    sb_hex(&r, msg, len);
    oracle_item *it = add(o, &r, NULL);
    memcpy(it->pk, pk, 32);
    memcpy(it->msg, msg, len);
    it->len = len;
}

static void add_derive_request(oracle *o, const uint8_t seed[32], const char *path) {
    uint8_t sk[64], pk[32], ed[64], cc[32];
    char uri[300], mh[65];
    sbuf r = {0}, w = {0};
    tohex(mh, seed, 32);
    snprintf(uri, sizeof uri, "0x%s%s", mh, path);
    if (sr25519_keypair_from_uri(sk, pk, uri)) abort();
    sr25519_secret_to_ed25519_bytes(ed, sk);
    sb_printf(&r, "derive %s %s", mh, path);
    const char *p = path;
    while (*p) {
        p += 2;
        size_t n = strcspn(p, "/");
        sr25519_junction_chaincode(cc, p, n);
        sb_hex(&w, cc, 32);
        p += n;
        sb_printf(&w, "%s", *p ? "," : "");
    }
    for (int i = 0; i < 2; i++) {
        sb_printf(&w, " ");
        sb_hex(&w, ed, 64);
        sb_printf(&w, " ");
        sb_hex(&w, pk, 32);
    }
    sb_printf(&w, " ");
    sb_hex(&w, pk, 32);
    add(o, &r, &w);
}

TEST(npm_cross_check) {
    char *why = NULL, *dir = npm_dir(&why);
    if (!dir) SKIP("no npm oracle: %.300s", why);
    oracle *o = calloc(1, sizeof *o);
    sbuf r = {0}, w = {0};

    sb_printf(&r, "devmini");
    sb_hex(&w, SR25519_DEV_MINI, 32);
    add(o, &r, &w);

    enum { NSEEDS = 6 };
    uint8_t seeds[NSEEDS][32];
    memcpy(seeds[0], SR25519_DEV_MINI, 32);
    memset(seeds[1], 0, 32);
    memset(seeds[2], 0xff, 32);
    for (int i = 3; i < NSEEDS; i++) det_bytes(seeds[i], 32, "oracle-seed", (unsigned)i);
    static const size_t lens[] = {0, 5, 167, 1100};
    for (int i = 0; i < NSEEDS; i++) {
        add_keypair_requests(o, seeds[i]);
        for (unsigned j = 0; j < 4; j++) add_sign_requests(o, seeds[i], (unsigned)(4 * i) + j, lens[j]);
    }
    static const char *paths[] = {
        "//Alice",
        "//Alice//stash",
        "//Bob//0",
        "//1//18446744073709551615",
        "//polkadot//0//42//hotkey",
        "//a-junction-name-longer-than-thirty-two-bytes",
        "//" "a-junction-of-seventy-bytes-which-needs-two-bytes-of-compact-length-x",
    };
    for (unsigned i = 0; i < sizeof paths / sizeof paths[0]; i++)
        add_derive_request(o, seeds[i % 2 ? 3 : 0], paths[i]);

    uint8_t rng[32], nonce[32];
    det_bytes(rng, 32, "merlin-rng", 0);
    det_bytes(nonce, 32, "merlin-nonce", 0);
    sb_printf(&r, "merlin ");
    sb_hex(&r, rng, 32);
    sb_printf(&r, " ");
    sb_hex(&r, nonce, 32);
    w.p = merlin_script(rng, nonce, 32);
    add(o, &r, &w);

    /* one run of node for everything */
    char reqpath[600], errpath[600], cmd[2048], *out = NULL;
    snprintf(reqpath, sizeof reqpath, "%s/requests", th_tmpdir());
    snprintf(errpath, sizeof errpath, "%s/oracle.err", th_tmpdir());
    FILE *f = fopen(reqpath, "w");
    REQUIRE(f);
    for (int i = 0; i < o->n; i++) fprintf(f, "%s\n", o->items[i].req);
    fclose(f);
    const char *repo = getenv("TESSERA_REPO");
    snprintf(cmd, sizeof cmd, "node '%s/tests/npm/sr25519_oracle.mjs' '%s' <'%s' 2>'%s'",
             repo && *repo ? repo : ".", dir, reqpath, errpath);
    int rc = th_run(cmd, &out);
    if (rc != 0) {
        char *err = NULL;
        snprintf(cmd, sizeof cmd, "tail -c 600 '%s'", errpath);
        th_run(cmd, &err);
        th_fail(__FILE__, __LINE__, "oracle exited %d: %s", rc, err ? err : "");
        free(err);
        return;
    }
    REQUIRE(out);
    char *save, *line = strtok_r(out, "\n", &save);
    int checked = 0, wsigs = 0;
    for (int i = 0; i < o->n; i++, line = strtok_r(NULL, "\n", &save)) {
        oracle_item *it = &o->items[i];
        if (!line) {
            th_fail(__FILE__, __LINE__, "the oracle answered %d of %d requests", i, o->n);
            break;
        }
        if (it->want) {
            check_answer(it->req, line, it->want);
        } else {
            uint8_t sig[64];
            CHECK_MSG(unhex(sig, 64, line) == 0, "schnorrkel signature: %.200s", line);
            CHECK_MSG(sr25519_verify(sig, it->pk, CTX, strlen(CTX), it->msg, it->len) == 0,
                      "schnorrkel's signature %.40s... does not verify here", line);
            CHECK(sr25519_verify(sig, it->pk, "tessera", 7, it->msg, it->len) == -1);
            wsigs++;
        }
        checked++;
    }
    CHECK(checked == o->n && wsigs == NSEEDS * 4);
    for (int i = 0; i < o->n; i++) {
        free(o->items[i].req);
        free(o->items[i].want);
    }
    free(o);
    free(out);
    free(dir);
}
