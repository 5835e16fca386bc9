/* prep.c - text to shards (data_prep) and the synthetic corpus (data_synth).
 *
 * Both write the same layout (docs/FORMATS.md 5.6):
 *   OUT/train/train_000000.bin ...   training split
 *   OUT/val/val_000000.bin ...       held-out split
 *   OUT/prep.json (or synth.json)    what was done; written last, so its
 *                                    presence means the corpus is complete
 * A document goes to the held-out split when the first 8 bytes of
 * BLAKE2b-64(document bytes), read as uint64 LE, are below
 * floor(val_fraction * 2^64): the split depends on content only, and exact
 * duplicates always land on the same side. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <omp.h>

#include "data.h"

#define MAX_DOC_BYTES (64u << 20)
#define SNIFF_BYTES 8192

static const char *const split_name[2] = {"train", "val"};

/* ------------------------------------------------------- the shared sink */

/* Documents are gathered into a batch, encoded on all threads (each
 * document on its own), then written in their input order: the shards are
 * the same whatever the thread count. */
#define BATCH_BYTES (8u << 20)
#define BATCH_DOCS 4096

typedef struct sink {
    data_tokenizer *tok;
    data_writer *w[2];
    uint64_t val_threshold;   /* documents with hash < this go to val */
    int threads;              /* 0: OpenMP's default */
    /* the batch: texts back to back */
    uint8_t *text;
    size_t text_n, text_cap;
    size_t *off, *len;
    bool *eot;
    data_tokens *toks;
    int ndocs, docs_cap;
    uint64_t docs[2], ntok[2];
} sink;

static uint64_t val_threshold(double f) {
    if (f <= 0) return 0;
    return (uint64_t)ldexp(f, 64); /* exact: f < 1, a power-of-two scaling */
}

static bool split_dirs_clean(const char *out, bool force, bool del, ts_err *e);

static int sink_open(sink *s, const char *out, const char *tokenizer, const char *eot,
                     uint64_t shard_tokens, double val_fraction, bool force, const char *stamp,
                     ts_err *e) {
    memset(s, 0, sizeof *s);
    if (!out || !*out) return ts_fail(e, TS_EINVAL, "no output directory given");
    if (shard_tokens < 2 || shard_tokens > DATA_MAX_SHARD_TOKENS)
        return ts_fail(e, TS_EINVAL, "shard size %llu out of range 2..%u tokens",
                       (unsigned long long)shard_tokens, DATA_MAX_SHARD_TOKENS);
    if (!(val_fraction >= 0 && val_fraction < 1))
        return ts_fail(e, TS_EINVAL, "held-out fraction %g out of range [0, 1)", val_fraction);
    int rc;
    size_t tl = tokenizer ? strlen(tokenizer) : 0;
    if (tl > 5 && !strcmp(tokenizer + tl - 5, ".json")) rc = data_tokenizer_load(tokenizer, eot, &s->tok, e);
    else if (eot) rc = ts_fail(e, TS_EINVAL, "--eot needs a tokenizer.json");
    else rc = data_tokenizer_open(tokenizer ? tokenizer : "byte", &s->tok, e);
    if (rc) return rc;
    if ((rc = ts_mkdirs(out, 0755, e))) return rc;
    /* an earlier run's stamp goes first, so an interrupted rewrite never
     * looks complete */
    char *st = ts_path_join(out, stamp);
    char *other = ts_path_join(out, strcmp(stamp, "prep.json") ? "prep.json" : "synth.json");
    if (!st || !other) {
        free(st);
        free(other);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    bool stale = ts_path_exists(st) || ts_path_exists(other);
    if (stale && !force) rc = ts_fail(e, TS_EEXIST, "%s already holds a corpus; use --force to replace it", out);
    /* check everything first; only then drop the stamp, then the shards */
    if (!rc && !split_dirs_clean(out, force, false, e)) rc = e ? e->code : TS_EEXIST;
    if (!rc && force) {
        unlink(st);
        unlink(other);
        if (!split_dirs_clean(out, force, true, e)) rc = e ? e->code : TS_EIO;
    }
    free(st);
    free(other);
    if (rc) return rc;
    for (int k = 0; k < 2 && !rc; k++) {
        char *dir = ts_path_join(out, split_name[k]);
        if (!dir) return ts_fail(e, TS_ENOMEM, "out of memory");
        rc = data_writer_open(dir, split_name[k], shard_tokens, s->tok->vocab_size, s->tok->id,
                              &s->w[k], e);
        free(dir);
    }
    s->val_threshold = val_threshold(val_fraction);
    return rc;
}

static void sink_abort(sink *s) {
    for (int k = 0; k < 2; k++) data_writer_abort(s->w[k]);
    data_tokenizer_close(s->tok);
    for (int i = 0; i < s->docs_cap; i++) data_tokens_free(&s->toks[i]);
    free(s->toks);
    free(s->text);
    free(s->off);
    free(s->len);
    free(s->eot);
    memset(s, 0, sizeof *s);
}

/* Encodes the batch (in parallel) and writes it (in order). */
static int sink_flush(sink *s, ts_err *e) {
    int n = s->ndocs, rc = TS_OK;
    if (!n) return TS_OK;
    int *rcs = calloc((size_t)n, sizeof *rcs);
    ts_err *errs = calloc((size_t)n, sizeof *errs);
    if (!rcs || !errs) {
        free(rcs);
        free(errs);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    int nt = s->threads > 0 ? s->threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (n > 1 && nt > 1)
    for (int i = 0; i < n; i++) {
        data_tokens *t = &s->toks[i];
        t->n = 0;
        rcs[i] = s->tok->encode(s->tok, s->text + s->off[i], s->len[i], 0, t, &errs[i]);
        if (!rcs[i] && s->eot[i]) rcs[i] = data_tokens_push(t, s->tok->eot, &errs[i]);
    }
    for (int i = 0; i < n && !rc; i++) {
        if (rcs[i]) {
            if (e) *e = errs[i];
            rc = rcs[i];
            break;
        }
        int k = 0;
        if (s->val_threshold) {
            uint8_t h[8];
            ts_blake2b(h, 8, s->text + s->off[i], s->len[i]);
            k = ts_get_u64(h) < s->val_threshold;
        }
        rc = data_writer_put(s->w[k], s->toks[i].v, s->toks[i].n, e);
        if (rc) break;
        s->docs[k]++;
        s->ntok[k] += s->toks[i].n;
        /* a long document's buffer is not kept */
        if (s->toks[i].cap > (1u << 20)) data_tokens_free(&s->toks[i]);
    }
    free(rcs);
    free(errs);
    s->ndocs = 0;
    s->text_n = 0;
    return rc;
}

static int sink_close(sink *s, int shards[2], ts_err *e) {
    int rc = sink_flush(s, e);
    for (int k = 0; k < 2; k++) {
        data_writer *w = s->w[k];
        s->w[k] = NULL;
        if (!w) continue;
        if (rc) data_writer_abort(w);
        else rc = data_writer_close(w, &shards[k], e);
    }
    return rc;
}

static bool all_space(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r' && p[i] != '\f' &&
            p[i] != '\v')
            return false;
    return true;
}

/* A document (+ the end-of-document token when eot) into the batch; the
 * split is picked by the text's hash when the batch is written. */
static int sink_put(sink *s, const uint8_t *text, size_t n, bool eot, ts_err *e) {
    if (s->ndocs == s->docs_cap) {
        int c = s->docs_cap ? 2 * s->docs_cap : 256;
        size_t *o = realloc(s->off, (size_t)c * sizeof *o);
        if (o) s->off = o;
        size_t *l = realloc(s->len, (size_t)c * sizeof *l);
        if (l) s->len = l;
        bool *b = realloc(s->eot, (size_t)c * sizeof *b);
        if (b) s->eot = b;
        data_tokens *t = realloc(s->toks, (size_t)c * sizeof *t);
        if (t) {
            memset(t + s->docs_cap, 0, (size_t)(c - s->docs_cap) * sizeof *t);
            s->toks = t;
        }
        if (!o || !l || !b || !t) return ts_fail(e, TS_ENOMEM, "out of memory");
        s->docs_cap = c;
    }
    if (s->text_n + n > s->text_cap) {
        size_t c = s->text_cap ? s->text_cap : BATCH_BYTES;
        while (c < s->text_n + n) c *= 2;
        uint8_t *p = realloc(s->text, c);
        if (!p) return ts_fail(e, TS_ENOMEM, "out of memory for a batch of %zu bytes", c);
        s->text = p;
        s->text_cap = c;
    }
    memcpy(s->text + s->text_n, text, n);
    s->off[s->ndocs] = s->text_n;
    s->len[s->ndocs] = n;
    s->eot[s->ndocs] = eot;
    s->ndocs++;
    s->text_n += n;
    if (s->text_n >= BATCH_BYTES || s->ndocs >= BATCH_DOCS) return sink_flush(s, e);
    return TS_OK;
}

/* One document of text; empty and whitespace-only documents are dropped. */
static int sink_doc(sink *s, const uint8_t *text, size_t n, ts_err *e) {
    if (n == 0 || all_space(text, n)) return TS_OK;
    return sink_put(s, text, n, true, e);
}

/* Output split directories must hold no shards (or, with force, only ones a
 * previous prep wrote, which del removes). */
static bool split_dirs_clean(const char *out, bool force, bool del, ts_err *e) {
    for (int k = 0; k < 2; k++) {
        char *dir = ts_path_join(out, split_name[k]);
        if (!dir) {
            ts_fail(e, TS_ENOMEM, "out of memory");
            return false;
        }
        DIR *d = opendir(dir);
        if (!d) {
            free(dir);
            continue;
        }
        struct dirent *de;
        size_t pl = strlen(split_name[k]);
        bool ok = true;
        while (ok && (de = readdir(d))) {
            const char *nm = de->d_name;
            size_t len = strlen(nm);
            if (len < 4 || strcmp(nm + len - 4, ".bin")) continue;
            bool ours = !strncmp(nm, split_name[k], pl) && nm[pl] == '_' && len == pl + 1 + 6 + 4;
            if (!force) {
                ts_fail(e, TS_EEXIST, "%s already holds shards; use --force to replace them", dir);
                ok = false;
            } else if (!ours) {
                ts_fail(e, TS_EEXIST, "%s/%s was not written by prep; remove it first", dir, nm);
                ok = false;
            }
        }
        if (ok && force && del) {
            rewinddir(d);
            while ((de = readdir(d))) {
                const char *nm = de->d_name;
                size_t len = strlen(nm);
                if (len < 4 || strcmp(nm + len - 4, ".bin")) continue;
                char *p = ts_path_join(dir, nm);
                if (p && unlink(p) && errno != ENOENT) {
                    ts_fail(e, TS_EIO, "%s: %s", p, strerror(errno));
                    ok = false;
                }
                free(p);
            }
        }
        closedir(d);
        free(dir);
        if (!ok) return false;
    }
    return true;
}

/* ------------------------------------------------------------ input files */

typedef struct flist {
    char **v;
    uint64_t *size;
    int n, cap;
} flist;

static int fl_push(flist *l, const char *p, uint64_t size, ts_err *e) {
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 64;
        char **nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (nv) l->v = nv;
        uint64_t *ns = realloc(l->size, (size_t)nc * sizeof *ns);
        if (ns) l->size = ns;
        if (!nv || !ns) return ts_fail(e, TS_ENOMEM, "out of memory");
        l->cap = nc;
    }
    l->v[l->n] = strdup(p);
    if (!l->v[l->n]) return ts_fail(e, TS_ENOMEM, "out of memory");
    l->size[l->n++] = size;
    return TS_OK;
}

static void fl_free(flist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    free(l->size);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Depth-first, each directory's entries in strcmp order; no symbolic links,
 * no hidden entries. */
static int walk(const char *dir, flist *l, int depth, ts_err *e) {
    if (depth > 64) return ts_fail(e, TS_EINVAL, "%s: directories nested too deep", dir);
    DIR *d = opendir(dir);
    if (!d) return ts_fail(e, TS_EIO, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = TS_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) {
                rc = ts_fail(e, TS_ENOMEM, "out of memory");
                break;
            }
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (!rc) qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n && !rc; i++) {
        char *p = ts_path_join(dir, names[i]);
        struct stat st;
        if (!p) rc = ts_fail(e, TS_ENOMEM, "out of memory");
        else if (lstat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode)) rc = walk(p, l, depth + 1, e);
            else if (S_ISREG(st.st_mode)) rc = fl_push(l, p, (uint64_t)st.st_size, e);
        }
        free(p);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

static int collect_inputs(const data_prep_opts *o, flist *l, ts_err *e) {
    if (o->ninputs <= 0) return ts_fail(e, TS_EINVAL, "no input files or directories given");
    for (int i = 0; i < o->ninputs; i++) {
        struct stat st;
        if (stat(o->inputs[i], &st))
            return ts_fail(e, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "%s: %s", o->inputs[i],
                           strerror(errno));
        int rc;
        if (S_ISDIR(st.st_mode)) rc = walk(o->inputs[i], l, 0, e);
        else if (S_ISREG(st.st_mode)) rc = fl_push(l, o->inputs[i], (uint64_t)st.st_size, e);
        else rc = ts_fail(e, TS_EINVAL, "%s: not a file or directory", o->inputs[i]);
        if (rc) return rc;
    }
    if (l->n == 0) return ts_fail(e, TS_ENOTFOUND, "no files found in the inputs");
    return TS_OK;
}

/* ------------------------------------------------------------------ prep */

typedef struct prog {
    bool on;
    double last, t0;
    uint64_t done, total, docs;
} prog;

static void prog_show(prog *p, const sink *s, bool force) {
    if (!p->on) return;
    double now = ts_mono();
    if (!force && now - p->last < 0.2) return;
    p->last = now;
    double f = p->total ? (double)p->done / (double)p->total : 1.0;
    char bar[31];
    int fill = (int)(f * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    char a[32], b[32], left[32] = "";
    ts_fmt_bytes(a, sizeof a, (double)p->done);
    ts_fmt_bytes(b, sizeof b, (double)p->total);
    double dt = now - p->t0;
    uint64_t tok = s->ntok[0] + s->ntok[1];
    if (dt > 1 && p->done > 0 && p->done < p->total) {
        ts_fmt_duration(left, sizeof left, dt * (double)(p->total - p->done) / (double)p->done);
        strcat(left, " left");
    }
    ts_progress("prep [%s] %3.0f%%  %s / %s  %llu documents  %.2f M tokens/s  %s", bar, 100 * f, a, b,
                (unsigned long long)(p->docs ? p->docs : s->docs[0] + s->docs[1]),
                dt > 0 ? (double)tok / dt / 1e6 : 0.0, left);
}

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static int buf_add(buf *b, const void *src, size_t n, const char *path, ts_err *e) {
    if (b->n + n > MAX_DOC_BYTES)
        return ts_fail(e, TS_ETOOBIG,
                       "%s: a document over %u MiB; split the text into documents with --doc-sep",
                       path, MAX_DOC_BYTES >> 20);
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + n) cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) return ts_fail(e, TS_ENOMEM, "out of memory");
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
    return TS_OK;
}

static bool line_is_sep(const char *line, size_t n, const char *sep) {
    if (n && line[n - 1] == '\n') n--;
    if (n && line[n - 1] == '\r') n--;
    return n == strlen(sep) && !memcmp(line, sep, n);
}

/* ------------------------------------------------------------ JSON Lines */

static size_t jl_ws(const uint8_t *p, size_t n, size_t i) {
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
    return i;
}

static int jl_hex4(const uint8_t *p, size_t n, size_t i, uint32_t *v) {
    if (i + 4 > n) return -1;
    *v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = p[i + k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

static void jl_put_cp(buf *b, uint32_t cp, bool *oom) {
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) u[0] = (uint8_t)cp, n = 1;
    else if (cp < 0x800) u[0] = (uint8_t)(0xC0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        u[0] = (uint8_t)(0xE0 | cp >> 12), u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)),
        u[2] = (uint8_t)(0x80 | (cp & 0x3F)), n = 3;
    else
        u[0] = (uint8_t)(0xF0 | cp >> 18), u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F)),
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (uint8_t)(0x80 | (cp & 0x3F)), n = 4;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? 2 * b->cap : 4096;
        while (c < b->n + n) c *= 2;
        uint8_t *q = realloc(b->p, c);
        if (!q) {
            *oom = true;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, u, n);
    b->n += n;
}

/* A JSON string at p[i] (the opening quote): decoded into out (when not
 * NULL; \u0000 kept as a NUL byte, a lone surrogate as U+FFFD); returns the
 * index after the closing quote, 0 when malformed. */
static size_t jl_string(const uint8_t *p, size_t n, size_t i, buf *out, bool *oom) {
    if (i >= n || p[i] != '"') return 0;
    i++;
    while (i < n) {
        uint8_t c = p[i];
        if (c == '"') return i + 1;
        if (c != '\\') {
            size_t j = i;
            while (j < n && p[j] != '"' && p[j] != '\\') j++;
            if (out) {
                if (out->n + (j - i) > out->cap) {
                    size_t cap = out->cap ? 2 * out->cap : 4096;
                    while (cap < out->n + (j - i)) cap *= 2;
                    uint8_t *q = realloc(out->p, cap);
                    if (!q) {
                        *oom = true;
                        return 0;
                    }
                    out->p = q;
                    out->cap = cap;
                }
                memcpy(out->p + out->n, p + i, j - i);
                out->n += j - i;
            }
            i = j;
            continue;
        }
        if (++i >= n) return 0;
        uint32_t cp;
        switch (p[i]) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (jl_hex4(p, n, i + 1, &cp)) return 0;
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (i + 2 < n && p[i + 1] == '\\' && p[i + 2] == 'u' && !jl_hex4(p, n, i + 3, &lo) &&
                    lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            break;
        default: return 0;
        }
        if (out) jl_put_cp(out, cp, oom);
        if (*oom) return 0;
        i++;
    }
    return 0;
}

/* Skips one JSON value; returns the index after it, 0 when malformed. */
static size_t jl_skip(const uint8_t *p, size_t n, size_t i) {
    bool oom = false;
    if (i >= n) return 0;
    if (p[i] == '"') return jl_string(p, n, i, NULL, &oom);
    if (p[i] == '{' || p[i] == '[') {
        int depth = 0;
        while (i < n) {
            uint8_t c = p[i];
            if (c == '"') {
                i = jl_string(p, n, i, NULL, &oom);
                if (!i) return 0;
                continue;
            }
            if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0) return i + 1;
                if (depth < 0) return 0;
            }
            i++;
        }
        return 0;
    }
    size_t j = i;
    while (j < n && p[j] != ',' && p[j] != '}' && p[j] != ']' && p[j] != ' ' && p[j] != '\t' &&
           p[j] != '\r' && p[j] != '\n')
        j++;
    return j > i ? j : 0;
}

/* The string field `field` of the JSON object on one line: 1 found (in
 * out), 2 null, 0 absent, -1 malformed, -2 not a string, -3 out of memory. */
static int jl_field(const uint8_t *p, size_t n, const char *field, buf *out) {
    size_t fl = strlen(field), i = jl_ws(p, n, 0);
    bool oom = false, found = false, null = false;
    buf key = {0};
    int rc = -1;
    if (i >= n || p[i] != '{') return -1;
    i = jl_ws(p, n, i + 1);
    if (i < n && p[i] == '}') {
        i++;
        rc = 0;
        goto tail;
    }
    for (;;) {
        key.n = 0;
        i = jl_string(p, n, i, &key, &oom);
        if (oom) goto out;
        if (!i) goto out;
        i = jl_ws(p, n, i);
        if (i >= n || p[i] != ':') goto out;
        i = jl_ws(p, n, i + 1);
        if (!found && !null && key.n == fl && !memcmp(key.p, field, fl)) {
            if (i < n && p[i] == '"') {
                i = jl_string(p, n, i, out, &oom);
                if (oom) goto out;
                found = true;
            } else if (i + 4 <= n && !memcmp(p + i, "null", 4)) {
                i += 4;
                null = true;
            } else {
                rc = -2;
                goto out;
            }
        } else {
            i = jl_skip(p, n, i);
        }
        if (!i) goto out;
        i = jl_ws(p, n, i);
        if (i < n && p[i] == ',') {
            i = jl_ws(p, n, i + 1);
            continue;
        }
        if (i < n && p[i] == '}') {
            i++;
            break;
        }
        goto out;
    }
    rc = found ? 1 : null ? 2 : 0;
tail:
    if (jl_ws(p, n, i) != n) rc = -1;
out:
    free(key.p);
    return oom ? -3 : rc;
}

/* One input file: returns 1 when skipped as binary. */
static int prep_file(const char *path, const data_prep_opts *o, sink *s, buf *doc, prog *pg,
                     ts_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return ts_fail(e, TS_EIO, "%s: %s", path, strerror(errno));
    uint8_t sniff[SNIFF_BYTES];
    size_t got = fread(sniff, 1, sizeof sniff, f);
    if (ferror(f)) {
        fclose(f);
        return ts_fail(e, TS_EIO, "%s: read error", path);
    }
    if (memchr(sniff, 0, got)) {
        fclose(f);
        return 1;
    }
    rewind(f);
    doc->n = 0;
    int rc = TS_OK;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    uint64_t lineno = 0;
    while (!rc && (len = getline(&line, &lcap, f)) > 0) {
        pg->done += (uint64_t)len;
        lineno++;
        if (o->jsonl_field) {
            if (all_space((const uint8_t *)line, (size_t)len)) continue;
            doc->n = 0;
            int r = jl_field((const uint8_t *)line, (size_t)len, o->jsonl_field, doc);
            if (r == -3) rc = ts_fail(e, TS_ENOMEM, "out of memory");
            else if (r == -1) rc = ts_fail(e, TS_EFORMAT, "%s:%llu: not a JSON object", path, (unsigned long long)lineno);
            else if (r == -2)
                rc = ts_fail(e, TS_EFORMAT, "%s:%llu: field \"%s\" is not a string", path, (unsigned long long)lineno, o->jsonl_field);
            else if (r == 0)
                rc = ts_fail(e, TS_EFORMAT, "%s:%llu: no field \"%s\" (--jsonl-field names the text)", path,
                             (unsigned long long)lineno, o->jsonl_field);
            else if (r == 1 && doc->n > MAX_DOC_BYTES)
                rc = ts_fail(e, TS_ETOOBIG, "%s:%llu: a document over %u MiB", path, (unsigned long long)lineno, MAX_DOC_BYTES >> 20);
            else if (r == 1) {
                pg->docs++;
                rc = sink_doc(s, doc->p, doc->n, e);
            }
            doc->n = 0;
        } else if (o->doc_sep && line_is_sep(line, (size_t)len, o->doc_sep)) {
            pg->docs++;
            rc = sink_doc(s, doc->p, doc->n, e);
            doc->n = 0;
        } else {
            rc = buf_add(doc, line, (size_t)len, path, e);
        }
        prog_show(pg, s, false);
    }
    if (!rc && ferror(f)) rc = ts_fail(e, TS_EIO, "%s: read error", path);
    if (!rc && !o->jsonl_field) {
        pg->docs++;
        rc = sink_doc(s, doc->p, doc->n, e);
    }
    free(line);
    fclose(f);
    return rc;
}

static cJSON *split_json(const sink *s, int k, int shards) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "documents", (double)s->docs[k]);
    cJSON_AddNumberToObject(o, "tokens", (double)s->ntok[k]);
    cJSON_AddNumberToObject(o, "shards", shards);
    return o;
}

static int write_stamp(const char *out, const char *name, cJSON *root, ts_err *e) {
    char *txt = cJSON_Print(root);
    char *p = ts_path_join(out, name);
    int rc = (!txt || !p) ? ts_fail(e, TS_ENOMEM, "out of memory")
                          : ts_write_atomic(p, txt, strlen(txt), e);
    free(txt);
    free(p);
    return rc;
}

int data_prep(const data_prep_opts *o, data_prep_stats *st, ts_err *e) {
    memset(st, 0, sizeof *st);
    double t0 = ts_mono();
    flist fl = {0};
    int rc = collect_inputs(o, &fl, e);
    if (rc) {
        fl_free(&fl);
        return rc;
    }
    sink s;
    rc = sink_open(&s, o->out_dir, o->tokenizer, o->eot, o->shard_tokens, o->val_fraction, o->force,
                   "prep.json", e);
    if (rc) {
        sink_abort(&s);
        fl_free(&fl);
        return rc;
    }
    s.threads = o->threads;
    prog pg = {.on = o->progress, .t0 = t0};
    for (int i = 0; i < fl.n; i++) pg.total += fl.size[i];
    buf doc = {0};
    for (int i = 0; i < fl.n && !rc; i++) {
        uint64_t before = pg.done;
        rc = prep_file(fl.v[i], o, &s, &doc, &pg, e);
        if (rc == 1) {
            st->skipped_binary++;
            rc = TS_OK;
        } else if (!rc) {
            st->files++;
        }
        pg.done = before + fl.size[i];
        st->bytes_in += fl.size[i];
    }
    free(doc.p);
    if (pg.on) {
        prog_show(&pg, &s, true);
        ts_progress_done();
    }
    if (!rc) rc = sink_close(&s, st->shards, e);
    if (rc) {
        sink_abort(&s);
        fl_free(&fl);
        return rc;
    }
    for (int k = 0; k < 2; k++) {
        st->docs[k] = s.docs[k];
        st->tokens[k] = s.ntok[k];
    }
    st->seconds = ts_mono() - t0;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "tessera-prep-v1");
    cJSON_AddStringToObject(root, "tokenizer", s.tok->name);
    if (s.tok->id == DATA_TOK_JSON) {
        char hex[2 * TS_HASH_BYTES + 1];
        ts_hex(hex, s.tok->hash, TS_HASH_BYTES);
        cJSON_AddStringToObject(root, "tokenizer_path", o->tokenizer);
        cJSON_AddStringToObject(root, "tokenizer_blake2b", hex);
    }
    cJSON_AddNumberToObject(root, "vocab_size", s.tok->vocab_size);
    cJSON_AddNumberToObject(root, "eot", s.tok->eot);
    cJSON_AddNumberToObject(root, "shard_tokens", (double)o->shard_tokens);
    cJSON_AddNumberToObject(root, "val_fraction", o->val_fraction);
    if (o->doc_sep) cJSON_AddStringToObject(root, "doc_sep", o->doc_sep);
    else cJSON_AddNullToObject(root, "doc_sep");
    if (o->jsonl_field) cJSON_AddStringToObject(root, "jsonl_field", o->jsonl_field);
    cJSON_AddNumberToObject(root, "files", (double)st->files);
    cJSON_AddNumberToObject(root, "skipped_binary", (double)st->skipped_binary);
    cJSON_AddNumberToObject(root, "bytes", (double)st->bytes_in);
    cJSON_AddItemToObject(root, "train", split_json(&s, 0, st->shards[0]));
    cJSON_AddItemToObject(root, "val", split_json(&s, 1, st->shards[1]));
    cJSON *in = cJSON_AddArrayToObject(root, "inputs");
    for (int i = 0; i < o->ninputs; i++) cJSON_AddItemToArray(in, cJSON_CreateString(o->inputs[i]));
    rc = write_stamp(o->out_dir, "prep.json", root, e);
    cJSON_Delete(root);
    sink_abort(&s); /* writers are gone; frees the tokenizer and buffers */
    fl_free(&fl);
    return rc;
}

/* ----------------------------------------------------------------- synth */

static const char synth_alphabet[65] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .";

/* splitmix64: a small, fast, well-mixed generator; synth needs determinism
 * across machines, not cryptographic strength. */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, b) by rejection (b small). */
static uint64_t sm_below(uint64_t *x, uint64_t b) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % b;
    for (;;) {
        uint64_t v = splitmix64(x);
        if (v < lim) return v % b;
    }
}

#define SYNTH_MIN_DOC 64
#define SYNTH_MAX_DOC 1024 /* exclusive */

int data_synth(const data_synth_opts *o, data_synth_stats *st, ts_err *e) {
    memset(st, 0, sizeof *st);
    if (o->tokens < 2) return ts_fail(e, TS_EINVAL, "a synthetic corpus needs at least 2 tokens");
    sink s;
    int rc = sink_open(&s, o->out_dir, "byte", NULL, o->shard_tokens, o->val_fraction, o->force,
                       "synth.json", e);
    if (rc) {
        sink_abort(&s);
        return rc;
    }
    uint64_t x = o->seed;
    /* successor table: 4 distinct successors per symbol */
    uint8_t succ[64][4];
    for (int a = 0; a < 64; a++) {
        for (int k = 0; k < 4; k++) {
            uint8_t c;
            bool dup;
            do {
                c = (uint8_t)sm_below(&x, 64);
                dup = false;
                for (int j = 0; j < k; j++) dup |= succ[a][j] == c;
            } while (dup);
            succ[a][k] = c;
        }
    }
    prog pg = {.on = o->progress, .t0 = ts_mono(), .total = o->tokens};
    uint8_t doc[SYNTH_MAX_DOC];
    uint64_t written = 0;
    while (written < o->tokens && !rc) {
        uint64_t len = SYNTH_MIN_DOC + sm_below(&x, SYNTH_MAX_DOC - SYNTH_MIN_DOC);
        int cur = (int)sm_below(&x, 64);
        for (uint64_t i = 0; i < len; i++) {
            doc[i] = (uint8_t)synth_alphabet[cur];
            uint64_t r = splitmix64(&x) >> 61; /* 3 bits */
            int k = r < 4 ? 0 : r < 6 ? 1 : r == 6 ? 2 : 3;
            cur = succ[cur][k];
        }
        /* the last document is cut so the corpus has exactly o->tokens
         * tokens (it then lacks its end-of-document token) */
        uint64_t left = o->tokens - written;
        bool whole = len + 1 <= left;
        if (!whole) len = left;
        rc = sink_put(&s, doc, (size_t)len, whole, e);
        written += len + whole;
        pg.done = written;
        prog_show(&pg, &s, false);
    }
    if (pg.on) {
        prog_show(&pg, &s, true);
        ts_progress_done();
    }
    if (!rc) rc = sink_close(&s, st->shards, e);
    if (rc) {
        sink_abort(&s);
        return rc;
    }
    for (int k = 0; k < 2; k++) {
        st->docs[k] = s.docs[k];
        st->tokens[k] = s.ntok[k];
    }
    st->entropy_nats = 1.75 * log(2.0);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "tessera-synth-v1");
    cJSON_AddStringToObject(root, "tokenizer", "byte");
    cJSON_AddNumberToObject(root, "vocab_size", 257);
    cJSON_AddNumberToObject(root, "eot", 256);
    cJSON_AddNumberToObject(root, "seed", (double)o->seed);
    cJSON_AddNumberToObject(root, "tokens", (double)o->tokens);
    cJSON_AddNumberToObject(root, "shard_tokens", (double)o->shard_tokens);
    cJSON_AddNumberToObject(root, "val_fraction", o->val_fraction);
    cJSON_AddNumberToObject(root, "entropy_nats_per_token", st->entropy_nats);
    cJSON_AddStringToObject(root, "alphabet", synth_alphabet);
    cJSON *tab = cJSON_AddObjectToObject(root, "successors");
    for (int a = 0; a < 64; a++) {
        char key[2] = {synth_alphabet[a], 0}, val[5];
        for (int k = 0; k < 4; k++) val[k] = synth_alphabet[succ[a][k]];
        val[4] = 0;
        cJSON_AddStringToObject(tab, key, val);
    }
    cJSON *pr = cJSON_AddArrayToObject(root, "successor_probabilities");
    const double p[4] = {0.5, 0.25, 0.125, 0.125};
    for (int k = 0; k < 4; k++) cJSON_AddItemToArray(pr, cJSON_CreateNumber(p[k]));
    cJSON_AddItemToObject(root, "train", split_json(&s, 0, st->shards[0]));
    cJSON_AddItemToObject(root, "val", split_json(&s, 1, st->shards[1]));
    rc = write_stamp(o->out_dir, "synth.json", root, e);
    cJSON_Delete(root);
    sink_abort(&s);
    return rc;
}
