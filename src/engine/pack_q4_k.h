/*
 * pack_q4_k.h — private to the q4_kx16 layout's files (pack_q4_k.c and its
 * ISA kernels pack_q4_k_<isa>.c): the layout's byte offsets and the
 * portable halves every traits table of the layout shares. The layout and
 * its arithmetic are described in pack_q4_k.c; the contract in
 * quant_pack.h. Pure functions, any thread.
 */
#ifndef TK_ENGINE_PACK_Q4_K_H
#define TK_ENGINE_PACK_Q4_K_H

#include "engine/quant_pack.h"

/* One packed super-block (256 elements of 16 rows), byte offsets: */
#define TK_PQ4K_D 0       /* uint16 d[16]: half scale of the scales, per row */
#define TK_PQ4K_DMIN 32   /* uint16 dmin[16]: half scale of the mins */
#define TK_PQ4K_SC 64     /* uint8 sc[8][16]: 6-bit scale of sub-block j, row r */
#define TK_PQ4K_M 192     /* uint8 m[2][16][4]: 6-bit min of sub-block 4h + t
			   * of row r at 64h + 4r + t (4 mins per row lane) */
#define TK_PQ4K_Q 320     /* uint8 q[8][4][16][4]: codes, see pack_q4_k.c */
#define TK_PQ4K_BYTES 2368 /* = 16 * 144 + 64; a multiple of 64 */

/* Bytes of one group: n / 256 packed super-blocks (n a multiple of 256). */
size_t tk_pack_q4_k_group_size(int64_t n);

/* quant_pack.h's pack(): 16 Q4_K file rows (row_bytes apart, n elements
 * each) into one group at dst (tk_pack_q4_k_group_size(n) bytes, no
 * alignment needed). src and dst are borrowed and must not overlap. */
void tk_pack_q4_k_pack(void *dst, const void *src, size_t row_bytes, int64_t n);

#endif
