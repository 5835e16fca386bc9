/* quant.c - the LUT quantizer of PROTOCOL.md section 7 (docs/FORMATS.md 7.3).
 *
 * Over the n kept values v of one tensor, in wire order (T tiles of k values,
 * ascending offset inside a tile):
 *   shift = (float)(S / n)                          S = tsum(v)
 *   c_i   = v_i - shift                             fp32
 *   std   = sqrt(tsum(c^2)) / sqrt(n - 1)           double (c_i^2 exact in double)
 *   scale = (float)(range * std / bins); 1.0 if not > 0 or not finite (also n < 2)
 *   code  = clamp(rint(c_i / scale + bins/2), 0, bins - 1)   fp32, ties to even
 *   lut_b = (float)(tsum(c with code b) / their count), 0 if none
 * and every receiver reconstructs lut[code] + shift (fp32).  Round-half-even
 * is the default IEEE rounding mode, which rintf follows.
 *
 * tsum, the blocked sum a GPU reproduces exactly: per tile a sequential
 * double sum from 0.0 over its values in ascending offset (for a bin: over
 * its values with that code), then a pairwise tree over the T tile sums,
 * level by level a[i] = a[2i] + a[2i+1] with an odd last element carried up
 * unchanged.  A tile without values of a bin contributes +0.0, which the
 * tree's additions leave exact.  The tree is computed here as a binary
 * counter of complete subtrees (the same additions in the same grouping),
 * which needs no memory proportional to T.  Counts are integers (any order). */
#include <math.h>

#include "internal.h"

#define TREE_LEVELS 34 /* T < 2^33 */

/* Adds tile t's partials x[0..w) to the counter st[level][w] (x is consumed). */
static inline void tree_push(double *st, int w, int64_t t, double *x) {
    int l = 0;
    for (; (t >> l) & 1; l++)
        for (int b = 0; b < w; b++) x[b] = st[(size_t)l * w + b] + x[b];
    for (int b = 0; b < w; b++) st[(size_t)l * w + b] = x[b];
}

/* The tree's root after T >= 1 tiles: the complete subtrees from the right
 * (the smallest) to the left, each added on the left. */
static inline void tree_root(const double *st, int w, int64_t T, double *out) {
    int first = 1;
    for (int l = 0; l < TREE_LEVELS; l++) {
        if (!((T >> l) & 1)) continue;
        for (int b = 0; b < w; b++) out[b] = first ? st[(size_t)l * w + b] : st[(size_t)l * w + b] + out[b];
        first = 0;
    }
}

/* The quantizer over T tiles of k values each (n = T * k). */
float spl_quantize_tiled(const float *v, int64_t T, int64_t k, int bins, float range, uint8_t *codes,
                         float *lut, float *shift_out);

float spl_quantize_tiled(const float *v, int64_t T, int64_t k, int bins, float range, uint8_t *codes,
                         float *lut, float *shift_out) {
    const int64_t n = T * k;
    if (n <= 0) {
        for (int b = 0; b < bins; b++) lut[b] = 0.0f;
        *shift_out = 0.0f;
        return 1.0f;
    }
    double st1[TREE_LEVELS], x, S = 0.0, SQ = 0.0;
    for (int64_t t = 0; t < T; t++) {
        const float *p = v + t * k;
        double s = 0.0;
        for (int64_t j = 0; j < k; j++) s += p[j];
        x = s;
        tree_push(st1, 1, t, &x);
    }
    tree_root(st1, 1, T, &S);
    const float shift = (float)(S / (double)n);

    float scale = 1.0f;
    if (n >= 2) {
        for (int64_t t = 0; t < T; t++) {
            const float *p = v + t * k;
            double q = 0.0;
            for (int64_t j = 0; j < k; j++) {
                const float ci = p[j] - shift;
                q += (double)ci * (double)ci;
            }
            x = q;
            tree_push(st1, 1, t, &x);
        }
        tree_root(st1, 1, T, &SQ);
        const double sd = sqrt(SQ) / sqrt((double)(n - 1));
        scale = (float)((double)range * sd / (double)bins);
        if (!(scale > 0.0f) || !isfinite(scale)) scale = 1.0f;
    }

    double st[TREE_LEVELS * 256], part[256], bsum[256];
    int64_t bcnt[256];
    for (int b = 0; b < bins; b++) bcnt[b] = 0;
    const float half = (float)(bins / 2), top = (float)(bins - 1);
    for (int64_t t = 0; t < T; t++) {
        const float *p = v + t * k;
        uint8_t *cd = codes + t * k;
        for (int b = 0; b < bins; b++) part[b] = 0.0;
        for (int64_t j = 0; j < k; j++) {
            const float ci = p[j] - shift;
            const float q = rintf(ci / scale + half);
            const int code = q <= 0.0f ? 0 : q >= top ? bins - 1 : (int)q;
            cd[j] = (uint8_t)code;
            part[code] += ci;
            bcnt[code]++;
        }
        tree_push(st, bins, t, part);
    }
    tree_root(st, bins, T, bsum);
    for (int b = 0; b < bins; b++) lut[b] = bcnt[b] ? (float)(bsum[b] / (double)bcnt[b]) : 0.0f;
    *shift_out = shift;
    return scale;
}

/* One tile of n values: sequential double sums in index order. */
float spl_quantize(const float *v, int64_t n, int bins, float range, uint8_t *codes, float *lut,
                   float *shift_out) {
    return spl_quantize_tiled(v, n > 0 ? 1 : 0, n, bins, range, codes, lut, shift_out);
}
