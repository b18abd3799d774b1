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
 * Models whose tensors this build cannot compute yet (the 4/5-bit fixtures
 * keep output.weight in Q6_K, an Engine II type) have no bounds
 * (report_only). Until Q6_K has kernels they are measured approximately: a
 * temporary copy of the model gets output.weight widened to f32 by the Q6_K
 * decoder below (exact), so only the last matmul differs from llama.cpp's
 * (Q6_K weights times Q8_K-quantized activations). Those numbers are
 * printed, not checked, and cost time: they run only with TK_GOLDEN_ALL=1 in
 * the environment.
 */
#include "testutil.h"

#include "core/err.h"
#include "engine/context.h"
#include "engine/fp16.h"
#include "engine/gguf.h"
#include "engine/quant.h"
#include "engine/model.h"
#include "engine/sampler.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bound {
	const char *model; /* fixture name without .gguf */
	double max_abs;    /* bound on the largest |ours - theirs| */
	double mean_abs;   /* bound on the mean |ours - theirs| */
	bool report_only;  /* not measured yet: print, do not check */
};

/* Measured worst cases (docs/engine.md, "Golden comparison"):
 *   llama f32 2.2e-4 / 7.0e-6, qwen2 f32 4.2e-4 / 1.1e-5,
 *   F16 3.5e-4 / 2.3e-5, BF16 1.2e-2 / 1.7e-3,
 *   llama Q8_0 4.2e-2 / 7.4e-3, qwen2 Q8_0 3.4e-2 / 6.9e-3. */
static const struct bound bounds[] = {
	{ "tiny-llama-f32", 1e-3, 5e-5, false },
	{ "tiny-llama-F16", 1.5e-3, 1e-4, false },
	{ "tiny-llama-BF16", 4e-2, 5e-3, false },
	{ "tiny-llama-Q8_0", 1.2e-1, 2e-2, false },
	{ "tiny-llama-Q4_0", 0, 0, true },
	{ "tiny-llama-Q4_1", 0, 0, true },
	{ "tiny-llama-Q5_0", 0, 0, true },
	{ "tiny-llama-Q5_1", 0, 0, true },
	{ "tiny-qwen2-f32", 1e-3, 5e-5, false },
	{ "tiny-qwen2-Q8_0", 1.2e-1, 2e-2, false },
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

/* Q6_K block (256 elements, 210 bytes): ql[128] low 4 bits, qh[64] high 2
 * bits, scales[16] int8 (one per 16 elements), d (half). Element groups of
 * 32 within each half of 128 take their bits as below; x = d * scale * (q-32). */
static void q6k_to_float(const uint8_t *blk, float *y, int64_t n)
{
	for (int64_t b = 0; b < n / 256; b++, blk += 210, y += 256) {
		const uint8_t *ql = blk, *qh = blk + 128;
		const int8_t *sc = (const int8_t *)(blk + 192);
		uint16_t dh = (uint16_t)(blk[208] | blk[209] << 8);
		const float d = tk_fp16_to_fp32(dh);
		for (int half = 0; half < 2; half++) {
			float *yy = y + 128 * half;
			const uint8_t *l = ql + 64 * half, *h = qh + 32 * half;
			const int8_t *s = sc + 8 * half;
			for (int i = 0; i < 32; i++) {
				int is = i / 16;
				int q1 = ((l[i] & 0xF) | ((h[i] >> 0 & 3) << 4)) - 32;
				int q2 = ((l[i + 32] & 0xF) | ((h[i] >> 2 & 3) << 4)) - 32;
				int q3 = ((l[i] >> 4) | ((h[i] >> 4 & 3) << 4)) - 32;
				int q4 = ((l[i + 32] >> 4) | ((h[i] >> 6 & 3) << 4)) - 32;
				yy[i] = d * (float)s[is] * (float)q1;
				yy[i + 32] = d * (float)s[is + 2] * (float)q2;
				yy[i + 64] = d * (float)s[is + 4] * (float)q3;
				yy[i + 96] = d * (float)s[is + 6] * (float)q4;
			}
		}
	}
}

static int fill_widened(void *vsrc, size_t i, const struct tk_gguf_tensor *info, void *buf,
			size_t nbytes)
{
	(void)i;
	const struct tk_gguf_tensor *t = tk_gguf_find_tensor(vsrc, info->name);
	if (t->type == TK_TYPE_Q6_K)
		q6k_to_float(t->data, buf, t->n_elements);
	else
		memcpy(buf, t->data, nbytes);
	return 0;
}

/* A copy of the model at path with every Q6_K tensor widened to f32. */
static struct engine_model *load_widened(const char *path, const char *dir, const char *name)
{
	struct tk_gguf *src = tk_gguf_open(path);
	assert_non_null(src);
	struct tk_gguf_writer *w = tk_gguf_writer_new();
	assert_non_null(w);
	for (size_t i = 0; i < tk_gguf_kv_count(src); i++)
		assert_int_equal(tk_gguf_writer_copy_kv(w, tk_gguf_kv_at(src, i)), 0);
	for (size_t i = 0; i < tk_gguf_tensor_count(src); i++) {
		const struct tk_gguf_tensor *t = tk_gguf_tensor_at(src, i);
		int type = t->type == TK_TYPE_Q6_K ? TK_TYPE_F32 : t->type;
		assert_int_equal(tk_gguf_writer_add_tensor(w, t->name, type, t->n_dims, t->ne), 0);
	}
	char out[512];
	snprintf(out, sizeof out, "%s/%s-widened.gguf", dir, name);
	assert_int_equal(tk_gguf_writer_write(w, out, fill_widened, src), 0);
	tk_gguf_writer_free(w);
	tk_gguf_close(src);
	struct engine_model *m = engine_model_load(out);
	if (!m)
		fail_msg("load %s: %s", out, tk_err_detail());
	return m;
}

/* True when a and b are both acceptable argmaxes of logits: equal, or
 * within `tie` of each other. */
static bool same_or_tie(const float *logits, int32_t a, int32_t b, double tie)
{
	return a == b || fabs((double)logits[a] - (double)logits[b]) < tie;
}

static void check_one(const struct bound *b, const char *cs)
{
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
	struct engine_model *m = engine_model_load(path);
	const char *note = "";
	char dir[256] = "";
	if (!m) {
		/* only "this build cannot compute a tensor type" may fall back */
		if (tk_err_last() != TK_EUNSUPPORTED || !b->report_only)
			fail_msg("load %s: %s", path, tk_err_detail());
		printf("golden %-16s %-8s (%s)\n", b->model, cs, tk_err_detail());
		if (!getenv("TK_GOLDEN_ALL")) {
			printf("golden %-16s %-8s skipped (TK_GOLDEN_ALL=1 measures it "
			       "approximately)\n", b->model, cs);
			goto out;
		}
		tk_test_mkdtemp(dir, sizeof dir);
		m = load_widened(path, dir, b->model);
		note = " [approx: q6_K output widened to f32]";
	}
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

	const double tie = b->report_only ? INFINITY : b->max_abs;
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
	}
	double mean_abs = sum_abs / (double)n_vals;

	/* greedy continuation: argmax, feed back, n_greedy times */
	size_t same = 0;
	const char *how = "equal";
	int32_t tok = engine_argmax(engine_ctx_logits(c), n_vocab);
	for (size_t i = 0; i < n_greedy; i++) {
		if (tok != greedy[i]) {
			const float *l = engine_ctx_logits(c);
			if (!same_or_tie(l, tok, greedy[i], tie))
				fail_msg("%s %s: greedy token %zu is %d, llama.cpp %d (our logits %g vs "
					 "%g)", b->model, cs, i, tok, greedy[i], (double)l[tok],
					 (double)l[greedy[i]]);
			how = b->report_only ? "parted (not checked)" : "parted at a near-tie";
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
	if (!b->report_only && (max_abs > b->max_abs || mean_abs > b->mean_abs))
		fail_msg("%s %s: max_abs %.3g (bound %.3g), mean_abs %.3g (bound %.3g)", b->model,
			 cs, max_abs, b->max_abs, mean_abs, b->mean_abs);
out:
	fflush(stdout);
	free(theirs);
	free(logits);
	engine_ctx_free(c);
	engine_model_free(m);
	free(prompt);
	free(greedy);
	json_decref(g);
	if (*dir)
		tk_test_rmtree(dir);
}

static void test_goldens(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
		for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
			check_one(&bounds[i], cases[k]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_goldens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
