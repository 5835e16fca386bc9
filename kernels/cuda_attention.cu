// cuda_attention.cu - causal self-attention with grouped KV heads, forward
// and backward, in the FlashAttention-2 style: the twins of kn_cpu_attn_fwd
// and kn_cpu_attn_bwd (kernels.h gives the contract).  fp32 throughout.
//
// Forward: one block per (batch, query head, tile of BR query rows).  The
// block walks the key tiles of BC keys up to the diagonal, keeping the query
// tile, the current key and value tiles, the scores and the output
// accumulator in shared memory, with an online softmax (running max m and
// sum l per row); it writes out = acc / l and lse = m + log l.
//
// Backward (no atomics, so the result is deterministic):
//   1. D_i = sum_d dO[i,d] O[i,d] per query row, into `scratch` (B, nh, T);
//   2. dK, dV: one block per (batch, KV head, key tile), looping over the
//      query heads of its group and the query tiles at or after the key
//      tile, recomputing P = exp(S - lse) and dS = scale P (dP - D), and
//      accumulating dV += P^T dO, dK += dS^T Q in shared memory;
//   3. dQ: one block per (batch, query head, query tile), looping over the
//      key tiles up to the diagonal, dQ += dS K.
// Each writes (overwrites) its own part of dqkv.
//
// Tiles: BR = BC = 32 for hd <= 128, 16 for hd <= 256, 8 above (shared
// memory grows with hd); 128 threads.  Products of a tile (S = Q K^T and
// dP = dO V^T) give each thread a RPT x CPT register tile; the products with
// the head dimension (P V, dS K, P^T dO, dS^T Q) put the lanes of a warp
// along hd and the warps along rows.  Tiles in shared memory that are read
// across rows use a row stride of hd + 1 (odd) to spread the banks.
//
// The same source builds with nvcc and under the device emulator (g++):
// launches only through KN_LAUNCH, dynamic shared memory only through
// KN_DYN_SMEM, no PTX or warp-matrix intrinsics.
#include "cuda_compat.h"

#include <math.h>

#ifdef __CUDACC__
#define KN_UNROLL _Pragma("unroll")
#define KN_UNROLL4 _Pragma("unroll 4")
#else
#define KN_UNROLL
#define KN_UNROLL4
#endif

#define ATT_NT 128    /* threads per block */
#define ATT_WARPS 4   /* ATT_NT / 32 */
#define ATT_GRID_MAX 65535

static __device__ __forceinline__ int att_imin(int a, int b) { return a < b ? a : b; }

// Tile geometry: a BR x BC score tile, each of the TY x TX active threads
// holding RPT rows (ty + TY i) and CPT columns (tx + TX j) of it.
template <int BR, int BC, int RPT, int CPT>
struct att_cfg {
    static constexpr int TY = BR / RPT, TX = BC / CPT;
    static_assert(BR == BC, "causal tiles are square");
    static_assert(TY * RPT == BR && TX * CPT == BC && TX * TY <= ATT_NT, "tile geometry");
    static_assert(BR % ATT_WARPS == 0 && ATT_NT % BR == 0 && ATT_NT / BR <= 32, "row mapping");
    // row stride of the score tiles: the TX columns and the 32/TX rows one
    // warp writes land on distinct banks
    static constexpr int SS = BC + (((TX - BC) % 32) + 32) % 32;
    static constexpr int G = ATT_NT / BR;  // threads per row in the softmax
    static constexpr int RW = BR / ATT_WARPS; // rows (or key columns) per warp
};

// rows [0, rows) x [0, hd) of a tile from global rows of stride ld into
// shared memory of row stride ds; rows at or past nvalid read as 0
static __device__ __forceinline__ void att_load(float *dst, int ds, const float *src, size_t ld,
                                                int rows, int nvalid, int hd) {
    for (int idx = threadIdx.x; idx < rows * hd; idx += ATT_NT) {
        int r = idx / hd, d = idx - r * hd;
        dst[r * ds + d] = r < nvalid ? src[(size_t)r * ld + d] : 0.0f;
    }
}

static __device__ __forceinline__ void att_zero(float *dst, int n) {
    for (int idx = threadIdx.x; idx < n; idx += ATT_NT) dst[idx] = 0.0f;
}

// ------------------------------------------------------------------ forward

template <int BR, int BC, int RPT, int CPT>
__global__ void attn_fwd_kernel(float *out, float *lse, const float *qkv, int T, int nh, int nkv,
                                int hd, float scale, int h0, int b0) {
    typedef att_cfg<BR, BC, RPT, CPT> C;
    KN_DYN_SMEM(float, sm);
    const int hs = hd + 1;
    float *Qs = sm, *Ks = Qs + BR * hs, *Vs = Ks + BC * hs, *Ss = Vs + BC * hs;
    // Ms, Ls: the running max and sum, double-buffered by key tile parity
    // (the lanes of a row read the old values while one of them writes the
    // new ones); As: each row's rescale factor for the current tile
    float *Acc = Ss + BR * C::SS, *Ms = Acc + BR * hd, *Ls = Ms + 2 * BR, *As = Ls + 2 * BR;

    const int qt = (int)gridDim.x - 1 - (int)blockIdx.x; // longest rows first
    const int h = h0 + (int)blockIdx.y, b = b0 + (int)blockIdx.z;
    const int kvh = h / (nh / nkv);
    const size_t ld = (size_t)(nh + 2 * nkv) * hd, ldo = (size_t)nh * hd;
    const float *base = qkv + (size_t)b * T * ld;
    const int i0 = qt * BR, nq = att_imin(BR, T - i0);
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int tx = tid % C::TX, ty = tid / C::TX;
    const int sr = tid / C::G, sg = tid % C::G;

    att_load(Qs, hs, base + (size_t)i0 * ld + (size_t)h * hd, ld, BR, nq, hd);
    att_zero(Acc, BR * hd);
    if (tid < BR) {
        Ms[tid] = -INFINITY;
        Ls[tid] = 0.0f;
    }
    for (int kt = 0; kt <= qt; kt++) {
        const int j0 = kt * BC, nk = att_imin(BC, T - j0);
        __syncthreads(); // the previous tile's products are done with Ks, Vs, Ss
        att_load(Ks, hs, base + (size_t)j0 * ld + (size_t)(nh + kvh) * hd, ld, BC, nk, hd);
        att_load(Vs, hs, base + (size_t)j0 * ld + (size_t)(nh + nkv + kvh) * hd, ld, BC, nk, hd);
        __syncthreads();
        // S = scale Q K^T, -inf above the diagonal
        if (ty < C::TY) {
            float acc[RPT][CPT];
            KN_UNROLL
            for (int i = 0; i < RPT; i++) {
                KN_UNROLL
                for (int j = 0; j < CPT; j++) acc[i][j] = 0.0f;
            }
            KN_UNROLL4
            for (int d = 0; d < hd; d++) {
                float a[RPT], k[CPT];
                KN_UNROLL
                for (int i = 0; i < RPT; i++) a[i] = Qs[(ty + C::TY * i) * hs + d];
                KN_UNROLL
                for (int j = 0; j < CPT; j++) k[j] = Ks[(tx + C::TX * j) * hs + d];
                KN_UNROLL
                for (int i = 0; i < RPT; i++) {
                    KN_UNROLL
                    for (int j = 0; j < CPT; j++) acc[i][j] += a[i] * k[j];
                }
            }
            KN_UNROLL
            for (int i = 0; i < RPT; i++) {
                KN_UNROLL
                for (int j = 0; j < CPT; j++) {
                    int r = ty + C::TY * i, c = tx + C::TX * j;
                    Ss[r * C::SS + c] = (kt == qt && c > r) ? -INFINITY : acc[i][j] * scale;
                }
            }
        }
        __syncthreads();
        // online softmax: G threads per row (adjacent lanes)
        {
            float *srow = Ss + sr * C::SS;
            float mx = -INFINITY;
            for (int c = sg; c < BC; c += C::G) mx = fmaxf(mx, srow[c]);
            for (int off = C::G / 2; off > 0; off >>= 1)
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            // every row has an unmasked key in every tile it visits (key
            // j0 <= its own index), so mnew is finite
            const int cur = (kt & 1) * BR, nxt = BR - cur;
            const float mold = Ms[cur + sr], mnew = fmaxf(mold, mx);
            float sum = 0.0f;
            for (int c = sg; c < BC; c += C::G) {
                float p = expf(srow[c] - mnew);
                srow[c] = p;
                sum += p;
            }
            for (int off = C::G / 2; off > 0; off >>= 1)
                sum += __shfl_xor_sync(0xffffffffu, sum, off);
            if (sg == 0) {
                float al = expf(mold - mnew); // 0 on the first tile
                As[sr] = al;
                Ls[nxt + sr] = Ls[cur + sr] * al + sum;
                Ms[nxt + sr] = mnew;
            }
        }
        __syncthreads();
        // Acc = Acc * alpha + P V: lanes along hd, warps along rows
        for (int d = lane; d < hd; d += 32) {
            float a[C::RW];
            KN_UNROLL
            for (int i = 0; i < C::RW; i++) {
                int r = w + ATT_WARPS * i;
                a[i] = Acc[r * hd + d] * As[r];
            }
            KN_UNROLL4
            for (int c = 0; c < BC; c++) {
                float v = Vs[c * hs + d];
                KN_UNROLL
                for (int i = 0; i < C::RW; i++) a[i] += Ss[(w + ATT_WARPS * i) * C::SS + c] * v;
            }
            KN_UNROLL
            for (int i = 0; i < C::RW; i++) Acc[(w + ATT_WARPS * i) * hd + d] = a[i];
        }
    }
    __syncthreads();
    const int fin = ((qt + 1) & 1) * BR; // written by the last tile, kt = qt
    float *o = out + ((size_t)b * T + i0) * ldo + (size_t)h * hd;
    for (int idx = tid; idx < nq * hd; idx += ATT_NT) {
        int r = idx / hd, d = idx - r * hd;
        o[(size_t)r * ldo + d] = Acc[r * hd + d] / Ls[fin + r];
    }
    if (tid < nq)
        lse[((size_t)b * nh + h) * T + i0 + tid] = Ms[fin + tid] + logf(Ls[fin + tid]);
}

// ----------------------------------------------------------------- backward

// D[(b nh + h) T + t] = sum_d dout[b T + t, h hd + d] out[...]: a warp per row
__global__ void attn_bwd_dot_kernel(float *D, const float *dout, const float *out, size_t rows,
                                    int T, int nh, int hd) {
    const size_t ldo = (size_t)nh * hd;
    const int lane = threadIdx.x & 31;
    size_t stride = (size_t)gridDim.x * ATT_WARPS;
    for (size_t row = (size_t)blockIdx.x * ATT_WARPS + (threadIdx.x >> 5); row < rows; row += stride) {
        size_t t = row % (size_t)T, bh = row / (size_t)T;
        size_t h = bh % (size_t)nh, b = bh / (size_t)nh;
        size_t off = (b * T + t) * ldo + h * hd;
        float s = 0.0f;
        for (int d = lane; d < hd; d += 32) s += dout[off + d] * out[off + d];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) D[row] = s;
    }
}

// The scores and their gradients of one (query tile, key tile) pair, from
// Q, dO (BR rows) and K, V (BC rows) in shared memory:
//   P  = exp(scale Q K^T - lse)        (0 above the diagonal and past nq)
//   dS = scale P (dO V^T - D)
// written to Ps (when not NULL) and dSs, row stride SS.
template <int BR, int BC, int RPT, int CPT>
static __device__ __forceinline__ void att_bwd_scores(float *Ps, float *dSs, const float *Qs,
                                                      const float *dOs, const float *Ks,
                                                      const float *Vs, const float *Lr,
                                                      const float *Dr, int hd, float scale,
                                                      bool diag, int nq) {
    typedef att_cfg<BR, BC, RPT, CPT> C;
    const int hs = hd + 1, tid = threadIdx.x;
    const int tx = tid % C::TX, ty = tid / C::TX;
    if (ty >= C::TY) return;
    float s[RPT][CPT], dp[RPT][CPT];
    KN_UNROLL
    for (int i = 0; i < RPT; i++) {
        KN_UNROLL
        for (int j = 0; j < CPT; j++) s[i][j] = dp[i][j] = 0.0f;
    }
    KN_UNROLL4
    for (int d = 0; d < hd; d++) {
        float a[RPT], g[RPT], k[CPT], v[CPT];
        KN_UNROLL
        for (int i = 0; i < RPT; i++) {
            a[i] = Qs[(ty + C::TY * i) * hs + d];
            g[i] = dOs[(ty + C::TY * i) * hs + d];
        }
        KN_UNROLL
        for (int j = 0; j < CPT; j++) {
            k[j] = Ks[(tx + C::TX * j) * hs + d];
            v[j] = Vs[(tx + C::TX * j) * hs + d];
        }
        KN_UNROLL
        for (int i = 0; i < RPT; i++) {
            KN_UNROLL
            for (int j = 0; j < CPT; j++) {
                s[i][j] += a[i] * k[j];
                dp[i][j] += g[i] * v[j];
            }
        }
    }
    KN_UNROLL
    for (int i = 0; i < RPT; i++) {
        const int r = ty + C::TY * i;
        const float L = Lr[r], Dv = Dr[r];
        KN_UNROLL
        for (int j = 0; j < CPT; j++) {
            const int c = tx + C::TX * j;
            const bool ok = r < nq && (!diag || c <= r);
            const float p = ok ? expf(s[i][j] * scale - L) : 0.0f;
            if (Ps) Ps[r * C::SS + c] = p;
            dSs[r * C::SS + c] = scale * p * (dp[i][j] - Dv);
        }
    }
}

// lse and D of rows [i0, i0 + BR) of head h into Lr, Dr (0 past nq)
static __device__ __forceinline__ void att_load_rows(float *Lr, float *Dr, const float *lse,
                                                     const float *D, size_t off, int BR, int nq) {
    for (int r = threadIdx.x; r < BR; r += ATT_NT) {
        Lr[r] = r < nq ? lse[off + r] : 0.0f;
        Dr[r] = r < nq ? D[off + r] : 0.0f;
    }
}

template <int BR, int BC, int RPT, int CPT>
__global__ void attn_bwd_dkdv_kernel(float *dqkv, const float *D, const float *dout,
                                     const float *qkv, const float *lse, int T, int nh, int nkv,
                                     int hd, float scale, int kv0, int b0) {
    typedef att_cfg<BR, BC, RPT, CPT> C;
    KN_DYN_SMEM(float, sm);
    const int hs = hd + 1;
    float *Ks = sm, *Vs = Ks + BC * hs, *Qs = Vs + BC * hs, *dOs = Qs + BR * hs;
    float *Ps = dOs + BR * hs, *dSs = Ps + BR * C::SS, *dK = dSs + BR * C::SS, *dV = dK + BC * hd;
    float *Lr = dV + BC * hd, *Dr = Lr + BR;

    const int kt = blockIdx.x, kvh = kv0 + (int)blockIdx.y, b = b0 + (int)blockIdx.z;
    const int rep = nh / nkv, nqt = (T + BR - 1) / BR;
    const size_t ld = (size_t)(nh + 2 * nkv) * hd, ldo = (size_t)nh * hd;
    const float *base = qkv + (size_t)b * T * ld;
    const int j0 = kt * BC, nk = att_imin(BC, T - j0);
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;

    att_load(Ks, hs, base + (size_t)j0 * ld + (size_t)(nh + kvh) * hd, ld, BC, nk, hd);
    att_load(Vs, hs, base + (size_t)j0 * ld + (size_t)(nh + nkv + kvh) * hd, ld, BC, nk, hd);
    att_zero(dK, BC * hd);
    att_zero(dV, BC * hd);
    for (int hr = 0; hr < rep; hr++) {
        const int h = kvh * rep + hr;
        for (int qt = kt; qt < nqt; qt++) {
            const int i0 = qt * BR, nq = att_imin(BR, T - i0);
            __syncthreads(); // the previous tile's products are done
            att_load(Qs, hs, base + (size_t)i0 * ld + (size_t)h * hd, ld, BR, nq, hd);
            att_load(dOs, hs, dout + ((size_t)b * T + i0) * ldo + (size_t)h * hd, ldo, BR, nq, hd);
            att_load_rows(Lr, Dr, lse, D, ((size_t)b * nh + h) * T + i0, BR, nq);
            __syncthreads();
            att_bwd_scores<BR, BC, RPT, CPT>(Ps, dSs, Qs, dOs, Ks, Vs, Lr, Dr, hd, scale, qt == kt,
                                             nq);
            __syncthreads();
            // dV += P^T dO, dK += dS^T Q: lanes along hd, warps along keys
            for (int d = lane; d < hd; d += 32) {
                float av[C::RW], ak[C::RW];
                KN_UNROLL
                for (int i = 0; i < C::RW; i++) {
                    int c = w + ATT_WARPS * i;
                    av[i] = dV[c * hd + d];
                    ak[i] = dK[c * hd + d];
                }
                KN_UNROLL4
                for (int r = 0; r < BR; r++) {
                    const float g = dOs[r * hs + d], q = Qs[r * hs + d];
                    KN_UNROLL
                    for (int i = 0; i < C::RW; i++) {
                        int c = w + ATT_WARPS * i;
                        av[i] += Ps[r * C::SS + c] * g;
                        ak[i] += dSs[r * C::SS + c] * q;
                    }
                }
                KN_UNROLL
                for (int i = 0; i < C::RW; i++) {
                    int c = w + ATT_WARPS * i;
                    dV[c * hd + d] = av[i];
                    dK[c * hd + d] = ak[i];
                }
            }
        }
    }
    __syncthreads();
    float *dk = dqkv + ((size_t)b * T + j0) * ld + (size_t)(nh + kvh) * hd;
    float *dv = dqkv + ((size_t)b * T + j0) * ld + (size_t)(nh + nkv + kvh) * hd;
    for (int idx = tid; idx < nk * hd; idx += ATT_NT) {
        int c = idx / hd, d = idx - c * hd;
        dk[(size_t)c * ld + d] = dK[c * hd + d];
        dv[(size_t)c * ld + d] = dV[c * hd + d];
    }
}

template <int BR, int BC, int RPT, int CPT>
__global__ void attn_bwd_dq_kernel(float *dqkv, const float *D, const float *dout,
                                   const float *qkv, const float *lse, int T, int nh, int nkv,
                                   int hd, float scale, int h0, int b0) {
    typedef att_cfg<BR, BC, RPT, CPT> C;
    KN_DYN_SMEM(float, sm);
    const int hs = hd + 1;
    float *Qs = sm, *dOs = Qs + BR * hs, *Ks = dOs + BR * hs, *Vs = Ks + BC * hs;
    float *dSs = Vs + BC * hs, *dQ = dSs + BR * C::SS, *Lr = dQ + BR * hd, *Dr = Lr + BR;

    const int qt = (int)gridDim.x - 1 - (int)blockIdx.x; // longest rows first
    const int h = h0 + (int)blockIdx.y, b = b0 + (int)blockIdx.z;
    const int kvh = h / (nh / nkv);
    const size_t ld = (size_t)(nh + 2 * nkv) * hd, ldo = (size_t)nh * hd;
    const float *base = qkv + (size_t)b * T * ld;
    const int i0 = qt * BR, nq = att_imin(BR, T - i0);
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;

    att_load(Qs, hs, base + (size_t)i0 * ld + (size_t)h * hd, ld, BR, nq, hd);
    att_load(dOs, hs, dout + ((size_t)b * T + i0) * ldo + (size_t)h * hd, ldo, BR, nq, hd);
    att_load_rows(Lr, Dr, lse, D, ((size_t)b * nh + h) * T + i0, BR, nq);
    att_zero(dQ, BR * hd);
    for (int kt = 0; kt <= qt; kt++) {
        const int j0 = kt * BC, nk = att_imin(BC, T - j0);
        __syncthreads();
        att_load(Ks, hs, base + (size_t)j0 * ld + (size_t)(nh + kvh) * hd, ld, BC, nk, hd);
        att_load(Vs, hs, base + (size_t)j0 * ld + (size_t)(nh + nkv + kvh) * hd, ld, BC, nk, hd);
        __syncthreads();
        att_bwd_scores<BR, BC, RPT, CPT>(NULL, dSs, Qs, dOs, Ks, Vs, Lr, Dr, hd, scale, kt == qt,
                                         nq);
        __syncthreads();
        // dQ += dS K: lanes along hd, warps along rows
        for (int d = lane; d < hd; d += 32) {
            float a[C::RW];
            KN_UNROLL
            for (int i = 0; i < C::RW; i++) a[i] = dQ[(w + ATT_WARPS * i) * hd + d];
            KN_UNROLL4
            for (int c = 0; c < BC; c++) {
                const float k = Ks[c * hs + d];
                KN_UNROLL
                for (int i = 0; i < C::RW; i++) a[i] += dSs[(w + ATT_WARPS * i) * C::SS + c] * k;
            }
            KN_UNROLL
            for (int i = 0; i < C::RW; i++) dQ[(w + ATT_WARPS * i) * hd + d] = a[i];
        }
    }
    __syncthreads();
    float *dq = dqkv + ((size_t)b * T + i0) * ld + (size_t)h * hd;
    for (int idx = tid; idx < nq * hd; idx += ATT_NT) {
        int r = idx / hd, d = idx - r * hd;
        dq[(size_t)r * ld + d] = dQ[r * hd + d];
    }
}

// --------------------------------------------------------------------- host

// Shared memory of each kernel, in bytes.
template <int BR, int BC, int RPT, int CPT>
struct att_smem {
    typedef att_cfg<BR, BC, RPT, CPT> C;
    static size_t fwd(int hd) {
        size_t hs = (size_t)hd + 1;
        return sizeof(float) * (BR * hs + 2 * BC * hs + BR * C::SS + (size_t)BR * hd + 5 * BR);
    }
    static size_t dkdv(int hd) {
        size_t hs = (size_t)hd + 1;
        return sizeof(float) *
               (2 * BC * hs + 2 * BR * hs + 2 * BR * C::SS + 2 * (size_t)BC * hd + 2 * BR);
    }
    static size_t dq(int hd) {
        size_t hs = (size_t)hd + 1;
        return sizeof(float) * (2 * BR * hs + 2 * BC * hs + BR * C::SS + (size_t)BR * hd + 2 * BR);
    }
};

typedef void (*att_fwd_fn)(float *, float *, const float *, int, int, int, int, float, int, int);
typedef void (*att_bwd_fn)(float *, const float *, const float *, const float *, const float *, int,
                           int, int, int, float, int, int);

static int att_smem_attr(const void *fn, size_t bytes) {
    if (bytes > 48 * 1024)
        KN_CK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return TS_OK;
}

template <int BR, int BC, int RPT, int CPT>
static int att_fwd_run(float *out, float *lse, const float *qkv, int B, int T, int nh, int nkv,
                       int hd) {
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t bytes = att_smem<BR, BC, RPT, CPT>::fwd(hd);
    att_fwd_fn fn = attn_fwd_kernel<BR, BC, RPT, CPT>;
    int rc = att_smem_attr((const void *)fn, bytes);
    if (rc) return rc;
    const int nqt = (T + BR - 1) / BR;
    for (int b0 = 0; b0 < B; b0 += ATT_GRID_MAX)
        for (int h0 = 0; h0 < nh; h0 += ATT_GRID_MAX) {
            dim3 grid((unsigned)nqt, (unsigned)(nh - h0 < ATT_GRID_MAX ? nh - h0 : ATT_GRID_MAX),
                      (unsigned)(B - b0 < ATT_GRID_MAX ? B - b0 : ATT_GRID_MAX));
            KN_LAUNCH(fn, grid, dim3(ATT_NT), bytes, 0, out, lse, qkv, T, nh, nkv, hd, scale, h0,
                      b0);
            KN_CK_LAUNCH();
        }
    return TS_OK;
}

template <int BR, int BC, int RPT, int CPT>
static int att_bwd_run(float *dqkv, const float *D, const float *dout, const float *qkv,
                       const float *lse, int B, int T, int nh, int nkv, int hd) {
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t bkv = att_smem<BR, BC, RPT, CPT>::dkdv(hd), bq = att_smem<BR, BC, RPT, CPT>::dq(hd);
    att_bwd_fn fkv = attn_bwd_dkdv_kernel<BR, BC, RPT, CPT>;
    att_bwd_fn fq = attn_bwd_dq_kernel<BR, BC, RPT, CPT>;
    int rc = att_smem_attr((const void *)fkv, bkv);
    if (rc || (rc = att_smem_attr((const void *)fq, bq))) return rc;
    const int nt = (T + BR - 1) / BR;
    for (int b0 = 0; b0 < B; b0 += ATT_GRID_MAX) {
        unsigned gb = (unsigned)(B - b0 < ATT_GRID_MAX ? B - b0 : ATT_GRID_MAX);
        for (int k0 = 0; k0 < nkv; k0 += ATT_GRID_MAX) {
            dim3 grid((unsigned)nt, (unsigned)(nkv - k0 < ATT_GRID_MAX ? nkv - k0 : ATT_GRID_MAX), gb);
            KN_LAUNCH(fkv, grid, dim3(ATT_NT), bkv, 0, dqkv, D, dout, qkv, lse, T, nh, nkv, hd,
                      scale, k0, b0);
            KN_CK_LAUNCH();
        }
        for (int h0 = 0; h0 < nh; h0 += ATT_GRID_MAX) {
            dim3 grid((unsigned)nt, (unsigned)(nh - h0 < ATT_GRID_MAX ? nh - h0 : ATT_GRID_MAX), gb);
            KN_LAUNCH(fq, grid, dim3(ATT_NT), bq, 0, dqkv, D, dout, qkv, lse, T, nh, nkv, hd, scale,
                      h0, b0);
            KN_CK_LAUNCH();
        }
    }
    return TS_OK;
}

extern "C" int kn_cu_attn_fwd(int dev, float *out, float *lse, float *scratch, const float *qkv,
                              int B, int T, int nh, int nkv, int hd) {
    (void)scratch; // the forward pass needs none
    KN_CK(cudaSetDevice(dev));
    if (B <= 0 || T <= 0 || nh <= 0) return TS_OK;
    if (hd <= 128) return att_fwd_run<32, 32, 2, 4>(out, lse, qkv, B, T, nh, nkv, hd);
    if (hd <= 256) return att_fwd_run<16, 16, 2, 1>(out, lse, qkv, B, T, nh, nkv, hd);
    return att_fwd_run<8, 8, 1, 1>(out, lse, qkv, B, T, nh, nkv, hd);
}

extern "C" int kn_cu_attn_bwd(int dev, float *dqkv, float *scratch, const float *dout,
                              const float *qkv, const float *out, const float *lse, int B, int T,
                              int nh, int nkv, int hd) {
    KN_CK(cudaSetDevice(dev));
    if (B <= 0 || T <= 0 || nh <= 0) return TS_OK;
    // D = rowsum(dO o O), (B, nh, T), in the scratch
    const size_t rows = (size_t)B * nh * T;
    float *D = scratch;
    KN_LAUNCH(attn_bwd_dot_kernel, dim3((unsigned)kn_grid_for(rows, ATT_WARPS)), dim3(ATT_NT), 0, 0,
              D, dout, out, rows, T, nh, hd);
    KN_CK_LAUNCH();
    if (hd <= 128) return att_bwd_run<32, 32, 2, 4>(dqkv, D, dout, qkv, lse, B, T, nh, nkv, hd);
    if (hd <= 256) return att_bwd_run<16, 16, 2, 1>(dqkv, D, dout, qkv, lse, B, T, nh, nkv, hd);
    return att_bwd_run<8, 8, 1, 1>(dqkv, D, dout, qkv, lse, B, T, nh, nkv, hd);
}
