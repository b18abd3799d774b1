/*
 * pack_f16.h — private to the f16x16 layout's files (pack_f16.c and its
 * ISA kernels pack_f16_<isa>.c): the portable halves every traits table of
 * the layout shares. The layout and its arithmetic are described in
 * pack_f16.c; the contract in quant_pack.h. Pure functions, any thread.
 */
#ifndef TK_ENGINE_PACK_F16_H
#define TK_ENGINE_PACK_F16_H

#include "engine/quant_pack.h"

/* Elements per chunk sum within each half of a row (pack_f16.c). */
#define TK_PACK_F16_CHUNK 16

/* Where the second half of a row of n elements starts: 2 * floor(n / 4)
 * (even, and <= n - h, so the second half is the longer by 0..3). */
static inline int64_t tk_pack_f16_half(int64_t n)
{
	return n / 4 * 2;
}

/* Bytes of one group: 16 rows x n halfs; 0 for n <= 0. */
size_t tk_pack_f16_group_size(int64_t n);

/* quant_pack.h's pack(): 16 file rows (row_bytes apart, n halfs each) into
 * one group at dst (tk_pack_f16_group_size(n) bytes, no alignment needed).
 * src and dst are borrowed and must not overlap. */
void tk_pack_f16_pack(void *dst, const void *src, size_t row_bytes, int64_t n);

#endif
