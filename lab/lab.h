/*
 * lab.h - the training-quality lab: the subnet's algorithm run for N
 * simulated miners in one process, beside the baselines it replaces, at equal
 * tokens on the same data.
 *
 * The lab runs Tessera's own code: the sample pools of data/, the inner
 * AdamW loop and its schedule of model/, the codec with error feedback,
 * median-norm clipping, aggregation and the outer step of codec/.  There is
 * no chain, no store and no validator: every miner's upload goes straight
 * to the aggregation (through the real decoder, signed with a key derived
 * from the seed), so what is measured is the algorithm, not the network.
 *
 * A run is R rounds.  In a round every miner that has joined trains H inner
 * steps of B rows of T + 1 tokens on its own pages (the pool of (run "lab-
 * SEED", uid, window = round)), starting from the global model; the method
 * then makes the next global model:
 *
 *   sparseloco  each miner compresses its pseudo-gradient (start - end) with
 *               the codec and its error feedback, as a miner does; the
 *               uploads are decoded, clipped to their median norm, averaged
 *               and applied: theta -= alpha * g (PROTOCOL.md 7 and 8).  With
 *               top_g > 0 only the G uploads that lower a held-out probe's
 *               loss most when applied alone are aggregated, as a validator
 *               ranks its gather peers.
 *   diloco      the dense fp32 pseudo-gradients averaged (in uid order) and
 *               applied by SGD with Nesterov momentum (DiLoCo: lr 0.7,
 *               momentum 0.9), as torch.optim.SGD(nesterov=True) does.
 *   ddp         synchronous data parallelism: each of the H steps averages the
 *               N miners' gradients of that step's rows and takes one AdamW
 *               step (one optimizer); the same rows as the others.
 *   single      one worker, the same rows one after another (step j of every
 *               miner, then step j + 1): N * H AdamW steps a round.
 *
 * Every method sees the same rows in a round, so round r is the same number
 * of tokens for all of them.  The inner learning rate follows the model's
 * schedule (linear warm-up, cosine to 0.1 x) over the method's own steps of
 * the whole run: R * H for the miners' inner loops and ddp, N * R * H for
 * single.  Each miner keeps its own AdamW state across rounds, as a miner
 * does across windows.
 *
 * Faults (sparseloco, diloco and ddp; the first uids take them in this
 * order): silent miners train and send nothing; garbage miners send an
 * upload whose body is overwritten with random bytes, which the decoder
 * refuses (diloco and ddp: a non-finite vector, which the finiteness check
 * refuses); off-data miners train on pages other than their own; the last
 * miner sits out the first late_join rounds, then starts from the global
 * model of that time with a fresh optimizer and error feedback (and the
 * run's place in the learning-rate schedule).
 *
 * The loss-spike guard (an option of the outer step, off in the protocol):
 * after the outer step of sparseloco or diloco, a round whose update raises
 * the probe's loss by more than spike_guard (a fraction) is undone (diloco's
 * momentum too) and counted.
 *
 * Measurements: the held-out loss (mean over val_samples fixed samples of
 * the held-out split) before the first round and after every round; the
 * probe is probe_samples other samples of that split.  Runs are
 * deterministic for a seed, a build and a thread count.  The lab runs on the
 * CPU backend.
 */
#ifndef TESSERA_LAB_H
#define TESSERA_LAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"
#include "common/common.h"
#include "model/model.h"

typedef enum { LAB_SPARSELOCO, LAB_DILOCO, LAB_DDP, LAB_SINGLE } lab_method;

const char *lab_method_name(lab_method m);
/* "sparseloco", "diloco", "ddp", "single"; TS_EINVAL otherwise. */
int lab_method_parse(const char *s, lab_method *m, ts_err *e);

#define LAB_MAX_MINERS 256

typedef struct lab_faults {
    double silent;  /* fraction of miners that send nothing */
    double garbage; /* fraction whose upload is garbage */
    double offdata; /* fraction that train on other pages */
    int late_join;  /* the last miner sits out the first late_join rounds (0: none) */
} lab_faults;

typedef struct lab_config {
    lab_method method;
    char label[64];          /* the series' name in results and plots ("" : the method's) */
    model_config model;
    const char *data;        /* training shards (path) */
    const char *val_data;    /* held-out shards (path) */
    int miners;              /* N */
    int inner_steps;         /* H */
    int batch;               /* B */
    int seq;                 /* T */
    int rounds;              /* R outer steps */
    uint64_t seed;           /* model initialisation, pools, keys, faults */
    model_adamw adamw;       /* inner optimizer; adamw.lr is the peak */
    double warmup_frac;      /* share of the method's steps spent warming up */
    spl_params codec;        /* k, bins, chunk, beta (EF decay), alpha (outer lr) */
    int top_g;               /* sparseloco: aggregate the best G uploads (0: all) */
    double diloco_lr;        /* 0.7 */
    double diloco_momentum;  /* 0.9 */
    int val_samples;         /* held-out samples per measurement */
    int probe_samples;       /* held-out samples of the probe (top_g, spike guard) */
    double spike_guard;      /* 0: off */
    lab_faults faults;
    bool dense_check;        /* sparseloco: compare the aggregate with the dense mean */
} lab_config;

/* The defaults: sparseloco, tiny model, 4 miners x 3 rounds x H 4 x B 4 x
 * T 64, seed 1, the protocol's AdamW at lr 1e-3, warm-up 5 %, the
 * protocol's codec, DiLoCo's outer SGD, 16 held-out and 8 probe samples. */
void lab_config_default(lab_config *c);
/* Checks every field (model config included); TS_EINVAL naming it. */
int lab_config_check(const lab_config *c, ts_err *e);

/* One measurement: the state after `round` rounds (0: the initial model). */
typedef struct lab_point {
    const char *method;
    const char *label;
    int round;
    uint64_t tokens;        /* tokens trained by all miners so far */
    double bytes_round;     /* bytes one sending miner sent in this round (mean) */
    double bytes_total;     /* bytes per miner so far (mean over the miners) */
    double val_loss;        /* held-out loss, nats per token */
    double train_loss;      /* mean inner loss of the round (NaN at round 0) */
    double wall_s;          /* seconds since the run started */
    int trained, sent, accepted, aggregated;
    int silent, refused, offdata, waiting; /* miners by fault this round */
    char refused_reason[32]; /* the decoder's reason for the last refusal */
    bool guard_skipped;     /* the spike guard undid this round */
    double probe_before, probe_after; /* NaN unless a guard or top_g measured them */
    double agg_rel_err;     /* sparseloco: ||g - mean x|| / ||mean x||, x what the
                               aggregated miners compressed (NaN otherwise) */
    double dense_err_max;   /* dense_check: max |g - mean f x| over coordinates */
    double dense_bound_max; /* ... and the largest bound (see lab.c) */
    int64_t dense_violations; /* coordinates whose error exceeds their bound */
} lab_point;

typedef void (*lab_cb)(const lab_point *p, void *ctx);

/* Totals of a run. */
typedef struct lab_summary {
    double final_val_loss;
    double bytes_per_miner;  /* bytes per miner over the run */
    uint64_t tokens;
    int refused, silent, offdata, guard_skips;
    double seconds;
} lab_summary;

/* Runs the lab; cb (may be NULL) gets every measurement in order.  progress:
 * a progress line on stderr. */
int lab_run(const lab_config *c, lab_cb cb, void *ctx, bool progress, lab_summary *out, ts_err *e);

/* One measurement as a JSON object on one line (malloc'd, no newline). */
char *lab_point_json(const lab_point *p);

/* ------------------------------------------------------------- the plot */

typedef struct lab_series {
    char label[64];
    int n;
    double *tokens, *bytes, *loss; /* n points each */
} lab_series;

/* An SVG of held-out loss against tokens (left) and against bytes each
 * miner sent (right, logarithmic; series that send nothing are left out of
 * it), one line per series.  *svg is malloc'd. */
int lab_plot_svg(const lab_series *s, int n, const char *title, char **svg, ts_err *e);

#endif
