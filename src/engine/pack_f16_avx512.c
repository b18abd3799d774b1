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

/* One FMA step: the 16 weights w of element e times y_c[e] into acc[c]
 * (activation row c at yc[c]). */
#define F16X16_STEP(acc, w, e)                                                         \
	do {                                                                           \
		for (int c_ = 0; c_ < C; c_++)                                        \
			acc[c_] = _mm512_fmadd_ps(                                    \
				w, _mm512_set1_ps(ld_f32(yc[c_] + 4 * (size_t)(e))), acc[c_]); \
	} while (0)

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

AINL void f16x16_kern(int64_t n, float *out, size_t ldo, const uint8_t *g, const uint8_t *y,
		      size_t by, const int C)
{
	const int64_t h = tk_pack_f16_half(n); /* even; the second half is [h, n) */
	const int64_t n1 = n - h;              /* its length, h .. h + 3 */
	const uint8_t *g1 = g + 32 * (size_t)h;
	const uint8_t *yc[TK_PACK_COLS];
	/* per column: the halves' sums p and their open chunks' sums q */
	__m512 p0[TK_PACK_COLS], p1[TK_PACK_COLS], q0[TK_PACK_COLS], q1[TK_PACK_COLS];
	for (int c = 0; c < C; c++)
		yc[c] = y + (size_t)c * by;
	zero_cols(p0, C);
	zero_cols(p1, C);
	/* both halves at once: two FMA chains per column, two memory streams,
	 * one cache line of each per step; offsets e in both halves */
	int64_t e = 0;
	for (; e + TK_PACK_F16_CHUNK <= h; e += TK_PACK_F16_CHUNK) {
		zero_cols(q0, C);
		zero_cols(q1, C);
		/* unrolled: every address is a column base + 4 e + a constant,
		 * which keeps the 2 x nc activation pointers out of the loop */
#pragma GCC unroll 8
		for (int i = 0; i < TK_PACK_F16_CHUNK; i += 2) {
			tk_prefetch_weights(g + 32 * (size_t)(e + i), 64);
			tk_prefetch_weights(g1 + 32 * (size_t)(e + i), 64);
			const __m512 a0 = ld_f16x16(g, e + i), b0 = ld_f16x16(g1, e + i);
			F16X16_STEP(q0, a0, e + i);
			F16X16_STEP(q1, b0, h + e + i);
			const __m512 a1 = ld_f16x16(g, e + i + 1), b1 = ld_f16x16(g1, e + i + 1);
			F16X16_STEP(q0, a1, e + i + 1);
			F16X16_STEP(q1, b1, h + e + i + 1);
		}
		add_cols(p0, q0, C);
		add_cols(p1, q1, C);
	}
	const int64_t open1 = e; /* offset where the second half's open chunk starts */
	zero_cols(q1, C);
	if (e < h) { /* the halves' last chunks, h % 16 elements (even) */
		zero_cols(q0, C);
		for (; e < h; e += 2) {
			const __m512 a0 = ld_f16x16(g, e), b0 = ld_f16x16(g1, e);
			F16X16_STEP(q0, a0, e);
			F16X16_STEP(q1, b0, h + e);
			const __m512 a1 = ld_f16x16(g, e + 1), b1 = ld_f16x16(g1, e + 1);
			F16X16_STEP(q0, a1, e + 1);
			F16X16_STEP(q1, b1, h + e + 1);
		}
		add_cols(p0, q0, C);
	}
	for (int64_t o = h; o < n1; o++) { /* the second half's last 0..3 */
		if (o % TK_PACK_F16_CHUNK == 0 && o != open1) {
			add_cols(p1, q1, C);
			zero_cols(q1, C);
		}
		const __m512 b0 = ld_f16x16(g1, o);
		F16X16_STEP(q1, b0, h + o);
	}
	add_cols(p1, q1, C);
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

/* acc[i] += (element e of group i at gi[i]) * y[ye], i < G */
#define F16G_STEP(acc, gi, e, ye)                                                       \
	do {                                                                            \
		const __m512 y_ = _mm512_set1_ps(ld_f32(y + 4 * (size_t)(ye)));         \
		for (int i_ = 0; i_ < G; i_++)                                          \
			acc[i_] = _mm512_fmadd_ps(ld_f16x16(gi[i_], e), y_, acc[i_]);   \
	} while (0)

AINL void f16g_kern(int64_t n, float *out, const uint8_t *g, size_t gb, const uint8_t *y,
		    const int G, const int PF)
{
	const int64_t h = tk_pack_f16_half(n);
	const int64_t n1 = n - h;
	const uint8_t *g0[F16X16_GEMV_PASS], *g1[F16X16_GEMV_PASS];
	__m512 p0[F16X16_GEMV_PASS], p1[F16X16_GEMV_PASS], q0[F16X16_GEMV_PASS],
		q1[F16X16_GEMV_PASS];
	for (int i = 0; i < G; i++) {
		g0[i] = g + (size_t)i * gb;
		g1[i] = g0[i] + 32 * (size_t)h;
	}
	zero_cols(p0, G);
	zero_cols(p1, G);
	int64_t e = 0;
	for (; e + TK_PACK_F16_CHUNK <= h; e += TK_PACK_F16_CHUNK) {
		zero_cols(q0, G);
		zero_cols(q1, G);
#pragma GCC unroll 8
		for (int i = 0; i < TK_PACK_F16_CHUNK; i += 2) {
			if (PF)
				for (int j = 0; j < G; j++) {
					tk_prefetch_weights(g0[j] + 32 * (size_t)(e + i), 64);
					tk_prefetch_weights(g1[j] + 32 * (size_t)(e + i), 64);
				}
			F16G_STEP(q0, g0, e + i, e + i);
			F16G_STEP(q1, g1, e + i, h + e + i);
			F16G_STEP(q0, g0, e + i + 1, e + i + 1);
			F16G_STEP(q1, g1, e + i + 1, h + e + i + 1);
		}
		add_cols(p0, q0, G);
		add_cols(p1, q1, G);
	}
	const int64_t open1 = e;
	zero_cols(q1, G);
	if (e < h) {
		zero_cols(q0, G);
		for (; e < h; e++) {
			F16G_STEP(q0, g0, e, e);
			F16G_STEP(q1, g1, e, h + e);
		}
		add_cols(p0, q0, G);
	}
	for (int64_t o = h; o < n1; o++) {
		if (o % TK_PACK_F16_CHUNK == 0 && o != open1) {
			add_cols(p1, q1, G);
			zero_cols(q1, G);
		}
		F16G_STEP(q1, g1, o, h + o);
	}
	add_cols(p1, q1, G);
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
