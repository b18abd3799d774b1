/*
 * log_priv.h — logger internals shared with the crash handler only (not part
 * of the logger's API; other modules use obs/log.h).
 */
#ifndef TK_OBS_LOG_PRIV_H
#define TK_OBS_LOG_PRIV_H

#include <stddef.h>
#include <stdint.h>

/* Writes the calling thread's context fields as `,"key":"value"` pairs into
 * out (at most cap bytes, no NUL) with the same escaping and redaction as a
 * log line; a field that does not fit is left out whole. Returns the bytes
 * written. Async-signal-safe, for the crash handler: it reads the thread's
 * context through static TLS without locks, with every read bounded, so a
 * context half-written by the crashing thread yields odd text but never a
 * bad read. */
size_t log_ctx_format_for_crash(char *out, size_t cap);

/* Writes v in decimal into the END of out and returns how many characters
 * it took (the text is out + LOG_INT_MAX - n). Async-signal-safe: the crash
 * handler uses it too. */
#define LOG_INT_MAX 24
size_t log_fmt_int(char out[LOG_INT_MAX], int64_t v);

#endif
