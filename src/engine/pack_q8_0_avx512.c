/*
 * pack_q8_0_avx512.c — the AVX-512 VNNI product of the q8_0x16 packed layout
 * (quant_pack.h, pack_q8_0.c): 16 weight rows x 1..8 Q8_0 activation rows.
 * Compiled with the AVX-512 flags for this file only (src/engine/
 * CMakeLists.txt); empty on a non-x86 build.
 *
 * Owns tk_pack_q8_0_avx512 (the portable group size and packer with this
 * gemm), installed for Q8_0 by tk_quant_avx512_install().
 *
 * Per block of 32 elements, for all 16 rows at once (lane r = row r):
 *   - the 16 row scales: one VCVTPH2PS of the block's 32 scale bytes;
 *   - 8 chunks of 4 elements: one 512-bit load holds chunk k of every row
 *     (unsigned quants, +128); for each column c one VPDPBUSD against the
 *     column's 4 activation bytes broadcast (an embedded {1to16} load),
 *     chained in an int32 accumulator that starts at -128 * s_c[b] (the
 *     activation row's trailer), so it ends at sum q * y exactly (no
 *     saturation: VPDPBUSD wraps, and |sum| <= 32 * 128 * 128);
 *   - per column one convert and one FMA with d_x * d_y (the 16 row scales
 *     times the column's scale broadcast) into the column's float
 *     accumulator.
 * Blocks are summed in order, one accumulator per cell, like the reference
 * gemm; the only float difference is the fused multiply-add (one rounding
 * fewer per block), well within the test's tolerance.
 * nc is a compile-time constant in each specialization (1..8): with nc = 8
 * the 8 int and 8 float accumulators, the scales and the weight chunk fit
 * the 32 vector registers. The gemm prefetches the weights
 * TK_PREFETCH_AHEAD ahead (quant_simd.h).
 * The per-block body (q8p_block) is shared by the gemm (one group, one
 * stream per thread: prefill and its tails) and the batched-decode walk
 * (gemmg, q8p_kern_g: up to 8 groups interleaved two blocks at a time, 8
 * streams per thread). The decode gemv (one row, 8 groups in lockstep)
 * repeats the same steps with C = 1.
 */
#if defined(__x86_64__)

#include "engine/quant_pack.h"
#include "engine/quant_simd.h"
#include "engine/quant_x86.h"

#include <immintrin.h>
#include <string.h>

#define Q8P_BLOCK 544 /* bytes of one block of a group: 32 scale + 512 quant */
#define Y_BLOCK 34    /* bytes of one Q8_0 activation block */

AINL uint16_t ld_u16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

/* Block b of the group at g (g and y already at the block; the
 * activation rows' trailer words at sums, by bytes apart) times C
 * activation rows: accf[c] += (d_x d_y_c) * dot_c, prefetching the block's
 * lines `ahead` bytes ahead (the gemm's far TK_PREFETCH_AHEAD in one burst;
 * the interleaved walk's near Q8P_NEAR_AHEAD, each line with its load).
 * The one body of the gemm (q8p_kern) and the batched-decode walk
 * (q8p_kern_g), so their cells are equal bit for bit. accf is an array
 * the caller keeps in its own scope (a local of constant size): reached
 * through a pointer chosen at run time, gcc kept the accumulators in
 * memory. */
AINL void q8p_block(const uint8_t *g, const uint8_t *y, size_t by, const uint8_t *sums,
		    __m512 *accf, const int C, const int ahead)
{
	if (ahead == TK_PREFETCH_AHEAD)
		tk_prefetch_weights(g, Q8P_BLOCK);
	/* one dependent chain of 8 per column; out-of-order execution
	 * overlaps consecutive blocks' chains (splitting them measured no
	 * faster at nc = 1) */
	__m512i acc[TK_PACK_COLS];
	for (int c = 0; c < C; c++)
		acc[c] = _mm512_set1_epi32((int)(0u - ((uint32_t)ld_i32(sums + (size_t)c * by) << 7)));
	for (int k = 0; k < 8; k++) {
		const __m512i w = _mm512_loadu_si512(g + 32 + 64 * k);
		if (ahead != TK_PREFETCH_AHEAD)
			tk_prefetch_ahead(g + 32 + 64 * k, 64, ahead);
		for (int c = 0; c < C; c++)
			acc[c] = dpbusd_bcast(acc[c], w, y + (size_t)c * by + 2 + 4 * k);
	}
	const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g));
	for (int c = 0; c < C; c++) {
		const __m512 dy =
			_mm512_cvtph_ps(_mm256_set1_epi16((short)ld_u16(y + (size_t)c * by)));
		accf[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[c]), _mm512_mul_ps(dx, dy), accf[c]);
	}
}

AINL void q8p_kern(int64_t nb, float *out, size_t ldo, const uint8_t *g, const uint8_t *y,
		   size_t by, const int C)
{
	const uint8_t *sums = y + (size_t)nb * Y_BLOCK; /* trailer of row 0 */
	__m512 accf[TK_PACK_COLS];
	for (int c = 0; c < C; c++)
		accf[c] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nb; b++, g += Q8P_BLOCK, y += Y_BLOCK, sums += 4)
		q8p_block(g, y, by, sums, accf, C, TK_PREFETCH_AHEAD);
	for (int c = 0; c < C; c++)
		_mm512_storeu_ps(out + (size_t)c * ldo, accf[c]);
}

/* Batched decode (quant_pack.h's gemmg): G groups gb bytes apart, walked
 * in runs of Q8P_G_RUN blocks group by group (blocks b .. b + R - 1 of
 * group 0, of group 1, ..., then the next run), so each thread keeps G
 * streams in flight, as the gemv, where the gemm reads one. Per group
 * q8p_block's steps in the gemm's order, so every cell equals the gemm's
 * bit for bit. The G x C float accumulators live on the stack between
 * runs and in registers (a local copy) within one. G is a run-time count
 * (one specialization per nc: 37 KiB of code instead of 141 KiB with G
 * constant too, and as fast: 1.02-1.24x vs 0.95-1.08x the gemm in one
 * DRAM run, 0.99-1.02x vs 1.00-1.06x in L2). Each line is
 * prefetched Q8P_NEAR_AHEAD ahead with its load, as in the gemv.
 * Kernel A/B (docs/benchmarks.md, "q8_0x16 and f16x16 gemmg (seventh
 * session)"; 2 threads, 17000 groups of 2048 = 592 MB, against the gemm
 * per group, three runs on a loaded machine): medians 1.03-1.23x at nc =
 * 2..8 but for two (0.98x at nc = 7, 0.93x at 8); in L2 (16 groups)
 * 0.85-1.15x. Runs of 1 block measured about the same from DRAM and
 * 0.86-0.88x in L2 at nc = 7, 8; runs of 4 lost from DRAM (0.96-1.02x).
 * So every nc >= 2 takes this walk. */
#ifndef Q8P_G_RUN /* blocks per run of one group (-D to measure) */
#define Q8P_G_RUN 2
#endif
#define Q8P_NEAR_AHEAD 1024
AINL void q8p_kern_g(int64_t nb, float *out, size_t ldo, const uint8_t *g, size_t gb,
		     const uint8_t *y, size_t by, const int C, const int G)
{
	const uint8_t *sums = y + (size_t)nb * Y_BLOCK;
	__m512 accg[TK_PACK_GEMV_GROUPS][TK_PACK_COLS];
	for (int i = 0; i < G; i++)
		for (int c = 0; c < C; c++)
			accg[i][c] = _mm512_setzero_ps();
	for (int64_t b0 = 0; b0 < nb; b0 += Q8P_G_RUN) {
		const int64_t r = nb - b0 < Q8P_G_RUN ? nb - b0 : Q8P_G_RUN;
		const uint8_t *gb0 = g + (size_t)b0 * Q8P_BLOCK, *yb0 = y + (size_t)b0 * Y_BLOCK;
		for (int i = 0; i < G; i++) {
			__m512 accf[TK_PACK_COLS];
			for (int c = 0; c < C; c++)
				accf[c] = accg[i][c];
			for (int64_t b = 0; b < r; b++)
				q8p_block(gb0 + (size_t)i * gb + (size_t)b * Q8P_BLOCK,
					  yb0 + (size_t)b * Y_BLOCK, by, sums + 4 * (b0 + b), accf, C,
					  Q8P_NEAR_AHEAD);
			for (int c = 0; c < C; c++)
				accg[i][c] = accf[c];
		}
	}
	for (int i = 0; i < G; i++)
		for (int c = 0; c < C; c++)
			_mm512_storeu_ps(out + (size_t)c * ldo + 16 * (size_t)i, accg[i][c]);
}

/* Decode: G groups gb bytes apart times one activation row, in lockstep
 * (quant_pack.h's gemv). Per cell the same steps in the same order as
 * q8p_kern with C = 1, so the results are bit-identical to it. G streams
 * keep the hardware prefetchers busy (an 8 KiB-ahead prefetch per stream
 * measured no faster); a near prefetch, each line Q8P_NEAR_AHEAD (1 KiB) ahead
 * issued with its load, keeps more lines in flight: +5-9% from DRAM with
 * 2 threads (docs/benchmarks.md, "q8_0x16 gemv: near prefetch"). */
AINL void q8p_gemv(int64_t nb, float *out, const uint8_t *g, size_t gb, const uint8_t *y,
		   const int G)
{
	const uint8_t *sums = y + (size_t)nb * Y_BLOCK;
	__m512 accf[TK_PACK_GEMV_GROUPS];
	for (int i = 0; i < G; i++)
		accf[i] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nb; b++, g += Q8P_BLOCK, y += Y_BLOCK, sums += 4) {
		const __m512i init = _mm512_set1_epi32((int)(0u - ((uint32_t)ld_i32(sums) << 7)));
		const __m512 dy = _mm512_cvtph_ps(_mm256_set1_epi16((short)ld_u16(y)));
		__m512i acc[TK_PACK_GEMV_GROUPS];
		for (int i = 0; i < G; i++)
			acc[i] = init;
		for (int k = 0; k < 8; k++) {
			const __m512i yk = _mm512_set1_epi32(ld_i32(y + 2 + 4 * k));
			for (int i = 0; i < G; i++) {
				acc[i] = _mm512_dpbusd_epi32(
					acc[i], _mm512_loadu_si512(g + (size_t)i * gb + 32 + 64 * k), yk);
				/* every 64 bytes of the stream, so all its lines */
				__builtin_prefetch(g + (size_t)i * gb + 32 + 64 * k + Q8P_NEAR_AHEAD, 0, 3);
			}
		}
		for (int i = 0; i < G; i++) {
			const __m512 dx = _mm512_cvtph_ps(
				_mm256_loadu_si256((const __m256i *)(g + (size_t)i * gb)));
			accf[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i]), _mm512_mul_ps(dx, dy),
						  accf[i]);
		}
	}
	for (int i = 0; i < G; i++)
		_mm512_storeu_ps(out + 16 * i, accf[i]);
}

#define Q8P_GEMV_CASE(G)                                                       \
	case G:                                                                \
		q8p_gemv(nb, out, (const uint8_t *)groups, gb, (const uint8_t *)y, G); \
		break;

static void q8_0x16_gemv_avx512(int64_t n, float *out, const void *groups, size_t gb, int ng,
				const void *y)
{
	const int64_t nb = n / TK_QK8_0;
	switch (ng) {
	Q8P_GEMV_CASE(1)
	Q8P_GEMV_CASE(2)
	Q8P_GEMV_CASE(3)
	Q8P_GEMV_CASE(4)
	Q8P_GEMV_CASE(5)
	Q8P_GEMV_CASE(6)
	Q8P_GEMV_CASE(7)
	Q8P_GEMV_CASE(8)
	default:
		break;
	}
}

#define Q8P_CASE(C)                                                 \
	case C:                                                     \
		q8p_kern(nb, out, ldo, (const uint8_t *)group,      \
			 (const uint8_t *)y, by, C);                \
		break;

static void q8_0x16_gemm_avx512(int64_t n, float *out, size_t ldo, const void *group,
				const void *y, size_t by, int nc)
{
	const int64_t nb = n / TK_QK8_0;
	switch (nc) {
	Q8P_CASE(1)
	Q8P_CASE(2)
	Q8P_CASE(3)
	Q8P_CASE(4)
	Q8P_CASE(5)
	Q8P_CASE(6)
	Q8P_CASE(7)
	Q8P_CASE(8)
	default:
		break;
	}
}

#define Q8P_G_CASE(C)                                                               \
	case C:                                                                     \
		q8p_kern_g(nb, out, ldo, (const uint8_t *)groups, gb, (const uint8_t *)y, by, \
			   C, ng);                                                  \
		break;

/* nc = 1 is the gemv (the same cells: it is q8p_kern's C = 1 steps); every
 * other nc interleaves the groups (q8p_kern_g). */
static void q8_0x16_gemmg_avx512(int64_t n, float *out, size_t ldo, const void *groups, size_t gb,
				 int ng, const void *y, size_t by, int nc)
{
	const int64_t nb = n / TK_QK8_0;
	switch (nc) {
	case 1: q8_0x16_gemv_avx512(n, out, groups, gb, ng, y); break;
	Q8P_G_CASE(2)
	Q8P_G_CASE(3)
	Q8P_G_CASE(4)
	Q8P_G_CASE(5)
	Q8P_G_CASE(6)
	Q8P_G_CASE(7)
	Q8P_G_CASE(8)
	default: break;
	}
}

const struct tk_pack_traits tk_pack_q8_0_avx512 = {
	.name = "q8_0x16",
	.group_size = tk_pack_q8_0_group_size,
	.pack = tk_pack_q8_0_pack,
	.gemm = q8_0x16_gemm_avx512,
	.gemv = q8_0x16_gemv_avx512,
	.gemmg = q8_0x16_gemmg_avx512,
};

#else
/* Not x86-64: nothing to build (ISO C wants one declaration). */
typedef int tk_pack_q8_0_avx512_absent;
#endif /* __x86_64__ */
