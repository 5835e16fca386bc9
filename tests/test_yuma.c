/* test_yuma.c - Yuma consensus (yuma/yuma.h) against subtensor spec 143:
 * small networks worked by hand in I32F32, the pallet's own epoch tests
 * (pallets/subtensor/tests/epoch.rs at bc8a966cd) with their expected
 * numbers, properties over random networks, the JSON form and the command.
 *
 * A network here is the chain's storage for one subnet; net_epoch runs one
 * epoch and writes back what the runtime writes (validator permits, bonds),
 * so that several epochs chain as they do on the chain. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/common.h"
#include "harness.h"
#include "yuma/yuma.h"

/* ------------------------------------------------------------ helpers */

typedef struct net {
    uint32_t n;
    uint64_t block, emission;
    yuma_params p;
    uint64_t *stake, *last_update, *registered;
    bool *permit;
    yuma_row *weights, *bonds;
} net;

static net *net_new(uint32_t n) {
    net *t = calloc(1, sizeof *t);
    t->n = n;
    t->emission = 1000000000;
    yuma_params_default(&t->p);
    t->stake = calloc(n, sizeof *t->stake);
    t->last_update = calloc(n, sizeof *t->last_update);
    t->registered = calloc(n, sizeof *t->registered);
    t->permit = calloc(n, sizeof *t->permit);
    t->weights = calloc(n, sizeof *t->weights);
    t->bonds = calloc(n, sizeof *t->bonds);
    return t;
}

static void rows_free(yuma_row *r, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        free(r[i].e);
        r[i].e = NULL;
        r[i].n = 0;
    }
}

static void net_free(net *t) {
    if (!t) return;
    rows_free(t->weights, t->n);
    rows_free(t->bonds, t->n);
    free(t->weights);
    free(t->bonds);
    free(t->stake);
    free(t->last_update);
    free(t->registered);
    free(t->permit);
    free(t);
}

static void row_set(yuma_row *r, const uint16_t *uids, const uint16_t *vals, uint32_t k) {
    free(r->e);
    r->e = k ? malloc(k * sizeof *r->e) : NULL;
    r->n = k;
    for (uint32_t t = 0; t < k; t++) r->e[t] = (yuma_entry){uids[t], vals[t]};
}

/* set_weights as stored: the caller gives the values already max-upscaled
 * (what vec_u16_max_upscale_to_u16 makes of them), uids ascending; the
 * uid's last update becomes the current block. */
static void net_weights(net *t, uint32_t uid, const uint16_t *uids, const uint16_t *vals, uint32_t k) {
    row_set(&t->weights[uid], uids, vals, k);
    t->last_update[uid] = t->block;
}

static yuma_input net_input(const net *t) {
    yuma_input in = {.n = t->n, .block = t->block, .emission = t->emission, .stake = t->stake,
                     .last_update = t->last_update, .registered = t->registered,
                     .validator_permit = t->permit, .weights = t->weights, .bonds = t->bonds};
    return in;
}

/* One epoch; the new permits and bonds are written back. */
static int net_epoch(net *t, yuma_output *o) {
    yuma_input in = net_input(t);
    ts_err e = {0};
    int rc = yuma_epoch(&t->p, &in, o, &e);
    if (rc) {
        fprintf(stderr, "yuma_epoch: %s\n", e.msg);
        return rc;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        t->permit[i] = o->validator_permit[i];
        free(t->bonds[i].e);
        t->bonds[i].n = o->bonds[i].n;
        t->bonds[i].e = o->bonds[i].n ? malloc(o->bonds[i].n * sizeof(yuma_entry)) : NULL;
        if (o->bonds[i].n) memcpy(t->bonds[i].e, o->bonds[i].e, o->bonds[i].n * sizeof(yuma_entry));
    }
    return TS_OK;
}

/* An epoch whose output is not needed. */
static int net_epoch_quiet(net *t) {
    yuma_output o;
    int rc = net_epoch(t, &o);
    yuma_output_free(&o);
    return rc;
}

/* The stored bond of i on j (0 when absent), as get_bonds reads it. */
static uint32_t bond(const yuma_output *o, uint32_t i, uint32_t j) {
    for (uint32_t t = 0; t < o->bonds[i].n; t++)
        if (o->bonds[i].e[t].uid == j) return o->bonds[i].e[t].value;
    return 0;
}

/* ------------------------------------------------- the pallet's tests */

/* epoch.rs test_bonds: 4 validators with stake 1..4 and 4 servers; every
 * validator weights the servers 0.1 : 0.2 : 0.3 : 0.4, then validators
 * switch to self-weights one by one, then validator 3 puts everything on
 * server 4.  The asserts are the test's; the emissions are its recorded
 * trace (the E: lines of its comments). */
TEST(yuma_pallet_test_bonds) {
    net *t = net_new(8);
    const uint64_t stakes[8] = {1, 2, 3, 4, 0, 0, 0, 0};
    memcpy(t->stake, stakes, sizeof stakes);
    t->p.max_validators = 8;
    REQUIRE(net_epoch_quiet(t) == TS_OK); /* block 0: permits for everyone (8 <= max) */
    for (uint32_t i = 0; i < 8; i++) CHECK(t->permit[i]);
    t->block = 1;
    /* set_weights(servers, [65535/4, 65535/2, (65535/4)*3, 65535]) = 16383, 32767, 49149, 65535 */
    const uint16_t srv[4] = {4, 5, 6, 7}, w4[4] = {16383, 32767, 49149, 65535};
    for (uint32_t v = 0; v < 4; v++) net_weights(t, v, srv, w4, 4);
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(bond(&o, 0, 4), 16383);
    CHECK_EQ_INT(bond(&o, 1, 4), 32767);
    CHECK_EQ_INT(bond(&o, 2, 4), 49151);
    CHECK_EQ_INT(bond(&o, 3, 4), 65535);
    const uint64_t e1[8] = {49999998, 99999999, 150000000, 200000001, 49998779, 100000610, 149996337, 200004272};
    for (uint32_t i = 0; i < 8; i++) CHECK_EQ_INT(o.emission[i], e1[i]);
    yuma_output_free(&o);

    /* self-weight only on val1 (set at block 1), epoch at block 2 */
    const uint16_t self0[1] = {0}, full[1] = {65535};
    net_weights(t, 0, self0, full, 1);
    t->block = 2;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(bond(&o, 0, 4), 14582);
    CHECK_EQ_INT(bond(&o, 1, 4), 32767);
    CHECK_EQ_INT(bond(&o, 2, 4), 49151);
    CHECK_EQ_INT(bond(&o, 3, 4), 65535);
    const uint64_t e2[8] = {44998351, 101110561, 151667215, 202223870, 49998779, 100000610, 149996337, 200004272};
    for (uint32_t i = 0; i < 8; i++) CHECK_EQ_INT(o.emission[i], e2[i]);
    yuma_output_free(&o);

    /* self-weight only on val2 */
    const uint16_t self1[1] = {1};
    net_weights(t, 1, self1, full, 1);
    t->block = 3;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(bond(&o, 0, 4), 12603);
    CHECK_EQ_INT(bond(&o, 1, 4), 28321);
    CHECK_EQ_INT(bond(&o, 2, 4), 49151);
    CHECK_EQ_INT(bond(&o, 3, 4), 65535);
    const uint64_t e3[8] = {40496805, 90999783, 157929636, 210573773, 49998779, 100000610, 149996337, 200004272};
    for (uint32_t i = 0; i < 8; i++) CHECK_EQ_INT(o.emission[i], e3[i]);
    yuma_output_free(&o);

    /* self-weight only on val3: the majority (val1-3, 0.6 of the stake)
     * no longer weights the servers, consensus is 0, so is every clipped
     * weight: emission falls back to the active stake */
    const uint16_t self2[1] = {2};
    net_weights(t, 2, self2, full, 1);
    t->block = 4;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(bond(&o, 0, 7), 12602);
    CHECK_EQ_INT(bond(&o, 1, 7), 28320);
    CHECK_EQ_INT(bond(&o, 2, 7), 49150);
    CHECK_EQ_INT(bond(&o, 3, 7), 65535);
    const uint64_t e4[8] = {99999999, 199999999, 299999999, 399999999, 0, 0, 0, 0};
    for (uint32_t i = 0; i < 8; i++) CHECK_EQ_INT(o.emission[i], e4[i]);
    yuma_output_free(&o);

    /* val3 -> srv4: 1 */
    const uint16_t s7[1] = {7};
    net_weights(t, 2, s7, full, 1);
    t->block = 5;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(bond(&o, 0, 7), 10951);
    CHECK_EQ_INT(bond(&o, 1, 7), 24609);
    CHECK_EQ_INT(bond(&o, 2, 7), 49150);
    CHECK_EQ_INT(bond(&o, 3, 7), 65535);
    const uint64_t e5[8] = {36443733, 81898628, 163565493, 218092144, 0, 0, 0, 500000000};
    for (uint32_t i = 0; i < 8; i++) CHECK_EQ_INT(o.emission[i], e5[i]);
    yuma_output_free(&o);

    t->block = 6;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(bond(&o, 0, 7), 9559);
    CHECK_EQ_INT(bond(&o, 1, 7), 21482);
    CHECK_EQ_INT(bond(&o, 2, 7), 49150);
    CHECK_EQ_INT(bond(&o, 3, 7), 65535);
    const uint64_t e6[8] = {32799427, 73706612, 168638129, 224855830, 0, 0, 0, 500000000};
    for (uint32_t i = 0; i < 8; i++) CHECK_EQ_INT(o.emission[i], e6[i]);
    yuma_output_free(&o);

    t->block = 7;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(bond(&o, 0, 7), 8376);
    CHECK_EQ_INT(bond(&o, 1, 7), 18824);
    CHECK_EQ_INT(bond(&o, 2, 7), 49150);
    CHECK_EQ_INT(bond(&o, 3, 7), 65535);
    const uint64_t e7[8] = {29518068, 66336137, 173203134, 230942659, 0, 0, 0, 500000000};
    for (uint32_t i = 0; i < 8; i++) CHECK_EQ_INT(o.emission[i], e7[i]);
    yuma_output_free(&o);

    t->block = 8;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    const uint64_t e8[8] = {26565175, 59701871, 177311856, 236421095, 0, 0, 0, 500000000};
    for (uint32_t i = 0; i < 8; i++) CHECK_EQ_INT(o.emission[i], e8[i]);
    yuma_output_free(&o);
    net_free(t);
}

/* epoch.rs test_1_graph: one uid with stake 1 and a self-weight.  Its
 * permit is false (append_neuron), so its active stake is 0, the
 * self-weight is masked anyway, and emission falls back to the stake. */
TEST(yuma_pallet_test_1_graph) {
    net *t = net_new(1);
    t->stake[0] = 1;
    t->p.max_validators = 100; /* the mock's InitialMaxAllowedValidators */
    t->block = 1;
    const uint16_t u0[1] = {0}, full[1] = {65535};
    net_weights(t, 0, u0, full, 1);
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(o.rank[0], 0);
    CHECK_EQ_INT(o.trust[0], 0);
    CHECK_EQ_INT(o.consensus[0], 0);
    CHECK_EQ_INT(o.incentive[0], 0);
    CHECK_EQ_INT(o.dividends[0], 0);
    CHECK_EQ_INT(o.emission[0], 1000000000);
    CHECK(o.validator_permit[0]); /* n = 1 < 100 */
    yuma_output_free(&o);
    net_free(t);
}

/* epoch.rs test_10_graph: ten uids with stake 1, self-weights only.  The
 * stake is floor(2^64 / 10) in I64F64, floor(2^32 / 10) = 429496729 in
 * I32F32 (0.0999999999767), so each emission is
 * floor(429496729 * 1e9 / 2^32) = 99999999. */
TEST(yuma_pallet_test_10_graph) {
    net *t = net_new(10);
    t->p.max_validators = 100;
    t->block = 1;
    const uint16_t full[1] = {65535};
    for (uint16_t i = 0; i < 10; i++) {
        t->stake[i] = 1;
        net_weights(t, i, &i, full, 1);
    }
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    for (uint32_t i = 0; i < 10; i++) {
        CHECK_EQ_INT(o.rank[i], 0);
        CHECK_EQ_INT(o.trust[i], 0);
        CHECK_EQ_INT(o.consensus[i], 0);
        CHECK_EQ_INT(o.incentive[i], 0);
        CHECK_EQ_INT(o.dividends[i], 0);
        CHECK_EQ_INT(o.emission[i], 99999999);
    }
    yuma_output_free(&o);
    net_free(t);
}

/* epoch.rs test_512_graph (the pallet ran it on epoch_dense; the sparse
 * epoch stores the same): 64 validators with 21e15 / 64 rao each set
 * 65535 / 512 = 127 on every server (stored max-upscaled: 65535), servers
 * optionally self-weight; three epochs.  interleave 0: validators first;
 * 1: every 8th uid is a validator.  (The test's third, random interleaving
 * is left out: which uids are validators changes nothing above.) */
TEST(yuma_pallet_test_512_graph) {
    const uint32_t n = 512, nv = 64;
    for (int interleave = 0; interleave < 2; interleave++)
        for (int server_self = 0; server_self < 2; server_self++) {
            net *t = net_new(n);
            bool *isv = calloc(n, sizeof *isv);
            for (uint32_t i = 0; i < n; i++) isv[i] = interleave ? i % (n / nv) == 0 : i < nv;
            for (uint32_t i = 0; i < n; i++) t->stake[i] = isv[i] ? 328125000000000ull : 0;
            t->p.max_validators = (uint16_t)nv;
            REQUIRE(net_epoch_quiet(t) == TS_OK); /* block 0: permits to the 64 staked uids */
            t->block = 1;
            uint16_t srv[512], val[512];
            uint32_t ns = 0;
            for (uint32_t i = 0; i < n; i++)
                if (!isv[i]) {
                    srv[ns] = (uint16_t)i;
                    val[ns++] = 65535;
                }
            for (uint32_t i = 0; i < n; i++) {
                uint16_t self = (uint16_t)i;
                if (isv[i]) net_weights(t, i, srv, val, ns);
                else if (server_self) net_weights(t, i, &self, val, 1);
            }
            yuma_output o = {0};
            for (int ep = 0; ep < 3; ep++) {
                yuma_output_free(&o);
                REQUIRE(net_epoch(t, &o) == TS_OK);
            }
            uint32_t server = srv[0], validator = 0; /* uid 0 is a validator in both layouts */
            for (uint32_t i = 0; i < n; i++) {
                if (isv[i]) {
                    CHECK_EQ_INT(o.rank[i], 0);
                    CHECK_EQ_INT(o.trust[i], 0);
                    CHECK_EQ_INT(o.consensus[i], 0);
                    CHECK_EQ_INT(o.incentive[i], 0);
                    CHECK_EQ_INT(o.dividends[i], 1023); /* floor(1/64 * 65535) */
                    CHECK_EQ_INT(o.emission[i], 7812500); /* 0.5 / 64 * 1e9 */
                    CHECK_EQ_INT(bond(&o, i, validator), 0);
                    CHECK_EQ_INT(bond(&o, i, server), 65535);
                } else {
                    CHECK_EQ_INT(o.rank[i], 146); /* floor(1/448 * 65535) */
                    CHECK_EQ_INT(o.trust[i], 65535);
                    CHECK_EQ_INT(o.consensus[i], 146);
                    CHECK_EQ_INT(o.incentive[i], 146);
                    CHECK_EQ_INT(o.dividends[i], 0);
                    CHECK_EQ_INT(o.emission[i], 1116071); /* floor(0.5 / 448 * 1e9) */
                    CHECK_EQ_INT(bond(&o, i, validator), 0);
                    CHECK_EQ_INT(bond(&o, i, server), 0);
                }
            }
            yuma_output_free(&o);
            free(isv);
            net_free(t);
        }
}

/* epoch.rs test_active_stake: 2 validators and 2 servers, stake 1 each,
 * permits for all four.  Both validators weight both servers; then only
 * uid 0 refreshes its weights past the activity cutoff, so uid 1's stake
 * leaves the active stake and its bonds decay; then uid 1 comes back. */
TEST(yuma_pallet_test_active_stake) {
    net *t = net_new(4);
    for (uint32_t i = 0; i < 4; i++) t->stake[i] = 1;
    t->p.max_validators = 4;
    REQUIRE(net_epoch_quiet(t) == TS_OK);
    t->block = 1;
    /* set_weights([2, 3], [32767, 32767]) stores [65535, 65535] */
    const uint16_t srv[2] = {2, 3}, w2[2] = {65535, 65535};
    net_weights(t, 0, srv, w2, 2);
    net_weights(t, 1, srv, w2, 2);
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    for (uint32_t i = 0; i < 4; i++) {
        if (i < 2) CHECK_EQ_INT(o.dividends[i], 32767); /* floor(0.5 * 65535) */
        CHECK_EQ_INT(o.emission[i], 250000000);
    }
    for (uint32_t v = 0; v < 2; v++) {
        CHECK_EQ_INT(bond(&o, v, 0), 0);
        CHECK_EQ_INT(bond(&o, v, 1), 0);
        CHECK_EQ_INT(bond(&o, v, 2), 65535);
        CHECK_EQ_INT(bond(&o, v, 3), 65535);
    }
    yuma_output_free(&o);

    t->block = 5002; /* activity_cutoff + 2: uids 1, 2, 3 inactive */
    net_weights(t, 0, srv, w2, 2);
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK(o.active[0] && !o.active[1] && !o.active[2] && !o.active[3]);
    CHECK_EQ_INT(o.dividends[0], 36044);  /* floor((0.5 * 0.9 + 0.1) * 65535) */
    CHECK_EQ_INT(o.emission[0], 274999999);
    CHECK_EQ_INT(o.dividends[1], 29490);  /* floor(0.5 * 0.9 * 65535) */
    CHECK_EQ_INT(o.emission[1], 224999999);
    for (uint32_t s = 2; s < 4; s++) {
        CHECK_EQ_INT(bond(&o, 0, s), 65535);
        CHECK_EQ_INT(bond(&o, 1, s), 53619); /* 0.45 / 0.55, max-upscaled */
    }
    yuma_output_free(&o);

    net_weights(t, 1, srv, w2, 2); /* at block 5002 */
    t->block = 5003;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(o.dividends[0], 35716); /* floor((0.55 * 0.9 + 0.5 * 0.1) * 65535) */
    CHECK_EQ_INT(o.emission[0], 272501132);
    CHECK_EQ_INT(o.dividends[1], 29818); /* floor((0.45 * 0.9 + 0.5 * 0.1) * 65535) */
    CHECK_EQ_INT(o.emission[1], 227498866);
    for (uint32_t s = 2; s < 4; s++) {
        CHECK_EQ_INT(bond(&o, 0, s), 65535);
        CHECK_EQ_INT(bond(&o, 1, s), 54712);
    }
    yuma_output_free(&o);
    net_free(t);
}

/* epoch.rs test_outdated_weights: 2 validators weight 2 servers 2/3 : 1/3
 * (set_weights([43690, 21845]) stores [65535, 32768]: 21845 * 1.5 =
 * 32767.5 rounds away from zero), servers self-weight.  A new key then
 * takes uid 3 at block 1 (replace_neuron: block_at_registration 1, the old
 * hotkey unstaked, permit and weights left as they were); only uid 0
 * refreshes its weights at block 2, so uid 1's weight on uid 3 is masked. */
TEST(yuma_pallet_test_outdated_weights) {
    net *t = net_new(4);
    for (uint32_t i = 0; i < 4; i++) t->stake[i] = 1;
    t->p.max_validators = 4;
    REQUIRE(net_epoch_quiet(t) == TS_OK);
    t->block = 1;
    const uint16_t srv[2] = {2, 3}, w2[2] = {65535, 32768}, full[1] = {65535};
    net_weights(t, 0, srv, w2, 2);
    net_weights(t, 1, srv, w2, 2);
    for (uint16_t s = 2; s < 4; s++) net_weights(t, s, &s, full, 1);
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    /* uid 3 has the lowest pruning score, so it is the one replaced */
    CHECK(o.pruning_score[3] < o.pruning_score[2]);
    CHECK_EQ_INT(o.validator_trust[0], 65534); /* the trace: Tv 0.9999999998 */
    yuma_output_free(&o);
    t->registered[3] = 1;
    t->stake[3] = 0;
    t->block = 2;
    net_weights(t, 0, srv, w2, 2);
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(o.validator_trust[0], 43689); /* the trace: Tv 0.6666632756 */
    CHECK_EQ_INT(o.dividends[0], 32767);
    CHECK_EQ_INT(o.emission[0], 250000000);
    CHECK_EQ_INT(bond(&o, 0, 2), 65535);
    CHECK_EQ_INT(bond(&o, 0, 3), 65535); /* only uid 0 has weights newer than the registration */
    CHECK_EQ_INT(bond(&o, 1, 3), 0);
    yuma_output_free(&o);
    net_free(t);
}

/* epoch.rs test_zero_weights: a validator (stake 1) and a server (stake 0)
 * with no effective weights (none, self-weight only, weights older than
 * the server's re-registration) get emission by stake; fresh weights give
 * the server its share. */
TEST(yuma_pallet_test_zero_weights) {
    net *t = net_new(2);
    t->stake[0] = 1;
    t->p.max_validators = 100;
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK); /* block 0: no weights, no permits: raw stake */
    CHECK_EQ_INT(o.emission[0], 1000000000);
    CHECK_EQ_INT(o.emission[1], 0);
    yuma_output_free(&o);
    t->block = 1;
    const uint16_t u1[1] = {1}, full[1] = {65535};
    net_weights(t, 1, u1, full, 1); /* server self-weight */
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(o.emission[0], 1000000000);
    CHECK_EQ_INT(o.emission[1], 0);
    yuma_output_free(&o);
    t->block = 2;
    net_weights(t, 0, u1, full, 1);
    t->registered[1] = 2; /* the server's uid taken by a new key in the same block */
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(o.emission[0], 1000000000);
    CHECK_EQ_INT(o.emission[1], 0);
    yuma_output_free(&o);
    t->block = 3;
    net_weights(t, 0, u1, full, 1);
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(o.emission[0], 500000000);
    CHECK_EQ_INT(o.emission[1], 500000000);
    yuma_output_free(&o);
    net_free(t);
}

/* epoch.rs test_validator_permits: permits go to the top validators_n by
 * stake, and move when the servers' stake overtakes.  assignment 0:
 * validators 1, servers 0; 1: validator v has v + n, server s has s.
 * interleave 2 (a random split) uses a fixed shuffle here. */
TEST(yuma_pallet_test_validator_permits) {
    const uint32_t sizes[3][2] = {{2, 1}, {4, 2}, {8, 4}};
    for (int interleave = 0; interleave < 3; interleave++)
        for (int sz = 0; sz < 3; sz++)
            for (int assignment = 0; assignment < 2; assignment++) {
                uint32_t n = sizes[sz][0], nv = sizes[sz][1];
                bool isv[8] = {0};
                if (interleave == 0)
                    for (uint32_t i = 0; i < nv; i++) isv[i] = true;
                else if (interleave == 1)
                    for (uint32_t i = 0; i < n; i++) isv[i] = i % (n / nv) == 0;
                else {
                    uint32_t perm[8] = {5, 2, 7, 0, 3, 6, 1, 4}, k = 0;
                    for (uint32_t t = 0; t < 8 && k < nv; t++)
                        if (perm[t] < n) {
                            isv[perm[t]] = true;
                            k++;
                        }
                }
                net *t = net_new(n);
                t->p.max_validators = (uint16_t)nv;
                for (uint32_t i = 0; i < n; i++)
                    t->stake[i] = isv[i] ? (assignment ? i + n : 1) : (assignment ? i : 0);
                REQUIRE(net_epoch_quiet(t) == TS_OK);
                for (uint32_t i = 0; i < n; i++) CHECK_MSG(t->permit[i] == isv[i], "n %u uid %u", n, i);
                for (uint32_t i = 0; i < n; i++)
                    if (!isv[i]) t->stake[i] += 2 * n;
                t->block = 1;
                REQUIRE(net_epoch_quiet(t) == TS_OK);
                for (uint32_t i = 0; i < n; i++) CHECK_MSG(t->permit[i] == !isv[i], "n %u uid %u", n, i);
                net_free(t);
            }
}

/* ------------------------------------------------ hand-worked cases
 *
 * The network: uids 0 and 1 are validators with 1000 and 3000 TAO (1e12
 * and 3e12 rao), permits from the previous epoch, weights set at block
 * 100; uids 2, 3, 4 are miners without stake, registered at block 0.  The
 * epoch runs at block 101 on 1e9 rao.  Each validator's weights are
 * set_weights([3, 2, 1]) as stored: max-upscaled to 65535, 43690, 21845.
 *
 * Numbers are I32F32 bits (2^32 = 1.0) unless they are u16 or rao.
 *   stake      floor(s * 2^32 / 4e12): 2^30 (0.25) and 3 * 2^30 (0.75)
 *   weights    row sum 131070 = 2 * 65535, so a row normalises to
 *              2^31 (0.5), trunc(2^32 / 3) = 1431655765, trunc(2^32 / 6) = 715827882
 *   kappa      trunc(32767 * 2^32 / 65535) = 2147450879 (0.49999237),
 *              so the minority the median looks past is 1 - kappa = 0.50000763 */
static net *small_net(void) {
    net *t = net_new(5);
    t->stake[0] = 1000000000000ull;
    t->stake[1] = 3000000000000ull;
    t->permit[0] = t->permit[1] = true;
    t->block = 100;
    const uint16_t m[3] = {2, 3, 4}, w[3] = {65535, 43690, 21845};
    net_weights(t, 0, m, w, 3);
    net_weights(t, 1, m, w, 3);
    t->block = 101;
    return t;
}

static uint64_t total_paid(const yuma_output *o) {
    uint64_t s = 0;
    for (uint32_t i = 0; i < o->n; i++) s += o->server_emission[i] + o->validator_emission[i];
    return s;
}

/* Two validators that agree.
 *   consensus  both rows are equal, so the weighted median is their value:
 *              u16 floor(w * 65535 / 2^32) = 32767, 21844, 10922
 *   Tv         row sum 2^31 + 1431655765 + 715827882 = 2^32 - 1, so
 *              floor((2^32 - 1) * 65535 / 2^32) = 65534, not 65535
 *   ranks      floor(w / 4) + floor(3w / 4): 2^31, 1431655764, 715827881
 *              (one ulp below the weights: each product floors); trust
 *              = ranks / preranks = 1.0 -> 65535
 *   incentive  ranks / 4294967293: 2147483649, 1431655764, 715827881
 *              -> u16 32767, 21844, 10922
 *   bonds      delta = W * S column-normalised ~ (0.25, 0.75); with no old
 *              bonds the EMA is 0.1 * delta, normalised again:
 *              1073741821 and 3221225474 on every miner
 *   dividends  sum_j I_j * B_ij, normalised: 1073741820, 3221225475
 *              -> 16383, 49151
 *   emission   I + D sums to 8589934589 (~2.0): a miner gets I / that,
 *              2^30 -> 250000000 rao, 715827882 -> 166666666,
 *              357913940 -> 83333333; the validators 536870910 ->
 *              124999999 and 1610612738 -> 375000000: 999999998 paid
 *   stored     bonds column max-upscaled: uid 1 65535, uid 0
 *              1073741821 / 3221225474 ~ 1/3 -> 21844; pruning scores
 *              max-upscale the combined emission: 21845, 65535, 43690, ... */
TEST(yuma_hand_two_validators_agree) {
    net *t = small_net();
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    const uint16_t cons[5] = {0, 0, 32767, 21844, 10922};
    for (uint32_t i = 0; i < 5; i++) {
        CHECK_EQ_INT(o.consensus[i], cons[i]);
        CHECK_EQ_INT(o.incentive[i], cons[i]);
        CHECK_EQ_INT(o.rank[i], cons[i]);
        CHECK_EQ_INT(o.trust[i], i >= 2 ? 65535 : 0);
        CHECK(o.validator_permit[i]); /* 5 uids < 64 permits */
    }
    CHECK_EQ_INT(o.validator_trust[0], 65534);
    CHECK_EQ_INT(o.validator_trust[1], 65534);
    CHECK_EQ_INT(o.dividends[0], 16383);
    CHECK_EQ_INT(o.dividends[1], 49151);
    const uint64_t se[5] = {0, 0, 250000000, 166666666, 83333333}, ve[5] = {124999999, 375000000, 0, 0, 0};
    const uint16_t ps[5] = {21845, 65535, 43690, 29127, 14563};
    for (uint32_t i = 0; i < 5; i++) {
        CHECK_EQ_INT(o.server_emission[i], se[i]);
        CHECK_EQ_INT(o.validator_emission[i], ve[i]);
        CHECK_EQ_INT(o.emission[i], se[i] + ve[i]);
        CHECK_EQ_INT(o.pruning_score[i], ps[i]);
    }
    CHECK_EQ_INT(total_paid(&o), 999999998);
    for (uint32_t j = 2; j < 5; j++) {
        CHECK_EQ_INT(bond(&o, 0, j), 21844);
        CHECK_EQ_INT(bond(&o, 1, j), 65535);
    }
    CHECK_EQ_INT(o.bonds[0].n, 3);
    CHECK_EQ_INT(o.bonds[2].n, 0);
    yuma_output_free(&o);
    net_free(t);
}

/* uid 0 (0.25 of the stake) puts everything on miner 4, against the
 * majority's 1/6.
 *   consensus  miner 4: scores 1.0 (0.25) and 1/6 (0.75); the pivot is
 *              the middle entry, uid 1's 1/6; uid 0 lies above it with
 *              0.25, and 0 <= 0.50000763 < 1 - 0.25, so the median is
 *              1/6 = 715827882 -> 10922.  Miners 2 and 3 score 0 from
 *              uid 0 (no entry) and keep the majority's 0.5 and 1/3.
 *   clip       uid 0's 1.0 on miner 4 becomes 1/6: its validator trust
 *              falls to 715827882 -> 10922 (uid 1 keeps 65534)
 *   trust      miner 4: ranks after / before the clip =
 *              (178956970 + 536870911) / (2^30 + 536870911) -> 29126
 *   dividends  uid 0's bond is on miner 4 only, a quarter of that column;
 *              D = 226050909 vs 4068916386 -> 3449 and 62085 (16383 and
 *              49151 when it agreed); its rao 26315789 (was 124999999) */
TEST(yuma_hand_disagreeing_validator_is_clipped) {
    net *t = small_net();
    const uint16_t m4[1] = {4}, full[1] = {65535};
    t->block = 100;
    net_weights(t, 0, m4, full, 1);
    t->block = 101;
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(o.consensus[2], 32767);
    CHECK_EQ_INT(o.consensus[3], 21844);
    CHECK_EQ_INT(o.consensus[4], 10922);
    CHECK_EQ_INT(o.validator_trust[0], 10922);
    CHECK_EQ_INT(o.validator_trust[1], 65534);
    CHECK_EQ_INT(o.trust[2], 65535);
    CHECK_EQ_INT(o.trust[4], 29126);
    CHECK_EQ_INT(o.incentive[2], 31042);
    CHECK_EQ_INT(o.incentive[3], 20695);
    CHECK_EQ_INT(o.incentive[4], 13796);
    CHECK_EQ_INT(o.dividends[0], 3449);
    CHECK_EQ_INT(o.dividends[1], 62085);
    CHECK_EQ_INT(o.validator_emission[0], 26315789);
    CHECK_EQ_INT(o.validator_emission[1], 473684210);
    CHECK_EQ_INT(o.bonds[0].n, 1);
    CHECK_EQ_INT(bond(&o, 0, 4), 21844); /* 0.25 / 0.75 of the column's max */
    yuma_output_free(&o);
    net_free(t);
}

/* Bonds move 0.1 of the way per epoch (bonds_moving_average 900000:
 * alpha = 1 - floor(0.9 * 2^32) / 2^32 = 429496730).  Epoch 0: only uid 1
 * weights the miners (uid 0 is active but silent): uid 1 holds every bond.
 * From epoch 1 both weight them; uid 0's normalised bond on a miner is
 *   x1 = 0.1 * 0.25 = 0.025, stored 0.025 / 0.975 * 65535 = 1680.4 -> 1680
 *   x2 = 0.9 * 1680 / (1680 + 65535) + 0.025 = 0.04749 -> 3267
 * and so on (the stored u16 is what the next epoch reads): 4761, 6162,
 * 7472 ... toward 0.25 / 0.75 * 65535 = 21845 (21832 after 79 epochs);
 * its dividends follow: 0, 1638, 3112, 4439, 5633, 6707 ... 16376. */
TEST(yuma_hand_bonds_accumulate) {
    net *t = small_net();
    t->block = 100;
    net_weights(t, 0, NULL, NULL, 0);
    t->block = 101;
    const uint16_t m[3] = {2, 3, 4}, w[3] = {65535, 43690, 21845};
    const uint16_t want_b[6] = {0, 1680, 3267, 4761, 6162, 7472}, want_d[6] = {0, 1638, 3112, 4439, 5633, 6707};
    yuma_output o;
    for (int ep = 0; ep < 80; ep++) {
        if (ep == 1) {
            net_weights(t, 0, m, w, 3);
            t->last_update[0] = 100;
        }
        REQUIRE(net_epoch(t, &o) == TS_OK);
        if (ep < 6) {
            for (uint32_t j = 2; j < 5; j++) {
                CHECK_EQ_INT(bond(&o, 0, j), want_b[ep]);
                CHECK_EQ_INT(bond(&o, 1, j), 65535);
            }
            CHECK_EQ_INT(o.dividends[0], want_d[ep]);
        }
        if (ep == 79) {
            CHECK_EQ_INT(bond(&o, 0, 2), 21832);
            CHECK_EQ_INT(o.dividends[0], 16376);
            CHECK_EQ_INT(o.validator_emission[0], 124945916);
        }
        yuma_output_free(&o);
        t->block++;
        t->last_update[0] = t->last_update[1] = t->block - 1;
    }
    net_free(t);
}

/* uid 0 last set weights at block 100; activity_cutoff 5000.  At block
 * 5100 it is still active (100 + 5000 < 5100 is false); at 5101 it is
 * not: its stake leaves the active stake (uid 1 has 1.0), its weights
 * count for nothing, and with no bonds yet it earns nothing. */
TEST(yuma_hand_inactive_validator) {
    net *t = small_net();
    const uint16_t m[3] = {2, 3, 4}, w[3] = {65535, 43690, 21845};
    t->block = 5100;
    net_weights(t, 1, m, w, 3);
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK(o.active[0]);
    CHECK_EQ_INT(o.dividends[0], 16383); /* as when both agree */
    CHECK_EQ_INT(o.validator_emission[0], 124999999);
    yuma_output_free(&o);
    rows_free(t->bonds, t->n);
    t->block = 5101;
    t->last_update[1] = 5101;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK(!o.active[0] && o.active[1]);
    CHECK(!o.active[2]); /* miners never update: inactive, which changes nothing for them */
    CHECK_EQ_INT(o.dividends[0], 0);
    CHECK_EQ_INT(o.dividends[1], 65535);
    CHECK_EQ_INT(o.validator_emission[0], 0);
    CHECK_EQ_INT(o.validator_emission[1], 500000000);
    CHECK_EQ_INT(o.validator_trust[0], 65534); /* its clipped row still sums to ~1 */
    CHECK_EQ_INT(o.incentive[2], 32767);       /* uid 1 alone: 2^31 exactly */
    CHECK_EQ_INT(o.incentive[3], 21844);       /* 1431655765 = (2^32 - 1) / 3: just short of 21845 */
    CHECK_EQ_INT(o.bonds[0].n, 0);             /* zero stake, zero bond delta */
    yuma_output_free(&o);
    net_free(t);
}

/* A validator's weight on itself is dropped before normalisation: uid 0
 * adding (0, 65535) to its row changes nothing at all. */
TEST(yuma_hand_self_weight_masked) {
    net *a = small_net(), *b = small_net();
    const uint16_t m[4] = {0, 2, 3, 4}, w[4] = {65535, 65535, 43690, 21845};
    b->block = 100;
    net_weights(b, 0, m, w, 4);
    b->block = 101;
    yuma_output oa, ob;
    REQUIRE(net_epoch(a, &oa) == TS_OK);
    REQUIRE(net_epoch(b, &ob) == TS_OK);
    char *ja = yuma_output_to_json(&oa), *jb = yuma_output_to_json(&ob);
    CHECK(ja && jb && !strcmp(ja, jb));
    CHECK_EQ_INT(ob.dividends[0], 16383);
    free(ja);
    free(jb);
    yuma_output_free(&oa);
    yuma_output_free(&ob);
    net_free(a);
    net_free(b);
}

/* Miner 3 re-registered at block 100.  uid 0's weights date from block 100
 * (100 <= 100: set for the previous owner, masked); uid 1 set its at 101.
 *   uid 0's row   65535 + 21845 -> 0.75 on miner 2, 0.25 on miner 4
 *   consensus     miner 3: 0 (0.25) and 1/3 (0.75) -> 1/3, 21844 still
 *   clip          uid 0: 0.75 -> 0.5, 0.25 -> 1/6: trust 2/3 -> 43689
 *   incentive     miner 3 has only 0.75 of the stake behind it: 17873
 *                 (21844 before); miners 2 and 4 gain: 35746, 11915 */
TEST(yuma_hand_outdated_weights_masked) {
    net *t = small_net();
    t->registered[3] = 100;
    const uint16_t m[3] = {2, 3, 4}, w[3] = {65535, 43690, 21845};
    net_weights(t, 1, m, w, 3); /* at block 101 */
    t->block = 102;
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(o.consensus[3], 21844);
    CHECK_EQ_INT(o.validator_trust[0], 43689);
    CHECK_EQ_INT(o.validator_trust[1], 65534);
    CHECK_EQ_INT(o.incentive[2], 35746);
    CHECK_EQ_INT(o.incentive[3], 17873);
    CHECK_EQ_INT(o.incentive[4], 11915);
    CHECK_EQ_INT(o.dividends[0], 11915);
    CHECK_EQ_INT(o.dividends[1], 53619);
    CHECK_EQ_INT(o.bonds[0].n, 2); /* no bond on miner 3 */
    CHECK_EQ_INT(bond(&o, 0, 3), 0);
    /* the same mask applies to stored bonds: uid 0's bond on miner 3 is dropped */
    uint16_t bu[3] = {2, 3, 4}, bv[3] = {65535, 65535, 65535};
    row_set(&t->bonds[0], bu, bv, 3);
    yuma_output o2;
    REQUIRE(net_epoch(t, &o2) == TS_OK);
    CHECK_EQ_INT(bond(&o2, 0, 3), 0);
    yuma_output_free(&o2);
    yuma_output_free(&o);
    net_free(t);
}

/* No weights at all: incentive and dividends are 0, so emission goes by
 * active stake: floor(2^30 * 1e9 / 2^32) = 250000000 and 750000000, all
 * as validator emission.  With no permits the active stake is 0 too, and
 * the raw normalised stake is used instead (same numbers here). */
TEST(yuma_hand_no_weights_fallback) {
    net *t = small_net();
    rows_free(t->weights, t->n);
    for (int pass = 0; pass < 2; pass++) {
        yuma_output o;
        for (uint32_t i = 0; i < 5; i++) t->permit[i] = i < 2 && pass == 0;
        REQUIRE(net_epoch(t, &o) == TS_OK);
        CHECK_EQ_INT(o.validator_emission[0], 250000000);
        CHECK_EQ_INT(o.validator_emission[1], 750000000);
        CHECK_EQ_INT(o.emission[0], 250000000);
        CHECK_EQ_INT(o.emission[1], 750000000);
        for (uint32_t i = 0; i < 5; i++) {
            CHECK_EQ_INT(o.server_emission[i], 0);
            CHECK_EQ_INT(o.incentive[i], 0);
            CHECK_EQ_INT(o.dividends[i], 0);
            CHECK_EQ_INT(o.bonds[i].n, 0);
        }
        CHECK_EQ_INT(o.pruning_score[1], 65535);
        CHECK_EQ_INT(o.pruning_score[0], 21845); /* round(0.25 / 0.75 * 65535) */
        yuma_output_free(&o);
    }
    /* one inactive validator: the active one takes it all */
    t->permit[0] = t->permit[1] = true;
    t->block = 5101;
    t->last_update[1] = 5101;
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK_EQ_INT(o.validator_emission[0], 0);
    CHECK_EQ_INT(o.validator_emission[1], 1000000000);
    yuma_output_free(&o);
    net_free(t);
}

/* Permits: the top max_validators by normalised I32F32 stake; ties go to
 * the higher uid (the runtime's stable ascending sort drops the first
 * n - k).  Only the permits the previous epoch left count this epoch. */
TEST(yuma_hand_permit_ties) {
    net *t = net_new(4);
    for (uint32_t i = 0; i < 4; i++) t->stake[i] = 5;
    t->p.max_validators = 2;
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK(!o.validator_permit[0] && !o.validator_permit[1] && o.validator_permit[2] && o.validator_permit[3]);
    yuma_output_free(&o);
    /* stakes that differ in rao but not in I32F32 tie too: 2^40 and 2^40 + 1
     * of a total near 2^42 both normalise to 2^30 */
    net_free(t);
    t = net_new(3);
    t->stake[0] = (1ull << 40) + 1;
    t->stake[1] = 1ull << 40;
    t->stake[2] = (1ull << 41) - 1;
    t->p.max_validators = 1;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK(o.validator_permit[2]);
    yuma_output_free(&o);
    t->p.max_validators = 2;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK(!o.validator_permit[0] && o.validator_permit[1] && o.validator_permit[2]);
    yuma_output_free(&o);
    t->p.max_validators = 0;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK(!o.validator_permit[0] && !o.validator_permit[1] && !o.validator_permit[2]);
    yuma_output_free(&o);
    net_free(t);
}

/* Bonds of a uid that neither had nor gets a permit are left as stored;
 * a uid that loses its permit has its row emptied. */
TEST(yuma_hand_bond_storage_rules) {
    net *t = small_net();
    t->p.max_validators = 1; /* uid 1 keeps a permit, uid 0 loses its own */
    uint16_t bu[2] = {2, 4}, bv[2] = {100, 200};
    row_set(&t->bonds[0], bu, bv, 2);
    row_set(&t->bonds[3], bu, bv, 2); /* a miner without a permit: stale row */
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    CHECK(!o.validator_permit[0] && o.validator_permit[1]);
    CHECK_EQ_INT(o.bonds[0].n, 0);
    CHECK_EQ_INT(o.bonds[3].n, 2);
    CHECK_EQ_INT(bond(&o, 3, 4), 200);
    CHECK_EQ_INT(o.bonds[1].n, 3);
    yuma_output_free(&o);
    net_free(t);
}

/* generate_emission's owner cut: floor(e * cut / 65535) in I96F32; the
 * pending emission gets floor(e - that quotient with its 32 fractional
 * bits), one rao less whenever the quotient has a fraction. */
TEST(yuma_owner_cut_split) {
    CHECK_EQ_INT(yuma_owner_cut(1000000000, YUMA_OWNER_CUT_DEFAULT), 179995422); /* 179995422.4 */
    CHECK_EQ_INT(yuma_owner_remaining(1000000000, YUMA_OWNER_CUT_DEFAULT), 820004577);
    CHECK_EQ_INT(yuma_owner_cut(1000000000, 0), 0);
    CHECK_EQ_INT(yuma_owner_remaining(1000000000, 0), 1000000000);
    CHECK_EQ_INT(yuma_owner_cut(1000000000, 65535), 1000000000);
    CHECK_EQ_INT(yuma_owner_remaining(1000000000, 65535), 0);
    CHECK_EQ_INT(yuma_owner_cut(65535, 11796), 11796);
    CHECK_EQ_INT(yuma_owner_remaining(65535, 11796), 65535 - 11796);
    CHECK(yuma_owner_cut(UINT64_MAX, 65535) == UINT64_MAX);
}

/* ------------------------------------------------ random networks */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t rng_below(uint64_t *s, uint64_t n) { return n ? rng_next(s) % n : 0; }

/* A random subnet of up to 64 uids.  In "agree" mode every permitted
 * validator puts the same weights on uids without a permit, all fresh and
 * active, so some weight must survive the masks and the clip. */
static net *random_net(uint64_t seed, bool agree, bool all_both) {
    uint64_t s = seed;
    uint32_t n = agree || all_both ? 2 + (uint32_t)rng_below(&s, 63) : 1 + (uint32_t)rng_below(&s, 64);
    net *t = net_new(n);
    t->block = 1000 + rng_below(&s, 10000);
    t->emission = rng_below(&s, 4) ? 1000000000 : rng_next(&s) >> rng_below(&s, 64);
    t->p.kappa = rng_below(&s, 2) ? 32767 : (uint16_t)rng_next(&s);
    t->p.bonds_moving_average = rng_below(&s, 2) ? 900000 : rng_below(&s, 1000001);
    t->p.activity_cutoff = rng_below(&s, 2) ? 5000 : rng_below(&s, 3000);
    uint64_t mv[4] = {64, 0, 1, 1 + rng_below(&s, n)};
    t->p.max_validators = (uint16_t)mv[rng_below(&s, 4)];
    for (uint32_t i = 0; i < n; i++) {
        uint64_t scale[5] = {0, 1, 1000, 1000000000ull, 100000000000000000ull};
        t->stake[i] = rng_below(&s, scale[rng_below(&s, 5)] + 1);
        t->permit[i] = rng_below(&s, 2);
        t->last_update[i] = rng_below(&s, t->block + 1);
        t->registered[i] = rng_below(&s, 3) ? 0 : rng_below(&s, t->block + 1);
    }
    uint16_t uids[64], vals[64];
    if (all_both) { /* every uid a permitted, active validator weighting every other: miner and validator at once */
        t->p.max_validators = 64;
        t->p.activity_cutoff = 1000000;
        for (uint32_t i = 0; i < n; i++) {
            t->stake[i] = 1 + rng_below(&s, 1000000000000ull);
            t->permit[i] = true;
            t->registered[i] = 0;
            uint32_t k = 0;
            for (uint32_t j = 0; j < n; j++)
                if (j != i) {
                    uids[k] = (uint16_t)j;
                    vals[k++] = (uint16_t)(1 + rng_below(&s, 65535));
                }
            net_weights(t, i, uids, vals, k);
        }
        return t;
    }
    if (agree) {
        t->permit[0] = true;
        t->stake[0] += 1;
        if (n > 1) t->permit[n - 1] = false;
        t->p.activity_cutoff = 1000000;
        uint32_t k = 0;
        for (uint32_t j = 0; j < n; j++)
            if (!t->permit[j]) {
                uids[k] = (uint16_t)j;
                vals[k++] = (uint16_t)(1 + rng_below(&s, 65535));
            }
        for (uint32_t i = 0; i < n; i++) {
            t->registered[i] = 0;
            if (t->permit[i]) net_weights(t, i, uids, vals, k);
            t->last_update[i] = t->block;
        }
        return t;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (rng_below(&s, 10) < 7) {
            uint32_t k = 0;
            for (uint32_t j = 0; j < n; j++)
                if (rng_below(&s, 3) == 0) {
                    uids[k] = (uint16_t)j;
                    uint64_t r = rng_below(&s, 4);
                    vals[k++] = r == 0 ? 65535 : r == 1 ? 0 : (uint16_t)rng_next(&s);
                }
            row_set(&t->weights[i], uids, vals, k);
        }
        if (t->permit[i] && rng_below(&s, 2)) {
            uint32_t k = 0;
            for (uint32_t j = 0; j < n; j++)
                if (rng_below(&s, 2)) {
                    uids[k] = (uint16_t)j;
                    vals[k++] = (uint16_t)rng_next(&s);
                }
            row_set(&t->bonds[i], uids, vals, k);
        }
    }
    return t;
}

/* The JSON form of a network (u64 as strings past 2^53). */
static char *net_json(const net *t) {
    size_t cap = 1 << 20, len = 0;
    char *b = malloc(cap);
#define J(...) len += (size_t)snprintf(b + len, cap - len, __VA_ARGS__)
    J("{\"block\": %" PRIu64 ", \"emission\": \"%" PRIu64 "\", \"params\": {\"kappa\": %u, \"bonds_moving_average\": %" PRIu64
      ", \"activity_cutoff\": %" PRIu64 ", \"max_validators\": %u}, \"neurons\": [",
      t->block, t->emission, t->p.kappa, t->p.bonds_moving_average, t->p.activity_cutoff, t->p.max_validators);
    for (uint32_t i = 0; i < t->n; i++) {
        J("%s{\"stake\": \"%" PRIu64 "\", \"last_update\": %" PRIu64 ", \"registered\": %" PRIu64
          ", \"validator_permit\": %s, \"weights\": [",
          i ? ", " : "", t->stake[i], t->last_update[i], t->registered[i], t->permit[i] ? "true" : "false");
        /* written in descending order: the reader sorts */
        for (uint32_t k = t->weights[i].n; k-- > 0;)
            J("%s[%u, %u]", k + 1 < t->weights[i].n ? ", " : "", t->weights[i].e[k].uid, t->weights[i].e[k].value);
        J("], \"bonds\": [");
        for (uint32_t k = 0; k < t->bonds[i].n; k++)
            J("%s[%u, %u]", k ? ", " : "", t->bonds[i].e[k].uid, t->bonds[i].e[k].value);
        J("]}");
    }
    J("]}");
#undef J
    return b;
}

/* Properties of every epoch, over 200 random networks, 50 where the
 * validators agree and 50 where every uid is both miner and validator:
 *   - server + validator emission never exceeds the epoch's emission and
 *     falls short by the truncations only: each of the 2n normalised
 *     shares loses under one I32F32 ulp (worth E / 2^32 rao) and each rao
 *     amount under one rao, so short by at most 2n + 2n * E / 2^32.  (Not
 *     "at most n": that holds while miners and validators are distinct
 *     uids, but a uid that is both is floored twice; the both-ways cases
 *     fall up to ~1.5 n short on 1e9 rao.)  With no stake anywhere and
 *     no surviving weight the runtime pays nobody at all;
 *   - incentive sums to 65535 less at most n (one floor per uid), or to 0
 *     when no weight survives (then no server is paid); with agreeing
 *     validators it is never 0;
 *   - a uid's consensus is at most the largest normalised weight any
 *     permitted validator puts on it (c * rowsum <= w * 65535, exactly);
 *   - no permit, no dividends (bonds are only stored for permit holders);
 *   - exactly min(n, max_validators) new permits (all when n < max);
 *   - the same output twice, and through the JSON form. */
TEST(yuma_property_random_networks) {
    bool over_n = false; /* some both-ways case falls more than n short */
    for (uint64_t c = 0; c < 300; c++) {
        bool agree = c >= 200 && c < 250, all_both = c >= 250;
        net *t = random_net(c * 7919 + 1, agree, all_both);
        const uint32_t n = t->n;
        yuma_input in = net_input(t);
        yuma_output o, o2;
        ts_err e = {0};
        REQUIRE(yuma_epoch(&t->p, &in, &o, &e) == TS_OK);
        REQUIRE(yuma_epoch(&t->p, &in, &o2, &e) == TS_OK);

        uint64_t paid = total_paid(&o), comb = 0;
        for (uint32_t i = 0; i < n; i++) comb += o.emission[i];
        unsigned __int128 slack = 2 * (unsigned __int128)n + (((unsigned __int128)2 * n * t->emission) >> 32) + 1;
        uint64_t staked = 0;
        for (uint32_t i = 0; i < n; i++) staked += t->stake[i];
        CHECK_MSG(paid <= t->emission, "case %" PRIu64 ": paid %" PRIu64 " > %" PRIu64, c, paid, t->emission);
        if (staked || paid) /* no stake and no surviving weight: the runtime pays nobody */
            CHECK_MSG(t->emission - paid <= slack, "case %" PRIu64 ": paid %" PRIu64 " of %" PRIu64, c, paid,
                      t->emission);
        CHECK(comb <= t->emission);
        if (all_both && t->emission - paid > n) over_n = true;

        uint64_t isum = 0, served = 0;
        for (uint32_t i = 0; i < n; i++) {
            isum += o.incentive[i];
            served += o.server_emission[i];
        }
        if (isum == 0) CHECK_MSG(served == 0 && !agree && !all_both, "case %" PRIu64 ": no incentive", c);
        else CHECK_MSG(isum <= 65535 && isum + n >= 65535, "case %" PRIu64 ": incentive sums to %" PRIu64, c, isum);

        for (uint32_t j = 0; j < n; j++) {
            if (!o.consensus[j]) continue;
            bool bounded = false;
            for (uint32_t i = 0; i < n && !bounded; i++) {
                if (!t->permit[i] || i == j || t->last_update[i] <= t->registered[j]) continue;
                uint64_t rowsum = 0, wij = 0;
                for (uint32_t k = 0; k < t->weights[i].n; k++) {
                    const yuma_entry *x = &t->weights[i].e[k];
                    if (x->uid == i || t->last_update[i] <= t->registered[x->uid]) continue;
                    rowsum += x->value;
                    if (x->uid == j) wij = x->value;
                }
                bounded = rowsum && (uint64_t)o.consensus[j] * rowsum <= wij * 65535;
            }
            CHECK_MSG(bounded, "case %" PRIu64 ": consensus of uid %u (%u) above every weight on it", c, j,
                      o.consensus[j]);
        }

        uint32_t permits = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (!t->permit[i])
                CHECK_MSG(o.dividends[i] == 0, "case %" PRIu64 ": uid %u without a permit has dividends", c, i);
            permits += o.validator_permit[i];
        }
        CHECK_EQ_INT(permits, n < t->p.max_validators ? n : t->p.max_validators);

        char *j1 = yuma_output_to_json(&o), *j2 = yuma_output_to_json(&o2);
        REQUIRE(j1 && j2);
        CHECK_MSG(!strcmp(j1, j2), "case %" PRIu64 ": two runs differ", c);
        char *txt = net_json(t);
        cJSON *js = cJSON_Parse(txt);
        yuma_params p3;
        yuma_input in3;
        yuma_output o3;
        REQUIRE(js);
        REQUIRE(yuma_input_from_json(js, &p3, &in3, &e) == TS_OK);
        REQUIRE(yuma_epoch(&p3, &in3, &o3, &e) == TS_OK);
        char *j3 = yuma_output_to_json(&o3);
        CHECK_MSG(j3 && !strcmp(j1, j3), "case %" PRIu64 ": the JSON form gives another result", c);
        free(j3);
        yuma_output_free(&o3);
        yuma_input_free(&in3);
        cJSON_Delete(js);
        free(txt);
        free(j1);
        free(j2);
        yuma_output_free(&o);
        yuma_output_free(&o2);
        net_free(t);
    }
    CHECK(over_n);
}

/* The largest subnet, every uid a validator weighting every uid: runs, and
 * in well under the harness's timeout. */
TEST(yuma_property_max_uids) {
    const uint32_t n = YUMA_MAX_UIDS;
    net *t = net_new(n);
    uint64_t s = 42;
    uint16_t *uids = malloc(n * sizeof *uids), *vals = malloc(n * sizeof *vals);
    t->block = 10;
    t->p.max_validators = 256;
    for (uint32_t i = 0; i < n; i++) {
        /* the weight-setters hold the top stake, so they keep their permits */
        t->stake[i] = i % 16 == 0 ? 1000000000000ull + rng_below(&s, 1000000000000ull) : rng_below(&s, 1000000000ull);
        t->permit[i] = i % 16 == 0;
    }
    for (uint32_t i = 0; i < n; i += 16) {
        for (uint32_t j = 0; j < n; j++) {
            uids[j] = (uint16_t)j;
            vals[j] = (uint16_t)rng_next(&s);
        }
        net_weights(t, i, uids, vals, n);
    }
    t->block = 11;
    double t0 = ts_mono();
    yuma_output o;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    yuma_output_free(&o);
    REQUIRE(net_epoch(t, &o) == TS_OK); /* a second epoch, with the bonds of the first */
    CHECK(ts_mono() - t0 < 30);
    uint64_t isum = 0;
    for (uint32_t i = 0; i < n; i++) isum += o.incentive[i];
    CHECK_MSG(isum <= 65535 && isum + n >= 65535, "incentive sums to %" PRIu64, isum);
    for (uint32_t i = 0; i < n; i++) CHECK(o.validator_permit[i] == (i % 16 == 0));
    yuma_output_free(&o);
    free(uids);
    free(vals);
    net_free(t);
}

/* ------------------------------------------------ bad input */

static bool out_zeroed(const yuma_output *o) {
    static const yuma_output z;
    return !memcmp(o, &z, sizeof z);
}

TEST(yuma_rejects_bad_input) {
    net *t = small_net();
    yuma_input in = net_input(t);
    yuma_output o;
    ts_err e = {0};
    in.n = 0;
    CHECK_ERR(yuma_epoch(&t->p, &in, &o, &e), TS_EINVAL);
    CHECK(out_zeroed(&o) && strstr(e.msg, "n = 0"));
    in.n = YUMA_MAX_UIDS + 1;
    CHECK_ERR(yuma_epoch(&t->p, &in, &o, &e), TS_EINVAL);
    in = net_input(t);
    in.last_update = NULL;
    CHECK_ERR(yuma_epoch(&t->p, &in, &o, &e), TS_EINVAL);
    CHECK(out_zeroed(&o) && strstr(e.msg, "last_update"));
    in = net_input(t);
    /* a weight on uid 7 of 5 */
    const uint16_t bu[2] = {2, 7}, bv[2] = {1, 2};
    row_set(&t->weights[1], bu, bv, 2);
    CHECK_ERR(yuma_epoch(&t->p, &in, &o, &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "weights of uid 1") && strstr(e.msg, "uid 7"), "%s", e.msg);
    CHECK(out_zeroed(&o));
    /* out of order, duplicates */
    const uint16_t du[2] = {3, 2};
    row_set(&t->weights[1], du, bv, 2);
    CHECK_ERR(yuma_epoch(&t->p, &in, &o, &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "uid 2 after uid 3"), "%s", e.msg);
    const uint16_t d2[2] = {3, 3};
    row_set(&t->weights[1], d2, bv, 2);
    CHECK_ERR(yuma_epoch(&t->p, &in, &o, &e), TS_EINVAL);
    row_set(&t->weights[1], bu, bv, 1);
    row_set(&t->bonds[4], d2, bv, 2);
    CHECK_ERR(yuma_epoch(&t->p, &in, &o, &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "bonds of uid 4"), "%s", e.msg);
    row_set(&t->bonds[4], bu, bv, 0);
    /* a row claiming entries with no array */
    t->weights[2].n = 1;
    CHECK_ERR(yuma_epoch(&t->p, &in, &o, &e), TS_EINVAL);
    t->weights[2].n = 0;
    /* the chain's own limits: a total stake its I64F64 cannot hold, a moving average past 1e6 */
    t->stake[0] = (uint64_t)INT64_MAX;
    CHECK_ERR(yuma_epoch(&t->p, &in, &o, &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "uid 1"), "%s", e.msg);
    t->stake[0] = (uint64_t)INT64_MAX - t->stake[1];
    CHECK_ERR(yuma_epoch(&t->p, &in, &o, &e), TS_OK);
    yuma_output_free(&o);
    t->p.bonds_moving_average = 1000001;
    CHECK_ERR(yuma_epoch(&t->p, &in, &o, &e), TS_EINVAL);
    CHECK_ERR(yuma_epoch(NULL, &in, &o, &e), TS_EINVAL);
    net_free(t);
}

/* ------------------------------------------------ JSON and the command */

static const char *SMALL_JSON =
    "{\"block\": 101, \"emission\": 1000000000, \"neurons\": ["
    "{\"stake\": 1000000000000, \"last_update\": 100, \"validator_permit\": true,"
    " \"weights\": [[4, 21845], [2, 65535], [3, 43690]]},"
    "{\"stake\": \"3000000000000\", \"last_update\": 100, \"registered\": 0, \"validator_permit\": true,"
    " \"weights\": [[2, 65535], [3, 43690], [4, 21845]], \"bonds\": []},"
    "{}, {}, {}]}";

TEST(yuma_json_input_and_output) {
    cJSON *j = cJSON_Parse(SMALL_JSON);
    REQUIRE(j);
    yuma_params p;
    yuma_input in;
    ts_err e = {0};
    REQUIRE(yuma_input_from_json(j, &p, &in, &e) == TS_OK);
    CHECK_EQ_INT(in.n, 5);
    CHECK_EQ_INT(p.kappa, 32767);
    CHECK_EQ_INT(p.max_validators, 64);
    CHECK(in.stake[1] == 3000000000000ull);
    CHECK_EQ_INT(in.weights[0].n, 3);
    CHECK_EQ_INT(in.weights[0].e[0].uid, 2); /* sorted */
    CHECK_EQ_INT(in.weights[0].e[2].value, 21845);
    CHECK(!in.validator_permit[2]);
    yuma_output o;
    REQUIRE(yuma_epoch(&p, &in, &o, &e) == TS_OK);
    CHECK_EQ_INT(o.validator_emission[0], 124999999); /* the hand-worked agreeing case */
    char *txt = yuma_output_to_json(&o);
    REQUIRE(txt);
    cJSON *oj = cJSON_Parse(txt);
    REQUIRE(oj);
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(oj, "neurons");
    CHECK_EQ_INT(cJSON_GetArraySize(ns), 5);
    const cJSON *n0 = cJSON_GetArrayItem(ns, 0);
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(n0, "dividends")->valuedouble, 16383);
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(n0, "validator_trust")->valuedouble, 65534);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n0, "active")));
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(n0, "bonds")), 3);
    CHECK(strstr(txt, "\"bonds\": [[2, 21844], [3, 21844], [4, 21844]]"));
    cJSON_Delete(oj);
    free(txt);
    yuma_output_free(&o);
    yuma_input_free(&in);
    cJSON_Delete(j);

    /* a u64 past 2^53 is printed in full */
    net *t = net_new(1);
    t->stake[0] = 1;
    t->emission = UINT64_MAX;
    REQUIRE(net_epoch(t, &o) == TS_OK);
    txt = yuma_output_to_json(&o);
    CHECK(txt && strstr(txt, "\"emission\": 18446744073709551615")); /* all the stake: 2^32 * (2^64 - 1) / 2^32 */
    free(txt);
    yuma_output_free(&o);
    net_free(t);
}

static int json_err(const char *text, ts_err *e) {
    cJSON *j = cJSON_Parse(text);
    if (!j) return -1;
    yuma_params p;
    yuma_input in;
    int rc = yuma_input_from_json(j, &p, &in, e);
    if (!rc) yuma_input_free(&in);
    cJSON_Delete(j);
    return rc;
}

TEST(yuma_json_rejects_bad_input) {
    ts_err e = {0};
#define BAD(text, needle)                                                                   \
    do {                                                                                    \
        CHECK_ERR(json_err(text, &e), TS_EINVAL);                                           \
        CHECK_MSG(strstr(e.msg, needle), "%s: message \"%s\" lacks \"%s\"", text, e.msg, needle); \
    } while (0)
    BAD("[]", "object");
    BAD("{\"block\": 1, \"emission\": 1, \"neurons\": []}", "neurons");
    BAD("{\"emission\": 1, \"neurons\": [{}]}", "block");
    BAD("{\"block\": 1, \"emission\": 1, \"neurons\": [{}], \"extra\": 1}", "'extra'");
    BAD("{\"block\": 1, \"emission\": 1, \"neurons\": [{\"stak\": 1}]}", "'stak'");
    BAD("{\"block\": 1, \"emission\": 1, \"params\": {\"kapa\": 1}, \"neurons\": [{}]}", "'kapa'");
    BAD("{\"block\": 1, \"emission\": 1, \"params\": {\"kappa\": 65536}, \"neurons\": [{}]}", "kappa");
    BAD("{\"block\": 1, \"emission\": 1, \"params\": {\"bonds_moving_average\": 1000001}, \"neurons\": [{}]}",
        "bonds_moving_average");
    BAD("{\"block\": 1.5, \"emission\": 1, \"neurons\": [{}]}", "block");
    BAD("{\"block\": -1, \"emission\": 1, \"neurons\": [{}]}", "block");
    BAD("{\"block\": 1, \"emission\": 1e17, \"neurons\": [{}]}", "string");
    BAD("{\"block\": 1, \"emission\": \"012\", \"neurons\": [{}]}", "emission");
    BAD("{\"block\": 1, \"emission\": \"18446744073709551616\", \"neurons\": [{}]}", "emission");
    BAD("{\"block\": 1, \"emission\": 1, \"neurons\": [{}, {\"weights\": [[2, 1]]}]}", "neuron 1: weights name uid 2");
    BAD("{\"block\": 1, \"emission\": 1, \"neurons\": [{}, {\"weights\": [[0, 1], [0, 2]]}]}", "uid 0 twice");
    BAD("{\"block\": 1, \"emission\": 1, \"neurons\": [{}, {\"bonds\": [[0, 70000]]}]}", "neuron 1: bonds");
    BAD("{\"block\": 1, \"emission\": 1, \"neurons\": [{}, {\"weights\": [[0]]}]}", "[uid, value]");
    BAD("{\"block\": 1, \"emission\": 1, \"neurons\": [{\"validator_permit\": 1}]}", "validator_permit");
    BAD("{\"block\": 1, \"emission\": 1, \"neurons\": [7]}", "neuron 0");
#undef BAD
    /* big values as strings are fine */
    CHECK_ERR(json_err("{\"block\": \"18446744073709551615\", \"emission\": \"18446744073709551615\","
                       " \"neurons\": [{\"stake\": \"9223372036854775807\"}]}",
                       &e),
              TS_OK);
}

TEST(yuma_cli) {
    char bin[600], path[700], cmd[2048], *out = NULL;
    snprintf(bin, sizeof bin, "%s/bin/tessera", th_build_dir());
    if (access(bin, X_OK)) SKIP("%s is not built", bin);
    snprintf(path, sizeof path, "%s/in.json", th_tmpdir());
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs(SMALL_JSON, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' chain yuma --in '%s' 2>&1", bin, path);
    CHECK_EQ_INT(th_run(cmd, &out), 0);
    REQUIRE(out);
    CHECK(strstr(out, "\"validator_emission\": 124999999"));
    char *from_file = out;
    snprintf(cmd, sizeof cmd, "'%s' chain yuma < '%s' 2>&1", bin, path);
    CHECK_EQ_INT(th_run(cmd, &out), 0);
    CHECK(out && !strcmp(out, from_file));
    free(out);
    free(from_file);
    snprintf(cmd, sizeof cmd, "echo '{\"block\": 1, \"emission\": 1, \"neurons\": [{\"weights\": [[3, 1]]}]}' | '%s' chain yuma 2>&1",
             bin);
    CHECK(th_run(cmd, &out) != 0);
    CHECK_MSG(out && strstr(out, "neuron 0: weights name uid 3"), "%s", out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "echo 'not json' | '%s' chain yuma 2>&1", bin);
    CHECK(th_run(cmd, &out) != 0);
    CHECK(out && strstr(out, "not valid JSON"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' chain yuma --help 2>&1", bin);
    CHECK_EQ_INT(th_run(cmd, &out), 0);
    CHECK(out && strstr(out, "spec 143"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' chain --help 2>&1", bin);
    CHECK_EQ_INT(th_run(cmd, &out), 0);
    CHECK(out && strstr(out, "yuma"));
    free(out);
}
