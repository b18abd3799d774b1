/*
 * test_agents_orch.c — the orchestrator end to end (agent_run_task) with the
 * scripted backend and real sandbox runs: a C task that fails to compile,
 * then fails a test, then passes after a review round; a Python task whose
 * tester writes the tests; malformed replies repaired (and a planner that
 * never answers properly replaced by the default plan); budgets (tokens,
 * iterations, wall time) ending the task with a partial result; a hostile
 * "solution" (fork bomb, network access) contained and reported; cancel,
 * deadline and a sink that asks to stop; briefings that do not fit the
 * context window; ingress validation; settings from the configuration.
 *
 * Each script is built here as JSON (the replies are JSON objects dumped
 * into the scripted backend's "text"), so what each agent answers reads
 * next to what the test expects. Expected files are computed from the
 * script's own strings.
 *
 * Tests that run the sandbox need the host minimum; like test_sandbox they
 * fail without it unless TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1 (then they
 * are skipped).
 */
#include "testutil.h"

#include "agents/agents.h"
#include "agents/protocol.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "sandbox/sandbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[512];
static bool g_skip;
static struct tk_sandbox_profiles g_profiles;
static struct tk_sandbox_options g_sbopts;
static int g_script_n;

static int group_setup(void **state)
{
	(void)state;
	struct tk_sandbox_host h;
	tk_sandbox_probe(&h, true);
	if (!tk_sandbox_host_secure(&h)) {
		const char *opt = getenv("TANUKI_SANDBOX_TESTS_ALLOW_INSECURE");
		fprintf(stderr, "test_agents_orch: this host lacks the sandbox minimum: %s\n",
			h.why_not);
		if (!opt || strcmp(opt, "1")) {
			fprintf(stderr, "test_agents_orch: failing; set "
					"TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1 to skip on purpose\n");
			return -1;
		}
		fprintf(stderr, "test_agents_orch: SKIPPING the tests that run the sandbox\n");
		g_skip = true;
	}
	/* TK_TEST_AGENTS_DEBUG=1 shows the briefings and raw replies */
	if (getenv("TK_TEST_AGENTS_DEBUG"))
		tk_log_set_level(TK_LOG_DEBUG);
	tk_sandbox_profiles_defaults(&g_profiles);
	tk_sandbox_options_defaults(&g_sbopts);
	/* our own uid, so concurrent test programs never see each other's
	 * processes */
	g_sbopts.uid = g_sbopts.gid = 62000 + (unsigned)getpid() % 3000;
	tk_test_mkdtemp(g_dir, sizeof g_dir);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	tk_sandbox_shutdown();
	if (g_dir[0])
		tk_test_rmtree(g_dir);
	return 0;
}

#define NEED_SANDBOX()          \
	do {                    \
		if (g_skip)     \
			skip(); \
	} while (0)

/* ---- replies ------------------------------------------------------------- */

static json_t *tool(const char *name, json_t *args)
{
	return json_pack("{s:s, s:s, s:o}", "thought", "next step", "tool", name, "args", args);
}

static json_t *t_write(const char *path, const char *content)
{
	return tool("write_file", json_pack("{s:s, s:s}", "path", path, "content", content));
}

static json_t *t_edit(const char *path, const char *search, const char *replace)
{
	return tool("edit_file",
		    json_pack("{s:s, s:s, s:s}", "path", path, "search", search, "replace", replace));
}

static json_t *t_run(const char *cmd)
{
	return tool("run", json_pack("{s:s}", "command", cmd));
}

static json_t *t_finish(const char *summary)
{
	return tool("finish", json_pack("{s:s}", "summary", summary));
}

static json_t *t_finish_cmd(const char *summary, const char *cmd)
{
	return tool("finish", json_pack("{s:s, s:s}", "summary", summary, "test_command", cmd));
}

static json_t *step(const char *agent, const char *goal)
{
	return json_pack("{s:s, s:s}", "agent", agent, "goal", goal);
}

/* {"plans": [...]} from plan objects (references stolen). */
static json_t *plans1(json_t *p)
{
	return json_pack("{s:[o]}", "plans", p);
}

static json_t *plans2(json_t *p, json_t *q)
{
	return json_pack("{s:[o, o]}", "plans", p, q);
}

static json_t *approve(void)
{
	return json_pack("{s:s, s:[]}", "verdict", "approve", "issues");
}

static json_t *changes(const char *issue)
{
	return json_pack("{s:s, s:[s]}", "verdict", "changes", "issues", issue);
}

/* A script under construction: replies by agent, turns counted here. */
struct script {
	json_t *responses;
	json_t *turns;
};

static void s_init(struct script *s)
{
	s->responses = json_array();
	s->turns = json_object();
	assert_non_null(s->responses);
}

/* The agent's next reply: a JSON object (stolen) or raw text. */
static void s_add_full(struct script *s, const char *agent, json_t *obj, const char *raw,
		       int prompt_tokens, int completion_tokens)
{
	json_int_t turn = json_integer_value(json_object_get(s->turns, agent));
	json_object_set_new(s->turns, agent, json_integer(turn + 1));
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : strdup(raw ? raw : "");
	assert_non_null(text);
	json_t *e = json_pack("{s:s, s:I, s:s}", "agent", agent, "turn", turn, "text", text);
	if (prompt_tokens >= 0)
		json_object_set_new(e, "usage",
				    json_pack("{s:i, s:i}", "prompt_tokens", prompt_tokens,
					      "completion_tokens", completion_tokens));
	json_array_append_new(s->responses, e);
	free(text);
	json_decref(obj);
}

static void s_add(struct script *s, const char *agent, json_t *obj)
{
	s_add_full(s, agent, obj, NULL, -1, -1);
}

static void s_raw(struct script *s, const char *agent, const char *raw)
{
	s_add_full(s, agent, NULL, raw, -1, -1);
}

/* Writes the script and makes a backend on it (with a private registry). */
static struct llm_backend *s_backend(struct script *s, struct tk_registry *reg)
{
	char path[700];
	snprintf(path, sizeof path, "%s/script-%d.json", g_dir, g_script_n++);
	json_t *doc = json_pack("{s:O}", "responses", s->responses);
	assert_int_equal(json_dump_file(doc, path, JSON_INDENT(1)), 0);
	json_decref(doc);
	struct llm_options o;
	llm_options_default(&o);
	o.backend = "scripted";
	o.script = path;
	o.metrics = reg;
	struct llm_backend *b = llm_backend_new(&o);
	assert_non_null(b);
	json_decref(s->responses);
	json_decref(s->turns);
	return b;
}

/* ---- running a task -------------------------------------------------------- */

struct sink {
	json_t *events;          /* [{type, data}] */
	atomic_bool *raise;      /* set when the first event of type raise_on comes */
	const char *raise_on;
	int stop_on_nth_turn;    /* > 0: return non-zero at that agent_turn */
	int turns_seen;
};

static int sink_emit(void *ud, const char *type, const json_t *data)
{
	struct sink *k = ud;
	json_array_append_new(k->events, json_pack("{s:s, s:O}", "type", type, "data", data));
	if (k->raise && k->raise_on && !strcmp(type, k->raise_on))
		atomic_store(k->raise, true);
	if (!strcmp(type, "agent_turn") && ++k->turns_seen == k->stop_on_nth_turn)
		return 1;
	return 0;
}

struct run {
	struct agent_team team;
	struct agent_settings set;
	struct tk_registry *reg;
	struct llm_backend *llm;
	struct sink sink;
	struct agent_env env;
	struct agent_result res;
	int rc;
};

static void run_init(struct run *r)
{
	memset(r, 0, sizeof *r);
	assert_int_equal(agent_team_default(&r->team), 0);
	agent_settings_default(&r->set);
	r->reg = tk_registry_new();
	assert_non_null(r->reg);
	r->sink.events = json_array();
	r->env = (struct agent_env){ .team = &r->team,
				     .settings = &r->set,
				     .profiles = &g_profiles,
				     .sandbox_opts = &g_sbopts,
				     .emit = sink_emit,
				     .emit_ud = &r->sink,
				     .metrics = r->reg };
}

static void run_task(struct run *r, struct script *s, const struct agent_task *t)
{
	r->llm = s_backend(s, r->reg);
	r->env.llm = r->llm;
	r->rc = agent_run_task(&r->env, t, &r->res);
}

static void run_free(struct run *r)
{
	agent_result_free(&r->res);
	llm_backend_free(r->llm);
	json_decref(r->sink.events);
	tk_registry_free(r->reg);
	agent_team_free(&r->team);
}

/* Events of a type, in order (borrowed data), and how many. */
static size_t count(const struct run *r, const char *type)
{
	size_t n = 0, i;
	json_t *e;
	json_array_foreach(r->sink.events, i, e)
		n += !strcmp(tk_json_get_str(e, "type", ""), type);
	return n;
}

static const json_t *nth(const struct run *r, const char *type, size_t k)
{
	size_t i;
	json_t *e;
	json_array_foreach(r->sink.events, i, e)
		if (!strcmp(tk_json_get_str(e, "type", ""), type) && k-- == 0)
			return json_object_get(e, "data");
	return NULL;
}

static const json_t *last(const struct run *r, const char *type)
{
	size_t n = count(r, type);
	return n ? nth(r, type, n - 1) : NULL;
}

/* The changed file at path in the result, or NULL. */
static const json_t *changed(const struct run *r, const char *path)
{
	size_t i;
	json_t *f;
	json_array_foreach(r->res.files, i, f)
		if (!strcmp(tk_json_get_str(f, "path", ""), path))
			return f;
	return NULL;
}

static int64_t usage(const struct run *r, const char *key)
{
	return tk_json_get_int(r->res.usage, key, -1);
}

static double counter(struct tk_registry *reg, const char *name, const char *l1, const char *l2,
		      const char *a, const char *b)
{
	struct tk_metric *m = tk_metric_counter(reg, name, "x",
						(const char *[]){ l1, l2 }, 2);
	assert_non_null(m);
	return tk_series_value(tk_metric_series(m, (const char *[]){ a, b }));
}

/* Turn numbers of each agent's agent_turn events are 0, 1, 2, ... */
static void assert_turns_sequential(const struct run *r)
{
	json_t *next = json_object();
	size_t i;
	json_t *e;
	json_array_foreach(r->sink.events, i, e) {
		if (strcmp(tk_json_get_str(e, "type", ""), "agent_turn"))
			continue;
		const json_t *d = json_object_get(e, "data");
		const char *a = tk_json_get_str(d, "agent", "");
		json_int_t want = json_integer_value(json_object_get(next, a));
		assert_int_equal(tk_json_get_int(d, "turn", -1), want);
		json_object_set_new(next, a, json_integer(want + 1));
	}
	json_decref(next);
}

/* ---- (1) a C task: compile error, failing test, review round --------------- */

static const char c_test[] = "#include <stdio.h>\n"
			     "int add(int a, int b);\n"
			     "int main(void)\n{\n"
			     "\tif (add(2, 3) != 5) { puts(\"add(2,3) is wrong\"); return 1; }\n"
			     "\tif (add(-4, 4) != 0) { puts(\"add(-4,4) is wrong\"); return 1; }\n"
			     "\tputs(\"all tests passed\");\n\treturn 0;\n}\n";

static void test_c_task_completes(void **state)
{
	(void)state;
	NEED_SANDBOX();
	/* what the agents write, step by step */
	const char *v1 = "int add(int a, int b)\n{\n\treturn a + b\n}\n"; /* no ';' */
	const char *bad_expr = "return a + b\n", *fix1 = "return a - b;\n";
	const char *fix2 = "return a + b;\n";
	const char *doc_search = "int add(int a, int b)\n";
	const char *doc_replace = "/* a + b; wraps like int on overflow */\nint add(int a, int b)\n";

	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans2(json_pack("{s:s, s:[o, o]}", "title", "write then review", "steps",
			       step("coder", "write add.c with int add(int, int)"),
			       step("code-reviewer", "review add.c")),
		     json_pack("{s:s, s:[o]}", "title", "just write", "steps",
			       step("coder", "write add.c"))));
	s_add(&s, "planner-critic", json_pack("{s:i, s:s}", "choice", 0, "reason", "it reviews"));
	s_add(&s, "coder", t_write("add.c", v1));
	s_add(&s, "coder", t_finish("wrote add.c"));
	s_add(&s, "code-reviewer", approve());
	/* round 1: compile error -> debugger */
	s_add(&s, "debugger", t_edit("add.c", bad_expr, fix1));
	s_add(&s, "debugger", t_finish("added the missing semicolon"));
	/* round 2: the test fails -> debugger */
	s_add(&s, "debugger", t_run("gcc -o t test.c add.c && ./t"));
	s_add(&s, "debugger", t_edit("add.c", fix1, fix2));
	s_add(&s, "debugger", t_finish("add subtracted; fixed"));
	/* round 3: tests pass; the reviewer asks for changes -> coder */
	s_add(&s, "code-reviewer", changes("add.c: say what happens on overflow"));
	s_add(&s, "coder", t_edit("add.c", doc_search, doc_replace));
	s_add(&s, "coder", t_finish("documented overflow in add.c"));
	/* round 4: tests pass, approved */
	s_add(&s, "code-reviewer", approve());

	struct run r;
	run_init(&r);
	struct agent_file in[] = { { "test.c", c_test, sizeof c_test - 1 } };
	struct agent_task t = { .id = "task-c-1",
				.description = "Write add.c: int add(int a, int b) returns a + b.",
				.test_command = "gcc -Wall -o t test.c add.c && ./t",
				.files = in,
				.n_files = 1 };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "completed");
	assert_null(r.res.reason);
	assert_int_equal(r.res.iterations, 4);

	/* add.c is the first version with the three edits applied */
	char want[512];
	snprintf(want, sizeof want, "%s", v1);
	const char *edits[][2] = { { bad_expr, fix1 }, { fix1, fix2 }, { doc_search, doc_replace } };
	for (size_t i = 0; i < 3; i++) {
		char *at = strstr(want, edits[i][0]);
		assert_non_null(at);
		char tail[512];
		snprintf(tail, sizeof tail, "%s", at + strlen(edits[i][0]));
		snprintf(at, sizeof want - (size_t)(at - want), "%s%s", edits[i][1], tail);
	}
	const json_t *f = changed(&r, "add.c");
	assert_non_null(f);
	assert_string_equal(tk_json_get_str(f, "status", ""), "added");
	assert_string_equal(tk_json_get_str(f, "content", ""), want);
	assert_null(changed(&r, "test.c")); /* unchanged input */
	assert_null(changed(&r, "t"));      /* the binary is not text */
	assert_int_equal(json_array_size(r.res.files), 1);
	assert_non_null(strstr(r.res.diff, "--- /dev/null"));
	assert_non_null(strstr(r.res.diff, "+++ b/add.c"));
	assert_non_null(strstr(r.res.diff, "+\treturn a + b;"));
	assert_non_null(strstr(r.res.summary, "documented overflow"));

	/* the test runs: compile error, failing test, pass, pass */
	assert_int_equal(count(&r, "test_run"), 4);
	const json_t *t0 = nth(&r, "test_run", 0), *t1 = nth(&r, "test_run", 1);
	assert_false(tk_json_get_bool(t0, "passed", true));
	assert_string_equal(tk_json_get_str(t0, "status", ""), "RE");
	assert_non_null(strstr(tk_json_get_str(t0, "output", ""), "error"));
	assert_false(tk_json_get_bool(t1, "passed", true));
	assert_non_null(strstr(tk_json_get_str(t1, "output", ""), "add(2,3) is wrong"));
	assert_true(tk_json_get_bool(nth(&r, "test_run", 2), "passed", false));
	assert_true(tk_json_get_bool(r.res.tests, "passed", false));
	assert_int_equal(tk_json_get_int(r.res.tests, "exit_code", -1), 0);
	assert_non_null(strstr(tk_json_get_str(r.res.tests, "output", ""), "all tests passed"));

	/* events: task first (with the input files), plan, reviews, status */
	const json_t *task = nth(&r, "task", 0);
	assert_string_equal(tk_json_get_str(task, "id", ""), "task-c-1");
	assert_string_equal(tk_json_get_str(task, "language", ""), "c");
	assert_string_equal(tk_json_get_str(task, "profile", ""), "c");
	const json_t *in0 = json_array_get(json_object_get(task, "files"), 0);
	assert_string_equal(tk_json_get_str(in0, "content", ""), c_test);
	assert_string_equal(tk_json_get_str(json_object_get(json_array_get(r.sink.events, 0), "data"),
					    "id", ""),
			    "task-c-1");
	assert_int_equal(tk_json_get_int(nth(&r, "plan", 0), "choice", -1), 0);
	assert_int_equal(count(&r, "review"), 3);
	assert_string_equal(tk_json_get_str(nth(&r, "review", 1), "verdict", ""), "changes");
	assert_string_equal(tk_json_get_str(nth(&r, "status", 0), "status", ""), "running");
	assert_string_equal(tk_json_get_str(last(&r, "status"), "status", ""), "completed");
	assert_turns_sequential(&r);

	/* usage adds up with the events */
	assert_int_equal(usage(&r, "llm_calls"), (int64_t)count(&r, "agent_turn"));
	assert_int_equal(usage(&r, "llm_calls"), 14);
	assert_int_equal(usage(&r, "tool_calls"), (int64_t)count(&r, "tool_result"));
	assert_int_equal(usage(&r, "tool_calls"), 5);
	assert_true(usage(&r, "sandbox_ms") >= 0);
	assert_true(usage(&r, "prompt_tokens") > 0);
	/* the agent_turn event carries the whole reply */
	const json_t *turn0 = nth(&r, "agent_turn", 2);
	assert_string_equal(tk_json_get_str(turn0, "agent", ""), "coder");
	assert_non_null(strstr(tk_json_get_str(turn0, "text", ""), "return a + b"));

	/* metrics */
	assert_true(counter(r.reg, "tanuki_agent_invocations_total", "agent", "outcome", "debugger",
			    "ok") == 5.0);
	assert_true(counter(r.reg, "tanuki_tool_calls_total", "tool", "outcome", "edit_file",
			    "ok") == 3.0);

	json_t *j = agent_result_to_json(&r.res);
	assert_string_equal(tk_json_get_str(j, "status", ""), "completed");
	assert_int_equal(tk_json_get_int(j, "iterations", -1), 4);
	assert_true(json_is_array(json_object_get(j, "files")));
	json_decref(j);

	/* (7) the events, exported as JSONL, replay the same task */
	char path[700];
	snprintf(path, sizeof path, "%s/export-c.jsonl", g_dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	size_t i;
	json_t *e;
	json_array_foreach(r.sink.events, i, e) {
		json_t *line = json_pack("{s:I, s:O, s:O}", "seq", (json_int_t)i + 1, "type",
					 json_object_get(e, "type"), "data", json_object_get(e, "data"));
		char *txt = json_dumps(line, JSON_COMPACT);
		fprintf(fp, "%s\n", txt);
		free(txt);
		json_decref(line);
	}
	fclose(fp);
	struct run rp;
	run_init(&rp);
	struct llm_options lo;
	llm_options_default(&lo);
	lo.backend = "scripted";
	lo.script = path;
	lo.metrics = rp.reg;
	rp.llm = llm_backend_new(&lo);
	assert_non_null(rp.llm);
	rp.env.llm = rp.llm;
	rp.rc = agent_run_task(&rp.env, &t, &rp.res);
	assert_int_equal(rp.rc, 0);
	assert_int_equal(rp.res.outcome, r.res.outcome);
	assert_int_equal(rp.res.iterations, r.res.iterations);
	assert_true(json_equal(rp.res.files, r.res.files));
	assert_string_equal(rp.res.diff, r.res.diff);
	assert_int_equal(usage(&rp, "llm_calls"), usage(&r, "llm_calls"));
	assert_int_equal(usage(&rp, "prompt_tokens"), usage(&r, "prompt_tokens"));
	assert_int_equal(usage(&rp, "completion_tokens"), usage(&r, "completion_tokens"));
	assert_int_equal(count(&rp, "test_run"), count(&r, "test_run"));
	run_free(&rp);
	run_free(&r);
}

/* ---- (2) a Python task: the tester writes the tests ------------------------ */

static void test_python_task_tester_command(void **state)
{
	(void)state;
	NEED_SANDBOX();
	const char *stub = "def mul(a, b):\n    raise NotImplementedError\n";
	const char *impl = "    return a * b\n";
	const char *tests = "import unittest\nfrom calc import mul\n\n"
			    "class T(unittest.TestCase):\n"
			    "    def test_mul(self):\n"
			    "        self.assertEqual(mul(6, 7), 42)\n"
			    "        self.assertEqual(mul(-2, 3), -6)\n\n"
			    "unittest.main()\n";
	const char *cmd = "python3 -B test_calc.py";
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o, o, o]}", "title", "implement, test, review", "steps",
			       step("coder", "implement mul"), step("tester", "test mul"),
			       step("code-reviewer", "review"))));
	s_add(&s, "coder", t_edit("calc.py", "    raise NotImplementedError\n", impl));
	s_add(&s, "coder", t_finish("mul implemented"));
	s_add(&s, "tester", t_write("test_calc.py", tests));
	s_add(&s, "tester", t_run(cmd));
	s_add(&s, "tester", t_finish_cmd("tests pass", cmd));
	s_add(&s, "code-reviewer", approve());

	struct run r;
	run_init(&r);
	r.set.plans = 1;
	struct agent_file in[] = { { "calc.py", stub, strlen(stub) } };
	struct agent_task t = { .description = "Implement mul(a, b) in calc.py.",
				.files = in,
				.n_files = 1 };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "completed");
	assert_int_equal(r.res.iterations, 1);
	const json_t *task = nth(&r, "task", 0);
	assert_string_equal(tk_json_get_str(task, "language", ""), "python"); /* guessed */
	assert_string_equal(tk_json_get_str(task, "profile", ""), "python");
	assert_true(tk_json_get_str(task, "id", NULL) != NULL); /* made up */

	/* the tester's run passed inside the sandbox */
	const json_t *tr = nth(&r, "tool_result", 2);
	assert_string_equal(tk_json_get_str(tr, "tool", ""), "run");
	assert_string_equal(tk_json_get_str(tr, "status", ""), "OK");

	const json_t *f = changed(&r, "calc.py");
	assert_non_null(f);
	assert_string_equal(tk_json_get_str(f, "status", ""), "modified");
	char want[256];
	snprintf(want, sizeof want, "def mul(a, b):\n%s", impl);
	assert_string_equal(tk_json_get_str(f, "content", ""), want);
	f = changed(&r, "test_calc.py");
	assert_non_null(f);
	assert_string_equal(tk_json_get_str(f, "status", ""), "added");
	assert_int_equal(json_array_size(r.res.files), 2);
	assert_non_null(strstr(r.res.diff, "--- a/calc.py"));
	assert_non_null(strstr(r.res.diff, "-    raise NotImplementedError"));

	/* the verification used the tester's command; one plan: no critic
	 * call; the approval given after the last change is kept */
	assert_string_equal(tk_json_get_str(r.res.tests, "command", ""), cmd);
	assert_true(tk_json_get_bool(r.res.tests, "passed", false));
	assert_int_equal(usage(&r, "llm_calls"), 7);
	assert_int_equal(count(&r, "review"), 1);
	run_free(&r);
}

/* ---- (3) malformed replies ------------------------------------------------- */

static void test_malformed_repaired(void **state)
{
	(void)state;
	NEED_SANDBOX();
	struct script s;
	s_init(&s);
	/* the planner never answers properly: 1 + max_repairs replies */
	s_raw(&s, "planner-critic", "I would start by writing the code.");
	s_raw(&s, "planner-critic", "{\"plans\": \"coder first\"}");
	s_raw(&s, "planner-critic", "{\"plans\": [{\"title\": \"x\", \"steps\": []}]}");
	/* the coder: prose, then a write without content, then right */
	s_raw(&s, "coder", "Sure! Let me write the script.");
	s_add(&s, "coder", tool("write_file", json_pack("{s:s}", "path", "hello.sh")));
	s_add(&s, "coder", t_write("hello.sh", "echo hello\n"));
	s_raw(&s, "coder", "Done:\n```json\n{\"thought\": \"\", \"tool\": \"finish\", "
			   "\"args\": {\"summary\": \"hello.sh prints hello\"}}\n```\n");
	s_add(&s, "code-reviewer", approve());

	struct run r;
	run_init(&r);
	struct agent_task t = { .description = "Write hello.sh that prints hello.",
				.test_command = "sh hello.sh | grep -qx hello" };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "completed");

	/* the default plan replaced the planner: coder then code-reviewer
	 * (no tester: the request has a test command) */
	const json_t *plan = nth(&r, "plan", 0);
	assert_true(tk_json_get_bool(plan, "default", false));
	assert_non_null(strstr(tk_json_get_str(plan, "note", ""), "planner failed"));
	const json_t *steps = json_object_get(json_array_get(json_object_get(plan, "plans"), 0),
					      "steps");
	assert_int_equal(json_array_size(steps), 2);
	assert_string_equal(tk_json_get_str(json_array_get(steps, 0), "agent", ""), "coder");
	assert_string_equal(tk_json_get_str(json_array_get(steps, 1), "agent", ""), "code-reviewer");

	/* 3 planner calls, 4 coder calls, 1 review */
	assert_int_equal(usage(&r, "llm_calls"), 8);
	assert_true(counter(r.reg, "tanuki_agent_invocations_total", "agent", "outcome",
			    "planner-critic", "malformed") == 3.0);
	assert_true(counter(r.reg, "tanuki_agent_invocations_total", "agent", "outcome", "coder",
			    "malformed") == 2.0);
	assert_true(counter(r.reg, "tanuki_agent_invocations_total", "agent", "outcome", "coder",
			    "ok") == 2.0);
	const json_t *st = nth(&r, "step", 0);
	assert_string_equal(tk_json_get_str(st, "end", ""), "finished");
	assert_string_equal(tk_json_get_str(changed(&r, "hello.sh"), "content", ""), "echo hello\n");
	assert_non_null(strstr(r.res.summary, "hello.sh prints hello"));
	assert_turns_sequential(&r);
	run_free(&r);
}

/* A worker that keeps answering prose ends its step; the task goes on and
 * fails on iterations with a clear reason. */
static void test_malformed_gives_up(void **state)
{
	(void)state;
	NEED_SANDBOX();
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("coder", "write x"))));
	for (int i = 0; i < 3; i++)
		s_raw(&s, "coder", "no JSON here");
	s_add(&s, "debugger", t_finish("cannot fix"));
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	struct agent_task t = { .description = "Create x.txt.",
				.test_command = "test -f x.txt",
				.budget = { .max_iterations = 1 } };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "failed");
	assert_non_null(strstr(r.res.reason, "max_iterations (1)"));
	assert_non_null(strstr(r.res.reason, "tests still fail"));
	const json_t *st = nth(&r, "step", 0);
	assert_string_equal(tk_json_get_str(st, "end", ""), "malformed");
	assert_non_null(strstr(tk_json_get_str(st, "reason", ""), "3 malformed replies"));
	assert_int_equal(json_array_size(r.res.files), 0);
	assert_false(tk_json_get_bool(r.res.tests, "passed", true));
	run_free(&r);
}

/* ---- (4) budgets ------------------------------------------------------------ */

static void test_budget_tokens(void **state)
{
	(void)state;
	struct script s;
	s_init(&s);
	s_add_full(&s, "planner-critic",
		   plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("coder", "write"))),
		   NULL, 60, 10);
	s_add_full(&s, "coder", t_write("notes.txt", "partial work\n"), NULL, 60, 10);
	s_add_full(&s, "coder", t_finish("never reached"), NULL, 60, 10);
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	struct agent_task t = { .description = "Write notes.",
				.test_command = "true",
				.budget = { .max_tokens = 100 } };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "timed_out");
	assert_non_null(strstr(r.res.reason, "token budget"));
	assert_non_null(strstr(r.res.reason, "140 of 100"));
	/* the partial result has the file written before the budget ran out */
	assert_string_equal(tk_json_get_str(changed(&r, "notes.txt"), "content", ""),
			    "partial work\n");
	assert_int_equal(usage(&r, "prompt_tokens"), 120);
	assert_int_equal(usage(&r, "completion_tokens"), 20);
	assert_int_equal(usage(&r, "llm_calls"), 2);
	assert_true(json_is_null(r.res.tests));
	/* the 80 % warning came first */
	const json_t *w = nth(&r, "budget", 0);
	assert_non_null(w);
	assert_string_equal(tk_json_get_str(w, "budget", ""), "tokens");
	assert_string_equal(tk_json_get_str(last(&r, "status"), "status", ""), "timed_out");
	assert_non_null(strstr(r.res.summary, "timed_out"));
	run_free(&r);
}

static void test_budget_iterations(void **state)
{
	(void)state;
	NEED_SANDBOX();
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("coder", "write"))));
	s_add(&s, "coder", t_write("ok.sh", "exit 3\n"));
	s_add(&s, "coder", t_finish("wrote ok.sh"));
	s_add(&s, "debugger", t_edit("ok.sh", "exit 3", "exit 4"));
	s_add(&s, "debugger", t_finish("tried"));
	s_add(&s, "debugger", t_finish("gave up"));
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	r.set.budget.max_iterations = 2;
	struct agent_task t = { .description = "Make ok.sh exit 0.", .test_command = "sh ok.sh" };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "failed");
	assert_non_null(strstr(r.res.reason, "max_iterations (2)"));
	assert_int_equal(r.res.iterations, 2);
	assert_int_equal(count(&r, "test_run"), 2);
	assert_int_equal(tk_json_get_int(nth(&r, "test_run", 0), "exit_code", -1), 3);
	assert_int_equal(tk_json_get_int(r.res.tests, "exit_code", -1), 4);
	assert_string_equal(tk_json_get_str(changed(&r, "ok.sh"), "content", ""), "exit 4\n");
	/* a warning at 80 % of the iterations */
	bool warned = false;
	for (size_t i = 0; i < count(&r, "budget"); i++)
		warned |= !strcmp(tk_json_get_str(nth(&r, "budget", i), "budget", ""), "iterations");
	assert_true(warned);
	run_free(&r);
}

static void test_budget_wall(void **state)
{
	(void)state;
	NEED_SANDBOX();
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("coder", "write"))));
	s_add(&s, "coder", t_finish("nothing to write"));
	s_add(&s, "code-reviewer", approve());
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	struct agent_task t = { .description = "Wait.",
				.test_command = "sleep 20",
				.budget = { .wall_ms = 1500 } };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "timed_out");
	assert_non_null(strstr(r.res.reason, "wall-time budget"));
	/* the test run was cut at the budget, not at the profile's 30 s (on
	 * a machine so loaded that the scripted calls alone took 1.5 s the
	 * budget check before the run ends the task instead) */
	const json_t *tr = nth(&r, "test_run", 0);
	if (tr) {
		assert_false(tk_json_get_bool(tr, "passed", true));
		assert_true(tk_json_get_int(tr, "wall_ms", 999999) < 10000);
	}
	assert_true(usage(&r, "wall_ms") >= 1500);
	run_free(&r);
}

/* ---- (5) a hostile solution -------------------------------------------------- */

static void test_hostile_contained(void **state)
{
	(void)state;
	NEED_SANDBOX();
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("coder", "solve"))));
	s_add(&s, "coder", t_write("bomb.sh", "f() { f | f & }\nf\n"));
	s_add(&s, "coder", t_run("sh bomb.sh; sleep 30"));
	s_add(&s, "coder", t_run("bash -c 'exec 3<>/dev/tcp/1.1.1.1/80 && echo connected'"));
	s_add(&s, "coder", t_write("solution.sh", "echo safe\n"));
	s_add(&s, "coder", t_finish("a safe solution"));
	s_add(&s, "code-reviewer", approve());
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	/* a tight profile so the bomb ends fast */
	static struct tk_sandbox_profiles ps;
	ps = g_profiles;
	struct tk_sandbox_profile *sh = (struct tk_sandbox_profile *)tk_sandbox_profile_find(&ps,
											   "shell");
	assert_non_null(sh);
	sh->limits.wall_ms = 2000;
	sh->limits.pids = 32;
	r.env.profiles = &ps;
	r.set.profile = "shell";
	struct agent_task t = { .description = "Print safe.",
				.test_command = "sh solution.sh | grep -qx safe" };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "completed");

	/* the bomb was stopped by a limit and reported as such */
	const json_t *bomb = nth(&r, "tool_result", 1);
	assert_string_equal(tk_json_get_str(bomb, "tool", ""), "run");
	const char *st = tk_json_get_str(bomb, "status", "");
	assert_true(tk_json_get_bool(bomb, "ok", false)); /* the sandbox ran it */
	assert_string_not_equal(st, "OK");
	assert_string_not_equal(st, "XX");
	assert_true(tk_json_get_int(bomb, "wall_ms", 999999) < 20000);
	/* the network was not there */
	const json_t *net = nth(&r, "tool_result", 2);
	assert_string_equal(tk_json_get_str(net, "status", ""), "RE");
	assert_int_not_equal(tk_json_get_int(net, "exit_code", 0), 0);
	assert_null(strstr(tk_json_get_str(net, "output", ""), "connected"));
	/* the task went on: solution written, tests pass */
	assert_true(tk_json_get_bool(r.res.tests, "passed", false));
	assert_int_equal(usage(&r, "tool_calls"), 4);
	run_free(&r);
}

/* ---- no test command, turn limits, failures --------------------------------- */

/* With no test command anywhere, the approval alone completes the task and
 * the result says the tests were not run; a worker out of turns ends its
 * step with that reason. */
static void test_no_tests_and_turn_limit(void **state)
{
	(void)state;
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o, o]}", "title", "t", "steps", step("coder", "write"),
			       step("code-reviewer", "review"))));
	s_add(&s, "coder", t_write("README", "hello\n"));
	s_add(&s, "coder", tool("read_file", json_pack("{s:s}", "path", "README")));
	s_add(&s, "code-reviewer", approve());
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	for (size_t i = 0; i < r.team.n; i++)
		if (!strcmp(r.team.agents[i].name, "coder"))
			r.team.agents[i].max_turns = 2;
	struct agent_task t = { .description = "Write a README." };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "completed");
	assert_true(json_is_null(r.res.tests));
	assert_non_null(strstr(r.res.summary, "tests were not run"));
	assert_int_equal(count(&r, "test_run"), 0);
	const json_t *st = nth(&r, "step", 0);
	assert_string_equal(tk_json_get_str(st, "end", ""), "turn_limit");
	assert_int_equal(tk_json_get_int(st, "turns", -1), 2);
	assert_string_equal(tk_json_get_str(changed(&r, "README"), "content", ""), "hello\n");
	assert_false(tk_json_get_bool(last(&r, "status"), "tests_run", true));
	run_free(&r);

	/* a team without a reviewer: with no tests nothing verifies the work */
	struct script s2;
	s_init(&s2);
	s_add(&s2, "planner-critic",
	      plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("coder", "write"))));
	s_add(&s2, "coder", t_finish("nothing"));
	struct run r2;
	run_init(&r2);
	r2.set.plans = 1;
	for (size_t i = 0; i < r2.team.n; i++)
		if (r2.team.agents[i].kind == AGENT_KIND_REVIEWER)
			r2.team.agents[i].kind = AGENT_KIND_WORKER; /* no reviewer left */
	run_task(&r2, &s2, &t);
	assert_int_equal(r2.rc, 0);
	assert_string_equal(agent_outcome_name(r2.res.outcome), "failed");
	assert_non_null(strstr(r2.res.reason, "nothing verified"));
	run_free(&r2);
}

/* Input files under a directory the snapshot skips as a whole
 * (node_modules) are not reported as deleted; a real change elsewhere is. */
static void test_ignored_dir_not_deleted(void **state)
{
	(void)state;
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o, o]}", "title", "t", "steps", step("coder", "write"),
			       step("code-reviewer", "review"))));
	s_add(&s, "coder", t_write("app.js", "console.log(2);\n"));
	s_add(&s, "coder", t_finish("done"));
	s_add(&s, "code-reviewer", approve());
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	const struct agent_file files[] = {
		{ .path = "app.js", .content = "console.log(1);\n", .size = 16 },
		{ .path = "node_modules/dep/index.js", .content = "x\n", .size = 2 },
	};
	struct agent_task t = { .description = "Print 2.", .files = files, .n_files = 2 };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "completed");
	assert_string_equal(tk_json_get_str(changed(&r, "app.js"), "status", ""), "modified");
	assert_null(changed(&r, "node_modules/dep/index.js"));
	assert_null(strstr(r.res.diff, "node_modules"));
	run_free(&r);
}

/* A backend error ends the task failed, and the agent_turn event records
 * the error (replay fails the same call the same way). */
static void test_backend_error(void **state)
{
	(void)state;
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("coder", "write"))));
	json_array_append_new(s.responses,
			      json_pack("{s:s, s:{s:s, s:s}}", "agent", "coder", "error", "code",
					"timeout", "message", "the model went away"));
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	struct agent_task t = { .description = "Write x.", .test_command = "true" };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "failed");
	assert_non_null(strstr(r.res.reason, "model call failed"));
	assert_non_null(strstr(r.res.reason, "the model went away"));
	const json_t *turn = last(&r, "agent_turn");
	assert_string_equal(tk_json_get_str(turn, "agent", ""), "coder");
	const json_t *err = json_object_get(turn, "error");
	assert_string_equal(tk_json_get_str(err, "code", ""), "timeout");
	assert_null(json_object_get(turn, "text"));
	assert_true(counter(r.reg, "tanuki_agent_invocations_total", "agent", "outcome", "coder",
			    "error") == 1.0);
	run_free(&r);
}

/* A reviewer that never gives a verdict ends the task: nothing could ever
 * be approved. */
static void test_reviewer_no_verdict(void **state)
{
	(void)state;
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("code-reviewer", "r"))));
	for (int i = 0; i < 3; i++)
		s_add(&s, "code-reviewer", json_pack("{s:s}", "verdict", "maybe"));
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	struct agent_task t = { .description = "Review." };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "failed");
	assert_non_null(strstr(r.res.reason, "no review verdict"));
	assert_string_equal(tk_json_get_str(nth(&r, "review", 0), "verdict", ""), "error");
	assert_int_equal(usage(&r, "llm_calls"), 4);
	run_free(&r);
}

/* ---- several tasks at once ---------------------------------------------------- */

struct par {
	struct agent_env env;
	struct sink sink;
	struct agent_task task;
	struct agent_result res;
	int rc;
};

static void *par_main(void *arg)
{
	struct par *p = arg;
	p->rc = agent_run_task(&p->env, &p->task, &p->res);
	return NULL;
}

/* One backend, team, settings and profile set shared by four tasks on four
 * threads (each with its own sink): each gets its own workspace, turns and
 * result. */
static void test_concurrent_tasks(void **state)
{
	(void)state;
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o, o]}", "title", "t", "steps", step("coder", "write"),
			       step("code-reviewer", "review"))));
	s_add(&s, "coder", t_write("out.txt", "same reply, own workspace\n"));
	s_add(&s, "coder", t_finish("wrote out.txt"));
	s_add(&s, "code-reviewer", approve());
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	r.llm = s_backend(&s, r.reg);
	r.env.llm = r.llm;
	enum { N = 4 };
	struct par p[N];
	pthread_t th[N];
	char ids[N][16];
	for (int i = 0; i < N; i++) {
		memset(&p[i], 0, sizeof p[i]);
		p[i].env = r.env;
		p[i].sink.events = json_array();
		p[i].env.emit_ud = &p[i].sink;
		snprintf(ids[i], sizeof ids[i], "par-%d", i);
		p[i].task = (struct agent_task){ .id = ids[i], .description = "Write out.txt." };
		assert_int_equal(pthread_create(&th[i], NULL, par_main, &p[i]), 0);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(p[i].rc, 0);
		assert_string_equal(agent_outcome_name(p[i].res.outcome), "completed");
		const json_t *f = json_array_get(p[i].res.files, 0);
		assert_string_equal(tk_json_get_str(f, "path", ""), "out.txt");
		assert_string_equal(tk_json_get_str(f, "status", ""), "added");
		assert_int_equal(json_array_size(p[i].res.files), 1);
		const json_t *task = json_object_get(json_array_get(p[i].sink.events, 0), "data");
		assert_string_equal(tk_json_get_str(task, "id", ""), ids[i]);
		assert_int_equal(tk_json_get_int(p[i].res.usage, "llm_calls", -1), 4);
		agent_result_free(&p[i].res);
		json_decref(p[i].sink.events);
	}
	assert_true(counter(r.reg, "tanuki_agent_invocations_total", "agent", "outcome", "coder",
			    "ok") == 2.0 * N);
	run_free(&r);
}

/* ---- cancel, deadline, a sink that stops ------------------------------------- */

static void cancel_case(int which)
{
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("coder", "write"))));
	s_add(&s, "coder", t_write("a.txt", "a\n"));
	s_add(&s, "coder", t_finish("done"));
	s_add(&s, "code-reviewer", approve());
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	atomic_bool flag;
	atomic_init(&flag, false);
	if (which == 0) {
		r.env.cancel = &flag;
		r.sink.raise = &flag;
		r.sink.raise_on = "plan";
	} else if (which == 1) {
		r.env.deadline = &flag;
		r.sink.raise = &flag;
		r.sink.raise_on = "plan";
	} else {
		r.sink.stop_on_nth_turn = 1;
	}
	struct agent_task t = { .description = "Write a.txt.", .test_command = "true" };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome),
			    which == 1 ? "timed_out" : "cancelled");
	assert_non_null(r.res.reason);
	assert_non_null(strstr(r.res.reason, which == 0 ? "cancelled"
						 : which == 1 ? "deadline"
							      : "sink"));
	/* stopped before the coder's first call */
	assert_int_equal(usage(&r, "llm_calls"), 1);
	assert_int_equal(json_array_size(r.res.files), 0);
	assert_string_equal(tk_json_get_str(last(&r, "status"), "status", ""),
			    agent_outcome_name(r.res.outcome));
	run_free(&r);
}

static void test_cancel(void **state)
{
	(void)state;
	cancel_case(0);
}

static void test_deadline(void **state)
{
	(void)state;
	cancel_case(1);
}

static void test_sink_stops(void **state)
{
	(void)state;
	cancel_case(2);
}

/* ---- the context window --------------------------------------------------------- */

static void test_context_drops_files(void **state)
{
	(void)state;
	NEED_SANDBOX();
	size_t big_n = 30000;
	char *big = malloc(big_n + 1);
	assert_non_null(big);
	for (size_t i = 0; i < big_n; i++)
		big[i] = i % 61 == 60 ? '\n' : (char)('a' + i % 26);
	big[big_n] = '\0';
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("coder", "look"))));
	s_add(&s, "coder", t_finish("looked"));
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	r.set.context_tokens = 6000; /* 18 KB: the 30 KB file cannot fit */
	for (size_t i = 0; i < r.team.n; i++)
		r.team.agents[i].max_tokens = 512;
	struct agent_file in[] = { { "big.txt", big, big_n }, { "small.txt", "tiny\n", 5 } };
	/* iterations 1 and an impossible test: ends after the coder */
	struct agent_task t = { .description = "Look at big.txt.",
				.files = in,
				.n_files = 2,
				.test_command = "false",
				.budget = { .max_iterations = 1 } };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	/* the planner's and the coder's briefings both dropped the file */
	assert_true(count(&r, "context") >= 2);
	const json_t *c = nth(&r, "context", 0);
	const json_t *d = json_array_get(json_object_get(c, "dropped"), 0);
	assert_string_equal(tk_json_get_str(d, "kind", ""), "file");
	assert_string_equal(tk_json_get_str(d, "what", ""), "big.txt");
	assert_true(tk_json_get_int(c, "estimated_tokens", 999999) <= 6000);
	assert_true(tk_json_get_int(d, "bytes", 0) > (json_int_t)big_n);
	/* the small file after it still fits: only the big one is dropped */
	assert_int_equal(json_array_size(json_object_get(c, "dropped")), 1);

	/* a window too small for even the bare briefing: a clear failure */
	struct script s2;
	s_init(&s2);
	s_add(&s2, "planner-critic",
	      plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("coder", "look"))));
	struct run r2;
	run_init(&r2);
	r2.set.context_tokens = 600;
	run_task(&r2, &s2, &t);
	assert_int_equal(r2.rc, 0);
	assert_string_equal(agent_outcome_name(r2.res.outcome), "failed");
	assert_non_null(strstr(r2.res.reason, "context window"));
	assert_int_equal(usage(&r2, "llm_calls"), 0);
	run_free(&r2);
	run_free(&r);
	free(big);
}

/* Tool outputs are dropped oldest first, and the briefing says so. */
static void test_context_drops_oldest_output(void **state)
{
	(void)state;
	NEED_SANDBOX();
	const char *cmds[] = { "head -c 12000 /dev/zero | tr '\\0' a",
			       "head -c 12000 /dev/zero | tr '\\0' b",
			       "head -c 12000 /dev/zero | tr '\\0' c" };
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("coder", "run"))));
	for (int i = 0; i < 3; i++)
		s_add(&s, "coder", t_run(cmds[i]));
	s_add(&s, "coder", t_finish("ran three commands"));
	s_add(&s, "code-reviewer", approve());
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	r.set.tool_output_bytes = 12288;
	/* ~4000 tokens an output: one fits beside the bare briefing (about
	 * 1000 tokens) and the reply, two do not */
	r.set.context_tokens = 7500;
	for (size_t i = 0; i < r.team.n; i++)
		r.team.agents[i].max_tokens = 256;
	struct agent_task t = { .description = "Run three commands.", .test_command = "true" };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	assert_string_equal(agent_outcome_name(r.res.outcome), "completed");
	assert_int_equal(count(&r, "context"), 2); /* before coder turns 2 and 3 */
	const json_t *c0 = nth(&r, "context", 0), *c1 = nth(&r, "context", 1);
	assert_int_equal(tk_json_get_int(c0, "turn", -1), 2);
	const json_t *d0 = json_object_get(c0, "dropped");
	assert_int_equal(json_array_size(d0), 1);
	assert_string_equal(tk_json_get_str(json_array_get(d0, 0), "kind", ""), "tool_output");
	assert_non_null(strstr(tk_json_get_str(json_array_get(d0, 0), "what", ""), "' a`"));
	const json_t *d1 = json_object_get(c1, "dropped");
	assert_int_equal(json_array_size(d1), 2);
	assert_non_null(strstr(tk_json_get_str(json_array_get(d1, 0), "what", ""), "' a`"));
	assert_non_null(strstr(tk_json_get_str(json_array_get(d1, 1), "what", ""), "' b`"));
	assert_true(tk_json_get_int(c1, "estimated_tokens", 999999) <= 7500);
	run_free(&r);
}

/* ---- ingress ---------------------------------------------------------------------- */

static void test_ingress(void **state)
{
	(void)state;
	struct run r;
	run_init(&r);
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic", json_pack("{s:[]}", "plans"));
	r.llm = s_backend(&s, r.reg);
	r.env.llm = r.llm;
	struct agent_result res;
	struct agent_file bad_path[] = { { "../etc/passwd", "x", 1 } };
	struct agent_file dup[] = { { "a.c", "x", 1 }, { "a.c", "y", 1 } };
	struct agent_file abs_path[] = { { "/tmp/x", "x", 1 } };
	struct agent_file binary[] = { { "b.bin", "a\0b", 3 } };
	struct {
		struct agent_task t;
		const char *detail;
	} cases[] = {
		{ { .description = NULL }, "description" },
		{ { .description = " \n\t\x01" }, "description: empty" },
		{ { .description = "bad \xff utf8" }, "UTF-8" },
		{ { .description = "x", .files = bad_path, .n_files = 1 }, "files[0].path" },
		{ { .description = "x", .files = abs_path, .n_files = 1 }, "files[0].path" },
		{ { .description = "x", .files = dup, .n_files = 2 }, "twice" },
		{ { .description = "x", .files = binary, .n_files = 1 }, "files[0].content" },
		{ { .description = "x", .language = "C; rm -rf /" }, "language" },
		{ { .description = "x", .budget = { .wall_ms = -1 } }, "budget" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memset(&res, 0xAB, sizeof res);
		int rc = agent_run_task(&r.env, &cases[i].t, &res);
		assert_int_equal(rc, TK_EINVAL);
		assert_non_null(strstr(tk_err_detail(), cases[i].detail));
		assert_null(res.summary); /* zeroed */
		assert_null(res.files);
	}
	assert_int_equal(count(&r, "task"), 0); /* nothing started */

	/* an unknown profile setting */
	r.set.profile = "nope";
	struct agent_task ok = { .description = "x" };
	assert_int_equal(agent_run_task(&r.env, &ok, &res), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "agents.profile"));
	run_free(&r);
}

/* Control characters are stripped from the description; task budgets only
 * tighten the settings'. */
static void test_sanitize_and_budget(void **state)
{
	(void)state;
	struct script s;
	s_init(&s);
	s_add(&s, "planner-critic",
	      plans1(json_pack("{s:s, s:[o]}", "title", "t", "steps", step("coder", "w"))));
	struct run r;
	run_init(&r);
	r.set.plans = 1;
	atomic_bool flag;
	atomic_init(&flag, false);
	r.env.cancel = &flag;
	r.sink.raise = &flag;
	r.sink.raise_on = "plan";
	struct agent_task t = { .description = "Say\x1b[31m hi\r\n\tnow\x7f",
				.context = "ctx\x01",
				.budget = { .max_iterations = 99, .max_tokens = 5000, .wall_ms = 0 } };
	run_task(&r, &s, &t);
	assert_int_equal(r.rc, 0);
	const json_t *task = nth(&r, "task", 0);
	assert_string_equal(tk_json_get_str(task, "description", ""), "Say[31m hi\n\tnow");
	assert_string_equal(tk_json_get_str(task, "context", ""), "ctx");
	const json_t *b = json_object_get(task, "budget");
	assert_int_equal(tk_json_get_int(b, "max_iterations", -1), r.set.budget.max_iterations);
	assert_int_equal(tk_json_get_int(b, "max_tokens", -1), 5000);
	assert_int_equal(tk_json_get_int(b, "wall_ms", -1), r.set.budget.wall_ms);
	assert_true(json_is_null(json_object_get(task, "language")) ||
		    !json_object_get(task, "language"));
	assert_string_equal(tk_json_get_str(task, "profile", ""), "shell");
	run_free(&r);
}

/* ---- settings and results ------------------------------------------------------------ */

static void test_settings_from_config(void **state)
{
	(void)state;
	struct agent_settings d;
	agent_settings_default(&d);
	struct tk_config *c = NULL;
	char *const env[] = { "TANUKI_AGENTS_PLANS=3", "TANUKI_AGENTS_WALL_S=60", NULL };
	assert_int_equal(tk_config_load(NULL, env, &c), 0);
	assert_int_equal(tk_config_set_arg(c, "agents.max_tokens=1234"), 0);
	assert_int_equal(tk_config_set_arg(c, "agents.keep_workspace=true"), 0);
	assert_int_equal(tk_config_set_arg(c, "agents.profile=c"), 0);
	assert_int_equal(tk_config_set_arg(c, "sandbox.default_profile=python"), 0);
	struct agent_settings s;
	agent_settings_from_config(c, &s);
	assert_int_equal(s.plans, 3);
	assert_int_equal(s.budget.wall_ms, 60000);
	assert_int_equal(s.budget.max_tokens, 1234);
	assert_true(s.keep_workspace);
	assert_string_equal(s.profile, "c");
	assert_string_equal(s.default_profile, "python");
	assert_null(s.work_dir); /* "" means the default */
	/* untouched keys keep the documented defaults */
	assert_int_equal(s.budget.max_iterations, d.budget.max_iterations);
	assert_int_equal(s.context_tokens, d.context_tokens);
	assert_int_equal(s.max_repairs, d.max_repairs);
	assert_int_equal(s.tool_output_bytes, d.tool_output_bytes);
	assert_int_equal(s.budget.sandbox_ms, d.budget.sandbox_ms);
	assert_true(s.seed == 0);
	assert_int_not_equal(tk_config_set_arg(c, "agents.plans=0"), 0); /* range */
	tk_config_free(c);
}

static void test_result_json(void **state)
{
	(void)state;
	assert_string_equal(agent_outcome_name(AGENT_COMPLETED), "completed");
	assert_string_equal(agent_outcome_name(AGENT_FAILED), "failed");
	assert_string_equal(agent_outcome_name(AGENT_TIMED_OUT), "timed_out");
	assert_string_equal(agent_outcome_name(AGENT_CANCELLED), "cancelled");
	struct agent_result r = { .outcome = AGENT_TIMED_OUT,
				  .summary = strdup("s"),
				  .reason = strdup("token budget"),
				  .files = json_array(),
				  .diff = strdup(""),
				  .tests = json_null(),
				  .usage = json_object(),
				  .iterations = 2 };
	json_t *j = agent_result_to_json(&r);
	assert_string_equal(tk_json_get_str(j, "status", ""), "timed_out");
	assert_string_equal(tk_json_get_str(j, "reason", ""), "token budget");
	assert_string_equal(tk_json_get_str(j, "result", ""), "s");
	assert_true(json_is_null(json_object_get(j, "tests")));
	assert_int_equal(tk_json_get_int(j, "iterations", 0), 2);
	json_decref(j);
	agent_result_free(&r);
	assert_null(r.summary);
	agent_result_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_c_task_completes),
		cmocka_unit_test(test_python_task_tester_command),
		cmocka_unit_test(test_malformed_repaired),
		cmocka_unit_test(test_malformed_gives_up),
		cmocka_unit_test(test_budget_tokens),
		cmocka_unit_test(test_budget_iterations),
		cmocka_unit_test(test_budget_wall),
		cmocka_unit_test(test_hostile_contained),
		cmocka_unit_test(test_no_tests_and_turn_limit),
		cmocka_unit_test(test_ignored_dir_not_deleted),
		cmocka_unit_test(test_backend_error),
		cmocka_unit_test(test_reviewer_no_verdict),
		cmocka_unit_test(test_concurrent_tasks),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_sink_stops),
		cmocka_unit_test(test_context_drops_files),
		cmocka_unit_test(test_context_drops_oldest_output),
		cmocka_unit_test(test_ingress),
		cmocka_unit_test(test_sanitize_and_budget),
		cmocka_unit_test(test_settings_from_config),
		cmocka_unit_test(test_result_json),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
