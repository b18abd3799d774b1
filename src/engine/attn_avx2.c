/*
 * attn_avx2.c — the AVX2 + FMA + F16C variant of the attention kernel
 * (attn_simd.h): 8 float lanes, 32 (token, head) rows per pass, score tiles
 * of 2 positions x 4 row vectors and p.v tiles of 2 dimensions x 4 row
 * vectors (8 accumulators of the 16 YMM registers). The algorithm is
 * attn_kernel.h's; this file only names the instructions. Compiled with the
 * AVX2 flags alone (src/engine/CMakeLists.txt); called only when
 * attn_simd.c found AVX2, FMA and F16C. Owns no state.
 */
#include "engine/attn_kernel.h"

#if defined(__x86_64__)
#include <immintrin.h>

typedef __m256 akv;
#define AK_VL 8
#define AK_ROWS 32
#define AK_JB 2
#define AK_DB 2
#define AK_FN(name) name##_avx2

#define v_zero() _mm256_setzero_ps()
#define v_set1(x) _mm256_set1_ps(x)
#define v_load(p) _mm256_loadu_ps(p)
#define v_store(p, x) _mm256_storeu_ps(p, x)
#define v_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define v_mul(a, b) _mm256_mul_ps(a, b)
#define v_sub(a, b) _mm256_sub_ps(a, b)
#define v_max(a, b) _mm256_max_ps(a, b)
#define v_sel_gt(a, b, t, f) _mm256_blendv_ps(f, t, _mm256_cmp_ps(a, b, _CMP_GT_OQ))
#define v_sel_lt(a, b, t, f) _mm256_blendv_ps(f, t, _mm256_cmp_ps(a, b, _CMP_LT_OQ))
#define v_round(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define v_pow2i(n)                                                                          \
	_mm256_castsi256_ps(_mm256_slli_epi32(                                              \
		_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define v_load_f16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define v_round_f16(x) _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT))

static inline void ak_dsum_add(double *d, akv x)
{
	_mm256_storeu_pd(d, _mm256_add_pd(_mm256_loadu_pd(d),
					  _mm256_cvtps_pd(_mm256_castps256_ps128(x))));
	_mm256_storeu_pd(d + 4, _mm256_add_pd(_mm256_loadu_pd(d + 4),
					      _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1))));
}

static inline void ak_dsum_mul(double *d, akv x)
{
	_mm256_storeu_pd(d, _mm256_mul_pd(_mm256_loadu_pd(d),
					  _mm256_cvtps_pd(_mm256_castps256_ps128(x))));
	_mm256_storeu_pd(d + 4, _mm256_mul_pd(_mm256_loadu_pd(d + 4),
					      _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1))));
}

#include "engine/attn_kernel.h"
#endif
