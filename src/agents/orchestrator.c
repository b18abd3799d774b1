/*
 * orchestrator.c — agent_run_task: one task from request to result.
 *
 *   ingress      validate and sanitize the request, guess the language,
 *                pick the sandbox profile, make the workspace, emit "task"
 *   foresight    the planner proposes k plans, the critic (same agent)
 *                picks one; a planner that cannot answer gets a default
 *                plan; emit "plan"
 *   plan walk    each step: a worker's tool-turn loop or a review
 *   verification test command in the sandbox -> debugger on failure ->
 *                reviewer on success -> coder on "changes" -> again, until
 *                tests pass and the reviewer approves, or iterations or a
 *                budget run out
 *   aggregator   summary, changed files, diff, last test run, usage
 *
 * Owns: the struct orch of a task (orch_int.h) and its life. Ingress,
 * settings and the result functions of agents.h live in orch_ingress.c;
 * model calls, worker and reviewer steps and test runs in orch_turn.c;
 * briefing packets and the diff in orch_brief.c; budgets, stopping, events
 * and metrics in orch_budget.c.
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

/* ---- foresight ----------------------------------------------------------- */

static const struct agent_def *first_of(const struct agent_team *t, enum agent_kind k)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->agents[i].kind == k)
			return &t->agents[i];
	return NULL;
}

/* The agent called name when it is of kind k, else the first of kind k. */
static const struct agent_def *named_or_first(const struct agent_team *t, const char *name,
					      enum agent_kind k)
{
	const struct agent_def *a = agent_team_find(t, name);
	return a && a->kind == k ? a : first_of(t, k);
}

/* coder, then tester when there is no test command, then code-reviewer. */
static json_t *default_plan(struct orch *o)
{
	const struct agent_team *t = o->env->team;
	json_t *steps = json_array();
	const struct agent_def *c = named_or_first(t, "coder", AGENT_KIND_WORKER);
	const struct agent_def *te = agent_team_find(t, "tester");
	const struct agent_def *r = named_or_first(t, "code-reviewer", AGENT_KIND_REVIEWER);
	if (c)
		json_array_append_new(steps, json_pack("{s:s, s:s}", "agent", c->name, "goal",
						       "Implement what the task asks for."));
	if (!o->test_command && te && te->kind == AGENT_KIND_WORKER)
		json_array_append_new(steps,
				      json_pack("{s:s, s:s}", "agent", te->name, "goal",
						"Write tests for what the task asks for, run them, "
						"and name the command that runs them in your finish "
						"(test_command)."));
	if (r)
		json_array_append_new(steps, json_pack("{s:s, s:s}", "agent", r->name, "goal",
						       "Review the change against the task."));
	return json_pack("{s:s, s:o}", "title", "default plan", "steps", steps);
}

struct plans_ctx {
	json_t *plans;
};

static int parse_plans(struct orch *o, void *ctx, const char *text, size_t len, char **repair)
{
	struct plans_ctx *c = ctx;
	return agent_parse_plans(text, len, o->env->team, o->set->plans, &c->plans, repair);
}

struct choice_ctx {
	int32_t n, choice;
	char *reason;
};

static int parse_choice(struct orch *o, void *ctx, const char *text, size_t len, char **repair)
{
	(void)o;
	struct choice_ctx *c = ctx;
	return agent_parse_choice(text, len, c->n, &c->choice, &c->reason, repair);
}

static int foresight(struct orch *o)
{
	const struct agent_def *pl = first_of(o->env->team, AGENT_KIND_PLANNER);
	struct plans_ctx pc = { 0 };
	struct choice_ctx cc = { 0 };
	char *why = NULL, *note = NULL, *sys = NULL;
	int rc = 0;
	bool fallback = false;
	if (!pl) {
		fallback = true;
		note = strdup("the team has no planner: the default plan is used");
	} else {
		if (!(sys = orch_system_prompt(pl, AGENT_KIND_PLANNER, NULL)))
			return TK_ENOMEM;
		struct orch_brief_req q = { .kind = ORCH_BRIEF_PLANNER, .agent = pl };
		rc = orch_ask(o, &q, sys, agent_schema_plans(), parse_plans, &pc, &why);
		if (rc == ASK_GAVE_UP) {
			fallback = true;
			if (asprintf(&note, "the planner failed (%s): the default plan is used", why) < 0)
				note = NULL;
			rc = 0;
		} else if (rc) {
			goto out;
		}
	}
	if (fallback) {
		json_decref(pc.plans);
		pc.plans = json_pack("[o]", default_plan(o));
		if (!pc.plans) {
			rc = tk_errf(TK_ENOMEM, "agents: out of memory");
			goto out;
		}
	}
	size_t n = json_array_size(pc.plans);
	if (n > 1) {
		free(sys);
		sys = orch_system_prompt(pl, AGENT_KIND_PLANNER,
				    "Now you act as the critic: answer with your choice, not with "
				    "plans.");
		if (!sys) {
			rc = TK_ENOMEM;
			goto out;
		}
		cc.n = (int32_t)n;
		struct orch_brief_req q = { .kind = ORCH_BRIEF_CRITIC, .agent = pl, .plans = pc.plans };
		free(why);
		why = NULL;
		rc = orch_ask(o, &q, sys, agent_schema_choice(), parse_choice, &cc, &why);
		if (rc == ASK_GAVE_UP) {
			cc.choice = 0;
			free(cc.reason);
			if (asprintf(&cc.reason, "the critic gave no valid choice (%s): plan 0 is taken",
				     why) < 0)
				cc.reason = NULL;
			rc = 0;
		} else if (rc) {
			goto out;
		}
	} else {
		cc.reason = strdup(fallback ? "the default plan" : "only one plan was asked for");
	}
	o->plan = json_incref(json_array_get(pc.plans, (size_t)cc.choice));
	orch_emit(o, "plan",
		  json_pack("{s:O, s:i, s:s?, s:b, s:s?}", "plans", pc.plans, "choice",
			    (int)cc.choice, "reason", cc.reason, "default", fallback, "note", note));
	if (!o->plan)
		rc = tk_errf(TK_ENOMEM, "agents: out of memory");
out:
	free(sys);
	free(why);
	free(note);
	free(cc.reason);
	json_decref(pc.plans);
	return rc;
}

static int walk_plan(struct orch *o)
{
	json_t *steps = json_object_get(o->plan, "steps");
	int rc = 0;
	for (o->step = 0; o->step < json_array_size(steps) && !rc; o->step++) {
		json_t *s = json_array_get(steps, o->step);
		const struct agent_def *a = agent_team_find(o->env->team,
							    tk_json_get_str(s, "agent", ""));
		const char *goal = tk_json_get_str(s, "goal", "");
		if (!a)
			continue; /* the parser checked the names; defensive */
		if ((rc = orch_check_stop(o)))
			break;
		if (a->kind == AGENT_KIND_REVIEWER) {
			bool approve;
			rc = orch_review_step(o, a, goal, &approve);
		} else if (a->kind == AGENT_KIND_WORKER) {
			rc = orch_worker_step(o, a, goal, NULL);
		}
	}
	o->step = (size_t)-1; /* verification: no plan step is current */
	return rc;
}

/* ---- verification -------------------------------------------------------- */
static int verify(struct orch *o)
{
	const struct agent_team *t = o->env->team;
	const struct agent_def *reviewer = first_of(t, AGENT_KIND_REVIEWER);
	const struct agent_def *coder = named_or_first(t, "coder", AGENT_KIND_WORKER);
	const struct agent_def *debugger = agent_team_find(t, "debugger");
	if (!debugger || debugger->kind != AGENT_KIND_WORKER)
		debugger = coder;
	const char *missing = "nothing was verified";
	for (;;) {
		int rc = orch_check_stop(o);
		if (rc)
			return rc;
		if (o->iterations >= o->budget.max_iterations)
			return orch_end(o, AGENT_FAILED, "max_iterations (%d) reached: %s",
					(int)o->budget.max_iterations, missing);
		o->iterations++;
		if (!o->warned_iterations && o->iterations * 5 >= o->budget.max_iterations * 4) {
			o->warned_iterations = true;
			orch_emit(o, "budget",
				  json_pack("{s:s, s:s, s:i, s:i}", "level", "warning", "budget",
					    "iterations", "used", (int)o->iterations, "limit",
					    (int)o->budget.max_iterations));
		}
		const char *cmd = o->test_command ? o->test_command : o->tester_command;
		if (cmd) {
			bool passed;
			if ((rc = orch_run_tests(o, cmd, &passed)))
				return rc;
			if (!passed) {
				missing = "the tests still fail";
				if (!debugger)
					continue;
				if ((rc = orch_worker_step(o, debugger,
						      "The build or the tests fail (output below). "
						      "Find the cause and fix it so that the test "
						      "command passes.",
						      tk_json_get_str(o->last_tests, "output", ""))))
					return rc;
				continue;
			}
		}
		if (!reviewer && cmd)
			return orch_end(o, AGENT_COMPLETED, NULL); /* the tests decide */
		if (!reviewer)
			return orch_end(o, AGENT_FAILED,
					"no test command and no reviewer in the team: nothing "
					"verified the work");
		bool approve = o->approved_version == o->ws_version + 1;
		if (!approve) {
			rc = orch_review_step(o, reviewer,
					 cmd ? "The tests pass. Review the change against the task."
					     : "No test command exists. Review the change against "
					       "the task.",
					 &approve);
			if (rc)
				return rc;
		}
		if (approve)
			return orch_end(o, AGENT_COMPLETED, NULL);
		missing = "the reviewer still asks for changes";
		if (coder && (rc = orch_worker_step(o, coder,
					       "The reviewer asks for changes: fix every review "
					       "issue listed below, keeping the tests passing.",
					       NULL)))
			return rc;
	}
}

/* ---- aggregator ---------------------------------------------------------- */

static int aggregate(struct orch *o, struct agent_result *out)
{
	struct tk_buf diff = TK_BUF_INIT(ORCH_DIFF_MAX);
	json_t *files = NULL;
	int rc = orch_diff(o, &diff, &files);
	if (rc == TK_ENOMEM)
		goto fail;
	if (rc) {
		/* the workspace could not be read back: say so, keep going */
		char *r = NULL;
		if (asprintf(&r, "%s%sthe workspace could not be read back: %s",
			     o->reason ? o->reason : "", o->reason ? "; " : "", tk_err_detail()) >= 0) {
			free(o->reason);
			o->reason = r;
		}
		if (!(files = json_array()))
			goto fail;
	}
	const char *cmd = o->test_command ? o->test_command : o->tester_command;
	struct tk_buf s = TK_BUF_INIT(1u << 20);
	rc = tk_buf_puts(&s, o->summary && o->summary[0] ? o->summary
							  : "No agent finished its assignment.");
	if (!rc && o->outcome == AGENT_COMPLETED)
		rc = tk_buf_printf(&s, "\n\nCompleted after %d verification round%s: %s; the "
				       "reviewer approved. %zu file%s changed.",
				   (int)o->iterations, o->iterations == 1 ? "" : "s",
				   cmd ? "the tests pass" : "tests were not run (no test command)",
				   json_array_size(files), json_array_size(files) == 1 ? "" : "s");
	else if (!rc)
		rc = tk_buf_printf(&s, "\n\nEnded %s after %d verification round%s: %s. %zu file%s "
				       "changed so far.",
				   agent_outcome_name(o->outcome), (int)o->iterations,
				   o->iterations == 1 ? "" : "s", o->reason ? o->reason : "",
				   json_array_size(files), json_array_size(files) == 1 ? "" : "s");
	out->outcome = o->outcome;
	out->summary = tk_buf_detach(&s, NULL);
	tk_buf_free(&s);
	out->reason = o->reason ? strdup(o->reason) : NULL;
	out->files = files;
	files = NULL;
	out->diff = tk_buf_detach(&diff, NULL);
	out->tests = o->last_tests ? json_incref(o->last_tests) : json_null();
	out->usage = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "prompt_tokens",
			       (json_int_t)o->prompt_tokens, "completion_tokens",
			       (json_int_t)o->completion_tokens, "llm_ms", (json_int_t)o->llm_ms,
			       "sandbox_ms", (json_int_t)o->sandbox_ms, "wall_ms",
			       (json_int_t)orch_elapsed_ms(o), "llm_calls", (json_int_t)o->llm_calls,
			       "tool_calls", (json_int_t)o->tool_calls);
	out->iterations = o->iterations;
	if (rc || !out->summary || !out->diff || !out->usage || (o->reason && !out->reason))
		goto fail;
	return 0;
fail:
	json_decref(files);
	tk_buf_free(&diff);
	agent_result_free(out);
	return tk_errf(TK_ENOMEM, "agents: result: out of memory");
}

/* ---- the task ------------------------------------------------------------ */

static void orch_free(struct orch *o)
{
	orch_watch_stop(o);
	free(o->description);
	free(o->context);
	free(o->language);
	free(o->test_command);
	free(o->tester_command);
	free(o->summary);
	free(o->reason);
	json_decref(o->input);
	json_decref(o->plan);
	json_decref(o->recent);
	json_decref(o->touched);
	json_decref(o->last_tests);
	json_decref(o->issues);
	json_decref(o->turns);
	if (o->ws && o->set->keep_workspace)
		tk_logf(TK_LOG_INFO, "agents", TK_FIELDS(TK_LF_S("workspace", agent_ws_path(o->ws))),
			"workspace kept (agents.keep_workspace)");
	if (o->ws)
		agent_ws_free(o->ws, o->set->keep_workspace);
}

int agent_run_task(const struct agent_env *env, const struct agent_task *task,
		   struct agent_result *out)
{
	if (!out)
		return tk_errf(TK_EINVAL, "agents: result: NULL");
	memset(out, 0, sizeof *out);
	if (!env || !task || !env->llm || !env->team || !env->settings || !env->profiles)
		return tk_errf(TK_EINVAL, "agents: env: llm, team, settings and profiles are required");
	struct orch o = { .env = env, .set = env->settings, .start_ns = tk_time_mono_ns() };
	atomic_init(&o.stop, false);
	atomic_init(&o.why, ORCH_WHY_NONE);
	atomic_init(&o.watcher_done, false);
	int rc;
	if (task->id && task->id[0]) {
		if (strlen(task->id) >= sizeof o.task_id)
			return tk_errf(TK_EINVAL, "id: longer than %zu bytes", sizeof o.task_id - 1);
		snprintf(o.task_id, sizeof o.task_id, "%s", task->id);
	} else if ((rc = tk_id_new(o.task_id))) {
		return rc;
	}
	if (env->settings->plans < 1 || env->settings->context_tokens < 1 ||
	    env->settings->max_repairs < 0 || env->settings->tool_output_bytes < 1) {
		return tk_errf(TK_EINVAL, "agents: settings: plans, context_tokens and "
					  "tool_output_bytes must be >= 1, max_repairs >= 0");
	}
	o.recent = json_array();
	o.touched = json_object();
	o.turns = json_object();
	if (!o.recent || !o.touched || !o.turns) {
		rc = tk_errf(TK_ENOMEM, "agents: out of memory");
		goto fail;
	}
	if ((rc = orch_ingress(&o, task)))
		goto fail;
	if ((rc = agent_ws_create(o.set->work_dir, task->files, task->n_files, &o.ws)))
		goto fail;
	if ((rc = orch_watch_start(&o)))
		goto fail;
	orch_metrics_init(&o);
	tk_log_ctx_set("task_id", o.task_id);
	orch_emit_task(&o);

	rc = foresight(&o);
	if (!rc)
		rc = walk_plan(&o);
	if (!rc)
		rc = verify(&o);
	if (rc < 0)
		orch_end(&o, AGENT_FAILED, "%s", tk_err_detail());
	else if (!o.ended)
		orch_end(&o, AGENT_FAILED, "the loop ended without an outcome");
	orch_watch_stop(&o);
	orch_metric_iterations(&o);

	rc = aggregate(&o, out);
	if (!rc)
		orch_emit(&o, "status",
			  json_pack("{s:s, s:s?, s:s?, s:i, s:O, s:b}", "status",
				    agent_outcome_name(out->outcome), "reason", out->reason,
				    "summary", out->summary, "iterations", (int)out->iterations,
				    "usage", out->usage, "tests_run", !json_is_null(out->tests)));
	/* task_id stays set: a server worker has set the same id around the
	 * call and clears it itself when its thread moves on */
	tk_log_ctx_set("agent", NULL);
	tk_log_ctx_set("tool", NULL);
	orch_free(&o);
	return rc;
fail:
	orch_free(&o);
	memset(out, 0, sizeof *out);
	return rc;
}

