/* test_pack_q4_k.c — the q4_kx16 packed layout (quant_pack.h,
 * pack_q4_k.c) and its fast products:
 *   layout      every byte of a packed group decoded by the layout's
 *               definition gives back the file rows' values (d, dmin, the
 *               6-bit scales and mins, every code); group_size = 2368 bytes
 *               a super-block;
 *   reference   the scalar gemm against the Q4_K reference vec_dot for every
 *               cell, nc = 1..8, on random rows of awkward lengths (one
 *               super-block, odd counts, the model sizes 1536/2048/5632/
 *               8960), several groups, strided file rows: bit for bit (the
 *               gemm repeats the vec_dot's float steps in its order, see
 *               pack_q4_k.c), and within a tolerance of an independent
 *               double-precision dot of the dequantized rows;
 *   extreme     codes 15, scales and mins 63, activations all +127 or all
 *               -128 (hand-built Q8_K rows): the int32 sums must not
 *               overflow; with unit d the result is checked against the
 *               integer dot computed here in int64;
 *   fast        whatever pack traits an ISA variant this CPU runs installs
 *               for Q4_K (tk_quant_isa_traits) against the reference gemm,
 *               bit for bit, with odd strides, unaligned pointers and cells
 *               outside nc untouched; variants this CPU lacks (or that
 *               install no Q4_K layout) are skipped with a message;
 *   bsums       activation rows whose bsums are arbitrary int16 (not the
 *               sums of their codes; the extremes -32768 and 32767
 *               included): the fast gemm (nc = 1..8) and gemv (ng = 1..3)
 *               still equal the reference gemm bit for bit, since their
 *               min term is exact for any int16 bsums.
 */
#include "testutil.h"

#include "engine/fp16.h"
#include "engine/quant.h"
#include "engine/quant_pack.h"
#include "engine/quant_simd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS TK_PACK_ROWS
#define QK TK_QK_K
#define XB ((size_t)sizeof(struct tk_block_q4_k)) /* 144 */
#define YB ((size_t)sizeof(struct tk_block_q8_k)) /* 292 */
#define PB 2368                                   /* packed super-block */

static uint64_t rng_state = 0x6a09e667f3bcc909ull;

static uint64_t rng_u64(void) { return tk_test_rng_u64(&rng_state); }

static float rng_normal(void) { return tk_test_rng_normal(&rng_state); }


static void put_half(uint8_t *p, float f)
{
	const uint16_t h = tk_fp32_to_fp16(f);
	p[0] = (uint8_t)h;
	p[1] = (uint8_t)(h >> 8);
}

/* Q4_K file rows: rows x n elements at x, row_bytes apart. mode 0: random
 * bytes (every scale, min and code value occurs) with small random d and
 * dmin; mode 1: the reference quantizer's encoding of random floats. */
static void make_rows(uint8_t *x, size_t row_bytes, int rows, int64_t n, int mode)
{
	const struct tk_type_traits *rt = tk_type_traits_ref(TK_TYPE_Q4_K);
	float *f = tk_test_xmalloc((size_t)n * sizeof *f);
	for (int r = 0; r < rows; r++) {
		uint8_t *row = x + (size_t)r * row_bytes;
		if (mode == 0) {
			for (size_t i = 0; i < (size_t)(n / QK) * XB; i++)
				row[i] = (uint8_t)rng_u64();
			for (int64_t b = 0; b < n / QK; b++) {
				put_half(row + (size_t)b * XB, rng_normal() * 0.01f);
				put_half(row + (size_t)b * XB + 2, rng_normal() * 0.01f);
			}
		} else {
			for (int64_t i = 0; i < n; i++)
				f[i] = rng_normal();
			rt->from_float(f, row, n);
		}
	}
	free(f);
}

/* n elements of random activations, encoded as a Q8_K row at y. */
static void make_act(uint8_t *y, int64_t n)
{
	float *f = tk_test_xmalloc((size_t)n * sizeof *f);
	for (int64_t i = 0; i < n; i++)
		f[i] = rng_normal() * (rng_u64() % 8 == 0 ? 10.0f : 1.0f);
	tk_act_encode(TK_TYPE_Q8_K, f, y, n);
	free(f);
}

/* The scale and min of sub-block j of a file block, straight from quant.h's
 * description of the 12 packed bytes. */
static void file_scale_min(const uint8_t *blk, int j, int *sc, int *m)
{
	const uint8_t *s = blk + 4;
	if (j < 4) {
		*sc = s[j] & 63;
		*m = s[j + 4] & 63;
	} else {
		*sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
		*m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
	}
}

static int file_code(const uint8_t *blk, int e)
{
	const int g = e / 64, t = (e / 32) % 2, l = e % 32;
	return (blk[16 + 32 * g + l] >> (4 * t)) & 15;
}

static void test_layout(void **state)
{
	(void)state;
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_Q4_K);
	assert_non_null(pt);
	assert_string_equal(pt->name, "q4_kx16");
	const int64_t n = 3 * QK;
	assert_int_equal(pt->group_size(n), 3 * PB);
	assert_int_equal(pt->group_size(QK), PB);
	const size_t rb = (size_t)(n / QK) * XB + 7; /* strided rows */
	uint8_t *x = tk_test_xmalloc(ROWS * rb);
	make_rows(x, rb, ROWS, n, 0);
	uint8_t *g = tk_test_xmalloc(pt->group_size(n));
	memset(g, 0xa5, pt->group_size(n));
	pt->pack(g, x, rb, n);
	for (int b = 0; b < 3; b++) {
		const uint8_t *p = g + (size_t)b * PB;
		for (int r = 0; r < ROWS; r++) {
			const uint8_t *blk = x + (size_t)r * rb + (size_t)b * XB;
			assert_memory_equal(p + 2 * r, blk, 2);       /* d */
			assert_memory_equal(p + 32 + 2 * r, blk + 2, 2); /* dmin */
			for (int j = 0; j < 8; j++) {
				int sc, m;
				file_scale_min(blk, j, &sc, &m);
				assert_int_equal(p[64 + 16 * j + r], sc);
				assert_int_equal(p[192 + 64 * (j / 4) + 4 * r + j % 4], m);
				for (int k = 0; k < 4; k++)
					for (int i = 0; i < 4; i++) {
						const int e = 32 * j + 4 * k + i;
						const uint8_t v = p[320 + 256 * j + 64 * k + 4 * r + i];
						assert_int_equal(v & 15, file_code(blk, e));
						assert_int_equal(v >> 4, file_code(blk, e + 16));
					}
			}
		}
	}
	free(g);
	free(x);
}

/* An independent value of row . activation: the dequantized floats (the
 * reference to_float of both rows) dotted in double; *mag gets the sum of
 * |terms|, the scale of float rounding in any summation order. */
static double dot_f64(const uint8_t *xrow, const uint8_t *yrow, int64_t n, double *mag)
{
	float *xf = tk_test_xmalloc((size_t)n * sizeof *xf);
	float *yf = tk_test_xmalloc((size_t)n * sizeof *yf);
	tk_type_traits_ref(TK_TYPE_Q4_K)->to_float(xrow, xf, n);
	tk_type_traits_ref(TK_TYPE_Q8_K)->to_float(yrow, yf, n);
	double s = 0, a = 0;
	for (int64_t i = 0; i < n; i++) {
		s += (double)xf[i] * (double)yf[i];
		a += fabs((double)xf[i] * (double)yf[i]);
	}
	free(xf);
	free(yf);
	*mag = a;
	return s;
}

/* Packs `groups` groups from rows x (rb apart) and runs gemm over every
 * group with nc = 1..8 activation rows y (by apart), checking each cell
 * against the reference vec_dot of the file row, bit for bit. */
static void check_ref(const uint8_t *x, size_t rb, int groups, int64_t n, const uint8_t *y,
		      size_t by)
{
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_Q4_K);
	const tk_vec_dot_fn vd = tk_type_traits_ref(TK_TYPE_Q4_K)->vec_dot;
	const size_t gs = pt->group_size(n);
	uint8_t *g = tk_test_xmalloc(gs);
	float out[TK_PACK_COLS * ROWS];
	for (int gi = 0; gi < groups; gi++) {
		pt->pack(g, x + (size_t)gi * ROWS * rb, rb, n);
		for (int nc = 1; nc <= TK_PACK_COLS; nc++) {
			pt->gemm(n, out, ROWS, g, y, by, nc);
			for (int c = 0; c < nc; c++)
				for (int r = 0; r < ROWS; r++) {
					const uint8_t *xr = x + (size_t)(gi * ROWS + r) * rb;
					float want;
					vd(n, &want, xr, y + (size_t)c * by);
					/* The same integer sums and the same float
					 * steps in the same order: equal bits. */
					if (memcmp(&want, &out[c * ROWS + r], sizeof want) != 0)
						fail_msg("ref gemm n=%lld group %d nc=%d cell (%d,%d): "
							 "%.9g, vec_dot %.9g",
							 (long long)n, gi, nc, r, c,
							 (double)out[c * ROWS + r], (double)want);
				}
		}
		/* and against the dequantized rows in double: the float steps
		 * (one rounding of d*dy, of each product and sum per
		 * super-block) stay within a few ulps of sum |terms|. */
		for (int r = 0; r < ROWS; r += 5) {
			double mag;
			const double want =
				dot_f64(x + (size_t)(gi * ROWS + r) * rb, y, n, &mag);
			pt->gemm(n, out, ROWS, g, y, by, 1);
			const double tol = 1e-5 * mag + 1e-30;
			if (!(fabs((double)out[r] - want) <= tol))
				fail_msg("ref gemm n=%lld row %d: %.9g, f64 dot %.9g (tol %.3g)",
					 (long long)n, r, (double)out[r], want, tol);
		}
	}
	free(g);
}

static void test_reference(void **state)
{
	(void)state;
	static const int64_t ns[] = { 256, 768, 1536, 2048, 5632, 8960 };
	for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
		const int64_t n = ns[t];
		const int groups = n <= 768 ? 3 : n <= 2048 ? 2 : 1;
		const size_t rb = (size_t)(n / QK) * XB + (t % 2 ? 3 : 0);
		const size_t by = (size_t)(n / QK) * YB + (t % 3 ? 5 : 0);
		uint8_t *x = tk_test_xmalloc((size_t)groups * ROWS * rb);
		uint8_t *y = tk_test_xmalloc(TK_PACK_COLS * by);
		for (int mode = 0; mode < 2; mode++) {
			make_rows(x, rb, groups * ROWS, n, mode);
			for (int c = 0; c < TK_PACK_COLS; c++)
				make_act(y + (size_t)c * by, n);
			check_ref(x, rb, groups, n, y, by);
		}
		free(y);
		free(x);
	}
}

/* Q8_K row with every code v (d = 1) and its bsums. */
static void act_const(uint8_t *y, int64_t n, int v)
{
	for (int64_t b = 0; b < n / QK; b++) {
		uint8_t *blk = y + (size_t)b * YB;
		const float one = 1.0f;
		memcpy(blk, &one, 4); /* little-endian hosts (x86, arm) */
		memset(blk + 4, (uint8_t)(int8_t)v, QK);
		const int16_t s = (int16_t)(16 * v);
		for (int i = 0; i < 16; i++) {
			blk[260 + 2 * i] = (uint8_t)(uint16_t)s;
			blk[261 + 2 * i] = (uint8_t)((uint16_t)s >> 8);
		}
	}
}

/* Largest magnitudes: codes 15, every scale and min 63, d = dmin = 1,
 * activations all +127 or all -128 (the Q8_K quantizer stops at -127, but
 * a kernel must not depend on it). Per super-block the scale term is
 * 8 * 63 * 32 * 15 * v and the min term 8 * 63 * 32 * v: for v = -128,
 * -30965760 and -2064384, inside int32; both are (an integer below 2^24)
 * times a power of two, so every float step is exact and the cell is
 * their difference summed over the super-blocks, computed here in int64. */
static void test_extreme(void **state)
{
	(void)state;
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_Q4_K);
	const tk_vec_dot_fn vd = tk_type_traits_ref(TK_TYPE_Q4_K)->vec_dot;
	const int64_t n = 4 * QK;
	const size_t rb = (size_t)(n / QK) * XB, by = (size_t)(n / QK) * YB;
	uint8_t *x = tk_test_xmalloc(ROWS * rb);
	uint8_t *y = tk_test_xmalloc(2 * by);
	uint8_t *g = tk_test_xmalloc(pt->group_size(n));
	for (int r = 0; r < ROWS; r++)
		for (int64_t b = 0; b < n / QK; b++) {
			uint8_t *blk = x + (size_t)r * rb + (size_t)b * XB;
			put_half(blk, 1.0f);
			put_half(blk + 2, r % 2 ? 1.0f : 0.0f); /* odd rows: min term too */
			memset(blk + 4, 0xff, 12); /* every 6-bit scale and min 63 */
			memset(blk + 16, 0xff, 128); /* every code 15 */
		}
	act_const(y, n, 127);
	act_const(y + by, n, -128);
	pt->pack(g, x, rb, n);
	float out[2 * ROWS];
	pt->gemm(n, out, ROWS, g, y, by, 2);
	struct tk_type_traits tab[TK_TYPE_COUNT];
	for (int c = 0; c < 2; c++) {
		const int v = c ? -128 : 127;
		for (int r = 0; r < ROWS; r++) {
			const int64_t isum = (int64_t)8 * 63 * 32 * 15 * v;
			const int64_t msum = r % 2 ? (int64_t)8 * 63 * 32 * v : 0;
			const double want = (double)((n / QK) * (isum - msum));
			float ref;
			vd(n, &ref, x + (size_t)r * rb, y + (size_t)c * by);
			assert_true((double)ref == want);
			assert_true((double)out[c * ROWS + r] == want);
		}
	}
	for (int isa = 0; isa < TK_QUANT_ISA_COUNT; isa++) {
		if (tk_quant_isa_traits(isa, tab) != 0 || !tab[TK_TYPE_Q4_K].pack)
			continue;
		float fo[2 * ROWS];
		tab[TK_TYPE_Q4_K].pack->gemm(n, fo, ROWS, g, y, by, 2);
		assert_memory_equal(fo, out, sizeof fo);
	}
	free(g);
	free(y);
	free(x);
}

/* The fast gemm of every variant this CPU runs that installs a Q4_K layout,
 * against the reference gemm, bit for bit (both repeat the vec_dot's float
 * steps per lane; documented in pack_q4_k_avx512.c). Unaligned group and
 * activation pointers, odd strides, ldo > 16 with sentinels around every
 * cell written. */
static void test_fast(void **state)
{
	(void)state;
	const struct tk_pack_traits *ref = tk_pack_traits_ref(TK_TYPE_Q4_K);
	static const int64_t ns[] = { 256, 1280, 2048, 5632, 8960 };
	struct tk_type_traits tab[TK_TYPE_COUNT];
	int tested = 0;
	for (int isa = 0; isa < TK_QUANT_ISA_COUNT; isa++) {
		if (tk_quant_isa_traits(isa, tab) != 0) {
			print_message("skip: %s not supported on this CPU\n", tk_quant_isa_name(isa));
			continue;
		}
		const struct tk_pack_traits *pt = tab[TK_TYPE_Q4_K].pack;
		if (!pt) {
			print_message("skip: %s installs no Q4_K layout\n", tk_quant_isa_name(isa));
			continue;
		}
		assert_ptr_equal(pt->group_size, ref->group_size);
		assert_ptr_equal(pt->pack, ref->pack);
		for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
			const int64_t n = ns[t];
			const size_t rb = (size_t)(n / QK) * XB + 1;
			const size_t by = (size_t)(n / QK) * YB + 3;
			const size_t gs = ref->group_size(n);
			const size_t ldo = ROWS + 3;
			uint8_t *x = tk_test_xmalloc(ROWS * rb);
			uint8_t *y = tk_test_xmalloc(TK_PACK_COLS * by + 1);
			uint8_t *g = tk_test_xmalloc(gs + 1);
			make_rows(x, rb, ROWS, n, (int)(t % 2));
			for (int c = 0; c < TK_PACK_COLS; c++)
				make_act(y + 1 + (size_t)c * by, n);
			ref->pack(g + 1, x, rb, n);
			for (int nc = 1; nc <= TK_PACK_COLS; nc++) {
				float want[TK_PACK_COLS * (ROWS + 3)], got[TK_PACK_COLS * (ROWS + 3)];
				for (size_t i = 0; i < sizeof got / sizeof got[0]; i++)
					want[i] = got[i] = -1234.5f;
				ref->gemm(n, want, ldo, g + 1, y + 1, by, nc);
				pt->gemm(n, got, ldo, g + 1, y + 1, by, nc);
				if (memcmp(want, got, sizeof got) != 0)
					for (size_t i = 0; i < sizeof got / sizeof got[0]; i++)
						if (memcmp(&want[i], &got[i], sizeof got[i]))
							fail_msg("%s %s n=%lld nc=%d cell %zu: %.9g, ref %.9g",
								 tk_quant_isa_name(isa), pt->name,
								 (long long)n, nc, i, (double)got[i],
								 (double)want[i]);
			}
			free(g);
			free(y);
			free(x);
		}
		tested++;
	}
	print_message("fast q4_k layouts tested: %d\n", tested);
}

/* Foreign bsums: the min term's integers for any int16 activation sums. */
static void test_bsums(void **state)
{
	(void)state;
	const struct tk_pack_traits *ref = tk_pack_traits_ref(TK_TYPE_Q4_K);
	struct tk_type_traits tab[TK_TYPE_COUNT];
	const int64_t n = 3 * QK;
	const size_t rb = (size_t)(n / QK) * XB, by = (size_t)(n / QK) * YB;
	const size_t gs = ref->group_size(n);
	uint8_t *x = tk_test_xmalloc(3 * ROWS * rb);
	uint8_t *y = tk_test_xmalloc(TK_PACK_COLS * by);
	uint8_t *g = tk_test_xmalloc(3 * gs);
	make_rows(x, rb, 3 * ROWS, n, 0);
	for (int c = 0; c < TK_PACK_COLS; c++) {
		uint8_t *yc = y + (size_t)c * by;
		make_act(yc, n);
		for (int64_t b = 0; b < n / QK; b++)
			for (int i = 0; i < 16; i++) {
				/* column 0: all -32768, column 1: all 32767, then random */
				const uint16_t v = c == 0 ? 0x8000u : c == 1 ? 0x7fffu : (uint16_t)rng_u64();
				yc[(size_t)b * YB + 260 + 2 * i] = (uint8_t)v;
				yc[(size_t)b * YB + 261 + 2 * i] = (uint8_t)(v >> 8);
			}
	}
	for (int i = 0; i < 3; i++)
		ref->pack(g + (size_t)i * gs, x + (size_t)i * ROWS * rb, rb, n);
	float want[TK_PACK_COLS * ROWS], got[TK_PACK_COLS * ROWS];
	ref->gemm(n, want, ROWS, g, y, by, TK_PACK_COLS);
	int tested = 0;
	for (int isa = 0; isa < TK_QUANT_ISA_COUNT; isa++) {
		if (tk_quant_isa_traits(isa, tab) != 0 || !tab[TK_TYPE_Q4_K].pack)
			continue;
		const struct tk_pack_traits *pt = tab[TK_TYPE_Q4_K].pack;
		for (int nc = 1; nc <= TK_PACK_COLS; nc++) {
			pt->gemm(n, got, ROWS, g, y, by, nc);
			assert_memory_equal(got, want, (size_t)nc * ROWS * sizeof got[0]);
		}
		if (pt->gemv)
			for (int c = 0; c < TK_PACK_COLS; c++) {
				float w3[3 * ROWS], g3[3 * ROWS];
				for (int i = 0; i < 3; i++)
					ref->gemm(n, w3 + i * ROWS, ROWS, g + (size_t)i * gs,
						  y + (size_t)c * by, by, 1);
				for (int ng = 1; ng <= 3; ng++) {
					pt->gemv(n, g3, g, gs, ng, y + (size_t)c * by);
					assert_memory_equal(g3, w3, (size_t)ng * ROWS * sizeof g3[0]);
				}
			}
		tested++;
	}
	print_message("q4_k layouts tested with foreign bsums: %d\n", tested);
	free(g);
	free(y);
	free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_reference),
		cmocka_unit_test(test_extreme),
		cmocka_unit_test(test_fast),
		cmocka_unit_test(test_bsums),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
