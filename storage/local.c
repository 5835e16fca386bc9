/* local.c - the file:// backend: each key is a file under the store's root
 * directory ('/' in keys separates directories).
 *
 * Writes go to a temporary file in ROOT/.tessera-tmp (same file system), are
 * fsync'd and renamed into place, so a reader sees the old object or the new
 * one, never a part; a crash leaves at most a stray temporary file, which
 * listings never show.  Keys cannot escape the root: the front end refuses
 * "..", "." and empty segments, and files are opened without following a
 * final symbolic link.  One limit the S3 backend does not have: a key cannot
 * be both an object and the directory of other keys ("a" and "a/b"). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "storage/afile.h"
#include "storage/internal.h"

#define TMP_DIR ".tessera-tmp"

typedef struct local {
    char *root;
    char *tmpdir;
} local;

static int reserved(const char *key, ts_err *e) {
    size_t n = strlen(TMP_DIR);
    if (!strncmp(key, TMP_DIR, n) && (key[n] == '/' || key[n] == 0))
        return ts_fail(e, TS_EINVAL, "key '%.200s' is reserved in file stores", key);
    return TS_OK;
}

static char *key_path(const local *l, const char *key) { return ts_path_join(l->root, key); }

static int errno_code(int err) {
    return err == ENOENT || err == ENOTDIR || err == ELOOP ? TS_ENOTFOUND : TS_EIO;
}

static void info_from_stat(const struct stat *st, store_info *info) {
    info->size = (uint64_t)st->st_size;
    info->last_modified = (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec * 1e-9;
    snprintf(info->etag, sizeof info->etag, "%llx-%llx-%llx",
             (unsigned long long)st->st_mtim.tv_sec * 1000000000ull + (unsigned long long)st->st_mtim.tv_nsec,
             (unsigned long long)st->st_size, (unsigned long long)st->st_ino);
}

/* Opens an object for reading; a directory or anything not a regular file is
 * "not found". */
static int open_obj(store *s, const char *key, int *fd, struct stat *st, ts_err *e) {
    local *l = s->impl;
    if (reserved(key, e)) return e ? e->code : TS_EINVAL;
    char *path = key_path(l, key);
    if (!path) return ts_fail(e, TS_ENOMEM, "out of memory");
    *fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    free(path);
    if (*fd < 0)
        return ts_fail(e, errno_code(err), "%s: %s: %s", s->url, key,
                       err == ENOENT || err == ENOTDIR ? "no such object" : strerror(err));
    if (fstat(*fd, st) || !S_ISREG(st->st_mode)) {
        close(*fd);
        *fd = -1;
        return ts_fail(e, TS_ENOTFOUND, "%s: %s: no such object", s->url, key);
    }
    return TS_OK;
}

static int prepare_dirs(store *s, const char *path, ts_err *e) {
    local *l = s->impl;
    if (ts_mkdirs(l->tmpdir, 0755, e)) return ts_wrap(e, "%s", s->url);
    char *dir = strdup(path);
    if (!dir) return ts_fail(e, TS_ENOMEM, "out of memory");
    *strrchr(dir, '/') = 0;
    int rc = ts_mkdirs(dir, 0755, e);
    free(dir);
    return rc;
}

/* Writes through `fill` into an atomic file and renames it to the key.  The
 * rename is retried when a concurrent delete removed the (empty) directory. */
typedef int (*fill_fn)(afile *a, void *ud, ts_err *e);

static int put_with(store *s, const char *key, uint64_t total, fill_fn fill, void *ud, ts_err *e) {
    local *l = s->impl;
    if (reserved(key, e)) return e ? e->code : TS_EINVAL;
    char *path = key_path(l, key);
    if (!path) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = TS_OK;
    for (int attempt = 0; attempt < 3; attempt++) {
        afile a;
        if ((rc = prepare_dirs(s, path, e))) {
            rc = ts_wrap(e, "put %s", key);
            break;
        }
        if ((rc = afile_open(&a, path, l->tmpdir, e))) break;
        if ((rc = fill(&a, ud, e))) {
            afile_abort(&a);
            break;
        }
        rc = afile_commit(&a, e);
        if (rc == TS_EIO && !ts_path_exists(l->root)) break;
        if (rc != TS_EIO || attempt == 2) break;
        /* the directory may have vanished under a concurrent delete */
        struct stat st;
        char *dir = strdup(path);
        if (!dir) break;
        *strrchr(dir, '/') = 0;
        bool gone = stat(dir, &st) != 0;
        free(dir);
        if (!gone) break;
    }
    if (rc == TS_EEXIST)
        rc = ts_fail(e, TS_EEXIST, "%s: put %s: the key is a directory of other keys", s->url, key);
    free(path);
    if (!rc) store_progress(s, total, total);
    return rc;
}

typedef struct mem_src {
    const void *p;
    size_t n;
} mem_src;

static int fill_mem(afile *a, void *ud, ts_err *e) {
    mem_src *m = ud;
    if (afile_pwrite(a, m->p, m->n, 0)) return ts_fail(e, TS_EIO, "%s: write failed: %s", a->dst, strerror(errno));
    return TS_OK;
}

static int local_put(store *s, const char *key, const void *data, size_t len, ts_err *e) {
    mem_src m = {data, len};
    return put_with(s, key, len, fill_mem, &m, e);
}

/* Copies all of fd into a at offset 0; more than max bytes is TS_ETOOBIG. */
static int copy_fd(int fd, afile *a, uint64_t max, const char *what, ts_err *e) {
    uint64_t off = 0;
    bool plain = false;
    /* copy_file_range first (in-kernel copy, reflinks), plain reads where it
     * is not supported */
    while (!plain) {
        ssize_t n = copy_file_range(fd, NULL, a->fd, NULL, 1u << 30, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (off == 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
                plain = true;
                break;
            }
            return ts_fail(e, TS_EIO, "%s: copy failed: %s", what, strerror(errno));
        }
        if (n == 0) break;
        off += (uint64_t)n;
        if (off > max) return ts_fail(e, TS_ETOOBIG, "%s: over the limit of %llu bytes", what, (unsigned long long)max);
    }
    if (!plain) return TS_OK;
    size_t cap = 1u << 20;
    uint8_t *buf = malloc(cap);
    if (!buf) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = TS_OK;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = ts_fail(e, TS_EIO, "%s: read failed: %s", what, strerror(errno));
            break;
        }
        if (n == 0) break;
        if (off + (uint64_t)n > max) {
            rc = ts_fail(e, TS_ETOOBIG, "%s: over the limit of %llu bytes", what, (unsigned long long)max);
            break;
        }
        if (afile_pwrite(a, buf, (size_t)n, off)) {
            rc = ts_fail(e, TS_EIO, "%s: write failed: %s", a->dst, strerror(errno));
            break;
        }
        off += (uint64_t)n;
    }
    free(buf);
    return rc;
}

typedef struct file_src {
    int fd;
    const char *path;
} file_src;

static int fill_file(afile *a, void *ud, ts_err *e) {
    file_src *f = ud;
    return copy_fd(f->fd, a, UINT64_MAX, f->path, e);
}

static int local_put_file(store *s, const char *key, const char *path, ts_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ts_fail(e, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return ts_fail(e, TS_EINVAL, "%s: not a regular file", path);
    }
    file_src f = {fd, path};
    int rc = put_with(s, key, (uint64_t)st.st_size, fill_file, &f, e);
    close(fd);
    return rc;
}

static int local_get(store *s, const char *key, size_t max, uint8_t **out, size_t *len, ts_err *e) {
    int fd;
    struct stat st;
    if (open_obj(s, key, &fd, &st, e)) return e ? e->code : TS_ENOTFOUND;
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return ts_fail(e, TS_ETOOBIG, "%s: %s: %llu bytes, over the limit of %zu", s->url, key,
                       (unsigned long long)st.st_size, max);
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return ts_fail(e, TS_ENOMEM, "%s: out of memory for %zu bytes", key, n);
    }
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break; /* truncated under us: return what is there */
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    *out = buf;
    *len = got;
    store_progress(s, got, got);
    return TS_OK;
}

static int local_get_file(store *s, const char *key, const char *path, uint64_t max, ts_err *e) {
    int fd;
    struct stat st;
    if (open_obj(s, key, &fd, &st, e)) return e ? e->code : TS_ENOTFOUND;
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return ts_fail(e, TS_ETOOBIG, "%s: %s: %llu bytes, over the limit of %llu", s->url, key,
                       (unsigned long long)st.st_size, (unsigned long long)max);
    }
    afile a;
    int rc = afile_open(&a, path, NULL, e);
    if (!rc) {
        rc = copy_fd(fd, &a, max, key, e);
        if (rc) afile_abort(&a);
        else rc = afile_commit(&a, e);
    }
    close(fd);
    if (!rc) store_progress(s, (uint64_t)st.st_size, (uint64_t)st.st_size);
    return rc;
}

static int local_get_range(store *s, const char *key, uint64_t off, size_t len, void *buf, size_t *got,
                           ts_err *e) {
    int fd;
    struct stat st;
    if (open_obj(s, key, &fd, &st, e)) return e ? e->code : TS_ENOTFOUND;
    if (off >= (uint64_t)st.st_size) {
        close(fd);
        return ts_fail(e, TS_EINVAL, "%s: %s: range starts at %llu, past the end (%llu bytes)", s->url, key,
                       (unsigned long long)off, (unsigned long long)st.st_size);
    }
    size_t want = (uint64_t)st.st_size - off < len ? (size_t)((uint64_t)st.st_size - off) : len;
    size_t n = 0;
    while (n < want) {
        ssize_t r = pread(fd, (uint8_t *)buf + n, want - n, (off_t)(off + n));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int err = errno;
            close(fd);
            return ts_fail(e, TS_EIO, "%s: %s: read failed: %s", s->url, key, strerror(err));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    *got = n;
    return TS_OK;
}

static int local_head(store *s, const char *key, store_info *info, ts_err *e) {
    int fd;
    struct stat st;
    if (open_obj(s, key, &fd, &st, e)) return e ? e->code : TS_ENOTFOUND;
    close(fd);
    info_from_stat(&st, info);
    return TS_OK;
}

static int local_del(store *s, const char *key, ts_err *e) {
    local *l = s->impl;
    if (reserved(key, e)) return e ? e->code : TS_EINVAL;
    char *path = key_path(l, key);
    if (!path) return ts_fail(e, TS_ENOMEM, "out of memory");
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        free(path);
        return TS_OK; /* a directory is not an object: nothing to delete */
    }
    if (unlink(path) && errno != ENOENT && errno != ENOTDIR) {
        int err = errno;
        free(path);
        return ts_fail(e, TS_EIO, "%s: delete %s: %s", s->url, key, strerror(err));
    }
    /* remove directories left empty, up to (not including) the root */
    size_t rootlen = strlen(l->root);
    for (char *slash = strrchr(path, '/'); slash && (size_t)(slash - path) > rootlen; slash = strrchr(path, '/')) {
        *slash = 0;
        if (rmdir(path)) break;
    }
    free(path);
    return TS_OK;
}

/* ------------------------------------------------------------------ list */

typedef struct walk_ctx {
    store_entry *v;
    size_t n, cap;
    const char *prefix;
    size_t plen;
    size_t keyoff; /* where keys start in a path */
    int err;
} walk_ctx;

static int by_key(const void *a, const void *b) {
    return strcmp(((const store_entry *)a)->key, ((const store_entry *)b)->key);
}

/* Recursion on dir (a path under root); a subdirectory is entered only when
 * its key can still match the prefix. */
static void walk(walk_ctx *w, const char *dir, int depth) {
    if (depth > STORE_KEY_MAX / 2) return;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno != ENOENT && errno != ENOTDIR) w->err = TS_EIO;
        return;
    }
    struct dirent *de;
    while (!w->err && (de = readdir(d))) {
        const char *nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..")) continue;
        if (depth == 0 && !strcmp(nm, TMP_DIR)) continue;
        char *path = ts_path_join(dir, nm);
        if (!path) {
            w->err = TS_ENOMEM;
            break;
        }
        struct stat st;
        if (lstat(path, &st)) {
            free(path);
            continue;
        }
        const char *key = path + w->keyoff;
        size_t klen = strlen(key);
        if (S_ISDIR(st.st_mode)) {
            /* enter when keys below "key/" can start with the prefix */
            bool enter = w->plen > klen ? !strncmp(w->prefix, key, klen) && w->prefix[klen] == '/'
                                        : !strncmp(key, w->prefix, w->plen);
            if (enter) walk(w, path, depth + 1);
            free(path);
            continue;
        }
        if (!S_ISREG(st.st_mode) || klen < w->plen || strncmp(key, w->prefix, w->plen) ||
            store_key_check(key, NULL)) {
            free(path);
            continue;
        }
        if (w->n == w->cap) {
            size_t ncap = w->cap ? 2 * w->cap : 256;
            store_entry *nv = realloc(w->v, ncap * sizeof *nv);
            if (!nv) {
                free(path);
                w->err = TS_ENOMEM;
                break;
            }
            w->v = nv;
            w->cap = ncap;
        }
        w->v[w->n].key = strdup(key);
        if (!w->v[w->n].key) {
            free(path);
            w->err = TS_ENOMEM;
            break;
        }
        info_from_stat(&st, &w->v[w->n].info);
        w->n++;
        free(path);
    }
    closedir(d);
}

static int local_list(store *s, const char *prefix, store_list_fn fn, void *ud, ts_err *e) {
    local *l = s->impl;
    walk_ctx w = {.prefix = prefix, .plen = strlen(prefix), .keyoff = strlen(l->root) + 1};
    if (!strcmp(l->root, "/")) w.keyoff = 1;
    walk(&w, l->root, 0);
    int rc = TS_OK;
    if (w.err) {
        rc = ts_fail(e, w.err, "%s: listing '%s' failed", s->url, prefix);
    } else {
        if (w.n) qsort(w.v, w.n, sizeof *w.v, by_key);
        for (size_t i = 0; i < w.n; i++)
            if (fn(ud, w.v[i].key, &w.v[i].info)) break;
    }
    for (size_t i = 0; i < w.n; i++) free(w.v[i].key);
    free(w.v);
    return rc;
}

static void local_close(store *s) {
    local *l = s->impl;
    if (!l) return;
    free(l->root);
    free(l->tmpdir);
    free(l);
}

static const store_backend local_backend = {
    .kind = "file",
    .put = local_put,
    .put_file = local_put_file,
    .get = local_get,
    .get_file = local_get_file,
    .get_range = local_get_range,
    .head = local_head,
    .del = local_del,
    .list = local_list,
    .abort_uploads = NULL,
    .close = local_close,
};

int store_local_open(store *s, const char *root, ts_err *e) {
    local *l = calloc(1, sizeof *l);
    if (!l) return ts_fail(e, TS_ENOMEM, "out of memory");
    l->root = strdup(root);
    l->tmpdir = ts_path_join(root, TMP_DIR);
    if (!l->root || !l->tmpdir) {
        free(l->root);
        free(l->tmpdir);
        free(l);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    s->impl = l;
    s->be = &local_backend;
    return TS_OK;
}
