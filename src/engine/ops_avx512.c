/*
 * ops_avx512.c — the AVX-512F variant of the element-wise ops
 * (ops_simd.h): SiLU gate and the RMS norm's sum of squares, 16 float lanes,
 * the tail of a row through masked loads and stores. Compiled with the
 * AVX-512 flags alone (src/engine/CMakeLists.txt); called only when
 * ops_simd.c found AVX-512F. Owns no state.
 */
#include "engine/ops_simd.h"

#if defined(__x86_64__)
#include "engine/vec_avx512.h"

/* silu(x) * g per lane (ops_simd.h), with t = exp(-|x|):
 * x >= 0: x / (1 + t); x < 0: x t / (1 + t), x t as (x p) 2^n, so the few
 * results below FLT_MIN underflow gradually rather than through a t that
 * already lost bits. exp(-|x|) = p 2^n by vec.h's v_exp_parts, times 2^n
 * by VSCALEFPS (correct subnormals, 0 below them). For x <=
 * ENGINE_OPS_SILU_ZERO (-inf included) x t is x * 0, which is -0 or, for
 * -inf, NaN: the scalar path's values. NaN stays NaN (VMAXPS returns its
 * second operand when either is NaN, and NaN < 0 is false). */
static inline __m512 silu_mul16(__m512 x, __m512 g)
{
	const __m512 a = _mm512_castsi512_ps(
		_mm512_or_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
	const __m512 ac = _mm512_max_ps(_mm512_set1_ps(ENGINE_OPS_EXP_CLAMP), a);
	__m512 n;
	const __m512 p = v_exp_parts(ac, &n);
	const __m512 t = _mm512_scalef_ps(p, n);
	const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
	const __mmask16 far = _mm512_cmp_ps_mask(x, _mm512_set1_ps(ENGINE_OPS_SILU_ZERO), _CMP_LE_OQ);
	__m512 num = _mm512_mask_scalef_ps(x, neg, _mm512_mul_ps(x, p), n);
	num = _mm512_mask_mul_ps(num, far, x, _mm512_setzero_ps());
	const __m512 s = _mm512_div_ps(num, _mm512_add_ps(_mm512_set1_ps(1.0f), t));
	return _mm512_mul_ps(s, g);
}

void engine_ops_silu_mul_avx512(float *x, const float *g, int64_t n)
{
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(x + i, silu_mul16(_mm512_loadu_ps(x + i), _mm512_loadu_ps(g + i)));
	if (i < n) {
		const __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
		const __m512 v = silu_mul16(_mm512_maskz_loadu_ps(m, x + i),
					    _mm512_maskz_loadu_ps(m, g + i));
		_mm512_mask_storeu_ps(x + i, m, v);
	}
}

/* Adds the squares of 16 floats (each rounded to float, as the reference
 * rounds x * x) to two double accumulators. */
static inline void sumsq16(__m512 v, __m512d *lo, __m512d *hi)
{
	const __m512 sq = _mm512_mul_ps(v, v);
	*lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
	*hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm256_castsi256_ps(
					 _mm512_extracti64x4_epi64(_mm512_castps_si512(sq), 1))));
}

double engine_ops_sumsq_avx512(const float *x, int64_t n)
{
	__m512d acc[4] = { _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(),
			   _mm512_setzero_pd() };
	int64_t i = 0;
	for (; i + 32 <= n; i += 32) {
		sumsq16(_mm512_loadu_ps(x + i), &acc[0], &acc[1]);
		sumsq16(_mm512_loadu_ps(x + i + 16), &acc[2], &acc[3]);
	}
	for (; i < n; i += 16) {
		const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff
						: (__mmask16)((1u << (n - i)) - 1u);
		sumsq16(_mm512_maskz_loadu_ps(m, x + i), &acc[0], &acc[1]);
	}
	const __m512d s = _mm512_add_pd(_mm512_add_pd(acc[0], acc[1]),
					_mm512_add_pd(acc[2], acc[3]));
	return _mm512_reduce_add_pd(s);
}
#endif
