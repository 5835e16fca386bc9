/* internal.h - what the storage backends share (not part of the public API). */
#ifndef TESSERA_STORAGE_INTERNAL_H
#define TESSERA_STORAGE_INTERNAL_H

#include "storage/storage.h"

typedef struct store_backend {
    const char *kind;
    int (*put)(store *s, const char *key, const void *data, size_t len, ts_err *e);
    int (*put_file)(store *s, const char *key, const char *path, ts_err *e);
    int (*get)(store *s, const char *key, size_t max, uint8_t **out, size_t *len, ts_err *e);
    int (*get_file)(store *s, const char *key, const char *path, uint64_t max, ts_err *e);
    int (*get_range)(store *s, const char *key, uint64_t off, size_t len, void *buf, size_t *got,
                     ts_err *e);
    int (*head)(store *s, const char *key, store_info *info, ts_err *e);
    int (*del)(store *s, const char *key, ts_err *e);
    int (*list)(store *s, const char *prefix, store_list_fn fn, void *ud, ts_err *e);
    int (*abort_uploads)(store *s, const char *prefix, double older_than_s, int *aborted,
                         ts_err *e);
    void (*close)(store *s);
} store_backend;

struct store {
    const store_backend *be;
    char url[STORE_URL_MAX]; /* without credentials */
    store_opts o;            /* defaults filled in; credential pointers cleared */
    void *impl;
};

/* A parsed s3:// URL.  Credentials are owned copies (wiped on free). */
typedef struct store_s3_url {
    char bucket[64];
    char prefix[STORE_KEY_MAX];   /* "" or segments without leading/trailing '/' */
    char endpoint[256];           /* scheme://host[:port] */
    char region[64];
    bool has_endpoint;
    char access_key[STORE_CRED_MAX];
    char secret_key[STORE_CRED_MAX];
    bool has_userinfo;
} store_s3_url;

int store_parse_s3_url(const char *url, store_s3_url *u, ts_err *e);
/* file:///abs/path -> "/abs/path" (percent-decoded) into out. */
int store_parse_file_url(const char *url, char *out, size_t cap, ts_err *e);
/* Writes the credential-free form of a URL. */
void store_s3_url_format(const store_s3_url *u, char *out, size_t cap);

int store_local_open(store *s, const char *root, ts_err *e);
int store_s3_open(store *s, const store_s3_url *u, const char *access, const char *secret,
                  const char *token, ts_err *e);

/* Shared helpers. */
int store_pct_decode(const char *in, size_t n, char *out, size_t cap);
void store_progress(store *s, uint64_t done, uint64_t total);

#endif
