/*
 * utf8.h — the one strict UTF-8 checker (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF) that every module escaping or
 * validating text uses: JSON quoting, log lines, metric label values,
 * sandbox output records, tokenizers. Pure function, any thread,
 * async-signal-safe.
 */
#ifndef TK_CORE_UTF8_H
#define TK_CORE_UTF8_H

#include <stddef.h>

/* Returns the length of the well-formed sequence at s[0..n): 1..4; 0 when
 * s[0..n) is a proper prefix of a well-formed sequence that needs more bytes
 * (only possible when the bytes so far are all acceptable); or -m when the
 * bytes at s are ill-formed: m >= 1 is the length of the maximal ill-formed
 * subpart, which a caller may replace with one U+FFFD before moving on (the
 * Unicode "maximal subpart" practice). n must be >= 1. */
int tk_utf8_check(const unsigned char *s, size_t n);

#endif
