/* bpe.c - Hugging Face tokenizer.json: byte-level BPE (GPT-2, Llama 3) and
 * SentencePiece-style BPE with byte fallback (Llama 2, Gemma), encoding as
 * the `tokenizers` library does.
 *
 * The pipeline, in the library's order (docs/FORMATS.md 5.9 lists what each
 * part of a tokenizer.json may hold and what is refused):
 *
 *   1. text: invalid UTF-8 is replaced first, each maximal invalid
 *      subsequence by U+FFFD (as Rust's and Python's lossy decoders do); the
 *      library and tiktoken take valid UTF-8 only.
 *   2. added tokens: found leftmost-longest and cut out; special ones only
 *      when the caller allows them (DATA_ENC_SPECIAL; `tessera data prep`
 *      does not, so a document's literal "<|endoftext|>" stays text).
 *   3. normalizer on each remaining section: Replace (a string), Prepend,
 *      Sequence.
 *   4. pre-tokenizer: Split (a regex run by Oniguruma, the engine the
 *      library itself uses, so \p{L}, \s and look-ahead mean exactly what
 *      they mean there), ByteLevel (GPT-2's pattern when use_regex), Metaspace,
 *      Sequence.
 *   5. model: BPE.  A piece already in the vocabulary is one token when
 *      ignore_merges is set (Llama 3); otherwise its symbols (bytes for a
 *      byte-level vocabulary, characters otherwise, <0xNN> tokens or unk for
 *      a character the vocabulary lacks) are merged, always the pair of
 *      lowest merge rank first, the leftmost among equals.
 *
 * A byte-level vocabulary is stored by its raw bytes (GPT-2's byte-to-char
 * map undone at load time), so encoding never maps bytes to characters and
 * decoding is a copy.  The tokenizer is read-only once loaded: any number of
 * threads may encode at once (each call has its own scratch). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <oniguruma.h>

#include "data.h"

#define MAX_JSON_BYTES (512u << 20)
#define MAX_STEPS 8
#define GPT2_PATTERN                                                                              \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* -------------------------------------------------------------- hashing */

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ (n * 0x9E3779B97F4A7C15ull);
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    return h * 0xBF58476D1CE4E5B9ull;
}

static uint64_t hash_pair(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

typedef struct merge_slot {
    uint64_t key;   /* left << 32 | right; UINT64_MAX when empty */
    uint32_t rank, id;
} merge_slot;

typedef struct added_tok {
    uint8_t *s;
    size_t len;
    uint32_t id;
    bool special, lstrip, rstrip;
} added_tok;

enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE };
enum { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT };
enum { NORM_REPLACE, NORM_PREPEND };
enum { META_ALWAYS, META_NEVER, META_FIRST };

typedef struct pre_step {
    int kind;
    OnigRegex re;        /* split; byte-level with use_regex */
    int behavior;
    bool prefix_space;   /* byte-level add_prefix_space */
    uint8_t rep[8];      /* metaspace replacement */
    size_t rep_len;
    int prepend;         /* metaspace prepend_scheme */
    bool msplit;         /* metaspace split */
} pre_step;

typedef struct norm_step {
    int kind;
    uint8_t *pat, *rep;
    size_t pat_len, rep_len;
} norm_step;

typedef struct bpe {
    /* vocabulary: token id -> its bytes (model form) and decoded bytes */
    uint32_t nids;
    uint32_t *off, *len;        /* into arena; len UINT32_MAX: no such id */
    uint32_t *doff, *dlen;      /* decoded form, into darena */
    uint8_t *arena, *darena;
    uint8_t *is_special;        /* per id: an added special token */
    uint32_t *slot;             /* bytes -> id + 1, open addressing */
    uint64_t smask;
    merge_slot *merges;
    uint64_t mmask;
    bool byte_level, byte_fallback, ignore_merges, fuse_unk;
    int64_t unk;                /* -1: none */
    uint32_t byte_id[256];      /* byte-level: each byte's token; fallback: <0xNN> */
    bool has_byte_id[256];
    added_tok *added;
    int nadded;
    uint8_t added_first[256];   /* some added token starts with this byte */
    norm_step norm[MAX_STEPS];
    int nnorm;
    pre_step pre[MAX_STEPS];
    int npre;
    int strip_leading;          /* decoder Strip: spaces removed at the start */
    char name[80];
} bpe;

/* ------------------------------------------------------------ utilities */

typedef struct bbuf {
    uint8_t *p;
    size_t n, cap;
} bbuf;

static int bb_reserve(bbuf *b, size_t extra) {
    if (b->n + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int bb_add(bbuf *b, const void *src, size_t n) {
    if (bb_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
    return 0;
}

int data_tokens_push(data_tokens *t, uint32_t x, ts_err *e) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 1024;
        uint32_t *v = realloc(t->v, cap * sizeof *v);
        if (!v) return ts_fail(e, TS_ENOMEM, "out of memory for %zu tokens", cap);
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = x;
    return TS_OK;
}

void data_tokens_free(data_tokens *t) {
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* Length of the UTF-8 sequence at p (valid UTF-8 assumed). */
static size_t u8len(uint8_t c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* Lossy UTF-8: each maximal subpart of an ill-formed sequence (Unicode's
 * "best practice", WHATWG's decoder) becomes U+FFFD. */
int data_utf8_lossy(const uint8_t *s, size_t n, uint8_t **out, size_t *nout, ts_err *e) {
    bbuf b = {0};
    if (bb_reserve(&b, n + 16)) return ts_fail(e, TS_ENOMEM, "out of memory");
    static const uint8_t fffd[3] = {0xEF, 0xBF, 0xBD};
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            b.p[b.n++] = c;
            i++;
            continue;
        }
        int need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) need = 2, lo = 0xA0;
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
        else if (c == 0xED) need = 2, hi = 0x9F;
        else if (c == 0xF0) need = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) need = 3, hi = 0x8F;
        else need = 0;
        size_t j = i + 1;
        int got = 0;
        while (need && got < need && j < n) {
            uint8_t d = s[j];
            if (got == 0 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) break;
            got++;
            j++;
        }
        if (need && got == need) {
            if (bb_add(&b, s + i, j - i)) goto oom;
        } else {
            if (bb_add(&b, fffd, 3)) goto oom;
        }
        i = j;
    }
    *out = b.p;
    *nout = b.n;
    return TS_OK;
oom:
    free(b.p);
    return ts_fail(e, TS_ENOMEM, "out of memory");
}

/* GPT-2's byte <-> character map: printable Latin-1 bytes map to
 * themselves, the other 68 to U+0100.. in byte order. */
static void byte_map(uint32_t cp_of[256]) {
    int k = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        cp_of[b] = keep ? (uint32_t)b : (uint32_t)(256 + k++);
    }
}

/* Decodes one code point of valid-looking UTF-8; 0 on a bad sequence. */
static size_t u8dec(const uint8_t *p, size_t n, uint32_t *cp) {
    if (!n) return 0;
    uint8_t c = p[0];
    size_t l = u8len(c);
    if (c >= 0x80 && c < 0xC2) return 0;
    if (l > n) return 0;
    uint32_t v = l == 1 ? c : l == 2 ? c & 0x1F : l == 3 ? c & 0x0F : c & 0x07;
    for (size_t i = 1; i < l; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (p[i] & 0x3F);
    }
    *cp = v;
    return l;
}

/* -------------------------------------------------------------- tables */

static int64_t vocab_find(const bpe *m, const uint8_t *s, size_t n) {
    uint64_t i = hash_bytes(s, n) & m->smask;
    for (;;) {
        uint32_t v = m->slot[i];
        if (!v) return -1;
        uint32_t id = v - 1;
        if (m->len[id] == n && !memcmp(m->arena + m->off[id], s, n)) return id;
        i = (i + 1) & m->smask;
    }
}

static void vocab_insert(bpe *m, uint32_t id) {
    uint64_t i = hash_bytes(m->arena + m->off[id], m->len[id]) & m->smask;
    while (m->slot[i]) i = (i + 1) & m->smask;
    m->slot[i] = id + 1;
}

static const merge_slot *merge_find(const bpe *m, uint32_t a, uint32_t b) {
    uint64_t key = (uint64_t)a << 32 | b;
    uint64_t i = hash_pair(key) & m->mmask;
    for (;;) {
        const merge_slot *s = &m->merges[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
        i = (i + 1) & m->mmask;
    }
}

static uint64_t pow2_above(uint64_t n) {
    uint64_t c = 16;
    while (c < 2 * n) c *= 2;
    return c;
}

/* ------------------------------------------------------------- loading */

/* A vocabulary key in model form: raw bytes for a byte-level vocabulary. */
static int key_bytes(const bpe *m, const char *key, bbuf *out, const uint32_t byte_of_cp[512]) {
    out->n = 0;
    size_t n = strlen(key);
    if (!m->byte_level) return bb_add(out, key, n) ? -2 : 0;
    const uint8_t *p = (const uint8_t *)key;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = u8dec(p + i, n - i, &cp);
        if (!l || cp >= 512 || byte_of_cp[cp] > 255) return -1;
        uint8_t b = (uint8_t)byte_of_cp[cp];
        if (bb_add(out, &b, 1)) return -2;
        i += l;
    }
    return 0;
}

static int parse_behavior(const char *s, int *out) {
    if (!s) return -1;
    if (!strcmp(s, "Isolated")) *out = SPLIT_ISOLATED;
    else if (!strcmp(s, "Removed")) *out = SPLIT_REMOVED;
    else if (!strcmp(s, "MergedWithPrevious")) *out = SPLIT_MERGED_PREV;
    else if (!strcmp(s, "MergedWithNext")) *out = SPLIT_MERGED_NEXT;
    else return -1;
    return 0;
}

static pthread_once_t onig_once = PTHREAD_ONCE_INIT;
static void onig_start(void) {
    OnigEncoding enc[1] = {ONIG_ENCODING_UTF8};
    onig_initialize(enc, 1);
}

static int compile_re(const char *pat, size_t n, OnigRegex *re, const char *where, ts_err *e) {
    pthread_once(&onig_once, onig_start);
    OnigErrorInfo ei;
    int r = onig_new(re, (const OnigUChar *)pat, (const OnigUChar *)pat + n, ONIG_OPTION_NONE,
                     ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &ei);
    if (r != ONIG_NORMAL) {
        OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, r, &ei);
        *re = NULL;
        return ts_fail(e, TS_EFORMAT, "%s: bad regex: %s", where, (char *)msg);
    }
    return TS_OK;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jtrue(const cJSON *o, const char *k) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static int add_pre(bpe *m, const cJSON *p, const char *path, ts_err *e);

static int add_pre_one(bpe *m, const cJSON *p, const char *path, ts_err *e) {
    const char *type = jstr(p, "type");
    if (!type) return ts_fail(e, TS_EFORMAT, "%s: pre_tokenizer without a type", path);
    if (!strcmp(type, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(a)) return ts_fail(e, TS_EFORMAT, "%s: Sequence without pretokenizers", path);
        const cJSON *it;
        cJSON_ArrayForEach(it, a) {
            int rc = add_pre(m, it, path, e);
            if (rc) return rc;
        }
        return TS_OK;
    }
    if (m->npre == MAX_STEPS) return ts_fail(e, TS_EUNSUPPORTED, "%s: more than %d pre-tokenizers", path, MAX_STEPS);
    pre_step *s = &m->pre[m->npre];
    memset(s, 0, sizeof *s);
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = jstr(pat, "Regex"), *str = jstr(pat, "String");
        if (jtrue(p, "invert"))
            return ts_fail(e, TS_EUNSUPPORTED, "%s: Split with invert is not supported", path);
        if (parse_behavior(jstr(p, "behavior"), &s->behavior))
            return ts_fail(e, TS_EUNSUPPORTED, "%s: Split behavior '%s' is not supported (Isolated, Removed, MergedWithPrevious, MergedWithNext are)",
                           path, jstr(p, "behavior") ? jstr(p, "behavior") : "(none)");
        int rc;
        if (re) {
            rc = compile_re(re, strlen(re), &s->re, path, e);
        } else if (str) {
            /* a literal: escape every character */
            bbuf q = {0};
            for (const char *c = str; *c; c++) {
                if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                      (unsigned char)*c >= 0x80) && bb_add(&q, "\\", 1))
                    return ts_fail(e, TS_ENOMEM, "out of memory");
                if (bb_add(&q, c, 1)) return ts_fail(e, TS_ENOMEM, "out of memory");
            }
            rc = compile_re((const char *)q.p, q.n, &s->re, path, e);
            free(q.p);
        } else {
            return ts_fail(e, TS_EFORMAT, "%s: Split without a pattern", path);
        }
        if (rc) return rc;
        s->kind = PRE_SPLIT;
    } else if (!strcmp(type, "ByteLevel")) {
        s->kind = PRE_BYTELEVEL;
        s->prefix_space = jtrue(p, "add_prefix_space");
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        if (!ur || cJSON_IsTrue(ur)) {
            int rc = compile_re(GPT2_PATTERN, strlen(GPT2_PATTERN), &s->re, path, e);
            if (rc) return rc;
        }
    } else if (!strcmp(type, "Metaspace")) {
        s->kind = PRE_METASPACE;
        const char *rep = jstr(p, "replacement");
        if (!rep || !*rep || strlen(rep) > sizeof s->rep)
            return ts_fail(e, TS_EFORMAT, "%s: Metaspace without a replacement", path);
        s->rep_len = strlen(rep);
        memcpy(s->rep, rep, s->rep_len);
        const char *ps = jstr(p, "prepend_scheme");
        if (!ps) s->prepend = jtrue(p, "add_prefix_space") ? META_ALWAYS : META_NEVER;
        else if (!strcmp(ps, "always")) s->prepend = META_ALWAYS;
        else if (!strcmp(ps, "never")) s->prepend = META_NEVER;
        else if (!strcmp(ps, "first")) s->prepend = META_FIRST;
        else return ts_fail(e, TS_EFORMAT, "%s: Metaspace prepend_scheme '%s'", path, ps);
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(p, "split");
        s->msplit = !sp || cJSON_IsTrue(sp);
    } else {
        return ts_fail(e, TS_EUNSUPPORTED, "%s: pre-tokenizer '%s' is not supported (Split, ByteLevel, Metaspace and Sequence are)",
                       path, type);
    }
    m->npre++;
    return TS_OK;
}

static int add_pre(bpe *m, const cJSON *p, const char *path, ts_err *e) {
    if (cJSON_IsNull(p) || !p) return TS_OK;
    return add_pre_one(m, p, path, e);
}

static int add_norm(bpe *m, const cJSON *p, const char *path, ts_err *e) {
    if (!p || cJSON_IsNull(p)) return TS_OK;
    const char *type = jstr(p, "type");
    if (!type) return ts_fail(e, TS_EFORMAT, "%s: normalizer without a type", path);
    if (!strcmp(type, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "normalizers"), *it;
        if (!cJSON_IsArray(a)) return ts_fail(e, TS_EFORMAT, "%s: Sequence without normalizers", path);
        cJSON_ArrayForEach(it, a) {
            int rc = add_norm(m, it, path, e);
            if (rc) return rc;
        }
        return TS_OK;
    }
    if (m->nnorm == MAX_STEPS) return ts_fail(e, TS_EUNSUPPORTED, "%s: more than %d normalizers", path, MAX_STEPS);
    norm_step *s = &m->norm[m->nnorm];
    memset(s, 0, sizeof *s);
    const char *rep;
    if (!strcmp(type, "Replace")) {
        const char *pat = jstr(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "String");
        rep = jstr(p, "content");
        if (!pat || !*pat || !rep)
            return ts_fail(e, TS_EUNSUPPORTED, "%s: a Replace normalizer must replace a string (a regex is not supported)", path);
        s->kind = NORM_REPLACE;
        s->pat = (uint8_t *)strdup(pat);
        s->pat_len = strlen(pat);
    } else if (!strcmp(type, "Prepend")) {
        rep = jstr(p, "prepend");
        if (!rep) return ts_fail(e, TS_EFORMAT, "%s: Prepend without a string", path);
        s->kind = NORM_PREPEND;
    } else {
        return ts_fail(e, TS_EUNSUPPORTED, "%s: normalizer '%s' is not supported (Replace, Prepend and Sequence are)", path, type);
    }
    s->rep = (uint8_t *)strdup(rep);
    s->rep_len = strlen(rep);
    m->nnorm++;
    if ((s->kind == NORM_REPLACE && !s->pat) || !s->rep) return ts_fail(e, TS_ENOMEM, "out of memory");
    return TS_OK;
}

/* Decoders change only how tokens print: ByteLevel (nothing to do on raw
 * bytes), Replace, ByteFallback, Fuse, Strip; a Metaspace decoder is
 * Replace(replacement, " ") plus a Strip of the first space. */
typedef struct dec_cfg {
    uint8_t from[8], to[8];
    size_t from_len, to_len;
    bool replace, fallback;
    int strip;
} dec_cfg;

static int add_dec(dec_cfg *d, const cJSON *p, const char *path, ts_err *e) {
    if (!p || cJSON_IsNull(p)) return TS_OK;
    const char *type = jstr(p, "type");
    if (!type) return ts_fail(e, TS_EFORMAT, "%s: decoder without a type", path);
    if (!strcmp(type, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "decoders"), *it;
        cJSON_ArrayForEach(it, a) {
            int rc = add_dec(d, it, path, e);
            if (rc) return rc;
        }
        return TS_OK;
    }
    if (!strcmp(type, "ByteLevel") || !strcmp(type, "Fuse")) return TS_OK;
    if (!strcmp(type, "ByteFallback")) {
        d->fallback = true;
        return TS_OK;
    }
    const char *from = NULL, *to = NULL;
    if (!strcmp(type, "Replace")) {
        from = jstr(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "String");
        to = jstr(p, "content");
    } else if (!strcmp(type, "Metaspace")) {
        from = jstr(p, "replacement");
        to = " ";
        const char *ps = jstr(p, "prepend_scheme");
        if ((ps && strcmp(ps, "never")) || (!ps && jtrue(p, "add_prefix_space"))) d->strip = 1;
    } else if (!strcmp(type, "Strip")) {
        const char *c = jstr(p, "content");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(p, "start");
        if (c && !strcmp(c, " ") && cJSON_IsNumber(st)) d->strip = st->valueint;
        return TS_OK;
    } else {
        return ts_fail(e, TS_EUNSUPPORTED, "%s: decoder '%s' is not supported", path, type);
    }
    if (!from || !to || strlen(from) > sizeof d->from || strlen(to) > sizeof d->to)
        return ts_fail(e, TS_EUNSUPPORTED, "%s: decoder %s with an unsupported pattern", path, type);
    d->replace = true;
    d->from_len = strlen(from);
    memcpy(d->from, from, d->from_len);
    d->to_len = strlen(to);
    memcpy(d->to, to, d->to_len);
    return TS_OK;
}

static bool is_fallback_name(const uint8_t *s, size_t n, uint8_t *byte) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return false;
    unsigned v = 0;
    for (int i = 3; i < 5; i++) {
        uint8_t c = s[i];
        unsigned d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 99;
        if (d > 15) return false;
        v = v * 16 + d;
    }
    *byte = (uint8_t)v;
    return true;
}

static void bpe_free(bpe *m) {
    if (!m) return;
    free(m->off);
    free(m->len);
    free(m->doff);
    free(m->dlen);
    free(m->arena);
    free(m->darena);
    free(m->is_special);
    free(m->slot);
    free(m->merges);
    for (int i = 0; i < m->nadded; i++) free(m->added[i].s);
    free(m->added);
    for (int i = 0; i < m->nnorm; i++) {
        free(m->norm[i].pat);
        free(m->norm[i].rep);
    }
    for (int i = 0; i < m->npre; i++)
        if (m->pre[i].re) onig_free(m->pre[i].re);
    free(m);
}

static int load_json(bpe *m, cJSON *root, const char *path, ts_err *e) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mt = jstr(model, "type");
    if (!cJSON_IsObject(model)) return ts_fail(e, TS_EFORMAT, "%s: no \"model\" object", path);
    if (mt && strcmp(mt, "BPE"))
        return ts_fail(e, TS_EUNSUPPORTED, "%s: model type '%s' is not supported (BPE is)", path, mt);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return ts_fail(e, TS_EFORMAT, "%s: model needs \"vocab\" (an object) and \"merges\" (an array)", path);
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dr) && dr->valuedouble != 0)
        return ts_fail(e, TS_EUNSUPPORTED, "%s: BPE dropout is not supported (it is random)", path);
    if (jstr(model, "continuing_subword_prefix") && *jstr(model, "continuing_subword_prefix"))
        return ts_fail(e, TS_EUNSUPPORTED, "%s: continuing_subword_prefix is not supported", path);
    if (jstr(model, "end_of_word_suffix") && *jstr(model, "end_of_word_suffix"))
        return ts_fail(e, TS_EUNSUPPORTED, "%s: end_of_word_suffix is not supported", path);
    m->byte_fallback = jtrue(model, "byte_fallback");
    m->ignore_merges = jtrue(model, "ignore_merges");
    m->fuse_unk = jtrue(model, "fuse_unk");

    int rc;
    if ((rc = add_norm(m, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), path, e))) return rc;
    if ((rc = add_pre(m, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), path, e))) return rc;
    for (int i = 0; i < m->npre; i++) m->byte_level |= m->pre[i].kind == PRE_BYTELEVEL;
    dec_cfg dc = {0};
    if ((rc = add_dec(&dc, cJSON_GetObjectItemCaseSensitive(root, "decoder"), path, e))) return rc;
    m->strip_leading = dc.strip;

    /* ids */
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *it;
    uint64_t maxid = 0;
    int nv = 0;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= 1 << 30 ||
            it->valuedouble != (double)(uint32_t)it->valuedouble)
            return ts_fail(e, TS_EFORMAT, "%s: vocab entry '%s' has no valid id", path, it->string);
        if ((uint64_t)it->valuedouble > maxid) maxid = (uint64_t)it->valuedouble;
        nv++;
    }
    int na = 0;
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= 1 << 30 ||
            id->valuedouble != (double)(uint32_t)id->valuedouble || !jstr(it, "content") ||
            !*jstr(it, "content"))
            return ts_fail(e, TS_EFORMAT, "%s: added token %d has no valid id or content", path, na);
        if ((uint64_t)id->valuedouble > maxid) maxid = (uint64_t)id->valuedouble;
        if (jtrue(it, "single_word"))
            return ts_fail(e, TS_EUNSUPPORTED, "%s: added token '%s' has single_word, which is not supported", path, jstr(it, "content"));
        na++;
    }
    if (nv == 0) return ts_fail(e, TS_EFORMAT, "%s: empty vocabulary", path);
    m->nids = (uint32_t)maxid + 1;
    m->off = calloc(m->nids, sizeof *m->off);
    m->len = malloc(m->nids * sizeof *m->len);
    m->is_special = calloc(m->nids, 1);
    m->smask = pow2_above((uint64_t)nv + (uint64_t)na) - 1;
    m->slot = calloc(m->smask + 1, sizeof *m->slot);
    m->added = calloc((size_t)na + 1, sizeof *m->added);
    if (!m->off || !m->len || !m->is_special || !m->slot || !m->added) return ts_fail(e, TS_ENOMEM, "out of memory");
    memset(m->len, 0xff, m->nids * sizeof *m->len);

    uint32_t cp_of[256], byte_of_cp[512];
    byte_map(cp_of);
    for (int i = 0; i < 512; i++) byte_of_cp[i] = 256;
    for (int b = 0; b < 256; b++) byte_of_cp[cp_of[b]] = (uint32_t)b;

    bbuf arena = {0}, key = {0};
    rc = TS_OK;
    cJSON_ArrayForEach(it, vocab) {
        uint32_t id = (uint32_t)it->valuedouble;
        int k = key_bytes(m, it->string, &key, byte_of_cp);
        if (k == -2) { rc = ts_fail(e, TS_ENOMEM, "out of memory"); break; }
        if (k == -1) { rc = ts_fail(e, TS_EFORMAT, "%s: vocab entry %u is not a byte-level string", path, id); break; }
        if (m->len[id] != UINT32_MAX) { rc = ts_fail(e, TS_EFORMAT, "%s: id %u appears twice in the vocabulary", path, id); break; }
        if (arena.n + key.n > UINT32_MAX) { rc = ts_fail(e, TS_ETOOBIG, "%s: vocabulary too large", path); break; }
        m->off[id] = (uint32_t)arena.n;
        m->len[id] = (uint32_t)key.n;
        if (bb_add(&arena, key.p, key.n)) { rc = ts_fail(e, TS_ENOMEM, "out of memory"); break; }
    }
    free(key.p);
    m->arena = arena.p;
    if (rc) return rc;
    for (uint32_t id = 0; id < m->nids; id++) {
        if (m->len[id] == UINT32_MAX) continue;
        if (vocab_find(m, m->arena + m->off[id], m->len[id]) >= 0)
            return ts_fail(e, TS_EFORMAT, "%s: two vocabulary entries have the same bytes (id %u)", path, id);
        vocab_insert(m, id);
    }
    /* the symbols a piece starts from */
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        char nm[8];
        snprintf(nm, sizeof nm, "<0x%02X>", b);
        int64_t id = m->byte_level ? vocab_find(m, &c, 1)
                                   : m->byte_fallback ? vocab_find(m, (const uint8_t *)nm, 6) : -1;
        if (id >= 0) m->byte_id[b] = (uint32_t)id, m->has_byte_id[b] = true;
        else if (m->byte_level)
            return ts_fail(e, TS_EFORMAT, "%s: byte-level vocabulary lacks byte 0x%02x", path, b);
        else if (m->byte_fallback)
            return ts_fail(e, TS_EFORMAT, "%s: byte_fallback is set but %s is not in the vocabulary", path, nm);
    }
    m->unk = -1;
    const char *unk = jstr(model, "unk_token");
    if (unk) {
        m->unk = vocab_find(m, (const uint8_t *)unk, strlen(unk));
        if (m->unk < 0) return ts_fail(e, TS_EFORMAT, "%s: unk_token '%s' is not in the vocabulary", path, unk);
    }

    /* merges: rank = position */
    size_t nm = (size_t)cJSON_GetArraySize(merges);
    m->mmask = pow2_above(nm) - 1;
    m->merges = malloc((m->mmask + 1) * sizeof *m->merges);
    if (!m->merges) return ts_fail(e, TS_ENOMEM, "out of memory");
    for (uint64_t i = 0; i <= m->mmask; i++) m->merges[i].key = UINT64_MAX;
    bbuf a = {0}, b = {0}, ab = {0};
    uint32_t rank = 0;
    cJSON_ArrayForEach(it, merges) {
        const char *sa, *sb;
        char *tmp = NULL;
        if (cJSON_IsString(it)) {
            const char *sp = strchr(it->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) { rc = ts_fail(e, TS_EFORMAT, "%s: merge %u is not \"a b\"", path, rank); break; }
            tmp = strdup(it->valuestring);
            if (!tmp) { rc = ts_fail(e, TS_ENOMEM, "out of memory"); break; }
            tmp[sp - it->valuestring] = 0;
            sa = tmp;
            sb = tmp + (sp - it->valuestring) + 1;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) && cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            sa = cJSON_GetArrayItem(it, 0)->valuestring;
            sb = cJSON_GetArrayItem(it, 1)->valuestring;
        } else {
            rc = ts_fail(e, TS_EFORMAT, "%s: merge %u is neither \"a b\" nor [\"a\", \"b\"]", path, rank);
            break;
        }
        int ka = key_bytes(m, sa, &a, byte_of_cp), kb = key_bytes(m, sb, &b, byte_of_cp);
        int64_t ia = ka ? -1 : vocab_find(m, a.p, a.n), ib = kb ? -1 : vocab_find(m, b.p, b.n), iab = -1;
        if (ia >= 0 && ib >= 0) {
            ab.n = 0;
            if (bb_add(&ab, a.p, a.n) || bb_add(&ab, b.p, b.n)) { free(tmp); rc = ts_fail(e, TS_ENOMEM, "out of memory"); break; }
            iab = vocab_find(m, ab.p, ab.n);
        }
        if (ia < 0 || ib < 0 || iab < 0) {
            rc = ts_fail(e, TS_EFORMAT, "%s: merge %u ('%s' '%s') makes or uses a token not in the vocabulary", path, rank, sa, sb);
            free(tmp);
            break;
        }
        free(tmp);
        uint64_t k = (uint64_t)ia << 32 | (uint64_t)ib;
        uint64_t i = hash_pair(k) & m->mmask;
        while (m->merges[i].key != UINT64_MAX && m->merges[i].key != k) i = (i + 1) & m->mmask;
        if (m->merges[i].key == UINT64_MAX) m->merges[i] = (merge_slot){k, rank, (uint32_t)iab};
        rank++;
    }
    free(a.p);
    free(b.p);
    free(ab.p);
    if (rc) return rc;

    /* added tokens, raw content */
    cJSON_ArrayForEach(it, added) {
        added_tok *t = &m->added[m->nadded];
        const char *c = jstr(it, "content");
        t->id = (uint32_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        t->len = strlen(c);
        t->s = (uint8_t *)strdup(c);
        if (!t->s) return ts_fail(e, TS_ENOMEM, "out of memory");
        t->special = jtrue(it, "special");
        t->lstrip = jtrue(it, "lstrip");
        t->rstrip = jtrue(it, "rstrip");
        m->added_first[t->s[0]] = 1;
        m->nadded++;
        if (t->special) m->is_special[t->id] = 1;
    }

    /* decoded bytes of every id */
    bbuf d = {0};
    m->doff = calloc(m->nids, sizeof *m->doff);
    m->dlen = malloc(m->nids * sizeof *m->dlen);
    if (!m->doff || !m->dlen) return ts_fail(e, TS_ENOMEM, "out of memory");
    memset(m->dlen, 0xff, m->nids * sizeof *m->dlen);
    for (int i = 0; i < m->nadded; i++) {
        added_tok *t = &m->added[i];
        if (t->len > DATA_MAX_TOKEN_BYTES)
            return ts_fail(e, TS_EFORMAT, "%s: added token %u is %zu bytes long (at most %d)", path, t->id, t->len,
                           DATA_MAX_TOKEN_BYTES);
        m->doff[t->id] = (uint32_t)d.n;
        m->dlen[t->id] = (uint32_t)t->len;
        if (bb_add(&d, t->s, t->len)) return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    for (uint32_t id = 0; id < m->nids; id++) {
        if (m->len[id] == UINT32_MAX || m->dlen[id] != UINT32_MAX) continue;
        const uint8_t *s = m->arena + m->off[id];
        size_t n = m->len[id], start = d.n;
        uint8_t byte;
        if (dc.fallback && is_fallback_name(s, n, &byte)) {
            if (bb_add(&d, &byte, 1)) return ts_fail(e, TS_ENOMEM, "out of memory");
        } else {
            for (size_t i = 0; i < n;) {
                if (dc.replace && i + dc.from_len <= n && !memcmp(s + i, dc.from, dc.from_len)) {
                    if (bb_add(&d, dc.to, dc.to_len)) return ts_fail(e, TS_ENOMEM, "out of memory");
                    i += dc.from_len;
                } else {
                    if (bb_add(&d, s + i, 1)) return ts_fail(e, TS_ENOMEM, "out of memory");
                    i++;
                }
            }
        }
        m->doff[id] = (uint32_t)start;
        m->dlen[id] = (uint32_t)(d.n - start);
        if (d.n - start > DATA_MAX_TOKEN_BYTES)
            return ts_fail(e, TS_EFORMAT, "%s: token %u is %zu bytes long (at most %d)", path, id, d.n - start,
                           DATA_MAX_TOKEN_BYTES);
    }
    m->darena = d.p;
    return TS_OK;
}

/* ------------------------------------------------------------ encoding */

typedef struct span {
    size_t a, b;
} span;

typedef struct scratch {
    bbuf norm;              /* the normalized section */
    span *sp, *sp2;         /* pieces */
    size_t nsp, nsp2, capsp, capsp2;
    uint32_t *sym;          /* a piece's symbols */
    int32_t *prev, *next;
    size_t capsym;
    OnigRegion *region;
} scratch;

static int sp_push(span **v, size_t *n, size_t *cap, size_t a, size_t b) {
    if (a >= b) return 0;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 256;
        span *p = realloc(*v, c * sizeof *p);
        if (!p) return -1;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = (span){a, b};
    return 0;
}

/* Splits every piece of s->sp by the regex, per behavior, into s->sp2. */
static int split_re(scratch *s, const uint8_t *text, OnigRegex re, int behavior) {
    s->nsp2 = 0;
    for (size_t k = 0; k < s->nsp; k++) {
        size_t a = s->sp[k].a, b = s->sp[k].b, pos = a, last = a;
        size_t pending = SIZE_MAX; /* MergedWithNext: start of a match waiting */
        while (pos < b) {
            int r = onig_search(re, text + a, text + b, text + pos, text + b, s->region, ONIG_OPTION_NONE);
            if (r == ONIG_MISMATCH) break;
            if (r < 0) return -2;
            size_t ms = a + (size_t)s->region->beg[0], me = a + (size_t)s->region->end[0];
            if (me == ms) { /* an empty match: step over a character */
                pos = ms + u8len(text[ms]);
                continue;
            }
            switch (behavior) {
            case SPLIT_ISOLATED:
                if (sp_push(&s->sp2, &s->nsp2, &s->capsp2, last, ms) ||
                    sp_push(&s->sp2, &s->nsp2, &s->capsp2, ms, me)) return -1;
                break;
            case SPLIT_REMOVED:
                if (sp_push(&s->sp2, &s->nsp2, &s->capsp2, last, ms)) return -1;
                break;
            case SPLIT_MERGED_PREV:
                if (sp_push(&s->sp2, &s->nsp2, &s->capsp2, last, me)) return -1;
                break;
            case SPLIT_MERGED_NEXT:
                if (pending != SIZE_MAX) {
                    if (sp_push(&s->sp2, &s->nsp2, &s->capsp2, pending, ms)) return -1;
                } else if (sp_push(&s->sp2, &s->nsp2, &s->capsp2, last, ms)) return -1;
                pending = ms;
                break;
            }
            last = pos = me;
        }
        if (behavior == SPLIT_MERGED_NEXT && pending != SIZE_MAX) {
            if (sp_push(&s->sp2, &s->nsp2, &s->capsp2, pending, b)) return -1;
        } else if (sp_push(&s->sp2, &s->nsp2, &s->capsp2, last, b)) return -1;
    }
    span *t = s->sp;
    s->sp = s->sp2;
    s->sp2 = t;
    size_t c = s->capsp;
    s->capsp = s->capsp2;
    s->capsp2 = c;
    s->nsp = s->nsp2;
    return 0;
}

static int sym_reserve(scratch *s, size_t n) {
    if (n <= s->capsym) return 0;
    size_t c = s->capsym ? s->capsym : 64;
    while (c < n) c *= 2;
    uint32_t *a = realloc(s->sym, c * sizeof *a);
    if (a) s->sym = a;
    int32_t *p = realloc(s->prev, c * sizeof *p);
    if (p) s->prev = p;
    int32_t *q = realloc(s->next, c * sizeof *q);
    if (q) s->next = q;
    if (!a || !p || !q) return -1;
    s->capsym = c;
    return 0;
}

typedef struct heap_ent {
    uint32_t rank;
    int32_t pos;
    uint32_t left, right;
} heap_ent;

static bool he_less(const heap_ent *x, const heap_ent *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(heap_ent *h, size_t *n, heap_ent v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!he_less(&v, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static heap_ent heap_pop(heap_ent *h, size_t *n) {
    heap_ent top = h[0], v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && he_less(&h[c + 1], &h[c])) c++;
        if (!he_less(&h[c], &v)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* Merges the symbols sym[0..m) in place (linked by prev/next); the merged
 * symbols are left in order along next from 0. */
static int merge_all(const bpe *M, scratch *s, size_t m) {
    uint32_t *sym = s->sym;
    int32_t *nx = s->next, *pv = s->prev;
    for (size_t i = 0; i < m; i++) {
        pv[i] = (int32_t)i - 1;
        nx[i] = i + 1 < m ? (int32_t)i + 1 : -1;
    }
    if (m < 2) return 0;
    if (m <= 24) { /* short pieces: a scan is faster than a heap */
        for (;;) {
            uint32_t best = UINT32_MAX, bid = 0;
            int32_t bpos = -1;
            for (int32_t i = 0; i >= 0 && nx[i] >= 0; i = nx[i]) {
                const merge_slot *ms = merge_find(M, sym[i], sym[nx[i]]);
                if (ms && ms->rank < best) best = ms->rank, bid = ms->id, bpos = i;
            }
            if (bpos < 0) return 0;
            int32_t r = nx[bpos];
            sym[bpos] = bid;
            nx[bpos] = nx[r];
            if (nx[r] >= 0) pv[nx[r]] = bpos;
        }
    }
    heap_ent *h = malloc(m * 3 * sizeof *h);
    if (!h) return -1;
    size_t hn = 0, hcap = m * 3;
    for (size_t i = 0; i + 1 < m; i++) {
        const merge_slot *ms = merge_find(M, sym[i], sym[i + 1]);
        if (ms) heap_push(h, &hn, (heap_ent){ms->rank, (int32_t)i, sym[i], sym[i + 1]});
    }
    while (hn) {
        heap_ent t = heap_pop(h, &hn);
        int32_t i = t.pos, r = nx[i];
        /* stale: the symbol was merged away, or its pair changed */
        if (pv[i] == -2 || r < 0 || sym[i] != t.left || sym[r] != t.right) continue;
        const merge_slot *ms = merge_find(M, t.left, t.right);
        sym[i] = ms->id;
        nx[i] = nx[r];
        if (nx[r] >= 0) pv[nx[r]] = i;
        pv[r] = -2; /* dead */
        if (hn + 2 > hcap) {
            hcap *= 2;
            heap_ent *nh = realloc(h, hcap * sizeof *nh);
            if (!nh) {
                free(h);
                return -1;
            }
            h = nh;
        }
        if (pv[i] >= 0) {
            const merge_slot *q = merge_find(M, sym[pv[i]], sym[i]);
            if (q) heap_push(h, &hn, (heap_ent){q->rank, pv[i], sym[pv[i]], sym[i]});
        }
        if (nx[i] >= 0) {
            const merge_slot *q = merge_find(M, sym[i], sym[nx[i]]);
            if (q) heap_push(h, &hn, (heap_ent){q->rank, i, sym[i], sym[nx[i]]});
        }
    }
    free(h);
    return 0;
}

/* One pre-tokenized piece through the model. */
static int encode_piece(const bpe *M, scratch *s, const uint8_t *p, size_t n, data_tokens *out,
                        ts_err *e) {
    if (M->ignore_merges) {
        int64_t id = vocab_find(M, p, n);
        if (id >= 0) return data_tokens_push(out, (uint32_t)id, e);
    }
    if (sym_reserve(s, n)) return ts_fail(e, TS_ENOMEM, "out of memory");
    size_t m = 0;
    if (M->byte_level) {
        for (size_t i = 0; i < n; i++) s->sym[m++] = M->byte_id[p[i]];
    } else {
        bool last_unk = false;
        for (size_t i = 0; i < n;) {
            size_t l = u8len(p[i]);
            if (i + l > n) l = n - i;
            int64_t id = vocab_find(M, p + i, l);
            if (id >= 0) {
                s->sym[m++] = (uint32_t)id;
                last_unk = false;
            } else if (M->byte_fallback) {
                for (size_t j = 0; j < l; j++) s->sym[m++] = M->byte_id[p[i + j]];
                last_unk = false;
            } else if (M->unk >= 0) {
                if (!(M->fuse_unk && last_unk)) s->sym[m++] = (uint32_t)M->unk;
                last_unk = true;
            } else {
                return ts_fail(e, TS_EFORMAT, "a character is not in the vocabulary, and the tokenizer has neither byte_fallback nor unk_token");
            }
            i += l;
        }
    }
    if (merge_all(M, s, m)) return ts_fail(e, TS_ENOMEM, "out of memory");
    for (int32_t i = m ? 0 : -1; i >= 0; i = s->next[i]) {
        int rc = data_tokens_push(out, s->sym[i], e);
        if (rc) return rc;
    }
    return TS_OK;
}

static bool is_ws(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* A section of text between added tokens: normalize, pre-tokenize, model. */
static int encode_section(const bpe *M, scratch *s, const uint8_t *text, size_t n, bool first,
                          data_tokens *out, ts_err *e) {
    if (!n) return TS_OK;
    bbuf *nb = &s->norm;
    nb->n = 0;
    if (bb_add(nb, text, n)) return ts_fail(e, TS_ENOMEM, "out of memory");
    bbuf t = {0};
    for (int k = 0; k < M->nnorm; k++) {
        const norm_step *ns = &M->norm[k];
        t.n = 0;
        if (ns->kind == NORM_PREPEND) {
            if (nb->n && (bb_add(&t, ns->rep, ns->rep_len) || bb_add(&t, nb->p, nb->n))) goto oom;
        } else {
            for (size_t i = 0; i < nb->n;) {
                if (i + ns->pat_len <= nb->n && !memcmp(nb->p + i, ns->pat, ns->pat_len)) {
                    if (bb_add(&t, ns->rep, ns->rep_len)) goto oom;
                    i += ns->pat_len;
                } else {
                    if (bb_add(&t, nb->p + i, 1)) goto oom;
                    i++;
                }
            }
        }
        bbuf sw = *nb;
        *nb = t;
        t = sw;
    }
    s->nsp = 0;
    if (sp_push(&s->sp, &s->nsp, &s->capsp, 0, nb->n)) goto oom;
    for (int k = 0; k < M->npre; k++) {
        const pre_step *ps = &M->pre[k];
        if (ps->kind == PRE_SPLIT) {
            int r = split_re(s, nb->p, ps->re, ps->behavior);
            if (r == -1) goto oom;
            if (r) return ts_fail(e, TS_EIO, "regex search failed");
        } else if (ps->kind == PRE_BYTELEVEL) {
            if (ps->prefix_space) {
                /* a space before every piece that lacks one: rebuild the
                 * buffer with the spaces inserted */
                t.n = 0;
                for (size_t i = 0; i < s->nsp; i++) {
                    size_t a = s->sp[i].a, b = s->sp[i].b, at = t.n;
                    if (nb->p[a] != ' ' && bb_add(&t, " ", 1)) goto oom;
                    if (bb_add(&t, nb->p + a, b - a)) goto oom;
                    s->sp[i] = (span){at, t.n};
                }
                bbuf sw = *nb;
                *nb = t;
                t = sw;
            }
            if (ps->re) {
                int r = split_re(s, nb->p, ps->re, SPLIT_ISOLATED);
                if (r == -1) goto oom;
                if (r) return ts_fail(e, TS_EIO, "regex search failed");
            }
        } else { /* Metaspace: spaces to the replacement, then split before each */
            t.n = 0;
            size_t cnt = 0;
            for (size_t i = 0; i < s->nsp; i++) {
                size_t a = s->sp[i].a, b = s->sp[i].b, at = t.n;
                bool pre = ps->prepend == META_ALWAYS || (ps->prepend == META_FIRST && first && cnt == 0);
                if (pre && !(b - a >= ps->rep_len && !memcmp(nb->p + a, ps->rep, ps->rep_len)) &&
                    bb_add(&t, ps->rep, ps->rep_len)) goto oom;
                for (size_t j = a; j < b; j++) {
                    if (nb->p[j] == ' ' ? bb_add(&t, ps->rep, ps->rep_len) : bb_add(&t, nb->p + j, 1)) goto oom;
                }
                s->sp[i] = (span){at, t.n};
                cnt++;
            }
            bbuf sw = *nb;
            *nb = t;
            t = sw;
            if (ps->msplit) {
                s->nsp2 = 0;
                for (size_t i = 0; i < s->nsp; i++) {
                    size_t a = s->sp[i].a, b = s->sp[i].b, st = a;
                    for (size_t j = a + 1; j < b; j++)
                        if (j + ps->rep_len <= b && !memcmp(nb->p + j, ps->rep, ps->rep_len)) {
                            if (sp_push(&s->sp2, &s->nsp2, &s->capsp2, st, j)) goto oom;
                            st = j;
                        }
                    if (sp_push(&s->sp2, &s->nsp2, &s->capsp2, st, b)) goto oom;
                }
                span *sw2 = s->sp;
                s->sp = s->sp2;
                s->sp2 = sw2;
                size_t c = s->capsp;
                s->capsp = s->capsp2;
                s->capsp2 = c;
                s->nsp = s->nsp2;
            }
        }
    }
    free(t.p);
    for (size_t i = 0; i < s->nsp; i++) {
        int rc = encode_piece(M, s, nb->p + s->sp[i].a, s->sp[i].b - s->sp[i].a, out, e);
        if (rc) return rc;
    }
    return TS_OK;
oom:
    free(t.p);
    return ts_fail(e, TS_ENOMEM, "out of memory");
}

/* The longest added token at p (allowed ones only); -1 when none. */
static int added_at(const bpe *M, const uint8_t *p, size_t n, bool special) {
    if (!M->added_first[p[0]]) return -1;
    int best = -1;
    size_t bl = 0;
    for (int i = 0; i < M->nadded; i++) {
        const added_tok *t = &M->added[i];
        if ((t->special && !special) || t->len > n || t->len <= bl) continue;
        if (!memcmp(p, t->s, t->len)) best = i, bl = t->len;
    }
    return best;
}

static int bpe_encode(const data_tokenizer *T, const uint8_t *text, size_t n, unsigned flags,
                      data_tokens *out, ts_err *e) {
    const bpe *M = T->impl;
    uint8_t *u = NULL;
    size_t un = 0;
    int rc = data_utf8_lossy(text, n, &u, &un, e);
    if (rc) return rc;
    scratch s = {0};
    s.region = onig_region_new();
    if (!s.region) {
        free(u);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    bool special = flags & DATA_ENC_SPECIAL;
    size_t sec = 0, i = 0;
    while (i < un && !rc) {
        int k = M->nadded ? added_at(M, u + i, un - i, special) : -1;
        if (k < 0) {
            i++;
            continue;
        }
        const added_tok *t = &M->added[k];
        size_t a = i, b = i + t->len;
        if (t->lstrip)
            while (a > sec && is_ws(u[a - 1])) a--;
        if (t->rstrip)
            while (b < un && is_ws(u[b])) b++;
        rc = encode_section(M, &s, u + sec, a - sec, sec == 0, out, e);
        if (!rc) rc = data_tokens_push(out, t->id, e);
        sec = i = b;
    }
    if (!rc) rc = encode_section(M, &s, u + sec, un - sec, sec == 0, out, e);
    onig_region_free(s.region, 1);
    free(s.norm.p);
    free(s.sp);
    free(s.sp2);
    free(s.sym);
    free(s.prev);
    free(s.next);
    free(u);
    return rc;
}

static int bpe_decode(const data_tokenizer *T, uint32_t token, uint8_t *out, size_t cap) {
    const bpe *M = T->impl;
    if (token >= M->nids || M->dlen[token] == UINT32_MAX || M->is_special[token]) return -1;
    size_t n = M->dlen[token];
    if (n > cap) n = cap;
    memcpy(out, M->darena + M->doff[token], n);
    return (int)n;
}

int data_tokenizer_special_text(const data_tokenizer *T, uint32_t token, uint8_t *out, size_t cap) {
    if (T->id != DATA_TOK_JSON) return -1;
    const bpe *M = T->impl;
    if (token >= M->nids || !M->is_special[token]) return -1;
    size_t n = M->dlen[token];
    if (n > cap) n = cap;
    memcpy(out, M->darena + M->doff[token], n);
    return (int)n;
}

static void bpe_destroy(data_tokenizer *T) {
    bpe_free(T->impl);
    free(T);
}

/* The end-of-document token: the first of these names the tokenizer has. */
static const char *const eot_names[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|end|>", NULL};

int data_tokenizer_load(const char *path, const char *eot, data_tokenizer **out, ts_err *e) {
    *out = NULL;
    uint8_t *raw = NULL;
    size_t len = 0;
    int rc = ts_read_file(path, MAX_JSON_BYTES, &raw, &len, e);
    if (rc) return rc;
    uint8_t hash[TS_HASH_BYTES];
    ts_blake2b(hash, sizeof hash, raw, len);
    cJSON *root = cJSON_ParseWithLength((const char *)raw, len);
    free(raw);
    if (!root) return ts_fail(e, TS_EFORMAT, "%s: not JSON", path);
    bpe *m = calloc(1, sizeof *m);
    data_tokenizer *t = calloc(1, sizeof *t);
    if (!m || !t) {
        cJSON_Delete(root);
        free(m);
        free(t);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    rc = load_json(m, root, path, e);
    cJSON_Delete(root);
    if (!rc) {
        int64_t id = -1;
        const char *want = eot;
        for (int i = 0; id < 0 && (eot ? i < 1 : eot_names[i] != NULL); i++) {
            want = eot ? eot : eot_names[i];
            for (int k = 0; k < m->nadded && id < 0; k++)
                if (m->added[k].len == strlen(want) && !memcmp(m->added[k].s, want, m->added[k].len))
                    id = m->added[k].id;
            if (id < 0) id = vocab_find(m, (const uint8_t *)want, strlen(want));
        }
        if (id < 0)
            rc = eot ? ts_fail(e, TS_EINVAL, "%s: no token '%s' to end documents with", path, eot)
                     : ts_fail(e, TS_EFORMAT, "%s: no end-of-document token (<|endoftext|>, <|end_of_text|>, </s>, <eos>, <|end|>); name one", path);
        else t->eot = (uint32_t)id;
    }
    if (rc) {
        bpe_free(m);
        free(t);
        return rc;
    }
    const char *base = strrchr(path, '/');
    snprintf(m->name, sizeof m->name, "%s", base ? base + 1 : path);
    t->name = m->name;
    t->id = DATA_TOK_JSON;
    t->vocab_size = m->nids;
    t->encode = bpe_encode;
    t->decode = bpe_decode;
    t->destroy = bpe_destroy;
    t->strip_leading = m->strip_leading;
    memcpy(t->hash, hash, sizeof hash);
    t->impl = m;
    *out = t;
    return TS_OK;
}
