/*
 * scale.h - SCALE, the byte format of Substrate chains (subtensor), and the
 * hashes its storage keys are built from.
 *
 * Everything a Substrate node sends us (metadata, storage values, runtime-API
 * results, events) is SCALE and comes from the network, so the reader is
 * bounds-checked and never reads past the end: the first failure sets a
 * sticky error in the reader and every later read fails too, so a parser can
 * read a whole structure and check once.  Lengths are checked against the
 * bytes that remain before anything is allocated.
 *
 * The format, briefly: integers are little-endian of fixed width; a "compact"
 * integer takes 1, 2 or 4 bytes (6, 14 or 30 bits of value, the low two bits
 * of the first byte say which) or a byte 0b(n-4)11 followed by n bytes (n in
 * 4..67); only the shortest form of a value is accepted.  bool is one byte 0
 * or 1; Option<T> is 0, or 1 followed by T; a Vec or a string is a compact
 * length then the items; an enum is a u8 variant index then that variant's
 * fields; structs, tuples and fixed arrays are their items one after another.
 *
 * Writers grow as needed; a failed allocation is sticky like a read error.
 * Functions return 0 or a TS_E* code (TS_EFORMAT for malformed input,
 * TS_ENOMEM, TS_EINVAL for a bad argument).
 */
#ifndef TESSERA_CHAIN_SCALE_H
#define TESSERA_CHAIN_SCALE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ reader */

typedef struct scale_reader {
    const uint8_t *p;
    size_t len;
    size_t pos;       /* bytes consumed */
    int err;          /* 0, or TS_EFORMAT after the first failed read (sticky) */
    const char *why;  /* static text saying what failed first */
} scale_reader;

void scale_reader_init(scale_reader *r, const void *p, size_t len);
size_t scale_remaining(const scale_reader *r);
/* Marks the reader failed (if it is not already) and returns TS_EFORMAT. */
int scale_fail(scale_reader *r, const char *why);

/* Fixed-size reads; on failure the output is zeroed. */
int scale_get_bytes(scale_reader *r, void *dst, size_t n);
/* A pointer to the next n bytes inside the input (no copy), or NULL. */
const uint8_t *scale_get_ptr(scale_reader *r, size_t n);
int scale_get_u8(scale_reader *r, uint8_t *v);
int scale_get_u16(scale_reader *r, uint16_t *v);
int scale_get_u32(scale_reader *r, uint32_t *v);
int scale_get_u64(scale_reader *r, uint64_t *v);
/* bool: a byte that must be 0 or 1. */
int scale_get_bool(scale_reader *r, bool *v);
/* Option tag: a byte that must be 0 (None) or 1 (Some). */
int scale_get_option(scale_reader *r, bool *some);

/* Compact integers.  Non-canonical encodings (a value in a longer form than
 * it needs) are refused.  _le reads any value up to u128 into 16 bytes,
 * little-endian; the others fail when the value does not fit. */
int scale_get_compact_le(scale_reader *r, uint8_t out[16]);
int scale_get_compact(scale_reader *r, uint64_t *v);
int scale_get_compact_u32(scale_reader *r, uint32_t *v);
/* A compact length prefix for n items each at least min_item bytes long;
 * fails unless n * min_item fits in what remains (min_item 0: n must be at
 * most max_zero_items).  Call before allocating n items. */
int scale_get_len(scale_reader *r, size_t *n, size_t min_item, size_t max_zero_items);
/* A SCALE string (compact length + UTF-8 bytes) into a malloc'd NUL-ended
 * copy; invalid UTF-8 and embedded NULs are refused.  *s is NULL on failure. */
int scale_get_str(scale_reader *r, char **s, size_t *len);
/* True when n bytes are well-formed UTF-8 (NUL allowed). */
bool scale_utf8_ok(const uint8_t *s, size_t n);

/* ------------------------------------------------------------------ writer */

typedef struct scale_writer {
    uint8_t *p;
    size_t len;
    size_t cap;
    int err;  /* 0, or TS_ENOMEM after a failed allocation (sticky) */
} scale_writer;

#define SCALE_WRITER_INIT {0}
void scale_writer_init(scale_writer *w);
void scale_writer_free(scale_writer *w);
/* Hands the bytes to the caller (free them) and resets the writer. */
uint8_t *scale_writer_take(scale_writer *w, size_t *len);

int scale_put(scale_writer *w, const void *p, size_t n);
int scale_put_u8(scale_writer *w, uint8_t v);
int scale_put_u16(scale_writer *w, uint16_t v);
int scale_put_u32(scale_writer *w, uint32_t v);
int scale_put_u64(scale_writer *w, uint64_t v);
int scale_put_bool(scale_writer *w, bool v);
int scale_put_compact(scale_writer *w, uint64_t v);
/* Compact of an unsigned value given as n little-endian bytes (n <= 16). */
int scale_put_compact_le(scale_writer *w, const uint8_t *le, size_t n);
/* Compact length then the bytes (Vec<u8>, String). */
int scale_put_vec(scale_writer *w, const void *p, size_t n);
int scale_put_str(scale_writer *w, const char *s);

/* ------------------------------------------------- big integers as text */

/* n little-endian bytes (two's complement when is_signed) as decimal text.
 * Fails (TS_ETOOBIG) when cap is too small; 80 bytes hold any 256-bit value. */
int scale_le_to_dec(const uint8_t *le, size_t n, bool is_signed, char *out, size_t cap);
/* Decimal text ("123", "-5" when is_signed) into n little-endian bytes;
 * TS_EINVAL for malformed text or a value outside the type. */
int scale_dec_to_le(const char *s, uint8_t *le, size_t n, bool is_signed);

/* "0x"-prefixed lower-case hex of n bytes, malloc'd (NULL when out of memory). */
char *scale_hex(const void *p, size_t n);
/* "0x..." (prefix required) into a malloc'd buffer; TS_EINVAL when malformed. */
int scale_unhex(const char *s, uint8_t **out, size_t *n);

/* ------------------------------------------------------------------ hashes */

/* xxHash64 (XXH64) of n bytes. */
uint64_t scale_xxh64(const void *p, size_t n, uint64_t seed);
/* Substrate's TwoX: xxHash64 with seeds 0, 1, ... each written little-endian. */
void scale_twox64(const void *p, size_t n, uint8_t out[8]);
void scale_twox128(const void *p, size_t n, uint8_t out[16]);
void scale_twox256(const void *p, size_t n, uint8_t out[32]);
/* BLAKE2b with 16- and 32-byte output (libsodium). */
void scale_blake2_128(const void *p, size_t n, uint8_t out[16]);
void scale_blake2_256(const void *p, size_t n, uint8_t out[32]);

/* Storage hashers, numbered as in the metadata. */
typedef enum {
    SCALE_HASH_BLAKE2_128 = 0,
    SCALE_HASH_BLAKE2_256 = 1,
    SCALE_HASH_BLAKE2_128_CONCAT = 2,
    SCALE_HASH_TWOX128 = 3,
    SCALE_HASH_TWOX256 = 4,
    SCALE_HASH_TWOX64_CONCAT = 5,
    SCALE_HASH_IDENTITY = 6,
    SCALE_HASH_COUNT
} scale_hasher;

/* "Blake2_128Concat", ... or "?" */
const char *scale_hasher_name(int h);
/* Bytes of hash a hasher puts before the key itself (the whole output for
 * the opaque hashers, which do not append the key). */
size_t scale_hasher_hash_len(int h);
/* True when the key is appended after its hash (Concat hashers, Identity). */
bool scale_hasher_concat(int h);
/* Appends the hashed form of an encoded key. */
int scale_put_hashed(scale_writer *w, int h, const uint8_t *key, size_t n);
/* Appends twox128(pallet_prefix) || twox128(item): a storage item's prefix. */
int scale_put_storage_prefix(scale_writer *w, const char *pallet_prefix, const char *item);

#ifdef __cplusplus
}
#endif
#endif
