/*
 * quant_x86.h — small inline helpers shared by the x86 kernel files
 * (quant_avx2.c, quant_avx512.c): unaligned loads of block fields, the
 * horizontal float sum, and the paired d_x * d_y scale conversion the Q8_0 /
 * Q4_0 decode kernels use, and (in files compiled with AVX-512 VNNI) the
 * integer dot products against a broadcast activation word. Include only
 * from files compiled with at least AVX2 + FMA + F16C
 * (src/engine/CMakeLists.txt sets their flags).
 */
#ifndef TK_ENGINE_QUANT_X86_H
#define TK_ENGINE_QUANT_X86_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AINL static inline __attribute__((always_inline))

#if defined(__AVX512VNNI__)
/* acc + VPDPBUSD(w, the 4 bytes at p in every 32-bit lane): the unsigned
 * bytes of w times the signed bytes at p. The broadcast is the
 * instruction's embedded {1to16} memory operand, one micro-fused uop, not
 * a VPBROADCASTD into a register and then the product, which is what gcc
 * and clang make of _mm512_set1_epi32(load) here (and when the word is
 * loop-invariant gcc even keeps it in a general register, broadcast from
 * there: a port-5 uop per use). In the packed gemms, where every weight
 * vector meets one such word per activation row, the q4_kx16 gemm ran
 * 1.1-1.25x faster in cache at nc = 4..8 (docs/benchmarks.md, "Embedded
 * broadcasts"). p needs no alignment. */
AINL __m512i dpbusd_bcast(__m512i acc, __m512i w, const void *p)
{
	__asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const int32_t *)p));
	return acc;
}

/* acc + VPDPWSSD(w, the two int16 at p in every lane), the same way. */
AINL __m512i dpwssd_bcast(__m512i acc, __m512i w, const void *p)
{
	__asm__("vpdpwssd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const int32_t *)p));
	return acc;
}
#endif

AINL float ld_half(const uint8_t *p)
{
	uint16_t h;
	memcpy(&h, p, 2);
	return _cvtsh_ss(h);
}

AINL int32_t ld_i32(const uint8_t *p) /* x86 is little-endian, as the files */
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

AINL float ld_f32(const uint8_t *p)
{
	float f;
	memcpy(&f, p, 4);
	return f;
}

AINL __m256i ld256(const void *p)
{
	return _mm256_loadu_si256((const __m256i *)p);
}

AINL float hsum_ps(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* d_x * d_y of two block pairs (half scales at each block's offset 0),
 * broadcast: one VCVTPH2PS for the four halves. */
AINL void scale_pair(const uint8_t *x0, const uint8_t *y0, const uint8_t *x1, const uint8_t *y1,
		     __m256 *d0, __m256 *d1)
{
	uint16_t h[4];
	memcpy(&h[0], x0, 2);
	memcpy(&h[1], y0, 2);
	memcpy(&h[2], x1, 2);
	memcpy(&h[3], y1, 2);
	long long u;
	memcpy(&u, h, 8);
	const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128(u));
	const __m128 p = _mm_mul_ps(f, _mm_movehdup_ps(f)); /* lanes 0, 2 */
	*d0 = _mm256_broadcastss_ps(p);
	*d1 = _mm256_broadcastss_ps(_mm_movehl_ps(p, p));
}

#endif
