/* test_scale.c - the Substrate codec under chain/: SCALE primitives (compact
 * integers and their canonical forms), xxHash64/TwoX/BLAKE2b storage hashers,
 * the metadata reader (v14 and v15) on a small runtime built here byte by
 * byte, the metadata-driven value codec, storage keys, calls, mortal eras,
 * signed extrinsics, DispatchError names, robustness against random and
 * mutated input, and a cross-check of all of it against @polkadot/types on
 * the real runtimes' metadata @polkadot/types-support ships (skipped when npm
 * is unreachable). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "chain/extrinsic.h"
#include "chain/metadata.h"
#include "chain/scale.h"
#include "common/common.h"
#include "harness.h"

/* ---------------------------------------------------------------- helpers */

static char *hex_of(const void *p, size_t n) {
    char *h = scale_hex(p, n);
    return h ? h : strdup("(nomem)");
}

/* Compares writer contents with expected hex (no 0x). */
#define CHECK_HEX(w, want)                                                                 \
    do {                                                                                   \
        char *got_ = hex_of((w).p, (w).len);                                               \
        if (strcmp(got_ + 2, (want)))                                                      \
            th_fail(__FILE__, __LINE__, "bytes %s, expected %s", got_ + 2, (want));        \
        free(got_);                                                                        \
    } while (0)

static size_t unhex_into(const char *h, uint8_t *out, size_t cap) {
    size_t n = strlen(h) / 2;
    if (n > cap) n = cap;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rnd(rng_t *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

/* ------------------------------------------------------- compact integers */

static void compact_hex(uint64_t v, const char *want, int line) {
    scale_writer w = SCALE_WRITER_INIT;
    scale_put_compact(&w, v);
    char *got = hex_of(w.p, w.len);
    if (strcmp(got + 2, want)) th_fail(__FILE__, line, "compact %llu -> %s, expected %s", (unsigned long long)v, got + 2, want);
    scale_reader r;
    scale_reader_init(&r, w.p, w.len);
    uint64_t back;
    if (scale_get_compact(&r, &back) || back != v || scale_remaining(&r))
        th_fail(__FILE__, line, "compact %llu does not decode back", (unsigned long long)v);
    free(got);
    scale_writer_free(&w);
}

TEST(compact_known_answers) {
    compact_hex(0, "00", __LINE__);
    compact_hex(1, "04", __LINE__);
    compact_hex(42, "a8", __LINE__);
    compact_hex(63, "fc", __LINE__);
    compact_hex(64, "0101", __LINE__);
    compact_hex(69, "1501", __LINE__);
    compact_hex(16383, "fdff", __LINE__);
    compact_hex(16384, "02000100", __LINE__);
    compact_hex((1u << 30) - 1, "feffffff", __LINE__);
    compact_hex(1u << 30, "0300000040", __LINE__);
    compact_hex(UINT32_MAX, "03ffffffff", __LINE__);
    compact_hex(1ull << 32, "070000000001", __LINE__);
    compact_hex(UINT64_MAX, "13ffffffffffffffff", __LINE__);
    /* u128: the largest value and 2^64 */
    uint8_t le[16];
    memset(le, 0xff, 16);
    scale_writer w = SCALE_WRITER_INIT;
    scale_put_compact_le(&w, le, 16);
    CHECK_HEX(w, "33ffffffffffffffffffffffffffffffff");
    scale_reader r;
    scale_reader_init(&r, w.p, w.len);
    uint8_t back[16];
    CHECK_EQ_INT(scale_get_compact_le(&r, back), 0);
    CHECK(!memcmp(back, le, 16));
    uint64_t v64;
    scale_reader_init(&r, w.p, w.len);
    CHECK_EQ_INT(scale_get_compact(&r, &v64), TS_EFORMAT); /* does not fit in 64 bits */
    scale_writer_free(&w);
    memset(le, 0, 16);
    le[8] = 1;
    scale_put_compact_le(&w, le, 16);
    CHECK_HEX(w, "17000000000000000001");
    scale_writer_free(&w);
}

static int decode_compact_hex(const char *h, uint64_t *v) {
    uint8_t b[32];
    size_t n = unhex_into(h, b, sizeof b);
    scale_reader r;
    scale_reader_init(&r, b, n);
    return scale_get_compact(&r, v);
}

TEST(compact_rejects_noncanonical_and_truncated) {
    uint64_t v;
    /* values in a longer form than they need */
    CHECK_EQ_INT(decode_compact_hex("0100", &v), TS_EFORMAT);       /* 0 in two bytes */
    CHECK_EQ_INT(decode_compact_hex("fd00", &v), TS_EFORMAT);       /* 63 in two bytes */
    CHECK_EQ_INT(decode_compact_hex("02000000", &v), TS_EFORMAT);   /* 0 in four bytes */
    CHECK_EQ_INT(decode_compact_hex("feff0000", &v), TS_EFORMAT);   /* 16383 in four */
    CHECK_EQ_INT(decode_compact_hex("03ffffff3f", &v), TS_EFORMAT); /* 2^30-1 in big mode */
    CHECK_EQ_INT(decode_compact_hex("0700000000", &v), TS_EFORMAT); /* 5 bytes, top byte 0 */
    CHECK_EQ_INT(decode_compact_hex("070000004000", &v), TS_EFORMAT);
    /* wider than 128 bits */
    CHECK_EQ_INT(decode_compact_hex("37ffffffffffffffffffffffffffffffffff", &v), TS_EFORMAT);
    /* truncated */
    CHECK_EQ_INT(decode_compact_hex("", &v), TS_EFORMAT);
    CHECK_EQ_INT(decode_compact_hex("01", &v), TS_EFORMAT);
    CHECK_EQ_INT(decode_compact_hex("020001", &v), TS_EFORMAT);
    CHECK_EQ_INT(decode_compact_hex("03ffffff", &v), TS_EFORMAT);
    CHECK_EQ_INT(decode_compact_hex("13ffffffffffffff", &v), TS_EFORMAT);
    /* the smallest canonical forms are accepted */
    CHECK_EQ_INT(decode_compact_hex("0101", &v), 0);
    CHECK_EQ_INT(v, 64);
    CHECK_EQ_INT(decode_compact_hex("0300000040", &v), 0);
    CHECK_EQ_INT(v, 1u << 30);
    /* u32 bound */
    scale_reader r;
    uint8_t b[] = {0x07, 0, 0, 0, 0, 1};
    scale_reader_init(&r, b, sizeof b);
    uint32_t v32;
    CHECK_EQ_INT(scale_get_compact_u32(&r, &v32), TS_EFORMAT);
}

TEST(reader_is_bounded_and_sticky) {
    uint8_t b[] = {0x01, 0x02, 0x03};
    scale_reader r;
    scale_reader_init(&r, b, sizeof b);
    uint32_t v;
    CHECK_EQ_INT(scale_get_u32(&r, &v), TS_EFORMAT);
    CHECK_EQ_INT(v, 0);
    uint8_t u;
    CHECK_EQ_INT(scale_get_u8(&r, &u), TS_EFORMAT); /* sticky even though a byte remains */
    CHECK(r.why != NULL);
    /* bool and Option tags take 0/1 only */
    uint8_t two[] = {2};
    bool x;
    scale_reader_init(&r, two, 1);
    CHECK_EQ_INT(scale_get_bool(&r, &x), TS_EFORMAT);
    scale_reader_init(&r, two, 1);
    CHECK_EQ_INT(scale_get_option(&r, &x), TS_EFORMAT);
    /* a length prefix larger than what remains is refused before allocating */
    uint8_t big[] = {0x03, 0xff, 0xff, 0xff, 0xff, 'a'};
    size_t n;
    scale_reader_init(&r, big, sizeof big);
    CHECK_EQ_INT(scale_get_len(&r, &n, 1, 0), TS_EFORMAT);
    char *s;
    scale_reader_init(&r, big, sizeof big);
    CHECK_EQ_INT(scale_get_str(&r, &s, NULL), TS_EFORMAT);
    CHECK(s == NULL);
    uint8_t zero_items[] = {0x08};
    scale_reader_init(&r, zero_items, 1);
    CHECK_EQ_INT(scale_get_len(&r, &n, 0, 1), TS_EFORMAT);
    scale_reader_init(&r, zero_items, 1);
    CHECK_EQ_INT(scale_get_len(&r, &n, 0, 2), 0);
    CHECK_EQ_INT(n, 2);
    /* strings: UTF-8 and no NUL */
    uint8_t good[] = {0x14, 'h', 'e', 'l', 'l', 'o'};
    scale_reader_init(&r, good, sizeof good);
    CHECK_EQ_INT(scale_get_str(&r, &s, &n), 0);
    CHECK_STR(s, "hello");
    free(s);
    uint8_t bad_utf8[] = {0x08, 0xc0, 0x80};
    scale_reader_init(&r, bad_utf8, sizeof bad_utf8);
    CHECK_EQ_INT(scale_get_str(&r, &s, NULL), TS_EFORMAT);
    uint8_t nul[] = {0x08, 'a', 0};
    scale_reader_init(&r, nul, sizeof nul);
    CHECK_EQ_INT(scale_get_str(&r, &s, NULL), TS_EFORMAT);
}

TEST(fixed_ints_strings_and_big_decimals) {
    scale_writer w = SCALE_WRITER_INIT;
    scale_put_u8(&w, 0x12);
    scale_put_u16(&w, 0x3456);
    scale_put_u32(&w, 0x789abcde);
    scale_put_u64(&w, 0x0102030405060708ull);
    scale_put_bool(&w, true);
    scale_put_str(&w, "abc");
    scale_put_vec(&w, "\x01\x02", 2);
    CHECK_HEX(w, "125634debc9a78080706050403020101" "0c616263" "080102");
    scale_writer_free(&w);

    char dec[100];
    uint8_t le[32];
    memset(le, 0xff, 16);
    CHECK_EQ_INT(scale_le_to_dec(le, 16, false, dec, sizeof dec), 0);
    CHECK_STR(dec, "340282366920938463463374607431768211455");
    CHECK_EQ_INT(scale_le_to_dec(le, 16, true, dec, sizeof dec), 0);
    CHECK_STR(dec, "-1");
    CHECK_EQ_INT(scale_dec_to_le("340282366920938463463374607431768211455", le, 16, false), 0);
    for (int i = 0; i < 16; i++) CHECK_EQ_INT(le[i], 0xff);
    CHECK_EQ_INT(scale_dec_to_le("340282366920938463463374607431768211456", le, 16, false), TS_EINVAL);
    CHECK_EQ_INT(scale_dec_to_le("-128", le, 1, true), 0);
    CHECK_EQ_INT(le[0], 0x80);
    CHECK_EQ_INT(scale_dec_to_le("-129", le, 1, true), TS_EINVAL);
    CHECK_EQ_INT(scale_dec_to_le("128", le, 1, true), TS_EINVAL);
    CHECK_EQ_INT(scale_dec_to_le("-1", le, 1, false), TS_EINVAL);
    CHECK_EQ_INT(scale_dec_to_le("12a", le, 8, false), TS_EINVAL);
    CHECK_EQ_INT(scale_dec_to_le("", le, 8, false), TS_EINVAL);
    CHECK_EQ_INT(scale_le_to_dec(le, 0, false, dec, sizeof dec), 0);
    CHECK_STR(dec, "0");
    uint8_t *b;
    size_t n;
    CHECK_EQ_INT(scale_unhex("0xabCD", &b, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK(b[0] == 0xab && b[1] == 0xcd);
    free(b);
    CHECK_EQ_INT(scale_unhex("abcd", &b, &n), TS_EINVAL);
    CHECK_EQ_INT(scale_unhex("0xabc", &b, &n), TS_EINVAL);
    CHECK_EQ_INT(scale_unhex("0xzz", &b, &n), TS_EINVAL);
}

/* ----------------------------------------------------------------- hashes */

static void check_hash(void (*f)(const void *, size_t, uint8_t *), size_t outlen, const char *in,
                       const char *want, int line) {
    uint8_t out[32];
    f(in, strlen(in), out);
    char *h = hex_of(out, outlen);
    if (strcmp(h + 2, want)) th_fail(__FILE__, line, "hash of \"%s\": %s, expected %s", in, h + 2, want);
    free(h);
}

static void twox64_f(const void *p, size_t n, uint8_t *o) { scale_twox64(p, n, o); }
static void twox128_f(const void *p, size_t n, uint8_t *o) { scale_twox128(p, n, o); }
static void twox256_f(const void *p, size_t n, uint8_t *o) { scale_twox256(p, n, o); }
static void b128_f(const void *p, size_t n, uint8_t *o) { scale_blake2_128(p, n, o); }
static void b256_f(const void *p, size_t n, uint8_t *o) { scale_blake2_256(p, n, o); }

TEST(xxhash64_and_twox_known_answers) {
    CHECK(scale_xxh64("", 0, 0) == 0xef46db3751d8e999ull);
    CHECK(scale_xxh64("abc", 3, 0) == 0x44bc2cf5ad770999ull);
    /* 39 bytes: the 32-byte stripe loop */
    const char *long_in = "Nobody inspects the spammish repetition";
    CHECK(scale_xxh64(long_in, strlen(long_in), 0) == 0xfbcea83c8a378bf1ull);
    check_hash(twox128_f, 16, "System", "26aa394eea5630e07c48ae0c9558cef7", __LINE__);
    check_hash(twox128_f, 16, "Account", "b99d880ec681799c0cf30e8886371da9", __LINE__);
    check_hash(twox128_f, 16, "SubtensorModule", "658faa385070e074c85bf6b568cf0555", __LINE__);
    check_hash(twox64_f, 8, "abc", "990977adf52cbc44", __LINE__);
    check_hash(twox256_f, 32, "Now", "9f1f0515f462cdcf84e0f1d6045dfcbbc212150ffda80107186610b0f358989a", __LINE__);
    check_hash(b128_f, 16, "abc", "cf4ab791c62b8d2b2109c90275287816", __LINE__);
    check_hash(b256_f, 32, "abc", "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319", __LINE__);
}

TEST(storage_hashers_and_prefixes) {
    scale_writer w = SCALE_WRITER_INIT;
    scale_put_storage_prefix(&w, "System", "Account");
    CHECK_HEX(w, "26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9");
    scale_writer_free(&w);
    scale_put_storage_prefix(&w, "Timestamp", "Now");
    CHECK_HEX(w, "f0c365c3cf59d671eb72da0e7a4113c49f1f0515f462cdcf84e0f1d6045dfcbb");
    scale_writer_free(&w);
    /* System.Account of Alice (//Alice, sr25519) as every Substrate tool shows it */
    uint8_t alice[32];
    unhex_into("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d", alice, 32);
    scale_put_storage_prefix(&w, "System", "Account");
    scale_put_hashed(&w, SCALE_HASH_BLAKE2_128_CONCAT, alice, 32);
    CHECK_HEX(w, "26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9"
                 "de1e86a9a8c739864cf3cc5ec2bea59fd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d");
    scale_writer_free(&w);
    const uint8_t k[] = {0x01, 0x00};
    scale_put_hashed(&w, SCALE_HASH_IDENTITY, k, 2);
    CHECK_HEX(w, "0100");
    scale_writer_free(&w);
    scale_put_hashed(&w, SCALE_HASH_TWOX64_CONCAT, (const uint8_t *)"abc", 3);
    CHECK_HEX(w, "990977adf52cbc44616263");
    scale_writer_free(&w);
    scale_put_hashed(&w, SCALE_HASH_BLAKE2_256, (const uint8_t *)"abc", 3);
    CHECK_HEX(w, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    scale_writer_free(&w);
    CHECK_STR(scale_hasher_name(SCALE_HASH_TWOX64_CONCAT), "Twox64Concat");
    CHECK_EQ_INT(scale_hasher_hash_len(SCALE_HASH_TWOX256), 32);
    CHECK_EQ_INT(scale_put_hashed(&w, 9, k, 2), TS_EINVAL);
    scale_writer_free(&w);
}

/* ------------------------------------------------------------------- eras */

TEST(mortal_eras) {
    uint8_t b[2];
    CHECK_EQ_INT(xt_era_encode(xt_era_immortal(), b), 1);
    CHECK_EQ_INT(b[0], 0);
    xt_era e = xt_era_mortal(64, 12345); /* phase 57 */
    CHECK_EQ_INT(e.period, 64);
    CHECK_EQ_INT(e.phase, 57);
    CHECK_EQ_INT(xt_era_encode(e, b), 2);
    CHECK(b[0] == 0x95 && b[1] == 0x03);
    e = xt_era_mortal(64, 42);
    xt_era_encode(e, b);
    CHECK(b[0] == 0xa5 && b[1] == 0x02);
    /* periods round up to a power of two within [4, 65536] */
    CHECK_EQ_INT(xt_era_mortal(0, 5).period, 4);
    CHECK_EQ_INT(xt_era_mortal(100, 5).period, 128);
    CHECK_EQ_INT(xt_era_mortal(1u << 20, 5).period, 65536);
    /* long periods quantize the phase (factor period >> 12) */
    e = xt_era_mortal(1000000, 1000001);
    CHECK_EQ_INT(e.period, 65536);
    CHECK_EQ_INT(e.phase, 16960);
    CHECK_EQ_INT(xt_era_birth(e, 1000001), 1000000);
    CHECK_EQ_INT(xt_era_death(e, 1000001), 1000000 + 65536);
    e = xt_era_mortal(64, 12345);
    CHECK_EQ_INT(xt_era_birth(e, 12345), 12345);
    CHECK_EQ_INT(xt_era_birth(e, 12350), 12345);
    CHECK_EQ_INT(xt_era_birth(e, 12345 + 64), 12345 + 64);
    /* every encodable era decodes back */
    for (uint64_t p = 4; p <= 65536; p <<= 1) {
        for (uint64_t cur = 0; cur < 3 * p; cur += p / 4 + 3) {
            xt_era a = xt_era_mortal(p, cur), d;
            size_t used;
            xt_era_encode(a, b);
            CHECK_EQ_INT(xt_era_decode(b, 2, &d, &used), 0);
            CHECK(d.mortal && d.period == a.period && d.phase == a.phase && used == 2);
        }
    }
    uint8_t bad[2] = {0x0f, 0xff}; /* period 65536, phase beyond it */
    xt_era d;
    CHECK_EQ_INT(xt_era_decode(bad, 2, &d, NULL), 0);
    uint8_t bad2[2] = {0x00 | 1, 0x10}; /* period 4, phase 256 */
    CHECK_EQ_INT(xt_era_decode(bad2, 2, &d, NULL), TS_EFORMAT);
    CHECK_EQ_INT(xt_era_decode(bad2, 1, &d, NULL), TS_EFORMAT);
}

/* ------------------------------------------- a small runtime's metadata
 * Built byte by byte here, in the layout frame-metadata defines, so the
 * reader and everything above it can be tested without a node. */

enum {
    T_U8, T_A32, T_ACCOUNT, T_U16, T_VEC_U16, T_U32, T_U64, T_U128, T_C_U128, T_C_U32,
    T_OPT_U32, T_MULTIADDR, T_VEC_U8, T_MULTISIG, T_A64, T_UNIT, T_BOOL, T_STR, T_SUB_CALL,
    T_SYS_CALL, T_CHECK_MORT, T_ERA, T_CHECK_NONCE, T_CHARGE, T_NONZERO, T_H256, T_DISPATCH,
    T_MODERR, T_TOKENERR, T_A4, T_SUB_ERR, T_MODE, T_CMH, T_OPT_A32, T_KEY2, T_UNKNOWN_EXT,
    T_RECUR, T_BITVEC, T_LSB0, T_VEC_UNIT, T_RUNTIME_CALL, T_I64, T_EXTRA, T_OPT_OPT,
    T_OPT_UNIT, T_C_PERBILL, T_PERBILL, T_CHAR, T_I128, T_U256, T_TUPLE_STRUCT, T_VEC_VEC_UNIT,
    T_U16U16, T_UXT, T_TRANSFER_CALL, T_CTP_WRAPPER, NTYPES
};

typedef struct {
    const char *name;
    uint32_t type;
} F;

typedef struct {
    const char *name;
    uint8_t index;
    int nf;
    F f[4];
} V;

static void put_path(scale_writer *w, const char *path) {
    int n = 0;
    for (const char *s = path; s && *s; n++) {
        const char *e = strstr(s, "::");
        s = e ? e + 2 : s + strlen(s);
    }
    scale_put_compact(w, (uint64_t)n);
    for (const char *s = path; s && *s;) {
        const char *e = strstr(s, "::");
        size_t len = e ? (size_t)(e - s) : strlen(s);
        scale_put_compact(w, len);
        scale_put(w, s, len);
        s = e ? e + 2 : s + len;
    }
}

/* id, path, params ("T" = type or -1, up to 4), then the definition */
static void ty_head(scale_writer *w, uint32_t id, const char *path, int np, const F *params) {
    scale_put_compact(w, id);
    put_path(w, path);
    scale_put_compact(w, (uint64_t)np);
    for (int i = 0; i < np; i++) {
        scale_put_str(w, params[i].name);
        if (params[i].type == UINT32_MAX) {
            scale_put_u8(w, 0);
        } else {
            scale_put_u8(w, 1);
            scale_put_compact(w, params[i].type);
        }
    }
}

static void docs(scale_writer *w, const char *doc) {
    if (!doc) {
        scale_put_compact(w, 0);
        return;
    }
    scale_put_compact(w, 1);
    scale_put_str(w, doc);
}

static void put_fields(scale_writer *w, int n, const F *f) {
    scale_put_compact(w, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        if (f[i].name) {
            scale_put_u8(w, 1);
            scale_put_str(w, f[i].name);
        } else {
            scale_put_u8(w, 0);
        }
        scale_put_compact(w, f[i].type);
        scale_put_u8(w, 1); /* type_name */
        scale_put_str(w, "T::Something");
        docs(w, i == 0 ? "a field" : NULL);
    }
}

static void ty_prim(scale_writer *w, uint32_t id, md_prim p) {
    ty_head(w, id, NULL, 0, NULL);
    scale_put_u8(w, 5);
    scale_put_u8(w, (uint8_t)p);
    docs(w, NULL);
}

static void ty_array(scale_writer *w, uint32_t id, uint32_t len, uint32_t t) {
    ty_head(w, id, NULL, 0, NULL);
    scale_put_u8(w, 3);
    scale_put_u32(w, len);
    scale_put_compact(w, t);
    docs(w, NULL);
}

static void ty_seq(scale_writer *w, uint32_t id, uint32_t t) {
    ty_head(w, id, NULL, 0, NULL);
    scale_put_u8(w, 2);
    scale_put_compact(w, t);
    docs(w, NULL);
}

static void ty_compact(scale_writer *w, uint32_t id, uint32_t t) {
    ty_head(w, id, NULL, 0, NULL);
    scale_put_u8(w, 6);
    scale_put_compact(w, t);
    docs(w, NULL);
}

static void ty_tuple(scale_writer *w, uint32_t id, int n, const uint32_t *ts) {
    ty_head(w, id, NULL, 0, NULL);
    scale_put_u8(w, 4);
    scale_put_compact(w, (uint64_t)n);
    for (int i = 0; i < n; i++) scale_put_compact(w, ts[i]);
    docs(w, NULL);
}

static void ty_comp(scale_writer *w, uint32_t id, const char *path, int np, const F *params, int n,
                    const F *f) {
    ty_head(w, id, path, np, params);
    scale_put_u8(w, 0);
    put_fields(w, n, f);
    docs(w, "a struct");
}

static void ty_var(scale_writer *w, uint32_t id, const char *path, int np, const F *params, int n,
                   const V *v) {
    ty_head(w, id, path, np, params);
    scale_put_u8(w, 1);
    scale_put_compact(w, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        scale_put_str(w, v[i].name);
        put_fields(w, v[i].nf, v[i].f);
        scale_put_u8(w, v[i].index);
        docs(w, "a variant");
    }
    docs(w, NULL);
}

static void put_registry(scale_writer *w) {
    scale_put_compact(w, NTYPES);
    ty_prim(w, T_U8, MD_U8);
    ty_array(w, T_A32, 32, T_U8);
    ty_comp(w, T_ACCOUNT, "sp_core::crypto::AccountId32", 0, NULL, 1, (F[]){{NULL, T_A32}});
    ty_prim(w, T_U16, MD_U16);
    ty_seq(w, T_VEC_U16, T_U16);
    ty_prim(w, T_U32, MD_U32);
    ty_prim(w, T_U64, MD_U64);
    ty_prim(w, T_U128, MD_U128);
    ty_compact(w, T_C_U128, T_U128);
    ty_compact(w, T_C_U32, T_U32);
    ty_var(w, T_OPT_U32, "Option", 1, (F[]){{"T", T_U32}}, 2,
           (V[]){{"None", 0, 0, {{0}}}, {"Some", 1, 1, {{NULL, T_U32}}}});
    ty_var(w, T_MULTIADDR, "sp_runtime::multiaddress::MultiAddress", 2,
           (F[]){{"AccountId", T_ACCOUNT}, {"AccountIndex", UINT32_MAX}}, 3,
           (V[]){{"Id", 0, 1, {{NULL, T_ACCOUNT}}}, {"Raw", 2, 1, {{NULL, T_VEC_U8}}},
                 {"Address32", 3, 1, {{NULL, T_A32}}}});
    ty_seq(w, T_VEC_U8, T_U8);
    ty_var(w, T_MULTISIG, "sp_runtime::MultiSignature", 0, NULL, 2,
           (V[]){{"Ed25519", 0, 1, {{NULL, T_A64}}}, {"Sr25519", 1, 1, {{NULL, T_A64}}}});
    ty_array(w, T_A64, 64, T_U8);
    ty_tuple(w, T_UNIT, 0, NULL);
    ty_prim(w, T_BOOL, MD_BOOL);
    ty_prim(w, T_STR, MD_STR);
    ty_var(w, T_SUB_CALL, "pallet_subtensor::pallet::Call", 0, NULL, 3,
           (V[]){{"set_weights", 0, 4, {{"netuid", T_U16}, {"dests", T_VEC_U16}, {"weights", T_VEC_U16}, {"version_key", T_U64}}},
                 {"burned_register", 7, 2, {{"netuid", T_U16}, {"hotkey", T_ACCOUNT}}},
                 {"serve", 9, 2, {{"flag", T_BOOL}, {"note", T_STR}}}});
    ty_var(w, T_SYS_CALL, "frame_system::pallet::Call", 0, NULL, 2,
           (V[]){{"remark", 0, 1, {{"remark", T_VEC_U8}}}, {"noop", 3, 0, {{0}}}});
    ty_comp(w, T_CHECK_MORT, "frame_system::extensions::check_mortality::CheckMortality", 0, NULL, 1,
            (F[]){{NULL, T_ERA}});
    ty_var(w, T_ERA, "sp_runtime::generic::era::Era", 0, NULL, 2,
           (V[]){{"Immortal", 0, 0, {{0}}}, {"Mortal1", 1, 1, {{NULL, T_U8}}}});
    ty_comp(w, T_CHECK_NONCE, "frame_system::extensions::check_nonce::CheckNonce", 0, NULL, 1,
            (F[]){{NULL, T_C_U32}});
    ty_comp(w, T_CHARGE, "pallet_transaction_payment::ChargeTransactionPayment", 0, NULL, 1,
            (F[]){{NULL, T_C_U128}});
    ty_comp(w, T_NONZERO, "frame_system::extensions::check_non_zero_sender::CheckNonZeroSender", 0,
            NULL, 1, (F[]){{NULL, T_UNIT}});
    ty_comp(w, T_H256, "primitive_types::H256", 0, NULL, 1, (F[]){{NULL, T_A32}});
    ty_var(w, T_DISPATCH, "sp_runtime::DispatchError", 0, NULL, 5,
           (V[]){{"Other", 0, 0, {{0}}}, {"CannotLookup", 1, 0, {{0}}}, {"BadOrigin", 2, 0, {{0}}},
                 {"Module", 3, 1, {{NULL, T_MODERR}}}, {"Token", 7, 1, {{NULL, T_TOKENERR}}}});
    ty_comp(w, T_MODERR, "sp_runtime::ModuleError", 0, NULL, 2, (F[]){{"index", T_U8}, {"error", T_A4}});
    ty_var(w, T_TOKENERR, "sp_runtime::TokenError", 0, NULL, 2,
           (V[]){{"FundsUnavailable", 0, 0, {{0}}}, {"OnlyProvider", 1, 0, {{0}}}});
    ty_array(w, T_A4, 4, T_U8);
    ty_var(w, T_SUB_ERR, "pallet_subtensor::pallet::Error", 0, NULL, 2,
           (V[]){{"NotRegistered", 0, 0, {{0}}}, {"WeightVecNotEqualSize", 1, 0, {{0}}}});
    ty_var(w, T_MODE, "frame_metadata_hash_extension::Mode", 0, NULL, 2,
           (V[]){{"Disabled", 0, 0, {{0}}}, {"Enabled", 1, 0, {{0}}}});
    ty_comp(w, T_CMH, "frame_metadata_hash_extension::CheckMetadataHash", 0, NULL, 1, (F[]){{"mode", T_MODE}});
    ty_var(w, T_OPT_A32, "Option", 1, (F[]){{"T", T_A32}}, 2,
           (V[]){{"None", 0, 0, {{0}}}, {"Some", 1, 1, {{NULL, T_A32}}}});
    ty_tuple(w, T_KEY2, 2, (uint32_t[]){T_U16, T_ACCOUNT});
    ty_comp(w, T_UNKNOWN_EXT, "x::FancyNewExtension", 0, NULL, 1, (F[]){{"x", T_U32}});
    ty_comp(w, T_RECUR, "x::Recursive", 0, NULL, 1, (F[]){{"inner", T_RECUR}});
    ty_head(w, T_BITVEC, NULL, 0, NULL);
    scale_put_u8(w, 7);
    scale_put_compact(w, T_U8);
    scale_put_compact(w, T_LSB0);
    docs(w, NULL);
    ty_comp(w, T_LSB0, "bitvec::order::Lsb0", 0, NULL, 0, NULL);
    ty_seq(w, T_VEC_UNIT, T_UNIT);
    ty_var(w, T_RUNTIME_CALL, "node_subtensor_runtime::RuntimeCall", 0, NULL, 2,
           (V[]){{"System", 0, 1, {{NULL, T_SYS_CALL}}}, {"SubtensorModule", 7, 1, {{NULL, T_SUB_CALL}}}});
    ty_prim(w, T_I64, MD_I64);
    ty_tuple(w, T_EXTRA, 3, (uint32_t[]){T_NONZERO, T_CHECK_MORT, T_CHECK_NONCE});
    ty_var(w, T_OPT_OPT, "Option", 1, (F[]){{"T", T_OPT_U32}}, 2,
           (V[]){{"None", 0, 0, {{0}}}, {"Some", 1, 1, {{NULL, T_OPT_U32}}}});
    ty_var(w, T_OPT_UNIT, "Option", 1, (F[]){{"T", T_UNIT}}, 2,
           (V[]){{"None", 0, 0, {{0}}}, {"Some", 1, 1, {{NULL, T_UNIT}}}});
    ty_compact(w, T_C_PERBILL, T_PERBILL);
    ty_comp(w, T_PERBILL, "sp_arithmetic::per_things::Perbill", 0, NULL, 1, (F[]){{NULL, T_U32}});
    ty_prim(w, T_CHAR, MD_CHAR);
    ty_prim(w, T_I128, MD_I128);
    ty_prim(w, T_U256, MD_U256);
    ty_comp(w, T_TUPLE_STRUCT, "x::Pair", 0, NULL, 2, (F[]){{NULL, T_U16}, {NULL, T_U32}});
    ty_seq(w, T_VEC_VEC_UNIT, T_VEC_UNIT);
    ty_tuple(w, T_U16U16, 2, (uint32_t[]){T_U16, T_U16});
    ty_comp(w, T_UXT, "sp_runtime::generic::unchecked_extrinsic::UncheckedExtrinsic", 4,
            (F[]){{"Address", T_MULTIADDR}, {"Call", T_RUNTIME_CALL}, {"Signature", T_MULTISIG}, {"Extra", T_EXTRA}},
            1, (F[]){{NULL, T_VEC_U8}});
    ty_var(w, T_TRANSFER_CALL, "pallet_balances::pallet::Call", 0, NULL, 1,
           (V[]){{"transfer_keep_alive", 3, 2, {{"dest", T_MULTIADDR}, {"value", T_C_U128}}}});
    ty_comp(w, T_CTP_WRAPPER, "node_subtensor_runtime::transaction_payment_wrapper::ChargeTransactionPaymentWrapper",
            0, NULL, 1, (F[]){{"inner", T_CHARGE}});
}

static void put_entry_plain(scale_writer *w, const char *name, int mod, uint32_t value,
                            const char *def_hex) {
    uint8_t def[64];
    size_t n = unhex_into(def_hex, def, sizeof def);
    scale_put_str(w, name);
    scale_put_u8(w, (uint8_t)mod);
    scale_put_u8(w, 0);
    scale_put_compact(w, value);
    scale_put_vec(w, def, n);
    docs(w, "an item");
}

static void put_entry_map(scale_writer *w, const char *name, int mod, int nh, const uint8_t *h,
                          uint32_t key, uint32_t value, const char *def_hex) {
    uint8_t def[64];
    size_t n = unhex_into(def_hex, def, sizeof def);
    scale_put_str(w, name);
    scale_put_u8(w, (uint8_t)mod);
    scale_put_u8(w, 1);
    scale_put_compact(w, (uint64_t)nh);
    scale_put(w, h, (size_t)nh);
    scale_put_compact(w, key);
    scale_put_compact(w, value);
    scale_put_vec(w, def, n);
    docs(w, NULL);
}

static void put_const(scale_writer *w, const char *name, uint32_t type, const char *hex) {
    uint8_t v[64];
    size_t n = unhex_into(hex, v, sizeof v);
    scale_put_str(w, name);
    scale_put_compact(w, type);
    scale_put_vec(w, v, n);
    docs(w, "a constant");
}

#define ZERO32 "0000000000000000000000000000000000000000000000000000000000000000"

static void put_pallets(scale_writer *w, int version) {
    scale_put_compact(w, 4);
    /* System */
    scale_put_str(w, "System");
    scale_put_u8(w, 1);
    scale_put_str(w, "System");
    scale_put_compact(w, 2);
    put_entry_map(w, "Account", 1, 1, (uint8_t[]){SCALE_HASH_BLAKE2_128_CONCAT}, T_ACCOUNT, T_U64, "0000000000000000");
    put_entry_plain(w, "Number", 1, T_U32, "00000000");
    scale_put_u8(w, 1);
    scale_put_compact(w, T_SYS_CALL);
    scale_put_u8(w, 0); /* events */
    scale_put_compact(w, 1);
    put_const(w, "BlockHashCount", T_U32, "00100000");
    scale_put_u8(w, 0); /* errors */
    scale_put_u8(w, 0); /* index */
    if (version >= 15) docs(w, "System pallet");
    /* Timestamp */
    scale_put_str(w, "Timestamp");
    scale_put_u8(w, 1);
    scale_put_str(w, "Timestamp");
    scale_put_compact(w, 1);
    put_entry_plain(w, "Now", 1, T_U64, "0000000000000000");
    scale_put_u8(w, 0);
    scale_put_u8(w, 0);
    scale_put_compact(w, 1);
    put_const(w, "MinimumPeriod", T_U64, "7017000000000000");
    scale_put_u8(w, 0);
    scale_put_u8(w, 2);
    if (version >= 15) docs(w, NULL);
    /* SubtensorModule */
    scale_put_str(w, "SubtensorModule");
    scale_put_u8(w, 1);
    scale_put_str(w, "SubtensorModule");
    scale_put_compact(w, 4);
    put_entry_map(w, "Keys", 1, 2, (uint8_t[]){SCALE_HASH_IDENTITY, SCALE_HASH_IDENTITY}, T_U16U16, T_ACCOUNT, ZERO32);
    put_entry_map(w, "Uids", 0, 2, (uint8_t[]){SCALE_HASH_IDENTITY, SCALE_HASH_BLAKE2_128_CONCAT}, T_KEY2, T_U16, "");
    put_entry_map(w, "Stake", 1, 1, (uint8_t[]){SCALE_HASH_TWOX64_CONCAT}, T_ACCOUNT, T_U64, "0000000000000000");
    put_entry_map(w, "Opaque", 0, 2, (uint8_t[]){SCALE_HASH_BLAKE2_256, SCALE_HASH_TWOX64_CONCAT}, T_U16U16, T_U32, "");
    scale_put_u8(w, 1);
    scale_put_compact(w, T_SUB_CALL);
    scale_put_u8(w, 1);
    scale_put_compact(w, T_UNIT); /* events: any type */
    scale_put_compact(w, 0);
    scale_put_u8(w, 1);
    scale_put_compact(w, T_SUB_ERR);
    scale_put_u8(w, 7);
    if (version >= 15) docs(w, NULL);
    /* Balances: calls only */
    scale_put_str(w, "Balances");
    scale_put_u8(w, 0);
    scale_put_u8(w, 1);
    scale_put_compact(w, T_TRANSFER_CALL);
    scale_put_u8(w, 0);
    scale_put_compact(w, 0);
    scale_put_u8(w, 0);
    scale_put_u8(w, 5);
    if (version >= 15) docs(w, NULL);
}

typedef struct {
    int version;
    bool unknown_ext;       /* add an extension with data Tessera cannot fill */
    bool unknown_empty_ext; /* add one whose types are empty */
    bool subtensor_exts;    /* subtensor's list (runtime/src/lib.rs, 2026) instead */
} mdopts;

static void put_exts(scale_writer *w, const mdopts *o) {
    if (o->subtensor_exts) {
        struct {
            const char *id;
            uint32_t t, a;
        } st[] = {
            {"CheckNonZeroSender", T_NONZERO, T_UNIT}, {"CheckSpecVersion", T_UNIT, T_U32},
            {"CheckTxVersion", T_UNIT, T_U32},         {"CheckGenesis", T_UNIT, T_H256},
            {"CheckMortality", T_CHECK_MORT, T_H256},  {"CheckNonce", T_CHECK_NONCE, T_UNIT},
            {"CheckWeight", T_UNIT, T_UNIT},           {"ChargeTransactionPaymentWrapper", T_CTP_WRAPPER, T_UNIT},
            {"SudoTransactionExtension", T_NONZERO, T_UNIT}, {"CheckShieldedTxValidity", T_NONZERO, T_UNIT},
            {"SubtensorTransactionExtension", T_NONZERO, T_UNIT}, {"DrandPriority", T_LSB0, T_UNIT},
            {"CheckMetadataHash", T_CMH, T_OPT_A32},
        };
        int n = (int)(sizeof st / sizeof *st);
        scale_put_compact(w, (uint64_t)n);
        for (int i = 0; i < n; i++) {
            scale_put_str(w, st[i].id);
            scale_put_compact(w, st[i].t);
            scale_put_compact(w, st[i].a);
        }
        return;
    }
    struct {
        const char *id;
        uint32_t t, a;
    } exts[] = {
        {"CheckNonZeroSender", T_NONZERO, T_UNIT}, {"CheckSpecVersion", T_UNIT, T_U32},
        {"CheckTxVersion", T_UNIT, T_U32},         {"CheckGenesis", T_UNIT, T_H256},
        {"CheckMortality", T_CHECK_MORT, T_H256},  {"CheckNonce", T_CHECK_NONCE, T_UNIT},
        {"CheckWeight", T_UNIT, T_UNIT},           {"ChargeTransactionPayment", T_CHARGE, T_UNIT},
        {"SubtensorSignedExtension", T_NONZERO, T_UNIT},
        {"CheckMetadataHash", T_CMH, T_OPT_A32},   {"FancyNewExtension", T_UNKNOWN_EXT, T_UNIT},
        {"CommitmentsSignedExtension", T_NONZERO, T_NONZERO},
    };
    int n = 10 + (o->unknown_ext ? 1 : 0) + (o->unknown_empty_ext ? 1 : 0);
    scale_put_compact(w, (uint64_t)n);
    for (int i = 0; i < 12; i++) {
        if (i == 10 && !o->unknown_ext) continue;
        if (i == 11 && !o->unknown_empty_ext) continue;
        scale_put_str(w, exts[i].id);
        scale_put_compact(w, exts[i].t);
        scale_put_compact(w, exts[i].a);
    }
}

static uint8_t *build_metadata(const mdopts *o, size_t *len) {
    scale_writer w = SCALE_WRITER_INIT;
    scale_put(&w, "meta", 4);
    scale_put_u8(&w, (uint8_t)o->version);
    put_registry(&w);
    put_pallets(&w, o->version);
    if (o->version == 14) {
        scale_put_compact(&w, T_UXT);
        scale_put_u8(&w, 4);
        put_exts(&w, o);
    } else {
        scale_put_u8(&w, 4);
        scale_put_compact(&w, T_MULTIADDR);
        scale_put_compact(&w, T_RUNTIME_CALL);
        scale_put_compact(&w, T_MULTISIG);
        scale_put_compact(&w, T_EXTRA);
        put_exts(&w, o);
    }
    scale_put_compact(&w, T_UNIT); /* the runtime type */
    if (o->version >= 15) {
        scale_put_compact(&w, 1);
        scale_put_str(&w, "NeuronInfoRuntimeApi");
        scale_put_compact(&w, 2);
        scale_put_str(&w, "get_neurons_lite");
        scale_put_compact(&w, 1);
        scale_put_str(&w, "netuid");
        scale_put_compact(&w, T_U16);
        scale_put_compact(&w, T_VEC_U8);
        docs(&w, "neurons");
        scale_put_str(&w, "get_neuron");
        scale_put_compact(&w, 2);
        scale_put_str(&w, "netuid");
        scale_put_compact(&w, T_U16);
        scale_put_str(&w, "uid");
        scale_put_compact(&w, T_U16);
        scale_put_compact(&w, T_OPT_U32);
        docs(&w, NULL);
        docs(&w, "an API");
        scale_put_compact(&w, T_RUNTIME_CALL);
        scale_put_compact(&w, T_UNIT);
        scale_put_compact(&w, T_DISPATCH);
        scale_put_compact(&w, 1); /* custom */
        scale_put_str(&w, "foo");
        scale_put_compact(&w, T_U8);
        scale_put_vec(&w, "\x07", 1);
    }
    return scale_writer_take(&w, len);
}

static md_metadata *load_md(const mdopts *o) {
    size_t n;
    uint8_t *b = build_metadata(o, &n);
    md_metadata *m = NULL;
    ts_err e = {0};
    if (md_parse(b, n, &m, &e)) th_fail(__FILE__, __LINE__, "md_parse: %s", e.msg);
    free(b);
    return m;
}

/* --------------------------------------------------------- metadata tests */

TEST(metadata_reads_v14_and_v15) {
    for (int version = 14; version <= 15; version++) {
        mdopts o = {.version = version};
        md_metadata *m = load_md(&o);
        REQUIRE(m);
        ts_err e = {0};
        CHECK_EQ_INT(m->version, version);
        CHECK_EQ_INT(m->ntypes, NTYPES);
        CHECK_EQ_INT(m->npallets, 4);
        const md_pallet *p = md_pallet_find(m, "SubtensorModule");
        REQUIRE(p);
        CHECK_EQ_INT(p->index, 7);
        CHECK(md_pallet_by_index(m, 2) == md_pallet_find(m, "Timestamp"));
        CHECK(md_pallet_find(m, "Nope") == NULL);
        const md_variant *v;
        CHECK_EQ_INT(md_call_find(m, "SubtensorModule", "burned_register", &p, &v, &e), 0);
        CHECK_EQ_INT(v->index, 7);
        CHECK_EQ_INT(v->nfields, 2);
        CHECK_STR(v->fields[1].name, "hotkey");
        CHECK_EQ_INT(v->fields[1].type, T_ACCOUNT);
        CHECK_STR(v->fields[1].type_name, "T::Something");
        CHECK_EQ_INT(md_call_find(m, "SubtensorModule", "nope", &p, &v, &e), TS_ENOTFOUND);
        CHECK(strstr(e.msg, "nope") != NULL);
        CHECK_EQ_INT(md_call_find(m, "Nope", "x", &p, &v, &e), TS_ENOTFOUND);
        CHECK(strstr(e.msg, "Nope") != NULL);
        const md_storage_entry *s;
        CHECK_EQ_INT(md_storage_find(m, "SubtensorModule", "Uids", &p, &s, &e), 0);
        CHECK(s->is_map);
        CHECK_EQ_INT(s->modifier, MD_STORAGE_OPTIONAL);
        CHECK_EQ_INT(s->nhashers, 2);
        CHECK_EQ_INT(s->hashers[1], SCALE_HASH_BLAKE2_128_CONCAT);
        CHECK_EQ_INT(s->key_type, T_KEY2);
        CHECK_EQ_INT(s->value_type, T_U16);
        CHECK_EQ_INT(md_storage_find(m, "System", "Number", &p, &s, &e), 0);
        CHECK(!s->is_map);
        CHECK_EQ_INT(s->ndef, 4);
        const md_constant *c;
        CHECK_EQ_INT(md_constant_find(m, "Timestamp", "MinimumPeriod", &c, &e), 0);
        CHECK_EQ_INT(c->type, T_U64);
        CHECK_EQ_INT(c->nvalue, 8);
        CHECK_EQ_INT(c->value[0], 0x70);
        CHECK_EQ_INT(md_constant_find(m, "Timestamp", "Nope", &c, &e), TS_ENOTFOUND);
        CHECK_EQ_INT(md_error_find(m, 7, 1, &p, &v, &e), 0);
        CHECK_STR(v->name, "WeightVecNotEqualSize");
        CHECK_EQ_INT(md_error_find(m, 7, 9, &p, &v, &e), TS_ENOTFOUND);
        CHECK_EQ_INT(md_type_by_path(m, "sp_runtime::DispatchError"), T_DISPATCH);
        CHECK_EQ_INT(md_type_by_path(m, "sp_runtime::Dispatch"), MD_NO_TYPE);
        CHECK_EQ_INT(m->extrinsic.version, 4);
        CHECK_EQ_INT(m->extrinsic.nexts, 10);
        CHECK_STR(m->extrinsic.exts[4].identifier, "CheckMortality");
        CHECK_EQ_INT(m->extrinsic.address_type, T_MULTIADDR);
        CHECK_EQ_INT(m->extrinsic.signature_type, T_MULTISIG);
        CHECK_EQ_INT(m->extrinsic.call_type, T_RUNTIME_CALL);
        CHECK_EQ_INT(m->extrinsic.extra_type, T_EXTRA);
        const md_api_method *am;
        if (version == 15) {
            CHECK_EQ_INT(md_api_find(m, "NeuronInfoRuntimeApi", "get_neuron", &am, &e), 0);
            CHECK_EQ_INT(am->ninputs, 2);
            CHECK_EQ_INT(am->output, T_OPT_U32);
            CHECK_EQ_INT(md_api_find(m, "NeuronInfoRuntimeApi", "nope", &am, &e), TS_ENOTFOUND);
            CHECK_EQ_INT(m->call_enum, T_RUNTIME_CALL);
            CHECK_EQ_INT(m->error_enum, T_DISPATCH);
            scale_writer w = SCALE_WRITER_INIT;
            cJSON *args = cJSON_Parse("{\"netuid\": 3, \"uid\": 258}");
            CHECK_EQ_INT(md_api_args(m, am, args, &w, &e), 0);
            CHECK_HEX(w, "03000201");
            cJSON_Delete(args);
            scale_writer_free(&w);
            args = cJSON_Parse("[3]");
            CHECK_EQ_INT(md_api_args(m, am, args, &w, &e), TS_EINVAL);
            cJSON_Delete(args);
        } else {
            CHECK_EQ_INT(md_api_find(m, "NeuronInfoRuntimeApi", "get_neuron", &am, &e), TS_EUNSUPPORTED);
            CHECK(strstr(e.msg, "v15") != NULL);
            CHECK_EQ_INT(m->extrinsic.type, T_UXT);
        }
        char name[128];
        CHECK_STR(md_type_name(m, T_VEC_U16, name, sizeof name), "Vec<u16>");
        CHECK_STR(md_type_name(m, T_OPT_U32, name, sizeof name), "Option<u32>");
        CHECK_STR(md_type_name(m, T_A32, name, sizeof name), "[u8; 32]");
        CHECK_STR(md_type_name(m, T_ACCOUNT, name, sizeof name), "AccountId32");
        CHECK_STR(md_type_name(m, T_C_U128, name, sizeof name), "Compact<u128>");
        CHECK_STR(md_type_name(m, T_KEY2, name, sizeof name), "(u16, AccountId32)");
        CHECK_STR(md_type_name(m, T_MULTIADDR, name, sizeof name), "MultiAddress<AccountId32>");
        CHECK_STR(md_type_name(m, T_UNIT, name, sizeof name), "()");
        CHECK_STR(md_type_name(m, 9999, name, sizeof name), "?");
        char tiny[6];
        CHECK_STR(md_type_name(m, T_KEY2, tiny, sizeof tiny), "(u16,");
        CHECK(md_type_is_empty(m, T_UNIT));
        CHECK(md_type_is_empty(m, T_NONZERO));
        CHECK(md_type_is_empty(m, T_LSB0));
        CHECK(!md_type_is_empty(m, T_CHECK_NONCE));
        CHECK(!md_type_is_empty(m, T_RECUR));
        CHECK(!md_type_is_empty(m, T_OPT_UNIT));
        CHECK_EQ_INT(md_type_min_size(m, T_ACCOUNT), 32);
        CHECK_EQ_INT(md_type_min_size(m, T_KEY2), 34);
        CHECK_EQ_INT(md_type_min_size(m, T_DISPATCH), 1);
        md_free(m);
    }
}

TEST(metadata_wrappers_versions_and_garbage) {
    mdopts o = {.version = 15};
    size_t n;
    uint8_t *b = build_metadata(&o, &n);
    md_metadata *m;
    ts_err e = {0};
    /* Option<Vec<u8>> as Metadata_metadata_at_version returns it */
    scale_writer w = SCALE_WRITER_INIT;
    scale_put_u8(&w, 1);
    scale_put_vec(&w, b, n);
    CHECK_EQ_INT(md_parse(w.p, w.len, &m, &e), 0);
    CHECK_EQ_INT(m->version, 15);
    md_free(m);
    /* Vec<u8> alone */
    CHECK_EQ_INT(md_parse(w.p + 1, w.len - 1, &m, &e), 0);
    md_free(m);
    scale_writer_free(&w);
    /* other versions are refused by number */
    for (int v = 13; v <= 16; v += 3) {
        b[4] = (uint8_t)v;
        CHECK_EQ_INT(md_parse(b, n, &m, &e), TS_EUNSUPPORTED);
        char want[32];
        snprintf(want, sizeof want, "version %d", v);
        CHECK_MSG(strstr(e.msg, want) != NULL, "message: %s", e.msg);
    }
    b[4] = 15;
    b[0] = 'M';
    CHECK_EQ_INT(md_parse(b, n, &m, &e), TS_EFORMAT);
    CHECK(strstr(e.msg, "magic") != NULL);
    b[0] = 'm';
    /* trailing bytes */
    uint8_t *b2 = malloc(n + 1);
    memcpy(b2, b, n);
    b2[n] = 0;
    CHECK_EQ_INT(md_parse(b2, n + 1, &m, &e), TS_EFORMAT);
    CHECK_MSG(strstr(e.msg, "left over") != NULL, "message: %s", e.msg);
    free(b2);
    /* every truncation fails cleanly */
    for (size_t cut = 0; cut < n; cut += 1 + cut / 64) {
        m = NULL;
        CHECK_MSG(md_parse(b, cut, &m, &e) != 0, "truncated at %zu parsed", cut);
        CHECK(m == NULL);
    }
    free(b);
}

TEST(metadata_refuses_dangling_type_ids) {
    /* a one-type registry whose Vec refers to type 5 */
    scale_writer w = SCALE_WRITER_INIT;
    scale_put(&w, "meta", 4);
    scale_put_u8(&w, 14);
    scale_put_compact(&w, 1);
    ty_seq(&w, 0, 5);
    md_metadata *m;
    ts_err e = {0};
    CHECK_EQ_INT(md_parse(w.p, w.len, &m, &e), TS_EFORMAT);
    CHECK_MSG(strstr(e.msg, "type id") != NULL, "message: %s", e.msg);
    scale_writer_free(&w);
    /* ids out of order */
    scale_put(&w, "meta", 4);
    scale_put_u8(&w, 14);
    scale_put_compact(&w, 2);
    ty_prim(&w, 1, MD_U8);
    ty_prim(&w, 0, MD_U8);
    CHECK_EQ_INT(md_parse(w.p, w.len, &m, &e), TS_EFORMAT);
    scale_writer_free(&w);
    /* a huge count with little input */
    scale_put(&w, "meta", 4);
    scale_put_u8(&w, 14);
    scale_put_compact(&w, 1u << 29);
    ty_prim(&w, 0, MD_U8);
    CHECK_EQ_INT(md_parse(w.p, w.len, &m, &e), TS_EFORMAT);
    scale_writer_free(&w);
}

/* ------------------------------------------------------------ value codec */

static void roundtrip(const md_metadata *m, uint32_t type, const char *json, const char *want_hex,
                      const char *want_back, int line) {
    ts_err e = {0};
    cJSON *v = cJSON_Parse(json);
    if (!v) {
        th_fail(__FILE__, line, "bad JSON in test: %s", json);
        return;
    }
    scale_writer w = SCALE_WRITER_INIT;
    if (md_encode(m, type, v, &w, &e)) {
        th_fail(__FILE__, line, "encode %s: %s", json, e.msg);
    } else {
        char *h = hex_of(w.p, w.len);
        if (strcmp(h + 2, want_hex)) th_fail(__FILE__, line, "encode %s: %s, expected %s", json, h + 2, want_hex);
        free(h);
        cJSON *back = NULL;
        if (md_decode(m, type, w.p, w.len, &back, &e)) {
            th_fail(__FILE__, line, "decode %s: %s", want_hex, e.msg);
        } else {
            char *s = cJSON_PrintUnformatted(back);
            const char *want = want_back ? want_back : json;
            cJSON *wj = cJSON_Parse(want);
            if (!cJSON_Compare(back, wj, true)) th_fail(__FILE__, line, "decode %s: %s, expected %s", want_hex, s, want);
            cJSON_Delete(wj);
            free(s);
            cJSON_Delete(back);
        }
    }
    scale_writer_free(&w);
    cJSON_Delete(v);
}

#define RT(t, json, hex) roundtrip(m, t, json, hex, NULL, __LINE__)
#define RT2(t, json, hex, back) roundtrip(m, t, json, hex, back, __LINE__)

static int encode_err(const md_metadata *m, uint32_t type, const char *json, ts_err *e) {
    cJSON *v = cJSON_Parse(json);
    scale_writer w = SCALE_WRITER_INIT;
    int rc = md_encode(m, type, v, &w, e);
    if (rc && w.len != 0) th_fail(__FILE__, __LINE__, "a failed encode left %zu bytes", w.len);
    scale_writer_free(&w);
    cJSON_Delete(v);
    return rc;
}

TEST(value_codec_conventions) {
    mdopts o = {.version = 15};
    md_metadata *m = load_md(&o);
    REQUIRE(m);
    RT(T_U8, "7", "07");
    RT(T_U16, "65535", "ffff");
    RT(T_U64, "9007199254740991", "ffffffffffff1f00");
    RT(T_U64, "\"9007199254740992\"", "0000000000002000");          /* 2^53: text */
    RT2(T_U64, "\"42\"", "2a00000000000000", "42");                  /* text in, number out */
    RT(T_U64, "\"18446744073709551615\"", "ffffffffffffffff");
    RT(T_U128, "\"340282366920938463463374607431768211455\"", "ffffffffffffffffffffffffffffffff");
    RT(T_I64, "-5", "fbffffffffffffff");
    RT(T_I64, "\"-9223372036854775808\"", "0000000000000080");
    RT(T_I128, "-1", "ffffffffffffffffffffffffffffffff");
    RT(T_U256, "1", "0100000000000000000000000000000000000000000000000000000000000000");
    RT(T_BOOL, "true", "01");
    RT(T_STR, "\"héllo\"", "1868c3a96c6c6f");
    RT(T_CHAR, "\"é\"", "e9000000");
    RT(T_STR, "{\"hex\": \"0x610062\"}", "0c610062"); /* "a\0b" */
    RT2(T_STR, "{\"hex\": \"0x6162\"}", "086162", "\"ab\"");
    RT(T_C_U32, "64", "0101");
    RT(T_C_U128, "\"18446744073709551616\"", "17000000000000000001");
    RT(T_C_PERBILL, "1000000000", "02286bee"); /* Compact<Perbill> is the bare number */
    RT(T_PERBILL, "5", "05000000");
    RT(T_VEC_U16, "[1,2,3]", "0c010002000300");
    RT(T_VEC_U16, "[]", "00");
    RT(T_VEC_U8, "\"0x0102\"", "080102");
    RT2(T_VEC_U8, "[1, 2]", "080102", "\"0x0102\"");
    RT(T_A4, "\"0xdeadbeef\"", "deadbeef");
    RT(T_ACCOUNT, "\"0x" "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d\"",
       "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d");
    /* an SS58 address (Alice) is taken for an AccountId32 */
    RT2(T_ACCOUNT, "\"5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY\"",
        "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d",
        "\"0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d\"");
    RT(T_OPT_U32, "null", "00");
    RT(T_OPT_U32, "5", "0105000000");
    /* Option<Option<u32>> and Option<()> keep the generic form */
    RT(T_OPT_OPT, "{\"None\": null}", "00");
    RT(T_OPT_OPT, "{\"Some\": null}", "0100");
    RT(T_OPT_OPT, "{\"Some\": 7}", "010107000000");
    RT(T_OPT_UNIT, "{\"Some\": null}", "01");
    RT(T_UNIT, "null", "");
    RT(T_KEY2, "[1, \"0x" ZERO32 "\"]", "0100" ZERO32);
    RT(T_TUPLE_STRUCT, "[1, 2]", "010002000000");
    RT(T_MODERR, "{\"index\": 7, \"error\": \"0x01000000\"}", "0701000000");
    RT(T_DISPATCH, "{\"BadOrigin\": null}", "02");
    RT2(T_DISPATCH, "\"BadOrigin\"", "02", "{\"BadOrigin\": null}");
    RT(T_DISPATCH, "{\"Module\": {\"index\": 7, \"error\": \"0x01000000\"}}", "030701000000");
    RT(T_DISPATCH, "{\"Token\": {\"OnlyProvider\": null}}", "0701");
    RT(T_MULTIADDR, "{\"Raw\": \"0xab\"}", "0204ab");
    RT(T_BITVEC, "\"0x0f\"", "200f");
    RT(T_BITVEC, "{\"bits\": 3, \"data\": \"0x05\"}", "0c05");
    RT(T_VEC_UNIT, "[null, null]", "08");
    RT(T_SUB_CALL, "{\"set_weights\": {\"netuid\": 1, \"dests\": [0, 5], \"weights\": [65535, 100], \"version_key\": 7}}",
       "000100080000050008ffff64000700000000000000");
    ts_err e = {0};
    /* errors name the place and the type */
    CHECK_EQ_INT(encode_err(m, T_U16, "70000", &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "u16") != NULL, "message: %s", e.msg);
    CHECK_EQ_INT(encode_err(m, T_U16, "-1", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_U16, "1.5", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_U16, "\"x\"", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_U16, "true", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_U64, "18446744073709551615", &e), TS_EINVAL); /* beyond 2^53 as a number */
    CHECK_MSG(strstr(e.msg, "decimal string") != NULL, "message: %s", e.msg);
    CHECK_EQ_INT(encode_err(m, T_U8, "\"256\"", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_C_U32, "\"4294967296\"", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_A4, "\"0xdead\"", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_A4, "\"dead\"", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_ACCOUNT, "\"5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ\"", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_VEC_U16, "[1, \"a\"]", &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "[1]") != NULL, "message: %s", e.msg);
    CHECK_EQ_INT(encode_err(m, T_MODERR, "{\"index\": 7}", &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "missing field 'error'") != NULL, "message: %s", e.msg);
    CHECK_EQ_INT(encode_err(m, T_MODERR, "{\"index\": 7, \"error\": \"0x00000000\", \"x\": 1}", &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "unknown field 'x'") != NULL, "message: %s", e.msg);
    CHECK_EQ_INT(encode_err(m, T_DISPATCH, "{\"Nope\": null}", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_DISPATCH, "\"Module\"", &e), TS_EINVAL); /* needs a value */
    CHECK_EQ_INT(encode_err(m, T_DISPATCH, "{\"Module\": {\"index\": 300, \"error\": \"0x00000000\"}}", &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "Module.index") != NULL, "message: %s", e.msg);
    CHECK_EQ_INT(encode_err(m, T_KEY2, "[1]", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_CHAR, "\"ab\"", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_STR, "{\"hex\": \"0xc328\"}", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_BITVEC, "{\"bits\": 9, \"data\": \"0x05\"}", &e), TS_EINVAL);
    CHECK_EQ_INT(encode_err(m, T_RECUR, "{\"inner\": {\"inner\": null}}", &e), TS_EINVAL);
    md_free(m);
}

static int decode_hex(const md_metadata *m, uint32_t type, const char *h, ts_err *e) {
    uint8_t b[256];
    size_t n = unhex_into(h, b, sizeof b);
    cJSON *v = NULL;
    int rc = md_decode(m, type, b, n, &v, e);
    cJSON_Delete(v);
    return rc;
}

TEST(value_decoder_refuses_bad_input) {
    mdopts o = {.version = 14};
    md_metadata *m = load_md(&o);
    REQUIRE(m);
    ts_err e = {0};
    CHECK_EQ_INT(decode_hex(m, T_U32, "010203", &e), TS_EFORMAT);
    CHECK_MSG(strstr(e.msg, "u32") != NULL, "message: %s", e.msg);
    CHECK_EQ_INT(decode_hex(m, T_U32, "0102030405", &e), TS_EFORMAT); /* left over */
    CHECK_EQ_INT(decode_hex(m, T_BOOL, "02", &e), TS_EFORMAT);
    CHECK_EQ_INT(decode_hex(m, T_OPT_U32, "02", &e), TS_EFORMAT);
    CHECK_EQ_INT(decode_hex(m, T_DISPATCH, "05", &e), TS_EFORMAT);
    CHECK_MSG(strstr(e.msg, "variant") != NULL, "message: %s", e.msg);
    CHECK_EQ_INT(decode_hex(m, T_VEC_U16, "0d0100", &e), TS_EFORMAT);
    CHECK_EQ_INT(decode_hex(m, T_VEC_U16, "0300000040", &e), TS_EFORMAT); /* 2^30 items in 0 bytes */
    CHECK_EQ_INT(decode_hex(m, T_C_U32, "0100", &e), TS_EFORMAT);          /* non-canonical */
    CHECK_EQ_INT(decode_hex(m, T_C_U32, "0700000000" "01", &e), TS_EFORMAT);
    CHECK_EQ_INT(decode_hex(m, T_STR, "08c328", &e), TS_EFORMAT);
    CHECK_EQ_INT(decode_hex(m, T_CHAR, "00d80000", &e), TS_EFORMAT);       /* a surrogate */
    CHECK_EQ_INT(decode_hex(m, T_RECUR, "", &e), TS_EFORMAT);              /* infinite type */
    CHECK_MSG(strstr(e.msg, "deep") != NULL, "message: %s", e.msg);
    /* a Vec of empty tuples claims 2^30 items: refused by the node budget */
    CHECK_EQ_INT(decode_hex(m, T_VEC_UNIT, "0300000040", &e), TS_ETOOBIG);
    CHECK_EQ_INT(decode_hex(m, T_VEC_VEC_UNIT, "10" "82a90300" "82a90300" "82a90300" "82a90300", &e), TS_ETOOBIG);
    CHECK_EQ_INT(decode_hex(m, T_VEC_UNIT, "0c", &e), 0);
    CHECK_EQ_INT(decode_hex(m, T_BITVEC, "2101", &e), TS_EFORMAT);        /* 8 bits need 1 byte, 9 need 2 */
    CHECK_EQ_INT(decode_hex(m, 12345, "00", &e), TS_EFORMAT);
    md_free(m);
}

/* ------------------------------------------------------------ storage keys */

static void key_hex(const md_metadata *m, const char *pallet, const char *item, const char *keys,
                    const char *want, int line) {
    ts_err e = {0};
    cJSON *k = keys ? cJSON_Parse(keys) : NULL;
    scale_writer w = SCALE_WRITER_INIT;
    if (md_storage_key(m, pallet, item, k, &w, &e)) {
        th_fail(__FILE__, line, "%s.%s: %s", pallet, item, e.msg);
    } else {
        char *h = hex_of(w.p, w.len);
        if (strcmp(h + 2, want)) th_fail(__FILE__, line, "%s.%s key %s, expected %s", pallet, item, h + 2, want);
        free(h);
    }
    scale_writer_free(&w);
    cJSON_Delete(k);
}

#define SUBTENSOR "658faa385070e074c85bf6b568cf0555"
#define ALICE "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"

TEST(storage_keys_and_values) {
    mdopts o = {.version = 14};
    md_metadata *m = load_md(&o);
    REQUIRE(m);
    ts_err e = {0};
    key_hex(m, "Timestamp", "Now", NULL, "f0c365c3cf59d671eb72da0e7a4113c49f1f0515f462cdcf84e0f1d6045dfcbb", __LINE__);
    key_hex(m, "System", "Account", "[\"0x" ALICE "\"]",
            "26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9de1e86a9a8c739864cf3cc5ec2bea59f" ALICE,
            __LINE__);
    key_hex(m, "System", "Account", "[]", "26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9", __LINE__);
    /* Keys(netuid 1, uid 5): twox128 prefix, then both keys as they are */
    char want[256];
    uint8_t item[16];
    scale_twox128("Keys", 4, item);
    char *ih = hex_of(item, 16);
    snprintf(want, sizeof want, SUBTENSOR "%s" "0100" "0500", ih + 2);
    key_hex(m, "SubtensorModule", "Keys", "[1, 5]", want, __LINE__);
    snprintf(want, sizeof want, SUBTENSOR "%s" "0100", ih + 2); /* one key: a prefix for iteration */
    key_hex(m, "SubtensorModule", "Keys", "[1]", want, __LINE__);
    free(ih);
    /* errors */
    cJSON *k = cJSON_Parse("[1, 2, 3]");
    scale_writer w = SCALE_WRITER_INIT;
    CHECK_EQ_INT(md_storage_key(m, "SubtensorModule", "Keys", k, &w, &e), TS_EINVAL);
    cJSON_Delete(k);
    k = cJSON_Parse("[1, 70000]");
    CHECK_EQ_INT(md_storage_key(m, "SubtensorModule", "Keys", k, &w, &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "key 2") != NULL, "message: %s", e.msg);
    cJSON_Delete(k);
    k = cJSON_Parse("[1]");
    CHECK_EQ_INT(md_storage_key(m, "Timestamp", "Now", k, &w, &e), TS_EINVAL);
    CHECK_EQ_INT(md_storage_key(m, "Timestamp", "Nope", k, &w, &e), TS_ENOTFOUND);
    cJSON_Delete(k);
    scale_writer_free(&w);

    /* keys back from a full key: concat hashers and Identity give values,
     * opaque hashes give null */
    k = cJSON_Parse("[3, \"0x" ALICE "\"]");
    CHECK_EQ_INT(md_storage_key(m, "SubtensorModule", "Uids", k, &w, &e), 0);
    cJSON *back;
    CHECK_EQ_INT(md_storage_key_decode(m, "SubtensorModule", "Uids", w.p, w.len, &back, &e), 0);
    CHECK(cJSON_Compare(back, k, true));
    cJSON_Delete(back);
    CHECK_EQ_INT(md_storage_key_decode(m, "SubtensorModule", "Uids", w.p, w.len - 1, &back, &e), TS_EFORMAT);
    CHECK_EQ_INT(md_storage_key_decode(m, "SubtensorModule", "Keys", w.p, w.len, &back, &e), TS_EFORMAT);
    cJSON_Delete(k);
    scale_writer_free(&w);
    /* Opaque: Blake2_256 (the key is lost) then Twox64Concat */
    k = cJSON_Parse("[1, 2]");
    CHECK_EQ_INT(md_storage_key(m, "SubtensorModule", "Opaque", k, &w, &e), 0);
    CHECK_EQ_INT(w.len, 32 + 32 + 8 + 2);
    CHECK_EQ_INT(md_storage_key_decode(m, "SubtensorModule", "Opaque", w.p, w.len, &back, &e), 0);
    char *s = cJSON_PrintUnformatted(back);
    CHECK_STR(s, "[null,2]");
    free(s);
    cJSON_Delete(back);
    cJSON_Delete(k);
    scale_writer_free(&w);
    k = cJSON_Parse("[[1, 2]]");
    CHECK_EQ_INT(md_storage_key(m, "SubtensorModule", "Opaque", k, &w, &e), TS_EINVAL);
    cJSON_Delete(k);
    scale_writer_free(&w);

    /* values: absent Default items read as their default, Optional as null */
    const md_storage_entry *se;
    REQUIRE(md_storage_find(m, "SubtensorModule", "Stake", NULL, &se, &e) == 0);
    cJSON *v;
    CHECK_EQ_INT(md_storage_decode(m, se, NULL, 0, false, &v, &e), 0);
    CHECK(cJSON_IsNumber(v) && v->valuedouble == 0);
    cJSON_Delete(v);
    uint8_t stake[8] = {0x00, 0xe4, 0x0b, 0x54, 0x02, 0, 0, 0};
    CHECK_EQ_INT(md_storage_decode(m, se, stake, 8, true, &v, &e), 0);
    CHECK(cJSON_IsNumber(v) && v->valuedouble == 10000000000.0);
    cJSON_Delete(v);
    REQUIRE(md_storage_find(m, "SubtensorModule", "Uids", NULL, &se, &e) == 0);
    CHECK_EQ_INT(md_storage_decode(m, se, NULL, 0, false, &v, &e), 0);
    CHECK(cJSON_IsNull(v));
    cJSON_Delete(v);
    CHECK_EQ_INT(md_storage_decode(m, se, stake, 3, true, &v, &e), TS_EFORMAT);
    md_free(m);
}

/* ------------------------------------------------------- calls and signing */

TEST(call_encoding_names_its_errors) {
    mdopts o = {.version = 14};
    md_metadata *m = load_md(&o);
    REQUIRE(m);
    ts_err e = {0};
    scale_writer w = SCALE_WRITER_INIT;
    cJSON *a = cJSON_Parse("{\"netuid\": 1, \"dests\": [0, 5], \"weights\": [65535, 100], \"version_key\": 7}");
    CHECK_EQ_INT(xt_call_encode(m, "SubtensorModule", "set_weights", a, &w, &e), 0);
    CHECK_HEX(w, "0700" "0100" "080000" "0500" "08ffff" "6400" "0700000000000000");
    scale_writer_free(&w);
    cJSON_Delete(a);
    a = cJSON_Parse("{\"netuid\": 1, \"hotkey\": \"0x" ALICE "\"}");
    CHECK_EQ_INT(xt_call_encode(m, "SubtensorModule", "burned_register", a, &w, &e), 0);
    CHECK_HEX(w, "0707" "0100" ALICE);
    scale_writer_free(&w);
    cJSON_Delete(a);
    CHECK_EQ_INT(xt_call_encode(m, "System", "noop", NULL, &w, &e), 0);
    CHECK_HEX(w, "0003");
    scale_writer_free(&w);
    a = cJSON_Parse("{\"netuid\": 1, \"dests\": [0, 70000], \"weights\": [1, 1], \"version_key\": 7}");
    CHECK_EQ_INT(xt_call_encode(m, "SubtensorModule", "set_weights", a, &w, &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "SubtensorModule.set_weights") && strstr(e.msg, "'dests'") && strstr(e.msg, "[1]"),
              "message: %s", e.msg);
    CHECK_EQ_INT(w.len, 0);
    cJSON_Delete(a);
    a = cJSON_Parse("{\"netuid\": 1, \"dests\": [0], \"weights\": [1]}");
    CHECK_EQ_INT(xt_call_encode(m, "SubtensorModule", "set_weights", a, &w, &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "missing field 'version_key'") != NULL, "message: %s", e.msg);
    cJSON_Delete(a);
    a = cJSON_Parse("{\"netuid\": 1, \"dests\": [0], \"weights\": [1], \"version_key\": 1, \"extra\": 2}");
    CHECK_EQ_INT(xt_call_encode(m, "SubtensorModule", "set_weights", a, &w, &e), TS_EINVAL);
    CHECK_MSG(strstr(e.msg, "'extra'") != NULL, "message: %s", e.msg);
    cJSON_Delete(a);
    a = cJSON_Parse("[1, 2]");
    CHECK_EQ_INT(xt_call_encode(m, "SubtensorModule", "set_weights", a, &w, &e), TS_EINVAL);
    cJSON_Delete(a);
    CHECK_EQ_INT(xt_call_encode(m, "SubtensorModule", "set_weightz", NULL, &w, &e), TS_ENOTFOUND);
    CHECK_EQ_INT(xt_call_encode(m, "Timestamp", "set", NULL, &w, &e), TS_ENOTFOUND);
    scale_writer_free(&w);
    md_free(m);
}

typedef struct {
    uint8_t got[512];
    size_t len;
    int calls;
} sign_rec;

static int fake_sign(void *ctx, const uint8_t *payload, size_t len, uint8_t sig[64]) {
    sign_rec *s = ctx;
    s->calls++;
    s->len = len;
    memcpy(s->got, payload, len < sizeof s->got ? len : sizeof s->got);
    memset(sig, 0x03, 64);
    return 0;
}

static int failing_sign(void *ctx, const uint8_t *payload, size_t len, uint8_t sig[64]) { return -1; }

static xt_params test_params(void) {
    xt_params p;
    memset(&p, 0, sizeof p);
    memset(p.signer, 0x02, 32);
    p.nonce = 5;
    p.tip = 7;
    p.spec_version = 1000;
    p.tx_version = 25;
    memset(p.genesis_hash, 0x04, 32);
    p.era = xt_era_mortal(64, 12345);
    memset(p.era_block_hash, 0x05, 32);
    return p;
}

#define H4 "0404040404040404040404040404040404040404040404040404040404040404"
#define H5 "0505050505050505050505050505050505050505050505050505050505050505"
#define S3 "03030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303"
#define K2 "0202020202020202020202020202020202020202020202020202020202020202"

TEST(signed_extrinsic_layout) {
    for (int cfg = 0; cfg < 3; cfg++) {
        /* v14, v15, and v15 with subtensor's extensions (the tip inside
         * ChargeTransactionPaymentWrapper { inner }, four empty ones):
         * the same bytes */
        mdopts o = {.version = cfg ? 15 : 14, .unknown_empty_ext = cfg == 1, .subtensor_exts = cfg == 2};
        md_metadata *m = load_md(&o);
        REQUIRE(m);
        ts_err e = {0};
        scale_writer call = SCALE_WRITER_INIT;
        cJSON *a = cJSON_Parse("{\"netuid\": 1, \"hotkey\": \"0x" ALICE "\"}");
        REQUIRE(xt_call_encode(m, "SubtensorModule", "burned_register", a, &call, &e) == 0);
        cJSON_Delete(a);
        xt_params p = test_params();
        /* extra: era, nonce, tip, metadata-hash mode; additional: spec, tx,
         * genesis, era block, no metadata hash */
        const char *extra = "9503" "14" "1c" "00";
        const char *additional = "e8030000" "19000000" H4 H5 "00";
        scale_writer pay = SCALE_WRITER_INIT;
        REQUIRE(xt_signing_payload(m, call.p, call.len, &p, &pay, &e) == 0);
        char want[1024];
        snprintf(want, sizeof want, "0707" "0100" ALICE "%s%s", extra, additional);
        CHECK_HEX(pay, want);
        sign_rec rec = {0};
        xt_signed x;
        REQUIRE(xt_sign(m, call.p, call.len, &p, fake_sign, &rec, &x, &e) == 0);
        CHECK_EQ_INT(rec.calls, 1);
        CHECK_EQ_INT(rec.len, pay.len);
        CHECK(!memcmp(rec.got, pay.p, pay.len));
        /* body: 0x84, MultiAddress::Id, MultiSignature::Sr25519, extra, call */
        char body[1024];
        snprintf(body, sizeof body, "84" "00" K2 "01" S3 "%s" "0707" "0100" ALICE, extra);
        size_t body_len = strlen(body) / 2;
        scale_writer env = SCALE_WRITER_INIT;
        scale_put_compact(&env, body_len);
        char *lenhex = hex_of(env.p, env.len);
        snprintf(want, sizeof want, "%s%s", lenhex + 2, body);
        free(lenhex);
        scale_writer_free(&env);
        env.p = x.bytes;
        env.len = x.len;
        CHECK_HEX(env, want);
        uint8_t h[32];
        scale_blake2_256(x.bytes, x.len, h);
        CHECK(!memcmp(h, x.hash, 32));
        xt_signed_free(&x);
        /* immortal */
        p.era = xt_era_immortal();
        scale_writer_free(&pay);
        REQUIRE(xt_signing_payload(m, call.p, call.len, &p, &pay, &e) == 0);
        snprintf(want, sizeof want, "0707" "0100" ALICE "00" "14" "1c" "00" "e8030000" "19000000" H4 H5 "00");
        CHECK_HEX(pay, want);
        /* nonce beyond the nonce type (Compact<u32>) */
        p.nonce = 1ull << 32;
        scale_writer_free(&pay);
        CHECK_EQ_INT(xt_signing_payload(m, call.p, call.len, &p, &pay, &e), TS_EINVAL);
        CHECK_MSG(strstr(e.msg, "CheckNonce") != NULL, "message: %s", e.msg);
        p.nonce = 5;
        CHECK_EQ_INT(xt_sign(m, call.p, call.len, &p, failing_sign, NULL, &x, &e), TS_ESIG);
        CHECK(x.bytes == NULL);
        scale_writer_free(&pay);
        scale_writer_free(&call);
        md_free(m);
    }
}

TEST(long_payloads_are_hashed_before_signing) {
    mdopts o = {.version = 14};
    md_metadata *m = load_md(&o);
    REQUIRE(m);
    ts_err e = {0};
    char remark[2 + 2 * 300 + 1] = "0x";
    for (int i = 0; i < 300; i++) snprintf(remark + 2 + 2 * i, 3, "%02x", i & 0xff);
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "remark", remark);
    scale_writer call = SCALE_WRITER_INIT, pay = SCALE_WRITER_INIT;
    REQUIRE(xt_call_encode(m, "System", "remark", a, &call, &e) == 0);
    cJSON_Delete(a);
    xt_params p = test_params();
    REQUIRE(xt_signing_payload(m, call.p, call.len, &p, &pay, &e) == 0);
    CHECK(pay.len > 256);
    sign_rec rec = {0};
    xt_signed x;
    REQUIRE(xt_sign(m, call.p, call.len, &p, fake_sign, &rec, &x, &e) == 0);
    uint8_t h[32];
    scale_blake2_256(pay.p, pay.len, h);
    CHECK_EQ_INT(rec.len, 32);
    CHECK(!memcmp(rec.got, h, 32));
    xt_signed_free(&x);
    scale_writer_free(&pay);
    scale_writer_free(&call);
    md_free(m);
}

TEST(unknown_signed_extensions_fail_loudly) {
    mdopts o = {.version = 15, .unknown_ext = true};
    md_metadata *m = load_md(&o);
    REQUIRE(m);
    ts_err e = {0};
    xt_params p = test_params();
    scale_writer pay = SCALE_WRITER_INIT;
    const uint8_t call[] = {0x00, 0x03};
    CHECK_EQ_INT(xt_signing_payload(m, call, 2, &p, &pay, &e), TS_EUNSUPPORTED);
    CHECK_MSG(strstr(e.msg, "FancyNewExtension") != NULL, "message: %s", e.msg);
    scale_writer_free(&pay);
    md_free(m);
}

TEST(dispatch_errors_by_name) {
    mdopts o = {.version = 15};
    md_metadata *m = load_md(&o);
    REQUIRE(m);
    ts_err e = {0};
    char out[128];
    uint8_t mod[] = {0x03, 0x07, 0x01, 0x00, 0x00, 0x00};
    CHECK_EQ_INT(xt_dispatch_error_bytes(m, mod, sizeof mod, out, sizeof out, &e), 0);
    CHECK_STR(out, "SubtensorModule.WeightVecNotEqualSize");
    uint8_t bad_origin[] = {0x02};
    CHECK_EQ_INT(xt_dispatch_error_bytes(m, bad_origin, 1, out, sizeof out, &e), 0);
    CHECK_STR(out, "BadOrigin");
    uint8_t token[] = {0x07, 0x00};
    CHECK_EQ_INT(xt_dispatch_error_bytes(m, token, 2, out, sizeof out, &e), 0);
    CHECK_STR(out, "Token.FundsUnavailable");
    uint8_t unknown[] = {0x03, 0x09, 0x01, 0x00, 0x00, 0x00};
    CHECK_EQ_INT(xt_dispatch_error_bytes(m, unknown, sizeof unknown, out, sizeof out, &e), 0);
    CHECK_STR(out, "Module(pallet 9, error 1)");
    CHECK_EQ_INT(xt_dispatch_error_bytes(m, mod, 3, out, sizeof out, &e), TS_EFORMAT);
    cJSON *j = cJSON_Parse("{\"Module\": {\"index\": 7, \"error\": 0}}"); /* the older u8 form */
    CHECK_EQ_INT(xt_dispatch_error(m, j, out, sizeof out, &e), 0);
    CHECK_STR(out, "SubtensorModule.NotRegistered");
    cJSON_Delete(j);
    j = cJSON_Parse("[1]");
    CHECK_EQ_INT(xt_dispatch_error(m, j, out, sizeof out, &e), TS_EFORMAT);
    cJSON_Delete(j);
    md_free(m);
}

/* ------------------------------------------------------------- robustness */

/* A deterministic sample value of a type (NULL where none can be made). */
static cJSON *sample(const md_metadata *m, uint32_t id, rng_t *r, int depth);

static bool is_option_type(const md_type *t) {
    return t && t->kind == MD_VARIANT && t->npath == 1 && !strcmp(t->path[0], "Option");
}

/* metadata.h's rule: values of these types can be JSON null, so an Option of
 * one takes the generic {"None": null} / {"Some": v} form. */
static bool renders_null_t(const md_metadata *m, uint32_t id, int depth) {
    const md_type *t = md_type_get(m, id);
    if (!t || depth > MD_MAX_DEPTH) return true;
    if (t->kind == MD_TUPLE) return t->u.tuple.ntypes == 0;
    if (t->kind == MD_COMPOSITE) {
        if (t->u.composite.nfields == 0) return true;
        if (t->u.composite.nfields == 1 && !t->u.composite.fields[0].name)
            return renders_null_t(m, t->u.composite.fields[0].type, depth + 1);
        return false;
    }
    if (is_option_type(t)) {
        const md_variant *some = md_variant_by_name(t, "Some");
        return some && some->nfields == 1 && !renders_null_t(m, some->fields[0].type, depth + 1);
    }
    return false;
}

static cJSON *sample_fields(const md_metadata *m, const md_field *f, uint32_t n, rng_t *r, int depth) {
    if (n == 0) return cJSON_CreateNull();
    if (n == 1 && !f[0].name) return sample(m, f[0].type, r, depth + 1);
    bool named = true;
    for (uint32_t i = 0; i < n; i++) named &= f[i].name != NULL;
    cJSON *c = named ? cJSON_CreateObject() : cJSON_CreateArray();
    for (uint32_t i = 0; i < n; i++) {
        cJSON *v = sample(m, f[i].type, r, depth + 1);
        if (!v) {
            cJSON_Delete(c);
            return NULL;
        }
        if (named) cJSON_AddItemToObject(c, f[i].name, v);
        else cJSON_AddItemToArray(c, v);
    }
    return c;
}

static cJSON *sample_int(int width, bool sgn, rng_t *r) {
    uint64_t x = rnd(r);
    int kind = (int)(x % 4);
    if (width <= 4 || kind < 2) {
        int bits = width >= 4 ? 31 : 8 * width - (sgn ? 1 : 0);
        int64_t v = (int64_t)(rnd(r) % (1ull << bits));
        if (sgn && (x & 16)) v = -v;
        return cJSON_CreateNumber((double)v);
    }
    /* a wide value as decimal text */
    uint8_t le[32] = {0};
    for (int i = 0; i < width; i++) le[i] = (uint8_t)rnd(r);
    char dec[100];
    scale_le_to_dec(le, (size_t)width, sgn, dec, sizeof dec);
    return cJSON_CreateString(dec);
}

static cJSON *hex_json_n(size_t n, rng_t *r) {
    uint8_t b[64];
    for (size_t i = 0; i < n && i < sizeof b; i++) b[i] = (uint8_t)rnd(r);
    char *h = hex_of(b, n);
    cJSON *j = cJSON_CreateString(h);
    free(h);
    return j;
}

static cJSON *sample(const md_metadata *m, uint32_t id, rng_t *r, int depth) {
    static const int widths[] = {1, 4, 0, 1, 2, 4, 8, 16, 32, 1, 2, 4, 8, 16, 32};
    const md_type *t = md_type_get(m, id);
    if (!t || depth > 12) return NULL;
    switch (t->kind) {
    case MD_PRIMITIVE:
        if (t->u.prim == MD_BOOL) return cJSON_CreateBool(rnd(r) & 1);
        if (t->u.prim == MD_STR) return cJSON_CreateString(rnd(r) & 1 ? "tessera" : "");
        if (t->u.prim == MD_CHAR) return cJSON_CreateString("x");
        return sample_int(widths[t->u.prim], t->u.prim >= MD_I8, r);
    case MD_COMPACT: {
        const md_type *in = md_type_get(m, t->u.sequence.type);
        while (in && in->kind == MD_COMPOSITE && in->u.composite.nfields == 1)
            in = md_type_get(m, in->u.composite.fields[0].type);
        if (!in || in->kind != MD_PRIMITIVE || in->u.prim < MD_U8 || in->u.prim > MD_U128) return NULL;
        return sample_int(widths[in->u.prim], false, r);
    }
    case MD_SEQUENCE: {
        const md_type *el = md_type_get(m, t->u.sequence.type);
        /* never empty: polkadot reads "0x" inside an Option as None */
        if (el && el->kind == MD_PRIMITIVE && el->u.prim == MD_U8) return hex_json_n(1 + rnd(r) % 4, r);
        cJSON *a = cJSON_CreateArray();
        /* one item at most: sets and maps would sort several */
        int n = (int)(rnd(r) % 2);
        for (int i = 0; i < n; i++) {
            cJSON *v = sample(m, t->u.sequence.type, r, depth + 1);
            if (!v) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, v);
        }
        return a;
    }
    case MD_ARRAY: {
        const md_type *el = md_type_get(m, t->u.array.type);
        if (el && el->kind == MD_PRIMITIVE && el->u.prim == MD_U8) return t->u.array.len <= 64 ? hex_json_n(t->u.array.len, r) : NULL;
        if (t->u.array.len > 16) return NULL;
        cJSON *a = cJSON_CreateArray();
        for (uint32_t i = 0; i < t->u.array.len; i++) {
            cJSON *v = sample(m, t->u.array.type, r, depth + 1);
            if (!v) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, v);
        }
        return a;
    }
    case MD_TUPLE: {
        if (t->u.tuple.ntypes == 0) return cJSON_CreateNull();
        cJSON *a = cJSON_CreateArray();
        for (uint32_t i = 0; i < t->u.tuple.ntypes; i++) {
            cJSON *v = sample(m, t->u.tuple.types[i], r, depth + 1);
            if (!v) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, v);
        }
        return a;
    }
    case MD_COMPOSITE: return sample_fields(m, t->u.composite.fields, t->u.composite.nfields, r, depth);
    case MD_VARIANT: {
        if (t->u.variant.nvariants == 0) return NULL;
        const md_variant *v = &t->u.variant.variants[rnd(r) % t->u.variant.nvariants];
        const md_variant *some = md_variant_by_name(t, "Some");
        if (is_option_type(t) && some && some->nfields == 1 && !renders_null_t(m, some->fields[0].type, 0)) {
            /* null or the value */
            if (!strcmp(v->name, "None")) return cJSON_CreateNull();
            return sample(m, some->fields[0].type, r, depth + 1);
        }
        cJSON *val = sample_fields(m, v->fields, v->nfields, r, depth);
        if (!val) return NULL;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, v->name, val);
        return o;
    }
    case MD_BITSEQ: return NULL;
    }
    return NULL;
}

/* Decoding what was just encoded gives JSON that encodes to the same bytes. */
static void check_value_roundtrip(const md_metadata *m, uint32_t id, const uint8_t *p, size_t n,
                                  const char *what) {
    ts_err e = {0};
    cJSON *v = NULL;
    if (md_decode(m, id, p, n, &v, &e)) {
        th_fail(__FILE__, __LINE__, "%s: type %u: its own bytes do not decode: %s", what, id, e.msg);
        return;
    }
    scale_writer w = SCALE_WRITER_INIT;
    if (md_encode(m, id, v, &w, &e) || w.len != n || (n && memcmp(w.p, p, n))) {
        char *s = cJSON_PrintUnformatted(v);
        th_fail(__FILE__, __LINE__, "%s: type %u: %s does not encode back (%s)", what, id, s ? s : "?", e.msg);
        free(s);
    }
    scale_writer_free(&w);
    cJSON_Delete(v);
}

TEST(fuzz_metadata_and_values_never_crash) {
    rng_t r = {0x9e3779b97f4a7c15ull};
    ts_err e = {0};
    size_t n14, n15;
    mdopts o14 = {.version = 14}, o15 = {.version = 15};
    uint8_t *good[2] = {build_metadata(&o14, &n14), build_metadata(&o15, &n15)};
    size_t good_n[2] = {n14, n15};
    uint8_t buf[4096];
    int parsed = 0;
    /* random bytes behind a valid header */
    for (int it = 0; it < 2000; it++) {
        size_t n = 5 + rnd(&r) % 400;
        memcpy(buf, "meta", 4);
        buf[4] = (uint8_t)(14 + (it & 1));
        for (size_t i = 5; i < n; i++) buf[i] = (uint8_t)(rnd(&r) % (it % 3 ? 256 : 8));
        md_metadata *m = NULL;
        if (md_parse(buf, n, &m, &e) == 0) {
            parsed++;
            md_free(m);
        }
    }
    /* mutated and truncated real metadata; what still parses is used */
    int mutated_ok = 0;
    for (int it = 0; it < 1500; it++) {
        int k = it & 1;
        size_t n = good_n[k];
        uint8_t *b = malloc(n);
        memcpy(b, good[k], n);
        int flips = 1 + (int)(rnd(&r) % 3);
        for (int f = 0; f < flips; f++) b[5 + rnd(&r) % (n - 5)] = (uint8_t)rnd(&r);
        if (it % 5 == 0) n = 5 + rnd(&r) % (n - 5);
        md_metadata *m = NULL;
        if (md_parse(b, n, &m, &e) == 0) {
            mutated_ok++;
            for (int j = 0; j < 20; j++) {
                uint8_t v[48];
                size_t vn = rnd(&r) % sizeof v;
                for (size_t i = 0; i < vn; i++) v[i] = (uint8_t)rnd(&r);
                cJSON *out = NULL;
                uint32_t id = (uint32_t)(rnd(&r) % (m->ntypes + 2));
                if (md_decode(m, id, v, vn, &out, &e) == 0) check_value_roundtrip(m, id, v, vn, "mutated");
                cJSON_Delete(out);
                cJSON *s = sample(m, id, &r, 0);
                scale_writer w = SCALE_WRITER_INIT;
                if (s && md_encode(m, id, s, &w, &e) == 0) check_value_roundtrip(m, id, w.p, w.len, "mutated sample");
                scale_writer_free(&w);
                cJSON_Delete(s);
                char name[64];
                md_type_name(m, id, name, sizeof name);
                md_type_is_empty(m, id);
            }
            md_free(m);
        }
        free(b);
    }
    /* random values of every type of the real metadata */
    md_metadata *m = NULL;
    REQUIRE(md_parse(good[1], good_n[1], &m, &e) == 0);
    int decoded = 0;
    for (int it = 0; it < 4000; it++) {
        uint32_t id = (uint32_t)(it % NTYPES);
        uint8_t v[64];
        size_t vn = rnd(&r) % sizeof v;
        for (size_t i = 0; i < vn; i++) v[i] = (uint8_t)(it & 2 ? rnd(&r) % 4 : rnd(&r));
        scale_reader rd;
        scale_reader_init(&rd, v, vn);
        cJSON *out = NULL;
        if (md_decode_value(m, id, &rd, &out, &e) == 0) {
            decoded++;
            check_value_roundtrip(m, id, v, rd.pos, "random");
        }
        cJSON_Delete(out);
    }
    CHECK_MSG(decoded > 500, "only %d random values decoded", decoded);
    md_free(m);
    free(good[0]);
    free(good[1]);
    printf("    %d random metadata parsed, %d mutated parsed, %d values decoded\n", parsed, mutated_ok, decoded);
}

/* ------------------------------------------------ cross-check: polkadot.js */

#define NPM_PACKAGES "@polkadot/types@16.5.6 @polkadot/types-support@16.5.6 @polkadot/util@14.0.3 @polkadot/util-crypto@14.0.3"

static const char *repo_dir(void) {
    const char *r = getenv("TESSERA_REPO");
    return r && *r ? r : ".";
}

/* The static metadata files of @polkadot/types-support hold one hex string. */
static uint8_t *read_static_metadata(const char *npm, const char *name, size_t *n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/node_modules/@polkadot/types-support/metadata/%s-hex.js", npm, name);
    uint8_t *text;
    size_t len;
    ts_err e = {0};
    if (ts_read_file(path, 64u << 20, &text, &len, &e)) return NULL;
    char *s = memchr(text, '\'', len);
    char *end = s ? memchr(s + 1, '\'', len - (size_t)(s + 1 - (char *)text)) : NULL;
    uint8_t *out = NULL;
    if (s && end) {
        *end = 0;
        if (scale_unhex(s + 1, &out, n)) out = NULL;
    }
    free(text);
    return out;
}

static cJSON *strj(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

static cJSON *fields_json(const md_field *f, uint32_t n) {
    cJSON *a = cJSON_CreateArray();
    for (uint32_t i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateArray();
        cJSON_AddItemToArray(x, strj(f[i].name));
        cJSON_AddItemToArray(x, cJSON_CreateNumber(f[i].type));
        cJSON_AddItemToArray(a, x);
    }
    return a;
}

static cJSON *variants_json(const md_type *t) {
    cJSON *a = cJSON_CreateArray();
    for (uint32_t i = 0; t && t->kind == MD_VARIANT && i < t->u.variant.nvariants; i++) {
        const md_variant *v = &t->u.variant.variants[i];
        cJSON *x = cJSON_CreateArray();
        cJSON_AddItemToArray(x, cJSON_CreateString(v->name));
        cJSON_AddItemToArray(x, cJSON_CreateNumber(v->index));
        cJSON_AddItemToArray(x, fields_json(v->fields, v->nfields));
        cJSON_AddItemToArray(a, x);
    }
    return a;
}

static cJSON *bytes_json(const uint8_t *p, size_t n) {
    char *h = hex_of(p, n);
    cJSON *j = cJSON_CreateString(h);
    free(h);
    return j;
}

/* The same summary tests/npm/scale_oracle.mjs builds from polkadot's reading. */
static cJSON *c_summary(const md_metadata *m) {
    static const char *kinds[] = {"Composite", "Variant", "Sequence", "Array", "Tuple", "Primitive", "Compact", "BitSequence"};
    static const char *prims[] = {"Bool", "Char", "Str", "U8", "U16", "U32", "U64", "U128", "U256",
                                  "I8", "I16", "I32", "I64", "I128", "I256"};
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "version", m->version);
    cJSON *types = cJSON_AddArrayToObject(s, "types");
    for (uint32_t i = 0; i < m->ntypes; i++) {
        const md_type *t = &m->types[i];
        cJSON *x = cJSON_CreateArray();
        cJSON_AddItemToArray(x, cJSON_CreateNumber(t->id));
        char path[512] = "";
        for (uint32_t k = 0; k < t->npath; k++) {
            if (k) strncat(path, "::", sizeof path - strlen(path) - 1);
            strncat(path, t->path[k], sizeof path - strlen(path) - 1);
        }
        cJSON_AddItemToArray(x, cJSON_CreateString(path));
        cJSON *params = cJSON_CreateArray();
        for (uint32_t k = 0; k < t->nparams; k++) {
            cJSON *pp = cJSON_CreateArray();
            cJSON_AddItemToArray(pp, cJSON_CreateString(t->params[k].name));
            cJSON_AddItemToArray(pp, t->params[k].type == MD_NO_TYPE ? cJSON_CreateNull() : cJSON_CreateNumber(t->params[k].type));
            cJSON_AddItemToArray(params, pp);
        }
        cJSON_AddItemToArray(x, params);
        cJSON_AddItemToArray(x, cJSON_CreateString(kinds[t->kind]));
        cJSON *d = NULL;
        switch (t->kind) {
        case MD_COMPOSITE: d = fields_json(t->u.composite.fields, t->u.composite.nfields); break;
        case MD_VARIANT: d = variants_json(t); break;
        case MD_SEQUENCE:
        case MD_COMPACT: d = cJSON_CreateNumber(t->u.sequence.type); break;
        case MD_ARRAY:
            d = cJSON_CreateArray();
            cJSON_AddItemToArray(d, cJSON_CreateNumber(t->u.array.len));
            cJSON_AddItemToArray(d, cJSON_CreateNumber(t->u.array.type));
            break;
        case MD_TUPLE:
            d = cJSON_CreateArray();
            for (uint32_t k = 0; k < t->u.tuple.ntypes; k++) cJSON_AddItemToArray(d, cJSON_CreateNumber(t->u.tuple.types[k]));
            break;
        case MD_PRIMITIVE: d = cJSON_CreateString(prims[t->u.prim]); break;
        case MD_BITSEQ:
            d = cJSON_CreateArray();
            cJSON_AddItemToArray(d, cJSON_CreateNumber(t->u.bits.store));
            cJSON_AddItemToArray(d, cJSON_CreateNumber(t->u.bits.order));
            break;
        }
        cJSON_AddItemToArray(x, d);
        cJSON_AddItemToArray(types, x);
    }
    cJSON *pallets = cJSON_AddArrayToObject(s, "pallets");
    for (uint32_t i = 0; i < m->npallets; i++) {
        const md_pallet *p = &m->pallets[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", p->name);
        cJSON_AddNumberToObject(o, "index", p->index);
        if (p->call_type != MD_NO_TYPE) cJSON_AddItemToObject(o, "calls", variants_json(md_type_get(m, p->call_type)));
        else cJSON_AddNullToObject(o, "calls");
        if (p->storage_prefix) {
            cJSON *st = cJSON_AddObjectToObject(o, "storage");
            cJSON_AddStringToObject(st, "prefix", p->storage_prefix);
            cJSON *items = cJSON_AddArrayToObject(st, "items");
            for (uint32_t k = 0; k < p->nstorage; k++) {
                const md_storage_entry *se = &p->storage[k];
                cJSON *it = cJSON_CreateArray();
                cJSON_AddItemToArray(it, cJSON_CreateString(se->name));
                cJSON_AddItemToArray(it, cJSON_CreateString(se->modifier == MD_STORAGE_OPTIONAL ? "Optional" : "Default"));
                cJSON *hs = cJSON_CreateArray();
                for (uint32_t h = 0; h < se->nhashers; h++) cJSON_AddItemToArray(hs, cJSON_CreateString(scale_hasher_name(se->hashers[h])));
                cJSON_AddItemToArray(it, hs);
                cJSON_AddItemToArray(it, se->is_map ? cJSON_CreateNumber(se->key_type) : cJSON_CreateNull());
                cJSON_AddItemToArray(it, cJSON_CreateNumber(se->value_type));
                cJSON_AddItemToArray(it, bytes_json(se->def, se->ndef));
                cJSON_AddItemToArray(items, it);
            }
        } else {
            cJSON_AddNullToObject(o, "storage");
        }
        if (p->event_type != MD_NO_TYPE) cJSON_AddNumberToObject(o, "events", p->event_type);
        else cJSON_AddNullToObject(o, "events");
        if (p->error_type != MD_NO_TYPE) cJSON_AddNumberToObject(o, "errors", p->error_type);
        else cJSON_AddNullToObject(o, "errors");
        cJSON *cs = cJSON_AddArrayToObject(o, "constants");
        for (uint32_t k = 0; k < p->nconstants; k++) {
            cJSON *c = cJSON_CreateArray();
            cJSON_AddItemToArray(c, cJSON_CreateString(p->constants[k].name));
            cJSON_AddItemToArray(c, cJSON_CreateNumber(p->constants[k].type));
            cJSON_AddItemToArray(c, bytes_json(p->constants[k].value, p->constants[k].nvalue));
            cJSON_AddItemToArray(cs, c);
        }
        cJSON_AddItemToArray(pallets, o);
    }
    cJSON *x = cJSON_AddObjectToObject(s, "extrinsic");
    cJSON_AddNumberToObject(x, "version", m->extrinsic.version);
    cJSON *exts = cJSON_AddArrayToObject(x, "signedExtensions");
    for (uint32_t i = 0; i < m->extrinsic.nexts; i++) {
        cJSON *a = cJSON_CreateArray();
        cJSON_AddItemToArray(a, cJSON_CreateString(m->extrinsic.exts[i].identifier));
        cJSON_AddItemToArray(a, cJSON_CreateNumber(m->extrinsic.exts[i].type));
        cJSON_AddItemToArray(a, cJSON_CreateNumber(m->extrinsic.exts[i].additional));
        cJSON_AddItemToArray(exts, a);
    }
    if (m->version == 14) {
        cJSON_AddNumberToObject(x, "type", m->extrinsic.type);
    } else {
        cJSON *ts = cJSON_AddArrayToObject(x, "types");
        uint32_t v[4] = {m->extrinsic.address_type, m->extrinsic.call_type, m->extrinsic.signature_type, m->extrinsic.extra_type};
        for (int i = 0; i < 4; i++) cJSON_AddItemToArray(ts, cJSON_CreateNumber(v[i]));
        cJSON *apis = cJSON_AddArrayToObject(s, "apis");
        for (uint32_t i = 0; i < m->napis; i++) {
            cJSON *a = cJSON_CreateArray();
            cJSON_AddItemToArray(a, cJSON_CreateString(m->apis[i].name));
            cJSON *ms = cJSON_CreateArray();
            for (uint32_t k = 0; k < m->apis[i].nmethods; k++) {
                const md_api_method *me = &m->apis[i].methods[k];
                cJSON *mj = cJSON_CreateArray();
                cJSON_AddItemToArray(mj, cJSON_CreateString(me->name));
                cJSON *ins = cJSON_CreateArray();
                for (uint32_t j = 0; j < me->ninputs; j++) {
                    cJSON *in = cJSON_CreateArray();
                    cJSON_AddItemToArray(in, cJSON_CreateString(me->inputs[j].name));
                    cJSON_AddItemToArray(in, cJSON_CreateNumber(me->inputs[j].type));
                    cJSON_AddItemToArray(ins, in);
                }
                cJSON_AddItemToArray(mj, ins);
                cJSON_AddItemToArray(mj, cJSON_CreateNumber(me->output));
                cJSON_AddItemToArray(ms, mj);
            }
            cJSON_AddItemToArray(a, ms);
            cJSON_AddItemToArray(apis, a);
        }
        cJSON *oe = cJSON_AddArrayToObject(s, "outerEnums");
        cJSON_AddItemToArray(oe, cJSON_CreateNumber(m->call_enum));
        cJSON_AddItemToArray(oe, cJSON_CreateNumber(m->event_enum));
        cJSON_AddItemToArray(oe, cJSON_CreateNumber(m->error_enum));
    }
    cJSON_AddNumberToObject(s, "runtimeType", m->runtime_type);
    return s;
}

/* The path of the first difference between two JSON values, or "" */
static void json_diff(const cJSON *a, const cJSON *b, char *path, size_t cap) {
    if (cJSON_Compare(a, b, true)) return;
    size_t len = strlen(path);
    if (cJSON_IsArray(a) && cJSON_IsArray(b) && cJSON_GetArraySize(a) == cJSON_GetArraySize(b)) {
        int i = 0;
        for (const cJSON *x = a->child, *y = b->child; x && y; x = x->next, y = y->next, i++) {
            if (!cJSON_Compare(x, y, true)) {
                snprintf(path + len, cap - len, "[%d]", i);
                json_diff(x, y, path, cap);
                return;
            }
        }
    }
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        for (const cJSON *x = a->child; x; x = x->next) {
            const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
            if (!y || !cJSON_Compare(x, y, true)) {
                snprintf(path + len, cap - len, ".%s", x->string);
                if (y) json_diff(x, y, path, cap);
                return;
            }
        }
    }
    char *sa = cJSON_PrintUnformatted(a), *sb = cJSON_PrintUnformatted(b);
    snprintf(path + strlen(path), cap - strlen(path), ": C %.150s / polkadot %.150s", sa ? sa : "?", sb ? sb : "?");
    free(sa);
    free(sb);
}

static const char *ORACLE_METADATA[] = {"v14/substrate", "v14/polkadot", "v15/substrate", "v15/polkadot"};
#define N_ORACLE_METADATA 4

/* Plain SCALE values, encoded here with the primitives. */
typedef struct {
    const char *type;  /* polkadot type name */
    const char *value; /* JSON */
} plain_case;

static const plain_case PLAIN[] = {
    {"Compact<u8>", "0"},          {"Compact<u8>", "63"},         {"Compact<u16>", "64"},
    {"Compact<u16>", "16383"},     {"Compact<u32>", "16384"},     {"Compact<u32>", "1073741823"},
    {"Compact<u32>", "1073741824"}, {"Compact<u32>", "4294967295"},
    {"Compact<u64>", "\"18446744073709551615\""}, {"Compact<u64>", "\"4294967296\""},
    {"Compact<u128>", "\"340282366920938463463374607431768211455\""},
    {"Compact<u128>", "\"18446744073709551616\""},
    {"Vec<u16>", "[1, 2, 65535]"}, {"Vec<u32>", "[]"}, {"Option<u32>", "null"},
    {"Option<u32>", "7"},          {"Text", "\"hello, world\""}, {"Bytes", "\"0x00ff\""}, {"Bytes", "\"0x\""},
    {"(u16, u64)", "[3, 99]"},     {"bool", "true"},             {"[u8; 4]", "\"0x01020304\""},
};

static void encode_plain(const plain_case *c, scale_writer *w) {
    cJSON *v = cJSON_Parse(c->value);
    uint8_t le[16];
    if (!strncmp(c->type, "Compact<", 8)) {
        if (cJSON_IsString(v)) {
            scale_dec_to_le(v->valuestring, le, 16, false);
            scale_put_compact_le(w, le, 16);
        } else {
            scale_put_compact(w, (uint64_t)v->valuedouble);
        }
    } else if (!strcmp(c->type, "Vec<u16>") || !strcmp(c->type, "Vec<u32>")) {
        scale_put_compact(w, (uint64_t)cJSON_GetArraySize(v));
        for (cJSON *x = v->child; x; x = x->next) {
            if (!strcmp(c->type, "Vec<u16>")) scale_put_u16(w, (uint16_t)x->valuedouble);
            else scale_put_u32(w, (uint32_t)x->valuedouble);
        }
    } else if (!strcmp(c->type, "Option<u32>")) {
        scale_put_u8(w, cJSON_IsNull(v) ? 0 : 1);
        if (!cJSON_IsNull(v)) scale_put_u32(w, (uint32_t)v->valuedouble);
    } else if (!strcmp(c->type, "Text")) {
        scale_put_str(w, v->valuestring);
    } else if (!strcmp(c->type, "Bytes") || !strcmp(c->type, "[u8; 4]")) {
        uint8_t *b;
        size_t n;
        scale_unhex(v->valuestring, &b, &n);
        if (c->type[0] == 'B') scale_put_vec(w, b, n);
        else scale_put(w, b, n);
        free(b);
    } else if (!strcmp(c->type, "(u16, u64)")) {
        scale_put_u16(w, (uint16_t)cJSON_GetArrayItem(v, 0)->valuedouble);
        scale_put_u64(w, (uint64_t)cJSON_GetArrayItem(v, 1)->valuedouble);
    } else if (!strcmp(c->type, "bool")) {
        scale_put_bool(w, cJSON_IsTrue(v));
    }
    cJSON_Delete(v);
}

/* Types polkadot.js maps onto its own classes with a different JSON input
 * (not SCALE differences): their sample values are not compared. */
static bool polkadot_special(const md_metadata *m, uint32_t id, int depth) {
    static const char *special[] = {"BTreeMap", "BTreeSet", "Range", "RangeInclusive", "Era", "Data",
                                    "WrapperOpaque", "WrapperKeepOpaque", "Cow", "Perquintill",
                                    "Call", "RuntimeCall", "Event", "RuntimeEvent", "OpaqueCall",
                                    "Weight", "BitVec", "BoundedBTreeMap", "BoundedBTreeSet", "Vote", "U256",
                                    "U512"};
    const md_type *t = md_type_get(m, id);
    if (!t || depth > 10) return true;
    /* polkadot reads any non-null value as Some, so Option<()> has no None */
    const md_variant *some = is_option_type(t) ? md_variant_by_name(t, "Some") : NULL;
    if (some && some->nfields == 1 && renders_null_t(m, some->fields[0].type, 0)) return true;
    if (t->npath) {
        const char *last = t->path[t->npath - 1];
        for (size_t i = 0; i < sizeof special / sizeof *special; i++)
            if (!strcmp(last, special[i])) return true;
    }
    switch (t->kind) {
    case MD_COMPOSITE:
        for (uint32_t k = 0; k < t->u.composite.nfields; k++)
            if (polkadot_special(m, t->u.composite.fields[k].type, depth + 1)) return true;
        return false;
    case MD_VARIANT:
        for (uint32_t k = 0; k < t->u.variant.nvariants; k++)
            for (uint32_t j = 0; j < t->u.variant.variants[k].nfields; j++)
                if (polkadot_special(m, t->u.variant.variants[k].fields[j].type, depth + 1)) return true;
        return false;
    case MD_SEQUENCE:
    case MD_COMPACT: return polkadot_special(m, t->u.sequence.type, depth + 1);
    case MD_ARRAY: return polkadot_special(m, t->u.array.type, depth + 1);
    case MD_TUPLE:
        for (uint32_t k = 0; k < t->u.tuple.ntypes; k++)
            if (polkadot_special(m, t->u.tuple.types[k], depth + 1)) return true;
        return false;
    case MD_BITSEQ: return true;
    default: return false;
    }
}

typedef struct {
    int meta;
    uint32_t type;
    char *hex; /* C's encoding */
} lookup_case;

typedef struct {
    int meta;
    char *call_hex, *payload_hex, *xt_hex, *hash_hex;
    bool sig_was_hashed_ok;
} xt_case;

static char *writer_hex(const scale_writer *w) { return hex_of(w->p, w->len); }

TEST(npm_polkadot_crosscheck) {
    char *out = NULL;
    char cmd[2048];
    const char *tmp = th_tmpdir();
    snprintf(cmd, sizeof cmd, "bash '%s/tests/npm_oracle.sh' scale " NPM_PACKAGES " 2>'%s/npm.err'", repo_dir(), tmp);
    int rc = th_run(cmd, &out);
    if (rc != 0 || !out || !*out) {
        char errp[600];
        snprintf(errp, sizeof errp, "%s/npm.err", tmp);
        uint8_t *why = NULL;
        size_t wl = 0;
        ts_read_file(errp, 4096, &why, &wl, NULL);
        free(out);
        char reason[300] = "npm unavailable";
        if (why && wl) snprintf(reason, sizeof reason, "%.*s", (int)(wl > 250 ? 250 : wl), (char *)why);
        for (char *c = reason; *c; c++)
            if (*c == '\n') *c = ' ';
        free(why);
        SKIP("@polkadot/types oracle: %s", reason);
    }
    char *nl = strchr(out, '\n');
    if (nl) *nl = 0;
    char npm[1024];
    snprintf(npm, sizeof npm, "%s", out);
    free(out);

    ts_err e = {0};
    md_metadata *mds[N_ORACLE_METADATA] = {0};
    for (int i = 0; i < N_ORACLE_METADATA; i++) {
        size_t n;
        uint8_t *b = read_static_metadata(npm, ORACLE_METADATA[i], &n);
        REQUIRE(b);
        if (md_parse(b, n, &mds[i], &e)) th_fail(__FILE__, __LINE__, "%s: %s", ORACLE_METADATA[i], e.msg);
        free(b);
        REQUIRE(mds[i]);
    }

    /* the request */
    cJSON *req = cJSON_CreateObject();
    cJSON *mlist = cJSON_AddArrayToObject(req, "metadata");
    for (int i = 0; i < N_ORACLE_METADATA; i++) cJSON_AddItemToArray(mlist, cJSON_CreateString(ORACLE_METADATA[i]));
    cJSON *scale_cases = cJSON_AddArrayToObject(req, "scale");
    size_t nplain = sizeof PLAIN / sizeof *PLAIN;
    for (size_t i = 0; i < nplain; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "type", PLAIN[i].type);
        cJSON_AddItemToObject(c, "value", cJSON_Parse(PLAIN[i].value));
        cJSON_AddItemToArray(scale_cases, c);
    }
    /* a sample value of every type polkadot reads as plain SCALE */
    cJSON *lookups = cJSON_AddArrayToObject(req, "lookup");
    size_t nlookup = 0, cap_lookup = 8192;
    lookup_case *lc = calloc(cap_lookup, sizeof *lc);
    rng_t r = {12345};
    for (int i = 0; i < N_ORACLE_METADATA; i++) {
        const md_metadata *m = mds[i];
        for (uint32_t id = 0; id < m->ntypes && nlookup < cap_lookup; id++) {
            if (polkadot_special(m, id, 0)) continue;
            cJSON *v = sample(m, id, &r, 0);
            if (!v) continue;
            scale_writer w = SCALE_WRITER_INIT;
            if (md_encode(m, id, v, &w, &e)) {
                char *s = cJSON_PrintUnformatted(v);
                th_fail(__FILE__, __LINE__, "%s type %u: sample %.200s does not encode: %s", ORACLE_METADATA[i], id, s, e.msg);
                free(s);
                cJSON_Delete(v);
                continue;
            }
            check_value_roundtrip(m, id, w.p, w.len, ORACLE_METADATA[i]);
            lc[nlookup] = (lookup_case){i, id, writer_hex(&w)};
            nlookup++;
            scale_writer_free(&w);
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "meta", ORACLE_METADATA[i]);
            cJSON_AddNumberToObject(c, "type", id);
            cJSON_AddItemToObject(c, "value", v);
            cJSON_AddItemToArray(lookups, c);
        }
    }
    /* calls and signed extrinsics */
    cJSON *calls = cJSON_AddArrayToObject(req, "calls");
    cJSON *xts = cJSON_AddArrayToObject(req, "extrinsics");
    const char *dest = "{\"Id\": \"0x" ALICE "\"}";
    char big_remark[2 + 600 + 1] = "0x";
    for (int i = 0; i < 300; i++) snprintf(big_remark + 2 + 2 * i, 3, "%02x", (i * 7) & 0xff);
    struct {
        const char *pallet, *call, *args;
    } call_list[] = {
        {"System", "remark", "{\"remark\": \"0x74657373657261\"}"},
        {"Balances", "transfer_keep_alive", NULL},
        {"Balances", "transfer_allow_death", NULL},
        {"System", "remark", NULL},
    };
    char *call_hex[N_ORACLE_METADATA][4] = {{0}};
    for (int i = 0; i < N_ORACLE_METADATA; i++) {
        for (int k = 0; k < 4; k++) {
            char args[1024];
            if (k == 1 || k == 2) snprintf(args, sizeof args, "{\"dest\": %s, \"value\": \"1234567890123456789\"}", dest);
            else if (k == 3) snprintf(args, sizeof args, "{\"remark\": \"%s\"}", big_remark);
            else snprintf(args, sizeof args, "%s", call_list[k].args);
            cJSON *a = cJSON_Parse(args);
            scale_writer w = SCALE_WRITER_INIT;
            int crc = xt_call_encode(mds[i], call_list[k].pallet, call_list[k].call, a, &w, &e);
            if (crc == TS_ENOTFOUND) { /* transfer_allow_death is newer than some runtimes */
                cJSON_Delete(a);
                continue;
            }
            if (crc) th_fail(__FILE__, __LINE__, "%s %s.%s: %s", ORACLE_METADATA[i], call_list[k].pallet, call_list[k].call, e.msg);
            call_hex[i][k] = writer_hex(&w);
            scale_writer_free(&w);
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "meta", ORACLE_METADATA[i]);
            cJSON_AddStringToObject(c, "pallet", call_list[k].pallet);
            cJSON_AddStringToObject(c, "call", call_list[k].call);
            cJSON_AddItemToObject(c, "args", a);
            cJSON_AddItemToArray(calls, c);
        }
    }
    /* signed extrinsics: several eras, nonces and tips, short and long payloads */
    struct {
        int call;
        uint64_t nonce, tip, period, current;
    } xl[] = {
        {1, 5, 7, 64, 12345},
        {0, 70000, 1000000000000ull, 1000000, 1000001},
        {3, 0, 0, 0, 0}, /* immortal, a payload over 256 bytes */
        {1, 4294967295ull, 0, 4096, 99},
    };
    size_t nxl = sizeof xl / sizeof *xl;
    xt_case *xc = calloc(N_ORACLE_METADATA * nxl, sizeof *xc);
    size_t nxc = 0;
    for (int i = 0; i < N_ORACLE_METADATA; i++) {
        for (size_t k = 0; k < nxl; k++) {
            char *ch = call_hex[i][xl[k].call];
            if (!ch) continue;
            uint8_t *cb;
            size_t cn;
            scale_unhex(ch, &cb, &cn);
            xt_params p = test_params();
            p.nonce = xl[k].nonce;
            p.tip = xl[k].tip;
            p.era = xl[k].period ? xt_era_mortal(xl[k].period, xl[k].current) : xt_era_immortal();
            scale_writer pay = SCALE_WRITER_INIT;
            sign_rec rec = {0};
            xt_signed x = {0};
            if (xt_signing_payload(mds[i], cb, cn, &p, &pay, &e) || xt_sign(mds[i], cb, cn, &p, fake_sign, &rec, &x, &e)) {
                th_fail(__FILE__, __LINE__, "%s extrinsic %zu: %s", ORACLE_METADATA[i], k, e.msg);
                free(cb);
                scale_writer_free(&pay);
                continue;
            }
            uint8_t h[32];
            scale_blake2_256(pay.p, pay.len, h);
            bool hashed_ok = pay.len > 256 ? rec.len == 32 && !memcmp(rec.got, h, 32)
                                           : rec.len == pay.len && !memcmp(rec.got, pay.p, pay.len);
            xc[nxc] = (xt_case){i, ch, writer_hex(&pay), hex_of(x.bytes, x.len), hex_of(x.hash, 32), hashed_ok};
            nxc++;
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "meta", ORACLE_METADATA[i]);
            cJSON *cc = cJSON_AddObjectToObject(c, "call");
            cJSON_AddStringToObject(cc, "pallet", call_list[xl[k].call].pallet);
            cJSON_AddStringToObject(cc, "call", call_list[xl[k].call].call);
            char args[1024];
            if (xl[k].call == 1 || xl[k].call == 2) snprintf(args, sizeof args, "{\"dest\": %s, \"value\": \"1234567890123456789\"}", dest);
            else if (xl[k].call == 3) snprintf(args, sizeof args, "{\"remark\": \"%s\"}", big_remark);
            else snprintf(args, sizeof args, "%s", call_list[0].args);
            cJSON_AddItemToObject(cc, "args", cJSON_Parse(args));
            cJSON_AddStringToObject(c, "signer", "0x" K2);
            cJSON_AddStringToObject(c, "signature", "0x" S3);
            cJSON_AddNumberToObject(c, "nonce", (double)xl[k].nonce);
            char tip[32];
            snprintf(tip, sizeof tip, "%llu", (unsigned long long)xl[k].tip);
            cJSON_AddStringToObject(c, "tip", tip);
            cJSON_AddNumberToObject(c, "specVersion", p.spec_version);
            cJSON_AddNumberToObject(c, "txVersion", p.tx_version);
            cJSON_AddStringToObject(c, "genesisHash", "0x" H4);
            cJSON_AddStringToObject(c, "blockHash", "0x" H5);
            if (xl[k].period) {
                cJSON *er = cJSON_AddObjectToObject(c, "era");
                cJSON_AddNumberToObject(er, "current", (double)xl[k].current);
                cJSON_AddNumberToObject(er, "period", (double)xl[k].period);
            } else {
                cJSON_AddNullToObject(c, "era");
            }
            cJSON_AddItemToArray(xts, c);
            free(cb);
            xt_signed_free(&x);
            scale_writer_free(&pay);
        }
    }

    /* every pallet error by index, and every constant and storage default
     * must decode with its type and encode back to the same bytes */
    cJSON *errs = cJSON_AddArrayToObject(req, "errors");
    int nerr = 0;
    for (int i = 0; i < N_ORACLE_METADATA; i++) {
        const md_metadata *m = mds[i];
        for (uint32_t k = 0; k < m->npallets; k++) {
            const md_pallet *p = &m->pallets[k];
            const md_type *et = md_type_get(m, p->error_type);
            for (uint32_t j = 0; et && et->kind == MD_VARIANT && j < et->u.variant.nvariants; j++) {
                cJSON *c = cJSON_CreateObject();
                cJSON_AddStringToObject(c, "meta", ORACLE_METADATA[i]);
                cJSON_AddNumberToObject(c, "index", p->index);
                cJSON_AddNumberToObject(c, "error", et->u.variant.variants[j].index);
                cJSON_AddItemToArray(errs, c);
                nerr++;
            }
            for (uint32_t j = 0; j < p->nconstants; j++)
                check_value_roundtrip(m, p->constants[j].type, p->constants[j].value, p->constants[j].nvalue, p->constants[j].name);
            for (uint32_t j = 0; j < p->nstorage; j++)
                if (p->storage[j].modifier == MD_STORAGE_DEFAULT)
                    check_value_roundtrip(m, p->storage[j].value_type, p->storage[j].def, p->storage[j].ndef, p->storage[j].name);
        }
    }

    char reqp[600], resp[600];
    snprintf(reqp, sizeof reqp, "%s/request.json", tmp);
    snprintf(resp, sizeof resp, "%s/response.json", tmp);
    char *reqs = cJSON_PrintUnformatted(req);
    REQUIRE(ts_write_atomic(reqp, reqs, strlen(reqs), &e) == 0);
    free(reqs);
    cJSON *req_copy = req;
    snprintf(cmd, sizeof cmd, "node '%s/tests/npm/scale_oracle.mjs' '%s' '%s' > '%s' 2>&1", repo_dir(), npm, reqp, resp);
    rc = th_run(cmd, NULL);
    uint8_t *rtext = NULL;
    size_t rlen = 0;
    ts_read_file(resp, 256u << 20, &rtext, &rlen, NULL);
    cJSON *res = rc == 0 && rtext ? cJSON_ParseWithLength((const char *)rtext, rlen) : NULL;
    if (!res) th_fail(__FILE__, __LINE__, "the oracle failed (exit %d): %.600s", rc, rtext ? (char *)rtext : "");
    free(rtext);
    REQUIRE(res);

    /* (1) the metadata as polkadot reads it */
    cJSON *pmeta = cJSON_GetObjectItem(res, "metadata");
    for (int i = 0; i < N_ORACLE_METADATA; i++) {
        cJSON *mine = c_summary(mds[i]);
        cJSON *theirs = cJSON_GetObjectItem(pmeta, ORACLE_METADATA[i]);
        char path[1024] = "";
        json_diff(mine, theirs, path, sizeof path);
        CHECK_MSG(!path[0], "%s summary differs at %s", ORACLE_METADATA[i], path);
        cJSON_Delete(mine);
    }
    /* (2) plain SCALE */
    cJSON *ps = cJSON_GetObjectItem(res, "scale");
    for (size_t i = 0; i < nplain; i++) {
        scale_writer w = SCALE_WRITER_INIT;
        encode_plain(&PLAIN[i], &w);
        char *h = writer_hex(&w);
        const cJSON *t = cJSON_GetArrayItem(ps, (int)i);
        CHECK_MSG(cJSON_IsString(t) && !strcmp(t->valuestring, h), "%s %s: C %s, polkadot %s", PLAIN[i].type,
                  PLAIN[i].value, h, cJSON_IsString(t) ? t->valuestring : "(error)");
        free(h);
        scale_writer_free(&w);
    }
    /* sample values of every metadata type */
    cJSON *pl = cJSON_GetObjectItem(res, "lookup");
    int compared = 0, refused = 0, differ = 0;
    for (size_t i = 0; i < nlookup; i++) {
        const cJSON *t = cJSON_GetArrayItem(pl, (int)i);
        if (!cJSON_IsString(t)) {
            refused++;
            if (refused <= 3) {
                char *s = cJSON_PrintUnformatted(t);
                char name[128];
                printf("    polkadot refused %s type %u (%s): %.200s\n", ORACLE_METADATA[lc[i].meta], lc[i].type,
                       md_type_name(mds[lc[i].meta], lc[i].type, name, sizeof name), s);
                free(s);
            }
            continue;
        }
        compared++;
        if (strcmp(t->valuestring, lc[i].hex)) {
            char name[128];
            if (++differ <= 10)
                th_fail(__FILE__, __LINE__, "%s type %u (%s): C %.120s, polkadot %.120s", ORACLE_METADATA[lc[i].meta],
                        lc[i].type, md_type_name(mds[lc[i].meta], lc[i].type, name, sizeof name), lc[i].hex, t->valuestring);
        }
    }
    CHECK_MSG(compared > 1000, "only %d values compared", compared);
    CHECK_MSG(refused * 20 < compared, "polkadot refused %d of %d values", refused, compared + refused);
    printf("    %d metadata values compared with polkadot, %d differ, %d polkadot refused\n", compared, differ, refused);
    /* (3) calls */
    cJSON *pc = cJSON_GetObjectItem(res, "calls");
    int ci = 0;
    for (int i = 0; i < N_ORACLE_METADATA; i++) {
        for (int k = 0; k < 4; k++) {
            if (!call_hex[i][k]) continue;
            const cJSON *t = cJSON_GetArrayItem(pc, ci++);
            CHECK_MSG(cJSON_IsString(t) && !strcmp(t->valuestring, call_hex[i][k]), "%s %s.%s: C %.80s, polkadot %.80s",
                      ORACLE_METADATA[i], call_list[k].pallet, call_list[k].call, call_hex[i][k],
                      cJSON_IsString(t) ? t->valuestring : cJSON_PrintUnformatted(t));
        }
    }
    /* (4) signing payloads and signed extrinsics */
    cJSON *px = cJSON_GetObjectItem(res, "extrinsics");
    for (size_t i = 0; i < nxc; i++) {
        const cJSON *t = cJSON_GetArrayItem(px, (int)i);
        const cJSON *pp = cJSON_GetObjectItem(t, "payload"), *pxx = cJSON_GetObjectItem(t, "extrinsic"),
                    *ph = cJSON_GetObjectItem(t, "hash");
        if (!cJSON_IsString(pp)) {
            char *s = cJSON_PrintUnformatted(t);
            th_fail(__FILE__, __LINE__, "%s extrinsic %zu: polkadot: %.300s", ORACLE_METADATA[xc[i].meta], i, s);
            free(s);
            continue;
        }
        CHECK_MSG(!strcmp(pp->valuestring, xc[i].payload_hex), "%s extrinsic %zu payload: C %.300s, polkadot %.300s",
                  ORACLE_METADATA[xc[i].meta], i, xc[i].payload_hex, pp->valuestring);
        CHECK_MSG(cJSON_IsString(pxx) && !strcmp(pxx->valuestring, xc[i].xt_hex), "%s extrinsic %zu: C %.300s, polkadot %.300s",
                  ORACLE_METADATA[xc[i].meta], i, xc[i].xt_hex, cJSON_IsString(pxx) ? pxx->valuestring : "?");
        CHECK_MSG(cJSON_IsString(ph) && !strcmp(ph->valuestring, xc[i].hash_hex), "%s extrinsic %zu hash",
                  ORACLE_METADATA[xc[i].meta], i);
        CHECK_MSG(xc[i].sig_was_hashed_ok, "%s extrinsic %zu: the signer got the wrong message", ORACLE_METADATA[xc[i].meta], i);
        free(xc[i].payload_hex);
        free(xc[i].xt_hex);
        free(xc[i].hash_hex);
    }
    CHECK_EQ_INT(cJSON_GetArraySize(px), (int)nxc);
    /* (5) module errors by name, from DispatchError bytes */
    cJSON *pe = cJSON_GetObjectItem(res, "errors");
    CHECK_EQ_INT(cJSON_GetArraySize(pe), nerr);
    int ei = 0;
    for (const cJSON *c = cJSON_GetObjectItem(req_copy, "errors")->child; c; c = c->next, ei++) {
        int mi = 0;
        while (mi < N_ORACLE_METADATA && strcmp(ORACLE_METADATA[mi], cJSON_GetObjectItem(c, "meta")->valuestring)) mi++;
        uint8_t bytes[6] = {0x03, (uint8_t)cJSON_GetObjectItem(c, "index")->valuedouble,
                            (uint8_t)cJSON_GetObjectItem(c, "error")->valuedouble, 0, 0, 0};
        char name[200], want[200];
        const cJSON *t = cJSON_GetArrayItem(pe, ei);
        if (xt_dispatch_error_bytes(mds[mi], bytes, sizeof bytes, name, sizeof name, &e)) {
            /* older runtimes' ModuleError has error: u8 */
            if (xt_dispatch_error_bytes(mds[mi], bytes, 3, name, sizeof name, &e))
                th_fail(__FILE__, __LINE__, "%s error %u/%u: %s", ORACLE_METADATA[mi], bytes[1], bytes[2], e.msg);
        }
        snprintf(want, sizeof want, "%s.%s", cJSON_IsArray(t) ? cJSON_GetArrayItem(t, 0)->valuestring : "?",
                 cJSON_IsArray(t) ? cJSON_GetArrayItem(t, 1)->valuestring : "?");
        CHECK_MSG(!strcasecmp(name, want), "%s error %u/%u: C %s, polkadot %s", ORACLE_METADATA[mi], bytes[1], bytes[2], name, want);
    }
    printf("    %d module errors named as polkadot names them\n", ei);
    printf("    %zu signed extrinsics and %d calls compared\n", nxc, ci);
    for (int i = 0; i < N_ORACLE_METADATA; i++) {
        for (int k = 0; k < 4; k++) free(call_hex[i][k]);
        md_free(mds[i]);
    }
    for (size_t i = 0; i < nlookup; i++) free(lc[i].hex);
    free(lc);
    free(xc);
    cJSON_Delete(res);
    cJSON_Delete(req_copy);
}
