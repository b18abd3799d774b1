/* test_llm_grammar.c — the grammar engine (src/llm/grammar.h): parse
 * errors, and sentences accepted or rejected by sequences, alternatives,
 * repetition, classes (ranges, negation, escapes), UTF-8, groups, nested
 * rules, a JSON-like grammar; prefix states (accepts / done); the JSON
 * Schema converter (documents that do and do not fit a schema). */
#include "testutil.h"

#include "core/buf.h"
#include "core/err.h"
#include "llm/grammar.h"

#include <jansson.h>
#include <string.h>

struct verdict {
	const char *text;
	bool ok;
};

static void check(const char *grammar, const struct verdict *v, size_t n)
{
	struct llm_grammar *g = llm_grammar_parse(grammar, strlen(grammar));
	if (!g)
		fail_msg("grammar did not parse: %s\n%s", tk_err_detail(), grammar);
	for (size_t i = 0; i < n; i++) {
		int rc = llm_grammar_match(g, v[i].text, strlen(v[i].text));
		if ((rc == 0) != v[i].ok)
			fail_msg("'%s' should be %s (rc %d: %s) by:\n%s", v[i].text,
				 v[i].ok ? "accepted" : "rejected", rc, tk_err_detail(), grammar);
	}
	llm_grammar_free(g);
}

#define CHECK(g, ...)                                                        \
	do {                                                                 \
		static const struct verdict v_[] = { __VA_ARGS__ };          \
		check((g), v_, sizeof v_ / sizeof v_[0]);                    \
	} while (0)

static void test_basics(void **state)
{
	(void)state;
	CHECK("root ::= \"yes\" | \"no\"", { "yes", true }, { "no", true }, { "ye", false },
	      { "yess", false }, { "", false });
	CHECK("root ::= \"a\" \"b\"* \"c\"", { "ac", true }, { "abbbc", true }, { "abcb", false });
	CHECK("root ::= [0-9]+ (\".\" [0-9]+)?", { "12", true }, { "3.14", true }, { "3.", false },
	      { ".5", false }, { "", false });
	CHECK("root ::= [^\"\\\\]*", { "plain text", true }, { "a\"b", false }, { "", true });
	CHECK("root ::= [a-cx] .", { "a!", true }, { "xé", true }, { "d!", false });
	CHECK("root ::= \"\\x41\\u00e9\\n\" [\\]\\-]", { "Aé\n]", true }, { "Aé\n-", true },
	      { "Aé\nx", false });
	CHECK("root ::= \"é\"+ \"→\"", { "éé→", true }, { "→", false });
	/* rules spanning lines, comments, forward references */
	CHECK("# a list\nroot ::= item (\",\" item)*\n"
	      "item ::=\n  [a-z]+ |\n  num # numbers too\nnum ::= [0-9]+\n",
	      { "ab,1,cd", true }, { "ab,", false }, { "ab,,cd", false }, { "7", true });
}

static const char json_grammar[] =
	"root   ::= value\n"
	"value  ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
	"object ::= \"{\" ws ( member ( \",\" ws member )* )? \"}\" ws\n"
	"member ::= string \":\" ws value\n"
	"array  ::= \"[\" ws ( value ( \",\" ws value )* )? \"]\" ws\n"
	"string ::= \"\\\"\" ( [^\"\\\\] | \"\\\\\" [\"\\\\/bfnrt] )* \"\\\"\" ws\n"
	"number ::= \"-\"? [0-9]+ ( \".\" [0-9]+ )? ws\n"
	"ws     ::= [ \\t\\n]*\n";

static void test_json(void **state)
{
	(void)state;
	CHECK(json_grammar, { "{\"a\": [1, 2.5, -3], \"b\": {\"c\": null}}", true },
	      { "[true, false, \"x\\\"y\"]", true }, { "{\"a\" 1}", false },
	      { "[1, 2,]", false }, { "{\"a\": tru}", false }, { "\"unterminated", false });
	/* a long repetition keeps the stacks bounded (tail calls) */
	char big[20000];
	big[0] = '[';
	size_t n = 1;
	for (int i = 0; i < 3000; i++) {
		memcpy(big + n, "1, ", 3);
		n += 3;
	}
	memcpy(big + n, "2]", 3);
	struct llm_grammar *g = llm_grammar_parse(json_grammar, strlen(json_grammar));
	assert_non_null(g);
	assert_int_equal(llm_grammar_match(g, big, strlen(big)), 0);
	llm_grammar_free(g);
}

static void test_states(void **state)
{
	(void)state;
	const char *src = "root ::= \"ab\" | \"abc\"";
	struct llm_grammar *g = llm_grammar_parse(src, strlen(src));
	assert_non_null(g);
	struct llm_gstate *s = llm_gstate_new(g);
	assert_non_null(s);
	assert_false(llm_gstate_accepts(s));
	assert_int_equal(llm_gstate_advance(s, "ab", 2), 0);
	assert_true(llm_gstate_accepts(s));
	assert_false(llm_gstate_done(s));
	struct llm_gstate *c = llm_gstate_clone(s);
	assert_non_null(c);
	assert_int_equal(llm_gstate_advance(c, "x", 1), TK_EINVAL);
	assert_int_equal(llm_gstate_advance(s, "c", 1), 0);
	assert_true(llm_gstate_done(s));
	llm_gstate_free(c);
	/* partial UTF-8 is refused */
	llm_gstate_free(s);
	s = llm_gstate_new(g);
	assert_int_equal(llm_gstate_advance(s, "\xc3", 1), TK_EINVAL);
	llm_gstate_free(s);
	llm_grammar_free(g);
}

static void test_parse_errors(void **state)
{
	(void)state;
	static const struct { const char *src; const char *detail; } bad[] = {
		{ "", "no 'root' rule" },
		{ "root ::= foo", "'foo' is used but not defined" },
		{ "root ::= \"a", "unterminated literal" },
		{ "root ::= [a-", "unterminated character class" },
		{ "root ::= [z-a]", "upside down" },
		{ "root ::= (\"a\"", "expected ')'" },
		{ "root ::= \"a\")", "unbalanced" },
		{ "root ::= \"a\"\nroot ::= \"b\"", "defined twice" },
		{ "root \"a\"", "expected 'name ::= ...'" },
		{ "root ::= \"\\q\"", "unknown escape" },
		{ "root ::= \"\\xZZ\"", "bad hex escape" },
		{ "x ::= \"a\"\n\nroot ::= @", "line 3" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct llm_grammar *g = llm_grammar_parse(bad[i].src, strlen(bad[i].src));
		if (g) {
			llm_grammar_free(g);
			fail_msg("case %zu parsed: %s", i, bad[i].src);
		}
		assert_int_equal(tk_err_last(), TK_EINVAL);
		if (!strstr(tk_err_detail(), bad[i].detail))
			fail_msg("case %zu: '%s' lacks '%s'", i, tk_err_detail(), bad[i].detail);
	}
	/* left recursion is caught when matching starts, not looped on */
	const char *lr = "root ::= root \"a\" | \"a\"";
	struct llm_grammar *g = llm_grammar_parse(lr, strlen(lr));
	assert_non_null(g);
	assert_null(llm_gstate_new(g));
	assert_int_equal(tk_err_last(), TK_ELIMIT);
	llm_grammar_free(g);
}

/* Converts a schema, then checks documents against the grammar. */
static void check_schema(const char *schema, const struct verdict *v, size_t n)
{
	json_t *js = json_loads(schema, 0, NULL);
	assert_non_null(js);
	struct tk_buf gb = TK_BUF_INIT(1 << 20);
	if (llm_schema_to_grammar(js, &gb))
		fail_msg("schema not converted: %s", tk_err_detail());
	json_decref(js);
	check(gb.data, v, n);
	tk_buf_free(&gb);
}

#define CHECK_SCHEMA(s, ...)                                                 \
	do {                                                                 \
		static const struct verdict v_[] = { __VA_ARGS__ };          \
		check_schema((s), v_, sizeof v_ / sizeof v_[0]);             \
	} while (0)

static void test_schema(void **state)
{
	(void)state;
	CHECK_SCHEMA("{\"type\": \"object\", \"properties\": {"
		     "\"name\": {\"type\": \"string\"}, \"age\": {\"type\": \"integer\"},"
		     "\"tags\": {\"type\": \"array\", \"items\": {\"enum\": [\"a\", \"b\", 3]}},"
		     "\"ok\": {\"type\": \"boolean\"}}, \"required\": [\"name\", \"age\"],"
		     "\"additionalProperties\": false}",
		     { "{\"name\": \"Ann\", \"age\": 31}", true },
		     { "{\"name\":\"A\\\"n\",\"age\":-2,\"tags\":[\"a\",3],\"ok\":true}", true },
		     { "{\"name\": \"Ann\", \"age\": 31, \"ok\": false}", true },
		     { "{\"name\": \"Ann\"}", false },
		     { "{\"name\": \"Ann\", \"age\": 3.5}", false },
		     { "{\"name\": \"Ann\", \"age\": 01}", false },
		     { "{\"name\": \"Ann\", \"age\": 1, \"tags\": [\"c\"]}", false },
		     { "{\"name\": \"Ann\", \"age\": 1, \"extra\": 1}", false },
		     { "{\"name\": 5, \"age\": 1}", false });
	/* only optional properties: any subset, in order, no stray commas */
	CHECK_SCHEMA("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"null\"},"
		     "\"b\": {\"type\": \"number\"}}}",
		     { "{}", true }, { "{\"b\": 1e5}", true }, { "{\"a\": null, \"b\": 2.5}", true },
		     { "{\"b\": 1, \"a\": null}", false }, { "{,\"b\": 1}", false });
	/* no type: any JSON value */
	CHECK_SCHEMA("{}", { "[1, {\"x\": \"y\"}]", true }, { "nul", false });

	static const struct { const char *schema; int code; const char *detail; } bad[] = {
		{ "{\"type\": \"string\", \"pattern\": \"a+\"}", TK_EUNSUPPORTED, "'pattern'" },
		{ "{\"type\": [\"string\", \"null\"]}", TK_EUNSUPPORTED, "single type" },
		{ "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"str\"}}}",
		  TK_EINVAL, "$.a.type: unknown type 'str'" },
		{ "{\"type\": \"object\", \"required\": [\"zz\"]}", TK_EINVAL, "required[0]" },
		{ "{\"enum\": []}", TK_EINVAL, "non-empty" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *js = json_loads(bad[i].schema, 0, NULL);
		assert_non_null(js);
		struct tk_buf gb = TK_BUF_INIT(1 << 20);
		int rc = llm_schema_to_grammar(js, &gb);
		json_decref(js);
		tk_buf_free(&gb);
		if (rc != bad[i].code || !strstr(tk_err_detail(), bad[i].detail))
			fail_msg("case %zu: rc %d '%s', want %d '%s'", i, rc, tk_err_detail(),
				 bad[i].code, bad[i].detail);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basics),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_schema),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
