/* test_pack_gemv.c — the decode products of the packed layouts
 * (quant_pack.h, tk_pack_traits.gemv and .gemmg): for every packed type
 * (Q8_0, Q4_K, Q6_K, F16) and every ISA variant this CPU runs whose traits
 * install a gemv or a gemmg, on 11 groups of random weights of several row
 * lengths:
 *   - gemv over ng = 1..TK_PACK_GEMV_GROUPS groups starting at every group
 *     equals gemm with nc = 1 on each group, bit for bit (the contract: a
 *     gemv changes the memory walk, not the arithmetic);
 *   - it writes out[0 .. 16 * ng) and nothing after;
 *   - the same with the groups two apart (group_bytes = 2 x the group
 *     size: the engine walks regions of groups, ops.c);
 *   - gemmg over ng groups (one and two apart) and nc = 1..TK_PACK_COLS
 *     activation rows equals
 *     gemm with the same nc on each group, bit for bit, and writes only
 *     its ng x 16 cells of each of its nc output rows;
 *   - unaligned group and activation pointers work;
 *   - the gemm itself agrees with the reference traits' gemm (loosely:
 *     the per-layout tests check that closely), so a gemv equal to a
 *     broken gemm cannot pass.
 * Variants this CPU lacks, and traits without a gemv or gemmg, are reported
 * and skipped.
 */
#include "testutil.h"

#include "engine/quant.h"
#include "engine/quant_pack.h"
#include "engine/quant_simd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS TK_PACK_ROWS
#define N_GROUPS 11
#define SENTINEL 0x7fc0dead /* a NaN payload no kernel writes */

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static const int types[] = { TK_TYPE_Q8_0, TK_TYPE_Q4_K, TK_TYPE_Q6_K, TK_TYPE_F16 };

/* Row lengths per type: one block, odd block counts, model sizes. */
static int row_lengths(int t, int64_t *out)
{
	if (t == TK_TYPE_Q4_K || t == TK_TYPE_Q6_K) {
		const int64_t v[] = { 256, 768, 1536, 2048 };
		memcpy(out, v, sizeof v);
		return 4;
	}
	const int64_t v[] = { 32, 96, 1536, 2048 };
	memcpy(out, v, sizeof v);
	return 4;
}

static int act_type_of(int t)
{
	/* F16 layouts take float32 activations (quant_pack.h) */
	return t == TK_TYPE_F16 ? TK_TYPE_F32 : tk_type_traits(t)->vec_dot_type;
}

static uint32_t bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

/* gemmg against gemm with the same nc, group by group: every nc, every
 * group count, every start; output rows LDO apart, the cells between them
 * must stay untouched. */
#define LDO (TK_PACK_GEMV_GROUPS * ROWS + ROWS)
static void check_gemmg(const char *isa, const struct tk_pack_traits *pt, int64_t n,
			const unsigned char *groups, size_t gb, const unsigned char *y, size_t by)
{
	static float want[TK_PACK_COLS * N_GROUPS * ROWS], out[TK_PACK_COLS * LDO];
	const uint32_t sentinel = SENTINEL;
	for (int nc = 1; nc <= TK_PACK_COLS; nc++) {
		/* want[c][g * ROWS + r] */
		for (int g = 0; g < N_GROUPS; g++)
			pt->gemm(n, want + g * ROWS, N_GROUPS * ROWS, groups + (size_t)g * gb, y, by,
				 nc);
		/* groups one apart, and two apart (the engine's region walk) */
		for (int step = 1; step <= 2; step++)
		for (int ng = 1; ng <= TK_PACK_GEMV_GROUPS; ng++)
			for (int s = 0; s + step * (ng - 1) < N_GROUPS; s++) {
				for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
					memcpy(&out[i], &sentinel, 4);
				pt->gemmg(n, out, LDO, groups + (size_t)s * gb, (size_t)step * gb, ng, y,
					  by, nc);
				for (int c = 0; c < TK_PACK_COLS; c++)
					for (int i = 0; i < LDO; i++) {
						const float o = out[c * LDO + i];
						if (c >= nc || i >= ng * ROWS) {
							if (bits(o) != sentinel)
								fail_msg("%s %s n=%lld nc=%d ng=%d: wrote "
									 "row %d cell %d",
									 isa, pt->name, (long long)n, nc,
									 ng, c, i);
							continue;
						}
						const int g = s + step * (i / ROWS);
						const float w =
							want[c * N_GROUPS * ROWS + g * ROWS + i % ROWS];
						if (bits(o) != bits(w))
							fail_msg("%s %s n=%lld nc=%d ng=%d start %d step "
								 "%d row %d cell %d: gemmg %.9g, gemm %.9g",
								 isa, pt->name, (long long)n, nc, ng, s,
								 step, c, i, (double)o, (double)w);
					}
			}
	}
}

/* One type, one ISA's pack traits, one row length. */
static void run_case(const char *isa, int t, const struct tk_pack_traits *pt, int64_t n)
{
	const struct tk_type_traits *ref = tk_type_traits_ref(t);
	size_t row_bytes = 0;
	assert_int_equal(tk_type_row_size(t, n, &row_bytes), 0);
	const size_t gb = pt->group_size(n);
	assert_true(gb > 0);

	/* weights: N_GROUPS * 16 random rows in the file layout, packed */
	float *x = tk_test_xmalloc((size_t)n * sizeof(float));
	unsigned char *rows = tk_test_xmalloc((size_t)N_GROUPS * ROWS * row_bytes);
	for (int r = 0; r < N_GROUPS * ROWS; r++) {
		for (int64_t i = 0; i < n; i++)
			x[i] = tk_test_rng_normal(&rng_state) * (1.0f + (float)(r % 5));
		ref->from_float(x, rows + (size_t)r * row_bytes, n);
	}
	unsigned char *gbuf = tk_test_xmalloc((size_t)N_GROUPS * gb + 64);
	unsigned char *groups = gbuf + 1; /* unaligned on purpose */
	for (int g = 0; g < N_GROUPS; g++)
		pt->pack(groups + (size_t)g * gb, rows + (size_t)g * ROWS * row_bytes, row_bytes, n);

	/* TK_PACK_COLS activation rows, encoded as the engine does, also
	 * unaligned; the gemv takes the first */
	const int at = act_type_of(t);
	const size_t by = tk_act_row_size(at, n);
	assert_true(by > 0);
	unsigned char *ybuf = tk_test_xmalloc(TK_PACK_COLS * by + 8);
	unsigned char *y = ybuf + 3;
	for (int c = 0; c < TK_PACK_COLS; c++) {
		for (int64_t i = 0; i < n; i++)
			x[i] = tk_test_rng_normal(&rng_state);
		tk_act_encode(at, x, y + (size_t)c * by, n);
	}

	/* expected: gemm nc = 1 per group; and the reference gemm as a check
	 * that the gemm itself is sane */
	const struct tk_pack_traits *rt = tk_pack_traits_ref(t);
	float want[N_GROUPS * ROWS], refv[ROWS];
	for (int g = 0; g < N_GROUPS; g++) {
		pt->gemm(n, want + g * ROWS, ROWS, groups + (size_t)g * gb, y, by, 1);
		rt->gemm(n, refv, ROWS, groups + (size_t)g * gb, y, by, 1);
		for (int r = 0; r < ROWS; r++) {
			const float w = want[g * ROWS + r];
			assert_true(isfinite(w));
			if (fabsf(w - refv[r]) > 1e-3f * (fabsf(refv[r]) + 1.0f))
				fail_msg("%s %s n=%lld group %d row %d: gemm %.9g, reference %.9g", isa,
					 pt->name, (long long)n, g, r, (double)w, (double)refv[r]);
		}
	}

	float out[TK_PACK_GEMV_GROUPS * ROWS + ROWS];
	const uint32_t sentinel = SENTINEL;
	/* groups one apart, and two apart: the contract's group_bytes is any
	 * distance (the engine walks a range as regions, ops.c) */
	for (int step = 1; step <= 2; step++)
		for (int ng = 1; pt->gemv && ng <= TK_PACK_GEMV_GROUPS; ng++)
			for (int s = 0; s + step * (ng - 1) < N_GROUPS; s++) {
				for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
					memcpy(&out[i], &sentinel, 4);
				pt->gemv(n, out, groups + (size_t)s * gb, (size_t)step * gb, ng, y);
				for (int i = 0; i < ng * ROWS; i++) {
					const float w = want[(s + step * (i / ROWS)) * ROWS + i % ROWS];
					if (bits(out[i]) != bits(w))
						fail_msg("%s %s n=%lld ng=%d start %d step %d cell %d: "
							 "gemv %.9g, gemm %.9g",
							 isa, pt->name, (long long)n, ng, s, step, i,
							 (double)out[i], (double)w);
				}
				for (size_t i = (size_t)ng * ROWS; i < sizeof out / sizeof out[0]; i++)
					if (bits(out[i]) != sentinel)
						fail_msg("%s %s n=%lld ng=%d step %d: wrote cell %zu past "
							 "16 * ng",
							 isa, pt->name, (long long)n, ng, step, i);
			}
	if (pt->gemmg)
		check_gemmg(isa, pt, n, groups, gb, y, by);
	free(ybuf);
	free(gbuf);
	free(rows);
	free(x);
}

static void test_gemv_equals_gemm(void **state)
{
	(void)state;
	static struct tk_type_traits tab[TK_TYPE_COUNT];
	int tested = 0;
	for (int isa = TK_QUANT_ISA_AVX2; isa < TK_QUANT_ISA_COUNT; isa++) {
		if (!tk_quant_isa_supported(isa)) {
			printf("# %s: not supported on this CPU, skipped\n", tk_quant_isa_name(isa));
			continue;
		}
		assert_int_equal(tk_quant_isa_traits(isa, tab), 0);
		for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
			const int t = types[ti];
			const struct tk_pack_traits *pt = tab[t].pack;
			if (!pt || (!pt->gemv && !pt->gemmg)) {
				printf("# %s %s: no packed gemv or gemmg\n", tk_quant_isa_name(isa),
				       tk_type_name(t));
				continue;
			}
			int64_t ns[8];
			const int nn = row_lengths(t, ns);
			for (int i = 0; i < nn; i++)
				run_case(tk_quant_isa_name(isa), t, pt, ns[i]);
			printf("# %s %s: %s%s checked\n", tk_quant_isa_name(isa), pt->name,
			       pt->gemv ? "gemv " : "", pt->gemmg ? "gemmg" : "");
			tested++;
		}
	}
	printf("# packed gemv kernels tested: %d\n", tested);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gemv_equals_gemm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
