/* test_forward_generate.c — the generation loop (generate.h) on the tiny
 * llama: greedy output equals llama.cpp's, streaming equals the final text,
 * and every stop rule (stop id, stop string, max tokens, full context,
 * cancel) ends it as documented. */
#include "testutil.h"

#include "core/buf.h"
#include "core/err.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "engine/unicode.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
	struct engine_model *m;
	struct tk_tokenizer *tok;
	int32_t prompt[64];
	int32_t n_prompt;
	int32_t greedy[16];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->m = engine_model_load(TK_FIXTURES "/models/tiny-llama-f32.gguf");
	assert_non_null(f->m);
	f->tok = tk_tokenizer_from_gguf(f->m->gguf);
	assert_non_null(f->tok);
	json_error_t e;
	json_t *g = json_load_file(TK_FIXTURES "/golden/tiny-llama-f32.story.json", 0, &e);
	assert_non_null(g);
	json_t *p = json_object_get(g, "prompt"), *gr = json_object_get(g, "greedy");
	f->n_prompt = (int32_t)json_array_size(p);
	assert_true(f->n_prompt > 0 && f->n_prompt <= 64 && json_array_size(gr) == 16);
	for (int32_t i = 0; i < f->n_prompt; i++)
		f->prompt[i] = (int32_t)json_integer_value(json_array_get(p, (size_t)i));
	for (int i = 0; i < 16; i++)
		f->greedy[i] = (int32_t)json_integer_value(json_array_get(gr, (size_t)i));
	json_decref(g);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tk_tokenizer_free(f->tok);
	engine_model_free(f->m);
	free(f);
	return 0;
}

static struct engine_ctx *mkctx(const struct fixture *f, int32_t n_ctx)
{
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = n_ctx;
	struct engine_ctx *c = engine_ctx_new(f->m, &cp);
	assert_non_null(c);
	return c;
}

static struct engine_gen_params greedy_params(int32_t max_tokens)
{
	struct engine_gen_params p = { .max_tokens = max_tokens };
	engine_sampler_params_default(&p.sampling);
	p.sampling.temp = 0.0f;
	return p;
}

/* collects streamed pieces; cancels after cancel_after pieces (0: never) */
struct sink {
	char buf[4096];
	size_t len;
	int pieces, cancel_after;
};

static int collect(void *ud, const char *text, size_t len)
{
	struct sink *s = ud;
	assert_true(s->len + len < sizeof s->buf);
	memcpy(s->buf + s->len, text, len);
	s->len += len;
	s->pieces++;
	return s->cancel_after && s->pieces >= s->cancel_after;
}

static void test_greedy_and_stream(void **state)
{
	struct fixture *f = *state;
	struct engine_ctx *c = mkctx(f, 64);
	struct engine_gen_params p = greedy_params(16);
	struct sink s = { 0 };
	struct engine_gen_result r;
	assert_int_equal(engine_generate(c, f->tok, f->prompt, f->n_prompt, &p, collect, &s, &r), 0);
	assert_int_equal(r.n_tokens, 16);
	assert_memory_equal(r.tokens, f->greedy, sizeof f->greedy);
	assert_int_equal(r.finish, ENGINE_FINISH_LENGTH);
	assert_string_equal(engine_finish_name(r.finish), "length");
	assert_int_equal(r.prompt_tokens, f->n_prompt);
	assert_int_equal(r.n_decoded, 15);
	assert_int_equal(engine_ctx_n_past(c), f->n_prompt + 15);
	/* the streamed pieces are the text, and the text is the tokens' decode */
	assert_int_equal(s.len, r.text_len);
	assert_memory_equal(s.buf, r.text, r.text_len);
	/* (the streaming decoder replaces ill-formed UTF-8 — this random model
	 * emits stray byte tokens — so compare with the raw decode only where
	 * that is well-formed, and require the streamed text to be) */
	assert_true(tk_utf8_valid(r.text, r.text_len));
	struct tk_buf d = TK_BUF_INIT(1 << 16);
	assert_int_equal(tk_tokenizer_decode(f->tok, r.tokens, (size_t)r.n_tokens, 0, &d), 0);
	if (tk_utf8_valid(d.data, d.len)) {
		assert_int_equal(d.len, r.text_len);
		assert_memory_equal(d.data, r.text, r.text_len);
	} else {
		assert_true(r.text_len > 0);
	}
	tk_buf_free(&d);
	engine_gen_result_free(&r);
	engine_ctx_free(c);
}

static void test_stop_rules(void **state)
{
	struct fixture *f = *state;
	/* reference run */
	struct engine_ctx *c = mkctx(f, 64);
	struct engine_gen_params p = greedy_params(16);
	struct engine_gen_result full;
	assert_int_equal(engine_generate(c, f->tok, f->prompt, f->n_prompt, &p, NULL, NULL, &full), 0);
	engine_ctx_free(c);
	assert_true(full.text_len > 10);

	/* a stop string from the middle of the text: cut before it, never streamed */
	char stop[4];
	memcpy(stop, full.text + 6, 3);
	stop[3] = '\0';
	const char *stops[1] = { stop };
	size_t at = (size_t)(strstr(full.text, stop) - full.text);
	p.stop = stops;
	p.n_stop = 1;
	struct sink s = { 0 };
	struct engine_gen_result r;
	c = mkctx(f, 64);
	assert_int_equal(engine_generate(c, f->tok, f->prompt, f->n_prompt, &p, collect, &s, &r), 0);
	assert_int_equal(r.finish, ENGINE_FINISH_STOP);
	assert_int_equal(r.text_len, at);
	assert_memory_equal(r.text, full.text, at);
	assert_int_equal(s.len, at);
	assert_true(r.n_tokens < 16);
	engine_gen_result_free(&r);
	engine_ctx_free(c);

	/* a stop id: the generation ends before it, the id is not output */
	p.stop = NULL;
	p.n_stop = 0;
	p.stop_ids = &f->greedy[5];
	p.n_stop_ids = 1;
	c = mkctx(f, 64);
	assert_int_equal(engine_generate(c, f->tok, f->prompt, f->n_prompt, &p, NULL, NULL, &r), 0);
	int32_t first = 0;
	while (f->greedy[first] != f->greedy[5])
		first++; /* the id may occur before index 5 */
	assert_int_equal(r.n_tokens, first);
	assert_int_equal(r.finish, ENGINE_FINISH_STOP);
	engine_gen_result_free(&r);
	engine_ctx_free(c);

	/* a full context: prompt + 3 tokens fill n_ctx = prompt + 2 */
	p.stop_ids = NULL;
	p.n_stop_ids = 0;
	c = mkctx(f, f->n_prompt + 2);
	assert_int_equal(engine_generate(c, f->tok, f->prompt, f->n_prompt, &p, NULL, NULL, &r), 0);
	assert_int_equal(r.finish, ENGINE_FINISH_CONTEXT);
	assert_int_equal(r.n_tokens, 3);
	assert_memory_equal(r.tokens, f->greedy, 3 * sizeof(int32_t));
	engine_gen_result_free(&r);
	engine_ctx_free(c);

	/* the callback cancels after its first piece */
	s = (struct sink){ .cancel_after = 1 };
	c = mkctx(f, 64);
	assert_int_equal(engine_generate(c, f->tok, f->prompt, f->n_prompt, &p, collect, &s, &r), 0);
	assert_int_equal(r.finish, ENGINE_FINISH_CANCEL);
	assert_true(r.n_tokens >= 1 && r.n_tokens < 16);
	assert_int_equal(s.pieces, 1);
	engine_gen_result_free(&r);
	engine_ctx_free(c);
	engine_gen_result_free(&full);
}

static void test_errors_and_no_tokenizer(void **state)
{
	struct fixture *f = *state;
	struct engine_gen_params p = greedy_params(4);
	struct engine_gen_result r;
	/* the prompt does not fit: TK_ELIMIT, result zeroed */
	struct engine_ctx *c = mkctx(f, 4);
	assert_int_equal(engine_generate(c, f->tok, f->prompt, f->n_prompt, &p, NULL, NULL, &r),
			 TK_ELIMIT);
	assert_null(r.tokens);
	assert_null(r.text);
	engine_ctx_free(c);
	/* bad parameters */
	c = mkctx(f, 64);
	p.max_tokens = -1;
	assert_int_equal(engine_generate(c, f->tok, f->prompt, f->n_prompt, &p, NULL, NULL, &r),
			 TK_EINVAL);
	p.max_tokens = 4;
	p.sampling.repeat_penalty = 0.0f;
	assert_int_equal(engine_generate(c, f->tok, f->prompt, f->n_prompt, &p, NULL, NULL, &r),
			 TK_EINVAL);
	engine_ctx_free(c);
	/* no tokenizer: the text is the ids */
	p = greedy_params(3);
	c = mkctx(f, 64);
	assert_int_equal(engine_generate(c, NULL, f->prompt, f->n_prompt, &p, NULL, NULL, &r), 0);
	char want[64];
	snprintf(want, sizeof want, "%d %d %d", f->greedy[0], f->greedy[1], f->greedy[2]);
	assert_string_equal(r.text, want);
	engine_gen_result_free(&r);
	engine_ctx_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greedy_and_stream),
		cmocka_unit_test(test_stop_rules),
		cmocka_unit_test(test_errors_and_no_tokenizer),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
