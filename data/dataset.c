/* dataset.c - an ordered list of memory-mapped shards, and its samples.
 *
 * Sample numbering (docs/FORMATS.md 5.3): shard i of n_i tokens holds
 * s_i = floor((n_i - 1) / T) samples of T + 1 tokens, sample k starting at
 * token k*T (consecutive samples share one token, as in llm.c's loader:
 * every token but the first of a shard is a target exactly once).  Dataset
 * index g is sample g - (s_0 + ... + s_{i-1}) of the shard i where it falls.
 * No sample crosses a shard boundary.
 *
 * A shard is an llm.c file (tokens after a 1024-byte header) or a NumPy .npy
 * file (tokens after a header of any length, so possibly unaligned); its
 * data_offset says where the tokens start. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "data.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "data/dataset.c reads little-endian tokens in place: a little-endian host is required"
#endif

#define DATA_MAX_SHARDS 65536

typedef struct shard {
    data_shard_info info;
    char *path;
    const uint8_t *map;   /* whole file */
    size_t map_len;
} shard;

struct data_dataset {
    int n;
    shard *s;
    uint64_t ntokens;
    uint32_t vocab, tok;
    /* cumulative sample counts for the last seq_len asked (cum[i] = samples
     * of shards 0..i-1; n + 1 entries) */
    pthread_mutex_t mu;
    uint32_t cum_seq;
    uint64_t *cum;
};

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Reads bytes [from, to) of fd into buf (the part of buf before `from` is
 * kept); *got becomes `to` or less at the end of the file. */
static int read_head(int fd, uint8_t *buf, size_t from, size_t to, size_t *got, const char *path,
                     ts_err *e) {
    *got = from;
    while (*got < to) {
        ssize_t r = pread(fd, buf + *got, to - *got, (off_t)*got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return ts_fail(e, TS_EIO, "%s: %s", path, strerror(errno));
        if (r == 0) break;
        *got += (size_t)r;
    }
    return TS_OK;
}

/* Checks the header of an open shard file: an llm.c header, or a .npy one
 * (told by its magic, or by a .npy name).  A .npy header longer than the
 * first 1024 bytes is read once its length has been checked against the cap
 * and the file. */
static int check_header(int fd, uint64_t file_bytes, const char *path, data_shard_info *info,
                        ts_err *e) {
    uint8_t h[DATA_HEADER_BYTES];
    memset(h, 0, sizeof h);
    size_t want = file_bytes < sizeof h ? (size_t)file_bytes : sizeof h, got;
    int rc = read_head(fd, h, 0, want, &got, path, e);
    if (rc) return rc;
    bool npy = (got >= DATA_NPY_MAGIC_BYTES && !memcmp(h, DATA_NPY_MAGIC, DATA_NPY_MAGIC_BYTES)) ||
               ends_with(path, ".npy");
    if (!npy) return data_shard_check(h, file_bytes, info, e);
    size_t hbytes;
    rc = data_npy_header_bytes(h, got, file_bytes, &hbytes, e);
    if (rc) return rc;
    if (hbytes <= got) return data_npy_check(h, got, file_bytes, info, e);
    uint8_t *big = malloc(hbytes); /* at most DATA_NPY_MAX_HEADER + 12, within the file */
    if (!big) return ts_fail(e, TS_ENOMEM, "out of memory");
    memcpy(big, h, got);
    rc = read_head(fd, big, got, hbytes, &got, path, e);
    if (!rc && got < hbytes)
        rc = ts_fail(e, TS_EIO, "%s: the file shrank while being read", path);
    if (!rc) rc = data_npy_check(big, hbytes, file_bytes, info, e);
    free(big);
    return rc;
}

static int open_shard(shard *sh, const char *path, ts_err *e) {
    memset(sh, 0, sizeof *sh);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ts_fail(e, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ts_fail(e, TS_EIO, "%s: not a regular file", path);
    }
    int rc = check_header(fd, (uint64_t)st.st_size, path, &sh->info, e);
    if (rc) {
        close(fd);
        return rc == TS_EFORMAT && e ? ts_wrap(e, "%s", path) : rc; /* I/O errors name it */
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) return ts_fail(e, TS_EIO, "%s: mmap: %s", path, strerror(err));
    /* Reads are samples of a few KiB at random places: no fault-driven
     * readahead (it would pull in ~128 KiB around every sample); each read
     * asks for exactly its own range instead (read_range). */
    madvise(p, (size_t)st.st_size, MADV_RANDOM);
    sh->map = p;
    sh->map_len = (size_t)st.st_size;
    sh->path = strdup(path);
    if (!sh->path) {
        munmap(p, sh->map_len);
        sh->map = NULL;
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    sh->info.path = sh->path;
    return TS_OK;
}

void data_dataset_close(data_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n; i++) {
        if (ds->s[i].map) munmap((void *)ds->s[i].map, ds->s[i].map_len);
        free(ds->s[i].path);
    }
    free(ds->s);
    free(ds->cum);
    pthread_mutex_destroy(&ds->mu);
    free(ds);
}

int data_dataset_open_files(const char *const *paths, int n, data_dataset **out, ts_err *e) {
    *out = NULL;
    if (n <= 0) return ts_fail(e, TS_ENOTFOUND, "no shards given");
    if (n > DATA_MAX_SHARDS)
        return ts_fail(e, TS_ETOOBIG, "%d shards exceed the limit of %d", n, DATA_MAX_SHARDS);
    data_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return ts_fail(e, TS_ENOMEM, "out of memory");
    pthread_mutex_init(&ds->mu, NULL);
    ds->s = calloc((size_t)n, sizeof *ds->s);
    ds->cum = calloc((size_t)n + 1, sizeof *ds->cum);
    if (!ds->s || !ds->cum) {
        data_dataset_close(ds);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        int rc = open_shard(&ds->s[i], paths[i], e);
        if (rc) {
            data_dataset_close(ds);
            return rc;
        }
        ds->n = i + 1;
        const data_shard_info *in = &ds->s[i].info;
        ds->ntokens += in->ntokens;
        if (in->vocab_size > ds->vocab) ds->vocab = in->vocab_size;
        if (in->tokenizer) {
            if (ds->tok && ds->tok != in->tokenizer) {
                int rc2 = ts_fail(e, TS_EFORMAT,
                                  "%s: tokenizer %u differs from the other shards' tokenizer %u",
                                  paths[i], in->tokenizer, ds->tok);
                data_dataset_close(ds);
                return rc2;
            }
            ds->tok = in->tokenizer;
        }
    }
    *out = ds;
    return TS_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static int sl_push(strlist *l, char *s) {
    if (!s) return -1;
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 16;
        char **nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv) {
            free(s);
            return -1;
        }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = s;
    return 0;
}

static void sl_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

static bool is_regular(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int list_dir(const char *dir, strlist *l, ts_err *e) {
    DIR *d = opendir(dir);
    if (!d) return ts_fail(e, TS_EIO, "%s: %s", dir, strerror(errno));
    struct dirent *de;
    int rc = TS_OK;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !(ends_with(de->d_name, ".bin") || ends_with(de->d_name, ".npy")))
            continue;
        char *p = ts_path_join(dir, de->d_name);
        if (!p) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            break;
        }
        if (!is_regular(p)) {
            free(p);
            continue;
        }
        if (sl_push(l, p)) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            break;
        }
    }
    closedir(d);
    return rc;
}

int data_dataset_open(const char *path, data_dataset **out, ts_err *e) {
    *out = NULL;
    if (!path || !*path) return ts_fail(e, TS_EINVAL, "no dataset path given");
    if (strstr(path, "://"))
        return ts_fail(e, TS_EUNSUPPORTED,
                       "%s: datasets are opened from local paths (fetch object-store shards first)",
                       path);
    strlist l = {0};
    int rc = TS_OK;
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            rc = list_dir(path, &l, e);
            if (!rc && l.n == 0)
                rc = ts_fail(e, TS_ENOTFOUND, "%s: no *.bin or *.npy shards in this directory", path);
        } else if (S_ISREG(st.st_mode)) {
            if (sl_push(&l, strdup(path))) rc = ts_fail(e, TS_ENOMEM, "out of memory");
        } else {
            rc = ts_fail(e, TS_EINVAL, "%s: not a file or directory", path);
        }
    } else if (strpbrk(path, "*?[")) {
        glob_t g;
        int gr = glob(path, GLOB_NOSORT, NULL, &g);
        if (gr == 0) {
            for (size_t i = 0; i < g.gl_pathc && !rc; i++)
                if (is_regular(g.gl_pathv[i]) && sl_push(&l, strdup(g.gl_pathv[i])))
                    rc = ts_fail(e, TS_ENOMEM, "out of memory");
            globfree(&g);
        } else if (gr != GLOB_NOMATCH) {
            rc = ts_fail(e, TS_EIO, "%s: cannot expand the pattern", path);
        }
        if (!rc && l.n == 0) rc = ts_fail(e, TS_ENOTFOUND, "%s: no shard matches", path);
    } else {
        rc = ts_fail(e, TS_ENOTFOUND, "%s: %s", path, strerror(errno));
    }
    if (!rc) {
        qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_str);
        rc = data_dataset_open_files((const char *const *)l.v, l.n, out, e);
    }
    sl_free(&l);
    return rc;
}

int data_num_shards(const data_dataset *ds) { return ds->n; }
const data_shard_info *data_shard(const data_dataset *ds, int i) {
    return i >= 0 && i < ds->n ? &ds->s[i].info : NULL;
}
uint64_t data_num_tokens(const data_dataset *ds) { return ds->ntokens; }
uint32_t data_vocab_size(const data_dataset *ds) { return ds->vocab; }
uint32_t data_tokenizer_id(const data_dataset *ds) { return ds->tok; }

uint64_t data_shard_samples(uint64_t ntokens, uint32_t seq_len) {
    if (seq_len == 0 || ntokens <= seq_len) return 0;
    return (ntokens - 1) / seq_len;
}

/* Fills ds->cum for seq_len (caller holds the mutex). */
static void fill_cum(data_dataset *ds, uint32_t seq_len) {
    if (ds->cum_seq == seq_len) return;
    ds->cum[0] = 0;
    for (int i = 0; i < ds->n; i++)
        ds->cum[i + 1] = ds->cum[i] + data_shard_samples(ds->s[i].info.ntokens, seq_len);
    ds->cum_seq = seq_len;
}

uint64_t data_num_samples(const data_dataset *ds, uint32_t seq_len) {
    if (seq_len == 0 || seq_len > DATA_MAX_SEQ_LEN) return 0;
    data_dataset *m = (data_dataset *)ds; /* the cache is internal state */
    pthread_mutex_lock(&m->mu);
    fill_cum(m, seq_len);
    uint64_t n = m->cum[m->n];
    pthread_mutex_unlock(&m->mu);
    return n;
}

int data_sample_locate(const data_dataset *ds, uint32_t seq_len, uint64_t index, int *shard_out,
                       uint64_t *offset, ts_err *e) {
    if (seq_len == 0 || seq_len > DATA_MAX_SEQ_LEN)
        return ts_fail(e, TS_EINVAL, "sequence length %u out of range 1..%u", seq_len,
                       DATA_MAX_SEQ_LEN);
    data_dataset *m = (data_dataset *)ds;
    pthread_mutex_lock(&m->mu);
    fill_cum(m, seq_len);
    uint64_t total = m->cum[m->n];
    int lo = 0, hi = m->n - 1;
    if (index < total) {
        /* the last shard i with cum[i] <= index (empty shards are skipped
         * because their cum equals the next one's) */
        while (lo < hi) {
            int mid = lo + (hi - lo + 1) / 2;
            if (m->cum[mid] <= index) lo = mid;
            else hi = mid - 1;
        }
        *shard_out = lo;
        *offset = (index - m->cum[lo]) * (uint64_t)seq_len;
    }
    pthread_mutex_unlock(&m->mu);
    if (index >= total)
        return ts_fail(e, TS_EINVAL, "sample %llu out of range: the dataset has %llu samples of %u+1 tokens",
                       (unsigned long long)index, (unsigned long long)total, seq_len);
    return TS_OK;
}

int data_read_tokens(const data_dataset *ds, int si, uint64_t offset, uint64_t n, uint32_t *out,
                     ts_err *e) {
    if (si < 0 || si >= ds->n) return ts_fail(e, TS_EINVAL, "no shard %d", si);
    const shard *sh = &ds->s[si];
    if (offset > sh->info.ntokens || n > sh->info.ntokens - offset)
        return ts_fail(e, TS_EINVAL, "tokens [%llu, %llu) out of range of %s (%llu tokens)",
                       (unsigned long long)offset, (unsigned long long)(offset + n), sh->path,
                       (unsigned long long)sh->info.ntokens);
    const uint8_t *base = sh->map + sh->info.data_offset;
    uint32_t vocab = sh->info.vocab_size;
    if (n) {
        /* ask the kernel to read the whole range at once (page-aligned) */
        uintptr_t a = (uintptr_t)(base + offset * (uint64_t)sh->info.width);
        uintptr_t b = a + n * (uint64_t)sh->info.width;
        uintptr_t pg = 4096;
        a &= ~(pg - 1);
        madvise((void *)a, b - a, MADV_WILLNEED);
    }
    /* a .npy shard's tokens may start at any offset: read them unaligned
     * (memcpy compiles to plain loads) */
    uint32_t bad = 0;
    const uint8_t *t = base + offset * (uint64_t)sh->info.width;
    if (sh->info.width == 2) {
        for (uint64_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, t + 2 * i, sizeof v);
            out[i] = v;
        }
    } else {
        memcpy(out, t, n * sizeof *out);
    }
    if (vocab) {
        for (uint64_t i = 0; i < n; i++) bad |= out[i] >= vocab;
        if (bad) {
            for (uint64_t i = 0; i < n; i++)
                if (out[i] >= vocab)
                    return ts_fail(e, TS_EFORMAT,
                                   "%s: token %u at position %llu is outside the declared vocabulary of %u",
                                   sh->path, out[i], (unsigned long long)(offset + i), vocab);
        }
    }
    return TS_OK;
}

int data_prefetch(const data_dataset *ds, uint32_t seq_len, const uint64_t *indices, size_t n,
                  ts_err *e) {
    for (size_t i = 0; i < n; i++) {
        int si;
        uint64_t off;
        int rc = data_sample_locate(ds, seq_len, indices[i], &si, &off, e);
        if (rc) return rc;
        const shard *sh = &ds->s[si];
        uintptr_t a = (uintptr_t)(sh->map + sh->info.data_offset + off * (uint64_t)sh->info.width);
        uintptr_t b = a + ((uint64_t)seq_len + 1) * (uint64_t)sh->info.width;
        a &= ~(uintptr_t)4095;
        madvise((void *)a, b - a, MADV_WILLNEED);
    }
    return TS_OK;
}

int data_sample(const data_dataset *ds, uint32_t seq_len, uint64_t index, uint32_t *tokens,
                ts_err *e) {
    int si;
    uint64_t off;
    int rc = data_sample_locate(ds, seq_len, index, &si, &off, e);
    if (rc) return rc;
    return data_read_tokens(ds, si, off, (uint64_t)seq_len + 1, tokens, e);
}
