/*
 * bench_store.c — throughput and latency of the store's hot operations on a
 * real database file: task create, the full create/claim/complete cycle,
 * event append, task get, key verify; with synchronous FULL (the default)
 * and NORMAL. Prints numbers only; never fails on time.
 *
 *   bench_store [DIR] [OPS]   (DIR defaults to $TMPDIR or /tmp; OPS 2000)
 */
#include "core/err.h"
#include "core/time.h"
#include "obs/log.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, const char *mode, int64_t *lat_ns, int n, int64_t total_ns)
{
	qsort(lat_ns, (size_t)n, sizeof *lat_ns, cmp_i64);
	printf("| %-34s | %-6s | %9.0f | %8.1f | %8.1f |\n", what, mode,
	       (double)n / ((double)total_ns / 1e9), (double)lat_ns[n / 2] / 1e3,
	       (double)lat_ns[(n * 99) / 100] / 1e3);
}

static int run(const char *dir, int ops, bool sync_normal)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/bench-store-%d-%d.db", dir, (int)getpid(), sync_normal);
	struct tk_store_options o;
	tk_store_options_default(&o);
	o.sync_normal = sync_normal;
	struct tk_store *s = tk_store_open(path, &o);
	if (!s) {
		fprintf(stderr, "open: %s\n", tk_err_detail());
		return 1;
	}
	const char *mode = sync_normal ? "NORMAL" : "FULL";
	int64_t *lat = calloc((size_t)ops, sizeof *lat);
	char (*ids)[TK_ID_LEN] = calloc((size_t)ops, TK_ID_LEN);
	if (!lat || !ids)
		return 1;
	const char *req = "{\"task_description\":\"write a function that adds two numbers\","
			  "\"language\":\"python\",\"wait\":0}";
	struct tk_task_new in = { .request_json = req, .timeout_ms = 60000 };

	int64_t t0 = tk_time_mono_ns();
	for (int i = 0; i < ops; i++) {
		int64_t a = tk_time_mono_ns();
		if (tk_store_task_create(s, &in, ids[i]))
			goto fail;
		lat[i] = tk_time_mono_ns() - a;
	}
	report("task_create", mode, lat, ops, tk_time_mono_ns() - t0);

	t0 = tk_time_mono_ns();
	for (int i = 0; i < ops; i++) {
		int64_t a = tk_time_mono_ns();
		struct tk_task t;
		if (tk_store_task_get(s, ids[i], &t))
			goto fail;
		tk_task_clear(&t);
		lat[i] = tk_time_mono_ns() - a;
	}
	report("task_get", mode, lat, ops, tk_time_mono_ns() - t0);

	t0 = tk_time_mono_ns();
	for (int i = 0; i < ops; i++) {
		int64_t a = tk_time_mono_ns();
		struct tk_task t;
		if (tk_store_task_claim_next(s, &t))
			goto fail;
		tk_task_clear(&t);
		lat[i] = tk_time_mono_ns() - a;
	}
	report("task_claim_next", mode, lat, ops, tk_time_mono_ns() - t0);

	t0 = tk_time_mono_ns();
	for (int i = 0; i < ops; i++) {
		int64_t a = tk_time_mono_ns();
		if (tk_store_event_append(s, ids[i], "progress", "{\"step\":1}", NULL))
			goto fail;
		lat[i] = tk_time_mono_ns() - a;
	}
	report("event_append", mode, lat, ops, tk_time_mono_ns() - t0);

	t0 = tk_time_mono_ns();
	for (int i = 0; i < ops; i++) {
		int64_t a = tk_time_mono_ns();
		if (tk_store_task_set_status(s, ids[i], TK_TASK_COMPLETED, "{\"ok\":true}", NULL))
			goto fail;
		lat[i] = tk_time_mono_ns() - a;
	}
	report("set_status completed", mode, lat, ops, tk_time_mono_ns() - t0);

	/* The whole cycle a no-op task costs the store. */
	t0 = tk_time_mono_ns();
	for (int i = 0; i < ops; i++) {
		int64_t a = tk_time_mono_ns();
		char id[TK_ID_LEN];
		struct tk_task t;
		if (tk_store_task_create(s, &in, id) || tk_store_task_claim_next(s, &t))
			goto fail;
		tk_task_clear(&t);
		if (tk_store_task_set_status(s, id, TK_TASK_COMPLETED, "{}", NULL))
			goto fail;
		lat[i] = tk_time_mono_ns() - a;
	}
	report("create+claim+complete", mode, lat, ops, tk_time_mono_ns() - t0);

	char key[TK_KEY_TEXT_LEN];
	if (tk_store_key_create(s, "bench", TK_ROLE_USER, key, NULL))
		goto fail;
	t0 = tk_time_mono_ns();
	for (int i = 0; i < ops; i++) {
		int64_t a = tk_time_mono_ns();
		if (tk_store_key_verify(s, key, NULL))
			goto fail;
		lat[i] = tk_time_mono_ns() - a;
	}
	report("key_verify", mode, lat, ops, tk_time_mono_ns() - t0);

	tk_store_close(s);
	free(lat);
	free(ids);
	for (const char *suf = ""; suf; suf = !*suf ? "-wal" : !strcmp(suf, "-wal") ? "-shm" : NULL) {
		char p[1100];
		snprintf(p, sizeof p, "%s%s", path, suf);
		unlink(p);
	}
	return 0;
fail:
	fprintf(stderr, "bench: %s\n", tk_err_detail());
	return 1;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int ops = argc > 2 ? atoi(argv[2]) : 2000;
	if (ops < 100)
		ops = 100;
	tk_log_set_level(TK_LOG_WARNING);
	printf("store benchmark: %d operations each, database in %s\n\n", ops, dir);
	printf("| %-34s | %-6s | %9s | %8s | %8s |\n", "operation", "sync", "ops/s", "p50 us",
	       "p99 us");
	printf("|%s|%s|%s|%s|%s|\n", "------------------------------------", "--------",
	       "-----------", "----------", "----------");
	if (run(dir, ops, false) || run(dir, ops, true))
		return 1;
	return 0;
}
