/* test_pack_q8_0.c — the q8_0x16 packed layout (quant_pack.h,
 * pack_q8_0.c) and its fast products:
 *   layout      every byte of a packed group where quant_pack.h says it is
 *               (scales verbatim, quants + 128), group_size = 16 rows;
 *   reference   the scalar gemm against the Q8_0 reference vec_dot for every
 *               cell, nc = 1..8, on random rows of awkward lengths (one block,
 *               odd block counts, the model sizes 1536/2048/5632/8960);
 *   exact       with unit scales the result is the integer dot, computed
 *               here in int64: extreme quants (-128, 127, activations -128)
 *               must neither overflow nor saturate; the avx2 product is
 *               documented for activation codes -127..127 (what the
 *               quantizers write, as for the avx2 vec_dot), so its extreme
 *               activations are -127;
 *   fast        whatever pack traits an ISA variant this CPU runs installs
 *               for Q8_0 (tk_quant_isa_traits) against the reference gemm,
 *               with odd strides, unaligned pointers, cells outside nc
 *               untouched; variants this CPU lacks are skipped with a
 *               message.
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
#define BLK ((size_t)sizeof(struct tk_block_q8_0))

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_u64(void) { return tk_test_rng_u64(&rng_state); }

static float rng_normal(void) { return tk_test_rng_normal(&rng_state); }


/* The most negative activation code the extreme cases use (the product
 * under test may require -127, see the file comment). */
static unsigned char act_min = 0x80;

/* Weight-row fillers. */
enum wfill { W_QUANTIZED, W_RANDOM_BYTES, W_EXTREME, W_MAX_SCALE };

static void put_half(unsigned char *p, uint16_t h)
{
	p[0] = (unsigned char)h;
	p[1] = (unsigned char)(h >> 8);
}

/* Fills 16 Q8_0 rows of n elements (row_bytes apart). */
static void fill_rows(unsigned char *w, size_t row_bytes, int64_t n, enum wfill how)
{
	const int64_t nb = n / TK_QK8_0;
	float *x = tk_test_xmalloc((size_t)n * sizeof *x);
	for (int r = 0; r < ROWS; r++) {
		unsigned char *row = w + (size_t)r * row_bytes;
		if (how == W_QUANTIZED) {
			for (int64_t i = 0; i < n; i++)
				x[i] = rng_normal() * (float)(r + 1);
			tk_type_traits_ref(TK_TYPE_Q8_0)->from_float(x, row, n);
			continue;
		}
		for (int64_t b = 0; b < nb; b++) {
			unsigned char *blk = row + (size_t)b * BLK;
			for (int j = 0; j < TK_QK8_0; j++) {
				uint64_t v = rng_u64();
				if (how == W_EXTREME || how == W_MAX_SCALE)
					blk[2 + j] = (v >> 7) & 1 ? 0x80 : 0x7f; /* -128 or 127 */
				else
					blk[2 + j] = (unsigned char)(v >> 13);
			}
			if (how == W_RANDOM_BYTES) /* finite: exponent field < 31 */
				put_half(blk, (uint16_t)(tk_fp32_to_fp16(ldexpf(
					(float)(rng_u64() % 1000 + 1) / 1000.0f,
					(int)(rng_u64() % 20) - 14)) ^
					((rng_u64() & 1) ? 0x8000 : 0)));
			else if (how == W_EXTREME)
				put_half(blk, 0x3c00); /* 1.0 */
			else
				put_half(blk, (rng_u64() & 1) ? 0x7bff : 0xfbff); /* +-65504 */
		}
	}
	free(x);
}

/* Activation rows (tk_act_row_size bytes each, by apart). extreme: raw
 * quants -128 / 127 with unit scales (the trailer from
 * tk_act_trailer_fill); otherwise random floats through tk_act_encode. */
static void fill_acts(unsigned char *y, size_t by, int64_t n, int nc, bool extreme)
{
	float *x = tk_test_xmalloc((size_t)n * sizeof *x);
	for (int c = 0; c < nc; c++) {
		unsigned char *row = y + (size_t)c * by;
		if (extreme) {
			for (int64_t b = 0; b < n / TK_QK8_0; b++) {
				put_half(row + (size_t)b * BLK, 0x3c00);
				for (int j = 0; j < TK_QK8_0; j++)
					row[(size_t)b * BLK + 2 + (size_t)j] =
						(rng_u64() >> 9) & 1 ? act_min : 0x7f;
			}
			tk_act_trailer_fill(TK_TYPE_Q8_0, row, n);
			continue;
		}
		const float scale = (float)(c % 3 == 0 ? 1.0 : c % 3 == 1 ? 1e-3 : 40.0);
		for (int64_t i = 0; i < n; i++)
			x[i] = rng_normal() * scale;
		tk_act_encode(TK_TYPE_Q8_0, x, row, n);
	}
	free(x);
}

/* sum |x_i y_i| over the reference decodings, in double. */
static double abs_dot(const void *xrow, const void *yrow, int64_t n)
{
	const struct tk_type_traits *rt = tk_type_traits_ref(TK_TYPE_Q8_0);
	float *xf = tk_test_xmalloc((size_t)n * sizeof *xf), *yf = tk_test_xmalloc((size_t)n * sizeof *yf);
	rt->to_float(xrow, xf, n);
	rt->to_float(yrow, yf, n);
	double s = 0.0;
	for (int64_t i = 0; i < n; i++)
		s += fabs((double)xf[i] * (double)yf[i]);
	free(xf);
	free(yf);
	return s;
}

/* Tolerance of two float sums of the same nb per-block terms
 * t_b = sumi_b * (d_x d_y) (sumi_b exact in both): each sum is within
 * gamma = (nb + 1) u sum |t_b| of the exact sum (u = 2^-24; nb additions
 * plus the products' own rounding, which a fused multiply-add may skip),
 * so the two are within 2 gamma of each other; sum |t_b| <= sum |x_i y_i|
 * of the decoded rows. A wrong chunk, row or scale is off by O(1) of the
 * sum, far outside this. */
static void check_close(const char *what, int64_t n, int r, int c, float got, float want,
			double abs_sum)
{
	const double nb = (double)(n / TK_QK8_0);
	const double tol = 2.0 * (nb + 1.0) * 0x1p-24 * abs_sum + 1e-30;
	if (got == want)
		return;
	if (!(fabs((double)got - (double)want) <= tol))
		fail_msg("%s n=%lld row %d col %d: got %.9g, want %.9g (tol %.3g)", what,
			 (long long)n, r, c, (double)got, (double)want, tol);
}

static const int64_t sizes[] = { 32, 96, 224, 1536, 2048, 5632, 8960 };

static void test_layout(void **state)
{
	(void)state;
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_Q8_0);
	assert_non_null(pt);
	assert_string_equal(pt->name, "q8_0x16");
	assert_null(tk_pack_traits_ref(TK_TYPE_F32));
	assert_null(tk_pack_traits_ref(-1));
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		const int64_t n = sizes[si], nb = n / TK_QK8_0;
		size_t rb;
		assert_int_equal(tk_type_row_size(TK_TYPE_Q8_0, n, &rb), 0);
		assert_int_equal(pt->group_size(n), ROWS * rb);
		const size_t stride = rb + 7; /* rows need not be adjacent */
		unsigned char *w = tk_test_xmalloc(ROWS * stride);
		unsigned char *g = tk_test_xmalloc(pt->group_size(n) + 1);
		fill_rows(w, stride, n, W_RANDOM_BYTES);
		g[pt->group_size(n)] = 0xa5;
		pt->pack(g, w, stride, n);
		assert_int_equal(g[pt->group_size(n)], 0xa5); /* wrote exactly its size */
		for (int64_t b = 0; b < nb; b++) {
			const unsigned char *gb = g + (size_t)b * 544;
			for (int r = 0; r < ROWS; r++) {
				const unsigned char *blk = w + (size_t)r * stride + (size_t)b * BLK;
				assert_memory_equal(gb + 2 * r, blk, 2);
				for (int j = 0; j < TK_QK8_0; j++) {
					const int k = j / 4, i = j % 4;
					const int q = (int8_t)blk[2 + j];
					assert_int_equal(gb[32 + 64 * k + 4 * r + i], q + 128);
				}
			}
		}
		free(w);
		free(g);
	}
}

/* One shape: packs fresh rows, runs gemm (the traits under test) with
 * nc = 1..8 and compares every cell with want(): the reference vec_dot on
 * the file rows (ref_gemm NULL) or ref_gemm on the same group. */
static void run_case(const char *what, const struct tk_pack_traits *pt,
		     const struct tk_pack_traits *ref, int64_t n, enum wfill wf, bool extreme_y)
{
	const struct tk_type_traits *rt = tk_type_traits_ref(TK_TYPE_Q8_0);
	size_t rb;
	assert_int_equal(tk_type_row_size(TK_TYPE_Q8_0, n, &rb), 0);
	const size_t ar = tk_act_row_size(TK_TYPE_Q8_0, n);
	assert_int_equal(ar, rb + (size_t)(n / TK_QK8_0) * 4);
	const size_t by = ar + 5, ldo = ROWS + 3; /* odd strides */
	const int NC = TK_PACK_COLS;
	unsigned char *w = tk_test_xmalloc(ROWS * rb);
	unsigned char *graw = tk_test_xmalloc(pt->group_size(n) + 1), *g = graw + 1; /* unaligned */
	unsigned char *yraw = tk_test_xmalloc((size_t)NC * by + 3), *y = yraw + 3;
	float *out = tk_test_xmalloc((size_t)(NC + 1) * ldo * sizeof *out);
	float *want = tk_test_xmalloc((size_t)NC * ROWS * sizeof *want);
	double *abs_sum = tk_test_xmalloc((size_t)NC * ROWS * sizeof *abs_sum);
	fill_rows(w, rb, n, wf);
	fill_acts(y, by, n, NC, extreme_y);
	pt->pack(g, w, rb, n);
	for (int c = 0; c < NC; c++)
		for (int r = 0; r < ROWS; r++) {
			const unsigned char *xr = w + (size_t)r * rb, *yr = y + (size_t)c * by;
			abs_sum[c * ROWS + r] = abs_dot(xr, yr, n);
			if (!ref)
				rt->vec_dot(n, &want[c * ROWS + r], xr, yr);
		}
	if (ref) {
		float *tmp = tk_test_xmalloc((size_t)NC * ldo * sizeof *tmp);
		ref->gemm(n, tmp, ldo, g, y, by, NC);
		for (int c = 0; c < NC; c++)
			for (int r = 0; r < ROWS; r++)
				want[c * ROWS + r] = tmp[(size_t)c * ldo + r];
		free(tmp);
	}
	for (int nc = 1; nc <= NC; nc++) {
		const float sentinel = -7.25e30f;
		for (size_t i = 0; i < (size_t)(NC + 1) * ldo; i++)
			out[i] = sentinel;
		pt->gemm(n, out, ldo, g, y, by, nc);
		for (int c = 0; c <= NC; c++)
			for (size_t r = 0; r < ldo; r++) {
				const float v = out[(size_t)c * ldo + r];
				if (c >= nc || r >= ROWS) {
					if (v != sentinel)
						fail_msg("%s n=%lld nc=%d: wrote cell (%zu, %d) outside", what,
							 (long long)n, nc, r, c);
					continue;
				}
				check_close(what, n, (int)r, c, v, want[c * ROWS + (int)r],
					    abs_sum[c * ROWS + (int)r]);
			}
	}
	free(w);
	free(graw);
	free(yraw);
	free(out);
	free(want);
	free(abs_sum);
}

static void test_ref_vs_vec_dot(void **state)
{
	(void)state;
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_Q8_0);
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		run_case("ref/quantized", pt, NULL, sizes[si], W_QUANTIZED, false);
		run_case("ref/random", pt, NULL, sizes[si], W_RANDOM_BYTES, false);
	}
	run_case("ref/max-scale", pt, NULL, 2048, W_MAX_SCALE, false);
	run_case("ref/extreme", pt, NULL, 1024, W_EXTREME, true);
}

/* Unit scales: every cell is the exact integer dot (|sum| <= 32 blocks *
 * 32 * 128 * 128 = 2^24, so every partial float sum is an exact integer). */
static void check_exact(const char *what, const struct tk_pack_traits *pt)
{
	const int64_t n = 1024;
	size_t rb;
	assert_int_equal(tk_type_row_size(TK_TYPE_Q8_0, n, &rb), 0);
	const size_t by = tk_act_row_size(TK_TYPE_Q8_0, n);
	unsigned char *w = tk_test_xmalloc(ROWS * rb), *g = tk_test_xmalloc(pt->group_size(n));
	unsigned char *y = tk_test_xmalloc(TK_PACK_COLS * by);
	float out[TK_PACK_COLS * ROWS];
	for (int pass = 0; pass < 3; pass++) {
		fill_rows(w, rb, n, W_EXTREME);
		fill_acts(y, by, n, TK_PACK_COLS, true);
		if (pass == 1) /* all weights -128, activations act_min: the largest sum */
			for (int r = 0; r < ROWS; r++)
				for (int64_t i = 0; i < n; i++) {
					w[(size_t)r * rb + (size_t)(i / 32) * BLK + 2 + (size_t)(i % 32)] = 0x80;
					for (int c = 0; c < TK_PACK_COLS; c++)
						y[(size_t)c * by + (size_t)(i / 32) * BLK + 2 + (size_t)(i % 32)] =
							act_min;
				}
		if (pass == 2) /* weights 127 against activations act_min: the most negative */
			for (int r = 0; r < ROWS; r++)
				for (int64_t i = 0; i < n; i++)
					w[(size_t)r * rb + (size_t)(i / 32) * BLK + 2 + (size_t)(i % 32)] = 0x7f;
		for (int c = 0; c < TK_PACK_COLS; c++)
			tk_act_trailer_fill(TK_TYPE_Q8_0, y + (size_t)c * by, n);
		pt->pack(g, w, rb, n);
		pt->gemm(n, out, ROWS, g, y, by, TK_PACK_COLS);
		for (int c = 0; c < TK_PACK_COLS; c++)
			for (int r = 0; r < ROWS; r++) {
				int64_t s = 0;
				for (int64_t i = 0; i < n; i++) {
					const size_t off = (size_t)(i / 32) * BLK + 2 + (size_t)(i % 32);
					s += (int64_t)(int8_t)w[(size_t)r * rb + off] *
					     (int64_t)(int8_t)y[(size_t)c * by + off];
				}
				if (out[c * ROWS + r] != (float)s)
					fail_msg("%s pass %d row %d col %d: got %.9g, exact %lld", what, pass,
						 r, c, (double)out[c * ROWS + r], (long long)s);
			}
	}
	free(w);
	free(g);
	free(y);
}

static void test_ref_exact(void **state)
{
	(void)state;
	check_exact("ref", tk_pack_traits_ref(TK_TYPE_Q8_0));
}

static void test_fast(void **state)
{
	(void)state;
	static struct tk_type_traits tab[TK_TYPE_COUNT];
	const struct tk_pack_traits *ref = tk_pack_traits_ref(TK_TYPE_Q8_0);
	int tested = 0;
	for (int isa = TK_QUANT_ISA_AVX2; isa < TK_QUANT_ISA_COUNT; isa++) {
		if (!tk_quant_isa_supported(isa)) {
			printf("# %s: not supported on this CPU, skipped\n", tk_quant_isa_name(isa));
			continue;
		}
		assert_int_equal(tk_quant_isa_traits(isa, tab), 0);
		const struct tk_pack_traits *pt = tab[TK_TYPE_Q8_0].pack;
		if (!pt) {
			printf("# %s: no q8_0 packed layout\n", tk_quant_isa_name(isa));
			continue;
		}
		assert_string_equal(pt->name, ref->name);
		assert_ptr_equal(pt->group_size, ref->group_size);
		assert_ptr_equal(pt->pack, ref->pack);
		act_min = isa == TK_QUANT_ISA_AVX2 ? 0x81 : 0x80;
		char what[64];
		snprintf(what, sizeof what, "%s", tk_quant_isa_name(isa));
		for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
			run_case(what, pt, ref, sizes[si], W_QUANTIZED, false);
			run_case(what, pt, ref, sizes[si], W_RANDOM_BYTES, false);
		}
		run_case(what, pt, ref, 2048, W_MAX_SCALE, false);
		run_case(what, pt, ref, 1024, W_EXTREME, true);
		check_exact(what, pt);
		act_min = 0x80;
		tested++;
	}
	printf("# fast q8_0x16 products tested: %d\n", tested);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_ref_vs_vec_dot),
		cmocka_unit_test(test_ref_exact),
		cmocka_unit_test(test_fast),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
