/*
 * workers.c — the task worker pool: claims queued tasks from the store,
 * hands each to the runner with an io block (emit, put_file, stop flag),
 * enforces the per-task deadline (through the ticker) and cancel, and stores
 * the final status. Owns the worker threads, their slots and the in-memory
 * count of queued tasks that bounds the queue (all under q_mu).
 *
 * Final status of a run (the runner's return code rc, the stop reason):
 *   rc == 0                      completed (even if a stop came too late)
 *   stop CANCEL                  cancelled
 *   stop DEADLINE                timed_out
 *   stop SHUTDOWN, no event yet  re-queued (it will run after the restart)
 *   stop SHUTDOWN                failed "server shutting down"
 *   rc == TK_ETIMEOUT            timed_out with the runner's error (its own
 *                                budget ran out, e.g. the orchestrator's)
 *   otherwise                    failed with the runner's error
 * A result JSON the runner returns is stored with every final status, not
 * only completed (partial results stay visible in GET /tasks/{id}); when it
 * cannot be stored the task still ends, without it.
 */
#include "server/server_int.h"

#include "core/err.h"
#include "core/time.h"
#include "obs/crash.h"
#include "obs/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct worker_io {
	struct tk_runner_io io;
	struct tk_server *srv;
	bool emitted; /* the runner appended at least one event */
};

static int io_emit(struct tk_runner_io *io, const char *type, const char *data_json)
{
	struct worker_io *w = (struct worker_io *)io;
	int rc = tk_store_event_append(w->srv->store, io->task->id, type, data_json, NULL);
	if (rc < 0)
		return rc;
	w->emitted = true;
	hub_notify(w->srv, io->task->id);
	return 0;
}

static int io_put_file(struct tk_runner_io *io, const char *path, const void *content,
		       size_t size)
{
	struct worker_io *w = (struct worker_io *)io;
	struct tk_file_in f = { .path = path, .content = content, .size = size };
	return tk_store_file_put(w->srv->store, io->task->id, TK_FILE_OUTPUT, &f);
}

bool workers_queue_reserve(struct tk_server *srv)
{
	bool ok = false;
	pthread_mutex_lock(&srv->q_mu);
	if (srv->queued < (int64_t)srv->opts.queue_max) {
		srv->queued++;
		srv->reserving++;
		ok = true;
	}
	tk_gauge_set(srv->m.queue_depth, (double)srv->queued);
	pthread_mutex_unlock(&srv->q_mu);
	return ok;
}

void workers_queue_reserved_done(struct tk_server *srv, bool stored)
{
	pthread_mutex_lock(&srv->q_mu);
	srv->reserving--;
	if (!stored && srv->queued > 0)
		srv->queued--;
	tk_gauge_set(srv->m.queue_depth, (double)srv->queued);
	pthread_mutex_unlock(&srv->q_mu);
}

void workers_queue_release(struct tk_server *srv)
{
	pthread_mutex_lock(&srv->q_mu);
	if (srv->queued > 0)
		srv->queued--;
	tk_gauge_set(srv->m.queue_depth, (double)srv->queued);
	pthread_mutex_unlock(&srv->q_mu);
}

void workers_kick(struct tk_server *srv)
{
	pthread_mutex_lock(&srv->q_mu);
	pthread_cond_signal(&srv->q_cv);
	pthread_mutex_unlock(&srv->q_mu);
}

bool workers_cancel(struct tk_server *srv, const char *task_id)
{
	bool found = false;
	pthread_mutex_lock(&srv->q_mu);
	for (unsigned i = 0; i < srv->n_workers; i++) {
		struct srv_slot *s = &srv->slots[i];
		if (s->active && !strcmp(s->task_id, task_id)) {
			int none = TK_STOP_NONE;
			atomic_compare_exchange_strong(&s->io->stop, &none, TK_STOP_CANCEL);
			found = true;
		}
	}
	pthread_mutex_unlock(&srv->q_mu);
	return found;
}

void workers_check_deadlines(struct tk_server *srv, int64_t now_ns)
{
	pthread_mutex_lock(&srv->q_mu);
	for (unsigned i = 0; i < srv->n_workers; i++) {
		struct srv_slot *s = &srv->slots[i];
		if (s->active && s->deadline_ns && now_ns >= s->deadline_ns) {
			int none = TK_STOP_NONE;
			atomic_compare_exchange_strong(&s->io->stop, &none, TK_STOP_DEADLINE);
		}
	}
	pthread_mutex_unlock(&srv->q_mu);
}

/* Seconds between the task's creation and now (wall clock), >= 0. */
static double since_created_s(const struct tk_task *t)
{
	int64_t created_ns;
	if (tk_time_parse_rfc3339(t->created, &created_ns) < 0)
		return 0;
	double d = (double)(tk_time_real_ns() - created_ns) / 1e9;
	return d > 0 ? d : 0;
}

static void finish_task(struct tk_server *srv, struct worker_io *w, int rc, char *result,
			char *error, int64_t t0_ns)
{
	const char *id = w->io.task->id;
	int stop = atomic_load(&w->io.stop);
	enum tk_task_status to;
	const char *err = NULL;
	char buf[256];
	bool requeue = false;

	if (rc == 0) {
		to = TK_TASK_COMPLETED;
	} else if (stop == TK_STOP_CANCEL) {
		to = TK_TASK_CANCELLED;
		err = "cancelled by request";
	} else if (stop == TK_STOP_DEADLINE) {
		to = TK_TASK_TIMED_OUT;
		snprintf(buf, sizeof buf, "deadline of %lld ms passed",
			 (long long)w->io.task->timeout_ms);
		err = buf;
	} else if (stop == TK_STOP_SHUTDOWN) {
		to = TK_TASK_FAILED;
		err = "server shutting down";
		requeue = !w->emitted;
	} else {
		to = rc == TK_ETIMEOUT ? TK_TASK_TIMED_OUT : TK_TASK_FAILED;
		err = error ? error : (*tk_err_detail() ? tk_err_detail() : tk_strerror(rc));
	}

	int src;
	if (requeue) {
		src = tk_store_task_requeue(srv->store, id, "server shutting down");
		if (src == 0) {
			pthread_mutex_lock(&srv->q_mu);
			srv->queued++;
			tk_gauge_set(srv->m.queue_depth, (double)srv->queued);
			pthread_mutex_unlock(&srv->q_mu);
		}
	} else {
		src = tk_store_task_set_status(srv->store, id, to, result, err);
		if (src < 0 && to == TK_TASK_COMPLETED) {
			/* e.g. the result is over the store's cap: the task must
			 * still end, as failed with the reason. */
			char why[512];
			snprintf(why, sizeof why, "cannot store the result: %s", tk_err_detail());
			to = TK_TASK_FAILED;
			src = tk_store_task_set_status(srv->store, id, to, NULL, why);
		} else if (src < 0 && result) {
			/* the partial result of a failed task: end it without */
			src = tk_store_task_set_status(srv->store, id, to, NULL, err);
		}
	}
	if (src < 0)
		tk_logf(TK_LOG_ERROR, "server", TK_FIELDS(TK_LF_S("task_id", id)),
			"cannot store the end of the task: %s", tk_err_detail());
	const char *outcome = requeue ? "requeued" : tk_task_status_name(to);
	double dur = (double)(tk_time_mono_ns() - t0_ns) / 1e9;
	if (!requeue) {
		tk_counter_inc(tk_metric_series(srv->m.tasks_total, (const char *[]){ outcome }));
		tk_hist_observe(tk_metric_series(srv->m.task_duration, (const char *[]){ outcome }), dur);
	}
	tk_logf(TK_LOG_INFO, "server",
		TK_FIELDS(TK_LF_S("task_id", id), TK_LF_S("outcome", outcome),
			  TK_LF_D("duration_s", dur)),
		"task finished");
	hub_notify(srv, id);
}

static void run_one(struct tk_server *srv, unsigned slot_ix, struct tk_task *t)
{
	struct worker_io w = { .srv = srv };
	w.io.task = t;
	w.io.emit = io_emit;
	w.io.put_file = io_put_file;
	atomic_init(&w.io.stop, TK_STOP_NONE);
	int64_t t0 = tk_time_mono_ns();

	pthread_mutex_lock(&srv->q_mu);
	struct srv_slot *s = &srv->slots[slot_ix];
	s->active = true;
	snprintf(s->task_id, sizeof s->task_id, "%s", t->id);
	s->deadline_ns = t->timeout_ms > 0 ? t0 + t->timeout_ms * 1000000LL : 0;
	s->io = &w.io;
	/* A claim that raced with workers_stop(): its stop loop ran before this
	 * slot was active, so the flag is set here (both under q_mu). */
	if (atomic_load(&srv->stopping))
		atomic_store(&w.io.stop, TK_STOP_SHUTDOWN);
	srv->n_running++;
	tk_gauge_set(srv->m.running, (double)srv->n_running);
	pthread_mutex_unlock(&srv->q_mu);

	tk_log_ctx_set("task_id", t->id);
	tk_logf(TK_LOG_INFO, "server", TK_FIELDS(TK_LF_I("attempt", t->attempts)), "task started");
	hub_notify(srv, t->id); /* the "running" status event */
	char *result = NULL, *error = NULL;
	tk_err_clear();
	int rc = srv->runner.run(srv->runner.ctx, &w.io, &result, &error);
	finish_task(srv, &w, rc, result, error, t0);
	free(result);
	free(error);
	tk_log_ctx_set("task_id", NULL);

	pthread_mutex_lock(&srv->q_mu);
	s->active = false;
	s->io = NULL;
	srv->n_running--;
	tk_gauge_set(srv->m.running, (double)srv->n_running);
	pthread_cond_broadcast(&srv->idle_cv);
	pthread_mutex_unlock(&srv->q_mu);
}

struct worker_arg {
	struct tk_server *srv;
	unsigned ix;
};

static void *worker_main(void *arg)
{
	struct worker_arg a = *(struct worker_arg *)arg;
	free(arg);
	struct tk_server *srv = a.srv;
	/* Runners are where a crash is most likely: give this thread the
	 * alternate stack the crash handler needs to report it (obs/crash.h). */
	tk_crash_thread_init();
	for (;;) {
		pthread_mutex_lock(&srv->q_mu);
		while (!atomic_load(&srv->stopping) &&
		       (atomic_load(&srv->draining) || srv->queued - srv->reserving <= 0)) {
			/* Wake at least once a second: a task may be queued by
			 * another process or re-queued without a kick. */
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += 1;
			if (pthread_cond_timedwait(&srv->q_cv, &srv->q_mu, &ts) == ETIMEDOUT &&
			    !atomic_load(&srv->draining))
				break;
		}
		bool stop = atomic_load(&srv->stopping);
		pthread_mutex_unlock(&srv->q_mu);
		if (stop)
			break;
		if (atomic_load(&srv->draining))
			continue;

		struct tk_task t = { 0 };
		int rc = tk_store_task_claim_next(srv->store, &t);
		if (rc == TK_ENOENT) {
			/* Our count was high (e.g. a task cancelled elsewhere):
			 * resynchronise with the store, keeping the places of
			 * submissions in progress (one stored just now may be
			 * counted twice until the next resync: the safe side). */
			int64_t n = 0;
			if (tk_store_task_count(srv->store, NULL, true, TK_TASK_QUEUED, &n) == 0) {
				pthread_mutex_lock(&srv->q_mu);
				srv->queued = n + srv->reserving;
				tk_gauge_set(srv->m.queue_depth, (double)srv->queued);
				pthread_mutex_unlock(&srv->q_mu);
			}
			continue;
		}
		if (rc < 0) {
			tk_log(TK_LOG_ERROR, "server", "claim failed: %s", tk_err_detail());
			struct timespec ts = { 0, 200 * 1000000L };
			nanosleep(&ts, NULL);
			continue;
		}
		workers_queue_release(srv);
		tk_hist_observe(srv->m.queue_wait, since_created_s(&t));
		run_one(srv, a.ix, &t);
		tk_task_clear(&t);
	}
	tk_crash_thread_fini();
	pthread_mutex_lock(&srv->q_mu);
	srv->n_workers_alive--;
	pthread_cond_broadcast(&srv->idle_cv);
	pthread_mutex_unlock(&srv->q_mu);
	return NULL;
}

int workers_start(struct tk_server *srv)
{
	srv->workers = calloc(srv->n_workers, sizeof *srv->workers);
	srv->slots = calloc(srv->n_workers, sizeof *srv->slots);
	if (!srv->workers || !srv->slots)
		return tk_errf(TK_ENOMEM, "server: out of memory for workers");
	for (unsigned i = 0; i < srv->n_workers; i++) {
		struct worker_arg *a = malloc(sizeof *a);
		if (!a)
			return tk_errf(TK_ENOMEM, "server: out of memory for workers");
		*a = (struct worker_arg){ srv, i };
		pthread_mutex_lock(&srv->q_mu);
		srv->n_workers_alive++;
		pthread_mutex_unlock(&srv->q_mu);
		int rc = pthread_create(&srv->workers[i], NULL, worker_main, a);
		if (rc) {
			free(a);
			pthread_mutex_lock(&srv->q_mu);
			srv->n_workers_alive--;
			pthread_mutex_unlock(&srv->q_mu);
			srv->n_workers = i;
			return tk_errf_sys(TK_EIO, rc, "server: cannot start worker %u", i);
		}
	}
	return 0;
}

/* Waits on idle_cv until cond holds or the monotonic deadline passes. */
static bool wait_until_idle(struct tk_server *srv, int64_t deadline_ns, bool all_exited)
{
	pthread_mutex_lock(&srv->q_mu);
	for (;;) {
		bool done = all_exited ? srv->n_workers_alive == 0 : srv->n_running == 0;
		if (done || tk_time_mono_ns() >= deadline_ns) {
			pthread_mutex_unlock(&srv->q_mu);
			return done;
		}
		struct timespec ts;
		int64_t t = tk_time_mono_ns() + 100 * 1000000LL;
		if (t > deadline_ns)
			t = deadline_ns;
		ts.tv_sec = t / 1000000000LL;
		ts.tv_nsec = t % 1000000000LL;
		pthread_cond_timedwait(&srv->idle_cv, &srv->q_mu, &ts);
	}
}

int workers_stop(struct tk_server *srv, int64_t grace_ns)
{
	if (!srv->workers)
		return 0;
	int64_t now = tk_time_mono_ns();
	/* 1. Running tasks get the grace period to finish on their own. */
	wait_until_idle(srv, now + grace_ns, false);
	/* 2. The rest are asked to stop; no worker claims anything new. */
	pthread_mutex_lock(&srv->q_mu);
	atomic_store(&srv->stopping, true);
	for (unsigned i = 0; i < srv->n_workers; i++)
		if (srv->slots[i].active) {
			int none = TK_STOP_NONE;
			atomic_compare_exchange_strong(&srv->slots[i].io->stop, &none,
						       TK_STOP_SHUTDOWN);
		}
	pthread_cond_broadcast(&srv->q_cv);
	pthread_mutex_unlock(&srv->q_mu);
	/* 3. Runners poll their stop flag every ~100 ms; give them 10 s. */
	if (!wait_until_idle(srv, tk_time_mono_ns() + 10LL * 1000000000LL, true)) {
		tk_log(TK_LOG_ERROR, "server", "some workers did not stop; abandoning them");
		for (unsigned i = 0; i < srv->n_workers; i++)
			pthread_detach(srv->workers[i]);
		free(srv->workers);
		srv->workers = NULL;
		return tk_errf(TK_ETIMEOUT, "server: workers did not stop within 10 s");
	}
	for (unsigned i = 0; i < srv->n_workers; i++)
		pthread_join(srv->workers[i], NULL);
	free(srv->workers);
	srv->workers = NULL;
	return 0;
}
