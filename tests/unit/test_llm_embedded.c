/* test_llm_embedded.c — the embedded backend (src/llm/llm_embedded.c) over
 * the tiny llama fixture: its greedy reply equals engine_generate's on the
 * same rendered prompt, also when the second call reuses the cached prompt
 * prefix; calls from several threads share a bounded pool of contexts;
 * cancellation, unsupported features and a bad model path are errors;
 * sampling under a JSON schema or a grammar always gives text that fits. */
#include "testutil.h"

#include "core/buf.h"
#include "core/err.h"
#include "engine/chat.h"
#include "engine/context.h"
#include "engine/generate.h"
#include "engine/lora.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "llm/llm.h"
#include "obs/metrics.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MODEL TK_FIXTURES "/models/tiny-llama-f32.gguf"
#define N_GEN 8

static const struct llm_message convo[] = {
	{ "system", "You tell short stories." },
	{ "user", "Once upon a time" },
};

static struct tk_registry *reg;

static struct llm_backend *embedded(int32_t contexts)
{
	struct llm_options o;
	llm_options_default(&o);
	o.backend = "embedded";
	o.model = MODEL;
	o.embedded_contexts = contexts;
	o.embedded_n_ctx = 256;
	o.metrics = reg;
	return llm_backend_new(&o);
}

static void greedy(struct llm_params *p)
{
	llm_params_default(p);
	p->sampling.temperature = 0;
	p->max_tokens = N_GEN;
}

/* The reference: the engine's own loop on the same rendered prompt. */
static char *reference_text_with(const char *adapter_path)
{
	struct engine_model *m = engine_model_load(MODEL);
	assert_non_null(m);
	struct tk_tokenizer *tok = tk_tokenizer_from_gguf(m->gguf);
	assert_non_null(tok);
	const char *tmpl = NULL;
	if (tk_gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl, NULL))
		tmpl = NULL;
	struct tk_chat_msg cm[2] = { { convo[0].role, convo[0].content },
				     { convo[1].role, convo[1].content } };
	struct tk_buf text = TK_BUF_INIT(1 << 20);
	assert_int_equal(tk_chat_apply(tmpl, TK_CHAT_CHATML, cm, 2, true, &text, NULL), 0);
	struct tk_tok_encode_opts eo = { .bos = TK_TOK_BOS_DEFAULT, .parse_special = true };
	int32_t *ids;
	size_t n;
	assert_int_equal(tk_tokenizer_encode(tok, text.data, text.len, &eo, &ids, &n), 0);
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = 256;
	struct engine_ctx *ctx = engine_ctx_new(m, &cp);
	assert_non_null(ctx);
	struct engine_lora *lora = NULL;
	if (adapter_path) {
		lora = engine_lora_load(adapter_path, m);
		assert_non_null(lora);
		struct engine_lora_use use = { lora, 1.0f };
		assert_int_equal(engine_ctx_set_adapters(ctx, &use, 1), 0);
	}
	struct engine_gen_params gp;
	memset(&gp, 0, sizeof gp);
	engine_sampler_params_default(&gp.sampling);
	gp.sampling.temp = 0;
	gp.max_tokens = N_GEN;
	struct engine_gen_result r;
	assert_int_equal(engine_generate(ctx, tok, ids, (int32_t)n, &gp, NULL, NULL, &r), 0);
	char *out = strdup(r.text);
	engine_gen_result_free(&r);
	engine_ctx_free(ctx);
	engine_lora_free(lora);
	free(ids);
	tk_buf_free(&text);
	tk_tokenizer_free(tok);
	engine_model_free(m);
	return out;
}

static char *reference_text(void)
{
	return reference_text_with(NULL);
}

static double reused_tokens(void)
{
	return tk_series_value(tk_metric_series(
		tk_metric_counter(reg, "tanuki_llm_prompt_tokens_reused_total", "x",
				  (const char *const[]){ "backend" }, 1),
		(const char *const[]){ "embedded" }));
}

static void test_matches_engine_and_reuses_prefix(void **state)
{
	(void)state;
	char *want = reference_text();
	struct llm_backend *b = embedded(1);
	assert_non_null(b);
	struct llm_params p;
	greedy(&p);
	struct llm_result r;
	assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, NULL, &r), 0);
	assert_string_equal(r.text, want);
	assert_int_equal(r.usage.completion_tokens, N_GEN);
	assert_int_equal(r.finish, LLM_FINISH_LENGTH);
	int64_t prompt_tokens = r.usage.prompt_tokens;
	assert_true(prompt_tokens > 1);
	llm_result_free(&r);
	assert_true(reused_tokens() == 0);
	/* Same conversation again: all but the last prompt token come from the
	 * cache, and the reply is the same. */
	assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, NULL, &r), 0);
	assert_string_equal(r.text, want);
	llm_result_free(&r);
	assert_true(reused_tokens() == (double)(prompt_tokens - 1));
	llm_backend_free(b);
	free(want);
}

struct worker {
	struct llm_backend *b;
	int rc;
	char *text;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct llm_params p;
	greedy(&p);
	struct llm_result r;
	w->rc = llm_chat(w->b, convo, 2, &p, NULL, NULL, NULL, &r);
	if (!w->rc)
		w->text = strdup(r.text);
	llm_result_free(&r);
	return NULL;
}

static void test_threads_share_the_pool(void **state)
{
	(void)state;
	char *want = reference_text();
	struct llm_backend *b = embedded(2);
	assert_non_null(b);
	struct worker w[3];
	pthread_t t[3];
	for (int i = 0; i < 3; i++) {
		w[i] = (struct worker){ b, -1, NULL };
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 3; i++) /* all joined before any assertion */
		pthread_join(t[i], NULL);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w[i].rc, 0);
		assert_string_equal(w[i].text, want);
		free(w[i].text);
	}
	llm_backend_free(b);
	free(want);
}

static int stop_at_first(void *ud, const char *t, size_t n)
{
	(void)t, (void)n;
	(*(int *)ud)++;
	return 1;
}

static void test_errors(void **state)
{
	(void)state;
	struct llm_backend *b = embedded(1);
	assert_non_null(b);
	struct llm_params p;
	greedy(&p);
	struct llm_result r;
	p.adapter = "fixer"; /* no llm.adapter_dir */
	assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, NULL, &r), TK_EINVAL);
	greedy(&p);
	p.model = "another.gguf";
	assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, NULL, &r), TK_ENOENT);
	greedy(&p);
	atomic_bool cancel = true;
	assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, &cancel, &r), TK_ECANCELED);
	int pieces = 0;
	assert_int_equal(llm_chat(b, convo, 2, &p, stop_at_first, &pieces, NULL, &r),
			 TK_ECANCELED);
	assert_int_equal(pieces, 1);
	const struct llm_message bad_role[] = { { "robot", "hi" } };
	assert_int_equal(llm_chat(b, bad_role, 1, &p, NULL, NULL, NULL, &r), TK_EINVAL);
	/* still serves after the failures */
	assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, NULL, &r), 0);
	llm_result_free(&r);
	assert_int_equal(llm_health(b), 0);
	llm_backend_free(b);

	struct llm_options o;
	llm_options_default(&o);
	o.backend = "embedded";
	o.model = "/nonexistent/model.gguf";
	assert_null(llm_backend_new(&o));
	assert_non_null(strstr(tk_err_detail(), "embedded"));
	o.model = NULL;
	assert_null(llm_backend_new(&o));
	assert_int_equal(tk_err_last(), TK_EINVAL);
}

/* Under a JSON schema, sampling at several seeds and temperatures always
 * yields JSON that satisfies it (checked here with jansson, independently
 * of the grammar). */
static void test_json_schema_constrains(void **state)
{
	(void)state;
	struct llm_backend *b = embedded(1);
	assert_non_null(b);
	static const char schema[] =
		"{\"type\": \"object\", \"properties\": {\"ok\": {\"type\": \"boolean\"},"
		"\"n\": {\"enum\": [1, 2, 3]}, \"m\": {\"type\": \"null\"}},"
		"\"required\": [\"ok\", \"n\"]}";
	static const double temps[] = { 0.7, 1.5 };
	for (uint64_t seed = 1; seed <= 3; seed++) {
		for (size_t t = 0; t < 2; t++) {
			struct llm_params p;
			llm_params_default(&p);
			p.json_schema = schema;
			p.sampling.temperature = temps[t];
			p.has_seed = true;
			p.seed = seed;
			p.max_tokens = 64;
			struct llm_result r;
			assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, NULL, &r), 0);
			assert_int_equal(r.finish, LLM_FINISH_STOP);
			json_error_t je;
			json_t *j = json_loads(r.text, 0, &je);
			if (!json_is_object(j))
				fail_msg("seed %d temp %g: not a JSON object: %s", (int)seed,
					 temps[t], r.text);
			assert_true(json_is_boolean(json_object_get(j, "ok")));
			json_int_t n = json_integer_value(json_object_get(j, "n"));
			assert_true(json_is_integer(json_object_get(j, "n")) && n >= 1 && n <= 3);
			json_t *m = json_object_get(j, "m");
			assert_true(!m || json_is_null(m));
			assert_true(json_object_size(j) == (m ? 3u : 2u));
			json_decref(j);
			llm_result_free(&r);
		}
	}
	/* a grammar: only the two words */
	struct llm_params p;
	llm_params_default(&p);
	p.grammar = "root ::= \"yes\" | \"no\"";
	p.sampling.temperature = 1.0;
	struct llm_result r;
	assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, NULL, &r), 0);
	assert_true(!strcmp(r.text, "yes") || !strcmp(r.text, "no"));
	llm_result_free(&r);
	p.grammar = "root ::= undefined-rule";
	assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, NULL, &r), TK_EINVAL);
	llm_params_default(&p);
	p.json_schema = "{\"type\": \"string\", \"format\": \"email\"}";
	assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, NULL, &r), TK_EUNSUPPORTED);
	llm_backend_free(b);
}

/* An adapter from llm.adapter_dir changes the reply exactly as applying it
 * to a context by hand does; the next call without it is not served from
 * the adapter's cached keys and values. */
static void test_adapter(void **state)
{
	(void)state;
	char *plain = reference_text();
	char *coder = reference_text_with(TK_FIXTURES "/models/tiny-llama-lora-coder.gguf");
	assert_string_not_equal(plain, coder); /* else this test would prove nothing */
	struct llm_options o;
	llm_options_default(&o);
	o.backend = "embedded";
	o.model = MODEL;
	o.embedded_n_ctx = 256;
	o.adapter_dir = TK_FIXTURES "/models";
	o.metrics = reg;
	struct llm_backend *b = llm_backend_new(&o);
	assert_non_null(b);
	struct llm_params p;
	greedy(&p);
	p.adapter = "tiny-llama-lora-coder";
	struct llm_result r;
	assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, NULL, &r), 0);
	assert_string_equal(r.text, coder);
	llm_result_free(&r);
	greedy(&p);
	assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, NULL, &r), 0);
	assert_string_equal(r.text, plain);
	llm_result_free(&r);
	p.adapter = "no-such-adapter";
	assert_int_equal(llm_chat(b, convo, 2, &p, NULL, NULL, NULL, &r), TK_ENOENT);
	llm_backend_free(b);
	free(plain);
	free(coder);
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
		cmocka_unit_test(test_matches_engine_and_reuses_prefix),
		cmocka_unit_test(test_threads_share_the_pool),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_json_schema_constrains),
		cmocka_unit_test(test_adapter),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
