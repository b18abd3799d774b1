/*
 * test_membw.c — the read-bandwidth probe (src/cli/cli_membw.h): every
 * summing kernel this CPU can run (generic, AVX2, AVX-512; 1..8 streams,
 * with and without prefetch, odd lengths and alignments) gives the plain
 * word sum; the sum moves when any one byte changes; a measurement's
 * checksum is the repetitions times the sum of the bytes the probe wrote
 * (for both methods, so the reads really happen); option checking and the
 * method names. No timing is asserted: speeds are only checked to be > 0.
 *
 * The probe lives with the CLI, which is not a library; the test compiles
 * it in (its static kernels are tested directly).
 */
#include "testutil.h"

#include "cli/cli_membw.c"

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
	assert_int_equal(r.streams, 4);            /* the defaults */
	assert_int_equal(r.prefetch_bytes, 4096);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kernels_equal_reference),
		cmocka_unit_test(test_sum_depends_on_every_byte),
		cmocka_unit_test(test_measure_checksum),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_method_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
