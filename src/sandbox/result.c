/*
 * result.c — the result record: status and limit names, life cycle of
 * struct tk_sandbox_result, and its JSON form (like isolate's meta file).
 */
#include "sandbox/sandbox.h"

#include "core/err.h"
#include "core/utf8.h"

#include <stdint.h>
#include <string.h>

static const char *const status_names[] = { "OK", "RE", "SG", "TO", "ML", "OL", "XX" };
static const char *const limit_names[] = { "none",   "cpu",   "wall",  "memory",
					   "pids",   "output", "fsize", "disk" };
_Static_assert(sizeof limit_names / sizeof limit_names[0] == TK_SB_LIM_COUNT_,
	       "a name for every limit");

const char *tk_sandbox_status_name(enum tk_sandbox_status s)
{
	if ((unsigned)s >= sizeof status_names / sizeof status_names[0])
		return "XX";
	return status_names[s];
}

const char *tk_sandbox_limit_name(enum tk_sandbox_limit l)
{
	if ((unsigned)l >= TK_SB_LIM_COUNT_)
		return "none";
	return limit_names[l];
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	int r = tk_utf8_check(p, n);
	return r > 0 ? (size_t)r : 0;
}

/* Program output is arbitrary bytes; JSON needs UTF-8: invalid bytes become
 * U+FFFD. New reference or NULL. */
static json_t *utf8_string(const struct tk_buf *b)
{
	const unsigned char *p = (const unsigned char *)(b->data ? b->data : "");
	size_t n = b->data ? b->len : 0;
	struct tk_buf clean;
	tk_buf_init(&clean, n * 3 + 16);
	for (size_t i = 0; i < n;) {
		size_t l = utf8_len(p + i, n - i);
		if (l == 0) {
			if (tk_buf_append(&clean, "\xef\xbf\xbd", 3))
				goto fail;
			i++;
			continue;
		}
		if (tk_buf_append(&clean, p + i, l))
			goto fail;
		i += l;
	}
	json_t *s = json_stringn(clean.data ? clean.data : "", clean.len);
	tk_buf_free(&clean);
	return s;
fail:
	tk_buf_free(&clean);
	return NULL;
}

void tk_sandbox_result_init(struct tk_sandbox_result *r)
{
	memset(r, 0, sizeof *r);
	r->status = TK_SB_XX;
	r->exit_code = -1;
	tk_buf_init(&r->out, 0);
	tk_buf_init(&r->err, 0);
}

void tk_sandbox_result_free(struct tk_sandbox_result *r)
{
	if (!r)
		return;
	tk_buf_free(&r->out);
	tk_buf_free(&r->err);
}

json_t *tk_sandbox_result_to_json(const struct tk_sandbox_result *r, bool with_output)
{
	json_t *o = json_object();
	json_t *hit = json_array();
	if (!o || !hit) {
		json_decref(o);
		json_decref(hit);
		goto oom;
	}
	if (json_object_set_new(o, "limits_hit", hit))
		goto fail;
	for (unsigned l = 1; l < TK_SB_LIM_COUNT_; l++)
		if ((r->limits_hit & (1u << l)) &&
		    json_array_append_new(hit, json_string(limit_names[l])))
			goto fail;
	int bad = 0;
	bad |= json_object_set_new(o, "status", json_string(tk_sandbox_status_name(r->status)));
	bad |= json_object_set_new(o, "limit", json_string(tk_sandbox_limit_name(r->limit)));
	bad |= json_object_set_new(o, "exit_code", r->exit_code >= 0
							 ? json_integer(r->exit_code)
							 : json_null());
	bad |= json_object_set_new(o, "signal", json_integer(r->signal));
	bad |= json_object_set_new(o, "cpu_ms", json_integer((json_int_t)r->cpu_ms));
	bad |= json_object_set_new(o, "wall_ms", json_integer((json_int_t)r->wall_ms));
	bad |= json_object_set_new(o, "max_rss_kb", json_integer((json_int_t)r->max_rss_kb));
	bad |= json_object_set_new(o, "peak_memory_kb",
				   json_integer((json_int_t)r->peak_memory_kb));
	bad |= json_object_set_new(o, "stdout_bytes", json_integer((json_int_t)r->stdout_bytes));
	bad |= json_object_set_new(o, "stderr_bytes", json_integer((json_int_t)r->stderr_bytes));
	bad |= json_object_set_new(o, "stdout_truncated", json_boolean(r->stdout_truncated));
	bad |= json_object_set_new(o, "stderr_truncated", json_boolean(r->stderr_truncated));
	bad |= json_object_set_new(o, "profile", json_string(r->profile));
	bad |= json_object_set_new(o, "message", json_string(r->message));
	if (with_output) {
		bad |= json_object_set_new(o, "stdout", utf8_string(&r->out));
		bad |= json_object_set_new(o, "stderr", utf8_string(&r->err));
	}
	if (bad)
		goto fail;
	return o;
fail:
	json_decref(o);
oom:
	tk_errf(TK_ENOMEM, "sandbox: out of memory building the result JSON");
	return NULL;
}
