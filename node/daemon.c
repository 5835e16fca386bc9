/* daemon.c - the program shell shared by tessera-miner and
 * tessera-validator: options, logging, signals, metrics. */
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>

#include "daemon.h"
#include "metrics.h"

static node *g_node;
static atomic_int g_signals; /* atomic: two signals may reach two threads at once */
static volatile sig_atomic_t g_first_signal;
static bool g_log_plain; /* a forced stop may say so on stderr (not in JSON logs) */

/* SIGINT/SIGTERM.  The first asks the node to stop: the loops check it
 * between steps, so the step under way (an inner step, an upload, one
 * miner's evaluation, a state write) finishes, nothing more starts, and the
 * daemon exits 0.  A second one exits at once, with 128 + its number as a
 * shell reports a process killed by it (130 for SIGINT, 143 for SIGTERM):
 * state files are only ever replaced by rename (ts_write_atomic), so the
 * ones on disk stay whole, and a model and node.json from different windows
 * are caught on load (node_load_state). */
static void on_signal(int sig) {
    if (atomic_fetch_add(&g_signals, 1) >= 1) {
        static const char msg[] = "second signal: stopping at once\n";
        if (g_log_plain) (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
        _exit(128 + sig);
    }
    g_first_signal = sig;
    if (g_node) node_stop(g_node);
}

int node_daemon_parse(node_daemon *d, node_role role, int argc, char **argv) {
    memset(d, 0, sizeof *d);
    d->role = role;
    d->prog = role == NODE_MINER ? "tessera-miner" : "tessera-validator";
    if (argc > 1 && !strcmp(argv[1], "--version")) {
        printf("%s %s\n", d->prog, TESSERA_VERSION);
        return -1;
    }
    ts_opt opts[] = {
        {"chain", TS_OPT_STR, &d->chain, NULL, "chain URL: local:/path/to/subnet or subtensor:http://HOST:PORT?netuid=N", TS_OPT_REQUIRED, 0},
        {"wallet", TS_OPT_STR, &d->wallet, "default", "wallet name (ROOT/W: btcli's layout)", 0, 'w'},
        {"wallet_path", TS_OPT_STR, &d->wallet_path, NULL,
         "wallet root [default: $TESSERA_HOME/wallets when TESSERA_HOME is set, else ~/.bittensor/wallets]", 0, 0},
        {"hotkey", TS_OPT_STR, &d->hotkey, NULL, "hotkey name", TS_OPT_REQUIRED, 'k'},
        {"store.url", TS_OPT_STR, &d->store_url, NULL,
         "your bucket: file:///dir or s3://bucket[/prefix]?endpoint=https://host&region=auto", TS_OPT_REQUIRED, 0},
        {"store.commitment", TS_OPT_STR, &d->commitment, NULL,
         "read credentials published on chain (R2: 128 characters; else s3://KEY:SECRET@bucket?endpoint=...); "
         "file:// stores publish their URL", 0, 0},
        {"store.access_key", TS_OPT_STR, &d->access_key, NULL, "write access key (else $AWS_ACCESS_KEY_ID)",
         TS_OPT_SECRET, 0},
        {"store.secret_key", TS_OPT_STR, &d->secret_key, NULL, "write secret (else $AWS_SECRET_ACCESS_KEY)",
         TS_OPT_SECRET, 0},
        {"store.timeout", TS_OPT_F64, &d->store_timeout, "30", "seconds a stalled transfer may hang", 0, 0},
        {"store.retries", TS_OPT_INT, &d->store_retries, "5", "retries of a failed request (0: none)", 0, 0},
        {"state_dir", TS_OPT_STR, &d->state_dir, NULL,
         "local state (model, error feedback, scores) [default: $TESSERA_HOME/nodes/HOTKEY]", 0, 0},
        {"device", TS_OPT_STR, &d->device, "auto",
         "compute device: auto (the first GPU when there is one, else the CPU), cpu, cuda or cuda:N", 0, 0},
        {"threads", TS_OPT_INT, &d->threads, "0", "CPU threads (0: all cores; at most 4 per CPU, and 1024)", 0, 0},
        {"data", TS_OPT_STR, &d->data, NULL, "training shards (overrides the run's path)", 0, 0},
        {"val_data", TS_OPT_STR, &d->val_data, NULL, "held-out shards (overrides the run's path)", 0, 0},
        {"metrics_port", TS_OPT_INT, &d->metrics_port, "-1",
         "Prometheus metrics on this port (0: any free port, -1: off)", 0, 0},
        {"metrics_bind_all", TS_OPT_BOOL, &d->metrics_bind_all, "false",
         "serve metrics on every interface, not only loopback", 0, 0},
        {"allow_local_peers", TS_OPT_BOOL, &d->allow_local_peers, "false",
         "accept file:// and http:// peer buckets (on by default for local: chains; "
         "--no-allow-local-peers turns it off there)", 0, 0},
        {"max_windows", TS_OPT_INT, &d->max_windows, "0", "stop after this many windows (0: run forever)", 0, 0},
        {"log_level", TS_OPT_STR, &d->log_level, "info", "debug, info, warn or error", 0, 0},
        {"log_json", TS_OPT_BOOL, &d->log_json, "false", "log JSON lines", 0, 0},
        {"adversary", TS_OPT_STR, &d->adversary, "honest",
         "for demos and tests only: honest, copycat, garbage, lazy or late", 0, 0},
        {"copy_uid", TS_OPT_INT, &d->copy_uid, "-1", "for --adversary copycat: whose upload to copy (-1: none)", 0, 0},
    };
    int nopts = (int)(sizeof opts / sizeof opts[0]);
    if (role == NODE_VALIDATOR) nopts -= 2; /* no adversary options */
    /* Threads: OpenMP threads beyond the cores only time-slice the same
     * cores (the kernels are compute-bound, and a barrier waits for the
     * slowest thread), and each one costs a stack; libgomp crashes outright
     * on absurd counts (100000).  4 per online CPU leaves room for SMT and a
     * CPU count that undercounts; 1024 bounds it on any machine. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double max_threads = ncpu > 0 && ncpu < 256 ? 4.0 * (double)ncpu : 1024;
    const ts_opt_range ranges[] = {
        {"store.timeout", 0, 3600, TS_RANGE_MIN_OPEN},
        {"store.retries", 0, 100, 0},
        {"threads", 0, max_threads, 0},
        {"metrics_port", -1, 65535, 0},
        {"max_windows", 0, INFINITY, 0},
        {"copy_uid", -1, CHAIN_MAX_UIDS - 1, 0}, /* last: the miner's alone */
    };
    int nranges = (int)(sizeof ranges / sizeof ranges[0]);
    if (role == NODE_VALIDATOR) nranges -= 1;
    bool given[sizeof opts / sizeof opts[0]] = {0};
    const ts_cmdline c = {
        .prog = d->prog,
        .usage = "--chain URL --hotkey H --store-url URL [options]",
        .summary = role == NODE_MINER
                       ? "Trains the global model on the data assigned to this hotkey each window, uploads the\n"
                         "compressed, signed pseudo-gradient to its bucket, gathers the peers' uploads and\n"
                         "applies the outer step.  Options come from --config FILE (JSON), then TESSERA_*\n"
                         "environment variables, then flags."
                       : "Follows the outer steps like a miner and, each window, evaluates miners' uploads,\n"
                         "keeps their scores (the Gauntlet), sets weights on chain and, as the leader, posts\n"
                         "peer lists, catch-up bundles and signed checkpoints.  Options come from --config\n"
                         "FILE (JSON), then TESSERA_* environment variables, then flags.",
        .opts = opts,
        .nopts = nopts,
        .config_file = true,
        .env = true,
        .max_pos = 0,
        .ranges = ranges,
        .nranges = nranges,
        .given = given,
    };
    ts_err e = {0};
    bool help;
    if (ts_cmdline_parse(&c, argc, argv, NULL, NULL, &help, &e)) {
        fprintf(stderr, "%s: %s\n", d->prog, e.msg);
        ts_opts_free(opts, nopts);
        return 2;
    }
    if (help) {
        ts_opts_free(opts, nopts);
        return -1;
    }
    ts_log_level lvl;
    if (ts_log_parse_level(d->log_level, &lvl)) {
        fprintf(stderr, "%s: --log-level must be debug, info, warn or error\n", d->prog);
        node_daemon_stop(d);
        return 2;
    }
    ts_log_set_level(lvl);
    ts_log_set_json(d->log_json);
    if (!d->adversary) d->adversary = strdup("honest");
    if (!d->state_dir) {
        char *home = ts_home_dir();
        char *nodes = home ? ts_path_join(home, "nodes") : NULL;
        d->state_dir = nodes ? ts_path_join(nodes, d->hotkey) : NULL;
        free(home);
        free(nodes);
    }
    g_log_plain = !d->log_json;
    /* a subnet on this machine has its peers' buckets on this machine too,
     * unless the option says otherwise (--no-allow-local-peers) */
    bool local_peers_given = false;
    for (int i = 0; i < nopts; i++)
        if (!strcmp(opts[i].name, "allow_local_peers")) local_peers_given = given[i];
    if (!strncmp(d->chain, "local:", 6) && !local_peers_given) d->allow_local_peers = true;
    if (d->threads > 0) omp_set_num_threads((int)d->threads);
    return 0;
}

/* Device memory in use (GPU backends; refreshed every tick). */
static void daemon_device_metrics(node_daemon *d) {
    if (!d->metrics || !d->n || !node_backend(d->n)->is_gpu) return;
    size_t free_b = 0, total_b = 0;
    if (kn_backend_mem_info(node_backend(d->n), &free_b, &total_b)) return;
    node_metrics_set(d->metrics, "tessera_device_memory_used_bytes", NULL, (double)(total_b - free_b));
    node_metrics_set(d->metrics, "tessera_device_memory_total_bytes", NULL, (double)total_b);
}

int node_daemon_start(node_daemon *d, ts_err *e) {
    if (d->wallet_path && d->wallet_path[0]) ts_wallet_set_root(d->wallet_path);
    store_opts so = {0};
    so.access_key = d->access_key;
    so.secret_key = d->secret_key;
    so.stall_timeout_s = d->store_timeout;
    so.retries = d->store_retries > 0 ? (int)d->store_retries : -1;
    node_opts o = {
        .role = d->role,
        .chain_url = d->chain,
        .wallet = d->wallet,
        .hotkey = d->hotkey,
        .store_url = d->store_url,
        .commitment = d->commitment,
        .sopts = &so,
        .state_dir = d->state_dir,
        .device = d->device,
        .data = d->data,
        .val_data = d->val_data,
        .allow_local_peers = d->allow_local_peers,
    };
    if (node_open(&o, &d->n, e)) return e->code;
    char comp[64];
    snprintf(comp, sizeof comp, "%s[uid %u]", d->role == NODE_MINER ? "miner" : "validator", node_uid(d->n));
    ts_log_set_component(comp);
    g_node = d->n;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* a read or write under way resumes instead of failing */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* a file-size limit reached is a failed write (EFBIG), handled like a
     * full disk, not a killed process */
    signal(SIGXFSZ, SIG_IGN);
    if (d->metrics_port >= 0) {
        if (node_metrics_start((int)d->metrics_port, d->metrics_bind_all, &d->metrics, &d->metrics_port_bound, e))
            return e->code;
        TS_INFO("metrics on http://%s:%d/metrics", d->metrics_bind_all ? "0.0.0.0" : "127.0.0.1", d->metrics_port_bound);
        node_metrics_declare(d->metrics, "tessera_window", "gauge", "current window");
        node_metrics_declare(d->metrics, "tessera_uid", "gauge", "this node's uid");
        node_metrics_set(d->metrics, "tessera_uid", NULL, node_uid(d->n));
        node_metrics_declare(d->metrics, "tessera_device_info", "gauge",
                             "the compute device (label device: cpu or cuda:N; name: the GPU's)");
        char name[64], labels[96];
        node_device_name(d->n, name, sizeof name);
        for (char *c = name; *c; c++)
            if (*c == '"' || *c == '\\' || *c == '\n') *c = '_';
        snprintf(labels, sizeof labels, "device=\"%s\",name=\"%s\"", node_backend(d->n)->name, name);
        node_metrics_set(d->metrics, "tessera_device_info", labels, 1);
        if (node_backend(d->n)->is_gpu) {
            node_metrics_declare(d->metrics, "tessera_device_memory_used_bytes", "gauge",
                                 "device memory in use (the whole GPU's, every process)");
            node_metrics_declare(d->metrics, "tessera_device_memory_total_bytes", "gauge", "device memory");
        }
        daemon_device_metrics(d);
    }
    const node_run *r = node_get_run(d->n);
    char desc[160];
    model_config_describe(&r->model, desc, sizeof desc);
    TS_INFO("run %s, %s; seq %d, batch %d, %d inner steps per window; state in %s", r->run_id, desc, r->seq_len,
            r->batch_size, r->inner_steps, d->state_dir);
    char dev[64];
    node_device_name(d->n, dev, sizeof dev);
    TS_INFO("device %s (%s)%s", node_backend(d->n)->name, dev,
            node_backend(d->n)->is_gpu ? ": the model and the error feedback stay in its memory" : "");
    return TS_OK;
}

void node_daemon_stop(node_daemon *d) {
    g_node = NULL;
    if (g_first_signal)
        TS_INFO("stopped on %s: the state on disk is the last one saved", g_first_signal == SIGINT ? "SIGINT" : "SIGTERM");
    node_metrics_stop(d->metrics);
    node_close(d->n);
    free(d->chain);
    free(d->wallet);
    free(d->wallet_path);
    free(d->hotkey);
    free(d->store_url);
    free(d->commitment);
    free(d->access_key);
    free(d->secret_key);
    free(d->state_dir);
    free(d->device);
    free(d->data);
    free(d->val_data);
    free(d->log_level);
    free(d->adversary);
    node_role role = d->role;
    const char *prog = d->prog;
    memset(d, 0, sizeof *d);
    d->role = role;
    d->prog = prog;
}

bool node_daemon_tick(node_daemon *d, chain_clock *clk) {
    ts_err e = {0};
    if (node_refresh(d->n, &e) || chain_now(node_chain(d->n), clk, &e)) {
        TS_WARN("chain: %s", e.msg);
        /* once the chain answers again, the wait's reason is news again */
        d->wait_msg[0] = 0;
        node_sleep_until(d->n, ts_now() + 2);
        return false;
    }
    daemon_device_metrics(d);
    return true;
}

void node_daemon_waiting(node_daemon *d, int code, const char *why) {
    double now = ts_now();
    if (!strcmp(d->wait_msg, why) && now - d->wait_logged < 60) return;
    snprintf(d->wait_msg, sizeof d->wait_msg, "%s", why);
    d->wait_logged = now;
    if (code == TS_EDENIED) TS_WARN("waiting for the run's start window: %s", why);
    else TS_INFO("waiting for the run's start window (%s)", why);
}

void node_daemon_metric(node_daemon *d, const char *name, const char *labels, double v) {
    node_metrics_set(d->metrics, name, labels, v);
}

void node_daemon_metric_add(node_daemon *d, const char *name, const char *labels, double v) {
    node_metrics_add(d->metrics, name, labels, v);
}
