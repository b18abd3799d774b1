/*
 * pack_q6_k.c — the q6_kx16 packed layout of Q6_K weights (quant_pack.h):
 * its size, the packer (16 file rows -> one group) and the scalar reference
 * product that tests hold every fast kernel to. Owns tk_pack_q6_k_ref and
 * the portable packers of pack_ref.h (tk_pack_q6_k_pack_ref, the
 * element-by-element oracle, and tk_pack_q6_k_pack_words); tk_pack_q6_k_pack,
 * which picks the packer at load, is pack_load.c's.
 * The AVX-512 product is in pack_q6_k_avx512.c; pack_q6_k.h shares the
 * size and packer with it.
 *
 * Layout of one group of 16 rows of n elements (nb = n / 256 super-blocks),
 * group_size(n) = 16 * 210 * nb bytes, the file's size:
 *
 *   d[nb][16]            half super-block scales: d[i][r] is row r's d of
 *                        super-block i (32 bytes per super-block), all of
 *                        them first, so what follows is 64-byte aligned
 *                        whenever the group is and nb is even;
 *   then per super-block i, 3328 bytes (52 cache lines):
 *     sc[16][16]         int8 sub-block scales: sc[s][r] = row r's
 *                        scales[s], so one 16-byte load is sub-block s's
 *                        scale of all 16 rows;
 *     q[16][3][16][4]    the 6-bit codes of sub-block s (elements 16s ..
 *                        16s + 15): byte q[s][v][r][j] (v = 0..2, j = 0..3)
 *                        holds in bits 0..5 the code of element 16s + 4v + j
 *                        and in bits 6..7 bits 2v, 2v+1 of the code of
 *                        element 16s + 12 + j.
 *
 * So a 64-byte vector q[s][v] holds the same 4 elements of all 16 rows (lane
 * r = row r): the codes of chunks v = 0..2 are that vector AND 0x3F, and the
 * fourth chunk's codes are assembled from the three vectors' top bits with
 * three shifts, two bit-selects and an AND; 192 bytes per 16 x 16 codes, the
 * file's 6 bits per code.
 *
 * Arithmetic (the reference vec_dot's, quant.c): per row, super-block and
 * activation row c (Q8_K: y codes, bsums, float dy),
 *     sumi = sum_s sc[s] * (sum_{j in s} q_j * y_j - 32 * bsums[s])
 * exactly in int32, then sum += (d * dy) * (float)sumi in float, in that
 * order, so every product here (and in the fast kernels, which keep the same
 * float steps) equals the reference vec_dot's result bit for bit.
 * Bounds: q in 0..63, |y| <= 128, |sc| <= 128: |sum q*y| <= 16*63*128 =
 * 129024 and |32 * bsum| <= 65536 per sub-block, so the scaled term is
 * below 2^25 and sumi below 2^29 in magnitude: no int32 overflow. (Any
 * int16 bsums keep each scaled term below 2^28; the sum over 16 is taken
 * modulo 2^32, as the SIMD lanes do, so even a foreign activation row
 * cannot cause undefined behaviour.)
 */
#include "engine/pack_q6_k.h"

#include "engine/fp16.h"
#include "engine/pack_ref.h"

#include <string.h>

#define Q6K_BYTES 210
#define Q8K_BYTES 292
#define SB_BYTES TK_PACK_Q6_K_SB_BYTES

size_t tk_pack_q6_k_group_size(int64_t n)
{
	if (n <= 0 || n % TK_QK_K)
		return 0;
	return (size_t)(n / TK_QK_K) * TK_PACK_ROWS * Q6K_BYTES;
}

/* Code (0..63) of element e (0..255) of the file block at b; quant.h says
 * where its bits live. */
static int file_code(const uint8_t *b, int e)
{
	const int h = e >> 7, k = (e >> 5) & 3, l = e & 31;
	const int lo = b[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1)) & 15;
	const int hi = b[128 + 32 * h + l] >> (2 * k) & 3;
	return lo | hi << 4;
}

/* The reference packer (pack_ref.h): element by element, from the layout. */
void tk_pack_q6_k_pack_ref(void *dst, const void *src, size_t row_bytes, int64_t n)
{
	const int64_t nb = n / TK_QK_K;
	uint8_t *out = dst;
	uint8_t *sbs = out + (size_t)nb * 32;
	uint8_t code[TK_QK_K]; /* one file block's codes, decoded once */
	for (int64_t i = 0; i < nb; i++) {
		uint8_t *sb = sbs + (size_t)i * SB_BYTES;
		for (int r = 0; r < TK_PACK_ROWS; r++) {
			const uint8_t *b = (const uint8_t *)src + (size_t)r * row_bytes +
					   (size_t)i * Q6K_BYTES;
			memcpy(out + (size_t)i * 32 + 2 * r, b + 208, 2); /* d, as stored */
			for (int s = 0; s < 16; s++)
				sb[16 * s + r] = b[192 + s];
			for (int e = 0; e < TK_QK_K; e++)
				code[e] = (uint8_t)file_code(b, e);
			for (int s = 0; s < 16; s++) {
				uint8_t *q = sb + 256 + 192 * s;
				const uint8_t *c = code + 16 * s;
				for (int v = 0; v < 3; v++)
					for (int j = 0; j < 4; j++)
						q[64 * v + 4 * r + j] =
							(uint8_t)(c[4 * v + j] | (c[12 + j] >> (2 * v) & 3) << 6);
			}
		}
	}
}

/* The portable load-time packer (pack_ref.h): the reference's bytes, by words.
 * Sub-block s (elements 16s .. 16s + 15) lies in one 32-element run of the
 * file block: with h = s / 8, k = s / 2 % 4 and o = 16 * (s % 2), its low
 * 4 bits are nibble k / 2 of ql[64h + 32 * (k % 2) + o ..] and its high 2
 * bits are bits 2k, 2k+1 of qh[32h + o ..], 16 consecutive bytes each, so
 * two 64-bit words of codes come from two words of each:
 *     c = (ql >> 4 * (k / 2) & 0x0f..) | (qh >> 2k & 0x03..) << 4,
 * and the three packed words of the row are codes 4v .. 4v + 3 OR'd with
 * bits 2v, 2v+1 of codes 12 .. 15 moved to bits 6..7. Super-block i of the
 * 16 rows is read, then its 3328 bytes are written, before i + 1. */
void tk_pack_q6_k_pack_words(void *dst, const void *src, size_t row_bytes, int64_t n)
{
	const int64_t nb = n / TK_QK_K;
	const uint64_t lo4 = 0x0f0f0f0f0f0f0f0fu, lo2 = 0x0303030303030303u;
	const uint32_t lo2w = 0x03030303u;
	uint8_t *out = dst;
	uint8_t *sbs = out + (size_t)nb * 32;
	for (int64_t i = 0; i < nb; i++) {
		uint8_t *sb = sbs + (size_t)i * SB_BYTES;
		const uint8_t *b = (const uint8_t *)src + (size_t)i * Q6K_BYTES;
		for (int r = 0; r < TK_PACK_ROWS; r++, b += row_bytes) {
			memcpy(out + (size_t)i * 32 + 2 * r, b + 208, 2); /* d, as stored */
			for (int s = 0; s < 16; s++)
				sb[16 * s + r] = b[192 + s];
			/* unrolled: every shift and offset below a constant */
#pragma GCC unroll 16
			for (int s = 0; s < 16; s++) {
				const int h = s / 8, k = s / 2 % 4, o = 16 * (s % 2);
				const uint8_t *ql = b + 64 * h + 32 * (k % 2) + o;
				const uint8_t *qh = b + 128 + 32 * h + o;
				const int ls = 4 * (k / 2), hs = 2 * k;
				const uint64_t c0 = (tk_pack_ld64(ql) >> ls & lo4) |
						    (tk_pack_ld64(qh) >> hs & lo2) << 4;
				const uint64_t c1 = (tk_pack_ld64(ql + 8) >> ls & lo4) |
						    (tk_pack_ld64(qh + 8) >> hs & lo2) << 4;
				const uint32_t top = (uint32_t)(c1 >> 32); /* codes 12..15 */
				uint8_t *q = sb + 256 + 192 * s + 4 * r;
				tk_pack_st32(q, (uint32_t)c0 | (top & lo2w) << 6);
				tk_pack_st32(q + 64, (uint32_t)(c0 >> 32) | (top >> 2 & lo2w) << 6);
				tk_pack_st32(q + 128, (uint32_t)c1 | (top >> 4 & lo2w) << 6);
			}
		}
	}
}

/* Code of element 16s + e (e in 0..15) of row r, from the packed q[s] at q. */
static int packed_code(const uint8_t *q, int r, int e)
{
	if (e < 12)
		return q[64 * (e / 4) + 4 * r + e % 4] & 63;
	int code = 0;
	for (int v = 0; v < 3; v++)
		code |= (q[64 * v + 4 * r + e - 12] >> 6) << (2 * v);
	return code;
}

static float rd_f32(const uint8_t *p)
{
	uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		     (uint32_t)p[3] << 24;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static void q6_k_gemm_ref(int64_t n, float *out, size_t ldo, const void *group, const void *y,
			  size_t by, int nc)
{
	const int64_t nb = n / TK_QK_K;
	const uint8_t *g = group;
	for (int c = 0; c < nc; c++) {
		const uint8_t *yr = (const uint8_t *)y + (size_t)c * by;
		for (int r = 0; r < TK_PACK_ROWS; r++) {
			float sum = 0.0f;
			for (int64_t i = 0; i < nb; i++) {
				const uint8_t *sb = g + (size_t)nb * 32 + (size_t)i * SB_BYTES;
				const uint8_t *yb = yr + (size_t)i * Q8K_BYTES;
				const int8_t *yq = (const int8_t *)(yb + 4);
				/* modulo 2^32 as the SIMD lanes: with the quantizer's
				 * bsums it never wraps (bounds above), and bsums from
				 * anywhere else cannot make it undefined */
				uint32_t sumi = 0;
				for (int s = 0; s < 16; s++) {
					const uint8_t *q = sb + 256 + 192 * s;
					int32_t dot = 0;
					for (int e = 0; e < 16; e++)
						dot += packed_code(q, r, e) * yq[16 * s + e];
					const int16_t bsum = (int16_t)(uint16_t)(yb[260 + 2 * s] |
										 yb[261 + 2 * s] << 8);
					sumi += (uint32_t)((int8_t)sb[16 * s + r] * (dot - 32 * bsum));
				}
				const uint8_t *dp = g + (size_t)i * 32 + 2 * r;
				const float dx = tk_fp16_to_fp32((uint16_t)(dp[0] | dp[1] << 8));
				sum += (dx * rd_f32(yb)) * (float)(int32_t)sumi;
			}
			out[(size_t)c * ldo + r] = sum;
		}
	}
}

const struct tk_pack_traits tk_pack_q6_k_ref = {
	.name = "q6_kx16",
	.group_size = tk_pack_q6_k_group_size,
	.pack = tk_pack_q6_k_pack,
	.gemm = q6_k_gemm_ref,
};
