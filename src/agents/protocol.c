/*
 * protocol.c — the model's side of the agent protocol (protocol.h,
 * docs/agents.md): finding the JSON object in a reply, validating it per
 * agent kind, the repair messages sent back when it is wrong, the JSON
 * Schemas for constrained decoding, and the protocol part of system prompts.
 *
 * A reply goes through two stages:
 *   1. extraction (forgiving): the first '{' that opens a JSON object (the
 *      next non-blank character is '"' or '}') starts the candidate; its end
 *      is found by matching brackets outside strings. Prose, code fences and
 *      blanks around it are ignored, and so is anything after it.
 *   2. validation (strict): the candidate is parsed with the project's strict
 *      JSON parser (no duplicate keys, valid UTF-8, no NUL) and checked field
 *      by field; the first problem found becomes the repair message.
 * Owns nothing past a call: every output is handed to the caller.
 */
#include "agents/protocol.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_BYTES 4096
#define PATH_COMPONENT_MAX 255
#define COMMAND_MAX 16384     /* bytes of a run/test command */
#define TITLE_MAX 512         /* bytes of a plan title */
#define TEXT_MAX 8192         /* bytes of a goal, a reason, one issue */
#define PLAN_STEPS_MAX 16
#define ISSUES_MAX 64
#define PROBLEM_MAX 4096      /* bytes of the problem part of a repair */

/* ---- repair messages ------------------------------------------------------ */

/* The problem found in a reply, as model-facing text. */
struct problem {
	struct tk_buf b;
};

static void problem_init(struct problem *p)
{
	tk_buf_init(&p->b, PROBLEM_MAX);
}

__attribute__((format(printf, 2, 3))) static int problem_set(struct problem *p, const char *fmt,
							     ...)
{
	tk_buf_reset(&p->b);
	va_list ap;
	va_start(ap, fmt);
	int rc = tk_buf_vprintf(&p->b, fmt, ap);
	va_end(ap);
	if (rc == TK_ELIMIT) /* only an over-long quoted name gets here */
		rc = tk_buf_puts(&p->b, "the reply is malformed");
	return rc ? rc : TK_EFORMAT;
}

/* Builds *repair from the problem and the expected shape; returns TK_EFORMAT
 * (the detail names the problem too) or TK_ENOMEM. */
static int repair_make(struct problem *p, const char *what, const char *shape, char **repair)
{
	struct tk_buf r = TK_BUF_INIT(PROBLEM_MAX + 8192);
	int rc = tk_buf_printf(&r, "Your reply was not valid: %s.\nAnswer with one JSON object "
			       "and nothing else: %s", tk_buf_str(&p->b), shape);
	if (rc == TK_ELIMIT) { /* a very long shape: drop it, keep the problem */
		tk_buf_reset(&r);
		rc = tk_buf_printf(&r, "Your reply was not valid: %s.", tk_buf_str(&p->b));
	}
	if (rc) {
		tk_buf_free(&r);
		return tk_errf(TK_ENOMEM, "%s: out of memory", what);
	}
	*repair = tk_buf_detach(&r, NULL);
	if (!*repair)
		return tk_errf(TK_ENOMEM, "%s: out of memory", what);
	return tk_errf(TK_EFORMAT, "%s: %s", what, tk_buf_str(&p->b));
}

/* Ends a parse: TK_EFORMAT becomes a repair message; other codes pass. */
static int finish_parse(int rc, struct problem *p, const char *what, const char *shape,
			char **repair)
{
	if (rc == TK_EFORMAT)
		rc = repair_make(p, what, shape, repair);
	else if (rc == TK_ENOMEM)
		rc = tk_errf(TK_ENOMEM, "%s: out of memory", what);
	tk_buf_free(&p->b);
	return rc;
}

/* ---- extraction ----------------------------------------------------------- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Finds and parses the reply's JSON object. 0 with *out, TK_EFORMAT with the
 * problem, TK_ENOMEM. */
static int extract_object(const char *text, size_t len, struct problem *p, json_t **out)
{
	*out = NULL;
	if (len > AGENT_REPLY_MAX)
		return problem_set(p, "the reply is %zu bytes long, more than the %u accepted; "
				   "answer with one short JSON object", len, AGENT_REPLY_MAX);
	size_t i = 0;
	bool single_quoted = false;
	for (;; i++) {
		const char *brace = i < len ? memchr(text + i, '{', len - i) : NULL;
		if (!brace) {
			size_t k = 0;
			while (k < len && is_blank(text[k]))
				k++;
			if (k == len)
				return problem_set(p, "the reply is empty");
			if (single_quoted)
				return problem_set(p, "it contains no JSON object (JSON puts names and "
						   "strings in double quotes, not single quotes)");
			return problem_set(p, "it contains no JSON object");
		}
		i = (size_t)(brace - text);
		size_t j = i + 1;
		while (j < len && is_blank(text[j]))
			j++;
		if (j < len && text[j] == '\'')
			single_quoted = true;
		if (j < len && (text[j] == '"' || text[j] == '}'))
			break;
		if (j == len)
			return problem_set(p, "the JSON object is not complete: the reply ends after "
					   "its opening brace");
	}
	/* i opens the candidate: find its end by bracket depth outside strings */
	size_t depth = 0, end = 0;
	bool in_str = false, esc = false;
	for (size_t k = i; k < len && !end; k++) {
		char c = text[k];
		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth == 0)
				end = k + 1;
		}
	}
	if (!end)
		return problem_set(p, "the JSON object is not complete: the reply ends before its "
				   "closing brace (it may have been cut off: keep it shorter)");
	json_t *v = NULL;
	int rc = tk_json_parse(text + i, end - i, AGENT_REPLY_MAX, &v);
	if (rc == TK_ENOMEM)
		return rc;
	if (rc) {
		const char *d = tk_err_detail();
		if (!strncmp(d, "json: ", 6))
			d += 6;
		return problem_set(p, "the JSON object is malformed (%.300s)", d);
	}
	if (!json_is_object(v)) { /* cannot happen: it starts with '{' */
		json_decref(v);
		return problem_set(p, "the reply is not a JSON object");
	}
	*out = v;
	return 0;
}

/* ---- field checks ------------------------------------------------------- */

/* "a string", "an integer", ... for messages. */
static const char *a_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "an unknown value";
}

/* An unknown field of obj (where: "" or "args" ...), or 0. */
static int check_fields(const json_t *obj, const char *where, const char *const *names, size_t n,
			struct problem *p)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		bool ok = false;
		for (size_t i = 0; i < n && !ok; i++)
			ok = !strcmp(k, names[i]);
		if (ok)
			continue;
		struct tk_buf list = TK_BUF_INIT(1024);
		for (size_t i = 0; i < n; i++)
			tk_buf_printf(&list, "%s\"%s\"", i ? ", " : "", names[i]);
		int rc = problem_set(p, "unknown field \"%.64s\"%s%s (the fields are: %s)", k,
				     *where ? " in " : "", where, tk_buf_str(&list));
		tk_buf_free(&list);
		return rc;
	}
	return 0;
}

/* A string field: required or not, non-empty or not, at most max bytes.
 * *out borrowed from obj (NULL when absent and optional). */
static int get_string(const json_t *obj, const char *name, const char *where, bool required,
		      bool nonempty, size_t max, struct problem *p, const char **out)
{
	*out = NULL;
	const json_t *v = json_object_get(obj, name);
	if (!v) {
		if (required)
			return problem_set(p, "the field \"%s%s\" is missing", where, name);
		return 0;
	}
	if (!json_is_string(v))
		return problem_set(p, "\"%s%s\" must be a string, not %s", where, name, a_type(v));
	size_t n = json_string_length(v);
	if (nonempty && n == 0)
		return problem_set(p, "\"%s%s\" is empty", where, name);
	if (n > max)
		return problem_set(p, "\"%s%s\" is %zu bytes long, more than %zu", where, name, n, max);
	*out = json_string_value(v);
	return 0;
}

/* Validates a workspace path (protocol.h) and writes its normalised form
 * (leading "./" removed; for a directory also "." -> "" and a trailing "/"
 * removed) to *norm (malloc'd). */
static int check_path(const char *s, size_t n, const char *field, bool dir, struct problem *p,
		      char **norm)
{
	*norm = NULL;
	while (n >= 2 && s[0] == '.' && s[1] == '/') {
		s += 2;
		n -= 2;
	}
	if (dir && n == 1 && s[0] == '.')
		n = 0;
	if (dir && n > 1 && s[n - 1] == '/')
		n--;
	if (n == 0 && !dir)
		return problem_set(p, "\"args.%s\" is empty: give a file path relative to the "
				   "workspace root, like \"src/main.c\"", field);
	if (n > PATH_MAX_BYTES)
		return problem_set(p, "\"args.%s\" is %zu bytes long, more than %d", field, n,
				   PATH_MAX_BYTES);
	if (s[0] == '/')
		return problem_set(p, "\"args.%s\" \"%.200s\" is absolute: give a path relative to "
				   "the workspace root, like \"src/main.c\"", field, s);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return problem_set(p, "\"args.%s\" contains a control character", field);
	for (size_t a = 0; a < n;) {
		const char *slash = memchr(s + a, '/', n - a);
		size_t b = slash ? (size_t)(slash - s) : n;
		size_t clen = b - a;
		if (clen == 0)
			return problem_set(p, "\"args.%s\" \"%.200s\" has an empty component (\"//\" "
					   "or a trailing \"/\")", field, s);
		if (clen == 2 && s[a] == '.' && s[a + 1] == '.')
			return problem_set(p, "\"args.%s\" \"%.200s\" contains \"..\": paths must stay "
					   "inside the workspace", field, s);
		if (clen == 1 && s[a] == '.')
			return problem_set(p, "\"args.%s\" \"%.200s\" contains a \".\" component",
					   field, s);
		if (clen > PATH_COMPONENT_MAX)
			return problem_set(p, "\"args.%s\" has a component longer than %d bytes",
					   field, PATH_COMPONENT_MAX);
		a = b + 1;
		if (slash && a == n)
			return problem_set(p, "\"args.%s\" \"%.200s\" has an empty component (\"//\" "
					   "or a trailing \"/\")", field, s);
	}
	*norm = strndup(s, n);
	return *norm ? 0 : TK_ENOMEM;
}

/* ---- worker turns ----------------------------------------------------------- */

enum arg_kind {
	ARG_PATH,     /* a file path */
	ARG_DIR,      /* a directory path; "", "." = the root */
	ARG_TEXT,     /* any string, may be empty */
	ARG_NONEMPTY, /* a non-empty string */
	ARG_COMMAND,  /* a non-empty shell command, capped */
};

struct arg_spec {
	const char *name;
	enum arg_kind kind;
	bool required;
};

struct tool_spec {
	const char *args_shape; /* for prompts and repairs */
	const char *what;       /* one line for the prompt */
	struct arg_spec args[3];
	size_t n_args;
};

static const struct tool_spec tool_specs[AGENT_TOOL_COUNT_] = {
	[AGENT_TOOL_LIST_FILES] = {
		"{\"path\": \"<directory; \\\"\\\" for the whole workspace>\"}",
		"lists the files under a directory, with their sizes.",
		{ { "path", ARG_DIR, false } }, 1 },
	[AGENT_TOOL_READ_FILE] = {
		"{\"path\": \"<file>\"}",
		"returns the content of a file.",
		{ { "path", ARG_PATH, true } }, 1 },
	[AGENT_TOOL_WRITE_FILE] = {
		"{\"path\": \"<file>\", \"content\": \"<the whole new content>\"}",
		"creates or replaces a file (parent directories are made).",
		{ { "path", ARG_PATH, true }, { "content", ARG_TEXT, true } }, 2 },
	[AGENT_TOOL_EDIT_FILE] = {
		"{\"path\": \"<file>\", \"search\": \"<text now in the file>\", \"replace\": "
		"\"<new text>\"}",
		"replaces the one occurrence of search in the file (blanks at line ends may "
		"differ); include enough lines to make it unique; replace may be \"\" to delete.",
		{ { "path", ARG_PATH, true }, { "search", ARG_NONEMPTY, true },
		  { "replace", ARG_TEXT, true } }, 3 },
	[AGENT_TOOL_RUN] = {
		"{\"command\": \"<shell command>\"}",
		"runs the command with sh -c in the sandbox, from the workspace root; you get the "
		"exit code and the output.",
		{ { "command", ARG_COMMAND, true } }, 1 },
	[AGENT_TOOL_FINISH] = {
		"{\"summary\": \"<what you did>\", \"test_command\": \"<optional: the shell command "
		"that runs the tests you wrote>\"}",
		"ends your assignment.",
		{ { "summary", ARG_NONEMPTY, true }, { "test_command", ARG_COMMAND, false } }, 2 },
};

/* "list_files, read_file" for the tools in mask. */
static void tool_list(unsigned mask, struct tk_buf *out)
{
	bool first = true;
	for (int t = 0; t < AGENT_TOOL_COUNT_; t++)
		if (mask & (1u << t)) {
			tk_buf_printf(out, "%s%s", first ? "" : ", ", agent_tool_name((enum agent_tool)t));
			first = false;
		}
	if (first)
		tk_buf_puts(out, "(none)");
}

/* The expected shape of a turn, for repairs. */
static void turn_shape(unsigned allowed, int tool, struct tk_buf *out)
{
	tk_buf_puts(out, "{\"thought\": \"<your reasoning, briefly>\", \"tool\": \"<one of: ");
	tool_list(allowed, out);
	tk_buf_puts(out, ">\", \"args\": {...}}");
	if (tool >= 0)
		tk_buf_printf(out, "\nThe args of %s: %s", agent_tool_name((enum agent_tool)tool),
			      tool_specs[tool].args_shape);
}

static int check_args(int tool, json_t *args, struct problem *p)
{
	const struct tool_spec *ts = &tool_specs[tool];
	const char *names[3];
	for (size_t i = 0; i < ts->n_args; i++)
		names[i] = ts->args[i].name;
	char where[64];
	snprintf(where, sizeof where, "the args of %s", agent_tool_name((enum agent_tool)tool));
	int rc = check_fields(args, where, names, ts->n_args, p);
	for (size_t i = 0; !rc && i < ts->n_args; i++) {
		const struct arg_spec *a = &ts->args[i];
		const char *s;
		bool nonempty = a->kind == ARG_NONEMPTY || a->kind == ARG_COMMAND;
		size_t max = a->kind == ARG_COMMAND ? COMMAND_MAX : AGENT_REPLY_MAX;
		if ((rc = get_string(args, a->name, "args.", a->required, nonempty, max, p, &s)) || !s)
			continue;
		if (a->kind == ARG_PATH || a->kind == ARG_DIR) {
			char *norm;
			rc = check_path(s, strlen(s), a->name, a->kind == ARG_DIR, p, &norm);
			if (!rc && strcmp(norm, s)) {
				json_t *ns = json_string(norm);
				rc = ns ? json_object_set_new(args, a->name, ns) ? TK_ENOMEM : 0
					: TK_ENOMEM;
			}
			free(norm);
		}
	}
	return rc;
}

void agent_turn_clear(struct agent_turn *t)
{
	if (!t)
		return;
	free(t->thought);
	json_decref(t->args);
	memset(t, 0, sizeof *t);
}

int agent_parse_turn(const char *text, size_t len, unsigned allowed_tools,
		     struct agent_turn *out, char **repair)
{
	memset(out, 0, sizeof *out);
	*repair = NULL;
	struct problem p;
	problem_init(&p);
	json_t *v = NULL;
	int tool = -1;
	int rc = extract_object(text, len, &p, &v);
	static const char *const top[] = { "thought", "tool", "args" };
	if (!rc)
		rc = check_fields(v, "", top, 3, &p);
	const char *thought = NULL, *name = NULL;
	if (!rc)
		rc = get_string(v, "thought", "", false, false, AGENT_REPLY_MAX, &p, &thought);
	if (!rc)
		rc = get_string(v, "tool", "", true, true, 64, &p, &name);
	if (!rc) {
		tool = agent_tool_from_name(name);
		struct tk_buf list = TK_BUF_INIT(512);
		tool_list(allowed_tools, &list);
		if (tool < 0)
			rc = problem_set(&p, "\"%.64s\" is not a tool; your tools are: %s", name,
					 tk_buf_str(&list));
		else if (!(allowed_tools & (1u << tool)))
			rc = problem_set(&p, "you may not use %s; your tools are: %s", name,
					 tk_buf_str(&list));
		tk_buf_free(&list);
	}
	json_t *args = NULL;
	if (!rc) {
		args = json_object_get(v, "args");
		if (!args)
			rc = problem_set(&p, "the field \"args\" is missing (an object with the "
					 "tool's arguments)");
		else if (!json_is_object(args))
			rc = problem_set(&p, "\"args\" must be an object, not %s",
					 a_type(args));
		else
			rc = check_args(tool, args, &p);
	}
	if (!rc) {
		out->thought = strdup(thought ? thought : "");
		if (!out->thought) {
			rc = TK_ENOMEM;
		} else {
			out->tool = (enum agent_tool)tool;
			out->args = json_incref(args);
		}
	}
	json_decref(v);
	if (rc)
		agent_turn_clear(out);
	if (rc == TK_EFORMAT) {
		struct tk_buf shape = TK_BUF_INIT(4096);
		turn_shape(allowed_tools, tool >= 0 && (allowed_tools & (1u << tool)) ? tool : -1,
			   &shape);
		rc = finish_parse(rc, &p, "agent turn", tk_buf_str(&shape), repair);
		tk_buf_free(&shape);
		return rc;
	}
	return finish_parse(rc, &p, "agent turn", "", repair);
}

/* ---- planner, critic, reviewer --------------------------------------------- */

static bool plan_agent_ok(const struct agent_def *d)
{
	return d && (d->kind == AGENT_KIND_WORKER || d->kind == AGENT_KIND_REVIEWER);
}

/* "coder|tester|..." (the agents a step may name), sep between names. */
static void step_agents(const struct agent_team *team, const char *sep, struct tk_buf *out)
{
	bool first = true;
	for (size_t i = 0; team && i < team->n && i < AGENT_TEAM_MAX; i++)
		if (plan_agent_ok(&team->agents[i])) {
			tk_buf_printf(out, "%s%s", first ? "" : sep, team->agents[i].name);
			first = false;
		}
}

static int check_plan(const json_t *plan, size_t pi, const struct agent_team *team,
		      struct problem *p)
{
	char where[64];
	snprintf(where, sizeof where, "plans[%zu]", pi);
	if (!json_is_object(plan))
		return problem_set(p, "\"%s\" must be an object {\"title\", \"steps\"}, not %s",
				   where, a_type(plan));
	static const char *const fields[] = { "title", "steps" };
	int rc = check_fields(plan, where, fields, 2, p);
	const char *title;
	snprintf(where, sizeof where, "plans[%zu].", pi);
	if (!rc)
		rc = get_string(plan, "title", where, true, true, TITLE_MAX, p, &title);
	if (rc)
		return rc;
	const json_t *steps = json_object_get(plan, "steps");
	if (!steps)
		return problem_set(p, "the field \"plans[%zu].steps\" is missing", pi);
	if (!json_is_array(steps))
		return problem_set(p, "\"plans[%zu].steps\" must be an array, not %s", pi,
				   a_type(steps));
	size_t n = json_array_size(steps);
	if (n == 0 || n > PLAN_STEPS_MAX)
		return problem_set(p, "\"plans[%zu].steps\" has %zu steps; give 1 to %d", pi, n,
				   PLAN_STEPS_MAX);
	for (size_t si = 0; si < n; si++) {
		const json_t *st = json_array_get(steps, si);
		snprintf(where, sizeof where, "plans[%zu].steps[%zu]", pi, si);
		if (!json_is_object(st))
			return problem_set(p, "\"%s\" must be an object {\"agent\", \"goal\"}, not %s",
					   where, a_type(st));
		static const char *const sf[] = { "agent", "goal" };
		if ((rc = check_fields(st, where, sf, 2, p)))
			return rc;
		snprintf(where, sizeof where, "plans[%zu].steps[%zu].", pi, si);
		const char *agent, *goal;
		if ((rc = get_string(st, "agent", where, true, true, AGENT_NAME_MAX, p, &agent)) ||
		    (rc = get_string(st, "goal", where, true, true, TEXT_MAX, p, &goal)))
			return rc;
		const struct agent_def *d = agent_team_find(team, agent);
		if (!plan_agent_ok(d)) {
			struct tk_buf names = TK_BUF_INIT(4096);
			step_agents(team, ", ", &names);
			rc = problem_set(p, "\"%sagent\" is \"%.64s\", which %s; steps go to one of: %s",
					 where, agent, d ? "makes plans and does not do steps"
							 : "is not an agent of the team",
					 tk_buf_str(&names));
			tk_buf_free(&names);
			return rc;
		}
	}
	return 0;
}

int agent_parse_plans(const char *text, size_t len, const struct agent_team *team,
		      int32_t max_plans, json_t **plans, char **repair)
{
	*plans = NULL;
	*repair = NULL;
	if (max_plans < 1)
		max_plans = 1;
	struct problem p;
	problem_init(&p);
	json_t *v = NULL;
	int rc = extract_object(text, len, &p, &v);
	static const char *const top[] = { "plans" };
	if (!rc)
		rc = check_fields(v, "", top, 1, &p);
	const json_t *arr = NULL;
	if (!rc) {
		arr = json_object_get(v, "plans");
		if (!arr)
			rc = problem_set(&p, "the field \"plans\" is missing");
		else if (!json_is_array(arr))
			rc = problem_set(&p, "\"plans\" must be an array of plans, not %s",
					 a_type(arr));
		else if (json_array_size(arr) == 0 || json_array_size(arr) > (size_t)max_plans)
			rc = problem_set(&p, "\"plans\" has %zu plans; give %s%d", json_array_size(arr),
					 max_plans > 1 ? "1 to " : "exactly ", (int)max_plans);
	}
	for (size_t i = 0; !rc && i < json_array_size(arr); i++)
		rc = check_plan(json_array_get(arr, i), i, team, &p);
	if (!rc)
		*plans = json_incref((json_t *)arr);
	json_decref(v);
	struct tk_buf shape = TK_BUF_INIT(8192);
	tk_buf_puts(&shape, "{\"plans\": [{\"title\": \"<the approach in a few words>\", \"steps\": "
			    "[{\"agent\": \"<");
	step_agents(team, "|", &shape);
	tk_buf_printf(&shape, ">\", \"goal\": \"<what must be true when the step is done>\"}]}]}"
			      " with 1 to %d plans of 1 to %d steps", (int)max_plans, PLAN_STEPS_MAX);
	rc = finish_parse(rc, &p, "planner reply", tk_buf_str(&shape), repair);
	tk_buf_free(&shape);
	return rc;
}

int agent_parse_choice(const char *text, size_t len, int32_t n_plans, int32_t *choice,
		       char **reason, char **repair)
{
	*choice = 0;
	*reason = NULL;
	*repair = NULL;
	if (n_plans < 1)
		return tk_errf(TK_EINVAL, "critic reply: n_plans must be >= 1, got %d", (int)n_plans);
	struct problem p;
	problem_init(&p);
	json_t *v = NULL;
	int rc = extract_object(text, len, &p, &v);
	static const char *const top[] = { "choice", "reason" };
	if (!rc)
		rc = check_fields(v, "", top, 2, &p);
	const char *why = NULL;
	if (!rc) {
		const json_t *c = json_object_get(v, "choice");
		if (!c)
			rc = problem_set(&p, "the field \"choice\" is missing");
		else if (json_is_real(c))
			rc = problem_set(&p, "\"choice\" must be a whole number, the index of one plan");
		else if (!json_is_integer(c))
			rc = problem_set(&p, "\"choice\" must be a number (the index of one plan), not "
					 "%s", a_type(c));
		else if (json_integer_value(c) < 0 || json_integer_value(c) >= n_plans)
			rc = problem_set(&p, "\"choice\" is %lld but there %s %d plan%s, numbered from "
					 "0: choose %s%d", (long long)json_integer_value(c),
					 n_plans == 1 ? "is" : "are", (int)n_plans, n_plans == 1 ? "" : "s",
					 n_plans == 1 ? "" : "0 to ", (int)n_plans - 1);
		else
			*choice = (int32_t)json_integer_value(c);
	}
	if (!rc)
		rc = get_string(v, "reason", "", false, false, TEXT_MAX, &p, &why);
	if (!rc && !(*reason = strdup(why ? why : "")))
		rc = TK_ENOMEM;
	json_decref(v);
	if (rc)
		*choice = 0;
	char shape[160];
	snprintf(shape, sizeof shape, "{\"reason\": \"<why one plan is the best>\", \"choice\": "
		 "<the index of that plan, 0 to %d>}", (int)n_plans - 1);
	return finish_parse(rc, &p, "critic reply", shape, repair);
}

int agent_parse_verdict(const char *text, size_t len, bool *approve, json_t **issues,
			char **repair)
{
	*approve = false;
	*issues = NULL;
	*repair = NULL;
	struct problem p;
	problem_init(&p);
	json_t *v = NULL;
	int rc = extract_object(text, len, &p, &v);
	static const char *const top[] = { "verdict", "issues" };
	if (!rc)
		rc = check_fields(v, "", top, 2, &p);
	const char *verdict = NULL;
	if (!rc)
		rc = get_string(v, "verdict", "", true, true, 64, &p, &verdict);
	if (!rc && strcmp(verdict, "approve") && strcmp(verdict, "changes"))
		rc = problem_set(&p, "\"verdict\" is \"%.64s\"; it must be \"approve\" or \"changes\"",
				 verdict);
	const json_t *arr = NULL;
	if (!rc && (arr = json_object_get(v, "issues"))) {
		if (!json_is_array(arr))
			rc = problem_set(&p, "\"issues\" must be an array of strings, not %s",
					 a_type(arr));
		else if (json_array_size(arr) > ISSUES_MAX)
			rc = problem_set(&p, "\"issues\" has %zu items; give at most %d, the most "
					 "important first", json_array_size(arr), ISSUES_MAX);
		for (size_t i = 0; !rc && i < json_array_size(arr); i++) {
			const json_t *s = json_array_get(arr, i);
			if (!json_is_string(s))
				rc = problem_set(&p, "\"issues[%zu]\" must be a string, not %s", i,
						 a_type(s));
			else if (json_string_length(s) == 0)
				rc = problem_set(&p, "\"issues[%zu]\" is empty", i);
			else if (json_string_length(s) > TEXT_MAX)
				rc = problem_set(&p, "\"issues[%zu]\" is %zu bytes long, more than %d", i,
						 json_string_length(s), TEXT_MAX);
		}
	}
	if (!rc && !strcmp(verdict, "changes") && json_array_size(arr) == 0)
		rc = problem_set(&p, "the verdict \"changes\" needs at least one issue in \"issues\" "
				 "(or answer \"approve\")");
	if (!rc) {
		*issues = arr ? json_incref((json_t *)arr) : json_array();
		if (!*issues)
			rc = TK_ENOMEM;
		else
			*approve = !strcmp(verdict, "approve");
	}
	json_decref(v);
	return finish_parse(rc, &p, "reviewer reply",
			    "{\"issues\": [\"<file and line or function: what is wrong and what to "
			    "change>\", ...], \"verdict\": \"approve\" | \"changes\"} (\"changes\" "
			    "needs at least one issue; \"approve\" may give [])",
			    repair);
}

/* ---- schemas ----------------------------------------------------------------- */

const char *agent_schema_turn(void)
{
	return "{\"type\": \"object\", \"properties\": {"
	       "\"thought\": {\"type\": \"string\"}, "
	       "\"tool\": {\"enum\": [\"list_files\", \"read_file\", \"write_file\", \"edit_file\", "
	       "\"run\", \"finish\"]}, "
	       "\"args\": {\"type\": \"object\", \"properties\": {"
	       "\"path\": {\"type\": \"string\"}, \"content\": {\"type\": \"string\"}, "
	       "\"search\": {\"type\": \"string\"}, \"replace\": {\"type\": \"string\"}, "
	       "\"command\": {\"type\": \"string\"}, \"summary\": {\"type\": \"string\"}, "
	       "\"test_command\": {\"type\": \"string\"}}}}, "
	       "\"required\": [\"thought\", \"tool\", \"args\"]}";
}

const char *agent_schema_plans(void)
{
	return "{\"type\": \"object\", \"properties\": {\"plans\": {\"type\": \"array\", \"items\": "
	       "{\"type\": \"object\", \"properties\": {\"title\": {\"type\": \"string\"}, "
	       "\"steps\": {\"type\": \"array\", \"items\": {\"type\": \"object\", \"properties\": "
	       "{\"agent\": {\"type\": \"string\"}, \"goal\": {\"type\": \"string\"}}, "
	       "\"required\": [\"agent\", \"goal\"]}}}, \"required\": [\"title\", \"steps\"]}}}, "
	       "\"required\": [\"plans\"]}";
}

const char *agent_schema_choice(void)
{
	return "{\"type\": \"object\", \"properties\": {\"reason\": {\"type\": \"string\"}, "
	       "\"choice\": {\"type\": \"integer\"}}, \"required\": [\"reason\", \"choice\"]}";
}

const char *agent_schema_verdict(void)
{
	return "{\"type\": \"object\", \"properties\": {\"issues\": {\"type\": \"array\", "
	       "\"items\": {\"type\": \"string\"}}, \"verdict\": {\"enum\": [\"approve\", "
	       "\"changes\"]}}, \"required\": [\"issues\", \"verdict\"]}";
}

/* ---- the protocol part of system prompts ------------------------------------ */

char *agent_protocol_prompt(enum agent_kind k, unsigned tools)
{
	struct tk_buf b = TK_BUF_INIT(64u << 10);
	int rc = 0;
	switch (k) {
	case AGENT_KIND_WORKER:
		rc = tk_buf_puts(&b,
			"Answer every turn with exactly one JSON object and nothing else:\n"
			"{\"thought\": \"<what you do next and why, briefly>\", \"tool\": \"<tool>\", "
			"\"args\": {<the tool's arguments>}}\n"
			"One tool call per turn; its result comes in the next message.\n"
			"Tools:\n");
		for (int t = 0; !rc && t < AGENT_TOOL_COUNT_; t++)
			if (tools & (1u << t))
				rc = tk_buf_printf(&b, "- %s %s: %s\n", agent_tool_name((enum agent_tool)t),
						   tool_specs[t].args_shape, tool_specs[t].what);
		if (!rc)
			rc = tk_buf_puts(&b,
				"Paths are relative to the workspace root (\"src/main.c\"): no leading "
				"\"/\", no \"..\".\n"
				"A reply that is not valid gets a message saying what to fix; answer it "
				"with a corrected JSON object.\n");
		break;
	case AGENT_KIND_PLANNER:
		rc = tk_buf_printf(&b,
			"You are asked either for plans or to choose one of them; the request says "
			"which. Answer with exactly one JSON object and nothing else.\n"
			"Plans: {\"plans\": [{\"title\": \"<the approach in a few words>\", \"steps\": "
			"[{\"agent\": \"<agent name>\", \"goal\": \"<what must be true when the step is "
			"done>\"}]}]}\n"
			"Give as many plans as asked for, each with 1 to %d steps. Every step goes to "
			"one agent of the team (a worker or the reviewer), by name.\n"
			"Choice: {\"reason\": \"<why one plan is the best>\", \"choice\": <the index "
			"of that plan, counting from 0>}\n", PLAN_STEPS_MAX);
		break;
	case AGENT_KIND_REVIEWER:
		rc = tk_buf_puts(&b,
			"Answer with exactly one JSON object and nothing else:\n"
			"{\"issues\": [\"<file and line or function: what is wrong and what to "
			"change>\", ...], \"verdict\": \"approve\" | \"changes\"}\n"
			"\"changes\" needs at least one issue; with \"approve\", \"issues\" is [] or "
			"lists minor remarks.\n");
		break;
	default:
		rc = tk_errf(TK_EINVAL, "agent_protocol_prompt: unknown agent kind %d", (int)k);
		tk_buf_free(&b);
		return NULL;
	}
	if (rc) {
		tk_buf_free(&b);
		tk_errf(TK_ENOMEM, "agent_protocol_prompt: out of memory");
		return NULL;
	}
	char *s = tk_buf_detach(&b, NULL);
	if (!s)
		tk_errf(TK_ENOMEM, "agent_protocol_prompt: out of memory");
	return s;
}
