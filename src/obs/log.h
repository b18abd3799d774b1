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
 * stderr at level info.
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

#define TK_LOG_MSG_MAX 8192 /* bytes of message kept before truncation */

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

/* Opens the log: path NULL or "-" means stderr. 0 or a TK_E* error. */
int tk_log_init(const char *path, enum tk_log_level level);

/* Reopens the file given to tk_log_init (no-op on stderr). 0 or TK_EIO. */
int tk_log_reopen(void);

/* Closes the file; later lines go to stderr. */
void tk_log_shutdown(void);

void tk_log_set_level(enum tk_log_level level);
enum tk_log_level tk_log_get_level(void);
bool tk_log_enabled(enum tk_log_level level);

/* "debug" ... "critical" <-> level. parse returns 0 or TK_EINVAL. */
const char *tk_log_level_name(enum tk_log_level level);
int tk_log_level_parse(const char *s, enum tk_log_level *out);

/* Registers a secret value (copied) to redact from every later line.
 * Values shorter than 4 bytes are refused with TK_EINVAL (they would redact
 * ordinary text). 0, TK_EINVAL or TK_ENOMEM. */
int tk_log_add_secret(const char *value);

/* Sets (value copied) or, with value NULL, clears a context field of the
 * calling thread. At most TK_LOG_CTX_MAX fields; 0 or TK_ELIMIT. */
#define TK_LOG_CTX_MAX 8
int tk_log_ctx_set(const char *key, const char *value);
void tk_log_ctx_clear_all(void);

/* Writes one line. fields may be NULL when n_fields is 0. */
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
