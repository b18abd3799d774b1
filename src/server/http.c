/*
 * http.c — the server object and its libmicrohttpd daemon: options, life
 * cycle (new/start/drain/shutdown/free), the per-request context, body
 * accumulation under a cap, responses with the common headers, and the
 * access log line + HTTP metrics written when a request completes.
 *
 * Daemon: epoll with an internal pool of opts.http_threads threads;
 * suspend/resume for waits and SSE (hub.c); per-connection memory limit
 * (request line + headers), idle timeout (slow clients), connection cap.
 */
#include "server/server_int.h"

#include "core/err.h"
#include "core/id.h"
#include "core/time.h"
#include "obs/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* ------------------------------------------------------------ options */

void tk_server_opts_default(struct tk_server_opts *o)
{
	memset(o, 0, sizeof *o);
	snprintf(o->listen_host, sizeof o->listen_host, "127.0.0.1");
	o->port = 8080;
	o->http_threads = 4;
	o->max_connections = 256;
	o->connection_timeout_s = 30;
	o->max_body_bytes = 8u << 20;
	o->header_memory_bytes = 32u << 10;
	o->workers = 2;
	o->queue_max = 64;
	o->task_timeout_ms = 30LL * 60 * 1000;
	o->sse_heartbeat_ms = 15000;
	o->retry_after_s = 5;
	o->limits[TK_RL_SUBMIT] = (struct tk_rl_limit){ 5, 5 };
	o->limits[TK_RL_READ] = (struct tk_rl_limit){ 600, 120 };
	o->limits[TK_RL_ADMIN] = (struct tk_rl_limit){ 120, 60 };
	o->limits[TK_RL_AUTHFAIL] = (struct tk_rl_limit){ 30, 30 };
	o->rl_max_buckets = 10000;
	o->trust_request_id = true;
	tk_taskreq_limits_default(&o->req);
}

static int parse_hostport(const char *hostport, char *host, size_t host_cap, int *port);

int tk_server_opts_set_listen(struct tk_server_opts *o, const char *hostport)
{
	return parse_hostport(hostport, o->listen_host, sizeof o->listen_host, &o->port);
}

int tk_server_opts_set_metrics_listen(struct tk_server_opts *o, const char *hostport)
{
	if (!hostport || !*hostport) {
		o->metrics_host[0] = '\0';
		o->metrics_port = 0;
		return 0;
	}
	return parse_hostport(hostport, o->metrics_host, sizeof o->metrics_host, &o->metrics_port);
}

static int parse_hostport(const char *hostport, char *host, size_t host_cap, int *port)
{
	const char *colon;
	size_t hl;
	const char *h = hostport;
	if (hostport[0] == '[') {
		const char *rb = strchr(hostport, ']');
		if (!rb || rb[1] != ':')
			return tk_errf(TK_EINVAL, "listen: expected [V6]:PORT, got '%s'", hostport);
		h = hostport + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(hostport, ':');
		if (!colon)
			return tk_errf(TK_EINVAL, "listen: expected HOST:PORT, got '%s'", hostport);
		hl = (size_t)(colon - hostport);
	}
	if (hl == 0 || hl >= host_cap)
		return tk_errf(TK_EINVAL, "listen: bad host in '%s'", hostport);
	char *end;
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || p < 0 || p > 65535)
		return tk_errf(TK_EINVAL, "listen: port must be 0..65535 in '%s'", hostport);
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

/* ---------------------------------------------------------- responses */

void srv_add_common_headers(struct srv_req *r, struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "X-Request-ID", r->request_id);
	/* An API answers data, never pages: forbid sniffing, framing, caching
	 * and any active content should a browser ever render a response. */
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (r->srv->cors_origin) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->srv->cors_origin);
		MHD_add_response_header(resp, "Vary", "Origin");
	}
}

static enum MHD_Result queue(struct srv_req *r, unsigned status, struct MHD_Response *resp,
			     size_t len, const char *ctype)
{
	if (!resp)
		return MHD_NO;
	srv_add_common_headers(r, resp);
	if (ctype)
		MHD_add_response_header(resp, "Content-Type", ctype);
	if (r->allow[0])
		MHD_add_response_header(resp, "Allow", r->allow);
	if (status == 429 || status == 503) {
		char ra[32];
		int secs = r->retry_after_s > 0 ? r->retry_after_s
						     : (int)ceil(r->srv->opts.retry_after_s);
		snprintf(ra, sizeof ra, "%d", secs < 1 ? 1 : secs);
		MHD_add_response_header(resp, "Retry-After", ra);
	}
	r->status = status;
	r->bytes = len;
	r->responded = true;
	r->state = RS_DONE;
	enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result srv_send_text(struct srv_req *r, unsigned status, const char *ctype, char *text,
			      size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		free(text);
	return queue(r, status, resp, len, ctype);
}

enum MHD_Result srv_send_json(struct srv_req *r, unsigned status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text) {
		static const char oom[] = "{\"detail\":\"out of memory\",\"code\":\"internal\"}";
		struct MHD_Response *resp = MHD_create_response_from_buffer(
			sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
		return queue(r, 500, resp, sizeof oom - 1, "application/json");
	}
	return srv_send_text(r, status, "application/json", text, strlen(text));
}

enum MHD_Result srv_send_error(struct srv_req *r, unsigned status, const char *code,
			       const char *fmt, ...)
{
	char detail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	/* json_string refuses invalid UTF-8 (a detail may quote client
	 * input); fall back to a generic text rather than fail. */
	json_t *d = json_string(detail);
	if (!d)
		d = json_string("invalid input");
	json_t *o = json_object();
	if (o) {
		json_object_set_new(o, "detail", d);
		json_object_set_new(o, "code", json_string(code));
	} else {
		json_decref(d);
	}
	return srv_send_json(r, status, o);
}

enum MHD_Result srv_send_store_error(struct srv_req *r, int rc, const char *what)
{
	switch (rc) {
	case TK_ENOENT:
		return srv_send_error(r, 404, "not_found", "%s not found", what);
	case TK_EINVAL:
	case TK_EFORMAT:
		return srv_send_error(r, 400, "invalid_request", "%s", tk_err_detail());
	case TK_EEXIST:
	case TK_ESTATE:
		return srv_send_error(r, 409, "conflict", "%s", tk_err_detail());
	case TK_ELIMIT:
		return srv_send_error(r, 413, "too_large", "%s", tk_err_detail());
	case TK_EBUSY:
		return srv_send_error(r, 503, "busy", "store busy; try again");
	default:
		tk_logf(TK_LOG_ERROR, "server", TK_FIELDS(TK_LF_S("request_id", r->request_id)),
			"%s: %s", what, tk_err_detail());
		return srv_send_error(r, 500, "internal", "internal error");
	}
}

/* ---------------------------------------------------- request handling */

static bool request_id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

static const char *method_label(const char *m)
{
	static const char *const known[] = { "GET", "HEAD", "POST", "PUT", "DELETE",
					     "PATCH", "OPTIONS" };
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (!strcmp(m, known[i]))
			return known[i];
	return "OTHER";
}

static struct srv_req *req_new(struct tk_server *srv, struct MHD_Connection *conn,
			       const char *method)
{
	struct srv_req *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->srv = srv;
	r->conn = conn;
	r->start_ns = tk_time_mono_ns();
	r->method_label = method_label(method);
	snprintf(r->method, sizeof r->method, "%s", r->method_label);
	r->route_label = "unmatched";
	tk_buf_init(&r->body, srv->opts.max_body_bytes);
	const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-ID");
	if (srv->opts.trust_request_id && rid && request_id_ok(rid))
		snprintf(r->request_id, sizeof r->request_id, "%s", rid);
	else if (tk_id_new(r->request_id) < 0)
		snprintf(r->request_id, sizeof r->request_id, "unknown");
	tk_gauge_add(srv->m.in_flight, 1);
	atomic_fetch_add(&srv->n_inflight, 1);
	return r;
}

static enum MHD_Result handle(struct tk_server *srv, bool metrics_daemon,
			      struct MHD_Connection *conn, const char *url, const char *method,
			      const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct srv_req *r = *con_cls;

	if (!r) {
		r = req_new(srv, conn, method);
		if (!r)
			return MHD_NO;
		*con_cls = r;
		r->on_metrics_daemon = metrics_daemon;
		/* CORS preflight, only when an origin is configured. */
		if (srv->cors_origin && !strcmp(method, "OPTIONS")) {
			r->route_label = "preflight";
			struct MHD_Response *resp =
				MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
			if (resp) {
				MHD_add_response_header(resp, "Access-Control-Allow-Methods",
							"GET, POST, PUT");
				MHD_add_response_header(resp, "Access-Control-Allow-Headers",
							"X-API-Key, Authorization, Content-Type, "
							"Last-Event-ID, X-Request-ID");
				MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
			}
			return queue(r, 204, resp, 0, NULL);
		}
		bool path_known = false;
		if (!srv_route_match(r, url, &path_known, r->allow, sizeof r->allow)) {
			if (path_known)
				return srv_send_error(r, 405, "method_not_allowed",
						      "method %s not allowed here", r->method_label);
			return srv_send_error(r, 404, "not_found", "no such endpoint");
		}
		/* Refuse an announced oversize body before reading any of it (and
		 * before "100 Continue" is sent). */
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     "Content-Length");
		if (cl) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(cl, &end, 10);
			if (errno || end == cl || n > srv->opts.max_body_bytes)
				return srv_send_error(r, 413, "too_large",
						      "request body larger than %zu bytes",
						      srv->opts.max_body_bytes);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (r->responded)
			return MHD_YES;
		if (!r->body_too_large && tk_buf_append(&r->body, upload_data, n) == 0)
			return MHD_YES;
		/* Past the cap (a chunked body has no Content-Length to refuse up
		 * front). A client that sends a little too much gets a clean 413
		 * at the end of its body: most clients do not read an answer
		 * while still sending. Past twice the cap we answer at once and
		 * MHD closes the connection: an endless body must not hold it. */
		r->body_too_large = true;
		r->discarded_bytes += n;
		if (r->discarded_bytes > srv->opts.max_body_bytes)
			return srv_send_error(r, 413, "too_large",
					      "request body larger than %zu bytes",
					      srv->opts.max_body_bytes);
		return MHD_YES;
	}
	if (r->responded)
		return MHD_YES;
	if (r->state == RS_WAIT)
		return srv_wait_resume(r);
	if (r->body_too_large)
		return srv_send_error(r, 413, "too_large", "request body larger than %zu bytes",
				      srv->opts.max_body_bytes);
	return srv_route_dispatch(r);
}

/* Runs handle() with the request id as a log context field of this pool
 * thread (every line a handler writes, and a crash report, carries it). */
static enum MHD_Result handle_ctx(struct tk_server *srv, bool metrics_daemon,
				  struct MHD_Connection *conn, const char *url, const char *method,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	if (*con_cls)
		tk_log_ctx_set("request_id", ((struct srv_req *)*con_cls)->request_id);
	enum MHD_Result ret = handle(srv, metrics_daemon, conn, url, method, upload_data,
				     upload_data_size, con_cls);
	tk_log_ctx_set("request_id", NULL);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)version;
	return handle_ctx(cls, false, conn, url, method, upload_data, upload_data_size, con_cls);
}

static enum MHD_Result on_metrics_request(void *cls, struct MHD_Connection *conn,
					  const char *url, const char *method,
					  const char *version, const char *upload_data,
					  size_t *upload_data_size, void **con_cls)
{
	(void)version;
	return handle_ctx(cls, true, conn, url, method, upload_data, upload_data_size, con_cls);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)conn;
	struct tk_server *srv = cls;
	struct srv_req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	double dur = (double)(tk_time_mono_ns() - r->start_ns) / 1e9;
	char code[8];
	snprintf(code, sizeof code, "%u", r->status ? r->status : 0);
	tk_counter_inc(tk_metric_series(srv->m.requests, (const char *[]){ r->route_label,
									  r->method_label, code }));
	tk_hist_observe(tk_metric_series(srv->m.duration,
					 (const char *[]){ r->route_label, r->method_label }),
			dur);
	tk_gauge_add(srv->m.in_flight, -1);
	atomic_fetch_sub(&srv->n_inflight, 1);
	/* One access line per request; the key id identifies the caller, the
	 * key itself never reaches a log. */
	tk_logf(TK_LOG_INFO, "http",
		TK_FIELDS(TK_LF_S("request_id", r->request_id), TK_LF_S("method", r->method_label),
			  TK_LF_S("route", r->route_label), TK_LF_I("status", r->status),
			  TK_LF_I("bytes", r->bytes), TK_LF_D("duration_ms", dur * 1000.0),
			  TK_LF_S("key_id", r->authed ? r->key.id : NULL),
			  TK_LF_B("completed", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)),
		"request");
	sse_free(r->sse);
	tk_buf_free(&r->body);
	free(r);
}

__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	tk_log(TK_LOG_WARNING, "http", "libmicrohttpd: %s", msg);
}

/* ------------------------------------------------------------ metrics */

static int metrics_register(struct tk_server *srv)
{
	struct srv_metrics *m = &srv->m;
	static const double dur_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
					      0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
	static const double task_buckets[] = { 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300,
					       600, 1800, 3600 };
	m->requests = tk_metric_counter(NULL, "tanuki_http_requests_total",
					"HTTP requests by route template, method and status code",
					(const char *[]){ "route", "method", "code" }, 3);
	m->duration = tk_metric_histogram(NULL, "tanuki_http_request_duration_seconds",
					  "HTTP request duration until the response is sent",
					  (const char *[]){ "route", "method" }, 2, dur_buckets,
					  sizeof dur_buckets / sizeof dur_buckets[0]);
	m->auth_failures = tk_metric_counter(NULL, "tanuki_http_auth_failures_total",
					     "Requests refused by authentication or role",
					     (const char *[]){ "reason" }, 1);
	m->rate_limited = tk_metric_counter(NULL, "tanuki_http_rate_limited_total",
					    "Requests refused by the rate limiter (429)",
					    (const char *[]){ "class" }, 1);
	m->tasks_total = tk_metric_counter(NULL, "tanuki_tasks_total",
					   "Tasks that reached a final status, by outcome",
					   (const char *[]){ "outcome" }, 1);
	m->task_duration = tk_metric_histogram(NULL, "tanuki_task_duration_seconds",
					       "Run time of tasks from claim to final status",
					       (const char *[]){ "outcome" }, 1, task_buckets,
					       sizeof task_buckets / sizeof task_buckets[0]);
	m->rejected = tk_metric_counter(NULL, "tanuki_tasks_rejected_total",
					"Task submissions refused (queue full, draining)",
					(const char *[]){ "reason" }, 1);
	struct tk_metric *in_flight = tk_metric_gauge(NULL, "tanuki_http_requests_in_flight",
						      "HTTP requests being handled", NULL, 0);
	struct tk_metric *qd = tk_metric_gauge(NULL, "tanuki_tasks_queue_depth",
					       "Tasks waiting in the queue", NULL, 0);
	struct tk_metric *run = tk_metric_gauge(NULL, "tanuki_tasks_in_flight",
						"Tasks being run by this process", NULL, 0);
	struct tk_metric *qw = tk_metric_histogram(NULL, "tanuki_task_queue_wait_seconds",
						   "Time tasks spent queued before a worker took them",
						   NULL, 0, task_buckets,
						   sizeof task_buckets / sizeof task_buckets[0]);
	struct tk_metric *sub = tk_metric_counter(NULL, "tanuki_tasks_submitted_total",
						  "Tasks accepted by POST /run_task", NULL, 0);
	struct tk_metric *dr = tk_metric_gauge(NULL, "tanuki_server_draining",
					       "1 while the server refuses new tasks", NULL, 0);
	struct tk_metric *sse = tk_metric_gauge(NULL, "tanuki_sse_streams",
						"Open Server-Sent Events streams", NULL, 0);
	if (!m->requests || !m->duration || !m->auth_failures || !m->rate_limited ||
	    !m->tasks_total || !m->task_duration || !m->rejected || !in_flight || !qd || !run ||
	    !qw || !sub || !dr || !sse)
		return tk_err_wrap(TK_EINVAL, "server metrics");
	m->in_flight = tk_metric_solo(in_flight);
	m->queue_depth = tk_metric_solo(qd);
	m->running = tk_metric_solo(run);
	m->queue_wait = tk_metric_solo(qw);
	m->submitted = tk_metric_solo(sub);
	m->draining = tk_metric_solo(dr);
	m->sse_streams = tk_metric_solo(sse);
	return 0;
}

/* ---------------------------------------------------------- life cycle */

struct tk_server *tk_server_new(const struct tk_server_opts *opts, struct tk_store *store,
				struct tk_task_runner *runner)
{
	if (!opts || !store || !runner || !runner->run) {
		tk_errf(TK_EINVAL, "server: opts, store and runner are required");
		return NULL;
	}
	if (opts->workers < 1 || opts->workers > 1024 || opts->http_threads < 1 ||
	    opts->http_threads > 256 || opts->queue_max < 1 || opts->max_connections < 1 ||
	    opts->sse_heartbeat_ms < 10) {
		tk_errf(TK_EINVAL, "server: workers 1..1024, http_threads 1..256, queue_max >= 1, "
			"max_connections >= 1, sse_heartbeat_ms >= 10");
		return NULL;
	}
	struct tk_server *srv = calloc(1, sizeof *srv);
	if (!srv) {
		tk_errf(TK_ENOMEM, "server: out of memory");
		return NULL;
	}
	srv->opts = *opts;
	srv->store = store;
	if ((opts->cors_origin && !(srv->cors_origin = strdup(opts->cors_origin))) ||
	    (opts->addr_file && !(srv->addr_file = strdup(opts->addr_file)))) {
		tk_errf(TK_ENOMEM, "server: out of memory");
		goto fail;
	}
	srv->opts.cors_origin = srv->cors_origin;
	srv->opts.addr_file = srv->addr_file;
	srv->rl = tk_ratelimit_new(opts->limits, opts->rl_max_buckets ? opts->rl_max_buckets : 10000);
	if (!srv->rl)
		goto fail;
	if (metrics_register(srv) < 0)
		goto fail_rl;
	srv->n_workers = opts->workers;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&srv->q_mu, NULL);
	pthread_cond_init(&srv->q_cv, &ca);
	pthread_cond_init(&srv->idle_cv, &ca);
	pthread_mutex_init(&srv->hub_mu, NULL);
	pthread_cond_init(&srv->tick_cv, &ca);
	pthread_condattr_destroy(&ca);
	srv->runner = *runner;
	memset(runner, 0, sizeof *runner);
	return srv;
fail_rl:
	tk_ratelimit_free(srv->rl);
fail:
	free(srv->cors_origin);
	free(srv->addr_file);
	free(srv);
	return NULL;
}

int tk_server_port(const struct tk_server *srv)
{
	return atomic_load(&((struct tk_server *)srv)->port);
}

bool tk_server_draining(const struct tk_server *srv)
{
	return atomic_load(&((struct tk_server *)srv)->draining);
}

void tk_server_begin_drain(struct tk_server *srv)
{
	if (!atomic_exchange(&srv->draining, true)) {
		tk_gauge_set(srv->m.draining, 1);
		tk_log(TK_LOG_INFO, "server", "draining: no new tasks accepted");
		workers_kick(srv);
	}
}

int tk_server_reload(struct tk_server *srv, const struct tk_server_opts *opts)
{
	int rc = tk_ratelimit_configure(srv->rl, opts->limits);
	if (rc < 0)
		return rc;
	memcpy(srv->opts.limits, opts->limits, sizeof srv->opts.limits);
	return 0;
}

static int resolve_listen(const char *host, int port_num, struct sockaddr_storage *ss)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char port[16];
	snprintf(port, sizeof port, "%d", port_num);
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai || !res)
		return tk_errf(TK_EINVAL, "listen: cannot resolve '%s': %s", host,
			       gai_strerror(gai));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static int write_addr_file(struct tk_server *srv)
{
	if (!srv->addr_file)
		return 0;
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", srv->addr_file);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return tk_errf_sys(TK_EIO, errno, "addr file %s", tmp);
	bool v6 = strchr(srv->opts.listen_host, ':') != NULL;
	fprintf(f, "%s%s%s:%d\n", v6 ? "[" : "", srv->opts.listen_host, v6 ? "]" : "",
		tk_server_port(srv));
	if (srv->mhd_metrics) {
		bool m6 = strchr(srv->opts.metrics_host, ':') != NULL;
		fprintf(f, "%s%s%s:%d\n", m6 ? "[" : "", srv->opts.metrics_host, m6 ? "]" : "",
			tk_server_metrics_port(srv));
	}
	if (fclose(f) != 0 || rename(tmp, srv->addr_file) != 0)
		return tk_errf_sys(TK_EIO, errno, "addr file %s", srv->addr_file);
	return 0;
}

/* /metrics on its own address: one thread, no suspension, same limits. */
static int start_metrics_daemon(struct tk_server *srv)
{
	struct sockaddr_storage ss;
	int rc = resolve_listen(srv->opts.metrics_host, srv->opts.metrics_port, &ss);
	if (rc < 0)
		return rc;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	srv->mhd_metrics = MHD_start_daemon(
		flags, 0, NULL, NULL, on_metrics_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, /* first: see MHD's docs */
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_CONNECTION_LIMIT, 64u,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->opts.connection_timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)srv->opts.header_memory_bytes,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_END);
	if (!srv->mhd_metrics)
		return tk_errf(TK_EIO, "server: cannot listen for metrics on %s:%d",
			       srv->opts.metrics_host, srv->opts.metrics_port);
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(srv->mhd_metrics, MHD_DAEMON_INFO_BIND_PORT);
	atomic_store(&srv->metrics_port, di ? (int)di->port : srv->opts.metrics_port);
	return 0;
}

int tk_server_metrics_port(const struct tk_server *srv)
{
	return atomic_load(&((struct tk_server *)srv)->metrics_port);
}

int tk_server_start(struct tk_server *srv)
{
	if (srv->started)
		return tk_errf(TK_ESTATE, "server: already started");
	struct tk_store_recovery rec = { 0 };
	int rc = tk_store_recover_at_startup(srv->store, &rec);
	if (rc < 0)
		return tk_err_wrap(rc, "server: recovery");
	if (rec.requeued || rec.failed)
		tk_logf(TK_LOG_WARNING, "server",
			TK_FIELDS(TK_LF_I("requeued", rec.requeued), TK_LF_I("failed", rec.failed)),
			"recovered tasks left running by a previous process");
	int64_t queued = 0;
	if ((rc = tk_store_task_count(srv->store, NULL, true, TK_TASK_QUEUED, &queued)) < 0)
		return rc;
	srv->queued = queued;
	tk_gauge_set(srv->m.queue_depth, (double)queued);

	struct sockaddr_storage ss;
	if ((rc = resolve_listen(srv->opts.listen_host, srv->opts.port, &ss)) < 0)
		return rc;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	srv->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, /* first: see MHD's docs */
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)srv->opts.http_threads,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->opts.max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->opts.connection_timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)srv->opts.header_memory_bytes,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_END);
	if (!srv->mhd)
		return tk_errf(TK_EIO, "server: cannot listen on %s:%d (in use, or not a local "
			       "address?)", srv->opts.listen_host, srv->opts.port);
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
	atomic_store(&srv->port, di ? (int)di->port : srv->opts.port);
	if (srv->opts.metrics_host[0] && (rc = start_metrics_daemon(srv)) < 0) {
		MHD_stop_daemon(srv->mhd);
		srv->mhd = NULL;
		return rc;
	}
	srv->start_ns = tk_time_mono_ns();
	srv->started = true;

	if ((rc = workers_start(srv)) < 0 || (rc = hub_start_ticker(srv)) < 0)
		goto fail;
	if ((rc = write_addr_file(srv)) < 0)
		goto fail;
	tk_logf(TK_LOG_INFO, "server",
		TK_FIELDS(TK_LF_S("host", srv->opts.listen_host), TK_LF_I("port", tk_server_port(srv)),
			  TK_LF_I("workers", srv->n_workers), TK_LF_S("runner", srv->runner.name),
			  TK_LF_I("queued", queued)),
		"listening");
	return 0;
fail:
	tk_server_shutdown(srv, 0);
	return rc;
}

int tk_server_shutdown(struct tk_server *srv, double grace_s)
{
	if (!srv->started || srv->stopped)
		return 0;
	srv->stopped = true;
	tk_server_begin_drain(srv);
	tk_logf(TK_LOG_INFO, "server", TK_FIELDS(TK_LF_D("grace_s", grace_s)), "shutting down");
	int rc = workers_stop(srv, (int64_t)(grace_s * 1e9));
	atomic_store(&srv->stopping, true);
	hub_close(srv);
	hub_stop_ticker(srv);
	/* Resumed waits and event streams now answer or send their last events;
	 * give them up to 2 s to go out before the daemon closes connections. */
	int64_t until = tk_time_mono_ns() + 2000000000LL;
	while (atomic_load(&srv->n_inflight) > 0 && tk_time_mono_ns() < until) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (srv->mhd) {
		MHD_stop_daemon(srv->mhd);
		srv->mhd = NULL;
	}
	if (srv->mhd_metrics) {
		MHD_stop_daemon(srv->mhd_metrics);
		srv->mhd_metrics = NULL;
	}
	tk_log(TK_LOG_INFO, "server", "stopped");
	return rc;
}

void tk_server_free(struct tk_server *srv)
{
	if (!srv)
		return;
	tk_server_shutdown(srv, 0);
	if (srv->runner.free)
		srv->runner.free(srv->runner.ctx);
	tk_ratelimit_free(srv->rl);
	free(srv->slots);
	free(srv->workers);
	pthread_mutex_destroy(&srv->q_mu);
	pthread_cond_destroy(&srv->q_cv);
	pthread_cond_destroy(&srv->idle_cv);
	pthread_mutex_destroy(&srv->hub_mu);
	pthread_cond_destroy(&srv->tick_cv);
	free(srv->cors_origin);
	free(srv->addr_file);
	free(srv);
}
