/* log.c — PLACEHOLDER minimal logger so the tree links; replaced by the full
 * implementation (escaping, redaction, context) in the obs work. */
#include "obs/log.h"

#include "core/err.h"
#include "core/time.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum tk_log_level cur_level = TK_LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warning", "error", "critical" };

int tk_log_init(const char *path, enum tk_log_level level) { (void)path; cur_level = level; return 0; }
int tk_log_reopen(void) { return 0; }
void tk_log_shutdown(void) {}
void tk_log_set_level(enum tk_log_level level) { cur_level = level; }
enum tk_log_level tk_log_get_level(void) { return cur_level; }
bool tk_log_enabled(enum tk_log_level level) { return level >= cur_level; }
const char *tk_log_level_name(enum tk_log_level level) { return level_names[level]; }
int tk_log_level_parse(const char *s, enum tk_log_level *out)
{
	for (int i = 0; i < 5; i++)
		if (!strcmp(s, level_names[i])) { *out = (enum tk_log_level)i; return 0; }
	return tk_errf(TK_EINVAL, "unknown log level '%s'", s);
}
int tk_log_add_secret(const char *value) { (void)value; return 0; }
int tk_log_ctx_set(const char *key, const char *value) { (void)key; (void)value; return 0; }
void tk_log_ctx_clear_all(void) {}

void tk_log_write(enum tk_log_level level, const char *component,
		  const struct tk_log_field *fields, size_t n_fields, const char *fmt, ...)
{
	(void)fields; (void)n_fields;
	if (level < cur_level)
		return;
	char ts[TK_RFC3339_LEN], msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"%s\"}\n",
		tk_time_rfc3339(tk_time_real_ns(), ts), level_names[level], component, msg);
}
