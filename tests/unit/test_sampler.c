/* test_sampler.c — the sampling chain, PRNG reproducibility and stop rules. */
#include "testutil.h"

#include "core/err.h"
#include "engine/sampler.h"

#include <math.h>
#include <string.h>

static struct engine_sampler *mk(float temp, int32_t top_k, float top_p, float min_p,
				 uint64_t seed, int32_t n_vocab)
{
	struct engine_sampler_params p;
	engine_sampler_params_default(&p);
	p.temp = temp;
	p.top_k = top_k;
	p.top_p = top_p;
	p.min_p = min_p;
	p.seed = seed;
	struct engine_sampler *s = engine_sampler_new(&p, n_vocab);
	assert_non_null(s);
	return s;
}

static void test_rng_reproducible(void **state)
{
	(void)state;
	struct engine_rng a, b, c;
	engine_rng_seed(&a, 42);
	engine_rng_seed(&b, 42);
	engine_rng_seed(&c, 43);
	int same_c = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = engine_rng_next(&a);
		assert_int_equal(x, engine_rng_next(&b));
		same_c += x == engine_rng_next(&c);
	}
	assert_true(same_c < 2);
	/* uniform draws in [0,1) with a plausible mean */
	double sum = 0;
	for (int i = 0; i < 100000; i++) {
		double u = engine_rng_uniform(&a);
		assert_true(u >= 0.0 && u < 1.0);
		sum += u;
	}
	assert_true(fabs(sum / 100000 - 0.5) < 0.01);
}

static void test_greedy(void **state)
{
	(void)state;
	float logits[6] = { 0.1f, 2.0f, -1.0f, 2.0f, NAN, 1.9f };
	struct engine_sampler *s = mk(0.0f, 0, 1.0f, 0.0f, 1, 6);
	assert_int_equal(engine_sampler_sample(s, logits), 1); /* tie: lowest id */
	assert_int_equal(engine_argmax(logits, 6), 1);
	float all_bad[3] = { NAN, -INFINITY, NAN };
	struct engine_sampler *s3 = mk(0.0f, 0, 1.0f, 0.0f, 1, 3);
	assert_int_equal(engine_sampler_sample(s3, all_bad), TK_EINVAL);
	engine_sampler_free(s3);
	engine_sampler_free(s);
}

static void test_top_k_one_is_greedy(void **state)
{
	(void)state;
	float logits[100];
	for (int i = 0; i < 100; i++)
		logits[i] = sinf((float)i * 1.7f);
	int32_t best = engine_argmax(logits, 100);
	struct engine_sampler *s = mk(1.5f, 1, 1.0f, 0.0f, 7, 100);
	for (int i = 0; i < 50; i++)
		assert_int_equal(engine_sampler_sample(s, logits), best);
	engine_sampler_free(s);
}

/* Draw many times and count; the counts must follow the filtered softmax. */
static void draw_counts(struct engine_sampler *s, const float *logits, int n, int draws,
			int *counts)
{
	memset(counts, 0, sizeof(int) * (size_t)n);
	for (int i = 0; i < draws; i++) {
		int32_t t = engine_sampler_sample(s, logits);
		assert_true(t >= 0 && t < n);
		counts[t]++;
	}
}

static void test_distribution_and_filters(void **state)
{
	(void)state;
	/* probabilities at temp 1: exp(l) / sum */
	float logits[4] = { logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f) };
	int counts[4];
	const int draws = 40000;

	struct engine_sampler *s = mk(1.0f, 0, 1.0f, 0.0f, 123, 4);
	draw_counts(s, logits, 4, draws, counts);
	const double expect[4] = { 0.5, 0.3, 0.15, 0.05 };
	for (int i = 0; i < 4; i++)
		assert_true(fabs((double)counts[i] / draws - expect[i]) < 0.015);
	engine_sampler_free(s);

	/* top-k 2: only the two best, renormalized 0.625 / 0.375 */
	s = mk(1.0f, 2, 1.0f, 0.0f, 5, 4);
	draw_counts(s, logits, 4, draws, counts);
	assert_int_equal(counts[2] + counts[3], 0);
	assert_true(fabs((double)counts[0] / draws - 0.625) < 0.015);
	engine_sampler_free(s);

	/* top-p 0.7: cumulative 0.5, 0.8 -> keeps ids 0 and 1 */
	s = mk(1.0f, 0, 0.7f, 0.0f, 6, 4);
	draw_counts(s, logits, 4, draws, counts);
	assert_int_equal(counts[2] + counts[3], 0);
	assert_true(counts[1] > 0);
	engine_sampler_free(s);

	/* min-p 0.2: threshold 0.1 -> keeps 0, 1, 2 */
	s = mk(1.0f, 0, 1.0f, 0.2f, 8, 4);
	draw_counts(s, logits, 4, draws, counts);
	assert_int_equal(counts[3], 0);
	assert_true(counts[2] > 0);
	engine_sampler_free(s);

	/* low temperature sharpens toward the best */
	s = mk(0.1f, 0, 1.0f, 0.0f, 9, 4);
	draw_counts(s, logits, 4, 2000, counts);
	assert_true(counts[0] > 1980);
	engine_sampler_free(s);
}

static void test_seed_reproducible(void **state)
{
	(void)state;
	float logits[50];
	for (int i = 0; i < 50; i++)
		logits[i] = cosf((float)i);
	struct engine_sampler *a = mk(1.0f, 0, 1.0f, 0.0f, 99, 50);
	struct engine_sampler *b = mk(1.0f, 0, 1.0f, 0.0f, 99, 50);
	struct engine_sampler *c = mk(1.0f, 0, 1.0f, 0.0f, 100, 50);
	int32_t seq_a[64];
	int diff_c = 0;
	for (int i = 0; i < 64; i++) {
		seq_a[i] = engine_sampler_sample(a, logits);
		assert_int_equal(seq_a[i], engine_sampler_sample(b, logits));
		diff_c += seq_a[i] != engine_sampler_sample(c, logits);
	}
	assert_true(diff_c > 0);
	engine_sampler_reset(a);
	for (int i = 0; i < 64; i++)
		assert_int_equal(seq_a[i], engine_sampler_sample(a, logits));
	engine_sampler_free(a);
	engine_sampler_free(b);
	engine_sampler_free(c);
}

static void test_penalties(void **state)
{
	(void)state;
	float logits[3] = { 2.0f, 1.5f, -0.5f };
	struct engine_sampler_params p;
	engine_sampler_params_default(&p);
	p.temp = 0.0f;
	p.repeat_penalty = 2.0f; /* 2.0 -> 1.0 once token 0 is seen */
	p.penalty_last_n = 2;
	struct engine_sampler *s = engine_sampler_new(&p, 3);
	assert_non_null(s);
	assert_int_equal(engine_sampler_sample(s, logits), 0);
	engine_sampler_accept(s, 0);
	assert_int_equal(engine_sampler_sample(s, logits), 1);
	/* token 0 leaves the 2-token window after two more accepts */
	engine_sampler_accept(s, 2);
	engine_sampler_accept(s, 2);
	assert_int_equal(engine_sampler_sample(s, logits), 0);
	engine_sampler_free(s);

	/* negative logits are multiplied: -0.5 * 2 = -1.0; frequency/presence */
	float l2[3] = { -0.5f, -0.8f, -3.0f };
	p.repeat_penalty = 2.0f;
	p.penalty_last_n = 8;
	s = engine_sampler_new(&p, 3);
	assert_non_null(s);
	engine_sampler_accept(s, 0);
	assert_int_equal(engine_sampler_sample(s, l2), 1);
	engine_sampler_free(s);

	p.repeat_penalty = 1.0f;
	p.freq_penalty = 0.3f; /* 2 occurrences: 2.0 - 0.6 = 1.4 < 1.5 */
	s = engine_sampler_new(&p, 3);
	assert_non_null(s);
	engine_sampler_accept(s, 0);
	assert_int_equal(engine_sampler_sample(s, logits), 0); /* 1.7 > 1.5 */
	engine_sampler_accept(s, 0);
	assert_int_equal(engine_sampler_sample(s, logits), 1);
	engine_sampler_free(s);

	p.freq_penalty = 0.0f;
	p.presence_penalty = 0.6f; /* 2.0 - 0.6 = 1.4 */
	s = engine_sampler_new(&p, 3);
	assert_non_null(s);
	engine_sampler_accept(s, 0);
	assert_int_equal(engine_sampler_sample(s, logits), 1);
	engine_sampler_free(s);
}

static void test_bad_params(void **state)
{
	(void)state;
	struct engine_sampler_params p;
	engine_sampler_params_default(&p);
	p.repeat_penalty = 0.0f;
	assert_null(engine_sampler_new(&p, 10));
	assert_int_equal(tk_err_last(), TK_EINVAL);
	engine_sampler_params_default(&p);
	assert_null(engine_sampler_new(&p, 0));
	p.temp = NAN;
	assert_null(engine_sampler_new(&p, 10));
}

static void test_stop_rules(void **state)
{
	(void)state;
	struct engine_stop st;
	engine_stop_init(&st, 16);
	assert_int_equal(engine_stop_add_token(&st, 2), 0);
	assert_int_equal(engine_stop_add_token(&st, -1), 0);
	assert_true(engine_stop_is_token(&st, 2));
	assert_false(engine_stop_is_token(&st, 3));
	assert_int_equal(engine_stop_add_string(&st, ""), TK_EINVAL);
	assert_int_equal(engine_stop_add_string(&st, "\n\n"), 0);
	assert_int_equal(engine_stop_add_string(&st, "END"), 0);
	size_t at = 99;
	const char *t = "hello EN";
	assert_false(engine_stop_find_string(&st, t, strlen(t), &at));
	assert_int_equal(engine_stop_partial_len(&st, t, strlen(t)), 2);
	t = "hello\nEND and\n\n";
	assert_true(engine_stop_find_string(&st, t, strlen(t), &at));
	assert_int_equal(at, 6);
	t = "abc\n";
	assert_int_equal(engine_stop_partial_len(&st, t, strlen(t)), 1);
	assert_int_equal(engine_stop_partial_len(&st, "xyz", 3), 0);
	for (int i = 0; i < ENGINE_STOP_MAX_TOKENS; i++)
		engine_stop_add_token(&st, 100 + i);
	assert_int_equal(engine_stop_add_token(&st, 1000), TK_ELIMIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rng_reproducible),
		cmocka_unit_test(test_greedy),
		cmocka_unit_test(test_top_k_one_is_greedy),
		cmocka_unit_test(test_distribution_and_filters),
		cmocka_unit_test(test_seed_reproducible),
		cmocka_unit_test(test_penalties),
		cmocka_unit_test(test_bad_params),
		cmocka_unit_test(test_stop_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
