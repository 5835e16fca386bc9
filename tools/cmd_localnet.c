/* cmd_localnet.c - tessera localnet: create and operate a local subnet.
 *
 *   init         genesis.json + an empty log (and the owner key if missing)
 *   register     a hotkey takes a uid (signed by the hotkey)
 *   stake        add or remove stake (signed by the subnet owner's key)
 *   commit       publish a commitment (bucket credentials) for a hotkey
 *   set-weights  set a validator's weights
 *   status       a table of uids, stake, permits, commitments, weights, and
 *                what the last epoch (Yuma consensus) gave each uid
 *
 * Hotkeys are named as everywhere in tessera: --wallet W --hotkey H, a key
 * file in $TESSERA_HOME/wallets.  Where only a public key is needed (the
 * target of stake), --hotkey may instead be an SS58 address or 0x-hex key. */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "chain/chain.h"
#include "node/node.h"
#include "storage/storage.h"
#include "tools.h"

#define NOPTS(o) ((int)(sizeof(o) / sizeof((o)[0])))

static char *dir_url(const char *dir) {
    size_t n = strlen(dir) + 8;
    char *u = malloc(n);
    if (u) snprintf(u, n, "local:%s", dir);
    return u;
}

static int open_dir(const char *dir, chain **c, ts_err *e) {
    char *u = dir_url(dir);
    if (!u) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = chain_open(u, c, e);
    free(u);
    return rc;
}


static void short_ss58(char *out, size_t cap, const uint8_t pk[TS_PK_BYTES]) {
    char ss[64];
    ts_ss58(ss, pk);
    size_t n = strlen(ss);
    snprintf(out, cap, "%.8s..%s", ss, ss + (n > 4 ? n - 4 : 0));
}

static void fmt_utc(char *out, size_t cap, double t) {
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M:%SZ", &tm);
}

/* ------------------------------------------------------------------ init */

static int cmd_init(int argc, char **argv) {
    char *dir = NULL, *run_id = NULL, *params = NULL, *owner_wallet = NULL, *owner_hotkey = NULL,
         *min_vstake = NULL, *emission = NULL;
    int64_t netuid, bpw, max_uids, max_vals, immunity, rate, tempo, owner_cut, kappa, bma, cutoff;
    double block_time, genesis_time;
    const ts_opt opts[] = {
        {"dir", TS_OPT_STR, &dir, NULL, "subnet directory (created)", TS_OPT_REQUIRED | TS_OPT_NOENV, 'd'},
        {"run-id", TS_OPT_STR, &run_id, "tessera", "run id, 1..64 of [A-Za-z0-9._-]", TS_OPT_NOENV, 0},
        {"netuid", TS_OPT_INT, &netuid, "1", "subnet number (0..65535)", TS_OPT_NOENV, 0},
        {"block-time", TS_OPT_F64, &block_time, "12", "seconds per block (fractions allowed, >= 0.001)", TS_OPT_NOENV, 0},
        {"blocks-per-window", TS_OPT_INT, &bpw, "125", "blocks per window", TS_OPT_NOENV, 0},
        {"max-uids", TS_OPT_INT, &max_uids, "256", "uids (1..4096); more registrations replace one", TS_OPT_NOENV, 0},
        {"max-validators", TS_OPT_INT, &max_vals, "64", "validator permits: the top N by stake", TS_OPT_NOENV, 0},
        {"min-validator-stake", TS_OPT_STR, &min_vstake, "0", "TAO a permit holder must exceed", TS_OPT_NOENV, 0},
        {"immunity-period", TS_OPT_INT, &immunity, "0", "blocks a new registration cannot be replaced", TS_OPT_NOENV, 0},
        {"weights-rate-limit", TS_OPT_INT, &rate, "0", "blocks between two weight settings of a hotkey", TS_OPT_NOENV, 0},
        {"genesis-time", TS_OPT_F64, &genesis_time, "0", "timestamp of block 0 (0: now)", TS_OPT_NOENV, 0},
        {"tempo", TS_OPT_INT, &tempo, "360", "blocks per epoch (genesis key tempo): an epoch every tempo + 1 blocks", TS_OPT_NOENV, 0},
        {"emission", TS_OPT_STR, &emission, "1", "TAO per block (the genesis key emission_per_block holds rao)", TS_OPT_NOENV, 0},
        {"owner-cut", TS_OPT_INT, &owner_cut, "11796", "the owner's share of each block's emission, of 65535", TS_OPT_NOENV, 0},
        {"kappa", TS_OPT_INT, &kappa, "32767", "Yuma's consensus majority, of 65535", TS_OPT_NOENV, 0},
        {"bonds-moving-average", TS_OPT_INT, &bma, "900000", "the part of old bonds a bond keeps, of 10^6", TS_OPT_NOENV, 0},
        {"activity-cutoff", TS_OPT_INT, &cutoff, "5000", "blocks after which a validator's weights are inactive", TS_OPT_NOENV, 0},
        {"params", TS_OPT_STR, &params, NULL, "JSON file of run parameters (an object; checked as the nodes check it)",
         TS_OPT_NOENV, 0},
        {"owner-wallet", TS_OPT_STR, &owner_wallet, "default", "wallet of the owner key", 0, 0},
        {"owner-hotkey", TS_OPT_STR, &owner_hotkey, "owner", "owner key (created if missing)", 0, 0},
    };
    const ts_opt_range ranges[] = {
        {"netuid", 0, 65535, 0},
        {"block-time", 0.001, 86400, 0},
        {"blocks-per-window", 1, 1000000, 0},
        {"max-uids", 1, CHAIN_MAX_UIDS, 0},
        {"max-validators", 1, CHAIN_MAX_UIDS, 0},
        {"immunity-period", 0, INFINITY, 0},
        {"weights-rate-limit", 0, INFINITY, 0},
        {"genesis-time", 0, 253402300799.0, 0},
        {"tempo", 1, 65535, 0},
        {"owner-cut", 0, 65535, 0},
        {"kappa", 0, 65535, 0},
        {"bonds-moving-average", 0, 1000000, 0},
        {"activity-cutoff", 0, 65535, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera localnet init",
        .usage = "--dir D [--run-id R --netuid N --block-time S --blocks-per-window N --max-uids N ...]",
        .summary = "Creates a local subnet: D/genesis.json and an empty transaction log D/chain.log.\n"
                   "The owner key (created in the wallet if missing) is the one that can change stake.\n"
                   "Miners and validators then use --chain local:D.\n"
                   "\n"
                   "Epochs run as on subtensor (spec 143): at every block b with\n"
                   "(b + netuid + 2) % (tempo + 1) == 0, Yuma consensus over the weights and stake\n"
                   "of the blocks before b distributes the emission since the last epoch (after\n"
                   "the owner's cut) as incentive and dividends; it is credited to each uid's\n"
                   "earned balance, never to its stake.  Genesis keys (docs/FORMATS.md 9.1):\n"
                   "tempo (360), emission_per_block (rao, 10^9), owner_cut (11796 of 65535 = 18 %),\n"
                   "kappa (32767), bonds_moving_average (900000), activity_cutoff (5000); a genesis\n"
                   "without them takes these defaults.",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    char *ptext = NULL;
    bool created = false;
    ts_keypair owner;
    chain_genesis g;
    chain_local_genesis_defaults(&g);
    int64_t mvs = 0;
    if (netuid < 0 || netuid > 65535 || bpw < 1 || max_uids < 1 || max_uids > CHAIN_MAX_UIDS ||
        max_vals < 1 || immunity < 0 || rate < 0) {
        rc = ts_fail(&e, TS_EINVAL, "a numeric option is out of range (see --help)");
        goto out;
    }
    if (chain_parse_tao(min_vstake, &mvs) || mvs < 0) {
        rc = ts_fail(&e, TS_EINVAL, "--min-validator-stake '%s' is not an amount of TAO", min_vstake);
        goto out;
    }
    int64_t epb = 0;
    if (chain_parse_tao(emission, &epb) || epb < 0) {
        rc = ts_fail(&e, TS_EINVAL, "--emission '%s' is not an amount of TAO", emission);
        goto out;
    }
    if (params) {
        size_t len;
        if ((rc = ts_read_file(params, 1u << 20, (uint8_t **)&ptext, &len, &e))) goto out;
    }
    /* The run parameters as every node will read them from the genesis,
     * checked by the same code before anything is written: a subnet whose
     * nodes would all refuse its parameters is never made. */
    {
        cJSON *pj = cJSON_Parse(ptext ? ptext : "{}");
        node_run run;
        if (!cJSON_IsObject(pj)) {
            rc = ts_fail(&e, TS_EINVAL, "%s: run parameters must be a JSON object", params ? params : "");
        } else if ((rc = node_run_from_json(&run, run_id, pj, &e))) {
            ts_wrap(&e, "%s", params ? params : "the default run parameters");
        }
        cJSON_Delete(pj);
        if (rc) goto out;
    }
    rc = ts_key_load(owner_wallet, owner_hotkey, &owner, &e);
    if (rc == TS_ENOTFOUND) {
        char *path = NULL;
        rc = ts_key_create(owner_wallet, owner_hotkey, &owner, &path, &e);
        free(path);
        created = rc == TS_OK;
    }
    if (rc) goto out;
    g.run_id = run_id;
    g.netuid = (uint32_t)netuid;
    g.block_time = block_time;
    g.blocks_per_window = (uint64_t)bpw;
    g.max_uids = (uint32_t)max_uids;
    g.max_validators = (uint32_t)(max_vals > max_uids ? max_uids : max_vals);
    g.min_validator_stake = (uint64_t)mvs;
    g.immunity_period = (uint64_t)immunity;
    g.weights_rate_limit = (uint64_t)rate;
    g.genesis_time = genesis_time;
    g.run_params_json = ptext;
    g.tempo = (uint64_t)tempo;
    g.emission_per_block = (uint64_t)epb;
    g.owner_cut = (uint32_t)owner_cut;
    g.kappa = (uint32_t)kappa;
    g.bonds_moving_average = (uint64_t)bma;
    g.activity_cutoff = (uint64_t)cutoff;
    memcpy(g.owner, owner.pk, TS_PK_BYTES);
    if ((rc = chain_local_init(dir, &g, &e))) goto out;
    chain *ch = NULL;
    if ((rc = open_dir(dir, &ch, &e))) goto out;
    const chain_params *p = chain_get_params(ch);
    char abs[PATH_MAX], when[64], ss[64], dur[32];
    if (!realpath(dir, abs)) snprintf(abs, sizeof abs, "%s", dir);
    fmt_utc(when, sizeof when, p->genesis_time);
    ts_ss58(ss, owner.pk);
    ts_fmt_duration(dur, sizeof dur, p->block_time * (double)p->blocks_per_window);
    printf("created local subnet %s\n", abs);
    printf("  run        %s, netuid %u\n", p->run_id, p->netuid);
    printf("  genesis    %s; %g s blocks, %llu blocks per window (%s)\n", when, p->block_time,
           (unsigned long long)p->blocks_per_window, dur);
    printf("  uids       %u, validator permits for the top %u by stake\n", p->max_uids, p->max_validators);
    char epbs[40];
    chain_fmt_tao(epbs, sizeof epbs, g.emission_per_block, 0);
    printf("  epochs     every %llu blocks (tempo %llu), the first at block %llu; %s TAO per block, %.1f %% to the owner\n",
           (unsigned long long)(g.tempo + 1), (unsigned long long)g.tempo,
           (unsigned long long)(1 + chain_epoch_blocks_until(p->netuid, g.tempo, 1)), epbs, 100.0 * g.owner_cut / 65535.0);
    printf("  owner      %s (wallet %s, hotkey %s%s)\n", ss, owner_wallet, owner_hotkey,
           created ? ", created" : "");
    printf("  chain URL  local:%s\n", abs);
    chain_close(ch);
out:
    free(ptext);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

/* -------------------------------------------------------------- register */

static int cmd_register(int argc, char **argv) {
    char *dir = NULL, *wallet = NULL, *hotkey = NULL;
    const ts_opt opts[] = {
        {"dir", TS_OPT_STR, &dir, NULL, "subnet directory", TS_OPT_REQUIRED | TS_OPT_NOENV, 'd'},
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "hotkey name", TS_OPT_REQUIRED, 'k'},
    };
    const ts_cmdline c = {
        .prog = "tessera localnet register",
        .usage = "--dir D --wallet W --hotkey H",
        .summary = "Registers a hotkey on the local subnet (signed by the hotkey).  When the subnet\n"
                   "is full, the uid with the least stake past its immunity period is replaced.",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    ts_keypair kp;
    chain *ch = NULL;
    chain_registration r;
    if (!(rc = ts_key_load(wallet, hotkey, &kp, &e)) && !(rc = open_dir(dir, &ch, &e)) &&
        !(rc = chain_register(ch, &kp, &r, &e))) {
        char ss[64];
        ts_ss58(ss, kp.pk);
        printf("registered %s/%s (%s) as uid %u at block %llu\n", wallet, hotkey, ss, r.uid,
               (unsigned long long)r.block);
        if (r.replaced) {
            ts_ss58(ss, r.old_hotkey);
            printf("  replacing %s\n", ss);
        }
    }
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

/* ----------------------------------------------------------------- stake */

static int cmd_stake(int argc, char **argv) {
    char *dir = NULL, *wallet = NULL, *hotkey = NULL, *amount = NULL, *owner_wallet = NULL,
         *owner_hotkey = NULL;
    const ts_opt opts[] = {
        {"dir", TS_OPT_STR, &dir, NULL, "subnet directory", TS_OPT_REQUIRED | TS_OPT_NOENV, 'd'},
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet of the hotkey (when named)", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "hotkey name, SS58 address or 0x public key", TS_OPT_REQUIRED, 'k'},
        {"amount", TS_OPT_STR, &amount, NULL, "TAO to add (negative: remove), up to 9 decimals", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
        {"owner-wallet", TS_OPT_STR, &owner_wallet, "default", "wallet of the subnet owner key", 0, 0},
        {"owner-hotkey", TS_OPT_STR, &owner_hotkey, "owner", "the subnet owner key", 0, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera localnet stake",
        .usage = "--dir D --hotkey H --amount TAO",
        .summary = "Adds stake to (or, with a negative amount, removes it from) a registered hotkey.\n"
                   "Signed by the subnet owner's key.  Validator permits follow stake.",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    uint8_t pk[TS_PK_BYTES];
    ts_keypair owner;
    int64_t rao = 0;
    chain *ch = NULL;
    chain_metagraph mg = {0};
    if (chain_parse_tao(amount, &rao) || rao == 0) {
        rc = ts_fail(&e, TS_EINVAL, "--amount '%s' is not a non-zero amount of TAO (e.g. 100 or -2.5)", amount);
    } else if (!(rc = tool_resolve_pubkey(wallet, hotkey, pk, &e)) &&
               !(rc = ts_key_load(owner_wallet, owner_hotkey, &owner, &e)) &&
               !(rc = open_dir(dir, &ch, &e)) && !(rc = chain_stake(ch, &owner, pk, rao, &e)) &&
               !(rc = chain_metagraph_get(ch, &mg, &e))) {
        uint32_t uid = 0;
        chain_uid_of(&mg, pk, &uid);
        char ss[64], tao[40], d[40];
        ts_ss58(ss, pk);
        chain_fmt_tao(tao, sizeof tao, mg.neurons[uid].stake, 0);
        chain_fmt_tao(d, sizeof d, (uint64_t)(rao < 0 ? -rao : rao), 0);
        printf("uid %u (%s): stake %s TAO (%s%s)%s\n", uid, ss, tao, rao < 0 ? "-" : "+", d,
               mg.neurons[uid].validator_permit ? ", validator permit" : "");
    }
    chain_metagraph_free(&mg);
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

/* ---------------------------------------------------------------- commit */

static int cmd_commit(int argc, char **argv) {
    char *dir = NULL, *wallet = NULL, *hotkey = NULL, *data = NULL;
    const ts_opt opts[] = {
        {"dir", TS_OPT_STR, &dir, NULL, "subnet directory", TS_OPT_REQUIRED | TS_OPT_NOENV, 'd'},
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "hotkey name", TS_OPT_REQUIRED, 'k'},
        {"data", TS_OPT_STR, &data, NULL, "the commitment (e.g. bucket read credentials)", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera localnet commit",
        .usage = "--dir D --wallet W --hotkey H --data STRING",
        .summary = "Publishes a hotkey's commitment (1..1024 bytes; normally its bucket's read\n"
                   "credentials, which the miner and validator publish themselves).",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    ts_keypair kp;
    chain *ch = NULL;
    if (!(rc = ts_key_load(wallet, hotkey, &kp, &e)) && !(rc = open_dir(dir, &ch, &e)) &&
        !(rc = chain_commit(ch, &kp, data, &e)))
        printf("committed %zu bytes for %s/%s\n", strlen(data), wallet, hotkey);
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

/* ----------------------------------------------------------- set-weights */

static int cmd_set_weights(int argc, char **argv) {
    char *dir = NULL, *wallet = NULL, *hotkey = NULL, *spec = NULL;
    const ts_opt opts[] = {
        {"dir", TS_OPT_STR, &dir, NULL, "subnet directory", TS_OPT_REQUIRED | TS_OPT_NOENV, 'd'},
        {"wallet", TS_OPT_STR, &wallet, "default", "wallet name", 0, 'w'},
        {"hotkey", TS_OPT_STR, &hotkey, NULL, "the validator's hotkey name", TS_OPT_REQUIRED, 'k'},
        {"weights", TS_OPT_STR, &spec, NULL, "UID=WEIGHT,UID=WEIGHT,...", TS_OPT_REQUIRED | TS_OPT_NOENV, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera localnet set-weights",
        .usage = "--dir D --wallet W --hotkey H --weights 1=0.75,2=0.25",
        .summary = "Sets a validator's weights by hand (the validator does this itself).  Weights\n"
                   "are scaled so that the largest is 65535, as on Bittensor.",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    uint32_t uids[CHAIN_MAX_UIDS];
    float w[CHAIN_MAX_UIDS];
    uint32_t n = 0;
    for (char *p = spec; *p && !rc;) {
        char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        int64_t u;
        double v;
        char *eq;
        if (len >= sizeof item || n == CHAIN_MAX_UIDS) {
            rc = ts_fail(&e, TS_EINVAL, "--weights: entry %u is too long or there are too many", n);
            break;
        }
        memcpy(item, p, len);
        item[len] = 0;
        if (!(eq = strchr(item, '=')) || (*eq = 0, ts_parse_i64(item, &u)) || u < 0 ||
            u >= CHAIN_MAX_UIDS || ts_parse_f64(eq + 1, &v)) {
            rc = ts_fail(&e, TS_EINVAL, "--weights: '%.*s' is not UID=WEIGHT", (int)len, p);
            break;
        }
        uids[n] = (uint32_t)u;
        w[n++] = (float)v;
        p = comma ? comma + 1 : p + len;
    }
    ts_keypair kp;
    chain *ch = NULL;
    if (!rc && !(rc = ts_key_load(wallet, hotkey, &kp, &e)) && !(rc = open_dir(dir, &ch, &e)) &&
        !(rc = chain_set_weights(ch, &kp, uids, w, n, &e)))
        printf("set %u weights for %s/%s\n", n, wallet, hotkey);
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

/* ---------------------------------------------------------------- status */

/* Names of the hotkeys found in $TESSERA_HOME/wallets (public keys only). */
typedef struct {
    uint8_t pk[TS_PK_BYTES];
    char name[140];
} local_key;

static int scan_wallets(local_key **out) {
    *out = NULL;
    char *home = ts_home_dir();
    char *wdir = home ? ts_path_join(home, "wallets") : NULL;
    free(home);
    if (!wdir) return 0;
    int n = 0, cap = 0;
    DIR *d = opendir(wdir);
    struct dirent *w;
    while (d && (w = readdir(d)) && n < 1000) {
        if (w->d_name[0] == '.') continue;
        char hk[PATH_MAX];
        snprintf(hk, sizeof hk, "%s/%s/hotkeys", wdir, w->d_name);
        DIR *h = opendir(hk);
        struct dirent *k;
        while (h && (k = readdir(h)) && n < 1000) {
            if (k->d_name[0] == '.' || strstr(k->d_name, ".tmp.")) continue;
            char kp[PATH_MAX + 300];
            snprintf(kp, sizeof kp, "%s/%s", hk, k->d_name);
            /* Only the public key is wanted: pick it out of the text rather
             * than parse the file, so the secret seed is never copied, and
             * wipe the buffer. */
            uint8_t *buf;
            size_t len;
            if (ts_read_file(kp, 1 << 16, &buf, &len, NULL)) continue;
            uint8_t pk[TS_PK_BYTES];
            const char *at = strstr((char *)buf, "\"publicKey\"");
            const char *q = at ? strstr(at, "\"0x") : NULL;
            char hex[2 * TS_PK_BYTES + 3] = "";
            if (q && strlen(q + 1) > sizeof hex - 1 && q[sizeof hex] == '"') {
                memcpy(hex, q + 1, sizeof hex - 1);
                hex[sizeof hex - 1] = 0;
            }
            explicit_bzero(buf, len);
            free(buf);
            if (!hex[0] || ts_unhex(pk, TS_PK_BYTES, hex)) continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                local_key *nk = realloc(*out, (size_t)cap * sizeof *nk);
                if (!nk) break;
                *out = nk;
            }
            memcpy((*out)[n].pk, pk, TS_PK_BYTES);
            snprintf((*out)[n].name, sizeof (*out)[n].name, "%s/%s", w->d_name, k->d_name);
            n++;
        }
        if (h) closedir(h);
    }
    if (d) closedir(d);
    free(wdir);
    return n;
}

static const char *key_name(const local_key *keys, int n, const uint8_t pk[TS_PK_BYTES]) {
    for (int i = 0; i < n; i++)
        if (!memcmp(keys[i].pk, pk, TS_PK_BYTES)) return keys[i].name;
    return "-";
}

/* What a commitment names, without any of its secrets.  A commitment is
 * normally a bucket's read credentials (storage/storage.h), so none of its
 * text is printed as such: it is parsed, and only the store it names is
 * shown.  kind: "r2", "s3", "file" or "unparsable"; desc: "r2 ACCOUNT",
 * "s3 BUCKET[/PREFIX] @ ENDPOINT", "file:///path" or "unparsable (N bytes)";
 * store: the store URL without credentials ("" when unparsable). */
typedef struct {
    const char *kind;
    char desc[STORE_URL_MAX + 32];
    char store[STORE_URL_MAX];
} commit_view;

static void commit_describe(const chain_commitment *cm, commit_view *v) {
    store_commitment c;
    v->store[0] = 0;
    if (strlen(cm->data) != cm->len || store_commitment_parse(node_commitment_bucket(cm->data), STORE_COMMIT_ANY, &c, NULL)) {
        v->kind = "unparsable";
        snprintf(v->desc, sizeof v->desc, "unparsable (%u bytes)", cm->len);
        explicit_bzero(&c, sizeof c);
        return;
    }
    explicit_bzero(c.access_key, sizeof c.access_key);
    explicit_bzero(c.secret_key, sizeof c.secret_key);
    snprintf(v->store, sizeof v->store, "%s", c.url);
    explicit_bzero(&c, sizeof c);
    if (!strncmp(v->store, "file://", 7)) {
        v->kind = "file";
        snprintf(v->desc, sizeof v->desc, "%s", v->store);
        return;
    }
    /* the credential-free s3 form: s3://BUCKET[/PREFIX]?endpoint=EP&region=R */
    const char *loc = v->store + 5, *q = strchr(loc, '?');
    int nloc = q ? (int)(q - loc) : (int)strlen(loc);
    const char *ep = q ? strstr(q, "endpoint=") : NULL;
    int nep = 0;
    if (ep) {
        ep += 9;
        if (!strncmp(ep, "https://", 8)) ep += 8;
        nep = (int)strcspn(ep, "&");
    }
    if (cm->len == STORE_COMMIT_R2_LEN && !strstr(cm->data, "://")) {
        v->kind = "r2"; /* the bucket is the account id */
        snprintf(v->desc, sizeof v->desc, "r2 %.*s", nloc, loc);
    } else {
        v->kind = "s3";
        snprintf(v->desc, sizeof v->desc, "s3 %.*s @ %.*s", nloc, loc, nep, ep ? ep : "");
    }
}

/* A commitment's description for the table: at most 60 columns. */
static void short_commit(char *out, size_t cap, const chain_commitment *cm) {
    commit_view v;
    commit_describe(cm, &v);
    if (strlen(v.desc) <= 60) snprintf(out, cap, "%s", v.desc);
    else snprintf(out, cap, "%.57s...", v.desc);
}

static void short_weights(char *out, size_t cap, const chain_weight_row *r) {
    double sum = 0;
    for (uint32_t i = 0; i < r->n; i++) sum += r->w[i].weight;
    size_t at = (size_t)snprintf(out, cap, "@%llu", (unsigned long long)r->block);
    /* the three largest, largest first */
    uint32_t top[3];
    int nt = 0;
    for (int k = 0; k < 3 && k < (int)r->n; k++) {
        int best = -1;
        for (uint32_t i = 0; i < r->n; i++) {
            bool taken = false;
            for (int j = 0; j < nt; j++) taken |= top[j] == i;
            if (!taken && (best < 0 || r->w[i].weight > r->w[best].weight)) best = (int)i;
        }
        top[nt++] = (uint32_t)best;
    }
    for (int j = 0; j < nt && at < cap; j++)
        at += (size_t)snprintf(out + at, cap - at, " %u:%.0f%%", r->w[top[j]].uid,
                               100.0 * r->w[top[j]].weight / sum);
    if (r->n > 3 && at < cap) snprintf(out + at, cap - at, " +%u more", r->n - 3);
}

/* The leader of the current window as the nodes compute it: the chain as it
 * stood when the window began, with the run's liveness (docs/FORMATS.md
 * 11.5); during the window's first block, the previous window's; when no uid
 * held a permit then, the leader of the next window by the chain as it is.
 * UINT32_MAX when there is none. */
static uint32_t window_leader(chain *ch, const chain_clock *ck, const chain_metagraph *now) {
    const chain_params *p = chain_get_params(ch);
    node_run r;
    ts_err e = {0};
    uint64_t live = 0;
    if (node_run_from_json(&r, p->run_id, chain_run_params(ch), &e) == TS_OK)
        live = (uint64_t)r.leader_liveness_windows * p->blocks_per_window;
    chain_metagraph at;
    int rc = chain_metagraph_at(ch, ck->window_start_block, &at, &e);
    if (rc == TS_ESTATE && ck->window > 0) rc = chain_metagraph_at(ch, ck->window_start_block - p->blocks_per_window, &at, &e);
    uint32_t leader = UINT32_MAX;
    if (rc == TS_OK) {
        if (chain_leader_live(&at, live, &leader)) leader = UINT32_MAX;
        chain_metagraph_free(&at);
    }
    /* no permit holder when the window began (a new subnet): who leads from
     * the next window on, by the same rule */
    if (leader == UINT32_MAX && chain_leader_live(now, live, &leader)) leader = UINT32_MAX;
    return leader;
}

/* What the last epoch gave the uid's current holder: NULL when there was no
 * epoch, the uid did not exist then, or it has been replaced since. */
static double u16_frac(uint16_t v) { return v / 65535.0; }

/* The epoch line of the status: the last epoch, or when the first will run. */
static void epoch_line(const chain_epoch *ep, uint64_t tempo, uint32_t netuid) {
    if (!ep) {
        printf("epochs: none yet (tempo %llu: the first at block %llu)\n", (unsigned long long)tempo,
               (unsigned long long)(1 + chain_epoch_blocks_until(netuid, tempo, 1)));
        return;
    }
    char paid[40], own[40], ownt[40];
    chain_fmt_tao(paid, sizeof paid, ep->emission, 1);
    chain_fmt_tao(own, sizeof own, ep->owner_emission, 1);
    chain_fmt_tao(ownt, sizeof ownt, ep->owner_earned, 1);
    printf("epoch %llu at block %llu (tempo %llu, next at block %llu): %s TAO to the uids, %s TAO to the owner "
           "(%s TAO since genesis)\n",
           (unsigned long long)ep->count, (unsigned long long)ep->block, (unsigned long long)ep->tempo,
           (unsigned long long)ep->next_block, paid, own, ownt);
}

static int status_json(uint32_t leader, const chain_params *p, const chain_clock *ck,
                       const chain_metagraph *mg, const chain_commitment *cm, uint32_t ncm,
                       const chain_weight_row *rows, uint32_t nrows, const chain_stats *st,
                       const chain_rejection *rej, uint32_t nrej, const local_key *keys, int nkeys,
                       const char *dir, const chain_epoch *ep, uint64_t tempo) {
    cJSON *o = cJSON_CreateObject();
    char hex[2 * TS_PK_BYTES + 3] = "0x", ss[64];
    cJSON_AddStringToObject(o, "dir", dir);
    cJSON_AddStringToObject(o, "run_id", p->run_id);
    cJSON_AddNumberToObject(o, "netuid", p->netuid);
    cJSON_AddNumberToObject(o, "genesis_time", p->genesis_time);
    cJSON_AddNumberToObject(o, "block_time", p->block_time);
    cJSON_AddNumberToObject(o, "blocks_per_window", (double)p->blocks_per_window);
    cJSON_AddNumberToObject(o, "max_uids", p->max_uids);
    cJSON_AddNumberToObject(o, "max_validators", p->max_validators);
    cJSON_AddNumberToObject(o, "block", (double)ck->block);
    cJSON_AddNumberToObject(o, "block_timestamp", ck->block_timestamp);
    cJSON_AddNumberToObject(o, "window", (double)ck->window);
    cJSON_AddNumberToObject(o, "next_window_time", ck->next_window_time);
    cJSON_AddNumberToObject(o, "seconds_left", ck->seconds_left);
    if (leader != UINT32_MAX) cJSON_AddNumberToObject(o, "leader", leader);
    else cJSON_AddNullToObject(o, "leader");
    cJSON_AddNumberToObject(o, "tempo", (double)tempo);
    if (ep) {
        cJSON *eo = cJSON_AddObjectToObject(o, "epoch");
        cJSON_AddNumberToObject(eo, "block", (double)ep->block);
        cJSON_AddNumberToObject(eo, "count", (double)ep->count);
        cJSON_AddNumberToObject(eo, "next_block", (double)ep->next_block);
        cJSON_AddNumberToObject(eo, "emission_rao", (double)ep->emission);
        cJSON_AddNumberToObject(eo, "owner_emission_rao", (double)ep->owner_emission);
        cJSON_AddNumberToObject(eo, "owner_earned_rao", (double)ep->owner_earned);
        cJSON_AddNumberToObject(eo, "n", ep->n);
    } else {
        cJSON_AddNullToObject(o, "epoch");
        cJSON_AddNumberToObject(o, "first_epoch_block", (double)(1 + chain_epoch_blocks_until(p->netuid, tempo, 1)));
    }
    cJSON *arr = cJSON_AddArrayToObject(o, "uids");
    for (uint32_t u = 0; u < mg->n; u++) {
        const chain_neuron *x = &mg->neurons[u];
        cJSON *j = cJSON_CreateObject();
        ts_hex(hex + 2, x->hotkey, TS_PK_BYTES);
        ts_ss58(ss, x->hotkey);
        cJSON_AddNumberToObject(j, "uid", u);
        cJSON_AddStringToObject(j, "hotkey", hex);
        cJSON_AddStringToObject(j, "ss58", ss);
        const char *nm = key_name(keys, nkeys, x->hotkey);
        if (strcmp(nm, "-")) cJSON_AddStringToObject(j, "local_name", nm);
        char tao[40];
        chain_fmt_tao(tao, sizeof tao, x->stake, 0);
        cJSON_AddStringToObject(j, "stake_tao", tao);
        cJSON_AddNumberToObject(j, "stake_rao", (double)x->stake);
        cJSON_AddBoolToObject(j, "validator_permit", x->validator_permit);
        cJSON_AddNumberToObject(j, "registered_block", (double)x->registered_block);
        if (x->last_active == CHAIN_BLOCK_NONE) cJSON_AddNullToObject(j, "last_active");
        else cJSON_AddNumberToObject(j, "last_active", (double)x->last_active);
        /* the last epoch: fractions, and the u16 values as the chain stores them */
        tool_epoch_json(j, tool_epoch_of(ep, x), true);
        for (uint32_t i = 0; i < ncm; i++)
            if (cm[i].uid == u) {
                /* what the commitment names, never its credentials */
                commit_view v;
                commit_describe(&cm[i], &v);
                cJSON_AddStringToObject(j, "commitment_kind", v.kind);
                cJSON_AddStringToObject(j, "commitment_summary", v.desc);
                if (v.store[0]) cJSON_AddStringToObject(j, "commitment_store", v.store);
                cJSON_AddNumberToObject(j, "commitment_bytes", cm[i].len);
                cJSON_AddNumberToObject(j, "commitment_block", (double)cm[i].block);
            }
        for (uint32_t i = 0; i < nrows; i++)
            if (rows[i].uid == u) {
                cJSON *wo = cJSON_AddObjectToObject(j, "weights");
                cJSON_AddNumberToObject(wo, "block", (double)rows[i].block);
                cJSON *we = cJSON_AddObjectToObject(wo, "u16");
                for (uint32_t k = 0; k < rows[i].n; k++) {
                    char key[16];
                    snprintf(key, sizeof key, "%u", rows[i].w[k].uid);
                    cJSON_AddNumberToObject(we, key, rows[i].w[k].weight);
                }
            }
        cJSON_AddItemToArray(arr, j);
    }
    cJSON *lg = cJSON_AddObjectToObject(o, "log");
    cJSON_AddNumberToObject(lg, "lines", (double)st->lines);
    cJSON_AddNumberToObject(lg, "accepted", (double)st->accepted);
    cJSON_AddNumberToObject(lg, "rejected", (double)st->rejected);
    cJSON_AddNumberToObject(lg, "torn_bytes", (double)st->torn_bytes);
    cJSON *ra = cJSON_AddArrayToObject(lg, "recent_rejections");
    for (uint32_t i = 0; i < nrej; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "line", (double)rej[i].line);
        cJSON_AddStringToObject(r, "reason", rej[i].reason);
        cJSON_AddItemToArray(ra, r);
    }
    char *s = cJSON_Print(o);
    int rc = s ? 0 : 1;
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    return rc;
}

static int cmd_status(int argc, char **argv) {
    char *dir = NULL;
    bool json = false;
    const ts_opt opts[] = {
        {"dir", TS_OPT_STR, &dir, NULL, "subnet directory", TS_OPT_REQUIRED | TS_OPT_NOENV, 'd'},
        {"json", TS_OPT_BOOL, &json, "false", "print JSON", TS_OPT_NOENV, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera localnet status",
        .usage = "--dir D [--json]",
        .summary = "Shows the subnet: the clock (block, window, time left), the last epoch, and per\n"
                   "uid its hotkey, stake, validator permit, registration block, last activity (the\n"
                   "block of its latest commitment or weights), what the last epoch gave it\n"
                   "(incentive and dividends as fractions, emission in TAO) and its earned total\n"
                   "since registration (TAO), commitment and latest weights.",
        .opts = opts, .nopts = NOPTS(opts), .env = true, .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    /* rejected lines are listed in the output; no need to warn about each */
    ts_log_set_level(TS_LOG_ERROR);
    chain *ch = NULL;
    chain_metagraph mg = {0};
    chain_commitment *cm = NULL;
    chain_weight_row *rows = NULL;
    uint32_t ncm = 0, nrows = 0;
    chain_clock ck;
    chain_stats st;
    chain_info info;
    chain_epoch epoch = {0};
    bool have_epoch = false;
    local_key *keys = NULL;
    if ((rc = open_dir(dir, &ch, &e)) || (rc = chain_metagraph_get(ch, &mg, &e)) ||
        (rc = chain_commitments(ch, &cm, &ncm, &e)) || (rc = chain_weights(ch, &rows, &nrows, &e)) ||
        (rc = chain_get_stats(ch, &st, &e)) || (rc = chain_now(ch, &ck, &e)) || (rc = chain_get_info(ch, &info, &e)))
        goto out;
    rc = chain_epoch_last(ch, &epoch, &e);
    if (rc == TS_OK) have_epoch = true;
    else if (rc != TS_ENOTFOUND) goto out; /* none yet: the status says when the first runs */
    rc = 0;
    const chain_epoch *ep = have_epoch ? &epoch : NULL;
    const chain_params *p = chain_get_params(ch);
    chain_rejection rej[5];
    uint32_t nrej = chain_rejections(ch, rej, 5);
    int nkeys = scan_wallets(&keys);
    if (json) {
        rc = status_json(window_leader(ch, &ck, &mg), p, &ck, &mg, cm, ncm, rows, nrows, &st, rej, nrej, keys, nkeys, dir,
                         ep, info.tempo);
        goto out;
    }
    char when[64], left[32];
    fmt_utc(when, sizeof when, ck.block_timestamp);
    ts_fmt_duration(left, sizeof left, ck.seconds_left);
    uint32_t npermits = 0, leader = window_leader(ch, &ck, &mg);
    for (uint32_t u = 0; u < mg.n; u++) npermits += mg.neurons[u].validator_permit;
    printf("subnet %s  netuid %u  (local:%s)\n", p->run_id, p->netuid, dir);
    printf("block %llu at %s  window %llu (block %llu of %llu)  next window in %s\n",
           (unsigned long long)ck.block, when, (unsigned long long)ck.window,
           (unsigned long long)(ck.block - ck.window_start_block + 1),
           (unsigned long long)p->blocks_per_window, left);
    printf("%g s blocks, %u of %u uids registered, %u validator permits (at most %u)\n",
           p->block_time, mg.n, p->max_uids, npermits, p->max_validators);
    printf("log: %llu transactions, %llu rejected%s\n", (unsigned long long)st.accepted,
           (unsigned long long)st.rejected, st.torn_bytes ? ", a torn last line (ignored)" : "");
    epoch_line(ep, info.tempo, p->netuid);
    printf("\n");
    int nw = 4;
    for (uint32_t u = 0; u < mg.n; u++) {
        int l = (int)strlen(key_name(keys, nkeys, mg.neurons[u].hotkey));
        if (l > nw) nw = l;
    }
    if (nw > 24) nw = 24;
    printf("UID  HOTKEY          %-*s  %12s  VALIDATOR  %9s  %9s  %9s  %9s  %14s  %14s  %-36s  %s\n", nw, "NAME",
           "STAKE (TAO)", "REG.BLOCK", "ACTIVE", "INCENTIVE", "DIVIDENDS", "EMISSION (TAO)", "EARNED (TAO)",
           "COMMITMENT", "WEIGHTS");
    for (uint32_t u = 0; u < mg.n; u++) {
        const chain_neuron *x = &mg.neurons[u];
        char hk[32], tao[40], com[64] = "-", wts[160] = "-", act[24] = "-";
        char inc[16] = "-", div[16] = "-", emi[40] = "-", earn[40] = "-";
        short_ss58(hk, sizeof hk, x->hotkey);
        chain_fmt_tao(tao, sizeof tao, x->stake, 0);
        const chain_epoch_uid *y = tool_epoch_of(ep, x);
        if (y) {
            snprintf(inc, sizeof inc, "%.4f", u16_frac(y->incentive));
            snprintf(div, sizeof div, "%.4f", u16_frac(y->dividends));
            chain_fmt_tao(emi, sizeof emi, y->emission, 1);
            chain_fmt_tao(earn, sizeof earn, y->earned, 1);
        }
        if (x->last_active != CHAIN_BLOCK_NONE)
            snprintf(act, sizeof act, "%llu", (unsigned long long)x->last_active);
        for (uint32_t i = 0; i < ncm; i++)
            if (cm[i].uid == u) short_commit(com, sizeof com, &cm[i]);
        for (uint32_t i = 0; i < nrows; i++)
            if (rows[i].uid == u) short_weights(wts, sizeof wts, &rows[i]);
        printf("%3u  %-14s  %-*.*s  %12s  %-9s  %9llu  %9s  %9s  %9s  %14s  %14s  %-36s  %s\n", u, hk, nw, nw,
               key_name(keys, nkeys, x->hotkey), tao,
               u == leader ? "leader" : x->validator_permit ? "permit" : "-",
               (unsigned long long)x->registered_block, act, inc, div, emi, earn, com, wts);
    }
    if (mg.n == 0) printf("(no uids registered: tessera localnet register --dir %s --wallet W --hotkey H)\n", dir);
    if (nrej) {
        printf("\nrecent rejected lines:\n");
        for (uint32_t i = 0; i < nrej; i++)
            printf("  line %llu: %s\n", (unsigned long long)rej[i].line, rej[i].reason);
    }
out:
    chain_epoch_free(&epoch);
    free(keys);
    free(cm);
    free(rows);
    chain_metagraph_free(&mg);
    chain_close(ch);
    ts_opts_free(opts, NOPTS(opts));
    return rc ? tool_error(&e) : 0;
}

static int cmd_localnet(int argc, char **argv) {
    static const tool_verb verbs[] = {
        {"init", "create a local subnet (genesis and an empty log)", cmd_init},
        {"register", "register a hotkey (takes or replaces a uid)", cmd_register},
        {"stake", "add or remove a hotkey's stake (owner key)", cmd_stake},
        {"commit", "publish a hotkey's commitment", cmd_commit},
        {"set-weights", "set a validator's weights", cmd_set_weights},
        {"status", "show uids, stake, permits, commitments, weights, the clock", cmd_status},
    };
    return tool_dispatch("tessera localnet",
                         "Operate a local subnet: a file-backed chain on this machine (local:DIR).", verbs,
                         NOPTS(verbs), argc, argv);
}

TS_COMMAND("localnet", "create and operate a local subnet", 20, cmd_localnet)
