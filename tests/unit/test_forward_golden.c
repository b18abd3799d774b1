/*
 * test_forward_golden.c — our logits and greedy continuations against
 * llama.cpp's, on the tiny fixture models (tests/fixtures/golden/).
 *
 * For every model type and prompt case it measures the largest and mean
 * absolute logit difference and how often the argmax agrees, prints them
 * (docs/engine.md records the numbers) and checks them against bounds per
 * type set from those measurements (about 3x the worst case seen).
 *
 * Argmax and greedy tokens: every position's argmax and every greedy token
 * (16, decoded one at a time after the prompt) must equal llama.cpp's,
 * except at a near-tie: where the two candidates' logits differ by less than
 * the type's max_abs bound, the measured noise can honestly pick either. A
 * greedy run that parts at a near-tie is reported and not compared further
 * (the contexts differ from there on). Anything else fails.
 *
 * llama.cpp disagrees with itself on Q4_0 and Q4_1: its logits for the same
 * token at position 0 (BOS, which nothing later can influence) differ by ~2
 * between its 8-token golden and its 64-token one (a different kernel for
 * large batches; docs/engine.md, "Golden comparison").
 * test_batch_dependent_goldens() checks that claim on the golden files
 * themselves, so it cannot go stale silently; for those two types only the
 * story case (8 tokens) gets the type's bounds, and the larger-batch cases
 * are held to loose bounds (the measured disagreement x 1.5) with no argmax
 * or greedy check.
 *
 * Packed weights (model.h): test_goldens loads models the default way, so
 * on a CPU with fast packed kernels its numbers are the packed path's;
 * test_goldens_packed_ref runs the story case of every model whose types
 * have packed layouts again with the reference layouts forced
 * (ENGINE_REPACK_REF), under the same bounds, so the engine's packed path
 * meets the goldens on any machine.
 *
 * Speed (the test also runs under ASan): by default each model runs the
 * cases in its `cases` mask; TK_GOLDEN_ALL=1 in the environment runs every
 * case of every model.
 */
#include "testutil.h"

#include "core/err.h"
#include "engine/context.h"
#include "engine/model.h"
#include "engine/sampler.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { C_STORY = 1, C_RANDOM64 = 2, C_LONG200 = 4, C_ALL = 7 };

struct bound {
	const char *model; /* fixture name without .gguf */
	double max_abs;    /* bound on the largest |ours - theirs| */
	double mean_abs;   /* bound on the mean |ours - theirs| */
	unsigned cases;    /* C_* cases run by default (all with TK_GOLDEN_ALL=1) */
	/* llama.cpp's goldens for prompts longer than 8 tokens come from a
	 * different kernel than its 8-token one (see above): those cases are
	 * held to loose_max / loose_mean only */
	bool big_batch_differs;
	double loose_max, loose_mean;
};

/* Measured worst cases over every case run (docs/engine.md, "Golden
 * comparison"; gcc Debug and clang Release print the same numbers):
 *   llama f32 2.2e-4 / 7.0e-6, qwen2 f32 4.2e-4 / 1.1e-5,
 *   F16 3.5e-4 / 2.3e-5, BF16 1.2e-2 / 1.7e-3,
 *   llama Q8_0 4.2e-2 / 7.4e-3, qwen2 Q8_0 3.4e-2 / 6.9e-3,
 *   Q6_K 9.3e-6 / 9.7e-7 (no activation-rounding flip on any prompt: the
 *     bound is tight on purpose, a Q8_K rounding that drifts from
 *     llama.cpp's would cost ~1e-2 and fail here),
 *   Q5_0 4.4e-2 / 8.5e-3, Q5_1 5.1e-2 / 8.2e-3,
 *   Q4_0 / Q4_1 story 5.3e-6 / 9.6e-7, but Q4_1's greedy run parts from
 *     llama.cpp's at a 0.0027 near-tie, so decode steps do see Q8_0/Q8_1
 *     rounding flips; bounded like Q5_0/Q5_1, which use the same
 *     activation encodings;
 *   Q4_K_M / Q5_K_M (Q4_K or Q5_K + Q6_K tensors; llama and qwen2):
 *     story 5.3e-6 / 9.8e-7, but random64 and long200 up to 5.4e-2 /
 *     9.0e-3 with near-tie argmax/greedy partings (margins 0.007-0.02):
 *     Q8_K rounding flips against llama.cpp's SIMD activation path, so
 *     bounded like Q5_0/Q5_1;
 *   Q4_0 / Q4_1 against llama.cpp's large-batch goldens (loose):
 *     2.61 / 0.387 and 2.49 / 0.397. */
static const struct bound bounds[] = {
	{ "tiny-llama-f32", 1e-3, 5e-5, C_ALL, false, 0, 0 },
	{ "tiny-llama-F16", 1.5e-3, 1e-4, C_ALL, false, 0, 0 },
	{ "tiny-llama-BF16", 4e-2, 5e-3, C_ALL, false, 0, 0 },
	{ "tiny-llama-Q8_0", 1.2e-1, 2e-2, C_ALL, false, 0, 0 },
	{ "tiny-llama-Q6_K", 3e-5, 3e-6, C_STORY | C_LONG200, false, 0, 0 },
	{ "tiny-llama-Q5_0", 1.5e-1, 2.5e-2, C_STORY | C_LONG200, false, 0, 0 },
	{ "tiny-llama-Q5_1", 1.5e-1, 2.5e-2, C_STORY | C_LONG200, false, 0, 0 },
	{ "tiny-llama-Q4_0", 1.5e-1, 2.5e-2, C_STORY, true, 4.0, 0.6 },
	{ "tiny-llama-Q4_1", 1.5e-1, 2.5e-2, C_STORY, true, 4.0, 0.6 },
	{ "tiny-qwen2-f32", 1e-3, 5e-5, C_ALL, false, 0, 0 },
	{ "tiny-qwen2-Q8_0", 1.2e-1, 2e-2, C_ALL, false, 0, 0 },
	{ "tiny-llama-Q4_K_M", 1.5e-1, 2.5e-2, C_STORY | C_LONG200, false, 0, 0 },
	{ "tiny-llama-Q5_K_M", 1.5e-1, 2.5e-2, C_STORY, false, 0, 0 },
	{ "tiny-qwen2-Q4_K_M", 1.5e-1, 2.5e-2, C_STORY | C_RANDOM64, false, 0, 0 },
};

static const char *const cases[] = { "story", "random64", "long200" };

static int32_t *json_ints(json_t *arr, size_t *n)
{
	assert_true(json_is_array(arr));
	*n = json_array_size(arr);
	int32_t *v = malloc((*n ? *n : 1) * sizeof *v);
	assert_non_null(v);
	for (size_t i = 0; i < *n; i++)
		v[i] = (int32_t)json_integer_value(json_array_get(arr, i));
	return v;
}

/* True when a and b are both acceptable argmaxes of logits: equal, or
 * within `tie` of each other. */
static bool same_or_tie(const float *logits, int32_t a, int32_t b, double tie)
{
	return a == b || fabs((double)logits[a] - (double)logits[b]) < tie;
}

/* Evaluates model b on case k (index into cases[]), its weights packed as
 * repack says, and checks it. */
static void check_one(const struct bound *b, size_t k, enum engine_repack repack)
{
	const char *cs = cases[k];
	/* llama.cpp's own larger-batch goldens of this type disagree with its
	 * 8-token one: loose bounds, no argmax or greedy check */
	const bool loose = b->big_batch_differs && k != 0;
	const double max_bound = loose ? b->loose_max : b->max_abs;
	const double mean_bound = loose ? b->loose_mean : b->mean_abs;
	char path[512];
	snprintf(path, sizeof path, "%s/golden/%s.%s.json", TK_FIXTURES, b->model, cs);
	json_error_t jerr;
	json_t *g = json_load_file(path, 0, &jerr);
	if (!g)
		fail_msg("%s: %s", path, jerr.text);
	size_t n_prompt, n_greedy;
	int32_t *prompt = json_ints(json_object_get(g, "prompt"), &n_prompt);
	int32_t *greedy = json_ints(json_object_get(g, "greedy"), &n_greedy);
	size_t from = (size_t)json_integer_value(json_object_get(g, "logits_from_position"));
	json_t *rows = json_object_get(g, "logits");
	assert_true(n_prompt > from);
	assert_int_equal(json_array_size(rows), n_prompt - from);
	float *logits = NULL, *theirs = NULL;
	struct engine_ctx *c = NULL;

	snprintf(path, sizeof path, "%s/models/%s.gguf", TK_FIXTURES, b->model);
	struct engine_model_params mp;
	engine_model_params_default(&mp);
	mp.repack = repack;
	struct engine_model *m = engine_model_load_params(path, &mp);
	if (!m)
		fail_msg("load %s: %s", path, tk_err_detail());
	const char *note = loose ? " [llama.cpp large-batch golden: loose bounds only]" : "";
	char label[64];
	snprintf(label, sizeof label, "%s%s", cs, m->n_packed ? "/packed" : "");
	cs = label;
	const int32_t n_vocab = m->hp.n_vocab;
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = (int32_t)(n_prompt + n_greedy);
	c = engine_ctx_new(m, &cp);
	assert_non_null(c);
	logits = malloc(n_prompt * (size_t)n_vocab * sizeof *logits);
	theirs = malloc((size_t)n_vocab * sizeof *theirs);
	assert_true(logits && theirs);
	assert_int_equal(engine_ctx_eval(c, prompt, (int32_t)n_prompt, logits), 0);

	const double tie = loose ? INFINITY : b->max_abs;
	double max_abs = 0.0, sum_abs = 0.0;
	size_t n_vals = 0, agree = 0;
	for (size_t r = 0; r < n_prompt - from; r++) {
		json_t *row = json_array_get(rows, r);
		assert_int_equal(json_array_size(row), (size_t)n_vocab);
		const float *ours = logits + (from + r) * (size_t)n_vocab;
		for (int32_t i = 0; i < n_vocab; i++) {
			theirs[i] = (float)json_number_value(json_array_get(row, (size_t)i));
			double d = fabs((double)ours[i] - (double)theirs[i]);
			if (d > max_abs)
				max_abs = d;
			sum_abs += d;
			n_vals++;
		}
		int32_t ao = engine_argmax(ours, n_vocab), at = engine_argmax(theirs, n_vocab);
		agree += ao == at;
		if (!same_or_tie(theirs, ao, at, tie))
			fail_msg("%s %s: position %zu: argmax %d, llama.cpp %d (their logits %g vs %g)",
				 b->model, cs, from + r, ao, at, (double)theirs[ao], (double)theirs[at]);
		if (ao != at && !loose)
			printf("golden %-16s %-8s position %zu: argmax %d, llama.cpp %d: near-tie, "
			       "their margin %.3g\n", b->model, cs, from + r, ao, at,
			       fabs((double)theirs[ao] - (double)theirs[at]));
	}
	double mean_abs = sum_abs / (double)n_vals;

	/* greedy continuation: argmax, feed back, n_greedy times */
	size_t same = 0;
	char how[128] = "equal";
	int32_t tok = engine_argmax(engine_ctx_logits(c), n_vocab);
	for (size_t i = 0; i < n_greedy; i++) {
		if (tok != greedy[i]) {
			const float *l = engine_ctx_logits(c);
			if (!same_or_tie(l, tok, greedy[i], tie))
				fail_msg("%s %s: greedy token %zu is %d, llama.cpp %d (our logits %g vs "
					 "%g)", b->model, cs, i, tok, greedy[i], (double)l[tok],
					 (double)l[greedy[i]]);
			snprintf(how, sizeof how, "%s (ours %d, llama.cpp %d, margin %.3g)",
				 loose ? "parted (not checked)" : "parted at a near-tie", tok,
				 greedy[i], fabs((double)l[tok] - (double)l[greedy[i]]));
			break;
		}
		same++;
		if (i + 1 < n_greedy) {
			assert_int_equal(engine_ctx_eval(c, &tok, 1, NULL), 0);
			tok = engine_argmax(engine_ctx_logits(c), n_vocab);
		}
	}
	printf("golden %-16s %-8s max_abs %.3g mean_abs %.3g argmax %zu/%zu greedy %zu/%zu %s%s\n",
	       b->model, cs, max_abs, mean_abs, agree, n_prompt - from, same, n_greedy, how, note);
	if (max_abs > max_bound || mean_abs > mean_bound)
		fail_msg("%s %s: max_abs %.3g (bound %.3g), mean_abs %.3g (bound %.3g)", b->model,
			 cs, max_abs, max_bound, mean_abs, mean_bound);
	fflush(stdout);
	free(theirs);
	free(logits);
	engine_ctx_free(c);
	engine_model_free(m);
	free(prompt);
	free(greedy);
	json_decref(g);
}

static void test_goldens(void **state)
{
	(void)state;
	const bool all = getenv("TK_GOLDEN_ALL") != NULL;
	for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
		for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
			if (all || (bounds[i].cases & (1u << k)))
				check_one(&bounds[i], k, ENGINE_REPACK_AUTO);
			else
				printf("golden %-16s %-8s skipped (TK_GOLDEN_ALL=1 runs it)\n",
				       bounds[i].model, cases[k]);
		}
	fflush(stdout);
}

/* The story case again with the reference packed layouts forced, for one
 * model of each packed type and one where only some weights pack (Q4_0:
 * its Q6_K output); TK_GOLDEN_ALL=1: every model (a model whose types have
 * no layout packs nothing and is skipped). The scalar reference products
 * are slow in debug and ASan builds, hence the cut. */
static void test_goldens_packed_ref(void **state)
{
	(void)state;
	static const char *const picked[] = { "tiny-llama-F16", "tiny-llama-Q8_0",
					      "tiny-qwen2-Q8_0", "tiny-llama-Q6_K",
					      "tiny-llama-Q4_K_M", "tiny-llama-Q4_0" };
	const bool all = getenv("TK_GOLDEN_ALL") != NULL;
	for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
		bool run = all;
		for (size_t k = 0; k < sizeof picked / sizeof picked[0]; k++)
			run = run || strcmp(bounds[i].model, picked[k]) == 0;
		if (!run)
			continue;
		char path[512];
		snprintf(path, sizeof path, "%s/models/%s.gguf", TK_FIXTURES, bounds[i].model);
		struct engine_model_params mp;
		engine_model_params_default(&mp);
		mp.repack = ENGINE_REPACK_REF;
		struct engine_model *m = engine_model_load_params(path, &mp);
		if (!m)
			fail_msg("load %s: %s", path, tk_err_detail());
		const int32_t n_packed = m->n_packed;
		engine_model_free(m);
		if (!n_packed) {
			printf("golden %-16s story    no reference packed layout for its types\n",
			       bounds[i].model);
			continue;
		}
		check_one(&bounds[i], 0, ENGINE_REPACK_REF);
	}
	fflush(stdout);
}

/* Largest |a - b| between the position-0 logits of two goldens of a model. */
static double pos0_diff(const char *model, const char *case_a, const char *case_b)
{
	json_t *g[2] = { NULL, NULL };
	const char *cs[2] = { case_a, case_b };
	for (int i = 0; i < 2; i++) {
		char path[512];
		snprintf(path, sizeof path, "%s/golden/%s.%s.json", TK_FIXTURES, model, cs[i]);
		json_error_t jerr;
		g[i] = json_load_file(path, 0, &jerr);
		if (!g[i])
			fail_msg("%s: %s", path, jerr.text);
		assert_int_equal(json_integer_value(json_object_get(g[i], "logits_from_position")), 0);
		/* same first token (BOS), so position 0 must not depend on the rest */
		assert_int_equal(json_integer_value(json_array_get(json_object_get(g[i], "prompt"), 0)),
				 1);
	}
	json_t *r0 = json_array_get(json_object_get(g[0], "logits"), 0);
	json_t *r1 = json_array_get(json_object_get(g[1], "logits"), 0);
	assert_true(json_array_size(r0) > 0);
	assert_int_equal(json_array_size(r0), json_array_size(r1));
	double max = 0;
	for (size_t i = 0; i < json_array_size(r0); i++) {
		double d = fabs(json_number_value(json_array_get(r0, i)) -
				json_number_value(json_array_get(r1, i)));
		if (d > max)
			max = d;
	}
	json_decref(g[0]);
	json_decref(g[1]);
	return max;
}

/* The reason for big_batch_differs, checked on the goldens themselves: at
 * position 0 (BOS only) llama.cpp's 8-token and 64-token runs agree exactly
 * for every type except those flagged, which disagree by far more than any
 * bound. Reads JSON only; no model runs. */
static void test_batch_dependent_goldens(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
		double d = pos0_diff(bounds[i].model, "story", "random64");
		printf("golden %-16s position 0, story vs random64 (llama.cpp vs itself): %.3g\n",
		       bounds[i].model, d);
		if (bounds[i].big_batch_differs ? !(d > 1.0) : d != 0.0)
			fail_msg("%s: llama.cpp's story and random64 goldens differ by %g at position "
				 "0; big_batch_differs is %d", bounds[i].model, d,
				 (int)bounds[i].big_batch_differs);
	}
	fflush(stdout);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_dependent_goldens),
		cmocka_unit_test(test_goldens),
		cmocka_unit_test(test_goldens_packed_ref),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
