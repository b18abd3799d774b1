/* json.c — strict JSON parsing and field validation over jansson (json.h). */
#include "core/json.h"

#include "core/err.h"
#include "core/utf8.h"

#include <stdio.h>
#include <string.h>

int tk_json_parse(const char *text, size_t len, size_t max_bytes, json_t **out)
{
	*out = NULL;
	if (len > max_bytes)
		return tk_errf(TK_ELIMIT, "json: document of %zu bytes exceeds the limit of %zu",
			       len, max_bytes);
	json_error_t e;
	/* REJECT_DUPLICATES: {"a":1,"a":2} is ambiguous; refuse it.
	 * NUL in strings stays refused (jansson's default). */
	json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
	if (!v)
		return tk_errf(TK_EFORMAT, "json: line %d column %d: %s", e.line, e.column,
			       e.text);
	*out = v;
	return 0;
}

const char *tk_json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

static const char *want_name(enum tk_json_type t)
{
	static const char *const names[] = {
		[TK_JT_ANY] = "any value", [TK_JT_STRING] = "string",
		[TK_JT_INT] = "integer", [TK_JT_NUMBER] = "number",
		[TK_JT_BOOL] = "boolean", [TK_JT_OBJECT] = "object",
		[TK_JT_ARRAY] = "array",
	};
	return names[t];
}

static bool type_ok(const json_t *v, enum tk_json_type t)
{
	switch (t) {
	case TK_JT_ANY: return true;
	case TK_JT_STRING: return json_is_string(v);
	case TK_JT_INT: return json_is_integer(v);
	case TK_JT_NUMBER: return json_is_number(v);
	case TK_JT_BOOL: return json_is_boolean(v);
	case TK_JT_OBJECT: return json_is_object(v);
	case TK_JT_ARRAY: return json_is_array(v);
	}
	return false;
}

/* Writes "where.name" (or just "name") into out. */
static void field_path(char *out, size_t cap, const char *where, const char *name)
{
	if (where && *where)
		snprintf(out, cap, "%s.%s", where, name);
	else
		snprintf(out, cap, "%s", name);
}

static int check_one(const json_t *v, const struct tk_json_field *f, const char *path)
{
	if (!type_ok(v, f->type))
		return tk_errf(TK_EINVAL, "%s: expected %s, got %s", path, want_name(f->type),
			       tk_json_type_name(v));
	size_t len = 0;
	bool has_len = false;
	if (json_is_string(v)) {
		len = json_string_length(v);
		has_len = true;
	} else if (json_is_array(v)) {
		len = json_array_size(v);
		has_len = true;
	}
	const char *unit = json_is_string(v) ? "bytes" : "items";
	if (has_len && f->max_len && len > f->max_len)
		return tk_errf(TK_EINVAL, "%s: length %zu exceeds the limit of %zu %s", path,
			       len, f->max_len, unit);
	if (has_len && len < f->min_len)
		return tk_errf(TK_EINVAL, "%s: length %zu is below the minimum of %zu %s", path,
			       len, f->min_len, unit);
	if (f->has_range && json_is_number(v)) {
		double d = json_number_value(v);
		if (!(d >= f->min && d <= f->max)) {
			if (json_is_integer(v))
				return tk_errf(TK_EINVAL, "%s: %lld is out of range %.17g..%.17g",
					       path, (long long)json_integer_value(v), f->min,
					       f->max);
			return tk_errf(TK_EINVAL, "%s: %.17g is out of range %.17g..%.17g", path,
				       d, f->min, f->max);
		}
	}
	return 0;
}

int tk_json_validate(const json_t *obj, const struct tk_json_field *fields, size_t n,
		     enum tk_json_unknown policy, const char *where)
{
	char path[256];
	if (!json_is_object(obj))
		return tk_errf(TK_EINVAL, "%s: expected object, got %s",
			       where && *where ? where : "body", tk_json_type_name(obj));
	for (size_t i = 0; i < n; i++) {
		const struct tk_json_field *f = &fields[i];
		field_path(path, sizeof path, where, f->name);
		const json_t *v = json_object_get(obj, f->name);
		if (v && json_is_null(v) && f->nullable)
			v = NULL;
		if (!v) {
			if (f->required)
				return tk_errf(TK_EINVAL, "%s: required field is missing", path);
			continue;
		}
		int rc = check_one(v, f, path);
		if (rc)
			return rc;
	}
	if (policy == TK_JSON_REJECT_UNKNOWN) {
		const char *key;
		const json_t *v;
		json_object_foreach((json_t *)obj, key, v) {
			bool known = false;
			for (size_t i = 0; i < n && !known; i++)
				known = !strcmp(fields[i].name, key);
			if (!known) {
				field_path(path, sizeof path, where, key);
				return tk_errf(TK_EINVAL, "%s: unknown field", path);
			}
		}
	}
	return 0;
}

const char *tk_json_get_str(const json_t *obj, const char *key, const char *def)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : def;
}

int64_t tk_json_get_int(const json_t *obj, const char *key, int64_t def)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

bool tk_json_get_bool(const json_t *obj, const char *key, bool def)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_boolean(v) ? json_is_true(v) : def;
}

static int dump_cb(const char *p, size_t n, void *arg)
{
	return tk_buf_append(arg, p, n) ? -1 : 0;
}

int tk_json_dump(const json_t *v, bool sort, struct tk_buf *out)
{
	size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | (sort ? JSON_SORT_KEYS : 0);
	if (json_dump_callback(v, dump_cb, out, flags) != 0)
		return tk_err_last() ? tk_err_last() : tk_errf(TK_EINVAL, "json: cannot encode");
	return 0;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_valid_len(const unsigned char *p, size_t left)
{
	int r = tk_utf8_check(p, left);
	return r > 0 ? (size_t)r : 0;
}

int tk_json_quote(struct tk_buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	int rc = tk_buf_putc(out, '"');
	for (size_t i = 0; i < len && !rc;) {
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			rc = tk_buf_append(out, esc, 2);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			rc = tk_buf_append(out, esc, 6);
			i++;
		} else {
			size_t n = utf8_valid_len(p + i, len - i);
			if (n == 0) {
				rc = tk_buf_append(out, "\xef\xbf\xbd", 3); /* U+FFFD */
				i++;
			} else {
				rc = tk_buf_append(out, p + i, n);
				i += n;
			}
		}
	}
	return rc ? rc : tk_buf_putc(out, '"');
}
