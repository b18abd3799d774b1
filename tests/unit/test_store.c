/*
 * test_store.c — unit tests of the store (src/store/): migrations, task
 * lifecycle and transitions, concurrent claims, events, files and caps,
 * API keys, the registry, startup recovery, and a writer killed with
 * SIGKILL in the middle of its work.
 */
#include "testutil.h"

#include "core/err.h"
#include "store/store.h"
#include "store/store_backend.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ fixtures */

struct fx {
	char dir[512];
	char db[600];
	struct tk_store *s;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	tk_test_mkdtemp(f->dir, sizeof f->dir);
	snprintf(f->db, sizeof f->db, "%s/tanuki.db", f->dir);
	f->s = tk_store_open_dir(f->dir, NULL);
	if (!f->s)
		fail_msg("open: %s", tk_err_detail());
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	tk_store_close(f->s);
	tk_test_rmtree(f->dir);
	free(f);
	return 0;
}

/* Opens the database file directly, bypassing the store. */
static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static char *raw_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const unsigned char *t = sqlite3_column_text(st, 0);
	char *d = strdup(t ? (const char *)t : "");
	sqlite3_finalize(st);
	assert_non_null(d);
	return d;
}

static void new_task(struct tk_store *s, const char *owner, int64_t timeout_ms, char id[TK_ID_LEN])
{
	struct tk_task_new in = { .owner_key_id = owner, .request_json =
				  "{\"task_description\":\"add two numbers\"}",
				  .timeout_ms = timeout_ms };
	int rc = tk_store_task_create(s, &in, id);
	if (rc)
		fail_msg("create: %s", tk_err_detail());
}

static enum tk_task_status status_of(struct tk_store *s, const char *id)
{
	struct tk_task t;
	assert_int_equal(tk_store_task_get(s, id, &t), 0);
	enum tk_task_status st = t.status;
	tk_task_clear(&t);
	return st;
}

/* ---------------------------------------------------------- migrations */

static void test_migrations_from_empty(void **state)
{
	struct fx *f = *state;
	assert_int_equal(tk_store_schema_version(f->s), tk_store_schema_version_max());
	assert_string_equal(tk_store_backend_name(f->s), "sqlite");
	assert_int_equal(tk_store_ping(f->s), 0);

	/* Owner-only: the file will hold key hashes. */
	struct stat sb;
	assert_int_equal(stat(f->db, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	sqlite3 *db = raw_open(f->db);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_version"),
			 tk_store_schema_version_max());
	char *mode = raw_text(db, "PRAGMA journal_mode");
	assert_string_equal(mode, "wal");
	free(mode);
	for (const char *const *t = (const char *const[]){ "tasks", "task_events", "task_files",
							   "api_keys", "artifacts", NULL };
	     *t; t++) {
		char sql[128];
		snprintf(sql, sizeof sql,
			 "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name='%s'", *t);
		assert_int_equal(raw_int(db, sql), 1);
	}
	sqlite3_close(db);

	/* Reopening applies nothing twice. */
	tk_store_close(f->s);
	f->s = tk_store_open(f->db, NULL);
	assert_non_null(f->s);
	assert_int_equal(tk_store_schema_version(f->s), tk_store_schema_version_max());
	db = raw_open(f->db);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_version"),
			 tk_store_schema_version_max());
	sqlite3_close(db);
}

static void test_foreign_keys_on(void **state)
{
	struct fx *f = *state;
	/* A task owned by a key that does not exist is refused by the
	 * foreign key, and nothing of it remains. */
	char id[TK_ID_LEN];
	struct tk_task_new in = { .owner_key_id = "0123456789abcdef", .request_json = "{}" };
	assert_int_equal(tk_store_task_create(f->s, &in, id), TK_ENOENT);
	int64_t n = -1;
	assert_int_equal(tk_store_task_count(f->s, NULL, false, TK_TASK_QUEUED, &n), 0);
	assert_int_equal(n, 0);
}

static void test_newer_version_refused(void **state)
{
	struct fx *f = *state;
	tk_store_close(f->s);
	f->s = NULL;
	sqlite3 *db = raw_open(f->db);
	char sql[128];
	snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES (%d, 'future')",
		 tk_store_schema_version_max() + 1);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	f->s = tk_store_open(f->db, NULL);
	assert_null(f->s);
	assert_int_equal(tk_err_last(), TK_EUNSUPPORTED);
	assert_non_null(strstr(tk_err_detail(), "newer"));
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	assert_null(tk_store_open("postgres://db/tanuki", NULL));
	assert_int_equal(tk_err_last(), TK_EUNSUPPORTED);
	assert_null(tk_store_open("mysql://x", NULL));
	assert_int_equal(tk_err_last(), TK_EUNSUPPORTED);
	assert_null(tk_store_open("", NULL));
	assert_int_equal(tk_err_last(), TK_EINVAL);
	assert_null(tk_store_open("sqlite:", NULL));
	assert_int_equal(tk_err_last(), TK_EINVAL);

	/* A file that is not a database. */
	char junk[700];
	snprintf(junk, sizeof junk, "%s/junk.db", f->dir);
	FILE *fp = fopen(junk, "wb");
	assert_non_null(fp);
	for (int i = 0; i < 4096; i++)
		fputc("not a database "[i % 15], fp);
	fclose(fp);
	assert_null(tk_store_open(junk, NULL));
	assert_int_equal(tk_err_last(), TK_EFORMAT);

	/* A directory that cannot be created. */
	assert_null(tk_store_open_dir("/proc/tanuki-no-such/dir", NULL));
	assert_int_equal(tk_err_last(), TK_EIO);

	struct tk_store *m = tk_store_open("sqlite::memory:", NULL);
	assert_non_null(m);
	char id[TK_ID_LEN];
	new_task(m, NULL, 0, id);
	assert_int_equal(status_of(m, id), TK_TASK_QUEUED);
	tk_store_close(m);
	tk_store_close(NULL);
}

/* --------------------------------------------------------------- tasks */

static void test_task_lifecycle(void **state)
{
	struct fx *f = *state;
	char key[TK_KEY_TEXT_LEN];
	struct tk_api_key rec;
	assert_int_equal(tk_store_key_create(f->s, "alice", TK_ROLE_USER, key, &rec), 0);

	char id[TK_ID_LEN];
	const char *req = "{\"task_description\":\"sum\",\"language\":\"python\"}";
	struct tk_task_new in = { .owner_key_id = rec.id, .request_json = req,
				  .timeout_ms = 60000 };
	assert_int_equal(tk_store_task_create(f->s, &in, id), 0);
	assert_true(tk_id_valid(id));

	struct tk_task t;
	assert_int_equal(tk_store_task_get(f->s, id, &t), 0);
	assert_string_equal(t.id, id);
	assert_string_equal(t.owner_key_id, rec.id);
	assert_int_equal(t.status, TK_TASK_QUEUED);
	assert_string_equal(t.request_json, req);
	assert_null(t.result_json);
	assert_null(t.error);
	int64_t created_ns = 0;
	assert_int_equal(tk_time_parse_rfc3339(t.created, &created_ns), 0);
	assert_string_equal(t.started, "");
	assert_string_equal(t.finished, "");
	assert_string_equal(t.deadline, "");
	assert_int_equal(t.attempts, 0);
	assert_int_equal(t.timeout_ms, 60000);
	assert_int_equal(t.last_event_seq, 1);
	tk_task_clear(&t);

	assert_int_equal(tk_store_task_claim_next(f->s, &t), 0);
	assert_string_equal(t.id, id);
	assert_int_equal(t.status, TK_TASK_RUNNING);
	assert_int_equal(t.attempts, 1);
	int64_t started_ns = 0, deadline_ns = 0;
	assert_int_equal(tk_time_parse_rfc3339(t.started, &started_ns), 0);
	assert_int_equal(tk_time_parse_rfc3339(t.deadline, &deadline_ns), 0);
	/* The deadline is the claim time plus the timeout (both ms-rounded). */
	assert_true(deadline_ns - started_ns >= 60000LL * 1000000 - 1000000);
	assert_true(deadline_ns - started_ns <= 60000LL * 1000000 + 1000000);
	tk_task_clear(&t);

	/* Nothing else queued. */
	assert_int_equal(tk_store_task_claim_next(f->s, &t), TK_ENOENT);

	assert_int_equal(tk_store_task_set_status(f->s, id, TK_TASK_COMPLETED,
						  "{\"answer\":3}", NULL), 0);
	assert_int_equal(tk_store_task_get(f->s, id, &t), 0);
	assert_int_equal(t.status, TK_TASK_COMPLETED);
	assert_string_equal(t.result_json, "{\"answer\":3}");
	assert_true(t.finished[0] != '\0');
	assert_int_equal(t.last_event_seq, 3);
	tk_task_clear(&t);

	struct tk_task_event *ev = NULL;
	size_t n = 0;
	assert_int_equal(tk_store_events_since(f->s, id, 0, 100, &ev, &n), 0);
	assert_int_equal(n, 3);
	const char *want[] = { "{\"status\":\"queued\"}",
			       "{\"status\":\"running\",\"attempt\":1}",
			       "{\"status\":\"completed\"}" };
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(ev[i].seq, (int64_t)i + 1);
		assert_string_equal(ev[i].type, "status");
		assert_string_equal(ev[i].data_json, want[i]);
	}
	tk_task_events_free(ev, n);

	assert_int_equal(tk_store_task_get(f->s, "not-an-id", &t), TK_EINVAL);
	assert_int_equal(tk_store_task_get(f->s, "01890a5d-ac96-774b-bcce-b302099a8057", &t),
			 TK_ENOENT);
}

static void test_task_create_invalid(void **state)
{
	struct fx *f = *state;
	char id[TK_ID_LEN];
	struct tk_task_new in = { .request_json = "[1,2]" };
	assert_int_equal(tk_store_task_create(f->s, &in, id), TK_EINVAL); /* not an object */
	in.request_json = "{\"a\":";
	assert_int_equal(tk_store_task_create(f->s, &in, id), TK_EINVAL);
	in.request_json = "{\"a\":\"\xff\xfe\"}"; /* not UTF-8 */
	assert_int_equal(tk_store_task_create(f->s, &in, id), TK_EINVAL);
	in.request_json = NULL;
	assert_int_equal(tk_store_task_create(f->s, &in, id), TK_EINVAL);
	in.request_json = "{}";
	in.timeout_ms = -1;
	assert_int_equal(tk_store_task_create(f->s, &in, id), TK_EINVAL);
	in.timeout_ms = 0;
	in.owner_key_id = "NOT-HEX";
	assert_int_equal(tk_store_task_create(f->s, &in, id), TK_EINVAL);

	/* Request over the cap. */
	struct tk_store_options o;
	tk_store_options_default(&o);
	o.request_max_bytes = 64;
	struct tk_store *m = tk_store_open(":memory:", &o);
	assert_non_null(m);
	char big[200];
	snprintf(big, sizeof big, "{\"d\":\"%0*d\"}", 100, 0);
	struct tk_task_new b = { .request_json = big };
	assert_int_equal(tk_store_task_create(m, &b, id), TK_ELIMIT);
	tk_store_close(m);

	int64_t n = -1;
	assert_int_equal(tk_store_task_count(f->s, NULL, false, TK_TASK_QUEUED, &n), 0);
	assert_int_equal(n, 0);
}

/* Drives a new task into status `st` through the public API. */
static void task_in_status(struct tk_store *s, enum tk_task_status st, char id[TK_ID_LEN])
{
	new_task(s, NULL, 0, id);
	if (st == TK_TASK_QUEUED)
		return;
	if (st == TK_TASK_CANCELLED) { /* from queued, the shorter way */
		assert_int_equal(tk_store_task_set_status(s, id, st, NULL, "by test"), 0);
		return;
	}
	assert_int_equal(tk_store_task_claim(s, id, NULL), 0);
	if (st != TK_TASK_RUNNING)
		assert_int_equal(tk_store_task_set_status(s, id, st, NULL, NULL), 0);
}

static void test_transitions(void **state)
{
	struct fx *f = *state;
	/* allowed[from][to], written out from the specification:
	 * queued -> running | cancelled; running -> any terminal. */
	static const bool allowed[TK_TASK_STATUS_COUNT][TK_TASK_STATUS_COUNT] = {
		/*              q      r      c      f      t      x */
		/* queued */  { false, true,  false, false, false, true },
		/* running */ { false, false, true,  true,  true,  true },
		/* completed*/{ false, false, false, false, false, false },
		/* failed */  { false, false, false, false, false, false },
		/* timed_out*/{ false, false, false, false, false, false },
		/* cancelled*/{ false, false, false, false, false, false },
	};
	for (int from = 0; from < TK_TASK_STATUS_COUNT; from++) {
		for (int to = 0; to < TK_TASK_STATUS_COUNT; to++) {
			char id[TK_ID_LEN];
			task_in_status(f->s, (enum tk_task_status)from, id);
			struct tk_task before;
			assert_int_equal(tk_store_task_get(f->s, id, &before), 0);
			assert_int_equal(before.status, from);
			assert_int_equal(tk_task_transition_valid((enum tk_task_status)from,
								  (enum tk_task_status)to),
					 allowed[from][to]);
			int rc = tk_store_task_set_status(f->s, id, (enum tk_task_status)to,
							  "{\"r\":1}", NULL);
			struct tk_task after;
			assert_int_equal(tk_store_task_get(f->s, id, &after), 0);
			if (allowed[from][to]) {
				assert_int_equal(rc, 0);
				assert_int_equal(after.status, to);
				assert_int_equal(after.last_event_seq, before.last_event_seq + 1);
				assert_int_equal(tk_task_status_terminal(after.status),
						 after.finished[0] != '\0');
			} else {
				if (rc != TK_ESTATE)
					fail_msg("%s -> %s: rc %d", tk_task_status_name(from),
						 tk_task_status_name(to), rc);
				assert_int_equal(after.status, from);
				assert_int_equal(after.last_event_seq, before.last_event_seq);
				assert_null(after.result_json);
			}
			tk_task_clear(&before);
			tk_task_clear(&after);
		}
	}
	/* Requeue only from running; claim only from queued. */
	char id[TK_ID_LEN];
	task_in_status(f->s, TK_TASK_QUEUED, id);
	assert_int_equal(tk_store_task_requeue(f->s, id, "x"), TK_ESTATE);
	assert_int_equal(tk_store_task_claim(f->s, id, NULL), 0);
	assert_int_equal(tk_store_task_claim(f->s, id, NULL), TK_ESTATE);
	assert_int_equal(tk_store_task_requeue(f->s, id, "drain"), 0);
	struct tk_task t;
	assert_int_equal(tk_store_task_get(f->s, id, &t), 0);
	assert_int_equal(t.status, TK_TASK_QUEUED);
	assert_string_equal(t.started, "");
	assert_int_equal(t.attempts, 1);
	tk_task_clear(&t);
	assert_int_equal(tk_store_task_set_status(f->s, id, 99, NULL, NULL), TK_EINVAL);
	assert_int_equal(tk_store_task_set_status(f->s, id, TK_TASK_CANCELLED, "{bad", NULL),
			 TK_EINVAL);
	assert_int_equal(status_of(f->s, id), TK_TASK_QUEUED);

	/* An error text with invalid UTF-8 still ends the task; the bad bytes
	 * (a lone continuation byte, a truncated sequence, an overlong '/')
	 * become '?', valid multi-byte characters stay. */
	assert_int_equal(tk_store_task_claim(f->s, id, NULL), 0);
	assert_int_equal(tk_store_task_set_status(f->s, id, TK_TASK_FAILED, NULL,
						  "caf\xc3\xa9 \x80 \xe2\x82 \xc0\xaf end"), 0);
	assert_int_equal(tk_store_task_get(f->s, id, &t), 0);
	assert_int_equal(t.status, TK_TASK_FAILED);
	assert_string_equal(t.error, "caf\xc3\xa9 ? ?? ?? end");
	int64_t last = t.last_event_seq;
	tk_task_clear(&t);
	struct tk_task_event *ev = NULL;
	size_t n = 0;
	assert_int_equal(tk_store_events_since(f->s, id, last - 1, 1, &ev, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].data_json,
			    "{\"status\":\"failed\",\"error\":\"caf\xc3\xa9 ? ?? ?? end\"}");
	tk_task_events_free(ev, n);
}

static void test_status_names(void **state)
{
	(void)state;
	for (int i = 0; i < TK_TASK_STATUS_COUNT; i++) {
		enum tk_task_status st;
		assert_int_equal(tk_task_status_parse(tk_task_status_name(i), &st), 0);
		assert_int_equal(st, i);
	}
	enum tk_task_status st;
	assert_int_equal(tk_task_status_parse("done", &st), TK_EINVAL);
	assert_string_equal(tk_task_status_name(42), "unknown");
	assert_string_equal(tk_task_status_name(TK_TASK_TIMED_OUT), "timed_out");
}

static void test_list_pagination(void **state)
{
	struct fx *f = *state;
	char k1[TK_KEY_TEXT_LEN], k2[TK_KEY_TEXT_LEN];
	struct tk_api_key r1, r2;
	assert_int_equal(tk_store_key_create(f->s, "one", TK_ROLE_USER, k1, &r1), 0);
	assert_int_equal(tk_store_key_create(f->s, "two", TK_ROLE_USER, k2, &r2), 0);
	char ids[7][TK_ID_LEN];
	for (int i = 0; i < 7; i++)
		new_task(f->s, i % 2 ? r2.id : r1.id, 0, ids[i]);
	/* Oldest of r1's tasks (ids[0]) runs. */
	assert_int_equal(tk_store_task_claim(f->s, ids[0], NULL), 0);

	/* All, three per page: newest first, no duplicates, nothing lost. */
	char cursor[TK_STORE_CURSOR_LEN] = "";
	int seen = 0, pages = 0;
	for (;;) {
		struct tk_task_filter flt = { .cursor = cursor, .limit = 3 };
		struct tk_task *ts = NULL;
		size_t n = 0;
		char next[TK_STORE_CURSOR_LEN];
		assert_int_equal(tk_store_task_list(f->s, &flt, &ts, &n, next), 0);
		pages++;
		for (size_t i = 0; i < n; i++, seen++)
			assert_string_equal(ts[i].id, ids[6 - seen]);
		tk_tasks_free(ts, n);
		if (!next[0])
			break;
		memcpy(cursor, next, sizeof cursor);
	}
	assert_int_equal(seen, 7);
	assert_int_equal(pages, 3);

	/* Owner filter: r1 owns ids 0, 2, 4, 6. */
	struct tk_task_filter flt = { .owner_key_id = r1.id, .limit = 10 };
	struct tk_task *ts = NULL;
	size_t n = 0;
	char next[TK_STORE_CURSOR_LEN];
	assert_int_equal(tk_store_task_list(f->s, &flt, &ts, &n, next), 0);
	assert_int_equal(n, 4);
	assert_string_equal(next, "");
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(ts[i].owner_key_id, r1.id);
		assert_string_equal(ts[i].id, ids[6 - 2 * i]);
	}
	tk_tasks_free(ts, n);

	/* Status filter. */
	flt = (struct tk_task_filter){ .by_status = true, .status = TK_TASK_RUNNING };
	assert_int_equal(tk_store_task_list(f->s, &flt, &ts, &n, next), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ts[0].id, ids[0]);
	tk_tasks_free(ts, n);

	int64_t cnt = 0;
	assert_int_equal(tk_store_task_count(f->s, r2.id, true, TK_TASK_QUEUED, &cnt), 0);
	assert_int_equal(cnt, 3);
	assert_int_equal(tk_store_task_count(f->s, NULL, true, TK_TASK_QUEUED, &cnt), 0);
	assert_int_equal(cnt, 6);

	flt = (struct tk_task_filter){ .cursor = "zzz" };
	assert_int_equal(tk_store_task_list(f->s, &flt, &ts, &n, next), TK_EINVAL);
	flt = (struct tk_task_filter){ .limit = TK_STORE_LIST_MAX + 1 };
	assert_int_equal(tk_store_task_list(f->s, &flt, &ts, &n, next), TK_EINVAL);
}

static void test_purge(void **state)
{
	struct fx *f = *state;
	struct tk_file_in file = { "a.txt", "x", 1 };
	struct tk_task_new in = { .request_json = "{}", .files = &file, .n_files = 1 };
	char done1[TK_ID_LEN], done2[TK_ID_LEN], waiting[TK_ID_LEN], running[TK_ID_LEN];
	assert_int_equal(tk_store_task_create(f->s, &in, done1), 0);
	assert_int_equal(tk_store_task_create(f->s, &in, done2), 0);
	assert_int_equal(tk_store_task_create(f->s, &in, waiting), 0);
	assert_int_equal(tk_store_task_create(f->s, &in, running), 0);
	assert_int_equal(tk_store_task_set_status(f->s, done1, TK_TASK_CANCELLED, NULL, NULL), 0);
	assert_int_equal(tk_store_task_claim(f->s, done2, NULL), 0);
	assert_int_equal(tk_store_task_set_status(f->s, done2, TK_TASK_COMPLETED, "1", NULL), 0);
	assert_int_equal(tk_store_task_claim(f->s, running, NULL), 0);

	char past[TK_RFC3339_LEN], future[TK_RFC3339_LEN];
	tk_time_rfc3339(tk_time_real_ns() - 3600LL * 1000000000, past);
	tk_time_rfc3339(tk_time_real_ns() + 3600LL * 1000000000, future);
	int64_t n = -1;
	assert_int_equal(tk_store_task_purge(f->s, past, 100, &n), 0);
	assert_int_equal(n, 0);
	/* Batches: one, then the other, then none. */
	assert_int_equal(tk_store_task_purge(f->s, future, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(tk_store_task_purge(f->s, future, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(tk_store_task_purge(f->s, future, 1, &n), 0);
	assert_int_equal(n, 0);

	struct tk_task t;
	assert_int_equal(tk_store_task_get(f->s, done1, &t), TK_ENOENT);
	assert_int_equal(tk_store_task_get(f->s, done2, &t), TK_ENOENT);
	assert_int_equal(status_of(f->s, waiting), TK_TASK_QUEUED);
	assert_int_equal(status_of(f->s, running), TK_TASK_RUNNING);
	/* Their events and files went with them (foreign key cascade). */
	sqlite3 *db = raw_open(f->db);
	assert_int_equal(raw_int(db, "SELECT count(DISTINCT task_id) FROM task_events"), 2);
	assert_int_equal(raw_int(db, "SELECT count(DISTINCT task_id) FROM task_files"), 2);
	sqlite3_close(db);

	/* An offset time is normalized before comparing. */
	assert_int_equal(tk_store_task_set_status(f->s, running, TK_TASK_FAILED, NULL, "x"), 0);
	assert_int_equal(tk_store_task_purge(f->s, "2200-01-01T05:00:00+05:00", 10, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(tk_store_task_purge(f->s, "yesterday", 10, &n), TK_EINVAL);
	assert_int_equal(tk_store_task_purge(f->s, future, 0, &n), TK_EINVAL);
}

/* A full database (the max_db_bytes cap stands in for a full disk): the
 * change that does not fit fails with TK_EIO and leaves nothing behind;
 * reads go on; after a purge, writes work again. */
static void test_database_full(void **state)
{
	struct fx *f = *state;
	struct tk_store_options o;
	tk_store_options_default(&o);
	o.max_db_bytes = 512 * 1024;
	char path[700];
	snprintf(path, sizeof path, "%s/small.db", f->dir);
	struct tk_store *s = tk_store_open(path, &o);
	assert_non_null(s);
	static char content[60000];
	memset(content, 'z', sizeof content);
	struct tk_file_in file = { "big.txt", content, sizeof content };
	struct tk_task_new in = { .request_json = "{}", .files = &file, .n_files = 1 };
	char ids[64][TK_ID_LEN];
	int made = 0, rc = 0;
	while (made < 64) {
		char id[TK_ID_LEN];
		if ((rc = tk_store_task_create(s, &in, id)))
			break;
		memcpy(ids[made++], id, TK_ID_LEN);
	}
	assert_int_equal(rc, TK_EIO);
	assert_non_null(strstr(tk_err_detail(), "full"));
	assert_true(made > 0 && made < 64);
	int64_t n = -1;
	assert_int_equal(tk_store_task_count(s, NULL, false, 0, &n), 0);
	assert_int_equal(n, made); /* the failed create left no task */
	struct tk_task_file g;
	assert_int_equal(tk_store_file_get(s, ids[0], TK_FILE_INPUT, "big.txt", &g), 0);
	assert_int_equal(g.size, sizeof content);
	tk_task_file_clear(&g);

	/* Make room: cancel and purge two tasks, then a create fits again. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(tk_store_task_set_status(s, ids[i], TK_TASK_CANCELLED, NULL, NULL), 0);
	char future[TK_RFC3339_LEN];
	tk_time_rfc3339(tk_time_real_ns() + 3600LL * 1000000000, future);
	assert_int_equal(tk_store_task_purge(s, future, 10, &n), 0);
	assert_int_equal(n, 2);
	char id[TK_ID_LEN];
	assert_int_equal(tk_store_task_create(s, &in, id), 0);
	tk_store_close(s);

	sqlite3 *db = raw_open(path);
	char *ic = raw_text(db, "PRAGMA integrity_check");
	assert_string_equal(ic, "ok");
	free(ic);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM tasks"), made - 1);
	sqlite3_close(db);
}

/* Several threads open the same fresh database at once: every open
 * succeeds and each migration is applied exactly once. */
struct opener {
	const char *path;
	int rc;
	int version;
	char detail[256];
};

static void *open_one(void *arg)
{
	struct opener *o = arg;
	struct tk_store_options opts;
	tk_store_options_default(&opts);
	opts.busy_timeout_ms = 60000;
	struct tk_store *s = tk_store_open(o->path, &opts);
	if (!s) {
		o->rc = tk_err_last();
		snprintf(o->detail, sizeof o->detail, "open: %s", tk_err_detail());
		return NULL;
	}
	o->version = tk_store_schema_version(s);
	char id[TK_ID_LEN];
	struct tk_task_new in = { .request_json = "{}" };
	o->rc = tk_store_task_create(s, &in, id);
	if (o->rc)
		snprintf(o->detail, sizeof o->detail, "create: %s", tk_err_detail());
	tk_store_close(s);
	return NULL;
}

static void test_concurrent_open(void **state)
{
	struct fx *f = *state;
	char path[700];
	snprintf(path, sizeof path, "%s/fresh.db", f->dir);
	struct opener o[6];
	pthread_t th[6];
	for (int i = 0; i < 6; i++) {
		o[i] = (struct opener){ .path = path, .rc = -100 };
		assert_int_equal(pthread_create(&th[i], NULL, open_one, &o[i]), 0);
	}
	/* Join every thread before any assertion: a failed assertion returns
	 * from this function while o[] is on its stack. */
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 6; i++) {
		if (o[i].rc)
			fail_msg("opener %d: %d: %s", i, o[i].rc, o[i].detail);
		assert_int_equal(o[i].version, tk_store_schema_version_max());
	}
	sqlite3 *db = raw_open(path);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_version"),
			 tk_store_schema_version_max());
	assert_int_equal(raw_int(db, "SELECT count(*) FROM tasks"), 6);
	sqlite3_close(db);
}

/* ------------------------------------------------------ concurrent claims */

#define CLAIM_TASKS 500
#define CLAIM_THREADS 8

struct claimer {
	struct tk_store *shared;   /* NULL: open an own handle on path */
	const char *path;
	char (*got)[TK_ID_LEN];    /* this thread's claims */
	size_t n;
	int err;
	char detail[256];          /* tk_err_detail() of this thread at err */
};

static void *claim_loop(void *arg)
{
	struct claimer *c = arg;
	struct tk_store_options o;
	tk_store_options_default(&o);
	o.sync_normal = true;
	o.busy_timeout_ms = 60000;
	struct tk_store *s = c->shared ? c->shared : tk_store_open(c->path, &o);
	if (!s) {
		c->err = tk_err_last();
		snprintf(c->detail, sizeof c->detail, "open: %s", tk_err_detail());
		return NULL;
	}
	for (;;) {
		struct tk_task t;
		int rc = tk_store_task_claim_next(s, &t);
		if (rc == TK_ENOENT)
			break;
		if (rc) {
			c->err = rc;
			snprintf(c->detail, sizeof c->detail, "claim: %s", tk_err_detail());
			break;
		}
		memcpy(c->got[c->n++], t.id, TK_ID_LEN);
		if (t.status != TK_TASK_RUNNING || t.attempts != 1)
			c->err = TK_EINTERNAL;
		tk_task_clear(&t);
	}
	if (!c->shared)
		tk_store_close(s);
	return NULL;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void run_claimers(struct fx *f, bool shared)
{
	struct tk_store_options o;
	tk_store_options_default(&o);
	o.sync_normal = true; /* speed; durability is not what this tests */
	struct tk_store *s = tk_store_open(f->db, &o);
	assert_non_null(s);
	static char made[CLAIM_TASKS][TK_ID_LEN];
	for (int i = 0; i < CLAIM_TASKS; i++)
		new_task(s, NULL, 0, made[i]);

	struct claimer cl[CLAIM_THREADS];
	pthread_t th[CLAIM_THREADS];
	for (int i = 0; i < CLAIM_THREADS; i++) {
		cl[i] = (struct claimer){ .shared = shared ? s : NULL, .path = f->db };
		cl[i].got = calloc(CLAIM_TASKS, TK_ID_LEN);
		assert_non_null(cl[i].got);
		assert_int_equal(pthread_create(&th[i], NULL, claim_loop, &cl[i]), 0);
	}
	static char all[CLAIM_TASKS * 2][TK_ID_LEN];
	size_t total = 0;
	for (int i = 0; i < CLAIM_THREADS; i++) /* all joined before any assertion */
		pthread_join(th[i], NULL);
	for (int i = 0; i < CLAIM_THREADS; i++) {
		if (cl[i].err)
			fail_msg("claimer %d: error %d: %s", i, cl[i].err, cl[i].detail);
		assert_true(total + cl[i].n <= CLAIM_TASKS * 2);
		memcpy(all[total], cl[i].got, cl[i].n * TK_ID_LEN);
		total += cl[i].n;
		free(cl[i].got);
	}
	/* Every task claimed exactly once. */
	assert_int_equal(total, CLAIM_TASKS);
	qsort(all, total, TK_ID_LEN, cmp_id);
	qsort(made, CLAIM_TASKS, TK_ID_LEN, cmp_id);
	for (size_t i = 0; i < total; i++)
		assert_string_equal(all[i], made[i]);
	int64_t n = -1;
	assert_int_equal(tk_store_task_count(s, NULL, true, TK_TASK_RUNNING, &n), 0);
	assert_int_equal(n, CLAIM_TASKS);
	assert_int_equal(tk_store_task_count(s, NULL, true, TK_TASK_QUEUED, &n), 0);
	assert_int_equal(n, 0);
	tk_store_close(s);
}

static void test_claim_concurrent_own_handles(void **state)
{
	run_claimers(*state, false);
}

static void test_claim_concurrent_shared_handle(void **state)
{
	run_claimers(*state, true);
}

static void test_claim_fifo(void **state)
{
	struct fx *f = *state;
	char a[TK_ID_LEN], b[TK_ID_LEN], c[TK_ID_LEN];
	new_task(f->s, NULL, 0, a);
	new_task(f->s, NULL, 0, b);
	new_task(f->s, NULL, 0, c);
	assert_int_equal(tk_store_task_set_status(f->s, a, TK_TASK_CANCELLED, NULL, NULL), 0);
	struct tk_task t;
	assert_int_equal(tk_store_task_claim_next(f->s, &t), 0);
	assert_string_equal(t.id, b);
	tk_task_clear(&t);
	assert_int_equal(tk_store_task_claim_next(f->s, &t), 0);
	assert_string_equal(t.id, c);
	tk_task_clear(&t);
	assert_int_equal(tk_store_task_claim_next(f->s, &t), TK_ENOENT);
}

/* -------------------------------------------------------------- events */

static void test_events(void **state)
{
	struct fx *f = *state;
	char a[TK_ID_LEN], b[TK_ID_LEN];
	new_task(f->s, NULL, 0, a);
	new_task(f->s, NULL, 0, b);
	assert_int_equal(tk_store_task_claim(f->s, a, NULL), 0); /* a: seq 1, 2 */

	int64_t seq = 0, prev = 2;
	for (int i = 0; i < 10; i++) {
		char data[64];
		snprintf(data, sizeof data, "{\"step\":%d}", i);
		assert_int_equal(tk_store_event_append(f->s, a, "progress", data, &seq), 0);
		assert_int_equal(seq, prev + 1);
		prev = seq;
	}
	/* b has its own sequence. */
	assert_int_equal(tk_store_event_append(f->s, b, "log", "\"hello\"", &seq), 0);
	assert_int_equal(seq, 2);
	assert_int_equal(tk_store_event_append(f->s, b, "log", NULL, &seq), 0);
	assert_int_equal(seq, 3);

	struct tk_task_event *ev = NULL;
	size_t n = 0;
	assert_int_equal(tk_store_events_since(f->s, a, 4, 3, &ev, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(ev[i].seq, 5 + (int64_t)i);
		assert_string_equal(ev[i].type, "progress");
		char want[64];
		snprintf(want, sizeof want, "{\"step\":%d}", (int)(ev[i].seq - 3));
		assert_string_equal(ev[i].data_json, want);
		int64_t ns;
		assert_int_equal(tk_time_parse_rfc3339(ev[i].ts, &ns), 0);
	}
	tk_task_events_free(ev, n);
	assert_int_equal(tk_store_events_since(f->s, a, 12, 10, &ev, &n), 0);
	assert_int_equal(n, 0);
	assert_null(ev);
	assert_int_equal(tk_store_events_since(f->s, b, 2, 10, &ev, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].data_json, "null");
	tk_task_events_free(ev, n);

	/* Refusals. */
	assert_int_equal(tk_store_event_append(f->s, a, "Bad Type", "1", NULL), TK_EINVAL);
	assert_int_equal(tk_store_event_append(f->s, a, "", "1", NULL), TK_EINVAL);
	assert_int_equal(tk_store_event_append(f->s, a, "x", "{oops", NULL), TK_EINVAL);
	assert_int_equal(tk_store_event_append(f->s, "01890a5d-ac96-774b-bcce-b302099a8057", "x",
					       "1", NULL), TK_ENOENT);
	assert_int_equal(tk_store_events_since(f->s, "01890a5d-ac96-774b-bcce-b302099a8057", 0,
					       10, &ev, &n), TK_ENOENT);
	assert_int_equal(tk_store_events_since(f->s, a, 0, 0, &ev, &n), TK_EINVAL);
	char *big = malloc(70000);
	assert_non_null(big);
	big[0] = '"';
	memset(big + 1, 'a', 69997);
	big[69998] = '"';
	big[69999] = '\0';
	assert_int_equal(tk_store_event_append(f->s, a, "x", big, NULL), TK_ELIMIT);
	free(big);

	/* A terminal task takes no more events; its status event is last. */
	assert_int_equal(tk_store_task_set_status(f->s, a, TK_TASK_FAILED, NULL, "boom"), 0);
	assert_int_equal(tk_store_event_append(f->s, a, "progress", "1", NULL), TK_ESTATE);
	assert_int_equal(tk_store_events_since(f->s, a, 0, 100, &ev, &n), 0);
	assert_int_equal(n, 13);
	assert_string_equal(ev[12].type, "status");
	assert_string_equal(ev[12].data_json, "{\"status\":\"failed\",\"error\":\"boom\"}");
	tk_task_events_free(ev, n);
}

/* Several writers (own handles) append to one task at once: the sequence
 * numbers handed out are exactly 2..N+1, each once, and increase within
 * each writer. */
#define APPENDERS 4
#define APPENDS 50

struct appender {
	const char *path;
	const char *task_id;
	int64_t seqs[APPENDS];
	int err;
};

static void *append_loop(void *arg)
{
	struct appender *a = arg;
	struct tk_store_options o;
	tk_store_options_default(&o);
	o.sync_normal = true;
	o.busy_timeout_ms = 60000;
	struct tk_store *s = tk_store_open(a->path, &o);
	if (!s) {
		a->err = tk_err_last();
		return NULL;
	}
	for (int i = 0; i < APPENDS && !a->err; i++)
		a->err = tk_store_event_append(s, a->task_id, "log", "\"line\"", &a->seqs[i]);
	tk_store_close(s);
	return NULL;
}

static void test_events_concurrent(void **state)
{
	struct fx *f = *state;
	char id[TK_ID_LEN];
	new_task(f->s, NULL, 0, id); /* seq 1 is its "queued" event */
	struct appender ap[APPENDERS];
	pthread_t th[APPENDERS];
	for (int i = 0; i < APPENDERS; i++) {
		ap[i] = (struct appender){ .path = f->db, .task_id = id };
		assert_int_equal(pthread_create(&th[i], NULL, append_loop, &ap[i]), 0);
	}
	bool seen[APPENDERS * APPENDS + 2] = { false };
	for (int i = 0; i < APPENDERS; i++) /* all joined before any assertion */
		pthread_join(th[i], NULL);
	for (int i = 0; i < APPENDERS; i++) {
		assert_int_equal(ap[i].err, 0);
		for (int j = 0; j < APPENDS; j++) {
			int64_t q = ap[i].seqs[j];
			assert_true(q >= 2 && q <= APPENDERS * APPENDS + 1);
			assert_false(seen[q]);
			seen[q] = true;
			if (j)
				assert_true(q > ap[i].seqs[j - 1]);
		}
	}
	struct tk_task t;
	assert_int_equal(tk_store_task_get(f->s, id, &t), 0);
	assert_int_equal(t.last_event_seq, APPENDERS * APPENDS + 1);
	tk_task_clear(&t);
	struct tk_task_event *ev = NULL;
	size_t n = 0;
	assert_int_equal(tk_store_events_since(f->s, id, 0, TK_STORE_LIST_MAX, &ev, &n), 0);
	assert_int_equal(n, APPENDERS * APPENDS + 1);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ev[i].seq, (int64_t)i + 1);
	tk_task_events_free(ev, n);
}

/* --------------------------------------------------------------- files */

static void test_files(void **state)
{
	struct fx *f = *state;
	const char bin[] = { 'a', '\0', 'b', '\xff' };
	struct tk_file_in files[] = {
		{ "src/main.py", "print(1)\n", 9 },
		{ "data.bin", bin, sizeof bin },
		{ "empty.txt", NULL, 0 },
	};
	struct tk_task_new in = { .request_json = "{}", .files = files, .n_files = 3 };
	char id[TK_ID_LEN];
	assert_int_equal(tk_store_task_create(f->s, &in, id), 0);

	struct tk_task_file *fl = NULL;
	size_t n = 0;
	assert_int_equal(tk_store_file_list(f->s, id, TK_FILE_INPUT, &fl, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(fl[0].path, "data.bin"); /* ordered by path */
	assert_int_equal(fl[0].size, sizeof bin);
	assert_memory_equal(fl[0].content, bin, sizeof bin);
	assert_string_equal(fl[1].path, "empty.txt");
	assert_int_equal(fl[1].size, 0);
	assert_string_equal(fl[2].path, "src/main.py");
	assert_string_equal(fl[2].content, "print(1)\n");
	tk_task_files_free(fl, n);
	assert_int_equal(tk_store_file_list(f->s, id, TK_FILE_OUTPUT, &fl, &n), 0);
	assert_int_equal(n, 0);

	struct tk_file_in out = { "src/main.py", "print(2)\n", 9 };
	assert_int_equal(tk_store_file_put(f->s, id, TK_FILE_OUTPUT, &out), 0);
	out.content = "print(3)\n";
	assert_int_equal(tk_store_file_put(f->s, id, TK_FILE_OUTPUT, &out), 0); /* replace */
	struct tk_task_file g;
	assert_int_equal(tk_store_file_get(f->s, id, TK_FILE_OUTPUT, "src/main.py", &g), 0);
	assert_string_equal(g.content, "print(3)\n");
	assert_int_equal(g.kind, TK_FILE_OUTPUT);
	tk_task_file_clear(&g);
	assert_int_equal(tk_store_file_get(f->s, id, TK_FILE_INPUT, "src/main.py", &g), 0);
	assert_string_equal(g.content, "print(1)\n");
	tk_task_file_clear(&g);
	assert_int_equal(tk_store_file_get(f->s, id, TK_FILE_OUTPUT, "nope", &g), TK_ENOENT);
	assert_int_equal(tk_store_file_put(f->s, "01890a5d-ac96-774b-bcce-b302099a8057",
					   TK_FILE_OUTPUT, &out), TK_ENOENT);

	/* Paths. */
	const char *bad[] = { "/etc/passwd", "../x", "a/../b", "a/..", "./a", "a//b", "a/",
			      "", "a\\..\\b", "tab\there", "a/./b", NULL };
	for (const char **p = bad; *p; p++) {
		struct tk_file_in bf = { *p, "x", 1 };
		if (tk_store_file_put(f->s, id, TK_FILE_OUTPUT, &bf) != TK_EINVAL)
			fail_msg("path '%s' accepted", *p);
		assert_false(tk_store_file_path_valid(*p, 1024));
	}
	const char *good[] = { "a", "a/b/c.txt", ".hidden", "a/..b", "dir/...", NULL };
	for (const char **p = good; *p; p++)
		assert_true(tk_store_file_path_valid(*p, 1024));
	assert_false(tk_store_file_path_valid("abcdef", 5));

	/* Duplicate paths in one create: refused, and no task is left. */
	int64_t before = 0, after = 0;
	assert_int_equal(tk_store_task_count(f->s, NULL, false, 0, &before), 0);
	struct tk_file_in dup[] = { { "a", "1", 1 }, { "a", "2", 1 } };
	struct tk_task_new din = { .request_json = "{}", .files = dup, .n_files = 2 };
	assert_int_equal(tk_store_task_create(f->s, &din, id), TK_EEXIST);
	assert_int_equal(tk_store_task_count(f->s, NULL, false, 0, &after), 0);
	assert_int_equal(after, before);
}

static void test_file_caps(void **state)
{
	(void)state;
	struct tk_store_options o;
	tk_store_options_default(&o);
	o.file_max_bytes = 10;
	o.files_max_count = 3;
	o.files_max_total_bytes = 25;
	struct tk_store *s = tk_store_open(":memory:", &o);
	assert_non_null(s);
	char id[TK_ID_LEN];
	new_task(s, NULL, 0, id);

	struct tk_file_in f11 = { "big", "0123456789a", 11 };
	assert_int_equal(tk_store_file_put(s, id, TK_FILE_OUTPUT, &f11), TK_ELIMIT);
	struct tk_file_in f = { "a", "0123456789", 10 };
	assert_int_equal(tk_store_file_put(s, id, TK_FILE_OUTPUT, &f), 0);
	f.path = "b";
	assert_int_equal(tk_store_file_put(s, id, TK_FILE_OUTPUT, &f), 0);
	f.path = "c"; /* 30 bytes in all: over the total */
	assert_int_equal(tk_store_file_put(s, id, TK_FILE_OUTPUT, &f), TK_ELIMIT);
	f.size = 5;
	assert_int_equal(tk_store_file_put(s, id, TK_FILE_OUTPUT, &f), 0);
	f.path = "d"; /* a fourth file */
	f.size = 1;
	assert_int_equal(tk_store_file_put(s, id, TK_FILE_OUTPUT, &f), TK_ELIMIT);
	/* Replacing an existing file counts its new size, not both. */
	f.path = "a";
	f.size = 10;
	assert_int_equal(tk_store_file_put(s, id, TK_FILE_OUTPUT, &f), 0);
	/* Inputs have their own budget. */
	f.path = "d";
	assert_int_equal(tk_store_file_put(s, id, TK_FILE_INPUT, &f), 0);

	struct tk_task_file *fl = NULL;
	size_t n = 0;
	assert_int_equal(tk_store_file_list(s, id, TK_FILE_OUTPUT, &fl, &n), 0);
	assert_int_equal(n, 3);
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += fl[i].size;
	assert_int_equal(total, 25);
	tk_task_files_free(fl, n);

	/* At create: too many files, and a file too large. */
	struct tk_file_in four[] = { { "1", "", 0 }, { "2", "", 0 }, { "3", "", 0 }, { "4", "", 0 } };
	struct tk_task_new in = { .request_json = "{}", .files = four, .n_files = 4 };
	assert_int_equal(tk_store_task_create(s, &in, id), TK_ELIMIT);
	in.files = &f11;
	in.n_files = 1;
	assert_int_equal(tk_store_task_create(s, &in, id), TK_ELIMIT);
	tk_store_close(s);
}

/* ---------------------------------------------------------------- keys */

static void test_key_hash_vector(void **state)
{
	(void)state;
	/* Expected value from an independent implementation (Python's
	 * hashlib.sha256(b"0123456789abcdef" + bytes(range(32)))). */
	const char *want = "fd98524c27e847894f5f040334d074eb4d0e25159e4dc84965727a6dfd91a929";
	uint8_t salt[TK_KEY_SALT_BYTES], secret[32], h[TK_KEY_HASH_BYTES];
	memcpy(salt, "0123456789abcdef", 16);
	for (int i = 0; i < 32; i++)
		secret[i] = (uint8_t)i;
	assert_int_equal(store_key_hash(salt, secret, 32, h), 0);
	char hex[65];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	assert_string_equal(hex, want);
}

static void test_ct_equal(void **state)
{
	(void)state;
	uint8_t a[32], b[32];
	for (int i = 0; i < 32; i++)
		a[i] = b[i] = (uint8_t)(i * 7);
	assert_true(store_ct_equal(a, b, 32));
	b[0] ^= 1;
	assert_false(store_ct_equal(a, b, 32));
	b[0] ^= 1;
	b[31] ^= 0x80;
	assert_false(store_ct_equal(a, b, 32));
	assert_true(store_ct_equal(a, b, 31));
	assert_true(store_ct_equal(a, b, 0));
}

static void test_keys(void **state)
{
	struct fx *f = *state;
	char key[TK_KEY_TEXT_LEN];
	struct tk_api_key rec;
	assert_int_equal(tk_store_key_create(f->s, "ci bot", TK_ROLE_ADMIN, key, &rec), 0);
	assert_true(tk_key_text_valid(key));
	assert_int_equal(strlen(key), TK_KEY_TEXT_LEN - 1);
	assert_memory_equal(key, "tk_", 3);
	assert_memory_equal(key + 3, rec.id, 16);
	assert_string_equal(rec.name, "ci bot");
	assert_int_equal(rec.role, TK_ROLE_ADMIN);
	assert_string_equal(rec.last_used, "");
	assert_false(tk_api_key_revoked(&rec));

	struct tk_api_key v;
	assert_int_equal(tk_store_key_verify(f->s, key, &v), 0);
	assert_string_equal(v.id, rec.id);
	assert_int_equal(v.role, TK_ROLE_ADMIN);

	/* Wrong secret: the last hex digit changed. */
	char wrong[TK_KEY_TEXT_LEN];
	memcpy(wrong, key, sizeof wrong);
	wrong[TK_KEY_TEXT_LEN - 2] = wrong[TK_KEY_TEXT_LEN - 2] == '0' ? '1' : '0';
	assert_int_equal(tk_store_key_verify(f->s, wrong, &v), TK_EPERM);
	assert_non_null(strstr(tk_err_detail(), "wrong secret"));
	/* The detail never holds the secret. */
	assert_null(strstr(tk_err_detail(), wrong + 20));
	/* Unknown id with a well-formed text. */
	memcpy(wrong, key, sizeof wrong);
	wrong[3] = wrong[3] == 'a' ? 'b' : 'a';
	assert_int_equal(tk_store_key_verify(f->s, wrong, &v), TK_EPERM);
	assert_non_null(strstr(tk_err_detail(), "unknown"));
	/* Malformed. */
	const char *bad[] = { "", "tk_", "Bearer x", "tk_0123456789abcdef_00", NULL };
	for (const char **p = bad; *p; p++)
		assert_int_equal(tk_store_key_verify(f->s, *p, &v), TK_EPERM);
	char upper[TK_KEY_TEXT_LEN];
	memcpy(upper, key, sizeof upper);
	upper[30] = 'G';
	assert_int_equal(tk_store_key_verify(f->s, upper, &v), TK_EPERM);
	assert_int_equal(tk_store_key_verify(f->s, NULL, &v), TK_EPERM);

	/* Touch. */
	assert_int_equal(tk_store_key_touch(f->s, rec.id), 0);
	assert_int_equal(tk_store_key_get(f->s, rec.id, &v), 0);
	assert_true(v.last_used[0] != '\0');
	assert_int_equal(tk_store_key_touch(f->s, "0000000000000000"), TK_ENOENT);

	/* A second key, then list. */
	char key2[TK_KEY_TEXT_LEN];
	struct tk_api_key rec2;
	assert_int_equal(tk_store_key_create(f->s, "user-2", TK_ROLE_USER, key2, &rec2), 0);
	assert_string_not_equal(rec.id, rec2.id);
	assert_string_not_equal(key, key2);
	struct tk_api_key *ks = NULL;
	size_t n = 0;
	assert_int_equal(tk_store_key_list(f->s, &ks, &n), 0);
	assert_int_equal(n, 2);
	int found = 0;
	for (size_t i = 0; i < n; i++)
		found += !strcmp(ks[i].id, rec.id) + !strcmp(ks[i].id, rec2.id);
	assert_int_equal(found, 2);
	free(ks);
	int64_t cnt = 0;
	assert_int_equal(tk_store_key_count(f->s, true, &cnt), 0);
	assert_int_equal(cnt, 1);

	/* Revoke. */
	assert_int_equal(tk_store_key_revoke(f->s, rec.id), 0);
	assert_int_equal(tk_store_key_verify(f->s, key, &v), TK_EPERM);
	assert_non_null(strstr(tk_err_detail(), "revoked"));
	struct tk_api_key r1;
	assert_int_equal(tk_store_key_get(f->s, rec.id, &r1), 0);
	assert_true(tk_api_key_revoked(&r1));
	assert_int_equal(tk_store_key_revoke(f->s, rec.id), 0); /* idempotent */
	struct tk_api_key r2;
	assert_int_equal(tk_store_key_get(f->s, rec.id, &r2), 0);
	assert_string_equal(r1.revoked, r2.revoked);
	assert_int_equal(tk_store_key_revoke(f->s, "0000000000000000"), TK_ENOENT);
	assert_int_equal(tk_store_key_revoke(f->s, "xyz"), TK_EINVAL);
	assert_int_equal(tk_store_key_verify(f->s, key2, &v), 0);
	assert_int_equal(tk_store_key_count(f->s, true, &cnt), 0);
	assert_int_equal(cnt, 0);

	/* Names and roles. */
	assert_int_equal(tk_store_key_create(f->s, "", TK_ROLE_USER, key, NULL), TK_EINVAL);
	assert_int_equal(tk_store_key_create(f->s, "a\nb", TK_ROLE_USER, key, NULL), TK_EINVAL);
	assert_int_equal(tk_store_key_create(f->s, "x", 7, key, NULL), TK_EINVAL);
	enum tk_key_role role;
	assert_int_equal(tk_key_role_parse("admin", &role), 0);
	assert_int_equal(role, TK_ROLE_ADMIN);
	assert_int_equal(tk_key_role_parse("root", &role), TK_EINVAL);

	/* The database never holds a secret: neither its hex text nor its bytes. */
	tk_store_close(f->s);
	f->s = NULL;
	size_t len = 0;
	char *blob = tk_test_read_file(f->db, &len);
	char wal[700];
	snprintf(wal, sizeof wal, "%s-wal", f->db);
	FILE *wf = fopen(wal, "rb");
	assert_null(wf); /* checkpointed and removed at close */
	assert_null(memmem(blob, len, key2 + 20, 64));
	uint8_t raw[32];
	char id2[TK_KEY_ID_LEN];
	assert_int_equal(store_key_parse(key2, id2, raw), 0);
	assert_null(memmem(blob, len, raw, sizeof raw));
	assert_non_null(memmem(blob, len, id2, 16)); /* the id is stored */
	free(blob);
	f->s = tk_store_open(f->db, NULL);
	assert_non_null(f->s);
	assert_int_equal(tk_store_key_verify(f->s, key2, &v), 0);
}

static void test_key_import(void **state)
{
	struct fx *f = *state;
	const char *boot = "tk_00112233445566ff_"
			   "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
	struct tk_api_key rec, v;
	assert_int_equal(tk_store_key_import(f->s, boot, "bootstrap", TK_ROLE_ADMIN, &rec), 0);
	assert_string_equal(rec.id, "00112233445566ff");
	assert_int_equal(tk_store_key_verify(f->s, boot, &v), 0);
	assert_int_equal(v.role, TK_ROLE_ADMIN);
	assert_int_equal(tk_store_key_import(f->s, boot, "again", TK_ROLE_ADMIN, NULL), TK_EEXIST);
	assert_int_equal(tk_store_key_import(f->s, "tk_short", "x", TK_ROLE_USER, NULL), TK_EINVAL);
	int64_t n = 0;
	assert_int_equal(tk_store_key_count(f->s, false, &n), 0);
	assert_int_equal(n, 1);
}

/* ------------------------------------------------------------ registry */

static void test_artifacts(void **state)
{
	struct fx *f = *state;
	char path[] = "/models/qwen.gguf", ver[] = "q4_0";
	struct tk_artifact a = { .kind = "model", .name = "qwen2.5-coder:1.5b", .path = path,
				 .sha256 = "0f0e0d0c0b0a09080706050403020100"
					   "0f0e0d0c0b0a09080706050403020100",
				 .size_bytes = 1234567, .version = ver };
	assert_int_equal(tk_store_artifact_register(f->s, &a), 0);
	assert_int_equal(tk_store_artifact_register(f->s, &a), TK_EEXIST);
	char ap[] = "/adapters/sql.bin";
	struct tk_artifact b = a;
	snprintf(b.kind, sizeof b.kind, "adapter");
	snprintf(b.name, sizeof b.name, "sql");
	b.path = ap;
	b.version = NULL;
	assert_int_equal(tk_store_artifact_register(f->s, &b), 0);

	struct tk_artifact g;
	assert_int_equal(tk_store_artifact_get(f->s, "model", "qwen2.5-coder:1.5b", &g), 0);
	assert_string_equal(g.path, path);
	assert_string_equal(g.sha256, a.sha256);
	assert_int_equal(g.size_bytes, 1234567);
	assert_string_equal(g.version, "q4_0");
	assert_true(g.created[0] != '\0');
	tk_artifact_clear(&g);

	struct tk_artifact *l = NULL;
	size_t n = 0;
	assert_int_equal(tk_store_artifact_list(f->s, NULL, &l, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(l[0].kind, "adapter"); /* by kind, then name */
	assert_string_equal(l[0].version, "");
	assert_string_equal(l[1].kind, "model");
	tk_artifacts_free(l, n);
	assert_int_equal(tk_store_artifact_list(f->s, "adapter", &l, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(l[0].name, "sql");
	tk_artifacts_free(l, n);

	struct tk_artifact bad = a;
	snprintf(bad.sha256, sizeof bad.sha256, "XYZ");
	assert_int_equal(tk_store_artifact_register(f->s, &bad), TK_EINVAL);
	bad = a;
	snprintf(bad.kind, sizeof bad.kind, "dataset");
	assert_int_equal(tk_store_artifact_register(f->s, &bad), TK_EINVAL);
	bad = a;
	snprintf(bad.name, sizeof bad.name, "a b");
	assert_int_equal(tk_store_artifact_register(f->s, &bad), TK_EINVAL);
	bad = a;
	bad.size_bytes = -1;
	assert_int_equal(tk_store_artifact_register(f->s, &bad), TK_EINVAL);

	assert_int_equal(tk_store_artifact_remove(f->s, "adapter", "sql"), 0);
	assert_int_equal(tk_store_artifact_remove(f->s, "adapter", "sql"), TK_ENOENT);
	assert_int_equal(tk_store_artifact_get(f->s, "adapter", "sql", &g), TK_ENOENT);
}

/* ------------------------------------------------------------ recovery */

static void test_recovery(void **state)
{
	struct fx *f = *state;
	char fresh[TK_ID_LEN], worked[TK_ID_LEN], queued[TK_ID_LEN], done[TK_ID_LEN],
		spent[TK_ID_LEN];
	/* fresh: claimed, no event since: re-queued. */
	task_in_status(f->s, TK_TASK_RUNNING, fresh);
	/* worked: claimed and reported progress: failed. */
	task_in_status(f->s, TK_TASK_RUNNING, worked);
	assert_int_equal(tk_store_event_append(f->s, worked, "progress", "{\"p\":1}", NULL), 0);
	task_in_status(f->s, TK_TASK_QUEUED, queued);
	task_in_status(f->s, TK_TASK_COMPLETED, done);
	/* spent: claimed max_attempts (3) times without progress: failed. */
	task_in_status(f->s, TK_TASK_RUNNING, spent);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(tk_store_task_requeue(f->s, spent, "test"), 0);
		assert_int_equal(tk_store_task_claim(f->s, spent, NULL), 0);
	}

	/* The process "dies": reopen as a new server would. */
	tk_store_close(f->s);
	f->s = tk_store_open_dir(f->dir, NULL);
	assert_non_null(f->s);
	struct tk_store_recovery r;
	assert_int_equal(tk_store_recover_at_startup(f->s, &r), 0);
	assert_int_equal(r.requeued, 1);
	assert_int_equal(r.failed, 2);

	struct tk_task t;
	assert_int_equal(tk_store_task_get(f->s, fresh, &t), 0);
	assert_int_equal(t.status, TK_TASK_QUEUED);
	assert_int_equal(t.attempts, 1);
	assert_string_equal(t.started, "");
	int64_t last = t.last_event_seq;
	tk_task_clear(&t);
	struct tk_task_event *ev = NULL;
	size_t n = 0;
	assert_int_equal(tk_store_events_since(f->s, fresh, last - 1, 10, &ev, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].data_json,
			    "{\"status\":\"queued\",\"reason\":\"interrupted by restart\"}");
	tk_task_events_free(ev, n);

	assert_int_equal(tk_store_task_get(f->s, worked, &t), 0);
	assert_int_equal(t.status, TK_TASK_FAILED);
	assert_string_equal(t.error, TK_STORE_RECOVERY_REASON);
	assert_true(t.finished[0] != '\0');
	tk_task_clear(&t);
	assert_int_equal(tk_store_task_get(f->s, spent, &t), 0);
	assert_int_equal(t.status, TK_TASK_FAILED);
	assert_int_equal(t.attempts, 3);
	assert_string_equal(t.error, TK_STORE_RECOVERY_REASON);
	tk_task_clear(&t);
	assert_int_equal(status_of(f->s, queued), TK_TASK_QUEUED);
	assert_int_equal(status_of(f->s, done), TK_TASK_COMPLETED);

	/* Nothing left running; a second pass changes nothing. */
	assert_int_equal(tk_store_recover_at_startup(f->s, &r), 0);
	assert_int_equal(r.requeued + r.failed, 0);
	/* The re-queued task is claimable again, as attempt 2. */
	assert_int_equal(tk_store_task_claim_next(f->s, &t), 0);
	assert_string_equal(t.id, fresh);
	assert_int_equal(t.attempts, 2);
	tk_task_clear(&t);
}

/* ----------------------------------------------------- SIGKILL'd writer */

/* Writes forever: tasks with two input files, claims, events, results.
 * Each task ends "completed" with two output files, or is cut short. */
static void writer_child(const char *dir, pid_t parent)
{
	/* Die with the test: a failed assertion in the parent must not leave
	 * a writer running forever (it would hold the test's output pipe and
	 * ctest would wait for it until its timeout). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(9);
	struct tk_store *s = tk_store_open_dir(dir, NULL);
	if (!s)
		_exit(3);
	char pad[3000];
	memset(pad, 'x', sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	for (unsigned i = 0;; i++) {
		struct tk_file_in files[] = { { "a.txt", pad, sizeof pad - 1 },
					      { "b/c.txt", "c", 1 } };
		struct tk_task_new in = { .request_json = "{\"task_description\":\"w\"}",
					  .files = files, .n_files = 2 };
		char id[TK_ID_LEN];
		if (tk_store_task_create(s, &in, id))
			_exit(4);
		struct tk_task t;
		if (tk_store_task_claim_next(s, &t))
			_exit(5);
		for (int e = 0; e < 3; e++)
			if (tk_store_event_append(s, t.id, "progress", "{\"n\":1}", NULL))
				_exit(6);
		if (tk_store_file_put(s, t.id, TK_FILE_OUTPUT, &files[0]) ||
		    tk_store_file_put(s, t.id, TK_FILE_OUTPUT, &files[1]))
			_exit(7);
		if (tk_store_task_set_status(s, t.id, TK_TASK_COMPLETED, "{\"ok\":true}", NULL))
			_exit(8);
		tk_task_clear(&t);
	}
}

static void check_consistent(const char *db_path)
{
	sqlite3 *db = raw_open(db_path);
	char *ic = raw_text(db, "PRAGMA integrity_check");
	assert_string_equal(ic, "ok");
	free(ic);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
	/* Every task has exactly two input files (created in one transaction). */
	assert_int_equal(raw_int(db, "SELECT count(*) FROM tasks t WHERE "
				     "(SELECT count(*) FROM task_files f WHERE f.task_id = t.id "
				     " AND f.kind = 'input') <> 2"), 0);
	/* Events are 1..last_event_seq without gaps. */
	assert_int_equal(raw_int(db, "SELECT count(*) FROM tasks t WHERE "
				     "(SELECT count(*) FROM task_events e WHERE e.task_id = t.id) "
				     "<> t.last_event_seq OR (SELECT max(seq) FROM task_events e "
				     "WHERE e.task_id = t.id) <> t.last_event_seq"), 0);
	/* A task's status matches its newest status event. */
	assert_int_equal(raw_int(db, "SELECT count(*) FROM tasks t WHERE t.status <> "
				     "(SELECT json_extract(data_json, '$.status') FROM task_events e "
				     "WHERE e.task_id = t.id AND e.type = 'status' "
				     "ORDER BY seq DESC LIMIT 1)"), 0);
	/* Completed tasks have their result and the finish time. */
	assert_int_equal(raw_int(db, "SELECT count(*) FROM tasks WHERE status = 'completed' AND "
				     "(result_json IS NULL OR finished IS NULL)"), 0);
	sqlite3_close(db);
}

static void test_sigkill_writer(void **state)
{
	struct fx *f = *state;
	tk_store_close(f->s);
	f->s = NULL;
	for (int round = 0; round < 3; round++) {
		fflush(NULL);
		const pid_t parent = getpid();
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			writer_child(f->dir, parent);
		/* Wait until the child has made progress past the previous
		 * round, then kill it wherever it is. */
		struct tk_store *s = tk_store_open_dir(f->dir, NULL);
		if (!s)
			fail_msg("open beside the writer: %s", tk_err_detail());
		int64_t target = 2 + 4 * (round + 1), n = 0;
		for (int tries = 0; tries < 30000; tries++) {
			assert_int_equal(tk_store_task_count(s, NULL, false, 0, &n), 0);
			if (n >= target)
				break;
			int st;
			if (waitpid(pid, &st, WNOHANG) == pid)
				fail_msg("writer exited early with status %d", st);
			nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		}
		assert_true(n >= target);
		/* Let a few more writes start, at a different point each round. */
		nanosleep(&(struct timespec){ 0, 300000 * (round + 1) }, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		int st = 0;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		tk_store_close(s);

		check_consistent(f->db);
		/* The store opens again, and recovery settles the task that
		 * was running. */
		s = tk_store_open_dir(f->dir, NULL);
		assert_non_null(s);
		struct tk_store_recovery r;
		assert_int_equal(tk_store_recover_at_startup(s, &r), 0);
		assert_true(r.requeued + r.failed <= 1);
		int64_t running = -1;
		assert_int_equal(tk_store_task_count(s, NULL, true, TK_TASK_RUNNING, &running), 0);
		assert_int_equal(running, 0);
		/* Finish the work the child left so the next round's checks
		 * start from a clean queue. */
		struct tk_task t;
		while (tk_store_task_claim_next(s, &t) == 0) {
			assert_int_equal(tk_store_task_set_status(s, t.id, TK_TASK_COMPLETED,
								  "{\"ok\":true}", NULL), 0);
			tk_task_clear(&t);
		}
		tk_store_close(s);
		check_consistent(f->db);
	}
	f->s = tk_store_open_dir(f->dir, NULL);
	assert_non_null(f->s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_migrations_from_empty),
		T(test_foreign_keys_on),
		T(test_newer_version_refused),
		T(test_open_errors),
		T(test_task_lifecycle),
		T(test_task_create_invalid),
		T(test_transitions),
		cmocka_unit_test(test_status_names),
		T(test_list_pagination),
		T(test_claim_fifo),
		T(test_purge),
		T(test_concurrent_open),
		T(test_database_full),
		T(test_claim_concurrent_own_handles),
		T(test_claim_concurrent_shared_handle),
		T(test_events),
		T(test_events_concurrent),
		T(test_files),
		cmocka_unit_test(test_file_caps),
		cmocka_unit_test(test_key_hash_vector),
		cmocka_unit_test(test_ct_equal),
		T(test_keys),
		T(test_key_import),
		T(test_artifacts),
		T(test_recovery),
		T(test_sigkill_writer),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
