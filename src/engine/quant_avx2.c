/*
 * quant_avx2.c — AVX2 + FMA + F16C variants of the hot tensor kernels
 * (quant_simd.h's "avx2" set), compiled with -mavx2 -mfma -mf16c for this
 * file only (src/engine/CMakeLists.txt) and installed only when cpu.h says
 * the CPU has them. On a non-x86 build the file is empty.
 *
 * Owns: tk_quant_avx2_install() and the kernels it installs:
 *   Q8_0, Q8_K from_float   bytes identical to the reference quantizers;
 *   Q8_0, Q4_0 x Q8_0       vec_dot and vec_dot_tile;
 *   Q4_K, Q5_K, Q6_K x Q8_K vec_dot and vec_dot_tile;
 *   F16                     to_float, vec_dot (F16 x F16) and vec_dot_tile
 *                           with float32 activations (ops.h's scheme);
 *   BF16                    vec_dot (BF16 x BF16).
 *
 * Arithmetic (docs/engine.md, "SIMD kernels"):
 *   - 32-element blocks (Q8_0, Q4_0): the block's integer dot is computed
 *     exactly in 8 int32 lanes (VPMADDUBSW then VPMADDWD, with the
 *     sign-transfer trick so the unsigned operand is |x|); the lanes are
 *     converted to float and multiplied-added by d_x * d_y into 8 float
 *     partial sums, summed once at the end. Activation codes must lie in
 *     -127..127 (the quantizers guarantee it): then no 16-bit pair sum can
 *     saturate, even for a weight code of -128.
 *   - K-quants: per super-block the integer sums are exact in 8 int32
 *     lanes (codes x activations by VPMADDUBSW, times the sub-block scales
 *     by VPMADDWD; the mins and Q6_K's -32 through the Q8_K block sums).
 *     Q4_K, Q5_K: the lanes are converted and multiplied-added by d_x * d_y
 *     (and dmin_x * d_y) into 8 float partial sums. Q6_K: the lanes are
 *     summed to the super-block's integer and the reference's float step
 *     follows, in its order, so Q6_K is bit-identical to the reference
 *     (the Q6_K golden's tight bound fails with float lane sums: one
 *     activation rounding flips, docs/engine.md).
 *   - F16/BF16: float products (exact) summed with FMA in 8-lane partial
 *     sums (the reference sums in double).
 * vec_dot of a quantized type is its tile kernel with one cell, or (Q8_0,
 * Q4_0) the same float steps in the same order, so tile cells equal vec_dot
 * bit for bit: batched decode gives each sequence the logits it gets alone.
 *
 * Tiles: AVX2 has 16 vector registers, so a tile of up to 4 x 4 is walked in
 * sub-tiles of at most 2 weight rows x 4 activation rows (8 accumulators);
 * within a sub-tile each weight block is loaded and decoded once.
 */
#if defined(__x86_64__)

#include "engine/quant_simd.h"
#include "engine/quant_x86.h"

#include "engine/fp16.h"
#include "engine/quant_pack.h"

#include <immintrin.h>
#include <string.h>

AINL int32_t hsum_epi32(__m256i v)
{
	__m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
	t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
	return _mm_cvtsi128_si32(t);
}

/* 8 int32 lanes, lane i = sum of x[4i..4i+3] * y[4i..4i+3] (signed bytes;
 * y in -127..127). ax = |x| read as unsigned, sy = y with x's sign. */
AINL __m256i dot_s8(__m256i ax, __m256i x, __m256i y)
{
	const __m256i sy = _mm256_sign_epi8(y, x);
	return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

/* Packs 4 x 8 int32 (each in -127..127) into 32 int8 in element order. */
AINL __m256i pack_i32x32(__m256i a, __m256i b, __m256i c, __m256i d)
{
	const __m256i ab = _mm256_packs_epi32(a, b); /* a0-3 b0-3 | a4-7 b4-7 */
	const __m256i cd = _mm256_packs_epi32(c, d);
	const __m256i abcd = _mm256_packs_epi16(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 ... */
	return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* NaN lanes to 0, then clamped to [-lim, lim]. */
AINL __m256 clamp_nan0(__m256 v, float lim)
{
	v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
	v = _mm256_max_ps(v, _mm256_set1_ps(-lim));
	return _mm256_min_ps(v, _mm256_set1_ps(lim));
}

/* ================= activation quantizers ================= */

/* roundf() per lane (half away from zero), exactly: t = trunc(v) and the
 * fraction v - t is exact in float. */
AINL __m256 round_away(__m256 v)
{
	const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
	const __m256 sgn = _mm256_set1_ps(-0.0f);
	const __m256 frac = _mm256_andnot_ps(sgn, _mm256_sub_ps(v, t));
	const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
	const __m256 one = _mm256_or_ps(_mm256_and_ps(v, sgn), _mm256_set1_ps(1.0f));
	return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

/* Q8_0: d = amax / 127, q = roundf(x / d) (as x * (1/d)), |q| <= 127. */
static void q8_0_from_float_avx2(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	for (int64_t i = 0; i < n / 32; i++, b += 34) {
		const float *x = src + i * 32;
		__m256 v[4];
		__m256 m = _mm256_setzero_ps();
		for (int k = 0; k < 4; k++) {
			v[k] = _mm256_loadu_ps(x + 8 * k);
			m = _mm256_max_ps(_mm256_and_ps(v[k], absmask), m); /* NaN lanes keep m */
		}
		__m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
		m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
		const float amax = _mm_cvtss_f32(m4);
		const float d = amax / 127.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;
		const uint16_t h = tk_fp32_to_fp16(d);
		b[0] = (uint8_t)h;
		b[1] = (uint8_t)(h >> 8);
		const __m256 vid = _mm256_set1_ps(id);
		__m256i q[4];
		for (int k = 0; k < 4; k++) {
			__m256 s = _mm256_mul_ps(v[k], vid);
			s = _mm256_and_ps(s, _mm256_cmp_ps(s, s, _CMP_ORD_Q));
			q[k] = _mm256_cvttps_epi32(clamp_nan0(round_away(s), 127.0f));
		}
		_mm256_storeu_si256((__m256i *)(b + 2), pack_i32x32(q[0], q[1], q[2], q[3]));
	}
}

/* Q8_K: max = the element of largest magnitude (first one, sign kept),
 * iscale = -127 / max, q = nearest-even(iscale * x) in -127..127,
 * d = 1 / iscale, bsums = sums of 16 codes. */
static void q8_k_from_float_avx2(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	for (int64_t i = 0; i < n / TK_QK_K; i++, b += 292) {
		const float *x = src + i * TK_QK_K;
		__m256 m = _mm256_setzero_ps();
		for (int j = 0; j < TK_QK_K; j += 8)
			m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), absmask), m);
		__m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
		m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
		const float amax = _mm_cvtss_f32(m4);
		if (amax == 0.0f) {
			memset(b, 0, 292);
			continue;
		}
		float max = 0.0f;
		const __m256 va = _mm256_set1_ps(amax);
		for (int j = 0; j < TK_QK_K; j += 8) {
			const __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + j), absmask);
			const int mk = _mm256_movemask_ps(_mm256_cmp_ps(a, va, _CMP_EQ_OQ));
			if (mk) {
				max = x[j + __builtin_ctz((unsigned)mk)];
				break;
			}
		}
		const float iscale = -127.0f / max;
		const __m256 vs = _mm256_set1_ps(iscale);
		int8_t *qs = (int8_t *)(b + 4);
		for (int j = 0; j < TK_QK_K; j += 32) {
			__m256i q[4];
			for (int k = 0; k < 4; k++) {
				__m256 s = _mm256_mul_ps(vs, _mm256_loadu_ps(x + j + 8 * k));
				s = clamp_nan0(s, 127.0f);
				s = _mm256_round_ps(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
				q[k] = _mm256_cvttps_epi32(s);
			}
			const __m256i p = pack_i32x32(q[0], q[1], q[2], q[3]);
			_mm256_storeu_si256((__m256i *)(qs + j), p);
			/* sums of 4 codes per int32 lane: lanes 0-3 the first 16 */
			const __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), p),
							     _mm256_set1_epi16(1));
			int32_t l[8];
			_mm256_storeu_si256((__m256i *)l, s4);
			for (int h = 0; h < 2; h++) {
				const uint16_t u = (uint16_t)(int16_t)(l[4 * h] + l[4 * h + 1] +
								       l[4 * h + 2] + l[4 * h + 3]);
				const int s = j / 16 + h;
				b[260 + 2 * s] = (uint8_t)u;
				b[260 + 2 * s + 1] = (uint8_t)(u >> 8);
			}
		}
		const float d = 1.0f / iscale;
		memcpy(b, &d, 4);
	}
}

/* ================= tile walking ================= */

/* Calls KERN(args..., R, C) with compile-time R in 1..2, C in 1..4. */
#define SUBTILE_2x4(KERN, rr, cc, ...)                                  \
	do {                                                            \
		switch ((rr) * 8 + (cc)) {                              \
		case 9: KERN(__VA_ARGS__, 1, 1); break;                 \
		case 10: KERN(__VA_ARGS__, 1, 2); break;                \
		case 11: KERN(__VA_ARGS__, 1, 3); break;                \
		case 12: KERN(__VA_ARGS__, 1, 4); break;                \
		case 17: KERN(__VA_ARGS__, 2, 1); break;                \
		case 18: KERN(__VA_ARGS__, 2, 2); break;                \
		case 19: KERN(__VA_ARGS__, 2, 3); break;                \
		case 20: KERN(__VA_ARGS__, 2, 4); break;                \
		default: break;                                         \
		}                                                       \
	} while (0)

/* A tile function walking nr x nc in sub-tiles of 2 x 4 with KERN. */
#define TILE_FN(name, KERN)                                                               \
	static void name(int64_t n, float *out, size_t ldo, const void *x, size_t bx,     \
			 const void *y, size_t by, int nr, int nc)                        \
	{                                                                                 \
		for (int r0 = 0; r0 < nr; r0 += 2) {                                      \
			const int rr = nr - r0 < 2 ? nr - r0 : 2;                         \
			for (int c0 = 0; c0 < nc; c0 += 4) {                              \
				const int cc = nc - c0 < 4 ? nc - c0 : 4;                 \
				SUBTILE_2x4(KERN, rr, cc, n, out + (size_t)c0 * ldo + r0, \
					    ldo, (const uint8_t *)x + (size_t)r0 * bx, bx, \
					    (const uint8_t *)y + (size_t)c0 * by, by);    \
			}                                                                 \
		}                                                                         \
	}

/* ================= Q8_0 x Q8_0, Q4_0 x Q8_0 ================= */

/* One block row r of x decoded to signed bytes xv (and |xv|), dotted with
 * every column's block, accumulated in acc[r][c]. */
AINL void q32_accumulate(__m256 acc[2][4], int r, __m256i xv, float dx, const uint8_t *yb,
			 size_t by, int C)
{
	const __m256i ax = _mm256_sign_epi8(xv, xv);
	for (int c = 0; c < C; c++) {
		const uint8_t *yc = yb + (size_t)c * by;
		const __m256i p = dot_s8(ax, xv, ld256(yc + 2));
		const __m256 dd = _mm256_set1_ps(dx * ld_half(yc));
		acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), dd, acc[r][c]);
	}
}

AINL void store_acc(__m256 acc[2][4], float *out, size_t ldo, int R, int C)
{
	for (int r = 0; r < R; r++)
		for (int c = 0; c < C; c++)
			out[(size_t)c * ldo + r] = hsum_ps(acc[r][c]);
}

AINL void q8_0_kern(int64_t n, float *out, size_t ldo, const uint8_t *x, size_t bx,
		    const uint8_t *y, size_t by, const int R, const int C)
{
	__m256 acc[2][4];
	for (int r = 0; r < 2; r++)
		for (int c = 0; c < 4; c++)
			acc[r][c] = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / 32; i++) {
		for (int r = 0; r < R; r++) {
			const uint8_t *xb = x + (size_t)r * bx + (size_t)i * 34;
			q32_accumulate(acc, r, ld256(xb + 2), ld_half(xb), y + (size_t)i * 34, by, C);
		}
	}
	store_acc(acc, out, ldo, R, C);
}

/* Q4_0 block: low nibbles are elements 0-15, high nibbles 16-31; q - 8. */
AINL __m256i q4_0_decode(const uint8_t *qs)
{
	const __m128i q = _mm_loadu_si128((const __m128i *)qs);
	const __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
	return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(15)), _mm256_set1_epi8(8));
}

AINL void q4_0_kern(int64_t n, float *out, size_t ldo, const uint8_t *x, size_t bx,
		    const uint8_t *y, size_t by, const int R, const int C)
{
	__m256 acc[2][4];
	for (int r = 0; r < 2; r++)
		for (int c = 0; c < 4; c++)
			acc[r][c] = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / 32; i++) {
		for (int r = 0; r < R; r++) {
			const uint8_t *xb = x + (size_t)r * bx + (size_t)i * 18;
			q32_accumulate(acc, r, q4_0_decode(xb + 2), ld_half(xb), y + (size_t)i * 34,
				       by, C);
		}
	}
	store_acc(acc, out, ldo, R, C);
}

TILE_FN(q8_0_tile_avx2, q8_0_kern)
TILE_FN(q4_0_tile_avx2, q4_0_kern)

/* The decode kernels (one row, one column), two blocks per step with one
 * conversion of their four half scales (the conversions, not the FMA chain,
 * bounded the loop). Same float steps in the same order as the tile kernel's
 * cells, so tiles equal vec_dot bit for bit. */
static void q8_0_vec_dot_avx2(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	const int64_t nb = n / 32;
	__m256 acc = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 1 < nb; i += 2, x += 68, y += 68) {
		tk_prefetch_weights(x, 68);
		__m256 d0, d1;
		scale_pair(x, y, x + 34, y + 34, &d0, &d1);
		const __m256i x0 = ld256(x + 2), x1 = ld256(x + 36);
		const __m256i p0 = dot_s8(_mm256_sign_epi8(x0, x0), x0, ld256(y + 2));
		const __m256i p1 = dot_s8(_mm256_sign_epi8(x1, x1), x1, ld256(y + 36));
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), d0, acc);
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), d1, acc);
	}
	if (i < nb) {
		const __m256i x0 = ld256(x + 2);
		const __m256i p0 = dot_s8(_mm256_sign_epi8(x0, x0), x0, ld256(y + 2));
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(ld_half(x) * ld_half(y)),
				      acc);
	}
	*out = hsum_ps(acc);
}

static void q4_0_vec_dot_avx2(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	const int64_t nb = n / 32;
	__m256 acc = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 1 < nb; i += 2, x += 36, y += 68) {
		tk_prefetch_weights(x, 36);
		__m256 d0, d1;
		scale_pair(x, y, x + 18, y + 34, &d0, &d1);
		const __m256i x0 = q4_0_decode(x + 2), x1 = q4_0_decode(x + 20);
		const __m256i p0 = dot_s8(_mm256_sign_epi8(x0, x0), x0, ld256(y + 2));
		const __m256i p1 = dot_s8(_mm256_sign_epi8(x1, x1), x1, ld256(y + 36));
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), d0, acc);
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), d1, acc);
	}
	if (i < nb) {
		const __m256i x0 = q4_0_decode(x + 2);
		const __m256i p0 = dot_s8(_mm256_sign_epi8(x0, x0), x0, ld256(y + 2));
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(ld_half(x) * ld_half(y)),
				      acc);
	}
	*out = hsum_ps(acc);
}

/* ================= Q6_K x Q8_K ================= */

/* Codes (0..63) of elements 128h + 32k .. +31 of a Q6_K block, k in 0..3:
 * low nibble from ql (row 64h + 32(k & 1), nibble k >> 1), two high bits
 * from qh[32h ..] bits 2k, 2k+1. */
AINL __m256i q6_k_codes(const uint8_t *blk, int h, int k)
{
	const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
	const __m256i ql = ld256(blk + 64 * h + 32 * (k & 1));
	const __m256i qh = ld256(blk + 128 + 32 * h);
	const __m256i lo = (k >> 1) ? _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4)
				    : _mm256_and_si256(ql, m4);
	const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), m2);
	return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
}

AINL void q6_k_kern(int64_t n, float *out, size_t ldo, const uint8_t *x, size_t bx,
		    const uint8_t *y, size_t by, const int R, const int C)
{
	float sum[2][4] = { { 0 } };
	for (int64_t i = 0; i < n / TK_QK_K; i++) {
		__m256i acc[2][4];
		const uint8_t *xb[2];
		__m256i sc16[2];
		for (int r = 0; r < R; r++) {
			xb[r] = x + (size_t)r * bx + (size_t)i * 210;
			tk_prefetch_weights(xb[r], 210);
			sc16[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(xb[r] + 192)));
			/* the -32 offset through the activations' block sums */
			for (int c = 0; c < C; c++) {
				const uint8_t *yb = y + (size_t)c * by + (size_t)i * 292;
				const __m256i corr = _mm256_madd_epi16(sc16[r], ld256(yb + 260));
				acc[r][c] = _mm256_sub_epi32(_mm256_setzero_si256(),
							     _mm256_slli_epi32(corr, 5));
			}
		}
		for (int h = 0; h < 2; h++) {
			__m256i sch[2]; /* scales 8h .. 8h+7 as int16, in both lanes */
			for (int r = 0; r < R; r++)
				sch[r] = h ? _mm256_permute2x128_si256(sc16[r], sc16[r], 0x11)
					   : _mm256_permute2x128_si256(sc16[r], sc16[r], 0x00);
			for (int k = 0; k < 4; k++) {
				/* low lane: scale 8h + 2k, high lane: 8h + 2k + 1 */
				const __m256i pick = _mm256_set_m128i(
					_mm_set1_epi16((short)((4 * k + 2) | (4 * k + 3) << 8)),
					_mm_set1_epi16((short)((4 * k) | (4 * k + 1) << 8)));
				__m256i code[2], scv[2];
				for (int r = 0; r < R; r++) {
					code[r] = q6_k_codes(xb[r], h, k);
					scv[r] = _mm256_shuffle_epi8(sch[r], pick);
				}
				for (int c = 0; c < C; c++) {
					const __m256i yv = ld256(y + (size_t)c * by + (size_t)i * 292 + 4 +
								 128 * h + 32 * k);
					for (int r = 0; r < R; r++) {
						const __m256i p = _mm256_maddubs_epi16(code[r], yv);
						acc[r][c] = _mm256_add_epi32(acc[r][c],
									     _mm256_madd_epi16(p, scv[r]));
					}
				}
			}
		}
		/* the reference's float step, in its order: bit-identical */
		for (int r = 0; r < R; r++) {
			const float dx = ld_half(xb[r] + 208);
			for (int c = 0; c < C; c++) {
				const float dy = ld_f32(y + (size_t)c * by + (size_t)i * 292);
				sum[r][c] += (dx * dy) * (float)hsum_epi32(acc[r][c]);
			}
		}
	}
	for (int r = 0; r < R; r++)
		for (int c = 0; c < C; c++)
			out[(size_t)c * ldo + r] = sum[r][c];
}

TILE_FN(q6_k_tile_avx2, q6_k_kern)

static void q6_k_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y)
{
	q6_k_kern(n, out, 0, x, 0, y, 0, 1, 1);
}

/* ================= Q4_K, Q5_K x Q8_K ================= */

/* The 8 six-bit scales and mins of a Q4_K/Q5_K block (packing in quant.h),
 * unpacked four at a time in 32-bit words: *sc8 and *m8 get one byte each. */
AINL void k45_scales(const uint8_t *q, uint64_t *sc8, uint64_t *m8)
{
	uint32_t u0, u1, u2;
	memcpy(&u0, q, 4);
	memcpy(&u1, q + 4, 4);
	memcpy(&u2, q + 8, 4);
	const uint32_t sc_lo = u0 & 0x3f3f3f3fu, m_lo = u1 & 0x3f3f3f3fu;
	const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u);
	const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u);
	*sc8 = (uint64_t)sc_hi << 32 | sc_lo;
	*m8 = (uint64_t)m_hi << 32 | m_lo;
}

/* Codes of elements 64g + 32t .. +31 (sub-block 2g + t): low nibbles from
 * qs[32g ..] (nibble t), for Q5_K bit 4 from qh[l] bit 2g + t. */
AINL __m256i k45_codes(const uint8_t *qs, const uint8_t *qh, int g, int t, const int BITS)
{
	const __m256i q = ld256(qs + 32 * g);
	__m256i c = t ? _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(15))
		      : _mm256_and_si256(q, _mm256_set1_epi8(15));
	if (BITS == 5) {
		const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(ld256(qh), 2 * g + t),
						    _mm256_set1_epi8(1));
		c = _mm256_or_si256(c, _mm256_slli_epi16(hb, 4));
	}
	return c;
}

/* Per super-block: sumi = sum_j sc_j * (codes . y over sub-block j) and
 * summ = sum_s bsums_s * m_{s/2}, both exact in int32, then
 * sum += (d_x d_y) sumi - (dmin_x d_y) summ as the reference does it. */
AINL void k45_kern(int64_t n, float *out, size_t ldo, const uint8_t *x, size_t bx,
		   const uint8_t *y, size_t by, const int R, const int C, const int BITS)
{
	const size_t xbs = BITS == 5 ? 176 : 144, qs_off = BITS == 5 ? 48 : 16;
	__m256 accf[2][4];
	for (int r = 0; r < 2; r++)
		for (int c = 0; c < 4; c++)
			accf[r][c] = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / TK_QK_K; i++) {
		__m256i acc[2][4];
		__m256i summ[2][4];
		const uint8_t *xb[2];
		__m256i sc16[2]; /* the 8 scales as int16, in both 128-bit lanes */
		for (int r = 0; r < R; r++) {
			uint64_t sc8, mn8;
			xb[r] = x + (size_t)r * bx + (size_t)i * xbs;
			tk_prefetch_weights(xb[r], (int)xbs);
			k45_scales(xb[r] + 4, &sc8, &mn8);
			sc16[r] = _mm256_broadcastsi128_si256(
				_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8)));
			const __m128i m8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn8));
			/* min of sub-block s / 2 for each group s of 16 */
			const __m256i m16 = _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8),
							     _mm_unpacklo_epi16(m8, m8));
			for (int c = 0; c < C; c++) {
				const uint8_t *yb = y + (size_t)c * by + (size_t)i * 292;
				summ[r][c] = _mm256_madd_epi16(m16, ld256(yb + 260));
				acc[r][c] = _mm256_setzero_si256();
			}
		}
		for (int g = 0; g < 4; g++) {
			for (int t = 0; t < 2; t++) {
				__m256i code[2], scv[2];
				for (int r = 0; r < R; r++) {
					code[r] = k45_codes(xb[r] + qs_off, xb[r] + 16, g, t, BITS);
					const int j = 2 * g + t; /* broadcast int16 lane j */
					scv[r] = _mm256_shuffle_epi8(
						sc16[r], _mm256_set1_epi16((short)(2 * j | (2 * j + 1) << 8)));
				}
				for (int c = 0; c < C; c++) {
					const __m256i yv = ld256(y + (size_t)c * by + (size_t)i * 292 + 4 +
								 64 * g + 32 * t);
					for (int r = 0; r < R; r++) {
						const __m256i p = _mm256_maddubs_epi16(code[r], yv);
						acc[r][c] = _mm256_add_epi32(acc[r][c],
									     _mm256_madd_epi16(p, scv[r]));
					}
				}
			}
		}
		for (int r = 0; r < R; r++) {
			const float d = ld_half(xb[r]), dmin = ld_half(xb[r] + 2);
			for (int c = 0; c < C; c++) {
				const float dy = ld_f32(y + (size_t)c * by + (size_t)i * 292);
				accf[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy),
							     _mm256_cvtepi32_ps(acc[r][c]), accf[r][c]);
				accf[r][c] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * dy),
							      _mm256_cvtepi32_ps(summ[r][c]), accf[r][c]);
			}
		}
	}
	for (int r = 0; r < R; r++)
		for (int c = 0; c < C; c++)
			out[(size_t)c * ldo + r] = hsum_ps(accf[r][c]);
}

AINL void q4_k_kern(int64_t n, float *out, size_t ldo, const uint8_t *x, size_t bx,
		    const uint8_t *y, size_t by, const int R, const int C)
{
	k45_kern(n, out, ldo, x, bx, y, by, R, C, 4);
}

AINL void q5_k_kern(int64_t n, float *out, size_t ldo, const uint8_t *x, size_t bx,
		    const uint8_t *y, size_t by, const int R, const int C)
{
	k45_kern(n, out, ldo, x, bx, y, by, R, C, 5);
}

TILE_FN(q4_k_tile_avx2, q4_k_kern)
TILE_FN(q5_k_tile_avx2, q5_k_kern)

static void q4_k_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y)
{
	q4_k_kern(n, out, 0, x, 0, y, 0, 1, 1);
}

static void q5_k_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y)
{
	q5_k_kern(n, out, 0, x, 0, y, 0, 1, 1);
}

/* ================= F16, BF16 ================= */

static void f16_to_float_avx2(const void *src, float *dst, int64_t n)
{
	const uint8_t *s = src;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i))));
	for (; i < n; i++)
		dst[i] = ld_half(s + 2 * i);
}

/* float -> binary16 by VCVTPS2PH, round to nearest even: the reference's
 * bits for every input (NaN quiet with its top payload bits, overflow to
 * inf, subnormal halves rounded; MXCSR as the engine leaves it, FTZ and DAZ
 * off), checked on random bit patterns by test_quant_simd. Used for the F16
 * KV cache stores of every decode step. */
static void f16_from_float_avx2(const float *src, void *dst, int64_t n)
{
	uint8_t *d = dst;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(void *)(d + 2 * i),
				 _mm256_cvtps_ph(_mm256_loadu_ps(src + i),
						 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	for (; i < n; i++) {
		const uint16_t h = tk_fp32_to_fp16(src[i]);
		memcpy(d + 2 * i, &h, 2);
	}
}

AINL __m256 ld_f16x8(const uint8_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static void f16_vec_dot_avx2(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	__m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 32 <= n; i += 32) {
		a0 = _mm256_fmadd_ps(ld_f16x8(x + 2 * i), ld_f16x8(y + 2 * i), a0);
		a1 = _mm256_fmadd_ps(ld_f16x8(x + 2 * i + 16), ld_f16x8(y + 2 * i + 16), a1);
		a2 = _mm256_fmadd_ps(ld_f16x8(x + 2 * i + 32), ld_f16x8(y + 2 * i + 32), a2);
		a3 = _mm256_fmadd_ps(ld_f16x8(x + 2 * i + 48), ld_f16x8(y + 2 * i + 48), a3);
	}
	for (; i + 8 <= n; i += 8)
		a0 = _mm256_fmadd_ps(ld_f16x8(x + 2 * i), ld_f16x8(y + 2 * i), a0);
	float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
	for (; i < n; i++)
		sum += ld_half(x + 2 * i) * ld_half(y + 2 * i);
	*out = sum;
}

/* F16 weights x float32 activations (ops.h: F16 weights take float
 * activations, so this tile's y rows are float32, not F16). */
AINL void f16_kern(int64_t n, float *out, size_t ldo, const uint8_t *x, size_t bx,
		   const uint8_t *y, size_t by, const int R, const int C)
{
	__m256 acc[2][4];
	for (int r = 0; r < 2; r++)
		for (int c = 0; c < 4; c++)
			acc[r][c] = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 w[2];
		if (!(i & 31)) /* one cache line of each row per 32 elements */
			for (int r = 0; r < R; r++)
				tk_prefetch_weights(x + (size_t)r * bx + 2 * (size_t)i, 64);
		for (int r = 0; r < R; r++)
			w[r] = ld_f16x8(x + (size_t)r * bx + 2 * (size_t)i);
		for (int c = 0; c < C; c++) {
			const __m256 a = _mm256_loadu_ps((const float *)(y + (size_t)c * by) + i);
			for (int r = 0; r < R; r++)
				acc[r][c] = _mm256_fmadd_ps(w[r], a, acc[r][c]);
		}
	}
	for (int r = 0; r < R; r++) {
		for (int c = 0; c < C; c++) {
			float s = hsum_ps(acc[r][c]);
			const uint8_t *a = y + (size_t)c * by; /* floats, maybe unaligned */
			for (int64_t j = i; j < n; j++)
				s += ld_half(x + (size_t)r * bx + 2 * (size_t)j) * ld_f32(a + 4 * j);
			out[(size_t)c * ldo + r] = s;
		}
	}
}

TILE_FN(f16_tile_avx2, f16_kern)

AINL __m256 ld_bf16x8(const uint8_t *p)
{
	const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
	return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

static void bf16_vec_dot_avx2(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	__m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 32 <= n; i += 32) {
		a0 = _mm256_fmadd_ps(ld_bf16x8(x + 2 * i), ld_bf16x8(y + 2 * i), a0);
		a1 = _mm256_fmadd_ps(ld_bf16x8(x + 2 * i + 16), ld_bf16x8(y + 2 * i + 16), a1);
		a2 = _mm256_fmadd_ps(ld_bf16x8(x + 2 * i + 32), ld_bf16x8(y + 2 * i + 32), a2);
		a3 = _mm256_fmadd_ps(ld_bf16x8(x + 2 * i + 48), ld_bf16x8(y + 2 * i + 48), a3);
	}
	for (; i + 8 <= n; i += 8)
		a0 = _mm256_fmadd_ps(ld_bf16x8(x + 2 * i), ld_bf16x8(y + 2 * i), a0);
	float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
	for (; i < n; i++) {
		uint16_t a, b;
		memcpy(&a, x + 2 * i, 2);
		memcpy(&b, y + 2 * i, 2);
		sum += tk_bf16_to_fp32(a) * tk_bf16_to_fp32(b);
	}
	*out = sum;
}

void tk_quant_avx2_install(struct tk_type_traits *tab)
{
	tab[TK_TYPE_Q8_0].from_float = q8_0_from_float_avx2;
	tab[TK_TYPE_Q8_0].vec_dot = q8_0_vec_dot_avx2;
	tab[TK_TYPE_Q8_0].vec_dot_tile = q8_0_tile_avx2;
	tab[TK_TYPE_Q8_0].pack = &tk_pack_q8_0_avx2;
	tab[TK_TYPE_Q4_0].vec_dot = q4_0_vec_dot_avx2;
	tab[TK_TYPE_Q4_0].vec_dot_tile = q4_0_tile_avx2;
	tab[TK_TYPE_Q8_K].from_float = q8_k_from_float_avx2;
	tab[TK_TYPE_Q6_K].vec_dot = q6_k_vec_dot_avx2;
	tab[TK_TYPE_Q6_K].vec_dot_tile = q6_k_tile_avx2;
	tab[TK_TYPE_Q4_K].vec_dot = q4_k_vec_dot_avx2;
	tab[TK_TYPE_Q4_K].vec_dot_tile = q4_k_tile_avx2;
	tab[TK_TYPE_Q5_K].vec_dot = q5_k_vec_dot_avx2;
	tab[TK_TYPE_Q5_K].vec_dot_tile = q5_k_tile_avx2;
	tab[TK_TYPE_F16].to_float = f16_to_float_avx2;
	tab[TK_TYPE_F16].from_float = f16_from_float_avx2;
	tab[TK_TYPE_F16].vec_dot = f16_vec_dot_avx2;
	tab[TK_TYPE_F16].vec_dot_tile = f16_tile_avx2;
	tab[TK_TYPE_F16].pack = &tk_pack_f16_avx2;
	tab[TK_TYPE_BF16].vec_dot = bf16_vec_dot_avx2;
}

#else
/* Not x86-64: nothing to build (ISO C wants one declaration). */
typedef int tk_quant_avx2_absent;
#endif /* __x86_64__ */
