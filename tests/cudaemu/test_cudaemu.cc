/* test_cudaemu.cc - self-tests of the CUDA device emulator (tests/cudaemu/).
 *
 * Compiled like the kernels (g++ -x c++ -DCUDAEMU -include cudaemu.h), linked
 * with the emulator's runtime and the project's C test harness.  Kernels that
 * depend on the resume order run under all three orders. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "tests/harness.h"
}

#ifndef TESSERA_CUDAEMU_H
#error "build with -include tests/cudaemu/cudaemu.h"
#endif

static const int kOrders[3] = {CUDAEMU_ORDER_FORWARD, CUDAEMU_ORDER_REVERSE, CUDAEMU_ORDER_SHUFFLE};
static const char *const kOrderNames[3] = {"forward", "reverse", "shuffle"};

static bool has(const char *s, const char *sub) { return s && sub && strstr(s, sub) != nullptr; }
static std::string at_line(int line) { return "test_cudaemu.cc:" + std::to_string(line); }

/* Expects the last launch to have failed with a message containing every
 * fragment. */
static void expect_launch_failure(const char *file, int line, const std::vector<std::string> &frags) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaErrorLaunchFailure)
        th_fail(file, line, "expected cudaErrorLaunchFailure, got %s", cudaGetErrorName(e));
    const char *msg = cudaemu_last_error();
    if (getenv("CUDAEMU_TEST_SHOW")) printf("# %s\n", msg);
    for (const std::string &f : frags)
        if (!has(msg, f.c_str())) th_fail(file, line, "message lacks \"%s\": %s", f.c_str(), msg);
}
#define EXPECT_LAUNCH_FAILURE(...) expect_launch_failure(__FILE__, __LINE__, {__VA_ARGS__})

template <class T>
static T *dev_alloc(size_t n) {
    T *p = nullptr;
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) return nullptr;
    return p;
}
template <class T>
static std::vector<T> download(const T *d, size_t n) {
    std::vector<T> h(n);
    if (cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost) != cudaSuccess) h.clear();
    return h;
}
template <class T>
static void upload(T *d, const std::vector<T> &h) {
    cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
}

/* ---------------------------------------------------------------- a block reduction */
/* With sync_first = 0 one __syncthreads is missing: a thread may read a
 * neighbour's slot before the neighbour wrote it. */
__global__ void reduce_kernel(const float *x, float *out, int n, int sync_first) {
    __shared__ float s[256];
    unsigned t = threadIdx.x;
    unsigned i = blockIdx.x * blockDim.x + t;
    s[t] = i < (unsigned)n ? x[i] : 0.0f;
    if (sync_first) __syncthreads();
    for (unsigned st = blockDim.x / 2; st > 0; st >>= 1) {
        if (t < st) s[t] += s[t + st];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

/* 1 when every block's sum is right */
static int run_reduce(int order, int sync_first) {
    const int n = 1000, blocks = 4;
    cudaemu_set_order(order, 7);
    std::vector<float> h(n);
    for (int i = 0; i < n; i++) h[i] = (float)(i % 17);
    float *x = dev_alloc<float>(n), *out = dev_alloc<float>(blocks);
    upload(x, h);
    KN_LAUNCH(reduce_kernel, blocks, 256, 0, 0, x, out, n, sync_first);
    int ok = cudaGetLastError() == cudaSuccess;
    std::vector<float> r = download(out, blocks);
    for (int b = 0; b < blocks; b++) {
        float want = 0;
        for (int i = b * 256; i < n && i < (b + 1) * 256; i++) want += h[i];
        ok = ok && r.size() == (size_t)blocks && r[b] == want;
    }
    cudaFree(x);
    cudaFree(out);
    return ok;
}

TEST(reduction_correct_in_all_orders) {
    for (int o = 0; o < 3; o++) CHECK_MSG(run_reduce(kOrders[o], 1), "order %s", kOrderNames[o]);
}

TEST(missing_syncthreads_caught_by_some_order) {
    int wrong = 0;
    for (int o = 0; o < 3; o++) {
        int ok = run_reduce(kOrders[o], 0);
        printf("# missing __syncthreads, %s order: %s\n", kOrderNames[o], ok ? "hidden" : "wrong result");
        wrong += !ok;
    }
    CHECK(wrong >= 1);
    CHECK(!run_reduce(CUDAEMU_ORDER_FORWARD, 0)); /* reading before the write: NaN from the 0xff fill */
}

/* ---------------------------------------------------------------- barrier misuse */
static int g_div_a, g_div_b, g_ret_line, g_dead_line, g_absent_line, g_absent_bar, g_src_line;

__global__ void divergent_kernel(int *out) {
    if (threadIdx.x < 32) {
        g_div_a = __LINE__; __syncthreads();
    } else {
        g_div_b = __LINE__; __syncthreads();
    }
    out[threadIdx.x] = 1;
}

TEST(divergent_barrier_reported) {
    cudaemu_set_quiet(1);
    int *out = dev_alloc<int>(64);
    for (int o = 0; o < 3; o++) {
        cudaemu_set_order(kOrders[o], 3);
        KN_LAUNCH(divergent_kernel, 1, 64, 0, 0, out);
        EXPECT_LAUNCH_FAILURE("divergent", "kernel divergent_kernel", at_line(g_div_a), at_line(g_div_b),
                              "threads 0-31", "threads 32-63", "block (0,0,0)");
    }
    cudaFree(out);
}

__global__ void early_return_kernel(int *out) {
    if (threadIdx.x == 5) return;
    g_ret_line = __LINE__; __syncthreads();
    out[threadIdx.x] = 1;
}

TEST(return_while_others_wait_reported) {
    cudaemu_set_quiet(1);
    int *out = dev_alloc<int>(64);
    for (int o = 0; o < 3; o++) {
        cudaemu_set_order(kOrders[o], 3);
        KN_LAUNCH(early_return_kernel, 2, 64, 0, 0, out);
        EXPECT_LAUNCH_FAILURE("kernel early_return_kernel", "thread 5 of block", "returned while",
                              "threads 0-4,6-63 wait at __syncthreads", at_line(g_ret_line));
    }
    cudaFree(out);
}

__global__ void deadlock_kernel(int *out) {
    if (threadIdx.x >= 16) return;
    g_dead_line = __LINE__; __syncwarp(0xffffffffu);
    out[threadIdx.x] = 1;
}

TEST(deadlock_reported) {
    cudaemu_set_quiet(1);
    int *out = dev_alloc<int>(32);
    for (int o = 0; o < 3; o++) {
        cudaemu_set_order(kOrders[o], 3);
        KN_LAUNCH(deadlock_kernel, 1, 32, 0, 0, out);
        EXPECT_LAUNCH_FAILURE("deadlock", "kernel deadlock_kernel", "lanes 0-15 wait in __syncwarp(mask 0xffffffff)",
                              at_line(g_dead_line), "lanes 16-31 exited");
    }
    cudaFree(out);
}

__global__ void shfl_absent_kernel(int *out, int mode) {
    int v = (int)threadIdx.x;
    if (mode == 0) {
        if (threadIdx.x < 16) { g_absent_line = __LINE__; v = __shfl_sync(0xffffffffu, v, 0); }
    } else if (mode == 1) {
        if (threadIdx.x < 16) { g_absent_line = __LINE__; v = __shfl_sync(0xffffffffu, v, 0); }
        g_absent_bar = __LINE__; __syncthreads();
    } else {
        /* lanes of one collective with different masks */
        g_absent_line = __LINE__; v = __shfl_sync(threadIdx.x < 16 ? 0x0000ffffu : 0xffffffffu, v, 0);
    }
    out[threadIdx.x] = v;
}

TEST(shuffle_with_absent_lanes_reported) {
    cudaemu_set_quiet(1);
    int *out = dev_alloc<int>(64);
    for (int o = 0; o < 3; o++) {
        cudaemu_set_order(kOrders[o], 3);
        KN_LAUNCH(shfl_absent_kernel, 1, 64, 0, 0, out, 0);
        EXPECT_LAUNCH_FAILURE("deadlock", "kernel shfl_absent_kernel", "__shfl_sync(mask 0xffffffff)",
                              at_line(g_absent_line), "lanes 16-31 exited");
        KN_LAUNCH(shfl_absent_kernel, 1, 64, 0, 0, out, 1);
        EXPECT_LAUNCH_FAILURE("deadlock", at_line(g_absent_line),
                              "lanes 16-31 wait at __syncthreads at ", at_line(g_absent_bar));
        KN_LAUNCH(shfl_absent_kernel, 1, 64, 0, 0, out, 2);
        EXPECT_LAUNCH_FAILURE("kernel shfl_absent_kernel", at_line(g_absent_line));
    }
    cudaFree(out);
}

__global__ void shfl_bad_kernel(int *out, int mode) {
    int v = (int)threadIdx.x;
    if (mode == 0) {
        /* lane 5 reads lane 20, which is not in the mask */
        if (threadIdx.x < 16) { g_src_line = __LINE__; v = __shfl_sync(0x0000ffffu, v, threadIdx.x == 5 ? 20 : 0); }
    } else if (mode == 1) {
        g_src_line = __LINE__; v = __shfl_xor_sync(0xffffffffu, v, 1, 12); /* width not a power of two */
    } else if (mode == 2) {
        g_src_line = __LINE__; v = __shfl_sync(0x1u, v, 0); /* mask without the calling lane */
    } else {
        g_src_line = __LINE__; v = __shfl_sync(0xffffffffu, v, 0); /* lanes 24-31 do not exist */
    }
    out[threadIdx.x] = v;
}

TEST(shuffle_misuse_reported) {
    cudaemu_set_quiet(1);
    int *out = dev_alloc<int>(64);
    KN_LAUNCH(shfl_bad_kernel, 1, 32, 0, 0, out, 0);
    EXPECT_LAUNCH_FAILURE("lane 5 reads lane 20, which is not in the mask", at_line(g_src_line));
    KN_LAUNCH(shfl_bad_kernel, 1, 32, 0, 0, out, 1);
    EXPECT_LAUNCH_FAILURE("width 12", at_line(g_src_line));
    KN_LAUNCH(shfl_bad_kernel, 1, 32, 0, 0, out, 2);
    EXPECT_LAUNCH_FAILURE("does not include the calling lane", at_line(g_src_line));
    KN_LAUNCH(shfl_bad_kernel, 1, 24, 0, 0, out, 3);
    EXPECT_LAUNCH_FAILURE("lanes 24-31, which do not exist", at_line(g_src_line));
    cudaFree(out);
}

/* ---------------------------------------------------------------- warp collectives */
enum { W_XOR_I, W_XOR_F, W_XOR_D, W_SCAN16, W_DOWN8, W_IDX16, W_XOR8, W_BALLOT, W_ANY, W_ALL, W_NALL,
       W_RADD, W_RMIN, W_RMAX, W_MATCH, W_ACTIVE, W_PARTIAL, W_COUNT, W_SLOTS };

__global__ void warp_ops_kernel(int *out) {
    const unsigned full = 0xffffffffu;
    unsigned t = threadIdx.x, lane = t % warpSize, nt = blockDim.x;
    int *o = out;
    int vi = (int)t;
    for (int d = 16; d > 0; d >>= 1) vi += __shfl_xor_sync(full, vi, d);
    o[W_XOR_I * nt + t] = vi;
    float vf = (float)t * 0.5f;
    for (int d = 16; d > 0; d >>= 1) vf += __shfl_xor_sync(full, vf, d);
    o[W_XOR_F * nt + t] = (int)(vf * 2.0f);
    double vd = (double)t * 0.25;
    for (int d = 16; d > 0; d >>= 1) vd += __shfl_xor_sync(full, vd, d);
    o[W_XOR_D * nt + t] = (int)(vd * 4.0);
    int s = (int)lane + 1; /* inclusive scan inside segments of 16 */
    for (int d = 1; d < 16; d <<= 1) {
        int y = __shfl_up_sync(full, s, d, 16);
        if ((int)(lane & 15) >= d) s += y;
    }
    o[W_SCAN16 * nt + t] = s;
    o[W_DOWN8 * nt + t] = __shfl_down_sync(full, (int)lane * 10, 3, 8);
    o[W_IDX16 * nt + t] = __shfl_sync(full, (int)lane, (int)(lane * 7) % 32, 16);
    o[W_XOR8 * nt + t] = __shfl_xor_sync(full, (int)lane, 8, 8);
    o[W_BALLOT * nt + t] = (int)__ballot_sync(full, lane % 3 == 0);
    o[W_ANY * nt + t] = __any_sync(full, lane == 5);
    o[W_ALL * nt + t] = __all_sync(full, lane < 40);
    o[W_NALL * nt + t] = __all_sync(full, lane < 31);
    o[W_RADD * nt + t] = (int)__reduce_add_sync(full, lane);
    o[W_RMIN * nt + t] = __reduce_min_sync(full, (int)lane - 20);
    o[W_RMAX * nt + t] = __reduce_max_sync(full, (int)lane - 20);
    o[W_MATCH * nt + t] = (int)__match_any_sync(full, lane / 4);
    __syncwarp();
    o[W_ACTIVE * nt + t] = (int)__activemask();
    int p = (int)lane;
    if (lane < 16) p = __shfl_down_sync(0x0000ffffu, p, 1, 16);
    o[W_PARTIAL * nt + t] = p;
    o[W_COUNT * nt + t] = __syncthreads_count(t % 2);
}

TEST(warp_collectives) {
    const int nt = 64;
    int *out = dev_alloc<int>(W_SLOTS * nt);
    for (int oi = 0; oi < 3; oi++) {
        cudaemu_set_order(kOrders[oi], 11);
        KN_LAUNCH(warp_ops_kernel, 1, nt, 0, 0, out);
        REQUIRE(cudaGetLastError() == cudaSuccess);
        std::vector<int> r = download(out, W_SLOTS * nt);
        REQUIRE(r.size() == (size_t)W_SLOTS * nt);
        for (int t = 0; t < nt; t++) {
            int lane = t % 32, w0 = t - lane;
            int wsum = 0;
            for (int l = 0; l < 32; l++) wsum += w0 + l;
            int scan = 0;
            for (int l = lane & ~15; l <= lane; l++) scan += l + 1;
            int down = (lane % 8) + 3 < 8 ? (lane + 3) * 10 : lane * 10;
            int idx = (lane & ~15) | ((lane * 7) % 32 & 15);
            int x8 = (lane & 8) ? lane - 8 : lane; /* earlier groups only */
            unsigned ballot = 0;
            for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
            unsigned match = 0xfu << (lane / 4 * 4);
            int partial = lane < 15 ? lane + 1 : lane;
#define W(slot) r[(slot) * nt + t]
            CHECK_EQ_INT(W(W_XOR_I), wsum);
            CHECK_EQ_INT(W(W_XOR_F), wsum);
            CHECK_EQ_INT(W(W_XOR_D), wsum);
            CHECK_EQ_INT(W(W_SCAN16), scan);
            CHECK_EQ_INT(W(W_DOWN8), down);
            CHECK_EQ_INT(W(W_IDX16), idx);
            CHECK_EQ_INT(W(W_XOR8), x8);
            CHECK_EQ_INT((unsigned)W(W_BALLOT), ballot);
            CHECK_EQ_INT(W(W_ANY), 1);
            CHECK_EQ_INT(W(W_ALL), 1);
            CHECK_EQ_INT(W(W_NALL), 0);
            CHECK_EQ_INT(W(W_RADD), 496);
            CHECK_EQ_INT(W(W_RMIN), -20);
            CHECK_EQ_INT(W(W_RMAX), 11);
            CHECK_EQ_INT((unsigned)W(W_MATCH), match);
            CHECK_EQ_INT((unsigned)W(W_ACTIVE), 0xffffffffu);
            CHECK_EQ_INT(W(W_PARTIAL), partial);
            CHECK_EQ_INT(W(W_COUNT), 32);
#undef W
            if (th_failed()) return;
        }
    }
    cudaFree(out);
}

/* ---------------------------------------------------------------- atomics, indexing, smem */
__global__ void atomics_kernel(int *count, float *fsum, unsigned long long *usum, double *dsum, int *mx) {
    __shared__ int block_count;
    if (threadIdx.x == 0) block_count = 0;
    __syncthreads();
    atomicAdd(&block_count, 1);
    atomicAdd(fsum, (float)threadIdx.x);
    atomicAdd(usum, 1ull);
    atomicAdd(dsum, 0.5);
    atomicMax(mx, (int)(blockIdx.x * blockDim.x + threadIdx.x));
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd(count, block_count);
}

TEST(atomics_shared_and_global) {
    int *count = dev_alloc<int>(1), *mx = dev_alloc<int>(1);
    float *fsum = dev_alloc<float>(1);
    unsigned long long *usum = dev_alloc<unsigned long long>(1);
    double *dsum = dev_alloc<double>(1);
    for (int o = 0; o < 3; o++) {
        cudaemu_set_order(kOrders[o], 5);
        cudaMemset(count, 0, sizeof(int));
        cudaMemset(fsum, 0, sizeof(float));
        cudaMemset(usum, 0, sizeof(unsigned long long));
        cudaMemset(dsum, 0, sizeof(double));
        cudaMemset(mx, 0, sizeof(int));
        KN_LAUNCH(atomics_kernel, 4, 256, 0, 0, count, fsum, usum, dsum, mx);
        REQUIRE(cudaGetLastError() == cudaSuccess);
        CHECK_EQ_INT(download(count, 1)[0], 1024);
        CHECK_EQ_INT(download(usum, 1)[0], 1024);
        CHECK_EQ_INT(download(mx, 1)[0], 1023);
        CHECK(download(fsum, 1)[0] == 4.0f * 255.0f * 256.0f / 2.0f);
        CHECK(download(dsum, 1)[0] == 512.0);
    }
    cudaFree(count);
    cudaFree(mx);
    cudaFree(fsum);
    cudaFree(usum);
    cudaFree(dsum);
}

__global__ void index_kernel(int *out) {
    unsigned bx = blockIdx.x, by = blockIdx.y, bz = blockIdx.z;
    unsigned b = (bz * gridDim.y + by) * gridDim.x + bx;
    unsigned t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    unsigned nt = blockDim.x * blockDim.y * blockDim.z;
    out[b * nt + t] = (int)(threadIdx.x | threadIdx.y << 4 | threadIdx.z << 8 | bx << 12 | by << 16 | bz << 20);
    __syncthreads();
    /* a barrier in a multi-dimensional block: the warp of linear id t */
    unsigned ballot = __ballot_sync(0xffffffffu, threadIdx.y == 0);
    if (t % 32 == 0) out[b * nt + t] |= (int)(ballot == 0x000f000fu) << 24;
}

TEST(multidim_grid_and_block) {
    dim3 grid(3, 2, 2), block(4, 4, 2);
    int nt = 32, nb = 12;
    int *out = dev_alloc<int>(nb * nt);
    for (int o = 0; o < 3; o++) {
        cudaemu_set_order(kOrders[o], 9);
        KN_LAUNCH(index_kernel, grid, block, 0, 0, out);
        REQUIRE(cudaGetLastError() == cudaSuccess);
        std::vector<int> r = download(out, nb * nt);
        for (int bz = 0; bz < 2; bz++)
            for (int by = 0; by < 2; by++)
                for (int bx = 0; bx < 3; bx++)
                    for (int tz = 0; tz < 2; tz++)
                        for (int ty = 0; ty < 4; ty++)
                            for (int tx = 0; tx < 4; tx++) {
                                int b = (bz * 2 + by) * 3 + bx, t = (tz * 4 + ty) * 4 + tx;
                                int want = tx | ty << 4 | tz << 8 | bx << 12 | by << 16 | bz << 20;
                                if (t == 0) want |= 1 << 24;
                                CHECK_EQ_INT(r[b * nt + t], want);
                            }
    }
    cudaFree(out);
}

__global__ void dyn_smem_kernel(const int *in, int *out, int *first) {
    KN_DYN_SMEM(int, buf);
    unsigned t = threadIdx.x, n = blockDim.x;
    first[blockIdx.x * n + t] = buf[t]; /* never written yet: 0xff bytes */
    buf[t] = in[blockIdx.x * n + t];
    __syncthreads();
    out[blockIdx.x * n + t] = buf[n - 1 - t];
}

__global__ void static_smem_kernel(int *out) {
    __shared__ int s[64];
    out[threadIdx.x] = s[threadIdx.x]; /* never written: 0xff bytes */
    s[threadIdx.x] = 7;
}

TEST(dynamic_shared_memory) {
    const int n = 128, blocks = 3;
    int *in = dev_alloc<int>(n * blocks), *out = dev_alloc<int>(n * blocks), *first = dev_alloc<int>(n * blocks);
    std::vector<int> h(n * blocks);
    for (int i = 0; i < n * blocks; i++) h[i] = i * 3;
    upload(in, h);
    for (int o = 0; o < 3; o++) {
        cudaemu_set_order(kOrders[o], 1);
        KN_LAUNCH(dyn_smem_kernel, blocks, n, n * sizeof(int), 0, in, out, first);
        REQUIRE(cudaGetLastError() == cudaSuccess);
        std::vector<int> r = download(out, n * blocks), f = download(first, n * blocks);
        for (int b = 0; b < blocks; b++)
            for (int t = 0; t < n; t++) {
                CHECK_EQ_INT(r[b * n + t], h[b * n + n - 1 - t]);
                CHECK_EQ_INT(f[b * n + t], -1);
            }
    }
    /* more than 48 KiB needs cudaFuncSetAttribute, as on a GPU */
    cudaemu_set_quiet(1);
    KN_LAUNCH(dyn_smem_kernel, 1, n, 64 * 1024, 0, in, out, first);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    CHECK(has(cudaemu_last_error(), "dyn_smem_kernel"));
    CHECK(has(cudaemu_last_error(), "cudaFuncAttributeMaxDynamicSharedMemorySize"));
    CHECK(cudaFuncSetAttribute(dyn_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024) ==
          cudaErrorInvalidValue);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    CHECK(cudaFuncSetAttribute(dyn_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) ==
          cudaSuccess);
    KN_LAUNCH(dyn_smem_kernel, 1, n, 64 * 1024, 0, in, out, first);
    CHECK(cudaGetLastError() == cudaSuccess);
    /* static __shared__ starts as 0xff at every launch */
    for (int rep = 0; rep < 2; rep++) {
        KN_LAUNCH(static_smem_kernel, 1, 64, 0, 0, out);
        CHECK(cudaGetLastError() == cudaSuccess);
        std::vector<int> r = download(out, 64);
        for (int t = 0; t < 64; t++) CHECK_EQ_INT(r[t], -1);
    }
    cudaFree(in);
    cudaFree(out);
    cudaFree(first);
}

/* ---------------------------------------------------------------- host API */
TEST(device_memory_and_copies) {
    cudaemu_set_quiet(1);
    size_t before = cudaemu_mem_in_use();
    unsigned char *d = nullptr;
    REQUIRE(cudaMalloc(&d, 1000) == cudaSuccess);
    CHECK_EQ_INT(cudaemu_mem_in_use(), before + 1000);
    std::vector<unsigned char> h = download(d, 1000);
    int all_ff = 1;
    for (unsigned char c : h) all_ff &= c == 0xff;
    CHECK(all_ff);
    CHECK(cudaMemset(d + 10, 0x12, 20) == cudaSuccess);
    h = download(d, 1000);
    CHECK(h[9] == 0xff && h[10] == 0x12 && h[29] == 0x12 && h[30] == 0xff);
    std::vector<unsigned char> src(1000);
    for (int i = 0; i < 1000; i++) src[i] = (unsigned char)(i * 7);
    CHECK(cudaMemcpy(d, src.data(), 1000, cudaMemcpyHostToDevice) == cudaSuccess);
    unsigned char *d2 = nullptr;
    REQUIRE(cudaMalloc(&d2, 1000) == cudaSuccess);
    CHECK(cudaMemcpyAsync(d2, d, 1000, cudaMemcpyDeviceToDevice, 0) == cudaSuccess);
    CHECK(download(d2, 1000) == src);
    /* copies that leave the allocation, or use a host pointer as device memory */
    CHECK(cudaMemcpy(d, src.data(), 1001, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    CHECK(has(cudaemu_last_error(), "not inside one cudaMalloc allocation"));
    CHECK(cudaMemcpy(src.data(), src.data() + 1, 10, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
    CHECK(cudaMemset(d + 990, 0, 11) == cudaErrorInvalidValue);
    CHECK(cudaFree(src.data()) == cudaErrorInvalidValue);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    CHECK(cudaGetLastError() == cudaSuccess);
    size_t fr = 0, tot = 0;
    CHECK(cudaMemGetInfo(&fr, &tot) == cudaSuccess);
    CHECK(tot == (size_t)16 << 30 && fr == tot - cudaemu_mem_in_use());
    CHECK(cudaFree(d) == cudaSuccess);
    CHECK(cudaFree(d2) == cudaSuccess);
    CHECK_EQ_INT(cudaemu_mem_in_use(), before);
    void *huge = nullptr;
    CHECK(cudaMalloc(&huge, (size_t)17 << 30) == cudaErrorMemoryAllocation);
    CHECK(cudaGetLastError() == cudaErrorMemoryAllocation);
}

TEST(device_properties_streams_events) {
    int n = 0, dev = -1;
    CHECK(cudaGetDeviceCount(&n) == cudaSuccess && n == 1);
    CHECK(cudaSetDevice(0) == cudaSuccess);
    CHECK(cudaGetDevice(&dev) == cudaSuccess && dev == 0);
    cudaemu_set_quiet(1);
    CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
    CHECK(cudaGetLastError() == cudaErrorInvalidDevice);
    cudaDeviceProp p;
    CHECK(cudaGetDeviceProperties(&p, 0) == cudaSuccess);
    CHECK(has(p.name, "emulator"));
    CHECK(p.major == 9 && p.minor == 0 && p.warpSize == 32 && p.maxThreadsPerBlock == 1024);
    CHECK(p.sharedMemPerBlockOptin == 227 * 1024 && p.totalGlobalMem == (size_t)16 << 30);
    CHECK(p.multiProcessorCount > 0);
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s) == cudaSuccess);
    cudaEvent_t a, b;
    CHECK(cudaEventCreate(&a) == cudaSuccess && cudaEventCreate(&b) == cudaSuccess);
    CHECK(cudaEventRecord(a, s) == cudaSuccess);
    int *out = dev_alloc<int>(64);
    KN_LAUNCH(early_return_kernel, 1, 64, 0, s, out); /* fails; the events still work */
    CHECK(cudaGetLastError() == cudaErrorLaunchFailure);
    CHECK(cudaEventRecord(b) == cudaSuccess);
    CHECK(cudaEventSynchronize(b) == cudaSuccess);
    float ms = -1;
    CHECK(cudaEventElapsedTime(&ms, a, b) == cudaSuccess && ms >= 0.0f);
    CHECK(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(cudaEventDestroy(a) == cudaSuccess && cudaEventDestroy(b) == cudaSuccess);
    CHECK(cudaStreamDestroy(s) == cudaSuccess);
    CHECK(strcmp(cudaGetErrorString(cudaErrorLaunchFailure), "unspecified launch failure") == 0);
    cudaFree(out);
}

__global__ void fill_kernel(int *x, int v, int n) {
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    __syncthreads();
    if (i < n) x[i] = v;
}

TEST(errors_sticky_until_read_and_next_launch_works) {
    cudaemu_set_quiet(1);
    int *out = dev_alloc<int>(1024);
    size_t mem = cudaemu_mem_in_use();
    for (int rep = 0; rep < 50; rep++) {
        cudaemu_set_order(kOrders[rep % 3], (uint64_t)rep);
        KN_LAUNCH(deadlock_kernel, 3, 32, 0, 0, out);
        CHECK(cudaPeekAtLastError() == cudaErrorLaunchFailure);
        CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
        CHECK(cudaMemset(out, 0, 4) == cudaErrorLaunchFailure);
        CHECK(cudaPeekAtLastError() == cudaErrorLaunchFailure);
        CHECK(cudaGetLastError() == cudaErrorLaunchFailure);
        CHECK(cudaGetLastError() == cudaSuccess);
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        KN_LAUNCH(fill_kernel, 4, 256, 0, 0, out, rep, 1000);
        REQUIRE(cudaGetLastError() == cudaSuccess);
        std::vector<int> r = download(out, 1000);
        int ok = r.size() == 1000;
        for (int i = 0; ok && i < 1000; i++) ok = r[i] == rep;
        CHECK(ok);
        if (th_failed()) return;
    }
    CHECK(has(cudaemu_last_error(), "deadlock"));
    cudaemu_clear_error();
    CHECK(strcmp(cudaemu_last_error(), "") == 0);
    CHECK_EQ_INT(cudaemu_mem_in_use(), mem);
    cudaFree(out);
}

TEST(invalid_configurations) {
    cudaemu_set_quiet(1);
    int *out = dev_alloc<int>(64);
    KN_LAUNCH(fill_kernel, 1, 1025, 0, 0, out, 1, 1);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    CHECK(has(cudaemu_last_error(), "kernel fill_kernel"));
    KN_LAUNCH(fill_kernel, 0, 32, 0, 0, out, 1, 1);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    KN_LAUNCH(fill_kernel, 1, dim3(32, 32, 2), 0, 0, out, 1, 1);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    KN_LAUNCH(fill_kernel, dim3(1, 70000), 32, 0, 0, out, 1, 1);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    KN_LAUNCH(fill_kernel, 1, dim3(32, 32), 0, 0, out, 1, 64);
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaFree(out);
}

template <int N, bool ADD>
__global__ void template_kernel(int *x) {
    x[threadIdx.x] = ADD ? x[threadIdx.x] + N : N;
    __syncthreads();
    x[threadIdx.x] += min(threadIdx.x, 2u) + max(0, -1);
}

TEST(template_kernel_and_intrinsics) {
    int *x = dev_alloc<int>(4);
    KN_LAUNCH((template_kernel<5, false>), 1, 4, 0, 0, x);
    KN_LAUNCH((template_kernel<10, true>), 1, 4, 0, 0, x);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    std::vector<int> r = download(x, 4);
    CHECK(r[0] == 15 && r[1] == 17 && r[2] == 19 && r[3] == 19);
    cudaFree(x);
    CHECK(__float_as_uint(1.0f) == 0x3f800000u && __uint_as_float(0x40000000u) == 2.0f);
    CHECK(__double_as_longlong(1.0) == 0x3ff0000000000000ll);
    CHECK(__popc(0xf0f0u) == 8 && __clz(1) == 31 && __clz(0) == 32 && __ffs(8) == 4 && __ffs(0) == 0);
    CHECK(__float2bfloat16_rn(1.00390625f).__x == 0x3f80); /* tie to even */
    CHECK(__float2bfloat16_rn(1.01171875f).__x == 0x3f82);
    CHECK(__bfloat162float(__float2bfloat16_rn(3.0f)) == 3.0f);
    CHECK(rsqrtf(4.0f) == 0.5f && __frsqrt_rn(16.0f) == 0.25f && __expf(0.0f) == 1.0f);
    CHECK(min(3, 5u) == 3u && max(2.0f, -1.0f) == 2.0f && min(-1LL, 4LL) == -1LL);
}

/* ---------------------------------------------------------------- cuBLASLt */
static uint16_t to_bf16(float f) { return __float2bfloat16_rn(f).__x; }
static float from_bf16(uint16_t h) { return __uint_as_float((unsigned)h << 16); }

struct LtCase {
    int ta, tb, m, n, k, bf16;
    float alpha, beta;
    bool in_place;
};

/* 1 when D matches the naive reference */
static int run_lt(const LtCase &c, cublasStatus_t *status) {
    int ar = c.ta ? c.k : c.m, ac = c.ta ? c.m : c.k;
    int br = c.tb ? c.n : c.k, bc = c.tb ? c.k : c.n;
    int lda = ar + 3, ldb = br + 1, ldc = c.m + 2, ldd = c.in_place ? ldc : c.m + 5;
    size_t es = c.bf16 ? 2 : 4;
    std::vector<float> A((size_t)lda * ac), B((size_t)ldb * bc), C((size_t)ldc * c.n);
    uint64_t s = 12345;
    auto rnd = [&s]() {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return (float)((s >> 40) % 2001) / 1000.0f - 1.0f;
    };
    for (float &v : A) v = c.bf16 ? from_bf16(to_bf16(rnd())) : rnd();
    for (float &v : B) v = c.bf16 ? from_bf16(to_bf16(rnd())) : rnd();
    for (float &v : C) v = rnd();
    std::vector<uint16_t> Ah(A.size()), Bh(B.size());
    for (size_t i = 0; i < A.size(); i++) Ah[i] = to_bf16(A[i]);
    for (size_t i = 0; i < B.size(); i++) Bh[i] = to_bf16(B[i]);
    void *dA, *dB;
    float *dC, *dD;
    cudaMalloc(&dA, A.size() * es);
    cudaMalloc(&dB, B.size() * es);
    cudaMalloc(&dC, C.size() * 4);
    cudaMemcpy(dA, c.bf16 ? (const void *)Ah.data() : A.data(), A.size() * es, cudaMemcpyHostToDevice);
    cudaMemcpy(dB, c.bf16 ? (const void *)Bh.data() : B.data(), B.size() * es, cudaMemcpyHostToDevice);
    cudaMemcpy(dC, C.data(), C.size() * 4, cudaMemcpyHostToDevice);
    if (c.in_place) dD = dC;
    else cudaMalloc(&dD, (size_t)ldd * c.n * 4);

    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc, ld;
    cublasLtMatmulPreference_t pref;
    cudaDataType_t t = c.bf16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasLtCreate(&lt);
    cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasOperation_t opa = c.ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = c.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb);
    cublasLtMatrixLayoutCreate(&la, t, ar, ac, lda);
    cublasLtMatrixLayoutCreate(&lb, t, br, bc, ldb);
    cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, c.m, c.n, ldc);
    cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, c.m, c.n, ldd);
    cublasLtMatmulPreferenceCreate(&pref);
    uint64_t ws = 1 << 20;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulHeuristicResult_t res;
    int got = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, ld, pref, 1, &res, &got);
    if (st == CUBLAS_STATUS_SUCCESS && got == 1)
        st = cublasLtMatmul(lt, desc, &c.alpha, dA, la, dB, lb, &c.beta, dC, lc, dD, ld, &res.algo, nullptr, 0, 0);
    *status = st;
    int ok = st == CUBLAS_STATUS_SUCCESS;
    if (ok) {
        std::vector<float> D = download(dD, (size_t)ldd * c.n);
        for (int j = 0; j < c.n; j++)
            for (int i = 0; i < c.m; i++) {
                double acc = 0;
                for (int p = 0; p < c.k; p++) {
                    double a = c.ta ? A[p + (size_t)i * lda] : A[i + (size_t)p * lda];
                    double b = c.tb ? B[j + (size_t)p * ldb] : B[p + (size_t)j * ldb];
                    acc += a * b;
                }
                double want = c.alpha * acc + (c.beta != 0 ? c.beta * C[i + (size_t)j * ldc] : 0.0);
                if (!(fabs(D[i + (size_t)j * ldd] - want) <= 1e-4 * (1 + fabs(want)))) ok = 0;
            }
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(lt);
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dC);
    if (!c.in_place) cudaFree(dD);
    return ok;
}

TEST(cublaslt_matmul_all_transposes) {
    for (int bf16 = 0; bf16 < 2; bf16++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int v = 0; v < 3; v++) {
                    LtCase c{ta, tb, 37, 23, 19, bf16, v == 1 ? 0.5f : 1.0f, v == 0 ? 0.0f : 0.75f, v == 2};
                    cublasStatus_t st;
                    CHECK_MSG(run_lt(c, &st), "bf16=%d transa=%d transb=%d variant %d: status %s", bf16, ta, tb,
                              v, cublasGetStatusName(st));
                }
}

TEST(cublaslt_layout_mismatch_reported) {
    cudaemu_set_quiet(1);
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc, lbad;
    cublasLtMatmulPreference_t pref;
    cublasLtCreate(&lt);
    cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasOperation_t opt = CUBLAS_OP_T;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opt, sizeof opt);
    /* m=8 n=4 k=6, transa=T: A must be 6x8, B 6x4, C/D 8x4 */
    cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, 6, 8, 6);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, 4, 6, 4); /* wrong: transposed */
    cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, 8, 4, 8);
    cublasLtMatrixLayoutCreate(&lbad, CUDA_R_32F, 8, 4, 7); /* ld < rows */
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulHeuristicResult_t res;
    int got = -1;
    CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, pref, 1, &res, &got) ==
          CUBLAS_STATUS_INVALID_VALUE);
    CHECK(got == 0);
    CHECK(has(cudaemu_last_error(), "B is 4x6"));
    void *A, *B;
    float *C;
    cudaMalloc(&A, 6 * 8 * 2);
    cudaMalloc(&B, 6 * 4 * 2);
    cudaMalloc(&C, 8 * 4 * 4);
    float one = 1, zero = 0;
    CHECK(cublasLtMatmul(lt, desc, &one, A, la, B, lb, &zero, C, lc, C, lc, nullptr, nullptr, 0, 0) ==
          CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasLtMatmul(lt, desc, &one, A, la, B, la, &zero, C, lc, C, lbad, nullptr, nullptr, 0, 0) ==
          CUBLAS_STATUS_INVALID_VALUE);
    CHECK(has(cudaemu_last_error(), "ld 7 < rows"));
    /* wrong attribute size, as real cuBLASLt checks */
    int64_t op64 = CUBLAS_OP_N;
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op64, sizeof op64) ==
          CUBLAS_STATUS_INVALID_VALUE);
    uint32_t ws32 = 0;
    CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws32, sizeof ws32) ==
          CUBLAS_STATUS_INVALID_VALUE);
    /* a host pointer where device memory belongs */
    cublasLtMatrixLayout_t lb_ok;
    cublasLtMatrixLayoutCreate(&lb_ok, CUDA_R_16BF, 6, 4, 6);
    std::vector<uint16_t> host(24);
    CHECK(cublasLtMatmul(lt, desc, &one, A, la, host.data(), lb_ok, &zero, C, lc, C, lc, nullptr, nullptr, 0, 0) ==
          CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasLtMatmul(lt, desc, &one, A, la, B, lb_ok, &zero, C, lc, C, lc, nullptr, nullptr, 0, 0) ==
          CUBLAS_STATUS_SUCCESS);
    CHECK(strcmp(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE") == 0);
    cublasHandle_t h;
    CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS && cublasDestroy(h) == CUBLAS_STATUS_SUCCESS);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lb_ok);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatrixLayoutDestroy(lbad);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(lt);
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
}

/* ---------------------------------------------------------------- order API and speed */
TEST(order_api) {
    uint64_t seed = 0;
    cudaemu_set_order(CUDAEMU_ORDER_SHUFFLE, 42);
    CHECK(cudaemu_get_order(&seed) == CUDAEMU_ORDER_SHUFFLE && seed == 42);
    cudaemu_set_order(CUDAEMU_ORDER_REVERSE, 0);
    CHECK(cudaemu_get_order(nullptr) == CUDAEMU_ORDER_REVERSE);
}

/* C = A B for n x n row-major matrices, 64x64 tiles, 256 threads each
 * computing 4x4 outputs; two barriers per k-tile. */
#define TILE 64
__global__ void tile_matmul_kernel(const float *A, const float *B, float *C, int n) {
    __shared__ float As[TILE][TILE + 1];
    __shared__ float Bs[TILE][TILE + 1];
    int tx = (int)threadIdx.x, ty = (int)threadIdx.y, tid = ty * 16 + tx;
    int row0 = (int)blockIdx.y * TILE, col0 = (int)blockIdx.x * TILE;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < n; k0 += TILE) {
        for (int e = tid; e < TILE * TILE; e += 256) {
            int r = e / TILE, c = e % TILE;
            As[r][c] = A[(size_t)(row0 + r) * n + k0 + c];
            Bs[r][c] = B[(size_t)(k0 + r) * n + col0 + c];
        }
        __syncthreads();
        for (int kk = 0; kk < TILE; kk++)
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) acc[i][j] += As[ty * 4 + i][kk] * Bs[kk][tx * 4 + j];
        __syncthreads();
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) C[(size_t)(row0 + ty * 4 + i) * n + col0 + tx * 4 + j] = acc[i][j];
}

__global__ void saxpy_kernel(float *y, const float *x, float a, int n) {
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) y[i] = __fadd_rn(__fmul_rn(a, x[i]), y[i]);
}

__global__ void barrier_loop_kernel(int *cnt, int iters) {
    for (int i = 0; i < iters; i++) {
        __syncthreads();
        cnt[threadIdx.x]++;
    }
}

TEST(speed_note_and_tiled_matmul) {
    const int n = 256;
    std::vector<float> A((size_t)n * n), B((size_t)n * n);
    for (int i = 0; i < n * n; i++) {
        A[i] = (float)((i * 7) % 13) - 6.0f;
        B[i] = (float)((i * 5) % 11) - 5.0f;
    }
    float *dA = dev_alloc<float>(n * n), *dB = dev_alloc<float>(n * n), *dC = dev_alloc<float>(n * n);
    upload(dA, A);
    upload(dB, B);
    std::vector<float> want((size_t)n * n, 0.0f);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++)
            for (int j = 0; j < n; j++) want[(size_t)i * n + j] += A[(size_t)i * n + k] * B[(size_t)k * n + j];
    for (int o = 0; o < 3; o++) {
        cudaemu_set_order(kOrders[o], 99);
        cudaemu_stats s0, s1;
        cudaemu_get_stats(&s0);
        auto t0 = std::chrono::steady_clock::now();
        KN_LAUNCH(tile_matmul_kernel, dim3(n / TILE, n / TILE), dim3(16, 16), 0, 0, dA, dB, dC, n);
        double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        REQUIRE(cudaGetLastError() == cudaSuccess);
        cudaemu_get_stats(&s1);
        std::vector<float> r = download(dC, (size_t)n * n);
        CHECK(r == want); /* small integers: exact in any order */
        double th = (double)(s1.threads - s0.threads);
        printf("# cudaemu speed: 64x64-tile matmul (%s order), %.0f threads, %llu switches: %.0f threads/s\n",
               kOrderNames[o], th, (unsigned long long)(s1.switches - s0.switches), th / sec);
    }
    /* the cost of a barrier: 256 threads x 200 __syncthreads */
    int *cnt = dev_alloc<int>(256);
    cudaMemset(cnt, 0, 256 * sizeof(int));
    cudaemu_stats s0, s1;
    cudaemu_get_stats(&s0);
    auto tb = std::chrono::steady_clock::now();
    KN_LAUNCH(barrier_loop_kernel, 4, 256, 0, 0, cnt, 200);
    double bsec = std::chrono::duration<double>(std::chrono::steady_clock::now() - tb).count();
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaemu_get_stats(&s1);
    CHECK(download(cnt, 256)[17] == 200 * 4);
    printf("# cudaemu speed: barrier loop, %llu switches: %.0f ns per switch (scheduling included)\n",
           (unsigned long long)(s1.switches - s0.switches), bsec * 1e9 / (double)(s1.switches - s0.switches));
    cudaFree(cnt);
    const int m = 1 << 20;
    float *x = dev_alloc<float>(m), *y = dev_alloc<float>(m);
    cudaMemset(x, 0, m * 4);
    cudaMemset(y, 0, m * 4);
    auto t0 = std::chrono::steady_clock::now();
    KN_LAUNCH(saxpy_kernel, m / 256, 256, 0, 0, y, x, 2.0f, m);
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(cudaGetLastError() == cudaSuccess);
    printf("# cudaemu speed: barrier-free saxpy, %d threads: %.0f threads/s\n", m, m / sec);
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dC);
    cudaFree(x);
    cudaFree(y);
}

__global__ void big_block_kernel(int *out) {
    __shared__ int s[1024];
    s[threadIdx.x] = (int)threadIdx.x;
    __syncthreads();
    int v = s[1023 - threadIdx.x];
    __syncthreads();
    s[threadIdx.x] = v * 2;
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x] + __syncthreads_or(threadIdx.x == 1000) + __syncthreads_and(threadIdx.x < 1024);
}

TEST(block_of_1024_threads) {
    int *out = dev_alloc<int>(1024);
    for (int o = 0; o < 3; o++) {
        cudaemu_set_order(kOrders[o], 2);
        KN_LAUNCH(big_block_kernel, 2, 1024, 0, 0, out);
        REQUIRE(cudaGetLastError() == cudaSuccess);
        std::vector<int> r = download(out, 1024);
        for (int t = 0; t < 1024; t++) CHECK_EQ_INT(r[t], (1023 - t) * 2 + 2);
        if (th_failed()) return;
    }
    cudaFree(out);
}

/* ---------------------------------------------------------------- host threads, env, nesting */
TEST(launches_from_several_host_threads) {
    int ok[4] = {0, 0, 0, 0};
    std::vector<std::thread> th;
    for (int i = 0; i < 4; i++)
        th.emplace_back([i, &ok]() {
            int good = 1;
            for (int rep = 0; rep < 10; rep++) good &= run_reduce(kOrders[(i + rep) % 3], 1);
            ok[i] = good && cudaGetLastError() == cudaSuccess;
        });
    for (std::thread &t : th) t.join();
    for (int i = 0; i < 4; i++) CHECK_MSG(ok[i], "host thread %d", i);
}

TEST(order_from_environment) {
    if (getenv("TH_NOFORK")) SKIP("needs a process where cudaemu_set_order was not called");
    const char *e = getenv("CUDAEMU_ORDER");
    int want = CUDAEMU_ORDER_FORWARD;
    uint64_t want_seed = 1, seed = 0;
    if (e && !strcmp(e, "reverse")) want = CUDAEMU_ORDER_REVERSE;
    if (e && !strncmp(e, "shuffle", 7)) {
        want = CUDAEMU_ORDER_SHUFFLE;
        if (e[7] == ':') want_seed = strtoull(e + 8, nullptr, 0);
    }
    CHECK_EQ_INT(cudaemu_get_order(&seed), want);
    if (want == CUDAEMU_ORDER_SHUFFLE) CHECK_EQ_INT(seed, want_seed);
    printf("# cudaemu order from CUDAEMU_ORDER=%s: %d\n", e ? e : "(unset)", want);
}

__global__ void nested_launch_kernel(int *x) {
    if (threadIdx.x == 0) {
        KN_LAUNCH(fill_kernel, 1, 32, 0, 0, x, 5, 32);
        x[0] = cudaGetLastError() == cudaErrorNotSupported;
    }
}

TEST(nested_launch_refused) {
    cudaemu_set_quiet(1);
    int *x = dev_alloc<int>(32);
    KN_LAUNCH(nested_launch_kernel, 1, 32, 0, 0, x);
    CHECK(cudaGetLastError() == cudaSuccess);
    CHECK_EQ_INT(download(x, 1)[0], 1);
    cudaFree(x);
}

/* ---------------------------------------------------------------- device memory is not host memory */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs fn in a forked child with stderr into a pipe; returns its wait status
 * and what it printed. */
template <class F>
static int in_child(F fn, std::string *err) {
    int pfd[2];
    if (pipe(pfd)) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], 2);
        fn();
        _exit(0);
    }
    close(pfd[1]);
    char buf[4096];
    ssize_t r;
    err->clear();
    while ((r = read(pfd[0], buf, sizeof buf)) > 0) err->append(buf, (size_t)r);
    close(pfd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return st;
}

/* The child died of the access: SIGSEGV/SIGABRT, or (AddressSanitizer, whose
 * handler reports the fault after ours) a non-zero exit. */
static bool died_of_fault(int st) {
#if defined(__SANITIZE_ADDRESS__)
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0) return true;
#endif
    return WIFSIGNALED(st) && (WTERMSIG(st) == SIGSEGV || WTERMSIG(st) == SIGABRT);
}

/* A forked child reads p from host code: it must die with the message. */
static void expect_host_access_fault(const char *file, int line, const void *p, size_t bytes, int malloc_line) {
    std::string err;
    int st = in_child([p] { printf("%d\n", *(volatile const unsigned char *)p); }, &err);
    if (getenv("CUDAEMU_TEST_SHOW")) printf("# child status %#x: %s", st, err.c_str());
    if (!died_of_fault(st)) th_fail(file, line, "host read of device memory did not fault (status %#x)", st);
    std::string want = "allocation of " + std::to_string(bytes) + " bytes from cudaMalloc at ";
    for (const std::string &f : {std::string("cudaemu: host code touched device memory at "), want,
                                  at_line(malloc_line), std::string("copy it with cudaMemcpy first")})
        if (!has(err.c_str(), f.c_str())) th_fail(file, line, "stderr lacks \"%s\": %s", f.c_str(), err.c_str());
}
#define EXPECT_HOST_ACCESS_FAULT(p, bytes, malloc_line) \
    expect_host_access_fault(__FILE__, __LINE__, p, bytes, malloc_line)

__global__ void add_one_kernel(float *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += 1.0f;
}

TEST(host_access_to_device_memory_faults) {
    if (!cudaemu_protecting()) SKIP("CUDAEMU_PROTECT=0");
    float *d = nullptr;
    int at = __LINE__ + 1;
    REQUIRE(cudaMalloc(&d, 1000) == cudaSuccess);
    EXPECT_HOST_ACCESS_FAULT(d, 1000, at);
    EXPECT_HOST_ACCESS_FAULT((char *)d + 999, 1000, at); /* the last byte */
    /* a fault elsewhere is not ours: the default action, no message */
    std::string err;
    void *foreign = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(foreign != MAP_FAILED);
    int st = in_child([foreign] { *(volatile int *)foreign = 1; }, &err);
    munmap(foreign, 4096);
    CHECK(died_of_fault(st));
    CHECK(!has(err.c_str(), "device memory"));
    /* host memory from cudaMallocHost is host memory */
    float *h = nullptr;
    REQUIRE(cudaMallocHost(&h, 64) == cudaSuccess);
    h[3] = 2.0f;
    CHECK(h[3] == 2.0f);
    cudaFreeHost(h);
    cudaFree(d);
}

TEST(protected_memory_works_for_the_runtime) {
    if (!cudaemu_protecting()) SKIP("CUDAEMU_PROTECT=0");
    cudaemu_set_quiet(1);
    const int n = 300;
    float *x = nullptr, *y = nullptr;
    int at = __LINE__ + 1;
    REQUIRE(cudaMalloc(&x, n * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMalloc(&y, n * sizeof(float)) == cudaSuccess);
    cudaemu_stats s0, s1;
    cudaemu_get_stats(&s0);
    CHECK(cudaMemset(x, 0, n * sizeof(float)) == cudaSuccess);
    KN_LAUNCH(add_one_kernel, 2, 256, 0, 0, x, n);
    CHECK(cudaGetLastError() == cudaSuccess);
    CHECK(cudaMemcpy(y, x, n * sizeof(float), cudaMemcpyDeviceToDevice) == cudaSuccess);
    std::vector<float> r = download(y, n);
    REQUIRE(r.size() == (size_t)n);
    for (int i = 0; i < n; i++) CHECK(r[i] == 1.0f);
    cudaemu_get_stats(&s1);
    CHECK(s1.mprotects > s0.mprotects);
    EXPECT_HOST_ACCESS_FAULT(x, n * sizeof(float), at);
    /* closed again after a failed launch, a failed copy and cuBLASLt */
    int *o = dev_alloc<int>(64);
    KN_LAUNCH(early_return_kernel, 1, 64, 0, 0, o);
    CHECK(cudaGetLastError() == cudaErrorLaunchFailure);
    EXPECT_HOST_ACCESS_FAULT(x, n * sizeof(float), at);
    CHECK(cudaMemcpy(x, r.data(), n * sizeof(float) + 4, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    cudaGetLastError();
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t l;
    cublasLtCreate(&lt);
    cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, 10, 10, 10); /* y[0:100] = x[0:100] * x[100:200] */
    float one = 1, zero = 0;
    CHECK(cublasLtMatmul(lt, desc, &one, x, l, x + 100, l, &zero, y, l, y, l, nullptr, nullptr, 0, 0) ==
          CUBLAS_STATUS_SUCCESS);
    r = download(y, 100);
    CHECK(r.size() == 100 && r[0] == 10.0f && r[99] == 10.0f);
    EXPECT_HOST_ACCESS_FAULT(y, n * sizeof(float), at + 1);
    cublasLtMatrixLayoutDestroy(l);
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(lt);
    cudaFree(o);
    cudaFree(x);
    cudaFree(y);
}

/* CUDAEMU_PROTECT=0 is read at the first cudaMalloc: the test runs itself in
 * a fresh process with it set. */
TEST(protect_0_allows_host_access) {
    if (getenv("CUDAEMU_TEST_PROTECT_CHILD")) {
        CHECK(!cudaemu_protecting());
        float *d = dev_alloc<float>(8);
        REQUIRE(d != nullptr);
        d[2] = 5.0f; /* a bug on a GPU, allowed here */
        std::vector<float> r = download(d, 8);
        CHECK(r.size() == 8 && r[2] == 5.0f && std::isnan(r[0]));
        cudaFree(d);
        return;
    }
    std::string err;
    int st = in_child(
        [] {
            setenv("CUDAEMU_PROTECT", "0", 1);
            setenv("CUDAEMU_TEST_PROTECT_CHILD", "1", 1);
            dup2(2, 1);
            execl("/proc/self/exe", "test_cudaemu", "protect_0_allows_host_access", (char *)nullptr);
            _exit(127);
        },
        &err);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, err.c_str());
    CHECK_MSG(has(err.c_str(), "ok   test_cudaemu/protect_0_allows_host_access"), "%s", err.c_str());
}
