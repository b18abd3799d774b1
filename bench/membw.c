/*
 * membw.c — read bandwidth of this machine (STREAM-like; src/cli/cli_membw.h
 * has the method). The same probe runs inside `tanuki bench --membw`, where
 * it gives the decode roofline.
 *
 *   membw [MIB] [THREADS] [REPS]     defaults: 4x LLC (>= 256 MiB), all CPUs, 5
 *
 * Prints one line: best and mean GB/s (1e9 bytes/s). Never fails on speed.
 */
#include "cli/cli_membw.h"

#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>

static long arg_or(int argc, char **argv, int i, long dflt, long min, long max)
{
	if (argc <= i)
		return dflt;
	char *end;
	long v = strtol(argv[i], &end, 10);
	if (end == argv[i] || *end || v < min || v > max) {
		fprintf(stderr, "membw: argument %d: expected %ld..%ld, got '%s'\n", i, min, max,
			argv[i]);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	struct membw_opts o = { 0 };
	o.bytes = (size_t)arg_or(argc, argv, 1, 0, 1, 1L << 20) << 20;
	o.threads = (int)arg_or(argc, argv, 2, 0, 1, MEMBW_MAX_THREADS);
	o.reps = (int)arg_or(argc, argv, 3, 5, 1, 1000);
	struct membw_result r;
	if (membw_measure(&o, &r)) {
		fprintf(stderr, "membw: %s\n", tk_err_detail());
		return 1;
	}
	printf("membw: %zu MiB, %d threads, %d reps: best %.2f GB/s, mean %.2f GB/s "
	       "(checksum %llx)\n", r.bytes >> 20, r.threads, r.reps, r.best_gbps, r.mean_gbps,
	       (unsigned long long)r.checksum);
	return 0;
}
