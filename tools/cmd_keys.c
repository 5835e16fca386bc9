/* cmd_keys.c - tessera keygen / tessera keys show: the hotkey shortcuts of
 * tessera wallet new-hotkey / show --hotkey (tools/cmd_wallet.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tools.h"

static int cmd_keygen(int argc, char **argv) {
    char *wallet = NULL, *hotkey = NULL, *wallet_path = NULL;
    const ts_opt opts[] = {
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "hotkey name", TS_OPT_REQUIRED, 'k'},
        {"wallet_path", TS_OPT_STR, &wallet_path, NULL, "wallet root (see tessera wallet --help)", 0, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera keygen",
        .usage = "--wallet W --hotkey H [--wallet-path DIR]",
        .summary = "Creates an sr25519 hotkey as btcli does (tessera wallet new-hotkey): ROOT/W/hotkeys/H\n"
                   "(mode 0600, in a directory of mode 0700) and its public key ROOT/W/hotkeys/Hpub.txt.\n"
                   "ROOT is --wallet-path, $TESSERA_WALLET_PATH, $TESSERA_HOME/wallets when TESSERA_HOME is\n"
                   "set, else ~/.bittensor/wallets.  Refuses to overwrite an existing key, or to create one\n"
                   "in a directory group or others can write.",
        .opts = opts,
        .nopts = 3,
        .env = true,
        .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (wallet_path && wallet_path[0]) ts_wallet_set_root(wallet_path);
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
    sodium_memzero(&kp, sizeof kp);
    free(path);
    ts_opts_free(opts, 3);
    return rc ? tool_error(&e) : 0;
}

static int cmd_keys_show(int argc, char **argv) {
    char *wallet = NULL, *hotkey = NULL, *wallet_path = NULL;
    bool json = false;
    const ts_opt opts[] = {
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "hotkey name", TS_OPT_REQUIRED, 'k'},
        {"json", TS_OPT_BOOL, &json, "false", "print JSON", 0, 0},
        {"wallet_path", TS_OPT_STR, &wallet_path, NULL, "wallet root (see tessera wallet --help)", 0, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera keys show",
        .usage = "--wallet W --hotkey H [--json] [--wallet-path DIR]",
        .summary = "Prints a hotkey's public key and SS58 address (never the secret).  Like every command\n"
                   "that loads a key, refuses a key file group or others can access (chmod 600) or a key\n"
                   "directory they can write (chmod 700).",
        .opts = opts,
        .nopts = 4,
        .env = true,
        .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (wallet_path && wallet_path[0]) ts_wallet_set_root(wallet_path);
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
    sodium_memzero(&kp, sizeof kp);
    ts_opts_free(opts, 4);
    return rc ? tool_error(&e) : 0;
}

/* The message of sign/verify: --in FILE or --hex HEX (exactly one). */
static int message_of(const char *in, const char *hex, uint8_t **msg, size_t *len, ts_err *e) {
    *msg = NULL;
    *len = 0;
    if (!in == !hex) return ts_fail(e, TS_EINVAL, "give the message as --in FILE or --hex HEX (one of them)");
    if (in) return ts_read_file(in, (size_t)1 << 30, msg, len, e);
    size_t n = strlen(hex);
    if (!strncmp(hex, "0x", 2)) hex += 2, n -= 2;
    if (n % 2 || !(*msg = malloc(n / 2 + 1))) return ts_fail(e, TS_EINVAL, "--hex: not an even number of hex digits");
    if (n && ts_unhex(*msg, n / 2, hex)) {
        free(*msg);
        *msg = NULL;
        return ts_fail(e, TS_EINVAL, "--hex: not hex");
    }
    *len = n / 2;
    return TS_OK;
}

static int cmd_keys_sign(int argc, char **argv) {
    char *wallet = NULL, *hotkey = NULL, *wallet_path = NULL, *tag = NULL, *in = NULL, *hex = NULL;
    const ts_opt opts[] = {
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "hotkey name", TS_OPT_REQUIRED, 'k'},
        {"wallet-path", TS_OPT_STR, &wallet_path, NULL, "wallet root (see tessera wallet --help)", 0, 0},
        {"tag", TS_OPT_STR, &tag, NULL, "the domain tag (docs/FORMATS.md section 1)", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
        {"in", TS_OPT_STR, &in, NULL, "the message: a file", TS_OPT_NOENV, 0},
        {"hex", TS_OPT_STR, &hex, NULL, "the message: hex", TS_OPT_NOENV, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera keys sign",
        .usage = "--wallet W --hotkey H --tag TAG (--in FILE | --hex HEX)",
        .summary = "Signs a message as Tessera signs its objects (sr25519, context \"tessera\", the domain\n"
                   "tag in front: docs/FORMATS.md section 1) and prints the 64-byte signature in hex.  For\n"
                   "other implementations' tests and for signing objects by hand.",
        .opts = opts, .nopts = 6, .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (wallet_path && wallet_path[0]) ts_wallet_set_root(wallet_path);
    ts_err e = {0};
    ts_keypair kp;
    uint8_t *msg = NULL, sig[TS_SIG_BYTES];
    size_t len;
    if (!(rc = message_of(in, hex, &msg, &len, &e)) && !(rc = ts_key_load(wallet, hotkey, &kp, &e)) &&
        !(rc = ts_sign(&kp, tag, msg, len, sig, &e))) {
        char out[2 * TS_SIG_BYTES + 1];
        ts_hex(out, sig, TS_SIG_BYTES);
        printf("%s\n", out);
    }
    sodium_memzero(&kp, sizeof kp);
    free(msg);
    ts_opts_free(opts, 6);
    return rc ? tool_error(&e) : 0;
}

static int cmd_keys_verify(int argc, char **argv) {
    char *pub = NULL, *tag = NULL, *in = NULL, *hex = NULL, *sighex = NULL;
    const ts_opt opts[] = {
        {"pubkey", TS_OPT_STR, &pub, NULL, "the signer: 0x + 64 hex or an SS58 address", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
        {"tag", TS_OPT_STR, &tag, NULL, "the domain tag", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
        {"sig", TS_OPT_STR, &sighex, NULL, "the signature (128 hex digits)", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
        {"in", TS_OPT_STR, &in, NULL, "the message: a file", TS_OPT_NOENV, 0},
        {"hex", TS_OPT_STR, &hex, NULL, "the message: hex", TS_OPT_NOENV, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera keys verify",
        .usage = "--pubkey KEY --tag TAG --sig HEX (--in FILE | --hex HEX)",
        .summary = "Checks a Tessera signature (tessera keys sign); exit status 0 when it verifies, 1 otherwise.",
        .opts = opts, .nopts = 5, .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    uint8_t pk[TS_PK_BYTES], sig[TS_SIG_BYTES], *msg = NULL;
    size_t len;
    if (!(rc = message_of(in, hex, &msg, &len, &e)) && !(rc = tool_resolve_pubkey("default", pub, pk, &e))) {
        if (strlen(sighex) != 2 * TS_SIG_BYTES || ts_unhex(sig, TS_SIG_BYTES, sighex))
            rc = ts_fail(&e, TS_EINVAL, "--sig: not 64 bytes of hex");
        else if (!(rc = ts_verify(pk, tag, msg, len, sig, &e)))
            printf("ok\n");
    }
    free(msg);
    ts_opts_free(opts, 5);
    return rc ? tool_error(&e) : 0;
}

static int cmd_keys(int argc, char **argv) {
    static const tool_verb verbs[] = {
        {"show", "print a hotkey's public key", cmd_keys_show},
        {"sign", "sign a message as Tessera signs its objects", cmd_keys_sign},
        {"verify", "check such a signature", cmd_keys_verify},
    };
    return tool_dispatch("tessera keys", "Inspect hotkeys; sign and verify with them.", verbs, 3, argc, argv);
}

TS_COMMAND("keygen", "create an sr25519 hotkey (tessera wallet new-hotkey)", 10, cmd_keygen)
TS_COMMAND("keys", "show hotkeys", 11, cmd_keys)
