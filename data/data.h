/*
 * data.h - token shards, tokenizers, datasets and deterministic sample pools.
 *
 * The data layer miners and validators share (docs/FORMATS.md section 5 has
 * every byte).  In short:
 *
 *   shard     an llm.c-layout file: 256 int32 header (magic 20240520, version,
 *             token count, ...), then the tokens, uint16 (version 1, llm.c's
 *             own GPT-2 shards) or uint32 (version 2).  Memory-mapped; the
 *             header and the file size are checked before any token is read.
 *   dataset   an ordered list of shards: one file, a directory's *.bin files,
 *             or a glob pattern, sorted byte-wise by path.
 *   sample    seq_len + 1 consecutive tokens of one shard; the samples of a
 *             shard start at token offsets 0, seq_len, 2*seq_len, ... and never
 *             cross a shard boundary.  A dataset numbers its samples shard
 *             after shard (shard 0's samples first).
 *   pool      the samples assigned to (run id, uid, window): `count` distinct
 *             sample indices drawn without replacement from a ChaCha20 stream
 *             (libsodium randombytes_buf_deterministic) seeded with
 *             BLAKE2b-256 of an exact encoding of (run id, uid, window).
 *   sample id BLAKE2b-64 of the sample's tokens (each a uint32 LE);
 *   digest    BLAKE2b-256 of a pool's sorted sample ids.
 *
 * Sources: a dataset is opened from local paths.  Shards kept in an object
 * store are fetched into a local cache by the caller (storage module) and
 * opened through the same calls; a URL here is refused as unsupported.
 *
 * A dataset is read-only once open: several threads may read samples and
 * draw pools from it at once.
 *
 * A mapped shard must not be truncated while open (the kernel would raise
 * SIGBUS on access); shards are written once, atomically, and never changed.
 */
#ifndef TESSERA_DATA_H
#define TESSERA_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ shards */

#define DATA_SHARD_MAGIC 20240520      /* llm.c token shards */
#define DATA_SHARD_VERSION_U16 1       /* uint16 tokens (llm.c GPT-2 layout) */
#define DATA_SHARD_VERSION_U32 2       /* uint32 tokens (Tessera) */
#define DATA_LLAMA3_MAGIC 20240801     /* llm.c's Llama 3 shards, read only */
#define DATA_LLAMA3_VERSION 7          /*   (uint32 tokens) */
#define DATA_HEADER_INTS 256
#define DATA_HEADER_BYTES (DATA_HEADER_INTS * 4)
#define DATA_MAX_SHARD_TOKENS 2147483647u /* the count is an int32 */

/* Tokenizer ids recorded in header[4] (0: not recorded, e.g. llm.c's files). */
enum { DATA_TOK_UNKNOWN = 0, DATA_TOK_BYTE = 1, DATA_TOK_GPT2 = 2 };

typedef struct data_shard_info {
    const char *path;
    int version;          /* 1, 2 or 7 (llm.c Llama 3) */
    int width;            /* bytes per token: 2 or 4 */
    uint64_t ntokens;
    uint32_t vocab_size;  /* header[3]; 0 when not recorded */
    uint32_t tokenizer;   /* header[4]; DATA_TOK_* */
    uint64_t file_bytes;
} data_shard_info;

/* Validates a 1024-byte header against the file length; fills info (path
 * left NULL).  TS_EFORMAT with a message saying what is wrong. */
int data_shard_check(const uint8_t *header, uint64_t file_bytes, data_shard_info *info,
                     ts_err *e);

/* Writes a whole shard atomically (version 1 when vocab_size <= 65536, else
 * 2).  Every token must be < vocab_size. */
int data_shard_write(const char *path, const uint32_t *tokens, uint64_t n, uint32_t vocab_size,
                     uint32_t tokenizer, ts_err *e);

/* Streams tokens into numbered shards DIR/PREFIX_000000.bin, ... of at most
 * shard_tokens tokens each.  Each shard is written to a temporary file and
 * renamed into place (with fsyncs) when full or at close, so a reader never
 * sees a partial shard.  Refuses to overwrite an existing shard. */
typedef struct data_writer data_writer;
int data_writer_open(const char *dir, const char *prefix, uint64_t shard_tokens,
                     uint32_t vocab_size, uint32_t tokenizer, data_writer **out, ts_err *e);
int data_writer_put(data_writer *w, const uint32_t *tokens, size_t n, ts_err *e);
/* Finishes the last shard (an empty final shard is not written) and stores
 * the number of shards written (may be NULL).  Frees w even on error. */
int data_writer_close(data_writer *w, int *shards, ts_err *e);
/* Drops the unfinished shard (its temporary file) and frees w. */
void data_writer_abort(data_writer *w);
uint64_t data_writer_tokens(const data_writer *w);
int data_writer_shards(const data_writer *w);

/* ---------------------------------------------------------------- datasets */

typedef struct data_dataset data_dataset;

/* path: a shard file; a directory (every regular *.bin file in it, not
 * recursive, hidden files skipped); or a glob pattern ("dir/train_*.bin").
 * Shards are ordered by strcmp of their paths.  TS_ENOTFOUND when nothing
 * matches; TS_EUNSUPPORTED for a URL. */
int data_dataset_open(const char *path, data_dataset **out, ts_err *e);
/* An explicit list of shard files, kept in the given order. */
int data_dataset_open_files(const char *const *paths, int n, data_dataset **out, ts_err *e);
void data_dataset_close(data_dataset *ds);

int data_num_shards(const data_dataset *ds);
const data_shard_info *data_shard(const data_dataset *ds, int i);
uint64_t data_num_tokens(const data_dataset *ds);
/* The largest vocabulary any shard declares (0: none declares one). */
uint32_t data_vocab_size(const data_dataset *ds);
/* The tokenizer the shards declare (DATA_TOK_UNKNOWN when none does). */
uint32_t data_tokenizer_id(const data_dataset *ds);

#define DATA_MAX_SEQ_LEN (1u << 24)

/* Samples of one shard of n tokens: floor((n - 1) / seq_len) (0 when n <=
 * seq_len); of a dataset, the sum over its shards.  0 when seq_len is 0. */
uint64_t data_shard_samples(uint64_t ntokens, uint32_t seq_len);
uint64_t data_num_samples(const data_dataset *ds, uint32_t seq_len);
/* Where a sample lives: its shard and the offset of its first token. */
int data_sample_locate(const data_dataset *ds, uint32_t seq_len, uint64_t index, int *shard,
                       uint64_t *offset, ts_err *e);
/* Copies sample `index` (seq_len + 1 tokens) into tokens[].  TS_EINVAL for an
 * index out of range; TS_EFORMAT when a token is >= the shard's declared
 * vocabulary. */
int data_sample(const data_dataset *ds, uint32_t seq_len, uint64_t index, uint32_t *tokens,
                ts_err *e);
/* Asks the kernel to start reading the given samples now, all at once (many
 * reads in flight instead of one at a time: a pool read from a cold cache is
 * many times faster).  Returns at once; optional. */
int data_prefetch(const data_dataset *ds, uint32_t seq_len, const uint64_t *indices, size_t n,
                  ts_err *e);
/* Copies n raw tokens of shard `shard` starting at `offset`. */
int data_read_tokens(const data_dataset *ds, int shard, uint64_t offset, uint64_t n,
                     uint32_t *tokens, ts_err *e);

/* ------------------------------------------------------------ sample pools */

/* The pseudo-uid validators use for random samples; the chain never assigns
 * it (uids are < 65536). */
#define DATA_RANDOM_UID UINT32_MAX
#define DATA_SEED_BYTES 32
#define DATA_RUN_ID_MAX 64

/* Run ids: 1..64 bytes of [A-Za-z0-9._-]. */
int data_check_run_id(const char *run_id, ts_err *e);
/* seed = BLAKE2b-256("tessera-pool-v1" 0x00 || u8 len(run) || run || u32le
 * uid || u64le window). */
int data_pool_seed(const char *run_id, uint32_t uid, uint64_t window,
                   uint8_t seed[DATA_SEED_BYTES], ts_err *e);
/* Draws `count` distinct integers of [0, n) in draw order (a partial
 * Fisher-Yates shuffle fed by exact rejection sampling; docs/FORMATS.md
 * 5.4).  TS_EINVAL when count > n.  Validators also use it to pick positions
 * inside a pool. */
int data_pool_draw(const uint8_t seed[DATA_SEED_BYTES], uint64_t n, uint64_t count,
                   uint64_t *out, ts_err *e);
/* The pool of (run_id, uid, window): count sample indices of ds at seq_len. */
int data_pool(const data_dataset *ds, const char *run_id, uint32_t uid, uint64_t window,
              uint32_t seq_len, uint64_t count, uint64_t *indices, ts_err *e);

/* BLAKE2b-64 of n tokens, each encoded as uint32 LE; the id is the 8 digest
 * bytes read as a uint64 LE. */
uint64_t data_sample_id(const uint32_t *tokens, size_t n);
/* BLAKE2b-256 of the ids sorted ascending, each as uint64 LE.  ids is
 * sorted in place. */
void data_ids_digest(uint64_t *ids, size_t n, uint8_t out[TS_HASH_BYTES]);
/* The ids of the samples at indices[0..n), in that order (read and hashed
 * on all OpenMP threads, after a data_prefetch). */
int data_sample_ids(const data_dataset *ds, uint32_t seq_len, const uint64_t *indices, size_t n,
                    uint64_t *ids, ts_err *e);
/* The digest of the samples at indices[0..n) (their order does not matter):
 * what the miner attaches and the validator recomputes. */
int data_pool_digest(const data_dataset *ds, uint32_t seq_len, const uint64_t *indices,
                     size_t n, uint8_t out[TS_HASH_BYTES], ts_err *e);

/* -------------------------------------------------------------- tokenizers
 *
 * A tokenizer turns a document's bytes into tokens.  The byte-level tokenizer
 * maps byte b to token b and has one special token, end-of-document (256):
 * vocabulary 257.  Another tokenizer (BPE) plugs in by filling this table. */
typedef struct data_tokenizer data_tokenizer;
struct data_tokenizer {
    const char *name;     /* "byte" */
    uint32_t id;          /* DATA_TOK_*, recorded in shard headers */
    uint32_t vocab_size;
    uint32_t eot;         /* the end-of-document token prep appends */
    /* Encodes n bytes into out[], which holds at least n tokens (no tokenizer
     * makes more tokens than bytes); *nout receives the count. */
    int (*encode)(const data_tokenizer *t, const uint8_t *text, size_t n, uint32_t *out,
                  size_t *nout, ts_err *e);
    /* The bytes of one token (at most cap); -1 for a special or unknown
     * token, which has no bytes. */
    int (*decode)(const data_tokenizer *t, uint32_t token, uint8_t *out, size_t cap);
    void (*destroy)(data_tokenizer *t);
    void *impl;
};

/* "byte" (the only one so far). */
int data_tokenizer_open(const char *name, data_tokenizer **out, ts_err *e);
/* The tokenizer a shard header names, or NULL when none is known. */
int data_tokenizer_for_id(uint32_t id, data_tokenizer **out, ts_err *e);
void data_tokenizer_close(data_tokenizer *t);

/* ------------------------------------------------------------- preparation */

typedef struct data_prep_opts {
    const char *const *inputs;  /* files and directories (walked recursively) */
    int ninputs;
    const char *out_dir;        /* writes OUT/train/train_NNNNNN.bin, OUT/val/val_NNNNNN.bin */
    const char *tokenizer;      /* "byte" */
    uint64_t shard_tokens;      /* tokens per shard (<= DATA_MAX_SHARD_TOKENS) */
    double val_fraction;        /* [0, 1): share of documents held out */
    const char *doc_sep;        /* NULL: one document per file; else a line
                                   equal to this ends a document ("%": fortune
                                   files; "": blank lines) */
    bool force;                 /* replace the shards of an earlier run */
    bool progress;              /* progress line on stderr */
} data_prep_opts;

typedef struct data_prep_stats {
    uint64_t files, skipped_binary, bytes_in;
    uint64_t docs[2], tokens[2];   /* [0] train, [1] val */
    int shards[2];
    double seconds;
} data_prep_stats;

/* Text files to shards.  Directory walks follow no symbolic links and skip
 * hidden entries; files whose first 8 KiB hold a NUL byte are skipped as
 * binary.  Documents are split train/val by their content hash (see
 * docs/FORMATS.md 5.6) and written to OUT/prep.json with the statistics. */
int data_prep(const data_prep_opts *o, data_prep_stats *st, ts_err *e);

typedef struct data_synth_opts {
    const char *out_dir;
    uint64_t tokens;            /* total tokens to write (train + val) */
    uint64_t seed;
    uint64_t shard_tokens;
    double val_fraction;
    bool force;
    bool progress;
} data_synth_opts;

typedef struct data_synth_stats {
    uint64_t docs[2], tokens[2];
    int shards[2];
    double entropy_nats;        /* optimal loss per in-document transition */
} data_synth_stats;

/* A deterministic synthetic corpus in the same layout as data_prep, with
 * exact learnable structure (docs/FORMATS.md 5.7): documents are walks of a
 * fixed random Markov chain over 64 printable bytes, each byte having 4
 * successors of probabilities 1/2, 1/4, 1/8, 1/8 (entropy 1.75 bits). */
int data_synth(const data_synth_opts *o, data_synth_stats *st, ts_err *e);

#ifdef __cplusplus
}
#endif

#endif
