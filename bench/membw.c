/*
 * membw.c — read bandwidth of this machine (STREAM-like; src/cli/cli_membw.h
 * has the method). The same probe runs inside `tanuki bench --membw`, where
 * it gives the decode roofline.
 *
 *   membw [options] [MIB] [THREADS] [REPS]
 *     defaults: 4x LLC (>= 256 MiB, <= 2 GiB), all CPUs, 10 reps
 *   --method streams|plain   the probe's method [streams]
 *   --streams K              regions read at once per thread [8]
 *   --prefetch BYTES         software prefetch distance, -1: none [4096]
 *   --no-hugepages           do not advise huge pages
 *   --compare [ROUNDS]       instead of one configuration, the methods and
 *                            their ingredients one after another, ROUNDS
 *                            times round [3] (interleaved, so that each sees
 *                            the same machine state), one line each with the
 *                            best and the mean over all its rounds
 *
 * Prints one line per configuration: best and mean GB/s (1e9 bytes/s).
 * Never fails on speed.
 */
#include "cli/cli_membw.h"

#include "core/err.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static long num_or_die(const char *what, const char *s, long min, long max)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (end == s || *end || v < min || v > max) {
		fprintf(stderr, "membw: %s: expected %ld..%ld, got '%s'\n", what, min, max, s);
		exit(2);
	}
	return v;
}

/* --compare: what each ingredient adds, from the plain method up. */
struct variant {
	const char *name;
	struct membw_opts o;
};

static const struct variant variants[] = {
	{ "plain (1 stream, hw prefetch)", { .method = MEMBW_PLAIN } },
	{ "wide loads, 1 stream", { .streams = 1, .prefetch_bytes = -1, .no_hugepages = true } },
	{ "wide, 1 stream, pf 4K", { .streams = 1, .prefetch_bytes = 4096, .no_hugepages = true } },
	{ "wide, 4 streams", { .streams = 4, .prefetch_bytes = -1, .no_hugepages = true } },
	{ "wide, 4 streams, pf 4K", { .streams = 4, .prefetch_bytes = 4096, .no_hugepages = true } },
	{ "wide, 2 streams, pf 4K, huge", { .streams = 2, .prefetch_bytes = 4096 } },
	{ "wide, 4 streams, pf 2K, huge", { .streams = 4, .prefetch_bytes = 2048 } },
	{ "wide, 4 streams, pf 4K, huge", { .streams = 4, .prefetch_bytes = 4096 } },
	{ "wide, 4 streams, pf 8K, huge", { .streams = 4, .prefetch_bytes = 8192 } },
	{ "wide, 8 streams, pf 4K, huge (default)", { .streams = 8, .prefetch_bytes = 4096 } },
	{ "wide, 8 streams, pf 8K, huge", { .streams = 8, .prefetch_bytes = 8192 } },
	{ "wide, 16 streams, pf 4K, huge", { .streams = 16, .prefetch_bytes = 4096 } },
};
#define N_VARIANTS (sizeof variants / sizeof variants[0])

static void print_result(const char *name, const struct membw_result *r, double best,
			 double mean)
{
	printf("membw: %-30s %zu MiB, %d threads, %s, %d stream%s, prefetch %d, huge pages %s: "
	       "best %.2f GB/s, mean %.2f GB/s (checksum %llx)\n", name, r->bytes >> 20,
	       r->threads, r->isa, r->streams, r->streams == 1 ? "" : "s", r->prefetch_bytes,
	       r->hugepages ? "advised" : "no", best, mean, (unsigned long long)r->checksum);
}

static int compare(const struct membw_opts *base, int rounds)
{
	double best[N_VARIANTS] = { 0 }, sum[N_VARIANTS] = { 0 };
	struct membw_result last[N_VARIANTS];
	for (int k = 0; k < rounds; k++) {
		for (size_t v = 0; v < N_VARIANTS; v++) {
			struct membw_opts o = variants[v].o;
			o.bytes = base->bytes;
			o.threads = base->threads;
			o.reps = base->reps;
			if (membw_measure(&o, &last[v])) {
				fprintf(stderr, "membw: %s: %s\n", variants[v].name, tk_err_detail());
				return 1;
			}
			sum[v] += last[v].mean_gbps;
			if (last[v].best_gbps > best[v])
				best[v] = last[v].best_gbps;
		}
	}
	for (size_t v = 0; v < N_VARIANTS; v++)
		print_result(variants[v].name, &last[v], best[v], sum[v] / rounds);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "method", required_argument, NULL, 'm' },
		{ "streams", required_argument, NULL, 's' },
		{ "prefetch", required_argument, NULL, 'p' },
		{ "no-hugepages", no_argument, NULL, 'H' },
		{ "compare", optional_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct membw_opts o = { 0 };
	int rounds = 0, c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (membw_method_parse(optarg, &o.method)) {
				fprintf(stderr, "%s\n", tk_err_detail());
				return 2;
			}
			break;
		case 's': o.streams = (int)num_or_die("--streams", optarg, 1, MEMBW_MAX_STREAMS); break;
		case 'p':
			o.prefetch_bytes = (int)num_or_die("--prefetch", optarg, -1,
							   MEMBW_MAX_PREFETCH_BYTES);
			break;
		case 'H': o.no_hugepages = true; break;
		case 'c': rounds = optarg ? (int)num_or_die("--compare", optarg, 1, 100) : 3; break;
		case 'h':
			puts("usage: membw [--method streams|plain] [--streams K] [--prefetch BYTES]\n"
			     "             [--no-hugepages] [--compare [ROUNDS]] [MIB] [THREADS] [REPS]");
			return 0;
		default: return 2;
		}
	}
	const char *pos[3] = { NULL, NULL, NULL };
	for (int i = 0; optind < argc; i++, optind++) {
		if (i == 3) {
			fprintf(stderr, "membw: unexpected argument '%s'\n", argv[optind]);
			return 2;
		}
		pos[i] = argv[optind];
	}
	if (pos[0])
		o.bytes = (size_t)num_or_die("MIB", pos[0], 1, 1L << 20) << 20;
	if (pos[1])
		o.threads = (int)num_or_die("THREADS", pos[1], 1, MEMBW_MAX_THREADS);
	if (pos[2])
		o.reps = (int)num_or_die("REPS", pos[2], 1, MEMBW_MAX_REPS);
	if (rounds)
		return compare(&o, rounds);
	struct membw_result r;
	if (membw_measure(&o, &r)) {
		fprintf(stderr, "membw: %s\n", tk_err_detail());
		return 1;
	}
	print_result(membw_method_name(r.method), &r, r.best_gbps, r.mean_gbps);
	return 0;
}
