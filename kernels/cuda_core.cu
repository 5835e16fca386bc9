// cuda_core.cu - device discovery, memory, the small elementwise ops (fill,
// copy, scale, fp32<->bf16 conversion; twins of the CPU ops in backend.c,
// cpu_math.h) and the table of entry points the library exports.
//
// Every CUDA call is checked; failures return TS_EIO instead of exiting, so
// a daemon can fall back or report.
#include "cuda_compat.h"

#include <dlfcn.h>
#include <string.h>

static int cu_devices(kn_device_info *out, int max, const char **why) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        if (why) *why = cudaGetErrorString(err);
#ifndef CUDAEMU
        /* without a driver the runtime says "driver version is insufficient";
         * say what is actually missing */
        if (err == cudaErrorInsufficientDriver) {
            void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
            if (!h && why) *why = "no NVIDIA driver on this machine: libcuda.so.1 not found";
            if (h) dlclose(h);
        }
#endif
        cudaGetLastError();
        return 0;
    }
    if (n == 0 && why) *why = "no CUDA devices";
    for (int i = 0; i < n && i < max; i++) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
        out[i].index = i;
        snprintf(out[i].name, sizeof out[i].name, "%.120s", p.name);
        out[i].total_mem = p.totalGlobalMem;
        out[i].cc_major = p.major;
        out[i].cc_minor = p.minor;
        out[i].multiprocessors = p.multiProcessorCount;
    }
    return n < max ? n : max;
}

static void *cu_alloc(int dev, size_t bytes) {
    void *p = NULL;
    if (cudaSetDevice(dev) != cudaSuccess) return NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError(); /* an allocation failure is reported by the caller */
        return NULL;
    }
    return p;
}

static void cu_free(int dev, void *p) {
    if (p && cudaSetDevice(dev) == cudaSuccess) cudaFree(p);
}

static int cu_upload(int dev, void *dst, const void *src, size_t bytes) {
    KN_CK(cudaSetDevice(dev));
    KN_CK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    return TS_OK;
}

static int cu_download(int dev, void *dst, const void *src, size_t bytes) {
    KN_CK(cudaSetDevice(dev));
    KN_CK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return TS_OK;
}

static int cu_sync(int dev) {
    KN_CK(cudaSetDevice(dev));
    KN_CK(cudaDeviceSynchronize());
    return TS_OK;
}

static int cu_mem_info(int dev, size_t *free_bytes, size_t *total_bytes) {
    KN_CK(cudaSetDevice(dev));
    KN_CK(cudaMemGetInfo(free_bytes, total_bytes));
    return TS_OK;
}

__global__ void f32_to_bf16_kernel(unsigned short *dst, const float *src, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = kn_f32_to_bf16_rne(src[i]);
}

__global__ void bf16_to_f32_kernel(float *dst, const unsigned short *src, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = kn_bf16_to_f32(src[i]);
}

__global__ void fill_kernel(float *x, float v, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) x[i] = v;
}

__global__ void copy_kernel(float *dst, const float *src, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = src[i];
}

__global__ void scale_kernel(float *x, float s, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] = __fmul_rn(x[i], s);
}

__global__ void sub_kernel(float *out, const float *x, const float *y, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = __fsub_rn(x[i], y[i]);
}

static int cu_sub(int dev, float *out, const float *x, const float *y, size_t n) {
    if (!n) return TS_OK;
    KN_CK(cudaSetDevice(dev));
    KN_LAUNCH(sub_kernel, kn_grid_for(n, 256), 256, 0, 0, out, x, y, n);
    KN_CK_LAUNCH();
    return TS_OK;
}

static int cu_f32_to_bf16(int dev, uint16_t *dst, const float *src, size_t n) {
    if (!n) return TS_OK;
    KN_CK(cudaSetDevice(dev));
    KN_LAUNCH(f32_to_bf16_kernel, kn_grid_for(n, 256), 256, 0, 0, (unsigned short *)dst, src, n);
    KN_CK_LAUNCH();
    return TS_OK;
}

static int cu_bf16_to_f32(int dev, float *dst, const uint16_t *src, size_t n) {
    if (!n) return TS_OK;
    KN_CK(cudaSetDevice(dev));
    KN_LAUNCH(bf16_to_f32_kernel, kn_grid_for(n, 256), 256, 0, 0, dst, (const unsigned short *)src, n);
    KN_CK_LAUNCH();
    return TS_OK;
}

static int cu_fill(int dev, float *x, float v, size_t n) {
    if (!n) return TS_OK;
    KN_CK(cudaSetDevice(dev));
    KN_LAUNCH(fill_kernel, kn_grid_for(n, 256), 256, 0, 0, x, v, n);
    KN_CK_LAUNCH();
    return TS_OK;
}

static int cu_copy(int dev, float *dst, const float *src, size_t n) {
    if (!n) return TS_OK;
    KN_CK(cudaSetDevice(dev));
    KN_LAUNCH(copy_kernel, kn_grid_for(n, 256), 256, 0, 0, dst, src, n);
    KN_CK_LAUNCH();
    return TS_OK;
}

static int cu_scale(int dev, float *x, float s, size_t n) {
    if (!n) return TS_OK;
    KN_CK(cudaSetDevice(dev));
    KN_LAUNCH(scale_kernel, kn_grid_for(n, 256), 256, 0, 0, x, s, n);
    KN_CK_LAUNCH();
    return TS_OK;
}

static kn_cu_api make_api(void) {
    kn_cu_api a;
    memset(&a, 0, sizeof a);
    a.version = KN_CU_API_VERSION;
#ifdef CUDAEMU
    a.emulated = 1;
#endif
    a.devices = cu_devices;
    a.alloc = cu_alloc;
    a.free = cu_free;
    a.upload = cu_upload;
    a.download = cu_download;
    a.sync = cu_sync;
    a.mem_info = cu_mem_info;
    a.f32_to_bf16 = cu_f32_to_bf16;
    a.bf16_to_f32 = cu_bf16_to_f32;
    a.blas_check = kn_cu_blas_check;
    a.gemm_reserve = kn_cu_gemm_reserve;
    /* model ops */
    a.gemm = kn_cu_gemm;
    a.fill = cu_fill;
    a.copy = cu_copy;
    a.embed_fwd = kn_cu_embed_fwd;
    a.embed_bwd = kn_cu_embed_bwd;
    a.rmsnorm_fwd = kn_cu_rmsnorm_fwd;
    a.rmsnorm_bwd = kn_cu_rmsnorm_bwd;
    a.rope_fwd = kn_cu_rope_fwd;
    a.rope_bwd = kn_cu_rope_bwd;
    a.attn_fwd = kn_cu_attn_fwd;
    a.attn_bwd = kn_cu_attn_bwd;
    a.swiglu_fwd = kn_cu_swiglu_fwd;
    a.swiglu_bwd = kn_cu_swiglu_bwd;
    a.xent_fwd = kn_cu_xent_fwd;
    a.xent_fwd_bwd = kn_cu_xent_fwd_bwd;
    a.sumsq = kn_cu_sumsq;
    a.scale = cu_scale;
    a.sub = cu_sub;
    a.adamw = kn_cu_adamw;
    /* codec ops: compression */
    a.spl_comp_scratch = kn_cu_spl_comp_scratch;
    a.spl_comp_run = kn_cu_spl_comp_run;
    a.spl_comp_ef = kn_cu_spl_comp_ef;
    /* codec ops: aggregation */
    a.agg_tiles = kn_cu_agg_tiles;
    return a;
}

static const kn_cu_api api = make_api();

extern "C" __attribute__((visibility("default"))) const kn_cu_api *kn_cu_get_api(void) { return &api; }
