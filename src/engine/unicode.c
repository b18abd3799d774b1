/*
 * unicode.c — category lookup over the generated range table, White_Space,
 * and UTF-8 decoding/encoding/validation for the tokenizers.
 *
 * Owns no state: the tables are constant (unicode_data.c).
 */
#include "engine/unicode.h"

enum tk_ucat tk_unicode_category(uint32_t cp)
{
	if (cp >= 0x110000)
		return TK_UCAT_UNASSIGNED;
	/* Last row whose first <= cp. Row 0 starts at 0, so lo stays valid. */
	size_t lo = 0, hi = tk_ucat_ranges_n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (tk_ucat_ranges[mid].first <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return (enum tk_ucat)tk_ucat_ranges[lo].cat;
}

bool tk_unicode_is_space(uint32_t cp)
{
	if (cp < 0x80)
		return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
	for (size_t i = 0; i < tk_uwhite_space_n; i++)
		if (tk_uwhite_space[i] == cp)
			return true;
	return false;
}

size_t tk_utf8_lead_len(unsigned char b)
{
	static const unsigned char len_by_high_nibble[16] = {
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4,
	};
	return len_by_high_nibble[b >> 4];
}

static bool is_cont(unsigned char b)
{
	return (b & 0xC0) == 0x80;
}

uint32_t tk_utf8_decode(const char *s, size_t n, size_t *adv)
{
	const unsigned char *u = (const unsigned char *)s;
	*adv = 1;
	if (u[0] < 0x80)
		return u[0];
	if ((u[0] & 0xE0) == 0xC0) {
		if (n < 2 || !is_cont(u[1]))
			return TK_UNICODE_REPLACEMENT;
		*adv = 2;
		return ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
	}
	if ((u[0] & 0xF0) == 0xE0) {
		if (n < 3 || !is_cont(u[1]) || !is_cont(u[2]))
			return TK_UNICODE_REPLACEMENT;
		*adv = 3;
		return ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) |
		       (u[2] & 0x3F);
	}
	if ((u[0] & 0xF8) == 0xF0) {
		if (n < 4 || !is_cont(u[1]) || !is_cont(u[2]) || !is_cont(u[3]))
			return TK_UNICODE_REPLACEMENT;
		*adv = 4;
		return ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
		       ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
	}
	return TK_UNICODE_REPLACEMENT; /* stray continuation byte or 0xF8.. */
}

size_t tk_utf8_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	if (cp < 0x110000) {
		out[0] = (char)(0xF0 | (cp >> 18));
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[3] = (char)(0x80 | (cp & 0x3F));
		return 4;
	}
	return 0;
}

bool tk_utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		int r = tk_utf8_check(u + i, n - i);
		if (r <= 0)
			return false;
		i += (size_t)r;
	}
	return true;
}
