/* config.c - one option table drives JSON config, environment and flags.
 *
 * Precedence, lowest first: the option's default, the JSON config file
 * (--config), TESSERA_* environment variables, command-line flags.  Every
 * unknown key and every value of the wrong type is an error naming the key,
 * so a typo in a config file never silently falls back to a default.  A
 * numeric option may have a range (ts_opt_range, in the ts_cmdline): every
 * value, whatever its source, goes through check_value, which names the
 * option as the user gave it (flag, environment variable or config key). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common.h"

static void flag_name(char *out, size_t cap, const char *name) {
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++) out[i] = (name[i] == '.' || name[i] == '_') ? '-' : name[i];
    out[i] = 0;
}

static void env_name(char *out, size_t cap, const char *name) {
    int n = snprintf(out, cap, "TESSERA_");
    size_t i = (size_t)n;
    for (; *name && i + 1 < cap; name++, i++)
        out[i] = (*name == '.' || *name == '-') ? '_' : (char)toupper((unsigned char)*name);
    out[i] = 0;
}

static const char *type_word(ts_opt_type t) {
    switch (t) {
    case TS_OPT_STR: return "STR";
    case TS_OPT_INT: return "INT";
    case TS_OPT_F64: return "NUM";
    case TS_OPT_BOOL: return "";
    }
    return "";
}

static int parse_bool(const char *s, bool *out) {
    if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")) {
        *out = true;
        return 0;
    }
    if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off")) {
        *out = false;
        return 0;
    }
    return -1;
}

/* A number as text that reads back as the same double ("inf" for none). */
static void fmt_num(char *out, size_t cap, double v) {
    if (isinf(v)) {
        snprintf(out, cap, "%sinf", v < 0 ? "-" : "");
        return;
    }
    snprintf(out, cap, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, cap, "%.17g", v);
}

/* "[0, 1024]", "(0, 3600]", "[0, inf)" */
static void fmt_range(char *out, size_t cap, const ts_opt_range *r) {
    char lo[40], hi[40];
    fmt_num(lo, sizeof lo, r->min);
    fmt_num(hi, sizeof hi, r->max);
    snprintf(out, cap, "%c%s, %s%c", (r->flags & TS_RANGE_MIN_OPEN) || isinf(r->min) ? '(' : '[', lo, hi,
             isinf(r->max) ? ')' : ']');
}

static const ts_opt_range *range_of(const ts_cmdline *c, const ts_opt *o) {
    if (!c || (o->type != TS_OPT_INT && o->type != TS_OPT_F64)) return NULL;
    for (int i = 0; i < c->nranges; i++)
        if (!strcmp(c->ranges[i].name, o->name)) return &c->ranges[i];
    return NULL;
}

/* The one check of an option's value against its range, after every source
 * that sets it; `who` names the option as it was given. */
static int check_value(const ts_cmdline *c, const ts_opt *o, const char *who, ts_err *e) {
    const ts_opt_range *r = range_of(c, o);
    if (!r) return TS_OK;
    double v;
    char val[48];
    if (o->type == TS_OPT_INT) {
        int64_t iv = *(const int64_t *)o->dst;
        v = (double)iv;
        snprintf(val, sizeof val, "%lld", (long long)iv);
    } else {
        v = *(const double *)o->dst;
        fmt_num(val, sizeof val, v);
    }
    /* written so that NaN is outside every range */
    bool in = v <= r->max && ((r->flags & TS_RANGE_MIN_OPEN) ? v > r->min : v >= r->min);
    if (in) return TS_OK;
    char rng[96];
    fmt_range(rng, sizeof rng, r);
    return ts_fail(e, TS_ECONFIG, "%s: %s is outside %s", who, val, rng);
}

/* Every range names a numeric option of the table and has sane bounds. */
static int check_ranges(const ts_cmdline *c, ts_err *e) {
    for (int i = 0; i < c->nranges; i++) {
        const ts_opt_range *r = &c->ranges[i];
        const ts_opt *o = NULL;
        for (int k = 0; r->name && k < c->nopts; k++)
            if (!strcmp(c->opts[k].name, r->name)) o = &c->opts[k];
        if (!o || (o->type != TS_OPT_INT && o->type != TS_OPT_F64) || isnan(r->min) || isnan(r->max) ||
            r->min > r->max)
            return ts_fail(e, TS_EINVAL, "%s: option table: bad range for '%s'", c->prog,
                           r->name ? r->name : "(null)");
    }
    return TS_OK;
}

/* Sets an option from text; `src` names where the text came from. */
static int set_text(const ts_opt *o, const char *text, const char *src, ts_err *e) {
    switch (o->type) {
    case TS_OPT_STR: {
        char **d = (char **)o->dst;
        char *copy = strdup(text);
        if (!copy) return ts_fail(e, TS_ENOMEM, "out of memory");
        free(*d);
        *d = copy;
        return TS_OK;
    }
    case TS_OPT_INT: {
        int64_t v;
        if (ts_parse_i64(text, &v))
            return ts_fail(e, TS_ECONFIG, "%s '%s': expected an integer, got '%s'", src, o->name,
                           text);
        *(int64_t *)o->dst = v;
        return TS_OK;
    }
    case TS_OPT_F64: {
        double v;
        if (ts_parse_f64(text, &v))
            return ts_fail(e, TS_ECONFIG, "%s '%s': expected a number, got '%s'", src, o->name,
                           text);
        *(double *)o->dst = v;
        return TS_OK;
    }
    case TS_OPT_BOOL: {
        bool v;
        if (parse_bool(text, &v))
            return ts_fail(e, TS_ECONFIG, "%s '%s': expected true or false, got '%s'", src,
                           o->name, text);
        *(bool *)o->dst = v;
        return TS_OK;
    }
    }
    return ts_fail(e, TS_EINVAL, "option '%s' has no type", o->name);
}

/* Records that option o was given (not left at its default). */
static void mark_given(const ts_cmdline *c, const ts_opt *o) {
    if (c && c->given && o >= c->opts && o < c->opts + c->nopts) c->given[o - c->opts] = true;
}

static int set_json(const ts_cmdline *c, const ts_opt *o, const cJSON *v, ts_err *e) {
    mark_given(c, o);
    char who[300];
    snprintf(who, sizeof who, "config key '%s'", o->name);
    switch (o->type) {
    case TS_OPT_STR:
        if (!cJSON_IsString(v))
            return ts_fail(e, TS_ECONFIG, "config key '%s': expected a string", o->name);
        return set_text(o, v->valuestring, "config key", e);
    case TS_OPT_INT: {
        double d = v->valuedouble;
        /* the range test comes first: casting a double outside int64 is undefined */
        if (!cJSON_IsNumber(v) || !(d <= 9.0e15 && d >= -9.0e15) || d != (double)(int64_t)d)
            return ts_fail(e, TS_ECONFIG, "config key '%s': expected an integer", o->name);
        *(int64_t *)o->dst = (int64_t)d;
        return check_value(c, o, who, e);
    }
    case TS_OPT_F64:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return ts_fail(e, TS_ECONFIG, "config key '%s': expected a %snumber", o->name,
                           cJSON_IsNumber(v) ? "finite " : "");
        *(double *)o->dst = v->valuedouble;
        return check_value(c, o, who, e);
    case TS_OPT_BOOL:
        if (!cJSON_IsBool(v))
            return ts_fail(e, TS_ECONFIG, "config key '%s': expected true or false", o->name);
        *(bool *)o->dst = cJSON_IsTrue(v);
        return TS_OK;
    }
    return ts_fail(e, TS_EINVAL, "option '%s' has no type", o->name);
}

/* Walks a JSON object; `prefix` is the dotted path so far. */
static int apply_obj(const ts_cmdline *c, const ts_opt *opts, int n, const cJSON *obj, const char *prefix,
                     ts_err *e) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", it->string);
        const ts_opt *hit = NULL;
        bool is_group = false;
        size_t klen = strlen(key);
        for (int i = 0; i < n; i++) {
            if (!strcmp(opts[i].name, key)) hit = &opts[i];
            else if (!strncmp(opts[i].name, key, klen) && opts[i].name[klen] == '.') is_group = true;
        }
        if (hit) {
            if (set_json(c, hit, it, e)) return e ? e->code : TS_ECONFIG;
        } else if (is_group && cJSON_IsObject(it)) {
            if (apply_obj(c, opts, n, it, key, e)) return e ? e->code : TS_ECONFIG;
        } else if (is_group) {
            return ts_fail(e, TS_ECONFIG, "config key '%s': expected an object", key);
        } else {
            return ts_fail(e, TS_ECONFIG, "unknown config key '%s'", key);
        }
    }
    return TS_OK;
}

/* c: the command line whose ranges apply (NULL: none) */
static int apply_json(const ts_cmdline *c, const ts_opt *opts, int n, const cJSON *root, ts_err *e) {
    if (!cJSON_IsObject(root)) return ts_fail(e, TS_ECONFIG, "config must be a JSON object");
    return apply_obj(c, opts, n, root, "", e);
}

int ts_opts_apply_json(const ts_opt *opts, int n, const void *json, ts_err *e) {
    return apply_json(NULL, opts, n, json, e);
}

void ts_opts_free(const ts_opt *opts, int n) {
    for (int i = 0; i < n; i++)
        if (opts[i].type == TS_OPT_STR) {
            char **d = (char **)opts[i].dst;
            free(*d);
            *d = NULL;
        }
}

void ts_cmdline_help(const ts_cmdline *c, void *fpv) {
    FILE *fp = fpv;
    fprintf(fp, "usage: %s %s\n", c->prog, c->usage ? c->usage : "[options]");
    if (c->summary) fprintf(fp, "\n%s\n", c->summary);
    fprintf(fp, "\noptions:\n");
    for (int i = 0; i < c->nopts; i++) {
        const ts_opt *o = &c->opts[i];
        char fl[128], left[200];
        flag_name(fl, sizeof fl, o->name);
        if (o->short_flag)
            snprintf(left, sizeof left, "-%c, --%s %s", o->short_flag, fl, type_word(o->type));
        else
            snprintf(left, sizeof left, "--%s %s", fl, type_word(o->type));
        fprintf(fp, "  %-30s %s", left, o->help ? o->help : "");
        const ts_opt_range *r = range_of(c, o);
        if (r) {
            char rng[96];
            fmt_range(rng, sizeof rng, r);
            fprintf(fp, " in %s", rng);
        }
        if (o->flags & TS_OPT_REQUIRED) fprintf(fp, " (required)");
        else if (o->def && !(o->flags & TS_OPT_SECRET)) fprintf(fp, " [default: %s]", o->def);
        if (c->env && !(o->flags & TS_OPT_NOENV)) {
            char en[160];
            env_name(en, sizeof en, o->name);
            fprintf(fp, " {env %s}", en);
        }
        fputc('\n', fp);
    }
    if (c->config_file) fprintf(fp, "  %-30s %s\n", "--config FILE", "JSON config file (flags and environment override it)");
    fprintf(fp, "  %-30s %s\n", "-h, --help", "show this help");
}

static const ts_opt *find_flag(const ts_cmdline *c, const char *flag, bool *negated) {
    char fl[160];
    *negated = false;
    for (int i = 0; i < c->nopts; i++) {
        flag_name(fl, sizeof fl, c->opts[i].name);
        if (!strcmp(fl, flag)) return &c->opts[i];
        if (c->opts[i].type == TS_OPT_BOOL && !strncmp(flag, "no-", 3) && !strcmp(fl, flag + 3)) {
            *negated = true;
            return &c->opts[i];
        }
    }
    return NULL;
}

int ts_cmdline_parse(const ts_cmdline *c, int argc, char **argv, char ***pos, int *npos,
                     bool *help_shown, ts_err *e) {
    *help_shown = false;
    if (pos) *pos = NULL;
    if (npos) *npos = 0;
    if (check_ranges(c, e)) return e ? e->code : TS_EINVAL;
    /* 1. defaults */
    for (int i = 0; i < c->nopts; i++) {
        const ts_opt *o = &c->opts[i];
        if (o->type == TS_OPT_STR) *(char **)o->dst = NULL;
        else if (o->type == TS_OPT_INT) *(int64_t *)o->dst = 0;
        else if (o->type == TS_OPT_F64) *(double *)o->dst = 0;
        else *(bool *)o->dst = false;
        if (c->given) c->given[i] = false;
        if (o->def && set_text(o, o->def, "default for", e)) return e ? e->code : TS_ECONFIG;
        char who[300];
        snprintf(who, sizeof who, "default of '%s'", o->name);
        /* a default outside its range is a bug in the table; NULL defaults are 0 */
        if (o->def && check_value(c, o, who, e)) return e ? e->code : TS_EINVAL;
    }
    /* --help anywhere wins; find --config before anything else. */
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            ts_cmdline_help(c, stdout);
            *help_shown = true;
            return TS_OK;
        }
        if (c->config_file && !strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) return ts_fail(e, TS_EINVAL, "--config needs a file");
            config_path = argv[++i];
        } else if (c->config_file && !strncmp(argv[i], "--config=", 9)) {
            config_path = argv[i] + 9;
        }
    }
    if (!config_path && c->config_file && c->env) config_path = getenv("TESSERA_CONFIG");
    /* 2. config file */
    if (config_path) {
        uint8_t *buf;
        size_t len;
        if (ts_read_file(config_path, 16u << 20, &buf, &len, e))
            return ts_wrap(e, "config file");
        cJSON *root = cJSON_ParseWithLength((const char *)buf, len);
        free(buf);
        if (!root) return ts_fail(e, TS_ECONFIG, "config file %s: not valid JSON", config_path);
        int rc = apply_json(c, c->opts, c->nopts, root, e);
        cJSON_Delete(root);
        if (rc) return ts_wrap(e, "%s", config_path);
    }
    /* 3. environment */
    if (c->env) {
        for (int i = 0; i < c->nopts; i++) {
            const ts_opt *o = &c->opts[i];
            if (o->flags & TS_OPT_NOENV) continue;
            char en[160];
            env_name(en, sizeof en, o->name);
            const char *v = getenv(en);
            if (v && set_text(o, v, "environment variable for", e)) return ts_wrap(e, "%s", en);
            if (v) mark_given(c, o);
            if (v && check_value(c, o, en, e)) return e ? e->code : TS_ECONFIG;
        }
    }
    /* 4. flags */
    char **p = calloc((size_t)argc + 1, sizeof *p);
    if (!p) return ts_fail(e, TS_ENOMEM, "out of memory");
    int np = 0;
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || !strcmp(a, "-")) {
            p[np++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = true;
            continue;
        }
        if (c->config_file && (!strcmp(a, "--config"))) {
            i++;
            continue;
        }
        if (c->config_file && !strncmp(a, "--config=", 9)) continue;
        const ts_opt *o = NULL;
        bool neg = false;
        const char *val = NULL;
        char flag[160];
        if (a[1] != '-') {
            if (a[2] != 0) goto unknown;
            for (int k = 0; k < c->nopts; k++)
                if (c->opts[k].short_flag == a[1]) o = &c->opts[k];
        } else {
            snprintf(flag, sizeof flag, "%s", a + 2);
            char *eq = strchr(flag, '=');
            if (eq) {
                *eq = 0;
                val = a + 2 + (eq - flag) + 1;
            }
            o = find_flag(c, flag, &neg);
        }
        if (!o) goto unknown;
        if (o->type == TS_OPT_BOOL && !val) {
            *(bool *)o->dst = !neg;
            mark_given(c, o);
            continue;
        }
        if (neg) goto unknown;
        if (!val) {
            if (i + 1 >= argc) {
                free(p);
                return ts_fail(e, TS_EINVAL, "%s needs a value", a);
            }
            val = argv[++i];
        }
        if (set_text(o, val, "flag for", e)) {
            free(p);
            return e ? e->code : TS_EINVAL;
        }
        mark_given(c, o);
        /* the flag as given: "-b", "--batch" (without "=value") */
        char who[170];
        if (a[1] != '-') snprintf(who, sizeof who, "%s", a);
        else snprintf(who, sizeof who, "--%s", flag);
        if (check_value(c, o, who, e)) {
            free(p);
            return e ? e->code : TS_ECONFIG;
        }
        continue;
    unknown:
        free(p);
        return ts_fail(e, TS_EINVAL, "unknown option '%s' (see %s --help)", a, c->prog);
    }
    /* required and positional checks */
    for (int i = 0; i < c->nopts; i++) {
        const ts_opt *o = &c->opts[i];
        if ((o->flags & TS_OPT_REQUIRED) && o->type == TS_OPT_STR && !*(char **)o->dst) {
            char fl[160];
            flag_name(fl, sizeof fl, o->name);
            free(p);
            return ts_fail(e, TS_EINVAL, "--%s is required (see %s --help)", fl, c->prog);
        }
    }
    if (np < c->min_pos || (c->max_pos >= 0 && np > c->max_pos)) {
        int rc;
        if (np < c->min_pos)
            rc = ts_fail(e, TS_EINVAL, "missing argument; usage: %s %s", c->prog,
                         c->usage ? c->usage : "");
        else
            rc = ts_fail(e, TS_EINVAL, "unexpected argument '%s'; usage: %s %s", p[c->max_pos],
                         c->prog, c->usage ? c->usage : "");
        free(p);
        return rc;
    }
    if (pos) *pos = p;
    else free(p);
    if (npos) *npos = np;
    return TS_OK;
}
