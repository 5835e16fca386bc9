/* test_common.c - the common core: config precedence and errors, atomic
 * writes under crashes, hashing, signatures and keys, zstd caps, tensors and
 * safetensors validation. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "common/common.h"
#include "common/sr25519.h"
#include "harness.h"

static char *path_in(const char *name) { return ts_path_join(th_tmpdir(), name); }

static void write_text(const char *path, const char *text) {
    ts_err e = {0};
    if (ts_write_atomic(path, text, strlen(text), &e)) th_fail(__FILE__, __LINE__, "%s", e.msg);
}

/* ------------------------------------------------------------------ config */

typedef struct {
    char *url;
    int64_t batch;
    double lr;
    bool verbose;
    char *secret;
} cfg_t;

#define CFG_OPTS(c)                                                                       \
    {                                                                                     \
        {"store.url", TS_OPT_STR, &(c).url, "file:///tmp/x", "store URL", 0, 0},          \
        {"batch", TS_OPT_INT, &(c).batch, "8", "batch size", 0, 'b'},                     \
        {"train.lr", TS_OPT_F64, &(c).lr, "0.001", "learning rate", 0, 0},                \
        {"verbose", TS_OPT_BOOL, &(c).verbose, "false", "chatty", 0, 0},                  \
        {"secret", TS_OPT_STR, &(c).secret, NULL, "a secret", TS_OPT_SECRET | TS_OPT_NOENV, 0}, \
    }

static int parse_cfg(cfg_t *c, int argc, char **argv, ts_err *e, char ***pos, int *npos) {
    static ts_opt opts[5];
    ts_opt tmp[] = CFG_OPTS(*c);
    memcpy(opts, tmp, sizeof tmp);
    ts_cmdline cl = {.prog = "t", .opts = opts, .nopts = 5, .config_file = true, .env = true, .max_pos = -1};
    bool help;
    return ts_cmdline_parse(&cl, argc, argv, pos, npos, &help, e);
}

static void free_cfg(cfg_t *c) {
    free(c->url);
    free(c->secret);
    memset(c, 0, sizeof *c);
}

TEST(config_defaults) {
    cfg_t c = {0};
    ts_err e = {0};
    unsetenv("TESSERA_BATCH");
    unsetenv("TESSERA_STORE_URL");
    char *argv[] = {"t", NULL};
    REQUIRE(parse_cfg(&c, 1, argv, &e, NULL, NULL) == TS_OK);
    CHECK_STR(c.url, "file:///tmp/x");
    CHECK_EQ_INT(c.batch, 8);
    CHECK_NEAR(c.lr, 0.001, 0);
    CHECK(!c.verbose);
    CHECK(c.secret == NULL);
    free_cfg(&c);
}

TEST(config_precedence_file_env_flags) {
    cfg_t c = {0};
    ts_err e = {0};
    char *cfgpath = path_in("c.json");
    write_text(cfgpath, "{\"store\": {\"url\": \"s3://from-file\"}, \"batch\": 16, \"train\": {\"lr\": 0.5}, \"verbose\": true}");
    /* file over defaults */
    unsetenv("TESSERA_BATCH");
    unsetenv("TESSERA_STORE_URL");
    char *a1[] = {"t", "--config", cfgpath, NULL};
    REQUIRE(parse_cfg(&c, 3, a1, &e, NULL, NULL) == TS_OK);
    CHECK_STR(c.url, "s3://from-file");
    CHECK_EQ_INT(c.batch, 16);
    CHECK_NEAR(c.lr, 0.5, 0);
    CHECK(c.verbose);
    free_cfg(&c);
    /* environment over file */
    setenv("TESSERA_BATCH", "32", 1);
    setenv("TESSERA_STORE_URL", "s3://from-env", 1);
    REQUIRE(parse_cfg(&c, 3, a1, &e, NULL, NULL) == TS_OK);
    CHECK_EQ_INT(c.batch, 32);
    CHECK_STR(c.url, "s3://from-env");
    CHECK_NEAR(c.lr, 0.5, 0);
    free_cfg(&c);
    /* flags over environment; --flag=value, short flags, --no-bool */
    char *a2[] = {"t", "--config", cfgpath, "-b", "64", "--store-url=s3://from-flag", "--no-verbose", "--train-lr", "2e-4", NULL};
    REQUIRE(parse_cfg(&c, 9, a2, &e, NULL, NULL) == TS_OK);
    CHECK_EQ_INT(c.batch, 64);
    CHECK_STR(c.url, "s3://from-flag");
    CHECK(!c.verbose);
    CHECK_NEAR(c.lr, 2e-4, 0);
    free_cfg(&c);
    unsetenv("TESSERA_BATCH");
    unsetenv("TESSERA_STORE_URL");
    /* NOENV options ignore the environment */
    setenv("TESSERA_SECRET", "leak", 1);
    char *a3[] = {"t", NULL};
    REQUIRE(parse_cfg(&c, 1, a3, &e, NULL, NULL) == TS_OK);
    CHECK(c.secret == NULL);
    unsetenv("TESSERA_SECRET");
    free_cfg(&c);
    free(cfgpath);
}

TEST(config_errors_name_the_key) {
    cfg_t c = {0};
    ts_err e = {0};
    char *p = path_in("bad.json");
    char *argv[] = {"t", "--config", p, NULL};
    struct {
        const char *json, *needle;
    } cases[] = {
        {"{\"batchsize\": 3}", "unknown config key 'batchsize'"},
        {"{\"store\": {\"uri\": \"x\"}}", "unknown config key 'store.uri'"},
        {"{\"batch\": \"eight\"}", "'batch': expected an integer"},
        {"{\"batch\": 1.5}", "'batch': expected an integer"},
        {"{\"train\": {\"lr\": \"fast\"}}", "'train.lr': expected a number"},
        {"{\"verbose\": 1}", "'verbose': expected true or false"},
        {"{\"store\": 5}", "'store': expected an object"},
        {"{\"store\": {\"url\": 5}}", "'store.url': expected a string"},
        {"[1, 2]", "JSON object"},
        {"{not json", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(p, cases[i].json);
        int rc = parse_cfg(&c, 3, argv, &e, NULL, NULL);
        CHECK_MSG(rc == TS_ECONFIG, "case %zu: rc %d (%s)", i, rc, e.msg);
        CHECK_MSG(strstr(e.msg, cases[i].needle) != NULL, "case %zu: message '%s' lacks '%s'", i, e.msg,
                  cases[i].needle);
        free_cfg(&c);
    }
    /* bad environment and flag values, unknown flags */
    setenv("TESSERA_BATCH", "many", 1);
    char *a1[] = {"t", NULL};
    CHECK_EQ_INT(parse_cfg(&c, 1, a1, &e, NULL, NULL), TS_ECONFIG);
    CHECK(strstr(e.msg, "TESSERA_BATCH") != NULL);
    unsetenv("TESSERA_BATCH");
    free_cfg(&c);
    char *a2[] = {"t", "--batch", "x1", NULL};
    CHECK_EQ_INT(parse_cfg(&c, 3, a2, &e, NULL, NULL), TS_ECONFIG);
    CHECK(strstr(e.msg, "'batch'") != NULL);
    free_cfg(&c);
    char *a3[] = {"t", "--bacth", "3", NULL};
    CHECK_EQ_INT(parse_cfg(&c, 3, a3, &e, NULL, NULL), TS_EINVAL);
    CHECK(strstr(e.msg, "--bacth") != NULL);
    free_cfg(&c);
    char *a4[] = {"t", "--batch", NULL};
    CHECK_EQ_INT(parse_cfg(&c, 2, a4, &e, NULL, NULL), TS_EINVAL);
    CHECK(strstr(e.msg, "needs a value") != NULL);
    free_cfg(&c);
    char *a5[] = {"t", "--config", "/nonexistent/c.json", NULL};
    CHECK_EQ_INT(parse_cfg(&c, 3, a5, &e, NULL, NULL), TS_ENOTFOUND);
    free_cfg(&c);
    free(p);
}

TEST(config_positionals_and_required) {
    cfg_t c = {0};
    ts_err e = {0};
    char **pos;
    int npos;
    char *argv[] = {"t", "a", "--batch", "3", "b", "--", "--not-a-flag", NULL};
    REQUIRE(parse_cfg(&c, 7, argv, &e, &pos, &npos) == TS_OK);
    REQUIRE(npos == 3);
    CHECK_STR(pos[0], "a");
    CHECK_STR(pos[1], "b");
    CHECK_STR(pos[2], "--not-a-flag");
    free(pos);
    free_cfg(&c);

    char *name = NULL;
    ts_opt ro[] = {{"name", TS_OPT_STR, &name, NULL, "a name", TS_OPT_REQUIRED, 0}};
    ts_cmdline cl = {.prog = "t", .opts = ro, .nopts = 1, .min_pos = 1, .max_pos = 1};
    bool help;
    char *b1[] = {"t", "x", NULL};
    CHECK_EQ_INT(ts_cmdline_parse(&cl, 2, b1, NULL, NULL, &help, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "--name is required") != NULL);
    char *b2[] = {"t", "--name", "n", NULL};
    CHECK_EQ_INT(ts_cmdline_parse(&cl, 3, b2, NULL, NULL, &help, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "missing argument") != NULL);
    char *b3[] = {"t", "--name", "n", "x", "y", NULL};
    CHECK_EQ_INT(ts_cmdline_parse(&cl, 5, b3, NULL, NULL, &help, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "unexpected argument 'y'") != NULL);
    ts_opts_free(ro, 1);
}

/* `given` tells a default from a value some source set, even an equal one. */
TEST(config_given_tells_default_from_set) {
    bool flag = false;
    int64_t n = 0;
    ts_opt go[] = {{"flag", TS_OPT_BOOL, &flag, "false", "a flag", 0, 0},
                   {"n", TS_OPT_INT, &n, "3", "a number", 0, 0}};
    bool given[2] = {true, true};
    ts_cmdline cl = {.prog = "t", .opts = go, .nopts = 2, .env = true, .given = given};
    bool help;
    ts_err e = {0};
    unsetenv("TESSERA_FLAG");
    unsetenv("TESSERA_N");
    char *a1[] = {"t", NULL};
    REQUIRE(ts_cmdline_parse(&cl, 1, a1, NULL, NULL, &help, &e) == TS_OK);
    CHECK(!given[0] && !given[1]);
    char *a2[] = {"t", "--no-flag", "--n", "3", NULL};
    REQUIRE(ts_cmdline_parse(&cl, 4, a2, NULL, NULL, &help, &e) == TS_OK);
    CHECK(given[0] && given[1] && !flag && n == 3);
    char *a3[] = {"t", "--flag", NULL};
    REQUIRE(ts_cmdline_parse(&cl, 2, a3, NULL, NULL, &help, &e) == TS_OK);
    CHECK(given[0] && !given[1] && flag);
    setenv("TESSERA_FLAG", "false", 1);
    REQUIRE(ts_cmdline_parse(&cl, 1, a1, NULL, NULL, &help, &e) == TS_OK);
    CHECK(given[0] && !given[1] && !flag);
    unsetenv("TESSERA_FLAG");
    char dir[] = "/tmp/tessera-given-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char *p = ts_path_join(dir, "c.json");
    REQUIRE(ts_write_atomic(p, "{\"flag\": false}", 15, NULL) == TS_OK);
    ts_cmdline cf = cl;
    cf.config_file = true;
    char *a4[] = {"t", "--config", p, NULL};
    REQUIRE(ts_cmdline_parse(&cf, 3, a4, NULL, NULL, &help, &e) == TS_OK);
    CHECK(given[0] && !given[1]);
    unlink(p);
    rmdir(dir);
    free(p);
}

/* Ranges: one check whatever the source, naming the option as it was given. */

static const ts_opt_range CFG_RANGES[] = {
    {"batch", 1, 64, 0},
    {"train.lr", 0, 1, TS_RANGE_MIN_OPEN},
};

static int parse_ranged(cfg_t *c, const ts_opt_range *r, int nr, int argc, char **argv, ts_err *e) {
    static ts_opt opts[5];
    ts_opt tmp[] = CFG_OPTS(*c);
    memcpy(opts, tmp, sizeof tmp);
    ts_cmdline cl = {.prog = "t", .opts = opts, .nopts = 5, .config_file = true, .env = true, .max_pos = -1,
                     .ranges = r, .nranges = nr};
    bool help;
    memset(e, 0, sizeof *e);
    int rc = ts_cmdline_parse(&cl, argc, argv, NULL, NULL, &help, e);
    ts_opts_free(opts, 5);
    return rc;
}

/* Parses argv (NULL-terminated) with CFG_RANGES; expects TS_ECONFIG and a
 * message that ends with `tail`. */
#define EXPECT_RANGE_ERR(tail, ...)                                                                  \
    do {                                                                                             \
        char *av_[] = {"t", __VA_ARGS__, NULL};                                                      \
        int ac_ = (int)(sizeof av_ / sizeof av_[0]) - 1;                                             \
        int rc_ = parse_ranged(&c, CFG_RANGES, 2, ac_, av_, &e);                                     \
        size_t ml_ = strlen(e.msg), tl_ = strlen(tail);                                              \
        CHECK_MSG(rc_ == TS_ECONFIG && ml_ >= tl_ && !strcmp(e.msg + ml_ - tl_, tail),               \
                  "rc %d, message '%s', want one ending in '%s'", rc_, e.msg, tail);                 \
    } while (0)

TEST(config_range_checked_for_every_source) {
    cfg_t c = {0};
    ts_err e = {0};
    unsetenv("TESSERA_BATCH");
    unsetenv("TESSERA_TRAIN_LR");
    unsetenv("TESSERA_CONFIG");
    /* the bounds themselves are inside; defaults (8, 0.001) too */
    char *ok1[] = {"t", NULL};
    CHECK_EQ_INT(parse_ranged(&c, CFG_RANGES, 2, 1, ok1, &e), TS_OK);
    char *ok2[] = {"t", "--batch", "1", "--train-lr", "1", NULL};
    CHECK_EQ_INT(parse_ranged(&c, CFG_RANGES, 2, 5, ok2, &e), TS_OK);
    char *ok3[] = {"t", "-b", "64", "--train-lr=1e-9", NULL};
    CHECK_EQ_INT(parse_ranged(&c, CFG_RANGES, 2, 4, ok3, &e), TS_OK);

    /* flags, named as given: long, long with '=', short */
    EXPECT_RANGE_ERR("--batch: 100000 is outside [1, 64]", "--batch", "100000");
    EXPECT_RANGE_ERR("--batch: -5 is outside [1, 64]", "--batch=-5");
    EXPECT_RANGE_ERR("-b: 0 is outside [1, 64]", "-b", "0");
    EXPECT_RANGE_ERR("--batch: 9223372036854775807 is outside [1, 64]", "--batch", "9223372036854775807");
    EXPECT_RANGE_ERR("--batch: -9223372036854775808 is outside [1, 64]", "--batch", "-9223372036854775808");
    EXPECT_RANGE_ERR("--train-lr: 0 is outside (0, 1]", "--train-lr", "0");
    EXPECT_RANGE_ERR("--train-lr: 1.5 is outside (0, 1]", "--train-lr", "1.5");
    EXPECT_RANGE_ERR("--train-lr: -1e-300 is outside (0, 1]", "--train-lr", "-1e-300");

    /* the environment */
    setenv("TESSERA_BATCH", "-3", 1);
    EXPECT_RANGE_ERR("TESSERA_BATCH: -3 is outside [1, 64]", "x");
    /* a flag that would override it does not hide a bad value */
    EXPECT_RANGE_ERR("TESSERA_BATCH: -3 is outside [1, 64]", "--batch", "2");
    unsetenv("TESSERA_BATCH");
    setenv("TESSERA_TRAIN_LR", "2", 1);
    EXPECT_RANGE_ERR("TESSERA_TRAIN_LR: 2 is outside (0, 1]", "x");
    unsetenv("TESSERA_TRAIN_LR");

    /* the config file, wrapped with its path */
    char *cfgpath = path_in("r.json");
    write_text(cfgpath, "{\"batch\": 1000}");
    EXPECT_RANGE_ERR("config key 'batch': 1000 is outside [1, 64]", "--config", cfgpath);
    CHECK(strstr(e.msg, cfgpath) != NULL);
    write_text(cfgpath, "{\"train\": {\"lr\": 0}}");
    EXPECT_RANGE_ERR("config key 'train.lr': 0 is outside (0, 1]", "--config", cfgpath);
    write_text(cfgpath, "{\"train\": {\"lr\": 0.25}, \"batch\": 64}");
    char *ok4[] = {"t", "--config", cfgpath, NULL};
    CHECK_EQ_INT(parse_ranged(&c, CFG_RANGES, 2, 3, ok4, &e), TS_OK);
    /* TESSERA_CONFIG names the file too */
    write_text(cfgpath, "{\"batch\": 0}");
    setenv("TESSERA_CONFIG", cfgpath, 1);
    EXPECT_RANGE_ERR("config key 'batch': 0 is outside [1, 64]", "x");
    unsetenv("TESSERA_CONFIG");
    /* a number JSON cannot hold exactly, or not finite, is no value at all */
    write_text(cfgpath, "{\"train\": {\"lr\": 1e999}}");
    EXPECT_RANGE_ERR("config key 'train.lr': expected a finite number", "--config", cfgpath);
    write_text(cfgpath, "{\"batch\": 9223372036854775807}");
    EXPECT_RANGE_ERR("config key 'batch': expected an integer", "--config", cfgpath);
    free(cfgpath);
    free_cfg(&c);
}

TEST(config_range_tables_and_help) {
    cfg_t c = {0};
    ts_err e = {0};
    unsetenv("TESSERA_BATCH");
    unsetenv("TESSERA_CONFIG");
    char *av[] = {"t", NULL};
    /* one-sided ranges */
    const ts_opt_range lo_only[] = {{"batch", 10, INFINITY, 0}};
    CHECK_EQ_INT(parse_ranged(&c, lo_only, 1, 1, av, &e), TS_ECONFIG); /* the default 8 is outside */
    CHECK_MSG(strstr(e.msg, "default of 'batch': 8 is outside [10, inf)") != NULL, "%s", e.msg);
    const ts_opt_range hi_only[] = {{"batch", -INFINITY, 8, 0}};
    CHECK_EQ_INT(parse_ranged(&c, hi_only, 1, 1, av, &e), TS_OK);
    char *big[] = {"t", "--batch", "9", NULL};
    CHECK_EQ_INT(parse_ranged(&c, hi_only, 1, 3, big, &e), TS_ECONFIG);
    CHECK_MSG(strstr(e.msg, "--batch: 9 is outside (-inf, 8]") != NULL, "%s", e.msg);
    /* a table error fails every parse, --help included */
    const ts_opt_range bad[][1] = {
        {{"bacth", 1, 64, 0}},        /* no such option */
        {{"store.url", 0, 1, 0}},     /* not numeric */
        {{"batch", 64, 1, 0}},        /* crossed */
        {{"train.lr", NAN, 1, 0}},    /* NaN */
    };
    char *help[] = {"t", "--help", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(parse_ranged(&c, bad[i], 1, 1, av, &e), TS_EINVAL);
        CHECK_MSG(strstr(e.msg, "bad range for") != NULL, "case %zu: %s", i, e.msg);
        CHECK_EQ_INT(parse_ranged(&c, bad[i], 1, 2, help, &e), TS_EINVAL);
    }
    /* --help shows each range */
    ts_opt opts[5];
    ts_opt tmp[] = CFG_OPTS(c);
    memcpy(opts, tmp, sizeof tmp);
    ts_cmdline cl = {.prog = "t", .opts = opts, .nopts = 5, .env = true, .ranges = CFG_RANGES, .nranges = 2};
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    REQUIRE(fp);
    ts_cmdline_help(&cl, fp);
    fclose(fp);
    CHECK_MSG(strstr(text, "batch size in [1, 64] [default: 8]") != NULL, "%s", text);
    CHECK_MSG(strstr(text, "learning rate in (0, 1] [default: 0.001]") != NULL, "%s", text);
    free(text);
    free_cfg(&c);
}

/* ------------------------------------------------------------------- files */

TEST(read_file_cap) {
    ts_err e = {0};
    char *p = path_in("f");
    write_text(p, "hello world");
    uint8_t *buf;
    size_t n;
    REQUIRE(ts_read_file(p, 100, &buf, &n, &e) == TS_OK);
    CHECK_EQ_INT(n, 11);
    CHECK(memcmp(buf, "hello world", 12) == 0); /* NUL-terminated */
    free(buf);
    CHECK_EQ_INT(ts_read_file(p, 11, &buf, &n, &e), TS_OK);
    free(buf);
    CHECK_EQ_INT(ts_read_file(p, 10, &buf, &n, &e), TS_ETOOBIG);
    CHECK(buf == NULL);
    CHECK_EQ_INT(ts_read_file("/nonexistent/x", 10, &buf, &n, &e), TS_ENOTFOUND);
    CHECK_EQ_INT(ts_read_file(th_tmpdir(), 10, &buf, &n, &e), TS_EINVAL);
    free(p);
}

static void crash_hook(const char *tmp) {
    (void)tmp;
    raise(SIGKILL);
}

/* A crash between the write of the temporary file and the rename leaves the
 * old content in place; the next write succeeds. */
TEST(atomic_write_survives_crash_before_rename) {
    ts_err e = {0};
    char *p = path_in("state");
    write_text(p, "old state");
    for (int round = 0; round < 20; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            ts_write_atomic_hook = crash_hook;
            char big[10000];
            memset(big, 'n', sizeof big);
            ts_write_atomic(p, big, sizeof big, NULL);
            _exit(0); /* not reached */
        }
        int st;
        waitpid(pid, &st, 0);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        uint8_t *buf;
        size_t n;
        REQUIRE(ts_read_file(p, 1 << 20, &buf, &n, &e) == TS_OK);
        CHECK_EQ_INT(n, 9);
        CHECK(memcmp(buf, "old state", 9) == 0);
        free(buf);
    }
    write_text(p, "new state");
    uint8_t *buf;
    size_t n;
    REQUIRE(ts_read_file(p, 1 << 20, &buf, &n, &e) == TS_OK);
    CHECK(n == 9 && memcmp(buf, "new state", 9) == 0);
    free(buf);
    free(p);
}

/* The version a file of nwords 4-byte words holds: a complete version v is
 * v in every word (v >= 1).  0 when the file is not one complete version;
 * why says what is wrong with it. */
static uint32_t whole_version(const uint8_t *buf, size_t n, size_t nwords, char *why, size_t cap) {
    if (n != 4 * nwords) {
        snprintf(why, cap, "%zu bytes, not %zu", n, 4 * nwords);
        return 0;
    }
    uint32_t v, w;
    memcpy(&v, buf, 4);
    for (size_t i = 1; i < nwords; i++) {
        memcpy(&w, buf + 4 * i, 4);
        if (w != v) {
            snprintf(why, cap, "word 0 is version %u, word %zu is %u: a mix of versions", v, i, w);
            return 0;
        }
    }
    if (v == 0) snprintf(why, cap, "all zero");
    return v;
}

/* Killing a writer at random moments never leaves a torn file: every read,
 * while the writer runs and after it is killed, sees exactly one complete
 * version, and the versions the writer completed reach the file.  A kill
 * before any rename would prove nothing, so in every other round the kill
 * waits until the writer has reported a completed write; the rounds must
 * then have moved the file to a newer version. */
TEST(atomic_write_random_kills) {
    ts_err e = {0};
    char *p = path_in("state");
    enum { NWORDS = (1 << 20) / 4, SZ = 4 * NWORDS, ROUNDS = 30 };
    uint32_t *v = malloc(SZ);
    REQUIRE(v);
    for (size_t i = 0; i < NWORDS; i++) v[i] = 1;
    REQUIRE(ts_write_atomic(p, v, SZ, &e) == TS_OK);
    uint32_t cur = 1; /* the version on disk */
    int advanced = 0, waited = 0;
    long reads = 0;
    char why[160];
    srand(1234);
    for (int round = 0; round < ROUNDS; round++) {
        const bool wait_first = round % 2 == 0;
        int pfd[2];
        REQUIRE(pipe(pfd) == 0);
        const uint32_t base = cur;
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            /* the writer: versions base+1, base+2, ...; reports each completed one */
            close(pfd[0]);
            for (uint32_t k = base + 1;; k++) {
                for (size_t i = 0; i < NWORDS; i++) v[i] = k;
                if (ts_write_atomic(p, v, SZ, NULL) != TS_OK) _exit(3);
                if (write(pfd[1], &k, sizeof k) != (ssize_t)sizeof k) _exit(4);
            }
        }
        close(pfd[1]);
        uint32_t last = base; /* the newest version the writer reported complete */
        if (wait_first) {
            /* block until the first write of this round completed (or the writer died) */
            uint32_t k;
            ssize_t r = read(pfd[0], &k, sizeof k);
            if (r == (ssize_t)sizeof k) last = k;
            CHECK_MSG(r == (ssize_t)sizeof k, "round %d: the writer completed no version", round);
            waited++;
        }
        /* read the file while the writer runs, for 0..20 ms */
        double until = ts_mono() + (rand() % 20000) / 1e6;
        uint32_t seen = base;
        do {
            uint8_t *buf;
            size_t n;
            REQUIRE(ts_read_file(p, 2 * SZ, &buf, &n, &e) == TS_OK);
            uint32_t got = whole_version(buf, n, NWORDS, why, sizeof why);
            free(buf);
            reads++;
            if (!got) {
                CHECK_MSG(0, "round %d: a read during the writes saw a torn file: %s", round, why);
                break;
            }
            if (got < seen) {
                CHECK_MSG(0, "round %d: the file went back from version %u to %u", round, seen, got);
                break;
            }
            seen = got;
        } while (ts_mono() < until);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "round %d: the writer failed (status %d)", round, st);
        /* every version the writer reported before it died */
        uint32_t k;
        while (read(pfd[0], &k, sizeof k) == (ssize_t)sizeof k) last = k;
        close(pfd[0]);
        uint8_t *buf;
        size_t n;
        REQUIRE(ts_read_file(p, 2 * SZ, &buf, &n, &e) == TS_OK);
        uint32_t got = whole_version(buf, n, NWORDS, why, sizeof why);
        free(buf);
        CHECK_MSG(got, "round %d: after the kill the file is torn: %s", round, why);
        if (!got) break;
        /* the newest completed version, or the next one when the kill fell
         * between its rename and its report */
        CHECK_MSG(got == last || got == last + 1,
                  "round %d: after the kill the file holds version %u, but the writer had completed version %u "
                  "(the round began at %u)", round, got, last, base);
        CHECK_MSG(got >= seen, "round %d: after the kill the file holds version %u, older than the %u read before",
                  round, got, seen);
        if (got > base) advanced++;
        cur = got > cur ? got : cur;
    }
    /* every waited round must have moved the file on: a meaningful share */
    CHECK_MSG(advanced >= waited && advanced >= ROUNDS / 2,
              "only %d of %d rounds left a newer version on disk (%d waited for a completed write)", advanced,
              ROUNDS, waited);
    CHECK_MSG(reads >= ROUNDS, "only %ld reads during the writes", reads);
    free(v);
    free(p);
}

TEST(mkdirs_and_join) {
    ts_err e = {0};
    char *p = path_in("a/b/c");
    REQUIRE(ts_mkdirs(p, 0700, &e) == TS_OK);
    CHECK(ts_path_exists(p));
    CHECK_EQ_INT(ts_mkdirs(p, 0700, &e), TS_OK);
    char *j = ts_path_join("/x/", "y");
    CHECK_STR(j, "/x/y");
    free(j);
    j = ts_path_join("/x", "y");
    CHECK_STR(j, "/x/y");
    free(j);
    free(p);
}

/* ------------------------------------------------------------------ hashing */

TEST(blake2b_known_answer) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    /* BLAKE2b-512("abc"), RFC 7693 appendix A */
    uint8_t out[64];
    char hex[129];
    ts_blake2b(out, 64, "abc", 3);
    ts_hex(hex, out, 64);
    CHECK_STR(hex, "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
                   "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923");
    /* incremental == one shot */
    ts_hasher h;
    ts_hasher_init(&h, 32);
    ts_hasher_update(&h, "a", 1);
    ts_hasher_update(&h, "bc", 2);
    uint8_t a[32], b[32];
    ts_hasher_final(&h, a);
    ts_blake2b(b, 32, "abc", 3);
    CHECK(memcmp(a, b, 32) == 0);
    /* file hash */
    char *p = path_in("h");
    write_text(p, "abc");
    REQUIRE(ts_hash_file(p, a, &e) == TS_OK);
    CHECK(memcmp(a, b, 32) == 0);
    free(p);
    /* hex round trip, prefix and bad input */
    uint8_t back[32];
    ts_hex(hex, a, 32);
    CHECK_EQ_INT(ts_unhex(back, 32, hex), TS_OK);
    CHECK(memcmp(back, a, 32) == 0);
    char pref[70] = "0x";
    strcat(pref, hex);
    CHECK_EQ_INT(ts_unhex(back, 32, pref), TS_OK);
    CHECK_EQ_INT(ts_unhex(back, 31, hex), TS_EINVAL);
    hex[5] = 'g';
    CHECK_EQ_INT(ts_unhex(back, 32, hex), TS_EINVAL);
}

TEST(deterministic_stream) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    uint8_t seed[32] = {1, 2, 3}, a[64], b[64];
    ts_det_bytes(a, sizeof a, seed);
    ts_det_bytes(b, sizeof b, seed);
    CHECK(memcmp(a, b, sizeof a) == 0);
    seed[31] = 1;
    ts_det_bytes(b, sizeof b, seed);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

/* --------------------------------------------------------------- signatures */

TEST(sign_verify_domain_tags) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    ts_keypair a, b;
    ts_keypair_generate(&a);
    ts_keypair_generate(&b);
    uint8_t msg[200];
    for (int i = 0; i < 200; i++) msg[i] = (uint8_t)(i * 7);
    uint8_t sig[TS_SIG_BYTES];
    REQUIRE(ts_sign(&a, "gradient", msg, sizeof msg, sig, &e) == TS_OK);
    CHECK_EQ_INT(ts_verify(a.pk, "gradient", msg, sizeof msg, sig, &e), TS_OK);
    /* wrong key */
    CHECK_EQ_INT(ts_verify(b.pk, "gradient", msg, sizeof msg, sig, &e), TS_ESIG);
    /* wrong domain tag, including a prefix of the right one */
    CHECK_EQ_INT(ts_verify(a.pk, "manifest", msg, sizeof msg, sig, &e), TS_ESIG);
    CHECK_EQ_INT(ts_verify(a.pk, "gradien", msg, sizeof msg, sig, &e), TS_ESIG);
    CHECK_EQ_INT(ts_verify(a.pk, "", msg, sizeof msg, sig, &e), TS_ESIG);
    /* the tag is length-prefixed: moving bytes between tag and message fails */
    uint8_t sig2[TS_SIG_BYTES];
    REQUIRE(ts_sign(&a, "ab", "cd", 2, sig2, &e) == TS_OK);
    CHECK_EQ_INT(ts_verify(a.pk, "a", "bcd", 3, sig2, &e), TS_ESIG);
    CHECK_EQ_INT(ts_verify(a.pk, "abc", "d", 1, sig2, &e), TS_ESIG);
    CHECK_EQ_INT(ts_verify(a.pk, "ab", "cd", 2, sig2, &e), TS_OK);
    /* every single flipped bit of the message or the signature fails */
    int accepted = 0;
    for (size_t bit = 0; bit < sizeof msg * 8; bit++) {
        msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        accepted += ts_verify(a.pk, "gradient", msg, sizeof msg, sig, NULL) == TS_OK;
        msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (size_t bit = 0; bit < TS_SIG_BYTES * 8; bit++) {
        sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        accepted += ts_verify(a.pk, "gradient", msg, sizeof msg, sig, NULL) == TS_OK;
        sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    CHECK_EQ_INT(accepted, 0);
    CHECK_EQ_INT(ts_verify(a.pk, "gradient", msg, sizeof msg, sig, &e), TS_OK);
}

TEST(keypair_from_seed_is_deterministic) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    /* sr25519: the mini-secret of Substrate's development phrase expands to
     * its well-known root public key (5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV) */
    uint8_t pk[32];
    REQUIRE(ts_unhex(pk, 32, "46ebddef8cd9bb167dc30878d7113b7e168e6f0646beffd77d69d39bad76b47a") == 0);
    ts_keypair kp, kp2;
    REQUIRE(ts_keypair_from_seed(&kp, SR25519_DEV_MINI) == TS_OK);
    CHECK(memcmp(kp.pk, pk, 32) == 0);
    char ss[64];
    ts_ss58(ss, kp.pk);
    CHECK_STR(ss, "5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV");
    REQUIRE(ts_keypair_from_seed(&kp2, SR25519_DEV_MINI) == TS_OK);
    CHECK(memcmp(&kp, &kp2, sizeof kp) == 0);
    /* and signatures are deterministic too (FORMATS section 1) */
    uint8_t s1[TS_SIG_BYTES], s2[TS_SIG_BYTES];
    REQUIRE(ts_sign(&kp, "t", "m", 1, s1, &e) == TS_OK);
    REQUIRE(ts_sign(&kp2, "t", "m", 1, s2, &e) == TS_OK);
    CHECK(memcmp(s1, s2, sizeof s1) == 0);
    CHECK_EQ_INT(ts_verify(kp.pk, "t", "m", 1, s1, &e), TS_OK);
    /* Tessera's context is not Substrate's: the same bytes signed for a
     * chain extrinsic do not verify as a Tessera object */
    CHECK(sr25519_verify(s1, kp.pk, "substrate", 9, "m", 1) != 0);
}

TEST(ss58_round_trip) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    /* Alice's well-known sr25519 public key and address (prefix 42) */
    uint8_t pk[32], back[32];
    REQUIRE(ts_unhex(pk, 32, "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d") == 0);
    char addr[64];
    ts_ss58(addr, pk);
    CHECK_STR(addr, "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
    CHECK_EQ_INT(ts_ss58_decode(back, addr), TS_OK);
    CHECK(memcmp(back, pk, 32) == 0);
    addr[10] = addr[10] == 'a' ? 'b' : 'a';
    CHECK_EQ_INT(ts_ss58_decode(back, addr), TS_EINVAL);
    CHECK_EQ_INT(ts_ss58_decode(back, "0OIl"), TS_EINVAL);
}

/* ------------------------------------------------------- wallets and keys
 * Key files as btcli / bittensor-wallet write them (common.h "Wallets").
 * No test here runs argon2i (512 MiB, seconds): the encrypted round trips,
 * with PyNaCl on the other side, are in tests/t_wallet.sh. */

/* btwallet's own test vector (tests/test_keyfile.py): the mnemonic "old
 * leopard transfer rib spatial phone calm indicate online fire caution
 * review", its mini-secret (substrate-bip39), its secret key as btwallet
 * writes privateKey (schnorrkel: scalar || nonce) and as polkadot-js keeps
 * it (scalar * 8 || nonce), its public key and address. */
#define BTW_PHRASE "old leopard transfer rib spatial phone calm indicate online fire caution review"
#define BTW_SEED "0xda3cf5b1e9144931a0f0db65664aab662673b099415a7f8121b7245fb0be4143"
#define BTW_PRIV                                                                  \
    "0x1f1995bdf3a17b60626a26cfe6f564b337d46056b7a1281b64c649d592ccda0a"           \
    "9cffd34d9fb01cae1fba61aeed184c817442a2186d5172416729a4b54dd4b84e"
#define BTW_PRIV_ED                                                               \
    "0xf8c8a8ec9d0fdd031353337936af279bbda106b3ba0d45d920334eaa9664d656"           \
    "9cffd34d9fb01cae1fba61aeed184c817442a2186d5172416729a4b54dd4b84e"
#define BTW_PK "0xe4359ad3e2716c539a1d663ebd0a51bdc5c98a12e663bb4c4402db47828c9446"
#define BTW_SS58 "5HDvhV6WDCjCKyrXqGQSDYqQAzkzabNhctmiDYEqgBC66BsX"

static void key_env(void) {
    setenv("TESSERA_HOME", th_tmpdir(), 1);
    unsetenv("TESSERA_WALLET_PATH");
    ts_wallet_set_root(NULL);
}

/* Writes text as a key file of mode 0600 and loads it. */
static int load_text(const char *text, ts_keypair *kp, ts_err *e) {
    char *p = path_in("k.json");
    unlink(p);
    write_text(p, text);
    int rc = chmod(p, 0600) ? TS_EIO : ts_key_load_file(p, kp, e);
    free(p);
    return rc;
}

static cJSON *read_json(const char *path) {
    uint8_t *buf;
    size_t n;
    ts_err e = {0};
    if (ts_read_file(path, 1 << 16, &buf, &n, &e)) return NULL;
    cJSON *o = cJSON_ParseWithLength((const char *)buf, n);
    free(buf);
    return o;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

TEST(hotkey_files) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    key_env();
    ts_keypair kp, back;
    char *path = NULL;
    REQUIRE(ts_key_create("w1", "h1", &kp, &path, &e) == TS_OK);
    char *want = path_in("wallets/w1/hotkeys/h1");
    CHECK_STR(path, want);
    free(want);
    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    char *dir = path_in("wallets/w1/hotkeys");
    REQUIRE(stat(dir, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0700);
    free(dir);
    /* btcli's members, every value a string: "0x" hex but the address; the
     * privateKey is the schnorrkel secret, the secretSeed its mini-secret */
    cJSON *o = read_json(path);
    REQUIRE(o != NULL);
    char hex[2 * 64 + 3] = "0x", ss[64];
    ts_hex(hex + 2, kp.pk, 32);
    CHECK_STR(jstr(o, "publicKey"), hex);
    CHECK_STR(jstr(o, "accountId"), hex);
    ts_ss58(ss, kp.pk);
    CHECK_STR(jstr(o, "ss58Address"), ss);
    ts_hex(hex + 2, kp.sk, 64);
    CHECK_STR(jstr(o, "privateKey"), hex);
    uint8_t seed[32];
    REQUIRE(jstr(o, "secretSeed") && ts_unhex(seed, 32, jstr(o, "secretSeed")) == TS_OK);
    REQUIRE(ts_keypair_from_seed(&back, seed) == TS_OK);
    CHECK(memcmp(back.pk, kp.pk, 32) == 0 && memcmp(back.sk, kp.sk, 64) == 0);
    CHECK_EQ_INT(cJSON_GetArraySize(o), 5);
    for (const cJSON *c = o->child; c; c = c->next) CHECK_MSG(cJSON_IsString(c), "member %s is not a string", c->string);
    cJSON_Delete(o);
    /* the public key file beside it: h1pub.txt, public members only */
    char *pub = path_in("wallets/w1/hotkeys/h1pub.txt");
    REQUIRE(stat(pub, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    o = read_json(pub);
    REQUIRE(o != NULL);
    ts_hex(hex + 2, kp.pk, 32);
    CHECK_STR(jstr(o, "publicKey"), hex);
    CHECK_STR(jstr(o, "accountId"), hex);
    CHECK_STR(jstr(o, "ss58Address"), ss);
    CHECK_EQ_INT(cJSON_GetArraySize(o), 3);
    cJSON_Delete(o);
    uint8_t pk[32];
    REQUIRE(ts_hotkeypub_load("w1", "h1", pk, &e) == TS_OK);
    CHECK(memcmp(pk, kp.pk, 32) == 0);
    /* refuses to overwrite, and the original key survives */
    CHECK_EQ_INT(ts_key_create("w1", "h1", &back, NULL, &e), TS_EEXIST);
    CHECK(strstr(e.msg, "refusing to overwrite") != NULL);
    REQUIRE(ts_key_load("w1", "h1", &back, &e) == TS_OK);
    CHECK(memcmp(back.pk, kp.pk, 32) == 0 && memcmp(back.sk, kp.sk, 64) == 0);
    /* nor a key whose public key file is there */
    write_text(path_in("wallets/w1/hotkeys/h2pub.txt"), "{}");
    CHECK_EQ_INT(ts_key_create("w1", "h2", &back, NULL, &e), TS_EEXIST);
    CHECK(strstr(e.msg, "h2pub.txt") != NULL);
    /* bad names */
    CHECK_EQ_INT(ts_key_create("../x", "h", &back, NULL, &e), TS_EINVAL);
    CHECK_EQ_INT(ts_key_create("w", "a/b", &back, NULL, &e), TS_EINVAL);
    CHECK_EQ_INT(ts_key_create("w", "hpub.txt", &back, NULL, &e), TS_EINVAL);
    CHECK_EQ_INT(ts_key_load("w1", "missing", &back, &e), TS_ENOTFOUND);
    /* a tampered public key is refused */
    uint8_t *buf;
    size_t n;
    REQUIRE(ts_read_file(path, 1 << 16, &buf, &n, &e) == TS_OK);
    char *pkpos = strstr((char *)buf, "\"publicKey\":");
    REQUIRE(pkpos != NULL);
    char *hexpos = strstr(pkpos, "0x") + 2;
    *hexpos = *hexpos == 'a' ? 'b' : 'a';
    CHECK_EQ_INT(load_text((char *)buf, &back, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "does not match") != NULL);
    free(buf);
    free(pub);
    free(path);
}

TEST(key_files_btwallet_layouts) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    key_env();
    uint8_t pk[32];
    REQUIRE(ts_unhex(pk, 32, BTW_PK) == TS_OK);
    ts_keypair kp, ref;
    /* a hotkey as btcli writes it (secretPhrase too, which Tessera does not need) */
    const char *full = "{\"accountId\":\"" BTW_PK "\",\"publicKey\":\"" BTW_PK "\",\"privateKey\":\"" BTW_PRIV
                       "\",\"secretPhrase\":\"" BTW_PHRASE "\",\"secretSeed\":\"" BTW_SEED
                       "\",\"ss58Address\":\"" BTW_SS58 "\"}";
    CHECK_MSG(load_text(full, &ref, &e) == TS_OK, "btcli hotkey: %s", e.msg);
    CHECK(memcmp(ref.pk, pk, 32) == 0);
    uint8_t sk[64];
    REQUIRE(ts_unhex(sk, 64, BTW_PRIV) == TS_OK);
    CHECK(memcmp(ref.sk, sk, 64) == 0);
    /* older bittensor wrote nulls and spaces */
    const char *old = "{\"accountId\": \"" BTW_PK "\", \"publicKey\": \"" BTW_PK "\", \"privateKey\": \"" BTW_PRIV
                      "\", \"secretPhrase\": null, \"secretSeed\": \"" BTW_SEED "\", \"ss58Address\": \"" BTW_SS58 "\"}";
    CHECK_MSG(load_text(old, &kp, &e) == TS_OK && !memcmp(kp.sk, ref.sk, 64), "nulls: %s", e.msg);
    /* each secret alone: the seed, the schnorrkel privateKey, the Ed25519-layout one */
    CHECK_MSG(load_text("{\"secretSeed\":\"" BTW_SEED "\"}", &kp, &e) == TS_OK && !memcmp(kp.sk, ref.sk, 64),
              "seed only: %s", e.msg);
    CHECK_MSG(load_text("{\"privateKey\":\"" BTW_PRIV "\"}", &kp, &e) == TS_OK && !memcmp(kp.sk, ref.sk, 64),
              "privateKey only: %s", e.msg);
    CHECK_MSG(load_text("{\"publicKey\":\"" BTW_PK "\",\"privateKey\":\"" BTW_PRIV_ED "\"}", &kp, &e) == TS_OK &&
                  !memcmp(kp.sk, ref.sk, 64),
              "Ed25519-layout privateKey: %s", e.msg);
    CHECK_MSG(load_text("{\"ss58Address\":\"" BTW_SS58 "\",\"privateKey\":\"" BTW_PRIV_ED "\"}", &kp, &e) == TS_OK &&
                  !memcmp(kp.sk, ref.sk, 64),
              "Ed25519-layout privateKey, address: %s", e.msg);
    /* a 64-byte secretSeed is a secret key (btwallet's from_seed_slice) */
    CHECK_MSG(load_text("{\"secretSeed\":\"" BTW_PRIV "\"}", &kp, &e) == TS_OK && !memcmp(kp.sk, ref.sk, 64),
              "64-byte secretSeed: %s", e.msg);
    /* mismatches */
    const char *other_pk = "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";
    CHECK_EQ_INT(load_text("{\"publicKey\":\"0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d\","
                           "\"secretSeed\":\"" BTW_SEED "\"}", &kp, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "does not match") != NULL);
    (void)other_pk;
    CHECK_EQ_INT(load_text("{\"publicKey\":\"0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d\","
                           "\"privateKey\":\"" BTW_PRIV "\"}", &kp, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "does not match") != NULL);
    CHECK_EQ_INT(load_text("{\"ss58Address\":\"5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY\","
                           "\"secretSeed\":\"" BTW_SEED "\"}", &kp, &e), TS_EFORMAT);
    CHECK_EQ_INT(load_text("{\"secretSeed\":\"" BTW_SEED "\",\"privateKey\":"
                           "\"0x00000000000000000000000000000000000000000000000000000000000000009cffd34d9fb01cae1fba61aeed184c817442a2186d5172416729a4b54dd4b84e\"}",
                           &kp, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "privateKey does not match secretSeed") != NULL);
    /* no secret, a mnemonic only, malformed members */
    CHECK_EQ_INT(load_text("{\"accountId\":\"" BTW_PK "\",\"publicKey\":\"" BTW_PK "\",\"ss58Address\":\"" BTW_SS58 "\"}",
                           &kp, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "no secret key") != NULL);
    CHECK_EQ_INT(load_text("{\"secretPhrase\":\"" BTW_PHRASE "\"}", &kp, &e), TS_EUNSUPPORTED);
    CHECK(strstr(e.msg, "mnemonic") != NULL);
    CHECK_EQ_INT(load_text("{\"secretSeed\":\"0x1234\"}", &kp, &e), TS_EFORMAT);
    CHECK_EQ_INT(load_text("{\"secretSeed\":42}", &kp, &e), TS_EFORMAT);
    CHECK_EQ_INT(load_text("[\"" BTW_SEED "\"]", &kp, &e), TS_EFORMAT);
    CHECK_EQ_INT(load_text("not json", &kp, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "invalid or truncated JSON") != NULL);
    CHECK_EQ_INT(load_text("{\"secretSeed\":\"" BTW_SEED "\",\"ss58Addr", &kp, &e), TS_EFORMAT);
    CHECK_EQ_INT(load_text("", &kp, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "empty key file") != NULL);
}

TEST(key_files_refused_formats) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    key_env();
    ts_keypair kp;
    /* an Ed25519 key file of an earlier Tessera */
    CHECK_EQ_INT(load_text("{\n  \"scheme\": \"ed25519\",\n  \"publicKey\": \"0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\",\n"
                           "  \"secretSeed\": \"0x9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\"\n}",
                           &kp, &e), TS_EUNSUPPORTED);
    CHECK_MSG(strstr(e.msg, "an Ed25519 key from an earlier Tessera; Tessera now uses sr25519 (Bittensor's scheme): "
                            "create a new hotkey with tessera wallet new-hotkey") != NULL, "%s", e.msg);
    /* legacy encryptions, named, with the advice to re-encrypt with btcli */
    CHECK_EQ_INT(load_text("$ANSIBLE_VAULT;1.1;AES256\n6132\n", &kp, &e), TS_EUNSUPPORTED);
    CHECK(strstr(e.msg, "Ansible Vault") && strstr(e.msg, "btcli"));
    CHECK_EQ_INT(load_text("gAAAAABkZ3Fvb29vb29vb29vb29v", &kp, &e), TS_EUNSUPPORTED);
    CHECK(strstr(e.msg, "Fernet") && strstr(e.msg, "btcli"));
    /* a truncated NaCl file is named so before any password is asked */
    setenv(TS_HOTKEY_PASSWORD_ENV, "unused", 1);
    CHECK_EQ_INT(load_text("$NACL0123456789abcdef0123", &kp, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "truncated encrypted key file") != NULL);
    unsetenv(TS_HOTKEY_PASSWORD_ENV);
    /* a bad password is refused when creating a coldkey, before any work */
    CHECK_EQ_INT(ts_coldkey_create("w", "", NULL, &kp, NULL, &e), TS_EINVAL);
    CHECK_EQ_INT(ts_coldkey_create("w", " pw", NULL, &kp, NULL, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "white space") != NULL);
    char *cold = path_in("wallets/w/coldkey");
    CHECK(!ts_path_exists(cold));
    free(cold);
}

TEST(key_wallet_root) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    key_env();
    char *root, *want;
    /* TESSERA_HOME set: $TESSERA_HOME/wallets (tests stay in their directory) */
    REQUIRE(ts_wallet_root(&root, &e) == TS_OK);
    want = path_in("wallets");
    CHECK_STR(root, want);
    free(want);
    free(root);
    /* TESSERA_WALLET_PATH wins, "~/" expanded, trailing '/' dropped */
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("HOME", th_tmpdir(), 1);
    setenv("TESSERA_WALLET_PATH", "~/bt/wallets/", 1);
    REQUIRE(ts_wallet_root(&root, &e) == TS_OK);
    want = path_in("bt/wallets");
    CHECK_STR(root, want);
    free(want);
    free(root);
    /* the flag (ts_wallet_set_root) wins over both */
    ts_wallet_set_root("/x/y");
    REQUIRE(ts_wallet_root(&root, &e) == TS_OK);
    CHECK_STR(root, "/x/y");
    free(root);
    ts_wallet_set_root(NULL);
    /* neither: btcli's ~/.bittensor/wallets */
    unsetenv("TESSERA_WALLET_PATH");
    unsetenv("TESSERA_HOME");
    REQUIRE(ts_wallet_root(&root, &e) == TS_OK);
    want = path_in(".bittensor/wallets");
    CHECK_STR(root, want);
    free(want);
    free(root);
    /* paths follow the root: coldkey and hotkey */
    setenv("TESSERA_WALLET_PATH", "/r", 1);
    REQUIRE(ts_coldkey_path("w", &root, &e) == TS_OK);
    CHECK_STR(root, "/r/w/coldkey");
    free(root);
    REQUIRE(ts_key_path("w", "h", &root, &e) == TS_OK);
    CHECK_STR(root, "/r/w/hotkeys/h");
    free(root);
    unsetenv("TESSERA_WALLET_PATH");
    if (home) setenv("HOME", home, 1);
    free(home);
    key_env();
}

TEST(key_create_from_uri_and_seed) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    key_env();
    ts_keypair kp, back;
    char *path = NULL;
    /* //Alice: Substrate's well-known development key */
    ts_key_origin alice = {.uri = "//Alice"};
    REQUIRE(ts_hotkey_create("w", "alice", &alice, &kp, &path, &e) == TS_OK);
    char ss[64];
    ts_ss58(ss, kp.pk);
    CHECK_STR(ss, "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
    /* as btwallet writes a key from a URI: no secretSeed */
    cJSON *o = read_json(path);
    REQUIRE(o != NULL);
    CHECK(jstr(o, "secretSeed") == NULL && jstr(o, "privateKey") != NULL);
    cJSON_Delete(o);
    REQUIRE(ts_key_load("w", "alice", &back, &e) == TS_OK);
    CHECK(memcmp(back.sk, kp.sk, 64) == 0);
    free(path);
    /* a seed: written as secretSeed */
    ts_key_origin seed = {.seed = BTW_SEED};
    REQUIRE(ts_hotkey_create("w", "s", &seed, &kp, &path, &e) == TS_OK);
    char hex[67] = "0x";
    ts_hex(hex + 2, kp.pk, 32);
    CHECK_STR(hex, BTW_PK);
    o = read_json(path);
    REQUIRE(o != NULL);
    CHECK_STR(jstr(o, "secretSeed"), BTW_SEED);
    CHECK_STR(jstr(o, "privateKey"), BTW_PRIV);
    cJSON_Delete(o);
    free(path);
    /* a 64-byte seed: a secret key, kept as secretSeed as btwallet does */
    ts_key_origin seed64 = {.seed = BTW_PRIV};
    REQUIRE(ts_hotkey_create("w", "s64", &seed64, &kp, &path, &e) == TS_OK);
    ts_hex(hex + 2, kp.pk, 32);
    CHECK_STR(hex, BTW_PK);
    o = read_json(path);
    REQUIRE(o != NULL);
    CHECK_STR(jstr(o, "secretSeed"), BTW_PRIV);
    CHECK_STR(jstr(o, "privateKey"), BTW_PRIV);
    cJSON_Delete(o);
    REQUIRE(ts_key_load("w", "s64", &back, &e) == TS_OK);
    CHECK(memcmp(back.sk, kp.sk, 64) == 0);
    free(path);
    /* an unencrypted coldkey from the same seed, and its coldkeypub.txt */
    REQUIRE(ts_coldkey_create("w", NULL, &seed, &kp, &path, &e) == TS_OK);
    uint8_t pk[32];
    REQUIRE(ts_coldkeypub_load("w", pk, &e) == TS_OK);
    CHECK(memcmp(pk, kp.pk, 32) == 0);
    REQUIRE(ts_coldkey_load("w", NULL, &back, &e) == TS_OK);
    CHECK(memcmp(back.sk, kp.sk, 64) == 0);
    CHECK_EQ_INT(ts_coldkey_create("w", NULL, NULL, &back, NULL, &e), TS_EEXIST);
    /* a coldkeypub.txt of another key is caught when the coldkey is loaded */
    char *pubp = path_in("wallets/w/coldkeypub.txt");
    REQUIRE(unlink(pubp) == 0);
    write_text(pubp, "{\"ss58Address\":\"5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY\"}");
    CHECK_EQ_INT(ts_coldkey_load("w", NULL, &back, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "does not match") != NULL);
    free(pubp);
    free(path);
    /* bad origins */
    ts_key_origin bad = {.uri = "//Alice/soft"};
    CHECK_EQ_INT(ts_hotkey_create("w", "b1", &bad, &kp, NULL, &e), TS_EINVAL);
    bad = (ts_key_origin){.seed = "0x1234"};
    CHECK_EQ_INT(ts_hotkey_create("w", "b2", &bad, &kp, NULL, &e), TS_EINVAL);
    bad = (ts_key_origin){.uri = "//Alice", .seed = BTW_SEED};
    CHECK_EQ_INT(ts_hotkey_create("w", "b3", &bad, &kp, NULL, &e), TS_EINVAL);
    path = path_in("wallets/w/hotkeys/b1");
    CHECK(!ts_path_exists(path));
    free(path);
}

TEST(key_wallet_list) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    key_env();
    ts_wallet_info *w;
    int n;
    REQUIRE(ts_wallet_list(&w, &n, &e) == TS_OK);
    CHECK_EQ_INT(n, 0);
    ts_wallet_list_free(w, n);
    ts_keypair a, b, c;
    ts_key_origin seed = {.seed = BTW_SEED};
    REQUIRE(ts_coldkey_create("w2", NULL, &seed, &c, NULL, &e) == TS_OK);
    REQUIRE(ts_key_create("w2", "hb", &b, NULL, &e) == TS_OK);
    REQUIRE(ts_key_create("w2", "ha", &a, NULL, &e) == TS_OK);
    REQUIRE(ts_key_create("w1", "x", &a, NULL, &e) == TS_OK);
    /* a hotkey of which only the public key file is left */
    char *p = path_in("wallets/w1/hotkeys/x");
    char *q = path_in("wallets/w1/hotkeys/gonepub.txt");
    char *r = path_in("wallets/w1/hotkeys/xpub.txt");
    REQUIRE(rename(r, q) == 0);
    REQUIRE(chmod(p, 0644) == 0);
    REQUIRE(ts_wallet_list(&w, &n, &e) == TS_OK);
    REQUIRE(n == 2);
    CHECK_STR(w[0].name, "w1");
    CHECK_STR(w[1].name, "w2");
    CHECK_EQ_INT(w[0].coldkey.kind, TS_KEYFILE_MISSING);
    REQUIRE(w[0].nhotkeys == 2);
    CHECK_STR(w[0].hotkeys[0].name, "gone");
    CHECK_EQ_INT(w[0].hotkeys[0].kind, TS_KEYFILE_MISSING);
    CHECK(w[0].hotkeys[0].has_pk && !memcmp(w[0].hotkeys[0].pk, a.pk, 32));
    CHECK_STR(w[0].hotkeys[1].name, "x");
    CHECK(w[0].hotkeys[1].has_pk && !memcmp(w[0].hotkeys[1].pk, a.pk, 32));
    CHECK_MSG(w[0].hotkeys[1].problem && strstr(w[0].hotkeys[1].problem, "chmod 600"), "mode problem: %s",
              w[0].hotkeys[1].problem ? w[0].hotkeys[1].problem : "(none)");
    CHECK_EQ_INT(w[1].coldkey.kind, TS_KEYFILE_PLAIN);
    CHECK(w[1].coldkey.has_pk && !memcmp(w[1].coldkey.pk, c.pk, 32) && !w[1].coldkey.problem);
    REQUIRE(w[1].nhotkeys == 2);
    CHECK_STR(w[1].hotkeys[0].name, "ha");
    CHECK_STR(w[1].hotkeys[1].name, "hb");
    CHECK(!memcmp(w[1].hotkeys[1].pk, b.pk, 32) && !w[1].hotkeys[1].problem);
    ts_wallet_list_free(w, n);
    free(p);
    free(q);
    free(r);
}

/* Like ssh with a private key: a secret key file that group or others can
 * read or write, or in a directory group or others can write (they could
 * swap the key), is refused with the file, its mode and the chmod to run. */
static void check_mode_refused(const char *what, const char *file, const char *chmod_cmd, const char *mode) {
    ts_err e = {0};
    ts_keypair kp;
    int rc = ts_key_load("w2", "h2", &kp, &e);
    CHECK_MSG(rc == TS_EDENIED, "%s: ts_key_load returned %d (%s), want TS_EDENIED", what, rc, e.msg);
    CHECK_MSG(strstr(e.msg, file) && strstr(e.msg, chmod_cmd) && strstr(e.msg, mode),
              "%s: the message '%s' lacks the file, the mode %s or '%s'", what, e.msg, mode, chmod_cmd);
}

TEST(hotkey_file_modes) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    key_env();
    ts_keypair kp, back;
    char *path = NULL;
    REQUIRE(ts_key_create("w2", "h2", &kp, &path, &e) == TS_OK);
    char *dir = ts_path_join(th_tmpdir(), "wallets/w2/hotkeys");
    char want_file[700], want_dir[700];
    snprintf(want_file, sizeof want_file, "chmod 600 %s", path);
    snprintf(want_dir, sizeof want_dir, "chmod 700 %s", dir);
    static const struct {
        unsigned mode;
        const char *text;
    } bad[] = {{0644, "0644"}, {0640, "0640"}, {0777, "0777"}, {0604, "0604"}, {0620, "0620"}, {0660, "0660"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        REQUIRE(chmod(path, bad[i].mode) == 0);
        char what[32];
        snprintf(what, sizeof what, "file mode %s", bad[i].text);
        check_mode_refused(what, path, want_file, bad[i].text);
        /* the same through the path-level loader */
        ts_err e2 = {0};
        CHECK_EQ_INT(ts_key_load_file(path, &back, &e2), TS_EDENIED);
        CHECK(strstr(e2.msg, want_file) != NULL);
    }
    /* owner-only modes load */
    static const unsigned good[] = {0600, 0400};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        REQUIRE(chmod(path, good[i]) == 0);
        e = (ts_err){0};
        CHECK_MSG(ts_key_load("w2", "h2", &back, &e) == TS_OK, "mode 0%o refused: %s", good[i], e.msg);
        CHECK(memcmp(back.pk, kp.pk, 32) == 0);
    }
    /* a key directory group or others can write is refused, a readable one is not */
    REQUIRE(chmod(path, 0600) == 0);
    REQUIRE(chmod(dir, 0777) == 0);
    check_mode_refused("directory mode 0777", dir, want_dir, "0777");
    REQUIRE(chmod(dir, 0770) == 0);
    check_mode_refused("directory mode 0770", dir, want_dir, "0770");
    REQUIRE(chmod(dir, 0755) == 0);
    e = (ts_err){0};
    CHECK_MSG(ts_key_load("w2", "h2", &back, &e) == TS_OK, "directory 0755 refused: %s", e.msg);
    REQUIRE(chmod(dir, 0700) == 0);
    e = (ts_err){0};
    CHECK_MSG(ts_key_load("w2", "h2", &back, &e) == TS_OK, "directory 0700 refused: %s", e.msg);
    /* no new key goes into a directory others can write */
    REQUIRE(chmod(dir, 0777) == 0);
    e = (ts_err){0};
    CHECK_EQ_INT(ts_key_create("w2", "h3", &back, NULL, &e), TS_EDENIED);
    CHECK_MSG(strstr(e.msg, want_dir) != NULL, "keygen into a 0777 directory: '%s'", e.msg);
    REQUIRE(chmod(dir, 0700) == 0);
    free(dir);
    free(path);
}

/* --------------------------------------------------------------------- zstd */

TEST(zstd_round_trip_and_caps) {
    ts_err e = {0};
    size_t n = 1 << 20;
    uint8_t *src = malloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (uint8_t)((i * 2654435761u) >> 13);
    uint8_t *z, *out;
    size_t zn, on;
    REQUIRE(ts_zstd_compress(src, n, 3, &z, &zn, &e) == TS_OK);
    REQUIRE(ts_zstd_decompress(z, zn, n, &out, &on, &e) == TS_OK);
    CHECK_EQ_INT(on, n);
    CHECK(memcmp(out, src, n) == 0);
    free(out);
    /* one byte under the declared size: refused before allocation */
    CHECK_EQ_INT(ts_zstd_decompress(z, zn, n - 1, &out, &on, &e), TS_ETOOBIG);
    CHECK(out == NULL);
    /* truncated and corrupted frames */
    CHECK_EQ_INT(ts_zstd_decompress(z, zn / 2, n, &out, &on, &e), TS_EFORMAT);
    CHECK_EQ_INT(ts_zstd_decompress(z, 3, n, &out, &on, &e), TS_EFORMAT);
    z[zn / 2] ^= 0x55;
    int rc = ts_zstd_decompress(z, zn, n, &out, &on, &e);
    CHECK_MSG(rc == TS_EFORMAT, "corrupted frame: rc %d", rc);
    if (rc == TS_OK) free(out);
    free(z);
    CHECK_EQ_INT(ts_zstd_decompress("hello", 5, 100, &out, &on, &e), TS_EFORMAT);
    CHECK_EQ_INT(ts_zstd_decompress("", 0, 100, &out, &on, &e), TS_EFORMAT);
    /* empty input round trip */
    REQUIRE(ts_zstd_compress("", 0, 3, &z, &zn, &e) == TS_OK);
    REQUIRE(ts_zstd_decompress(z, zn, 0, &out, &on, &e) == TS_OK);
    CHECK_EQ_INT(on, 0);
    free(out);
    free(z);
    free(src);
}

/* A bomb: 1 GB of zeros compresses to about 40 KB.  Whether or not the frame
 * declares its size, the cap stops it without allocating the gigabyte. */
TEST(zstd_bomb_stopped_by_cap) {
    ts_err e = {0};
    REQUIRE(th_run("command -v zstd >/dev/null", NULL) == 0);
    char cmd[512];
    const char *dir = th_tmpdir();
    /* streamed through a pipe: the frame does not declare its size */
    snprintf(cmd, sizeof cmd, "head -c 1000000000 /dev/zero | zstd -q -c > %s/bomb.zst", dir);
    REQUIRE(th_run(cmd, NULL) == 0);
    char *p = path_in("bomb.zst");
    uint8_t *z, *out = NULL;
    size_t zn, on;
    REQUIRE(ts_read_file(p, 1 << 22, &z, &zn, &e) == TS_OK);
    CHECK(zn < 200000);
    CHECK_EQ_INT(ts_zstd_decompress(z, zn, 10u << 20, &out, &on, &e), TS_ETOOBIG);
    CHECK(out == NULL);
    CHECK(strstr(e.msg, "limit") != NULL);
    free(z);
    /* the same bomb with its size declared is refused before decoding */
    uint8_t *zeros = calloc(1, 64u << 20);
    REQUIRE(ts_zstd_compress(zeros, 64u << 20, 1, &z, &zn, &e) == TS_OK);
    free(zeros);
    CHECK_EQ_INT(ts_zstd_decompress(z, zn, 1u << 20, &out, &on, &e), TS_ETOOBIG);
    CHECK(strstr(e.msg, "declares") != NULL);
    free(z);
    free(p);
}

/* ----------------------------------------------------------------- tensors */

TEST(bf16_conversion) {
    CHECK_EQ_INT(ts_f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(ts_f32_to_bf16(-2.0f), 0xc000);
    /* round to nearest even: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 */
    CHECK_EQ_INT(ts_f32_to_bf16(1.00390625f), 0x3f80);
    CHECK_EQ_INT(ts_f32_to_bf16(1.01171875f), 0x3f82);
    CHECK(ts_bf16_to_f32(ts_f32_to_bf16(NAN)) != ts_bf16_to_f32(ts_f32_to_bf16(NAN)));
    CHECK_EQ_INT(ts_f32_to_bf16(INFINITY), 0x7f80);
    CHECK(ts_bf16_to_f32(0x3f80) == 1.0f);
}

TEST(numel_overflow) {
    int64_t ok[] = {3, 4, 5};
    CHECK_EQ_INT(ts_numel(3, ok), 60);
    int64_t big[] = {INT64_MAX / 2, 3};
    CHECK_EQ_INT(ts_numel(2, big), -1);
    int64_t neg[] = {3, -1};
    CHECK_EQ_INT(ts_numel(2, neg), -1);
    CHECK_EQ_INT(ts_numel(0, ok), 1);
}

/* ------------------------------------------------------------- safetensors */

static void make_tensors(ts_tensor *a, ts_tensor *b) {
    ts_err e = {0};
    int64_t sa[] = {3, 4}, sb[] = {5};
    ts_tensor_alloc(a, "model.embed_tokens.weight", TS_F32, 2, sa, &e);
    ts_tensor_alloc(b, "model.norm.weight", TS_BF16, 1, sb, &e);
    for (int i = 0; i < 12; i++) ((float *)a->data)[i] = (float)i * 0.5f - 1.0f;
    for (int i = 0; i < 5; i++) ((uint16_t *)b->data)[i] = ts_f32_to_bf16((float)i);
}

TEST(safetensors_round_trip) {
    ts_err e = {0};
    ts_tensor a, b;
    make_tensors(&a, &b);
    const ts_tensor *ts[] = {&a, &b};
    const char *meta[] = {"format", "pt", "window", "12", NULL};
    char *p = path_in("m.safetensors");
    REQUIRE(ts_st_write(p, ts, 2, meta, &e) == TS_OK);
    ts_st_file *f;
    REQUIRE(ts_st_open(p, &f, &e) == TS_OK);
    CHECK_EQ_INT(ts_st_count(f), 2);
    const ts_tensor *ra = ts_st_find(f, "model.embed_tokens.weight");
    const ts_tensor *rb = ts_st_find(f, "model.norm.weight");
    REQUIRE(ra && rb);
    CHECK_EQ_INT(ra->dtype, TS_F32);
    CHECK_EQ_INT(ra->ndim, 2);
    CHECK(ra->shape[0] == 3 && ra->shape[1] == 4);
    CHECK(memcmp(ra->data, a.data, a.nbytes) == 0);
    CHECK_EQ_INT(rb->dtype, TS_BF16);
    CHECK(memcmp(rb->data, b.data, b.nbytes) == 0);
    CHECK_STR(ts_st_meta(f, "window"), "12");
    CHECK(ts_st_meta(f, "absent") == NULL);
    CHECK(ts_st_find(f, "nope") == NULL);
    /* data is 8-byte aligned after the padded header */
    CHECK(((uintptr_t)ra->data & 7) == 0);
    ts_st_close(f);
    /* in-memory serialization is byte-identical to the file */
    uint8_t *mem, *file;
    size_t ml, fl;
    REQUIRE(ts_st_serialize(ts, 2, meta, &mem, &ml, &e) == TS_OK);
    REQUIRE(ts_read_file(p, 1 << 20, &file, &fl, &e) == TS_OK);
    CHECK(ml == fl && memcmp(mem, file, ml) == 0);
    free(mem);
    free(file);
    /* PyTorch-independent check with Python's json + struct when present */
    if (access("/usr/bin/python3", X_OK) == 0) {
        char cmd[1024], *out;
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"import json,struct,sys; d=open('%s','rb').read(); n=struct.unpack('<Q',d[:8])[0]; "
                 "h=json.loads(d[8:8+n]); t=h['model.embed_tokens.weight']; b,e=t['data_offsets']; "
                 "print(t['dtype'], t['shape'], struct.unpack('<12f', d[8+n+b:8+n+e])[5])\"",
                 p);
        REQUIRE(th_run(cmd, &out) == 0);
        CHECK_STR(out, "F32 [3, 4] 1.5\n");
        free(out);
    }
    ts_tensor_free(&a);
    ts_tensor_free(&b);
    free(p);
}

/* Builds a file from a raw header and data size, for malformed cases. */
static int parse_raw(const char *header, size_t data_len, uint64_t hlen_override, ts_err *e) {
    size_t hl = strlen(header);
    size_t n = 8 + hl + data_len;
    uint8_t *buf = calloc(1, n);
    ts_put_u64(buf, hlen_override ? hlen_override : hl);
    memcpy(buf + 8, header, hl);
    ts_st_file *f = NULL;
    int rc = ts_st_parse(buf, n, &f, e);
    ts_st_close(f);
    free(buf);
    return rc;
}

TEST(safetensors_rejects_malformed) {
    ts_err e = {0};
    struct {
        const char *header;
        size_t data;
        uint64_t hlen;
        const char *needle;
    } cases[] = {
        /* well-formed baseline */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, 0, "outside"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, 0, "cover"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0, "shape needs"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, 0, "outside"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, 0, "gap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551615]}}", 8, 0, "invalid data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4503599627370496,4503599627370496],\"data_offsets\":[0,8]}}", 8, 0, "shape needs"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,8]}}", 8, 0, "invalid dimension"},
        {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, "unknown dtype"},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, "lacks"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, 0, "dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, 0, "twice"},
        {"[1,2,3]", 0, 0, "not a JSON object"},
        {"{\"a\":", 0, 0, "not a JSON object"},
        {"{\"__metadata__\":{\"k\":5}}", 0, 0, "not a string"},
        /* header length absurd, or past the end of the file */
        {"{}", 0, 1ull << 40, "absurd"},
        {"{}", 0, 1000, "passes the end"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = parse_raw(cases[i].header, cases[i].data, cases[i].hlen, &e);
        if (!cases[i].needle) {
            CHECK_MSG(rc == TS_OK, "case %zu should parse: %s", i, e.msg);
        } else {
            CHECK_MSG(rc == TS_EFORMAT, "case %zu: rc %d", i, rc);
            CHECK_MSG(strstr(e.msg, cases[i].needle) != NULL, "case %zu: '%s' lacks '%s'", i, e.msg,
                      cases[i].needle);
        }
    }
    uint8_t tiny[4] = {0};
    ts_st_file *f;
    CHECK_EQ_INT(ts_st_parse(tiny, 4, &f, &e), TS_EFORMAT);
}

/* Every truncation of a valid file is refused, and no prefix crashes. */
TEST(safetensors_every_truncation_refused) {
    ts_err e = {0};
    ts_tensor a, b;
    make_tensors(&a, &b);
    const ts_tensor *ts[] = {&a, &b};
    uint8_t *buf;
    size_t n;
    REQUIRE(ts_st_serialize(ts, 2, NULL, &buf, &n, &e) == TS_OK);
    for (size_t len = 0; len < n; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        ts_st_file *f = NULL;
        int rc = ts_st_parse(copy, len, &f, &e);
        CHECK_MSG(rc == TS_EFORMAT, "prefix of %zu bytes accepted", len);
        ts_st_close(f);
        free(copy);
    }
    ts_st_file *f;
    CHECK_EQ_INT(ts_st_parse(buf, n, &f, &e), TS_OK);
    ts_st_close(f);
    free(buf);
    ts_tensor_free(&a);
    ts_tensor_free(&b);
    /* on disk too */
    char *p = path_in("t.safetensors");
    write_text(p, "\x10\x00\x00\x00\x00\x00\x00\x00{}");
    CHECK_EQ_INT(ts_st_open(p, &f, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, p) != NULL);
    free(p);
}

TEST(safetensors_writer_refuses_bad_tensors) {
    ts_err e = {0};
    ts_tensor a, b;
    make_tensors(&a, &b);
    a.nbytes -= 4;
    const ts_tensor *ts[] = {&a, &b};
    uint8_t *buf;
    size_t n;
    CHECK_EQ_INT(ts_st_serialize(ts, 2, NULL, &buf, &n, &e), TS_EINVAL);
    a.nbytes += 4;
    const ts_tensor *dup[] = {&a, &a};
    CHECK_EQ_INT(ts_st_serialize(dup, 2, NULL, &buf, &n, &e), TS_EINVAL);
    ts_tensor_free(&a);
    ts_tensor_free(&b);
}

/* -------------------------------------------------------------------- misc */

TEST(number_parsing) {
    int64_t i;
    double d;
    CHECK_EQ_INT(ts_parse_i64("42", &i), TS_OK);
    CHECK_EQ_INT(i, 42);
    CHECK_EQ_INT(ts_parse_i64("-7", &i), TS_OK);
    CHECK_EQ_INT(ts_parse_i64("4x", &i), TS_EINVAL);
    CHECK_EQ_INT(ts_parse_i64("", &i), TS_EINVAL);
    CHECK_EQ_INT(ts_parse_i64("99999999999999999999", &i), TS_EINVAL);
    CHECK_EQ_INT(ts_parse_f64("1e-3", &d), TS_OK);
    CHECK_NEAR(d, 1e-3, 0);
    CHECK_EQ_INT(ts_parse_f64("nan", &d), TS_EINVAL);
    CHECK_EQ_INT(ts_parse_f64("1e999", &d), TS_EINVAL);
    char buf[32];
    ts_fmt_bytes(buf, sizeof buf, 1500000);
    CHECK_STR(buf, "1.50 MB");
    ts_fmt_duration(buf, sizeof buf, 3725);
    CHECK_STR(buf, "1h02m");
}

TEST(log_json_lines) {
    /* JSON mode escapes quotes and control characters: parse the line back */
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    int saved = dup(2);
    dup2(pfd[1], 2);
    ts_log_set_json(true);
    ts_log_set_component("miner[uid 3]");
    TS_WARN("upload \"g\"\tfailed: %d", 503);
    ts_log_set_json(false);
    ts_log_set_component(NULL);
    dup2(saved, 2);
    close(pfd[1]);
    char buf[1024] = {0};
    ssize_t n = read(pfd[0], buf, sizeof buf - 1);
    close(pfd[0]);
    REQUIRE(n > 0);
    cJSON *o = cJSON_Parse(buf);
    REQUIRE(o != NULL);
    CHECK_STR(cJSON_GetObjectItem(o, "level")->valuestring, "warn");
    CHECK_STR(cJSON_GetObjectItem(o, "component")->valuestring, "miner[uid 3]");
    CHECK_STR(cJSON_GetObjectItem(o, "msg")->valuestring, "upload \"g\"\tfailed: 503");
    CHECK(cJSON_GetObjectItem(o, "ts") != NULL);
    cJSON_Delete(o);
}

TEST(sbuf_grows_and_formats) {
    ts_sbuf b = {0};
    ts_sbuf_put(&b, "ab", 2);
    for (int i = 0; i < 1000; i++) ts_sbuf_printf(&b, "%d,", i);
    ts_sbuf_put(&b, "", 0);
    REQUIRE(!b.oom && b.p);
    CHECK(strncmp(b.p, "ab0,1,2,", 8) == 0);
    CHECK(b.len == strlen(b.p));
    /* 2 + 10*2 + 90*3 + 900*4 bytes */
    CHECK_EQ_INT(b.len, 2 + 20 + 270 + 3600);
    CHECK(strcmp(b.p + b.len - 4, "999,") == 0);
    free(b.p);
    ts_sbuf o = {.oom = true};
    ts_sbuf_printf(&o, "x");
    ts_sbuf_put(&o, "y", 1);
    CHECK(o.p == NULL && o.len == 0);
}
