/* test_json.c — strict parsing and field validation messages. */
#include "testutil.h"

#include "core/err.h"
#include "core/json.h"

#include <string.h>

static json_t *parse_ok(const char *s)
{
	json_t *v = NULL;
	assert_int_equal(tk_json_parse(s, strlen(s), 1 << 20, &v), 0);
	assert_non_null(v);
	return v;
}

static void test_parse_strict(void **state)
{
	(void)state;
	json_t *v;
	const char *dup = "{\"a\":1,\"a\":2}";
	assert_int_equal(tk_json_parse(dup, strlen(dup), 100, &v), TK_EFORMAT);
	assert_null(v);
	assert_non_null(strstr(tk_err_detail(), "duplicate"));
	const char *bad = "{\"a\":\n  tru}";
	assert_int_equal(tk_json_parse(bad, strlen(bad), 100, &v), TK_EFORMAT);
	assert_non_null(strstr(tk_err_detail(), "line 2"));
	const char *nonutf8 = "{\"a\":\"\xff\xfe\"}";
	assert_int_equal(tk_json_parse(nonutf8, strlen(nonutf8), 100, &v), TK_EFORMAT);
	const char *nul = "{\"a\":\"x\\u0000y\"}";
	assert_int_equal(tk_json_parse(nul, strlen(nul), 100, &v), TK_EFORMAT);
	const char *big = "{\"a\":\"0123456789\"}";
	assert_int_equal(tk_json_parse(big, strlen(big), 10, &v), TK_ELIMIT);
	assert_int_equal(tk_json_parse("[1] [2]", 7, 100, &v), TK_EFORMAT);
	v = parse_ok("{\"ok\":true}");
	json_decref(v);
}

static const struct tk_json_field task_fields[] = {
	{ .name = "task_description", .type = TK_JT_STRING, .required = true, .min_len = 1,
	  .max_len = 20 },
	{ .name = "wait", .type = TK_JT_INT, .has_range = true, .min = 0, .max = 3600 },
	{ .name = "temperature", .type = TK_JT_NUMBER, .has_range = true, .min = 0, .max = 2 },
	{ .name = "files", .type = TK_JT_ARRAY, .max_len = 2 },
	{ .name = "context", .type = TK_JT_STRING, .nullable = true },
	{ .name = "stream", .type = TK_JT_BOOL },
};
#define N_TASK (sizeof task_fields / sizeof task_fields[0])

/* Validates s and expects rc; on error, the detail must equal msg. */
static void expect(const char *s, enum tk_json_unknown pol, int rc, const char *msg)
{
	json_t *v = parse_ok(s);
	tk_err_clear();
	assert_int_equal(tk_json_validate(v, task_fields, N_TASK, pol, NULL), rc);
	if (msg)
		assert_string_equal(tk_err_detail(), msg);
	json_decref(v);
}

static void test_validate_messages(void **state)
{
	(void)state;
	const enum tk_json_unknown R = TK_JSON_REJECT_UNKNOWN, I = TK_JSON_IGNORE_UNKNOWN;
	expect("{\"task_description\":\"hi\"}", R, 0, NULL);
	expect("{}", R, TK_EINVAL, "task_description: required field is missing");
	expect("{\"task_description\":5}", R, TK_EINVAL,
	       "task_description: expected string, got integer");
	expect("{\"task_description\":\"\"}", R, TK_EINVAL,
	       "task_description: length 0 is below the minimum of 1 bytes");
	expect("{\"task_description\":\"abcdefghijklmnopqrstuvwxyz\"}", R, TK_EINVAL,
	       "task_description: length 26 exceeds the limit of 20 bytes");
	expect("{\"task_description\":\"x\",\"wait\":4000}", R, TK_EINVAL,
	       "wait: 4000 is out of range 0..3600");
	expect("{\"task_description\":\"x\",\"wait\":-1}", R, TK_EINVAL,
	       "wait: -1 is out of range 0..3600");
	expect("{\"task_description\":\"x\",\"wait\":1.5}", R, TK_EINVAL,
	       "wait: expected integer, got number");
	expect("{\"task_description\":\"x\",\"temperature\":2.5}", R, TK_EINVAL,
	       "temperature: 2.5 is out of range 0..2");
	expect("{\"task_description\":\"x\",\"temperature\":1}", R, 0, NULL);
	expect("{\"task_description\":\"x\",\"files\":[1,2,3]}", R, TK_EINVAL,
	       "files: length 3 exceeds the limit of 2 items");
	expect("{\"task_description\":\"x\",\"context\":null}", R, 0, NULL);
	expect("{\"task_description\":\"x\",\"stream\":null}", R, TK_EINVAL,
	       "stream: expected boolean, got null");
	expect("{\"task_description\":\"x\",\"extra\":1}", R, TK_EINVAL, "extra: unknown field");
	expect("{\"task_description\":\"x\",\"extra\":1}", I, 0, NULL);
	/* UTF-8 length is counted in bytes: 7 × 3-byte characters = 21 bytes. */
	expect("{\"task_description\":\"\xe3\x81\x82\xe3\x81\x82\xe3\x81\x82\xe3\x81\x82"
	       "\xe3\x81\x82\xe3\x81\x82\xe3\x81\x82\"}", R, TK_EINVAL,
	       "task_description: length 21 exceeds the limit of 20 bytes");
}

static void test_validate_nested_path(void **state)
{
	(void)state;
	static const struct tk_json_field file_fields[] = {
		{ .name = "path", .type = TK_JT_STRING, .required = true, .max_len = 8 },
		{ .name = "content", .type = TK_JT_STRING, .required = true },
	};
	json_t *v = parse_ok("{\"path\":\"a/very/long/path\",\"content\":\"\"}");
	assert_int_equal(tk_json_validate(v, file_fields, 2, TK_JSON_REJECT_UNKNOWN, "files[2]"),
			 TK_EINVAL);
	assert_string_equal(tk_err_detail(),
			    "files[2].path: length 16 exceeds the limit of 8 bytes");
	json_decref(v);
	v = parse_ok("[1]");
	assert_int_equal(tk_json_validate(v, file_fields, 2, TK_JSON_REJECT_UNKNOWN, NULL),
			 TK_EINVAL);
	assert_string_equal(tk_err_detail(), "body: expected object, got array");
	json_decref(v);
}

static void test_getters_and_dump(void **state)
{
	(void)state;
	json_t *v = parse_ok("{\"s\":\"x\",\"i\":42,\"b\":true,\"z\":[1]}");
	assert_string_equal(tk_json_get_str(v, "s", "d"), "x");
	assert_string_equal(tk_json_get_str(v, "i", "d"), "d");
	assert_int_equal(tk_json_get_int(v, "i", 0), 42);
	assert_int_equal(tk_json_get_int(v, "missing", -3), -3);
	assert_true(tk_json_get_bool(v, "b", false));
	struct tk_buf b = TK_BUF_INIT(1000);
	assert_int_equal(tk_json_dump(v, true, &b), 0);
	assert_string_equal(tk_buf_str(&b), "{\"b\":true,\"i\":42,\"s\":\"x\",\"z\":[1]}");
	struct tk_buf small = TK_BUF_INIT(5);
	assert_int_equal(tk_json_dump(v, true, &small), TK_ELIMIT);
	tk_buf_free(&small);
	tk_buf_free(&b);
	json_decref(v);
}

static void test_quote(void **state)
{
	(void)state;
	struct tk_buf b = TK_BUF_INIT(1000);
	const char in[] = "a\"b\\c\n\x01\x7f\xc3\xa9\xff\xe2\x82\xf0\x9f\x98\x80\xed\xa0\x80";
	assert_int_equal(tk_json_quote(&b, in, sizeof in - 1), 0);
	/* The result is valid JSON whose decoded value we can check. */
	json_t *v = parse_ok(tk_buf_str(&b));
	assert_true(json_is_string(v));
	const char *want = "a\"b\\c\n\x01\x7f\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
			   "\xf0\x9f\x98\x80\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd";
	assert_string_equal(json_string_value(v), want);
	json_decref(v);
	tk_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_strict),
		cmocka_unit_test(test_validate_messages),
		cmocka_unit_test(test_validate_nested_path),
		cmocka_unit_test(test_getters_and_dump),
		cmocka_unit_test(test_quote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
