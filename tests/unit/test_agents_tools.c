/*
 * test_agents_tools.c — the agents' tools (src/agents/tools.c): the
 * edit_file matcher (exact, then whitespace-forgiving; not found with the
 * closest line; ambiguous with the count), the file tools' results and
 * events, and `run` in the real sandbox: output and exit codes, the head +
 * tail cap, on_output pass-through, cancel, and hostile commands (fork
 * bomb, endless loop, network, a huge file, a planted link to /etc/passwd)
 * that must end with a clear result after which the file tools refuse the
 * link.
 *
 * The run cases need the sandbox minimum (root, or user namespaces and a
 * delegated cgroup). Like test_sandbox.c, they FAIL on a host without it
 * unless TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1, which skips them loudly.
 */
#include "testutil.h"

#include "agents/tools.h"
#include "agents/ws_int.h"
#include "core/buf.h"
#include "core/err.h"
#include "sandbox/sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_parent[512];
static struct tk_sandbox_profiles g_set;
static struct tk_sandbox_options g_opts;
static bool g_no_sandbox;

static int setup(void **state)
{
	(void)state;
	tk_test_mkdtemp(g_parent, sizeof g_parent);
	tk_sandbox_profiles_defaults(&g_set);
	tk_sandbox_options_defaults(&g_opts);
	/* Our own uid, so concurrent test programs never see each other's
	 * processes. */
	g_opts.uid = g_opts.gid = 58000 + (unsigned)getpid() % 2000;
	struct tk_sandbox_host h;
	tk_sandbox_probe(&h, true);
	if (!tk_sandbox_host_secure(&h)) {
		const char *opt = getenv("TANUKI_SANDBOX_TESTS_ALLOW_INSECURE");
		fprintf(stderr, "test_agents_tools: this host lacks the sandbox minimum: %s\n",
			h.why_not);
		if (!opt || strcmp(opt, "1")) {
			fprintf(stderr, "test_agents_tools: failing; set "
					"TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1 to skip on purpose\n");
			return -1;
		}
		fprintf(stderr, "test_agents_tools: SKIPPING the run cases "
				"(TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1)\n");
		g_no_sandbox = true;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tk_sandbox_shutdown();
	tk_test_rmtree(g_parent);
	return 0;
}

/* ---- the matcher ------------------------------------------------------- */

static char *edit(const char *text, const char *search, const char *replace, int want_rc,
		  int *count)
{
	char *out = (char *)"untouched";
	size_t n = 99;
	int c = -1;
	int rc = agent_edit_apply(text, strlen(text), search, replace, &out, &n, &c);
	if (rc != want_rc)
		fail_msg("agent_edit_apply: rc %d, wanted %d (%s)", rc, want_rc, tk_err_detail());
	if (count)
		*count = c;
	if (rc) {
		assert_null(out);
		return NULL;
	}
	assert_int_equal(n, strlen(out));
	return out;
}

static void test_edit_exact(void **state)
{
	(void)state;
	int c;
	char *r = edit("a\nint x = 1;\nb\n", "x = 1", "x = 2", 0, &c);
	assert_string_equal(r, "a\nint x = 2;\nb\n");
	assert_int_equal(c, 1);
	free(r);
	/* CRLF bytes elsewhere stay as they are */
	r = edit("one\r\ntwo\r\nthree", "two", "2", 0, NULL);
	assert_string_equal(r, "one\r\n2\r\nthree");
	free(r);
	/* ambiguous: the count and where */
	assert_null(edit("x\ny\nx\nz\nx\n", "x\n", "q\n", TK_EEXIST, &c));
	assert_int_equal(c, 3);
	assert_non_null(strstr(tk_err_detail(), "3 times"));
	assert_non_null(strstr(tk_err_detail(), "lines 1, 3, 5"));
	assert_null(edit("abc", "", "x", TK_EINVAL, NULL));
	/* deletion */
	r = edit("keep\ndrop me\nkeep\n", "drop me\n", "", 0, NULL);
	assert_string_equal(r, "keep\nkeep\n");
	free(r);
}

static void test_edit_whitespace(void **state)
{
	(void)state;
	const char *file = "int f(void)\n{\n\tint x = 1;\n\treturn x;\n}\n";
	/* Spaces instead of a tab, trailing blanks, a leading blank line:
	 * the model's usual mistakes. The replacement is re-indented. */
	char *r = edit(file, "\n    int x = 1;  \n    return x;\n", "    int x = 2;\n    return x;\n",
		       0, NULL);
	assert_string_equal(r, "int f(void)\n{\n\tint x = 2;\n\treturn x;\n}\n");
	free(r);
	/* CRLF file, LF search: matched; the file's line endings are kept. */
	const char *crlf = "a\r\n  b\r\n  c\r\nd\r\n";
	r = edit(crlf, "b\nc\n", "B\nC\n", 0, NULL);
	assert_string_equal(r, "a\r\n  B\r\n  C\r\nd\r\n");
	free(r);
	/* A fuzzy deletion removes the lines whole. */
	r = edit(file, "  int x = 1;", "", 0, NULL);
	assert_string_equal(r, "int f(void)\n{\n\treturn x;\n}\n");
	free(r);
	/* Ambiguous only when whitespace is ignored. */
	int c;
	assert_null(edit("\tx;\n  x;\n", " x; ", "y;", TK_EEXIST, &c));
	assert_int_equal(c, 2);
	assert_non_null(strstr(tk_err_detail(), "whitespace is ignored"));
	/* Only whitespace. */
	assert_null(edit(file, " \n\t\n", "x", TK_EINVAL, NULL));
}

static void test_edit_not_found(void **state)
{
	(void)state;
	const char *file = "#include <stdio.h>\n\nint main(void)\n{\n\tprintf(\"hello\\n\");\n"
			   "\treturn 0;\n}\n";
	assert_null(edit(file, "\tprintf(\"Hello, world\\n\");\n\treturn 0;", "x", TK_ENOENT,
			 NULL));
	const char *d = tk_err_detail();
	assert_non_null(strstr(d, "not found"));
	assert_non_null(strstr(d, "line is 5: `\tprintf(\"hello\\n\");`"));
	assert_non_null(strstr(d, "then 6: `\treturn 0;`"));
	assert_null(edit(file, "zzzz qqqq", "x", TK_ENOENT, NULL));
	assert_non_null(strstr(tk_err_detail(), "no line resembles"));
}

/* ---- file tools -------------------------------------------------------- */

static struct agent_ws *make_ws(void)
{
	static const struct agent_file files[] = {
		{ "main.c", "int main(void)\n{\n    return 1;\n}\n",
		  sizeof "int main(void)\n{\n    return 1;\n}\n" - 1 },
	};
	struct agent_ws *ws = NULL;
	assert_int_equal(agent_ws_create(g_parent, files, 1, &ws), 0);
	return ws;
}

/* TK_TOOLS_SHOW=1 prints what the model would read. */
static void show(const struct agent_tool_result *r)
{
	if (getenv("TK_TOOLS_SHOW"))
		fprintf(stderr, "----\n%s\n", r->output);
}

static void call(struct agent_ws *ws, enum agent_tool tool, const char *args_json,
		 const struct agent_run_opts *ro, struct agent_tool_result *r)
{
	json_error_t je;
	json_t *args = json_loads(args_json, JSON_ALLOW_NUL, &je);
	if (!args)
		fail_msg("bad test JSON %s: %s", args_json, je.text);
	assert_int_equal(agent_tool_exec(ws, tool, args, ro, r), 0);
	json_decref(args);
	show(r);
	assert_non_null(r->output);
	assert_non_null(r->event);
	assert_true(json_is_boolean(json_object_get(r->event, "ok")));
	assert_int_equal(json_boolean_value(json_object_get(r->event, "ok")), r->ok);
	assert_string_equal(json_string_value(json_object_get(r->event, "tool")),
			    agent_tool_name(tool));
	/* the event is JSON that serializes */
	char *s = json_dumps(r->event, 0);
	assert_non_null(s);
	free(s);
}

static void test_file_tools(void **state)
{
	(void)state;
	struct agent_ws *ws = make_ws();
	struct agent_tool_result r;

	call(ws, AGENT_TOOL_WRITE_FILE, "{\"path\": \"src/util/x.h\", \"content\": \"#define X 1\\n\"}",
	     NULL, &r);
	assert_true(r.ok);
	assert_string_equal(r.output, "wrote src/util/x.h (12 bytes, new file)");
	assert_int_equal(json_integer_value(json_object_get(r.event, "bytes")), 12);
	agent_tool_result_clear(&r);

	call(ws, AGENT_TOOL_LIST_FILES, "{}", NULL, &r);
	assert_true(r.ok);
	assert_string_equal(r.output, "main.c (33 bytes)\nsrc/util/x.h (12 bytes)\n");
	agent_tool_result_clear(&r);
	call(ws, AGENT_TOOL_LIST_FILES, "{\"path\": \"src/\"}", NULL, &r);
	assert_string_equal(r.output, "src/util/x.h (12 bytes)\n");
	agent_tool_result_clear(&r);
	call(ws, AGENT_TOOL_LIST_FILES, "{\"path\": \"nope\"}", NULL, &r);
	assert_false(r.ok);
	assert_non_null(strstr(r.output, "list_files: nope: no such file"));
	agent_tool_result_clear(&r);

	call(ws, AGENT_TOOL_READ_FILE, "{\"path\": \"./main.c\"}", NULL, &r);
	assert_true(r.ok);
	assert_string_equal(r.output, "int main(void)\n{\n    return 1;\n}\n");
	agent_tool_result_clear(&r);

	call(ws, AGENT_TOOL_EDIT_FILE,
	     "{\"path\": \"main.c\", \"search\": \"\\treturn 1;\", \"replace\": \"\\treturn 0;\"}",
	     NULL, &r);
	assert_true(r.ok);
	assert_non_null(strstr(r.output, "edited main.c"));
	assert_non_null(strstr(r.output, "ignoring whitespace"));
	agent_tool_result_clear(&r);
	char p[1024];
	snprintf(p, sizeof p, "%s/main.c", agent_ws_path(ws));
	char *s = tk_test_read_file(p, NULL);
	assert_string_equal(s, "int main(void)\n{\n    return 0;\n}\n");
	free(s);

	call(ws, AGENT_TOOL_EDIT_FILE,
	     "{\"path\": \"main.c\", \"search\": \"return 7;\", \"replace\": \"x\"}", NULL, &r);
	assert_false(r.ok);
	assert_non_null(strstr(r.output, "edit_file: main.c: the search text was not found"));
	assert_non_null(strstr(r.output, "line is 3"));
	agent_tool_result_clear(&r);

	/* Bad paths and binary files: failed results for the model, not errors. */
	call(ws, AGENT_TOOL_READ_FILE, "{\"path\": \"../etc/passwd\"}", NULL, &r);
	assert_false(r.ok);
	assert_non_null(strstr(r.output, "read_file: ../etc/passwd: \"..\" is not allowed"));
	agent_tool_result_clear(&r);
	call(ws, AGENT_TOOL_WRITE_FILE, "{\"path\": \"/etc/x\", \"content\": \"\"}", NULL, &r);
	assert_false(r.ok);
	agent_tool_result_clear(&r);
	snprintf(p, sizeof p, "%s/bin", agent_ws_path(ws));
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	fwrite("\x7f" "ELF\0\0\xff", 1, 7, f);
	fclose(f);
	call(ws, AGENT_TOOL_READ_FILE, "{\"path\": \"bin\"}", NULL, &r);
	assert_false(r.ok);
	assert_string_equal(r.output, "read_file: bin is binary (7 bytes, not UTF-8 text); it "
				      "cannot be shown or edited as text");
	agent_tool_result_clear(&r);
	call(ws, AGENT_TOOL_WRITE_FILE, "{\"path\": \"a\\u0000b\", \"content\": \"\"}", NULL, &r);
	assert_false(r.ok);
	agent_tool_result_clear(&r);

	/* Programming errors: finish is not a tool here; missing args. */
	json_t *args = json_pack("{s:s}", "summary", "done");
	assert_int_equal(agent_tool_exec(ws, AGENT_TOOL_FINISH, args, NULL, &r), TK_EINVAL);
	assert_null(r.output);
	assert_int_equal(agent_tool_exec(ws, AGENT_TOOL_READ_FILE, args, NULL, &r), TK_EINVAL);
	assert_int_equal(agent_tool_exec(ws, AGENT_TOOL_RUN, args, NULL, &r), TK_EINVAL);
	json_decref(args);
	agent_tool_result_clear(NULL);
	agent_ws_free(ws, false);
}

/* ---- run --------------------------------------------------------------- */

#define NEED_SANDBOX()                                                   \
	do {                                                             \
		if (g_no_sandbox) {                                      \
			fprintf(stderr, "SKIPPED: no sandbox on this host\n"); \
			return;                                          \
		}                                                        \
	} while (0)

static struct agent_run_opts opts(void)
{
	struct agent_run_opts ro;
	memset(&ro, 0, sizeof ro);
	ro.profile = tk_sandbox_profile_find(&g_set, "shell");
	ro.sandbox_opts = &g_opts;
	ro.limits.wall_ms = 10000;
	return ro;
}

struct seen {
	size_t bytes[3];
};

static void count_output(void *arg, int stream, const char *data, size_t n)
{
	(void)data;
	struct seen *s = arg;
	if (stream == 1 || stream == 2)
		s->bytes[stream] += n;
}

static void test_run_basic(void **state)
{
	(void)state;
	NEED_SANDBOX();
	struct agent_ws *ws = make_ws();
	struct agent_run_opts ro = opts();
	struct seen seen = { { 0 } };
	ro.on_output = count_output;
	ro.on_output_arg = &seen;
	struct agent_tool_result r;
	call(ws, AGENT_TOOL_RUN,
	     "{\"command\": \"echo out; echo err >&2; cat main.c | wc -l; echo made > new.txt; "
	     "exit 3\"}",
	     &ro, &r);
	assert_true(r.ok);
	assert_int_equal(r.exit_code, 3);
	assert_int_equal(r.status, TK_SB_RE);
	assert_true(!strncmp(r.output, "exit code 3 [status RE; wall ", 29));
	assert_non_null(strstr(r.output, "--- stdout ---\nout\n4\n--- stderr ---\nerr\n"));
	assert_int_equal(seen.bytes[1], 6);
	assert_int_equal(seen.bytes[2], 4);
	assert_string_equal(json_string_value(json_object_get(r.event, "status")), "RE");
	assert_int_equal(json_integer_value(json_object_get(r.event, "exit_code")), 3);
	assert_true(json_is_integer(json_object_get(r.event, "wall_ms")));
	assert_true(json_is_integer(json_object_get(r.event, "cpu_ms")));
	assert_string_equal(json_string_value(json_object_get(r.event, "limit")), "none");
	assert_int_equal((uint64_t)json_integer_value(json_object_get(r.event, "wall_ms")),
			 r.sandbox_ms);
	agent_tool_result_clear(&r);

	/* What the command wrote is there for the file tools. */
	call(ws, AGENT_TOOL_READ_FILE, "{\"path\": \"new.txt\"}", NULL, &r);
	assert_true(r.ok);
	assert_string_equal(r.output, "made\n");
	agent_tool_result_clear(&r);

	/* The output cap keeps the head and the tail. */
	ro.output_bytes = 1000;
	assert_int_equal(agent_ws_run(ws, "seq 1 20000; echo done >&2", &ro, &r), 0);
	show(&r);
	assert_true(r.ok);
	assert_int_equal(r.exit_code, 0);
	assert_true(strlen(r.output) < 1100);
	assert_non_null(strstr(r.output, "--- stdout ---\n1\n2\n3\n"));
	assert_non_null(strstr(r.output, "19999\n20000\n--- stderr ---\ndone\n"));
	/* seq 1 20000 writes 108894 bytes */
	const char *m = strstr(r.output, "[... ");
	assert_non_null(m);
	unsigned long omitted = strtoul(m + 5, NULL, 10);
	const char *head = strstr(r.output, "--- stdout ---\n") + 15;
	const char *tail = strstr(m, "]\n") + 2;
	const char *se = strstr(r.output, "--- stderr ---");
	assert_int_equal(omitted + (size_t)(m - head) + (size_t)(se - tail), 108894);
	agent_tool_result_clear(&r);

	/* Cancelled before it starts: a failed run, said so. */
	atomic_bool cancel = true;
	ro.cancel = &cancel;
	assert_int_equal(agent_ws_run(ws, "sleep 5", &ro, &r), 0);
	assert_false(r.ok);
	assert_int_equal(r.status, TK_SB_XX);
	assert_non_null(strstr(r.output, "cancelled"));
	agent_tool_result_clear(&r);
	ro.cancel = NULL;

	call(ws, AGENT_TOOL_RUN, "{\"command\": \"  \"}", &ro, &r);
	assert_false(r.ok);
	assert_non_null(strstr(r.output, "empty"));
	agent_tool_result_clear(&r);
	agent_ws_free(ws, false);
}

static void test_run_hostile(void **state)
{
	(void)state;
	NEED_SANDBOX();
	struct agent_ws *ws = make_ws();
	struct agent_run_opts ro = opts();
	ro.limits.wall_ms = 3000;
	ro.limits.cpu_ms = 2000;
	ro.limits.pids = 32;
	ro.limits.fsize_mb = 1;
	struct agent_tool_result r;

	/* A fork bomb: stopped by a limit, and the process cap is reported. */
	assert_int_equal(agent_ws_run(ws, "b() { b | b & }; b; sleep 10", &ro, &r), 0);
	show(&r);
	assert_true(r.ok);
	assert_true(r.status == TK_SB_TO || r.status == TK_SB_ML || r.status == TK_SB_RE ||
		    r.status == TK_SB_SG);
	assert_non_null(strstr(r.output, "limit"));
	agent_tool_result_clear(&r);

	/* An endless loop: the CPU or wall limit, named with its value. */
	assert_int_equal(agent_ws_run(ws, "while :; do :; done", &ro, &r), 0);
	assert_true(r.ok);
	assert_int_equal(r.status, TK_SB_TO);
	assert_true(strstr(r.output, "CPU time limit (2000 ms) reached") ||
		    strstr(r.output, "wall-clock time limit (3000 ms) reached"));
	assert_string_equal(json_string_value(json_object_get(r.event, "status")), "TO");
	assert_true(json_is_null(json_object_get(r.event, "exit_code")));
	agent_tool_result_clear(&r);

	/* A huge file: the file-size limit. */
	assert_int_equal(agent_ws_run(ws, "head -c 50000000 /dev/zero > big", &ro, &r), 0);
	show(&r);
	assert_true(r.ok);
	/* OL when the writer is the command itself; RE 153 (128 + SIGXFSZ)
	 * when sh -c reports its child's death: both say which limit. */
	assert_true(r.status == TK_SB_OL || r.status == TK_SB_RE);
	assert_non_null(strstr(r.output, "file size limit (1 MB) reached"));
	agent_tool_result_clear(&r);

	/* An output flood: the output limit, and still the head and the tail
	 * of what came before it. */
	ro.limits.output_kb = 64;
	ro.output_bytes = 2000;
	assert_int_equal(agent_ws_run(ws, "seq 1 1000000000", &ro, &r), 0);
	show(&r);
	assert_true(r.ok);
	assert_int_equal(r.status, TK_SB_OL);
	assert_non_null(strstr(r.output, "output limit (64 KiB) reached"));
	assert_non_null(strstr(r.output, "--- stdout ---\n1\n2\n3\n"));
	assert_non_null(strstr(r.output, " bytes omitted ...]\n"));
	assert_true(strlen(r.output) < 2200);
	agent_tool_result_clear(&r);
	ro.limits.output_kb = 0;
	ro.output_bytes = 0;

	/* The network is not there. */
	if (access("/usr/bin/python3", X_OK) == 0) {
		assert_int_equal(agent_ws_run(ws, "python3 -c \"import socket; "
					      "socket.create_connection(('1.1.1.1', 80), 2); "
					      "print('CONNECTED')\"",
					      &ro, &r),
				 0);
		assert_true(r.ok);
		assert_int_equal(r.status, TK_SB_RE);
		assert_null(strstr(r.output, "CONNECTED"));
		assert_non_null(strstr(r.output, "Error"));
		agent_tool_result_clear(&r);
	}

	/* A planted link to /etc/passwd and to /etc: the run itself is fine,
	 * the file tools refuse the links afterwards, and nothing outside
	 * changes. */
	struct stat before, after;
	assert_int_equal(stat("/etc/passwd", &before), 0);
	assert_int_equal(agent_ws_run(ws, "ln -s /etc/passwd leak && ln -s /etc etc && "
				      "mkfifo fifo && echo planted",
				      &ro, &r),
			 0);
	assert_int_equal(r.status, TK_SB_OK);
	assert_non_null(strstr(r.output, "planted"));
	agent_tool_result_clear(&r);
	const char *refused[][2] = {
		{ "{\"path\": \"leak\"}", "leak is a symbolic link" },
		{ "{\"path\": \"etc/passwd\"}", "etc is a symbolic link" },
		{ "{\"path\": \"fifo\"}", "fifo is a fifo" },
	};
	for (size_t i = 0; i < 3; i++) {
		call(ws, AGENT_TOOL_READ_FILE, refused[i][0], NULL, &r);
		assert_false(r.ok);
		if (!strstr(r.output, refused[i][1]))
			fail_msg("read %s: %s", refused[i][0], r.output);
		agent_tool_result_clear(&r);
	}
	call(ws, AGENT_TOOL_WRITE_FILE, "{\"path\": \"leak\", \"content\": \"root::0:0::/:/bin/sh\\n\"}",
	     NULL, &r);
	assert_false(r.ok);
	assert_non_null(strstr(r.output, "symbolic link"));
	agent_tool_result_clear(&r);
	call(ws, AGENT_TOOL_EDIT_FILE,
	     "{\"path\": \"etc/passwd\", \"search\": \"root\", \"replace\": \"toor\"}", NULL, &r);
	assert_false(r.ok);
	agent_tool_result_clear(&r);
	call(ws, AGENT_TOOL_LIST_FILES, "{}", NULL, &r);
	assert_non_null(strstr(r.output, "leak (symbolic link to /etc/passwd; not followed)"));
	agent_tool_result_clear(&r);
	call(ws, AGENT_TOOL_LIST_FILES, "{\"path\": \"etc\"}", NULL, &r);
	assert_false(r.ok);
	agent_tool_result_clear(&r);
	json_t *skipped = NULL;
	json_t *snap = agent_ws_snapshot(ws, &skipped);
	assert_non_null(snap);
	assert_non_null(json_object_get(snap, "main.c"));
	assert_null(json_object_get(snap, "leak"));
	assert_int_equal(json_array_size(skipped), 4); /* big, etc, fifo, leak */
	json_decref(snap);
	json_decref(skipped);
	assert_int_equal(stat("/etc/passwd", &after), 0);
	assert_int_equal(before.st_mtime, after.st_mtime);
	assert_int_equal(before.st_size, after.st_size);
	agent_ws_free(ws, false);
	assert_int_equal(stat("/etc/passwd", &after), 0);
	assert_int_equal(before.st_size, after.st_size);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_edit_exact),
		cmocka_unit_test(test_edit_whitespace),
		cmocka_unit_test(test_edit_not_found),
		cmocka_unit_test(test_file_tools),
		cmocka_unit_test(test_run_basic),
		cmocka_unit_test(test_run_hostile),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
