/* backend.c - choosing a backend, and the CPU one. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>

#include "kernels.h"
#include "cuda_api.h"

/* ------------------------------------------------------------------- CPU */

void kn_cpu_f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++) dst[i] = ts_f32_to_bf16(src[i]);
}

void kn_cpu_bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++) dst[i] = ts_bf16_to_f32(src[i]);
}

static void *cpu_alloc(const kn_backend *b, size_t bytes) {
    (void)b;
    return malloc(bytes ? bytes : 1);
}
static void cpu_free(const kn_backend *b, void *p) {
    (void)b;
    free(p);
}
static int cpu_copy(const kn_backend *b, void *dst, const void *src, size_t bytes) {
    (void)b;
    if (bytes) memmove(dst, src, bytes);
    return TS_OK;
}
static int cpu_sync(const kn_backend *b) {
    (void)b;
    return TS_OK;
}
static int cpu_f32_to_bf16(const kn_backend *b, uint16_t *dst, const float *src, size_t n) {
    (void)b;
    kn_cpu_f32_to_bf16(dst, src, n);
    return TS_OK;
}
static int cpu_bf16_to_f32(const kn_backend *b, float *dst, const uint16_t *src, size_t n) {
    (void)b;
    kn_cpu_bf16_to_f32(dst, src, n);
    return TS_OK;
}

/* Model ops: thin wrappers over the CPU twins (cpu_*.c). */
static int cpu_gemm(const kn_backend *b, int ta, int tb, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    (void)b;
    kn_cpu_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return TS_OK;
}
static int cpu_fill(const kn_backend *b, float *x, float v, size_t n) {
    (void)b;
    kn_cpu_fill(x, v, n);
    return TS_OK;
}
static int cpu_fcopy(const kn_backend *b, float *dst, const float *src, size_t n) {
    (void)b;
    kn_cpu_copy(dst, src, n);
    return TS_OK;
}
static int cpu_embed_fwd(const kn_backend *b, float *out, const float *wte, const int32_t *tok,
                         int N, int C) {
    (void)b;
    kn_cpu_embed_fwd(out, wte, tok, N, C);
    return TS_OK;
}
static int cpu_embed_bwd(const kn_backend *b, float *dwte, const float *dout, const int32_t *tok,
                         int N, int C) {
    (void)b;
    kn_cpu_embed_bwd(dwte, dout, tok, N, C);
    return TS_OK;
}
static int cpu_rmsnorm_fwd(const kn_backend *b, float *out, float *rstd, const float *x,
                           const float *w, int N, int C, float eps) {
    (void)b;
    kn_cpu_rmsnorm_fwd(out, rstd, x, w, N, C, eps);
    return TS_OK;
}
static int cpu_rmsnorm_bwd(const kn_backend *b, float *dx, float *dw, const float *dout,
                           const float *x, const float *w, const float *rstd, int N, int C) {
    (void)b;
    kn_cpu_rmsnorm_bwd(dx, dw, dout, x, w, rstd, N, C);
    return TS_OK;
}
static int cpu_rope_fwd(const kn_backend *b, float *x, int ld, const float *c, const float *s,
                        int B, int T, int nh, int hd) {
    (void)b;
    kn_cpu_rope_fwd(x, ld, c, s, B, T, nh, hd);
    return TS_OK;
}
static int cpu_rope_bwd(const kn_backend *b, float *x, int ld, const float *c, const float *s,
                        int B, int T, int nh, int hd) {
    (void)b;
    kn_cpu_rope_bwd(x, ld, c, s, B, T, nh, hd);
    return TS_OK;
}
static int cpu_attn_fwd(const kn_backend *b, float *out, float *lse, float *scratch,
                        const float *qkv, int B, int T, int nh, int nkv, int hd) {
    (void)b;
    kn_cpu_attn_fwd(out, lse, scratch, qkv, B, T, nh, nkv, hd);
    return TS_OK;
}
static int cpu_attn_bwd(const kn_backend *b, float *dqkv, float *scratch, const float *dout,
                        const float *qkv, const float *out, const float *lse, int B, int T, int nh,
                        int nkv, int hd) {
    (void)b;
    kn_cpu_attn_bwd(dqkv, scratch, dout, qkv, out, lse, B, T, nh, nkv, hd);
    return TS_OK;
}
static int cpu_swiglu_fwd(const kn_backend *b, float *h, const float *gu, int N, int F) {
    (void)b;
    kn_cpu_swiglu_fwd(h, gu, N, F);
    return TS_OK;
}
static int cpu_swiglu_bwd(const kn_backend *b, float *dgu, const float *dh, const float *gu, int N,
                          int F) {
    (void)b;
    kn_cpu_swiglu_bwd(dgu, dh, gu, N, F);
    return TS_OK;
}
static int cpu_xent_fwd(const kn_backend *b, float *loss, const float *logits,
                        const int32_t *targets, int N, int V) {
    (void)b;
    kn_cpu_xent_fwd(loss, logits, targets, N, V);
    return TS_OK;
}
static int cpu_xent_fwd_bwd(const kn_backend *b, float *loss, float *logits,
                            const int32_t *targets, int N, int V, float dscale) {
    (void)b;
    kn_cpu_xent_fwd_bwd(loss, logits, targets, N, V, dscale);
    return TS_OK;
}
static int cpu_sumsq(const kn_backend *b, const float *x, size_t n, double *out) {
    (void)b;
    *out = kn_cpu_sumsq(x, n);
    return TS_OK;
}
static int cpu_scale(const kn_backend *b, float *x, float s, size_t n) {
    (void)b;
    kn_cpu_scale(x, s, n);
    return TS_OK;
}
void kn_cpu_sub(float *out, const float *x, const float *y, size_t n) {
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++) out[i] = x[i] - y[i];
}
static int cpu_sub(const kn_backend *b, float *out, const float *x, const float *y, size_t n) {
    (void)b;
    kn_cpu_sub(out, x, y, n);
    return TS_OK;
}
static int cpu_adamw(const kn_backend *b, float *p, const float *g, float *m, float *v, size_t n,
                     const kn_adamw_args *a) {
    (void)b;
    kn_cpu_adamw(p, g, m, v, n, a);
    return TS_OK;
}

static const kn_backend cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .sync = cpu_sync,
    .f32_to_bf16 = cpu_f32_to_bf16,
    .bf16_to_f32 = cpu_bf16_to_f32,
    .gemm = cpu_gemm,
    .fill = cpu_fill,
    .copy = cpu_fcopy,
    .embed_fwd = cpu_embed_fwd,
    .embed_bwd = cpu_embed_bwd,
    .rmsnorm_fwd = cpu_rmsnorm_fwd,
    .rmsnorm_bwd = cpu_rmsnorm_bwd,
    .rope_fwd = cpu_rope_fwd,
    .rope_bwd = cpu_rope_bwd,
    .attn_fwd = cpu_attn_fwd,
    .attn_bwd = cpu_attn_bwd,
    .swiglu_fwd = cpu_swiglu_fwd,
    .swiglu_bwd = cpu_swiglu_bwd,
    .xent_fwd = cpu_xent_fwd,
    .xent_fwd_bwd = cpu_xent_fwd_bwd,
    .sumsq = cpu_sumsq,
    .scale = cpu_scale,
    .sub = cpu_sub,
    .adamw = cpu_adamw,
};

int kn_backend_has_model_ops(const kn_backend *b, ts_err *e) {
    static const struct {
        size_t off;
        const char *name;
    } ops[] = {
#define OP(x) {offsetof(kn_backend, x), #x}
        OP(gemm), OP(fill), OP(copy), OP(embed_fwd), OP(embed_bwd), OP(rmsnorm_fwd),
        OP(rmsnorm_bwd), OP(rope_fwd), OP(rope_bwd), OP(attn_fwd), OP(attn_bwd), OP(swiglu_fwd),
        OP(swiglu_bwd), OP(xent_fwd), OP(xent_fwd_bwd), OP(sumsq), OP(scale), OP(sub), OP(adamw),
#undef OP
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        void *fp;
        memcpy(&fp, (const char *)b + ops[i].off, sizeof fp);
        if (!fp)
            return ts_fail(e, TS_EUNSUPPORTED,
                           "backend %s does not implement the model op '%s' yet; run the model "
                           "on the CPU backend (--device cpu)",
                           b->name, ops[i].name);
    }
    return TS_OK;
}

const kn_backend *kn_cpu(void) { return &cpu_backend; }

/* ------------------------------------------------------------------ CUDA
 *
 * The CUDA code lives in libtessera_cuda.so next to the binaries
 * (build/lib/, found through /proc/self/exe, or $TESSERA_CUDA_LIB) and is
 * loaded on first use.  A binary with no GPU, no driver or no library just
 * reports why and uses the CPU. */

static const kn_cu_api *cu;
static const char *cu_why;
static pthread_once_t cu_once = PTHREAD_ONCE_INIT;
static char cu_why_buf[512];

static void cu_load(void) {
    char path[4096];
    const char *env = getenv("TESSERA_CUDA_LIB");
    if (env && *env) {
        /* an explicit library (the device emulator's in the tests) is
         * honoured by every build, with or without nvcc */
        snprintf(path, sizeof path, "%s", env);
    } else {
#ifdef TS_HAVE_CUDA
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 64);
        if (n <= 0) {
            cu_why = "cannot locate the running binary";
            return;
        }
        path[n] = 0;
        char *slash = strrchr(path, '/');
        if (slash) *slash = 0;
        /* build/bin/tessera -> build/lib; build/tests/x -> build/lib */
        slash = strrchr(path, '/');
        if (slash) *slash = 0;
        strcat(path, "/lib/libtessera_cuda.so");
#else
        cu_why = "this build has no CUDA support: built with CUDA=0 or without nvcc";
        return;
#endif
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(cu_why_buf, sizeof cu_why_buf, "cannot load %s: %s", path, dlerror());
        cu_why = cu_why_buf;
        return;
    }
    const kn_cu_api *(*get)(void) = (const kn_cu_api *(*)(void))dlsym(h, "kn_cu_get_api");
    const kn_cu_api *api = get ? get() : NULL;
    if (!api || api->version != KN_CU_API_VERSION) {
        snprintf(cu_why_buf, sizeof cu_why_buf, "%s is not a matching Tessera CUDA library", path);
        cu_why = cu_why_buf;
        dlclose(h);
        return;
    }
    cu = api;
}

int kn_cuda_built(void) {
#ifdef TS_HAVE_CUDA
    return 1;
#else
    return 0;
#endif
}

int kn_cuda_devices(kn_device_info *out, int max, const char **why) {
    pthread_once(&cu_once, cu_load);
    if (!cu) {
        if (why) *why = cu_why;
        return 0;
    }
    return cu->devices(out, max, why);
}

#define MAX_GPUS 16
static kn_backend gpu_backends[MAX_GPUS];
static char gpu_names[MAX_GPUS][16];

static void *gpu_alloc(const kn_backend *b, size_t bytes) { return cu->alloc(b->device, bytes); }
static void gpu_free(const kn_backend *b, void *p) { cu->free(b->device, p); }
static int gpu_upload(const kn_backend *b, void *dst, const void *src, size_t bytes) {
    return cu->upload(b->device, dst, src, bytes);
}
static int gpu_download(const kn_backend *b, void *dst, const void *src, size_t bytes) {
    return cu->download(b->device, dst, src, bytes);
}
static int gpu_sync(const kn_backend *b) { return cu->sync(b->device); }
static int gpu_reserve(const kn_backend *b, size_t bytes) { return cu->gemm_reserve(b->device, bytes); }
static int gpu_f32_to_bf16(const kn_backend *b, uint16_t *dst, const float *src, size_t n) {
    return cu->f32_to_bf16(b->device, dst, src, n);
}
static int gpu_bf16_to_f32(const kn_backend *b, float *dst, const uint16_t *src, size_t n) {
    return cu->bf16_to_f32(b->device, dst, src, n);
}

/* The model ops: each forwards to the library's op on this backend's device. */
static int gpu_gemm(const kn_backend *b, int ta, int tb, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    return cu->gemm(b->device, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
static int gpu_fill(const kn_backend *b, float *x, float v, size_t n) {
    return cu->fill(b->device, x, v, n);
}
static int gpu_fcopy(const kn_backend *b, float *dst, const float *src, size_t n) {
    return cu->copy(b->device, dst, src, n);
}
static int gpu_embed_fwd(const kn_backend *b, float *out, const float *wte, const int32_t *tok,
                         int N, int C) {
    return cu->embed_fwd(b->device, out, wte, tok, N, C);
}
static int gpu_embed_bwd(const kn_backend *b, float *dwte, const float *dout, const int32_t *tok,
                         int N, int C) {
    return cu->embed_bwd(b->device, dwte, dout, tok, N, C);
}
static int gpu_rmsnorm_fwd(const kn_backend *b, float *out, float *rstd, const float *x,
                           const float *w, int N, int C, float eps) {
    return cu->rmsnorm_fwd(b->device, out, rstd, x, w, N, C, eps);
}
static int gpu_rmsnorm_bwd(const kn_backend *b, float *dx, float *dw, const float *dout,
                           const float *x, const float *w, const float *rstd, int N, int C) {
    return cu->rmsnorm_bwd(b->device, dx, dw, dout, x, w, rstd, N, C);
}
static int gpu_rope_fwd(const kn_backend *b, float *x, int ld, const float *c, const float *s,
                        int B, int T, int nh, int hd) {
    return cu->rope_fwd(b->device, x, ld, c, s, B, T, nh, hd);
}
static int gpu_rope_bwd(const kn_backend *b, float *x, int ld, const float *c, const float *s,
                        int B, int T, int nh, int hd) {
    return cu->rope_bwd(b->device, x, ld, c, s, B, T, nh, hd);
}
static int gpu_attn_fwd(const kn_backend *b, float *out, float *lse, float *scratch,
                        const float *qkv, int B, int T, int nh, int nkv, int hd) {
    return cu->attn_fwd(b->device, out, lse, scratch, qkv, B, T, nh, nkv, hd);
}
static int gpu_attn_bwd(const kn_backend *b, float *dqkv, float *scratch, const float *dout,
                        const float *qkv, const float *out, const float *lse, int B, int T, int nh,
                        int nkv, int hd) {
    return cu->attn_bwd(b->device, dqkv, scratch, dout, qkv, out, lse, B, T, nh, nkv, hd);
}
static int gpu_swiglu_fwd(const kn_backend *b, float *h, const float *gu, int N, int F) {
    return cu->swiglu_fwd(b->device, h, gu, N, F);
}
static int gpu_swiglu_bwd(const kn_backend *b, float *dgu, const float *dh, const float *gu, int N,
                          int F) {
    return cu->swiglu_bwd(b->device, dgu, dh, gu, N, F);
}
static int gpu_xent_fwd(const kn_backend *b, float *loss, const float *logits,
                        const int32_t *targets, int N, int V) {
    return cu->xent_fwd(b->device, loss, logits, targets, N, V);
}
static int gpu_xent_fwd_bwd(const kn_backend *b, float *loss, float *logits,
                            const int32_t *targets, int N, int V, float dscale) {
    return cu->xent_fwd_bwd(b->device, loss, logits, targets, N, V, dscale);
}
static int gpu_sumsq(const kn_backend *b, const float *x, size_t n, double *out) {
    return cu->sumsq(b->device, x, n, out);
}
static int gpu_scale(const kn_backend *b, float *x, float s, size_t n) {
    return cu->scale(b->device, x, s, n);
}
static int gpu_sub(const kn_backend *b, float *out, const float *x, const float *y, size_t n) {
    return cu->sub(b->device, out, x, y, n);
}
static int gpu_adamw(const kn_backend *b, float *p, const float *g, float *m, float *v, size_t n,
                     const kn_adamw_args *a) {
    return cu->adamw(b->device, p, g, m, v, n, a);
}

/* codec ops: compression */
static int gpu_spl_comp_scratch(const kn_backend *b, int n, int64_t tiles, int64_t values,
                                int bins, size_t *bytes) {
    return cu->spl_comp_scratch(b->device, n, tiles, values, bins, bytes);
}
static int gpu_spl_comp_run(const kn_backend *b, void *scratch, const int64_t *tab, int n,
                            int64_t tiles, int64_t values, int bins, float beta, float alpha,
                            float range, uint16_t *idx, uint8_t *codes, float *luts, float *shifts,
                            int64_t *bad) {
    return cu->spl_comp_run(b->device, scratch, tab, n, tiles, values, bins, beta, alpha, range, idx,
                            codes, luts, shifts, bad);
}
static int gpu_spl_comp_ef(const kn_backend *b, void *scratch, int n, int64_t tiles, int64_t values,
                           int bins, float beta, float alpha) {
    return cu->spl_comp_ef(b->device, scratch, n, tiles, values, bins, beta, alpha);
}
/* codec ops: aggregation */
static int gpu_agg_tiles(const kn_backend *b, int mode, float *x, float *saved, const uint8_t *idx,
                         const uint8_t *codes, const float *sv, int n, int64_t idx_stride,
                         int64_t code_stride, int vskip, int64_t tile0, int64_t ntl, int64_t cols,
                         int ch, int cw, int64_t ntx, int k, int bins, int per, float alpha,
                         uint64_t *stats) {
    if (!cu->agg_tiles) return TS_EUNSUPPORTED;
    return cu->agg_tiles(b->device, mode, x, saved, idx, codes, sv, n, idx_stride, code_stride, vskip,
                         tile0, ntl, cols, ch, cw, ntx, k, bins, per, alpha, stats);
}

int kn_cuda_emulated(void) {
    pthread_once(&cu_once, cu_load);
    return cu ? cu->emulated : 0;
}

int kn_backend_mem_info(const kn_backend *b, size_t *free_bytes, size_t *total_bytes) {
    if (!b->is_gpu) return TS_EUNSUPPORTED;
    return cu->mem_info(b->device, free_bytes, total_bytes);
}

int kn_backend_open(const char *spec, const kn_backend **out, ts_err *e) {
    *out = NULL;
    if (!spec || !strcmp(spec, "cpu")) {
        *out = &cpu_backend;
        return TS_OK;
    }
    int want = -1;
    int is_auto = !strcmp(spec, "auto");
    if (!strcmp(spec, "cuda") || is_auto) {
        want = 0;
    } else if (!strncmp(spec, "cuda:", 5)) {
        int64_t v;
        if (ts_parse_i64(spec + 5, &v) || v < 0 || v >= MAX_GPUS)
            return ts_fail(e, TS_EINVAL, "device '%s': expected cpu, auto, cuda or cuda:N", spec);
        want = (int)v;
    } else {
        return ts_fail(e, TS_EINVAL, "device '%s': expected cpu, auto, cuda or cuda:N", spec);
    }
    kn_device_info info[MAX_GPUS];
    const char *why = NULL;
    int n = kn_cuda_devices(info, MAX_GPUS, &why);
    if (want >= n) {
        if (is_auto) {
            *out = &cpu_backend;
            return TS_OK;
        }
        if (n == 0) return ts_fail(e, TS_EUNSUPPORTED, "device '%s': no GPU (%s)", spec, why ? why : "none found");
        return ts_fail(e, TS_EINVAL, "device '%s': only %d GPU(s) present", spec, n);
    }
    kn_backend *b = &gpu_backends[want];
    snprintf(gpu_names[want], sizeof gpu_names[want], "cuda:%d", want);
    *b = (kn_backend){
        .name = gpu_names[want],
        .is_gpu = 1,
        .device = want,
        .alloc = gpu_alloc,
        .free = gpu_free,
        .upload = gpu_upload,
        .download = gpu_download,
        .sync = gpu_sync,
        .reserve = gpu_reserve,
        .f32_to_bf16 = gpu_f32_to_bf16,
        .bf16_to_f32 = gpu_bf16_to_f32,
        .gemm = gpu_gemm,
        .fill = gpu_fill,
        .copy = gpu_fcopy,
        .embed_fwd = gpu_embed_fwd,
        .embed_bwd = gpu_embed_bwd,
        .rmsnorm_fwd = gpu_rmsnorm_fwd,
        .rmsnorm_bwd = gpu_rmsnorm_bwd,
        .rope_fwd = gpu_rope_fwd,
        .rope_bwd = gpu_rope_bwd,
        .attn_fwd = gpu_attn_fwd,
        .attn_bwd = gpu_attn_bwd,
        .swiglu_fwd = gpu_swiglu_fwd,
        .swiglu_bwd = gpu_swiglu_bwd,
        .xent_fwd = gpu_xent_fwd,
        .xent_fwd_bwd = gpu_xent_fwd_bwd,
        .sumsq = gpu_sumsq,
        .scale = gpu_scale,
        .sub = gpu_sub,
        .adamw = gpu_adamw,
        /* codec ops: compression */
        .spl_comp_scratch = gpu_spl_comp_scratch,
        .spl_comp_run = gpu_spl_comp_run,
        .spl_comp_ef = gpu_spl_comp_ef,
        /* codec ops: aggregation */
        .agg_tiles = gpu_agg_tiles,
    };
    *out = b;
    return TS_OK;
}
