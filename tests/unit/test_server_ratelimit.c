/*
 * test_server_ratelimit.c — token buckets: burst, refill over (virtual)
 * time, Retry-After, per-key and per-class isolation, disabled classes,
 * reconfiguration, and the bounded bucket table.
 */
#include "testutil.h"

#include "core/err.h"
#include "server/ratelimit.h"

#include <stdio.h>

#define SEC 1000000000LL

static struct tk_ratelimit *mk(double submit_pm, double burst, size_t max)
{
	struct tk_rl_limit l[TK_RL_N_] = {
		[TK_RL_SUBMIT] = { submit_pm, burst },
		[TK_RL_READ] = { 0, 1 },
		[TK_RL_ADMIN] = { 60, 2 },
	};
	struct tk_ratelimit *rl = tk_ratelimit_new(l, max);
	assert_non_null(rl);
	return rl;
}

static void test_burst_then_refused(void **state)
{
	(void)state;
	struct tk_ratelimit *rl = mk(5, 5, 100);
	int retry = -1;
	for (int i = 0; i < 5; i++)
		assert_true(tk_ratelimit_take(rl, "k1", TK_RL_SUBMIT, 0, &retry));
	assert_false(tk_ratelimit_take(rl, "k1", TK_RL_SUBMIT, 0, &retry));
	/* 5 per minute: one token every 12 s. */
	assert_int_equal(retry, 12);
	/* 6 s later half a token has come back: still refused, 6 s to go. */
	assert_false(tk_ratelimit_take(rl, "k1", TK_RL_SUBMIT, 6 * SEC, &retry));
	assert_int_equal(retry, 6);
	assert_true(tk_ratelimit_take(rl, "k1", TK_RL_SUBMIT, 12 * SEC, &retry));
	assert_false(tk_ratelimit_take(rl, "k1", TK_RL_SUBMIT, 12 * SEC, &retry));
	/* A long pause refills only up to the burst. */
	int ok = 0;
	while (tk_ratelimit_take(rl, "k1", TK_RL_SUBMIT, 3600 * SEC, &retry))
		ok++;
	assert_int_equal(ok, 5);
	tk_ratelimit_free(rl);
}

static void test_isolation(void **state)
{
	(void)state;
	struct tk_ratelimit *rl = mk(1, 1, 100);
	int retry;
	assert_true(tk_ratelimit_take(rl, "a", TK_RL_SUBMIT, 0, &retry));
	assert_false(tk_ratelimit_take(rl, "a", TK_RL_SUBMIT, 0, &retry));
	assert_true(tk_ratelimit_take(rl, "b", TK_RL_SUBMIT, 0, &retry)); /* other key */
	assert_true(tk_ratelimit_take(rl, "a", TK_RL_ADMIN, 0, &retry));  /* other class */
	assert_true(tk_ratelimit_take(rl, "a", TK_RL_ADMIN, 0, &retry));
	assert_false(tk_ratelimit_take(rl, "a", TK_RL_ADMIN, 0, &retry));
	for (int i = 0; i < 1000; i++) /* READ is disabled (0/min) */
		assert_true(tk_ratelimit_take(rl, "a", TK_RL_READ, 0, &retry));
	tk_ratelimit_free(rl);
}

static void test_reconfigure(void **state)
{
	(void)state;
	struct tk_ratelimit *rl = mk(60, 10, 100);
	int retry;
	assert_true(tk_ratelimit_take(rl, "k", TK_RL_SUBMIT, 0, &retry));
	struct tk_rl_limit l[TK_RL_N_] = { { 60, 2 }, { 0, 1 }, { 0, 1 } };
	assert_int_equal(tk_ratelimit_configure(rl, l), 0);
	/* 9 tokens left, capped to the new burst of 2. */
	assert_true(tk_ratelimit_take(rl, "k", TK_RL_SUBMIT, 0, &retry));
	assert_true(tk_ratelimit_take(rl, "k", TK_RL_SUBMIT, 0, &retry));
	assert_false(tk_ratelimit_take(rl, "k", TK_RL_SUBMIT, 0, &retry));
	struct tk_rl_limit bad[TK_RL_N_] = { { 60, 0 }, { 0, 1 }, { 0, 1 } };
	assert_int_equal(tk_ratelimit_configure(rl, bad), TK_EINVAL);
	struct tk_rl_limit neg[TK_RL_N_] = { { -1, 1 }, { 0, 1 }, { 0, 1 } };
	assert_null(tk_ratelimit_new(neg, 10));
	tk_ratelimit_free(rl);
}

static void test_bounded_table(void **state)
{
	(void)state;
	struct tk_ratelimit *rl = mk(1, 1, 8);
	int retry;
	char key[32];
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof key, "key-%d", i);
		assert_true(tk_ratelimit_take(rl, key, TK_RL_SUBMIT, 0, &retry));
		assert_true(tk_ratelimit_size(rl) <= 8);
	}
	assert_int_equal(tk_ratelimit_size(rl), 8);
	/* The most recent keys are still tracked (and empty)... */
	assert_false(tk_ratelimit_take(rl, "key-99", TK_RL_SUBMIT, 0, &retry));
	/* ...the oldest were dropped and start again full. */
	assert_true(tk_ratelimit_take(rl, "key-0", TK_RL_SUBMIT, 0, &retry));
	tk_ratelimit_free(rl);
	tk_ratelimit_free(NULL);
}

static void test_blocked_peeks(void **state)
{
	(void)state;
	struct tk_rl_limit l[TK_RL_N_] = { [TK_RL_AUTHFAIL] = { 60, 2 } };
	struct tk_ratelimit *rl = tk_ratelimit_new(l, 10);
	assert_non_null(rl);
	int retry = -1;
	assert_false(tk_ratelimit_blocked(rl, "10.0.0.1", TK_RL_AUTHFAIL, 0, &retry));
	assert_int_equal(tk_ratelimit_size(rl), 0); /* peeking creates nothing */
	assert_true(tk_ratelimit_take(rl, "10.0.0.1", TK_RL_AUTHFAIL, 0, &retry));
	assert_false(tk_ratelimit_blocked(rl, "10.0.0.1", TK_RL_AUTHFAIL, 0, &retry));
	assert_true(tk_ratelimit_take(rl, "10.0.0.1", TK_RL_AUTHFAIL, 0, &retry));
	/* Empty now; peeking many times does not consume or extend the wait. */
	for (int i = 0; i < 5; i++) {
		assert_true(tk_ratelimit_blocked(rl, "10.0.0.1", TK_RL_AUTHFAIL, 0, &retry));
		assert_int_equal(retry, 1);
	}
	assert_false(tk_ratelimit_blocked(rl, "10.0.0.2", TK_RL_AUTHFAIL, 0, &retry));
	assert_false(tk_ratelimit_blocked(rl, "10.0.0.1", TK_RL_AUTHFAIL, 1000000000LL, &retry));
	assert_false(tk_ratelimit_blocked(rl, "10.0.0.1", TK_RL_SUBMIT, 0, &retry)); /* off */
	tk_ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_refused),
		cmocka_unit_test(test_isolation),
		cmocka_unit_test(test_reconfigure),
		cmocka_unit_test(test_bounded_table),
		cmocka_unit_test(test_blocked_peeks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
