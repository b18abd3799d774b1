/*
 * bench_sandbox.c — start-up cost of the sandbox: wall time of /bin/true run
 * bare (posix_spawn), under bwrap with comparable isolation, through the
 * sandbox API in-process, and through the `tanuki sandbox run` CLI; then a
 * gcc compile + run of a small C program in and out of the sandbox.
 * Prints median and p95 per case. Never passes or fails on time.
 *
 *   bench_sandbox [RUNS] [TANUKI_BIN]     (RUNS default 200)
 */
#include "core/time.h"
#include "sandbox/sandbox.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const char *name, double *ms, int n)
{
	if (n <= 0) {
		printf("%-34s skipped\n", name);
		return;
	}
	qsort(ms, (size_t)n, sizeof *ms, cmp_dbl);
	int p95 = (int)((double)n * 0.95);
	if (p95 >= n)
		p95 = n - 1;
	printf("%-34s n=%-4d median %7.2f ms   p95 %7.2f ms   min %7.2f ms\n", name, n,
	       ms[n / 2], ms[p95], ms[0]);
	fflush(stdout);
}

/* Spawns argv and waits; wall ms, or -1 when it failed. */
static double spawn_ms(char *const *argv, int quiet)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (quiet) {
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 1, 0);
	}
	int64_t t0 = tk_time_mono_ns();
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc)
		return -1;
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	int64_t t1 = tk_time_mono_ns();
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return (double)(t1 - t0) / 1e6;
}

static int run_spawn(const char *name, char *const *argv, int runs, double *ms)
{
	int n = 0;
	for (int i = 0; i < runs; i++) {
		double v = spawn_ms(argv, 1);
		if (v < 0) {
			printf("%-34s failed (is it installed?)\n", name);
			return 0;
		}
		ms[n++] = v;
	}
	report(name, ms, n);
	return n;
}

/* gap_ms > 0: sleep that long before each run, so that kernel state that
 * warms up with frequent runs (the cgroup v1 attach) has gone cold. */
static int run_api(const char *name, const struct tk_sandbox_profile *p, const char *ws,
		   const char *const *argv, const struct tk_sandbox_options *o, int gap_ms,
		   int runs, double *ms)
{
	int n = 0;
	for (int i = 0; i < runs; i++) {
		if (gap_ms > 0) {
			struct timespec ts = { gap_ms / 1000, (long)(gap_ms % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		}
		struct tk_sandbox_spec spec = { .profile = p, .workspace = ws, .argv = argv,
						.opts = o };
		struct tk_sandbox_result r;
		int64_t t0 = tk_time_mono_ns();
		int rc = tk_sandbox_run(&spec, &r);
		int64_t t1 = tk_time_mono_ns();
		if (rc || r.status != TK_SB_OK) {
			printf("%-34s failed: %s %s\n", name, tk_sandbox_status_name(r.status),
			       r.message);
			tk_sandbox_result_free(&r);
			return 0;
		}
		tk_sandbox_result_free(&r);
		ms[n++] = (double)(t1 - t0) / 1e6;
	}
	report(name, ms, n);
	return n;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 200;
	const char *tanuki = argc > 2 ? argv[2] : getenv("TANUKI_BIN");
	if (runs < 1 || runs > 100000) {
		fprintf(stderr, "usage: bench_sandbox [RUNS] [TANUKI_BIN]\n");
		return 2;
	}
	double *ms = calloc((size_t)runs, sizeof *ms);
	if (!ms)
		return 1;
	char ws[] = "/tmp/tanuki-bench-XXXXXX";
	char wsb[] = "/tmp/tanuki-bench-bwrap-XXXXXX"; /* bwrap's: ours is handed to uid 61000 */
	if (!mkdtemp(ws) || !mkdtemp(wsb)) {
		perror("mkdtemp");
		return 1;
	}
	struct tk_sandbox_profiles *set = malloc(sizeof *set);
	if (!set)
		return 1;
	tk_sandbox_profiles_defaults(set);
	const struct tk_sandbox_profile *shell = tk_sandbox_profile_find(set, "shell");
	const struct tk_sandbox_profile *cprof = tk_sandbox_profile_find(set, "c");

	/* The first run of a process pays for the host probe, building the
	 * seccomp program and often a cold cgroup attach (an RCU grace
	 * period in the kernel): shown apart, then excluded. */
	{
		struct tk_sandbox_spec spec = { .profile = shell, .workspace = ws,
						.argv = (const char *const[]){ "/bin/true", NULL } };
		struct tk_sandbox_result r;
		int64_t t0 = tk_time_mono_ns();
		tk_sandbox_run(&spec, &r);
		printf("first in-process run (probe, filter build, slot creation): %.2f ms, %s\n",
		       (double)(tk_time_mono_ns() - t0) / 1e6, tk_sandbox_status_name(r.status));
		tk_sandbox_result_free(&r);
	}
	printf("/bin/true, %d runs each\n", runs);
	run_spawn("bare (posix_spawn)", (char *const[]){ "/bin/true", NULL }, runs, ms);
	/* bwrap with the same isolation as ours, minus what it cannot do:
	 * cgroups, seccomp (it takes a filter on an fd, not built in) and
	 * rlimits. */
	char *const bwrap[] = { "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
				"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
				"--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
				"--symlink", "usr/sbin", "/sbin", "--ro-bind", "/etc/ld.so.cache",
				"/etc/ld.so.cache", "--bind", wsb, "/workspace", "--chdir",
				"/workspace", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
				"--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--uid", "61000",
				"--gid", "61000", "--cap-drop", "ALL", "/bin/true", NULL };
	run_spawn("bwrap --unshare-all (no cgroups)", bwrap, runs, ms);
	struct tk_sandbox_options slots, percg;
	tk_sandbox_options_defaults(&slots);
	tk_sandbox_options_defaults(&percg);
	percg.reuse_cgroups = false;
	const char *const t[] = { "/bin/true", NULL };
	int cold = runs / 4 < 20 ? 20 : runs / 4;
	run_api("API back to back, slots", shell, ws, t, &slots, 0, runs, ms);
	run_api("API back to back, per-run cgroup", shell, ws, t, &percg, 0, runs, ms);
	run_api("API 100 ms apart, slots", shell, ws, t, &slots, 100, cold, ms);
	run_api("API 100 ms apart, per-run cgroup", shell, ws, t, &percg, 100, cold, ms);
	if (tanuki && *tanuki) {
		char *const ver[] = { (char *)tanuki, "version", NULL };
		run_spawn("tanuki version (CLI start-up only)", ver, runs, ms);
		char *const cli[] = { (char *)tanuki, "sandbox", "run", "--workspace", ws, "--",
				      "/bin/true", NULL };
		run_spawn("tanuki sandbox run (CLI process)", cli, runs, ms);
	}

	/* gcc compile + run: a small program, fresh build each time. */
	int cruns = runs / 20 < 5 ? 5 : runs / 20;
	char src[512], sh[1024];
	snprintf(src, sizeof src, "%s/hello.c", ws);
	FILE *f = fopen(src, "w");
	if (!f)
		return 1;
	fputs("#include <stdio.h>\nint main(void){int s=0;for(int i=0;i<1000;i++)s+=i;"
	      "printf(\"%d\\n\",s);return 0;}\n", f);
	fclose(f);
	printf("gcc -O2 hello.c && ./hello, %d runs each\n", cruns);
	snprintf(sh, sizeof sh, "cd %s && gcc -O2 -o hello hello.c && ./hello", ws);
	run_spawn("bare", (char *const[]){ "sh", "-c", sh, NULL }, cruns, ms);
	run_api("tanuki sandbox API, profile c", cprof, ws,
		(const char *const[]){ "sh", "-c", "gcc -O2 -o hello hello.c && ./hello", NULL },
		&slots, 0, cruns, ms);
	tk_sandbox_shutdown();

	tk_sandbox_workspace_remove(ws);
	tk_sandbox_workspace_remove(wsb);
	free(set);
	free(ms);
	return 0;
}
