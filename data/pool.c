/* pool.c - deterministic sample pools, sample ids and pool digests.
 *
 * docs/FORMATS.md 5.4 and 5.5 define every step so that another language can
 * reproduce a pool exactly:
 *
 *   seed   = BLAKE2b-256("tessera-pool-v1" 0x00 || u8 len(run) || run ||
 *                        u32le uid || u64le window)
 *   stream = randombytes_buf_deterministic(seed): the IETF ChaCha20 keystream
 *            with key = seed, nonce = "LibsodiumDRG", block counter from 0,
 *            read as consecutive uint64 LE words
 *   below(b) (b >= 1): mask = 2^ceil(log2 b) - 1; repeat x = word & mask
 *            until x < b (rejection sampling: exact, no modulo bias)
 *   draw   = partial Fisher-Yates over the virtual array [0, 1, ..., n-1]:
 *            for i in 0..count-1: j = i + below(n - i);
 *                                  out[i] = a[j]; a[j] = a[i]
 *            with a held as a sparse map (missing key k means a[k] = k).
 *
 * The keystream is produced in chunks with crypto_stream_chacha20_ietf_xor_ic
 * (the primitive randombytes_buf_deterministic is built on), so any pool size
 * takes a fixed 16 KiB buffer; test_data checks the two agree byte for byte. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "data.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "data/pool.c hashes uint32 tokens in place: a little-endian host is required"
#endif

#define POOL_TAG "tessera-pool-v1"

int data_check_run_id(const char *run_id, ts_err *e) {
    if (!run_id || !*run_id) return ts_fail(e, TS_EINVAL, "empty run id");
    size_t n = strlen(run_id);
    if (n > DATA_RUN_ID_MAX)
        return ts_fail(e, TS_EINVAL, "run id of %zu bytes exceeds %d", n, DATA_RUN_ID_MAX);
    if (!ts_run_id_valid(run_id))
        return ts_fail(e, TS_EINVAL, "run id '%s' holds a byte that is not one of [A-Za-z0-9._-]", run_id);
    return TS_OK;
}

int data_pool_seed(const char *run_id, uint32_t uid, uint64_t window, uint8_t seed[DATA_SEED_BYTES],
                   ts_err *e) {
    int rc = data_check_run_id(run_id, e);
    if (rc) return rc;
    uint8_t msg[sizeof POOL_TAG + 1 + DATA_RUN_ID_MAX + 4 + 8];
    size_t n = 0, rl = strlen(run_id);
    memcpy(msg, POOL_TAG, sizeof POOL_TAG); /* includes the 0x00 */
    n += sizeof POOL_TAG;
    msg[n++] = (uint8_t)rl;
    memcpy(msg + n, run_id, rl);
    n += rl;
    ts_put_u32(msg + n, uid);
    n += 4;
    ts_put_u64(msg + n, window);
    n += 8;
    ts_blake2b(seed, DATA_SEED_BYTES, msg, n);
    return TS_OK;
}

/* ------------------------------------------------------- the ChaCha20 words */

enum { STREAM_BLOCKS = 256 }; /* 16 KiB per refill */

typedef struct stream {
    uint8_t key[32];
    uint32_t next_block;
    size_t pos;               /* bytes consumed of buf */
    uint8_t buf[STREAM_BLOCKS * 64];
} stream;

static const uint8_t drg_nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {
    'L', 'i', 'b', 's', 'o', 'd', 'i', 'u', 'm', 'D', 'R', 'G'};

static void stream_refill(stream *s) {
    memset(s->buf, 0, sizeof s->buf);
    crypto_stream_chacha20_ietf_xor_ic(s->buf, s->buf, sizeof s->buf, drg_nonce, s->next_block,
                                       s->key);
    s->next_block += STREAM_BLOCKS;
    s->pos = 0;
}

static void stream_init(stream *s, const uint8_t seed[32]) {
    memcpy(s->key, seed, 32);
    s->next_block = 0;
    stream_refill(s);
}

static inline uint64_t stream_u64(stream *s) {
    if (s->pos == sizeof s->buf) stream_refill(s);
    uint64_t v = ts_get_u64(s->buf + s->pos);
    s->pos += 8;
    return v;
}

/* Uniform in [0, b), b >= 1, by masking and rejection. */
static inline uint64_t below(stream *s, uint64_t b) {
    uint64_t m = b - 1;
    m |= m >> 1;
    m |= m >> 2;
    m |= m >> 4;
    m |= m >> 8;
    m |= m >> 16;
    m |= m >> 32;
    for (;;) {
        uint64_t x = stream_u64(s) & m;
        if (x < b) return x;
    }
}

/* ---------------------------------------------- sparse map for the shuffle */

#define EMPTY UINT64_MAX

typedef struct smap {
    uint64_t *keys, *vals;
    size_t mask;
} smap;

static inline size_t smap_slot(const smap *m, uint64_t k) {
    size_t h = (size_t)((k * 0x9E3779B97F4A7C15ull) >> 17);
    size_t i = h & m->mask;
    while (m->keys[i] != EMPTY && m->keys[i] != k) i = (i + 1) & m->mask;
    return i;
}

static inline uint64_t smap_get(const smap *m, uint64_t k) {
    size_t i = smap_slot(m, k);
    return m->keys[i] == EMPTY ? k : m->vals[i];
}

static inline void smap_set(smap *m, uint64_t k, uint64_t v) {
    size_t i = smap_slot(m, k);
    m->keys[i] = k;
    m->vals[i] = v;
}

int data_pool_draw(const uint8_t seed[DATA_SEED_BYTES], uint64_t n, uint64_t count, uint64_t *out,
                   ts_err *e) {
    if (count > n)
        return ts_fail(e, TS_EINVAL, "cannot draw %llu distinct samples from %llu",
                       (unsigned long long)count, (unsigned long long)n);
    if (n >= EMPTY) return ts_fail(e, TS_EINVAL, "population too large");
    if (count == 0) return TS_OK;
    if (count > (SIZE_MAX / 4) / sizeof(uint64_t))
        return ts_fail(e, TS_ETOOBIG, "pool of %llu samples is too large", (unsigned long long)count);
    /* at most one new key per step: capacity >= 2 * count keeps the table at
     * most half full */
    size_t cap = 16;
    while (cap < 2 * (size_t)count) cap <<= 1;
    smap m = {malloc(cap * sizeof(uint64_t)), malloc(cap * sizeof(uint64_t)), cap - 1};
    stream *s = malloc(sizeof *s);
    if (!m.keys || !m.vals || !s) {
        free(m.keys);
        free(m.vals);
        free(s);
        return ts_fail(e, TS_ENOMEM, "out of memory for a pool of %llu", (unsigned long long)count);
    }
    memset(m.keys, 0xff, cap * sizeof(uint64_t));
    stream_init(s, seed);
    for (uint64_t i = 0; i < count; i++) {
        uint64_t j = i + below(s, n - i);
        out[i] = smap_get(&m, j);
        smap_set(&m, j, smap_get(&m, i));
    }
    sodium_memzero(s, sizeof *s);
    free(s);
    free(m.keys);
    free(m.vals);
    return TS_OK;
}

int data_pool(const data_dataset *ds, const char *run_id, uint32_t uid, uint64_t window,
              uint32_t seq_len, uint64_t count, uint64_t *indices, ts_err *e) {
    if (seq_len == 0 || seq_len > DATA_MAX_SEQ_LEN)
        return ts_fail(e, TS_EINVAL, "sequence length %u out of range 1..%u", seq_len,
                       DATA_MAX_SEQ_LEN);
    uint8_t seed[DATA_SEED_BYTES];
    int rc = data_pool_seed(run_id, uid, window, seed, e);
    if (rc) return rc;
    uint64_t n = data_num_samples(ds, seq_len);
    if (count > n)
        return ts_fail(e, TS_EINVAL,
                       "pool of %llu samples asked, but the dataset has only %llu samples of %u+1 tokens",
                       (unsigned long long)count, (unsigned long long)n, seq_len);
    return data_pool_draw(seed, n, count, indices, e);
}

/* ---------------------------------------------------------- ids and digests */

uint64_t data_sample_id(const uint32_t *tokens, size_t n) {
    /* uint32 LE is the in-memory layout on the (little-endian) hosts Tessera
     * builds for; dataset.c refuses to compile elsewhere */
    ts_hasher h;
    ts_hasher_init(&h, 8);
    ts_hasher_update(&h, tokens, n * sizeof *tokens);
    uint8_t d[8];
    ts_hasher_final(&h, d);
    return ts_get_u64(d);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void data_ids_digest(uint64_t *ids, size_t n, uint8_t out[TS_HASH_BYTES]) {
    qsort(ids, n, sizeof *ids, cmp_u64);
    ts_hasher h;
    ts_hasher_init(&h, TS_HASH_BYTES);
    for (size_t i = 0; i < n; i++) {
        uint8_t b[8];
        ts_put_u64(b, ids[i]);
        ts_hasher_update(&h, b, 8);
    }
    ts_hasher_final(&h, out);
}

int data_sample_ids(const data_dataset *ds, uint32_t seq_len, const uint64_t *indices, size_t n,
                    uint64_t *ids, ts_err *e) {
    if (seq_len == 0 || seq_len > DATA_MAX_SEQ_LEN)
        return ts_fail(e, TS_EINVAL, "sequence length %u out of range 1..%u", seq_len,
                       DATA_MAX_SEQ_LEN);
    int rc = data_prefetch(ds, seq_len, indices, n, e);
    if (rc) return rc;
    /* samples are read and hashed in parallel; the first failing index (in
     * pool order) is the one reported */
    size_t bad_at = SIZE_MAX;
    ts_err bad_err = {0};
#pragma omp parallel
    {
        uint32_t *tok = malloc(((size_t)seq_len + 1) * sizeof *tok);
        ts_err le = {0};
        size_t my_bad = SIZE_MAX;
        if (!tok) ts_fail(&le, TS_ENOMEM, "out of memory");
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) {
            if (!tok || my_bad != SIZE_MAX) continue;
            if (data_sample(ds, seq_len, indices[i], tok, &le)) my_bad = i;
            else ids[i] = data_sample_id(tok, (size_t)seq_len + 1);
        }
        if (!tok) my_bad = 0;
#pragma omp critical
        if (my_bad < bad_at) {
            bad_at = my_bad;
            bad_err = le;
        }
        free(tok);
    }
    if (bad_at != SIZE_MAX) return ts_fail(e, bad_err.code, "%s", bad_err.msg);
    return TS_OK;
}

int data_pool_digest(const data_dataset *ds, uint32_t seq_len, const uint64_t *indices, size_t n,
                     uint8_t out[TS_HASH_BYTES], ts_err *e) {
    uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = data_sample_ids(ds, seq_len, indices, n, ids, e);
    if (!rc) data_ids_digest(ids, n, out);
    free(ids);
    return rc;
}
