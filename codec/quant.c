/* quant.c - the LUT quantizer of PROTOCOL.md section 7.
 *
 * Over the n kept values v of one tensor, in wire order (tile by tile,
 * ascending offset inside a tile):
 *   shift = (float)(sum_i v_i / n)                 sum in double, in order
 *   c_i   = v_i - shift                            fp32
 *   std   = sqrt(sum_i c_i^2) / sqrt(n - 1)        double
 *   scale = (float)(range * std / bins); 1.0 if not > 0 or not finite (also n < 2)
 *   code  = clamp(rint(c_i / scale + bins/2), 0, bins - 1)   fp32, ties to even
 *   lut_b = (float)(sum of the c_i with code b / their count), 0 if none
 * and every receiver reconstructs lut[code] + shift (fp32).  Round-half-even
 * is the default IEEE rounding mode, which rintf follows. */
#include <math.h>

#include "internal.h"

float spl_quantize(const float *v, int64_t n, int bins, float range, uint8_t *codes, float *lut,
                   float *shift_out) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += v[i];
    const float shift = n > 0 ? (float)(sum / (double)n) : 0.0f;

    float scale = 1.0f;
    if (n >= 2) {
        double sq = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const float ci = v[i] - shift;
            sq += (double)ci * (double)ci;
        }
        const double sd = sqrt(sq) / sqrt((double)(n - 1));
        scale = (float)((double)range * sd / (double)bins);
        if (!(scale > 0.0f) || !isfinite(scale)) scale = 1.0f;
    }

    double bsum[256];
    int64_t bcnt[256];
    for (int b = 0; b < bins; b++) {
        bsum[b] = 0.0;
        bcnt[b] = 0;
    }
    const float half = (float)(bins / 2), top = (float)(bins - 1);
    for (int64_t i = 0; i < n; i++) {
        const float ci = v[i] - shift;
        const float q = rintf(ci / scale + half);
        const int code = q <= 0.0f ? 0 : q >= top ? bins - 1 : (int)q;
        codes[i] = (uint8_t)code;
        bsum[code] += ci;
        bcnt[code]++;
    }
    for (int b = 0; b < bins; b++) lut[b] = bcnt[b] ? (float)(bsum[b] / (double)bcnt[b]) : 0.0f;
    *shift_out = shift;
    return scale;
}
