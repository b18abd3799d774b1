/*
 * test_attn_simd.c — the SIMD attention variants (attn_simd.h) against the
 * portable reference (engine_op_attention_blocked, one call per token) on
 * awkward shapes: one visible position, runs that are not a multiple of the
 * 64-position block and cross block edges, GQA groups 1, 2, 6, 8 and 40
 * (more heads than one pass holds on AVX2), head_dim 64 and 128, F16 and
 * F32 caches, passes that keep their scores and passes too long to; a run
 * of tokens equals one call per token bit for bit; and
 * the vector exp's error, measured in ulps against a double
 * exp over the range softmax feeds it. Variants this CPU lacks are skipped
 * (and said so); the reference path of engine_attn_tokens_isa is checked
 * everywhere.
 */
#include "testutil.h"

#include "engine/attn_simd.h"
#include "engine/fp16.h"
#include "engine/ops.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* uniform in [-1, 1) */
static float rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

struct shape {
	int32_t n_head_kv, group, head_dim;
	int32_t pos0, n_tok; /* tokens at pos0 .. pos0 + n_tok - 1 */
};

static const struct shape shapes[] = {
	{ 2, 8, 64, 0, 1 },     /* one visible position */
	{ 2, 8, 64, 0, 13 },    /* a run inside the first block, masked */
	{ 4, 1, 64, 60, 9 },    /* group 1; the run crosses the 64 edge */
	{ 2, 2, 128, 120, 17 }, /* head_dim 128, group 2 */
	{ 2, 6, 64, 70, 11 },   /* qwen2-like group 6: 10 tokens a pass */
	{ 1, 6, 128, 191, 3 },  /* positions end at 193: not a block multiple */
	{ 4, 8, 64, 0, 40 },    /* several passes of tokens */
	{ 2, 8, 128, 255, 2 },  /* ends one past a block edge */
	{ 1, 40, 64, 5, 3 },    /* more heads than an AVX2 pass holds */
	{ 2, 8, 64, 3000, 8 },  /* 64 rows x 3008 positions: scores not kept */
	{ 2, 8, 128, 3000, 1 }, /* decode far in: scores kept */
};

/* Runs one shape through isa and through the reference; returns the largest
 * difference relative to the largest |reference output|, and counts outputs
 * that differ at all in *n_diff of *n_out. */
static double run_shape(int isa, const struct shape *sh, enum engine_kv_type kv_type,
			size_t *n_diff, size_t *n_out)
{
	const int32_t n_head = sh->n_head_kv * sh->group, hd = sh->head_dim;
	const int32_t n_pos = sh->pos0 + sh->n_tok;
	const size_t q_dim = (size_t)n_head * (size_t)hd;
	const size_t kv_n = (size_t)n_pos * (size_t)sh->n_head_kv * (size_t)hd;
	const size_t esz = kv_type == ENGINE_KV_F16 ? sizeof(uint16_t) : sizeof(float);
	float *q = malloc((size_t)sh->n_tok * q_dim * sizeof(float));
	float *got = malloc((size_t)sh->n_tok * q_dim * sizeof(float));
	float *want = malloc((size_t)sh->n_tok * q_dim * sizeof(float));
	void *k = malloc(kv_n * esz), *v = malloc(kv_n * esz);
	float *scratch = malloc(engine_attn_scratch(n_head, sh->n_head_kv, hd) * sizeof(float));
	assert_true(q && got && want && k && v && scratch);
	for (size_t i = 0; i < (size_t)sh->n_tok * q_dim; i++)
		q[i] = 2.0f * rnd(); /* scores of a few units: a peaked softmax */
	for (size_t i = 0; i < kv_n; i++) {
		const float kx = 2.0f * rnd(), vx = rnd();
		if (kv_type == ENGINE_KV_F16) {
			((uint16_t *)k)[i] = tk_fp32_to_fp16(kx);
			((uint16_t *)v)[i] = tk_fp32_to_fp16(vx);
		} else {
			((float *)k)[i] = kx;
			((float *)v)[i] = vx;
		}
	}
	/* NaN everywhere: a row the kernel forgets to write shows */
	for (size_t i = 0; i < (size_t)sh->n_tok * q_dim; i++)
		got[i] = want[i] = NAN;
	const float scale = 1.0f / sqrtf((float)hd);
	for (int32_t hk = 0; hk < sh->n_head_kv; hk++) {
		engine_attn_tokens_isa(isa, got, q, k, v, kv_type, sh->pos0, sh->n_tok, n_head,
				       sh->n_head_kv, hd, scale, hk, scratch);
		for (int32_t t = 0; t < sh->n_tok; t++)
			engine_op_attention_blocked(want + (size_t)t * q_dim, q + (size_t)t * q_dim, k,
						    v, kv_type, sh->pos0 + t + 1, n_head,
						    sh->n_head_kv, hd, scale, hk, scratch);
	}
	double wmax = 0.0, dmax = 0.0;
	*n_out = (size_t)sh->n_tok * q_dim;
	*n_diff = 0;
	for (size_t i = 0; i < *n_out; i++) {
		assert_false(isnan(want[i]));
		if (isnan(got[i])) {
			dmax = INFINITY;
			continue;
		}
		wmax = fmax(wmax, fabs((double)want[i]));
		const double d = fabs((double)got[i] - (double)want[i]);
		dmax = fmax(dmax, d);
		*n_diff += d != 0.0;
	}
	free(q);
	free(got);
	free(want);
	free(k);
	free(v);
	free(scratch);
	return wmax > 0.0 ? dmax / wmax : dmax;
}

static void check_isa(int isa)
{
	if (!engine_attn_isa_supported(isa)) {
		printf("# attn %s: not supported on this CPU, skipped\n", engine_attn_isa_name(isa));
		return;
	}
	for (int kt = 0; kt < 2; kt++) {
		const enum engine_kv_type kv_type = kt ? ENGINE_KV_F32 : ENGINE_KV_F16;
		size_t diff_all = 0, out_all = 0;
		double worst = 0.0;
		for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
			size_t n_diff, n_out;
			const double rel = run_shape(isa, &shapes[s], kv_type, &n_diff, &n_out);
			/* F32: fused vs separate multiply-adds and exp's few ulp, ~1e-7
			 * relative. F16: where exp's ulp moves a probability across a
			 * binary16 rounding edge, that term moves by one binary16 ulp
			 * of p (<= 2^-11) times |v| (<= 1); nothing else differs. */
			const double tol = kv_type == ENGINE_KV_F32 ? 2e-6 : 2e-3;
			if (!(rel <= tol))
				printf("# attn %s %s shape %zu: relative difference %.3g\n",
				       engine_attn_isa_name(isa), kt ? "f32" : "f16", s, rel);
			assert_true(rel <= tol);
			worst = fmax(worst, rel);
			diff_all += n_diff;
			out_all += n_out;
		}
		printf("# attn %s %s: worst relative difference %.3g, %zu of %zu outputs differ\n",
		       engine_attn_isa_name(isa), kt ? "f32" : "f16", worst, diff_all, out_all);
		/* F16: products are exact in float and summed in the reference's
		 * order, so an output differs only through a probability's
		 * rounding flip — most must be bit-identical */
		if (kv_type == ENGINE_KV_F16)
			assert_true(diff_all * 4 < out_all);
	}
}

static void test_ref_path(void **state)
{
	(void)state;
	check_isa(ENGINE_ATTN_ISA_REF);
}

static void test_avx2(void **state)
{
	(void)state;
	check_isa(ENGINE_ATTN_ISA_AVX2);
}

static void test_avx512(void **state)
{
	(void)state;
	check_isa(ENGINE_ATTN_ISA_AVX512);
}

/* A token's output does not depend on the run it is computed in: a run of
 * n_tok tokens equals the same variant called once per token, bit for bit
 * (what keeps prefill equal to token-by-token decode). At pos0 3000 the
 * run's passes are too long to keep their scores (ENGINE_ATTN_KEEP_FLOATS)
 * and the single tokens' are not: both ways give the same bits. The
 * scratch is deliberately misaligned by one float. */
static void check_run_independence(int isa, enum engine_kv_type kv_type, int32_t pos0)
{
	const int32_t n_head_kv = 2, group = 6, hd = 64, n_tok = 23;
	const int32_t n_head = n_head_kv * group, n_pos = pos0 + n_tok;
	const size_t q_dim = (size_t)n_head * (size_t)hd;
	const size_t kv_n = (size_t)n_pos * (size_t)n_head_kv * (size_t)hd;
	const size_t esz = kv_type == ENGINE_KV_F16 ? sizeof(uint16_t) : sizeof(float);
	float *q = malloc((size_t)n_tok * q_dim * sizeof(float));
	float *run = calloc((size_t)n_tok * q_dim, sizeof(float));
	float *one = calloc((size_t)n_tok * q_dim, sizeof(float));
	void *k = malloc(kv_n * esz), *v = malloc(kv_n * esz);
	float *scratch = malloc((engine_attn_scratch(n_head, n_head_kv, hd) + 1) * sizeof(float));
	assert_true(q && run && one && k && v && scratch);
	for (size_t i = 0; i < (size_t)n_tok * q_dim; i++)
		q[i] = 2.0f * rnd();
	for (size_t i = 0; i < kv_n; i++) {
		if (kv_type == ENGINE_KV_F16) {
			((uint16_t *)k)[i] = tk_fp32_to_fp16(2.0f * rnd());
			((uint16_t *)v)[i] = tk_fp32_to_fp16(rnd());
		} else {
			((float *)k)[i] = 2.0f * rnd();
			((float *)v)[i] = rnd();
		}
	}
	const float scale = 0.125f;
	for (int32_t hk = 0; hk < n_head_kv; hk++) {
		engine_attn_tokens_isa(isa, run, q, k, v, kv_type, pos0, n_tok, n_head, n_head_kv, hd,
				       scale, hk, scratch + 1);
		for (int32_t t = 0; t < n_tok; t++)
			engine_attn_tokens_isa(isa, one + (size_t)t * q_dim, q + (size_t)t * q_dim, k, v,
					       kv_type, pos0 + t, 1, n_head, n_head_kv, hd, scale, hk,
					       scratch + 1);
	}
	assert_memory_equal(run, one, (size_t)n_tok * q_dim * sizeof(float));
	free(q);
	free(run);
	free(one);
	free(k);
	free(v);
	free(scratch);
}

static void test_run_independence(void **state)
{
	(void)state;
	for (int isa = 0; isa < ENGINE_ATTN_ISA_COUNT; isa++) {
		if (!engine_attn_isa_supported(isa))
			continue;
		check_run_independence(isa, ENGINE_KV_F16, 50);
		check_run_independence(isa, ENGINE_KV_F32, 50);
		check_run_independence(isa, ENGINE_KV_F16, 3000);
	}
}

/* The active variant is one of the three and computes what it names. */
static void test_active(void **state)
{
	(void)state;
	const int isa = engine_attn_isa_active();
	assert_true(isa >= ENGINE_ATTN_ISA_REF && isa < ENGINE_ATTN_ISA_COUNT);
	assert_true(engine_attn_isa_supported(isa));
	printf("# attn active variant: %s\n", engine_attn_isa_name(isa));
	assert_int_equal(engine_attn_tokens_per_call(32, 4), ENGINE_ATTN_ROWS / 8);
	assert_int_equal(engine_attn_tokens_per_call(64, 1), 1);
	assert_int_equal(engine_attn_tokens_per_call(128, 1), 1);
	assert_true(engine_attn_scratch(32, 4, 64) >= engine_op_attention_scratch(32, 4, 64));
}

/* ulps between y and the double e, in units of the float spacing at e */
static double ulps(float y, double e)
{
	int ex;
	(void)frexp(e, &ex); /* e = m 2^ex, m in [0.5, 1) */
	if (ex - 24 < -149)
		ex = -149 + 24; /* subnormal spacing */
	return fabs((double)y - e) / ldexp(1.0, ex - 24);
}

static void check_exp(int isa)
{
	if (!engine_attn_isa_supported(isa))
		return;
	enum { N = 4096 };
	static float x[N], y[N];
	double worst = 0.0, worst_x = 0.0;
	size_t n_checked = 0;
	/* every 127th float from -0 down to ENGINE_ATTN_EXP_MIN (~9 M values),
	 * then a dense sweep of [-1, 0] where softmax's largest terms are */
	const uint32_t lo = 0x80000000u, hi = tk_f32_bits(ENGINE_ATTN_EXP_MIN);
	uint32_t b = lo;
	while (b <= hi) {
		size_t n = 0;
		for (; n < N && b <= hi; n++, b += 127)
			x[n] = tk_f32_from_bits(b);
		engine_attn_exp_isa(isa, y, x, n);
		for (size_t i = 0; i < n; i++) {
			const double u = ulps(y[i], exp((double)x[i]));
			if (u > worst) {
				worst = u;
				worst_x = x[i];
			}
		}
		n_checked += n;
	}
	for (int i = 0; i < N; i++)
		x[i] = -(float)i / (float)N;
	engine_attn_exp_isa(isa, y, x, N);
	for (int i = 0; i < N; i++)
		worst = fmax(worst, ulps(y[i], exp((double)x[i])));
	printf("# exp %s: max error %.3f ulp (at x = %.9g) over %zu values in [%g, 0]\n",
	       engine_attn_isa_name(isa), worst, worst_x, n_checked + N,
	       (double)ENGINE_ATTN_EXP_MIN);
	/* an exhaustive sweep of all 1.12e9 floats of [EXP_MIN, 0] (not run
	 * here: 90 s) measured 0.937 ulp at most (docs/attention.md) */
	assert_true(worst <= 1.0);

	/* the edges softmax reaches: 0, -inf, below the cutoff, NaN, and a
	 * length that leaves a partial vector */
	const float edge[7] = { 0.0f, -INFINITY, -88.0f, -100.0f, NAN, -1e-30f, -87.3f };
	float ye[7];
	engine_attn_exp_isa(isa, ye, edge, 7);
	assert_true(ye[0] == 1.0f);
	assert_true(ye[1] == 0.0f);
	assert_true(ye[2] == 0.0f && expf(-88.0f) < FLT_MIN);
	assert_true(ye[3] == 0.0f);
	assert_true(isnan(ye[4]));
	assert_true(ye[5] == 1.0f);
	assert_true(ye[6] >= FLT_MIN && ulps(ye[6], exp((double)edge[6])) <= 1.0);
}

static void test_exp(void **state)
{
	(void)state;
	check_exp(ENGINE_ATTN_ISA_AVX2);
	check_exp(ENGINE_ATTN_ISA_AVX512);
	/* the reference path is libm's expf */
	float x = -1.5f, y;
	engine_attn_exp_isa(ENGINE_ATTN_ISA_REF, &y, &x, 1);
	assert_true(y == expf(-1.5f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_path), cmocka_unit_test(test_avx2),
		cmocka_unit_test(test_avx512),   cmocka_unit_test(test_run_independence),
		cmocka_unit_test(test_active),
		cmocka_unit_test(test_exp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
