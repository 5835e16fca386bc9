/* bundle.c - a validator's catch-up object: the signed uploads it aggregated
 * in one window, in uid order, with the model hash before and after that
 * window's outer step, signed again by the validator (docs/FORMATS.md 7.6).
 * The hashes let a node that replays the window check that it starts from
 * the same model and reaches the same one: catch-up is exact or refuses.
 *
 * Replaying a window means decoding each listed upload (its own signature is
 * still checked, against the hotkey the leader lists for its uid) and
 * running the same outer step, so a node that catches up reaches the
 * leader's model bit for bit, and the object is no larger than the uploads
 * themselves (14 bits per sent value, where a sparse fp32 aggregate would
 * take 48). */
#include <stdlib.h>

#include "internal.h"

enum {
    B_MAGIC = 0,
    B_VERSION = 8,
    B_FLAGS = 10,
    B_RUNLEN = 12,
    B_RUN = 13,
    B_SCHEME = 77, /* u8 signature scheme: TS_SIG_SCHEME_SR25519 */
    B_RSV0 = 78,   /* 2 reserved bytes */
    B_WINDOW = 80,
    B_LEADER = 88,
    B_CONFIG = 120,
    B_COUNT = 152,
    B_RSV1 = 156,
    B_BASE = 160,  /* model hash before the window's outer step */
    B_MODEL = 192, /* model hash after it */
    B_END = 224,
    B_ENTRY = 48 /* u32 uid, u32 reserved, hotkey[32], u64 length */
};

int spl_bundle_build(const char *run_id, uint64_t window, const uint8_t config_hash[TS_HASH_BYTES],
                     const uint8_t base_hash[TS_HASH_BYTES], const uint8_t model_hash[TS_HASH_BYTES],
                     const ts_keypair *leader, const uint8_t *const *wires, const size_t *lens, int n,
                     uint8_t **out, size_t *out_len, ts_err *e) {
    *out = NULL;
    *out_len = 0;
    if (!spl_run_id_valid(run_id)) return ts_fail(e, TS_EINVAL, "bundle: invalid run id");
    if (n < 0 || n > SPL_MAX_PEERS) return ts_fail(e, TS_EINVAL, "bundle: %d uploads (at most %d)", n, SPL_MAX_PEERS);
    int order[SPL_MAX_PEERS];
    spl_meta metas[SPL_MAX_PEERS];
    size_t total = B_END + (size_t)n * B_ENTRY + TS_SIG_BYTES;
    for (int i = 0; i < n; i++) {
        spl_params p;
        spl_wire_info info;
        ts_err pe = {0};
        if (spl_peek(wires[i], lens[i], &metas[i], &p, &info, NULL, &pe))
            return ts_fail(e, TS_EINVAL, "bundle: upload %d: %s", i, pe.msg);
        if (strcmp(metas[i].run_id, run_id) || metas[i].window != window)
            return ts_fail(e, TS_EINVAL, "bundle: upload %d is for run %s window %llu, not %s window %llu", i,
                           metas[i].run_id, (unsigned long long)metas[i].window, run_id,
                           (unsigned long long)window);
        int j = i;
        while (j > 0 && metas[order[j - 1]].uid > metas[i].uid) {
            order[j] = order[j - 1];
            j--;
        }
        if (j > 0 && metas[order[j - 1]].uid == metas[i].uid)
            return ts_fail(e, TS_EINVAL, "bundle: two uploads from uid %u", metas[i].uid);
        order[j] = i;
        total += lens[i];
    }
    uint8_t *b = calloc(1, total);
    if (!b) return ts_fail(e, TS_ENOMEM, "bundle: out of memory");
    memcpy(b + B_MAGIC, SPL_BUNDLE_MAGIC, 8);
    ts_put_u16(b + B_VERSION, SPL_BUNDLE_VERSION);
    size_t rl = strlen(run_id);
    b[B_RUNLEN] = (uint8_t)rl;
    memcpy(b + B_RUN, run_id, rl);
    b[B_SCHEME] = TS_SIG_SCHEME_SR25519;
    ts_put_u64(b + B_WINDOW, window);
    memcpy(b + B_LEADER, leader->pk, TS_PK_BYTES);
    memcpy(b + B_CONFIG, config_hash, TS_HASH_BYTES);
    ts_put_u32(b + B_COUNT, (uint32_t)n);
    memcpy(b + B_BASE, base_hash, TS_HASH_BYTES);
    memcpy(b + B_MODEL, model_hash, TS_HASH_BYTES);
    uint8_t *ent = b + B_END, *data = b + B_END + (size_t)n * B_ENTRY;
    for (int q = 0; q < n; q++, ent += B_ENTRY) {
        int i = order[q];
        ts_put_u32(ent, metas[i].uid);
        memcpy(ent + 8, metas[i].hotkey, TS_PK_BYTES);
        ts_put_u64(ent + 40, lens[i]);
        memcpy(data, wires[i], lens[i]);
        data += lens[i];
    }
    uint8_t hash[TS_HASH_BYTES];
    ts_blake2b(hash, sizeof hash, b, total - TS_SIG_BYTES);
    int rc = ts_sign(leader, SPL_BUNDLE_TAG, hash, sizeof hash, b + total - TS_SIG_BYTES, e);
    if (rc) {
        free(b);
        return rc;
    }
    *out = b;
    *out_len = total;
    return TS_OK;
}

int spl_bundle_open(const uint8_t *buf, size_t len, const char *run_id, uint64_t window,
                    const uint8_t leader_pk[TS_PK_BYTES], const uint8_t config_hash[TS_HASH_BYTES], size_t max_wire,
                    spl_bundle_entry *entries, int max_entries, int *n_out, uint8_t base_hash[TS_HASH_BYTES],
                    uint8_t model_hash[TS_HASH_BYTES], spl_reject *why, ts_err *e) {
    spl_reject r0;
    if (!why) why = &r0;
    *why = SPL_R_NONE;
    *n_out = 0;
    if (!run_id || !leader_pk || !config_hash) return ts_fail(e, TS_EINVAL, "bundle: run, leader and config needed");
    if (len < 8) return spl_rej(why, e, SPL_R_TRUNCATED, "bundle of %zu bytes", len);
    if (memcmp(buf, SPL_BUNDLE_MAGIC, 8)) return spl_rej(why, e, SPL_R_MAGIC, "not a Tessera aggregate bundle");
    if (len < (size_t)B_END + TS_SIG_BYTES) return spl_rej(why, e, SPL_R_TRUNCATED, "bundle of %zu bytes", len);
    if (ts_get_u16(buf + B_VERSION) != SPL_BUNDLE_VERSION)
        return spl_rej(why, e, SPL_R_VERSION, "bundle version %u (this node reads version %d, which records the model hashes)",
                       ts_get_u16(buf + B_VERSION), SPL_BUNDLE_VERSION);
    int rc = spl_check_scheme(buf[B_SCHEME], "bundle ", why, e);
    if (rc) return rc;
    uint32_t n = ts_get_u32(buf + B_COUNT);
    if (n > (uint32_t)max_entries || n > SPL_MAX_PEERS)
        return spl_rej(why, e, SPL_R_OVERSIZED, "%u entries, at most %d accepted", n, max_entries);
    size_t fixed = B_END + (size_t)n * B_ENTRY + TS_SIG_BYTES;
    if (len < fixed) return spl_rej(why, e, SPL_R_TRUNCATED, "bundle shorter than its %u entries", n);
    size_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t l = ts_get_u64(buf + B_END + (size_t)i * B_ENTRY + 40);
        if (l > max_wire || l < (uint64_t)SPL_HEADER_BYTES + TS_SIG_BYTES)
            return spl_rej(why, e, l > max_wire ? SPL_R_OVERSIZED : SPL_R_SECTION_SIZE,
                           "entry %u declares %llu bytes", i, (unsigned long long)l);
        sum += (size_t)l;
        if (sum > len) return spl_rej(why, e, SPL_R_TRUNCATED, "entries pass the end of the bundle");
    }
    if (len - fixed < sum) return spl_rej(why, e, SPL_R_TRUNCATED, "bundle shorter than its entries");
    if (len - fixed > sum) return spl_rej(why, e, SPL_R_TRAILING, "bytes beyond the bundle's entries");
    uint8_t hash[TS_HASH_BYTES];
    ts_blake2b(hash, sizeof hash, buf, len - TS_SIG_BYTES);
    if (ts_verify(leader_pk, SPL_BUNDLE_TAG, hash, sizeof hash, buf + len - TS_SIG_BYTES, NULL))
        return spl_rej(why, e, SPL_R_SIGNATURE, "bundle signature does not verify under the leader's hotkey");
    if (ts_get_u16(buf + B_FLAGS) || buf[B_RSV0] || buf[B_RSV0 + 1] || ts_get_u32(buf + B_RSV1))
        return spl_rej(why, e, SPL_R_HEADER, "reserved bundle fields are not zero");
    unsigned rl = buf[B_RUNLEN];
    char run[SPL_MAX_RUN_ID + 1] = {0};
    if (rl < 1 || rl > SPL_MAX_RUN_ID) return spl_rej(why, e, SPL_R_HEADER, "run id length %u", rl);
    memcpy(run, buf + B_RUN, rl);
    for (unsigned i = rl; i < SPL_MAX_RUN_ID; i++)
        if (buf[B_RUN + i]) return spl_rej(why, e, SPL_R_HEADER, "run id padding is not zero");
    if (!spl_run_id_valid(run)) return spl_rej(why, e, SPL_R_HEADER, "invalid run id");
    if (memcmp(buf + B_LEADER, leader_pk, TS_PK_BYTES))
        return spl_rej(why, e, SPL_R_SIGNER, "the bundle names another leader");
    if (strcmp(run, run_id)) return spl_rej(why, e, SPL_R_RUN, "run '%s', expected '%s'", run, run_id);
    if (ts_get_u64(buf + B_WINDOW) != window)
        return spl_rej(why, e, SPL_R_WINDOW, "window %llu, expected %llu",
                       (unsigned long long)ts_get_u64(buf + B_WINDOW), (unsigned long long)window);
    if (memcmp(buf + B_CONFIG, config_hash, TS_HASH_BYTES))
        return spl_rej(why, e, SPL_R_CONFIG, "model config hash differs");
    const uint8_t *data = buf + B_END + (size_t)n * B_ENTRY;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *ent = buf + B_END + (size_t)i * B_ENTRY;
        if (ts_get_u32(ent + 4)) return spl_rej(why, e, SPL_R_HEADER, "entry %u: reserved field not zero", i);
        entries[i].uid = ts_get_u32(ent);
        if (i > 0 && entries[i].uid <= entries[i - 1].uid)
            return spl_rej(why, e, SPL_R_HEADER, "entries not in strictly ascending uid order");
        memcpy(entries[i].hotkey, ent + 8, TS_PK_BYTES);
        entries[i].len = (size_t)ts_get_u64(ent + 40);
        entries[i].wire = data;
        data += entries[i].len;
    }
    if (base_hash) memcpy(base_hash, buf + B_BASE, TS_HASH_BYTES);
    if (model_hash) memcpy(model_hash, buf + B_MODEL, TS_HASH_BYTES);
    *n_out = (int)n;
    return TS_OK;
}
