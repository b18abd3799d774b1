/*
 * test_membw.c — the read-bandwidth probe (src/cli/cli_membw.h): every
 * summing kernel this CPU can run (generic, AVX2, AVX-512; 1..8 streams,
 * with and without prefetch, odd lengths and alignments) gives the plain
 * word sum; the sum moves when any one byte changes; a measurement's
 * checksum is the repetitions times the sum of the bytes the probe wrote
 * (for both methods, so the reads really happen); option checking and the
 * method names; the kept probe (membw_probe: several runs over one filled
 * buffer, each run's checksum its own passes, the pass figures behind best
 * and mean); the pairing of decode repetitions with the probes around them
 * (membw_pair_reps). No timing is asserted: speeds are only checked to be
 * > 0.
 *
 * The probe lives with the CLI, which is not a library; the test compiles
 * it in (its static kernels are tested directly).
 */
#include "testutil.h"

#include "cli/cli_membw.c"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the reference: little-endian words one byte at a time */
static uint64_t ref_sum(const unsigned char *p, size_t len)
{
	uint64_t s = 0;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = 0;
		for (size_t b = 0; b < 8 && i + b < len; b++)
			w |= (uint64_t)p[i + b] << (8 * b);
		s += w;
	}
	return s;
}

static unsigned char *random_bytes(size_t n, uint64_t seed)
{
	unsigned char *p = malloc(n);
	assert_non_null(p);
	uint64_t x = seed;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)(x >> 24);
	}
	return p;
}

/* one kernel through sum_streams, as a thread's slice is read */
static void check_kernel(membw_kernel_fn fn, const char *name)
{
	const size_t n = 64 * 1024 + 333;
	unsigned char *buf = random_bytes(n + 64, 0x1234567u);
	const size_t lens[] = { 0, 1, 7, 8, 255, 256, 257, 1024, 4096 + 24, 16 * 1024 - 1, n };
	const size_t offs[] = { 0, 1, 13, 64 };
	const int streams[] = { 1, 2, 3, 4, 8 };
	const size_t pfs[] = { 0, 64, 256, 4096, 65536 };
	for (size_t a = 0; a < sizeof lens / sizeof lens[0]; a++)
		for (size_t b = 0; b < sizeof offs / sizeof offs[0]; b++) {
			const unsigned char *p = buf + offs[b];
			uint64_t want = ref_sum(p, lens[a]);
			for (size_t c = 0; c < sizeof streams / sizeof streams[0]; c++)
				for (size_t d = 0; d < sizeof pfs / sizeof pfs[0]; d++) {
					uint64_t got = sum_streams(fn, p, lens[a], streams[c], pfs[d]);
					if (got != want)
						fail_msg("%s: len %zu off %zu streams %d pf %zu: %llx != %llx",
							 name, lens[a], offs[b], streams[c], pfs[d],
							 (unsigned long long)got,
							 (unsigned long long)want);
				}
			assert_true(sum_plain(p, lens[a]) == want);
		}
	free(buf);
}

static void test_kernels_equal_reference(void **state)
{
	(void)state;
	check_kernel(streams_generic, "generic");
#ifdef MEMBW_X86
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2"))
		check_kernel(streams_avx2, "avx2");
	else
		printf("(no AVX2 here: that kernel untested)\n");
	if (__builtin_cpu_supports("avx512f"))
		check_kernel(streams_avx512, "avx512");
	else
		printf("(no AVX-512 here: that kernel untested)\n");
#endif
}

/* the public entry point: any one byte changed moves the sum by exactly
 * that byte's weight in its word */
static void test_sum_depends_on_every_byte(void **state)
{
	(void)state;
	const size_t n = 3 * 4096 + 40;
	unsigned char *p = random_bytes(n, 99);
	uint64_t base = membw_sum(p, n, 4, 512);
	assert_true(base == ref_sum(p, n));
	const size_t at[] = { 0, 1, 255, 256, 3000, 4096 * 2 + 7, n - 41, n - 1 };
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		unsigned char old = p[at[i]];
		p[at[i]] = (unsigned char)(old + 1);
		uint64_t delta = (uint64_t)1 << (8 * (at[i] % 8));
		if (old == 0xff) /* the byte wraps to 0: no carry into the next */
			delta = (uint64_t)0 - ((uint64_t)0xff << (8 * (at[i] % 8)));
		uint64_t got = membw_sum(p, n, 4, 512);
		assert_true(got != base);
		assert_true(got - base == delta);
		p[at[i]] = old;
	}
	assert_true(membw_sum(p, n, 4, 512) == base);
	/* out-of-range stream counts are clamped, not trusted */
	assert_true(membw_sum(p, n, 0, 0) == base);
	assert_true(membw_sum(p, n, 99, 0) == base);
	free(p);
}

/* what the probe writes: word j holds (j + 1) * MEMBW_FILL_MUL */
static uint64_t fill_sum(size_t bytes)
{
	uint64_t s = 0;
	for (uint64_t j = 0; j < bytes / 8; j++)
		s += (j + 1) * 0x9e3779b97f4a7c15ull;
	return s;
}

static void test_measure_checksum(void **state)
{
	(void)state;
	const size_t bytes = (2u << 20) + 3 * 4096 + 100; /* rounded down to pages */
	const size_t used = (2u << 20) + 3 * 4096;
	struct membw_opts cases[] = {
		{ .bytes = bytes, .threads = 2, .reps = 3 },
		{ .bytes = bytes, .threads = 3, .reps = 2, .streams = 3, .prefetch_bytes = 512 },
		{ .bytes = bytes, .threads = 1, .reps = 1, .streams = 1, .prefetch_bytes = -1,
		  .no_hugepages = true },
		{ .bytes = bytes, .threads = 2, .reps = 2, .method = MEMBW_PLAIN },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct membw_result r;
		assert_int_equal(membw_measure(&cases[i], &r), 0);
		assert_int_equal(r.bytes, used);
		assert_int_equal(r.threads, cases[i].threads);
		assert_int_equal(r.reps, cases[i].reps);
		assert_int_equal(r.method, cases[i].method);
		assert_true(r.checksum == (uint64_t)r.reps * fill_sum(used));
		assert_true(r.best_gbps > 0 && r.mean_gbps > 0 && r.best_gbps >= r.mean_gbps);
		assert_non_null(r.isa);
	}
	struct membw_result r;
	assert_int_equal(membw_measure(&cases[0], &r), 0);
	assert_int_equal(r.streams, MEMBW_DEFAULT_STREAMS); /* the defaults */
	assert_int_equal(r.prefetch_bytes, MEMBW_DEFAULT_PREFETCH);
	assert_int_equal(membw_measure(&cases[1], &r), 0);
	assert_int_equal(r.streams, 3);
	assert_int_equal(r.prefetch_bytes, 512);
	assert_int_equal(membw_measure(&cases[2], &r), 0);
	assert_int_equal(r.prefetch_bytes, 0);
	assert_false(r.hugepages);
	assert_int_equal(membw_measure(&cases[3], &r), 0);
	assert_int_equal(r.streams, 1);
	assert_int_equal(r.prefetch_bytes, 0);
	assert_false(r.hugepages);
	assert_string_equal(r.isa, "generic");
}

static void test_bad_options(void **state)
{
	(void)state;
	const size_t mib = 1u << 20;
	const struct membw_opts bad[] = {
		{ .bytes = mib - 4096 },
		{ .bytes = SIZE_MAX / 2 },
		{ .bytes = mib, .threads = -1 },
		{ .bytes = mib, .threads = MEMBW_MAX_THREADS + 1 },
		{ .bytes = mib, .reps = -1 },
		{ .bytes = mib, .reps = MEMBW_MAX_REPS + 1 },
		{ .bytes = mib, .streams = -1 },
		{ .bytes = mib, .streams = MEMBW_MAX_STREAMS + 1 },
		{ .bytes = mib, .prefetch_bytes = -2 },
		{ .bytes = mib, .prefetch_bytes = 100 },
		{ .bytes = mib, .prefetch_bytes = MEMBW_MAX_PREFETCH_BYTES + 64 },
		{ .bytes = mib, .method = (enum membw_method)7 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct membw_result r;
		memset(&r, 0x5a, sizeof r);
		tk_err_clear();
		if (membw_measure(&bad[i], &r) != TK_EINVAL)
			fail_msg("case %zu accepted", i);
		assert_true(strstr(tk_err_detail(), "membw") != NULL);
		assert_true(r.checksum == 0 && r.bytes == 0);
	}
}

static void test_method_names(void **state)
{
	(void)state;
	enum membw_method m = MEMBW_PLAIN;
	assert_int_equal(membw_method_parse("streams", &m), 0);
	assert_int_equal(m, MEMBW_STREAMS);
	assert_int_equal(membw_method_parse("plain", &m), 0);
	assert_int_equal(m, MEMBW_PLAIN);
	const char *bad[] = { "", "Plain", "streams ", "stream", "fast" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		m = MEMBW_PLAIN;
		assert_int_equal(membw_method_parse(bad[i], &m), TK_EINVAL);
		assert_int_equal(m, MEMBW_PLAIN); /* untouched */
	}
	assert_string_equal(membw_method_name(MEMBW_STREAMS), "streams");
	assert_string_equal(membw_method_name(MEMBW_PLAIN), "plain");
	size_t d = membw_default_bytes();
	assert_true(d >= MEMBW_MIN_BYTES && d <= (2048u << 20));
	assert_int_equal(d % 4096, 0);
	/* the roofline's buffer follows decode's working set, clamped */
	const size_t mib = 1u << 20, quarter = phys_bytes() / 4;
	const double sets[] = { 0, 1e6, 300.0 * mib, 700e6 + 123, 1900.0 * mib, 5e9, 1e300 };
	for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
		size_t b = membw_bytes_for(sets[i]);
		double want = sets[i] < 256.0 * mib ? 256.0 * mib
			      : sets[i] > 2048.0 * mib ? 2048.0 * mib : sets[i];
		if (quarter && want > (double)quarter)
			want = (double)quarter;
		assert_int_equal(b % 4096, 0);
		assert_true((double)b <= want && (double)b > want - 4096);
	}
}

/* a kept probe: each run reads the whole filled buffer `passes` times, and
 * reports only its own passes */
static void test_probe_runs(void **state)
{
	(void)state;
	const size_t used = (2u << 20) + 5 * 4096;
	struct membw_opts o = { .bytes = used + 17, .threads = 2, .reps = 4 };
	struct membw_probe *p = membw_probe_new(&o);
	assert_non_null(p);
	const int runs[] = { 3, 1, 0, 5 }; /* 0: the probe's reps (4) */
	for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
		int want = runs[k] ? runs[k] : 4;
		double pass[8], wall_ms = -1;
		for (int i = 0; i < 8; i++)
			pass[i] = -1;
		struct membw_result r;
		assert_int_equal(membw_probe_run(p, runs[k], &r, pass, &wall_ms), 0);
		assert_int_equal(r.reps, want);
		assert_int_equal(r.bytes, used);
		assert_int_equal(r.threads, 2);
		assert_true(r.checksum == (uint64_t)want * fill_sum(used));
		double best = 0, sum = 0;
		for (int i = 0; i < want; i++) {
			assert_true(pass[i] > 0);
			sum += pass[i];
			if (pass[i] > best)
				best = pass[i];
		}
		for (int i = want; i < 8; i++)
			assert_true(pass[i] == -1); /* nothing past `passes` */
		assert_true(r.best_gbps == best);
		assert_true(fabs(r.mean_gbps - sum / want) <= 1e-12 * sum);
		assert_true(wall_ms > 0);
	}
	struct membw_result r;
	memset(&r, 0x5a, sizeof r);
	assert_int_equal(membw_probe_run(p, -1, &r, NULL, NULL), TK_EINVAL);
	assert_true(r.checksum == 0 && r.reps == 0);
	assert_int_equal(membw_probe_run(p, MEMBW_MAX_REPS + 1, &r, NULL, NULL), TK_EINVAL);
	assert_true(strstr(tk_err_detail(), "passes") != NULL);
	/* still usable after a refused run, without the optional outputs */
	assert_int_equal(membw_probe_run(p, 2, &r, NULL, NULL), 0);
	assert_true(r.checksum == 2 * fill_sum(used));
	membw_probe_free(p);
	membw_probe_free(NULL);
	/* bad options: NULL with the detail, as membw_measure refuses them */
	struct membw_opts bad = { .bytes = 4096 };
	tk_err_clear();
	assert_null(membw_probe_new(&bad));
	assert_int_equal(tk_err_last(), TK_EINVAL);
	assert_true(strstr(tk_err_detail(), "membw") != NULL);
}

/* a small case worked by hand: probes 10, 30, 20 GB/s around two
 * repetitions that read 18 and 12.5 GB/s: ceilings 20 and 25, so 90% and
 * 50% — while pairing each with its earlier probe alone would give 180%
 * and 41.7%, and with the overall best (30) 60% and 41.7% */
static void test_pair_by_hand(void **state)
{
	(void)state;
	const double probe[] = { 10, 30, 20 }, decode[] = { 18, 12.5 };
	struct membw_pair pr[2];
	struct membw_pair_stats st;
	assert_int_equal(membw_pair_reps(probe, decode, 2, pr, &st), 0);
	assert_true(pr[0].before_gbps == 10 && pr[0].after_gbps == 30);
	assert_true(pr[1].before_gbps == 30 && pr[1].after_gbps == 20);
	assert_true(pr[0].ceiling_gbps == 20 && pr[1].ceiling_gbps == 25);
	assert_true(pr[0].decode_gbps == 18 && pr[1].decode_gbps == 12.5);
	assert_true(fabs(pr[0].pct - 90) < 1e-12 && fabs(pr[1].pct - 50) < 1e-12);
	assert_true(fabs(st.pct_mean - 70) < 1e-12);
	assert_true(st.pct_min == pr[1].pct && st.pct_max == pr[0].pct);
	assert_true(st.ceiling_min == 20 && st.ceiling_max == 25);
	/* one repetition: the two probes are its only neighbours */
	const double p1[] = { 40, 20 }, d1[] = { 0 };
	assert_int_equal(membw_pair_reps(p1, d1, 1, pr, &st), 0);
	assert_true(pr[0].ceiling_gbps == 30 && pr[0].pct == 0);
	assert_true(st.pct_mean == 0 && st.pct_min == 0 && st.pct_max == 0);
}

/* many repetitions with random figures: every repetition i gets probes i
 * and i + 1 (checked against a plain loop), and the summary is the mean,
 * min and max of the per-repetition percentages */
static void test_pair_adjacent(void **state)
{
	(void)state;
	enum { N = 37 };
	double probe[N + 1], decode[N];
	uint64_t x = 0x2545f4914f6cdd1dull;
	for (int i = 0; i <= N; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		probe[i] = 5.0 + (double)(x % 50000) / 1000.0; /* 5..55 GB/s */
		if (i < N)
			decode[i] = (double)((x >> 20) % 40000) / 1000.0;
	}
	struct membw_pair pr[N];
	struct membw_pair_stats st;
	assert_int_equal(membw_pair_reps(probe, decode, N, pr, &st), 0);
	double sum = 0, lo = 1e300, hi = -1, clo = 1e300, chi = -1;
	for (int i = 0; i < N; i++) {
		double ceiling = 0.5 * probe[i] + 0.5 * probe[i + 1];
		double pct = decode[i] * 100.0 / ceiling;
		assert_true(pr[i].before_gbps == probe[i] && pr[i].after_gbps == probe[i + 1]);
		assert_true(fabs(pr[i].ceiling_gbps - ceiling) <= 1e-12 * ceiling);
		assert_true(pr[i].decode_gbps == decode[i]);
		assert_true(fabs(pr[i].pct - pct) <= 1e-9 * (pct + 1));
		sum += pr[i].pct;
		lo = pr[i].pct < lo ? pr[i].pct : lo;
		hi = pr[i].pct > hi ? pr[i].pct : hi;
		clo = pr[i].ceiling_gbps < clo ? pr[i].ceiling_gbps : clo;
		chi = pr[i].ceiling_gbps > chi ? pr[i].ceiling_gbps : chi;
	}
	assert_true(fabs(st.pct_mean - sum / N) <= 1e-9 * st.pct_mean);
	assert_true(st.pct_min == lo && st.pct_max == hi);
	assert_true(st.ceiling_min == clo && st.ceiling_max == chi);
	/* moving one probe changes exactly the two repetitions beside it */
	const int k = 11;
	struct membw_pair moved[N];
	probe[k] *= 2;
	assert_int_equal(membw_pair_reps(probe, decode, N, moved, &st), 0);
	for (int i = 0; i < N; i++) {
		bool beside = i == k - 1 || i == k;
		if (beside)
			assert_true(moved[i].ceiling_gbps > pr[i].ceiling_gbps);
		else
			assert_true(moved[i].ceiling_gbps == pr[i].ceiling_gbps &&
				    moved[i].pct == pr[i].pct);
	}
}

static void test_pair_refuses(void **state)
{
	(void)state;
	const double ok_probe[] = { 20, 21, 22 }, ok_decode[] = { 10, 11 };
	struct {
		double probe[3], decode[2];
		int n;
		const char *names; /* in the detail */
	} bad[] = {
		{ { 20, 21, 22 }, { 10, 11 }, 0, "repetitions" },
		{ { 20, 21, 22 }, { 10, 11 }, -3, "repetitions" },
		{ { 20, 0, 22 }, { 10, 11 }, 2, "probe 1" },
		{ { 20, 21, -1 }, { 10, 11 }, 2, "probe 2" },
		{ { NAN, 21, 22 }, { 10, 11 }, 2, "probe 0" },
		{ { 20, INFINITY, 22 }, { 10, 11 }, 2, "probe 1" },
		{ { 20, 21, 22 }, { -0.5, 11 }, 2, "repetition 0" },
		{ { 20, 21, 22 }, { 10, NAN }, 2, "repetition 1" },
		{ { 20, 21, 22 }, { 10, INFINITY }, 2, "repetition 1" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct membw_pair pr[2];
		struct membw_pair_stats st;
		memset(pr, 0x5a, sizeof pr);
		memset(&st, 0x5a, sizeof st);
		unsigned char pr0[sizeof pr], st0[sizeof st];
		memcpy(pr0, pr, sizeof pr);
		memcpy(st0, &st, sizeof st);
		if (membw_pair_reps(bad[i].probe, bad[i].decode, bad[i].n, pr, &st) != TK_EINVAL)
			fail_msg("case %zu accepted", i);
		if (!strstr(tk_err_detail(), bad[i].names))
			fail_msg("case %zu: detail '%s' lacks '%s'", i, tk_err_detail(),
				 bad[i].names);
		assert_memory_equal(pr, pr0, sizeof pr); /* untouched */
		assert_memory_equal(&st, st0, sizeof st);
	}
	struct membw_pair pr[2];
	struct membw_pair_stats st;
	assert_int_equal(membw_pair_reps(ok_probe, ok_decode, 2, pr, &st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kernels_equal_reference),
		cmocka_unit_test(test_sum_depends_on_every_byte),
		cmocka_unit_test(test_measure_checksum),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_method_names),
		cmocka_unit_test(test_probe_runs),
		cmocka_unit_test(test_pair_by_hand),
		cmocka_unit_test(test_pair_adjacent),
		cmocka_unit_test(test_pair_refuses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
