// cuda_compress.cu - SparseLoCo compression on the GPU, bit for bit the CPU's
// (codec/compress.c, codec/quant.c; docs/FORMATS.md 7.3).
//
// All tensors of one call go through each kernel together (a block finds
// its tensor by binary search in the tensor table), so a call is a fixed
// handful of launches whatever the model:
//
//   select   one block per tile: ef_new = beta*ef + alpha*delta (computed,
//            not stored), the not-finite flag, the k largest |ef_new| by a
//            three-pass radix select on the bit patterns of |v| (11, 10, 10
//            bits: the k-th largest magnitude T and how many equal to T are
//            kept), then the kept offsets ascending by block scans: every
//            |v| > T, and the `need` lowest offsets with |v| == T (ties to the
//            lower offset); the tile's sequential double sum of its values
//   tree     one block per tensor: the pairwise tree over the tile sums, in
//            place (stride doubling: the same additions as level by level
//            a[i] = a[2i] + a[2i+1], odd last carried); shift, later scale
//   sq       one thread per tile: the sequential double sum of c^2
//   code     one block per group of 64 tiles (a complete subtree of the tile
//            tree): codes, and per bin the tile's sequential sum of its c,
//            folded into the group's subtree by a binary counter; the counts
//            by integer atomics
//   lut      one block per tensor and bin: the tree over the groups, the LUT
//   ef       one block per tile, after the wire object is signed: ef_new,
//            then the residual at the kept coordinates
//
// Scratch (one device allocation, spl_comp_scratch bytes): the tensor table,
// kept offsets, values and codes, per-tile and per-group partial sums, the
// per-tensor counts, shift, scale and LUT, the flag.
#include "../kernels/cuda_compat.h"

#include <string.h>

#define SPL_BLOCK 256
#define SPL_GLOG 6
#define SPL_G (1 << SPL_GLOG) // tiles per group
#define SPL_TILE_MAX 4096

namespace {

struct tdesc {
    const float *d;
    float *ef;
    int64_t rows, cols, ch, cw, k, tile0, val0, ntx, ntiles;
};

__device__ __forceinline__ void load_desc(const int64_t *tab, int i, tdesc &t) {
    const int64_t *r = tab + (size_t)i * KN_SPL_TAB;
    t.d = (const float *)(uintptr_t)r[KN_SPL_DELTA];
    t.ef = (float *)(uintptr_t)r[KN_SPL_EF];
    t.rows = r[KN_SPL_ROWS];
    t.cols = r[KN_SPL_COLS];
    t.ch = r[KN_SPL_CH];
    t.cw = r[KN_SPL_CW];
    t.k = r[KN_SPL_K];
    t.tile0 = r[KN_SPL_TILE0];
    t.val0 = r[KN_SPL_VAL0];
    t.ntx = t.cols / t.cw;
    t.ntiles = (t.rows / t.ch) * t.ntx;
}

// First group of tensor i (groups never straddle tensors; some indices are gaps).
__device__ __forceinline__ int64_t group0(const int64_t *tab, int i) {
    return (tab[(size_t)i * KN_SPL_TAB + KN_SPL_TILE0] + SPL_G - 1) / SPL_G + i;
}

// The tensor holding global tile `tile`.
__device__ int tensor_of_tile(const int64_t *tab, int n, int64_t tile) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (tab[(size_t)mid * KN_SPL_TAB + KN_SPL_TILE0] <= tile) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

__device__ int tensor_of_group(const int64_t *tab, int n, int64_t g) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (group0(tab, mid) <= g) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

// ef_new = fl(fl(beta*ef) + fl(alpha*delta)), never contracted.
__device__ __forceinline__ float ef_new(float beta, float e, float alpha, float d) {
    return __fadd_rn(__fmul_rn(beta, e), __fmul_rn(alpha, d));
}

// Inclusive sum over the block (SPL_BLOCK threads, all calling); *total gets
// the block's sum.  wsum: SPL_BLOCK / 32 ints of shared memory.
__device__ int block_scan(int v, int *wsum, int *total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int d = 1; d < 32; d <<= 1) {
        int y = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d) v += y;
    }
    if (lane == 31) wsum[warp] = v;
    __syncthreads();
    int add = 0, tot = 0;
    for (int w = 0; w < SPL_BLOCK / 32; w++) {
        if (w < warp) add += wsum[w];
        tot += wsum[w];
    }
    __syncthreads();
    *total = tot;
    return v + add;
}

// The pairwise tree over a[0], a[stride], ..., a[(m-1)*stride], in place
// (root in a[0]); every thread of the block calls it.
__device__ void tree_inplace(double *a, int64_t m, int64_t stride) {
    for (int64_t s = 1; s < m; s <<= 1) {
        for (int64_t p = (int64_t)threadIdx.x * 2 * s; p + s < m; p += (int64_t)blockDim.x * 2 * s)
            a[p * stride] = __dadd_rn(a[p * stride], a[(p + s) * stride]);
        __syncthreads();
    }
}

__device__ __forceinline__ bool finite_f(float x) {
    return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u;
}

// nextafterf(x, +inf) and nextafterf(x, -inf) for the residual
__device__ __forceinline__ float next_up(float x) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u || u == 0x7f800000u) return x;
    if ((u & 0x7fffffffu) == 0) return __uint_as_float(1u);
    return __uint_as_float((u >> 31) ? u - 1 : u + 1);
}
__device__ __forceinline__ float next_down(float x) { return -next_up(-x); }

// compress.c's ef_residual: r with fl(r + sent) == en when one of fl(en - sent)
// and its two neighbours is, else fl(en - sent).
__device__ __forceinline__ float residual(float en, float sent) {
    float r = __fsub_rn(en, sent);
    if (__fadd_rn(r, sent) == en) return r;
    float up = next_up(r);
    if (__fadd_rn(up, sent) == en) return up;
    float down = next_down(r);
    if (__fadd_rn(down, sent) == en) return down;
    return r;
}

// ---------------------------------------------------------------- select

// (min 1 block: without it ptxas for sm_80 caps this kernel at 40 registers and spills)
__global__ void __launch_bounds__(SPL_BLOCK, 1)
spl_select_kernel(const int64_t *tab, int n, float beta, float alpha, uint16_t *idx, float *vals,
                  double *tsum, unsigned long long *flag) {
    __shared__ uint32_t sbits[SPL_TILE_MAX];
    __shared__ uint32_t hist[2048];
    __shared__ int wsum[SPL_BLOCK / 32];
    __shared__ int s_bin, s_above;
    const int tid = threadIdx.x;
    const int64_t tile = blockIdx.x;
    const int ti = tensor_of_tile(tab, n, tile);
    tdesc t;
    load_desc(tab, ti, t);
    const int64_t lt = tile - t.tile0;
    const int64_t origin = (lt / t.ntx) * t.ch * t.cols + (lt % t.ntx) * t.cw;
    const int cw = (int)t.cw, numel = (int)(t.ch * t.cw), k = (int)t.k;

    for (int o = tid; o < numel; o += SPL_BLOCK) {
        const int h = o / cw, w = o - h * cw;
        const int64_t flat = origin + (int64_t)h * t.cols + w;
        const uint32_t u = __float_as_uint(ef_new(beta, t.ef[flat], alpha, t.d[flat]));
        sbits[o] = u;
        if ((u & 0x7fffffffu) >= 0x7f800000u)
            atomicMin(flag, ((unsigned long long)ti << 40) | ((unsigned long long)flat & ((1ull << 40) - 1)));
    }
    __syncthreads();

    // the k-th largest magnitude T; `need` of the values equal to T are kept
    const bool all = k >= numel;
    uint32_t T = 0;
    int need = 0;
    if (!all) {
        uint32_t prefix = 0, pmask = 0;
        int kk = k;
        for (int pass = 0; pass < 3; pass++) {
            const int sh = pass == 0 ? 20 : pass == 1 ? 10 : 0;
            const int nb = pass == 0 ? 2048 : 1024;
            for (int b = tid; b < nb; b += SPL_BLOCK) hist[b] = 0;
            __syncthreads();
            for (int o = tid; o < numel; o += SPL_BLOCK) {
                const uint32_t key = sbits[o] & 0x7fffffffu;
                if ((key & pmask) == prefix) atomicAdd(&hist[(key >> sh) & (uint32_t)(nb - 1)], 1u);
            }
            __syncthreads();
            // bins from the top: thread t sums [nb - per*(t+1), nb - per*t)
            const int per = nb / SPL_BLOCK, hi = nb - per * tid;
            int s = 0;
            for (int b = hi - per; b < hi; b++) s += (int)hist[b];
            int tot;
            const int incl = block_scan(s, wsum, &tot), excl = incl - s;
            if (excl < kk && kk <= incl) {
                int acc = excl;
                for (int b = hi - 1; b >= hi - per; b--) {
                    if (acc + (int)hist[b] >= kk) {
                        s_bin = b;
                        s_above = acc;
                        break;
                    }
                    acc += (int)hist[b];
                }
            }
            __syncthreads();
            kk -= s_above;
            prefix |= (uint32_t)s_bin << sh;
            pmask |= (uint32_t)(nb - 1) << sh;
            __syncthreads(); // s_bin, s_above and hist are rewritten by the next pass
        }
        T = prefix;
        need = kk;
    }

    // the kept offsets, ascending
    const int64_t vbase = t.val0 + lt * k;
    int base_eq = 0, base_keep = 0;
    for (int r = 0; r < numel; r += SPL_BLOCK) {
        const int o = r + tid;
        const bool valid = o < numel;
        const uint32_t key = valid ? sbits[o] & 0x7fffffffu : 0u;
        const int gt = valid && (all || key > T), eq = valid && !all && key == T;
        int tot_eq, tot_keep;
        const int erank = base_eq + block_scan(eq, wsum, &tot_eq) - eq;
        const int keep = gt || (eq && erank < need);
        const int pos = base_keep + block_scan(keep, wsum, &tot_keep) - 1;
        if (keep) {
            idx[vbase + pos] = (uint16_t)o;
            vals[vbase + pos] = __uint_as_float(sbits[o]);
        }
        base_eq += tot_eq;
        base_keep += tot_keep;
    }
    __syncthreads();
    if (tid == 0) {
        double s = 0.0;
        for (int j = 0; j < k; j++) s = __dadd_rn(s, (double)vals[vbase + j]);
        tsum[tile] = s;
    }
}

// ------------------------------------------------------------------ trees

// mode 0: the tree over the tile sums -> shift; mode 1: over the tile sums
// of squares -> scale.
__global__ void __launch_bounds__(SPL_BLOCK)
spl_tree_kernel(const int64_t *tab, int mode, double *tsum, float *shifts, float *scales, float range,
                int bins) {
    const int ti = blockIdx.x;
    tdesc t;
    load_desc(tab, ti, t);
    double *a = tsum + t.tile0;
    tree_inplace(a, t.ntiles, 1);
    if (threadIdx.x != 0) return;
    const int64_t nv = t.ntiles * t.k;
    if (mode == 0) {
        shifts[ti] = __double2float_rn(__ddiv_rn(a[0], (double)nv));
    } else {
        float scale = 1.0f;
        if (nv >= 2) {
            const double sd = __ddiv_rn(__dsqrt_rn(a[0]), __dsqrt_rn((double)(nv - 1)));
            scale = __double2float_rn(__ddiv_rn(__dmul_rn((double)range, sd), (double)bins));
            if (!(scale > 0.0f) || !finite_f(scale)) scale = 1.0f;
        }
        scales[ti] = scale;
    }
}

__global__ void __launch_bounds__(SPL_BLOCK)
spl_sq_kernel(const int64_t *tab, int n, int64_t tiles, const float *vals, const float *shifts,
              double *tsum) {
    const int64_t tile = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (tile >= tiles) return;
    const int ti = tensor_of_tile(tab, n, tile);
    tdesc t;
    load_desc(tab, ti, t);
    const float *v = vals + t.val0 + (tile - t.tile0) * t.k;
    const float sh = shifts[ti];
    double q = 0.0;
    for (int64_t j = 0; j < t.k; j++) {
        const float c = __fsub_rn(v[j], sh);
        q = __dadd_rn(q, __dmul_rn((double)c, (double)c));
    }
    tsum[tile] = q;
}

// ------------------------------------------------------------ codes, LUT

__global__ void __launch_bounds__(SPL_BLOCK)
spl_code_kernel(const int64_t *tab, int n, int bins, const float *vals, const float *shifts,
                const float *scales, uint8_t *codes, double *gsum, unsigned *gcnt) {
    __shared__ float sc[SPL_TILE_MAX];
    __shared__ uint8_t scode[SPL_TILE_MAX];
    __shared__ double stk[(SPL_GLOG + 1) * SPL_BLOCK];
    const int tid = threadIdx.x;
    const int64_t g = blockIdx.x;
    const int ti = tensor_of_group(tab, n, g);
    tdesc t;
    load_desc(tab, ti, t);
    const int64_t lg = g - group0(tab, ti);
    if (lg >= (t.ntiles + SPL_G - 1) / SPL_G) return; // a gap between tensors
    const int64_t first = lg * SPL_G;
    const int m = (int)(t.ntiles - first < SPL_G ? t.ntiles - first : SPL_G);
    const int k = (int)t.k;
    const float sh = shifts[ti], scale = scales[ti];
    const float half = (float)(bins / 2), top = (float)(bins - 1);
    unsigned cnt = 0;
    for (int u = 0; u < m; u++) {
        const int64_t base = t.val0 + (first + u) * k;
        for (int j = tid; j < k; j += SPL_BLOCK) {
            const float c = __fsub_rn(vals[base + j], sh);
            const float q = rintf(__fadd_rn(__fdiv_rn(c, scale), half));
            const int code = q >= top ? bins - 1 : q >= 1.0f ? (int)q : 0;
            codes[base + j] = (uint8_t)code;
            sc[j] = c;
            scode[j] = (uint8_t)code;
        }
        __syncthreads();
        if (tid < bins) {
            double x = 0.0;
            for (int j = 0; j < k; j++)
                if (scode[j] == tid) {
                    x = __dadd_rn(x, (double)sc[j]);
                    cnt++;
                }
            int l = 0;
            for (; (u >> l) & 1; l++) x = __dadd_rn(stk[l * SPL_BLOCK + tid], x);
            stk[l * SPL_BLOCK + tid] = x;
        }
        __syncthreads();
    }
    if (tid < bins) {
        double r = 0.0;
        bool have = false;
        for (int l = 0; l <= SPL_GLOG; l++)
            if ((m >> l) & 1) {
                r = have ? __dadd_rn(stk[l * SPL_BLOCK + tid], r) : stk[l * SPL_BLOCK + tid];
                have = true;
            }
        gsum[g * bins + tid] = r;
        if (cnt) atomicAdd(&gcnt[(size_t)ti * bins + tid], cnt);
    }
}

__global__ void __launch_bounds__(SPL_BLOCK)
spl_lut_kernel(const int64_t *tab, int bins, double *gsum, const unsigned *gcnt, float *luts) {
    const int ti = blockIdx.x, b = blockIdx.y;
    tdesc t;
    load_desc(tab, ti, t);
    double *a = gsum + group0(tab, ti) * bins + b;
    tree_inplace(a, (t.ntiles + SPL_G - 1) / SPL_G, bins);
    if (threadIdx.x != 0) return;
    const unsigned c = gcnt[(size_t)ti * bins + b];
    luts[(size_t)ti * bins + b] = c ? __double2float_rn(__ddiv_rn(a[0], (double)c)) : 0.0f;
}

// ------------------------------------------------------ error feedback

__global__ void __launch_bounds__(SPL_BLOCK)
spl_ef_kernel(const int64_t *tab, int n, int bins, float beta, float alpha, const uint16_t *idx,
              const uint8_t *codes, const float *vals, const float *luts, const float *shifts) {
    const int tid = threadIdx.x;
    const int64_t tile = blockIdx.x;
    const int ti = tensor_of_tile(tab, n, tile);
    tdesc t;
    load_desc(tab, ti, t);
    const int64_t lt = tile - t.tile0;
    const int64_t origin = (lt / t.ntx) * t.ch * t.cols + (lt % t.ntx) * t.cw;
    const int cw = (int)t.cw, numel = (int)(t.ch * t.cw), k = (int)t.k;
    for (int o = tid; o < numel; o += SPL_BLOCK) {
        const int h = o / cw, w = o - h * cw;
        const int64_t flat = origin + (int64_t)h * t.cols + w;
        t.ef[flat] = ef_new(beta, t.ef[flat], alpha, t.d[flat]);
    }
    __syncthreads();
    const int64_t vbase = t.val0 + lt * k;
    const float *lut = luts + (size_t)ti * bins;
    const float sh = shifts[ti];
    for (int j = tid; j < k; j += SPL_BLOCK) {
        const int o = idx[vbase + j];
        const int h = o / cw, w = o - h * cw;
        const int64_t flat = origin + (int64_t)h * t.cols + w;
        t.ef[flat] = residual(vals[vbase + j], __fadd_rn(lut[codes[vbase + j]], sh));
    }
}

// --------------------------------------------------------------- scratch

struct layout {
    size_t tab, idx, codes, vals, tsum, gsum, gcnt, shift, scale, lut, flag, bytes;
};

static size_t up256(size_t x) { return (x + 255) / 256 * 256; }

static layout make_layout(int n, int64_t tiles, int64_t values, int bins) {
    layout L;
    size_t at = 0;
    const size_t groups = (size_t)(tiles + SPL_G - 1) / SPL_G + (size_t)n;
    L.tab = at, at += up256((size_t)n * KN_SPL_TAB * sizeof(int64_t));
    L.idx = at, at += up256((size_t)values * sizeof(uint16_t));
    L.codes = at, at += up256((size_t)values);
    L.vals = at, at += up256((size_t)values * sizeof(float));
    L.tsum = at, at += up256((size_t)tiles * sizeof(double));
    L.gsum = at, at += up256(groups * (size_t)bins * sizeof(double));
    L.gcnt = at, at += up256((size_t)n * bins * sizeof(unsigned));
    L.shift = at, at += up256((size_t)n * sizeof(float));
    L.scale = at, at += up256((size_t)n * sizeof(float));
    L.lut = at, at += up256((size_t)n * bins * sizeof(float));
    L.flag = at, at += up256(sizeof(unsigned long long));
    L.bytes = at;
    return L;
}

static bool args_ok(int n, int64_t tiles, int64_t values, int bins) {
    return n >= 1 && tiles >= 1 && tiles <= 0x7fffffffLL && values >= 2 && (bins == 4 || bins == 256);
}

} // namespace

extern "C" int kn_cu_spl_comp_scratch(int dev, int n, int64_t tiles, int64_t values, int bins,
                                      size_t *bytes) {
    (void)dev;
    if (!args_ok(n, tiles, values, bins)) return TS_EINVAL;
    *bytes = make_layout(n, tiles, values, bins).bytes;
    return TS_OK;
}

extern "C" int kn_cu_spl_comp_run(int dev, void *scratch, const int64_t *tab, int n, int64_t tiles,
                                  int64_t values, int bins, float beta, float alpha, float range,
                                  uint16_t *idx, uint8_t *codes, float *luts, float *shifts,
                                  int64_t *bad) {
    if (!args_ok(n, tiles, values, bins)) return TS_EINVAL;
    const layout L = make_layout(n, tiles, values, bins);
    char *s = (char *)scratch;
    int64_t *d_tab = (int64_t *)(s + L.tab);
    uint16_t *d_idx = (uint16_t *)(s + L.idx);
    uint8_t *d_codes = (uint8_t *)(s + L.codes);
    float *d_vals = (float *)(s + L.vals);
    double *d_tsum = (double *)(s + L.tsum), *d_gsum = (double *)(s + L.gsum);
    unsigned *d_gcnt = (unsigned *)(s + L.gcnt);
    float *d_shift = (float *)(s + L.shift), *d_scale = (float *)(s + L.scale);
    float *d_lut = (float *)(s + L.lut);
    unsigned long long *d_flag = (unsigned long long *)(s + L.flag);
    const int64_t groups = (tiles + SPL_G - 1) / SPL_G + n;
    *bad = -1;

    KN_CK(cudaSetDevice(dev));
    KN_CK(cudaMemcpy(d_tab, tab, (size_t)n * KN_SPL_TAB * sizeof(int64_t), cudaMemcpyHostToDevice));
    KN_CK(cudaMemset(d_gcnt, 0, (size_t)n * bins * sizeof(unsigned)));
    KN_CK(cudaMemset(d_flag, 0xff, sizeof(unsigned long long)));
    KN_LAUNCH(spl_select_kernel, (unsigned)tiles, SPL_BLOCK, 0, 0, d_tab, n, beta, alpha, d_idx, d_vals,
              d_tsum, d_flag);
    KN_CK_LAUNCH();
    KN_LAUNCH(spl_tree_kernel, n, SPL_BLOCK, 0, 0, d_tab, 0, d_tsum, d_shift, d_scale, range, bins);
    KN_CK_LAUNCH();
    KN_LAUNCH(spl_sq_kernel, (unsigned)((tiles + SPL_BLOCK - 1) / SPL_BLOCK), SPL_BLOCK, 0, 0, d_tab, n,
              tiles, d_vals, d_shift, d_tsum);
    KN_CK_LAUNCH();
    KN_LAUNCH(spl_tree_kernel, n, SPL_BLOCK, 0, 0, d_tab, 1, d_tsum, d_shift, d_scale, range, bins);
    KN_CK_LAUNCH();
    KN_LAUNCH(spl_code_kernel, (unsigned)groups, SPL_BLOCK, 0, 0, d_tab, n, bins, d_vals, d_shift, d_scale,
              d_codes, d_gsum, d_gcnt);
    KN_CK_LAUNCH();
    KN_LAUNCH(spl_lut_kernel, dim3((unsigned)n, (unsigned)bins), SPL_BLOCK, 0, 0, d_tab, bins, d_gsum,
              d_gcnt, d_lut);
    KN_CK_LAUNCH();

    unsigned long long flag = 0;
    KN_CK(cudaMemcpy(&flag, d_flag, sizeof flag, cudaMemcpyDeviceToHost));
    if (flag != ~0ull) {
        *bad = (int64_t)flag;
        return TS_OK;
    }
    KN_CK(cudaMemcpy(idx, d_idx, (size_t)values * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    KN_CK(cudaMemcpy(codes, d_codes, (size_t)values, cudaMemcpyDeviceToHost));
    KN_CK(cudaMemcpy(luts, d_lut, (size_t)n * bins * sizeof(float), cudaMemcpyDeviceToHost));
    KN_CK(cudaMemcpy(shifts, d_shift, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));
    return TS_OK;
}

extern "C" int kn_cu_spl_comp_ef(int dev, void *scratch, int n, int64_t tiles, int64_t values, int bins,
                                 float beta, float alpha) {
    if (!args_ok(n, tiles, values, bins)) return TS_EINVAL;
    const layout L = make_layout(n, tiles, values, bins);
    char *s = (char *)scratch;
    KN_CK(cudaSetDevice(dev));
    KN_LAUNCH(spl_ef_kernel, (unsigned)tiles, SPL_BLOCK, 0, 0, (const int64_t *)(s + L.tab), n, bins, beta,
              alpha, (const uint16_t *)(s + L.idx), (const uint8_t *)(s + L.codes),
              (const float *)(s + L.vals), (const float *)(s + L.lut), (const float *)(s + L.shift));
    KN_CK_LAUNCH();
    KN_CK(cudaDeviceSynchronize());
    return TS_OK;
}
