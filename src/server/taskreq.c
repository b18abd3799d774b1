/*
 * taskreq.c — TaskRequest validation (see taskreq.h). Owns nothing beyond
 * the JSON object it hands back.
 */
#include "server/taskreq.h"

#include "core/err.h"

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

/* A string field of at most max bytes; required or optional (null allowed
 * for optional, as the original API did). Returns 0 and *out (borrowed from
 * the tree, NULL when absent or null) or TK_EINVAL. */
static int get_string(json_t *root, const char *name, bool required, size_t max,
		      json_t **out)
{
	json_t *v = json_object_get(root, name);
	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return tk_errf(TK_EINVAL, "%s: field required", name);
		return 0;
	}
	if (!json_is_string(v))
		return tk_errf(TK_EINVAL, "%s: must be a string", name);
	size_t n = json_string_length(v);
	if (required && n == 0)
		return tk_errf(TK_EINVAL, "%s: must not be empty", name);
	if (n > max)
		return tk_errf(TK_EINVAL, "%s: longer than %zu bytes", name, max);
	*out = v;
	return 0;
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
	if (!json_is_array(files))
		return tk_errf(TK_EINVAL, "files: must be an array of {path, content}");
	if (json_array_size(files) > lim->files_max)
		return tk_errf(TK_EINVAL, "files: more than %zu entries", lim->files_max);
	size_t total = 0, i;
	json_t *f;
	json_array_foreach(files, i, f) {
		if (!json_is_object(f))
			return tk_errf(TK_EINVAL, "files[%zu]: must be an object {path, content}", i);
		const char *k;
		json_t *x;
		json_object_foreach(f, k, x) {
			if (strcmp(k, "path") && strcmp(k, "content"))
				return tk_errf(TK_EINVAL, "files[%zu]: unknown field", i);
		}
		json_t *p = json_object_get(f, "path"), *c = json_object_get(f, "content");
		if (!json_is_string(p))
			return tk_errf(TK_EINVAL, "files[%zu].path: must be a string", i);
		if (!tk_taskreq_path_ok(json_string_value(p), lim->path_max_bytes) ||
		    json_string_length(p) != strlen(json_string_value(p)))
			return tk_errf(TK_EINVAL, "files[%zu].path: must be a relative path without "
				       "'..', '.', empty components or control characters "
				       "(at most %zu bytes)", i, lim->path_max_bytes);
		for (size_t j = 0; j < i; j++)
			if (json_equal(json_object_get(json_array_get(files, j), "path"), p))
				return tk_errf(TK_EINVAL, "files[%zu].path: duplicate of files[%zu]", i, j);
		if (!json_is_string(c))
			return tk_errf(TK_EINVAL, "files[%zu].content: must be a string", i);
		size_t n = json_string_length(c);
		if (n > lim->file_max_bytes)
			return tk_errf(TK_EINVAL, "files[%zu].content: larger than %zu bytes", i,
				       lim->file_max_bytes);
		total += n;
		if (total > lim->files_total_max_bytes)
			return tk_errf(TK_EINVAL, "files: contents larger than %zu bytes in all",
				       lim->files_total_max_bytes);
	}
	return 0;
}

static int check_file_paths(json_t *fp, const struct tk_taskreq_limits *lim)
{
	if (!json_is_array(fp))
		return tk_errf(TK_EINVAL, "file_paths: must be an array of strings");
	if (json_array_size(fp) > lim->files_max)
		return tk_errf(TK_EINVAL, "file_paths: more than %zu entries", lim->files_max);
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

static const char *const known_fields[] = {
	"task_description", "context", "file_paths", "files", "language", "test_command", "wait",
};

int tk_taskreq_parse(const char *body, size_t len, const struct tk_taskreq_limits *lim,
		     json_t **req_out, double *wait_s)
{
	json_error_t jerr;
	/* JSON_REJECT_DUPLICATES: two "wait" keys must not let one part of the
	 * system read the first and another the second. */
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	int rc;
	if (!root)
		return tk_errf(TK_EFORMAT, "body: invalid JSON at byte %d: %s", jerr.position,
			       jerr.text);
	if (!json_is_object(root)) {
		rc = tk_errf(TK_EINVAL, "body: must be a JSON object");
		goto out;
	}
	const char *k;
	json_t *v;
	json_object_foreach(root, k, v) {
		bool known = false;
		for (size_t i = 0; i < sizeof known_fields / sizeof known_fields[0]; i++)
			known = known || !strcmp(k, known_fields[i]);
		if (!known) {
			rc = tk_errf(TK_EINVAL, "%.64s: unknown field", k);
			goto out;
		}
	}
	json_t *desc, *ctx, *lang, *tcmd;
	if ((rc = get_string(root, "task_description", true, lim->description_max_bytes, &desc)) < 0 ||
	    (rc = get_string(root, "context", false, lim->context_max_bytes, &ctx)) < 0 ||
	    (rc = get_string(root, "language", false, 32, &lang)) < 0 ||
	    (rc = get_string(root, "test_command", false, 4096, &tcmd)) < 0)
		goto out;
	if (lang && (rc = check_language(lang)) < 0)
		goto out;
	json_t *files = json_object_get(root, "files");
	if (files && !json_is_null(files) && (rc = check_files(files, lim)) < 0)
		goto out;
	json_t *fp = json_object_get(root, "file_paths");
	if (fp && !json_is_null(fp) && (rc = check_file_paths(fp, lim)) < 0)
		goto out;
	double w = 0;
	json_t *wv = json_object_get(root, "wait");
	if (wv && !json_is_null(wv)) {
		if (!json_is_number(wv)) {
			rc = tk_errf(TK_EINVAL, "wait: must be a number of seconds");
			goto out;
		}
		w = json_number_value(wv);
		if (!(w >= 0 && w <= lim->wait_max_s)) {
			rc = tk_errf(TK_EINVAL, "wait: must be 0..%g seconds", lim->wait_max_s);
			goto out;
		}
	}

	json_t *req = json_object();
	if (!req) {
		rc = tk_errf(TK_ENOMEM, "body: out of memory");
		goto out;
	}
	rc = 0;
	rc |= json_object_set(req, "task_description", desc);
	if (ctx)
		rc |= json_object_set(req, "context", ctx);
	if (lang)
		rc |= json_object_set(req, "language", lang);
	if (tcmd)
		rc |= json_object_set(req, "test_command", tcmd);
	if (files && !json_is_null(files))
		rc |= json_object_set(req, "files", files);
	if (fp && !json_is_null(fp))
		rc |= json_object_set(req, "file_paths", fp);
	if (rc) {
		json_decref(req);
		rc = tk_errf(TK_ENOMEM, "body: out of memory");
		goto out;
	}
	*req_out = req;
	*wait_s = w;
out:
	json_decref(root);
	return rc;
}
