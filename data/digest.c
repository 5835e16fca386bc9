/* digest.c - the hash of a dataset's tokens (data_dataset_hash).
 *
 * BLAKE2b-256 of "tessera-dataset-v1" 0x00, u32le shard count, then for each
 * shard in dataset order: u64le token count, then its tokens, each a u32 LE.
 * It covers exactly what sample assignment depends on (the tokens and where
 * shards end), not the file layout: the same tokens as llm.c .bin shards of
 * either width or as .npy shards hash alike.  Run parameters name it
 * (`data_hash`, `val_data_hash`) so every node checks it trains on the
 * owner's data. */
#include <stdlib.h>
#include <string.h>

#include "data.h"

#define CHUNK_TOKENS (1u << 20)

int data_dataset_hash(const data_dataset *ds, uint8_t out[TS_HASH_BYTES], ts_err *e) {
    static const char tag[] = "tessera-dataset-v1";
    ts_hasher h;
    ts_hasher_init(&h, TS_HASH_BYTES);
    ts_hasher_update(&h, tag, sizeof tag); /* with its NUL */
    uint8_t b[8];
    int ns = data_num_shards(ds);
    ts_put_u32(b, (uint32_t)ns);
    ts_hasher_update(&h, b, 4);
    uint32_t *tok = malloc(CHUNK_TOKENS * sizeof *tok);
    if (!tok) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = TS_OK;
    for (int i = 0; i < ns && !rc; i++) {
        uint64_t n = data_shard(ds, i)->ntokens;
        ts_put_u64(b, n);
        ts_hasher_update(&h, b, 8);
        for (uint64_t at = 0; at < n && !rc; at += CHUNK_TOKENS) {
            uint64_t k = n - at < CHUNK_TOKENS ? n - at : CHUNK_TOKENS;
            rc = data_read_tokens(ds, i, at, k, tok, e);
            if (rc) break;
            for (uint64_t j = 0; j < k; j++) {
                uint32_t v = tok[j];
                uint8_t *p = (uint8_t *)&tok[j];
                p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
            }
            ts_hasher_update(&h, tok, k * 4);
        }
    }
    free(tok);
    if (rc) return rc;
    ts_hasher_final(&h, out);
    return TS_OK;
}
