/*
 * store_sqlite.c — the SQLite backend of the store (store_backend.h).
 *
 * Owns one sqlite3 connection per handle, its prepared statements and the
 * mutex that serializes every use of them.
 *
 * Theory of operation:
 *   - WAL journal (readers never block the writer), foreign keys ON,
 *     synchronous FULL by default (a commit that returned survives power
 *     loss), a busy timeout so another process holding the write lock (the
 *     `tanuki keys` CLI next to a running server) is waited for.
 *   - The schema is created and upgraded by the numbered migrations below,
 *     each in its own IMMEDIATE transaction that also records its number in
 *     schema_version. A database whose highest number is above what this
 *     build knows is refused (never written to by an older binary).
 *   - Every change is one BEGIN IMMEDIATE ... COMMIT: taking the write lock
 *     up front means the read-check-write inside (claim, transitions, seq
 *     numbers, file caps) sees no other writer in between, whether that
 *     writer is another thread's handle or another process.
 *   - Thread model: the handle's mutex is held for the whole of each call,
 *     so one handle is used by one thread at a time; statements are
 *     prepared once at open (SQLITE_PREPARE_PERSISTENT) and reset after use.
 */
#include "store/store_backend.h"

#include "core/err.h"
#include "core/time.h"
#include "obs/log.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---------------------------------------------------------- migrations */

/* Append only: never edit a migration that has shipped; add the next. */
static const char *const migrations[] = {
	/* 1: the initial schema. */
	"CREATE TABLE api_keys ("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('user','admin')),"
	"  salt BLOB NOT NULL,"
	"  hash BLOB NOT NULL,"
	"  created TEXT NOT NULL,"
	"  last_used TEXT,"
	"  revoked TEXT"
	");"
	"CREATE TABLE tasks ("
	"  id TEXT PRIMARY KEY,"
	"  owner_key_id TEXT REFERENCES api_keys(id),"
	"  status TEXT NOT NULL CHECK (status IN"
	"    ('queued','running','completed','failed','timed_out','cancelled')),"
	"  request_json TEXT NOT NULL,"
	"  result_json TEXT,"
	"  error TEXT,"
	"  created TEXT NOT NULL,"
	"  started TEXT,"
	"  finished TEXT,"
	"  deadline TEXT,"
	"  timeout_ms INTEGER NOT NULL DEFAULT 0 CHECK (timeout_ms >= 0),"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  last_event_seq INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX tasks_by_status ON tasks(status, id);"
	"CREATE INDEX tasks_by_owner ON tasks(owner_key_id, id);"
	"CREATE TABLE task_events ("
	"  task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL CHECK (seq > 0),"
	"  type TEXT NOT NULL,"
	"  data_json TEXT NOT NULL,"
	"  ts TEXT NOT NULL,"
	"  PRIMARY KEY (task_id, seq)"
	") WITHOUT ROWID;"
	"CREATE TABLE task_files ("
	"  task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
	"  kind TEXT NOT NULL CHECK (kind IN ('input','output')),"
	"  path TEXT NOT NULL,"
	"  content BLOB NOT NULL,"
	"  size INTEGER NOT NULL CHECK (size >= 0),"
	"  created TEXT NOT NULL,"
	"  PRIMARY KEY (task_id, kind, path)"
	");"
	"CREATE TABLE artifacts ("
	"  kind TEXT NOT NULL CHECK (kind IN ('model','adapter')),"
	"  name TEXT NOT NULL,"
	"  path TEXT NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),"
	"  version TEXT NOT NULL DEFAULT '',"
	"  created TEXT NOT NULL,"
	"  PRIMARY KEY (kind, name)"
	");",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int tk_store_schema_version_max(void)
{
	return N_MIGRATIONS;
}

/* ---------------------------------------------------------- statements */

#define TASK_COLS "id, owner_key_id, status, request_json, result_json, error, created, " \
		  "started, finished, deadline, timeout_ms, attempts, last_event_seq"

enum {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_TASK_INSERT, ST_TASK_GET, ST_TASK_STATE, ST_TASK_OLDEST_QUEUED,
	ST_TASK_SET_RUNNING, ST_TASK_TRANSITION, ST_TASK_SEQ_BUMP,
	ST_EVENT_INSERT, ST_EVENTS_SINCE,
	ST_FILE_STATS, ST_FILE_PUT, ST_FILE_LIST, ST_FILE_GET,
	ST_KEY_INSERT, ST_KEY_GET, ST_KEY_TOUCH, ST_KEY_REVOKE, ST_KEY_LIST,
	ST_KEY_COUNT, ST_KEY_COUNT_ADMIN,
	ST_ART_INSERT, ST_ART_GET, ST_ART_LIST, ST_ART_LIST_KIND, ST_ART_DELETE,
	ST_PING, ST_TASK_PURGE,
	ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_TASK_INSERT] = "INSERT INTO tasks (id, owner_key_id, status, request_json, created, "
			   "timeout_ms) VALUES (?1, ?2, 'queued', ?3, ?4, ?5)",
	[ST_TASK_GET] = "SELECT " TASK_COLS " FROM tasks WHERE id = ?1",
	[ST_TASK_STATE] = "SELECT status, timeout_ms FROM tasks WHERE id = ?1",
	[ST_TASK_OLDEST_QUEUED] = "SELECT id, status, timeout_ms FROM tasks "
				  "WHERE status = 'queued' ORDER BY id LIMIT 1",
	[ST_TASK_SET_RUNNING] = "UPDATE tasks SET status = 'running', started = ?2, "
				"deadline = ?3, attempts = attempts + 1, finished = NULL "
				"WHERE id = ?1 RETURNING attempts",
	[ST_TASK_TRANSITION] = "UPDATE tasks SET status = ?2, result_json = ?3, error = ?4, "
			       "finished = ?5, "
			       "started = CASE WHEN ?6 THEN NULL ELSE started END, "
			       "deadline = CASE WHEN ?6 THEN NULL ELSE deadline END "
			       "WHERE id = ?1",
	[ST_TASK_SEQ_BUMP] = "UPDATE tasks SET last_event_seq = last_event_seq + 1 "
			     "WHERE id = ?1 RETURNING last_event_seq",
	[ST_EVENT_INSERT] = "INSERT INTO task_events (task_id, seq, type, data_json, ts) "
			    "VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_EVENTS_SINCE] = "SELECT seq, type, data_json, ts FROM task_events "
			    "WHERE task_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
	[ST_FILE_STATS] = "SELECT count(*), coalesce(sum(size), 0) FROM task_files "
			  "WHERE task_id = ?1 AND kind = ?2 AND path <> ?3",
	[ST_FILE_PUT] = "INSERT INTO task_files (task_id, kind, path, content, size, created) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (task_id, kind, path) "
			"DO UPDATE SET content = excluded.content, size = excluded.size, "
			"created = excluded.created",
	[ST_FILE_LIST] = "SELECT path, content, size FROM task_files "
			 "WHERE task_id = ?1 AND kind = ?2 ORDER BY path",
	[ST_FILE_GET] = "SELECT path, content, size FROM task_files "
			"WHERE task_id = ?1 AND kind = ?2 AND path = ?3",
	[ST_KEY_INSERT] = "INSERT INTO api_keys (id, name, role, salt, hash, created) "
			  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_KEY_GET] = "SELECT id, name, role, created, last_used, revoked, salt, hash "
		       "FROM api_keys WHERE id = ?1",
	[ST_KEY_TOUCH] = "UPDATE api_keys SET last_used = ?2 WHERE id = ?1",
	[ST_KEY_REVOKE] = "UPDATE api_keys SET revoked = coalesce(revoked, ?2) WHERE id = ?1",
	[ST_KEY_LIST] = "SELECT id, name, role, created, last_used, revoked, salt, hash "
			"FROM api_keys ORDER BY created, id",
	[ST_KEY_COUNT] = "SELECT count(*) FROM api_keys",
	[ST_KEY_COUNT_ADMIN] = "SELECT count(*) FROM api_keys "
			       "WHERE role = 'admin' AND revoked IS NULL",
	[ST_ART_INSERT] = "INSERT INTO artifacts (kind, name, path, sha256, size_bytes, "
			  "version, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_ART_GET] = "SELECT kind, name, path, sha256, size_bytes, version, created "
		       "FROM artifacts WHERE kind = ?1 AND name = ?2",
	[ST_ART_LIST] = "SELECT kind, name, path, sha256, size_bytes, version, created "
			"FROM artifacts ORDER BY kind, name",
	[ST_ART_LIST_KIND] = "SELECT kind, name, path, sha256, size_bytes, version, created "
			     "FROM artifacts WHERE kind = ?1 ORDER BY kind, name",
	[ST_ART_DELETE] = "DELETE FROM artifacts WHERE kind = ?1 AND name = ?2",
	[ST_PING] = "SELECT count(*) FROM schema_version",
	[ST_TASK_PURGE] = "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE status IN "
			  "('completed','failed','timed_out','cancelled') AND finished < ?1 "
			  "ORDER BY finished LIMIT ?2)",
};

struct sq {
	pthread_mutex_t lock; /* held for the whole of every backend call */
	sqlite3 *db;          /* guarded by lock */
	sqlite3_stmt *st[ST__COUNT]; /* guarded by lock; prepared at open */
	int version;          /* schema version after migration; fixed */
	char *path;           /* owned; for error details */
};

static struct sq *SQ(struct tk_store *s)
{
	return s->impl;
}

/* Maps an SQLite failure to a TK_E* code with a detail naming `what`. */
static int db_err(struct sq *q, int src, const char *what)
{
	int code;
	switch (src & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = TK_EBUSY;
		break;
	case SQLITE_NOMEM:
		code = TK_ENOMEM;
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		code = TK_EFORMAT;
		break;
	case SQLITE_CONSTRAINT:
		code = (src == SQLITE_CONSTRAINT_PRIMARYKEY || src == SQLITE_CONSTRAINT_UNIQUE)
			       ? TK_EEXIST
			       : src == SQLITE_CONSTRAINT_FOREIGNKEY ? TK_ENOENT : TK_EINVAL;
		break;
	case SQLITE_TOOBIG:
		code = TK_ELIMIT;
		break;
	case SQLITE_FULL: /* an operational failure (disk or max_db_bytes), not bad input */
	default:
		code = TK_EIO;
	}
	return tk_errf(code, "store: %s: %s: %s", q->path, what,
		       q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(src));
}

/* A prepared statement, reset and ready for binding. */
static sqlite3_stmt *stmt(struct sq *q, int which)
{
	sqlite3_stmt *st = q->st[which];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

static int exec_simple(struct sq *q, int which, const char *what)
{
	sqlite3_stmt *st = stmt(q, which);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_err(q, rc, what);
	return 0;
}

static int tx_begin(struct sq *q)
{
	return exec_simple(q, ST_BEGIN, "begin");
}

static int tx_commit(struct sq *q)
{
	int rc = exec_simple(q, ST_COMMIT, "commit");
	if (rc && !sqlite3_get_autocommit(q->db))
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Rolls back if a transaction is open; keeps the caller's error detail. */
static void tx_rollback(struct sq *q)
{
	if (!sqlite3_get_autocommit(q->db)) {
		sqlite3_stmt *st = stmt(q, ST_ROLLBACK);
		sqlite3_step(st);
		sqlite3_reset(st);
	}
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s && *s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Copies a nullable text column into a fixed buffer ("" for NULL). */
static void col_fixed(sqlite3_stmt *st, int i, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(out, cap, "%s", t ? (const char *)t : "");
}

/* Heap copy of a text column; NULL column gives NULL with *rc 0. */
static char *col_dup(sqlite3_stmt *st, int i, int *rc)
{
	*rc = 0;
	const unsigned char *t = sqlite3_column_text(st, i);
	if (!t) {
		if (sqlite3_column_type(st, i) != SQLITE_NULL)
			*rc = tk_errf(TK_ENOMEM, "store: out of memory reading a column");
		return NULL;
	}
	size_t n = (size_t)sqlite3_column_bytes(st, i);
	char *d = malloc(n + 1);
	if (!d) {
		*rc = tk_errf(TK_ENOMEM, "store: out of memory (%zu bytes)", n);
		return NULL;
	}
	memcpy(d, t, n);
	d[n] = '\0';
	return d;
}

/* Grows a result array by one element. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 16;
	void *p = realloc(*arr, nc * elem);
	if (!p)
		return tk_errf(TK_ENOMEM, "store: out of memory growing a result list");
	memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
	*arr = p;
	*cap = nc;
	return 0;
}

/* --------------------------------------------------------------- open */

/* The newest applied migration (0: none) in *v; an SQLite code. */
static int read_version(struct sq *q, int *v)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db, "SELECT coalesce(max(version), 0) FROM schema_version",
				    -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*v = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

static int migrate(struct sq *q)
{
	char *msg = NULL;
	int rc = sqlite3_exec(q->db,
			      "CREATE TABLE IF NOT EXISTS schema_version ("
			      " version INTEGER PRIMARY KEY, applied TEXT NOT NULL)",
			      NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		sqlite3_free(msg);
		return db_err(q, rc, "create schema_version");
	}
	/* An up-to-date database (every open but the first) needs no write
	 * lock: a busy writer in another process must not keep a reader such
	 * as `tanuki tasks export` from opening it (SQLite's locks are not
	 * fair, so waiting for the write lock beside a tight writer can
	 * starve past any busy timeout). */
	int v0 = 0;
	if ((rc = read_version(q, &v0)) != SQLITE_OK)
		return db_err(q, rc, "read schema version");
	if (v0 == N_MIGRATIONS) {
		q->version = v0;
		return 0;
	}
	for (;;) {
		if ((rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK)
			return db_err(q, rc, "begin migration");
		int v = 0;
		rc = read_version(q, &v);
		if (rc != SQLITE_OK) {
			int e = db_err(q, rc, "read schema version");
			sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
			return e;
		}
		if (v > N_MIGRATIONS) {
			sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
			return tk_errf(TK_EUNSUPPORTED,
				       "store: %s: database schema version %d is newer than this "
				       "build supports (%d); use a newer tanuki", q->path, v,
				       N_MIGRATIONS);
		}
		if (v == N_MIGRATIONS) {
			sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL);
			q->version = v;
			return 0;
		}
		char ins[128], now[TK_RFC3339_LEN];
		tk_time_rfc3339(tk_time_real_ns(), now);
		snprintf(ins, sizeof ins,
			 "INSERT INTO schema_version (version, applied) VALUES (%d, '%s')", v + 1,
			 now);
		rc = sqlite3_exec(q->db, migrations[v], NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(q->db, ins, NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(q->db, "COMMIT", NULL, NULL, &msg);
		if (rc != SQLITE_OK) {
			int e = tk_errf(rc == SQLITE_BUSY ? TK_EBUSY : TK_EIO,
					"store: %s: migration %d: %s", q->path, v + 1,
					msg ? msg : sqlite3_errmsg(q->db));
			sqlite3_free(msg);
			sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
			return e;
		}
		tk_logf(TK_LOG_INFO, "store", TK_FIELDS(TK_LF_I("schema_version", v + 1)),
			"applied database migration");
	}
}

/* Runs a PRAGMA that answers one row and checks its text answer when want
 * is non-NULL. */
static int pragma(struct sq *q, const char *sql, const char *want)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(q, rc, sql);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		int e = db_err(q, rc, sql);
		sqlite3_finalize(st);
		return e;
	}
	if (want) {
		const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
		if (!t || strcmp((const char *)t, want)) {
			int e = tk_errf(TK_EIO, "store: %s: %s answered '%s', expected '%s'",
					q->path, sql, t ? (const char *)t : "", want);
			sqlite3_finalize(st);
			return e;
		}
	}
	sqlite3_finalize(st);
	return 0;
}

/* Caps the database at max_bytes through max_page_count (per connection;
 * set again at every open). A database already larger keeps its size and
 * cannot grow. */
static int set_size_cap(struct sq *q, uint64_t max_bytes)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db, "PRAGMA page_size", -1, &st, NULL);
	int64_t page = 0;
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		page = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (page <= 0)
		return tk_errf(TK_EIO, "store: %s: cannot read page_size", q->path);
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA max_page_count = %llu",
		 (unsigned long long)(max_bytes / (uint64_t)page ? max_bytes / (uint64_t)page : 1));
	return pragma(q, sql, NULL);
}

/* Switches the database to WAL and applies the migrations, retrying while
 * another connection is busy with the same (both steps are idempotent).
 * SQLite answers SQLITE_BUSY at once, without calling the busy handler,
 * when two connections that each hold a shared lock want the exclusive
 * one (changing the journal mode of a fresh file, creating its first
 * table), so several processes or threads opening a new database together
 * would otherwise fail at random; the busy timeout bounds the retries. */
static int setup_schema(struct sq *q, bool memory, int busy_timeout_ms)
{
	int64_t deadline = tk_time_mono_ns() + (int64_t)busy_timeout_ms * 1000000;
	long pause_us = 200;
	for (;;) {
		int rc = pragma(q, "PRAGMA journal_mode = WAL", memory ? "memory" : "wal");
		if (!rc)
			rc = migrate(q);
		if (rc != TK_EBUSY || tk_time_mono_ns() >= deadline)
			return rc;
		struct timespec ts = { 0, pause_us * 1000 };
		nanosleep(&ts, NULL);
		if (pause_us < 20000)
			pause_us *= 2;
	}
}

static void sq_close(struct tk_store *s)
{
	struct sq *q = SQ(s);
	if (!q)
		return;
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(q->st[i]);
	if (q->db && sqlite3_close(q->db) != SQLITE_OK)
		tk_log(TK_LOG_ERROR, "store", "sqlite3_close failed: %s", sqlite3_errmsg(q->db));
	pthread_mutex_destroy(&q->lock);
	free(q->path);
	free(q);
	s->impl = NULL;
}

static int sq_open(struct tk_store *s, const char *target)
{
	bool memory = !strcmp(target, ":memory:");
	int rc;
	struct sq *q = calloc(1, sizeof *q);
	if (!q)
		return tk_errf(TK_ENOMEM, "store: out of memory");
	if (!(q->path = strdup(target))) {
		free(q);
		return tk_errf(TK_ENOMEM, "store: out of memory");
	}
	pthread_mutex_init(&q->lock, NULL);
	s->impl = q;

	struct stat sb;
	bool existed = memory || stat(target, &sb) == 0;
	/* NOMUTEX: our own mutex serializes use of the connection. */
	rc = sqlite3_open_v2(target, &q->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		rc = db_err(q, rc, "open");
		goto fail;
	}
	/* A new database file is made owner-only (it will hold key hashes and
	 * task data) before anything is written to it; SQLite gives the -wal
	 * and -shm files the database file's mode. This goes by path on
	 * purpose: opening and closing our own descriptor on the file would
	 * drop the POSIX locks other connections of this process hold on it. */
	if (!existed && chmod(target, 0600) && errno != ENOENT) {
		rc = tk_errf_sys(TK_EIO, errno, "store: chmod 0600 %s", target);
		goto fail;
	}
	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_busy_timeout(q->db, s->opts.busy_timeout_ms);
	if ((rc = setup_schema(q, memory, s->opts.busy_timeout_ms)) ||
	    (rc = pragma(q, "PRAGMA foreign_keys = ON", NULL)) ||
	    (rc = pragma(q, s->opts.sync_normal ? "PRAGMA synchronous = NORMAL"
						: "PRAGMA synchronous = FULL", NULL)))
		goto fail;
	if (s->opts.max_db_bytes && (rc = set_size_cap(q, s->opts.max_db_bytes)))
		goto fail;
	for (int i = 0; i < ST__COUNT; i++) {
		int e = sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					   &q->st[i], NULL);
		if (e != SQLITE_OK) {
			rc = db_err(q, e, "prepare");
			goto fail;
		}
	}
	return 0;

fail:
	sq_close(s);
	return rc;
}

static int sq_ping(struct tk_store *s)
{
	struct sq *q = SQ(s);
	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st = stmt(q, ST_PING);
	int rc = sqlite3_step(st);
	rc = rc == SQLITE_ROW ? 0 : db_err(q, rc, "ping");
	sqlite3_reset(st);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_schema_version(struct tk_store *s)
{
	return SQ(s)->version;
}

/* -------------------------------------------------------------- tasks */

static int read_task(sqlite3_stmt *st, struct tk_task *t)
{
	int rc = 0;
	memset(t, 0, sizeof *t);
	col_fixed(st, 0, t->id, sizeof t->id);
	col_fixed(st, 1, t->owner_key_id, sizeof t->owner_key_id);
	const char *status = (const char *)sqlite3_column_text(st, 2);
	if (!status || tk_task_status_parse(status, &t->status))
		return tk_errf(TK_EFORMAT, "store: task %s: bad status in database", t->id);
	if (!(t->request_json = col_dup(st, 3, &rc)) && !rc)
		rc = tk_errf(TK_EFORMAT, "store: task %s: request missing", t->id);
	if (!rc)
		t->result_json = col_dup(st, 4, &rc);
	if (!rc)
		t->error = col_dup(st, 5, &rc);
	if (rc) {
		tk_task_clear(t);
		return rc;
	}
	col_fixed(st, 6, t->created, sizeof t->created);
	col_fixed(st, 7, t->started, sizeof t->started);
	col_fixed(st, 8, t->finished, sizeof t->finished);
	col_fixed(st, 9, t->deadline, sizeof t->deadline);
	t->timeout_ms = sqlite3_column_int64(st, 10);
	t->attempts = sqlite3_column_int(st, 11);
	t->last_event_seq = sqlite3_column_int64(st, 12);
	return 0;
}

/* Reads one task; lock held. */
static int task_get_locked(struct sq *q, const char *id, struct tk_task *out)
{
	sqlite3_stmt *st = stmt(q, ST_TASK_GET);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = read_task(st, out);
	else if (rc == SQLITE_DONE)
		rc = tk_errf(TK_ENOENT, "store: task %s: not found", id);
	else
		rc = db_err(q, rc, "read task");
	sqlite3_reset(st);
	return rc;
}

/* Appends an event inside an open transaction; lock held. */
static int append_event_locked(struct sq *q, const char *task_id, const char *type,
			       const char *data, const char *now, int64_t *seq_out)
{
	sqlite3_stmt *st = stmt(q, ST_TASK_SEQ_BUMP);
	sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? tk_errf(TK_ENOENT, "store: task %s: not found", task_id)
				       : db_err(q, rc, "bump event seq");
		sqlite3_reset(st);
		return rc;
	}
	int64_t seq = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	st = stmt(q, ST_EVENT_INSERT);
	sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, data, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_err(q, rc, "insert event");
	if (seq_out)
		*seq_out = seq;
	return 0;
}

static const char *kind_name(enum tk_file_kind k)
{
	return k == TK_FILE_OUTPUT ? "output" : "input";
}

/* Inserts or replaces one file inside an open transaction; lock held. */
static int file_put_locked(struct sq *q, const char *task_id, enum tk_file_kind kind,
			   const struct tk_file_in *f, const char *now)
{
	sqlite3_stmt *st = stmt(q, ST_FILE_PUT);
	sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kind_name(kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, f->path, -1, SQLITE_STATIC);
	if (f->size)
		sqlite3_bind_blob64(st, 4, f->content, f->size, SQLITE_STATIC);
	else
		sqlite3_bind_zeroblob(st, 4, 0);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)f->size);
	sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return rc == SQLITE_CONSTRAINT_FOREIGNKEY
			       ? tk_errf(TK_ENOENT, "store: task %s: not found", task_id)
			       : db_err(q, rc, "store file");
	return 0;
}

static int sq_task_create(struct tk_store *s, const char *id, const char *now,
			  const struct tk_task_new *in)
{
	struct sq *q = SQ(s);
	pthread_mutex_lock(&q->lock);
	int rc = tx_begin(q);
	if (rc)
		goto out;
	sqlite3_stmt *st = stmt(q, ST_TASK_INSERT);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bind_text(st, 2, in->owner_key_id);
	sqlite3_bind_text(st, 3, in->request_json, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, in->timeout_ms);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		rc = rc == SQLITE_CONSTRAINT_FOREIGNKEY
			     ? tk_errf(TK_ENOENT, "store: task: owner key %s: not found",
				       in->owner_key_id)
			     : db_err(q, rc, "insert task");
		goto out_rollback;
	}
	if ((rc = append_event_locked(q, id, "status", "{\"status\":\"queued\"}", now, NULL)))
		goto out_rollback;
	for (size_t i = 0; i < in->n_files; i++)
		if ((rc = file_put_locked(q, id, TK_FILE_INPUT, &in->files[i], now)))
			goto out_rollback;
	rc = tx_commit(q);
	goto out;
out_rollback:
	tx_rollback(q);
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_task_get(struct tk_store *s, const char *id, struct tk_task *out)
{
	struct sq *q = SQ(s);
	pthread_mutex_lock(&q->lock);
	int rc = task_get_locked(q, id, out);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_task_list(struct tk_store *s, const struct tk_task_filter *f, size_t limit,
			struct tk_task **out, size_t *n_out)
{
	struct sq *q = SQ(s);
	char sql[512];
	snprintf(sql, sizeof sql, "SELECT " TASK_COLS " FROM tasks WHERE 1%s%s%s "
		 "ORDER BY id DESC LIMIT ?4",
		 f->owner_key_id ? " AND owner_key_id = ?1" : "",
		 f->by_status ? " AND status = ?2" : "",
		 f->cursor && *f->cursor ? " AND id < ?3" : "");
	struct tk_task *arr = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&q->lock);
	int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = db_err(q, rc, "prepare task list");
		goto out;
	}
	if (f->owner_key_id)
		sqlite3_bind_text(st, 1, f->owner_key_id, -1, SQLITE_STATIC);
	if (f->by_status)
		sqlite3_bind_text(st, 2, tk_task_status_name(f->status), -1, SQLITE_STATIC);
	if (f->cursor && *f->cursor)
		sqlite3_bind_text(st, 3, f->cursor, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = grow((void **)&arr, &cap, n, sizeof *arr)) ||
		    (rc = read_task(st, &arr[n])))
			goto out;
		n++;
	}
	rc = rc == SQLITE_DONE ? 0 : db_err(q, rc, "list tasks");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->lock);
	if (rc) {
		tk_tasks_free(arr, n);
		return rc;
	}
	*out = arr;
	*n_out = n;
	return 0;
}

static int sq_task_count(struct tk_store *s, const char *owner, bool by_status,
			 enum tk_task_status stt, int64_t *n_out)
{
	struct sq *q = SQ(s);
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM tasks WHERE 1%s%s",
		 owner ? " AND owner_key_id = ?1" : "", by_status ? " AND status = ?2" : "");
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&q->lock);
	int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = db_err(q, rc, "prepare task count");
		goto out;
	}
	if (owner)
		sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	if (by_status)
		sqlite3_bind_text(st, 2, tk_task_status_name(stt), -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*n_out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = db_err(q, rc, "count tasks");
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_task_claim(struct tk_store *s, const char *id, const char *now, int64_t now_ms,
			 struct tk_task *out)
{
	struct sq *q = SQ(s);
	char task_id[TK_ID_LEN];
	pthread_mutex_lock(&q->lock);
	int rc = tx_begin(q);
	if (rc)
		goto out;
	/* Under the write lock: nobody else can claim between this read and
	 * the update below. */
	sqlite3_stmt *st;
	if (id) {
		st = stmt(q, ST_TASK_STATE);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	} else {
		st = stmt(q, ST_TASK_OLDEST_QUEUED);
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = rc != SQLITE_DONE ? db_err(q, rc, "find task to claim")
		     : id ? tk_errf(TK_ENOENT, "store: task %s: not found", id)
			  : tk_errf(TK_ENOENT, "store: no queued task");
		sqlite3_reset(st);
		goto out_rollback;
	}
	int col = id ? 0 : 1;
	if (id)
		snprintf(task_id, sizeof task_id, "%s", id);
	else
		col_fixed(st, 0, task_id, sizeof task_id);
	const char *status = (const char *)sqlite3_column_text(st, col);
	bool queued = status && !strcmp(status, "queued");
	char cur[16];
	snprintf(cur, sizeof cur, "%s", status ? status : "?");
	int64_t timeout_ms = sqlite3_column_int64(st, col + 1);
	sqlite3_reset(st);
	if (!queued) {
		rc = tk_errf(TK_ESTATE, "store: task %s: cannot claim a task that is %s", task_id,
			     cur);
		goto out_rollback;
	}
	char deadline[TK_RFC3339_LEN] = "";
	if (timeout_ms > 0)
		tk_time_rfc3339((now_ms + timeout_ms) * 1000000, deadline);
	st = stmt(q, ST_TASK_SET_RUNNING);
	sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
	bind_text(st, 3, deadline);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = db_err(q, rc, "claim task");
		sqlite3_reset(st);
		goto out_rollback;
	}
	int attempts = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	char ev[64];
	snprintf(ev, sizeof ev, "{\"status\":\"running\",\"attempt\":%d}", attempts);
	if ((rc = append_event_locked(q, task_id, "status", ev, now, NULL)))
		goto out_rollback;
	if ((rc = task_get_locked(q, task_id, out)))
		goto out_rollback;
	if ((rc = tx_commit(q))) {
		tk_task_clear(out);
		goto out;
	}
	goto out;
out_rollback:
	tx_rollback(q);
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_task_purge(struct tk_store *s, const char *before, size_t limit, int64_t *n_out)
{
	struct sq *q = SQ(s);
	pthread_mutex_lock(&q->lock);
	int rc = tx_begin(q);
	if (rc)
		goto out;
	sqlite3_stmt *st = stmt(q, ST_TASK_PURGE);
	sqlite3_bind_text(st, 1, before, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		rc = db_err(q, rc, "purge tasks");
		tx_rollback(q);
		goto out;
	}
	int64_t n = sqlite3_changes64(q->db);
	if ((rc = tx_commit(q)) == 0)
		*n_out = n;
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* Reads a task's status inside a transaction; lock held. */
static int status_locked(struct sq *q, const char *id, enum tk_task_status *out)
{
	sqlite3_stmt *st = stmt(q, ST_TASK_STATE);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		rc = t && !tk_task_status_parse(t, out)
			     ? 0
			     : tk_errf(TK_EFORMAT, "store: task %s: bad status in database", id);
	} else if (rc == SQLITE_DONE) {
		rc = tk_errf(TK_ENOENT, "store: task %s: not found", id);
	} else {
		rc = db_err(q, rc, "read task status");
	}
	sqlite3_reset(st);
	return rc;
}

static int sq_task_transition(struct tk_store *s, const char *id, unsigned from_mask,
			      enum tk_task_status to, const char *result_json, const char *error,
			      const char *finished, bool clear_start, const char *now,
			      const char *event_json)
{
	struct sq *q = SQ(s);
	enum tk_task_status cur;
	pthread_mutex_lock(&q->lock);
	int rc = tx_begin(q);
	if (rc)
		goto out;
	if ((rc = status_locked(q, id, &cur)))
		goto out_rollback;
	if (!(from_mask & STORE_ST_BIT(cur))) {
		rc = tk_errf(TK_ESTATE, "store: task %s: cannot move from %s to %s", id,
			     tk_task_status_name(cur), tk_task_status_name(to));
		goto out_rollback;
	}
	sqlite3_stmt *st = stmt(q, ST_TASK_TRANSITION);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, tk_task_status_name(to), -1, SQLITE_STATIC);
	if (result_json)
		sqlite3_bind_text(st, 3, result_json, -1, SQLITE_STATIC);
	if (error)
		sqlite3_bind_text(st, 4, error, -1, SQLITE_STATIC);
	bind_text(st, 5, finished);
	sqlite3_bind_int(st, 6, clear_start);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		rc = db_err(q, rc, "update task status");
		goto out_rollback;
	}
	if ((rc = append_event_locked(q, id, "status", event_json, now, NULL)))
		goto out_rollback;
	rc = tx_commit(q);
	goto out;
out_rollback:
	tx_rollback(q);
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* ------------------------------------------------------------- events */

static int sq_event_append(struct tk_store *s, const char *task_id, const char *type,
			   const char *data_json, const char *now, int64_t *seq_out)
{
	struct sq *q = SQ(s);
	enum tk_task_status cur;
	pthread_mutex_lock(&q->lock);
	int rc = tx_begin(q);
	if (rc)
		goto out;
	if ((rc = status_locked(q, task_id, &cur)))
		goto out_rollback;
	if (tk_task_status_terminal(cur)) {
		rc = tk_errf(TK_ESTATE, "store: task %s: is %s, takes no more events", task_id,
			     tk_task_status_name(cur));
		goto out_rollback;
	}
	if ((rc = append_event_locked(q, task_id, type, data_json, now, seq_out)))
		goto out_rollback;
	rc = tx_commit(q);
	goto out;
out_rollback:
	tx_rollback(q);
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_events_since(struct tk_store *s, const char *task_id, int64_t after_seq,
			   size_t limit, struct tk_task_event **out, size_t *n_out)
{
	struct sq *q = SQ(s);
	struct tk_task_event *arr = NULL;
	size_t n = 0, cap = 0;
	enum tk_task_status cur;
	pthread_mutex_lock(&q->lock);
	/* One read transaction so the existence check and the rows agree. */
	int rc = sqlite3_exec(q->db, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = db_err(q, rc, "begin read");
		goto out;
	}
	if ((rc = status_locked(q, task_id, &cur)))
		goto out_end;
	sqlite3_stmt *st = stmt(q, ST_EVENTS_SINCE);
	sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, after_seq);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = grow((void **)&arr, &cap, n, sizeof *arr)))
			break;
		struct tk_task_event *e = &arr[n];
		e->seq = sqlite3_column_int64(st, 0);
		col_fixed(st, 1, e->type, sizeof e->type);
		e->data_json = col_dup(st, 2, &rc);
		if (rc)
			break;
		col_fixed(st, 3, e->ts, sizeof e->ts);
		n++;
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = db_err(q, rc, "read events");
	sqlite3_reset(st);
out_end:
	tx_rollback(q);
out:
	pthread_mutex_unlock(&q->lock);
	if (rc) {
		tk_task_events_free(arr, n);
		return rc;
	}
	*out = arr;
	*n_out = n;
	return 0;
}

/* -------------------------------------------------------------- files */

static int sq_file_put(struct tk_store *s, const char *task_id, enum tk_file_kind kind,
		       const struct tk_file_in *file, const char *now)
{
	struct sq *q = SQ(s);
	enum tk_task_status cur;
	pthread_mutex_lock(&q->lock);
	int rc = tx_begin(q);
	if (rc)
		goto out;
	if ((rc = status_locked(q, task_id, &cur)))
		goto out_rollback;
	sqlite3_stmt *st = stmt(q, ST_FILE_STATS);
	sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kind_name(kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, file->path, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = db_err(q, rc, "file stats");
		sqlite3_reset(st);
		goto out_rollback;
	}
	int64_t others = sqlite3_column_int64(st, 0);
	int64_t other_bytes = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	if ((uint64_t)others + 1 > s->opts.files_max_count) {
		rc = tk_errf(TK_ELIMIT, "store: task %s: more than %zu %s files", task_id,
			     s->opts.files_max_count, kind_name(kind));
		goto out_rollback;
	}
	if ((uint64_t)other_bytes + file->size > s->opts.files_max_total_bytes) {
		rc = tk_errf(TK_ELIMIT, "store: task %s: %s files would total %llu bytes, over "
			     "the cap of %zu", task_id, kind_name(kind),
			     (unsigned long long)other_bytes + file->size,
			     s->opts.files_max_total_bytes);
		goto out_rollback;
	}
	if ((rc = file_put_locked(q, task_id, kind, file, now)))
		goto out_rollback;
	rc = tx_commit(q);
	goto out;
out_rollback:
	tx_rollback(q);
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int read_file_row(sqlite3_stmt *st, enum tk_file_kind kind, struct tk_task_file *f)
{
	int rc = 0;
	f->kind = kind;
	if (!(f->path = col_dup(st, 0, &rc)))
		return rc ? rc : tk_errf(TK_EFORMAT, "store: file without path");
	const void *blob = sqlite3_column_blob(st, 1);
	size_t n = (size_t)sqlite3_column_bytes(st, 1);
	if (!(f->content = malloc(n + 1)))
		return tk_errf(TK_ENOMEM, "store: out of memory (%zu bytes)", n);
	if (n)
		memcpy(f->content, blob, n);
	((char *)f->content)[n] = '\0';
	f->size = n;
	return 0;
}

static int sq_file_list(struct tk_store *s, const char *task_id, enum tk_file_kind kind,
			struct tk_task_file **out, size_t *n_out)
{
	struct sq *q = SQ(s);
	struct tk_task_file *arr = NULL;
	size_t n = 0, cap = 0;
	enum tk_task_status cur;
	pthread_mutex_lock(&q->lock);
	int rc = sqlite3_exec(q->db, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = db_err(q, rc, "begin read");
		goto out;
	}
	if ((rc = status_locked(q, task_id, &cur)))
		goto out_end;
	sqlite3_stmt *st = stmt(q, ST_FILE_LIST);
	sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kind_name(kind), -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = grow((void **)&arr, &cap, n, sizeof *arr)))
			break;
		rc = read_file_row(st, kind, &arr[n]);
		n++; /* counted even when half-read, so the free below sees it */
		if (rc)
			break;
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = db_err(q, rc, "list files");
	sqlite3_reset(st);
out_end:
	tx_rollback(q);
out:
	pthread_mutex_unlock(&q->lock);
	if (rc) {
		tk_task_files_free(arr, n);
		return rc;
	}
	*out = arr;
	*n_out = n;
	return 0;
}

static int sq_file_get(struct tk_store *s, const char *task_id, enum tk_file_kind kind,
		       const char *path, struct tk_task_file *out)
{
	struct sq *q = SQ(s);
	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st = stmt(q, ST_FILE_GET);
	sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, kind_name(kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		rc = read_file_row(st, kind, out);
		if (rc)
			tk_task_file_clear(out);
	} else if (rc == SQLITE_DONE) {
		rc = tk_errf(TK_ENOENT, "store: task %s: no %s file '%.80s'", task_id,
			     kind_name(kind), path);
	} else {
		rc = db_err(q, rc, "read file");
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* ----------------------------------------------------------- API keys */

static int read_key_row(sqlite3_stmt *st, struct store_key_row *r)
{
	memset(r, 0, sizeof *r);
	col_fixed(st, 0, r->rec.id, sizeof r->rec.id);
	col_fixed(st, 1, r->rec.name, sizeof r->rec.name);
	const char *role = (const char *)sqlite3_column_text(st, 2);
	if (!role || tk_key_role_parse(role, &r->rec.role))
		return tk_errf(TK_EFORMAT, "store: key %s: bad role in database", r->rec.id);
	col_fixed(st, 3, r->rec.created, sizeof r->rec.created);
	col_fixed(st, 4, r->rec.last_used, sizeof r->rec.last_used);
	col_fixed(st, 5, r->rec.revoked, sizeof r->rec.revoked);
	if (sqlite3_column_bytes(st, 6) != TK_KEY_SALT_BYTES ||
	    sqlite3_column_bytes(st, 7) != TK_KEY_HASH_BYTES)
		return tk_errf(TK_EFORMAT, "store: key %s: bad salt or hash size", r->rec.id);
	memcpy(r->salt, sqlite3_column_blob(st, 6), TK_KEY_SALT_BYTES);
	memcpy(r->hash, sqlite3_column_blob(st, 7), TK_KEY_HASH_BYTES);
	return 0;
}

static int sq_key_insert(struct tk_store *s, const struct store_key_row *row)
{
	struct sq *q = SQ(s);
	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st = stmt(q, ST_KEY_INSERT);
	sqlite3_bind_text(st, 1, row->rec.id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, row->rec.name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, tk_key_role_name(row->rec.role), -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, row->salt, TK_KEY_SALT_BYTES, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, row->hash, TK_KEY_HASH_BYTES, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, row->rec.created, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		rc = tk_errf(TK_EEXIST, "store: key %s: already stored", row->rec.id);
	else
		rc = db_err(q, rc, "insert key");
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_key_lookup(struct tk_store *s, const char *id, struct store_key_row *out)
{
	struct sq *q = SQ(s);
	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st = stmt(q, ST_KEY_GET);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = read_key_row(st, out);
	else if (rc == SQLITE_DONE)
		rc = tk_errf(TK_ENOENT, "store: key %s: not found", id);
	else
		rc = db_err(q, rc, "read key");
	sqlite3_reset(st);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* UPDATE of one key by id: TK_ENOENT when no row changed. */
static int key_update(struct tk_store *s, int which, const char *id, const char *now,
		      const char *what)
{
	struct sq *q = SQ(s);
	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st = stmt(q, which);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		rc = db_err(q, rc, what);
	else if (sqlite3_changes(q->db) == 0)
		rc = tk_errf(TK_ENOENT, "store: key %s: not found", id);
	else
		rc = 0;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_key_touch(struct tk_store *s, const char *id, const char *now)
{
	return key_update(s, ST_KEY_TOUCH, id, now, "touch key");
}

static int sq_key_revoke(struct tk_store *s, const char *id, const char *now)
{
	return key_update(s, ST_KEY_REVOKE, id, now, "revoke key");
}

static int sq_key_list(struct tk_store *s, struct tk_api_key **out, size_t *n_out)
{
	struct sq *q = SQ(s);
	struct tk_api_key *arr = NULL;
	size_t n = 0, cap = 0;
	struct store_key_row row;
	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st = stmt(q, ST_KEY_LIST);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = grow((void **)&arr, &cap, n, sizeof *arr)) ||
		    (rc = read_key_row(st, &row)))
			break;
		arr[n++] = row.rec;
	}
	memset(&row, 0, sizeof row);
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = db_err(q, rc, "list keys");
	sqlite3_reset(st);
	pthread_mutex_unlock(&q->lock);
	if (rc) {
		free(arr);
		return rc;
	}
	*out = arr;
	*n_out = n;
	return 0;
}

static int sq_key_count(struct tk_store *s, bool active_admins_only, int64_t *n_out)
{
	struct sq *q = SQ(s);
	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st = stmt(q, active_admins_only ? ST_KEY_COUNT_ADMIN : ST_KEY_COUNT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*n_out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = db_err(q, rc, "count keys");
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* ----------------------------------------------------------- registry */

static int read_artifact(sqlite3_stmt *st, struct tk_artifact *a)
{
	int rc = 0;
	memset(a, 0, sizeof *a);
	col_fixed(st, 0, a->kind, sizeof a->kind);
	col_fixed(st, 1, a->name, sizeof a->name);
	if (!(a->path = col_dup(st, 2, &rc)) && !rc)
		rc = tk_errf(TK_EFORMAT, "store: artifact %s: no path", a->name);
	col_fixed(st, 3, a->sha256, sizeof a->sha256);
	a->size_bytes = sqlite3_column_int64(st, 4);
	if (!rc && !(a->version = col_dup(st, 5, &rc)) && !rc)
		rc = tk_errf(TK_EFORMAT, "store: artifact %s: no version", a->name);
	col_fixed(st, 6, a->created, sizeof a->created);
	if (rc)
		tk_artifact_clear(a);
	return rc;
}

static int sq_artifact_insert(struct tk_store *s, const struct tk_artifact *a, const char *now)
{
	struct sq *q = SQ(s);
	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st = stmt(q, ST_ART_INSERT);
	sqlite3_bind_text(st, 1, a->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a->sha256, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, a->size_bytes);
	sqlite3_bind_text(st, 6, a->version ? a->version : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, now, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		rc = tk_errf(TK_EEXIST, "store: %s '%s' already registered", a->kind, a->name);
	else
		rc = db_err(q, rc, "register artifact");
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_artifact_get(struct tk_store *s, const char *kind, const char *name,
			   struct tk_artifact *out)
{
	struct sq *q = SQ(s);
	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st = stmt(q, ST_ART_GET);
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = read_artifact(st, out);
	else if (rc == SQLITE_DONE)
		rc = tk_errf(TK_ENOENT, "store: %s '%s' not registered", kind, name);
	else
		rc = db_err(q, rc, "read artifact");
	sqlite3_reset(st);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_artifact_list(struct tk_store *s, const char *kind, struct tk_artifact **out,
			    size_t *n_out)
{
	struct sq *q = SQ(s);
	struct tk_artifact *arr = NULL;
	size_t n = 0, cap = 0;
	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st = stmt(q, kind ? ST_ART_LIST_KIND : ST_ART_LIST);
	if (kind)
		sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = grow((void **)&arr, &cap, n, sizeof *arr)) ||
		    (rc = read_artifact(st, &arr[n])))
			break;
		n++;
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = db_err(q, rc, "list artifacts");
	sqlite3_reset(st);
	pthread_mutex_unlock(&q->lock);
	if (rc) {
		tk_artifacts_free(arr, n);
		return rc;
	}
	*out = arr;
	*n_out = n;
	return 0;
}

static int sq_artifact_delete(struct tk_store *s, const char *kind, const char *name)
{
	struct sq *q = SQ(s);
	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st = stmt(q, ST_ART_DELETE);
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		rc = db_err(q, rc, "remove artifact");
	else if (sqlite3_changes(q->db) == 0)
		rc = tk_errf(TK_ENOENT, "store: %s '%s' not registered", kind, name);
	else
		rc = 0;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

const struct tk_store_backend store_sqlite_backend = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.ping = sq_ping,
	.schema_version = sq_schema_version,
	.task_create = sq_task_create,
	.task_get = sq_task_get,
	.task_list = sq_task_list,
	.task_count = sq_task_count,
	.task_claim = sq_task_claim,
	.task_transition = sq_task_transition,
	.task_purge = sq_task_purge,
	.event_append = sq_event_append,
	.events_since = sq_events_since,
	.file_put = sq_file_put,
	.file_list = sq_file_list,
	.file_get = sq_file_get,
	.key_insert = sq_key_insert,
	.key_lookup = sq_key_lookup,
	.key_touch = sq_key_touch,
	.key_revoke = sq_key_revoke,
	.key_list = sq_key_list,
	.key_count = sq_key_count,
	.artifact_insert = sq_artifact_insert,
	.artifact_get = sq_artifact_get,
	.artifact_list = sq_artifact_list,
	.artifact_delete = sq_artifact_delete,
};
