/* tessera.c - the operator's tool: dispatches to the registered commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <cjson/cJSON.h>

#include "chain/chain.h"
#include "tools.h"

#define MAX_COMMANDS 64
static struct {
    const char *name, *summary;
    int order;
    tool_fn fn;
} commands[MAX_COMMANDS];
static int ncommands;

void tool_register(const char *name, const char *summary, int order, tool_fn fn) {
    if (ncommands >= MAX_COMMANDS) return;
    int i = ncommands++;
    while (i > 0 && commands[i - 1].order > order) {
        commands[i] = commands[i - 1];
        i--;
    }
    commands[i].name = name;
    commands[i].summary = summary;
    commands[i].order = order;
    commands[i].fn = fn;
}

int tool_error(const ts_err *e) {
    fprintf(stderr, "tessera: %s\n", e->msg[0] ? e->msg : ts_strerror(e->code));
    return 1;
}

int tool_open_device(const char *spec, const kn_backend **be, ts_err *e) {
    if (!spec) spec = "cpu";
    int rc = kn_backend_open(spec, be, e);
    if (rc) return rc;
    if (!strcmp(spec, "auto") && !(*be)->is_gpu) {
        kn_device_info info[1];
        const char *why = NULL;
        kn_cuda_devices(info, 1, &why);
        fprintf(stderr, "tessera: note: --device auto: no usable GPU (%s); running on the CPU\n",
                why ? why : "none found");
    } else if ((*be)->is_gpu && kn_cuda_emulated()) {
        fprintf(stderr, "tessera: note: %s is the device emulator (TESSERA_CUDA_LIB): correct but slow\n",
                (*be)->name);
    }
    return TS_OK;
}

int tool_resolve_pubkey(const char *wallet, const char *hotkey, uint8_t pk[TS_PK_BYTES], ts_err *e) {
    if (!strncmp(hotkey, "0x", 2) && strlen(hotkey) == 2 + 2 * TS_PK_BYTES) {
        if (ts_unhex(pk, TS_PK_BYTES, hotkey)) return ts_fail(e, TS_EINVAL, "'%s' is not a hex public key", hotkey);
        return TS_OK;
    }
    if (ts_ss58_decode(pk, hotkey) == TS_OK) return TS_OK;
    ts_keypair kp;
    int rc = ts_key_load(wallet, hotkey, &kp, e);
    if (!rc) memcpy(pk, kp.pk, TS_PK_BYTES);
    sodium_memzero(&kp, sizeof kp);
    if (rc)
        return ts_wrap(e, "hotkey '%s' is neither an SS58 address, a 0x key nor a key in wallet '%s'", hotkey, wallet);
    return TS_OK;
}

/* --log-level LEVEL (or =LEVEL) and --log-json are common to every command
 * (README, Configuration): a command whose own table does not declare them
 * has them taken out of its arguments and applied here.  Returns 2 on a bad
 * level, after saying so. */
/* An option name equal to want, '-' and '_' alike ("log-json" is log_json). */
static bool opt_named(const char *name, const char *want) {
    for (; *name && *want; name++, want++)
        if (*name != *want && !((*name == '-' || *name == '_') && (*want == '-' || *want == '_'))) return false;
    return !*name && !*want;
}

static int common_logging(const ts_cmdline *c, int argc, char **argv, char **out, int *nout) {
    /* a command that declares either option itself (`train --log-json FILE`
     * writes a file) handles it */
    bool own_level = false, own_json = false;
    for (int i = 0; i < c->nopts; i++) {
        own_level |= opt_named(c->opts[i].name, "log_level");
        own_json |= opt_named(c->opts[i].name, "log_json");
    }
    int n = 0;
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *level = NULL;
        if (only_pos || i == 0) {
            out[n++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) only_pos = true;
        if (!own_json && !strcmp(a, "--log-json")) {
            ts_log_set_json(true);
            continue;
        }
        if (own_level) {
            out[n++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--log-level")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: --log-level needs a value: debug, info, warn or error\n", c->prog);
                return 2;
            }
            level = argv[++i];
        } else if (!strncmp(a, "--log-level=", 12)) {
            level = a + 12;
        }
        if (level) {
            ts_log_level lvl;
            if (ts_log_parse_level(level, &lvl)) {
                fprintf(stderr, "%s: --log-level must be debug, info, warn or error, not '%s'\n", c->prog, level);
                return 2;
            }
            ts_log_set_level(lvl);
            continue;
        }
        out[n++] = argv[i];
    }
    *nout = n;
    return 0;
}

int tool_parse(const ts_cmdline *c, int argc, char **argv, char ***pos, int *npos) {
    ts_err e = {0};
    bool help;
    char **args = malloc(sizeof *args * (size_t)(argc + 1));
    int nargs = 0;
    if (!args) {
        fprintf(stderr, "%s: out of memory\n", c->prog);
        ts_opts_free(c->opts, c->nopts);
        return 2;
    }
    if (common_logging(c, argc, argv, args, &nargs)) {
        free(args);
        ts_opts_free(c->opts, c->nopts);
        return 2;
    }
    args[nargs] = NULL;
    int rc = ts_cmdline_parse(c, nargs, args, pos, npos, &help, &e);
    free(args);
    if (rc) {
        fprintf(stderr, "%s: %s\n", c->prog, e.msg);
        ts_opts_free(c->opts, c->nopts);
        return 2;
    }
    if (help) ts_opts_free(c->opts, c->nopts);
    return help ? -1 : 0;
}

int tool_dispatch(const char *group, const char *summary, const tool_verb *verbs, int nverbs,
                  int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "--help")) {
        FILE *fp = argc < 2 ? stderr : stdout;
        fprintf(fp, "usage: %s <command> [options]\n\n%s\n\ncommands:\n", group, summary);
        for (int i = 0; i < nverbs; i++) fprintf(fp, "  %-12s %s\n", verbs[i].name, verbs[i].summary);
        fprintf(fp, "\nRun '%s <command> --help' for a command's options.\n", group);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < nverbs; i++)
        if (!strcmp(argv[1], verbs[i].name)) return verbs[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command '%s' (see %s --help)\n", group, argv[1], group);
    return 2;
}

static void usage(FILE *fp) {
    fprintf(fp,
            "tessera %s - the operator's tool for a Tessera subnet\n\n"
            "usage: tessera <command> [options]\n\ncommands:\n",
            TESSERA_VERSION);
    for (int i = 0; i < ncommands; i++) fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(fp,
            "\nRun 'tessera <command> --help' for its options.\n"
            "The miner and validator are the separate programs tessera-miner and\n"
            "tessera-validator.  Environment: TESSERA_HOME (default ~/.tessera).\n");
}

int main(int argc, char **argv) {
    ts_err e = {0};
    if (ts_init(&e)) return tool_error(&e);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("tessera %s\n", TESSERA_VERSION);
        return 0;
    }
    for (int i = 0; i < ncommands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tessera: unknown command '%s' (see tessera --help)\n", argv[1]);
    return 2;
}

int tool_read_stdin(size_t max, char **out, size_t *len, ts_err *e) {
    size_t cap = 65536, n = 0;
    char *b = malloc(cap + 1);
    if (!b) return ts_fail(e, TS_ENOMEM, "out of memory");
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                free(b);
                return ts_fail(e, TS_ETOOBIG, "standard input: over %zu bytes", max);
            }
            cap *= 2;
            char *nb = realloc(b, cap + 1);
            if (!nb) {
                free(b);
                return ts_fail(e, TS_ENOMEM, "out of memory");
            }
            b = nb;
        }
        size_t r = fread(b + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) {
            if (ferror(stdin)) {
                free(b);
                return ts_fail(e, TS_EIO, "standard input: read error");
            }
            break;
        }
    }
    b[n] = 0;
    *out = b;
    *len = n;
    return TS_OK;
}

const chain_epoch_uid *tool_epoch_of(const chain_epoch *ep, const chain_neuron *x) {
    if (!ep || x->uid >= ep->n || memcmp(ep->uids[x->uid].hotkey, x->hotkey, TS_PK_BYTES)) return NULL;
    return &ep->uids[x->uid];
}

void tool_epoch_json(cJSON *j, const chain_epoch_uid *y, bool has_earned) {
    if (!y) {
        cJSON_AddNullToObject(j, "incentive");
        cJSON_AddNullToObject(j, "dividends");
        cJSON_AddNullToObject(j, "emission_rao");
        if (has_earned) cJSON_AddNullToObject(j, "earned_rao");
        return;
    }
    cJSON_AddNumberToObject(j, "incentive", y->incentive / 65535.0);
    cJSON_AddNumberToObject(j, "dividends", y->dividends / 65535.0);
    cJSON_AddNumberToObject(j, "emission_rao", (double)y->emission);
    if (has_earned) cJSON_AddNumberToObject(j, "earned_rao", (double)y->earned);
    cJSON *q = cJSON_AddObjectToObject(j, "epoch_u16");
    cJSON_AddNumberToObject(q, "rank", y->rank);
    cJSON_AddNumberToObject(q, "trust", y->trust);
    cJSON_AddNumberToObject(q, "consensus", y->consensus);
    cJSON_AddNumberToObject(q, "incentive", y->incentive);
    cJSON_AddNumberToObject(q, "dividends", y->dividends);
    cJSON_AddNumberToObject(q, "validator_trust", y->validator_trust);
}
