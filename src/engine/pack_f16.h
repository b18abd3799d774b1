/*
 * pack_f16.h — private to the f16x16 layout's files (pack_f16.c and its
 * ISA kernels pack_f16_<isa>.c): the portable halves every traits table of
 * the layout shares. The layout and its arithmetic are described in
 * pack_f16.c; the contract in quant_pack.h. Pure functions, any thread.
 */
#ifndef TK_ENGINE_PACK_F16_H
#define TK_ENGINE_PACK_F16_H

#include "engine/quant_pack.h"

/* Float partial sums per (row, column) cell: element e goes into e % 2. */
#define TK_PACK_F16_SPLIT 2

/* Bytes of one group: 16 rows x n halfs; 0 for n <= 0. */
size_t tk_pack_f16_group_size(int64_t n);

/* quant_pack.h's pack(): 16 file rows (row_bytes apart, n halfs each) into
 * one group at dst (tk_pack_f16_group_size(n) bytes, no alignment needed).
 * src and dst are borrowed and must not overlap. */
void tk_pack_f16_pack(void *dst, const void *src, size_t row_bytes, int64_t n);

#endif
