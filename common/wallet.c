/* wallet.c - Bittensor wallets: the key files btcli and bittensor-wallet
 * read and write, created once (mode 0600, directories 0700) and loaded with
 * ssh-like permission checks.  Layout and formats: common.h ("Wallets") and
 * docs/FORMATS.md section 2. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "common.h"
#include "sr25519.h"

enum { KEY_MAX = 1 << 16, PASSWORD_MAX = 1024 };

/* ------------------------------------------------------------------ paths */

static char *root_override;

void ts_wallet_set_root(const char *path) {
    free(root_override);
    root_override = path && path[0] ? strdup(path) : NULL;
}

static const char *user_home(void) {
    const char *home = getenv("HOME");
    if (home && home[0]) return home;
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_dir ? pw->pw_dir : "/tmp";
}

int ts_wallet_root(char **out, ts_err *e) {
    *out = NULL;
    const char *p = root_override;
    if (!p) {
        const char *v = getenv("TESSERA_WALLET_PATH");
        if (v && v[0]) p = v;
    }
    char *r;
    if (p) {
        /* "~" and "~/x" as btcli expands them */
        if (p[0] == '~' && (p[1] == '/' || !p[1])) r = ts_path_join(user_home(), p[1] ? p + 2 : "");
        else r = strdup(p);
    } else {
        const char *th = getenv("TESSERA_HOME");
        r = th && th[0] ? ts_path_join(th, "wallets") : ts_path_join(user_home(), ".bittensor/wallets");
    }
    if (!r) return ts_fail(e, TS_ENOMEM, "out of memory");
    for (size_t n = strlen(r); n > 1 && r[n - 1] == '/'; n--) r[n - 1] = 0;
    *out = r;
    return TS_OK;
}

static bool name_ok(const char *s) {
    if (!s || !s[0] || strlen(s) > 64 || s[0] == '.') return false;
    for (; *s; s++)
        if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') || ('0' <= *s && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int check_wallet_name(const char *wallet, ts_err *e) {
    if (!name_ok(wallet))
        return ts_fail(e, TS_EINVAL, "wallet name '%s' is not valid (letters, digits, - _ .)", wallet ? wallet : "");
    return TS_OK;
}

static int check_hotkey_name(const char *hotkey, ts_err *e) {
    if (!name_ok(hotkey))
        return ts_fail(e, TS_EINVAL, "hotkey name '%s' is not valid (letters, digits, - _ .)", hotkey ? hotkey : "");
    /* btcli keeps H's public key in "Hpub.txt" beside it */
    if (ends_with(hotkey, "pub.txt"))
        return ts_fail(e, TS_EINVAL, "hotkey name '%s' is not valid: names ending in 'pub.txt' are public key files", hotkey);
    return TS_OK;
}

/* ROOT/<wallet>/<leaf> (leaf may be NULL). */
static int wallet_file(const char *wallet, const char *leaf, char **out, ts_err *e) {
    *out = NULL;
    if (check_wallet_name(wallet, e)) return e ? e->code : TS_EINVAL;
    char *root;
    if (ts_wallet_root(&root, e)) return e ? e->code : TS_ENOMEM;
    size_t n = strlen(root) + strlen(wallet) + (leaf ? strlen(leaf) : 0) + 3;
    char *p = malloc(n);
    if (!p) {
        free(root);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    if (leaf) snprintf(p, n, "%s/%s/%s", root, wallet, leaf);
    else snprintf(p, n, "%s/%s", root, wallet);
    free(root);
    *out = p;
    return TS_OK;
}

int ts_key_path(const char *wallet, const char *hotkey, char **path, ts_err *e) {
    *path = NULL;
    if (check_wallet_name(wallet, e) || check_hotkey_name(hotkey, e)) return e ? e->code : TS_EINVAL;
    char leaf[96];
    snprintf(leaf, sizeof leaf, "hotkeys/%s", hotkey);
    return wallet_file(wallet, leaf, path, e);
}

int ts_coldkey_path(const char *wallet, char **path, ts_err *e) { return wallet_file(wallet, "coldkey", path, e); }

/* The public key file of a key file: ".../hotkeys/Hpub.txt" beside a hotkey,
 * ".../coldkeypub.txt" beside a coldkey. */
static char *pub_path_of(const char *path) {
    size_t n = strlen(path) + 8;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%spub.txt", path);
    return p;
}

static char *dir_of(const char *path) {
    char *dir = strdup(path);
    if (!dir) return NULL;
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) slash[1] = 0;
    else *slash = 0;
    return dir;
}

/* Coldkey files are named "coldkey" (outside a hotkeys directory); anything
 * else is read as a hotkey. */
static bool is_coldkey_path(const char *path) {
    const char *b = strrchr(path, '/');
    if (strcmp(b ? b + 1 : path, "coldkey")) return false;
    return !(b && b - path >= 8 && !strncmp(b - 8, "/hotkeys", 8)) && !(b && b - path == 7 && !strncmp(path, "hotkeys", 7));
}

/* ---------------------------------------------------------------- secrets */

typedef struct key_secret {
    ts_keypair kp;
    uint8_t seed[64];
    size_t seed_len; /* 0: none (from a URI or a privateKey), 32: a mini-secret, 64: a secret key */
} key_secret;

static const char *strip0x(const char *h) { return h[0] == '0' && (h[1] == 'x' || h[1] == 'X') ? h + 2 : h; }

/* A 64-byte secret in either layout: schnorrkel's (scalar || nonce, what
 * btwallet writes) or the "Ed25519" one (scalar * 8 || nonce, polkadot-js).
 * With want, the layout whose public key is want; without, schnorrkel's when
 * its scalar is canonical. */
static int secret_from_64(ts_keypair *kp, const uint8_t raw[64], const uint8_t *want) {
    ts_keypair k;
    memcpy(k.sk, raw, 64);
    if (!sr25519_public_of(k.pk, k.sk) && (!want || !memcmp(k.pk, want, 32))) {
        *kp = k;
        sodium_memzero(&k, sizeof k);
        return 0;
    }
    if (!sr25519_secret_from_ed25519_bytes(k.sk, raw) && !sr25519_public_of(k.pk, k.sk) &&
        (!want || !memcmp(k.pk, want, 32))) {
        *kp = k;
        sodium_memzero(&k, sizeof k);
        return 0;
    }
    sodium_memzero(&k, sizeof k);
    return -1;
}

static int secret_make(const ts_key_origin *from, key_secret *ks, ts_err *e) {
    memset(ks, 0, sizeof *ks);
    const char *uri = from ? from->uri : NULL, *seed = from ? from->seed : NULL;
    if (uri && seed) return ts_fail(e, TS_EINVAL, "give a secret URI or a seed, not both");
    if (uri) {
        /* the URI is a secret: never repeated in a message */
        if (sr25519_keypair_from_uri(ks->kp.sk, ks->kp.pk, uri))
            return ts_fail(e, TS_EINVAL,
                           "the secret URI is not one Tessera derives: use '//Name' (from the development "
                           "phrase) or '0x<64 hex mini-secret>', each with optional '//hard' junctions "
                           "(no '/soft' junctions, mnemonic phrases or '///password')");
        return TS_OK;
    }
    if (seed) {
        const char *h = strip0x(seed);
        size_t n = strlen(h) / 2;
        if ((strlen(h) != 64 && strlen(h) != 128) || ts_unhex(ks->seed, n, h))
            return ts_fail(e, TS_EINVAL,
                           "the seed must be 0x and 64 hex digits (a 32-byte mini-secret) or 128 (a 64-byte "
                           "sr25519 secret key)");
        ks->seed_len = n;
        if (n == 32) return ts_keypair_from_seed(&ks->kp, ks->seed) ? ts_fail(e, TS_EINVAL, "bad seed") : TS_OK;
        memcpy(ks->kp.sk, ks->seed, 64);
        if (sr25519_public_of(ks->kp.pk, ks->kp.sk))
            return ts_fail(e, TS_EINVAL, "the 64-byte seed is not an sr25519 secret key (its scalar is not canonical)");
        return TS_OK;
    }
    ts_random_bytes(ks->seed, 32);
    ks->seed_len = 32;
    return ts_keypair_from_seed(&ks->kp, ks->seed) ? ts_fail(e, TS_EINVAL, "key generation failed") : TS_OK;
}

/* ------------------------------------------------------------------- JSON
 * Written compact, as btwallet (serde_json) does, with only the members
 * btwallet writes; every value is a string (btwallet reads the file as a map
 * of strings or nulls).  Built by hand in locked memory: no copy of the
 * secret is left in the heap. */

static char *secret_json(const key_secret *ks, size_t *len) {
    if (sodium_init() < 0) return NULL;
    enum { CAP = 1024 }; /* the longest, with a 64-byte secretSeed, is 523 */
    char *s = sodium_malloc(CAP);
    if (!s) return NULL;
    char pk[2 * 32 + 1], sk[2 * 64 + 1], seed[2 * 64 + 1], ss[64];
    ts_hex(pk, ks->kp.pk, 32);
    ts_hex(sk, ks->kp.sk, 64);
    ts_ss58(ss, ks->kp.pk);
    int n;
    if (ks->seed_len) {
        ts_hex(seed, ks->seed, ks->seed_len);
        n = snprintf(s, CAP,
                     "{\"accountId\":\"0x%s\",\"publicKey\":\"0x%s\",\"privateKey\":\"0x%s\",\"secretSeed\":\"0x%s\","
                     "\"ss58Address\":\"%s\"}",
                     pk, pk, sk, seed, ss);
    } else {
        n = snprintf(s, CAP, "{\"accountId\":\"0x%s\",\"publicKey\":\"0x%s\",\"privateKey\":\"0x%s\",\"ss58Address\":\"%s\"}",
                     pk, pk, sk, ss);
    }
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(seed, sizeof seed);
    if (n < 0 || n >= CAP) {
        sodium_free(s);
        return NULL;
    }
    *len = (size_t)n;
    return s;
}

static char *public_json(const uint8_t pk[32], size_t *len) {
    char hex[2 * 32 + 1], ss[64];
    ts_hex(hex, pk, 32);
    ts_ss58(ss, pk);
    size_t cap = 256;
    char *s = malloc(cap);
    if (!s) return NULL;
    *len = (size_t)snprintf(s, cap, "{\"accountId\":\"0x%s\",\"publicKey\":\"0x%s\",\"ss58Address\":\"%s\"}", hex, hex, ss);
    return s;
}

/* Zeroes every string of a parsed key file before it is freed. */
static void json_wipe(cJSON *o) {
    for (cJSON *c = o; c; c = c->next) {
        if (c->valuestring) sodium_memzero(c->valuestring, strlen(c->valuestring));
        if (c->child) json_wipe(c->child);
    }
}

/* A member that is absent or null gives NULL; any other non-string is an error. */
static int json_str(const cJSON *o, const char *name, const char **out, const char *path, ts_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return TS_OK;
    if (!cJSON_IsString(v)) return ts_fail(e, TS_EFORMAT, "%s: member '%s' is not a string", path, name);
    *out = v->valuestring;
    return TS_OK;
}

/* The public key a key file states: publicKey, accountId and ss58Address,
 * each optional, must agree.  *have is false when none is there. */
static int json_public(const cJSON *o, const char *path, uint8_t pk[32], bool *have, ts_err *e) {
    const char *pub, *acct, *ss;
    *have = false;
    if (json_str(o, "publicKey", &pub, path, e) || json_str(o, "accountId", &acct, path, e) ||
        json_str(o, "ss58Address", &ss, path, e))
        return e ? e->code : TS_EFORMAT;
    const char *names[3] = {"publicKey", "accountId", "ss58Address"};
    const char *vals[3] = {pub, acct, ss};
    for (int i = 0; i < 3; i++) {
        if (!vals[i]) continue;
        uint8_t p[32];
        if (i < 2 ? ts_unhex(p, 32, vals[i]) : ts_ss58_decode(p, vals[i]))
            return ts_fail(e, TS_EFORMAT, "%s: %s is not %s", path, names[i],
                           i < 2 ? "0x and 32 bytes of hex" : "an SS58 address (prefix 42)");
        if (*have && memcmp(p, pk, 32))
            return ts_fail(e, TS_EFORMAT, "%s: %s does not match the other public key members", path, names[i]);
        memcpy(pk, p, 32);
        *have = true;
    }
    return TS_OK;
}

static const char OLD_ED25519[] =
    "%s: an Ed25519 key from an earlier Tessera; Tessera now uses sr25519 (Bittensor's scheme): create a new "
    "hotkey with tessera wallet new-hotkey";

/* Reads a secret key file's JSON (already decrypted) into ks.  btwallet takes
 * secretPhrase, else secretSeed, else privateKey; Tessera takes secretSeed,
 * else privateKey (deriving from a mnemonic is not implemented), and checks
 * that every public member and the privateKey agree with the key. */
static int parse_secret(const char *path, const char *text, size_t len, bool decrypted, key_secret *ks, ts_err *e) {
    memset(ks, 0, sizeof *ks);
    cJSON *o = cJSON_ParseWithLength(text, len);
    if (!o || !cJSON_IsObject(o)) {
        if (o) {
            json_wipe(o);
            cJSON_Delete(o);
        }
        return ts_fail(e, TS_EFORMAT, decrypted ? "%s: decrypted, but not a key file (not a JSON object)"
                                                : "%s: not a key file (invalid or truncated JSON)",
                       path);
    }
    int rc = TS_OK;
    const char *scheme, *seed, *priv, *phrase;
    uint8_t want[32], raw[64];
    bool have_want;
    if ((rc = json_str(o, "scheme", &scheme, path, e))) goto out;
    if (scheme && !strcmp(scheme, "ed25519")) {
        rc = ts_fail(e, TS_EUNSUPPORTED, OLD_ED25519, path);
        goto out;
    }
    if (scheme && strcmp(scheme, "sr25519")) {
        rc = ts_fail(e, TS_EUNSUPPORTED, "%s: unsupported key scheme '%.32s' (want sr25519)", path, scheme);
        goto out;
    }
    if ((rc = json_str(o, "secretSeed", &seed, path, e)) || (rc = json_str(o, "privateKey", &priv, path, e)) ||
        (rc = json_str(o, "secretPhrase", &phrase, path, e)) || (rc = json_public(o, path, want, &have_want, e)))
        goto out;
    if (seed) {
        const char *h = strip0x(seed);
        size_t n = strlen(h) / 2;
        if ((strlen(h) != 64 && strlen(h) != 128) || ts_unhex(ks->seed, n, h)) {
            rc = ts_fail(e, TS_EFORMAT, "%s: secretSeed is not 0x and 64 (or 128) hex digits", path);
            goto out;
        }
        ks->seed_len = n;
        if (n == 32) {
            ts_keypair_from_seed(&ks->kp, ks->seed);
        } else {
            memcpy(ks->kp.sk, ks->seed, 64);
            if (sr25519_public_of(ks->kp.pk, ks->kp.sk)) {
                rc = ts_fail(e, TS_EFORMAT, "%s: secretSeed is not an sr25519 secret key (scalar not canonical)", path);
                goto out;
            }
        }
    }
    if (priv) {
        ts_keypair k;
        if (ts_unhex(raw, 64, priv)) {
            rc = ts_fail(e, TS_EFORMAT, "%s: privateKey is not 0x and 64 bytes of hex", path);
        } else if (seed) {
            if (secret_from_64(&k, raw, ks->kp.pk))
                rc = ts_fail(e, TS_EFORMAT, "%s: privateKey does not match secretSeed", path);
        } else if (secret_from_64(&k, raw, have_want ? want : NULL)) {
            rc = have_want ? ts_fail(e, TS_EFORMAT, "%s: publicKey does not match privateKey", path)
                           : ts_fail(e, TS_EFORMAT, "%s: privateKey is not an sr25519 secret key", path);
        } else {
            ks->kp = k;
        }
        sodium_memzero(&k, sizeof k);
        if (rc) goto out;
    }
    if (!seed && !priv) {
        rc = phrase ? ts_fail(e, TS_EUNSUPPORTED,
                              "%s: holds only a mnemonic (secretPhrase, no secretSeed or privateKey); Tessera does "
                              "not derive keys from mnemonics: open it once with btcli, or use its secretSeed",
                              path)
                    : ts_fail(e, TS_EFORMAT, "%s: holds no secret key (no secretSeed or privateKey): a public key file?",
                              path);
        goto out;
    }
    if (have_want && memcmp(want, ks->kp.pk, 32))
        rc = ts_fail(e, TS_EFORMAT, "%s: publicKey does not match %s", path, seed ? "secretSeed" : "privateKey");
out:
    sodium_memzero(raw, sizeof raw);
    json_wipe(o);
    cJSON_Delete(o);
    if (rc) sodium_memzero(ks, sizeof *ks);
    return rc;
}

/* ------------------------------------------------------------------- NaCl */

#define NACL_MAGIC "$NACL"
enum { NACL_MAGIC_LEN = 5, NACL_HEAD = NACL_MAGIC_LEN + crypto_secretbox_NONCEBYTES };
/* btwallet's (and bittensor's) fixed argon2i salt */
static const uint8_t NACL_SALT[crypto_pwhash_argon2i_SALTBYTES] = {
    0x13, 0x71, 0x83, 0xdf, 0xf1, 0x5a, 0x09, 0xbc, 0x9c, 0x90, 0xb5, 0x51, 0x87, 0x39, 0xe9, 0xb1};
_Static_assert(crypto_secretbox_KEYBYTES == 32 && crypto_secretbox_NONCEBYTES == 24, "secretbox sizes");

static int nacl_key(uint8_t key[crypto_secretbox_KEYBYTES], const char *password, ts_err *e) {
    if (crypto_pwhash(key, crypto_secretbox_KEYBYTES, password, strlen(password), NACL_SALT,
                      crypto_pwhash_argon2i_OPSLIMIT_SENSITIVE, crypto_pwhash_argon2i_MEMLIMIT_SENSITIVE,
                      crypto_pwhash_ALG_ARGON2I13))
        return ts_fail(e, TS_ENOMEM, "argon2i key derivation failed: it needs %u MiB of memory",
                       (unsigned)(crypto_pwhash_argon2i_MEMLIMIT_SENSITIVE >> 20));
    return TS_OK;
}

static int nacl_seal(const char *msg, size_t n, const char *password, uint8_t **out, size_t *outlen, ts_err *e) {
    uint8_t key[crypto_secretbox_KEYBYTES];
    int rc = nacl_key(key, password, e);
    if (rc) return rc;
    size_t total = NACL_HEAD + crypto_secretbox_MACBYTES + n;
    uint8_t *c = malloc(total);
    if (!c) {
        sodium_memzero(key, sizeof key);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    memcpy(c, NACL_MAGIC, NACL_MAGIC_LEN);
    randombytes_buf(c + NACL_MAGIC_LEN, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(c + NACL_HEAD, (const uint8_t *)msg, n, c + NACL_MAGIC_LEN, key);
    sodium_memzero(key, sizeof key);
    *out = c;
    *outlen = total;
    return TS_OK;
}

/* ------------------------------------------------------------- passwords */

static volatile sig_atomic_t tty_signal_fd = -1;
static struct termios tty_saved;

static void tty_restore_and_die(int sig) {
    if (tty_signal_fd >= 0) tcsetattr(tty_signal_fd, TCSAFLUSH, &tty_saved);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* One line from /dev/tty with echo off, into buf (locked memory). */
static int tty_password(const char *prompt, char *buf, size_t cap, ts_err *e) {
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return ts_fail(e, TS_EDENIED, "no terminal to ask for the password on (%s)", strerror(errno));
    struct termios t;
    bool raw = tcgetattr(fd, &t) == 0;
    struct sigaction sa, old_int, old_term, old_hup, old_quit;
    if (raw) {
        tty_saved = t;
        tty_signal_fd = fd;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = tty_restore_and_die;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        sigaction(SIGHUP, &sa, &old_hup);
        sigaction(SIGQUIT, &sa, &old_quit);
        t.c_lflag &= (tcflag_t)~ECHO;
        t.c_lflag |= ICANON;
        tcsetattr(fd, TCSAFLUSH, &t);
    }
    if (write(fd, prompt, strlen(prompt)) < 0) { /* the prompt is a courtesy */
    }
    size_t n = 0;
    bool over = false, got_line = false;
    int err = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) err = errno;
        if (r <= 0) break;
        if (c == '\n' || c == '\r') {
            got_line = true;
            break;
        }
        if (n + 1 < cap) buf[n++] = c;
        else over = true;
    }
    buf[n] = 0;
    if (raw) {
        tcsetattr(fd, TCSAFLUSH, &tty_saved);
        tty_signal_fd = -1;
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGHUP, &old_hup, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
    }
    if (write(fd, "\n", 1) < 0) {
    }
    close(fd);
    if (err) return ts_fail(e, TS_EIO, "reading the password: %s", strerror(err));
    if (!got_line && !n) return ts_fail(e, TS_EINVAL, "no password given (end of input)");
    if (over) return ts_fail(e, TS_EINVAL, "password longer than %d bytes", PASSWORD_MAX);
    /* btcli strips the password it reads: do the same, so both derive one key */
    size_t a = 0;
    while (a < n && isspace((unsigned char)buf[a])) a++;
    while (n > a && isspace((unsigned char)buf[n - 1])) n--;
    memmove(buf, buf + a, n - a);
    memset(buf + (n - a), 0, cap - (n - a));
    return TS_OK;
}

void ts_password_free(char *pw) {
    if (pw) sodium_free(pw);
}

int ts_password_get(const char *what, const char *env, bool confirm, char **out, ts_err *e) {
    /* sodium_malloc below; a caller may not have called ts_init */
    if (sodium_init() < 0) return ts_fail(e, TS_EINVAL, "libsodium cannot be initialised");
    *out = NULL;
    char *pw = sodium_malloc(PASSWORD_MAX + 2);
    if (!pw) return ts_fail(e, TS_ENOMEM, "out of memory");
    const char *v = env ? getenv(env) : NULL;
    if (v) {
        if (strlen(v) > PASSWORD_MAX) {
            sodium_free(pw);
            return ts_fail(e, TS_EINVAL, "%s: password longer than %d bytes", env, PASSWORD_MAX);
        }
        strcpy(pw, v);
        *out = pw;
        return TS_OK;
    }
    char prompt[600];
    snprintf(prompt, sizeof prompt, "Password for %s: ", what);
    int rc = tty_password(prompt, pw, PASSWORD_MAX + 2, e);
    if (!rc && confirm) {
        char *again = sodium_malloc(PASSWORD_MAX + 2);
        if (!again) rc = ts_fail(e, TS_ENOMEM, "out of memory");
        else {
            snprintf(prompt, sizeof prompt, "Retype the password for %s: ", what);
            rc = tty_password(prompt, again, PASSWORD_MAX + 2, e);
            if (!rc && strcmp(pw, again)) rc = ts_fail(e, TS_EINVAL, "the passwords do not match");
            sodium_free(again);
        }
    }
    if (rc) {
        sodium_free(pw);
        if (e && env && strstr(e->msg, "no terminal")) {
            char why[256];
            snprintf(why, sizeof why, "%s", e->msg);
            rc = ts_fail(e, rc, "no password for %s: set %s or run on a terminal (%s)", what, env, why);
        }
        return rc;
    }
    *out = pw;
    return TS_OK;
}

/* ------------------------------------------------------------------- files */

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
    char *dir = dir_of(path);
    if (!dir) return ts_fail(e, TS_ENOMEM, "out of memory");
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

/* Reads a (small) key file into locked memory; a secret one only after the
 * permission check on the descriptor that is read. */
static int read_key_file(const char *path, bool secret, char **out, size_t *outlen, ts_err *e) {
    if (sodium_init() < 0) return ts_fail(e, TS_EINVAL, "libsodium cannot be initialised");
    *out = NULL;
    *outlen = 0;
    /* O_NONBLOCK: a FIFO in place of the key must not hang the open */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return ts_fail(e, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "%s: %s", path, strerror(errno));
    int rc;
    struct stat st;
    if (secret) rc = key_perms_ok(path, fd, e);
    else if (fstat(fd, &st)) rc = ts_fail(e, TS_EIO, "%s: %s", path, strerror(errno));
    else rc = S_ISREG(st.st_mode) ? TS_OK : ts_fail(e, TS_EINVAL, "%s: not a regular file", path);
    if (rc) {
        close(fd);
        return rc;
    }
    char *buf = sodium_malloc(KEY_MAX + 1);
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
        sodium_free(buf);
        return rc;
    }
    buf[len] = 0;
    *out = buf;
    *outlen = len;
    return TS_OK;
}

static ts_keyfile_kind classify(const char *d, size_t n) {
    if (n >= NACL_MAGIC_LEN && !memcmp(d, NACL_MAGIC, NACL_MAGIC_LEN)) return TS_KEYFILE_NACL;
    if (n >= 14 && !memcmp(d, "$ANSIBLE_VAULT", 14)) return TS_KEYFILE_ANSIBLE;
    if (n >= 6 && !memcmp(d, "gAAAAA", 6)) return TS_KEYFILE_FERNET;
    return TS_KEYFILE_PLAIN;
}

const char *ts_keyfile_kind_name(ts_keyfile_kind k) {
    switch (k) {
    case TS_KEYFILE_MISSING: return "missing";
    case TS_KEYFILE_PLAIN: return "unencrypted";
    case TS_KEYFILE_NACL: return "nacl";
    case TS_KEYFILE_ANSIBLE: return "ansible-vault";
    case TS_KEYFILE_FERNET: return "fernet";
    case TS_KEYFILE_UNREADABLE: return "unreadable";
    }
    return "unknown";
}

static int legacy_refused(const char *path, ts_keyfile_kind k, ts_err *e) {
    return ts_fail(e, TS_EUNSUPPORTED,
                   "%s: encrypted with %s, a legacy bittensor format Tessera does not read: re-encrypt it with "
                   "btcli (it offers to update legacy key files to NaCl when it opens them) or regenerate the key "
                   "from its mnemonic",
                   path, k == TS_KEYFILE_ANSIBLE ? "Ansible Vault" : "Fernet");
}

/* Loads a secret key file: JSON, or NaCl-encrypted JSON (password given,
 * else from the environment or the terminal). */
static int load_secret(const char *path, const char *password, key_secret *ks, ts_err *e) {
    if (sodium_init() < 0) return ts_fail(e, TS_EINVAL, "libsodium cannot be initialised");
    char *buf;
    size_t len;
    int rc = read_key_file(path, true, &buf, &len, e);
    if (rc) return rc;
    ts_keyfile_kind kind = classify(buf, len);
    const bool cold = is_coldkey_path(path);
    if (len == 0) {
        rc = ts_fail(e, TS_EFORMAT, "%s: empty key file", path);
    } else if (kind == TS_KEYFILE_ANSIBLE || kind == TS_KEYFILE_FERNET) {
        rc = legacy_refused(path, kind, e);
    } else if (kind == TS_KEYFILE_PLAIN) {
        rc = parse_secret(path, buf, len, false, ks, e);
    } else if (len < NACL_HEAD + crypto_secretbox_MACBYTES) {
        rc = ts_fail(e, TS_EFORMAT, "%s: truncated encrypted key file (%zu bytes; one holds at least %d)", path, len,
                     NACL_HEAD + crypto_secretbox_MACBYTES);
    } else {
        char what[600];
        snprintf(what, sizeof what, "%s %s", cold ? "coldkey" : "hotkey", path);
        char *pw = NULL;
        if (password) {
            pw = sodium_malloc(strlen(password) + 1);
            if (pw) strcpy(pw, password);
            else rc = ts_fail(e, TS_ENOMEM, "out of memory");
        } else {
            rc = ts_password_get(what, cold ? TS_COLDKEY_PASSWORD_ENV : TS_HOTKEY_PASSWORD_ENV, false, &pw, e);
        }
        uint8_t key[crypto_secretbox_KEYBYTES];
        char *plain = NULL;
        size_t plen = len - NACL_HEAD - crypto_secretbox_MACBYTES;
        if (!rc) rc = nacl_key(key, pw, e);
        if (!rc && !(plain = sodium_malloc(plen + 1))) rc = ts_fail(e, TS_ENOMEM, "out of memory");
        if (!rc && crypto_secretbox_open_easy((uint8_t *)plain, (const uint8_t *)buf + NACL_HEAD,
                                              len - NACL_HEAD, (const uint8_t *)buf + NACL_MAGIC_LEN, key))
            rc = ts_fail(e, TS_EDENIED, "wrong password for %s (or the file is damaged)", what);
        if (!rc) rc = parse_secret(path, plain, plen, true, ks, e);
        sodium_memzero(key, sizeof key);
        if (plain) sodium_free(plain);
        ts_password_free(pw);
    }
    sodium_free(buf);
    return rc;
}

/* The public key of a *pub.txt file (or of any key file's public members). */
static int load_public(const char *path, uint8_t pk[32], ts_err *e) {
    char *buf;
    size_t len;
    int rc = read_key_file(path, false, &buf, &len, e);
    if (rc) return rc;
    cJSON *o = cJSON_ParseWithLength(buf, len);
    bool have = false;
    if (!o || !cJSON_IsObject(o)) rc = ts_fail(e, TS_EFORMAT, "%s: not a public key file (invalid or truncated JSON)", path);
    else if (!(rc = json_public(o, path, pk, &have, e)) && !have)
        rc = ts_fail(e, TS_EFORMAT, "%s: no publicKey, accountId or ss58Address", path);
    if (o) {
        json_wipe(o);
        cJSON_Delete(o);
    }
    sodium_free(buf);
    return rc;
}

/* A key directory: created 0700 when missing, refused when group or others
 * can write it (a key there would be refused when loaded). */
static int key_dir(const char *dir, ts_err *e) {
    int rc = ts_mkdirs(dir, 0700, e);
    struct stat st;
    if (!rc && !stat(dir, &st) && (st.st_mode & 022))
        rc = ts_fail(e, TS_EDENIED,
                     "%s: key directory has mode %04o: group or others can write it (and replace the key); "
                     "refused (run: chmod 700 %s)",
                     dir, (unsigned)(st.st_mode & 07777), dir);
    return rc;
}

static void fsync_dir(const char *path) {
    char *dir = dir_of(path);
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

/* Writes a private temporary file (0600), fsyncs it, then link()s it into
 * place: link fails if the name appeared meanwhile, so a key is never
 * overwritten. */
static int write_new(const char *path, const void *data, size_t len, ts_err *e) {
    size_t tl = strlen(path) + 48;
    char *tmp = malloc(tl);
    if (!tmp) return ts_fail(e, TS_ENOMEM, "out of memory");
    uint32_t r = randombytes_random();
    snprintf(tmp, tl, "%s.tmp.%ld.%08x", path, (long)getpid(), r);
    int rc;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || fsync(fd)) {
        rc = ts_fail(e, TS_EIO, "%s: %s", fd < 0 ? tmp : path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
    } else if (close(fd)) {
        rc = ts_fail(e, TS_EIO, "%s: %s", path, strerror(errno));
        unlink(tmp);
    } else if (link(tmp, path)) {
        rc = errno == EEXIST ? ts_fail(e, TS_EEXIST, "%s already exists; refusing to overwrite a key", path)
                             : ts_fail(e, TS_EIO, "%s: %s", path, strerror(errno));
        unlink(tmp);
    } else {
        unlink(tmp);
        fsync_dir(path);
        rc = TS_OK;
    }
    free(tmp);
    return rc;
}

/* Creates a key file (secret) and its public key file beside it. */
static int create_key(const char *path, const char *password, const ts_key_origin *from, ts_keypair *kp,
                      ts_err *e) {
    if (password) {
        size_t n = strlen(password);
        if (!n) return ts_fail(e, TS_EINVAL, "empty password (for an unencrypted coldkey, ask for no password)");
        if (n > PASSWORD_MAX) return ts_fail(e, TS_EINVAL, "password longer than %d bytes", PASSWORD_MAX);
        if (isspace((unsigned char)password[0]) || isspace((unsigned char)password[n - 1]))
            return ts_fail(e, TS_EINVAL,
                           "the password begins or ends with white space, which btcli strips when it asks for one "
                           "(it could not open the key): refused");
    }
    char *pub = pub_path_of(path), *dir = dir_of(path);
    int rc = !pub || !dir ? ts_fail(e, TS_ENOMEM, "out of memory") : key_dir(dir, e);
    if (!rc && ts_path_exists(path)) rc = ts_fail(e, TS_EEXIST, "%s already exists; refusing to overwrite a key", path);
    if (!rc && ts_path_exists(pub))
        rc = ts_fail(e, TS_EEXIST, "%s already exists (the public key of a key); refusing to overwrite it", pub);
    key_secret ks;
    memset(&ks, 0, sizeof ks);
    if (!rc) rc = secret_make(from, &ks, e);
    char *json = NULL, *pj = NULL;
    size_t jl = 0, pl = 0;
    if (!rc && (!(json = secret_json(&ks, &jl)) || !(pj = public_json(ks.kp.pk, &pl))))
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
    if (!rc) {
        if (password) {
            uint8_t *sealed = NULL;
            size_t sl = 0;
            rc = nacl_seal(json, jl, password, &sealed, &sl, e);
            if (!rc) {
                rc = write_new(path, sealed, sl, e);
                free(sealed);
            }
        } else {
            rc = write_new(path, json, jl, e);
        }
    }
    if (!rc && (rc = write_new(pub, pj, pl, e))) ts_wrap(e, "wrote %s but not its public key file", path);
    if (!rc && kp) *kp = ks.kp;
    sodium_memzero(&ks, sizeof ks);
    if (json) sodium_free(json);
    free(pj);
    free(pub);
    free(dir);
    return rc;
}

int ts_hotkey_create(const char *wallet, const char *hotkey, const ts_key_origin *from, ts_keypair *kp,
                     char **path_out, ts_err *e) {
    char *path;
    if (ts_key_path(wallet, hotkey, &path, e)) return e ? e->code : TS_EINVAL;
    int rc = create_key(path, NULL, from, kp, e);
    if (rc == TS_OK && path_out) *path_out = path;
    else free(path);
    return rc;
}

int ts_key_create(const char *wallet, const char *hotkey, ts_keypair *kp, char **path_out, ts_err *e) {
    return ts_hotkey_create(wallet, hotkey, NULL, kp, path_out, e);
}

int ts_coldkey_create(const char *wallet, const char *password, const ts_key_origin *from, ts_keypair *kp,
                      char **path_out, ts_err *e) {
    char *path;
    if (ts_coldkey_path(wallet, &path, e)) return e ? e->code : TS_EINVAL;
    int rc = create_key(path, password, from, kp, e);
    if (rc == TS_OK && path_out) *path_out = path;
    else free(path);
    return rc;
}

int ts_key_load_file_pw(const char *path, const char *password, ts_keypair *kp, ts_err *e) {
    key_secret ks;
    int rc = load_secret(path, password, &ks, e);
    if (!rc) *kp = ks.kp;
    sodium_memzero(&ks, sizeof ks);
    return rc;
}

int ts_key_load_file(const char *path, ts_keypair *kp, ts_err *e) { return ts_key_load_file_pw(path, NULL, kp, e); }

int ts_key_load(const char *wallet, const char *hotkey, ts_keypair *kp, ts_err *e) {
    char *path;
    if (ts_key_path(wallet, hotkey, &path, e)) return e ? e->code : TS_EINVAL;
    int rc = ts_key_load_file(path, kp, e);
    free(path);
    return rc;
}

int ts_coldkey_load(const char *wallet, const char *password, ts_keypair *kp, ts_err *e) {
    char *path;
    if (ts_coldkey_path(wallet, &path, e)) return e ? e->code : TS_EINVAL;
    int rc = ts_key_load_file_pw(path, password, kp, e);
    char *pub = rc ? NULL : pub_path_of(path);
    uint8_t pk[32];
    ts_err e2 = {0};
    if (pub && !load_public(pub, pk, &e2) && memcmp(pk, kp->pk, 32)) {
        rc = ts_fail(e, TS_EFORMAT, "%s does not match %s (another key's public key?): refused", pub, path);
        sodium_memzero(kp, sizeof *kp);
    }
    free(pub);
    free(path);
    return rc;
}

int ts_coldkeypub_load(const char *wallet, uint8_t pk[TS_PK_BYTES], ts_err *e) {
    char *path;
    if (wallet_file(wallet, "coldkeypub.txt", &path, e)) return e ? e->code : TS_EINVAL;
    int rc = load_public(path, pk, e);
    free(path);
    return rc;
}

int ts_hotkeypub_load(const char *wallet, const char *hotkey, uint8_t pk[TS_PK_BYTES], ts_err *e) {
    char *path;
    if (ts_key_path(wallet, hotkey, &path, e)) return e ? e->code : TS_EINVAL;
    char *pub = pub_path_of(path);
    int rc = pub ? load_public(pub, pk, e) : ts_fail(e, TS_ENOMEM, "out of memory");
    free(pub);
    free(path);
    return rc;
}

/* ------------------------------------------------------------ inspection */

static void set_problem(ts_wallet_key *k, const char *msg) {
    if (!k->problem) k->problem = strdup(msg);
}

/* What a key holds, without a password and without reading its secret: the
 * kind of its file, the public key from the *pub.txt file or the file's own
 * public members, and whether they agree. */
static void inspect_key(ts_wallet_key *k) {
    ts_err e = {0};
    uint8_t pub_pk[32], file_pk[32];
    bool have_pub = false, have_file = false;
    char *pub = pub_path_of(k->path);
    if (pub && ts_path_exists(pub)) {
        if (load_public(pub, pub_pk, &e)) set_problem(k, e.msg);
        else have_pub = true;
    }
    int fd = open(k->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        k->kind = errno == ENOENT ? TS_KEYFILE_MISSING : TS_KEYFILE_UNREADABLE;
        if (errno != ENOENT) {
            ts_fail(&e, TS_EIO, "%s: %s", k->path, strerror(errno));
            set_problem(k, e.msg);
        }
    } else {
        if (key_perms_ok(k->path, fd, &e)) set_problem(k, e.msg);
        close(fd);
        char *buf;
        size_t len;
        /* read without the permission check (reported above), to classify */
        if (read_key_file(k->path, false, &buf, &len, &e)) {
            k->kind = TS_KEYFILE_UNREADABLE;
            set_problem(k, e.msg);
        } else {
            k->kind = classify(buf, len);
            if (k->kind == TS_KEYFILE_PLAIN) {
                cJSON *o = cJSON_ParseWithLength(buf, len);
                const char *scheme = NULL;
                if (!o || !cJSON_IsObject(o)) {
                    ts_fail(&e, TS_EFORMAT, "%s: not a key file (invalid or truncated JSON)", k->path);
                    set_problem(k, e.msg);
                } else if (!json_str(o, "scheme", &scheme, k->path, &e) && scheme && !strcmp(scheme, "ed25519")) {
                    ts_fail(&e, TS_EUNSUPPORTED, OLD_ED25519, k->path);
                    set_problem(k, e.msg);
                } else if (json_public(o, k->path, file_pk, &have_file, &e)) {
                    set_problem(k, e.msg);
                }
                if (o) {
                    json_wipe(o);
                    cJSON_Delete(o);
                }
            } else if (k->kind == TS_KEYFILE_ANSIBLE || k->kind == TS_KEYFILE_FERNET) {
                legacy_refused(k->path, k->kind, &e);
                set_problem(k, e.msg);
            }
            sodium_free(buf);
        }
    }
    if (have_pub && have_file && memcmp(pub_pk, file_pk, 32)) {
        ts_fail(&e, TS_EFORMAT, "%s does not match %s", pub, k->path);
        set_problem(k, e.msg);
    }
    if (have_pub || have_file) {
        memcpy(k->pk, have_pub ? pub_pk : file_pk, 32);
        k->has_pk = true;
    }
    free(pub);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Entry names of a directory that are valid key names, sorted (NULL-ended). */
static int list_names(const char *dir, char ***out, int *n, bool want_dirs, ts_err *e) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? TS_OK : ts_fail(e, TS_EIO, "%s: %s", dir, strerror(errno));
    char **v = NULL;
    int cnt = 0, cap = 0, rc = TS_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!name_ok(de->d_name) || strstr(de->d_name, ".tmp.")) continue;
        char *full = ts_path_join(dir, de->d_name);
        struct stat st;
        bool is_dir = full && !stat(full, &st) && S_ISDIR(st.st_mode);
        bool is_file = full && !lstat(full, &st) && (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode));
        free(full);
        if (want_dirs ? !is_dir : !is_file) continue;
        if (cnt + 1 >= cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, sizeof *v * (size_t)cap);
            if (!nv) {
                rc = ts_fail(e, TS_ENOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        if (!(v[cnt] = strdup(de->d_name))) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            break;
        }
        cnt++;
    }
    closedir(d);
    if (rc) {
        for (int i = 0; i < cnt; i++) free(v[i]);
        free(v);
        return rc;
    }
    if (v) qsort(v, (size_t)cnt, sizeof *v, cmp_str);
    *out = v;
    *n = cnt;
    return TS_OK;
}

static void free_names(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

void ts_wallet_info_free(ts_wallet_info *w) {
    if (!w) return;
    free(w->name);
    free(w->path);
    free(w->coldkey.name);
    free(w->coldkey.path);
    free(w->coldkey.problem);
    for (int i = 0; i < w->nhotkeys; i++) {
        free(w->hotkeys[i].name);
        free(w->hotkeys[i].path);
        free(w->hotkeys[i].problem);
    }
    free(w->hotkeys);
    memset(w, 0, sizeof *w);
}

int ts_wallet_info_get(const char *wallet, ts_wallet_info *w, ts_err *e) {
    memset(w, 0, sizeof *w);
    int rc = wallet_file(wallet, NULL, &w->path, e);
    if (rc) return rc;
    struct stat st;
    if (stat(w->path, &st) || !S_ISDIR(st.st_mode)) {
        rc = ts_fail(e, TS_ENOTFOUND, "no wallet '%s' (no directory %s)", wallet, w->path);
        ts_wallet_info_free(w);
        return rc;
    }
    w->name = strdup(wallet);
    w->coldkey.name = strdup("coldkey");
    w->coldkey.path = ts_path_join(w->path, "coldkey");
    char *hk = ts_path_join(w->path, "hotkeys");
    if (!w->name || !w->coldkey.name || !w->coldkey.path || !hk) {
        free(hk);
        ts_wallet_info_free(w);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    inspect_key(&w->coldkey);
    char **names;
    int n;
    rc = list_names(hk, &names, &n, false, e);
    if (!rc && n) {
        w->hotkeys = calloc((size_t)n, sizeof *w->hotkeys);
        if (!w->hotkeys) rc = ts_fail(e, TS_ENOMEM, "out of memory");
    }
    for (int i = 0; !rc && i < n; i++) {
        /* "Hpub.txt" is H's public key file: H is listed once, even when only
         * its public key file is there */
        char base[72];
        snprintf(base, sizeof base, "%s", names[i]);
        if (ends_with(base, "pub.txt")) base[strlen(base) - 7] = 0;
        if (!name_ok(base) || ends_with(base, "pub.txt")) continue;
        bool dup = false;
        for (int j = 0; j < w->nhotkeys; j++) dup |= !strcmp(w->hotkeys[j].name, base);
        if (dup) continue;
        ts_wallet_key *k = &w->hotkeys[w->nhotkeys];
        k->name = strdup(base);
        k->path = ts_path_join(hk, base);
        if (!k->name || !k->path) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            break;
        }
        w->nhotkeys++;
        inspect_key(k);
    }
    free_names(names, n);
    free(hk);
    if (rc) {
        ts_wallet_info_free(w);
        return rc;
    }
    /* names sorted "a", "apub.txt", "b": bases come out sorted but for
     * pub-only entries; sort to be sure */
    for (int i = 1; i < w->nhotkeys; i++)
        for (int j = i; j > 0 && strcmp(w->hotkeys[j - 1].name, w->hotkeys[j].name) > 0; j--) {
            ts_wallet_key t = w->hotkeys[j];
            w->hotkeys[j] = w->hotkeys[j - 1];
            w->hotkeys[j - 1] = t;
        }
    return TS_OK;
}

void ts_wallet_list_free(ts_wallet_info *w, int n) {
    for (int i = 0; i < n; i++) ts_wallet_info_free(&w[i]);
    free(w);
}

int ts_wallet_list(ts_wallet_info **out, int *n, ts_err *e) {
    *out = NULL;
    *n = 0;
    char *root;
    int rc = ts_wallet_root(&root, e);
    if (rc) return rc;
    char **names;
    int cnt;
    rc = list_names(root, &names, &cnt, true, e);
    free(root);
    if (rc) return rc;
    ts_wallet_info *v = cnt ? calloc((size_t)cnt, sizeof *v) : NULL;
    if (cnt && !v) rc = ts_fail(e, TS_ENOMEM, "out of memory");
    int got = 0;
    for (int i = 0; !rc && i < cnt; i++) {
        rc = ts_wallet_info_get(names[i], &v[got], e);
        if (rc == TS_ENOTFOUND) { /* removed meanwhile */
            rc = TS_OK;
            continue;
        }
        if (!rc) got++;
    }
    free_names(names, cnt);
    if (rc) {
        ts_wallet_list_free(v, got);
        return rc;
    }
    *out = v;
    *n = got;
    return TS_OK;
}
