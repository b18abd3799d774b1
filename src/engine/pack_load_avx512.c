/*
 * pack_load_avx512.c — the AVX-512 load-time packers (pack_ref.h): the
 * bytes of the reference packers, 64 at a time. Every packed layout stores
 * "the same 4 bytes (or 2) of all 16 rows" side by side, so one 32-bit
 * gather with the 16 rows' offsets (lane r = row r) is one 64-byte line of
 * the group, give or take a mask, a shift or an XOR; the per-row byte
 * tables (q4_k, q6_k scales) are a 16 x 4 byte transpose of a gathered
 * vector (one byte shuffle and one dword permute). Needs AVX-512 F and BW
 * (the avx512 level of quant_simd.h implies both); pack_load.c decides at
 * run time whether these may run, and with which row strides (the
 * gathers' offsets are int32).
 *
 * Reads: only bytes of the 16 rows' blocks being packed (each gather reads
 * 4 or 8 bytes inside one file block), so they never run past a row.
 */
#include "engine/pack_ref.h"

#if defined(__x86_64__)

#include "engine/pack_q4_k.h"
#include "engine/pack_q6_k.h"
#include "engine/quant.h"
#include "engine/quant_pack.h"

#include <immintrin.h>

#define GATHER32(idx, p) _mm512_i32gather_epi32((idx), (const void *)(p), 1)

/* The 16 rows' byte offsets, row r in lane r. */
static __m512i row_offsets(size_t row_bytes)
{
	return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
						    14, 15),
				  _mm512_set1_epi32((int)row_bytes));
}

/* Lane r holds row r's bytes t = 0..3 (of 4 consecutive table entries);
 * returns the 64 bytes entry-major: byte 16t + r = row r's byte t. */
static __m512i transpose_16x4(__m512i v)
{
	/* within each 128-bit lane L (rows 4L .. 4L + 3): dword t = byte t of
	 * its 4 rows */
	const __m512i bytes = _mm512_broadcast_i32x4(
		_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
	v = _mm512_shuffle_epi8(v, bytes);
	/* dword 4t + L of the result = lane L's dword t */
	const __m512i dwords =
		_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
	return _mm512_permutexvar_epi32(dwords, v);
}

/* The low 16 bits of each lane, 32 bytes (lane r at byte 2r). */
static void store_lo16(unsigned char *p, __m512i v)
{
	_mm256_storeu_si256((__m256i *)(void *)p, _mm512_cvtepi32_epi16(v));
}

void tk_pack_q8_0_pack_avx512(void *dst, const void *src, size_t row_bytes, int64_t n)
{
	const int64_t nb = n / TK_QK8_0;
	const __m512i idx = row_offsets(row_bytes);
	const __m512i flip = _mm512_set1_epi32((int)0x80808080u);
	const unsigned char *s = src;
	unsigned char *g = dst;
	for (int64_t b = 0; b < nb; b++, g += 544) {
		const unsigned char *blk = s + (size_t)b * sizeof(struct tk_block_q8_0);
		store_lo16(g, GATHER32(idx, blk)); /* d, and 2 quants dropped */
		for (int k = 0; k < TK_QK8_0 / 4; k++)
			_mm512_storeu_si512(g + 32 + 64 * k,
					    _mm512_xor_si512(GATHER32(idx, blk + 2 + 4 * k), flip));
	}
}

void tk_pack_f16_pack_avx512(void *dst, const void *src, size_t row_bytes, int64_t n)
{
	/* 8 bytes (elements e .. e + 3) of rows 0..7 and of rows 8..15 as
	 * two gathers of 64-bit lanes; half (4r + t) of the first is row r's
	 * element e + t. One two-source word permute then makes elements e,
	 * e + 1 of all 16 rows (64 bytes), another e + 2, e + 3. */
	const __m256i idx8 = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
						_mm256_set1_epi32((int)row_bytes));
	const unsigned char *s = src, *s8 = s + 8 * row_bytes;
	unsigned char *d = dst;
	short i01[32], i23[32];
	for (int p = 0; p < 32; p++) {
		const int t = p / 16, r = p % 16;
		const int at = r < 8 ? 4 * r : 32 + 4 * (r - 8);
		i01[p] = (short)(at + t);
		i23[p] = (short)(at + 2 + t);
	}
	const __m512i p01 = _mm512_loadu_si512(i01), p23 = _mm512_loadu_si512(i23);
	int64_t e = 0;
	for (; e + 4 <= n; e += 4) {
		const __m512i a = _mm512_i32gather_epi64(idx8, (const void *)(s + 2 * e), 1);
		const __m512i b = _mm512_i32gather_epi64(idx8, (const void *)(s8 + 2 * e), 1);
		_mm512_storeu_si512(d + 32 * e, _mm512_permutex2var_epi16(a, p01, b));
		_mm512_storeu_si512(d + 32 * e + 64, _mm512_permutex2var_epi16(a, p23, b));
	}
	for (; e < n; e++)
		for (int r = 0; r < TK_PACK_ROWS; r++)
			memcpy(d + (size_t)e * 32 + 2 * (size_t)r, s + (size_t)r * row_bytes + 2 * (size_t)e,
			       2);
}

void tk_pack_q4_k_pack_avx512(void *dst, const void *src, size_t row_bytes, int64_t n)
{
	const int64_t nb = n / TK_QK_K;
	const __m512i idx = row_offsets(row_bytes);
	const __m512i c3f = _mm512_set1_epi8(0x3f), c0f = _mm512_set1_epi8(0x0f);
	const __m512i c03 = _mm512_set1_epi8(0x03), cf0 = _mm512_set1_epi8((char)0xf0);
	const unsigned char *s = src;
	unsigned char *g = dst;
	for (int64_t b = 0; b < nb; b++, g += TK_PQ4K_BYTES) {
		const unsigned char *blk = s + (size_t)b * 144;
		const __m512i dd = GATHER32(idx, blk); /* d | dmin << 16 */
		store_lo16(g + TK_PQ4K_D, dd);
		store_lo16(g + TK_PQ4K_DMIN, _mm512_srli_epi32(dd, 16));
		/* the 12 scale bytes q[0..11] of each row as three dwords: for
		 * j < 4 the scale is q[j] & 63 and the min q[j + 4] & 63; for
		 * j = 4 + t, the scale is (q[8 + t] & 15) | (q[t] >> 6) << 4
		 * and the min (q[8 + t] >> 4) | (q[4 + t] >> 6) << 4 */
		const __m512i q0 = GATHER32(idx, blk + 4), q1 = GATHER32(idx, blk + 8);
		const __m512i q2 = GATHER32(idx, blk + 12);
		const __m512i sc_lo = _mm512_and_si512(q0, c3f), m_lo = _mm512_and_si512(q1, c3f);
		const __m512i sc_hi = _mm512_or_si512(
			_mm512_and_si512(q2, c0f),
			_mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(q0, 6), c03), 4));
		const __m512i m_hi = _mm512_or_si512(
			_mm512_and_si512(_mm512_srli_epi32(q2, 4), c0f),
			_mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(q1, 6), c03), 4));
		_mm512_storeu_si512(g + TK_PQ4K_M, m_lo);
		_mm512_storeu_si512(g + TK_PQ4K_M + 64, m_hi);
		_mm512_storeu_si512(g + TK_PQ4K_SC, transpose_16x4(sc_lo));
		_mm512_storeu_si512(g + TK_PQ4K_SC + 64, transpose_16x4(sc_hi));
		/* qs[32h ..]: low nibbles sub-block 2h, high nibbles 2h + 1;
		 * chunk k pairs qs[32h + 4k ..] with qs[32h + 16 + 4k ..] */
		for (int h = 0; h < 4; h++)
			for (int k = 0; k < 4; k++) {
				const __m512i a = GATHER32(idx, blk + 16 + 32 * h + 4 * k);
				const __m512i c = GATHER32(idx, blk + 32 + 32 * h + 4 * k);
				const __m512i w0 = _mm512_or_si512(
					_mm512_and_si512(a, c0f),
					_mm512_slli_epi32(_mm512_and_si512(c, c0f), 4));
				const __m512i w1 =
					_mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(a, 4), c0f),
							_mm512_and_si512(c, cf0));
				_mm512_storeu_si512(g + TK_PQ4K_Q + 512 * h + 64 * k, w0);
				_mm512_storeu_si512(g + TK_PQ4K_Q + 512 * h + 256 + 64 * k, w1);
			}
	}
}

/* The 6-bit codes of 4 elements of all 16 rows from gathered ql and qh
 * dwords: (ql >> ls & 15) | (qh >> hs & 3) << 4 per byte. */
static __m512i q6_codes(__m512i ql, __m512i qh, __m512i ls, __m512i hs)
{
	const __m512i c0f = _mm512_set1_epi8(0x0f), c03 = _mm512_set1_epi8(0x03);
	return _mm512_or_si512(
		_mm512_and_si512(_mm512_srlv_epi32(ql, ls), c0f),
		_mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(qh, hs), c03), 4));
}

void tk_pack_q6_k_pack_avx512(void *dst, const void *src, size_t row_bytes, int64_t n)
{
	const int64_t nb = n / TK_QK_K;
	const __m512i idx = row_offsets(row_bytes);
	const __m512i c03 = _mm512_set1_epi8(0x03);
	uint8_t *out = dst;
	uint8_t *sbs = out + (size_t)nb * 32;
	for (int64_t i = 0; i < nb; i++) {
		uint8_t *sb = sbs + (size_t)i * TK_PACK_Q6_K_SB_BYTES;
		const uint8_t *b = (const uint8_t *)src + (size_t)i * 210;
		/* d is bytes 208..209: the upper half of the dword at 206 (the
		 * block's last 4 bytes, so the gather stays inside it) */
		store_lo16(out + (size_t)i * 32, _mm512_srli_epi32(GATHER32(idx, b + 206), 16));
		for (int t = 0; t < 4; t++)
			_mm512_storeu_si512(sb + 64 * t, transpose_16x4(GATHER32(idx, b + 192 + 4 * t)));
		for (int s = 0; s < 16; s++) {
			const int h = s / 8, k = s / 2 % 4, o = 16 * (s % 2);
			const uint8_t *ql = b + 64 * h + 32 * (k % 2) + o;
			const uint8_t *qh = b + 128 + 32 * h + o;
			const __m512i ls = _mm512_set1_epi32(4 * (k / 2)), hs = _mm512_set1_epi32(2 * k);
			const __m512i top = q6_codes(GATHER32(idx, ql + 12), GATHER32(idx, qh + 12), ls, hs);
			uint8_t *q = sb + 256 + 192 * s;
			for (int v = 0; v < 3; v++) {
				const __m512i c =
					q6_codes(GATHER32(idx, ql + 4 * v), GATHER32(idx, qh + 4 * v), ls, hs);
				const __m512i hi = _mm512_and_si512(
					_mm512_srlv_epi32(top, _mm512_set1_epi32(2 * v)), c03);
				_mm512_storeu_si512(q + 64 * v, _mm512_or_si512(c, _mm512_slli_epi32(hi, 6)));
			}
		}
	}
}

#endif
