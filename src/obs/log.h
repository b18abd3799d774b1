/*
 * log.h — structured JSON logger.
 *
 * One JSON object per line, written with a single write(2), on stderr or a
 * file:
 *   {"ts":"2026-11-28T00:40:44.123Z","level":"info","severity":"INFO",
 *    "msg":"...","component":"server", <context fields>, <call fields>}
 *
 * - Levels debug < info < warning < error < critical; lines below the current
 *   level cost one relaxed atomic load. The level can change at run time.
 * - Context fields (request_id, task_id, agent, adapter, tool, ...) are set
 *   per thread with tk_log_ctx_set() and attached to every line that thread
 *   writes until cleared.
 * - Redaction: values registered with tk_log_add_secret() are replaced by
 *   "[REDACTED]" wherever they occur; fields whose key names a credential
 *   (api_key, authorization, x-api-key, password, secret, token, ...) are
 *   always written as "[REDACTED]".
 * - Any bytes are escaped into valid JSON (invalid UTF-8 becomes U+FFFD,
 *   control characters \uXXXX). A message longer than TK_LOG_MSG_MAX is cut
 *   and marked with "...[truncated]"; the line is never dropped for length.
 * - tk_log_reopen() (called on SIGHUP) reopens the file for logrotate.
 *
 * Every function is thread-safe. Logging before tk_log_init() writes to
 * stderr at level info. No function is async-signal-safe except tk_log_fd()
 * (never log from a signal handler; see obs/crash.h for fatal signals).
 *
 * Line format, in order: ts, level, severity, msg, component, then the
 * thread's context fields (in the order they were first set), then the
 * call's fields (in the order given). A call field whose key equals a
 * context key replaces that context field on that line; a call field named
 * like a core key (ts, level, severity, msg, component) is written with a
 * leading underscore ("_msg"); so no line has a duplicate key unless the
 * call itself repeats one (or two keys only differ in invalid UTF-8 or past
 * the 128-byte key cap: keys are meant to be literals). Strings are capped: msg at TK_LOG_MSG_MAX, field values at
 * TK_LOG_VALUE_MAX, component at 64 and keys at 128 bytes; a cut string ends
 * with "...[truncated]". A line is built in a TK_LOG_LINE_MAX buffer; fields
 * that no longer fit are left out whole and counted in a final
 * "log_fields_dropped" field. Integers are JSON integers, doubles the
 * shortest form that reads back exactly (NaN and infinities: null), a NULL
 * string value null.
 *
 * Cost: a line below the level costs one relaxed atomic load (the arguments
 * are still evaluated by the caller: guard expensive ones with
 * tk_log_enabled()). A written line costs a vsnprintf, one pass over each
 * string, and one write(2) under a process-wide mutex.
 */
#ifndef TK_OBS_LOG_H
#define TK_OBS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tk_log_level {
	TK_LOG_DEBUG = 0,
	TK_LOG_INFO,
	TK_LOG_WARNING,
	TK_LOG_ERROR,
	TK_LOG_CRITICAL,
};

#define TK_LOG_MSG_MAX 8192    /* bytes of message kept before truncation */
#define TK_LOG_VALUE_MAX 4096  /* bytes of a string field value kept */
#define TK_LOG_LINE_MAX 65536  /* bytes of one whole line, newline included */
#define TK_LOG_SECRET_MAX 4096 /* longest secret value tk_log_add_secret takes */
#define TK_LOG_SECRETS_MAX 256 /* secrets that can be registered */

/* A typed key/value attached to one line. */
enum tk_log_field_type { TK_LF_STR, TK_LF_INT, TK_LF_DBL, TK_LF_BOOL };
struct tk_log_field {
	const char *key; /* borrowed */
	enum tk_log_field_type type;
	union {
		const char *s; /* borrowed; NULL is written as null */
		int64_t i;
		double d;
		bool b;
	} v;
};

#define TK_LF_S(k, x) ((struct tk_log_field){ .key = (k), .type = TK_LF_STR, .v.s = (x) })
#define TK_LF_I(k, x) ((struct tk_log_field){ .key = (k), .type = TK_LF_INT, .v.i = (int64_t)(x) })
#define TK_LF_D(k, x) ((struct tk_log_field){ .key = (k), .type = TK_LF_DBL, .v.d = (double)(x) })
#define TK_LF_B(k, x) ((struct tk_log_field){ .key = (k), .type = TK_LF_BOOL, .v.b = (x) })

/* Opens the log: path NULL or "-" means stderr; otherwise the file is
 * opened O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC with mode 0640 (path copied).
 * Calling it again switches to the new destination and closes the old file.
 * 0, TK_EINVAL (bad level or path), TK_ENOMEM or TK_EIO (open failed; the
 * previous destination stays in use). */
int tk_log_init(const char *path, enum tk_log_level level);

/* Reopens the file given to tk_log_init by name (no-op on stderr), for
 * logrotate: after the old file was renamed, later lines go to a new file at
 * the path. The descriptor number stays the same (the new file is dup3()ed
 * over it). Safe to call from any thread, e.g. an admin endpoint. 0 or
 * TK_EIO (the old file stays in use). */
int tk_log_reopen(void);

/* Installs a SIGHUP handler that only sets a flag (async-signal-safe); the
 * next line written by any thread first reopens the file as tk_log_reopen()
 * does (a failure is reported by an error line in the old file). Replaces
 * any previous SIGHUP disposition. Call once from the main thread at start.
 * 0 or TK_EIO. */
int tk_log_watch_sighup(void);

/* Closes the file; later lines go to stderr. */
void tk_log_shutdown(void);

/* The descriptor lines go to now (2 for stderr). Async-signal-safe (one
 * atomic load): the crash handler writes its last line there. */
int tk_log_fd(void);

/* Lines written at level, and lines lost because write(2) failed (disk full,
 * closed stderr, ...), since the start; for metrics. */
uint64_t tk_log_lines_written(enum tk_log_level level);
uint64_t tk_log_lines_dropped(void);

/* Run-time level (atomic; takes effect for the next line of every thread).
 * Out-of-range values are clamped to debug..critical. */
void tk_log_set_level(enum tk_log_level level);
enum tk_log_level tk_log_get_level(void);
bool tk_log_enabled(enum tk_log_level level);

/* "debug" ... "critical" <-> level. parse is case-insensitive, also takes
 * "warn", and returns 0 or TK_EINVAL; name returns "unknown" when out of
 * range. */
const char *tk_log_level_name(enum tk_log_level level);
int tk_log_level_parse(const char *s, enum tk_log_level *out);

/* Registers a secret value (copied) to redact from every later line: in
 * msg, component, keys, context values and string field values, matched as
 * raw bytes before escaping. Values shorter than 4 bytes are refused with
 * TK_EINVAL (they would redact ordinary text). A secret cut by a truncation
 * is redacted too, never shown in part. Registering a value twice is a
 * no-op. Secrets stay registered (and their copies allocated) for the life
 * of the process. 0, TK_EINVAL, TK_ELIMIT (longer than TK_LOG_SECRET_MAX or
 * more than TK_LOG_SECRETS_MAX secrets) or TK_ENOMEM. */
int tk_log_add_secret(const char *value);

/* True when a field with this key is always written as "[REDACTED]":
 * case-insensitively api_key, apikey, api-key, x-api-key, authorization,
 * proxy-authorization, password, passwd, secret, token, cookie, set-cookie,
 * or a key ending in _key, -key, _secret, -secret, _token, -token or
 * _password. Applies to context keys and call fields of every type. */
bool tk_log_key_is_credential(const char *key);

/* Sets (key and value copied) or, with value NULL, clears a context field
 * of the calling thread only; setting a key again replaces its value in
 * place. Keys are 1..TK_LOG_CTX_KEY_MAX bytes and not a core key (ts, level,
 * severity, msg, component); values at most TK_LOG_CTX_VALUE_MAX bytes.
 * At most TK_LOG_CTX_MAX fields. 0, TK_EINVAL (bad key), TK_ELIMIT (too
 * many fields or value too long; nothing changes) or TK_ENOMEM. Clearing a
 * key that is not set returns 0. Context is per thread: a worker that picks
 * up a task sets it and clears it (tk_log_ctx_clear_all) when done. */
#define TK_LOG_CTX_MAX 8
#define TK_LOG_CTX_KEY_MAX 63
#define TK_LOG_CTX_VALUE_MAX 255
int tk_log_ctx_set(const char *key, const char *value);
void tk_log_ctx_clear_all(void);

/* Writes one line (see the format above). component and fields are
 * borrowed for the call; component NULL is written as "", fmt NULL as an
 * empty msg, fields NULL as no fields. errno is preserved (so "%m" works
 * and callers' errno survives). Never fails visibly: a line whose write(2)
 * fails is counted in tk_log_lines_dropped(). */
void tk_log_write(enum tk_log_level level, const char *component,
		  const struct tk_log_field *fields, size_t n_fields,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Convenience: tk_log(TK_LOG_INFO, "server", "listening on %s", addr); */
#define tk_log(level, component, ...) \
	tk_log_write((level), (component), NULL, 0, __VA_ARGS__)

/* With fields:
 *   tk_logf(TK_LOG_INFO, "sandbox", TK_FIELDS(TK_LF_S("profile", p),
 *           TK_LF_I("exit", code)), "run finished"); */
#define TK_FIELDS(...) \
	((const struct tk_log_field[]){ __VA_ARGS__ }), \
	(sizeof((const struct tk_log_field[]){ __VA_ARGS__ }) / sizeof(struct tk_log_field))
#define tk_logf(level, component, fields_and_count, ...) \
	tk_log_write((level), (component), fields_and_count, __VA_ARGS__)

#endif
