/* test_tokenizer.c - the tokenizer.json tokenizer (data/bpe.c) on small
 * hand-written tokenizers whose tokens can be worked out by hand, lossy
 * UTF-8, and prep's JSON Lines input and threads.  The conformance with
 * independent implementations on real vocabularies is tests/t_tokenizer.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "data/data.h"
#include "harness.h"

static char *tpath(const char *name) {
    static char p[8][1024];
    static int k;
    char *r = p[k++ % 8];
    snprintf(r, 1024, "%s/%s", th_tmpdir(), name);
    return r;
}

static void put(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(s, 1, strlen(s), f);
    fclose(f);
}

/* GPT-2's byte-to-character map, for writing a byte-level vocabulary. */
static void byte_char(int b, char out[4]) {
    int k = 0, cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) out[0] = (char)cp, out[1] = 0;
    else out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
}

/* A byte-level tokenizer: ids 0..255 the bytes, then the merges' results
 * in order: 256 "aa", 257 "aaaa", 258 "Ġw" (space w), 259 "Ġwo", 260 "he",
 * 261 "hel", 262 "hell", 263 "hello"; 264 <|endoftext|> (special). */
static const char *write_bytelevel(void) {
    const char *path = tpath("bl.json");
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"added_tokens\":[{\"id\":264,\"content\":\"<|endoftext|>\",\"special\":true}],"
               "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
               "\"use_regex\":true},\"decoder\":{\"type\":\"ByteLevel\"},"
               "\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (int b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        if (c[0] == '"' || c[0] == '\\') fprintf(f, "\"\\%s\":%d,", c, b);
        else fprintf(f, "\"%s\":%d,", c, b);
    }
    fprintf(f, "\"aa\":256,\"aaaa\":257,\"\xC4\xA0w\":258,\"\xC4\xA0wo\":259,\"he\":260,\"hel\":261,"
               "\"hell\":262,\"hello\":263,\"<|endoftext|>\":264},"
               "\"merges\":[\"a a\",\"aa aa\",\"\xC4\xA0 w\",\"\xC4\xA0w o\",\"h e\",\"he l\",\"hel l\","
               "[\"hell\",\"o\"]]}}");
    fclose(f);
    return path;
}

static size_t enc(data_tokenizer *t, const char *s, unsigned flags, uint32_t *out, size_t cap) {
    data_tokens tk = {0};
    ts_err e = {0};
    if (t->encode(t, (const uint8_t *)s, strlen(s), flags, &tk, &e)) {
        th_fail(__FILE__, __LINE__, "encode failed: %s", e.msg);
        return 0;
    }
    size_t n = tk.n < cap ? tk.n : cap;
    memcpy(out, tk.v, n * sizeof *out);
    size_t all = tk.n;
    data_tokens_free(&tk);
    return all;
}

TEST(bytelevel_by_hand) {
    data_tokenizer *t;
    ts_err e = {0};
    REQUIRE(data_tokenizer_load(write_bytelevel(), NULL, &t, &e) == TS_OK);
    CHECK_EQ_INT(t->vocab_size, 265);
    CHECK_EQ_INT(t->eot, 264);
    CHECK_EQ_INT(t->id, DATA_TOK_JSON);
    uint32_t o[256];
    /* GPT-2's pattern: "hello" " wo" "!" ; merges by rank */
    size_t n = enc(t, "hello wo!", 0, o, 256);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(o[0], 263);
    CHECK_EQ_INT(o[1], 259);
    CHECK_EQ_INT(o[2], '!');
    /* equal ranks merge leftmost first: "aaa" is aa a */
    n = enc(t, "aaa", 0, o, 256);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(o[0], 256);
    CHECK_EQ_INT(o[1], 'a');
    /* the short (scan) and long (heap) paths agree: 8 and 200 a's */
    n = enc(t, "aaaaaaaa", 0, o, 256);
    CHECK_EQ_INT(n, 2);
    CHECK(o[0] == 257 && o[1] == 257);
    char many[202];
    memset(many, 'a', 201);
    many[201] = 0;
    n = enc(t, many, 0, o, 256);
    CHECK_EQ_INT(n, 51); /* 50 x aaaa, then a */
    for (int i = 0; i < 50; i++) CHECK_EQ_INT(o[i], 257);
    CHECK_EQ_INT(o[50], 'a');
    /* special tokens: text unless asked for */
    n = enc(t, "he<|endoftext|>", DATA_ENC_SPECIAL, o, 256);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(o[1], 264);
    n = enc(t, "he<|endoftext|>", 0, o, 256);
    CHECK(n > 2);
    for (size_t i = 0; i < n; i++) CHECK(o[i] != 264);
    /* decoding: bytes back, the special left out or written */
    uint8_t *txt;
    size_t len;
    uint32_t ids[4] = {263, 264, 259, 0xff};
    REQUIRE(data_detokenize(t, ids, 4, false, &txt, &len, &e) == TS_OK);
    CHECK(len == 9 && !memcmp(txt, "hello wo\xff", 9));
    free(txt);
    REQUIRE(data_detokenize(t, ids, 4, true, &txt, &len, &e) == TS_OK);
    CHECK(len == 22 && !memcmp(txt, "hello<|endoftext|> wo\xff", 22));
    free(txt);
    data_tokenizer_close(t);
    /* the end-of-document token by name, and a name it lacks */
    REQUIRE(data_tokenizer_load(write_bytelevel(), "hello", &t, &e) == TS_OK);
    CHECK_EQ_INT(t->eot, 263);
    data_tokenizer_close(t);
    CHECK_EQ_INT(data_tokenizer_load(write_bytelevel(), "<|im_end|>", &t, &e), TS_EINVAL);
    CHECK(strstr(e.msg, "<|im_end|>") != NULL);
}

TEST(lossy_utf8) {
    static const struct {
        const char *in, *hex;
    } cases[] = {
        {"\xc0\xaf", "efbfbdefbfbd"},
        {"\xe0\x80\xaf", "efbfbdefbfbdefbfbd"},
        {"\xed\xa0\x80", "efbfbdefbfbdefbfbd"},
        {"\xf0\x9f\x98", "efbfbd"},
        {"\xf0\x9f\x98" "A", "efbfbd41"},
        {"\xe2\x82x", "efbfbd78"},
        {"\xf4\x90\x80\x80", "efbfbdefbfbdefbfbdefbfbd"},
        {"\xf0\x9f\x98\x80", "f09f9880"},
        {"\x80\xbf", "efbfbdefbfbd"},
        {"\xf5\xff", "efbfbdefbfbd"},
        {"a\xc3", "61efbfbd"},
        {"\xef\xbb\xbfx", "efbbbf78"}, /* a BOM is text */
    };
    /* the expectations are Python's bytes.decode("utf-8", "replace") */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t *o;
        size_t n;
        ts_err e = {0};
        REQUIRE(data_utf8_lossy((const uint8_t *)cases[i].in, strlen(cases[i].in), &o, &n, &e) == TS_OK);
        char hex[128];
        ts_hex(hex, o, n);
        if (strcmp(hex, cases[i].hex)) th_fail(__FILE__, __LINE__, "case %zu: %s, want %s", i, hex, cases[i].hex);
        free(o);
    }
}

TEST(threads_agree) {
    data_tokenizer *t;
    ts_err e = {0};
    REQUIRE(data_tokenizer_load(write_bytelevel(), NULL, &t, &e) == TS_OK);
    size_t n = 200000;
    char *text = malloc(n + 1);
    uint64_t x = 7;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const char al[] = "aaaa hello wo  \n\t!9\xc3\xa9\xff";
        text[i] = al[(x >> 33) % (sizeof al - 1)];
    }
    text[n] = 0;
    data_tokens ref = {0};
    REQUIRE(t->encode(t, (uint8_t *)text, n, 0, &ref, &e) == TS_OK);
    int bad = 0;
#pragma omp parallel for num_threads(4) reduction(+ : bad)
    for (int k = 0; k < 8; k++) {
        data_tokens tk = {0};
        ts_err e2 = {0};
        if (t->encode(t, (uint8_t *)text, n, 0, &tk, &e2) || tk.n != ref.n ||
            memcmp(tk.v, ref.v, ref.n * sizeof *ref.v))
            bad++;
        data_tokens_free(&tk);
    }
    CHECK_EQ_INT(bad, 0);
    data_tokens_free(&ref);
    free(text);
    data_tokenizer_close(t);
}

TEST(sentencepiece_metaspace) {
    /* Metaspace pre-tokenizer (prepend "first"), byte fallback, unk for
     * nothing: "a b" -> ▁a ▁b; "é" (missing) -> <0xC3> <0xA9> */
    const char *path = tpath("sp.json");
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\","
               "\"prepend_scheme\":\"first\",\"split\":true},"
               "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"},"
               "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"first\"}]},"
               "\"added_tokens\":[{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
               "\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,"
               "\"\xE2\x96\x81\":3,\"a\":4,\"b\":5,\"\xE2\x96\x81" "a\":6,\"\xE2\x96\x81" "b\":7");
    for (int b = 0; b < 256; b++) fprintf(f, ",\"<0x%02X>\":%d", b, 8 + b);
    fprintf(f, "},\"merges\":[\"\xE2\x96\x81 a\",\"\xE2\x96\x81 b\"]}}");
    fclose(f);
    data_tokenizer *t;
    ts_err e = {0};
    REQUIRE(data_tokenizer_load(path, NULL, &t, &e) == TS_OK);
    CHECK_EQ_INT(t->eot, 2);
    uint32_t o[16];
    size_t n = enc(t, "a b\xc3\xa9", 0, o, 16);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(o[0], 6);
    CHECK_EQ_INT(o[1], 7);
    CHECK_EQ_INT(o[2], 8 + 0xC3);
    CHECK_EQ_INT(o[3], 8 + 0xA9);
    uint8_t *txt;
    size_t len;
    REQUIRE(data_detokenize(t, o, n, false, &txt, &len, &e) == TS_OK);
    CHECK(len == 5 && !memcmp(txt, "a b\xc3\xa9", 5));
    free(txt);
    data_tokenizer_close(t);
}

/* every token of a dataset directory */
static uint32_t *read_all(const char *dir, uint64_t *n) {
    data_dataset *ds;
    ts_err e = {0};
    *n = 0;
    if (data_dataset_open(dir, &ds, &e)) return NULL;
    uint64_t total = data_num_tokens(ds), at = 0;
    uint32_t *v = malloc((total + 1) * sizeof *v);
    for (int i = 0; i < data_num_shards(ds); i++) {
        uint64_t k = data_shard(ds, i)->ntokens;
        data_read_tokens(ds, i, 0, k, v + at, &e);
        at += k;
    }
    data_dataset_close(ds);
    *n = total;
    return v;
}

TEST(prep_jsonl) {
    const char *in = tpath("docs.jsonl");
    /* escapes, a surrogate pair, \u0000, a lone surrogate, other fields
     * (nested, with quotes and braces in strings) before the text, a null
     * text (skipped), blank lines */
    put(in, "{\"id\": 1, \"text\": \"a\\nb\\u00e9\\ud83d\\ude00\"}\n"
            "\n"
            "{\"meta\": {\"x\": [1, \"}\\\"{\", {\"text\": \"no\"}]}, \"text\": \"c\\u0000d\\udc00\", \"z\": null}\n"
            "  {\"text\": null}\n"
            "{\"text\":\"\\\\\\/\\t\"}\n");
    data_prep_opts o = {
        .inputs = (const char *const[]){in}, .ninputs = 1, .out_dir = tpath("out"),
        .tokenizer = "byte", .jsonl_field = "text", .shard_tokens = 1000, .threads = 2,
    };
    data_prep_stats st;
    ts_err e = {0};
    REQUIRE(data_prep(&o, &st, &e) == TS_OK);
    CHECK_EQ_INT(st.docs[0], 3);
    uint64_t n;
    uint32_t *tok = read_all(tpath("out/train"), &n);
    REQUIRE(tok != NULL);
    const char want[] = "a\nb\xc3\xa9\xf0\x9f\x98\x80|c\0d\xef\xbf\xbd|\\/\t|";
    REQUIRE(n == sizeof want - 1);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t w = want[i] == '|' ? 256 : (uint8_t)want[i];
        if (tok[i] != w) th_fail(__FILE__, __LINE__, "token %llu: %u, want %u", (unsigned long long)i, tok[i], w);
    }
    free(tok);
    /* malformed lines: the file and line named, nothing left behind */
    const struct {
        const char *text, *msg;
    } bad[] = {
        {"{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n", "docs2.jsonl:2: not a JSON object"},
        {"{\"text\": \"ok\"}\n\n{\"body\": \"x\"}\n", "docs2.jsonl:3: no field \"text\""},
        {"{\"text\": 5}\n", "docs2.jsonl:1: field \"text\" is not a string"},
        {"[\"text\"]\n", "docs2.jsonl:1: not a JSON object"},
        {"{\"text\": \"a\"} x\n", "docs2.jsonl:1: not a JSON object"},
        {"{\"text\": \"\\q\"}\n", "docs2.jsonl:1: not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *in2 = tpath("docs2.jsonl");
        put(in2, bad[i].text);
        data_prep_opts o2 = o;
        o2.inputs = (const char *const[]){in2};
        o2.out_dir = tpath("out2");
        o2.force = true;
        ts_err e2 = {0};
        CHECK_EQ_INT(data_prep(&o2, &st, &e2), TS_EFORMAT);
        if (!strstr(e2.msg, bad[i].msg)) th_fail(__FILE__, __LINE__, "case %zu: '%s', want '%s'", i, e2.msg, bad[i].msg);
        char stamp[1100];
        snprintf(stamp, sizeof stamp, "%s/prep.json", tpath("out2"));
        CHECK(!ts_path_exists(stamp));
    }
}

TEST(prep_threads_same_shards) {
    /* many documents through a tokenizer.json on 1 and 3 threads */
    const char *in = tpath("many.txt");
    FILE *f = fopen(in, "w");
    uint64_t x = 3;
    for (int d = 0; d < 9000; d++) {
        int len = 1 + (int)((x = x * 6364136223846793005ull + 1) >> 58);
        for (int i = 0; i < len; i++) fputs((x = x * 6364136223846793005ull + 1) >> 63 ? "aaa " : "hello wo ", f);
        fputs("\n%\n", f);
    }
    fclose(f);
    uint64_t n[2];
    uint32_t *tok[2];
    for (int k = 0; k < 2; k++) {
        char out[32];
        snprintf(out, sizeof out, "t%d", k);
        data_prep_opts o = {
            .inputs = (const char *const[]){in}, .ninputs = 1, .out_dir = tpath(out),
            .tokenizer = write_bytelevel(), .doc_sep = "%", .shard_tokens = 5000,
            .val_fraction = 0.2, .threads = k ? 3 : 1,
        };
        data_prep_stats st;
        ts_err e = {0};
        REQUIRE(data_prep(&o, &st, &e) == TS_OK);
        CHECK_EQ_INT(st.docs[0] + st.docs[1], 9000);
        CHECK(st.shards[0] > 3);
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/train", tpath(out));
        tok[k] = read_all(dir, &n[k]);
        REQUIRE(tok[k] != NULL);
    }
    CHECK(n[0] == n[1] && !memcmp(tok[0], tok[1], n[0] * sizeof *tok[0]));
    uint64_t eots = 0;
    for (uint64_t i = 0; i < n[0]; i++) eots += tok[0][i] == 264;
    CHECK(eots > 6000 && eots < 8000);
    free(tok[0]);
    free(tok[1]);
}

TEST(hostile_inputs_refused_without_a_fault) {
    /* the hand-built tokenizer.json cut at every 7th byte, whole, and with
     * one byte flipped (300 times): each load fails cleanly or succeeds
     * (under the sanitizers, with no fault); what loads encodes random
     * bytes into ids inside its vocabulary */
    const char *path = write_bytelevel();
    uint8_t *raw;
    size_t len;
    ts_err e = {0};
    REQUIRE(ts_read_file(path, 1 << 20, &raw, &len, &e) == TS_OK);
    const char *cut = tpath("cut.json");
    int loaded = 0, refused = 0, encoded = 0;
    uint64_t x = 11;
    uint8_t junk[512];
    for (size_t at = 0; at < len + 7 * 300; at += 7) {
        uint8_t *m = malloc(len);
        memcpy(m, raw, len);
        size_t n = at < len ? at : len;
        if (at >= len + 7) { /* the whole file once, then a byte flipped */
            x = x * 6364136223846793005ull + 1;
            m[(x >> 33) % len] ^= (uint8_t)(1 + (x >> 20) % 255);
        }
        FILE *f = fopen(cut, "wb");
        fwrite(m, 1, n, f);
        fclose(f);
        free(m);
        data_tokenizer *t;
        ts_err e2 = {0};
        if (data_tokenizer_load(cut, NULL, &t, &e2) == TS_OK) {
            loaded++;
            for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)((x = x * 6364136223846793005ull + 1) >> 56);
            data_tokens tk = {0};
            /* a flip that drops the ByteLevel pre-tokenizer leaves a
             * vocabulary that cannot spell every character: a clean error */
            if (t->encode(t, junk, sizeof junk, DATA_ENC_SPECIAL, &tk, &e2)) CHECK(strstr(e2.msg, "not in the vocabulary") != NULL);
            else encoded++;
            for (size_t i = 0; i < tk.n; i++) CHECK(tk.v[i] < t->vocab_size);
            data_tokens_free(&tk);
            data_tokenizer_close(t);
        } else {
            refused++;
            CHECK(e2.msg[0] != 0);
        }
    }
    free(raw);
    CHECK(refused > 100);
    CHECK(loaded > 10); /* the whole file, and flips inside strings */
    CHECK(encoded > 5);
}
