// cuda_aggregate.cu - the GPU twin of codec/aggregate.c's tile pass: the
// scatter-mean of the peers' clipped values, the finiteness check, the outer
// step / one-peer application with its exact undo, the dense aggregate.
//
// Decoding, norms, clip thresholds and the clipped value per peer and bin
// (the CPU's sv table) stay on the host; per tensor the host stages the
// peers' packed 12-bit offsets and codes (a chunk of tiles at a time) and the
// sv table, and this kernel does the rest, one block per tile:
//
//   accumulate  for p = 0 .. n-1 (uid order, as the host staged them): the
//               block's threads take the peer's k values of the tile and add
//               each into a shared fp32 accumulator at its offset.  A peer's
//               offsets within a tile are distinct (the decoder checked), so
//               no two threads touch one coordinate in one step, and a
//               __syncthreads between peers keeps the CPU's order: the first
//               peer's value is stored (not added to 0, so -0 stays -0), the
//               next ones added with __fadd_rn.  No float atomics.
//   finalize    in rounds of blockDim offsets, ascending: g = __fdiv_rn(sum,
//               count) for each touched offset, and then by mode
//                 CHECK    flag (integer atomicOr) when g is not finite;
//                 APPLY    x = __fsub_rn(x, __fmul_rn(alpha, g)) (no FMA
//                          contraction), the old value saved first when an
//                          undo is kept;
//                 DENSE    x = g;
//                 RESTORE  x = saved value (offsets only, no values).
//               Saved values of a tile live at saved[tile * per + rank],
//               rank = the coordinate's place among the tile's touched
//               offsets in ascending order (a ballot and a prefix over the
//               warps' counts), so apply and restore agree without storing
//               offsets.  The touched count goes to stats[0] (integer atomic).
//
// The result is bit-identical to the CPU: the same fp32 operations in the
// same order per coordinate, correctly rounded on both sides.
#include "../kernels/cuda_compat.h"

#include <math.h>

#define FULL_MASK 0xffffffffu

struct agg_job {
    int mode;
    float *x;
    float *saved;
    const uint8_t *idx;
    const uint8_t *codes;
    const float *sv;
    int n;
    long long idx_stride, code_stride;
    int vskip;
    long long tile0, ntl, cols, ntx;
    int ch, cw, tile_numel, k, bins, bits, per;
    float alpha;
    unsigned long long *stats;
};

// offset j of a tile's 12-bit packed offsets (two per three bytes)
static __device__ __forceinline__ int agg_off12(const uint8_t *ip, int j) {
    const uint8_t *q = ip + (j >> 1) * 3;
    const unsigned b1 = __ldg(q + 1);
    return (j & 1) ? (int)((b1 >> 4) | ((unsigned)__ldg(q + 2) << 4))
                   : (int)((unsigned)__ldg(q) | ((b1 & 0xfu) << 8));
}

// dynamic shared memory: acc[tile_numel] floats, cnt[tile_numel] ushorts
// (rounded to whole floats), wsum[64] ints (the warps' counts of a round,
// double-buffered)
static size_t agg_smem_bytes(int tile_numel) {
    return ((size_t)tile_numel + (size_t)(tile_numel + 1) / 2 + 64) * sizeof(float);
}

__global__ void agg_tiles_kernel(const agg_job jb) {
    KN_DYN_SMEM(float, smem);
    const int tn = jb.tile_numel;
    float *acc = smem;
    unsigned short *cnt = (unsigned short *)(smem + tn);
    int *wsum = (int *)(smem + tn + (tn + 1) / 2);
    const int tid = threadIdx.x, nt = blockDim.x, lane = tid & 31, w = tid >> 5, nw = nt >> 5;
    const int k = jb.k, tbytes = k / 2 * 3, mode = jb.mode;
    for (long long tl = blockIdx.x; tl < jb.ntl; tl += gridDim.x) {
        const long long tile = jb.tile0 + tl;
        for (int o = tid; o < tn; o += nt) cnt[o] = 0;
        __syncthreads();
        if (mode == KN_AGG_RESTORE) {
            // only which offsets were touched matters: idempotent stores
            for (int p = 0; p < jb.n; p++) {
                const uint8_t *ip = jb.idx + p * jb.idx_stride + tl * tbytes;
                for (int j = tid; j < k; j += nt) cnt[agg_off12(ip, j)] = 1;
            }
            __syncthreads();
        } else {
            const long long v0 = jb.vskip + tl * k;
            for (int p = 0; p < jb.n; p++) {
                const uint8_t *ip = jb.idx + p * jb.idx_stride + tl * tbytes;
                const uint8_t *cp = jb.codes + p * jb.code_stride;
                const float *s = jb.sv + p * jb.bins;
                for (int j = tid; j < k; j += nt) {
                    const int o = agg_off12(ip, j);
                    const long long v = v0 + j;
                    const unsigned code = jb.bits == 8 ? (unsigned)__ldg(cp + v)
                                                       : ((unsigned)__ldg(cp + (v >> 2)) >> ((v & 3) * 2)) & 3u;
                    const float val = __ldg(s + code);
                    const unsigned c = cnt[o];
                    acc[o] = c ? __fadd_rn(acc[o], val) : val;
                    cnt[o] = (unsigned short)(c + 1u);
                }
                __syncthreads(); // the next peer adds after this one, as on the CPU
            }
        }
        const long long ty = tile / jb.ntx, tx = tile - ty * jb.ntx;
        const long long origin = ty * jb.ch * jb.cols + tx * jb.cw;
        float *sav = jb.saved ? jb.saved + tile * jb.per : nullptr;
        int base = 0;
        bool bad = false;
        for (int r0 = 0, par = 0; r0 < tn; r0 += nt, par ^= 32) {
            const int o = r0 + tid;
            const unsigned c = o < tn ? (unsigned)cnt[o] : 0u;
            const unsigned m = __ballot_sync(FULL_MASK, c != 0u);
            if (lane == 0) wsum[par + w] = __popc(m);
            __syncthreads();
            int before = 0, total = 0;
            for (int i = 0; i < nw; i++) {
                const int sct = wsum[par + i];
                before += i < w ? sct : 0;
                total += sct;
            }
            if (c) {
                const int rank = base + before + __popc(m & ((1u << lane) - 1u));
                const long long flat = origin + (long long)(o / jb.cw) * jb.cols + o % jb.cw;
                if (mode == KN_AGG_RESTORE) {
                    jb.x[flat] = sav[rank];
                } else {
                    const float g = __fdiv_rn(acc[o], (float)c);
                    if (mode == KN_AGG_CHECK) {
                        if (!isfinite(g)) bad = true;
                    } else if (mode == KN_AGG_DENSE) {
                        jb.x[flat] = g;
                    } else {
                        const float old = jb.x[flat];
                        if (sav) sav[rank] = old;
                        jb.x[flat] = __fsub_rn(old, __fmul_rn(jb.alpha, g));
                    }
                }
            }
            base += total; // wsum[par] is written again two rounds on, after the next barrier
        }
        if (bad) atomicOr(&jb.stats[1], 1ull);
        if (tid == 0 && base && mode != KN_AGG_CHECK) atomicAdd(&jb.stats[0], (unsigned long long)base);
        __syncthreads(); // cnt, acc and wsum are reused by the block's next tile
    }
}

extern "C" int kn_cu_agg_tiles(int dev, int mode, float *x, float *saved, const uint8_t *idx,
                               const uint8_t *codes, const float *sv, int n, int64_t idx_stride,
                               int64_t code_stride, int vskip, int64_t tile0, int64_t ntl, int64_t cols,
                               int ch, int cw, int64_t ntx, int k, int bins, int per, float alpha,
                               uint64_t *stats) {
    const int tn = ch * cw;
    if (mode < KN_AGG_CHECK || mode > KN_AGG_RESTORE || n < 0 || ch < 1 || cw < 1 || tn > 4096 ||
        k < 2 || k > tn || (k & 1) || (bins != 4 && bins != 256) || !stats || !idx ||
        (mode != KN_AGG_CHECK && !x) || (mode == KN_AGG_RESTORE && !saved) ||
        (mode != KN_AGG_RESTORE && (!codes || !sv)) || (saved && per < 1) || vskip < 0 || ntl < 0)
        return TS_EINVAL;
    if (ntl == 0 || n == 0) return TS_OK;
    KN_CK(cudaSetDevice(dev));
    agg_job jb;
    jb.mode = mode;
    jb.x = x;
    jb.saved = mode == KN_AGG_CHECK || mode == KN_AGG_DENSE ? nullptr : saved;
    jb.idx = idx;
    jb.codes = codes;
    jb.sv = sv;
    jb.n = n;
    jb.idx_stride = idx_stride;
    jb.code_stride = code_stride;
    jb.vskip = vskip;
    jb.tile0 = tile0;
    jb.ntl = ntl;
    jb.cols = cols;
    jb.ntx = ntx;
    jb.ch = ch;
    jb.cw = cw;
    jb.tile_numel = tn;
    jb.k = k;
    jb.bins = bins;
    jb.bits = bins == 4 ? 2 : 8;
    jb.per = per;
    jb.alpha = alpha;
    jb.stats = (unsigned long long *)stats;
    int threads = (tn + 31) / 32 * 32;
    if (threads > 256) threads = 256;
    const int grid = ntl < (1 << 20) ? (int)ntl : (1 << 20);
    KN_LAUNCH(agg_tiles_kernel, grid, threads, agg_smem_bytes(tn), 0, jb);
    KN_CK_LAUNCH();
    return TS_OK;
}
