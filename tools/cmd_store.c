/* cmd_store.c - tessera store: object storage for operators.
 *
 *   tessera store put URL KEY FILE      (FILE "-": standard input)
 *   tessera store get URL KEY [FILE]    (no FILE or "-": standard output)
 *   tessera store ls URL [PREFIX]
 *   tessera store stat URL KEY
 *   tessera store rm URL KEY...
 *   tessera store abort URL [PREFIX]    abort unfinished multipart uploads
 *   tessera store commitment URL        the text to publish on chain
 *   tessera store decode TEXT           what a published commitment names
 *
 * URL is a store: file:///abs/path or s3://bucket[/prefix]?endpoint=...&region=...
 * (a plain directory path is taken as a file store).  Every verb takes the
 * store options below and, like every command, --log-level and --log-json. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "storage/storage.h"
#include "tools.h"

/* Options every verb that opens a store shares. */
typedef struct common_opts {
    char *access_key, *secret_key;
    int64_t parallel, part_size, retries;
    double stall_timeout, connect_timeout;
    bool unsigned_payload, quiet;
    char *log_level; /* as every command takes them (node/daemon.c) */
    bool log_json;
} common_opts;

#define COMMON_OPTS(c)                                                                                       \
    {"store.access_key", TS_OPT_STR, &(c).access_key, NULL,                                                 \
     "S3 access key id (else $AWS_ACCESS_KEY_ID)", TS_OPT_SECRET, 0},                                        \
    {"store.secret_key", TS_OPT_STR, &(c).secret_key, NULL,                                                 \
     "S3 secret (else $AWS_SECRET_ACCESS_KEY; prefer the environment to a flag)", TS_OPT_SECRET, 0},         \
    {"parallel", TS_OPT_INT, &(c).parallel, "4", "concurrent part/range requests for large objects",         \
     TS_OPT_NOENV, 0},                                                                                       \
    {"part_size", TS_OPT_INT, &(c).part_size, "16777216", "multipart part and download range size, bytes",   \
     TS_OPT_NOENV, 0},                                                                                       \
    {"retries", TS_OPT_INT, &(c).retries, "5", "retries on 5xx, 429 and network errors", TS_OPT_NOENV, 0},  \
    {"stall_timeout", TS_OPT_F64, &(c).stall_timeout, "30", "abort a transfer stalled this many seconds",    \
     TS_OPT_NOENV, 0},                                                                                       \
    {"connect_timeout", TS_OPT_F64, &(c).connect_timeout, "10", "connect timeout, seconds", TS_OPT_NOENV, 0}, \
    {"unsigned_payload", TS_OPT_BOOL, &(c).unsigned_payload, "false",                                        \
     "do not hash bodies (UNSIGNED-PAYLOAD; https endpoints only)", TS_OPT_NOENV, 0},                        \
    {"quiet", TS_OPT_BOOL, &(c).quiet, "false", "no progress display", TS_OPT_NOENV, 'q'},                   \
    {"log_level", TS_OPT_STR, &(c).log_level, "info", "debug, info, warn or error", 0, 0},                   \
    {"log_json", TS_OPT_BOOL, &(c).log_json, "false", "log JSON lines", 0, 0}

#define NCOMMON 11

/* Applies --log-level / --log-json; a bad level is a usage error (2). */
static int apply_logging(const char *prog, const common_opts *c) {
    ts_log_level lvl;
    if (ts_log_parse_level(c->log_level, &lvl)) {
        fprintf(stderr, "%s: --log-level must be debug, info, warn or error, not '%s'\n", prog,
                c->log_level ? c->log_level : "");
        return 2;
    }
    ts_log_set_level(lvl);
    ts_log_set_json(c->log_json);
    return 0;
}

typedef struct progress_ctx {
    const char *what;
    bool on;
    double last;
} progress_ctx;

static void on_progress(void *ud, uint64_t done, uint64_t total) {
    progress_ctx *p = ud;
    if (!p->on) return;
    double now = ts_mono();
    if (done < total && now - p->last < 0.2) return;
    p->last = now;
    char a[32], b[32];
    ts_fmt_bytes(a, sizeof a, (double)done);
    ts_fmt_bytes(b, sizeof b, (double)total);
    ts_progress("%s: %s of %s (%.0f%%)", p->what, a, b, total ? 100.0 * (double)done / (double)total : 100.0);
}

/* A plain directory path becomes a file:// URL. */
static char *url_of(const char *arg) {
    if (strstr(arg, "://")) return strdup(arg); /* a URL (store_open judges it) */
    char *abs = realpath(arg, NULL);
    if (!abs && arg[0] == '/') abs = strdup(arg);
    if (!abs) {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return NULL;
        abs = ts_path_join(cwd, arg);
    }
    if (!abs) return NULL;
    char *u = malloc(strlen(abs) + 8);
    if (u) sprintf(u, "file://%s", abs);
    free(abs);
    return u;
}

static int open_store(const char *arg, const common_opts *c, progress_ctx *p, store **s) {
    store_opts o = {0};
    o.access_key = c->access_key && *c->access_key ? c->access_key : NULL;
    o.secret_key = c->secret_key && *c->secret_key ? c->secret_key : NULL;
    o.parallel = (int)c->parallel;
    o.part_size = c->part_size > 0 ? (uint64_t)c->part_size : 0;
    o.multipart_threshold = o.part_size ? 4 * o.part_size : 0;
    o.retries = c->retries > 0 ? (int)c->retries : -1;
    o.stall_timeout_s = c->stall_timeout;
    o.connect_timeout_s = c->connect_timeout;
    o.unsigned_payload = c->unsigned_payload;
    if (p) {
        p->on = !c->quiet && isatty(STDERR_FILENO);
        o.progress = on_progress;
        o.progress_ud = p;
    }
    char *url = url_of(arg);
    if (!url) {
        ts_err e;
        ts_fail(&e, TS_ENOMEM, "out of memory");
        return tool_error(&e);
    }
    ts_err e = {0};
    int rc = store_open(s, url, &o, &e);
    sodium_memzero(url, strlen(url));
    free(url);
    return rc ? tool_error(&e) : 0;
}

static void fmt_time(char *out, size_t cap, double t) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* JSON string (keys are UTF-8 without control characters). */
static void json_str(FILE *fp, const char *s) {
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

/* The ranges of the common options: an S3 part is 5 MiB to 5 GiB. */
#define COMMON_RANGES                                                                                        \
    {"parallel", 1, 64, 0}, {"part_size", 5 << 20, 5368709120.0, 0}, {"retries", 0, 100, 0},                \
        {"stall_timeout", 0, 3600, TS_RANGE_MIN_OPEN}, {"connect_timeout", 0, 3600, TS_RANGE_MIN_OPEN}

#define NCOMMON_RANGES 5

/* Boilerplate: parse with the common options appended (and the ranges of
 * the extra ones, xranges, after the common ranges). */
#define PARSE_R(prog_, usage_, summary_, minp, maxp, extra, nextra, xranges, nxranges)                       \
    common_opts co = {0};                                                                                    \
    ts_opt opts_[16] = {COMMON_OPTS(co)};                                                                    \
    for (int i_ = 0; i_ < (nextra); i_++) opts_[NCOMMON + i_] = (extra)[i_];                                 \
    ts_opt_range ranges_[8] = {COMMON_RANGES};                                                               \
    for (int i_ = 0; i_ < (nxranges); i_++) ranges_[NCOMMON_RANGES + i_] = (xranges)[i_];                    \
    const ts_cmdline cl_ = {.prog = prog_, .usage = usage_, .summary = summary_, .opts = opts_,              \
                            .nopts = NCOMMON + (nextra), .env = true, .min_pos = minp, .max_pos = maxp,      \
                            .ranges = ranges_, .nranges = NCOMMON_RANGES + (nxranges)};                      \
    char **pos = NULL;                                                                                       \
    int npos = 0;                                                                                            \
    int prc_ = tool_parse(&cl_, argc, argv, &pos, &npos);                                                    \
    if (prc_) {                                                                                              \
        ts_opts_free(opts_, NCOMMON + (nextra));                                                             \
        return prc_ < 0 ? 0 : prc_;                                                                          \
    }                                                                                                        \
    if ((prc_ = apply_logging(prog_, &co))) {                                                                \
        ts_opts_free(opts_, NCOMMON + (nextra));                                                             \
        free(pos);                                                                                           \
        return prc_;                                                                                         \
    }

#define PARSE(prog_, usage_, summary_, minp, maxp, extra, nextra) \
    PARSE_R(prog_, usage_, summary_, minp, maxp, extra, nextra, (const ts_opt_range *)NULL, 0)

#define DONE(rc_)                                                                                            \
    do {                                                                                                     \
        ts_opts_free(opts_, NCOMMON + nextra_n);                                                             \
        free(pos);                                                                                           \
        return (rc_);                                                                                        \
    } while (0)

static int cmd_put(int argc, char **argv) {
    const ts_opt *extra = NULL;
    const int nextra_n = 0;
    PARSE("tessera store put", "URL KEY FILE",
          "Uploads FILE (\"-\": standard input) to KEY.  The object appears whole or not at all: large\n"
          "files go up as a multipart upload with parts in parallel, aborted on failure.",
          3, 3, extra, 0)
    store *s;
    progress_ctx p = {.what = pos[1]};
    int rc = open_store(pos[0], &co, &p, &s);
    if (rc) DONE(rc);
    ts_err e = {0};
    if (!strcmp(pos[2], "-")) {
        size_t cap = 1 << 20, n = 0;
        uint8_t *buf = malloc(cap);
        while (buf) {
            if (n == cap) {
                uint8_t *nb = cap < ((size_t)1 << 40) ? realloc(buf, cap * 2) : NULL;
                if (!nb) {
                    free(buf);
                    buf = NULL;
                    break;
                }
                buf = nb;
                cap *= 2;
            }
            size_t r = fread(buf + n, 1, cap - n, stdin);
            n += r;
            if (r == 0) break;
        }
        if (!buf) rc = ts_fail(&e, TS_ENOMEM, "standard input: out of memory");
        else if (ferror(stdin)) rc = ts_fail(&e, TS_EIO, "standard input: read error");
        else rc = store_put(s, pos[1], buf, n, &e);
        free(buf);
    } else {
        rc = store_put_file(s, pos[1], pos[2], &e);
    }
    ts_progress_done();
    store_close(s);
    DONE(rc ? tool_error(&e) : 0);
}

/* To standard output the object is held in memory first: by default at
 * most 256 MiB of it, and always some limit (an endless answer must not
 * take the machine's memory).  To a file it streams: no limit by default. */
#define GET_STDOUT_MAX ((int64_t)256 << 20)

static int cmd_get(int argc, char **argv) {
    int64_t max = -1;
    const ts_opt extra[] = {
        {"max_size", TS_OPT_INT, &max, "-1",
         "refuse objects larger than this many bytes (-1: 268435456 = 256 MiB to standard output, no limit to "
         "a FILE; 0: no limit, to a FILE only)",
         0, 0},
    };
    const int nextra_n = 1;
    /* PARSE, with a range for --max-size */
    common_opts co = {0};
    ts_opt opts_[16] = {COMMON_OPTS(co)};
    opts_[NCOMMON] = extra[0];
    const ts_opt_range ranges[] = {COMMON_RANGES, {"max_size", -1, 9007199254740992.0, 0}};
    const ts_cmdline cl_ = {
        .prog = "tessera store get",
        .usage = "URL KEY [FILE]",
        .summary = "Downloads KEY to FILE (replaced atomically, streamed) or to standard output (the object\n"
                   "is held in memory first, so --max-size is 256 MiB there unless given).  Large objects\n"
                   "come down as parallel ranged requests.",
        .opts = opts_,
        .nopts = NCOMMON + 1,
        .env = true,
        .min_pos = 2,
        .max_pos = 3,
        .ranges = ranges,
        .nranges = NCOMMON_RANGES + 1,
    };
    char **pos = NULL;
    int npos = 0;
    int prc_ = tool_parse(&cl_, argc, argv, &pos, &npos);
    if (prc_) {
        ts_opts_free(opts_, NCOMMON + 1);
        return prc_ < 0 ? 0 : prc_;
    }
    if ((prc_ = apply_logging(cl_.prog, &co))) DONE(prc_);
    ts_err e = {0};
    const bool to_stdout = npos < 3 || !strcmp(pos[2], "-");
    if (max == 0 && to_stdout) {
        fprintf(stderr,
                "tessera store get: --max-size 0 (no limit) needs a FILE: standard output holds the object in "
                "memory\n");
        DONE(2);
    }
    const bool by_default = max < 0;
    if (by_default) max = to_stdout ? GET_STDOUT_MAX : 0;
    store *s;
    progress_ctx p = {.what = pos[1]};
    int rc = open_store(pos[0], &co, &p, &s);
    if (rc) DONE(rc);
    if (to_stdout) {
        uint8_t *buf;
        size_t n;
        rc = store_get(s, pos[1], (size_t)max, &buf, &n, &e);
        ts_progress_done();
        if (!rc) {
            if (fwrite(buf, 1, n, stdout) != n || fflush(stdout))
                rc = ts_fail(&e, TS_EIO, "standard output: %s", strerror(errno));
            free(buf);
        }
    } else {
        rc = store_get_file(s, pos[1], pos[2], (uint64_t)max, &e);
        ts_progress_done();
    }
    store_close(s);
    if (rc == TS_ETOOBIG) {
        size_t n = strlen(e.msg);
        if (by_default && to_stdout)
            snprintf(e.msg + n, sizeof e.msg - n,
                     " (--max-size: 256 MiB by default to standard output; give a FILE to stream it, or a larger "
                     "--max-size)");
        else
            snprintf(e.msg + n, sizeof e.msg - n, " (--max-size %lld)", (long long)max);
    }
    DONE(rc ? tool_error(&e) : 0);
}

typedef struct ls_ctx {
    bool json, first;
    uint64_t n, bytes;
} ls_ctx;

static int ls_cb(void *ud, const char *key, const store_info *info) {
    ls_ctx *c = ud;
    char t[32];
    fmt_time(t, sizeof t, info->last_modified);
    if (c->json) {
        printf("%s{\"key\": ", c->first ? "" : ",\n ");
        json_str(stdout, key);
        printf(", \"size\": %" PRIu64 ", \"etag\": ", info->size);
        json_str(stdout, info->etag);
        printf(", \"last_modified\": %.3f}", info->last_modified);
    } else {
        printf("%s %12" PRIu64 "  %s\n", t, info->size, key);
    }
    c->first = false;
    c->n++;
    c->bytes += info->size;
    return 0;
}

static int cmd_ls(int argc, char **argv) {
    bool json = false;
    const ts_opt extra[] = {{"json", TS_OPT_BOOL, &json, "false", "print a JSON array", 0, 0}};
    const int nextra_n = 1;
    PARSE("tessera store ls", "URL [PREFIX]",
          "Lists the objects under PREFIX: LastModified (UTC), size in bytes, key.", 1, 2, extra, 1)
    store *s;
    int rc = open_store(pos[0], &co, NULL, &s);
    if (rc) DONE(rc);
    ts_err e = {0};
    ls_ctx c = {.json = json, .first = true};
    if (json) printf("[");
    rc = store_list(s, npos > 1 ? pos[1] : "", ls_cb, &c, &e);
    if (json) printf("]\n");
    else if (!rc) {
        char b[32];
        ts_fmt_bytes(b, sizeof b, (double)c.bytes);
        fprintf(stderr, "%" PRIu64 " objects, %s\n", c.n, b);
    }
    store_close(s);
    DONE(rc ? tool_error(&e) : 0);
}

static int cmd_stat(int argc, char **argv) {
    bool json = false;
    const ts_opt extra[] = {{"json", TS_OPT_BOOL, &json, "false", "print JSON", 0, 0}};
    const int nextra_n = 1;
    PARSE("tessera store stat", "URL KEY", "Prints an object's size, ETag and LastModified.", 2, 2, extra, 1)
    store *s;
    int rc = open_store(pos[0], &co, NULL, &s);
    if (rc) DONE(rc);
    ts_err e = {0};
    store_info info;
    rc = store_head(s, pos[1], &info, &e);
    if (!rc) {
        char t[32];
        fmt_time(t, sizeof t, info.last_modified);
        if (json) {
            printf("{\"key\": ");
            json_str(stdout, pos[1]);
            printf(", \"size\": %" PRIu64 ", \"etag\": ", info.size);
            json_str(stdout, info.etag);
            printf(", \"last_modified\": %.3f}\n", info.last_modified);
        } else {
            printf("key            %s\nsize           %" PRIu64 "\netag           %s\nlast modified  %s (%.3f)\n",
                   pos[1], info.size, info.etag, t, info.last_modified);
        }
    }
    store_close(s);
    DONE(rc ? tool_error(&e) : 0);
}

static int cmd_rm(int argc, char **argv) {
    const ts_opt *extra = NULL;
    const int nextra_n = 0;
    PARSE("tessera store rm", "URL KEY...", "Deletes objects (deleting an absent object is not an error).", 2, -1,
          extra, 0)
    store *s;
    int rc = open_store(pos[0], &co, NULL, &s);
    if (rc) DONE(rc);
    ts_err e = {0};
    for (int i = 1; i < npos && !rc; i++) rc = store_delete(s, pos[i], &e);
    store_close(s);
    DONE(rc ? tool_error(&e) : 0);
}

static int cmd_abort(int argc, char **argv) {
    double older = 0;
    const ts_opt extra[] = {
        {"older_than", TS_OPT_F64, &older, "3600", "only uploads started this many seconds ago or earlier", 0, 0},
    };
    const int nextra_n = 1;
    const ts_opt_range xranges[] = {{"older_than", 0, INFINITY, 0}};
    PARSE_R("tessera store abort", "URL [PREFIX]",
          "Aborts unfinished multipart uploads under PREFIX (their parts cost storage and are\n"
          "invisible otherwise).  File stores have none.",
          1, 2, extra, 1, xranges, 1)
    store *s;
    int rc = open_store(pos[0], &co, NULL, &s);
    if (rc) DONE(rc);
    ts_err e = {0};
    int n = 0;
    rc = store_abort_uploads(s, npos > 1 ? pos[1] : "", older, &n, &e);
    if (!rc) printf("aborted %d unfinished upload%s\n", n, n == 1 ? "" : "s");
    store_close(s);
    DONE(rc ? tool_error(&e) : 0);
}

static int cmd_commitment(int argc, char **argv) {
    const ts_opt *extra = NULL;
    const int nextra_n = 0;
    PARSE("tessera store commitment", "URL",
          "Prints the bucket commitment for a store and its READ credentials (give the read-only\n"
          "key pair, never the write keys): the 128-character R2 form for an R2 bucket named after\n"
          "its account id, else the URL form (docs/FORMATS.md section 8).",
          1, 1, extra, 0)
    ts_err e = {0};
    store_commitment c;
    memset(&c, 0, sizeof c);
    int rc = TS_OK;
    char *url = url_of(pos[0]);
    if (!url) rc = ts_fail(&e, TS_ENOMEM, "out of memory");
    else if (!strncmp(url, "file://", 7)) snprintf(c.url, sizeof c.url, "%s", url);
    else {
        /* the URL's own user info, else the flags / environment */
        rc = store_commitment_parse(url, STORE_COMMIT_ANY, &c, NULL);
        if (rc) {
            const char *ak = co.access_key && *co.access_key ? co.access_key : getenv("AWS_ACCESS_KEY_ID");
            const char *sk = co.secret_key && *co.secret_key ? co.secret_key : getenv("AWS_SECRET_ACCESS_KEY");
            store *s;
            store_opts o = {.access_key = ak, .secret_key = sk};
            rc = store_open(&s, url, &o, &e);
            if (!rc) {
                snprintf(c.url, sizeof c.url, "%s", store_url(s));
                snprintf(c.access_key, sizeof c.access_key, "%s", ak);
                snprintf(c.secret_key, sizeof c.secret_key, "%s", sk);
                store_close(s);
            }
        }
    }
    char out[STORE_URL_MAX + 2 * STORE_CRED_MAX];
    if (!rc) rc = store_commitment_format(&c, out, sizeof out, &e);
    if (!rc) printf("%s\n", out);
    sodium_memzero(&c, sizeof c);
    sodium_memzero(out, sizeof out);
    if (url) {
        sodium_memzero(url, strlen(url));
        free(url);
    }
    DONE(rc ? tool_error(&e) : 0);
}

static int cmd_decode(int argc, char **argv) {
    bool any = false;
    const ts_opt extra[] = {
        {"allow_local", TS_OPT_BOOL, &any, "false", "accept file:// and http:// (local subnets)", 0, 0},
    };
    const int nextra_n = 1;
    PARSE("tessera store decode", "TEXT",
          "Checks a bucket commitment and prints the store it names and its access key id\n"
          "(never the secret).",
          1, 1, extra, 1)
    ts_err e = {0};
    store_commitment c;
    int rc = store_commitment_parse(pos[0], any ? STORE_COMMIT_ANY : STORE_COMMIT_REMOTE, &c, &e);
    if (!rc) printf("store       %s\naccess key  %s\nsecret      %s\n", c.url, c.access_key[0] ? c.access_key : "-",
                    c.secret_key[0] ? "(present, not shown)" : "-");
    sodium_memzero(&c, sizeof c);
    DONE(rc ? tool_error(&e) : 0);
}

static int cmd_store(int argc, char **argv) {
    static const tool_verb verbs[] = {
        {"put", "upload a file (or standard input) to a key", cmd_put},
        {"get", "download a key to a file (or standard output)", cmd_get},
        {"ls", "list keys under a prefix", cmd_ls},
        {"stat", "size, ETag and LastModified of a key", cmd_stat},
        {"rm", "delete keys", cmd_rm},
        {"abort", "abort unfinished multipart uploads", cmd_abort},
        {"commitment", "print the bucket commitment to publish on chain", cmd_commitment},
        {"decode", "check and show a published bucket commitment", cmd_decode},
    };
    return tool_dispatch("tessera store",
                         "Object storage: a local directory (file:///path) or S3 (R2, AWS, MinIO, ...).\n"
                         "Credentials: --store-access-key / --store-secret-key, TESSERA_STORE_ACCESS_KEY /\n"
                         "TESSERA_STORE_SECRET_KEY, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.",
                         verbs, (int)(sizeof verbs / sizeof verbs[0]), argc, argv);
}

TS_COMMAND("store", "object storage: put, get, ls, stat, rm (file:// and s3://)", 40, cmd_store)
