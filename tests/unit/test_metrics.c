/*
 * test_metrics.c — unit tests of the metrics registry and exposition
 * (src/obs/metrics.c, src/obs/procmetrics.c): exact concurrent counting,
 * gauges, histogram buckets and snapshot consistency, the label cap and its
 * overflow counter, name validation, the exact text format, collectors and
 * the process metrics.
 */
#include "testutil.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/version.h"
#include "obs/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_THREADS 8
#define N_INCS 100000

/* ---- helpers ---------------------------------------------------------- */

/* The whole exposition of r as a malloc'd string (caller frees). */
static char *expose(struct tk_registry *r)
{
	struct tk_buf b = TK_BUF_INIT((size_t)16 << 20);
	assert_int_equal(tk_metrics_expose(r, &b), 0);
	return tk_buf_detach(&b, NULL);
}

/* The value of the sample line that starts with `series` followed by a
 * space (series = name plus optional {labels}); fails the test when absent. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (!strncmp(p, series, n) && p[n] == ' ') {
			char *end;
			double v = strtod(p + n + 1, &end);
			assert_true(end != p + n + 1);
			return v;
		}
	}
	fail_msg("no sample '%s' in:\n%s", series, text);
	return 0;
}

static bool has_sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, series, n) && p[n] == ' ')
			return true;
	return false;
}

/* Lines of text that start with prefix. */
static size_t count_lines(const char *text, const char *prefix)
{
	size_t c = 0, n = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, prefix, n))
			c++;
	return c;
}

/* ---- counters: exact under contention --------------------------------- */

struct inc_arg {
	struct tk_series *solo;
	struct tk_metric *labelled;
	struct tk_series *seen; /* the labelled series this thread got */
	bool same;              /* every lookup gave the same pointer */
};

static void *inc_thread(void *p)
{
	struct inc_arg *a = p;
	a->same = true;
	for (int i = 0; i < N_INCS; i++) {
		tk_counter_inc(a->solo);
		/* Look the series up every time, as an uncached caller would. */
		struct tk_series *s = tk_metric_series(a->labelled,
						       (const char *[]){ "/run_task", "200" });
		if (a->seen && s != a->seen)
			a->same = false;
		a->seen = s;
		tk_counter_inc(s);
	}
	return NULL;
}

static void test_counter_threads_exact(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	assert_non_null(r);
	struct tk_metric *solo = tk_metric_counter(r, "t_events_total", "events", NULL, 0);
	struct tk_metric *lab = tk_metric_counter(r, "t_requests_total", "requests",
						  (const char *[]){ "route", "code" }, 2);
	assert_non_null(solo);
	assert_non_null(lab);

	pthread_t th[N_THREADS];
	struct inc_arg args[N_THREADS];
	for (int i = 0; i < N_THREADS; i++) {
		args[i] = (struct inc_arg){ .solo = tk_metric_solo(solo), .labelled = lab };
		assert_int_equal(pthread_create(&th[i], NULL, inc_thread, &args[i]), 0);
	}
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);

	const double want = (double)N_THREADS * N_INCS;
	assert_true(tk_series_value(tk_metric_solo(solo)) == want);
	for (int i = 0; i < N_THREADS; i++) {
		assert_true(args[i].same);
		assert_ptr_equal(args[i].seen, args[0].seen);
	}
	assert_true(tk_series_value(args[0].seen) == want);

	char *text = expose(r);
	assert_true(sample(text, "t_events_total") == want);
	assert_true(sample(text, "t_requests_total{route=\"/run_task\",code=\"200\"}") == want);
	assert_int_equal(count_lines(text, "t_requests_total{"), 1); /* one series, not 8 */
	free(text);
	tk_registry_free(r);
}

static void test_counter_add(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	struct tk_series *s = tk_metric_solo(tk_metric_counter(r, "t_bytes_total", "b", NULL, 0));
	double want = 0;
	const double adds[] = { 3, 0.25, 1e6, 0.5, 0 };
	for (size_t i = 0; i < sizeof adds / sizeof adds[0]; i++) {
		tk_counter_add(s, adds[i]);
		want += adds[i];
	}
	tk_counter_add(s, -5);    /* ignored: counters only go up */
	tk_counter_add(s, NAN);   /* ignored */
	tk_counter_inc(s);
	want += 1;
	assert_true(tk_series_value(s) == want);
	tk_registry_free(r);
}

/* ---- gauges ----------------------------------------------------------- */

static void *gauge_thread(void *p)
{
	for (int i = 0; i < 20000; i++) {
		tk_gauge_add(p, 2);
		tk_gauge_add(p, -1);
	}
	return NULL;
}

static void test_gauge(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	struct tk_series *g = tk_metric_solo(tk_metric_gauge(r, "t_inflight", "in flight", NULL, 0));
	assert_true(tk_series_value(g) == 0);
	tk_gauge_set(g, 10);
	tk_gauge_add(g, 2.5);
	tk_gauge_add(g, -20);
	assert_true(tk_series_value(g) == 10 + 2.5 - 20);
	tk_gauge_set(g, 0);

	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, gauge_thread, g), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_true(tk_series_value(g) == 4 * 20000.0);

	tk_gauge_set(g, -3);
	assert_true(tk_series_value(g) == -3);
	tk_registry_free(r);
}

/* ---- histograms ------------------------------------------------------- */

static void test_histogram_buckets(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	static const double bounds[] = { 1, 2, 5 };
	struct tk_metric *m = tk_metric_histogram(r, "t_latency_seconds", "latency", NULL, 0,
						  bounds, 3);
	assert_non_null(m);
	struct tk_series *s = tk_metric_solo(m);
	/* below the first bound, exactly on bounds, between, above the last */
	static const double obs[] = { -1, 0.5, 1, 1.5, 2, 3, 5, 5.0001, 7, 1e9 };
	const size_t n = sizeof obs / sizeof obs[0];
	double sum = 0;
	for (size_t i = 0; i < n; i++) {
		tk_hist_observe(s, obs[i]);
		sum += obs[i];
	}
	tk_hist_observe(s, NAN); /* ignored */

	for (size_t b = 0; b <= 3; b++) {
		uint64_t want = 0; /* reference: count of obs <= bound (all for +Inf) */
		for (size_t i = 0; i < n; i++)
			if (b == 3 || obs[i] <= bounds[b])
				want++;
		assert_int_equal(tk_hist_bucket(s, b), want);
	}
	/* The value exactly on a bound belongs to that bucket (le = "<="). */
	assert_int_equal(tk_hist_bucket(s, 0), 3); /* -1, 0.5, 1 */
	assert_int_equal(tk_hist_bucket(s, 4), 0); /* past +Inf */
	assert_int_equal(tk_hist_count(s), n);
	assert_true(tk_hist_sum(s) == sum);

	char *text = expose(r);
	assert_true(sample(text, "t_latency_seconds_bucket{le=\"1\"}") == 3);
	assert_true(sample(text, "t_latency_seconds_bucket{le=\"2\"}") == 5);
	assert_true(sample(text, "t_latency_seconds_bucket{le=\"5\"}") == 7);
	assert_true(sample(text, "t_latency_seconds_bucket{le=\"+Inf\"}") == (double)n);
	assert_true(sample(text, "t_latency_seconds_count") == (double)n);
	assert_true(sample(text, "t_latency_seconds_sum") == sum);
	free(text);

	/* Snapshots fold counts between shards: reading twice changes nothing. */
	assert_int_equal(tk_hist_count(s), n);
	assert_int_equal(tk_hist_bucket(s, 2), 7);
	tk_registry_free(r);
}

static void test_histogram_default_buckets(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	struct tk_series *s = tk_metric_solo(tk_metric_histogram(r, "t_d_seconds", "d", NULL, 0,
								 NULL, 0));
	tk_hist_observe(s, TK_METRIC_DEFAULT_BUCKETS[0]);
	tk_hist_observe(s, TK_METRIC_DEFAULT_BUCKETS[TK_METRIC_DEFAULT_BUCKETS_N - 1] * 2);
	assert_int_equal(tk_hist_bucket(s, 0), 1);
	assert_int_equal(tk_hist_bucket(s, TK_METRIC_DEFAULT_BUCKETS_N - 1), 1);
	assert_int_equal(tk_hist_bucket(s, TK_METRIC_DEFAULT_BUCKETS_N), 2);
	char *text = expose(r);
	assert_int_equal(count_lines(text, "t_d_seconds_bucket{"), TK_METRIC_DEFAULT_BUCKETS_N + 1);
	free(text);
	tk_registry_free(r);
}

/* Writers observe 1.0 (so _sum must equal _count in any consistent
 * snapshot) while the main thread exposes and checks each snapshot. */
struct hist_arg {
	struct tk_series *s;
	atomic_bool stop;
	uint64_t done;
};

static void *observe_thread(void *p)
{
	struct hist_arg *a = p;
	uint64_t n = 0;
	while (!atomic_load(&a->stop)) {
		tk_hist_observe(a->s, 1.0);
		tk_hist_observe(a->s, 0.1);
		n += 2;
	}
	a->done = n;
	return NULL;
}

static void test_histogram_consistent_under_load(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	static const double bounds[] = { 0.5 };
	struct tk_series *s = tk_metric_solo(tk_metric_histogram(r, "t_c_seconds", "c", NULL, 0,
								 bounds, 1));
	enum { WRITERS = 2 };
	struct hist_arg args[WRITERS];
	pthread_t th[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		args[i] = (struct hist_arg){ .s = s };
		atomic_init(&args[i].stop, false);
		assert_int_equal(pthread_create(&th[i], NULL, observe_thread, &args[i]), 0);
	}
	double last = 0;
	for (int k = 0; k < 2000; k++) {
		char *text = expose(r);
		double cnt = sample(text, "t_c_seconds_count");
		double inf = sample(text, "t_c_seconds_bucket{le=\"+Inf\"}");
		double low = sample(text, "t_c_seconds_bucket{le=\"0.5\"}");
		double sum = sample(text, "t_c_seconds_sum");
		assert_true(inf == cnt);
		assert_true(low <= inf);
		/* low = number of 0.1s, inf - low = number of 1.0s */
		assert_true(fabs(sum - ((inf - low) * 1.0 + low * 0.1)) < 1e-6 * (cnt + 1));
		assert_true(cnt >= last);
		last = cnt;
		free(text);
	}
	uint64_t total = 0;
	for (int i = 0; i < WRITERS; i++) {
		atomic_store(&args[i].stop, true);
		pthread_join(th[i], NULL);
		total += args[i].done;
	}
	assert_int_equal(tk_hist_count(s), total);
	assert_int_equal(tk_hist_bucket(s, 0), total / 2);
	tk_registry_free(r);
}

/* ---- label cap -------------------------------------------------------- */

static void test_label_cap_overflow(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	struct tk_metric *m = tk_metric_counter(r, "t_by_user_total", "by user",
						(const char *[]){ "user" }, 1);
	tk_metric_set_max_series(m, 5);
	struct tk_series *kept[5];
	char v[32];
	for (int i = 0; i < 5; i++) {
		snprintf(v, sizeof v, "u%d", i);
		kept[i] = tk_metric_series(m, (const char *[]){ v });
		tk_counter_inc(kept[i]);
	}
	struct tk_series *over = NULL;
	const int extra = 95;
	for (int i = 5; i < 5 + extra; i++) {
		snprintf(v, sizeof v, "u%d", i);
		struct tk_series *s = tk_metric_series(m, (const char *[]){ v });
		assert_non_null(s);
		for (int k = 0; k < 5; k++)
			assert_ptr_not_equal(s, kept[k]);
		if (over)
			assert_ptr_equal(s, over); /* one overflow series, not one per value */
		over = s;
		tk_counter_inc(s);
	}
	/* Existing series are still found past the cap. */
	assert_ptr_equal(tk_metric_series(m, (const char *[]){ "u3" }), kept[3]);

	char *text = expose(r);
	assert_int_equal(count_lines(text, "t_by_user_total{"), 5);
	assert_true(sample(text, "tanuki_metrics_label_overflow_total{metric=\"t_by_user_total\"}")
		    == extra);
	assert_null(strstr(text, "u50")); /* the refused values are nowhere */
	free(text);
	tk_registry_free(r);
}

static void test_label_cap_default_and_bad_values(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	struct tk_metric *m = tk_metric_gauge(r, "t_path", "paths", (const char *[]){ "path" }, 1);
	char v[32];
	const int tries = TK_METRIC_MAX_SERIES + 300;
	for (int i = 0; i < tries; i++) {
		snprintf(v, sizeof v, "/p/%d", i);
		tk_gauge_set(tk_metric_series(m, (const char *[]){ v }), 1);
	}
	/* An over-long value, a NULL value and a NULL array are refused too. */
	char *lng = malloc(TK_METRIC_MAX_VALUE_BYTES + 2);
	memset(lng, 'x', TK_METRIC_MAX_VALUE_BYTES + 1);
	lng[TK_METRIC_MAX_VALUE_BYTES + 1] = '\0';
	struct tk_series *o1 = tk_metric_series(m, (const char *[]){ lng });
	struct tk_series *o2 = tk_metric_series(m, (const char *[]){ NULL });
	struct tk_series *o3 = tk_metric_series(m, NULL);
	assert_ptr_equal(o1, o2);
	assert_ptr_equal(o2, o3);
	free(lng);

	char *text = expose(r);
	assert_int_equal(count_lines(text, "t_path{"), TK_METRIC_MAX_SERIES);
	assert_true(sample(text, "tanuki_metrics_label_overflow_total{metric=\"t_path\"}") ==
		    (double)(tries - TK_METRIC_MAX_SERIES + 3));
	free(text);

	/* Raising the cap lets new series in again. */
	tk_metric_set_max_series(m, TK_METRIC_MAX_SERIES + 1);
	struct tk_series *n1 = tk_metric_series(m, (const char *[]){ "fresh" });
	assert_ptr_not_equal(n1, o1);
	assert_ptr_equal(tk_metric_series(m, (const char *[]){ "fresh2" }), o1);
	tk_registry_free(r);
}

/* The overflow counter is a family like any other: capped, and its own
 * overflow does not recurse. */
static void test_overflow_counter_bounded(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	struct tk_metric *of = tk_metric_counter(r, "tanuki_metrics_label_overflow_total",
						 "pre-registered to lower its cap",
						 (const char *[]){ "metric" }, 1);
	assert_non_null(of);
	tk_metric_set_max_series(of, 2);
	char name[32];
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof name, "t_f%d_total", i);
		struct tk_metric *m = tk_metric_counter(r, name, "f", (const char *[]){ "a" }, 1);
		tk_metric_set_max_series(m, 0);
		for (int k = 0; k <= i; k++)
			tk_counter_inc(tk_metric_series(m, (const char *[]){ "v" }));
	}
	char *text = expose(r);
	assert_int_equal(count_lines(text, "tanuki_metrics_label_overflow_total{"), 2);
	assert_true(sample(text, "tanuki_metrics_label_overflow_total{metric=\"t_f0_total\"}") == 1);
	assert_true(sample(text, "tanuki_metrics_label_overflow_total{metric=\"t_f1_total\"}") == 2);
	assert_false(has_sample(text, "tanuki_metrics_label_overflow_total{metric=\"t_f2_total\"}"));
	assert_int_equal(count_lines(text, "t_f"), 0); /* capped at 0: no series shown */
	free(text);
	tk_registry_free(r);
}

static void test_utf8_repair(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	struct tk_metric *m = tk_metric_counter(r, "t_u_total", "u", (const char *[]){ "v" }, 1);
	struct tk_series *a = tk_metric_series(m, (const char *[]){ "a\xff" "b" });
	struct tk_series *b = tk_metric_series(m, (const char *[]){ "a\xfe" "b" });
	assert_ptr_equal(a, b); /* both repair to the same value */
	tk_counter_inc(a);
	tk_counter_inc(tk_metric_series(m, (const char *[]){ "caf\xc3\xa9" })); /* valid: kept */
	char *text = expose(r);
	assert_true(sample(text, "t_u_total{v=\"a\xEF\xBF\xBD" "b\"}") == 1);
	assert_true(sample(text, "t_u_total{v=\"caf\xc3\xa9\"}") == 1);
	free(text);
	tk_registry_free(r);
}

/* ---- names and duplicates --------------------------------------------- */

static void test_name_validation(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	static const char *const bad[] = { "", "1abc", "a-b", "a b", "__x", "é", "a.b", NULL };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		tk_err_clear();
		assert_null(tk_metric_counter(r, bad[i], "h", NULL, 0));
		assert_true(*tk_err_detail() != '\0');
	}
	assert_non_null(tk_metric_counter(r, "ns:sub_total", "h", NULL, 0));
	assert_non_null(tk_metric_counter(r, "_x9", "h", NULL, 0));
	assert_null(tk_metric_counter(r, "no_help_total", "", NULL, 0));
	assert_null(tk_metric_counter(r, "no_help2_total", NULL, NULL, 0));

	static const char *const bad_labels[] = { "a:b", "__x", "9a", "", "a-b" };
	for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++)
		assert_null(tk_metric_gauge(r, "t_g", "h", &bad_labels[i], 1));
	assert_null(tk_metric_gauge(r, "t_g", "h", (const char *[]){ "a", "a" }, 2));
	assert_null(tk_metric_gauge(r, "t_g", "h", NULL, 1));
	const char *nine[9] = { "a", "b", "c", "d", "e", "f", "g", "h", "i" };
	assert_null(tk_metric_gauge(r, "t_g", "h", nine, 9));
	assert_non_null(tk_metric_gauge(r, "t_g", "h", nine, 8));

	/* "le" is reserved on histograms only. */
	assert_null(tk_metric_histogram(r, "t_h", "h", (const char *[]){ "le" }, 1, NULL, 0));
	assert_non_null(tk_metric_counter(r, "t_le_total", "h", (const char *[]){ "le" }, 1));

	/* Buckets: strictly increasing, finite, at most TK_METRIC_MAX_BUCKETS. */
	assert_null(tk_metric_histogram(r, "t_h", "h", NULL, 0, (const double[]){ 1, 1 }, 2));
	assert_null(tk_metric_histogram(r, "t_h", "h", NULL, 0, (const double[]){ 2, 1 }, 2));
	assert_null(tk_metric_histogram(r, "t_h", "h", NULL, 0, (const double[]){ 1, INFINITY }, 2));
	assert_null(tk_metric_histogram(r, "t_h", "h", NULL, 0, (const double[]){ NAN }, 1));
	double many[TK_METRIC_MAX_BUCKETS + 1];
	for (size_t i = 0; i < TK_METRIC_MAX_BUCKETS + 1; i++)
		many[i] = (double)i;
	assert_null(tk_metric_histogram(r, "t_h", "h", NULL, 0, many, TK_METRIC_MAX_BUCKETS + 1));
	assert_non_null(tk_metric_histogram(r, "t_h", "h", NULL, 0, many, TK_METRIC_MAX_BUCKETS));
	tk_registry_free(r);
}

static void test_duplicate_registration(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	const char *l2[] = { "a", "b" };
	struct tk_metric *c = tk_metric_counter(r, "t_dup_total", "h", l2, 2);
	assert_non_null(c);
	assert_ptr_equal(tk_metric_counter(r, "t_dup_total", "other help", l2, 2), c);

	tk_err_clear();
	assert_null(tk_metric_gauge(r, "t_dup_total", "h", l2, 2));
	assert_non_null(strstr(tk_err_detail(), "t_dup_total"));
	assert_int_equal(tk_err_last(), TK_EEXIST);
	assert_null(tk_metric_counter(r, "t_dup_total", "h", l2, 1));
	assert_null(tk_metric_counter(r, "t_dup_total", "h", (const char *[]){ "b", "a" }, 2));

	struct tk_metric *h = tk_metric_histogram(r, "t_dh", "h", NULL, 0,
						  (const double[]){ 1, 2 }, 2);
	assert_ptr_equal(tk_metric_histogram(r, "t_dh", "h", NULL, 0,
					     (const double[]){ 1, 2 }, 2), h);
	assert_null(tk_metric_histogram(r, "t_dh", "h", NULL, 0, (const double[]){ 1, 3 }, 2));
	assert_null(tk_metric_histogram(r, "t_dh", "h", NULL, 0, NULL, 0));

	/* A histogram's _bucket/_sum/_count names are taken, in either order. */
	assert_null(tk_metric_counter(r, "t_dh_count", "h", NULL, 0));
	assert_null(tk_metric_gauge(r, "t_dh_sum", "h", NULL, 0));
	assert_non_null(tk_metric_gauge(r, "t_x_bucket", "h", NULL, 0));
	assert_null(tk_metric_histogram(r, "t_x", "h", NULL, 0, NULL, 0));
	tk_registry_free(r);
}

/* ---- exact exposition text -------------------------------------------- */

static void test_exposition_exact(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	/* Registered out of order: the output is sorted by name. */
	struct tk_metric *h = tk_metric_histogram(r, "t_wait_seconds", "Wait time.",
						  (const char *[]){ "queue" }, 1,
						  (const double[]){ 0.25, 1 }, 2);
	struct tk_metric *c = tk_metric_counter(r, "t_hits_total",
						"Hits with a \\ backslash\nand a \"newline\".",
						(const char *[]){ "path", "code" }, 2);
	struct tk_metric *g = tk_metric_gauge(r, "t_temp", "Temperature.", NULL, 0);
	struct tk_metric *empty = tk_metric_gauge(r, "t_unused", "Never used.",
						  (const char *[]){ "x" }, 1);
	assert_non_null(h);
	assert_non_null(c);
	assert_non_null(g);
	assert_non_null(empty);

	tk_counter_add(tk_metric_series(c, (const char *[]){ "/b", "200" }), 2);
	tk_counter_inc(tk_metric_series(c, (const char *[]){ "a\"q\\b\nc", "500" }));
	tk_counter_add(tk_metric_series(c, (const char *[]){ "/a", "404" }), 1.5);
	tk_gauge_set(tk_metric_solo(g), -0.5);
	struct tk_series *q2 = tk_metric_series(h, (const char *[]){ "q2" });
	struct tk_series *q1 = tk_metric_series(h, (const char *[]){ "q1" });
	tk_hist_observe(q1, 0.25);
	tk_hist_observe(q1, 0.5);
	tk_hist_observe(q1, 3);
	tk_hist_observe(q2, 0.125);

	static const char want[] =
		"# HELP t_hits_total Hits with a \\\\ backslash\\nand a \"newline\".\n"
		"# TYPE t_hits_total counter\n"
		"t_hits_total{path=\"/a\",code=\"404\"} 1.5\n"
		"t_hits_total{path=\"/b\",code=\"200\"} 2\n"
		"t_hits_total{path=\"a\\\"q\\\\b\\nc\",code=\"500\"} 1\n"
		"# HELP t_temp Temperature.\n"
		"# TYPE t_temp gauge\n"
		"t_temp -0.5\n"
		"# HELP t_wait_seconds Wait time.\n"
		"# TYPE t_wait_seconds histogram\n"
		"t_wait_seconds_bucket{queue=\"q1\",le=\"0.25\"} 1\n"
		"t_wait_seconds_bucket{queue=\"q1\",le=\"1\"} 2\n"
		"t_wait_seconds_bucket{queue=\"q1\",le=\"+Inf\"} 3\n"
		"t_wait_seconds_sum{queue=\"q1\"} 3.75\n"
		"t_wait_seconds_count{queue=\"q1\"} 3\n"
		"t_wait_seconds_bucket{queue=\"q2\",le=\"0.25\"} 1\n"
		"t_wait_seconds_bucket{queue=\"q2\",le=\"1\"} 1\n"
		"t_wait_seconds_bucket{queue=\"q2\",le=\"+Inf\"} 1\n"
		"t_wait_seconds_sum{queue=\"q2\"} 0.125\n"
		"t_wait_seconds_count{queue=\"q2\"} 1\n";
	char *text = expose(r);
	assert_string_equal(text, want);
	free(text);

	/* Exposing again gives the same text (snapshots do not disturb). */
	text = expose(r);
	assert_string_equal(text, want);
	free(text);
	tk_registry_free(r);
}

static void test_float_format(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	struct {
		const char *name;
		double v;
		const char *text;
	} cases[] = {
		{ "t_f_int", 42, "42" },
		{ "t_f_neg", -7, "-7" },
		{ "t_f_big", 9007199254740991.0, "9007199254740991" },
		{ "t_f_huge", 1e20, "1e+20" },
		{ "t_f_tenth", 0.1, "0.1" },
		{ "t_f_third", 1.0 / 3, "0.3333333333333333" },
		{ "t_f_tiny", 1e-7, "1e-07" },
		{ "t_f_pinf", INFINITY, "+Inf" },
		{ "t_f_ninf", -INFINITY, "-Inf" },
		{ "t_f_nan", NAN, "NaN" },
		{ "t_f_negzero", -0.0, "0" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		tk_gauge_set(tk_metric_solo(tk_metric_gauge(r, cases[i].name, "f", NULL, 0)),
			     cases[i].v);
	char *text = expose(r);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char line[128];
		snprintf(line, sizeof line, "\n%s %s\n", cases[i].name, cases[i].text);
		if (!strstr(text, line))
			fail_msg("want '%s %s' in:\n%s", cases[i].name, cases[i].text, text);
		/* Every finite value parses back to itself. */
		if (isfinite(cases[i].v))
			assert_true(sample(text, cases[i].name) == cases[i].v);
	}
	free(text);
	tk_registry_free(r);
}

static void test_expose_cap_leaves_buffer(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	struct tk_metric *m = tk_metric_counter(r, "t_cap_total", "c", (const char *[]){ "k" }, 1);
	char v[16];
	for (int i = 0; i < 50; i++) {
		snprintf(v, sizeof v, "%d", i);
		tk_counter_inc(tk_metric_series(m, (const char *[]){ v }));
	}
	struct tk_buf b = TK_BUF_INIT(200);
	assert_int_equal(tk_buf_puts(&b, "keep"), 0);
	assert_int_equal(tk_metrics_expose(r, &b), TK_ELIMIT);
	assert_string_equal(tk_buf_str(&b), "keep");
	tk_buf_free(&b);
	tk_registry_free(r);
}

/* ---- misuse never crashes --------------------------------------------- */

static void test_null_and_wrong_kind(void **state)
{
	(void)state;
	struct tk_series *inert = tk_metric_series(NULL, (const char *[]){ "x" });
	assert_non_null(inert);
	assert_ptr_equal(tk_metric_solo(NULL), inert);
	tk_counter_inc(inert);
	tk_counter_inc(NULL);
	tk_gauge_set(NULL, 1);
	tk_hist_observe(NULL, 1);
	tk_metric_set_max_series(NULL, 3);
	assert_true(tk_series_value(inert) == 0);
	assert_int_equal(tk_hist_count(inert), 0);

	struct tk_registry *r = tk_registry_new();
	struct tk_series *c = tk_metric_solo(tk_metric_counter(r, "t_k_total", "k", NULL, 0));
	tk_gauge_set(c, 5);        /* wrong kind: ignored */
	tk_hist_observe(c, 5);     /* ignored */
	assert_true(tk_series_value(c) == 0);
	assert_int_equal(tk_hist_count(c), 0);
	/* solo on a labelled family is the hidden overflow series */
	struct tk_metric *l = tk_metric_counter(r, "t_l_total", "l", (const char *[]){ "a" }, 1);
	tk_counter_inc(tk_metric_solo(l));
	char *text = expose(r);
	assert_false(has_sample(text, "t_l_total"));
	free(text);
	assert_int_equal(tk_metrics_expose(r, NULL), TK_EINVAL);
	tk_registry_free(r);
	tk_registry_free(NULL);
}

/* ---- collectors ------------------------------------------------------- */

static void bump_collector(struct tk_registry *r, void *arg)
{
	int *calls = arg;
	(*calls)++;
	struct tk_metric *g = tk_metric_gauge(r, "t_collected", "set by a collector", NULL, 0);
	tk_gauge_set(tk_metric_solo(g), *calls * 10);
}

static void noop_collector(struct tk_registry *r, void *arg)
{
	(void)r;
	(void)arg;
}

static void test_collectors(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	int calls = 0;
	assert_int_equal(tk_metrics_add_collector(r, bump_collector, &calls), 0);
	assert_int_equal(tk_metrics_add_collector(r, bump_collector, &calls), 0); /* same: once */
	char *text = expose(r);
	assert_int_equal(calls, 1);
	assert_true(sample(text, "t_collected") == 10);
	free(text);
	text = expose(r);
	assert_true(sample(text, "t_collected") == 20);
	free(text);

	int slots[TK_METRIC_MAX_COLLECTORS];
	for (int i = 1; i < TK_METRIC_MAX_COLLECTORS; i++)
		assert_int_equal(tk_metrics_add_collector(r, noop_collector, &slots[i]), 0);
	assert_int_equal(tk_metrics_add_collector(r, noop_collector, &slots[0]), TK_ELIMIT);
	assert_int_equal(tk_metrics_add_collector(r, NULL, NULL), TK_EINVAL);
	tk_registry_free(r);
}

/* ---- process metrics -------------------------------------------------- */

static void test_process_metrics(void **state)
{
	(void)state;
	struct tk_registry *r = tk_registry_new();
	assert_int_equal(tk_metrics_register_process(r), 0);
	assert_int_equal(tk_metrics_register_process(r), 0); /* idempotent */
	char *text = expose(r);
	double rss = sample(text, "process_resident_memory_bytes");
	double vms = sample(text, "process_virtual_memory_bytes");
	double fds = sample(text, "process_open_fds");
	double max_fds = sample(text, "process_max_fds");
	double start = sample(text, "process_start_time_seconds");
	double cpu = sample(text, "process_cpu_seconds_total");
	double now = (double)time(NULL);
	assert_true(rss > 0);
	assert_true(vms >= rss);
	assert_true(fds >= 3);
	assert_true(max_fds >= fds);
	assert_true(start > now - 3600 && start <= now + 2);
	assert_true(cpu >= 0);
	assert_int_equal(count_lines(text, "process_cpu_seconds_total "), 1);

	char bi[256];
	snprintf(bi, sizeof bi, "tanuki_build_info{version=\"%s\",commit=\"%s\"}", tk_version(),
		 tk_commit());
	assert_true(sample(text, bi) == 1);
	free(text);

	/* A name already taken with another shape makes registration fail. */
	struct tk_registry *r2 = tk_registry_new();
	assert_non_null(tk_metric_counter(r2, "process_open_fds", "wrong type", NULL, 0));
	assert_true(tk_metrics_register_process(r2) < 0);
	tk_registry_free(r2);
	tk_registry_free(r);
}

/* The Prometheus project's own parser and linter (promtool) accepts an
 * exposition with every kind of family, escaping, special floats and
 * repaired UTF-8 without a complaint; it is an independent check of the text
 * format. Skipped when promtool is not installed (the integration test
 * metrics_promtool.sh insists on it). */
static void test_promtool_accepts(void **state)
{
	(void)state;
	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		skip();
		return;
	}
	struct tk_registry *r = tk_registry_new();
	struct tk_metric *c = tk_metric_counter(r, "t_ok_total", "Tricky \\ help\nline.",
						(const char *[]){ "path", "code" }, 2);
	tk_counter_add(tk_metric_series(c, (const char *[]){ "a\"q\\b\nc", "500" }), 2.5);
	tk_counter_inc(tk_metric_series(c, (const char *[]){ "bad\xff utf8", "200" }));
	tk_counter_inc(tk_metric_series(c, (const char *[]){ "", "" }));
	struct tk_metric *g = tk_metric_gauge(r, "t_ok_values", "Special values.",
					      (const char *[]){ "k" }, 1);
	const double vals[] = { NAN, INFINITY, -INFINITY, 1e300, -1e-300, 0.1, 42 };
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		char k[8];
		snprintf(k, sizeof k, "%zu", i);
		tk_gauge_set(tk_metric_series(g, (const char *[]){ k }), vals[i]);
	}
	struct tk_metric *h = tk_metric_histogram(r, "t_ok_seconds", "Latency.",
						  (const char *[]){ "op" }, 1,
						  (const double[]){ 1e-6, 0.1, 1, 1e6 }, 4);
	for (int i = 0; i < 20; i++)
		tk_hist_observe(tk_metric_series(h, (const char *[]){ i % 2 ? "x" : "y" }),
				i * 0.37);
	tk_metric_set_max_series(g, 7);
	tk_gauge_set(tk_metric_series(g, (const char *[]){ "overflowing" }), 1);
	assert_int_equal(tk_metrics_register_process(r), 0);

	char dir[256], path[512], cmd[1200];
	tk_test_mkdtemp(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/expo.txt", dir);
	char *text = expose(r);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s/out' 2>&1", path, dir);
	int st = system(cmd);
	snprintf(path, sizeof path, "%s/out", dir);
	char *out = tk_test_read_file(path, NULL);
	if (st != 0 || *out)
		fail_msg("promtool (status %d) said:\n%s\non:\n%s", st, out, text);
	free(out);
	free(text);
	tk_test_rmtree(dir);
	tk_registry_free(r);
}

static void test_default_registry(void **state)
{
	(void)state;
	struct tk_registry *d = tk_registry_default();
	assert_non_null(d);
	assert_ptr_equal(tk_registry_default(), d);
	struct tk_metric *m = tk_metric_counter(NULL, "t_default_total", "d", NULL, 0);
	assert_ptr_equal(tk_metric_counter(d, "t_default_total", "d", NULL, 0), m);
	tk_counter_inc(tk_metric_solo(m));
	char *text = expose(NULL);
	assert_true(sample(text, "t_default_total") == 1);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_threads_exact),
		cmocka_unit_test(test_counter_add),
		cmocka_unit_test(test_gauge),
		cmocka_unit_test(test_histogram_buckets),
		cmocka_unit_test(test_histogram_default_buckets),
		cmocka_unit_test(test_histogram_consistent_under_load),
		cmocka_unit_test(test_label_cap_overflow),
		cmocka_unit_test(test_label_cap_default_and_bad_values),
		cmocka_unit_test(test_overflow_counter_bounded),
		cmocka_unit_test(test_utf8_repair),
		cmocka_unit_test(test_name_validation),
		cmocka_unit_test(test_duplicate_registration),
		cmocka_unit_test(test_exposition_exact),
		cmocka_unit_test(test_float_format),
		cmocka_unit_test(test_expose_cap_leaves_buffer),
		cmocka_unit_test(test_null_and_wrong_kind),
		cmocka_unit_test(test_collectors),
		cmocka_unit_test(test_process_metrics),
		cmocka_unit_test(test_promtool_accepts),
		cmocka_unit_test(test_default_registry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
