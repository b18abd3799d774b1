/*
 * orch_brief.c — briefing packets: the user message each model call gets
 * (task, plan with the current step marked, the world model — file tree,
 * relevant file contents, recent tool results and errors, failing tests and
 * review issues of the last round), built to fit the model's context
 * window. When it does not fit, the oldest tool outputs are dropped first,
 * then file contents, then the diff — each drop said in the text itself
 * and in a "context" event — so a backend never truncates silently. Also
 * the diff of the workspace against the input (the reviewer's briefing and
 * the aggregator's result).
 */
#include "agents/orch_int.h"

#include "core/err.h"
#include "core/json.h"
#include "obs/log.h"
#include "sandbox/sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TREE_MAX_BYTES 4096       /* the file tree part of a briefing */
#define FILE_SHOWN_MAX (64u << 10) /* one file's content in a briefing */
#define BRIEF_MAX (8u << 20)      /* one briefing, whatever the window */
#define ORCH_MSG_OVERHEAD_TOKENS 8 /* a chat template's tokens per message */

int64_t orch_tokens_of(size_t n_bytes)
{
	return (int64_t)((n_bytes + 2) / 3);
}

/* ---- the diff ------------------------------------------------------------ */

/* Whether the snapshot skipped path (so a missing file is not "deleted"). */
static bool in_skipped(const json_t *skipped, const char *path)
{
	size_t i;
	json_t *v;
	json_array_foreach(skipped, i, v) {
		const char *p = json_is_string(v) ? json_string_value(v)
						  : tk_json_get_str(v, "path", NULL);
		if (!p)
			continue;
		/* an entry is a skipped file, or a whole skipped directory
		 * (ignored names such as node_modules) covering what is under it */
		size_t n = strlen(p);
		if (!strncmp(p, path, n) && (path[n] == '\0' || path[n] == '/'))
			return true;
	}
	return false;
}

/* Tool caches a test run leaves behind (pytest's): not the task's work. */
static bool cache_path(const char *p)
{
	return !strncmp(p, ".pytest_cache/", 14) || strstr(p, "/.pytest_cache/");
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int orch_diff(struct orch *o, struct tk_buf *out, json_t **files)
{
	json_t *skipped = NULL;
	json_t *snap = agent_ws_snapshot(o->ws, &skipped);
	if (!snap)
		return tk_err_wrap(tk_err_last() ? tk_err_last() : TK_EIO, "agents: snapshot");
	int rc = 0;
	json_t *changed = files ? json_array() : NULL;
	size_t n_all = json_object_size(snap) + json_object_size(o->input);
	const char **paths = calloc(n_all ? n_all : 1, sizeof *paths);
	struct tk_buf one = TK_BUF_INIT(ORCH_DIFF_MAX);
	if (!paths || (files && !changed)) {
		rc = tk_errf(TK_ENOMEM, "agents: diff: out of memory");
		goto out;
	}
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(snap, k, v)
		if (!cache_path(k))
			paths[n++] = k;
	json_object_foreach(o->input, k, v)
		if (!json_object_get(snap, k))
			paths[n++] = k;
	qsort(paths, n, sizeof *paths, cmp_str);
	for (size_t i = 0; i < n; i++) {
		const json_t *a = json_object_get(o->input, paths[i]);
		const json_t *b = json_object_get(snap, paths[i]);
		const char *status;
		if (a && b) {
			if (json_string_length(a) == json_string_length(b) &&
			    !memcmp(json_string_value(a), json_string_value(b), json_string_length(a)))
				continue;
			status = "modified";
		} else if (b) {
			status = "added";
		} else {
			/* A file the snapshot refused (binary, link, too big) is
			 * not a deletion: we cannot tell what it became. */
			if (in_skipped(skipped, paths[i]))
				continue;
			status = "deleted";
		}
		tk_buf_reset(&one);
		int d = agent_diff_unified(paths[i], a ? json_string_value(a) : NULL,
					   a ? json_string_length(a) : 0,
					   b ? json_string_value(b) : NULL,
					   b ? json_string_length(b) : 0, &one);
		if (d == TK_ENOMEM) {
			rc = d;
			goto out;
		}
		if (d || out->len + one.len + 256 > out->max_bytes) {
			if (tk_buf_printf(out, "# diff of %s left out: over %u bytes\n", paths[i],
					  ORCH_DIFF_MAX))
				(void)0; /* the cap itself: nothing more fits */
		} else if ((rc = tk_buf_append(out, one.data ? one.data : "", one.len))) {
			goto out;
		}
		if (changed) {
			json_t *f = json_pack("{s:s, s:O, s:s}", "path", paths[i], "content",
					      b ? b : json_null(), "status", status);
			if (!f || json_array_append_new(changed, f)) {
				rc = tk_errf(TK_ENOMEM, "agents: diff: out of memory");
				goto out;
			}
		}
	}
	if (files) {
		*files = changed;
		changed = NULL;
	}
out:
	tk_buf_free(&one);
	free(paths);
	json_decref(changed);
	json_decref(snap);
	json_decref(skipped);
	return rc;
}

/* ---- briefing items ------------------------------------------------------ */

enum item_class {
	IC_FIXED = 0, /* never dropped */
	IC_TOOL,      /* a recent tool output: dropped first, oldest first */
	IC_FILE,      /* a file's content: dropped next */
	IC_DIFF,      /* the diff: dropped last */
};

struct item {
	enum item_class cls;
	char *text;   /* owned: the whole section, title included */
	char *label;  /* owned: what it is, for the drop note and event */
	size_t bytes; /* of the section as made (0: a file not even read) */
	char *summary; /* owned, tool outputs only: what stays when dropped */
	bool dropped;
};

struct items {
	struct item *v;
	size_t n, cap;
};

static void items_free(struct items *it)
{
	for (size_t i = 0; i < it->n; i++) {
		free(it->v[i].text);
		free(it->v[i].label);
		free(it->v[i].summary);
	}
	free(it->v);
}

/* Adds a section (printf); label NULL for fixed items. TK_ENOMEM. */
static int add(struct items *it, enum item_class cls, const char *label, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int add(struct items *it, enum item_class cls, const char *label, const char *fmt, ...)
{
	if (it->n == it->cap) {
		size_t cap = it->cap ? it->cap * 2 : 16;
		struct item *v = realloc(it->v, cap * sizeof *v);
		if (!v)
			return tk_errf(TK_ENOMEM, "agents: briefing: out of memory");
		it->v = v;
		it->cap = cap;
	}
	va_list ap;
	va_start(ap, fmt);
	char *t = NULL;
	int n = vasprintf(&t, fmt, ap);
	va_end(ap);
	char *l = label ? strdup(label) : NULL;
	if (n < 0 || (label && !l)) {
		free(l);
		if (n >= 0)
			free(t);
		return tk_errf(TK_ENOMEM, "agents: briefing: out of memory");
	}
	it->v[it->n++] = (struct item){ .cls = cls, .text = t, .label = l, .bytes = (size_t)n };
	return 0;
}

static size_t items_bytes(const struct items *it)
{
	size_t n = 0;
	for (size_t i = 0; i < it->n; i++)
		n += !it->v[i].dropped ? it->v[i].bytes
		     : it->v[i].summary ? strlen(it->v[i].summary) : 0;
	return n;
}

/* ---- sections ------------------------------------------------------------ */

static int add_task(struct orch *o, struct items *it)
{
	int rc = add(it, IC_FIXED, NULL, "# Task\n%s\n\n", o->description);
	if (!rc && o->context && o->context[0])
		rc = add(it, IC_FIXED, NULL, "# Context\n%s\n\n", o->context);
	if (!rc)
		rc = add(it, IC_FIXED, NULL, "# Language\n%s\n\n",
			 o->language ? o->language : "not stated");
	const char *cmd = o->test_command ? o->test_command : o->tester_command;
	if (!rc)
		rc = add(it, IC_FIXED, NULL, "# Test command\n%s\n\n",
			 cmd ? cmd
			     : "none given: tests must be written; the tester names the command "
			       "that runs them in its finish (args.test_command)");
	return rc;
}

static int add_plan(struct orch *o, struct items *it)
{
	if (!o->plan)
		return 0;
	struct tk_buf b = TK_BUF_INIT(1u << 20);
	int rc = tk_buf_printf(&b, "# Plan: %s\n", tk_json_get_str(o->plan, "title", ""));
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(o->plan, "steps"), i, s)
		if (!rc)
			rc = tk_buf_printf(&b, "%s %zu. [%s] %s\n", i == o->step ? "->" : "  ",
					   i + 1, tk_json_get_str(s, "agent", "?"),
					   tk_json_get_str(s, "goal", ""));
	if (!rc)
		rc = add(it, IC_FIXED, NULL, "%s\n", tk_buf_str(&b));
	tk_buf_free(&b);
	return rc == TK_ENOMEM || rc == 0 ? rc : tk_errf(TK_ENOMEM, "agents: plan text");
}

static int add_team(struct orch *o, struct items *it)
{
	struct tk_buf b = TK_BUF_INIT(1u << 20);
	int rc = tk_buf_puts(&b, "# The team (agents a step may name)\n");
	const struct agent_team *t = o->env->team;
	for (size_t i = 0; i < t->n && !rc; i++) {
		const struct agent_def *a = &t->agents[i];
		if (a->kind == AGENT_KIND_PLANNER)
			continue;
		const char *role = a->role_prompt ? a->role_prompt : "";
		size_t line = strcspn(role, "\n");
		rc = tk_buf_printf(&b, "- %s (%s): %.*s\n", a->name,
				   a->kind == AGENT_KIND_REVIEWER ? "reviewer" : "worker",
				   (int)orch_utf8_cut(role, line > 200 ? 200 : line), role);
	}
	if (!rc)
		rc = add(it, IC_FIXED, NULL, "%s\n", tk_buf_str(&b));
	tk_buf_free(&b);
	return rc ? tk_errf(TK_ENOMEM, "agents: team text") : 0;
}

static int add_tree(struct orch *o, struct items *it)
{
	struct tk_buf b = TK_BUF_INIT(TREE_MAX_BYTES + 256);
	int rc = agent_ws_tree(o->ws, TREE_MAX_BYTES, &b);
	if (rc == TK_ENOMEM)
		goto out;
	rc = add(it, IC_FIXED, NULL, "# Files in the workspace\n%s\n",
		 rc ? "(the listing failed)" : b.len ? tk_buf_str(&b) : "(empty)\n");
out:
	tk_buf_free(&b);
	return rc;
}

/* The relevant files: those the task named (input) and those tools touched,
 * in that order, each once. */
static int add_files(struct orch *o, struct items *it)
{
	json_t *seen = json_object();
	if (!seen)
		return tk_errf(TK_ENOMEM, "agents: briefing: out of memory");
	int rc = 0;
	json_t *order = json_array();
	if (!order) {
		rc = tk_errf(TK_ENOMEM, "agents: briefing: out of memory");
		goto out;
	}
	const char *k;
	json_t *v;
	json_object_foreach(o->input, k, v)
		if (json_array_append_new(order, json_string(k)))
			goto nomem;
	json_object_foreach(o->touched, k, v)
		if (!json_object_get(o->input, k) && json_array_append_new(order, json_string(k)))
			goto nomem;
	/* A file bigger than the whole window is dropped at once, and past
	 * a few windows' worth of kept file text the rest is not even read:
	 * it could never fit. Both are listed as left out, like every drop. */
	size_t window_bytes = (size_t)o->set->context_tokens * 3, shown_bytes = 0;
	size_t i;
	json_array_foreach(order, i, v) {
		const char *path = json_string_value(v);
		if (!path || json_object_get(seen, path))
			continue;
		json_object_set_new(seen, path, json_true());
		if (shown_bytes >= 4 * window_bytes) {
			if ((rc = add(it, IC_FILE, path, "%s", "")))
				goto out;
			it->v[it->n - 1].dropped = true; /* bytes 0: not read */
			continue;
		}
		struct tk_buf b = TK_BUF_INIT(ORCH_FILE_MAX);
		int r = tk_sandbox_workspace_read(agent_ws_path(o->ws), path, &b);
		if (r == TK_ENOENT) {
			tk_buf_free(&b);
			continue; /* deleted since: the tree shows what exists */
		}
		char *shown = r ? NULL : orch_clip(b.data, b.len, FILE_SHOWN_MAX);
		tk_buf_free(&b);
		if (!r && !shown)
			goto nomem;
		rc = r ? add(it, IC_FILE, path, "## %s\n(cannot be shown: %s)\n\n", path,
			     tk_err_name(r))
		       : add(it, IC_FILE, path, "## %s\n```\n%s\n```\n\n", path, shown);
		free(shown);
		if (rc)
			goto out;
		struct item *last = &it->v[it->n - 1];
		if (last->bytes > window_bytes) {
			last->dropped = true; /* bytes stays: the note says how big */
			last->text[0] = '\0';
		} else {
			shown_bytes += last->bytes;
		}
	}
	goto out;
nomem:
	rc = tk_errf(TK_ENOMEM, "agents: briefing: out of memory");
out:
	json_decref(order);
	json_decref(seen);
	return rc;
}

static int add_recent(struct orch *o, struct items *it)
{
	size_t i;
	json_t *r;
	json_array_foreach(o->recent, i, r) {
		const char *agent = tk_json_get_str(r, "agent", "?");
		const char *call = tk_json_get_str(r, "call", "?");
		const char *verdict = tk_json_get_bool(r, "ok", false) ? "ok" : "error";
		const char *out = tk_json_get_str(r, "output", "");
		char label[400];
		snprintf(label, sizeof label, "output of %.*s by %s", (int)orch_utf8_cut(call, 300),
			 call, agent);
		int rc = add(it, IC_TOOL, label, "## [%s] %s -> %s\n%s\n\n", agent, call, verdict,
			     out);
		if (rc)
			return rc;
		/* dropped, a tool output keeps its call, verdict and first line */
		size_t first = strcspn(out, "\n");
		struct item *last = &it->v[it->n - 1];
		if (asprintf(&last->summary,
			     "## [%s] %s -> %s\n(output left out to fit the window: %zu bytes; "
			     "it began: %.*s)\n\n",
			     agent, call, verdict, strlen(out),
			     (int)orch_utf8_cut(out, first > 120 ? 120 : first), out) < 0) {
			last->summary = NULL;
			return tk_errf(TK_ENOMEM, "agents: briefing: out of memory");
		}
	}
	return 0;
}

static int add_tests(struct orch *o, struct items *it)
{
	if (!o->last_tests)
		return 0;
	return add(it, IC_FIXED, NULL, "# Last test run\n$ %s\nstatus %s, exit code %lld, %s\n%s\n\n",
		   tk_json_get_str(o->last_tests, "command", ""),
		   tk_json_get_str(o->last_tests, "status", "?"),
		   (long long)tk_json_get_int(o->last_tests, "exit_code", -1),
		   tk_json_get_bool(o->last_tests, "passed", false) ? "passed" : "FAILED",
		   tk_json_get_str(o->last_tests, "output", ""));
}

static int add_issues(struct orch *o, struct items *it)
{
	if (!o->issues || !json_array_size(o->issues))
		return 0;
	struct tk_buf b = TK_BUF_INIT(1u << 20);
	int rc = 0;
	size_t i;
	json_t *s;
	json_array_foreach(o->issues, i, s)
		if (!rc)
			rc = tk_buf_printf(&b, "- %s\n", json_string_value(s) ? json_string_value(s) : "");
	if (!rc)
		rc = add(it, IC_FIXED, NULL, "# Review issues to address (last round)\n%s\n",
			 tk_buf_str(&b));
	tk_buf_free(&b);
	return rc ? tk_errf(TK_ENOMEM, "agents: briefing: issues") : 0;
}

static int add_diff(struct orch *o, struct items *it)
{
	struct tk_buf d = TK_BUF_INIT(ORCH_DIFF_MAX);
	int rc = orch_diff(o, &d, NULL);
	if (!rc)
		rc = add(it, IC_DIFF, "the diff", "# Changes so far (unified diff against the input)\n%s\n",
			 d.len ? tk_buf_str(&d) : "(no changes)\n");
	tk_buf_free(&d);
	return rc;
}

/* The assignment, with the verification round once the plan is done. */
static int add_assignment(struct orch *o, const struct orch_brief_req *q, struct items *it,
			  const char *deflt)
{
	char round[96] = "";
	if (o->step == (size_t)-1 && o->iterations > 0)
		snprintf(round, sizeof round, ", verification round %d of at most %d",
			 (int)o->iterations, (int)o->budget.max_iterations);
	return add(it, IC_FIXED, NULL, "# Your assignment (%s%s)\n%s\n\n", q->agent->name, round,
		   q->goal && q->goal[0] ? q->goal : deflt);
}

static int gather(struct orch *o, const struct orch_brief_req *q, struct items *it)
{
	int rc = add_task(o, it);
	switch (q->kind) {
	case ORCH_BRIEF_PLANNER:
		if (!rc)
			rc = add_team(o, it);
		if (!rc)
			rc = add_tree(o, it);
		if (!rc)
			rc = add_files(o, it);
		if (!rc)
			rc = add(it, IC_FIXED, NULL,
				 "# What to answer\nPropose k = %d candidate plan%s for this task. "
				 "Each plan is a title and 1 to 16 steps; each step names one agent "
				 "of the team and its goal. Build and tests run after the plan, "
				 "and failures go back to the team automatically.\n",
				 (int)o->set->plans, o->set->plans == 1 ? "" : "s");
		break;
	case ORCH_BRIEF_CRITIC: {
		struct tk_buf pb = TK_BUF_INIT(1u << 20);
		size_t i, j;
		json_t *p, *st;
		json_array_foreach(q->plans, i, p) {
			if (!rc)
				rc = tk_buf_printf(&pb, "Plan %zu: %s\n", i,
						   tk_json_get_str(p, "title", ""));
			json_array_foreach(json_object_get(p, "steps"), j, st)
				if (!rc)
					rc = tk_buf_printf(&pb, "  %zu. [%s] %s\n", j + 1,
							   tk_json_get_str(st, "agent", "?"),
							   tk_json_get_str(st, "goal", ""));
		}
		if (rc)
			rc = tk_errf(TK_ENOMEM, "agents: briefing: plans");
		if (!rc)
			rc = add(it, IC_FIXED, NULL,
				 "# Candidate plans\n%s\n# What to answer\n"
				 "You are now the critic. Judge the %zu candidate plans above "
				 "adversarially: which is most likely to produce correct, tested "
				 "code with the fewest steps? Answer with the number of the best "
				 "plan (Plan 0 is 0) and your reason.\n",
				 tk_buf_str(&pb), json_array_size(q->plans));
		tk_buf_free(&pb);
		break;
	}
	case ORCH_BRIEF_WORKER:
		if (!rc)
			rc = add_plan(o, it);
		if (!rc)
			rc = add_assignment(o, q, it, "");
		if (!rc && q->failure)
			rc = add(it, IC_FIXED, NULL, "# Failing test output (last round)\n%s\n\n",
				 q->failure);
		if (!rc)
			rc = add_issues(o, it);
		if (!rc)
			rc = add_tree(o, it);
		if (!rc)
			rc = add_files(o, it);
		if (!rc && json_array_size(o->recent))
			rc = add(it, IC_FIXED, NULL, "# Recent tool results (oldest first)\n");
		if (!rc)
			rc = add_recent(o, it);
		if (!rc)
			rc = add(it, IC_FIXED, NULL,
				 "Answer with one tool call as one JSON object; call finish when "
				 "the assignment is done.\n");
		break;
	case ORCH_BRIEF_REVIEWER:
		if (!rc)
			rc = add_plan(o, it);
		if (!rc)
			rc = add_assignment(o, q, it, "Review the changes.");
		if (!rc)
			rc = add_tests(o, it);
		if (!rc)
			rc = add_tree(o, it);
		if (!rc)
			rc = add_diff(o, it);
		if (!rc)
			rc = add(it, IC_FIXED, NULL,
				 "Look for real flaws: wrong behaviour, missed requirements, unsafe "
				 "or untested code. Answer \"approve\" only when none is left.\n");
		break;
	}
	return rc;
}

/* ---- fitting ------------------------------------------------------------- */

static const char *class_name(enum item_class c)
{
	return c == IC_TOOL ? "tool_output" : c == IC_FILE ? "file" : "diff";
}

int orch_brief_build(struct orch *o, const struct orch_brief_req *q, const char *system,
		     char **user)
{
	*user = NULL;
	struct items it = { 0 };
	json_t *dropped = NULL;
	struct tk_buf b = TK_BUF_INIT(BRIEF_MAX);
	int rc = gather(o, q, &it);
	if (rc)
		goto out;
	size_t fixed_bytes = strlen(system);
	size_t i;
	json_t *r;
	json_array_foreach(q->repairs, i, r)
		fixed_bytes += strlen(tk_json_get_str(r, "bad", "")) +
			       strlen(tk_json_get_str(r, "repair", ""));
	/* Room for the note that lists what was dropped (6 entries of at
	 * most ~120 bytes, a title and a count). */
	const size_t note_reserve = 1024;
	int64_t window = o->set->context_tokens;
	/* the reply, plus the chat template's few tokens around each message */
	int64_t reply = q->agent->max_tokens + ORCH_MSG_OVERHEAD_TOKENS *
						       (int64_t)(2 + 2 * json_array_size(q->repairs));
	size_t n_dropped = 0;
	for (i = 0; i < it.n; i++)
		n_dropped += it.v[i].dropped;
	int64_t need = orch_tokens_of(fixed_bytes + items_bytes(&it) +
				      (n_dropped ? note_reserve : 0)) + reply;
	for (int cls = IC_TOOL; cls <= IC_DIFF && need > window; cls++)
		for (i = 0; i < it.n && need > window; i++) {
			if (it.v[i].cls != (enum item_class)cls || it.v[i].dropped)
				continue;
			it.v[i].dropped = true;
			n_dropped++;
			need = orch_tokens_of(fixed_bytes + items_bytes(&it) + note_reserve) + reply;
		}
	if (need > window) {
		rc = orch_end(o, AGENT_FAILED,
			      "the briefing for %s needs %lld tokens with its reply (%lld) even "
			      "with every tool output, file and diff left out; the context window "
			      "is %lld (agents.context_tokens)",
			      q->agent->name, (long long)need, (long long)reply, (long long)window);
		goto out;
	}
	if (n_dropped && !(dropped = json_array())) {
		rc = tk_errf(TK_ENOMEM, "agents: briefing: out of memory");
		goto out;
	}
	for (i = 0; i < it.n && !rc; i++)
		if (!it.v[i].dropped)
			rc = tk_buf_puts(&b, it.v[i].text);
		else if (it.v[i].summary)
			rc = tk_buf_puts(&b, it.v[i].summary);
	if (!rc && n_dropped) {
		rc = tk_buf_puts(&b, "\n# Left out to fit the context window\n");
		size_t shown = 0;
		for (i = 0; i < it.n && !rc; i++) {
			if (!it.v[i].dropped)
				continue;
			size_t bytes = it.v[i].bytes;
			json_array_append_new(dropped,
					      json_pack("{s:s, s:s, s:I}", "kind",
							class_name(it.v[i].cls), "what",
							it.v[i].label, "bytes", (json_int_t)bytes));
			/* the note is short: the first few, then a count */
			if (shown++ < 6 && bytes)
				rc = tk_buf_printf(&b, "- %.*s (%zu bytes)\n",
						   (int)orch_utf8_cut(it.v[i].label, 100), it.v[i].label,
						   bytes);
			else if (shown <= 6)
				rc = tk_buf_printf(&b, "- %.*s (not read)\n",
						   (int)orch_utf8_cut(it.v[i].label, 100), it.v[i].label);
		}
		if (!rc && n_dropped > 6)
			rc = tk_buf_printf(&b, "- and %zu more\n", n_dropped - 6);
	}
	if (rc) {
		rc = rc == TK_ENOMEM ? rc : tk_errf(TK_ENOMEM, "agents: briefing over %u bytes", BRIEF_MAX);
		goto out;
	}
	if (n_dropped)
		orch_emit(o, "context",
			  json_pack("{s:s, s:i, s:I, s:I, s:O}", "agent", q->agent->name, "turn",
				    (int)q->turn, "context_tokens", (json_int_t)window,
				    "estimated_tokens",
				    (json_int_t)(orch_tokens_of(fixed_bytes + b.len) + reply),
				    "dropped", dropped));
	*user = tk_buf_detach(&b, NULL);
	if (!*user)
		rc = tk_errf(TK_ENOMEM, "agents: briefing: out of memory");
out:
	json_decref(dropped);
	tk_buf_free(&b);
	items_free(&it);
	return rc;
}
