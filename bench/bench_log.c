/* bench_log.c — cost of a log call: below the level, a typical line, a line
 * with registered secrets, an escaping-heavy line, and several threads
 * writing at once. Lines go to /dev/null (or argv[1]) so the numbers are the
 * logger's own work plus one write(2). Prints numbers; never fails on time. */
#include "core/time.h"
#include "obs/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long iters = 200000;
static char heavy[1024];

static void typical(long i)
{
	tk_logf(TK_LOG_INFO, "bench",
		TK_FIELDS(TK_LF_S("route", "/run_task"), TK_LF_I("status", 200),
			  TK_LF_D("duration_s", 0.0123), TK_LF_I("i", i)),
		"request finished in %d ms", 12);
}

static void below(long i)
{
	tk_logf(TK_LOG_DEBUG, "bench", TK_FIELDS(TK_LF_I("i", i)), "not written %ld", i);
}

static void escaping(long i)
{
	(void)i;
	tk_log(TK_LOG_INFO, "bench", "%s", heavy);
}

static double run(void (*fn)(long), long n)
{
	int64_t t0 = tk_time_mono_ns();
	for (long i = 0; i < n; i++)
		fn(i);
	return (double)(tk_time_mono_ns() - t0) / (double)n;
}

static void *thread_main(void *arg)
{
	double *out = arg;
	*out = run(typical, iters);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "/dev/null";
	if (argc > 2)
		iters = atol(argv[2]);
	if (tk_log_init(path, TK_LOG_INFO) != 0) {
		fprintf(stderr, "bench_log: cannot open %s\n", path);
		return 1;
	}
	/* Mixed text: ASCII, escapes, multi-byte UTF-8, one invalid byte. */
	for (size_t i = 0; i + 8 < sizeof heavy; i += 8)
		memcpy(heavy + i, "a\"\n\xC3\xA9\x01\xE2\x82", 8);
	heavy[sizeof heavy - 1] = '\0';

	printf("bench_log: %ld iterations, output %s\n", iters, path);
	printf("%-44s %10.1f ns/call\n", "below level (debug at info)", run(below, iters * 10));
	printf("%-44s %10.1f ns/line\n", "typical line, 4 fields, no secrets", run(typical, iters));
	char s[64];
	for (int k = 0; k < 10; k++) {
		snprintf(s, sizeof s, "sk-bench-secret-%02d-abcdef", k);
		tk_log_add_secret(s);
	}
	printf("%-44s %10.1f ns/line\n", "typical line, 10 secrets registered", run(typical, iters));
	printf("%-44s %10.1f ns/line\n", "1 KiB message needing escapes", run(escaping, iters / 4));
	for (int nt = 2; nt <= 4; nt *= 2) {
		pthread_t th[4];
		double per[4];
		int64_t t0 = tk_time_mono_ns();
		for (int k = 0; k < nt; k++)
			pthread_create(&th[k], NULL, thread_main, &per[k]);
		for (int k = 0; k < nt; k++)
			pthread_join(th[k], NULL);
		double total = (double)(tk_time_mono_ns() - t0);
		printf("%d threads, typical line: %10.1f ns/line per thread, %.0f lines/s in all\n",
		       nt, per[0], (double)nt * (double)iters / (total / 1e9));
	}
	tk_log_shutdown();
	return 0;
}
