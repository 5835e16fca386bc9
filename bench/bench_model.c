/* bench_model.c - training throughput of the model: tokens per second of
 * forward + backward + clip + AdamW, and the peak resident memory (on a GPU
 * also the device memory in use at the end, which covers the model's
 * families, the GEMM staging and cuBLASLt's workspace).
 *
 *   build/bench/bench_model [--preset small] [--batch 8] [--seq 256]
 *                           [--steps 5] [--warmup 2] [--threads 2]
 *                           [--device cpu|cuda|cuda:N] [--json]
 *
 * Random tokens, a seeded initialisation; the timed steps follow untimed
 * warm-up steps.  bench/b_model.sh runs this beside the same model in PyTorch
 * (bench/b_model_torch.py) and prints the ratio. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

static long peak_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

int main(int argc, char **argv) {
    const char *preset = "small", *device = "cpu";
    int B = 8, T = 256, steps = 5, warm = 2, threads = 2, json = 0, profile = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!strcmp(a, "--profile")) {
            profile = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_model: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--preset")) preset = v;
        else if (!strcmp(a, "--batch")) B = atoi(v);
        else if (!strcmp(a, "--seq")) T = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--warmup")) warm = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--device")) device = v;
        else {
            fprintf(stderr, "usage: bench_model [--preset P] [--batch B] [--seq T] [--steps N] [--warmup N] "
                            "[--threads N] [--device D] [--json]\n");
            return 2;
        }
    }
    if (B < 1 || T < 1 || steps < 1 || warm < 0 || threads < 1) {
        fprintf(stderr, "bench_model: bad arguments\n");
        return 2;
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    ts_err e = {0};
    model_config cfg;
    model *m = NULL;
    const kn_backend *be = NULL;
    size_t free0 = 0, free1 = 0, total = 0;
    if (ts_init(&e) || kn_backend_open(device, &be, &e) || model_preset(preset, 0, &cfg, &e)) {
        fprintf(stderr, "bench_model: %s\n", e.msg);
        return 1;
    }
    if (be->is_gpu) kn_backend_mem_info(be, &free0, &total);
    if (model_create(&cfg, be, B, T, &m, &e)) {
        fprintf(stderr, "bench_model: %s\n", e.msg);
        return 1;
    }
    model_init(m, 1);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)B * (T + 1));
    uint64_t x = 88172645463325252ull;
    model_adamw h;
    model_adamw_defaults(&h);
    double t0 = 0, loss_sum = 0, best = 1e30;
    for (int s = 0; s < warm + steps; s++) {
        for (int i = 0; i < B * (T + 1); i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            tok[i] = (int32_t)(x % (uint64_t)cfg.vocab_size);
        }
        if (s == warm) t0 = ts_mono();
        double ts = ts_mono();
        float loss;
        double norm;
        if (model_train_step(m, &h, 1e-4, tok, B, T, &loss, &norm, &e) || be->sync(be)) {
            fprintf(stderr, "bench_model: %s\n", e.msg[0] ? e.msg : "device error");
            return 1;
        }
        if (s >= warm) {
            loss_sum += loss;
            double d = ts_mono() - ts;
            best = d < best ? d : best;
        }
        if (profile) fprintf(stderr, "step %d loss %.4f\n", s, loss);
    }
    double dt = ts_mono() - t0;
    double tps = (double)steps * B * T / dt;
    long rss = peak_rss_kb();
    double gpu_mb = 0;
    if (be->is_gpu && kn_backend_mem_info(be, &free1, &total) == TS_OK && free0 >= free1)
        gpu_mb = (double)(free0 - free1) / 1048576.0;
    char desc[256];
    model_config_describe(&cfg, desc, sizeof desc);
    if (json)
        printf("{\"impl\": \"tessera\", \"preset\": \"%s\", \"device\": \"%s\", \"batch\": %d, \"seq\": %d, "
               "\"threads\": %d, \"steps\": %d, \"tokens_per_s\": %.1f, \"best_tokens_per_s\": %.1f, "
               "\"ms_per_step\": %.1f, \"peak_rss_mb\": %.1f, \"gpu_mem_mb\": %.1f, \"params\": %lld, "
               "\"mean_loss\": %.4f}\n",
               preset, be->name, B, T, threads, steps, tps, (double)B * T / best, 1e3 * dt / steps, rss / 1024.0,
               gpu_mb, (long long)model_config_num_params(&cfg), loss_sum / steps);
    else
        printf("tessera %s (%s) on %s: batch %d x seq %d, %d threads: %.0f tokens/s (best step %.0f), %.0f ms/step, "
               "peak RSS %.0f MB, GPU memory %.0f MB\n"
               "reproduce: build/bench/bench_model --preset %s --batch %d --seq %d --steps %d --warmup %d "
               "--threads %d --device %s\n",
               preset, desc, be->name, B, T, threads, tps, (double)B * T / best, 1e3 * dt / steps, rss / 1024.0,
               gpu_mb, preset, B, T, steps, warm, threads, device);
    free(tok);
    model_free(m);
    return 0;
}
