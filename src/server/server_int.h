/*
 * server_int.h — private structures shared by the server's .c files
 * (http.c, routes.c, workers.c, hub.c, sse.c). Not for other modules.
 *
 * Locks, always taken in this order when nested: q_mu, then hub_mu; MHD's
 * own locks come last (MHD_suspend/resume are called with hub_mu held).
 * No MHD callback takes hub_mu except through hub_suspend().
 */
#ifndef TK_SERVER_SERVER_INT_H
#define TK_SERVER_SERVER_INT_H

#include "core/buf.h"
#include "obs/metrics.h"
#include "server/server.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

struct srv_req;

#define HUB_SLOTS 256 /* per-task notification generations, hashed */

/* A suspended connection waiting for a task to change or a timer. */
struct srv_waiter {
	struct srv_waiter *prev, *next; /* in srv->waiters; guarded by hub_mu */
	struct srv_req *req;
	char task_id[TK_ID_LEN];
	int64_t deadline_ns;            /* resumed at this monotonic time at the latest */
	bool linked;                    /* guarded by hub_mu */
};

/* One worker's current task; guarded by q_mu. */
struct srv_slot {
	bool active;
	char task_id[TK_ID_LEN];
	int64_t deadline_ns;       /* monotonic; 0 = none */
	struct tk_runner_io *io;   /* valid while active */
};

struct srv_metrics {
	struct tk_metric *requests;      /* route, method, code */
	struct tk_metric *duration;      /* route, method */
	struct tk_metric *auth_failures; /* reason */
	struct tk_metric *rate_limited;  /* class */
	struct tk_metric *tasks_total;   /* outcome */
	struct tk_metric *task_duration; /* outcome */
	struct tk_metric *rejected;      /* reason */
	struct tk_series *in_flight, *queue_depth, *running, *queue_wait, *submitted,
		*draining, *sse_streams;
};

struct tk_server {
	struct tk_server_opts opts;  /* copy; string pointers below */
	char *cors_origin, *addr_file;
	struct tk_store *store;      /* borrowed */
	struct tk_task_runner runner; /* owned */
	struct tk_ratelimit *rl;
	struct MHD_Daemon *mhd;
	struct MHD_Daemon *mhd_metrics; /* NULL unless opts.metrics_host is set */
	_Atomic int port, metrics_port;
	atomic_int n_inflight;       /* requests between req_new and on_completed */
	atomic_bool draining;
	atomic_bool stopping;        /* workers and ticker exit */
	bool started, stopped;       /* life cycle; the driving thread only */
	int64_t start_ns;

	pthread_mutex_t q_mu;
	pthread_cond_t q_cv;         /* work may be available / stopping */
	pthread_cond_t idle_cv;      /* a worker finished a task */
	int64_t queued;              /* tasks queued, plus places reserved by
	                                submissions in progress; guarded by q_mu */
	int64_t reserving;           /* reservations not yet stored; guarded by q_mu */
	unsigned n_running;          /* guarded by q_mu */
	unsigned n_workers;
	pthread_t *workers;
	unsigned n_workers_alive;    /* guarded by q_mu */
	struct srv_slot *slots;      /* n_workers; guarded by q_mu */

	pthread_mutex_t hub_mu;
	struct srv_waiter *waiters;  /* guarded by hub_mu */
	uint64_t hub_gen;            /* bumped on every notify; guarded by hub_mu */
	uint64_t hub_slot_gen[HUB_SLOTS]; /* hub_gen of the last notify of a task
	                                hashing to each slot; guarded by hub_mu */
	bool hub_closed;             /* no more suspensions; guarded by hub_mu */
	pthread_t ticker;
	pthread_cond_t tick_cv;      /* with hub_mu */
	bool ticker_started;

	struct srv_metrics m;
};

enum srv_req_state { RS_NEW = 0, RS_WAIT, RS_DONE };

struct srv_route;

struct srv_req {
	struct tk_server *srv;
	struct MHD_Connection *conn;
	bool on_metrics_daemon;        /* arrived on the separate metrics address */
	const struct srv_route *route; /* NULL: no route matched */
	const char *route_label;       /* template for logs/metrics */
	const char *method_label;
	char method[8];
	char path_id[TK_ID_LEN];       /* the {id} of the path, when the route has one */
	char request_id[65];
	char allow[64];                /* Allow header of a 405 */
	int64_t start_ns;
	struct tk_buf body;
	bool body_too_large;
	size_t discarded_bytes;        /* body bytes dropped past the cap */
	enum srv_req_state state;

	bool authed;
	struct tk_api_key key;         /* valid when authed */

	unsigned status;               /* of the queued response */
	uint64_t bytes;                /* response body bytes */
	bool responded;

	/* RS_WAIT: answer with the task when it ends or at wait_deadline_ns */
	char task_id[TK_ID_LEN];
	int64_t wait_deadline_ns;
	int retry_after_s;             /* Retry-After of a 429; 0 = the default */
	struct srv_waiter waiter;

	struct srv_sse *sse;           /* SSE stream state, owned */
};

/* ---- http.c: responses */
enum MHD_Result srv_send_json(struct srv_req *r, unsigned status, json_t *body); /* takes body */
enum MHD_Result srv_send_error(struct srv_req *r, unsigned status, const char *code,
			       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
enum MHD_Result srv_send_text(struct srv_req *r, unsigned status, const char *ctype,
			      char *text, size_t len); /* takes text (malloc'd) */
void srv_add_common_headers(struct srv_req *r, struct MHD_Response *resp);
/* Maps a TK_E* from the store to a response (404 for ENOENT, ...). */
enum MHD_Result srv_send_store_error(struct srv_req *r, int rc, const char *what);

/* ---- routes.c */
/* Finds the route for method+url; sets r->route, route_label, path_id.
 * Returns false when nothing matches; *path_known says whether another
 * method would have matched (405) and allow gets the allowed methods. */
bool srv_route_match(struct srv_req *r, const char *url, bool *path_known, char *allow,
		     size_t allow_cap);
/* Runs the matched route (auth, rate limit, handler). */
enum MHD_Result srv_route_dispatch(struct srv_req *r);
/* Called when a suspended wait resumes. */
enum MHD_Result srv_wait_resume(struct srv_req *r);
/* Builds the TaskResponse of t (files when with_files). NULL on ENOMEM. */
json_t *srv_task_response(struct tk_server *srv, const struct tk_task *t, bool with_files);

/* ---- hub.c: suspended connections */
/* Suspends r's connection until task_id is notified or deadline_ns passes,
 * unless task_id (or, rarely, a task sharing its hash slot) was notified
 * after *seen_gen (then returns false and updates *seen_gen: read again).
 * Call only from an MHD access handler or content reader of r. */
bool hub_suspend(struct tk_server *srv, struct srv_req *r, const char *task_id,
		 int64_t deadline_ns, uint64_t *seen_gen);
uint64_t hub_gen(struct tk_server *srv);
/* Resumes every connection waiting on task_id. Any thread. */
void hub_notify(struct tk_server *srv, const char *task_id);
/* Resumes everything and refuses further suspensions. */
void hub_close(struct tk_server *srv);
int hub_start_ticker(struct tk_server *srv);
void hub_stop_ticker(struct tk_server *srv);

/* ---- workers.c */
int workers_start(struct tk_server *srv);
/* Asks running tasks to stop with reason, wakes everyone, joins. */
int workers_stop(struct tk_server *srv, int64_t wait_ns);
/* Wakes a worker: a task was queued. */
void workers_kick(struct tk_server *srv);
/* Asks the local worker running task_id to stop (cancel). True if found. */
bool workers_cancel(struct tk_server *srv, const char *task_id);
/* Sets TK_STOP_DEADLINE on tasks past their deadline (ticker). */
void workers_check_deadlines(struct tk_server *srv, int64_t now_ns);
/* Queue accounting for submissions: reserve a queue place (false: full). */
bool workers_queue_reserve(struct tk_server *srv);
/* The reserved submission was stored (stored) or abandoned (!stored). */
void workers_queue_reserved_done(struct tk_server *srv, bool stored);
void workers_queue_release(struct tk_server *srv); /* a queued task left the queue */

/* ---- sse.c */
enum MHD_Result sse_start(struct srv_req *r, const char *task_id, int64_t after_seq);
void sse_free(struct srv_sse *s);

#endif
