/*
 * quant_avx512.c — AVX-512 (F/BW/VL + VNNI, BF16 where present) variants
 * of the hot tensor kernels: quant_simd.h's "avx512" set, installed over the
 * avx2 set, so only what was measured faster here replaces it
 * (docs/benchmarks.md, "SIMD kernels"). Compiled with the AVX-512 flags for
 * this file only; empty on a non-x86 build.
 *
 * Owns: tk_quant_avx512_install() and its kernels:
 *   Q8_0, Q4_0 x Q8_0   vec_dot and 4 x 4 vec_dot_tile with VPDPBUSD on
 *                       256-bit vectors (AVX512VL + VNNI): one instruction
 *                       instead of VPMADDUBSW + VPMADDWD, no saturation;
 *   F16                 4 x 4 vec_dot_tile (float32 activations) on 512-bit
 *                       vectors (32 registers hold the 16 accumulators);
 *   BF16                vec_dot and 4 x 4 vec_dot_tile with VDPBF16PS when the
 *                       CPU has AVX512_BF16.
 * The Q8_0/Q4_0 arithmetic is the avx2 file's (the same exact int32 lane
 * sums, then the same float multiply-adds by d_x * d_y, in the same order),
 * so their results equal the avx2 kernels' bit for bit (test_quant_simd);
 * Q4_0 uses its nibbles unsigned and subtracts 8 * sum(y) per block,
 * computed once per activation block. F16 and BF16 sum in other lanes than
 * the avx2 kernels (within rounding).
 */
#if defined(__x86_64__)

#include "engine/quant_simd.h"
#include "engine/quant_x86.h"

#include "engine/cpu.h"
#include "engine/fp16.h"
#include "engine/quant_pack.h"

#include <immintrin.h>
#include <string.h>

/* Calls KERN(args..., R, C) with compile-time R, C in 1..4. */
#define RC_CASE(KERN, R, C, ...) \
	case (R) * 8 + (C): KERN(__VA_ARGS__, R, C); break;
#define SUBTILE_4x4(KERN, rr, cc, ...)                                              \
	do {                                                                        \
		switch ((rr) * 8 + (cc)) {                                          \
		RC_CASE(KERN, 1, 1, __VA_ARGS__) RC_CASE(KERN, 1, 2, __VA_ARGS__)   \
		RC_CASE(KERN, 1, 3, __VA_ARGS__) RC_CASE(KERN, 1, 4, __VA_ARGS__)   \
		RC_CASE(KERN, 2, 1, __VA_ARGS__) RC_CASE(KERN, 2, 2, __VA_ARGS__)   \
		RC_CASE(KERN, 2, 3, __VA_ARGS__) RC_CASE(KERN, 2, 4, __VA_ARGS__)   \
		RC_CASE(KERN, 3, 1, __VA_ARGS__) RC_CASE(KERN, 3, 2, __VA_ARGS__)   \
		RC_CASE(KERN, 3, 3, __VA_ARGS__) RC_CASE(KERN, 3, 4, __VA_ARGS__)   \
		RC_CASE(KERN, 4, 1, __VA_ARGS__) RC_CASE(KERN, 4, 2, __VA_ARGS__)   \
		RC_CASE(KERN, 4, 3, __VA_ARGS__) RC_CASE(KERN, 4, 4, __VA_ARGS__)   \
		default: break;                                                     \
		}                                                                   \
	} while (0)

#define TILE_FN(name, KERN)                                                            \
	static void name(int64_t n, float *out, size_t ldo, const void *x, size_t bx,  \
			 const void *y, size_t by, int nr, int nc)                     \
	{                                                                              \
		SUBTILE_4x4(KERN, nr, nc, n, out, ldo, (const uint8_t *)x, bx,         \
			    (const uint8_t *)y, by);                                   \
	}

/* ================= Q8_0 x Q8_0, Q4_0 x Q8_0 (VNNI) ================= */

AINL void zero_acc(__m256 acc[4][4])
{
	for (int r = 0; r < 4; r++)
		for (int c = 0; c < 4; c++)
			acc[r][c] = _mm256_setzero_ps();
}

AINL void store_acc(__m256 acc[4][4], float *out, size_t ldo, int R, int C)
{
	for (int r = 0; r < R; r++)
		for (int c = 0; c < C; c++)
			out[(size_t)c * ldo + r] = hsum_ps(acc[r][c]);
}

AINL void q8_0_kern(int64_t n, float *out, size_t ldo, const uint8_t *x, size_t bx,
		    const uint8_t *y, size_t by, const int R, const int C)
{
	__m256 acc[4][4];
	zero_acc(acc);
	for (int64_t i = 0; i < n / 32; i++) {
		__m256i yv[4];
		float dy[4];
		for (int c = 0; c < C; c++) {
			const uint8_t *yb = y + (size_t)c * by + (size_t)i * 34;
			yv[c] = ld256(yb + 2);
			dy[c] = ld_half(yb);
		}
		for (int r = 0; r < R; r++) {
			const uint8_t *xb = x + (size_t)r * bx + (size_t)i * 34;
			const __m256i xv = ld256(xb + 2);
			const __m256i ax = _mm256_abs_epi8(xv);
			const float dx = ld_half(xb);
			for (int c = 0; c < C; c++) {
				const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax,
								      _mm256_sign_epi8(yv[c], xv));
				acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),
							    _mm256_set1_ps(dx * dy[c]), acc[r][c]);
			}
		}
	}
	store_acc(acc, out, ldo, R, C);
}

AINL void q4_0_kern(int64_t n, float *out, size_t ldo, const uint8_t *x, size_t bx,
		    const uint8_t *y, size_t by, const int R, const int C)
{
	__m256 acc[4][4];
	zero_acc(acc);
	const __m256i m4 = _mm256_set1_epi8(15), eight = _mm256_set1_epi8(8);
	for (int64_t i = 0; i < n / 32; i++) {
		__m256i yv[4], ys[4];
		float dy[4];
		for (int c = 0; c < C; c++) {
			const uint8_t *yb = y + (size_t)c * by + (size_t)i * 34;
			yv[c] = ld256(yb + 2);
			dy[c] = ld_half(yb);
			/* 8 * (sum of 4 codes) per lane: the -8 offset of the nibbles */
			ys[c] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, yv[c]);
		}
		for (int r = 0; r < R; r++) {
			const uint8_t *xb = x + (size_t)r * bx + (size_t)i * 18;
			const __m128i q = _mm_loadu_si128((const __m128i *)(xb + 2));
			const __m256i xv = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
			const float dx = ld_half(xb);
			for (int c = 0; c < C; c++) {
				const __m256i p = _mm256_sub_epi32(
					_mm256_dpbusd_epi32(_mm256_setzero_si256(), xv, yv[c]), ys[c]);
				acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),
							    _mm256_set1_ps(dx * dy[c]), acc[r][c]);
			}
		}
	}
	store_acc(acc, out, ldo, R, C);
}

TILE_FN(q8_0_tile_avx512, q8_0_kern)
TILE_FN(q4_0_tile_avx512, q4_0_kern)

/* Q8_0 block dot with VNNI: |x| (unsigned) times y with x's sign. */
AINL __m256i q8_dot(__m256i xv, __m256i yv)
{
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(xv),
				   _mm256_sign_epi8(yv, xv));
}

/* Q4_0 block dot with VNNI: nibbles unsigned, minus 8 * sum(y). */
AINL __m256i q4_dot(const uint8_t *qs, __m256i yv)
{
	const __m128i q = _mm_loadu_si128((const __m128i *)qs);
	const __m256i xv = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q),
					    _mm256_set1_epi8(15));
	const __m256i ys = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), yv);
	return _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), xv, yv), ys);
}

/* The decode kernels (one row, one column), two blocks per step with one
 * conversion of their four half scales (the conversions, not the FMA chain,
 * bounded the loop). Same float steps in the same order as the tile kernel's
 * cells, so tiles equal vec_dot bit for bit. */
static void q8_0_vec_dot_avx512(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	const int64_t nb = n / 32;
	__m256 acc = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 1 < nb; i += 2, x += 68, y += 68) {
		tk_prefetch_weights(x, 68);
		__m256 d0, d1;
		scale_pair(x, y, x + 34, y + 34, &d0, &d1);
		const __m256i p0 = q8_dot(ld256(x + 2), ld256(y + 2));
		const __m256i p1 = q8_dot(ld256(x + 36), ld256(y + 36));
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), d0, acc);
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), d1, acc);
	}
	if (i < nb) {
		const __m256i p0 = q8_dot(ld256(x + 2), ld256(y + 2));
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(ld_half(x) * ld_half(y)),
				      acc);
	}
	*out = hsum_ps(acc);
}

static void q4_0_vec_dot_avx512(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	const int64_t nb = n / 32;
	__m256 acc = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 1 < nb; i += 2, x += 36, y += 68) {
		tk_prefetch_weights(x, 36);
		__m256 d0, d1;
		scale_pair(x, y, x + 18, y + 34, &d0, &d1);
		const __m256i p0 = q4_dot(x + 2, ld256(y + 2));
		const __m256i p1 = q4_dot(x + 20, ld256(y + 36));
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), d0, acc);
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), d1, acc);
	}
	if (i < nb) {
		const __m256i p0 = q4_dot(x + 2, ld256(y + 2));
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(ld_half(x) * ld_half(y)),
				      acc);
	}
	*out = hsum_ps(acc);
}

/* ================= F16 x float32 tile ================= */

AINL void f16_kern(int64_t n, float *out, size_t ldo, const uint8_t *x, size_t bx,
		   const uint8_t *y, size_t by, const int R, const int C)
{
	__m512 acc[4][4];
	for (int r = 0; r < 4; r++)
		for (int c = 0; c < 4; c++)
			acc[r][c] = _mm512_setzero_ps();
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512 w[4];
		if (!(i & 31)) /* one cache line of each row per 32 elements */
			for (int r = 0; r < R; r++)
				tk_prefetch_weights(x + (size_t)r * bx + 2 * (size_t)i, 64);
		for (int r = 0; r < R; r++)
			w[r] = _mm512_cvtph_ps(ld256(x + (size_t)r * bx + 2 * (size_t)i));
		for (int c = 0; c < C; c++) {
			const __m512 a = _mm512_loadu_ps((const float *)(y + (size_t)c * by) + i);
			for (int r = 0; r < R; r++)
				acc[r][c] = _mm512_fmadd_ps(w[r], a, acc[r][c]);
		}
	}
	for (int r = 0; r < R; r++) {
		for (int c = 0; c < C; c++) {
			float s = _mm512_reduce_add_ps(acc[r][c]);
			const uint8_t *a = y + (size_t)c * by; /* floats, maybe unaligned */
			for (int64_t j = i; j < n; j++)
				s += ld_half(x + (size_t)r * bx + 2 * (size_t)j) * ld_f32(a + 4 * j);
			out[(size_t)c * ldo + r] = s;
		}
	}
}

TILE_FN(f16_tile_avx512, f16_kern)

/* ================= BF16 (AVX512_BF16) ================= */

/* VDPBF16PS: pairs of bf16 products added into float lanes (inputs and
 * outputs denormals flushed to zero, round to nearest even). */
static void bf16_vec_dot_avx512bf16(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
	int64_t i = 0;
	for (; i + 64 <= n; i += 64) {
		a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(x + 2 * i),
				      (__m512bh)_mm512_loadu_si512(y + 2 * i));
		a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(x + 2 * i + 64),
				      (__m512bh)_mm512_loadu_si512(y + 2 * i + 64));
	}
	for (; i + 32 <= n; i += 32)
		a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(x + 2 * i),
				      (__m512bh)_mm512_loadu_si512(y + 2 * i));
	float sum = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
	for (; i < n; i++) {
		uint16_t a, b;
		memcpy(&a, x + 2 * i, 2);
		memcpy(&b, y + 2 * i, 2);
		sum += tk_bf16_to_fp32(a) * tk_bf16_to_fp32(b);
	}
	*out = sum;
}

/* BF16 x BF16 4 x 4 tile: VDPBF16PS on 32 elements per step into 16
 * accumulators, the tail (n % 32) in scalar float. */
AINL float ld_bf16(const uint8_t *p)
{
	uint16_t b;
	memcpy(&b, p, 2);
	return tk_bf16_to_fp32(b);
}

AINL void bf16_kern(int64_t n, float *out, size_t ldo, const uint8_t *x, size_t bx,
		    const uint8_t *y, size_t by, const int R, const int C)
{
	__m512 acc[4][4];
	for (int r = 0; r < 4; r++)
		for (int c = 0; c < 4; c++)
			acc[r][c] = _mm512_setzero_ps();
	int64_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m512i w[4];
		for (int r = 0; r < R; r++)
			w[r] = _mm512_loadu_si512(x + (size_t)r * bx + 2 * (size_t)i);
		for (int c = 0; c < C; c++) {
			const __m512i a = _mm512_loadu_si512(y + (size_t)c * by + 2 * (size_t)i);
			for (int r = 0; r < R; r++)
				acc[r][c] = _mm512_dpbf16_ps(acc[r][c], (__m512bh)w[r], (__m512bh)a);
		}
	}
	for (int r = 0; r < R; r++) {
		for (int c = 0; c < C; c++) {
			float s = _mm512_reduce_add_ps(acc[r][c]);
			for (int64_t j = i; j < n; j++)
				s += ld_bf16(x + (size_t)r * bx + 2 * (size_t)j) *
				     ld_bf16(y + (size_t)c * by + 2 * (size_t)j);
			out[(size_t)c * ldo + r] = s;
		}
	}
}

TILE_FN(bf16_tile_avx512bf16, bf16_kern)

/* Q8_K activation quantizer, 16 lanes (the reference's bytes exactly, as
 * the avx2 one; quant.c says the rule): max = the first element of largest
 * magnitude, sign kept (NaN lanes never win: VMAXPS keeps the running max
 * when a lane is NaN); iscale = -127 / max; q = nearest-even(iscale * x)
 * clamped to -127..127 with NaN as 0 (VCVTPS2DQ in the default
 * round-to-nearest-even mode, exact on the clamped value); each group of 16
 * codes is one vector, so its bsum is one lane reduction. */
static void q8_k_from_float_avx512(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	for (int64_t i = 0; i < n / TK_QK_K; i++, b += 292) {
		const float *x = src + i * TK_QK_K;
		__m512 m = _mm512_setzero_ps();
		for (int j = 0; j < TK_QK_K; j += 16)
			m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + j)), m);
		const float amax = _mm512_reduce_max_ps(m);
		if (amax == 0.0f) {
			memset(b, 0, 292);
			continue;
		}
		float max = 0.0f;
		const __m512 va = _mm512_set1_ps(amax);
		for (int j = 0; j < TK_QK_K; j += 16) {
			const __mmask16 k = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + j)), va,
							       _CMP_EQ_OQ);
			if (k) {
				max = x[j + __builtin_ctz((unsigned)k)];
				break;
			}
		}
		const float iscale = -127.0f / max;
		const __m512 vs = _mm512_set1_ps(iscale);
		const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
		int8_t *qs = (int8_t *)(b + 4);
		for (int j = 0; j < TK_QK_K; j += 16) {
			__m512 v = _mm512_mul_ps(vs, _mm512_loadu_ps(x + j));
			/* NaN -> 0, then clamp (VMAXPS/VMINPS with v first: a NaN
			 * lane is already 0) */
			v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);
			v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
			const __m512i q = _mm512_cvt_roundps_epi32(
				v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
			_mm_storeu_si128((__m128i *)(void *)(qs + j), _mm512_cvtepi32_epi8(q));
			/* |sum| <= 16 * 127 fits int16 */
			const uint16_t u = (uint16_t)(int16_t)_mm512_reduce_add_epi32(q);
			b[260 + 2 * (j / 16)] = (uint8_t)u;
			b[260 + 2 * (j / 16) + 1] = (uint8_t)(u >> 8);
		}
		const float d = 1.0f / iscale;
		memcpy(b, &d, 4);
	}
}

void tk_quant_avx512_install(struct tk_type_traits *tab)
{
	tab[TK_TYPE_Q8_K].from_float = q8_k_from_float_avx512;
	tab[TK_TYPE_Q8_0].vec_dot = q8_0_vec_dot_avx512;
	tab[TK_TYPE_Q8_0].vec_dot_tile = q8_0_tile_avx512;
	tab[TK_TYPE_Q8_0].pack = &tk_pack_q8_0_avx512;
	tab[TK_TYPE_Q4_0].vec_dot = q4_0_vec_dot_avx512;
	tab[TK_TYPE_Q4_0].vec_dot_tile = q4_0_tile_avx512;
	tab[TK_TYPE_Q4_K].pack = &tk_pack_q4_k_avx512;
	tab[TK_TYPE_Q6_K].pack = &tk_pack_q6_k_avx512;
	tab[TK_TYPE_F16].vec_dot_tile = f16_tile_avx512;
	tab[TK_TYPE_F16].pack = &tk_pack_f16_avx512;
	if (tk_cpu_features()->avx512bf16) {
		tab[TK_TYPE_BF16].vec_dot = bf16_vec_dot_avx512bf16;
		tab[TK_TYPE_BF16].vec_dot_tile = bf16_tile_avx512bf16;
	}
}

#else
/* Not x86-64: nothing to build (ISO C wants one declaration). */
typedef int tk_quant_avx512_absent;
#endif /* __x86_64__ */
