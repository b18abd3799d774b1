/*
 * runner.h — the task-runner seam: how the server's worker pool hands a
 * claimed task to whatever does the work.
 *
 * Two runners ship: "orchestrator" (runner_orch.h: the agents, the default)
 * and "noop" (runner_noop.c, for tests and benchmarks), which emits a few
 * progress events, waits a configurable delay and completes with an echo of
 * the request.
 *
 * Contract for run():
 *   - called on a worker thread, one task per call; several calls may run at
 *     once on different threads with the same ctx, so ctx must be
 *     thread-safe (or read-only);
 *   - io and everything it points to are borrowed for the call;
 *   - the runner reports progress with io->emit() (each call becomes a
 *     stored task event and reaches SSE clients); the first emitted event
 *     marks "work has started" for crash recovery (store.h);
 *   - it polls tk_runner_should_stop(io) at least every ~100 ms while
 *     working, and returns soon after it turns true (cancel, deadline or
 *     server shutdown — the worker knows which and picks the final status);
 *   - it returns 0 with *result_json (malloc'd JSON object text, ownership
 *     transferred; may be NULL) for success, or a negative TK_E* code with
 *     *error (malloc'd text, transferred; may be NULL, then the error detail
 *     is used) for failure. Output files go through io->put_file().
 * A result object may carry "result" (string, shown as TaskResponse.result),
 * "tests" and "usage" (any JSON), which the API passes through.
 *
 * A runner that needs the request reads io->task->request_json (TaskRequest
 * without `files` and `wait`); the input files are in the store
 * (tk_store_file_list(..., TK_FILE_INPUT)), so it keeps the store in its ctx
 * (runner_orch.c does). A result JSON returned with an error code is stored
 * too (partial results), and TK_ETIMEOUT ends the task timed_out (workers.c).
 */
#ifndef TK_SERVER_RUNNER_H
#define TK_SERVER_RUNNER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* Why a running task is asked to stop (io->stop). */
enum tk_runner_stop {
	TK_STOP_NONE = 0,
	TK_STOP_CANCEL,   /* client asked: final status cancelled */
	TK_STOP_DEADLINE, /* per-task deadline passed: timed_out */
	TK_STOP_SHUTDOWN, /* server draining past its grace period */
};

struct tk_runner_io {
	const struct tk_task *task; /* the claimed task (status running) */
	/* Appends an event (type: [a-z0-9_.-]{1,64}; data_json: JSON text or
	 * NULL) to the task and wakes its SSE streams. 0 or TK_E*. */
	int (*emit)(struct tk_runner_io *io, const char *type, const char *data_json);
	/* Stores an output file of the task. 0 or TK_E*. */
	int (*put_file)(struct tk_runner_io *io, const char *path, const void *content,
			size_t size);
	_Atomic int stop;           /* enum tk_runner_stop; set by the server */
	void *priv;                 /* the server's; runners leave it alone */
};

static inline bool tk_runner_should_stop(struct tk_runner_io *io)
{
	return atomic_load_explicit(&io->stop, memory_order_relaxed) != TK_STOP_NONE;
}

struct tk_task_runner {
	const char *name; /* "noop", "orchestrator", ... (static string) */
	void *ctx;        /* owned by the runner; released by free() */
	int (*run)(void *ctx, struct tk_runner_io *io, char **result_json, char **error);
	/* Whether the runner can take work now (for /readyz); NULL = always. */
	bool (*ready)(void *ctx);
	void (*free)(void *ctx); /* NULL ok */
};

/* Options of the noop runner. */
struct tk_noop_opts {
	int64_t delay_ms; /* total time a task takes; default 0 */
	int events;       /* progress events per task; default 3 */
};

/* Fills *r with the noop runner. Besides the options, a task description may
 * carry test directives, each a word of its own:
 *   "noop:delay_ms=N"  this task takes N ms instead of opts->delay_ms;
 *   "noop:fail"        this task fails with the error "noop: asked to fail".
 * The result is {"result": "noop: <first 200 bytes of the description>",
 * "tests": null, "usage": {"events": N}} and one output file
 * "NOOP_RESULT.txt" holding the description. 0 or TK_ENOMEM. */
int tk_runner_noop_init(struct tk_task_runner *r, const struct tk_noop_opts *opts);

#endif
