/*
 * codec.h - SparseLoCo: compression of pseudo-gradients, the signed wire
 * format, hostile-input decoding, aggregation and the outer step
 * (PROTOCOL.md sections 7 and 8; the bytes are in docs/FORMATS.md section 7).
 *
 * The codec knows nothing about the model: it works on arrays of fp32
 * ts_tensor (names and shapes, 1-D or 2-D).  A context, created once from the
 * tensor shapes and the codec parameters, computes every size up front and
 * owns every buffer the hot paths need; compressing, aggregating and applying
 * allocate nothing.  Decoding allocates exactly one buffer per upload: the
 * decompressed body, whose size is checked against what the shapes allow
 * before anything is allocated or decompressed.
 *
 *   spl_ctx_new           layout of every tensor: chunks, tiles, k, sizes
 *   spl_compress          (delta, ef) -> signed wire bytes, ef updated
 *   spl_decode            wire bytes + what is expected -> spl_upload, or a
 *                         distinct spl_reject reason for each malformed class
 *   spl_outer_step        theta -= alpha * aggregate(peers)   (miner, validator, catch-up)
 *   spl_apply + spl_undo  the validator's single-peer evaluation step and its
 *                         exact, bit-for-bit undo
 *   spl_aggregate_dense   the aggregate g as dense tensors
 *   spl_overlap           mean per-tile share of common indices (copycats)
 *   spl_bundle_*          the leader's signed catch-up object (a list of uploads)
 *
 * Threads: a context is not thread-safe for compress/apply (it owns their
 * scratch), but spl_decode only reads the context, so several threads may
 * decode into distinct uploads at once.
 */
#ifndef TESSERA_CODEC_H
#define TESSERA_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/common.h"

#define SPL_WIRE_MAGIC "TESSGRAD"    /* 8 bytes, no terminator on the wire */
#define SPL_WIRE_VERSION 1
#define SPL_HEADER_BYTES 264         /* fixed header of wire version 1 */
#define SPL_SIG_TAG "tessera/gradient/v1"
#define SPL_MAX_CHUNK 64             /* 12-bit offsets: a tile holds at most 4096 values */
#define SPL_MAX_TILE (SPL_MAX_CHUNK * SPL_MAX_CHUNK)
#define SPL_MAX_RUN_ID 64
#define SPL_MAX_PEERS 256            /* peers in one aggregation */
#define SPL_DEFAULT_MAX_ABS 1.0e4f   /* decode plausibility bound, see spl_ctx_set_max_abs */

/* ---------------------------------------------------------------- params */

typedef struct spl_params {
    int k;       /* values kept per tile before clamping, 2..4096 (64) */
    int bins;    /* quantizer bins: 4 (2-bit codes) or 256 (8-bit codes) */
    int chunk;   /* target chunk per dimension, 1..64 (64) */
    float beta;  /* error-feedback decay (0.95) */
    float alpha; /* weight of the new pseudo-gradient in the error feedback (1.0) */
    float range; /* quantizer range in standard deviations (6) */
} spl_params;

void spl_params_default(spl_params *p);
/* TS_OK or TS_EINVAL with the reason. */
int spl_params_check(const spl_params *p, ts_err *e);

/* --------------------------------------------------------------- context */

typedef struct spl_ctx spl_ctx;

/* Layout of one tensor as the codec sees it.  A 1-D tensor [N] is the 2-D
 * tensor [1, N] (chunk rows 1).  Tiles are numbered row-major: tile t =
 * ty * tiles_x + tx holds rows ty*chunk[0].. and columns tx*chunk[1]..; the
 * offset inside a tile is h * chunk[1] + w. */
typedef struct spl_tinfo {
    const char *name;
    int ndim;
    int64_t shape[2];
    int chunk[2];         /* chunk rows, chunk columns (1-D: 1, chunk) */
    int64_t tiles_y, tiles_x, tiles;
    int tile_numel;       /* chunk[0] * chunk[1] <= 4096 */
    int k;                /* values sent per tile: min(params.k, tile_numel), made even */
    int64_t values;       /* tiles * k */
    size_t record_bytes;  /* bytes of its record in the (uncompressed) body */
} spl_tinfo;

/* Tensors: n views with names and fp32 shapes (data is not read).  Every
 * tensor must be 1-D or 2-D, non-empty, each dimension < 2^32, names unique
 * and 1..255 bytes.  Fails when a tile would carry k = 0 (a tile of one
 * value). */
int spl_ctx_new(const spl_params *p, const ts_tensor *tensors, int n, spl_ctx **out, ts_err *e);
void spl_ctx_free(spl_ctx *c);
int spl_ctx_count(const spl_ctx *c);
const spl_params *spl_ctx_params(const spl_ctx *c);
int spl_ctx_tensor(const spl_ctx *c, int i, spl_tinfo *out);
/* Index of a tensor by name, or -1. */
int spl_ctx_find(const spl_ctx *c, const char *name);
int64_t spl_ctx_values(const spl_ctx *c);       /* values one upload carries */
int64_t spl_ctx_numel(const spl_ctx *c);        /* elements of all tensors */
size_t spl_ctx_body_bytes(const spl_ctx *c);    /* exact uncompressed body size */
size_t spl_ctx_wire_max(const spl_ctx *c);      /* largest wire object accepted */
/* Largest |shift|, |lut[b]| and |lut[b] + shift| a decoder accepts (an
 * upload beyond it is "absurd").  Receiver policy, not a signed parameter. */
void spl_ctx_set_max_abs(spl_ctx *c, float max_abs);
/* zstd level for spl_compress (default 3). */
void spl_ctx_set_zstd_level(spl_ctx *c, int level);

struct kn_backend;
/* The compute device of the tensors later passed to spl_compress (delta,
 * ef), spl_apply / spl_undo_restore / spl_outer_step / spl_aggregate_dense
 * (theta, g): NULL or the CPU backend for host memory (the default), or a GPU
 * backend (kernels/kernels.h), whose device memory they then are.  The
 * results are bit-identical on every backend: the same wire bytes from the
 * same delta and error feedback, the same parameters after an outer step,
 * an application or an undo.  Device scratch is allocated on first use and
 * freed with the context (or when the device changes). */
int spl_ctx_set_device(spl_ctx *c, const struct kn_backend *be, ts_err *e);

/* ----------------------------------------------------------------- meta */

typedef struct spl_meta {
    char run_id[SPL_MAX_RUN_ID + 1];      /* 1..64 of [A-Za-z0-9._-] */
    uint64_t window;
    uint32_t uid;
    uint8_t hotkey[TS_PK_BYTES];          /* signer (compress takes it from the key pair) */
    uint8_t base_hash[TS_HASH_BYTES];     /* checkpoint the miner started from */
    uint8_t sample_digest[TS_HASH_BYTES]; /* digest of the sample ids trained on */
    uint8_t config_hash[TS_HASH_BYTES];   /* model config */
} spl_meta;

bool spl_run_id_valid(const char *s);

/* ------------------------------------------------------------- compress */

/* One SparseLoCo step over all tensors (PROTOCOL.md section 7):
 *   ef_new = beta * ef + alpha * delta         (fp32: fl(fl(beta*ef) + fl(alpha*delta)))
 *   per tile keep the k largest |ef_new| (ties: the lower offset wins)
 *   quantize the kept values per tensor; sent = lut[code] + shift
 *   ef = ef_new - sent on kept coordinates, ef_new elsewhere
 * and returns the signed wire object.  delta and ef are n fp32 tensors in
 * the context's order (names and shapes checked).  All or nothing: when any
 * ef_new value is not finite, or anything else fails, ef is left untouched.
 * *wire points into the context and stays valid until the next compress or
 * spl_ctx_free. */
int spl_compress(spl_ctx *c, const ts_tensor *delta, ts_tensor *ef, const spl_meta *m,
                 const ts_keypair *kp, const uint8_t **wire, size_t *wire_len, ts_err *e);

/* Null rounds (warm-up windows, empty peer list) zero the error feedback. */
int spl_ef_zero(const spl_ctx *c, ts_tensor *ef, ts_err *e);

/* --------------------------------------------------------------- decode */

/* Why an upload was refused: one distinct reason per malformed class. */
typedef enum spl_reject {
    SPL_R_NONE = 0,       /* accepted, or failed for a local reason (out of memory) */
    SPL_R_TRUNCATED,      /* shorter than its fixed parts or than a declared size */
    SPL_R_OVERSIZED,      /* larger than the largest upload the model allows */
    SPL_R_TRAILING,       /* bytes beyond the declared sizes */
    SPL_R_MAGIC,
    SPL_R_VERSION,        /* another wire version, or a signature scheme other than sr25519 */
    SPL_R_HEADER,         /* reserved field non-zero, bad run id, bad header size */
    SPL_R_SIGNATURE,      /* signature does not verify */
    SPL_R_SIGNER,         /* hotkey field differs from the expected signer */
    SPL_R_RUN,            /* run id differs from the one expected */
    SPL_R_WINDOW,
    SPL_R_UID,
    SPL_R_CONFIG,         /* model config hash differs */
    SPL_R_PARAMS,         /* codec parameters differ from the run's */
    SPL_R_MISSING_TENSOR, /* fewer tensors than the model has */
    SPL_R_UNKNOWN_TENSOR, /* a tensor the model does not have, or too many */
    SPL_R_DUP_TENSOR,     /* the same tensor twice */
    SPL_R_BODY_SIZE,      /* body size differs from what the shapes give */
    SPL_R_ZSTD,           /* body is not a valid zstd frame (or its checksum fails) */
    SPL_R_ZSTD_BOMB,      /* frame declares or produces more than the expected size */
    SPL_R_RECORD,         /* malformed record framing (name length, dimensions) */
    SPL_R_SHAPE,          /* shape differs from the model's */
    SPL_R_CHUNK,          /* chunk sizes differ from the rule */
    SPL_R_K,              /* k differs from the clamped k */
    SPL_R_SECTION_SIZE,   /* a section's declared size or count is wrong */
    SPL_R_NONFINITE,      /* shift or LUT not finite */
    SPL_R_ABSURD,         /* shift, LUT or a dequantized value beyond the plausible bound */
    SPL_R_INDEX_RANGE,    /* an index past the end of its tile */
    SPL_R_INDEX_DUP,      /* an index repeated within a tile */
    SPL_R_INDEX_ORDER,    /* indices within a tile not ascending */
    SPL_R_PADDING,        /* non-zero padding bits after the last code */
    SPL_R_COUNT
} spl_reject;

/* Stable snake_case identifier ("bad_signature", ...) for logs and JSON. */
const char *spl_reject_name(spl_reject r);
/* One-line description. */
const char *spl_reject_str(spl_reject r);

/* What the receiver expects.  Everything is checked unless a SPL_SKIP_* bit
 * says otherwise; only tools that inspect local files skip checks (the
 * signature is then verified against the hotkey the object names). */
#define SPL_SKIP_RUN 1u
#define SPL_SKIP_WINDOW 2u
#define SPL_SKIP_UID 4u
#define SPL_SKIP_SIGNER 8u
#define SPL_SKIP_CONFIG 16u
typedef struct spl_expect {
    const char *run_id;
    uint64_t window;
    uint32_t uid;
    const uint8_t *signer;      /* TS_PK_BYTES: the hotkey registered for uid */
    const uint8_t *config_hash; /* TS_HASH_BYTES */
    unsigned skip;
} spl_expect;

typedef struct spl_upload spl_upload;

/* An upload object holds one decoded upload; create it once per gather slot
 * and decode into it again and again. */
int spl_upload_new(const spl_ctx *c, spl_upload **out, ts_err *e);
void spl_upload_free(spl_upload *u);

/* Decodes and validates an upload, treating every byte as hostile.
 * Returns TS_OK, or an error with *why set to the reason: TS_EFORMAT
 * (malformed), TS_ESIG (signature, signer), TS_EDENIED (run, window, uid,
 * config, params differ), TS_ETOOBIG (oversized, zstd bomb).  A local
 * failure (TS_ENOMEM) leaves *why = SPL_R_NONE: not the sender's fault.
 * On failure the upload is empty. */
int spl_decode(const spl_ctx *c, const uint8_t *buf, size_t len, const spl_expect *x,
               spl_upload *u, spl_reject *why, ts_err *e);
/* The body stage alone (records after decompression), on a copy of body;
 * for tests and fuzzing: it checks nothing about identity. */
int spl_decode_body(const spl_ctx *c, const uint8_t *body, size_t len, spl_upload *u,
                    spl_reject *why, ts_err *e);

bool spl_upload_ok(const spl_upload *u);
/* Metadata of a decoded upload (valid only after a successful decode). */
const spl_meta *spl_upload_meta(const spl_upload *u);

typedef struct spl_tview {
    float shift;
    const float *lut;      /* bins entries */
    const uint32_t *count; /* codes per bin */
    double norm;           /* L2 norm of the dequantized values */
} spl_tview;
int spl_upload_tensor(const spl_upload *u, int i, spl_tview *out);

/* One tile of tensor i: its k offsets (ascending) and codes. */
int spl_upload_tile(const spl_upload *u, int i, int64_t tile, uint16_t *idx, uint8_t *codes);

typedef struct spl_wire_info {
    size_t wire_bytes, zbody_bytes, body_bytes;
    uint32_t tensors;
} spl_wire_info;
void spl_upload_info(const spl_upload *u, spl_wire_info *out);

/* Dequantized values scattered into dense tensors (zeros elsewhere), no
 * clipping: what the sender's EF subtracted.  out: fp32 tensors in context
 * order. */
int spl_upload_dense(const spl_ctx *c, const spl_upload *u, ts_tensor *out, ts_err *e);

/* Reads the fixed header and checks its framing and fields (magic, version,
 * signature scheme, reserved bytes, run id) but not the signature (for
 * tools; never trust what it returns). */
int spl_peek(const uint8_t *buf, size_t len, spl_meta *m, spl_params *p, spl_wire_info *info,
             spl_reject *why, ts_err *e);
/* For tools that have no model at hand: verifies the signature against the
 * hotkey the object names, decompresses (at most max_body bytes) and builds
 * a context from the tensor names and shapes the body lists (at most 65536
 * tensors). */
int spl_ctx_from_wire(const uint8_t *buf, size_t len, size_t max_body, spl_ctx **out,
                      spl_reject *why, ts_err *e);

/* ---------------------------------------------- aggregation, outer step
 *
 * For each tensor (PROTOCOL.md section 8): each peer's values v = lut[code]
 * + shift; its norm ||v|| (double, sqrt of sum over bins of count * v^2);
 * the clip threshold = the median of the peers' norms (the lower middle one
 * for an even count); each peer scaled by f = min(1, thr / (norm + 1e-8))
 * (double, then fp32: v * (float)f); per coordinate the mean over the peers
 * that selected it (fp32 sum in uid order, then / count); a tensor whose
 * aggregate has a non-finite value is skipped; theta -= alpha * g
 * (fl(theta - fl(alpha * g))).  Peers are taken in uid order whatever the
 * order passed; two peers with one uid are refused. */

typedef struct spl_apply_stats {
    int tensors_applied;
    int tensors_skipped;  /* aggregate not finite */
    int64_t coords;       /* coordinates changed */
} spl_apply_stats;

/* Per-tensor clip thresholds (median norms) of a gather; thr has
 * spl_ctx_count entries. */
int spl_clip_thresholds(const spl_ctx *c, const spl_upload *const *peers, int n, double *thr,
                        ts_err *e);

typedef struct spl_undo spl_undo;
/* Room to undo an application of up to max_peers peers. */
int spl_undo_new(const spl_ctx *c, int max_peers, spl_undo **out, ts_err *e);
void spl_undo_free(spl_undo *u);

/* theta -= alpha * aggregate(peers), with clip thresholds thr (NULL: the
 * median norms of these peers).  The validator's evaluation of one miner is
 * spl_apply(ctx, theta, &peer, 1, thr_of_the_gather, alpha * eval_lr_factor,
 * undo, ...).  With undo non-NULL the original values of every touched
 * coordinate are saved; spl_undo_restore puts them back bit for bit.  The
 * peers must stay unchanged until then.  stats may be NULL. */
int spl_apply(spl_ctx *c, ts_tensor *theta, const spl_upload *const *peers, int n,
              const double *thr, float alpha, spl_undo *undo, spl_apply_stats *st, ts_err *e);
int spl_undo_restore(spl_ctx *c, ts_tensor *theta, spl_undo *undo, ts_err *e);

/* The outer step: spl_apply with the gather's own thresholds, no undo. */
int spl_outer_step(spl_ctx *c, ts_tensor *theta, const spl_upload *const *peers, int n,
                   float alpha, spl_apply_stats *st, ts_err *e);

/* The aggregate g itself, dense (zeros where no peer selected, and for a
 * skipped tensor).  theta - alpha * g computed from it equals spl_apply's
 * result bit for bit. */
int spl_aggregate_dense(spl_ctx *c, const spl_upload *const *peers, int n, const double *thr,
                        ts_tensor *g, spl_apply_stats *st, ts_err *e);

/* Mean per-tile share of common indices between two uploads: over every
 * tile that selects (k < tile size), |A ∩ B| / k, averaged with equal
 * weight per tile.  0 when no tile selects. */
int spl_overlap(const spl_ctx *c, const spl_upload *a, const spl_upload *b, double *share,
                ts_err *e);

/* ------------------------------------------ catch-up bundle (leader)
 *
 * The leader's per-window aggregate object is the list of the gathered
 * peers' signed uploads, in uid order, wrapped and signed by the leader
 * (docs/FORMATS.md 7.6).  Replaying it is decoding each upload (identity:
 * the uid and hotkey the leader lists) and running spl_outer_step, so the
 * result is the leader's model bit for bit. */
#define SPL_BUNDLE_MAGIC "TESSAGGR"
#define SPL_BUNDLE_VERSION 2
#define SPL_BUNDLE_TAG "tessera/aggregate/v1"

typedef struct spl_bundle_entry {
    uint32_t uid;
    uint8_t hotkey[TS_PK_BYTES];
    const uint8_t *wire; /* points into the bundle buffer */
    size_t len;
} spl_bundle_entry;

/* Builds a bundle from n signed uploads of one run and window (their
 * headers give uid and hotkey; sorted by uid; duplicate uids refused).
 * base_hash and model_hash: BLAKE2b-256 of the parameters before and after
 * the window's outer step, as the signing validator computed them. */
int spl_bundle_build(const char *run_id, uint64_t window, const uint8_t config_hash[TS_HASH_BYTES],
                     const uint8_t base_hash[TS_HASH_BYTES], const uint8_t model_hash[TS_HASH_BYTES],
                     const ts_keypair *leader, const uint8_t *const *wires, const size_t *lens, int n,
                     uint8_t **out, size_t *out_len, ts_err *e);
/* Verifies a bundle (signature scheme sr25519, signature by leader_pk, run,
 * window, config, sizes; each entry at most max_wire bytes, at most
 * max_entries entries) and returns its entries (pointing into buf) in uid
 * order and the two model hashes it records (either pointer may be NULL). */
int spl_bundle_open(const uint8_t *buf, size_t len, const char *run_id, uint64_t window,
                    const uint8_t leader_pk[TS_PK_BYTES], const uint8_t config_hash[TS_HASH_BYTES],
                    size_t max_wire, spl_bundle_entry *entries, int max_entries, int *n,
                    uint8_t base_hash[TS_HASH_BYTES], uint8_t model_hash[TS_HASH_BYTES],
                    spl_reject *why, ts_err *e);

/* ------------------------------------ building blocks (exposed for tests) */

/* 12-bit offsets, two per three bytes: a0 = a & 0xff, a1 = (a >> 8) |
 * ((b & 0xf) << 4), a2 = b >> 4.  n must be even. */
void spl_pack12(const uint16_t *idx, size_t n, uint8_t *out);
void spl_unpack12(const uint8_t *in, size_t n, uint16_t *idx);
/* Codes at `bits` (2 or 8) each, least significant bits first; out holds
 * spl_code_bytes(n, bits) bytes, the unused high bits of the last byte are 0. */
size_t spl_code_bytes(int64_t n, int bits);
void spl_pack_codes(const uint8_t *codes, size_t n, int bits, uint8_t *out);
void spl_unpack_codes(const uint8_t *in, size_t n, int bits, uint8_t *codes);

/* The quantizer of section 7 over n kept values (in wire order): fills
 * codes[n], lut[bins] and *shift; returns the scale used (after the 1.0
 * fallback).  Reductions in double, in index order. */
float spl_quantize(const float *v, int64_t n, int bins, float range, uint8_t *codes, float *lut,
                   float *shift);

/* The chunk rule: the largest divisor of s that is <= target. */
int64_t spl_chunk_of(int64_t s, int target);

#endif
