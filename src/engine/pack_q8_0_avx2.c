/*
 * pack_q8_0_avx2.c — the AVX2 product of the q8_0x16 packed layout
 * (quant_pack.h, pack_q8_0.c) for CPUs without AVX-512 VNNI. Compiled with
 * the AVX2 flags for this file only (src/engine/CMakeLists.txt); empty on a
 * non-x86 build.
 *
 * Owns tk_pack_q8_0_avx2 (the portable group size and packer with this
 * gemm), installed for Q8_0 by tk_quant_avx2_install().
 *
 * A 256-bit register holds one half of a chunk line: chunk k of 8 rows
 * (lane i = row 8h + i, h = 0, 1). Without VNNI the 4-byte dot of every
 * lane is VPMADDUBSW + VPMADDWD with the sign-transfer trick on the signed
 * quants (u XOR 0x80): |x| (0..128, unsigned) times y with x's sign, so no
 * 16-bit pair sum can saturate when the activation codes lie in -127..127
 * (the quantizers guarantee it, as for the avx2 vec_dot: quant_avx2.c);
 * the trailer is not needed. Per block and column one convert and one FMA
 * by d_x * d_y (8 row scales, one VCVTPH2PS) into the column's 8-lane
 * float accumulator; blocks in order, as the reference gemm.
 * Sixteen registers do not hold 16 rows x 8 columns of accumulators: one
 * or two columns run both halves in one pass over the group (decode reads
 * it once); more run a pass per half and block of up to 4 columns,
 * compiled separately, the later passes reading the group from L1/L2.
 * The first pass prefetches the weights TK_PREFETCH_AHEAD ahead.
 */
#if defined(__x86_64__)

#include "engine/quant_pack.h"
#include "engine/quant_simd.h"

#include <immintrin.h>
#include <string.h>

#define AINL static inline __attribute__((always_inline))

#define Q8P_BLOCK 544 /* bytes of one block of a group: 32 scale + 512 quant */
#define Y_BLOCK 34    /* bytes of one Q8_0 activation block */
#define HALF_COLS 4   /* columns per pass */

AINL int32_t ld_i32(const uint8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

AINL uint16_t ld_u16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

/* Rows 8h..8h + 8H - 1 of the group (h = h0 .. h0 + H - 1; half h has its
 * scales at 16h of each block and its quants at 32h of each chunk line) x
 * C activation rows. */
AINL void q8p_pass(int64_t nb, float *out, size_t ldo, const uint8_t *g, const int h0,
		   const int H, const uint8_t *y, size_t by, const int C)
{
	const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
	__m256 accf[2][HALF_COLS];
	for (int j = 0; j < H; j++)
		for (int c = 0; c < C; c++)
			accf[j][c] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++, g += Q8P_BLOCK, y += Y_BLOCK) {
		if (h0 == 0)
			tk_prefetch_weights(g, Q8P_BLOCK);
		__m256i acc[2][HALF_COLS];
		for (int j = 0; j < H; j++)
			for (int c = 0; c < C; c++)
				acc[j][c] = _mm256_setzero_si256();
		for (int k = 0; k < 8; k++) {
			__m256i x[2], ax[2];
			for (int j = 0; j < H; j++) {
				x[j] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(
								g + 32 + 64 * k + 32 * (h0 + j))),
							flip);
				ax[j] = _mm256_abs_epi8(x[j]);
			}
			for (int c = 0; c < C; c++) {
				const __m256i yv =
					_mm256_set1_epi32(ld_i32(y + (size_t)c * by + 2 + 4 * k));
				for (int j = 0; j < H; j++) {
					const __m256i p = _mm256_maddubs_epi16(
						ax[j], _mm256_sign_epi8(yv, x[j]));
					acc[j][c] = _mm256_add_epi32(acc[j][c],
								     _mm256_madd_epi16(p, ones));
				}
			}
		}
		for (int c = 0; c < C; c++) {
			const __m256 dy =
				_mm256_cvtph_ps(_mm_set1_epi16((short)ld_u16(y + (size_t)c * by)));
			for (int j = 0; j < H; j++) {
				const __m256 dx = _mm256_cvtph_ps(
					_mm_loadu_si128((const __m128i *)(g + 16 * (h0 + j))));
				accf[j][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[j][c]),
							     _mm256_mul_ps(dx, dy), accf[j][c]);
			}
		}
	}
	for (int j = 0; j < H; j++)
		for (int c = 0; c < C; c++)
			_mm256_storeu_ps(out + (size_t)c * ldo + 8 * (h0 + j), accf[j][c]);
}

/* Decode: G groups gb bytes apart times one activation row y, in lockstep
 * (quant_pack.h's gemv): block b of every group, then b + 1. Per group the
 * operations of q8p_pass with h0 = 0, H = 2, C = 1: the integer sums are
 * exact, and the float steps (convert, d_x * d_y, FMA per block in order)
 * are the same, so every cell equals the gemm's bit for bit. The
 * activation chunk and scale are loaded once for all G groups. */
#ifndef Q8P_GEMV_PASS /* groups per pass: 1, 2 or 4 (-D to measure) */
#define Q8P_GEMV_PASS 4
#endif
#if Q8P_GEMV_PASS != 1 && Q8P_GEMV_PASS != 2 && Q8P_GEMV_PASS != 4
#error "Q8P_GEMV_PASS must be 1, 2 or 4"
#endif
#ifndef Q8P_GEMV_PF /* 1: software prefetch per stream, as the gemm's */
#define Q8P_GEMV_PF 1
#endif

AINL void q8p_gemv(int64_t nb, float *out, const uint8_t *g, size_t gb, const uint8_t *y,
		   const int G, const int PF)
{
	const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
	__m256 accf[Q8P_GEMV_PASS][2];
	for (int i = 0; i < G; i++)
		for (int j = 0; j < 2; j++)
			accf[i][j] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++, g += Q8P_BLOCK, y += Y_BLOCK) {
		if (PF)
			for (int i = 0; i < G; i++)
				tk_prefetch_weights(g + (size_t)i * gb, Q8P_BLOCK);
		__m256i acc[Q8P_GEMV_PASS][2];
		for (int i = 0; i < G; i++)
			for (int j = 0; j < 2; j++)
				acc[i][j] = _mm256_setzero_si256();
		for (int k = 0; k < 8; k++) {
			const __m256i yv = _mm256_set1_epi32(ld_i32(y + 2 + 4 * k));
			for (int i = 0; i < G; i++)
				for (int j = 0; j < 2; j++) {
					const __m256i x = _mm256_xor_si256(
						_mm256_loadu_si256((const __m256i *)(
							g + (size_t)i * gb + 32 + 64 * k + 32 * j)),
						flip);
					const __m256i p = _mm256_maddubs_epi16(
						_mm256_abs_epi8(x), _mm256_sign_epi8(yv, x));
					acc[i][j] = _mm256_add_epi32(acc[i][j],
								     _mm256_madd_epi16(p, ones));
				}
		}
		const __m256 dy = _mm256_cvtph_ps(_mm_set1_epi16((short)ld_u16(y)));
		for (int i = 0; i < G; i++)
			for (int j = 0; j < 2; j++) {
				const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128(
					(const __m128i *)(g + (size_t)i * gb + 16 * j)));
				accf[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][j]),
							     _mm256_mul_ps(dx, dy), accf[i][j]);
			}
	}
	for (int i = 0; i < G; i++)
		for (int j = 0; j < 2; j++)
			_mm256_storeu_ps(out + 16 * (size_t)i + 8 * (size_t)j, accf[i][j]);
}

#define Q8P_GEMV_CASE(G)                                               \
	case G:                                                        \
		q8p_gemv(nb, o, gi, gb, yb, G, Q8P_GEMV_PF);           \
		break;

static void q8_0x16_gemv_avx2(int64_t n, float *out, const void *groups, size_t gb, int ng,
			      const void *y)
{
	const int64_t nb = n / TK_QK8_0;
	const uint8_t *g = groups, *yb = y;
	for (int i0 = 0; i0 < ng; i0 += Q8P_GEMV_PASS) {
		float *o = out + 16 * (size_t)i0;
		const uint8_t *gi = g + (size_t)i0 * gb;
		switch (ng - i0 < Q8P_GEMV_PASS ? ng - i0 : Q8P_GEMV_PASS) {
		Q8P_GEMV_CASE(1)
#if Q8P_GEMV_PASS > 1
		Q8P_GEMV_CASE(2)
#endif
#if Q8P_GEMV_PASS >= 4
		Q8P_GEMV_CASE(3)
		Q8P_GEMV_CASE(4)
#endif
		default: break;
		}
	}
}

/* One or two columns: both halves in one pass (the group is read once:
 * the decode path). Three or more: a pass per half and block of up to 4
 * columns (16 registers hold 4 columns' int and float accumulators of one
 * half, not of two). */
static void q8_0x16_gemm_avx2(int64_t n, float *out, size_t ldo, const void *group,
			      const void *y, size_t by, int nc)
{
	const int64_t nb = n / TK_QK8_0;
	const uint8_t *g = group;
	if (nc == 1) {
		q8p_pass(nb, out, ldo, g, 0, 2, y, by, 1);
		return;
	}
	if (nc == 2) {
		q8p_pass(nb, out, ldo, g, 0, 2, y, by, 2);
		return;
	}
	for (int c0 = 0; c0 < nc; c0 += HALF_COLS) {
		const uint8_t *yc = (const uint8_t *)y + (size_t)c0 * by;
		float *oc = out + (size_t)c0 * ldo;
		switch (nc - c0 < HALF_COLS ? nc - c0 : HALF_COLS) {
		case 1: q8p_pass(nb, oc, ldo, g, 0, 2, yc, by, 1); break;
		case 2: q8p_pass(nb, oc, ldo, g, 0, 2, yc, by, 2); break;
		case 3:
			q8p_pass(nb, oc, ldo, g, 0, 1, yc, by, 3);
			q8p_pass(nb, oc, ldo, g, 1, 1, yc, by, 3);
			break;
		case 4:
			q8p_pass(nb, oc, ldo, g, 0, 1, yc, by, 4);
			q8p_pass(nb, oc, ldo, g, 1, 1, yc, by, 4);
			break;
		default: break;
		}
	}
}

const struct tk_pack_traits tk_pack_q8_0_avx2 = {
	.name = "q8_0x16",
	.group_size = tk_pack_q8_0_group_size,
	.pack = tk_pack_q8_0_pack,
	.gemm = q8_0x16_gemm_avx2,
	.gemv = q8_0x16_gemv_avx2,
};

#else
/* Not x86-64: nothing to build (ISO C wants one declaration). */
typedef int tk_pack_q8_0_avx2_absent;
#endif /* __x86_64__ */
