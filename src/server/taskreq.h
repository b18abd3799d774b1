/*
 * taskreq.h — strict validation of the TaskRequest body of POST /run_task.
 *
 * All checks on client-supplied task input live here, in one place, so that
 * the rules are easy to read and to test. Syntax and the field table go
 * through core/json.h (strict parse: UTF-8 only, no NUL, no duplicate keys;
 * each known field's type, length and range; unknown fields refused); on top
 * of that this file checks `language`'s characters and, for `files` and
 * `file_paths`: relative paths only — no leading '/', no '..' or '.'
 * component, no empty component, no backslash or control character — with
 * count and size caps.
 *
 * Errors name the failing field ("files[2].path: must be a relative path").
 * Pure functions; any thread may call.
 */
#ifndef TK_SERVER_TASKREQ_H
#define TK_SERVER_TASKREQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct tk_taskreq_limits {
	size_t description_max_bytes; /* task_description; default 65536 */
	size_t context_max_bytes;     /* context; default 262144 */
	size_t files_max;             /* entries in files and in file_paths; default 256 */
	size_t file_max_bytes;        /* one file's content; default 1 MiB */
	size_t files_total_max_bytes; /* all contents together; default 4 MiB */
	size_t path_max_bytes;        /* one path; default 1024 */
	double wait_max_s;            /* largest accepted `wait`; default 300 */
};

void tk_taskreq_limits_default(struct tk_taskreq_limits *l);

/* Validates body[0..len) (borrowed) as a TaskRequest. On success returns 0,
 * sets *req_out to a new JSON object holding only the known fields
 * (ownership transferred: json_decref it) and *wait_s to the requested wait
 * (0 when absent). On bad input returns TK_EINVAL (or TK_EFORMAT for JSON
 * that does not parse) with a detail naming the field; *req_out untouched. */
int tk_taskreq_parse(const char *body, size_t len, const struct tk_taskreq_limits *lim,
		     json_t **req_out, double *wait_s);

/* Whether p is an acceptable relative path under the rules above (max_bytes
 * long at most). */
bool tk_taskreq_path_ok(const char *p, size_t max_bytes);

#endif
