/*
 * runner_orch.c — the "orchestrator" task runner (runner_orch.h): turns a
 * claimed task into an agent_task, runs agent_run_task with the server's
 * event sink and stop flags, and hands the result back to the worker.
 * Owns its options block (ctx), the readiness probe thread, and per run the
 * task copy, the stop watcher thread and the result.
 */
#include "server/runner_orch.h"

#include "core/err.h"
#include "obs/log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WATCH_MS 50          /* how often io->stop is mirrored */
#define REDUCED_STRING_MAX 512 /* strings kept in a reduced (over-cap) event */

struct orch_ctx {
	struct tk_orch_runner_opts o;
	/* readiness probe */
	pthread_t probe;
	bool probe_started;
	atomic_bool probe_stop;
	atomic_bool backend_up;
};

/* ---- the event sink ------------------------------------------------------ */

struct run_state {
	struct tk_runner_io *io;
	atomic_bool cancel;   /* TK_STOP_CANCEL */
	atomic_bool deadline; /* TK_STOP_DEADLINE, TK_STOP_SHUTDOWN */
	atomic_bool done;     /* the watcher exits */
	int64_t dropped;      /* events the store refused */
};

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0)
		;
}

/* Copies the stop reason into the orchestrator's flags. */
static void mirror_stop(struct run_state *st)
{
	int stop = atomic_load_explicit(&st->io->stop, memory_order_relaxed);
	if (stop == TK_STOP_CANCEL)
		atomic_store(&st->cancel, true);
	else if (stop == TK_STOP_DEADLINE || stop == TK_STOP_SHUTDOWN)
		atomic_store(&st->deadline, true);
}

static void *watch_main(void *arg)
{
	struct run_state *st = arg;
	while (!atomic_load(&st->done)) {
		mirror_stop(st);
		sleep_ms(WATCH_MS);
	}
	return NULL;
}

/* A smaller copy of an event that the store refused as too large: scalars
 * and short strings stay, a "files" array keeps its paths, everything else
 * is dropped; "truncated": true says so (new reference or NULL). */
static json_t *reduce(const json_t *data)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	if (json_is_object(data)) {
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)data, k, v) {
			if (json_is_string(v) && json_string_length(v) > REDUCED_STRING_MAX)
				continue;
			if (!strcmp(k, "files") && json_is_array(v)) {
				json_t *paths = json_array();
				size_t i;
				json_t *f;
				json_array_foreach(v, i, f) {
					const char *p = json_string_value(json_object_get(f, "path"));
					if (p && strlen(p) <= REDUCED_STRING_MAX)
						json_array_append_new(paths, json_pack("{s:s}", "path", p));
				}
				json_object_set_new(o, "files", paths);
				continue;
			}
			if (json_is_object(v) || json_is_array(v))
				continue;
			json_object_set(o, k, v);
		}
	}
	json_object_set_new(o, "truncated", json_true());
	return o;
}

static int store_event(struct run_state *st, const char *type, const json_t *data)
{
	char *text = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (data && !text)
		return TK_ENOMEM;
	int rc = st->io->emit(st->io, type, text);
	free(text);
	if (rc == TK_ELIMIT) {
		json_t *small = reduce(data);
		text = small ? json_dumps(small, JSON_COMPACT) : NULL;
		json_decref(small);
		rc = text ? st->io->emit(st->io, type, text) : TK_ENOMEM;
		free(text);
	}
	return rc;
}

static int orch_emit_cb(void *ud, const char *type, const json_t *data)
{
	struct run_state *st = ud;
	/* "status" belongs to the store (its terminal one ends the task's event
	 * stream); the orchestrator's own status reports are kept under another
	 * name. */
	if (!strcmp(type, "status"))
		type = "agent_status";
	if (store_event(st, type, data) < 0) {
		st->dropped++;
		tk_logf(TK_LOG_WARNING, "server",
			TK_FIELDS(TK_LF_S("task_id", st->io->task->id), TK_LF_S("event", type)),
			"task event not stored: %s", tk_err_detail());
	}
	mirror_stop(st);
	return 0; /* a stop is signalled through the flags, not here */
}

/* ---- the task ------------------------------------------------------------ */

static const char *req_str(const json_t *req, const char *key)
{
	const char *s = json_string_value(json_object_get(req, key));
	return s && *s ? s : NULL;
}

/* Writes the changed files of r (added or modified) through io. */
static int put_files(struct tk_runner_io *io, const struct agent_result *r)
{
	size_t i;
	json_t *f;
	json_array_foreach(r->files, i, f) {
		const char *path = json_string_value(json_object_get(f, "path"));
		const char *status = json_string_value(json_object_get(f, "status"));
		json_t *content = json_object_get(f, "content");
		if (!path || !json_is_string(content) || (status && !strcmp(status, "deleted")))
			continue;
		int rc = io->put_file(io, path, json_string_value(content),
				      json_string_length(content));
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int outcome_code(enum agent_outcome o)
{
	switch (o) {
	case AGENT_COMPLETED: return 0;
	case AGENT_TIMED_OUT: return TK_ETIMEOUT;
	case AGENT_CANCELLED: return TK_ECANCELED;
	case AGENT_FAILED: break;
	}
	return TK_ELIMIT;
}

static int orch_run(void *ctx, struct tk_runner_io *io, char **result_json, char **error)
{
	struct orch_ctx *c = ctx;
	struct run_state st = { .io = io };
	atomic_init(&st.cancel, false);
	atomic_init(&st.deadline, false);
	atomic_init(&st.done, false);
	struct tk_task_file *in = NULL;
	size_t n_in = 0;
	struct agent_file *files = NULL;
	struct agent_result res = { 0 };
	bool have_result = false, watching = false;
	pthread_t watcher;
	int rc;

	json_t *req = json_loads(io->task->request_json ? io->task->request_json : "{}", 0, NULL);
	if (!json_is_object(req)) {
		rc = tk_errf(TK_EFORMAT, "orchestrator: task %s: stored request is not a JSON object",
			     io->task->id);
		goto out;
	}
	if ((rc = tk_store_file_list(c->o.store, io->task->id, TK_FILE_INPUT, &in, &n_in)) < 0)
		goto out;
	if (n_in && !(files = calloc(n_in, sizeof *files))) {
		rc = tk_errf(TK_ENOMEM, "orchestrator: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n_in; i++)
		files[i] = (struct agent_file){ .path = in[i].path, .content = in[i].content,
						.size = in[i].size };
	struct agent_task task = {
		.id = io->task->id,
		.description = req_str(req, "task_description"),
		.context = req_str(req, "context"),
		.language = req_str(req, "language"),
		.test_command = req_str(req, "test_command"),
		.files = files,
		.n_files = n_in,
	};
	struct agent_env env = {
		.llm = c->o.llm,
		.team = c->o.team,
		.settings = c->o.settings,
		.profiles = c->o.profiles,
		.sandbox_opts = c->o.sandbox_opts,
		.emit = orch_emit_cb,
		.emit_ud = &st,
		.cancel = &st.cancel,
		.deadline = &st.deadline,
		.metrics = c->o.metrics,
	};
	mirror_stop(&st);
	if (pthread_create(&watcher, NULL, watch_main, &st) != 0) {
		rc = tk_errf(TK_EIO, "orchestrator: cannot start the stop watcher");
		goto out;
	}
	watching = true;
	rc = agent_run_task(&env, &task, &res);
	if (rc < 0)
		goto out; /* refused at ingress or host trouble: the detail says */
	have_result = true;

	/* Partial results too: the files so far and the result JSON are
	 * stored whatever the outcome. */
	int frc = put_files(io, &res);
	json_t *rj = agent_result_to_json(&res);
	*result_json = rj ? json_dumps(rj, JSON_COMPACT) : NULL;
	json_decref(rj);
	rc = outcome_code(res.outcome);
	if (rc == 0 && frc < 0)
		rc = tk_err_wrap(frc, "orchestrator: storing the output files");
	else if (rc == 0 && !*result_json)
		rc = tk_errf(TK_ENOMEM, "orchestrator: cannot serialize the result");
	if (rc < 0) {
		/* The reason as the task's error: "timed_out: token budget ..."; a
		 * completed task whose files could not be stored fails with that. */
		char buf[1024];
		if (res.outcome == AGENT_COMPLETED)
			snprintf(buf, sizeof buf, "%s", tk_err_detail());
		else
			snprintf(buf, sizeof buf, "%s: %s", agent_outcome_name(res.outcome),
				 res.reason && *res.reason ? res.reason : "no reason given");
		*error = strdup(buf);
		tk_errf(rc, "%s", buf);
	}
out:
	if (watching) {
		atomic_store(&st.done, true);
		pthread_join(watcher, NULL);
	}
	if (have_result)
		agent_result_free(&res);
	free(files);
	tk_task_files_free(in, n_in);
	json_decref(req);
	return rc;
}

/* ---- readiness ------------------------------------------------------------ */

static void *probe_main(void *arg)
{
	struct orch_ctx *c = arg;
	while (!atomic_load(&c->probe_stop)) {
		int rc = llm_health(c->o.llm);
		atomic_store(&c->backend_up, rc == 0);
		for (int64_t t = 0; t < c->o.health_interval_ms && !atomic_load(&c->probe_stop);
		     t += 100)
			sleep_ms(100);
	}
	return NULL;
}

static bool orch_ready(void *ctx)
{
	struct orch_ctx *c = ctx;
	return atomic_load(&c->backend_up);
}

static void orch_free(void *ctx)
{
	struct orch_ctx *c = ctx;
	if (!c)
		return;
	if (c->probe_started) {
		atomic_store(&c->probe_stop, true);
		pthread_join(c->probe, NULL);
	}
	free(c);
}

int tk_runner_orch_init(struct tk_task_runner *r, const struct tk_orch_runner_opts *o)
{
	if (!o || !o->llm || !o->team || !o->settings || !o->profiles || !o->store)
		return tk_errf(TK_EINVAL, "orchestrator runner: backend, team, settings, profiles "
			       "and store are required");
	struct orch_ctx *c = calloc(1, sizeof *c);
	if (!c)
		return tk_errf(TK_ENOMEM, "orchestrator runner: out of memory");
	c->o = *o;
	atomic_init(&c->probe_stop, false);
	atomic_init(&c->backend_up, true);
	if (o->health_interval_ms > 0) {
		if (pthread_create(&c->probe, NULL, probe_main, c) != 0) {
			free(c);
			return tk_errf(TK_EIO, "orchestrator runner: cannot start the health probe");
		}
		c->probe_started = true;
	}
	*r = (struct tk_task_runner){ .name = "orchestrator", .ctx = c, .run = orch_run,
				      .ready = orch_ready, .free = orch_free };
	return 0;
}
