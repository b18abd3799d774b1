/*
 * bench_util.h — what the benchmark programs in bench/ share: the
 * monotonic wall clock in seconds (core/time.h underneath) and a
 * reproducible pseudo-random float. Header-only; bench_now_s any thread,
 * bench_rnd one thread (its state is per program).
 */
#ifndef TK_BENCH_UTIL_H
#define TK_BENCH_UTIL_H

#include "core/time.h"

#include <stdint.h>

/* Seconds on the monotonic clock (only differences mean anything). */
static inline double bench_now_s(void)
{
	return (double)tk_time_mono_ns() * 1e-9;
}

/* The next of a fixed xorshift64 sequence (the same in every run) as a
 * float in [-1, 1). */
static inline float bench_rnd(void)
{
	static uint64_t rng = 88172645463325252ull;
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

#endif
