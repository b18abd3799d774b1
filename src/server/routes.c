/*
 * routes.c — the route table and the handlers of every endpoint, with the
 * checks in front of them: authentication (X-API-Key or Authorization:
 * Bearer), role, rate limit. Owns nothing long-lived; each handler answers
 * exactly once (or suspends a wait, see hub.c).
 *
 * Ownership rule for tasks: a user key sees only tasks it created; another
 * key's task answers 404, exactly like a missing one, so ids cannot be
 * probed. Admin keys see everything.
 */
#include "server/server_int.h"

#include "core/err.h"
#include "core/json.h"
#include "core/time.h"
#include "core/version.h"
#include "obs/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum auth_need { AUTH_NONE, AUTH_ANY, AUTH_ADMIN };

struct srv_route {
	const char *method;
	const char *tmpl; /* "{id}" matches one path segment */
	enum auth_need auth;
	enum tk_rl_class rl;
	enum MHD_Result (*fn)(struct srv_req *r);
};

#define CANCEL_WAIT_NS (5LL * 1000000000LL)
#define ADMIN_BODY_MAX 4096

/* -------------------------------------------------------------- helpers */

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

json_t *srv_task_response(struct tk_server *srv, const struct tk_task *t, bool with_files)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_t *res = t->result_json ? json_loads(t->result_json, 0, NULL) : NULL;
	json_t *result = NULL, *tests = NULL, *usage = NULL;
	if (json_is_object(res)) {
		result = json_object_get(res, "result");
		tests = json_object_get(res, "tests");
		usage = json_object_get(res, "usage");
	} else if (res) {
		result = res;
	}
	char events_url[64];
	snprintf(events_url, sizeof events_url, "/tasks/%s/events", t->id);
	const char *ts = t->finished[0] ? t->finished : t->started[0] ? t->started : t->created;
	json_object_set_new(o, "task_id", json_string(t->id));
	json_object_set_new(o, "status", json_string(tk_task_status_name(t->status)));
	json_object_set_new(o, "result", result ? json_incref(result) : json_null());
	json_object_set_new(o, "error", str_or_null(t->error));
	json_object_set_new(o, "timestamp", json_string(ts));
	json_object_set_new(o, "created", json_string(t->created));
	json_object_set_new(o, "started", str_or_null(t->started));
	json_object_set_new(o, "finished", str_or_null(t->finished));
	json_object_set_new(o, "attempts", json_integer(t->attempts));
	json_object_set_new(o, "tests", tests ? json_incref(tests) : json_null());
	json_object_set_new(o, "usage", usage ? json_incref(usage) : json_null());
	json_object_set_new(o, "events_url", json_string(events_url));
	json_decref(res);
	if (!with_files)
		return o;
	json_t *files = json_array();
	struct tk_task_file *f = NULL;
	size_t n = 0;
	if (tk_task_status_terminal(t->status) &&
	    tk_store_file_list(srv->store, t->id, TK_FILE_OUTPUT, &f, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			/* Binary content is not valid JSON text: it is announced by
			 * size only. */
			json_t *c = json_stringn(f[i].content, f[i].size);
			json_t *e = json_pack("{s:s, s:o, s:I}", "path", f[i].path, "content",
					      c ? c : json_null(), "size", (json_int_t)f[i].size);
			if (e)
				json_array_append_new(files, e);
		}
		tk_task_files_free(f, n);
	}
	json_object_set_new(o, "files", files ? files : json_array());
	return o;
}

static bool can_see(const struct srv_req *r, const struct tk_task *t)
{
	return r->key.role == TK_ROLE_ADMIN || !strcmp(t->owner_key_id, r->key.id);
}

/* Loads the task of the path for the caller; on failure answers (404 for a
 * task the caller may not see) and returns false. */
static bool load_task(struct srv_req *r, struct tk_task *t, enum MHD_Result *ret)
{
	if (!tk_id_valid(r->path_id)) {
		*ret = srv_send_error(r, 404, "not_found", "task not found");
		return false;
	}
	int rc = tk_store_task_get(r->srv->store, r->path_id, t);
	if (rc == 0 && !can_see(r, t)) {
		tk_task_clear(t);
		rc = TK_ENOENT;
	}
	if (rc < 0) {
		*ret = srv_send_store_error(r, rc, "task");
		return false;
	}
	return true;
}

static const char *query(struct srv_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* Parses the body strictly (core/json.h) and validates it against fields
 * (unknown fields refused); answers 400/413 and returns NULL on failure. */
static json_t *body_object(struct srv_req *r, const struct tk_json_field *fields, size_t n,
			   enum MHD_Result *ret)
{
	json_t *o = NULL;
	int rc = tk_json_parse(r->body.data ? r->body.data : "", r->body.len, ADMIN_BODY_MAX, &o);
	if (rc == TK_ELIMIT) {
		*ret = srv_send_error(r, 413, "too_large", "body larger than %d bytes", ADMIN_BODY_MAX);
		return NULL;
	}
	if (rc < 0) {
		*ret = srv_send_error(r, 400, "invalid_json", "body: %s", tk_err_detail());
		return NULL;
	}
	if (tk_json_validate(o, fields, n, TK_JSON_REJECT_UNKNOWN, "") < 0) {
		json_decref(o);
		*ret = srv_send_error(r, 400, "invalid_request", "%s", tk_err_detail());
		return NULL;
	}
	return o;
}

/* --------------------------------------------------------------- probes */

static enum MHD_Result h_livez(struct srv_req *r)
{
	return srv_send_json(r, 200, json_pack("{s:s}", "status", "alive"));
}

static enum MHD_Result h_readyz(struct srv_req *r)
{
	struct tk_server *srv = r->srv;
	bool store_ok = tk_store_ping(srv->store) == 0;
	bool runner_ok = !srv->runner.ready || srv->runner.ready(srv->runner.ctx);
	bool draining = atomic_load(&srv->draining);
	bool ok = store_ok && runner_ok && !draining;
	return srv_send_json(r, ok ? 200 : 503,
			     json_pack("{s:s, s:{s:b, s:b, s:b}}", "status", ok ? "ready" : "not ready",
				       "checks", "store", store_ok, "runner", runner_ok,
				       "not_draining", !draining));
}

static enum MHD_Result h_version(struct srv_req *r)
{
	return srv_send_json(r, 200, json_pack("{s:s, s:s, s:s}", "version", tk_version(),
					       "commit", tk_commit(), "build_date", tk_build_date()));
}

static enum MHD_Result h_metrics(struct srv_req *r)
{
	struct tk_buf b = TK_BUF_INIT(64u << 20);
	if (tk_metrics_expose(NULL, &b) < 0) {
		tk_buf_free(&b);
		return srv_send_error(r, 500, "internal", "cannot expose metrics");
	}
	size_t len;
	char *text = tk_buf_detach(&b, &len);
	if (!text)
		return srv_send_error(r, 500, "internal", "out of memory");
	return srv_send_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

static enum MHD_Result h_health(struct srv_req *r)
{
	/* As the original API: any valid key, a fixed answer. */
	return srv_send_json(r, 200, json_pack("{s:s, s:s}", "status", "ok", "message",
					       "Tanuki API is running"));
}

/* ---------------------------------------------------------------- tasks */

enum MHD_Result srv_wait_resume(struct srv_req *r)
{
	struct tk_server *srv = r->srv;
	/* Each refused suspension means this task just changed; a task
	 * changes a bounded number of times, so the loop ends quickly. The
	 * round cap is a backstop (the answer is then the state now, 202). */
	for (int round = 0; round < 64; round++) {
		uint64_t gen = hub_gen(srv);
		struct tk_task t = { 0 };
		int rc = tk_store_task_get(srv->store, r->task_id, &t);
		if (rc < 0)
			return srv_send_store_error(r, rc, "task");
		bool terminal = tk_task_status_terminal(t.status);
		if (terminal || tk_time_mono_ns() >= r->wait_deadline_ns ||
		    atomic_load(&srv->stopping) || round == 63) {
			json_t *o = srv_task_response(srv, &t, true);
			tk_task_clear(&t);
			r->state = RS_DONE;
			return srv_send_json(r, terminal ? 200 : 202, o);
		}
		tk_task_clear(&t);
		r->state = RS_WAIT;
		if (hub_suspend(srv, r, r->task_id, r->wait_deadline_ns, &gen))
			return MHD_YES;
	}
	return srv_send_error(r, 500, "internal", "wait loop"); /* not reached */
}

static enum MHD_Result h_run_task(struct srv_req *r)
{
	struct tk_server *srv = r->srv;
	enum MHD_Result ret;
	if (atomic_load(&srv->draining)) {
		tk_counter_inc(tk_metric_series(srv->m.rejected, (const char *[]){ "draining" }));
		return srv_send_error(r, 503, "draining", "server is draining; not accepting tasks");
	}
	json_t *req = NULL;
	double wait_s = 0;
	int rc = tk_taskreq_parse(r->body.data ? r->body.data : "", r->body.len, &srv->opts.req,
				  &req, &wait_s);
	if (rc < 0)
		return srv_send_error(r, 400, rc == TK_EFORMAT ? "invalid_json" : "invalid_request",
				      "%s", tk_err_detail());

	/* Input files go to the files table; the stored request keeps the rest. */
	json_t *files = json_incref(json_object_get(req, "files"));
	json_object_del(req, "files");
	size_t nf = files ? json_array_size(files) : 0;
	struct tk_file_in *fin = nf ? calloc(nf, sizeof *fin) : NULL;
	char *req_text = json_dumps(req, JSON_COMPACT);
	if ((nf && !fin) || !req_text) {
		ret = srv_send_error(r, 500, "internal", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nf; i++) {
		json_t *f = json_array_get(files, i);
		json_t *c = json_object_get(f, "content");
		fin[i] = (struct tk_file_in){ .path = json_string_value(json_object_get(f, "path")),
					      .content = json_string_value(c),
					      .size = json_string_length(c) };
	}
	if (!workers_queue_reserve(srv)) {
		tk_counter_inc(tk_metric_series(srv->m.rejected, (const char *[]){ "queue_full" }));
		ret = srv_send_error(r, 503, "queue_full", "task queue is full (%zu); try later",
				     srv->opts.queue_max);
		goto out;
	}
	struct tk_task_new tn = { .owner_key_id = r->key.id, .request_json = req_text,
				  .timeout_ms = srv->opts.task_timeout_ms, .files = fin,
				  .n_files = nf };
	rc = tk_store_task_create(srv->store, &tn, r->task_id);
	workers_queue_reserved_done(srv, rc == 0);
	if (rc < 0) {
		ret = srv_send_store_error(r, rc, "task");
		goto out;
	}
	tk_counter_inc(srv->m.submitted);
	tk_logf(TK_LOG_INFO, "server",
		TK_FIELDS(TK_LF_S("request_id", r->request_id), TK_LF_S("task_id", r->task_id),
			  TK_LF_S("key_id", r->key.id), TK_LF_I("files", nf)),
		"task queued");
	workers_kick(srv);
	if (wait_s <= 0) {
		/* wait 0: always 202 at once, even if a worker was quicker. */
		struct tk_task t = { 0 };
		if ((rc = tk_store_task_get(srv->store, r->task_id, &t)) < 0) {
			ret = srv_send_store_error(r, rc, "task");
			goto out;
		}
		ret = srv_send_json(r, 202, srv_task_response(srv, &t, true));
		tk_task_clear(&t);
		goto out;
	}
	r->wait_deadline_ns = tk_time_mono_ns() + (int64_t)(wait_s * 1e9);
	ret = srv_wait_resume(r);
out:
	free(req_text);
	free(fin);
	json_decref(files);
	json_decref(req);
	return ret;
}

static enum MHD_Result h_task_get(struct srv_req *r)
{
	struct tk_task t = { 0 };
	enum MHD_Result ret;
	if (!load_task(r, &t, &ret))
		return ret;
	json_t *o = srv_task_response(r->srv, &t, true);
	tk_task_clear(&t);
	return srv_send_json(r, 200, o);
}

static enum MHD_Result h_task_cancel(struct srv_req *r)
{
	struct tk_server *srv = r->srv;
	struct tk_task t = { 0 };
	enum MHD_Result ret;
	for (int round = 0; round < 3; round++) {
		if (!load_task(r, &t, &ret))
			return ret;
		enum tk_task_status st = t.status;
		tk_task_clear(&t);
		if (tk_task_status_terminal(st))
			return srv_send_error(r, 409, "conflict", "task already %s",
					      tk_task_status_name(st));
		if (st == TK_TASK_QUEUED) {
			int rc = tk_store_task_set_status(srv->store, r->path_id, TK_TASK_CANCELLED,
							  NULL, "cancelled by request");
			if (rc == TK_ESTATE)
				continue; /* a worker claimed it meanwhile */
			if (rc < 0)
				return srv_send_store_error(r, rc, "task");
			workers_queue_release(srv);
			tk_counter_inc(tk_metric_series(srv->m.tasks_total,
							(const char *[]){ "cancelled" }));
			hub_notify(srv, r->path_id);
		} else if (!workers_cancel(srv, r->path_id)) {
			/* running, but in no worker of ours: a claim in flight,
			 * or another process */
			if (round < 2)
				continue;
			return srv_send_error(r, 409, "conflict",
					      "task is running outside this server process");
		}
		/* Answer with the final state when it comes within a few
		 * seconds, else 202 with the state now. */
		snprintf(r->task_id, sizeof r->task_id, "%s", r->path_id);
		r->wait_deadline_ns = tk_time_mono_ns() + CANCEL_WAIT_NS;
		return srv_wait_resume(r);
	}
	return srv_send_error(r, 409, "conflict", "task changed state; try again");
}

static enum MHD_Result h_tasks_list(struct srv_req *r)
{
	struct tk_task_filter f = { 0 };
	const char *st = query(r, "status"), *lim = query(r, "limit"), *cur = query(r, "cursor");
	if (st && tk_task_status_parse(st, &f.status) < 0)
		return srv_send_error(r, 400, "invalid_request",
				      "status: must be queued, running, completed, failed, "
				      "timed_out or cancelled");
	f.by_status = st != NULL;
	if (lim) {
		char *end;
		errno = 0;
		long v = strtol(lim, &end, 10);
		if (errno || end == lim || *end || v < 1 || v > TK_STORE_LIST_MAX)
			return srv_send_error(r, 400, "invalid_request", "limit: must be 1..%d",
					      TK_STORE_LIST_MAX);
		f.limit = (size_t)v;
	}
	if (cur && *cur && !tk_id_valid(cur))
		return srv_send_error(r, 400, "invalid_request", "cursor: malformed");
	f.cursor = cur;
	f.owner_key_id = r->key.role == TK_ROLE_ADMIN ? NULL : r->key.id;
	struct tk_task *ts = NULL;
	size_t n = 0;
	char next[TK_STORE_CURSOR_LEN] = "";
	int rc = tk_store_task_list(r->srv->store, &f, &ts, &n, next);
	if (rc < 0)
		return srv_send_store_error(r, rc, "tasks");
	json_t *arr = json_array();
	for (size_t i = 0; i < n && arr; i++) {
		json_t *o = srv_task_response(r->srv, &ts[i], false);
		if (o)
			json_object_set_new(o, "owner_key_id", json_string(ts[i].owner_key_id));
		json_array_append_new(arr, o);
	}
	tk_tasks_free(ts, n);
	return srv_send_json(r, 200, json_pack("{s:o, s:o}", "tasks", arr ? arr : json_array(),
					       "next_cursor", str_or_null(next)));
}

static enum MHD_Result h_task_events(struct srv_req *r)
{
	struct tk_task t = { 0 };
	enum MHD_Result ret;
	if (!load_task(r, &t, &ret))
		return ret;
	tk_task_clear(&t);
	const char *last = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
	if (!last)
		last = query(r, "last_event_id");
	long long after = 0;
	if (last && *last) {
		char *end;
		errno = 0;
		after = strtoll(last, &end, 10);
		if (errno || end == last || *end || after < 0)
			return srv_send_error(r, 400, "invalid_request",
					      "Last-Event-ID: must be a non-negative integer");
	}
	return sse_start(r, r->path_id, after);
}

/* ---------------------------------------------------------------- admin */

static json_t *key_json(const struct tk_api_key *k)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "id", k->id, "name", k->name, "role",
			 tk_key_role_name(k->role), "created", k->created, "last_used",
			 str_or_null(k->last_used), "revoked", str_or_null(k->revoked));
}

static enum MHD_Result h_admin_keys_list(struct srv_req *r)
{
	struct tk_api_key *keys = NULL;
	size_t n = 0;
	int rc = tk_store_key_list(r->srv->store, &keys, &n);
	if (rc < 0)
		return srv_send_store_error(r, rc, "keys");
	json_t *arr = json_array();
	for (size_t i = 0; i < n && arr; i++)
		json_array_append_new(arr, key_json(&keys[i]));
	free(keys);
	return srv_send_json(r, 200, json_pack("{s:o}", "keys", arr ? arr : json_array()));
}

static enum MHD_Result h_admin_keys_create(struct srv_req *r)
{
	static const struct tk_json_field fields[] = {
		{ .name = "name", .type = TK_JT_STRING, .required = true, .min_len = 1,
		  .max_len = TK_KEY_NAME_MAX },
		{ .name = "role", .type = TK_JT_STRING, .nullable = true },
	};
	enum MHD_Result ret;
	json_t *o = body_object(r, fields, 2, &ret);
	if (!o)
		return ret;
	const char *name = json_string_value(json_object_get(o, "name"));
	const char *rolev = tk_json_get_str(o, "role", NULL);
	enum tk_key_role role = TK_ROLE_USER;
	if (rolev && tk_key_role_parse(rolev, &role) < 0) {
		ret = srv_send_error(r, 400, "invalid_request", "role: must be user or admin");
		goto out;
	}
	char key[TK_KEY_TEXT_LEN];
	struct tk_api_key rec;
	int rc = tk_store_key_create(r->srv->store, name, role, key, &rec);
	if (rc < 0) {
		ret = srv_send_store_error(r, rc, "key");
		goto out;
	}
	tk_logf(TK_LOG_INFO, "server",
		TK_FIELDS(TK_LF_S("key_id", rec.id), TK_LF_S("role", tk_key_role_name(role)),
			  TK_LF_S("by", r->key.id)),
		"API key created");
	json_t *kj = key_json(&rec);
	if (kj)
		json_object_set_new(kj, "key", json_string(key));
	ret = srv_send_json(r, 201, kj);
out:
	json_decref(o);
	return ret;
}

static enum MHD_Result h_admin_keys_revoke(struct srv_req *r)
{
	int rc = tk_store_key_revoke(r->srv->store, r->path_id);
	if (rc < 0)
		return srv_send_store_error(r, rc, "key");
	struct tk_api_key k;
	if ((rc = tk_store_key_get(r->srv->store, r->path_id, &k)) < 0)
		return srv_send_store_error(r, rc, "key");
	tk_logf(TK_LOG_INFO, "server", TK_FIELDS(TK_LF_S("key_id", k.id), TK_LF_S("by", r->key.id)),
		"API key revoked");
	return srv_send_json(r, 200, key_json(&k));
}

static enum MHD_Result h_admin_drain(struct srv_req *r)
{
	struct tk_server *srv = r->srv;
	tk_server_begin_drain(srv);
	pthread_mutex_lock(&srv->q_mu);
	int64_t queued = srv->queued, running = srv->n_running;
	pthread_mutex_unlock(&srv->q_mu);
	return srv_send_json(r, 200, json_pack("{s:b, s:I, s:I}", "draining", 1, "running",
					       (json_int_t)running, "queued", (json_int_t)queued));
}

static enum MHD_Result h_admin_log_get(struct srv_req *r)
{
	return srv_send_json(r, 200, json_pack("{s:s}", "level",
					       tk_log_level_name(tk_log_get_level())));
}

static enum MHD_Result h_admin_log_set(struct srv_req *r)
{
	static const struct tk_json_field fields[] = {
		{ .name = "level", .type = TK_JT_STRING, .required = true, .max_len = 16 },
	};
	enum MHD_Result ret;
	json_t *o = body_object(r, fields, 1, &ret);
	if (!o)
		return ret;
	const char *lv = json_string_value(json_object_get(o, "level"));
	enum tk_log_level level;
	if (!lv || tk_log_level_parse(lv, &level) < 0) {
		json_decref(o);
		return srv_send_error(r, 400, "invalid_request",
				      "level: must be debug, info, warning, error or critical");
	}
	json_decref(o);
	tk_log_set_level(level);
	tk_logf(TK_LOG_WARNING, "server", TK_FIELDS(TK_LF_S("by", r->key.id)), "log level set to %s",
		tk_log_level_name(level));
	return h_admin_log_get(r);
}

static enum MHD_Result artifacts(struct srv_req *r, const char *kind, const char *field)
{
	struct tk_artifact *a = NULL;
	size_t n = 0;
	int rc = tk_store_artifact_list(r->srv->store, kind, &a, &n);
	if (rc < 0)
		return srv_send_store_error(r, rc, field);
	json_t *arr = json_array();
	for (size_t i = 0; i < n && arr; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "name",
						     a[i].name, "path", a[i].path, "sha256",
						     a[i].sha256, "size_bytes",
						     (json_int_t)a[i].size_bytes, "version",
						     a[i].version ? a[i].version : "", "created",
						     a[i].created));
	tk_artifacts_free(a, n);
	return srv_send_json(r, 200, json_pack("{s:o}", field, arr ? arr : json_array()));
}

static enum MHD_Result h_admin_models(struct srv_req *r)
{
	return artifacts(r, "model", "models");
}

static enum MHD_Result h_admin_adapters(struct srv_req *r)
{
	return artifacts(r, "adapter", "adapters");
}

/* ---------------------------------------------------------------- table */

static const struct srv_route routes[] = {
	{ "POST", "/run_task", AUTH_ANY, TK_RL_SUBMIT, h_run_task },
	{ "GET", "/tasks", AUTH_ANY, TK_RL_READ, h_tasks_list },
	{ "GET", "/tasks/{id}", AUTH_ANY, TK_RL_READ, h_task_get },
	{ "GET", "/tasks/{id}/events", AUTH_ANY, TK_RL_READ, h_task_events },
	{ "POST", "/tasks/{id}/cancel", AUTH_ANY, TK_RL_READ, h_task_cancel },
	{ "GET", "/health", AUTH_ANY, TK_RL_READ, h_health },
	{ "GET", "/livez", AUTH_NONE, TK_RL_READ, h_livez },
	{ "GET", "/readyz", AUTH_NONE, TK_RL_READ, h_readyz },
	{ "GET", "/metrics", AUTH_NONE, TK_RL_READ, h_metrics },
	{ "GET", "/version", AUTH_NONE, TK_RL_READ, h_version },
	{ "GET", "/admin/keys", AUTH_ADMIN, TK_RL_ADMIN, h_admin_keys_list },
	{ "POST", "/admin/keys", AUTH_ADMIN, TK_RL_ADMIN, h_admin_keys_create },
	{ "POST", "/admin/keys/{id}/revoke", AUTH_ADMIN, TK_RL_ADMIN, h_admin_keys_revoke },
	{ "POST", "/admin/drain", AUTH_ADMIN, TK_RL_ADMIN, h_admin_drain },
	{ "GET", "/admin/log-level", AUTH_ADMIN, TK_RL_ADMIN, h_admin_log_get },
	{ "PUT", "/admin/log-level", AUTH_ADMIN, TK_RL_ADMIN, h_admin_log_set },
	{ "GET", "/admin/models", AUTH_ADMIN, TK_RL_ADMIN, h_admin_models },
	{ "GET", "/admin/adapters", AUTH_ADMIN, TK_RL_ADMIN, h_admin_adapters },
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* Matches url against tmpl; copies the {id} segment (if any) into id. */
static bool path_match(const char *tmpl, const char *url, char *id, size_t id_cap)
{
	const char *t = tmpl, *u = url;
	while (*t && *u) {
		if (!strncmp(t, "{id}", 4)) {
			size_t n = strcspn(u, "/");
			if (n == 0)
				return false;
			if (id) {
				size_t k = n < id_cap - 1 ? n : id_cap - 1;
				memcpy(id, u, k);
				id[k] = '\0';
				if (n >= id_cap) /* too long to be an id: poison it */
					id[0] = '!';
			}
			t += 4;
			u += n;
			continue;
		}
		if (*t != *u)
			return false;
		t++;
		u++;
	}
	return !*t && !*u;
}

bool srv_route_match(struct srv_req *r, const char *url, bool *path_known, char *allow,
		     size_t allow_cap)
{
	/* HEAD is GET without a body (MHD drops the body). */
	const char *m = !strcmp(r->method, "HEAD") ? "GET" : r->method;
	*path_known = false;
	allow[0] = '\0';
	/* With a separate metrics address, it serves /metrics alone and the
	 * API port does not serve it. */
	bool metrics_apart = r->srv->mhd_metrics != NULL || r->on_metrics_daemon;
	for (size_t i = 0; i < N_ROUTES; i++) {
		bool is_metrics = routes[i].fn == h_metrics;
		if (metrics_apart && is_metrics != r->on_metrics_daemon)
			continue;
		if (!path_match(routes[i].tmpl, url, NULL, 0))
			continue;
		if (!strcmp(routes[i].method, m)) {
			r->route = &routes[i];
			r->route_label = routes[i].tmpl;
			path_match(routes[i].tmpl, url, r->path_id, sizeof r->path_id);
			allow[0] = '\0';
			return true;
		}
		if (!*path_known)
			r->route_label = routes[i].tmpl;
		*path_known = true;
		size_t used = strlen(allow);
		snprintf(allow + used, allow_cap - used, "%s%s", used ? ", " : "", routes[i].method);
	}
	return false;
}

static enum MHD_Result auth_fail(struct srv_req *r, unsigned status, const char *reason,
				 const char *detail)
{
	tk_counter_inc(tk_metric_series(r->srv->m.auth_failures, (const char *[]){ reason }));
	return srv_send_error(r, status, status == 401 ? "unauthorized" : "forbidden", "%s", detail);
}

static const char *presented_key(struct srv_req *r)
{
	const char *k = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-API-Key");
	if (k)
		return k;
	const char *a = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
	if (a && !strncasecmp(a, "Bearer ", 7))
		return a + 7;
	return NULL;
}

/* The client's address as text ("" when unknown), for the failed-auth limit. */
static void client_addr(struct srv_req *r, char *out, size_t cap)
{
	out[0] = '\0';
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !ci->client_addr)
		return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
			  (socklen_t)cap);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			  out, (socklen_t)cap);
}

/* A failed authentication: answered 401, and takes a token from the client
 * address's budget (once it is empty, the next request gets 429 before its
 * key is looked at, in srv_route_dispatch). */
static enum MHD_Result auth_refused(struct srv_req *r, const char *ip, const char *reason,
				    const char *detail)
{
	tk_ratelimit_take(r->srv->rl, ip, TK_RL_AUTHFAIL, tk_time_mono_ns(), NULL);
	return auth_fail(r, 401, reason, detail);
}

enum MHD_Result srv_route_dispatch(struct srv_req *r)
{
	struct tk_server *srv = r->srv;
	const struct srv_route *rt = r->route;
	if (rt->auth != AUTH_NONE) {
		/* Guessing keys: an address with too many recent failures is
		 * refused before its key is even looked at. */
		char ip[INET6_ADDRSTRLEN];
		int retry = 1;
		client_addr(r, ip, sizeof ip);
		if (tk_ratelimit_blocked(srv->rl, ip, TK_RL_AUTHFAIL, tk_time_mono_ns(), &retry)) {
			tk_counter_inc(tk_metric_series(srv->m.rate_limited,
							(const char *[]){ "auth_failure" }));
			r->retry_after_s = retry;
			return srv_send_error(r, 429, "rate_limited",
					      "too many failed authentications from this address; "
					      "retry in %d s", retry);
		}
		const char *key = presented_key(r);
		if (!key || !*key)
			return auth_refused(r, ip, "missing", "missing API key (X-API-Key header)");
		int rc = tk_store_key_verify(srv->store, key, &r->key);
		if (rc == TK_EPERM)
			return auth_refused(r, ip, "invalid", "invalid API key");
		if (rc < 0)
			return srv_send_store_error(r, rc, "API key");
		r->authed = true;
		if (rt->auth == AUTH_ADMIN && r->key.role != TK_ROLE_ADMIN)
			return auth_fail(r, 403, "forbidden", "this endpoint needs an admin key");
		/* last_used is refreshed at most once a minute per key: a write
		 * per request would make every read a transaction. */
		char thresh[TK_RFC3339_LEN];
		tk_time_rfc3339(tk_time_real_ns() - 60LL * 1000000000LL, thresh);
		if (!r->key.last_used[0] || strcmp(r->key.last_used, thresh) < 0)
			tk_store_key_touch(srv->store, r->key.id);

		retry = 1;
		if (!tk_ratelimit_take(srv->rl, r->key.id, rt->rl, tk_time_mono_ns(), &retry)) {
			tk_counter_inc(tk_metric_series(srv->m.rate_limited,
							(const char *[]){ tk_rl_class_name(rt->rl) }));
			r->retry_after_s = retry;
			return srv_send_error(r, 429, "rate_limited",
					      "rate limit exceeded for %s requests; retry in %d s",
					      tk_rl_class_name(rt->rl), retry);
		}
	}
	return rt->fn(r);
}
