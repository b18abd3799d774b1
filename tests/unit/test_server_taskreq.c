/*
 * test_server_taskreq.c — TaskRequest validation: accepted shapes keep only
 * known fields; every kind of bad input is refused with a detail naming the
 * field; path rules.
 */
#include "testutil.h"

#include "core/err.h"
#include "server/taskreq.h"

#include <string.h>

static int parse(const char *body, json_t **req, double *wait)
{
	struct tk_taskreq_limits lim;
	tk_taskreq_limits_default(&lim);
	lim.files_max = 3;
	lim.file_max_bytes = 10;
	lim.files_total_max_bytes = 15;
	lim.description_max_bytes = 20;
	return tk_taskreq_parse(body, strlen(body), &lim, req, wait);
}

static void test_accepts(void **state)
{
	(void)state;
	json_t *req = NULL;
	double wait = -1;
	assert_int_equal(parse("{\"task_description\":\"add tests\",\"context\":null,"
			       "\"files\":[{\"path\":\"src/a.c\",\"content\":\"int x;\"}],"
			       "\"file_paths\":[\"src/a.c\"],\"language\":\"c++\",\"wait\":2.5}",
			       &req, &wait), 0);
	assert_string_equal(json_string_value(json_object_get(req, "task_description")),
			    "add tests");
	assert_true(wait == 2.5);
	assert_null(json_object_get(req, "context")); /* null dropped */
	assert_null(json_object_get(req, "wait"));    /* not part of the stored request */
	assert_int_equal(json_array_size(json_object_get(req, "files")), 1);
	assert_string_equal(json_string_value(json_object_get(req, "language")), "c++");
	json_decref(req);

	req = NULL;
	assert_int_equal(parse("{\"task_description\":\"x\"}", &req, &wait), 0);
	assert_true(wait == 0);
	json_decref(req);
}

struct bad_case {
	const char *body;
	const char *field; /* expected in the detail */
};

static void test_refuses(void **state)
{
	(void)state;
	static const struct bad_case cases[] = {
		{ "", "body" },
		{ "nope", "body" },
		{ "[]", "body" },
		{ "{}", "task_description" },
		{ "{\"task_description\":\"\"}", "task_description" },
		{ "{\"task_description\":1}", "task_description" },
		{ "{\"task_description\":\"012345678901234567890\"}", "task_description" },
		{ "{\"task_description\":\"x\",\"task_description\":\"y\"}", "body" },
		{ "{\"task_description\":\"x\",\"extra\":1}", "extra" },
		{ "{\"task_description\":\"x\",\"wait\":-1}", "wait" },
		{ "{\"task_description\":\"x\",\"wait\":301}", "wait" },
		{ "{\"task_description\":\"x\",\"wait\":true}", "wait" },
		{ "{\"task_description\":\"x\",\"language\":\"c c\"}", "language" },
		{ "{\"task_description\":\"x\",\"files\":{}}", "files" },
		{ "{\"task_description\":\"x\",\"files\":[1]}", "files[0]" },
		{ "{\"task_description\":\"x\",\"files\":[{\"path\":\"/a\",\"content\":\"\"}]}", "files[0].path" },
		{ "{\"task_description\":\"x\",\"files\":[{\"path\":\"a/../b\",\"content\":\"\"}]}", "files[0].path" },
		{ "{\"task_description\":\"x\",\"files\":[{\"path\":\"a\",\"content\":1}]}", "files[0].content" },
		{ "{\"task_description\":\"x\",\"files\":[{\"path\":\"a\",\"content\":\"\",\"mode\":1}]}", "files[0]" },
		{ "{\"task_description\":\"x\",\"files\":[{\"path\":\"a\",\"content\":\"01234567890\"}]}", "files[0].content" },
		{ "{\"task_description\":\"x\",\"files\":[{\"path\":\"a\",\"content\":\"0123456789\"},"
		  "{\"path\":\"b\",\"content\":\"0123456789\"}]}", "files" },
		{ "{\"task_description\":\"x\",\"files\":[{\"path\":\"a\",\"content\":\"\"},"
		  "{\"path\":\"a\",\"content\":\"\"}]}", "files[1].path" },
		{ "{\"task_description\":\"x\",\"files\":[{\"path\":\"a\",\"content\":\"\"},"
		  "{\"path\":\"b\",\"content\":\"\"},{\"path\":\"c\",\"content\":\"\"},"
		  "{\"path\":\"d\",\"content\":\"\"}]}", "files" },
		{ "{\"task_description\":\"x\",\"file_paths\":[\"ok\",\"..\"]}", "file_paths[1]" },
		{ "{\"task_description\":\"x\",\"file_paths\":\"a\"}", "file_paths" },
		{ "{\"task_description\":\"a\\u0000b\"}", "body" },
		{ "{\"task_description\":\"\xff\"}", "body" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *req = NULL;
		double wait = 0;
		int rc = parse(cases[i].body, &req, &wait);
		if (rc >= 0 || !strstr(tk_err_detail(), cases[i].field))
			fail_msg("case %zu (%s): rc %d, detail '%s', wanted field '%s'", i,
				 cases[i].body, rc, tk_err_detail(), cases[i].field);
		assert_null(req);
	}
}

static void test_paths(void **state)
{
	(void)state;
	const char *good[] = { "a", "a/b.c", "dir/sub/file.txt", ".hidden", "a..b", "x/.y" };
	const char *bad[] = { "", "/a", "a/", "a//b", ".", "..", "a/./b", "a/..", "../a",
			      "a\\b", "a\nb", "a\x7f" };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_true(tk_taskreq_path_ok(good[i], 100));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (tk_taskreq_path_ok(bad[i], 100))
			fail_msg("path '%s' accepted", bad[i]);
	assert_false(tk_taskreq_path_ok("abcdef", 5));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts),
		cmocka_unit_test(test_refuses),
		cmocka_unit_test(test_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
