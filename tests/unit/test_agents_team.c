/* test_agents_team.c — the default team, tool names, and the "agents.team"
 * setting: overrides, additions, every validation error, atomicity. */
#include "testutil.h"

#include "agents/agents.h"
#include "core/config.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOOLBIT(t) (1u << AGENT_TOOL_##t)

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
	if (!v)
		fail_msg("bad test JSON: %s: %s", text, e.text);
	return v;
}

static void test_tool_names(void **state)
{
	(void)state;
	static const char *const names[] = { "list_files", "read_file", "write_file",
					     "edit_file",  "run",	"finish" };
	assert_int_equal(sizeof names / sizeof names[0], AGENT_TOOL_COUNT_);
	for (int i = 0; i < AGENT_TOOL_COUNT_; i++) {
		assert_string_equal(agent_tool_name((enum agent_tool)i), names[i]);
		assert_int_equal(agent_tool_from_name(names[i]), i);
	}
	assert_int_equal(agent_tool_from_name("delete_file"), -1);
	assert_int_equal(agent_tool_from_name("Run"), -1);
	assert_int_equal(agent_tool_from_name(""), -1);
	assert_int_equal(agent_tool_from_name(NULL), -1);
	assert_string_equal(agent_tool_name(AGENT_TOOL_COUNT_), "unknown");
}

static void test_default_team(void **state)
{
	(void)state;
	struct agent_team t;
	assert_int_equal(agent_team_default(&t), 0);
	assert_int_equal(t.n, 6);
	static const struct {
		const char *name;
		enum agent_kind kind;
	} want[] = {
		{ "planner-critic", AGENT_KIND_PLANNER }, { "coder", AGENT_KIND_WORKER },
		{ "tester", AGENT_KIND_WORKER },	  { "code-reviewer", AGENT_KIND_REVIEWER },
		{ "debugger", AGENT_KIND_WORKER },	  { "documenter", AGENT_KIND_WORKER },
	};
	for (size_t i = 0; i < 6; i++) {
		const struct agent_def *d = agent_team_find(&t, want[i].name);
		assert_non_null(d);
		assert_ptr_equal(d, &t.agents[i]);
		assert_int_equal(d->kind, want[i].kind);
		assert_true(strlen(d->role_prompt) > 200);
		assert_null(d->model);
		assert_null(d->adapter);
		assert_true(d->max_tokens > 0);
		assert_true(d->max_turns > 0);
		/* the sampling is the llm.h "backend default" except temperature */
		assert_true(d->sampling.top_p < 0);
		assert_int_equal(d->sampling.top_k, 0);
		assert_true(d->sampling.repeat_penalty < 0);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(d->role_prompt, t.agents[j].role_prompt);
		if (d->kind != AGENT_KIND_WORKER)
			assert_int_equal(d->tools, 0);
		else
			assert_true(d->tools & TOOLBIT(FINISH));
	}
	const struct agent_def *p = agent_team_find(&t, "planner-critic");
	const struct agent_def *c = agent_team_find(&t, "coder");
	const struct agent_def *doc = agent_team_find(&t, "documenter");
	assert_true(p->sampling.temperature > c->sampling.temperature);
	assert_true(c->sampling.temperature >= 0 && c->sampling.temperature <= 0.3);
	assert_int_equal(c->tools, AGENT_TOOLS_ALL);
	assert_int_equal(agent_team_find(&t, "tester")->tools, AGENT_TOOLS_ALL);
	assert_int_equal(agent_team_find(&t, "debugger")->tools, AGENT_TOOLS_ALL);
	assert_int_equal(doc->tools, AGENT_TOOLS_ALL & ~TOOLBIT(RUN));
	/* the tester's prompt asks for test_command, the reviewer is adversarial */
	assert_non_null(strstr(agent_team_find(&t, "tester")->role_prompt, "test_command"));
	assert_non_null(strstr(agent_team_find(&t, "code-reviewer")->role_prompt, "tests that do not test"));
	assert_null(agent_team_find(&t, "security"));
	assert_null(agent_team_find(&t, NULL));
	assert_null(agent_team_find(NULL, "coder"));
	agent_team_free(&t);
	assert_int_equal(t.n, 0);
	agent_team_free(NULL);
}

static void test_override_and_add(void **state)
{
	(void)state;
	struct agent_team t;
	assert_int_equal(agent_team_default(&t), 0);
	char *coder_prompt = strdup(agent_team_find(&t, "coder")->role_prompt);
	json_t *j = parse("[{\"name\": \"coder\", \"adapter\": \"coder-lora\", \"temperature\": 0,"
			  "  \"top_p\": 0.9, \"top_k\": 40, \"max_tokens\": 4096, \"model\": \"qwen\"},"
			  " {\"name\": \"security\", \"kind\": \"worker\", \"role_prompt\": \"Find holes.\","
			  "  \"tools\": [\"read_file\", \"list_files\", \"finish\"], \"max_turns\": 5},"
			  " {\"name\": \"second_opinion\", \"kind\": \"reviewer\", \"role_prompt\": \"Review.\"},"
			  " {\"name\": \"documenter\", \"kind\": \"reviewer\"},"
			  " {\"name\": \"tester\", \"tools\": [\"finish\", \"run\"], \"model\": null}]");
	assert_int_equal(agent_team_load_json(&t, j), 0);
	json_decref(j);
	assert_int_equal(t.n, 8);

	const struct agent_def *c = agent_team_find(&t, "coder");
	assert_string_equal(c->adapter, "coder-lora");
	assert_string_equal(c->model, "qwen");
	assert_true(c->sampling.temperature == 0);
	assert_true(c->sampling.top_p == 0.9);
	assert_int_equal(c->sampling.top_k, 40);
	assert_int_equal(c->max_tokens, 4096);
	assert_string_equal(c->role_prompt, coder_prompt); /* not given: kept */
	assert_int_equal(c->tools, AGENT_TOOLS_ALL);
	assert_int_equal(c->kind, AGENT_KIND_WORKER);
	free(coder_prompt);

	const struct agent_def *s = agent_team_find(&t, "security");
	assert_non_null(s);
	assert_ptr_equal(s, &t.agents[6]);
	assert_int_equal(s->kind, AGENT_KIND_WORKER);
	assert_string_equal(s->role_prompt, "Find holes.");
	assert_int_equal(s->tools, TOOLBIT(READ_FILE) | TOOLBIT(LIST_FILES) | TOOLBIT(FINISH));
	assert_int_equal(s->max_turns, 5);
	assert_int_equal(s->max_tokens, 2048); /* a worker's default */
	assert_true(s->sampling.temperature == 0.2);
	assert_null(s->adapter);

	const struct agent_def *r = agent_team_find(&t, "second_opinion");
	assert_int_equal(r->kind, AGENT_KIND_REVIEWER);
	assert_int_equal(r->tools, 0);
	assert_int_equal(r->max_tokens, 1024);

	/* a worker that became a reviewer loses its tools */
	const struct agent_def *d = agent_team_find(&t, "documenter");
	assert_int_equal(d->kind, AGENT_KIND_REVIEWER);
	assert_int_equal(d->tools, 0);

	const struct agent_def *te = agent_team_find(&t, "tester");
	assert_int_equal(te->tools, TOOLBIT(FINISH) | TOOLBIT(RUN));
	assert_null(te->model);

	/* a second load starts from the result of the first */
	j = parse("[{\"name\": \"coder\", \"adapter\": null, \"model\": null}]");
	assert_int_equal(agent_team_load_json(&t, j), 0);
	json_decref(j);
	assert_null(agent_team_find(&t, "coder")->adapter);
	assert_null(agent_team_find(&t, "coder")->model);
	assert_non_null(agent_team_find(&t, "security"));

	/* null and [] change nothing */
	j = json_null();
	assert_int_equal(agent_team_load_json(&t, j), 0);
	json_decref(j);
	j = json_array();
	assert_int_equal(agent_team_load_json(&t, j), 0);
	json_decref(j);
	assert_int_equal(agent_team_load_json(&t, NULL), 0);
	assert_int_equal(t.n, 8);
	agent_team_free(&t);
}

/* Each bad setting fails with TK_EINVAL, a detail naming the entry and the
 * field, and leaves the team as it was. */
static void test_errors(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		const char *detail;
	} cases[] = {
		{ "{\"name\": \"coder\"}", "agents.team: expected an array" },
		{ "[1]", "agents.team[0]: expected an agent object, got integer" },
		{ "[{\"name\": \"coder\", \"temprature\": 0.1}]", "agents.team[0]: unknown field 'temprature'" },
		{ "[{\"kind\": \"worker\"}]", "agents.team[0].name: required" },
		{ "[{\"name\": 7}]", "agents.team[0].name: expected a string, got integer" },
		{ "[{\"name\": \"Coder\", \"kind\": \"worker\", \"role_prompt\": \"x\"}]", "agents.team[0].name: 'Coder' must be" },
		{ "[{\"name\": \"\", \"kind\": \"worker\", \"role_prompt\": \"x\"}]", "agents.team[0].name:" },
		{ "[{\"name\": \"a b\", \"kind\": \"worker\", \"role_prompt\": \"x\"}]", "agents.team[0].name:" },
		{ "[{\"name\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", "
		  "\"kind\": \"worker\", \"role_prompt\": \"x\"}]", "agents.team[0].name:" },
		{ "[{\"name\": \"coder\"}, {\"name\": \"coder\", \"max_turns\": 3}]",
		  "agents.team[1].name: 'coder' is also entry 0" },
		{ "[{\"name\": \"security\", \"role_prompt\": \"x\"}]", "agents.team[0].kind: required for the new agent 'security'" },
		{ "[{\"name\": \"security\", \"kind\": \"worker\"}]", "agents.team[0].role_prompt: required for the new agent" },
		{ "[{\"name\": \"security\", \"kind\": \"boss\", \"role_prompt\": \"x\"}]", "agents.team[0].kind: must be" },
		{ "[{\"name\": \"coder\", \"kind\": 1}]", "agents.team[0].kind: must be" },
		{ "[{\"name\": \"coder\", \"role_prompt\": \"\"}]", "agents.team[0].role_prompt: must be 1.." },
		{ "[{\"name\": \"coder\", \"role_prompt\": [\"x\"]}]", "agents.team[0].role_prompt: expected a string, got array" },
		{ "[{\"name\": \"coder\", \"model\": 3}]", "agents.team[0].model: expected a string or null, got integer" },
		{ "[{\"name\": \"coder\", \"model\": \"\"}]", "agents.team[0].model: must be 1.." },
		{ "[{\"name\": \"coder\", \"adapter\": true}]", "agents.team[0].adapter: expected a string or null" },
		{ "[{\"name\": \"coder\", \"temperature\": \"hot\"}]", "agents.team[0].temperature: expected a number, got string" },
		{ "[{\"name\": \"coder\", \"temperature\": -0.5}]", "agents.team[0].temperature: must be in [0, 100], got -0.5" },
		{ "[{\"name\": \"coder\", \"top_p\": 0}]", "agents.team[0].top_p: must be in (0, 1], got 0" },
		{ "[{\"name\": \"coder\", \"top_p\": 1.5}]", "agents.team[0].top_p:" },
		{ "[{\"name\": \"coder\", \"top_k\": 2.5}]", "agents.team[0].top_k: expected an integer, got number" },
		{ "[{\"name\": \"coder\", \"top_k\": -1}]", "agents.team[0].top_k: must be in 0..100000, got -1" },
		{ "[{\"name\": \"coder\", \"max_tokens\": 0}]", "agents.team[0].max_tokens: must be in 1.." },
		{ "[{\"name\": \"coder\", \"max_turns\": 100000}]", "agents.team[0].max_turns: must be in 1..1000" },
		{ "[{\"name\": \"coder\", \"tools\": \"run\"}]", "agents.team[0].tools: expected an array of tool names, got string" },
		{ "[{\"name\": \"coder\", \"tools\": [\"finish\", \"rm\"]}]", "agents.team[0].tools[1]: unknown tool 'rm'" },
		{ "[{\"name\": \"coder\", \"tools\": [\"finish\", 3]}]", "agents.team[0].tools[1]: expected a tool name, got integer" },
		{ "[{\"name\": \"coder\", \"tools\": [\"finish\", \"run\", \"finish\"]}]", "agents.team[0].tools[2]: 'finish' is listed twice" },
		{ "[{\"name\": \"coder\", \"tools\": [\"read_file\"]}]", "agents.team[0].tools: a worker needs \"finish\"" },
		{ "[{\"name\": \"code-reviewer\", \"tools\": [\"finish\"]}]", "agents.team[0].tools: only workers call tools ('code-reviewer' is a reviewer)" },
		{ "[{\"name\": \"coder\", \"kind\": \"planner\", \"tools\": [\"finish\"]}]", "agents.team[0].tools: only workers" },
		/* a valid first entry does not survive a bad second one */
		{ "[{\"name\": \"coder\", \"max_turns\": 3}, {\"name\": \"new\", \"kind\": \"worker\", "
		  "\"role_prompt\": \"x\", \"top_k\": \"no\"}]", "agents.team[1].top_k:" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct agent_team t;
		assert_int_equal(agent_team_default(&t), 0);
		json_t *j = parse(cases[i].json);
		int rc = agent_team_load_json(&t, j);
		json_decref(j);
		if (rc != TK_EINVAL || !strstr(tk_err_detail(), cases[i].detail))
			fail_msg("case %zu (%s): rc %d, detail '%s', want '%s'", i, cases[i].json, rc,
				 tk_err_detail(), cases[i].detail);
		/* unchanged */
		assert_int_equal(t.n, 6);
		assert_int_equal(agent_team_find(&t, "coder")->max_turns, 12);
		assert_int_equal(agent_team_find(&t, "coder")->tools, AGENT_TOOLS_ALL);
		assert_null(agent_team_find(&t, "coder")->model);
		agent_team_free(&t);
	}
}

static void test_team_max(void **state)
{
	(void)state;
	struct agent_team t;
	assert_int_equal(agent_team_default(&t), 0);
	json_t *arr = json_array();
	for (size_t i = 0; i < AGENT_TEAM_MAX - 6; i++) {
		char name[32];
		snprintf(name, sizeof name, "extra-%zu", i);
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "name", name, "kind",
						     "worker", "role_prompt", "Help."));
	}
	assert_int_equal(agent_team_load_json(&t, arr), 0);
	assert_int_equal(t.n, AGENT_TEAM_MAX);
	assert_non_null(agent_team_find(&t, "extra-25"));
	json_t *one = parse("[{\"name\": \"one-too-many\", \"kind\": \"worker\", \"role_prompt\": \"x\"}]");
	assert_int_equal(agent_team_load_json(&t, one), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "agents.team[0]: the team already has 32 agents"));
	assert_int_equal(t.n, AGENT_TEAM_MAX);
	/* overriding an existing agent still works at the cap */
	json_decref(one);
	one = parse("[{\"name\": \"extra-0\", \"max_turns\": 2}]");
	assert_int_equal(agent_team_load_json(&t, one), 0);
	assert_int_equal(agent_team_find(&t, "extra-0")->max_turns, 2);
	json_decref(one);
	json_decref(arr);
	agent_team_free(&t);

	/* an array longer than a team can be is refused before any entry */
	assert_int_equal(agent_team_default(&t), 0);
	arr = json_array();
	for (size_t i = 0; i < AGENT_TEAM_MAX + 1; i++)
		json_array_append_new(arr, json_pack("{s:s,s:i}", "name", "coder", "max_turns", 3));
	assert_int_equal(agent_team_load_json(&t, arr), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "agents.team: 33 entries, more than the 32"));
	assert_int_equal(agent_team_find(&t, "coder")->max_turns, 12);
	json_decref(arr);
	agent_team_free(&t);
}

static void test_from_config(void **state)
{
	(void)state;
	char dir[512], path[600];
	tk_test_mkdtemp(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/tanuki.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"agents\": {\"team\": [{\"name\": \"coder\", \"adapter\": \"my-coder\"},"
	      " {\"name\": \"optimizer\", \"kind\": \"worker\", \"role_prompt\": \"Make it fast.\"}]}}",
	      f);
	fclose(f);
	char *no_env[] = { NULL };
	struct tk_config *c;
	assert_int_equal(tk_config_load(path, no_env, &c), 0);
	struct agent_team t;
	assert_int_equal(agent_team_from_config(c, &t), 0);
	assert_int_equal(t.n, 7);
	assert_string_equal(agent_team_find(&t, "coder")->adapter, "my-coder");
	assert_string_equal(agent_team_find(&t, "optimizer")->role_prompt, "Make it fast.");
	agent_team_free(&t);
	tk_config_free(c);

	/* no setting: the default team */
	assert_int_equal(tk_config_load(NULL, no_env, &c), 0);
	assert_int_equal(agent_team_from_config(c, &t), 0);
	assert_int_equal(t.n, 6);
	agent_team_free(&t);

	/* a bad value through --set: the error names the entry and field */
	assert_int_equal(tk_config_set_arg(c, "agents.team=[{\"name\":\"coder\",\"max_turns\":0}]"), 0);
	assert_int_equal(agent_team_from_config(c, &t), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "agents.team[0].max_turns"));
	assert_int_equal(t.n, 0);
	agent_team_free(&t);
	tk_config_free(c);

	/* and through the environment */
	char *env[] = { "TANUKI_AGENTS_TEAM=[{\"name\":\"debugger\",\"temperature\":0.5}]", NULL };
	assert_int_equal(tk_config_load(NULL, env, &c), 0);
	assert_int_equal(agent_team_from_config(c, &t), 0);
	assert_true(agent_team_find(&t, "debugger")->sampling.temperature == 0.5);
	agent_team_free(&t);
	tk_config_free(c);
	tk_test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tool_names),
		cmocka_unit_test(test_default_team),
		cmocka_unit_test(test_override_and_add),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_team_max),
		cmocka_unit_test(test_from_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
