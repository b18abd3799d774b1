/*
 * attn_avx2.c — the AVX2 + FMA + F16C variant of the attention kernel
 * (attn_simd.h): 8 float lanes, 32 (token, head) rows per pass, score tiles
 * of 2 positions x 4 row vectors and p.v tiles of 2 dimensions x 4 row
 * vectors (8 accumulators of the 16 YMM registers). The algorithm is
 * attn_kernel.h's over vec_avx2.h's vocabulary; this file sets the blocking
 * and the double sums. Compiled with the AVX2 flags alone
 * (src/engine/CMakeLists.txt); called only when attn_simd.c found AVX2, FMA
 * and F16C. Owns no state.
 */
#include "engine/attn_kernel.h"

#if defined(__x86_64__)
#include "engine/vec_avx2.h"

#define AK_VL VF_LANES
#define AK_ROWS 32
#define AK_JB 2
#define AK_DB 2
#define AK_PVR 4
#define AK_PVD 2
#define AK_FN(name) name##_avx2

static inline void ak_dsum_add(double *d, vf x)
{
	_mm256_storeu_pd(d, _mm256_add_pd(_mm256_loadu_pd(d),
					  _mm256_cvtps_pd(_mm256_castps256_ps128(x))));
	_mm256_storeu_pd(d + 4, _mm256_add_pd(_mm256_loadu_pd(d + 4),
					      _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1))));
}

static inline void ak_dsum_mul(double *d, vf x)
{
	_mm256_storeu_pd(d, _mm256_mul_pd(_mm256_loadu_pd(d),
					  _mm256_cvtps_pd(_mm256_castps256_ps128(x))));
	_mm256_storeu_pd(d + 4, _mm256_mul_pd(_mm256_loadu_pd(d + 4),
					      _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1))));
}

#include "engine/attn_kernel.h"
#endif
