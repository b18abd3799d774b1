/*
 * pack_f16_avx512.c — the AVX-512 product of the f16x16 packed layout
 * (pack_f16.c): tk_pack_f16_avx512, installed by tk_quant_avx512_install()
 * as the F16 type's `pack`. Compiled with the AVX-512 flags for this file
 * only (src/engine/CMakeLists.txt); empty on a non-x86 build.
 *
 * Per element e of the group: one 256-bit load and one VCVTPH2PS give e of
 * all 16 rows as a zmm (lane r = row r); then per activation column c one
 * VFMADD231PS with y_c[e] broadcast from memory. The two halves of the row
 * (pack_f16.c) are walked side by side, so each column has two independent
 * FMA chains; the chunk sums of nc = 8 columns are 16 of the 32 zmm
 * registers, the halves' sums the rest (or the stack: they are touched
 * once per 16 elements). The result is the reference gemm's bit for bit
 * (the same operations in the same order per lane; test_pack_f16). Where
 * it adds a chunk sum of +0 the reference does not (the second half ending
 * on a chunk boundary), the sum is unchanged: a half's sum starts at +0 and
 * so is never -0.
 *
 * Decode (nc = 1) streams the group from DRAM as two streams (the halves),
 * each prefetched TK_PREFETCH_AHEAD bytes ahead (quant_simd.h), one cache
 * line per stream and iteration; the first half's prefetch runs on into the
 * second half, the second's into the next group (groups are back to back).
 * nc is made a compile-time constant (1..8) so the accumulators stay in
 * registers.
 */
#if defined(__x86_64__)

#include "engine/pack_f16.h"
#include "engine/quant_simd.h"
#include "engine/quant_x86.h"

#include <immintrin.h>

AINL __m512 ld_f16x16(const uint8_t *g, int64_t e)
{
	return _mm512_cvtph_ps(ld256(g + 32 * (size_t)e));
}

AINL void zero_cols(__m512 *v, const int C)
{
	for (int c = 0; c < C; c++)
		v[c] = _mm512_setzero_ps();
}

AINL void add_cols(__m512 *p, const __m512 *q, const int C)
{
	for (int c = 0; c < C; c++)
		p[c] = _mm512_add_ps(p[c], q[c]);
}

/* pack_f16.h's schedule hooks for f16x16_kern (C columns yc[], the
 * halves at gh[0], gh[1]) */
#define KERN_STEP(acc, s, e, ye)                                                       \
	do {                                                                           \
		const __m512 w_ = ld_f16x16(gh[s], e);                                 \
		for (int c_ = 0; c_ < C; c_++)                                        \
			acc[c_] = _mm512_fmadd_ps(                                    \
				w_, _mm512_set1_ps(ld_f32(yc[c_] + 4 * (size_t)(ye))), acc[c_]); \
	} while (0)
#define KERN_ZERO(v) zero_cols(v, C)
#define KERN_ADD(p, q) add_cols(p, q, C)

AINL void f16x16_kern(int64_t n, float *out, size_t ldo, const uint8_t *g, const uint8_t *y,
		      size_t by, const int C)
{
	const uint8_t *const gh[2] = { g, g + 32 * (size_t)tk_pack_f16_half(n) };
	const uint8_t *yc[TK_PACK_COLS];
	/* per column: the halves' sums p and their open chunks' sums q */
	__m512 p0[TK_PACK_COLS], p1[TK_PACK_COLS], q0[TK_PACK_COLS], q1[TK_PACK_COLS];
	for (int c = 0; c < C; c++)
		yc[c] = y + (size_t)c * by;
	TK_PACK_F16_SCHEDULE(n, KERN_STEP, KERN_ZERO, KERN_ADD, TK_PACK_F16_PF_HALVES,
			     p0, p1, q0, q1);
	for (int c = 0; c < C; c++)
		_mm512_storeu_ps(out + (size_t)c * ldo, _mm512_add_ps(p0[c], p1[c]));
}

/* Decode: G groups gb bytes apart times one activation row y, in lockstep
 * (quant_pack.h's gemv): element e of both row halves of every group, then
 * e + 1. Per group the same operations in the same order as f16x16_kern
 * with C = 1 (the columns' loop becomes the groups'), so every cell equals
 * the gemm's bit for bit; each activation float is broadcast once for all
 * G groups. 2 G streams of reads (two per group). */
#ifndef F16X16_GEMV_PASS /* groups per pass: 1, 2, 4 or 8 (-D to measure) */
#define F16X16_GEMV_PASS 8
#endif
#if F16X16_GEMV_PASS != 1 && F16X16_GEMV_PASS != 2 && F16X16_GEMV_PASS != 4 && F16X16_GEMV_PASS != 8
#error "F16X16_GEMV_PASS must be 1, 2, 4 or 8"
#endif
#ifndef F16X16_GEMV_PF /* 1: software prefetch per stream, as the gemm's */
#define F16X16_GEMV_PF 0
#endif

/* the schedule hooks for f16g_kern: acc[i] += (element e of half s of
 * group i) * y[ye], i < G; the groups' halves at gh[s][i] */
#define GEMV_STEP(acc, s, e, ye)                                                       \
	do {                                                                           \
		const __m512 y_ = _mm512_set1_ps(ld_f32(y + 4 * (size_t)(ye)));        \
		for (int i_ = 0; i_ < G; i_++)                                         \
			acc[i_] = _mm512_fmadd_ps(ld_f16x16(gh[s][i_], e), y_, acc[i_]); \
	} while (0)
#define GEMV_ZERO(v) zero_cols(v, G)
#define GEMV_ADD(p, q) add_cols(p, q, G)

AINL void f16g_kern(int64_t n, float *out, const uint8_t *g, size_t gb, const uint8_t *y,
		    const int G, const int PF)
{
	const int64_t h = tk_pack_f16_half(n);
	const uint8_t *gh[2][F16X16_GEMV_PASS];
	__m512 p0[F16X16_GEMV_PASS], p1[F16X16_GEMV_PASS], q0[F16X16_GEMV_PASS],
		q1[F16X16_GEMV_PASS];
	for (int i = 0; i < G; i++) {
		gh[0][i] = g + (size_t)i * gb;
		gh[1][i] = gh[0][i] + 32 * (size_t)h;
	}
	TK_PACK_F16_SCHEDULE(n, GEMV_STEP, GEMV_ZERO, GEMV_ADD, TK_PACK_F16_PF_GROUPS,
			     p0, p1, q0, q1);
	for (int i = 0; i < G; i++)
		_mm512_storeu_ps(out + 16 * (size_t)i, _mm512_add_ps(p0[i], p1[i]));
}

#define F16G_CASE(G)                                                   \
	case G:                                                        \
		f16g_kern(n, o, gi, gb, yb, G, F16X16_GEMV_PF);        \
		break;

static void f16x16_gemv_avx512(int64_t n, float *out, const void *groups, size_t gb, int ng,
			       const void *y)
{
	const uint8_t *g = groups, *yb = y;
	for (int i0 = 0; i0 < ng; i0 += F16X16_GEMV_PASS) {
		float *o = out + 16 * (size_t)i0;
		const uint8_t *gi = g + (size_t)i0 * gb;
		switch (ng - i0 < F16X16_GEMV_PASS ? ng - i0 : F16X16_GEMV_PASS) {
		F16G_CASE(1)
#if F16X16_GEMV_PASS >= 2
		F16G_CASE(2)
#endif
#if F16X16_GEMV_PASS >= 4
		F16G_CASE(3)
		F16G_CASE(4)
#endif
#if F16X16_GEMV_PASS == 8
		F16G_CASE(5)
		F16G_CASE(6)
		F16G_CASE(7)
		F16G_CASE(8)
#endif
		default: break;
		}
	}
}

static void f16x16_gemm_avx512(int64_t n, float *out, size_t ldo, const void *group, const void *y,
			       size_t by, int nc)
{
	const uint8_t *g = group, *yb = y;
	switch (nc) {
	case 1: f16x16_kern(n, out, ldo, g, yb, by, 1); break;
	case 2: f16x16_kern(n, out, ldo, g, yb, by, 2); break;
	case 3: f16x16_kern(n, out, ldo, g, yb, by, 3); break;
	case 4: f16x16_kern(n, out, ldo, g, yb, by, 4); break;
	case 5: f16x16_kern(n, out, ldo, g, yb, by, 5); break;
	case 6: f16x16_kern(n, out, ldo, g, yb, by, 6); break;
	case 7: f16x16_kern(n, out, ldo, g, yb, by, 7); break;
	case 8: f16x16_kern(n, out, ldo, g, yb, by, 8); break;
	default: break;
	}
}

const struct tk_pack_traits tk_pack_f16_avx512 = {
	.name = "f16x16",
	.group_size = tk_pack_f16_group_size,
	.pack = tk_pack_f16_pack,
	.gemm = f16x16_gemm_avx512,
	.gemv = f16x16_gemv_avx512,
};

#else
/* Not x86-64: nothing to build (ISO C wants one declaration). */
typedef int tk_pack_f16_avx512_absent;
#endif /* __x86_64__ */
