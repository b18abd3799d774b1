/*
 * taskreq.c — TaskRequest validation (see taskreq.h). Owns nothing beyond
 * the JSON object it hands back.
 */
#include "server/taskreq.h"

#include "core/err.h"
#include "core/json.h"

#include <stdio.h>
#include <string.h>

void tk_taskreq_limits_default(struct tk_taskreq_limits *l)
{
	l->description_max_bytes = 65536;
	l->context_max_bytes = 262144;
	l->files_max = 256;
	l->file_max_bytes = 1u << 20;
	l->files_total_max_bytes = 4u << 20;
	l->path_max_bytes = 1024;
	l->wait_max_s = 300;
}

bool tk_taskreq_path_ok(const char *p, size_t max_bytes)
{
	size_t n = strlen(p);
	if (n == 0 || n > max_bytes || p[0] == '/')
		return false;
	const char *seg = p;
	for (const char *c = p;; c++) {
		if (*c == '/' || *c == '\0') {
			size_t sl = (size_t)(c - seg);
			if (sl == 0) /* empty component: "a//b" or trailing "/" */
				return false;
			if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
				return false;
			if (*c == '\0')
				return true;
			seg = c + 1;
			continue;
		}
		/* Backslashes are refused so a Windows-style "..\\x" cannot sneak
		 * past the component check in a tool that treats '\' as a separator. */
		if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\\')
			return false;
	}
}

static int check_language(json_t *v)
{
	const char *s = json_string_value(v);
	if (!*s)
		return tk_errf(TK_EINVAL, "language: must not be empty");
	for (const char *c = s; *c; c++) {
		char ch = *c;
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || strchr("+#._-", ch);
		if (!ok)
			return tk_errf(TK_EINVAL, "language: only letters, digits and +#._- allowed");
	}
	return 0;
}

static int check_files(json_t *files, const struct tk_taskreq_limits *lim)
{
	const struct tk_json_field file_fields[] = {
		{ .name = "path", .type = TK_JT_STRING, .required = true, .min_len = 1,
		  .max_len = lim->path_max_bytes },
		{ .name = "content", .type = TK_JT_STRING, .required = true,
		  .max_len = lim->file_max_bytes },
	};
	size_t total = 0, i;
	json_t *f;
	char where[32];
	json_array_foreach(files, i, f) {
		snprintf(where, sizeof where, "files[%zu]", i);
		int rc = tk_json_validate(f, file_fields, 2, TK_JSON_REJECT_UNKNOWN, where);
		if (rc < 0)
			return rc;
		json_t *p = json_object_get(f, "path");
		if (!tk_taskreq_path_ok(json_string_value(p), lim->path_max_bytes))
			return tk_errf(TK_EINVAL, "files[%zu].path: must be a relative path without "
				       "'..', '.', empty components, backslashes or control "
				       "characters", i);
		for (size_t j = 0; j < i; j++)
			if (json_equal(json_object_get(json_array_get(files, j), "path"), p))
				return tk_errf(TK_EINVAL, "files[%zu].path: duplicate of files[%zu]", i, j);
		total += json_string_length(json_object_get(f, "content"));
		if (total > lim->files_total_max_bytes)
			return tk_errf(TK_EINVAL, "files: contents larger than %zu bytes in all",
				       lim->files_total_max_bytes);
	}
	return 0;
}

static int check_file_paths(json_t *fp, const struct tk_taskreq_limits *lim)
{
	size_t i;
	json_t *p;
	json_array_foreach(fp, i, p) {
		if (!json_is_string(p))
			return tk_errf(TK_EINVAL, "file_paths[%zu]: must be a string", i);
		if (!tk_taskreq_path_ok(json_string_value(p), lim->path_max_bytes))
			return tk_errf(TK_EINVAL, "file_paths[%zu]: must be a relative path without "
				       "'..', '.', empty components or control characters", i);
	}
	return 0;
}

int tk_taskreq_parse(const char *body, size_t len, const struct tk_taskreq_limits *lim,
		     json_t **req_out, double *wait_s)
{
	const struct tk_json_field fields[] = {
		{ .name = "task_description", .type = TK_JT_STRING, .required = true,
		  .min_len = 1, .max_len = lim->description_max_bytes },
		{ .name = "context", .type = TK_JT_STRING, .nullable = true,
		  .max_len = lim->context_max_bytes },
		{ .name = "file_paths", .type = TK_JT_ARRAY, .nullable = true,
		  .max_len = lim->files_max },
		{ .name = "files", .type = TK_JT_ARRAY, .nullable = true, .max_len = lim->files_max },
		{ .name = "language", .type = TK_JT_STRING, .nullable = true, .min_len = 1,
		  .max_len = 32 },
		{ .name = "test_command", .type = TK_JT_STRING, .nullable = true, .max_len = 4096 },
		{ .name = "wait", .type = TK_JT_NUMBER, .nullable = true, .has_range = true,
		  .min = 0, .max = lim->wait_max_s },
	};
	const size_t n_fields = sizeof fields / sizeof fields[0];
	json_t *root = NULL;
	/* Strict parsing (core/json.h): UTF-8 only, no NUL, no duplicate keys —
	 * two "wait" keys must not let one part of the system read the first
	 * and another the second. The body cap was enforced by the server. */
	int rc = tk_json_parse(body, len, len, &root);
	if (rc < 0)
		return tk_err_wrap(rc, "body");
	if ((rc = tk_json_validate(root, fields, n_fields, TK_JSON_REJECT_UNKNOWN, "")) < 0)
		goto out;
	json_t *lang = json_object_get(root, "language");
	if (json_is_string(lang) && (rc = check_language(lang)) < 0)
		goto out;
	json_t *files = json_object_get(root, "files");
	if (json_is_array(files) && (rc = check_files(files, lim)) < 0)
		goto out;
	json_t *fp = json_object_get(root, "file_paths");
	if (json_is_array(fp) && (rc = check_file_paths(fp, lim)) < 0)
		goto out;

	/* The stored request: the known fields that are present and not null,
	 * without `wait` (a property of this HTTP call, not of the task). */
	json_t *req = json_object();
	if (!req) {
		rc = tk_errf(TK_ENOMEM, "body: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n_fields; i++) {
		json_t *v = json_object_get(root, fields[i].name);
		if (!v || json_is_null(v) || !strcmp(fields[i].name, "wait"))
			continue;
		if (json_object_set(req, fields[i].name, v) < 0) {
			json_decref(req);
			rc = tk_errf(TK_ENOMEM, "body: out of memory");
			goto out;
		}
	}
	json_t *wv = json_object_get(root, "wait");
	*wait_s = json_is_number(wv) ? json_number_value(wv) : 0;
	*req_out = req;
	rc = 0;
out:
	json_decref(root);
	return rc;
}
