/*
 * agents.h — the orchestrator's public API: the agent team (data from the
 * configuration), a task as the orchestrator sees it, the environment it runs
 * in, and the one entry point that runs a task to its end.
 *
 *   struct agent_settings s;  agent_settings_from_config(cfg, &s);
 *   struct agent_team team;   agent_team_from_config(cfg, &team);
 *   struct agent_env env = { .llm = b, .team = &team, .settings = &s,
 *                            .profiles = &profiles, .emit = my_emit, ... };
 *   struct agent_task t = { .description = "...", .files = f, .n_files = n };
 *   struct agent_result r;
 *   int rc = agent_run_task(&env, &t, &r);   // blocks until the task ends
 *   ... r.outcome, r.files, r.diff ...
 *   agent_result_free(&r);
 *
 * The pipeline (docs/agents.md): ingress (validate, sanitize, workspace from
 * the input files) -> foresight (k candidate plans, the critic picks one) ->
 * orchestrator (walks the plan; one typed tool call per model turn; every
 * call gets a briefing packet that fits the context window) -> verification
 * (build and tests in the sandbox, adversarial review, fix rounds) ->
 * aggregator (summary, changed files with a unified diff, test results,
 * usage). Budgets are checked before every model call and every sandbox run.
 *
 * Module layout: agents.h (this), protocol.h (what the model must answer and
 * how it is parsed, validated and repaired), tools.h (the workspace and the
 * tools that act on it, unified diffs), team.c, protocol.c, tools.c,
 * workspace.c, diff.c, orchestrator.c.
 *
 * Threads: agent_run_task may run on many threads at once with the same env
 * (the backend, team, settings and profiles are shared read-only); each call
 * owns its own workspace. emit is called on the calling thread only.
 */
#ifndef TK_AGENTS_AGENTS_H
#define TK_AGENTS_AGENTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "llm/llm.h"
#include "sandbox/sandbox.h"

struct tk_config;

/* ---- the team ---------------------------------------------------------- */

/* What an agent answers, which decides the protocol of its turns
 * (protocol.h). */
enum agent_kind {
	AGENT_KIND_PLANNER,  /* {"plans": [...]} and, as critic, {"choice": ...} */
	AGENT_KIND_WORKER,   /* tool turns: {"thought", "tool", "args"} */
	AGENT_KIND_REVIEWER, /* {"verdict": "approve"|"changes", "issues": [...]} */
};

/* Tools a worker may call (bit i of agent_def.tools = 1u << i). */
enum agent_tool {
	AGENT_TOOL_LIST_FILES,
	AGENT_TOOL_READ_FILE,
	AGENT_TOOL_WRITE_FILE,
	AGENT_TOOL_EDIT_FILE,
	AGENT_TOOL_RUN,
	AGENT_TOOL_FINISH,
	AGENT_TOOL_COUNT_
};
#define AGENT_TOOLS_ALL ((1u << AGENT_TOOL_COUNT_) - 1u)

#define AGENT_NAME_MAX 64 /* bytes of an agent name, NUL included */
#define AGENT_TEAM_MAX 32

/* One agent. Every string is owned by its team. */
struct agent_def {
	char *name;          /* [a-z0-9_-]{1,63}: "coder" */
	enum agent_kind kind;
	char *role_prompt;   /* the system prompt's role part */
	char *model;         /* NULL: the backend's configured model */
	char *adapter;       /* NULL: none; the embedded backend loads it, remote
			      * backends send it as the request's model */
	struct llm_sampling sampling;
	int32_t max_tokens;  /* per reply; > 0 */
	unsigned tools;      /* WORKER: bit mask of enum agent_tool */
	int32_t max_turns;   /* tool turns per assignment; > 0 */
};

struct agent_team {
	struct agent_def agents[AGENT_TEAM_MAX];
	size_t n;
};

/* The default team: planner-critic, coder, tester, code-reviewer, debugger,
 * documenter. 0 or TK_ENOMEM. */
int agent_team_default(struct agent_team *t);

/* The team from the "agents.team" setting: the default team, with each
 * entry of the JSON array replacing the agent of the same name field by
 * field or adding a new one (docs/agents.md lists the fields). 0, or
 * TK_EINVAL naming the entry and field. */
int agent_team_from_config(const struct tk_config *c, struct agent_team *t);
int agent_team_load_json(struct agent_team *t, const json_t *team);

/* The agent called name, or NULL. */
const struct agent_def *agent_team_find(const struct agent_team *t, const char *name);

void agent_team_free(struct agent_team *t); /* frees the strings; NULL ok */

/* "list_files", ... ; agent_tool_from_name returns -1 when unknown. */
const char *agent_tool_name(enum agent_tool t);
int agent_tool_from_name(const char *name);

/* ---- settings and budgets ---------------------------------------------- */

/* Per-task budgets. In a task, 0 means "the settings' default"; a request
 * can only tighten them. */
struct agent_budget {
	int32_t max_iterations; /* verification rounds (build+test+review) */
	int64_t max_tokens;     /* LLM tokens, prompt + completion */
	int64_t wall_ms;        /* whole task */
	int64_t sandbox_ms;     /* wall time of all sandbox runs together */
};

struct agent_settings {
	struct agent_budget budget;   /* defaults: 6, 200000, 1800000, 600000 */
	int32_t plans;                /* k candidate plans, >= 1 (default 2) */
	int32_t context_tokens;       /* the model's window the briefing must
				       * fit in (default 8192) */
	int32_t max_repairs;          /* malformed replies in a row before the
				       * turn ends (default 2) */
	int32_t tool_output_bytes;    /* tool output kept per result in a
				       * briefing (default 4096) */
	const char *profile;          /* sandbox profile; NULL/"": by language,
				       * else sandbox.default_profile */
	const char *default_profile;  /* sandbox.default_profile */
	const char *work_dir;         /* parent of task workspaces (default
				       * $TMPDIR or /tmp) */
	bool keep_workspace;          /* debugging: do not remove it */
	uint64_t seed;                /* sampling seed base (0: none) */
};

/* Defaults above. Strings point to static storage or into c. */
void agent_settings_default(struct agent_settings *s);
void agent_settings_from_config(const struct tk_config *c, struct agent_settings *s);

/* ---- a task ------------------------------------------------------------ */

struct agent_file {
	const char *path;    /* relative, no "..", validated at ingress */
	const char *content; /* size bytes (not necessarily NUL-terminated) */
	size_t size;
};

struct agent_task {
	const char *id;           /* for logs/events; NULL: one is made */
	const char *description;  /* required, non-empty UTF-8 */
	const char *context;      /* NULL ok */
	const char *language;     /* "c", "python", ... ; NULL: guessed from
				   * the files and the test command */
	const char *test_command; /* shell command run in the sandbox (via
				   * sh -c); NULL: the tester's tests */
	const struct agent_file *files; /* input files, borrowed */
	size_t n_files;
	struct agent_budget budget; /* 0 fields: settings' defaults */
};

/* ---- the environment ----------------------------------------------------- */

/* Event sink: type is one of the event types of docs/agents.md ("plan",
 * "agent_turn", "tool_call", "tool_result", "test_run", "review", "budget",
 * "context", "status", ...); data is borrowed for the call. Returns 0, or
 * non-zero to ask the task to stop (treated like cancel). */
typedef int (*agent_emit_fn)(void *ud, const char *type, const json_t *data);

struct agent_env {
	struct llm_backend *llm;                     /* required */
	const struct agent_team *team;               /* required */
	const struct agent_settings *settings;       /* required */
	const struct tk_sandbox_profiles *profiles;  /* required */
	const struct tk_sandbox_options *sandbox_opts; /* NULL: defaults */
	agent_emit_fn emit;                          /* NULL: no events */
	void *emit_ud;
	/* Polled before every model call and sandbox run and while they run
	 * (passed on as their cancel flag). *cancel true stops the task with
	 * outcome CANCELLED; *deadline true (the caller's own deadline, e.g.
	 * the server's per-task limit) stops it with TIMED_OUT. */
	const atomic_bool *cancel;                   /* NULL: never */
	const atomic_bool *deadline;                 /* NULL: never */
	struct tk_registry *metrics;                 /* NULL: default registry */
};

/* ---- the result ---------------------------------------------------------- */

enum agent_outcome {
	AGENT_COMPLETED, /* tests pass and the reviewer approved */
	AGENT_FAILED,    /* gave up (iterations spent, an agent failed, ...) */
	AGENT_TIMED_OUT, /* a budget ran out (reason says which) */
	AGENT_CANCELLED, /* env->cancel or emit asked to stop */
};

const char *agent_outcome_name(enum agent_outcome o); /* "completed", ... */

struct agent_result {
	enum agent_outcome outcome;
	char *summary;      /* owned: what was done (the finish summary, or
			     * the aggregator's account) */
	char *reason;       /* owned: why it ended when not completed; NULL */
	json_t *files;      /* owned: [{path, content, status: "added" |
			     * "modified" | "deleted"}] changed files only */
	char *diff;         /* owned: unified diff against the input files */
	json_t *tests;      /* owned: {command, status, exit_code, passed,
			     * output} of the last test run, or JSON null */
	json_t *usage;      /* owned: {prompt_tokens, completion_tokens,
			     * llm_ms, sandbox_ms, wall_ms, llm_calls,
			     * tool_calls} */
	int32_t iterations; /* verification rounds done */
};

/* The result as the API's JSON object {"result", "status", "reason",
 * "files", "diff", "tests", "usage", "iterations"} (new reference). */
json_t *agent_result_to_json(const struct agent_result *r);

void agent_result_free(struct agent_result *r); /* NULL ok */

/* Runs the task to its end. Returns 0 whenever a result was produced (any
 * outcome, partial results included), or a negative TK_E* for a request
 * that fails ingress (TK_EINVAL naming the field) or a host problem before
 * any work (TK_EIO, TK_ENOMEM); then *out is zeroed. */
int agent_run_task(const struct agent_env *env, const struct agent_task *task,
		   struct agent_result *out);

#endif
