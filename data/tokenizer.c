/* tokenizer.c - the tokenizer interface and its byte-level implementation.
 *
 * Byte-level: byte b is token b (0..255); token 256 is the end-of-document
 * marker prep appends after each document; vocabulary 257.  A BPE tokenizer
 * joins by filling a data_tokenizer table and a name here. */
#include <stdlib.h>
#include <string.h>

#include "data.h"

static int byte_encode(const data_tokenizer *t, const uint8_t *text, size_t n, uint32_t *out,
                       size_t *nout, ts_err *e) {
    (void)t;
    (void)e;
    for (size_t i = 0; i < n; i++) out[i] = text[i];
    *nout = n;
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
    return ts_fail(e, TS_EUNSUPPORTED, "unknown tokenizer '%s' (known: byte)", name ? name : "");
}

int data_tokenizer_for_id(uint32_t id, data_tokenizer **out, ts_err *e) {
    *out = NULL;
    if (id == DATA_TOK_BYTE) return open_byte(out, e);
    if (id == DATA_TOK_GPT2)
        return ts_fail(e, TS_EUNSUPPORTED, "the GPT-2 BPE tokenizer is not built in yet");
    return ts_fail(e, TS_EUNSUPPORTED, "no tokenizer with id %u", id);
}

void data_tokenizer_close(data_tokenizer *t) {
    if (t && t->destroy) t->destroy(t);
}
