/* bench_yuma.c - one Yuma consensus epoch (yuma/, subtensor spec 143 in its
 * fixed point) on a subnet of N uids with V validators each weighting W
 * miners, bonds carried from the previous epoch. */
#include <stdio.h>
#include <stdlib.h>

#include "common/common.h"
#include "yuma/yuma.h"

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int bench(uint32_t n, uint32_t v, uint32_t per) {
    uint64_t s = 0x9e3779b97f4a7c15ull;
    uint64_t *stake = calloc(n, 8), *lu = calloc(n, 8), *rg = calloc(n, 8);
    bool *permit = calloc(n, 1);
    yuma_row *rows = calloc(n, sizeof *rows);
    yuma_entry *ent = calloc((size_t)v * per, sizeof *ent);
    for (uint32_t i = 0; i < v; i++) {
        stake[i] = 1000000000000ull + rnd(&s) % 1000000000000ull;
        lu[i] = 100;
        permit[i] = true;
        rows[i].e = ent + (size_t)i * per;
        rows[i].n = per;
        uint32_t start = v + (uint32_t)(rnd(&s) % (n - v - per));
        for (uint32_t k = 0; k < per; k++) {
            rows[i].e[k].uid = (uint16_t)(start + k);
            rows[i].e[k].value = (uint16_t)(1 + rnd(&s) % 65535);
        }
    }
    yuma_params p;
    yuma_params_default(&p);
    yuma_input in = {.n = n, .block = 101, .emission = 360000000000ull, .stake = stake, .last_update = lu,
                     .registered = rg, .validator_permit = permit, .weights = rows};
    yuma_output prev = {0}, o;
    ts_err e = {0};
    double best = 1e9;
    for (int rep = 0; rep < 20; rep++) {
        in.bonds = prev.n ? prev.bonds : NULL;
        double t0 = ts_mono();
        if (yuma_epoch(&p, &in, &o, &e)) {
            fprintf(stderr, "bench_yuma: %s\n", e.msg);
            return 1;
        }
        double t = ts_mono() - t0;
        if (rep > 0 && t < best) best = t; /* from the second epoch on: with bonds */
        yuma_output_free(&prev);
        prev = o;
    }
    printf("yuma epoch: %u uids, %u validators x %u weights, with bonds: %.3f ms (best of 19)\n", n, v, per,
           best * 1e3);
    yuma_output_free(&prev);
    free(stake);
    free(lu);
    free(rg);
    free(permit);
    free(rows);
    free(ent);
    return 0;
}

int main(void) {
    ts_err e = {0};
    if (ts_init(&e)) return 1;
    if (bench(262, 5, 30) || bench(1024, 64, 256) || bench(4096, 64, 1024)) return 1;
    printf("reproduce: make benches && ./build/bench/bench_yuma\n");
    return 0;
}
