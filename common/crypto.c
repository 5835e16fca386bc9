/* crypto.c - BLAKE2b, deterministic streams, Ed25519 with domain tags, keys.
 *
 * All of it is libsodium.  Signatures are always over
 *     "tessera-sig-v1" 0x00 || u8 len(tag) || tag || msg
 * so a signature made for a gradient can never pass as one for a checkpoint
 * manifest, and vice versa. */
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

int ts_keypair_from_seed(ts_keypair *kp, const uint8_t seed[TS_SEED_BYTES]) {
    return crypto_sign_seed_keypair(kp->pk, kp->sk, seed) ? TS_EINVAL : TS_OK;
}

void ts_keypair_generate(ts_keypair *kp) { crypto_sign_keypair(kp->pk, kp->sk); }

int ts_sign(const ts_keypair *kp, const char *tag, const void *msg, size_t len,
            uint8_t sig[TS_SIG_BYTES], ts_err *e) {
    size_t n;
    uint8_t *m = domain_msg(tag, msg, len, &n);
    if (!m) return ts_fail(e, TS_EINVAL, "signature domain tag too long or out of memory");
    crypto_sign_detached(sig, NULL, m, n, kp->sk);
    free(m);
    return TS_OK;
}

int ts_verify(const uint8_t pk[TS_PK_BYTES], const char *tag, const void *msg, size_t len,
              const uint8_t sig[TS_SIG_BYTES], ts_err *e) {
    size_t n;
    uint8_t *m = domain_msg(tag, msg, len, &n);
    if (!m) return ts_fail(e, TS_EINVAL, "signature domain tag too long or out of memory");
    int bad = crypto_sign_verify_detached(sig, m, n, pk);
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

/* ------------------------------------------------------------------ keys */

static bool name_ok(const char *s) {
    if (!s || !s[0] || strlen(s) > 64 || s[0] == '.') return false;
    for (; *s; s++)
        if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') || ('0' <= *s && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

int ts_key_path(const char *wallet, const char *hotkey, char **path, ts_err *e) {
    *path = NULL;
    if (!name_ok(wallet)) return ts_fail(e, TS_EINVAL, "wallet name '%s' is not valid (letters, digits, - _ .)", wallet ? wallet : "");
    if (!name_ok(hotkey)) return ts_fail(e, TS_EINVAL, "hotkey name '%s' is not valid (letters, digits, - _ .)", hotkey ? hotkey : "");
    char *home = ts_home_dir();
    if (!home) return ts_fail(e, TS_ENOMEM, "out of memory");
    size_t n = strlen(home) + strlen(wallet) + strlen(hotkey) + 32;
    *path = malloc(n);
    if (!*path) {
        free(home);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    snprintf(*path, n, "%s/wallets/%s/hotkeys/%s", home, wallet, hotkey);
    free(home);
    return TS_OK;
}

static char *key_json(const ts_keypair *kp) {
    char pk[2 * TS_PK_BYTES + 3] = "0x", seed[2 * TS_SEED_BYTES + 3] = "0x", ss[64];
    ts_hex(pk + 2, kp->pk, TS_PK_BYTES);
    ts_hex(seed + 2, kp->sk, TS_SEED_BYTES);
    ts_ss58(ss, kp->pk);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "scheme", "ed25519");
    cJSON_AddStringToObject(o, "publicKey", pk);
    cJSON_AddStringToObject(o, "secretSeed", seed);
    cJSON_AddStringToObject(o, "ss58Address", ss);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    sodium_memzero(seed, sizeof seed);
    return s;
}

int ts_key_create(const char *wallet, const char *hotkey, ts_keypair *kp, char **path_out,
                  ts_err *e) {
    char *path;
    if (ts_key_path(wallet, hotkey, &path, e)) return e ? e->code : TS_EINVAL;
    char *dir = strdup(path);
    if (!dir) {
        free(path);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    *strrchr(dir, '/') = 0;
    int rc = ts_mkdirs(dir, 0700, e);
    /* a key in a directory others can write would be refused when loaded */
    struct stat st;
    if (!rc && !stat(dir, &st) && (st.st_mode & 022))
        rc = ts_fail(e, TS_EDENIED,
                     "%s: key directory has mode %04o: group or others can write it (and replace the key); "
                     "refused (run: chmod 700 %s)",
                     dir, (unsigned)(st.st_mode & 07777), dir);
    free(dir);
    if (rc) {
        free(path);
        return rc;
    }
    if (ts_path_exists(path)) {
        rc = ts_fail(e, TS_EEXIST, "%s already exists; refusing to overwrite a key", path);
        free(path);
        return rc;
    }
    ts_keypair_generate(kp);
    char *json = key_json(kp);
    if (!json) {
        free(path);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    /* Write a private temporary file, then link() it into place: link fails
     * if the name appeared meanwhile, so a key is never overwritten. */
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t jl = strlen(json);
    if (fd < 0 || write(fd, json, jl) != (ssize_t)jl || fsync(fd) || close(fd)) {
        rc = ts_fail(e, TS_EIO, "%s: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
        unlink(tmp);
    } else if (link(tmp, path)) {
        rc = errno == EEXIST ? ts_fail(e, TS_EEXIST, "%s already exists; refusing to overwrite a key", path)
                             : ts_fail(e, TS_EIO, "%s: %s", path, strerror(errno));
        unlink(tmp);
    } else {
        unlink(tmp);
        rc = TS_OK;
    }
    sodium_memzero(json, jl);
    free(json);
    free(tmp);
    if (rc == TS_OK && path_out) *path_out = path;
    else free(path);
    return rc;
}

/* The permission rule for secret key files, as ssh has it for private keys:
 * the file must be readable and writable by its owner alone (group and
 * others have no access at all: 0600 or 0400), and its directory must not be
 * writable by group or others (they could replace the key with their own).
 * Checked on the opened descriptor, so the file checked is the file read. */
static int key_perms_ok(const char *path, int fd, ts_err *e) {
    struct stat st;
    if (fstat(fd, &st)) return ts_fail(e, TS_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return ts_fail(e, TS_EINVAL, "%s: not a regular file", path);
    if (st.st_mode & 077)
        return ts_fail(e, TS_EDENIED,
                       "%s: secret key file has mode %04o: group or others can %s it; refused (run: chmod 600 %s)",
                       path, (unsigned)(st.st_mode & 07777),
                       (st.st_mode & 044) && (st.st_mode & 022) ? "read and write"
                       : (st.st_mode & 044)                     ? "read"
                       : (st.st_mode & 022)                     ? "write"
                                                                : "execute",
                       path);
    char *dir = strdup(path);
    if (!dir) return ts_fail(e, TS_ENOMEM, "out of memory");
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) slash[1] = 0;
    else *slash = 0;
    int rc = TS_OK;
    if (stat(dir, &st)) rc = ts_fail(e, TS_EIO, "%s: %s", dir, strerror(errno));
    else if (st.st_mode & 022)
        rc = ts_fail(e, TS_EDENIED,
                     "%s: key directory has mode %04o: group or others can write it (and replace the key); "
                     "refused (run: chmod 700 %s)",
                     dir, (unsigned)(st.st_mode & 07777), dir);
    free(dir);
    return rc;
}

int ts_key_load_file(const char *path, ts_keypair *kp, ts_err *e) {
    /* O_NONBLOCK: a FIFO in place of the key must not hang the open */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return ts_fail(e, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "%s: %s", path, strerror(errno));
    int rc = key_perms_ok(path, fd, e);
    if (rc) {
        close(fd);
        return rc;
    }
    /* read the (small) file from the descriptor that was checked */
    enum { KEY_MAX = 1 << 16 };
    uint8_t *buf = malloc(KEY_MAX + 1);
    if (!buf) {
        close(fd);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, KEY_MAX + 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = ts_fail(e, TS_EIO, "%s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len > KEY_MAX) {
            rc = ts_fail(e, TS_ETOOBIG, "%s: over the limit of %d bytes for a key file", path, KEY_MAX);
            break;
        }
    }
    close(fd);
    if (rc) {
        sodium_memzero(buf, KEY_MAX + 1);
        free(buf);
        return rc;
    }
    cJSON *o = cJSON_ParseWithLength((const char *)buf, len);
    sodium_memzero(buf, KEY_MAX + 1);
    free(buf);
    if (!o) return ts_fail(e, TS_EFORMAT, "%s: not a key file (invalid JSON)", path);
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(o, "secretSeed");
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(o, "publicKey");
    const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(o, "scheme");
    uint8_t s[TS_SEED_BYTES], p[TS_PK_BYTES];
    rc = TS_OK;
    if (!cJSON_IsString(scheme) || strcmp(scheme->valuestring, "ed25519"))
        rc = ts_fail(e, TS_EFORMAT, "%s: unsupported key scheme (want ed25519)", path);
    else if (!cJSON_IsString(seed) || ts_unhex(s, sizeof s, seed->valuestring))
        rc = ts_fail(e, TS_EFORMAT, "%s: secretSeed missing or not 32 bytes of hex", path);
    else if (!cJSON_IsString(pk) || ts_unhex(p, sizeof p, pk->valuestring))
        rc = ts_fail(e, TS_EFORMAT, "%s: publicKey missing or not 32 bytes of hex", path);
    else if (ts_keypair_from_seed(kp, s) || memcmp(kp->pk, p, sizeof p))
        rc = ts_fail(e, TS_EFORMAT, "%s: publicKey does not match secretSeed", path);
    cJSON_Delete(o);
    sodium_memzero(s, sizeof s);
    return rc;
}

int ts_key_load(const char *wallet, const char *hotkey, ts_keypair *kp, ts_err *e) {
    char *path;
    if (ts_key_path(wallet, hotkey, &path, e)) return e ? e->code : TS_EINVAL;
    int rc = ts_key_load_file(path, kp, e);
    free(path);
    return rc;
}
