/*
 * ratelimit.h — token buckets per (API key id, route class).
 *
 * A bucket holds up to `burst` tokens and refills at `per_minute` tokens per
 * minute; one request takes one token. When the bucket is empty the request
 * is refused and the caller learns how many whole seconds until a token is
 * back (for Retry-After).
 *
 * Memory is bounded: at most max_buckets live buckets. When the table is full
 * the least recently used bucket is dropped (that key starts again with a full
 * bucket, which errs towards letting a request through, never towards
 * refusing a key that did nothing).
 *
 * Thread-safe: one mutex guards the table; a check is O(1) on average.
 * Limits can be changed at run time (SIGHUP) with tk_ratelimit_configure();
 * existing buckets keep their tokens, capped to the new burst.
 */
#ifndef TK_SERVER_RATELIMIT_H
#define TK_SERVER_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Route classes, each with its own limit. */
enum tk_rl_class {
	TK_RL_SUBMIT = 0, /* POST /run_task */
	TK_RL_READ,       /* GET /tasks..., /health, cancel */
	TK_RL_ADMIN,      /* /admin/... */
	TK_RL_AUTHFAIL,   /* failed authentications, keyed by client address */
	TK_RL_N_
};

struct tk_rl_limit {
	double per_minute; /* refill rate; 0 disables the limit for the class */
	double burst;      /* bucket size; >= 1 */
};

struct tk_ratelimit;

/* A limiter with limits[TK_RL_N_] (copied) and a table of at most
 * max_buckets buckets. NULL with an error detail on bad limits or ENOMEM. */
struct tk_ratelimit *tk_ratelimit_new(const struct tk_rl_limit *limits, size_t max_buckets);
void tk_ratelimit_free(struct tk_ratelimit *rl); /* NULL ok */

/* Replaces the limits (copied). 0 or TK_EINVAL (nothing changed). */
int tk_ratelimit_configure(struct tk_ratelimit *rl, const struct tk_rl_limit *limits);

/* Takes one token for key (borrowed, any string) in class cls at monotonic
 * time now_ns. True when allowed; false when limited, with *retry_after_s set
 * to the whole seconds (>= 1) until a token is available. */
bool tk_ratelimit_take(struct tk_ratelimit *rl, const char *key, enum tk_rl_class cls,
		       int64_t now_ns, int *retry_after_s);

/* Whether key has no token left in class cls at now_ns (after refill),
 * without taking one; *retry_after_s as for take. A key without a bucket is
 * not blocked. */
bool tk_ratelimit_blocked(struct tk_ratelimit *rl, const char *key, enum tk_rl_class cls,
			  int64_t now_ns, int *retry_after_s);

/* Number of live buckets (for tests). */
size_t tk_ratelimit_size(struct tk_ratelimit *rl);

/* Name of a class for logs and metrics ("submit", "read", "admin",
 * "auth_failure"). */
const char *tk_rl_class_name(enum tk_rl_class cls);

#endif
