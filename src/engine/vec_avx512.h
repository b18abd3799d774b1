/*
 * vec_avx512.h — private to the engine's AVX-512 variants (attn_avx512.c,
 * ops_avx512.c): vec.h's vector vocabulary named for AVX-512F, 16 float
 * lanes. Include only from a file compiled with AVX-512F. Defines no
 * functions of its own; vec.h's follow.
 */
#ifndef TK_ENGINE_VEC_AVX512_H
#define TK_ENGINE_VEC_AVX512_H

#include <immintrin.h>

typedef __m512 vf;
#define VF_LANES 16

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

#include "engine/vec.h"

#endif
