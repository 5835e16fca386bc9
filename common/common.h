/*
 * common.h - the core every Tessera module stands on.
 *
 * Errors, logging, configuration and flags, files (capped reads, atomic
 * writes), hashing and domain-separated signatures (libsodium), zstd with a
 * decompression cap, tensors and safetensors.  Nothing here knows about the
 * subnet protocol; it is plumbing that must never crash on hostile input.
 *
 * Conventions: functions that can fail return 0 on success or a positive
 * TS_E* code, and fill an optional ts_err with the code and one readable line.
 */
#ifndef TESSERA_COMMON_H
#define TESSERA_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define TS_NORETURN [[noreturn]]
#define TS_ALIGNAS(n) alignas(n)
#else
#define TS_NORETURN _Noreturn
#define TS_ALIGNAS(n) _Alignas(n)
#endif

#define TESSERA_VERSION "0.1.0"

/* ------------------------------------------------------------------ errors */

enum {
    TS_OK = 0,
    TS_EINVAL,    /* bad argument or bad user input */
    TS_EIO,       /* operating-system I/O failure */
    TS_ENOMEM,    /* allocation failed */
    TS_EFORMAT,   /* malformed file or message */
    TS_ETOOBIG,   /* a size over its cap */
    TS_ESIG,      /* signature or hash did not verify */
    TS_ENOTFOUND, /* no such file, key or object */
    TS_EEXIST,    /* refusing to overwrite */
    TS_ENET,      /* network failure */
    TS_ETIMEOUT,  /* deadline passed */
    TS_ECONFIG,   /* configuration key unknown or of the wrong type */
    TS_EUNSUPPORTED,
    TS_ESTATE,    /* operation not valid in the current state */
    TS_EDENIED,   /* permission or policy refusal */
    TS_ECOUNT
};

typedef struct ts_err {
    int code;
    char msg[512];
} ts_err;

/* Sets *e (when non-NULL) and returns code.  printf-style message. */
int ts_fail(ts_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes the existing message with "ctx: " and returns e->code. */
int ts_wrap(ts_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ts_strerror(int code);
void ts_err_clear(ts_err *e);

/* Binaries: print "tessera: <msg>" on stderr and exit(1). */
TS_NORETURN void ts_die(const char *prog, const ts_err *e);

/* ----------------------------------------------------------------- logging */

typedef enum { TS_LOG_DEBUG, TS_LOG_INFO, TS_LOG_WARN, TS_LOG_ERROR } ts_log_level;

void ts_log_set_level(ts_log_level lvl);
int ts_log_parse_level(const char *s, ts_log_level *out);
void ts_log_set_json(bool on);
/* Prefix every line with this component (e.g. "miner[uid 3]"). */
void ts_log_set_component(const char *name);
void ts_log(ts_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ts_vlog(ts_log_level lvl, const char *fmt, va_list ap);
#define TS_DEBUG(...) ts_log(TS_LOG_DEBUG, __VA_ARGS__)
#define TS_INFO(...) ts_log(TS_LOG_INFO, __VA_ARGS__)
#define TS_WARN(...) ts_log(TS_LOG_WARN, __VA_ARGS__)
#define TS_ERROR(...) ts_log(TS_LOG_ERROR, __VA_ARGS__)

/* Seconds since the epoch, wall clock and monotonic. */
double ts_now(void);
/* libcurl's global initialisation, once per process (SIGPIPE ignored too):
 * 0, or the CURLcode it failed with. */
int ts_curl_init(void);
double ts_mono(void);

/* ------------------------------------------------- configuration and flags
 *
 * One table of options drives a command's JSON config file, its environment
 * variables and its flags, in that order of precedence (flags win).  An option
 * named "store.url" is the key "url" inside the object "store" in the JSON
 * file, the variable TESSERA_STORE_URL and the flag --store-url.  Unknown JSON
 * keys, unknown flags and values of the wrong type are errors naming the key,
 * and so are numeric values outside a range the command declares
 * (ts_opt_range).  A JSON number that is not finite (1e999) is refused.
 */
typedef enum { TS_OPT_STR, TS_OPT_INT, TS_OPT_F64, TS_OPT_BOOL } ts_opt_type;

typedef struct ts_opt {
    const char *name;  /* dotted name */
    ts_opt_type type;
    void *dst;         /* char ** (strdup'd, caller frees via ts_opts_free), int64_t *, double *, bool * */
    const char *def;   /* default as text, or NULL (strings stay NULL) */
    const char *help;
    unsigned flags;    /* TS_OPT_REQUIRED, TS_OPT_NOENV, TS_OPT_SECRET */
    char short_flag;   /* optional one-letter alias, 0 for none */
} ts_opt;

#define TS_OPT_REQUIRED 1u
#define TS_OPT_NOENV 2u   /* never read from the environment */
#define TS_OPT_SECRET 4u  /* never printed */

/* The range of a numeric option (TS_OPT_INT or TS_OPT_F64), named by its
 * dotted name in ts_cmdline.ranges.  Every value is checked against it where
 * it is set, whatever its source (default, config file, environment, flag);
 * a value outside is TS_ECONFIG naming the option as it was given:
 *     "--threads: 100000 is outside [0, 1024]"
 *     "TESSERA_THREADS: 100000 is outside [0, 1024]"
 *     "FILE: config key 'threads': 100000 is outside [0, 1024]"
 * --help shows the range after the option's help text.  A range that names
 * no numeric option of the table, or whose bounds are NaN or crossed, fails
 * every parse (TS_EINVAL): a typo in a table cannot silently drop a check. */
typedef struct ts_opt_range {
    const char *name;  /* the option's dotted name */
    double min, max;   /* inclusive bounds; -INFINITY / INFINITY: none */
    unsigned flags;    /* TS_RANGE_MIN_OPEN: min itself is outside */
} ts_opt_range;

#define TS_RANGE_MIN_OPEN 1u

typedef struct ts_cmdline {
    const char *prog;          /* "tessera data prep" */
    const char *usage;         /* one line after the program name */
    const char *summary;       /* a paragraph for --help */
    const ts_opt *opts;
    int nopts;
    bool config_file;          /* accept --config FILE */
    bool env;                  /* read TESSERA_* variables */
    int min_pos, max_pos;      /* positional arguments (max -1: unlimited) */
    const ts_opt_range *ranges; /* ranges of numeric options (optional) */
    int nranges;
    bool *given;               /* optional, nopts entries: true where a config file, the
                                  environment or a flag set the option (false: its default) */
} ts_cmdline;

/* Parses defaults, then the config file, the environment, then argv.
 * Returns TS_OK, or TS_EINVAL/TS_ECONFIG with a message; *help_shown is set
 * when --help was given (the help text is then printed and nothing parsed).
 * Positional arguments are returned in pos[0..*npos) (pointers into argv). */
int ts_cmdline_parse(const ts_cmdline *c, int argc, char **argv, char ***pos, int *npos,
                     bool *help_shown, ts_err *e);
void ts_cmdline_help(const ts_cmdline *c, void *fp /* FILE* */);
/* Frees the strings that parsing stored in TS_OPT_STR destinations. */
void ts_opts_free(const ts_opt *opts, int n);
/* Applies a cJSON object (const struct cJSON *) to the options; used by
 * ts_cmdline_parse (which also checks its ranges) and by tests.  No ranges
 * are checked here: a caller checks its own values. */
int ts_opts_apply_json(const ts_opt *opts, int n, const void *json, ts_err *e);

/* ------------------------------------------------------------------- files */

/* Reads a whole file; refuses files larger than max bytes.  *out is
 * NUL-terminated (one byte beyond *len) and freed with free(). */
int ts_read_file(const char *path, size_t max, uint8_t **out, size_t *len, ts_err *e);
/* Atomic replace: write path.tmp.<pid>.<rand>, fsync, rename, fsync dir. */
int ts_write_atomic(const char *path, const void *data, size_t len, ts_err *e);
/* The same from several pieces (no concatenation copy). */
int ts_write_atomicv(const char *path, const void *const *parts, const size_t *lens,
                     int nparts, ts_err *e);
/* Test hook: when set, called between the fsync of the temporary file and
 * the rename (a crash can be simulated there). */
extern void (*ts_write_atomic_hook)(const char *tmp_path);
/* mkdir -p with the given mode for created directories. */
int ts_mkdirs(const char *path, unsigned mode, ts_err *e);
bool ts_path_exists(const char *path);
/* Path join into a malloc'd string. */
char *ts_path_join(const char *a, const char *b);
/* $TESSERA_HOME, else ~/.tessera (malloc'd). */
char *ts_home_dir(void);

/* Read-only memory map of a whole file. */
typedef struct ts_mmap {
    const uint8_t *data;
    size_t len;
} ts_mmap;
int ts_mmap_open(const char *path, ts_mmap *m, ts_err *e);
void ts_mmap_close(ts_mmap *m);

/* ---------------------------------------------------------------- hashing */

#define TS_HASH_BYTES 32 /* BLAKE2b-256, the default digest everywhere */

void ts_blake2b(uint8_t *out, size_t outlen, const void *in, size_t inlen);
typedef struct ts_hasher {
    TS_ALIGNAS(64) uint8_t state[384]; /* crypto_generichash_state */
    size_t outlen;
} ts_hasher;
void ts_hasher_init(ts_hasher *h, size_t outlen);
void ts_hasher_update(ts_hasher *h, const void *in, size_t len);
void ts_hasher_final(ts_hasher *h, uint8_t *out);
/* BLAKE2b-256 of a file's contents, streamed. */
int ts_hash_file(const char *path, uint8_t out[TS_HASH_BYTES], ts_err *e);

/* Lower-case hex; out must hold 2*n+1 bytes. */
void ts_hex(char *out, const uint8_t *in, size_t n);
/* Decodes exactly n bytes of hex (an optional "0x" prefix is allowed). */
int ts_unhex(uint8_t *out, size_t n, const char *hex);

/* Deterministic bytes: ChaCha20 stream from a 32-byte seed
 * (libsodium randombytes_buf_deterministic). */
void ts_det_bytes(void *out, size_t n, const uint8_t seed[32]);
/* Cryptographic random bytes. */
void ts_random_bytes(void *out, size_t n);

/* ------------------------------------------------------------- signatures
 *
 * sr25519 (schnorrkel, common/sr25519.h), the scheme of Bittensor hotkeys,
 * so a node signs with the hotkey the chain lists for it.  Every signature is
 * over a domain-separated message under the signing context "tessera":
 *     "tessera-sig-v1" 0x00 || u8 len(tag) || tag || msg
 * so a signature made for one purpose (tag) never verifies for another, and
 * none can pass for a Substrate extrinsic signature (context "substrate").
 *
 * A run uses one signature scheme; every signed format records it (a byte or
 * a member, docs/FORMATS.md section 1) and readers refuse any other.  Ed25519
 * (scheme 0, earlier Tessera) is no longer accepted.
 */
#define TS_SIG_SCHEME_SR25519 1
#define TS_SIG_SCHEME_NAME "sr25519"

#define TS_PK_BYTES 32
#define TS_SK_BYTES 64
#define TS_SEED_BYTES 32
#define TS_SIG_BYTES 64

typedef struct ts_keypair {
    uint8_t pk[TS_PK_BYTES];
    uint8_t sk[TS_SK_BYTES]; /* sr25519 secret: scalar (32) || nonce (32) */
} ts_keypair;

int ts_keypair_from_seed(ts_keypair *kp, const uint8_t seed[TS_SEED_BYTES]);
void ts_keypair_generate(ts_keypair *kp);
int ts_sign(const ts_keypair *kp, const char *tag, const void *msg, size_t len,
            uint8_t sig[TS_SIG_BYTES], ts_err *e);
/* Returns TS_OK or TS_ESIG. */
int ts_verify(const uint8_t pk[TS_PK_BYTES], const char *tag, const void *msg, size_t len,
              const uint8_t sig[TS_SIG_BYTES], ts_err *e);
/* SS58 address (generic substrate prefix 42) of a 32-byte public key. */
void ts_ss58(char out[64], const uint8_t pk[TS_PK_BYTES]);
int ts_ss58_decode(uint8_t pk[TS_PK_BYTES], const char *addr);

/* Wallets, laid out and written exactly as btcli / bittensor-wallet do
 * (docs/FORMATS.md section 2):
 *     ROOT/<wallet>/coldkey                  secret key JSON, usually NaCl-encrypted
 *     ROOT/<wallet>/coldkeypub.txt           its public key (JSON)
 *     ROOT/<wallet>/hotkeys/<hotkey>         secret key JSON (normally unencrypted)
 *     ROOT/<wallet>/hotkeys/<hotkey>pub.txt  its public key (JSON)
 * ROOT: ts_wallet_set_root() (the --wallet-path flag), else
 * $TESSERA_WALLET_PATH, else $TESSERA_HOME/wallets when TESSERA_HOME is set,
 * else ~/.bittensor/wallets (btcli's default).  Keys are sr25519.  New files
 * are mode 0600 in directories of mode 0700, never overwritten; a secret key
 * file group or others can access, or in a directory they can write, is
 * refused (as ssh does).  Wallet and hotkey names: letters, digits, - _ .
 *
 * An encrypted key file is "$NACL" || nonce (24) || crypto_secretbox_easy of
 * the JSON, under a key from the password by argon2i (crypto_pwhash_argon2i
 * SENSITIVE limits: 8 passes, 512 MiB, a few seconds) with btcli's fixed
 * salt.  A password not given is taken from TESSERA_COLDKEY_PASSWORD (coldkey
 * files) or TESSERA_HOTKEY_PASSWORD (hotkey files), else asked on the
 * terminal without echo.  Legacy Ansible Vault and Fernet files are refused
 * with the advice to re-encrypt them with btcli. */
#define TS_COLDKEY_PASSWORD_ENV "TESSERA_COLDKEY_PASSWORD"
#define TS_HOTKEY_PASSWORD_ENV "TESSERA_HOTKEY_PASSWORD"

/* Overrides the wallet root for this process (NULL: back to the environment). */
void ts_wallet_set_root(const char *path);
/* The wallet root (malloc'd, "~/" expanded). */
int ts_wallet_root(char **out, ts_err *e);
/* ROOT/<wallet>/hotkeys/<hotkey> and ROOT/<wallet>/coldkey (malloc'd). */
int ts_key_path(const char *wallet, const char *hotkey, char **path, ts_err *e);
int ts_coldkey_path(const char *wallet, char **path, ts_err *e);

/* Where a new key comes from: a secret URI ("//Alice", "0x<64 hex>//x"; see
 * sr25519_keypair_from_uri), or a seed "0x" + 64 hex (a mini-secret) or 128
 * hex (a 64-byte sr25519 secret key); neither (or a NULL origin): a random
 * mini-secret. */
typedef struct ts_key_origin {
    const char *uri;
    const char *seed;
} ts_key_origin;

/* A new unencrypted hotkey and its <hotkey>pub.txt; *path_out (optional,
 * malloc'd) is the key file.  ts_key_create is ts_hotkey_create(.., NULL, ..). */
int ts_key_create(const char *wallet, const char *hotkey, ts_keypair *kp, char **path_out,
                  ts_err *e);
int ts_hotkey_create(const char *wallet, const char *hotkey, const ts_key_origin *from,
                     ts_keypair *kp, char **path_out, ts_err *e);
/* A new coldkey and coldkeypub.txt; encrypted with password, or unencrypted
 * when password is NULL.  A password that is empty, over 1024 bytes or begins
 * or ends with white space (btcli strips it when asking) is refused. */
int ts_coldkey_create(const char *wallet, const char *password, const ts_key_origin *from,
                      ts_keypair *kp, char **path_out, ts_err *e);

/* Loads a hotkey (an encrypted one asks for its password, see above). */
int ts_key_load(const char *wallet, const char *hotkey, ts_keypair *kp, ts_err *e);
/* Loads any key file; password NULL: from the environment or the terminal. */
int ts_key_load_file(const char *path, ts_keypair *kp, ts_err *e);
int ts_key_load_file_pw(const char *path, const char *password, ts_keypair *kp, ts_err *e);
/* Loads (decrypts) a coldkey, and checks it against coldkeypub.txt when that
 * exists.  password NULL: from the environment or the terminal. */
int ts_coldkey_load(const char *wallet, const char *password, ts_keypair *kp, ts_err *e);
/* Public keys from coldkeypub.txt / <hotkey>pub.txt: no password needed. */
int ts_coldkeypub_load(const char *wallet, uint8_t pk[TS_PK_BYTES], ts_err *e);
int ts_hotkeypub_load(const char *wallet, const char *hotkey, uint8_t pk[TS_PK_BYTES], ts_err *e);

/* A password from the variable env (when set) or the terminal (asked twice
 * when confirm); what names the key in the prompt.  Free with
 * ts_password_free. */
int ts_password_get(const char *what, const char *env, bool confirm, char **out, ts_err *e);
void ts_password_free(char *pw);

/* What a wallet holds, read without any password or secret. */
typedef enum {
    TS_KEYFILE_MISSING,
    TS_KEYFILE_PLAIN,   /* unencrypted JSON */
    TS_KEYFILE_NACL,    /* "$NACL" */
    TS_KEYFILE_ANSIBLE, /* legacy "$ANSIBLE_VAULT" */
    TS_KEYFILE_FERNET,  /* legacy "gAAAAA" */
    TS_KEYFILE_UNREADABLE
} ts_keyfile_kind;
const char *ts_keyfile_kind_name(ts_keyfile_kind k); /* "unencrypted", "nacl", ... */

typedef struct ts_wallet_key {
    char *name;  /* the hotkey's name, or "coldkey" */
    char *path;  /* the secret key file */
    ts_keyfile_kind kind;
    bool has_pk; /* from the *pub.txt file, else an unencrypted key file */
    uint8_t pk[TS_PK_BYTES];
    char *problem; /* one line when something is wrong (mode, mismatch), or NULL */
} ts_wallet_key;

typedef struct ts_wallet_info {
    char *name;
    char *path;            /* ROOT/<wallet> */
    ts_wallet_key coldkey;
    ts_wallet_key *hotkeys; /* sorted by name */
    int nhotkeys;
} ts_wallet_info;

int ts_wallet_info_get(const char *wallet, ts_wallet_info *w, ts_err *e);
void ts_wallet_info_free(ts_wallet_info *w);
/* Every wallet under the root, sorted by name (none: *n = 0). */
int ts_wallet_list(ts_wallet_info **out, int *n, ts_err *e);
void ts_wallet_list_free(ts_wallet_info *w, int n);

/* -------------------------------------------------------------------- zstd */

int ts_zstd_compress(const void *src, size_t n, int level, uint8_t **out, size_t *outlen,
                     ts_err *e);
/* Refuses (TS_ETOOBIG) any frame whose content would exceed max_out, before
 * allocating for it and while streaming when the frame does not say. */
int ts_zstd_decompress(const void *src, size_t n, size_t max_out, uint8_t **out,
                       size_t *outlen, ts_err *e);

/* ----------------------------------------------------------------- tensors */

typedef enum {
    TS_F32, TS_F16, TS_BF16, TS_F64, TS_I8, TS_U8, TS_I16, TS_U16, TS_I32, TS_U32,
    TS_I64, TS_U64, TS_BOOL, TS_DTYPE_COUNT
} ts_dtype;

#define TS_MAX_DIMS 8
#define TS_MAX_NAME 256

typedef struct ts_tensor {
    char name[TS_MAX_NAME];
    ts_dtype dtype;
    int ndim;
    int64_t shape[TS_MAX_DIMS];
    void *data;    /* borrowed unless owned */
    size_t nbytes;
    bool owned;    /* data was malloc'd for this tensor */
} ts_tensor;

size_t ts_dtype_size(ts_dtype d);
const char *ts_dtype_name(ts_dtype d);       /* safetensors spelling: "F32" */
int ts_dtype_parse(const char *s, ts_dtype *d);
/* Element count, or -1 on overflow / negative dims. */
int64_t ts_numel(int ndim, const int64_t *shape);
/* Allocates a zeroed tensor (owned). */
int ts_tensor_alloc(ts_tensor *t, const char *name, ts_dtype d, int ndim, const int64_t *shape,
                    ts_err *e);
void ts_tensor_free(ts_tensor *t);
/* "[768, 3072]" */
void ts_shape_str(char *out, size_t cap, int ndim, const int64_t *shape);

/* bf16 conversion, round-to-nearest-even (NaN kept quiet). */
static inline uint16_t ts_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v;
    v.f = f;
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40u);
    uint32_t r = v.u + 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)(r >> 16);
}
static inline float ts_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}

/* ------------------------------------------------------------- safetensors
 *
 * The Hugging Face format: u64 little-endian header length N, N bytes of JSON
 * ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {str: str}}), then the data.  Every offset and size is
 * checked before anything is trusted: offsets in range, sizes matching the
 * shape, tensors contiguous and non-overlapping, header length sane.
 */
#define TS_ST_MAX_HEADER (100u << 20)

typedef struct ts_st_file ts_st_file;

/* Opens (memory-maps) and validates a file. */
int ts_st_open(const char *path, ts_st_file **out, ts_err *e);
/* Validates a buffer that stays owned by the caller and must outlive the
 * result. */
int ts_st_parse(const uint8_t *buf, size_t len, ts_st_file **out, ts_err *e);
void ts_st_close(ts_st_file *f);
int ts_st_count(const ts_st_file *f);
/* Views into the file (data borrowed). */
const ts_tensor *ts_st_get(const ts_st_file *f, int i);
const ts_tensor *ts_st_find(const ts_st_file *f, const char *name);
/* __metadata__ value, or NULL. */
const char *ts_st_meta(const ts_st_file *f, const char *key);

/* Writes tensors (in the given order) atomically; meta is NULL or a
 * NULL-terminated list of key, value pairs. */
int ts_st_write(const char *path, const ts_tensor *const *ts, int n, const char *const *meta,
                ts_err *e);
/* The same into memory (malloc'd). */
int ts_st_serialize(const ts_tensor *const *ts, int n, const char *const *meta, uint8_t **out,
                    size_t *len, ts_err *e);

/* ------------------------------------------------------------------ misc */

/* A run id: 1..TS_RUN_ID_MAX bytes of [A-Za-z0-9._-] (every module that
 * binds objects to a run checks it with this). */
#define TS_RUN_ID_MAX 64
bool ts_run_id_valid(const char *s);

/* Parses a decimal integer/float with range checks; whole string must match. */
int ts_parse_i64(const char *s, int64_t *out);
int ts_parse_f64(const char *s, double *out);
/* A growing NUL-terminated text buffer: start from {0}; an allocation that
 * fails sets oom, and every later call does nothing (check oom once at the
 * end; free p). */
typedef struct ts_sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} ts_sbuf;
void ts_sbuf_put(ts_sbuf *b, const char *s, size_t n);
void ts_sbuf_printf(ts_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Human sizes: "1.5 MB". */
void ts_fmt_bytes(char *out, size_t cap, double bytes);
/* Seconds to "1h02m", "3m05s", "12.3s". */
void ts_fmt_duration(char *out, size_t cap, double seconds);
/* A one-line progress display on stderr when it is a terminal (else every
 * `every` seconds a plain line). */
void ts_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ts_progress_done(void);

/* Little-endian helpers for wire formats. */
static inline void ts_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void ts_put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void ts_put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t ts_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ts_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t ts_get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* libsodium must be initialised once; every entry point calls this. */
int ts_init(ts_err *e);

#ifdef __cplusplus
}
#endif

#endif
