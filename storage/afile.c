/* afile.c - a file written in pieces (possibly at offsets, from several
 * threads) that appears at its path only when complete: a temporary file,
 * fsync, rename over the target, fsync of the directory.  On abort the
 * temporary file is removed and the target is untouched. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/afile.h"

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int afile_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int afile_open(afile *a, const char *dst, const char *tmpdir, ts_err *e) {
    memset(a, 0, sizeof *a);
    a->fd = -1;
    a->dst = strdup(dst);
    char *dir = tmpdir ? strdup(tmpdir) : dir_of(dst);
    const char *base = strrchr(dst, '/');
    base = base ? base + 1 : dst;
    if (!a->dst || !dir) {
        free(dir);
        free(a->dst);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    size_t cap = strlen(dir) + strlen(base) + 64;
    a->tmp = malloc(cap);
    if (!a->tmp) {
        free(dir);
        free(a->dst);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    for (int attempt = 0; attempt < 8; attempt++) {
        uint32_t r;
        ts_random_bytes(&r, sizeof r);
        /* A short base keeps long keys within NAME_MAX in the temporary dir. */
        snprintf(a->tmp, cap, "%s/.%.64s.tmp.%ld.%08x", dir, base, (long)getpid(), r);
        a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (a->fd >= 0 || errno != EEXIST) break;
    }
    int err = errno;
    free(dir);
    if (a->fd < 0) {
        int rc = ts_fail(e, err == ENOENT ? TS_ENOTFOUND : TS_EIO, "%s: cannot create a temporary file: %s",
                         dst, strerror(err));
        free(a->tmp);
        free(a->dst);
        a->tmp = a->dst = NULL;
        return rc;
    }
    return TS_OK;
}

int afile_pwrite(afile *a, const void *p, size_t n, uint64_t off) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = pwrite(a->fd, b, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

int afile_commit(afile *a, ts_err *e) {
    int rc = TS_OK;
    if (fsync(a->fd)) {
        rc = ts_fail(e, TS_EIO, "%s: fsync failed: %s", a->dst, strerror(errno));
        close(a->fd);
    } else if (close(a->fd)) {
        rc = ts_fail(e, TS_EIO, "%s: close failed: %s", a->dst, strerror(errno));
    }
    a->fd = -1;
    if (!rc && rename(a->tmp, a->dst)) {
        int err = errno;
        rc = ts_fail(e, err == EISDIR ? TS_EEXIST : TS_EIO, "%s: rename failed: %s", a->dst,
                     strerror(err));
    }
    if (rc) {
        unlink(a->tmp);
    } else {
        char *dir = dir_of(a->dst);
        if (!dir || afile_fsync_dir(dir)) rc = ts_fail(e, TS_EIO, "%s: fsync of the directory failed", a->dst);
        free(dir);
    }
    free(a->tmp);
    free(a->dst);
    a->tmp = a->dst = NULL;
    return rc;
}

void afile_abort(afile *a) {
    if (a->fd >= 0) close(a->fd);
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    free(a->dst);
    a->fd = -1;
    a->tmp = a->dst = NULL;
}
