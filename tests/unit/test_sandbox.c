/*
 * test_sandbox.c — the sandbox's attack suite and ordinary use, through the
 * API (src/sandbox/sandbox.h). Every case runs a small hostile program (C
 * fixtures in tests/fixtures/sandbox/, compiled here with gcc, or a shell
 * snippet) and asserts the safe outcome computed from what happened: the
 * result record, the program's own report of what it was refused, and the
 * state of the host afterwards (no survivors, host files untouched, no
 * IPC objects left).
 *
 * Needs root (or user namespaces) and the host minimum; when the host lacks
 * it the suite FAILS, unless TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1 is set,
 * in which case it is skipped with a loud message.
 */
#include "testutil.h"

#include "core/buf.h"
#include "core/err.h"
#include "obs/metrics.h"
#include "sandbox/sandbox.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_bin[512];                 /* compiled fixtures */
static struct tk_sandbox_profiles g_set;
static struct tk_sandbox_options g_opts;
static bool g_skip;

static const char *const fixtures[] = { "forkbomb", "membomb", "cpuburn", "daemon", "shm",
					"net", "fds", "syscalls" };

static int group_setup(void **state)
{
	(void)state;
	struct tk_sandbox_host h;
	tk_sandbox_probe(&h, true);
	if (!tk_sandbox_host_secure(&h)) {
		const char *opt = getenv("TANUKI_SANDBOX_TESTS_ALLOW_INSECURE");
		fprintf(stderr, "test_sandbox: this host lacks the sandbox minimum: %s\n", h.why_not);
		if (opt && !strcmp(opt, "1")) {
			fprintf(stderr, "test_sandbox: SKIPPING the attack suite "
					"(TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1)\n");
			g_skip = true;
			return 0;
		}
		fprintf(stderr, "test_sandbox: failing; set TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1 "
				"to skip on purpose\n");
		return -1;
	}
	tk_sandbox_profiles_defaults(&g_set);
	tk_sandbox_options_defaults(&g_opts);
	/* A uid of our own, so that concurrent test programs never count each
	 * other's processes as survivors. */
	g_opts.uid = g_opts.gid = 62000 + (unsigned)getpid() % 3000;
	tk_test_mkdtemp(g_bin, sizeof g_bin);
	for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
		char cmd[2048];
		snprintf(cmd, sizeof cmd, "gcc -O1 -pthread -o %s/%s %s/sandbox/%s.c", g_bin,
			 fixtures[i], TK_FIXTURES, fixtures[i]);
		if (system(cmd) != 0) {
			fprintf(stderr, "test_sandbox: cannot compile fixture %s\n", fixtures[i]);
			return -1;
		}
	}
	return 0;
}

/* How many slot cgroups of this process exist in the pids hierarchy. */
static int count_own_slots(void)
{
	struct tk_sandbox_host h;
	tk_sandbox_probe(&h, false);
	if (!h.cg_pids_dir[0])
		return 0;
	DIR *d = opendir(h.cg_pids_dir);
	if (!d)
		return 0;
	char prefix[32];
	snprintf(prefix, sizeof prefix, "slot-%d-", (int)getpid());
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix)))
			n++;
	closedir(d);
	return n;
}

static int group_teardown(void **state)
{
	(void)state;
	tk_sandbox_shutdown();
	if (count_own_slots() != 0) {
		fprintf(stderr, "test_sandbox: slot cgroups left after tk_sandbox_shutdown\n");
		return -1;
	}
	if (g_bin[0])
		tk_test_rmtree(g_bin);
	return 0;
}

#define SKIP_IF_INSECURE()      \
	do {                    \
		if (g_skip)     \
			skip(); \
	} while (0)

/* ---- helpers ----------------------------------------------------------- */

static void ws_new(char *out, size_t cap)
{
	tk_test_mkdtemp(out, cap);
}

static void ws_free(const char *ws)
{
	assert_int_equal(tk_sandbox_workspace_remove(ws), 0);
}

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	chmod(path, mode);
}

static void put_fixture(const char *ws, const char *name)
{
	char src[1024], dst[1024];
	snprintf(src, sizeof src, "%s/%s", g_bin, name);
	snprintf(dst, sizeof dst, "%s/%s", ws, name);
	int in = open(src, O_RDONLY);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	assert_true(in >= 0 && out >= 0);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

struct run_args {
	const char *profile;
	const char *ws;
	const char *const *argv;
	struct tk_sandbox_limits lim;
	enum tk_sandbox_net net;
	const char *stdin_path;
	size_t capture;
	const struct tk_sandbox_options *opts;
};

static void run(const struct run_args *a, struct tk_sandbox_result *r)
{
	struct tk_sandbox_spec spec = {
		.profile = tk_sandbox_profile_find(&g_set, a->profile ? a->profile : "shell"),
		.workspace = a->ws,
		.argv = a->argv,
		.limits = a->lim,
		.net = a->net,
		.stdin_path = a->stdin_path,
		.opts = a->opts ? a->opts : &g_opts,
		.capture_max_bytes = a->capture,
	};
	assert_non_null(spec.profile);
	int rc = tk_sandbox_run(&spec, r);
	if (rc || r->status == TK_SB_XX)
		fprintf(stderr, "run: rc %d status %s: %s\n", rc, tk_sandbox_status_name(r->status),
			r->message);
	assert_int_equal(rc, 0);
}

#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Live processes owned by uid on the host. */
static int count_uid_procs(unsigned uid)
{
	DIR *d = opendir("/proc");
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char path[300], line[256];
		snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof line, f)) {
			unsigned ruid;
			if (sscanf(line, "Uid: %u", &ruid) == 1) {
				if (ruid == uid)
					n++;
				break;
			}
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

/* Whether the captured bytes (which may hold NULs) contain s. */
static bool has(const struct tk_buf *b, const char *s)
{
	return b->data && memmem(b->data, b->len, s, strlen(s)) != NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* ---- ordinary use ------------------------------------------------------ */

static void test_echo_ok(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("sh", "-c", "echo hello; echo oops >&2") },
	    &r);
	assert_int_equal(r.status, TK_SB_OK);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.limit, TK_SB_LIM_NONE);
	assert_string_equal(tk_buf_str(&r.out), "hello\n");
	assert_string_equal(tk_buf_str(&r.err), "oops\n");
	assert_int_equal(r.stdout_bytes, 6);
	assert_int_equal(r.stderr_bytes, 5);
	assert_false(r.stdout_truncated);
	assert_string_equal(r.profile, "shell");
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_identity_and_view(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws,
				.argv = ARGV("sh", "-c",
					     "id -u; id -g; pwd; hostname; ls /; "
					     "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' "
					     "/proc/self/status; cat /proc/self/cgroup; "
					     "ls /proc | grep -c '^[0-9]'; echo $PATH; "
					     "echo oom=$(cat /proc/self/oom_score_adj); "
					     "touch /usr/x 2>&1; touch /x 2>&1; touch /etc/x 2>&1; "
					     "touch /workspace/w && echo wrote") },
	    &r);
	assert_int_equal(r.status, TK_SB_OK);
	char want[64];
	snprintf(want, sizeof want, "%u\n%u\n/workspace\ntanuki\n", g_opts.uid, g_opts.gid);
	assert_true(!strncmp(tk_buf_str(&r.out), want, strlen(want)));
	assert_true(has(&r.out, "CapEff:\t0000000000000000"));
	assert_true(has(&r.out, "CapBnd:\t0000000000000000"));
	assert_true(has(&r.out, "NoNewPrivs:\t1"));
	assert_true(has(&r.out, "Seccomp:\t2"));
	assert_true(has(&r.out, "0::/\n")); /* cgroup namespace rooted at the run */
	assert_true(has(&r.out, "oom=1000\n"));
	/* only the root entries the sandbox made */
	assert_false(has(&r.out, "\nhome\n"));
	assert_false(has(&r.out, "\nroot\n"));
	assert_false(has(&r.out, "\nsys\n"));
	assert_true(has(&r.out, "'/usr/x': Read-only file system"));
	assert_true(has(&r.out, "'/x': Read-only file system"));
	assert_true(has(&r.out, "'/etc/x': Read-only file system"));
	assert_true(has(&r.out, "wrote"));
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_exit_code_and_signal(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("sh", "-c", "exit 3") }, &r);
	assert_int_equal(r.status, TK_SB_RE);
	assert_int_equal(r.exit_code, 3);
	tk_sandbox_result_free(&r);

	run(&(struct run_args){ .ws = ws, .argv = ARGV("sh", "-c", "kill -SEGV $$") }, &r);
	assert_int_equal(r.status, TK_SB_SG);
	assert_int_equal(r.signal, SIGSEGV);
	assert_int_equal(r.exit_code, -1);
	tk_sandbox_result_free(&r);

	run(&(struct run_args){ .ws = ws, .argv = ARGV("no-such-command-here") }, &r);
	assert_int_equal(r.status, TK_SB_RE);
	assert_int_equal(r.exit_code, 127);
	assert_non_null(strstr(r.message, "cannot execute no-such-command-here"));
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_stdin(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512], in[512];
	ws_new(ws, sizeof ws);
	ws_new(in, sizeof in);
	write_file(in, "input.txt", "hello stdin\nsecond line\n", 0644);
	char path[600];
	snprintf(path, sizeof path, "%s/input.txt", in);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("tr", "a-z", "A-Z"), .stdin_path = path },
	    &r);
	assert_int_equal(r.status, TK_SB_OK);
	assert_string_equal(tk_buf_str(&r.out), "HELLO STDIN\nSECOND LINE\n");
	tk_sandbox_result_free(&r);
	/* no stdin: /dev/null */
	run(&(struct run_args){ .ws = ws, .argv = ARGV("wc", "-c") }, &r);
	assert_int_equal(r.status, TK_SB_OK);
	assert_int_equal(atoi(tk_buf_str(&r.out)), 0);
	tk_sandbox_result_free(&r);
	ws_free(ws);
	tk_test_rmtree(in);
}

static void test_c_build_and_tests(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	write_file(ws, "sum.c", "int sum(int n){int s=0;for(int i=1;i<=n;i++)s+=i;return s;}\n", 0644);
	write_file(ws, "test.c",
		   "#include <stdio.h>\n#include <assert.h>\nint sum(int);\n"
		   "int main(void){assert(sum(0)==0);assert(sum(1)==1);assert(sum(10)==55);\n"
		   "printf(\"3 tests passed\\n\");return 0;}\n", 0644);
	write_file(ws, "Makefile",
		   "CFLAGS=-O2 -Wall -Werror\n"
		   "test: t\n\t./t\n"
		   "t: sum.o test.o\n\t$(CC) -o $@ $^\n", 0644);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .profile = "c", .ws = ws, .argv = ARGV("make", "test") }, &r);
	if (r.status != TK_SB_OK)
		fprintf(stderr, "make: %s\n%s\n", tk_buf_str(&r.out), tk_buf_str(&r.err));
	assert_int_equal(r.status, TK_SB_OK);
	assert_true(has(&r.out, "3 tests passed"));
	tk_sandbox_result_free(&r);
	/* and the result is in the workspace, readable safely */
	struct tk_buf b = TK_BUF_INIT(1 << 20);
	assert_int_equal(tk_sandbox_workspace_read(ws, "sum.o", &b), 0);
	assert_true(b.len > 4 && !memcmp(b.data, "\x7f" "ELF", 4));
	tk_buf_free(&b);
	ws_free(ws);
}

static void test_python_script(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	write_file(ws, "script.py",
		   "import json, sys\nprint(json.dumps({'sum': sum(range(101)), "
		   "'argv': sys.argv[1:]}))\n", 0644);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .profile = "python", .ws = ws,
				.argv = ARGV("python3", "script.py", "a", "b") },
	    &r);
	if (r.status != TK_SB_OK)
		fprintf(stderr, "python: %s\n", tk_buf_str(&r.err));
	assert_int_equal(r.status, TK_SB_OK);
	assert_string_equal(tk_buf_str(&r.out), "{\"sum\": 5050, \"argv\": [\"a\", \"b\"]}\n");
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

/* ---- resource attacks -------------------------------------------------- */

static void test_fork_bomb(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	put_fixture(ws, "forkbomb");
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("./forkbomb"),
				.lim = { .pids = 32, .cpu_ms = 600, .wall_ms = 3000 } },
	    &r);
	assert_int_equal(r.status, TK_SB_TO);
	assert_true(r.limit == TK_SB_LIM_CPU || r.limit == TK_SB_LIM_WALL);
	assert_true(r.limits_hit & (1u << TK_SB_LIM_PIDS));
	assert_int_equal(count_uid_procs(g_opts.uid), 0);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_memory_bomb(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	put_fixture(ws, "membomb");
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("./membomb"), .lim = { .mem_mb = 64 } }, &r);
	assert_int_equal(r.status, TK_SB_ML);
	assert_int_equal(r.limit, TK_SB_LIM_MEMORY);
	assert_int_equal(r.signal, SIGKILL);
	/* the peak the cgroup saw is at the limit, not past it */
	assert_true(r.peak_memory_kb > 32 * 1024 && r.peak_memory_kb <= 64 * 1024 + 1024);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_cpu_burn_threads(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	put_fixture(ws, "cpuburn");
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("./cpuburn"),
				.lim = { .cpu_ms = 400, .wall_ms = 20000 } },
	    &r);
	assert_int_equal(r.status, TK_SB_TO);
	assert_int_equal(r.limit, TK_SB_LIM_CPU);
	assert_true(r.cpu_ms >= 400);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_sleep_past_wall(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("sleep", "30"), .lim = { .wall_ms = 300 } },
	    &r);
	assert_int_equal(r.status, TK_SB_TO);
	assert_int_equal(r.limit, TK_SB_LIM_WALL);
	assert_true(r.wall_ms >= 300 && r.wall_ms < 30000);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_output_flood(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("yes"), .lim = { .output_kb = 64 },
				.capture = 4096 },
	    &r);
	assert_int_equal(r.status, TK_SB_OL);
	assert_int_equal(r.limit, TK_SB_LIM_OUTPUT);
	assert_true(r.stdout_bytes > 64 * 1024);
	assert_true(r.stdout_truncated);
	assert_int_equal(r.out.len, 4096);
	assert_true(!strncmp(r.out.data, "y\ny\ny\n", 6));
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

struct collected {
	size_t bytes[3];
	struct tk_buf text;
};

static void collect(void *arg, int stream, const char *data, size_t n)
{
	struct collected *c = arg;
	assert_true(stream == 1 || stream == 2);
	c->bytes[stream] += n;
	if (stream == 1)
		tk_buf_append(&c->text, data, n);
}

static void test_output_streaming(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	struct collected c = { { 0, 0, 0 }, TK_BUF_INIT(1 << 20) };
	struct tk_sandbox_spec spec = {
		.profile = tk_sandbox_profile_find(&g_set, "shell"), .workspace = ws,
		.argv = ARGV("sh", "-c", "echo out1; echo err1 >&2; echo out2"),
		.opts = &g_opts, .on_output = collect, .on_output_arg = &c,
	};
	struct tk_sandbox_result r;
	assert_int_equal(tk_sandbox_run(&spec, &r), 0);
	assert_int_equal(r.status, TK_SB_OK);
	assert_string_equal(tk_buf_str(&c.text), "out1\nout2\n");
	assert_int_equal(c.bytes[1], r.stdout_bytes);
	assert_int_equal(c.bytes[2], r.stderr_bytes);
	tk_sandbox_result_free(&r);
	/* a flood is forwarded only up to the output limit */
	memset(c.bytes, 0, sizeof c.bytes);
	tk_buf_reset(&c.text);
	spec.argv = ARGV("yes");
	spec.limits.output_kb = 16;
	assert_int_equal(tk_sandbox_run(&spec, &r), 0);
	assert_int_equal(r.status, TK_SB_OL);
	assert_int_equal(c.bytes[1] + c.bytes[2], 16 * 1024);
	assert_true(r.stdout_bytes > 16 * 1024);
	tk_sandbox_result_free(&r);
	tk_buf_free(&c.text);
	ws_free(ws);
}

struct canceller {
	atomic_bool flag;
};

static void *cancel_later(void *arg)
{
	struct canceller *c = arg;
	sleep_ms(200);
	atomic_store(&c->flag, true);
	return NULL;
}

static void test_cancel(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	struct canceller c;
	atomic_init(&c.flag, false);
	struct tk_sandbox_spec spec = {
		.profile = tk_sandbox_profile_find(&g_set, "shell"), .workspace = ws,
		.argv = ARGV("sh", "-c", "sleep 30 & sleep 30"), .opts = &g_opts,
		.cancel = &c.flag,
	};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_later, &c), 0);
	struct tk_sandbox_result r;
	assert_int_equal(tk_sandbox_run(&spec, &r), 0);
	pthread_join(t, NULL);
	assert_int_equal(r.status, TK_SB_XX);
	assert_string_equal(r.message, "cancelled");
	assert_true(r.wall_ms >= 200 && r.wall_ms < 30000);
	assert_int_equal(count_uid_procs(g_opts.uid), 0);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_file_size(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws,
				.argv = ARGV("dd", "if=/dev/zero", "of=big", "bs=1M", "count=8"),
				.lim = { .fsize_mb = 2 } },
	    &r);
	assert_int_equal(r.status, TK_SB_OL);
	assert_int_equal(r.limit, TK_SB_LIM_FSIZE);
	assert_int_equal(r.signal, SIGXFSZ);
	char path[600];
	snprintf(path, sizeof path, "%s/big", ws);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size <= 2 * 1024 * 1024);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_disk_and_inode_fill(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	struct tk_sandbox_result r;
	/* many files, each under the file-size limit: only the quota stops it */
	run(&(struct run_args){ .ws = ws,
				.argv = ARGV("sh", "-c",
					     "for i in 1 2 3 4 5 6; do head -c 3M /dev/zero > f$i; done"),
				.lim = { .disk_mb = 8, .fsize_mb = 4 } },
	    &r);
	assert_int_equal(r.status, TK_SB_OL);
	assert_int_equal(r.limit, TK_SB_LIM_DISK);
	tk_sandbox_result_free(&r);
	ws_free(ws);

	ws_new(ws, sizeof ws);
	run(&(struct run_args){ .ws = ws,
				.argv = ARGV("sh", "-c",
					     "i=0; while [ $i -lt 1500 ]; do : > f$i; i=$((i+1)); done"),
				.lim = { .disk_inodes = 300 } },
	    &r);
	assert_int_equal(r.status, TK_SB_OL);
	assert_int_equal(r.limit, TK_SB_LIM_DISK);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_deep_tree(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	/* A tree deeper than any walker should hold open: the quota calls it
	 * over the limit, and removal still takes all of it. */
	char ws[512];
	ws_new(ws, sizeof ws);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws,
				.argv = ARGV("sh", "-c",
					     "i=0; while [ $i -lt 400 ]; do mkdir d && cd d || exit 1; "
					     "i=$((i+1)); done; echo x > leaf; ln -s / up; echo deep") },
	    &r);
	assert_int_equal(r.status, TK_SB_OL);
	assert_int_equal(r.limit, TK_SB_LIM_DISK);
	tk_sandbox_result_free(&r);
	ws_free(ws);
	assert_int_equal(access(ws, F_OK), -1);

	/* the same, built here, to be sure of the depth */
	ws_new(ws, sizeof ws);
	int fd = open(ws, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	for (int i = 0; i < 400; i++) {
		assert_int_equal(mkdirat(fd, "d", 0700), 0);
		int sub = openat(fd, "d", O_RDONLY | O_DIRECTORY);
		assert_true(sub >= 0);
		close(fd);
		fd = sub;
	}
	assert_int_equal(symlinkat("/", fd, "up"), 0);
	close(fd);
	uint64_t bytes, inodes;
	assert_int_equal(tk_sandbox_workspace_usage(ws, &bytes, &inodes), TK_ELIMIT);
	ws_free(ws);
	assert_int_equal(access(ws, F_OK), -1);
}

static void test_tmp_and_shm_fill(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512], marker[128];
	ws_new(ws, sizeof ws);
	snprintf(marker, sizeof marker, "tanuki-sbtest-%d", (int)getpid());
	char script[1024];
	snprintf(script, sizeof script,
		 "head -c 16M /dev/zero > /tmp/%s; echo tmp=$?; "
		 "head -c 16M /dev/zero > /dev/shm/%s; echo shm=$?; "
		 "i=0; while printf '' > /tmp/n$i; do i=$((i+1)); done 2>/dev/null; "
		 "echo files=$i",
		 marker, marker);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("sh", "-c", script), .lim = { .tmp_mb = 4 } },
	    &r);
	assert_int_equal(r.status, TK_SB_OK);
	assert_true(has(&r.out, "tmp=1"));
	assert_true(has(&r.out, "shm=1"));
	assert_true(has(&r.err, "No space left on device"));
	const char *f = strstr(tk_buf_str(&r.out), "files=");
	assert_non_null(f);
	long files = atol(f + 6);
	assert_true(files > 0 && files < 4 * 256 + 1024);
	/* nothing of it on the host */
	char path[256];
	snprintf(path, sizeof path, "/tmp/%s", marker);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof path, "/dev/shm/%s", marker);
	assert_int_equal(access(path, F_OK), -1);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_daemon_survivor(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	put_fixture(ws, "daemon");
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("./daemon") }, &r);
	assert_int_equal(r.status, TK_SB_OK);
	assert_int_equal(count_uid_procs(g_opts.uid), 0);
	/* If the grandchild lived, "alive" would keep changing. */
	struct tk_buf a = TK_BUF_INIT(256), b = TK_BUF_INIT(256);
	int ra = tk_sandbox_workspace_read(ws, "alive", &a);
	sleep_ms(60);
	int rb = tk_sandbox_workspace_read(ws, "alive", &b);
	assert_int_equal(ra, rb);
	if (ra == 0)
		assert_string_equal(tk_buf_str(&a), tk_buf_str(&b));
	tk_buf_free(&a);
	tk_buf_free(&b);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

/* ---- network ----------------------------------------------------------- */

static void test_network_none(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	put_fixture(ws, "net");
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("./net", "9") }, &r);
	assert_int_equal(r.status, TK_SB_OK);
	static const char *const refused[] = { "tcp4_local", "udp4_local", "tcp4_outside",
					       "udp4_outside", "tcp6_local", "tcp6_outside",
					       "raw4", "raw6", "packet", "netlink" };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		char line[64];
		snprintf(line, sizeof line, "%s: EAFNOSUPPORT\n", refused[i]);
		if (!has(&r.out, line))
			fail_msg("missing '%s' in:\n%s", line, tk_buf_str(&r.out));
	}
	assert_true(has(&r.out, "dns: failed\n"));
	assert_true(has(&r.out, "unix: ok\n"));
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_network_loopback(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	/* The host listens on 127.0.0.1 (TCP and UDP, same port): the box has
	 * its own loopback and must not reach ours. */
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int us = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_true(ls >= 0 && us >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t al = sizeof a;
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &al), 0);
	assert_int_equal(listen(ls, 4), 0);
	assert_int_equal(bind(us, (struct sockaddr *)&a, sizeof a), 0);
	char port[16];
	snprintf(port, sizeof port, "%d", ntohs(a.sin_port));

	char ws[512];
	ws_new(ws, sizeof ws);
	put_fixture(ws, "net");
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("./net", port), .net = TK_SB_NET_LOOPBACK },
	    &r);
	assert_int_equal(r.status, TK_SB_OK);
	assert_true(has(&r.out, "tcp4_local: ECONNREFUSED\n"));
	assert_true(has(&r.out, "tcp6_local: ECONNREFUSED\n"));
	assert_true(has(&r.out, "tcp4_outside: ENETUNREACH\n"));
	assert_true(has(&r.out, "udp4_outside: ENETUNREACH\n"));
	assert_true(has(&r.out, "tcp6_outside: ENETUNREACH\n"));
	assert_true(has(&r.out, "dns: failed\n"));
	assert_true(has(&r.out, "raw4: EPERM\n"));
	assert_true(has(&r.out, "raw6: EPERM\n"));
	assert_true(has(&r.out, "packet: EAFNOSUPPORT\n"));
	assert_true(has(&r.out, "netlink: EAFNOSUPPORT\n"));
	/* nothing arrived at the host's sockets */
	assert_int_equal(accept(ls, NULL, NULL), -1);
	assert_int_equal(errno, EAGAIN);
	char buf[8];
	assert_int_equal(recv(us, buf, sizeof buf, 0), -1);
	assert_int_equal(errno, EAGAIN);
	close(ls);
	close(us);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

/* ---- reaching the host ------------------------------------------------- */

static void test_host_secrets(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	static const char secret[] = "zq-supervisor-secret-7731";
	static const char other[] = "other-task-private-data";
	setenv("TK_SANDBOX_TEST_SECRET", secret, 1);
	char ws[512], ws2[512];
	ws_new(ws, sizeof ws);
	ws_new(ws2, sizeof ws2);
	write_file(ws2, "secret.txt", other, 0644);
	char script[2048];
	snprintf(script, sizeof script,
		 "cat /etc/shadow; cat /proc/1/environ; ls -a /root/.ssh /root /home; "
		 "cat %s/secret.txt; env; cat /proc/*/environ; "
		 "find / -name secret.txt 2>/dev/null; grep -rs %s /tmp /workspace /etc /dev; "
		 "cat /proc/1/cmdline | tr '\\0' ' '; echo end",
		 ws2, other);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("sh", "-c", script) }, &r);
	if (!(r.status == TK_SB_OK || r.status == TK_SB_RE) || !has(&r.out, "end\n"))
		fail_msg("%s %s\nout: %s\nerr: %s", tk_sandbox_status_name(r.status), r.message,
			 tk_buf_str(&r.out), tk_buf_str(&r.err));
	assert_false(has(&r.out, secret));
	assert_false(has(&r.err, secret));
	assert_false(has(&r.out, other));
	assert_true(has(&r.err, "/etc/shadow: No such file or directory"));
	assert_true(has(&r.err, "/proc/1/environ: Permission denied"));
	assert_true(has(&r.err, "/root/.ssh"));
	/* the environment is exactly the profile's */
	assert_true(has(&r.out, "PATH=/usr/local/bin:/usr/bin:/bin\n"));
	assert_false(has(&r.out, "TK_SANDBOX_TEST_SECRET"));
	unsetenv("TK_SANDBOX_TEST_SECRET");
	tk_sandbox_result_free(&r);
	ws_free(ws);
	ws_free(ws2);
}

static void test_inherited_fds(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	put_fixture(ws, "fds");
	/* fds the supervisor leaks on purpose: no O_CLOEXEC */
	char path[600];
	snprintf(path, sizeof path, "%s/fds", ws);
	int leak = open(path, O_RDONLY);
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_true(leak >= 0);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("./fds") }, &r);
	assert_int_equal(r.status, TK_SB_OK);
	assert_string_equal(tk_buf_str(&r.out), "open 0\nopen 1\nopen 2\n");
	close(leak);
	close(p[0]);
	close(p[1]);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_planted_links(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512], host[512];
	ws_new(ws, sizeof ws);
	ws_new(host, sizeof host);
	static const char hsecret[] = "host-only-secret-5512";
	write_file(host, "secret", hsecret, 0600);
	char hfile[600], hdir[600], p[700];
	snprintf(hfile, sizeof hfile, "%s/secret", host);
	snprintf(hdir, sizeof hdir, "%s/dir", host);
	assert_int_equal(mkdir(hdir, 0700), 0);
	write_file(hdir, "keep", "keep me", 0600);
	/* planted before the run, as if an earlier step had left them */
	snprintf(p, sizeof p, "%s/sl", ws);
	assert_int_equal(symlink(hfile, p), 0);
	snprintf(p, sizeof p, "%s/hl", ws);
	assert_int_equal(link(hfile, p), 0);
	snprintf(p, sizeof p, "%s/dl", ws);
	assert_int_equal(symlink(hdir, p), 0);
	write_file(ws, "plain", "plain data", 0644);

	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws,
				.argv = ARGV("sh", "-c",
					     "cat sl; cat hl; ln -s /etc/passwd sl2; "
					     "ln /usr/bin/true hl2 || echo nohardlink; "
					     "mkfifo fifo; echo done") },
	    &r);
	assert_true(has(&r.out, "done"));
	assert_true(has(&r.out, "nohardlink"));
	assert_false(has(&r.out, hsecret));
	tk_sandbox_result_free(&r);

	/* the supervisor's handing-over of the workspace never went through
	 * a link: the host file keeps its owner and mode */
	struct stat st;
	assert_int_equal(stat(hfile, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(hdir, &st), 0);
	assert_int_equal(st.st_uid, 0);

	/* reading results never follows links, hardlinks or FIFOs */
	struct tk_buf b = TK_BUF_INIT(4096);
	assert_int_equal(tk_sandbox_workspace_read(ws, "sl", &b), TK_EPERM);
	assert_int_equal(tk_sandbox_workspace_read(ws, "sl2", &b), TK_EPERM);
	assert_int_equal(tk_sandbox_workspace_read(ws, "hl", &b), TK_EPERM);
	assert_int_equal(tk_sandbox_workspace_read(ws, "dl/keep", &b), TK_EPERM);
	assert_int_equal(tk_sandbox_workspace_read(ws, "fifo", &b), TK_EPERM);
	assert_int_equal(tk_sandbox_workspace_read(ws, "../x", &b), TK_EPERM);
	assert_int_equal(b.len, 0);
	assert_int_equal(tk_sandbox_workspace_read(ws, "plain", &b), 0);
	assert_string_equal(tk_buf_str(&b), "plain data");
	tk_buf_free(&b);

	/* removal takes the links, not their targets */
	ws_free(ws);
	char *kept = tk_test_read_file(hfile, NULL);
	assert_string_equal(kept, hsecret);
	free(kept);
	snprintf(p, sizeof p, "%s/keep", hdir);
	assert_int_equal(access(p, F_OK), 0);
	tk_test_rmtree(host);
}

static void test_setuid_binary(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512], p[2048];
	ws_new(ws, sizeof ws);
	/* A setuid-root copy of id; the workspace is not handed over (that
	 * would clear the bit) but made writable for everyone. */
	assert_int_equal(chmod(ws, 0777), 0);
	snprintf(p, sizeof p, "cp /usr/bin/id %s/id && chown 0:0 %s/id && chmod 4755 %s/id", ws,
		 ws, ws);
	assert_int_equal(system(p), 0);
	struct tk_sandbox_options o = g_opts;
	o.chown_workspace = false;
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("sh", "-c", "ls -l id; ./id -u; ./id -ru"),
				.opts = &o },
	    &r);
	assert_int_equal(r.status, TK_SB_OK);
	assert_true(has(&r.out, "-rwsr-xr-x"));
	char want[64];
	snprintf(want, sizeof want, "\n%u\n%u\n", g_opts.uid, g_opts.uid);
	assert_true(has(&r.out, want));
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_forbidden_syscalls_and_signals(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	/* A host process with the sandbox's uid: kill(-1) inside must not
	 * reach it. */
	pid_t canary = fork();
	assert_true(canary >= 0);
	if (canary == 0) {
		if (setresgid(g_opts.gid, g_opts.gid, g_opts.gid) || setresuid(g_opts.uid, g_opts.uid, g_opts.uid))
			_exit(1);
		for (;;)
			pause();
	}
	char ws[512];
	ws_new(ws, sizeof ws);
	put_fixture(ws, "syscalls");
	struct tk_sandbox_result r;
	char me[16];
	snprintf(me, sizeof me, "%d", (int)getpid());
	run(&(struct run_args){ .ws = ws, .argv = ARGV("./syscalls", me) }, &r);
	assert_int_equal(r.status, TK_SB_OK);
	static const char *const want[] = {
		"ptrace_supervisor: EPERM", "kill_supervisor: ESRCH", "supervisor_environ: ENOENT",
		"mount: EPERM", "umount: EPERM", "fsopen: EPERM", "open_tree: EPERM",
		"pivot_root: EPERM", "chroot: EPERM", "unshare_user: EPERM", "unshare_net: EPERM",
		"setns: EPERM", "clone_newuser: EPERM", "clone3: ENOSYS",
		"ptrace_attach_init: EPERM", "ptrace_traceme: EPERM", "process_vm_readv: EPERM",
		"read_init_environ: EACCES", "open_init_mem: EACCES", "keyctl: EPERM",
		"add_key: EPERM", "bpf: EPERM", "perf_event_open: EPERM", "io_uring_setup: EPERM",
		"kexec_load: EPERM", "init_module: EPERM", "reboot: EPERM", "tiocsti: EPERM",
		"raise_nofile: EPERM", "raise_cpu: EPERM", "kill_all: ESRCH", "ppid: 1",
		"setuid0: EPERM", "survived",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		char line[96];
		snprintf(line, sizeof line, "%s\n", want[i]);
		if (!has(&r.out, line))
			fail_msg("missing '%s' in:\n%s", want[i], tk_buf_str(&r.out));
	}
	int st;
	assert_int_equal(waitpid(canary, &st, WNOHANG), 0); /* still alive */
	kill(canary, SIGKILL);
	waitpid(canary, &st, 0);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static int host_shm_count(void)
{
	FILE *f = fopen("/proc/sysvipc/shm", "r");
	assert_non_null(f);
	int n = -1; /* header line */
	char line[512];
	while (fgets(line, sizeof line, f))
		n++;
	fclose(f);
	return n;
}

static void test_sysv_ipc_left_behind(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	char ws[512];
	ws_new(ws, sizeof ws);
	put_fixture(ws, "shm");
	int before = host_shm_count();
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("./shm", "make") }, &r);
	assert_int_equal(r.status, TK_SB_OK);
	assert_true(has(&r.out, "made shm"));
	tk_sandbox_result_free(&r);
	assert_int_equal(shmget(0x7a4e5b01, 0, 0), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(host_shm_count(), before);
	run(&(struct run_args){ .ws = ws, .argv = ARGV("./shm", "probe") }, &r);
	assert_string_equal(tk_buf_str(&r.out), "shm: No such file or directory\n");
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

/* ---- several at once --------------------------------------------------- */

struct par {
	char ws[512];
	struct tk_sandbox_result r;
};

static void *par_run(void *arg)
{
	struct par *p = arg;
	struct tk_sandbox_spec spec = {
		.profile = tk_sandbox_profile_find(&g_set, "shell"),
		.workspace = p->ws,
		.argv = ARGV("sh", "-c", "echo $$ > pid; ls /workspace; sleep 0.2; cat pid"),
		.opts = &g_opts,
	};
	tk_sandbox_run(&spec, &p->r);
	return NULL;
}

static void test_concurrent_runs(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	enum { N = 4 };
	struct par ps[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		ws_new(ps[i].ws, sizeof ps[i].ws);
		char name[32];
		snprintf(name, sizeof name, "mine-%d", i);
		write_file(ps[i].ws, name, "x", 0644);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_create(&t[i], NULL, par_run, &ps[i]), 0);
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof name, "mine-%d\n", i);
		if (ps[i].r.status != TK_SB_OK)
			fail_msg("run %d: %s: %s", i, tk_sandbox_status_name(ps[i].r.status),
				 ps[i].r.message);
		/* each saw its own workspace only, and was PID 2 of its own ns */
		assert_true(has(&ps[i].r.out, name));
		for (int k = 0; k < N; k++) {
			char other[32];
			snprintf(other, sizeof other, "mine-%d\n", k);
			if (k != i)
				assert_false(has(&ps[i].r.out, other));
		}
		tk_sandbox_result_free(&ps[i].r);
		ws_free(ps[i].ws);
	}
}

static void test_slot_reuse(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	struct tk_sandbox_host h;
	tk_sandbox_probe(&h, false);
	if (h.cgmode != TK_SB_CG_V1)
		skip(); /* slots exist for cgroup v1 only */
	/* Sequential runs borrow the same slot: its count does not grow, and
	 * limits and counters are per run (a memory kill, then a clean run). */
	char ws[512];
	ws_new(ws, sizeof ws);
	put_fixture(ws, "membomb");
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("true") }, &r);
	tk_sandbox_result_free(&r);
	int slots = count_own_slots();
	assert_true(slots >= 1);
	run(&(struct run_args){ .ws = ws, .argv = ARGV("./membomb"), .lim = { .mem_mb = 48 } }, &r);
	assert_int_equal(r.status, TK_SB_ML);
	tk_sandbox_result_free(&r);
	run(&(struct run_args){ .ws = ws, .argv = ARGV("sh", "-c", "head -c 40M /dev/zero | wc -c"),
				.lim = { .mem_mb = 256 } },
	    &r);
	assert_int_equal(r.status, TK_SB_OK);
	assert_int_equal(r.limits_hit, 0); /* the earlier OOM is not this run's */
	assert_string_equal(tk_buf_str(&r.out), "41943040\n");
	tk_sandbox_result_free(&r);
	assert_int_equal(count_own_slots(), slots);
	/* a forked copy of this process has no spawner threads: it must make
	 * its own slot, not wait for ours */
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct tk_sandbox_spec spec = {
			.profile = tk_sandbox_profile_find(&g_set, "shell"), .workspace = ws,
			.argv = ARGV("true"), .opts = &g_opts };
		struct tk_sandbox_result cr;
		int crc = tk_sandbox_run(&spec, &cr);
		bool ok = crc == 0 && cr.status == TK_SB_OK;
		tk_sandbox_shutdown();
		_exit(ok ? 0 : 1);
	}
	int st;
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* without reuse: a per-run cgroup, same outcome */
	struct tk_sandbox_options o = g_opts;
	o.reuse_cgroups = false;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("./membomb"), .lim = { .mem_mb = 48 },
				.opts = &o },
	    &r);
	assert_int_equal(r.status, TK_SB_ML);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_supervisor_ignores_sigchld(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	/* A host application that ignores SIGCHLD (children auto-reaped) must
	 * still get the real status. */
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	sigemptyset(&ign.sa_mask);
	assert_int_equal(sigaction(SIGCHLD, &ign, &old), 0);
	char ws[512];
	ws_new(ws, sizeof ws);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws, .argv = ARGV("sh", "-c", "exit 9") }, &r);
	sigaction(SIGCHLD, &old, NULL);
	assert_int_equal(r.status, TK_SB_RE);
	assert_int_equal(r.exit_code, 9);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

/* ---- records, metrics, refusal ----------------------------------------- */

/* The value of the exposition line starting with prefix, 0 when absent. */
static double exposed_value(const char *prefix)
{
	struct tk_buf e = TK_BUF_INIT(1 << 22);
	assert_int_equal(tk_metrics_expose(NULL, &e), 0);
	double v = 0;
	const char *p = e.data ? strstr(e.data, prefix) : NULL;
	if (p)
		v = strtod(p + strlen(prefix), NULL);
	tk_buf_free(&e);
	return v;
}

static void test_result_json_and_metrics(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	struct tk_metric *runs = tk_metric_counter(NULL, "tanuki_sandbox_runs_total",
						   "Sandbox runs by profile and result status",
						   (const char *[]){ "profile", "status" }, 2);
	assert_non_null(runs);
	struct tk_series *re = tk_metric_series(runs, (const char *[]){ "shell", "RE" });
	double before = tk_series_value(re);
	double wall_before = exposed_value("tanuki_sandbox_wall_seconds_count{profile=\"shell\"} ");
	char ws[512];
	ws_new(ws, sizeof ws);
	struct tk_sandbox_result r;
	run(&(struct run_args){ .ws = ws,
				.argv = ARGV("sh", "-c", "printf 'ok \\377\\n'; exit 5") },
	    &r);
	assert_int_equal(r.status, TK_SB_RE);
	assert_true(tk_series_value(re) >= before + 1);
	assert_true(exposed_value("tanuki_sandbox_wall_seconds_count{profile=\"shell\"} ") >=
		    wall_before + 1);
	struct tk_buf expo = TK_BUF_INIT(1 << 22);
	assert_int_equal(tk_metrics_expose(NULL, &expo), 0);
	assert_true(has(&expo, "tanuki_sandbox_runs_total{profile=\"shell\",status=\"RE\"}"));
	assert_true(has(&expo, "tanuki_sandbox_wall_seconds_count{profile=\"shell\"}"));
	assert_true(has(&expo, "tanuki_sandbox_cpu_seconds_bucket{profile=\"shell\",le=\"0.001\"}"));
	assert_true(has(&expo, "tanuki_sandbox_peak_memory_bytes_sum{profile=\"shell\"}"));
	tk_buf_free(&expo);
	json_t *j = tk_sandbox_result_to_json(&r, true);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "RE");
	assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 5);
	assert_string_equal(json_string_value(json_object_get(j, "limit")), "none");
	assert_int_equal(json_integer_value(json_object_get(j, "stdout_bytes")), 5);
	/* the invalid byte became U+FFFD */
	assert_string_equal(json_string_value(json_object_get(j, "stdout")), "ok \xef\xbf\xbd\n");
	assert_true(json_is_integer(json_object_get(j, "cpu_ms")));
	assert_true(json_is_integer(json_object_get(j, "wall_ms")));
	assert_true(json_is_integer(json_object_get(j, "max_rss_kb")));
	assert_true(json_is_boolean(json_object_get(j, "stdout_truncated")));
	json_decref(j);
	tk_sandbox_result_free(&r);
	ws_free(ws);
}

static void test_bad_specs(void **state)
{
	(void)state;
	struct tk_sandbox_result r;
	const struct tk_sandbox_profile *p = tk_sandbox_profile_find(&g_set, "shell");
	struct tk_sandbox_spec spec = { .profile = p, .workspace = "/tmp", .argv = NULL };
	assert_int_equal(tk_sandbox_run(&spec, &r), TK_EINVAL);
	assert_int_equal(r.status, TK_SB_XX);
	tk_sandbox_result_free(&r);
	if (g_skip)
		return;
	spec.argv = ARGV("true");
	spec.limits.wall_ms = UINT64_MAX; /* would overflow a deadline in ns */
	assert_int_equal(tk_sandbox_run(&spec, &r), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "wall_ms"));
	tk_sandbox_result_free(&r);
	spec.limits.wall_ms = 0;
	spec.workspace = "/nonexistent/tanuki/ws";
	spec.opts = &g_opts;
	assert_int_equal(tk_sandbox_run(&spec, &r), 0);
	assert_int_equal(r.status, TK_SB_XX);
	assert_non_null(strstr(r.message, "/nonexistent/tanuki/ws"));
	tk_sandbox_result_free(&r);
}

static void test_stale_cgroups_swept(void **state)
{
	(void)state;
	SKIP_IF_INSECURE();
	struct tk_sandbox_host h;
	tk_sandbox_probe(&h, false);
	const char *base = h.cg_v2_dir[0] ? h.cg_v2_dir : h.cg_pids_dir;
	assert_true(base[0] != '\0');
	/* a pid that just died: a crashed supervisor's */
	pid_t dead = fork();
	assert_true(dead >= 0);
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	char stale[1024], live[1024];
	snprintf(stale, sizeof stale, "%s/run-%d-7", base, (int)dead);
	snprintf(live, sizeof live, "%s/run-%d-9999", base, (int)getpid());
	assert_int_equal(mkdir(stale, 0700), 0);
	assert_int_equal(mkdir(live, 0700), 0);
	tk_sandbox_probe(&h, true);
	assert_int_equal(access(stale, F_OK), -1);
	assert_int_equal(access(live, F_OK), 0); /* ours: we are alive */
	assert_int_equal(rmdir(live), 0);
}

static void test_doctor(void **state)
{
	(void)state;
	struct tk_sandbox_host h;
	tk_sandbox_probe(&h, false);
	struct tk_buf b = TK_BUF_INIT(1 << 16);
	assert_int_equal(tk_sandbox_doctor_text(&h, &b), 0);
	assert_true(has(&b, "memory"));
	assert_true(has(&b, "cpu time"));
	assert_true(has(&b, tk_sandbox_host_secure(&h) ? "verdict: OK" : "verdict: INSECURE"));
	tk_buf_free(&b);
	json_t *j = tk_sandbox_doctor_json(&h);
	assert_non_null(j);
	assert_true(json_is_boolean(json_object_get(j, "secure")));
	assert_int_equal(json_is_true(json_object_get(j, "secure")), tk_sandbox_host_secure(&h));
	assert_non_null(json_object_get(json_object_get(j, "limits"), "memory"));
	json_decref(j);
}

/* ---- profiles (no sandbox needed) -------------------------------------- */

static void test_profiles_builtin(void **state)
{
	(void)state;
	struct tk_sandbox_profiles set;
	tk_sandbox_profiles_defaults(&set);
	assert_int_equal(set.n, 3);
	static const char *const names[] = { "c", "python", "shell" };
	for (size_t i = 0; i < 3; i++) {
		const struct tk_sandbox_profile *p = tk_sandbox_profile_find(&set, names[i]);
		assert_non_null(p);
		assert_int_equal(tk_sandbox_profile_check(p), 0);
		assert_int_equal(p->net, TK_SB_NET_NONE);
	}
	assert_null(tk_sandbox_profile_find(&set, "rust"));
}

static void test_profiles_json(void **state)
{
	(void)state;
	struct tk_sandbox_profiles set;
	tk_sandbox_profiles_defaults(&set);
	int rc = tk_sandbox_profiles_load_json(
		&set, "{\"rust\": {\"extends\": \"c\", \"binds\": [\"/opt/rust\", "
		      "{\"src\": \"/srv/cache\", \"dst\": \"/cache\", \"rw\": true, \"optional\": true}],"
		      " \"env\": {\"PATH\": \"/opt/rust/bin:/usr/bin\", \"CARGO_HOME\": \"/tmp/c\"},"
		      " \"limits\": {\"cpu_ms\": 5000, \"mem_mb\": 2048}, \"net\": \"loopback\"},"
		      " \"shell\": {\"extends\": \"shell\", \"limits\": {\"wall_ms\": 1234}}}");
	assert_int_equal(rc, 0);
	assert_int_equal(set.n, 4);
	const struct tk_sandbox_profile *c = tk_sandbox_profile_find(&set, "c");
	const struct tk_sandbox_profile *p = tk_sandbox_profile_find(&set, "rust");
	assert_non_null(p);
	assert_int_equal(p->n_binds, c->n_binds + 2);
	assert_string_equal(p->binds[c->n_binds].src, "/opt/rust");
	assert_false(p->binds[c->n_binds].rw);
	assert_string_equal(p->binds[c->n_binds + 1].dst, "/cache");
	assert_true(p->binds[c->n_binds + 1].rw);
	assert_true(p->binds[c->n_binds + 1].optional);
	assert_int_equal(p->n_env, 2);
	assert_int_equal(p->limits.cpu_ms, 5000);
	assert_int_equal(p->limits.mem_mb, 2048);
	assert_int_equal(p->limits.wall_ms, c->limits.wall_ms); /* inherited */
	assert_int_equal(p->net, TK_SB_NET_LOOPBACK);
	assert_int_equal(tk_sandbox_profile_find(&set, "shell")->limits.wall_ms, 1234);
	/* and back to JSON */
	json_t *j = tk_sandbox_profile_to_json(p);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "net")), "loopback");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "limits"), "cpu_ms")),
			 5000);
	json_decref(j);
}

static void test_profiles_json_errors(void **state)
{
	(void)state;
	static const struct {
		const char *json, *needle;
	} bad[] = {
		{ "[1]", "expected an object" },
		{ "{\"x\": 3}", "expected an object" },
		{ "{\"x\": {\"binds\": [\"usr\"]}}", "absolute" },
		{ "{\"x\": {\"binds\": [\"/usr/../etc\"]}}", "normalized" },
		{ "{\"x\": {\"binds\": [\"/etc\"]}}", "may not be shown" },
		{ "{\"x\": {\"binds\": [{\"src\": \"/opt\", \"dst\": \"/proc/x\"}]}}", "mounts itself" },
		{ "{\"x\": {\"binds\": [{\"src\": \"/opt\", \"dst\": \"/etc/passwd\"}]}}", "made by" },
		{ "{\"x\": {\"extends\": \"nope\"}}", "no profile 'nope'" },
		{ "{\"x\": {\"extends\": \"c\", \"limits\": {\"cpu_ms\": 0}}}", "cpu_ms" },
		{ "{\"x\": {\"extends\": \"c\", \"limits\": {\"speed\": 1}}}", "unknown limit" },
		{ "{\"x\": {\"extends\": \"c\", \"net\": \"internet\"}}", "net" },
		{ "{\"x\": {\"extends\": \"c\", \"colour\": 1}}", "colour" },
		{ "{\"x\": {\"extends\": \"c\", \"env\": {\"A\": 1}}}", "env.A" },
		{ "{\"x\": {\"extends\": \"c\", \"env\": {\"1A\": \"v\"}}}", "KEY=value" },
		{ "{\"x\": {\"binds\": [\"/usr\"]}}", "limits" }, /* no extends: limits unset */
		{ "{\"bad name\": {\"extends\": \"c\"}}", "name" },
		{ "{", "sandbox.profiles" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct tk_sandbox_profiles set, copy;
		tk_sandbox_profiles_defaults(&set);
		copy = set;
		int rc = tk_sandbox_profiles_load_json(&set, bad[i].json);
		if (rc == 0 || !strstr(tk_err_detail(), bad[i].needle))
			fail_msg("case %zu (%s): rc %d, detail '%s', wanted '%s'", i, bad[i].json, rc,
				 tk_err_detail(), bad[i].needle);
		/* a failed load changes nothing */
		assert_memory_equal(&set, &copy, sizeof set);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profiles_builtin),
		cmocka_unit_test(test_profiles_json),
		cmocka_unit_test(test_profiles_json_errors),
		cmocka_unit_test(test_doctor),
		cmocka_unit_test(test_stale_cgroups_swept),
		cmocka_unit_test(test_bad_specs),
		cmocka_unit_test(test_echo_ok),
		cmocka_unit_test(test_identity_and_view),
		cmocka_unit_test(test_exit_code_and_signal),
		cmocka_unit_test(test_stdin),
		cmocka_unit_test(test_c_build_and_tests),
		cmocka_unit_test(test_python_script),
		cmocka_unit_test(test_fork_bomb),
		cmocka_unit_test(test_memory_bomb),
		cmocka_unit_test(test_cpu_burn_threads),
		cmocka_unit_test(test_sleep_past_wall),
		cmocka_unit_test(test_output_flood),
		cmocka_unit_test(test_output_streaming),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_file_size),
		cmocka_unit_test(test_disk_and_inode_fill),
		cmocka_unit_test(test_deep_tree),
		cmocka_unit_test(test_tmp_and_shm_fill),
		cmocka_unit_test(test_daemon_survivor),
		cmocka_unit_test(test_network_none),
		cmocka_unit_test(test_network_loopback),
		cmocka_unit_test(test_host_secrets),
		cmocka_unit_test(test_inherited_fds),
		cmocka_unit_test(test_planted_links),
		cmocka_unit_test(test_setuid_binary),
		cmocka_unit_test(test_forbidden_syscalls_and_signals),
		cmocka_unit_test(test_sysv_ipc_left_behind),
		cmocka_unit_test(test_concurrent_runs),
		cmocka_unit_test(test_supervisor_ignores_sigchld),
		cmocka_unit_test(test_slot_reuse),
		cmocka_unit_test(test_result_json_and_metrics),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
