/* bench_chain.c - how the local subnet scales with the length of its log.
 *
 * Builds a subnet of 256 uids (64 staked validators) whose log holds N lines,
 * most of them full weight vectors (256 entries, ~2.6 KB each, the heaviest
 * kind), then measures:
 *   - a full replay (what chain_open costs a process that starts late),
 *   - a metagraph read when nothing changed (what a node pays every few
 *     seconds),
 *   - a metagraph read after another process appended one line,
 *   - an append through the API (lock, catch up, sign, write, fdatasync).
 *
 *   build/bench/bench_chain [LINES]     (default 20000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chain/chain.h"
#include "chain/chain_internal.h"
#include "common/common.h"

static void die(const ts_err *e) {
    fprintf(stderr, "bench_chain: %s\n", e->msg);
    exit(1);
}

static void key(ts_keypair *kp, uint32_t i) {
    uint8_t seed[TS_SEED_BYTES] = {0};
    ts_put_u32(seed, i);
    seed[31] = 0x77;
    ts_keypair_from_seed(kp, seed);
}

int main(int argc, char **argv) {
    ts_err e = {0};
    if (ts_init(&e)) die(&e);
    ts_log_set_level(TS_LOG_ERROR);
    long want = argc > 1 ? atol(argv[1]) : 20000;
    if (want < 1000) want = 1000;
    enum { UIDS = 256, VALIDATORS = 64 };
    char dir[] = "/tmp/tessera-bench-chain-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    ts_keypair owner;
    key(&owner, 1000000);
    chain_genesis g;
    chain_local_genesis_defaults(&g);
    g.run_id = "bench";
    g.block_time = 1;
    g.max_uids = UIDS;
    g.max_validators = VALIDATORS;
    memcpy(g.owner, owner.pk, TS_PK_BYTES);
    if (chain_local_init(dir, &g, &e)) die(&e);
    char url[256], logp[256];
    snprintf(url, sizeof url, "local:%s", dir);
    snprintf(logp, sizeof logp, "%s/chain.log", dir);
    chain *c;
    if (chain_open(url, &c, &e)) die(&e);
    const uint8_t *gh = chain_get_params(c)->genesis_hash;

    /* Write the log directly (no fsync per line): registrations, stake,
     * commitments, then weight vectors until N lines. */
    FILE *f = fopen(logp, "ab");
    if (!f) return 1;
    static ts_keypair keys[UIDS];
    chain_weight w[UIDS];
    uint64_t seq = 0;
    size_t bytes = 0;
    for (uint32_t u = 0; u < UIDS; u++) key(&keys[u], u);
    for (long i = 0; i < want; i++) {
        chain_tx tx;
        memset(&tx, 0, sizeof tx);
        const ts_keypair *kp;
        char cred[129];
        if (i < UIDS) {
            tx.kind = CHAIN_TX_REGISTER;
            kp = &keys[i];
        } else if (i < UIDS + VALIDATORS) {
            tx.kind = CHAIN_TX_STAKE;
            memcpy(tx.target, keys[i - UIDS].pk, TS_PK_BYTES);
            tx.delta = (int64_t)(1000 + i) * (int64_t)CHAIN_RAO_PER_TAO;
            kp = &owner;
        } else if (i < 2 * UIDS + VALIDATORS) {
            uint32_t u = (uint32_t)(i - UIDS - VALIDATORS);
            tx.kind = CHAIN_TX_COMMIT;
            for (int k = 0; k < 128; k++) cred[k] = "0123456789abcdefghijklmnopqrstuvwxyz"[(u * 7 + k) % 36];
            cred[128] = 0;
            tx.data = (const uint8_t *)cred;
            tx.len = 128;
            kp = &keys[u];
        } else {
            uint32_t v = (uint32_t)(i % VALIDATORS);
            for (uint32_t u = 0; u < UIDS; u++)
                w[u] = (chain_weight){u, (uint16_t)(u == (i % UIDS) ? 65535 : 1 + (u * 2654435761u + (uint32_t)i) % 60000)};
            tx.kind = CHAIN_TX_WEIGHTS;
            tx.w = w;
            tx.nw = UIDS;
            kp = &keys[v];
        }
        memcpy(tx.signer, kp->pk, TS_PK_BYTES);
        tx.seq = seq++;
        tx.block = (uint64_t)(i / 100);
        char *line;
        size_t len;
        if (chain_local_format_tx(gh, &tx, kp, &line, &len, &e)) die(&e);
        fwrite(line, 1, len, f);
        bytes += len;
        free(line);
        if (i % 1000 == 0) ts_progress("writing the log: %ld of %ld lines", i, want);
    }
    fclose(f);
    ts_progress_done();
    chain_close(c);

    /* 1. full replay */
    double t0 = ts_mono();
    if (chain_open(url, &c, &e)) die(&e);
    double replay = ts_mono() - t0;
    chain_stats st;
    if (chain_get_stats(c, &st, &e)) die(&e);
    if (st.accepted != (uint64_t)want || st.rejected) {
        fprintf(stderr, "bench_chain: %llu accepted, %llu rejected of %ld\n",
                (unsigned long long)st.accepted, (unsigned long long)st.rejected, want);
        return 1;
    }

    /* 2. metagraph reads with nothing new */
    chain_metagraph mg;
    int reps = 2000;
    t0 = ts_mono();
    for (int i = 0; i < reps; i++) {
        if (chain_metagraph_get(c, &mg, &e)) die(&e);
        chain_metagraph_free(&mg);
    }
    double idle = (ts_mono() - t0) / reps;

    /* 3. reads after another handle appended one line; 4. the appends */
    chain *wr;
    if (chain_open(url, &wr, &e)) die(&e);
    int appends = 100;
    double t_app = 0, t_read = 0;
    for (int i = 0; i < appends; i++) {
        char data[64];
        snprintf(data, sizeof data, "s3://bucket-%d", i);
        t0 = ts_mono();
        if (chain_commit(wr, &keys[i % UIDS], data, &e)) die(&e);
        t_app += ts_mono() - t0;
        t0 = ts_mono();
        if (chain_metagraph_get(c, &mg, &e)) die(&e);
        t_read += ts_mono() - t0;
        chain_metagraph_free(&mg);
    }
    chain_close(wr);
    chain_close(c);

    char sz[32];
    ts_fmt_bytes(sz, sizeof sz, (double)bytes);
    printf("local subnet log: %ld lines, %s, %d uids, %d validators\n", want, sz, UIDS, VALIDATORS);
    printf("  full replay (chain_open)          %8.3f s   %9.0f lines/s  %7.1f MB/s\n", replay,
           (double)want / replay, (double)bytes / replay / 1e6);
    printf("  metagraph read, nothing new       %8.1f us\n", idle * 1e6);
    printf("  metagraph read after 1 new line   %8.1f us\n", t_read / appends * 1e6);
    printf("  append via the API (fdatasync)    %8.2f ms   (log under /tmp)\n", t_app / appends * 1e3);
    printf("command: %s/bench/bench_chain %ld\n", getenv("BUILD") ? getenv("BUILD") : "build", want);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) return 1;
    return 0;
}
