/*
 * gauntlet.h - the scoring engine (PROTOCOL section 9): OpenSkill ratings,
 * per-uid scores and penalties, weights, selection of whom to evaluate, the
 * peer list, the owner's parameter file and the simulator.
 *
 * Pure computation: nothing here touches the network or the chain.  The only
 * I/O is the state file (gauntlet_state_save / _load, atomic through
 * ts_write_atomic) and the parameter file; the validator and the simulator run
 * the same code.
 *
 * Two prefixes: os_ for OpenSkill (a port of openskill.py that matches it to
 * 1e-9 relative, docs/OPENSKILL.md is the specification) and gauntlet_ for the
 * rest.
 */
#ifndef TESSERA_GAUNTLET_H
#define TESSERA_GAUNTLET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ OpenSkill */

typedef enum {
    OS_PLACKETT_LUCE = 0,
    OS_BRADLEY_TERRY_FULL,
    OS_THURSTONE_MOSTELLER_FULL,
    OS_BRADLEY_TERRY_PART,      /* partial pairing: neighbours within window_size */
    OS_THURSTONE_MOSTELLER_PART,
    OS_MODEL_COUNT
} os_model_kind;

/* The library release whose behaviour is reproduced.  They differ in the
 * Plackett-Luce tie rule, the zero-score quirk of the score-to-rank
 * conversion, the margin sign and whether scores follow the sort. */
typedef enum { OS_V6_1_3 = 0, OS_V6_2_0 = 1 } os_version;

typedef struct os_rating {
    double mu, sigma;
} os_rating;

typedef struct os_model {
    os_model_kind kind;
    os_version version;
    double mu, sigma;   /* prior of a new rating (25, 25/3) */
    double beta;        /* performance noise (25/6) */
    double kappa;       /* floor on the variance-shrink factor (1e-4) */
    double tau;         /* additive dynamics (25/300) */
    double margin;      /* margin of victory scale, with scores only (0) */
    double epsilon;     /* Thurstone-Mosteller draw margin (0.1) */
    bool limit_sigma;   /* sigma never rises above its input value */
    bool balance;       /* weight players in a team by ordinal gap */
    bool weight_bounds; /* 6.2.0: normalise weights to [1, 2] (true); 6.1.3 always does */
    int window_size;    /* partial-pairing models: neighbours on each side (4) */
} os_model;

/* The library's defaults for a model and version. */
void os_model_init(os_model *m, os_model_kind kind, os_version version);
/* "plackett-luce", "bradley-terry-full", "thurstone-mosteller-full",
 * "bradley-terry-part", "thurstone-mosteller-part". */
const char *os_model_name(os_model_kind kind);
int os_model_parse(const char *name, os_model_kind *kind);
/* "6.1.3" / "6.2.0". */
const char *os_version_name(os_version v);
int os_version_parse(const char *s, os_version *v);

/* One match.  Teams are contiguous runs of `ratings`: team t has
 * team_sizes[t] players.  At most one of ranks / scores (per team, lower
 * rank is better, higher score is better); neither means the given order is
 * the finishing order.  weights (one per player, flattened like ratings) is
 * optional.  tau: NULL for the model's (0 also means the model's, as in the
 * library).  limit_sigma: -1 the model's, 0 off, 1 on (not sticky: the
 * library's habit of changing the model object is left to the caller). */
typedef struct os_match {
    int nteams;
    const int *team_sizes;
    const os_rating *ratings;
    const double *ranks;
    const double *scores;
    const double *weights;
    const double *tau;
    int limit_sigma;
} os_match;

/* Rates a match; out has as many ratings as the input (same layout).
 * Inputs that the library would reject (fewer than 2 teams, an empty team,
 * both ranks and scores, a non-finite number, sigma <= 0) or that would make
 * it raise (exp overflow, division by zero) are errors, never NaN. */
int os_rate(const os_model *m, const os_match *match, os_rating *out, ts_err *e);

/* mu - 3 sigma (the library's ordinal() with its defaults). */
static inline double os_ordinal(os_rating r) { return r.mu - 3.0 * r.sigma; }

/* Predictions (no tau is added).  win: nteams probabilities summing to one.
 * rank: 1-based competition ranks and probabilities.  draw: one number. */
int os_predict_win(const os_model *m, int nteams, const int *team_sizes,
                   const os_rating *ratings, double *win, ts_err *e);
int os_predict_rank(const os_model *m, int nteams, const int *team_sizes,
                    const os_rating *ratings, int *rank, double *prob, ts_err *e);
int os_predict_draw(const os_model *m, int nteams, const int *team_sizes,
                    const os_rating *ratings, double *draw, ts_err *e);

/* Statistics used by the models (exposed for tests): the normal CDF in the
 * library's erf form, its density and its inverse (Wichura AS241). */
double os_phi_major(double x);
double os_phi_minor(double x);
double os_phi_major_inverse(double p);

/* ================================================================ parameters
 *
 * Every constant of PROTOCOL section 9.  One JSON object, each key optional
 * (defaults below); unknown keys and wrong types are errors naming the key;
 * gauntlet_params_check rejects values out of range, naming the key.
 */
typedef struct gauntlet_params {
    /* selection */
    int64_t uids_per_window;      /* 15: miners evaluated per window */
    int64_t eval_bins;            /* 5: ordinal bins when there are many miners */
    /* evaluation (used by the validator; recorded here so one file holds all) */
    double eval_lr_factor;        /* 0.2 */
    int64_t eval_samples;         /* 8: samples summed for each loss */
    /* binary indicator moving average: bma <- (1-a) bma + a ind */
    double binary_ma_alpha;       /* 0.05 */
    /* after the first bma_warmup_windows windows of the state, a binary
     * moving average below bma_threshold counts as 0 in the final score */
    double bma_threshold;         /* 0.10 */
    int64_t bma_warmup_windows;   /* 10 */
    /* the gradient score (relative random-data improvement) entering the
     * match is capped at this (0: no cap) */
    double gradient_cap;          /* 0.02 */
    /* sync score = max(0, 1 - min(x, cap)/cap)^exponent, x the validator's
     * interquartile mean of |theirs - ours| / EMA(per-step change) */
    double sync_cap_steps;        /* 3 */
    double sync_exponent;         /* 2.5 */
    double sync_poor_steps;       /* 2: more steps behind than this is poor sync */
    double sync_poor_factor;      /* 0.75 */
    double sync_ema_alpha;        /* 0.2: EMA of each parameter's per-step change (validator) */
    /* OpenSkill */
    char openskill_version[8];    /* "6.1.3" */
    double openskill_mu;          /* 25 */
    double openskill_sigma;       /* 25/3 */
    double openskill_beta;        /* 7 */
    double openskill_tau;         /* 0.1 */
    double openskill_kappa;       /* 1e-4 */
    /* penalties */
    double missing_factor;        /* 0.75: missing, early or late upload */
    double inactivity_factor;     /* 0.75 per inactive window */
    int64_t inactivity_reset_windows; /* 3: reset when inactive longer than this */
    double copycat_slash_overlap; /* 0.4 -> x copycat_slash_factor */
    double copycat_slash_factor;  /* 0.5 */
    double copycat_reset_overlap; /* 0.5 -> reset */
    double copycat_ban_overlap;   /* 0.6 -> reset and ban */
    int64_t copycat_ban_windows;  /* 20 */
    int64_t copycat_start_windows;/* 20: no copycat charge in the state's first windows */
    double score_floor;           /* 1e-4: a positive score below becomes 0 */
    /* missing or invalid uploads enter the window's match with this score */
    bool missing_in_match;        /* true */
    double missing_score;         /* -99 */
    /* gather reliability: a gather peer whose upload is missing or invalid */
    double gather_miss_factor_1;  /* 0.75: first consecutive miss */
    double gather_miss_factor_2;  /* 0.5: second */
    double gather_miss_factor_3;  /* 0: third and later */
    double gather_success_min;    /* 0.4: success rate over its recorded gather windows below: x 0 */
    int64_t gather_history;       /* 8: gather windows remembered per uid */
    double gather_ban_share;      /* 0.5: missing at least this share of a full history: reset and ban */
    int64_t gather_ban_windows;   /* 20 */
    /* negative evaluations (gradient score < 0) */
    int64_t negative_history;     /* 8: evaluations remembered per uid */
    int64_t negative_slash_count; /* 4: more negatives than this in a full history ... */
    double negative_slash_factor; /* 0.25: ... multiply positive scores by this */
    int64_t negative_exclude_consecutive; /* 3: this many in a row: out of the peer list */
    int64_t negative_field_rank;  /* 5: no negative penalty when the window's n-th best is negative */
    /* newcomers */
    int64_t newcomer_windows;     /* 50: a uid is a newcomer this many windows after it appears */
    int64_t newcomer_evals;       /* 3: newcomers with fewer evaluations get ... */
    int64_t newcomer_eval_slots;  /* 5: ... up to this many of each window's evaluations first */
    int64_t newcomer_slots;       /* 5: reserve-tier places kept for newcomers */
    /* weights */
    int64_t gather_peers;         /* 20 */
    int64_t reserve_peers;        /* 10 */
    double gather_share;          /* 0.75 of the non-burned emission; reserve the rest */
    double gather_ramp_top;       /* 2: first gather weight / last */
    double reserve_decay;         /* 0.5 */
    bool reserve_cap;             /* true: Templar's guard keeping reserve <= gather */
    double burn_share;            /* 0 */
    int64_t burn_uid;             /* 0 */
    int64_t weights_interval;     /* 3 windows */
    int64_t peers_interval;       /* 5 windows */
    int64_t peers_delay;          /* 1: a peer list takes effect this many windows later */
} gauntlet_params;

void gauntlet_params_default(gauntlet_params *p);
/* Applies a parsed JSON object (const cJSON *) over *p, then checks. */
int gauntlet_params_from_json(gauntlet_params *p, const void *json, ts_err *e);
/* Defaults, then the file. */
int gauntlet_params_load(gauntlet_params *p, const char *path, ts_err *e);
int gauntlet_params_check(const gauntlet_params *p, ts_err *e);
/* Every key as pretty JSON (malloc'd). */
char *gauntlet_params_to_json(const gauntlet_params *p);
/* The Plackett-Luce model the window match uses. */
void gauntlet_params_model(const gauntlet_params *p, os_model *m);

/* ================================================================ state */

#define GAUNTLET_NEVER UINT64_MAX
#define GAUNTLET_MAX_UIDS 65536u   /* uids are below this */

/* Penalty bits (gauntlet_uid.last_penalties). */
enum {
    GAUNTLET_PEN_MISSING = 1u << 0,
    GAUNTLET_PEN_EARLY = 1u << 1,
    GAUNTLET_PEN_LATE = 1u << 2,
    GAUNTLET_PEN_INVALID = 1u << 3,
    GAUNTLET_PEN_POOR_SYNC = 1u << 4,
    GAUNTLET_PEN_INACTIVE = 1u << 5,
    GAUNTLET_PEN_INACTIVE_RESET = 1u << 6,
    GAUNTLET_PEN_COPY_SLASH = 1u << 7,
    GAUNTLET_PEN_COPY_RESET = 1u << 8,
    GAUNTLET_PEN_COPY_BAN = 1u << 9,
    GAUNTLET_PEN_FLOOR = 1u << 10,
    GAUNTLET_PEN_REREGISTERED = 1u << 11,
    GAUNTLET_PEN_GATHER_MISS = 1u << 12,   /* a gather peer's upload missing or invalid */
    GAUNTLET_PEN_GATHER_BAN = 1u << 13,    /* missing half of its recent gather windows */
    GAUNTLET_PEN_NEG_SLASH = 1u << 14,     /* too many negative evaluations */
    GAUNTLET_PEN_NEG_EXCLUDE = 1u << 15,   /* consecutive negatives: out of the peer list */
    GAUNTLET_PEN_BMA_THRESHOLD = 1u << 16, /* binary moving average below the threshold */
};

/* Penalty counters (gauntlet_uid.counts[]). */
enum {
    GAUNTLET_CNT_EVALS, GAUNTLET_CNT_MISSING, GAUNTLET_CNT_EARLY, GAUNTLET_CNT_LATE,
    GAUNTLET_CNT_INVALID, GAUNTLET_CNT_POOR_SYNC, GAUNTLET_CNT_INACTIVE,
    GAUNTLET_CNT_INACTIVE_RESET, GAUNTLET_CNT_COPY_SLASH, GAUNTLET_CNT_COPY_RESET,
    GAUNTLET_CNT_COPY_BAN,
    /* format version 2 */
    GAUNTLET_CNT_GATHER_MISS, GAUNTLET_CNT_GATHER_BAN, GAUNTLET_CNT_NEG_SLASH,
    GAUNTLET_CNT_NEG_EXCLUDE, GAUNTLET_CNT_COUNT
};
#define GAUNTLET_CNT_COUNT_V1 (GAUNTLET_CNT_COPY_BAN + 1)
#define GAUNTLET_HISTORY_MAX 32 /* gather_history and negative_history at most */

typedef struct gauntlet_uid {
    uint32_t uid;
    uint8_t hotkey[32];        /* the registration this state belongs to */
    double gradient_score;     /* last window's (Lr_before - Lr_after) / Lr_before */
    double indicator;          /* last binary indicator, +1 / -1 (0 before any) */
    double binary_ma;
    double sync_score;
    double steps_behind;       /* last measured (NaN when unknown) */
    os_rating rating;
    double final_score;
    double last_overlap;       /* highest copycat overlap charged to this uid */
    uint64_t first_seen_window;
    uint64_t last_eval_window; /* GAUNTLET_NEVER before any */
    uint64_t ban_until;        /* banned while window < ban_until (0: never banned) */
    uint64_t last_penalty_window;
    uint32_t last_penalties;   /* GAUNTLET_PEN_* bits of last_penalty_window */
    uint32_t inactive_windows; /* consecutive windows without an upload */
    uint32_t counts[GAUNTLET_CNT_COUNT];
    /* version 2: the recent history behind the reliability rules.  Bit i of
     * a history is the i-th most recent entry (bit 0 the latest); *_n how
     * many entries it holds (at most the parameter's length). */
    uint32_t neg_hist;         /* 1: that evaluation's gradient score was negative */
    uint32_t gather_hist;      /* 1: missing or invalid as a gather peer that window */
    uint8_t neg_n, gather_n;
    bool excluded;             /* out of the peer list until a non-negative evaluation */
    uint32_t neg_consecutive;  /* negative evaluations in a row */
    uint32_t gather_consecutive; /* gather windows missed in a row */
} gauntlet_uid;

typedef struct gauntlet_state {
    uint64_t window;       /* last window applied (GAUNTLET_NEVER: none yet) */
    uint64_t first_window; /* first window applied (warm-ups count from it; 0 for a version-1 file) */
    size_t n, cap;
    gauntlet_uid *uids;    /* sorted by uid */
} gauntlet_state;

void gauntlet_state_init(gauntlet_state *s);
void gauntlet_state_free(gauntlet_state *s);
/* The record of a uid, or NULL. */
gauntlet_uid *gauntlet_state_find(const gauntlet_state *s, uint32_t uid);
bool gauntlet_is_banned(const gauntlet_uid *u, uint64_t window);

/* The versioned binary file of docs/FORMATS.md section 10.  parse checks
 * everything (magic, version, sizes before allocating, checksum, order,
 * ranges) and leaves *s untouched on failure. */
int gauntlet_state_serialize(const gauntlet_state *s, uint8_t **out, size_t *len, ts_err *e);
int gauntlet_state_parse(const uint8_t *buf, size_t len, gauntlet_state *s, ts_err *e);
int gauntlet_state_save(const gauntlet_state *s, const char *path, ts_err *e);
/* A missing file is TS_ENOTFOUND (start fresh); anything else invalid is an
 * error, never a silent reset. */
int gauntlet_state_load(gauntlet_state *s, const char *path, ts_err *e);

/* ================================================================ window update */

typedef enum {
    GAUNTLET_UPLOAD_OK = 0,
    GAUNTLET_UPLOAD_MISSING,
    GAUNTLET_UPLOAD_EARLY,
    GAUNTLET_UPLOAD_LATE,
    GAUNTLET_UPLOAD_INVALID,
} gauntlet_upload;

const char *gauntlet_upload_name(gauntlet_upload u);

/* One evaluated miner.  Losses are sums over eval_samples samples; they are
 * read only when status is OK (non-finite or non-positive "before" losses
 * turn the result invalid).  steps_behind: +inf when the miner published no
 * usable sync record (sync score 0, poor sync); NaN when the validator could
 * not measure it (the miner keeps its last sync score, no penalty). */
typedef struct gauntlet_eval {
    uint32_t uid;
    gauntlet_upload status;
    double loss_own_before, loss_own_after;
    double loss_rand_before, loss_rand_after;
    double steps_behind;
} gauntlet_eval;

/* Two gathered peers whose uploads share top-k indices: overlap is the mean
 * per-tile share of common indices; `later` is the uid that uploaded later. */
typedef struct gauntlet_overlap {
    uint32_t uid_a, uid_b;
    double overlap;
    uint32_t later;
} gauntlet_overlap;

/* A registered uid: its hotkey now, and whether it uploaded anything for the
 * window (inactivity). */
typedef struct gauntlet_reg {
    uint32_t uid;
    uint8_t hotkey[32];
    bool active;
} gauntlet_reg;

typedef struct gauntlet_window_input {
    uint64_t window;
    const gauntlet_eval *evals;      /* in evaluation order (the match order) */
    size_t n_evals;
    const gauntlet_overlap *overlaps;
    size_t n_overlaps;
    const gauntlet_reg *registered;  /* every registered uid, any order */
    size_t n_registered;
    /* the gather of the window: the gather-tier peers whose uploads were
     * used, and those whose uploads were missing or invalid (reserves that
     * stood in count as used; unused reserves as neither) */
    const uint32_t *gather_ok;
    size_t n_gather_ok;
    const uint32_t *gather_missed;
    size_t n_gather_missed;
} gauntlet_window_input;

/* Applies one window: registrations (a new hotkey resets the uid and clears
 * its bans; a uid no longer registered is dropped), evaluations, the match,
 * final scores, penalties.  Windows must increase (TS_ESTATE otherwise, so a
 * window is never applied twice).  Bad input (a uid twice, an unknown status,
 * an overlap outside [0, 1]) is TS_EINVAL and leaves *s unchanged. */
int gauntlet_update(gauntlet_state *s, const gauntlet_params *p,
                    const gauntlet_window_input *in, ts_err *e);

/* ================================================================ weights, peers, selection */

/* Weights from the state: positive final scores, not banned, sorted (score
 * descending, uid ascending); the gather tier on a linear ramp, the reserve
 * tier on a geometric decay, the burn share to burn_uid.  Writes up to cap
 * (uid, weight) pairs (cap >= gather + reserve + 1 is always enough), sorted
 * by uid, summing to one; *n is how many. */
int gauntlet_weights(const gauntlet_state *s, const gauntlet_params *p, uint32_t *uids,
                     double *weights, size_t cap, size_t *n, ts_err *e);

/* The peer list: the gather tier (up to gather_peers uids, best first) and
 * the reserve tier (up to reserve_peers). */
int gauntlet_peers(const gauntlet_state *s, const gauntlet_params *p, uint32_t *gather,
                   size_t *n_gather, uint32_t *reserve, size_t *n_reserve, ts_err *e);

/* Whom to evaluate in `window`: up to uids_per_window of the registered,
 * unbanned uids, weighted by windows since their last evaluation, from one
 * ordinal bin when there are at least eval_bins * uids_per_window
 * candidates.  Deterministic in (seed, window, state, registered). */
int gauntlet_select(const gauntlet_state *s, const gauntlet_params *p,
                    const gauntlet_reg *registered, size_t n_registered, uint64_t window,
                    uint64_t seed, uint32_t *out, size_t *n_out, ts_err *e);

/* Whether weights are set / a peer list is posted in this window. */
bool gauntlet_is_weights_window(const gauntlet_params *p, uint64_t window);
bool gauntlet_is_peers_window(const gauntlet_params *p, uint64_t window);

/* ================================================================ simulator */

typedef struct gauntlet_sim_result gauntlet_sim_result;

/* Runs the scoring over the synthetic population of a POP.json object
 * (const cJSON *; see gauntlet/population.json).  progress: show progress
 * on stderr. */
int gauntlet_sim_run(const gauntlet_params *p, const void *population_json, uint64_t windows,
                     uint64_t seed, bool progress, gauntlet_sim_result **out, ts_err *e);
void gauntlet_sim_free(gauntlet_sim_result *r);
/* The table of shares over time, newcomer times and rank correlation
 * (FILE *). */
void gauntlet_sim_print(const gauntlet_sim_result *r, void *fp);
/* For each rule of Templar's final release and Tessera's newcomer rules: the
 * emission share of the population group it aims at (by name: spiky, lazy,
 * stale-sync, flaky, regressing, early-copy, copycat, missing, honest,
 * newcomer, burn) with the rule on (p) and off (p with the rule's
 * parameters turned off), averaged over seeds seed .. seed + nseeds - 1, as
 * a table (FILE *). */
int gauntlet_sim_rules(const gauntlet_params *p, const void *population_json, uint64_t windows, uint64_t seed,
                       uint64_t nseeds, void *fp, ts_err *e);
/* The SVG plot (emission share and mean ordinal per behaviour over windows). */
int gauntlet_sim_svg(const gauntlet_sim_result *r, const char *path, ts_err *e);

/* Summary figures, for tests and the benchmark. */
int gauntlet_sim_groups(const gauntlet_sim_result *r);
const char *gauntlet_sim_group_name(const gauntlet_sim_result *r, int g);
/* Mean share of emission of group g over windows [from, to). */
double gauntlet_sim_share(const gauntlet_sim_result *r, int g, uint64_t from, uint64_t to);
/* Spearman rank correlation of true quality and mean weight over the last
 * quarter of the run, among miners with a quality (NaN if undefined). */
double gauntlet_sim_rank_corr(const gauntlet_sim_result *r);
/* Median windows from joining to first weight among the newcomers that
 * earned (-1 if none did); *earned / *total count them. */
double gauntlet_sim_newcomer_windows(const gauntlet_sim_result *r, int *earned, int *total);
/* How many newcomers earned within `windows` of joining; *median_all (may be
 * NULL): the median time over all newcomers, those that never earned
 * counting as infinite. */
int gauntlet_sim_newcomers_within(const gauntlet_sim_result *r, uint64_t windows, double *median_all);
double gauntlet_sim_seconds(const gauntlet_sim_result *r);
/* After Yuma consensus over every validator's weights (every tempo_windows,
 * from window 20): group g's share of the miners' emission (g == groups:
 * the burn uid and departed miners); NaN before any epoch. */
double gauntlet_sim_yuma_share(const gauntlet_sim_result *r, int g);
int gauntlet_sim_validators(const gauntlet_sim_result *r);
/* Validator v's name, share of the validators' emission (dividends) and mean
 * validator trust; TS_EINVAL when v is out of range or nothing was counted. */
int gauntlet_sim_validator(const gauntlet_sim_result *r, int v, const char **name, double *dividends,
                           double *vtrust);

#ifdef __cplusplus
}
#endif

#endif
