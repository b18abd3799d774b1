/*
 * bench_util.h — what the benchmark programs in bench/ share: the
 * monotonic wall clock in seconds (core/time.h underneath). Header-only;
 * any thread.
 */
#ifndef TK_BENCH_UTIL_H
#define TK_BENCH_UTIL_H

#include "core/time.h"

/* Seconds on the monotonic clock (only differences mean anything). */
static inline double bench_now_s(void)
{
	return (double)tk_time_mono_ns() * 1e-9;
}

#endif
