/*
 * orch_ingress.c — the orchestrator's front door and its public odds and
 * ends: settings (defaults, from the configuration), outcome names and the
 * result functions of agents.h, and ingress: validating and sanitizing a
 * task, guessing its language, picking its sandbox profile, the effective
 * budget, and the "task" event that records the whole request for replay.
 */
#include "agents/orch_int.h"

#include "agents/protocol.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/time.h"
#include "core/utf8.h"
#include "obs/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- settings ------------------------------------------------------------ */

void agent_settings_default(struct agent_settings *s)
{
	*s = (struct agent_settings){
		.budget = { .max_iterations = 6,
			    .max_tokens = 200000,
			    .wall_ms = 1800000,
			    .sandbox_ms = 600000 },
		.plans = 2,
		.context_tokens = 8192,
		.max_repairs = 2,
		.tool_output_bytes = 4096,
		.profile = NULL,
		.default_profile = "shell",
		.work_dir = NULL,
		.keep_workspace = false,
		.seed = 0,
	};
}

void agent_settings_from_config(const struct tk_config *c, struct agent_settings *s)
{
	agent_settings_default(s);
	if (!c)
		return;
	s->plans = (int32_t)tk_config_int(c, "agents.plans");
	s->budget.max_iterations = (int32_t)tk_config_int(c, "agents.max_iterations");
	s->budget.max_tokens = tk_config_int(c, "agents.max_tokens");
	s->budget.wall_ms = tk_config_int(c, "agents.wall_s") * 1000;
	s->budget.sandbox_ms = tk_config_int(c, "agents.sandbox_s") * 1000;
	s->context_tokens = (int32_t)tk_config_int(c, "agents.context_tokens");
	s->max_repairs = (int32_t)tk_config_int(c, "agents.max_repairs");
	s->tool_output_bytes = (int32_t)tk_config_int(c, "agents.tool_output_bytes");
	s->profile = tk_config_str(c, "agents.profile");
	s->default_profile = tk_config_str(c, "sandbox.default_profile");
	const char *wd = tk_config_str(c, "agents.work_dir");
	s->work_dir = wd && wd[0] ? wd : NULL;
	s->keep_workspace = tk_config_bool(c, "agents.keep_workspace");
	s->seed = (uint64_t)tk_config_int(c, "agents.seed");
}

/* ---- results ------------------------------------------------------------- */

const char *agent_outcome_name(enum agent_outcome o)
{
	switch (o) {
	case AGENT_COMPLETED:
		return "completed";
	case AGENT_FAILED:
		return "failed";
	case AGENT_TIMED_OUT:
		return "timed_out";
	case AGENT_CANCELLED:
		return "cancelled";
	}
	return "unknown";
}

json_t *agent_result_to_json(const struct agent_result *r)
{
	if (!r)
		return NULL;
	json_t *j = json_pack("{s:s?, s:s, s:s?, s:O?, s:s?, s:O?, s:O?, s:i}", "result", r->summary,
			      "status", agent_outcome_name(r->outcome), "reason", r->reason,
			      "files", r->files, "diff", r->diff, "tests", r->tests, "usage",
			      r->usage, "iterations", (int)r->iterations);
	if (!j)
		tk_errf(TK_ENOMEM, "agents: result JSON: out of memory");
	return j;
}

void agent_result_free(struct agent_result *r)
{
	if (!r)
		return;
	free(r->summary);
	free(r->reason);
	free(r->diff);
	json_decref(r->files);
	json_decref(r->tests);
	json_decref(r->usage);
	memset(r, 0, sizeof *r);
}

/* ---- ingress ------------------------------------------------------------- */

static bool utf8_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		int k = tk_utf8_check((const unsigned char *)s + i, n - i);
		if (k <= 0 || s[i] == '\0')
			return false;
		i += (size_t)k;
	}
	return true;
}

/* A copy of s without control characters other than \n and \t. NULL with
 * TK_EINVAL (not UTF-8, too long) or TK_ENOMEM. */
static char *sanitize(const char *field, const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max) {
		tk_errf(TK_EINVAL, "%s: %zu bytes, the limit is %zu", field, n, max);
		return NULL;
	}
	if (!utf8_ok(s, n)) {
		tk_errf(TK_EINVAL, "%s: not valid UTF-8", field);
		return NULL;
	}
	char *out = malloc(n + 1), *w = out;
	if (!out) {
		tk_errf(TK_ENOMEM, "%s: out of memory", field);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F)
			continue;
		*w++ = (char)c;
	}
	*w = '\0';
	return out;
}

static bool blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\n' && *s != '\t')
			return false;
	return true;
}

/* Relative, no "..", "." or empty component, no backslash or control
 * character, at most ORCH_PATH_MAX bytes and 255 a component. */
static bool path_ok(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || n > ORCH_PATH_MAX || p[0] == '/')
		return false;
	const char *c = p;
	while (*c) {
		size_t len = strcspn(c, "/");
		if (len == 0 || len > 255 || (len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)c[i] < 0x20 || c[i] == 0x7F || c[i] == '\\')
				return false;
		c += len;
		if (*c == '/')
			c++;
		if (!*c && c[-1] == '/')
			return false;
	}
	return utf8_ok(p, n);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

/* The language from the files and the test command: each file votes for
 * its language, the test command's tool counts double. NULL when nothing
 * points anywhere. */
static const char *guess_language(const struct agent_task *t)
{
	int c = 0, py = 0, sh = 0;
	for (size_t i = 0; i < t->n_files; i++) {
		const char *p = t->files[i].path;
		const char *base = strrchr(p, '/') ? strrchr(p, '/') + 1 : p;
		if (ends_with(p, ".c") || ends_with(p, ".h") || !strcmp(base, "Makefile") ||
		    !strcmp(base, "makefile"))
			c++;
		else if (ends_with(p, ".py"))
			py++;
		else if (ends_with(p, ".sh"))
			sh++;
	}
	const char *cmd = t->test_command;
	if (cmd) {
		if (strstr(cmd, "gcc") || strstr(cmd, "cc ") || strstr(cmd, "clang") ||
		    strstr(cmd, "make"))
			c += 2;
		if (strstr(cmd, "pytest") || strstr(cmd, "python"))
			py += 2;
		if (!strncmp(cmd, "sh ", 3) || !strncmp(cmd, "bash ", 5))
			sh += 2;
	}
	if (c == 0 && py == 0 && sh == 0)
		return NULL;
	return c >= py && c >= sh ? "c" : py >= sh ? "python" : "shell";
}

static bool language_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > ORCH_LANG_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr("+#._-", *s)))
			return false;
	return true;
}

static int64_t tighten(int64_t deflt, int64_t req)
{
	return req > 0 && req < deflt ? req : deflt;
}

int orch_ingress(struct orch *o, const struct agent_task *t)
{
	const struct agent_settings *s = o->set;
	if (!t->description)
		return tk_errf(TK_EINVAL, "description: required");
	if (!(o->description = sanitize("description", t->description, ORCH_DESC_MAX)))
		return tk_err_last();
	if (blank(o->description))
		return tk_errf(TK_EINVAL, "description: empty");
	if (t->context && !(o->context = sanitize("context", t->context, ORCH_CONTEXT_MAX)))
		return tk_err_last();
	if (t->test_command && t->test_command[0]) {
		size_t n = strlen(t->test_command);
		if (n > ORCH_COMMAND_MAX)
			return tk_errf(TK_EINVAL, "test_command: %zu bytes, the limit is %u", n,
				       ORCH_COMMAND_MAX);
		if (!(o->test_command = sanitize("test_command", t->test_command, ORCH_COMMAND_MAX)))
			return tk_err_last();
		if (blank(o->test_command)) {
			free(o->test_command);
			o->test_command = NULL;
		}
	}
	if (t->n_files > ORCH_FILES_MAX)
		return tk_errf(TK_EINVAL, "files: %zu entries, the limit is %u", t->n_files,
			       ORCH_FILES_MAX);
	if (t->n_files && !t->files)
		return tk_errf(TK_EINVAL, "files: NULL with %zu entries", t->n_files);
	if (!(o->input = json_object()))
		return tk_errf(TK_ENOMEM, "files: out of memory");
	size_t total = 0;
	for (size_t i = 0; i < t->n_files; i++) {
		const struct agent_file *f = &t->files[i];
		if (!f->path || !path_ok(f->path))
			return tk_errf(TK_EINVAL,
				       "files[%zu].path: must be a relative path without '..', '.' or "
				       "empty components, at most %u bytes",
				       i, ORCH_PATH_MAX);
		if (json_object_get(o->input, f->path))
			return tk_errf(TK_EINVAL, "files[%zu].path: '%s' is given twice", i, f->path);
		if (f->size && !f->content)
			return tk_errf(TK_EINVAL, "files[%zu].content: NULL", i);
		if (f->size > ORCH_FILE_MAX)
			return tk_errf(TK_EINVAL, "files[%zu].content: %zu bytes, the limit is %u", i,
				       f->size, ORCH_FILE_MAX);
		if ((total += f->size) > ORCH_FILES_TOTAL_MAX)
			return tk_errf(TK_EINVAL, "files: %zu bytes in all, the limit is %u", total,
				       ORCH_FILES_TOTAL_MAX);
		/* Text only: the task event carries the inputs for replay,
		 * and diffs are of text. */
		if (!utf8_ok(f->content ? f->content : "", f->size))
			return tk_errf(TK_EINVAL, "files[%zu].content: not UTF-8 text without NUL", i);
		if (json_object_set_new(o->input, f->path,
					json_stringn(f->content ? f->content : "", f->size)))
			return tk_errf(TK_ENOMEM, "files: out of memory");
	}
	o->files = t->files;
	o->n_files = t->n_files;
	const char *lang = t->language && t->language[0] ? t->language : guess_language(t);
	if (lang) {
		if (!language_ok(lang))
			return tk_errf(TK_EINVAL,
				       "language: '%.*s' must be 1..%u characters of a-z, 0-9, '+', "
				       "'#', '.', '_' and '-'",
				       (int)orch_utf8_cut(lang, 40), lang, ORCH_LANG_MAX);
		if (!(o->language = strdup(lang)))
			return tk_errf(TK_ENOMEM, "language: out of memory");
	}
	const struct agent_budget *b = &t->budget;
	if (b->max_iterations < 0 || b->max_tokens < 0 || b->wall_ms < 0 || b->sandbox_ms < 0)
		return tk_errf(TK_EINVAL, "budget: values must be >= 0 (0: the default)");
	o->budget.max_iterations = (int32_t)tighten(s->budget.max_iterations, b->max_iterations);
	o->budget.max_tokens = tighten(s->budget.max_tokens, b->max_tokens);
	o->budget.wall_ms = tighten(s->budget.wall_ms, b->wall_ms);
	o->budget.sandbox_ms = tighten(s->budget.sandbox_ms, b->sandbox_ms);
	/* the sandbox profile: the setting, else the language's, else the
	 * default */
	const struct tk_sandbox_profiles *ps = o->env->profiles;
	if (s->profile && s->profile[0]) {
		if (!(o->profile = tk_sandbox_profile_find(ps, s->profile)))
			return tk_errf(TK_EINVAL, "agents.profile: no sandbox profile '%s'", s->profile);
	} else if (o->language && (o->profile = tk_sandbox_profile_find(ps, o->language))) {
		;
	} else {
		const char *d = s->default_profile && s->default_profile[0] ? s->default_profile
									    : "shell";
		if (!(o->profile = tk_sandbox_profile_find(ps, d)))
			return tk_errf(TK_EINVAL, "sandbox.default_profile: no sandbox profile '%s'", d);
	}
	return 0;
}

static json_t *budget_json(const struct agent_budget *b)
{
	return json_pack("{s:i, s:I, s:I, s:I}", "max_iterations", (int)b->max_iterations,
			 "max_tokens", (json_int_t)b->max_tokens, "wall_ms", (json_int_t)b->wall_ms,
			 "sandbox_ms", (json_int_t)b->sandbox_ms);
}

void orch_emit_task(struct orch *o)
{
	json_t *files = json_array();
	for (size_t i = 0; files && i < o->n_files; i++)
		json_array_append_new(files,
				      json_pack("{s:s, s:O}", "path", o->files[i].path, "content",
						json_object_get(o->input, o->files[i].path)));
	orch_emit(o, "task",
		  json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s, s:o?, s:i, s:o?}", "id", o->task_id,
			    "description", o->description, "context", o->context, "language",
			    o->language, "test_command", o->test_command, "profile",
			    o->profile->name, "budget", budget_json(&o->budget), "plans",
			    (int)o->set->plans, "files", files));
	orch_emit(o, "status", json_pack("{s:s}", "status", "running"));
}

