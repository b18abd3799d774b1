/*
 * time.h — clocks and timestamps.
 *
 * Durations and deadlines use the monotonic clock (never jumps); wall-clock
 * time is only for timestamps shown to people and logs. All functions are
 * thread-safe; tk_time_mono_ns and tk_time_real_ns are async-signal-safe.
 */
#ifndef TK_CORE_TIME_H
#define TK_CORE_TIME_H

#include <stddef.h>
#include <stdint.h>

/* "2026-11-28T00:40:44.123Z" is 24 bytes plus the NUL. */
#define TK_RFC3339_LEN 32

/* Nanoseconds on CLOCK_MONOTONIC. */
int64_t tk_time_mono_ns(void);

/* Nanoseconds since the Unix epoch on CLOCK_REALTIME. */
int64_t tk_time_real_ns(void);

/* Formats unix_ns as RFC 3339 UTC with milliseconds ("...T00:40:44.123Z")
 * into out (at least TK_RFC3339_LEN bytes). Returns out. */
char *tk_time_rfc3339(int64_t unix_ns, char *out);

/* Parses an RFC 3339 timestamp ("Z" or "+hh:mm" offsets, optional fraction)
 * into *unix_ns. 0 or TK_EFORMAT. */
int tk_time_parse_rfc3339(const char *s, int64_t *unix_ns);
/* (Times outside 1677..2262, which int64 nanoseconds cannot hold, are
 * TK_EFORMAT too.) */

#endif
