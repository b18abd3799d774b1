/*
 * vec_avx2.h — private to the engine's AVX2 variants (attn_avx2.c,
 * ops_avx2.c): vec.h's vector vocabulary named for AVX2 + FMA + F16C, 8
 * float lanes. Include only from a file compiled with those flags (an
 * operation whose instructions a file lacks, such as F16C's, may be named
 * but not used there). Defines no functions of its own; vec.h's follow.
 */
#ifndef TK_ENGINE_VEC_AVX2_H
#define TK_ENGINE_VEC_AVX2_H

#include <immintrin.h>

typedef __m256 vf;
#define VF_LANES 8

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

#include "engine/vec.h"

#endif
