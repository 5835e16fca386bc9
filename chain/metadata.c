/*
 * metadata.c - reads runtime metadata v14/v15 into md_metadata, and answers
 * the lookups the subtensor backend needs (pallets, calls, storage items,
 * constants, runtime APIs, errors) plus storage keys (see metadata.h).
 *
 * The metadata is hostile input as far as this file is concerned: every
 * count is compared with the bytes that remain before an array is allocated
 * (each item takes at least one byte), every type id is checked to exist, and
 * the parse fails on any byte left over.  All strings and arrays live in one
 * arena, freed at once by md_free.
 */
#include "chain/metadata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ------------------------------------------------------------------ arena */

typedef struct md_chunk {
    struct md_chunk *next;
    size_t used, cap;
    _Alignas(16) uint8_t data[];
} md_chunk;

struct md_internal {
    md_chunk *chunks;
    uint32_t *minsize; /* per type: the fewest bytes a value can take (a lower bound) */
};

#define CHUNK_BYTES (256 * 1024)

static void *ar_alloc(struct md_internal *in, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    md_chunk *c = in->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        /* a big block gets its own chunk behind the current one, so the
         * current chunk's free space is not thrown away */
        if (n > CHUNK_BYTES && in->chunks) {
            c->next = in->chunks->next;
            in->chunks->next = c;
        } else {
            c->next = in->chunks;
            in->chunks = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void md_free(md_metadata *m) {
    if (!m) return;
    if (m->in) {
        md_chunk *c = m->in->chunks;
        while (c) {
            md_chunk *next = c->next;
            free(c);
            c = next;
        }
        free(m->in->minsize);
        free(m->in);
    }
    free(m);
}

/* ----------------------------------------------------------------- parser */

typedef struct {
    scale_reader r;
    md_metadata *m;
    struct md_internal *in;
    int nomem;
    const char *what; /* the part being read, for messages */
} P;

static void *p_alloc(P *p, size_t n) {
    void *q = ar_alloc(p->in, n);
    if (!q) {
        p->nomem = 1;
        scale_fail(&p->r, "out of memory");
    }
    return q;
}

/* A count of items that each take at least one byte. */
static uint32_t rd_count(P *p) {
    size_t n;
    if (scale_get_len(&p->r, &n, 1, 0)) return 0;
    if (n > UINT32_MAX) {
        scale_fail(&p->r, "count too large");
        return 0;
    }
    return (uint32_t)n;
}

static const char *rd_str(P *p) {
    size_t n;
    if (scale_get_len(&p->r, &n, 1, 0)) return "";
    const uint8_t *q = scale_get_ptr(&p->r, n);
    if (!q) return "";
    if (memchr(q, 0, n)) {
        scale_fail(&p->r, "a name holds a NUL byte");
        return "";
    }
    char *s = p_alloc(p, n + 1);
    if (!s) return "";
    memcpy(s, q, n);
    s[n] = 0;
    return s;
}

static void skip_strs(P *p) {
    uint32_t n = rd_count(p);
    for (uint32_t i = 0; i < n && !p->r.err; i++) {
        size_t len;
        if (scale_get_len(&p->r, &len, 1, 0)) return;
        scale_get_ptr(&p->r, len);
    }
}

static uint8_t rd_u8(P *p) {
    uint8_t v;
    scale_get_u8(&p->r, &v);
    return v;
}

static bool rd_option(P *p) {
    bool some;
    scale_get_option(&p->r, &some);
    return some;
}

/* A type id; checked against the registry once it is known (ntypes > 0). */
static uint32_t rd_type(P *p) {
    uint32_t id;
    if (scale_get_compact_u32(&p->r, &id)) return 0;
    if (p->m->ntypes && id >= p->m->ntypes) {
        scale_fail(&p->r, "reference to a type id that does not exist");
        return 0;
    }
    return id;
}

/* A Vec<u8>, copied into the arena (the metadata outlives the input). */
static const uint8_t *rd_bytes(P *p, size_t *n) {
    *n = 0;
    size_t len;
    if (scale_get_len(&p->r, &len, 1, 0)) return NULL;
    const uint8_t *q = scale_get_ptr(&p->r, len);
    if (!q) return NULL;
    uint8_t *c = p_alloc(p, len);
    if (!c) return NULL;
    if (len) memcpy(c, q, len);
    *n = len;
    return c;
}

static md_field *rd_fields(P *p, uint32_t *nf) {
    uint32_t n = *nf = rd_count(p);
    md_field *f = n ? p_alloc(p, (size_t)n * sizeof *f) : NULL;
    for (uint32_t i = 0; i < n && !p->r.err; i++) {
        f[i].name = rd_option(p) ? rd_str(p) : NULL;
        f[i].type = rd_type(p);
        f[i].type_name = rd_option(p) ? rd_str(p) : NULL;
        skip_strs(p);
    }
    if (p->r.err) *nf = 0;
    return f;
}

static void rd_registry(P *p) {
    md_metadata *m = p->m;
    p->what = "type registry";
    uint32_t n = rd_count(p);
    if (p->r.err) return;
    if (n == 0) {
        scale_fail(&p->r, "empty type registry");
        return;
    }
    m->types = p_alloc(p, (size_t)n * sizeof *m->types);
    for (uint32_t i = 0; i < n && !p->r.err; i++) {
        md_type *t = &m->types[i];
        uint32_t id;
        if (scale_get_compact_u32(&p->r, &id)) break;
        if (id != i) {
            scale_fail(&p->r, "type ids are not numbered 0, 1, 2, ...");
            break;
        }
        t->id = id;
        t->npath = rd_count(p);
        t->path = t->npath ? p_alloc(p, (size_t)t->npath * sizeof *t->path) : NULL;
        for (uint32_t k = 0; k < t->npath && !p->r.err; k++) t->path[k] = rd_str(p);
        t->nparams = rd_count(p);
        t->params = t->nparams ? p_alloc(p, (size_t)t->nparams * sizeof *t->params) : NULL;
        for (uint32_t k = 0; k < t->nparams && !p->r.err; k++) {
            t->params[k].name = rd_str(p);
            t->params[k].type = rd_option(p) ? rd_type(p) : MD_NO_TYPE;
        }
        uint8_t tag = rd_u8(p);
        if (p->r.err) break;
        switch (tag) {
        case 0:
            t->kind = MD_COMPOSITE;
            t->u.composite.fields = rd_fields(p, &t->u.composite.nfields);
            break;
        case 1: {
            t->kind = MD_VARIANT;
            uint32_t nv = rd_count(p);
            if (nv > 256) {
                scale_fail(&p->r, "an enum with more than 256 variants");
                break;
            }
            md_variant *v = nv ? p_alloc(p, (size_t)nv * sizeof *v) : NULL;
            for (uint32_t k = 0; k < nv && !p->r.err; k++) {
                v[k].name = rd_str(p);
                v[k].fields = rd_fields(p, &v[k].nfields);
                v[k].index = rd_u8(p);
                skip_strs(p);
            }
            t->u.variant.variants = v;
            t->u.variant.nvariants = p->r.err ? 0 : nv;
            break;
        }
        case 2:
            t->kind = MD_SEQUENCE;
            t->u.sequence.type = rd_type(p);
            break;
        case 3:
            t->kind = MD_ARRAY;
            scale_get_u32(&p->r, &t->u.array.len);
            t->u.array.type = rd_type(p);
            break;
        case 4: {
            t->kind = MD_TUPLE;
            uint32_t nt = rd_count(p);
            uint32_t *ts = nt ? p_alloc(p, (size_t)nt * sizeof *ts) : NULL;
            for (uint32_t k = 0; k < nt && !p->r.err; k++) ts[k] = rd_type(p);
            t->u.tuple.types = ts;
            t->u.tuple.ntypes = p->r.err ? 0 : nt;
            break;
        }
        case 5: {
            t->kind = MD_PRIMITIVE;
            uint8_t pr = rd_u8(p);
            if (pr > MD_I256) scale_fail(&p->r, "unknown primitive type");
            t->u.prim = (md_prim)pr;
            break;
        }
        case 6:
            t->kind = MD_COMPACT;
            t->u.sequence.type = rd_type(p);
            break;
        case 7:
            t->kind = MD_BITSEQ;
            t->u.bits.store = rd_type(p);
            t->u.bits.order = rd_type(p);
            break;
        default: scale_fail(&p->r, "unknown kind of type definition"); break;
        }
        skip_strs(p); /* docs */
    }
    if (p->r.err) return;
    m->ntypes = n;
    /* the registry may refer forward: check its references now */
    for (uint32_t i = 0; i < n; i++) {
        const md_type *t = &m->types[i];
        bool ok = true;
        for (uint32_t k = 0; k < t->nparams; k++)
            ok &= t->params[k].type == MD_NO_TYPE || t->params[k].type < n;
        switch (t->kind) {
        case MD_COMPOSITE:
            for (uint32_t k = 0; k < t->u.composite.nfields; k++) ok &= t->u.composite.fields[k].type < n;
            break;
        case MD_VARIANT:
            for (uint32_t k = 0; k < t->u.variant.nvariants; k++)
                for (uint32_t j = 0; j < t->u.variant.variants[k].nfields; j++)
                    ok &= t->u.variant.variants[k].fields[j].type < n;
            break;
        case MD_SEQUENCE:
        case MD_COMPACT: ok &= t->u.sequence.type < n; break;
        case MD_ARRAY: ok &= t->u.array.type < n; break;
        case MD_TUPLE:
            for (uint32_t k = 0; k < t->u.tuple.ntypes; k++) ok &= t->u.tuple.types[k] < n;
            break;
        case MD_BITSEQ: ok &= t->u.bits.store < n && t->u.bits.order < n; break;
        case MD_PRIMITIVE: break;
        }
        if (!ok) {
            m->ntypes = 0;
            scale_fail(&p->r, "reference to a type id that does not exist");
            return;
        }
    }
}

static void rd_storage(P *p, md_pallet *pl) {
    pl->storage_prefix = rd_str(p);
    uint32_t n = rd_count(p);
    md_storage_entry *s = n ? p_alloc(p, (size_t)n * sizeof *s) : NULL;
    for (uint32_t i = 0; i < n && !p->r.err; i++) {
        s[i].name = rd_str(p);
        uint8_t mod = rd_u8(p);
        if (mod > 1) scale_fail(&p->r, "unknown storage modifier");
        s[i].modifier = (md_modifier)mod;
        uint8_t kind = rd_u8(p);
        if (kind == 0) {
            s[i].value_type = rd_type(p);
            s[i].key_type = MD_NO_TYPE;
        } else if (kind == 1) {
            s[i].is_map = true;
            uint32_t nh = rd_count(p);
            s[i].hashers = nh ? p_alloc(p, nh) : NULL;
            for (uint32_t k = 0; k < nh && !p->r.err; k++) {
                s[i].hashers[k] = rd_u8(p);
                if (s[i].hashers[k] >= SCALE_HASH_COUNT) scale_fail(&p->r, "unknown storage hasher");
            }
            s[i].nhashers = p->r.err ? 0 : nh;
            if (!p->r.err && nh == 0) scale_fail(&p->r, "a storage map without hashers");
            s[i].key_type = rd_type(p);
            s[i].value_type = rd_type(p);
        } else {
            scale_fail(&p->r, "unknown storage entry kind");
        }
        s[i].def = rd_bytes(p, &s[i].ndef);
        skip_strs(p);
    }
    pl->storage = s;
    pl->nstorage = p->r.err ? 0 : n;
}

static void rd_pallets(P *p) {
    md_metadata *m = p->m;
    p->what = "pallets";
    uint32_t n = rd_count(p);
    m->pallets = n ? p_alloc(p, (size_t)n * sizeof *m->pallets) : NULL;
    for (uint32_t i = 0; i < n && !p->r.err; i++) {
        md_pallet *pl = &m->pallets[i];
        pl->name = rd_str(p);
        pl->call_type = pl->event_type = pl->error_type = MD_NO_TYPE;
        if (rd_option(p)) rd_storage(p, pl);
        if (rd_option(p)) pl->call_type = rd_type(p);
        if (rd_option(p)) pl->event_type = rd_type(p);
        uint32_t nc = rd_count(p);
        pl->constants = nc ? p_alloc(p, (size_t)nc * sizeof *pl->constants) : NULL;
        for (uint32_t k = 0; k < nc && !p->r.err; k++) {
            pl->constants[k].name = rd_str(p);
            pl->constants[k].type = rd_type(p);
            pl->constants[k].value = rd_bytes(p, &pl->constants[k].nvalue);
            skip_strs(p);
        }
        pl->nconstants = p->r.err ? 0 : nc;
        if (rd_option(p)) pl->error_type = rd_type(p);
        pl->index = rd_u8(p);
        if (m->version >= 15) skip_strs(p);
    }
    m->npallets = p->r.err ? 0 : n;
}

static uint32_t type_param(const md_metadata *m, uint32_t id, const char *name) {
    const md_type *t = md_type_get(m, id);
    for (uint32_t k = 0; t && k < t->nparams; k++)
        if (!strcmp(t->params[k].name, name)) return t->params[k].type;
    return MD_NO_TYPE;
}

static void rd_extrinsic(P *p) {
    md_metadata *m = p->m;
    md_extrinsic *x = &m->extrinsic;
    p->what = "extrinsic";
    x->type = x->address_type = x->call_type = x->signature_type = x->extra_type = MD_NO_TYPE;
    if (m->version == 14) {
        x->type = rd_type(p);
        x->version = rd_u8(p);
    } else {
        x->version = rd_u8(p);
        x->address_type = rd_type(p);
        x->call_type = rd_type(p);
        x->signature_type = rd_type(p);
        x->extra_type = rd_type(p);
    }
    uint32_t n = rd_count(p);
    x->exts = n ? p_alloc(p, (size_t)n * sizeof *x->exts) : NULL;
    for (uint32_t i = 0; i < n && !p->r.err; i++) {
        x->exts[i].identifier = rd_str(p);
        x->exts[i].type = rd_type(p);
        x->exts[i].additional = rd_type(p);
    }
    x->nexts = p->r.err ? 0 : n;
    if (m->version == 14 && !p->r.err) {
        x->address_type = type_param(m, x->type, "Address");
        x->call_type = type_param(m, x->type, "Call");
        x->signature_type = type_param(m, x->type, "Signature");
        x->extra_type = type_param(m, x->type, "Extra");
    }
}

static void rd_apis(P *p) {
    md_metadata *m = p->m;
    p->what = "runtime APIs";
    uint32_t n = rd_count(p);
    m->apis = n ? p_alloc(p, (size_t)n * sizeof *m->apis) : NULL;
    for (uint32_t i = 0; i < n && !p->r.err; i++) {
        md_api *a = &m->apis[i];
        a->name = rd_str(p);
        uint32_t nm = rd_count(p);
        a->methods = nm ? p_alloc(p, (size_t)nm * sizeof *a->methods) : NULL;
        for (uint32_t k = 0; k < nm && !p->r.err; k++) {
            md_api_method *me = &a->methods[k];
            me->name = rd_str(p);
            uint32_t ni = rd_count(p);
            me->inputs = ni ? p_alloc(p, (size_t)ni * sizeof *me->inputs) : NULL;
            for (uint32_t j = 0; j < ni && !p->r.err; j++) {
                me->inputs[j].name = rd_str(p);
                me->inputs[j].type = rd_type(p);
            }
            me->ninputs = p->r.err ? 0 : ni;
            me->output = rd_type(p);
            skip_strs(p);
        }
        a->nmethods = p->r.err ? 0 : nm;
        skip_strs(p);
    }
    m->napis = p->r.err ? 0 : n;
    p->what = "outer enums";
    m->call_enum = rd_type(p);
    m->event_enum = rd_type(p);
    m->error_enum = rd_type(p);
    p->what = "custom values";
    uint32_t nc = rd_count(p);
    for (uint32_t i = 0; i < nc && !p->r.err; i++) {
        size_t len;
        rd_str(p);
        rd_type(p);
        rd_bytes(p, &len);
    }
}

static uint32_t sat_add(uint32_t a, uint32_t b) { return a > UINT32_MAX - b ? UINT32_MAX : a + b; }

static uint32_t sat_mul(uint32_t a, uint32_t b) {
    uint64_t x = (uint64_t)a * b;
    return x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;
}

/* The fewest bytes a value of each type can take, found by iterating from 0
 * upwards (every round gives lower bounds, so stopping early is safe).  The
 * value decoder uses it to refuse a length prefix the input cannot hold. */
static int compute_minsize(md_metadata *m) {
    static const uint8_t prim_size[] = {1, 4, 1, 1, 2, 4, 8, 16, 32, 1, 2, 4, 8, 16, 32};
    uint32_t *ms = calloc(m->ntypes, sizeof *ms);
    if (!ms) return TS_ENOMEM;
    for (int round = 0; round < 2 * MD_MAX_DEPTH; round++) {
        bool changed = false;
        for (uint32_t i = 0; i < m->ntypes; i++) {
            const md_type *t = &m->types[i];
            uint32_t s = 0;
            switch (t->kind) {
            case MD_COMPOSITE:
                for (uint32_t k = 0; k < t->u.composite.nfields; k++)
                    s = sat_add(s, ms[t->u.composite.fields[k].type]);
                break;
            case MD_VARIANT:
                s = UINT32_MAX; /* an enum without variants has no value at all */
                for (uint32_t k = 0; k < t->u.variant.nvariants; k++) {
                    const md_variant *v = &t->u.variant.variants[k];
                    uint32_t vs = 1;
                    for (uint32_t j = 0; j < v->nfields; j++) vs = sat_add(vs, ms[v->fields[j].type]);
                    if (vs < s) s = vs;
                }
                break;
            case MD_ARRAY: s = sat_mul(t->u.array.len, ms[t->u.array.type]); break;
            case MD_TUPLE:
                for (uint32_t k = 0; k < t->u.tuple.ntypes; k++) s = sat_add(s, ms[t->u.tuple.types[k]]);
                break;
            case MD_PRIMITIVE: s = prim_size[t->u.prim]; break;
            case MD_SEQUENCE:
            case MD_COMPACT:
            case MD_BITSEQ: s = 1; break;
            }
            if (s > ms[i]) {
                ms[i] = s;
                changed = true;
            }
        }
        if (!changed) break;
    }
    m->in->minsize = ms;
    return 0;
}

/* state_call Metadata_metadata_at_version returns Option<OpaqueMetadata>,
 * OpaqueMetadata being a Vec<u8>: accept those wrappings too. */
static bool unwrap_opaque(const uint8_t **bytes, size_t *len) {
    static const uint8_t magic[4] = {0x6d, 0x65, 0x74, 0x61};
    for (int skip_option = 0; skip_option < 2; skip_option++) {
        scale_reader r;
        scale_reader_init(&r, *bytes, *len);
        if (skip_option) {
            bool some;
            if (scale_get_option(&r, &some) || !some) continue;
        }
        size_t n;
        if (scale_get_len(&r, &n, 1, 0) || n != scale_remaining(&r) || n < 4) continue;
        if (memcmp(r.p + r.pos, magic, 4)) continue;
        *bytes = r.p + r.pos;
        *len = n;
        return true;
    }
    return false;
}

int md_parse(const uint8_t *bytes, size_t len, md_metadata **out, ts_err *e) {
    static const uint8_t magic[4] = {0x6d, 0x65, 0x74, 0x61};
    *out = NULL;
    if (!bytes || len < 5) return ts_fail(e, TS_EFORMAT, "metadata: %zu bytes is too short", len);
    if (memcmp(bytes, magic, 4) && !unwrap_opaque(&bytes, &len))
        return ts_fail(e, TS_EFORMAT, "metadata: does not start with the magic \"meta\" (0x6d657461)");
    uint8_t version = bytes[4];
    if (version != 14 && version != 15)
        return ts_fail(e, TS_EUNSUPPORTED,
                       "metadata: version %u is not supported (only 14 and 15 are)", version);
    md_metadata *m = calloc(1, sizeof *m);
    if (!m || !(m->in = calloc(1, sizeof *m->in))) {
        free(m);
        return ts_fail(e, TS_ENOMEM, "metadata: out of memory");
    }
    m->version = version;
    m->call_enum = m->event_enum = m->error_enum = MD_NO_TYPE;
    P p = {.m = m, .in = m->in, .what = "header"};
    scale_reader_init(&p.r, bytes + 5, len - 5);
    rd_registry(&p);
    if (!p.r.err) rd_pallets(&p);
    if (!p.r.err) rd_extrinsic(&p);
    if (!p.r.err) {
        p.what = "runtime type";
        m->runtime_type = rd_type(&p);
    }
    if (!p.r.err && version >= 15) rd_apis(&p);
    if (!p.r.err && scale_remaining(&p.r)) {
        p.what = "end";
        scale_fail(&p.r, "bytes left over after the metadata");
    }
    if (p.r.err) {
        int code = p.nomem ? TS_ENOMEM : TS_EFORMAT;
        ts_fail(e, code, "metadata v%u: %s: %s at byte %zu", version, p.what,
                p.r.why ? p.r.why : "malformed", p.r.pos + 5);
        md_free(m);
        return code;
    }
    if (compute_minsize(m)) {
        md_free(m);
        return ts_fail(e, TS_ENOMEM, "metadata: out of memory");
    }
    *out = m;
    return 0;
}

/* ---------------------------------------------------------------- lookups */

const md_type *md_type_get(const md_metadata *m, uint32_t id) {
    return m && id < m->ntypes ? &m->types[id] : NULL;
}

size_t md_type_min_size(const md_metadata *m, uint32_t id) {
    return m && id < m->ntypes ? m->in->minsize[id] : 0;
}

const md_pallet *md_pallet_find(const md_metadata *m, const char *pallet) {
    for (uint32_t i = 0; i < m->npallets; i++)
        if (!strcmp(m->pallets[i].name, pallet)) return &m->pallets[i];
    return NULL;
}

const md_pallet *md_pallet_by_index(const md_metadata *m, uint8_t index) {
    for (uint32_t i = 0; i < m->npallets; i++)
        if (m->pallets[i].index == index) return &m->pallets[i];
    return NULL;
}

const md_variant *md_variant_by_name(const md_type *t, const char *name) {
    if (!t || t->kind != MD_VARIANT) return NULL;
    for (uint32_t i = 0; i < t->u.variant.nvariants; i++)
        if (!strcmp(t->u.variant.variants[i].name, name)) return &t->u.variant.variants[i];
    return NULL;
}

const md_variant *md_variant_by_index(const md_type *t, uint8_t index) {
    if (!t || t->kind != MD_VARIANT) return NULL;
    for (uint32_t i = 0; i < t->u.variant.nvariants; i++)
        if (t->u.variant.variants[i].index == index) return &t->u.variant.variants[i];
    return NULL;
}

static int no_pallet(const md_metadata *m, const char *pallet, ts_err *e) {
    return ts_fail(e, TS_ENOTFOUND, "the runtime has no pallet '%s' (metadata v%u, %u pallets)",
                   pallet, m->version, m->npallets);
}

int md_call_find(const md_metadata *m, const char *pallet, const char *call,
                 const md_pallet **p, const md_variant **v, ts_err *e) {
    const md_pallet *pl = md_pallet_find(m, pallet);
    if (!pl) return no_pallet(m, pallet, e);
    const md_variant *c = md_variant_by_name(md_type_get(m, pl->call_type), call);
    if (!c) return ts_fail(e, TS_ENOTFOUND, "pallet %s has no call '%s'", pallet, call);
    if (p) *p = pl;
    if (v) *v = c;
    return 0;
}

int md_storage_find(const md_metadata *m, const char *pallet, const char *item,
                    const md_pallet **p, const md_storage_entry **s, ts_err *e) {
    const md_pallet *pl = md_pallet_find(m, pallet);
    if (!pl) return no_pallet(m, pallet, e);
    for (uint32_t i = 0; i < pl->nstorage; i++) {
        if (!strcmp(pl->storage[i].name, item)) {
            if (p) *p = pl;
            if (s) *s = &pl->storage[i];
            return 0;
        }
    }
    return ts_fail(e, TS_ENOTFOUND, "pallet %s has no storage item '%s'", pallet, item);
}

int md_constant_find(const md_metadata *m, const char *pallet, const char *name,
                     const md_constant **c, ts_err *e) {
    const md_pallet *pl = md_pallet_find(m, pallet);
    if (!pl) return no_pallet(m, pallet, e);
    for (uint32_t i = 0; i < pl->nconstants; i++) {
        if (!strcmp(pl->constants[i].name, name)) {
            *c = &pl->constants[i];
            return 0;
        }
    }
    return ts_fail(e, TS_ENOTFOUND, "pallet %s has no constant '%s'", pallet, name);
}

int md_api_find(const md_metadata *m, const char *api, const char *method,
                const md_api_method **out, ts_err *e) {
    if (m->version < 15)
        return ts_fail(e, TS_EUNSUPPORTED,
                       "runtime API %s_%s: metadata v%u does not describe runtime APIs (v15 does)",
                       api, method, m->version);
    for (uint32_t i = 0; i < m->napis; i++) {
        if (strcmp(m->apis[i].name, api)) continue;
        for (uint32_t k = 0; k < m->apis[i].nmethods; k++) {
            if (!strcmp(m->apis[i].methods[k].name, method)) {
                *out = &m->apis[i].methods[k];
                return 0;
            }
        }
        return ts_fail(e, TS_ENOTFOUND, "runtime API %s has no method '%s'", api, method);
    }
    return ts_fail(e, TS_ENOTFOUND, "the runtime has no runtime API '%s'", api);
}

int md_error_find(const md_metadata *m, uint8_t pallet_index, uint8_t error_index,
                  const md_pallet **p, const md_variant **v, ts_err *e) {
    const md_pallet *pl = md_pallet_by_index(m, pallet_index);
    if (!pl) return ts_fail(e, TS_ENOTFOUND, "no pallet has index %u", pallet_index);
    const md_variant *ev = md_variant_by_index(md_type_get(m, pl->error_type), error_index);
    if (!ev) return ts_fail(e, TS_ENOTFOUND, "pallet %s has no error %u", pl->name, error_index);
    if (p) *p = pl;
    if (v) *v = ev;
    return 0;
}

uint32_t md_type_by_path(const md_metadata *m, const char *path) {
    for (uint32_t i = 0; i < m->ntypes; i++) {
        const md_type *t = &m->types[i];
        if (!t->npath) continue;
        const char *s = path;
        bool ok = true;
        for (uint32_t k = 0; k < t->npath && ok; k++) {
            size_t n = strlen(t->path[k]);
            if (k > 0) {
                if (strncmp(s, "::", 2)) ok = false;
                else s += 2;
            }
            if (ok && strncmp(s, t->path[k], n)) ok = false;
            if (ok) s += n;
        }
        if (ok && !*s) return i;
    }
    return MD_NO_TYPE;
}

/* ------------------------------------------------------------ type names */

typedef struct {
    char *buf;
    size_t cap, len;
} namebuf;

static void nb_put(namebuf *b, const char *s) {
    while (*s && b->len + 1 < b->cap) b->buf[b->len++] = *s++;
    b->buf[b->len] = 0;
}

static void name_rec(const md_metadata *m, uint32_t id, namebuf *b, int depth) {
    static const char *prims[] = {"bool", "char", "str", "u8", "u16", "u32", "u64", "u128",
                                  "u256", "i8", "i16", "i32", "i64", "i128", "i256"};
    const md_type *t = md_type_get(m, id);
    if (!t) return nb_put(b, "?");
    if (depth > MD_MAX_DEPTH / 4 || b->len + 1 >= b->cap) return nb_put(b, "...");
    char num[32];
    switch (t->kind) {
    case MD_PRIMITIVE: return nb_put(b, prims[t->u.prim]);
    case MD_SEQUENCE:
        nb_put(b, "Vec<");
        name_rec(m, t->u.sequence.type, b, depth + 1);
        return nb_put(b, ">");
    case MD_COMPACT:
        nb_put(b, "Compact<");
        name_rec(m, t->u.sequence.type, b, depth + 1);
        return nb_put(b, ">");
    case MD_ARRAY:
        nb_put(b, "[");
        name_rec(m, t->u.array.type, b, depth + 1);
        snprintf(num, sizeof num, "; %u]", t->u.array.len);
        return nb_put(b, num);
    case MD_TUPLE:
        nb_put(b, "(");
        for (uint32_t k = 0; k < t->u.tuple.ntypes; k++) {
            if (k) nb_put(b, ", ");
            name_rec(m, t->u.tuple.types[k], b, depth + 1);
        }
        return nb_put(b, ")");
    case MD_BITSEQ:
        nb_put(b, "BitVec<");
        name_rec(m, t->u.bits.store, b, depth + 1);
        return nb_put(b, ">");
    case MD_COMPOSITE:
    case MD_VARIANT: {
        nb_put(b, t->npath ? t->path[t->npath - 1] : t->kind == MD_VARIANT ? "<enum>" : "<struct>");
        bool first = true;
        for (uint32_t k = 0; k < t->nparams; k++) {
            if (t->params[k].type == MD_NO_TYPE) continue;
            nb_put(b, first ? "<" : ", ");
            first = false;
            name_rec(m, t->params[k].type, b, depth + 1);
        }
        if (!first) nb_put(b, ">");
        return;
    }
    }
}

char *md_type_name(const md_metadata *m, uint32_t id, char *buf, size_t cap) {
    if (!cap) return buf;
    namebuf b = {buf, cap, 0};
    buf[0] = 0;
    name_rec(m, id, &b, 0);
    return buf;
}

static bool empty_rec(const md_metadata *m, uint32_t id, int depth) {
    const md_type *t = md_type_get(m, id);
    if (!t || depth > MD_MAX_DEPTH) return false;
    switch (t->kind) {
    case MD_COMPOSITE:
        for (uint32_t k = 0; k < t->u.composite.nfields; k++)
            if (!empty_rec(m, t->u.composite.fields[k].type, depth + 1)) return false;
        return true;
    case MD_TUPLE:
        for (uint32_t k = 0; k < t->u.tuple.ntypes; k++)
            if (!empty_rec(m, t->u.tuple.types[k], depth + 1)) return false;
        return true;
    case MD_ARRAY: return t->u.array.len == 0 || empty_rec(m, t->u.array.type, depth + 1);
    default: return false;
    }
}

bool md_type_is_empty(const md_metadata *m, uint32_t id) {
    /* a type that can take a byte is not empty; the walk settles the rest */
    return md_type_get(m, id) && md_type_min_size(m, id) == 0 && empty_rec(m, id, 0);
}

/* ---------------------------------------------------------------- storage */

/* The key types of a map, one per hasher. */
static int key_types(const md_metadata *m, const md_pallet *pl, const md_storage_entry *s,
                     const uint32_t **types, ts_err *e) {
    if (s->nhashers == 1) {
        *types = &s->key_type;
        return 0;
    }
    const md_type *kt = md_type_get(m, s->key_type);
    if (!kt || kt->kind != MD_TUPLE || kt->u.tuple.ntypes != s->nhashers)
        return ts_fail(e, TS_EFORMAT, "storage %s.%s: %u hashers but the key is not a tuple of %u",
                       pl->name, s->name, s->nhashers, s->nhashers);
    *types = kt->u.tuple.types;
    return 0;
}

int md_storage_key(const md_metadata *m, const char *pallet, const char *item,
                   const cJSON *keys, scale_writer *w, ts_err *e) {
    const md_pallet *pl;
    const md_storage_entry *s;
    int rc = md_storage_find(m, pallet, item, &pl, &s, e);
    if (rc) return rc;
    int nkeys = keys ? cJSON_GetArraySize(keys) : 0;
    if (keys && !cJSON_IsArray(keys))
        return ts_fail(e, TS_EINVAL, "storage %s.%s: the keys must be a JSON array", pallet, item);
    if (nkeys > 0 && !s->is_map)
        return ts_fail(e, TS_EINVAL, "storage %s.%s is a single value: it takes no keys", pallet, item);
    if (s->is_map && (uint32_t)nkeys > s->nhashers)
        return ts_fail(e, TS_EINVAL, "storage %s.%s takes %u key(s), %d given", pallet, item,
                       s->nhashers, nkeys);
    if (scale_put_storage_prefix(w, pl->storage_prefix, s->name))
        return ts_fail(e, TS_ENOMEM, "out of memory");
    if (nkeys == 0) return 0;
    const uint32_t *kt;
    if ((rc = key_types(m, pl, s, &kt, e))) return rc;
    for (int i = 0; i < nkeys; i++) {
        scale_writer k = SCALE_WRITER_INIT;
        rc = md_encode(m, kt[i], cJSON_GetArrayItem(keys, i), &k, e);
        if (!rc && scale_put_hashed(w, s->hashers[i], k.p, k.len)) rc = ts_fail(e, TS_ENOMEM, "out of memory");
        scale_writer_free(&k);
        if (rc) return ts_wrap(e, "storage %s.%s key %d", pallet, item, i + 1);
    }
    return 0;
}

int md_storage_key_decode(const md_metadata *m, const char *pallet, const char *item,
                          const uint8_t *key, size_t len, cJSON **keys, ts_err *e) {
    const md_pallet *pl;
    const md_storage_entry *s;
    *keys = NULL;
    int rc = md_storage_find(m, pallet, item, &pl, &s, e);
    if (rc) return rc;
    scale_writer pre = SCALE_WRITER_INIT;
    if (scale_put_storage_prefix(&pre, pl->storage_prefix, s->name)) return ts_fail(e, TS_ENOMEM, "out of memory");
    bool match = len >= 32 && !memcmp(key, pre.p, 32);
    scale_writer_free(&pre);
    if (!match) return ts_fail(e, TS_EFORMAT, "key is not under storage %s.%s", pallet, item);
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return ts_fail(e, TS_ENOMEM, "out of memory");
    scale_reader r;
    scale_reader_init(&r, key + 32, len - 32);
    const uint32_t *kt = NULL;
    if (s->is_map && (rc = key_types(m, pl, s, &kt, e))) goto fail;
    for (uint32_t i = 0; s->is_map && i < s->nhashers; i++) {
        if (!scale_get_ptr(&r, scale_hasher_hash_len(s->hashers[i]))) {
            rc = ts_fail(e, TS_EFORMAT, "storage %s.%s: key %u is cut short", pallet, item, i + 1);
            goto fail;
        }
        cJSON *v = NULL;
        if (scale_hasher_concat(s->hashers[i])) {
            if ((rc = md_decode_value(m, kt[i], &r, &v, e))) {
                ts_wrap(e, "storage %s.%s key %u", pallet, item, i + 1);
                goto fail;
            }
        } else {
            v = cJSON_CreateNull();
        }
        if (!v) {
            rc = ts_fail(e, TS_ENOMEM, "out of memory");
            goto fail;
        }
        cJSON_AddItemToArray(arr, v);
    }
    if (scale_remaining(&r)) {
        rc = ts_fail(e, TS_EFORMAT, "storage %s.%s: %zu bytes left after the keys", pallet, item,
                     scale_remaining(&r));
        goto fail;
    }
    *keys = arr;
    return 0;
fail:
    cJSON_Delete(arr);
    return rc;
}

int md_storage_decode(const md_metadata *m, const md_storage_entry *s, const uint8_t *p,
                      size_t len, bool present, cJSON **out, ts_err *e) {
    *out = NULL;
    if (!present) {
        if (s->modifier == MD_STORAGE_OPTIONAL) {
            *out = cJSON_CreateNull();
            return *out ? 0 : ts_fail(e, TS_ENOMEM, "out of memory");
        }
        p = s->def;
        len = s->ndef;
    }
    int rc = md_decode(m, s->value_type, p, len, out, e);
    return rc ? ts_wrap(e, "storage %s%s", s->name, present ? "" : " (default)") : 0;
}

int md_api_args(const md_metadata *m, const md_api_method *meth, const cJSON *args,
                scale_writer *w, ts_err *e) {
    bool by_name = cJSON_IsObject(args);
    if (args && !by_name && !cJSON_IsArray(args))
        return ts_fail(e, TS_EINVAL, "runtime API %s: arguments must be a JSON array or object", meth->name);
    int given = args ? cJSON_GetArraySize(args) : 0;
    if ((uint32_t)given != meth->ninputs)
        return ts_fail(e, TS_EINVAL, "runtime API %s takes %u argument(s), %d given", meth->name,
                       meth->ninputs, given);
    for (uint32_t i = 0; i < meth->ninputs; i++) {
        const cJSON *v = by_name ? cJSON_GetObjectItemCaseSensitive(args, meth->inputs[i].name)
                                 : cJSON_GetArrayItem(args, (int)i);
        if (!v)
            return ts_fail(e, TS_EINVAL, "runtime API %s: missing argument '%s'", meth->name,
                           meth->inputs[i].name);
        int rc = md_encode(m, meth->inputs[i].type, v, w, e);
        if (rc) return ts_wrap(e, "runtime API %s argument '%s'", meth->name, meth->inputs[i].name);
    }
    return 0;
}
