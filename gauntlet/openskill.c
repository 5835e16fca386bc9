/* openskill.c - Weng-Lin ratings as openskill.py 6.1.3 / 6.2.0 compute them.
 *
 * docs/OPENSKILL.md (in the shared docs) is the specification; the section
 * numbers below refer to it.  Matching the library to 1e-9 relative (in
 * practice bit for bit on x86-64 glibc) depends on semantics more than on
 * arithmetic: the score-to-rank conversion with the 6.1.3 zero-score quirk,
 * the per-version tie rule, int() truncation of Plackett-Luce ranks, the
 * tau = 0 fallback.  The arithmetic keeps the library's evaluation order:
 * pow(x, 2.0) where Python writes x**2, x*x where it multiplies, left-to-right
 * sums, real divisions.  The build uses -ffp-contract=off (no FMA).
 *
 * The partial-pairing models (not in the specification) were derived from
 * the upstream fixtures: each team is compared with the teams within
 * window_size places of it in the sorted order, with Bradley-Terry or
 * Thurstone-Mosteller pair terms (the latter with c = 2 sqrt(...)), and the
 * sums are divided by the number of teams compared. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gauntlet.h"

#define OS_EPS 2.220446049250313e-16
#define OS_SQRT2 1.4142135623730951

static const char *const model_names[OS_MODEL_COUNT] = {
    "plackett-luce", "bradley-terry-full", "thurstone-mosteller-full",
    "bradley-terry-part", "thurstone-mosteller-part",
};

const char *os_model_name(os_model_kind kind) {
    return (unsigned)kind < OS_MODEL_COUNT ? model_names[kind] : "?";
}

int os_model_parse(const char *name, os_model_kind *kind) {
    for (int i = 0; i < OS_MODEL_COUNT; i++)
        if (!strcmp(name, model_names[i])) {
            *kind = (os_model_kind)i;
            return 0;
        }
    return -1;
}

const char *os_version_name(os_version v) { return v == OS_V6_2_0 ? "6.2.0" : "6.1.3"; }

int os_version_parse(const char *s, os_version *v) {
    if (!strcmp(s, "6.1.3")) *v = OS_V6_1_3;
    else if (!strcmp(s, "6.2.0")) *v = OS_V6_2_0;
    else return -1;
    return 0;
}

void os_model_init(os_model *m, os_model_kind kind, os_version version) {
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->version = version;
    m->mu = 25.0;
    m->sigma = 25.0 / 3.0;
    m->beta = 25.0 / 6.0;
    m->kappa = 0.0001;
    m->tau = 25.0 / 300.0;
    m->margin = 0.0;
    m->epsilon = 0.1;
    m->limit_sigma = false;
    m->balance = false;
    m->weight_bounds = true;
    m->window_size = 4;
}

/* ---------------------------------------------------------- statistics (§2) */

double os_phi_major(double x) { return 0.5 * (1.0 + erf(x / OS_SQRT2)); }

double os_phi_minor(double x) { return exp((x * x) / -2.0) / sqrt(2.0 * M_PI); }

/* Wichura's AS241 (PPND16), as CPython's statistics module evaluates it. */
double os_phi_major_inverse(double p) {
    double q = p - 0.5, r, num, den, x;
    if (fabs(q) <= 0.425) {
        r = 0.180625 - q * q;
        num = (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r +
                    6.7265770927008700853e+4) * r + 4.5921953931549871457e+4) * r +
                  1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r +
                1.3314166789178437745e+2) * r + 3.3871328727963666080e+0) * q;
        den = ((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r +
                    3.9307895800092710610e+4) * r + 2.1213794301586595867e+4) * r +
                  5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r +
                4.2313330701600911252e+1) * r + 1.0;
        x = num / den;
        return 0.0 + (x * 1.0);
    }
    r = q <= 0.0 ? p : 1.0 - p;
    r = sqrt(-log(r));
    if (r <= 5.0) {
        r = r - 1.6;
        num = ((((((7.7454501427834140764e-4 * r + 2.2723844989269184583e-2) * r +
                    2.4178072517745061177e-1) * r + 1.2704582524523684e+0) * r +
                  3.6478483247632045e+0) * r + 5.7694972214606914055e+0) * r +
                4.6303378461565452959e+0) * r + 1.4234371107496835773e+0;
        den = ((((((1.0507500716444168432e-9 * r + 5.4759380849953449460e-4) * r +
                    1.5198666563616457197e-2) * r + 1.4810397642748007459e-1) * r +
                  6.8976733498510000455e-1) * r + 1.6763848301838038494e+0) * r +
                2.0531916266377588219e+0) * r + 1.0;
    } else {
        r = r - 5.0;
        num = ((((((2.0103343992922881327e-7 * r + 2.7115555687434875782e-5) * r +
                    1.2426609473880784386e-3) * r + 2.6532189526576123093e-2) * r +
                  2.9656057182850489123e-1) * r + 1.7848265399172913358e+0) * r +
                5.4637849111641143699e+0) * r + 6.6579046435011037772e+0;
        den = ((((((2.0442631033899397856e-15 * r + 1.4215117583164458887e-7) * r +
                    1.8463183175100546818e-5) * r + 7.8686913114561329059e-4) * r +
                  1.4875361290850614853e-2) * r + 1.3692988092273580531e-1) * r +
                5.9983220655588793769e-1) * r + 1.0;
    }
    x = num / den;
    if (q < 0.0) x = -x;
    return 0.0 + (x * 1.0);
}

static double tm_v(double x, double t) {
    double xt = x - t, d = os_phi_major(xt);
    return d < OS_EPS ? -xt : os_phi_minor(xt) / d;
}

static double tm_w(double x, double t) {
    double xt = x - t, d = os_phi_major(xt);
    if (d < OS_EPS) return x < 0 ? 1.0 : 0.0;
    return tm_v(x, t) * (tm_v(x, t) + xt);
}

static double tm_vt(double x, double t) {
    double xx = fabs(x);
    double b = os_phi_major(t - xx) - os_phi_major(-t - xx);
    if (b < 1e-5) return x < 0 ? (-x - t) : (-x + t);
    double a = os_phi_minor(-t - xx) - os_phi_minor(t - xx);
    return (x < 0 ? -a : a) / b;
}

static double tm_wt(double x, double t) {
    double xx = fabs(x);
    double b = os_phi_major(t - xx) - os_phi_major(-t - xx);
    if (b < OS_EPS) return 1.0;
    return ((t - xx) * os_phi_minor(t - xx) + (t + xx) * os_phi_minor(-t - xx)) / b +
           tm_vt(x, t) * tm_vt(x, t);
}

/* Python max(x, k): x when x is NaN. */
static double pymax(double x, double k) { return k > x ? k : x; }

/* ------------------------------------------------------------- helpers */

/* §3.3: rank[i] = #{j : key[j] < key[i]}; 6.1.3 replaces a key equal to 0
 * by its position. */
static void competition_ranks(const double *vals, int k, os_version v, double *key,
                              double *out) {
    for (int i = 0; i < k; i++) key[i] = (v == OS_V6_1_3 && vals[i] == 0.0) ? (double)i : vals[i];
    for (int i = 0; i < k; i++) {
        int c = 0;
        for (int j = 0; j < k; j++)
            if (key[j] < key[i]) c++;
        out[i] = c;
    }
}

/* Stable argsort by value (ascending). */
static void stable_argsort(const double *v, int k, int *perm) {
    for (int i = 0; i < k; i++) perm[i] = i;
    for (int i = 1; i < k; i++) { /* insertion sort: stable, k is small */
        int p = perm[i], j = i - 1;
        while (j >= 0 && v[perm[j]] > v[p]) {
            perm[j + 1] = perm[j];
            j--;
        }
        perm[j + 1] = p;
    }
}

/* §6 normalize(v, lo, hi) */
static void normalize_weights(const double *w, int n, double lo, double hi, double *out) {
    if (n == 1) {
        out[0] = hi;
        return;
    }
    double mx = w[0], mn = w[0];
    for (int i = 1; i < n; i++) {
        if (w[i] > mx) mx = w[i];
        if (w[i] < mn) mn = w[i];
    }
    double rng = mx - mn;
    if (rng == 0) rng = 0.0001;
    for (int i = 0; i < n; i++) out[i] = (((w[i] - mn) / rng) * (hi - lo)) + lo;
}

typedef struct team_val {
    double mu, s2;
} team_val;

/* §4: team mu and sigma^2 over players sorted by ordinal descending. */
static void team_rating(const os_model *m, const os_rating *pl, int n, int *order, team_val *tv) {
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) { /* stable, descending ordinal */
        int p = order[i], j = i - 1;
        while (j >= 0 && os_ordinal(pl[order[j]]) < os_ordinal(pl[p])) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = p;
    }
    double max_ord = os_ordinal(pl[order[0]]);
    double mu = 0.0, s2 = 0.0;
    for (int i = 0; i < n; i++) {
        const os_rating *p = &pl[order[i]];
        double bw = m->balance ? (1 + ((max_ord - os_ordinal(*p)) / (max_ord + m->kappa))) : 1.0;
        mu = mu + p->mu * bw;
        s2 = s2 + pow(p->sigma * bw, 2.0);
    }
    tv->mu = mu;
    tv->s2 = s2;
}

/* Scratch of one rate() call. */
typedef struct scratch {
    int k, np;
    int *off;          /* k+1 player offsets of the teams in compute order */
    int *order;        /* np */
    int *r;            /* k integer ranks */
    int *a;            /* k tie-group sizes */
    team_val *tv;      /* k */
    double *e, *sum_q, *adj, *omega, *delta; /* k */
} scratch;

/* §6: updates the players of team i (in place in pl). */
static void update_team(const os_model *m, os_rating *pl, int n, const double *w, double s2_T,
                        double omega, double delta) {
    for (int j = 0; j < n; j++) {
        double wt = w ? w[j] : 1.0;
        double frac = pow(pl[j].sigma, 2.0) / s2_T;
        if (omega >= 0) {
            pl[j].mu = pl[j].mu + (frac * omega) * wt;
            pl[j].sigma = pl[j].sigma * sqrt(pymax(1 - (frac * delta) * wt, m->kappa));
        } else {
            pl[j].mu = pl[j].mu + (frac * omega) / wt;
            pl[j].sigma = pl[j].sigma * sqrt(pymax(1 - (frac * delta) / wt, m->kappa));
        }
    }
}

/* §5 Plackett-Luce.  T: players in compute order (updated in place); R:
 * sorted rank values or NULL; S: scores as compute receives them or NULL. */
static int compute_pl(const os_model *m, scratch *x, os_rating *T, const double *R,
                      const double *S, const double *W, ts_err *e) {
    int k = x->k;
    for (int i = 0; i < k; i++) {
        if (R) {
            if (!(fabs(R[i]) < 9.0e15)) return ts_fail(e, TS_EINVAL, "rank %g out of range", R[i]);
            x->r[i] = (int)(int64_t)R[i]; /* int(): truncation toward zero */
        } else {
            x->r[i] = i;
        }
        team_rating(m, T + x->off[i], x->off[i + 1] - x->off[i], x->order, &x->tv[i]);
    }
    double b2 = pow(m->beta, 2.0), acc = 0.0;
    for (int i = 0; i < k; i++) acc = acc + (x->tv[i].s2 + b2);
    double c = sqrt(acc);
    for (int i = 0; i < k; i++) {
        x->adj[i] = x->tv[i].mu;
        if (S && m->margin > 0) {
            double mm = 0.0;
            int n = 0;
            for (int j = 0; j < k; j++) {
                if (j == i) continue;
                double d = fabs(S[i] - S[j]);
                if (d > 0) {
                    double f = (d > m->margin && m->margin > 0) ? log1p(d / m->margin) : 1.0;
                    double mi = x->tv[i].mu, mj = x->tv[j].mu;
                    if (m->version == OS_V6_2_0) {
                        if (S[i] > S[j]) mm = mm - (mi - mj) * (f - 1.0);
                        else mm = mm + (mj - mi) * (f - 1.0);
                    } else {
                        if (S[i] > S[j]) mm = mm + (mi - mj) * (f - 1.0);
                        else mm = mm - (mj - mi) * (f - 1.0);
                    }
                    n++;
                }
            }
            x->adj[i] = x->tv[i].mu + (n ? mm / n : mm);
        }
        x->e[i] = exp(x->adj[i] / c);
        if (!isfinite(x->e[i])) return ts_fail(e, TS_EINVAL, "exp(mu/c) overflows (mu %g)", x->adj[i]);
    }
    for (int q = 0; q < k; q++) {
        double s = 0.0;
        int cnt = 0;
        for (int i = 0; i < k; i++) {
            if (x->r[i] >= x->r[q]) s = s + x->e[i];
            if (x->r[i] == x->r[q]) cnt++;
        }
        if (s == 0.0) return ts_fail(e, TS_EINVAL, "division by zero (sum_q underflows)");
        x->sum_q[q] = s;
        x->a[q] = cnt;
    }
    for (int i = 0; i < k; i++) {
        double omega = 0.0, delta = 0.0;
        for (int q = 0; q < k; q++) {
            double p = x->e[i] / x->sum_q[q];
            if (x->r[q] <= x->r[i]) {
                delta = delta + (p * (1 - p)) / x->a[q];
                bool same = m->version == OS_V6_1_3 ? x->r[q] == x->r[i] : q == i;
                if (same) omega = omega + (1 - p) / x->a[q];
                else omega = omega - p / x->a[q];
            }
        }
        double s2 = x->tv[i].s2;
        omega = omega * (s2 / c);
        delta = delta * (s2 / pow(c, 2.0));
        double g = sqrt(s2) / c;
        delta = delta * g;
        x->omega[i] = omega;
        x->delta[i] = delta;
    }
    for (int i = 0; i < k; i++) {
        int n = x->off[i + 1] - x->off[i];
        if (x->tv[i].s2 == 0.0) return ts_fail(e, TS_EINVAL, "division by zero (team variance 0)");
        update_team(m, T + x->off[i], n, W ? W + x->off[i] : NULL, x->tv[i].s2, x->omega[i],
                    x->delta[i]);
    }
    return TS_OK;
}

/* §7, §8 and the partial-pairing variants. */
static int compute_pairwise(const os_model *m, scratch *x, os_rating *T, const double *R,
                            const double *S, const double *W, ts_err *e) {
    int k = x->k;
    bool tm = m->kind == OS_THURSTONE_MOSTELLER_FULL || m->kind == OS_THURSTONE_MOSTELLER_PART;
    bool part = m->kind == OS_BRADLEY_TERRY_PART || m->kind == OS_THURSTONE_MOSTELLER_PART;
    if (R) {
        double *key = x->e, *rk = x->sum_q; /* reuse scratch */
        competition_ranks(R, k, m->version, key, rk);
        for (int i = 0; i < k; i++) x->r[i] = (int)rk[i];
    } else {
        for (int i = 0; i < k; i++) x->r[i] = i;
    }
    for (int i = 0; i < k; i++)
        team_rating(m, T + x->off[i], x->off[i + 1] - x->off[i], x->order, &x->tv[i]);
    double b2 = pow(m->beta, 2.0);
    bool use_margin = S && m->margin > 0;
    for (int i = 0; i < k; i++) {
        double omega = 0.0, delta = 0.0;
        int lo = 0, hi = k - 1, npairs = 0;
        if (part) {
            int w = m->window_size;
            lo = i - w < 0 ? 0 : i - w;
            hi = i + w > k - 1 ? k - 1 : i + w;
        }
        double mi = x->tv[i].mu, si = x->tv[i].s2;
        for (int q = lo; q <= hi; q++) {
            if (q == i) continue;
            npairs++;
            double mq = x->tv[q].mu, sq = x->tv[q].s2;
            double ciq = sqrt(si + sq + (2 * b2));
            if (m->kind == OS_THURSTONE_MOSTELLER_PART) ciq = 2 * ciq;
            double ssc = si / ciq;
            double g = sqrt(si) / ciq;
            /* margin factor (6.2.0 divides by D, 6.1.3 multiplies by F) */
            double mf = 1.0;
            bool divide = false;
            if (use_margin) {
                double d = fabs(S[i] - S[q]);
                if (m->version == OS_V6_2_0) {
                    if (d > m->margin) {
                        mf = log1p(d / m->margin);
                        divide = true;
                    }
                } else if (d > 0 && x->r[q] < x->r[i] && d > m->margin) {
                    mf = log1p(d / m->margin);
                }
            }
            if (!tm) {
                double MU = divide ? (mq - mi) / mf : (mq - mi) * mf;
                double ex = exp(MU / ciq);
                if (!isfinite(ex)) return ts_fail(e, TS_EINVAL, "exp overflows in a pair term");
                double piq = 1 / (1 + ex);
                double s = x->r[q] > x->r[i] ? 1.0 : x->r[q] == x->r[i] ? 0.5 : 0.0;
                omega = omega + ssc * (s - piq);
                delta = delta + (((g * ssc) / ciq) * piq) * (1 - piq);
            } else {
                double dmu = (mi - mq) / ciq;
                double t = m->epsilon / ciq;
                double xx = divide ? dmu / mf : dmu * mf;
                double nx = divide ? (-dmu) / mf : (-dmu) * mf;
                if (x->r[q] > x->r[i]) {
                    omega = omega + ssc * tm_v(xx, t);
                    delta = delta + ((g * ssc) / ciq) * tm_w(xx, t);
                } else if (x->r[q] < x->r[i]) {
                    omega = omega + (-ssc) * tm_v(nx, t);
                    delta = delta + ((g * ssc) / ciq) * tm_w(nx, t);
                } else {
                    omega = omega + ssc * tm_vt(xx, t);
                    delta = delta + ((g * ssc) / ciq) * tm_wt(xx, t);
                }
            }
        }
        if (part && npairs > 0) {
            omega = omega / npairs;
            delta = delta / npairs;
        }
        x->omega[i] = omega;
        x->delta[i] = delta;
    }
    for (int i = 0; i < k; i++) {
        if (x->tv[i].s2 == 0.0) return ts_fail(e, TS_EINVAL, "division by zero (team variance 0)");
        update_team(m, T + x->off[i], x->off[i + 1] - x->off[i], W ? W + x->off[i] : NULL,
                    x->tv[i].s2, x->omega[i], x->delta[i]);
    }
    return TS_OK;
}

static int check_model(const os_model *m, ts_err *e) {
    if ((unsigned)m->kind >= OS_MODEL_COUNT) return ts_fail(e, TS_EINVAL, "unknown OpenSkill model");
    if (m->version != OS_V6_1_3 && m->version != OS_V6_2_0)
        return ts_fail(e, TS_EINVAL, "unknown OpenSkill version");
    if (!isfinite(m->mu) || !(m->sigma > 0) || !isfinite(m->sigma))
        return ts_fail(e, TS_EINVAL, "model mu and sigma must be finite and sigma positive");
    if (!isfinite(m->beta) || !isfinite(m->kappa) || !isfinite(m->tau) || !isfinite(m->margin) ||
        !isfinite(m->epsilon))
        return ts_fail(e, TS_EINVAL, "model parameters must be finite");
    if (m->margin < 0) return ts_fail(e, TS_EINVAL, "margin must not be negative");
    if (m->window_size < 1) return ts_fail(e, TS_EINVAL, "window_size must be at least 1");
    return TS_OK;
}

static int check_teams(int nteams, const int *sizes, const os_rating *r, int *np, ts_err *e) {
    if (nteams < 2) return ts_fail(e, TS_EINVAL, "a match needs at least 2 teams (got %d)", nteams);
    if (nteams > 100000) return ts_fail(e, TS_ETOOBIG, "too many teams (%d)", nteams);
    int n = 0;
    for (int t = 0; t < nteams; t++) {
        if (sizes[t] < 1) return ts_fail(e, TS_EINVAL, "team %d is empty", t);
        if (sizes[t] > 100000 || n > 1000000) return ts_fail(e, TS_ETOOBIG, "too many players");
        n += sizes[t];
    }
    for (int i = 0; i < n; i++)
        if (!isfinite(r[i].mu) || !isfinite(r[i].sigma) || r[i].sigma < 0)
            return ts_fail(e, TS_EINVAL, "player %d: mu and sigma must be finite, sigma >= 0", i);
    *np = n;
    return TS_OK;
}

int os_rate(const os_model *m, const os_match *mt, os_rating *out, ts_err *e) {
    int rc = check_model(m, e);
    if (rc) return rc;
    int k = mt->nteams, np = 0;
    if (k < 2 || !mt->team_sizes || !mt->ratings)
        return ts_fail(e, TS_EINVAL, "a match needs at least 2 teams (got %d)", k);
    if ((rc = check_teams(k, mt->team_sizes, mt->ratings, &np, e))) return rc;
    if (mt->ranks && mt->scores) return ts_fail(e, TS_EINVAL, "give ranks or scores, not both");
    for (int i = 0; i < k; i++) {
        if (mt->ranks && !isfinite(mt->ranks[i])) return ts_fail(e, TS_EINVAL, "rank %d is not finite", i);
        if (mt->scores && !isfinite(mt->scores[i])) return ts_fail(e, TS_EINVAL, "score %d is not finite", i);
    }
    if (mt->weights)
        for (int i = 0; i < np; i++)
            if (!isfinite(mt->weights[i])) return ts_fail(e, TS_EINVAL, "weight %d is not finite", i);
    if (mt->tau && !isfinite(*mt->tau)) return ts_fail(e, TS_EINVAL, "tau is not finite");

    scratch x = {.k = k, .np = np};
    size_t kk = (size_t)k;
    /* 6 int arrays of k+1, np ints, k team values, 10 double arrays of k,
     * np ratings and np weights, plus alignment padding per piece */
    void *blk = calloc(1, (kk + 1) * sizeof(int) * 6 + (size_t)np * sizeof(int) +
                              kk * sizeof(team_val) + kk * sizeof(double) * 10 +
                              (size_t)np * (sizeof(os_rating) + sizeof(double)) + 32 * 8);
    if (!blk) return ts_fail(e, TS_ENOMEM, "out of memory");
    uint8_t *p = blk;
#define CARVE(ptr, n) do { ptr = (void *)p; p += (n); p += (8 - ((uintptr_t)p & 7)) & 7; } while (0)
    int *perm, *off_in;
    double *R, *Rv, *key, *Sv, *Wn;
    os_rating *T;
    CARVE(x.off, (kk + 1) * sizeof(int));
    CARVE(off_in, (kk + 1) * sizeof(int));
    CARVE(x.r, kk * sizeof(int));
    CARVE(x.a, kk * sizeof(int));
    CARVE(perm, kk * sizeof(int));
    CARVE(x.order, (size_t)np * sizeof(int));
    CARVE(x.tv, kk * sizeof(team_val));
    CARVE(x.e, kk * sizeof(double));
    CARVE(x.sum_q, kk * sizeof(double));
    CARVE(x.adj, kk * sizeof(double));
    CARVE(x.omega, kk * sizeof(double));
    CARVE(x.delta, kk * sizeof(double));
    CARVE(R, kk * sizeof(double));
    CARVE(Rv, kk * sizeof(double));
    CARVE(key, kk * sizeof(double));
    CARVE(Sv, kk * sizeof(double));
    CARVE(T, (size_t)np * sizeof(os_rating));
    CARVE(Wn, (size_t)np * sizeof(double));
#undef CARVE
    (void)Sv;

    off_in[0] = 0;
    for (int t = 0; t < k; t++) off_in[t + 1] = off_in[t] + mt->team_sizes[t];

    /* §3.2 tau inflation on a copy */
    double tau_e = (mt->tau && *mt->tau != 0) ? *mt->tau : m->tau;
    double t2 = tau_e * tau_e;
    os_rating *Tin = out; /* work in out, in input layout */
    for (int i = 0; i < np; i++) {
        Tin[i].mu = mt->ratings[i].mu;
        Tin[i].sigma = sqrt(mt->ratings[i].sigma * mt->ratings[i].sigma + t2);
    }
    const double *ranks = NULL;
    if (mt->ranks) {
        ranks = mt->ranks;
    } else if (mt->scores) {
        for (int i = 0; i < k; i++) Rv[i] = -mt->scores[i];
        competition_ranks(Rv, k, m->version, key, R);
        ranks = R;
    }
    const double *Win = NULL;
    if (mt->weights) {
        if (m->version == OS_V6_1_3 || m->weight_bounds) {
            for (int t = 0; t < k; t++)
                normalize_weights(mt->weights + off_in[t], mt->team_sizes[t], 1.0, 2.0,
                                  Wn + off_in[t]);
        } else {
            memcpy(Wn, mt->weights, (size_t)np * sizeof(double));
        }
        Win = Wn;
    }

    int (*compute)(const os_model *, scratch *, os_rating *, const double *, const double *,
                   const double *, ts_err *) =
        m->kind == OS_PLACKETT_LUCE ? compute_pl : compute_pairwise;

    if (ranks) {
        stable_argsort(ranks, k, perm);
        /* teams, weights and (6.2.0) scores in sorted order */
        double *Ws = Win ? malloc((size_t)np * sizeof(double)) : NULL;
        double *Ss = mt->scores ? malloc(kk * sizeof(double)) : NULL;
        double *Rs = malloc(kk * sizeof(double));
        if ((Win && !Ws) || (mt->scores && !Ss) || !Rs) {
            free(Ws);
            free(Ss);
            free(Rs);
            free(blk);
            return ts_fail(e, TS_ENOMEM, "out of memory");
        }
        int at = 0;
        x.off[0] = 0;
        for (int j = 0; j < k; j++) {
            int t = perm[j], n = mt->team_sizes[t];
            memcpy(T + at, Tin + off_in[t], (size_t)n * sizeof(os_rating));
            if (Ws) memcpy(Ws + at, Win + off_in[t], (size_t)n * sizeof(double));
            at += n;
            x.off[j + 1] = at;
            Rs[j] = ranks[t];
            if (Ss) Ss[j] = m->version == OS_V6_2_0 ? mt->scores[t] : mt->scores[j];
        }
        /* sorted rank values */
        rc = compute(m, &x, T, Rs, Ss, Ws, e);
        if (rc == TS_OK)
            for (int j = 0; j < k; j++) {
                int t = perm[j];
                memcpy(Tin + off_in[t], T + x.off[j], (size_t)mt->team_sizes[t] * sizeof(os_rating));
            }
        free(Ws);
        free(Ss);
        free(Rs);
    } else {
        memcpy(x.off, off_in, (kk + 1) * sizeof(int));
        rc = compute(m, &x, Tin, NULL, NULL, Win, e);
    }
    if (rc == TS_OK) {
        bool ls = mt->limit_sigma >= 0 ? mt->limit_sigma != 0 : m->limit_sigma;
        if (ls)
            for (int i = 0; i < np; i++)
                if (mt->ratings[i].sigma < out[i].sigma) out[i].sigma = mt->ratings[i].sigma;
        for (int i = 0; i < np; i++)
            if (!isfinite(out[i].mu) || !isfinite(out[i].sigma)) {
                rc = ts_fail(e, TS_EINVAL, "the update is not finite (degenerate input)");
                break;
            }
    }
    free(blk);
    return rc;
}

/* ------------------------------------------------------------ predictions */

static int team_values(const os_model *m, int nteams, const int *sizes, const os_rating *r,
                       team_val **tv_out, ts_err *e) {
    int rc = check_model(m, e), np = 0;
    if (rc) return rc;
    if ((rc = check_teams(nteams, sizes, r, &np, e))) return rc;
    team_val *tv = malloc((size_t)nteams * sizeof *tv);
    int *order = malloc((size_t)np * sizeof(int));
    if (!tv || !order) {
        free(tv);
        free(order);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    int at = 0;
    for (int t = 0; t < nteams; t++) {
        team_rating(m, r + at, sizes[t], order, &tv[t]);
        at += sizes[t];
    }
    free(order);
    *tv_out = tv;
    return TS_OK;
}

static double pair_phi(const os_model *m, const team_val *a, const team_val *b) {
    return os_phi_major((a->mu - b->mu) / sqrt(2 * pow(m->beta, 2.0) + a->s2 + b->s2));
}

int os_predict_win(const os_model *m, int n, const int *sizes, const os_rating *r, double *win,
                   ts_err *e) {
    team_val *tv;
    int rc = team_values(m, n, sizes, r, &tv, e);
    if (rc) return rc;
    if (n == 2) {
        double p = pair_phi(m, &tv[0], &tv[1]);
        win[0] = p;
        win[1] = 1 - p;
        free(tv);
        return TS_OK;
    }
    double total = 0;
    for (int i = 0; i < n; i++) {
        double s = 0; /* Python sum() starts from the integer 0 */
        for (int j = 0; j < n; j++)
            if (j != i) s = s + pair_phi(m, &tv[i], &tv[j]);
        win[i] = s / (n - 1);
    }
    for (int i = 0; i < n; i++) total = total + win[i];
    for (int i = 0; i < n; i++) win[i] = win[i] / total;
    free(tv);
    return TS_OK;
}

int os_predict_rank(const os_model *m, int n, const int *sizes, const os_rating *r, int *rank,
                    double *prob, ts_err *e) {
    int rc = os_predict_win(m, n, sizes, r, prob, e);
    if (rc) return rc;
    if (n == 2) { /* predict_rank always takes the general path */
        team_val *tv;
        if ((rc = team_values(m, n, sizes, r, &tv, e))) return rc;
        double w0 = 0.0 + pair_phi(m, &tv[0], &tv[1]), w1 = 0.0 + pair_phi(m, &tv[1], &tv[0]);
        w0 = w0 / 1;
        w1 = w1 / 1;
        double t = 0.0 + w0 + w1;
        prob[0] = w0 / t;
        prob[1] = w1 / t;
        free(tv);
    }
    int *ord = malloc((size_t)n * sizeof(int));
    if (!ord) return ts_fail(e, TS_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) ord[i] = i;
    for (int i = 1; i < n; i++) { /* stable, descending probability */
        int p = ord[i], j = i - 1;
        while (j >= 0 && prob[ord[j]] < prob[p]) {
            ord[j + 1] = ord[j];
            j--;
        }
        ord[j + 1] = p;
    }
    int cur = 1;
    for (int i = 0; i < n; i++) {
        if (i > 0 && prob[ord[i]] < prob[ord[i - 1]]) cur = i + 1;
        rank[ord[i]] = cur;
    }
    free(ord);
    return TS_OK;
}

int os_predict_draw(const os_model *m, int n, const int *sizes, const os_rating *r, double *draw,
                    ts_err *e) {
    team_val *tv;
    int rc = team_values(m, n, sizes, r, &tv, e);
    if (rc) return rc;
    int N = 0;
    for (int t = 0; t < n; t++) N += sizes[t];
    double dp = 1.0 / N;
    double dm = (sqrt((double)N) * m->beta) * os_phi_major_inverse((1 + dp) / 2);
    double s = 0;
    int cnt = 0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) {
            double den = sqrt(2 * pow(m->beta, 2.0) + tv[a].s2 + tv[b].s2);
            double pr = os_phi_major(((dm - tv[a].mu) + tv[b].mu) / den) -
                        os_phi_major(((tv[b].mu - tv[a].mu) - dm) / den);
            s = s + pr;
            cnt++;
        }
    *draw = s / cnt;
    free(tv);
    return TS_OK;
}
