/*
 * quant_pack.c — the shared half of quant_pack.h: encoded activation rows
 * with their trailers, and the registry of the packed layouts' reference
 * traits. The layouts themselves live in pack_<type>.c.
 */
#include "engine/quant_pack.h"

#include <string.h>

static size_t trailer_size(int act_type, int64_t n)
{
	if (act_type == TK_TYPE_Q8_0)
		return (size_t)(n / TK_QK8_0) * sizeof(int32_t);
	return 0;
}

size_t tk_act_row_size(int act_type, int64_t n)
{
	size_t bytes;
	if (tk_type_row_size(act_type, n, &bytes))
		return 0;
	return bytes + trailer_size(act_type, n);
}

void tk_act_trailer_fill(int act_type, void *row, int64_t n)
{
	if (act_type != TK_TYPE_Q8_0)
		return;
	const int64_t nb = n / TK_QK8_0;
	/* Rows need no alignment: read the quants as bytes, not through the
	 * block struct (2-byte aligned for its half scale). */
	const unsigned char *b = row;
	unsigned char *t = (unsigned char *)row + (size_t)nb * sizeof(struct tk_block_q8_0);
	for (int64_t i = 0; i < nb; i++) {
		const unsigned char *qs = b + (size_t)i * sizeof(struct tk_block_q8_0) +
					  offsetof(struct tk_block_q8_0, qs);
		int32_t s = 0;
		for (int j = 0; j < TK_QK8_0; j++)
			s += (int8_t)qs[j];
		const uint32_t u = (uint32_t)s; /* little-endian, whatever the host */
		t[4 * i] = (unsigned char)u;
		t[4 * i + 1] = (unsigned char)(u >> 8);
		t[4 * i + 2] = (unsigned char)(u >> 16);
		t[4 * i + 3] = (unsigned char)(u >> 24);
	}
}

void tk_act_encode(int act_type, const float *x, void *dst, int64_t n)
{
	if (act_type == TK_TYPE_F32) {
		memcpy(dst, x, (size_t)n * sizeof(float));
		return;
	}
	tk_type_traits(act_type)->from_float(x, dst, n);
	tk_act_trailer_fill(act_type, dst, n);
}

const struct tk_pack_traits *tk_pack_traits_ref(int t)
{
	/* One case per layout, added with its pack_<type>.c. */
	switch (t) {
	case TK_TYPE_Q8_0: return &tk_pack_q8_0_ref;
	case TK_TYPE_Q6_K: return &tk_pack_q6_k_ref;
	case TK_TYPE_Q4_K: return &tk_pack_q4_k_ref;
	case TK_TYPE_F16: return &tk_pack_f16_ref;
	default:
		return NULL;
	}
}
