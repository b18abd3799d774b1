/*
 * attn_avx512.c — the AVX-512F variant of the attention kernel
 * (attn_simd.h): 16 float lanes, 64 (token, head) rows per pass, score
 * tiles of 6 positions x 4 row vectors and p.v tiles of 4 dimensions x 4
 * row vectors (24 and 16 accumulators of the 32 ZMM registers). The
 * algorithm is attn_kernel.h's over vec_avx512.h's vocabulary; this file
 * sets the blocking and the double sums. Compiled with the AVX-512 flags
 * alone (src/engine/CMakeLists.txt); called only when attn_simd.c found
 * AVX-512F. Owns no state.
 */
#include "engine/attn_kernel.h"

#if defined(__x86_64__)
#include "engine/vec_avx512.h"

#define AK_VL VF_LANES
#define AK_ROWS 64
#define AK_JB 6
#define AK_DB 4
#define AK_PVR 8
#define AK_PVD 2
#define AK_FN(name) name##_avx512

static inline __m256 ak_hi8(__m512 x)
{
	return _mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(x), 1));
}

static inline void ak_dsum_add(double *d, vf x)
{
	_mm512_storeu_pd(d, _mm512_add_pd(_mm512_loadu_pd(d),
					  _mm512_cvtps_pd(_mm512_castps512_ps256(x))));
	_mm512_storeu_pd(d + 8, _mm512_add_pd(_mm512_loadu_pd(d + 8), _mm512_cvtps_pd(ak_hi8(x))));
}

static inline void ak_dsum_mul(double *d, vf x)
{
	_mm512_storeu_pd(d, _mm512_mul_pd(_mm512_loadu_pd(d),
					  _mm512_cvtps_pd(_mm512_castps512_ps256(x))));
	_mm512_storeu_pd(d + 8, _mm512_mul_pd(_mm512_loadu_pd(d + 8), _mm512_cvtps_pd(ak_hi8(x))));
}

#include "engine/attn_kernel.h"
#endif
