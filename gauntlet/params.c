/* params.c - the subnet owner's scoring parameters: one JSON object whose
 * keys are the constants of PROTOCOL section 9.  One table gives each key its
 * type, default and meaning; common's option parser rejects unknown keys and
 * wrong types by name, and gauntlet_params_check rejects values out of range
 * by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gauntlet.h"

/* The table, bound to one parameter struct and a string slot for the
 * version.  Defaults are text so one table serves defaults, parsing and the
 * README. */
#define NPARAMS 64
static int param_table(gauntlet_params *p, char **ver, ts_opt *t) {
    const ts_opt tab[NPARAMS] = {
        {"uids_per_window", TS_OPT_INT, &p->uids_per_window, "15", "miners evaluated per window", 0, 0},
        {"eval_bins", TS_OPT_INT, &p->eval_bins, "5", "ordinal bins for selection when there are many miners", 0, 0},
        {"eval_lr_factor", TS_OPT_F64, &p->eval_lr_factor, "0.2", "scale of a single miner's update during evaluation", 0, 0},
        {"eval_samples", TS_OPT_INT, &p->eval_samples, "8", "samples summed for each loss (own and random)", 0, 0},
        {"binary_ma_alpha", TS_OPT_F64, &p->binary_ma_alpha, "0.05", "binary indicator moving average: bma = (1-a) bma + a ind", 0, 0},
        {"bma_threshold", TS_OPT_F64, &p->bma_threshold, "0.1", "after the warm-up a binary moving average below this counts as 0", 0, 0},
        {"bma_warmup_windows", TS_OPT_INT, &p->bma_warmup_windows, "10", "windows of the state before bma_threshold applies", 0, 0},
        {"gradient_cap", TS_OPT_F64, &p->gradient_cap, "0.02", "cap on the gradient score (relative improvement) in the match; 0: none", 0, 0},
        {"sync_cap_steps", TS_OPT_F64, &p->sync_cap_steps, "3", "steps behind at which the sync score reaches 0", 0, 0},
        {"sync_exponent", TS_OPT_F64, &p->sync_exponent, "2.5", "sync score exponent", 0, 0},
        {"sync_poor_steps", TS_OPT_F64, &p->sync_poor_steps, "2", "more steps behind than this is poor sync", 0, 0},
        {"sync_poor_factor", TS_OPT_F64, &p->sync_poor_factor, "0.75", "poor sync multiplies positive scores by this", 0, 0},
        {"sync_ema_alpha", TS_OPT_F64, &p->sync_ema_alpha, "0.2", "EMA of each sampled parameter's per-step change (the sync unit)", 0, 0},
        {"openskill_version", TS_OPT_STR, ver, "6.1.3", "openskill.py behaviour: 6.1.3 (Templar's) or 6.2.0", 0, 0},
        {"openskill_mu", TS_OPT_F64, &p->openskill_mu, "25", "prior mean of a new rating", 0, 0},
        {"openskill_sigma", TS_OPT_F64, &p->openskill_sigma, "8.3333333333333339", "prior standard deviation (25/3)", 0, 0},
        {"openskill_beta", TS_OPT_F64, &p->openskill_beta, "7", "performance noise", 0, 0},
        {"openskill_tau", TS_OPT_F64, &p->openskill_tau, "0.1", "additive dynamics per match", 0, 0},
        {"openskill_kappa", TS_OPT_F64, &p->openskill_kappa, "0.0001", "floor on the variance-shrink factor", 0, 0},
        {"missing_factor", TS_OPT_F64, &p->missing_factor, "0.75", "missing, early or late upload multiplies positive scores", 0, 0},
        {"inactivity_factor", TS_OPT_F64, &p->inactivity_factor, "0.75", "each inactive window multiplies positive scores", 0, 0},
        {"inactivity_reset_windows", TS_OPT_INT, &p->inactivity_reset_windows, "3", "full reset when inactive longer than this", 0, 0},
        {"copycat_slash_overlap", TS_OPT_F64, &p->copycat_slash_overlap, "0.4", "overlap from which the later uploader is slashed", 0, 0},
        {"copycat_slash_factor", TS_OPT_F64, &p->copycat_slash_factor, "0.5", "slash multiplies positive scores by this", 0, 0},
        {"copycat_reset_overlap", TS_OPT_F64, &p->copycat_reset_overlap, "0.5", "overlap from which the later uploader is reset", 0, 0},
        {"copycat_ban_overlap", TS_OPT_F64, &p->copycat_ban_overlap, "0.6", "overlap from which the later uploader is reset and banned", 0, 0},
        {"copycat_ban_windows", TS_OPT_INT, &p->copycat_ban_windows, "20", "length of a copycat ban in windows", 0, 0},
        {"copycat_start_windows", TS_OPT_INT, &p->copycat_start_windows, "20", "no copycat charge during the state's first windows", 0, 0},
        {"score_floor", TS_OPT_F64, &p->score_floor, "0.0001", "a positive score pushed below this becomes 0", 0, 0},
        {"missing_in_match", TS_OPT_BOOL, &p->missing_in_match, "true", "missing or invalid uploads play the window's match", 0, 0},
        {"missing_score", TS_OPT_F64, &p->missing_score, "-99", "their score in the match (below every valid one)", 0, 0},
        {"gather_miss_factor_1", TS_OPT_F64, &p->gather_miss_factor_1, "0.75", "a gather peer's first consecutive missing or invalid upload", 0, 0},
        {"gather_miss_factor_2", TS_OPT_F64, &p->gather_miss_factor_2, "0.5", "its second", 0, 0},
        {"gather_miss_factor_3", TS_OPT_F64, &p->gather_miss_factor_3, "0", "its third and later", 0, 0},
        {"gather_success_min", TS_OPT_F64, &p->gather_success_min, "0.4", "gather success rate (recent windows) below which a miss multiplies by 0", 0, 0},
        {"gather_history", TS_OPT_INT, &p->gather_history, "8", "gather windows remembered per uid", 0, 0},
        {"gather_ban_share", TS_OPT_F64, &p->gather_ban_share, "0.5", "missing this share of a full gather history: reset and ban", 0, 0},
        {"gather_ban_windows", TS_OPT_INT, &p->gather_ban_windows, "20", "length of that ban in windows", 0, 0},
        {"negative_history", TS_OPT_INT, &p->negative_history, "8", "evaluations remembered per uid", 0, 0},
        {"negative_slash_count", TS_OPT_INT, &p->negative_slash_count, "4", "more negative evaluations than this in a full history: slash", 0, 0},
        {"negative_slash_factor", TS_OPT_F64, &p->negative_slash_factor, "0.25", "that slash multiplies positive scores by this", 0, 0},
        {"negative_exclude_consecutive", TS_OPT_INT, &p->negative_exclude_consecutive, "3", "negative evaluations in a row that exclude from the peer list (0: never)", 0, 0},
        {"negative_field_rank", TS_OPT_INT, &p->negative_field_rank, "5", "no negative penalty in a window whose n-th best score is negative", 0, 0},
        {"newcomer_windows", TS_OPT_INT, &p->newcomer_windows, "50", "a uid is a newcomer for this many windows after it appears", 0, 0},
        {"newcomer_evals", TS_OPT_INT, &p->newcomer_evals, "3", "newcomers with fewer evaluations than this are evaluated first", 0, 0},
        {"newcomer_eval_slots", TS_OPT_INT, &p->newcomer_eval_slots, "5", "evaluations per window kept for them (0: no priority)", 0, 0},
        {"newcomer_slots", TS_OPT_INT, &p->newcomer_slots, "5", "reserve-tier places kept for the best newcomers (0: none)", 0, 0},
        {"gather_peers", TS_OPT_INT, &p->gather_peers, "20", "gather tier size (the peers aggregated)", 0, 0},
        {"reserve_peers", TS_OPT_INT, &p->reserve_peers, "10", "reserve tier size", 0, 0},
        {"gather_share", TS_OPT_F64, &p->gather_share, "0.75", "gather tier share of the non-burned emission (reserve gets the rest)", 0, 0},
        {"gather_ramp_top", TS_OPT_F64, &p->gather_ramp_top, "2", "gather ramp: first weight / last weight", 0, 0},
        {"reserve_decay", TS_OPT_F64, &p->reserve_decay, "0.5", "reserve tier geometric decay", 0, 0},
        {"reserve_cap", TS_OPT_BOOL, &p->reserve_cap, "true", "Templar's guard: scale the reserve so it never exceeds the last gather weight", 0, 0},
        {"burn_share", TS_OPT_F64, &p->burn_share, "0", "share of the emission sent to burn_uid", 0, 0},
        {"burn_uid", TS_OPT_INT, &p->burn_uid, "0", "uid that receives the burn share", 0, 0},
        {"weights_interval", TS_OPT_INT, &p->weights_interval, "3", "weights are set every this many windows", 0, 0},
        {"peers_interval", TS_OPT_INT, &p->peers_interval, "5", "the leader posts a peer list every this many windows", 0, 0},
        {"peers_delay", TS_OPT_INT, &p->peers_delay, "1", "a peer list takes effect this many windows after it is posted", 0, 0},
        {"_comment", TS_OPT_STR, NULL, NULL, "free text, ignored", 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    int n = 0;
    for (; n < NPARAMS && tab[n].name; n++) t[n] = tab[n];
    return n;
}

static int apply_text_defaults(const ts_opt *t, int n, ts_err *e) {
    for (int i = 0; i < n; i++) {
        if (!t[i].def || !t[i].dst) continue;
        switch (t[i].type) {
        case TS_OPT_INT:
            *(int64_t *)t[i].dst = strtoll(t[i].def, NULL, 10);
            break;
        case TS_OPT_F64:
            *(double *)t[i].dst = strtod(t[i].def, NULL);
            break;
        case TS_OPT_BOOL:
            *(bool *)t[i].dst = !strcmp(t[i].def, "true");
            break;
        case TS_OPT_STR:
            free(*(char **)t[i].dst);
            *(char **)t[i].dst = strdup(t[i].def);
            if (!*(char **)t[i].dst) return ts_fail(e, TS_ENOMEM, "out of memory");
            break;
        }
    }
    return TS_OK;
}

void gauntlet_params_default(gauntlet_params *p) {
    memset(p, 0, sizeof *p);
    char *ver = NULL;
    ts_opt t[NPARAMS];
    int n = param_table(p, &ver, t);
    apply_text_defaults(t, n, NULL);
    snprintf(p->openskill_version, sizeof p->openskill_version, "%s", ver ? ver : "6.1.3");
    free(ver);
    p->openskill_sigma = 25.0 / 3.0; /* exactly the library's prior */
}

int gauntlet_params_from_json(gauntlet_params *p, const void *json, ts_err *e) {
    gauntlet_params tmp = *p;
    char *ver = strdup(p->openskill_version), *comment = NULL;
    if (!ver) return ts_fail(e, TS_ENOMEM, "out of memory");
    ts_opt t[NPARAMS];
    int n = param_table(&tmp, &ver, t);
    t[n - 1].dst = &comment; /* "_comment" */
    int rc = ts_opts_apply_json(t, n, json, e);
    if (rc == TS_OK) {
        if (strlen(ver) >= sizeof tmp.openskill_version) {
            rc = ts_fail(e, TS_ECONFIG, "parameter 'openskill_version': expected 6.1.3 or 6.2.0");
        } else {
            snprintf(tmp.openskill_version, sizeof tmp.openskill_version, "%s", ver);
            rc = gauntlet_params_check(&tmp, e);
        }
    }
    free(ver);
    free(comment);
    if (rc == TS_OK) *p = tmp;
    return rc;
}

int gauntlet_params_load(gauntlet_params *p, const char *path, ts_err *e) {
    gauntlet_params_default(p);
    uint8_t *buf;
    size_t len;
    int rc = ts_read_file(path, 1u << 20, &buf, &len, e);
    if (rc) return rc;
    cJSON *j = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    if (!j) return ts_fail(e, TS_ECONFIG, "%s: not valid JSON", path);
    rc = gauntlet_params_from_json(p, j, e);
    cJSON_Delete(j);
    if (rc) return ts_wrap(e, "%s", path);
    return TS_OK;
}

#define BAD(key, ...) ts_fail(e, TS_ECONFIG, "parameter '" key "': " __VA_ARGS__)

static bool in01(double x) { return x >= 0 && x <= 1; }

int gauntlet_params_check(const gauntlet_params *p, ts_err *e) {
    os_version v;
    if (p->uids_per_window < 1 || p->uids_per_window > 4096)
        return BAD("uids_per_window", "must be between 1 and 4096 (got %lld)", (long long)p->uids_per_window);
    if (p->eval_bins < 1 || p->eval_bins > 1000)
        return BAD("eval_bins", "must be between 1 and 1000 (got %lld)", (long long)p->eval_bins);
    if (!(p->eval_lr_factor > 0) || !isfinite(p->eval_lr_factor))
        return BAD("eval_lr_factor", "must be a positive number");
    if (p->eval_samples < 1 || p->eval_samples > 1000000)
        return BAD("eval_samples", "must be between 1 and 1000000");
    if (!(p->binary_ma_alpha > 0 && p->binary_ma_alpha <= 1))
        return BAD("binary_ma_alpha", "must be in (0, 1] (got %g)", p->binary_ma_alpha);
    if (!(p->sync_cap_steps > 0) || !isfinite(p->sync_cap_steps))
        return BAD("sync_cap_steps", "must be a positive number");
    if (!(p->sync_exponent > 0) || !isfinite(p->sync_exponent))
        return BAD("sync_exponent", "must be a positive number");
    if (!(p->sync_poor_steps >= 0) || !isfinite(p->sync_poor_steps))
        return BAD("sync_poor_steps", "must be a number >= 0");
    if (!in01(p->sync_poor_factor)) return BAD("sync_poor_factor", "must be in [0, 1]");
    if (!(p->sync_ema_alpha > 0 && p->sync_ema_alpha <= 1)) return BAD("sync_ema_alpha", "must be in (0, 1]");
    if (!in01(p->bma_threshold)) return BAD("bma_threshold", "must be in [0, 1]");
    if (p->bma_warmup_windows < 0 || p->bma_warmup_windows > 100000000)
        return BAD("bma_warmup_windows", "must be between 0 and 100000000");
    if (!in01(p->gradient_cap)) return BAD("gradient_cap", "must be in [0, 1] (0: no cap)");
    if (os_version_parse(p->openskill_version, &v))
        return BAD("openskill_version", "expected \"6.1.3\" or \"6.2.0\" (got \"%s\")", p->openskill_version);
    if (!isfinite(p->openskill_mu) || fabs(p->openskill_mu) > 1e6)
        return BAD("openskill_mu", "must be a finite number of magnitude below 1e6");
    if (!(p->openskill_sigma > 0) || p->openskill_sigma > 1e6)
        return BAD("openskill_sigma", "must be positive and below 1e6");
    if (!(p->openskill_beta > 0) || p->openskill_beta > 1e6)
        return BAD("openskill_beta", "must be positive and below 1e6");
    if (!(p->openskill_tau > 0) || p->openskill_tau > 1e6)
        return BAD("openskill_tau", "must be positive (the library treats 0 as its default) and below 1e6");
    if (!(p->openskill_kappa > 0 && p->openskill_kappa < 1))
        return BAD("openskill_kappa", "must be in (0, 1)");
    if (!in01(p->missing_factor)) return BAD("missing_factor", "must be in [0, 1]");
    if (!in01(p->inactivity_factor)) return BAD("inactivity_factor", "must be in [0, 1]");
    if (p->inactivity_reset_windows < 0 || p->inactivity_reset_windows > 1000000)
        return BAD("inactivity_reset_windows", "must be between 0 and 1000000");
    if (!in01(p->copycat_slash_overlap)) return BAD("copycat_slash_overlap", "must be in [0, 1]");
    if (!in01(p->copycat_slash_factor)) return BAD("copycat_slash_factor", "must be in [0, 1]");
    if (!in01(p->copycat_reset_overlap)) return BAD("copycat_reset_overlap", "must be in [0, 1]");
    if (!in01(p->copycat_ban_overlap)) return BAD("copycat_ban_overlap", "must be in [0, 1]");
    if (!(p->copycat_slash_overlap <= p->copycat_reset_overlap &&
          p->copycat_reset_overlap <= p->copycat_ban_overlap))
        return BAD("copycat_reset_overlap", "the copycat thresholds must satisfy slash <= reset <= ban");
    if (p->copycat_ban_windows < 0 || p->copycat_ban_windows > 100000000)
        return BAD("copycat_ban_windows", "must be between 0 and 100000000");
    if (p->copycat_start_windows < 0 || p->copycat_start_windows > 100000000)
        return BAD("copycat_start_windows", "must be between 0 and 100000000");
    if (!(p->score_floor >= 0 && p->score_floor < 1e6)) return BAD("score_floor", "must be >= 0");
    if (!(p->missing_score >= -1e6 && p->missing_score <= -1))
        return BAD("missing_score", "must be in [-1e6, -1], below every valid score (got %g)", p->missing_score);
    if (!in01(p->gather_miss_factor_1)) return BAD("gather_miss_factor_1", "must be in [0, 1]");
    if (!in01(p->gather_miss_factor_2)) return BAD("gather_miss_factor_2", "must be in [0, 1]");
    if (!in01(p->gather_miss_factor_3)) return BAD("gather_miss_factor_3", "must be in [0, 1]");
    if (!in01(p->gather_success_min)) return BAD("gather_success_min", "must be in [0, 1]");
    if (p->gather_history < 1 || p->gather_history > GAUNTLET_HISTORY_MAX)
        return BAD("gather_history", "must be between 1 and %d", GAUNTLET_HISTORY_MAX);
    if (!(p->gather_ban_share > 0 && p->gather_ban_share <= 1.5))
        return BAD("gather_ban_share", "must be in (0, 1], or above 1 to turn the ban off");
    if (p->gather_ban_windows < 0 || p->gather_ban_windows > 100000000)
        return BAD("gather_ban_windows", "must be between 0 and 100000000");
    if (p->negative_history < 1 || p->negative_history > GAUNTLET_HISTORY_MAX)
        return BAD("negative_history", "must be between 1 and %d", GAUNTLET_HISTORY_MAX);
    if (p->negative_slash_count < 0 || p->negative_slash_count > p->negative_history)
        return BAD("negative_slash_count", "must be between 0 and negative_history (equal: never)");
    if (!in01(p->negative_slash_factor)) return BAD("negative_slash_factor", "must be in [0, 1]");
    if (p->negative_exclude_consecutive < 0 || p->negative_exclude_consecutive > 1000000)
        return BAD("negative_exclude_consecutive", "must be between 0 and 1000000");
    if (p->negative_field_rank < 1 || p->negative_field_rank > 4096)
        return BAD("negative_field_rank", "must be between 1 and 4096");
    if (p->newcomer_windows < 0 || p->newcomer_windows > 100000000)
        return BAD("newcomer_windows", "must be between 0 and 100000000");
    if (p->newcomer_evals < 0 || p->newcomer_evals > 1000000)
        return BAD("newcomer_evals", "must be between 0 and 1000000");
    if (p->newcomer_eval_slots < 0 || p->newcomer_eval_slots > p->uids_per_window)
        return BAD("newcomer_eval_slots", "must be between 0 and uids_per_window");
    if (p->newcomer_slots < 0 || p->newcomer_slots > p->reserve_peers)
        return BAD("newcomer_slots", "must be between 0 and reserve_peers");
    if (p->gather_peers < 1 || p->gather_peers > 4096)
        return BAD("gather_peers", "must be between 1 and 4096");
    if (p->reserve_peers < 0 || p->reserve_peers > 4096)
        return BAD("reserve_peers", "must be between 0 and 4096");
    if (!(p->gather_share > 0 && p->gather_share <= 1))
        return BAD("gather_share", "must be in (0, 1] (got %g)", p->gather_share);
    if (!(p->gather_ramp_top >= 1) || !isfinite(p->gather_ramp_top))
        return BAD("gather_ramp_top", "must be a number >= 1");
    if (!(p->reserve_decay > 0 && p->reserve_decay <= 1))
        return BAD("reserve_decay", "must be in (0, 1]");
    if (!(p->burn_share >= 0 && p->burn_share <= 1)) return BAD("burn_share", "must be in [0, 1]");
    if (p->burn_uid < 0 || p->burn_uid >= (int64_t)GAUNTLET_MAX_UIDS)
        return BAD("burn_uid", "must be a uid between 0 and %u", GAUNTLET_MAX_UIDS - 1);
    if (p->weights_interval < 1 || p->weights_interval > 1000000)
        return BAD("weights_interval", "must be between 1 and 1000000");
    if (p->peers_interval < 1 || p->peers_interval > 1000000)
        return BAD("peers_interval", "must be between 1 and 1000000");
    if (p->peers_delay < 0 || p->peers_delay > 1000000)
        return BAD("peers_delay", "must be between 0 and 1000000");
    return TS_OK;
}

char *gauntlet_params_to_json(const gauntlet_params *pin) {
    gauntlet_params p = *pin;
    char *ver = NULL;
    ts_opt t[NPARAMS];
    int n = param_table(&p, &ver, t);
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    for (int i = 0; i < n; i++) {
        if (!t[i].dst) continue;
        switch (t[i].type) {
        case TS_OPT_INT: cJSON_AddNumberToObject(o, t[i].name, (double)*(int64_t *)t[i].dst); break;
        case TS_OPT_F64: cJSON_AddNumberToObject(o, t[i].name, *(double *)t[i].dst); break;
        case TS_OPT_BOOL: cJSON_AddBoolToObject(o, t[i].name, *(bool *)t[i].dst); break;
        case TS_OPT_STR: cJSON_AddStringToObject(o, t[i].name, p.openskill_version); break;
        }
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

void gauntlet_params_model(const gauntlet_params *p, os_model *m) {
    os_version v = OS_V6_1_3;
    os_version_parse(p->openskill_version, &v);
    os_model_init(m, OS_PLACKETT_LUCE, v);
    m->mu = p->openskill_mu;
    m->sigma = p->openskill_sigma;
    m->beta = p->openskill_beta;
    m->tau = p->openskill_tau;
    m->kappa = p->openskill_kappa;
}

bool gauntlet_is_weights_window(const gauntlet_params *p, uint64_t window) {
    return window % (uint64_t)p->weights_interval == 0;
}

bool gauntlet_is_peers_window(const gauntlet_params *p, uint64_t window) {
    return window % (uint64_t)p->peers_interval == 0;
}
