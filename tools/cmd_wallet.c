/* cmd_wallet.c - tessera wallet: Bittensor wallets (btcli's layout and
 * files) - new-hotkey, new-coldkey, list, show. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "tools.h"

#define WALLET_PATH_OPT \
    {"wallet_path", TS_OPT_STR, &wallet_path, NULL, "wallet root (default: $TESSERA_HOME/wallets when TESSERA_HOME is set, else ~/.bittensor/wallets)", 0, 0}

static const char ROOT_HELP[] =
    "The wallet root is --wallet-path, else $TESSERA_WALLET_PATH, else $TESSERA_HOME/wallets when\n"
    "TESSERA_HOME is set, else ~/.bittensor/wallets (btcli's default).";

static void print_pk(const uint8_t pk[TS_PK_BYTES]) {
    char hex[2 * TS_PK_BYTES + 1], ss[64];
    ts_hex(hex, pk, TS_PK_BYTES);
    ts_ss58(ss, pk);
    printf("public key  0x%s\nss58        %s\n", hex, ss);
}

static void json_add_pk(cJSON *o, bool has, const uint8_t pk[TS_PK_BYTES]) {
    if (!has) {
        cJSON_AddNullToObject(o, "public_key");
        cJSON_AddNullToObject(o, "ss58");
        return;
    }
    char hex[2 * TS_PK_BYTES + 3] = "0x", ss[64];
    ts_hex(hex + 2, pk, TS_PK_BYTES);
    ts_ss58(ss, pk);
    cJSON_AddStringToObject(o, "public_key", hex);
    cJSON_AddStringToObject(o, "ss58", ss);
}

static cJSON *key_json(const ts_wallet_key *k, bool hotkey) {
    cJSON *o = cJSON_CreateObject();
    if (hotkey) cJSON_AddStringToObject(o, "hotkey", k->name);
    cJSON_AddStringToObject(o, "path", k->path);
    cJSON_AddStringToObject(o, "encryption", ts_keyfile_kind_name(k->kind));
    json_add_pk(o, k->has_pk, k->pk);
    if (k->problem) cJSON_AddStringToObject(o, "problem", k->problem);
    return o;
}

static cJSON *wallet_json(const ts_wallet_info *w) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "wallet", w->name);
    cJSON_AddStringToObject(o, "path", w->path);
    cJSON_AddItemToObject(o, "coldkey", key_json(&w->coldkey, false));
    cJSON *hk = cJSON_AddArrayToObject(o, "hotkeys");
    for (int i = 0; i < w->nhotkeys; i++) cJSON_AddItemToArray(hk, key_json(&w->hotkeys[i], true));
    return o;
}

static void print_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

static const char *ss58_or_dash(const ts_wallet_key *k, char buf[64]) {
    if (!k->has_pk) return "-";
    ts_ss58(buf, k->pk);
    return buf;
}

static void print_wallet_text(const ts_wallet_info *w) {
    char ss[64];
    printf("%s  (%s)\n", w->name, w->path);
    printf("  coldkey  %-48s  %s\n", ss58_or_dash(&w->coldkey, ss), ts_keyfile_kind_name(w->coldkey.kind));
    if (w->coldkey.problem) printf("           ! %s\n", w->coldkey.problem);
    for (int i = 0; i < w->nhotkeys; i++) {
        const ts_wallet_key *k = &w->hotkeys[i];
        printf("  hotkey   %-48s  %s  %s\n", ss58_or_dash(k, ss), k->name, ts_keyfile_kind_name(k->kind));
        if (k->problem) printf("           ! %s\n", k->problem);
    }
}

/* Applies --wallet-path; returns the option string to the caller's free. */
static void apply_root(const char *wallet_path) {
    if (wallet_path && wallet_path[0]) ts_wallet_set_root(wallet_path);
}

static int origin_of(const char *uri, const char *seed, ts_key_origin *o) {
    o->uri = uri && uri[0] ? uri : NULL;
    o->seed = seed && seed[0] ? seed : NULL;
    if (o->uri && o->seed) {
        fprintf(stderr, "tessera wallet: give --uri or --seed, not both\n");
        return 2;
    }
    return 0;
}

/* ---------------------------------------------------------- new-hotkey */

static int cmd_new_hotkey(int argc, char **argv) {
    char *wallet = NULL, *hotkey = NULL, *uri = NULL, *seed = NULL, *wallet_path = NULL;
    const ts_opt opts[] = {
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "hotkey name", TS_OPT_REQUIRED, 'k'},
        {"uri", TS_OPT_STR, &uri, NULL, "derive from a secret URI (//Alice, 0x<64 hex>//junction)", TS_OPT_NOENV | TS_OPT_SECRET, 0},
        {"seed", TS_OPT_STR, &seed, NULL, "from a seed: 0x + 64 hex (mini-secret) or 128 hex (secret key)", TS_OPT_NOENV | TS_OPT_SECRET, 0},
        WALLET_PATH_OPT,
    };
    char summary[1024];
    snprintf(summary, sizeof summary,
             "Creates an sr25519 hotkey as btcli does: ROOT/W/hotkeys/H (unencrypted JSON, mode 0600, in a\n"
             "directory of mode 0700) and its public key in ROOT/W/hotkeys/Hpub.txt.  A random key unless\n"
             "--uri or --seed says otherwise.  Never overwrites a key.\n%s",
             ROOT_HELP);
    const ts_cmdline c = {.prog = "tessera wallet new-hotkey",
                          .usage = "--wallet W --hotkey H [--uri U | --seed 0x...] [--wallet-path DIR]",
                          .summary = summary, .opts = opts, .nopts = 5, .env = true, .max_pos = 0};
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    apply_root(wallet_path);
    ts_key_origin from;
    rc = origin_of(uri, seed, &from);
    ts_err e = {0};
    ts_keypair kp;
    char *path = NULL;
    if (!rc) {
        rc = ts_hotkey_create(wallet, hotkey, &from, &kp, &path, &e) ? tool_error(&e) : 0;
        if (!rc) {
            printf("created %s\n", path);
            print_pk(kp.pk);
        }
    }
    sodium_memzero(&kp, sizeof kp);
    free(path);
    ts_opts_free(opts, 5);
    return rc;
}

/* --------------------------------------------------------- new-coldkey */

static int cmd_new_coldkey(int argc, char **argv) {
    char *wallet = NULL, *uri = NULL, *seed = NULL, *wallet_path = NULL;
    bool no_password = false;
    const ts_opt opts[] = {
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"no_password", TS_OPT_BOOL, &no_password, "false", "write the coldkey unencrypted", TS_OPT_NOENV, 0},
        {"uri", TS_OPT_STR, &uri, NULL, "derive from a secret URI (//Alice, 0x<64 hex>//junction)", TS_OPT_NOENV | TS_OPT_SECRET, 0},
        {"seed", TS_OPT_STR, &seed, NULL, "from a seed: 0x + 64 hex (mini-secret) or 128 hex (secret key)", TS_OPT_NOENV | TS_OPT_SECRET, 0},
        WALLET_PATH_OPT,
    };
    char summary[1400];
    snprintf(summary, sizeof summary,
             "Creates an sr25519 coldkey as btcli does: ROOT/W/coldkey, encrypted with a password (NaCl\n"
             "secretbox, key by argon2i: 512 MiB and a few seconds), and ROOT/W/coldkeypub.txt.  The password\n"
             "is $TESSERA_COLDKEY_PASSWORD, else asked twice on the terminal; --no-password writes the key\n"
             "unencrypted.  A random key unless --uri or --seed says otherwise.  Never overwrites a key.\n%s",
             ROOT_HELP);
    const ts_cmdline c = {.prog = "tessera wallet new-coldkey",
                          .usage = "--wallet W [--no-password] [--uri U | --seed 0x...] [--wallet-path DIR]",
                          .summary = summary, .opts = opts, .nopts = 5, .env = true, .max_pos = 0};
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    apply_root(wallet_path);
    ts_key_origin from;
    rc = origin_of(uri, seed, &from);
    ts_err e = {0};
    ts_keypair kp;
    char *path = NULL, *pw = NULL;
    if (!rc && !no_password) {
        char *target = NULL;
        char what[600];
        if (ts_coldkey_path(wallet, &target, &e)) rc = tool_error(&e);
        else if (ts_path_exists(target)) {
            /* said before the password is asked (ts_coldkey_create checks again) */
            ts_fail(&e, TS_EEXIST, "%s already exists; refusing to overwrite a key", target);
            free(target);
            rc = tool_error(&e);
        } else {
            snprintf(what, sizeof what, "the new coldkey %s", target);
            free(target);
            if (ts_password_get(what, TS_COLDKEY_PASSWORD_ENV, true, &pw, &e)) rc = tool_error(&e);
        }
    }
    if (!rc) {
        rc = ts_coldkey_create(wallet, pw, &from, &kp, &path, &e) ? tool_error(&e) : 0;
        if (!rc) {
            printf("created %s (%s)\n", path, pw ? "encrypted: nacl" : "unencrypted");
            print_pk(kp.pk);
        }
    }
    ts_password_free(pw);
    sodium_memzero(&kp, sizeof kp);
    free(path);
    ts_opts_free(opts, 5);
    return rc;
}

/* ---------------------------------------------------------------- list */

static int cmd_list(int argc, char **argv) {
    char *wallet_path = NULL;
    bool json = false;
    const ts_opt opts[] = {
        {"json", TS_OPT_BOOL, &json, "false", "print JSON", 0, 0},
        WALLET_PATH_OPT,
    };
    char summary[1024];
    snprintf(summary, sizeof summary,
             "Lists the wallets under the wallet root: each coldkey and hotkey with its SS58 address (from\n"
             "the *pub.txt files or unencrypted key files: no password is asked) and how its file is\n"
             "encrypted.  Problems (file modes, mismatched public key files) are shown with '!'.\n%s",
             ROOT_HELP);
    const ts_cmdline c = {.prog = "tessera wallet list", .usage = "[--json] [--wallet-path DIR]",
                          .summary = summary, .opts = opts, .nopts = 2, .env = true, .max_pos = 0};
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    apply_root(wallet_path);
    ts_err e = {0};
    char *root = NULL;
    ts_wallet_info *w = NULL;
    int n = 0;
    if (ts_wallet_root(&root, &e) || ts_wallet_list(&w, &n, &e)) {
        rc = tool_error(&e);
    } else if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "root", root);
        cJSON *arr = cJSON_AddArrayToObject(o, "wallets");
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, wallet_json(&w[i]));
        print_json(o);
    } else {
        printf("wallets in %s%s\n", root, n ? "" : ": none");
        for (int i = 0; i < n; i++) print_wallet_text(&w[i]);
    }
    ts_wallet_list_free(w, n);
    free(root);
    ts_opts_free(opts, 2);
    return rc;
}

/* ---------------------------------------------------------------- show */

static int show_hotkey(const char *wallet, const char *hotkey, bool json) {
    ts_err e = {0};
    char *path = NULL;
    if (ts_key_path(wallet, hotkey, &path, &e)) return tool_error(&e);
    ts_wallet_key k = {.name = (char *)hotkey, .path = path};
    ts_wallet_info w;
    int rc = ts_wallet_info_get(wallet, &w, &e);
    if (rc) {
        free(path);
        return tool_error(&e);
    }
    for (int i = 0; i < w.nhotkeys; i++)
        if (!strcmp(w.hotkeys[i].name, hotkey)) {
            k.kind = w.hotkeys[i].kind;
            k.has_pk = w.hotkeys[i].has_pk;
            memcpy(k.pk, w.hotkeys[i].pk, TS_PK_BYTES);
        }
    if (k.kind == TS_KEYFILE_NACL) {
        /* public information only: the public key file, no password */
        rc = ts_hotkeypub_load(wallet, hotkey, k.pk, &e);
        if (rc) ts_wrap(&e, "hotkey %s is encrypted and its public key file cannot be read", path);
    } else {
        /* the key itself (refused when its file is unsafe, damaged or stale) */
        ts_keypair kp;
        rc = ts_key_load(wallet, hotkey, &kp, &e);
        memcpy(k.pk, kp.pk, TS_PK_BYTES);
        sodium_memzero(&kp, sizeof kp);
        uint8_t pub[TS_PK_BYTES];
        ts_err e2 = {0};
        if (!rc && !ts_hotkeypub_load(wallet, hotkey, pub, &e2) && memcmp(pub, k.pk, TS_PK_BYTES))
            rc = ts_fail(&e, TS_EFORMAT, "%spub.txt does not match %s", path, path);
    }
    k.has_pk = rc == TS_OK;
    if (rc) {
        rc = tool_error(&e);
    } else if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "wallet", wallet);
        cJSON_AddStringToObject(o, "hotkey", hotkey);
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddStringToObject(o, "encryption", ts_keyfile_kind_name(k.kind));
        json_add_pk(o, true, k.pk);
        print_json(o);
    } else {
        printf("wallet      %s\nhotkey      %s\npath        %s\nencryption  %s\n", wallet, hotkey, path,
               ts_keyfile_kind_name(k.kind));
        print_pk(k.pk);
    }
    ts_wallet_info_free(&w);
    free(path);
    return rc;
}

static int cmd_show(int argc, char **argv) {
    char *wallet = NULL, *hotkey = NULL, *wallet_path = NULL;
    bool json = false, check = false;
    const ts_opt opts[] = {
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "show this hotkey only", 0, 'k'},
        {"json", TS_OPT_BOOL, &json, "false", "print JSON", 0, 0},
        {"check_password", TS_OPT_BOOL, &check, "false", "decrypt the coldkey (asks for its password) and check it", TS_OPT_NOENV, 0},
        WALLET_PATH_OPT,
    };
    char summary[1400];
    snprintf(summary, sizeof summary,
             "Shows a wallet's public information: its coldkey (from coldkeypub.txt, no password) and\n"
             "hotkeys, or with --hotkey one hotkey (loaded and checked, like keys show).  Never prints a\n"
             "secret.  --check-password decrypts the coldkey (password from $TESSERA_COLDKEY_PASSWORD or\n"
             "the terminal) and checks it against coldkeypub.txt.\n%s",
             ROOT_HELP);
    const ts_cmdline c = {.prog = "tessera wallet show",
                          .usage = "--wallet W [--hotkey H] [--check-password] [--json] [--wallet-path DIR]",
                          .summary = summary, .opts = opts, .nopts = 5, .env = true, .max_pos = 0};
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    apply_root(wallet_path);
    if (hotkey && check) {
        fprintf(stderr, "tessera wallet show: --check-password checks the coldkey: leave out --hotkey\n");
        ts_opts_free(opts, 5);
        return 2;
    }
    if (hotkey) {
        rc = show_hotkey(wallet, hotkey, json);
        ts_opts_free(opts, 5);
        return rc;
    }
    ts_err e = {0};
    ts_wallet_info w;
    if (ts_wallet_info_get(wallet, &w, &e)) {
        ts_opts_free(opts, 5);
        return tool_error(&e);
    }
    bool unlocked = false;
    if (check) {
        ts_keypair kp;
        if (ts_coldkey_load(wallet, NULL, &kp, &e)) {
            rc = tool_error(&e);
        } else {
            unlocked = true;
            w.coldkey.has_pk = true;
            memcpy(w.coldkey.pk, kp.pk, TS_PK_BYTES);
        }
        sodium_memzero(&kp, sizeof kp);
    }
    if (!rc) {
        if (json) {
            cJSON *o = wallet_json(&w);
            if (check) cJSON_AddBoolToObject(o, "coldkey_unlocked", unlocked);
            print_json(o);
        } else {
            printf("wallet      %s\npath        %s\ncoldkey     %s (%s)\n", w.name, w.path, w.coldkey.path,
                   ts_keyfile_kind_name(w.coldkey.kind));
            if (w.coldkey.has_pk) print_pk(w.coldkey.pk);
            if (unlocked)
                printf("unlocked    yes: the coldkey %s and matches its coldkeypub.txt\n",
                       w.coldkey.kind == TS_KEYFILE_NACL ? "decrypts with the password" : "loads");
            if (w.coldkey.problem) printf("problem     %s\n", w.coldkey.problem);
            char ss[64];
            for (int i = 0; i < w.nhotkeys; i++) {
                const ts_wallet_key *k = &w.hotkeys[i];
                printf("hotkey      %-16s %s  %s\n", k->name, ss58_or_dash(k, ss), ts_keyfile_kind_name(k->kind));
                if (k->problem) printf("problem     %s\n", k->problem);
            }
        }
    }
    ts_wallet_info_free(&w);
    ts_opts_free(opts, 5);
    return rc;
}

static int cmd_wallet(int argc, char **argv) {
    static const tool_verb verbs[] = {
        {"new-hotkey", "create a hotkey (ROOT/W/hotkeys/H and Hpub.txt)", cmd_new_hotkey},
        {"new-coldkey", "create a coldkey, encrypted with a password (ROOT/W/coldkey)", cmd_new_coldkey},
        {"list", "list wallets, coldkeys and hotkeys with their addresses", cmd_list},
        {"show", "show one wallet's public information", cmd_show},
    };
    return tool_dispatch("tessera wallet",
                         "Bittensor wallets, read and written as btcli does (default root ~/.bittensor/wallets,\n"
                         "or $TESSERA_HOME/wallets when TESSERA_HOME is set; --wallet-path to choose).",
                         verbs, 4, argc, argv);
}

TS_COMMAND("wallet", "Bittensor wallets: coldkeys and hotkeys", 9, cmd_wallet)
