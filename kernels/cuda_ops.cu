// cuda_ops.cu - the GPU twins of the model's elementwise, row and reduction
// ops (kernels.h, "Model ops", gives each contract; kernels/cpu_*.c are the
// references).  Every op sets its device, launches on the default stream and
// returns without synchronizing (sumsq, which downloads its result, is the
// exception).
//
// Numerics, op by op, against the CPU twin:
//   embed_fwd, embed_bwd, rope_fwd/bwd, adamw   bit-identical: the same
//       operations in the same order, with __fmul_rn/__fadd_rn/... where
//       nvcc could otherwise contract a multiply and an add into an FMA
//       (the CPU twins are built with -ffp-contract=off), and divisions and
//       square roots correctly rounded on both sides.
//   rmsnorm, swiglu, xent, sumsq   the same formula; the reductions run in
//       another (fixed) order and expf is CUDA's rather than kn_expf, so they
//       agree to rounding.  Every reduction here is deterministic: its order
//       depends on the shape alone, and no float atomics are used anywhere.
//
// Launch shapes: the row ops (rmsnorm, xent) run one block per row with a
// block size that depends only on the row width; the elementwise ops use a
// 2D grid (columns in x, rows in y with a grid-stride loop) or a 1D
// grid-stride loop.
#include "cuda_compat.h"

#include <float.h>
#include <math.h>
#include <mutex>

#define FULL_MASK 0xffffffffu

// ------------------------------------------------------------ helpers

// Threads for a block that owns one row of `width` elements: about 8
// elements a thread, a multiple of 32 in [32, maxt].  Depends on the width
// only, so a row's reduction order does too.
static int row_threads(int width, int maxt) {
    int t = (width + 7) / 8;
    t = (t + 31) / 32 * 32;
    if (t < 32) t = 32;
    if (t > maxt) t = maxt;
    return t;
}

static unsigned grid_rows(int n) { return (unsigned)(n < 65535 ? (n > 0 ? n : 1) : 65535); }

// Block-wide float sum in a fixed order: a shuffle tree inside each warp,
// then warp 0 sums the warps' totals with the same tree.  sh holds 32 floats.
// Every thread of the block must call it; all get the total.
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(FULL_MASK, v, o);
    return v;
}

__device__ float block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        float t = lane < nw ? sh[lane] : 0.0f;
        t = warp_sum(t);
        if (lane == 0) sh[32] = t;
    }
    __syncthreads();
    float r = sh[32];
    __syncthreads(); // sh may be reused right after
    return r;
}

// ------------------------------------------------------------ embedding

// out[i, :] = wte[tok[i], :]
__global__ void embed_fwd_kernel(float *out, const float *wte, const int32_t *tok, int N, int C) {
    for (int i = blockIdx.y; i < N; i += gridDim.y) {
        const float *src = wte + (size_t)tok[i] * C;
        float *dst = out + (size_t)i * C;
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < C; j += gridDim.x * blockDim.x)
            dst[j] = src[j];
    }
}

extern "C" int kn_cu_embed_fwd(int dev, float *out, const float *wte, const int32_t *tok, int N,
                               int C) {
    KN_CK(cudaSetDevice(dev));
    if (N <= 0 || C <= 0) return TS_OK;
    int bx = (C + 255) / 256;
    dim3 grid((unsigned)(bx < 64 ? bx : 64), grid_rows(N));
    KN_LAUNCH(embed_fwd_kernel, grid, 256, 0, 0, out, wte, tok, N, C);
    KN_CK_LAUNCH();
    return TS_OK;
}

// dwte[tok[i], :] += dout[i, :], rows in order for every element: the CPU
// twin's order of additions, so the result is bit-identical, with no
// atomics.
//
// Each warp owns 32 columns and one "group" of tokens (tok % G == blockIdx.y)
// and walks all N rows in order, 32 at a time: a ballot picks the rows of
// its group and the warp adds them one after the other.  An element of row
// tok belongs to exactly one warp, which applies its rows in row order:
// dwte + dout[i1] + dout[i2] + ...  A run of rows of the same token is summed
// in a register and stored once (same additions, same order).
//
// Performance, honestly: every warp reads all N tokens (N/32 coalesced
// loads and ballots), so the scan costs G * ceil(C/32) * N/32 warp steps;
// G is chosen to give about 8192 warps (enough to fill the GPU) and at most
// N.  The adds themselves are N*C loads and read-modify-writes of dwte rows,
// coalesced across a warp.  The weak case is a batch dominated by one token:
// its rows form one serial chain per column (as on the CPU); with a run of
// equal tokens that chain stays in registers.
__global__ void embed_bwd_kernel(float *dwte, const float *dout, const int32_t *tok, int N, int C,
                                 unsigned G) {
    int lane = threadIdx.x & 31;
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    bool mine = col < C;
    unsigned g = blockIdx.y;
    int cur = -1;       // token whose running sum is in acc
    float acc = 0.0f;
    for (int i0 = 0; i0 < N; i0 += 32) {
        int i = i0 + lane;
        int t = i < N ? tok[i] : -1;
        unsigned m = __ballot_sync(FULL_MASK, t >= 0 && (unsigned)t % G == g);
        while (m) {
            int b = __ffs((int)m) - 1;
            m &= m - 1;
            int tb = __shfl_sync(FULL_MASK, t, b);
            if (mine) {
                float d = dout[(size_t)(i0 + b) * C + col];
                if (tb != cur) {
                    if (cur >= 0) dwte[(size_t)cur * C + col] = acc;
                    cur = tb;
                    acc = dwte[(size_t)tb * C + col];
                }
                acc = __fadd_rn(acc, d);
            }
        }
    }
    if (mine && cur >= 0) dwte[(size_t)cur * C + col] = acc;
}

extern "C" int kn_cu_embed_bwd(int dev, float *dwte, const float *dout, const int32_t *tok, int N,
                               int C) {
    KN_CK(cudaSetDevice(dev));
    if (N <= 0 || C <= 0) return TS_OK;
    int col_warps = (C + 31) / 32;
    int wpb = col_warps < 4 ? col_warps : 4; // warps per block
    int bx = (col_warps + wpb - 1) / wpb;
    long g = 8192 / col_warps;
    if (g < 1) g = 1;
    if (g > N) g = N;
    if (g > 65535) g = 65535;
    dim3 grid((unsigned)bx, (unsigned)g);
    KN_LAUNCH(embed_bwd_kernel, grid, 32 * wpb, 0, 0, dwte, dout, tok, N, C, (unsigned)g);
    KN_CK_LAUNCH();
    return TS_OK;
}

// ------------------------------------------------------------ RMSNorm

// One block per row: ss = sum x^2 (each thread a strided partial, then the
// block tree), rstd = 1/sqrt(ss/C + eps), out = (x * rstd) * w.
__global__ void __launch_bounds__(512) rmsnorm_fwd_kernel(float *out, float *rstd, const float *x,
                                                          const float *w, int C, float eps) {
    __shared__ float sh[33];
    const float *xr = x + (size_t)blockIdx.x * C;
    float *o = out + (size_t)blockIdx.x * C;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < C; j += blockDim.x) ss = __fadd_rn(ss, __fmul_rn(xr[j], xr[j]));
    ss = block_sum(ss, sh);
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int j = threadIdx.x; j < C; j += blockDim.x) o[j] = __fmul_rn(__fmul_rn(xr[j], r), w[j]);
}

extern "C" int kn_cu_rmsnorm_fwd(int dev, float *out, float *rstd, const float *x, const float *w,
                                 int N, int C, float eps) {
    KN_CK(cudaSetDevice(dev));
    if (N <= 0) return TS_OK;
    KN_LAUNCH(rmsnorm_fwd_kernel, (unsigned)N, row_threads(C, 512), 0, 0, out, rstd, x, w, C, eps);
    KN_CK_LAUNCH();
    return TS_OK;
}

// dx[i,k] += (r w_k) dy_k - c x_k,  c = r^3 dot / C,  dot = sum_j (dy_j w_j) x_j
__global__ void __launch_bounds__(512) rmsnorm_bwd_dx_kernel(float *dx, const float *dout,
                                                             const float *x, const float *w,
                                                             const float *rstd, int C) {
    __shared__ float sh[33];
    size_t off = (size_t)blockIdx.x * C;
    const float *dy = dout + off, *xr = x + off;
    float *d = dx + off;
    float r = rstd[blockIdx.x];
    float dot = 0.0f;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        dot = __fadd_rn(dot, __fmul_rn(__fmul_rn(dy[j], w[j]), xr[j]));
    dot = block_sum(dot, sh);
    float c = __fmul_rn(__fmul_rn(__fmul_rn(r, r), r), dot) / (float)C;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        d[j] = __fadd_rn(d[j], __fsub_rn(__fmul_rn(__fmul_rn(r, w[j]), dy[j]), __fmul_rn(c, xr[j])));
}

// dw[j] += sum_i (dy[i,j] x[i,j]) rstd[i].  A block of 32 x 32 threads owns
// 32 columns; thread (tx, ty) sums rows ty, ty + 32, ... of column tx in
// order, then thread (tx, 0) adds the 32 partials in order.  No atomics, an
// order fixed by N alone.
__global__ void __launch_bounds__(1024) rmsnorm_bwd_dw_kernel(float *dw, const float *dout,
                                                              const float *x, const float *rstd,
                                                              int N, int C) {
    __shared__ float part[32][33];
    int tx = threadIdx.x, ty = threadIdx.y;
    int col = blockIdx.x * 32 + tx;
    float acc = 0.0f;
    if (col < C) {
        for (int i = ty; i < N; i += 32) {
            size_t k = (size_t)i * C + col;
            acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(dout[k], x[k]), rstd[i]));
        }
    }
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && col < C) {
        float s = 0.0f;
        for (int k = 0; k < 32; k++) s = __fadd_rn(s, part[k][tx]);
        dw[col] = __fadd_rn(dw[col], s);
    }
}

extern "C" int kn_cu_rmsnorm_bwd(int dev, float *dx, float *dw, const float *dout, const float *x,
                                 const float *w, const float *rstd, int N, int C) {
    KN_CK(cudaSetDevice(dev));
    if (N <= 0 || C <= 0) return TS_OK;
    KN_LAUNCH(rmsnorm_bwd_dx_kernel, (unsigned)N, row_threads(C, 512), 0, 0, dx, dout, x, w, rstd,
              C);
    KN_CK_LAUNCH();
    KN_LAUNCH(rmsnorm_bwd_dw_kernel, (unsigned)((C + 31) / 32), dim3(32, 32), 0, 0, dw, dout, x,
              rstd, N, C);
    KN_CK_LAUNCH();
    return TS_OK;
}

// ------------------------------------------------------------ RoPE

// One thread per (row, head, pair i < hd/2), in place:
//   x'[i]      = x[i] c - x[i+h2] (sign s)
//   x'[i+h2]   = x[i+h2] c + x[i] (sign s)
// exactly the CPU's operations (sign * s is exact), none fused.
__global__ void rope_kernel(float *x, int ld, const float *cos_t, const float *sin_t, int N, int T,
                            int nh, int hd, float sign) {
    int h2 = hd / 2, per_row = nh * h2;
    for (int r = blockIdx.y; r < N; r += gridDim.y) {
        int t = r % T;
        const float *c = cos_t + (size_t)t * h2, *s = sin_t + (size_t)t * h2;
        float *row = x + (size_t)r * ld;
        for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < per_row; k += gridDim.x * blockDim.x) {
            int h = k / h2, i = k - h * h2;
            float *a = row + (size_t)h * hd, *b = a + h2;
            float x1 = a[i], x2 = b[i], ci = c[i], si = __fmul_rn(sign, s[i]);
            a[i] = __fsub_rn(__fmul_rn(x1, ci), __fmul_rn(x2, si));
            b[i] = __fadd_rn(__fmul_rn(x2, ci), __fmul_rn(x1, si));
        }
    }
}

static int rope(int dev, float *x, int ld, const float *cos_t, const float *sin_t, int B, int T,
                int nh, int hd, float sign) {
    KN_CK(cudaSetDevice(dev));
    int N = B * T, per_row = nh * (hd / 2);
    if (N <= 0 || per_row <= 0) return TS_OK;
    int bx = (per_row + 127) / 128;
    dim3 grid((unsigned)(bx < 64 ? bx : 64), grid_rows(N));
    KN_LAUNCH(rope_kernel, grid, 128, 0, 0, x, ld, cos_t, sin_t, N, T, nh, hd, sign);
    KN_CK_LAUNCH();
    return TS_OK;
}

extern "C" int kn_cu_rope_fwd(int dev, float *x, int ld, const float *cos_t, const float *sin_t,
                              int B, int T, int nh, int hd) {
    return rope(dev, x, ld, cos_t, sin_t, B, T, nh, hd, 1.0f);
}

extern "C" int kn_cu_rope_bwd(int dev, float *dx, int ld, const float *cos_t, const float *sin_t,
                              int B, int T, int nh, int hd) {
    return rope(dev, dx, ld, cos_t, sin_t, B, T, nh, hd, -1.0f);
}

// ------------------------------------------------------------ SwiGLU

// h = (g / (1 + e^-g)) * u
__global__ void swiglu_fwd_kernel(float *h, const float *gu, int N, int F) {
    for (int i = blockIdx.y; i < N; i += gridDim.y) {
        const float *g = gu + (size_t)i * 2 * F, *u = g + F;
        float *hr = h + (size_t)i * F;
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < F; j += gridDim.x * blockDim.x) {
            float gj = g[j];
            hr[j] = __fmul_rn(gj / __fadd_rn(1.0f, expf(-gj)), u[j]);
        }
    }
}

// s = sig(g); dg = (dh u) (s (1 + g (1 - s))); du = dh (g s)
__global__ void swiglu_bwd_kernel(float *dgu, const float *dh, const float *gu, int N, int F) {
    for (int i = blockIdx.y; i < N; i += gridDim.y) {
        const float *g = gu + (size_t)i * 2 * F, *u = g + F, *d = dh + (size_t)i * F;
        float *dg = dgu + (size_t)i * 2 * F, *du = dg + F;
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < F; j += gridDim.x * blockDim.x) {
            float gj = g[j], dj = d[j];
            float s = 1.0f / __fadd_rn(1.0f, expf(-gj));
            float silu = __fmul_rn(gj, s);
            float k = __fmul_rn(s, __fadd_rn(1.0f, __fmul_rn(gj, __fsub_rn(1.0f, s))));
            dg[j] = __fmul_rn(__fmul_rn(dj, u[j]), k);
            du[j] = __fmul_rn(dj, silu);
        }
    }
}

static dim3 grid_2d(int N, int F, int block) {
    int bx = (F + block - 1) / block;
    return dim3((unsigned)(bx < 64 ? bx : 64), grid_rows(N));
}

extern "C" int kn_cu_swiglu_fwd(int dev, float *h, const float *gu, int N, int F) {
    KN_CK(cudaSetDevice(dev));
    if (N <= 0 || F <= 0) return TS_OK;
    KN_LAUNCH(swiglu_fwd_kernel, grid_2d(N, F, 256), 256, 0, 0, h, gu, N, F);
    KN_CK_LAUNCH();
    return TS_OK;
}

extern "C" int kn_cu_swiglu_bwd(int dev, float *dgu, const float *dh, const float *gu, int N,
                                int F) {
    KN_CK(cudaSetDevice(dev));
    if (N <= 0 || F <= 0) return TS_OK;
    KN_LAUNCH(swiglu_bwd_kernel, grid_2d(N, F, 256), 256, 0, 0, dgu, dh, gu, N, F);
    KN_CK_LAUNCH();
    return TS_OK;
}

// ------------------------------------------------------------ cross-entropy

// Online logsumexp: (m, s) stands for sum_j e^{x_j} = s e^m.  An empty
// partial is (-FLT_MAX, 0), so rows of -inf logits give no NaN.
__device__ __forceinline__ void lse_add(float &m, float &s, float x) {
    if (x > m) {
        s = __fadd_rn(__fmul_rn(s, expf(m - x)), 1.0f);
        m = x;
    } else {
        s = __fadd_rn(s, expf(x - m));
    }
}

__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    float M = fmaxf(m, m2);
    s = __fadd_rn(__fmul_rn(s, expf(m - M)), __fmul_rn(s2, expf(m2 - M)));
    m = M;
}

// Block-wide merge of the (m, s) partials in a fixed tree order; every
// thread gets the row's max and sum.  sh holds 2 * 33 floats.
__device__ void block_lse(float &m, float &s, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_down_sync(FULL_MASK, m, o), s2 = __shfl_down_sync(FULL_MASK, s, o);
        lse_merge(m, s, m2, s2);
    }
    if (lane == 0) {
        sh[w] = m;
        sh[33 + w] = s;
    }
    __syncthreads();
    if (w == 0) {
        float mm = lane < nw ? sh[lane] : -FLT_MAX, ss = lane < nw ? sh[33 + lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) {
            float m2 = __shfl_down_sync(FULL_MASK, mm, o), s2 = __shfl_down_sync(FULL_MASK, ss, o);
            lse_merge(mm, ss, m2, s2);
        }
        if (lane == 0) {
            sh[32] = mm;
            sh[65] = ss;
        }
    }
    __syncthreads();
    m = sh[32];
    s = sh[65];
}

// One block per row.  bwd == 0: loss only.  bwd == 1: also overwrite the row
// with dscale * (softmax - onehot(target)); the CPU's order: e * (dscale / s),
// then the target's entry minus dscale.
__global__ void __launch_bounds__(512) xent_kernel(float *loss, float *logits, const int32_t *targets,
                                                   int V, float dscale, int bwd) {
    __shared__ float sh[66];
    float *x = logits + (size_t)blockIdx.x * V;
    int t = targets[blockIdx.x];
    if (t == KN_IGNORE_INDEX || t < 0 || t >= V) {
        // an out-of-range target (callers check) reads nothing: loss NaN
        if (threadIdx.x == 0) loss[blockIdx.x] = t == KN_IGNORE_INDEX ? 0.0f : __int_as_float(0x7fc00000);
        if (bwd)
            for (int j = threadIdx.x; j < V; j += blockDim.x) x[j] = 0.0f;
        return;
    }
    float xt = x[t]; // read before any thread overwrites the row
    float m = -FLT_MAX, s = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) lse_add(m, s, x[j]);
    block_lse(m, s, sh);
    if (threadIdx.x == 0) loss[blockIdx.x] = __fsub_rn(__fadd_rn(m, logf(s)), xt);
    if (bwd) {
        float c = dscale / s;
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float e = __fmul_rn(expf(x[j] - m), c);
            x[j] = j == t ? __fsub_rn(e, dscale) : e;
        }
    }
}

extern "C" int kn_cu_xent_fwd(int dev, float *loss, const float *logits, const int32_t *targets,
                              int N, int V) {
    KN_CK(cudaSetDevice(dev));
    if (N <= 0) return TS_OK;
    // bwd == 0 never writes the logits
    KN_LAUNCH(xent_kernel, (unsigned)N, row_threads(V, 512), 0, 0, loss, (float *)logits, targets, V,
              0.0f, 0);
    KN_CK_LAUNCH();
    return TS_OK;
}

extern "C" int kn_cu_xent_fwd_bwd(int dev, float *loss, float *logits, const int32_t *targets,
                                  int N, int V, float dscale) {
    KN_CK(cudaSetDevice(dev));
    if (N <= 0) return TS_OK;
    KN_LAUNCH(xent_kernel, (unsigned)N, row_threads(V, 512), 0, 0, loss, logits, targets, V, dscale,
              1);
    KN_CK_LAUNCH();
    return TS_OK;
}

// ------------------------------------------------------------ sum of squares

// The CPU twin's blocking: chunks of bs = max(4096, ceil(n/1024)) elements,
// at most 1024 of them.  Block b sums chunk b (a strided partial per thread,
// then a fixed tree in shared memory, in double); one block then sums the
// partials with a fixed tree.  The order depends on n alone.
#define SUMSQ_MAXB 1024
#define SUMSQ_THREADS 256

__device__ double block_sum_d(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned o = blockDim.x / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    return sh[0];
}

__global__ void __launch_bounds__(SUMSQ_THREADS) sumsq_part_kernel(double *part, const float *x,
                                                                   size_t n, size_t bs) {
    __shared__ double sh[SUMSQ_THREADS];
    size_t s = (size_t)blockIdx.x * bs, e = s + bs < n ? s + bs : n;
    double acc = 0.0;
    for (size_t i = s + threadIdx.x; i < e; i += blockDim.x) {
        double v = (double)x[i];
        acc += v * v; // exact product of two floats in double: FMA or not, the same
    }
    double t = block_sum_d(acc, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = t;
}

__global__ void __launch_bounds__(SUMSQ_MAXB) sumsq_final_kernel(double *out, const double *part,
                                                                 int nb) {
    __shared__ double sh[SUMSQ_MAXB];
    double v = (int)threadIdx.x < nb ? part[threadIdx.x] : 0.0;
    double t = block_sum_d(v, sh);
    if (threadIdx.x == 0) *out = t;
}

#define KN_MAX_DEV 64
static std::mutex g_sumsq_mu[KN_MAX_DEV];
static double *g_sumsq_buf[KN_MAX_DEV]; // SUMSQ_MAXB partials + the total, allocated once

extern "C" int kn_cu_sumsq(int dev, const float *x, size_t n, double *out) {
    KN_CK(cudaSetDevice(dev));
    if (n == 0) {
        *out = 0.0;
        return TS_OK;
    }
    if (dev < 0 || dev >= KN_MAX_DEV) {
        fprintf(stderr, "%s:%d: device %d out of range\n", __FILE__, __LINE__, dev);
        return TS_EIO;
    }
    size_t bs = (n + SUMSQ_MAXB - 1) / SUMSQ_MAXB;
    if (bs < 4096) bs = 4096;
    int nb = (int)((n + bs - 1) / bs);
    std::lock_guard<std::mutex> lk(g_sumsq_mu[dev]);
    if (!g_sumsq_buf[dev]) {
        void *p = NULL;
        KN_CK(cudaMalloc(&p, sizeof(double) * (SUMSQ_MAXB + 1)));
        g_sumsq_buf[dev] = (double *)p;
    }
    double *part = g_sumsq_buf[dev], *tot = part + SUMSQ_MAXB;
    KN_LAUNCH(sumsq_part_kernel, (unsigned)nb, SUMSQ_THREADS, 0, 0, part, x, n, bs);
    KN_CK_LAUNCH();
    KN_LAUNCH(sumsq_final_kernel, 1, SUMSQ_MAXB, 0, 0, tot, (const double *)part, nb);
    KN_CK_LAUNCH();
    KN_CK(cudaMemcpy(out, tot, sizeof(double), cudaMemcpyDeviceToHost));
    return TS_OK;
}

// ------------------------------------------------------------ AdamW

// The CPU twin's operations in its order, none fused:
//   p = p*decay; m = m*b1 + g*c1; v = v*b2 + (c2*g)*g;
//   p = p - step * (m / (sqrt(v)/bc2s + eps))
__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, float decay,
                             float b1, float b2, float c1, float c2, float eps, float step,
                             float bc2s) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float gi = g[i];
        float pi = __fmul_rn(p[i], decay);
        float mi = __fadd_rn(__fmul_rn(m[i], b1), __fmul_rn(gi, c1));
        float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(c2, gi), gi));
        m[i] = mi;
        v[i] = vi;
        float den = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2s), eps);
        p[i] = __fsub_rn(pi, __fmul_rn(step, __fdiv_rn(mi, den)));
    }
}

extern "C" int kn_cu_adamw(int dev, float *p, const float *g, float *m, float *v, size_t n,
                           const kn_adamw_args *a) {
    KN_CK(cudaSetDevice(dev));
    if (n == 0) return TS_OK;
    // scalars computed on the host exactly as the CPU twin does (volatile:
    // the host compiler must not contract lr*wd into an FMA, the CPU twin is
    // built with -ffp-contract=off)
    volatile float lr_wd = a->lr * a->weight_decay;
    float decay = 1.0f - lr_wd;
    float c1 = 1.0f - a->beta1, c2 = 1.0f - a->beta2;
    KN_LAUNCH(adamw_kernel, kn_grid_for(n, 256), 256, 0, 0, p, g, m, v, n, decay, a->beta1, a->beta2,
              c1, c2, a->eps, a->step_size, a->bc2_sqrt);
    KN_CK_LAUNCH();
    return TS_OK;
}
