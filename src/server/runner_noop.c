/*
 * runner_noop.c — the trivial task runner used until the orchestrator lands,
 * by tests and by the benchmarks: it emits progress events spread over a
 * delay, honours stop requests, and completes with an echo of the request.
 * Owns only its options block (ctx).
 */
#include "server/runner.h"

#include "core/err.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0)
		;
}

/* Finds a directive word "name" or "name=N" in the description. */
static bool directive(const char *desc, const char *name, int64_t *val)
{
	size_t n = strlen(name);
	for (const char *p = strstr(desc, name); p; p = strstr(p + 1, name)) {
		if (p != desc && p[-1] != ' ' && p[-1] != '\n' && p[-1] != '\t')
			continue;
		const char *e = p + n;
		if (val && *e == '=') {
			char *end;
			long long v = strtoll(e + 1, &end, 10);
			if (end != e + 1 && v >= 0 && v <= 86400000LL) {
				*val = v;
				return true;
			}
			continue;
		}
		if (!val && (*e == '\0' || *e == ' ' || *e == '\n' || *e == '\t'))
			return true;
	}
	return false;
}

static int noop_run(void *ctx, struct tk_runner_io *io, char **result_json, char **error)
{
	const struct tk_noop_opts *o = ctx;
	int rc = 0;
	json_t *req = json_loads(io->task->request_json ? io->task->request_json : "{}", 0, NULL);
	const char *desc = json_string_value(json_object_get(req, "task_description"));
	if (!desc)
		desc = "";
	int64_t delay = o->delay_ms;
	directive(desc, "noop:delay_ms", &delay);
	int n = o->events > 0 ? o->events : 1;

	for (int i = 1; i <= n; i++) {
		char data[96];
		snprintf(data, sizeof data, "{\"step\":%d,\"of\":%d}", i, n);
		if ((rc = io->emit(io, "progress", data)) < 0)
			goto out;
		/* Sleep this step's share of the delay in slices, so a stop
		 * request is noticed within ~10 ms. */
		int64_t step_ms = delay / n, slept = 0;
		while (slept < step_ms) {
			if (tk_runner_should_stop(io)) {
				rc = tk_errf(TK_ECANCELED, "noop: stopped at step %d of %d", i, n);
				goto out;
			}
			int64_t s = step_ms - slept < 10 ? step_ms - slept : 10;
			sleep_ms(s);
			slept += s;
		}
	}
	if (tk_runner_should_stop(io)) {
		rc = tk_errf(TK_ECANCELED, "noop: stopped after the last step");
		goto out;
	}
	if (directive(desc, "noop:fail", NULL)) {
		rc = TK_EINVAL;
		*error = strdup("noop: asked to fail");
		goto out;
	}
	if ((rc = io->put_file(io, "NOOP_RESULT.txt", desc, strlen(desc))) < 0)
		goto out;
	char echo[256];
	snprintf(echo, sizeof echo, "noop: %.200s", desc);
	json_t *res = json_pack("{s:s, s:n, s:{s:i}}", "result", echo, "tests", "usage", "events", n);
	if (!res) {
		rc = tk_errf(TK_ENOMEM, "noop: cannot build the result");
		goto out;
	}
	*result_json = json_dumps(res, JSON_COMPACT);
	json_decref(res);
	if (!*result_json)
		rc = tk_errf(TK_ENOMEM, "noop: cannot serialize the result");
out:
	json_decref(req);
	return rc;
}

static void noop_free(void *ctx)
{
	free(ctx);
}

int tk_runner_noop_init(struct tk_task_runner *r, const struct tk_noop_opts *opts)
{
	struct tk_noop_opts *o = calloc(1, sizeof *o);
	if (!o)
		return tk_errf(TK_ENOMEM, "noop runner: out of memory");
	o->events = 3;
	if (opts)
		*o = *opts;
	if (o->events <= 0)
		o->events = 3;
	if (o->delay_ms < 0)
		o->delay_ms = 0;
	*r = (struct tk_task_runner){ .name = "noop", .ctx = o, .run = noop_run,
				      .ready = NULL, .free = noop_free };
	return 0;
}
