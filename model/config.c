/* config.c - the model configuration: presets, Hugging Face LlamaConfig JSON
 * in and out, validation, the canonical hash. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "model.h"

#define MAX_CONFIG_BYTES (1u << 20)

typedef struct preset {
    const char *name;
    int vocab, hidden, inter, layers, heads, kv_heads, max_pos;
    bool tied;
} preset;

static const preset presets[] = {
    {"tiny", 257, 64, 128, 2, 4, 2, 256, true},
    {"small", 257, 256, 768, 6, 4, 2, 1024, false},
    {"124m", 50304, 768, 2048, 12, 12, 12, 1024, true},
    {"150m", 32000, 1024, 2688, 12, 16, 16, 2048, false},
    {"1b", 32000, 2048, 8192, 16, 8, 8, 2048, false},
};
#define NPRESETS (int)(sizeof presets / sizeof presets[0])

const char *model_preset_names(void) { return "tiny small 124m 150m 1b"; }

int model_preset(const char *name, int vocab_size, model_config *cfg, ts_err *e) {
    for (int i = 0; i < NPRESETS; i++) {
        const preset *p = &presets[i];
        if (strcmp(name, p->name)) continue;
        *cfg = (model_config){
            .vocab_size = vocab_size > 0 ? vocab_size : p->vocab,
            .hidden_size = p->hidden,
            .intermediate_size = p->inter,
            .num_hidden_layers = p->layers,
            .num_attention_heads = p->heads,
            .num_key_value_heads = p->kv_heads,
            .head_dim = p->hidden / p->heads,
            .max_position_embeddings = p->max_pos,
            .rms_norm_eps = 1e-6,
            .rope_theta = 10000.0,
            .tie_word_embeddings = p->tied,
        };
        if (vocab_size < 0) return ts_fail(e, TS_EINVAL, "vocabulary size %d is negative", vocab_size);
        return model_config_validate(cfg, e);
    }
    return ts_fail(e, TS_EINVAL, "unknown model preset '%s' (presets: %s)", name, model_preset_names());
}

int64_t model_config_num_params(const model_config *c) {
    int64_t C = c->hidden_size, V = c->vocab_size, F = c->intermediate_size, L = c->num_hidden_layers;
    int64_t Q = (int64_t)c->num_attention_heads * c->head_dim;
    int64_t KV = (int64_t)c->num_key_value_heads * c->head_dim;
    int64_t per_layer = Q * C + 2 * KV * C + C * Q + 3 * F * C + 2 * C;
    if (per_layer <= 0 || per_layer > INT64_MAX / 4 / (L > 0 ? L : 1)) return -1;
    int64_t n = V * C + L * per_layer + C + (c->tie_word_embeddings ? 0 : V * C);
    return n > 0 ? n : -1;
}

#define CHECK_RANGE(field, lo, hi)                                                              \
    do {                                                                                        \
        if (cfg->field < (lo) || cfg->field > (hi))                                             \
            return ts_fail(e, TS_EINVAL, "model config: %s = %d is out of range [%d, %d]",      \
                           #field, cfg->field, (int)(lo), (int)(hi));                           \
    } while (0)

int model_config_validate(const model_config *cfg, ts_err *e) {
    CHECK_RANGE(vocab_size, 1, 1 << 24);
    CHECK_RANGE(hidden_size, 1, 1 << 16);
    CHECK_RANGE(intermediate_size, 1, 1 << 20);
    CHECK_RANGE(num_hidden_layers, 1, 1024);
    CHECK_RANGE(num_attention_heads, 1, 1024);
    CHECK_RANGE(num_key_value_heads, 1, 1024);
    CHECK_RANGE(head_dim, 2, 1024);
    CHECK_RANGE(max_position_embeddings, 1, 1 << 20);
    if (cfg->num_attention_heads % cfg->num_key_value_heads)
        return ts_fail(e, TS_EINVAL,
                       "model config: num_attention_heads = %d is not a multiple of "
                       "num_key_value_heads = %d",
                       cfg->num_attention_heads, cfg->num_key_value_heads);
    if (cfg->head_dim % 2)
        return ts_fail(e, TS_EINVAL, "model config: head_dim = %d must be even for rotary embeddings",
                       cfg->head_dim);
    if ((int64_t)cfg->num_attention_heads * cfg->head_dim > (1 << 20))
        return ts_fail(e, TS_EINVAL, "model config: num_attention_heads * head_dim is too large");
    if (!(cfg->rms_norm_eps > 0 && cfg->rms_norm_eps < 1))
        return ts_fail(e, TS_EINVAL, "model config: rms_norm_eps = %g must lie in (0, 1)", cfg->rms_norm_eps);
    if (!(cfg->rope_theta > 1 && cfg->rope_theta < 1e12))
        return ts_fail(e, TS_EINVAL, "model config: rope_theta = %g must lie in (1, 1e12)", cfg->rope_theta);
    int64_t n = model_config_num_params(cfg);
    if (n < 0 || n > ((int64_t)1 << 36))
        return ts_fail(e, TS_EINVAL, "model config: the parameter count is too large");
    return TS_OK;
}

bool model_config_equal(const model_config *a, const model_config *b) {
    return a->vocab_size == b->vocab_size && a->hidden_size == b->hidden_size &&
           a->intermediate_size == b->intermediate_size &&
           a->num_hidden_layers == b->num_hidden_layers &&
           a->num_attention_heads == b->num_attention_heads &&
           a->num_key_value_heads == b->num_key_value_heads && a->head_dim == b->head_dim &&
           a->max_position_embeddings == b->max_position_embeddings &&
           a->rms_norm_eps == b->rms_norm_eps && a->rope_theta == b->rope_theta &&
           a->tie_word_embeddings == b->tie_word_embeddings;
}

/* Canonical encoding (docs/FORMATS.md section 6): the tag, a zero byte, the
 * eight integers as u32 LE, the two reals as IEEE binary64 LE, the tie flag. */
void model_config_hash(const model_config *c, uint8_t out[TS_HASH_BYTES]) {
    static const char tag[] = "tessera-model-config-v1";
    uint8_t buf[sizeof tag + 8 * 4 + 2 * 8 + 1];
    size_t at = 0;
    memcpy(buf, tag, sizeof tag); /* includes the terminating zero */
    at = sizeof tag;
    const int ints[8] = {c->vocab_size, c->hidden_size, c->intermediate_size, c->num_hidden_layers,
                         c->num_attention_heads, c->num_key_value_heads, c->head_dim,
                         c->max_position_embeddings};
    for (int i = 0; i < 8; i++, at += 4) ts_put_u32(buf + at, (uint32_t)ints[i]);
    const double reals[2] = {c->rms_norm_eps, c->rope_theta};
    for (int i = 0; i < 2; i++, at += 8) {
        uint64_t u;
        memcpy(&u, &reals[i], 8);
        ts_put_u64(buf + at, u);
    }
    buf[at++] = c->tie_word_embeddings ? 1 : 0;
    ts_blake2b(out, TS_HASH_BYTES, buf, at);
}

void model_config_describe(const model_config *c, char *out, size_t cap) {
    int64_t n = model_config_num_params(c);
    snprintf(out, cap,
             "%d layers, width %d, %d heads (%d KV, head dim %d), FFN %d, vocab %d, %s, "
             "%.2fM parameters",
             c->num_hidden_layers, c->hidden_size, c->num_attention_heads, c->num_key_value_heads,
             c->head_dim, c->intermediate_size, c->vocab_size,
             c->tie_word_embeddings ? "tied embeddings" : "untied embeddings", (double)n / 1e6);
}

/* ------------------------------------------------------------------ JSON */

static int get_int(const cJSON *root, const char *key, bool required, int def, int *out, ts_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return ts_fail(e, TS_EINVAL, "model config: '%s' is missing", key);
        *out = def;
        return TS_OK;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < -2147483648.0 || d > 2147483647.0)
        return ts_fail(e, TS_EINVAL, "model config: '%s' must be an integer", key);
    *out = (int)d;
    return TS_OK;
}

static int get_real(const cJSON *root, const char *key, double def, double *out, ts_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return TS_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return ts_fail(e, TS_EINVAL, "model config: '%s' must be a finite number", key);
    *out = v->valuedouble;
    return TS_OK;
}

static int get_bool(const cJSON *root, const char *key, bool def, bool *out, ts_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return TS_OK;
    }
    if (!cJSON_IsBool(v)) return ts_fail(e, TS_EINVAL, "model config: '%s' must be true or false", key);
    *out = cJSON_IsTrue(v);
    return TS_OK;
}

int model_config_parse(const char *json, size_t len, model_config *cfg, ts_err *e) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ts_fail(e, TS_EFORMAT, "model config: not a JSON object");
    }
    model_config c = {0};
    int rc = TS_OK;
    /* settings this implementation does not have: refuse rather than ignore */
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (v && (!cJSON_IsString(v) || strcmp(v->valuestring, "llama"))) {
        rc = ts_fail(e, TS_EUNSUPPORTED, "model config: model_type must be \"llama\"");
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (v && (!cJSON_IsString(v) || strcmp(v->valuestring, "silu"))) {
        rc = ts_fail(e, TS_EUNSUPPORTED, "model config: hidden_act must be \"silu\" (SwiGLU)");
        goto out;
    }
    static const char *const no_bias[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++) {
        v = cJSON_GetObjectItemCaseSensitive(root, no_bias[i]);
        if (v && !cJSON_IsFalse(v)) {
            rc = ts_fail(e, TS_EUNSUPPORTED, "model config: %s is not supported (no biases)", no_bias[i]);
            goto out;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (v && !cJSON_IsNull(v)) {
        rc = ts_fail(e, TS_EUNSUPPORTED, "model config: rope_scaling is not supported");
        goto out;
    }
    if ((rc = get_int(root, "vocab_size", true, 0, &c.vocab_size, e)) ||
        (rc = get_int(root, "hidden_size", true, 0, &c.hidden_size, e)) ||
        (rc = get_int(root, "intermediate_size", true, 0, &c.intermediate_size, e)) ||
        (rc = get_int(root, "num_hidden_layers", true, 0, &c.num_hidden_layers, e)) ||
        (rc = get_int(root, "num_attention_heads", true, 0, &c.num_attention_heads, e)) ||
        (rc = get_int(root, "num_key_value_heads", false, c.num_attention_heads,
                      &c.num_key_value_heads, e)) ||
        (rc = get_int(root, "max_position_embeddings", false, 2048, &c.max_position_embeddings, e)) ||
        (rc = get_real(root, "rms_norm_eps", 1e-6, &c.rms_norm_eps, e)) ||
        (rc = get_real(root, "rope_theta", 10000.0, &c.rope_theta, e)) ||
        (rc = get_bool(root, "tie_word_embeddings", false, &c.tie_word_embeddings, e)))
        goto out;
    if (c.num_attention_heads <= 0) {
        rc = ts_fail(e, TS_EINVAL, "model config: num_attention_heads = %d must be positive",
                     c.num_attention_heads);
        goto out;
    }
    if (c.hidden_size % c.num_attention_heads &&
        !cJSON_GetObjectItemCaseSensitive(root, "head_dim")) {
        rc = ts_fail(e, TS_EINVAL,
                     "model config: hidden_size = %d is not a multiple of num_attention_heads = %d "
                     "(and no head_dim is given)",
                     c.hidden_size, c.num_attention_heads);
        goto out;
    }
    if ((rc = get_int(root, "head_dim", false, c.hidden_size / c.num_attention_heads, &c.head_dim, e)))
        goto out;
    rc = model_config_validate(&c, e);
out:
    cJSON_Delete(root);
    if (rc == TS_OK) *cfg = c;
    return rc;
}

int model_config_load(const char *path, model_config *cfg, ts_err *e) {
    struct stat st;
    char *file = NULL;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        file = ts_path_join(path, "config.json");
        if (!file) return ts_fail(e, TS_ENOMEM, "out of memory");
    }
    const char *f = file ? file : path;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = ts_read_file(f, MAX_CONFIG_BYTES, &buf, &len, e);
    if (rc == TS_OK) {
        rc = model_config_parse((const char *)buf, len, cfg, e);
        if (rc) ts_wrap(e, "%s", f);
    }
    free(buf);
    free(file);
    return rc;
}

char *model_config_to_json(const model_config *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    if (arch) cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", "llama");
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->num_hidden_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->num_attention_heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->num_key_value_heads);
    /* older transformers releases do not read head_dim: write it only when
     * it differs from the default they assume */
    if (c->head_dim * c->num_attention_heads != c->hidden_size)
        cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(o, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddBoolToObject(o, "attention_bias", 0);
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
    cJSON_AddBoolToObject(o, "mlp_bias", 0);
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    cJSON_AddNullToObject(o, "rope_scaling");
    cJSON_AddNumberToObject(o, "pretraining_tp", 1);
    cJSON_AddBoolToObject(o, "use_cache", 1);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) return NULL;
    size_t n = strlen(s);
    char *t = malloc(n + 2);
    if (t) {
        memcpy(t, s, n);
        t[n] = '\n';
        t[n + 1] = 0;
    }
    cJSON_free(s);
    return t;
}

int model_config_save(const model_config *c, const char *path, ts_err *e) {
    char *s = model_config_to_json(c);
    if (!s) return ts_fail(e, TS_ENOMEM, "out of memory");
    int rc = ts_write_atomic(path, s, strlen(s), e);
    free(s);
    return rc;
}
