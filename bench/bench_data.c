/* bench_data.c - sample pools and token reads on a 1e9-token shard.
 *
 * Creates a sparse uint16 shard of --tokens tokens (a 2 GB file that takes
 * no disk: its body is a hole, read back as zeros) in $TMPDIR, or with
 * --fill writes real pseudo-random tokens, then times:
 *   - opening the dataset (header and size checks, mmap);
 *   - drawing the pool of --count samples (seed + ChaCha20 stream + sparse
 *     Fisher-Yates), the median of 7 runs;
 *   - reading the pool's samples (random access) and digesting their ids;
 *   - sequential token reads.
 * The shard is removed at the end (and on SIGINT/SIGTERM). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "data/data.h"

static char g_dir[512], g_path[600];

static void cleanup(void) {
    if (g_path[0]) unlink(g_path);
    if (g_dir[0]) rmdir(g_dir);
}

static void on_signal(int sig) {
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Drops the shard's pages from the page cache (only this file's), so the
 * next read is cold: from disk for a filled shard, fresh zero pages for a
 * sparse one. */
static void evict(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int make_shard(const char *path, uint64_t n, bool fill, ts_err *e) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return ts_fail(e, TS_EIO, "%s: %s", path, strerror(errno));
    uint8_t h[DATA_HEADER_BYTES] = {0};
    ts_put_u32(h, DATA_SHARD_MAGIC);
    ts_put_u32(h + 4, DATA_SHARD_VERSION_U16);
    ts_put_u32(h + 8, (uint32_t)n);
    ts_put_u32(h + 12, 257);
    ts_put_u32(h + 16, DATA_TOK_BYTE);
    int rc = TS_OK;
    if (write(fd, h, sizeof h) != (ssize_t)sizeof h) rc = ts_fail(e, TS_EIO, "%s: write failed", path);
    if (!rc && fill) {
        enum { CH = 1 << 22 };
        uint16_t *buf = malloc(CH * sizeof *buf);
        uint64_t x = 0x9E3779B97F4A7C15ull;
        for (uint64_t done = 0; done < n && !rc; done += CH) {
            uint64_t k = n - done < CH ? n - done : CH;
            for (uint64_t i = 0; i < k; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                buf[i] = (uint16_t)(x % 257);
            }
            if (write(fd, buf, k * 2) != (ssize_t)(k * 2)) rc = ts_fail(e, TS_EIO, "%s: write failed (disk full?)", path);
            ts_progress("bench_data: writing tokens %3.0f%%", 100.0 * (double)(done + k) / (double)n);
        }
        ts_progress_done();
        free(buf);
    } else if (!rc && ftruncate(fd, (off_t)(DATA_HEADER_BYTES + 2 * n))) {
        rc = ts_fail(e, TS_EIO, "%s: ftruncate: %s", path, strerror(errno));
    }
    close(fd);
    return rc;
}

int main(int argc, char **argv) {
    int64_t tokens = 0, seq = 0, count = 0;
    bool fill = false;
    const ts_opt opts[] = {
        {"tokens", TS_OPT_INT, &tokens, "1000000000", "tokens in the shard (<= 2147483647)", 0, 0},
        {"seq", TS_OPT_INT, &seq, "2048", "sequence length (a sample is seq+1 tokens)", 0, 0},
        {"count", TS_OPT_INT, &count, "30720", "pool size", 0, 0},
        {"fill", TS_OPT_BOOL, &fill, "false", "write real tokens instead of a sparse file", 0, 0},
    };
    const ts_cmdline c = {.prog = "bench_data", .usage = "[--tokens N] [--seq T] [--count K] [--fill]",
                          .summary = "Pool generation and token read throughput on one large shard.",
                          .opts = opts, .nopts = 4, .max_pos = 0};
    ts_err e = {0};
    bool help;
    if (ts_init(&e) || ts_cmdline_parse(&c, argc, argv, NULL, NULL, &help, &e)) {
        fprintf(stderr, "bench_data: %s\n", e.msg);
        return 2;
    }
    if (help) return 0;
    if (tokens < 2 || tokens > DATA_MAX_SHARD_TOKENS || seq < 1 || seq > DATA_MAX_SEQ_LEN || count < 1) {
        fprintf(stderr, "bench_data: arguments out of range\n");
        return 2;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/tessera-bench-data-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "bench_data: mkdtemp: %s\n", strerror(errno));
        g_dir[0] = 0;
        return 1;
    }
    snprintf(g_path, sizeof g_path, "%s/bench_000000.bin", g_dir);
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    printf("# bench_data: shard of %lld uint16 tokens (%s), seq %lld, pool %lld\n", (long long)tokens,
           fill ? "filled" : "sparse", (long long)seq, (long long)count);
    double t0 = ts_mono();
    if (make_shard(g_path, (uint64_t)tokens, fill, &e)) {
        fprintf(stderr, "bench_data: %s\n", e.msg);
        return 1;
    }
    double t_make = ts_mono() - t0;

    data_dataset *ds;
    t0 = ts_mono();
    if (data_dataset_open(g_path, &ds, &e)) {
        fprintf(stderr, "bench_data: %s\n", e.msg);
        return 1;
    }
    double t_open = ts_mono() - t0;
    uint64_t n = data_num_samples(ds, (uint32_t)seq);
    if ((uint64_t)count > n) {
        fprintf(stderr, "bench_data: pool of %lld > %llu samples\n", (long long)count, (unsigned long long)n);
        data_dataset_close(ds);
        return 2;
    }
    uint64_t *idx = malloc((size_t)count * sizeof *idx);
    uint32_t *tok = malloc(((size_t)seq + 1) * sizeof *tok);

    /* pool generation: median of 7 */
    double tp[7];
    for (int r = 0; r < 7; r++) {
        t0 = ts_mono();
        if (data_pool(ds, "bench-run", (uint32_t)r, 1000, (uint32_t)seq, (uint64_t)count, idx, &e)) {
            fprintf(stderr, "bench_data: %s\n", e.msg);
            return 1;
        }
        tp[r] = ts_mono() - t0;
    }
    qsort(tp, 7, sizeof *tp, cmp_d);

    /* the same draw from a population of a billion (seq 1) */
    uint8_t seed[DATA_SEED_BYTES];
    data_pool_seed("bench-run", 0, 1000, seed, &e);
    uint64_t *big = malloc((size_t)count * sizeof *big);
    t0 = ts_mono();
    data_pool_draw(seed, (uint64_t)tokens - 1, (uint64_t)count, big, &e);
    double t_big = ts_mono() - t0;
    free(big);

    /* random-access reads of the pool's samples: cold (evicted), then warm */
    double t_read[3];
    uint64_t sink = 0;
    for (int pass = 0; pass < 3; pass++) {
        if (pass < 2) evict(g_path);
        t0 = ts_mono();
        if (pass == 1 && data_prefetch(ds, (uint32_t)seq, idx, (size_t)count, &e)) {
            fprintf(stderr, "bench_data: %s\n", e.msg);
            return 1;
        }
        for (int64_t i = 0; i < count; i++) {
            if (data_sample(ds, (uint32_t)seq, idx[i], tok, &e)) {
                fprintf(stderr, "bench_data: %s\n", e.msg);
                return 1;
            }
            sink += tok[seq / 2];
        }
        t_read[pass] = ts_mono() - t0;
    }
    /* digest: read + BLAKE2b-64 per sample + sort + BLAKE2b-256 */
    uint8_t dig[TS_HASH_BYTES];
    t0 = ts_mono();
    if (data_pool_digest(ds, (uint32_t)seq, idx, (size_t)count, dig, &e)) {
        fprintf(stderr, "bench_data: %s\n", e.msg);
        return 1;
    }
    double t_dig = ts_mono() - t0;

    /* sequential reads of up to 256M tokens */
    enum { CH = 1 << 20 };
    uint32_t *buf = malloc(CH * sizeof *buf);
    uint64_t seq_tokens = (uint64_t)tokens < (256u << 20) ? (uint64_t)tokens : (256u << 20);
    evict(g_path);
    t0 = ts_mono();
    for (uint64_t off = 0; off < seq_tokens; off += CH) {
        uint64_t k = seq_tokens - off < CH ? seq_tokens - off : CH;
        if (data_read_tokens(ds, 0, off, k, buf, &e)) {
            fprintf(stderr, "bench_data: %s\n", e.msg);
            return 1;
        }
        sink += buf[k - 1];
    }
    double t_seqr = ts_mono() - t0;
    free(buf);

    double pool_tok = (double)count * (double)(seq + 1);
    printf("shard create           %8.3f s  (%s)\n", t_make, fill ? "written" : "sparse, ftruncate");
    printf("dataset open           %8.3f ms (header + size checks + mmap)\n", 1e3 * t_open);
    printf("samples                %llu of %lld+1 tokens\n", (unsigned long long)n, (long long)seq);
    printf("pool generation        %8.3f ms median of 7 (min %.3f, max %.3f): %lld of %llu samples\n",
           1e3 * tp[3], 1e3 * tp[0], 1e3 * tp[6], (long long)count, (unsigned long long)n);
    printf("pool draw, N = %lld %8.3f ms\n", (long long)tokens - 1, 1e3 * t_big);
    printf("pool read, cold        %8.3f ms  %.1f M tokens/s (%.0f M tokens)\n", 1e3 * t_read[0],
           pool_tok / t_read[0] / 1e6, pool_tok / 1e6);
    printf("pool read, cold, prefetched %6.0f ms  %.1f M tokens/s\n", 1e3 * t_read[1],
           pool_tok / t_read[1] / 1e6);
    printf("pool read, warm        %8.3f ms  %.1f M tokens/s\n", 1e3 * t_read[2], pool_tok / t_read[2] / 1e6);
    printf("pool digest            %8.3f ms  (read + BLAKE2b-64 per sample + BLAKE2b-256)\n", 1e3 * t_dig);
    printf("sequential read, cold  %8.3f ms  %.1f M tokens/s (%.0f M tokens)\n", 1e3 * t_seqr,
           (double)seq_tokens / t_seqr / 1e6, (double)seq_tokens / 1e6);
    printf("(checksum %llu)\n", (unsigned long long)sink);
    printf("reproduce: %s --tokens %lld --seq %lld --count %lld%s\n", argv[0], (long long)tokens,
           (long long)seq, (long long)count, fill ? " --fill" : "");
    free(idx);
    free(tok);
    data_dataset_close(ds);
    return 0;
}
