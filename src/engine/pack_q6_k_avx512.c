/*
 * pack_q6_k_avx512.c — the AVX-512 (F/BW/VL + VNNI) product of the q6_kx16
 * layout (pack_q6_k.c): tk_pack_q6_k_avx512, the portable size and packer
 * with this gemm and gemv. Compiled with the AVX-512 flags for this file only
 * (src/engine/CMakeLists.txt, by its name); empty on a non-x86 build.
 * Installed by tk_quant_avx512_install() into the active Q6_K traits.
 *
 * One zmm lane per row of the group. Per super-block i and sub-block s:
 *   - decode: three 64-byte loads q[s][0..2]; chunks 0..2 are AND 0x3F,
 *     chunk 3 is (q0 >> 6) | (q1 >> 4 & 0x0C) | (q2 >> 2 & 0x30), built with
 *     three 16-bit shifts, two VPTERNLOGD bit-selects and an AND (the
 *     shifts pull bits across byte boundaries; the selects and the AND keep
 *     only the bits that came from the right byte): 9 instructions for
 *     16 rows x 16 codes, shared by all columns; one VPMOVSXBD load gives
 *     the 16 rows' scales of s;
 *   - per column c: an accumulator starts at -32 * bsums[s] (broadcast from
 *     a small table made once per super-block and column), takes four
 *     VPDPBUSD (codes unsigned 0..63, the column's 4-byte chunk broadcast
 *     as the signed operand), is multiplied by the scales (VPMULLD) and
 *     added to the super-block's int32 sum. These are the reference's exact
 *     integers: |sum q*y - 32 bsum| < 2^18, times |sc| <= 128 below 2^25,
 *     sixteen of them below 2^29 (VPDPBUSD does not saturate; no lane can
 *     overflow).
 *   - per super-block and column: sum = sum + (d * dy) * (float)sumi on
 *     16 lanes, the reference vec_dot's float steps in its order (no FMA:
 *     -ffp-contract=off), so every cell equals the Q6_K vec_dot bit for bit.
 * nc = 1..8 are compiled separately (the columns' accumulators stay in
 * registers: 8 int32 sums + 8 float sums + 4 code vectors + scales and
 * masks fit the 32 zmm registers). Every gemm call prefetches the weights
 * TK_PREFETCH_AHEAD ahead (quant_simd.h).
 * Decode (one activation row) has its own kernel, q6_k_gemv_kern
 * (quant_pack.h's gemv): up to 8 groups in lockstep, sub-block s of every
 * group before s + 1, so a thread keeps 8 streams of DRAM reads in flight
 * instead of one; per cell the same steps as the gemm with nc = 1.
 */
#if defined(__x86_64__)

#include "engine/pack_q6_k.h"
#include "engine/quant_simd.h"
#include "engine/quant_x86.h"

#include <immintrin.h>
#include <string.h>

#define Q8K_BYTES 292
#define SEL 0xCA /* VPTERNLOGD: a ? b : c, bit by bit (a is the mask) */

AINL int32_t ld_i32(const uint8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* The four code vectors of one sub-block (192 bytes at q, the layout's
 * q[s][3][16][4]): chunks 0..2 are the low six bits of the three 64-byte
 * lines; chunk 3 gathers bits 0-1 from line 0's top, 2-3 from line 1's,
 * 4-5 from line 2's. Codes 0..63, one per byte. */
AINL void q6_codes(const uint8_t *q, __m512i c[4])
{
	const __m512i m3f = _mm512_set1_epi8(0x3f), m03 = _mm512_set1_epi8(0x03),
		      m0f = _mm512_set1_epi8(0x0f);
	const __m512i v0 = _mm512_loadu_si512((const void *)q);
	const __m512i v1 = _mm512_loadu_si512((const void *)(q + 64));
	const __m512i v2 = _mm512_loadu_si512((const void *)(q + 128));
	const __m512i u = _mm512_ternarylogic_epi32(m03, _mm512_srli_epi16(v0, 6),
						    _mm512_srli_epi16(v1, 4), SEL);
	const __m512i w = _mm512_ternarylogic_epi32(m0f, u, _mm512_srli_epi16(v2, 2), SEL);
	c[0] = _mm512_and_si512(v0, m3f);
	c[1] = _mm512_and_si512(v1, m3f);
	c[2] = _mm512_and_si512(v2, m3f);
	c[3] = _mm512_and_si512(w, m3f);
}

AINL void q6_k_gemm_kern(int64_t n, float *out, size_t ldo, const uint8_t *g, const uint8_t *y,
			 size_t by, const int C)
{
	const int64_t nb = n / TK_QK_K;
	const uint8_t *sbs = g + (size_t)nb * 32;
	__m512 fsum[TK_PACK_COLS];
	for (int c = 0; c < C; c++)
		fsum[c] = _mm512_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		const uint8_t *sb = sbs + (size_t)i * TK_PACK_Q6_K_SB_BYTES;
		const uint8_t *yb[TK_PACK_COLS];
		/* off[c][s] = -32 * bsums[s] of column c: the accumulators' start */
		int32_t off[TK_PACK_COLS][16] __attribute__((aligned(64)));
		__m512i tot[TK_PACK_COLS];
		for (int c = 0; c < C; c++) {
			yb[c] = y + (size_t)c * by + (size_t)i * Q8K_BYTES;
			const __m512i bs = _mm512_cvtepi16_epi32(ld256(yb[c] + 260));
			_mm512_store_si512((void *)off[c],
					   _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(bs, 5)));
			tot[c] = _mm512_setzero_si512();
		}
		tk_prefetch_weights(sb, 256);
		for (int s = 0; s < 16; s++) {
			const uint8_t *q = sb + 256 + 192 * s;
			tk_prefetch_weights(q, 192);
			__m512i cd[4];
			q6_codes(q, cd);
			const __m512i c0 = cd[0], c1 = cd[1], c2 = cd[2], c3 = cd[3];
			const __m512i sc =
				_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(sb + 16 * s)));
			for (int c = 0; c < C; c++) {
				const uint8_t *yq = yb[c] + 4 + 16 * s;
				__m512i acc = _mm512_set1_epi32(off[c][s]);
				acc = _mm512_dpbusd_epi32(acc, c0, _mm512_set1_epi32(ld_i32(yq)));
				acc = _mm512_dpbusd_epi32(acc, c1, _mm512_set1_epi32(ld_i32(yq + 4)));
				acc = _mm512_dpbusd_epi32(acc, c2, _mm512_set1_epi32(ld_i32(yq + 8)));
				acc = _mm512_dpbusd_epi32(acc, c3, _mm512_set1_epi32(ld_i32(yq + 12)));
				tot[c] = _mm512_add_epi32(tot[c], _mm512_mullo_epi32(acc, sc));
			}
		}
		/* the reference's float step, in its order: bit-identical */
		const __m512 dx = _mm512_cvtph_ps(ld256(g + (size_t)i * 32));
		for (int c = 0; c < C; c++) {
			const __m512 dxy = _mm512_mul_ps(dx, _mm512_set1_ps(ld_f32(yb[c])));
			fsum[c] = _mm512_add_ps(fsum[c], _mm512_mul_ps(dxy, _mm512_cvtepi32_ps(tot[c])));
		}
	}
	for (int c = 0; c < C; c++)
		_mm512_storeu_ps(out + (size_t)c * ldo, fsum[c]);
}

/* Decode: G groups gb bytes apart times one activation row, in lockstep
 * (quant_pack.h's gemv). Per cell the same integers and the same float
 * steps in the same order as q6_k_gemm_kern with C = 1, so the results are
 * bit-identical to it. What the G groups share is done once per
 * sub-block: the activation's four broadcasts and the -32 * bsums start.
 * No software prefetch: G streams keep the hardware prefetchers busy
 * (bench_pack q6_k, 2048x5632 from DRAM, one thread: G = 8 with the
 * 8 KiB-ahead prefetch measured no faster, and 25% slower in cache). */
AINL void q6_k_gemv_kern(int64_t n, float *out, const uint8_t *g, size_t gb, const uint8_t *y,
			 const int G)
{
	const int64_t nb = n / TK_QK_K;
	const size_t sbs = (size_t)nb * 32;
	__m512 fsum[TK_PACK_GEMV_GROUPS];
	for (int k = 0; k < G; k++)
		fsum[k] = _mm512_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		const uint8_t *yb = y + (size_t)i * Q8K_BYTES;
		const size_t sb = sbs + (size_t)i * TK_PACK_Q6_K_SB_BYTES;
		int32_t off[16] __attribute__((aligned(64)));
		const __m512i bs = _mm512_cvtepi16_epi32(ld256(yb + 260));
		_mm512_store_si512((void *)off,
				   _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(bs, 5)));
		__m512i tot[TK_PACK_GEMV_GROUPS];
		for (int k = 0; k < G; k++)
			tot[k] = _mm512_setzero_si512();
		for (int s = 0; s < 16; s++) {
			const uint8_t *yq = yb + 4 + 16 * s;
			const __m512i init = _mm512_set1_epi32(off[s]);
			const __m512i y0 = _mm512_set1_epi32(ld_i32(yq)),
				      y1 = _mm512_set1_epi32(ld_i32(yq + 4)),
				      y2 = _mm512_set1_epi32(ld_i32(yq + 8)),
				      y3 = _mm512_set1_epi32(ld_i32(yq + 12));
			for (int k = 0; k < G; k++) {
				const uint8_t *gs = g + (size_t)k * gb + sb;
				const uint8_t *q = gs + 256 + 192 * s;
				__m512i cd[4];
				q6_codes(q, cd);
				const __m512i sc = _mm512_cvtepi8_epi32(
					_mm_loadu_si128((const __m128i *)(gs + 16 * s)));
				__m512i acc = _mm512_dpbusd_epi32(init, cd[0], y0);
				acc = _mm512_dpbusd_epi32(acc, cd[1], y1);
				acc = _mm512_dpbusd_epi32(acc, cd[2], y2);
				acc = _mm512_dpbusd_epi32(acc, cd[3], y3);
				tot[k] = _mm512_add_epi32(tot[k], _mm512_mullo_epi32(acc, sc));
			}
		}
		/* q6_k_gemm_kern's float step with C = 1, in its order */
		const __m512 dy = _mm512_set1_ps(ld_f32(yb));
		for (int k = 0; k < G; k++) {
			const __m512 dx = _mm512_cvtph_ps(ld256(g + (size_t)k * gb + (size_t)i * 32));
			fsum[k] = _mm512_add_ps(fsum[k],
						_mm512_mul_ps(_mm512_mul_ps(dx, dy), _mm512_cvtepi32_ps(tot[k])));
		}
	}
	for (int k = 0; k < G; k++)
		_mm512_storeu_ps(out + 16 * k, fsum[k]);
}

#define GEMV_CASE(G)                                                  \
	case G:                                                       \
		q6_k_gemv_kern(n, out, groups, gb, y, G);             \
		break;

static void q6_k_gemv_avx512(int64_t n, float *out, const void *vgroups, size_t gb, int ng,
			     const void *vy)
{
	const uint8_t *groups = vgroups, *y = vy;
	switch (ng) {
		GEMV_CASE(1)
		GEMV_CASE(2)
		GEMV_CASE(3)
		GEMV_CASE(4)
		GEMV_CASE(5)
		GEMV_CASE(6)
		GEMV_CASE(7)
		GEMV_CASE(8)
	default:
		break;
	}
}

#define GEMM_CASE(C)                                                   \
	case C:                                                        \
		q6_k_gemm_kern(n, out, ldo, group, y, by, C);          \
		break;

static void q6_k_gemm_avx512(int64_t n, float *out, size_t ldo, const void *vgroup,
			     const void *vy, size_t by, int nc)
{
	const uint8_t *group = vgroup, *y = vy;
	switch (nc) {
		GEMM_CASE(1)
		GEMM_CASE(2)
		GEMM_CASE(3)
		GEMM_CASE(4)
		GEMM_CASE(5)
		GEMM_CASE(6)
		GEMM_CASE(7)
		GEMM_CASE(8)
	default:
		break;
	}
}

const struct tk_pack_traits tk_pack_q6_k_avx512 = {
	.name = "q6_kx16",
	.group_size = tk_pack_q6_k_group_size,
	.pack = tk_pack_q6_k_pack,
	.gemm = q6_k_gemm_avx512,
	.gemv = q6_k_gemv_avx512,
};

#else
/* Not x86-64: nothing to build (ISO C wants one declaration). */
typedef int tk_pack_q6_k_avx512_absent;
#endif /* __x86_64__ */
