/*
 * test_generate_stop.c — the stop rules engine_generate and the embedded
 * backend share (generate.h: engine_gen_stop_init / engine_gen_stop_check),
 * without a tokenizer (ids become decimal text): a stop id ends without
 * touching the text, ids append space-separated, a stop string cuts the
 * text before it, bytes that could begin a stop string are held back from
 * *show, and bad stop strings are refused.
 */
#include "testutil.h"

#include "core/buf.h"
#include "core/err.h"
#include "engine/generate.h"

#include <string.h>

static void test_ids_and_strings(void **state)
{
	(void)state;
	const char *stops[] = { "7 8", "99" };
	const int32_t ids[] = { 5 };
	struct engine_gen_params p = { .max_tokens = 10, .stop = stops, .n_stop = 2,
				       .stop_ids = ids, .n_stop_ids = 1 };
	struct engine_gen_stop gs;
	assert_int_equal(engine_gen_stop_init(&gs, NULL, &p), 0);
	struct tk_buf text = TK_BUF_INIT(1024);
	enum engine_gen_verdict v;
	size_t show;

	assert_int_equal(engine_gen_stop_check(&gs, NULL, 12, &text, &v, &show), 0);
	assert_int_equal(v, ENGINE_GEN_GO);
	assert_string_equal(text.data, "12");
	assert_int_equal(show, 2);

	/* "12 9": the trailing "9" could begin "99": held back */
	assert_int_equal(engine_gen_stop_check(&gs, NULL, 9, &text, &v, &show), 0);
	assert_int_equal(v, ENGINE_GEN_GO);
	assert_string_equal(text.data, "12 9");
	assert_int_equal(show, 3);

	/* a stop id: ends, the text untouched */
	assert_int_equal(engine_gen_stop_check(&gs, NULL, 5, &text, &v, &show), 0);
	assert_int_equal(v, ENGINE_GEN_END_TOKEN);
	assert_string_equal(text.data, "12 9");

	/* "12 9 7" holds back "7" ("7 8"), then "12 9 7 8" is cut before it */
	assert_int_equal(engine_gen_stop_check(&gs, NULL, 7, &text, &v, &show), 0);
	assert_int_equal(v, ENGINE_GEN_GO);
	assert_int_equal(show, strlen("12 9 "));
	assert_int_equal(engine_gen_stop_check(&gs, NULL, 8, &text, &v, &show), 0);
	assert_int_equal(v, ENGINE_GEN_END_STRING);
	assert_int_equal(text.len, strlen("12 9 "));
	assert_memory_equal(text.data, "12 9 ", text.len);
	assert_int_equal(show, text.len);
	tk_buf_free(&text);
}

static void test_no_rules_and_bad_rules(void **state)
{
	(void)state;
	struct engine_gen_params p = { .max_tokens = 4 };
	struct engine_gen_stop gs;
	assert_int_equal(engine_gen_stop_init(&gs, NULL, &p), 0);
	struct tk_buf text = TK_BUF_INIT(1024);
	enum engine_gen_verdict v;
	size_t show;
	for (int32_t id = 0; id < 3; id++) {
		assert_int_equal(engine_gen_stop_check(&gs, NULL, id, &text, &v, &show), 0);
		assert_int_equal(v, ENGINE_GEN_GO);
		assert_int_equal(show, text.len); /* nothing to hold back */
	}
	assert_string_equal(text.data, "0 1 2");
	tk_buf_free(&text);

	/* the text cap: a decode that does not fit is an error, not a cut */
	struct tk_buf small = TK_BUF_INIT(4);
	assert_int_equal(engine_gen_stop_check(&gs, NULL, 123, &small, &v, &show), 0);
	assert_true(engine_gen_stop_check(&gs, NULL, 456, &small, &v, &show) < 0);
	tk_buf_free(&small);

	const char *empty[] = { "" };
	p.stop = empty;
	p.n_stop = 1;
	assert_true(engine_gen_stop_init(&gs, NULL, &p) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_and_strings),
		cmocka_unit_test(test_no_rules_and_bad_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
