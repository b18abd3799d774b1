/*
 * server.h — Tanuki's HTTP API server (DESIGN.md "HTTP API v1").
 *
 * Owns: the libmicrohttpd daemon (epoll, internal thread pool), routing,
 * auth (API keys from the store, roles user/admin), rate limits, request
 * validation, the task worker pool that hands claimed tasks to a
 * tk_task_runner, per-task deadlines and cancel, Server-Sent Events, the
 * probes and /metrics, and graceful drain. docs/http-api.md is the user's
 * manual; this header is the programmer's.
 *
 * Life cycle (one thread — usually main — drives it):
 *     tk_server_opts_default(&o); ...adjust o...
 *     srv = tk_server_new(&o, store, &runner);   // takes the runner
 *     tk_server_start(srv);                       // listening, workers up
 *     ...signals: tk_server_reload() on SIGHUP...
 *     tk_server_shutdown(srv, grace_s);           // drain, then stop
 *     tk_server_free(srv);
 *
 * Threads: the functions above must be called from one thread, in that order.
 * tk_server_begin_drain(), tk_server_port() and tk_server_draining() may be
 * called from any thread. Internally: MHD's pool threads run handlers; one
 * thread per worker runs tasks; one ticker thread fires deadlines, wait
 * timeouts and SSE heartbeats.
 *
 * Suspended requests: `wait` on POST /run_task and open SSE streams do not
 * hold a pool thread; the connection is suspended and resumed when the task
 * changes or a timer fires.
 */
#ifndef TK_SERVER_SERVER_H
#define TK_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/ratelimit.h"
#include "server/runner.h"
#include "server/taskreq.h"
#include "store/store.h"

struct tk_server_opts {
	char listen_host[256];      /* numeric IPv4/IPv6 or "localhost"; default "127.0.0.1" */
	int port;                   /* 0 = any free port (see tk_server_port); default 8080 */
	const char *addr_file;      /* when set, "HOST:PORT\n" is written here once listening */
	unsigned http_threads;      /* MHD pool threads; default 4 */
	unsigned max_connections;   /* open connections cap; default 256 */
	unsigned connection_timeout_s; /* idle/slow client cut-off; default 30 */
	size_t max_body_bytes;      /* request body cap (413); default 8 MiB */
	size_t header_memory_bytes; /* per-connection memory for request line +
	                               headers (MHD answers 431/413); default 32 KiB */
	unsigned workers;           /* task worker threads; default 2 */
	size_t queue_max;           /* queued tasks before 503; default 64 */
	int64_t task_timeout_ms;    /* per-task deadline; 0 = none; default 30 min */
	int sse_heartbeat_ms;       /* comment line on idle SSE streams; default 15000 */
	double retry_after_s;       /* Retry-After on 503s; default 5 */
	struct tk_rl_limit limits[TK_RL_N_]; /* default submit 5/min burst 5,
	                               read 600/min burst 120, admin 120/min burst 60,
	                               failed authentications 30/min burst 30 per
	                               client address (then 429 before any key check) */
	size_t rl_max_buckets;      /* default 10000 */
	char metrics_host[256];     /* "" (default): /metrics on the API port; else
	                               /metrics only, on its own address (no key) */
	int metrics_port;           /* with metrics_host */
	const char *cors_origin;    /* NULL (default) = no CORS headers at all; else
	                               that origin is allowed (and preflights answered) */
	bool trust_request_id;      /* pass a client's X-Request-ID through when it is
	                               1..64 bytes of [A-Za-z0-9._-]; default true */
	struct tk_taskreq_limits req; /* TaskRequest caps (taskreq.h defaults) */
};

void tk_server_opts_default(struct tk_server_opts *o);

/* Parses "HOST:PORT" or "[V6]:PORT" into o->listen_host/o->port.
 * 0 or TK_EINVAL. */
int tk_server_opts_set_listen(struct tk_server_opts *o, const char *hostport);
/* Same for the separate metrics address; "" keeps /metrics on the API port. */
int tk_server_opts_set_metrics_listen(struct tk_server_opts *o, const char *hostport);

struct tk_server;

/* A server over store (borrowed; must outlive the server) running tasks with
 * *runner (moved in: the server calls runner->free at tk_server_free; *runner
 * is zeroed). opts is copied (cors_origin and addr_file strings too). Also
 * registers the server's metrics in the default registry. NULL + detail. */
struct tk_server *tk_server_new(const struct tk_server_opts *opts, struct tk_store *store,
				struct tk_task_runner *runner);

/* Recovers tasks left running by a previous process (store), starts the
 * workers, the ticker and the HTTP daemon. 0 or TK_E* (TK_EIO: cannot bind). */
int tk_server_start(struct tk_server *srv);

/* The bound TCP port (useful with port 0); 0 before start. Any thread. */
int tk_server_port(const struct tk_server *srv);
/* The bound port of the metrics address; 0 when there is none. */
int tk_server_metrics_port(const struct tk_server *srv);

/* Stops accepting tasks: POST /run_task answers 503, /readyz fails, workers
 * take no new queued task (queued tasks stay queued in the store, for the
 * next start). Running tasks go on. Idempotent; any thread. */
void tk_server_begin_drain(struct tk_server *srv);
bool tk_server_draining(const struct tk_server *srv);

/* Applies the parts of opts that can change safely at run time: rate limits
 * (and the log level is the caller's). 0 or TK_EINVAL. */
int tk_server_reload(struct tk_server *srv, const struct tk_server_opts *opts);

/* Graceful stop: begin_drain, wait up to grace_s for running tasks, then ask
 * the rest to stop (they end failed with "server shutting down", or are put
 * back in the queue when their runner had not started), end SSE streams and
 * waits, stop HTTP. 0, or TK_ETIMEOUT if some worker would not stop (it is
 * then abandoned; the store's start-up recovery settles its task). */
int tk_server_shutdown(struct tk_server *srv, double grace_s);

/* Frees everything (stops first if still running, with grace 0). NULL ok. */
void tk_server_free(struct tk_server *srv);

#endif
