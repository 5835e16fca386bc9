/* internal.h - what the codec's files share and nobody else sees: the layout
 * tables, the context and upload structures, wire offsets. */
#ifndef TESSERA_CODEC_INTERNAL_H
#define TESSERA_CODEC_INTERNAL_H

#include <string.h>

#include "codec.h"
#include "../kernels/kernels.h"

/* Fixed header of wire version 1 (docs/FORMATS.md 7.1). */
enum {
    H_MAGIC = 0,
    H_VERSION = 8,
    H_FLAGS = 10,
    H_HDRLEN = 12,
    H_RUNLEN = 16,
    H_RUN = 17,
    H_SCHEME = 81, /* u8 signature scheme: TS_SIG_SCHEME_SR25519 */
    H_RSV0 = 82,   /* 2 reserved bytes */
    H_UID = 84,
    H_WINDOW = 88,
    H_HOTKEY = 96,
    H_BASE = 128,
    H_SAMPLE = 160,
    H_CONFIG = 192,
    H_K = 224,
    H_BINS = 226,
    H_CHUNK = 228,
    H_RSV1 = 230, /* 2 reserved bytes */
    H_BETA = 232,
    H_ALPHA = 236,
    H_RANGE = 240,
    H_NTENS = 244,
    H_BODY = 248,
    H_ZBODY = 256,
    H_END = 264
};
_Static_assert(H_END == SPL_HEADER_BYTES, "header size");

/* Layout of one tensor. */
typedef struct spl_tl {
    char name[TS_MAX_NAME];
    size_t name_len;
    int ndim;
    int64_t shape[2];
    int64_t rows, cols; /* 2-D view */
    int ch, cw;         /* chunk rows, chunk columns */
    int64_t nty, ntx, ntiles;
    int tile_numel, k;
    int64_t nvals, val_off;
    size_t idx_bytes, code_bytes, rec_bytes;
} spl_tl;

struct spl_ctx {
    spl_params p;
    int bits; /* code width: 2 or 8 */
    int n;
    spl_tl *t;
    int *by_name; /* tensor indices sorted by name */
    int64_t nvals, numel;
    size_t body_bytes, wire_max;
    float max_abs;
    int zlevel;
    /* compress scratch, allocated on the first compress */
    bool have_scratch;
    uint16_t *idx;   /* [nvals] kept offsets, tile by tile, ascending */
    float *vals;     /* [nvals] kept values */
    uint8_t *codes;  /* [nvals] */
    float *luts;     /* [n * bins] */
    float *shifts;   /* [n] */
    uint64_t *cand;  /* [max tiles_x * (2k + 64)] selection candidates per tile of a band */
    int32_t *thr;    /* [max tiles_x] */
    int *ncand;      /* [max tiles_x] */
    uint32_t *gmax;  /* [max tiles_x * groups per tile] group maxima of a band */
    uint8_t *body;   /* [body_bytes] */
    uint8_t *wire;   /* [wire_max] */
    void *zc;        /* ZSTD_CCtx */
    /* aggregation scratch */
    float acc[SPL_MAX_TILE];
    uint16_t cnt[SPL_MAX_TILE];
    uint16_t touched[SPL_MAX_TILE];
    uint16_t tidx[SPL_MAX_TILE];
    int64_t tab[SPL_MAX_TILE]; /* tile offset -> flat offset from the tile's origin */
    float sv[SPL_MAX_PEERS * 256]; /* clipped dequantized value per peer and bin */
    /* the device the tensors passed to compress/apply/undo/outer step live on
     * (NULL: the host, the CPU code paths); spl_ctx_set_device */
    const kn_backend *be;
    /* device scratch: compression */
    void *cd_scratch; /* device: be->spl_comp_scratch bytes, laid out by codec/cuda_compress.cu */
    int64_t *cd_tab;  /* host: KN_SPL_TAB int64 per tensor (device addresses of delta, ef; layout) */
    /* device scratch: aggregation */
    bool agg_ready;          /* the buffers below are allocated on be */
    size_t agg_stage_bytes;  /* bytes of each staging buffer */
    size_t agg_stage_cap;    /* tests: a smaller staging (0: the default), so tensors go in chunks */
    uint8_t *agg_hstage;     /* host: the peers' packed offsets and codes of a chunk of tiles */
    uint8_t *agg_dstage;     /* device copy of agg_hstage */
    float *agg_dsv;          /* device: [SPL_MAX_PEERS * 256] the sv table of one tensor */
    uint64_t *agg_dstats;    /* device: [2] coordinates touched, non-finite flag */
};

typedef struct spl_rec {
    bool present;
    const uint8_t *idx;   /* 12-bit packed, into the body */
    const uint8_t *codes; /* packed codes, into the body */
    float shift;
    double norm;
} spl_rec;

struct spl_upload {
    const spl_ctx *c;
    bool ok;
    uint64_t gen; /* bumped whenever the content changes */
    spl_meta meta;
    spl_wire_info info;
    uint8_t *body; /* owned */
    size_t body_len;
    spl_rec *rec;   /* [n] */
    float *luts;    /* [n * bins] */
    uint32_t *cnts; /* [n * bins] */
};

static inline float spl_get_f32(const uint8_t *p) {
    uint32_t u = ts_get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline void spl_put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    ts_put_u32(p, u);
}
static inline uint32_t spl_f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Bytes of a record with this name length and layout. */
size_t spl_record_bytes(size_t name_len, int ndim, int bins, size_t idx_bytes, size_t code_bytes);
/* Index by name (not NUL-terminated), or -1. */
int spl_find_n(const spl_ctx *c, const char *name, size_t len);
/* Checks that n tensors match the context (names, fp32, shapes, sizes). */
int spl_check_tensors(const spl_ctx *c, const ts_tensor *ts, const char *what, ts_err *e);
/* Fills c->tab for tensor t. */
void spl_fill_tab(spl_ctx *c, const spl_tl *t);
/* Sets *why and fails with the ts code belonging to the reason. */
int spl_rej(spl_reject *why, ts_err *e, spl_reject r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int spl_reject_code(spl_reject r);
/* Refuses a signature scheme byte other than TS_SIG_SCHEME_SR25519
 * (SPL_R_VERSION: an object of another scheme is unreadable, like one of
 * another version); `what` prefixes the message ("" or "bundle "). */
int spl_check_scheme(unsigned scheme, const char *what, spl_reject *why, ts_err *e);
/* Parses the fixed header of a wire object, checking only its framing
 * (magic, version, signature scheme, sizes); verifies nothing else. */
int spl_parse_header(const uint8_t *buf, size_t len, spl_meta *m, spl_params *p,
                     spl_wire_info *info, spl_reject *why, ts_err *e);

#endif
