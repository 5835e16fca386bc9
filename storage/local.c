/* local.c - the file:// backend: each key is a file under the store's root
 * directory ('/' in keys separates directories).
 *
 * Writes go to a temporary file in ROOT/.tessera-tmp (same file system), are
 * fsync'd and renamed into place, so a reader sees the old object or the new
 * one, never a part; a crash leaves at most a stray temporary file, which
 * listings never show.  Keys cannot escape the root: the front end refuses
 * "..", "." and empty segments, and every segment of a key is opened on its
 * own, relative to the descriptor of the directory before it, with O_NOFOLLOW
 * (O_DIRECTORY for the directories): a symbolic link anywhere in a key, or as
 * .tessera-tmp, is refused (TS_EDENIED, naming the key and the link), never
 * followed, so nothing outside the root is read, written, created or deleted
 * through one.  Listings neither show nor enter links.  The root itself is
 * opened as given (it may be a link: it is the operator's choice).  One limit
 * the S3 backend does not have: a key cannot be both an object and the
 * directory of other keys ("a" and "a/b"). */
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
#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

typedef struct local {
    char *root;
} local;

static int reserved(const char *key, ts_err *e) {
    size_t n = strlen(TMP_DIR);
    if (!strncmp(key, TMP_DIR, n) && (key[n] == '/' || key[n] == 0))
        return ts_fail(e, TS_EINVAL, "key '%.200s' is reserved in file stores", key);
    return TS_OK;
}

static void info_from_stat(const struct stat *st, store_info *info) {
    info->size = (uint64_t)st->st_size;
    info->last_modified = (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec * 1e-9;
    snprintf(info->etag, sizeof info->etag, "%llx-%llx-%llx",
             (unsigned long long)st->st_mtim.tv_sec * 1000000000ull + (unsigned long long)st->st_mtim.tv_nsec,
             (unsigned long long)st->st_size, (unsigned long long)st->st_ino);
}

/* ------------------------------------------- resolution without links
 *
 * A key split into its segments; kpath_dirs opens the directory made of the
 * first n segments, one openat(O_NOFOLLOW | O_DIRECTORY) per segment from the
 * root's descriptor.  A failure leaves errno: ELOOP when a segment is a
 * symbolic link (kp->bad is its index), ENOTDIR when it is a file, ENOENT
 * when it is missing. */
typedef struct kpath {
    const char *key;
    char buf[STORE_KEY_MAX + 1];
    char *seg[STORE_KEY_MAX / 2 + 1];
    int n;
    int bad; /* the segment found to be a symbolic link, else -1 */
} kpath;

static int kpath_split(kpath *kp, const char *key) {
    size_t len = strlen(key);
    if (len > STORE_KEY_MAX) return -1;
    memcpy(kp->buf, key, len + 1);
    kp->key = key;
    kp->n = 0;
    kp->bad = -1;
    for (char *p = kp->buf;;) {
        kp->seg[kp->n++] = p;
        char *slash = strchr(p, '/');
        if (!slash) break;
        *slash = 0;
        p = slash + 1;
    }
    return 0;
}

static const char *kpath_base(const kpath *kp) { return kp->seg[kp->n - 1]; }

/* Length of the key up to the end of segment i. */
static int kpath_prefix_len(const kpath *kp, int i) {
    return (int)(kp->seg[i] - kp->buf) + (int)strlen(kp->seg[i]);
}

/* What the name in dirfd is, for an open that failed with ELOOP or ENOTDIR:
 * ELOOP for a symbolic link, ENOTDIR for anything else that exists, else the
 * lookup's own error. */
static int classify(int dirfd, const char *name, int err) {
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW)) return errno;
    if (S_ISLNK(st.st_mode)) return ELOOP;
    return err == ELOOP ? ENOTDIR : err;
}

static int open_root(const local *l) { return open(l->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC); }

/* Opens name in dirfd as a directory, never following a link; create: made
 * (mode 0755) when missing. */
static int open_dir_at(int dirfd, const char *name, bool create) {
    int fd = openat(dirfd, name, DIR_FLAGS);
    if (fd < 0 && errno == ENOENT && create) {
        if (mkdirat(dirfd, name, 0755) && errno != EEXIST) return -1;
        fd = openat(dirfd, name, DIR_FLAGS);
    }
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) errno = classify(dirfd, name, errno);
    return fd;
}

static int kpath_dirs(int rootfd, kpath *kp, int n, bool create) {
    int fd = dup(rootfd);
    for (int i = 0; fd >= 0 && i < n; i++) {
        int next = open_dir_at(fd, kp->seg[i], create);
        int err = errno;
        close(fd);
        if (next < 0) {
            if (err == ELOOP) kp->bad = i;
            errno = err;
            return -1;
        }
        fd = next;
    }
    return fd;
}

/* The error for a failed resolution of kp (errno err) during `op`. */
static int path_error(store *s, const char *op, const kpath *kp, int err, ts_err *e) {
    if (err == ELOOP) {
        int bad = kp->bad >= 0 ? kp->bad : kp->n - 1;
        return ts_fail(e, TS_EDENIED,
                       "%s: %s %s: refused: '%.*s' is a symbolic link (a file store never follows links)", s->url,
                       op, kp->key, kpath_prefix_len(kp, bad), kp->key);
    }
    if (err == ENOENT || err == ENOTDIR) return ts_fail(e, TS_ENOTFOUND, "%s: %s: no such object", s->url, kp->key);
    return ts_fail(e, TS_EIO, "%s: %s %s: %s", s->url, op, kp->key, strerror(err));
}

/* Opens an object for reading; a directory or anything not a regular file is
 * "not found", a link anywhere in the key is refused. */
static int open_obj(store *s, const char *op, const char *key, int *fd, struct stat *st, ts_err *e) {
    local *l = s->impl;
    *fd = -1;
    if (reserved(key, e)) return e ? e->code : TS_EINVAL;
    kpath kp;
    if (kpath_split(&kp, key)) return ts_fail(e, TS_EINVAL, "%s: key too long", s->url);
    int rootfd = open_root(l);
    if (rootfd < 0) return path_error(s, op, &kp, errno, e);
    int dfd = kpath_dirs(rootfd, &kp, kp.n - 1, false);
    int err = errno;
    close(rootfd);
    if (dfd < 0) return path_error(s, op, &kp, err, e);
    /* O_NONBLOCK: a FIFO planted in the store must not hang the open */
    *fd = openat(dfd, kpath_base(&kp), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    err = errno;
    if (*fd < 0 && (err == ELOOP || err == ENOTDIR)) err = classify(dfd, kpath_base(&kp), err);
    close(dfd);
    if (*fd < 0) return path_error(s, op, &kp, err, e);
    if (fstat(*fd, st) || !S_ISREG(st->st_mode)) {
        close(*fd);
        *fd = -1;
        return ts_fail(e, TS_ENOTFOUND, "%s: %s: no such object", s->url, key);
    }
    return TS_OK;
}

/* ------------------------------------------------------------------- put */

/* Writes through `fill` into a temporary file in ROOT/.tessera-tmp, then
 * renames it to the key in the key's directory (opened without links).  The
 * rename is retried when a concurrent delete removed the (empty) directory. */
typedef int (*fill_fn)(afile *a, void *ud, ts_err *e);

static int put_with(store *s, const char *key, uint64_t total, fill_fn fill, void *ud, ts_err *e) {
    local *l = s->impl;
    if (reserved(key, e)) return e ? e->code : TS_EINVAL;
    kpath kp;
    if (kpath_split(&kp, key)) return ts_fail(e, TS_EINVAL, "%s: key too long", s->url);
    if (ts_mkdirs(l->root, 0755, e)) return ts_wrap(e, "%s: put %s", s->url, key);
    int rootfd = open_root(l);
    if (rootfd < 0) return path_error(s, "put", &kp, errno, e);
    int tfd = open_dir_at(rootfd, TMP_DIR, true);
    if (tfd < 0) {
        int err = errno;
        close(rootfd);
        if (err == ELOOP)
            return ts_fail(e, TS_EDENIED,
                           "%s: put %s: refused: the temporary directory '" TMP_DIR
                           "' is a symbolic link (a file store never follows links)",
                           s->url, key);
        return ts_fail(e, TS_EIO, "%s: put %s: %s: %s", s->url, key, TMP_DIR, strerror(err));
    }
    /* the temporary file; a short base keeps long keys within NAME_MAX */
    char tmp[128];
    afile a = {.fd = -1, .tmp = tmp, .dst = (char *)key};
    for (int attempt = 0; attempt < 8; attempt++) {
        uint32_t r;
        ts_random_bytes(&r, sizeof r);
        snprintf(tmp, sizeof tmp, ".%.64s.tmp.%ld.%08x", kpath_base(&kp), (long)getpid(), r);
        a.fd = openat(tfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (a.fd >= 0 || errno != EEXIST) break;
    }
    int rc = TS_OK;
    if (a.fd < 0) {
        rc = ts_fail(e, TS_EIO, "%s: put %s: cannot create a temporary file: %s", s->url, key, strerror(errno));
        close(tfd);
        close(rootfd);
        return rc;
    }
    rc = fill(&a, ud, e);
    if (!rc && fsync(a.fd)) rc = ts_fail(e, TS_EIO, "%s: put %s: fsync failed: %s", s->url, key, strerror(errno));
    if (close(a.fd) && !rc) rc = ts_fail(e, TS_EIO, "%s: put %s: close failed: %s", s->url, key, strerror(errno));
    bool renamed = false;
    for (int attempt = 0; !rc && !renamed; attempt++) {
        int dfd = kpath_dirs(rootfd, &kp, kp.n - 1, true);
        if (dfd < 0) {
            int err = errno;
            if (err == ENOENT && attempt < 2) continue; /* a directory removed under us */
            if (err == ELOOP) rc = path_error(s, "put", &kp, err, e);
            else if (err == ENOTDIR)
                rc = ts_fail(e, TS_EEXIST, "%s: put %s: a directory of the key is an object", s->url, key);
            else rc = ts_fail(e, TS_EIO, "%s: put %s: %s", s->url, key, strerror(err));
            break;
        }
        struct stat st;
        if (!fstatat(dfd, kpath_base(&kp), &st, AT_SYMLINK_NOFOLLOW) && S_ISLNK(st.st_mode)) {
            kp.bad = kp.n - 1;
            rc = path_error(s, "put", &kp, ELOOP, e);
        } else if (!renameat(tfd, tmp, dfd, kpath_base(&kp))) {
            renamed = true;
            if (fsync(dfd)) rc = ts_fail(e, TS_EIO, "%s: put %s: fsync of the directory failed", s->url, key);
        } else {
            int err = errno;
            /* ENOENT: the directory vanished under a concurrent delete */
            if (err != ENOENT || attempt >= 2)
                rc = err == EISDIR || err == ENOTEMPTY || err == EEXIST
                         ? ts_fail(e, TS_EEXIST, "%s: put %s: the key is a directory of other keys", s->url, key)
                         : ts_fail(e, TS_EIO, "%s: put %s: rename failed: %s", s->url, key, strerror(err));
        }
        close(dfd);
    }
    if (!renamed) unlinkat(tfd, tmp, 0);
    close(tfd);
    close(rootfd);
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
    int orc = open_obj(s, "get", key, &fd, &st, e);
    if (orc) return orc;
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
    int orc = open_obj(s, "get", key, &fd, &st, e);
    if (orc) return orc;
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
    int orc = open_obj(s, "get", key, &fd, &st, e);
    if (orc) return orc;
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
    int orc = open_obj(s, "stat", key, &fd, &st, e);
    if (orc) return orc;
    close(fd);
    info_from_stat(&st, info);
    return TS_OK;
}

/* Deletes the file, then the directories it leaves empty, each removed
 * from its parent's descriptor (resolved without links again), up to and
 * not including the root. */
static int local_del(store *s, const char *key, ts_err *e) {
    local *l = s->impl;
    if (reserved(key, e)) return e ? e->code : TS_EINVAL;
    kpath kp;
    if (kpath_split(&kp, key)) return ts_fail(e, TS_EINVAL, "%s: key too long", s->url);
    int rootfd = open_root(l);
    if (rootfd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return TS_OK; /* no store, no object */
        return path_error(s, "delete", &kp, errno, e);
    }
    int dfd = kpath_dirs(rootfd, &kp, kp.n - 1, false);
    if (dfd < 0) {
        int err = errno;
        close(rootfd);
        if (err == ENOENT || err == ENOTDIR) return TS_OK;
        return path_error(s, "delete", &kp, err, e);
    }
    struct stat st;
    int rc = TS_OK;
    if (!fstatat(dfd, kpath_base(&kp), &st, AT_SYMLINK_NOFOLLOW)) {
        if (S_ISDIR(st.st_mode)) {
            close(dfd);
            close(rootfd);
            return TS_OK; /* a directory is not an object: nothing to delete */
        }
        if (S_ISLNK(st.st_mode)) {
            kp.bad = kp.n - 1;
            rc = path_error(s, "delete", &kp, ELOOP, e);
        }
    }
    if (!rc && unlinkat(dfd, kpath_base(&kp), 0) && errno != ENOENT)
        rc = ts_fail(e, TS_EIO, "%s: delete %s: %s", s->url, key, strerror(errno));
    close(dfd);
    /* remove directories left empty: segment i from the directory of the
     * segments before it; a link or a non-empty directory ends the climb */
    for (int i = kp.n - 2; !rc && i >= 0; i--) {
        int pfd = kpath_dirs(rootfd, &kp, i, false);
        if (pfd < 0) break;
        int gone = unlinkat(pfd, kp.seg[i], AT_REMOVEDIR);
        close(pfd);
        if (gone) break;
    }
    close(rootfd);
    return rc;
}

/* ------------------------------------------------------------------ list */

typedef struct walk_ctx {
    store_entry *v;
    size_t n, cap;
    const char *prefix;
    size_t plen;
    int err;
} walk_ctx;

static int by_key(const void *a, const void *b) {
    return strcmp(((const store_entry *)a)->key, ((const store_entry *)b)->key);
}

/* Recursion on the directory d, whose keys start with base ("" at the root,
 * else "dir/"); a subdirectory is entered only when its key can still match
 * the prefix, and opened without following a link (links are skipped: they
 * are neither objects nor directories of a file store). */
static void walk(walk_ctx *w, DIR *d, const char *base, int depth) {
    struct dirent *de;
    size_t blen = strlen(base);
    while (!w->err && (de = readdir(d))) {
        const char *nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..")) continue;
        if (depth == 0 && !strcmp(nm, TMP_DIR)) continue;
        struct stat st;
        if (fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW)) continue;
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) continue;
        size_t nlen = strlen(nm);
        if (blen + nlen + 1 > STORE_KEY_MAX) continue;
        char *key = malloc(blen + nlen + 2); /* on the heap: the recursion may be deep */
        if (!key) {
            w->err = TS_ENOMEM;
            break;
        }
        memcpy(key, base, blen);
        memcpy(key + blen, nm, nlen + 1);
        size_t klen = blen + nlen;
        if (S_ISDIR(st.st_mode)) {
            /* enter when keys below "key/" can start with the prefix */
            bool enter = w->plen > klen ? !strncmp(w->prefix, key, klen) && w->prefix[klen] == '/'
                                        : !strncmp(key, w->prefix, w->plen);
            if (!enter || depth >= STORE_KEY_MAX / 2) {
                free(key);
                continue;
            }
            int fd = openat(dirfd(d), nm, DIR_FLAGS);
            if (fd < 0) {
                /* gone, or replaced by a file or a link since fstatat: skipped */
                if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP) w->err = TS_EIO;
                free(key);
                continue;
            }
            DIR *sub = fdopendir(fd);
            if (!sub) {
                close(fd);
                free(key);
                w->err = TS_ENOMEM;
                break;
            }
            key[klen] = '/';
            key[klen + 1] = 0;
            walk(w, sub, key, depth + 1);
            closedir(sub);
            free(key);
            continue;
        }
        if (klen < w->plen || strncmp(key, w->prefix, w->plen) || store_key_check(key, NULL)) {
            free(key);
            continue;
        }
        if (w->n == w->cap) {
            size_t ncap = w->cap ? 2 * w->cap : 256;
            store_entry *nv = realloc(w->v, ncap * sizeof *nv);
            if (!nv) {
                free(key);
                w->err = TS_ENOMEM;
                break;
            }
            w->v = nv;
            w->cap = ncap;
        }
        w->v[w->n].key = key; /* owned by the listing now */
        info_from_stat(&st, &w->v[w->n].info);
        w->n++;
    }
}

static int local_list(store *s, const char *prefix, store_list_fn fn, void *ud, ts_err *e) {
    local *l = s->impl;
    walk_ctx w = {.prefix = prefix, .plen = strlen(prefix)};
    DIR *d = opendir(l->root);
    if (d) {
        walk(&w, d, "", 0);
        closedir(d);
    } else if (errno != ENOENT && errno != ENOTDIR) {
        w.err = TS_EIO;
    }
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
    if (!l->root) {
        free(l);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    s->impl = l;
    s->be = &local_backend;
    return TS_OK;
}
