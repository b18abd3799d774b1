/*
 * pack_q4_k_avx512.c — the AVX-512 VNNI product of the q4_kx16 packed layout
 * (quant_pack.h, pack_q4_k.c): 16 Q4_K weight rows x 1..8 Q8_K activation
 * rows. Compiled with the AVX-512 flags (and -ffp-contract=off) for this
 * file only (src/engine/CMakeLists.txt); empty on a non-x86 build.
 *
 * Owns tk_pack_q4_k_avx512 (the portable group size and packer with this
 * gemm), installed for Q4_K by tk_quant_avx512_install().
 *
 * Per packed super-block (256 elements of 16 rows, lane r = row r):
 *   - per sub-block j: 4 chunk loads of 64 bytes; each gives, masked with
 *     0x0F and shifted right by 4, the codes of elements 32j + 4k .. +3 and
 *     32j + 16 + 4k .. +3 of all 16 rows; per column c one VPDPBUSD per
 *     nibble half against the column's 4 activation bytes broadcast (an
 *     embedded {1to16} load): 8 VPDPBUSD into a fresh int32 accumulator,
 *     then times the 16 rows' scales of j (one 16-byte load, VPMOVZXBD,
 *     VPMULLD) into the super-block's int32 sum isum;
 *   - the mins: per j, the 16 rows' mins m_j widened to int16 pairs
 *     (m_j, m_j); per column one VPDPWSSD against the column's bsums
 *     2j, 2j + 1 broadcast (they are adjacent int16s in the Q8_K block):
 *     msum += m_j * (bsums[2j] + bsums[2j + 1]);
 *   - per column: (d * dy) * (float)isum - (dmin * dy) * (float)msum added
 *     to the column's float sum, with d, dmin the 16 rows' halves (one
 *     VCVTPH2PS each). These are the reference vec_dot's float steps in its
 *     order, not fused (-ffp-contract=off), so every cell equals
 *     tk_quant_q4_k_vec_dot's reference result bit for bit; they cost 8
 *     float operations per 4096 multiply-adds.
 * Integer bounds (codes q <= 15, scales and mins <= 63, activations in
 * -128..127 although the Q8_K quantizer stops at -127):
 *     one VPDPBUSD step adds 4 * 15 * 128 = 7680 at most (no saturation:
 *     VPDPBUSD wraps, and nothing comes near it);
 *     |sub-block dot| <= 32 * 15 * 128 = 61440;
 *     |isum| <= 8 * 63 * 61440 = 30965760 < 2^31;
 *     |bsums| <= 16 * 128 = 2048 (int16), |msum| <= 8 * 63 * 2 * 2048
 *     = 2064384 < 2^31.
 * All exact, so the integer sums equal the reference's in any order.
 *
 * nc is a compile-time constant in each specialization (1..8). Registers
 * with nc = 8: 8 float sums, 8 isum, 8 sub-block dots, the two nibble
 * operands, the mask and the scales: 28 of the 32; the mins pass (isum,
 * msum, float sums, the pairs) needs 25. nc = 1 is the decode kernel; every
 * nc prefetches the weights TK_PREFETCH_AHEAD ahead (quant_simd.h): a
 * group of a long row is streamed once per call, so batched decode
 * (nc = 2..4) reads from DRAM too.
 */
#if defined(__x86_64__)

#include "engine/pack_q4_k.h"
#include "engine/quant_simd.h"

#include <immintrin.h>
#include <string.h>

#define AINL static inline __attribute__((always_inline))

#define Y_BLOCK 292 /* bytes of one Q8_K activation block */
#define Y_QS 4      /* its int8 codes */
#define Y_BSUMS 260 /* its 16 int16 sums of 16 codes */

AINL int32_t ld_i32(const uint8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4); /* x86 is little-endian, as the Q8_K fields */
	return v;
}

AINL float ld_f32(const uint8_t *p)
{
	float v;
	memcpy(&v, p, 4);
	return v;
}

AINL __m512i ld_bytes_epi32(const uint8_t *p) /* 16 bytes -> 16 int32 */
{
	return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}

AINL void q4kp_kern(int64_t nb, float *out, size_t ldo, const uint8_t *g, const uint8_t *y,
		    size_t by, const int C)
{
	const __m512i nib = _mm512_set1_epi8(0x0f);
	__m512 accf[TK_PACK_COLS];
	for (int c = 0; c < C; c++)
		accf[c] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nb; b++, g += TK_PQ4K_BYTES, y += Y_BLOCK) {
		tk_prefetch_weights(g, TK_PQ4K_BYTES);
		__m512i isum[TK_PACK_COLS];
		for (int j = 0; j < 8; j++) {
			const uint8_t *q = g + TK_PQ4K_Q + 256 * j;
			const uint8_t *yj = y + Y_QS + 32 * j;
			__m512i dot[TK_PACK_COLS];
			for (int c = 0; c < C; c++)
				dot[c] = _mm512_setzero_si512();
			for (int k = 0; k < 4; k++) {
				const __m512i v = _mm512_loadu_si512(q + 64 * k);
				const __m512i lo = _mm512_and_si512(v, nib);
				const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
				for (int c = 0; c < C; c++) {
					const uint8_t *yc = yj + (size_t)c * by + 4 * k;
					dot[c] = _mm512_dpbusd_epi32(dot[c], lo,
								     _mm512_set1_epi32(ld_i32(yc)));
					dot[c] = _mm512_dpbusd_epi32(dot[c], hi,
								     _mm512_set1_epi32(ld_i32(yc + 16)));
				}
			}
			const __m512i sc = ld_bytes_epi32(g + TK_PQ4K_SC + 16 * j);
			for (int c = 0; c < C; c++) {
				const __m512i p = _mm512_mullo_epi32(dot[c], sc);
				isum[c] = j ? _mm512_add_epi32(isum[c], p) : p;
			}
		}
		__m512i msum[TK_PACK_COLS];
		for (int c = 0; c < C; c++)
			msum[c] = _mm512_setzero_si512();
		for (int j = 0; j < 8; j++) {
			const __m512i m = ld_bytes_epi32(g + TK_PQ4K_M + 16 * j);
			const __m512i mm = _mm512_or_si512(m, _mm512_slli_epi32(m, 16));
			for (int c = 0; c < C; c++)
				msum[c] = _mm512_dpwssd_epi32(
					msum[c], mm,
					_mm512_set1_epi32(ld_i32(y + (size_t)c * by + Y_BSUMS + 4 * j)));
		}
		const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + TK_PQ4K_D)));
		const __m512 mx =
			_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + TK_PQ4K_DMIN)));
		for (int c = 0; c < C; c++) {
			const __m512 dy = _mm512_set1_ps(ld_f32(y + (size_t)c * by));
			const __m512 a = _mm512_mul_ps(_mm512_mul_ps(dx, dy), _mm512_cvtepi32_ps(isum[c]));
			const __m512 s = _mm512_mul_ps(_mm512_mul_ps(mx, dy), _mm512_cvtepi32_ps(msum[c]));
			accf[c] = _mm512_add_ps(accf[c], _mm512_sub_ps(a, s));
		}
	}
	for (int c = 0; c < C; c++)
		_mm512_storeu_ps(out + (size_t)c * ldo, accf[c]);
}

#define Q4KP_CASE(C)                                                \
	case C:                                                     \
		q4kp_kern(nb, out, ldo, (const uint8_t *)group,     \
			  (const uint8_t *)y, by, C);               \
		break;

static void q4_kx16_gemm_avx512(int64_t n, float *out, size_t ldo, const void *group,
				const void *y, size_t by, int nc)
{
	const int64_t nb = n / TK_QK_K;
	switch (nc) {
	Q4KP_CASE(1)
	Q4KP_CASE(2)
	Q4KP_CASE(3)
	Q4KP_CASE(4)
	Q4KP_CASE(5)
	Q4KP_CASE(6)
	Q4KP_CASE(7)
	Q4KP_CASE(8)
	default:
		break;
	}
}

const struct tk_pack_traits tk_pack_q4_k_avx512 = {
	.name = "q4_kx16",
	.group_size = tk_pack_q4_k_group_size,
	.pack = tk_pack_q4_k_pack,
	.gemm = q4_kx16_gemm_avx512,
};

#else
/* Not x86-64: nothing to build (ISO C wants one declaration). */
typedef int tk_pack_q4_k_avx512_absent;
#endif /* __x86_64__ */
