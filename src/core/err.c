/* err.c — error codes and per-thread details (see err.h). */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char tl_detail[TK_ERR_DETAIL_MAX];
static _Thread_local int tl_code;

static const struct {
	const char *name;
	const char *text;
} err_table[] = {
	[0] = { "ok", "success" },
	[-TK_EINVAL] = { "invalid_argument", "invalid argument" },
	[-TK_ENOMEM] = { "out_of_memory", "out of memory" },
	[-TK_EIO] = { "io_error", "input/output error" },
	[-TK_ENOENT] = { "not_found", "not found" },
	[-TK_EEXIST] = { "already_exists", "already exists" },
	[-TK_EPERM] = { "permission_denied", "permission denied" },
	[-TK_ELIMIT] = { "limit_exceeded", "limit exceeded" },
	[-TK_EFORMAT] = { "bad_format", "malformed data" },
	[-TK_EUNSUPPORTED] = { "unsupported", "not supported" },
	[-TK_ETIMEOUT] = { "timeout", "timed out" },
	[-TK_ECANCELED] = { "cancelled", "cancelled" },
	[-TK_EBUSY] = { "busy", "busy, try again later" },
	[-TK_ESTATE] = { "bad_state", "not valid in the current state" },
	[-TK_EINTERNAL] = { "internal", "internal error" },
};

static int index_of(int code)
{
	if (code > 0 || code <= TK_E_MIN_)
		return -1;
	return -code;
}

const char *tk_strerror(int code)
{
	int i = index_of(code);
	return i < 0 ? "unknown error" : err_table[i].text;
}

const char *tk_err_name(int code)
{
	int i = index_of(code);
	return i < 0 ? "unknown" : err_table[i].name;
}

/* Marks a truncated detail with "..." so nobody mistakes it for whole. */
static void mark_truncated(int n)
{
	if (n >= (int)sizeof tl_detail)
		memcpy(tl_detail + sizeof tl_detail - 4, "...", 4);
}

int tk_errf(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tl_detail, sizeof tl_detail, fmt, ap);
	va_end(ap);
	mark_truncated(n);
	tl_code = code;
	return code;
}

int tk_errf_sys(int code, int errnum, const char *fmt, ...)
{
	char sysbuf[128];
	const char *sys = strerror_r(errnum, sysbuf, sizeof sysbuf);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tl_detail, sizeof tl_detail, fmt, ap);
	va_end(ap);
	if (n >= 0 && n < (int)sizeof tl_detail)
		n += snprintf(tl_detail + n, sizeof tl_detail - (size_t)n, ": %s", sys);
	mark_truncated(n);
	tl_code = code;
	return code;
}

int tk_err_wrap(int code, const char *fmt, ...)
{
	char prefix[256];
	char old[TK_ERR_DETAIL_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, tl_detail, sizeof old);
	int n;
	if (old[0])
		n = snprintf(tl_detail, sizeof tl_detail, "%s: %s", prefix, old);
	else
		n = snprintf(tl_detail, sizeof tl_detail, "%s: %s", prefix, tk_strerror(code));
	mark_truncated(n);
	tl_code = code;
	return code;
}

const char *tk_err_detail(void)
{
	return tl_detail;
}

int tk_err_last(void)
{
	return tl_code;
}

void tk_err_clear(void)
{
	tl_detail[0] = '\0';
	tl_code = 0;
}
