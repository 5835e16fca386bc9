/*
 * kernels.h - compute backends: the CPU reference and, when built with CUDA,
 * the GPU.  Model and codec code calls kernels through one table chosen at
 * start-up, so the same binary runs on a machine without a GPU and tests can
 * compare the two tables op by op.
 *
 * Memory passed to a backend's ops lives where that backend computes (host
 * memory for "cpu", device memory for "cuda:N"); kn_alloc / kn_upload /
 * kn_download move data between the two.
 */
#ifndef TESSERA_KERNELS_H
#define TESSERA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/common.h"

typedef struct kn_device_info {
    int index;
    char name[128];
    size_t total_mem;
    int cc_major, cc_minor;
    int multiprocessors;
} kn_device_info;

/* True when this binary was built with CUDA support. */
int kn_cuda_built(void);
/* Lists GPUs; returns the count (0 when none or no driver) and sets *why to
 * a reason when there are none. */
int kn_cuda_devices(kn_device_info *out, int max, const char **why);

typedef struct kn_backend kn_backend;

struct kn_backend {
    const char *name; /* "cpu" or "cuda:N" */
    int is_gpu;
    int device;
    void *(*alloc)(const kn_backend *b, size_t bytes);
    void (*free)(const kn_backend *b, void *p);
    int (*upload)(const kn_backend *b, void *dst, const void *host_src, size_t bytes);
    int (*download)(const kn_backend *b, void *host_dst, const void *src, size_t bytes);
    int (*sync)(const kn_backend *b);
    /* ops */
    int (*f32_to_bf16)(const kn_backend *b, uint16_t *dst, const float *src, size_t n);
    int (*bf16_to_f32)(const kn_backend *b, float *dst, const uint16_t *src, size_t n);
};

/* "cpu", "cuda", "cuda:N" or "auto" (the first GPU if any, else the CPU). */
int kn_backend_open(const char *spec, const kn_backend **out, ts_err *e);
const kn_backend *kn_cpu(void);

/* CPU twins, usable directly on host memory. */
void kn_cpu_f32_to_bf16(uint16_t *dst, const float *src, size_t n);
void kn_cpu_bf16_to_f32(float *dst, const uint16_t *src, size_t n);

#endif
