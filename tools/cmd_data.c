/* cmd_data.c - tessera data prep | synth | inspect | pages. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "data/data.h"
#include "tools.h"

#define NOPTS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void fmt_count(char *out, size_t cap, uint64_t v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    size_t k = 0;
    for (int i = 0; i < n && k + 1 < cap; i++) {
        if (i && (n - i) % 3 == 0 && k + 2 < cap) out[k++] = ',';
        out[k++] = tmp[i];
    }
    out[k] = 0;
}

/* [0, 1) in data_prep; a range's bounds are inclusive */
#define DATA_MAX_VAL_FRACTION 0.999

static int bad_arg(const char *prog, const char *msg) {
    fprintf(stderr, "%s: %s\n", prog, msg);
    return 2;
}

/* ------------------------------------------------------------------ prep */

static int cmd_prep(int argc, char **argv) {
    char *in = NULL, *out = NULL, *sep = NULL, *tok = NULL, *eot = NULL, *field = NULL;
    int64_t shard_tokens = 0, threads = 0;
    double val = 0;
    bool force = false, quiet = false;
    const ts_opt opts[] = {
        {"in", TS_OPT_STR, &in, NULL, "a text file or directory (more may follow as arguments)", 0, 'i'},
        {"out", TS_OPT_STR, &out, NULL, "output directory (train/, val/, prep.json)", TS_OPT_REQUIRED, 'o'},
        {"shard-tokens", TS_OPT_INT, &shard_tokens, "100000000", "tokens per shard", 0, 0},
        {"val-fraction", TS_OPT_F64, &val, "0", "share of documents held out in val/ (by content hash)", 0, 0},
        {"doc-sep", TS_OPT_STR, &sep, NULL,
         "a line equal to this ends a document ('%' for fortune files, '' for blank lines); default: one document per file", 0, 0},
        {"tokenizer", TS_OPT_STR, &tok, "byte",
         "byte (bytes 0-255, end-of-document 256) or a Hugging Face tokenizer.json (BPE: GPT-2, Llama 3, Llama 2, Gemma)", 0, 't'},
        {"eot", TS_OPT_STR, &eot, NULL,
         "the end-of-document token's text (default: the first of <|endoftext|>, <|end_of_text|>, </s>, <eos>, <|end|> the tokenizer has)", 0, 0},
        {"jsonl-field", TS_OPT_STR, &field, NULL,
         "the inputs are JSON Lines: each line's string field of this name is a document (e.g. text)", 0, 0},
        {"threads", TS_OPT_INT, &threads, "0", "encoding threads (0: all cores); the shards are the same for any count", 0, 'j'},
        {"force", TS_OPT_BOOL, &force, "false", "replace the shards of an earlier run in --out", 0, 0},
        {"quiet", TS_OPT_BOOL, &quiet, "false", "no progress line", 0, 'q'},
    };
    /* --val-fraction: data_prep checks [0, 1) itself (t_data_cli expects its message) */
    const ts_opt_range ranges[] = {
        {"shard-tokens", 2, DATA_MAX_SHARD_TOKENS, 0},
        {"threads", 0, 1024, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera data prep",
        .usage = "--in TEXT_FILE_OR_DIR [MORE...] --out DIR [--tokenizer tokenizer.json] [--jsonl-field text]\n"
                 "       [--shard-tokens N] [--val-fraction F] [--doc-sep LINE] [--threads N]",
        .summary = "Turns text into token shards: OUT/train/train_NNNNNN.bin and OUT/val/val_NNNNNN.bin.\n"
                   "Directories are walked recursively in name order (no symbolic links, no hidden\n"
                   "entries); files whose first 8 KiB hold a NUL byte are skipped as binary.  Each\n"
                   "document is followed by the end-of-document token.  A special token's text\n"
                   "inside a document (\"<|endoftext|>\") is encoded as plain text.",
        .opts = opts,
        .nopts = NOPTS(opts),
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
        .max_pos = -1,
    };
    char **pos = NULL;
    int npos = 0;
    int rc = tool_parse(&c, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const char **inputs = calloc((size_t)npos + 1, sizeof *inputs);
    int nin = 0;
    if (in) inputs[nin++] = in;
    for (int i = 0; i < npos; i++) inputs[nin++] = pos[i];
    ts_err e = {0};
    if (nin == 0) rc = bad_arg(c.prog, "no input given (--in FILE_OR_DIR)");
    else if (shard_tokens < 2 || shard_tokens > DATA_MAX_SHARD_TOKENS)
        rc = bad_arg(c.prog, "--shard-tokens must be in 2..2147483647");
    if (!rc) {
        data_prep_opts o = {
            .inputs = inputs, .ninputs = nin, .out_dir = out, .tokenizer = tok, .eot = eot,
            .jsonl_field = field, .threads = (int)threads,
            .shard_tokens = (uint64_t)shard_tokens, .val_fraction = val, .doc_sep = sep,
            .force = force, .progress = !quiet,
        };
        data_prep_stats st;
        rc = data_prep(&o, &st, &e);
        if (rc) {
            rc = tool_error(&e);
        } else {
            char a[32], b[32], d[32], t[32], s2[32];
            fmt_count(a, sizeof a, st.files);
            ts_fmt_bytes(b, sizeof b, (double)st.bytes_in);
            printf("read       %s files (%s)", a, b);
            if (st.skipped_binary) printf(", skipped %llu binary", (unsigned long long)st.skipped_binary);
            printf("\n");
            const char *nm[2] = {"train", "val"};
            for (int k = 0; k < 2; k++) {
                fmt_count(d, sizeof d, st.docs[k]);
                fmt_count(t, sizeof t, st.tokens[k]);
                snprintf(s2, sizeof s2, "%d shard%s", st.shards[k], st.shards[k] == 1 ? "" : "s");
                printf("%-10s %s documents, %s tokens, %s in %s/%s/\n", nm[k], d, t, s2, out, nm[k]);
            }
            fmt_count(d, sizeof d, st.docs[0] + st.docs[1]);
            fmt_count(t, sizeof t, st.tokens[0] + st.tokens[1]);
            char dur[32];
            ts_fmt_duration(dur, sizeof dur, st.seconds);
            int ns = st.shards[0] + st.shards[1];
            printf("total      %s documents, %s tokens, %d shard%s (%s)\n", d, t, ns, ns == 1 ? "" : "s",
                   dur);
        }
    }
    free(inputs);
    free(pos);
    ts_opts_free(opts, NOPTS(opts));
    return rc;
}

/* ----------------------------------------------------------------- synth */

static int cmd_synth(int argc, char **argv) {
    char *out = NULL;
    int64_t tokens = 0, seed = 0, shard_tokens = 0;
    double val = 0;
    bool force = false, quiet = false;
    const ts_opt opts[] = {
        {"out", TS_OPT_STR, &out, NULL, "output directory (train/, val/, synth.json)", TS_OPT_REQUIRED, 'o'},
        {"tokens", TS_OPT_INT, &tokens, "1000000", "total tokens (train + val)", 0, 'n'},
        {"seed", TS_OPT_INT, &seed, "0", "generator seed (>= 0)", 0, 0},
        {"shard-tokens", TS_OPT_INT, &shard_tokens, "100000000", "tokens per shard", 0, 0},
        {"val-fraction", TS_OPT_F64, &val, "0", "share of documents held out in val/", 0, 0},
        {"force", TS_OPT_BOOL, &force, "false", "replace an earlier corpus in --out", 0, 0},
        {"quiet", TS_OPT_BOOL, &quiet, "false", "no progress line", 0, 'q'},
    };
    const ts_opt_range ranges[] = {
        {"tokens", 2, INFINITY, 0},
        {"seed", 0, INFINITY, 0},
        {"shard-tokens", 2, DATA_MAX_SHARD_TOKENS, 0},
        {"val-fraction", 0, DATA_MAX_VAL_FRACTION, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera data synth",
        .usage = "--out DIR --tokens N --seed S [--val-fraction F]",
        .summary = "Writes a deterministic synthetic corpus (byte tokens) with exact learnable\n"
                   "structure: documents are walks of a fixed random Markov chain over 64 printable\n"
                   "bytes, each with 4 successors of probability 1/2, 1/4, 1/8, 1/8, so the best\n"
                   "possible loss inside a document is 1.75 bits (1.2130 nats) per token.  The same\n"
                   "seed gives the same bytes on every machine.",
        .opts = opts,
        .nopts = NOPTS(opts),
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
        .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (tokens < 2) rc = bad_arg(c.prog, "--tokens must be at least 2");
    else if (seed < 0) rc = bad_arg(c.prog, "--seed must be >= 0");
    else if (shard_tokens < 2 || shard_tokens > DATA_MAX_SHARD_TOKENS)
        rc = bad_arg(c.prog, "--shard-tokens must be in 2..2147483647");
    if (!rc) {
        data_synth_opts o = {.out_dir = out, .tokens = (uint64_t)tokens, .seed = (uint64_t)seed,
                             .shard_tokens = (uint64_t)shard_tokens, .val_fraction = val,
                             .force = force, .progress = !quiet};
        data_synth_stats st;
        ts_err e = {0};
        if (data_synth(&o, &st, &e)) {
            rc = tool_error(&e);
        } else {
            const char *nm[2] = {"train", "val"};
            for (int k = 0; k < 2; k++) {
                char d[32], t[32];
                fmt_count(d, sizeof d, st.docs[k]);
                fmt_count(t, sizeof t, st.tokens[k]);
                printf("%-10s %s documents, %s tokens, %d shard%s in %s/%s/\n", nm[k], d, t,
                       st.shards[k], st.shards[k] == 1 ? "" : "s", out, nm[k]);
            }
            printf("entropy    %.4f nats per in-document token (the best achievable loss there)\n",
                   st.entropy_nats);
        }
    }
    ts_opts_free(opts, NOPTS(opts));
    return rc;
}

/* --------------------------------------------------------------- inspect */

static const char *tok_name(uint32_t id) {
    return id == DATA_TOK_BYTE ? "byte" : id == DATA_TOK_GPT2 ? "gpt2" : id == DATA_TOK_JSON ? "json" : "-";
}

/* Writes tokens as text: printable bytes as they are, newlines and tabs
 * kept, other bytes as \xNN, special tokens as their text (the byte
 * tokenizer's end-of-document token as <|endoftext|>); without a tokenizer,
 * token ids. */
static void print_decoded(FILE *fp, data_tokenizer *t, const uint32_t *tok, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t b[DATA_MAX_TOKEN_BYTES];
        int k = t ? t->decode(t, tok[i], b, sizeof b) : -1;
        if (!t) {
            fprintf(fp, "%s%u", i ? " " : "", tok[i]);
        } else if (k < 0) {
            int m = data_tokenizer_special_text(t, tok[i], b, sizeof b);
            if (m >= 0) fwrite(b, 1, (size_t)m, fp);
            else if (tok[i] == t->eot) fputs("<|endoftext|>", fp);
            else fprintf(fp, "<|%u|>", tok[i]);
        } else {
            for (int j = 0; j < k; j++) {
                if (b[j] == '\n' || b[j] == '\t' || (b[j] >= 0x20 && b[j] < 0x7f) || b[j] >= 0x80)
                    fputc(b[j], fp);
                else
                    fprintf(fp, "\\x%02x", b[j]);
            }
        }
    }
}

typedef struct inspect_args {
    const char *tokenizer;       /* --tokenizer: decodes the sample */
    int64_t seq, sample, ntok;
    bool json, hash, scan;
    bool tokens;                 /* --tokens START:COUNT given */
    uint64_t tok_start, tok_count;
} inspect_args;

#define INSPECT_MAX_TOKENS (1u << 20)

/* "START:COUNT", two decimal numbers, COUNT at most INSPECT_MAX_TOKENS. */
static bool parse_token_range(const char *s, uint64_t *start, uint64_t *count) {
    const char *colon = s ? strchr(s, ':') : NULL;
    if (!colon || colon == s || !colon[1]) return false;
    for (const char *c = s; *c; c++)
        if (c != colon && !isdigit((unsigned char)*c)) return false;
    if (colon - s > 19 || strlen(colon + 1) > 19) return false;
    *start = strtoull(s, NULL, 10);
    *count = strtoull(colon + 1, NULL, 10);
    return *count <= INSPECT_MAX_TOKENS;
}

/* Token ids [start, start + count) of the dataset (its shards' tokens one
 * after another; fewer at its end): 16 a line between dashes, or
 * "token_start" and "token_ids" in jds. */
static int print_tokens(const data_dataset *ds, uint64_t start, uint64_t count, cJSON *jds,
                        ts_err *e) {
    uint64_t total = data_num_tokens(ds);
    if (start > total)
        return ts_fail(e, TS_EINVAL, "--tokens: start %llu is past the end of the dataset (%llu tokens)",
                       (unsigned long long)start, (unsigned long long)total);
    if (count > total - start) count = total - start;
    enum { CH = 1 << 16 };
    uint32_t *buf = malloc(CH * sizeof *buf);
    if (!buf) return ts_fail(e, TS_ENOMEM, "out of memory");
    cJSON *arr = NULL;
    if (jds) {
        cJSON_AddNumberToObject(jds, "token_start", (double)start);
        arr = cJSON_AddArrayToObject(jds, "token_ids");
    } else {
        char t[32];
        fmt_count(t, sizeof t, total);
        printf("  tokens %llu..%llu (%llu of %s):\n--------\n", (unsigned long long)start,
               (unsigned long long)(start + count) - (count > 0), (unsigned long long)count, t);
    }
    int rc = TS_OK;
    uint64_t first = 0, printed = 0; /* first: the dataset offset of shard i's first token */
    for (int i = 0; i < data_num_shards(ds) && printed < count && !rc; i++) {
        uint64_t n = data_shard(ds, i)->ntokens;
        while (start < first + n && printed < count && !rc) {
            uint64_t off = start - first, k = n - off;
            if (k > count - printed) k = count - printed;
            if (k > CH) k = CH;
            rc = data_read_tokens(ds, i, off, k, buf, e);
            for (uint64_t j = 0; j < k && !rc; j++, printed++) {
                if (arr) cJSON_AddItemToArray(arr, cJSON_CreateNumber(buf[j]));
                else printf("%s%u", printed % 16 == 0 ? (printed ? "\n" : "") : " ", buf[j]);
            }
            start += k;
        }
        first += n;
    }
    if (!jds && !rc) printf("%s--------\n", printed ? "\n" : "");
    free(buf);
    return rc;
}

static int inspect_one(const char *path, const inspect_args *a, cJSON *jout, ts_err *e) {
    data_dataset *ds;
    int rc = data_dataset_open(path, &ds, e);
    if (rc) return rc;
    int n = data_num_shards(ds);
    uint32_t seq = (uint32_t)a->seq;
    cJSON *jds = NULL, *jsh = NULL;
    if (jout) {
        jds = cJSON_CreateObject();
        cJSON_AddStringToObject(jds, "path", path);
        jsh = cJSON_AddArrayToObject(jds, "shards");
        cJSON_AddItemToArray(jout, jds);
    } else {
        printf("%s\n", path);
        printf("  %-44s %-10s %15s %10s %7s %-5s%s\n", "shard", "version", "tokens", "size", "vocab",
               "tok", a->hash ? "  blake2b-256" : "");
    }
    uint64_t docs_total = 0;
    uint32_t max_tok = 0;
    for (int i = 0; i < n && !rc; i++) {
        const data_shard_info *s = data_shard(ds, i);
        char hex[2 * TS_HASH_BYTES + 1] = "";
        if (a->hash) {
            uint8_t h[TS_HASH_BYTES];
            rc = ts_hash_file(s->path, h, e);
            if (rc) break;
            ts_hex(hex, h, TS_HASH_BYTES);
        }
        uint64_t docs = 0;
        if (a->scan) {
            enum { CH = 1 << 20 };
            uint32_t *buf = malloc(CH * sizeof *buf);
            if (!buf) {
                rc = ts_fail(e, TS_ENOMEM, "out of memory");
                break;
            }
            /* the end-of-document token: 256 for the byte tokenizer, 50256
             * (<|endoftext|>) for GPT-2, which llm.c's uint16 shards use;
             * unknown otherwise (nothing counted) */
            uint64_t eot = s->tokenizer == DATA_TOK_BYTE ? 256
                           : s->tokenizer == DATA_TOK_GPT2 ||
                                     (s->tokenizer == DATA_TOK_UNKNOWN &&
                                      s->format == DATA_FMT_LLMC && s->version == 1)
                               ? 50256
                               : UINT64_MAX;
            for (uint64_t off = 0; off < s->ntokens && !rc; off += CH) {
                uint64_t k = s->ntokens - off < CH ? s->ntokens - off : CH;
                rc = data_read_tokens(ds, i, off, k, buf, e);
                for (uint64_t j = 0; j < k && !rc; j++) {
                    docs += buf[j] == eot;
                    if (buf[j] > max_tok) max_tok = buf[j];
                }
                if (!jout && s->ntokens > (64u << 20))
                    ts_progress("scan %s %3.0f%%", s->path, 100.0 * (double)(off + k) / (double)s->ntokens);
            }
            ts_progress_done();
            free(buf);
            docs_total += docs;
            if (rc) break;
        }
        if (jout) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "path", s->path);
            cJSON_AddStringToObject(o, "format", s->format == DATA_FMT_NPY ? "npy" : "llmc");
            cJSON_AddNumberToObject(o, "version", s->version);
            cJSON_AddNumberToObject(o, "data_offset", (double)s->data_offset);
            cJSON_AddNumberToObject(o, "token_bytes", s->width);
            cJSON_AddNumberToObject(o, "tokens", (double)s->ntokens);
            cJSON_AddNumberToObject(o, "file_bytes", (double)s->file_bytes);
            cJSON_AddNumberToObject(o, "vocab_size", s->vocab_size);
            cJSON_AddNumberToObject(o, "tokenizer", s->tokenizer);
            cJSON_AddNumberToObject(o, "samples", (double)data_shard_samples(s->ntokens, seq));
            if (a->hash) cJSON_AddStringToObject(o, "blake2b", hex);
            if (a->scan) cJSON_AddNumberToObject(o, "end_of_document_tokens", (double)docs);
            cJSON_AddItemToArray(jsh, o);
        } else {
            char t[32], b[32], v[16], ver[16];
            fmt_count(t, sizeof t, s->ntokens);
            ts_fmt_bytes(b, sizeof b, (double)s->file_bytes);
            if (s->vocab_size) snprintf(v, sizeof v, "%u", s->vocab_size);
            else snprintf(v, sizeof v, "-");
            snprintf(ver, sizeof ver, "%s%d (u%d)", s->format == DATA_FMT_NPY ? "npy" : "",
                     s->version, 8 * s->width);
            printf("  %-44s %-10s %15s %10s %7s %-5s%s%s\n", s->path, ver, t, b, v, tok_name(s->tokenizer),
                   a->hash ? "  " : "", hex);
        }
    }
    if (rc) {
        data_dataset_close(ds);
        return rc;
    }
    uint64_t ns = data_num_samples(ds, seq);
    if (jout) {
        cJSON_AddNumberToObject(jds, "tokens", (double)data_num_tokens(ds));
        cJSON_AddNumberToObject(jds, "vocab_size", data_vocab_size(ds));
        cJSON_AddNumberToObject(jds, "seq_len", seq);
        cJSON_AddNumberToObject(jds, "samples", (double)ns);
        if (a->scan) {
            cJSON_AddNumberToObject(jds, "end_of_document_tokens", (double)docs_total);
            cJSON_AddNumberToObject(jds, "max_token", max_tok);
        }
    } else {
        char t[32], sm[32];
        fmt_count(t, sizeof t, data_num_tokens(ds));
        fmt_count(sm, sizeof sm, ns);
        printf("  total: %d shard%s, %s tokens, %s samples of %u+1 tokens\n", n, n == 1 ? "" : "s", t,
               sm, seq);
        if (a->scan) {
            char d[32];
            fmt_count(d, sizeof d, docs_total);
            printf("  scan: %s end-of-document tokens, largest token %u\n", d, max_tok);
        }
    }
    if (a->tokens) {
        rc = print_tokens(ds, a->tok_start, a->tok_count, jds, e);
    } else if (ns > 0 && (uint64_t)a->sample < ns && !jout) {
        /* a decoded sample */
        uint32_t *tok = malloc(((size_t)seq + 1) * sizeof *tok);
        if (!tok) rc = ts_fail(e, TS_ENOMEM, "out of memory");
        else rc = data_sample(ds, seq, (uint64_t)a->sample, tok, e);
        if (!rc) {
            data_tokenizer *t = NULL;
            ts_err e2 = {0};
            if (a->tokenizer) {
                rc = data_tokenizer_open(a->tokenizer, &t, e);
                if (!rc && t->vocab_size < data_vocab_size(ds))
                    rc = ts_fail(e, TS_EINVAL, "%s has %u tokens, the shards declare a vocabulary of %u",
                                 a->tokenizer, t->vocab_size, data_vocab_size(ds));
                if (!rc && data_tokenizer_id(ds) && data_tokenizer_id(ds) != t->id)
                    rc = ts_fail(e, TS_EINVAL, "the shards were made with another kind of tokenizer (id %u)",
                                 data_tokenizer_id(ds));
            } else if (data_tokenizer_id(ds)) {
                data_tokenizer_for_id(data_tokenizer_id(ds), &t, &e2);
            }
            size_t show = (size_t)seq + 1;
            if (a->ntok > 0 && (uint64_t)a->ntok < show) show = (size_t)a->ntok;
            printf("  sample %lld (first %zu of %u tokens):\n", (long long)a->sample, show, seq + 1);
            printf("--------\n");
            if (!rc) {
                print_decoded(stdout, t, tok, show);
                printf("\n--------\n");
            }
            data_tokenizer_close(t);
        }
        free(tok);
    } else if (!jout && ns == 0) {
        printf("  (no sample of %u+1 tokens fits in any shard)\n", seq);
    }
    data_dataset_close(ds);
    return rc;
}

static bool has_shard_dir(const char *dir, const char *sub) {
    char *p = ts_path_join(dir, sub);
    struct stat st;
    bool ok = p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    return ok;
}

static int cmd_inspect(int argc, char **argv) {
    inspect_args a = {0};
    char *tokens = NULL, *tokenizer = NULL;
    const ts_opt opts[] = {
        {"tokenizer", TS_OPT_STR, &tokenizer, NULL,
         "decode the sample with this tokenizer.json (shards made by prep with one name only its hash)", 0, 't'},
        {"seq", TS_OPT_INT, &a.seq, "1024", "sequence length for sample counts and the decoded sample", 0, 0},
        {"sample", TS_OPT_INT, &a.sample, "0", "which sample to decode", 0, 0},
        {"show", TS_OPT_INT, &a.ntok, "400", "tokens of the sample to print (0: all)", 0, 0},
        {"tokens", TS_OPT_STR, &tokens, NULL,
         "START:COUNT: print COUNT token ids from token START of the dataset (its shards in order; "
         "COUNT <= 1048576) instead of a sample", 0, 0},
        {"hash", TS_OPT_BOOL, &a.hash, "false", "print each shard's BLAKE2b-256", 0, 0},
        {"scan", TS_OPT_BOOL, &a.scan, "false", "read every token: count documents, find the largest token", 0, 0},
        {"json", TS_OPT_BOOL, &a.json, "false", "print JSON", 0, 0},
    };
    const ts_opt_range ranges[] = {
        {"seq", 1, DATA_MAX_SEQ_LEN, 0},
        {"sample", 0, INFINITY, 0},
        {"show", 0, INFINITY, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera data inspect",
        .usage = "PATH [--seq T] [--sample I] [--tokens START:COUNT] [--hash] [--scan] [--json]",
        .summary = "Prints the shards of a dataset (an llm.c .bin or NumPy .npy shard file, a\n"
                   "directory of *.bin and *.npy shards, a glob pattern, or a directory written by\n"
                   "prep with train/ and val/), their token counts and sizes, and a decoded sample\n"
                   "(or, with --tokens, raw token ids).",
        .opts = opts,
        .nopts = NOPTS(opts),
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
        .min_pos = 1,
        .max_pos = 1,
    };
    char **pos = NULL;
    int npos = 0;
    int rc = tool_parse(&c, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    a.tokenizer = tokenizer;
    if (a.seq < 1 || a.seq > DATA_MAX_SEQ_LEN) rc = bad_arg(c.prog, "--seq out of range 1..16777216");
    else if (a.sample < 0) rc = bad_arg(c.prog, "--sample must be >= 0");
    else if (tokens && !(a.tokens = parse_token_range(tokens, &a.tok_start, &a.tok_count)))
        rc = bad_arg(c.prog, "--tokens takes START:COUNT (e.g. 0:100), COUNT at most 1048576");
    if (!rc) {
        const char *path = pos[0];
        cJSON *jout = a.json ? cJSON_CreateArray() : NULL;
        ts_err e = {0};
        struct stat st;
        bool split = stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
                     (has_shard_dir(path, "train") || has_shard_dir(path, "val"));
        if (split) {
            /* a directory made by prep or synth: each split on its own */
            data_dataset *probe;
            if (data_dataset_open(path, &probe, &e) == TS_OK) {
                data_dataset_close(probe);
                split = false;
            }
            ts_err_clear(&e);
        }
        if (split) {
            const char *subs[2] = {"train", "val"};
            for (int k = 0; k < 2 && !rc; k++) {
                if (!has_shard_dir(path, subs[k])) continue;
                char *p = ts_path_join(path, subs[k]);
                rc = inspect_one(p, &a, jout, &e);
                if (rc == TS_ENOTFOUND && !jout) {
                    printf("%s\n  (no shards)\n", p);
                    rc = TS_OK;
                } else if (rc == TS_ENOTFOUND) {
                    rc = TS_OK;
                }
                free(p);
            }
        } else {
            rc = inspect_one(path, &a, jout, &e);
        }
        if (rc) {
            rc = tool_error(&e);
        } else if (jout) {
            char *s = cJSON_Print(jout);
            printf("%s\n", s);
            free(s);
        }
        cJSON_Delete(jout);
    }
    free(pos);
    ts_opts_free(opts, NOPTS(opts));
    return rc;
}

/* ----------------------------------------------------------------- pages */

static int cmd_pages(int argc, char **argv) {
    char *data = NULL, *run = NULL;
    int64_t uid = -1, window = -1, count = -1, seq = 0;
    bool random_uid = false, json = false, ids = false;
    const ts_opt opts[] = {
        {"data", TS_OPT_STR, &data, NULL, "dataset: shard file (.bin or .npy), directory of them, or glob", TS_OPT_REQUIRED, 'd'},
        {"run", TS_OPT_STR, &run, NULL, "run id (1..64 of [A-Za-z0-9._-])", TS_OPT_REQUIRED, 'r'},
        {"uid", TS_OPT_INT, &uid, "-1", "miner uid (0..4294967294)", 0, 'u'},
        {"random", TS_OPT_BOOL, &random_uid, "false", "the validators' random pool (pseudo-uid 4294967295)", 0, 0},
        {"window", TS_OPT_INT, &window, "-1", "window (>= 0)", TS_OPT_REQUIRED, 'w'},
        {"count", TS_OPT_INT, &count, "-1", "pool size", TS_OPT_REQUIRED, 'n'},
        {"seq", TS_OPT_INT, &seq, "1024", "sequence length T (a sample is T+1 tokens)", 0, 0},
        {"ids", TS_OPT_BOOL, &ids, "false", "also print each sample's id", 0, 0},
        {"json", TS_OPT_BOOL, &json, "false", "print JSON", 0, 0},
    };
    const ts_opt_range ranges[] = {
        {"uid", -1, DATA_RANDOM_UID - 1.0, 0},
        {"window", -1, 9223372036854775807.0, 0}, /* -1: not given (required); any u63 window */
        {"count", -1, 1 << 24, 0},
        {"seq", 1, DATA_MAX_SEQ_LEN, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera data pages",
        .usage = "--data PATH --run R (--uid U | --random) --window W --count N [--seq T] [--json]",
        .summary = "Prints the sample pool of (run, uid, window) - the indices, in draw order - and\n"
                   "the pool digest (BLAKE2b-256 of the sorted sample ids).  docs/FORMATS.md\n"
                   "section 5 defines the assignment.",
        .opts = opts,
        .nopts = NOPTS(opts),
        .ranges = ranges,
        .nranges = (int)(sizeof ranges / sizeof *ranges),
        .max_pos = 0,
    };
    int rc = tool_parse(&c, argc, argv, NULL, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (random_uid && uid >= 0) rc = bad_arg(c.prog, "give --uid or --random, not both");
    else if (!random_uid && (uid < 0 || uid >= (int64_t)DATA_RANDOM_UID))
        rc = bad_arg(c.prog, "--uid must be in 0..4294967294 (or use --random)");
    else if (window < 0) rc = bad_arg(c.prog, "--window is required (>= 0)");
    else if (count < 0) rc = bad_arg(c.prog, "--count is required (a pool size >= 0)");
    else if (seq < 1 || seq > DATA_MAX_SEQ_LEN) rc = bad_arg(c.prog, "--seq out of range 1..16777216");
    if (rc) {
        ts_opts_free(opts, NOPTS(opts));
        return rc;
    }
    uint32_t u = random_uid ? DATA_RANDOM_UID : (uint32_t)uid;
    ts_err e = {0};
    data_dataset *ds = NULL;
    uint64_t *idx = NULL, *sid = NULL;
    uint8_t seed[DATA_SEED_BYTES], dig[TS_HASH_BYTES];
    rc = data_pool_seed(run, u, (uint64_t)window, seed, &e);
    if (!rc) rc = data_dataset_open(data, &ds, &e);
    if (!rc) {
        idx = malloc(((size_t)count + 1) * sizeof *idx);
        sid = malloc(((size_t)count + 1) * sizeof *sid);
        if (!idx || !sid) rc = ts_fail(&e, TS_ENOMEM, "out of memory");
    }
    if (!rc) rc = data_pool(ds, run, u, (uint64_t)window, (uint32_t)seq, (uint64_t)count, idx, &e);
    if (!rc) rc = data_sample_ids(ds, (uint32_t)seq, idx, (size_t)count, sid, &e);
    if (!rc) {
        uint64_t *sorted = malloc(((size_t)count + 1) * sizeof *sorted);
        if (!sorted) {
            rc = ts_fail(&e, TS_ENOMEM, "out of memory");
        } else {
            memcpy(sorted, sid, (size_t)count * sizeof *sorted);
            data_ids_digest(sorted, (size_t)count, dig);
            free(sorted);
        }
    }
    if (rc) {
        rc = tool_error(&e);
    } else {
        char shex[2 * DATA_SEED_BYTES + 1], dhex[2 * TS_HASH_BYTES + 1];
        ts_hex(shex, seed, sizeof seed);
        ts_hex(dhex, dig, sizeof dig);
        uint64_t ns = data_num_samples(ds, (uint32_t)seq);
        if (json) {
            printf("{\"run\": \"%s\", \"uid\": %u, \"window\": %lld, \"seq_len\": %lld, "
                   "\"num_samples\": %llu, \"count\": %lld, \"seed\": \"%s\",\n \"indices\": [",
                   run, u, (long long)window, (long long)seq, (unsigned long long)ns, (long long)count, shex);
            for (int64_t i = 0; i < count; i++)
                printf("%s%llu", i ? ", " : "", (unsigned long long)idx[i]);
            printf("],\n \"ids\": [");
            for (int64_t i = 0; i < count; i++) {
                uint8_t b[8];
                char h[17];
                ts_put_u64(b, sid[i]);
                ts_hex(h, b, 8);
                printf("%s\"%s\"", i ? ", " : "", h);
            }
            printf("],\n \"digest\": \"%s\"}\n", dhex);
        } else {
            char nsb[32];
            fmt_count(nsb, sizeof nsb, ns);
            printf("run      %s\nuid      %u%s\nwindow   %lld\nseq_len  %lld\nsamples  %s\nseed     %s\ncount    %lld\n",
                   run, u, random_uid ? " (random)" : "", (long long)window, (long long)seq, nsb, shex,
                   (long long)count);
            for (int64_t i = 0; i < count; i++) {
                if (ids) {
                    uint8_t b[8];
                    char h[17];
                    ts_put_u64(b, sid[i]);
                    ts_hex(h, b, 8);
                    printf("%llu %s\n", (unsigned long long)idx[i], h);
                } else {
                    printf("%llu\n", (unsigned long long)idx[i]);
                }
            }
            printf("digest   %s\n", dhex);
        }
    }
    free(idx);
    free(sid);
    data_dataset_close(ds);
    ts_opts_free(opts, NOPTS(opts));
    return rc;
}

/* ------------------------------------------------------------------ hash */

static int cmd_hash(int argc, char **argv) {
    bool json = false;
    const ts_opt opts[] = {
        {"json", TS_OPT_BOOL, &json, "false", "print JSON", 0, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera data hash",
        .usage = "PATH",
        .summary = "Prints a dataset's hash: BLAKE2b-256 of its tokens shard by shard (docs/FORMATS.md\n"
                   "5.2), the same for .bin and .npy shards holding the same tokens.  A run names it\n"
                   "as data_hash / val_data_hash, and every node checks its shards against it.",
        .opts = opts,
        .nopts = NOPTS(opts),
        .min_pos = 1,
        .max_pos = 1,
    };
    char **pos = NULL;
    int npos = 0;
    int rc = tool_parse(&c, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    data_dataset *ds = NULL;
    uint8_t h[TS_HASH_BYTES];
    rc = data_dataset_open(pos[0], &ds, &e);
    if (!rc) rc = data_dataset_hash(ds, h, &e);
    if (rc) {
        rc = tool_error(&e);
    } else {
        char hex[2 * TS_HASH_BYTES + 1];
        ts_hex(hex, h, TS_HASH_BYTES);
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "path", pos[0]);
            cJSON_AddNumberToObject(o, "shards", data_num_shards(ds));
            cJSON_AddNumberToObject(o, "tokens", (double)data_num_tokens(ds));
            cJSON_AddStringToObject(o, "dataset_hash", hex);
            char *t = cJSON_PrintUnformatted(o);
            printf("%s\n", t ? t : "{}");
            free(t);
            cJSON_Delete(o);
        } else
            printf("%s  %s (%d shards, %llu tokens)\n", hex, pos[0], data_num_shards(ds),
                   (unsigned long long)data_num_tokens(ds));
    }
    data_dataset_close(ds);
    free(pos);
    ts_opts_free(opts, NOPTS(opts));
    return rc;
}

/* ------------------------------------------------------ tokenize, detokenize */

/* Prints one token's text for --pieces: printable ASCII as is, the rest as
 * \xNN (and \n, \t), so a line holds one token. */
static void print_piece(const uint8_t *b, int n) {
    for (int j = 0; j < n; j++) {
        if (b[j] == '\n') fputs("\\n", stdout);
        else if (b[j] == '\t') fputs("\\t", stdout);
        else if (b[j] == '\\') fputs("\\\\", stdout);
        else if (b[j] >= 0x20 && b[j] < 0x7f) putchar(b[j]);
        else printf("\\x%02x", b[j]);
    }
}

static int cmd_tokenize(int argc, char **argv) {
    char *tok = NULL, *eot = NULL;
    bool files = false, special = false, json = false, pieces = false, count = false;
    const ts_opt opts[] = {
        {"tokenizer", TS_OPT_STR, &tok, NULL, "a tokenizer.json, or byte", TS_OPT_REQUIRED, 't'},
        {"files", TS_OPT_BOOL, &files, "false", "the arguments are files ('-': standard input): one line of tokens per file", 0, 'f'},
        {"special", TS_OPT_BOOL, &special, "false",
         "match special tokens written in the text (\"<|endoftext|>\"); prep never does", 0, 0},
        {"json", TS_OPT_BOOL, &json, "false", "print each list as a JSON array", 0, 0},
        {"pieces", TS_OPT_BOOL, &pieces, "false", "print one token a line: its id and its bytes", 0, 0},
        {"count", TS_OPT_BOOL, &count, "false", "print only the number of tokens", 0, 0},
        {"eot", TS_OPT_STR, &eot, NULL, "the end-of-document token's text (checked only; prep uses it)", 0, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera data tokenize",
        .usage = "--tokenizer tokenizer.json [--special] [--json|--pieces|--count] TEXT... | --files FILE...",
        .summary = "Encodes text with a tokenizer and prints the token ids (the arguments joined\n"
                   "by spaces, or each file with --files).  Invalid UTF-8 is replaced by U+FFFD\n"
                   "first, as Hugging Face's tokenizers library needs.",
        .opts = opts,
        .nopts = NOPTS(opts),
        .min_pos = 1,
        .max_pos = -1,
    };
    char **pos = NULL;
    int npos = 0;
    int rc = tool_parse(&c, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    data_tokenizer *t = NULL;
    size_t tl = strlen(tok);
    if (tl > 5 && !strcmp(tok + tl - 5, ".json")) rc = data_tokenizer_load(tok, eot, &t, &e);
    else rc = data_tokenizer_open(tok, &t, &e);
    int nin = files ? npos : 1;
    for (int i = 0; i < nin && !rc; i++) {
        uint8_t *text = NULL;
        size_t n = 0;
        if (!files) {
            size_t cap = 1;
            for (int k = 0; k < npos; k++) cap += strlen(pos[k]) + 1;
            text = malloc(cap);
            if (!text) rc = ts_fail(&e, TS_ENOMEM, "out of memory");
            for (int k = 0; k < npos && !rc; k++) {
                size_t l = strlen(pos[k]);
                if (k) text[n++] = ' ';
                memcpy(text + n, pos[k], l);
                n += l;
            }
        } else if (!strcmp(pos[i], "-")) {
            size_t cap = 0;
            for (;;) {
                if (n + 65536 > cap) {
                    cap = cap ? cap * 2 : 1 << 20;
                    uint8_t *q = realloc(text, cap);
                    if (!q) {
                        rc = ts_fail(&e, TS_ENOMEM, "out of memory");
                        break;
                    }
                    text = q;
                }
                size_t got = fread(text + n, 1, cap - n, stdin);
                n += got;
                if (got == 0) break;
            }
        } else {
            rc = ts_read_file(pos[i], (size_t)1 << 32, &text, &n, &e);
        }
        data_tokens out = {0};
        if (!rc) rc = t->encode(t, text, n, special ? DATA_ENC_SPECIAL : 0, &out, &e);
        if (!rc) {
            if (count) {
                printf("%zu\n", out.n);
            } else if (pieces) {
                for (size_t k = 0; k < out.n; k++) {
                    uint8_t b[DATA_MAX_TOKEN_BYTES];
                    int m = t->decode(t, out.v[k], b, sizeof b);
                    if (m < 0 && t->id == DATA_TOK_JSON) {
                        m = data_tokenizer_special_text(t, out.v[k], b, sizeof b);
                        printf("%u\t[special] ", out.v[k]);
                    } else {
                        printf("%u\t", out.v[k]);
                    }
                    if (m > 0) print_piece(b, m);
                    putchar('\n');
                }
            } else {
                fputs(json ? "[" : "", stdout);
                for (size_t k = 0; k < out.n; k++) printf(json ? "%s%u" : "%s%u", k ? (json ? "," : " ") : "", out.v[k]);
                fputs(json ? "]\n" : "\n", stdout);
            }
        }
        data_tokens_free(&out);
        free(text);
    }
    if (rc) rc = tool_error(&e);
    data_tokenizer_close(t);
    free(pos);
    ts_opts_free(opts, NOPTS(opts));
    return rc;
}

static int cmd_detokenize(int argc, char **argv) {
    char *tok = NULL;
    bool specials = false;
    const ts_opt opts[] = {
        {"tokenizer", TS_OPT_STR, &tok, NULL, "a tokenizer.json, or byte", TS_OPT_REQUIRED, 't'},
        {"specials", TS_OPT_BOOL, &specials, "false", "write special tokens as their text (else leave them out)", 0, 0},
    };
    const ts_cmdline c = {
        .prog = "tessera data detokenize",
        .usage = "--tokenizer tokenizer.json [--specials] [ID...]",
        .summary = "Writes the text of token ids (the arguments, or standard input: ids separated by\n"
                   "spaces, commas or brackets, as `tokenize` and `--json` print them).",
        .opts = opts,
        .nopts = NOPTS(opts),
        .max_pos = -1,
    };
    char **pos = NULL;
    int npos = 0;
    int rc = tool_parse(&c, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    ts_err e = {0};
    data_tokenizer *t = NULL;
    rc = data_tokenizer_open(tok, &t, &e);
    data_tokens ids = {0};
    /* ids from the arguments or stdin: digits runs; anything else but
     * separators is an error */
    FILE *in = npos ? NULL : stdin;
    int ai = 0;
    const char *ap = npos ? pos[0] : NULL;
    uint64_t v = 0;
    bool inid = false;
    while (!rc) {
        int ch;
        if (in) ch = fgetc(in);
        else if (ai >= npos) ch = EOF;
        else if (!*ap) {
            ch = ' ';
            if (++ai < npos) ap = pos[ai];
        } else ch = (unsigned char)*ap++;
        if (ch >= '0' && ch <= '9') {
            v = v * 10 + (uint64_t)(ch - '0');
            if (v > UINT32_MAX) rc = ts_fail(&e, TS_EINVAL, "a token id beyond 2^32");
            inid = true;
            continue;
        }
        if (inid) {
            if (v >= t->vocab_size) rc = ts_fail(&e, TS_EINVAL, "token %llu is not in the vocabulary (%u ids)", (unsigned long long)v, t->vocab_size);
            else rc = data_tokens_push(&ids, (uint32_t)v, &e);
            v = 0;
            inid = false;
        }
        if (ch == EOF) break;
        if (!rc && !(ch == ' ' || ch == ',' || ch == '[' || ch == ']' || ch == '\n' || ch == '\t' || ch == '\r'))
            rc = ts_fail(&e, TS_EINVAL, "'%c' in the token ids", ch);
    }
    if (!rc) {
        uint8_t *txt = NULL;
        size_t n = 0;
        rc = data_detokenize(t, ids.v, ids.n, specials, &txt, &n, &e);
        if (!rc) fwrite(txt, 1, n, stdout);
        free(txt);
    }
    if (rc) rc = tool_error(&e);
    data_tokens_free(&ids);
    data_tokenizer_close(t);
    free(pos);
    ts_opts_free(opts, NOPTS(opts));
    return rc;
}

static int cmd_data(int argc, char **argv) {
    static const tool_verb verbs[] = {
        {"prep", "turn text files into token shards", cmd_prep},
        {"synth", "write a deterministic synthetic corpus", cmd_synth},
        {"inspect", "shards, token counts and a decoded sample", cmd_inspect},
        {"pages", "the sample pool of (run, uid, window) and its digest", cmd_pages},
        {"hash", "a dataset's hash, which a run's data_hash names", cmd_hash},
        {"tokenize", "text to token ids with a tokenizer", cmd_tokenize},
        {"detokenize", "token ids back to text", cmd_detokenize},
    };
    return tool_dispatch("tessera data", "Token shards, corpora and sample pools.", verbs, NOPTS(verbs),
                         argc, argv);
}

TS_COMMAND("data", "token shards, corpora and sample pools", 20, cmd_data)
