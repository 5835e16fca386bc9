/* crypto.c - BLAKE2b, deterministic streams, sr25519 signatures with domain
 * tags, SS58.
 *
 * Hashing and randomness are libsodium; the signature scheme is sr25519
 * (common/sr25519.h), the scheme of Bittensor's hotkeys.  Signatures are
 * always over
 *     "tessera-sig-v1" 0x00 || u8 len(tag) || tag || msg
 * under the signing context "tessera", so a signature made for a gradient can
 * never pass as one for a checkpoint manifest, nor for a chain extrinsic. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "common.h"
#include "sr25519.h"

_Static_assert(sizeof(crypto_generichash_state) <= sizeof(((ts_hasher *)0)->state),
               "ts_hasher state too small");

int ts_init(ts_err *e) {
    if (sodium_init() < 0) return ts_fail(e, TS_EIO, "libsodium failed to initialise");
    return TS_OK;
}

void ts_blake2b(uint8_t *out, size_t outlen, const void *in, size_t inlen) {
    crypto_generichash(out, outlen, in, inlen, NULL, 0);
}

void ts_hasher_init(ts_hasher *h, size_t outlen) {
    h->outlen = outlen;
    crypto_generichash_init((crypto_generichash_state *)h->state, NULL, 0, outlen);
}

void ts_hasher_update(ts_hasher *h, const void *in, size_t len) {
    crypto_generichash_update((crypto_generichash_state *)h->state, in, len);
}

void ts_hasher_final(ts_hasher *h, uint8_t *out) {
    crypto_generichash_final((crypto_generichash_state *)h->state, out, h->outlen);
}

int ts_hash_file(const char *path, uint8_t out[TS_HASH_BYTES], ts_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ts_fail(e, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "%s: %s", path, strerror(errno));
    ts_hasher h;
    ts_hasher_init(&h, TS_HASH_BYTES);
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(CHUNK);
    if (!buf) {
        close(fd);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    for (;;) {
        ssize_t r = read(fd, buf, CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int err = errno;
            free(buf);
            close(fd);
            return ts_fail(e, TS_EIO, "%s: %s", path, strerror(err));
        }
        if (r == 0) break;
        ts_hasher_update(&h, buf, (size_t)r);
    }
    free(buf);
    close(fd);
    ts_hasher_final(&h, out);
    return TS_OK;
}

void ts_hex(char *out, const uint8_t *in, size_t n) { sodium_bin2hex(out, 2 * n + 1, in, n); }

int ts_unhex(uint8_t *out, size_t n, const char *hex) {
    if (!hex) return TS_EINVAL;
    if (hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X')) hex += 2;
    if (strlen(hex) != 2 * n) return TS_EINVAL;
    size_t got = 0;
    if (sodium_hex2bin(out, n, hex, 2 * n, NULL, &got, NULL) || got != n) return TS_EINVAL;
    return TS_OK;
}

void ts_det_bytes(void *out, size_t n, const uint8_t seed[32]) {
    randombytes_buf_deterministic(out, n, seed);
}

void ts_random_bytes(void *out, size_t n) { randombytes_buf(out, n); }

/* ------------------------------------------------------------ signatures */

static const char SIG_PREFIX[] = "tessera-sig-v1"; /* followed by its NUL */

static uint8_t *domain_msg(const char *tag, const void *msg, size_t len, size_t *outlen) {
    size_t tl = strlen(tag);
    if (tl > 255) return NULL;
    size_t n = sizeof SIG_PREFIX + 1 + tl + len;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return NULL;
    memcpy(buf, SIG_PREFIX, sizeof SIG_PREFIX);
    buf[sizeof SIG_PREFIX] = (uint8_t)tl;
    memcpy(buf + sizeof SIG_PREFIX + 1, tag, tl);
    if (len) memcpy(buf + sizeof SIG_PREFIX + 1 + tl, msg, len);
    *outlen = n;
    return buf;
}

/* Tessera's own objects are signed under this context; extrinsics use
 * "substrate" (chain/), so neither can be passed off as the other. */
static const char SIG_CONTEXT[] = "tessera";

int ts_keypair_from_seed(ts_keypair *kp, const uint8_t seed[TS_SEED_BYTES]) {
    return sr25519_keypair_from_mini(kp->sk, kp->pk, seed) ? TS_EINVAL : TS_OK;
}

void ts_keypair_generate(ts_keypair *kp) {
    uint8_t mini[TS_SEED_BYTES];
    randombytes_buf(mini, sizeof mini);
    sr25519_keypair_from_mini(kp->sk, kp->pk, mini);
    sodium_memzero(mini, sizeof mini);
}

/* Signatures are deterministic: the nonce witness mixes the secret nonce and
 * the whole transcript (key, context, message) with fixed "rng" bytes, so
 * signing the same object twice gives the same bytes (as Ed25519 did) and no
 * randomness failure can leak the key. */
static const uint8_t SIG_RNG[32] = {0};

int ts_sign(const ts_keypair *kp, const char *tag, const void *msg, size_t len,
            uint8_t sig[TS_SIG_BYTES], ts_err *e) {
    size_t n;
    uint8_t *m = domain_msg(tag, msg, len, &n);
    if (!m) return ts_fail(e, TS_EINVAL, "signature domain tag too long or out of memory");
    sr25519_sign(sig, kp->sk, kp->pk, SIG_CONTEXT, sizeof SIG_CONTEXT - 1, m, n, SIG_RNG);
    free(m);
    return TS_OK;
}

int ts_verify(const uint8_t pk[TS_PK_BYTES], const char *tag, const void *msg, size_t len,
              const uint8_t sig[TS_SIG_BYTES], ts_err *e) {
    size_t n;
    uint8_t *m = domain_msg(tag, msg, len, &n);
    if (!m) return ts_fail(e, TS_EINVAL, "signature domain tag too long or out of memory");
    int bad = sr25519_verify(sig, pk, SIG_CONTEXT, sizeof SIG_CONTEXT - 1, m, n);
    free(m);
    if (bad) return ts_fail(e, TS_ESIG, "signature does not verify (domain '%s')", tag);
    return TS_OK;
}

/* ------------------------------------------------------------------ SS58 */

static const char B58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

static void ss58_checksum(uint8_t out[2], const uint8_t *payload, size_t n) {
    uint8_t h[64];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 64);
    crypto_generichash_update(&st, (const uint8_t *)"SS58PRE", 7);
    crypto_generichash_update(&st, payload, n);
    crypto_generichash_final(&st, h, 64);
    out[0] = h[0];
    out[1] = h[1];
}

void ts_ss58(char out[64], const uint8_t pk[TS_PK_BYTES]) {
    uint8_t raw[35];
    raw[0] = 42;
    memcpy(raw + 1, pk, 32);
    ss58_checksum(raw + 33, raw, 33);
    /* base58: repeated division of a big-endian byte string */
    uint8_t digits[64] = {0};
    int nd = 0;
    for (int i = 0; i < 35; i++) {
        int carry = raw[i];
        for (int j = 0; j < nd; j++) {
            carry += digits[j] << 8;
            digits[j] = (uint8_t)(carry % 58);
            carry /= 58;
        }
        while (carry) {
            digits[nd++] = (uint8_t)(carry % 58);
            carry /= 58;
        }
    }
    int at = 0;
    for (int i = 0; i < 35 && raw[i] == 0; i++) out[at++] = '1';
    for (int j = nd - 1; j >= 0; j--) out[at++] = B58[digits[j]];
    out[at] = 0;
}

int ts_ss58_decode(uint8_t pk[TS_PK_BYTES], const char *addr) {
    uint8_t bytes[64] = {0};
    int nb = 0;
    size_t len = strlen(addr);
    if (len > 60) return TS_EINVAL;
    for (size_t i = 0; i < len; i++) {
        const char *p = strchr(B58, addr[i]);
        if (!p || !addr[i]) return TS_EINVAL;
        int carry = (int)(p - B58);
        for (int j = 0; j < nb; j++) {
            carry += bytes[j] * 58;
            bytes[j] = (uint8_t)(carry & 0xff);
            carry >>= 8;
        }
        while (carry) {
            if (nb >= 64) return TS_EINVAL;
            bytes[nb++] = (uint8_t)(carry & 0xff);
            carry >>= 8;
        }
    }
    for (size_t i = 0; i < len && addr[i] == '1'; i++) nb++;
    if (nb != 35) return TS_EINVAL;
    uint8_t raw[35];
    for (int i = 0; i < 35; i++) raw[i] = bytes[34 - i];
    uint8_t ck[2];
    ss58_checksum(ck, raw, 33);
    if (raw[0] != 42 || ck[0] != raw[33] || ck[1] != raw[34]) return TS_EINVAL;
    memcpy(pk, raw + 1, 32);
    return TS_OK;
}

