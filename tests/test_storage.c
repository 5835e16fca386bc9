/* test_storage.c - the storage module: key rules, key layout, URLs,
 * commitments, the XML reader, the file:// backend, and the s3:// backend
 * against the suite's S3 server (tests/servers/s3.sh: OpenStack Swift's S3
 * layer) and against a scripted fake server for the faults a real server
 * will not produce on demand.
 *
 * S3 tests SKIP, saying why, when the suite's server is not running
 * (TESSERA_TEST_S3_* unset). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "storage/internal.h"
#include "storage/s3xml.h"
#include "storage/storage.h"

/* ---------------------------------------------------------------- helpers */

static const char *repo(void) {
    const char *r = getenv("TESSERA_REPO");
    return r && *r ? r : ".";
}

static uint8_t *det_data(size_t n, uint8_t tag) {
    uint8_t seed[32] = {0};
    seed[0] = tag;
    seed[1] = (uint8_t)(n & 0xff);
    seed[2] = (uint8_t)((n >> 8) & 0xff);
    uint8_t *p = malloc(n ? n : 1);
    if (p && n) ts_det_bytes(p, n, seed);
    return p;
}

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) || w != n ? -1 : 0;
}

static bool file_equals(const char *path, const uint8_t *p, size_t n) {
    uint8_t *buf;
    size_t len;
    if (ts_read_file(path, n + 1, &buf, &len, NULL)) return false;
    bool eq = len == n && !memcmp(buf, p, n);
    free(buf);
    return eq;
}

/* The suite's S3 server, or SKIP. */
typedef struct s3env {
    const char *endpoint, *bucket, *access, *secret, *region;
} s3env;

static bool s3_env(s3env *v) {
    v->endpoint = getenv("TESSERA_TEST_S3_ENDPOINT");
    v->bucket = getenv("TESSERA_TEST_S3_BUCKET");
    v->access = getenv("TESSERA_TEST_S3_ACCESS_KEY");
    v->secret = getenv("TESSERA_TEST_S3_SECRET_KEY");
    v->region = getenv("TESSERA_TEST_S3_REGION");
    return v->endpoint && v->bucket && v->access && v->secret && v->region;
}

#define NEED_S3(v)                                                                                          \
    s3env v;                                                                                                \
    if (!s3_env(&v))                                                                                        \
    SKIP("no S3 test server: TESSERA_TEST_S3_* unset (tests/run.sh starts tests/servers/s3.sh; "            \
         "see %s/test-logs/server-s3.log)",                                                                 \
         th_build_dir())

/* Opens the test bucket under a prefix unique to this test process. */
static int s3_open(const s3env *v, const char *name, const store_opts *o, store **s, ts_err *e) {
    char url[1024];
    snprintf(url, sizeof url, "s3://%s/t/%s-%ld?endpoint=%s&region=%s", v->bucket, name, (long)getpid(),
             v->endpoint, v->region);
    store_opts oo = o ? *o : (store_opts){0};
    if (!oo.access_key) oo.access_key = v->access;
    if (!oo.secret_key) oo.secret_key = v->secret;
    oo.no_env = true;
    if (!oo.backoff_s) oo.backoff_s = 0.05;
    return store_open(s, url, &oo, e);
}

static int file_open(const char *name, store **s, ts_err *e) {
    char url[1024];
    snprintf(url, sizeof url, "file://%s/%s", th_tmpdir(), name);
    return store_open(s, url, NULL, e);
}

typedef struct keylist {
    char keys[2048][64];
    int n;
} keylist;

static int collect(void *ud, const char *key, const store_info *info) {
    keylist *k = ud;
    (void)info;
    if (k->n < 2048) snprintf(k->keys[k->n], sizeof k->keys[0], "%s", key);
    k->n++;
    return 0;
}

/* ------------------------------------------------------------ key rules */

TEST(key_rules) {
    const char *good[] = {"a", "gradients/12/3", "dir with space/file name.bin", "ünïcødé/☃.bin",
                          "a+b=c&d", "x~y!'()*,;:@$", ".hidden", "a/.b/c..d", "..."};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECK_MSG(store_key_check(good[i], NULL) == TS_OK, "rejected good key '%s'", good[i]);
    const char *bad[] = {"", "/abs", "a/", "a//b", "..", "../x", "a/../b", "a/..", ".", "a/./b",
                         "tab\tkey", "nl\nkey", "del\x7fkey", "\xff\xfe", "\xc0\xaf", "\xed\xa0\x80",
                         "\xe2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ts_err e = {0};
        CHECK_MSG(store_key_check(bad[i], &e) == TS_EINVAL, "accepted bad key #%zu", i);
        CHECK(e.msg[0] != 0);
    }
    char longkey[STORE_KEY_MAX + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    CHECK_ERR(store_key_check(longkey, NULL), TS_EINVAL);
    longkey[STORE_KEY_MAX] = 0;
    CHECK_ERR(store_key_check(longkey, NULL), TS_OK);
}

TEST(key_layout) {
    char k[STORE_LAYOUT_KEY_MAX];
    uint64_t w = 0;
    uint32_t u = 0;
    store_key_gradient(k, 12345, 7);
    CHECK_STR(k, "gradients/12345/7");
    CHECK_EQ_INT(store_key_parse(k, &w, &u), STORE_OBJ_GRADIENT);
    CHECK_EQ_INT(w, 12345);
    CHECK_EQ_INT(u, 7);
    store_key_debug(k, UINT64_MAX, UINT32_MAX);
    CHECK_STR(k, "debug/18446744073709551615/4294967295");
    CHECK_EQ_INT(store_key_parse(k, &w, &u), STORE_OBJ_DEBUG);
    CHECK(w == UINT64_MAX && u == UINT32_MAX);
    store_key_peers(k, 40);
    CHECK_STR(k, "peers/40");
    CHECK_EQ_INT(store_key_parse(k, &w, NULL), STORE_OBJ_PEERS);
    CHECK_EQ_INT(w, 40);
    store_key_checkpoint(k, 0);
    CHECK_STR(k, "checkpoints/0/model.safetensors");
    CHECK_EQ_INT(store_key_parse(k, &w, NULL), STORE_OBJ_CHECKPOINT);
    store_key_manifest(k, 9);
    CHECK_STR(k, "checkpoints/9/manifest.json");
    CHECK_EQ_INT(store_key_parse(k, &w, NULL), STORE_OBJ_MANIFEST);
    CHECK_EQ_INT(w, 9);
    store_key_aggregate(k, 3);
    CHECK_STR(k, "aggregates/3");
    CHECK_EQ_INT(store_key_parse(k, &w, NULL), STORE_OBJ_AGGREGATE);
    CHECK_EQ_INT(store_key_parse("start_window", NULL, NULL), STORE_OBJ_START_WINDOW);
    CHECK_EQ_INT(store_key_parse("checkpoints/LATEST", NULL, NULL), STORE_OBJ_LATEST);
    CHECK_EQ_INT(store_key_parse(STORE_KEY_LATEST, NULL, NULL), STORE_OBJ_LATEST);
    /* not layout keys */
    const char *no[] = {"gradients/012/3", "gradients/12/03", "gradients/-1/3", "gradients/12", "gradients/12/3/x",
                        "gradients/18446744073709551616/1", "gradients/1/4294967296", "peers/", "peers/1/2",
                        "checkpoints/1/model.bin", "checkpoints/LATEST/x", "aggregates/+1", "gradients/1 /2",
                        "Gradients/1/2", "start_window/1", ""};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        CHECK_MSG(store_key_parse(no[i], &w, &u) == STORE_OBJ_UNKNOWN, "parsed '%s'", no[i]);
    /* every layout key is a valid key */
    store_key_gradient(k, UINT64_MAX, UINT32_MAX);
    CHECK_ERR(store_key_check(k, NULL), TS_OK);
}

/* ------------------------------------------------------------------ URLs */

TEST(url_parsing) {
    store *s = NULL;
    ts_err e = {0};
    store_opts o = {.access_key = "AK", .secret_key = "SK", .no_env = true};
    REQUIRE(store_open(&s, "s3://my-bucket/a/b/?endpoint=https://acct.r2.cloudflarestorage.com&region=auto", &o,
                       &e) == TS_OK);
    CHECK_STR(store_kind(s), "s3");
    CHECK_STR(store_url(s), "s3://my-bucket/a/b?endpoint=https://acct.r2.cloudflarestorage.com&region=auto");
    store_close(s);
    /* region defaults: auto with an endpoint, AWS without */
    REQUIRE(store_open(&s, "s3://bkt?endpoint=http://127.0.0.1:9000", &o, &e) == TS_OK);
    CHECK(strstr(store_url(s), "region=auto") != NULL);
    store_close(s);
    REQUIRE(store_open(&s, "s3://bkt/p?region=eu-west-1", &o, &e) == TS_OK);
    CHECK(strstr(store_url(s), "endpoint=https://s3.eu-west-1.amazonaws.com") != NULL);
    store_close(s);
    /* credentials in the URL are used and never shown */
    store_opts none = {.no_env = true};
    REQUIRE(store_open(&s, "s3://AKID:se%2Fcr%40et@bkt/p?endpoint=https://h.example", &none, &e) == TS_OK);
    CHECK(strstr(store_url(s), "AKID") == NULL && strstr(store_url(s), "cr") == NULL);
    store_close(s);
    /* errors */
    const char *bad[] = {"s3://", "s3://Bad_Bucket", "s3://ab", "s3://bkt?endpoint=ftp://x", "s3://bkt?endpoint=https://h/p",
                         "s3://bkt?region=auto", "s3://bkt?endpoint=https://h&colour=red", "s3://bkt?endpoint",
                         "s3://bkt/a/../b?endpoint=https://h", "s3://bkt/%zz?endpoint=https://h", "http://x/y",
                         "file://relative/path", "file:///a?b", "s3://bkt?endpoint=https://h&region=a b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s = NULL;
        CHECK_MSG(store_open(&s, bad[i], &o, &e) != TS_OK, "accepted '%s'", bad[i]);
        CHECK(s == NULL);
    }
    /* no credentials anywhere */
    CHECK_ERR(store_open(&s, "s3://bkt?endpoint=https://h", &none, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "AWS_ACCESS_KEY_ID") != NULL);
    /* the environment is read unless no_env */
    setenv("AWS_ACCESS_KEY_ID", "envak", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsk", 1);
    store_opts env = {0};
    CHECK_ERR(store_open(&s, "s3://bkt?endpoint=https://h", &env, &e), TS_OK);
    store_close(s);
    /* file URLs */
    char url[512];
    snprintf(url, sizeof url, "file://%s/st%%20ore/", th_tmpdir());
    REQUIRE(store_open(&s, url, NULL, &e) == TS_OK);
    CHECK_STR(store_kind(s), "file");
    CHECK_ERR(store_put(s, "k", "v", 1, &e), TS_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/st ore/k", th_tmpdir());
    CHECK(ts_path_exists(path));
    store_close(s);
}

/* ----------------------------------------------------------- commitments */

TEST(commitment_r2) {
    const char *acct = "0123456789abcdef0123456789abcdef";
    const char *ak = "AKIAabcdefghijklmnopqrstuvwxyz01";
    const char *sk = "s3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tS3CR3Tabcd";
    char text[200];
    snprintf(text, sizeof text, "%s%s%s", acct, ak, sk);
    CHECK_EQ_INT(strlen(text), STORE_COMMIT_R2_LEN);
    store_commitment c;
    ts_err e = {0};
    REQUIRE(store_commitment_parse(text, STORE_COMMIT_REMOTE, &c, &e) == TS_OK);
    CHECK_STR(c.url, "s3://0123456789abcdef0123456789abcdef?endpoint=https://"
                     "0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com&region=auto");
    CHECK_STR(c.access_key, ak);
    CHECK_STR(c.secret_key, sk);
    char out[STORE_URL_MAX + 2 * STORE_CRED_MAX];
    REQUIRE(store_commitment_format(&c, out, sizeof out, &e) == TS_OK);
    CHECK_STR(out, text);
    /* opening it names the right store and never shows the secret */
    store *s;
    REQUIRE(store_open_commitment(&s, &c, NULL, &e) == TS_OK);
    CHECK(strstr(store_url(s), "r2.cloudflarestorage.com") && !strstr(store_url(s), sk));
    store_close(s);
    /* malformed: wrong length, upper-case or non-hex account, punctuation */
    text[127] = 0;
    CHECK_ERR(store_commitment_parse(text, STORE_COMMIT_REMOTE, &c, &e), TS_EINVAL);
    snprintf(text, sizeof text, "0123456789ABCDEF0123456789abcdef%s%s", ak, sk);
    CHECK_ERR(store_commitment_parse(text, STORE_COMMIT_REMOTE, &c, &e), TS_EINVAL);
    snprintf(text, sizeof text, "0123456789abcdefg123456789abcdef%s%s", ak, sk);
    CHECK_ERR(store_commitment_parse(text, STORE_COMMIT_REMOTE, &c, &e), TS_EINVAL);
    snprintf(text, sizeof text, "%s%s%.63s-", acct, ak, sk);
    CHECK_ERR(store_commitment_parse(text, STORE_COMMIT_REMOTE, &c, &e), TS_EINVAL);
    CHECK_ERR(store_commitment_r2(&c, acct, "short", sk, &e), TS_EINVAL);
}

TEST(commitment_url_form) {
    store_commitment c;
    ts_err e = {0};
    const char *t = "s3://ak%3Aid:se%2Fcr%2Bet@bkt-1/run/a?endpoint=https://minio.example:9000&region=us-east-1";
    REQUIRE(store_commitment_parse(t, STORE_COMMIT_REMOTE, &c, &e) == TS_OK);
    CHECK_STR(c.access_key, "ak:id");
    CHECK_STR(c.secret_key, "se/cr+et");
    CHECK_STR(c.url, "s3://bkt-1/run/a?endpoint=https://minio.example:9000&region=us-east-1");
    char out[STORE_URL_MAX + 2 * STORE_CRED_MAX];
    REQUIRE(store_commitment_format(&c, out, sizeof out, &e) == TS_OK);
    store_commitment c2;
    REQUIRE(store_commitment_parse(out, STORE_COMMIT_REMOTE, &c2, &e) == TS_OK);
    CHECK(!memcmp(&c, &c2, sizeof c));
    /* policy: remote peers may not name local files or plain http */
    CHECK_ERR(store_commitment_parse("file:///etc", STORE_COMMIT_REMOTE, &c, &e), TS_EDENIED);
    CHECK_ERR(store_commitment_parse("s3://a:b@bkt?endpoint=http://10.0.0.1", STORE_COMMIT_REMOTE, &c, &e), TS_EDENIED);
    CHECK_ERR(store_commitment_parse("s3://a:b@bkt?endpoint=http://127.0.0.1:1", STORE_COMMIT_ANY, &c, &e), TS_OK);
    char furl[512];
    snprintf(furl, sizeof furl, "file://%s/peer", th_tmpdir());
    REQUIRE(store_commitment_parse(furl, STORE_COMMIT_ANY, &c, &e) == TS_OK);
    CHECK_STR(c.url, furl);
    REQUIRE(store_commitment_format(&c, out, sizeof out, &e) == TS_OK);
    CHECK_STR(out, furl);
    store *s;
    REQUIRE(store_open_commitment(&s, &c, NULL, &e) == TS_OK);
    CHECK_STR(store_kind(s), "file");
    store_close(s);
    /* garbage */
    CHECK_ERR(store_commitment_parse("s3://bkt?endpoint=https://h", STORE_COMMIT_ANY, &c, &e), TS_EINVAL);
    CHECK_ERR(store_commitment_parse("hello", STORE_COMMIT_ANY, &c, &e), TS_EINVAL);
    CHECK_ERR(store_commitment_parse("", STORE_COMMIT_ANY, &c, &e), TS_EINVAL);
    char huge[STORE_URL_MAX + 10];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = 0;
    memcpy(huge, "s3://", 5);
    CHECK_ERR(store_commitment_parse(huge, STORE_COMMIT_ANY, &c, &e), TS_EINVAL);
}

/* FORMATS 8.4: ACCESS and SECRET are both percent-encoded, so the userinfo
 * holds exactly one unencoded ':'.  With two, "ak:x:sk" could be the key
 * "ak:x" or the secret "x:sk": refused, whichever half the ':' belongs to,
 * with a message that names %3A; the encoded forms round-trip. */
TEST(commitment_colon_must_be_encoded) {
    store_commitment c;
    ts_err e = {0};
    const char *raw_key = "s3://ak:x:secret@bkt-1?endpoint=https://h.example&region=auto";
    CHECK_ERR(store_commitment_parse(raw_key, STORE_COMMIT_REMOTE, &c, &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "':'") && strstr(e.msg, "percent-encoded") && strstr(e.msg, "%3A"),
              "message: %s", e.msg);
    CHECK_MSG(!strstr(e.msg, "secret@") && !strstr(e.msg, "ak:x"), "message shows the credentials: %s", e.msg);
    CHECK(!c.access_key[0] && !c.secret_key[0]);
    /* the same under the local policy, and with a raw ':' in the secret */
    CHECK_ERR(store_commitment_parse(raw_key, STORE_COMMIT_ANY, &c, &e), TS_EINVAL);
    CHECK_ERR(store_commitment_parse("s3://ak:se:cr:et@bkt-1?endpoint=https://h.example", STORE_COMMIT_REMOTE, &c, &e),
              TS_EINVAL);
    CHECK(strstr(e.msg, "%3A") != NULL);
    /* encoded: the key holds the ':' */
    REQUIRE(store_commitment_parse("s3://ak%3Ax:secret@bkt-1?endpoint=https://h.example", STORE_COMMIT_REMOTE, &c,
                                   &e) == TS_OK);
    CHECK_STR(c.access_key, "ak:x");
    CHECK_STR(c.secret_key, "secret");
    /* encoded (lower-case escape too): the secret holds it */
    REQUIRE(store_commitment_parse("s3://ak:x%3asecret@bkt-1?endpoint=https://h.example", STORE_COMMIT_REMOTE, &c,
                                   &e) == TS_OK);
    CHECK_STR(c.access_key, "ak");
    CHECK_STR(c.secret_key, "x:secret");
    /* a ':' after the '@' (the endpoint's port) is not in the userinfo */
    REQUIRE(store_commitment_parse("s3://ak:sk@bkt-1/p?endpoint=https://h.example:9000", STORE_COMMIT_REMOTE, &c,
                                   &e) == TS_OK);
    CHECK_STR(c.access_key, "ak");
    CHECK_STR(c.secret_key, "sk");
    /* the writer encodes both halves, and what it writes parses back */
    store_commitment w = {0};
    snprintf(w.url, sizeof w.url, "s3://bkt-1/run?endpoint=https://h.example:9000&region=auto");
    snprintf(w.access_key, sizeof w.access_key, "a:k:");
    snprintf(w.secret_key, sizeof w.secret_key, ":s:k@/");
    char out[STORE_URL_MAX + 2 * STORE_CRED_MAX];
    REQUIRE(store_commitment_format(&w, out, sizeof out, &e) == TS_OK);
    CHECK_STR(out, "s3://a%3Ak%3A:%3As%3Ak%40%2F@bkt-1/run?endpoint=https://h.example:9000&region=auto");
    REQUIRE(store_commitment_parse(out, STORE_COMMIT_REMOTE, &c, &e) == TS_OK);
    CHECK_STR(c.access_key, "a:k:");
    CHECK_STR(c.secret_key, ":s:k@/");
    CHECK_STR(c.url, w.url);
}

/* -------------------------------------------------------------- XML reader */

TEST(xml_reader) {
    const char *doc = "<?xml version=\"1.0\"?><ListBucketResult><KeyCount>2</KeyCount>"
                      "<Contents><Key>a &amp; b &lt;c&gt; &#233;&#x2603;</Key><Size>12</Size></Contents>"
                      "<Contents><Key>x</Key><Empty/></Contents></ListBucketResult>";
    const char *end = doc + strlen(doc), *ib, *ie;
    const char *after = s3xml_elem(doc, end, "Key", &ib, &ie);
    REQUIRE(after != NULL);
    char out[64];
    CHECK_EQ_INT(s3xml_text(ib, ie, out, sizeof out), (int)strlen("a & b <c> é☃"));
    CHECK_STR(out, "a & b <c> é☃");
    CHECK(s3xml_elem(after, end, "Key", &ib, &ie) != NULL);
    CHECK_EQ_INT(s3xml_text(ib, ie, out, sizeof out), 1);
    CHECK(s3xml_elem(doc, end, "Empty", &ib, &ie) != NULL && ib == ie);
    CHECK(s3xml_elem(doc, end, "Missing", &ib, &ie) == NULL);
    CHECK_EQ_INT(s3xml_child_text(doc, end, "KeyCount", out, sizeof out), 1);
    /* bounded: an element cut off by the end is not found */
    CHECK(s3xml_elem(doc, doc + 60, "KeyCount", &ib, &ie) == NULL);
    /* strict text */
    const char *bad[] = {"&bogus;", "&#0;", "&#x110000;", "&#xD800;", "&amp", "a<b", "&#;", "&#x;", "&#12a;"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_MSG(s3xml_text(bad[i], bad[i] + strlen(bad[i]), out, sizeof out) < 0, "decoded '%s'", bad[i]);
    CHECK(s3xml_text("abcdef", "abcdef" + 6, out, 4) < 0); /* too long for the room: an error */
    const char nul[] = "a\0b";
    CHECK(s3xml_text(nul, nul + 3, out, sizeof out) < 0);
    double t = 0;
    CHECK_EQ_INT(s3xml_parse_iso8601("2026-11-23T16:34:22.500Z", &t), 0);
    CHECK_NEAR(t, 1795451662.5, 1e-6);
    CHECK(s3xml_parse_iso8601("2026-13-23T16:34:22Z", &t) < 0);
    CHECK(s3xml_parse_iso8601("2026-11-23 16:34:22Z", &t) < 0);
    CHECK(s3xml_parse_iso8601("2026-11-23T16:34:22", &t) < 0);
}

/* The fast SHA-256 (libcrypto's, when libcurl loaded it) agrees with
 * libsodium's on every length class (empty, one block, padding edges, long). */
TEST(sha256_agrees_with_libsodium) {
    size_t sizes[] = {0, 1, 55, 56, 63, 64, 65, 1000, (1u << 20) + 3};
    uint8_t *d = det_data((1u << 20) + 3, 7);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        uint8_t a[32], b[32], c[32];
        store_sha256(a, d, sizes[i], false);
        store_sha256(b, d, sizes[i], true);
        crypto_hash_sha256(c, d, sizes[i]);
        CHECK_MSG(!memcmp(a, c, 32) && !memcmp(b, c, 32), "length %zu", sizes[i]);
    }
    uint8_t h[32];
    store_sha256(h, "", 0, false);
    char hex[65];
    ts_hex(hex, h, 32);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    free(d);
}

/* --------------------------------------------------------- file backend */

TEST(file_roundtrip) {
    store *s;
    ts_err e = {0};
    REQUIRE(file_open("st", &s, &e) == TS_OK);
    const char *keys[] = {"a", "dir with space/ünïcødé ☃.bin", "gradients/12/3", "x/y/z/deep"};
    for (size_t i = 0; i < 4; i++) {
        size_t n = 1000 + 777 * i;
        uint8_t *d = det_data(n, (uint8_t)i);
        REQUIRE(store_put(s, keys[i], d, n, &e) == TS_OK);
        uint8_t *got;
        size_t len;
        REQUIRE(store_get(s, keys[i], n, &got, &len, &e) == TS_OK);
        CHECK(len == n && !memcmp(got, d, n) && got[n] == 0);
        free(got);
        /* the cap is checked before reading */
        CHECK_ERR(store_get(s, keys[i], n - 1, &got, &len, &e), TS_ETOOBIG);
        CHECK(got == NULL);
        free(d);
    }
    /* overwrite */
    REQUIRE(store_put(s, "a", "new", 3, &e) == TS_OK);
    uint8_t *got;
    size_t len;
    REQUIRE(store_get(s, "a", 100, &got, &len, &e) == TS_OK);
    CHECK(len == 3 && !memcmp(got, "new", 3));
    free(got);
    /* empty object */
    REQUIRE(store_put(s, "empty", NULL, 0, &e) == TS_OK);
    REQUIRE(store_get(s, "empty", 10, &got, &len, &e) == TS_OK);
    CHECK_EQ_INT(len, 0);
    free(got);
    /* missing */
    CHECK_ERR(store_get(s, "nope", 10, &got, &len, &e), TS_ENOTFOUND);
    CHECK(strstr(e.msg, "nope") != NULL);
    store_info info;
    CHECK_ERR(store_head(s, "nope", &info, &e), TS_ENOTFOUND);
    /* a directory is not an object */
    CHECK_ERR(store_head(s, "x/y", &info, &e), TS_ENOTFOUND);
    /* a key cannot be both an object and a directory in a file store */
    CHECK(store_put(s, "x/y", "v", 1, &e) != TS_OK);
    CHECK(store_put(s, "a/b", "v", 1, &e) != TS_OK);
    /* unsafe keys never reach the file system */
    CHECK_ERR(store_put(s, "../escape", "v", 1, &e), TS_EINVAL);
    CHECK_ERR(store_put(s, "/abs", "v", 1, &e), TS_EINVAL);
    CHECK_ERR(store_get(s, "a/../a", 10, &got, &len, &e), TS_EINVAL);
    CHECK_ERR(store_put(s, ".tessera-tmp/x", "v", 1, &e), TS_EINVAL);
    char path[600];
    snprintf(path, sizeof path, "%s/escape", th_tmpdir());
    CHECK(!ts_path_exists(path));
    store_close(s);
}

TEST(file_last_modified_and_ranges) {
    store *s;
    ts_err e = {0};
    REQUIRE(file_open("st", &s, &e) == TS_OK);
    double before = ts_now();
    REQUIRE(store_put(s, "obj", "0123456789", 10, &e) == TS_OK);
    store_info info;
    REQUIRE(store_head(s, "obj", &info, &e) == TS_OK);
    CHECK_EQ_INT(info.size, 10);
    CHECK(info.etag[0] != 0);
    CHECK(info.last_modified >= before - 1 && info.last_modified <= ts_now() + 1);
    /* LastModified is the file's mtime */
    char path[600];
    snprintf(path, sizeof path, "%s/st/obj", th_tmpdir());
    struct timespec ts[2] = {{1700000000, 250000000}, {1700000000, 250000000}};
    REQUIRE(utimensat(AT_FDCWD, path, ts, 0) == 0);
    REQUIRE(store_head(s, "obj", &info, &e) == TS_OK);
    CHECK_NEAR(info.last_modified, 1700000000.25, 1e-6);
    char buf[16];
    size_t got;
    REQUIRE(store_get_range(s, "obj", 3, 4, buf, &got, &e) == TS_OK);
    CHECK(got == 4 && !memcmp(buf, "3456", 4));
    REQUIRE(store_get_range(s, "obj", 8, 10, buf, &got, &e) == TS_OK);
    CHECK(got == 2 && !memcmp(buf, "89", 2));
    CHECK_ERR(store_get_range(s, "obj", 10, 1, buf, &got, &e), TS_EINVAL);
    CHECK_ERR(store_get_range(s, "nope", 0, 1, buf, &got, &e), TS_ENOTFOUND);
    store_close(s);
}

TEST(file_list_delete_prune) {
    store *s;
    ts_err e = {0};
    REQUIRE(file_open("st", &s, &e) == TS_OK);
    const char *keys[] = {"gradients/10/1", "gradients/2/1", "gradients/1/1", "gradients/1/2", "gradients/x/1",
                          "debug/1/1", "peers/5", "start_window", "gradients1"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) REQUIRE(store_put(s, keys[i], "v", 1, &e) == TS_OK);
    /* a stray temporary file from a crash is never listed */
    char stray[600];
    snprintf(stray, sizeof stray, "%s/st/.tessera-tmp/.x.tmp.1.2", th_tmpdir());
    REQUIRE(write_file(stray, "junk", 4) == 0);
    keylist *k = calloc(1, sizeof *k);
    REQUIRE(store_list(s, "", collect, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, 9);
    for (int i = 1; i < k->n; i++) CHECK_MSG(strcmp(k->keys[i - 1], k->keys[i]) < 0, "unsorted at %d", i);
    k->n = 0;
    REQUIRE(store_list(s, "gradients/", collect, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, 5);
    CHECK_STR(k->keys[0], "gradients/1/1");
    CHECK_STR(k->keys[2], "gradients/10/1");
    k->n = 0;
    REQUIRE(store_list(s, "gradients/1", collect, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, 3); /* gradients/1/1, gradients/1/2, gradients/10/1 */
    k->n = 0;
    REQUIRE(store_list(s, "gradients", collect, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, 6); /* with gradients1 */
    k->n = 0;
    REQUIRE(store_list(s, "nothing/", collect, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, 0);
    store_listing l;
    REQUIRE(store_list_all(s, "", 100, &l, &e) == TS_OK);
    CHECK_EQ_INT(l.n, 9);
    CHECK_EQ_INT(l.v[0].info.size, 1);
    store_listing_free(&l);
    CHECK_ERR(store_list_all(s, "", 3, &l, &e), TS_ETOOBIG);
    /* retention: windows below 2 go, "x" and other dirs stay */
    int deleted = -1;
    REQUIRE(store_prune_windows(s, "gradients", 2, &deleted, &e) == TS_OK);
    CHECK_EQ_INT(deleted, 2);
    store_info info;
    CHECK_ERR(store_head(s, "gradients/1/1", &info, &e), TS_ENOTFOUND);
    CHECK_ERR(store_head(s, "gradients/2/1", &info, &e), TS_OK);
    CHECK_ERR(store_head(s, "gradients/x/1", &info, &e), TS_OK);
    CHECK_ERR(store_head(s, "debug/1/1", &info, &e), TS_OK);
    /* delete is idempotent and removes emptied directories */
    REQUIRE(store_delete(s, "peers/5", &e) == TS_OK);
    REQUIRE(store_delete(s, "peers/5", &e) == TS_OK);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/st/peers", th_tmpdir());
    CHECK(!ts_path_exists(dir));
    snprintf(dir, sizeof dir, "%s/st/gradients/1", th_tmpdir());
    CHECK(!ts_path_exists(dir));
    free(k);
    store_close(s);
}

TEST(file_put_get_files) {
    store *s;
    ts_err e = {0};
    REQUIRE(file_open("st", &s, &e) == TS_OK);
    size_t n = 3u << 20;
    uint8_t *d = det_data(n, 9);
    char src[600], dst[600];
    snprintf(src, sizeof src, "%s/src.bin", th_tmpdir());
    snprintf(dst, sizeof dst, "%s/dst.bin", th_tmpdir());
    REQUIRE(write_file(src, d, n) == 0);
    REQUIRE(store_put_file(s, "f/src.bin", src, &e) == TS_OK);
    REQUIRE(write_file(dst, "old", 3) == 0);
    REQUIRE(store_get_file(s, "f/src.bin", dst, 0, &e) == TS_OK);
    CHECK(file_equals(dst, d, n));
    /* a failed get leaves the destination alone */
    REQUIRE(write_file(dst, "old", 3) == 0);
    CHECK_ERR(store_get_file(s, "f/missing", dst, 0, &e), TS_ENOTFOUND);
    CHECK(file_equals(dst, (const uint8_t *)"old", 3));
    CHECK_ERR(store_get_file(s, "f/src.bin", dst, n - 1, &e), TS_ETOOBIG);
    CHECK(file_equals(dst, (const uint8_t *)"old", 3));
    CHECK_ERR(store_put_file(s, "f/x", "/nonexistent/file", &e), TS_ENOTFOUND);
    free(d);
    store_close(s);
}

/* Readers never see a partly written object: two writers alternate between
 * two versions while a reader checks every read is one of them, whole. */
typedef struct race {
    store *s;
    const uint8_t *a, *b;
    size_t n;
    volatile int stop;
    int bad, reads;
} race;

static void *race_writer(void *arg) {
    race *r = arg;
    for (int i = 0; i < 60 && !r->stop; i++) store_put(r->s, "hot", i % 2 ? r->a : r->b, r->n, NULL);
    return NULL;
}

TEST(file_put_is_atomic_under_concurrency) {
    store *s;
    ts_err e = {0};
    REQUIRE(file_open("st", &s, &e) == TS_OK);
    size_t n = 1u << 20;
    uint8_t *a = det_data(n, 1), *b = det_data(n, 2);
    REQUIRE(store_put(s, "hot", a, n, &e) == TS_OK);
    race r = {.s = s, .a = a, .b = b, .n = n};
    pthread_t w1, w2;
    pthread_create(&w1, NULL, race_writer, &r);
    pthread_create(&w2, NULL, race_writer, &r);
    for (int i = 0; i < 150; i++) {
        uint8_t *got;
        size_t len;
        if (store_get(s, "hot", n, &got, &len, NULL)) continue;
        r.reads++;
        if (len != n || (memcmp(got, a, n) && memcmp(got, b, n))) r.bad++;
        free(got);
    }
    r.stop = 1;
    pthread_join(w1, NULL);
    pthread_join(w2, NULL);
    CHECK_EQ_INT(r.bad, 0);
    CHECK(r.reads > 100);
    free(a);
    free(b);
    store_close(s);
}

/* A symbolic link anywhere in a key is never followed: not as the last
 * segment, not as a directory in the middle (root/gradients -> outside,
 * root/a/b -> ../../outside), not as the store's temporary directory.  Every
 * operation refuses it, naming the key and the link, and nothing outside the
 * root is read, written, created or deleted. */
static char *tp(const char *rel) {
    static char buf[8][700];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", th_tmpdir(), rel);
    return p;
}

static bool refused(int rc, const ts_err *e, const char *key) {
    return rc == TS_EDENIED && strstr(e->msg, key) && strstr(e->msg, "symbolic link");
}

#define CHECK_REFUSED(call, key)                                                                            \
    do {                                                                                                    \
        ts_err e_ = {0};                                                                                    \
        int r_ = (call);                                                                                    \
        (void)e;                                                                                            \
        if (!refused(r_, &e_, key))                                                                         \
            th_fail(__FILE__, __LINE__, "%s: returned %d (%s), want TS_EDENIED naming '%s' and a symbolic link", \
                    #call, r_, e_.msg, key);                                                                \
    } while (0)

TEST(file_symlinks_are_never_followed) {
    ts_err e = {0};
    /* outside the store: a secret, a window directory, a nested file */
    REQUIRE(mkdir(tp("outside"), 0755) == 0);
    REQUIRE(mkdir(tp("outside/1"), 0755) == 0);
    REQUIRE(mkdir(tp("outside/sub"), 0755) == 0);
    REQUIRE(write_file(tp("outside/secret"), "SECRET", 6) == 0);
    REQUIRE(write_file(tp("outside/1/7"), "w1", 2) == 0);
    REQUIRE(write_file(tp("outside/sub/f"), "F", 1) == 0);
    /* the store: root/gradients -> outside (absolute), root/a/b -> ../../outside,
     * root/debug/3 -> outside/1, root/link -> outside/secret */
    REQUIRE(mkdir(tp("st"), 0755) == 0);
    REQUIRE(mkdir(tp("st/a"), 0755) == 0);
    REQUIRE(mkdir(tp("st/debug"), 0755) == 0);
    REQUIRE(symlink(tp("outside"), tp("st/gradients")) == 0);
    REQUIRE(symlink("../../outside", tp("st/a/b")) == 0);
    REQUIRE(symlink(tp("outside/1"), tp("st/debug/3")) == 0);
    REQUIRE(symlink(tp("outside/secret"), tp("st/link")) == 0);
    store *s;
    REQUIRE(file_open("st", &s, &e) == TS_OK);
    REQUIRE(store_put(s, "debug/2/1", "in", 2, &e) == TS_OK);

    uint8_t *got = NULL;
    size_t len = 0;
    char buf[16];
    size_t n;
    store_info info;
    const char *reads[] = {"gradients/secret", "a/b/secret", "a/b/sub/f", "debug/3/7", "link"};
    for (size_t i = 0; i < sizeof reads / sizeof *reads; i++) {
        const char *k = reads[i];
        CHECK_REFUSED(store_get(s, k, 100, &got, &len, &e_), k);
        CHECK(got == NULL);
        free(got);
        got = NULL;
        CHECK_REFUSED(store_get_range(s, k, 0, 4, buf, &n, &e_), k);
        CHECK_REFUSED(store_head(s, k, &info, &e_), k);
        CHECK_REFUSED(store_get_file(s, k, tp("copy"), 0, &e_), k);
        CHECK(!ts_path_exists(tp("copy")));
    }
    /* puts: nothing appears outside, no directory is created there */
    CHECK_REFUSED(store_put(s, "gradients/new", "x", 1, &e_), "gradients/new");
    CHECK_REFUSED(store_put(s, "gradients/9/1", "x", 1, &e_), "gradients/9/1");
    CHECK_REFUSED(store_put(s, "a/b/sub/new", "x", 1, &e_), "a/b/sub/new");
    CHECK_REFUSED(store_put(s, "debug/3/new", "x", 1, &e_), "debug/3/new");
    CHECK_REFUSED(store_put_file(s, "gradients/file", tp("outside/sub/f"), &e_), "gradients/file");
    CHECK(!ts_path_exists(tp("outside/new")) && !ts_path_exists(tp("outside/9")));
    CHECK(!ts_path_exists(tp("outside/sub/new")) && !ts_path_exists(tp("outside/1/new")));
    CHECK(!ts_path_exists(tp("outside/file")));
    /* deletes: the files outside and their emptied directories stay */
    CHECK_REFUSED(store_delete(s, "gradients/secret", &e_), "gradients/secret");
    CHECK_REFUSED(store_delete(s, "a/b/sub/f", &e_), "a/b/sub/f");
    CHECK_REFUSED(store_delete(s, "debug/3/7", &e_), "debug/3/7");
    CHECK(ts_path_exists(tp("outside/secret")) && ts_path_exists(tp("outside/sub/f")) &&
          ts_path_exists(tp("outside/1/7")));
    /* listings neither descend into linked directories nor show links */
    keylist *k = calloc(1, sizeof *k);
    REQUIRE(store_list(s, "", collect, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, 1);
    CHECK_STR(k->keys[0], "debug/2/1");
    k->n = 0;
    REQUIRE(store_list(s, "gradients/", collect, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, 0);
    k->n = 0;
    REQUIRE(store_list(s, "a/b/", collect, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, 0);
    free(k);
    /* retention never reaches through a link */
    int deleted = -1;
    REQUIRE(store_prune_windows(s, "gradients", 100, &deleted, &e) == TS_OK);
    CHECK_EQ_INT(deleted, 0);
    REQUIRE(store_prune_windows(s, "debug", 100, &deleted, &e) == TS_OK);
    CHECK_EQ_INT(deleted, 1);
    CHECK(ts_path_exists(tp("outside/1/7")));
    /* the emptied debug/2 went, debug (holding the link) stayed */
    CHECK(!ts_path_exists(tp("st/debug/2")) && ts_path_exists(tp("st/debug")));
    /* the links themselves are left alone */
    struct stat st;
    CHECK(lstat(tp("st/gradients"), &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(lstat(tp("st/a/b"), &st) == 0 && S_ISLNK(st.st_mode));
    store_close(s);
}

/* The store's temporary directory as a link: puts are refused, nothing is
 * written through it. */
TEST(file_symlinked_tmp_dir_is_refused) {
    ts_err e = {0};
    REQUIRE(mkdir(tp("outside"), 0755) == 0);
    REQUIRE(mkdir(tp("st"), 0755) == 0);
    REQUIRE(symlink(tp("outside"), tp("st/.tessera-tmp")) == 0);
    store *s;
    REQUIRE(file_open("st", &s, &e) == TS_OK);
    CHECK_REFUSED(store_put(s, "k", "x", 1, &e_), "k");
    CHECK(!ts_path_exists(tp("st/k")));
    DIR *d = opendir(tp("outside"));
    REQUIRE(d);
    int entries = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) entries++;
    closedir(d);
    CHECK_EQ_INT(entries, 0);
    store_close(s);
}

/* The root itself may be a link (an operator's choice of disk): it is used. */
TEST(file_root_may_be_a_link) {
    ts_err e = {0};
    REQUIRE(mkdir(tp("real"), 0755) == 0);
    REQUIRE(symlink(tp("real"), tp("st")) == 0);
    store *s;
    REQUIRE(file_open("st", &s, &e) == TS_OK);
    REQUIRE(store_put(s, "x/y", "v", 1, &e) == TS_OK);
    CHECK(ts_path_exists(tp("real/x/y")));
    uint8_t *got;
    size_t len;
    REQUIRE(store_get(s, "x/y", 10, &got, &len, &e) == TS_OK);
    free(got);
    REQUIRE(store_delete(s, "x/y", &e) == TS_OK);
    CHECK(!ts_path_exists(tp("real/x")) && ts_path_exists(tp("real")));
    store_close(s);
}

/* ------------------------------------------------------------ S3 backend */

static void s3_roundtrip(store *s, const char *key, size_t n, uint8_t tag) {
    ts_err e = {0};
    uint8_t *d = det_data(n, tag);
    REQUIRE(d != NULL);
    if (store_put(s, key, d, n, &e)) {
        th_fail(__FILE__, __LINE__, "put %s (%zu bytes): %s", key, n, e.msg);
        free(d);
        return;
    }
    uint8_t *got = NULL;
    size_t len = 0;
    if (store_get(s, key, n, &got, &len, &e)) {
        th_fail(__FILE__, __LINE__, "get %s: %s", key, e.msg);
    } else {
        CHECK_MSG(len == n && !memcmp(got, d, n), "%s: %zu bytes came back for %zu, or different bytes", key, len, n);
        CHECK(got[len] == 0);
    }
    free(got);
    store_info info;
    CHECK_ERR(store_head(s, key, &info, &e), TS_OK);
    CHECK_EQ_INT(info.size, n);
    free(d);
}

TEST(s3_put_get_sizes) {
    NEED_S3(v);
    store *s;
    ts_err e = {0};
    /* small parts so that multipart and parallel ranges happen at test sizes */
    store_opts o = {.part_size = 5u << 20, .multipart_threshold = 8u << 20, .parallel = 3};
    REQUIRE(s3_open(&v, "sizes", &o, &s, &e) == TS_OK);
    s3_roundtrip(s, "empty", 0, 1);
    s3_roundtrip(s, "one-kb", 1000, 2);
    s3_roundtrip(s, "one-mb", 1u << 20, 3);
    s3_roundtrip(s, "exact-part", 5u << 20, 4);
    s3_roundtrip(s, "multi/17mb", (17u << 20) + 3, 5); /* multipart: 4 parts, the last short */
    store_info info;
    REQUIRE(store_head(s, "multi/17mb", &info, &e) == TS_OK);
    CHECK_MSG(strstr(info.etag, "-4") != NULL, "multipart ETag '%s' does not end in -4", info.etag);
    /* the cap refuses before the body is read */
    uint8_t *got;
    size_t len;
    CHECK_ERR(store_get(s, "multi/17mb", 1u << 20, &got, &len, &e), TS_ETOOBIG);
    CHECK(strstr(e.msg, "multi/17mb") != NULL);
    store_close(s);
}

TEST(s3_200mb_file_multipart) {
    NEED_S3(v);
    store *s;
    ts_err e = {0};
    store_opts o = {.part_size = 16u << 20, .multipart_threshold = 32u << 20, .parallel = 4};
    REQUIRE(s3_open(&v, "big", &o, &s, &e) == TS_OK);
    size_t n = 200u << 20;
    uint8_t *d = det_data(n, 42);
    REQUIRE(d != NULL);
    char src[600], dst[600];
    snprintf(src, sizeof src, "%s/src.bin", th_tmpdir());
    snprintf(dst, sizeof dst, "%s/dst.bin", th_tmpdir());
    REQUIRE(write_file(src, d, n) == 0);
    if (store_put_file(s, "big/200mb.bin", src, &e)) {
        th_fail(__FILE__, __LINE__, "put_file: %s", e.msg);
        free(d);
        store_close(s);
        return;
    }
    if (store_get_file(s, "big/200mb.bin", dst, 0, &e)) th_fail(__FILE__, __LINE__, "get_file: %s", e.msg);
    else CHECK(file_equals(dst, d, n));
    store_info info;
    REQUIRE(store_head(s, "big/200mb.bin", &info, &e) == TS_OK);
    CHECK_EQ_INT(info.size, n);
    CHECK(strstr(info.etag, "-13") != NULL);
    /* ranged reads across part boundaries */
    uint8_t buf[4096];
    size_t got;
    uint64_t offs[] = {0, (16u << 20) - 100, n - 10, 123456789};
    for (int i = 0; i < 4; i++) {
        REQUIRE(store_get_range(s, "big/200mb.bin", offs[i], sizeof buf, buf, &got, &e) == TS_OK);
        size_t want = n - offs[i] < sizeof buf ? n - offs[i] : sizeof buf;
        CHECK_EQ_INT(got, want);
        CHECK(!memcmp(buf, d + offs[i], want));
    }
    CHECK_ERR(store_get_range(s, "big/200mb.bin", n, 10, buf, &got, &e), TS_EINVAL);
    REQUIRE(store_delete(s, "big/200mb.bin", &e) == TS_OK);
    free(d);
    store_close(s);
}

TEST(s3_keys_with_spaces_and_unicode) {
    NEED_S3(v);
    store *s;
    ts_err e = {0};
    REQUIRE(s3_open(&v, "names", NULL, &s, &e) == TS_OK);
    const char *keys[] = {"dir with space/file name.bin", "ünïcødé/☃ snow.bin", "a+b=c&d?e#f", "x~y!'()*,;:@$",
                          "%41%2F not decoded", "日本語/キー", "tab-less but quote\"s and <xml>&amp;"};
    int nk = (int)(sizeof keys / sizeof *keys);
    for (int i = 0; i < nk; i++) {
        char body[64];
        snprintf(body, sizeof body, "body %d", i);
        if (store_put(s, keys[i], body, strlen(body), &e)) {
            th_fail(__FILE__, __LINE__, "put '%s': %s", keys[i], e.msg);
            continue;
        }
        uint8_t *got;
        size_t len;
        if (store_get(s, keys[i], 100, &got, &len, &e)) {
            th_fail(__FILE__, __LINE__, "get '%s': %s", keys[i], e.msg);
            continue;
        }
        CHECK(len == strlen(body) && !memcmp(got, body, len));
        free(got);
    }
    /* the listing gives back exactly the same strings, sorted by bytes */
    keylist *k = calloc(1, sizeof *k);
    REQUIRE(store_list(s, "", collect, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, nk);
    for (int i = 0; i < nk; i++) {
        bool found = false;
        for (int j = 0; j < k->n; j++) found |= !strcmp(k->keys[j], keys[i]);
        CHECK_MSG(found, "'%s' not listed as itself", keys[i]);
    }
    for (int j = 1; j < k->n; j++) CHECK(strcmp(k->keys[j - 1], k->keys[j]) < 0);
    k->n = 0;
    REQUIRE(store_list(s, "ünïcødé/", collect, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, 1);
    for (int i = 0; i < nk; i++) CHECK_ERR(store_delete(s, keys[i], &e), TS_OK);
    free(k);
    store_close(s);
}

static int stop_at_3(void *ud, const char *key, const store_info *info) {
    return collect(ud, key, info), ((keylist *)ud)->n >= 3;
}

typedef struct many {
    store *s;
    int from, to, failures;
    bool del;
    ts_err e;
} many;

static void *many_worker(void *arg) {
    many *m = arg;
    for (int i = m->from; i < m->to; i++) {
        char key[64];
        snprintf(key, sizeof key, "page/k%05d", i);
        int rc = m->del ? store_delete(m->s, key, &m->e) : store_put(m->s, key, key, strlen(key), &m->e);
        if (rc) m->failures++;
    }
    return NULL;
}

/* Pagination past 1,000 keys, and one store handle used by four threads. */
TEST(s3_list_pagination_and_threads) {
    NEED_S3(v);
    store *s;
    ts_err e = {0};
    REQUIRE(s3_open(&v, "pages", NULL, &s, &e) == TS_OK);
    enum { N = 1010, T = 4 };
    many m[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        m[t] = (many){.s = s, .from = t * N / T, .to = (t + 1) * N / T};
        pthread_create(&th[t], NULL, many_worker, &m[t]);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        CHECK_MSG(m[t].failures == 0, "thread %d: %d puts failed: %s", t, m[t].failures, m[t].e.msg);
    }
    REQUIRE(store_put(s, "pagf", "x", 1, &e) == TS_OK); /* sorts after "page/", outside the prefix */
    keylist *k = calloc(1, sizeof *k);
    REQUIRE(store_list(s, "page/", collect, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, N);
    for (int i = 0; i < k->n && i < N; i++) {
        char want[64];
        snprintf(want, sizeof want, "page/k%05d", i);
        if (strcmp(k->keys[i], want)) {
            CHECK_STR(k->keys[i], want);
            break;
        }
    }
    store_listing l;
    REQUIRE(store_list_all(s, "page/k01", 5000, &l, &e) == TS_OK);
    CHECK_EQ_INT(l.n, 10); /* k01000..k01009 */
    CHECK_EQ_INT(l.v[0].info.size, strlen("page/k01000"));
    CHECK(l.v[0].info.last_modified > ts_now() - 600);
    store_listing_free(&l);
    CHECK_ERR(store_list_all(s, "page/", 1005, &l, &e), TS_ETOOBIG);
    /* a callback that stops early stops the listing */
    k->n = 0;
    REQUIRE(store_list(s, "page/", stop_at_3, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, 3);
    /* deletes from several threads (a few: the suite's server is thrown away) */
    for (int t = 0; t < T; t++) {
        m[t] = (many){.s = s, .from = N - 40 + t * 10, .to = N - 30 + t * 10, .del = true};
        pthread_create(&th[t], NULL, many_worker, &m[t]);
    }
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    k->n = 0;
    REQUIRE(store_list(s, "", collect, k, &e) == TS_OK);
    CHECK_EQ_INT(k->n, N - 40 + 1);
    free(k);
    store_close(s);
}

TEST(s3_head_delete_missing_and_metadata) {
    NEED_S3(v);
    store *s;
    ts_err e = {0};
    REQUIRE(s3_open(&v, "meta", NULL, &s, &e) == TS_OK);
    store_info info;
    CHECK_ERR(store_head(s, "missing/key", &info, &e), TS_ENOTFOUND);
    CHECK_MSG(strstr(e.msg, "HTTP 404") && strstr(e.msg, "missing/key"), "message: %s", e.msg);
    uint8_t *got;
    size_t len;
    CHECK_ERR(store_get(s, "missing/key", 10, &got, &len, &e), TS_ENOTFOUND);
    CHECK_MSG(strstr(e.msg, "NoSuchKey") && strstr(e.msg, "missing/key"), "message: %s", e.msg);
    CHECK_ERR(store_delete(s, "missing/key", &e), TS_OK);
    double before = ts_now();
    REQUIRE(store_put(s, "m", "12345", 5, &e) == TS_OK);
    REQUIRE(store_head(s, "m", &info, &e) == TS_OK);
    CHECK_EQ_INT(info.size, 5);
    CHECK_STR(info.etag, "827ccb0eea8a706c4c34a16891f84e7b"); /* MD5 of "12345" */
    CHECK_MSG(info.last_modified >= before - 2 && info.last_modified <= ts_now() + 2, "LastModified %.0f, now %.0f",
              info.last_modified, ts_now());
    store_listing l;
    REQUIRE(store_list_all(s, "", 10, &l, &e) == TS_OK);
    REQUIRE(l.n == 1);
    CHECK_STR(l.v[0].key, "m");
    CHECK_STR(l.v[0].info.etag, info.etag);
    CHECK_NEAR(l.v[0].info.last_modified, info.last_modified, 1.0);
    store_listing_free(&l);
    /* retention on S3 */
    REQUIRE(store_put(s, "gradients/3/1", "a", 1, &e) == TS_OK);
    REQUIRE(store_put(s, "gradients/30/1", "a", 1, &e) == TS_OK);
    int deleted = 0;
    REQUIRE(store_prune_windows(s, "gradients", 4, &deleted, &e) == TS_OK);
    CHECK_EQ_INT(deleted, 1);
    CHECK_ERR(store_head(s, "gradients/30/1", &info, &e), TS_OK);
    REQUIRE(store_delete(s, "m", &e) == TS_OK);
    CHECK_ERR(store_head(s, "m", &info, &e), TS_ENOTFOUND);
    CHECK_ERR(store_delete(s, "m", &e), TS_OK);
    /* unsigned payloads work too */
    store_close(s);
    store_opts o = {.unsigned_payload = true};
    REQUIRE(s3_open(&v, "meta", &o, &s, &e) == TS_OK);
    REQUIRE(store_put(s, "u", "unsigned", 8, &e) == TS_OK);
    REQUIRE(store_get(s, "u", 100, &got, &len, &e) == TS_OK);
    CHECK(len == 8 && !memcmp(got, "unsigned", 8));
    free(got);
    store_close(s);
}

TEST(s3_wrong_credentials_rejected) {
    NEED_S3(v);
    store *s;
    ts_err e = {0};
    /* wrong secret */
    store_opts o = {.secret_key = "definitely-not-the-secret", .retries = -1};
    REQUIRE(s3_open(&v, "creds", &o, &s, &e) == TS_OK);
    CHECK_ERR(store_put(s, "x", "v", 1, &e), TS_EDENIED);
    CHECK_MSG(strstr(e.msg, "HTTP 403") && strstr(e.msg, "SignatureDoesNotMatch") && strstr(e.msg, "x"),
              "message: %s", e.msg);
    CHECK(strstr(e.msg, "definitely-not") == NULL);
    store_info info;
    CHECK_ERR(store_head(s, "x", &info, &e), TS_EDENIED);
    store_close(s);
    /* unknown access key */
    store_opts o2 = {.access_key = "tessera:nobody", .retries = -1};
    REQUIRE(s3_open(&v, "creds", &o2, &s, &e) == TS_OK);
    CHECK_ERR(store_put(s, "x", "v", 1, &e), TS_EDENIED);
    CHECK_MSG(strstr(e.msg, "HTTP 403"), "message: %s", e.msg);
    store_close(s);
    /* wrong region: the signature is for another region's scope */
    char url[1024];
    snprintf(url, sizeof url, "s3://%s/t/creds?endpoint=%s&region=us-west-2", v.bucket, v.endpoint);
    store_opts o3 = {.access_key = v.access, .secret_key = v.secret, .no_env = true, .retries = -1};
    REQUIRE(store_open(&s, url, &o3, &e) == TS_OK);
    int rc = store_put(s, "x", "v", 1, &e);
    CHECK_MSG(rc == TS_EDENIED, "wrong region gave %d: %s", rc, e.msg);
    CHECK_MSG(strstr(e.msg, "HTTP 400") || strstr(e.msg, "HTTP 403"), "message: %s", e.msg);
    CHECK(strstr(e.msg, v.secret) == NULL);
    store_close(s);
    /* and the right ones work (the same request) */
    REQUIRE(s3_open(&v, "creds", NULL, &s, &e) == TS_OK);
    CHECK_ERR(store_put(s, "x", "v", 1, &e), TS_OK);
    CHECK_ERR(store_delete(s, "x", &e), TS_OK);
    store_close(s);
}

TEST(s3_commitment_opens_the_bucket) {
    NEED_S3(v);
    char url[1024];
    snprintf(url, sizeof url, "s3://%s/t/commit-%ld?endpoint=%s&region=%s", v.bucket, (long)getpid(), v.endpoint,
             v.region);
    store_commitment c = {0};
    snprintf(c.url, sizeof c.url, "%s", url);
    snprintf(c.access_key, sizeof c.access_key, "%s", v.access);
    snprintf(c.secret_key, sizeof c.secret_key, "%s", v.secret);
    char text[STORE_URL_MAX + 2 * STORE_CRED_MAX];
    ts_err e = {0};
    REQUIRE(store_commitment_format(&c, text, sizeof text, &e) == TS_OK);
    store_commitment d;
    /* an http endpoint: refused for remote peers, fine for a local subnet */
    CHECK_ERR(store_commitment_parse(text, STORE_COMMIT_REMOTE, &d, &e), TS_EDENIED);
    REQUIRE(store_commitment_parse(text, STORE_COMMIT_ANY, &d, &e) == TS_OK);
    store *s;
    REQUIRE(store_open_commitment(&s, &d, NULL, &e) == TS_OK);
    REQUIRE(store_put(s, "peers/1", "list", 4, &e) == TS_OK);
    uint8_t *got;
    size_t len;
    REQUIRE(store_get(s, "peers/1", 10, &got, &len, &e) == TS_OK);
    CHECK(len == 4 && !memcmp(got, "list", 4));
    free(got);
    store_delete(s, "peers/1", &e);
    store_close(s);
}

/* --------------------------------------------------------- fake server */

typedef struct fake {
    int port, pid;
    char log[600];
} fake;

static bool fake_start(fake *f, const char *mode) {
    snprintf(f->log, sizeof f->log, "%s/fake.log", th_tmpdir());
    char cmd[1200], *out = NULL;
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/servers/fake_s3.py '%s' '%s' --lifetime 60", repo(), mode,
             f->log);
    int rc = th_run(cmd, &out);
    bool ok = rc == 0 && out && sscanf(out, "%d %d", &f->port, &f->pid) == 2;
    free(out);
    return ok;
}

static void fake_stop(fake *f) {
    if (f->pid > 0) kill(f->pid, SIGKILL);
}

static int fake_count(fake *f, const char *what) {
    uint8_t *buf;
    size_t len;
    if (ts_read_file(f->log, 1 << 20, &buf, &len, NULL)) return 0;
    int n = 0;
    for (char *p = (char *)buf; (p = strstr(p, what)); p++) n++;
    free(buf);
    return n;
}

static int fake_open(fake *f, const store_opts *o, store **s, ts_err *e) {
    char url[256];
    snprintf(url, sizeof url, "s3://fake-bucket/p?endpoint=http://127.0.0.1:%d&region=auto", f->port);
    store_opts oo = o ? *o : (store_opts){0};
    oo.access_key = "AK";
    oo.secret_key = "SK";
    oo.no_env = true;
    if (!oo.backoff_s) oo.backoff_s = 0.05;
    return store_open(s, url, &oo, e);
}

#define NEED_FAKE(f, mode)                                                                                   \
    fake f = {0};                                                                                            \
    if (!th_have_python("http.server")) SKIP("/usr/bin/python3 is missing");                               \
    REQUIRE(fake_start(&f, mode))

TEST(fault_503_twice_then_success) {
    NEED_FAKE(f, "flaky:2:503");
    store *s;
    ts_err e = {0};
    store_opts o = {.retries = 2};
    REQUIRE(fake_open(&f, &o, &s, &e) == TS_OK);
    uint8_t *got;
    size_t len;
    int rc = store_get(s, "obj", 100, &got, &len, &e);
    CHECK_MSG(rc == TS_OK, "get after two 503s: %s", e.msg);
    if (!rc) {
        CHECK(len == strlen("hello from the fake server\n"));
        free(got);
    }
    CHECK_EQ_INT(fake_count(&f, "GET "), 3);
    store_close(s);
    fake_stop(&f);
}

TEST(fault_retries_exhausted_names_the_status) {
    NEED_FAKE(f, "flaky:2:503");
    store *s;
    ts_err e = {0};
    store_opts o = {.retries = 1};
    REQUIRE(fake_open(&f, &o, &s, &e) == TS_OK);
    CHECK_ERR(store_put(s, "obj", "v", 1, &e), TS_ENET);
    CHECK_MSG(strstr(e.msg, "HTTP 503") && strstr(e.msg, "SlowDown") && strstr(e.msg, "p/obj") &&
                  strstr(e.msg, "2 attempts"),
              "message: %s", e.msg);
    CHECK_EQ_INT(fake_count(&f, "PUT "), 2);
    store_close(s);
    fake_stop(&f);
}

TEST(fault_429_is_retried) {
    NEED_FAKE(f, "flaky:1:429");
    store *s;
    ts_err e = {0};
    REQUIRE(fake_open(&f, NULL, &s, &e) == TS_OK);
    CHECK_ERR(store_delete(s, "obj", &e), TS_OK);
    CHECK_EQ_INT(fake_count(&f, "DELETE "), 2);
    store_close(s);
    fake_stop(&f);
}

TEST(fault_4xx_is_not_retried) {
    NEED_FAKE(f, "status:403");
    store *s;
    ts_err e = {0};
    store_opts o = {.retries = 5};
    REQUIRE(fake_open(&f, &o, &s, &e) == TS_OK);
    uint8_t *got;
    size_t len;
    CHECK_ERR(store_get(s, "obj", 100, &got, &len, &e), TS_EDENIED);
    CHECK_MSG(strstr(e.msg, "HTTP 403 AccessDenied: scripted failure") && strstr(e.msg, "s3://fake-bucket/p/obj") &&
                  strstr(e.msg, "request fake-"),
              "message: %s", e.msg);
    CHECK_EQ_INT(fake_count(&f, "GET "), 1);
    store_close(s);
    fake_stop(&f);
}

TEST(fault_stalled_connection_times_out) {
    NEED_FAKE(f, "stall");
    store *s;
    ts_err e = {0};
    store_opts o = {.retries = -1, .stall_timeout_s = 1};
    REQUIRE(fake_open(&f, &o, &s, &e) == TS_OK);
    double t0 = ts_mono();
    uint8_t *got;
    size_t len;
    CHECK_ERR(store_get(s, "obj", 100, &got, &len, &e), TS_ETIMEOUT);
    double dt = ts_mono() - t0;
    CHECK_MSG(dt >= 0.9 && dt < 15, "took %.1fs", dt);
    CHECK_MSG(strstr(e.msg, "p/obj") && strstr(e.msg, "imeout"), "message: %s", e.msg);
    store_close(s);
    fake_stop(&f);
}

TEST(fault_stalled_body_times_out) {
    NEED_FAKE(f, "stall-body");
    store *s;
    ts_err e = {0};
    store_opts o = {.retries = 1, .stall_timeout_s = 1};
    REQUIRE(fake_open(&f, &o, &s, &e) == TS_OK);
    char dst[600];
    snprintf(dst, sizeof dst, "%s/out.bin", th_tmpdir());
    double t0 = ts_mono();
    CHECK_ERR(store_get_file(s, "obj", dst, 0, &e), TS_ETIMEOUT);
    CHECK(ts_mono() - t0 < 20);
    CHECK_EQ_INT(fake_count(&f, "GET "), 2); /* retried once */
    CHECK(!ts_path_exists(dst));             /* no partial file */
    store_close(s);
    fake_stop(&f);
}

TEST(fault_failed_part_aborts_the_upload) {
    NEED_FAKE(f, "partfail");
    store *s;
    ts_err e = {0};
    store_opts o = {.part_size = 5u << 20, .multipart_threshold = 6u << 20, .parallel = 1};
    REQUIRE(fake_open(&f, &o, &s, &e) == TS_OK);
    size_t n = 12u << 20;
    uint8_t *d = det_data(n, 3);
    CHECK_ERR(store_put(s, "big", d, n, &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "HTTP 400") && strstr(e.msg, "aborted"), "message: %s", e.msg);
    CHECK_EQ_INT(fake_count(&f, "DELETE /fake-bucket/p/big?uploadId=fake-upload-1"), 1);
    CHECK_EQ_INT(fake_count(&f, "partNumber=3"), 0); /* no part after the failure */
    CHECK_EQ_INT(fake_count(&f, "POST /fake-bucket/p/big?uploadId="), 0); /* never completed */
    free(d);
    store_close(s);
    fake_stop(&f);
}

TEST(fault_complete_error_inside_200_is_retried) {
    NEED_FAKE(f, "error200");
    store *s;
    ts_err e = {0};
    store_opts o = {.part_size = 5u << 20, .multipart_threshold = 6u << 20};
    REQUIRE(fake_open(&f, &o, &s, &e) == TS_OK);
    size_t n = 11u << 20;
    uint8_t *d = det_data(n, 4);
    CHECK_MSG(store_put(s, "big", d, n, &e) == TS_OK, "put: %s", e.msg);
    CHECK_EQ_INT(fake_count(&f, "POST /fake-bucket/p/big?uploadId=fake-upload-1"), 2);
    CHECK_EQ_INT(fake_count(&f, "DELETE"), 0);
    free(d);
    store_close(s);
    fake_stop(&f);
}

/* Listings from a scripted server: pagination with a token that needs
 * encoding, entities in keys, and the hostile cases. */
TEST(list_pages_from_a_scripted_server) {
    NEED_FAKE(f, "listing");
    store *s;
    ts_err e = {0};
    REQUIRE(fake_open(&f, NULL, &s, &e) == TS_OK);
    store_listing l;
    REQUIRE(store_list_all(s, "", 10, &l, &e) == TS_OK);
    REQUIRE(l.n == 3);
    CHECK_STR(l.v[0].key, "a & b");
    CHECK_STR(l.v[1].key, "c");
    CHECK_STR(l.v[2].key, "d/\u2603");
    CHECK_EQ_INT(l.v[0].info.size, 3);
    CHECK_EQ_INT(l.v[2].info.size, 7);
    CHECK_STR(l.v[0].info.etag, "e1");
    CHECK_STR(l.v[2].info.etag, "e3-2");
    CHECK_NEAR(l.v[1].info.last_modified, 1795449600.5, 1e-6);
    store_listing_free(&l);
    CHECK_EQ_INT(fake_count(&f, "GET /fake-bucket/?continuation-token=tok%2B%2F%3D1&list-type=2&max-keys=1000&prefix=p%2F"), 1);
    CHECK_EQ_INT(fake_count(&f, "GET /fake-bucket/?list-type=2&max-keys=1000&prefix=p%2F"), 1);
    store_close(s);
    fake_stop(&f);
}

TEST(list_refuses_hostile_answers) {
    const char *modes[] = {"listing-loop", "listing-bad", "garbage"};
    const char *want[] = {"did not advance", "without a valid Key or Size", "not a ListBucketResult"};
    for (int i = 0; i < 3; i++) {
        NEED_FAKE(f, modes[i]);
        store *s;
        ts_err e = {0};
        REQUIRE(fake_open(&f, NULL, &s, &e) == TS_OK);
        keylist *k = calloc(1, sizeof *k);
        CHECK_ERR(store_list(s, "", collect, k, &e), TS_EFORMAT);
        CHECK_MSG(strstr(e.msg, want[i]) != NULL, "%s: %s", modes[i], e.msg);
        free(k);
        /* a body that is not XML where XML is needed */
        if (i == 2) {
            store_opts o = {.part_size = 5u << 20, .multipart_threshold = 6u << 20};
            store *m;
            REQUIRE(fake_open(&f, &o, &m, &e) == TS_OK);
            uint8_t *big = det_data(7u << 20, 1);
            CHECK_ERR(store_put(m, "big", big, 7u << 20, &e), TS_EFORMAT);
            CHECK_MSG(strstr(e.msg, "no UploadId"), "%s", e.msg);
            free(big);
            store_close(m);
        }
        store_close(s);
        fake_stop(&f);
    }
}

/* Sequential requests on one store reuse one connection (the client port
 * the server sees stays the same). */
TEST(connections_are_reused) {
    NEED_FAKE(f, "flaky:0:503");
    store *s;
    ts_err e = {0};
    REQUIRE(fake_open(&f, NULL, &s, &e) == TS_OK);
    for (int i = 0; i < 5; i++) {
        uint8_t *got;
        size_t len;
        REQUIRE(store_get(s, "obj", 100, &got, &len, &e) == TS_OK);
        free(got);
        REQUIRE(store_put(s, "obj", "v", 1, &e) == TS_OK);
    }
    uint8_t *log;
    size_t len;
    REQUIRE(ts_read_file(f.log, 1 << 20, &log, &len, NULL) == TS_OK);
    int lines = 0, ports = 0;
    char seen[16][16];
    for (char *p = strstr((char *)log, "port="); p; p = strstr(p + 1, "port=")) {
        char port[16];
        snprintf(port, sizeof port, "%.*s", (int)strcspn(p + 5, "\n"), p + 5);
        bool dup = false;
        for (int i = 0; i < ports; i++) dup |= !strcmp(seen[i], port);
        if (!dup && ports < 16) snprintf(seen[ports++], sizeof seen[0], "%s", port);
        lines++;
    }
    CHECK_EQ_INT(lines, 10);
    CHECK_EQ_INT(ports, 1);
    free(log);
    store_close(s);
    fake_stop(&f);
}

TEST(fault_dead_server_is_a_clear_error) {
    store *s;
    ts_err e = {0};
    fake f = {.port = 1}; /* nothing listens on port 1 */
    char url[256];
    snprintf(url, sizeof url, "s3://bkt?endpoint=http://127.0.0.1:%d", f.port);
    store_opts o = {.access_key = "a", .secret_key = "b", .no_env = true, .retries = 2, .backoff_s = 0.01};
    REQUIRE(store_open(&s, url, &o, &e) == TS_OK);
    CHECK_ERR(store_put(s, "k", "v", 1, &e), TS_ENET);
    CHECK_MSG(strstr(e.msg, "onnect") && strstr(e.msg, "3 attempts") && strstr(e.msg, "s3://bkt/k"), "message: %s",
              e.msg);
    store_close(s);
}

/* The real server stopped in the middle of a multipart upload: a clear error,
 * and after a restart no object (not even a partial one) is visible; the
 * orphaned upload can then be aborted. */
typedef struct stopper {
    char cmd[1200];
    int calls;
    bool stopped;
} stopper;

static void stop_on_progress(void *ud, uint64_t done, uint64_t total) {
    stopper *st = ud;
    (void)done;
    (void)total;
    if (++st->calls == 1) st->stopped = th_run(st->cmd, NULL) == 0;
}

static bool read_env_line(const char *out, const char *name, char *val, size_t cap) {
    const char *p = strstr(out, name);
    if (!p || p[strlen(name)] != '=') return false;
    p += strlen(name) + 1;
    size_t n = strcspn(p, "\n");
    if (n >= cap) return false;
    memcpy(val, p, n);
    val[n] = 0;
    return true;
}

TEST(fault_server_stopped_mid_multipart) {
    if (!th_have_python("swift.common.middleware.s3api")) SKIP("python3-swift is not installed (make deps)");
    char dir[600], cmd[1400], *out = NULL;
    snprintf(dir, sizeof dir, "%s/swift", th_tmpdir());
    snprintf(cmd, sizeof cmd, "TESSERA_S3_LIFETIME=240 TESSERA_S3_PROXY_WORKERS=1 TESSERA_S3_OBJECT_WORKERS=1 "
                              "bash %s/tests/servers/s3.sh start '%s' 2>&1", repo(), dir);
    if (th_run(cmd, &out)) {
        th_fail(__FILE__, __LINE__, "private S3 server did not start: %.300s", out ? out : "");
        free(out);
        return;
    }
    char ep[256], ak[128], sk[128], bucket[64];
    REQUIRE(read_env_line(out, "TESSERA_TEST_S3_ENDPOINT", ep, sizeof ep));
    REQUIRE(read_env_line(out, "TESSERA_TEST_S3_ACCESS_KEY", ak, sizeof ak));
    REQUIRE(read_env_line(out, "TESSERA_TEST_S3_SECRET_KEY", sk, sizeof sk));
    REQUIRE(read_env_line(out, "TESSERA_TEST_S3_BUCKET", bucket, sizeof bucket));
    free(out);
    stopper st = {0};
    snprintf(st.cmd, sizeof st.cmd, "bash %s/tests/servers/s3.sh stop '%s'", repo(), dir);
    char url[512];
    snprintf(url, sizeof url, "s3://%s/run?endpoint=%s&region=auto", bucket, ep);
    store_opts o = {.access_key = ak, .secret_key = sk, .no_env = true, .part_size = 5u << 20,
                    .multipart_threshold = 6u << 20, .parallel = 2, .retries = 1, .backoff_s = 0.05,
                    .progress = stop_on_progress, .progress_ud = &st};
    store *s;
    ts_err e = {0};
    REQUIRE(store_open(&s, url, &o, &e) == TS_OK);
    size_t n = 30u << 20; /* 6 parts */
    uint8_t *d = det_data(n, 5);
    int rc = store_put(s, "ckpt/model.safetensors", d, n, &e);
    CHECK(st.stopped);
    CHECK_MSG(rc == TS_ENET || rc == TS_ETIMEOUT, "put returned %d: %s", rc, e.msg);
    CHECK_MSG(strstr(e.msg, "run/ckpt/model.safetensors") && strstr(e.msg, "attempts") &&
                  strstr(e.msg, "aborting the multipart upload failed too"),
              "message: %s", e.msg);
    store_close(s);
    /* restart on the same state */
    snprintf(cmd, sizeof cmd, "TESSERA_S3_LIFETIME=240 TESSERA_S3_PROXY_WORKERS=1 TESSERA_S3_OBJECT_WORKERS=1 "
                              "bash %s/tests/servers/s3.sh start '%s' 2>&1", repo(), dir);
    if (th_run(cmd, &out)) {
        th_fail(__FILE__, __LINE__, "restart failed: %.300s", out ? out : "");
    } else {
        o.progress = NULL;
        REQUIRE(store_open(&s, url, &o, &e) == TS_OK);
        store_info info;
        CHECK_ERR(store_head(s, "ckpt/model.safetensors", &info, &e), TS_ENOTFOUND);
        store_listing l;
        CHECK_ERR(store_list_all(s, "", 100, &l, &e), TS_OK);
        CHECK_EQ_INT(l.n, 0);
        store_listing_free(&l);
        int aborted = 0;
        CHECK_ERR(store_abort_uploads(s, "", 0, &aborted, &e), TS_OK);
        CHECK_EQ_INT(aborted, 1);
        CHECK_ERR(store_abort_uploads(s, "", 0, &aborted, &e), TS_OK);
        CHECK_EQ_INT(aborted, 0);
        /* and the same upload now goes through */
        CHECK_ERR(store_put(s, "ckpt/model.safetensors", d, n, &e), TS_OK);
        CHECK_ERR(store_head(s, "ckpt/model.safetensors", &info, &e), TS_OK);
        CHECK_EQ_INT(info.size, n);
        store_close(s);
    }
    free(out);
    free(d);
    th_run(st.cmd, NULL);
}
