/* local.c - the local subnet: a directory with genesis.json and chain.log.
 *
 * The log is an append-only text file of signed transactions, one per line
 * (docs/FORMATS.md section 9).  The state - who holds which uid, stake,
 * commitments, weights - is a pure function of (genesis, log bytes): every
 * process replays the same bytes with the same rules and reaches the same
 * state, with no server.  Blocks follow the wall clock from genesis.
 *
 * Readers take no lock.  They consume complete lines only (ending in '\n'),
 * remember how far they got, and later read only what was appended.  A tail
 * without '\n' is either a line being written right now or the remains of a
 * writer that crashed; either way it is ignored until it is complete.
 *
 * Writers take flock(LOCK_EX) on the log, catch up with the log under the
 * lock, cut off a torn tail (it can only be a crashed writer's, since every
 * writer holds the lock while writing), check the transaction against the
 * state exactly as replay will, append the whole line with one write(), and
 * fdatasync before reporting success.  A transaction is acknowledged only
 * once durable, so cutting a torn tail never loses an acknowledged one.
 *
 * Replay verifies every line: format, signature (over the genesis hash and
 * the line, in the scheme the genesis records: sr25519), sequence number (a
 * copied line fails), block order, and the rules of its kind.  A line that
 * fails is ignored with a reason that chain_rejections reports; it never
 * stops the replay.
 *
 * Besides the state, a handle keeps a compact history of the accepted
 * transactions (block, kind, uid, stake after, registered hotkey, the
 * entries of weights), from which chain_metagraph_at rebuilds the metagraph
 * as it stood at any past block.
 *
 * Epochs (chain_epoch_last) replay the same history into a second scratch
 * state, the epoch cursor, which also carries what one epoch leaves to the
 * next (bonds, every uid's earned balance): at each block where subtensor
 * would run the epoch, the cursor holds exactly the transactions of the
 * blocks before it and runs Yuma consensus (yuma/yuma.h) on them.  The
 * cursor advances only when asked and only over final blocks, and is thrown
 * away (to be replayed from genesis) when a transaction arrives late, behind
 * an epoch it already ran: so its results are a pure function of the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "chain_internal.h"
#include "yuma/yuma.h"

#define GENESIS_NAME "genesis.json"
#define LOG_NAME "chain.log"
#define GENESIS_FORMAT "tessera-localnet"
#define GENESIS_VERSION 2 /* 2: records its signature scheme (sr25519); 1 was Ed25519 */
#define GENESIS_MAX (1u << 20)
#define READ_CHUNK (1u << 20)
#define REJECT_KEEP 64
#define LOCK_TIMEOUT_S 30.0
#define TAIL_BYTES 32
#define MAX_JSON_INT 9007199254740992.0 /* 2^53 */
/* Epoch defaults (subtensor's; docs/FORMATS.md 9.1) */
#define DEF_TEMPO 360
#define DEF_EMISSION_PER_BLOCK CHAIN_RAO_PER_TAO
#define DEF_OWNER_CUT 11796          /* SubnetOwnerCut: 18 % of 65535 */
#define DEF_KAPPA 32767
#define DEF_BONDS_MOVING_AVERAGE 900000
#define DEF_ACTIVITY_CUTOFF 5000
#define MAX_EMISSION_PER_BLOCK 100000000000000ull /* 10^14 rao: tempo 65535 times it fits in 63 bits */

typedef struct neuron_st {
    uint8_t hotkey[TS_PK_BYTES];
    uint64_t stake;
    uint64_t reg_block;
    uint64_t last_active;       /* last accepted commit or weights, or CHAIN_BLOCK_NONE */
    bool has_commit;
    uint64_t commit_block;
    uint32_t commit_len;
    char *commit;               /* CHAIN_COMMIT_MAX + 1 bytes, allocated on first use */
    bool has_weights;
    uint64_t w_block;
    uint32_t nw;
    chain_weight *w;            /* max_uids entries, allocated on first use */
} neuron_st;

/* One accepted transaction, as much of it as the metagraph needs: the
 * history that chain_metagraph_at replays.  Accepted lines have
 * non-decreasing blocks, so the transactions of the blocks before B are a
 * prefix of the history. */
typedef struct hist_rec {
    uint64_t block;
    uint64_t seq;               /* its line in the log */
    uint64_t val;               /* stake: the stake after; register: index into hkeys;
                                 * weights: index of the first entry in wpool */
    uint32_t uid;               /* register: the uid taken; otherwise the uid acting / staked */
    uint16_t nw;                /* weights: entries (at most max_uids <= 4096) */
    uint8_t kind;               /* chain_tx_kind */
} hist_rec;

/* The metagraph at a past block, replayed from the history (a scratch state
 * that is also the cache of the last snapshot asked for). */
typedef struct at_state {
    bool valid;                 /* cleared whenever the history restarts */
    size_t k;                   /* history records applied */
    uint32_t n;
    neuron_st *nr;              /* max_uids; only hotkey, stake, reg_block, last_active */
    uint8_t *permit;            /* max_uids */
    bool permits_ok;
} at_state;

/* One uid as the epoch cursor knows it. */
typedef struct ep_neuron {
    uint8_t hotkey[TS_PK_BYTES];
    uint64_t stake, reg_block;
    uint64_t last_update;       /* its last weights, or its registration (LastUpdate) */
    uint64_t earned;            /* rao since registration */
    uint32_t nw, wcap, nb, bcap;
    yuma_entry *w;              /* its weights as stored, ascending uid */
    yuma_entry *b;              /* its bonds as the last epoch stored them */
} ep_neuron;

/* The epoch cursor: the history replayed up to the next epoch's block, and
 * what the epochs run so far left (bonds, earned balances, the last
 * results).  Allocated on the first chain_epoch_last. */
typedef struct ep_state {
    bool valid;                 /* cleared when the history restarts or a
                                 * transaction lands behind an epoch already run */
    size_t k;                   /* history records applied */
    uint32_t n;
    ep_neuron *nr;              /* max_uids */
    uint64_t next;              /* the block of the next epoch to run */
    uint64_t prev;              /* the block of the last epoch run (0: none) */
    uint64_t count, owner_earned;
    chain_epoch last;           /* the last epoch's results (count > 0); uids: max_uids */
    /* scratch for yuma_epoch's input (max_uids each) */
    uint64_t *stake, *last_update, *registered;
    bool *permit;
    uint8_t *permit8;
    yuma_row *wrows, *brows;
} ep_state;

typedef struct local {
    char *dir, *log_path;
    chain_params p;
    char *params_json;
    int fd;
    bool writable;
    dev_t dev;
    ino_t ino;
    /* state: a pure function of the log's first `offset` bytes */
    uint32_t n;
    neuron_st *nr;              /* max_uids */
    int32_t *hmap;              /* hotkey -> uid, open addressing, -1 empty */
    uint32_t hcap;
    bool permits_dirty;
    uint8_t *permit;            /* max_uids */
    uint32_t *order;            /* scratch for permits */
    uint64_t *sscratch;         /* scratch for permits: stake by uid */
    /* history of accepted transactions (chain_metagraph_at) */
    hist_rec *hist;
    size_t nhist, hist_cap;
    uint8_t (*hkeys)[TS_PK_BYTES]; /* hotkeys of registrations */
    size_t nhkeys, hkeys_cap;
    at_state at;
    yuma_entry *wpool;          /* entries of the weights in the history */
    size_t nwpool, wpool_cap;
    /* epochs: the genesis' settings and the cursor */
    uint64_t tempo, emission_per_block, bonds_moving_average, activity_cutoff;
    uint16_t owner_cut, kappa;
    ep_state ep;
    bool ep_warned;             /* an epoch that distributed nothing was logged */
    uint64_t nlines, accepted, rejected, offset, last_block, replays, torn;
    uint8_t tail[TAIL_BYTES];   /* the last bytes before offset, to notice rewrites */
    uint32_t tail_len;
    chain_rejection rej[REJECT_KEEP];
    uint32_t rej_next, rej_count;
    uint32_t warned;            /* rejection warnings logged by this process */
    /* scratch */
    uint8_t *buf;               /* READ_CHUNK + CHAIN_TX_LINE_MAX */
    uint8_t *msg;               /* genesis hash + a line */
    chain_weight *wscratch;     /* max_uids */
    uint8_t data[CHAIN_COMMIT_MAX];
} local;

static void ep_free(local *L);

/* ------------------------------------------------------------- helpers */

static bool run_id_ok(const char *s) { return ts_run_id_valid(s); }

static void short_key(char *out, size_t cap, const uint8_t pk[TS_PK_BYTES]) {
    char ss[64];
    ts_ss58(ss, pk);
    snprintf(out, cap, "%s", ss);
}

static int pk_hash(const uint8_t pk[TS_PK_BYTES], uint32_t cap) {
    return (int)(ts_get_u32(pk) & (cap - 1));
}

static void hmap_rebuild(local *L) {
    for (uint32_t i = 0; i < L->hcap; i++) L->hmap[i] = -1;
    for (uint32_t u = 0; u < L->n; u++) {
        uint32_t h = (uint32_t)pk_hash(L->nr[u].hotkey, L->hcap);
        while (L->hmap[h] >= 0) h = (h + 1) & (L->hcap - 1);
        L->hmap[h] = (int32_t)u;
    }
}

static int find_uid(const local *L, const uint8_t pk[TS_PK_BYTES]) {
    uint32_t h = (uint32_t)pk_hash(pk, L->hcap);
    while (L->hmap[h] >= 0) {
        if (!memcmp(L->nr[L->hmap[h]].hotkey, pk, TS_PK_BYTES)) return L->hmap[h];
        h = (h + 1) & (L->hcap - 1);
    }
    return -1;
}

static void neuron_clear(neuron_st *nr) {
    char *commit = nr->commit;
    chain_weight *w = nr->w;
    memset(nr, 0, sizeof *nr);
    nr->commit = commit; /* keep the buffers for the next holder */
    nr->w = w;
    nr->last_active = CHAIN_BLOCK_NONE;
}

static void state_reset(local *L) {
    for (uint32_t u = 0; u < L->p.max_uids; u++) neuron_clear(&L->nr[u]);
    L->n = 0;
    hmap_rebuild(L);
    L->permits_dirty = true;
    L->nlines = L->accepted = L->rejected = L->offset = L->last_block = L->torn = 0;
    L->tail_len = 0;
    L->rej_next = L->rej_count = 0;
    L->nhist = L->nhkeys = L->nwpool = 0;
    L->at.valid = false; /* the history restarts: so does the snapshot cache */
    L->ep.valid = false; /* ... and the epochs */
}

static int cmp_order_ctx_stake(const uint64_t *stake, uint32_t a, uint32_t b) {
    if (stake[a] != stake[b]) return stake[a] > stake[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Validator permits: the top max_validators by stake (ties to the lower uid)
 * among uids holding more than min_validator_stake.  One rule for the live
 * state, the states of chain_metagraph_at and the epochs (L->order is
 * scratch). */
static void permits_of_stake(local *L, const uint64_t *stake, uint32_t n, uint8_t *permit) {
    uint32_t m = 0;
    for (uint32_t u = 0; u < n; u++) {
        permit[u] = 0;
        if (stake[u] > L->p.min_validator_stake) L->order[m++] = u;
    }
    /* insertion sort: n is small (<= 4096) and this runs only after a
     * registration or a stake change, or once an epoch */
    for (uint32_t i = 1; i < m; i++) {
        uint32_t v = L->order[i], j = i;
        while (j > 0 && cmp_order_ctx_stake(stake, v, L->order[j - 1]) < 0) {
            L->order[j] = L->order[j - 1];
            j--;
        }
        L->order[j] = v;
    }
    for (uint32_t i = 0; i < m && i < L->p.max_validators; i++) permit[L->order[i]] = 1;
}

static void permits_compute(local *L, const neuron_st *nr, uint32_t n, uint8_t *permit) {
    for (uint32_t u = 0; u < n; u++) L->sscratch[u] = nr[u].stake;
    permits_of_stake(L, L->sscratch, n, permit);
}

static void permits_update(local *L) {
    if (!L->permits_dirty) return;
    permits_compute(L, L->nr, L->n, L->permit);
    L->permits_dirty = false;
}

/* The uid a registration at `block` replaces when the subnet is full. */
static uint32_t victim_uid(const local *L, uint64_t block) {
    int best = -1;
    for (int pass = 0; pass < 2 && best < 0; pass++) {
        for (uint32_t u = 0; u < L->n; u++) {
            const neuron_st *x = &L->nr[u];
            bool immune = block < x->reg_block || block - x->reg_block < L->p.immunity_period;
            if (pass == 0 && immune) continue;
            if (best < 0) {
                best = (int)u;
                continue;
            }
            const neuron_st *y = &L->nr[best];
            if (x->stake < y->stake || (x->stake == y->stake && x->reg_block < y->reg_block))
                best = (int)u;
        }
    }
    return (uint32_t)best;
}

/* ------------------------------------------------------ transaction rules */

/* Checks tx against the current state; fills reason on refusal.  Replay and
 * writers call the same function, so a writer refuses exactly what replay
 * would ignore. */
static int tx_check(local *L, const chain_tx *tx, char *reason, size_t cap) {
    char who[64]; /* the signer's SS58 address, computed only for a refusal */
#define WHO() (short_key(who, sizeof who, tx->signer), who)
    int uid = find_uid(L, tx->signer);
    switch (tx->kind) {
    case CHAIN_TX_REGISTER:
        if (uid >= 0) {
            snprintf(reason, cap, "hotkey %s is already registered as uid %d", WHO(), uid);
            return TS_EDENIED;
        }
        return TS_OK;
    case CHAIN_TX_STAKE: {
        if (memcmp(tx->signer, L->p.owner, TS_PK_BYTES)) {
            snprintf(reason, cap, "stake signed by %s, not by the subnet owner", WHO());
            return TS_EDENIED;
        }
        int t = find_uid(L, tx->target);
        if (t < 0) {
            char tk[64];
            short_key(tk, sizeof tk, tx->target);
            snprintf(reason, cap, "stake for hotkey %s, which is not registered", tk);
            return TS_EDENIED;
        }
        uint64_t s = L->nr[t].stake;
        if (tx->delta == 0) {
            snprintf(reason, cap, "stake change of 0");
            return TS_EINVAL;
        }
        if (tx->delta < 0 ? (uint64_t)(-(tx->delta + 1)) + 1 > s
                          : (uint64_t)tx->delta > CHAIN_MAX_STAKE_RAO - s) {
            char a[40], b[40];
            chain_fmt_tao(a, sizeof a, s, 0);
            chain_fmt_tao(b, sizeof b, tx->delta < 0 ? (uint64_t)(-(tx->delta + 1)) + 1 : (uint64_t)tx->delta, 0);
            snprintf(reason, cap, "uid %d has %s TAO; %s %s TAO would leave it outside [0, 21000000]",
                     t, a, tx->delta < 0 ? "removing" : "adding", b);
            return TS_EINVAL;
        }
        return TS_OK;
    }
    case CHAIN_TX_COMMIT:
        if (uid < 0) {
            snprintf(reason, cap, "commitment from hotkey %s, which is not registered", WHO());
            return TS_EDENIED;
        }
        if (tx->len == 0 || tx->len > CHAIN_COMMIT_MAX) {
            snprintf(reason, cap, "commitment of %zu bytes (must be 1..%d)", tx->len, CHAIN_COMMIT_MAX);
            return TS_ETOOBIG;
        }
        if (memchr(tx->data, 0, tx->len)) {
            snprintf(reason, cap, "commitment contains a NUL byte");
            return TS_EINVAL;
        }
        return TS_OK;
    case CHAIN_TX_WEIGHTS: {
        if (uid < 0) {
            snprintf(reason, cap, "weights from hotkey %s, which is not registered", WHO());
            return TS_EDENIED;
        }
        permits_update(L);
        if (!L->permit[uid]) {
            snprintf(reason, cap, "weights from uid %d, which has no validator permit", uid);
            return TS_EDENIED;
        }
        const neuron_st *x = &L->nr[uid];
        if (x->has_weights && L->p.weights_rate_limit &&
            tx->block - x->w_block < L->p.weights_rate_limit) {
            snprintf(reason, cap,
                     "uid %d set weights at block %llu; the next may come at block %llu (rate limit %llu)",
                     uid, (unsigned long long)x->w_block,
                     (unsigned long long)(x->w_block + L->p.weights_rate_limit),
                     (unsigned long long)L->p.weights_rate_limit);
            return TS_EDENIED;
        }
        if (tx->nw == 0) {
            snprintf(reason, cap, "empty weights");
            return TS_EINVAL;
        }
        uint16_t mx = 0;
        for (uint32_t i = 0; i < tx->nw; i++) {
            if (tx->w[i].uid >= L->n) {
                snprintf(reason, cap, "weight for uid %u, which is not registered (%u uids)",
                         tx->w[i].uid, L->n);
                return TS_EINVAL;
            }
            if (i && tx->w[i].uid <= tx->w[i - 1].uid) {
                snprintf(reason, cap, "weights not in ascending uid order at uid %u", tx->w[i].uid);
                return TS_EINVAL;
            }
            if (tx->w[i].weight == 0) {
                snprintf(reason, cap, "weight 0 for uid %u (zeros are left out)", tx->w[i].uid);
                return TS_EINVAL;
            }
            if (tx->w[i].weight > mx) mx = tx->w[i].weight;
        }
        if (mx != 65535) {
            snprintf(reason, cap, "weights not max-upscaled (largest is %u, not 65535)", mx);
            return TS_EINVAL;
        }
        return TS_OK;
    }
    }
    snprintf(reason, cap, "unknown transaction kind");
    return TS_EINVAL;
#undef WHO
}

/* Applies a transaction that tx_check accepted. */
static int tx_apply(local *L, const chain_tx *tx) {
    switch (tx->kind) {
    case CHAIN_TX_REGISTER: {
        uint32_t u;
        if (L->n < L->p.max_uids) {
            u = L->n++;
            neuron_clear(&L->nr[u]);
        } else {
            u = victim_uid(L, tx->block);
            neuron_clear(&L->nr[u]);
            /* weights aimed at the old holder of u mean nothing for the new one */
            for (uint32_t v = 0; v < L->n; v++) {
                neuron_st *x = &L->nr[v];
                uint32_t k = 0;
                for (uint32_t i = 0; i < x->nw; i++)
                    if (x->w[i].uid != u) x->w[k++] = x->w[i];
                x->nw = k;
            }
        }
        memcpy(L->nr[u].hotkey, tx->signer, TS_PK_BYTES);
        L->nr[u].reg_block = tx->block;
        hmap_rebuild(L);
        L->permits_dirty = true;
        return TS_OK;
    }
    case CHAIN_TX_STAKE: {
        neuron_st *x = &L->nr[find_uid(L, tx->target)];
        if (tx->delta < 0) x->stake -= (uint64_t)(-(tx->delta + 1)) + 1;
        else x->stake += (uint64_t)tx->delta;
        L->permits_dirty = true;
        return TS_OK;
    }
    case CHAIN_TX_COMMIT: {
        neuron_st *x = &L->nr[find_uid(L, tx->signer)];
        if (!x->commit && !(x->commit = malloc(CHAIN_COMMIT_MAX + 1))) return TS_ENOMEM;
        memcpy(x->commit, tx->data, tx->len);
        x->commit[tx->len] = 0;
        x->commit_len = (uint32_t)tx->len;
        x->commit_block = tx->block;
        x->has_commit = true;
        x->last_active = tx->block;
        return TS_OK;
    }
    case CHAIN_TX_WEIGHTS: {
        neuron_st *x = &L->nr[find_uid(L, tx->signer)];
        if (!x->w && !(x->w = malloc(L->p.max_uids * sizeof *x->w))) return TS_ENOMEM;
        memcpy(x->w, tx->w, tx->nw * sizeof *tx->w);
        x->nw = tx->nw;
        x->w_block = tx->block;
        x->has_weights = true;
        x->last_active = tx->block;
        return TS_OK;
    }
    }
    return TS_EINVAL;
}

/* ------------------------------------------------------------ line format */

static const char *kind_name(chain_tx_kind k) {
    switch (k) {
    case CHAIN_TX_REGISTER: return "register";
    case CHAIN_TX_STAKE: return "stake";
    case CHAIN_TX_COMMIT: return "commit";
    case CHAIN_TX_WEIGHTS: return "weights";
    }
    return "?";
}

int chain_local_format_tx(const uint8_t genesis_hash[TS_HASH_BYTES], const chain_tx *tx,
                          const ts_keypair *kp, char **line, size_t *len, ts_err *e) {
    *line = NULL;
    *len = 0;
    size_t cap = CHAIN_TX_LINE_MAX + TS_HASH_BYTES + 64;
    uint8_t *m = malloc(cap);
    if (!m) return ts_fail(e, TS_ENOMEM, "out of memory");
    memcpy(m, genesis_hash, TS_HASH_BYTES);
    char *s = (char *)m + TS_HASH_BYTES;
    size_t room = CHAIN_TX_LINE_MAX - (2 * TS_SIG_BYTES + 2); /* leave space for signature + '\n' */
    char hk[2 * TS_PK_BYTES + 1];
    ts_hex(hk, tx->signer, TS_PK_BYTES);
    size_t at = (size_t)snprintf(s, room, "tx1 %llu %llu %s %s ", (unsigned long long)tx->seq,
                                 (unsigned long long)tx->block, kind_name(tx->kind), hk);
    int rc = TS_OK;
    switch (tx->kind) {
    case CHAIN_TX_REGISTER: break;
    case CHAIN_TX_STAKE: {
        char t[2 * TS_PK_BYTES + 1];
        ts_hex(t, tx->target, TS_PK_BYTES);
        uint64_t mag = tx->delta < 0 ? (uint64_t)(-(tx->delta + 1)) + 1 : (uint64_t)tx->delta;
        at += (size_t)snprintf(s + at, room - at, "%s %c%llu ", t, tx->delta < 0 ? '-' : '+',
                               (unsigned long long)mag);
        break;
    }
    case CHAIN_TX_COMMIT:
        if (2 * tx->len + 1 >= room - at) {
            rc = ts_fail(e, TS_ETOOBIG, "commitment too long for a log line");
            break;
        }
        for (size_t i = 0; i < tx->len; i++) {
            static const char hx[] = "0123456789abcdef";
            s[at++] = hx[tx->data[i] >> 4];
            s[at++] = hx[tx->data[i] & 15];
        }
        s[at++] = ' ';
        break;
    case CHAIN_TX_WEIGHTS:
        for (uint32_t i = 0; i < tx->nw && rc == TS_OK; i++) {
            if (room - at < 24) {
                rc = ts_fail(e, TS_ETOOBIG, "too many weights for a log line");
                break;
            }
            at += (size_t)snprintf(s + at, room - at, "%s%u=%u", i ? "," : "", tx->w[i].uid,
                                   tx->w[i].weight);
        }
        s[at++] = ' ';
        break;
    }
    if (rc == TS_OK) {
        uint8_t sig[TS_SIG_BYTES];
        rc = ts_sign(kp, CHAIN_TX_TAG, m, TS_HASH_BYTES + at, sig, e);
        if (rc == TS_OK) {
            ts_hex(s + at, sig, TS_SIG_BYTES);
            at += 2 * TS_SIG_BYTES;
            s[at++] = '\n';
            s[at] = 0;
            char *out = malloc(at + 1);
            if (!out) rc = ts_fail(e, TS_ENOMEM, "out of memory");
            else {
                memcpy(out, s, at + 1);
                *line = out;
                *len = at;
            }
        }
    }
    free(m);
    return rc;
}

/* Strict decimal: "0" or [1-9][0-9]*, fitting in u64. */
static bool parse_dec(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0')) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1; /* upper case is not canonical */
}

static bool parse_hex(const char *s, size_t n, uint8_t *out, size_t outlen) {
    if (n != 2 * outlen) return false;
    for (size_t i = 0; i < outlen; i++) {
        int a = hexval(s[2 * i]), b = hexval(s[2 * i + 1]);
        if (a < 0 || b < 0) return false;
        out[i] = (uint8_t)(a << 4 | b);
    }
    return true;
}

#define MAX_TOKENS 9

/* Parses one line (without its '\n') into tx; data and weights point into
 * L's scratch.  *sig_at is where the signature starts. */
static int line_parse(local *L, const char *s, size_t n, chain_tx *tx, uint8_t sig[TS_SIG_BYTES],
                      size_t *sig_at, char *reason, size_t cap) {
    const char *tok[MAX_TOKENS];
    size_t tl[MAX_TOKENS];
    int nt = 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 && s[i] != ' ') {
            snprintf(reason, cap, "malformed: control byte 0x%02x at column %zu", (unsigned char)s[i], i);
            return TS_EFORMAT;
        } else if ((unsigned char)s[i] > 0x7e) {
            snprintf(reason, cap, "malformed: non-ASCII byte at column %zu", i);
            return TS_EFORMAT;
        }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == ' ') {
            if (i == start) {
                snprintf(reason, cap, "malformed: empty field at column %zu", i);
                return TS_EFORMAT;
            }
            if (nt == MAX_TOKENS) {
                snprintf(reason, cap, "malformed: too many fields");
                return TS_EFORMAT;
            }
            tok[nt] = s + start;
            tl[nt++] = i - start;
            start = i + 1;
        }
    }
    if (nt < 6 || tl[0] != 3 || memcmp(tok[0], "tx1", 3)) {
        snprintf(reason, cap, "malformed: not a tx1 line");
        return TS_EFORMAT;
    }
    memset(tx, 0, sizeof *tx);
    if (!parse_dec(tok[1], tl[1], &tx->seq) || !parse_dec(tok[2], tl[2], &tx->block)) {
        snprintf(reason, cap, "malformed: sequence or block number");
        return TS_EFORMAT;
    }
    int want;
#define KIND_IS(str) (tl[3] == sizeof str - 1 && !memcmp(tok[3], str, sizeof str - 1))
    if (KIND_IS("register")) tx->kind = CHAIN_TX_REGISTER, want = 6;
    else if (KIND_IS("stake")) tx->kind = CHAIN_TX_STAKE, want = 8;
    else if (KIND_IS("commit")) tx->kind = CHAIN_TX_COMMIT, want = 7;
    else if (KIND_IS("weights")) tx->kind = CHAIN_TX_WEIGHTS, want = 7;
    else {
        snprintf(reason, cap, "malformed: unknown kind '%.*s'", (int)(tl[3] > 20 ? 20 : tl[3]), tok[3]);
        return TS_EFORMAT;
    }
#undef KIND_IS
    if (nt != want) {
        snprintf(reason, cap, "malformed: %s with %d fields (want %d)", kind_name(tx->kind), nt, want);
        return TS_EFORMAT;
    }
    if (!parse_hex(tok[4], tl[4], tx->signer, TS_PK_BYTES)) {
        snprintf(reason, cap, "malformed: signer is not 64 lower-case hex digits");
        return TS_EFORMAT;
    }
    if (!parse_hex(tok[nt - 1], tl[nt - 1], sig, TS_SIG_BYTES)) {
        snprintf(reason, cap, "malformed: signature is not 128 lower-case hex digits");
        return TS_EFORMAT;
    }
    *sig_at = (size_t)(tok[nt - 1] - s);
    switch (tx->kind) {
    case CHAIN_TX_REGISTER: break;
    case CHAIN_TX_STAKE: {
        uint64_t mag;
        if (!parse_hex(tok[5], tl[5], tx->target, TS_PK_BYTES)) {
            snprintf(reason, cap, "malformed: stake hotkey is not 64 lower-case hex digits");
            return TS_EFORMAT;
        }
        if (tl[6] < 2 || (tok[6][0] != '+' && tok[6][0] != '-') ||
            !parse_dec(tok[6] + 1, tl[6] - 1, &mag) || mag > (uint64_t)INT64_MAX) {
            snprintf(reason, cap, "malformed: stake amount (want +N or -N rao)");
            return TS_EFORMAT;
        }
        tx->delta = tok[6][0] == '-' ? -(int64_t)mag : (int64_t)mag;
        break;
    }
    case CHAIN_TX_COMMIT:
        if (tl[5] % 2 || tl[5] / 2 > CHAIN_COMMIT_MAX) {
            snprintf(reason, cap, "malformed: commitment of %zu hex digits (want an even number, at most %d)",
                     tl[5], 2 * CHAIN_COMMIT_MAX);
            return TS_EFORMAT;
        }
        if (!parse_hex(tok[5], tl[5], L->data, tl[5] / 2)) {
            snprintf(reason, cap, "malformed: commitment is not lower-case hex");
            return TS_EFORMAT;
        }
        tx->data = L->data;
        tx->len = tl[5] / 2;
        break;
    case CHAIN_TX_WEIGHTS: {
        const char *p = tok[5], *end = tok[5] + tl[5];
        uint32_t k = 0;
        while (p < end) {
            const char *eq = memchr(p, '=', (size_t)(end - p));
            const char *comma = memchr(p, ',', (size_t)(end - p));
            if (!comma) comma = end;
            uint64_t uid, w;
            if (!eq || eq > comma || !parse_dec(p, (size_t)(eq - p), &uid) ||
                !parse_dec(eq + 1, (size_t)(comma - eq - 1), &w) || w > 65535) {
                snprintf(reason, cap, "malformed: weights entry %u (want UID=WEIGHT, weight <= 65535)", k);
                return TS_EFORMAT;
            }
            if (k == L->p.max_uids || uid >= L->p.max_uids) {
                snprintf(reason, cap, "malformed: weights beyond max_uids (%u)", L->p.max_uids);
                return TS_EFORMAT;
            }
            L->wscratch[k++] = (chain_weight){(uint32_t)uid, (uint16_t)w};
            p = comma + 1;
            if (comma + 1 == end) {
                snprintf(reason, cap, "malformed: trailing comma in weights");
                return TS_EFORMAT;
            }
        }
        tx->w = L->wscratch;
        tx->nw = k;
        break;
    }
    }
    return TS_OK;
}

static void reject(local *L, uint64_t line, const char *reason) {
    chain_rejection *r = &L->rej[L->rej_next];
    r->line = line;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    L->rej_next = (L->rej_next + 1) % REJECT_KEEP;
    if (L->rej_count < REJECT_KEEP) L->rej_count++;
    L->rejected++;
    if (L->warned < 20) {
        L->warned++;
        TS_WARN("local subnet %s: line %llu ignored: %s%s", L->dir, (unsigned long long)line, reason,
                L->warned == 20 ? " (further rejections are not logged; see localnet status)" : "");
    }
}

/* ---------------------------------------------------------------- history */

/* Room for one more record, with nw weight entries. */
static int hist_reserve(local *L, uint32_t nw) {
    if (L->nwpool + nw > L->wpool_cap) {
        size_t cap = L->wpool_cap ? 2 * L->wpool_cap : 4096;
        while (cap < L->nwpool + nw) cap *= 2;
        yuma_entry *w = realloc(L->wpool, cap * sizeof *w);
        if (!w) return TS_ENOMEM;
        L->wpool = w;
        L->wpool_cap = cap;
    }
    if (L->nhist == L->hist_cap) {
        size_t cap = L->hist_cap ? 2 * L->hist_cap : 1024;
        hist_rec *h = realloc(L->hist, cap * sizeof *h);
        if (!h) return TS_ENOMEM;
        L->hist = h;
        L->hist_cap = cap;
    }
    if (L->nhkeys == L->hkeys_cap) {
        size_t cap = L->hkeys_cap ? 2 * L->hkeys_cap : 256;
        uint8_t (*k)[TS_PK_BYTES] = realloc(L->hkeys, cap * sizeof *k);
        if (!k) return TS_ENOMEM;
        L->hkeys = k;
        L->hkeys_cap = cap;
    }
    return TS_OK;
}

/* Records a transaction tx_apply just applied (hist_reserve made room). */
static void hist_record(local *L, const chain_tx *tx) {
    hist_rec *r = &L->hist[L->nhist++];
    memset(r, 0, sizeof *r);
    r->block = tx->block;
    r->seq = tx->seq;
    r->kind = (uint8_t)tx->kind;
    switch (tx->kind) {
    case CHAIN_TX_REGISTER:
        r->uid = (uint32_t)find_uid(L, tx->signer);
        r->val = L->nhkeys;
        memcpy(L->hkeys[L->nhkeys++], tx->signer, TS_PK_BYTES);
        break;
    case CHAIN_TX_STAKE:
        r->uid = (uint32_t)find_uid(L, tx->target);
        r->val = L->nr[r->uid].stake;
        break;
    case CHAIN_TX_COMMIT:
        r->uid = (uint32_t)find_uid(L, tx->signer);
        break;
    case CHAIN_TX_WEIGHTS:
        r->uid = (uint32_t)find_uid(L, tx->signer);
        r->val = L->nwpool;
        r->nw = (uint16_t)tx->nw;
        for (uint32_t i = 0; i < tx->nw; i++)
            L->wpool[L->nwpool++] = (yuma_entry){(uint16_t)tx->w[i].uid, tx->w[i].weight};
        break;
    }
    /* A transaction of a block before the last epoch the cursor ran (a
     * writer slower than a block, or a line stamped by hand): that epoch
     * should have seen it.  Everything the cursor computed is replayed from
     * genesis on the next chain_epoch_last. */
    if (L->ep.valid && L->ep.count && r->block < L->ep.prev) L->ep.valid = false;
}

/* Applies one history record to a scratch state. */
static void hist_apply(const local *L, at_state *a, const hist_rec *r) {
    neuron_st *x = &a->nr[r->uid];
    switch ((chain_tx_kind)r->kind) {
    case CHAIN_TX_REGISTER:
        if (r->uid >= a->n) a->n = r->uid + 1; /* uids are given in order */
        memset(x, 0, sizeof *x);
        memcpy(x->hotkey, L->hkeys[r->val], TS_PK_BYTES);
        x->reg_block = r->block;
        x->last_active = CHAIN_BLOCK_NONE;
        a->permits_ok = false;
        break;
    case CHAIN_TX_STAKE:
        x->stake = r->val;
        a->permits_ok = false;
        break;
    case CHAIN_TX_COMMIT:
    case CHAIN_TX_WEIGHTS:
        x->last_active = r->block;
        break;
    }
}

/* Handles one complete line (without '\n'). */
static int process_line(local *L, const char *s, size_t n) {
    uint64_t lineno = L->nlines++;
    char reason[200];
    chain_tx tx;
    uint8_t sig[TS_SIG_BYTES];
    size_t sig_at = 0;
    if (n + 1 > CHAIN_TX_LINE_MAX) {
        snprintf(reason, sizeof reason, "malformed: line of %zu bytes (limit %u)", n + 1, CHAIN_TX_LINE_MAX);
        reject(L, lineno, reason);
        return TS_OK;
    }
    if (line_parse(L, s, n, &tx, sig, &sig_at, reason, sizeof reason)) {
        reject(L, lineno, reason);
        return TS_OK;
    }
    memcpy(L->msg, L->p.genesis_hash, TS_HASH_BYTES);
    memcpy(L->msg + TS_HASH_BYTES, s, sig_at);
    if (ts_verify(tx.signer, CHAIN_TX_TAG, L->msg, TS_HASH_BYTES + sig_at, sig, NULL)) {
        char who[64];
        short_key(who, sizeof who, tx.signer);
        snprintf(reason, sizeof reason, "forged: signature does not verify for signer %s", who);
        reject(L, lineno, reason);
        return TS_OK;
    }
    if (tx.seq != lineno) {
        snprintf(reason, sizeof reason, "sequence number %llu on line %llu (copied or reordered line)",
                 (unsigned long long)tx.seq, (unsigned long long)lineno);
        reject(L, lineno, reason);
        return TS_OK;
    }
    if (tx.block < L->last_block) {
        snprintf(reason, sizeof reason, "block %llu is before block %llu of an earlier transaction",
                 (unsigned long long)tx.block, (unsigned long long)L->last_block);
        reject(L, lineno, reason);
        return TS_OK;
    }
    if (tx_check(L, &tx, reason, sizeof reason)) {
        reject(L, lineno, reason);
        return TS_OK;
    }
    /* room for its history record first, so that an accepted transaction
     * is always recorded */
    int rc = hist_reserve(L, tx.kind == CHAIN_TX_WEIGHTS ? tx.nw : 0);
    if (rc) return rc; /* out of memory: the caller stops here and retries later */
    rc = tx_apply(L, &tx);
    if (rc) return rc;
    hist_record(L, &tx);
    L->last_block = tx.block;
    L->accepted++;
    return TS_OK;
}

/* ----------------------------------------------------------- log reading */

static int log_open(local *L, ts_err *e) {
    if (L->fd >= 0) close(L->fd);
    L->writable = true;
    L->fd = open(L->log_path, O_RDWR | O_APPEND | O_CLOEXEC);
    if (L->fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
        L->writable = false;
        L->fd = open(L->log_path, O_RDONLY | O_CLOEXEC);
    }
    if (L->fd < 0)
        return ts_fail(e, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "%s: %s", L->log_path,
                       strerror(errno));
    struct stat st;
    if (fstat(L->fd, &st)) return ts_fail(e, TS_EIO, "%s: %s", L->log_path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return ts_fail(e, TS_EFORMAT, "%s: not a regular file", L->log_path);
    L->dev = st.st_dev;
    L->ino = st.st_ino;
    return TS_OK;
}

static int pread_all(int fd, uint8_t *buf, size_t n, uint64_t off, size_t *got) {
    size_t at = 0;
    while (at < n) {
        ssize_t r = pread(fd, buf + at, n - at, (off_t)(off + at));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        at += (size_t)r;
    }
    *got = at;
    return 0;
}

static void full_replay(local *L, const char *why) {
    if (why) TS_WARN("local subnet %s: %s; replaying the log from the start", L->dir, why);
    state_reset(L);
    L->replays++;
}

/* Brings the state up to the end of the log's last complete line. */
static int log_sync(local *L, ts_err *e) {
    struct stat st;
    if (stat(L->log_path, &st))
        return ts_fail(e, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "%s: %s", L->log_path, strerror(errno));
    if (st.st_dev != L->dev || st.st_ino != L->ino) {
        int rc = log_open(L, e);
        if (rc) return rc;
        full_replay(L, "the log file was replaced");
    }
    if (fstat(L->fd, &st)) return ts_fail(e, TS_EIO, "%s: %s", L->log_path, strerror(errno));
    uint64_t size = (uint64_t)st.st_size;
    if (size < L->offset) {
        full_replay(L, "the log shrank below what was already read");
    } else if (L->tail_len) {
        uint8_t t[TAIL_BYTES];
        size_t got;
        if (pread_all(L->fd, t, L->tail_len, L->offset - L->tail_len, &got))
            return ts_fail(e, TS_EIO, "%s: %s", L->log_path, strerror(errno));
        if (got != L->tail_len || memcmp(t, L->tail, L->tail_len))
            full_replay(L, "lines already read were rewritten");
    }
    /* Read [offset, size) in chunks; lines may straddle chunks. */
    uint64_t pos = L->offset; /* file offset of buf[0] */
    size_t have = 0;
    const size_t cap = READ_CHUNK + CHAIN_TX_LINE_MAX;
    bool skipping = false; /* inside a line longer than the buffer */
    uint64_t skip_len = 0;
    while (pos + have < size) {
        size_t want = cap - have;
        if (want > size - pos - have) want = (size_t)(size - pos - have);
        size_t got;
        if (pread_all(L->fd, L->buf + have, want, pos + have, &got))
            return ts_fail(e, TS_EIO, "%s: %s", L->log_path, strerror(errno));
        if (got == 0) break; /* shrank meanwhile; the next sync will notice */
        have += got;
        size_t start = 0;
        for (;;) {
            uint8_t *nl = memchr(L->buf + start, '\n', have - start);
            if (!nl) break;
            size_t end = (size_t)(nl - L->buf);
            if (skipping) {
                char reason[120];
                snprintf(reason, sizeof reason, "malformed: line of %llu bytes (limit %u)",
                         (unsigned long long)(skip_len + end + 1), CHAIN_TX_LINE_MAX);
                reject(L, L->nlines++, reason);
                skipping = false;
            } else {
                int rc = process_line(L, (const char *)L->buf + start, end - start);
                if (rc) {
                    full_replay(L, NULL); /* start over on the next call */
                    return ts_fail(e, rc, "%s: out of memory replaying the log", L->log_path);
                }
            }
            start = end + 1;
            L->offset = pos + start;
            /* remember the bytes just before offset */
            size_t tl = start < TAIL_BYTES ? start : TAIL_BYTES;
            memcpy(L->tail, L->buf + start - tl, tl);
            L->tail_len = (uint32_t)tl;
        }
        if (start == 0 && have == cap) {
            /* a line longer than the buffer: drop what we have, keep looking
             * for its end */
            skipping = true;
            skip_len += have;
            pos += have;
            have = 0;
            continue;
        }
        memmove(L->buf, L->buf + start, have - start);
        pos += start;
        have -= start;
    }
    if (L->tail_len < TAIL_BYTES && L->offset > L->tail_len) {
        /* a short last line: fill the fingerprint from earlier bytes */
        size_t tl = L->offset < TAIL_BYTES ? (size_t)L->offset : TAIL_BYTES, got;
        if (pread_all(L->fd, L->tail, tl, L->offset - tl, &got) == 0 && got == tl) L->tail_len = (uint32_t)tl;
    }
    L->torn = size > L->offset ? size - L->offset : 0;
    return TS_OK;
}

/* ------------------------------------------------------------- genesis */

static int get_num(const cJSON *o, const char *key, double lo, double hi, bool integral,
                   double *out, const char *path, ts_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return ts_fail(e, TS_EFORMAT, "%s: '%s' is missing", path, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi ||
        (integral && v->valuedouble != floor(v->valuedouble)))
        return ts_fail(e, TS_EFORMAT, "%s: '%s' must be %s in [%g, %g]", path, key,
                       integral ? "an integer" : "a number", lo, hi);
    *out = v->valuedouble;
    return TS_OK;
}

static const char *const GENESIS_KEYS[] = {
    "format", "version", "signature_scheme", "run_id", "netuid", "genesis_time", "block_time",
    "blocks_per_window", "max_uids", "max_validators", "min_validator_stake", "immunity_period",
    "weights_rate_limit", "owner", "params",
    /* optional (epochs): absent, they take subtensor's defaults */
    "tempo", "emission_per_block", "owner_cut", "kappa", "bonds_moving_average", "activity_cutoff",
};

/* An optional integer: def when absent. */
static int get_opt_u64(const cJSON *o, const char *key, double lo, double hi, uint64_t def, uint64_t *out,
                       const char *path, ts_err *e) {
    if (!cJSON_GetObjectItemCaseSensitive(o, key)) {
        *out = def;
        return TS_OK;
    }
    double d;
    int rc = get_num(o, key, lo, hi, true, &d, path, e);
    if (!rc) *out = (uint64_t)d;
    return rc;
}

static int genesis_check(const chain_genesis *g, ts_err *e) {
    if (!run_id_ok(g->run_id))
        return ts_fail(e, TS_EINVAL, "run id '%s' must be 1..64 of [A-Za-z0-9._-]", g->run_id ? g->run_id : "");
    if (g->netuid > 65535) return ts_fail(e, TS_EINVAL, "netuid %u is over 65535", g->netuid);
    if (!(g->block_time >= 0.001 && g->block_time <= 86400))
        return ts_fail(e, TS_EINVAL, "block time %g s is outside [0.001, 86400]", g->block_time);
    if (g->blocks_per_window < 1 || g->blocks_per_window > 1000000)
        return ts_fail(e, TS_EINVAL, "blocks per window %llu is outside [1, 1000000]",
                       (unsigned long long)g->blocks_per_window);
    if (g->max_uids < 1 || g->max_uids > CHAIN_MAX_UIDS)
        return ts_fail(e, TS_EINVAL, "max uids %u is outside [1, %d]", g->max_uids, CHAIN_MAX_UIDS);
    if (g->max_validators < 1 || g->max_validators > g->max_uids)
        return ts_fail(e, TS_EINVAL, "max validators %u is outside [1, max uids %u]", g->max_validators,
                       g->max_uids);
    if ((double)g->min_validator_stake > MAX_JSON_INT || g->immunity_period > 1000000000ull ||
        g->weights_rate_limit > 1000000000ull)
        return ts_fail(e, TS_EINVAL, "min validator stake, immunity period or rate limit out of range");
    if (!(g->genesis_time >= 0 && g->genesis_time < 1e11))
        return ts_fail(e, TS_EINVAL, "genesis time %f is not a plausible epoch time", g->genesis_time);
    /* the epochs' settings, named by their genesis keys */
    if (g->tempo < 1 || g->tempo > 65535)
        return ts_fail(e, TS_EINVAL, "'tempo' = %llu is outside [1, 65535] (blocks per epoch)", (unsigned long long)g->tempo);
    if (g->emission_per_block > MAX_EMISSION_PER_BLOCK)
        return ts_fail(e, TS_EINVAL, "'emission_per_block' = %llu rao is over 10^14 (100000 TAO)",
                       (unsigned long long)g->emission_per_block);
    if (g->owner_cut > 65535)
        return ts_fail(e, TS_EINVAL, "'owner_cut' = %u is over 65535 (a share of 65535)", g->owner_cut);
    if (g->kappa > 65535)
        return ts_fail(e, TS_EINVAL, "'kappa' = %u is over 65535 (a share of 65535)", g->kappa);
    if (g->bonds_moving_average > 1000000)
        return ts_fail(e, TS_EINVAL, "'bonds_moving_average' = %llu is over 1000000 (a share of 10^6)",
                       (unsigned long long)g->bonds_moving_average);
    if (g->activity_cutoff > 65535)
        return ts_fail(e, TS_EINVAL, "'activity_cutoff' = %llu is outside [0, 65535] (blocks)",
                       (unsigned long long)g->activity_cutoff);
    return TS_OK;
}

static int genesis_load(local *L, ts_err *e) {
    char *path = ts_path_join(L->dir, GENESIS_NAME);
    if (!path) return ts_fail(e, TS_ENOMEM, "out of memory");
    uint8_t *buf;
    size_t len;
    int rc = ts_read_file(path, GENESIS_MAX, &buf, &len, e);
    if (rc) {
        if (rc == TS_ENOTFOUND)
            ts_fail(e, rc, "%s: no local subnet here (create one with 'tessera localnet init --dir %s')",
                    L->dir, L->dir);
        free(path);
        return rc;
    }
    ts_blake2b(L->p.genesis_hash, TS_HASH_BYTES, buf, len);
    cJSON *o = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        rc = ts_fail(e, TS_EFORMAT, "%s: not a JSON object", path);
        free(path);
        return rc;
    }
    chain_genesis g;
    memset(&g, 0, sizeof g);
    double d;
    const cJSON *v;
    v = cJSON_GetObjectItemCaseSensitive(o, "format");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, GENESIS_FORMAT)) {
        rc = ts_fail(e, TS_EFORMAT, "%s: 'format' is not \"%s\"", path, GENESIS_FORMAT);
        goto out;
    }
    /* the version first: another version's keys are not "unknown" */
    if ((rc = get_num(o, "version", 0, 1e9, true, &d, path, e))) goto out;
    if (d == 1) {
        rc = ts_fail(e, TS_EFORMAT,
                     "%s: version 1: this subnet was created by an earlier Tessera with Ed25519 keys, which "
                     "this build no longer accepts; make a new subnet with tessera localnet init",
                     path);
        goto out;
    }
    if (d != GENESIS_VERSION) {
        rc = ts_fail(e, TS_EFORMAT, "%s: version %g is not supported (this build reads %d)", path, d,
                     GENESIS_VERSION);
        goto out;
    }
    for (const cJSON *it = o->child; it; it = it->next) {
        bool known = false;
        for (size_t i = 0; i < sizeof GENESIS_KEYS / sizeof *GENESIS_KEYS; i++)
            known |= it->string && !strcmp(it->string, GENESIS_KEYS[i]);
        if (!known) {
            rc = ts_fail(e, TS_EFORMAT, "%s: unknown key '%s'", path, it->string ? it->string : "");
            goto out;
        }
    }
    /* the log's lines are signed in this scheme (they carry none of their own) */
    v = cJSON_GetObjectItemCaseSensitive(o, "signature_scheme");
    if (!v) {
        rc = ts_fail(e, TS_EFORMAT, "%s: 'signature_scheme' is missing (it must be \"%s\")", path,
                     TS_SIG_SCHEME_NAME);
        goto out;
    }
    if (!cJSON_IsString(v)) {
        rc = ts_fail(e, TS_EFORMAT, "%s: 'signature_scheme' must be the string \"%s\"", path, TS_SIG_SCHEME_NAME);
        goto out;
    }
    if (strcmp(v->valuestring, TS_SIG_SCHEME_NAME)) {
        rc = ts_fail(e, TS_EFORMAT,
                     "%s: signature scheme \"%s\" is not accepted, only \"%s\"%s; make a new subnet with "
                     "tessera localnet init",
                     path, v->valuestring, TS_SIG_SCHEME_NAME,
                     strcmp(v->valuestring, "ed25519") ? "" : " (Ed25519 is from an earlier Tessera)");
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "run_id");
    if (!cJSON_IsString(v) || !run_id_ok(v->valuestring)) {
        rc = ts_fail(e, TS_EFORMAT, "%s: 'run_id' must be 1..64 of [A-Za-z0-9._-]", path);
        goto out;
    }
    snprintf(L->p.run_id, sizeof L->p.run_id, "%s", v->valuestring);
    g.run_id = L->p.run_id;
    if ((rc = get_num(o, "netuid", 0, 65535, true, &d, path, e))) goto out;
    g.netuid = (uint32_t)d;
    if ((rc = get_num(o, "genesis_time", 0, 1e11, false, &g.genesis_time, path, e))) goto out;
    if ((rc = get_num(o, "block_time", 0.001, 86400, false, &g.block_time, path, e))) goto out;
    if ((rc = get_num(o, "blocks_per_window", 1, 1e6, true, &d, path, e))) goto out;
    g.blocks_per_window = (uint64_t)d;
    if ((rc = get_num(o, "max_uids", 1, CHAIN_MAX_UIDS, true, &d, path, e))) goto out;
    g.max_uids = (uint32_t)d;
    if ((rc = get_num(o, "max_validators", 1, CHAIN_MAX_UIDS, true, &d, path, e))) goto out;
    g.max_validators = (uint32_t)d;
    if ((rc = get_num(o, "min_validator_stake", 0, MAX_JSON_INT, true, &d, path, e))) goto out;
    g.min_validator_stake = (uint64_t)d;
    if ((rc = get_num(o, "immunity_period", 0, 1e9, true, &d, path, e))) goto out;
    g.immunity_period = (uint64_t)d;
    if ((rc = get_num(o, "weights_rate_limit", 0, 1e9, true, &d, path, e))) goto out;
    g.weights_rate_limit = (uint64_t)d;
    /* the epochs' keys came later: a genesis without them (every subnet made
     * before) gets subtensor's defaults, and keeps its version, since a
     * reader without epochs refuses a genesis that has them (unknown key)
     * rather than misreading it */
    uint64_t oc, ka;
    if ((rc = get_opt_u64(o, "tempo", 1, 65535, DEF_TEMPO, &g.tempo, path, e)) ||
        (rc = get_opt_u64(o, "emission_per_block", 0, (double)MAX_EMISSION_PER_BLOCK, DEF_EMISSION_PER_BLOCK,
                          &g.emission_per_block, path, e)) ||
        (rc = get_opt_u64(o, "owner_cut", 0, 65535, DEF_OWNER_CUT, &oc, path, e)) ||
        (rc = get_opt_u64(o, "kappa", 0, 65535, DEF_KAPPA, &ka, path, e)) ||
        (rc = get_opt_u64(o, "bonds_moving_average", 0, 1000000, DEF_BONDS_MOVING_AVERAGE, &g.bonds_moving_average,
                          path, e)) ||
        (rc = get_opt_u64(o, "activity_cutoff", 0, 65535, DEF_ACTIVITY_CUTOFF, &g.activity_cutoff, path, e)))
        goto out;
    g.owner_cut = (uint32_t)oc;
    g.kappa = (uint32_t)ka;
    v = cJSON_GetObjectItemCaseSensitive(o, "owner");
    if (!cJSON_IsString(v) || ts_unhex(g.owner, TS_PK_BYTES, v->valuestring) ||
        strncmp(v->valuestring, "0x", 2)) {
        rc = ts_fail(e, TS_EFORMAT, "%s: 'owner' must be \"0x\" and 64 hex digits", path);
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "params");
    if (!cJSON_IsObject(v)) {
        rc = ts_fail(e, TS_EFORMAT, "%s: 'params' must be a JSON object", path);
        goto out;
    }
    if (!(L->params_json = cJSON_PrintUnformatted(v))) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = genesis_check(&g, e))) {
        ts_wrap(e, "%s", path);
        goto out;
    }
    L->p.netuid = g.netuid;
    L->p.genesis_time = g.genesis_time;
    L->p.block_time = g.block_time;
    L->p.blocks_per_window = g.blocks_per_window;
    L->p.max_uids = g.max_uids;
    L->p.max_validators = g.max_validators;
    L->p.min_validator_stake = g.min_validator_stake;
    L->p.immunity_period = g.immunity_period;
    L->p.weights_rate_limit = g.weights_rate_limit;
    memcpy(L->p.owner, g.owner, TS_PK_BYTES);
    L->p.run_params_json = L->params_json;
    L->tempo = g.tempo;
    L->emission_per_block = g.emission_per_block;
    L->owner_cut = (uint16_t)g.owner_cut;
    L->kappa = (uint16_t)g.kappa;
    L->bonds_moving_average = g.bonds_moving_average;
    L->activity_cutoff = g.activity_cutoff;
out:
    cJSON_Delete(o);
    free(path);
    return rc;
}

void chain_local_genesis_defaults(chain_genesis *g) {
    memset(g, 0, sizeof *g);
    g->run_id = "tessera";
    g->netuid = 1;
    g->genesis_time = 0;
    g->block_time = 12;
    g->blocks_per_window = 125;
    g->max_uids = 256;
    g->max_validators = 64;
    g->min_validator_stake = 0;
    g->immunity_period = 0;
    g->weights_rate_limit = 0;
    g->run_params_json = NULL;
    g->tempo = DEF_TEMPO;
    g->emission_per_block = DEF_EMISSION_PER_BLOCK;
    g->owner_cut = DEF_OWNER_CUT;
    g->kappa = DEF_KAPPA;
    g->bonds_moving_average = DEF_BONDS_MOVING_AVERAGE;
    g->activity_cutoff = DEF_ACTIVITY_CUTOFF;
}

int chain_local_init(const char *dir, const chain_genesis *gin, ts_err *e) {
    int rc = ts_init(e);
    if (rc) return rc;
    chain_genesis g = *gin;
    if (g.genesis_time == 0) g.genesis_time = floor(ts_now() * 1000.0) / 1000.0;
    if ((rc = genesis_check(&g, e))) return rc;
    cJSON *params = cJSON_Parse(g.run_params_json ? g.run_params_json : "{}");
    if (!cJSON_IsObject(params)) {
        cJSON_Delete(params);
        return ts_fail(e, TS_EINVAL, "run parameters must be a JSON object");
    }
    if ((rc = ts_mkdirs(dir, 0755, e))) {
        cJSON_Delete(params);
        return rc;
    }
    char *gpath = ts_path_join(dir, GENESIS_NAME), *lpath = ts_path_join(dir, LOG_NAME);
    char owner[2 * TS_PK_BYTES + 3] = "0x";
    ts_hex(owner + 2, g.owner, TS_PK_BYTES);
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    int fd = -1;
    if (!gpath || !lpath || !o) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto out;
    }
    if (ts_path_exists(gpath)) {
        rc = ts_fail(e, TS_EEXIST, "%s already exists; a subnet is never re-initialised", gpath);
        goto out;
    }
    /* The log first (empty), then the genesis that makes the subnet real:
     * a crash in between leaves a directory that init can finish. */
    fd = open(lpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        rc = ts_fail(e, TS_EIO, "%s: %s", lpath, strerror(errno));
        goto out;
    }
    if (st.st_size != 0) {
        rc = ts_fail(e, TS_EEXIST, "%s holds transactions but there is no genesis; refusing to reuse it", lpath);
        goto out;
    }
    if (fsync(fd)) {
        rc = ts_fail(e, TS_EIO, "%s: %s", lpath, strerror(errno));
        goto out;
    }
    cJSON_AddStringToObject(o, "format", GENESIS_FORMAT);
    cJSON_AddNumberToObject(o, "version", GENESIS_VERSION);
    cJSON_AddStringToObject(o, "signature_scheme", TS_SIG_SCHEME_NAME);
    cJSON_AddStringToObject(o, "run_id", g.run_id);
    cJSON_AddNumberToObject(o, "netuid", g.netuid);
    cJSON_AddNumberToObject(o, "genesis_time", g.genesis_time);
    cJSON_AddNumberToObject(o, "block_time", g.block_time);
    cJSON_AddNumberToObject(o, "blocks_per_window", (double)g.blocks_per_window);
    cJSON_AddNumberToObject(o, "max_uids", g.max_uids);
    cJSON_AddNumberToObject(o, "max_validators", g.max_validators);
    cJSON_AddNumberToObject(o, "min_validator_stake", (double)g.min_validator_stake);
    cJSON_AddNumberToObject(o, "immunity_period", (double)g.immunity_period);
    cJSON_AddNumberToObject(o, "weights_rate_limit", (double)g.weights_rate_limit);
    cJSON_AddNumberToObject(o, "tempo", (double)g.tempo);
    cJSON_AddNumberToObject(o, "emission_per_block", (double)g.emission_per_block);
    cJSON_AddNumberToObject(o, "owner_cut", g.owner_cut);
    cJSON_AddNumberToObject(o, "kappa", g.kappa);
    cJSON_AddNumberToObject(o, "bonds_moving_average", (double)g.bonds_moving_average);
    cJSON_AddNumberToObject(o, "activity_cutoff", (double)g.activity_cutoff);
    cJSON_AddStringToObject(o, "owner", owner);
    cJSON_AddItemToObject(o, "params", params);
    params = NULL;
    text = cJSON_Print(o);
    if (!text) {
        rc = ts_fail(e, TS_ENOMEM, "out of memory");
        goto out;
    }
    size_t tl = strlen(text);
    const void *parts[2] = {text, "\n"};
    size_t lens[2] = {tl, 1};
    rc = ts_write_atomicv(gpath, parts, lens, 2, e);
out:
    if (fd >= 0) close(fd);
    cJSON_Delete(params);
    cJSON_Delete(o);
    free(text);
    free(gpath);
    free(lpath);
    return rc;
}

/* ------------------------------------------------------------- backend */

static void local_free(local *L) {
    if (!L) return;
    if (L->fd >= 0) close(L->fd);
    if (L->nr)
        for (uint32_t u = 0; u < L->p.max_uids; u++) {
            free(L->nr[u].commit);
            free(L->nr[u].w);
        }
    free(L->nr);
    free(L->hmap);
    free(L->permit);
    free(L->order);
    free(L->hist);
    free(L->hkeys);
    free(L->at.nr);
    free(L->at.permit);
    free(L->wpool);
    free(L->sscratch);
    ep_free(L);
    free(L->buf);
    free(L->msg);
    free(L->wscratch);
    free(L->params_json);
    free(L->dir);
    free(L->log_path);
    free(L);
}

static int local_open(const char *where, void **impl, chain_params *p, ts_err *e) {
    *impl = NULL;
    if (!where || !*where) return ts_fail(e, TS_EINVAL, "local chain URL has no directory (local:/path)");
    local *L = calloc(1, sizeof *L);
    if (!L) return ts_fail(e, TS_ENOMEM, "out of memory");
    L->fd = -1;
    /* absolute, so that a process that changes directory keeps its subnet */
    L->dir = realpath(where, NULL);
    if (!L->dir) L->dir = strdup(where);
    L->log_path = ts_path_join(where, LOG_NAME);
    if (!L->dir || !L->log_path) {
        local_free(L);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    int rc = genesis_load(L, e);
    if (rc) {
        local_free(L);
        return rc;
    }
    uint32_t m = L->p.max_uids;
    L->hcap = 16;
    while (L->hcap < 2 * m) L->hcap *= 2;
    L->nr = calloc(m, sizeof *L->nr);
    L->hmap = malloc(L->hcap * sizeof *L->hmap);
    L->permit = calloc(m, 1);
    L->order = malloc(m * sizeof *L->order);
    L->sscratch = malloc(m * sizeof *L->sscratch);
    L->buf = malloc(READ_CHUNK + CHAIN_TX_LINE_MAX);
    L->msg = malloc(TS_HASH_BYTES + CHAIN_TX_LINE_MAX);
    L->wscratch = malloc(m * sizeof *L->wscratch);
    if (!L->nr || !L->hmap || !L->permit || !L->order || !L->sscratch || !L->buf || !L->msg || !L->wscratch) {
        local_free(L);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    state_reset(L);
    L->replays = 1;
    if ((rc = log_open(L, e)) || (rc = log_sync(L, e))) {
        local_free(L);
        return rc;
    }
    *p = L->p;
    *impl = L;
    return TS_OK;
}

static void local_close(void *impl) { local_free(impl); }

static int local_block(void *impl, uint64_t *block, double *ts, ts_err *e) {
    local *L = impl;
    uint64_t b = chain_clock_block_at(&L->p, ts_now());
    *block = b;
    *ts = chain_clock_time_of(&L->p, b);
    return TS_OK;
}

static int local_block_time(void *impl, uint64_t block, double *ts, ts_err *e) {
    local *L = impl;
    *ts = chain_clock_time_of(&L->p, block);
    return TS_OK;
}

static int local_metagraph(void *impl, chain_metagraph *mg, ts_err *e) {
    local *L = impl;
    int rc = log_sync(L, e);
    if (rc) return rc;
    permits_update(L);
    mg->block = chain_clock_block_at(&L->p, ts_now());
    mg->log_seq = L->nlines;
    mg->n = L->n;
    mg->max_uids = L->p.max_uids;
    mg->neurons = calloc(L->n ? L->n : 1, sizeof *mg->neurons);
    if (!mg->neurons) return ts_fail(e, TS_ENOMEM, "out of memory");
    for (uint32_t u = 0; u < L->n; u++) {
        chain_neuron *x = &mg->neurons[u];
        x->uid = u;
        memcpy(x->hotkey, L->nr[u].hotkey, TS_PK_BYTES);
        x->stake = L->nr[u].stake;
        x->validator_permit = L->permit[u];
        x->registered_block = L->nr[u].reg_block;
        x->last_active = L->nr[u].last_active;
    }
    return TS_OK;
}

/* The metagraph at the start of `block`: the history's records of the
 * blocks before it, replayed into L->at.  L->at keeps the state it reached,
 * so asking for the same block again costs a copy, and asking for a later
 * one replays only the records in between (a node asks once per window,
 * with growing blocks). */
static int local_metagraph_at(void *impl, uint64_t block, chain_metagraph *mg, ts_err *e) {
    local *L = impl;
    uint64_t now = chain_clock_block_at(&L->p, ts_now());
    /* A writer stamps its line with the block current when it took the lock
     * and appends it moments later, so the lines of block B - 1 may still be
     * arriving just after T(B); one full block later they are all in. */
    if (block == UINT64_MAX || now < block + 1)
        return ts_fail(e, TS_ESTATE, "block %llu is not final yet (the current block is %llu)",
                       (unsigned long long)block, (unsigned long long)now);
    int rc = log_sync(L, e);
    if (rc) return rc;
    at_state *a = &L->at;
    uint32_t m = L->p.max_uids;
    if (!a->nr) {
        a->nr = calloc(m, sizeof *a->nr);
        a->permit = calloc(m, 1);
        if (!a->nr || !a->permit) {
            free(a->nr);
            free(a->permit);
            a->nr = NULL;
            a->permit = NULL;
            return ts_fail(e, TS_ENOMEM, "out of memory");
        }
        a->valid = false;
    }
    /* p = the number of records of blocks < block (they form a prefix) */
    size_t lo = 0, hi = L->nhist;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (L->hist[mid].block < block) lo = mid + 1;
        else hi = mid;
    }
    size_t p = lo;
    if (!a->valid || a->k > p) {
        for (uint32_t u = 0; u < a->n; u++) memset(&a->nr[u], 0, sizeof a->nr[u]);
        a->n = 0;
        a->k = 0;
        a->permits_ok = false;
        a->valid = true;
    }
    for (; a->k < p; a->k++) hist_apply(L, a, &L->hist[a->k]);
    if (!a->permits_ok) {
        permits_compute(L, a->nr, a->n, a->permit);
        a->permits_ok = true;
    }
    mg->neurons = calloc(a->n ? a->n : 1, sizeof *mg->neurons);
    if (!mg->neurons) return ts_fail(e, TS_ENOMEM, "out of memory");
    mg->block = block;
    mg->log_seq = p ? L->hist[p - 1].seq + 1 : 0;
    mg->n = a->n;
    mg->max_uids = m;
    for (uint32_t u = 0; u < a->n; u++) {
        chain_neuron *x = &mg->neurons[u];
        x->uid = u;
        memcpy(x->hotkey, a->nr[u].hotkey, TS_PK_BYTES);
        x->stake = a->nr[u].stake;
        x->validator_permit = a->permit[u];
        x->registered_block = a->nr[u].reg_block;
        x->last_active = a->nr[u].last_active;
    }
    return TS_OK;
}

/* ---------------------------------------------------------------- epochs
 *
 * Subtensor (spec 143, pallets/subtensor/src/block_step.rs) does this in
 * every block's on_initialize, before the block's extrinsics:
 *   generate_emission: PendingEmission(netuid) += the block's emission minus
 *     the owner's cut (paid to the owner at once), then, when
 *     blocks_until_next_epoch(netuid, tempo, block) == 0, drains
 *     PendingEmission into epoch(netuid, pending) and sets
 *     LastMechansimStepBlock = block.
 * So the epoch at block B sees the state after every extrinsic of the
 * blocks before B (chain_metagraph_at(B)), and distributes the emission of
 * the blocks since the previous epoch, B included: tempo + 1 blocks, and for
 * the first epoch the blocks 1..B (block 0 is genesis, which runs no
 * on_initialize). */

static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
static uint64_t sat_mul(uint64_t a, uint64_t b) { return b && a > UINT64_MAX / b ? UINT64_MAX : a * b; }

/* The owner's cut of one block's emission E and what it leaves for the
 * epoch, as generate_emission computes them in I96F32 (32 fraction bits):
 *   cut = E.saturating_mul(owner_cut).saturating_div(65535)   (truncated)
 *   remaining = E - cut
 *   owner += cut.to_num::<u64>(); PendingEmission += remaining.to_num::<u64>()
 * (yuma_owner_cut, yuma_owner_remaining).  to_num rounds down, so a cut with
 * a fraction costs the block one rao that nobody gets: E = 10^9 and cut
 * 11796 give 179,995,422 to the owner and 820,004,577 to the epoch. */
static void owner_split(uint64_t E, uint16_t cut, uint64_t *owner, uint64_t *rest) {
    *owner = yuma_owner_cut(E, cut);
    *rest = yuma_owner_remaining(E, cut);
}

static uint64_t ep_first_block(const local *L) {
    return 1 + chain_epoch_blocks_until(L->p.netuid, L->tempo, 1);
}

/* The last epoch block <= x (x >= ep_first_block): x itself, or the one
 * tempo + 1 blocks before the next. */
static uint64_t ep_block_at_or_before(const local *L, uint64_t x) {
    uint64_t d = chain_epoch_blocks_until(L->p.netuid, L->tempo, x);
    return d ? x + d - (L->tempo + 1) : x;
}

static int row_fit(yuma_entry **row, uint32_t *cap, uint32_t n) {
    if (n <= *cap) return TS_OK;
    uint32_t c = *cap ? *cap : 8;
    while (c < n) c *= 2;
    yuma_entry *r = realloc(*row, c * sizeof *r);
    if (!r) return TS_ENOMEM;
    *row = r;
    *cap = c;
    return TS_OK;
}

static void ep_neuron_clear(ep_neuron *x) {
    yuma_entry *w = x->w, *b = x->b;
    uint32_t wcap = x->wcap, bcap = x->bcap;
    memset(x, 0, sizeof *x);
    x->w = w; /* keep the buffers for the next holder */
    x->b = b;
    x->wcap = wcap;
    x->bcap = bcap;
}

static void ep_free(local *L) {
    ep_state *ep = &L->ep;
    if (ep->nr)
        for (uint32_t u = 0; u < L->p.max_uids; u++) {
            free(ep->nr[u].w);
            free(ep->nr[u].b);
        }
    free(ep->nr);
    free(ep->stake);
    free(ep->last_update);
    free(ep->registered);
    free(ep->permit);
    free(ep->permit8);
    free(ep->wrows);
    free(ep->brows);
    free(ep->last.uids);
    memset(ep, 0, sizeof *ep);
}

static int ep_alloc(local *L) {
    ep_state *ep = &L->ep;
    uint32_t m = L->p.max_uids;
    ep->nr = calloc(m, sizeof *ep->nr);
    ep->stake = calloc(m, sizeof *ep->stake);
    ep->last_update = calloc(m, sizeof *ep->last_update);
    ep->registered = calloc(m, sizeof *ep->registered);
    ep->permit = calloc(m, sizeof *ep->permit);
    ep->permit8 = calloc(m, 1);
    ep->wrows = calloc(m, sizeof *ep->wrows);
    ep->brows = calloc(m, sizeof *ep->brows);
    ep->last.uids = calloc(m, sizeof *ep->last.uids);
    if (!ep->nr || !ep->stake || !ep->last_update || !ep->registered || !ep->permit || !ep->permit8 ||
        !ep->wrows || !ep->brows || !ep->last.uids) {
        ep_free(L);
        return TS_ENOMEM;
    }
    return TS_OK;
}

/* Back to genesis: no uids, no epoch run. */
static void ep_reset(local *L) {
    ep_state *ep = &L->ep;
    for (uint32_t u = 0; u < ep->n; u++) ep_neuron_clear(&ep->nr[u]);
    ep->n = 0;
    ep->k = 0;
    ep->next = ep_first_block(L);
    ep->prev = 0;
    ep->count = ep->owner_earned = 0;
    chain_epoch_uid *keep = ep->last.uids;
    memset(&ep->last, 0, sizeof ep->last);
    ep->last.uids = keep;
    ep->valid = true;
}

static void drop_uid(yuma_entry *row, uint32_t *n, uint32_t uid) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < *n; i++)
        if (row[i].uid != uid) row[k++] = row[i];
    *n = k;
}

/* Applies one history record to the cursor (as tx_apply did to the live
 * state).  TS_ENOMEM leaves the record unapplied. */
static int ep_apply(local *L, ep_state *ep, const hist_rec *r) {
    ep_neuron *x = &ep->nr[r->uid];
    switch ((chain_tx_kind)r->kind) {
    case CHAIN_TX_REGISTER:
        if (r->uid >= ep->n) {
            ep->n = r->uid + 1; /* uids are given in order */
        } else {
            /* the uid is replaced: weights and bonds aimed at its old holder
             * mean nothing for the new one (the live state drops such
             * weights; subtensor masks both at the next epoch by the
             * registration block, which the epoch then writes back) */
            for (uint32_t v = 0; v < ep->n; v++) {
                drop_uid(ep->nr[v].w, &ep->nr[v].nw, r->uid);
                drop_uid(ep->nr[v].b, &ep->nr[v].nb, r->uid);
            }
        }
        ep_neuron_clear(x); /* its weights, bonds and earned balance restart */
        memcpy(x->hotkey, L->hkeys[r->val], TS_PK_BYTES);
        /* subtensor stamps LastUpdate at registration (append_neuron) */
        x->reg_block = x->last_update = r->block;
        return TS_OK;
    case CHAIN_TX_STAKE:
        x->stake = r->val;
        return TS_OK;
    case CHAIN_TX_WEIGHTS:
        if (row_fit(&x->w, &x->wcap, r->nw)) return TS_ENOMEM;
        memcpy(x->w, L->wpool + r->val, r->nw * sizeof *x->w);
        x->nw = r->nw;
        x->last_update = r->block;
        return TS_OK;
    case CHAIN_TX_COMMIT:
        return TS_OK;
    }
    return TS_OK;
}

/* Runs the epoch of block B on the cursor (which holds every transaction of
 * the blocks before B and none later). */
static int ep_run(local *L, ep_state *ep, uint64_t B, ts_err *e) {
    uint64_t cut, rest;
    owner_split(L->emission_per_block, L->owner_cut, &cut, &rest);
    uint64_t blocks = B - ep->prev; /* blocks prev+1 .. B queued their emission */
    uint64_t pending = sat_mul(blocks, rest), owner = sat_mul(blocks, cut);
    uint32_t n = ep->n;
    yuma_output o;
    memset(&o, 0, sizeof o);
    for (uint32_t u = 0; u < n; u++) {
        const ep_neuron *x = &ep->nr[u];
        ep->stake[u] = x->stake;
        ep->last_update[u] = x->last_update;
        ep->registered[u] = x->reg_block;
        ep->wrows[u] = (yuma_row){x->nw, x->w};
        ep->brows[u] = (yuma_row){x->nb, x->b};
    }
    /* The local subnet's permits (top max_validators by stake above
     * min_validator_stake), the same before and after the epoch: stake
     * changes only by transactions, and every transaction is already in. */
    permits_of_stake(L, ep->stake, n, ep->permit8);
    for (uint32_t u = 0; u < n; u++) ep->permit[u] = ep->permit8[u];
    bool ran = false;
    if (n > 0) {
        yuma_params yp;
        yuma_params_default(&yp);
        yp.kappa = L->kappa;
        yp.bonds_moving_average = L->bonds_moving_average;
        yp.activity_cutoff = L->activity_cutoff;
        /* The new permits are the local ones too.  yuma_epoch would pick
         * its own (the top max_validators by stake) and write the EMA bonds
         * row of each: with more permits than uids it gives every uid its
         * row, and the rows of uids without a local permit are cleared
         * below, which is subtensor's rule with the local permits as the
         * previous and the new ones. */
        yp.max_validators = UINT16_MAX;
        yuma_input in = {
            .n = n,
            .block = B,
            .emission = pending,
            .stake = ep->stake,
            .last_update = ep->last_update,
            .registered = ep->registered,
            .validator_permit = ep->permit,
            .weights = ep->wrows,
            .bonds = ep->brows,
        };
        int rc = yuma_epoch(&yp, &in, &o, e);
        if (rc == TS_EINVAL) {
            /* input the runtime could not compute either (stake summing over
             * 2^63 - 1 rao): the epoch distributes nothing, bonds stay */
            if (!L->ep_warned)
                TS_WARN("local subnet %s: the epoch at block %llu distributes nothing: %s (later ones are not logged)",
                        L->dir, (unsigned long long)B, e->msg);
            L->ep_warned = true;
            ts_err_clear(e);
        } else if (rc) {
            ep->valid = false;
            return ts_wrap(e, "the epoch at block %llu", (unsigned long long)B);
        } else {
            ran = true;
        }
    }
    for (uint32_t u = 0; u < n; u++) {
        ep_neuron *x = &ep->nr[u];
        chain_epoch_uid *y = &ep->last.uids[u];
        memset(y, 0, sizeof *y);
        y->uid = u;
        memcpy(y->hotkey, x->hotkey, TS_PK_BYTES);
        y->validator_permit = ep->permit8[u];
        if (ran) {
            /* drain_emission: server and validator emission go to the
             * hotkey; here to its earned balance, not its stake */
            x->earned = sat_add(x->earned, sat_add(o.server_emission[u], o.validator_emission[u]));
            /* bonds as stored with the local permits as both the previous
             * and the new ones: the EMA for a permit holder, none otherwise
             * (a uid that lost its permit since the last epoch loses its
             * bonds, as in subtensor; one that never had one has none) */
            x->nb = 0;
            if (ep->permit8[u] && o.bonds[u].n) {
                if (row_fit(&x->b, &x->bcap, o.bonds[u].n)) {
                    yuma_output_free(&o);
                    ep->valid = false;
                    return ts_fail(e, TS_ENOMEM, "out of memory");
                }
                memcpy(x->b, o.bonds[u].e, o.bonds[u].n * sizeof *x->b);
                x->nb = o.bonds[u].n;
            }
            y->active = o.active[u];
            y->rank = o.rank[u];
            y->trust = o.trust[u];
            y->consensus = o.consensus[u];
            y->incentive = o.incentive[u];
            y->dividends = o.dividends[u];
            y->validator_trust = o.validator_trust[u];
            y->emission = o.emission[u];
        }
        y->earned = x->earned;
    }
    yuma_output_free(&o);
    /* with no uids subtensor's epoch returns nothing: the pending emission
     * is drained and lost */
    ep->owner_earned = sat_add(ep->owner_earned, owner);
    ep->count++;
    ep->prev = B;
    ep->next = B + L->tempo + 1;
    chain_epoch *r = &ep->last;
    r->block = B;
    r->tempo = L->tempo;
    r->next_block = ep->next;
    r->count = ep->count;
    r->emission = pending;
    r->owner_emission = owner;
    r->owner_earned = ep->owner_earned;
    r->has_earned = true;
    r->missing[0] = 0;
    r->n = n;
    return TS_OK;
}

/* Runs every epoch of a block <= target not run yet. */
static int ep_advance(local *L, uint64_t target, ts_err *e) {
    ep_state *ep = &L->ep;
    if (!ep->nr && ep_alloc(L)) return ts_fail(e, TS_ENOMEM, "out of memory");
    if (!ep->valid) ep_reset(L);
    while (ep->next <= target) {
        uint64_t B = ep->next;
        for (; ep->k < L->nhist && L->hist[ep->k].block < B; ep->k++)
            if (ep_apply(L, ep, &L->hist[ep->k])) return ts_fail(e, TS_ENOMEM, "out of memory");
        int rc = ep_run(L, ep, B, e);
        if (rc) return rc;
    }
    return TS_OK;
}

static int local_epoch_last(void *impl, chain_epoch *out, ts_err *e) {
    local *L = impl;
    int rc = log_sync(L, e);
    if (rc) return rc;
    uint64_t now = chain_clock_block_at(&L->p, ts_now());
    uint64_t first = ep_first_block(L);
    /* final once the next block has begun (chain_metagraph_at's rule) */
    if (now < first + 1)
        return ts_fail(e, TS_ENOTFOUND, "no epoch has run yet: the first runs at block %llu (tempo %llu; now block %llu)",
                       (unsigned long long)first, (unsigned long long)L->tempo, (unsigned long long)now);
    if ((rc = ep_advance(L, ep_block_at_or_before(L, now - 1), e))) return rc;
    const chain_epoch *r = &L->ep.last;
    *out = *r;
    out->uids = calloc(r->n ? r->n : 1, sizeof *out->uids);
    if (!out->uids) {
        memset(out, 0, sizeof *out);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    memcpy(out->uids, r->uids, r->n * sizeof *out->uids);
    return TS_OK;
}

static int local_info(void *impl, chain_info *out, ts_err *e) {
    local *L = impl;
    snprintf(out->where, sizeof out->where, "%s", L->dir);
    out->tempo = L->tempo;
    return TS_OK;
}

static int local_commitments(void *impl, chain_commitment **out, uint32_t *n, ts_err *e) {
    local *L = impl;
    int rc = log_sync(L, e);
    if (rc) return rc;
    uint32_t m = 0;
    for (uint32_t u = 0; u < L->n; u++) m += L->nr[u].has_commit;
    if (!m) return TS_OK;
    chain_commitment *c = calloc(m, sizeof *c);
    if (!c) return ts_fail(e, TS_ENOMEM, "out of memory");
    uint32_t k = 0;
    for (uint32_t u = 0; u < L->n; u++) {
        const neuron_st *x = &L->nr[u];
        if (!x->has_commit) continue;
        c[k].uid = u;
        memcpy(c[k].hotkey, x->hotkey, TS_PK_BYTES);
        c[k].block = x->commit_block;
        c[k].len = x->commit_len;
        memcpy(c[k].data, x->commit, x->commit_len + 1);
        k++;
    }
    *out = c;
    *n = m;
    return TS_OK;
}

static int local_weights(void *impl, chain_weight_row **rows, uint32_t *n, ts_err *e) {
    local *L = impl;
    int rc = log_sync(L, e);
    if (rc) return rc;
    uint32_t m = 0;
    size_t total = 0;
    for (uint32_t u = 0; u < L->n; u++)
        if (L->nr[u].has_weights && L->nr[u].nw) {
            m++;
            total += L->nr[u].nw;
        }
    if (!m) return TS_OK;
    /* one allocation: the rows, then every row's entries */
    chain_weight_row *r = malloc(m * sizeof *r + total * sizeof(chain_weight));
    if (!r) return ts_fail(e, TS_ENOMEM, "out of memory");
    chain_weight *w = (chain_weight *)(r + m);
    uint32_t k = 0;
    for (uint32_t u = 0; u < L->n; u++) {
        const neuron_st *x = &L->nr[u];
        if (!x->has_weights || !x->nw) continue;
        r[k].uid = u;
        memcpy(r[k].hotkey, x->hotkey, TS_PK_BYTES);
        r[k].block = x->w_block;
        r[k].n = x->nw;
        r[k].w = w;
        memcpy(w, x->w, x->nw * sizeof *w);
        w += x->nw;
        k++;
    }
    *rows = r;
    *n = m;
    return TS_OK;
}

static int lock_log(local *L, ts_err *e) {
    double deadline = ts_mono() + LOCK_TIMEOUT_S;
    long sleep_ns = 1000000;
    for (;;) {
        if (flock(L->fd, LOCK_EX | LOCK_NB) == 0) return TS_OK;
        if (errno == EINTR) continue;
        if (errno != EWOULDBLOCK)
            return ts_fail(e, TS_EIO, "%s: cannot lock: %s", L->log_path, strerror(errno));
        if (ts_mono() > deadline)
            return ts_fail(e, TS_ETIMEOUT, "%s: still locked by another process after %.0f s",
                           L->log_path, LOCK_TIMEOUT_S);
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 20000000) sleep_ns += sleep_ns / 2;
    }
}

/* The common path of every write: lock, catch up, repair a torn tail, check,
 * sign, append, make durable, apply.  tx->seq and tx->block are filled here. */
static int submit(local *L, chain_tx *tx, const ts_keypair *kp, chain_registration *reg,
                  ts_err *e) {
    if (!L->writable)
        return ts_fail(e, TS_EDENIED, "%s is read-only for this process", L->log_path);
    int rc = log_sync(L, e);
    if (rc) return rc;
    if ((rc = lock_log(L, e))) return rc;
    char *line = NULL;
    size_t len = 0;
    if ((rc = log_sync(L, e))) goto unlock;
    if (L->torn) {
        /* Only a crashed writer leaves bytes after the last '\n' (writers hold
         * the lock while writing, and we hold it now).  Its transaction was
         * never acknowledged; cut it off so ours starts on a fresh line. */
        TS_WARN("local subnet %s: removing %llu bytes of a torn last line (a writer crashed mid-write)",
                L->dir, (unsigned long long)L->torn);
        if (ftruncate(L->fd, (off_t)L->offset) || fdatasync(L->fd)) {
            rc = ts_fail(e, TS_EIO, "%s: cannot repair the torn tail: %s", L->log_path, strerror(errno));
            goto unlock;
        }
        L->torn = 0;
    }
    uint64_t now_block = chain_clock_block_at(&L->p, ts_now());
    tx->seq = L->nlines;
    tx->block = now_block > L->last_block ? now_block : L->last_block;
    char reason[200];
    if ((rc = tx_check(L, tx, reason, sizeof reason))) {
        rc = ts_fail(e, rc, "%s", reason);
        goto unlock;
    }
    if (reg && L->n == L->p.max_uids) {
        uint32_t v = victim_uid(L, tx->block);
        reg->replaced = true;
        memcpy(reg->old_hotkey, L->nr[v].hotkey, TS_PK_BYTES);
    }
    if ((rc = chain_local_format_tx(L->p.genesis_hash, tx, kp, &line, &len, e))) goto unlock;
    ssize_t w;
    do w = write(L->fd, line, len);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)len || fdatasync(L->fd)) {
        int err = w < 0 ? errno : (w != (ssize_t)len ? ENOSPC : errno);
        /* take back whatever part reached the file; nothing was acknowledged */
        if (ftruncate(L->fd, (off_t)L->offset) == 0) (void)fdatasync(L->fd);
        rc = ts_fail(e, TS_EIO, "%s: append failed: %s", L->log_path, strerror(err));
        goto unlock;
    }
    uint64_t before = L->rejected;
    if ((rc = log_sync(L, e))) goto unlock;
    if (L->rejected != before)
        rc = ts_fail(e, TS_ESTATE, "%s: own transaction was rejected on replay (%s)", L->log_path,
                     L->rej[(L->rej_next + REJECT_KEEP - 1) % REJECT_KEEP].reason);
unlock:
    flock(L->fd, LOCK_UN);
    free(line);
    return rc;
}

static int local_commit(void *impl, const ts_keypair *kp, const char *data, size_t len, ts_err *e) {
    local *L = impl;
    chain_tx tx = {.kind = CHAIN_TX_COMMIT, .data = (const uint8_t *)data, .len = len};
    memcpy(tx.signer, kp->pk, TS_PK_BYTES);
    return submit(L, &tx, kp, NULL, e);
}

static int local_set_weights(void *impl, const ts_keypair *kp, const chain_weight *w, uint32_t n,
                             ts_err *e) {
    local *L = impl;
    chain_tx tx = {.kind = CHAIN_TX_WEIGHTS, .w = w, .nw = n};
    memcpy(tx.signer, kp->pk, TS_PK_BYTES);
    return submit(L, &tx, kp, NULL, e);
}

static int local_reg(void *impl, const ts_keypair *kp, chain_registration *out, ts_err *e) {
    local *L = impl;
    chain_tx tx = {.kind = CHAIN_TX_REGISTER};
    memcpy(tx.signer, kp->pk, TS_PK_BYTES);
    int rc = submit(L, &tx, kp, out, e);
    if (rc) return rc;
    int uid = find_uid(L, kp->pk);
    if (uid < 0) return ts_fail(e, TS_ESTATE, "registered, but the hotkey is not in the metagraph");
    out->uid = (uint32_t)uid;
    out->block = L->nr[uid].reg_block;
    return TS_OK;
}

static int local_stake(void *impl, const ts_keypair *owner, const uint8_t hotkey[TS_PK_BYTES],
                       int64_t delta, ts_err *e) {
    local *L = impl;
    chain_tx tx = {.kind = CHAIN_TX_STAKE, .delta = delta};
    memcpy(tx.signer, owner->pk, TS_PK_BYTES);
    memcpy(tx.target, hotkey, TS_PK_BYTES);
    return submit(L, &tx, owner, NULL, e);
}

static int local_stats(void *impl, chain_stats *out, ts_err *e) {
    local *L = impl;
    int rc = log_sync(L, e);
    if (rc) return rc;
    out->lines = L->nlines;
    out->accepted = L->accepted;
    out->rejected = L->rejected;
    out->log_bytes = L->offset;
    out->torn_bytes = L->torn;
    out->replays = L->replays;
    return TS_OK;
}

static uint32_t local_rejections(void *impl, chain_rejection *out, uint32_t max) {
    local *L = impl;
    uint32_t n = L->rej_count < max ? L->rej_count : max;
    /* the newest n, oldest first */
    for (uint32_t i = 0; i < n; i++)
        out[i] = L->rej[(L->rej_next + REJECT_KEEP - n + i) % REJECT_KEEP];
    return n;
}

const chain_backend chain_local_backend = {
    .scheme = "local",
    .open = local_open,
    .close = local_close,
    .block = local_block,
    .block_time = local_block_time,
    .metagraph = local_metagraph,
    .metagraph_at = local_metagraph_at,
    .commitments = local_commitments,
    .weights = local_weights,
    .commit = local_commit,
    .set_weights = local_set_weights,
    .reg = local_reg,
    .stake = local_stake,
    .stats = local_stats,
    .rejections = local_rejections,
    .info = local_info,
    .epoch_last = local_epoch_last,
};
