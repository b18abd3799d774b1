/*
 * pool.c — persistent worker threads with a spin-then-futex barrier
 * (pool.h), and the physical core count.
 *
 * Owns the worker threads of each pool. The handshake uses two 32-bit
 * counters, each also a futex word:
 *   gen     bumped by the caller to publish a job (fn, arg, n_use written
 *           before, with release order); a worker runs the job when gen
 *           differs from the last one it saw.
 *   n_done  workers that finished the current job; the caller waits for
 *           n_threads - 1.
 * Sleepers announce themselves (n_sleep_gen, caller_sleeping) before their
 * last check of the counter, and the waker checks the announcement after
 * its update; both are sequentially consistent, so either the sleeper sees
 * the new value or the waker sees the sleeper (no lost wake-up), and the
 * futex itself re-checks the value atomically.
 */
#include "engine/pool.h"

#include "core/err.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Waiting, in three stages: POOL_SPIN pause-loop iterations (tens of
 * microseconds: the gap between two operations of a forward pass), then up
 * to POOL_YIELDS sched_yield() calls (on a busy machine — more runnable
 * threads than cores — a waiter hands its core to the thread that has the
 * work instead of spinning against it), then a futex sleep. */
#define POOL_SPIN 2000
#define POOL_YIELDS 64

struct pool_worker {
	struct engine_pool *p;
	int ith;
	pthread_t tid;
};

struct engine_pool {
	int n; /* threads, the caller included */
	struct pool_worker *w; /* [n - 1] */
	_Atomic uint32_t gen;
	_Atomic uint32_t n_done;
	_Atomic uint32_t n_sleep_gen;     /* workers asleep (or about to be) on gen */
	_Atomic uint32_t caller_sleeping; /* caller asleep (or about to be) on n_done */
	_Atomic bool stop;
	/* the job: written by the caller before bumping gen */
	engine_pool_fn fn;
	void *arg;
	int n_use;
};

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
	/* spurious returns (EINTR, EAGAIN) are fine: callers loop */
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Waits until *addr != old; returns the new value. */
static uint32_t wait_change(_Atomic uint32_t *addr, uint32_t old, _Atomic uint32_t *sleepers)
{
	uint32_t v;
	for (int i = 0; i < POOL_SPIN + POOL_YIELDS; i++) {
		v = atomic_load_explicit(addr, memory_order_acquire);
		if (v != old)
			return v;
		if (i < POOL_SPIN)
			cpu_relax();
		else
			sched_yield();
	}
	atomic_fetch_add(sleepers, 1);
	while ((v = atomic_load(addr)) == old)
		futex_wait(addr, old);
	atomic_fetch_sub(sleepers, 1);
	return v;
}

static void *pool_worker_main(void *arg)
{
	struct pool_worker *w = arg;
	struct engine_pool *p = w->p;
	uint32_t seen = 0;
	for (;;) {
		seen = wait_change(&p->gen, seen, &p->n_sleep_gen);
		if (atomic_load(&p->stop))
			break;
		if (w->ith < p->n_use)
			p->fn(p->arg, w->ith, p->n_use);
		atomic_fetch_add(&p->n_done, 1);
		if (atomic_load(&p->caller_sleeping))
			futex_wake_all(&p->n_done);
	}
	return NULL;
}

/* Publishes the job in p->fn/arg/n_use to every worker. */
static void pool_publish(struct engine_pool *p)
{
	atomic_store(&p->n_done, 0);
	atomic_fetch_add(&p->gen, 1);
	if (atomic_load(&p->n_sleep_gen))
		futex_wake_all(&p->gen);
}

/* Waits until every worker has finished the published job. */
static void pool_wait_done(struct engine_pool *p)
{
	const uint32_t want = (uint32_t)(p->n - 1);
	uint32_t v;
	for (int i = 0; i < POOL_SPIN + POOL_YIELDS; i++) {
		if (atomic_load_explicit(&p->n_done, memory_order_acquire) == want)
			return;
		if (i < POOL_SPIN)
			cpu_relax();
		else
			sched_yield();
	}
	atomic_store(&p->caller_sleeping, 1);
	while ((v = atomic_load(&p->n_done)) != want)
		futex_wait(&p->n_done, v);
	atomic_store(&p->caller_sleeping, 0);
}

struct engine_pool *engine_pool_new(int n_threads)
{
	if (n_threads < 1 || n_threads > ENGINE_POOL_MAX_THREADS) {
		tk_errf(TK_EINVAL, "pool: %d threads (1..%d)", n_threads, ENGINE_POOL_MAX_THREADS);
		return NULL;
	}
	struct engine_pool *p = calloc(1, sizeof *p);
	if (!p || (n_threads > 1 && !(p->w = calloc((size_t)n_threads - 1, sizeof *p->w)))) {
		free(p);
		tk_errf(TK_ENOMEM, "pool: out of memory");
		return NULL;
	}
	p->n = 1;
	for (int i = 1; i < n_threads; i++) {
		struct pool_worker *w = &p->w[i - 1];
		w->p = p;
		w->ith = i;
		int rc = pthread_create(&w->tid, NULL, pool_worker_main, w);
		if (rc) {
			engine_pool_free(p); /* joins the i - 1 started so far */
			tk_errf(TK_EIO, "pool: cannot start worker thread %d of %d: %s", i,
				n_threads - 1, strerror(rc));
			return NULL;
		}
		p->n = i + 1;
	}
	return p;
}

void engine_pool_free(struct engine_pool *p)
{
	if (!p)
		return;
	if (p->n > 1) {
		atomic_store(&p->stop, true);
		atomic_fetch_add(&p->gen, 1);
		futex_wake_all(&p->gen);
		for (int i = 1; i < p->n; i++)
			pthread_join(p->w[i - 1].tid, NULL);
	}
	free(p->w);
	free(p);
}

int engine_pool_n_threads(const struct engine_pool *p)
{
	return p->n;
}

void engine_pool_run_n(struct engine_pool *p, int n_use, engine_pool_fn fn, void *arg)
{
	if (n_use > p->n)
		n_use = p->n;
	if (n_use <= 1) {
		fn(arg, 0, 1);
		return;
	}
	p->fn = fn;
	p->arg = arg;
	p->n_use = n_use;
	pool_publish(p);
	fn(arg, 0, n_use);
	pool_wait_done(p);
}

void engine_pool_run(struct engine_pool *p, engine_pool_fn fn, void *arg)
{
	engine_pool_run_n(p, p->n, fn, arg);
}

void engine_pool_split(int64_t n, int ith, int nth, int64_t align, int64_t *begin,
		       int64_t *end)
{
	if (align < 1)
		align = 1;
	const int64_t units = (n + align - 1) / align;
	int64_t b = units * ith / nth * align, e = units * (ith + 1) / nth * align;
	*begin = b < n ? b : n;
	*end = e < n ? e : n;
}

/* ------------------------------------------------ physical cores */

static int default_threads;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static int read_int_file(const char *path, long *out)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	int ok = fscanf(f, "%ld", out) == 1;
	fclose(f);
	return ok ? 0 : -1;
}

static int count_physical_cores(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set))
		return -1;
	enum { MAX_CORES = 4096 };
	long *keys = malloc(MAX_CORES * sizeof *keys);
	if (!keys)
		return -1;
	int n_keys = 0;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &set))
			continue;
		char path[128];
		long pkg, core;
		snprintf(path, sizeof path,
			 "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
		if (read_int_file(path, &pkg)) {
			n_keys = -1;
			break;
		}
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
		if (read_int_file(path, &core)) {
			n_keys = -1;
			break;
		}
		const long key = pkg * 1000000L + core;
		bool seen = false;
		for (int i = 0; i < n_keys && !seen; i++)
			seen = keys[i] == key;
		if (!seen && n_keys < MAX_CORES)
			keys[n_keys++] = key;
	}
	free(keys);
	return n_keys;
}

static void default_threads_init(void)
{
	int n = count_physical_cores();
	if (n < 1) {
		long online = sysconf(_SC_NPROCESSORS_ONLN);
		n = online > 0 && online < INT_MAX ? (int)online : 1;
	}
	if (n > ENGINE_POOL_MAX_THREADS)
		n = ENGINE_POOL_MAX_THREADS;
	default_threads = n;
}

int engine_default_threads(void)
{
	pthread_once(&default_once, default_threads_init);
	return default_threads;
}
