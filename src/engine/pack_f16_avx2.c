/*
 * pack_f16_avx2.c — the AVX2 + FMA + F16C product of the f16x16 packed
 * layout (pack_f16.c): tk_pack_f16_avx2, installed by
 * tk_quant_avx2_install() as the F16 type's `pack` (the avx512 set replaces
 * it). Compiled with the AVX2 flags for this file only
 * (src/engine/CMakeLists.txt); empty on a non-x86 build.
 *
 * A ymm holds 8 floats, so a group is two 8-row halves: bytes 16k .. 16k+15
 * of element e (k = 0, 1) are rows 8k .. 8k+7, one VCVTPH2PS of a 128-bit
 * load. The 16 ymm registers hold four accumulators per (row half, column)
 * (the two row halves' chunk sums and the two halves' sums, pack_f16.c),
 * so the kernel sweeps the group several times: decode (nc = 1) in one
 * sweep over both row halves, which streams the group once from DRAM as
 * two streams prefetched TK_PREFETCH_AHEAD ahead; nc >= 2 one sweep per
 * row half and pair of columns (the group stays in L2 between sweeps).
 * Every cell is computed with the reference's operations in its order, so
 * results equal tk_pack_f16_ref's bit for bit (test_pack_f16).
 */
#if defined(__x86_64__)

#include "engine/pack_f16.h"
#include "engine/quant_simd.h"
#include "engine/quant_x86.h"

#include <immintrin.h>

/* Rows 8k .. 8k+7 of element e. */
AINL __m256 ld_f16x8(const uint8_t *g, int64_t e, int k)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + 32 * (size_t)e + 16 * (size_t)k)));
}

/* pack_f16.h's schedule hooks for f16x8_sweep: acc[k][c] += (rows
 * 8(K0+k) .. of element e of half s, at gh[s]) * y_c[ye], for the sweep's
 * R8 row halves and C columns */
#define SWEEP_STEP(acc, s, e, ye)                                                      \
	do {                                                                           \
		for (int k_ = 0; k_ < R8; k_++) {                                     \
			const __m256 w_ = ld_f16x8(gh[s], e, K0 + k_);                \
			for (int c_ = 0; c_ < C; c_++)                                \
				acc[k_][c_] = _mm256_fmadd_ps(                        \
					w_, _mm256_set1_ps(ld_f32(yc[c_] + 4 * (size_t)(ye))), \
					acc[k_][c_]);                                 \
		}                                                                     \
	} while (0)
AINL void zero8(__m256 v[2][2], const int R8, const int C)
{
	for (int k = 0; k < R8; k++)
		for (int c = 0; c < C; c++)
			v[k][c] = _mm256_setzero_ps();
}

AINL void add8(__m256 p[2][2], __m256 q[2][2], const int R8, const int C)
{
	for (int k = 0; k < R8; k++)
		for (int c = 0; c < C; c++)
			p[k][c] = _mm256_add_ps(p[k][c], q[k][c]);
}

#define SWEEP_ZERO(v) zero8(v, R8, C)
#define SWEEP_ADD(p, q) add8(p, q, R8, C)

/* One sweep: rows 8 K0 .. 8 (K0 + R8) - 1 of the group, columns yc[0..C-1]
 * into out (column c at out + c * ldo). The structure is the avx512
 * kernel's (pack_f16_avx512.c), lane for lane. */
AINL void f16x8_sweep(int64_t n, float *out, size_t ldo, const uint8_t *g,
		      const uint8_t *const *yc, const int K0, const int R8, const int C)
{
	const uint8_t *const gh[2] = { g, g + 32 * (size_t)tk_pack_f16_half(n) };
	__m256 p0[2][2], p1[2][2], q0[2][2], q1[2][2];
	TK_PACK_F16_SCHEDULE(n, SWEEP_STEP, SWEEP_ZERO, SWEEP_ADD, TK_PACK_F16_PF_HALVES,
			     p0, p1, q0, q1);
	for (int k = 0; k < R8; k++)
		for (int c = 0; c < C; c++)
			_mm256_storeu_ps(out + (size_t)c * ldo + 8 * (size_t)(K0 + k),
					 _mm256_add_ps(p0[k][c], p1[k][c]));
}

/* Decode: G groups gb bytes apart times one activation row y, in lockstep
 * (quant_pack.h's gemv): element e of every group (both 8-row halves,
 * both halves of the row), then e + 1. Per lane the operations of
 * f16x8_sweep with R8 = 2, C = 1 in its order, so every cell equals the
 * gemm's bit for bit. Four chunk accumulators per group (row half x
 * half of the row) stay in registers; the halves' sums are touched once
 * per 16 elements (the compiler may keep them on the stack). */
#ifndef F16X8_GEMV_PASS /* groups per pass: 1, 2 or 4 (-D to measure) */
#define F16X8_GEMV_PASS 4
#endif
#if F16X8_GEMV_PASS != 1 && F16X8_GEMV_PASS != 2 && F16X8_GEMV_PASS != 4
#error "F16X8_GEMV_PASS must be 1, 2 or 4"
#endif
#ifndef F16X8_GEMV_PF /* 1: software prefetch per stream, as the gemm's */
#define F16X8_GEMV_PF 0
#endif

/* the schedule hooks for f16x8_gemv: acc[i][k] += (rows 8k .. of element
 * e of half s of group i, at gh[s][i]) * y[ye] */
#define GEMV_STEP(acc, s, e, ye)                                                       \
	do {                                                                           \
		const __m256 y_ = _mm256_set1_ps(ld_f32(y + 4 * (size_t)(ye)));        \
		for (int i_ = 0; i_ < G; i_++)                                         \
			for (int k_ = 0; k_ < 2; k_++)                                 \
				acc[i_][k_] = _mm256_fmadd_ps(ld_f16x8(gh[s][i_], e, k_), y_, \
							      acc[i_][k_]);            \
	} while (0)
#define GEMV_ZERO(v) zero8g(v, G)
#define GEMV_ADD(p, q) add8g(p, q, G)

AINL void zero8g(__m256 v[][2], const int G)
{
	for (int i = 0; i < G; i++)
		for (int k = 0; k < 2; k++)
			v[i][k] = _mm256_setzero_ps();
}

AINL void add8g(__m256 p[][2], __m256 q[][2], const int G)
{
	for (int i = 0; i < G; i++)
		for (int k = 0; k < 2; k++)
			p[i][k] = _mm256_add_ps(p[i][k], q[i][k]);
}

AINL void f16x8_gemv(int64_t n, float *out, const uint8_t *g, size_t gb, const uint8_t *y,
		     const int G, const int PF)
{
	const int64_t h = tk_pack_f16_half(n);
	const uint8_t *gh[2][F16X8_GEMV_PASS];
	__m256 p0[F16X8_GEMV_PASS][2], p1[F16X8_GEMV_PASS][2], q0[F16X8_GEMV_PASS][2],
		q1[F16X8_GEMV_PASS][2];
	for (int i = 0; i < G; i++) {
		gh[0][i] = g + (size_t)i * gb;
		gh[1][i] = gh[0][i] + 32 * (size_t)h;
	}
	TK_PACK_F16_SCHEDULE(n, GEMV_STEP, GEMV_ZERO, GEMV_ADD, TK_PACK_F16_PF_GROUPS,
			     p0, p1, q0, q1);
	for (int i = 0; i < G; i++)
		for (int k = 0; k < 2; k++)
			_mm256_storeu_ps(out + 16 * (size_t)i + 8 * (size_t)k,
					 _mm256_add_ps(p0[i][k], p1[i][k]));
}

#define F16X8G_CASE(G)                                                 \
	case G:                                                        \
		f16x8_gemv(n, o, gi, gb, yb, G, F16X8_GEMV_PF);        \
		break;

static void f16x16_gemv_avx2(int64_t n, float *out, const void *groups, size_t gb, int ng,
			     const void *y)
{
	const uint8_t *g = groups, *yb = y;
	for (int i0 = 0; i0 < ng; i0 += F16X8_GEMV_PASS) {
		float *o = out + 16 * (size_t)i0;
		const uint8_t *gi = g + (size_t)i0 * gb;
		switch (ng - i0 < F16X8_GEMV_PASS ? ng - i0 : F16X8_GEMV_PASS) {
		F16X8G_CASE(1)
#if F16X8_GEMV_PASS > 1
		F16X8G_CASE(2)
#endif
#if F16X8_GEMV_PASS >= 4
		F16X8G_CASE(3)
		F16X8G_CASE(4)
#endif
		default: break;
		}
	}
}

static void f16x16_gemm_avx2(int64_t n, float *out, size_t ldo, const void *group, const void *y,
			     size_t by, int nc)
{
	const uint8_t *g = group;
	const uint8_t *yc[TK_PACK_COLS];
	for (int c = 0; c < nc && c < TK_PACK_COLS; c++)
		yc[c] = (const uint8_t *)y + (size_t)c * by;
	if (nc == 1) {
		f16x8_sweep(n, out, ldo, g, yc, 0, 2, 1);
		return;
	}
	for (int k = 0; k < 2; k++)
		for (int c0 = 0; c0 < nc && c0 < TK_PACK_COLS; c0 += 2) {
			if (nc - c0 >= 2)
				f16x8_sweep(n, out + (size_t)c0 * ldo, ldo, g, yc + c0, k, 1, 2);
			else
				f16x8_sweep(n, out + (size_t)c0 * ldo, ldo, g, yc + c0, k, 1, 1);
		}
}

const struct tk_pack_traits tk_pack_f16_avx2 = {
	.name = "f16x16",
	.group_size = tk_pack_f16_group_size,
	.pack = tk_pack_f16_pack,
	.gemm = f16x16_gemm_avx2,
	.gemv = f16x16_gemv_avx2,
};

#else
/* Not x86-64: nothing to build (ISO C wants one declaration). */
typedef int tk_pack_f16_avx2_absent;
#endif /* __x86_64__ */
