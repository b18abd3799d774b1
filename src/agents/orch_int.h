/*
 * orch_int.h — private to the orchestrator (orchestrator.c, orch_ingress.c,
 * orch_turn.c, orch_brief.c, orch_budget.c): the state of one running task
 * and the helpers these files share. Nothing here is part of the public
 * API (agents.h is).
 *
 * One struct orch lives on the stack of agent_run_task and belongs to the
 * thread running it, except `stop` (an atomic the watcher thread raises)
 * and `why` (written by the watcher before it raises stop, read after).
 */
#ifndef TK_AGENTS_ORCH_INT_H
#define TK_AGENTS_ORCH_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agents/agents.h"
#include "agents/tools.h"
#include "core/buf.h"
#include "core/id.h"

struct tk_metric;

/* Ingress caps (the same values as the server's TaskRequest limits, so a
 * request the API accepted is never refused here). */
#define ORCH_DESC_MAX (64u << 10)
#define ORCH_CONTEXT_MAX (256u << 10)
#define ORCH_FILES_MAX 256u
#define ORCH_FILE_MAX AGENT_FILE_MAX
#define ORCH_FILES_TOTAL_MAX (4u << 20)
#define ORCH_PATH_MAX 1024u
#define ORCH_COMMAND_MAX 4096u
#define ORCH_LANG_MAX 32u

#define ORCH_RECENT_MAX 8          /* tool results kept in the world model */
#define ORCH_EVENT_OUTPUT_MAX 2048 /* bytes of output/content in an event */
#define ORCH_DIFF_MAX (4u << 20)   /* bytes of the result's diff */

/* Why the watcher raised stop. */
enum orch_why {
	ORCH_WHY_NONE = 0,
	ORCH_WHY_CANCEL,   /* env->cancel */
	ORCH_WHY_EMIT,     /* the event sink asked to stop */
	ORCH_WHY_DEADLINE, /* env->deadline */
	ORCH_WHY_WALL,     /* the task's wall-time budget */
};

/* Positive return of the loop's steps: the task ends now; outcome and
 * reason are in the struct orch. (Negative values stay TK_E* codes.) */
#define ORCH_STOP 1

struct orch {
	const struct agent_env *env;
	const struct agent_settings *set;
	struct agent_budget budget; /* effective: settings tightened by task */
	char task_id[TK_ID_LEN + 64];

	/* the sanitized request (owned) */
	char *description;
	char *context;      /* NULL when none */
	char *language;     /* NULL when unknown */
	char *test_command; /* the request's; NULL when none */
	char *tester_command; /* from the tester's finish; NULL when none */
	const struct agent_file *files; /* borrowed from the task */
	size_t n_files;
	json_t *input;      /* {path: content} of the input files */

	const struct tk_sandbox_profile *profile;
	struct agent_ws *ws;

	/* plan and world model */
	json_t *plan;         /* the chosen plan {title, steps} (owned) */
	size_t step;          /* index of the step being worked on */
	const char *step_goal; /* borrowed: the goal of the current work */
	json_t *recent;       /* [{agent, call, ok, output}] newest last */
	json_t *touched;      /* {path: true}: paths tools read or changed */
	json_t *last_tests;   /* {command, status, exit_code, passed, output} */
	json_t *issues;       /* review issues of the last "changes" verdict */
	char *summary;        /* the last worker's finish summary */
	uint64_t ws_version;  /* bumped by every tool that may change files */
	uint64_t approved_version; /* ws_version the last approval saw, +1 */
	json_t *turns;        /* {agent: calls made} (params.turn) */

	/* usage */
	int64_t prompt_tokens, completion_tokens;
	int64_t llm_ms, sandbox_ms, llm_calls, tool_calls;
	int64_t start_ns;
	int32_t iterations;
	bool warned_tokens, warned_wall, warned_sandbox, warned_iterations;

	/* stopping */
	atomic_bool stop;         /* passed as cancel to llm_chat and runs */
	_Atomic int why;          /* enum orch_why, set before stop */
	atomic_bool watcher_done;
	pthread_t watcher;
	bool watcher_started;
	enum agent_outcome outcome;
	char *reason;             /* owned */
	bool ended;               /* outcome/reason are final */

	/* metrics (families of env->metrics) */
	struct tk_metric *m_invocations, *m_iterations, *m_tools, *m_turn_seconds;
};

/* ---- orch_budget.c: budgets, stopping, events, metrics ------------------ */

/* Starts/stops the watcher thread that raises o->stop on env->cancel,
 * env->deadline or the wall budget. 0 or TK_EIO. */
int orch_watch_start(struct orch *o);
void orch_watch_stop(struct orch *o);

/* Ends the task with outcome and a reason (printf); the first call wins.
 * Returns ORCH_STOP. */
int orch_end(struct orch *o, enum agent_outcome outcome, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Checks cancel, deadline and every budget before a model call (what =
 * "model call") or a sandbox run; emits "budget" warnings at 80 %. 0 to go
 * on, or ORCH_STOP (the task has ended). */
int orch_budget_check(struct orch *o, const char *what);

/* Ends the task for a raised stop flag (cancel, emit, deadline, wall) and
 * returns ORCH_STOP; 0 when stop is not raised. */
int orch_check_stop(struct orch *o);

/* Wall ms since the task started. */
int64_t orch_elapsed_ms(const struct orch *o);

/* Emits an event: logs it (info, with task_id/agent/tool fields) and hands
 * it to env->emit. Takes ownership of data (NULL: out of memory, ignored).
 * A sink that asks to stop raises o->stop (why EMIT). */
void orch_emit(struct orch *o, const char *type, json_t *data);

/* Registers (once per registry; idempotent) and caches the metric
 * families. */
void orch_metrics_init(struct orch *o);
void orch_metric_invocation(struct orch *o, const char *agent, const char *outcome);
void orch_metric_tool(struct orch *o, const char *tool, bool ok);
void orch_metric_turn_seconds(struct orch *o, const char *agent, double seconds);
void orch_metric_iterations(struct orch *o);

/* A copy of s[0..len) cut at max bytes on a UTF-8 boundary, with
 * "\n...[N bytes cut]" appended when cut (malloc'd; NULL on ENOMEM). */
char *orch_clip(const char *s, size_t len, size_t max);

/* The length of s cut to at most max bytes on a UTF-8 boundary (s NULL:
 * 0). */
size_t orch_utf8_cut(const char *s, size_t max);

/* json_string of text that may be invalid UTF-8 (bad bytes become '?'). */
json_t *orch_json_text(const char *s, size_t len);

/* ---- orch_brief.c: briefing packets that fit the context window --------- */

/* What a briefing is for. */
enum orch_brief_kind {
	ORCH_BRIEF_PLANNER,
	ORCH_BRIEF_CRITIC,
	ORCH_BRIEF_WORKER,
	ORCH_BRIEF_REVIEWER,
};

struct orch_brief_req {
	enum orch_brief_kind kind;
	const struct agent_def *agent;
	const char *goal;          /* the assignment (workers, reviewers) */
	const char *failure;       /* failing test output for a fix step; NULL */
	const json_t *plans;       /* the candidate plans (critic) */
	const json_t *repairs;     /* [{bad, repair}] of this call chain */
	int32_t turn;              /* for the "context" event */
};

/* Builds the user message of a briefing for req into *user (malloc'd) such
 * that estimate(system) + estimate(user) + estimate(repairs) + max_tokens
 * fits settings->context_tokens, dropping the oldest tool outputs first,
 * then file contents, then the diff, saying so in the text and in a
 * "context" event. 0, ORCH_STOP (it cannot fit even bare: the task ends
 * FAILED), TK_ENOMEM. */
int orch_brief_build(struct orch *o, const struct orch_brief_req *req, const char *system,
		     char **user);

/* Tokens of n bytes of text, as the orchestrator estimates them: n/3
 * rounded up. */
int64_t orch_tokens_of(size_t n_bytes);

/* The unified diff of the workspace against the input so far (changed
 * files only) into out, plus the changed-files array when files is not
 * NULL (new reference). 0 or TK_E*. */
int orch_diff(struct orch *o, struct tk_buf *out, json_t **files);

/* ---- orch_ingress.c ------------------------------------------------------- */

/* Validates and sanitizes task into o (description, context, files, test
 * command, language, budget, profile). 0 or TK_EINVAL naming the field,
 * TK_ENOMEM. */
int orch_ingress(struct orch *o, const struct agent_task *t);

/* The "task" event (the whole request, input files included: replay uses
 * it) and "status" running. */
void orch_emit_task(struct orch *o);

/* ---- orch_turn.c: what one agent does ------------------------------------ */

/* Parses a reply for orch_ask; 0, TK_EFORMAT with *repair, TK_ENOMEM. */
typedef int (*orch_parse_fn)(struct orch *o, void *ctx, const char *text, size_t len,
			     char **repair);

#define ASK_GAVE_UP 2 /* max_repairs malformed replies in a row */

/* Asks q->agent (briefing q, system prompt) until parse accepts the reply,
 * sending the repair message after each malformed one, at most
 * settings->max_repairs times. 0, ASK_GAVE_UP (*why set, malloc'd),
 * ORCH_STOP or TK_ENOMEM. */
int orch_ask(struct orch *o, struct orch_brief_req *q, const char *system, const char *schema,
	     orch_parse_fn parse, void *ctx, char **why);

/* The system prompt of agent a: its role, the protocol of kind k, extra.
 * Malloc'd; NULL on TK_ENOMEM. */
char *orch_system_prompt(const struct agent_def *a, enum agent_kind k, const char *extra);

/* A worker's assignment: tool turns until finish, its turn limit, or
 * max_repairs malformed replies in a row (a "step" event says which).
 * failure: test output for a fix step, or NULL. 0, ORCH_STOP, TK_ENOMEM. */
int orch_worker_step(struct orch *o, const struct agent_def *a, const char *goal,
		     const char *failure);

/* A review of the workspace as it is now ("review" event). 0 with
 * *approve, ORCH_STOP (no verdict after the repairs ends the task: nothing
 * could ever be approved), TK_ENOMEM. */
int orch_review_step(struct orch *o, const struct agent_def *a, const char *goal, bool *approve);

/* Runs cmd in the sandbox ("test_run" event, o->last_tests). 0 with
 * *passed, ORCH_STOP, TK_ENOMEM. */
int orch_run_tests(struct orch *o, const char *cmd, bool *passed);

#endif
