/* backend_common.h - what the kernel test drivers (tests/backend_*.c) share:
 * the CUDA backend they test.  Not finding one is a failure, never a skip:
 * tests/t_backend_ops.sh (emulator) and bench/gpu.sh (a GPU) know that one
 * should exist. */
#ifndef TESSERA_TESTS_BACKEND_COMMON_H
#define TESSERA_TESTS_BACKEND_COMMON_H

#include <stdio.h>

#include "harness.h"
#include "kernels/kernels.h"

static inline const kn_backend *gpu(void) {
    static const kn_backend *g;
    if (!g) {
        ts_err e = {0};
        if (kn_backend_open("cuda", &g, &e) != TS_OK) {
            fprintf(stderr, "no CUDA backend: %s\n", e.msg);
            g = NULL;
        }
    }
    return g;
}

#define NEED_GPU(g)                                                                  \
    const kn_backend *g = gpu();                                                     \
    REQUIRE(g != NULL && "a CUDA backend (real GPU or TESSERA_CUDA_LIB emulator)")

#endif
