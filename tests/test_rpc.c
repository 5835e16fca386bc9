/* test_rpc.c - the JSON-RPC client (chain/rpc.h) against tests/rpc_fake.py, a
 * scripted node on loopback: good answers and error objects, every kind of
 * malformed answer, timeouts, retries on 5xx/429/dropped connections and
 * none on answers, a port nobody listens on, the size cap, keep-alive, and
 * one client shared by threads. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "chain/rpc.h"
#include "common/common.h"
#include "harness.h"

static const char *repo(void) {
    const char *r = getenv("TESSERA_REPO");
    return r && *r ? r : ".";
}

typedef struct fake {
    int port, pid;
    char url[64];
} fake;

static bool fake_start(fake *f) {
    char cmd[600], *out = NULL;
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -S %s/tests/rpc_fake.py --lifetime 30", repo());
    int rc = th_run(cmd, &out);
    bool ok = rc == 0 && out && sscanf(out, "%d %d", &f->port, &f->pid) == 2;
    free(out);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", f->port);
    return ok;
}

static void fake_stop(fake *f) {
    if (f->pid > 0) kill(f->pid, SIGKILL);
    f->pid = 0;
}

#define NEED_FAKE(f)                                                                   \
    fake f = {0};                                                                      \
    if (access("/usr/bin/python3", X_OK)) SKIP("/usr/bin/python3 is missing");        \
    REQUIRE(fake_start(&f))

/* Fast retries so the fault tests stay quick. */
static rpc_client *open_fast(const fake *f, int retries, double timeout_s) {
    rpc_opts o = {.timeout_s = timeout_s, .retries = retries, .backoff_s = 0.01, .backoff_max_s = 0.05};
    rpc_client *c = NULL;
    ts_err e = {0};
    if (rpc_open(f->url, &o, &c, &e)) th_fail(__FILE__, __LINE__, "rpc_open: %s", e.msg);
    return c;
}

/* How many requests the fake saw for a method. */
static int fake_count(const fake *f, const char *method) {
    rpc_client *c = open_fast(f, -1, 5);
    cJSON *r = NULL;
    int n = -1;
    if (c && rpc_call(c, "count", NULL, &r, NULL) == TS_OK) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, method);
        n = cJSON_IsNumber(v) ? v->valueint : 0;
    }
    cJSON_Delete(r);
    rpc_close(c);
    return n;
}

static bool printable(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) return false;
    return true;
}

/* ------------------------------------------------------------------ URLs */

TEST(rpc_url_schemes) {
    struct {
        const char *in, *url, *host;
    } ok[] = {
        {"ws://127.0.0.1:9944", "http://127.0.0.1:9944", "127.0.0.1:9944"},
        {"wss://entrypoint-finney.opentensor.ai:443", "https://entrypoint-finney.opentensor.ai:443",
         "entrypoint-finney.opentensor.ai:443"},
        {"WSS://node.example/rpc", "https://node.example/rpc", "node.example:443"},
        {"http://localhost", "http://localhost", "localhost:80"},
        {"https://user:secret@node.example:9933/x", "https://user:secret@node.example:9933/x", "node.example:9933"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        rpc_client *c = NULL;
        ts_err e = {0};
        CHECK_MSG(rpc_open(ok[i].in, NULL, &c, &e) == TS_OK, "%s: %s", ok[i].in, e.msg);
        if (!c) continue;
        CHECK_STR(rpc_url(c), ok[i].url);
        CHECK_STR(rpc_host(c), ok[i].host);
        rpc_close(c);
    }
    const char *bad[] = {"", "ftp://node.example", "9944", "http://", "ws://", "http://a b:1", "file:///etc/passwd",
                         "http://x\n:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rpc_client *c = (rpc_client *)1;
        ts_err e = {0};
        CHECK_MSG(rpc_open(bad[i], NULL, &c, &e) == TS_EINVAL, "'%s' accepted", bad[i]);
        CHECK(c == NULL);
        CHECK(printable(e.msg));
    }
}

/* ----------------------------------------------------------- good answers */

TEST(rpc_call_echo_and_params) {
    NEED_FAKE(f);
    rpc_client *c = open_fast(&f, 0, 5);
    REQUIRE(c);
    ts_err e = {0};
    cJSON *r = NULL;
    REQUIRE(rpc_call(c, "echo", "[\"0x26aa\", null, 7]", &r, &e) == TS_OK);
    CHECK_STR(cJSON_GetObjectItem(r, "method")->valuestring, "echo");
    char *p = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "params"));
    CHECK_STR(p, "[\"0x26aa\",null,7]");
    free(p);
    cJSON_Delete(r);

    /* NULL params: []; by-name params; params from a cJSON */
    REQUIRE(rpc_call(c, "echo", NULL, &r, &e) == TS_OK);
    p = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "params"));
    CHECK_STR(p, "[]");
    free(p);
    cJSON_Delete(r);
    REQUIRE(rpc_call(c, "echo", "{\"key\": \"0x00\"}", &r, &e) == TS_OK);
    CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "params"), "key")->valuestring, "0x00");
    cJSON_Delete(r);
    cJSON *params = cJSON_CreateArray();
    cJSON_AddItemToArray(params, cJSON_CreateString("NeuronInfoRuntimeApi_get_neurons_lite"));
    cJSON_AddItemToArray(params, cJSON_CreateString("0x0100"));
    REQUIRE(rpc_call_json(c, "echo", params, &r, &e) == TS_OK);
    CHECK_STR(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "params"), 1)->valuestring, "0x0100");
    cJSON_Delete(r);
    cJSON_Delete(params);

    /* a null result is a cJSON null, not a NULL pointer */
    REQUIRE(rpc_call(c, "null", "[]", &r, &e) == TS_OK);
    CHECK(r && cJSON_IsNull(r));
    cJSON_Delete(r);

    /* refused before anything is sent */
    rpc_stats before, after;
    rpc_get_stats(c, &before);
    CHECK_ERR(rpc_call(c, "echo", "not json", &r, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "echo") && strstr(e.msg, "params"));
    CHECK_ERR(rpc_call(c, "echo", "5", &r, &e), TS_EINVAL);
    CHECK_ERR(rpc_call(c, "echo", "[1,", &r, &e), TS_EINVAL);
    CHECK_ERR(rpc_call(c, "echo", "[1] [2]", &r, &e), TS_EINVAL);
    CHECK_ERR(rpc_call(c, "bad name\"", "[]", &r, &e), TS_EINVAL);
    CHECK_ERR(rpc_call(c, "", "[]", &r, &e), TS_EINVAL);
    cJSON *num = cJSON_CreateNumber(3);
    CHECK_ERR(rpc_call_json(c, "echo", num, &r, &e), TS_EINVAL);
    cJSON_Delete(num);
    CHECK(r == NULL);
    rpc_get_stats(c, &after);
    CHECK_EQ_INT(after.attempts, before.attempts);
    rpc_close(c);
    fake_stop(&f);
}

TEST(rpc_ws_url_reaches_http) {
    NEED_FAKE(f);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d", f.port);
    rpc_client *c = NULL;
    ts_err e = {0};
    REQUIRE(rpc_open(url, NULL, &c, &e) == TS_OK);
    cJSON *r = NULL;
    CHECK_MSG(rpc_call(c, "echo", "[]", &r, &e) == TS_OK, "%s", e.msg);
    cJSON_Delete(r);
    rpc_close(c);
    fake_stop(&f);
}

TEST(rpc_call_hex_results) {
    NEED_FAKE(f);
    rpc_client *c = open_fast(&f, 0, 5);
    REQUIRE(c);
    ts_err e = {0};
    uint8_t *b = NULL;
    size_t n = 99;
    REQUIRE(rpc_call_hex(c, "hex", "[\"0x00\"]", &b, &n, &e) == TS_OK);
    CHECK(n == 3 && b[0] == 1 && b[1] == 2 && b[2] == 0xff);
    free(b);
    REQUIRE(rpc_call_hex(c, "hex_empty", NULL, &b, &n, &e) == TS_OK);
    CHECK(n == 0 && b != NULL);
    free(b);
    CHECK_ERR(rpc_call_hex(c, "null", NULL, &b, &n, &e), TS_ENOTFOUND);
    CHECK(b == NULL && n == 0 && strstr(e.msg, "null") != NULL);
    CHECK_ERR(rpc_call_hex(c, "hex_odd", NULL, &b, &n, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "hex_odd") != NULL);
    CHECK_ERR(rpc_call_hex(c, "hex_bad", NULL, &b, &n, &e), TS_EFORMAT);
    CHECK_ERR(rpc_call_hex(c, "hex_num", NULL, &b, &n, &e), TS_EFORMAT);
    CHECK(b == NULL);
    /* an error object passes through */
    CHECK_ERR(rpc_call_hex(c, "fail", NULL, &b, &n, &e), TS_EUNSUPPORTED);

    /* the helpers round-trip */
    uint8_t raw[5] = {0, 0x7f, 0x80, 0xab, 0xff};
    char *h = rpc_hex(raw, 5);
    CHECK_STR(h, "0x007f80abff");
    CHECK(rpc_unhex(h, &b, &n, &e) == TS_OK && n == 5 && !memcmp(b, raw, 5));
    free(b);
    free(h);
    CHECK_ERR(rpc_unhex("007f", &b, &n, &e), TS_EFORMAT);
    rpc_close(c);
    fake_stop(&f);
}

/* --------------------------------------------------------- error objects */

TEST(rpc_error_objects_are_answers) {
    NEED_FAKE(f);
    rpc_client *c = open_fast(&f, 3, 5);
    REQUIRE(c);
    ts_err e = {0};
    cJSON *r = NULL;
    long code = 0;
    char want[200];

    CHECK_ERR(rpc_call_ex(c, "fail", "[]", &r, &code, &e), TS_EUNSUPPORTED);
    snprintf(want, sizeof want, "fail (127.0.0.1:%d): -32601 Method not found (no such thing)", f.port);
    CHECK_STR(e.msg, want);
    CHECK_EQ_INT(code, -32601);
    CHECK(r == NULL);

    CHECK_ERR(rpc_call_ex(c, "fail_tx", "[\"0x00\"]", &r, &code, &e), TS_EDENIED);
    CHECK_EQ_INT(code, 1010);
    CHECK(strstr(e.msg, "fail_tx (127.0.0.1:") && strstr(e.msg, "1010 Invalid Transaction (Inability to pay"));

    CHECK_ERR(rpc_call_ex(c, "fail_nodata", NULL, &r, &code, &e), TS_ESTATE);
    CHECK_EQ_INT(code, -32000);
    CHECK(printable(e.msg));
    CHECK(strstr(e.msg, "-32000 Server error") && !strstr(e.msg, "("  "null"));

    CHECK_ERR(rpc_call_ex(c, "fail_objdata", NULL, &r, &code, &e), TS_ESTATE);
    CHECK(strstr(e.msg, "4003 Client error ({\"why\":\"Execution failed\"})") != NULL);

    CHECK_ERR(rpc_call_ex(c, "fail_nullid", NULL, &r, &code, &e), TS_EINVAL);
    CHECK_EQ_INT(code, -32700);

    /* chopsticks leaves the code out */
    CHECK_ERR(rpc_call_ex(c, "cs_notfound", NULL, &r, &code, &e), TS_EUNSUPPORTED);
    CHECK_EQ_INT(code, 0);
    snprintf(want, sizeof want, "cs_notfound (127.0.0.1:%d): Method not found: cs_notfound", f.port);
    CHECK_STR(e.msg, want);
    CHECK_ERR(rpc_call_ex(c, "cs_stale", NULL, &r, &code, &e), TS_EDENIED);
    CHECK(strstr(e.msg, "{\"invalid\":{\"stale\":null}}") != NULL);
    CHECK_ERR(rpc_call_ex(c, "cs_other", NULL, &r, &code, &e), TS_ESTATE);
    CHECK(strstr(e.msg, "Function to start was not found.") != NULL);
    CHECK_ERR(rpc_call_ex(c, "cs_nomessage", NULL, &r, &code, &e), TS_EFORMAT);

    /* an HTTP 500 that carries an error object is an answer too */
    CHECK_ERR(rpc_call_ex(c, "err500", NULL, &r, &code, &e), TS_ESTATE);
    CHECK_EQ_INT(code, -32603);

    rpc_stats st;
    rpc_get_stats(c, &st);
    CHECK_EQ_INT(st.retries, 0);
    CHECK_EQ_INT(st.attempts, st.calls);
    CHECK_EQ_INT(fake_count(&f, "err500"), 1);
    rpc_close(c);
    fake_stop(&f);
}

/* ------------------------------------------------------ malformed answers */

TEST(rpc_malformed_answers) {
    NEED_FAKE(f);
    rpc_client *c = open_fast(&f, 3, 5);
    REQUIRE(c);
    const char *bad[] = {"error_bad", "wrong_id", "no_id",  "string_id", "bad_version", "both", "neither",
                         "garbage",   "html",     "empty",  "array",     "trailing",    "deep"};
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%d", f.port);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ts_err e = {0};
        cJSON *r = (cJSON *)1;
        int rc = rpc_call(c, bad[i], "[]", &r, &e);
        CHECK_MSG(rc == TS_EFORMAT, "%s: rc %d (%s)", bad[i], rc, e.msg);
        CHECK(r == NULL);
        CHECK_MSG(strstr(e.msg, bad[i]) && strstr(e.msg, host), "%s: message '%s'", bad[i], e.msg);
        CHECK(printable(e.msg));
    }
    ts_err e = {0};
    cJSON *r = NULL;
    CHECK_ERR(rpc_call(c, "html", NULL, &r, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "Welcome to nginx") != NULL);
    CHECK_ERR(rpc_call(c, "wrong_id", NULL, &r, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "id") != NULL);
    /* nothing was retried, and the client still works */
    rpc_stats st;
    rpc_get_stats(c, &st);
    CHECK_EQ_INT(st.retries, 0);
    REQUIRE(rpc_call(c, "echo", NULL, &r, &e) == TS_OK);
    cJSON_Delete(r);
    rpc_close(c);
    fake_stop(&f);
}

/* -------------------------------------------------------- network faults */

TEST(rpc_timeout) {
    NEED_FAKE(f);
    rpc_client *c = open_fast(&f, -1, 0.3);
    REQUIRE(c);
    ts_err e = {0};
    cJSON *r = NULL;
    double t0 = ts_mono();
    CHECK_ERR(rpc_call(c, "slow", NULL, &r, &e), TS_ETIMEOUT);
    double dt = ts_mono() - t0;
    CHECK_MSG(dt >= 0.25 && dt < 1.5, "took %.2f s", dt);
    CHECK(strstr(e.msg, "slow (127.0.0.1:") != NULL);
    rpc_close(c);

    /* timeouts are retried like other network failures */
    c = open_fast(&f, 1, 0.3);
    REQUIRE(c);
    CHECK_ERR(rpc_call(c, "slow", NULL, &r, &e), TS_ETIMEOUT);
    CHECK(strstr(e.msg, "2 attempts") != NULL);
    /* and the client recovers once the node answers */
    CHECK_MSG(rpc_call(c, "echo", NULL, &r, &e) == TS_OK, "%s", e.msg);
    cJSON_Delete(r);
    rpc_close(c);
    fake_stop(&f);
}

TEST(rpc_retries_5xx_and_429) {
    NEED_FAKE(f);
    rpc_client *c = open_fast(&f, 3, 5);
    REQUIRE(c);
    ts_err e = {0};
    cJSON *r = NULL;
    CHECK_MSG(rpc_call(c, "flaky500", "[1]", &r, &e) == TS_OK, "%s", e.msg);
    CHECK(cJSON_IsObject(r));
    cJSON_Delete(r);
    CHECK_EQ_INT(fake_count(&f, "flaky500"), 3);
    CHECK_MSG(rpc_call(c, "flaky429", NULL, &r, &e) == TS_OK, "%s", e.msg);
    cJSON_Delete(r);
    rpc_stats st;
    rpc_get_stats(c, &st);
    CHECK_EQ_INT(st.retries, 3);
    rpc_close(c);

    /* a node that keeps failing: a bounded number of attempts, then one line */
    c = open_fast(&f, 2, 5);
    REQUIRE(c);
    CHECK_ERR(rpc_call(c, "always500", NULL, &r, &e), TS_ENET);
    CHECK(strstr(e.msg, "always500 (127.0.0.1:") && strstr(e.msg, "HTTP 500") && strstr(e.msg, "3 attempts"));
    CHECK_EQ_INT(fake_count(&f, "always500"), 3);

    /* 4xx is not retried */
    CHECK_ERR(rpc_call(c, "status404", NULL, &r, &e), TS_ENET);
    CHECK(strstr(e.msg, "HTTP 404") != NULL);
    CHECK_EQ_INT(fake_count(&f, "status404"), 1);
    CHECK_ERR(rpc_call(c, "status403", NULL, &r, &e), TS_EDENIED);
    rpc_close(c);
    fake_stop(&f);
}

TEST(rpc_dropped_connections) {
    NEED_FAKE(f);
    rpc_client *c = open_fast(&f, 2, 5);
    REQUIRE(c);
    ts_err e = {0};
    cJSON *r = NULL;
    CHECK_MSG(rpc_call(c, "drop_once", NULL, &r, &e) == TS_OK, "%s", e.msg);
    cJSON_Delete(r);
    CHECK_ERR(rpc_call(c, "short", NULL, &r, &e), TS_ENET);
    CHECK(strstr(e.msg, "short (127.0.0.1:") && strstr(e.msg, "3 attempts"));
    CHECK_EQ_INT(fake_count(&f, "short"), 3);
    rpc_close(c);
    fake_stop(&f);
}

TEST(rpc_connection_refused) {
    /* a port that was free a moment ago: nothing listens there */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    REQUIRE(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    REQUIRE(getsockname(s, (struct sockaddr *)&a, &al) == 0);
    close(s);
    fake f = {.port = ntohs(a.sin_port)};
    snprintf(f.url, sizeof f.url, "http://127.0.0.1:%d", f.port);
    rpc_client *c = open_fast(&f, 2, 2);
    REQUIRE(c);
    ts_err e = {0};
    cJSON *r = NULL;
    double t0 = ts_mono();
    CHECK_ERR(rpc_call(c, "system_chain", NULL, &r, &e), TS_ENET);
    CHECK(ts_mono() - t0 < 2);
    char host[32];
    snprintf(host, sizeof host, "system_chain (127.0.0.1:%d)", f.port);
    CHECK_MSG(strstr(e.msg, host) && strstr(e.msg, "3 attempts"), "%s", e.msg);
    rpc_stats st;
    rpc_get_stats(c, &st);
    CHECK_EQ_INT(st.attempts, 3);
    rpc_close(c);
}

TEST(rpc_size_cap) {
    NEED_FAKE(f);
    rpc_opts o = {.retries = 3, .backoff_s = 0.01, .max_response = 1 << 20};
    rpc_client *c = NULL;
    ts_err e = {0};
    REQUIRE(rpc_open(f.url, &o, &c, &e) == TS_OK);
    cJSON *r = NULL;
    CHECK_ERR(rpc_call(c, "huge", NULL, &r, &e), TS_ETOOBIG);
    CHECK(strstr(e.msg, "huge (127.0.0.1:") && strstr(e.msg, "1048576"));
    CHECK_ERR(rpc_call(c, "huge_chunked", NULL, &r, &e), TS_ETOOBIG);
    rpc_stats st;
    rpc_get_stats(c, &st);
    CHECK_EQ_INT(st.retries, 0);
    CHECK(st.bytes_in <= 2u << 20);
    /* the client still works afterwards */
    CHECK_MSG(rpc_call(c, "echo", NULL, &r, &e) == TS_OK, "%s", e.msg);
    cJSON_Delete(r);
    rpc_close(c);

    /* under the default cap the same answers are fine */
    REQUIRE(rpc_open(f.url, NULL, &c, &e) == TS_OK);
    uint8_t *b = NULL;
    size_t n = 0;
    CHECK_MSG(rpc_call_hex(c, "huge", NULL, &b, &n, &e) == TS_OK, "%s", e.msg);
    CHECK(n == (size_t)3 << 19 && b && b[0] == 0xab && b[n - 1] == 0xab);
    free(b);
    CHECK_MSG(rpc_call_hex(c, "huge_chunked", NULL, &b, &n, &e) == TS_OK, "%s", e.msg);
    CHECK(n == (size_t)24 * 65536);
    free(b);
    rpc_close(c);
    fake_stop(&f);
}

TEST(rpc_keepalive) {
    NEED_FAKE(f);
    rpc_client *c = open_fast(&f, 0, 5);
    REQUIRE(c);
    ts_err e = {0};
    int ports[3] = {0};
    for (int i = 0; i < 3; i++) {
        cJSON *r = NULL;
        REQUIRE(rpc_call(c, "echo", NULL, &r, &e) == TS_OK);
        ports[i] = cJSON_GetObjectItem(r, "port")->valueint;
        cJSON_Delete(r);
    }
    CHECK(ports[0] > 0 && ports[0] == ports[1] && ports[1] == ports[2]);
    rpc_close(c);
    fake_stop(&f);
}

/* -------------------------------------------------------------- threads */

typedef struct {
    rpc_client *c;
    int tid, ok;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    for (int i = 0; i < 25; i++) {
        char params[64];
        snprintf(params, sizeof params, "[%d, %d]", w->tid, i);
        cJSON *r = NULL;
        ts_err e = {0};
        if (rpc_call(w->c, "echo", params, &r, &e)) continue;
        const cJSON *p = cJSON_GetObjectItem(r, "params");
        if (cJSON_GetArrayItem(p, 0) && cJSON_GetArrayItem(p, 0)->valueint == w->tid &&
            cJSON_GetArrayItem(p, 1) && cJSON_GetArrayItem(p, 1)->valueint == i)
            w->ok++;
        cJSON_Delete(r);
    }
    return NULL;
}

TEST(rpc_shared_by_threads) {
    NEED_FAKE(f);
    rpc_client *c = open_fast(&f, 0, 5);
    REQUIRE(c);
    pthread_t t[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.c = c, .tid = i};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(w[i].ok, 25);
    rpc_stats st;
    rpc_get_stats(c, &st);
    CHECK_EQ_INT(st.calls, 100);
    rpc_close(c);
    fake_stop(&f);
}
