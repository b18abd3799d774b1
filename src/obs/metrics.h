/*
 * metrics.h — metrics registry and Prometheus text exposition (format 0.0.4).
 *
 * A registry holds metric families (counter, gauge, histogram), each with a
 * fixed list of label names. A family's series (one per label-value set) are
 * created on first use by tk_metric_series() and live until the registry is
 * freed, so callers may cache the returned pointer and update it from any
 * thread without a lock:
 *
 *   static struct tk_metric *reqs;   // made once at start-up
 *   reqs = tk_metric_counter(NULL, "tanuki_http_requests_total",
 *                            "HTTP requests by route and status",
 *                            (const char *[]){"route", "code"}, 2);
 *   tk_counter_inc(tk_metric_series(reqs, (const char *[]){"/run_task", "200"}));
 *
 * Hot path: updates are lock-free atomics on the series. Looking a series up
 * takes the family's own lock (never a registry-wide one).
 *
 * Threads: every function may be called from any thread, except
 * tk_registry_free() (no other call on that registry may run or follow).
 *
 * Locks, for the curious (details in metrics.c):
 *   - the registry lock guards the family list and the collectors;
 *   - a family's lock guards its series table; lookups, exposition of that
 *     family and the histogram readers take it. Lookup is a hash probe under
 *     that mutex: cheap, but cache the series pointer when you can;
 *   - an exposition lock serialises expositions (and so the collectors).
 *   Updates (inc/add/set/observe) take no lock at all.
 *
 * Values:
 *   - counter increments by integral amounts are kept in a 64-bit integer, so
 *     tk_counter_inc() is exact (one atomic add); fractional amounts go to a
 *     separate double updated by compare-and-swap on its bit pattern;
 *   - gauges are a double (store for set, CAS for add);
 *   - histograms keep two shards of bucket counts, sum and count; an
 *     exposition flips writers to the other shard and waits for in-flight
 *     observations to finish, so each exposed histogram is a consistent
 *     snapshot: +Inf bucket == _count, and _sum covers exactly those
 *     observations. NaN observations are ignored.
 *
 * Bad input never crashes: a NULL family or series makes updates no-ops (the
 * lookups return a shared inert series), and updates of the wrong kind (say
 * tk_hist_observe on a counter) are ignored.
 *
 * Bounded memory: a family holds at most max_series label sets (default
 * TK_METRIC_MAX_SERIES). Past that, tk_metric_series() returns the family's
 * overflow series (never NULL), which is not exposed, and every such event is
 * counted in tanuki_metrics_label_overflow_total{metric="<name>"}.
 *
 * Registering the same name twice with the same type and labels returns the
 * existing family; with a different shape it fails (NULL + error detail).
 * A NULL registry argument means the process-wide default registry.
 */
#ifndef TK_OBS_METRICS_H
#define TK_OBS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define TK_METRIC_MAX_SERIES 1000 /* default label-set cap per family */
#define TK_METRIC_MAX_LABELS 8
#define TK_METRIC_MAX_BUCKETS 32
#define TK_METRIC_MAX_VALUE_BYTES 256 /* longer label values go to the overflow series */
#define TK_METRIC_MAX_NAME_BYTES 200  /* metric and label names */
#define TK_METRIC_MAX_HELP_BYTES 4096
#define TK_METRIC_MAX_FAMILIES 4096   /* per registry */
#define TK_METRIC_MAX_COLLECTORS 16   /* per registry */

struct tk_registry;
struct tk_metric; /* a family */
struct tk_series; /* one label-value set of a family */

enum tk_metric_type { TK_METRIC_COUNTER, TK_METRIC_GAUGE, TK_METRIC_HISTOGRAM };

/* The process-wide registry (created on first use; never freed). */
struct tk_registry *tk_registry_default(void);

/* A private registry, mainly for tests. NULL on TK_ENOMEM. */
struct tk_registry *tk_registry_new(void);
void tk_registry_free(struct tk_registry *r); /* NULL ok */

/* Registers a family. name, help and the label names are copied (borrowed
 * only for the call). label_names may be NULL when n_labels is 0. Returns NULL
 * with an error detail on a bad name, a bad label name, too many labels or
 * buckets, or a clash with an existing family.
 *
 * Naming rules (Prometheus): metric names match [a-zA-Z_:][a-zA-Z0-9_:]*,
 * label names [a-zA-Z_][a-zA-Z0-9_]*; neither may start with "__"; label
 * names are distinct; a histogram may not have a label "le". help must be
 * non-empty. A histogram "x" clashes with families "x_bucket", "x_sum" and
 * "x_count" (its exposed series), in either order of registration.
 * A family with no labels gets its one series at once (exposed as 0). */
struct tk_metric *tk_metric_counter(struct tk_registry *r, const char *name,
				    const char *help,
				    const char *const *label_names, size_t n_labels);
struct tk_metric *tk_metric_gauge(struct tk_registry *r, const char *name,
				  const char *help,
				  const char *const *label_names, size_t n_labels);
/* buckets: strictly increasing finite upper bounds (+Inf is implicit);
 * NULL/0 means TK_METRIC_DEFAULT_BUCKETS. */
struct tk_metric *tk_metric_histogram(struct tk_registry *r, const char *name,
				      const char *help,
				      const char *const *label_names, size_t n_labels,
				      const double *buckets, size_t n_buckets);

/* Changes the family's label-set cap (only lowers or raises future growth:
 * series that exist stay). NULL ok. */
void tk_metric_set_max_series(struct tk_metric *m, size_t max_series);

/* The series for these label values (n_labels of them, borrowed for the
 * call, copied on creation). Never NULL: on cap overflow or allocation failure
 * it returns the overflow series. A NULL label_values array, a NULL value, or
 * a value longer than TK_METRIC_MAX_VALUE_BYTES is refused the same way (and
 * counted as an overflow). Values that are not valid UTF-8 are stored with
 * each bad byte replaced by U+FFFD, so the exposition is always valid UTF-8.
 * On a family without labels label_values is ignored and the solo series is
 * returned. m NULL gives an inert series whose updates do nothing. */
struct tk_series *tk_metric_series(struct tk_metric *m, const char *const *label_values);

/* For a family with no labels (lock-free). On a labelled family: the
 * overflow series; m NULL: the inert series. */
struct tk_series *tk_metric_solo(struct tk_metric *m);

/* Counters: v must be >= 0 (negative values are ignored). */
void tk_counter_add(struct tk_series *s, double v);
void tk_counter_inc(struct tk_series *s);
/* Sets a counter to v (>= 0, else ignored). Only for collectors mirroring a
 * total kept elsewhere (CPU seconds from the kernel); do not mix with
 * tk_counter_add/inc on the same series. */
void tk_counter_set(struct tk_series *s, double v);
/* Gauges. */
void tk_gauge_set(struct tk_series *s, double v);
void tk_gauge_add(struct tk_series *s, double v);
/* Histograms. */
void tk_hist_observe(struct tk_series *s, double v);

/* Reads a counter or gauge value (for tests and admin views); 0 for
 * histograms and the inert series. */
double tk_series_value(const struct tk_series *s);
/* Histogram totals (for tests): count, sum, and the cumulative count of
 * bucket i (i == n_buckets is +Inf; past that, 0). Each call takes a
 * consistent snapshot under the family lock (so it is not for hot paths). */
uint64_t tk_hist_count(const struct tk_series *s);
double tk_hist_sum(const struct tk_series *s);
uint64_t tk_hist_bucket(const struct tk_series *s, size_t i);

/* Appends the whole registry in Prometheus text format 0.0.4 to out: families
 * sorted by name, # HELP and # TYPE lines, escaped label values, histogram
 * _bucket{le=...}/_sum/_count with +Inf. 0 or a tk_buf error. Series within a
 * family are sorted by their label values (byte order, label by label);
 * labelled families without any series yet are left out; overflow series are
 * never shown. Runs the collectors first. out is borrowed; on error it is
 * left as it was before the call (nothing partial stays appended). */
int tk_metrics_expose(struct tk_registry *r, struct tk_buf *out);

/* A collector runs just before exposition (e.g. to refresh gauges such as
 * process memory), in the exposing thread, one exposition at a time, in
 * the order added. It may register families and update series, but must not
 * call tk_metrics_expose() or tk_hist_* on its own registry. arg is borrowed
 * until the registry is freed. Adding the same fn and arg again is a no-op.
 * At most TK_METRIC_MAX_COLLECTORS per registry; 0, TK_EINVAL (fn NULL) or
 * TK_ELIMIT. */
typedef void (*tk_metrics_collector)(struct tk_registry *r, void *arg);
int tk_metrics_add_collector(struct tk_registry *r, tk_metrics_collector fn, void *arg);

/* Registers the standard process_* metrics (CPU seconds, resident and
 * virtual memory, open and max fds, start time) and
 * tanuki_build_info{version,commit} 1 in r, refreshed at each exposition.
 * Values come from /proc (Linux); a read that fails leaves the metric as it
 * was and logs at debug level. Calling it again on the same registry is a
 * no-op. 0, or TK_E* when a name clashes with a family already in r. */
int tk_metrics_register_process(struct tk_registry *r);

/* Default latency buckets, in seconds. */
extern const double TK_METRIC_DEFAULT_BUCKETS[];
extern const size_t TK_METRIC_DEFAULT_BUCKETS_N;

#endif
