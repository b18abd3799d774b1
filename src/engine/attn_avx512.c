/*
 * attn_avx512.c — the AVX-512F variant of the attention kernel
 * (attn_simd.h): 16 float lanes, 64 (token, head) rows per pass, score
 * tiles of 6 positions x 4 row vectors and p.v tiles of 4 dimensions x 4
 * row vectors (24 and 16 accumulators of the 32 ZMM registers). The
 * algorithm is attn_kernel.h's; this file only names the instructions.
 * Compiled with the AVX-512 flags alone (src/engine/CMakeLists.txt); called
 * only when attn_simd.c found AVX-512F. Owns no state.
 */
#include "engine/attn_kernel.h"

#if defined(__x86_64__)
#include <immintrin.h>

typedef __m512 akv;
#define AK_VL 16
#define AK_ROWS 64
#define AK_JB 6
#define AK_DB 4
#define AK_FN(name) name##_avx512

#define v_zero() _mm512_setzero_ps()
#define v_set1(x) _mm512_set1_ps(x)
#define v_load(p) _mm512_loadu_ps(p)
#define v_store(p, x) _mm512_storeu_ps(p, x)
#define v_fma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define v_mul(a, b) _mm512_mul_ps(a, b)
#define v_sub(a, b) _mm512_sub_ps(a, b)
#define v_max(a, b) _mm512_max_ps(a, b)
#define v_sel_gt(a, b, t, f) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), f, t)
#define v_sel_lt(a, b, t, f) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), f, t)
#define v_round(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define v_pow2i(n)                                                                          \
	_mm512_castsi512_ps(_mm512_slli_epi32(                                              \
		_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define v_load_f16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define v_round_f16(x)                                                                      \
	_mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))

static inline __m256 ak_hi8(__m512 x)
{
	return _mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(x), 1));
}

static inline void ak_dsum_add(double *d, akv x)
{
	_mm512_storeu_pd(d, _mm512_add_pd(_mm512_loadu_pd(d),
					  _mm512_cvtps_pd(_mm512_castps512_ps256(x))));
	_mm512_storeu_pd(d + 8, _mm512_add_pd(_mm512_loadu_pd(d + 8), _mm512_cvtps_pd(ak_hi8(x))));
}

static inline void ak_dsum_mul(double *d, akv x)
{
	_mm512_storeu_pd(d, _mm512_mul_pd(_mm512_loadu_pd(d),
					  _mm512_cvtps_pd(_mm512_castps512_ps256(x))));
	_mm512_storeu_pd(d + 8, _mm512_mul_pd(_mm512_loadu_pd(d + 8), _mm512_cvtps_pd(ak_hi8(x))));
}

#include "engine/attn_kernel.h"
#endif
