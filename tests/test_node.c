/* test_node.c - what the miner and validator share: signed JSON objects,
 * run parameters, the steps-behind measure, the metrics endpoint. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "node/metrics.h"
#include "node/node.h"

static ts_keypair key_of(uint8_t b) {
    uint8_t seed[32];
    memset(seed, b, sizeof seed);
    ts_keypair kp;
    ts_keypair_from_seed(&kp, seed);
    return kp;
}

static cJSON *peer_list(void) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "peers");
    cJSON_AddStringToObject(o, "run_id", "demo");
    cJSON_AddNumberToObject(o, "window", 7);
    cJSON *g = cJSON_AddArrayToObject(o, "gather");
    cJSON_AddItemToArray(g, cJSON_CreateNumber(2));
    cJSON_AddItemToArray(g, cJSON_CreateNumber(1));
    cJSON_AddItemToArray(g, cJSON_CreateNumber(3));
    cJSON_AddArrayToObject(o, "reserve");
    return o;
}

/* The canonical text is exactly the documented one (docs/FORMATS.md 11.1). */
TEST(object_canonical_text_matches_the_documented_example) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    ts_keypair kp = key_of(1);
    cJSON *o = peer_list();
    REQUIRE(node_obj_sign(o, &kp, &e) == TS_OK);
    char *text = node_obj_canonical(o, &e);
    REQUIRE(text != NULL);
    char pk[65], want[512];
    ts_hex(pk, kp.pk, 32);
    snprintf(want, sizeof want,
             "tessera-object-v1\ngather=2,1,3\nkind=peers\nreserve=\nrun_id=demo\nscheme=sr25519\nsigner=%s\nwindow=7\n",
             pk);
    CHECK_STR(text, want);
    /* the scheme member is written, and signed */
    CHECK_STR(cJSON_GetObjectItem(o, "scheme")->valuestring, TS_SIG_SCHEME_NAME);
    /* the signature is ts_sign over that text under the object tag */
    const char *sighex = cJSON_GetObjectItem(o, "signature")->valuestring;
    uint8_t sig[64];
    REQUIRE(ts_unhex(sig, 64, sighex) == TS_OK);
    CHECK_EQ_INT(ts_verify(kp.pk, NODE_OBJ_TAG, text, strlen(text), sig, &e), TS_OK);
    free(text);
    cJSON_Delete(o);
}

TEST(object_round_trip_and_every_tampering_refused) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    ts_keypair kp = key_of(1), other = key_of(2);
    cJSON *o = peer_list();
    REQUIRE(node_obj_sign(o, &kp, &e) == TS_OK);
    char *json = cJSON_Print(o);
    size_t n = strlen(json);
    cJSON *back;
    REQUIRE(node_obj_parse((uint8_t *)json, n, "peers", "demo", kp.pk, &back, &e) == TS_OK);
    cJSON_Delete(back);
    /* re-encoding the JSON (order, spacing) keeps the signature valid */
    char *compact = cJSON_PrintUnformatted(o);
    CHECK_EQ_INT(node_obj_parse((uint8_t *)compact, strlen(compact), "peers", "demo", kp.pk, &back, &e), TS_OK);
    cJSON_Delete(back);
    free(compact);
    /* wrong key, wrong kind, wrong run */
    CHECK_EQ_INT(node_obj_parse((uint8_t *)json, n, "peers", "demo", other.pk, &back, &e), TS_ESIG);
    CHECK_EQ_INT(node_obj_parse((uint8_t *)json, n, "sync", "demo", kp.pk, &back, &e), TS_EFORMAT);
    CHECK_EQ_INT(node_obj_parse((uint8_t *)json, n, "peers", "other-run", kp.pk, &back, &e), TS_EDENIED);
    /* a changed member: window, a uid, an added member */
    const char *edits[][2] = {{"\"window\":\t7", "\"window\":\t8"}, {"2, 1, 3", "2, 1, 4"}, {"\"reserve\":\t[]", "\"reserve\":\t[9]"}};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *p = strstr(json, edits[i][0]);
        if (!p) {
            /* cJSON's layout of arrays: find the array form instead */
            th_fail(__FILE__, __LINE__, "edit %zu: '%s' not found in %s", i, edits[i][0], json);
            continue;
        }
        size_t off = (size_t)(p - json);
        char *t = malloc(n + 16);
        memcpy(t, json, off);
        strcpy(t + off, edits[i][1]);
        strcat(t, json + off + strlen(edits[i][0]));
        CHECK_MSG(node_obj_parse((uint8_t *)t, strlen(t), "peers", "demo", kp.pk, &back, &e) == TS_ESIG,
                  "edit %zu accepted", i);
        free(t);
    }
    /* floats are refused in signed members */
    cJSON_AddNumberToObject(o, "ratio", 0.5);
    CHECK_EQ_INT(node_obj_sign(o, &kp, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "ratio") != NULL);
    /* garbage and oversize */
    CHECK_EQ_INT(node_obj_parse((const uint8_t *)"not json", 8, "peers", "demo", kp.pk, &back, &e), TS_EFORMAT);
    free(json);
    cJSON_Delete(o);
}

/* Signs obj as node_obj_sign does, but with whatever "scheme" member it has
 * (or none): how an object of another scheme, or of an earlier Tessera
 * that wrote none, would look with a valid signature over it. */
static char *sign_as_is(cJSON *o, const ts_keypair *kp) {
    char pk[65];
    ts_hex(pk, kp->pk, 32);
    cJSON_DeleteItemFromObject(o, "signature");
    cJSON_DeleteItemFromObject(o, "signer");
    cJSON_AddStringToObject(o, "signer", pk);
    ts_err e = {0};
    char *text = node_obj_canonical(o, &e);
    if (!text) return NULL;
    uint8_t sig[64];
    char hex[129];
    if (ts_sign(kp, NODE_OBJ_TAG, text, strlen(text), sig, &e)) {
        free(text);
        return NULL;
    }
    free(text);
    ts_hex(hex, sig, 64);
    cJSON_AddStringToObject(o, "signature", hex);
    return cJSON_Print(o);
}

/* The "scheme" member (docs/FORMATS.md 11.1): missing or other than
 * "sr25519" is refused with a message saying so, before the signature is
 * verified; it is part of the signed text. */
TEST(object_of_another_signature_scheme_is_refused) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    ts_keypair kp = key_of(1);
    cJSON *back = NULL;
    /* none: an object of an earlier Tessera (Ed25519), validly signed */
    cJSON *o = peer_list();
    char *t = sign_as_is(o, &kp);
    REQUIRE(t != NULL);
    CHECK(cJSON_GetObjectItem(o, "scheme") == NULL);
    CHECK_EQ_INT(node_obj_parse((uint8_t *)t, strlen(t), "peers", "demo", kp.pk, &back, &e), TS_EFORMAT);
    CHECK(back == NULL);
    CHECK_MSG(strstr(e.msg, "scheme") && strstr(e.msg, "earlier Tessera") && strstr(e.msg, "Ed25519"), "message: %s",
              e.msg);
    free(t);
    /* "ed25519", another name, not a string: refused, naming what it read */
    const char *names[] = {"ed25519", "sr25519-v2", "SR25519"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        cJSON_DeleteItemFromObject(o, "scheme");
        cJSON_AddStringToObject(o, "scheme", names[i]);
        t = sign_as_is(o, &kp);
        REQUIRE(t != NULL);
        CHECK_EQ_INT(node_obj_parse((uint8_t *)t, strlen(t), "peers", "demo", kp.pk, &back, &e), TS_EFORMAT);
        CHECK_MSG(strstr(e.msg, names[i]) && strstr(e.msg, "sr25519"), "message: %s", e.msg);
        free(t);
    }
    CHECK(strstr(e.msg, "earlier Tessera") == NULL);
    cJSON_DeleteItemFromObject(o, "scheme");
    cJSON_AddNumberToObject(o, "scheme", 1);
    t = sign_as_is(o, &kp);
    REQUIRE(t != NULL);
    CHECK_EQ_INT(node_obj_parse((uint8_t *)t, strlen(t), "peers", "demo", kp.pk, &back, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "scheme") != NULL);
    free(t);
    /* "sr25519" signed as is: what node_obj_sign makes, accepted */
    cJSON_DeleteItemFromObject(o, "scheme");
    cJSON_AddStringToObject(o, "scheme", "sr25519");
    t = sign_as_is(o, &kp);
    REQUIRE(t != NULL);
    CHECK_EQ_INT(node_obj_parse((uint8_t *)t, strlen(t), "peers", "demo", kp.pk, &back, &e), TS_OK);
    cJSON_Delete(back);
    back = NULL;
    free(t);
    cJSON_Delete(o);
    /* changed or removed after signing: refused by the scheme check, before
     * the signature is verified (which would fail as well: see below) */
    o = peer_list();
    REQUIRE(node_obj_sign(o, &kp, &e) == TS_OK);
    char *json = cJSON_Print(o);
    const char *from = "\"scheme\":\t\"sr25519\"";
    char *p = strstr(json, from);
    REQUIRE(p != NULL);
    size_t n = strlen(json), off = (size_t)(p - json);
    t = malloc(n + 16);
    memcpy(t, json, off);
    strcpy(t + off, "\"scheme\":\t\"ed25519\"");
    strcat(t, json + off + strlen(from));
    CHECK_EQ_INT(node_obj_parse((uint8_t *)t, strlen(t), "peers", "demo", kp.pk, &back, &e), TS_EFORMAT);
    CHECK_MSG(strstr(e.msg, "ed25519") != NULL, "message: %s", e.msg);
    free(t);
    cJSON_DeleteItemFromObject(o, "scheme");
    t = cJSON_Print(o);
    CHECK_EQ_INT(node_obj_parse((uint8_t *)t, strlen(t), "peers", "demo", kp.pk, &back, &e), TS_EFORMAT);
    CHECK_MSG(strstr(e.msg, "no \"scheme\"") != NULL, "message: %s", e.msg);
    free(t);
    /* the signature covers it: the canonical text without it does not verify */
    char *text = node_obj_canonical(o, &e);
    REQUIRE(text != NULL);
    uint8_t sig[64];
    REQUIRE(ts_unhex(sig, 64, cJSON_GetObjectItem(o, "signature")->valuestring) == TS_OK);
    CHECK(ts_verify(kp.pk, NODE_OBJ_TAG, text, strlen(text), sig, NULL) != TS_OK);
    free(text);
    free(json);
    cJSON_Delete(o);
}

static const char *PARAMS =
    "{\"model\": {\"preset\": \"tiny\"}, \"seq_len\": 64, \"batch_size\": 4, \"inner_steps\": 8,"
    " \"optimizer\": {\"lr\": 0.003, \"warmup_steps\": 5}, \"codec\": {\"k\": 32},"
    " \"upload_grace_s\": 3, \"gauntlet\": {\"peers_interval\": 1}}";

TEST(run_parameters_parse_defaults_and_errors) {
    ts_err e = {0};
    node_run r;
    cJSON *p = cJSON_Parse(PARAMS);
    REQUIRE(node_run_from_json(&r, "demo", p, &e) == TS_OK);
    cJSON_Delete(p);
    CHECK_STR(r.run_id, "demo");
    CHECK_EQ_INT(r.model.hidden_size, 64);
    CHECK_EQ_INT(r.seq_len, 64);
    CHECK_EQ_INT(node_run_pool_size(&r), 32);
    CHECK_NEAR(r.adamw.lr, 0.003, 0);
    CHECK_NEAR(r.adamw.beta2, 0.95, 0);  /* default kept */
    CHECK_EQ_INT(r.codec.k, 32);
    CHECK_EQ_INT(r.codec.bins, 4);
    CHECK_EQ_INT(r.gauntlet.peers_interval, 1);
    CHECK_EQ_INT(r.gauntlet.uids_per_window, 15);
    /* the JSON it writes parses back to the same parameters */
    char *txt = node_run_to_json(&r);
    cJSON *q = cJSON_Parse(txt);
    node_run r2;
    REQUIRE(node_run_from_json(&r2, "demo", q, &e) == TS_OK);
    cJSON_Delete(q);
    free(txt);
    CHECK(model_config_equal(&r.model, &r2.model));
    CHECK_EQ_INT(r2.inner_steps, 8);
    CHECK_NEAR(r2.upload_grace_s, 3, 0);
    CHECK_EQ_INT(r2.leader_liveness_windows, r.leader_liveness_windows);
    /* dataset hashes parse and are written back */
    cJSON *dh = cJSON_Parse("{\"data_hash\": \"956c461d9797c36bbe37be85dd07cfec15534b189841c105fa08418da4cf662e\"}");
    REQUIRE(node_run_from_json(&r2, "demo", dh, &e) == TS_OK);
    cJSON_Delete(dh);
    CHECK(r2.has_data_hash && !r2.has_val_data_hash);
    CHECK_EQ_INT(r2.data_hash[0], 0x95);
    char *t2 = node_run_to_json(&r2);
    cJSON *back = cJSON_Parse(t2);
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(back, "data_hash");
    CHECK(cJSON_IsString(dv) && !strcmp(dv->valuestring, "956c461d9797c36bbe37be85dd07cfec15534b189841c105fa08418da4cf662e"));
    CHECK(cJSON_GetObjectItemCaseSensitive(back, "val_data_hash") == NULL);
    cJSON_Delete(back);
    free(t2);
    /* the defaults pass their own check; the boundary 2 x interval + 1 is accepted */
    CHECK_EQ_INT(r.retention_windows, 24);
    CHECK_EQ_INT(r.leader_liveness_windows, 3);
    cJSON *edge = cJSON_Parse("{\"retention_windows\": 7, \"checkpoint_interval\": 3, \"leader_liveness_windows\": 0}");
    REQUIRE(node_run_from_json(&r2, "demo", edge, &e) == TS_OK);
    cJSON_Delete(edge);
    CHECK_EQ_INT(r2.leader_liveness_windows, 0);
    struct {
        const char *json, *needle;
    } bad[] = {
        {"{\"seq_lenn\": 64}", "seq_lenn"},
        {"{\"optimizer\": {\"lr\": \"fast\"}}", "optimizer.lr"},
        {"{\"seq_len\": 0}", "seq_len"},
        {"{\"model\": \"huge\"}", "model"},
        {"{\"init\": \"/x.safetensors\"}", "init_hash"},
        {"{\"gauntlet\": {\"uids_per_window\": 1000}}", "uids_per_window"},
        {"{\"gauntlet\": {\"gather_peers\": 65}}", "gather_peers"},
        {"{\"gauntlet\": {\"bogus\": 1}}", "bogus"},
        {"{\"codec\": {\"bins\": 3}}", "codec"},
        {"{\"upload_delay_s\": 10, \"upload_grace_s\": 5}", "upload_delay_s"},
        /* a node must always find a checkpoint it can replay from */
        {"{\"retention_windows\": 20, \"checkpoint_interval\": 10}", "retention_windows"},
        {"{\"retention_windows\": 6}", "2 x checkpoint_interval"},
        {"{\"leader_liveness_windows\": -1}", "leader_liveness_windows"},
        {"{\"data_hash\": \"abc\"}", "data_hash"},
        {"{\"val_data_hash\": \"zz56c461d9797c36bbe37be85dd07cfec15534b189841c105fa08418da4cf662e\"}", "val_data_hash"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *b = cJSON_Parse(bad[i].json);
        REQUIRE(b != NULL);
        int rc = node_run_from_json(&r, "demo", b, &e);
        CHECK_MSG(rc != TS_OK, "case %zu accepted", i);
        CHECK_MSG(strstr(e.msg, bad[i].needle) != NULL, "case %zu: '%s' lacks '%s'", i, e.msg, bad[i].needle);
        cJSON_Delete(b);
    }
}

TEST(steps_behind_measure) {
    static node_sync ours, prev, theirs;
    ours.n = prev.n = theirs.n = 100;
    for (int i = 0; i < 100; i++) {
        prev.values[i] = (float)i;
        ours.values[i] = (float)i + 0.5f; /* each value moved 0.5 in one step */
    }
    memset(ours.model_hash, 1, 32);
    /* the per-step change: the first window's change, then an EMA (0.2) */
    double step[100];
    bool have = false;
    node_sync_step_ema(step, &have, &ours, &prev, 0.2);
    CHECK(have && step[0] == 0.5 && step[99] == 0.5);
    /* identical model: 0 */
    theirs = ours;
    CHECK_NEAR(node_steps_behind(&theirs, &ours, step), 0, 0);
    /* nothing known of the per-step change: not measurable */
    theirs = prev;
    memset(theirs.model_hash, 2, 32);
    CHECK(isnan(node_steps_behind(&theirs, &ours, NULL)));
    /* one step behind: their values are our previous ones */
    CHECK_NEAR(node_steps_behind(&theirs, &ours, step), 1.0, 1e-9);
    /* three steps the other way */
    for (int i = 0; i < 100; i++) theirs.values[i] = ours.values[i] + 1.5f;
    CHECK_NEAR(node_steps_behind(&theirs, &ours, step), 3.0, 1e-9);
    /* the interquartile mean ignores a few wild values */
    for (int i = 0; i < 10; i++) theirs.values[i] = 1e6f;
    CHECK_NEAR(node_steps_behind(&theirs, &ours, step), 3.0, 1e-9);
    /* hand-worked: ratios 0, 1, ..., 99 (position i i/2 away, step 0.5):
     * q1 = 24.75, q3 = 74.25, the mean of 25..74 is 49.5 */
    for (int i = 0; i < 100; i++) theirs.values[i] = ours.values[i] + 0.5f * (float)i;
    CHECK_NEAR(node_steps_behind(&theirs, &ours, step), 49.5, 1e-3);
    /* per-position units: a position that moves 10 times more per step
     * counts its distance in its own steps */
    for (int i = 0; i < 100; i++) {
        step[i] = i < 50 ? 0.5 : 5.0;
        theirs.values[i] = ours.values[i] + (i < 50 ? 1.0f : 10.0f); /* two steps everywhere */
    }
    CHECK_NEAR(node_steps_behind(&theirs, &ours, step), 2.0, 1e-6);
    /* the EMA: a window that moved 1.0 after one that moved 0.5 */
    node_sync next = ours;
    for (int i = 0; i < 100; i++) next.values[i] = ours.values[i] + 1.0f;
    for (int i = 0; i < 100; i++) step[i] = 0.5;
    node_sync_step_ema(step, &have, &next, &ours, 0.2);
    CHECK_NEAR(step[7], 0.8 * 0.5 + 0.2 * 1.0, 1e-6);
    /* non-finite values, or a different count: infinitely behind */
    theirs = prev;
    memset(theirs.model_hash, 2, 32);
    theirs.values[50] = NAN;
    CHECK(isinf(node_steps_behind(&theirs, &ours, step)));
    theirs = ours;
    theirs.n = 99;
    CHECK(isinf(node_steps_behind(&theirs, &ours, step)));
    /* our model did not move (step 0) but theirs differs: far behind (the
     * step floor of 1e-9 makes it ~1e9 steps) */
    theirs = prev;
    memset(theirs.model_hash, 2, 32);
    for (int i = 0; i < 100; i++) step[i] = 0;
    CHECK(node_steps_behind(&theirs, &ours, step) > 1e8);
}

static char *http_get(int port, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return NULL;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, at = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + at, cap - at - 1)) > 0) at += (size_t)r;
    buf[at] = 0;
    close(fd);
    return buf;
}

TEST(metrics_endpoint_serves_prometheus_text) {
    ts_err e = {0};
    node_metrics *m;
    int port = 0;
    REQUIRE(node_metrics_start(0, false, &m, &port, &e) == TS_OK);
    REQUIRE(port > 0);
    node_metrics_declare(m, "tessera_window", "gauge", "current window");
    node_metrics_set(m, "tessera_window", NULL, 42);
    node_metrics_declare(m, "tessera_final_score", "gauge", "score per uid");
    node_metrics_set(m, "tessera_final_score", "uid=\"3\"", 1.5);
    node_metrics_add(m, "tessera_upload_failures_total", NULL, 1);
    node_metrics_add(m, "tessera_upload_failures_total", NULL, 2);
    char *body = http_get(port, "/metrics");
    REQUIRE(body != NULL);
    CHECK(strstr(body, "HTTP/1.1 200 OK") != NULL);
    CHECK(strstr(body, "# HELP tessera_window current window\n# TYPE tessera_window gauge\ntessera_window 42\n") != NULL);
    CHECK(strstr(body, "tessera_final_score{uid=\"3\"} 1.5\n") != NULL);
    CHECK(strstr(body, "tessera_upload_failures_total 3\n") != NULL);
    free(body);
    body = http_get(port, "/healthz");
    REQUIRE(body != NULL);
    CHECK(strstr(body, "200 OK") != NULL && strstr(body, "\r\n\r\nok\n") != NULL);
    free(body);
    body = http_get(port, "/other");
    REQUIRE(body != NULL);
    CHECK(strstr(body, "404") != NULL);
    free(body);
    node_metrics_stop(m);
    /* the port is free again */
    CHECK(http_get(port, "/metrics") == NULL);
}
