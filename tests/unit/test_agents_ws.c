/*
 * test_agents_ws.c — the task workspace (src/agents/workspace.c): creation
 * from input files (path checks, caps, nothing left behind on failure),
 * the link-safe primitives (with openat2 and with the component walk), the
 * file tree, the snapshot with its skipped list, and removal that never
 * follows a link. Planted links, fifos and hardlinks are made here directly
 * (test_agents_tools.c makes them from inside the sandbox).
 */
#include "testutil.h"

#include "agents/tools.h"
#include "agents/ws_int.h"
#include "core/buf.h"
#include "core/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_parent[512];

static int setup(void **state)
{
	(void)state;
	tk_test_mkdtemp(g_parent, sizeof g_parent);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	agent_ws_force_walk(false);
	tk_test_rmtree(g_parent);
	return 0;
}

static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static char *host_path(const struct agent_ws *ws, const char *rel)
{
	static char p[1024];
	snprintf(p, sizeof p, "%s/%s", agent_ws_path(ws), rel);
	return p;
}

static void put(const char *path, const char *s)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs(s, f);
	assert_int_equal(fclose(f), 0);
}

#define F(p, c) { (p), (c), sizeof(c) - 1 }

static struct agent_ws *make_ws(void)
{
	static const struct agent_file files[] = {
		F("main.c", "int main(void) { return 0; }\n"),
		F("src/lib/util.c", "/* util */\n"),
		F("./src/b.h", "#pragma once\n"),
		F("README", ""),
	};
	struct agent_ws *ws = NULL;
	assert_int_equal(agent_ws_create(g_parent, files, 4, &ws), 0);
	assert_non_null(ws);
	return ws;
}

/* ---- paths ------------------------------------------------------------- */

static void test_path_check(void **state)
{
	(void)state;
	char n[AGENT_PATH_MAX + 1];
	assert_int_equal(agent_ws_path_check("./a/./b.c", false, n, sizeof n), 0);
	assert_string_equal(n, "a/b.c");
	assert_int_equal(agent_ws_path_check("src/", true, n, sizeof n), 0);
	assert_string_equal(n, "src");
	assert_int_equal(agent_ws_path_check(".", true, n, sizeof n), 0);
	assert_string_equal(n, "");
	assert_int_equal(agent_ws_path_check("", true, n, sizeof n), 0);
	assert_string_equal(n, "");
	const char *bad[] = { "", ".", "/etc/passwd", "../x", "a/../../x", "a//b", "src/", "a/.." };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(agent_ws_path_check(bad[i], false, n, sizeof n), TK_EINVAL);
		assert_true(strlen(tk_err_detail()) > 0);
	}
	assert_int_equal(agent_ws_path_check("/", true, n, sizeof n), TK_EINVAL);
	assert_int_equal(agent_ws_path_check("..", true, n, sizeof n), TK_EINVAL);
	char longc[300];
	memset(longc, 'a', sizeof longc - 1);
	longc[sizeof longc - 1] = '\0';
	assert_int_equal(agent_ws_path_check(longc, false, n, sizeof n), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "255"));
}

/* ---- create ------------------------------------------------------------ */

static void test_create_and_free(void **state)
{
	(void)state;
	struct agent_ws *ws = make_ws();
	char dir[1024];
	snprintf(dir, sizeof dir, "%s", agent_ws_path(ws));
	assert_int_equal(strncmp(dir, g_parent, strlen(g_parent)), 0);
	char *s = tk_test_read_file(host_path(ws, "src/lib/util.c"), NULL);
	assert_string_equal(s, "/* util */\n");
	free(s);
	s = tk_test_read_file(host_path(ws, "src/b.h"), NULL);
	assert_string_equal(s, "#pragma once\n");
	free(s);
	struct stat st;
	assert_int_equal(stat(host_path(ws, "README"), &st), 0);
	assert_int_equal(st.st_size, 0);
	agent_ws_free(ws, false);
	assert_int_equal(stat(dir, &st), -1);
	assert_int_equal(entries(g_parent), 0);

	/* keep leaves it */
	ws = make_ws();
	snprintf(dir, sizeof dir, "%s", agent_ws_path(ws));
	agent_ws_free(ws, true);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(tk_sandbox_workspace_remove(dir), 0);
	agent_ws_free(NULL, false);
}

static void test_create_rejects(void **state)
{
	(void)state;
	struct {
		struct agent_file f[2];
		size_t n;
		const char *detail;
	} cases[] = {
		{ { F("/etc/x", "a") }, 1, "absolute" },
		{ { F("a/../../x", "a") }, 1, ".." },
		{ { F("a//b", "a") }, 1, "empty" },
		{ { F("a", "1"), F("a", "2") }, 2, "twice" },
		{ { F("a", "1"), F("a/b", "2") }, 2, "not a directory" },
		{ { F("", "1") }, 1, "files[0]" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct agent_ws *ws = (struct agent_ws *)1;
		assert_int_equal(agent_ws_create(g_parent, cases[i].f, cases[i].n, &ws), TK_EINVAL);
		assert_null(ws);
		if (!strstr(tk_err_detail(), cases[i].detail))
			fail_msg("case %zu: detail \"%s\" lacks \"%s\"", i, tk_err_detail(),
				 cases[i].detail);
		assert_int_equal(entries(g_parent), 0); /* nothing left behind */
	}
	/* Caps: one file over AGENT_FILE_MAX, too many files. */
	char *big = calloc(1, AGENT_FILE_MAX + 1);
	assert_non_null(big);
	struct agent_file f = { "big", big, AGENT_FILE_MAX + 1 };
	struct agent_ws *ws = NULL;
	assert_int_equal(agent_ws_create(g_parent, &f, 1, &ws), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "too big"));
	free(big);
	struct agent_file *many = calloc(AGENT_WS_FILES_MAX + 1, sizeof *many);
	assert_non_null(many);
	assert_int_equal(agent_ws_create(g_parent, many, AGENT_WS_FILES_MAX + 1, &ws), TK_EINVAL);
	free(many);
	assert_int_equal(entries(g_parent), 0);
}

/* ---- links and other planted entries ----------------------------------- */

static void planted(bool walk)
{
	agent_ws_force_walk(walk);
	struct agent_ws *ws = make_ws();
	char outside[600];
	snprintf(outside, sizeof outside, "%s/outside", g_parent);
	assert_int_equal(mkdir(outside, 0700), 0);
	char secret[700];
	snprintf(secret, sizeof secret, "%s/secret", outside);
	put(secret, "host secret\n");
	assert_int_equal(symlink(secret, host_path(ws, "leak")), 0);
	assert_int_equal(symlink(outside, host_path(ws, "out")), 0);
	assert_int_equal(symlink("../../..", host_path(ws, "src/up")), 0);
	assert_int_equal(mkfifo(host_path(ws, "pipe"), 0600), 0);
	assert_int_equal(link(secret, host_path(ws, "hard")), 0);

	struct tk_buf b = TK_BUF_INIT(1 << 20);
	assert_int_equal(agent_ws_read_file(ws, "leak", AGENT_FILE_MAX, &b), TK_EPERM);
	assert_non_null(strstr(tk_err_detail(), "symbolic link"));
	assert_int_equal(agent_ws_read_file(ws, "out/secret", AGENT_FILE_MAX, &b), TK_EPERM);
	assert_non_null(strstr(tk_err_detail(), "out is a symbolic link"));
	assert_int_equal(agent_ws_read_file(ws, "src/up/etc/passwd", AGENT_FILE_MAX, &b), TK_EPERM);
	assert_int_equal(agent_ws_read_file(ws, "pipe", AGENT_FILE_MAX, &b), TK_EPERM);
	assert_non_null(strstr(tk_err_detail(), "fifo"));
	assert_int_equal(agent_ws_read_file(ws, "hard", AGENT_FILE_MAX, &b), TK_EPERM);
	assert_non_null(strstr(tk_err_detail(), "hard links"));
	assert_int_equal(agent_ws_read_file(ws, "src", AGENT_FILE_MAX, &b), TK_EPERM);
	assert_int_equal(agent_ws_read_file(ws, "nope", AGENT_FILE_MAX, &b), TK_ENOENT);
	assert_int_equal(agent_ws_read_file(ws, "main.c", 5, &b), TK_ELIMIT);
	assert_int_equal(agent_ws_read_file(ws, "main.c", AGENT_FILE_MAX, &b), 0);
	assert_string_equal(tk_buf_str(&b), "int main(void) { return 0; }\n");

	/* Writes never go through a link or into a hardlinked file. */
	assert_int_equal(agent_ws_write_file(ws, "leak", "x", 1, false, NULL), TK_EPERM);
	assert_int_equal(agent_ws_write_file(ws, "out/secret", "x", 1, false, NULL), TK_EPERM);
	assert_int_equal(agent_ws_write_file(ws, "out/new", "x", 1, false, NULL), TK_EPERM);
	assert_int_equal(agent_ws_write_file(ws, "hard", "x", 1, false, NULL), TK_EPERM);
	assert_int_equal(agent_ws_write_file(ws, "pipe", "x", 1, false, NULL), TK_EPERM);
	assert_int_equal(agent_ws_write_file(ws, "main.c/x", "x", 1, false, NULL), TK_EPERM);
	char *s = tk_test_read_file(secret, NULL);
	assert_string_equal(s, "host secret\n");
	free(s);
	char newp[800];
	snprintf(newp, sizeof newp, "%s/new", outside);
	struct stat st;
	assert_int_equal(stat(newp, &st), -1);

	/* A new file in new directories. */
	bool created = false;
	assert_int_equal(agent_ws_write_file(ws, "a/b/c.txt", "hi", 2, false, &created), 0);
	assert_true(created);
	assert_int_equal(agent_ws_write_file(ws, "a/b/c.txt", "hello", 5, false, &created), 0);
	assert_false(created);
	s = tk_test_read_file(host_path(ws, "a/b/c.txt"), NULL);
	assert_string_equal(s, "hello");
	free(s);

	/* The tree shows what is there without following anything. */
	tk_buf_reset(&b);
	assert_int_equal(mkdir(host_path(ws, ".git"), 0700), 0);
	put(host_path(ws, ".git/HEAD"), "ref\n");
	assert_int_equal(agent_ws_tree(ws, 0, &b), 0);
	const char *t = tk_buf_str(&b);
	assert_non_null(strstr(t, "README (0 bytes)\n"));
	assert_non_null(strstr(t, "a/b/c.txt (5 bytes)\n"));
	assert_non_null(strstr(t, "main.c (29 bytes)\n"));
	char want[1200];
	snprintf(want, sizeof want, "leak (symbolic link to %s; not followed)\n", secret);
	assert_non_null(strstr(t, want));
	assert_non_null(strstr(t, "pipe (fifo; not a regular file)\n"));
	assert_non_null(strstr(t, "hard (12 bytes; 2 hard links: refused by the tools)\n"));
	assert_null(strstr(t, ".git"));
	assert_null(strstr(t, "secret ("));
	/* sorted */
	assert_true(strstr(t, "README") < strstr(t, "a/b/c.txt"));
	assert_true(strstr(t, "a/b/c.txt") < strstr(t, "main.c"));
	assert_true(strstr(t, "main.c") < strstr(t, "src/b.h"));
	assert_true(strstr(t, "src/b.h") < strstr(t, "src/lib/util.c"));

	/* A subdirectory, and a file or link given as a directory. */
	tk_buf_reset(&b);
	assert_int_equal(agent_ws_tree_at(ws, "src", 0, &b), 0);
	assert_string_equal(tk_buf_str(&b), "src/b.h (13 bytes)\nsrc/lib/util.c (11 bytes)\n"
					    "src/up (symbolic link to ../../..; not followed)\n");
	assert_int_equal(agent_ws_tree_at(ws, "out", 0, &b), TK_EPERM);
	assert_int_equal(agent_ws_tree_at(ws, "main.c", 0, &b), TK_EINVAL);

	/* The snapshot: text files only, the rest listed with a reason. */
	put(host_path(ws, "bin.dat"), "\x01\x02\xff\xfe");
	json_t *skipped = NULL;
	json_t *snap = agent_ws_snapshot(ws, &skipped);
	assert_non_null(snap);
	assert_non_null(skipped);
	assert_string_equal(json_string_value(json_object_get(snap, "a/b/c.txt")), "hello");
	assert_string_equal(json_string_value(json_object_get(snap, "src/lib/util.c")),
			    "/* util */\n");
	assert_string_equal(json_string_value(json_object_get(snap, "README")), "");
	assert_int_equal(json_object_size(snap), 5);
	const char *expect[][2] = { { ".git", "ignored" }, { "bin.dat", "binary" },
				    { "hard", "hard links" }, { "leak", "symbolic link" },
				    { "out", "symbolic link" }, { "pipe", "fifo" },
				    { "src/up", "symbolic link" } };
	assert_int_equal(json_array_size(skipped), sizeof expect / sizeof expect[0]);
	for (size_t i = 0; i < json_array_size(skipped); i++) {
		json_t *e = json_array_get(skipped, i);
		assert_string_equal(json_string_value(json_object_get(e, "path")), expect[i][0]);
		const char *why = json_string_value(json_object_get(e, "reason"));
		if (!why || !strstr(why, expect[i][1]))
			fail_msg("%s: reason \"%s\"", expect[i][0], why ? why : "(null)");
	}
	json_decref(snap);
	json_decref(skipped);
	tk_buf_free(&b);

	/* Removal takes the links, never their targets. */
	char dir[1024];
	snprintf(dir, sizeof dir, "%s", agent_ws_path(ws));
	agent_ws_free(ws, false);
	assert_int_equal(stat(dir, &st), -1);
	s = tk_test_read_file(secret, NULL);
	assert_string_equal(s, "host secret\n");
	free(s);
	tk_test_rmtree(outside);
	assert_int_equal(entries(g_parent), 0);
	agent_ws_force_walk(false);
}

static void test_planted_openat2(void **state)
{
	(void)state;
	planted(false);
}

static void test_planted_walk(void **state)
{
	(void)state;
	planted(true);
}

/* ---- caps -------------------------------------------------------------- */

static void test_tree_cap_and_snapshot_caps(void **state)
{
	(void)state;
	struct agent_ws *ws = NULL;
	assert_int_equal(agent_ws_create(g_parent, NULL, 0, &ws), 0);
	struct tk_buf b = TK_BUF_INIT(1 << 20);
	assert_int_equal(agent_ws_tree(ws, 0, &b), 0);
	assert_int_equal(b.len, 0);
	for (int i = 0; i < 300; i++) {
		char name[64], p[1200];
		snprintf(name, sizeof name, "f%03d.txt", i);
		snprintf(p, sizeof p, "%s", host_path(ws, name));
		put(p, "x\n");
	}
	assert_int_equal(agent_ws_tree(ws, 400, &b), 0);
	assert_true(b.len <= 400);
	assert_true(!strncmp(tk_buf_str(&b), "f000.txt (2 bytes)\nf001.txt (2 bytes)\n", 38));
	size_t shown = 0;
	for (const char *c = tk_buf_str(&b); *c; c++)
		shown += *c == '\n';
	char more[64];
	snprintf(more, sizeof more, "... %zu more\n", 300 - (shown - 1));
	assert_non_null(strstr(tk_buf_str(&b), more));

	/* A file over AGENT_FILE_MAX is skipped by the snapshot. */
	char *big = malloc(AGENT_FILE_MAX + 10);
	assert_non_null(big);
	memset(big, 'a', AGENT_FILE_MAX + 9);
	big[AGENT_FILE_MAX + 9] = '\0';
	put(host_path(ws, "big.txt"), big);
	free(big);
	json_t *skipped = NULL;
	json_t *snap = agent_ws_snapshot(ws, &skipped);
	assert_non_null(snap);
	assert_int_equal(json_object_size(snap), 300);
	assert_int_equal(json_array_size(skipped), 1);
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(skipped, 0),
								  "reason")),
			       "too big"));
	json_decref(snap);
	json_decref(skipped);
	tk_buf_free(&b);
	agent_ws_free(ws, false);
	assert_int_equal(entries(g_parent), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_check),
		cmocka_unit_test(test_create_and_free),
		cmocka_unit_test(test_create_rejects),
		cmocka_unit_test(test_planted_openat2),
		cmocka_unit_test(test_planted_walk),
		cmocka_unit_test(test_tree_cap_and_snapshot_caps),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
