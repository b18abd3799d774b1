/*
 * test_pool.c — the engine's persistent worker pool (pool.h): every share
 * runs exactly once per dispatch, many tiny dispatches in a row, more
 * threads than items, the barrier publishing results between dispatches,
 * partial dispatches (run_n), waking workers that went to sleep, start and
 * shutdown cycles, bad counts, the row splitter and the default thread
 * count.
 */
#include "testutil.h"

#include "core/err.h"
#include "engine/pool.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------- split */

static void test_split(void **state)
{
	(void)state;
	const int64_t ns[] = { 0, 1, 3, 7, 64, 1000, 1001 };
	const int nths[] = { 1, 2, 3, 8, 64 };
	const int64_t aligns[] = { 1, 4, 16 };
	for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
		for (size_t b = 0; b < sizeof nths / sizeof nths[0]; b++)
			for (size_t c = 0; c < sizeof aligns / sizeof aligns[0]; c++) {
				const int64_t n = ns[a], al = aligns[c];
				const int nth = nths[b];
				int64_t next = 0; /* shares are contiguous and in order */
				for (int ith = 0; ith < nth; ith++) {
					int64_t lo, hi;
					engine_pool_split(n, ith, nth, al, &lo, &hi);
					assert_true(lo <= hi);
					assert_int_equal(lo, next);
					if (hi < n)
						assert_int_equal(hi % al, 0);
					next = hi;
				}
				assert_int_equal(next, n);
			}
}

/* ---------------------------------------------------------- dispatch */

struct count_job {
	_Atomic int64_t calls;   /* fn invocations */
	_Atomic int64_t nth_bad; /* calls whose nth differed from the expected */
	int nth_want;
	int64_t per_thread[ENGINE_POOL_MAX_THREADS];
	int n_items;
	int hits[1000]; /* items covered, one writer each */
};

static void count_task(void *arg, int ith, int nth)
{
	struct count_job *j = arg;
	atomic_fetch_add(&j->calls, 1);
	if (nth != j->nth_want)
		atomic_fetch_add(&j->nth_bad, 1);
	j->per_thread[ith]++;
	int64_t lo, hi;
	engine_pool_split(j->n_items, ith, nth, 1, &lo, &hi);
	for (int64_t i = lo; i < hi; i++)
		j->hits[i]++;
}

static void test_many_tiny_jobs(void **state)
{
	(void)state;
	const int counts[] = { 1, 2, 3, 5 };
	for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
		const int n = counts[k];
		struct engine_pool *p = engine_pool_new(n);
		assert_non_null(p);
		assert_int_equal(engine_pool_n_threads(p), n);
		static struct count_job j;
		memset(&j, 0, sizeof j);
		j.nth_want = n;
		j.n_items = 1000;
		enum { RUNS = 1000 };
		for (int r = 0; r < RUNS; r++)
			engine_pool_run(p, count_task, &j);
		/* every share ran once per dispatch, each item once per dispatch */
		assert_int_equal(atomic_load(&j.calls), (int64_t)RUNS * n);
		assert_int_equal(atomic_load(&j.nth_bad), 0);
		for (int i = 0; i < n; i++)
			assert_int_equal(j.per_thread[i], RUNS);
		for (int i = 0; i < j.n_items; i++)
			assert_int_equal(j.hits[i], RUNS);
		engine_pool_free(p);
	}
}

static void test_more_threads_than_items(void **state)
{
	(void)state;
	struct engine_pool *p = engine_pool_new(8);
	assert_non_null(p);
	static struct count_job j;
	memset(&j, 0, sizeof j);
	j.nth_want = 8;
	j.n_items = 3; /* 5 threads get empty shares */
	for (int r = 0; r < 100; r++)
		engine_pool_run(p, count_task, &j);
	for (int i = 0; i < 3; i++)
		assert_int_equal(j.hits[i], 100);
	assert_int_equal(atomic_load(&j.calls), 800);
	/* run_n: only n_use shares run; the rest of the pool stays out */
	memset(&j, 0, sizeof j);
	j.nth_want = 3;
	j.n_items = 10;
	for (int r = 0; r < 50; r++)
		engine_pool_run_n(p, 3, count_task, &j);
	assert_int_equal(atomic_load(&j.calls), 150);
	assert_int_equal(atomic_load(&j.nth_bad), 0);
	for (int i = 3; i < 8; i++)
		assert_int_equal(j.per_thread[i], 0);
	/* n_use 1 (and anything <= 1) runs on the caller alone; too many is clamped */
	memset(&j, 0, sizeof j);
	j.nth_want = 1;
	j.n_items = 10;
	engine_pool_run_n(p, 1, count_task, &j);
	engine_pool_run_n(p, 0, count_task, &j);
	assert_int_equal(atomic_load(&j.calls), 2);
	assert_int_equal(j.per_thread[0], 2);
	memset(&j, 0, sizeof j);
	j.nth_want = 8;
	engine_pool_run_n(p, 99, count_task, &j);
	assert_int_equal(atomic_load(&j.calls), 8);
	engine_pool_free(p);
}

/* Barrier reuse: each dispatch reads what every thread wrote in the one
 * before (plain, non-atomic memory), so a share that started early or a
 * caller that returned before the workers finished shows up as a wrong sum. */
struct chain_job {
	int64_t a[ENGINE_POOL_MAX_THREADS];
	int64_t b[ENGINE_POOL_MAX_THREADS];
	int phase;
};

static void chain_task(void *arg, int ith, int nth)
{
	struct chain_job *j = arg;
	const int64_t *src = j->phase ? j->b : j->a;
	int64_t *dst = j->phase ? j->a : j->b;
	int64_t sum = 0;
	for (int i = 0; i < nth; i++)
		sum += src[i];
	dst[ith] = sum + ith;
}

static void test_barrier_reuse(void **state)
{
	(void)state;
	enum { N = 4, STEPS = 500 };
	struct engine_pool *p = engine_pool_new(N);
	assert_non_null(p);
	struct chain_job j;
	memset(&j, 0, sizeof j);
	int64_t model[N] = { 0 }, next[N];
	for (int s = 0; s < STEPS; s++) {
		j.phase = s & 1;
		engine_pool_run(p, chain_task, &j);
		/* the same recurrence computed here, modulo to stay bounded */
		int64_t sum = 0;
		for (int i = 0; i < N; i++)
			sum += model[i];
		for (int i = 0; i < N; i++)
			next[i] = sum + i;
		memcpy(model, next, sizeof model);
		const int64_t *got = j.phase ? j.a : j.b;
		for (int i = 0; i < N; i++)
			assert_int_equal(got[i], model[i]);
		if (model[0] > ((int64_t)1 << 50)) {
			memset(&j, 0, sizeof j);
			memset(model, 0, sizeof model);
		}
	}
	engine_pool_free(p);
}

/* Workers that went to sleep (idle longer than the spin) wake for the next
 * dispatch, repeatedly. */
static void test_sleep_and_wake(void **state)
{
	(void)state;
	struct engine_pool *p = engine_pool_new(3);
	assert_non_null(p);
	static struct count_job j;
	memset(&j, 0, sizeof j);
	j.nth_want = 3;
	j.n_items = 30;
	for (int r = 0; r < 5; r++) {
		struct timespec ts = { 0, 30 * 1000 * 1000 }; /* 30 ms: past the spin */
		nanosleep(&ts, NULL);
		engine_pool_run(p, count_task, &j);
	}
	assert_int_equal(atomic_load(&j.calls), 15);
	for (int i = 0; i < 30; i++)
		assert_int_equal(j.hits[i], 5);
	engine_pool_free(p);
}

static void test_start_and_shutdown(void **state)
{
	(void)state;
	static struct count_job j;
	for (int r = 0; r < 40; r++) {
		const int n = 1 + r % 6;
		struct engine_pool *p = engine_pool_new(n);
		assert_non_null(p);
		if (r % 2) { /* half are freed without ever running */
			memset(&j, 0, sizeof j);
			j.nth_want = n;
			engine_pool_run(p, count_task, &j);
			assert_int_equal(atomic_load(&j.calls), n);
		}
		engine_pool_free(p);
	}
	engine_pool_free(NULL);
	assert_null(engine_pool_new(0));
	assert_int_equal(tk_err_last(), TK_EINVAL);
	assert_null(engine_pool_new(ENGINE_POOL_MAX_THREADS + 1));
	assert_int_equal(tk_err_last(), TK_EINVAL);
}

static void test_default_threads(void **state)
{
	(void)state;
	const int n = engine_default_threads();
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	printf("default threads (physical cores): %d, online CPUs %ld\n", n, online);
	assert_true(n >= 1 && n <= ENGINE_POOL_MAX_THREADS);
	/* physical cores never exceed logical CPUs */
	if (online > 0)
		assert_true(n <= online);
	assert_int_equal(engine_default_threads(), n); /* stable */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_many_tiny_jobs),
		cmocka_unit_test(test_more_threads_than_items),
		cmocka_unit_test(test_barrier_reuse),
		cmocka_unit_test(test_sleep_and_wake),
		cmocka_unit_test(test_start_and_shutdown),
		cmocka_unit_test(test_default_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
