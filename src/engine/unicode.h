/*
 * unicode.h — the little Unicode the tokenizers need: coarse general
 * categories, the White_Space property, and UTF-8 helpers.
 *
 * Owns nothing at run time: the category table (unicode_data.c) is generated
 * by scripts/gen-unicode-tables.py from Python's unicodedata and is constant.
 * Categories are the first letter of the Unicode general category (L, N, P,
 * S, M, Z, C) plus "unassigned" (Cn); that is exactly what the pre-tokenizer
 * classes \p{L}, \p{N}, \p{P} and \s need.
 *
 * Every function is pure and may be called from any thread.
 */
#ifndef TK_ENGINE_UNICODE_H
#define TK_ENGINE_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/utf8.h"

enum tk_ucat {
	TK_UCAT_UNASSIGNED = 0, /* Cn, and anything past U+10FFFF */
	TK_UCAT_LETTER = 1,     /* L* */
	TK_UCAT_NUMBER = 2,     /* N* */
	TK_UCAT_PUNCT = 3,      /* P* */
	TK_UCAT_SYMBOL = 4,     /* S* */
	TK_UCAT_MARK = 5,       /* M* */
	TK_UCAT_SEPARATOR = 6,  /* Z* */
	TK_UCAT_OTHER = 7,      /* Cc, Cf, Co, Cs */
};

/* One row of the generated table: category `cat` holds from `first` up to
 * the next row's first. Rows are sorted; the first row starts at 0. */
struct tk_ucat_range {
	uint32_t first;
	uint8_t cat;
};

extern const struct tk_ucat_range tk_ucat_ranges[];
extern const size_t tk_ucat_ranges_n;
extern const uint32_t tk_uwhite_space[];
extern const size_t tk_uwhite_space_n;
extern const char tk_unicode_version[]; /* "14.0.0": the data's version */

/* Coarse category of a code point (binary search; ASCII is a table). */
enum tk_ucat tk_unicode_category(uint32_t cp);

/* The Unicode White_Space property (\s of the pre-tokenizer regexes). */
bool tk_unicode_is_space(uint32_t cp);

/* Length of a UTF-8 sequence judged from its first byte alone, the way
 * SentencePiece-style splitting does it: 1 for ASCII and for stray
 * continuation bytes, 2/3/4 from the lead byte's high bits. Never 0. */
size_t tk_utf8_lead_len(unsigned char b);

/* Decodes one code point from s[0..n) (n >= 1) by structure only (lead byte
 * plus the right number of continuation bytes, as llama.cpp does; overlong
 * forms are not rejected). On a malformed sequence returns U+FFFD and sets
 * *adv to 1, so the caller can keep the original byte. Otherwise *adv is the
 * sequence length. */
#define TK_UNICODE_REPLACEMENT 0xFFFDu
uint32_t tk_utf8_decode(const char *s, size_t n, size_t *adv);

/* Encodes cp (<= 0x10FFFF) into out; returns 1..4, or 0 for an invalid cp. */
size_t tk_utf8_encode(uint32_t cp, char out[4]);

/* Strict checking of one sequence: tk_utf8_check() in core/utf8.h. */

/* True when s[0..n) is entirely well-formed UTF-8. */
bool tk_utf8_valid(const char *s, size_t n);

#endif
