/* state.c - the per-uid scoring state and its file (docs/FORMATS.md 10).
 *
 * A fixed header (magic, version, header and record sizes, count, window),
 * fixed-size little-endian records sorted by uid, and a BLAKE2b-256 checksum
 * of everything before it.  The parser checks the sizes against the file
 * length before allocating, the checksum before reading a record, and every
 * field's range after, so a truncated, corrupted or hand-edited file is an
 * error naming what is wrong, never a silently reset or half-read state.
 * Saving goes through ts_write_atomic: a crash leaves the old file or the new
 * one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gauntlet.h"

#define STATE_MAGIC "TSGSTATE"
#define STATE_VERSION 2u /* version 1 still loads */
#define STATE_HEADER 48u
#define STATE_RECORD 256u
#define STATE_MAX_FILE ((size_t)STATE_HEADER + (size_t)GAUNTLET_MAX_UIDS * STATE_RECORD + TS_HASH_BYTES)

#define KNOWN_PENALTIES ((GAUNTLET_PEN_BMA_THRESHOLD << 1) - 1)
#define KNOWN_PENALTIES_V1 ((GAUNTLET_PEN_REREGISTERED << 1) - 1)
/* version 2 fields of a record */
#define R2_COUNTS 196u /* counters GAUNTLET_CNT_COUNT_V1.. */
#define R2_HIST (R2_COUNTS + 4u * (GAUNTLET_CNT_COUNT - GAUNTLET_CNT_COUNT_V1))
#define R2_END (R2_HIST + 20u)

void gauntlet_state_init(gauntlet_state *s) {
    memset(s, 0, sizeof *s);
    s->window = GAUNTLET_NEVER;
}

void gauntlet_state_free(gauntlet_state *s) {
    free(s->uids);
    gauntlet_state_init(s);
}

gauntlet_uid *gauntlet_state_find(const gauntlet_state *s, uint32_t uid) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->uids[mid].uid < uid) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->n && s->uids[lo].uid == uid ? &s->uids[lo] : NULL;
}

bool gauntlet_is_banned(const gauntlet_uid *u, uint64_t window) {
    return u && u->ban_until != 0 && window < u->ban_until;
}

static void put_f64(uint8_t *p, double v) {
    uint64_t b;
    memcpy(&b, &v, 8);
    ts_put_u64(p, b);
}

static double get_f64(const uint8_t *p) {
    uint64_t b = ts_get_u64(p);
    double v;
    memcpy(&v, &b, 8);
    return v;
}

int gauntlet_state_serialize(const gauntlet_state *s, uint8_t **out, size_t *len, ts_err *e) {
    if (s->n > GAUNTLET_MAX_UIDS) return ts_fail(e, TS_ETOOBIG, "state has too many uids");
    size_t n = STATE_HEADER + s->n * STATE_RECORD + TS_HASH_BYTES;
    uint8_t *b = calloc(1, n);
    if (!b) return ts_fail(e, TS_ENOMEM, "out of memory");
    memcpy(b, STATE_MAGIC, 8);
    ts_put_u32(b + 8, STATE_VERSION);
    ts_put_u32(b + 12, STATE_HEADER);
    ts_put_u32(b + 16, STATE_RECORD);
    ts_put_u32(b + 20, (uint32_t)s->n);
    ts_put_u64(b + 24, s->window);
    ts_put_u64(b + 32, s->first_window);
    for (size_t i = 0; i < s->n; i++) {
        const gauntlet_uid *u = &s->uids[i];
        uint8_t *r = b + STATE_HEADER + i * STATE_RECORD;
        ts_put_u32(r + 0, u->uid);
        memcpy(r + 8, u->hotkey, 32);
        put_f64(r + 40, u->gradient_score);
        put_f64(r + 48, u->indicator);
        put_f64(r + 56, u->binary_ma);
        put_f64(r + 64, u->sync_score);
        put_f64(r + 72, u->steps_behind);
        put_f64(r + 80, u->rating.mu);
        put_f64(r + 88, u->rating.sigma);
        put_f64(r + 96, u->final_score);
        put_f64(r + 104, u->last_overlap);
        ts_put_u64(r + 112, u->first_seen_window);
        ts_put_u64(r + 120, u->last_eval_window);
        ts_put_u64(r + 128, u->ban_until);
        ts_put_u64(r + 136, u->last_penalty_window);
        ts_put_u32(r + 144, u->last_penalties);
        ts_put_u32(r + 148, u->inactive_windows);
        for (int c = 0; c < GAUNTLET_CNT_COUNT_V1; c++) ts_put_u32(r + 152 + 4 * c, u->counts[c]);
        for (int c = GAUNTLET_CNT_COUNT_V1; c < GAUNTLET_CNT_COUNT; c++)
            ts_put_u32(r + R2_COUNTS + 4 * (c - GAUNTLET_CNT_COUNT_V1), u->counts[c]);
        ts_put_u32(r + R2_HIST, u->neg_hist);
        ts_put_u32(r + R2_HIST + 4, u->gather_hist);
        r[R2_HIST + 8] = u->neg_n;
        r[R2_HIST + 9] = u->gather_n;
        r[R2_HIST + 10] = u->excluded ? 1 : 0;
        ts_put_u32(r + R2_HIST + 12, u->neg_consecutive);
        ts_put_u32(r + R2_HIST + 16, u->gather_consecutive);
    }
    ts_blake2b(b + n - TS_HASH_BYTES, TS_HASH_BYTES, b, n - TS_HASH_BYTES);
    *out = b;
    *len = n;
    return TS_OK;
}

static bool all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

int gauntlet_state_parse(const uint8_t *b, size_t len, gauntlet_state *s, ts_err *e) {
    if (len < STATE_HEADER + TS_HASH_BYTES)
        return ts_fail(e, TS_EFORMAT, "gauntlet state: %zu bytes, shorter than a header", len);
    if (memcmp(b, STATE_MAGIC, 8)) return ts_fail(e, TS_EFORMAT, "gauntlet state: bad magic");
    uint32_t ver = ts_get_u32(b + 8), hdr = ts_get_u32(b + 12), rec = ts_get_u32(b + 16);
    uint32_t count = ts_get_u32(b + 20);
    if (ver != STATE_VERSION && ver != 1)
        return ts_fail(e, TS_EUNSUPPORTED, "gauntlet state: version %u (this build reads 1 and %u)", ver,
                       STATE_VERSION);
    if (hdr != STATE_HEADER || rec != STATE_RECORD)
        return ts_fail(e, TS_EFORMAT, "gauntlet state: header %u / record %u bytes, expected %u / %u",
                       hdr, rec, STATE_HEADER, STATE_RECORD);
    if (count > GAUNTLET_MAX_UIDS)
        return ts_fail(e, TS_EFORMAT, "gauntlet state: %u records, over the limit", count);
    size_t want = STATE_HEADER + (size_t)count * STATE_RECORD + TS_HASH_BYTES;
    if (len != want)
        return ts_fail(e, TS_EFORMAT, "gauntlet state: %zu bytes, expected %zu for %u records", len,
                       want, count);
    uint8_t h[TS_HASH_BYTES];
    ts_blake2b(h, TS_HASH_BYTES, b, len - TS_HASH_BYTES);
    if (memcmp(h, b + len - TS_HASH_BYTES, TS_HASH_BYTES))
        return ts_fail(e, TS_EFORMAT, "gauntlet state: checksum mismatch (corrupted file)");
    if (!all_zero(b + (ver == 1 ? 32 : 40), ver == 1 ? 16 : 8))
        return ts_fail(e, TS_EFORMAT, "gauntlet state: reserved header bytes set");
    uint64_t window = ts_get_u64(b + 24);
    /* a version-1 file has no first window: it counts as past every warm-up */
    uint64_t first_window = ver == 1 ? 0 : ts_get_u64(b + 32);
    if (ver != 1 && window != GAUNTLET_NEVER && first_window > window)
        return ts_fail(e, TS_EFORMAT, "gauntlet state: first window %llu after the state's window %llu",
                       (unsigned long long)first_window, (unsigned long long)window);
    gauntlet_uid *u = count ? calloc(count, sizeof *u) : NULL;
    if (count && !u) return ts_fail(e, TS_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *r = b + STATE_HEADER + (size_t)i * STATE_RECORD;
        gauntlet_uid *x = &u[i];
        x->uid = ts_get_u32(r);
        uint32_t flags = ts_get_u32(r + 4);
        memcpy(x->hotkey, r + 8, 32);
        x->gradient_score = get_f64(r + 40);
        x->indicator = get_f64(r + 48);
        x->binary_ma = get_f64(r + 56);
        x->sync_score = get_f64(r + 64);
        x->steps_behind = get_f64(r + 72);
        x->rating.mu = get_f64(r + 80);
        x->rating.sigma = get_f64(r + 88);
        x->final_score = get_f64(r + 96);
        x->last_overlap = get_f64(r + 104);
        x->first_seen_window = ts_get_u64(r + 112);
        x->last_eval_window = ts_get_u64(r + 120);
        x->ban_until = ts_get_u64(r + 128);
        x->last_penalty_window = ts_get_u64(r + 136);
        x->last_penalties = ts_get_u32(r + 144);
        x->inactive_windows = ts_get_u32(r + 148);
        for (int c = 0; c < GAUNTLET_CNT_COUNT_V1; c++) x->counts[c] = ts_get_u32(r + 152 + 4 * c);
        size_t used = 152 + 4 * GAUNTLET_CNT_COUNT_V1;
        uint8_t excluded = 0;
        if (ver >= 2) {
            for (int c = GAUNTLET_CNT_COUNT_V1; c < GAUNTLET_CNT_COUNT; c++)
                x->counts[c] = ts_get_u32(r + R2_COUNTS + 4 * (c - GAUNTLET_CNT_COUNT_V1));
            x->neg_hist = ts_get_u32(r + R2_HIST);
            x->gather_hist = ts_get_u32(r + R2_HIST + 4);
            x->neg_n = r[R2_HIST + 8];
            x->gather_n = r[R2_HIST + 9];
            excluded = r[R2_HIST + 10];
            x->excluded = excluded == 1;
            x->neg_consecutive = ts_get_u32(r + R2_HIST + 12);
            x->gather_consecutive = ts_get_u32(r + R2_HIST + 16);
            used = R2_END;
        }
        const char *bad = NULL;
        if (x->uid >= GAUNTLET_MAX_UIDS) bad = "uid out of range";
        else if (i > 0 && x->uid <= u[i - 1].uid) bad = "uids not strictly ascending";
        else if (flags) bad = "unknown flags";
        else if (!all_zero(r + used, STATE_RECORD - used) || (ver >= 2 && r[R2_HIST + 11]))
            bad = "reserved bytes set";
        else if (excluded > 1) bad = "exclusion flag not 0 or 1";
        else if (x->neg_n > GAUNTLET_HISTORY_MAX || x->gather_n > GAUNTLET_HISTORY_MAX ||
                 (x->neg_n < 32 && (x->neg_hist >> x->neg_n)) ||
                 (x->gather_n < 32 && (x->gather_hist >> x->gather_n)))
            bad = "history longer than its count";
        else if (!isfinite(x->gradient_score)) bad = "gradient score not finite";
        else if (!(x->indicator == 0 || x->indicator == 1 || x->indicator == -1)) bad = "indicator not -1, 0 or 1";
        else if (!(x->binary_ma >= -1 && x->binary_ma <= 1)) bad = "binary moving average outside [-1, 1]";
        else if (!(x->sync_score >= 0 && x->sync_score <= 1)) bad = "sync score outside [0, 1]";
        else if (x->steps_behind < 0) bad = "steps behind negative"; /* NaN: never measured; +inf: no record */
        else if (!isfinite(x->rating.mu) || !(x->rating.sigma > 0) || !isfinite(x->rating.sigma))
            bad = "rating not finite or sigma not positive";
        else if (!isfinite(x->final_score)) bad = "final score not finite";
        else if (!(x->last_overlap >= 0 && x->last_overlap <= 1)) bad = "overlap outside [0, 1]";
        else if (x->last_penalties & ~(uint32_t)(ver == 1 ? KNOWN_PENALTIES_V1 : KNOWN_PENALTIES))
            bad = "unknown penalty bits";
        else if (window != GAUNTLET_NEVER &&
                 ((x->first_seen_window > window) ||
                  (x->last_eval_window != GAUNTLET_NEVER && x->last_eval_window > window)))
            bad = "a window after the state's window";
        if (bad) {
            uint32_t uid = x->uid;
            free(u);
            return ts_fail(e, TS_EFORMAT, "gauntlet state: record %u (uid %u): %s", i, uid, bad);
        }
    }
    free(s->uids);
    s->uids = u;
    s->n = s->cap = count;
    s->window = window;
    s->first_window = first_window;
    return TS_OK;
}

int gauntlet_state_save(const gauntlet_state *s, const char *path, ts_err *e) {
    uint8_t *buf;
    size_t len;
    int rc = gauntlet_state_serialize(s, &buf, &len, e);
    if (rc) return rc;
    rc = ts_write_atomic(path, buf, len, e);
    free(buf);
    return rc;
}

int gauntlet_state_load(gauntlet_state *s, const char *path, ts_err *e) {
    uint8_t *buf;
    size_t len;
    int rc = ts_read_file(path, STATE_MAX_FILE, &buf, &len, e);
    if (rc) return rc;
    rc = gauntlet_state_parse(buf, len, s, e);
    free(buf);
    if (rc) return ts_wrap(e, "%s", path);
    return TS_OK;
}
