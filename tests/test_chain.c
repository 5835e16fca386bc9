/* test_chain.c - the chain interface over the local subnet: clock, genesis,
 * transactions and their verification, concurrent writers, torn lines,
 * replacement of uids, commitments, weights, epochs (Yuma consensus every
 * tempo, checked against yuma_epoch on inputs built here), and the localnet
 * command. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "chain/chain.h"
#include "chain/chain_internal.h"
#include "common/common.h"
#include "harness.h"
#include "yuma/yuma.h"

/* ---------------------------------------------------------------- helpers */

static void key(ts_keypair *kp, int i) {
    uint8_t seed[TS_SEED_BYTES];
    memset(seed, 0, sizeof seed);
    seed[0] = (uint8_t)i;
    seed[1] = (uint8_t)(i >> 8);
    seed[31] = 0x5a;
    ts_keypair_from_seed(kp, seed);
}

#define OWNER_SEED 999

typedef struct {
    double block_time;
    uint64_t bpw;
    uint32_t max_uids, max_validators;
    uint64_t immunity, rate_limit, min_vstake;
    const char *params;
    double genesis_ago;         /* genesis this many seconds ago (0: now) */
    uint64_t tempo;             /* 0: the default (360) */
} net_opts;

/* Creates a subnet under the test's tmpdir; returns its URL (static). */
static const char *mk_subnet(const char *name, const net_opts *o) {
    static char url[600];
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", th_tmpdir(), name);
    chain_genesis g;
    chain_local_genesis_defaults(&g);
    g.run_id = "test-run";
    g.netuid = 3;
    g.block_time = o && o->block_time ? o->block_time : 0.05;
    g.blocks_per_window = o && o->bpw ? o->bpw : 20;
    g.max_uids = o && o->max_uids ? o->max_uids : 64;
    g.max_validators = o && o->max_validators ? o->max_validators : 8;
    g.immunity_period = o ? o->immunity : 0;
    g.weights_rate_limit = o ? o->rate_limit : 0;
    g.min_validator_stake = o ? o->min_vstake : 0;
    g.run_params_json = o && o->params ? o->params : NULL;
    if (o && o->genesis_ago) g.genesis_time = floor((ts_now() - o->genesis_ago) * 1000.0) / 1000.0;
    if (o && o->tempo) g.tempo = o->tempo;
    ts_keypair owner;
    key(&owner, OWNER_SEED);
    memcpy(g.owner, owner.pk, TS_PK_BYTES);
    ts_err e = {0};
    if (chain_local_init(dir, &g, &e)) {
        th_fail(__FILE__, __LINE__, "chain_local_init: %s", e.msg);
        return NULL;
    }
    snprintf(url, sizeof url, "local:%s", dir);
    return url;
}

static const char *url_dir(const char *url) { return url + 6; }

static chain *open_ok(const char *url) {
    chain *c = NULL;
    ts_err e = {0};
    if (chain_open(url, &c, &e)) th_fail(__FILE__, __LINE__, "chain_open(%s): %s", url, e.msg);
    return c;
}

static uint32_t reg_ok(chain *c, int seed) {
    ts_keypair kp;
    key(&kp, seed);
    chain_registration r;
    ts_err e = {0};
    if (chain_register(c, &kp, &r, &e)) {
        th_fail(__FILE__, __LINE__, "register %d: %s", seed, e.msg);
        return UINT32_MAX;
    }
    return r.uid;
}

static int stake_tao(chain *c, int seed, int64_t tao) {
    ts_keypair owner, kp;
    key(&owner, OWNER_SEED);
    key(&kp, seed);
    ts_err e = {0};
    int rc = chain_stake(c, &owner, kp.pk, tao * (int64_t)CHAIN_RAO_PER_TAO, &e);
    if (rc) th_fail(__FILE__, __LINE__, "stake %d: %s", seed, e.msg);
    return rc;
}

static char *log_path(const char *url) { return ts_path_join(url_dir(url), "chain.log"); }

static void append_raw(const char *url, const void *bytes, size_t n) {
    char *p = log_path(url);
    int fd = open(p, O_WRONLY | O_APPEND);
    if (fd < 0 || write(fd, bytes, n) != (ssize_t)n) th_fail(__FILE__, __LINE__, "append to %s", p);
    if (fd >= 0) close(fd);
    free(p);
}

static uint64_t file_size(const char *url) {
    char *p = log_path(url);
    struct stat st;
    uint64_t n = stat(p, &st) ? 0 : (uint64_t)st.st_size;
    free(p);
    return n;
}

/* A signed line as an attacker (or a buggy client) could append it, with the
 * next sequence number and the current block. */
static char *forge(chain *c, chain_tx *tx, const ts_keypair *signer_key, size_t *len) {
    chain_stats st;
    ts_err e = {0};
    if (chain_get_stats(c, &st, &e)) th_fail(__FILE__, __LINE__, "stats: %s", e.msg);
    uint64_t b;
    chain_block(c, &b, NULL, &e);
    tx->seq = st.lines;
    tx->block = b;
    char *line = NULL;
    if (chain_local_format_tx(chain_get_params(c)->genesis_hash, tx, signer_key, &line, len, &e))
        th_fail(__FILE__, __LINE__, "format: %s", e.msg);
    return line;
}

static const char *last_rejection(chain *c, chain_rejection *r) {
    chain_rejection all[64];
    uint32_t n = chain_rejections(c, all, 64);
    if (!n) return "";
    *r = all[n - 1];
    return r->reason;
}

/* Templar's commitment layout: account id (32) + access key id (32) +
 * secret access key (64), 128 characters. */
static const char *TEMPLAR_CRED =
    "0123456789abcdef0123456789abcdef"
    "AKIAEXAMPLEKEY00AKIAEXAMPLEKEY00"
    "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEYwJalrXUtnFEMIK7MDENGbPxRfi";

/* ------------------------------------------------------------------ clock */

TEST(clock_block_and_window_arithmetic) {
    chain_params p;
    memset(&p, 0, sizeof p);
    p.genesis_time = 1700000000.0;
    p.block_time = 12;
    p.blocks_per_window = 125;
    CHECK_EQ_INT(chain_clock_block_at(&p, 1600000000.0), 0); /* before genesis */
    CHECK_EQ_INT(chain_clock_block_at(&p, NAN), 0);
    CHECK_EQ_INT(chain_clock_block_at(&p, p.genesis_time), 0);
    CHECK_EQ_INT(chain_clock_block_at(&p, p.genesis_time + 11.999), 0);
    CHECK_EQ_INT(chain_clock_block_at(&p, p.genesis_time + 12.0), 1);
    CHECK_EQ_INT(chain_clock_block_at(&p, p.genesis_time + 12 * 125), 125);
    CHECK_NEAR(chain_clock_time_of(&p, 250), p.genesis_time + 3000, 0);
    CHECK_EQ_INT(chain_window_of(&p, 124), 0);
    CHECK_EQ_INT(chain_window_of(&p, 125), 1);
    CHECK_EQ_INT(chain_window_of(&p, 249), 1);
    CHECK_EQ_INT(chain_window_of(&p, 250), 2);
    CHECK_EQ_INT(chain_window_start_block(&p, 2), 250);

    /* Fractional block times that binary floating point cannot hold exactly:
     * every block boundary must land on the block it starts, and the instant
     * just before it on the block before. */
    const double bts[] = {0.1, 0.05, 1.0 / 3.0, 0.7, 12};
    for (size_t k = 0; k < sizeof bts / sizeof *bts; k++) {
        p.genesis_time = 1712345678.123;
        p.block_time = bts[k];
        int bad = 0;
        for (uint64_t b = 0; b < 200000 && bad < 5; b += (b < 2000 ? 1 : 997)) {
            double t = chain_clock_time_of(&p, b);
            if (chain_clock_block_at(&p, t) != b) bad++, th_fail(__FILE__, __LINE__, "bt %g: block_at(T(%llu)) = %llu", bts[k], (unsigned long long)b, (unsigned long long)chain_clock_block_at(&p, t));
            if (b > 0 && chain_clock_block_at(&p, nextafter(t, 0)) != b - 1) bad++, th_fail(__FILE__, __LINE__, "bt %g: just before T(%llu) is not block %llu", bts[k], (unsigned long long)b, (unsigned long long)b - 1);
            double mid = t + bts[k] / 2;
            if (chain_clock_block_at(&p, mid) != b) bad++, th_fail(__FILE__, __LINE__, "bt %g: middle of block %llu", bts[k], (unsigned long long)b);
        }
    }
}

TEST(clock_of_an_open_chain) {
    net_opts o = {.block_time = 0.25, .bpw = 8};
    const char *url = mk_subnet("net", &o);
    REQUIRE(url);
    chain *c = open_ok(url);
    REQUIRE(c);
    const chain_params *p = chain_get_params(c);
    CHECK_NEAR(p->block_time, 0.25, 0);
    CHECK_EQ_INT(p->blocks_per_window, 8);
    CHECK_EQ_INT(p->netuid, 3);
    CHECK_STR(p->run_id, "test-run");
    ts_err e = {0};
    chain_clock ck;
    REQUIRE(chain_now(c, &ck, &e) == TS_OK);
    CHECK(ck.block_timestamp <= ck.now + 1e-6);
    CHECK(ck.now < ck.block_timestamp + 0.25 + 2.0); /* generous: the machine may be busy */
    CHECK_EQ_INT(ck.window, ck.block / 8);
    CHECK_EQ_INT(ck.window_start_block, ck.window * 8);
    CHECK_NEAR(ck.next_window_time - ck.window_start_time, 8 * 0.25, 1e-6);
    CHECK(ck.seconds_left >= 0 && ck.seconds_left <= 2.0 + 1e-6);
    double t;
    REQUIRE(chain_block_time(c, 1000, &t, &e) == TS_OK);
    CHECK_NEAR(t, p->genesis_time + 250, 1e-6);
    REQUIRE(chain_window_start_time(c, 3, &t, &e) == TS_OK);
    CHECK_NEAR(t, p->genesis_time + 24 * 0.25, 1e-6);
    /* The clock moves with the wall clock. */
    uint64_t b0, b1;
    REQUIRE(chain_block(c, &b0, NULL, &e) == TS_OK);
    usleep(600000);
    REQUIRE(chain_block(c, &b1, NULL, &e) == TS_OK);
    CHECK(b1 >= b0 + 2);
    chain_close(c);
}

/* ---------------------------------------------------------------- genesis */

TEST(genesis_init_and_validation) {
    net_opts o = {.params = "{\"model\": \"llama-tiny\", \"seq_len\": 256, \"codec\": {\"k\": 64}}"};
    const char *url = mk_subnet("net", &o);
    REQUIRE(url);
    char dir[600];
    snprintf(dir, sizeof dir, "%s", url_dir(url));
    chain *c = open_ok(url);
    REQUIRE(c);
    const cJSON *rp = chain_run_params(c);
    REQUIRE(cJSON_IsObject(rp));
    CHECK_STR(cJSON_GetObjectItem(rp, "model")->valuestring, "llama-tiny");
    CHECK_EQ_INT(cJSON_GetObjectItem(rp, "seq_len")->valueint, 256);
    CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(rp, "codec"), "k")->valueint, 64);
    ts_keypair owner;
    key(&owner, OWNER_SEED);
    CHECK(!memcmp(chain_get_params(c)->owner, owner.pk, TS_PK_BYTES));
    chain_close(c);

    /* never re-initialised */
    chain_genesis g;
    chain_local_genesis_defaults(&g);
    ts_err e = {0};
    CHECK_ERR(chain_local_init(dir, &g, &e), TS_EEXIST);
    /* bad settings are refused before anything is written */
    char d2[600];
    snprintf(d2, sizeof d2, "%s/other", th_tmpdir());
    g.run_id = "bad run id";
    CHECK_ERR(chain_local_init(d2, &g, &e), TS_EINVAL);
    g.run_id = "ok";
    g.block_time = 0;
    CHECK_ERR(chain_local_init(d2, &g, &e), TS_EINVAL);
    g.block_time = 1;
    g.max_uids = CHAIN_MAX_UIDS + 1;
    CHECK_ERR(chain_local_init(d2, &g, &e), TS_EINVAL);
    g.max_uids = 16;
    g.run_params_json = "[1, 2]";
    CHECK_ERR(chain_local_init(d2, &g, &e), TS_EINVAL);
    char *g2 = ts_path_join(d2, "genesis.json");
    CHECK(!ts_path_exists(g2));
    free(g2);

    /* a genesis with an unknown key or a wrong type is refused at open */
    char *gp = ts_path_join(dir, "genesis.json");
    uint8_t *buf;
    size_t len;
    REQUIRE(ts_read_file(gp, 1 << 20, &buf, &len, &e) == TS_OK);
    cJSON *j = cJSON_Parse((char *)buf);
    char *orig = (char *)buf; /* kept: put back at the end */
    cJSON_AddNumberToObject(j, "surprise", 1);
    char *txt = cJSON_Print(j);
    REQUIRE(ts_write_atomic(gp, txt, strlen(txt), &e) == TS_OK);
    free(txt);
    chain *bad = NULL;
    CHECK_ERR(chain_open(url, &bad, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "surprise") != NULL);
    cJSON_DeleteItemFromObject(j, "surprise");
    cJSON_ReplaceItemInObject(j, "block_time", cJSON_CreateString("fast"));
    txt = cJSON_Print(j);
    REQUIRE(ts_write_atomic(gp, txt, strlen(txt), &e) == TS_OK);
    free(txt);
    CHECK_ERR(chain_open(url, &bad, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "block_time") != NULL);
    cJSON_Delete(j);

    /* version 2 records the signature scheme its log is signed in
     * (docs/FORMATS.md 9.1); a version 1 genesis (an earlier Tessera's,
     * Ed25519 keys) or another scheme is refused, saying so */
    j = cJSON_Parse(orig);
    REQUIRE(j);
    CHECK_EQ_INT(cJSON_GetObjectItem(j, "version")->valueint, 2);
    REQUIRE(cJSON_IsString(cJSON_GetObjectItem(j, "signature_scheme")));
    CHECK_STR(cJSON_GetObjectItem(j, "signature_scheme")->valuestring, "sr25519");
    CHECK_STR(cJSON_GetObjectItem(j, "signature_scheme")->valuestring, TS_SIG_SCHEME_NAME);
    struct {
        int version;            /* 0: leave */
        const char *scheme;     /* NULL: remove the key; "#": the number 1 */
        const char *want[3];
    } cases[] = {
        {1, NULL, {"version 1", "earlier Tessera with Ed25519 keys", "tessera localnet init"}},
        {1, "sr25519", {"version 1", "Ed25519", "localnet init"}},
        {3, "sr25519", {"version 3", "not supported", NULL}},
        {0, NULL, {"signature_scheme", "missing", NULL}},
        {0, "ed25519", {"\"ed25519\"", "earlier Tessera", "localnet init"}},
        {0, "schnorr", {"\"schnorr\"", "sr25519", NULL}},
        {0, "#", {"signature_scheme", "string", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *v = cJSON_Duplicate(j, 1);
        if (cases[i].version) cJSON_ReplaceItemInObject(v, "version", cJSON_CreateNumber(cases[i].version));
        cJSON_DeleteItemFromObject(v, "signature_scheme");
        if (cases[i].scheme && !strcmp(cases[i].scheme, "#"))
            cJSON_AddNumberToObject(v, "signature_scheme", 1);
        else if (cases[i].scheme)
            cJSON_AddStringToObject(v, "signature_scheme", cases[i].scheme);
        txt = cJSON_Print(v);
        cJSON_Delete(v);
        REQUIRE(ts_write_atomic(gp, txt, strlen(txt), &e) == TS_OK);
        free(txt);
        bad = NULL;
        CHECK_MSG(chain_open(url, &bad, &e) == TS_EFORMAT, "case %zu opened", i);
        CHECK(bad == NULL);
        for (int k = 0; k < 3; k++)
            if (cases[i].want[k])
                CHECK_MSG(strstr(e.msg, cases[i].want[k]) != NULL, "case %zu: '%s' not in: %s", i, cases[i].want[k],
                          e.msg);
    }
    cJSON_Delete(j);
    /* the genesis as written opens again */
    REQUIRE(ts_write_atomic(gp, orig, len, &e) == TS_OK);
    c = open_ok(url);
    CHECK(c != NULL);
    if (c) chain_close(c);
    free(orig);
    free(gp);
}

TEST(open_errors_name_the_problem) {
    chain *c = NULL;
    ts_err e = {0};
    CHECK_ERR(chain_open("", &c, &e), TS_EINVAL);
    CHECK_ERR(chain_open("/no/scheme", &c, &e), TS_EINVAL);
    CHECK_ERR(chain_open("ftp:/x", &c, &e), TS_EINVAL);
    /* subtensor: the subnet is required, and checked before anything is sent */
    CHECK_ERR(chain_open("subtensor:wss://entrypoint-finney.opentensor.ai:443", &c, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "netuid") != NULL);
    CHECK_ERR(chain_open("subtensor:http://127.0.0.1:1?netuid=70000", &c, &e), TS_EINVAL);
    /* a dead node: a clear network error naming it, after the retries */
    CHECK_ERR(chain_open("subtensor:http://127.0.0.1:1?netuid=1", &c, &e), TS_ENET);
    CHECK(strstr(e.msg, "127.0.0.1:1") != NULL);
    char u[600];
    snprintf(u, sizeof u, "local:%s/nothing-here", th_tmpdir());
    CHECK_ERR(chain_open(u, &c, &e), TS_ENOTFOUND);
    CHECK(strstr(e.msg, "localnet init") != NULL);
    CHECK(c == NULL);
}

/* ---------------------------------------------------- commitments, basics */

TEST(commitments_round_trip_bucket_credentials) {
    const char *url = mk_subnet("net", NULL);
    REQUIRE(url);
    chain *c = open_ok(url);
    REQUIRE(c);
    REQUIRE(strlen(TEMPLAR_CRED) == 128);
    CHECK_EQ_INT(reg_ok(c, 1), 0);
    CHECK_EQ_INT(reg_ok(c, 2), 1);
    CHECK_EQ_INT(reg_ok(c, 3), 2);
    ts_keypair k1, k2, k3;
    key(&k1, 1);
    key(&k2, 2);
    key(&k3, 3);
    const char *url_cred = "s3://minio.local:9000/tessera-uid1?access_key=AKIA1&secret_key=s%2Fx%20y&region=us-east-1";
    char fileurl[700];
    snprintf(fileurl, sizeof fileurl, "file://%s/buckets/uid2", th_tmpdir());
    ts_err e = {0};
    REQUIRE(chain_commit(c, &k1, TEMPLAR_CRED, &e) == TS_OK);
    REQUIRE(chain_commit(c, &k2, url_cred, &e) == TS_OK);
    REQUIRE(chain_commit(c, &k3, fileurl, &e) == TS_OK);
    /* the longest allowed, with bytes that mean something in the log */
    char big[CHAIN_COMMIT_MAX + 2];
    for (int i = 0; i < CHAIN_COMMIT_MAX; i++) big[i] = (char)(1 + (i * 37) % 254);
    big[CHAIN_COMMIT_MAX] = 0;
    uint64_t b0;
    chain_block(c, &b0, NULL, &e);
    REQUIRE(chain_commit(c, &k3, big, &e) == TS_OK);
    big[CHAIN_COMMIT_MAX] = 'x';
    big[CHAIN_COMMIT_MAX + 1] = 0;
    CHECK_ERR(chain_commit(c, &k3, big, &e), TS_ETOOBIG);
    CHECK_ERR(chain_commit(c, &k3, "", &e), TS_EINVAL);
    big[CHAIN_COMMIT_MAX] = 0;
    chain_close(c);

    /* a fresh handle (another process, in effect) reads them back */
    c = open_ok(url);
    REQUIRE(c);
    chain_commitment *all = NULL;
    uint32_t n = 0;
    REQUIRE(chain_commitments(c, &all, &n, &e) == TS_OK);
    REQUIRE(n == 3);
    CHECK_EQ_INT(all[0].uid, 0);
    CHECK_STR(all[0].data, TEMPLAR_CRED);
    CHECK_EQ_INT(all[0].len, 128);
    CHECK(!memcmp(all[0].hotkey, k1.pk, TS_PK_BYTES));
    CHECK_STR(all[1].data, url_cred);
    CHECK_EQ_INT(all[2].len, CHAIN_COMMIT_MAX);
    CHECK(!memcmp(all[2].data, big, CHAIN_COMMIT_MAX));
    CHECK(all[2].block >= b0);
    CHECK(all[0].block <= all[2].block);
    free(all);
    chain_commitment one;
    REQUIRE(chain_commitment_of(c, 1, &one, &e) == TS_OK);
    CHECK_STR(one.data, url_cred);
    /* replacing one's own commitment */
    REQUIRE(chain_commit(c, &k3, fileurl, &e) == TS_OK);
    REQUIRE(chain_commitment_of(c, 2, &one, &e) == TS_OK);
    CHECK_STR(one.data, fileurl);
    CHECK_ERR(chain_commitment_of(c, 7, &one, &e), TS_ENOTFOUND);
    chain_stats st;
    REQUIRE(chain_get_stats(c, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.rejected, 0);
    CHECK_EQ_INT(st.accepted, 8);
    chain_close(c);
}

/* ---------------------------------------------------------------- forgery */

TEST(forged_transactions_are_rejected_with_a_reason) {
    net_opts o = {.max_validators = 1};
    const char *url = mk_subnet("net", &o);
    REQUIRE(url);
    chain *c = open_ok(url);
    REQUIRE(c);
    reg_ok(c, 1); /* uid 0: will be the validator */
    reg_ok(c, 2); /* uid 1: a miner */
    stake_tao(c, 1, 100);
    ts_keypair k1, k2, k9, owner;
    key(&k1, 1);
    key(&k2, 2);
    key(&k9, 9); /* never registered */
    key(&owner, OWNER_SEED);
    ts_err e = {0};
    REQUIRE(chain_commit(c, &k2, "honest", &e) == TS_OK);

    /* Through the API: refused before anything is written. */
    uint64_t size0 = file_size(url);
    CHECK_ERR(chain_commit(c, &k9, "x", &e), TS_EDENIED);
    CHECK(strstr(e.msg, "not registered") != NULL);
    uint32_t uids[2] = {0, 1};
    float w[2] = {1, 1};
    CHECK_ERR(chain_set_weights(c, &k2, uids, w, 2, &e), TS_EDENIED);
    CHECK(strstr(e.msg, "validator permit") != NULL);
    CHECK_ERR(chain_stake(c, &k2, k2.pk, 5, &e), TS_EDENIED);
    CHECK(strstr(e.msg, "owner") != NULL);
    CHECK_ERR(chain_stake(c, &owner, k9.pk, 5, &e), TS_EDENIED);
    CHECK_ERR(chain_register(c, &k1, NULL, &e), TS_EDENIED);
    CHECK(strstr(e.msg, "already registered") != NULL);
    CHECK_EQ_INT(file_size(url), size0);

    /* Lines appended behind the API's back: replay ignores each, says why,
     * and goes on. */
    chain_rejection r;
    chain_tx tx;
    size_t len;
    char *line;

    /* 1. wrong signature: claims to be uid 1, signed by another key */
    memset(&tx, 0, sizeof tx);
    tx.kind = CHAIN_TX_COMMIT;
    memcpy(tx.signer, k2.pk, TS_PK_BYTES);
    tx.data = (const uint8_t *)"evil";
    tx.len = 4;
    line = forge(c, &tx, &k9, &len);
    append_raw(url, line, len);
    free(line);
    chain_commitment cm;
    REQUIRE(chain_commitment_of(c, 1, &cm, &e) == TS_OK);
    CHECK_STR(cm.data, "honest");
    CHECK(strstr(last_rejection(c, &r), "signature does not verify") != NULL);

    /* 2. a well-signed commitment from an unregistered hotkey */
    memcpy(tx.signer, k9.pk, TS_PK_BYTES);
    line = forge(c, &tx, &k9, &len);
    append_raw(url, line, len);
    free(line);
    chain_commitment *all;
    uint32_t n;
    REQUIRE(chain_commitments(c, &all, &n, &e) == TS_OK);
    CHECK_EQ_INT(n, 1);
    free(all);
    CHECK(strstr(last_rejection(c, &r), "not registered") != NULL);

    /* 3. weights from a registered hotkey without a validator permit */
    chain_weight ws[2] = {{0, 65535}, {1, 100}};
    memset(&tx, 0, sizeof tx);
    tx.kind = CHAIN_TX_WEIGHTS;
    memcpy(tx.signer, k2.pk, TS_PK_BYTES);
    tx.w = ws;
    tx.nw = 2;
    line = forge(c, &tx, &k2, &len);
    append_raw(url, line, len);
    free(line);
    chain_weight_row *rows;
    REQUIRE(chain_weights(c, &rows, &n, &e) == TS_OK);
    CHECK_EQ_INT(n, 0);
    free(rows);
    CHECK(strstr(last_rejection(c, &r), "no validator permit") != NULL);

    /* 4. stake signed by a hotkey rather than the owner */
    memset(&tx, 0, sizeof tx);
    tx.kind = CHAIN_TX_STAKE;
    memcpy(tx.signer, k2.pk, TS_PK_BYTES);
    memcpy(tx.target, k2.pk, TS_PK_BYTES);
    tx.delta = 1000 * (int64_t)CHAIN_RAO_PER_TAO;
    line = forge(c, &tx, &k2, &len);
    append_raw(url, line, len);
    chain_metagraph mg;
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.neurons[1].stake, 0);
    chain_metagraph_free(&mg);
    CHECK(strstr(last_rejection(c, &r), "not by the subnet owner") != NULL);

    /* 5. a valid line copied to the end (replay of an old transaction) */
    append_raw(url, line, len);
    free(line);
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    chain_metagraph_free(&mg);
    CHECK(strstr(last_rejection(c, &r), "sequence number") != NULL);

    /* 6. garbage, a tampered field, an upper-case signature */
    append_raw(url, "hello world\n", 12);
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    chain_metagraph_free(&mg);
    CHECK(strstr(last_rejection(c, &r), "malformed") != NULL);
    memset(&tx, 0, sizeof tx);
    tx.kind = CHAIN_TX_COMMIT;
    memcpy(tx.signer, k2.pk, TS_PK_BYTES);
    tx.data = (const uint8_t *)"good";
    tx.len = 4;
    line = forge(c, &tx, &k2, &len);
    char *tampered = strdup(line);
    char *data_hex = strstr(tampered, " 676f6f64 "); /* "good" */
    REQUIRE(data_hex);
    memcpy(data_hex + 1, "626f6f64", 8);        /* "bood" */
    append_raw(url, tampered, len);
    free(tampered);
    REQUIRE(chain_commitment_of(c, 1, &cm, &e) == TS_OK);
    CHECK_STR(cm.data, "honest");
    CHECK(strstr(last_rejection(c, &r), "signature does not verify") != NULL);
    free(line);

    /* Honest traffic continues after all that. */
    REQUIRE(chain_commit(c, &k2, "still honest", &e) == TS_OK);
    REQUIRE(chain_set_weights(c, &k1, uids, w, 2, &e) == TS_OK);
    chain_stats st;
    REQUIRE(chain_get_stats(c, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.rejected, 7);
    CHECK_EQ_INT(st.accepted, 6);
    chain_close(c);

    /* A fresh replay reaches the same verdicts. */
    c = open_ok(url);
    REQUIRE(c);
    REQUIRE(chain_get_stats(c, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.rejected, 7);
    CHECK_EQ_INT(st.accepted, 6);
    chain_rejection rs[16];
    CHECK_EQ_INT(chain_rejections(c, rs, 16), 7);
    CHECK(strstr(rs[0].reason, "signature") != NULL);
    CHECK_EQ_INT(rs[0].line, 4);
    REQUIRE(chain_commitment_of(c, 1, &cm, &e) == TS_OK);
    CHECK_STR(cm.data, "still honest");
    chain_close(c);
}

TEST(transactions_bound_to_their_subnet) {
    /* A line signed for one subnet does not verify in another (the genesis
     * hash is part of what is signed). */
    const char *u1 = mk_subnet("a", NULL);
    REQUIRE(u1);
    char url1[600];
    snprintf(url1, sizeof url1, "%s", u1);
    const char *url2 = mk_subnet("b", NULL);
    REQUIRE(url2);
    chain *c1 = open_ok(url1), *c2 = open_ok(url2);
    REQUIRE(c1 && c2);
    ts_keypair k;
    key(&k, 4);
    chain_tx tx;
    memset(&tx, 0, sizeof tx);
    tx.kind = CHAIN_TX_REGISTER;
    memcpy(tx.signer, k.pk, TS_PK_BYTES);
    size_t len;
    char *line = forge(c1, &tx, &k, &len);
    append_raw(url2, line, len);
    free(line);
    chain_metagraph mg;
    ts_err e = {0};
    REQUIRE(chain_metagraph_get(c2, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.n, 0);
    chain_metagraph_free(&mg);
    chain_rejection r;
    CHECK(strstr(last_rejection(c2, &r), "signature does not verify") != NULL);
    chain_close(c1);
    chain_close(c2);
}

TEST(mangled_lines_never_crash_and_never_apply) {
    /* Every way of damaging a valid line - a flipped byte, a cut, a doubled
     * or deleted byte - gives a rejected line, never a crash and never a
     * change of state. */
    const char *u = mk_subnet("net", NULL);
    REQUIRE(u);
    char url[600];
    snprintf(url, sizeof url, "%s", u);
    chain *c = open_ok(url);
    REQUIRE(c);
    reg_ok(c, 1);
    reg_ok(c, 2);
    stake_tao(c, 1, 10);
    ts_keypair k1, k2, owner;
    key(&k1, 1);
    key(&k2, 2);
    key(&owner, OWNER_SEED);
    ts_err e = {0};
    REQUIRE(chain_commit(c, &k2, TEMPLAR_CRED, &e) == TS_OK);
    /* templates of every kind, signed for the next line number */
    chain_weight ws[2] = {{0, 65535}, {1, 4000}};
    chain_tx t[4];
    memset(t, 0, sizeof t);
    t[0].kind = CHAIN_TX_REGISTER;
    ts_keypair k3;
    key(&k3, 3);
    memcpy(t[0].signer, k3.pk, TS_PK_BYTES);
    t[1].kind = CHAIN_TX_STAKE;
    memcpy(t[1].signer, owner.pk, TS_PK_BYTES);
    memcpy(t[1].target, k2.pk, TS_PK_BYTES);
    t[1].delta = 5;
    t[2].kind = CHAIN_TX_COMMIT;
    memcpy(t[2].signer, k2.pk, TS_PK_BYTES);
    t[2].data = (const uint8_t *)"s3://bucket/x";
    t[2].len = 13;
    t[3].kind = CHAIN_TX_WEIGHTS;
    memcpy(t[3].signer, k1.pk, TS_PK_BYTES);
    t[3].w = ws;
    t[3].nw = 2;
    const ts_keypair *signers[4] = {&k3, &owner, &k2, &k1};
    chain_metagraph mg0;
    REQUIRE(chain_metagraph_get(c, &mg0, &e) == TS_OK);
    chain_stats st0;
    REQUIRE(chain_get_stats(c, &st0, &e) == TS_OK);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
#define NEXT() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
    enum { ROUNDS = 400 };
    char big[CHAIN_TX_LINE_MAX + 8];
    for (int i = 0; i < ROUNDS; i++) {
        size_t len;
        char *line = forge(c, &t[i % 4], signers[i % 4], &len);
        REQUIRE(line && len > 2);
        memcpy(big, line, len);
        free(line);
        size_t body = len - 1; /* keep the '\n' off while mangling */
        switch (NEXT() % 4) {
        case 0: { /* flip one byte (never into a newline) */
            size_t at = NEXT() % body;
            big[at] ^= (char)(1 + NEXT() % 255);
            if (big[at] == '\n') big[at] = '#';
            break;
        }
        case 1: /* cut */
            body = 1 + NEXT() % (body - 1);
            break;
        case 2: { /* delete one byte */
            size_t at = NEXT() % body;
            memmove(big + at, big + at + 1, body - at - 1);
            body--;
            break;
        }
        case 3: { /* double one byte */
            size_t at = NEXT() % body;
            memmove(big + at + 1, big + at, body - at);
            body++;
            break;
        }
        }
        big[body] = '\n';
        append_raw(url, big, body + 1);
        if (i % 50 == 49) {
            chain_stats st;
            REQUIRE(chain_get_stats(c, &st, &e) == TS_OK);
            CHECK_EQ_INT(st.rejected, i + 1);
        }
    }
#undef NEXT
    chain_stats st;
    REQUIRE(chain_get_stats(c, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.accepted, st0.accepted);
    CHECK_EQ_INT(st.rejected, ROUNDS);
    chain_metagraph mg;
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.n, mg0.n);
    for (uint32_t v = 0; v < mg.n && v < mg0.n; v++) {
        CHECK(!memcmp(mg.neurons[v].hotkey, mg0.neurons[v].hotkey, TS_PK_BYTES));
        CHECK_EQ_INT(mg.neurons[v].stake, mg0.neurons[v].stake);
    }
    chain_metagraph_free(&mg);
    chain_metagraph_free(&mg0);
    chain_commitment cm;
    REQUIRE(chain_commitment_of(c, 1, &cm, &e) == TS_OK);
    CHECK_STR(cm.data, TEMPLAR_CRED);
    chain_close(c);
}

TEST(overlong_lines_are_rejected_and_skipped) {
    const char *u = mk_subnet("net", NULL);
    REQUIRE(u);
    char url[600];
    snprintf(url, sizeof url, "%s", u);
    chain *c = open_ok(url);
    REQUIRE(c);
    reg_ok(c, 1);
    /* one line just over the limit, one longer than the reader's buffer */
    size_t n1 = CHAIN_TX_LINE_MAX + 10, n2 = (3u << 20) + 17;
    char *a = malloc(n2);
    REQUIRE(a);
    memset(a, 'a', n2);
    a[n1 - 1] = '\n';
    append_raw(url, a, n1);
    a[n1 - 1] = 'a';
    a[n2 - 1] = '\n';
    append_raw(url, a, n2);
    free(a);
    ts_err e = {0};
    chain_stats st;
    REQUIRE(chain_get_stats(c, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.lines, 3);
    CHECK_EQ_INT(st.rejected, 2);
    chain_rejection r[2];
    REQUIRE(chain_rejections(c, r, 2) == 2);
    CHECK(strstr(r[0].reason, "line of 65546 bytes") != NULL);
    CHECK(strstr(r[1].reason, "line of 3145745 bytes") != NULL);
    CHECK_EQ_INT(reg_ok(c, 2), 1); /* and the log goes on */
    chain_close(c);
    c = open_ok(url);
    REQUIRE(c);
    REQUIRE(chain_get_stats(c, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.lines, 4);
    CHECK_EQ_INT(st.accepted, 2);
    chain_close(c);
}

/* ------------------------------------------------------------ concurrency */

TEST(twenty_processes_register_and_commit_at_once) {
    net_opts o = {.max_uids = 32};
    const char *u = mk_subnet("net", &o);
    REQUIRE(u);
    char url[600];
    snprintf(url, sizeof url, "%s", u);
    enum { N = 20 };
    int go[2];
    REQUIRE(pipe(go) == 0);
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        REQUIRE(pids[i] >= 0);
        if (pids[i] == 0) {
            close(go[1]);
            chain *c = NULL;
            ts_err e = {0};
            if (chain_open(url, &c, &e)) _exit(10);
            char x;
            if (read(go[0], &x, 1) != 0) _exit(11); /* wait until the parent closes the pipe */
            ts_keypair kp;
            key(&kp, 100 + i);
            chain_registration r;
            if (chain_register(c, &kp, &r, &e)) {
                fprintf(stderr, "child %d register: %s\n", i, e.msg);
                _exit(12);
            }
            char cred[200];
            snprintf(cred, sizeof cred, "file:///buckets/participant-%02d/uid-%u", i, r.uid);
            if (chain_commit(c, &kp, cred, &e)) {
                fprintf(stderr, "child %d commit: %s\n", i, e.msg);
                _exit(13);
            }
            chain_close(c);
            _exit(0);
        }
    }
    close(go[0]);
    usleep(100000); /* let every child open its handle */
    close(go[1]);   /* go */
    for (int i = 0; i < N; i++) {
        int st;
        REQUIRE(waitpid(pids[i], &st, 0) == pids[i]);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status %d", i, st);
    }
    chain *c = open_ok(url);
    REQUIRE(c);
    ts_err e = {0};
    chain_stats st;
    REQUIRE(chain_get_stats(c, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.lines, 2 * N);
    CHECK_EQ_INT(st.accepted, 2 * N);
    CHECK_EQ_INT(st.rejected, 0);
    CHECK_EQ_INT(st.torn_bytes, 0);
    CHECK_EQ_INT(st.log_bytes, file_size(url));
    chain_metagraph mg;
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.n, N);
    chain_commitment *all;
    uint32_t n;
    REQUIRE(chain_commitments(c, &all, &n, &e) == TS_OK);
    CHECK_EQ_INT(n, N);
    int seen[N] = {0};
    for (uint32_t i = 0; i < n && i < N; i++) {
        int who = -1;
        unsigned got_uid = 9999;
        CHECK_EQ_INT(sscanf(all[i].data, "file:///buckets/participant-%d/uid-%u", &who, &got_uid), 2);
        CHECK_EQ_INT(got_uid, all[i].uid); /* each saw its own uid */
        REQUIRE(who >= 0 && who < N);
        seen[who]++;
        ts_keypair kp;
        key(&kp, 100 + who);
        CHECK(!memcmp(mg.neurons[all[i].uid].hotkey, kp.pk, TS_PK_BYTES));
        CHECK(!memcmp(all[i].hotkey, kp.pk, TS_PK_BYTES));
    }
    for (int i = 0; i < N; i++) CHECK_EQ_INT(seen[i], 1);
    free(all);
    chain_metagraph_free(&mg);
    /* Every line is whole and in sequence. */
    char *lp = log_path(url);
    uint8_t *buf;
    size_t len;
    REQUIRE(ts_read_file(lp, 1 << 20, &buf, &len, &e) == TS_OK);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
    CHECK_EQ_INT(lines, 2 * N);
    CHECK(len > 0 && buf[len - 1] == '\n');
    char *p = (char *)buf;
    for (int i = 0; i < lines; i++) {
        unsigned long long seq;
        CHECK_EQ_INT(sscanf(p, "tx1 %llu ", &seq), 1);
        CHECK_EQ_INT(seq, i);
        p = strchr(p, '\n') + 1;
    }
    free(buf);
    free(lp);
    chain_close(c);
}

/* ---------------------------------------------------------- torn records */

TEST(torn_last_line_is_tolerated_and_repaired) {
    const char *u = mk_subnet("net", NULL);
    REQUIRE(u);
    char url[600];
    snprintf(url, sizeof url, "%s", u);
    chain *w = open_ok(url);
    REQUIRE(w);
    reg_ok(w, 1);
    reg_ok(w, 2);
    ts_keypair k1, k3;
    key(&k1, 1);
    key(&k3, 3);
    ts_err e = {0};
    REQUIRE(chain_commit(w, &k1, TEMPLAR_CRED, &e) == TS_OK);
    uint64_t good = file_size(url);

    /* A writer that died half-way through its line (the bytes a crash can
     * leave: a prefix of the line, then zeros). */
    chain_tx tx;
    memset(&tx, 0, sizeof tx);
    tx.kind = CHAIN_TX_REGISTER;
    memcpy(tx.signer, k3.pk, TS_PK_BYTES);
    size_t len;
    char *line = forge(w, &tx, &k3, &len);
    append_raw(url, line, len / 2);
    append_raw(url, "\0\0\0\0", 4);
    free(line);

    chain *r = open_ok(url); /* a reader opening now */
    REQUIRE(r);
    chain_stats st;
    REQUIRE(chain_get_stats(r, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.lines, 3);
    CHECK_EQ_INT(st.rejected, 0);
    CHECK_EQ_INT(st.torn_bytes, len / 2 + 4);
    CHECK_EQ_INT(st.log_bytes, good);
    chain_metagraph mg;
    REQUIRE(chain_metagraph_get(r, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.n, 2);
    chain_metagraph_free(&mg);

    /* The next writer cuts the torn tail and appends on a clean line. */
    CHECK_EQ_INT(reg_ok(w, 4), 2);
    REQUIRE(chain_get_stats(w, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.torn_bytes, 0);
    CHECK_EQ_INT(st.rejected, 0);
    CHECK_EQ_INT(st.lines, 4);
    CHECK_EQ_INT(st.log_bytes, file_size(url));
    /* the reader that saw the torn tail follows without a full replay */
    REQUIRE(chain_metagraph_get(r, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.n, 3);
    ts_keypair k4;
    key(&k4, 4);
    CHECK(!memcmp(mg.neurons[2].hotkey, k4.pk, TS_PK_BYTES));
    chain_metagraph_free(&mg);
    REQUIRE(chain_get_stats(r, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.replays, 1);
    CHECK_EQ_INT(st.rejected, 0);
    chain_close(r);
    chain_close(w);

    /* A log that ends in a torn line is never fatal, even with nothing
     * before it. */
    const char *u2 = mk_subnet("net2", NULL);
    REQUIRE(u2);
    append_raw(u2, "tx1 0 0 regis", 13);
    chain *c = open_ok(u2);
    REQUIRE(c);
    REQUIRE(chain_get_stats(c, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.lines, 0);
    CHECK_EQ_INT(st.torn_bytes, 13);
    CHECK_EQ_INT(reg_ok(c, 1), 0);
    chain_close(c);
}

TEST(readers_follow_incrementally_and_notice_rewrites) {
    const char *u = mk_subnet("net", NULL);
    REQUIRE(u);
    char url[600];
    snprintf(url, sizeof url, "%s", u);
    chain *a = open_ok(url), *b = open_ok(url);
    REQUIRE(a && b);
    reg_ok(b, 1);
    reg_ok(b, 2);
    ts_err e = {0};
    chain_metagraph mg;
    REQUIRE(chain_metagraph_get(a, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.n, 2);
    CHECK_EQ_INT(mg.log_seq, 2);
    chain_metagraph_free(&mg);
    chain_stats st;
    REQUIRE(chain_get_stats(a, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.replays, 1);

    /* Someone rewrites history: the log now holds only a different line. */
    char *lp = log_path(url);
    chain_tx tx;
    memset(&tx, 0, sizeof tx);
    tx.kind = CHAIN_TX_REGISTER;
    ts_keypair k7;
    key(&k7, 7);
    memcpy(tx.signer, k7.pk, TS_PK_BYTES);
    char *line = NULL;
    size_t len;
    REQUIRE(chain_local_format_tx(chain_get_params(a)->genesis_hash, &tx, &k7, &line, &len, &e) == TS_OK);
    REQUIRE(truncate(lp, 0) == 0);
    append_raw(url, line, len);
    free(line);
    REQUIRE(chain_metagraph_get(a, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.n, 1);
    CHECK(!memcmp(mg.neurons[0].hotkey, k7.pk, TS_PK_BYTES));
    chain_metagraph_free(&mg);
    REQUIRE(chain_get_stats(a, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.replays, 2);
    free(lp);
    chain_close(a);
    chain_close(b);
}

/* ------------------------------------------------------------ replacement */

TEST(reregistration_replaces_the_lowest_stake_uid) {
    net_opts o = {.max_uids = 3, .max_validators = 2};
    const char *url = mk_subnet("net", &o);
    REQUIRE(url);
    chain *c = open_ok(url);
    REQUIRE(c);
    ts_keypair k[6];
    for (int i = 1; i <= 5; i++) key(&k[i], i);
    CHECK_EQ_INT(reg_ok(c, 1), 0);
    CHECK_EQ_INT(reg_ok(c, 2), 1);
    CHECK_EQ_INT(reg_ok(c, 3), 2);
    stake_tao(c, 2, 50);
    stake_tao(c, 3, 20);
    ts_err e = {0};
    REQUIRE(chain_commit(c, &k[1], "file:///buckets/one", &e) == TS_OK);
    REQUIRE(chain_commit(c, &k[2], "file:///buckets/two", &e) == TS_OK);
    uint32_t uids[3] = {0, 1, 2};
    float w[3] = {3, 1, 2};
    REQUIRE(chain_set_weights(c, &k[2], uids, w, 3, &e) == TS_OK);

    /* Full: uid 0 (no stake) goes to hotkey 4, some blocks later. */
    usleep(150000);
    chain_registration r;
    REQUIRE(chain_register(c, &k[4], &r, &e) == TS_OK);
    CHECK_EQ_INT(r.uid, 0);
    CHECK(r.replaced);
    CHECK(!memcmp(r.old_hotkey, k[1].pk, TS_PK_BYTES));
    chain_metagraph mg;
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.n, 3);
    CHECK(!memcmp(mg.neurons[0].hotkey, k[4].pk, TS_PK_BYTES));
    CHECK_EQ_INT(mg.neurons[0].stake, 0);
    CHECK_EQ_INT(mg.neurons[0].registered_block, r.block);
    CHECK_ERR(chain_uid_of(&mg, k[1].pk, NULL), TS_ENOTFOUND);
    uint32_t uid;
    CHECK_ERR(chain_uid_of(&mg, k[4].pk, &uid), TS_OK);
    CHECK_EQ_INT(uid, 0);
    chain_metagraph_free(&mg);
    /* the old holder's commitment is gone; weights aimed at uid 0 too */
    chain_commitment cm;
    CHECK_ERR(chain_commitment_of(c, 0, &cm, &e), TS_ENOTFOUND);
    REQUIRE(chain_commitment_of(c, 1, &cm, &e) == TS_OK);
    CHECK_STR(cm.data, "file:///buckets/two");
    chain_weight_row *rows;
    uint32_t n;
    REQUIRE(chain_weights(c, &rows, &n, &e) == TS_OK);
    REQUIRE(n == 1);
    CHECK_EQ_INT(rows[0].uid, 1);
    REQUIRE(rows[0].n == 2);
    CHECK_EQ_INT(rows[0].w[0].uid, 1);
    CHECK_EQ_INT(rows[0].w[1].uid, 2);
    free(rows);
    /* the old hotkey can no longer act */
    CHECK_ERR(chain_commit(c, &k[1], "x", &e), TS_EDENIED);
    CHECK(strstr(e.msg, "not registered") != NULL);

    /* A staked validator that is replaced loses stake, permit, weights. */
    ts_keypair owner;
    key(&owner, OWNER_SEED);
    REQUIRE(chain_stake(c, &owner, k[2].pk, -50 * (int64_t)CHAIN_RAO_PER_TAO, &e) == TS_OK);
    CHECK_ERR(chain_stake(c, &owner, k[3].pk, -21 * (int64_t)CHAIN_RAO_PER_TAO, &e), TS_EINVAL);
    /* now uid 0 (hotkey 4) and uid 1 (hotkey 2) have 0; the older of the two
     * registrations is uid 1 (hotkey 2, block earlier) */
    REQUIRE(chain_register(c, &k[5], &r, &e) == TS_OK);
    CHECK_EQ_INT(r.uid, 1);
    CHECK(!memcmp(r.old_hotkey, k[2].pk, TS_PK_BYTES));
    REQUIRE(chain_weights(c, &rows, &n, &e) == TS_OK);
    CHECK_EQ_INT(n, 0);
    free(rows);
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK(!mg.neurons[1].validator_permit);
    CHECK(mg.neurons[2].validator_permit);
    chain_metagraph_free(&mg);
    chain_close(c);

    /* The same history replayed by a new handle gives the same metagraph. */
    c = open_ok(url);
    REQUIRE(c);
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK(!memcmp(mg.neurons[0].hotkey, k[4].pk, TS_PK_BYTES));
    CHECK(!memcmp(mg.neurons[1].hotkey, k[5].pk, TS_PK_BYTES));
    CHECK(!memcmp(mg.neurons[2].hotkey, k[3].pk, TS_PK_BYTES));
    CHECK_EQ_INT(mg.neurons[2].stake, 20 * CHAIN_RAO_PER_TAO);
    chain_metagraph_free(&mg);
    chain_stats st;
    REQUIRE(chain_get_stats(c, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.rejected, 0);
    chain_close(c);
}

/* Appends a correctly signed line with a chosen block (blocks only have to
 * grow along the log; choosing them makes the immunity rules testable
 * without sleeping). */
static void append_at_block(chain *c, const char *url, chain_tx *tx, const ts_keypair *kp, uint64_t block) {
    chain_stats st;
    ts_err e = {0};
    if (chain_get_stats(c, &st, &e)) th_fail(__FILE__, __LINE__, "stats: %s", e.msg);
    tx->seq = st.lines;
    tx->block = block;
    memcpy(tx->signer, kp->pk, TS_PK_BYTES);
    char *line = NULL;
    size_t len;
    if (chain_local_format_tx(chain_get_params(c)->genesis_hash, tx, kp, &line, &len, &e))
        th_fail(__FILE__, __LINE__, "format: %s", e.msg);
    else append_raw(url, line, len);
    free(line);
}

TEST(immunity_protects_new_registrations) {
    net_opts o = {.max_uids = 3, .max_validators = 3, .immunity = 16};
    const char *u = mk_subnet("net", &o);
    REQUIRE(u);
    char url[600];
    snprintf(url, sizeof url, "%s", u);
    chain *c = open_ok(url);
    REQUIRE(c);
    ts_keypair k[6], owner;
    for (int i = 1; i <= 5; i++) key(&k[i], i);
    key(&owner, OWNER_SEED);
    chain_tx reg = {.kind = CHAIN_TX_REGISTER};
    append_at_block(c, url, &reg, &k[1], 0);
    append_at_block(c, url, &reg, &k[2], 0);
    chain_tx st = {.kind = CHAIN_TX_STAKE, .delta = 5 * (int64_t)CHAIN_RAO_PER_TAO};
    memcpy(st.target, k[1].pk, TS_PK_BYTES);
    append_at_block(c, url, &st, &owner, 1);
    st.delta = 10 * (int64_t)CHAIN_RAO_PER_TAO;
    memcpy(st.target, k[2].pk, TS_PK_BYTES);
    append_at_block(c, url, &st, &owner, 1);
    append_at_block(c, url, &reg, &k[3], 20); /* uid 2, immune until block 36 */
    /* Block 25: uid 2 has the least stake but is immune; of the others uid 0
     * has less stake. */
    append_at_block(c, url, &reg, &k[4], 25);
    ts_err e = {0};
    chain_metagraph mg;
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK(!memcmp(mg.neurons[0].hotkey, k[4].pk, TS_PK_BYTES));
    CHECK(!memcmp(mg.neurons[2].hotkey, k[3].pk, TS_PK_BYTES));
    CHECK_EQ_INT(mg.neurons[0].registered_block, 25);
    chain_metagraph_free(&mg);
    /* Block 30: uids 0 and 2 are immune, so uid 1 goes despite its stake. */
    append_at_block(c, url, &reg, &k[5], 30);
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK(!memcmp(mg.neurons[1].hotkey, k[5].pk, TS_PK_BYTES));
    CHECK_EQ_INT(mg.neurons[1].stake, 0);
    chain_metagraph_free(&mg);
    /* Block 31: everyone is immune: the least stake, then the oldest
     * registration (uid 2, block 20) goes. */
    append_at_block(c, url, &reg, &k[1], 31);
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK(!memcmp(mg.neurons[2].hotkey, k[1].pk, TS_PK_BYTES));
    chain_metagraph_free(&mg);
    /* A block going backwards is refused. */
    append_at_block(c, url, &reg, &k[3], 30);
    chain_stats s2;
    REQUIRE(chain_get_stats(c, &s2, &e) == TS_OK);
    CHECK_EQ_INT(s2.accepted, 8);
    CHECK_EQ_INT(s2.rejected, 1);
    chain_rejection r;
    CHECK(strstr(last_rejection(c, &r), "before block 31") != NULL);
    chain_close(c);
}

/* ---------------------------------------------------------------- weights */

TEST(weights_quantize_like_bittensor) {
    ts_err e = {0};
    float w[5] = {0.5f, 1.0f, 0.25f, 0.0f, 1e-6f};
    uint16_t q[5];
    REQUIRE(chain_weights_quantize(w, 5, q, &e) == TS_OK);
    CHECK_EQ_INT(q[0], 32768); /* 32767.5 rounds half to even */
    CHECK_EQ_INT(q[1], 65535);
    CHECK_EQ_INT(q[2], 16384); /* 16383.75 */
    CHECK_EQ_INT(q[3], 0);
    CHECK_EQ_INT(q[4], 0);     /* 0.065535 rounds to 0: dropped when set */
    float s[2] = {3, 2};
    REQUIRE(chain_weights_quantize(s, 2, q, &e) == TS_OK);
    CHECK_EQ_INT(q[0], 65535);
    CHECK_EQ_INT(q[1], 43690);
    float bad[2] = {1, -1};
    CHECK_ERR(chain_weights_quantize(bad, 2, q, &e), TS_EINVAL);
    bad[1] = NAN;
    CHECK_ERR(chain_weights_quantize(bad, 2, q, &e), TS_EINVAL);
    bad[1] = INFINITY;
    CHECK_ERR(chain_weights_quantize(bad, 2, q, &e), TS_EINVAL);
    float zero[2] = {0, 0};
    CHECK_ERR(chain_weights_quantize(zero, 2, q, &e), TS_EINVAL);
}

TEST(set_weights_round_trip_and_rules) {
    net_opts o = {.block_time = 1000, .rate_limit = 1};
    const char *url = mk_subnet("net", &o);
    REQUIRE(url);
    chain *c = open_ok(url);
    REQUIRE(c);
    for (int i = 1; i <= 4; i++) reg_ok(c, i);
    stake_tao(c, 1, 10);
    ts_keypair k1;
    key(&k1, 1);
    ts_err e = {0};
    uint32_t uids[4] = {3, 1, 2, 0};
    float w[4] = {0.2f, 0.4f, 0.0f, 1e-7f};
    CHECK_ERR(chain_set_weights(c, &k1, (uint32_t[]){1, 1}, (float[]){1, 2}, 2, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "twice") != NULL);
    CHECK_ERR(chain_set_weights(c, &k1, (uint32_t[]){1, 9}, (float[]){1, 2}, 2, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "uid 9") != NULL);
    REQUIRE(chain_set_weights(c, &k1, uids, w, 4, &e) == TS_OK);
    chain_weight_row *rows;
    uint32_t n;
    REQUIRE(chain_weights(c, &rows, &n, &e) == TS_OK);
    REQUIRE(n == 1);
    CHECK_EQ_INT(rows[0].uid, 0);
    CHECK(!memcmp(rows[0].hotkey, k1.pk, TS_PK_BYTES));
    REQUIRE(rows[0].n == 2); /* zeros left out, ascending uid */
    CHECK_EQ_INT(rows[0].w[0].uid, 1);
    CHECK_EQ_INT(rows[0].w[0].weight, 65535);
    CHECK_EQ_INT(rows[0].w[1].uid, 3);
    CHECK_EQ_INT(rows[0].w[1].weight, 32768);
    free(rows);
    /* 1000 s blocks: the next set in the same block hits the rate limit */
    CHECK_ERR(chain_set_weights(c, &k1, uids, w, 2, &e), TS_EDENIED);
    CHECK(strstr(e.msg, "rate limit") != NULL);
    chain_close(c);
}

TEST(validator_permits_and_leader) {
    net_opts o = {.max_validators = 2, .min_vstake = 1 * CHAIN_RAO_PER_TAO};
    const char *url = mk_subnet("net", &o);
    REQUIRE(url);
    chain *c = open_ok(url);
    REQUIRE(c);
    for (int i = 1; i <= 5; i++) reg_ok(c, i);
    ts_err e = {0};
    chain_metagraph mg;
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    uint32_t leader = 77;
    CHECK_ERR(chain_leader(&mg, &leader), TS_ENOTFOUND);
    chain_metagraph_free(&mg);
    stake_tao(c, 1, 5);
    stake_tao(c, 2, 10);
    stake_tao(c, 3, 10);
    ts_keypair owner, k5;
    key(&owner, OWNER_SEED);
    key(&k5, 5);
    REQUIRE(chain_stake(c, &owner, k5.pk, 1 * (int64_t)CHAIN_RAO_PER_TAO, &e) == TS_OK); /* not above the minimum */
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK(!mg.neurons[0].validator_permit); /* third by stake, only 2 permits */
    CHECK(mg.neurons[1].validator_permit);
    CHECK(mg.neurons[2].validator_permit);
    CHECK(!mg.neurons[3].validator_permit);
    CHECK(!mg.neurons[4].validator_permit);
    CHECK_ERR(chain_leader(&mg, &leader), TS_OK);
    CHECK_EQ_INT(leader, 1); /* 10 TAO tie: the lower uid */
    chain_metagraph_free(&mg);
    stake_tao(c, 1, 6); /* uid 0 now 11 TAO: it leads, uid 2 loses its permit */
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK(mg.neurons[0].validator_permit);
    CHECK(mg.neurons[1].validator_permit);
    CHECK(!mg.neurons[2].validator_permit);
    CHECK_ERR(chain_leader(&mg, &leader), TS_OK);
    CHECK_EQ_INT(leader, 0);
    CHECK_EQ_INT(mg.neurons[0].stake, 11 * CHAIN_RAO_PER_TAO);
    chain_metagraph_free(&mg);
    chain_close(c);
}

/* ------------------------------------------- the metagraph at a past block */

/* Field by field; counts the differences (and reports the first few). */
static int mg_diff(const chain_metagraph *a, const chain_metagraph *b, const char *what, uint64_t blk) {
    int bad = 0;
#define MG_FIELD(x, y, name)                                                                   \
    do {                                                                                       \
        if ((x) != (y) && bad++ < 3)                                                           \
            th_fail(__FILE__, __LINE__, "%s, block %llu: %s %llu != %llu", what,              \
                    (unsigned long long)blk, name, (unsigned long long)(x), (unsigned long long)(y)); \
    } while (0)
    MG_FIELD(a->block, b->block, "block");
    MG_FIELD(a->log_seq, b->log_seq, "log_seq");
    MG_FIELD(a->n, b->n, "n");
    MG_FIELD(a->max_uids, b->max_uids, "max_uids");
    for (uint32_t u = 0; u < a->n && u < b->n; u++) {
        const chain_neuron *x = &a->neurons[u], *y = &b->neurons[u];
        MG_FIELD(x->uid, y->uid, "uid");
        MG_FIELD(memcmp(x->hotkey, y->hotkey, TS_PK_BYTES) != 0, 0, "hotkey differs");
        MG_FIELD(x->stake, y->stake, "stake");
        MG_FIELD(x->validator_permit, y->validator_permit, "validator_permit");
        MG_FIELD(x->registered_block, y->registered_block, "registered_block");
        MG_FIELD(x->last_active, y->last_active, "last_active");
    }
#undef MG_FIELD
    return bad;
}

/* One uid of a snapshot as the test expects it. */
static void check_neuron(const chain_metagraph *mg, uint32_t u, const ts_keypair *k, uint64_t stake_tao,
                         bool permit, uint64_t reg, uint64_t active, int line) {
    if (u >= mg->n) {
        th_fail(__FILE__, line, "block %llu: uid %u missing (n %u)", (unsigned long long)mg->block, u, mg->n);
        return;
    }
    const chain_neuron *x = &mg->neurons[u];
    if (memcmp(x->hotkey, k->pk, TS_PK_BYTES))
        th_fail(__FILE__, line, "block %llu: uid %u has another hotkey", (unsigned long long)mg->block, u);
    if (x->stake != stake_tao * CHAIN_RAO_PER_TAO || x->validator_permit != permit ||
        x->registered_block != reg || x->last_active != active)
        th_fail(__FILE__, line,
                "block %llu uid %u: stake %llu permit %d reg %llu active %lld; expected %llu TAO, %d, %llu, %lld",
                (unsigned long long)mg->block, u, (unsigned long long)x->stake, x->validator_permit,
                (unsigned long long)x->registered_block, (long long)x->last_active,
                (unsigned long long)stake_tao, permit, (unsigned long long)reg, (long long)active);
}
#define NONE CHAIN_BLOCK_NONE

/* The scripted history of the metagraph_at tests, on a subnet of 3 uids and
 * 2 validator permits whose genesis lies far in the past (so every block
 * used here is final).  Line by line (block: transaction):
 *   0  10: register k1 (uid 0)        1  10: register k2 (uid 1)
 *   2  12: stake k1 +5                3  12: stake k2 +10
 *   4  15: register k3 (uid 2)        5  16: stake k3 +7 (uid 0 loses its permit)
 *   6  20: commit k3                  7  22: weights k2
 *   8  30: stake k1 +10 (uid 0: 15, takes the permit and the lead from uid 2 / uid 1)
 *   9  32: commit k1                 10  40: register k4 (full: replaces uid 2)
 *  11  45: commit k4                 12  46: weights k4 (no permit: rejected)
 *  13  50: weights k1
 * step(i) appends line i; returns its block. */
typedef struct {
    chain *c;
    const char *url;
    ts_keypair k[5], owner;
} story;

static const uint64_t STORY_BLOCKS[] = {10, 10, 12, 12, 15, 16, 20, 22, 30, 32, 40, 45, 46, 50};
#define STORY_LINES ((int)(sizeof STORY_BLOCKS / sizeof *STORY_BLOCKS))

static void story_init(story *s, chain *c, const char *url) {
    s->c = c;
    s->url = url;
    for (int i = 1; i <= 4; i++) key(&s->k[i], i);
    key(&s->owner, OWNER_SEED);
}

static uint64_t story_step(story *s, int i) {
    uint64_t b = STORY_BLOCKS[i];
    chain_tx tx;
    memset(&tx, 0, sizeof tx);
    chain_weight w;
    const ts_keypair *by = NULL;
    static const int reg_key[] = {[0] = 1, [1] = 2, [4] = 3, [10] = 4};
    switch (i) {
    case 0: case 1: case 4: case 10:
        tx.kind = CHAIN_TX_REGISTER;
        by = &s->k[reg_key[i]];
        break;
    case 2: case 3: case 5: case 8: {
        static const int who[] = {[2] = 1, [3] = 2, [5] = 3, [8] = 1};
        static const int64_t tao[] = {[2] = 5, [3] = 10, [5] = 7, [8] = 10};
        tx.kind = CHAIN_TX_STAKE;
        tx.delta = tao[i] * (int64_t)CHAIN_RAO_PER_TAO;
        memcpy(tx.target, s->k[who[i]].pk, TS_PK_BYTES);
        by = &s->owner;
        break;
    }
    case 6: case 9: case 11: {
        static const int who[] = {[6] = 3, [9] = 1, [11] = 4};
        tx.kind = CHAIN_TX_COMMIT;
        tx.data = (const uint8_t *)"file:///buckets/x";
        tx.len = 17;
        by = &s->k[who[i]];
        break;
    }
    case 7: case 12: case 13: {
        static const int who[] = {[7] = 2, [12] = 4, [13] = 1};
        static const uint32_t to[] = {[7] = 0, [12] = 1, [13] = 2};
        w = (chain_weight){to[i], 65535};
        tx.kind = CHAIN_TX_WEIGHTS;
        tx.w = &w;
        tx.nw = 1;
        by = &s->k[who[i]];
        break;
    }
    }
    append_at_block(s->c, s->url, &tx, by, b);
    return b;
}

static int at_ok(chain *c, uint64_t b, chain_metagraph *mg, int line) {
    ts_err e = {0};
    int rc = chain_metagraph_at(c, b, mg, &e);
    if (rc) th_fail(__FILE__, line, "chain_metagraph_at(%llu): %s", (unsigned long long)b, e.msg);
    return rc;
}
#define AT(c, b, mg) at_ok((c), (b), (mg), __LINE__)

TEST(metagraph_at_replays_registrations_replacements_and_stake) {
    net_opts o = {.block_time = 1, .max_uids = 3, .max_validators = 2, .genesis_ago = 5000};
    const char *u = mk_subnet("net", &o);
    REQUIRE(u);
    char url[600];
    snprintf(url, sizeof url, "%s", u);
    chain *c = open_ok(url);
    REQUIRE(c);
    story s;
    story_init(&s, c, url);
    for (int i = 0; i < STORY_LINES; i++) story_step(&s, i);
    ts_err e = {0};
    chain_stats st;
    REQUIRE(chain_get_stats(c, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.accepted, 13);
    CHECK_EQ_INT(st.rejected, 1); /* line 12: k4 has no permit */
    const ts_keypair *k = s.k;
    chain_metagraph mg;
    uint32_t leader = 77;

    /* Before block 10 nothing; the registrations of block 10 count from block 11. */
    REQUIRE(AT(c, 0, &mg) == TS_OK);
    CHECK_EQ_INT(mg.n, 0);
    CHECK_EQ_INT(mg.block, 0);
    CHECK_EQ_INT(mg.log_seq, 0);
    chain_metagraph_free(&mg);
    REQUIRE(AT(c, 10, &mg) == TS_OK);
    CHECK_EQ_INT(mg.n, 0);
    CHECK_EQ_INT(mg.max_uids, 3);
    chain_metagraph_free(&mg);
    REQUIRE(AT(c, 11, &mg) == TS_OK);
    CHECK_EQ_INT(mg.block, 11);
    CHECK_EQ_INT(mg.n, 2);
    CHECK_EQ_INT(mg.log_seq, 2);
    check_neuron(&mg, 0, &k[1], 0, false, 10, NONE, __LINE__);
    check_neuron(&mg, 1, &k[2], 0, false, 10, NONE, __LINE__);
    CHECK_ERR(chain_leader(&mg, &leader), TS_ENOTFOUND);
    chain_metagraph_free(&mg);

    /* Stake of block 12: both hold permits, uid 1 leads. */
    REQUIRE(AT(c, 12, &mg) == TS_OK);
    check_neuron(&mg, 1, &k[2], 0, false, 10, NONE, __LINE__);
    chain_metagraph_free(&mg);
    REQUIRE(AT(c, 13, &mg) == TS_OK);
    check_neuron(&mg, 0, &k[1], 5, true, 10, NONE, __LINE__);
    check_neuron(&mg, 1, &k[2], 10, true, 10, NONE, __LINE__);
    CHECK_ERR(chain_leader(&mg, &leader), TS_OK);
    CHECK_EQ_INT(leader, 1);
    chain_metagraph_free(&mg);

    /* A third registration, then its stake moves uid 0's permit to it. */
    REQUIRE(AT(c, 15, &mg) == TS_OK);
    CHECK_EQ_INT(mg.n, 2);
    chain_metagraph_free(&mg);
    REQUIRE(AT(c, 16, &mg) == TS_OK);
    CHECK_EQ_INT(mg.n, 3);
    check_neuron(&mg, 2, &k[3], 0, false, 15, NONE, __LINE__);
    check_neuron(&mg, 0, &k[1], 5, true, 10, NONE, __LINE__);
    chain_metagraph_free(&mg);
    REQUIRE(AT(c, 17, &mg) == TS_OK);
    check_neuron(&mg, 0, &k[1], 5, false, 10, NONE, __LINE__);
    check_neuron(&mg, 1, &k[2], 10, true, 10, NONE, __LINE__);
    check_neuron(&mg, 2, &k[3], 7, true, 15, NONE, __LINE__);
    CHECK_ERR(chain_leader(&mg, &leader), TS_OK);
    CHECK_EQ_INT(leader, 1);
    chain_metagraph_free(&mg);

    /* last_active: a commit (block 20) and weights (block 22), strictly before. */
    REQUIRE(AT(c, 20, &mg) == TS_OK);
    check_neuron(&mg, 2, &k[3], 7, true, 15, NONE, __LINE__);
    chain_metagraph_free(&mg);
    REQUIRE(AT(c, 21, &mg) == TS_OK);
    check_neuron(&mg, 2, &k[3], 7, true, 15, 20, __LINE__);
    check_neuron(&mg, 1, &k[2], 10, true, 10, NONE, __LINE__);
    chain_metagraph_free(&mg);
    REQUIRE(AT(c, 23, &mg) == TS_OK);
    check_neuron(&mg, 1, &k[2], 10, true, 10, 22, __LINE__);
    chain_metagraph_free(&mg);

    /* Block 30: uid 0 gets 15 TAO: it takes uid 2's permit and the lead. */
    REQUIRE(AT(c, 30, &mg) == TS_OK);
    CHECK_ERR(chain_leader(&mg, &leader), TS_OK);
    CHECK_EQ_INT(leader, 1);
    chain_metagraph_free(&mg);
    REQUIRE(AT(c, 31, &mg) == TS_OK);
    check_neuron(&mg, 0, &k[1], 15, true, 10, NONE, __LINE__);
    check_neuron(&mg, 1, &k[2], 10, true, 10, 22, __LINE__);
    check_neuron(&mg, 2, &k[3], 7, false, 15, 20, __LINE__);
    CHECK_ERR(chain_leader(&mg, &leader), TS_OK);
    CHECK_EQ_INT(leader, 0);
    /* with liveness: uid 0 has never acted; uid 1 acted 9 blocks before */
    CHECK_ERR(chain_leader_live(&mg, 10, &leader), TS_OK);
    CHECK_EQ_INT(leader, 1);
    CHECK_ERR(chain_leader_live(&mg, 8, &leader), TS_OK);
    CHECK_EQ_INT(leader, 0); /* nobody live: stake order */
    chain_metagraph_free(&mg);

    /* Block 40: k4 replaces uid 2 (the least stake): hotkey, stake,
     * registration block and last_active all change. */
    REQUIRE(AT(c, 40, &mg) == TS_OK);
    check_neuron(&mg, 2, &k[3], 7, false, 15, 20, __LINE__);
    CHECK_ERR(chain_uid_of(&mg, k[4].pk, NULL), TS_ENOTFOUND);
    chain_metagraph_free(&mg);
    REQUIRE(AT(c, 41, &mg) == TS_OK);
    CHECK_EQ_INT(mg.n, 3);
    check_neuron(&mg, 0, &k[1], 15, true, 10, 32, __LINE__);
    check_neuron(&mg, 1, &k[2], 10, true, 10, 22, __LINE__);
    check_neuron(&mg, 2, &k[4], 0, false, 40, NONE, __LINE__);
    CHECK_ERR(chain_uid_of(&mg, k[3].pk, NULL), TS_ENOTFOUND);
    CHECK_EQ_INT(mg.log_seq, 11);
    chain_metagraph_free(&mg);
    REQUIRE(AT(c, 46, &mg) == TS_OK);
    check_neuron(&mg, 2, &k[4], 0, false, 40, 45, __LINE__);
    chain_metagraph_free(&mg);
    /* the rejected line (12, block 46) changes nothing, not even log_seq */
    REQUIRE(AT(c, 47, &mg) == TS_OK);
    CHECK_EQ_INT(mg.log_seq, 12);
    check_neuron(&mg, 2, &k[4], 0, false, 40, 45, __LINE__);
    chain_metagraph_free(&mg);
    REQUIRE(AT(c, 51, &mg) == TS_OK);
    CHECK_EQ_INT(mg.log_seq, 14);
    check_neuron(&mg, 0, &k[1], 15, true, 10, 50, __LINE__);
    chain_metagraph at51 = mg;

    /* chain_metagraph_get carries last_active too: the same as at(51). */
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.n, 3);
    for (uint32_t i = 0; i < 3 && i < mg.n; i++) CHECK_EQ_INT(mg.neurons[i].last_active, at51.neurons[i].last_active);
    CHECK_EQ_INT(mg.neurons[0].last_active, 50);
    CHECK_EQ_INT(mg.neurons[1].last_active, 22);
    CHECK_EQ_INT(mg.neurons[2].last_active, 45);
    chain_metagraph_free(&mg);
    chain_metagraph_free(&at51);

    /* Going back after going forward gives the same answer again. */
    chain_metagraph again;
    REQUIRE(AT(c, 17, &again) == TS_OK);
    check_neuron(&again, 2, &k[3], 7, true, 15, NONE, __LINE__);
    chain_metagraph_free(&again);
    chain_close(c);
}

TEST(metagraph_at_last_active_through_the_api) {
    /* Commit and weights through the chain calls, then a replacement: the
     * live metagraph and the snapshots agree on last_active. */
    net_opts o = {.block_time = 0.05, .max_uids = 2, .max_validators = 2};
    const char *url = mk_subnet("net", &o);
    REQUIRE(url);
    chain *c = open_ok(url);
    REQUIRE(c);
    ts_keypair k1, k2, k3;
    key(&k1, 1);
    key(&k2, 2);
    key(&k3, 3);
    reg_ok(c, 1);
    reg_ok(c, 2);
    stake_tao(c, 1, 10);
    ts_err e = {0};
    chain_metagraph mg;
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.neurons[0].last_active, CHAIN_BLOCK_NONE);
    CHECK_EQ_INT(mg.neurons[1].last_active, CHAIN_BLOCK_NONE);
    chain_metagraph_free(&mg);
    REQUIRE(chain_commit(c, &k2, "file:///b/2", &e) == TS_OK);
    chain_commitment cm;
    REQUIRE(chain_commitment_of(c, 1, &cm, &e) == TS_OK);
    usleep(120000);
    REQUIRE(chain_set_weights(c, &k1, (uint32_t[]){1}, (float[]){1}, 1, &e) == TS_OK);
    chain_weight_row *rows;
    uint32_t n;
    REQUIRE(chain_weights(c, &rows, &n, &e) == TS_OK);
    REQUIRE(n == 1);
    uint64_t wblock = rows[0].block;
    free(rows);
    CHECK(wblock > cm.block);
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.neurons[0].last_active, wblock);
    CHECK_EQ_INT(mg.neurons[1].last_active, cm.block);
    chain_metagraph_free(&mg);
    /* replacement of uid 1 (no stake) clears it */
    usleep(120000);
    chain_registration r;
    REQUIRE(chain_register(c, &k3, &r, &e) == TS_OK);
    CHECK_EQ_INT(r.uid, 1);
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.neurons[1].last_active, CHAIN_BLOCK_NONE);
    CHECK_EQ_INT(mg.neurons[0].last_active, wblock);
    chain_metagraph_free(&mg);
    /* the snapshots: wait until r.block is final */
    uint64_t now = 0;
    for (int i = 0; i < 100 && now < r.block + 2; i++) {
        usleep(20000);
        chain_block(c, &now, NULL, &e);
    }
    REQUIRE(now >= r.block + 2);
    REQUIRE(AT(c, r.block, &mg) == TS_OK);
    CHECK(!memcmp(mg.neurons[1].hotkey, k2.pk, TS_PK_BYTES));
    CHECK_EQ_INT(mg.neurons[1].last_active, cm.block);
    chain_metagraph_free(&mg);
    REQUIRE(AT(c, r.block + 1, &mg) == TS_OK);
    CHECK(!memcmp(mg.neurons[1].hotkey, k3.pk, TS_PK_BYTES));
    CHECK_EQ_INT(mg.neurons[1].last_active, CHAIN_BLOCK_NONE);
    CHECK_EQ_INT(mg.neurons[0].last_active, wblock);
    chain_metagraph_free(&mg);
    chain_close(c);
}

TEST(metagraph_at_is_the_same_from_every_handle) {
    net_opts o = {.block_time = 1, .max_uids = 3, .max_validators = 2, .genesis_ago = 5000};
    const char *u = mk_subnet("net", &o);
    REQUIRE(u);
    char url[600];
    snprintf(url, sizeof url, "%s", u);
    /* A follows the log along: after each line it takes the snapshots that
     * the line made final, and now and then one far back (the cache goes
     * back and forth). */
    chain *a = open_ok(url);
    REQUIRE(a);
    story s;
    story_init(&s, a, url);
    enum { MAXB = 56 };
    chain_metagraph early[MAXB];
    memset(early, 0, sizeof early);
    bool have[MAXB] = {0};
    uint64_t next = 0;
    for (int i = 0; i < STORY_LINES; i++) {
        uint64_t b = story_step(&s, i);
        for (; next <= b; next++) have[next] = AT(a, next, &early[next]) == TS_OK;
        if (i % 4 == 3) {
            chain_metagraph back;
            REQUIRE(AT(a, b / 3, &back) == TS_OK);
            mg_diff(&back, &early[b / 3], "back and forth", b / 3);
            chain_metagraph_free(&back);
        }
    }
    /* B opens the finished log and replays it whole. */
    chain *b = open_ok(url);
    REQUIRE(b);
    int bad = 0;
    for (uint64_t blk = MAXB; blk-- > 0;) { /* downwards: B's cache restarts each time */
        chain_metagraph x, y;
        REQUIRE(AT(a, blk, &x) == TS_OK);
        REQUIRE(AT(b, blk, &y) == TS_OK);
        bad += mg_diff(&x, &y, "follower vs fresh handle", blk);
        if (blk < next) {
            CHECK(have[blk]);
            if (have[blk]) bad += mg_diff(&early[blk], &y, "asked early vs fresh handle", blk);
        }
        CHECK_EQ_INT(y.block, blk);
        chain_metagraph_free(&x);
        chain_metagraph_free(&y);
        if (bad > 5) break;
    }
    /* and upwards on a third handle, one snapshot per block */
    chain *c3 = open_ok(url);
    REQUIRE(c3);
    for (uint64_t blk = 0; blk < MAXB && bad <= 5; blk++) {
        chain_metagraph x, y;
        REQUIRE(AT(b, blk, &x) == TS_OK);
        REQUIRE(AT(c3, blk, &y) == TS_OK);
        bad += mg_diff(&x, &y, "fresh handles, down vs up", blk);
        chain_metagraph_free(&x);
        chain_metagraph_free(&y);
    }
    /* the snapshots differ where the story changed something (the test
     * would not notice a constant answer otherwise) */
    CHECK(early[11].n == 2 && early[41].n == 3 && early[17].neurons &&
          early[17].neurons[2].stake == 7 * CHAIN_RAO_PER_TAO);
    for (int i = 0; i < MAXB; i++) chain_metagraph_free(&early[i]);

    /* History rewritten under the handles (another log: k7 and k8 register
     * at block 5): the snapshots follow the new history, even where the old
     * one had as many transactions before the block asked for. */
    chain_metagraph x;
    REQUIRE(AT(a, 11, &x) == TS_OK); /* the old history: k1, k2 (2 transactions) */
    CHECK_EQ_INT(x.n, 2);
    chain_metagraph_free(&x);
    ts_err e = {0};
    char *lp = log_path(url);
    REQUIRE(truncate(lp, 0) == 0);
    free(lp);
    for (int i = 0; i < 2; i++) {
        ts_keypair kn;
        key(&kn, 7 + i);
        chain_tx tx;
        memset(&tx, 0, sizeof tx);
        tx.kind = CHAIN_TX_REGISTER;
        tx.seq = (uint64_t)i;
        tx.block = 5;
        memcpy(tx.signer, kn.pk, TS_PK_BYTES);
        char *line = NULL;
        size_t len;
        REQUIRE(chain_local_format_tx(chain_get_params(a)->genesis_hash, &tx, &kn, &line, &len, &e) == TS_OK);
        append_raw(url, line, len);
        free(line);
    }
    ts_keypair k7, k8;
    key(&k7, 7);
    key(&k8, 8);
    REQUIRE(AT(a, 11, &x) == TS_OK);
    CHECK_EQ_INT(x.n, 2);
    CHECK_EQ_INT(x.log_seq, 2);
    check_neuron(&x, 0, &k7, 0, false, 5, CHAIN_BLOCK_NONE, __LINE__);
    check_neuron(&x, 1, &k8, 0, false, 5, CHAIN_BLOCK_NONE, __LINE__);
    chain_metagraph_free(&x);
    REQUIRE(AT(b, 5, &x) == TS_OK);
    CHECK_EQ_INT(x.n, 0);
    chain_metagraph_free(&x);
    chain_close(a);
    chain_close(b);
    chain_close(c3);
}

TEST(metagraph_at_refuses_blocks_not_final) {
    net_opts o = {.block_time = 10, .genesis_ago = 1000};
    const char *url = mk_subnet("net", &o);
    REQUIRE(url);
    chain *c = open_ok(url);
    REQUIRE(c);
    reg_ok(c, 1);
    ts_err e = {0};
    uint64_t now;
    REQUIRE(chain_block(c, &now, NULL, &e) == TS_OK);
    REQUIRE(now >= 99);
    chain_metagraph mg;
    /* the block after the current one, and far ahead */
    CHECK_ERR(chain_metagraph_at(c, now + 1, &mg, &e), TS_ESTATE);
    CHECK_MSG(strstr(e.msg, "not final yet") != NULL, "message: %s", e.msg);
    char want[64];
    snprintf(want, sizeof want, "block %llu ", (unsigned long long)(now + 1));
    CHECK_MSG(strstr(e.msg, want) != NULL, "message: %s", e.msg);
    CHECK(mg.neurons == NULL && mg.n == 0);
    CHECK_ERR(chain_metagraph_at(c, now + 1000000, &mg, &e), TS_ESTATE);
    CHECK_ERR(chain_metagraph_at(c, UINT64_MAX, &mg, &e), TS_ESTATE);
    /* the block before the current one is final (its successor has begun) */
    REQUIRE(AT(c, now - 1, &mg) == TS_OK);
    CHECK_EQ_INT(mg.block, now - 1);
    CHECK_EQ_INT(mg.n, 0); /* the registration is of block `now` or later */
    chain_metagraph_free(&mg);
    chain_close(c);

    /* With short blocks: the current block is refused until the next one
     * begins, and answered from then on. */
    net_opts o2 = {.block_time = 0.2, .genesis_ago = 100};
    url = mk_subnet("net2", &o2);
    REQUIRE(url);
    c = open_ok(url);
    REQUIRE(c);
    REQUIRE(chain_block(c, &now, NULL, &e) == TS_OK);
    int rc = chain_metagraph_at(c, now, &mg, &e);
    uint64_t after;
    REQUIRE(chain_block(c, &after, NULL, &e) == TS_OK);
    /* (unless the next block began between the two calls) */
    CHECK_MSG(rc == TS_ESTATE || after > now, "at(current block %llu) returned %d",
              (unsigned long long)now, rc);
    if (rc == TS_OK) chain_metagraph_free(&mg);
    double t;
    REQUIRE(chain_block_time(c, now + 1, &t, &e) == TS_OK);
    while (ts_now() < t + 0.005) usleep(10000);
    REQUIRE(AT(c, now, &mg) == TS_OK);
    CHECK_EQ_INT(mg.block, now);
    chain_metagraph_free(&mg);
    chain_close(c);
}

/* ------------------------------------------------------ validator ranking */

TEST(validators_ranked_live_first_then_stake) {
    /* block 100; uids 0..4 hold permits, uid 5 does not */
    chain_neuron nr[6];
    memset(nr, 0, sizeof nr);
    const uint64_t stake[6] = {50, 20, 30, 30, 20, 99};
    const uint64_t act[6] = {NONE, 95, 90, 89, 100, 100};
    for (uint32_t i = 0; i < 6; i++) {
        nr[i].uid = i;
        nr[i].stake = stake[i] * CHAIN_RAO_PER_TAO;
        nr[i].validator_permit = i < 5;
        nr[i].last_active = act[i];
        nr[i].hotkey[0] = (uint8_t)i;
    }
    chain_metagraph mg = {.block = 100, .n = 6, .max_uids = 8, .neurons = nr};
    uint32_t out[8], n = 99, leader = 77;
#define RANKED_IS(live, ...)                                                                   \
    do {                                                                                       \
        const uint32_t want_[] = {__VA_ARGS__};                                                \
        uint32_t nw_ = (uint32_t)(sizeof want_ / sizeof *want_);                               \
        memset(out, 0xff, sizeof out);                                                         \
        CHECK_ERR(chain_validators_ranked(&mg, (live), out, 8, &n), TS_OK);                    \
        bool same_ = n == nw_;                                                                 \
        for (uint32_t i_ = 0; same_ && i_ < nw_; i_++) same_ = out[i_] == want_[i_];           \
        CHECK_MSG(same_, "liveness %llu: got %u uids [%u %u %u %u %u ...]",                    \
                  (unsigned long long)(live), n, out[0], out[1], out[2], out[3], out[4]);      \
    } while (0)
    /* liveness 10: live are 1 (95), 2 (90: exactly 10 before), 4 (100);
     * 3 (89: 11 before) and 0 (never) are not.  Live by stake (1 and 4 tie
     * at 20: the lower uid first), then the others by stake. */
    RANKED_IS(10, 2, 1, 4, 0, 3);
    CHECK_ERR(chain_leader_live(&mg, 10, &leader), TS_OK);
    CHECK_EQ_INT(leader, 2);
    /* liveness 0: stake only, today's chain_leader rule (2 and 3 tie at 30) */
    RANKED_IS(0, 0, 2, 3, 1, 4);
    CHECK_ERR(chain_leader_live(&mg, 0, &leader), TS_OK);
    CHECK_EQ_INT(leader, 0);
    uint32_t old;
    CHECK_ERR(chain_leader(&mg, &old), TS_OK);
    CHECK_EQ_INT(old, leader);
    /* liveness 11 lets uid 3 in; a huge one everyone that acted (no overflow) */
    RANKED_IS(11, 2, 3, 1, 4, 0);
    RANKED_IS(UINT64_MAX, 2, 3, 1, 4, 0);
    /* liveness 1: only uid 4 (block 100) */
    RANKED_IS(1, 4, 0, 2, 3, 1);
    CHECK_ERR(chain_leader_live(&mg, 1, &leader), TS_OK);
    CHECK_EQ_INT(leader, 4);
    /* nobody live: stake order, as chain_leader */
    for (int i = 0; i < 5; i++) nr[i].last_active = NONE;
    RANKED_IS(10, 0, 2, 3, 1, 4);
    CHECK_ERR(chain_leader_live(&mg, 10, &leader), TS_OK);
    CHECK_EQ_INT(leader, 0);
    for (int i = 0; i < 6; i++) nr[i].last_active = act[i];
    /* a short out: the first cap of the ranking */
    memset(out, 0xff, sizeof out);
    CHECK_ERR(chain_validators_ranked(&mg, 10, out, 2, &n), TS_OK);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(out[0], 2);
    CHECK_EQ_INT(out[1], 1);
    CHECK_EQ_INT(out[2], UINT32_MAX);
    /* no permit anywhere */
    for (int i = 0; i < 6; i++) nr[i].validator_permit = false;
    n = 99;
    CHECK_ERR(chain_validators_ranked(&mg, 10, out, 8, &n), TS_ENOTFOUND);
    CHECK_EQ_INT(n, 0);
    CHECK_ERR(chain_validators_ranked(&mg, 0, out, 8, &n), TS_ENOTFOUND);
    CHECK_ERR(chain_leader_live(&mg, 10, &leader), TS_ENOTFOUND);
    CHECK_ERR(chain_leader_live(&mg, 0, &leader), TS_ENOTFOUND);
    mg.n = 0;
    CHECK_ERR(chain_leader_live(&mg, 10, &leader), TS_ENOTFOUND);
#undef RANKED_IS
}
#undef NONE

/* ------------------------------------------------------------------ units */

/* ---------------------------------------------------------------- epochs */

TEST(epoch_blocks_follow_subtensor) {
    /* spec 143 block_step.rs blocks_until_next_epoch: the table in its
     * comment (tempo, netuid, first epoch block) */
    static const struct {
        uint64_t tempo;
        uint32_t netuid;
        uint64_t first;
    } t[] = {{1, 0, 0}, {1, 1, 1}, {2, 0, 1}, {2, 1, 0}, {100, 0, 99}, {100, 1, 98}};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        CHECK_EQ_INT(chain_epoch_blocks_until(t[i].netuid, t[i].tempo, 0), t[i].first);
        CHECK_EQ_INT(chain_epoch_blocks_until(t[i].netuid, t[i].tempo, t[i].first), 0);
        CHECK_EQ_INT(chain_epoch_blocks_until(t[i].netuid, t[i].tempo, t[i].first + t[i].tempo + 1), 0);
        CHECK_EQ_INT(chain_epoch_blocks_until(t[i].netuid, t[i].tempo, t[i].first + 1), t[i].tempo);
    }
    /* the formula itself, far out: tempo - (b + netuid + 1) % (tempo + 1) */
    for (uint64_t b = 1000000; b < 1000400; b++)
        CHECK_EQ_INT(chain_epoch_blocks_until(3, 360, b), 360 - (b + 4) % 361);
    CHECK(chain_epoch_blocks_until(1, 0, 5) == UINT64_MAX);

    /* A subnet's epochs: netuid 3, tempo 9 run at the blocks b with
     * blocks_until 0, (b + 5) % 10 == 0, the first at block 5; genesis 120
     * blocks of 0.05 s ago.  Final ones only. */
    net_opts o = {.genesis_ago = 6, .tempo = 9};
    const char *url = mk_subnet("net", &o);
    REQUIRE(url);
    chain *c = open_ok(url);
    REQUIRE(c);
    ts_err e = {0};
    chain_epoch ep;
    uint64_t now;
    REQUIRE(chain_epoch_last(c, &ep, &e) == TS_OK);
    REQUIRE(chain_block(c, &now, NULL, &e) == TS_OK);
    CHECK_EQ_INT((ep.block + 5) % 10, 0);
    CHECK_MSG(ep.block + 1 <= now && ep.block + 11 > now, "last epoch %llu at block %llu",
              (unsigned long long)ep.block, (unsigned long long)now);
    CHECK_EQ_INT(ep.count, (ep.block - 5) / 10 + 1);
    CHECK_EQ_INT(ep.tempo, 9);
    CHECK_EQ_INT(ep.next_block, ep.block + 10);
    CHECK_EQ_INT(ep.n, 0);
    CHECK(ep.has_earned);
    /* no uids: the emission is drained and lost, the owner's cut is paid */
    CHECK_EQ_INT(ep.owner_earned, ep.block * yuma_owner_cut(CHAIN_RAO_PER_TAO, YUMA_OWNER_CUT_DEFAULT));
    chain_epoch_free(&ep);
    chain_info in;
    REQUIRE(chain_get_info(c, &in, &e) == TS_OK);
    CHECK_EQ_INT(in.tempo, 9);
    chain_close(c);

    /* before the first epoch is final: TS_ENOTFOUND naming its block */
    net_opts o2 = {.block_time = 10};
    url = mk_subnet("young", &o2);
    REQUIRE(url);
    c = open_ok(url);
    REQUIRE(c);
    CHECK_ERR(chain_epoch_last(c, &ep, &e), TS_ENOTFOUND);
    CHECK_MSG(strstr(e.msg, "first runs at block 356") != NULL, "%s", e.msg);
    CHECK(ep.uids == NULL);
    chain_close(c);
}

/* The epochs' scripted history, on a subnet of netuid 3, tempo 9 (epochs at
 * blocks 5, 15, 25, 35), 6 uids and 2 validator permits.  Keys by seed. */
enum { EV_REG, EV_STAKE, EV_W };
typedef struct {
    uint64_t block;
    int kind, key;
    int64_t tao;
    const char *w;              /* UID=U16,... */
} ep_step;

static const ep_step EP_STORY[] = {
    {1, EV_REG, 1, 0, NULL}, {1, EV_REG, 2, 0, NULL}, {1, EV_REG, 3, 0, NULL}, {1, EV_REG, 4, 0, NULL},
    {1, EV_REG, 5, 0, NULL},
    {2, EV_STAKE, 1, 1000, NULL}, {2, EV_STAKE, 2, 400, NULL}, {2, EV_STAKE, 3, 50, NULL},
    {3, EV_W, 1, 0, "1=10000,2=65535,3=30000,4=5000"}, {3, EV_W, 2, 0, "2=40000,3=65535"},
    /* epoch 5 */
    {12, EV_W, 1, 0, "2=65535,3=65535,4=20000"},
    {13, EV_STAKE, 3, 600, NULL},             /* uid 2 (650) takes uid 1's permit */
    {14, EV_W, 3, 0, "3=65535,4=65535"},
    /* epoch 15 */
    {19, EV_REG, 6, 0, NULL},                 /* uid 5: the subnet is full */
    {22, EV_W, 1, 0, "2=30000,3=65535,4=65535,5=65535"},
    /* epoch 25 */
    {27, EV_STAKE, 2, 1000, NULL},            /* uid 1 (1400) back, uid 2 out */
    {28, EV_W, 2, 0, "4=65535,5=20000"},
    {31, EV_REG, 7, 0, NULL},                 /* replaces uid 3 (no stake, oldest, lowest) */
    {33, EV_W, 1, 0, "2=65535,3=50000,5=10000"},
    {34, EV_W, 2, 0, "3=65535,4=65535,5=20000"},
    /* epoch 35 */
};
#define EP_STORY_N ((int)(sizeof EP_STORY / sizeof *EP_STORY))
#define EP_MAXU 6

static uint32_t parse_w(const char *s, chain_weight *w) {
    uint32_t n = 0;
    while (s && *s) {
        unsigned uid, v;
        int used = 0;
        if (sscanf(s, "%u=%u%n", &uid, &v, &used) != 2) break;
        w[n++] = (chain_weight){uid, (uint16_t)v};
        s += used;
        if (*s == ',') s++;
    }
    return n;
}

/* Appends the story's lines (every one, whatever the clock says). */
static void ep_story_write(chain *c, const char *url) {
    ts_keypair owner, k;
    key(&owner, OWNER_SEED);
    for (int i = 0; i < EP_STORY_N; i++) {
        const ep_step *st = &EP_STORY[i];
        chain_tx tx;
        memset(&tx, 0, sizeof tx);
        chain_weight w[EP_MAXU];
        key(&k, st->key);
        if (st->kind == EV_REG) {
            tx.kind = CHAIN_TX_REGISTER;
            append_at_block(c, url, &tx, &k, st->block);
        } else if (st->kind == EV_STAKE) {
            tx.kind = CHAIN_TX_STAKE;
            tx.delta = st->tao * (int64_t)CHAIN_RAO_PER_TAO;
            memcpy(tx.target, k.pk, TS_PK_BYTES);
            append_at_block(c, url, &tx, &owner, st->block);
        } else {
            tx.kind = CHAIN_TX_WEIGHTS;
            tx.nw = parse_w(st->w, w);
            tx.w = w;
            append_at_block(c, url, &tx, &k, st->block);
        }
    }
}

/* The test's own model of the subnet, built from the story without the
 * backend: stake, registrations, weights (entries aimed at a replaced uid
 * dropped), the local permit rule, and the epochs' chain of bonds. */
typedef struct {
    int key;
    uint64_t stake, reg, lu, earned;
    uint32_t nw, nb;
    yuma_entry w[EP_MAXU], b[EP_MAXU];
} mnode;

typedef struct {
    uint32_t n;
    mnode u[EP_MAXU];
    uint64_t prev, owner;
} model;

typedef struct {
    uint64_t block, emission, owner_emission, owner_earned;
    uint32_t n;
    chain_epoch_uid u[EP_MAXU];
} ep_expect;

static int model_uid(const model *m, int key) {
    for (uint32_t i = 0; i < m->n; i++)
        if (m->u[i].key == key) return (int)i;
    return -1;
}

static void model_drop(yuma_entry *row, uint32_t *n, uint32_t uid) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < *n; i++)
        if (row[i].uid != uid) row[k++] = row[i];
    *n = k;
}

static void model_apply(model *m, const ep_step *st) {
    if (st->kind == EV_REG) {
        uint32_t u;
        if (m->n < EP_MAXU) {
            u = m->n++;
        } else { /* least stake, then oldest registration, then lowest uid (immunity 0) */
            u = 0;
            for (uint32_t i = 1; i < m->n; i++)
                if (m->u[i].stake < m->u[u].stake || (m->u[i].stake == m->u[u].stake && m->u[i].reg < m->u[u].reg))
                    u = i;
            for (uint32_t i = 0; i < m->n; i++) {
                model_drop(m->u[i].w, &m->u[i].nw, u);
                model_drop(m->u[i].b, &m->u[i].nb, u);
            }
        }
        memset(&m->u[u], 0, sizeof m->u[u]);
        m->u[u].key = st->key;
        m->u[u].reg = m->u[u].lu = st->block;
    } else if (st->kind == EV_STAKE) {
        m->u[model_uid(m, st->key)].stake += (uint64_t)st->tao * CHAIN_RAO_PER_TAO;
    } else {
        mnode *x = &m->u[model_uid(m, st->key)];
        chain_weight w[EP_MAXU];
        x->nw = parse_w(st->w, w);
        for (uint32_t i = 0; i < x->nw; i++) x->w[i] = (yuma_entry){(uint16_t)w[i].uid, w[i].weight};
        x->lu = st->block;
    }
}

/* One epoch at block B on the model.  no_bonds (optional): the dividends
 * the same epoch would give with no bonds carried over. */
static void model_epoch(model *m, uint64_t B, uint32_t max_validators, ep_expect *x, uint16_t *no_bonds) {
    uint32_t n = m->n;
    uint64_t stake[EP_MAXU], lu[EP_MAXU], reg[EP_MAXU];
    bool permit[EP_MAXU];
    yuma_row wr[EP_MAXU], br[EP_MAXU];
    /* permits: stake > 0, the top max_validators by stake, ties to the lower uid */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t better = 0;
        for (uint32_t j = 0; j < n; j++)
            better += m->u[j].stake > m->u[i].stake || (m->u[j].stake == m->u[i].stake && j < i);
        permit[i] = m->u[i].stake > 0 && better < max_validators;
        stake[i] = m->u[i].stake;
        lu[i] = m->u[i].lu;
        reg[i] = m->u[i].reg;
        wr[i] = (yuma_row){m->u[i].nw, m->u[i].w};
        br[i] = (yuma_row){m->u[i].nb, m->u[i].b};
    }
    uint64_t blocks = B - m->prev;
    uint64_t pending = blocks * yuma_owner_remaining(CHAIN_RAO_PER_TAO, YUMA_OWNER_CUT_DEFAULT);
    uint64_t owner = blocks * yuma_owner_cut(CHAIN_RAO_PER_TAO, YUMA_OWNER_CUT_DEFAULT);
    yuma_params p;
    yuma_params_default(&p);
    p.kappa = 32767;
    p.bonds_moving_average = 900000;
    p.activity_cutoff = 5000;
    p.max_validators = (uint16_t)n; /* every uid gets its EMA row; kept below for permit holders */
    yuma_input in = {.n = n, .block = B, .emission = pending, .stake = stake, .last_update = lu,
                     .registered = reg, .validator_permit = permit, .weights = wr, .bonds = br};
    yuma_output o;
    ts_err e = {0};
    if (yuma_epoch(&p, &in, &o, &e)) {
        th_fail(__FILE__, __LINE__, "yuma_epoch at %llu: %s", (unsigned long long)B, e.msg);
        return;
    }
    if (no_bonds) {
        yuma_output o2;
        in.bonds = NULL;
        if (yuma_epoch(&p, &in, &o2, &e) == TS_OK) {
            for (uint32_t i = 0; i < n; i++) no_bonds[i] = o2.dividends[i];
            yuma_output_free(&o2);
        }
    }
    memset(x, 0, sizeof *x);
    m->owner += owner;
    x->block = B;
    x->emission = pending;
    x->owner_emission = owner;
    x->owner_earned = m->owner;
    x->n = n;
    for (uint32_t i = 0; i < n; i++) {
        mnode *u = &m->u[i];
        u->earned += o.server_emission[i] + o.validator_emission[i];
        u->nb = permit[i] ? o.bonds[i].n : 0;
        memcpy(u->b, o.bonds[i].e, u->nb * sizeof *u->b);
        chain_epoch_uid *y = &x->u[i];
        y->uid = i;
        ts_keypair k;
        key(&k, u->key);
        memcpy(y->hotkey, k.pk, TS_PK_BYTES);
        y->active = o.active[i];
        y->validator_permit = permit[i];
        y->rank = o.rank[i];
        y->trust = o.trust[i];
        y->consensus = o.consensus[i];
        y->incentive = o.incentive[i];
        y->dividends = o.dividends[i];
        y->validator_trust = o.validator_trust[i];
        y->emission = o.emission[i];
        y->earned = u->earned;
    }
    m->prev = B;
    yuma_output_free(&o);
}

/* Field by field; returns the number of differences. */
static int epoch_diff(const chain_epoch *got, const ep_expect *x, const char *what) {
    int bad = 0;
#define EQ(a, b, name, ...)                                                                               \
    do {                                                                                                  \
        if ((uint64_t)(a) != (uint64_t)(b)) {                                                             \
            th_fail(__FILE__, __LINE__, "%s, epoch %llu: " name " %llu, want %llu", what,                 \
                    (unsigned long long)x->block, ##__VA_ARGS__, (unsigned long long)(a), (unsigned long long)(b)); \
            bad++;                                                                                        \
        }                                                                                                 \
    } while (0)
    EQ(got->block, x->block, "block");
    EQ(got->emission, x->emission, "emission");
    EQ(got->owner_emission, x->owner_emission, "owner emission");
    EQ(got->owner_earned, x->owner_earned, "owner earned");
    EQ(got->n, x->n, "n");
    for (uint32_t i = 0; i < got->n && i < x->n && bad < 8; i++) {
        const chain_epoch_uid *a = &got->uids[i], *b = &x->u[i];
        EQ(a->uid, b->uid, "uid %u", i);
        EQ(memcmp(a->hotkey, b->hotkey, TS_PK_BYTES) != 0, 0, "uid %u hotkey differs", i);
        EQ(a->active, b->active, "uid %u active", i);
        EQ(a->validator_permit, b->validator_permit, "uid %u permit", i);
        EQ(a->rank, b->rank, "uid %u rank", i);
        EQ(a->trust, b->trust, "uid %u trust", i);
        EQ(a->consensus, b->consensus, "uid %u consensus", i);
        EQ(a->incentive, b->incentive, "uid %u incentive", i);
        EQ(a->dividends, b->dividends, "uid %u dividends", i);
        EQ(a->validator_trust, b->validator_trust, "uid %u validator trust", i);
        EQ(a->emission, b->emission, "uid %u emission", i);
        EQ(a->earned, b->earned, "uid %u earned", i);
    }
#undef EQ
    return bad;
}

/* Runs the model through the story, one expectation per epoch (5, 15, 25,
 * 35); no_bonds15: epoch 15's dividends without bonds. */
static void model_run(ep_expect x[4], uint16_t no_bonds15[EP_MAXU]) {
    model m;
    memset(&m, 0, sizeof m);
    int i = 0;
    for (int k = 0; k < 4; k++) {
        uint64_t B = 5 + 10 * (uint64_t)k;
        for (; i < EP_STORY_N && EP_STORY[i].block < B; i++) model_apply(&m, &EP_STORY[i]);
        model_epoch(&m, B, 2, &x[k], k == 1 ? no_bonds15 : NULL);
    }
}

TEST(epochs_equal_yuma_on_the_same_inputs) {
    ep_expect x[4];
    uint16_t no_bonds15[EP_MAXU] = {0};
    model_run(x, no_bonds15);
    /* the story exercises what it claims: incentive to miners, dividends to
     * validators, bonds that change epoch 15's dividends, a permit lost
     * (uid 1 at 15, uid 2 at 35), a replaced uid */
    CHECK(x[0].u[2].incentive > 0 && x[0].u[0].dividends > 0 && x[0].u[1].dividends > 0);
    CHECK(!x[1].u[1].validator_permit && x[1].u[2].validator_permit && x[3].u[1].validator_permit &&
          !x[3].u[2].validator_permit);
    bool bonds_matter = false;
    for (int i = 0; i < EP_MAXU; i++) bonds_matter |= no_bonds15[i] != x[1].u[i].dividends;
    CHECK_MSG(bonds_matter, "epoch 15's dividends do not depend on the bonds epoch 5 left");
    CHECK(x[2].u[3].earned > 0);
    /* The same log under four clocks: a subnet whose current block is 6, 16,
     * 26 or 36 (60 s blocks, genesis half a block in: the block holds for
     * 30 s), so its last final epoch is 5, 15, 25 or 35. */
    for (int k = 0; k < 4; k++) {
        char name[32];
        snprintf(name, sizeof name, "ep%d", k);
        uint64_t nowb = 6 + 10 * (uint64_t)k;
        net_opts o = {.block_time = 60, .max_uids = EP_MAXU, .max_validators = 2, .tempo = 9,
                      .genesis_ago = 60.0 * (double)nowb + 30};
        const char *u = mk_subnet(name, &o);
        REQUIRE(u);
        char url[600];
        snprintf(url, sizeof url, "%s", u);
        chain *c = open_ok(url);
        REQUIRE(c);
        ep_story_write(c, url);
        ts_err e = {0};
        chain_stats st;
        REQUIRE(chain_get_stats(c, &st, &e) == TS_OK);
        CHECK_EQ_INT(st.rejected, 0);
        CHECK_EQ_INT(st.accepted, EP_STORY_N);
        uint64_t now;
        REQUIRE(chain_block(c, &now, NULL, &e) == TS_OK);
        REQUIRE(now == nowb);
        chain_epoch ep;
        REQUIRE(chain_epoch_last(c, &ep, &e) == TS_OK);
        CHECK_EQ_INT(ep.count, k + 1);
        CHECK_EQ_INT(ep.tempo, 9);
        epoch_diff(&ep, &x[k], "the subnet's epoch");
        chain_epoch_free(&ep);
        /* a second handle opened afterwards agrees */
        chain *c2 = open_ok(url);
        REQUIRE(c2);
        REQUIRE(chain_epoch_last(c2, &ep, &e) == TS_OK);
        epoch_diff(&ep, &x[k], "a fresh handle");
        chain_epoch_free(&ep);
        chain_close(c2);
        chain_close(c);
    }
    /* the replaced uid: K7's earned balance at epoch 35 is only what epoch
     * 35 gave it (its predecessor had earned since block 1) */
    ts_keypair k7;
    key(&k7, 7);
    CHECK(!memcmp(x[3].u[3].hotkey, k7.pk, TS_PK_BYTES));
    CHECK(x[3].u[3].earned > 0 && x[3].u[3].earned < x[2].u[3].earned);
}

TEST(reregistered_uid_earns_from_zero) {
    /* uid 3 earns as a miner until block 31, when K7 replaces it; at epoch
     * 35 its balance holds epoch 35's emission alone */
    net_opts o = {.block_time = 60, .max_uids = EP_MAXU, .max_validators = 2, .tempo = 9,
                  .genesis_ago = 60.0 * 36 + 30};
    const char *u = mk_subnet("net", &o);
    REQUIRE(u);
    char url[600];
    snprintf(url, sizeof url, "%s", u);
    chain *c = open_ok(url);
    REQUIRE(c);
    ep_story_write(c, url);
    ts_err e = {0};
    chain_epoch ep;
    REQUIRE(chain_epoch_last(c, &ep, &e) == TS_OK);
    REQUIRE(ep.block == 35 && ep.n == EP_MAXU);
    ts_keypair k4, k7;
    key(&k4, 4);
    key(&k7, 7);
    CHECK(!memcmp(ep.uids[3].hotkey, k7.pk, TS_PK_BYTES));
    CHECK(ep.uids[3].emission > 0);
    /* all its earnings are this epoch's (server + validator emission, which
     * the combined Emission matches to a few rao of rounding) */
    CHECK_MSG(ep.uids[3].earned <= ep.uids[3].emission + 2 && ep.uids[3].earned + 2 >= ep.uids[3].emission,
              "earned %llu, emission %llu", (unsigned long long)ep.uids[3].earned,
              (unsigned long long)ep.uids[3].emission);
    /* uid 4, registered at block 1 with the same role, has more */
    CHECK_MSG(ep.uids[4].earned > ep.uids[4].emission + CHAIN_RAO_PER_TAO / 10, "uid 4 earned %llu, emission %llu",
              (unsigned long long)ep.uids[4].earned, (unsigned long long)ep.uids[4].emission);
    chain_epoch_free(&ep);
    /* stake moves only by transactions: the emission went to no one's stake */
    chain_metagraph mg;
    REQUIRE(chain_metagraph_get(c, &mg, &e) == TS_OK);
    CHECK_EQ_INT(mg.neurons[0].stake, 1000 * CHAIN_RAO_PER_TAO);
    CHECK_EQ_INT(mg.neurons[1].stake, 1400 * CHAIN_RAO_PER_TAO);
    CHECK_EQ_INT(mg.neurons[3].stake, 0);
    chain_metagraph_free(&mg);
    chain_close(c);
}

TEST(epochs_are_the_same_from_every_handle) {
    /* A follows a live subnet (0.05 s blocks, tempo 3: an epoch every 0.2 s)
     * while transactions arrive, asking for the last epoch after each; B
     * opens the finished log.  They agree. */
    net_opts o = {.max_validators = 2, .tempo = 3};
    const char *u = mk_subnet("live", &o);
    REQUIRE(u);
    char url[600];
    snprintf(url, sizeof url, "%s", u);
    chain *a = open_ok(url);
    REQUIRE(a);
    for (int i = 1; i <= 4; i++) reg_ok(a, i);
    stake_tao(a, 1, 100);
    stake_tao(a, 2, 60);
    ts_err e = {0};
    uint64_t seen = 0;
    int epochs_seen = 0;
    for (int round = 0; round < 12; round++) {
        ts_keypair v;
        key(&v, 1 + round % 2);
        uint32_t uids[2] = {2, 3};
        float w[2] = {(float)(1 + round % 3), (float)(1 + (round + 1) % 4)};
        CHECK_ERR(chain_set_weights(a, &v, uids, w, 2, &e), TS_OK);
        usleep(70000);
        chain_epoch ep;
        int rc = chain_epoch_last(a, &ep, &e);
        if (rc == TS_OK) {
            epochs_seen += ep.block != seen;
            seen = ep.block;
            chain_epoch_free(&ep);
        } else {
            CHECK_ERR(rc, TS_ENOTFOUND);
        }
    }
    CHECK_MSG(epochs_seen >= 3, "only %d epochs seen", epochs_seen);
    chain *b = open_ok(url);
    REQUIRE(b);
    /* both at once; again if an epoch became final in between */
    for (int tries = 0; tries < 5; tries++) {
        chain_epoch x, y;
        REQUIRE(chain_epoch_last(a, &x, &e) == TS_OK);
        REQUIRE(chain_epoch_last(b, &y, &e) == TS_OK);
        bool same_block = x.block == y.block;
        if (same_block) {
            CHECK_EQ_INT(x.count, y.count);
            CHECK_EQ_INT(x.n, y.n);
            CHECK_EQ_INT(x.owner_earned, y.owner_earned);
            CHECK(x.n == y.n && !memcmp(x.uids, y.uids, x.n * sizeof *x.uids));
            CHECK(x.uids[1].dividends > 0 && x.uids[2].incentive > 0 && x.uids[0].earned > 0);
        }
        chain_epoch_free(&x);
        chain_epoch_free(&y);
        if (same_block) break;
        CHECK_MSG(tries < 4, "the handles never agreed on the last epoch's block");
    }
    chain_close(a);
    chain_close(b);
}

TEST(a_late_transaction_is_taken_into_past_epochs) {
    /* The log is all that counts: when a line arrives stamped before an
     * epoch a handle has already run (a writer slower than a block, or a
     * line written by hand), that handle replays its epochs, and agrees
     * with a handle that reads the log afresh. */
    net_opts o = {.block_time = 60, .max_uids = EP_MAXU, .max_validators = 2, .tempo = 9,
                  .genesis_ago = 60.0 * 56 + 30};
    const char *u = mk_subnet("net", &o);
    REQUIRE(u);
    char url[600];
    snprintf(url, sizeof url, "%s", u);
    chain *a = open_ok(url);
    REQUIRE(a);
    ep_story_write(a, url);
    ts_err e = {0};
    chain_epoch before;
    REQUIRE(chain_epoch_last(a, &before, &e) == TS_OK);
    REQUIRE(before.block == 55);
    /* uid 0 turns all its weight to uid 4, stamped at block 40: after every
     * line so far, before the epochs 45 and 55 that A has run */
    ts_keypair k1;
    key(&k1, 1);
    chain_weight w = {4, 65535};
    chain_tx tx;
    memset(&tx, 0, sizeof tx);
    tx.kind = CHAIN_TX_WEIGHTS;
    tx.w = &w;
    tx.nw = 1;
    append_at_block(a, url, &tx, &k1, 40);
    chain_epoch after, fresh;
    REQUIRE(chain_epoch_last(a, &after, &e) == TS_OK);
    chain *b = open_ok(url);
    REQUIRE(b);
    REQUIRE(chain_epoch_last(b, &fresh, &e) == TS_OK);
    CHECK_EQ_INT(after.block, 55);
    CHECK(after.n == fresh.n && !memcmp(after.uids, fresh.uids, after.n * sizeof *after.uids));
    CHECK_EQ_INT(after.count, fresh.count);
    CHECK(after.uids[4].incentive > before.uids[4].incentive);
    chain_epoch_free(&before);
    chain_epoch_free(&after);
    chain_epoch_free(&fresh);
    chain_close(a);
    chain_close(b);
}

TEST(epoch_genesis_keys_defaults_and_refusals) {
    net_opts o = {.genesis_ago = 30};
    const char *url = mk_subnet("net", &o);
    REQUIRE(url);
    char dir[600];
    snprintf(dir, sizeof dir, "%s", url_dir(url));
    char *gp = ts_path_join(dir, "genesis.json");
    uint8_t *buf;
    size_t len;
    ts_err e = {0};
    REQUIRE(ts_read_file(gp, 1 << 20, &buf, &len, &e) == TS_OK);
    cJSON *j = cJSON_ParseWithLength((char *)buf, len);
    free(buf);
    REQUIRE(j);
    /* a new genesis writes every key, with subtensor's defaults */
    static const char *const keys[] = {"tempo", "emission_per_block", "owner_cut", "kappa",
                                       "bonds_moving_average", "activity_cutoff"};
    static const double defs[] = {360, 1e9, 11796, 32767, 900000, 5000};
    for (int i = 0; i < 6; i++) {
        cJSON *v = cJSON_GetObjectItem(j, keys[i]);
        CHECK_MSG(cJSON_IsNumber(v) && v->valuedouble == defs[i], "genesis key %s", keys[i]);
    }
    CHECK_EQ_INT(cJSON_GetObjectItem(j, "version")->valueint, 2);
    /* a genesis from before the epochs (none of the keys) opens with the
     * defaults: tempo 360, 1 TAO a block, 18 % to the owner */
    for (int i = 0; i < 6; i++) cJSON_DeleteItemFromObject(j, keys[i]);
    char *txt = cJSON_Print(j);
    REQUIRE(ts_write_atomic(gp, txt, strlen(txt), &e) == TS_OK);
    free(txt);
    chain *c = open_ok(url);
    REQUIRE(c);
    chain_info in;
    REQUIRE(chain_get_info(c, &in, &e) == TS_OK);
    CHECK_EQ_INT(in.tempo, 360);
    chain_epoch ep;
    REQUIRE(chain_epoch_last(c, &ep, &e) == TS_OK); /* 600 blocks: the first epoch is at 356 */
    CHECK_EQ_INT(ep.block, 356);
    CHECK_EQ_INT(ep.tempo, 360);
    CHECK_EQ_INT(ep.emission, 356 * yuma_owner_remaining(CHAIN_RAO_PER_TAO, 11796));
    CHECK_EQ_INT(ep.owner_emission, 356 * yuma_owner_cut(CHAIN_RAO_PER_TAO, 11796));
    /* generate_emission's arithmetic: 18 % of a TAO, and the rao lost to it */
    CHECK_EQ_INT(yuma_owner_cut(CHAIN_RAO_PER_TAO, 11796), 179995422);
    CHECK_EQ_INT(yuma_owner_remaining(CHAIN_RAO_PER_TAO, 11796), 820004577);
    chain_epoch_free(&ep);
    chain_close(c);

    /* out of range or of the wrong type: refused at open, naming the key */
    static const struct {
        const char *key;
        double v;
    } bad[] = {{"tempo", 0}, {"tempo", 65536}, {"tempo", 1.5}, {"owner_cut", 65536}, {"kappa", -1},
               {"bonds_moving_average", 1000001}, {"activity_cutoff", 65536}, {"emission_per_block", 2e14}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cJSON *v = cJSON_Duplicate(j, 1);
        cJSON_AddNumberToObject(v, bad[i].key, bad[i].v);
        txt = cJSON_Print(v);
        cJSON_Delete(v);
        REQUIRE(ts_write_atomic(gp, txt, strlen(txt), &e) == TS_OK);
        free(txt);
        chain *x = NULL;
        CHECK_MSG(chain_open(url, &x, &e) == TS_EFORMAT, "%s = %g opened", bad[i].key, bad[i].v);
        CHECK_MSG(strstr(e.msg, bad[i].key) != NULL, "'%s' not in: %s", bad[i].key, e.msg);
        if (x) chain_close(x);
    }
    cJSON *v = cJSON_Duplicate(j, 1);
    cJSON_AddStringToObject(v, "tempo", "fast");
    txt = cJSON_Print(v);
    cJSON_Delete(v);
    REQUIRE(ts_write_atomic(gp, txt, strlen(txt), &e) == TS_OK);
    free(txt);
    chain *x = NULL;
    CHECK_ERR(chain_open(url, &x, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "'tempo'") != NULL);
    cJSON_Delete(j);
    free(gp);

    /* and refused by chain_local_init before anything is written */
    chain_genesis g;
    chain_local_genesis_defaults(&g);
    char d2[600];
    snprintf(d2, sizeof d2, "%s/other", th_tmpdir());
    struct {
        uint64_t *u64;
        uint32_t *u32;
        uint64_t v;
        const char *key;
    } inits[] = {{&g.tempo, NULL, 0, "tempo"}, {&g.tempo, NULL, 70000, "tempo"},
                 {NULL, &g.owner_cut, 65536, "owner_cut"}, {NULL, &g.kappa, 70000, "kappa"},
                 {&g.bonds_moving_average, NULL, 1000001, "bonds_moving_average"},
                 {&g.activity_cutoff, NULL, 65536, "activity_cutoff"},
                 {&g.emission_per_block, NULL, 100000000000001ull, "emission_per_block"}};
    for (size_t i = 0; i < sizeof inits / sizeof *inits; i++) {
        chain_local_genesis_defaults(&g);
        if (inits[i].u64) *inits[i].u64 = inits[i].v;
        else *inits[i].u32 = (uint32_t)inits[i].v;
        CHECK_ERR(chain_local_init(d2, &g, &e), TS_EINVAL);
        CHECK_MSG(strstr(e.msg, inits[i].key) != NULL, "'%s' not in: %s", inits[i].key, e.msg);
    }
    char *g2 = ts_path_join(d2, "genesis.json");
    CHECK(!ts_path_exists(g2));
    free(g2);
}

TEST(epochs_of_a_long_history_stay_cheap) {
    /* 1000 epochs (tempo 9, netuid 3, 10,000 blocks of 0.01 s), 32 uids, 8
     * validators setting weights on all 32 every 50 blocks.  A handle that
     * opens it replays the log and runs every epoch once; the next read
     * runs only what became final since. */
    enum { U = 32, V = 8 };
    net_opts o = {.block_time = 0.01, .max_uids = U, .max_validators = V, .tempo = 9, .genesis_ago = 100.2};
    const char *u = mk_subnet("net", &o);
    REQUIRE(u);
    char url[600];
    snprintf(url, sizeof url, "%s", u);
    chain *c = open_ok(url);
    REQUIRE(c);
    ts_keypair owner, k[U];
    key(&owner, OWNER_SEED);
    chain_tx tx;
    for (int i = 0; i < U; i++) {
        key(&k[i], 100 + i);
        memset(&tx, 0, sizeof tx);
        tx.kind = CHAIN_TX_REGISTER;
        append_at_block(c, url, &tx, &k[i], 1);
    }
    for (int i = 0; i < V; i++) {
        memset(&tx, 0, sizeof tx);
        tx.kind = CHAIN_TX_STAKE;
        tx.delta = (int64_t)(100 + 10 * i) * (int64_t)CHAIN_RAO_PER_TAO;
        memcpy(tx.target, k[i].pk, TS_PK_BYTES);
        append_at_block(c, url, &tx, &owner, 1);
    }
    chain_weight w[U];
    for (uint64_t b = 2; b < 10000; b += 50)
        for (int i = 0; i < V; i++) {
            for (int j = 0; j < U; j++) w[j] = (chain_weight){(uint32_t)j, (uint16_t)(1000 + (j * 7919 + i * 104729 + b) % 64536)};
            w[(b + i) % U].weight = 65535;
            memset(&tx, 0, sizeof tx);
            tx.kind = CHAIN_TX_WEIGHTS;
            tx.w = w;
            tx.nw = U;
            append_at_block(c, url, &tx, &k[i], b);
        }
    chain_close(c);
    double t0 = ts_mono();
    c = open_ok(url);
    REQUIRE(c);
    double t1 = ts_mono();
    ts_err e = {0};
    chain_epoch ep;
    REQUIRE(chain_epoch_last(c, &ep, &e) == TS_OK);
    double t2 = ts_mono();
    CHECK_MSG(ep.count >= 1000, "%llu epochs", (unsigned long long)ep.count);
    uint64_t count0 = ep.count;
    chain_epoch_free(&ep);
    REQUIRE(chain_epoch_last(c, &ep, &e) == TS_OK);
    double t3 = ts_mono();
    chain_epoch_free(&ep);
    printf("# %u-line log: open %.0f ms, first chain_epoch_last %.0f ms (%llu epochs), the next %.3f ms\n",
           V * 200 + U + V, 1e3 * (t1 - t0), 1e3 * (t2 - t1), (unsigned long long)count0, 1e3 * (t3 - t2));
    CHECK_MSG(t2 - t1 < 5.0, "1000 epochs took %.1f s", t2 - t1);
    CHECK_MSG(t3 - t2 < 0.05, "a second read took %.3f s", t3 - t2);
    chain_close(c);
}

TEST(tao_amounts_parse_and_print) {
    int64_t r;
    CHECK_ERR(chain_parse_tao("12.5", &r), TS_OK);
    CHECK_EQ_INT(r, 12500000000LL);
    CHECK_ERR(chain_parse_tao("-0.000000001", &r), TS_OK);
    CHECK_EQ_INT(r, -1);
    CHECK_ERR(chain_parse_tao("+3", &r), TS_OK);
    CHECK_EQ_INT(r, 3000000000LL);
    CHECK_ERR(chain_parse_tao("1.0000000001", &r), TS_EINVAL);
    CHECK_ERR(chain_parse_tao("1e3", &r), TS_EINVAL);
    CHECK_ERR(chain_parse_tao(".5", &r), TS_EINVAL);
    CHECK_ERR(chain_parse_tao("5.", &r), TS_EINVAL);
    CHECK_ERR(chain_parse_tao("", &r), TS_EINVAL);
    CHECK_ERR(chain_parse_tao("99999999999999999999", &r), TS_EINVAL);
    char buf[64];
    chain_fmt_tao(buf, sizeof buf, 12500000000ULL, 0);
    CHECK_STR(buf, "12.5");
    chain_fmt_tao(buf, sizeof buf, 12500000000ULL, 3);
    CHECK_STR(buf, "12.500");
    chain_fmt_tao(buf, sizeof buf, 7, 2);
    CHECK_STR(buf, "0.000000007");
    chain_fmt_tao(buf, sizeof buf, 5000000000ULL, 0);
    CHECK_STR(buf, "5");
}

/* ---------------------------------------------------------- the command */

static int run_cli(const char *home, char **out, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run_cli(const char *home, char **out, const char *fmt, ...) {
    char args[2048], cmd[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "TESSERA_HOME='%s' '%s/bin/tessera' %s 2>&1", home, th_build_dir(), args);
    return th_run(cmd, out);
}

TEST(localnet_command_and_status_table) {
    char bin[600];
    snprintf(bin, sizeof bin, "%s/bin/tessera", th_build_dir());
    if (access(bin, X_OK)) SKIP("%s is not built", bin);
    char home[600], dir[600];
    snprintf(home, sizeof home, "%s/home", th_tmpdir());
    snprintf(dir, sizeof dir, "%s/net", th_tmpdir());
    char *out = NULL;
#define CLI_OK(...)                                                                          \
    do {                                                                                     \
        free(out);                                                                           \
        int rc_ = run_cli(home, &out, __VA_ARGS__);                                          \
        CHECK_MSG(rc_ == 0, "exit %d: %s", rc_, out ? out : "");                             \
    } while (0)
    CLI_OK("localnet init --dir '%s' --run-id demo --netuid 7 --block-time 0.5 --blocks-per-window 10 --max-uids 8", dir);
    CHECK(out && strstr(out, "owner"));
    for (int i = 0; i < 3; i++) CLI_OK("keygen --wallet w --hotkey h%d", i);
    for (int i = 0; i < 3; i++) CLI_OK("localnet register --dir '%s' --wallet w --hotkey h%d", dir, i);
    CHECK(out && strstr(out, "uid 2"));
    /* no activity yet: last_active is null, the column "-" */
    CLI_OK("localnet status --dir '%s' --json", dir);
    cJSON *j0 = out ? cJSON_Parse(out) : NULL;
    REQUIRE(j0);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j0, "uids"), 0), "last_active")));
    cJSON_Delete(j0);
    CLI_OK("localnet stake --dir '%s' --wallet w --hotkey h0 --amount 1000", dir);
    CLI_OK("localnet commit --dir '%s' --wallet w --hotkey h1 --data '%s'", dir, TEMPLAR_CRED);
    CLI_OK("localnet commit --dir '%s' --wallet w --hotkey h2 --data 'file:///srv/buckets/h2'", dir);
    CLI_OK("localnet set-weights --dir '%s' --wallet w --hotkey h0 --weights '1=0.75,2=0.25'", dir);
    /* a public key works where no secret is needed */
    ts_err e = {0};
    setenv("TESSERA_HOME", home, 1);
    ts_keypair k2;
    int krc = ts_key_load("w", "h2", &k2, &e);
    CHECK_MSG(krc == TS_OK, "ts_key_load: %s", e.msg);
    if (krc) return;
    char ss[64];
    ts_ss58(ss, k2.pk);
    CLI_OK("localnet stake --dir '%s' --hotkey %s --amount 2.5", dir, ss);
    CLI_OK("localnet status --dir '%s'", dir);
    REQUIRE(out);
    CHECK(strstr(out, "demo") && strstr(out, "netuid 7"));
    CHECK(strstr(out, "window"));
    CHECK(strstr(out, "UID") && strstr(out, "HOTKEY") && strstr(out, "STAKE") && strstr(out, "COMMITMENT") && strstr(out, "WEIGHTS"));
    CHECK(strstr(out, "REG.BLOCK     ACTIVE") != NULL);
    /* the epoch columns, and the line saying when the first epoch runs
     * (netuid 7, tempo 360: (b + 9) % 361 == 0) */
    CHECK(strstr(out, "ACTIVE  INCENTIVE  DIVIDENDS  EMISSION (TAO)    EARNED (TAO)  COMMITMENT") != NULL);
    CHECK_MSG(strstr(out, "epochs: none yet (tempo 360: the first at block 352)") != NULL, "%s", out);
    /* one row per uid, the leader marked, the short forms present */
    char *row0 = strstr(out, "\n  0 ");
    char *row1 = strstr(out, "\n  1 ");
    char *row2 = strstr(out, "\n  2 ");
    CHECK_MSG(row0 && row1 && row2, "rows missing:\n%s", out);
    if (row0 && row1 && row2) {
        char r0[400], r1[400], r2[400];
        snprintf(r0, sizeof r0, "%.*s", (int)strcspn(row0 + 1, "\n"), row0 + 1);
        snprintf(r1, sizeof r1, "%.*s", (int)strcspn(row1 + 1, "\n"), row1 + 1);
        snprintf(r2, sizeof r2, "%.*s", (int)strcspn(row2 + 1, "\n"), row2 + 1);
        CHECK_MSG(strstr(r0, "1000") && strstr(r0, "leader"), "row 0: %s", r0);
        CHECK_MSG(strstr(r0, "1:75%") && strstr(r0, "2:25%"), "row 0 weights: %s", r0);
        /* the store a commitment names, never its secret */
        CHECK_MSG(strstr(r1, "r2 0123456789ab") && !strstr(r1, "wJalrXUtn"), "row 1: %s", r1);
        CHECK_MSG(strstr(r2, "2.5") && strstr(r2, "file:///srv/buckets/h2"), "row 2: %s", r2);
        char prefix[8];
        snprintf(prefix, sizeof prefix, "%.6s", ss);
        CHECK_MSG(strstr(r2, prefix) != NULL, "row 2 lacks hotkey %s: %s", prefix, r2);
    }
    /* JSON for scripts */
    CLI_OK("localnet status --dir '%s' --json", dir);
    cJSON *j = out ? cJSON_Parse(out) : NULL;
    REQUIRE(j);
    cJSON *uids = cJSON_GetObjectItem(j, "uids");
    CHECK_EQ_INT(cJSON_GetArraySize(uids), 3);
    CHECK(!strstr(out, "wJalrXUtn")); /* no credentials in the JSON either */
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(uids, 1), "commitment_kind")), "r2");
    CHECK_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(uids, 1), "commitment_bytes")), 128);
    CHECK_EQ_INT(cJSON_GetObjectItem(j, "leader")->valueint, 0);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "epoch")));
    CHECK_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "first_epoch_block")), 352);
    CHECK_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "tempo")), 360);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(uids, 0), "incentive")));
    /* last_active: uid 0 from its weights, uid 1 and 2 from their commitments */
    cJSON *u0 = cJSON_GetArrayItem(uids, 0), *u1 = cJSON_GetArrayItem(uids, 1);
    cJSON *la0 = cJSON_GetObjectItem(u0, "last_active"), *la1 = cJSON_GetObjectItem(u1, "last_active");
    REQUIRE(cJSON_IsNumber(la0) && cJSON_IsNumber(la1));
    CHECK(la0->valuedouble == cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(u0, "weights"), "block")));
    CHECK(la1->valuedouble == cJSON_GetNumberValue(cJSON_GetObjectItem(u1, "commitment_block")));
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetArrayItem(uids, 2), "last_active")));
    char act0[64];
    snprintf(act0, sizeof act0, "  %9.0f  %9.0f  ", cJSON_GetNumberValue(cJSON_GetObjectItem(u0, "registered_block")),
             la0->valuedouble);
    cJSON_Delete(j);
    /* the table's ACTIVE column holds the same block */
    CLI_OK("localnet status --dir '%s'", dir);
    char *trow0 = out ? strstr(out, "\n  0 ") : NULL;
    REQUIRE(trow0);
    trow0[strcspn(trow0 + 1, "\n") + 1] = 0;
    CHECK_MSG(strstr(trow0, act0) != NULL, "row 0 lacks registration and active blocks '%s': %s", act0, trow0);
    /* errors are one clear line and a non-zero exit */
    free(out);
    CHECK(run_cli(home, &out, "localnet commit --dir '%s' --wallet w --hotkey nobody --data x", dir) != 0);
    CHECK(out && strstr(out, "tessera:"));
    free(out);
    CHECK(run_cli(home, &out, "localnet register --dir '%s' --wallet w --hotkey h0", dir) != 0);
    CHECK(out && strstr(out, "already registered"));
    free(out);
    CHECK(run_cli(home, &out, "localnet init --dir '%s'", dir) != 0);
    CHECK(out && strstr(out, "already exists"));
    free(out);
#undef CLI_OK
}
