/* test_llm_replay.c — the scripted backend replaying a `tanuki tasks export`
 * (JSONL events): format detection by content, agent_turn events turned
 * into per-agent turns in file order (whatever turn a call asks for), whole
 * replies never cut by max_tokens, recorded usage and errors, other event
 * types ignored, and clear errors for broken exports. */
#include "testutil.h"

#include "core/err.h"
#include "llm/llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[512];

static const char *write_file(const char *name, const char *text)
{
	static char path[700];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static struct llm_backend *replay(const char *path)
{
	struct llm_options o;
	llm_options_default(&o);
	o.backend = "scripted";
	o.script = path;
	return llm_backend_new(&o);
}

static const struct llm_message hello[] = { { "user", "hello" } };

/* An export as `tanuki tasks export` writes it: status and task events
 * around the agent turns, a blank line, CRLF on one line. */
static const char export_text[] =
	"{\"seq\":1,\"type\":\"status\",\"data\":{\"status\":\"queued\"},\"created_at\":\"x\"}\n"
	"{\"seq\":2,\"type\":\"task\",\"data\":{\"description\":\"add\"}}\n"
	"{\"seq\":3,\"type\":\"agent_turn\",\"data\":{\"agent\":\"planner-critic\","
	"\"text\":\"{\\\"plans\\\": []}\",\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":7}}}\n"
	"\n"
	"{\"seq\":4,\"type\":\"agent_turn\",\"data\":{\"agent\":\"coder\",\"turn\":5,"
	"\"text\":\"one two three four five six\",\"prompt_tokens\":11,\"completion_tokens\":6,"
	"\"finish_reason\":\"length\"}}\r\n"
	"{\"seq\":5,\"type\":\"tool_call\",\"data\":{\"agent\":\"coder\",\"tool\":\"run\"}}\n"
	"{\"seq\":6,\"type\":\"agent_turn\",\"data\":{\"agent\":\"coder\",\"raw\":\"second\"}}\n"
	"{\"seq\":7,\"type\":\"agent_turn\",\"data\":{\"agent\":\"tester\","
	"\"error\":{\"code\":\"timeout\",\"message\":\"slow model\"}}}\n"
	"{\"seq\":8,\"type\":\"agent_turn\",\"data\":{\"agent\":\"tester\",\"error\":\"weird\"}}\n"
	"{\"seq\":9,\"type\":\"status\",\"data\":{\"status\":\"completed\"}}\n";

static int setup(void **state)
{
	(void)state;
	tk_test_mkdtemp(dir, sizeof dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tk_test_rmtree(dir);
	return 0;
}

static void test_replay_turns(void **state)
{
	(void)state;
	struct llm_backend *b = replay(write_file("export.jsonl", export_text));
	assert_non_null(b);
	struct llm_params p;
	llm_params_default(&p);
	struct llm_result r;

	/* coder's first recorded turn, although the call asks for turn 5 of
	 * nothing in particular and allows 2 tokens: replies are replayed whole,
	 * in file order, with the recorded usage and finish reason */
	p.agent = "coder";
	p.turn = 5;
	p.max_tokens = 2;
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), 0);
	assert_string_equal(r.text, "one two three four five six");
	assert_int_equal(r.usage.prompt_tokens, 11);
	assert_int_equal(r.usage.completion_tokens, 6);
	assert_int_equal(r.finish, LLM_FINISH_LENGTH);
	llm_result_free(&r);
	/* the next call of coder, even asking for turn 0 again, gets the next
	 * recorded reply (from "raw") */
	p.turn = 0;
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), 0);
	assert_string_equal(r.text, "second");
	assert_int_equal(r.finish, LLM_FINISH_STOP);
	llm_result_free(&r);
	/* coder has nothing more recorded: a clear error, no fallback */
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), TK_ENOENT);
	assert_non_null(strstr(tk_err_detail(), "coder"));

	/* agents are independent: the planner's one turn is still there */
	llm_params_default(&p);
	p.agent = "planner-critic";
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), 0);
	assert_string_equal(r.text, "{\"plans\": []}");
	assert_int_equal(r.usage.prompt_tokens, 40);
	assert_int_equal(r.usage.completion_tokens, 7);
	llm_result_free(&r);

	/* recorded failures replay as failures: a named code, else I/O */
	p.agent = "tester";
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), TK_ETIMEOUT);
	assert_non_null(strstr(tk_err_detail(), "slow model"));
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), TK_EIO);
	assert_non_null(strstr(tk_err_detail(), "weird"));
	llm_backend_free(b);
}

/* A plain script still works, including one whose text mentions "type". */
static void test_script_still_detected(void **state)
{
	(void)state;
	struct llm_backend *b = replay(write_file(
		"s.json", "\n  {\"responses\": [{\"agent\": \"coder\", \"turn\": 0,"
			  " \"text\": \"a b c\"}], \"type\": \"x\"}\n"));
	assert_non_null(b);
	struct llm_params p;
	llm_params_default(&p);
	p.agent = "coder";
	p.max_tokens = 2; /* a script's text still streams word by word */
	struct llm_result r;
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), 0);
	assert_string_equal(r.text, "a b ");
	llm_result_free(&r);
	llm_backend_free(b);
}

static void test_bad_exports(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *detail;
	} cases[] = {
		/* no agent_turn at all */
		{ "{\"seq\":1,\"type\":\"status\",\"data\":{\"status\":\"queued\"}}\n", "without any" },
		/* a broken second line names its line */
		{ "{\"seq\":1,\"type\":\"status\",\"data\":null}\n{\"seq\":2,\"type\"\n", "line 2" },
		/* an event line that is not an event */
		{ "{\"seq\":1,\"type\":\"status\",\"data\":null}\n[1,2]\n", "line 2" },
		/* an agent_turn without its reply text */
		{ "{\"seq\":1,\"type\":\"agent_turn\",\"data\":{\"agent\":\"coder\",\"tokens\":3}}\n",
		  "no reply text" },
		/* without the agent */
		{ "{\"seq\":1,\"type\":\"agent_turn\",\"data\":{\"text\":\"x\"}}\n", "without \"agent\"" },
		/* data not an object */
		{ "{\"seq\":1,\"type\":\"agent_turn\",\"data\":\"x\"}\n", "not an object" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct llm_backend *b = replay(write_file("bad.jsonl", cases[i].text));
		if (b)
			fail_msg("case %zu: loaded", i);
		if (!strstr(tk_err_detail(), cases[i].detail))
			fail_msg("case %zu: detail '%s' lacks '%s'", i, tk_err_detail(),
				 cases[i].detail);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_turns),
		cmocka_unit_test(test_script_still_detected),
		cmocka_unit_test(test_bad_exports),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
