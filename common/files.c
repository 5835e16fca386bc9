/* files.c - capped reads, atomic writes, directories, memory maps.
 *
 * Saved state is never written in place: it goes to a temporary file in the
 * same directory, is fsync'd, renamed over the target, and the directory is
 * fsync'd so the rename itself survives a power cut.  A crash at any point
 * leaves either the old file or the new one, never a mix. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "common.h"

void (*ts_write_atomic_hook)(const char *tmp_path);

int ts_read_file(const char *path, size_t max, uint8_t **out, size_t *len, ts_err *e) {
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ts_fail(e, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int err = errno;
        close(fd);
        return ts_fail(e, TS_EIO, "%s: %s", path, strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return ts_fail(e, TS_EINVAL, "%s: is a directory", path);
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
        close(fd);
        return ts_fail(e, TS_ETOOBIG, "%s: %lld bytes, over the limit of %zu", path,
                       (long long)st.st_size, max);
    }
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size : 65536;
    uint8_t *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return ts_fail(e, TS_ENOMEM, "%s: out of memory", path);
    }
    size_t n = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                /* one more byte tells whether the file grew past the cap */
                uint8_t probe;
                ssize_t r = read(fd, &probe, 1);
                if (r > 0) {
                    free(buf);
                    close(fd);
                    return ts_fail(e, TS_ETOOBIG, "%s: over the limit of %zu bytes", path, max);
                }
                break;
            }
            size_t ncap = cap * 2 > max ? max : cap * 2;
            if (ncap < 16) ncap = 16;
            uint8_t *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                close(fd);
                return ts_fail(e, TS_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            free(buf);
            close(fd);
            return ts_fail(e, TS_EIO, "%s: %s", path, strerror(err));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return TS_OK;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir_of(const char *path) {
    char *copy = strdup(path);
    if (!copy) return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int ts_write_atomicv(const char *path, const void *const *parts, const size_t *lens, int nparts,
                     ts_err *e) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 64);
    if (!tmp) return ts_fail(e, TS_ENOMEM, "out of memory");
    uint32_t r;
    ts_random_bytes(&r, sizeof r);
    snprintf(tmp, plen + 64, "%s.tmp.%ld.%08x", path, (long)getpid(), r);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        free(tmp);
        return ts_fail(e, TS_EIO, "%s: cannot create temporary file: %s", path, strerror(err));
    }
    for (int i = 0; i < nparts; i++) {
        if (write_all(fd, parts[i], lens[i])) {
            int err = errno;
            close(fd);
            unlink(tmp);
            free(tmp);
            return ts_fail(e, TS_EIO, "%s: write failed: %s", path, strerror(err));
        }
    }
    if (fsync(fd) || close(fd)) {
        int err = errno;
        unlink(tmp);
        free(tmp);
        return ts_fail(e, TS_EIO, "%s: fsync failed: %s", path, strerror(err));
    }
    if (ts_write_atomic_hook) ts_write_atomic_hook(tmp);
    if (rename(tmp, path)) {
        int err = errno;
        unlink(tmp);
        free(tmp);
        return ts_fail(e, TS_EIO, "%s: rename failed: %s", path, strerror(err));
    }
    free(tmp);
    if (fsync_dir_of(path)) return ts_fail(e, TS_EIO, "%s: directory fsync failed: %s", path, strerror(errno));
    return TS_OK;
}

int ts_write_atomic(const char *path, const void *data, size_t len, ts_err *e) {
    const void *parts[1] = {data};
    size_t lens[1] = {len};
    return ts_write_atomicv(path, parts, lens, 1, e);
}

int ts_mkdirs(const char *path, unsigned mode, ts_err *e) {
    char *p = strdup(path);
    if (!p) return ts_fail(e, TS_ENOMEM, "out of memory");
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == 0) {
            char c = p[i];
            p[i] = 0;
            if (mkdir(p, (mode_t)mode) && errno != EEXIST) {
                int err = errno;
                int rc = ts_fail(e, TS_EIO, "mkdir %s: %s", p, strerror(err));
                free(p);
                return rc;
            }
            p[i] = c;
        }
    }
    struct stat st;
    int ok = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    if (!ok) return ts_fail(e, TS_EIO, "%s: not a directory", path);
    return TS_OK;
}

bool ts_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

char *ts_path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *out = malloc(la + lb + 2);
    if (!out) return NULL;
    memcpy(out, a, la);
    size_t at = la;
    if (la && a[la - 1] != '/') out[at++] = '/';
    memcpy(out + at, b, lb + 1);
    return out;
}

char *ts_home_dir(void) {
    const char *h = getenv("TESSERA_HOME");
    if (h && h[0]) return strdup(h);
    const char *home = getenv("HOME");
    if (!home || !home[0]) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : "/tmp";
    }
    return ts_path_join(home, ".tessera");
}

int ts_mmap_open(const char *path, ts_mmap *m, ts_err *e) {
    m->data = NULL;
    m->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ts_fail(e, errno == ENOENT ? TS_ENOTFOUND : TS_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ts_fail(e, TS_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        m->data = (const uint8_t *)"";
        return TS_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return ts_fail(e, TS_EIO, "%s: mmap: %s", path, strerror(errno));
    m->data = p;
    m->len = (size_t)st.st_size;
    return TS_OK;
}

void ts_mmap_close(ts_mmap *m) {
    if (m->data && m->len) munmap((void *)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}
