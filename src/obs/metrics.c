/*
 * metrics.c — the metrics registry: families, series, lock-free updates and
 * the Prometheus text exposition 0.0.4 (see metrics.h for the contract).
 * Owns every family and series of a registry until tk_registry_free(); the
 * process_* collector lives in procmetrics.c.
 *
 * Theory of operation
 *
 * Locks, outermost first (a thread only ever takes them in this order):
 *   reg->expose_lock   one exposition at a time, so collectors never run
 *                      concurrently with each other;
 *   fam->lock          the family's series table (hash chains + array) and
 *                      histogram snapshots of its series;
 *   reg->lock          the sorted family array and the collector list.
 * tk_metric_series() holds only fam->lock. When it has to count an overflow
 * it releases fam->lock first and then looks up the overflow counter (which
 * takes reg->lock to register it once, then that family's lock), so no two
 * family locks are ever held together.
 *
 * Series updates take no lock: counters are an integer part (exact, one
 * atomic add per inc) plus a double part for fractional adds (CAS loop on the
 * bit pattern); gauges are a double (atomic store / CAS add).
 *
 * Histograms are double-buffered so an exposition is a consistent snapshot.
 * h.started counts observations begun; its top bit names the "hot" shard
 * that new observations write into. An observation: fetch_add(started) picks
 * the shard, adds to its bucket and sum, then increments that shard's done
 * counter (release). A snapshot (under fam->lock): flip the top bit with one
 * fetch_add — later observations go to the other shard — then wait until
 * the old shard's done equals the number begun before the flip (only
 * in-flight observations remain, each a few instructions long), read it,
 * add it into the new hot shard and zero it. Invariant between snapshots:
 * the cold shard is all zero and the hot shard holds every finished
 * observation. So the buckets, sum and count read are exactly the first N
 * observations: +Inf bucket == _count and _sum matches. Cost: one extra
 * atomic add per observation.
 * Weakness: a thread killed in the middle of tk_hist_observe (say by
 * pthread_cancel) would make the next snapshot of that series wait forever.
 */
#include "obs/metrics.h"

#include "core/err.h"
#include "core/utf8.h"
#include "obs/log.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_LONG_LOCK_FREE == 2,
	       "metrics need lock-free 64-bit atomics");

#define HIST_HOT_BIT ((uint64_t)1 << 63)
#define OVERFLOW_FAMILY "tanuki_metrics_label_overflow_total"
#define OVERFLOW_HELP "Label sets refused because a family was at its series cap " \
	"(or the values were unusable), by family"

const double TK_METRIC_DEFAULT_BUCKETS[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
};
const size_t TK_METRIC_DEFAULT_BUCKETS_N =
	sizeof TK_METRIC_DEFAULT_BUCKETS / sizeof TK_METRIC_DEFAULT_BUCKETS[0];

enum series_kind { SK_INERT = 0, SK_COUNTER, SK_GAUGE, SK_HIST };

struct tk_series {
	struct tk_metric *fam;    /* owner; NULL for the inert series */
	enum series_kind kind;    /* immutable */
	char **values;            /* fam->n_labels owned strings; NULL when none */
	uint64_t hash;            /* of values; immutable */
	struct tk_series *next;   /* hash chain; guarded by fam->lock */
	_Atomic uint64_t ival;    /* counter: integral increments */
	_Atomic uint64_t dbits;   /* counter: fractional adds; gauge: value (double bits) */
	struct {
		_Atomic uint64_t started;  /* observations begun; top bit = hot shard */
		_Atomic uint64_t done[2];  /* observations finished, per shard */
		_Atomic uint64_t sum[2];   /* double bits, per shard */
		_Atomic uint64_t *counts;  /* [2][n_buckets + 1], per bucket (not cumulative) */
	} h;
};

struct tk_metric {
	struct tk_registry *reg;  /* owner */
	char *name;               /* owned, immutable */
	char *help;               /* owned, immutable */
	enum tk_metric_type type; /* immutable */
	size_t n_labels;
	char *label_names[TK_METRIC_MAX_LABELS]; /* owned, immutable */
	size_t n_buckets;                        /* histograms */
	double buckets[TK_METRIC_MAX_BUCKETS];   /* strictly increasing, finite */
	_Atomic size_t max_series;

	pthread_mutex_t lock;        /* guards the fields below */
	struct tk_series **series;   /* n_series entries, creation order */
	size_t n_series, cap_series;
	struct tk_series **table;    /* hash heads, n_table (power of 2) */
	size_t n_table;

	struct tk_series *solo;      /* the series of a label-less family; immutable */
	struct tk_series *overflow;  /* hidden series past the cap; immutable */
	struct tk_series *_Atomic overflow_ctr; /* our row of the overflow counter, once known */
};

struct collector {
	tk_metrics_collector fn;
	void *arg;
};

struct tk_registry {
	pthread_mutex_t expose_lock; /* serialises expositions and collectors */
	pthread_mutex_t lock;        /* guards the fields below */
	struct tk_metric **fams;     /* sorted by name */
	size_t n_fams, cap_fams;
	struct collector collectors[TK_METRIC_MAX_COLLECTORS];
	size_t n_collectors;
	struct tk_metric *_Atomic overflow_fam; /* OVERFLOW_FAMILY once registered */
};

/* Returned for a NULL family: every update on it is ignored. */
static struct tk_series inert_series = { .kind = SK_INERT };

/* ---- small helpers ---------------------------------------------------- */

static inline double bits_dbl(uint64_t b)
{
	double d;
	memcpy(&d, &b, sizeof d);
	return d;
}

static inline uint64_t dbl_bits(double d)
{
	uint64_t b;
	memcpy(&b, &d, sizeof b);
	return b;
}

static void atomic_add_dbl(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(p, &old, dbl_bits(bits_dbl(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

/* ---- series ----------------------------------------------------------- */

static void series_free(struct tk_series *s, size_t n_labels)
{
	if (!s)
		return;
	if (s->values)
		for (size_t i = 0; i < n_labels; i++)
			free(s->values[i]);
	free(s->values);
	free(s->h.counts);
	free(s);
}

/* A new zeroed series of family m with copies of values (NULL for none). */
static struct tk_series *series_new(struct tk_metric *m, const char *const *values, uint64_t hash)
{
	struct tk_series *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->fam = m;
	s->hash = hash;
	s->kind = m->type == TK_METRIC_COUNTER ? SK_COUNTER
		: m->type == TK_METRIC_GAUGE ? SK_GAUGE : SK_HIST;
	atomic_init(&s->ival, 0);
	atomic_init(&s->dbits, dbl_bits(0.0));
	atomic_init(&s->h.started, 0);
	for (int i = 0; i < 2; i++) {
		atomic_init(&s->h.done[i], 0);
		atomic_init(&s->h.sum[i], dbl_bits(0.0));
	}
	if (s->kind == SK_HIST) {
		size_t n = 2 * (m->n_buckets + 1);
		s->h.counts = malloc(n * sizeof *s->h.counts);
		if (!s->h.counts)
			goto fail;
		for (size_t i = 0; i < n; i++)
			atomic_init(&s->h.counts[i], 0);
	}
	if (values && m->n_labels) {
		s->values = calloc(m->n_labels, sizeof *s->values);
		if (!s->values)
			goto fail;
		for (size_t i = 0; i < m->n_labels; i++)
			if (!(s->values[i] = dup_str(values[i])))
				goto fail;
	}
	return s;
fail:
	series_free(s, m->n_labels);
	return NULL;
}

/* ---- updates (lock-free) ---------------------------------------------- */

void tk_counter_inc(struct tk_series *s)
{
	if (s && s->kind == SK_COUNTER)
		atomic_fetch_add_explicit(&s->ival, 1, memory_order_relaxed);
}

void tk_counter_add(struct tk_series *s, double v)
{
	if (!s || s->kind != SK_COUNTER || !(v >= 0))
		return; /* negative and NaN amounts are ignored */
	/* Integral amounts below 2^53 stay exact in the integer part. */
	if (v < 9007199254740992.0 && v == (double)(uint64_t)v)
		atomic_fetch_add_explicit(&s->ival, (uint64_t)v, memory_order_relaxed);
	else
		atomic_add_dbl(&s->dbits, v);
}

void tk_counter_set(struct tk_series *s, double v)
{
	if (!s || s->kind != SK_COUNTER || !(v >= 0))
		return;
	atomic_store_explicit(&s->ival, 0, memory_order_relaxed);
	atomic_store_explicit(&s->dbits, dbl_bits(v), memory_order_relaxed);
}

void tk_gauge_set(struct tk_series *s, double v)
{
	if (s && s->kind == SK_GAUGE)
		atomic_store_explicit(&s->dbits, dbl_bits(v), memory_order_relaxed);
}

void tk_gauge_add(struct tk_series *s, double v)
{
	if (s && s->kind == SK_GAUGE)
		atomic_add_dbl(&s->dbits, v);
}

/* Index of the first bucket whose bound is >= v (n_buckets: the +Inf one). */
static size_t bucket_index(const struct tk_metric *m, double v)
{
	size_t lo = 0, hi = m->n_buckets;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v <= m->buckets[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

void tk_hist_observe(struct tk_series *s, double v)
{
	if (!s || s->kind != SK_HIST || isnan(v))
		return;
	const struct tk_metric *m = s->fam;
	size_t i = bucket_index(m, v);
	/* acquire: pairs with the snapshot's flip, so the zeroing of a shard
	 * happens before our adds to it. */
	uint64_t n = atomic_fetch_add_explicit(&s->h.started, 1, memory_order_acquire);
	unsigned hot = (unsigned)(n >> 63);
	atomic_fetch_add_explicit(&s->h.counts[hot * (m->n_buckets + 1) + i], 1,
				  memory_order_relaxed);
	atomic_add_dbl(&s->h.sum[hot], v);
	/* release: the snapshot sees our bucket and sum once it sees done. */
	atomic_fetch_add_explicit(&s->h.done[hot], 1, memory_order_release);
}

double tk_series_value(const struct tk_series *s)
{
	if (!s)
		return 0;
	if (s->kind == SK_COUNTER)
		return (double)atomic_load_explicit(&s->ival, memory_order_relaxed) +
		       bits_dbl(atomic_load_explicit(&s->dbits, memory_order_relaxed));
	if (s->kind == SK_GAUGE)
		return bits_dbl(atomic_load_explicit(&s->dbits, memory_order_relaxed));
	return 0;
}

/* ---- histogram snapshots (caller holds s->fam->lock) ------------------ */

struct hist_snap {
	uint64_t count;
	double sum;
	uint64_t per_bucket[TK_METRIC_MAX_BUCKETS + 1]; /* not cumulative */
};

static void hist_snapshot(struct tk_series *s, struct hist_snap *out)
{
	size_t nb = s->fam->n_buckets + 1;
	uint64_t n = atomic_fetch_add_explicit(&s->h.started, HIST_HOT_BIT, memory_order_acq_rel);
	uint64_t begun = n & ~HIST_HOT_BIT;
	unsigned cold = (unsigned)(n >> 63), hot = cold ^ 1u;
	_Atomic uint64_t *cc = s->h.counts + cold * nb, *hc = s->h.counts + hot * nb;

	/* Wait for observations that picked the old shard before the flip. */
	for (unsigned spins = 0;
	     atomic_load_explicit(&s->h.done[cold], memory_order_acquire) != begun; spins++)
		if (spins > 100)
			sched_yield();

	out->count = begun;
	out->sum = bits_dbl(atomic_load_explicit(&s->h.sum[cold], memory_order_relaxed));
	for (size_t i = 0; i < nb; i++)
		out->per_bucket[i] = atomic_load_explicit(&cc[i], memory_order_relaxed);

	/* Fold the old shard into the hot one and zero it; nobody writes it now. */
	for (size_t i = 0; i < nb; i++) {
		if (out->per_bucket[i])
			atomic_fetch_add_explicit(&hc[i], out->per_bucket[i], memory_order_relaxed);
		atomic_store_explicit(&cc[i], 0, memory_order_relaxed);
	}
	atomic_add_dbl(&s->h.sum[hot], out->sum);
	atomic_store_explicit(&s->h.sum[cold], dbl_bits(0.0), memory_order_relaxed);
	atomic_fetch_add_explicit(&s->h.done[hot], begun, memory_order_relaxed);
	atomic_store_explicit(&s->h.done[cold], 0, memory_order_relaxed);
}

/* Snapshot of s for the test readers; false when s is not a histogram. */
static bool hist_read(const struct tk_series *cs, struct hist_snap *out)
{
	if (!cs || cs->kind != SK_HIST)
		return false;
	/* The snapshot moves counts between shards; the series is never const. */
	struct tk_series *s = (struct tk_series *)cs;
	pthread_mutex_lock(&s->fam->lock);
	hist_snapshot(s, out);
	pthread_mutex_unlock(&s->fam->lock);
	return true;
}

uint64_t tk_hist_count(const struct tk_series *s)
{
	struct hist_snap snap;
	return hist_read(s, &snap) ? snap.count : 0;
}

double tk_hist_sum(const struct tk_series *s)
{
	struct hist_snap snap;
	return hist_read(s, &snap) ? snap.sum : 0;
}

uint64_t tk_hist_bucket(const struct tk_series *s, size_t i)
{
	struct hist_snap snap;
	if (!hist_read(s, &snap) || i > s->fam->n_buckets)
		return 0;
	uint64_t c = 0;
	for (size_t k = 0; k <= i; k++)
		c += snap.per_bucket[k];
	return c;
}

/* ---- registry --------------------------------------------------------- */

static void family_free(struct tk_metric *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_series; i++)
		series_free(m->series[i], m->n_labels);
	series_free(m->solo, m->n_labels); /* never in m->series */
	series_free(m->overflow, m->n_labels);
	free(m->series);
	free(m->table);
	for (size_t i = 0; i < m->n_labels; i++)
		free(m->label_names[i]);
	free(m->name);
	free(m->help);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

struct tk_registry *tk_registry_new(void)
{
	struct tk_registry *r = calloc(1, sizeof *r);
	if (!r) {
		tk_errf(TK_ENOMEM, "metrics: cannot allocate a registry");
		return NULL;
	}
	pthread_mutex_init(&r->expose_lock, NULL);
	pthread_mutex_init(&r->lock, NULL);
	atomic_init(&r->overflow_fam, NULL);
	return r;
}

void tk_registry_free(struct tk_registry *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_fams; i++)
		family_free(r->fams[i]);
	free(r->fams);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->expose_lock);
	free(r);
}

static struct tk_registry *default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
	default_registry = tk_registry_new();
}

struct tk_registry *tk_registry_default(void)
{
	pthread_once(&default_once, default_init);
	/* Allocation of a few hundred bytes at start-up failing leaves nothing
	 * sensible to return; callers treat NULL as "the default" anyway and
	 * every entry point re-checks. */
	return default_registry;
}

static struct tk_registry *reg_or_default(struct tk_registry *r)
{
	return r ? r : tk_registry_default();
}

/* Position of name in r->fams (sorted), or where it would go; *found tells.
 * Caller holds r->lock. */
static size_t fam_find(const struct tk_registry *r, const char *name, bool *found)
{
	size_t lo = 0, hi = r->n_fams;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(r->fams[mid]->name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static struct tk_metric *fam_lookup(const struct tk_registry *r, const char *name)
{
	bool found;
	size_t i = fam_find(r, name, &found);
	return found ? r->fams[i] : NULL;
}

static const char *type_name(enum tk_metric_type t)
{
	switch (t) {
	case TK_METRIC_COUNTER: return "counter";
	case TK_METRIC_GAUGE: return "gauge";
	case TK_METRIC_HISTOGRAM: return "histogram";
	}
	return "untyped";
}

static bool valid_name(const char *s, bool colon_ok)
{
	size_t n = strnlen(s, TK_METRIC_MAX_NAME_BYTES + 1);
	if (n == 0 || n > TK_METRIC_MAX_NAME_BYTES)
		return false;
	if (s[0] == '_' && s[1] == '_') /* reserved for Prometheus itself */
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (colon_ok && c == ':') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

/* Checks name, help, labels and buckets; 0 or TK_EINVAL/TK_ELIMIT with detail. */
static int check_shape(const char *name, const char *help, enum tk_metric_type type,
		       const char *const *label_names, size_t n_labels,
		       const double *buckets, size_t n_buckets)
{
	if (!name || !valid_name(name, true))
		return tk_errf(TK_EINVAL, "metrics: invalid metric name '%.*s' (want [a-zA-Z_:][a-zA-Z0-9_:]*, "
			       "no leading __, at most %d bytes)", TK_METRIC_MAX_NAME_BYTES,
			       name ? name : "(null)", TK_METRIC_MAX_NAME_BYTES);
	if (!help || !*help)
		return tk_errf(TK_EINVAL, "metrics: %s: help text is required", name);
	if (strnlen(help, TK_METRIC_MAX_HELP_BYTES + 1) > TK_METRIC_MAX_HELP_BYTES)
		return tk_errf(TK_ELIMIT, "metrics: %s: help text longer than %d bytes", name,
			       TK_METRIC_MAX_HELP_BYTES);
	if (n_labels > TK_METRIC_MAX_LABELS)
		return tk_errf(TK_ELIMIT, "metrics: %s: %zu labels, at most %d", name, n_labels,
			       TK_METRIC_MAX_LABELS);
	if (n_labels && !label_names)
		return tk_errf(TK_EINVAL, "metrics: %s: label_names is NULL", name);
	for (size_t i = 0; i < n_labels; i++) {
		const char *l = label_names[i];
		if (!l || !valid_name(l, false))
			return tk_errf(TK_EINVAL, "metrics: %s: invalid label name '%.*s' (want "
				       "[a-zA-Z_][a-zA-Z0-9_]*, no leading __)", name,
				       TK_METRIC_MAX_NAME_BYTES, l ? l : "(null)");
		if (type == TK_METRIC_HISTOGRAM && !strcmp(l, "le"))
			return tk_errf(TK_EINVAL, "metrics: %s: a histogram may not have a label 'le'",
				       name);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(label_names[j], l))
				return tk_errf(TK_EINVAL, "metrics: %s: label '%s' given twice", name, l);
	}
	if (type != TK_METRIC_HISTOGRAM)
		return 0;
	if (n_buckets > TK_METRIC_MAX_BUCKETS)
		return tk_errf(TK_ELIMIT, "metrics: %s: %zu buckets, at most %d", name, n_buckets,
			       TK_METRIC_MAX_BUCKETS);
	for (size_t i = 0; i < n_buckets; i++) {
		if (!isfinite(buckets[i]))
			return tk_errf(TK_EINVAL, "metrics: %s: bucket %zu is not finite (+Inf is implicit)",
				       name, i);
		if (i && !(buckets[i] > buckets[i - 1]))
			return tk_errf(TK_EINVAL, "metrics: %s: bucket %zu (%g) not above bucket %zu (%g)",
				       name, i, buckets[i], i - 1, buckets[i - 1]);
	}
	return 0;
}

static bool same_shape(const struct tk_metric *m, enum tk_metric_type type,
		       const char *const *label_names, size_t n_labels,
		       const double *buckets, size_t n_buckets)
{
	if (m->type != type || m->n_labels != n_labels)
		return false;
	for (size_t i = 0; i < n_labels; i++)
		if (strcmp(m->label_names[i], label_names[i]))
			return false;
	if (type == TK_METRIC_HISTOGRAM) {
		if (m->n_buckets != n_buckets)
			return false;
		for (size_t i = 0; i < n_buckets; i++)
			if (m->buckets[i] != buckets[i])
				return false;
	}
	return true;
}

/* A histogram "x" exposes x_bucket, x_sum and x_count: refuse families that
 * would print the same series names. Caller holds r->lock. 0 or TK_EEXIST. */
static int check_suffix_clash(const struct tk_registry *r, const char *name,
			      enum tk_metric_type type)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	char tmp[TK_METRIC_MAX_NAME_BYTES + 16];
	for (size_t i = 0; i < 3; i++) {
		if (type == TK_METRIC_HISTOGRAM) {
			snprintf(tmp, sizeof tmp, "%s%s", name, sfx[i]);
			if (fam_lookup(r, tmp))
				return tk_errf(TK_EEXIST, "metrics: histogram %s clashes with family %s",
					       name, tmp);
		}
		size_t n = strlen(name), k = strlen(sfx[i]);
		if (n > k && !strcmp(name + n - k, sfx[i])) {
			snprintf(tmp, sizeof tmp, "%.*s", (int)(n - k), name);
			const struct tk_metric *h = fam_lookup(r, tmp);
			if (h && h->type == TK_METRIC_HISTOGRAM)
				return tk_errf(TK_EEXIST, "metrics: %s clashes with histogram %s",
					       name, tmp);
		}
	}
	return 0;
}

static struct tk_metric *family_new(struct tk_registry *r, const char *name, const char *help,
				    enum tk_metric_type type, const char *const *label_names,
				    size_t n_labels, const double *buckets, size_t n_buckets)
{
	struct tk_metric *m = calloc(1, sizeof *m);
	if (!m)
		goto nomem;
	pthread_mutex_init(&m->lock, NULL);
	m->reg = r;
	m->type = type;
	atomic_init(&m->max_series, (size_t)TK_METRIC_MAX_SERIES);
	atomic_init(&m->overflow_ctr, NULL);
	if (!(m->name = dup_str(name)) || !(m->help = dup_str(help)))
		goto fail;
	for (; m->n_labels < n_labels; m->n_labels++)
		if (!(m->label_names[m->n_labels] = dup_str(label_names[m->n_labels])))
			goto fail;
	m->n_buckets = n_buckets;
	if (n_buckets)
		memcpy(m->buckets, buckets, n_buckets * sizeof *buckets);
	if (!(m->overflow = series_new(m, NULL, 0)))
		goto fail;
	if (n_labels == 0 && !(m->solo = series_new(m, NULL, 0)))
		goto fail;
	return m;
fail:
	family_free(m);
nomem:
	tk_errf(TK_ENOMEM, "metrics: %s: out of memory registering the family", name);
	return NULL;
}

static struct tk_metric *metric_register(struct tk_registry *r, const char *name,
					 const char *help, enum tk_metric_type type,
					 const char *const *label_names, size_t n_labels,
					 const double *buckets, size_t n_buckets)
{
	r = reg_or_default(r);
	if (!r) {
		tk_errf(TK_ENOMEM, "metrics: no default registry (out of memory)");
		return NULL;
	}
	if (type == TK_METRIC_HISTOGRAM && (!buckets || !n_buckets)) {
		buckets = TK_METRIC_DEFAULT_BUCKETS;
		n_buckets = TK_METRIC_DEFAULT_BUCKETS_N;
	}
	if (type != TK_METRIC_HISTOGRAM)
		n_buckets = 0;
	if (check_shape(name, help, type, label_names, n_labels, buckets, n_buckets))
		return NULL;

	struct tk_metric *m = NULL;
	pthread_mutex_lock(&r->lock);
	bool found;
	size_t pos = fam_find(r, name, &found);
	if (found) {
		m = r->fams[pos];
		if (!same_shape(m, type, label_names, n_labels, buckets, n_buckets)) {
			tk_errf(TK_EEXIST, "metrics: %s is already registered as a %s with %zu "
				"label(s) (a different shape)", name, type_name(m->type), m->n_labels);
			m = NULL;
		}
		goto out;
	}
	if (check_suffix_clash(r, name, type))
		goto out;
	if (r->n_fams >= TK_METRIC_MAX_FAMILIES) {
		tk_errf(TK_ELIMIT, "metrics: %s: registry already holds %d families", name,
			TK_METRIC_MAX_FAMILIES);
		goto out;
	}
	if (r->n_fams == r->cap_fams) {
		size_t cap = r->cap_fams ? 2 * r->cap_fams : 32;
		struct tk_metric **p = realloc(r->fams, cap * sizeof *p);
		if (!p) {
			tk_errf(TK_ENOMEM, "metrics: %s: cannot grow the family list", name);
			goto out;
		}
		r->fams = p;
		r->cap_fams = cap;
	}
	m = family_new(r, name, help, type, label_names, n_labels, buckets, n_buckets);
	if (!m)
		goto out;
	memmove(r->fams + pos + 1, r->fams + pos, (r->n_fams - pos) * sizeof *r->fams);
	r->fams[pos] = m;
	r->n_fams++;
out:
	pthread_mutex_unlock(&r->lock);
	return m;
}

struct tk_metric *tk_metric_counter(struct tk_registry *r, const char *name, const char *help,
				    const char *const *label_names, size_t n_labels)
{
	return metric_register(r, name, help, TK_METRIC_COUNTER, label_names, n_labels, NULL, 0);
}

struct tk_metric *tk_metric_gauge(struct tk_registry *r, const char *name, const char *help,
				  const char *const *label_names, size_t n_labels)
{
	return metric_register(r, name, help, TK_METRIC_GAUGE, label_names, n_labels, NULL, 0);
}

struct tk_metric *tk_metric_histogram(struct tk_registry *r, const char *name, const char *help,
				      const char *const *label_names, size_t n_labels,
				      const double *buckets, size_t n_buckets)
{
	return metric_register(r, name, help, TK_METRIC_HISTOGRAM, label_names, n_labels,
			       buckets, n_buckets);
}

void tk_metric_set_max_series(struct tk_metric *m, size_t max_series)
{
	if (m)
		atomic_store_explicit(&m->max_series, max_series, memory_order_relaxed);
}

/* ---- series lookup ---------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	int r = tk_utf8_check(s, n);
	return r > 0 ? (size_t)r : 0;
}

static bool utf8_valid(const char *v, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq((const unsigned char *)v + i, n - i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

/* A malloc'd copy of v[0..n) with each invalid byte replaced by U+FFFD. */
static char *utf8_repair(const char *v, size_t n)
{
	char *out = malloc(3 * n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq((const unsigned char *)v + i, n - i);
		if (k) {
			memcpy(o, v + i, k);
			o += k;
			i += k;
		} else {
			memcpy(o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		}
	}
	*o = '\0';
	return out;
}

static uint64_t hash_values(const char *const *v, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u; /* FNV-1a, values separated by a 0xff byte */
	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++)
			h = (h ^ *p) * 0x100000001b3u;
		h = (h ^ 0xffu) * 0x100000001b3u;
	}
	return h;
}

static bool values_equal(const struct tk_series *s, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->values[i], v[i]))
			return false;
	return true;
}

/* Doubles the hash table when it is full. Caller holds m->lock. 0 or TK_ENOMEM. */
static int table_grow(struct tk_metric *m)
{
	if (m->n_series < m->n_table)
		return 0;
	size_t n = m->n_table ? 2 * m->n_table : 16;
	struct tk_series **t = calloc(n, sizeof *t);
	if (!t)
		return TK_ENOMEM;
	for (size_t i = 0; i < m->n_series; i++) {
		struct tk_series *s = m->series[i];
		size_t b = (size_t)s->hash & (n - 1);
		s->next = t[b];
		t[b] = s;
	}
	free(m->table);
	m->table = t;
	m->n_table = n;
	return 0;
}

/* Adds one to tanuki_metrics_label_overflow_total{metric="<m>"}. Called
 * without any family lock held. */
static void count_overflow(struct tk_metric *m)
{
	struct tk_registry *r = m->reg;
	struct tk_metric *of = atomic_load_explicit(&r->overflow_fam, memory_order_acquire);
	if (of == m)
		return; /* the overflow counter itself overflowed: its hidden series absorbs it */
	struct tk_series *c = atomic_load_explicit(&m->overflow_ctr, memory_order_acquire);
	if (!c) {
		if (!of) {
			of = tk_metric_counter(r, OVERFLOW_FAMILY, OVERFLOW_HELP,
					       (const char *[]){ "metric" }, 1);
			if (!of) {
				tk_log(TK_LOG_DEBUG, "metrics", "cannot count label overflow of %s: %s",
				       m->name, tk_err_detail());
				return;
			}
			atomic_store_explicit(&r->overflow_fam, of, memory_order_release);
			if (of == m)
				return;
		}
		c = tk_metric_series(of, (const char *const *)&m->name);
		atomic_store_explicit(&m->overflow_ctr, c, memory_order_release);
	}
	tk_counter_inc(c);
}

static struct tk_series *refuse(struct tk_metric *m)
{
	count_overflow(m);
	return m->overflow;
}

struct tk_series *tk_metric_series(struct tk_metric *m, const char *const *label_values)
{
	if (!m)
		return &inert_series;
	if (m->n_labels == 0)
		return m->solo;
	if (!label_values)
		return refuse(m);

	const char *vals[TK_METRIC_MAX_LABELS];
	char *repaired[TK_METRIC_MAX_LABELS] = { 0 };
	struct tk_series *s = NULL;
	bool over = false;
	for (size_t i = 0; i < m->n_labels; i++) {
		const char *v = label_values[i];
		size_t n = v ? strnlen(v, TK_METRIC_MAX_VALUE_BYTES + 1) : 0;
		if (!v || n > TK_METRIC_MAX_VALUE_BYTES) {
			over = true;
			goto out;
		}
		vals[i] = v;
		if (!utf8_valid(v, n)) {
			if (!(repaired[i] = utf8_repair(v, n))) {
				s = m->overflow; /* out of memory: not an overflow event */
				goto out;
			}
			vals[i] = repaired[i];
		}
	}
	uint64_t h = hash_values(vals, m->n_labels);

	pthread_mutex_lock(&m->lock);
	if (m->n_table)
		for (s = m->table[(size_t)h & (m->n_table - 1)]; s; s = s->next)
			if (s->hash == h && values_equal(s, vals, m->n_labels))
				goto unlock;
	if (m->n_series >= atomic_load_explicit(&m->max_series, memory_order_relaxed)) {
		over = true;
		goto unlock;
	}
	if (table_grow(m))
		goto unlock;
	if (m->n_series == m->cap_series) {
		size_t cap = m->cap_series ? 2 * m->cap_series : 8;
		struct tk_series **p = realloc(m->series, cap * sizeof *p);
		if (!p)
			goto unlock;
		m->series = p;
		m->cap_series = cap;
	}
	if (!(s = series_new(m, vals, h)))
		goto unlock;
	size_t b = (size_t)h & (m->n_table - 1);
	s->next = m->table[b];
	m->table[b] = s;
	m->series[m->n_series++] = s;
unlock:
	pthread_mutex_unlock(&m->lock);
	if (!s && !over) {
		tk_log(TK_LOG_DEBUG, "metrics", "%s: out of memory adding a series", m->name);
		s = m->overflow;
	}
out:
	for (size_t i = 0; i < m->n_labels; i++)
		free(repaired[i]);
	if (over)
		return refuse(m);
	return s;
}

struct tk_series *tk_metric_solo(struct tk_metric *m)
{
	if (!m)
		return &inert_series;
	return m->n_labels == 0 ? m->solo : m->overflow;
}

/* ---- collectors ------------------------------------------------------- */

int tk_metrics_add_collector(struct tk_registry *r, tk_metrics_collector fn, void *arg)
{
	r = reg_or_default(r);
	if (!r)
		return tk_errf(TK_ENOMEM, "metrics: no default registry (out of memory)");
	if (!fn)
		return tk_errf(TK_EINVAL, "metrics: collector function is NULL");
	int rc = 0;
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n_collectors; i++)
		if (r->collectors[i].fn == fn && r->collectors[i].arg == arg)
			goto out; /* already there */
	if (r->n_collectors == TK_METRIC_MAX_COLLECTORS) {
		rc = tk_errf(TK_ELIMIT, "metrics: at most %d collectors per registry",
			     TK_METRIC_MAX_COLLECTORS);
		goto out;
	}
	r->collectors[r->n_collectors++] = (struct collector){ fn, arg };
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* ---- exposition ------------------------------------------------------- */

/* Formats v so that Prometheus parses it back to the same double: integers
 * (exact below 2^53) without exponent, otherwise the shortest %g that round
 * trips; +Inf, -Inf and NaN spelled the Prometheus way. out: 40 bytes. */
static void fmt_double(char *out, size_t cap, double v)
{
	if (isnan(v)) {
		snprintf(out, cap, "NaN");
	} else if (isinf(v)) {
		snprintf(out, cap, "%s", v > 0 ? "+Inf" : "-Inf");
	} else if (v > -9007199254740992.0 && v < 9007199254740992.0 &&
		   v == (double)(int64_t)v) {
		snprintf(out, cap, "%" PRId64, (int64_t)v);
	} else {
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(out, cap, "%.*g", prec, v);
			if (strtod(out, NULL) == v)
				break;
		}
	}
}

static int put_double(struct tk_buf *b, double v)
{
	char tmp[40];
	fmt_double(tmp, sizeof tmp, v);
	return tk_buf_puts(b, tmp);
}

/* Appends s escaped for a label value (\\, \", \n) or, with help, for HELP
 * text (\\ and \n only). */
static int put_escaped(struct tk_buf *b, const char *s, bool help)
{
	int rc = 0;
	const char *run = s;
	for (const char *p = s; *p && !rc; p++) {
		const char *esc = *p == '\\' ? "\\\\" : *p == '\n' ? "\\n"
				  : (*p == '"' && !help) ? "\\\"" : NULL;
		if (!esc)
			continue;
		if (!(rc = tk_buf_append(b, run, (size_t)(p - run))))
			rc = tk_buf_puts(b, esc);
		run = p + 1;
	}
	if (!rc)
		rc = tk_buf_puts(b, run);
	return rc;
}

/* "name<suffix>{l1="v1",...[,le="x"]} " */
static int put_series_head(struct tk_buf *b, const struct tk_metric *m, const struct tk_series *s,
			   const char *suffix, const char *le)
{
	int rc = tk_buf_puts(b, m->name);
	if (!rc)
		rc = tk_buf_puts(b, suffix);
	if (!rc && (m->n_labels || le))
		rc = tk_buf_putc(b, '{');
	for (size_t i = 0; i < m->n_labels && !rc; i++) {
		rc = tk_buf_printf(b, "%s%s=\"", i ? "," : "", m->label_names[i]);
		if (!rc)
			rc = put_escaped(b, s->values[i], false);
		if (!rc)
			rc = tk_buf_putc(b, '"');
	}
	if (!rc && le)
		rc = tk_buf_printf(b, "%sle=\"%s\"", m->n_labels ? "," : "", le);
	if (!rc && (m->n_labels || le))
		rc = tk_buf_putc(b, '}');
	if (!rc)
		rc = tk_buf_putc(b, ' ');
	return rc;
}

static int put_histogram(struct tk_buf *b, const struct tk_metric *m, struct tk_series *s)
{
	struct hist_snap snap;
	hist_snapshot(s, &snap);
	uint64_t cum = 0;
	int rc = 0;
	for (size_t i = 0; i <= m->n_buckets && !rc; i++) {
		char le[40];
		if (i < m->n_buckets)
			fmt_double(le, sizeof le, m->buckets[i]);
		else
			snprintf(le, sizeof le, "+Inf");
		cum += snap.per_bucket[i];
		rc = put_series_head(b, m, s, "_bucket", le);
		if (!rc)
			rc = tk_buf_printf(b, "%" PRIu64 "\n", cum);
	}
	if (!rc)
		rc = put_series_head(b, m, s, "_sum", NULL);
	if (!rc)
		rc = put_double(b, snap.sum);
	if (!rc)
		rc = tk_buf_putc(b, '\n');
	if (!rc)
		rc = put_series_head(b, m, s, "_count", NULL);
	if (!rc)
		rc = tk_buf_printf(b, "%" PRIu64 "\n", snap.count);
	return rc;
}

static int cmp_series(const void *a, const void *b)
{
	const struct tk_series *x = *(const struct tk_series *const *)a;
	const struct tk_series *y = *(const struct tk_series *const *)b;
	for (size_t i = 0; i < x->fam->n_labels; i++) {
		int c = strcmp(x->values[i], y->values[i]);
		if (c)
			return c;
	}
	return 0;
}

/* Appends one family. Takes m->lock. 0 or a tk_buf error. */
static int expose_family(struct tk_buf *b, struct tk_metric *m)
{
	int rc = 0;
	struct tk_series **list = NULL;
	pthread_mutex_lock(&m->lock);
	size_t n = m->solo ? 1 : m->n_series;
	if (n == 0)
		goto out;
	if (m->solo) {
		list = &m->solo;
	} else {
		if (!(list = malloc(n * sizeof *list))) {
			rc = tk_errf(TK_ENOMEM, "metrics: %s: cannot sort %zu series", m->name, n);
			goto out;
		}
		memcpy(list, m->series, n * sizeof *list);
		qsort(list, n, sizeof *list, cmp_series);
	}
	rc = tk_buf_printf(b, "# HELP %s ", m->name);
	if (!rc)
		rc = put_escaped(b, m->help, true);
	if (!rc)
		rc = tk_buf_printf(b, "\n# TYPE %s %s\n", m->name, type_name(m->type));
	for (size_t i = 0; i < n && !rc; i++) {
		struct tk_series *s = list[i];
		if (m->type == TK_METRIC_HISTOGRAM) {
			rc = put_histogram(b, m, s);
			continue;
		}
		rc = put_series_head(b, m, s, "", NULL);
		if (!rc)
			rc = put_double(b, tk_series_value(s));
		if (!rc)
			rc = tk_buf_putc(b, '\n');
	}
out:
	pthread_mutex_unlock(&m->lock);
	if (list != &m->solo)
		free(list);
	return rc;
}

int tk_metrics_expose(struct tk_registry *r, struct tk_buf *out)
{
	if (!out)
		return tk_errf(TK_EINVAL, "metrics: expose: output buffer is NULL");
	r = reg_or_default(r);
	if (!r)
		return tk_errf(TK_ENOMEM, "metrics: no default registry (out of memory)");
	size_t start = out->len;
	int rc = 0;
	struct tk_metric **fams = NULL;
	struct collector cols[TK_METRIC_MAX_COLLECTORS];

	pthread_mutex_lock(&r->expose_lock);
	pthread_mutex_lock(&r->lock);
	size_t n_cols = r->n_collectors;
	memcpy(cols, r->collectors, n_cols * sizeof *cols);
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < n_cols; i++)
		cols[i].fn(r, cols[i].arg);

	/* Families are never removed before tk_registry_free, so a copy of the
	 * (sorted) pointer list stays valid without holding r->lock. */
	pthread_mutex_lock(&r->lock);
	size_t n = r->n_fams;
	if (n && !(fams = malloc(n * sizeof *fams)))
		rc = tk_errf(TK_ENOMEM, "metrics: cannot list %zu families", n);
	else if (n)
		memcpy(fams, r->fams, n * sizeof *fams);
	pthread_mutex_unlock(&r->lock);

	for (size_t i = 0; i < n && !rc; i++)
		rc = expose_family(out, fams[i]);
	pthread_mutex_unlock(&r->expose_lock);
	free(fams);
	if (rc)
		tk_buf_truncate(out, start);
	return rc;
}
