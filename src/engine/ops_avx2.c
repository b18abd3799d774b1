/*
 * ops_avx2.c — the AVX2 + FMA variant of the element-wise ops
 * (ops_simd.h): SiLU gate and the RMS norm's sum of squares, 8 float lanes,
 * the tail of a row through masked loads and stores. Compiled with the AVX2
 * flags alone (src/engine/CMakeLists.txt); called only when ops_simd.c
 * found AVX2 and FMA. Owns no state.
 */
#include "engine/ops_simd.h"

#if defined(__x86_64__)
#include "engine/vec_avx2.h"

/* silu(x) * g per lane (ops_simd.h), with t = exp(-|x|):
 * x >= 0: x / (1 + t); x < 0: x t / (1 + t), x t as (x p) 2^n, so the few
 * results below FLT_MIN underflow gradually rather than through a t that
 * already lost bits. exp(-|x|) = p 2^n by vec.h's v_exp_parts; 2^n as
 * 2^n1 2^n2 (n1 = floor(n / 2)), two normal floats for every n >= -160,
 * so the first product is exact and the second rounds once (gradually
 * below FLT_MIN). For x <= ENGINE_OPS_SILU_ZERO (-inf included) x t is
 * x * 0, which is -0 or, for -inf, NaN: the scalar path's values. NaN
 * stays NaN (VMAXPS returns its second operand when either is NaN; p is
 * then NaN). */
static inline __m256 silu_mul8(__m256 x, __m256 g)
{
	const __m256 a = _mm256_or_ps(x, _mm256_set1_ps(-0.0f));
	const __m256 ac = _mm256_max_ps(_mm256_set1_ps(ENGINE_OPS_EXP_CLAMP), a);
	__m256 n;
	const __m256 p = v_exp_parts(ac, &n);
	const __m256i ni = _mm256_cvtps_epi32(n);
	const __m256i n1 = _mm256_srai_epi32(ni, 1);
	const __m256i bias = _mm256_set1_epi32(127);
	const __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
	const __m256 e2 = _mm256_castsi256_ps(
		_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, n1), bias), 23));
	const __m256 t = _mm256_mul_ps(_mm256_mul_ps(p, e1), e2);
	const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
	const __m256 far = _mm256_cmp_ps(x, _mm256_set1_ps(ENGINE_OPS_SILU_ZERO), _CMP_LE_OQ);
	__m256 num = _mm256_blendv_ps(x, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(x, p), e1), e2),
				      neg);
	num = _mm256_blendv_ps(num, _mm256_mul_ps(x, _mm256_setzero_ps()), far);
	const __m256 s = _mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), t));
	return _mm256_mul_ps(s, g);
}

/* lanes 0..k-1 of a maskload/maskstore mask set (k <= 8) */
static inline __m256i tail_mask(int64_t k)
{
	return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

void engine_ops_silu_mul_avx2(float *x, const float *g, int64_t n)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(x + i, silu_mul8(_mm256_loadu_ps(x + i), _mm256_loadu_ps(g + i)));
	if (i < n) {
		const __m256i m = tail_mask(n - i);
		const __m256 v = silu_mul8(_mm256_maskload_ps(x + i, m), _mm256_maskload_ps(g + i, m));
		_mm256_maskstore_ps(x + i, m, v);
	}
}

/* Adds the squares of 8 floats (each rounded to float, as the reference
 * rounds x * x) to two double accumulators. */
static inline void sumsq8(__m256 v, __m256d *lo, __m256d *hi)
{
	const __m256 sq = _mm256_mul_ps(v, v);
	*lo = _mm256_add_pd(*lo, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
	*hi = _mm256_add_pd(*hi, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
}

double engine_ops_sumsq_avx2(const float *x, int64_t n)
{
	__m256d acc[4] = { _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(),
			   _mm256_setzero_pd() };
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		sumsq8(_mm256_loadu_ps(x + i), &acc[0], &acc[1]);
		sumsq8(_mm256_loadu_ps(x + i + 8), &acc[2], &acc[3]);
	}
	for (; i < n; i += 8)
		sumsq8(_mm256_maskload_ps(x + i, tail_mask(n - i)), &acc[0], &acc[1]);
	const __m256d s = _mm256_add_pd(_mm256_add_pd(acc[0], acc[1]), _mm256_add_pd(acc[2], acc[3]));
	const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
	return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}
#endif
