/*
 * orch_turn.c — what one agent does: a model call (budget check, the call,
 * usage, the "agent_turn" event replay depends on), asking until the reply
 * parses (repair messages), a worker's tool-turn loop with its tool calls
 * and their events, a review, and a test run in the sandbox.
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

/* ---- one model call ------------------------------------------------------- */

/* The call index of agent a within this task, counted (params.turn). */
static int32_t next_turn(struct orch *o, const char *agent, bool take)
{
	json_int_t t = json_integer_value(json_object_get(o->turns, agent));
	if (take)
		json_object_set_new(o->turns, agent, json_integer(t + 1));
	return (int32_t)t;
}

/* FNV-1a of the agent name, to give each agent its own seed stream. */
static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* One model call: budget check, the call, usage, the "agent_turn" event.
 * msgs[0..n). 0 with *res filled, ORCH_STOP, or TK_ENOMEM. */
static int call_model(struct orch *o, const struct agent_def *a, const char *schema,
		      const struct llm_message *msgs, size_t n, struct llm_result *res)
{
	memset(res, 0, sizeof *res);
	int rc = orch_budget_check(o, "model call");
	if (rc)
		return rc;
	struct llm_params p;
	llm_params_default(&p);
	p.model = a->model;
	p.adapter = a->adapter;
	p.agent = a->name;
	p.turn = next_turn(o, a->name, true);
	p.sampling = a->sampling;
	p.max_tokens = a->max_tokens;
	p.json_schema = schema;
	if (o->set->seed) {
		p.has_seed = true;
		p.seed = o->set->seed + name_hash(a->name) + (uint64_t)p.turn;
	}
	size_t prompt_bytes = 0;
	for (size_t i = 0; i < n; i++)
		prompt_bytes += msgs[i].content ? strlen(msgs[i].content) : 0;
	if (tk_log_enabled(TK_LOG_DEBUG))
		for (size_t i = 0; i < n; i++)
			tk_logf(TK_LOG_DEBUG, "agents",
				TK_FIELDS(TK_LF_S("agent", a->name), TK_LF_I("turn", p.turn),
					  TK_LF_S("role", msgs[i].role),
					  TK_LF_S("content", msgs[i].content)),
				"briefing");
	int64_t t0 = tk_time_mono_ns();
	rc = llm_chat(o->env->llm, msgs, n, &p, NULL, NULL, &o->stop, res);
	int64_t ms = (tk_time_mono_ns() - t0) / 1000000;
	o->llm_ms += ms;
	o->llm_calls++;
	orch_metric_turn_seconds(o, a->name, (double)ms / 1000.0);
	if (rc) {
		/* copied: the sink and the logger may set details of their own */
		char detail[TK_ERR_DETAIL_MAX + 1];
		snprintf(detail, sizeof detail, "%s", tk_err_detail());
		bool stopped = atomic_load(&o->stop);
		orch_metric_invocation(o, a->name, stopped ? "cancelled" : "error");
		/* an agent_turn with "error" and no text: replay fails the
		 * same call the same way */
		orch_emit(o, "agent_turn",
			  json_pack("{s:s, s:s?, s:i, s:I, s:{s:s, s:s}}", "agent", a->name,
				    "adapter", a->adapter, "turn", (int)p.turn, "duration_ms",
				    (json_int_t)ms, "error", "code", tk_err_name(rc), "message",
				    detail));
		if (stopped || rc == TK_ECANCELED)
			return orch_check_stop(o) ? ORCH_STOP
						  : orch_end(o, AGENT_CANCELLED, "model call cancelled");
		if (rc == TK_ENOMEM)
			return rc;
		return orch_end(o, AGENT_FAILED, "agent %s: model call failed: %s", a->name, detail);
	}
	int64_t pt = res->usage.prompt_tokens >= 0 ? res->usage.prompt_tokens
						    : orch_tokens_of(prompt_bytes);
	int64_t ct = res->usage.completion_tokens >= 0 ? res->usage.completion_tokens
							: orch_tokens_of(res->text_len);
	o->prompt_tokens += pt;
	o->completion_tokens += ct;
	if (tk_log_enabled(TK_LOG_DEBUG))
		tk_logf(TK_LOG_DEBUG, "agents",
			TK_FIELDS(TK_LF_S("agent", a->name), TK_LF_I("turn", p.turn),
				  TK_LF_S("finish", llm_finish_name(res->finish)),
				  TK_LF_S("text", res->text)),
			"raw output");
	size_t shown = res->text_len > AGENT_REPLY_MAX ? AGENT_REPLY_MAX : res->text_len;
	/* the whole reply (up to AGENT_REPLY_MAX): replay rebuilds the
	 * scripted backend from these events */
	orch_emit(o, "agent_turn",
		  json_pack("{s:s, s:s?, s:i, s:I, s:I, s:I, s:o, s:b, s:s, s:s?}", "agent", a->name,
			    "adapter", a->adapter, "turn", (int)p.turn, "prompt_tokens",
			    (json_int_t)pt, "completion_tokens", (json_int_t)ct, "duration_ms",
			    (json_int_t)ms, "text", orch_json_text(res->text, shown),
			    "text_truncated", shown < res->text_len, "finish_reason",
			    llm_finish_name(res->finish), "model", res->model));
	return 0;
}

/* Asks agent a (briefing q, system prompt) until parse accepts the reply,
 * sending the repair message after each malformed one, at most max_repairs
 * times. 0, ASK_GAVE_UP (*why set, malloc'd), ORCH_STOP or TK_ENOMEM. */
int orch_ask(struct orch *o, struct orch_brief_req *q, const char *system, const char *schema,
	     orch_parse_fn parse, void *ctx, char **why)
{
	const struct agent_def *a = q->agent;
	json_t *repairs = json_array();
	struct llm_message *msgs = NULL;
	char *user = NULL;
	int rc = 0;
	*why = NULL;
	if (!repairs)
		return tk_errf(TK_ENOMEM, "agents: out of memory");
	tk_log_ctx_set("agent", a->name);
	for (;;) {
		q->repairs = repairs;
		q->turn = next_turn(o, a->name, false);
		free(user);
		user = NULL;
		if ((rc = orch_brief_build(o, q, system, &user)))
			break;
		size_t n = 2 + 2 * json_array_size(repairs);
		struct llm_message *m = realloc(msgs, n * sizeof *m);
		if (!m) {
			rc = tk_errf(TK_ENOMEM, "agents: out of memory");
			break;
		}
		msgs = m;
		msgs[0] = (struct llm_message){ "system", system };
		msgs[1] = (struct llm_message){ "user", user };
		size_t i;
		json_t *r;
		json_array_foreach(repairs, i, r) {
			msgs[2 + 2 * i] = (struct llm_message){ "assistant",
								tk_json_get_str(r, "bad", "") };
			msgs[3 + 2 * i] = (struct llm_message){ "user",
								tk_json_get_str(r, "repair", "") };
		}
		struct llm_result res;
		if ((rc = call_model(o, a, schema, msgs, n, &res)))
			break;
		char *repair = NULL;
		rc = parse(o, ctx, res.text ? res.text : "", res.text_len, &repair);
		if (rc == 0) {
			orch_metric_invocation(o, a->name, "ok");
			llm_result_free(&res);
			break;
		}
		if (rc != TK_EFORMAT) {
			free(repair);
			llm_result_free(&res);
			break;
		}
		orch_metric_invocation(o, a->name, "malformed");
		if ((int32_t)json_array_size(repairs) >= o->set->max_repairs) {
			if (asprintf(why, "%s gave %zu malformed replies in a row; the last: %s",
				     a->name, json_array_size(repairs) + 1,
				     repair ? repair : "(no detail)") < 0)
				*why = NULL;
			free(repair);
			llm_result_free(&res);
			rc = *why ? ASK_GAVE_UP : tk_errf(TK_ENOMEM, "agents: out of memory");
			break;
		}
		/* A reply cut by max_tokens or the window is said to be cut:
		 * the model must answer shorter, not just "validly". */
		char *cut = NULL;
		if ((res.finish == LLM_FINISH_LENGTH || res.finish == LLM_FINISH_CONTEXT) &&
		    asprintf(&cut, "Your reply was cut off after %d tokens (%s): give a shorter "
				   "answer. %s",
			     (int)a->max_tokens,
			     res.finish == LLM_FINISH_LENGTH ? "max_tokens" : "the context window",
			     repair ? repair : "") < 0)
			cut = NULL;
		json_t *pair = json_pack("{s:o, s:s}", "bad", orch_json_text(res.text, res.text_len),
					 "repair",
					 cut ? cut : repair ? repair : "Answer with one valid JSON object.");
		free(cut);
		free(repair);
		llm_result_free(&res);
		if (!pair || json_array_append_new(repairs, pair)) {
			rc = tk_errf(TK_ENOMEM, "agents: out of memory");
			break;
		}
	}
	tk_log_ctx_set("agent", NULL);
	q->repairs = NULL;
	free(user);
	free(msgs);
	json_decref(repairs);
	return rc;
}

/* The system prompt of agent a: its role, then the protocol. Malloc'd. */
char *orch_system_prompt(const struct agent_def *a, enum agent_kind k, const char *extra)
{
	char *proto = agent_protocol_prompt(k, a->tools);
	char *s = NULL;
	if (proto && asprintf(&s, "%s\n\n%s%s%s", a->role_prompt ? a->role_prompt : "", proto,
			      extra ? "\n\n" : "", extra ? extra : "") < 0)
		s = NULL;
	free(proto);
	if (!s)
		tk_errf(TK_ENOMEM, "agents: system prompt: out of memory");
	return s;
}

/* ---- tools and steps ------------------------------------------------------ */

static void run_opts(struct orch *o, struct agent_run_opts *ro)
{
	*ro = (struct agent_run_opts){
		.profile = o->profile,
		.sandbox_opts = o->env->sandbox_opts,
		.cancel = &o->stop,
		.output_bytes = (size_t)o->set->tool_output_bytes,
	};
	/* A run may use what is left of the sandbox and wall budgets, no
	 * more: the budgets hold even while a command runs. */
	int64_t left = o->budget.sandbox_ms - o->sandbox_ms;
	int64_t wall_left = o->budget.wall_ms - orch_elapsed_ms(o);
	if (wall_left < left)
		left = wall_left;
	if (left < 1)
		left = 1;
	if ((uint64_t)left < o->profile->limits.wall_ms)
		ro->limits.wall_ms = (uint64_t)left;
}

/* Adds a result to the world model's recent list (oldest dropped). */
static void remember(struct orch *o, const char *agent, const char *call, bool ok,
		     const char *output)
{
	char *clip = orch_clip(output, output ? strlen(output) : 0, (size_t)o->set->tool_output_bytes);
	json_t *r = json_pack("{s:s, s:s, s:b, s:o}", "agent", agent, "call", call, "ok", ok,
			      "output", orch_json_text(clip, clip ? strlen(clip) : 0));
	free(clip);
	if (r && !json_array_append_new(o->recent, r))
		while (json_array_size(o->recent) > ORCH_RECENT_MAX)
			json_array_remove(o->recent, 0);
}

/* args for the tool_call event: long strings (content, replace) cut. */
static json_t *args_for_event(const json_t *args)
{
	json_t *c = json_deep_copy(args);
	const char *k;
	json_t *v;
	json_object_foreach(c, k, v)
		if (json_is_string(v) && json_string_length(v) > ORCH_EVENT_OUTPUT_MAX) {
			char *s = orch_clip(json_string_value(v), json_string_length(v),
					    ORCH_EVENT_OUTPUT_MAX);
			json_object_set_new(c, k, orch_json_text(s, s ? strlen(s) : 0));
			free(s);
		}
	return c;
}

/* Runs one validated tool call of a worker. 0, ORCH_STOP, TK_ENOMEM. */
static int exec_tool(struct orch *o, const struct agent_def *a, const struct agent_turn *turn)
{
	const char *tool = agent_tool_name(turn->tool);
	const char *path = tk_json_get_str(turn->args, "path", NULL);
	const char *cmd = tk_json_get_str(turn->args, "command", NULL);
	int rc;
	if (turn->tool == AGENT_TOOL_RUN && (rc = orch_budget_check(o, "sandbox run")))
		return rc;
	orch_emit(o, "tool_call", json_pack("{s:s, s:s, s:o?}", "agent", a->name, "tool", tool,
					    "args", args_for_event(turn->args)));
	struct agent_run_opts ro;
	run_opts(o, &ro);
	struct agent_tool_result tr = { 0 };
	tk_log_ctx_set("agent", a->name);
	tk_log_ctx_set("tool", tool);
	rc = agent_tool_exec(o->ws, turn->tool, turn->args, &ro, &tr);
	tk_log_ctx_set("tool", NULL);
	tk_log_ctx_set("agent", NULL);
	if (rc) {
		agent_tool_result_clear(&tr);
		return rc == TK_ENOMEM ? rc
				       : orch_end(o, AGENT_FAILED, "tool %s failed: %s", tool,
						  tk_err_detail());
	}
	o->tool_calls++;
	o->sandbox_ms += (int64_t)tr.sandbox_ms;
	orch_metric_tool(o, tool, tr.ok);
	json_t *ev = tr.event ? json_deep_copy(tr.event) : json_object();
	if (ev) {
		json_object_set_new(ev, "agent", json_string(a->name));
		json_object_set_new(ev, "tool", json_string(tool));
		if (!json_object_get(ev, "ok"))
			json_object_set_new(ev, "ok", json_boolean(tr.ok));
	}
	orch_emit(o, "tool_result", ev);
	char call[300];
	if (turn->tool == AGENT_TOOL_RUN)
		snprintf(call, sizeof call, "run `%.*s`", (int)orch_utf8_cut(cmd, 200), cmd ? cmd : "");
	else
		snprintf(call, sizeof call, "%s %.*s", tool, (int)orch_utf8_cut(path, 250),
			 path ? path : "");
	remember(o, a->name, call, tr.ok, tr.output);
	if (path && turn->tool != AGENT_TOOL_LIST_FILES)
		json_object_set_new(o->touched, path, json_true());
	if (turn->tool == AGENT_TOOL_WRITE_FILE || turn->tool == AGENT_TOOL_EDIT_FILE ||
	    turn->tool == AGENT_TOOL_RUN)
		o->ws_version++;
	agent_tool_result_clear(&tr);
	return orch_check_stop(o);
}

struct turn_ctx {
	unsigned tools;
	struct agent_turn turn;
};

static int parse_turn(struct orch *o, void *ctx, const char *text, size_t len, char **repair)
{
	(void)o;
	struct turn_ctx *c = ctx;
	return agent_parse_turn(text, len, c->tools, &c->turn, repair);
}

/* A worker's assignment: tool turns until finish, the turn limit, or
 * max_repairs malformed replies in a row. 0 (the step ended, see the
 * "step" event), ORCH_STOP or TK_ENOMEM. */
int orch_worker_step(struct orch *o, const struct agent_def *a, const char *goal,
		       const char *failure)
{
	char *sys = orch_system_prompt(a, AGENT_KIND_WORKER, NULL);
	if (!sys)
		return TK_ENOMEM;
	const char *end = "turn_limit";
	char *why = NULL;
	int rc = 0;
	int32_t turns = 0;
	for (; turns < a->max_turns; turns++) {
		struct turn_ctx tc = { .tools = a->tools };
		struct orch_brief_req q = { .kind = ORCH_BRIEF_WORKER, .agent = a, .goal = goal,
					    .failure = failure };
		rc = orch_ask(o, &q, sys, agent_schema_turn(), parse_turn, &tc, &why);
		if (rc == ASK_GAVE_UP) {
			end = "malformed";
			remember(o, a->name, "reply", false, why);
			rc = 0;
			break;
		}
		if (rc)
			break;
		if (tc.turn.tool == AGENT_TOOL_FINISH) {
			const char *sum = tk_json_get_str(tc.turn.args, "summary", "");
			const char *tcmd = tk_json_get_str(tc.turn.args, "test_command", NULL);
			free(o->summary);
			o->summary = strdup(sum);
			if (tcmd && tcmd[0] && !o->test_command && strlen(tcmd) <= ORCH_COMMAND_MAX) {
				free(o->tester_command);
				o->tester_command = strdup(tcmd);
			}
			end = "finished";
			agent_turn_clear(&tc.turn);
			turns++;
			break;
		}
		rc = exec_tool(o, a, &tc.turn);
		agent_turn_clear(&tc.turn);
		if (rc)
			break;
	}
	if (rc == 0 || rc == ORCH_STOP) {
		char *reason = NULL;
		if (!strcmp(end, "turn_limit") && !rc &&
		    asprintf(&reason, "%s used its %d turns without finishing", a->name,
			     (int)a->max_turns) < 0)
			reason = NULL;
		if (reason)
			remember(o, a->name, "assignment", false, reason);
		orch_emit(o, "step",
			  json_pack("{s:s, s:s, s:s, s:i, s:s?}", "agent", a->name, "goal",
				    goal ? goal : "", "end", rc ? "stopped" : end, "turns", (int)turns,
				    "reason", why ? why : reason));
		free(reason);
	}
	free(why);
	free(sys);
	return rc;
}

struct verdict_ctx {
	bool approve;
	json_t *issues;
};

static int parse_verdict(struct orch *o, void *ctx, const char *text, size_t len, char **repair)
{
	(void)o;
	struct verdict_ctx *c = ctx;
	return agent_parse_verdict(text, len, &c->approve, &c->issues, repair);
}

/* A review of the workspace as it is. 0 with *approve, ORCH_STOP (a
 * reviewer that cannot give a verdict ends the task: nothing could ever
 * be approved) or TK_ENOMEM. */
int orch_review_step(struct orch *o, const struct agent_def *a, const char *goal, bool *approve)
{
	*approve = false;
	char *sys = orch_system_prompt(a, AGENT_KIND_REVIEWER, NULL);
	if (!sys)
		return TK_ENOMEM;
	struct verdict_ctx vc = { 0 };
	char *why = NULL;
	struct orch_brief_req q = { .kind = ORCH_BRIEF_REVIEWER, .agent = a, .goal = goal };
	int rc = orch_ask(o, &q, sys, agent_schema_verdict(), parse_verdict, &vc, &why);
	free(sys);
	if (rc == ASK_GAVE_UP) {
		orch_emit(o, "review", json_pack("{s:s, s:s, s:s}", "agent", a->name, "verdict",
						 "error", "reason", why));
		rc = orch_end(o, AGENT_FAILED, "no review verdict: %s", why);
		free(why);
		return rc;
	}
	if (rc)
		return rc;
	*approve = vc.approve;
	orch_emit(o, "review", json_pack("{s:s, s:s, s:O}", "agent", a->name, "verdict",
					 vc.approve ? "approve" : "changes", "issues", vc.issues));
	json_decref(o->issues);
	o->issues = NULL;
	if (vc.approve)
		o->approved_version = o->ws_version + 1;
	else
		o->issues = json_incref(vc.issues);
	json_decref(vc.issues);
	return 0;
}

/* ---- test runs ----------------------------------------------------------- */


/* Runs the test command in the sandbox: "test_run" event, o->last_tests.
 * 0 with *passed, ORCH_STOP or TK_ENOMEM. */
int orch_run_tests(struct orch *o, const char *cmd, bool *passed)
{
	*passed = false;
	int rc = orch_budget_check(o, "sandbox run");
	if (rc)
		return rc;
	struct agent_run_opts ro;
	run_opts(o, &ro);
	struct agent_tool_result tr = { 0 };
	tk_log_ctx_set("tool", "test_run");
	rc = agent_ws_run(o->ws, cmd, &ro, &tr);
	tk_log_ctx_set("tool", NULL);
	if (rc) {
		agent_tool_result_clear(&tr);
		return rc == TK_ENOMEM ? rc
				       : orch_end(o, AGENT_FAILED, "the test run failed: %s",
						  tk_err_detail());
	}
	o->sandbox_ms += (int64_t)tr.sandbox_ms;
	*passed = tr.ok && tr.status == TK_SB_OK;
	char *out = orch_clip(tr.output, tr.output ? strlen(tr.output) : 0,
			      (size_t)o->set->tool_output_bytes);
	json_decref(o->last_tests);
	o->last_tests = json_pack("{s:s, s:s, s:i, s:b, s:I, s:o}", "command", cmd, "status",
				  tk_sandbox_status_name(tr.status), "exit_code", tr.exit_code,
				  "passed", *passed, "wall_ms", (json_int_t)tr.sandbox_ms, "output",
				  orch_json_text(out, out ? strlen(out) : 0));
	free(out);
	json_t *ev = o->last_tests ? json_deep_copy(o->last_tests) : NULL;
	const char *limit = tk_json_get_str(tr.event, "limit", NULL);
	if (ev && limit && strcmp(limit, "none"))
		json_object_set_new(ev, "limit", json_string(limit));
	if (ev) {
		json_object_set_new(ev, "iteration", json_integer(o->iterations));
		const char *k = "output";
		json_t *v = json_object_get(ev, k);
		if (json_string_length(v) > ORCH_EVENT_OUTPUT_MAX) {
			char *s = orch_clip(json_string_value(v), json_string_length(v),
					    ORCH_EVENT_OUTPUT_MAX);
			json_object_set_new(ev, k, orch_json_text(s, s ? strlen(s) : 0));
			free(s);
		}
	}
	orch_emit(o, "test_run", ev);
	agent_tool_result_clear(&tr);
	if (!o->last_tests)
		return tk_errf(TK_ENOMEM, "agents: out of memory");
	return orch_check_stop(o);
}

