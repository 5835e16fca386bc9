/*
 * daemon.h - what tessera-miner and tessera-validator share as programs:
 * one option table (config file, TESSERA_* environment, flags), logging,
 * signal handling, the metrics endpoint and the progress line.
 */
#ifndef TESSERA_NODE_DAEMON_H
#define TESSERA_NODE_DAEMON_H

#include "node.h"

typedef struct node_daemon {
    node_role role;
    const char *prog;
    /* options */
    char *chain, *wallet, *wallet_path, *hotkey;
    char *store_url, *commitment, *access_key, *secret_key;
    char *state_dir, *device, *data, *val_data;
    char *log_level;
    bool log_json;
    int64_t threads, metrics_port, max_windows;
    bool metrics_bind_all, allow_local_peers;
    double store_timeout;
    int64_t store_retries;
    char *adversary;        /* miner: honest, copycat, garbage, lazy, late */
    int64_t copy_uid;
    /* running */
    node *n;
    struct node_metrics *metrics;
    int metrics_port_bound;
    char wait_msg[512];     /* node_daemon_waiting: the last reason logged, and when */
    double wait_logged;
} node_daemon;

/* Parses argv for the role; prints help or an error.  Returns 0 to run, -1
 * when --help or --version was handled (exit 0), 2 on a usage error. */
int node_daemon_parse(node_daemon *d, node_role role, int argc, char **argv);
/* Opens the node, installs SIGINT/SIGTERM handlers (a first signal finishes
 * the current step and the state write, and the daemon exits 0; a second one
 * exits at once with 128 + the signal's number) and starts the metrics
 * endpoint. */
int node_daemon_start(node_daemon *d, ts_err *e);
void node_daemon_stop(node_daemon *d);

/* One turn of a daemon's loop: refreshes the metagraph and reads the chain's
 * clock.  false, after logging why and pausing, when either failed (the loop
 * then tries again). */
bool node_daemon_tick(node_daemon *d, chain_clock *clk);

/* Logs why the daemon waits for the run's start window: at once when the
 * reason is new, then once a minute while it stays the same (a loop that
 * retries every second or two would otherwise repeat it every turn).  A
 * refusal (TS_EDENIED: a peer's bucket this node's policy does not accept)
 * is a warning, since waiting alone will not end it. */
void node_daemon_waiting(node_daemon *d, int code, const char *why);

void node_daemon_metric(node_daemon *d, const char *name, const char *labels, double v);
void node_daemon_metric_add(node_daemon *d, const char *name, const char *labels, double v);

#endif
