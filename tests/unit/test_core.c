/* test_core.c — errors, capped buffers, time helpers and UUIDv7 ids. */
#include "testutil.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/id.h"
#include "core/time.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_err_detail_and_names(void **state)
{
	(void)state;
	tk_err_clear();
	assert_string_equal(tk_err_detail(), "");
	int rc = tk_errf(TK_EINVAL, "field '%s': bad", "wait");
	assert_int_equal(rc, TK_EINVAL);
	assert_string_equal(tk_err_detail(), "field 'wait': bad");
	assert_int_equal(tk_err_last(), TK_EINVAL);
	rc = tk_err_wrap(TK_EINVAL, "request %d", 7);
	assert_string_equal(tk_err_detail(), "request 7: field 'wait': bad");
	assert_string_equal(tk_err_name(TK_ELIMIT), "limit_exceeded");
	assert_string_equal(tk_strerror(TK_ENOENT), "not found");
	assert_string_equal(tk_err_name(-999), "unknown");
	assert_string_equal(tk_err_name(5), "unknown");
	/* Every code in range has a distinct name. */
	for (int a = 0; a > TK_E_MIN_; a--)
		for (int b = a - 1; b > TK_E_MIN_; b--)
			assert_string_not_equal(tk_err_name(a), tk_err_name(b));
	rc = tk_errf_sys(TK_EIO, 2, "open %s", "/x");
	assert_int_equal(rc, TK_EIO);
	assert_non_null(strstr(tk_err_detail(), "open /x: "));
}

static void test_err_truncates_long_detail(void **state)
{
	(void)state;
	char big[3000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	tk_errf(TK_EINVAL, "%s", big);
	size_t n = strlen(tk_err_detail());
	assert_int_equal(n, TK_ERR_DETAIL_MAX - 1);
	assert_string_equal(tk_err_detail() + n - 3, "...");
}

static void *err_thread(void *arg)
{
	(void)arg;
	tk_errf(TK_EIO, "other thread");
	return NULL;
}

static void test_err_is_per_thread(void **state)
{
	(void)state;
	tk_errf(TK_EINVAL, "mine");
	pthread_t t;
	pthread_create(&t, NULL, err_thread, NULL);
	pthread_join(t, NULL);
	assert_string_equal(tk_err_detail(), "mine");
}

static void test_buf_cap(void **state)
{
	(void)state;
	struct tk_buf b;
	tk_buf_init(&b, 10);
	assert_string_equal(tk_buf_str(&b), "");
	assert_int_equal(tk_buf_puts(&b, "hello"), 0);
	assert_int_equal(tk_buf_printf(&b, "%d", 1234), 0);
	assert_string_equal(tk_buf_str(&b), "hello1234");
	/* One more byte fits (10), two do not; a failed append changes nothing. */
	assert_int_equal(tk_buf_puts(&b, "xy"), TK_ELIMIT);
	assert_string_equal(tk_buf_str(&b), "hello1234");
	assert_int_equal(b.len, 9);
	assert_int_equal(tk_buf_putc(&b, '!'), 0);
	assert_int_equal(b.len, 10);
	assert_int_equal(tk_buf_putc(&b, '!'), TK_ELIMIT);
	assert_int_equal(tk_buf_printf(&b, "%s", "z"), TK_ELIMIT);
	assert_non_null(strstr(tk_err_detail(), "cap of 10 bytes"));
	tk_buf_truncate(&b, 5);
	assert_string_equal(tk_buf_str(&b), "hello");
	size_t len;
	char *s = tk_buf_detach(&b, &len);
	assert_int_equal(len, 5);
	assert_string_equal(s, "hello");
	free(s);
	assert_int_equal(b.len, 0);
	tk_buf_free(&b);
	tk_buf_free(NULL);
}

static void test_buf_grows_and_holds_binary(void **state)
{
	(void)state;
	struct tk_buf b = TK_BUF_INIT(1 << 20);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(tk_buf_putc(&b, (char)(i & 0xff)), 0);
	assert_int_equal(b.len, 100000);
	for (int i = 0; i < 100000; i++)
		assert_int_equal((unsigned char)b.data[i], i & 0xff);
	assert_int_equal(b.data[b.len], '\0');
	/* A long formatted string takes the slow path. */
	tk_buf_reset(&b);
	char longs[1000];
	memset(longs, 'q', sizeof longs - 1);
	longs[sizeof longs - 1] = '\0';
	assert_int_equal(tk_buf_printf(&b, "<%s>", longs), 0);
	assert_int_equal(b.len, 1001);
	assert_int_equal(b.data[0], '<');
	assert_int_equal(b.data[1000], '>');
	tk_buf_free(&b);
	char *empty = tk_buf_detach(&b, NULL);
	assert_string_equal(empty, "");
	free(empty);
}

static void test_buf_append_file(void **state)
{
	(void)state;
	char dir[512], path[600];
	tk_test_mkdtemp(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/f.txt", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 20000; i++)
		fprintf(f, "%d\n", i);
	fclose(f);
	size_t want_len;
	char *want = tk_test_read_file(path, &want_len);
	struct tk_buf b = TK_BUF_INIT(1 << 20);
	assert_int_equal(tk_buf_append_file(&b, path), 0);
	assert_int_equal(b.len, want_len);
	assert_memory_equal(b.data, want, want_len);
	/* Over the cap: an error that names the file, not a silent cut. */
	struct tk_buf small = TK_BUF_INIT(want_len - 1);
	assert_int_equal(tk_buf_append_file(&small, path), TK_ELIMIT);
	assert_non_null(strstr(tk_err_detail(), "f.txt"));
	char missing[700];
	snprintf(missing, sizeof missing, "%s/none", dir);
	assert_int_equal(tk_buf_append_file(&b, missing), TK_EIO);
	assert_non_null(strstr(tk_err_detail(), "cannot open"));
	free(want);
	tk_buf_free(&b);
	tk_buf_free(&small);
	tk_test_rmtree(dir);
}

static void test_time(void **state)
{
	(void)state;
	char out[TK_RFC3339_LEN];
	assert_string_equal(tk_time_rfc3339(0, out), "1970-01-01T00:00:00.000Z");
	assert_string_equal(tk_time_rfc3339(1795826444123456789LL, out),
			    "2026-11-28T00:40:44.123Z");
	assert_string_equal(tk_time_rfc3339(-1000000, out), "1969-12-31T23:59:59.999Z");
	int64_t ns;
	assert_int_equal(tk_time_parse_rfc3339("2026-11-28T00:40:44.123Z", &ns), 0);
	assert_true(ns == 1795826444123000000LL);
	assert_int_equal(tk_time_parse_rfc3339("2026-11-28T02:40:44+02:00", &ns), 0);
	assert_true(ns == 1795826444000000000LL);
	assert_int_equal(tk_time_parse_rfc3339("2026-11-28 00:40:44", &ns), TK_EFORMAT);
	assert_int_equal(tk_time_parse_rfc3339("2026-13-28T00:40:44Z", &ns), TK_EFORMAT);
	assert_int_equal(tk_time_parse_rfc3339("2026-11-28T00:40:44.Z", &ns), TK_EFORMAT);
	/* Past what int64 nanoseconds can hold: an error, never a wrapped value. */
	assert_int_equal(tk_time_parse_rfc3339("2999-01-01T00:00:00Z", &ns), TK_EFORMAT);
	assert_int_equal(tk_time_parse_rfc3339("1600-01-01T00:00:00Z", &ns), TK_EFORMAT);
	/* Round trip of now, at millisecond precision. */
	int64_t now = tk_time_real_ns();
	tk_time_rfc3339(now, out);
	assert_int_equal(tk_time_parse_rfc3339(out, &ns), 0);
	assert_true(ns == now - (now % 1000000));
	int64_t a = tk_time_mono_ns(), b = tk_time_mono_ns();
	assert_true(a > 0 && b >= a);
}

static void test_id_format_and_order(void **state)
{
	(void)state;
	enum { N = 5000 };
	char (*ids)[TK_ID_LEN] = calloc(N, TK_ID_LEN);
	assert_non_null(ids);
	int64_t before_ms = tk_time_real_ns() / 1000000;
	for (int i = 0; i < N; i++)
		assert_int_equal(tk_id_new(ids[i]), 0);
	for (int i = 0; i < N; i++) {
		assert_true(tk_id_valid(ids[i]));
		assert_int_equal(ids[i][14], '7');                     /* version */
		assert_non_null(strchr("89ab", ids[i][19]));          /* variant */
		if (i)
			assert_true(strcmp(ids[i - 1], ids[i]) < 0);  /* strictly sorted */
	}
	/* The first 48 bits are the creation time in ms. */
	char hex[13];
	memcpy(hex, ids[0], 8);
	memcpy(hex + 8, ids[0] + 9, 4);
	hex[12] = '\0';
	long long ms = strtoll(hex, NULL, 16);
	assert_true(ms >= before_ms && ms <= before_ms + 1000);
	assert_false(tk_id_valid("not-an-id"));
	assert_false(tk_id_valid("0193AB5C-0000-7000-8000-000000000000"));
	free(ids);
}

struct id_batch { char ids[2000][TK_ID_LEN]; };

static void *id_thread(void *arg)
{
	struct id_batch *b = arg;
	for (int i = 0; i < 2000; i++)
		tk_id_new(b->ids[i]);
	return NULL;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_id_unique_across_threads(void **state)
{
	(void)state;
	enum { T = 4 };
	struct id_batch *b = calloc(T, sizeof *b);
	pthread_t th[T];
	for (int i = 0; i < T; i++)
		pthread_create(&th[i], NULL, id_thread, &b[i]);
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	/* Each thread's own ids are increasing; all are unique. */
	for (int t = 0; t < T; t++)
		for (int i = 1; i < 2000; i++)
			assert_true(strcmp(b[t].ids[i - 1], b[t].ids[i]) < 0);
	char (*all)[TK_ID_LEN] = (void *)b;
	qsort(all, T * 2000, TK_ID_LEN, cmp_id);
	for (int i = 1; i < T * 2000; i++)
		assert_true(strcmp(all[i - 1], all[i]) != 0);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_detail_and_names),
		cmocka_unit_test(test_err_truncates_long_detail),
		cmocka_unit_test(test_err_is_per_thread),
		cmocka_unit_test(test_buf_cap),
		cmocka_unit_test(test_buf_grows_and_holds_binary),
		cmocka_unit_test(test_buf_append_file),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_id_format_and_order),
		cmocka_unit_test(test_id_unique_across_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
