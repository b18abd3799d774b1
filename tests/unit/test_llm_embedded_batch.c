/* test_llm_embedded_batch.c — continuous batching in the embedded backend
 * (src/llm/llm_embedded.c): calls running at once on one backend share one
 * context and its scheduler's passes, and each still gets exactly the reply
 * it gets alone (temperature 0): different prompts, different max_tokens,
 * stop strings, a grammar, different adapters in the same steps, and one
 * call cancelled halfway while the others go on. */
#include "testutil.h"

#include "core/err.h"
#include "llm/llm.h"
#include "obs/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MODEL TK_FIXTURES "/models/tiny-llama-f32.gguf"
#define N_CALLS 4

static struct tk_registry *reg;

struct call {
	const char *user;
	const char *adapter;
	const char *grammar;
	const char *stop;
	int32_t max_tokens;
	bool cancel_after_first; /* the callback stops the call at its first piece */
	/* results */
	int rc;
	char *text;
	int pieces;
	size_t streamed; /* bytes the callback saw */
};

static struct llm_backend *embedded(int32_t seqs, bool adapters)
{
	struct llm_options o;
	llm_options_default(&o);
	o.backend = "embedded";
	o.model = MODEL;
	o.embedded_contexts = seqs;
	o.embedded_n_ctx = 256;
	o.adapter_dir = adapters ? TK_FIXTURES "/models" : NULL;
	o.metrics = reg;
	return llm_backend_new(&o);
}

static int on_piece(void *ud, const char *t, size_t n)
{
	(void)t;
	struct call *c = ud;
	c->pieces++;
	c->streamed += n;
	return c->cancel_after_first ? 1 : 0;
}

static void run_call(struct llm_backend *b, struct call *c)
{
	const struct llm_message msgs[] = {
		{ "system", "You tell short stories." },
		{ "user", c->user },
	};
	struct llm_params p;
	llm_params_default(&p);
	p.sampling.temperature = 0;
	p.max_tokens = c->max_tokens;
	p.adapter = c->adapter;
	p.grammar = c->grammar;
	const char *stops[1] = { c->stop };
	if (c->stop) {
		p.stop = stops;
		p.n_stop = 1;
	}
	struct llm_result r;
	c->pieces = 0;
	c->streamed = 0;
	c->rc = llm_chat(b, msgs, 2, &p, on_piece, c, NULL, &r);
	c->text = c->rc ? NULL : strdup(r.text);
	if (!c->rc) {
		assert_int_equal(c->streamed, r.text_len); /* the stream is the reply */
		llm_result_free(&r);
	}
}

struct worker {
	struct llm_backend *b;
	struct call *c;
	pthread_barrier_t *start;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	pthread_barrier_wait(w->start);
	run_call(w->b, w->c);
	return NULL;
}

static double counter(const char *name)
{
	return tk_series_value(tk_metric_series(
		tk_metric_counter(reg, name, "x", (const char *const[]){ "backend" }, 1),
		(const char *const[]){ "embedded" }));
}

/* Each call alone on a fresh one-sequence backend, then all together on an
 * N_CALLS-sequence backend: the same outcome call by call. shared: some
 * pass must have carried more than one sequence (not so when every call
 * needs its own adapter set: those never share a pass). */
static void check_together(struct call *calls, size_t n, bool adapters, bool shared)
{
	char **alone = calloc(n, sizeof *alone);
	int *alone_rc = calloc(n, sizeof *alone_rc);
	assert_non_null(alone);
	assert_non_null(alone_rc);
	for (size_t i = 0; i < n; i++) {
		struct llm_backend *b = embedded(1, adapters);
		assert_non_null(b);
		run_call(b, &calls[i]);
		alone[i] = calls[i].text;
		alone_rc[i] = calls[i].rc;
		llm_backend_free(b);
	}
	struct llm_backend *b = embedded(N_CALLS, adapters);
	assert_non_null(b);
	double steps0 = counter("tanuki_llm_batch_steps_total");
	double seqs0 = counter("tanuki_llm_batch_sequences_total");
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, (unsigned)n);
	pthread_t t[N_CALLS];
	struct worker w[N_CALLS];
	for (size_t i = 0; i < n; i++) {
		w[i] = (struct worker){ b, &calls[i], &start };
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (size_t i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	double steps = counter("tanuki_llm_batch_steps_total") - steps0;
	double seqs = counter("tanuki_llm_batch_sequences_total") - seqs0;
	assert_true(steps > 0);
	if (shared)
		assert_true(seqs > steps);
	size_t nonempty = 0;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(calls[i].rc, alone_rc[i]);
		if (!alone_rc[i]) {
			assert_string_equal(calls[i].text, alone[i]);
			nonempty += *alone[i] != 0;
		}
		free(calls[i].text);
		free(alone[i]);
	}
	assert_true(nonempty > 0); /* else the comparison would prove little */
	llm_backend_free(b);
	free(alone);
	free(alone_rc);
}

static void test_four_calls_match_alone(void **state)
{
	(void)state;
	struct call calls[N_CALLS] = {
		{ .user = "Once upon a time", .max_tokens = 12 },
		{ .user = "Tell me about the sea", .max_tokens = 10 },
		{ .user = "A dragon and a cat", .max_tokens = 10 },
		{ .user = "Once upon a time", .max_tokens = 8 },
	};
	check_together(calls, N_CALLS, false, true);
}

static void test_mixed_features_match_alone(void **state)
{
	(void)state;
	struct call calls[N_CALLS] = {
		{ .user = "Once upon a time", .max_tokens = 10, .adapter = "tiny-llama-lora-coder" },
		{ .user = "Once upon a time", .max_tokens = 10 },
		{ .user = "Pick one", .max_tokens = 8, .grammar = "root ::= \"yes\" | \"no\"" },
		{ .user = "Tell me about the sea", .max_tokens = 10,
		  .adapter = "tiny-llama-lora-reviewer", .stop = "e" },
	};
	check_together(calls, N_CALLS, true, false);
}

static void test_cancel_leaves_others(void **state)
{
	(void)state;
	struct call calls[3] = {
		{ .user = "Once upon a time", .max_tokens = 10 },
		{ .user = "Tell me about the sea", .max_tokens = 10, .cancel_after_first = true },
		{ .user = "A dragon and a cat", .max_tokens = 10 },
	};
	check_together(calls, 3, false, true);
	/* the cancelled one failed alone and together alike (check_together
	 * compared the codes); the callback saw exactly one piece */
	assert_int_equal(calls[1].rc, TK_ECANCELED);
	assert_int_equal(calls[1].pieces, 1);
}

static int setup(void **state)
{
	(void)state;
	reg = tk_registry_new();
	return reg ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tk_registry_free(reg);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_four_calls_match_alone),
		cmocka_unit_test(test_mixed_features_match_alone),
		cmocka_unit_test(test_cancel_leaves_others),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
