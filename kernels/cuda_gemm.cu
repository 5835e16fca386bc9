// cuda_gemm.cu - the GEMM of the CUDA backend: cuBLASLt with bf16 inputs and
// fp32 accumulation and output, the twin of kn_cpu_gemm (cblas_sgemm,
// row-major):
//   C(M,N) = alpha op(A) op(B) + beta C,  A (M,K) or, transposed, (K,M) with
//   leading dimension lda; B (K,N) or (N,K) with ldb; C with ldc.
//
// Each call converts A and B (the strided submatrices, fp32) to bf16,
// rounding to nearest even like ts_f32_to_bf16, into a per-device staging
// buffer packed with leading dimensions rounded up to 8 elements (16 bytes,
// what the tensor-core kernels want), then runs one cuBLASLt matmul:
// A/B CUDA_R_16BF, C/D CUDA_R_32F (the same pointer: beta applies in place),
// CUBLAS_COMPUTE_32F, scale type CUDA_R_32F.  cuBLAS is column-major and a
// row-major matrix is its column-major transpose, so the row-major product is
// computed as the column-major C^T (N x M) = op(B)^T op(A)^T: B goes first.
//
// Per device, created once and kept for the process: the cuBLASLt handle, a
// 32 MiB workspace, the staging buffer (grow-only: a larger one replaces it
// after a device synchronize) and a small cache of the algorithms that
// cublasLtMatmulAlgoGetHeuristic picked per shape.  A mutex per device
// covers all of it for the whole call, launches included; everything runs
// on the default stream, so a later call's conversion cannot overtake an
// earlier call's matmul.
#include "cuda_compat.h"

#include <mutex>
#include <string.h>

#define KN_MAX_DEV 64
#define GEMM_WORKSPACE KN_GPU_BLAS_WORKSPACE /* kernels.h; model_memory_plan_on counts it */
#define ALGO_CACHE 32

// Checks a cuBLASLt call; prints the place and status and returns TS_EIO.
#define LT_CK(call)                                                                \
    do {                                                                           \
        cublasStatus_t st_ = (call);                                               \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                        \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,          \
                    cublasGetStatusString(st_));                                 \
            return TS_EIO;                                                         \
        }                                                                          \
    } while (0)

namespace {

struct algo_entry {
    int valid;
    int ta, tb, M, N, K, ldc;
    unsigned align_c;
    cublasLtMatmulAlgo_t algo;
};

struct gemm_dev {
    std::mutex mu;
    cublasLtHandle_t lt;
    int have_lt;
    void *ws;       // GEMM_WORKSPACE bytes
    void *stage;    // bf16 copies of A and B
    size_t stage_bytes;
    algo_entry cache[ALGO_CACHE];
    int cache_next; // round-robin replacement
};

gemm_dev g_dev[KN_MAX_DEV];

// The descriptors of one call, destroyed on every return path.
struct lt_descs {
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t a = NULL, b = NULL, c = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    ~lt_descs() {
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
        if (c) cublasLtMatrixLayoutDestroy(c);
        if (b) cublasLtMatrixLayoutDestroy(b);
        if (a) cublasLtMatrixLayoutDestroy(a);
        if (op) cublasLtMatmulDescDestroy(op);
    }
};

} // namespace

// The handle and workspace of device dev (the caller holds its mutex and
// has set the device).
static int dev_init(gemm_dev *d, const char **why) {
    if (d->have_lt) return TS_OK;
    cublasStatus_t st = cublasLtCreate(&d->lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "%s:%d: cublasLtCreate: %s\n", __FILE__, __LINE__,
                cublasGetStatusString(st));
        if (why) *why = cublasGetStatusString(st);
        return TS_EIO;
    }
    cudaError_t err = cudaMalloc(&d->ws, GEMM_WORKSPACE);
    if (err != cudaSuccess) {
        fprintf(stderr, "%s:%d: cudaMalloc(workspace): %s\n", __FILE__, __LINE__,
                cudaGetErrorString(err));
        if (why) *why = cudaGetErrorString(err);
        cublasLtDestroy(d->lt);
        d->ws = NULL;
        return TS_EIO;
    }
    d->have_lt = 1;
    return TS_OK;
}

extern "C" int kn_cu_blas_check(int dev, const char **why) {
    cudaError_t err = cudaSetDevice(dev);
    if (err != cudaSuccess) {
        if (why) *why = cudaGetErrorString(err);
        return TS_EIO;
    }
    if (dev < 0 || dev >= KN_MAX_DEV) {
        if (why) *why = "device index out of range";
        return TS_EIO;
    }
    gemm_dev *d = &g_dev[dev];
    std::lock_guard<std::mutex> lk(d->mu);
    return dev_init(d, why);
}

// dst (rows, cols; leading dimension ldd) = bf16(src (rows, cols; lds))
__global__ void pack_bf16_kernel(unsigned short *dst, int ldd, const float *src, int lds, int rows,
                                 int cols) {
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const float *s = src + (size_t)r * lds;
        unsigned short *o = dst + (size_t)r * ldd;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x)
            o[c] = kn_f32_to_bf16_rne(s[c]);
    }
}

// C(rows, cols; ldc) = beta C, or 0 where beta == 0 (K == 0: nothing to add)
__global__ void scale_c_kernel(float *C, int ldc, int rows, int cols, float beta) {
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        float *o = C + (size_t)r * ldc;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x)
            o[c] = beta == 0.0f ? 0.0f : beta * o[c];
    }
}

static dim3 grid_2d(int rows, int cols) {
    int bx = (cols + 255) / 256;
    return dim3((unsigned)(bx < 32 ? bx : 32), (unsigned)(rows < 65535 ? rows : 65535));
}

static int pack(unsigned short *dst, int ldd, const float *src, int lds, int rows, int cols) {
    KN_LAUNCH(pack_bf16_kernel, grid_2d(rows, cols), 256, 0, 0, dst, ldd, src, lds, rows, cols);
    KN_CK_LAUNCH();
    return TS_OK;
}

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

// The largest power of two (up to 256) that divides the address.
static unsigned ptr_align(const void *p) {
    uintptr_t u = (uintptr_t)p;
    unsigned a = 256;
    while (a > 1 && (u & (a - 1))) a >>= 1;
    return a;
}

// Grows d's staging buffer to at least need bytes (d->mu held).
static int grow_stage(gemm_dev *d, size_t need) {
    if (need <= d->stage_bytes) return TS_OK;
    if (d->stage) {
        KN_CK(cudaDeviceSynchronize()); // the previous calls may still read it
        KN_CK(cudaFree(d->stage));
        d->stage = NULL;
        d->stage_bytes = 0;
    }
    size_t sz = round_up(need, (size_t)1 << 20);
    KN_CK(cudaMalloc(&d->stage, sz));
    d->stage_bytes = sz;
    return TS_OK;
}

extern "C" int kn_cu_gemm_reserve(int dev, size_t bytes) {
    KN_CK(cudaSetDevice(dev));
    if (dev < 0 || dev >= KN_MAX_DEV) return TS_EIO;
    gemm_dev *d = &g_dev[dev];
    std::lock_guard<std::mutex> lk(d->mu);
    if (dev_init(d, NULL) != TS_OK) return TS_EIO;
    return grow_stage(d, bytes);
}

extern "C" int kn_cu_gemm(int dev, int trans_a, int trans_b, int M, int N, int K, float alpha,
                          const float *A, int lda, const float *B, int ldb, float beta, float *C,
                          int ldc) {
    KN_CK(cudaSetDevice(dev));
    if (M <= 0 || N <= 0) return TS_OK;
    if (K <= 0) {
        KN_LAUNCH(scale_c_kernel, grid_2d(M, N), 256, 0, 0, C, ldc, M, N, beta);
        KN_CK_LAUNCH();
        return TS_OK;
    }
    if (dev < 0 || dev >= KN_MAX_DEV) {
        fprintf(stderr, "%s:%d: device %d out of range\n", __FILE__, __LINE__, dev);
        return TS_EIO;
    }
    gemm_dev *d = &g_dev[dev];
    std::lock_guard<std::mutex> lk(d->mu);
    if (dev_init(d, NULL) != TS_OK) return TS_EIO;

    // A as stored (row-major): (M, K), or (K, M) when transposed; B: (K, N) or (N, K).
    int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
    int b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    int lda_s = (int)round_up((size_t)a_cols, 8), ldb_s = (int)round_up((size_t)b_cols, 8);
    size_t a_bytes = round_up((size_t)a_rows * lda_s * 2, 256);
    size_t need = a_bytes + (size_t)b_rows * ldb_s * 2; // = kn_gemm_staging_bytes (kernels.h)
    if (grow_stage(d, need) != TS_OK) return TS_EIO;
    unsigned short *a16 = (unsigned short *)d->stage;
    unsigned short *b16 = (unsigned short *)((char *)d->stage + a_bytes);
    if (pack(a16, lda_s, A, lda, a_rows, a_cols) != TS_OK) return TS_EIO;
    if (pack(b16, ldb_s, B, ldb, b_rows, b_cols) != TS_OK) return TS_EIO;

    // Column-major view: D (N x M, ldc) = op(B') (N x K) * op(A') (K x M),
    // where B' is the column-major reading of B's staging copy, a
    // (b_cols x b_rows) matrix, and op(B') transposes it exactly when trans_b
    // is set (likewise A' and trans_a).
    lt_descs ds;
    cublasOperation_t opa = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CK(cublasLtMatmulDescCreate(&ds.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_CK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT_CK(cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    LT_CK(cublasLtMatrixLayoutCreate(&ds.a, CUDA_R_16BF, (uint64_t)b_cols, (uint64_t)b_rows,
                                     (int64_t)ldb_s));
    LT_CK(cublasLtMatrixLayoutCreate(&ds.b, CUDA_R_16BF, (uint64_t)a_cols, (uint64_t)a_rows,
                                     (int64_t)lda_s));
    LT_CK(cublasLtMatrixLayoutCreate(&ds.c, CUDA_R_32F, (uint64_t)N, (uint64_t)M, (int64_t)ldc));

    unsigned align_c = ptr_align(C);
    algo_entry *hit = NULL;
    for (int i = 0; i < ALGO_CACHE; i++) {
        algo_entry *e = &d->cache[i];
        if (e->valid && e->ta == !!trans_a && e->tb == !!trans_b && e->M == M && e->N == N &&
            e->K == K && e->ldc == ldc && e->align_c == align_c) {
            hit = e;
            break;
        }
    }
    if (!hit) {
        uint64_t ws = GEMM_WORKSPACE;
        LT_CK(cublasLtMatmulPreferenceCreate(&ds.pref));
        LT_CK(cublasLtMatmulPreferenceSetAttribute(ds.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                   &ws, sizeof ws));
#ifndef CUDAEMU // the emulator's cuBLASLt has no alignment requirements (nor these attributes)
        // The heuristic assumes 256-byte aligned pointers unless told
        // otherwise; the staging copies of A and B always are, C (a caller's
        // submatrix) need not be.
        if (align_c < 256) {
            uint32_t al_c = align_c;
            LT_CK(cublasLtMatmulPreferenceSetAttribute(
                ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c));
            LT_CK(cublasLtMatmulPreferenceSetAttribute(
                ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c));
        }
#endif
        cublasLtMatmulHeuristicResult_t res;
        memset(&res, 0, sizeof res);
        int nres = 0;
        LT_CK(cublasLtMatmulAlgoGetHeuristic(d->lt, ds.op, ds.a, ds.b, ds.c, ds.c, ds.pref, 1, &res,
                                             &nres));
        if (nres < 1) {
            fprintf(stderr, "%s:%d: cublasLtMatmulAlgoGetHeuristic: no algorithm for M=%d N=%d K=%d\n",
                    __FILE__, __LINE__, M, N, K);
            return TS_EIO;
        }
        hit = &d->cache[d->cache_next];
        d->cache_next = (d->cache_next + 1) % ALGO_CACHE;
        hit->valid = 1;
        hit->ta = !!trans_a;
        hit->tb = !!trans_b;
        hit->M = M;
        hit->N = N;
        hit->K = K;
        hit->ldc = ldc;
        hit->align_c = align_c;
        hit->algo = res.algo;
    }
    LT_CK(cublasLtMatmul(d->lt, ds.op, &alpha, b16, ds.a, a16, ds.b, &beta, C, ds.c, C, ds.c,
                         &hit->algo, d->ws, GEMM_WORKSPACE, 0));
    return TS_OK;
}
