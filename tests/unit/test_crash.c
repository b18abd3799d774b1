/* test_crash.c — the fatal-signal handler: each case crashes a forked child
 * for real and checks both the exit status (still killed by the same
 * signal) and the one critical JSON line the handler left behind. */
#include "testutil.h"

#include "core/time.h"
#include "obs/crash.h"
#include "obs/log.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* The sanitizer build (-fsanitize=address,undefined, detected through
 * ASan's macros) stops a NULL write with UBSan's null-pointer check before
 * it can fault, so that one case is skipped there; the protected-page case
 * gives a real SIGSEGV in every build. */
#if defined(__SANITIZE_ADDRESS__)
#define TK_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TK_TEST_ASAN 1
#endif
#endif
#ifndef TK_TEST_ASAN
#define TK_TEST_ASAN 0
#endif

static void child_prepare(void)
{
	/* No core files from the deliberate crashes. */
	struct rlimit rl = { 0, 0 };
	setrlimit(RLIMIT_CORE, &rl);
	if (tk_crash_install() != 0)
		_exit(90);
}

static void crash_segv(void *arg)
{
	(void)arg;
	child_prepare();
	/* the pointer volatile: the compiler cannot know it is NULL; the
	 * pointee volatile too: gcc -O3 deleted the plain store (Release) */
	volatile int *volatile p = NULL;
	*p = 42;
}

/* A write into a page mapped PROT_NONE: arg holds the page address. */
static void crash_protected_page(void *arg)
{
	child_prepare();
	volatile int *p = *(int **)arg;
	*p = 42;
}

static void crash_abort(void *arg)
{
	(void)arg;
	child_prepare();
	abort();
}

static void crash_raise(void *arg)
{
	child_prepare();
	raise(*(int *)arg);
}

static volatile int sink;
static volatile int stop_recursing; /* never set: hides the endless recursion */

static int recurse(int depth)
{
	if (stop_recursing)
		return 0;
	volatile char frame[512];
	frame[0] = (char)depth;
	frame[511] = (char)(depth >> 8);
	sink = frame[0] + frame[511];
	return recurse(depth + 1) + sink; /* not a tail call */
}

static void crash_stack_overflow(void *arg)
{
	(void)arg;
	child_prepare();
	sink = recurse(0);
}

static void crash_with_context(void *arg)
{
	(void)arg;
	child_prepare();
	if (tk_log_add_secret("sk-crash-secret-123") != 0 ||
	    tk_log_ctx_set("task_id", "t-\"crash\"\n") != 0 ||
	    tk_log_ctx_set("agent", "coder sk-crash-secret-123") != 0 ||
	    tk_log_ctx_set("backend_api_key", "hunter2-key") != 0)
		_exit(94);
	abort();
}

static void *thread_aborts(void *arg)
{
	(void)arg;
	if (tk_crash_thread_init() != 0)
		_exit(91);
	abort();
	return NULL;
}

static void crash_in_thread(void *arg)
{
	(void)arg;
	child_prepare();
	pthread_t th;
	if (pthread_create(&th, NULL, thread_aborts, NULL) != 0)
		_exit(92);
	pthread_join(th, NULL);
}

struct file_case {
	const char *log_path;
};

static void crash_with_log_file(void *arg)
{
	struct file_case *fc = arg;
	if (tk_log_init(fc->log_path, TK_LOG_INFO) != 0)
		_exit(93);
	tk_log(TK_LOG_INFO, "test", "about to crash");
	child_prepare();
	abort();
}

/* Runs fn in a child, checks it died of signo, and returns the one JSON
 * line of the file (dir/"stderr" unless path is given), parsed. */
static json_t *run_and_parse(void (*fn)(void *), void *arg, int signo, const char *dir,
			     const char *path, size_t want_lines)
{
	int64_t before = tk_time_real_ns();
	int st = tk_test_run_child(fn, arg, dir);
	int64_t after = tk_time_real_ns();
	if (!WIFSIGNALED(st))
		fail_msg("child was not killed by a signal (status %#x)", st);
	assert_int_equal(WTERMSIG(st), signo);

	char errp[600];
	snprintf(errp, sizeof errp, "%s/stderr", dir);
	size_t len;
	char *text = tk_test_read_file(path ? path : errp, &len);
	/* Exactly want_lines lines; the crash line is the last one. */
	size_t nl = 0;
	const char *last = text;
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '\n') {
			nl++;
			if (i + 1 < len)
				last = text + i + 1;
		}
	}
	if (nl != want_lines)
		fail_msg("want %zu lines, got %zu: %.500s", want_lines, nl, text);
	assert_int_equal(text[len - 1], '\n');
	json_error_t err;
	json_t *j = json_loadb(last, (size_t)(text + len - last), JSON_REJECT_DUPLICATES, &err);
	if (!j)
		fail_msg("crash line is not JSON (%s): %.500s", err.text, last);
	free(text);

	json_t *ts = json_object_get(j, "ts");
	assert_true(json_is_string(ts));
	int64_t t;
	assert_int_equal(tk_time_parse_rfc3339(json_string_value(ts), &t), 0);
	assert_true(t >= before / 1000000 * 1000000 && t <= after);
	assert_string_equal(json_string_value(json_object_get(j, "level")), "critical");
	assert_string_equal(json_string_value(json_object_get(j, "severity")), "CRITICAL");
	assert_string_equal(json_string_value(json_object_get(j, "msg")), "fatal signal");
	assert_string_equal(json_string_value(json_object_get(j, "component")), "crash");
	assert_int_equal(json_integer_value(json_object_get(j, "signo")), signo);
	json_t *bt = json_object_get(j, "backtrace");
	assert_true(json_is_array(bt));
	assert_true(json_array_size(bt) > 0);
	size_t i;
	json_t *fr;
	json_array_foreach(bt, i, fr) {
		assert_true(json_is_string(fr));
		assert_true(!strncmp(json_string_value(fr), "0x", 2));
	}
	return j;
}

/* True when some frame is in this test program (module+offset form). */
static bool has_own_frame(json_t *j)
{
	json_t *bt = json_object_get(j, "backtrace");
	size_t i;
	json_t *fr;
	json_array_foreach(bt, i, fr)
		if (strstr(json_string_value(fr), " test_crash+0x"))
			return true;
	return false;
}

static void test_segv_real_fault(void **state)
{
	(void)state;
	if (TK_TEST_ASAN) {
		print_message("skipped: in the sanitizer build UBSan's null check stops the NULL "
			      "write before it faults (test_segv_protected_page covers a real "
			      "SIGSEGV there)\n");
		skip();
	}
	char dir[512];
	tk_test_mkdtemp(dir, sizeof dir);
	json_t *j = run_and_parse(crash_segv, NULL, SIGSEGV, dir, NULL, 1);
	assert_string_equal(json_string_value(json_object_get(j, "signal")), "SIGSEGV");
	/* A write through NULL: the kernel reports address 0. */
	assert_string_equal(json_string_value(json_object_get(j, "fault_addr")), "0x0");
	assert_true(json_integer_value(json_object_get(j, "si_code")) > 0);
	assert_true(json_integer_value(json_object_get(j, "pid")) > 0);
	assert_true(has_own_frame(j));
	json_decref(j);
	tk_test_rmtree(dir);
}

static void test_segv_protected_page(void **state)
{
	(void)state;
	long pg = sysconf(_SC_PAGESIZE);
	void *page = mmap(NULL, (size_t)pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(page != MAP_FAILED);
	char dir[512], want[32];
	tk_test_mkdtemp(dir, sizeof dir);
	json_t *j = run_and_parse(crash_protected_page, &page, SIGSEGV, dir, NULL, 1);
	assert_string_equal(json_string_value(json_object_get(j, "signal")), "SIGSEGV");
	/* The kernel reports exactly the address written, as a permission
	 * fault on a mapped page. */
	snprintf(want, sizeof want, "%#lx", (unsigned long)(uintptr_t)page);
	assert_string_equal(json_string_value(json_object_get(j, "fault_addr")), want);
	assert_int_equal(json_integer_value(json_object_get(j, "si_code")), SEGV_ACCERR);
	assert_true(has_own_frame(j));
	json_decref(j);
	munmap(page, (size_t)pg);
	tk_test_rmtree(dir);
}

static void test_abort(void **state)
{
	(void)state;
	char dir[512];
	tk_test_mkdtemp(dir, sizeof dir);
	json_t *j = run_and_parse(crash_abort, NULL, SIGABRT, dir, NULL, 1);
	assert_string_equal(json_string_value(json_object_get(j, "signal")), "SIGABRT");
	assert_null(json_object_get(j, "fault_addr")); /* sent, not a fault */
	assert_true(has_own_frame(j));
	json_decref(j);
	tk_test_rmtree(dir);
}

static void test_raised_signals(void **state)
{
	(void)state;
	static const struct {
		int signo;
		const char *name;
	} cases[] = { { SIGFPE, "SIGFPE" }, { SIGBUS, "SIGBUS" }, { SIGILL, "SIGILL" } };
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		char dir[512];
		tk_test_mkdtemp(dir, sizeof dir);
		int signo = cases[k].signo;
		json_t *j = run_and_parse(crash_raise, &signo, signo, dir, NULL, 1);
		assert_string_equal(json_string_value(json_object_get(j, "signal")), cases[k].name);
		assert_true(json_integer_value(json_object_get(j, "si_code")) <= 0);
		assert_null(json_object_get(j, "fault_addr"));
		json_decref(j);
		tk_test_rmtree(dir);
	}
}

static void test_stack_overflow(void **state)
{
	(void)state;
	char dir[512];
	tk_test_mkdtemp(dir, sizeof dir);
	json_t *j = run_and_parse(crash_stack_overflow, NULL, SIGSEGV, dir, NULL, 1);
	assert_string_equal(json_string_value(json_object_get(j, "signal")), "SIGSEGV");
	assert_non_null(json_object_get(j, "fault_addr"));
	/* The backtrace is capped, and deep recursion fills it. */
	assert_int_equal(json_array_size(json_object_get(j, "backtrace")), 64 - 2);
	json_decref(j);
	tk_test_rmtree(dir);
}

static void test_context_in_crash_line(void **state)
{
	(void)state;
	char dir[512];
	tk_test_mkdtemp(dir, sizeof dir);
	json_t *j = run_and_parse(crash_with_context, NULL, SIGABRT, dir, NULL, 1);
	/* Escaped like any line, secrets and credential keys redacted. */
	assert_string_equal(json_string_value(json_object_get(j, "task_id")), "t-\"crash\"\n");
	assert_string_equal(json_string_value(json_object_get(j, "agent")), "coder [REDACTED]");
	assert_string_equal(json_string_value(json_object_get(j, "backend_api_key")), "[REDACTED]");
	json_decref(j);
	char errp[600];
	snprintf(errp, sizeof errp, "%s/stderr", dir);
	char *text = tk_test_read_file(errp, NULL);
	assert_null(strstr(text, "hunter2"));
	assert_null(strstr(text, "sk-crash"));
	free(text);
	tk_test_rmtree(dir);
}

static void test_crash_in_other_thread(void **state)
{
	(void)state;
	char dir[512];
	tk_test_mkdtemp(dir, sizeof dir);
	json_t *j = run_and_parse(crash_in_thread, NULL, SIGABRT, dir, NULL, 1);
	json_int_t pid = json_integer_value(json_object_get(j, "pid"));
	json_int_t tid = json_integer_value(json_object_get(j, "tid"));
	assert_true(tid > 0 && tid != pid);
	assert_true(has_own_frame(j));
	json_decref(j);
	tk_test_rmtree(dir);
}

static void test_crash_line_goes_to_log_file(void **state)
{
	(void)state;
	char dir[512], logp[600], errp[600];
	tk_test_mkdtemp(dir, sizeof dir);
	snprintf(logp, sizeof logp, "%s/tanuki.log", dir);
	struct file_case fc = { logp };
	json_t *j = run_and_parse(crash_with_log_file, &fc, SIGABRT, dir, logp, 2);
	assert_string_equal(json_string_value(json_object_get(j, "signal")), "SIGABRT");
	json_decref(j);
	/* Nothing on stderr. */
	snprintf(errp, sizeof errp, "%s/stderr", dir);
	size_t len;
	free(tk_test_read_file(errp, &len));
	assert_int_equal(len, 0);
	tk_test_rmtree(dir);
}

static void test_install_twice(void **state)
{
	(void)state;
	/* In this process: installing twice is fine; the default actions are
	 * put back afterwards so later tests see ordinary behaviour. */
	assert_int_equal(tk_crash_install(), 0);
	assert_int_equal(tk_crash_install(), 0);
	tk_crash_thread_fini();
	tk_crash_thread_fini();
	const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		struct sigaction sa;
		assert_int_equal(sigaction(sigs[i], NULL, &sa), 0);
		assert_true(sa.sa_flags & SA_SIGINFO);
		assert_true(sa.sa_flags & SA_ONSTACK);
		signal(sigs[i], SIG_DFL);
	}
}

static void test_signal_safe_time_matches_libc(void **state)
{
	(void)state;
	/* Against tk_time_rfc3339 (gmtime_r based) over leap days, century
	 * rules, day edges, instants before 1970 and pseudo-random instants
	 * over the whole int64 nanosecond range (years 1677..2262). */
	const int64_t s = 1000000000;
	int64_t fixed[] = {
		0, 999999, 1000000, 86399 * s + 999 * 1000000, 68169600LL * s, /* 1972-02-29 */
		951782400LL * s,                                              /* 2000-02-29 */
		951868800LL * s - 1,                                          /* 2000-03-01, -1 ns */
		4107542400LL * s,                                             /* 2100-03-01 */
		1795737644LL * s + 123456789, INT64_MAX, /* 2262-04-11 */
		-1, -1000001, -86400 * s, INT64_MIN + 1,
	};
	char a[TK_RFC3339_LEN], b[TK_RFC3339_LEN];
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		assert_int_equal(tk_crash_format_time(fixed[i], a), 24);
		tk_time_rfc3339(fixed[i], b);
		assert_string_equal(a, b);
	}
	uint64_t x = 88172645463325252u;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int64_t ns = (int64_t)x; /* any sign */
		tk_crash_format_time(ns, a);
		tk_time_rfc3339(ns, b);
		assert_string_equal(a, b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_segv_real_fault),
		cmocka_unit_test(test_segv_protected_page),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_raised_signals),
		cmocka_unit_test(test_stack_overflow),
		cmocka_unit_test(test_context_in_crash_line),
		cmocka_unit_test(test_crash_in_other_thread),
		cmocka_unit_test(test_crash_line_goes_to_log_file),
		cmocka_unit_test(test_install_twice),
		cmocka_unit_test(test_signal_safe_time_matches_libc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
