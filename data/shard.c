/* shard.c - the llm.c token shard: header validation and writing.
 *
 * Layout (docs/FORMATS.md 5.1): 256 little-endian int32 -
 *   [0] magic 20240520   [1] version (1: uint16 tokens, 2: uint32 tokens)
 *   [2] token count      [3] vocabulary size or 0   [4] tokenizer id or 0
 *   [5..255] zero when written, ignored when read
 * then exactly count tokens.  llm.c's GPT-2 shards are version 1 with zeros
 * in [3] and [4]; its Llama 3 shards (magic 20240801, version 7, uint32) are
 * read too.  A reader trusts nothing: magic, version, a non-negative count,
 * a vocabulary that fits the token width, and a file size equal to
 * 1024 + count * width are all checked before a token is touched.  NumPy
 * .npy shards are parsed in npy.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "data.h"

static int32_t hdr_i32(const uint8_t *h, int i) { return (int32_t)ts_get_u32(h + 4 * i); }

int data_shard_check(const uint8_t *h, uint64_t file_bytes, data_shard_info *info, ts_err *e) {
    memset(info, 0, sizeof *info);
    info->format = DATA_FMT_LLMC;
    info->data_offset = DATA_HEADER_BYTES;
    info->file_bytes = file_bytes;
    if (file_bytes < DATA_HEADER_BYTES)
        return ts_fail(e, TS_EFORMAT,
                       "truncated shard: %llu bytes, shorter than the %d-byte header",
                       (unsigned long long)file_bytes, DATA_HEADER_BYTES);
    int32_t magic = hdr_i32(h, 0), version = hdr_i32(h, 1), count = hdr_i32(h, 2);
    int32_t vocab = hdr_i32(h, 3), tok = hdr_i32(h, 4);
    if (magic == DATA_SHARD_MAGIC) {
        if (version == DATA_SHARD_VERSION_U16) info->width = 2;
        else if (version == DATA_SHARD_VERSION_U32) info->width = 4;
        else
            return ts_fail(e, TS_EFORMAT,
                           "unsupported shard version %d (known: 1 = uint16 tokens, 2 = uint32 tokens)",
                           (int)version);
    } else if (magic == DATA_LLAMA3_MAGIC) {
        if (version != DATA_LLAMA3_VERSION)
            return ts_fail(e, TS_EFORMAT, "unsupported llm.c Llama 3 shard version %d (known: 7)",
                           (int)version);
        info->width = 4;
    } else {
        return ts_fail(e, TS_EFORMAT, "not a token shard: bad magic %d (expected %d)", (int)magic,
                       DATA_SHARD_MAGIC);
    }
    info->version = version;
    if (count < 0) return ts_fail(e, TS_EFORMAT, "negative token count %d", (int)count);
    if (vocab < 0) return ts_fail(e, TS_EFORMAT, "negative vocabulary size %d", (int)vocab);
    if (tok < 0) return ts_fail(e, TS_EFORMAT, "negative tokenizer id %d", (int)tok);
    if (info->width == 2 && vocab > 65536)
        return ts_fail(e, TS_EFORMAT, "vocabulary of %d does not fit uint16 tokens", (int)vocab);
    info->ntokens = (uint64_t)count;
    info->vocab_size = (uint32_t)vocab;
    info->tokenizer = (uint32_t)tok;
    return data_shard_check_size(info, DATA_HEADER_BYTES, file_bytes, "", "header", e);
}

int data_shard_check_size(const data_shard_info *info, uint64_t data_offset, uint64_t file_bytes,
                          const char *kind, const char *says, ts_err *e) {
    uint64_t want = data_offset + info->ntokens * (uint64_t)info->width;
    if (file_bytes < want)
        return ts_fail(e, TS_EFORMAT,
                       "truncated %sshard: %s says %llu tokens (%llu bytes) but the file has %llu bytes", kind,
                       says, (unsigned long long)info->ntokens, (unsigned long long)want,
                       (unsigned long long)file_bytes);
    if (file_bytes > want)
        return ts_fail(e, TS_EFORMAT,
                       "%sshard has %llu bytes after its %llu tokens (file %llu bytes, expected %llu)",
                       *kind ? kind : "", (unsigned long long)(file_bytes - want),
                       (unsigned long long)info->ntokens, (unsigned long long)file_bytes,
                       (unsigned long long)want);
    return TS_OK;
}

static void make_header(uint8_t *h, int width, uint64_t n, uint32_t vocab, uint32_t tok) {
    memset(h, 0, DATA_HEADER_BYTES);
    ts_put_u32(h + 0, DATA_SHARD_MAGIC);
    ts_put_u32(h + 4, width == 2 ? DATA_SHARD_VERSION_U16 : DATA_SHARD_VERSION_U32);
    ts_put_u32(h + 8, (uint32_t)n);
    ts_put_u32(h + 12, vocab);
    ts_put_u32(h + 16, tok);
}

static int check_write_args(uint64_t n, uint32_t vocab, ts_err *e) {
    if (vocab == 0 || vocab > (uint32_t)INT32_MAX)
        return ts_fail(e, TS_EINVAL, "vocabulary size %u out of range 1..%d", vocab, INT32_MAX);
    if (n > DATA_MAX_SHARD_TOKENS)
        return ts_fail(e, TS_ETOOBIG, "%llu tokens exceed the shard limit of %u",
                       (unsigned long long)n, DATA_MAX_SHARD_TOKENS);
    return TS_OK;
}

/* Packs tokens into little-endian uint16 or uint32 (checking the vocabulary). */
static int pack_tokens(uint8_t *dst, const uint32_t *src, size_t n, int width, uint32_t vocab,
                       ts_err *e) {
    for (size_t i = 0; i < n; i++) {
        if (src[i] >= vocab)
            return ts_fail(e, TS_EINVAL, "token %u at position %zu is outside the vocabulary of %u",
                           src[i], i, vocab);
        if (width == 2) ts_put_u16(dst + 2 * i, (uint16_t)src[i]);
        else ts_put_u32(dst + 4 * i, src[i]);
    }
    return TS_OK;
}

int data_shard_write(const char *path, const uint32_t *tokens, uint64_t n, uint32_t vocab,
                     uint32_t tok, ts_err *e) {
    int rc = check_write_args(n, vocab, e);
    if (rc) return rc;
    int width = vocab <= 65536 ? 2 : 4;
    uint8_t h[DATA_HEADER_BYTES];
    make_header(h, width, n, vocab, tok);
    size_t body = (size_t)n * (size_t)width;
    uint8_t *buf = malloc(body ? body : 1);
    if (!buf) return ts_fail(e, TS_ENOMEM, "out of memory for a shard of %llu tokens", (unsigned long long)n);
    rc = pack_tokens(buf, tokens, (size_t)n, width, vocab, e);
    if (!rc) {
        const void *parts[2] = {h, buf};
        size_t lens[2] = {DATA_HEADER_BYTES, body};
        rc = ts_write_atomicv(path, parts, lens, 2, e);
    }
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ writer */

struct data_writer {
    char *dir, *prefix;
    uint64_t shard_tokens;
    uint32_t vocab, tok;
    int width;
    int fd;               /* temporary file of the shard being filled, or -1 */
    char tmp[4096], final[4096];
    uint64_t cur;         /* tokens in the current shard */
    uint64_t total;
    int shards;
    uint8_t *buf;         /* packing buffer */
    size_t buf_cap;       /* tokens */
};

static int write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

int data_writer_open(const char *dir, const char *prefix, uint64_t shard_tokens, uint32_t vocab,
                     uint32_t tok, data_writer **out, ts_err *e) {
    *out = NULL;
    int rc = check_write_args(shard_tokens, vocab, e);
    if (rc) return rc;
    if (shard_tokens < 2) return ts_fail(e, TS_EINVAL, "a shard must hold at least 2 tokens");
    if (!prefix || !*prefix || strchr(prefix, '/'))
        return ts_fail(e, TS_EINVAL, "bad shard name prefix");
    if (ts_mkdirs(dir, 0755, e)) return ts_wrap(e, "shard directory");
    data_writer *w = calloc(1, sizeof *w);
    if (!w) return ts_fail(e, TS_ENOMEM, "out of memory");
    w->dir = strdup(dir);
    w->prefix = strdup(prefix);
    w->shard_tokens = shard_tokens;
    w->vocab = vocab;
    w->tok = tok;
    w->width = vocab <= 65536 ? 2 : 4;
    w->fd = -1;
    w->buf_cap = 1u << 16;
    w->buf = malloc(w->buf_cap * 4);
    if (!w->dir || !w->prefix || !w->buf) {
        data_writer_abort(w);
        return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    *out = w;
    return TS_OK;
}

static int start_shard(data_writer *w, ts_err *e) {
    snprintf(w->final, sizeof w->final, "%s/%s_%06d.bin", w->dir, w->prefix, w->shards);
    uint32_t r;
    ts_random_bytes(&r, sizeof r);
    snprintf(w->tmp, sizeof w->tmp, "%s/.%s_%06d.bin.tmp.%d.%08x", w->dir, w->prefix, w->shards,
             (int)getpid(), r);
    if (ts_path_exists(w->final))
        return ts_fail(e, TS_EEXIST, "%s already exists; refusing to overwrite it", w->final);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) return ts_fail(e, TS_EIO, "%s: %s", w->tmp, strerror(errno));
    uint8_t h[DATA_HEADER_BYTES];
    make_header(h, w->width, 0, w->vocab, w->tok); /* count patched at the end */
    if (write_all(w->fd, h, sizeof h)) {
        int err = errno;
        close(w->fd);
        w->fd = -1;
        unlink(w->tmp);
        return ts_fail(e, TS_EIO, "%s: %s", w->tmp, strerror(err));
    }
    w->cur = 0;
    return TS_OK;
}

static int finish_shard(data_writer *w, ts_err *e) {
    uint8_t h[DATA_HEADER_BYTES];
    make_header(h, w->width, w->cur, w->vocab, w->tok);
    int err = 0;
    if (pwrite(w->fd, h, sizeof h, 0) != (ssize_t)sizeof h) err = errno ? errno : EIO;
    if (!err && fsync(w->fd)) err = errno;
    if (close(w->fd) && !err) err = errno;
    w->fd = -1;
    if (!err && ts_path_exists(w->final)) {
        unlink(w->tmp);
        return ts_fail(e, TS_EEXIST, "%s appeared while writing; refusing to overwrite it", w->final);
    }
    if (!err && rename(w->tmp, w->final)) err = errno;
    if (err) {
        unlink(w->tmp);
        return ts_fail(e, TS_EIO, "%s: %s", w->final, strerror(err));
    }
    if (fsync_dir(w->dir)) return ts_fail(e, TS_EIO, "%s: fsync: %s", w->dir, strerror(errno));
    w->shards++;
    return TS_OK;
}

int data_writer_put(data_writer *w, const uint32_t *tokens, size_t n, ts_err *e) {
    while (n) {
        if (w->fd < 0) {
            int rc = start_shard(w, e);
            if (rc) return rc;
        }
        uint64_t room = w->shard_tokens - w->cur;
        size_t k = n < room ? n : (size_t)room;
        if (k > w->buf_cap) k = w->buf_cap;
        int rc = pack_tokens(w->buf, tokens, k, w->width, w->vocab, e);
        if (rc) return rc;
        if (write_all(w->fd, w->buf, k * (size_t)w->width))
            return ts_fail(e, TS_EIO, "%s: %s", w->tmp, strerror(errno));
        w->cur += k;
        w->total += k;
        tokens += k;
        n -= k;
        if (w->cur == w->shard_tokens) {
            rc = finish_shard(w, e);
            if (rc) return rc;
        }
    }
    return TS_OK;
}

int data_writer_close(data_writer *w, int *shards, ts_err *e) {
    if (shards) *shards = 0;
    if (!w) return TS_OK;
    int rc = TS_OK;
    if (w->fd >= 0) {
        if (w->cur > 0) {
            rc = finish_shard(w, e);
        } else {
            close(w->fd);
            w->fd = -1;
            unlink(w->tmp);
        }
    }
    if (shards) *shards = w->shards;
    data_writer_abort(w);
    return rc;
}

void data_writer_abort(data_writer *w) {
    if (!w) return;
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->tmp);
    }
    free(w->dir);
    free(w->prefix);
    free(w->buf);
    free(w);
}

uint64_t data_writer_tokens(const data_writer *w) { return w->total; }
int data_writer_shards(const data_writer *w) { return w->shards; }
