/*
 * team.c — the agent team as data (agents.h): the default team with its role
 * prompts, the "agents.team" setting that overrides or extends it, lookup,
 * and the tool names. Owns the strings of every agent_def it fills.
 *
 * agent_team_load_json works on a copy and replaces the caller's team only
 * when every entry is valid, so a bad setting never leaves a half-changed
 * team behind.
 */
#include "agents/agents.h"

#include "core/config.h"
#include "core/err.h"
#include "core/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROLE_PROMPT_MAX (16u << 10) /* bytes of one role prompt */
#define MODEL_NAME_MAX 512          /* bytes of a model or adapter name */
#define TOP_K_MAX 100000
#define MAX_TOKENS_MAX (1 << 20)
#define MAX_TURNS_MAX 1000

/* ---- tools --------------------------------------------------------------- */

static const char *const tool_names[AGENT_TOOL_COUNT_] = {
	[AGENT_TOOL_LIST_FILES] = "list_files", [AGENT_TOOL_READ_FILE] = "read_file",
	[AGENT_TOOL_WRITE_FILE] = "write_file", [AGENT_TOOL_EDIT_FILE] = "edit_file",
	[AGENT_TOOL_RUN] = "run",		[AGENT_TOOL_FINISH] = "finish",
};

const char *agent_tool_name(enum agent_tool t)
{
	if ((unsigned)t >= AGENT_TOOL_COUNT_)
		return "unknown";
	return tool_names[t];
}

int agent_tool_from_name(const char *name)
{
	for (int i = 0; name && i < AGENT_TOOL_COUNT_; i++)
		if (!strcmp(name, tool_names[i]))
			return i;
	return -1;
}

/* ---- the default team ---------------------------------------------------- */

#define TOOL(t) (1u << AGENT_TOOL_##t)

struct default_agent {
	const char *name;
	enum agent_kind kind;
	const char *role_prompt;
	double temperature;
	int32_t max_tokens;
	unsigned tools;
	int32_t max_turns;
};

static const struct default_agent defaults[] = {
	{ "planner-critic", AGENT_KIND_PLANNER,
	  "You are the planner and critic of a small team of coding agents that work on one "
	  "task in a shared workspace.\n"
	  "As planner, break the task into a short sequence of steps, each given to one agent "
	  "of the team by name. Usually the coder writes the code, the tester writes and runs "
	  "tests, and the code-reviewer reviews the result; the debugger is for failing builds "
	  "and tests, the documenter only when documentation is asked for. Keep a plan to 2-6 "
	  "steps. Each goal says what must be true when the step is done (files, functions, "
	  "behaviour, commands that must succeed), not how to type it. When several plans are "
	  "asked for, make them really different (another design, another order), not "
	  "rewordings of one plan. Do not add requirements the task does not state.\n"
	  "As critic, compare the candidate plans and choose the one most likely to end with "
	  "passing tests and a correct, simple solution: prefer plans that test early, touch "
	  "fewer files and leave nothing the task asks for undone.",
	  0.7, 1024, 0, 12 },
	{ "coder", AGENT_KIND_WORKER,
	  "You are the coder. Implement the goal of your step in the workspace.\n"
	  "- Look before you change: list the files, read the ones you will touch and the ones "
	  "they use. Keep to the project's language version, style and build setup.\n"
	  "- Write complete, working code: no placeholders, no TODO stubs, no invented "
	  "libraries or functions. Add no dependency the task does not allow.\n"
	  "- Handle the edge cases the task implies: empty input, zero, negative and very large "
	  "values, missing files, invalid arguments. Check every error a call can return.\n"
	  "- Use edit_file for small changes to an existing file, write_file for new files or "
	  "when most of a file changes.\n"
	  "- Build and run what you wrote (run) and fix what fails before you finish.\n"
	  "- If you were given failing output or review issues, fix every one of them.\n"
	  "Finish with a summary naming the files you changed and what they now do.",
	  0.2, 2048, AGENT_TOOLS_ALL, 12 },
	{ "tester", AGENT_KIND_WORKER,
	  "You are the tester. Write tests for what the task requires, then run them.\n"
	  "- Use the project's existing test setup if it has one. Otherwise use what the "
	  "language ships with and nothing else: for C a small program with assert() or "
	  "explicit checks that exits non-zero on failure, for Python unittest, and so on.\n"
	  "- Test the behaviour the task asks for, including edge cases and error paths. Work "
	  "out every expected value from the task's specification; never copy it from what "
	  "the code happens to return. Every test must be able to fail.\n"
	  "- Run the tests. When one fails, decide whether the test or the code is wrong: fix "
	  "a wrong test, but do not change the code under test; say in your summary what "
	  "fails and why.\n"
	  "Finish with a summary and test_command: the one shell command, run from the "
	  "workspace root, that builds and runs all the tests and exits non-zero when any "
	  "fails (for example \"cc -Wall -o test_sum test_sum.c sum.c && ./test_sum\").",
	  0.2, 2048, AGENT_TOOLS_ALL, 12 },
	{ "code-reviewer", AGENT_KIND_REVIEWER,
	  "You are the code reviewer. Your job is to find what is wrong before users do: "
	  "assume the change has bugs until you have checked each part of it.\n"
	  "You get the task, the diff of the change and the latest test results. Check:\n"
	  "- behaviour the task asks for that is missing or wrong;\n"
	  "- edge cases: empty, zero, negative, huge, duplicate, missing file, bad input;\n"
	  "- off-by-one errors, overflow, resource leaks, undefined behaviour, races;\n"
	  "- unsafe handling of input: injection, path traversal, unchecked sizes;\n"
	  "- tests that do not test: no assertions, expected values copied from the code's "
	  "output, tests that cannot fail, requirements with no test at all.\n"
	  "Report only real problems that matter for correctness, safety or the task, not "
	  "style preferences. Each issue names the file and line or function, what is wrong "
	  "and what to change. Approve only when you would ship the change as it is.",
	  0.2, 1024, 0, 12 },
	{ "debugger", AGENT_KIND_WORKER,
	  "You are the debugger. You get a failing build, failing tests or review issues, with "
	  "their output. Find the root cause before you change anything:\n"
	  "- read the first error and the code it points to; reproduce the failure with run;\n"
	  "- form a hypothesis and check it (read more code, run a smaller command, print "
	  "values) instead of guessing;\n"
	  "- fix the cause, not the symptom: never weaken or delete a test, never special-case "
	  "the test's input, never silence a warning or an error without fixing its reason;\n"
	  "- keep the fix small, then rerun the failing command and the whole test command to "
	  "confirm that everything passes.\n"
	  "Finish with a summary naming the cause and the fix.",
	  0.2, 2048, AGENT_TOOLS_ALL, 12 },
	{ "documenter", AGENT_KIND_WORKER,
	  "You are the documenter. Write or update the documentation of the change: the "
	  "README, usage examples, comments on public functions, or the documentation files "
	  "the project already has.\n"
	  "- Read the code first and describe what it actually does, including its limits and "
	  "its errors; never describe a feature that does not exist.\n"
	  "- Be short and concrete: what it is, how to build, run or call it, one example.\n"
	  "- Match the existing format and tone. Do not change code.\n"
	  "Finish with a summary naming the files you wrote.",
	  0.2, 2048,
	  TOOL(LIST_FILES) | TOOL(READ_FILE) | TOOL(WRITE_FILE) | TOOL(EDIT_FILE) | TOOL(FINISH),
	  12 },
};

#define N_DEFAULTS (sizeof defaults / sizeof defaults[0])

static void def_free(struct agent_def *d)
{
	free(d->name);
	free(d->role_prompt);
	free(d->model);
	free(d->adapter);
	memset(d, 0, sizeof *d);
}

void agent_team_free(struct agent_team *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n && i < AGENT_TEAM_MAX; i++)
		def_free(&t->agents[i]);
	t->n = 0;
}

/* Sampling with every field "the backend's default" (llm.h). */
static void sampling_unset(struct llm_sampling *s)
{
	s->temperature = -1;
	s->top_p = -1;
	s->top_k = 0;
	s->repeat_penalty = -1;
}

int agent_team_default(struct agent_team *t)
{
	memset(t, 0, sizeof *t);
	for (size_t i = 0; i < N_DEFAULTS; i++) {
		const struct default_agent *a = &defaults[i];
		struct agent_def *d = &t->agents[i];
		d->name = strdup(a->name);
		d->role_prompt = strdup(a->role_prompt);
		t->n = i + 1;
		if (!d->name || !d->role_prompt) {
			agent_team_free(t);
			return tk_errf(TK_ENOMEM, "agents: out of memory building the default team");
		}
		d->kind = a->kind;
		sampling_unset(&d->sampling);
		d->sampling.temperature = a->temperature;
		d->max_tokens = a->max_tokens;
		d->tools = a->tools;
		d->max_turns = a->max_turns;
	}
	return 0;
}

const struct agent_def *agent_team_find(const struct agent_team *t, const char *name)
{
	if (!t || !name)
		return NULL;
	for (size_t i = 0; i < t->n && i < AGENT_TEAM_MAX; i++)
		if (!strcmp(t->agents[i].name, name))
			return &t->agents[i];
	return NULL;
}

/* ---- the "agents.team" setting ------------------------------------------- */

#define WHERE "agents.team[%zu]"

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n >= AGENT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int kind_from_name(const char *s)
{
	if (!strcmp(s, "planner"))
		return AGENT_KIND_PLANNER;
	if (!strcmp(s, "worker"))
		return AGENT_KIND_WORKER;
	if (!strcmp(s, "reviewer"))
		return AGENT_KIND_REVIEWER;
	return -1;
}

/* A deep copy of src into dst (dst is overwritten). 0 or TK_ENOMEM. */
static int team_copy(struct agent_team *dst, const struct agent_team *src)
{
	memset(dst, 0, sizeof *dst);
	for (size_t i = 0; i < src->n && i < AGENT_TEAM_MAX; i++) {
		const struct agent_def *s = &src->agents[i];
		struct agent_def *d = &dst->agents[i];
		*d = *s;
		d->name = strdup(s->name);
		d->role_prompt = strdup(s->role_prompt);
		d->model = s->model ? strdup(s->model) : NULL;
		d->adapter = s->adapter ? strdup(s->adapter) : NULL;
		dst->n = i + 1;
		if (!d->name || !d->role_prompt || (s->model && !d->model) ||
		    (s->adapter && !d->adapter)) {
			agent_team_free(dst);
			return tk_errf(TK_ENOMEM, "agents.team: out of memory");
		}
	}
	return 0;
}

/* Replaces *slot with a copy of the string v (NULL for JSON null). */
static int set_opt_string(char **slot, const json_t *v, size_t idx, const char *field)
{
	if (json_is_null(v)) {
		free(*slot);
		*slot = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return tk_errf(TK_EINVAL, WHERE ".%s: expected a string or null, got %s", idx,
			       field, tk_json_type_name(v));
	size_t n = json_string_length(v);
	if (n == 0 || n > MODEL_NAME_MAX)
		return tk_errf(TK_EINVAL, WHERE ".%s: must be 1..%u bytes (null for none), got %zu",
			       idx, field, MODEL_NAME_MAX, n);
	if (memchr(json_string_value(v), '\0', n))
		return tk_errf(TK_EINVAL, WHERE ".%s: contains a NUL byte", idx, field);
	char *copy = strdup(json_string_value(v));
	if (!copy)
		return tk_errf(TK_ENOMEM, "agents.team: out of memory");
	free(*slot);
	*slot = copy;
	return 0;
}

/* A number in [lo, hi] (lo excluded when lo_open). */
static int get_number(const json_t *v, size_t idx, const char *field, double lo, bool lo_open,
		      double hi, double *out)
{
	if (!json_is_number(v))
		return tk_errf(TK_EINVAL, WHERE ".%s: expected a number, got %s", idx, field,
			       tk_json_type_name(v));
	double x = json_number_value(v);
	if (!isfinite(x) || x > hi || (lo_open ? x <= lo : x < lo))
		return tk_errf(TK_EINVAL, WHERE ".%s: must be in %s%g, %g], got %g", idx, field,
			       lo_open ? "(" : "[", lo, hi, x);
	*out = x;
	return 0;
}

static int get_int(const json_t *v, size_t idx, const char *field, int64_t lo, int64_t hi,
		   int64_t *out)
{
	if (!json_is_integer(v))
		return tk_errf(TK_EINVAL, WHERE ".%s: expected an integer, got %s", idx, field,
			       tk_json_type_name(v));
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return tk_errf(TK_EINVAL, WHERE ".%s: must be in %lld..%lld, got %lld", idx, field,
			       (long long)lo, (long long)hi, (long long)x);
	*out = x;
	return 0;
}

static int get_tools(const json_t *v, size_t idx, unsigned *out)
{
	if (!json_is_array(v))
		return tk_errf(TK_EINVAL, WHERE ".tools: expected an array of tool names, got %s",
			       idx, tk_json_type_name(v));
	unsigned mask = 0;
	for (size_t i = 0; i < json_array_size(v); i++) {
		const json_t *e = json_array_get(v, i);
		if (!json_is_string(e))
			return tk_errf(TK_EINVAL, WHERE ".tools[%zu]: expected a tool name, got %s",
				       idx, i, tk_json_type_name(e));
		int t = agent_tool_from_name(json_string_value(e));
		if (t < 0)
			return tk_errf(TK_EINVAL,
				       WHERE ".tools[%zu]: unknown tool '%.64s' (tools: list_files, "
				       "read_file, write_file, edit_file, run, finish)",
				       idx, i, json_string_value(e));
		if (mask & (1u << t))
			return tk_errf(TK_EINVAL, WHERE ".tools[%zu]: '%s' is listed twice", idx, i,
				       tool_names[t]);
		mask |= 1u << t;
	}
	*out = mask;
	return 0;
}

static const char *const entry_fields[] = {
	"name", "kind", "role_prompt", "model", "adapter", "temperature",
	"top_p", "top_k", "max_tokens", "tools", "max_turns",
};

/* Applies entry idx to team t (a working copy). */
static int apply_entry(struct agent_team *t, const json_t *e, size_t idx)
{
	if (!json_is_object(e))
		return tk_errf(TK_EINVAL, WHERE ": expected an agent object, got %s", idx,
			       tk_json_type_name(e));
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)e, k, v) {
		bool known = false;
		for (size_t i = 0; i < sizeof entry_fields / sizeof entry_fields[0]; i++)
			known = known || !strcmp(k, entry_fields[i]);
		if (!known)
			return tk_errf(TK_EINVAL,
				       WHERE ": unknown field '%.64s' (fields: name, kind, role_prompt, "
				       "model, adapter, temperature, top_p, top_k, max_tokens, tools, "
				       "max_turns)",
				       idx, k);
	}
	const json_t *jname = json_object_get(e, "name");
	if (!jname)
		return tk_errf(TK_EINVAL, WHERE ".name: required", idx);
	if (!json_is_string(jname))
		return tk_errf(TK_EINVAL, WHERE ".name: expected a string, got %s", idx,
			       tk_json_type_name(jname));
	const char *name = json_string_value(jname);
	if (json_string_length(jname) != strlen(name) || !name_ok(name))
		return tk_errf(TK_EINVAL, WHERE ".name: '%.80s' must be 1..%d characters of a-z, 0-9, "
			       "'_' and '-'", idx, name, AGENT_NAME_MAX - 1);

	struct agent_def *d = (struct agent_def *)agent_team_find(t, name);
	const json_t *jkind = json_object_get(e, "kind");
	const json_t *jprompt = json_object_get(e, "role_prompt");
	int kind = -1;
	if (jkind) {
		if (!json_is_string(jkind) || (kind = kind_from_name(json_string_value(jkind))) < 0)
			return tk_errf(TK_EINVAL, WHERE ".kind: must be \"planner\", \"worker\" or "
				       "\"reviewer\"", idx);
	}
	if (jprompt) {
		if (!json_is_string(jprompt))
			return tk_errf(TK_EINVAL, WHERE ".role_prompt: expected a string, got %s", idx,
				       tk_json_type_name(jprompt));
		size_t n = json_string_length(jprompt);
		if (n == 0 || n > ROLE_PROMPT_MAX)
			return tk_errf(TK_EINVAL, WHERE ".role_prompt: must be 1..%u bytes, got %zu",
				       idx, ROLE_PROMPT_MAX, n);
		if (memchr(json_string_value(jprompt), '\0', n))
			return tk_errf(TK_EINVAL, WHERE ".role_prompt: contains a NUL byte", idx);
	}
	bool added = false;
	if (!d) {
		if (!jkind)
			return tk_errf(TK_EINVAL, WHERE ".kind: required for the new agent '%s'", idx,
				       name);
		if (!jprompt)
			return tk_errf(TK_EINVAL, WHERE ".role_prompt: required for the new agent "
				       "'%s'", idx, name);
		if (t->n >= AGENT_TEAM_MAX)
			return tk_errf(TK_EINVAL, WHERE ": the team already has %d agents (the most)",
				       idx, AGENT_TEAM_MAX);
		d = &t->agents[t->n];
		memset(d, 0, sizeof *d);
		d->name = strdup(name);
		if (!d->name)
			return tk_errf(TK_ENOMEM, "agents.team: out of memory");
		t->n++;
		added = true;
		/* The defaults of a new agent: those of the default team's
		 * agents of the same kind (docs/agents.md). */
		d->kind = (enum agent_kind)kind;
		sampling_unset(&d->sampling);
		d->sampling.temperature = kind == AGENT_KIND_PLANNER ? 0.7 : 0.2;
		d->max_tokens = kind == AGENT_KIND_WORKER ? 2048 : 1024;
		d->tools = kind == AGENT_KIND_WORKER ? AGENT_TOOLS_ALL : 0;
		d->max_turns = 12;
	}
	if (jkind && !added) {
		/* An agent that becomes a worker gets every tool unless the entry
		 * lists them; one that stops being a worker has none. */
		if ((enum agent_kind)kind != d->kind)
			d->tools = kind == AGENT_KIND_WORKER ? AGENT_TOOLS_ALL : 0;
		d->kind = (enum agent_kind)kind;
	}
	if (jprompt) {
		char *p = strdup(json_string_value(jprompt));
		if (!p)
			return tk_errf(TK_ENOMEM, "agents.team: out of memory");
		free(d->role_prompt);
		d->role_prompt = p;
	}
	int rc = 0;
	if ((v = json_object_get(e, "model")) && (rc = set_opt_string(&d->model, v, idx, "model")))
		return rc;
	if ((v = json_object_get(e, "adapter")) &&
	    (rc = set_opt_string(&d->adapter, v, idx, "adapter")))
		return rc;
	double x = 0;
	int64_t i64 = 0;
	if ((v = json_object_get(e, "temperature"))) {
		if ((rc = get_number(v, idx, "temperature", 0, false, 100, &x)))
			return rc;
		d->sampling.temperature = x;
	}
	if ((v = json_object_get(e, "top_p"))) {
		if ((rc = get_number(v, idx, "top_p", 0, true, 1, &x)))
			return rc;
		d->sampling.top_p = x;
	}
	if ((v = json_object_get(e, "top_k"))) {
		if ((rc = get_int(v, idx, "top_k", 0, TOP_K_MAX, &i64)))
			return rc;
		d->sampling.top_k = (int32_t)i64;
	}
	if ((v = json_object_get(e, "max_tokens"))) {
		if ((rc = get_int(v, idx, "max_tokens", 1, MAX_TOKENS_MAX, &i64)))
			return rc;
		d->max_tokens = (int32_t)i64;
	}
	if ((v = json_object_get(e, "max_turns"))) {
		if ((rc = get_int(v, idx, "max_turns", 1, MAX_TURNS_MAX, &i64)))
			return rc;
		d->max_turns = (int32_t)i64;
	}
	if ((v = json_object_get(e, "tools"))) {
		if (d->kind != AGENT_KIND_WORKER)
			return tk_errf(TK_EINVAL, WHERE ".tools: only workers call tools ('%s' is a "
				       "%s)", idx, name,
				       d->kind == AGENT_KIND_PLANNER ? "planner" : "reviewer");
		unsigned mask = 0;
		if ((rc = get_tools(v, idx, &mask)))
			return rc;
		d->tools = mask;
	}
	if (d->kind == AGENT_KIND_WORKER && !(d->tools & TOOL(FINISH)))
		return tk_errf(TK_EINVAL, WHERE ".tools: a worker needs \"finish\" to end its "
			       "assignment", idx);
	return 0;
}

int agent_team_load_json(struct agent_team *t, const json_t *team)
{
	if (!team || json_is_null(team))
		return 0;
	if (!json_is_array(team))
		return tk_errf(TK_EINVAL, "agents.team: expected an array of agent objects, got %s",
			       tk_json_type_name(team));
	/* Names must be distinct and a team holds at most AGENT_TEAM_MAX, so
	 * a longer array cannot be valid (and the duplicate check below stays
	 * small). */
	if (json_array_size(team) > AGENT_TEAM_MAX)
		return tk_errf(TK_EINVAL, "agents.team: %zu entries, more than the %d agents a team "
			       "may have", json_array_size(team), AGENT_TEAM_MAX);
	struct agent_team work;
	int rc = team_copy(&work, t);
	if (rc)
		return rc;
	for (size_t i = 0; i < json_array_size(team); i++) {
		const json_t *name = json_object_get(json_array_get(team, i), "name");
		for (size_t j = 0; name && j < i; j++)
			if (json_equal((json_t *)name,
				       json_object_get(json_array_get(team, j), "name"))) {
				rc = tk_errf(TK_EINVAL, WHERE ".name: '%.64s' is also entry %zu", i,
					     json_is_string(name) ? json_string_value(name) : "?", j);
				goto out_work;
			}
		if ((rc = apply_entry(&work, json_array_get(team, i), i)))
			goto out_work;
	}
	agent_team_free(t);
	*t = work; /* the strings move to the caller's team */
	return 0;
out_work:
	agent_team_free(&work);
	return rc;
}

int agent_team_from_config(const struct tk_config *c, struct agent_team *t)
{
	int rc = agent_team_default(t);
	if (rc)
		return rc;
	if ((rc = agent_team_load_json(t, tk_config_json(c, "agents.team")))) {
		agent_team_free(t);
		memset(t, 0, sizeof *t);
	}
	return rc;
}
