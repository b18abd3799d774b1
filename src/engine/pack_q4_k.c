/*
 * pack_q4_k.c — the q4_kx16 packed layout of Q4_K weights (quant_pack.h):
 * its group size, the packer (16 file rows -> one group) and the scalar
 * reference product, the oracle the fast kernel (pack_q4_k_avx512.c) is
 * tested against. Portable; always built.
 *
 * Owns tk_pack_q4_k_ref and the helpers pack_q4_k.h declares
 * (tk_pack_q4_k_group_size, tk_pack_q4_k_pack) that the ISA files reuse,
 * and the portable packers of pack_ref.h (tk_pack_q4_k_pack_ref, the
 * element-by-element oracle, and tk_pack_q4_k_pack_words);
 * tk_pack_q4_k_pack, which picks the packer at load, is pack_load.c's.
 *
 * Layout. A group (16 rows of n elements) is n / 256 packed super-blocks,
 * one per Q4_K super-block of the rows, back to back, TK_PQ4K_BYTES = 2368
 * bytes each (offsets in pack_q4_k.h):
 *     d[r], dmin[r]   the 16 rows' half scales, as in the file (2 x 32 B);
 *     sc[j][r]        the 6-bit scale of sub-block j (elements 32j ..
 *                     32j + 31) of row r, unpacked from the file's 12-byte
 *                     "scale-min k4" packing to one byte, so one 16-byte
 *                     load holds sub-block j's scales of all 16 rows
 *                     (128 B);
 *     m[h][r][t]      at TK_PQ4K_M + 64h + 4r + t: the 6-bit min of
 *                     sub-block 4h + t of row r, one byte (128 B), so one
 *                     64-byte line holds 4 mins of every row in the row's
 *                     32-bit lane: the unsigned operand of a VPDPBUSD
 *                     against 4 activation bytes (pack_q4_k_avx512.c);
 *     q[j][k][r][i]   at TK_PQ4K_Q + 256j + 64k + 4r + i (sub-block j,
 *                     chunk k = 0..3, row r, byte i = 0..3): low nibble =
 *                     code of element 32j + 4k + i, high nibble = code of
 *                     element 32j + 16 + 4k + i (2048 B).
 * One 64-byte line of q is one chunk of all 16 rows: masked, it is the
 * unsigned operand of one VPDPBUSD per nibble against a broadcast 4-byte
 * chunk of the Q8_K activations (lane r = row r). The group is 64 bytes
 * more per super-block than the 16 file rows (2368 vs 2304, +2.8%): the
 * scales and mins take 256 bytes instead of 192.
 *
 * Arithmetic (the reference vec_dot's, quant_k.c): per row, super-block
 * and activation row,
 *     isum = sum_j sc_j * sum_{e in sub-block j} q_e * y_e,
 *     msum = sum_j m_j * (bsums[2j] + bsums[2j + 1]),
 *     sum += (d * dy) * (float)isum - (dmin * dy) * (float)msum,
 * the integers exact in int32 (bounds in pack_q4_k_avx512.c) and the float
 * steps those of tk_quant_q4_k_vec_dot, in its order: each cell of a gemm
 * equals the reference vec_dot of the file row bit for bit.
 */
#include "engine/pack_q4_k.h"

#include "engine/fp16.h"
#include "engine/pack_ref.h"

#include <string.h>

#define Q4K_FILE_BYTES 144 /* sizeof(struct tk_block_q4_k) */
#define Q8K_BYTES 292     /* sizeof(struct tk_block_q8_k) */

size_t tk_pack_q4_k_group_size(int64_t n)
{
	return n > 0 ? (size_t)(n / TK_QK_K) * TK_PQ4K_BYTES : 0;
}

/* The 6-bit scale and min of sub-block j from a file block's 12 packed
 * bytes (quant.h, struct tk_block_q4_k). */
static void scale_min(int j, const unsigned char *q, unsigned *sc, unsigned *m)
{
	if (j < 4) {
		*sc = q[j] & 63u;
		*m = q[j + 4] & 63u;
	} else {
		*sc = (q[j + 4] & 15u) | (unsigned)(q[j - 4] >> 6) << 4;
		*m = (unsigned)(q[j + 4] >> 4) | (unsigned)(q[j] >> 6) << 4;
	}
}

/* The reference packer (pack_ref.h): element by element, from the layout. */
void tk_pack_q4_k_pack_ref(void *dst, const void *src, size_t row_bytes, int64_t n)
{
	const int64_t nb = n / TK_QK_K;
	const unsigned char *s = src;
	unsigned char *g = dst;
	unsigned char code[TK_QK_K]; /* one file block's codes, element order */
	for (int64_t b = 0; b < nb; b++, g += TK_PQ4K_BYTES) {
		for (int r = 0; r < TK_PACK_ROWS; r++) {
			const unsigned char *blk =
				s + (size_t)r * row_bytes + (size_t)b * Q4K_FILE_BYTES;
			memcpy(g + TK_PQ4K_D + 2 * r, blk, 2);
			memcpy(g + TK_PQ4K_DMIN + 2 * r, blk + 2, 2);
			/* element 64g + 32t + l is qs[32g + l], nibble t */
			for (int gi = 0; gi < 4; gi++)
				for (int l = 0; l < 32; l++) {
					const unsigned char v = blk[16 + 32 * gi + l];
					code[64 * gi + l] = v & 15u;
					code[64 * gi + 32 + l] = v >> 4;
				}
			for (int j = 0; j < 8; j++) {
				unsigned sc, m;
				scale_min(j, blk + 4, &sc, &m);
				g[TK_PQ4K_SC + 16 * j + r] = (unsigned char)sc;
				g[TK_PQ4K_M + 64 * (j / 4) + 4 * r + j % 4] = (unsigned char)m;
				unsigned char *q = g + TK_PQ4K_Q + 256 * j + 4 * r;
				const unsigned char *e = code + 32 * j;
				for (int k = 0; k < 4; k++)
					for (int i = 0; i < 4; i++)
						q[64 * k + i] = (unsigned char)(e[4 * k + i] |
										e[16 + 4 * k + i] << 4);
			}
		}
	}
}

/* The portable load-time packer (pack_ref.h): the reference's bytes, by words.
 * Sub-blocks 2h and 2h + 1 of a row share the file's 32 bytes qs[32h ..]
 * (low nibbles: sub-block 2h, high: 2h + 1), and the packed byte of chunk
 * k, byte i pairs element 4k + i with element 16 + 4k + i of its
 * sub-block: with A = qs[32h + 8m ..] and B = qs[32h + 16 + 8m ..] as
 * 64-bit words (chunks k = 2m, 2m + 1),
 *     sub-block 2h:     (A & 0x0f..) | (B & 0x0f..) << 4,
 *     sub-block 2h + 1: (A >> 4 & 0x0f..) | (B & 0xf0..),
 * each word two chunks' 32-bit stores. The scales and mins are decoded
 * as the reference does; a row's 4 mins of half t are one 32-bit store. */
void tk_pack_q4_k_pack_words(void *dst, const void *src, size_t row_bytes, int64_t n)
{
	const int64_t nb = n / TK_QK_K;
	const uint64_t lo4 = 0x0f0f0f0f0f0f0f0fu, hi4 = 0xf0f0f0f0f0f0f0f0u;
	const unsigned char *s = src;
	unsigned char *g = dst;
	for (int64_t b = 0; b < nb; b++, g += TK_PQ4K_BYTES) {
		const unsigned char *blk = s + (size_t)b * Q4K_FILE_BYTES;
		for (int r = 0; r < TK_PACK_ROWS; r++, blk += row_bytes) {
			memcpy(g + TK_PQ4K_D + 2 * r, blk, 2);
			memcpy(g + TK_PQ4K_DMIN + 2 * r, blk + 2, 2);
			uint32_t mins[2] = { 0, 0 };
#pragma GCC unroll 8
			for (int j = 0; j < 8; j++) {
				unsigned sc, m;
				scale_min(j, blk + 4, &sc, &m);
				g[TK_PQ4K_SC + 16 * j + r] = (unsigned char)sc;
				mins[j / 4] |= (uint32_t)m << (8 * (j % 4));
			}
			tk_pack_st32(g + TK_PQ4K_M + 4 * r, mins[0]);
			tk_pack_st32(g + TK_PQ4K_M + 64 + 4 * r, mins[1]);
			const unsigned char *qs = blk + 16;
			unsigned char *q = g + TK_PQ4K_Q + 4 * r;
#pragma GCC unroll 4
			for (int h = 0; h < 4; h++, qs += 32, q += 512)
#pragma GCC unroll 2
				for (int m = 0; m < 2; m++) {
					const uint64_t a = tk_pack_ld64(qs + 8 * m);
					const uint64_t c = tk_pack_ld64(qs + 16 + 8 * m);
					const uint64_t w0 = (a & lo4) | (c & lo4) << 4;
					const uint64_t w1 = (a >> 4 & lo4) | (c & hi4);
					unsigned char *q0 = q + 128 * m; /* sub-block 2h, chunk 2m */
					tk_pack_st32(q0, (uint32_t)w0);
					tk_pack_st32(q0 + 64, (uint32_t)(w0 >> 32));
					tk_pack_st32(q0 + 256, (uint32_t)w1);
					tk_pack_st32(q0 + 256 + 64, (uint32_t)(w1 >> 32));
				}
		}
	}
}

static float rd_half(const unsigned char *p)
{
	return tk_fp16_to_fp32((uint16_t)(p[0] | (unsigned)p[1] << 8));
}

static float rd_f32(const unsigned char *p)
{
	const uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			   (uint32_t)p[3] << 24;
	return tk_f32_from_bits(u);
}

static int32_t rd_i16(const unsigned char *p)
{
	const uint16_t u = (uint16_t)(p[0] | (unsigned)p[1] << 8);
	int16_t v;
	memcpy(&v, &u, sizeof v); /* two's complement bit pattern */
	return v;
}

/* The scalar product of the layout, straight from its definition (see the
 * file comment): the oracle of the fast kernels. */
static void q4_kx16_gemm_ref(int64_t n, float *out, size_t ldo, const void *group, const void *y,
			     size_t by, int nc)
{
	const int64_t nb = n / TK_QK_K;
	const unsigned char *g0 = group;
	for (int c = 0; c < nc; c++) {
		const unsigned char *yc = (const unsigned char *)y + (size_t)c * by;
		float acc[TK_PACK_ROWS] = { 0 };
		for (int64_t b = 0; b < nb; b++) {
			const unsigned char *g = g0 + (size_t)b * TK_PQ4K_BYTES;
			const unsigned char *yb = yc + (size_t)b * Q8K_BYTES;
			const signed char *yq = (const signed char *)(yb + 4);
			const float dy = rd_f32(yb);
			for (int r = 0; r < TK_PACK_ROWS; r++) {
				int32_t isum = 0, msum = 0;
				for (int j = 0; j < 8; j++) {
					const unsigned char *q = g + TK_PQ4K_Q + 256 * j + 4 * r;
					int32_t dot = 0;
					for (int k = 0; k < 4; k++)
						for (int i = 0; i < 4; i++) {
							const unsigned v = q[64 * k + i];
							dot += (int32_t)(v & 15u) * yq[32 * j + 4 * k + i];
							dot += (int32_t)(v >> 4) * yq[32 * j + 16 + 4 * k + i];
						}
					isum += (int32_t)g[TK_PQ4K_SC + 16 * j + r] * dot;
					msum += (int32_t)g[TK_PQ4K_M + 64 * (j / 4) + 4 * r + j % 4] *
						(rd_i16(yb + 260 + 4 * j) + rd_i16(yb + 262 + 4 * j));
				}
				const float dx = rd_half(g + TK_PQ4K_D + 2 * r);
				const float mx = rd_half(g + TK_PQ4K_DMIN + 2 * r);
				acc[r] += (dx * dy) * (float)isum - (mx * dy) * (float)msum;
			}
		}
		for (int r = 0; r < TK_PACK_ROWS; r++)
			out[(size_t)c * ldo + r] = acc[r];
	}
}

const struct tk_pack_traits tk_pack_q4_k_ref = {
	.name = "q4_kx16",
	.group_size = tk_pack_q4_k_group_size,
	.pack = tk_pack_q4_k_pack,
	.gemm = q4_kx16_gemm_ref,
};
