/*
 * data.h - token shards, tokenizers, datasets and deterministic sample pools.
 *
 * The data layer miners and validators share (docs/FORMATS.md section 5 has
 * every byte).  In short:
 *
 *   shard     an llm.c-layout file: 256 int32 header (magic 20240520, version,
 *             token count, ...), then the tokens, uint16 (version 1, llm.c's
 *             own GPT-2 shards) or uint32 (version 2); or a NumPy .npy file
 *             of a 1-D '<u2' or '<u4' array (the shards Templar's miners
 *             download).  The first bytes tell the format (a file named
 *             *.npy must be a .npy file).  Memory-mapped; the header and the
 *             file size are checked before any token is read.
 *   dataset   an ordered list of shards: one file, a directory's *.bin and
 *             *.npy files, or a glob pattern, sorted byte-wise by path.
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

/* NumPy .npy shards (docs/FORMATS.md 5.1.1): "\x93NUMPY", version 1.0, 2.0 or
 * 3.0, the dict's length (uint16 LE for 1.0, else uint32 LE), the dict
 * {'descr': '<u4', 'fortran_order': False, 'shape': (N,), } padded with
 * spaces and ending in '\n', then N tokens.  Only '<u2' and '<u4' are read
 * ('=' and '|' forms are refused: numpy writes '<' for them); the tokens may
 * start at any offset (numpy aligns it to 64 bytes, older numpy to 16). */
#define DATA_NPY_MAGIC "\x93NUMPY"
#define DATA_NPY_MAGIC_BYTES 6
#define DATA_NPY_MAX_HEADER 65536u     /* longest dict read (numpy's own cap is 10,000) */

/* data_shard_info.format */
enum { DATA_FMT_LLMC = 0, DATA_FMT_NPY = 1 };

/* Tokenizer ids recorded in header[4] (0: not recorded, e.g. llm.c's files). */
/* DATA_TOK_JSON: a tokenizer.json; the corpus's prep.json names it and its
 * hash. */
enum { DATA_TOK_UNKNOWN = 0, DATA_TOK_BYTE = 1, DATA_TOK_GPT2 = 2, DATA_TOK_JSON = 3 };

typedef struct data_shard_info {
    const char *path;
    int format;           /* DATA_FMT_LLMC or DATA_FMT_NPY */
    int version;          /* llm.c: 1, 2 or 7 (Llama 3); .npy: 1, 2 or 3 */
    int width;            /* bytes per token: 2 or 4 */
    uint64_t ntokens;
    uint32_t vocab_size;  /* header[3]; 0 when not recorded (always for .npy) */
    uint32_t tokenizer;   /* header[4]; DATA_TOK_* (.npy: DATA_TOK_UNKNOWN) */
    uint64_t data_offset; /* bytes before the first token: 1024, or the .npy header's */
    uint64_t file_bytes;
} data_shard_info;

/* Validates a 1024-byte llm.c header against the file length; fills info
 * (path left NULL).  TS_EFORMAT with a message saying what is wrong. */
int data_shard_check(const uint8_t *header, uint64_t file_bytes, data_shard_info *info,
                     ts_err *e);

/* The length of a .npy file's header (magic to the first token), from the
 * file's first n bytes (n >= 12, or the whole file when shorter): checks the
 * magic, the version, and that the length is within DATA_NPY_MAX_HEADER and
 * the file - so a caller may then read that many bytes.  TS_EFORMAT. */
int data_npy_header_bytes(const uint8_t *buf, size_t n, uint64_t file_bytes, size_t *hbytes,
                          ts_err *e);
/* Validates a whole .npy header (buf: the file's first n bytes, n at least
 * data_npy_header_bytes) against the file length: the dict parsed strictly
 * (exactly the keys descr, fortran_order, shape, once each, any order), dtype
 * '<u2' or '<u4', fortran_order False, shape (N,) with N <=
 * DATA_MAX_SHARD_TOKENS, and a file of exactly offset + N * width bytes.
 * Fills info (path NULL).  TS_EFORMAT with a message saying what is wrong. */
int data_npy_check(const uint8_t *buf, size_t n, uint64_t file_bytes, data_shard_info *info,
                   ts_err *e);

/* The file size a shard's token count implies (data_offset + n * width),
 * refused when shorter (truncated) or longer (trailing bytes); kind ("" or
 * ".npy ") and says ("header", "shape") word the message.  For shard.c and
 * npy.c. */
int data_shard_check_size(const data_shard_info *info, uint64_t data_offset, uint64_t file_bytes,
                          const char *kind, const char *says, ts_err *e);

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

/* path: a shard file; a directory (every regular *.bin and *.npy file in it,
 * not recursive, hidden files skipped); or a glob pattern ("dir/train_*.bin",
 * "dir/train_*.npy").  Shards are ordered by strcmp of their paths; each
 * file's first bytes say whether it is an llm.c or a .npy shard (a file named
 * *.npy without the .npy magic is refused as a bad .npy file).  TS_ENOTFOUND
 * when nothing matches; TS_EUNSUPPORTED for a URL. */
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
/* The dataset's hash (digest.c): BLAKE2b-256 of "tessera-dataset-v1" 0x00,
 * u32le shard count, then per shard u64le token count and its tokens as
 * u32 LE: what sample assignment depends on, whatever the shards' layout
 * (docs/FORMATS.md 5.2).  Reads every token. */
int data_dataset_hash(const data_dataset *ds, uint8_t out[TS_HASH_BYTES], ts_err *e);

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
 * A tokenizer turns a document's bytes into tokens.  Two kinds:
 *   "byte"   byte b is token b; one special token, end-of-document (256):
 *            vocabulary 257.
 *   a Hugging Face tokenizer.json (data_tokenizer_load, bpe.c): byte-level
 *            BPE (GPT-2, Llama 3) and SentencePiece-style BPE with byte
 *            fallback (Llama 2, Gemma), encoding as the `tokenizers` library
 *            does; docs/FORMATS.md 5.9 says what it accepts. */

/* The longest token a tokenizer.json may hold, in bytes (decoded). */
#define DATA_MAX_TOKEN_BYTES 1024

/* A growing token list: encoders append to it. */
typedef struct data_tokens {
    uint32_t *v;
    size_t n, cap;
} data_tokens;
int data_tokens_push(data_tokens *t, uint32_t x, ts_err *e);
void data_tokens_free(data_tokens *t);

/* Encoding flags.  Without DATA_ENC_SPECIAL a special token's text in the
 * input ("<|endoftext|>") is encoded as ordinary text, as tiktoken's
 * encode_ordinary does: prep never lets a document forge a document end. */
#define DATA_ENC_SPECIAL 1u

typedef struct data_tokenizer data_tokenizer;
struct data_tokenizer {
    const char *name;     /* "byte", or the tokenizer.json's file name */
    uint32_t id;          /* DATA_TOK_*, recorded in shard headers */
    uint32_t vocab_size;
    uint32_t eot;         /* the end-of-document token prep appends */
    int strip_leading;    /* spaces a decoder removes from the start of a text */
    uint8_t hash[TS_HASH_BYTES]; /* BLAKE2b-256 of the tokenizer.json (zero for byte) */
    /* Appends the tokens of n bytes (any bytes: invalid UTF-8 is replaced
     * as the library does) to out.  Thread-safe. */
    int (*encode)(const data_tokenizer *t, const uint8_t *text, size_t n, unsigned flags,
                  data_tokens *out, ts_err *e);
    /* The bytes of one token (at most cap); -1 for a special or unknown
     * token, which has no bytes. */
    int (*decode)(const data_tokenizer *t, uint32_t token, uint8_t *out, size_t cap);
    void (*destroy)(data_tokenizer *t);
    void *impl;
};

/* "byte", or the path of a tokenizer.json. */
int data_tokenizer_open(const char *name, data_tokenizer **out, ts_err *e);
/* A tokenizer.json; eot names the end-of-document token (NULL: the first of
 * <|endoftext|>, <|end_of_text|>, </s>, <eos>, <|end|> the tokenizer has). */
int data_tokenizer_load(const char *path, const char *eot, data_tokenizer **out, ts_err *e);
/* The tokenizer a shard header names, or NULL when none is known. */
int data_tokenizer_for_id(uint32_t id, data_tokenizer **out, ts_err *e);
void data_tokenizer_close(data_tokenizer *t);
/* Text of n tokens: each token's bytes; special tokens as their text when
 * specials, else left out; the decoder's leading-space strip applied.  *out
 * is malloc'd. */
int data_detokenize(const data_tokenizer *t, const uint32_t *tok, size_t n, bool specials,
                    uint8_t **out, size_t *len, ts_err *e);
/* Invalid UTF-8 replaced: each maximal ill-formed subsequence becomes
 * U+FFFD (Unicode's best practice; Rust's from_utf8_lossy, Python's
 * errors="replace").  *out is malloc'd. */
int data_utf8_lossy(const uint8_t *s, size_t n, uint8_t **out, size_t *nout, ts_err *e);
/* A tokenizer.json's special token's text (at most cap bytes); -1 when the
 * token is not special. */
int data_tokenizer_special_text(const data_tokenizer *t, uint32_t token, uint8_t *out, size_t cap);

/* ------------------------------------------------------------- preparation */

typedef struct data_prep_opts {
    const char *const *inputs;  /* files and directories (walked recursively) */
    int ninputs;
    const char *out_dir;        /* writes OUT/train/train_NNNNNN.bin, OUT/val/val_NNNNNN.bin */
    const char *tokenizer;      /* "byte", or the path of a tokenizer.json */
    const char *eot;            /* the end-of-document token's text (NULL: the
                                   tokenizer's own; data_tokenizer_load) */
    const char *jsonl_field;    /* NULL: plain text; else every input file is
                                   JSON Lines and this string field of each
                                   line is a document */
    int threads;                /* encoding threads (0: all cores); the shards
                                   do not depend on it */
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
 * binary.  With jsonl_field, a line that is not a JSON object, or lacks the
 * field, stops prep with the file and line named (a null field is an empty
 * document, dropped).  Documents are split train/val by their content hash (see
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
