/*
 * json.h — JSON through jansson, with strict parsing and request validation.
 *
 * Parsing is strict: the text must be valid UTF-8 JSON with a single value,
 * no duplicate object keys, no NUL in strings, and at most max_bytes long.
 * Validation checks an object against a table of field specs (required,
 * type, string/array length limits, integer or number ranges, and a policy
 * for unknown fields); every failure names the field:
 *     "files[2].path: length 5000 exceeds the limit of 4096 bytes"
 *
 * Values are jansson's json_t: the caller owns what tk_json_parse returns
 * and releases it with json_decref. All functions are thread-safe (jansson's
 * reference counts are atomic in the Debian build; don't share one json_t
 * between threads while changing it).
 */
#ifndef TK_CORE_JSON_H
#define TK_CORE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum tk_json_type {
	TK_JT_ANY = 0,
	TK_JT_STRING,
	TK_JT_INT,    /* integer literal only (no 1.0) */
	TK_JT_NUMBER, /* integer or real */
	TK_JT_BOOL,
	TK_JT_OBJECT,
	TK_JT_ARRAY,
};

struct tk_json_field {
	const char *name;
	enum tk_json_type type;
	bool required;
	bool nullable;      /* null is accepted (and treated as absent) */
	size_t max_len;     /* strings: bytes; arrays: items; 0 = no limit */
	size_t min_len;     /* strings: bytes; arrays: items */
	bool has_range;     /* check [min, max] for INT and NUMBER */
	double min, max;
};

enum tk_json_unknown {
	TK_JSON_REJECT_UNKNOWN, /* an unknown field is an error */
	TK_JSON_IGNORE_UNKNOWN, /* unknown fields are accepted and ignored */
};

/* Parses text (len bytes, need not be NUL-terminated). Fails with
 * TK_ELIMIT past max_bytes, TK_EFORMAT with line/column otherwise.
 * On success *out is a new reference owned by the caller. */
int tk_json_parse(const char *text, size_t len, size_t max_bytes, json_t **out);

/* Checks obj against fields[0..n). where prefixes messages ("" or NULL for
 * top level, "files[2]" for an array item). 0 or TK_EINVAL with a detail. */
int tk_json_validate(const json_t *obj, const struct tk_json_field *fields, size_t n,
		     enum tk_json_unknown policy, const char *where);

/* The JSON type name jansson's value has ("string", "integer", ...). */
const char *tk_json_type_name(const json_t *v);

/* Borrowed accessors that tolerate absence: the member's value if it has
 * the right type, else def. */
const char *tk_json_get_str(const json_t *obj, const char *key, const char *def);
int64_t tk_json_get_int(const json_t *obj, const char *key, int64_t def);
bool tk_json_get_bool(const json_t *obj, const char *key, bool def);

/* Appends compact JSON for v to out (sorted keys if sort). 0 or a tk_buf
 * error (TK_ELIMIT when out's cap is hit). */
int tk_json_dump(const json_t *v, bool sort, struct tk_buf *out);

/* Appends s as a quoted, escaped JSON string to out. Invalid UTF-8 is
 * replaced by U+FFFD. 0 or a tk_buf error. */
int tk_json_quote(struct tk_buf *out, const char *s, size_t len);

#endif
