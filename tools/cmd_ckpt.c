/* cmd_ckpt.c - tessera ckpt verify: checks a validator's checkpoints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chain/chain.h"
#include "node/node.h"
#include "storage/storage.h"
#include "tools.h"

static int cmd_ckpt_verify(int argc, char **argv) {
    char *chain_url = NULL, *run = NULL, *signer = NULL, *fetch = NULL, *seen_path = NULL;
    int64_t uid = -1, from = -1, to = -1;
    bool replay = false;
    const ts_opt opts[] = {
        {"chain", TS_OPT_STR, &chain_url, NULL, "chain URL: the signer must be this uid's (or the leader's) hotkey", 0, 0},
        {"uid", TS_OPT_INT, &uid, "-1", "with --chain: the validator's uid (default: the leader)", 0, 0},
        {"signer", TS_OPT_STR, &signer, NULL, "the expected signer: 0x public key or SS58 address", 0, 0},
        {"run", TS_OPT_STR, &run, NULL, "the expected run id", 0, 0},
        {"fetch", TS_OPT_STR, &fetch, NULL, "after verifying, save the newest weights to this file", 0, 0},
        {"replay", TS_OPT_BOOL, &replay, "false",
         "also replay the store's bundles between two checkpoints and require the later to be what they produce "
         "(needs --chain: the run parameters)", 0, 0},
        {"from", TS_OPT_INT, &from, "-1", "with --replay: the earlier checkpoint's window (default: the one before --to)", 0, 0},
        {"to", TS_OPT_INT, &to, "-1", "with --replay: the later checkpoint's window (default: the newest)", 0, 0},
        {"seen", TS_OPT_STR, &seen_path, NULL,
         "file recording the newest checkpoint verified per run and signer; an older LATEST is refused "
         "[default: $TESSERA_HOME/checkpoints-seen.json; 'none' to skip]", 0, 0},
    };
    int nopts = 9;
    const ts_opt_range ranges[] = {
        {"uid", -1, CHAIN_MAX_UIDS - 1, 0},
        {"from", -1, 9007199254740991.0, 0},
        {"to", -1, 9007199254740991.0, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera ckpt verify",
        .usage = "DIR_OR_URL [--chain URL [--uid N] | --signer KEY] [--run R] [--fetch FILE] [--replay [--from W --to W]]",
        .summary = "Verifies a validator's checkpoints: the signed LATEST pointer, each manifest back\n"
                   "along its chain (signature, config, previous-manifest hash) and each weights file\n"
                   "(BLAKE2b hash, loads into the manifest's model).  DIR_OR_URL is the validator's store:\n"
                   "a directory, file:///dir or s3://bucket?endpoint=...  Exit status 0 only if all verify.\n"
                   "Without --chain or --signer only self-consistency is checked (the signer is printed).\n"
                   "With --chain the signer is the leader's hotkey unless --uid names another validator\n"
                   "(use --uid for a store that is not the leader's).  LATEST must name the newest\n"
                   "checkpoint the store holds and be no older than one verified before (--seen).",
        .opts = opts,
        .nopts = nopts,
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
        .env = true,
        .min_pos = 1,
        .max_pos = 1,
    };
    char **pos = NULL;
    int npos = 0;
    int rc = tool_parse(&c, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    uint8_t pk[TS_PK_BYTES];
    bool have_pk = false, have_runp = false;
    node_run runp;
    char url[4200];
    if (strstr(pos[0], "://")) snprintf(url, sizeof url, "%s", pos[0]);
    else {
        char *abs = realpath(pos[0], NULL);
        snprintf(url, sizeof url, "file://%s", abs ? abs : pos[0]);
        free(abs);
    }
    if (signer) {
        if (ts_unhex(pk, TS_PK_BYTES, signer) && ts_ss58_decode(pk, signer)) {
            rc = ts_fail(&e, TS_EINVAL, "--signer: not a 0x public key or SS58 address");
            goto out;
        }
        have_pk = true;
    }
    if (chain_url) {
        chain *ch;
        if ((rc = chain_open(chain_url, &ch, &e))) goto out;
        if (chain_run_pending(ch) && (rc = node_run_fetch(ch, NULL, &e))) {
            chain_close(ch);
            goto out;
        }
        chain_metagraph mg;
        if ((rc = chain_metagraph_get(ch, &mg, &e))) {
            chain_close(ch);
            goto out;
        }
        if (!run) run = strdup(chain_get_params(ch)->run_id);
        if ((rc = node_run_from_json(&runp, run, chain_run_params(ch), &e))) ts_wrap(&e, "the chain's run parameters");
        have_runp = rc == TS_OK;
        uint32_t who = 0;
        if (!rc && !have_pk) {
            if (uid >= 0) {
                who = (uint32_t)uid;
            } else {
                /* the leader of the current window, liveness included */
                chain_clock clk;
                chain_metagraph at;
                uint64_t live = (uint64_t)runp.leader_liveness_windows * chain_get_params(ch)->blocks_per_window;
                bool found = false;
                if (chain_now(ch, &clk, &e) == TS_OK) {
                    uint64_t b = clk.window_start_block;
                    ts_err ae = {0};
                    int arc = chain_metagraph_at(ch, b, &at, &ae);
                    if (arc == TS_ESTATE && clk.window > 0)
                        arc = chain_metagraph_at(ch, b - chain_get_params(ch)->blocks_per_window, &at, &ae);
                    if (arc == TS_OK) {
                        found = chain_leader_live(&at, live, &who) == TS_OK;
                        chain_metagraph_free(&at);
                    }
                }
                if (!found && chain_leader(&mg, &who)) rc = ts_fail(&e, TS_ENOTFOUND, "the subnet has no leader validator");
            }
            if (!rc && who >= mg.n) rc = ts_fail(&e, TS_ENOTFOUND, "uid %u is not registered", who);
            if (!rc) {
                memcpy(pk, mg.neurons[who].hotkey, TS_PK_BYTES);
                have_pk = true;
            }
        }
        chain_metagraph_free(&mg);
        chain_close(ch);
        if (rc) goto out;
    }
    if (replay && !have_runp) {
        rc = ts_fail(&e, TS_EINVAL, "--replay needs --chain: the run parameters say how to replay");
        goto out;
    }
    /* windows never go back: the newest checkpoint verified before, per run and signer */
    char seen_key[256] = "";
    uint64_t seen_min = 0;
    char *seen_file = NULL;
    if (!seen_path || strcmp(seen_path, "none")) {
        if (seen_path) seen_file = strdup(seen_path);
        else {
            char *home = ts_home_dir();
            seen_file = home ? ts_path_join(home, "checkpoints-seen.json") : NULL;
            free(home);
        }
    }
    cJSON *seen_db = NULL;
    if (seen_file && have_pk && run) {
        char hex[2 * TS_PK_BYTES + 1];
        ts_hex(hex, pk, TS_PK_BYTES);
        snprintf(seen_key, sizeof seen_key, "%s/%s", run, hex);
        uint8_t *buf;
        size_t len;
        if (ts_read_file(seen_file, 1 << 20, &buf, &len, NULL) == TS_OK) {
            seen_db = cJSON_ParseWithLength((const char *)buf, len);
            free(buf);
        }
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(seen_db, seen_key);
        if (cJSON_IsNumber(x) && x->valuedouble >= 0) seen_min = (uint64_t)x->valuedouble;
    }
    store *s;
    if ((rc = store_open(&s, url, NULL, &e))) goto out;
    uint64_t window = 0;
    char wkey[STORE_LAYOUT_KEY_MAX];
    rc = node_verify_checkpoints(s, run, have_pk ? pk : NULL, seen_min, stdout, &window, wkey, sizeof wkey, &e);
    if (!rc && replay)
        rc = node_replay_checkpoints(s, &runp, have_pk ? pk : NULL, from >= 0 ? (uint64_t)from : UINT64_MAX,
                                     to >= 0 ? (uint64_t)to : UINT64_MAX, stdout, &e);
    if (!rc && fetch) rc = store_get_file(s, wkey, fetch, 0, &e);
    store_close(s);
    if (!rc && seen_key[0] && window > seen_min) {
        if (!cJSON_IsObject(seen_db)) {
            cJSON_Delete(seen_db);
            seen_db = cJSON_CreateObject();
        }
        cJSON_DeleteItemFromObjectCaseSensitive(seen_db, seen_key);
        cJSON_AddNumberToObject(seen_db, seen_key, (double)window);
        char *text = cJSON_Print(seen_db);
        ts_err we = {0};
        if (text && ts_write_atomic(seen_file, text, strlen(text), &we))
            fprintf(stderr, "tessera ckpt verify: warning: %s\n", we.msg);
        free(text);
    }
    cJSON_Delete(seen_db);
    free(seen_file);
    if (!rc) {
        printf("verified: newest checkpoint is window %llu%s\n", (unsigned long long)window,
               have_pk ? " (signer matches)" : " (signer not checked against the chain)");
        if (fetch) printf("saved %s\n", fetch);
    }
out:
    free(pos);
    ts_opts_free(opts, nopts);
    if (rc) {
        fprintf(stderr, "tessera ckpt verify: FAILED: %s\n", e.msg);
        return 1;
    }
    return 0;
}

static int cmd_ckpt(int argc, char **argv) {
    static const tool_verb verbs[] = {
        {"verify", "verify a validator's signed checkpoints and their chain", cmd_ckpt_verify},
    };
    return tool_dispatch("tessera ckpt", "Checkpoints published by validators.", verbs, 1, argc, argv);
}

TS_COMMAND("ckpt", "verify published checkpoints", 60, cmd_ckpt)
