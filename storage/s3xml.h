/* s3xml.h - the minimal XML reader for S3 responses (storage internal; the
 * tests use it directly). */
#ifndef TESSERA_STORAGE_S3XML_H
#define TESSERA_STORAGE_S3XML_H

#include <stdbool.h>
#include <stddef.h>

/* Finds the first element named tag in [p, end): sets [*ib, *ie) to its
 * content and returns the position after it, or NULL when there is none (or
 * it is not closed before end). */
const char *s3xml_elem(const char *p, const char *end, const char *tag, const char **ib,
                       const char **ie);
/* Decodes text (entities, character references) into out (NUL-terminated);
 * returns its length, or -1 when invalid or longer than cap - 1. */
int s3xml_text(const char *b, const char *e, char *out, size_t cap);
/* The same into a malloc'd string (NULL when invalid or out of memory). */
char *s3xml_text_dup(const char *b, const char *e);
/* Text of the first child element named tag in [b, e); -1 when absent/invalid. */
int s3xml_child_text(const char *b, const char *e, const char *tag, char *out, size_t cap);
/* "2024-05-01T12:34:56.789Z" to seconds since the epoch. */
int s3xml_parse_iso8601(const char *s, double *out);

#endif
