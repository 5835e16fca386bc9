/* zstd.c - compression, and decompression that a hostile input cannot blow up.
 *
 * Every caller states the most it is willing to receive.  A frame that
 * declares a larger size is refused before any allocation; a frame that does
 * not declare its size is decompressed in a stream that stops the moment the
 * output would pass the cap.  The decoder's window is bounded too, so a small
 * frame cannot make the decoder itself allocate gigabytes. */
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "common.h"

#define MAX_WINDOW_LOG 27 /* 128 MiB decoder window at most */

int ts_zstd_compress(const void *src, size_t n, int level, uint8_t **out, size_t *outlen,
                     ts_err *e) {
    *out = NULL;
    *outlen = 0;
    size_t bound = ZSTD_compressBound(n);
    if (ZSTD_isError(bound)) return ts_fail(e, TS_ETOOBIG, "zstd: input too large");
    uint8_t *buf = malloc(bound ? bound : 1);
    if (!buf) return ts_fail(e, TS_ENOMEM, "zstd: out of memory");
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    if (!cc) {
        free(buf);
        return ts_fail(e, TS_ENOMEM, "zstd: out of memory");
    }
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    size_t r = ZSTD_compress2(cc, buf, bound, src, n);
    ZSTD_freeCCtx(cc);
    if (ZSTD_isError(r)) {
        free(buf);
        return ts_fail(e, TS_EIO, "zstd: %s", ZSTD_getErrorName(r));
    }
    *out = buf;
    *outlen = r;
    return TS_OK;
}

int ts_zstd_decompress(const void *src, size_t n, size_t max_out, uint8_t **out, size_t *outlen,
                       ts_err *e) {
    *out = NULL;
    *outlen = 0;
    if (n == 0) return ts_fail(e, TS_EFORMAT, "zstd: empty input");
    unsigned long long declared = ZSTD_getFrameContentSize(src, n);
    if (declared == ZSTD_CONTENTSIZE_ERROR) return ts_fail(e, TS_EFORMAT, "zstd: not a valid zstd frame");
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > max_out)
        return ts_fail(e, TS_ETOOBIG, "zstd: frame declares %llu bytes, over the limit of %zu",
                       declared, max_out);
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    if (!dc) return ts_fail(e, TS_ENOMEM, "zstd: out of memory");
    ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, MAX_WINDOW_LOG);
    size_t cap = declared != ZSTD_CONTENTSIZE_UNKNOWN ? (size_t)declared : (n * 4 < max_out ? n * 4 : max_out);
    if (cap < 64) cap = 64 < max_out ? 64 : max_out;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) {
        ZSTD_freeDCtx(dc);
        return ts_fail(e, TS_ENOMEM, "zstd: out of memory");
    }
    ZSTD_inBuffer in = {src, n, 0};
    size_t pos = 0;
    int rc = TS_OK;
    size_t last = 1;
    while (in.pos < in.size || last != 0) {
        if (pos == cap) {
            if (cap >= max_out) {
                /* full at the cap: any further output is over the limit */
                uint8_t probe;
                ZSTD_outBuffer po = {&probe, 1, 0};
                size_t r = ZSTD_decompressStream(dc, &po, &in);
                if (ZSTD_isError(r)) {
                    rc = ts_fail(e, TS_EFORMAT, "zstd: %s", ZSTD_getErrorName(r));
                } else if (po.pos) {
                    rc = ts_fail(e, TS_ETOOBIG, "zstd: output passes the limit of %zu bytes", max_out);
                } else {
                    last = r;
                    if (r != 0 && in.pos == in.size) rc = ts_fail(e, TS_EFORMAT, "zstd: truncated frame");
                    else if (r == 0 && in.pos == in.size) break;
                    else continue;
                }
                break;
            }
            size_t ncap = cap * 2 > max_out ? max_out : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                rc = ts_fail(e, TS_ENOMEM, "zstd: out of memory");
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ZSTD_outBuffer ob = {buf, cap, pos};
        size_t before_in = in.pos, before_out = pos;
        last = ZSTD_decompressStream(dc, &ob, &in);
        if (ZSTD_isError(last)) {
            rc = ts_fail(e, TS_EFORMAT, "zstd: %s", ZSTD_getErrorName(last));
            break;
        }
        pos = ob.pos;
        if (in.pos == in.size && last != 0 && pos < cap && before_in == in.pos && before_out == pos) {
            rc = ts_fail(e, TS_EFORMAT, "zstd: truncated frame");
            break;
        }
        if (last == 0 && in.pos == in.size) break;
    }
    ZSTD_freeDCtx(dc);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *outlen = pos;
    return TS_OK;
}
