/*
 * storage.h - object storage: a local directory or any S3-compatible store
 * (Cloudflare R2, AWS S3, MinIO, Swift's S3 layer) behind one interface.
 *
 * A store is named by a URL:
 *
 *   file:///abs/path                    keys are files under /abs/path
 *   s3://bucket[/prefix][?endpoint=https://host[:port]][&region=auto]
 *
 * An s3 URL may also carry credentials as user information
 * (s3://ACCESS:SECRET@bucket/...; percent-encoded), which is how a bucket
 * commitment names a peer's bucket; otherwise they come from store_opts, else
 * from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN).
 * Credentials are never logged and never appear in an error message; use
 * store_url() to print a store.  Without endpoint the AWS endpoint of the
 * region is used; region defaults to "auto" (R2) with an endpoint and to
 * "us-east-1" without one.  Requests are path-style and signed with SigV4.
 *
 * Keys are UTF-8 strings of at most STORE_KEY_MAX bytes made of '/'-separated
 * segments: no empty segment (no leading, trailing or doubled '/'), no "." or
 * ".." segment, no control characters (bytes < 0x20 and 0x7f), no NUL.  The
 * same keys are valid in both backends.  The store's prefix (s3) or directory
 * (file) is joined in front of every key and stripped from listed keys.
 *
 * Errors: TS_ENOTFOUND for a missing object, TS_EDENIED for a refused
 * credential or signature, TS_ETOOBIG for an object over the caller's cap,
 * TS_ETIMEOUT for a stalled or slow transfer, TS_ENET for a dead or failing
 * server (after the retries), TS_EINVAL for a bad key, URL or range.  Messages
 * name the operation, the key, and for S3 the HTTP status, the S3 error code
 * and message and the request id.
 *
 * Threads: a store handle may be used by several threads at once (the S3
 * backend keeps a pool of connections; the local backend has no shared
 * state).  store_close must not race with any other call on the handle.
 * Large transfers run their parts on `parallel` threads of their own.
 */
#ifndef TESSERA_STORAGE_H
#define TESSERA_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STORE_KEY_MAX 1024   /* bytes, without the store's prefix */
#define STORE_URL_MAX 1024   /* a store URL (or URL-form commitment) */
#define STORE_ETAG_MAX 80

typedef struct store store;

/* Progress of one put or get: bytes done of total (called from the transfer's
 * threads, one call at a time). */
typedef void (*store_progress_fn)(void *ud, uint64_t done, uint64_t total);

/* Options.  A zeroed struct means the defaults shown. */
typedef struct store_opts {
    const char *access_key;      /* NULL: URL user info, else $AWS_ACCESS_KEY_ID */
    const char *secret_key;      /* NULL: URL user info, else $AWS_SECRET_ACCESS_KEY */
    const char *session_token;   /* NULL: $AWS_SESSION_TOKEN (sent as x-amz-security-token) */
    bool no_env;                 /* never read AWS_* variables */
    double connect_timeout_s;    /* 0: 10 s */
    double stall_timeout_s;      /* 0: 30 s; a transfer slower than stall_bytes_per_s
                                    for this long is aborted (and retried) */
    int64_t stall_bytes_per_s;   /* 0: 1024 */
    double request_timeout_s;    /* 0: no limit on one request as a whole */
    int retries;                 /* attempts after the first; 0: 5; negative: none */
    double backoff_s;            /* 0: 0.25 s; attempt n waits about backoff * 2^n */
    double backoff_max_s;        /* 0: 20 s */
    uint64_t multipart_threshold;/* 0: 64 MiB; larger puts use multipart upload,
                                    larger gets use parallel ranged requests */
    uint64_t part_size;          /* 0: 16 MiB (at least 5 MiB for S3 multipart) */
    int parallel;                /* 0: 4 concurrent part/range requests */
    bool unsigned_payload;       /* send UNSIGNED-PAYLOAD instead of hashing bodies
                                    (only sensible over https) */
    store_progress_fn progress;
    void *progress_ud;
} store_opts;

/* One object's metadata. */
typedef struct store_info {
    uint64_t size;
    char etag[STORE_ETAG_MAX];  /* as the store gives it, without quotes */
    double last_modified;       /* seconds since the epoch */
} store_info;

/* Opens a store (no network traffic).  o may be NULL. */
int store_open(store **out, const char *url, const store_opts *o, ts_err *e);
void store_close(store *s);
/* The store's URL without credentials, for messages and logs. */
const char *store_url(const store *s);
/* "file" or "s3". */
const char *store_kind(const store *s);

/* Writes an object from memory / from a file.  Atomic: readers see the old
 * object or the new one, never a part (S3: single PUT, or a multipart upload
 * completed only after every part arrived and aborted on failure). */
int store_put(store *s, const char *key, const void *data, size_t len, ts_err *e);
int store_put_file(store *s, const char *key, const char *path, ts_err *e);

/* Reads a whole object into memory (malloc'd, NUL-terminated one byte past
 * *len).  Refuses (TS_ETOOBIG) an object larger than max before reading it. */
int store_get(store *s, const char *key, size_t max, uint8_t **out, size_t *len, ts_err *e);
/* Reads an object into a file, replaced atomically (temporary file, fsync,
 * rename).  max: 0 for no cap. */
int store_get_file(store *s, const char *key, const char *path, uint64_t max, ts_err *e);
/* Reads bytes [off, off+len) (fewer at the end of the object) into buf;
 * *got is the count.  A range starting at or past the end is TS_EINVAL. */
int store_get_range(store *s, const char *key, uint64_t off, size_t len, void *buf,
                    size_t *got, ts_err *e);
/* Metadata of one object (TS_ENOTFOUND when absent). */
int store_head(store *s, const char *key, store_info *info, ts_err *e);
/* Deletes an object; deleting an absent object succeeds. */
int store_delete(store *s, const char *key, ts_err *e);

/* Lists the objects whose key starts with prefix ("" for all), in byte order
 * of their keys, following S3 pagination.  fn returns 0 to go on, non-zero to
 * stop (store_list then returns TS_OK).  Keys are relative to the store. */
typedef int (*store_list_fn)(void *ud, const char *key, const store_info *info);
int store_list(store *s, const char *prefix, store_list_fn fn, void *ud, ts_err *e);

/* The same, collected: at most max_keys entries (TS_ETOOBIG past that). */
typedef struct store_entry {
    char *key;
    store_info info;
} store_entry;
typedef struct store_listing {
    store_entry *v;
    size_t n;
} store_listing;
int store_list_all(store *s, const char *prefix, size_t max_keys, store_listing *out,
                   ts_err *e);
void store_listing_free(store_listing *l);

/* Aborts the unfinished multipart uploads under prefix that started more than
 * older_than_s seconds ago (S3; a no-op for file stores).  *aborted (may be
 * NULL) counts them. */
int store_abort_uploads(store *s, const char *prefix, double older_than_s, int *aborted,
                        ts_err *e);

/* Checks a key against the rules above. */
int store_key_check(const char *key, ts_err *e);

/* ------------------------------------------------------------ key layout
 *
 * The objects of PROTOCOL section 4, one bucket (or store prefix) per
 * participant.  Windows and uids are plain decimal without padding.  Every
 * node builds and parses keys with these helpers only.  out must hold
 * STORE_LAYOUT_KEY_MAX bytes.
 */
#define STORE_LAYOUT_KEY_MAX 96
#define STORE_KEY_START_WINDOW "start_window"
#define STORE_KEY_LATEST "checkpoints/LATEST"

void store_key_gradient(char *out, uint64_t window, uint32_t uid);   /* gradients/{w}/{uid} */
void store_key_debug(char *out, uint64_t window, uint32_t uid);      /* debug/{w}/{uid} */
void store_key_peers(char *out, uint64_t first_effective_window);    /* peers/{w} */
void store_key_checkpoint(char *out, uint64_t window);               /* checkpoints/{w}/model.safetensors */
void store_key_manifest(char *out, uint64_t window);                 /* checkpoints/{w}/manifest.json */
void store_key_aggregate(char *out, uint64_t window);                /* aggregates/{w} */

typedef enum {
    STORE_OBJ_UNKNOWN,
    STORE_OBJ_GRADIENT,
    STORE_OBJ_DEBUG,
    STORE_OBJ_PEERS,
    STORE_OBJ_START_WINDOW,
    STORE_OBJ_CHECKPOINT,
    STORE_OBJ_MANIFEST,
    STORE_OBJ_LATEST,
    STORE_OBJ_AGGREGATE,
} store_obj_kind;

/* Parses a layout key; window and uid are set where the key has them.
 * Returns STORE_OBJ_UNKNOWN for anything that is not exactly a layout key
 * (leading zeros, signs and out-of-range numbers included). */
store_obj_kind store_key_parse(const char *key, uint64_t *window, uint32_t *uid);

/* Retention: deletes every object whose key is "{dir}/{w}" or "{dir}/{w}/..."
 * with a decimal window w < keep_from (dir: "gradients", "debug",
 * "aggregates", ...).  *deleted (may be NULL) counts them. */
int store_prune_windows(store *s, const char *dir, uint64_t keep_from, int *deleted,
                        ts_err *e);

/* ------------------------------------------------------ bucket commitments
 *
 * The read credentials a participant publishes on chain (docs/FORMATS.md
 * section 8).  Two forms:
 *
 *  R2 (Templar's layout), exactly 128 characters:
 *      account id (32, lower-case hex) || access key id (32) || secret (64)
 *    the bucket is named after the account id, the endpoint is
 *    https://<account id>.r2.cloudflarestorage.com, region "auto".
 *
 *  URL: a store URL with the credentials as user information,
 *      s3://ACCESS:SECRET@bucket[/prefix]?endpoint=https://host&region=R
 *    or file:///abs/path (local demo, no credentials), at most
 *    STORE_URL_MAX bytes.
 */
#define STORE_COMMIT_R2_LEN 128
#define STORE_CRED_MAX 256

typedef struct store_commitment {
    char url[STORE_URL_MAX];             /* store URL without credentials */
    char access_key[STORE_CRED_MAX];     /* "" when none */
    char secret_key[STORE_CRED_MAX];
} store_commitment;

/* Policy for commitments read from the chain. */
typedef enum {
    STORE_COMMIT_REMOTE = 0, /* https S3 endpoints only: no file://, no http:// */
    STORE_COMMIT_ANY = 1,    /* also file:// and http:// (local subnets, tests) */
} store_commit_policy;

int store_commitment_parse(const char *text, store_commit_policy policy, store_commitment *c,
                           ts_err *e);
/* Builds the R2 form's fields from its three parts. */
int store_commitment_r2(store_commitment *c, const char *account_id, const char *access_key,
                        const char *secret_key, ts_err *e);
/* Writes the commitment text: the 128-character form when the commitment is
 * an R2 bucket named after its account with 32/64-character credentials,
 * else the URL form.  cap: at least STORE_URL_MAX + 2 * STORE_CRED_MAX. */
int store_commitment_format(const store_commitment *c, char *out, size_t cap, ts_err *e);
/* Opens the store a commitment names with its credentials (o may be NULL;
 * its own credentials are ignored). */
int store_open_commitment(store **out, const store_commitment *c, const store_opts *o,
                          ts_err *e);

#ifdef __cplusplus
}
#endif

#endif
