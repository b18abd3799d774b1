/*
 * bench_metrics.c — cost of metric updates: ns per tk_counter_inc on one
 * series from 1 thread and from 2 threads contending for it, plus the
 * fractional tk_counter_add (CAS loop), tk_hist_observe and an uncached
 * tk_metric_series lookup. Prints numbers; asserts only that the counts
 * came out exact.
 *
 *   bench_metrics [iterations per thread, default 20000000]
 */
#include "core/time.h"
#include "obs/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

enum op { OP_INC, OP_ADD_FRAC, OP_OBSERVE, OP_LOOKUP };

struct job {
	enum op op;
	struct tk_metric *fam;
	struct tk_series *s;
	long iters;
};

static void *run_job(void *p)
{
	struct job *j = p;
	switch (j->op) {
	case OP_INC:
		for (long i = 0; i < j->iters; i++)
			tk_counter_inc(j->s);
		break;
	case OP_ADD_FRAC:
		for (long i = 0; i < j->iters; i++)
			tk_counter_add(j->s, 0.5);
		break;
	case OP_OBSERVE:
		for (long i = 0; i < j->iters; i++)
			tk_hist_observe(j->s, (double)(i & 1023) * 0.001);
		break;
	case OP_LOOKUP:
		for (long i = 0; i < j->iters; i++)
			tk_counter_inc(tk_metric_series(j->fam, (const char *[]){ "/run_task", "200" }));
		break;
	}
	return NULL;
}

/* Runs op on n_threads threads at once; returns wall ns per operation per
 * thread (what one caller pays). */
static double measure(enum op op, struct tk_metric *fam, struct tk_series *s, int n_threads,
		      long iters)
{
	pthread_t th[8];
	struct job jobs[8];
	int64_t t0 = tk_time_mono_ns();
	for (int i = 0; i < n_threads; i++) {
		jobs[i] = (struct job){ op, fam, s, iters };
		if (pthread_create(&th[i], NULL, run_job, &jobs[i])) {
			perror("pthread_create");
			exit(1);
		}
	}
	for (int i = 0; i < n_threads; i++)
		pthread_join(th[i], NULL);
	return (double)(tk_time_mono_ns() - t0) / (double)iters;
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 20000000;
	if (iters <= 0) {
		fprintf(stderr, "usage: bench_metrics [iterations>0]\n");
		return 2;
	}
	struct tk_registry *r = tk_registry_new();
	struct tk_metric *c = tk_metric_counter(r, "b_total", "bench", NULL, 0);
	struct tk_metric *cl = tk_metric_counter(r, "b_l_total", "bench",
						 (const char *[]){ "route", "code" }, 2);
	struct tk_metric *h = tk_metric_histogram(r, "b_seconds", "bench", NULL, 0, NULL, 0);
	if (!c || !cl || !h) {
		fprintf(stderr, "bench_metrics: registration failed\n");
		return 1;
	}
	struct tk_series *cs = tk_metric_solo(c);

	printf("iterations per thread: %ld\n", iters);
	printf("counter_inc, 1 thread:            %6.2f ns/op\n", measure(OP_INC, c, cs, 1, iters));
	printf("counter_inc, 2 threads contending: %6.2f ns/op\n", measure(OP_INC, c, cs, 2, iters));
	double want = 3.0 * (double)iters;
	if (tk_series_value(cs) != want) {
		fprintf(stderr, "bench_metrics: counter is %.0f, want %.0f\n", tk_series_value(cs), want);
		return 1;
	}
	struct tk_series *fs = tk_metric_solo(tk_metric_counter(r, "b_f_total", "bench", NULL, 0));
	printf("counter_add(0.5), 1 thread:       %6.2f ns/op\n", measure(OP_ADD_FRAC, c, fs, 1, iters));
	printf("counter_add(0.5), 2 threads:      %6.2f ns/op\n", measure(OP_ADD_FRAC, c, fs, 2, iters));
	struct tk_series *hs = tk_metric_solo(h);
	printf("hist_observe, 1 thread:           %6.2f ns/op\n", measure(OP_OBSERVE, h, hs, 1, iters));
	printf("hist_observe, 2 threads:          %6.2f ns/op\n", measure(OP_OBSERVE, h, hs, 2, iters));
	long look = iters / 10 ? iters / 10 : 1;
	printf("series lookup + inc, 1 thread:    %6.2f ns/op\n", measure(OP_LOOKUP, cl, NULL, 1, look));
	printf("series lookup + inc, 2 threads:   %6.2f ns/op\n", measure(OP_LOOKUP, cl, NULL, 2, look));
	tk_registry_free(r);
	return 0;
}
