/* tokenizer.c - the tokenizer interface and its byte-level implementation.
 *
 * Byte-level: byte b is token b (0..255); token 256 is the end-of-document
 * marker prep appends after each document; vocabulary 257.  A tokenizer.json
 * (bpe.c) is opened by its path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

static int byte_encode(const data_tokenizer *t, const uint8_t *text, size_t n, unsigned flags,
                       data_tokens *out, ts_err *e) {
    (void)t;
    (void)flags;
    if (out->n + n > out->cap) {
        size_t cap = out->cap ? out->cap : 1024;
        while (cap < out->n + n) cap *= 2;
        uint32_t *v = realloc(out->v, cap * sizeof *v);
        if (!v) return ts_fail(e, TS_ENOMEM, "out of memory for %zu tokens", cap);
        out->v = v;
        out->cap = cap;
    }
    for (size_t i = 0; i < n; i++) out->v[out->n++] = text[i];
    return TS_OK;
}

static int byte_decode(const data_tokenizer *t, uint32_t token, uint8_t *out, size_t cap) {
    (void)t;
    if (token > 255 || cap < 1) return -1;
    out[0] = (uint8_t)token;
    return 1;
}

static void byte_destroy(data_tokenizer *t) { free(t); }

static int open_byte(data_tokenizer **out, ts_err *e) {
    data_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return ts_fail(e, TS_ENOMEM, "out of memory");
    t->name = "byte";
    t->id = DATA_TOK_BYTE;
    t->vocab_size = 257;
    t->eot = 256;
    t->encode = byte_encode;
    t->decode = byte_decode;
    t->destroy = byte_destroy;
    *out = t;
    return TS_OK;
}

int data_tokenizer_open(const char *name, data_tokenizer **out, ts_err *e) {
    *out = NULL;
    if (name && !strcmp(name, "byte")) return open_byte(out, e);
    size_t n = name ? strlen(name) : 0;
    if (n > 5 && !strcmp(name + n - 5, ".json")) return data_tokenizer_load(name, NULL, out, e);
    return ts_fail(e, TS_EUNSUPPORTED, "unknown tokenizer '%s' (byte, or the path of a tokenizer.json)",
                   name ? name : "");
}

int data_tokenizer_for_id(uint32_t id, data_tokenizer **out, ts_err *e) {
    *out = NULL;
    if (id == DATA_TOK_BYTE) return open_byte(out, e);
    if (id == DATA_TOK_GPT2)
        return ts_fail(e, TS_EUNSUPPORTED, "GPT-2 tokens: give the tokenizer.json (--tokenizer)");
    if (id == DATA_TOK_JSON)
        return ts_fail(e, TS_EUNSUPPORTED,
                       "the shards were made with a tokenizer.json (prep.json names it): give it with --tokenizer");
    return ts_fail(e, TS_EUNSUPPORTED, "no tokenizer with id %u", id);
}

void data_tokenizer_close(data_tokenizer *t) {
    if (t && t->destroy) t->destroy(t);
}

int data_detokenize(const data_tokenizer *t, const uint32_t *tok, size_t n, bool specials,
                    uint8_t **out, size_t *len, ts_err *e) {
    *out = NULL;
    *len = 0;
    size_t cap = 256, used = 0;
    uint8_t *p = malloc(cap);
    if (!p) return ts_fail(e, TS_ENOMEM, "out of memory");
    uint8_t b[DATA_MAX_TOKEN_BYTES + 32];
    for (size_t i = 0; i < n; i++) {
        int k = t->decode(t, tok[i], b, sizeof b);
        if (k < 0) {
            if (specials && tok[i] == t->eot && t->id == DATA_TOK_BYTE)
                k = snprintf((char *)b, sizeof b, "<|endoftext|>");
            else if (specials) {
                /* a special token: its text, when the tokenizer has it */
                int r = t->id == DATA_TOK_JSON ? data_tokenizer_special_text(t, tok[i], b, sizeof b) : -1;
                k = r >= 0 ? r : snprintf((char *)b, sizeof b, "<|%u|>", tok[i]);
            } else {
                continue;
            }
        }
        if (used + (size_t)k > cap) {
            while (used + (size_t)k > cap) cap *= 2;
            uint8_t *q = realloc(p, cap);
            if (!q) {
                free(p);
                return ts_fail(e, TS_ENOMEM, "out of memory");
            }
            p = q;
        }
        memcpy(p + used, b, (size_t)k);
        used += (size_t)k;
    }
    size_t skip = 0;
    while ((int)skip < t->strip_leading && skip < used && p[skip] == ' ') skip++;
    memmove(p, p + skip, used - skip);
    *out = p;
    *len = used - skip;
    return TS_OK;
}
