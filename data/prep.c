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

#include "data.h"

#define MAX_DOC_BYTES (64u << 20)
#define SNIFF_BYTES 8192

static const char *const split_name[2] = {"train", "val"};

/* ------------------------------------------------------- the shared sink */

typedef struct sink {
    data_tokenizer *tok;
    data_writer *w[2];
    uint64_t val_threshold;   /* documents with hash < this go to val */
    uint32_t *tokens;
    size_t tokens_cap;
    uint64_t docs[2], ntok[2];
} sink;

static uint64_t val_threshold(double f) {
    if (f <= 0) return 0;
    return (uint64_t)ldexp(f, 64); /* exact: f < 1, a power-of-two scaling */
}

static bool split_dirs_clean(const char *out, bool force, bool del, ts_err *e);

static int sink_open(sink *s, const char *out, const char *tokenizer, uint64_t shard_tokens,
                     double val_fraction, bool force, const char *stamp, ts_err *e) {
    memset(s, 0, sizeof *s);
    if (!out || !*out) return ts_fail(e, TS_EINVAL, "no output directory given");
    if (shard_tokens < 2 || shard_tokens > DATA_MAX_SHARD_TOKENS)
        return ts_fail(e, TS_EINVAL, "shard size %llu out of range 2..%u tokens",
                       (unsigned long long)shard_tokens, DATA_MAX_SHARD_TOKENS);
    if (!(val_fraction >= 0 && val_fraction < 1))
        return ts_fail(e, TS_EINVAL, "held-out fraction %g out of range [0, 1)", val_fraction);
    int rc = data_tokenizer_open(tokenizer ? tokenizer : "byte", &s->tok, e);
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
    free(s->tokens);
    memset(s, 0, sizeof *s);
}

static int sink_close(sink *s, int shards[2], ts_err *e) {
    int rc = TS_OK;
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

/* Tokens of text (+ the end-of-document token when eot) to the split the
 * text's hash picks. */
static int sink_put(sink *s, const uint8_t *text, size_t n, bool eot, ts_err *e) {
    if (n + 1 > s->tokens_cap) {
        size_t cap = s->tokens_cap ? s->tokens_cap : 4096;
        while (cap < n + 1) cap *= 2;
        uint32_t *t = realloc(s->tokens, cap * sizeof *t);
        if (!t) return ts_fail(e, TS_ENOMEM, "out of memory for a document of %zu bytes", n);
        s->tokens = t;
        s->tokens_cap = cap;
    }
    size_t nt = 0;
    int rc = s->tok->encode(s->tok, text, n, s->tokens, &nt, e);
    if (rc) return rc;
    if (eot) s->tokens[nt++] = s->tok->eot;
    int k = 0;
    if (s->val_threshold) {
        uint8_t h[8];
        ts_blake2b(h, 8, text, n);
        k = ts_get_u64(h) < s->val_threshold;
    }
    rc = data_writer_put(s->w[k], s->tokens, nt, e);
    if (rc) return rc;
    s->docs[k]++;
    s->ntok[k] += nt;
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
    uint64_t done, total;
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
    char a[32], b[32];
    ts_fmt_bytes(a, sizeof a, (double)p->done);
    ts_fmt_bytes(b, sizeof b, (double)p->total);
    ts_progress("prep [%s] %3.0f%%  %s / %s  %llu documents  %llu tokens", bar, 100 * f, a, b,
                (unsigned long long)(s->docs[0] + s->docs[1]),
                (unsigned long long)(s->ntok[0] + s->ntok[1]));
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
    while (!rc && (len = getline(&line, &lcap, f)) > 0) {
        pg->done += (uint64_t)len;
        if (o->doc_sep && line_is_sep(line, (size_t)len, o->doc_sep)) {
            rc = sink_doc(s, doc->p, doc->n, e);
            doc->n = 0;
        } else {
            rc = buf_add(doc, line, (size_t)len, path, e);
        }
        prog_show(pg, s, false);
    }
    if (!rc && ferror(f)) rc = ts_fail(e, TS_EIO, "%s: read error", path);
    if (!rc) rc = sink_doc(s, doc->p, doc->n, e);
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
    rc = sink_open(&s, o->out_dir, o->tokenizer, o->shard_tokens, o->val_fraction, o->force,
                   "prep.json", e);
    if (rc) {
        sink_abort(&s);
        fl_free(&fl);
        return rc;
    }
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
    cJSON_AddNumberToObject(root, "vocab_size", s.tok->vocab_size);
    cJSON_AddNumberToObject(root, "eot", s.tok->eot);
    cJSON_AddNumberToObject(root, "shard_tokens", (double)o->shard_tokens);
    cJSON_AddNumberToObject(root, "val_fraction", o->val_fraction);
    if (o->doc_sep) cJSON_AddStringToObject(root, "doc_sep", o->doc_sep);
    else cJSON_AddNullToObject(root, "doc_sep");
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
    int rc = sink_open(&s, o->out_dir, "byte", o->shard_tokens, o->val_fraction, o->force,
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
