/*
 * store.c — the public store API (store.h): argument checking, ids,
 * timestamps, the task transition table, API key generation and
 * verification, startup recovery; everything then goes to the backend
 * table (store_backend.h). Owns no state besides the handle itself.
 */
#include "store/store.h"
#include "store/store_backend.h"

#include "core/err.h"
#include "core/id.h"
#include "core/time.h"
#include "obs/log.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ helpers */

char *store_strdup(const char *s, int *rc)
{
	*rc = 0;
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*rc = tk_errf(TK_ENOMEM, "store: out of memory copying %zu bytes", strlen(s));
	return d;
}

static void now_text(char out[TK_RFC3339_LEN])
{
	tk_time_rfc3339(tk_time_real_ns(), out);
}

static bool key_id_valid(const char *s)
{
	if (!s || strlen(s) != TK_KEY_ID_LEN - 1)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static int check_task_id(const char *id)
{
	if (!tk_id_valid(id))
		return tk_errf(TK_EINVAL, "store: task id: not a UUID: '%.40s'", id ? id : "(null)");
	return 0;
}

/* Checks that text (len bytes, no embedded NUL) is JSON; with want_object,
 * a JSON object. what names the field for the detail. */
static int check_json(const char *what, const char *text, size_t max_bytes, bool want_object)
{
	size_t len = strlen(text);
	if (len > max_bytes)
		return tk_errf(TK_ELIMIT, "store: %s: %zu bytes, over the cap of %zu", what, len,
			       max_bytes);
	json_error_t jerr;
	json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return tk_errf(TK_EINVAL, "store: %s: invalid JSON at offset %d: %s", what,
			       jerr.position, jerr.text);
	bool is_obj = json_is_object(j);
	json_decref(j);
	if (want_object && !is_obj)
		return tk_errf(TK_EINVAL, "store: %s: must be a JSON object", what);
	return 0;
}

static bool text_printable(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0 when the
 * bytes there are not one (overlong forms, surrogates and values past
 * U+10FFFF are refused, as RFC 3629 says). */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0) {
		len = 2;
		min = 0x80;
		c &= 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3;
		min = 0x800;
		c &= 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4;
		min = 0x10000;
		c &= 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return len;
}

/* A copy of text with every byte that is not part of valid UTF-8, and NUL,
 * replaced by '?': error texts come from runners and tools, and a task
 * must be able to fail with whatever bytes they produced. NULL in gives
 * NULL out; *rc is TK_ENOMEM on allocation failure. */
static char *utf8_clean(const char *text, int *rc)
{
	*rc = 0;
	if (!text)
		return NULL;
	size_t n = strlen(text);
	char *out = malloc(n + 1);
	if (!out) {
		*rc = tk_errf(TK_ENOMEM, "store: out of memory (%zu bytes)", n);
		return NULL;
	}
	const unsigned char *p = (const unsigned char *)text;
	size_t i = 0;
	while (i < n) {
		size_t l = utf8_seq_len(p + i, n - i);
		if (l == 0) {
			out[i++] = '?';
			continue;
		}
		memcpy(out + i, p + i, l);
		i += l;
	}
	out[n] = '\0';
	return out;
}

/* A "status" event's data: {"status":st} plus optional string fields. */
static char *status_event_json(enum tk_task_status st, const char *k1, const char *v1,
			       const char *k2, json_int_t attempt)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "status", json_string(tk_task_status_name(st)));
	if (k1 && v1)
		json_object_set_new(o, k1, json_string(v1));
	if (k2)
		json_object_set_new(o, k2, json_integer(attempt));
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

/* --------------------------------------------------------------- open */

void tk_store_options_default(struct tk_store_options *o)
{
	memset(o, 0, sizeof *o);
	o->busy_timeout_ms = 5000;
	o->sync_normal = false;
	o->request_max_bytes = 4u << 20;
	o->result_max_bytes = 4u << 20;
	o->error_max_bytes = 16u << 10;
	o->event_max_bytes = 64u << 10;
	o->file_max_bytes = 1u << 20;
	o->files_max_count = 256;
	o->files_max_total_bytes = 8u << 20;
	o->path_max_bytes = 1024;
	o->max_attempts = 3;
}

static void fill_defaults(struct tk_store_options *o, const struct tk_store_options *in)
{
	struct tk_store_options d;
	tk_store_options_default(&d);
	if (!in) {
		*o = d;
		return;
	}
	*o = *in;
#define DEF(f) do { if (!o->f) o->f = d.f; } while (0)
	DEF(busy_timeout_ms);
	DEF(request_max_bytes);
	DEF(result_max_bytes);
	DEF(error_max_bytes);
	DEF(event_max_bytes);
	DEF(file_max_bytes);
	DEF(files_max_count);
	DEF(files_max_total_bytes);
	DEF(path_max_bytes);
	DEF(max_attempts);
#undef DEF
}

struct tk_store *tk_store_open(const char *url, const struct tk_store_options *opts)
{
	if (!url || !*url) {
		tk_errf(TK_EINVAL, "store: empty database url");
		return NULL;
	}
	const struct tk_store_backend *be = NULL;
	const char *target = url;
	if (!strncmp(url, "sqlite:", 7)) {
		be = &store_sqlite_backend;
		target = url + 7;
	} else if (!strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13)) {
		tk_errf(TK_EUNSUPPORTED, "store: PostgreSQL is not supported by this build");
		return NULL;
	} else if (strstr(url, "://")) {
		tk_errf(TK_EUNSUPPORTED, "store: unknown database url scheme in '%.64s'", url);
		return NULL;
	} else {
		be = &store_sqlite_backend;
	}
	if (!*target) {
		tk_errf(TK_EINVAL, "store: '%s': empty path", url);
		return NULL;
	}
	struct tk_store *s = calloc(1, sizeof *s);
	if (!s) {
		tk_errf(TK_ENOMEM, "store: out of memory");
		return NULL;
	}
	s->be = be;
	fill_defaults(&s->opts, opts);
	if (s->opts.busy_timeout_ms < 0 || s->opts.max_attempts < 0) {
		tk_errf(TK_EINVAL, "store: options: negative busy_timeout_ms or max_attempts");
		goto out_free;
	}
	if (be->open(s, target))
		goto out_free;
	return s;

out_free:
	free(s);
	return NULL;
}

struct tk_store *tk_store_open_dir(const char *dir, const struct tk_store_options *opts)
{
	if (!dir || !*dir) {
		tk_errf(TK_EINVAL, "store: empty data directory");
		return NULL;
	}
	/* The directory holds key hashes and task data: owner-only. */
	if (mkdir(dir, 0700) && errno != EEXIST) {
		tk_errf_sys(TK_EIO, errno, "store: mkdir %s", dir);
		return NULL;
	}
	size_t n = strlen(dir) + sizeof "/tanuki.db";
	char *path = malloc(n);
	if (!path) {
		tk_errf(TK_ENOMEM, "store: out of memory");
		return NULL;
	}
	snprintf(path, n, "%s/tanuki.db", dir);
	/* A dir named like "sqlite:x" must still be a path: open it by scheme. */
	size_t un = n + 7;
	char *url = malloc(un);
	struct tk_store *s = NULL;
	if (!url) {
		tk_errf(TK_ENOMEM, "store: out of memory");
	} else {
		snprintf(url, un, "sqlite:%s", path);
		s = tk_store_open(url, opts);
	}
	free(url);
	free(path);
	return s;
}

void tk_store_close(struct tk_store *s)
{
	if (!s)
		return;
	s->be->close(s);
	free(s);
}

int tk_store_ping(struct tk_store *s)
{
	return s->be->ping(s);
}

int tk_store_schema_version(struct tk_store *s)
{
	return s->be->schema_version(s);
}

const char *tk_store_backend_name(const struct tk_store *s)
{
	return s->be->name;
}

/* -------------------------------------------------------------- enums */

static const char *const status_names[TK_TASK_STATUS_COUNT] = {
	"queued", "running", "completed", "failed", "timed_out", "cancelled",
};

const char *tk_task_status_name(enum tk_task_status st)
{
	if ((unsigned)st >= TK_TASK_STATUS_COUNT)
		return "unknown";
	return status_names[st];
}

int tk_task_status_parse(const char *s, enum tk_task_status *out)
{
	for (unsigned i = 0; s && i < TK_TASK_STATUS_COUNT; i++) {
		if (!strcmp(s, status_names[i])) {
			*out = (enum tk_task_status)i;
			return 0;
		}
	}
	return tk_errf(TK_EINVAL, "task status: unknown '%.32s'", s ? s : "(null)");
}

bool tk_task_status_terminal(enum tk_task_status st)
{
	return st == TK_TASK_COMPLETED || st == TK_TASK_FAILED || st == TK_TASK_TIMED_OUT ||
	       st == TK_TASK_CANCELLED;
}

bool tk_task_transition_valid(enum tk_task_status from, enum tk_task_status to)
{
	switch (from) {
	case TK_TASK_QUEUED:
		return to == TK_TASK_RUNNING || to == TK_TASK_CANCELLED;
	case TK_TASK_RUNNING:
		return tk_task_status_terminal(to);
	default:
		return false;
	}
}

/* Statuses from which set_status may reach `to`, as a mask. */
static unsigned from_mask_for(enum tk_task_status to)
{
	unsigned m = 0;
	for (unsigned i = 0; i < TK_TASK_STATUS_COUNT; i++)
		if (tk_task_transition_valid((enum tk_task_status)i, to))
			m |= STORE_ST_BIT(i);
	return m;
}

const char *tk_key_role_name(enum tk_key_role r)
{
	return r == TK_ROLE_ADMIN ? "admin" : r == TK_ROLE_USER ? "user" : "unknown";
}

int tk_key_role_parse(const char *s, enum tk_key_role *out)
{
	if (s && !strcmp(s, "user")) {
		*out = TK_ROLE_USER;
		return 0;
	}
	if (s && !strcmp(s, "admin")) {
		*out = TK_ROLE_ADMIN;
		return 0;
	}
	return tk_errf(TK_EINVAL, "key role: expected 'user' or 'admin', got '%.32s'",
		       s ? s : "(null)");
}

/* ------------------------------------------------------------- frees */

void tk_task_clear(struct tk_task *t)
{
	if (!t)
		return;
	free(t->request_json);
	free(t->result_json);
	free(t->error);
	memset(t, 0, sizeof *t);
}

void tk_tasks_free(struct tk_task *tasks, size_t n)
{
	if (!tasks)
		return;
	for (size_t i = 0; i < n; i++)
		tk_task_clear(&tasks[i]);
	free(tasks);
}

void tk_task_events_free(struct tk_task_event *ev, size_t n)
{
	if (!ev)
		return;
	for (size_t i = 0; i < n; i++)
		free(ev[i].data_json);
	free(ev);
}

void tk_task_file_clear(struct tk_task_file *f)
{
	if (!f)
		return;
	free(f->path);
	free(f->content);
	memset(f, 0, sizeof *f);
}

void tk_task_files_free(struct tk_task_file *files, size_t n)
{
	if (!files)
		return;
	for (size_t i = 0; i < n; i++)
		tk_task_file_clear(&files[i]);
	free(files);
}

void tk_artifact_clear(struct tk_artifact *a)
{
	if (!a)
		return;
	free(a->path);
	free(a->version);
	memset(a, 0, sizeof *a);
}

void tk_artifacts_free(struct tk_artifact *a, size_t n)
{
	if (!a)
		return;
	for (size_t i = 0; i < n; i++)
		tk_artifact_clear(&a[i]);
	free(a);
}

bool tk_api_key_revoked(const struct tk_api_key *k)
{
	return k->revoked[0] != '\0';
}

/* -------------------------------------------------------------- tasks */

bool tk_store_file_path_valid(const char *path, size_t max_bytes)
{
	if (!path || !*path)
		return false;
	size_t len = strlen(path);
	if (len > max_bytes)
		return false;
	/* Absolute paths and "..": a file must stay inside the task's tree
	 * wherever it is later written out. Backslashes are refused too so a
	 * Windows-style "..\\x" cannot sneak through a later consumer. */
	if (path[0] == '/' || strchr(path, '\\'))
		return false;
	if (!text_printable(path))
		return false;
	const char *p = path;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0) /* "a//b" or trailing '/' */
			return false;
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += n;
		if (*p == '/')
			p++;
	}
	return path[len - 1] != '/';
}

static int check_file(const struct tk_store *s, const struct tk_file_in *f)
{
	if (!f || !tk_store_file_path_valid(f->path, s->opts.path_max_bytes))
		return tk_errf(TK_EINVAL,
			       "store: file path '%.80s': must be relative, without '.', '..', "
			       "empty components or control characters, at most %zu bytes",
			       f && f->path ? f->path : "(null)", s->opts.path_max_bytes);
	if (f->size && !f->content)
		return tk_errf(TK_EINVAL, "store: file '%.80s': NULL content", f->path);
	if (f->size > s->opts.file_max_bytes)
		return tk_errf(TK_ELIMIT, "store: file '%.80s': %zu bytes, over the cap of %zu",
			       f->path, f->size, s->opts.file_max_bytes);
	return 0;
}

int tk_store_task_create(struct tk_store *s, const struct tk_task_new *in,
			 char id_out[TK_ID_LEN])
{
	if (!in || !in->request_json)
		return tk_errf(TK_EINVAL, "store: task: request_json is required");
	const char *owner = in->owner_key_id && *in->owner_key_id ? in->owner_key_id : NULL;
	if (owner && !key_id_valid(owner))
		return tk_errf(TK_EINVAL, "store: task: owner key id '%.40s' malformed", owner);
	if (in->timeout_ms < 0)
		return tk_errf(TK_EINVAL, "store: task: negative timeout_ms %lld",
			       (long long)in->timeout_ms);
	int rc = check_json("task request", in->request_json, s->opts.request_max_bytes, true);
	if (rc)
		return rc;
	if (in->n_files && !in->files)
		return tk_errf(TK_EINVAL, "store: task: n_files %zu with NULL files", in->n_files);
	if (in->n_files > s->opts.files_max_count)
		return tk_errf(TK_ELIMIT, "store: task: %zu files, over the cap of %zu",
			       in->n_files, s->opts.files_max_count);
	size_t total = 0;
	for (size_t i = 0; i < in->n_files; i++) {
		if ((rc = check_file(s, &in->files[i])))
			return rc;
		total += in->files[i].size;
		if (total > s->opts.files_max_total_bytes)
			return tk_errf(TK_ELIMIT, "store: task: files total over the cap of %zu bytes",
				       s->opts.files_max_total_bytes);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(in->files[i].path, in->files[j].path))
				return tk_errf(TK_EEXIST, "store: task: file '%.80s' given twice",
					       in->files[i].path);
	}
	char id[TK_ID_LEN], now[TK_RFC3339_LEN];
	if ((rc = tk_id_new(id)))
		return rc;
	now_text(now);
	struct tk_task_new copy = *in;
	copy.owner_key_id = owner;
	if ((rc = s->be->task_create(s, id, now, &copy)))
		return rc;
	memcpy(id_out, id, TK_ID_LEN);
	return 0;
}

int tk_store_task_get(struct tk_store *s, const char *id, struct tk_task *out)
{
	memset(out, 0, sizeof *out);
	int rc = check_task_id(id);
	if (rc)
		return rc;
	return s->be->task_get(s, id, out);
}

int tk_store_task_list(struct tk_store *s, const struct tk_task_filter *f,
		       struct tk_task **out, size_t *n_out,
		       char next_cursor[TK_STORE_CURSOR_LEN])
{
	struct tk_task_filter none = { 0 };
	if (!f)
		f = &none;
	*out = NULL;
	*n_out = 0;
	next_cursor[0] = '\0';
	size_t limit = f->limit ? f->limit : TK_STORE_LIST_DEFAULT;
	if (limit > TK_STORE_LIST_MAX)
		return tk_errf(TK_EINVAL, "store: task list: limit %zu over %d", limit,
			       TK_STORE_LIST_MAX);
	if (f->cursor && *f->cursor && !tk_id_valid(f->cursor))
		return tk_errf(TK_EINVAL, "store: task list: malformed cursor");
	if (f->owner_key_id && !key_id_valid(f->owner_key_id))
		return tk_errf(TK_EINVAL, "store: task list: owner key id malformed");
	if (f->by_status && (unsigned)f->status >= TK_TASK_STATUS_COUNT)
		return tk_errf(TK_EINVAL, "store: task list: bad status %d", (int)f->status);
	/* Ask for one more than the page to learn whether another page exists. */
	struct tk_task *rows = NULL;
	size_t n = 0;
	int rc = s->be->task_list(s, f, limit + 1, &rows, &n);
	if (rc)
		return rc;
	if (n > limit) {
		tk_task_clear(&rows[limit]);
		n = limit;
		memcpy(next_cursor, rows[limit - 1].id, TK_ID_LEN);
	}
	if (n == 0) {
		free(rows);
		rows = NULL;
	}
	*out = rows;
	*n_out = n;
	return 0;
}

int tk_store_task_count(struct tk_store *s, const char *owner_key_id, bool by_status,
			enum tk_task_status status, int64_t *n_out)
{
	if (owner_key_id && !key_id_valid(owner_key_id))
		return tk_errf(TK_EINVAL, "store: task count: owner key id malformed");
	if (by_status && (unsigned)status >= TK_TASK_STATUS_COUNT)
		return tk_errf(TK_EINVAL, "store: task count: bad status %d", (int)status);
	return s->be->task_count(s, owner_key_id, by_status, status, n_out);
}

static int claim(struct tk_store *s, const char *id, struct tk_task *out)
{
	if (out)
		memset(out, 0, sizeof *out);
	char now[TK_RFC3339_LEN];
	int64_t now_ns = tk_time_real_ns();
	tk_time_rfc3339(now_ns, now);
	struct tk_task tmp;
	memset(&tmp, 0, sizeof tmp);
	int rc = s->be->task_claim(s, id, now, now_ns / 1000000, &tmp);
	if (rc)
		return rc;
	if (out)
		*out = tmp;
	else
		tk_task_clear(&tmp);
	return 0;
}

int tk_store_task_claim_next(struct tk_store *s, struct tk_task *out)
{
	return claim(s, NULL, out);
}

int tk_store_task_claim(struct tk_store *s, const char *id, struct tk_task *out)
{
	if (out)
		memset(out, 0, sizeof *out);
	int rc = check_task_id(id);
	if (rc)
		return rc;
	return claim(s, id, out);
}

int tk_store_task_set_status(struct tk_store *s, const char *id, enum tk_task_status to,
			     const char *result_json, const char *error)
{
	int rc = check_task_id(id);
	if (rc)
		return rc;
	if ((unsigned)to >= TK_TASK_STATUS_COUNT)
		return tk_errf(TK_EINVAL, "store: task %s: bad status %d", id, (int)to);
	if (to == TK_TASK_QUEUED)
		return tk_errf(TK_ESTATE, "store: task %s: cannot set queued (use requeue)", id);
	if (result_json && (rc = check_json("task result", result_json,
					    s->opts.result_max_bytes, false)))
		return rc;
	if (error && strlen(error) > s->opts.error_max_bytes)
		return tk_errf(TK_ELIMIT, "store: task %s: error text of %zu bytes over the cap of %zu",
			       id, strlen(error), s->opts.error_max_bytes);
	char *clean = utf8_clean(error, &rc);
	if (rc)
		return rc;
	char now[TK_RFC3339_LEN];
	now_text(now);
	char *ev = status_event_json(to, "error", clean, NULL, 0);
	if (!ev) {
		free(clean);
		return tk_errf(TK_ENOMEM, "store: task %s: out of memory", id);
	}
	rc = s->be->task_transition(s, id, from_mask_for(to), to, result_json, clean,
				    tk_task_status_terminal(to) ? now : NULL, false, now, ev);
	free(ev);
	free(clean);
	return rc;
}

int tk_store_task_requeue(struct tk_store *s, const char *id, const char *reason)
{
	int rc = check_task_id(id);
	if (rc)
		return rc;
	if (reason && strlen(reason) > s->opts.error_max_bytes)
		return tk_errf(TK_ELIMIT, "store: task %s: requeue reason over the cap", id);
	char *clean = utf8_clean(reason, &rc);
	if (rc)
		return rc;
	char now[TK_RFC3339_LEN];
	now_text(now);
	char *ev = status_event_json(TK_TASK_QUEUED, "reason", clean, NULL, 0);
	free(clean);
	if (!ev)
		return tk_errf(TK_ENOMEM, "store: task %s: out of memory", id);
	rc = s->be->task_transition(s, id, STORE_ST_BIT(TK_TASK_RUNNING), TK_TASK_QUEUED, NULL,
				    NULL, NULL, true, now, ev);
	free(ev);
	return rc;
}

int tk_store_task_purge(struct tk_store *s, const char *finished_before, size_t limit,
			int64_t *n_out)
{
	*n_out = 0;
	int64_t ns = 0;
	if (!finished_before || tk_time_parse_rfc3339(finished_before, &ns))
		return tk_errf(TK_EINVAL, "store: purge: '%.40s' is not an RFC 3339 time",
			       finished_before ? finished_before : "(null)");
	if (limit == 0 || limit > TK_STORE_LIST_MAX)
		return tk_errf(TK_EINVAL, "store: purge: limit %zu not in 1..%d", limit,
			       TK_STORE_LIST_MAX);
	/* Stored times are this exact format, so text order is time order;
	 * an offset like +02:00 in the argument must be normalized first. */
	char canon[TK_RFC3339_LEN];
	tk_time_rfc3339(ns, canon);
	return s->be->task_purge(s, canon, limit, n_out);
}

/* Whether the newest event of a running task is the "running" status event
 * of its claim, i.e. the runner never reported anything. */
static int never_started(struct tk_store *s, const struct tk_task *t, bool *out)
{
	*out = false;
	if (t->last_event_seq < 1)
		return 0;
	struct tk_task_event *ev = NULL;
	size_t n = 0;
	int rc = s->be->events_since(s, t->id, t->last_event_seq - 1, 1, &ev, &n);
	if (rc)
		return rc;
	if (n == 1 && !strcmp(ev[0].type, "status")) {
		json_t *j = json_loads(ev[0].data_json, 0, NULL);
		const char *st = json_string_value(json_object_get(j, "status"));
		*out = st && !strcmp(st, "running");
		json_decref(j);
	}
	tk_task_events_free(ev, n);
	return 0;
}

int tk_store_recover_at_startup(struct tk_store *s, struct tk_store_recovery *report)
{
	struct tk_store_recovery r = { 0 };
	int rc = 0;
	/* Settling a task takes it out of `running`, so each pass starts from
	 * the first page again; a task that cannot be settled stops the loop
	 * with its error instead of spinning. */
	for (;;) {
		struct tk_task_filter f = { .by_status = true, .status = TK_TASK_RUNNING,
					    .limit = 100 };
		struct tk_task *tasks = NULL;
		size_t n = 0;
		char next[TK_STORE_CURSOR_LEN];
		if ((rc = tk_store_task_list(s, &f, &tasks, &n, next)))
			break;
		for (size_t i = 0; i < n && !rc; i++) {
			bool fresh = false;
			if ((rc = never_started(s, &tasks[i], &fresh)))
				break;
			if (fresh && tasks[i].attempts < s->opts.max_attempts) {
				rc = tk_store_task_requeue(s, tasks[i].id, TK_STORE_RECOVERY_REASON);
				if (!rc)
					r.requeued++;
			} else {
				rc = tk_store_task_set_status(s, tasks[i].id, TK_TASK_FAILED, NULL,
							      TK_STORE_RECOVERY_REASON);
				if (!rc)
					r.failed++;
			}
			if (!rc)
				tk_logf(TK_LOG_WARNING, "store",
					TK_FIELDS(TK_LF_S("task_id", tasks[i].id),
						  TK_LF_S("action", fresh && tasks[i].attempts <
								     s->opts.max_attempts
								     ? "requeued" : "failed"),
						  TK_LF_I("attempts", tasks[i].attempts)),
					"recovered task left running by a previous process");
		}
		tk_tasks_free(tasks, n);
		if (rc || n == 0)
			break;
	}
	if (report)
		*report = r;
	return rc;
}

/* ------------------------------------------------------------- events */

static bool event_type_valid(const char *t)
{
	size_t n = t ? strlen(t) : 0;
	if (n == 0 || n > TK_EVENT_TYPE_MAX)
		return false;
	for (; *t; t++)
		if (!((*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') || *t == '_' ||
		      *t == '.' || *t == '-'))
			return false;
	return true;
}

int tk_store_event_append(struct tk_store *s, const char *task_id, const char *type,
			  const char *data_json, int64_t *seq_out)
{
	int rc = check_task_id(task_id);
	if (rc)
		return rc;
	if (!event_type_valid(type))
		return tk_errf(TK_EINVAL, "store: event type '%.80s': 1..%d bytes of [a-z0-9_.-]",
			       type ? type : "(null)", TK_EVENT_TYPE_MAX);
	if (!data_json)
		data_json = "null";
	if ((rc = check_json("event data", data_json, s->opts.event_max_bytes, false)))
		return rc;
	char now[TK_RFC3339_LEN];
	now_text(now);
	int64_t seq = 0;
	if ((rc = s->be->event_append(s, task_id, type, data_json, now, &seq)))
		return rc;
	if (seq_out)
		*seq_out = seq;
	return 0;
}

int tk_store_events_since(struct tk_store *s, const char *task_id, int64_t after_seq,
			  size_t limit, struct tk_task_event **out, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	int rc = check_task_id(task_id);
	if (rc)
		return rc;
	if (limit == 0 || limit > TK_STORE_LIST_MAX)
		return tk_errf(TK_EINVAL, "store: events: limit %zu not in 1..%d", limit,
			       TK_STORE_LIST_MAX);
	if (after_seq < 0)
		after_seq = 0;
	return s->be->events_since(s, task_id, after_seq, limit, out, n_out);
}

/* -------------------------------------------------------------- files */

static int check_kind(enum tk_file_kind kind)
{
	if (kind != TK_FILE_INPUT && kind != TK_FILE_OUTPUT)
		return tk_errf(TK_EINVAL, "store: bad file kind %d", (int)kind);
	return 0;
}

int tk_store_file_put(struct tk_store *s, const char *task_id, enum tk_file_kind kind,
		      const struct tk_file_in *file)
{
	int rc = check_task_id(task_id);
	if (rc || (rc = check_kind(kind)) || (rc = check_file(s, file)))
		return rc;
	char now[TK_RFC3339_LEN];
	now_text(now);
	return s->be->file_put(s, task_id, kind, file, now);
}

int tk_store_file_list(struct tk_store *s, const char *task_id, enum tk_file_kind kind,
		       struct tk_task_file **out, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	int rc = check_task_id(task_id);
	if (rc || (rc = check_kind(kind)))
		return rc;
	return s->be->file_list(s, task_id, kind, out, n_out);
}

int tk_store_file_get(struct tk_store *s, const char *task_id, enum tk_file_kind kind,
		      const char *path, struct tk_task_file *out)
{
	memset(out, 0, sizeof *out);
	int rc = check_task_id(task_id);
	if (rc || (rc = check_kind(kind)))
		return rc;
	if (!tk_store_file_path_valid(path, s->opts.path_max_bytes))
		return tk_errf(TK_EINVAL, "store: file path '%.80s' invalid", path ? path : "(null)");
	return s->be->file_get(s, task_id, kind, path, out);
}

/* ----------------------------------------------------------- API keys */

static int check_key_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > TK_KEY_NAME_MAX || !text_printable(name))
		return tk_errf(TK_EINVAL, "store: key name: 1..%d bytes without control characters",
			       TK_KEY_NAME_MAX);
	return 0;
}

static int key_store_row(struct tk_store *s, const char *id, const uint8_t secret[32],
			 const char *name, enum tk_key_role role, struct tk_api_key *rec_out)
{
	struct store_key_row row;
	memset(&row, 0, sizeof row);
	memcpy(row.rec.id, id, TK_KEY_ID_LEN);
	snprintf(row.rec.name, sizeof row.rec.name, "%s", name);
	row.rec.role = role;
	now_text(row.rec.created);
	int rc = tk_random_bytes(row.salt, sizeof row.salt);
	if (rc || (rc = store_key_hash(row.salt, secret, 32, row.hash)))
		goto out;
	if ((rc = s->be->key_insert(s, &row)))
		goto out;
	if (rec_out)
		*rec_out = row.rec;
	tk_logf(TK_LOG_INFO, "store",
		TK_FIELDS(TK_LF_S("key_id", row.rec.id), TK_LF_S("role", tk_key_role_name(role))),
		"api key stored");
out:
	memset(&row, 0, sizeof row);
	return rc;
}

int tk_store_key_create(struct tk_store *s, const char *name, enum tk_key_role role,
			char key_out[TK_KEY_TEXT_LEN], struct tk_api_key *rec_out)
{
	int rc = check_key_name(name);
	if (rc)
		return rc;
	if (role != TK_ROLE_USER && role != TK_ROLE_ADMIN)
		return tk_errf(TK_EINVAL, "store: key role %d unknown", (int)role);
	uint8_t idb[8], secret[32];
	if ((rc = tk_random_bytes(idb, sizeof idb)) ||
	    (rc = tk_random_bytes(secret, sizeof secret)))
		goto out;
	char id[TK_KEY_ID_LEN];
	for (size_t i = 0; i < sizeof idb; i++)
		snprintf(id + 2 * i, 3, "%02x", idb[i]);
	if ((rc = key_store_row(s, id, secret, name, role, rec_out)))
		goto out;
	char *p = key_out;
	p += snprintf(p, TK_KEY_TEXT_LEN, "tk_%s_", id);
	for (size_t i = 0; i < sizeof secret; i++)
		p += snprintf(p, 3, "%02x", secret[i]);
out:
	memset(secret, 0, sizeof secret);
	return rc;
}

int tk_store_key_import(struct tk_store *s, const char *key_text, const char *name,
			enum tk_key_role role, struct tk_api_key *rec_out)
{
	int rc = check_key_name(name);
	if (rc)
		return rc;
	if (role != TK_ROLE_USER && role != TK_ROLE_ADMIN)
		return tk_errf(TK_EINVAL, "store: key role %d unknown", (int)role);
	char id[TK_KEY_ID_LEN];
	uint8_t secret[32];
	if ((rc = store_key_parse(key_text, id, secret)))
		return rc;
	rc = key_store_row(s, id, secret, name, role, rec_out);
	memset(secret, 0, sizeof secret);
	return rc;
}

/* Hashes against this salt when the id is unknown, so an unknown id costs
 * the same work as a wrong secret. */
static const uint8_t dummy_salt[TK_KEY_SALT_BYTES] = { 0x74, 0x61, 0x6e, 0x75, 0x6b, 0x69 };

int tk_store_key_verify(struct tk_store *s, const char *key_text, struct tk_api_key *out)
{
	char id[TK_KEY_ID_LEN];
	uint8_t secret[32], got[TK_KEY_HASH_BYTES];
	struct store_key_row row;
	memset(&row, 0, sizeof row);
	int rc = store_key_parse(key_text, id, secret);
	if (rc) {
		rc = tk_errf(TK_EPERM, "api key: malformed");
		goto out;
	}
	int lrc = s->be->key_lookup(s, id, &row);
	if (lrc && lrc != TK_ENOENT) {
		rc = lrc;
		goto out;
	}
	bool known = lrc == 0;
	if ((rc = store_key_hash(known ? row.salt : dummy_salt, secret, sizeof secret, got)))
		goto out;
	bool match = store_ct_equal(got, row.hash, sizeof got);
	if (!known) {
		rc = tk_errf(TK_EPERM, "api key %s: unknown key id", id);
	} else if (!match) {
		rc = tk_errf(TK_EPERM, "api key %s: wrong secret", id);
	} else if (tk_api_key_revoked(&row.rec)) {
		rc = tk_errf(TK_EPERM, "api key %s: revoked", id);
	} else {
		rc = 0;
		if (out)
			*out = row.rec;
	}
out:
	memset(secret, 0, sizeof secret);
	memset(&row, 0, sizeof row);
	return rc;
}

int tk_store_key_touch(struct tk_store *s, const char *key_id)
{
	if (!key_id_valid(key_id))
		return tk_errf(TK_EINVAL, "store: key id '%.40s' malformed", key_id ? key_id : "(null)");
	char now[TK_RFC3339_LEN];
	now_text(now);
	return s->be->key_touch(s, key_id, now);
}

int tk_store_key_revoke(struct tk_store *s, const char *key_id)
{
	if (!key_id_valid(key_id))
		return tk_errf(TK_EINVAL, "store: key id '%.40s' malformed", key_id ? key_id : "(null)");
	char now[TK_RFC3339_LEN];
	now_text(now);
	return s->be->key_revoke(s, key_id, now);
}

int tk_store_key_get(struct tk_store *s, const char *key_id, struct tk_api_key *out)
{
	memset(out, 0, sizeof *out);
	if (!key_id_valid(key_id))
		return tk_errf(TK_EINVAL, "store: key id '%.40s' malformed", key_id ? key_id : "(null)");
	struct store_key_row row;
	int rc = s->be->key_lookup(s, key_id, &row);
	if (!rc)
		*out = row.rec;
	memset(&row, 0, sizeof row);
	return rc;
}

int tk_store_key_list(struct tk_store *s, struct tk_api_key **out, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	return s->be->key_list(s, out, n_out);
}

int tk_store_key_count(struct tk_store *s, bool active_admins_only, int64_t *n_out)
{
	return s->be->key_count(s, active_admins_only, n_out);
}

/* ----------------------------------------------------------- registry */

static bool artifact_name_valid(const char *n)
{
	size_t len = n ? strlen(n) : 0;
	if (len == 0 || len > TK_ARTIFACT_NAME_MAX)
		return false;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
		      (*n >= '0' && *n <= '9') || *n == '_' || *n == '.' || *n == ':' ||
		      *n == '-'))
			return false;
	return true;
}

static int check_artifact_key(const char *kind, const char *name)
{
	if (!kind || (strcmp(kind, "model") && strcmp(kind, "adapter")))
		return tk_errf(TK_EINVAL, "store: artifact kind '%.32s': 'model' or 'adapter'",
			       kind ? kind : "(null)");
	if (!artifact_name_valid(name))
		return tk_errf(TK_EINVAL,
			       "store: artifact name '%.80s': 1..%d bytes of [A-Za-z0-9_.:-]",
			       name ? name : "(null)", TK_ARTIFACT_NAME_MAX);
	return 0;
}

int tk_store_artifact_register(struct tk_store *s, const struct tk_artifact *a)
{
	int rc = check_artifact_key(a->kind, a->name);
	if (rc)
		return rc;
	if (!a->path || !*a->path || strlen(a->path) > 4096 || !text_printable(a->path))
		return tk_errf(TK_EINVAL, "store: artifact %s: path empty, too long or not printable",
			       a->name);
	if (strlen(a->sha256) != 64)
		return tk_errf(TK_EINVAL, "store: artifact %s: sha256 must be 64 hex digits", a->name);
	for (const char *p = a->sha256; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return tk_errf(TK_EINVAL, "store: artifact %s: sha256 must be lowercase hex",
				       a->name);
	if (a->size_bytes < 0)
		return tk_errf(TK_EINVAL, "store: artifact %s: negative size", a->name);
	if (a->version && (strlen(a->version) > 128 || !text_printable(a->version)))
		return tk_errf(TK_EINVAL, "store: artifact %s: version over 128 bytes or not printable",
			       a->name);
	char now[TK_RFC3339_LEN];
	now_text(now);
	return s->be->artifact_insert(s, a, now);
}

int tk_store_artifact_get(struct tk_store *s, const char *kind, const char *name,
			  struct tk_artifact *out)
{
	memset(out, 0, sizeof *out);
	int rc = check_artifact_key(kind, name);
	if (rc)
		return rc;
	return s->be->artifact_get(s, kind, name, out);
}

int tk_store_artifact_list(struct tk_store *s, const char *kind, struct tk_artifact **out,
			   size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	if (kind && strcmp(kind, "model") && strcmp(kind, "adapter"))
		return tk_errf(TK_EINVAL, "store: artifact kind '%.32s': 'model' or 'adapter'", kind);
	return s->be->artifact_list(s, kind, out, n_out);
}

int tk_store_artifact_remove(struct tk_store *s, const char *kind, const char *name)
{
	int rc = check_artifact_key(kind, name);
	if (rc)
		return rc;
	return s->be->artifact_delete(s, kind, name);
}
