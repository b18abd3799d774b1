/*
 * bench_agents_tools.c — costs of the agents' workspace tools: the unified
 * diff (src/agents/diff.c) on files of growing size and edit density and
 * on a total rewrite; edit_file's matcher (exact and whitespace-forgiving)
 * on a 1 MiB file; the snapshot of a 2000-file workspace; and `run`
 * (sh -c true through the sandbox) against tk_sandbox_run of /bin/true.
 * Prints median times; never passes or fails on time.
 *
 *   bench_agents_tools [RUNS]      (RUNS default 20; `run` cases need root)
 */
#include "agents/tools.h"
#include "core/time.h"
#include "sandbox/sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const char *name, double *ms, int n)
{
	qsort(ms, (size_t)n, sizeof *ms, cmp_dbl);
	printf("%-52s median %9.3f ms   min %9.3f ms\n", name, ms[n / 2], ms[0]);
	fflush(stdout);
}

static double now_ms(void)
{
	return (double)tk_time_mono_ns() / 1e6;
}

static uint64_t g_rng = 88172645463325252ull;

static uint32_t rnd(uint32_t n)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return (uint32_t)(g_rng % n);
}

/* A C-like file of n lines (a third of them repeated ones) and a copy
 * with one edit every `every` lines. */
static void make_pair(size_t n, size_t every, struct tk_buf *a, struct tk_buf *b)
{
	static const char *rep[] = { "}\n", "\n", "\treturn 0;\n", "{\n" };
	for (size_t i = 0; i < n; i++) {
		char line[96];
		if (rnd(3) == 0)
			snprintf(line, sizeof line, "%s", rep[rnd(4)]);
		else
			snprintf(line, sizeof line, "\tvalue_%zu = compute(%u, %zu);\n", i, rnd(1000),
				 i * 7);
		tk_buf_puts(a, line);
		if (every && rnd((uint32_t)every) == 0) {
			switch (rnd(3)) {
			case 0: /* deleted */
				break;
			case 1: /* replaced */
				tk_buf_printf(b, "\tchanged_%zu();\n", i);
				break;
			default: /* inserted before */
				tk_buf_printf(b, "\tinserted_%zu();\n", i);
				tk_buf_puts(b, line);
			}
		} else {
			tk_buf_puts(b, line);
		}
	}
}

static void bench_diff(const char *name, size_t lines, size_t every, int runs, bool rewrite)
{
	struct tk_buf a = TK_BUF_INIT(64u << 20), b = TK_BUF_INIT(64u << 20);
	make_pair(lines, every, &a, &b);
	if (rewrite) {
		tk_buf_reset(&b);
		for (size_t i = 0; i < lines; i++)
			tk_buf_printf(&b, "\tnew_%zu();\n", i);
	}
	double *ms = calloc((size_t)runs, sizeof *ms);
	size_t out_len = 0;
	for (int r = 0; r < runs; r++) {
		struct tk_buf out = TK_BUF_INIT(256u << 20);
		double t0 = now_ms();
		if (agent_diff_unified("f.c", a.data, a.len, b.data, b.len, &out))
			fprintf(stderr, "diff failed\n");
		ms[r] = now_ms() - t0;
		out_len = out.len;
		tk_buf_free(&out);
	}
	char label[160];
	snprintf(label, sizeof label, "%s (%zu lines, %zu KiB, diff %zu KiB)", name, lines,
		 a.len / 1024, out_len / 1024);
	report(label, ms, runs);
	free(ms);
	tk_buf_free(&a);
	tk_buf_free(&b);
}

static void bench_edit(int runs)
{
	struct tk_buf a = TK_BUF_INIT(2u << 20), b = TK_BUF_INIT(2u << 20);
	make_pair(30000, 0, &a, &b);
	/* a unique line near the end, searched exactly and with other indentation */
	tk_buf_puts(&a, "\tint target = 1;\n\treturn target;\n}\n");
	double *ms = calloc((size_t)runs, sizeof *ms);
	const char *searches[2] = { "\tint target = 1;\n\treturn target;",
				    "    int target = 1;\n    return target;" };
	const char *names[2] = { "edit_file exact match, 1 MiB file",
				 "edit_file whitespace-forgiving match, 1 MiB file" };
	for (int k = 0; k < 2; k++) {
		for (int r = 0; r < runs; r++) {
			char *out = NULL;
			size_t n = 0;
			double t0 = now_ms();
			if (agent_edit_apply(a.data, a.len, searches[k], "x", &out, &n, NULL))
				fprintf(stderr, "edit failed\n");
			ms[r] = now_ms() - t0;
			free(out);
		}
		report(names[k], ms, runs);
	}
	free(ms);
	tk_buf_free(&a);
	tk_buf_free(&b);
}

static void bench_snapshot(int runs)
{
	struct agent_file *f = calloc(2000, sizeof *f);
	char (*names)[64] = calloc(2000, sizeof *names);
	static const char content[] = "int f(void)\n{\n\treturn 42;\n}\n";
	for (int i = 0; i < 2000; i++) {
		snprintf(names[i], sizeof names[i], "dir%02d/file%04d.c", i % 50, i);
		f[i] = (struct agent_file){ names[i], content, sizeof content - 1 };
	}
	double *ms = calloc((size_t)runs, sizeof *ms);
	double *cr = calloc((size_t)runs, sizeof *cr);
	double *fr = calloc((size_t)runs, sizeof *fr);
	for (int r = 0; r < runs; r++) {
		struct agent_ws *ws = NULL;
		double t0 = now_ms();
		if (agent_ws_create(NULL, f, 2000, &ws)) {
			fprintf(stderr, "create failed\n");
			return;
		}
		double t1 = now_ms();
		json_t *skipped = NULL;
		json_t *snap = agent_ws_snapshot(ws, &skipped);
		double t2 = now_ms();
		json_decref(snap);
		json_decref(skipped);
		agent_ws_free(ws, false);
		double t3 = now_ms();
		cr[r] = t1 - t0;
		ms[r] = t2 - t1;
		fr[r] = t3 - t2;
	}
	report("agent_ws_create, 2000 files in 50 directories", cr, runs);
	report("agent_ws_snapshot, 2000 files", ms, runs);
	report("agent_ws_free (remove), 2000 files", fr, runs);
	free(ms);
	free(cr);
	free(fr);
	free(f);
	free(names);
}

static void bench_run(int runs)
{
	if (geteuid() != 0) {
		printf("run: skipped (needs root)\n");
		return;
	}
	struct tk_sandbox_profiles set;
	tk_sandbox_profiles_defaults(&set);
	struct agent_run_opts ro;
	memset(&ro, 0, sizeof ro);
	ro.profile = tk_sandbox_profile_find(&set, "shell");
	struct agent_ws *ws = NULL;
	if (agent_ws_create(NULL, NULL, 0, &ws))
		return;
	double *ms = calloc((size_t)runs, sizeof *ms);
	double *raw = calloc((size_t)runs, sizeof *raw);
	for (int r = 0; r < runs; r++) {
		const char *argv[] = { "/bin/true", NULL };
		struct tk_sandbox_spec spec = { .profile = ro.profile,
						.workspace = agent_ws_path(ws),
						.argv = argv };
		struct tk_sandbox_result res;
		double t0 = now_ms();
		tk_sandbox_run(&spec, &res);
		raw[r] = now_ms() - t0;
		tk_sandbox_result_free(&res);
		struct agent_tool_result tr;
		t0 = now_ms();
		agent_ws_run(ws, "true", &ro, &tr);
		ms[r] = now_ms() - t0;
		agent_tool_result_clear(&tr);
	}
	report("tk_sandbox_run /bin/true (profile shell)", raw, runs);
	report("agent_ws_run \"true\" (sh -c, result text, event)", ms, runs);
	free(ms);
	free(raw);
	agent_ws_free(ws, false);
	tk_sandbox_shutdown();
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 20;
	if (runs < 1)
		runs = 1;
	bench_diff("diff, 1 edit per 50 lines", 1000, 50, runs, false);
	bench_diff("diff, 1 edit per 50 lines", 30000, 50, runs, false);
	bench_diff("diff, 1 edit per 5 lines", 30000, 5, runs, false);
	bench_diff("diff, total rewrite", 30000, 0, runs, true);
	bench_edit(runs);
	bench_snapshot(runs > 5 ? 5 : runs);
	bench_run(runs);
	return 0;
}
