/*
 * store_backend.h — the table a storage backend fills (private to
 * src/store/; callers use store.h).
 *
 * Split of work: store.c validates every argument (ids, JSON, paths, caps,
 * names), makes ids, timestamps, salts and hashes, and enforces the
 * transition table; a backend only persists and reads already-checked data.
 * A backend must make each operation below one transaction and must be
 * safe to call from many threads on one handle (store.c takes no lock).
 *
 * Return values follow store.h: 0 or a negative TK_E* with a detail.
 */
#ifndef TK_STORE_BACKEND_H
#define TK_STORE_BACKEND_H

#include "store/store.h"

/* A key row as the backend stores it: the public record plus the salt and
 * the hash (never the secret). */
#define TK_KEY_SALT_BYTES 16
#define TK_KEY_HASH_BYTES 32
struct store_key_row {
	struct tk_api_key rec;
	uint8_t salt[TK_KEY_SALT_BYTES];
	uint8_t hash[TK_KEY_HASH_BYTES];
};

struct tk_store;

struct tk_store_backend {
	const char *name;

	/* target: what follows the scheme (a path, or ":memory:"). Sets s->impl. */
	int (*open)(struct tk_store *s, const char *target);
	void (*close)(struct tk_store *s);
	int (*ping)(struct tk_store *s);
	int (*schema_version)(struct tk_store *s);

	/* Tasks. now: RFC 3339 timestamp made by store.c. */
	int (*task_create)(struct tk_store *s, const char *id, const char *now,
			   const struct tk_task_new *in);
	int (*task_get)(struct tk_store *s, const char *id, struct tk_task *out);
	int (*task_list)(struct tk_store *s, const struct tk_task_filter *f, size_t limit,
			 struct tk_task **out, size_t *n_out);
	int (*task_count)(struct tk_store *s, const char *owner, bool by_status,
			  enum tk_task_status st, int64_t *n_out);
	/* id NULL = oldest queued. Must be atomic against other claimers. */
	int (*task_claim)(struct tk_store *s, const char *id, const char *now,
			  int64_t now_ms, struct tk_task *out);
	/* Moves id from a status in from_mask (bit per status) to `to`. The
	 * backend re-checks the current status inside its transaction and
	 * answers TK_ESTATE (detail naming both) when it is not in from_mask.
	 * finished: timestamp to store or NULL; clear_start: reset started
	 * and deadline (requeue). event_json: data of the "status" event. */
	int (*task_transition)(struct tk_store *s, const char *id, unsigned from_mask,
			       enum tk_task_status to, const char *result_json,
			       const char *error, const char *finished, bool clear_start,
			       const char *now, const char *event_json);

	/* before: canonical RFC 3339 (as made by tk_time_rfc3339). */
	int (*task_purge)(struct tk_store *s, const char *before, size_t limit, int64_t *n_out);

	int (*event_append)(struct tk_store *s, const char *task_id, const char *type,
			    const char *data_json, const char *now, int64_t *seq_out);
	int (*events_since)(struct tk_store *s, const char *task_id, int64_t after_seq,
			    size_t limit, struct tk_task_event **out, size_t *n_out);

	int (*file_put)(struct tk_store *s, const char *task_id, enum tk_file_kind kind,
			const struct tk_file_in *file, const char *now);
	int (*file_list)(struct tk_store *s, const char *task_id, enum tk_file_kind kind,
			 struct tk_task_file **out, size_t *n_out);
	int (*file_get)(struct tk_store *s, const char *task_id, enum tk_file_kind kind,
			const char *path, struct tk_task_file *out);

	int (*key_insert)(struct tk_store *s, const struct store_key_row *row);
	int (*key_lookup)(struct tk_store *s, const char *id, struct store_key_row *out);
	int (*key_touch)(struct tk_store *s, const char *id, const char *now);
	int (*key_revoke)(struct tk_store *s, const char *id, const char *now);
	int (*key_list)(struct tk_store *s, struct tk_api_key **out, size_t *n_out);
	int (*key_count)(struct tk_store *s, bool active_admins_only, int64_t *n_out);

	int (*artifact_insert)(struct tk_store *s, const struct tk_artifact *a, const char *now);
	int (*artifact_get)(struct tk_store *s, const char *kind, const char *name,
			    struct tk_artifact *out);
	int (*artifact_list)(struct tk_store *s, const char *kind, struct tk_artifact **out,
			     size_t *n_out);
	int (*artifact_delete)(struct tk_store *s, const char *kind, const char *name);
};

/* The handle: a backend table, the backend's state and the options. */
struct tk_store {
	const struct tk_store_backend *be; /* static table */
	void *impl;                        /* owned by the backend */
	struct tk_store_options opts;      /* effective (defaults filled) */
};

/* The SQLite backend (store_sqlite.c). */
extern const struct tk_store_backend store_sqlite_backend;

/* Shared helpers for backends (store.c). */

/* strdup that sets TK_ENOMEM detail; NULL in -> NULL out with *rc = 0. */
char *store_strdup(const char *s, int *rc);

/* Bit of a status in a from_mask. */
#define STORE_ST_BIT(st) (1u << (unsigned)(st))

/* SHA-256(salt || secret) (store_key.c). 0 or TK_EINTERNAL. */
int store_key_hash(const uint8_t salt[TK_KEY_SALT_BYTES], const uint8_t *secret,
		   size_t secret_len, uint8_t out[TK_KEY_HASH_BYTES]);

/* Constant-time equality of two n-byte buffers (store_key.c). */
bool store_ct_equal(const void *a, const void *b, size_t n);

/* Splits a key text into its id and 32 secret bytes. 0 or TK_EINVAL. */
int store_key_parse(const char *text, char id_out[TK_KEY_ID_LEN], uint8_t secret_out[32]);

#endif
