/* cudaemu.cc - the runtime of the CUDA device emulator (see cudaemu.h):
 * fibers and their scheduler, barrier and warp-collective semantics with
 * their diagnostics, the runtime API's memory/stream/event stand-ins, and
 * cuBLAS(Lt) routed to OpenBLAS.  Built -fPIC into the emulated CUDA library
 * (libtessera_cudaemu.so) and into the emulator's self-test. */
#include "cudaemu.h"
#undef cudaMalloc /* the definitions below are the functions themselves */

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <numeric>
#include <mutex>
#include <string>
#include <vector>

#include <cblas.h>

#if defined(__SANITIZE_ADDRESS__)
#define CUDAEMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUDAEMU_ASAN 1
#endif
#endif
#ifndef CUDAEMU_ASAN
#define CUDAEMU_ASAN 0
#endif

/* The hand-written x86-64 switch (~tens of ns) unless ASan needs the
 * annotated ucontext fallback, or the machine is not x86-64. */
#if CUDAEMU_ASAN || !defined(__x86_64__) || defined(CUDAEMU_UCONTEXT)
#define CUDAEMU_USE_UCONTEXT 1
#include <ucontext.h>
#else
#define CUDAEMU_USE_UCONTEXT 0
#endif
#if CUDAEMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace cudaemu {
thread_ctx *cur;
block_ctx blk;
} // namespace cudaemu

/* ====================================================================== errors */
namespace {

thread_local cudaError_t tls_err = cudaSuccess;
thread_local std::string tls_msg;
thread_local bool tls_in_launch;
int g_quiet = -1; /* -1: not read from CUDAEMU_QUIET yet */

bool quiet() {
    if (g_quiet < 0) {
        const char *q = getenv("CUDAEMU_QUIET");
        g_quiet = q && *q && strcmp(q, "0") != 0;
    }
    return g_quiet > 0;
}

/* Records and prints "cudaemu: <text>". */
void note_msg(const std::string &text) {
    tls_msg = "cudaemu: " + text;
    if (!quiet()) fprintf(stderr, "%s\n", tls_msg.c_str());
}

std::string vfmt(const char *fmt, va_list ap) {
    char buf[1024];
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(buf, sizeof buf, fmt, aq);
    va_end(aq);
    if (n < (int)sizeof buf) return std::string(buf, n > 0 ? (size_t)n : 0);
    std::string s((size_t)n + 1, '\0');
    vsnprintf(&s[0], s.size(), fmt, ap);
    s.resize((size_t)n);
    return s;
}

__attribute__((format(printf, 1, 2))) std::string fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    std::string s = vfmt(f, ap);
    va_end(ap);
    return s;
}

/* A failed call: sets the last error and prints the message. */
__attribute__((format(printf, 2, 3))) cudaError_t fail_call(cudaError_t code, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    std::string s = vfmt(f, ap);
    va_end(ap);
    if (tls_err != cudaErrorLaunchFailure) tls_err = code; /* a failed launch stays until read */
    note_msg(s);
    return code;
}

/* The error a synchronising call reports: a failed launch, until read. */
cudaError_t pending() { return tls_err == cudaErrorLaunchFailure ? tls_err : cudaSuccess; }

} // namespace

extern "C" {

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidSymbol: return "invalid device symbol";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
    default: return "unknown error";
    }
}

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidSymbol: return "cudaErrorInvalidSymbol";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    default: return "cudaErrorUnknown";
    }
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = tls_err;
    tls_err = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return tls_err; }

const char *cudaemu_last_error(void) { return tls_msg.c_str(); }
void cudaemu_clear_error(void) { tls_msg.clear(); }
void cudaemu_set_quiet(int q) { g_quiet = q ? 1 : 0; }

} // extern "C"

/* ====================================================================== device, streams, events */
namespace {
const size_t kTotalMem = (size_t)16 << 30;
const int kSmemDefault = 48 * 1024;
const int kSmemOptin = 227 * 1024;
const int kSMs = 8;
} // namespace

struct CUstream_st {
    unsigned flags;
};
struct CUevent_st {
    unsigned flags;
    bool recorded;
    std::chrono::steady_clock::time_point t;
};

extern "C" {

cudaError_t cudaSetDevice(int dev) {
    if (dev != 0) return fail_call(cudaErrorInvalidDevice, "cudaSetDevice(%d): the emulator has one device, 0", dev);
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *dev) {
    if (!dev) return fail_call(cudaErrorInvalidValue, "cudaGetDevice(NULL)");
    *dev = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *n) {
    if (!n) return fail_call(cudaErrorInvalidValue, "cudaGetDeviceCount(NULL)");
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev) {
    if (!p) return fail_call(cudaErrorInvalidValue, "cudaGetDeviceProperties(NULL)");
    if (dev != 0) return fail_call(cudaErrorInvalidDevice, "cudaGetDeviceProperties(%d): one device, 0", dev);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "Tessera device emulator (CPU)");
    p->totalGlobalMem = kTotalMem;
    p->sharedMemPerBlock = kSmemDefault;
    p->sharedMemPerBlockOptin = kSmemOptin;
    p->sharedMemPerMultiprocessor = 228 * 1024;
    p->totalConstMem = 64 * 1024;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024;
    p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff;
    p->maxGridSize[1] = 65535;
    p->maxGridSize[2] = 65535;
    p->maxThreadsPerMultiProcessor = 2048;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = kSMs;
    p->clockRate = 1000000;
    p->memoryClockRate = 1000000;
    p->memoryBusWidth = 5120;
    p->l2CacheSize = 50 * 1024 * 1024;
    p->concurrentKernels = 1;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int dev) {
    if (!v) return fail_call(cudaErrorInvalidValue, "cudaDeviceGetAttribute(NULL)");
    if (dev != 0) return fail_call(cudaErrorInvalidDevice, "cudaDeviceGetAttribute: device %d", dev);
    switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
    case cudaDevAttrMaxBlockDimX: *v = 1024; break;
    case cudaDevAttrMaxGridDimX: *v = 0x7fffffff; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = kSmemDefault; break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrMultiProcessorCount: *v = kSMs; break;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = kSmemOptin; break;
    default: return fail_call(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute %d not emulated", (int)a);
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return pending(); }
cudaError_t cudaDeviceReset(void) { return cudaSuccess; }

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
    if (!s) return fail_call(cudaErrorInvalidValue, "cudaStreamCreate(NULL)");
    *s = new CUstream_st{flags};
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (!s) return fail_call(cudaErrorInvalidResourceHandle, "cudaStreamDestroy(NULL)");
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return pending(); }

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags) {
    if (!e) return fail_call(cudaErrorInvalidValue, "cudaEventCreate(NULL)");
    *e = new CUevent_st{flags, false, {}};
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    if (!e) return fail_call(cudaErrorInvalidResourceHandle, "cudaEventRecord(NULL)");
    e->recorded = true;
    e->t = std::chrono::steady_clock::now();
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (!e) return fail_call(cudaErrorInvalidResourceHandle, "cudaEventSynchronize(NULL)");
    return pending();
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
    if (!e) return fail_call(cudaErrorInvalidResourceHandle, "cudaEventQuery(NULL)");
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!ms || !a || !b) return fail_call(cudaErrorInvalidValue, "cudaEventElapsedTime: NULL argument");
    if (!a->recorded || !b->recorded || (a->flags & cudaEventDisableTiming) ||
        (b->flags & cudaEventDisableTiming))
        return fail_call(cudaErrorInvalidResourceHandle,
                         "cudaEventElapsedTime: an event was not recorded or has timing disabled");
    *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    if (!e) return fail_call(cudaErrorInvalidResourceHandle, "cudaEventDestroy(NULL)");
    delete e;
    return cudaSuccess;
}

} // extern "C"

/* ====================================================================== memory */
/* Device memory is host memory of its own (mmap'd pages) that is PROT_NONE
 * whenever host code runs: the runtime opens it (PROT_READ|PROT_WRITE) only
 * while it touches it itself - all of it for a kernel launch, the
 * allocations involved for a copy, a memset or a cuBLAS call - so a host
 * dereference of a device pointer faults, as on a GPU, and the SIGSEGV
 * handler below names the allocation.  One lock, g_launch_mu, is held while
 * any memory is open, so a copy on one thread never closes memory a kernel
 * on another thread is using.  CUDAEMU_PROTECT=0 leaves it open. */
namespace {
std::mutex g_launch_mu; /* launches, and any opening of device memory (order: before g_mem_mu) */
std::mutex g_mem_mu;    /* g_allocs, g_mem_used, the protection state */
struct Alloc {
    size_t bytes;     /* as asked */
    size_t len;       /* mapped: whole pages */
    const char *file; /* of the cudaMalloc call, when compiled against cudaemu.h */
    int line;
    bool open; /* readable/writable now */
};
std::map<uintptr_t, Alloc> g_allocs;
size_t g_mem_used;
uint64_t g_mprotects;
size_t g_page;
struct sigaction g_old_segv;

void on_segv(int sig, siginfo_t *si, void *uc);

/* Read once, at the first cudaMalloc (thread-safe static initialisation). */
bool protecting() {
    static const bool on = [] {
        g_page = (size_t)sysconf(_SC_PAGESIZE);
        const char *e = getenv("CUDAEMU_PROTECT");
        bool p = !(e && !strcmp(e, "0"));
        if (p) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_sigaction = on_segv;
            sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
            sigemptyset(&sa.sa_mask);
            sigaction(SIGSEGV, &sa, &g_old_segv);
        }
        return p;
    }();
    return on;
}

/* The allocation whose pages hold address a (caller holds g_mem_mu). */
std::map<uintptr_t, Alloc>::iterator find_alloc(uintptr_t a) {
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin()) return g_allocs.end();
    --it;
    return a - it->first < it->second.len ? it : g_allocs.end();
}

void mprot(uintptr_t a, size_t len, bool open) {
    g_mprotects++;
    if (mprotect((void *)a, len, open ? PROT_READ | PROT_WRITE : PROT_NONE) != 0) {
        fprintf(stderr, "cudaemu: mprotect(%p, %zu) failed: %s\n", (void *)a, len, strerror(errno));
        abort();
    }
}

/* Opens (or closes) every allocation, one mprotect per run of adjacent
 * allocations that change state. */
void set_all(bool open) {
    if (!protecting()) return;
    std::lock_guard<std::mutex> lk(g_mem_mu);
    uintptr_t run = 0, end = 0;
    for (auto &kv : g_allocs) {
        if (kv.second.open == open) continue;
        kv.second.open = open;
        if (run && kv.first == end) {
            end += kv.second.len;
            continue;
        }
        if (run) mprot(run, end - run, open);
        run = kv.first;
        end = kv.first + kv.second.len;
    }
    if (run) mprot(run, end - run, open);
}

/* Device memory open for the runtime's own use while this lives: holds the
 * device lock (unless called from inside a kernel, where all of it is open
 * already) and opens the allocations it is asked for. */
class DevAccess {
    std::unique_lock<std::mutex> lk_;
    uintptr_t opened_[8];
    int n_ = 0;

public:
    DevAccess() {
        if (!tls_in_launch) lk_ = std::unique_lock<std::mutex>(g_launch_mu);
    }
    DevAccess(const DevAccess &) = delete;
    DevAccess &operator=(const DevAccess &) = delete;
    /* opens the allocation holding p, if p is device memory */
    void open(const void *p) {
        if (!p || !protecting() || tls_in_launch) return;
        std::lock_guard<std::mutex> lk(g_mem_mu);
        auto it = find_alloc((uintptr_t)p);
        if (it == g_allocs.end() || it->second.open) return;
        if (n_ == (int)(sizeof opened_ / sizeof opened_[0])) return;
        mprot(it->first, it->second.len, true);
        it->second.open = true;
        opened_[n_++] = it->first;
    }
    ~DevAccess() {
        if (!n_) return;
        std::lock_guard<std::mutex> lk(g_mem_mu);
        for (int i = 0; i < n_; i++) {
            auto it = g_allocs.find(opened_[i]);
            if (it == g_allocs.end() || !it->second.open) continue; /* freed meanwhile */
            mprot(it->first, it->second.len, false);
            it->second.open = false;
        }
    }
};

void say(const char *s, size_t n) {
    while (n) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* SIGSEGV: a host access to device memory is named, then the process dies
 * of it; anything else goes to the previous handler (or the default). */
void on_segv(int sig, siginfo_t *si, void *uc) {
    int saved = errno;
    uintptr_t a = (uintptr_t)si->si_addr;
    bool device = false;
    if (si->si_code == SEGV_ACCERR || si->si_code == SI_KERNEL) {
        /* the faulting thread never holds g_mem_mu while touching device
         * memory; another thread might, briefly */
        bool locked = false;
        for (int i = 0; i < 1000 && !(locked = g_mem_mu.try_lock()); i++) sched_yield();
        auto it = find_alloc(a);
        if (it != g_allocs.end()) {
            device = true;
            char buf[768];
            int n;
            if (it->second.file)
                n = snprintf(buf, sizeof buf,
                             "cudaemu: host code touched device memory at %p (allocation of %zu bytes from "
                             "cudaMalloc at %s:%d, offset %zu) - copy it with cudaMemcpy first\n",
                             (void *)a, it->second.bytes, it->second.file, it->second.line, (size_t)(a - it->first));
            else
                n = snprintf(buf, sizeof buf,
                             "cudaemu: host code touched device memory at %p (allocation of %zu bytes, offset "
                             "%zu) - copy it with cudaMemcpy first\n",
                             (void *)a, it->second.bytes, (size_t)(a - it->first));
            if (n > 0) say(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
        }
        if (locked) g_mem_mu.unlock();
    }
#if CUDAEMU_ASAN
    /* AddressSanitizer's handler reports the fault with its stack trace. */
    bool to_old = true;
    (void)device;
#else
    bool to_old = !device;
#endif
    if (to_old) {
        if (g_old_segv.sa_flags & SA_SIGINFO) {
            if (g_old_segv.sa_sigaction) {
                errno = saved;
                g_old_segv.sa_sigaction(sig, si, uc);
                return;
            }
        } else if (g_old_segv.sa_handler != SIG_DFL && g_old_segv.sa_handler != SIG_IGN) {
            errno = saved;
            g_old_segv.sa_handler(sig);
            return;
        }
    }
    /* the default action: returning re-executes the access, which faults
     * again and kills the process with SIGSEGV */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGSEGV, &dfl, nullptr);
    errno = saved;
}

/* [p, p+n) inside one cudaMalloc allocation */
bool dev_range(const void *p, size_t n) {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    uintptr_t a = (uintptr_t)p;
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin()) return false;
    --it;
    return a >= it->first && a - it->first <= it->second.bytes && n <= it->second.bytes - (a - it->first);
}

const char *kind_name(cudaMemcpyKind k) {
    switch (k) {
    case cudaMemcpyHostToHost: return "HostToHost";
    case cudaMemcpyHostToDevice: return "HostToDevice";
    case cudaMemcpyDeviceToHost: return "DeviceToHost";
    case cudaMemcpyDeviceToDevice: return "DeviceToDevice";
    case cudaMemcpyDefault: return "Default";
    }
    return "?";
}

cudaError_t do_memcpy(const char *fn, void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
    if (cudaError_t e = pending()) return e;
    if ((unsigned)kind > (unsigned)cudaMemcpyDefault)
        return fail_call(cudaErrorInvalidMemcpyDirection, "%s: invalid kind %d", fn, (int)kind);
    if (!n) return cudaSuccess;
    if (!dst || !src) return fail_call(cudaErrorInvalidValue, "%s(%s): NULL pointer", fn, kind_name(kind));
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (dst_dev && !dev_range(dst, n))
        return fail_call(cudaErrorInvalidValue,
                         "%s(%s): destination %p + %zu bytes is not inside one cudaMalloc allocation", fn,
                         kind_name(kind), dst, n);
    if (src_dev && !dev_range(src, n))
        return fail_call(cudaErrorInvalidValue,
                         "%s(%s): source %p + %zu bytes is not inside one cudaMalloc allocation", fn,
                         kind_name(kind), src, n);
    /* whichever side is device memory (cudaMemcpyDefault: either) */
    DevAccess acc;
    acc.open(dst);
    acc.open(src);
    memcpy(dst, src, n);
    return cudaSuccess;
}

cudaError_t do_memset(const char *fn, void *p, int v, size_t n) {
    if (cudaError_t e = pending()) return e;
    if (!n) return cudaSuccess;
    if (!dev_range(p, n))
        return fail_call(cudaErrorInvalidValue, "%s: %p + %zu bytes is not inside one cudaMalloc allocation",
                         fn, p, n);
    DevAccess acc;
    acc.open(p);
    memset(p, v, n);
    return cudaSuccess;
}
} // namespace

extern "C" {

cudaError_t cudaemu_malloc_at(void **p, size_t bytes, const char *file, int line) {
    if (!p) return fail_call(cudaErrorInvalidValue, "cudaMalloc(NULL, %zu)", bytes);
    *p = nullptr;
    if (!bytes) return cudaSuccess;
    size_t used;
    bool room;
    {
        std::lock_guard<std::mutex> lk(g_mem_mu);
        used = g_mem_used;
        room = bytes <= kTotalMem - g_mem_used;
        if (room) g_mem_used += bytes;
    }
    if (!room)
        return fail_call(cudaErrorMemoryAllocation, "cudaMalloc(%zu): out of memory (%zu of %zu bytes in use)",
                         bytes, used, kTotalMem);
    bool prot = protecting();
    /* Pages of its own (the protection is per page); under ASan at least a
     * page of poisoned slack after it, so overruns are reported. */
    size_t len = (bytes + g_page - 1) & ~(g_page - 1);
    if (CUDAEMU_ASAN && len - bytes < 64) len += g_page;
    void *m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        std::lock_guard<std::mutex> lk(g_mem_mu);
        g_mem_used -= bytes;
        return fail_call(cudaErrorMemoryAllocation, "cudaMalloc(%zu): host allocation failed", bytes);
    }
    /* Fresh device memory is garbage: 0xff bytes (NaN floats, -1 ints). */
    memset(m, 0xff, len);
#if CUDAEMU_ASAN
    ASAN_POISON_MEMORY_REGION((char *)m + bytes, len - bytes);
#endif
    {
        std::lock_guard<std::mutex> lk(g_mem_mu);
        if (prot) mprot((uintptr_t)m, len, false);
        g_allocs[(uintptr_t)m] = Alloc{bytes, len, file, line, !prot};
    }
    *p = m;
    return cudaSuccess;
}

cudaError_t(cudaMalloc)(void **p, size_t bytes) { return cudaemu_malloc_at(p, bytes, nullptr, 0); }

cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lk(g_mem_mu);
        auto it = g_allocs.find((uintptr_t)p);
        if (it != g_allocs.end()) {
            g_mem_used -= it->second.bytes;
            size_t len = it->second.len;
            g_allocs.erase(it);
#if CUDAEMU_ASAN
            ASAN_UNPOISON_MEMORY_REGION(p, len);
#endif
            munmap(p, len);
            return cudaSuccess;
        }
    }
    return fail_call(cudaErrorInvalidValue, "cudaFree(%p): not a pointer returned by cudaMalloc", p);
}

cudaError_t cudaMallocHost(void **p, size_t bytes) {
    if (!p) return fail_call(cudaErrorInvalidValue, "cudaMallocHost(NULL)");
    *p = malloc(bytes ? bytes : 1);
    return *p ? cudaSuccess : fail_call(cudaErrorMemoryAllocation, "cudaMallocHost(%zu) failed", bytes);
}

cudaError_t cudaFreeHost(void *p) {
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
    return do_memcpy("cudaMemcpy", dst, src, n, kind);
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t) {
    return do_memcpy("cudaMemcpyAsync", dst, src, n, kind);
}
cudaError_t cudaMemset(void *p, int v, size_t n) { return do_memset("cudaMemset", p, v, n); }
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) {
    return do_memset("cudaMemsetAsync", p, v, n);
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    if (!free_bytes || !total_bytes) return fail_call(cudaErrorInvalidValue, "cudaMemGetInfo(NULL)");
    std::lock_guard<std::mutex> lk(g_mem_mu);
    *free_bytes = kTotalMem - g_mem_used;
    *total_bytes = kTotalMem;
    return cudaSuccess;
}

size_t cudaemu_mem_in_use(void) {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    return g_mem_used;
}

} // extern "C"

/* ====================================================================== fibers */
#if !CUDAEMU_USE_UCONTEXT
/* cudaemu_swap_ctx(save, to): saves the callee-saved registers, MXCSR and the
 * x87 control word on the current stack, stores the stack pointer in *save,
 * and resumes the context whose stack pointer is `to`.
 * cudaemu_fiber_boot: first "return address" of a new fiber; calls
 * r13(r12) and never returns. */
__asm__(R"(
    .text
    .p2align 4
    .globl cudaemu_swap_ctx
    .hidden cudaemu_swap_ctx
    .type cudaemu_swap_ctx,@function
cudaemu_swap_ctx:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size cudaemu_swap_ctx,.-cudaemu_swap_ctx

    .p2align 4
    .globl cudaemu_fiber_boot
    .hidden cudaemu_fiber_boot
    .type cudaemu_fiber_boot,@function
cudaemu_fiber_boot:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size cudaemu_fiber_boot,.-cudaemu_fiber_boot
)");
extern "C" void cudaemu_swap_ctx(void **save, void *to) __attribute__((visibility("hidden")));
extern "C" void cudaemu_fiber_boot(void) __attribute__((visibility("hidden")));
#endif

namespace {

enum { ST_NEW, ST_RUN, ST_READY, ST_BAR, ST_WARP, ST_DONE };

struct Fiber;

struct Thr : cudaemu::thread_ctx {
    unsigned lin; /* linear thread id, x fastest */
    int state;
    Fiber *fib;
    /* what it waits at */
    int op;
    const char *file;
    int line;
    unsigned mask;
    int arg, width;
    uint64_t in, out;
};

struct Fiber {
    char *base; /* lowest usable byte of the stack */
    size_t size;
    Thr *thr;
    Fiber *next; /* in the free list */
    bool dirty; /* abandoned mid-kernel */
#if CUDAEMU_USE_UCONTEXT
    ucontext_t uc;
    void *fake;
#else
    void *sp;
#endif
};

struct State {
    const cudaemu::launch_desc *d;
    unsigned n; /* threads per block */
    std::vector<Thr> thr;
    std::vector<Thr *> q; /* ring of runnable / not yet started threads */
    unsigned qh, qn;
    std::vector<Thr *> tmp;
    unsigned n_bar, n_warp, n_done;
    bool bar_mismatch;
    const char *bar_file;
    int bar_line, bar_op;
    bool failed;
    std::string what; /* the failure, without the kernel prefix */
    Fiber *dying;
    int order;
    uint64_t rng;
};

State S;
std::map<const void *, int> g_func_smem; /* cudaFuncSetAttribute limits */
Fiber *g_free_fibers; /* stacks are mapped once and reused (never freed) */
size_t g_stack_size;
int g_order = CUDAEMU_ORDER_FORWARD;
uint64_t g_seed = 1;
bool g_order_set, g_env_read;
cudaemu_stats g_stats;

#if CUDAEMU_USE_UCONTEXT
ucontext_t g_sched_uc;
void *g_sched_fake;
const void *g_sched_bottom;
size_t g_sched_size;
Fiber *g_boot;
#else
void *g_sched_sp;
#endif

inline Thr *me() { return static_cast<Thr *>(cudaemu::cur); }

uint64_t rnd() { /* splitmix64 */
    uint64_t z = (S.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void read_env() {
    if (g_env_read) return;
    g_env_read = true;
    const char *o = getenv("CUDAEMU_ORDER");
    if (o && *o && !g_order_set) {
        if (!strcmp(o, "forward")) g_order = CUDAEMU_ORDER_FORWARD;
        else if (!strcmp(o, "reverse")) g_order = CUDAEMU_ORDER_REVERSE;
        else if (!strncmp(o, "shuffle", 7) && (o[7] == 0 || o[7] == ':')) {
            g_order = CUDAEMU_ORDER_SHUFFLE;
            if (o[7] == ':') g_seed = strtoull(o + 8, nullptr, 0);
        } else {
            fprintf(stderr, "cudaemu: CUDAEMU_ORDER=%s not understood (forward, reverse, shuffle[:SEED]); using forward\n", o);
        }
    }
    size_t st = CUDAEMU_ASAN ? 256 * 1024 : 64 * 1024;
    const char *s = getenv("CUDAEMU_STACK");
    if (s && *s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 0);
        if (*end == 'k' || *end == 'K') v <<= 10;
        else if (*end == 'm' || *end == 'M') v <<= 20;
        if (v >= 16 * 1024 && v <= (1ull << 30)) st = (size_t)v;
        else fprintf(stderr, "cudaemu: CUDAEMU_STACK=%s out of range (16k..1g); using %zu\n", s, st);
    }
    long pg = sysconf(_SC_PAGESIZE);
    g_stack_size = (st + (size_t)pg - 1) & ~((size_t)pg - 1);
}

Fiber *fiber_get() {
    if (g_free_fibers) {
        Fiber *f = g_free_fibers;
        g_free_fibers = f->next;
        return f;
    }
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    char *m = (char *)mmap(nullptr, g_stack_size + pg, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    mprotect(m, pg, PROT_NONE); /* guard page: a stack overflow faults */
    Fiber *f = new Fiber();
    f->base = m + pg;
    f->size = g_stack_size;
    return f;
}

void fiber_put(Fiber *f) {
    f->thr = nullptr;
    f->next = g_free_fibers;
    g_free_fibers = f;
}

void fiber_main(Fiber *f);

#if CUDAEMU_USE_UCONTEXT
#if CUDAEMU_ASAN
#define START_SWITCH(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define FINISH_SWITCH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define START_SWITCH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define FINISH_SWITCH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

void uc_entry() {
    Fiber *f = g_boot;
    FINISH_SWITCH(nullptr, &g_sched_bottom, &g_sched_size);
    fiber_main(f);
}

void fiber_init(Fiber *f) {
#if CUDAEMU_ASAN
    /* frames a previous thread left (its fiber ends inside fiber_main, or
     * was abandoned) may still be poisoned */
    ASAN_UNPOISON_MEMORY_REGION(f->base, f->size);
#endif
    f->dirty = false;
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = f->base;
    f->uc.uc_stack.ss_size = f->size;
    f->uc.uc_link = nullptr;
    makecontext(&f->uc, (void (*)())uc_entry, 0);
    /* swapcontext does not use uc_stack (only makecontext does); clearing it
     * stops ASan's swapcontext interceptor from unpoisoning the whole stack
     * at every switch (~3 us), which the fiber annotations make unneeded. */
    f->uc.uc_stack.ss_sp = nullptr;
    f->uc.uc_stack.ss_size = 0;
}

void to_fiber(Fiber *f) {
    g_stats.switches++;
    g_boot = f;
    START_SWITCH(&g_sched_fake, f->base, f->size);
    swapcontext(&g_sched_uc, &f->uc);
    FINISH_SWITCH(g_sched_fake, nullptr, nullptr);
}

void to_sched(Fiber *f, bool dying) {
    g_stats.switches++;
    START_SWITCH(dying ? nullptr : &f->fake, g_sched_bottom, g_sched_size);
    swapcontext(&f->uc, &g_sched_uc);
    FINISH_SWITCH(f->fake, &g_sched_bottom, &g_sched_size);
}
#else
void fiber_init(Fiber *f) {
    f->dirty = false;
    uintptr_t top = (uintptr_t)(f->base + f->size) & ~(uintptr_t)15;
    void **sp = (void **)(top - 80);
    uint32_t mxcsr = 0;
    uint16_t fpucw = 0;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    sp[0] = nullptr;
    memcpy((char *)&sp[0], &mxcsr, 4);
    memcpy((char *)&sp[0] + 4, &fpucw, 2);
    sp[1] = nullptr;                          /* r15 */
    sp[2] = nullptr;                          /* r14 */
    sp[3] = (void *)(uintptr_t)&fiber_main;   /* r13: the function */
    sp[4] = f;                                /* r12: its argument */
    sp[5] = nullptr;                          /* rbx */
    sp[6] = nullptr;                          /* rbp: end of the frame chain */
    sp[7] = (void *)(uintptr_t)&cudaemu_fiber_boot; /* "return address" */
    sp[8] = nullptr;
    sp[9] = nullptr;
    f->sp = sp;
}

inline void to_fiber(Fiber *f) {
    g_stats.switches++;
    cudaemu_swap_ctx(&g_sched_sp, f->sp);
}

inline void to_sched(Fiber *f, bool) {
    g_stats.switches++;
    cudaemu_swap_ctx(&f->sp, g_sched_sp);
}
#endif

/* ---------------------------------------------------------------------- queue and orders */
inline void q_push(Thr *t) {
    S.q[(S.qh + S.qn) % S.n] = t;
    S.qn++;
}
inline Thr *q_pop() {
    Thr *t = S.q[S.qh];
    S.qh = S.qh + 1 == S.n ? 0 : S.qh + 1;
    S.qn--;
    return t;
}

/* Makes list[0..cnt) (ascending thread ids) runnable in the launch's order. */
void push_ordered(Thr **list, unsigned cnt) {
    if (S.order == CUDAEMU_ORDER_REVERSE) {
        for (unsigned i = cnt; i-- > 0;) q_push(list[i]);
        return;
    }
    if (S.order == CUDAEMU_ORDER_SHUFFLE) {
        for (unsigned i = cnt; i > 1; i--) {
            unsigned j = (unsigned)(rnd() % i);
            Thr *x = list[i - 1];
            list[i - 1] = list[j];
            list[j] = x;
        }
    }
    for (unsigned i = 0; i < cnt; i++) q_push(list[i]);
}

/* ---------------------------------------------------------------------- messages */
const char *op_name(int op) {
    static const char *const names[cudaemu::OP_COUNT_] = {
        "__syncthreads",     "__syncthreads_count", "__syncthreads_and", "__syncthreads_or",
        "__syncwarp",        "__shfl_sync",         "__shfl_up_sync",    "__shfl_down_sync",
        "__shfl_xor_sync",   "__ballot_sync",       "__any_sync",        "__all_sync",
        "__reduce_add_sync", "__reduce_min_sync",   "__reduce_max_sync", "__reduce_min_sync",
        "__reduce_max_sync", "__reduce_and_sync",   "__reduce_or_sync",  "__reduce_xor_sync",
        "__match_any_sync",  "__match_all_sync"};
    return op >= 0 && op < cudaemu::OP_COUNT_ ? names[op] : "?";
}

bool same_site(const Thr *a, const char *file, int line, int op) {
    return a->line == line && a->op == op && (a->file == file || strcmp(a->file, file) == 0);
}

void append(std::string &s, const char *f, ...) __attribute__((format(printf, 2, 3)));
void append(std::string &s, const char *f, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    s.append(buf, n < (int)sizeof buf ? (size_t)(n > 0 ? n : 0) : sizeof buf - 1);
}

/* "0-15,32-47" for sorted ids */
void append_ranges(std::string &s, const std::vector<unsigned> &ids) {
    size_t shown = 0;
    for (size_t i = 0; i < ids.size();) {
        size_t j = i;
        while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) j++;
        if (shown == 8) {
            append(s, ",... (%zu in all)", ids.size());
            return;
        }
        if (shown) s += ",";
        if (j == i) append(s, "%u", ids[i]);
        else append(s, "%u-%u", ids[i], ids[j]);
        shown++;
        i = j + 1;
    }
}

/* lanes of a mask as ranges, without allocating (used on fiber stacks) */
void append_lanes(std::string &s, unsigned m) {
    bool first = true;
    for (unsigned l = 0; l < 32;) {
        if (!(m >> l & 1)) {
            l++;
            continue;
        }
        unsigned e = l;
        while (e + 1 < 32 && (m >> (e + 1) & 1)) e++;
        if (!first) s += ",";
        first = false;
        if (e == l) append(s, "%u", l);
        else append(s, "%u-%u", l, e);
        l = e + 1;
    }
}

void append_block(std::string &s) {
    append(s, "block (%u,%u,%u)", cudaemu::blk.bid.x, cudaemu::blk.bid.y, cudaemu::blk.bid.z);
}

/* Fails the launch from inside a fiber: S.what is composed; never returns.
 * Nothing owning heap memory may live on the fiber stack here (it is
 * abandoned, not unwound). */
[[noreturn]] void fail_from_fiber() {
    S.failed = true;
    Thr *t = me();
    to_sched(t->fib, false);
    abort(); /* never resumed */
}

/* ---------------------------------------------------------------------- warp collectives */
unsigned warp_lanes(unsigned w) { /* existing lanes of warp w */
    unsigned left = S.n - w * 32;
    return left >= 32 ? 0xffffffffu : (1u << left) - 1;
}

bool is_shfl(int op) {
    return op == cudaemu::OP_SHFL_IDX || op == cudaemu::OP_SHFL_UP || op == cudaemu::OP_SHFL_DOWN ||
           op == cudaemu::OP_SHFL_XOR;
}

/* Source lane of a shuffle, as the PTX shfl.sync pseudo-code computes it. */
int shfl_src(int op, int lane, int b, int width) {
    int seg = 32 - width; /* c[12:8] */
    int clamp = op == cudaemu::OP_SHFL_UP ? 0 : 31;
    int max_lane = (lane & seg) | (clamp & ~seg);
    int min_lane = lane & seg;
    int j;
    bool ok;
    switch (op) {
    case cudaemu::OP_SHFL_UP: j = lane - b; ok = j >= max_lane; break;
    case cudaemu::OP_SHFL_DOWN: j = lane + b; ok = j <= max_lane; break;
    case cudaemu::OP_SHFL_XOR: j = lane ^ (b & 31); ok = j <= max_lane; break;
    default: j = min_lane | (b & 31 & ~seg); ok = j <= max_lane; break;
    }
    return ok ? j : lane;
}

void fail_collective_prefix(const Thr *t) {
    S.what.clear();
    append(S.what, "%s(mask 0x%08x) in ", op_name(t->op), t->mask);
    append_block(S.what);
    append(S.what, ", warp %u, lane %u", t->lin >> 5, t->lin & 31);
}

/* All lanes of t's mask wait at t's collective: compute and release them. */
void try_complete(Thr *t) {
    unsigned w = t->lin >> 5;
    Thr *base = &S.thr[w * 32];
    unsigned M = t->mask;
    for (unsigned m = M; m; m &= m - 1) {
        Thr *u = base + __builtin_ctz(m);
        if (u->state != ST_WARP || !same_site(u, t->file, t->line, t->op)) return;
    }
    /* Every lane that waits here and shares a lane with M must pass M. */
    unsigned exist = warp_lanes(w);
    for (unsigned m = exist; m; m &= m - 1) {
        Thr *u = base + __builtin_ctz(m);
        if (u->state == ST_WARP && same_site(u, t->file, t->line, t->op) && (u->mask & M) && u->mask != M) {
            S.what.clear();
            append(S.what, "%s with different masks in ", op_name(t->op));
            append_block(S.what);
            append(S.what, ", warp %u: lane %u passes 0x%08x, lane %u passes 0x%08x at %s:%d", w,
                   t->lin & 31, M, u->lin & 31, u->mask, t->file, t->line);
            fail_from_fiber();
        }
    }
    int op = t->op;
    uint64_t r = 0;
    switch (op) {
    case cudaemu::OP_SYNCWARP: break;
    case cudaemu::OP_SHFL_IDX:
    case cudaemu::OP_SHFL_UP:
    case cudaemu::OP_SHFL_DOWN:
    case cudaemu::OP_SHFL_XOR:
        for (unsigned m = M; m; m &= m - 1) {
            int l = __builtin_ctz(m);
            Thr *u = base + l;
            int j = shfl_src(op, l, u->arg, u->width);
            if (!(M >> j & 1)) {
                fail_collective_prefix(u);
                append(S.what, " reads lane %d, which is not in the mask (undefined on a GPU) at %s:%d", j,
                       t->file, t->line);
                fail_from_fiber();
            }
            u->out = base[j].in;
        }
        break;
    case cudaemu::OP_BALLOT:
    case cudaemu::OP_ANY:
    case cudaemu::OP_ALL: {
        unsigned b = 0;
        for (unsigned m = M; m; m &= m - 1) {
            int l = __builtin_ctz(m);
            if (base[l].in) b |= 1u << l;
        }
        r = op == cudaemu::OP_BALLOT ? b : op == cudaemu::OP_ANY ? (b != 0) : (b == M);
        break;
    }
    case cudaemu::OP_REDUCE_ADD:
    case cudaemu::OP_REDUCE_AND:
    case cudaemu::OP_REDUCE_OR:
    case cudaemu::OP_REDUCE_XOR:
    case cudaemu::OP_REDUCE_MIN_U:
    case cudaemu::OP_REDUCE_MAX_U:
    case cudaemu::OP_REDUCE_MIN_S:
    case cudaemu::OP_REDUCE_MAX_S: {
        bool first = true;
        uint32_t a = 0;
        for (unsigned m = M; m; m &= m - 1) {
            uint32_t v = (uint32_t)base[__builtin_ctz(m)].in;
            if (first) {
                a = v;
                first = false;
                continue;
            }
            switch (op) {
            case cudaemu::OP_REDUCE_ADD: a += v; break;
            case cudaemu::OP_REDUCE_AND: a &= v; break;
            case cudaemu::OP_REDUCE_OR: a |= v; break;
            case cudaemu::OP_REDUCE_XOR: a ^= v; break;
            case cudaemu::OP_REDUCE_MIN_U: a = v < a ? v : a; break;
            case cudaemu::OP_REDUCE_MAX_U: a = v > a ? v : a; break;
            case cudaemu::OP_REDUCE_MIN_S: a = (int32_t)v < (int32_t)a ? v : a; break;
            default: a = (int32_t)v > (int32_t)a ? v : a; break;
            }
        }
        r = a;
        break;
    }
    case cudaemu::OP_MATCH_ANY:
        for (unsigned m = M; m; m &= m - 1) {
            Thr *u = base + __builtin_ctz(m);
            unsigned same = 0;
            for (unsigned m2 = M; m2; m2 &= m2 - 1) {
                int l2 = __builtin_ctz(m2);
                if (base[l2].in == u->in) same |= 1u << l2;
            }
            u->out = same;
        }
        break;
    case cudaemu::OP_MATCH_ALL: {
        bool all = true;
        uint64_t v0 = base[__builtin_ctz(M)].in;
        for (unsigned m = M; m; m &= m - 1) all = all && base[__builtin_ctz(m)].in == v0;
        r = all ? M : 0;
        break;
    }
    default: break;
    }
    Thr *list[32];
    unsigned cnt = 0;
    for (unsigned m = M; m; m &= m - 1) {
        Thr *u = base + __builtin_ctz(m);
        if (!is_shfl(op) && op != cudaemu::OP_MATCH_ANY) u->out = r;
        u->state = ST_READY;
        list[cnt++] = u;
    }
    S.n_warp -= cnt;
    push_ordered(list, cnt);
}

/* ---------------------------------------------------------------------- the scheduler */
void fiber_main(Fiber *f) {
    for (;;) {
        Thr *t = f->thr;
        cudaemu::cur = t;
        g_stats.threads++;
        S.d->fn(S.d->ctx);
        t->state = ST_DONE;
        t->fib = nullptr;
        S.n_done++;
        /* A thread that never blocks costs one call: the next thread that
         * has not started yet runs on this same fiber. */
        if (S.qn && S.q[S.qh]->state == ST_NEW) {
            Thr *n = q_pop();
            n->state = ST_RUN;
            n->fib = f;
            f->thr = n;
            continue;
        }
        f->thr = nullptr;
        S.dying = f;
        to_sched(f, true);
        abort(); /* a finished fiber is never resumed */
    }
}

void what_waits(std::string &s, const Thr *t) {
    if (t->state == ST_DONE) s += "exited";
    else if (t->state == ST_BAR) append(s, "wait at %s at %s:%d", op_name(t->op), t->file, t->line);
    else if (t->state == ST_WARP)
        append(s, "wait at %s(mask 0x%08x) at %s:%d", op_name(t->op), t->mask, t->file, t->line);
    else s += "are runnable";
}

/* Groups threads by what they do ("exited", "wait at X at f:l"). */
void append_groups(std::string &s, const std::vector<const Thr *> &ts, const char *noun, size_t max_groups) {
    std::vector<std::pair<std::string, std::vector<unsigned>>> g;
    for (const Thr *t : ts) {
        std::string w;
        what_waits(w, t);
        size_t i = 0;
        while (i < g.size() && g[i].first != w) i++;
        if (i == g.size()) g.push_back({w, {}});
        g[i].second.push_back(noun[0] == 'l' ? t->lin & 31 : t->lin);
    }
    for (size_t i = 0; i < g.size() && i < max_groups; i++) {
        /* "lanes 16-31" but "lane 3" */
        append(s, "%s%.*s ", i ? "; " : "", (int)strlen(noun) - (g[i].second.size() == 1), noun);
        append_ranges(s, g[i].second);
        s += " ";
        s += g[i].first;
    }
    if (g.size() > max_groups) append(s, "; and %zu more groups", g.size() - max_groups);
}

void fail_warp_deadlock() {
    const Thr *t = nullptr;
    for (const Thr &u : S.thr)
        if (u.state == ST_WARP) {
            t = &u;
            break;
        }
    unsigned w = t->lin >> 5;
    const Thr *base = &S.thr[w * 32];
    std::vector<unsigned> here;
    std::vector<const Thr *> missing, elsewhere;
    for (unsigned m = warp_lanes(w); m; m &= m - 1) {
        const Thr *u = base + __builtin_ctz(m);
        if (u->state == ST_WARP && same_site(u, t->file, t->line, t->op) && u->mask == t->mask)
            here.push_back(u->lin & 31);
        else if (t->mask >> (u->lin & 31) & 1) missing.push_back(u);
    }
    for (const Thr &u : S.thr)
        if ((u.lin >> 5) != w && u.state != ST_DONE) elsewhere.push_back(&u);
    std::string &s = S.what;
    s = "deadlock in ";
    append_block(s);
    append(s, ": warp %u lanes ", w);
    append_ranges(s, here);
    append(s, " wait in %s(mask 0x%08x) at %s:%d; of the mask, ", op_name(t->op), t->mask, t->file, t->line);
    append_groups(s, missing, "lanes", 4);
    if (!elsewhere.empty()) {
        s += "; elsewhere: ";
        append_groups(s, elsewhere, "threads", 3);
    }
    S.failed = true;
}

void collect(int state, std::vector<const Thr *> &out) {
    for (const Thr &u : S.thr)
        if (u.state == state) out.push_back(&u);
}

void fail_barrier(bool returned) {
    std::string &s = S.what;
    std::vector<const Thr *> waiting, done;
    collect(ST_BAR, waiting);
    collect(ST_DONE, done);
    s.clear();
    if (returned) {
        std::vector<unsigned> ids;
        for (const Thr *t : done) ids.push_back(t->lin);
        s = ids.size() == 1 ? "thread " : "threads ";
        append_ranges(s, ids);
        s += " of ";
        append_block(s);
        s += " returned while ";
        append_groups(s, waiting, "threads", 4);
    } else {
        s = "divergent __syncthreads in ";
        append_block(s);
        s += ": ";
        append_groups(s, waiting, "threads", 6);
    }
    S.failed = true;
}

/* No thread can run: release a barrier, or diagnose. */
void quiescence() {
    if (S.n_warp) return fail_warp_deadlock();
    if (S.n_done) return fail_barrier(true);
    if (S.bar_mismatch) return fail_barrier(false);
    int op = S.bar_op;
    uint64_t cnt = 0;
    for (const Thr &u : S.thr) cnt += u.in != 0;
    uint64_t r = op == cudaemu::OP_SYNCTHREADS_COUNT ? cnt
               : op == cudaemu::OP_SYNCTHREADS_AND   ? (cnt == S.n)
               : op == cudaemu::OP_SYNCTHREADS_OR    ? (cnt != 0)
                                                     : 0;
    S.tmp.clear();
    for (Thr &u : S.thr) {
        u.out = r;
        u.state = ST_READY;
        S.tmp.push_back(&u);
    }
    S.n_bar = 0;
    S.bar_mismatch = false;
    push_ordered(S.tmp.data(), (unsigned)S.tmp.size());
}

void run_block() {
    const cudaemu::launch_desc &d = *S.d;
    unsigned i = 0;
    for (unsigned z = 0; z < d.block.z; z++)
        for (unsigned y = 0; y < d.block.y; y++)
            for (unsigned x = 0; x < d.block.x; x++, i++) {
                Thr &t = S.thr[i];
                t.tid = uint3{x, y, z};
                t.lin = i;
                t.state = ST_NEW;
                t.fib = nullptr;
                t.in = 0;
            }
    S.qh = S.qn = 0;
    S.n_bar = S.n_warp = S.n_done = 0;
    S.bar_mismatch = false;
    S.tmp.clear();
    for (Thr &t : S.thr) S.tmp.push_back(&t);
    push_ordered(S.tmp.data(), S.n);
    for (;;) {
        while (S.qn && !S.failed) {
            Thr *t = q_pop();
            if (t->state == ST_NEW) {
                Fiber *f = fiber_get();
                if (!f) {
                    S.what = fmt("cannot map a %zu-byte fiber stack: %s", g_stack_size, strerror(errno));
                    S.failed = true;
                    break;
                }
                fiber_init(f);
                f->thr = t;
                t->fib = f;
                t->state = ST_RUN;
                to_fiber(f);
            } else {
                t->state = ST_RUN;
                cudaemu::cur = t;
                to_fiber(t->fib);
            }
            if (S.dying) {
                fiber_put(S.dying);
                S.dying = nullptr;
            }
        }
        if (S.failed || S.n_done == S.n) break;
        quiescence();
        if (S.failed) break;
    }
    if (S.failed) { /* abandon the fibers of the threads still alive */
        for (Thr &t : S.thr)
            if (t.fib) {
                t.fib->dirty = true;
                fiber_put(t.fib);
                t.fib = nullptr;
            }
    }
}

/* ---------------------------------------------------------------------- static __shared__ fill */
extern "C" char __start_cudaemu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_cudaemu_shared[] __attribute__((weak, visibility("hidden")));

#if CUDAEMU_ASAN
__attribute__((no_sanitize_address)) void fill_shared() {
    /* byte stores the sanitizer does not check (the section may hold
     * redzones between variables) */
    for (volatile char *p = __start_cudaemu_shared; p < __stop_cudaemu_shared; p++) *p = (char)0xff;
}
#else
void fill_shared() {
    char *a = __start_cudaemu_shared, *b = __stop_cudaemu_shared;
    if (a && b > a) memset(a, 0xff, (size_t)(b - a));
}
#endif

bool valid_config(const cudaemu::launch_desc &d) {
    dim3 g = d.grid, b = d.block;
    return g.x >= 1 && g.x <= 0x7fffffffu && g.y >= 1 && g.y <= 65535 && g.z >= 1 && g.z <= 65535 &&
           b.x >= 1 && b.x <= 1024 && b.y >= 1 && b.y <= 1024 && b.z >= 1 && b.z <= 64 &&
           (uint64_t)b.x * b.y * b.z <= 1024;
}

} // namespace

/* ====================================================================== device-side entry points */
namespace cudaemu {

int bar(int op, int pred, const char *file, int line) {
    Thr *t = me();
    if (!t) {
        fprintf(stderr, "cudaemu: %s at %s:%d called outside a kernel\n", op_name(op), file, line);
        abort();
    }
    t->state = ST_BAR;
    t->op = op;
    t->file = file;
    t->line = line;
    t->in = (uint64_t)pred;
    if (S.n_bar == 0) {
        S.bar_file = file;
        S.bar_line = line;
        S.bar_op = op;
    } else if (!same_site(t, S.bar_file, S.bar_line, S.bar_op)) {
        S.bar_mismatch = true;
    }
    S.n_bar++;
    to_sched(t->fib, false);
    return (int)t->out;
}

uint64_t warp(int op, unsigned mask, uint64_t v, int arg, int width, const char *file, int line) {
    Thr *t = me();
    if (!t) {
        fprintf(stderr, "cudaemu: %s at %s:%d called outside a kernel\n", op_name(op), file, line);
        abort();
    }
    unsigned lane = t->lin & 31, w = t->lin >> 5;
    t->op = op;
    t->file = file;
    t->line = line;
    t->mask = mask;
    t->in = v;
    t->arg = arg;
    t->width = width;
    if (!(mask >> lane & 1)) {
        fail_collective_prefix(t);
        append(S.what, ": the mask does not include the calling lane at %s:%d", file, line);
        fail_from_fiber();
    }
    unsigned exist = warp_lanes(w);
    if (mask & ~exist) {
        fail_collective_prefix(t);
        S.what += ": the mask names lanes ";
        append_lanes(S.what, mask & ~exist);
        append(S.what, ", which do not exist (the block has %u threads) at %s:%d", S.n, file, line);
        fail_from_fiber();
    }
    if (is_shfl(op) && (width < 1 || width > 32 || (width & (width - 1)))) {
        fail_collective_prefix(t);
        append(S.what, ": width %d is not a power of two in 1..32 at %s:%d", width, file, line);
        fail_from_fiber();
    }
    t->state = ST_WARP;
    S.n_warp++;
    try_complete(t);
    to_sched(t->fib, false);
    return t->out;
}

unsigned activemask() {
    Thr *t = me();
    unsigned w = t->lin >> 5, m = 0;
    for (unsigned e = warp_lanes(w); e; e &= e - 1) {
        unsigned l = (unsigned)__builtin_ctz(e);
        if (S.thr[w * 32 + l].state != ST_DONE) m |= 1u << l;
    }
    return m;
}

void run(const launch_desc &d) {
    if (tls_in_launch) {
        fail_call(cudaErrorNotSupported, "kernel %s (%s:%d): launched from inside a kernel (dynamic parallelism is not emulated)",
                  d.name, d.file, d.line);
        return;
    }
    std::lock_guard<std::mutex> lk(g_launch_mu);
    tls_in_launch = true;
    struct Leave {
        ~Leave() { tls_in_launch = false; }
    } leave;
    read_env();
    g_stats.launches++;
    if (!valid_config(d)) {
        fail_call(cudaErrorInvalidConfiguration,
                  "kernel %s (%s:%d): invalid configuration: grid (%u,%u,%u), block (%u,%u,%u) "
                  "(block: at most 1024 threads, (1024,1024,64); grid: (2^31-1,65535,65535); no zero)",
                  d.name, d.file, d.line, d.grid.x, d.grid.y, d.grid.z, d.block.x, d.block.y, d.block.z);
        return;
    }
    int limit = kSmemDefault;
    auto it = g_func_smem.find(d.func);
    if (it != g_func_smem.end()) limit = it->second;
    if (d.smem > (size_t)limit) {
        fail_call(cudaErrorInvalidValue,
                  "kernel %s (%s:%d): %zu bytes of dynamic shared memory exceed the kernel's limit of %d "
                  "(raise it with cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, "
                  "bytes), at most %d)",
                  d.name, d.file, d.line, d.smem, limit, kSmemOptin);
        return;
    }
    S.d = &d;
    S.n = d.block.x * d.block.y * d.block.z;
    S.thr.assign(S.n, Thr());
    S.q.assign(S.n, nullptr);
    S.tmp.reserve(S.n);
    S.failed = false;
    S.what.clear();
    S.dying = nullptr;
    S.order = g_order;
    S.rng = g_seed * 0x9e3779b97f4a7c15ull + g_stats.launches;
    /* Dynamic shared memory: exactly the launch's size (AddressSanitizer sees
     * overflows), 0xff at every block start. */
    char *smem = (char *)malloc(d.smem ? d.smem : 1);
    if (!smem) {
        fail_call(cudaErrorMemoryAllocation, "kernel %s: cannot allocate %zu bytes of shared memory", d.name,
                  d.smem);
        return;
    }
    fill_shared();
    blk.gdim = d.grid;
    blk.bdim = d.block;
    blk.dyn_smem = smem;
    uint64_t nb = (uint64_t)d.grid.x * d.grid.y * d.grid.z;
    /* block order: forward, reverse, or a random affine permutation */
    uint64_t step = 1, start = 0;
    if (S.order == CUDAEMU_ORDER_SHUFFLE && nb > 1) {
        start = rnd() % nb;
        do step = rnd() % nb; while (step == 0 || std::gcd(step, nb) != 1);
    }
    /* every allocation open while the kernel runs, closed again on the way out */
    struct Open {
        Open() { set_all(true); }
        ~Open() { set_all(false); }
    } open_mem;
    for (uint64_t k = 0; k < nb && !S.failed; k++) {
        uint64_t b = S.order == CUDAEMU_ORDER_REVERSE ? nb - 1 - k
                   : S.order == CUDAEMU_ORDER_SHUFFLE ? (uint64_t)((start + (unsigned __int128)k * step) % nb)
                                                      : k;
        blk.bid = uint3{(unsigned)(b % d.grid.x), (unsigned)(b / d.grid.x % d.grid.y),
                        (unsigned)(b / ((uint64_t)d.grid.x * d.grid.y))};
        if (d.smem) memset(smem, 0xff, d.smem);
        g_stats.blocks++;
        run_block();
    }
    cur = nullptr;
    blk.dyn_smem = nullptr;
    free(smem);
    if (S.failed) fail_call(cudaErrorLaunchFailure, "kernel %s (%s:%d): %s", d.name, d.file, d.line, S.what.c_str());
    S.d = nullptr;
}

} // namespace cudaemu

extern "C" {

cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value) {
    if (!func) return fail_call(cudaErrorInvalidDeviceFunction, "cudaFuncSetAttribute(NULL)");
    if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) {
        if (value < -1 || value > 100)
            return fail_call(cudaErrorInvalidValue, "cudaFuncSetAttribute: carveout %d not in -1..100", value);
        return cudaSuccess;
    }
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
        return fail_call(cudaErrorInvalidValue, "cudaFuncSetAttribute: attribute %d not emulated", (int)attr);
    if (value < 0 || value > kSmemOptin)
        return fail_call(cudaErrorInvalidValue,
                         "cudaFuncSetAttribute(MaxDynamicSharedMemorySize, %d): at most %d bytes", value,
                         kSmemOptin);
    std::lock_guard<std::mutex> lk(g_launch_mu);
    g_func_smem[func] = value;
    return cudaSuccess;
}

void cudaemu_set_order(int order, uint64_t seed) {
    std::lock_guard<std::mutex> lk(g_launch_mu);
    read_env();
    g_order = order == CUDAEMU_ORDER_REVERSE ? CUDAEMU_ORDER_REVERSE
            : order == CUDAEMU_ORDER_SHUFFLE ? CUDAEMU_ORDER_SHUFFLE
                                             : CUDAEMU_ORDER_FORWARD;
    g_seed = seed;
    g_order_set = true;
}

int cudaemu_get_order(uint64_t *seed) {
    std::lock_guard<std::mutex> lk(g_launch_mu);
    read_env();
    if (seed) *seed = g_seed;
    return g_order;
}

void cudaemu_get_stats(cudaemu_stats *out) {
    std::lock_guard<std::mutex> lk(g_launch_mu);
    if (!out) return;
    *out = g_stats;
    std::lock_guard<std::mutex> lk2(g_mem_mu);
    out->mprotects = g_mprotects;
}

int cudaemu_protecting(void) { return protecting() ? 1 : 0; }

} // extern "C"

/* ====================================================================== cuBLAS / cuBLASLt */
struct cudaemu_blas_handle {
    cudaStream_t stream;
    int math;
};
struct cudaemu_lt_handle {
    int unused;
};
struct cudaemu_lt_desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    int32_t transa, transb, epilogue, pointer_mode;
};
struct cudaemu_lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
    int32_t order, batch;
    int64_t stride;
};
struct cudaemu_lt_pref {
    uint64_t max_ws;
};

namespace {

__attribute__((format(printf, 2, 3))) cublasStatus_t blas_fail(cublasStatus_t st, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    std::string s = vfmt(f, ap);
    va_end(ap);
    note_msg(s);
    return st;
}

const char *op_str(int32_t op) { return op == CUBLAS_OP_N ? "N" : op == CUBLAS_OP_T ? "T" : "C"; }
const char *type_str(cudaDataType_t t) {
    switch (t) {
    case CUDA_R_32F: return "CUDA_R_32F";
    case CUDA_R_16BF: return "CUDA_R_16BF";
    case CUDA_R_16F: return "CUDA_R_16F";
    case CUDA_R_64F: return "CUDA_R_64F";
    default: return "an unsupported type";
    }
}
size_t type_size(cudaDataType_t t) { return t == CUDA_R_16BF || t == CUDA_R_16F ? 2 : t == CUDA_R_64F ? 8 : 4; }

/* elements spanned by one matrix of a layout */
uint64_t span(const cudaemu_lt_layout *l) {
    return l->rows && l->cols ? (uint64_t)l->ld * (l->cols - 1) + l->rows : 0;
}

/* Checks that the descriptors describe D = op(A) op(B) + C (column major). */
cublasStatus_t lt_check(const char *fn, const cudaemu_lt_desc *d, const cudaemu_lt_layout *A,
                        const cudaemu_lt_layout *B, const cudaemu_lt_layout *C, const cudaemu_lt_layout *D,
                        uint64_t *m, uint64_t *n, uint64_t *k) {
    if (!d || !A || !B || !C || !D) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: NULL descriptor", fn);
    if (d->compute != CUBLAS_COMPUTE_32F && d->compute != CUBLAS_COMPUTE_32F_PEDANTIC &&
        d->compute != CUBLAS_COMPUTE_32F_FAST_TF32 && d->compute != CUBLAS_COMPUTE_32F_FAST_16BF)
        return blas_fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: compute type %d not emulated (CUBLAS_COMPUTE_32F only)",
                         fn, (int)d->compute);
    if (d->scale != CUDA_R_32F)
        return blas_fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: scale type %s not emulated (CUDA_R_32F)", fn,
                         type_str(d->scale));
    if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT)
        return blas_fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: epilogue %d not emulated", fn, (int)d->epilogue);
    if (A->type != B->type || (A->type != CUDA_R_16BF && A->type != CUDA_R_32F))
        return blas_fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: A is %s and B is %s (emulated: both CUDA_R_16BF or both CUDA_R_32F)",
                         fn, type_str(A->type), type_str(B->type));
    if (C->type != CUDA_R_32F || D->type != CUDA_R_32F)
        return blas_fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: C is %s and D is %s (emulated: CUDA_R_32F)", fn,
                         type_str(C->type), type_str(D->type));
    const cudaemu_lt_layout *all[4] = {A, B, C, D};
    const char *names = "ABCD";
    for (int i = 0; i < 4; i++) {
        const cudaemu_lt_layout *l = all[i];
        if (l->order != CUBLASLT_ORDER_COL)
            return blas_fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: %c is not column major (emulated: CUBLASLT_ORDER_COL)",
                             fn, names[i]);
        if (l->ld < 1 || (uint64_t)l->ld < l->rows)
            return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: %c is %llux%llu with ld %lld < rows", fn, names[i],
                             (unsigned long long)l->rows, (unsigned long long)l->cols, (long long)l->ld);
        if (l->rows > INT32_MAX || l->cols > INT32_MAX || l->ld > INT32_MAX)
            return blas_fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: %c is too large for the emulator", fn, names[i]);
        if (l->batch != D->batch)
            return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: batch count of %c (%d) differs from D's (%d)", fn,
                             names[i], l->batch, D->batch);
    }
    *m = D->rows;
    *n = D->cols;
    uint64_t am = d->transa == CUBLAS_OP_N ? A->rows : A->cols;
    *k = d->transa == CUBLAS_OP_N ? A->cols : A->rows;
    if (am != *m)
        return blas_fail(CUBLAS_STATUS_INVALID_VALUE,
                         "%s: A is %llux%llu (ld %lld) with transa=%s, so op(A) is %llux%llu, but D is %llux%llu "
                         "(op(A) must be m x k with m = D's rows)",
                         fn, (unsigned long long)A->rows, (unsigned long long)A->cols, (long long)A->ld,
                         op_str(d->transa), (unsigned long long)am, (unsigned long long)*k,
                         (unsigned long long)*m, (unsigned long long)*n);
    uint64_t bk = d->transb == CUBLAS_OP_N ? B->rows : B->cols;
    uint64_t bn = d->transb == CUBLAS_OP_N ? B->cols : B->rows;
    if (bk != *k || bn != *n)
        return blas_fail(CUBLAS_STATUS_INVALID_VALUE,
                         "%s: B is %llux%llu (ld %lld) with transb=%s, so op(B) is %llux%llu, but it must be "
                         "k x n = %llux%llu (k from A %llux%llu with transa=%s, n from D %llux%llu)",
                         fn, (unsigned long long)B->rows, (unsigned long long)B->cols, (long long)B->ld,
                         op_str(d->transb), (unsigned long long)bk, (unsigned long long)bn,
                         (unsigned long long)*k, (unsigned long long)*n, (unsigned long long)A->rows,
                         (unsigned long long)A->cols, op_str(d->transa), (unsigned long long)*m,
                         (unsigned long long)*n);
    if (C->rows != D->rows || C->cols != D->cols)
        return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: C is %llux%llu but D is %llux%llu", fn,
                         (unsigned long long)C->rows, (unsigned long long)C->cols, (unsigned long long)D->rows,
                         (unsigned long long)D->cols);
    return CUBLAS_STATUS_SUCCESS;
}

bool check_ptr(const char *fn, char name, const void *p, const cudaemu_lt_layout *l) {
    uint64_t elems = span(l) + (l->batch > 1 ? (uint64_t)l->stride * (uint64_t)(l->batch - 1) : 0);
    if (!elems) return true;
    if (dev_range(p, elems * type_size(l->type))) return true;
    blas_fail(CUBLAS_STATUS_INVALID_VALUE,
              "%s: %c = %p spans %llu elements (%llux%llu, ld %lld) that are not inside one cudaMalloc allocation",
              fn, name, p, (unsigned long long)elems, (unsigned long long)l->rows, (unsigned long long)l->cols,
              (long long)l->ld);
    return false;
}

/* A matrix as floats: fp32 data itself, bf16 widened exactly into buf. */
const float *as_float(const void *p, const cudaemu_lt_layout *l, std::vector<float> &buf) {
    if (l->type == CUDA_R_32F) return (const float *)p;
    uint64_t n = span(l);
    buf.resize(n ? n : 1);
    const uint16_t *h = (const uint16_t *)p;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)h[i] << 16;
        memcpy(&buf[i], &u, 4);
    }
    return buf.data();
}

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, const float *C, int ldc, float *D, int ldd) {
    if (!m || !n) return;
    /* D starts as C (or zero: with beta == 0, C is not read, as in cuBLAS) */
    for (int j = 0; j < n; j++) {
        float *dc = D + (size_t)j * ldd;
        if (beta == 0.0f) memset(dc, 0, (size_t)m * sizeof(float));
        else if (C != D) memmove(dc, C + (size_t)j * ldc, (size_t)m * sizeof(float));
    }
    if (k == 0 || alpha == 0.0f) {
        if (beta != 0.0f && beta != 1.0f)
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++) D[(size_t)j * ldd + i] *= beta;
        return;
    }
    cblas_sgemm(CblasColMajor, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta == 0.0f ? 0.0f : beta, D, ldd);
}

} // namespace

extern "C" {

const char *cublasGetStatusName(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "error detected trying to check the license";
    }
    return "unknown error";
}

cublasStatus_t cublasCreate(cublasHandle_t *h) {
    if (!h) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasCreate(NULL)");
    *h = new cudaemu_blas_handle{nullptr, CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    if (!h) return blas_fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasDestroy(NULL)");
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    if (!h) return blas_fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetStream(NULL)");
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
    if (!h) return blas_fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetMathMode(NULL)");
    h->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                           const float *beta, float *C, int ldc) {
    const char *fn = "cublasSgemm";
    if (!h) return blas_fail(CUBLAS_STATUS_NOT_INITIALIZED, "%s: NULL handle", fn);
    if (m < 0 || n < 0 || k < 0 || !alpha || !beta)
        return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: m=%d n=%d k=%d or NULL alpha/beta", fn, m, n, k);
    int ar = transa == CUBLAS_OP_N ? m : k, ac = transa == CUBLAS_OP_N ? k : m;
    int br = transb == CUBLAS_OP_N ? k : n, bc = transb == CUBLAS_OP_N ? n : k;
    if (lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1))
        return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: lda=%d ldb=%d ldc=%d too small for m=%d n=%d k=%d trans=%s%s",
                         fn, lda, ldb, ldc, m, n, k, op_str(transa), op_str(transb));
    cudaemu_lt_layout la{CUDA_R_32F, (uint64_t)ar, (uint64_t)ac, lda, 0, 1, 0};
    cudaemu_lt_layout lb{CUDA_R_32F, (uint64_t)br, (uint64_t)bc, ldb, 0, 1, 0};
    cudaemu_lt_layout lc{CUDA_R_32F, (uint64_t)m, (uint64_t)n, ldc, 0, 1, 0};
    if ((k && m && !check_ptr(fn, 'A', A, &la)) || (k && n && !check_ptr(fn, 'B', B, &lb)) ||
        !check_ptr(fn, 'C', C, &lc))
        return CUBLAS_STATUS_INVALID_VALUE;
    DevAccess acc;
    for (const void *q : {(const void *)A, (const void *)B, (const void *)C, (const void *)alpha, (const void *)beta})
        acc.open(q);
    gemm(transa == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, transb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m,
         n, k, *alpha, A, lda, B, ldb, *beta, C, ldc, C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    if (!h) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtCreate(NULL)");
    *h = new cudaemu_lt_handle{0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    if (!h) return blas_fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasLtDestroy(NULL)");
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
    if (!d) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescCreate(NULL)");
    *d = new cudaemu_lt_desc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, 0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size) {
    const char *fn = "cublasLtMatmulDescSetAttribute";
    if (!d || !buf) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: NULL argument", fn);
    int32_t *dst = nullptr;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: dst = &d->transa; break;
    case CUBLASLT_MATMUL_DESC_TRANSB: dst = &d->transb; break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: dst = &d->epilogue; break;
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: dst = &d->pointer_mode; break;
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: dst = (int32_t *)&d->compute; break;
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: dst = (int32_t *)&d->scale; break;
    default: return blas_fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: attribute %d not emulated", fn, (int)attr);
    }
    if (size != sizeof(int32_t))
        return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: attribute %d takes %zu bytes, got %zu", fn, (int)attr,
                         sizeof(int32_t), size);
    int32_t v;
    memcpy(&v, buf, sizeof v);
    if ((attr == CUBLASLT_MATMUL_DESC_TRANSA || attr == CUBLASLT_MATMUL_DESC_TRANSB) &&
        v != CUBLAS_OP_N && v != CUBLAS_OP_T && v != CUBLAS_OP_C)
        return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: operation %d", fn, (int)v);
    *dst = v;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    if (!l) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatrixLayoutCreate(NULL)");
    *l = new cudaemu_lt_layout{type, rows, cols, ld, CUBLASLT_ORDER_COL, 1, 0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                const void *buf, size_t size) {
    const char *fn = "cublasLtMatrixLayoutSetAttribute";
    if (!l || !buf) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: NULL argument", fn);
    size_t want = attr == CUBLASLT_MATRIX_LAYOUT_ROWS || attr == CUBLASLT_MATRIX_LAYOUT_COLS ? 8
                : attr == CUBLASLT_MATRIX_LAYOUT_LD || attr == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET ? 8
                                                                                                            : 4;
    if (size != want)
        return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: attribute %d takes %zu bytes, got %zu", fn, (int)attr,
                         want, size);
    switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: memcpy(&l->type, buf, 4); break;
    case CUBLASLT_MATRIX_LAYOUT_ORDER: memcpy(&l->order, buf, 4); break;
    case CUBLASLT_MATRIX_LAYOUT_ROWS: memcpy(&l->rows, buf, 8); break;
    case CUBLASLT_MATRIX_LAYOUT_COLS: memcpy(&l->cols, buf, 8); break;
    case CUBLASLT_MATRIX_LAYOUT_LD: memcpy(&l->ld, buf, 8); break;
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: memcpy(&l->batch, buf, 4); break;
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: memcpy(&l->stride, buf, 8); break;
    default: return blas_fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: attribute %d not emulated", fn, (int)attr);
    }
    if (l->batch < 1) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: batch count %d", fn, l->batch);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    if (!p) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulPreferenceCreate(NULL)");
    *p = new cudaemu_lt_pref{0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size) {
    const char *fn = "cublasLtMatmulPreferenceSetAttribute";
    if (!p || !buf) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: NULL argument", fn);
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        if (size != sizeof(uint64_t))
            return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: MAX_WORKSPACE_BYTES takes 8 bytes (uint64_t), got %zu",
                             fn, size);
        memcpy(&p->max_ws, buf, 8);
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr == CUBLASLT_MATMUL_PREF_SEARCH_MODE) {
        if (size != sizeof(uint32_t))
            return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: SEARCH_MODE takes 4 bytes, got %zu", fn, size);
        return CUBLAS_STATUS_SUCCESS;
    }
    return blas_fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: attribute %d not emulated", fn, (int)attr);
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int *returned) {
    const char *fn = "cublasLtMatmulAlgoGetHeuristic";
    if (returned) *returned = 0;
    if (!h) return blas_fail(CUBLAS_STATUS_NOT_INITIALIZED, "%s: NULL handle", fn);
    if (!pref || !results || !returned || requested < 1)
        return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: NULL preference/results/count or requested < 1", fn);
    uint64_t m, n, k;
    cublasStatus_t st = lt_check(fn, desc, Adesc, Bdesc, Cdesc, Ddesc, &m, &n, &k);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = 0x63756461656d75ull; /* "cudaemu" */
    results[0].workspaceSize = 0;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc,
                              const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
    const char *fn = "cublasLtMatmul";
    if (!h) return blas_fail(CUBLAS_STATUS_NOT_INITIALIZED, "%s: NULL handle", fn);
    if (!alpha || !beta) return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: NULL alpha or beta", fn);
    uint64_t m, n, k;
    cublasStatus_t st = lt_check(fn, desc, Adesc, Bdesc, Cdesc, Ddesc, &m, &n, &k);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    /* alpha and beta may be device memory (CUBLASLT_POINTER_MODE_DEVICE) */
    DevAccess acc;
    for (const void *q : {A, B, C, (const void *)D, alpha, beta}) acc.open(q);
    float a, b;
    memcpy(&a, alpha, 4);
    memcpy(&b, beta, 4);
    if (C == D && (Cdesc->ld != Ddesc->ld || Cdesc->stride != Ddesc->stride))
        return blas_fail(CUBLAS_STATUS_INVALID_VALUE, "%s: in place (C == D) with different layouts (ld %lld vs %lld)",
                         fn, (long long)Cdesc->ld, (long long)Ddesc->ld);
    if (!check_ptr(fn, 'D', D, Ddesc)) return CUBLAS_STATUS_INVALID_VALUE;
    if (k && m && !check_ptr(fn, 'A', A, Adesc)) return CUBLAS_STATUS_INVALID_VALUE;
    if (k && n && !check_ptr(fn, 'B', B, Bdesc)) return CUBLAS_STATUS_INVALID_VALUE;
    if (b != 0.0f && !check_ptr(fn, 'C', C, Cdesc)) return CUBLAS_STATUS_INVALID_VALUE;
    std::vector<float> abuf, bbuf;
    for (int i = 0; i < Ddesc->batch; i++) {
        const char *Ai = (const char *)A + (size_t)i * Adesc->stride * type_size(Adesc->type);
        const char *Bi = (const char *)B + (size_t)i * Bdesc->stride * type_size(Bdesc->type);
        const float *Ci = (const float *)C + (size_t)i * Cdesc->stride;
        float *Di = (float *)D + (size_t)i * Ddesc->stride;
        const float *Af = k && m ? as_float(Ai, Adesc, abuf) : nullptr;
        const float *Bf = k && n ? as_float(Bi, Bdesc, bbuf) : nullptr;
        gemm(desc->transa == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
             desc->transb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, (int)m, (int)n, (int)k, a, Af,
             (int)Adesc->ld, Bf, (int)Bdesc->ld, b, b != 0.0f ? Ci : Di, (int)Cdesc->ld, Di, (int)Ddesc->ld);
    }
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
