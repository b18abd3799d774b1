/*
 * store.h — Tanuki's persistent state: tasks, task events, task files, API
 * keys and the model/adapter registry.
 *
 * This header is the manual for callers (the server, the CLI, workers). The
 * storage engine sits behind a table of function pointers (store_backend.h);
 * today the only backend is SQLite (store_sqlite.c), PostgreSQL can join
 * later behind the same table without changing a caller.
 *
 * Threads: a struct tk_store is safe to share between any number of threads.
 * The SQLite backend keeps one connection per handle guarded by a mutex, so
 * calls on one handle are serialized; separate handles (threads or processes)
 * on the same database file coordinate through SQLite's own locks and the
 * busy timeout. Open one handle per process and share it. A handle must
 * not be used in a child after fork() (SQLite connections do not survive
 * it); the child opens its own.
 *
 * Invariants the store guarantees (any backend):
 *   - every state change (create, claim, set_status, requeue, event append,
 *     file put, purge, key create/revoke/touch, artifact register/remove) is one
 *     transaction: after a crash it happened entirely or not at all;
 *   - task status only moves along
 *         queued -> running -> completed | failed | timed_out | cancelled
 *         queued -> cancelled
 *     plus running -> queued through tk_store_task_requeue() and startup
 *     recovery; any other change is refused with TK_ESTATE;
 *   - each task has its own event sequence 1, 2, 3, ... without gaps; every
 *     status change appends a "status" event in the same transaction, and a
 *     task in a terminal status accepts no further events, so the terminal
 *     "status" event is always the last one;
 *   - API key secrets are never stored: only a random salt and
 *     SHA-256(salt || secret). The plaintext key is returned once by
 *     tk_store_key_create() and never again.
 *
 * Errors follow STYLE.md: actions return 0 or a negative TK_E* code with a
 * detail (tk_err_detail()) naming what failed; constructors return NULL.
 * Besides the codes listed per function, any call that touches the
 * database may fail with TK_EBUSY (another writer held the lock past
 * busy_timeout_ms; retry later), TK_EIO (I/O error, disk or max_db_bytes
 * full), TK_EFORMAT (corrupt database) or TK_ENOMEM.
 * Pointer arguments are borrowed for the duration of the call unless the
 * comment says otherwise. Records returned to the caller are owned by the
 * caller and released with the matching *_clear / *_free function.
 */
#ifndef TK_STORE_STORE_H
#define TK_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/id.h"
#include "core/time.h"

struct tk_store;

/* ---------------------------------------------------------------- open */

/* Options for tk_store_open(). Fill with tk_store_options_default() and
 * change what you need; a field left 0 takes its default. */
struct tk_store_options {
	int busy_timeout_ms;           /* wait on another writer; default 5000 */
	bool sync_normal;              /* false (default): synchronous=FULL, a
	                                  committed change survives power loss;
	                                  true: NORMAL, survives process crash only */
	size_t request_max_bytes;      /* task request JSON; default 4 MiB */
	size_t result_max_bytes;       /* task result JSON; default 4 MiB */
	size_t error_max_bytes;        /* task error text; default 16 KiB */
	size_t event_max_bytes;        /* one event's data JSON; default 64 KiB */
	size_t file_max_bytes;         /* one task file's content; default 1 MiB */
	size_t files_max_count;        /* files per task and kind; default 256 */
	size_t files_max_total_bytes;  /* all files of a task and kind; default 8 MiB */
	size_t path_max_bytes;         /* a task file path; default 1024 */
	int max_attempts;              /* claims before recovery stops re-queueing
	                                  a task; default 3 */
	uint64_t max_db_bytes;         /* database size cap; 0 (default) = none.
	                                  A change that would grow past it fails
	                                  with TK_EIO ("database or disk is full")
	                                  and changes nothing, like a full disk */
};

void tk_store_options_default(struct tk_store_options *o);

/* Opens (creating when absent) the store named by url and brings its schema
 * up to date (migrations, each one transaction). url is:
 *   "sqlite:PATH" or a plain PATH   SQLite database file (made 0600);
 *   "sqlite::memory:" or ":memory:" a private in-memory database (tests);
 *   "postgres://..."                TK_EUNSUPPORTED in this build.
 * opts may be NULL for defaults (copied). Returns NULL with the detail set:
 * TK_EUNSUPPORTED for a database written by a newer Tanuki (schema version
 * higher than this build knows) or an unknown scheme, TK_EIO/TK_EFORMAT for
 * an unreadable or corrupt file. */
struct tk_store *tk_store_open(const char *url, const struct tk_store_options *opts);

/* Opens DIR/tanuki.db, creating DIR (0700) when missing. */
struct tk_store *tk_store_open_dir(const char *dir, const struct tk_store_options *opts);

/* Closes the handle; no call on it may be running or follow. NULL ok. */
void tk_store_close(struct tk_store *s);

/* Cheap check that the store answers (for /readyz). 0, or TK_EIO /
 * TK_EBUSY / TK_EFORMAT from the database. */
int tk_store_ping(struct tk_store *s);

/* Schema version of the open database (tests, diagnostics). */
int tk_store_schema_version(struct tk_store *s);

/* Highest schema version this build knows. */
int tk_store_schema_version_max(void);

/* Name of the backend ("sqlite"). */
const char *tk_store_backend_name(const struct tk_store *s);

/* --------------------------------------------------------------- tasks */

enum tk_task_status {
	TK_TASK_QUEUED = 0,
	TK_TASK_RUNNING,
	TK_TASK_COMPLETED,
	TK_TASK_FAILED,
	TK_TASK_TIMED_OUT,
	TK_TASK_CANCELLED,
};
#define TK_TASK_STATUS_COUNT 6

/* "queued", "running", "completed", "failed", "timed_out", "cancelled";
 * "unknown" for a value out of range. */
const char *tk_task_status_name(enum tk_task_status st);
/* 0 or TK_EINVAL. */
int tk_task_status_parse(const char *s, enum tk_task_status *out);
/* completed, failed, timed_out, cancelled. */
bool tk_task_status_terminal(enum tk_task_status st);
/* Whether set_status may move a task from `from` to `to`. */
bool tk_task_transition_valid(enum tk_task_status from, enum tk_task_status to);

#define TK_KEY_ID_LEN 17 /* 16 lowercase hex characters plus NUL */

/* One task as stored. Strings marked "owned" are heap copies released by
 * tk_task_clear(); a timestamp is "" while the moment has not come. */
struct tk_task {
	char id[TK_ID_LEN];               /* UUIDv7, sorts by creation */
	char owner_key_id[TK_KEY_ID_LEN]; /* "" when created without a key */
	enum tk_task_status status;
	char *request_json;               /* owned; the TaskRequest as submitted */
	char *result_json;                /* owned; NULL until a result is stored */
	char *error;                      /* owned; NULL unless failed/timed out/... */
	char created[TK_RFC3339_LEN];     /* RFC 3339 UTC, milliseconds */
	char started[TK_RFC3339_LEN];     /* last claim; "" while never claimed */
	char finished[TK_RFC3339_LEN];    /* "" until terminal */
	char deadline[TK_RFC3339_LEN];    /* started + timeout_ms; "" when none */
	int64_t timeout_ms;               /* per-run limit; 0 = none */
	int attempts;                     /* times claimed (0 while never run) */
	int64_t last_event_seq;           /* seq of the task's newest event */
};

/* Frees the owned strings and zeroes *t. NULL ok. */
void tk_task_clear(struct tk_task *t);
/* Clears n tasks and frees the array (from tk_store_task_list). NULL ok. */
void tk_tasks_free(struct tk_task *tasks, size_t n);

/* Kinds of task files: what the client sent, and what the run produced. */
enum tk_file_kind { TK_FILE_INPUT = 0, TK_FILE_OUTPUT = 1 };

/* A task file as given to the store (all borrowed). path: relative (no
 * leading '/'), no "." or ".." component, no empty component, no
 * backslash, no control bytes, at most path_max_bytes (see
 * tk_store_file_path_valid); content may hold any bytes, NUL included. */
struct tk_file_in {
	const char *path;
	const void *content;
	size_t size;
};

/* A new task. Everything borrowed; only request_json is required. */
struct tk_task_new {
	const char *owner_key_id;       /* NULL or "" = no owner */
	const char *request_json;       /* a JSON object, <= request_max_bytes */
	int64_t timeout_ms;             /* 0 = no deadline; >= 0 */
	const struct tk_file_in *files; /* input files stored with the task */
	size_t n_files;
};

/* Creates a queued task, its input files and its first event ("status",
 * {"status":"queued"}) in one transaction; writes the new id into id_out.
 * TK_EINVAL (bad JSON, bad path, negative timeout), TK_ELIMIT (a cap),
 * TK_EEXIST (two files with the same path), TK_ENOENT (owner key not in
 * the store), TK_EBUSY (write lock not obtained within the busy timeout),
 * TK_EIO (disk full or I/O). */
int tk_store_task_create(struct tk_store *s, const struct tk_task_new *in,
			 char id_out[TK_ID_LEN]);

/* Reads one task into *out (caller clears). TK_ENOENT when absent. */
int tk_store_task_get(struct tk_store *s, const char *id, struct tk_task *out);

#define TK_STORE_LIST_DEFAULT 50
#define TK_STORE_LIST_MAX 1000
#define TK_STORE_CURSOR_LEN TK_ID_LEN

/* Filter and page of tk_store_task_list(). */
struct tk_task_filter {
	const char *owner_key_id;   /* NULL = every owner */
	bool by_status;             /* when true, only tasks in `status` */
	enum tk_task_status status;
	const char *cursor;         /* NULL or "" = first page; else the
	                               next_cursor of the previous page */
	size_t limit;               /* 0 = TK_STORE_LIST_DEFAULT; at most
	                               TK_STORE_LIST_MAX */
};

/* Lists tasks newest first. *out gets a malloc'd array of *n_out tasks
 * (free with tk_tasks_free; NULL when empty). next_cursor gets the cursor
 * of the next page, or "" when this page is the last. Pages are stable
 * under concurrent inserts (the cursor is a task id; newer tasks never
 * appear on later pages). TK_EINVAL for a malformed cursor or limit. */
int tk_store_task_list(struct tk_store *s, const struct tk_task_filter *f,
		       struct tk_task **out, size_t *n_out,
		       char next_cursor[TK_STORE_CURSOR_LEN]);

/* Counts tasks, optionally of one owner (NULL = all) and status
 * (by_status). For queue depth and the bounded queue. */
int tk_store_task_count(struct tk_store *s, const char *owner_key_id,
			bool by_status, enum tk_task_status status, int64_t *n_out);

/* Atomically takes the oldest queued task and makes it running: status
 * running, started = now, attempts + 1, deadline = now + timeout_ms when
 * set, a "status" event {"status":"running","attempt":N}. Two callers
 * (threads or processes) never get the same task. *out gets the task
 * after the change. TK_ENOENT when nothing is queued. */
int tk_store_task_claim_next(struct tk_store *s, struct tk_task *out);

/* Same for one given task; TK_ESTATE when it is not queued, TK_ENOENT when
 * absent. out may be NULL. */
int tk_store_task_claim(struct tk_store *s, const char *id, struct tk_task *out);

/* Moves a task to `to` (see the transitions above), storing result_json
 * (a JSON value or NULL) and error (text or NULL), setting finished when
 * `to` is terminal and appending a "status" event
 * {"status":to[,"error":error]}. Bytes of error that are not valid UTF-8
 * are stored as '?' (runners pass on whatever a tool printed; the task must
 * still be able to end). TK_ESTATE for a transition that is not
 * allowed (the detail names both states), TK_ENOENT, TK_EINVAL (bad JSON),
 * TK_ELIMIT (result or error over its cap). */
int tk_store_task_set_status(struct tk_store *s, const char *id,
			     enum tk_task_status to, const char *result_json,
			     const char *error);

/* Puts a running task back in the queue (e.g. a worker gave it up during a
 * drain before doing anything). Clears started and deadline, keeps
 * attempts, appends a "status" event {"status":"queued","reason":reason}.
 * TK_ESTATE unless running. reason may be NULL. */
int tk_store_task_requeue(struct tk_store *s, const char *id, const char *reason);

/* Retention: deletes up to `limit` (1..TK_STORE_LIST_MAX) tasks in a
 * terminal status whose finished time is before finished_before (RFC 3339),
 * oldest first, with their events and files, in one transaction. Call in a
 * loop until *n_out < limit; small batches keep the write lock short.
 * TK_EINVAL for a bad timestamp or limit. */
int tk_store_task_purge(struct tk_store *s, const char *finished_before, size_t limit,
			int64_t *n_out);

/* Result of tk_store_recover_at_startup(). */
struct tk_store_recovery {
	int64_t requeued; /* running tasks put back in the queue */
	int64_t failed;   /* running tasks marked failed */
};

#define TK_STORE_RECOVERY_REASON "interrupted by restart"

/* Run once at server start, before any worker claims: settles every task
 * left `running` by a previous process (which died or was killed).
 *
 * Rule: the runner never started working on a task when no event was
 * appended after its claim (its newest event is the "running" status
 * event of the claim). Such a task is re-queued, if its attempts are below
 * max_attempts; every other running task is marked failed with error
 * TK_STORE_RECOVERY_REASON. Each task is settled in its own transaction.
 * report may be NULL. */
int tk_store_recover_at_startup(struct tk_store *s, struct tk_store_recovery *report);

/* -------------------------------------------------------------- events */

#define TK_EVENT_TYPE_MAX 64 /* bytes of an event type, without NUL */

struct tk_task_event {
	int64_t seq;               /* 1, 2, 3, ... per task */
	char type[TK_EVENT_TYPE_MAX + 1]; /* e.g. "status", "log", "progress" */
	char *data_json;           /* owned; a JSON value */
	char ts[TK_RFC3339_LEN];   /* when it was stored */
};

void tk_task_events_free(struct tk_task_event *ev, size_t n); /* NULL ok */

/* Appends an event to a task that is not terminal. type: 1..64 bytes of
 * [a-z0-9_.-]; data_json: a JSON value <= event_max_bytes (NULL = null).
 * *seq_out (may be NULL) gets its sequence number. TK_ESTATE when the task
 * is terminal, TK_ENOENT, TK_EINVAL, TK_ELIMIT. */
int tk_store_event_append(struct tk_store *s, const char *task_id, const char *type,
			  const char *data_json, int64_t *seq_out);

/* Events of a task with seq > after_seq, oldest first, at most limit
 * (1..TK_STORE_LIST_MAX). *out: malloc'd array (NULL when none). TK_ENOENT
 * when the task does not exist. */
int tk_store_events_since(struct tk_store *s, const char *task_id, int64_t after_seq,
			  size_t limit, struct tk_task_event **out, size_t *n_out);

/* --------------------------------------------------------------- files */

struct tk_task_file {
	enum tk_file_kind kind;
	char *path;     /* owned */
	void *content;  /* owned; NUL-terminated for convenience (not counted) */
	size_t size;    /* bytes of content */
};

void tk_task_files_free(struct tk_task_file *files, size_t n); /* NULL ok */

/* Stores (or replaces) one file of a task. Checks the path rules and the
 * per-file, per-task count and per-task total caps of that kind (TK_EINVAL,
 * TK_ELIMIT). Allowed in any status (outputs are usually stored before the
 * final set_status). TK_ENOENT when the task is absent. */
int tk_store_file_put(struct tk_store *s, const char *task_id, enum tk_file_kind kind,
		      const struct tk_file_in *file);

/* Lists a task's files of one kind, ordered by path, with content.
 * TK_ENOENT when the task does not exist. */
int tk_store_file_list(struct tk_store *s, const char *task_id, enum tk_file_kind kind,
		       struct tk_task_file **out, size_t *n_out);

/* Reads one file into *out (release with tk_task_file_clear). TK_ENOENT
 * when the task or the file is absent. */
int tk_store_file_get(struct tk_store *s, const char *task_id, enum tk_file_kind kind,
		      const char *path, struct tk_task_file *out);
void tk_task_file_clear(struct tk_task_file *f); /* NULL ok */

/* Whether path is acceptable as a task file path (relative, no "..",
 * no empty component, no NUL/control bytes, <= max_bytes). */
bool tk_store_file_path_valid(const char *path, size_t max_bytes);

/* ------------------------------------------------------------ API keys */

enum tk_key_role { TK_ROLE_USER = 0, TK_ROLE_ADMIN = 1 };
const char *tk_key_role_name(enum tk_key_role r);       /* "user" / "admin" */
int tk_key_role_parse(const char *s, enum tk_key_role *out); /* 0 or TK_EINVAL */

/* Key text: "tk_" + 16 hex (key id) + "_" + 64 hex (32-byte secret). */
#define TK_KEY_TEXT_LEN 85 /* 84 characters plus NUL */
#define TK_KEY_NAME_MAX 128

struct tk_api_key {
	char id[TK_KEY_ID_LEN];
	char name[TK_KEY_NAME_MAX + 1];
	enum tk_key_role role;
	char created[TK_RFC3339_LEN];
	char last_used[TK_RFC3339_LEN]; /* "" when never used */
	char revoked[TK_RFC3339_LEN];   /* "" while valid */
};

/* Whether the key is revoked. */
bool tk_api_key_revoked(const struct tk_api_key *k);

/* Whether s has the shape of a key text (does not check the store). */
bool tk_key_text_valid(const char *s);

/* Makes a new key from 32 random bytes: stores id, name (1..128 bytes, no
 * control characters), role, salt and hash; writes the plaintext key into
 * key_out (the only time it exists; callers must not log it) and the record
 * into rec_out when non-NULL. */
int tk_store_key_create(struct tk_store *s, const char *name, enum tk_key_role role,
			char key_out[TK_KEY_TEXT_LEN], struct tk_api_key *rec_out);

/* Stores a key whose text was chosen elsewhere (bootstrap admin key from the
 * environment or config): key_text must pass tk_key_text_valid. TK_EEXIST
 * when its id is already stored (the caller then just verifies it). */
int tk_store_key_import(struct tk_store *s, const char *key_text, const char *name,
			enum tk_key_role role, struct tk_api_key *rec_out);

/* Checks a presented key: looks its id up, hashes the secret with the
 * stored salt and compares in constant time. 0 and *out filled (may be
 * NULL) when valid; TK_EPERM when malformed, unknown, wrong or revoked (the
 * detail says which, never the secret). Does not write; see touch. */
int tk_store_key_verify(struct tk_store *s, const char *key_text, struct tk_api_key *out);

/* Sets last_used = now. TK_ENOENT when absent. */
int tk_store_key_touch(struct tk_store *s, const char *key_id);

/* Marks a key revoked (idempotent: revoking twice is 0, the first time
 * stays). TK_ENOENT when absent. */
int tk_store_key_revoke(struct tk_store *s, const char *key_id);

/* One key without secret material. TK_ENOENT when absent. */
int tk_store_key_get(struct tk_store *s, const char *key_id, struct tk_api_key *out);

/* All keys, oldest first; *out malloc'd (free()), NULL when none. */
int tk_store_key_list(struct tk_store *s, struct tk_api_key **out, size_t *n_out);

/* Number of keys (revoked included), optionally only admin keys that are
 * not revoked (for "bootstrap an admin key on first start"). */
int tk_store_key_count(struct tk_store *s, bool active_admins_only, int64_t *n_out);

/* ------------------------------------------- model / adapter registry */

#define TK_ARTIFACT_NAME_MAX 128
#define TK_ARTIFACT_KIND_MAX 32
#define TK_SHA256_HEX_LEN 65 /* 64 hex plus NUL */

/* A model or adapter file known to the engine. (kind, name) is unique. */
struct tk_artifact {
	char kind[TK_ARTIFACT_KIND_MAX + 1]; /* "model" or "adapter" */
	char name[TK_ARTIFACT_NAME_MAX + 1];
	char *path;                           /* owned */
	char sha256[TK_SHA256_HEX_LEN];       /* lowercase hex */
	int64_t size_bytes;
	char *version;                        /* owned; "" allowed */
	char created[TK_RFC3339_LEN];
};

void tk_artifact_clear(struct tk_artifact *a);               /* NULL ok */
void tk_artifacts_free(struct tk_artifact *a, size_t n);     /* NULL ok */

/* Registers a row (created is set by the store; a->created is ignored).
 * kind "model" or "adapter"; name 1..128 bytes of [A-Za-z0-9_.:-]; path
 * non-empty; sha256 64 hex digits; size_bytes >= 0. TK_EEXIST when
 * (kind, name) is taken, TK_EINVAL on a bad field. */
int tk_store_artifact_register(struct tk_store *s, const struct tk_artifact *a);

/* TK_ENOENT when absent. */
int tk_store_artifact_get(struct tk_store *s, const char *kind, const char *name,
			  struct tk_artifact *out);

/* Rows of one kind (NULL = all), ordered by kind then name. */
int tk_store_artifact_list(struct tk_store *s, const char *kind,
			   struct tk_artifact **out, size_t *n_out);

/* TK_ENOENT when absent. */
int tk_store_artifact_remove(struct tk_store *s, const char *kind, const char *name);

#endif
