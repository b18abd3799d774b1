/*
 * pack_q8_0.c — the q8_0x16 packed layout of Q8_0 weights (quant_pack.h):
 * its group size, the packer (16 file rows -> one group) and the scalar
 * reference product, the oracle the fast kernels (pack_q8_0_avx512.c) are
 * tested against. Portable; always built.
 *
 * Owns tk_pack_q8_0_ref and the q8_0x16 helpers declared in quant_pack.h
 * (tk_pack_q8_0_group_size, tk_pack_q8_0_pack) that the ISA files reuse,
 * and the portable packers of pack_ref.h (tk_pack_q8_0_pack_ref, the
 * byte-by-byte oracle, and tk_pack_q8_0_pack_words); tk_pack_q8_0_pack,
 * which picks the packer at load, is pack_load.c's.
 *
 * Layout (one group = 16 rows of n elements, nb = n / 32 blocks), block
 * after block, 544 bytes each:
 *     bytes   0..31   the 16 rows' half scales d[r] (little-endian),
 *     bytes  32..543  q[k][r][i] at 32 + 64k + 4r + i (k = 0..7 chunks of
 *                     4 elements, r = row, i = byte): the quant of row r,
 *                     element 32b + 4k + i, plus 128 (uint8).
 * A group is exactly as large as its 16 file rows (16 * 34 bytes a block).
 */
#include "engine/quant_pack.h"

#include "engine/fp16.h"
#include "engine/pack_ref.h"

#include <string.h>

#define Q8P_BLOCK (TK_PACK_ROWS * 2 + TK_PACK_ROWS * TK_QK8_0) /* 544 bytes */

size_t tk_pack_q8_0_group_size(int64_t n)
{
	return (size_t)(n / TK_QK8_0) * Q8P_BLOCK;
}

/* The reference packer (pack_ref.h): one byte at a time, from the layout. */
void tk_pack_q8_0_pack_ref(void *dst, const void *src, size_t row_bytes, int64_t n)
{
	const int64_t nb = n / TK_QK8_0;
	const unsigned char *s = src;
	unsigned char *g = dst;
	for (int64_t b = 0; b < nb; b++, g += Q8P_BLOCK) {
		for (int r = 0; r < TK_PACK_ROWS; r++) {
			const unsigned char *blk =
				s + (size_t)r * row_bytes + (size_t)b * sizeof(struct tk_block_q8_0);
			g[2 * r] = blk[0];
			g[2 * r + 1] = blk[1];
			for (int k = 0; k < TK_QK8_0 / 4; k++)
				for (int i = 0; i < 4; i++)
					g[32 + 64 * k + 4 * r + i] = (unsigned char)(blk[2 + 4 * k + i] ^ 0x80u);
		}
	}
}

/* The portable load-time packer (pack_ref.h): the same bytes as the reference,
 * a block's 8 quant chunks of a row as two 64-bit loads and eight 32-bit
 * stores, each flipped with one XOR. Block b of the 16 rows is read, then
 * its 544 bytes are written whole before block b + 1. */
void tk_pack_q8_0_pack_words(void *dst, const void *src, size_t row_bytes, int64_t n)
{
	const int64_t nb = n / TK_QK8_0;
	const uint64_t flip = 0x8080808080808080u;
	const unsigned char *s = src;
	unsigned char *g = dst;
	for (int64_t b = 0; b < nb; b++, g += Q8P_BLOCK) {
		const unsigned char *blk = s + (size_t)b * sizeof(struct tk_block_q8_0);
		for (int r = 0; r < TK_PACK_ROWS; r++, blk += row_bytes) {
			memcpy(g + 2 * r, blk, 2);
			unsigned char *q = g + 32 + 4 * r;
			for (int k = 0; k < TK_QK8_0 / 4; k += 2) {
				const uint64_t w = tk_pack_ld64(blk + 2 + 4 * k) ^ flip;
				tk_pack_st32(q + 64 * k, (uint32_t)w);
				tk_pack_st32(q + 64 * (k + 1), (uint32_t)(w >> 32));
			}
		}
	}
}

static float rd_half(const unsigned char *p)
{
	return tk_fp16_to_fp32((uint16_t)(p[0] | (unsigned)p[1] << 8));
}

static int32_t rd_i32(const unsigned char *p)
{
	const uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			   (uint32_t)p[3] << 24;
	int32_t v;
	memcpy(&v, &u, sizeof v); /* two's complement bit pattern */
	return v;
}

/* Per row and block: sumi = sum u_i y_i - 128 s[b] (= sum q_i y_i exactly),
 * then sum += (float)sumi * (d_x * d_y) — the float steps of the reference
 * vec_dot (quant.c), in the same order, so each cell equals it. */
static void q8_0x16_gemm_ref(int64_t n, float *out, size_t ldo, const void *group, const void *y,
			     size_t by, int nc)
{
	const int64_t nb = n / TK_QK8_0;
	const unsigned char *g0 = group;
	for (int c = 0; c < nc; c++) {
		const unsigned char *yc = (const unsigned char *)y + (size_t)c * by;
		const unsigned char *sums = yc + (size_t)nb * sizeof(struct tk_block_q8_0);
		float acc[TK_PACK_ROWS] = { 0 };
		for (int64_t b = 0; b < nb; b++) {
			const unsigned char *g = g0 + (size_t)b * Q8P_BLOCK;
			const unsigned char *yb = yc + (size_t)b * sizeof(struct tk_block_q8_0);
			const float dy = rd_half(yb);
			const int32_t sb = rd_i32(sums + 4 * b);
			for (int r = 0; r < TK_PACK_ROWS; r++) {
				/* modulo 2^32, as VPDPBUSD: no UB whatever the trailer
				 * holds; a valid row's sum fits int32 by far */
				uint32_t u = 0u - ((uint32_t)sb << 7);
				for (int k = 0; k < TK_QK8_0 / 4; k++)
					for (int i = 0; i < 4; i++)
						u += (uint32_t)((int32_t)g[32 + 64 * k + 4 * r + i] *
								(int32_t)(int8_t)yb[2 + 4 * k + i]);
				int32_t sumi;
				memcpy(&sumi, &u, sizeof sumi);
				acc[r] += (float)sumi * (rd_half(g + 2 * r) * dy);
			}
		}
		for (int r = 0; r < TK_PACK_ROWS; r++)
			out[(size_t)c * ldo + r] = acc[r];
	}
}

const struct tk_pack_traits tk_pack_q8_0_ref = {
	.name = "q8_0x16",
	.group_size = tk_pack_q8_0_group_size,
	.pack = tk_pack_q8_0_pack,
	.gemm = q8_0x16_gemm_ref,
};
