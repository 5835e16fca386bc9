/* wallet.c - key files: $TESSERA_HOME/wallets/<wallet>/hotkeys/<hotkey>,
 * created once (mode 0600) and loaded with ssh-like permission checks. */
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
