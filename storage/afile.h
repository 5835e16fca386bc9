/* afile.h - atomic file replacement written in pieces (storage internal). */
#ifndef TESSERA_STORAGE_AFILE_H
#define TESSERA_STORAGE_AFILE_H

#include <stdint.h>

#include "common/common.h"

typedef struct afile {
    int fd;
    char *tmp, *dst;
} afile;

/* Creates the temporary file in tmpdir (NULL: beside dst, which must be on
 * the same file system as tmpdir). */
int afile_open(afile *a, const char *dst, const char *tmpdir, ts_err *e);
/* pwrite of all n bytes at off (thread-safe); -1 with errno on failure. */
int afile_pwrite(afile *a, const void *p, size_t n, uint64_t off);
/* fsync, rename over dst, fsync dst's directory; the temporary file is removed
 * on failure. */
int afile_commit(afile *a, ts_err *e);
void afile_abort(afile *a);
int afile_fsync_dir(const char *dir);

#endif
