/*
 * orch_budget.c — the orchestrator's guard rails: the watcher thread that
 * turns env->cancel, env->deadline and the wall-time budget into the one
 * stop flag every model call and sandbox run polls, the budget checks made
 * before each of them (with "budget" warnings at 80 %), how a task ends,
 * events (logged and handed to the sink) and the agent metrics.
 */
#include "agents/orch_int.h"

#include "core/err.h"
#include "core/json.h"
#include "core/time.h"
#include "core/utf8.h"
#include "obs/log.h"
#include "obs/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WATCH_PERIOD_NS (10 * 1000 * 1000) /* 10 ms: well under a model
					     * call, cheap enough to ignore */

int64_t orch_elapsed_ms(const struct orch *o)
{
	return (tk_time_mono_ns() - o->start_ns) / 1000000;
}

static void raise_stop(struct orch *o, enum orch_why why)
{
	int none = ORCH_WHY_NONE;
	/* The first reason wins: a cancel that raced a deadline is still a
	 * cancel. */
	atomic_compare_exchange_strong(&o->why, &none, (int)why);
	atomic_store(&o->stop, true);
}

static void *watch_main(void *arg)
{
	struct orch *o = arg;
	const struct agent_env *env = o->env;
	while (!atomic_load(&o->watcher_done)) {
		if (env->cancel && atomic_load(env->cancel))
			raise_stop(o, ORCH_WHY_CANCEL);
		else if (env->deadline && atomic_load(env->deadline))
			raise_stop(o, ORCH_WHY_DEADLINE);
		else if (orch_elapsed_ms(o) >= o->budget.wall_ms)
			raise_stop(o, ORCH_WHY_WALL);
		if (atomic_load(&o->stop))
			break;
		struct timespec ts = { 0, WATCH_PERIOD_NS };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int orch_watch_start(struct orch *o)
{
	int e = pthread_create(&o->watcher, NULL, watch_main, o);
	if (e)
		return tk_errf_sys(TK_EIO, e, "agents: cannot start the task's watcher thread");
	o->watcher_started = true;
	return 0;
}

void orch_watch_stop(struct orch *o)
{
	if (!o->watcher_started)
		return;
	atomic_store(&o->watcher_done, true);
	pthread_join(o->watcher, NULL);
	o->watcher_started = false;
}

int orch_end(struct orch *o, enum agent_outcome outcome, const char *fmt, ...)
{
	if (o->ended)
		return ORCH_STOP;
	o->ended = true;
	o->outcome = outcome;
	free(o->reason);
	o->reason = NULL;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		char *r = NULL;
		if (vasprintf(&r, fmt, ap) < 0)
			r = NULL;
		va_end(ap);
		o->reason = r;
	}
	return ORCH_STOP;
}

int orch_check_stop(struct orch *o)
{
	if (o->ended)
		return ORCH_STOP;
	/* The flags are read here too, not only by the watcher, so a cancel
	 * is seen at the very next check. */
	const struct agent_env *env = o->env;
	if (env->cancel && atomic_load(env->cancel))
		raise_stop(o, ORCH_WHY_CANCEL);
	else if (env->deadline && atomic_load(env->deadline))
		raise_stop(o, ORCH_WHY_DEADLINE);
	if (!atomic_load(&o->stop))
		return 0;
	switch ((enum orch_why)atomic_load(&o->why)) {
	case ORCH_WHY_CANCEL:
		return orch_end(o, AGENT_CANCELLED, "cancelled");
	case ORCH_WHY_EMIT:
		return orch_end(o, AGENT_CANCELLED, "the event sink asked the task to stop");
	case ORCH_WHY_DEADLINE:
		return orch_end(o, AGENT_TIMED_OUT, "the caller's deadline passed");
	case ORCH_WHY_WALL:
	case ORCH_WHY_NONE:
	default:
		return orch_end(o, AGENT_TIMED_OUT, "wall-time budget spent: %lld ms of %lld ms",
				(long long)orch_elapsed_ms(o), (long long)o->budget.wall_ms);
	}
}

/* One "budget" warning the first time used reaches 80 % of limit. */
static void warn_at_80(struct orch *o, bool *warned, const char *name, int64_t used,
		       int64_t limit)
{
	if (*warned || limit <= 0 || used * 5 < limit * 4)
		return;
	*warned = true;
	orch_emit(o, "budget",
		  json_pack("{s:s, s:s, s:I, s:I}", "level", "warning", "budget", name, "used",
			    (json_int_t)used, "limit", (json_int_t)limit));
}

int orch_budget_check(struct orch *o, const char *what)
{
	int rc = orch_check_stop(o);
	if (rc)
		return rc;
	int64_t tokens = o->prompt_tokens + o->completion_tokens;
	int64_t wall = orch_elapsed_ms(o);
	warn_at_80(o, &o->warned_tokens, "tokens", tokens, o->budget.max_tokens);
	warn_at_80(o, &o->warned_wall, "wall_ms", wall, o->budget.wall_ms);
	warn_at_80(o, &o->warned_sandbox, "sandbox_ms", o->sandbox_ms, o->budget.sandbox_ms);
	if (wall >= o->budget.wall_ms)
		return orch_end(o, AGENT_TIMED_OUT,
				"wall-time budget spent before the next %s: %lld ms of %lld ms", what,
				(long long)wall, (long long)o->budget.wall_ms);
	if (tokens >= o->budget.max_tokens)
		return orch_end(o, AGENT_TIMED_OUT,
				"token budget spent before the next %s: %lld of %lld tokens", what,
				(long long)tokens, (long long)o->budget.max_tokens);
	if (o->sandbox_ms >= o->budget.sandbox_ms)
		return orch_end(o, AGENT_TIMED_OUT,
				"sandbox-time budget spent before the next %s: %lld ms of %lld ms",
				what, (long long)o->sandbox_ms, (long long)o->budget.sandbox_ms);
	return orch_check_stop(o); /* an emit above may have asked to stop */
}

/* ---- events ------------------------------------------------------------ */

void orch_emit(struct orch *o, const char *type, json_t *data)
{
	if (!data)
		return;
	if (tk_log_enabled(TK_LOG_INFO)) {
		/* The raw reply is debug-level material (it is logged there by
		 * the caller); the info line carries the rest. */
		json_t *shown = data;
		if (json_object_get(data, "text") && (shown = json_copy(data)))
			json_object_del(shown, "text");
		char *txt = shown ? json_dumps(shown, JSON_COMPACT) : NULL;
		struct tk_log_field f[4];
		size_t n = 0;
		const char *agent = tk_json_get_str(data, "agent", NULL);
		const char *tool = tk_json_get_str(data, "tool", NULL);
		f[n++] = TK_LF_S("event", type);
		if (agent)
			f[n++] = TK_LF_S("agent", agent);
		if (tool)
			f[n++] = TK_LF_S("tool", tool);
		f[n++] = TK_LF_S("data", txt);
		tk_log_write(TK_LOG_INFO, "agents", f, n, "%s", type);
		free(txt);
		if (shown != data)
			json_decref(shown);
	}
	if (o->env->emit && o->env->emit(o->env->emit_ud, type, data) != 0)
		raise_stop(o, ORCH_WHY_EMIT);
	json_decref(data);
}

/* ---- metrics ----------------------------------------------------------- */

static const double iteration_buckets[] = { 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50 };
static const double turn_buckets[] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300 };

void orch_metrics_init(struct orch *o)
{
	struct tk_registry *r = o->env->metrics;
	/* Registering an existing family returns it: this is idempotent and
	 * thread-safe, so every task may call it. */
	o->m_invocations = tk_metric_counter(r, "tanuki_agent_invocations_total",
					     "model calls made by agents, by agent and outcome "
					     "(ok, malformed, error, cancelled)",
					     (const char *[]){ "agent", "outcome" }, 2);
	o->m_iterations = tk_metric_histogram(r, "tanuki_task_iterations",
					      "verification rounds (build, test, review) per task",
					      NULL, 0, iteration_buckets,
					      sizeof iteration_buckets / sizeof iteration_buckets[0]);
	o->m_tools = tk_metric_counter(r, "tanuki_tool_calls_total",
				       "tool calls by tool and outcome (ok, error)",
				       (const char *[]){ "tool", "outcome" }, 2);
	o->m_turn_seconds = tk_metric_histogram(r, "tanuki_agent_turn_seconds",
						"duration of one agent model call, by agent",
						(const char *[]){ "agent" }, 1, turn_buckets,
						sizeof turn_buckets / sizeof turn_buckets[0]);
}

void orch_metric_invocation(struct orch *o, const char *agent, const char *outcome)
{
	tk_counter_inc(tk_metric_series(o->m_invocations, (const char *[]){ agent, outcome }));
}

void orch_metric_tool(struct orch *o, const char *tool, bool ok)
{
	tk_counter_inc(
		tk_metric_series(o->m_tools, (const char *[]){ tool, ok ? "ok" : "error" }));
}

void orch_metric_turn_seconds(struct orch *o, const char *agent, double seconds)
{
	tk_hist_observe(tk_metric_series(o->m_turn_seconds, (const char *[]){ agent }), seconds);
}

void orch_metric_iterations(struct orch *o)
{
	tk_hist_observe(tk_metric_solo(o->m_iterations), (double)o->iterations);
}

/* ---- text helpers ------------------------------------------------------ */

size_t orch_utf8_cut(const char *s, size_t max)
{
	if (!s)
		return 0;
	size_t n = strnlen(s, max + 1);
	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

char *orch_clip(const char *s, size_t len, size_t max)
{
	if (!s)
		s = "", len = 0;
	size_t keep = len;
	if (len > max) {
		keep = max;
		/* back off to the start of a UTF-8 sequence */
		while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80)
			keep--;
	}
	size_t extra = keep < len ? 48 : 0;
	char *out = malloc(keep + extra + 1);
	if (!out)
		return NULL;
	memcpy(out, s, keep);
	out[keep] = '\0';
	if (extra)
		snprintf(out + keep, extra + 1, "\n...[%zu bytes cut]", len - keep);
	return out;
}

json_t *orch_json_text(const char *s, size_t len)
{
	if (!s)
		return json_string("");
	struct tk_buf b = TK_BUF_INIT((size_t)-1 / 2);
	size_t i = 0;
	int rc = 0;
	while (i < len && !rc) {
		int n = tk_utf8_check((const unsigned char *)s + i, len - i);
		if (n > 0 && s[i] != '\0') {
			rc = tk_buf_append(&b, s + i, (size_t)n);
			i += (size_t)n;
		} else {
			rc = tk_buf_puts(&b, "\xEF\xBF\xBD"); /* U+FFFD */
			i += n < 0 ? (size_t)-n : 1;
		}
	}
	json_t *j = rc ? NULL : json_stringn(b.data ? b.data : "", b.len);
	tk_buf_free(&b);
	return j;
}
