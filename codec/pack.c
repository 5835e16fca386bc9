/* pack.c - bit packing of tile offsets (12 bits, two per three bytes) and of
 * quantizer codes (2 or 8 bits). */
#include "internal.h"

void spl_pack12(const uint16_t *idx, size_t n, uint8_t *out) {
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned a = idx[i] & 0xfffu, b = idx[i + 1] & 0xfffu;
        out[0] = (uint8_t)a;
        out[1] = (uint8_t)((a >> 8) | ((b & 0xfu) << 4));
        out[2] = (uint8_t)(b >> 4);
        out += 3;
    }
}

void spl_unpack12(const uint8_t *in, size_t n, uint16_t *idx) {
    for (size_t i = 0; i + 1 < n; i += 2) {
        idx[i] = (uint16_t)(in[0] | ((in[1] & 0xfu) << 8));
        idx[i + 1] = (uint16_t)((in[1] >> 4) | (in[2] << 4));
        in += 3;
    }
}

size_t spl_code_bytes(int64_t n, int bits) {
    if (n <= 0) return 0;
    return bits == 8 ? (size_t)n : (size_t)((n + 3) / 4);
}

void spl_pack_codes(const uint8_t *codes, size_t n, int bits, uint8_t *out) {
    if (bits == 8) {
        memcpy(out, codes, n);
        return;
    }
    size_t full = n / 4;
    for (size_t i = 0; i < full; i++) {
        const uint8_t *q = codes + 4 * i;
        out[i] = (uint8_t)((q[0] & 3u) | ((q[1] & 3u) << 2) | ((q[2] & 3u) << 4) | ((q[3] & 3u) << 6));
    }
    if (n % 4) {
        uint8_t b = 0;
        for (size_t j = 0; j < n % 4; j++) b |= (uint8_t)((codes[4 * full + j] & 3u) << (2 * j));
        out[full] = b;
    }
}

void spl_unpack_codes(const uint8_t *in, size_t n, int bits, uint8_t *codes) {
    if (bits == 8) {
        memcpy(codes, in, n);
        return;
    }
    for (size_t i = 0; i < n; i++) codes[i] = (in[i >> 2] >> ((i & 3) * 2)) & 3u;
}
