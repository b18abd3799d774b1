/*
 * pool.h — a persistent pool of worker threads for the forward pass, and the
 * default thread count (physical cores).
 *
 * A pool of n threads is the calling thread plus n - 1 workers started once
 * in engine_pool_new() and joined in engine_pool_free(); no thread is ever
 * started per operation. engine_pool_run(p, fn, arg) runs fn(arg, ith, nth)
 * for every ith in 0..nth-1 — ith 0 on the caller, the others on the
 * workers — and returns when all have returned (a full barrier: everything
 * the workers wrote is visible to the caller afterwards, and everything the
 * caller wrote before the call is visible to them).
 *
 * Waiting (both the workers waiting for a job and the caller waiting for the
 * workers) spins with the CPU's pause hint for a bounded time, then sleeps
 * on a futex. A pool that has not been used for a while therefore costs no
 * CPU; one used back to back (a forward pass dispatches a few hundred times
 * per token) never sleeps.
 *
 * Ownership: one pool per engine context (context.h); contexts do not share
 * pools, so two contexts evaluating at once on different threads never wait
 * for each other (with more total threads than cores they time-share the
 * cores instead, and sleeping idle workers cost nothing).
 *
 * Threads: engine_pool_run() may be called by one thread at a time per pool
 * (the context's owner); fn must not call engine_pool_run() on the same
 * pool. engine_default_threads() is thread-safe.
 */
#ifndef TK_ENGINE_POOL_H
#define TK_ENGINE_POOL_H

#include <stdint.h>

#define ENGINE_POOL_MAX_THREADS 64

struct engine_pool;

/* A share of a parallel job: thread ith of nth. */
typedef void (*engine_pool_fn)(void *arg, int ith, int nth);

/* Starts n_threads - 1 workers (n_threads in 1..ENGINE_POOL_MAX_THREADS; 1
 * starts none and every run happens on the caller). NULL with the detail
 * set: TK_EINVAL (bad count), TK_ENOMEM, TK_EIO (a thread could not be
 * started; none is left running). */
struct engine_pool *engine_pool_new(int n_threads);

/* Stops and joins the workers, frees the pool; NULL ok. Not while a run is
 * in progress. */
void engine_pool_free(struct engine_pool *p);

/* Threads of the pool, the caller included. */
int engine_pool_n_threads(const struct engine_pool *p);

/* Runs fn(arg, ith, nth) for ith in 0..nth-1 with nth = the pool's thread
 * count, and waits for all of them. arg is borrowed for the call. */
void engine_pool_run(struct engine_pool *p, engine_pool_fn fn, void *arg);

/* The same with nth = n_use (1..n_threads; clamped): the other workers wake
 * and go back to waiting. n_use 1 calls fn on the caller only, without
 * waking anyone (for operations too small to be worth a dispatch). */
void engine_pool_run_n(struct engine_pool *p, int n_use, engine_pool_fn fn, void *arg);

/* [*begin, *end) of thread ith's share of n items split into nth contiguous
 * parts, each (but the last) a multiple of align items (align >= 1); shares
 * may be empty when n is small. */
void engine_pool_split(int64_t n, int ith, int nth, int64_t align, int64_t *begin,
		       int64_t *end);

/* The number of physical cores this process may run on: distinct (package,
 * core) pairs in /sys/devices/system/cpu/cpuN/topology over the CPUs of the
 * process's affinity mask; sysconf(_SC_NPROCESSORS_ONLN) when the topology
 * cannot be read. Clamped to 1..ENGINE_POOL_MAX_THREADS; computed once. */
int engine_default_threads(void);

#endif
