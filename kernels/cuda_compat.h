/* cuda_compat.h - what every .cu file of kernels/ includes first.  The same
 * source builds two ways:
 *
 *   nvcc   the real thing: cuda_runtime.h and cublasLt.h, launches with
 *          <<<grid, block, smem, stream>>>;
 *   g++    under the project's device emulator (tests/cudaemu/cudaemu.h,
 *          force-included by the Makefile with CUDAEMU defined), which runs
 *          each block's threads as fibers on the CPU so that `make test`
 *          checks the kernels' own source on machines without a GPU.
 *
 * Kernel code therefore launches only through KN_LAUNCH and declares dynamic
 * shared memory only through KN_DYN_SMEM; everything else (__syncthreads,
 * __shfl_*_sync, atomics, threadIdx, ...) is plain CUDA. */
#ifndef TESSERA_KERNELS_CUDA_COMPAT_H
#define TESSERA_KERNELS_CUDA_COMPAT_H

#ifdef CUDAEMU
#ifndef TESSERA_CUDAEMU_H
#error "CUDAEMU builds force-include tests/cudaemu/cudaemu.h"
#endif
#else
#include <cuda_runtime.h>
#include <cublasLt.h>
/* KN_LAUNCH(kernel, grid, block, smem_bytes, stream, args...) */
#define KN_LAUNCH(kernel, grid, block, smem, stream, ...) \
    kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
/* KN_DYN_SMEM(type, name): the block's dynamic shared memory as type name[] */
#define KN_DYN_SMEM(type, name) extern __shared__ __align__(16) type name[]
#endif

#include <stdint.h>
#include <stdio.h>

#include "cuda_api.h"

/* Checks a CUDA runtime call; on failure prints where and returns TS_EIO from
 * the enclosing int function (a daemon reports, never exits). */
#define KN_CK(call)                                                                \
    do {                                                                           \
        cudaError_t err_ = (call);                                                 \
        if (err_ != cudaSuccess) {                                                 \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,          \
                    cudaGetErrorString(err_));                                     \
            return TS_EIO;                                                         \
        }                                                                          \
    } while (0)

/* After a launch: the launch error, if any. */
#define KN_CK_LAUNCH() KN_CK(cudaGetLastError())

/* bf16 as raw bits (no cuda_bf16.h needed on either side), rounding to
 * nearest even with NaN kept quiet: bit for bit the CPU's ts_f32_to_bf16. */
__device__ __forceinline__ unsigned short kn_f32_to_bf16_rne(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    unsigned int r = u + 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(r >> 16);
}
__device__ __forceinline__ float kn_bf16_to_f32(unsigned short h) {
    return __uint_as_float((unsigned int)h << 16);
}

/* Grid for a grid-stride loop over n elements with `block` threads. */
static inline int kn_grid_for(size_t n, int block) {
    size_t g = (n + (size_t)block - 1) / (size_t)block;
    if (g > 65535u * 8u) g = 65535u * 8u;
    return (int)(g ? g : 1);
}

#endif
