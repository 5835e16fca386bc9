/* yuma.c - Yuma consensus as subtensor's sparse `epoch` computes it at runtime
 * spec 143 (opentensor/subtensor bc8a966cd, pallets/subtensor/src/epoch.rs
 * with the helpers of src/math.rs), in the chain's own fixed point.
 *
 * Every helper below is a transcription of the math.rs function of the same
 * name, step for step: the same masks in the same order, the same sums, the
 * same products and quotients, so that every rounding lands where the
 * runtime's lands.  The fixed-point rules are those of substrate-fixed v0.5.9
 * (the crate the runtime links, Cargo.lock), compiled as the runtime is
 * (release: no debug assertions, no overflow checks, so overflow wraps):
 *
 *   a + b, a - b, Iterator::sum   the integer sum of the bits, wrapping
 *                                 (exact, so the order of a sum does not
 *                                 matter; what matters is which products and
 *                                 quotients are rounded before it)
 *   a * b  (I32F32)               (a * b) >> 32 on the full 128-bit product:
 *                                 rounds toward -inf (arith.rs, mul_div_widen)
 *   a * b  (I96F32, I64F64)       the full 256-bit product >> frac: the same
 *                                 rule (mul_div_fallback)
 *   a / b                         (a << frac) / b in integer division: rounds
 *                                 toward zero (both macros, and wide_div.rs
 *                                 for i128 divides magnitudes)
 *   from_num(integer)             exact (bits = x << frac)
 *   from_num(other fixed)         extra fractional bits dropped: toward -inf
 *   to_num::<integer>()           fractional bits dropped: toward -inf
 *   round()                       to nearest, ties away from zero
 *                                 (macros_round.rs, overflowing_round)
 *
 * Shapes: weights and bonds are sparse n x n matrices kept row by row (CSR,
 * ascending columns), as the runtime's Vec<Vec<(u16, I32F32)>>. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "yuma.h"

/* ============================================================ fixed point */

/* I32F32: 32 integer bits (with the sign), 32 fractional. */
typedef int64_t fx;
#define FX_ONE ((fx)1 << 32)
#define FX_U16MAX ((fx)65535 << 32)

static inline fx fx_add(fx a, fx b) { return (fx)((uint64_t)a + (uint64_t)b); }
static inline fx fx_sub(fx a, fx b) { return (fx)((uint64_t)a - (uint64_t)b); }

/* (a * b) >> 32 on the exact 128-bit product (an arithmetic shift: toward
 * -inf), the low 64 bits kept (wrapping). */
static inline fx fx_mul(fx a, fx b) {
    __int128 p = (__int128)a * (__int128)b;
    return (fx)(uint64_t)(unsigned __int128)(p >> 32);
}

/* (a << 32) / b, truncated toward zero (C and Rust integer division agree).
 * Every caller guards b != 0 exactly as math.rs does. */
static inline fx fx_div(fx a, fx b) {
    __int128 num = (__int128)a * ((__int128)1 << 32);
    return (fx)(uint64_t)(unsigned __int128)(num / (__int128)b);
}

static inline fx fx_from_u16(uint16_t v) { return (fx)v << 32; }

/* to_num::<u16>(): floor, then the low 16 bits (release builds wrap). */
static inline uint16_t fx_to_u16(fx a) { return (uint16_t)(uint64_t)(a >> 32); }

/* round(): to the nearest integer, ties away from zero. */
static fx fx_round(fx a) {
    fx i = (fx)((uint64_t)a & ~(uint64_t)0xffffffffu);
    if (((uint64_t)a & 0x80000000u) == 0) return i;
    bool tie = ((uint64_t)a & 0xffffffffu) == 0x80000000u;
    if (tie && a < 0) return i;
    return fx_add(i, FX_ONE);
}

/* math.rs fixed_proportion_to_u16: (x * 65535).to_num::<u16>(). */
static inline uint16_t prop_to_u16(fx x) { return fx_to_u16(fx_mul(x, FX_U16MAX)); }

static fx vec_sum(const fx *x, uint32_t n) {
    fx s = 0;
    for (uint32_t i = 0; i < n; i++) s = fx_add(s, x[i]);
    return s;
}

/* math.rs inplace_normalize: x /= sum(x) unless the sum is 0. */
static void inplace_normalize(fx *x, uint32_t n) {
    fx s = vec_sum(x, n);
    if (s == 0) return;
    for (uint32_t i = 0; i < n; i++) x[i] = fx_div(x[i], s);
}

/* math.rs inplace_normalize_using_sum. */
static void inplace_normalize_using_sum(fx *x, uint32_t n, fx s) {
    if (s == 0) return;
    for (uint32_t i = 0; i < n; i++) x[i] = fx_div(x[i], s);
}

/* The stake: I64F64::from_num(stake) for every uid, inplace_normalize_64,
 * then vec_fixed64_to_fixed32.  With integer stakes s_i summing to S (the
 * caller checks S <= i64::MAX, so the I64F64 sum cannot wrap), the I64F64
 * quotient (s_i << 128) / (S << 64) is floor(s_i * 2^64 / S), and dropping
 * 32 fractional bits floors again: floor(s_i * 2^32 / S) in the end, but
 * computed the long way so that the code reads as the runtime's. */
static void normalized_stake(const uint64_t *stake, uint32_t n, fx *out) {
    unsigned __int128 sum = 0;
    for (uint32_t i = 0; i < n; i++) sum += stake[i];
    for (uint32_t i = 0; i < n; i++) {
        /* I64F64 bits of the quotient (stake itself when the sum is 0) */
        unsigned __int128 q = sum ? ((unsigned __int128)stake[i] << 64) / sum : (unsigned __int128)stake[i] << 64;
        out[i] = (fx)(uint64_t)(q >> 32); /* I32F32::from_num(I64F64) */
    }
}

/* math.rs is_topk: idxs.sort_by_key(|&i| &vector[i]) is a stable ascending
 * sort, so ties keep uid order, and the first n - k lose.  Sorting by
 * (value, uid) is the same order. */
typedef struct topk_item {
    fx v;
    uint32_t i;
} topk_item;

static int topk_cmp(const void *a, const void *b) {
    const topk_item *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int is_topk(const fx *v, uint32_t n, uint32_t k, bool *out) {
    for (uint32_t i = 0; i < n; i++) out[i] = true;
    if (n < k) return TS_OK;
    topk_item *it = malloc((size_t)n * sizeof *it);
    if (!it) return TS_ENOMEM;
    for (uint32_t i = 0; i < n; i++) it[i] = (topk_item){v[i], i};
    qsort(it, n, sizeof *it, topk_cmp);
    for (uint32_t r = 0; r < n - k; r++) out[it[r].i] = false;
    free(it);
    return TS_OK;
}

/* ========================================================= sparse matrices */

/* Rows 0..n-1; row i is col/val[off[i] .. off[i+1]), ascending columns. */
typedef struct smat {
    uint32_t n;
    uint32_t *off; /* n + 1 */
    uint16_t *col;
    fx *val;
} smat;

static void smat_free(smat *m) {
    free(m->off);
    free(m->col);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static int smat_alloc(smat *m, uint32_t n, size_t cap) {
    m->n = n;
    m->off = calloc((size_t)n + 1, sizeof *m->off);
    m->col = malloc((cap ? cap : 1) * sizeof *m->col);
    m->val = malloc((cap ? cap : 1) * sizeof *m->val);
    if (!m->off || !m->col || !m->val) {
        smat_free(m);
        return TS_ENOMEM;
    }
    return TS_OK;
}

/* get_weights_sparse / get_bonds_sparse: the stored u16 as I32F32. */
static int smat_from_rows(const yuma_row *rows, uint32_t n, smat *m) {
    size_t nnz = 0;
    if (rows)
        for (uint32_t i = 0; i < n; i++) nnz += rows[i].n;
    if (smat_alloc(m, n, nnz)) return TS_ENOMEM;
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (rows)
            for (uint32_t t = 0; t < rows[i].n; t++) {
                m->col[k] = rows[i].e[t].uid;
                m->val[k++] = fx_from_u16(rows[i].e[t].value);
            }
        m->off[i + 1] = (uint32_t)k;
    }
    return TS_OK;
}

/* vec_mask_sparse_matrix(m, last_update, block_at_registration,
 * |updated, registered| updated <= registered): drops (i, j) when i's
 * last update is not after j's registration. */
static void mask_outdated(smat *m, const uint64_t *last_update, const uint64_t *registered) {
    uint32_t w = 0, start = 0;
    for (uint32_t i = 0; i < m->n; i++) {
        uint32_t end = m->off[i + 1];
        for (uint32_t t = start; t < end; t++)
            if (!(last_update[i] <= registered[m->col[t]])) {
                m->col[w] = m->col[t];
                m->val[w++] = m->val[t];
            }
        start = end;
        m->off[i + 1] = w;
    }
}

/* mask_rows_sparse(validator_forbids) then mask_diag_sparse: rows without a
 * permit emptied, self-weights dropped. */
static void mask_forbidden_and_diag(smat *m, const bool *permit) {
    uint32_t w = 0, start = 0;
    for (uint32_t i = 0; i < m->n; i++) {
        uint32_t end = m->off[i + 1];
        if (permit[i])
            for (uint32_t t = start; t < end; t++)
                if (m->col[t] != i) {
                    m->col[w] = m->col[t];
                    m->val[w++] = m->val[t];
                }
        start = end;
        m->off[i + 1] = w;
    }
}

/* inplace_row_normalize_sparse: a row whose sum is > 0 is divided by it. */
static void row_normalize(smat *m) {
    for (uint32_t i = 0; i < m->n; i++) {
        fx s = 0;
        for (uint32_t t = m->off[i]; t < m->off[i + 1]; t++) s = fx_add(s, m->val[t]);
        if (s > 0)
            for (uint32_t t = m->off[i]; t < m->off[i + 1]; t++) m->val[t] = fx_div(m->val[t], s);
    }
}

/* inplace_col_normalize_sparse: each column divided by its sum (not 0).
 * colbuf: n scratch. */
static void col_normalize(smat *m, fx *colbuf) {
    memset(colbuf, 0, (size_t)m->n * sizeof *colbuf);
    uint32_t nnz = m->off[m->n];
    for (uint32_t t = 0; t < nnz; t++) colbuf[m->col[t]] = fx_add(colbuf[m->col[t]], m->val[t]);
    for (uint32_t t = 0; t < nnz; t++)
        if (colbuf[m->col[t]] != 0) m->val[t] = fx_div(m->val[t], colbuf[m->col[t]]);
}

/* inplace_col_max_upscale_sparse: each column divided by its largest value
 * (the running max starts at 0; a column whose max is 0 is left alone). */
static void col_max_upscale(smat *m, fx *colbuf) {
    memset(colbuf, 0, (size_t)m->n * sizeof *colbuf);
    uint32_t nnz = m->off[m->n];
    for (uint32_t t = 0; t < nnz; t++)
        if (colbuf[m->col[t]] < m->val[t]) colbuf[m->col[t]] = m->val[t];
    for (uint32_t t = 0; t < nnz; t++)
        if (colbuf[m->col[t]] != 0) m->val[t] = fx_div(m->val[t], colbuf[m->col[t]]);
}

/* matmul_sparse: r_j = SUM(i) v_i * m_ij, row by row. */
static void matmul(const smat *m, const fx *v, fx *r) {
    memset(r, 0, (size_t)m->n * sizeof *r);
    for (uint32_t i = 0; i < m->n; i++)
        for (uint32_t t = m->off[i]; t < m->off[i + 1]; t++)
            r[m->col[t]] = fx_add(r[m->col[t]], fx_mul(v[i], m->val[t]));
}

/* matmul_transpose_sparse: r_i = SUM(j) v_j * m_ij. */
static void matmul_transpose(const smat *m, const fx *v, fx *r) {
    for (uint32_t i = 0; i < m->n; i++) {
        fx s = 0;
        for (uint32_t t = m->off[i]; t < m->off[i + 1]; t++) s = fx_add(s, fx_mul(v[m->col[t]], m->val[t]));
        r[i] = s;
    }
}

/* row_sum_sparse. */
static void row_sum(const smat *m, fx *r) {
    for (uint32_t i = 0; i < m->n; i++) {
        fx s = 0;
        for (uint32_t t = m->off[i]; t < m->off[i + 1]; t++) s = fx_add(s, m->val[t]);
        r[i] = s;
    }
}

/* col_clip_sparse: a value above its column's threshold becomes the
 * threshold, or is dropped when the threshold is not > 0. */
static void col_clip(smat *m, const fx *thr) {
    uint32_t w = 0, start = 0;
    for (uint32_t i = 0; i < m->n; i++) {
        uint32_t end = m->off[i + 1];
        for (uint32_t t = start; t < end; t++) {
            uint16_t j = m->col[t];
            fx v = m->val[t];
            if (thr[j] < v) {
                if (0 < thr[j]) {
                    m->col[w] = j;
                    m->val[w++] = thr[j];
                }
            } else {
                m->col[w] = j;
                m->val[w++] = v;
            }
        }
        start = end;
        m->off[i + 1] = w;
    }
}

/* row_hadamard_sparse: a copy with m_ij *= v_i. */
static int row_hadamard(const smat *m, const fx *v, smat *out) {
    uint32_t nnz = m->off[m->n];
    if (smat_alloc(out, m->n, nnz)) return TS_ENOMEM;
    memcpy(out->off, m->off, ((size_t)m->n + 1) * sizeof *m->off);
    memcpy(out->col, m->col, (size_t)nnz * sizeof *m->col);
    for (uint32_t i = 0; i < m->n; i++)
        for (uint32_t t = m->off[i]; t < m->off[i + 1]; t++) out->val[t] = fx_mul(m->val[t], v[i]);
    return TS_OK;
}

/* mat_ema_sparse: per row, a dense accumulator gets alpha * new_ij, then
 * (1 - alpha) * old_ij; the entries > 0 are kept in column order.
 * rowbuf: n scratch, all 0 on entry and on return. */
static int mat_ema(const smat *nw, const smat *old, fx alpha, fx *rowbuf, smat *out) {
    uint32_t n = nw->n;
    fx one_minus_alpha = fx_sub(FX_ONE, alpha);
    if (smat_alloc(out, n, (size_t)nw->off[n] + old->off[n])) return TS_ENOMEM;
    uint32_t w = 0;
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t t = nw->off[i]; t < nw->off[i + 1]; t++)
            rowbuf[nw->col[t]] = fx_add(rowbuf[nw->col[t]], fx_mul(alpha, nw->val[t]));
        for (uint32_t t = old->off[i]; t < old->off[i + 1]; t++)
            rowbuf[old->col[t]] = fx_add(rowbuf[old->col[t]], fx_mul(one_minus_alpha, old->val[t]));
        for (uint32_t j = 0; j < n; j++) {
            if (rowbuf[j] > 0) {
                out->col[w] = (uint16_t)j;
                out->val[w++] = rowbuf[j];
            }
            rowbuf[j] = 0;
        }
        out->off[i + 1] = w;
    }
    return TS_OK;
}

/* ========================================================= weighted median */

/* math.rs weighted_median: a binary search on a pivot taken at the middle
 * of the partition (score[partition[n / 2]]), recursing into the lower or
 * the upper part.  Every recursive call is returned as is, so this loop is
 * the same computation; the part recursed into is compacted in place in its
 * original order (the Rust code pushes it into a fresh Vec in that order,
 * and the order decides the next pivot). */
static fx weighted_median(const fx *stake, const fx *score, uint32_t *part, uint32_t n, fx minority, fx lo,
                          fx hi) {
    for (;;) {
        if (n == 0) return 0;
        if (n == 1) return score[part[0]];
        fx pivot = score[part[n / 2]];
        fx lo_stake = 0, hi_stake = 0;
        uint32_t nlo = 0, nhi = 0;
        for (uint32_t t = 0; t < n; t++) {
            fx s = score[part[t]];
            if (s == pivot) continue;
            if (s < pivot) {
                lo_stake = fx_add(lo_stake, stake[part[t]]);
                nlo++;
            } else {
                hi_stake = fx_add(hi_stake, stake[part[t]]);
                nhi++;
            }
        }
        fx lo_edge = fx_add(lo, lo_stake), hi_edge = fx_sub(hi, hi_stake);
        bool go_lo;
        if (lo_edge <= minority && minority < hi_edge) return pivot;
        else if (minority < lo_edge && nlo > 0) go_lo = true;
        else if (hi_edge <= minority && nhi > 0) go_lo = false;
        else return pivot;
        uint32_t w = 0;
        for (uint32_t t = 0; t < n; t++) {
            fx s = score[part[t]];
            if (s != pivot && (s < pivot) == go_lo) part[w++] = part[t];
        }
        n = w;
        if (go_lo) hi = lo_edge; /* [lo, lo + lo_stake] */
        else lo = hi_edge;       /* [hi - hi_stake, hi] */
    }
}

/* math.rs weighted_median_col_sparse(stake, score, n, majority): the rows
 * with stake > 0 only, their stake normalised again (which can move low
 * bits), minority = sum - majority, one weighted median per column over
 * those rows (a row's missing entry scores 0).  Scores are gathered column
 * by column rather than into the runtime's dense columns x rows table: the
 * values are the same. */
static int weighted_median_cols(const fx *stake, const smat *w, fx majority, fx *median) {
    uint32_t n = w->n, k = 0;
    for (uint32_t r = 0; r < n; r++) k += stake[r] > 0;
    memset(median, 0, (size_t)n * sizeof *median);
    fx *use_stake = malloc(((size_t)k + 1) * sizeof *use_stake);
    fx *score = calloc((size_t)k + 1, sizeof *score);
    uint32_t *part = malloc(((size_t)k + 1) * sizeof *part);
    uint32_t *cnt = calloc((size_t)n + 1, sizeof *cnt);
    uint32_t *crow = malloc(((size_t)w->off[n] + 1) * sizeof *crow);
    fx *cval = malloc(((size_t)w->off[n] + 1) * sizeof *cval);
    int rc = TS_OK;
    if (!use_stake || !score || !part || !cnt || !crow || !cval) {
        rc = TS_ENOMEM;
        goto done;
    }
    k = 0;
    for (uint32_t r = 0; r < n; r++)
        if (stake[r] > 0) use_stake[k++] = stake[r];
    inplace_normalize(use_stake, k);
    fx stake_sum = vec_sum(use_stake, k);
    fx minority = fx_sub(stake_sum, majority);
    /* the columns of the rows with stake (CSC), rows in order */
    for (uint32_t r = 0; r < n; r++)
        if (stake[r] > 0)
            for (uint32_t t = w->off[r]; t < w->off[r + 1]; t++) cnt[w->col[t] + 1]++;
    for (uint32_t c = 0; c < n; c++) cnt[c + 1] += cnt[c];
    uint32_t kr = 0;
    for (uint32_t r = 0; r < n; r++) {
        if (!(stake[r] > 0)) continue;
        for (uint32_t t = w->off[r]; t < w->off[r + 1]; t++) {
            uint32_t at = cnt[w->col[t]]++;
            crow[at] = kr;
            cval[at] = w->val[t];
        }
        kr++;
    }
    /* cnt[c] is now the end of column c (and the start of c + 1) */
    for (uint32_t c = 0; c < n; c++) {
        uint32_t a = c ? cnt[c - 1] : 0, b = cnt[c];
        for (uint32_t t = a; t < b; t++) score[crow[t]] = cval[t];
        for (uint32_t t = 0; t < k; t++) part[t] = t;
        median[c] = weighted_median(use_stake, score, part, k, minority, 0, stake_sum);
        for (uint32_t t = a; t < b; t++) score[crow[t]] = 0;
    }
done:
    free(use_stake);
    free(score);
    free(part);
    free(cnt);
    free(crow);
    free(cval);
    return rc;
}

/* vec_max_upscale_to_u16 (pruning scores). */
static void vec_max_upscale_to_u16(const fx *v, uint32_t n, uint16_t *out) {
    fx mx = v[0];
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > mx) mx = v[i];
    if (mx == 0) {
        for (uint32_t i = 0; i < n; i++) out[i] = fx_to_u16(fx_mul(v[i], FX_U16MAX));
    } else if (mx > ((fx)32768 << 32)) {
        fx f = fx_div(FX_U16MAX, mx);
        for (uint32_t i = 0; i < n; i++) out[i] = fx_to_u16(fx_round(fx_mul(v[i], f)));
    } else {
        for (uint32_t i = 0; i < n; i++) out[i] = fx_to_u16(fx_round(fx_div(fx_mul(v[i], FX_U16MAX), mx)));
    }
}

/* I96F32::from_num(x) * I96F32::from_num(rao), then to_num::<u64>(): the
 * 256-bit product of x's bits and rao << 32, shifted right by 32, is
 * x_bits * rao exactly; dropping the 32 fractional bits floors it. */
static inline uint64_t rao_of(fx x, uint64_t rao) {
    __int128 p = (__int128)x * (__int128)rao;
    return (uint64_t)(unsigned __int128)(p >> 32);
}

/* ================================================================== epoch */

void yuma_params_default(yuma_params *p) {
    p->kappa = 32767;
    p->bonds_moving_average = 900000;
    p->activity_cutoff = 5000;
    p->max_validators = 64;
}

void yuma_output_free(yuma_output *o) {
    if (!o) return;
    free(o->active);
    free(o->validator_permit);
    free(o->rank);
    free(o->trust);
    free(o->consensus);
    free(o->incentive);
    free(o->dividends);
    free(o->validator_trust);
    free(o->pruning_score);
    free(o->emission);
    free(o->server_emission);
    free(o->validator_emission);
    if (o->bonds)
        for (uint32_t i = 0; i < o->n; i++) free(o->bonds[i].e);
    free(o->bonds);
    memset(o, 0, sizeof *o);
}

static int check_rows(const yuma_row *rows, uint32_t n, const char *what, ts_err *e) {
    if (!rows) return TS_OK;
    for (uint32_t i = 0; i < n; i++) {
        const yuma_row *r = &rows[i];
        if (r->n > n)
            return ts_fail(e, TS_EINVAL, "yuma: %s of uid %u: %u entries, more than the %u uids", what, i, r->n, n);
        if (r->n && !r->e) return ts_fail(e, TS_EINVAL, "yuma: %s of uid %u: %u entries but no array", what, i, r->n);
        for (uint32_t t = 0; t < r->n; t++) {
            uint32_t j = r->e[t].uid;
            if (j >= n) return ts_fail(e, TS_EINVAL, "yuma: %s of uid %u name uid %u, but n is %u", what, i, j, n);
            if (t && j <= r->e[t - 1].uid)
                return ts_fail(e, TS_EINVAL, "yuma: %s of uid %u: uid %u after uid %u (ascending, no duplicates)", what,
                               i, j, r->e[t - 1].uid);
        }
    }
    return TS_OK;
}

static int check_input(const yuma_params *p, const yuma_input *in, ts_err *e) {
    if (!p || !in) return ts_fail(e, TS_EINVAL, "yuma: no parameters or no input");
    if (in->n < 1 || in->n > YUMA_MAX_UIDS)
        return ts_fail(e, TS_EINVAL, "yuma: n = %u is outside 1..%u", in->n, YUMA_MAX_UIDS);
    if (!in->stake || !in->last_update || !in->registered || !in->validator_permit)
        return ts_fail(e, TS_EINVAL, "yuma: stake, last_update, registered and validator_permit are required");
    if (p->bonds_moving_average > 1000000)
        return ts_fail(e, TS_EINVAL, "yuma: bonds_moving_average %" PRIu64 " is over 1000000 (a share of 1e6)",
                       p->bonds_moving_average);
    /* the runtime sums the stake in I64F64: over i64::MAX it would wrap */
    uint64_t sum = 0;
    for (uint32_t i = 0; i < in->n; i++) {
        if (in->stake[i] > (uint64_t)INT64_MAX - sum)
            return ts_fail(e, TS_EINVAL,
                           "yuma: the stake up to uid %u sums over 2^63-1 rao (the runtime's I64F64 sum would overflow)",
                           i);
        sum += in->stake[i];
    }
    int rc = check_rows(in->weights, in->n, "weights", e);
    return rc ? rc : check_rows(in->bonds, in->n, "bonds", e);
}

static int alloc_output(yuma_output *o, uint32_t n) {
    o->n = n;
    o->active = calloc(n, sizeof *o->active);
    o->validator_permit = calloc(n, sizeof *o->validator_permit);
    uint16_t **u16s[] = {&o->rank, &o->trust, &o->consensus, &o->incentive, &o->dividends, &o->validator_trust,
                         &o->pruning_score};
    for (size_t i = 0; i < sizeof u16s / sizeof u16s[0]; i++) *u16s[i] = calloc(n, sizeof(uint16_t));
    o->emission = calloc(n, sizeof *o->emission);
    o->server_emission = calloc(n, sizeof *o->server_emission);
    o->validator_emission = calloc(n, sizeof *o->validator_emission);
    o->bonds = calloc(n, sizeof *o->bonds);
    bool ok = o->active && o->validator_permit && o->emission && o->server_emission && o->validator_emission && o->bonds;
    for (size_t i = 0; i < sizeof u16s / sizeof u16s[0]; i++) ok = ok && *u16s[i];
    return ok ? TS_OK : TS_ENOMEM;
}

/* The vectors of one epoch, n each. */
enum {
    V_STAKE, V_ACTIVE_STAKE, V_PRERANKS, V_CONSENSUS, V_VTRUST, V_RANKS, V_TRUST, V_DIVIDENDS,
    V_NSERVER, V_NVALIDATOR, V_NCOMBINED, V_SCRATCH, V_COUNT
};

int yuma_epoch(const yuma_params *p, const yuma_input *in, yuma_output *out, ts_err *e) {
    if (!out) return ts_fail(e, TS_EINVAL, "yuma: no output");
    memset(out, 0, sizeof *out);
    int rc = check_input(p, in, e);
    if (rc) return rc;
    const uint32_t n = in->n;
    fx *vbuf = calloc((size_t)n * V_COUNT, sizeof *vbuf);
    bool *inactive = calloc(n, sizeof *inactive);
    smat w = {0}, b = {0}, db = {0}, ema = {0};
    if (!vbuf || !inactive || alloc_output(out, n)) {
        rc = TS_ENOMEM;
        goto done;
    }
    fx *v[V_COUNT];
    for (int i = 0; i < V_COUNT; i++) v[i] = vbuf + (size_t)i * n;

    /* == Active & updated: inactive when last_update + activity_cutoff < block (u64, wrapping as released) */
    for (uint32_t i = 0; i < n; i++) {
        inactive[i] = in->last_update[i] + p->activity_cutoff < in->block;
        out->active[i] = !inactive[i];
    }

    /* == Stake: I64F64 normalised, then I32F32; new permits: top max_validators */
    fx *stake = v[V_STAKE];
    normalized_stake(in->stake, n, stake);
    if ((rc = is_topk(stake, n, p->max_validators, out->validator_permit))) goto done;

    /* == Active stake: masked by inactivity and by the permits the previous epoch left, normalised */
    fx *active_stake = v[V_ACTIVE_STAKE];
    for (uint32_t i = 0; i < n; i++) active_stake[i] = inactive[i] || !in->validator_permit[i] ? 0 : stake[i];
    inplace_normalize(active_stake, n);

    /* == Weights: rows of permitted validators, no self-weight, none set before the target's
     * (re-)registration, each row normalised to sum 1 */
    if ((rc = smat_from_rows(in->weights, n, &w))) goto done;
    mask_forbidden_and_diag(&w, in->validator_permit);
    mask_outdated(&w, in->last_update, in->registered);
    row_normalize(&w);

    /* == Consensus, validator trust */
    matmul(&w, active_stake, v[V_PRERANKS]);
    fx kappa = fx_div(fx_from_u16(p->kappa), FX_U16MAX); /* get_float_kappa */
    if ((rc = weighted_median_cols(active_stake, &w, kappa, v[V_CONSENSUS]))) goto done;
    col_clip(&w, v[V_CONSENSUS]);
    row_sum(&w, v[V_VTRUST]);

    /* == Ranks, trust, incentive */
    fx *ranks = v[V_RANKS], *trust = v[V_TRUST];
    matmul(&w, active_stake, ranks);
    for (uint32_t i = 0; i < n; i++) trust[i] = v[V_PRERANKS][i] != 0 ? fx_div(ranks[i], v[V_PRERANKS][i]) : 0;
    inplace_normalize(ranks, n);
    const fx *incentive = ranks;

    /* == Bonds and dividends */
    if ((rc = smat_from_rows(in->bonds, n, &b))) goto done;
    mask_outdated(&b, in->last_update, in->registered);
    col_normalize(&b, v[V_SCRATCH]);
    if ((rc = row_hadamard(&w, active_stake, &db))) goto done;
    col_normalize(&db, v[V_SCRATCH]);
    /* alpha = 1 - I32F32(I64F64(bma) / I64F64(1e6)): the I64F64 quotient floor(bma * 2^64 / 1e6)
     * (bma <= 1e6 checked), then 32 fractional bits dropped */
    fx bma = (fx)(uint64_t)((((unsigned __int128)p->bonds_moving_average << 64) / 1000000u) >> 32);
    fx alpha = fx_sub(FX_ONE, bma);
    memset(v[V_SCRATCH], 0, (size_t)n * sizeof(fx));
    if ((rc = mat_ema(&db, &b, alpha, v[V_SCRATCH], &ema))) goto done;
    col_normalize(&ema, v[V_SCRATCH]);
    fx *dividends = v[V_DIVIDENDS];
    matmul_transpose(&ema, incentive, dividends);
    inplace_normalize(dividends, n);

    /* == Emission and pruning scores */
    fx *nse = v[V_NSERVER], *nve = v[V_NVALIDATOR], *nce = v[V_NCOMBINED];
    fx emission_sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        nce[i] = fx_add(incentive[i], dividends[i]);
        emission_sum = fx_add(emission_sum, nce[i]);
    }
    memcpy(nse, incentive, (size_t)n * sizeof(fx));
    memcpy(nve, dividends, (size_t)n * sizeof(fx));
    inplace_normalize_using_sum(nse, n, emission_sum);
    inplace_normalize_using_sum(nve, n, emission_sum);
    inplace_normalize(nce, n);
    if (emission_sum == 0) {
        /* no weights set | outdated weights | self-weights: emission by stake */
        const fx *by = vec_sum(active_stake, n) == 0 ? stake : active_stake;
        memcpy(nve, by, (size_t)n * sizeof(fx));
        memcpy(nce, by, (size_t)n * sizeof(fx));
    }
    for (uint32_t i = 0; i < n; i++) {
        out->server_emission[i] = rao_of(nse[i], in->emission);
        out->validator_emission[i] = rao_of(nve[i], in->emission);
        out->emission[i] = rao_of(nce[i], in->emission);
    }
    vec_max_upscale_to_u16(nce, n, out->pruning_score);

    /* == What is stored */
    for (uint32_t i = 0; i < n; i++) {
        out->rank[i] = prop_to_u16(ranks[i]);
        out->trust[i] = prop_to_u16(trust[i]);
        out->consensus[i] = prop_to_u16(v[V_CONSENSUS][i]);
        out->incentive[i] = prop_to_u16(incentive[i]);
        out->dividends[i] = prop_to_u16(dividends[i]);
        out->validator_trust[i] = prop_to_u16(v[V_VTRUST][i]);
    }
    /* Bonds: column max-upscaled; a uid keeping a permit stores its row, one losing its permit an
     * empty row, and one that had none keeps whatever was stored (the runtime writes nothing). */
    col_max_upscale(&ema, v[V_SCRATCH]);
    for (uint32_t i = 0; i < n; i++) {
        yuma_row *r = &out->bonds[i];
        const yuma_entry *src = NULL;
        uint32_t cnt = 0;
        if (out->validator_permit[i]) cnt = ema.off[i + 1] - ema.off[i];
        else if (!in->validator_permit[i] && in->bonds) {
            cnt = in->bonds[i].n;
            src = in->bonds[i].e;
        }
        if (!cnt) continue;
        r->e = malloc((size_t)cnt * sizeof *r->e);
        if (!r->e) {
            rc = TS_ENOMEM;
            goto done;
        }
        r->n = cnt;
        if (src) memcpy(r->e, src, (size_t)cnt * sizeof *r->e);
        else
            for (uint32_t t = 0; t < cnt; t++) {
                r->e[t].uid = ema.col[ema.off[i] + t];
                r->e[t].value = prop_to_u16(ema.val[ema.off[i] + t]);
            }
    }

done:
    smat_free(&w);
    smat_free(&b);
    smat_free(&db);
    smat_free(&ema);
    free(vbuf);
    free(inactive);
    if (rc) {
        yuma_output_free(out);
        if (rc == TS_ENOMEM) rc = ts_fail(e, TS_ENOMEM, "yuma: out of memory (n = %u)", n);
    }
    return rc;
}

/* ============================================================== owner cut */

/* generate_emission: cut = I96F32(e).saturating_mul(I96F32(cut)).saturating_div(I96F32(65535)).
 * The product e * cut is exact (< 2^80); the quotient keeps 32 fractional bits, truncated. */
static unsigned __int128 owner_cut_bits(uint64_t block_emission, uint16_t cut) {
    unsigned __int128 prod = (unsigned __int128)block_emission * cut; /* integer value */
    return (prod << 32) / 65535u;                                     /* I96F32 bits */
}

uint64_t yuma_owner_cut(uint64_t block_emission, uint16_t cut) {
    return (uint64_t)(owner_cut_bits(block_emission, cut) >> 32);
}

uint64_t yuma_owner_remaining(uint64_t block_emission, uint16_t cut) {
    unsigned __int128 rem = ((unsigned __int128)block_emission << 32) - owner_cut_bits(block_emission, cut);
    return (uint64_t)(rem >> 32);
}

/* =================================================================== JSON */

/* A u64: a JSON integer up to 2^53 (a double holds it exactly) or a string
 * of decimal digits (any u64). */
static int json_u64(const cJSON *v, const char *what, uint64_t *out, ts_err *e) {
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!(d >= 0 && d <= 9007199254740992.0 && d == (double)(uint64_t)d))
            return ts_fail(e, TS_EINVAL,
                           "yuma input: %s: not an integer in 0..2^53 (give larger values as a string of digits)", what);
        *out = (uint64_t)d;
        return TS_OK;
    }
    if (cJSON_IsString(v) && v->valuestring) {
        const char *s = v->valuestring;
        size_t len = strlen(s);
        uint64_t x = 0;
        bool ok = len > 0 && len <= 20 && !(len > 1 && s[0] == '0');
        for (size_t i = 0; ok && i < len; i++) {
            if (s[i] < '0' || s[i] > '9') ok = false;
            else {
                uint64_t d = (uint64_t)(s[i] - '0');
                if (x > (UINT64_MAX - d) / 10) ok = false;
                else x = x * 10 + d;
            }
        }
        if (!ok) return ts_fail(e, TS_EINVAL, "yuma input: %s: \"%.40s\" is not a u64 in decimal", what, s);
        *out = x;
        return TS_OK;
    }
    return ts_fail(e, TS_EINVAL, "yuma input: %s: expected an integer", what);
}

static int json_uint_max(const cJSON *v, const char *what, uint64_t max, uint64_t *out, ts_err *e) {
    int rc = json_u64(v, what, out, e);
    if (!rc && *out > max) rc = ts_fail(e, TS_EINVAL, "yuma input: %s: %" PRIu64 " is over %" PRIu64, what, *out, max);
    return rc;
}

static int entry_cmp(const void *a, const void *b) {
    const yuma_entry *x = a, *y = b;
    return (x->uid > y->uid) - (x->uid < y->uid);
}

/* [[uid, u16], ..] into a row sorted by uid (the chain keeps a row in the
 * order it was set; the order changes nothing in the epoch). */
static int json_row(const cJSON *a, uint32_t n, uint32_t uid, const char *what, yuma_row *row, ts_err *e) {
    if (!a) return TS_OK;
    if (!cJSON_IsArray(a)) return ts_fail(e, TS_EINVAL, "yuma input: neuron %u: %s: expected [[uid, value], ..]", uid, what);
    int cnt = cJSON_GetArraySize(a);
    if (cnt > (int)n)
        return ts_fail(e, TS_EINVAL, "yuma input: neuron %u: %s: %d entries, more than the %u uids", uid, what, cnt, n);
    if (cnt == 0) return TS_OK;
    row->e = malloc((size_t)cnt * sizeof *row->e);
    if (!row->e) return ts_fail(e, TS_ENOMEM, "out of memory");
    const cJSON *it;
    uint32_t k = 0;
    cJSON_ArrayForEach(it, a) {
        char w[64];
        snprintf(w, sizeof w, "neuron %u: %s[%u]", uid, what, k);
        uint64_t j, val;
        if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 2)
            return ts_fail(e, TS_EINVAL, "yuma input: %s: expected [uid, value]", w);
        int rc = json_uint_max(cJSON_GetArrayItem(it, 0), w, 65535, &j, e);
        if (!rc) rc = json_uint_max(cJSON_GetArrayItem(it, 1), w, 65535, &val, e);
        if (rc) return rc;
        if (j >= n)
            return ts_fail(e, TS_EINVAL, "yuma input: neuron %u: %s name uid %" PRIu64 ", but there are %u neurons", uid,
                           what, j, n);
        row->e[k].uid = (uint16_t)j;
        row->e[k++].value = (uint16_t)val;
        row->n = k;
    }
    qsort(row->e, row->n, sizeof *row->e, entry_cmp);
    for (uint32_t t = 1; t < row->n; t++)
        if (row->e[t].uid == row->e[t - 1].uid)
            return ts_fail(e, TS_EINVAL, "yuma input: neuron %u: %s: uid %u twice", uid, what, row->e[t].uid);
    return TS_OK;
}

static bool key_in(const char *k, const char *const *keys, size_t nk) {
    for (size_t i = 0; i < nk; i++)
        if (!strcmp(k, keys[i])) return true;
    return false;
}

static int check_keys(const cJSON *o, const char *const *keys, size_t nk, const char *where, ts_err *e) {
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        if (!it->string || !key_in(it->string, keys, nk))
            return ts_fail(e, TS_EINVAL, "yuma input: %s: unknown key '%s'", where, it->string ? it->string : "");
    }
    return TS_OK;
}

void yuma_input_free(yuma_input *in) {
    if (!in) return;
    free((void *)in->stake);
    free((void *)in->last_update);
    free((void *)in->registered);
    free((void *)in->validator_permit);
    yuma_row *rows[2] = {(yuma_row *)in->weights, (yuma_row *)in->bonds};
    for (int r = 0; r < 2; r++) {
        if (rows[r])
            for (uint32_t i = 0; i < in->n; i++) free(rows[r][i].e);
        free(rows[r]);
    }
    memset(in, 0, sizeof *in);
}

int yuma_input_from_json(const void *json, yuma_params *p, yuma_input *in, ts_err *e) {
    const cJSON *j = json;
    if (!in || !p) return ts_fail(e, TS_EINVAL, "yuma input: no destination");
    memset(in, 0, sizeof *in);
    yuma_params_default(p);
    if (!cJSON_IsObject(j)) return ts_fail(e, TS_EINVAL, "yuma input: expected a JSON object");
    static const char *const top[] = {"block", "emission", "params", "neurons"};
    static const char *const pk[] = {"kappa", "bonds_moving_average", "activity_cutoff", "max_validators"};
    static const char *const nk[] = {"stake", "last_update", "registered", "validator_permit", "weights", "bonds"};
    int rc = check_keys(j, top, 4, "top level", e);
    if (rc) return rc;
    if ((rc = json_u64(cJSON_GetObjectItemCaseSensitive(j, "block"), "block", &in->block, e)) ||
        (rc = json_u64(cJSON_GetObjectItemCaseSensitive(j, "emission"), "emission", &in->emission, e)))
        return rc;
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(j, "params");
    if (pj) {
        if (!cJSON_IsObject(pj)) return ts_fail(e, TS_EINVAL, "yuma input: params: expected an object");
        if ((rc = check_keys(pj, pk, 4, "params", e))) return rc;
        const cJSON *x;
        uint64_t t;
        if ((x = cJSON_GetObjectItemCaseSensitive(pj, "kappa"))) {
            if ((rc = json_uint_max(x, "params.kappa", 65535, &t, e))) return rc;
            p->kappa = (uint16_t)t;
        }
        if ((x = cJSON_GetObjectItemCaseSensitive(pj, "bonds_moving_average"))) {
            if ((rc = json_uint_max(x, "params.bonds_moving_average", 1000000, &t, e))) return rc;
            p->bonds_moving_average = t;
        }
        if ((x = cJSON_GetObjectItemCaseSensitive(pj, "activity_cutoff")) &&
            (rc = json_u64(x, "params.activity_cutoff", &p->activity_cutoff, e)))
            return rc;
        if ((x = cJSON_GetObjectItemCaseSensitive(pj, "max_validators"))) {
            if ((rc = json_uint_max(x, "params.max_validators", 65535, &t, e))) return rc;
            p->max_validators = (uint16_t)t;
        }
    }
    const cJSON *nj = cJSON_GetObjectItemCaseSensitive(j, "neurons");
    if (!cJSON_IsArray(nj)) return ts_fail(e, TS_EINVAL, "yuma input: neurons: expected an array");
    int cnt = cJSON_GetArraySize(nj);
    if (cnt < 1 || cnt > YUMA_MAX_UIDS)
        return ts_fail(e, TS_EINVAL, "yuma input: neurons: %d of them, outside 1..%u", cnt, YUMA_MAX_UIDS);
    uint32_t n = (uint32_t)cnt;
    uint64_t *stake = calloc(n, sizeof *stake), *lu = calloc(n, sizeof *lu), *reg = calloc(n, sizeof *reg);
    bool *vp = calloc(n, sizeof *vp);
    yuma_row *w = calloc(n, sizeof *w), *b = calloc(n, sizeof *b);
    in->n = n;
    in->stake = stake;
    in->last_update = lu;
    in->registered = reg;
    in->validator_permit = vp;
    in->weights = w;
    in->bonds = b;
    if (!stake || !lu || !reg || !vp || !w || !b) {
        yuma_input_free(in);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    const cJSON *it;
    uint32_t i = 0;
    cJSON_ArrayForEach(it, nj) {
        char what[48];
        if (!cJSON_IsObject(it)) {
            rc = ts_fail(e, TS_EINVAL, "yuma input: neuron %u: expected an object", i);
            break;
        }
        snprintf(what, sizeof what, "neuron %u", i);
        if ((rc = check_keys(it, nk, 6, what, e))) break;
        const cJSON *x;
        snprintf(what, sizeof what, "neuron %u: stake", i);
        if ((x = cJSON_GetObjectItemCaseSensitive(it, "stake")) && (rc = json_u64(x, what, &stake[i], e))) break;
        snprintf(what, sizeof what, "neuron %u: last_update", i);
        if ((x = cJSON_GetObjectItemCaseSensitive(it, "last_update")) && (rc = json_u64(x, what, &lu[i], e))) break;
        snprintf(what, sizeof what, "neuron %u: registered", i);
        if ((x = cJSON_GetObjectItemCaseSensitive(it, "registered")) && (rc = json_u64(x, what, &reg[i], e))) break;
        if ((x = cJSON_GetObjectItemCaseSensitive(it, "validator_permit"))) {
            if (!cJSON_IsBool(x)) {
                rc = ts_fail(e, TS_EINVAL, "yuma input: neuron %u: validator_permit: expected true or false", i);
                break;
            }
            vp[i] = cJSON_IsTrue(x);
        }
        if ((rc = json_row(cJSON_GetObjectItemCaseSensitive(it, "weights"), n, i, "weights", &w[i], e)) ||
            (rc = json_row(cJSON_GetObjectItemCaseSensitive(it, "bonds"), n, i, "bonds", &b[i], e)))
            break;
        i++;
    }
    if (rc) yuma_input_free(in);
    return rc;
}

/* Text with exact integers (a u64 past 2^53 printed in full). */
char *yuma_output_to_json(const yuma_output *o) {
    if (!o) return NULL;
    ts_sbuf s = {malloc(4096), 0, 4096, false};
    if (!s.p) return NULL;
    s.p[0] = 0;
    ts_sbuf_printf(&s, "{\"neurons\": [");
    for (uint32_t i = 0; i < o->n; i++) {
        ts_sbuf_printf(&s,
             "%s\n  {\"uid\": %u, \"active\": %s, \"validator_permit\": %s, \"rank\": %u, \"trust\": %u, "
                  "\"consensus\": %u, \"incentive\": %u, \"dividends\": %u, \"validator_trust\": %u, "
                  "\"pruning_score\": %u, \"emission\": %" PRIu64 ", \"server_emission\": %" PRIu64
                  ", \"validator_emission\": %" PRIu64 ", \"bonds\": [",
                  i ? "," : "", i, o->active[i] ? "true" : "false", o->validator_permit[i] ? "true" : "false",
                  o->rank[i], o->trust[i], o->consensus[i], o->incentive[i], o->dividends[i], o->validator_trust[i],
                  o->pruning_score[i], o->emission[i], o->server_emission[i], o->validator_emission[i]);
        for (uint32_t t = 0; t < o->bonds[i].n; t++)
            ts_sbuf_printf(&s, "%s[%u, %u]", t ? ", " : "", o->bonds[i].e[t].uid, o->bonds[i].e[t].value);
        ts_sbuf_printf(&s, "]}");
    }
    ts_sbuf_printf(&s, "\n]}\n");
    if (s.oom) {
        free(s.p);
        return NULL;
    }
    return s.p;
}
