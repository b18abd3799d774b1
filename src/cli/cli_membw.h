/*
 * cli_membw.h — a STREAM-like read-bandwidth probe: how many bytes per
 * second the machine's cores together can read from main memory. It is the
 * ceiling of single-sequence decode (every weight is read once per token),
 * used by `tanuki bench --membw` and bench/membw.c for the roofline.
 *
 * Method: one buffer much larger than the last-level cache, filled once
 * (each thread touches its own slice first, so pages land near the thread
 * that reads them); then for each repetition all threads start at a barrier
 * and sum their slice with independent vector accumulators; the time is
 * from the barrier to the last thread's end. The best repetition counts
 * (as STREAM reports), the mean is kept too.
 *
 * Threads: membw_measure runs its own worker threads and may be called from
 * any thread; it shares nothing between calls.
 */
#ifndef TK_CLI_MEMBW_H
#define TK_CLI_MEMBW_H

#include <stddef.h>
#include <stdint.h>

#define MEMBW_MAX_THREADS 256
#define MEMBW_MIN_BYTES (1u << 20)

struct membw_opts {
	size_t bytes;  /* buffer size; 0: membw_default_bytes() */
	int threads;   /* 1..MEMBW_MAX_THREADS; 0: the online CPUs */
	int reps;      /* timed repetitions, >= 1; 0: 5 */
};

struct membw_result {
	double best_gbps;  /* 1e9 bytes per second, best repetition */
	double mean_gbps;  /* mean over the repetitions */
	size_t bytes;      /* buffer size used */
	int threads;
	int reps;
	uint64_t checksum; /* the sums, so the reads cannot be optimized away */
};

/* 4x the last-level cache (sysfs), at least 256 MiB, at most 2 GiB and at
 * most a quarter of the physical memory. */
size_t membw_default_bytes(void);

/* Measures; 0 with *out filled, TK_EINVAL (bad options: fewer than
 * MEMBW_MIN_BYTES, thread or rep counts out of range), TK_ENOMEM or TK_EIO
 * (a thread could not start). */
int membw_measure(const struct membw_opts *o, struct membw_result *out);

#endif
