/* cmd_chain.c - tessera chain status|metagraph|register|commit|weights: the
 * chain interface (chain/chain.h) from the command line, on any backend:
 * Bittensor's chain (--chain subtensor:URL --netuid N) or a local subnet
 * (--chain local:DIR).  Registration on subtensor is paid by the wallet's
 * coldkey (burned_register); everything else is signed by the hotkey.
 * tessera chain yuma runs one Yuma consensus epoch (yuma/yuma.h) on a JSON
 * description, with no chain at all. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chain/chain.h"
#include "node/node.h"
#include "tools.h"
#include "yuma/yuma.h"

#define NOPTS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Opens --chain, adding ?netuid=N to a subtensor URL when --netuid is given
 * and the URL has none. */
static int open_chain(const char *url, int64_t netuid, chain **ch, ts_err *e) {
    if (!url || !*url) return ts_fail(e, TS_EINVAL, "--chain is required (subtensor:URL or local:DIR)");
    if (!strncmp(url, "subtensor:", 10) && netuid >= 0 && !strstr(url, "netuid=")) {
        size_t n = strlen(url) + 32;
        char *u = malloc(n);
        if (!u) return ts_fail(e, TS_ENOMEM, "out of memory");
        snprintf(u, n, "%s%cnetuid=%lld", url, strchr(url, '?') ? '&' : '?', (long long)netuid);
        int rc = chain_open(u, ch, e);
        free(u);
        return rc;
    }
    if (!strncmp(url, "subtensor:", 10) && !strstr(url, "netuid="))
        return ts_fail(e, TS_EINVAL, "--netuid is required with a subtensor chain");
    return chain_open(url, ch, e);
}

static void set_root(const char *wallet_path) {
    if (wallet_path && wallet_path[0]) ts_wallet_set_root(wallet_path);
}

#define CHAIN_OPTS                                                                                      \
    {"chain", TS_OPT_STR, &url, NULL, "subtensor:http://HOST:PORT or local:DIR", TS_OPT_REQUIRED, 0},   \
    {"netuid", TS_OPT_INT, &netuid, "-1", "the subnet (subtensor)", 0, 0}

/* ---------------------------------------------------------------- status */

static int cmd_status(int argc, char **argv) {
    char *url = NULL;
    int64_t netuid = -1;
    bool json = false;
    const ts_opt opts[] = {
        CHAIN_OPTS,
        {"json", TS_OPT_BOOL, &json, "false", "print JSON", TS_OPT_NOENV, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera chain status",
        .usage = "--chain URL [--netuid N] [--json]",
        .summary = "The chain's runtime, the subnet's clock and hyperparameters, and how many uids\n"
                   "and validator permits it has.",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    chain *ch = NULL;
    chain_info in;
    chain_clock ck;
    chain_metagraph mg = {0};
    if ((rc = open_chain(url, netuid, &ch, &e)) || (rc = chain_get_info(ch, &in, &e)) ||
        (rc = chain_now(ch, &ck, &e)) || (rc = chain_metagraph_get(ch, &mg, &e)))
        goto out;
    const chain_params *p = chain_get_params(ch);
    uint32_t permits = 0;
    for (uint32_t u = 0; u < mg.n; u++) permits += mg.neurons[u].validator_permit;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "backend", in.backend);
        cJSON_AddStringToObject(o, "where", in.where);
        cJSON_AddStringToObject(o, "chain", in.chain_name);
        cJSON_AddNumberToObject(o, "spec_version", in.spec_version);
        cJSON_AddNumberToObject(o, "transaction_version", in.tx_version);
        cJSON_AddNumberToObject(o, "netuid", p->netuid);
        if (chain_run_pending(ch)) cJSON_AddNullToObject(o, "run_id");
        else cJSON_AddStringToObject(o, "run_id", p->run_id);
        cJSON_AddNumberToObject(o, "block", (double)ck.block);
        cJSON_AddNumberToObject(o, "block_timestamp", ck.block_timestamp);
        cJSON_AddNumberToObject(o, "block_time", p->block_time);
        cJSON_AddNumberToObject(o, "window", (double)ck.window);
        cJSON_AddNumberToObject(o, "blocks_per_window", (double)p->blocks_per_window);
        cJSON_AddNumberToObject(o, "uids", mg.n);
        cJSON_AddNumberToObject(o, "max_uids", p->max_uids);
        cJSON_AddNumberToObject(o, "validator_permits", permits);
        cJSON_AddNumberToObject(o, "immunity_period", (double)p->immunity_period);
        cJSON_AddNumberToObject(o, "weights_rate_limit", (double)p->weights_rate_limit);
        cJSON_AddNumberToObject(o, "tempo", (double)in.tempo);
        cJSON_AddNumberToObject(o, "weights_version_key", (double)in.weights_version_key);
        cJSON_AddBoolToObject(o, "commit_reveal", in.commit_reveal);
        cJSON_AddNumberToObject(o, "reveal_period_epochs", (double)in.reveal_period_epochs);
        cJSON_AddNumberToObject(o, "burn_rao", (double)in.burn_rao);
        cJSON_AddNumberToObject(o, "pending_reveals", in.pending_reveals);
        char *s = cJSON_Print(o);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
        goto out;
    }
    if (!strcmp(in.backend, "subtensor"))
        printf("%s at %s: runtime spec %u, transaction version %u\n", in.chain_name, in.where, in.spec_version,
               in.tx_version);
    else
        printf("local subnet %s\n", url + 6);
    if (chain_run_pending(ch))
        printf("netuid %u  block %llu  (%.3g s blocks; the run: tessera chain run)\n", p->netuid,
               (unsigned long long)ck.block, p->block_time);
    else
        printf("netuid %u  run %s  block %llu  window %llu (%llu blocks each, %.3g s blocks)\n", p->netuid, p->run_id,
               (unsigned long long)ck.block, (unsigned long long)ck.window, (unsigned long long)p->blocks_per_window,
               p->block_time);
    printf("%u of %u uids, %u validator permits, immunity %llu blocks, weights rate limit %llu blocks\n", mg.n,
           p->max_uids, permits, (unsigned long long)p->immunity_period, (unsigned long long)p->weights_rate_limit);
    if (!strcmp(in.backend, "subtensor")) {
        char burn[40];
        chain_fmt_tao(burn, sizeof burn, in.burn_rao, 0);
        printf("tempo %llu, weights version key %llu, commit-reveal %s", (unsigned long long)in.tempo,
               (unsigned long long)in.weights_version_key, in.commit_reveal ? "on" : "off");
        if (in.commit_reveal) printf(" (reveal after %llu epochs)", (unsigned long long)in.reveal_period_epochs);
        printf(", registration burn %s TAO\n", burn);
        if (in.pending_reveals) printf("%u weight commits of this machine wait for their reveal\n", in.pending_reveals);
    }
out:
    chain_metagraph_free(&mg);
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

/* ------------------------------------------------------------- metagraph */

static int cmd_metagraph(int argc, char **argv) {
    char *url = NULL;
    int64_t netuid = -1;
    bool json = false;
    const ts_opt opts[] = {
        CHAIN_OPTS,
        {"json", TS_OPT_BOOL, &json, "false", "print JSON", TS_OPT_NOENV, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera chain metagraph",
        .usage = "--chain URL [--netuid N] [--json]",
        .summary = "Every uid of the subnet: hotkey, stake, validator permit, registration block, last\n"
                   "activity, what the last epoch gave it (incentive and dividends as fractions,\n"
                   "emission in TAO) and commitment size.",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    chain *ch = NULL;
    chain_metagraph mg = {0};
    chain_commitment *cm = NULL;
    uint32_t ncm = 0;
    chain_epoch ep = {0};
    if ((rc = open_chain(url, netuid, &ch, &e)) || (rc = chain_metagraph_get(ch, &mg, &e)) ||
        (rc = chain_commitments(ch, &cm, &ncm, &e)))
        goto out;
    /* The last epoch's results (incentive, dividends, emission).  None yet,
     * or a backend without epochs: the columns show "-". */
    ts_err ee = {0};
    int erc = chain_epoch_last(ch, &ep, &ee);
    if (erc && erc != TS_ENOTFOUND && erc != TS_EUNSUPPORTED) TS_WARN("the last epoch could not be read: %s", ee.msg);
    /* a uid's values, when the epoch knew its current holder */
#define EPOCH_OF(x) tool_epoch_of(erc ? NULL : &ep, (x))
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "netuid", chain_get_params(ch)->netuid);
        cJSON_AddNumberToObject(o, "block", (double)mg.block);
        cJSON_AddNumberToObject(o, "n", mg.n);
        cJSON_AddNumberToObject(o, "max_uids", mg.max_uids);
        if (!erc) {
            cJSON *eo = cJSON_AddObjectToObject(o, "epoch");
            cJSON_AddNumberToObject(eo, "block", (double)ep.block);
            cJSON_AddNumberToObject(eo, "tempo", (double)ep.tempo);
            cJSON_AddNumberToObject(eo, "next_block", (double)ep.next_block);
            cJSON_AddNumberToObject(eo, "emission_rao", (double)ep.emission);
            cJSON_AddNumberToObject(eo, "n", ep.n);
            if (ep.has_earned) cJSON_AddNumberToObject(eo, "owner_emission_rao", (double)ep.owner_emission);
            if (ep.missing[0]) cJSON_AddStringToObject(eo, "missing", ep.missing);
        } else {
            cJSON_AddNullToObject(o, "epoch");
        }
        cJSON *a = cJSON_AddArrayToObject(o, "neurons");
        for (uint32_t u = 0; u < mg.n; u++) {
            const chain_neuron *x = &mg.neurons[u];
            char hex[67] = "0x", ss[64];
            ts_hex(hex + 2, x->hotkey, 32);
            ts_ss58(ss, x->hotkey);
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "uid", u);
            cJSON_AddStringToObject(j, "hotkey", hex);
            cJSON_AddStringToObject(j, "ss58", ss);
            static const uint8_t none[TS_PK_BYTES];
            if (memcmp(x->coldkey, none, sizeof none)) {
                char cs[64];
                ts_ss58(cs, x->coldkey);
                cJSON_AddStringToObject(j, "coldkey", cs);
            } else {
                cJSON_AddNullToObject(j, "coldkey");
            }
            cJSON_AddNumberToObject(j, "stake_rao", (double)x->stake);
            cJSON_AddBoolToObject(j, "validator_permit", x->validator_permit);
            cJSON_AddNumberToObject(j, "registered_block", (double)x->registered_block);
            if (x->last_active == CHAIN_BLOCK_NONE) cJSON_AddNullToObject(j, "last_active");
            else cJSON_AddNumberToObject(j, "last_active", (double)x->last_active);
            tool_epoch_json(j, EPOCH_OF(x), ep.has_earned);
            for (uint32_t i = 0; i < ncm; i++)
                if (cm[i].uid == u) {
                    cJSON_AddNumberToObject(j, "commitment_bytes", cm[i].len);
                    cJSON_AddNumberToObject(j, "commitment_block", (double)cm[i].block);
                }
            cJSON_AddItemToArray(a, j);
        }
        char *s = cJSON_Print(o);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
        goto out;
    }
    printf("netuid %u at block %llu: %u of %u uids\n", chain_get_params(ch)->netuid, (unsigned long long)mg.block,
           mg.n, mg.max_uids);
    if (!erc) {
        char em[40];
        chain_fmt_tao(em, sizeof em, ep.emission, 1);
        printf("last epoch at block %llu (tempo %llu, next at block %llu): %s TAO to the uids%s%s\n",
               (unsigned long long)ep.block, (unsigned long long)ep.tempo, (unsigned long long)ep.next_block, em,
               ep.missing[0] ? "; the runtime lacks " : "", ep.missing);
    }
    printf("UID  %-48s  %-16s  %14s  VALIDATOR  REG.BLOCK  %9s  %9s  %9s  %14s  COMMITMENT\n", "HOTKEY", "COLDKEY",
           "STAKE (TAO)", "ACTIVE", "INCENTIVE", "DIVIDENDS", "EMISSION (TAO)");
    for (uint32_t u = 0; u < mg.n; u++) {
        const chain_neuron *x = &mg.neurons[u];
        char ss[64], cs[64] = "-", tao[40], act[24] = "-", com[32] = "-";
        static const uint8_t none[TS_PK_BYTES];
        ts_ss58(ss, x->hotkey);
        if (memcmp(x->coldkey, none, sizeof none)) {
            ts_ss58(cs, x->coldkey);
            memcpy(cs + 6, "...", 4); /* short: the first six characters */
        }
        chain_fmt_tao(tao, sizeof tao, x->stake, 0);
        if (x->last_active != CHAIN_BLOCK_NONE) snprintf(act, sizeof act, "%llu", (unsigned long long)x->last_active);
        for (uint32_t i = 0; i < ncm; i++)
            if (cm[i].uid == u) snprintf(com, sizeof com, "%u bytes @%llu", cm[i].len, (unsigned long long)cm[i].block);
        char inc[16] = "-", div[16] = "-", emi[40] = "-";
        const chain_epoch_uid *y = EPOCH_OF(x);
        if (y) {
            snprintf(inc, sizeof inc, "%.4f", y->incentive / 65535.0);
            snprintf(div, sizeof div, "%.4f", y->dividends / 65535.0);
            chain_fmt_tao(emi, sizeof emi, y->emission, 1);
        }
        printf("%3u  %-48s  %-16s  %14s  %-9s  %9llu  %9s  %9s  %9s  %14s  %s\n", u, ss, cs, tao,
               x->validator_permit ? "permit" : "-", (unsigned long long)x->registered_block, act, inc, div, emi, com);
    }
#undef EPOCH_OF
out:
    chain_epoch_free(&ep);
    free(cm);
    chain_metagraph_free(&mg);
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

/* -------------------------------------------------------------- register */

static int cmd_register(int argc, char **argv) {
    char *url = NULL, *wallet = NULL, *hotkey = NULL, *wallet_path = NULL;
    int64_t netuid = -1;
    const ts_opt opts[] = {
        CHAIN_OPTS,
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name (its coldkey pays the burn)", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "the hotkey to register", TS_OPT_REQUIRED, 'k'},
        {"wallet-path", TS_OPT_STR, &wallet_path, NULL, "wallet root directory", 0, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera chain register",
        .usage = "--chain subtensor:URL --netuid N --wallet W --hotkey H",
        .summary = "Registers hotkey H on the subnet, paying the current burn with wallet W's coldkey\n"
                   "(burned_register; the coldkey's password comes from TESSERA_COLDKEY_PASSWORD or a\n"
                   "prompt).  On a local subnet, the hotkey registers itself.",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    set_root(wallet_path);
    ts_err e = {0};
    chain *ch = NULL;
    ts_keypair hk, ck;
    chain_registration r;
    char ss[64];
    if ((rc = ts_key_load(wallet, hotkey, &hk, &e)) || (rc = open_chain(url, netuid, &ch, &e))) goto out;
    ts_ss58(ss, hk.pk);
    if (!strncmp(url, "local:", 6)) rc = chain_register(ch, &hk, &r, &e);
    else if (!(rc = ts_coldkey_load(wallet, NULL, &ck, &e))) rc = chain_register_burned(ch, &ck, hk.pk, &r, &e);
    if (!rc) printf("registered %s/%s (%s) as uid %u at block %llu\n", wallet, hotkey, ss, r.uid, (unsigned long long)r.block);
out:
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

/* ---------------------------------------------------------------- commit */

static int cmd_commit(int argc, char **argv) {
    char *url = NULL, *wallet = NULL, *hotkey = NULL, *data = NULL, *wallet_path = NULL;
    int64_t netuid = -1;
    const ts_opt opts[] = {
        CHAIN_OPTS,
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "hotkey name", TS_OPT_REQUIRED, 'k'},
        {"data", TS_OPT_STR, &data, NULL, "the commitment (e.g. bucket read credentials)", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
        {"wallet-path", TS_OPT_STR, &wallet_path, NULL, "wallet root directory", 0, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera chain commit",
        .usage = "--chain URL [--netuid N] --wallet W --hotkey H --data STRING",
        .summary = "Publishes a hotkey's commitment (on subtensor: Commitments.set_commitment, in Raw\n"
                   "fields of up to 128 bytes), then reads it back.",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    set_root(wallet_path);
    ts_err e = {0};
    chain *ch = NULL;
    ts_keypair kp;
    if (!(rc = ts_key_load(wallet, hotkey, &kp, &e)) && !(rc = open_chain(url, netuid, &ch, &e)) &&
        !(rc = chain_commit(ch, &kp, data, &e)))
        printf("committed %zu bytes for %s/%s\n", strlen(data), wallet, hotkey);
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

/* --------------------------------------------------------------- weights */

static int parse_weights(const char *spec, uint32_t *uids, float *w, uint32_t *n, ts_err *e) {
    *n = 0;
    for (const char *p = spec; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        int64_t u;
        double v;
        char *eq;
        if (len >= sizeof item || *n == CHAIN_MAX_UIDS)
            return ts_fail(e, TS_EINVAL, "--set: entry %u is too long or there are too many", *n);
        memcpy(item, p, len);
        item[len] = 0;
        if (!(eq = strchr(item, '=')) || (*eq = 0, ts_parse_i64(item, &u)) || u < 0 || u >= CHAIN_MAX_UIDS ||
            ts_parse_f64(eq + 1, &v) || !isfinite(v) || v < 0)
            return ts_fail(e, TS_EINVAL, "--set: '%.*s' is not UID=WEIGHT", (int)len, p);
        uids[*n] = (uint32_t)u;
        w[(*n)++] = (float)v;
        p = comma ? comma + 1 : p + len;
    }
    return *n ? TS_OK : ts_fail(e, TS_EINVAL, "--set: no weights given");
}

static int cmd_weights(int argc, char **argv) {
    char *url = NULL, *wallet = NULL, *hotkey = NULL, *spec = NULL, *wallet_path = NULL;
    int64_t netuid = -1;
    bool json = false, reveal = false;
    const ts_opt opts[] = {
        CHAIN_OPTS,
        {"set", TS_OPT_STR, &spec, NULL, "set weights: UID=WEIGHT,UID=WEIGHT,...", TS_OPT_NOENV, 0},
        {"reveal", TS_OPT_BOOL, &reveal, "false", "reveal this hotkey's weight commits that are due", TS_OPT_NOENV, 0},
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name (--set, --reveal)", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "the validator's hotkey (--set, --reveal)", 0, 'k'},
        {"wallet-path", TS_OPT_STR, &wallet_path, NULL, "wallet root directory", 0, 0},
        {"json", TS_OPT_BOOL, &json, "false", "print JSON", TS_OPT_NOENV, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera chain weights",
        .usage = "--chain URL [--netuid N] [--json] | --set 1=0.75,2=0.25 --wallet W --hotkey H | --reveal ...",
        .summary = "Shows every validator's weights (u16, the largest 65535, as the chain stores them).\n"
                   "--set sets the hotkey's weights (scaled so the largest is 65535); where the subnet\n"
                   "has commit-reveal on, it commits them and keeps the salt under $TESSERA_HOME so that\n"
                   "--reveal (or the next --set) reveals them when the reveal period has come.",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    set_root(wallet_path);
    ts_err e = {0};
    chain *ch = NULL;
    chain_weight_row *rows = NULL;
    uint32_t nrows = 0;
    if ((spec || reveal) && !hotkey) {
        rc = ts_fail(&e, TS_EINVAL, "--set and --reveal need --hotkey");
        goto out;
    }
    if ((rc = open_chain(url, netuid, &ch, &e))) goto out;
    if (spec || reveal) {
        ts_keypair kp;
        if ((rc = ts_key_load(wallet, hotkey, &kp, &e))) goto out;
        if (spec) {
            static uint32_t uids[CHAIN_MAX_UIDS];
            static float w[CHAIN_MAX_UIDS];
            uint32_t n;
            if ((rc = parse_weights(spec, uids, w, &n, &e)) || (rc = chain_set_weights(ch, &kp, uids, w, n, &e))) goto out;
            chain_info in;
            if (!chain_get_info(ch, &in, &e) && in.commit_reveal)
                printf("committed %u weights for %s/%s (revealed by --reveal after %llu epochs)\n", n, wallet, hotkey,
                       (unsigned long long)in.reveal_period_epochs);
            else
                printf("set %u weights for %s/%s\n", n, wallet, hotkey);
        } else {
            uint32_t rv, left;
            if ((rc = chain_reveal_pending(ch, &kp, &rv, &left, &e))) goto out;
            printf("revealed %u weight commits for %s/%s; %u still wait\n", rv, wallet, hotkey, left);
        }
        goto out;
    }
    if ((rc = chain_weights(ch, &rows, &nrows, &e))) goto out;
    if (json) {
        cJSON *a = cJSON_CreateArray();
        for (uint32_t i = 0; i < nrows; i++) {
            cJSON *o = cJSON_CreateObject();
            char hex[67] = "0x";
            ts_hex(hex + 2, rows[i].hotkey, 32);
            cJSON_AddNumberToObject(o, "uid", rows[i].uid);
            cJSON_AddStringToObject(o, "hotkey", hex);
            cJSON_AddNumberToObject(o, "block", (double)rows[i].block);
            cJSON *we = cJSON_AddObjectToObject(o, "u16");
            for (uint32_t k = 0; k < rows[i].n; k++) {
                char key[16];
                snprintf(key, sizeof key, "%u", rows[i].w[k].uid);
                cJSON_AddNumberToObject(we, key, rows[i].w[k].weight);
            }
            cJSON_AddItemToArray(a, o);
        }
        char *s = cJSON_Print(a);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(a);
        goto out;
    }
    if (!nrows) printf("no weights set\n");
    for (uint32_t i = 0; i < nrows; i++) {
        printf("uid %u @%llu:", rows[i].uid, (unsigned long long)rows[i].block);
        for (uint32_t k = 0; k < rows[i].n; k++) printf(" %u=%u", rows[i].w[k].uid, rows[i].w[k].weight);
        printf("\n");
    }
out:
    free(rows);
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

/* ----------------------------------------------------------- the run */

static int cmd_publish_run(int argc, char **argv) {
    char *url = NULL, *wallet = NULL, *hotkey = NULL, *wallet_path = NULL, *store_url = NULL, *commitment = NULL,
         *run_id = NULL, *params = NULL;
    int64_t netuid = -1, bpw = 0;
    const ts_opt opts[] = {
        CHAIN_OPTS,
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "the subnet owner's hotkey", TS_OPT_REQUIRED, 'k'},
        {"wallet-path", TS_OPT_STR, &wallet_path, NULL, "wallet root directory", 0, 0},
        {"store-url", TS_OPT_STR, &store_url, NULL, "the owner's bucket (written with AWS_* credentials)", TS_OPT_REQUIRED, 0},
        {"store-commitment", TS_OPT_STR, &commitment, NULL, "how nodes read that bucket (default: --store-url for file://)", 0, 0},
        {"run-id", TS_OPT_STR, &run_id, NULL, "the run id", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
        {"blocks-per-window", TS_OPT_INT, &bpw, "100", "blocks per window", TS_OPT_NOENV, 0},
        {"params", TS_OPT_STR, &params, NULL, "the run parameters (a JSON file, as a local genesis' params)", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
    };
    static const ts_opt_range ranges[] = {{"blocks-per-window", 1, 1000000, 0}};
    const ts_cmdline c = {
        .prog = "tessera chain publish-run",
        .usage = "--chain subtensor:URL --netuid N --wallet W --hotkey OWNER --store-url URL --run-id ID "
                 "--blocks-per-window B --params FILE",
        .summary = "The subnet owner publishes the run: run.json (a signed object: run id, subnet, blocks per\n"
                   "window, run parameters) in its bucket, and its BLAKE2b-256 hash in the owner hotkey's\n"
                   "commitment (\"run1 HASH BUCKET\").  Every node checks both before it starts.",
        .opts = opts, .nopts = NOPTS(opts), .ranges = ranges, .nranges = 1, .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    set_root(wallet_path);
    ts_err e = {0};
    chain *ch = NULL;
    store *own = NULL;
    ts_keypair kp;
    uint8_t *pb = NULL;
    size_t pl = 0;
    char *ptext = NULL;
    if ((rc = ts_key_load(wallet, hotkey, &kp, &e)) || (rc = ts_read_file(params, 1u << 20, &pb, &pl, &e)) ||
        (rc = open_chain(url, netuid, &ch, &e)) || (rc = store_open(&own, store_url, NULL, &e)))
        goto out;
    if (!(ptext = malloc(pl + 1))) {
        rc = ts_fail(&e, TS_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(ptext, pb, pl);
    ptext[pl] = 0;
    if (memcmp(chain_get_params(ch)->owner, kp.pk, TS_PK_BYTES)) {
        char a[64], b[64];
        ts_ss58(a, kp.pk);
        ts_ss58(b, chain_get_params(ch)->owner);
        rc = ts_fail(&e, TS_EDENIED, "%s/%s (%s) is not the subnet owner's hotkey (%s): nodes would not accept its run", wallet,
                     hotkey, a, b);
        goto out;
    }
    if (!(rc = node_run_publish(ch, &kp, own, commitment ? commitment : store_url, run_id, (uint64_t)bpw, ptext, &e)))
        printf("published run %s (%lld blocks per window) for subnet %u\n", run_id, (long long)bpw,
               chain_get_params(ch)->netuid);
out:
    free(pb);
    free(ptext);
    store_close(own);
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

static int cmd_run(int argc, char **argv) {
    char *url = NULL;
    int64_t netuid = -1;
    const ts_opt opts[] = {CHAIN_OPTS};
    const ts_cmdline c = {
        .prog = "tessera chain run",
        .usage = "--chain URL [--netuid N]",
        .summary = "The run nodes of this subnet would start: from the chain URL (a private run) or the\n"
                   "owner's published description, checked as a node checks it (hash and signature).",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    chain *ch = NULL;
    if (!(rc = open_chain(url, netuid, &ch, &e)) && (!chain_run_pending(ch) || !(rc = node_run_fetch(ch, NULL, &e)))) {
        const chain_params *p = chain_get_params(ch);
        printf("run %s  netuid %u  %llu blocks per window\nparams %s\n", p->run_id, p->netuid,
               (unsigned long long)p->blocks_per_window, p->run_params_json ? p->run_params_json : "{}");
    }
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

static int cmd_encode(int argc, char **argv) {
    char *url = NULL, *pallet = NULL, *call = NULL, *args = NULL;
    int64_t netuid = -1;
    const ts_opt opts[] = {
        CHAIN_OPTS,
        {"pallet", TS_OPT_STR, &pallet, NULL, "pallet name (SubtensorModule, Commitments, ...)", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
        {"call", TS_OPT_STR, &call, NULL, "call name (set_weights, ...)", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
        {"args", TS_OPT_STR, &args, "{}", "arguments: a JSON object by name", TS_OPT_NOENV, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera chain encode",
        .usage = "--chain subtensor:URL --netuid N --pallet P --call C --args JSON",
        .summary = "Prints a call's SCALE encoding as the node's runtime metadata defines it (pallet and\n"
                   "call index, then the arguments), the bytes a node would sign and submit.",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    chain *ch = NULL;
    char *hex = NULL;
    if (!(rc = open_chain(url, netuid, &ch, &e)) && !(rc = chain_encode_call(ch, pallet, call, args, &hex, &e)))
        printf("%s\n", hex);
    free(hex);
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

/* ------------------------------------------------------------------ yuma */

#define YUMA_MAX_INPUT (64u << 20)

static int cmd_yuma(int argc, char **argv) {
    char *path = NULL;
    const ts_opt opts[] = {
        {"in", TS_OPT_STR, &path, NULL, "the epoch's input as JSON (default: standard input)", TS_OPT_NOENV, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera chain yuma",
        .usage = "[--in FILE]",
        .summary = "Runs one Yuma consensus epoch as subtensor's runtime spec 143 computes it (its\n"
                   "fixed point, bit for bit) and prints what the epoch stores, per uid.  Needs no chain.\n"
                   "Input: {\"block\": B, \"emission\": RAO, \"params\": {\"kappa\": 32767,\n"
                   "  \"bonds_moving_average\": 900000, \"activity_cutoff\": 5000, \"max_validators\": 64},\n"
                   "  \"neurons\": [{\"stake\": RAO, \"last_update\": B, \"registered\": B, \"validator_permit\": true,\n"
                   "  \"weights\": [[uid, u16], ..], \"bonds\": [[uid, u16], ..]}, ..]} (index = uid; params and\n"
                   "neuron fields default to the values shown, 0, false, []; integers over 2^53 as strings).\n"
                   "Output: {\"neurons\": [{\"uid\", \"active\", \"validator_permit\", \"rank\", \"trust\",\n"
                   "  \"consensus\", \"incentive\", \"dividends\", \"validator_trust\", \"pruning_score\",\n"
                   "  \"emission\", \"server_emission\", \"validator_emission\", \"bonds\"}, ..]}.  docs/CHAIN.md.",
        .opts = opts, .nopts = NOPTS(opts), .env = false, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    char *text = NULL;
    size_t len = 0;
    if (path) rc = ts_read_file(path, YUMA_MAX_INPUT, (uint8_t **)&text, &len, &e);
    else rc = tool_read_stdin(YUMA_MAX_INPUT, &text, &len, &e);
    cJSON *j = NULL;
    yuma_params p;
    yuma_input in = {0};
    yuma_output out = {0};
    char *res = NULL;
    if (!rc && !(j = cJSON_ParseWithLength(text, len)))
        rc = ts_fail(&e, TS_EINVAL, "%s: not valid JSON", path ? path : "standard input");
    if (!rc) rc = yuma_input_from_json(j, &p, &in, &e);
    if (!rc) rc = yuma_epoch(&p, &in, &out, &e);
    if (!rc && !(res = yuma_output_to_json(&out))) rc = ts_fail(&e, TS_ENOMEM, "out of memory");
    if (!rc) fputs(res, stdout);
    free(res);
    yuma_output_free(&out);
    yuma_input_free(&in);
    cJSON_Delete(j);
    free(text);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

static int cmd_chain(int argc, char **argv) {
    static const tool_verb verbs[] = {
        {"status", "the runtime, the subnet's clock and hyperparameters", cmd_status},
        {"metagraph", "every uid: hotkey, stake, permit, registration, activity", cmd_metagraph},
        {"register", "register a hotkey (subtensor: burned_register, paid by the coldkey)", cmd_register},
        {"commit", "publish a hotkey's commitment", cmd_commit},
        {"weights", "show weights, or set / reveal a validator's", cmd_weights},
        {"publish-run", "the subnet owner publishes the run description", cmd_publish_run},
        {"run", "the run this subnet's nodes start (checked)", cmd_run},
        {"encode", "a call's encoding by the runtime's metadata", cmd_encode},
        {"yuma", "one Yuma consensus epoch on a JSON description (no chain needed)", cmd_yuma},
    };
    return tool_dispatch("tessera chain",
                         "Operate on a subnet through the chain interface: Bittensor's chain\n"
                         "(--chain subtensor:http://HOST:PORT --netuid N) or a local subnet (--chain local:DIR).\n"
                         "`tessera chain yuma` computes one epoch of Yuma consensus offline.",
                         verbs, NOPTS(verbs), argc, argv);
}

TS_COMMAND("chain", "a subnet on Bittensor's chain (subtensor) or a local one", 21, cmd_chain)
