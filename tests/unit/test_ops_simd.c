/*
 * test_ops_simd.c — the SIMD variants of the element-wise ops (ops_simd.h)
 * against ops.c's scalar references: SiLU gate error in ulps over a sweep
 * of floats in [-90, 90] (printed; bounded by ENGINE_OPS_SILU_MAX_ULP),
 * special values (inf, NaN, -0, huge and tiny inputs, inf gates), tails of
 * every length and independence from where a row is split; the RMS norm's
 * vector sum of squares; RoPE's per-position cos/sin table against the old
 * per-head computation (engine_op_rope_ref), bit for bit; the TANUKI_*
 * switches of the choice. Variants this CPU lacks are skipped (the
 * reference path is always checked).
 */
#include "testutil.h"

#include "engine/fp16.h"
#include "engine/ops.h"
#include "engine/ops_simd.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* |y - e| in units of the float spacing at e (subnormal spacing below
 * FLT_MIN) */
static double ulps(float y, double e)
{
	if (isnan(y) || isnan(e))
		return isnan(y) && isnan(e) ? 0.0 : INFINITY;
	int ex;
	(void)frexp(e, &ex); /* e = m 2^ex, m in [0.5, 1) */
	if (ex - 24 < -149)
		ex = -149 + 24;
	return fabs((double)y - e) / ldexp(1.0, ex - 24);
}

static bool same_bits(float a, float b)
{
	return tk_f32_bits(a) == tk_f32_bits(b) || (isnan(a) && isnan(b));
}

/* silu(v) * g in double, the true value */
static double silu_exact(float v, float g)
{
	return (double)v / (1.0 + exp(-(double)v)) * (double)g;
}

struct silu_err {
	double vs_ref, vs_exact, ref_vs_exact; /* max ulps */
	size_t n_tiny;                         /* of n, scalar results below FLT_MIN */
	float at;                              /* x of the largest vs_ref */
	size_t n;
};

/* x[n], g[n] through isa and the reference; errors into e */
static void silu_measure(int isa, const float *x, const float *g, size_t n, struct silu_err *e)
{
	float *y = tk_test_xmalloc(n * sizeof *y), *r = tk_test_xmalloc(n * sizeof *r);
	memcpy(y, x, n * sizeof *y);
	memcpy(r, x, n * sizeof *r);
	engine_op_silu_mul_isa(isa, y, g, (int64_t)n);
	engine_op_silu_mul_ref(r, g, (int64_t)n);
	for (size_t i = 0; i < n; i++) {
		if (fabsf(r[i]) < FLT_MIN) {
			/* the documented tiny-result case: within 1e-36 of the
			 * scalar result (the same -0 below -88.7228) */
			assert_true(fabs((double)y[i] - (double)r[i]) < 1e-36);
			e->n_tiny++;
			continue;
		}
		const double u = ulps(y[i], (double)r[i]);
		if (u > e->vs_ref) {
			e->vs_ref = u;
			e->at = x[i];
		}
		const double t = silu_exact(x[i], g[i]);
		e->vs_exact = fmax(e->vs_exact, ulps(y[i], t));
		e->ref_vs_exact = fmax(e->ref_vs_exact, ulps(r[i], t));
	}
	e->n += n;
	free(y);
	free(r);
}

static void check_silu_accuracy(int isa)
{
	if (!engine_ops_isa_supported(isa))
		return;
	enum { N = 1 << 16 };
	float *x = tk_test_xmalloc(N * sizeof *x), *g = tk_test_xmalloc(N * sizeof *g);
	struct silu_err e = { 0 };
	/* every 1021st float of [0, 90] with either sign, gate 1 (silu itself) */
	const uint32_t hi = tk_f32_bits(90.0f);
	for (int sign = 0; sign < 2; sign++) {
		uint32_t b = 0;
		while (b <= hi) {
			size_t n = 0;
			for (; n < N && b <= hi; n++, b += 1021) {
				x[n] = tk_f32_from_bits(b | (sign ? 0x80000000u : 0u));
				g[n] = 1.0f;
			}
			silu_measure(isa, x, g, n, &e);
		}
	}
	/* where the MLP's gates live, densely, with random gates */
	uint64_t rng = 42;
	for (size_t i = 0; i < N; i++) {
		x[i] = -12.0f + 24.0f * (float)i / (float)N;
		g[i] = tk_test_rng_normal(&rng) * 3.0f;
	}
	silu_measure(isa, x, g, N, &e);
	printf("# silu %s: max %.3f ulp from the libm path (at x = %.9g), %.3f ulp from exact "
	       "(libm path: %.3f) over %zu values (%zu "
	       "of them below FLT_MIN, within 1e-36)\n",
	       tk_isa_name(isa), e.vs_ref, (double)e.at, e.vs_exact, e.ref_vs_exact, e.n, e.n_tiny);
	assert_true(e.vs_ref <= ENGINE_OPS_SILU_MAX_ULP);
	assert_true(e.n > 800000);
	free(x);
	free(g);
}

/* special inputs give what the scalar path gives: same bits, or both NaN,
 * or (tiny scalar results) within 1e-35 */
static void check_silu_special(int isa)
{
	if (!engine_ops_isa_supported(isa))
		return;
	const float xs[] = { 0.0f,	-0.0f,	   INFINITY, -INFINITY, NAN,	  -NAN,
			     FLT_MAX,	-FLT_MAX,  FLT_MIN,  -FLT_MIN,	1e-40f,	  -1e-40f,
			     87.0f,	-87.0f,	   87.5f,    -87.5f,	88.5f,	  -88.5f,
			     88.8f,	-88.8f,	   100.0f,   -100.0f,	1e30f,	  -1e30f,
			     1e-30f,	-1e-30f,   0.5f,     -0.5f,	20.0f,	  -20.0f,
			     /* either side of where the scalar's expf(-v) overflows */
			     -88.72283935546875f, -88.72283172607422f, -88.72284698486328f };
	const float gs[] = { 1.0f, -2.5f, INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 1e-38f };
	enum { NX = sizeof xs / sizeof xs[0], NG = sizeof gs / sizeof gs[0] };
	float x[NX * NG], g[NX * NG], y[NX * NG], r[NX * NG];
	for (int i = 0; i < NX; i++)
		for (int j = 0; j < NG; j++) {
			x[i * NG + j] = xs[i];
			g[i * NG + j] = gs[j];
		}
	memcpy(y, x, sizeof y);
	memcpy(r, x, sizeof r);
	engine_op_silu_mul_isa(isa, y, g, NX * NG);
	engine_op_silu_mul_ref(r, g, NX * NG);
	for (int k = 0; k < NX * NG; k++) {
		if (same_bits(y[k], r[k]))
			continue;
		if (isnan(y[k]) != isnan(r[k]) || isinf(y[k]) != isinf(r[k]))
			fail_msg("silu %s: x %g g %g: %g, scalar %g", tk_isa_name(isa),
				 (double)x[k], (double)g[k], (double)y[k], (double)r[k]);
		if (fabsf(r[k]) < FLT_MIN) {
			assert_true(fabs((double)y[k] - (double)r[k]) < 1e-36);
			continue;
		}
		if (!(ulps(y[k], (double)r[k]) <= ENGINE_OPS_SILU_MAX_ULP))
			fail_msg("silu %s: x %g g %g: %.9g, scalar %.9g", tk_isa_name(isa),
				 (double)x[k], (double)g[k], (double)y[k], (double)r[k]);
	}
	/* the cases the header names */
	float v[3] = { INFINITY, -INFINITY, NAN }, w[3] = { 2.0f, 2.0f, 2.0f };
	engine_op_silu_mul_isa(isa, v, w, 3);
	assert_true(v[0] == INFINITY && isnan(v[1]) && isnan(v[2]));
}

/* every length 0..70 at several offsets: each element equals the full-row
 * result bit for bit (the tail is computed as the body is), and nothing
 * past n is written */
static void check_silu_tails(int isa)
{
	if (!engine_ops_isa_supported(isa))
		return;
	enum { M = 96 };
	float x[M], g[M], full[M], y[M + 8];
	uint64_t rng = 7;
	for (int i = 0; i < M; i++) {
		x[i] = tk_test_rng_normal(&rng) * 6.0f;
		g[i] = tk_test_rng_normal(&rng);
	}
	memcpy(full, x, sizeof full);
	engine_op_silu_mul_isa(isa, full, g, M);
	for (int off = 0; off < 9; off++)
		for (int n = 0; off + n <= 80; n++) {
			for (int i = 0; i < M + 8; i++)
				y[i] = -7.0f;
			memcpy(y + off, x + off, (size_t)n * sizeof *y);
			engine_op_silu_mul_isa(isa, y + off, g + off, n);
			for (int i = 0; i < M + 8; i++) {
				const bool in = i >= off && i < off + n;
				if (in ? !same_bits(y[i], full[i]) : y[i] != -7.0f)
					fail_msg("silu %s: off %d n %d: element %d is %g", tk_isa_name(isa),
						 off, n, i, (double)y[i]);
			}
		}
}

static void test_silu(void **state)
{
	(void)state;
	for (int isa = ENGINE_OPS_ISA_AVX2; isa < ENGINE_OPS_ISA_COUNT; isa++) {
		check_silu_accuracy(isa);
		check_silu_special(isa);
		check_silu_tails(isa);
	}
	/* the reference path is the scalar loop, bit for bit */
	float a[3] = { -1.0f, 0.0f, 2.0f }, b[3] = { -1.0f, 0.0f, 2.0f }, u[3] = { 2, 5, -1 };
	engine_op_silu_mul_isa(ENGINE_OPS_ISA_REF, a, u, 3);
	engine_op_silu_mul_ref(b, u, 3);
	assert_memory_equal(a, b, sizeof a);
	assert_true(a[2] == 2.0f / (1.0f + expf(-2.0f)) * -1.0f);
	/* the public op is the active variant */
	float c[3] = { -1.0f, 0.0f, 2.0f };
	memcpy(a, c, sizeof a);
	engine_op_silu_mul(c, u, 3);
	engine_op_silu_mul_isa(engine_ops_isa_active(), a, u, 3);
	assert_memory_equal(a, c, sizeof a);
}

static void check_rmsnorm(int isa)
{
	if (!engine_ops_isa_supported(isa))
		return;
	enum { M = 2112 };
	float *x = tk_test_xmalloc(M * sizeof *x), *w = tk_test_xmalloc(M * sizeof *w);
	float *y = tk_test_xmalloc(M * sizeof *y), *r = tk_test_xmalloc(M * sizeof *r);
	uint64_t rng = 3;
	for (int i = 0; i < M; i++) {
		/* a wide spread of magnitudes, so the double sums do round */
		x[i] = tk_test_rng_normal(&rng) * ldexpf(1.0f, (int)(tk_test_rng_u64(&rng) % 40) - 20);
		w[i] = tk_test_rng_normal(&rng);
	}
	const int64_t ns[] = { 1, 2, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 2048, M };
	double worst = 0.0;
	size_t n_same = 0, n_all = 0;
	for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
		const int64_t n = ns[k];
		for (int wi = 0; wi < 2; wi++) {
			const float *wp = wi ? w : NULL;
			engine_op_rmsnorm_isa(isa, y, x, wp, n, 1e-6f);
			engine_op_rmsnorm_ref(r, x, wp, n, 1e-6f);
			for (int64_t i = 0; i < n; i++) {
				worst = fmax(worst, ulps(y[i], (double)r[i]));
				n_same += same_bits(y[i], r[i]);
				n_all++;
			}
			/* in place */
			memcpy(y, x, (size_t)n * sizeof *y);
			engine_op_rmsnorm_isa(isa, y, y, wp, n, 1e-6f);
			engine_op_rmsnorm_isa(isa, r, x, wp, n, 1e-6f);
			assert_memory_equal(y, r, (size_t)n * sizeof *y);
		}
	}
	printf("# rmsnorm %s: %zu of %zu outputs equal the reference's bits, max %.3f ulp\n",
	       tk_isa_name(isa), n_same, n_all, worst);
	/* the mean differs from the reference's by a rounding of the double
	 * sum at most: one float ulp, which the scale and products pass on */
	assert_true(worst <= 2.0);
	free(x);
	free(w);
	free(y);
	free(r);
}

static void test_rmsnorm(void **state)
{
	(void)state;
	for (int isa = ENGINE_OPS_ISA_REF; isa < ENGINE_OPS_ISA_COUNT; isa++)
		check_rmsnorm(isa);
	/* the public op is the active variant */
	float x[37], a[37], b[37];
	for (int i = 0; i < 37; i++)
		x[i] = sinf((float)i);
	engine_op_rmsnorm(a, x, NULL, 37, 1e-5f);
	engine_op_rmsnorm_isa(engine_ops_isa_active(), b, x, NULL, 37, 1e-5f);
	assert_memory_equal(a, b, sizeof a);
}

static void test_rope_table(void **state)
{
	(void)state;
	/* head_dim 640, n_rot up to 600: more pairs than one table chunk */
	enum { NH = 3, HD = 640 };
	float *x = tk_test_xmalloc(NH * HD * sizeof *x), *a = tk_test_xmalloc(NH * HD * sizeof *a);
	float *b = tk_test_xmalloc(NH * HD * sizeof *b), *c = tk_test_xmalloc(NH * HD * sizeof *c);
	float ff[300], cs[600];
	uint64_t rng = 11;
	for (int i = 0; i < NH * HD; i++)
		x[i] = tk_test_rng_normal(&rng);
	for (int i = 0; i < 300; i++)
		ff[i] = 1.0f + (float)(i % 7);
	const int32_t n_rots[] = { 2, 64, 96, 128, 256, 258, 600 };
	const int32_t poss[] = { 0, 1, 17, 511, 4095, 131071 };
	int n_cases = 0;
	for (int style = 0; style < 2; style++)
		for (size_t k = 0; k < sizeof n_rots / sizeof n_rots[0]; k++)
			for (size_t p = 0; p < sizeof poss / sizeof poss[0]; p++)
				for (int f = 0; f < 2; f++) {
					const struct engine_rope r = {
						.style = style ? ENGINE_ROPE_NEOX : ENGINE_ROPE_NORM,
						.n_rot = n_rots[k], .freq_base = style ? 1e6f : 1e4f,
						.freq_scale = f ? 0.25f : 1.0f, .freq_factors = f ? ff : NULL
					};
					memcpy(a, x, NH * HD * sizeof *a);
					memcpy(b, x, NH * HD * sizeof *b);
					memcpy(c, x, NH * HD * sizeof *c);
					engine_op_rope_ref(a, NH, HD, poss[p], &r);
					engine_op_rope(b, NH, HD, poss[p], &r);
					/* the two steps by hand, whole table at once */
					engine_op_rope_cs(cs, 0, r.n_rot / 2, poss[p], &r);
					engine_op_rope_apply(c, NH, HD, cs, 0, r.n_rot / 2, &r);
					assert_memory_equal(a, b, NH * HD * sizeof *a);
					assert_memory_equal(a, c, NH * HD * sizeof *a);
					/* and it did rotate something */
					if (poss[p] > 0)
						assert_true(a[0] != x[0] || a[1] != x[1]);
					n_cases++;
				}
	assert_int_equal(n_cases, 2 * 7 * 6 * 2);
	free(x);
	free(a);
	free(b);
	free(c);
}

/* In a child (the choice is made once per process): with name=1 in the
 * environment, the first engine_ops_isa_active() call must give at most
 * want; exits 0 when it does. */
struct switch_case {
	const char *name;
	int want;
};

static void switch_child(void *arg)
{
	const struct switch_case *sc = arg;
	setenv(sc->name, "1", 1);
	exit(engine_ops_isa_active() <= sc->want ? 0 : 1);
}

/* TANUKI_NO_OPS_SIMD forces the reference, TANUKI_NO_AVX512 caps at avx2.
 * Runs first, so the parent has made no choice the children inherit. */
static void test_switches(void **state)
{
	(void)state;
	const struct switch_case cases[] = { { "TANUKI_NO_OPS_SIMD", ENGINE_OPS_ISA_REF },
					     { "TANUKI_NO_AVX2", ENGINE_OPS_ISA_REF },
					     { "TANUKI_NO_AVX512", ENGINE_OPS_ISA_AVX2 } };
	char dir[256];
	tk_test_mkdtemp(dir, sizeof dir);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const int st = tk_test_run_child(switch_child, (void *)&cases[i], dir);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail_msg("%s=1: the active variant is above %s", cases[i].name,
				 tk_isa_name(cases[i].want));
	}
	tk_test_rmtree(dir);
	/* without them: the best supported */
	int best = ENGINE_OPS_ISA_REF;
	for (int isa = ENGINE_OPS_ISA_REF; isa < ENGINE_OPS_ISA_COUNT; isa++)
		if (engine_ops_isa_supported(isa))
			best = isa;
	if (!getenv("TANUKI_NO_OPS_SIMD") && !getenv("TANUKI_NO_AVX2") && !getenv("TANUKI_NO_AVX512"))
		assert_int_equal(engine_ops_isa_active(), best);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_switches),
		cmocka_unit_test(test_silu),
		cmocka_unit_test(test_rmsnorm),
		cmocka_unit_test(test_rope_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
