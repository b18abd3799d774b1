/*
 * ratelimit.c — token-bucket rate limiter (see ratelimit.h).
 *
 * Owns a chained hash table of buckets keyed by (class, key) plus an LRU list
 * through the same nodes, so the oldest bucket can be dropped in O(1) when
 * the table is full. Everything is guarded by rl->mu.
 */
#include "server/ratelimit.h"

#include "core/err.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RL_KEY_MAX 128 /* longer keys are cut; key ids are far shorter */

struct rl_bucket {
	struct rl_bucket *hnext;          /* hash chain */
	struct rl_bucket *lru_prev, *lru_next; /* lru_prev is the more recent */
	uint64_t hash;
	enum tk_rl_class cls;
	double tokens;
	int64_t last_ns;
	char key[RL_KEY_MAX];
};

struct tk_ratelimit {
	pthread_mutex_t mu;
	struct tk_rl_limit limits[TK_RL_N_]; /* guarded by mu */
	struct rl_bucket **table;            /* n_slots chains */
	size_t n_slots;                      /* power of two */
	size_t n_buckets, max_buckets;
	struct rl_bucket *lru_head, *lru_tail; /* head = most recently used */
};

static const char *const class_names[TK_RL_N_] = { "submit", "read", "admin",
						   "auth_failure" };

const char *tk_rl_class_name(enum tk_rl_class cls)
{
	return (unsigned)cls < TK_RL_N_ ? class_names[cls] : "unknown";
}

static int check_limits(const struct tk_rl_limit *limits)
{
	for (int i = 0; i < TK_RL_N_; i++) {
		double pm = limits[i].per_minute, b = limits[i].burst;
		if (!(pm >= 0 && pm <= 1e9) || (pm > 0 && !(b >= 1 && b <= 1e9)))
			return tk_errf(TK_EINVAL, "rate limit %s: per_minute must be 0..1e9 and "
				       "burst 1..1e9, got %g/%g", class_names[i], pm, b);
	}
	return 0;
}

struct tk_ratelimit *tk_ratelimit_new(const struct tk_rl_limit *limits, size_t max_buckets)
{
	if (check_limits(limits) < 0)
		return NULL;
	if (max_buckets < 1 || max_buckets > (1u << 24)) {
		tk_errf(TK_EINVAL, "rate limit: max_buckets must be 1..16777216, got %zu", max_buckets);
		return NULL;
	}
	struct tk_ratelimit *rl = calloc(1, sizeof *rl);
	if (!rl)
		goto fail_nomem;
	size_t slots = 16;
	while (slots < max_buckets * 2)
		slots <<= 1;
	rl->table = calloc(slots, sizeof *rl->table);
	if (!rl->table)
		goto fail_rl;
	rl->n_slots = slots;
	rl->max_buckets = max_buckets;
	memcpy(rl->limits, limits, sizeof rl->limits);
	pthread_mutex_init(&rl->mu, NULL);
	return rl;
fail_rl:
	free(rl);
fail_nomem:
	tk_errf(TK_ENOMEM, "rate limit: out of memory");
	return NULL;
}

void tk_ratelimit_free(struct tk_ratelimit *rl)
{
	if (!rl)
		return;
	struct rl_bucket *b = rl->lru_head;
	while (b) {
		struct rl_bucket *next = b->lru_next;
		free(b);
		b = next;
	}
	free(rl->table);
	pthread_mutex_destroy(&rl->mu);
	free(rl);
}

int tk_ratelimit_configure(struct tk_ratelimit *rl, const struct tk_rl_limit *limits)
{
	int rc = check_limits(limits);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&rl->mu);
	memcpy(rl->limits, limits, sizeof rl->limits);
	pthread_mutex_unlock(&rl->mu);
	return 0;
}

static uint64_t key_hash(const char *key, enum tk_rl_class cls)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)cls;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 1099511628211ull;
	}
	return h;
}

static void lru_unlink(struct tk_ratelimit *rl, struct rl_bucket *b)
{
	if (b->lru_prev)
		b->lru_prev->lru_next = b->lru_next;
	else
		rl->lru_head = b->lru_next;
	if (b->lru_next)
		b->lru_next->lru_prev = b->lru_prev;
	else
		rl->lru_tail = b->lru_prev;
	b->lru_prev = b->lru_next = NULL;
}

static void lru_push_front(struct tk_ratelimit *rl, struct rl_bucket *b)
{
	b->lru_prev = NULL;
	b->lru_next = rl->lru_head;
	if (rl->lru_head)
		rl->lru_head->lru_prev = b;
	rl->lru_head = b;
	if (!rl->lru_tail)
		rl->lru_tail = b;
}

static void table_remove(struct tk_ratelimit *rl, struct rl_bucket *b)
{
	struct rl_bucket **pp = &rl->table[b->hash & (rl->n_slots - 1)];
	while (*pp && *pp != b)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = b->hnext;
}

static struct rl_bucket *find(struct tk_ratelimit *rl, const char *k, uint64_t h,
			      enum tk_rl_class cls)
{
	struct rl_bucket *b = rl->table[h & (rl->n_slots - 1)];
	while (b && !(b->hash == h && b->cls == cls && !strcmp(b->key, k)))
		b = b->hnext;
	return b;
}

/* Adds the tokens earned since b->last_ns, up to the burst. */
static void refill(struct rl_bucket *b, const struct tk_rl_limit *lim, int64_t now_ns)
{
	if (now_ns > b->last_ns) {
		b->tokens += (double)(now_ns - b->last_ns) * (lim->per_minute / 60e9);
		b->last_ns = now_ns;
	}
	if (b->tokens > lim->burst)
		b->tokens = lim->burst;
}

static int wait_secs(const struct rl_bucket *b, const struct tk_rl_limit *lim)
{
	int secs = (int)ceil((1.0 - b->tokens) / (lim->per_minute / 60.0));
	return secs < 1 ? 1 : secs;
}

bool tk_ratelimit_blocked(struct tk_ratelimit *rl, const char *key, enum tk_rl_class cls,
			  int64_t now_ns, int *retry_after_s)
{
	if ((unsigned)cls >= TK_RL_N_)
		return false;
	char k[RL_KEY_MAX];
	snprintf(k, sizeof k, "%s", key ? key : "");
	uint64_t h = key_hash(k, cls);
	bool blocked = false;
	pthread_mutex_lock(&rl->mu);
	struct tk_rl_limit lim = rl->limits[cls];
	struct rl_bucket *b = lim.per_minute > 0 ? find(rl, k, h, cls) : NULL;
	if (b) {
		refill(b, &lim, now_ns);
		blocked = b->tokens < 1.0;
		if (blocked && retry_after_s)
			*retry_after_s = wait_secs(b, &lim);
	}
	pthread_mutex_unlock(&rl->mu);
	return blocked;
}

bool tk_ratelimit_take(struct tk_ratelimit *rl, const char *key, enum tk_rl_class cls,
		       int64_t now_ns, int *retry_after_s)
{
	if ((unsigned)cls >= TK_RL_N_)
		return true;
	char k[RL_KEY_MAX];
	snprintf(k, sizeof k, "%s", key ? key : "");
	uint64_t h = key_hash(k, cls);
	bool allowed = true;

	pthread_mutex_lock(&rl->mu);
	struct tk_rl_limit lim = rl->limits[cls];
	if (lim.per_minute <= 0)
		goto out; /* class not limited */

	struct rl_bucket *b = find(rl, k, h, cls);
	if (b) {
		lru_unlink(rl, b);
	} else {
		if (rl->n_buckets >= rl->max_buckets) {
			b = rl->lru_tail; /* reuse the least recently used bucket */
			lru_unlink(rl, b);
			table_remove(rl, b);
			rl->n_buckets--;
		} else {
			b = malloc(sizeof *b);
			if (!b)
				goto out; /* fail open: refusing would punish the client for our OOM */
		}
		memset(b, 0, sizeof *b);
		b->hash = h;
		b->cls = cls;
		b->tokens = lim.burst;
		b->last_ns = now_ns;
		memcpy(b->key, k, sizeof b->key);
		size_t slot = h & (rl->n_slots - 1);
		b->hnext = rl->table[slot];
		rl->table[slot] = b;
		rl->n_buckets++;
	}
	lru_push_front(rl, b);

	refill(b, &lim, now_ns);
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
	} else {
		allowed = false;
		if (retry_after_s)
			*retry_after_s = wait_secs(b, &lim);
	}
out:
	pthread_mutex_unlock(&rl->mu);
	return allowed;
}

size_t tk_ratelimit_size(struct tk_ratelimit *rl)
{
	pthread_mutex_lock(&rl->mu);
	size_t n = rl->n_buckets;
	pthread_mutex_unlock(&rl->mu);
	return n;
}
