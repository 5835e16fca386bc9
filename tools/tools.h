/*
 * tools.h - the `tessera` operator command.  Each tools/cmd_*.c file
 * registers its top-level commands with TS_COMMAND; tessera.c dispatches.
 */
#ifndef TESSERA_TOOLS_H
#define TESSERA_TOOLS_H

#include "kernels/kernels.h"
#include "common/common.h"

typedef int (*tool_fn)(int argc, char **argv); /* argv[0] is the command name */

void tool_register(const char *name, const char *summary, int order, tool_fn fn);

#define TS_COMMAND(name, summary, order, fn)                                           \
    __attribute__((constructor)) static void tool_reg_##fn(void) {                     \
        tool_register(name, summary, order, fn);                                       \
    }

/* A sub-command table for commands with verbs ("tessera data prep"). */
typedef struct tool_verb {
    const char *name;
    const char *summary;
    tool_fn fn;
} tool_verb;

/* Dispatches argv[1] among verbs; prints help for "help", -h, --help or no
 * verb.  `group` is e.g. "tessera data". */
int tool_dispatch(const char *group, const char *summary, const tool_verb *verbs, int nverbs,
                  int argc, char **argv);

/* Parses a command line (see ts_cmdline_parse); on --help returns -1 so the
 * caller returns 0; on error prints "prog: message" and returns 2.  In both
 * cases the options' strings are already freed:
 *     if (rc) return rc < 0 ? 0 : rc; */
int tool_parse(const ts_cmdline *c, int argc, char **argv, char ***pos, int *npos);

/* Opens the compute backend named by --device (cpu, cuda, cuda:N, auto).
 * "auto" without a usable GPU falls back to the CPU and says so on stderr. */
int tool_open_device(const char *spec, const kn_backend **be, ts_err *e);

/* Prints "tessera: <message>" for an error and returns 1. */
int tool_error(const ts_err *e);

/* A hotkey's public key from "0x<64 hex>", an SS58 address, or a key name in
 * wallet (its secret wiped at once). */
int tool_resolve_pubkey(const char *wallet, const char *hotkey, uint8_t pk[TS_PK_BYTES], ts_err *e);

/* The whole of standard input, NUL-terminated (*len excludes the NUL), at
 * most max bytes: TS_ETOOBIG beyond, TS_EIO on a read error. */
int tool_read_stdin(size_t max, char **out, size_t *len, ts_err *e);

struct chain_epoch;
struct chain_epoch_uid;
struct chain_neuron;
struct cJSON;
/* The last epoch's entry for a neuron of the metagraph: NULL when there is
 * none, or when the uid has changed hands since the epoch. */
const struct chain_epoch_uid *tool_epoch_of(const struct chain_epoch *ep, const struct chain_neuron *x);
/* A uid's epoch members in a JSON object (incentive and dividends as
 * fractions, emission_rao, earned_rao when has_earned, epoch_u16 as stored);
 * nulls when y is NULL. */
void tool_epoch_json(struct cJSON *j, const struct chain_epoch_uid *y, bool has_earned);

#endif
