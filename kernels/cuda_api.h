/* cuda_api.h - the table of C entry points that the CUDA code (the .cu files
 * in kernels/) exports from build/lib/libtessera_cuda.so.  Private to
 * kernels/.  The binaries load that library with dlopen on first use, so
 * they start fast and run on machines with no CUDA libraries at all. */
#ifndef TESSERA_KERNELS_CUDA_API_H
#define TESSERA_KERNELS_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

#define KN_CU_API_VERSION 1

typedef struct kn_cu_api {
    int version; /* KN_CU_API_VERSION */
    int (*devices)(kn_device_info *out, int max, const char **why);
    void *(*alloc)(int dev, size_t bytes);
    void (*free)(int dev, void *p);
    int (*upload)(int dev, void *dst, const void *src, size_t bytes);
    int (*download)(int dev, void *dst, const void *src, size_t bytes);
    int (*sync)(int dev);
    int (*f32_to_bf16)(int dev, uint16_t *dst, const float *src, size_t n);
    int (*bf16_to_f32)(int dev, float *dst, const uint16_t *src, size_t n);
    /* cuBLAS handle creation, proving the library links and loads */
    int (*blas_check)(int dev, const char **why);
} kn_cu_api;

#ifdef __cplusplus
extern "C" {
#endif
/* The one symbol the library exports. */
const kn_cu_api *kn_cu_get_api(void);
#ifdef __cplusplus
}
#endif

#endif
