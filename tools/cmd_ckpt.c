/* cmd_ckpt.c - tessera ckpt verify: checks a validator's checkpoints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/chain.h"
#include "node/node.h"
#include "storage/storage.h"
#include "tools.h"

static int cmd_ckpt_verify(int argc, char **argv) {
    char *chain_url = NULL, *run = NULL, *signer = NULL, *fetch = NULL;
    int64_t uid = -1;
    const ts_opt opts[] = {
        {"chain", TS_OPT_STR, &chain_url, NULL, "chain URL: the signer must be this uid's (or the leader's) hotkey", 0, 0},
        {"uid", TS_OPT_INT, &uid, "-1", "with --chain: the validator's uid (default: the leader)", 0, 0},
        {"signer", TS_OPT_STR, &signer, NULL, "the expected signer: 0x public key or SS58 address", 0, 0},
        {"run", TS_OPT_STR, &run, NULL, "the expected run id", 0, 0},
        {"fetch", TS_OPT_STR, &fetch, NULL, "after verifying, save the newest weights to this file", 0, 0},
    };
    int nopts = 5;
    const ts_cmdline c = {
        .prog = "tessera ckpt verify",
        .usage = "DIR_OR_URL [--chain URL [--uid N] | --signer KEY] [--run R] [--fetch FILE]",
        .summary = "Verifies a validator's checkpoints: the signed LATEST pointer, each manifest back\n"
                   "along its chain (signature, config, previous-manifest hash) and each weights file\n"
                   "(BLAKE2b hash, loads into the manifest's model).  DIR_OR_URL is the validator's store:\n"
                   "a directory, file:///dir or s3://bucket?endpoint=...  Exit status 0 only if all verify.\n"
                   "Without --chain or --signer only self-consistency is checked (the signer is printed).",
        .opts = opts,
        .nopts = nopts,
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
    bool have_pk = false;
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
    } else if (chain_url) {
        chain *ch;
        if ((rc = chain_open(chain_url, &ch, &e))) goto out;
        chain_metagraph mg;
        if ((rc = chain_metagraph_get(ch, &mg, &e))) {
            chain_close(ch);
            goto out;
        }
        uint32_t who = 0;
        if (uid >= 0) who = (uint32_t)uid;
        else if (chain_leader(&mg, &who)) rc = ts_fail(&e, TS_ENOTFOUND, "the subnet has no leader validator");
        if (!rc && who >= mg.n) rc = ts_fail(&e, TS_ENOTFOUND, "uid %u is not registered", who);
        if (!rc) {
            memcpy(pk, mg.neurons[who].hotkey, TS_PK_BYTES);
            have_pk = true;
            if (!run) run = strdup(chain_get_params(ch)->run_id);
        }
        chain_metagraph_free(&mg);
        chain_close(ch);
        if (rc) goto out;
    }
    store *s;
    if ((rc = store_open(&s, url, NULL, &e))) goto out;
    uint64_t window = 0;
    char wkey[STORE_LAYOUT_KEY_MAX];
    rc = node_verify_checkpoints(s, run, have_pk ? pk : NULL, stdout, &window, wkey, sizeof wkey, &e);
    if (!rc && fetch) rc = store_get_file(s, wkey, fetch, 0, &e);
    store_close(s);
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
