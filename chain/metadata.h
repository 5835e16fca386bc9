/*
 * metadata.h - a Substrate runtime's metadata (versions 14 and 15), read from
 * the bytes of `state_getMetadata`, and a codec for any value of a type it
 * describes.
 *
 * The metadata is the runtime's own description of itself: a registry of
 * every type it uses (numbered by type id), and for each pallet its index,
 * calls, storage items, constants and errors; the extrinsic format and its
 * signed extensions; in v15 the runtime APIs.  A subtensor upgrade moves call
 * indices, adds fields and changes types, so nothing about the chain is
 * hard-coded here: lookups are by name, and values are encoded and decoded by
 * walking the type registry.
 *
 * The bytes come from the network: every count and length is checked against
 * the bytes that remain before anything is allocated, every type id the
 * metadata mentions is checked to exist, and recursion is bounded
 * (MD_MAX_DEPTH), so hostile metadata or values fail cleanly.
 *
 * Values as JSON (md_decode / md_encode), chosen to read naturally and to
 * round-trip:
 *   bool                   true / false
 *   u8..u32, i8..i32       numbers
 *   u64, u128, u256, i64.. numbers when |v| <= 2^53 - 1 (exact in a double),
 *                          else decimal strings ("18446744073709551615");
 *                          md_encode takes either form at any width, and
 *                          refuses numbers that are not integers or whose
 *                          magnitude exceeds 2^53 - 1 (use a string)
 *   char, str              strings; a str holding NUL bytes (which a C string
 *                          cannot) is {"hex": "0x..."}, taken back by md_encode
 *   Compact<T>             like T
 *   Vec<u8>, [u8; N]       "0x..." hex (md_encode also takes an array of
 *                          numbers); AccountId32 is such an array, so hex too
 *                          (md_encode also takes an SS58 address, prefix 42)
 *   other Vec, arrays      JSON arrays
 *   tuples                 arrays; the empty tuple () is null
 *   structs                objects keyed by field name; a struct of one
 *                          unnamed field is that field (newtypes such as
 *                          AccountId32 or Perbill vanish); other tuple
 *                          structs are arrays; a struct without fields is null
 *   Option<T>              null or the value (when T could itself be null,
 *                          e.g. Option<()>, the generic enum form is used)
 *   other enums            {"Variant": value} where value follows the struct
 *                          rules for the variant's fields (null without
 *                          fields); md_encode also takes "Variant" for a
 *                          variant without fields
 *   bit sequences          "0x..." hex of the store bytes when the bit count
 *                          fills them, else {"bits": N, "data": "0x..."}
 *
 * Conventions: 0 or a TS_E* code with a message in the ts_err.  The
 * md_metadata structure is public and read-only; its strings and arrays live
 * as long as it does (it keeps no pointer into the bytes it was parsed
 * from), and once parsed it may be shared between threads.
 *
 * Typical use (subtensor):
 *   md_parse(bytes, len, &md, &e);                     state_getMetadata result
 *   md_storage_key(md, "SubtensorModule", "Uids",
 *                  [netuid, "0x<hotkey>"], &key, &e);  a full key
 *   md_storage_key(md, "SubtensorModule", "Keys", [netuid], &key, &e);
 *                                                      prefix of one subnet's keys
 *   md_storage_key_decode(md, "SubtensorModule", "Keys", k, n, &keys, &e);
 *                                                      [netuid, uid] back from a key
 *   md_storage_decode(md, entry, value, n, present, &json, &e);
 *   md_api_find(md, "NeuronInfoRuntimeApi", "get_neurons_lite", &meth, &e);
 *   md_api_args(md, meth, [netuid], &args, &e);        state_call data
 *   md_decode(md, meth->output, result, n, &json, &e); state_call result
 */
#ifndef TESSERA_CHAIN_METADATA_H
#define TESSERA_CHAIN_METADATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain/scale.h"
#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

#define MD_NO_TYPE UINT32_MAX  /* "no such type" in any type-id member */
#define MD_MAX_DEPTH 64        /* nesting limit for every walk over types */

/* --------------------------------------------------------------- types */

typedef enum {
    MD_COMPOSITE, MD_VARIANT, MD_SEQUENCE, MD_ARRAY, MD_TUPLE, MD_PRIMITIVE, MD_COMPACT,
    MD_BITSEQ
} md_kind;

typedef enum {
    MD_BOOL, MD_CHAR, MD_STR, MD_U8, MD_U16, MD_U32, MD_U64, MD_U128, MD_U256,
    MD_I8, MD_I16, MD_I32, MD_I64, MD_I128, MD_I256
} md_prim;

typedef struct md_field {
    const char *name;       /* NULL for an unnamed (tuple-struct) field */
    uint32_t type;
    const char *type_name;  /* as written in Rust ("T::AccountId"), or NULL */
} md_field;

typedef struct md_variant {
    const char *name;
    uint8_t index;          /* the byte that selects it */
    uint32_t nfields;
    md_field *fields;
} md_variant;

typedef struct md_param {
    const char *name;
    uint32_t type;          /* MD_NO_TYPE when not given */
} md_param;

typedef struct md_type {
    uint32_t id;
    uint32_t npath;
    const char **path;      /* "sp_core", "crypto", "AccountId32" */
    uint32_t nparams;
    md_param *params;
    md_kind kind;
    union {
        struct { uint32_t nfields; md_field *fields; } composite;
        struct { uint32_t nvariants; md_variant *variants; } variant;
        struct { uint32_t type; } sequence;  /* also MD_COMPACT's inner type */
        struct { uint32_t len; uint32_t type; } array;
        struct { uint32_t ntypes; uint32_t *types; } tuple;
        md_prim prim;
        struct { uint32_t store, order; } bits;
    } u;
} md_type;

/* ------------------------------------------------------------- pallets */

typedef enum { MD_STORAGE_OPTIONAL = 0, MD_STORAGE_DEFAULT = 1 } md_modifier;

typedef struct md_storage_entry {
    const char *name;
    md_modifier modifier;   /* Optional: absent reads as None; Default: as `def` */
    bool is_map;
    uint32_t nhashers;      /* maps: one hasher per key (scale_hasher values) */
    uint8_t *hashers;
    uint32_t key_type;      /* maps: the key, a tuple when nhashers > 1 */
    uint32_t value_type;
    const uint8_t *def;     /* SCALE bytes of the default value */
    size_t ndef;
} md_storage_entry;

typedef struct md_constant {
    const char *name;
    uint32_t type;
    const uint8_t *value;
    size_t nvalue;
} md_constant;

typedef struct md_pallet {
    const char *name;
    uint8_t index;
    const char *storage_prefix;  /* NULL when the pallet has no storage */
    uint32_t nstorage;
    md_storage_entry *storage;
    uint32_t call_type;          /* an enum of the calls, or MD_NO_TYPE */
    uint32_t event_type;
    uint32_t error_type;
    uint32_t nconstants;
    md_constant *constants;
} md_pallet;

/* ----------------------------------------------------------- extrinsic */

typedef struct md_signed_ext {
    const char *identifier;  /* "CheckNonce", ... */
    uint32_t type;           /* the "extra" carried in the extrinsic */
    uint32_t additional;     /* signed but not carried */
} md_signed_ext;

typedef struct md_extrinsic {
    uint8_t version;         /* 4 */
    uint32_t type;           /* v14: the UncheckedExtrinsic type; v15: MD_NO_TYPE */
    /* v15 gives these; for v14 they are read from the UncheckedExtrinsic's
     * type parameters when present (else MD_NO_TYPE) */
    uint32_t address_type, call_type, signature_type, extra_type;
    uint32_t nexts;
    md_signed_ext *exts;
} md_extrinsic;

/* ------------------------------------------------------ runtime APIs (v15) */

typedef struct md_api_param {
    const char *name;
    uint32_t type;
} md_api_param;

typedef struct md_api_method {
    const char *name;
    uint32_t ninputs;
    md_api_param *inputs;
    uint32_t output;
} md_api_method;

typedef struct md_api {
    const char *name;        /* the trait: "NeuronInfoRuntimeApi" */
    uint32_t nmethods;
    md_api_method *methods;
} md_api;

/* ------------------------------------------------------------ metadata */

typedef struct md_metadata {
    uint8_t version;         /* 14 or 15 */
    uint32_t ntypes;
    md_type *types;          /* types[id].id == id */
    uint32_t npallets;
    md_pallet *pallets;
    md_extrinsic extrinsic;
    uint32_t runtime_type;
    uint32_t napis;          /* v15 only (0 for v14) */
    md_api *apis;
    /* v15 outer enums: RuntimeCall, RuntimeEvent, RuntimeError (MD_NO_TYPE in v14) */
    uint32_t call_enum, event_enum, error_enum;
    struct md_internal *in;  /* private: allocation arena, size table */
} md_metadata;

/* Parses metadata bytes: either as `state_getMetadata` returns them (magic
 * "meta" then the version byte), or wrapped as Option<Vec<u8>> / Vec<u8>
 * (what the Metadata_metadata_at_version runtime API returns).  Versions
 * other than 14 and 15 are refused with a message naming the version. */
int md_parse(const uint8_t *bytes, size_t len, md_metadata **out, ts_err *e);
void md_free(md_metadata *m);

/* The type with this id, or NULL. */
const md_type *md_type_get(const md_metadata *m, uint32_t id);
/* A readable name: "u64", "Vec<u16>", "[u8; 32]", "(u16, u64)",
 * "Option<AccountId32>", "Compact<u128>", "BoundedVec<u8>"...  Always
 * NUL-terminated within cap (truncated if needed); returns buf. */
char *md_type_name(const md_metadata *m, uint32_t id, char *buf, size_t cap);
/* True when every value of the type encodes to zero bytes ((), structs of
 * such, PhantomData...). */
bool md_type_is_empty(const md_metadata *m, uint32_t id);
/* A lower bound on the bytes any value of the type takes (0 for empty
 * types); length prefixes are checked against it before allocating. */
size_t md_type_min_size(const md_metadata *m, uint32_t id);

/* Lookups by name (NULL / TS_ENOTFOUND when absent). */
const md_pallet *md_pallet_find(const md_metadata *m, const char *pallet);
const md_pallet *md_pallet_by_index(const md_metadata *m, uint8_t index);
/* A pallet's call: its variant gives the call index and fields in order. */
int md_call_find(const md_metadata *m, const char *pallet, const char *call,
                 const md_pallet **p, const md_variant **v, ts_err *e);
int md_storage_find(const md_metadata *m, const char *pallet, const char *item,
                    const md_pallet **p, const md_storage_entry **s, ts_err *e);
int md_constant_find(const md_metadata *m, const char *pallet, const char *name,
                     const md_constant **c, ts_err *e);
/* A runtime-API method (v15): "NeuronInfoRuntimeApi", "get_neurons_lite".
 * The state_call method name is "<api>_<method>". */
int md_api_find(const md_metadata *m, const char *api, const char *method,
                const md_api_method **out, ts_err *e);
/* A pallet's error by index: the variant of its error enum. */
int md_error_find(const md_metadata *m, uint8_t pallet_index, uint8_t error_index,
                  const md_pallet **p, const md_variant **v, ts_err *e);
/* The variant of an enum type with this name or index (NULL when absent). */
const md_variant *md_variant_by_name(const md_type *t, const char *name);
const md_variant *md_variant_by_index(const md_type *t, uint8_t index);
/* The first type whose path is exactly the given "::"-joined path
 * ("sp_runtime::DispatchError"), or MD_NO_TYPE. */
uint32_t md_type_by_path(const md_metadata *m, const char *path);

/* --------------------------------------------------------- value codec */

/* Decodes one value of the type from the reader (the rest is left), into a
 * new cJSON (cJSON_Delete it).  Also bounded by a budget of JSON nodes
 * proportional to the input (8 per byte, plus 65536). */
int md_decode_value(const md_metadata *m, uint32_t type, scale_reader *r, struct cJSON **out,
                    ts_err *e);
/* Decodes exactly len bytes as one value of the type (trailing bytes are an
 * error). */
int md_decode(const md_metadata *m, uint32_t type, const uint8_t *p, size_t len,
              struct cJSON **out, ts_err *e);
/* Appends the SCALE encoding of a JSON value of the type.  Errors name the
 * place in the value ("[3].hotkey: ...") and the type expected. */
int md_encode(const md_metadata *m, uint32_t type, const struct cJSON *v, scale_writer *w,
              ts_err *e);

/* ------------------------------------------------------------- storage */

/* The storage key of an item: twox128(prefix) || twox128(item) followed by,
 * for maps, each given key encoded with its type and hashed with its hasher.
 * keys: NULL or a JSON array of up to nhashers values, in order; fewer than
 * nhashers gives a prefix for state_getKeysPaged (all keys of a map, or of
 * one first key of a double map). */
int md_storage_key(const md_metadata *m, const char *pallet, const char *item,
                   const struct cJSON *keys, scale_writer *w, ts_err *e);
/* The keys of a full storage key, as a JSON array: values for the
 * Concat hashers and Identity (which keep the key), null for opaque hashes. */
int md_storage_key_decode(const md_metadata *m, const char *pallet, const char *item,
                          const uint8_t *key, size_t len, struct cJSON **keys, ts_err *e);
/* A storage value as JSON.  present=false (the node returned null) gives the
 * item's default for a Default item and JSON null for an Optional one. */
int md_storage_decode(const md_metadata *m, const md_storage_entry *s, const uint8_t *p,
                      size_t len, bool present, struct cJSON **out, ts_err *e);

/* --------------------------------------------------------- runtime APIs */

/* Encodes a runtime-API method's arguments (a JSON array in order, or an
 * object by parameter name) as the state_call data. */
int md_api_args(const md_metadata *m, const md_api_method *meth, const struct cJSON *args,
                scale_writer *w, ts_err *e);

#ifdef __cplusplus
}
#endif
#endif
