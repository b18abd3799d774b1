/*
 * bench_pool.c — what one dispatch of the engine's worker pool (pool.h)
 * costs: an empty job run back to back (the workers spinning between the
 * dispatches of one decode step), an empty job after an idle gap (a gap
 * longer than the spin makes the workers sleep, so the dispatch pays a
 * futex wake), and one pause instruction (what the spin budget is counted
 * in). Prints numbers only.
 *
 *   bench_pool [THREADS] [ITERS]
 *
 *   THREADS  pool threads, the caller included (default 2)
 *   ITERS    dispatches per case (default 20000 back to back; a tenth of
 *            it, at least 50, for the cases with a gap)
 *
 * Run it alone on the machine (flock -x /tmp/tk-bench.lock): a worker
 * descheduled by another job makes a dispatch wait for it.
 */
#include "core/time.h"
#include "engine/pool.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Atomic int64_t touched;

static void empty_task(void *arg, int ith, int nth)
{
	(void)arg;
	(void)nth;
	atomic_fetch_add_explicit(&touched, ith, memory_order_relaxed);
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
	nanosleep(&ts, NULL);
}

/* spins for about ns without sleeping (the caller's serial work) */
static void busy_ns(int64_t ns)
{
	const int64_t end = tk_time_mono_ns() + ns;
	while (tk_time_mono_ns() < end)
		;
}

static int cmp_i64(const void *a, const void *b)
{
	const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* gap_ns > 0: the caller is idle that long (sleeping when sleep, else
 * spinning) before each timed dispatch; prints median and p90 in us */
static int run_case(struct engine_pool *p, const char *name, int iters, int64_t gap_ns,
		    int sleep)
{
	int64_t *t = malloc((size_t)iters * sizeof *t);
	if (!t)
		return -1;
	for (int i = 0; i < iters; i++) {
		if (gap_ns > 0) {
			if (sleep)
				sleep_ns(gap_ns);
			else
				busy_ns(gap_ns);
		}
		const int64_t t0 = tk_time_mono_ns();
		engine_pool_run(p, empty_task, NULL);
		t[i] = tk_time_mono_ns() - t0;
	}
	qsort(t, (size_t)iters, sizeof *t, cmp_i64);
	printf("%-34s %8d %10.2f %10.2f %10.2f\n", name, iters, (double)t[iters / 2] / 1e3,
	       (double)t[iters * 9 / 10] / 1e3, (double)t[iters - 1] / 1e3);
	free(t);
	return 0;
}

static double pause_ns(void)
{
	enum { N = 200000 };
	const int64_t t0 = tk_time_mono_ns();
	for (int i = 0; i < N; i++) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	}
	return (double)(tk_time_mono_ns() - t0) / N;
}

int main(int argc, char **argv)
{
	const int threads = argc > 1 ? atoi(argv[1]) : 2;
	const int iters = argc > 2 ? atoi(argv[2]) : 20000;
	if (threads < 1 || threads > ENGINE_POOL_MAX_THREADS || iters < 10) {
		fprintf(stderr, "usage: bench_pool [THREADS 1..%d] [ITERS >= 10]\n",
			ENGINE_POOL_MAX_THREADS);
		return 2;
	}
	struct engine_pool *p = engine_pool_new(threads);
	if (!p) {
		fprintf(stderr, "bench_pool: cannot start the pool\n");
		return 1;
	}
	const int few = iters / 10 < 50 ? 50 : iters / 10;
	printf("pool of %d threads; pause instruction: %.1f ns\n", threads, pause_ns());
	printf("%-34s %8s %10s %10s %10s\n", "case (one empty dispatch)", "n", "median us",
	       "p90 us", "max us");
	int rc = 0;
	rc |= run_case(p, "back to back (workers spinning)", iters, 0, 0);
	rc |= run_case(p, "after 5 us of caller work", few, 5000, 0);
	rc |= run_case(p, "after 50 us of caller work", few, 50000, 0);
	rc |= run_case(p, "after 1 ms idle (sleep)", few, 1000000, 1);
	rc |= run_case(p, "after 20 ms idle (sleep)", few, 20000000, 1);
	engine_pool_free(p);
	return rc ? 1 : 0;
}
