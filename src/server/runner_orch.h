/*
 * runner_orch.h — the "orchestrator" task runner: the server's worker pool
 * running agent_run_task (src/agents/agents.h) on each claimed task.
 *
 * What one run does (runner_orch.c):
 *   - the task is the stored TaskRequest (io->task->request_json:
 *     task_description, context, language, test_command) plus its input
 *     files from the store (tk_store_file_list(..., TK_FILE_INPUT));
 *   - every orchestrator event becomes a stored task event (io->emit) of the
 *     same type, except the orchestrator's own "status" events, stored as
 *     "agent_status" (the store alone writes "status": its terminal one must
 *     be the last event of a task). An event over the store's size cap is
 *     stored reduced (long strings and nested values dropped, "truncated":
 *     true) rather than lost; a store failure is logged and does not stop
 *     the task;
 *   - stop requests are mirrored every 50 ms by a watcher thread:
 *     TK_STOP_CANCEL -> the orchestrator's cancel flag (outcome cancelled),
 *     TK_STOP_DEADLINE and TK_STOP_SHUTDOWN -> its deadline flag;
 *   - the changed files (added or modified) go to io->put_file, whatever the
 *     outcome (partial results stay visible), and the result JSON
 *     (agent_result_to_json) to *result_json, also whatever the outcome;
 *   - returns 0 for completed; otherwise a negative code with *error = the
 *     reason: TK_ETIMEOUT (timed_out: a budget or the deadline), TK_ECANCELED
 *     (cancelled), TK_EINVAL for a request the orchestrator refuses at
 *     ingress, TK_EIO ... for host trouble, and TK_ELIMIT ("failed") for a
 *     task that gave up. The worker (workers.c) stores the result JSON for
 *     every final status and maps TK_ETIMEOUT to timed_out.
 *
 * Ownership: everything in the options is borrowed and must outlive the
 * runner (cmd_serve.c builds the backend, team, settings and profiles and
 * frees them after tk_server_free and the runner's free()). The runner owns
 * its ctx and a probe thread (readiness), both released by free().
 *
 * Threads: run() may be called on any number of worker threads at once (the
 * orchestrator shares the backend, team, settings and profiles read-only);
 * ready() on any thread.
 */
#ifndef TK_SERVER_RUNNER_ORCH_H
#define TK_SERVER_RUNNER_ORCH_H

#include <stdint.h>

#include "agents/agents.h"
#include "server/runner.h"

struct tk_orch_runner_opts {
	struct llm_backend *llm;                       /* required */
	const struct agent_team *team;                 /* required */
	const struct agent_settings *settings;         /* required */
	const struct tk_sandbox_profiles *profiles;    /* required */
	const struct tk_sandbox_options *sandbox_opts; /* NULL: defaults */
	struct tk_store *store;                        /* required: input files */
	struct tk_registry *metrics;                   /* NULL: default registry */
	/* Readiness: llm_health is called every health_interval_ms by a probe
	 * thread and ready() reports the last answer (true until the first
	 * probe has answered). 0: no probe, always ready. */
	int64_t health_interval_ms;
};

/* Fills *r with the orchestrator runner. 0, TK_EINVAL (a required option
 * missing), TK_ENOMEM or TK_EIO (the probe thread). */
int tk_runner_orch_init(struct tk_task_runner *r, const struct tk_orch_runner_opts *o);

#endif
