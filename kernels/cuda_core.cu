// cuda_core.cu - device discovery, memory, and the fp32<->bf16 conversion
// kernels (twins of kn_cpu_f32_to_bf16 / kn_cpu_bf16_to_f32 in backend.c).
//
// Every CUDA call is checked; failures return TS_EIO instead of exiting, so
// a daemon can fall back or report.
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stdio.h>
#include <string.h>

#include "cuda_api.h"

#define CK(call)                                                                   \
    do {                                                                           \
        cudaError_t err_ = (call);                                                 \
        if (err_ != cudaSuccess) {                                                 \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,          \
                    cudaGetErrorString(err_));                                     \
            return TS_EIO;                                                         \
        }                                                                          \
    } while (0)

static int cu_devices(kn_device_info *out, int max, const char **why) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        if (why) *why = cudaGetErrorString(err);
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
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) return NULL;
    return p;
}

static void cu_free(int dev, void *p) {
    if (cudaSetDevice(dev) == cudaSuccess) cudaFree(p);
}

static int cu_upload(int dev, void *dst, const void *src, size_t bytes) {
    CK(cudaSetDevice(dev));
    CK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    return TS_OK;
}

static int cu_download(int dev, void *dst, const void *src, size_t bytes) {
    CK(cudaSetDevice(dev));
    CK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return TS_OK;
}

static int cu_sync(int dev) {
    CK(cudaSetDevice(dev));
    CK(cudaDeviceSynchronize());
    return TS_OK;
}

// Round to nearest even, NaN kept quiet: bit-for-bit the CPU twin.
__device__ __forceinline__ unsigned short f32_to_bf16_rne(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    unsigned int r = u + 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(r >> 16);
}

__global__ void f32_to_bf16_kernel(unsigned short *dst, const float *src, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = f32_to_bf16_rne(src[i]);
}

__global__ void bf16_to_f32_kernel(float *dst, const unsigned short *src, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = __uint_as_float((unsigned int)src[i] << 16);
}

static int grid_for(size_t n) {
    size_t g = (n + 255) / 256;
    return (int)(g > 65535 * 8 ? 65535 * 8 : (g ? g : 1));
}

static int cu_f32_to_bf16(int dev, uint16_t *dst, const float *src, size_t n) {
    CK(cudaSetDevice(dev));
    f32_to_bf16_kernel<<<grid_for(n), 256>>>((unsigned short *)dst, src, n);
    CK(cudaGetLastError());
    return TS_OK;
}

static int cu_bf16_to_f32(int dev, float *dst, const uint16_t *src, size_t n) {
    CK(cudaSetDevice(dev));
    bf16_to_f32_kernel<<<grid_for(n), 256>>>(dst, (const unsigned short *)src, n);
    CK(cudaGetLastError());
    return TS_OK;
}

static int cu_blas_check(int dev, const char **why) {
    if (cudaSetDevice(dev) != cudaSuccess) {
        if (why) *why = "cudaSetDevice failed";
        return TS_EIO;
    }
    cublasHandle_t h;
    cublasStatus_t s = cublasCreate(&h);
    if (s != CUBLAS_STATUS_SUCCESS) {
        if (why) *why = cublasGetStatusString(s);
        return TS_EIO;
    }
    cublasDestroy(h);
    return TS_OK;
}

static const kn_cu_api api = {
    KN_CU_API_VERSION, cu_devices, cu_alloc, cu_free, cu_upload, cu_download, cu_sync,
    cu_f32_to_bf16, cu_bf16_to_f32, cu_blas_check,
};

extern "C" __attribute__((visibility("default"))) const kn_cu_api *kn_cu_get_api(void) { return &api; }
