/* bench_gauntlet.c - the simulator (the validator's whole scoring path:
 * selection, window update with the Plackett-Luce match, weights, peer list)
 * at 256 miners x 1,000 windows, and one 15-player match. */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "common/common.h"
#include "gauntlet/gauntlet.h"

int main(int argc, char **argv) {
    const char *popfile = argc > 1 ? argv[1] : "gauntlet/population.json";
    ts_err e = {0};
    uint8_t *buf;
    size_t len;
    if (ts_init(&e) || ts_read_file(popfile, 1 << 22, &buf, &len, &e)) {
        fprintf(stderr, "bench_gauntlet: %s\n", e.msg);
        return 1;
    }
    cJSON *pop = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    gauntlet_params p;
    gauntlet_params_default(&p);
    double best = 1e9;
    gauntlet_sim_result *r = NULL;
    for (int rep = 0; rep < 3; rep++) {
        if (gauntlet_sim_run(&p, pop, 1000, 1, false, &r, &e)) {
            fprintf(stderr, "bench_gauntlet: %s\n", e.msg);
            return 1;
        }
        if (gauntlet_sim_seconds(r) < best) best = gauntlet_sim_seconds(r);
        if (rep < 2) gauntlet_sim_free(r);
    }
    int miners = 0;
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(pop, "groups");
    for (const cJSON *g = gs ? gs->child : NULL; g; g = g->next)
        miners += cJSON_GetObjectItemCaseSensitive(g, "count")->valueint;
    printf("gauntlet sim: %d miners x 1000 windows: %.3f s (best of 3), %.1f us per window\n", miners, best,
           best * 1e3);
    gauntlet_sim_free(r);
    cJSON_Delete(pop);

    os_model m;
    os_model_init(&m, OS_PLACKETT_LUCE, OS_V6_1_3);
    m.beta = 7;
    m.tau = 0.1;
    os_rating in[15], out[15];
    int sizes[15];
    double sc[15];
    for (int i = 0; i < 15; i++) {
        in[i] = (os_rating){25 + i * 0.1, 8 - i * 0.2};
        sizes[i] = 1;
        sc[i] = (i * 7 % 15) * 1e-3;
    }
    os_match mt = {.nteams = 15, .team_sizes = sizes, .ratings = in, .scores = sc, .limit_sigma = -1};
    int iters = 20000;
    double t0 = ts_mono();
    for (int i = 0; i < iters; i++)
        if (os_rate(&m, &mt, out, &e)) return 1;
    double dt = ts_mono() - t0;
    printf("os_rate plackett-luce 15 one-player teams: %.2f us per match\n", dt / iters * 1e6);
    printf("reproduce: make benches && ./build/bench/bench_gauntlet %s\n", popfile);
    return 0;
}
