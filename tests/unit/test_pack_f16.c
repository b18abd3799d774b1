/* test_pack_f16.c — the f16x16 packed layout (pack_f16.c, quant_pack.h):
 *   layout    pack() puts file row r's element e at byte 32e + 2r of the
 *             group (padded source rows, every half bit pattern);
 *   reference the scalar gemm against the F16 reference vec_dot
 *             (tk_type_traits_ref, summed in double) for every cell and
 *             nc = 1..8: exactly equal when every partial sum is an exact
 *             integer, within a proven rounding bound on random rows;
 *   fast      every ISA variant this CPU runs that installs an F16 pack
 *             (avx512, avx2) against the reference gemm, bit for bit (the
 *             layout fixes the summation order, pack_f16.c), on random and
 *             extreme values (largest halfs, subnormals, overflow to inf),
 *             odd strides, unaligned activation rows; cells outside the
 *             16 x nc block stay untouched; the variant's decode gemv
 *             (several groups, one row) against the reference gemm with
 *             nc = 1, bit for bit, at every row length (all tails).
 *             Variants the CPU cannot run are skipped with a message.
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

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_u64(void) { return tk_test_rng_u64(&rng_state); }

static float rng_normal(void) { return tk_test_rng_normal(&rng_state); }


/* Row lengths: tails of every unroll (1..9, 15..17, 31..33, 63..65), odd
 * counts, and the model sizes (1.1B llama 2048/5632, 1.5B qwen 1536/8960). */
static const int64_t lengths[] = { 1,  2,  3,  4,  5,   7,   8,    9,    15,   16,  17,
				   31, 32, 33, 63, 64,  65,  100,  257,  1536, 2048, 5632, 8960 };
#define N_LENGTHS ((int)(sizeof lengths / sizeof lengths[0]))

enum wmode {
	W_NORMAL,  /* rounded normal values */
	W_INT,     /* small integers: every partial sum is exact */
	W_ANYBITS, /* any finite half: subnormals, 65504, signed zeros */
};

/* 16 file rows of n halfs, row_bytes apart (the padding is garbage). */
static void make_rows(unsigned char *rows, size_t row_bytes, int64_t n, enum wmode mode)
{
	for (size_t i = 0; i < row_bytes * TK_PACK_ROWS; i++)
		rows[i] = (unsigned char)rng_u64();
	for (int r = 0; r < TK_PACK_ROWS; r++)
		for (int64_t e = 0; e < n; e++) {
			uint16_t h;
			if (mode == W_NORMAL) {
				h = tk_fp32_to_fp16(rng_normal());
			} else if (mode == W_INT) {
				h = tk_fp32_to_fp16((float)((int)(rng_u64() % 33) - 16));
			} else {
				h = (uint16_t)rng_u64();
				if ((h & 0x7c00) == 0x7c00) /* inf/NaN -> a finite half */
					h &= 0x83ff;
			}
			memcpy(rows + (size_t)r * row_bytes + 2 * (size_t)e, &h, 2);
		}
}

/* nc activation rows of n floats, `by` bytes apart, encoded through
 * tk_act_encode (F32: a copy). Values are halfs widened (so the F16 x F16
 * reference vec_dot sees the same numbers) unless `wide`, which spreads
 * magnitudes over 1e-20..1e30 (only the fast-vs-reference check uses it). */
static void make_acts(unsigned char *y, size_t by, int64_t n, int nc, enum wmode mode, bool wide)
{
	float *x = tk_test_xmalloc((size_t)n * sizeof *x);
	for (int c = 0; c < nc; c++) {
		for (int64_t e = 0; e < n; e++) {
			float v;
			if (mode == W_INT)
				v = (float)((int)(rng_u64() % 33) - 16);
			else if (wide)
				v = rng_normal() * powf(10.0f, (float)(rng_u64() % 51) - 20.0f);
			else
				v = rng_normal();
			x[e] = wide ? v : tk_fp16_to_fp32(tk_fp32_to_fp16(v));
		}
		tk_act_encode(TK_TYPE_F32, x, y + (size_t)c * by, n);
	}
	free(x);
}

/* The activation rows as halfs (exact: make_acts made them halfs). */
static void acts_to_half(unsigned char *yh, const unsigned char *y, size_t by, int64_t n, int nc)
{
	for (int c = 0; c < nc; c++)
		for (int64_t e = 0; e < n; e++) {
			float v;
			memcpy(&v, y + (size_t)c * by + 4 * (size_t)e, 4);
			const uint16_t h = tk_fp32_to_fp16(v);
			memcpy(yh + ((size_t)c * (size_t)n + (size_t)e) * 2, &h, 2);
		}
}

static void test_traits(void **state)
{
	(void)state;
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_F16);
	assert_non_null(pt);
	assert_string_equal(pt->name, "f16x16");
	assert_int_equal(tk_type_traits_ref(TK_TYPE_F16)->pack == NULL, 1);
	for (int i = 0; i < N_LENGTHS; i++)
		assert_int_equal(pt->group_size(lengths[i]), (size_t)lengths[i] * 32);
	assert_int_equal(pt->group_size(0), 0);
	assert_int_equal(tk_act_row_size(TK_TYPE_F32, 2048), 2048 * 4);
}

static void test_layout(void **state)
{
	(void)state;
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_F16);
	const int64_t ns[] = { 1, 3, 17, 2048 };
	for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
		const int64_t n = ns[k];
		const size_t row_bytes = 2 * (size_t)n + 6; /* padded rows */
		unsigned char *rows = tk_test_xmalloc(row_bytes * TK_PACK_ROWS);
		const size_t gs = pt->group_size(n);
		unsigned char *g = tk_test_xmalloc(gs + 64);
		make_rows(rows, row_bytes, n, W_ANYBITS);
		memset(g, 0xee, gs + 64);
		pt->pack(g, rows, row_bytes, n);
		for (int64_t e = 0; e < n; e++)
			for (int r = 0; r < TK_PACK_ROWS; r++)
				if (memcmp(g + 32 * (size_t)e + 2 * (size_t)r,
					   rows + (size_t)r * row_bytes + 2 * (size_t)e, 2))
					fail_msg("n=%lld: element %lld of row %d is not at byte %lld",
						 (long long)n, (long long)e, r, (long long)(32 * e + 2 * r));
		for (size_t i = gs; i < gs + 64; i++)
			if (g[i] != 0xee)
				fail_msg("n=%lld: pack wrote byte %zu past the group", (long long)n, i);
		free(rows);
		free(g);
	}
}

/* One matrix case: 16 rows, nc columns, activation rows `by` bytes apart
 * starting `yoff` bytes into their buffer, outputs ldo apart. */
struct fixture {
	int64_t n;
	size_t row_bytes, by, ldo;
	unsigned char *rows, *group, *ybuf, *y, *yh;
};

static void fixture_make(struct fixture *f, int64_t n, enum wmode mode, bool wide, size_t yoff)
{
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_F16);
	f->n = n;
	f->row_bytes = 2 * (size_t)n + 2 * (rng_u64() % 3);
	f->by = tk_act_row_size(TK_TYPE_F32, n) + 4 * (rng_u64() % 3) + yoff % 4;
	f->ldo = TK_PACK_ROWS + (size_t)(rng_u64() % 5);
	f->rows = tk_test_xmalloc(f->row_bytes * TK_PACK_ROWS);
	f->group = tk_test_xmalloc(pt->group_size(n));
	f->ybuf = tk_test_xmalloc(f->by * TK_PACK_COLS + yoff);
	f->y = f->ybuf + yoff;
	f->yh = tk_test_xmalloc((size_t)n * 2 * TK_PACK_COLS);
	make_rows(f->rows, f->row_bytes, n, mode);
	pt->pack(f->group, f->rows, f->row_bytes, n);
	make_acts(f->y, f->by, n, TK_PACK_COLS, mode, wide);
	if (!wide)
		acts_to_half(f->yh, f->y, f->by, n, TK_PACK_COLS);
}

static void fixture_free(struct fixture *f)
{
	free(f->rows);
	free(f->group);
	free(f->ybuf);
	free(f->yh);
}

/* sum over e of |w_r[e] * y_c[e]|, in double (each product exact). */
static double abs_terms(const struct fixture *f, int r, int c)
{
	double s = 0.0;
	for (int64_t e = 0; e < f->n; e++) {
		uint16_t h;
		float a;
		memcpy(&h, f->rows + (size_t)r * f->row_bytes + 2 * (size_t)e, 2);
		memcpy(&a, f->y + (size_t)c * f->by + 4 * (size_t)e, 4);
		s += fabs((double)tk_fp16_to_fp32(h) * (double)a);
	}
	return s;
}

static void test_ref_vs_vec_dot(void **state)
{
	(void)state;
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_F16);
	const struct tk_type_traits *f16 = tk_type_traits_ref(TK_TYPE_F16);
	float want[TK_PACK_COLS][TK_PACK_ROWS];
	double tol[TK_PACK_COLS][TK_PACK_ROWS];
	for (int li = 0; li < N_LENGTHS; li++) {
		for (int mode = W_NORMAL; mode <= W_INT; mode++) {
			struct fixture f;
			const int64_t n = lengths[li];
			fixture_make(&f, n, (enum wmode)mode, false, 0);
			for (int c = 0; c < TK_PACK_COLS; c++)
				for (int r = 0; r < TK_PACK_ROWS; r++) {
					f16->vec_dot(n, &want[c][r], f.rows + (size_t)r * f.row_bytes,
						     f.yh + (size_t)c * (size_t)n * 2);
					/* W_INT: |terms| <= 256 and n <= 8960, so
					 * every partial sum is an integer below
					 * 2^24, exact: the result must be too.
					 * Otherwise each partial sum (a half row)
					 * is a chain of at most n/2 + 2 fused
					 * multiply-adds, each rounding once by at
					 * most 2^-24 of the running |sum| <= S =
					 * sum |terms|; one more rounding joins the
					 * two, and vec_dot rounds its double once:
					 *   |got - exact| <= (n/2 + 3) 2^-24 S,
					 *   |want - exact| <= 2^-24 S. */
					tol[c][r] = mode == W_INT ? 0.0 :
						((double)n / 2.0 + 4.0) * 0x1p-24 * abs_terms(&f, r, c);
				}
			float *out = tk_test_xmalloc(f.ldo * TK_PACK_COLS * sizeof *out);
			for (int nc = 1; nc <= TK_PACK_COLS; nc++) {
				pt->gemm(n, out, f.ldo, f.group, f.y, f.by, nc);
				for (int c = 0; c < nc; c++)
					for (int r = 0; r < TK_PACK_ROWS; r++) {
						const float got = out[(size_t)c * f.ldo + (size_t)r];
						if (!(fabs((double)got - (double)want[c][r]) <= tol[c][r]))
							fail_msg("n=%lld nc=%d cell (%d, %d) mode %d: "
								 "gemm %.9g, vec_dot %.9g (tol %.3g)",
								 (long long)n, nc, r, c, mode, (double)got,
								 (double)want[c][r], tol[c][r]);
					}
			}
			free(out);
			fixture_free(&f);
		}
	}
}

static bool same_float(float a, float b)
{
	return (isnan(a) && isnan(b)) || !memcmp(&a, &b, sizeof a);
}

/* The fast gemm of `pt` against the reference, bit for bit. */
static void check_fast(const char *isa, const struct tk_pack_traits *pt)
{
	const struct tk_pack_traits *ref = tk_pack_traits_ref(TK_TYPE_F16);
	assert_ptr_equal(pt->group_size, ref->group_size);
	assert_ptr_equal(pt->pack, ref->pack);
	for (int li = 0; li < N_LENGTHS; li++) {
		for (int kind = 0; kind < 3; kind++) {
			const int64_t n = lengths[li];
			const enum wmode mode = kind == 2 ? W_ANYBITS : W_NORMAL;
			const bool wide = kind >= 1;
			struct fixture f;
			fixture_make(&f, n, mode, wide, (size_t)(kind + li) % 4);
			if (kind == 2 && n >= 2) { /* an overflow to inf, and inf - inf */
				const float big = 3e38f;
				memcpy(f.y + 4, &big, 4);
				memcpy(f.y + f.by + 4 * (size_t)(n - 1), &big, 4);
			}
			const size_t cells = f.ldo * TK_PACK_COLS + 3;
			float *a = tk_test_xmalloc(cells * sizeof *a), *b = tk_test_xmalloc(cells * sizeof *b);
			/* the reference's cells do not depend on nc
			 * (test_ref_vs_vec_dot checks every nc): one call */
			for (size_t i = 0; i < cells; i++)
				a[i] = -1234.5f;
			ref->gemm(n, a, f.ldo, f.group, f.y, f.by, TK_PACK_COLS);
			for (int nc = 1; nc <= TK_PACK_COLS; nc++) {
				for (size_t i = 0; i < cells; i++)
					b[i] = -1234.5f;
				pt->gemm(n, b, f.ldo, f.group, f.y, f.by, nc);
				for (size_t i = 0; i < cells; i++) {
					const bool inside = i / f.ldo < (size_t)nc &&
							    i % f.ldo < TK_PACK_ROWS;
					if (!inside && b[i] != -1234.5f)
						fail_msg("%s n=%lld nc=%d: wrote outside the block at %zu",
							 isa, (long long)n, nc, i);
					if (inside && !same_float(a[i], b[i]))
						fail_msg("%s n=%lld nc=%d kind %d cell (%zu, %zu): "
							 "%.9g, reference %.9g",
							 isa, (long long)n, nc, kind, i % f.ldo,
							 i / f.ldo, (double)b[i], (double)a[i]);
				}
			}
			free(a);
			free(b);
			fixture_free(&f);
		}
	}
}

/* The decode product (gemv) of `pt`, if it has one, against the reference
 * gemm with nc = 1 on each group, bit for bit: the row lengths above up to
 * 257 (every tail of the halves and chunks, which test_pack_gemv's
 * model-like lengths do not reach; it covers 1536 and 2048), random, wide
 * and extreme values, ng = 1..8 distinct groups from an unaligned base;
 * nothing written past 16 * ng. */
#define GV_GROUPS TK_PACK_GEMV_GROUPS
static void check_gemv(const char *isa, const struct tk_pack_traits *pt)
{
	const struct tk_pack_traits *ref = tk_pack_traits_ref(TK_TYPE_F16);
	if (!pt->gemv) {
		printf("skip: %s f16x16 has no gemv\n", isa);
		return;
	}
	for (int li = 0; li < N_LENGTHS; li++) {
		if (lengths[li] > 257)
			continue; /* test_pack_gemv has the long rows (debug/ASan time) */
		for (int kind = 0; kind < 3; kind++) {
			const int64_t n = lengths[li];
			const enum wmode mode = kind == 2 ? W_ANYBITS : W_NORMAL;
			const size_t gs = pt->group_size(n), row_bytes = 2 * (size_t)n + 2;
			unsigned char *rows = tk_test_xmalloc(row_bytes * TK_PACK_ROWS);
			unsigned char *gbuf = tk_test_xmalloc(gs * GV_GROUPS + 2);
			unsigned char *groups = gbuf + 2; /* 2-byte aligned only */
			for (int g = 0; g < GV_GROUPS; g++) {
				make_rows(rows, row_bytes, n, mode);
				pt->pack(groups + (size_t)g * gs, rows, row_bytes, n);
			}
			const size_t by = tk_act_row_size(TK_TYPE_F32, n);
			unsigned char *ybuf = tk_test_xmalloc(by + 1), *y = ybuf + 1;
			make_acts(y, by, n, 1, mode, kind >= 1);
			if (kind == 2 && n >= 2) { /* an overflow to inf, and inf - inf */
				const float big = 3e38f, nbig = -3e38f;
				memcpy(y + 4, &big, 4);
				memcpy(y + 4 * (size_t)(n - 1), &nbig, 4);
			}
			float want[16 * GV_GROUPS], got[16 * GV_GROUPS + 4];
			for (int g = 0; g < GV_GROUPS; g++)
				ref->gemm(n, want + 16 * g, 16, groups + (size_t)g * gs, y, by, 1);
			for (int ng = 1; ng <= GV_GROUPS; ng++) {
				for (int i = 0; i < 16 * GV_GROUPS + 4; i++)
					got[i] = -1234.5f;
				pt->gemv(n, got, groups, gs, ng, y);
				for (int i = 0; i < 16 * GV_GROUPS + 4; i++) {
					if (i >= 16 * ng && got[i] != -1234.5f)
						fail_msg("%s gemv n=%lld ng=%d: wrote out[%d]", isa,
							 (long long)n, ng, i);
					if (i < 16 * ng && !same_float(got[i], want[i]))
						fail_msg("%s gemv n=%lld ng=%d kind %d group %d row %d: "
							 "%.9g, reference %.9g",
							 isa, (long long)n, ng, kind, i / 16, i % 16,
							 (double)got[i], (double)want[i]);
				}
			}
			free(rows);
			free(gbuf);
			free(ybuf);
		}
	}
}

static void test_fast_vs_ref(void **state)
{
	(void)state;
	static struct tk_type_traits tab[TK_TYPE_COUNT];
	int tested = 0;
	for (int isa = TK_QUANT_ISA_AVX2; isa < TK_QUANT_ISA_COUNT; isa++) {
		if (!tk_quant_isa_supported(isa)) {
			printf("skip: %s kernels not supported on this CPU/build\n",
			       tk_quant_isa_name(isa));
			continue;
		}
		assert_int_equal(tk_quant_isa_traits(isa, tab), 0);
		const struct tk_pack_traits *pt = tab[TK_TYPE_F16].pack;
		if (!pt) {
			printf("skip: %s installs no F16 packed gemm\n", tk_quant_isa_name(isa));
			continue;
		}
		assert_string_equal(pt->name, "f16x16");
		check_fast(tk_quant_isa_name(isa), pt);
		check_gemv(tk_quant_isa_name(isa), pt);
		tested++;
	}
	printf("f16x16: %d fast variant(s) checked\n", tested);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_traits),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_ref_vs_vec_dot),
		cmocka_unit_test(test_fast_vs_ref),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
