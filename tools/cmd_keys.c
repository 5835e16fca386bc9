/* cmd_keys.c - tessera keygen / tessera keys show. */
#include <stdio.h>
#include <stdlib.h>

#include "tools.h"

static int cmd_keygen(int argc, char **argv) {
    char *wallet = NULL, *hotkey = NULL;
    const ts_opt opts[] = {
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "hotkey name", TS_OPT_REQUIRED, 'k'},
    };
    const ts_cmdline c = {
        .prog = "tessera keygen",
        .usage = "--wallet W --hotkey H",
        .summary = "Creates an Ed25519 hotkey in $TESSERA_HOME/wallets/W/hotkeys/H (mode 0600, in a\n"
                   "directory of mode 0700).  Refuses to overwrite an existing key, or to create one in a\n"
                   "directory group or others can write.",
        .opts = opts,
        .nopts = 2,
        .env = true,
        .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    ts_keypair kp;
    char *path = NULL;
    rc = ts_key_create(wallet, hotkey, &kp, &path, &e);
    if (rc == TS_OK) {
        char hex[2 * TS_PK_BYTES + 1], ss[64];
        ts_hex(hex, kp.pk, TS_PK_BYTES);
        ts_ss58(ss, kp.pk);
        printf("created %s\npublic key  0x%s\nss58        %s\n", path, hex, ss);
    }
    free(path);
    ts_opts_free(opts, 2);
    return rc ? tool_error(&e) : 0;
}

static int cmd_keys_show(int argc, char **argv) {
    char *wallet = NULL, *hotkey = NULL;
    bool json = false;
    const ts_opt opts[] = {
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "hotkey name", TS_OPT_REQUIRED, 'k'},
        {"json", TS_OPT_BOOL, &json, "false", "print JSON", 0, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera keys show",
        .usage = "--wallet W --hotkey H [--json]",
        .summary = "Prints a hotkey's public key and SS58 address (never the secret).  Like every command\n"
                   "that loads a key, refuses a key file group or others can access (chmod 600) or a key\n"
                   "directory they can write (chmod 700).",
        .opts = opts,
        .nopts = 3,
        .env = true,
        .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    ts_keypair kp;
    rc = ts_key_load(wallet, hotkey, &kp, &e);
    if (rc == TS_OK) {
        char hex[2 * TS_PK_BYTES + 1], ss[64];
        ts_hex(hex, kp.pk, TS_PK_BYTES);
        ts_ss58(ss, kp.pk);
        if (json)
            printf("{\"wallet\": \"%s\", \"hotkey\": \"%s\", \"public_key\": \"0x%s\", \"ss58\": \"%s\"}\n",
                   wallet, hotkey, hex, ss);
        else
            printf("wallet      %s\nhotkey      %s\npublic key  0x%s\nss58        %s\n", wallet, hotkey, hex, ss);
    }
    ts_opts_free(opts, 3);
    return rc ? tool_error(&e) : 0;
}

static int cmd_keys(int argc, char **argv) {
    static const tool_verb verbs[] = {
        {"show", "print a hotkey's public key", cmd_keys_show},
    };
    return tool_dispatch("tessera keys", "Inspect hotkeys.", verbs, 1, argc, argv);
}

TS_COMMAND("keygen", "create an Ed25519 hotkey", 10, cmd_keygen)
TS_COMMAND("keys", "show hotkeys", 11, cmd_keys)
