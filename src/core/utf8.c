/* utf8.c — strict UTF-8 checking (see utf8.h). */
#include "core/utf8.h"

#include <stdbool.h>

static bool is_cont(unsigned char b)
{
	return (b & 0xC0) == 0x80;
}

int tk_utf8_check(const unsigned char *s, size_t n)
{
	unsigned char b = s[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
	if (b < 0x80)
		return 1;
	if (b >= 0xC2 && b <= 0xDF) {
		need = 2;
	} else if (b >= 0xE0 && b <= 0xEF) {
		need = 3;
		if (b == 0xE0)
			lo = 0xA0; /* no overlongs */
		else if (b == 0xED)
			hi = 0x9F; /* no surrogates */
	} else if (b >= 0xF0 && b <= 0xF4) {
		need = 4;
		if (b == 0xF0)
			lo = 0x90;
		else if (b == 0xF4)
			hi = 0x8F; /* <= U+10FFFF */
	} else {
		return -1; /* 0x80..0xC1, 0xF5..0xFF never start a sequence */
	}
	for (size_t i = 1; i < need; i++) {
		if (i >= n)
			return 0; /* acceptable so far, needs more bytes */
		unsigned char c = s[i];
		bool ok = i == 1 ? (c >= lo && c <= hi) : is_cont(c);
		if (!ok)
			return -(int)i; /* s[0..i) is the maximal ill-formed subpart */
	}
	return (int)need;
}
