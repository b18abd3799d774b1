/*
 * cli_membw.h — a STREAM-like read-bandwidth probe: how many bytes per
 * second the machine's cores together can read from memory when they try as
 * hard as a decode kernel may. It is the ceiling of single-sequence decode
 * (every weight is read once per token), used by `tanuki bench --membw` and
 * bench/membw.c for the roofline.
 *
 * Method (MEMBW_STREAMS, the default): one buffer several times the size of
 * the last-level cache, filled once (each thread touches its own slice
 * first, so pages land near the thread that reads them; huge pages advised).
 * For each repetition all threads start at a barrier; each splits its slice
 * into `streams` regions and reads them interleaved — 256 bytes of each
 * region per step, with the widest vector loads the CPU has (AVX-512, AVX2,
 * SSE2), each region's bytes prefetched `prefetch_bytes` ahead — summing the
 * bytes as 64-bit words. The time is from the first thread's start to the
 * last thread's end, by the threads' own clocks (the caller's thread
 * waits at the barriers but takes no time: with as many threads as CPUs it
 * is one too many when the barrier opens, and a window it timed could miss
 * part of the pass; that made readings of 50 to 20000 GB/s on the 2-CPU
 * VM, docs/benchmarks.md "Paired roofline"). Several streams and software prefetch keep more cache-line misses in
 * flight per core than one sequential stream left to the hardware
 * prefetcher; on the 2-core development VM that is the difference between
 * ~15 GB/s (MEMBW_PLAIN, the probe's first method) and the ~30-40 GB/s the
 * memory delivers (docs/benchmarks.md, "Read bandwidth probe"). The best
 * repetition is the ceiling (as STREAM reports); the mean is the sustained
 * figure.
 *
 * MEMBW_PLAIN is the earlier method, kept for comparison: one sequential
 * stream per thread, 32-byte vector adds, no software prefetch, no huge-page
 * advice. It underestimates: decode kernels that prefetch beat it.
 *
 * Probe kept between measurements (struct membw_probe): the buffer is mapped
 * and filled once, by workers that stay parked (blocked at a barrier, no
 * CPU) between runs; membw_probe_run then times any number of passes over
 * the same bytes. `tanuki bench --membw` uses it to bracket every timed tg
 * repetition with a short probe, so decode is compared with the bandwidth
 * of the same minute (this VM's read bandwidth moves by a third or more
 * within minutes); membw_pair_reps is that arithmetic, kept pure so it can
 * be tested.
 *
 * Threads: every function may be called from any thread; membw_measure
 * runs its own worker threads and shares nothing between calls. One
 * membw_probe is used by one thread at a time (its owner's).
 */
#ifndef TK_CLI_MEMBW_H
#define TK_CLI_MEMBW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEMBW_MAX_THREADS 256
#define MEMBW_MIN_BYTES (1u << 20)
#define MEMBW_MAX_STREAMS 16
/* MEMBW_STREAMS' defaults: 8 regions per thread read more than 4 on the
 * 2-core VM (means of 5-pass runs +6-20% in three interleaved sweeps,
 * docs/benchmarks.md "Bandwidth probe: 8 streams"); 12 and 16 no more. */
#define MEMBW_DEFAULT_STREAMS 8
#define MEMBW_DEFAULT_PREFETCH 4096
#define MEMBW_MAX_PREFETCH_BYTES (64 * 1024)
#define MEMBW_MAX_REPS 1000

enum membw_method {
	MEMBW_STREAMS = 0, /* several prefetched streams per thread (default) */
	MEMBW_PLAIN = 1,   /* one stream per thread, hardware prefetch only */
};

struct membw_opts {
	size_t bytes;       /* buffer size; 0: membw_default_bytes(); at most
			     * half the physical memory */
	int threads;        /* 1..MEMBW_MAX_THREADS; 0: the online CPUs */
	int reps;           /* timed repetitions, 1..MEMBW_MAX_REPS; 0: 10 */
	enum membw_method method;
	int streams;        /* MEMBW_STREAMS: regions per thread,
			     * 1..MEMBW_MAX_STREAMS; 0: MEMBW_DEFAULT_STREAMS */
	int prefetch_bytes; /* MEMBW_STREAMS: prefetch distance, a multiple of
			     * 64 up to MEMBW_MAX_PREFETCH_BYTES; 0: MEMBW_DEFAULT_PREFETCH;
			     * -1: no software prefetch */
	bool no_hugepages;  /* MEMBW_STREAMS: do not advise huge pages */
};

struct membw_result {
	double best_gbps;   /* 1e9 bytes per second, best repetition */
	double mean_gbps;   /* mean over the repetitions */
	size_t bytes;       /* buffer size used (whole 4 KiB pages) */
	int threads;
	int reps;
	enum membw_method method;
	int streams;        /* as used (1 for MEMBW_PLAIN) */
	int prefetch_bytes; /* as used; 0: none */
	bool hugepages;     /* huge pages were advised (MADV_HUGEPAGE took) */
	const char *isa;    /* the loads used: "avx512", "avx2", "sse2",
			     * "generic"; a static string */
	uint64_t checksum;  /* the sums of every repetition (wrapping), so the
			     * reads cannot be optimized away */
};

/* 4x the last-level cache (sysfs), at least 256 MiB, at most 2 GiB and at
 * most a quarter of the physical memory; whole 4 KiB pages. */
size_t membw_default_bytes(void);

/* The buffer for the roofline of a decode that reads working_set bytes per
 * token: that many (so that the probe finds as much of its buffer in the
 * last-level cache as decode finds of the weights — a larger buffer would
 * find less and could be beaten by decode), at least 256 MiB, at most
 * 2 GiB (a smaller buffer than the working set only raises the ceiling)
 * and a quarter of the physical memory; whole 4 KiB pages. */
size_t membw_bytes_for(double working_set);

/* "streams" or "plain" -> *out; 0, or TK_EINVAL naming the text. s is
 * borrowed. */
int membw_method_parse(const char *s, enum membw_method *out);

/* The method's name ("streams", "plain"); a static string. */
const char *membw_method_name(enum membw_method m);

/* The sum of the little-endian 64-bit words of [p, p + len) (wrapping; a
 * trailing partial word counts zero-padded), read the way MEMBW_STREAMS
 * reads a thread's slice: `streams` regions (1..MEMBW_MAX_STREAMS)
 * interleaved, prefetched prefetch_bytes ahead (0: none; never past
 * p + len). The sum does not depend on streams, prefetch_bytes or the ISA
 * used. p is borrowed, any alignment. */
uint64_t membw_sum(const void *p, size_t len, int streams, int prefetch_bytes);

/* Measures; 0 with *out filled, or TK_EINVAL (bad options: fewer than
 * MEMBW_MIN_BYTES or more than half the physical memory, a count or
 * distance out of range), TK_ENOMEM or TK_EIO (a thread could not start).
 * o is borrowed. Same as membw_probe_new + membw_probe_run(o->reps) +
 * membw_probe_free. */
int membw_measure(const struct membw_opts *o, struct membw_result *out);

/* ---- a probe kept between measurements -------------------------------- */

struct membw_probe;

/* Maps the buffer, starts o->threads workers and has them fill it (first
 * touch, as membw_measure does); nothing is timed yet. o->reps is the
 * default pass count of membw_probe_run. NULL with the detail set on the
 * errors of membw_measure. o is borrowed. The probe holds its buffer
 * (o->bytes) and its parked threads until membw_probe_free. */
struct membw_probe *membw_probe_new(const struct membw_opts *o);

/* Times `passes` passes over the whole buffer (1..MEMBW_MAX_REPS; 0: the
 * reps given to membw_probe_new), each from the first worker's start to
 * the last one's end, and fills *out as membw_measure does (reps = passes;
 * the checksum covers this call's passes only). pass_gbps, if not NULL,
 * gets each pass's GB/s in order (room for `passes` entries, or for the
 * default reps when passes is 0). *wall_ms, if not NULL, gets the call's
 * whole duration (waking the workers, every pass, parking them): the
 * probe's cost to whatever it interleaves with. 0, or TK_EINVAL (passes
 * out of range; *out zeroed). p is borrowed. */
int membw_probe_run(struct membw_probe *p, int passes, struct membw_result *out,
		    double *pass_gbps, double *wall_ms);

/* Stops the workers and unmaps the buffer. Accepts NULL. */
void membw_probe_free(struct membw_probe *p);

/* ---- pairing decode with the probes around it -------------------------- */

/* One timed decode repetition against the probes run just before and just
 * after it. */
struct membw_pair {
	double before_gbps;  /* probe i (just before repetition i) */
	double after_gbps;   /* probe i + 1 (just after it) */
	double ceiling_gbps; /* (before + after) / 2 */
	double decode_gbps;  /* the bytes per second repetition i read */
	double pct;          /* 100 * decode_gbps / ceiling_gbps */
};

struct membw_pair_stats {
	double pct_mean, pct_min, pct_max; /* over the repetitions */
	double ceiling_min, ceiling_max;   /* GB/s */
};

/* Pairs n_reps decode figures with n_reps + 1 probe figures taken in
 * turn (probe 0, repetition 0, probe 1, ..., repetition n-1, probe n):
 * repetition i gets the mean of probes i and i + 1 as its ceiling.
 * probe_gbps[0..n_reps] and decode_gbps[0..n_reps) are borrowed; pairs
 * (n_reps entries) and st are filled. 0, or TK_EINVAL naming the entry:
 * n_reps < 1, a probe figure not finite or <= 0, a decode figure not
 * finite or < 0 (pairs and st then untouched). Pure: no I/O, no state. */
int membw_pair_reps(const double *probe_gbps, const double *decode_gbps, int n_reps,
		    struct membw_pair *pairs, struct membw_pair_stats *st);

#endif
