/* cudaemu.h - a CUDA device emulator for the project's tests (C++17).
 *
 * The kernels' .cu sources in kernels/ are compiled twice: with nvcc for real
 * GPUs, and with
 *
 *     g++ -x c++ -std=c++17 -DCUDAEMU -include tests/cudaemu/cudaemu.h ...
 *
 * against this header, so that `make test` runs the kernels' own source on
 * the CPU (CUDA's old "deviceemu").  The runtime is tests/cudaemu/cudaemu.cc.
 *
 * EXECUTION MODEL.  A launch (KN_LAUNCH only; see kernels/cuda_compat.h) runs
 * synchronously on the calling host thread, one block at a time; launches
 * from several host threads are serialised.  Each thread of the block is a
 * fiber with its own stack (64 KiB, env CUDAEMU_STACK=bytes[k|m]).  Threads
 * switch only at __syncthreads, __syncwarp and the warp collectives
 * (__shfl*_sync, __ballot_sync, __any/__all_sync, __reduce_*_sync,
 * __match_*_sync): a thread runs until it blocks there or returns.  Warps are
 * consecutive linear thread ids (x fastest).  At every barrier the waiting
 * threads resume in one of three orders, and blocks run in that order too:
 *
 *     CUDAEMU_ORDER=forward | reverse | shuffle[:SEED]   (default forward)
 *     cudaemu_set_order(CUDAEMU_ORDER_SHUFFLE, seed)     (overrides the env)
 *
 * A missing __syncthreads usually hides under one order and shows under
 * another, so tests run kernels under all three.  A fiber switch costs about
 * 20 ns (hand-written x86-64 switch); under AddressSanitizer and on other
 * machines it is ucontext (~1.5 us, annotated for ASan).  A kernel whose
 * locals overflow the fiber stack faults on a guard page (raise
 * CUDAEMU_STACK).  CUDAEMU_QUIET=1 (or cudaemu_set_quiet) stops the stderr
 * messages.  The device: one, "Tessera device emulator (CPU)", compute
 * capability 9.0, 8 SMs, 16 GiB, 48 KiB shared memory per block (227 KiB
 * opt-in), streams and events synchronous (events time the wall clock).
 *
 * CAUGHT (the launch fails: a message "cudaemu: kernel NAME (FILE:LINE of the
 * launch): WHAT at FILE:LINE" on stderr, the rest of the grid is abandoned,
 * cudaGetLastError() returns cudaErrorLaunchFailure - as do
 * cudaDeviceSynchronize, cudaStreamSynchronize, cudaEventSynchronize,
 * cudaMemcpy* and cudaMemset* - until cudaGetLastError reads it, and
 * cudaemu_last_error() returns the text; thread ids are linear, x fastest):
 *   - deadlock: no thread can run and they do not all wait at one barrier;
 *   - divergent __syncthreads: threads waiting at different call sites;
 *   - a thread that returned while others wait at a __syncthreads;
 *   - a warp collective whose mask names lanes that never arrive (exited,
 *     waiting elsewhere, or outside the block: a full mask in a partial last
 *     warp is reported), lanes of one collective (one call site) with
 *     different masks, a mask without the calling lane, a shuffle reading a
 *     lane that is not in the mask, a shuffle width that is not 1,2,4,..,32;
 *   - invalid launch configurations (cudaErrorInvalidConfiguration) and
 *     dynamic shared memory above the kernel's cudaFuncSetAttribute limit
 *     (48 KiB unless raised; at most 227 KiB; cudaErrorInvalidValue);
 *   - reads of memory a kernel never wrote: cudaMalloc memory, the dynamic
 *     shared memory (every block) and the static __shared__ variables of
 *     non-template, non-inline functions (every launch) start as 0xff bytes
 *     (NaN for floats, -1 for ints);
 *   - host code that dereferences device memory (see DEVICE MEMORY below);
 *   - cudaMemcpy/cudaMemset/cuBLASLt ranges outside cudaMalloc allocations,
 *     cuBLASLt layouts inconsistent with the transposes (the message says
 *     which matrix), and, under SANITIZE=1, out-of-bounds device and shared
 *     memory accesses (AddressSanitizer).
 *
 * DEVICE MEMORY is not host memory.  cudaMalloc maps pages of its own
 * (page-aligned, filled with 0xff) and keeps them PROT_NONE whenever host code
 * runs; the runtime opens them only while it touches them itself: all of them
 * for the duration of a launch, the allocations involved inside cudaMemcpy*,
 * cudaMemset* and the cuBLAS/cuBLASLt stand-ins (those hold the launch lock,
 * so a copy on one thread never re-protects memory a kernel on another is
 * using).  A host read or write of device memory (memcpy'ing or hashing
 * parameters that live on the GPU, say) therefore faults as on a GPU, and a
 * SIGSEGV handler (installed at the first cudaMalloc, chained to the previous
 * one) prints one line and kills the process with SIGSEGV:
 *
 *   cudaemu: host code touched device memory at 0x... (allocation of N bytes
 *   from cudaMalloc at FILE:LINE, offset K) - copy it with cudaMemcpy first
 *
 * (FILE:LINE of the cudaMalloc call when it was compiled against this header,
 * which makes cudaMalloc a macro; the extern "C" function records none).
 * Under gdb the program stops at the faulting access.  Under SANITIZE=1 the
 * line is followed by AddressSanitizer's "SEGV on unknown address" report
 * with the stack of the access, and the exit status is ASan's (1), not a
 * signal; there each allocation also has at least a page of poisoned slack,
 * so device-memory overruns are still reported.  Faults elsewhere go to the
 * previous handler (or the default action) untouched.  cudaMallocHost memory
 * is ordinary host memory.  Cost: two mprotect calls per launch (one per run
 * of adjacent allocations, proportional to the pages mapped; about 65 us for
 * one small allocation and ~0.5 ms per 1000 small or ~2.5 ms per 32 MiB on a
 * VM where mprotect is slow, a few us on bare metal), and two per copy.
 *
 *     CUDAEMU_PROTECT=0   leave device memory readable by host code (read at
 *                         the first cudaMalloc; cudaemu_protecting() says)
 *
 * NOT CAUGHT (the emulator cannot see these; test them on a GPU):
 *   - a host access to device memory while another host thread's launch has
 *     it open;
 *   - speed: occupancy, coalescing, bank conflicts, register spills;
 *   - true data races between threads of a warp or a block outside the
 *     orders above: fibers never interleave inside a statement, so two
 *     threads' unsynchronised read-modify-writes never collide, and atomics
 *     are plain read-modify-writes;
 *   - memory fences and visibility (__threadfence is a no-op), spin-waits
 *     across blocks or threads (a spin-wait on another thread never ends:
 *     the waiter never yields), cooperative/grid-wide synchronisation;
 *   - floating point: host float arithmetic with -ffp-contract=off, so
 *     nvcc's default a*b+c -> fma contraction is NOT reproduced (use
 *     __fmaf_rn / __fmul_rn / __fadd_rn where bits matter); __expf etc. are
 *     the accurate libm functions;
 *   - cuBLAS numerics: the GEMM is OpenBLAS sgemm on inputs rounded exactly
 *     as given (bf16 bits widened exactly), accumulation order differs from
 *     the GPU's and TF32 is never used;
 *   - uninitialised static __shared__ arrays in template or inline
 *     functions (their storage is zeroed once, not refilled), and values
 *     a block leaves in static __shared__ memory for the next block of the
 *     same launch;
 *   - inline PTX (asm), __half, textures, dynamic parallelism (a launch from
 *     a kernel fails with cudaErrorNotSupported), cooperative groups.
 *     __activemask() returns the warp's lanes that have not exited, not the
 *     converged set.  __CUDA_ARCH__ and __CUDACC__ are not defined; CUDAEMU
 *     is.
 *
 * NAMES this header takes (kernel code must not use them otherwise):
 * threadIdx blockIdx blockDim gridDim (macros), warpSize (a constant), __shared__
 * __global__ __device__ __host__ __forceinline__ __noinline__ __constant__
 * __launch_bounds__ __align__ __grid_constant__ (macros), every __syncthreads*
 * / __syncwarp / __shfl*_sync / __ballot_sync / __any_sync / __all_sync /
 * __reduce_*_sync / __match_*_sync (macros capturing __FILE__/__LINE__),
 * the namespace cudaemu, the CUDA vector types (dim3 uint3 float2 float4 ...),
 * and global min/max templates for arithmetic types (as CUDA provides).
 * KN_DYN_SMEM must be used inside a function body.  Kernels passed to
 * KN_LAUNCH must not be overloaded; a template kernel needs parentheses:
 * KN_LAUNCH((k<64, true>), ...).
 */
#ifndef TESSERA_CUDAEMU_H
#define TESSERA_CUDAEMU_H

#ifndef __cplusplus
#error "cudaemu.h is C++ (compile the .cu sources with g++ -x c++)"
#endif

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmath>
#include <type_traits>
#include <utility>

/* ------------------------------------------------------------------ qualifiers */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __constant__
#define __grid_constant__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#ifdef CUDAEMU_NO_SHARED_FILL
#define __shared__ static
#else
/* One static copy (blocks run one at a time), placed in a section the
 * runtime fills with 0xff at every launch (GCC ignores the section for
 * template/inline functions' statics, which stay plain statics). */
#define __shared__ static __attribute__((section("cudaemu_shared")))
#endif

/* ------------------------------------------------------------------ vector types */
struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define CUDAEMU_VEC2(T, N, A)                                                        \
    struct __attribute__((aligned(A))) N##2 { T x, y; };                             \
    static inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }
#define CUDAEMU_VEC3(T, N)                                                           \
    struct N##3 { T x, y, z; };                                                      \
    static inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }
#define CUDAEMU_VEC4(T, N, A)                                                        \
    struct __attribute__((aligned(A))) N##4 { T x, y, z, w; };                       \
    static inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
CUDAEMU_VEC2(float, float, 8)
CUDAEMU_VEC3(float, float)
CUDAEMU_VEC4(float, float, 16)
CUDAEMU_VEC2(int, int, 8)
CUDAEMU_VEC3(int, int)
CUDAEMU_VEC4(int, int, 16)
CUDAEMU_VEC2(unsigned int, uint, 8)
CUDAEMU_VEC4(unsigned int, uint, 16)
CUDAEMU_VEC2(double, double, 16)
CUDAEMU_VEC2(short, short, 4)
CUDAEMU_VEC4(short, short, 8)
CUDAEMU_VEC2(unsigned short, ushort, 4)
CUDAEMU_VEC4(unsigned short, ushort, 8)
CUDAEMU_VEC4(signed char, char, 4)
CUDAEMU_VEC4(unsigned char, uchar, 4)
CUDAEMU_VEC2(long long, longlong, 16)
CUDAEMU_VEC2(unsigned long long, ulonglong, 16)
#undef CUDAEMU_VEC2
#undef CUDAEMU_VEC3
#undef CUDAEMU_VEC4
static inline uint3 make_uint3(unsigned int x, unsigned int y, unsigned int z) {
    return uint3{x, y, z};
}

/* ------------------------------------------------------------------ runtime API types */
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidSymbol = 13,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorLaunchFailure = 719,
    cudaErrorNotSupported = 801,
    cudaErrorUnknown = 999
};
typedef cudaError_t cudaError;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9
};

enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxBlockDimX = 2,
    cudaDevAttrMaxGridDimX = 5,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97
};

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
    size_t sharedMemPerMultiprocessor;
    size_t totalConstMem;
    int regsPerBlock;
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    int maxThreadsPerMultiProcessor;
    int major;
    int minor;
    int multiProcessorCount;
    int clockRate;
    int memoryClockRate;
    int memoryBusWidth;
    int l2CacheSize;
    int integrated;
    int concurrentKernels;
    int pciBusID;
    int pciDeviceID;
    int pciDomainID;
};

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02

extern "C" {
const char *cudaGetErrorString(cudaError_t err);
const char *cudaGetErrorName(cudaError_t err);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int dev);
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int dev);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaDeviceReset(void);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value);
}

/* The C++ conveniences of cuda_runtime.h. */
template <class T>
inline cudaError_t cudaMalloc(T **p, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void **>(p), bytes);
}
template <class T>
inline cudaError_t cudaMallocHost(T **p, size_t bytes) {
    return cudaMallocHost(reinterpret_cast<void **>(p), bytes);
}
template <class T>
inline cudaError_t cudaFuncSetAttribute(T *func, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute(reinterpret_cast<const void *>(func), attr, value);
}
template <class T>
inline cudaError_t cudaMemcpyToSymbol(T &symbol, const void *src, size_t bytes, size_t offset = 0,
                                      cudaMemcpyKind = cudaMemcpyHostToDevice) {
    if (offset + bytes > sizeof(T)) return cudaErrorInvalidValue;
    memcpy(reinterpret_cast<char *>(&symbol) + offset, src, bytes);
    return cudaSuccess;
}
template <class T>
inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, T *, int block_size,
                                                                 size_t dyn_smem) {
    if (!blocks || block_size <= 0 || block_size > 1024) return cudaErrorInvalidValue;
    int b = 2048 / block_size;
    if (dyn_smem) {
        int s = (int)((size_t)228 * 1024 / dyn_smem);
        if (s < b) b = s;
    }
    *blocks = b > 32 ? 32 : b;
    return cudaSuccess;
}

/* ------------------------------------------------------------------ emulator control (C API) */
enum { CUDAEMU_ORDER_FORWARD = 0, CUDAEMU_ORDER_REVERSE = 1, CUDAEMU_ORDER_SHUFFLE = 2 };
struct cudaemu_stats {
    uint64_t launches, blocks, threads, switches;
    uint64_t mprotects; /* protection changes of device memory (mprotect calls) */
};
extern "C" {
/* Resume order at barriers (and block order); seed is used by SHUFFLE. */
void cudaemu_set_order(int order, uint64_t seed);
int cudaemu_get_order(uint64_t *seed);
/* The message of this host thread's last failure ("" if none), as printed
 * ("cudaemu: kernel NAME (FILE:LINE): ..."); kept until the next failure or
 * cudaemu_clear_error(). */
const char *cudaemu_last_error(void);
void cudaemu_clear_error(void);
/* 1: do not print failures to stderr (tests that provoke them) */
void cudaemu_set_quiet(int quiet);
/* bytes currently allocated with cudaMalloc */
size_t cudaemu_mem_in_use(void);
/* 1 when device memory is protected from host code (CUDAEMU_PROTECT) */
int cudaemu_protecting(void);
/* cudaMalloc recording the call site for the fault message (the macro
 * cudaMalloc below calls it) */
cudaError_t cudaemu_malloc_at(void **p, size_t bytes, const char *file, int line);
void cudaemu_get_stats(cudaemu_stats *out);
}

/* cudaMalloc(&p, n) in code compiled against this header records its
 * FILE:LINE, which the message of a host access to the memory names. */
namespace cudaemu {
template <class T>
inline cudaError_t malloc_at(T **p, size_t bytes, const char *file, int line) {
    return cudaemu_malloc_at(reinterpret_cast<void **>(p), bytes, file, line);
}
} // namespace cudaemu
#define cudaMalloc(p, bytes) cudaemu::malloc_at((p), (bytes), __FILE__, __LINE__)

/* ------------------------------------------------------------------ device side */
namespace cudaemu {

struct thread_ctx {
    uint3 tid;
};
struct block_ctx {
    uint3 bid;
    dim3 bdim, gdim;
    void *dyn_smem;
};
extern thread_ctx *cur; /* the running thread */
extern block_ctx blk;   /* the running block */

enum op_t {
    OP_SYNCTHREADS,
    OP_SYNCTHREADS_COUNT,
    OP_SYNCTHREADS_AND,
    OP_SYNCTHREADS_OR,
    OP_SYNCWARP,
    OP_SHFL_IDX,
    OP_SHFL_UP,
    OP_SHFL_DOWN,
    OP_SHFL_XOR,
    OP_BALLOT,
    OP_ANY,
    OP_ALL,
    OP_REDUCE_ADD,
    OP_REDUCE_MIN_U,
    OP_REDUCE_MAX_U,
    OP_REDUCE_MIN_S,
    OP_REDUCE_MAX_S,
    OP_REDUCE_AND,
    OP_REDUCE_OR,
    OP_REDUCE_XOR,
    OP_MATCH_ANY,
    OP_MATCH_ALL,
    OP_COUNT_
};

/* Block-wide barrier: returns the op's result (count/and/or of pred). */
int bar(int op, int pred, const char *file, int line);
/* Warp collective: every lane of mask deposits v; returns its result. */
uint64_t warp(int op, unsigned mask, uint64_t v, int arg, int width, const char *file, int line);
unsigned activemask();

template <class T>
inline uint64_t to_bits(T v) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8,
                  "warp collectives take values of at most 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    return b;
}
template <class T>
inline T from_bits(uint64_t b) {
    T r;
    memcpy(&r, &b, sizeof r);
    return r;
}
template <class T>
inline T shfl(int op, const char *file, int line, unsigned mask, T v, int arg, int width = 32) {
    return from_bits<T>(warp(op, mask, to_bits(v), arg, width, file, line));
}
/* __syncwarp() and __syncwarp(mask): a call site bound to its arguments */
struct syncwarp_at {
    const char *file;
    int line;
    void operator()(unsigned mask = 0xffffffffu) const { warp(OP_SYNCWARP, mask, 0, 0, 32, file, line); }
};
inline unsigned reduce(int op_u, int, const char *file, int line, unsigned mask, unsigned v) {
    return (unsigned)warp(op_u, mask, v, 0, 32, file, line);
}
inline int reduce(int, int op_s, const char *file, int line, unsigned mask, int v) {
    return (int)(unsigned)warp(op_s, mask, (uint64_t)(int64_t)v, 0, 32, file, line);
}
template <class T>
inline unsigned match_any(const char *file, int line, unsigned mask, T v) {
    return (unsigned)warp(OP_MATCH_ANY, mask, to_bits(v), 0, 32, file, line);
}
template <class T>
inline unsigned match_all(const char *file, int line, unsigned mask, T v, int *pred) {
    unsigned r = (unsigned)warp(OP_MATCH_ALL, mask, to_bits(v), 0, 32, file, line);
    if (pred) *pred = r != 0;
    return r;
}

/* ---- launches */
struct launch_desc {
    void (*fn)(void *ctx); /* runs the kernel once in the current thread */
    void *ctx;
    const void *func; /* the kernel, for its cudaFuncSetAttribute limits */
    const char *name, *file;
    int line;
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
};
/* Runs the whole grid; failures set the last error (cudaGetLastError). */
void run(const launch_desc &d);

template <class... P, class... A>
inline void launch(void (*k)(P...), const char *name, const char *file, int line, dim3 grid,
                   dim3 block, size_t smem, cudaStream_t stream, const A &...args) {
    static_assert(sizeof...(P) == sizeof...(A), "KN_LAUNCH: wrong number of kernel arguments");
    /* The arguments are copied once, as CUDA does; every thread gets its own
     * copy of the parameters (they are converted at each call). */
    auto body = [k, args...]() { k(args...); };
    launch_desc d;
    d.fn = [](void *c) { (*static_cast<decltype(body) *>(c))(); };
    d.ctx = &body;
    d.func = reinterpret_cast<const void *>(k);
    d.name = name;
    d.file = file;
    d.line = line;
    d.grid = grid;
    d.block = block;
    d.smem = smem;
    d.stream = stream;
    run(d);
}

} // namespace cudaemu

/* KN_LAUNCH(kernel, grid, block, smem_bytes, stream, args...): see cuda_compat.h */
#define KN_LAUNCH(kernel, grid, block, smem, stream, ...)                                  \
    ::cudaemu::launch(kernel, #kernel, __FILE__, __LINE__, grid, block, smem, stream,        \
                      ##__VA_ARGS__)
/* KN_DYN_SMEM(type, name): the block's dynamic shared memory (inside a function) */
#define KN_DYN_SMEM(type, name) type *name = (type *)(::cudaemu::blk.dyn_smem)

/* ---- built-in variables */
#define threadIdx (static_cast<const ::uint3 &>(::cudaemu::cur->tid))
#define blockIdx (static_cast<const ::uint3 &>(::cudaemu::blk.bid))
#define blockDim (static_cast<const ::dim3 &>(::cudaemu::blk.bdim))
#define gridDim (static_cast<const ::dim3 &>(::cudaemu::blk.gdim))
static constexpr int warpSize = 32;

/* ---- barriers and warp collectives (each call site is recorded) */
#define __syncthreads() ((void)::cudaemu::bar(::cudaemu::OP_SYNCTHREADS, 0, __FILE__, __LINE__))
#define __syncthreads_count(pred)                                                            \
    ::cudaemu::bar(::cudaemu::OP_SYNCTHREADS_COUNT, !!(pred), __FILE__, __LINE__)
#define __syncthreads_and(pred)                                                              \
    ::cudaemu::bar(::cudaemu::OP_SYNCTHREADS_AND, !!(pred), __FILE__, __LINE__)
#define __syncthreads_or(pred)                                                               \
    ::cudaemu::bar(::cudaemu::OP_SYNCTHREADS_OR, !!(pred), __FILE__, __LINE__)
#define __syncwarp(...) (::cudaemu::syncwarp_at{__FILE__, __LINE__}(__VA_ARGS__))
#define __shfl_sync(...) ::cudaemu::shfl(::cudaemu::OP_SHFL_IDX, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::cudaemu::shfl(::cudaemu::OP_SHFL_UP, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...)                                                                \
    ::cudaemu::shfl(::cudaemu::OP_SHFL_DOWN, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) ::cudaemu::shfl(::cudaemu::OP_SHFL_XOR, __FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(mask, pred)                                                            \
    ((unsigned)::cudaemu::warp(::cudaemu::OP_BALLOT, (mask), !!(pred), 0, 32, __FILE__, __LINE__))
#define __any_sync(mask, pred)                                                               \
    ((int)::cudaemu::warp(::cudaemu::OP_ANY, (mask), !!(pred), 0, 32, __FILE__, __LINE__))
#define __all_sync(mask, pred)                                                               \
    ((int)::cudaemu::warp(::cudaemu::OP_ALL, (mask), !!(pred), 0, 32, __FILE__, __LINE__))
#define __reduce_add_sync(mask, v)                                                           \
    ::cudaemu::reduce(::cudaemu::OP_REDUCE_ADD, ::cudaemu::OP_REDUCE_ADD, __FILE__, __LINE__,    \
                      (mask), (v))
#define __reduce_min_sync(mask, v)                                                           \
    ::cudaemu::reduce(::cudaemu::OP_REDUCE_MIN_U, ::cudaemu::OP_REDUCE_MIN_S, __FILE__, __LINE__, \
                      (mask), (v))
#define __reduce_max_sync(mask, v)                                                           \
    ::cudaemu::reduce(::cudaemu::OP_REDUCE_MAX_U, ::cudaemu::OP_REDUCE_MAX_S, __FILE__, __LINE__, \
                      (mask), (v))
#define __reduce_and_sync(mask, v)                                                           \
    ::cudaemu::reduce(::cudaemu::OP_REDUCE_AND, ::cudaemu::OP_REDUCE_AND, __FILE__, __LINE__,    \
                      (mask), (unsigned)(v))
#define __reduce_or_sync(mask, v)                                                            \
    ::cudaemu::reduce(::cudaemu::OP_REDUCE_OR, ::cudaemu::OP_REDUCE_OR, __FILE__, __LINE__,      \
                      (mask), (unsigned)(v))
#define __reduce_xor_sync(mask, v)                                                           \
    ::cudaemu::reduce(::cudaemu::OP_REDUCE_XOR, ::cudaemu::OP_REDUCE_XOR, __FILE__, __LINE__,    \
                      (mask), (unsigned)(v))
#define __match_any_sync(mask, v) ::cudaemu::match_any(__FILE__, __LINE__, (mask), (v))
#define __match_all_sync(mask, v, pred) ::cudaemu::match_all(__FILE__, __LINE__, (mask), (v), (pred))
static inline unsigned __activemask() { return ::cudaemu::activemask(); }

/* Fences: blocks run one at a time and threads switch only at barriers, so
 * memory is always coherent here (fence bugs are NOT caught). */
static inline void __threadfence() {}
static inline void __threadfence_block() {}
static inline void __threadfence_system() {}
static inline void __nanosleep(unsigned int) {}

/* ---- atomics: plain read-modify-writes (threads never interleave inside) */
#define CUDAEMU_ATOMIC(NAME, T, EXPR)                                                        \
    static inline T NAME(T *a, T v) {                                                        \
        T o = *a;                                                                            \
        *a = (EXPR);                                                                         \
        return o;                                                                            \
    }
CUDAEMU_ATOMIC(atomicAdd, int, (int)((unsigned)o + (unsigned)v))
CUDAEMU_ATOMIC(atomicAdd, unsigned int, o + v)
CUDAEMU_ATOMIC(atomicAdd, unsigned long long, o + v)
CUDAEMU_ATOMIC(atomicAdd, float, o + v)
CUDAEMU_ATOMIC(atomicAdd, double, o + v)
CUDAEMU_ATOMIC(atomicSub, int, (int)((unsigned)o - (unsigned)v))
CUDAEMU_ATOMIC(atomicSub, unsigned int, o - v)
CUDAEMU_ATOMIC(atomicExch, int, v)
CUDAEMU_ATOMIC(atomicExch, unsigned int, v)
CUDAEMU_ATOMIC(atomicExch, unsigned long long, v)
CUDAEMU_ATOMIC(atomicExch, float, v)
CUDAEMU_ATOMIC(atomicMax, int, o > v ? o : v)
CUDAEMU_ATOMIC(atomicMax, unsigned int, o > v ? o : v)
CUDAEMU_ATOMIC(atomicMax, long long, o > v ? o : v)
CUDAEMU_ATOMIC(atomicMax, unsigned long long, o > v ? o : v)
CUDAEMU_ATOMIC(atomicMin, int, o < v ? o : v)
CUDAEMU_ATOMIC(atomicMin, unsigned int, o < v ? o : v)
CUDAEMU_ATOMIC(atomicMin, long long, o < v ? o : v)
CUDAEMU_ATOMIC(atomicMin, unsigned long long, o < v ? o : v)
CUDAEMU_ATOMIC(atomicAnd, int, o & v)
CUDAEMU_ATOMIC(atomicAnd, unsigned int, o & v)
CUDAEMU_ATOMIC(atomicAnd, unsigned long long, o & v)
CUDAEMU_ATOMIC(atomicOr, int, o | v)
CUDAEMU_ATOMIC(atomicOr, unsigned int, o | v)
CUDAEMU_ATOMIC(atomicOr, unsigned long long, o | v)
CUDAEMU_ATOMIC(atomicXor, int, o ^ v)
CUDAEMU_ATOMIC(atomicXor, unsigned int, o ^ v)
CUDAEMU_ATOMIC(atomicXor, unsigned long long, o ^ v)
CUDAEMU_ATOMIC(atomicInc, unsigned int, o >= v ? 0u : o + 1u)
CUDAEMU_ATOMIC(atomicDec, unsigned int, (o == 0u || o > v) ? v : o - 1u)
#undef CUDAEMU_ATOMIC
#define CUDAEMU_ATOMIC_CAS(T)                                                                \
    static inline T atomicCAS(T *a, T cmp, T v) {                                            \
        T o = *a;                                                                            \
        if (o == cmp) *a = v;                                                                \
        return o;                                                                            \
    }
CUDAEMU_ATOMIC_CAS(int)
CUDAEMU_ATOMIC_CAS(unsigned int)
CUDAEMU_ATOMIC_CAS(unsigned long long)
CUDAEMU_ATOMIC_CAS(unsigned short)
#undef CUDAEMU_ATOMIC_CAS
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd
#define atomicMax_block atomicMax
#define atomicMin_block atomicMin
#define atomicCAS_block atomicCAS
#define atomicExch_block atomicExch

/* ---- bit reinterpretation and integer intrinsics */
static inline unsigned int __float_as_uint(float f) { return ::cudaemu::from_bits<unsigned int>(::cudaemu::to_bits(f)); }
static inline int __float_as_int(float f) { return ::cudaemu::from_bits<int>(::cudaemu::to_bits(f)); }
static inline float __uint_as_float(unsigned int u) { return ::cudaemu::from_bits<float>(u); }
static inline float __int_as_float(int i) { return ::cudaemu::from_bits<float>((uint32_t)i); }
static inline long long __double_as_longlong(double d) { return (long long)::cudaemu::to_bits(d); }
static inline double __longlong_as_double(long long l) { return ::cudaemu::from_bits<double>((uint64_t)l); }
static inline int __double2hiint(double d) { return (int)(uint32_t)(::cudaemu::to_bits(d) >> 32); }
static inline int __double2loint(double d) { return (int)(uint32_t)::cudaemu::to_bits(d); }
static inline double __hiloint2double(int hi, int lo) {
    return ::cudaemu::from_bits<double>(((uint64_t)(uint32_t)hi << 32) | (uint32_t)lo);
}
static inline int __popc(unsigned int x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned int __brev(unsigned int x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}
static inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
static inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
static inline int __mul24(int a, int b) { return (int)((unsigned)a * (unsigned)b); }
static inline unsigned int __umul24(unsigned int a, unsigned int b) { return a * b; }

/* ---- loads and stores with cache hints */
template <class T> inline T __ldg(const T *p) { return *p; }
template <class T> inline T __ldcg(const T *p) { return *p; }
template <class T> inline T __ldca(const T *p) { return *p; }
template <class T> inline T __ldcs(const T *p) { return *p; }
template <class T> inline T __ldlu(const T *p) { return *p; }
template <class T> inline T __ldcv(const T *p) { return *p; }
template <class T> inline void __stcg(T *p, T v) { *p = v; }
template <class T> inline void __stcs(T *p, T v) { *p = v; }
template <class T> inline void __stwb(T *p, T v) { *p = v; }
template <class T> inline void __stwt(T *p, T v) { *p = v; }

/* ---- float intrinsics: plain IEEE operations (built with -ffp-contract=off).
 * glibc's math.h declares (but libm does not export) __expf, __logf, ...;
 * these definitions complete those declarations. */
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __frsqrt_rn(float a) { return 1.0f / sqrtf(a); }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
static inline double __drcp_rn(double a) { return 1.0 / a; }
static inline double __dsqrt_rn(double a) { return sqrt(a); }
static inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
static inline double rsqrt(double a) { return 1.0 / sqrt(a); }
static inline float rcbrtf(float a) { return 1.0f / cbrtf(a); }
static inline float fdividef(float a, float b) { return a / b; }
static inline float __fdividef(float a, float b) { return a / b; }
extern "C" inline float __expf(float a) noexcept { return expf(a); }
extern "C" inline float __exp10f(float a) noexcept { return powf(10.0f, a); }
extern "C" inline float __logf(float a) noexcept { return logf(a); }
extern "C" inline float __log2f(float a) noexcept { return log2f(a); }
extern "C" inline float __log10f(float a) noexcept { return log10f(a); }
extern "C" inline float __powf(float a, float b) noexcept { return powf(a, b); }
extern "C" inline float __sinf(float a) noexcept { return sinf(a); }
extern "C" inline float __cosf(float a) noexcept { return cosf(a); }
extern "C" inline float __tanf(float a) noexcept { return tanf(a); }
extern "C" inline void __sincosf(float a, float *s, float *c) noexcept {
    *s = sinf(a);
    *c = cosf(a);
}
static inline float __saturatef(float a) { return a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a == a ? a : 0.0f; }
static inline int __float2int_rn(float a) { return (int)nearbyintf(a); }
static inline int __float2int_rz(float a) { return (int)a; }
static inline int __float2int_rd(float a) { return (int)floorf(a); }
static inline int __float2int_ru(float a) { return (int)ceilf(a); }
static inline unsigned int __float2uint_rn(float a) { return (unsigned int)nearbyintf(a); }
static inline long long __float2ll_rn(float a) { return (long long)nearbyintf(a); }
static inline float __int2float_rn(int a) { return (float)a; }
static inline float __uint2float_rn(unsigned int a) { return (float)a; }
static inline float __ll2float_rn(long long a) { return (float)a; }
static inline float __double2float_rn(double a) { return (float)a; }

/* CUDA's global min/max for arithmetic types (usual arithmetic conversions;
 * fminf/fmaxf semantics for floating point). */
template <class A, class B,
          class = typename std::enable_if<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>::type>
inline typename std::common_type<A, B>::type min(A a, B b) {
    typedef typename std::common_type<A, B>::type R;
    if constexpr (std::is_floating_point<R>::value) return std::fmin((R)a, (R)b);
    else return (R)a < (R)b ? (R)a : (R)b;
}
template <class A, class B,
          class = typename std::enable_if<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>::type>
inline typename std::common_type<A, B>::type max(A a, B b) {
    typedef typename std::common_type<A, B>::type R;
    if constexpr (std::is_floating_point<R>::value) return std::fmax((R)a, (R)b);
    else return (R)a > (R)b ? (R)a : (R)b;
}

/* ---- bf16 (cuda_bf16.h subset): raw bits, round to nearest even */
struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) {
        unsigned int u = __float_as_uint(f);
        if ((u & 0x7fffffffu) > 0x7f800000u) __x = (unsigned short)((u >> 16) | 0x40u);
        else __x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
    operator float() const { return __uint_as_float((unsigned int)__x << 16); }
};
typedef __nv_bfloat16 nv_bfloat16;
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
static inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
static inline float __bfloat162float(__nv_bfloat16 h) { return (float)h; }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
    __nv_bfloat16 h;
    h.__x = u;
    return h;
}

/* ------------------------------------------------------------------ cuBLAS / cuBLASLt subset */
enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_LICENSE_ERROR = 16
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 };
enum cublasMath_t {
    CUBLAS_DEFAULT_MATH = 0,
    CUBLAS_TENSOR_OP_MATH = 1,
    CUBLAS_PEDANTIC_MATH = 2,
    CUBLAS_TF32_TENSOR_OP_MATH = 3
};
enum cudaDataType_t {
    CUDA_R_32F = 0,
    CUDA_R_64F = 1,
    CUDA_R_16F = 2,
    CUDA_R_8I = 3,
    CUDA_R_32I = 10,
    CUDA_R_16BF = 14
};
typedef cudaDataType_t cudaDataType;
enum cublasComputeType_t {
    CUBLAS_COMPUTE_16F = 64,
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_32F_PEDANTIC = 69,
    CUBLAS_COMPUTE_64F = 70,
    CUBLAS_COMPUTE_32F_FAST_16F = 74,
    CUBLAS_COMPUTE_32F_FAST_16BF = 75,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77
};
typedef struct cudaemu_blas_handle *cublasHandle_t;

enum cublasLtMatmulDescAttributes_t {
    CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0,
    CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1,
    CUBLASLT_MATMUL_DESC_POINTER_MODE = 2,
    CUBLASLT_MATMUL_DESC_TRANSA = 3,
    CUBLASLT_MATMUL_DESC_TRANSB = 4,
    CUBLASLT_MATMUL_DESC_TRANSC = 5,
    CUBLASLT_MATMUL_DESC_FILL_MODE = 6,
    CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8
};
enum cublasLtEpilogue_t { CUBLASLT_EPILOGUE_DEFAULT = 1 };
enum cublasLtMatrixLayoutAttribute_t {
    CUBLASLT_MATRIX_LAYOUT_TYPE = 0,
    CUBLASLT_MATRIX_LAYOUT_ORDER = 1,
    CUBLASLT_MATRIX_LAYOUT_ROWS = 2,
    CUBLASLT_MATRIX_LAYOUT_COLS = 3,
    CUBLASLT_MATRIX_LAYOUT_LD = 4,
    CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5,
    CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6
};
enum cublasLtOrder_t { CUBLASLT_ORDER_COL = 0, CUBLASLT_ORDER_ROW = 1 };
enum cublasLtMatmulPreferenceAttributes_t {
    CUBLASLT_MATMUL_PREF_SEARCH_MODE = 0,
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1
};
typedef struct cudaemu_lt_handle *cublasLtHandle_t;
typedef struct cudaemu_lt_desc *cublasLtMatmulDesc_t;
typedef struct cudaemu_lt_layout *cublasLtMatrixLayout_t;
typedef struct cudaemu_lt_pref *cublasLtMatmulPreference_t;
struct cublasLtMatmulAlgo_t {
    uint64_t data[8];
};
struct cublasLtMatmulHeuristicResult_t {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
};

extern "C" {
const char *cublasGetStatusString(cublasStatus_t s);
const char *cublasGetStatusName(cublasStatus_t s);
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode);
/* column-major C = alpha op(A) op(B) + beta C, fp32, host alpha/beta */
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                           int n, int k, const float *alpha, const float *A, int lda, const float *B,
                           int ldb, const float *beta, float *C, int ldc);

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h);
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute,
                                        cudaDataType_t scale);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size);
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t type, uint64_t rows,
                                          uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l);
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l,
                                                cublasLtMatrixLayoutAttribute_t attr, const void *buf,
                                                size_t size);
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size);
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int *returned);
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                              cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_bytes,
                              cudaStream_t stream);
}

#endif
