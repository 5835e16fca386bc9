/* s3xml.c - just enough XML for S3 responses (ListObjectsV2, multipart
 * upload results, errors), and S3's time formats.
 *
 * S3 answers are flat, machine-written documents: elements whose names we
 * know, text with the five predefined entities and numeric character
 * references, no CDATA in practice.  The reader finds an element by name in a
 * bounded range ("<Key>" never matches "<KeyCount>"), returns the range of its
 * content, and decodes text strictly: an unknown entity, a NUL, a reference
 * outside Unicode or a text longer than the caller's room is an error, never
 * a truncation.  Nothing here trusts the input to be well-formed or
 * NUL-terminated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/s3xml.h"

static const char *find_bytes(const char *p, const char *end, const char *needle, size_t n) {
    if (n == 0 || end - p < (ptrdiff_t)n) return NULL;
    const char *last = end - n;
    for (; p <= last; p++) {
        p = memchr(p, needle[0], (size_t)(last - p) + 1);
        if (!p) return NULL;
        if (!memcmp(p, needle, n)) return p;
    }
    return NULL;
}

const char *s3xml_elem(const char *p, const char *end, const char *tag, const char **ib,
                       const char **ie) {
    size_t tl = strlen(tag);
    if (!p || p >= end) return NULL;
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt) return NULL;
        const char *nm = lt + 1;
        if ((size_t)(end - nm) < tl + 1) return NULL;
        if (memcmp(nm, tag, tl)) {
            p = nm;
            continue;
        }
        const char *after = nm + tl;
        char c = *after;
        if (c != '>' && c != '/' && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            p = nm;
            continue;
        }
        const char *gt = memchr(after, '>', (size_t)(end - after));
        if (!gt) return NULL;
        if (gt[-1] == '/') { /* <Tag/> or <Tag attr="x"/> */
            *ib = *ie = gt + 1;
            return gt + 1;
        }
        char close[80];
        if (tl + 3 >= sizeof close) return NULL;
        close[0] = '<';
        close[1] = '/';
        memcpy(close + 2, tag, tl);
        close[tl + 2] = '>';
        const char *cl = find_bytes(gt + 1, end, close, tl + 3);
        if (!cl) return NULL;
        *ib = gt + 1;
        *ie = cl;
        return cl + tl + 3;
    }
    return NULL;
}

static int put_utf8(char *out, size_t cap, size_t *o, unsigned long cp) {
    char tmp[4];
    size_t n;
    if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    if (cp < 0x80) {
        tmp[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        tmp[0] = (char)(0xc0 | (cp >> 6));
        tmp[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        tmp[0] = (char)(0xe0 | (cp >> 12));
        tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        tmp[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        tmp[0] = (char)(0xf0 | (cp >> 18));
        tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        tmp[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    if (*o + n >= cap) return -1;
    memcpy(out + *o, tmp, n);
    *o += n;
    return 0;
}

int s3xml_text(const char *b, const char *e, char *out, size_t cap) {
    size_t o = 0;
    if (cap == 0) return -1;
    while (b < e) {
        char c = *b;
        if (c == 0 || c == '<') return -1;
        if (c != '&') {
            if (o + 1 >= cap) return -1;
            out[o++] = c;
            b++;
            continue;
        }
        const char *semi = memchr(b, ';', (size_t)(e - b));
        if (!semi || semi - b > 12) return -1;
        size_t n = (size_t)(semi - b - 1);
        const char *name = b + 1;
        unsigned long cp;
        if (n == 2 && !memcmp(name, "lt", 2)) cp = '<';
        else if (n == 2 && !memcmp(name, "gt", 2)) cp = '>';
        else if (n == 3 && !memcmp(name, "amp", 3)) cp = '&';
        else if (n == 4 && !memcmp(name, "quot", 4)) cp = '"';
        else if (n == 4 && !memcmp(name, "apos", 4)) cp = '\'';
        else if (n >= 2 && name[0] == '#') {
            char num[12];
            memcpy(num, name + 1, n - 1);
            num[n - 1] = 0;
            char *endp;
            bool hex = num[0] == 'x' || num[0] == 'X';
            const char *digits = hex ? num + 1 : num;
            if (!*digits) return -1;
            for (const char *d = digits; *d; d++)
                if (!(hex ? ((*d >= '0' && *d <= '9') || (*d >= 'a' && *d <= 'f') || (*d >= 'A' && *d <= 'F'))
                          : (*d >= '0' && *d <= '9')))
                    return -1;
            cp = strtoul(digits, &endp, hex ? 16 : 10);
        } else {
            return -1;
        }
        if (put_utf8(out, cap, &o, cp)) return -1;
        b = semi + 1;
    }
    out[o] = 0;
    return (int)o;
}

char *s3xml_text_dup(const char *b, const char *e) {
    size_t cap = (size_t)(e - b) + 1; /* decoding never grows text */
    char *out = malloc(cap);
    if (!out) return NULL;
    if (s3xml_text(b, e, out, cap) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

int s3xml_child_text(const char *b, const char *e, const char *tag, char *out, size_t cap) {
    const char *ib, *ie;
    if (!s3xml_elem(b, e, tag, &ib, &ie)) return -1;
    return s3xml_text(ib, ie, out, cap);
}

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int s3xml_parse_iso8601(const char *s, double *out) {
    /* YYYY-MM-DDTHH:MM:SS[.fff]Z */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int Y, M, D, h, m, sec;
    if (strlen(s) < 20 || digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
        digits(s + 8, 2, &D) || s[10] != 'T' || digits(s + 11, 2, &h) || s[13] != ':' ||
        digits(s + 14, 2, &m) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return -1;
    const char *p = s + 19;
    double frac = 0, scale = 0.1;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return -1;
        while (*p >= '0' && *p <= '9') {
            frac += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    if (strcmp(p, "Z") && strcmp(p, "+00:00")) return -1;
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return -1;
    *out = (double)t + frac;
    return 0;
}
