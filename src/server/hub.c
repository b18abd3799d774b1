/*
 * hub.c — suspended connections and the ticker thread.
 *
 * A request that must wait (POST /run_task with `wait`, POST cancel of a
 * running task, an SSE stream with nothing new to send) registers a waiter
 * and suspends its MHD connection, freeing the pool thread. Workers call
 * hub_notify() whenever a task gets an event; that resumes the connections
 * waiting on it. The ticker thread (20 Hz) resumes waiters whose deadline
 * passed (wait timeouts, SSE heartbeats) and flags running tasks past their
 * deadline.
 *
 * Race-free suspension: a handler reads the task's state, then calls
 * hub_suspend() with the hub generation it saw *before* reading. If that
 * task was notified in between, hub_suspend refuses and the handler reads
 * again, so no wake-up is ever lost. Notifications are remembered per hash
 * slot of the task id (HUB_SLOTS), so activity on other tasks does not
 * cause refusals (a collision only costs one more read). Owns the waiter
 * list (hub_mu).
 */
#include "server/server_int.h"

#include "core/err.h"
#include "core/time.h"
#include "obs/log.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define TICK_NS (50LL * 1000000LL)

static void unlink_waiter(struct tk_server *srv, struct srv_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		srv->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->linked = false;
}

static size_t slot_of(const char *task_id)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)task_id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % HUB_SLOTS;
}

uint64_t hub_gen(struct tk_server *srv)
{
	pthread_mutex_lock(&srv->hub_mu);
	uint64_t g = srv->hub_gen;
	pthread_mutex_unlock(&srv->hub_mu);
	return g;
}

bool hub_suspend(struct tk_server *srv, struct srv_req *r, const char *task_id,
		 int64_t deadline_ns, uint64_t *seen_gen)
{
	bool ok = false;
	pthread_mutex_lock(&srv->hub_mu);
	if (srv->hub_closed || srv->hub_slot_gen[slot_of(task_id)] > *seen_gen) {
		*seen_gen = srv->hub_gen;
		goto out;
	}
	struct srv_waiter *w = &r->waiter;
	w->req = r;
	snprintf(w->task_id, sizeof w->task_id, "%s", task_id);
	w->deadline_ns = deadline_ns;
	w->prev = NULL;
	w->next = srv->waiters;
	if (srv->waiters)
		srv->waiters->prev = w;
	srv->waiters = w;
	w->linked = true;
	/* Suspending under hub_mu: a resume (which also needs hub_mu) can only
	 * come after the suspension is complete. */
	MHD_suspend_connection(r->conn);
	ok = true;
out:
	pthread_mutex_unlock(&srv->hub_mu);
	return ok;
}

void hub_notify(struct tk_server *srv, const char *task_id)
{
	pthread_mutex_lock(&srv->hub_mu);
	srv->hub_gen++;
	srv->hub_slot_gen[slot_of(task_id)] = srv->hub_gen;
	struct srv_waiter *w = srv->waiters;
	while (w) {
		struct srv_waiter *next = w->next;
		if (!strcmp(w->task_id, task_id)) {
			unlink_waiter(srv, w);
			MHD_resume_connection(w->req->conn);
		}
		w = next;
	}
	pthread_mutex_unlock(&srv->hub_mu);
}

void hub_close(struct tk_server *srv)
{
	pthread_mutex_lock(&srv->hub_mu);
	srv->hub_closed = true;
	srv->hub_gen++;
	while (srv->waiters) {
		struct srv_waiter *w = srv->waiters;
		unlink_waiter(srv, w);
		MHD_resume_connection(w->req->conn);
	}
	pthread_cond_broadcast(&srv->tick_cv);
	pthread_mutex_unlock(&srv->hub_mu);
}

static void *ticker_main(void *arg)
{
	struct tk_server *srv = arg;
	pthread_mutex_lock(&srv->hub_mu);
	while (!atomic_load(&srv->stopping)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t wake = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + TICK_NS;
		ts.tv_sec = wake / 1000000000LL;
		ts.tv_nsec = wake % 1000000000LL;
		int rc = pthread_cond_timedwait(&srv->tick_cv, &srv->hub_mu, &ts);
		if (rc && rc != ETIMEDOUT)
			break;
		int64_t now = tk_time_mono_ns();
		struct srv_waiter *w = srv->waiters;
		while (w) {
			struct srv_waiter *next = w->next;
			if (w->deadline_ns <= now) {
				unlink_waiter(srv, w);
				MHD_resume_connection(w->req->conn);
			}
			w = next;
		}
		/* Deadlines need q_mu, which orders before hub_mu: drop ours. */
		pthread_mutex_unlock(&srv->hub_mu);
		workers_check_deadlines(srv, now);
		pthread_mutex_lock(&srv->hub_mu);
	}
	pthread_mutex_unlock(&srv->hub_mu);
	return NULL;
}

int hub_start_ticker(struct tk_server *srv)
{
	int rc = pthread_create(&srv->ticker, NULL, ticker_main, srv);
	if (rc)
		return tk_errf_sys(TK_EIO, rc, "server: cannot start the ticker thread");
	srv->ticker_started = true;
	return 0;
}

void hub_stop_ticker(struct tk_server *srv)
{
	if (!srv->ticker_started)
		return;
	pthread_mutex_lock(&srv->hub_mu);
	pthread_cond_broadcast(&srv->tick_cv);
	pthread_mutex_unlock(&srv->hub_mu);
	pthread_join(srv->ticker, NULL);
	srv->ticker_started = false;
}
