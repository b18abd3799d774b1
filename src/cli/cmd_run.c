/*
 * cmd_run.c — `tanuki run "TASK"`: runs one task through the orchestrator
 * in this process (no server): builds the LLM backend, the agent team, the
 * settings and the sandbox profiles from the configuration, reads the input
 * files, shows the orchestrator's events as live progress on stderr, writes
 * the final files under --out and prints the result on stdout.
 * `--replay FILE` takes the task from a `tanuki tasks export` and answers
 * every model call from its recorded agent turns (scripted backend).
 *
 * Owns everything it builds for the one run; signals: the first SIGINT or
 * SIGTERM raises the task's cancel flag (the task ends as cancelled and the
 * partial result is still written), a second one exits at once (130).
 */
#include "cli/cli.h"

#include "agents/agents.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/time.h"
#include "llm/llm.h"
#include "obs/log.h"
#include "sandbox/sandbox.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
	"usage: tanuki run \"TASK\" [--file PATH]... [--test-command CMD] [--language L]\n"
	"                  [--out DIR] [--config FILE] [--set KEY=VALUE]... [--json]\n"
	"                  [--quiet] [--events FILE]\n"
	"       tanuki run --replay EXPORT.jsonl [--out DIR] [options]\n\n"
	"Runs TASK through the agents in this process (no server): plan, write,\n"
	"build, test and review in the sandbox until the tests pass and the\n"
	"reviewer approves, or a budget ends. The model comes from the llm.*\n"
	"settings (docs/llm.md); the team from agents.* (docs/agents.md).\n\n"
	"  --file PATH         an input file (repeatable; <= 256 files, 1 MiB each,\n"
	"                      4 MiB in all). A relative PATH keeps its path in the\n"
	"                      task's workspace, an absolute one its base name\n"
	"  --test-command CMD  the command that decides success (run with sh -c in\n"
	"                      the sandbox); without it the tester agent writes tests\n"
	"  --language L        c, python, ... (default: guessed)\n"
	"  --out DIR           write the final files there (input files with the\n"
	"                      changes applied; directories are created; nothing is\n"
	"                      written outside DIR)\n"
	"  --replay FILE       take the task from a 'tanuki tasks export' file and\n"
	"                      replay its recorded model replies (scripted backend)\n"
	"  --events FILE       also write every event as JSONL (the export format)\n"
	"  --json              print the result as JSON instead of a summary\n"
	"  --quiet             no progress on stderr\n"
	"  --config FILE       configuration file (default $TANUKI_CONFIG)\n"
	"  --set KEY=VALUE     any configuration key (llm.backend, llm.model, ...)\n\n"
	"Progress goes to stderr (colored on a terminal). Ctrl-C cancels the task\n"
	"(its partial result is still written); a second Ctrl-C quits at once.\n"
	"Exit status: 0 when the task completed, 1 otherwise (failed, timed out,\n"
	"cancelled, or an error), 2 for a usage error.\n";

#define RUN_FILES_MAX 256u
#define RUN_FILE_MAX (1u << 20)
#define RUN_FILES_TOTAL_MAX (4u << 20)
#define RUN_PATH_MAX 1024u
#define REPLAY_MAX (256u << 20) /* bytes of an export file */
#define PROGRESS_LINE_MAX 200   /* bytes of a progress line on a terminal */

/* ---- signals -------------------------------------------------------------- */

static atomic_bool g_cancel;

static void on_signal(int sig)
{
	(void)sig;
	if (atomic_exchange(&g_cancel, true)) {
		static const char m[] = "\ntanuki: run: interrupted again, exiting\n";
		ssize_t w = write(STDERR_FILENO, m, sizeof m - 1);
		(void)w;
		_exit(130);
	}
	static const char m[] = "\ntanuki: run: cancelling (press Ctrl-C again to quit now)\n";
	ssize_t w = write(STDERR_FILENO, m, sizeof m - 1);
	(void)w;
}

/* ---- input ---------------------------------------------------------------- */

/* An input file owned by the run. */
struct in_file {
	char *path;
	char *content;
	size_t size;
};

struct inputs {
	struct in_file *v;
	size_t n, cap;
	size_t total;
};

static void inputs_free(struct inputs *in)
{
	for (size_t i = 0; i < in->n; i++) {
		free(in->v[i].path);
		free(in->v[i].content);
	}
	free(in->v);
	memset(in, 0, sizeof *in);
}

/* Adds a file (path and content are taken over, also on failure). */
static int inputs_add(struct inputs *in, char *path, char *content, size_t size)
{
	int rc = 0;
	if (!tk_store_file_path_valid(path, RUN_PATH_MAX))
		rc = tk_errf(TK_EINVAL, "'%s': not usable as a relative path in the workspace "
			     "(no '..', no empty component)", path);
	else if (in->n >= RUN_FILES_MAX)
		rc = tk_errf(TK_ELIMIT, "more than %u input files", RUN_FILES_MAX);
	else if (size > RUN_FILE_MAX)
		rc = tk_errf(TK_ELIMIT, "%s: larger than %u bytes", path, RUN_FILE_MAX);
	else if (in->total + size > RUN_FILES_TOTAL_MAX)
		rc = tk_errf(TK_ELIMIT, "input files larger than %u bytes together",
			     RUN_FILES_TOTAL_MAX);
	for (size_t i = 0; !rc && i < in->n; i++)
		if (!strcmp(in->v[i].path, path))
			rc = tk_errf(TK_EEXIST, "%s: given twice", path);
	if (!rc && in->n == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : 8;
		struct in_file *v = realloc(in->v, cap * sizeof *v);
		if (!v)
			rc = tk_errf(TK_ENOMEM, "out of memory");
		else {
			in->v = v;
			in->cap = cap;
		}
	}
	if (rc) {
		free(path);
		free(content);
		return rc;
	}
	in->v[in->n++] = (struct in_file){ path, content, size };
	in->total += size;
	return 0;
}

/* The workspace path of a --file argument: the relative path without
 * leading "./", or the base name of an absolute one (malloc'd). */
static char *workspace_path(const char *arg)
{
	if (arg[0] == '/') {
		const char *b = strrchr(arg, '/') + 1;
		return strdup(b);
	}
	while (arg[0] == '.' && arg[1] == '/') {
		arg += 2;
		while (*arg == '/')
			arg++;
	}
	return strdup(arg);
}

static int read_regular(const char *path, size_t max, struct tk_buf *out)
{
	/* O_NONBLOCK: a FIFO must not block the open; it is refused below. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return tk_errf_sys(TK_ENOENT, errno, "%s", path);
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0)
		rc = tk_errf_sys(TK_EIO, errno, "%s", path);
	else if (!S_ISREG(st.st_mode))
		rc = tk_errf(TK_EINVAL, "%s: not a regular file", path);
	else if ((uint64_t)st.st_size > max)
		rc = tk_errf(TK_ELIMIT, "%s: larger than %zu bytes", path, max);
	char chunk[65536];
	for (ssize_t n; !rc && (n = read(fd, chunk, sizeof chunk)) != 0;) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = tk_errf_sys(TK_EIO, errno, "%s: read", path);
		} else if (tk_buf_append(out, chunk, (size_t)n)) {
			rc = tk_errf(TK_ELIMIT, "%s: larger than %zu bytes", path, max);
		}
	}
	close(fd);
	return rc;
}

static int read_input_file(struct inputs *in, const char *arg)
{
	struct tk_buf b = TK_BUF_INIT(RUN_FILE_MAX);
	int rc = read_regular(arg, RUN_FILE_MAX, &b);
	if (rc) {
		tk_buf_free(&b);
		return rc;
	}
	size_t len = 0;
	char *content = tk_buf_detach(&b, &len);
	if (!content && !(content = strdup("")))
		return tk_errf(TK_ENOMEM, "out of memory");
	char *path = workspace_path(arg);
	if (!path) {
		free(content);
		return tk_errf(TK_ENOMEM, "out of memory");
	}
	return inputs_add(in, path, content, len);
}

/* The task of an export: the first "task" event's data (owned copies),
 * and the last recorded terminal status (for the report). */
struct replay_task {
	json_t *task;          /* the task event's data */
	char recorded[32];     /* "completed", ...; "" when not recorded */
};

static int replay_load(const char *path, struct replay_task *rt, struct inputs *in)
{
	struct tk_buf b = TK_BUF_INIT(REPLAY_MAX);
	int rc = read_regular(path, REPLAY_MAX, &b);
	const char *text = tk_buf_str(&b);
	size_t line = 0;
	for (const char *p = text; !rc && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		line++;
		json_t *ev = NULL;
		size_t a = 0;
		while (a < len && (p[a] == ' ' || p[a] == '\t' || p[a] == '\r'))
			a++;
		if (a < len) {
			if (tk_json_parse(p + a, len - a, REPLAY_MAX, &ev))
				rc = tk_err_wrap(TK_EFORMAT, "%s: line %zu", path, line);
			else if (!json_is_object(ev))
				rc = tk_errf(TK_EFORMAT, "%s: line %zu: not an event object", path, line);
		}
		const char *type = json_string_value(json_object_get(ev, "type"));
		json_t *data = json_object_get(ev, "data");
		if (!rc && type && !strcmp(type, "task") && !rt->task && json_is_object(data))
			rt->task = json_incref(data);
		const char *st = json_string_value(json_object_get(data, "status"));
		enum tk_task_status s;
		if (!rc && type && !strcmp(type, "status") && st && tk_task_status_parse(st, &s) == 0 &&
		    tk_task_status_terminal(s))
			snprintf(rt->recorded, sizeof rt->recorded, "%s", st);
		json_decref(ev);
		p = nl ? nl + 1 : p + len;
	}
	tk_buf_free(&b);
	if (rc)
		return rc;
	if (!rt->task)
		return tk_errf(TK_EFORMAT, "%s: no \"task\" event: not a task export", path);
	const json_t *files = json_object_get(rt->task, "files");
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f) {
		const char *fp = json_string_value(json_object_get(f, "path"));
		json_t *c = json_object_get(f, "content");
		if (!fp || !json_is_string(c))
			return tk_errf(TK_EFORMAT, "%s: task event: files[%zu] lacks its path or "
				       "content", path, i);
		char *pc = strdup(fp);
		char *cc = malloc(json_string_length(c) + 1);
		if (cc)
			memcpy(cc, json_string_value(c), json_string_length(c) + 1);
		if (!pc || !cc) {
			free(pc);
			free(cc);
			return tk_errf(TK_ENOMEM, "out of memory");
		}
		if ((rc = inputs_add(in, pc, cc, json_string_length(c))))
			return tk_err_wrap(rc, "%s: task event", path);
	}
	return 0;
}

/* ---- progress ------------------------------------------------------------- */

struct progress {
	bool quiet, tty;
	int64_t t0_ns;
	FILE *events;     /* --events, or NULL */
	const char *events_path;
	int64_t seq;
	bool events_failed;
};

static const char *color_of(const char *type)
{
	if (!strcmp(type, "agent_turn"))
		return "\033[36m"; /* cyan */
	if (!strcmp(type, "tool_call") || !strcmp(type, "tool_result"))
		return "\033[33m"; /* yellow */
	if (!strcmp(type, "test_run") || !strcmp(type, "review"))
		return "\033[35m"; /* magenta */
	if (!strcmp(type, "status") || !strcmp(type, "plan"))
		return "\033[1;32m"; /* bold green */
	if (!strcmp(type, "budget") || !strcmp(type, "context"))
		return "\033[31m"; /* red */
	return "\033[2m";
}

/* Appends s[0..n) with control bytes (a model's text may hold terminal
 * escapes) shown as '?'; keep_nl keeps newlines and tabs. */
static void put_clean(struct tk_buf *b, const char *s, size_t n, bool keep_nl)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool ctl = c < 0x20 || c == 0x7f;
		if (ctl && keep_nl && (c == '\n' || c == '\t'))
			ctl = false;
		tk_buf_putc(b, ctl ? '?' : (char)c);
	}
}

/* Appends " key=value" for a scalar field (strings: the first line, cut at
 * 60 bytes on a UTF-8 boundary). */
static void put_field(struct tk_buf *b, const char *key, const json_t *v)
{
	if (!v || json_is_null(v))
		return;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = strcspn(s, "\n\r"), show = n;
		if (show > 60) {
			show = 60;
			while (show > 0 && ((unsigned char)s[show] & 0xC0) == 0x80)
				show--;
		}
		tk_buf_printf(b, " %s=", key);
		put_clean(b, s, show, false);
		if (show < n || s[n])
			tk_buf_puts(b, "…");
	} else if (json_is_integer(v)) {
		tk_buf_printf(b, " %s=%lld", key, (long long)json_integer_value(v));
	} else if (json_is_real(v)) {
		tk_buf_printf(b, " %s=%.1f", key, json_real_value(v));
	} else if (json_is_boolean(v)) {
		tk_buf_printf(b, " %s=%s", key, json_is_true(v) ? "true" : "false");
	} else if (json_is_array(v)) {
		tk_buf_printf(b, " %s=[%zu]", key, json_array_size(v));
	}
}

static void show_event(struct progress *pg, const char *type, const json_t *data)
{
	struct tk_buf b = TK_BUF_INIT(4096);
	double t = (double)(tk_time_mono_ns() - pg->t0_ns) / 1e9;
	if (pg->tty)
		tk_buf_printf(&b, "\033[2m%6.1fs\033[0m %s%-11s\033[0m", t, color_of(type), type);
	else
		tk_buf_printf(&b, "[%7.1fs] %-11s", t, type);
	/* the interesting fields, in a fixed order */
	static const char *const keys[] = { "agent", "status", "tool", "verdict", "title",
					    "command", "exit_code", "passed", "ok", "end", "turn",
					    "prompt_tokens", "completion_tokens", "duration_ms",
					    "wall_ms", "choice", "issues", "level", "budget",
					    "limit", "reason", "message" };
	const json_t *args = json_object_get(data, "args");
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		put_field(&b, keys[i], json_object_get(data, keys[i]));
		if (!strcmp(keys[i], "tool") && json_is_object(args)) {
			put_field(&b, "path", json_object_get(args, "path"));
			put_field(&b, "command", json_object_get(args, "command"));
		}
	}
	const json_t *err = json_object_get(data, "error");
	put_field(&b, "error", json_is_object(err) ? json_object_get(err, "message") : err);
	if (!strcmp(type, "task"))
		put_field(&b, "files", json_object_get(data, "files"));
	if (!strcmp(type, "plan")) {
		const json_t *plans = json_object_get(data, "plans");
		json_int_t c = json_integer_value(json_object_get(data, "choice"));
		const json_t *steps = json_object_get(json_array_get(plans, (size_t)c), "steps");
		if (json_is_array(steps))
			tk_buf_printf(&b, " steps=%zu", json_array_size(steps));
	}
	if (pg->tty && b.len > PROGRESS_LINE_MAX) {
		/* cut on a UTF-8 boundary */
		size_t n = PROGRESS_LINE_MAX;
		while (n > 0 && ((unsigned char)b.data[n] & 0xC0) == 0x80)
			n--;
		tk_buf_truncate(&b, n);
		tk_buf_puts(&b, "…\033[0m");
	}
	fprintf(stderr, "%s\n", tk_buf_str(&b));
	tk_buf_free(&b);
}

static void record_event(struct progress *pg, const char *type, const json_t *data)
{
	char ts[TK_RFC3339_LEN];
	tk_time_rfc3339(tk_time_real_ns(), ts);
	json_t *ev = json_pack("{s:I, s:s, s:O?, s:s}", "seq", (json_int_t)++pg->seq, "type", type,
			       "data", (json_t *)data, "created_at", ts);
	char *line = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	if (!line || fprintf(pg->events, "%s\n", line) < 0 || fflush(pg->events) != 0) {
		if (!pg->events_failed)
			fprintf(stderr, "tanuki: run: %s: cannot write the event\n", pg->events_path);
		pg->events_failed = true;
	}
	free(line);
	json_decref(ev);
}

static int on_event(void *ud, const char *type, const json_t *data)
{
	struct progress *pg = ud;
	if (pg->events)
		record_event(pg, type, data);
	if (!pg->quiet)
		show_event(pg, type, data);
	return 0;
}

/* ---- output --------------------------------------------------------------- */

/* Opens (creating) the directory chain of path under dfd, component by
 * component without following symbolic links, so nothing lands outside the
 * output directory; returns the fd of the file's directory and sets *base
 * to the file name inside path. */
static int open_parent(int dfd, const char *path, const char **base)
{
	int cur = dup(dfd);
	if (cur < 0)
		return tk_errf_sys(TK_EIO, errno, "dup");
	const char *p = path;
	for (const char *slash; (slash = strchr(p, '/'));) {
		char comp[256];
		size_t n = (size_t)(slash - p);
		if (n == 0 || n >= sizeof comp) {
			close(cur);
			return tk_errf(TK_EINVAL, "%s: bad path component", path);
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
			int e = errno;
			close(cur);
			return tk_errf_sys(TK_EIO, e, "%s: mkdir %s", path, comp);
		}
		int next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(cur);
		if (next < 0)
			return tk_errf_sys(TK_EPERM, e, "%s: %s is not a directory (symbolic links are "
					   "not followed)", path, comp);
		cur = next;
		p = slash + 1;
	}
	*base = p;
	return cur;
}

static int write_out_file(int dfd, const char *path, const char *content, size_t size)
{
	if (!tk_store_file_path_valid(path, RUN_PATH_MAX))
		return tk_errf(TK_EINVAL, "result file '%s': not a relative path", path);
	const char *base;
	int pfd = open_parent(dfd, path, &base);
	if (pfd < 0)
		return pfd;
	int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	int rc = 0;
	if (fd < 0)
		rc = tk_errf_sys(TK_EIO, errno, "%s", path);
	for (size_t off = 0; !rc && off < size;) {
		ssize_t w = write(fd, content + off, size - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			rc = tk_errf_sys(TK_EIO, errno, "%s: write", path);
		else
			off += (size_t)w;
	}
	if (fd >= 0 && close(fd) < 0 && !rc)
		rc = tk_errf_sys(TK_EIO, errno, "%s: close", path);
	close(pfd);
	return rc;
}

static int remove_out_file(int dfd, const char *path)
{
	if (!tk_store_file_path_valid(path, RUN_PATH_MAX))
		return tk_errf(TK_EINVAL, "result file '%s': not a relative path", path);
	const char *base;
	int pfd = open_parent(dfd, path, &base);
	if (pfd < 0)
		return pfd;
	int rc = 0;
	if (unlinkat(pfd, base, 0) < 0 && errno != ENOENT)
		rc = tk_errf_sys(TK_EIO, errno, "%s: unlink", path);
	close(pfd);
	return rc;
}

/* mkdir -p for the --out directory itself. */
static int make_dirs(const char *dir)
{
	char tmp[4096];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof tmp)
		return tk_errf(TK_EINVAL, "--out: bad directory name");
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return tk_errf_sys(TK_EIO, errno, "--out: mkdir %s", tmp);
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return tk_errf_sys(TK_EIO, errno, "--out: mkdir %s", tmp);
	return 0;
}

/* The final tree: the input files, then the result's changes over them. */
static int write_out(const char *dir, const struct inputs *in, const json_t *files, size_t *n_out)
{
	int rc = make_dirs(dir);
	if (rc)
		return rc;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return tk_errf_sys(TK_EIO, errno, "--out: %s", dir);
	*n_out = 0;
	for (size_t i = 0; !rc && i < in->n; i++) {
		bool changed = false;
		size_t k;
		json_t *f;
		json_array_foreach(files, k, f)
			if (!strcmp(tk_json_get_str(f, "path", ""), in->v[i].path))
				changed = true;
		if (!changed && !(rc = write_out_file(dfd, in->v[i].path, in->v[i].content,
						      in->v[i].size)))
			(*n_out)++;
	}
	size_t k;
	json_t *f;
	json_array_foreach(files, k, f) {
		if (rc)
			break;
		const char *path = tk_json_get_str(f, "path", NULL);
		const char *status = tk_json_get_str(f, "status", "modified");
		json_t *c = json_object_get(f, "content");
		if (!path)
			continue;
		if (!strcmp(status, "deleted"))
			rc = remove_out_file(dfd, path);
		else if (json_is_string(c) &&
			 !(rc = write_out_file(dfd, path, json_string_value(c), json_string_length(c))))
			(*n_out)++;
	}
	close(dfd);
	return rc;
}

/* Prints "label: text" with the text's control bytes shown as '?'. */
static void print_clean(const char *label, const char *text)
{
	struct tk_buf b = TK_BUF_INIT(1u << 20);
	put_clean(&b, text, strlen(text), true);
	printf("%s: %s\n", label, tk_buf_str(&b));
	tk_buf_free(&b);
}

static void print_summary(const struct agent_result *r, const char *out_dir, size_t n_written)
{
	printf("status: %s\n", agent_outcome_name(r->outcome));
	if (r->reason && *r->reason)
		print_clean("reason", r->reason);
	if (r->summary && *r->summary)
		print_clean("summary", r->summary);
	size_t n = json_array_size(r->files);
	printf("changed files: %zu\n", n);
	size_t i;
	json_t *f;
	json_array_foreach(r->files, i, f) {
		const char *st = tk_json_get_str(f, "status", "modified");
		printf("  %c %s\n", !strcmp(st, "added") ? 'A' : !strcmp(st, "deleted") ? 'D' : 'M',
		       tk_json_get_str(f, "path", "?"));
	}
	if (json_is_object(r->tests)) {
		const json_t *passed = json_object_get(r->tests, "passed");
		printf("tests: %s (%s, exit %lld)\n",
		       json_is_boolean(passed) ? (json_is_true(passed) ? "passed" : "failed")
					       : tk_json_get_str(r->tests, "status", "?"),
		       tk_json_get_str(r->tests, "command", "?"),
		       (long long)tk_json_get_int(r->tests, "exit_code", -1));
	} else {
		printf("tests: not run\n");
	}
	const json_t *u = r->usage;
	printf("iterations: %d  tokens: %lld prompt + %lld completion  llm calls: %lld  "
	       "tool calls: %lld  llm %.1f s  sandbox %.1f s  wall %.1f s\n",
	       r->iterations, (long long)tk_json_get_int(u, "prompt_tokens", 0),
	       (long long)tk_json_get_int(u, "completion_tokens", 0),
	       (long long)tk_json_get_int(u, "llm_calls", 0),
	       (long long)tk_json_get_int(u, "tool_calls", 0),
	       (double)tk_json_get_int(u, "llm_ms", 0) / 1e3,
	       (double)tk_json_get_int(u, "sandbox_ms", 0) / 1e3,
	       (double)tk_json_get_int(u, "wall_ms", 0) / 1e3);
	if (out_dir)
		printf("written: %zu files under %s\n", n_written, out_dir);
}

/* ---- the command ---------------------------------------------------------- */

struct run_args {
	const char *task, *test_command, *language, *out, *config, *replay, *events;
	bool json, quiet;
	char **sets;
	int n_sets;
};

static int parse_args(int argc, char **argv, struct run_args *a, struct inputs *in)
{
	enum { O_FILE = 256, O_TEST, O_LANG, O_OUT, O_CONFIG, O_SET, O_REPLAY, O_JSON, O_QUIET,
	       O_EVENTS };
	static const struct option opts[] = {
		{ "file", required_argument, NULL, O_FILE },
		{ "test-command", required_argument, NULL, O_TEST },
		{ "language", required_argument, NULL, O_LANG },
		{ "out", required_argument, NULL, O_OUT },
		{ "config", required_argument, NULL, O_CONFIG },
		{ "set", required_argument, NULL, O_SET },
		{ "replay", required_argument, NULL, O_REPLAY },
		{ "events", required_argument, NULL, O_EVENTS },
		{ "json", no_argument, NULL, O_JSON },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_FILE:
			if (read_input_file(in, optarg))
				return cli_fail("run", "--file %s", optarg);
			break;
		case O_TEST: a->test_command = optarg; break;
		case O_LANG: a->language = optarg; break;
		case O_OUT: a->out = optarg; break;
		case O_CONFIG: a->config = optarg; break;
		case O_SET: a->sets[a->n_sets++] = optarg; break;
		case O_REPLAY: a->replay = optarg; break;
		case O_EVENTS: a->events = optarg; break;
		case O_JSON: a->json = true; break;
		case O_QUIET: a->quiet = true; break;
		case 'h': fputs(usage, stdout); return -1;
		default: return cli_usage_error("run", "unknown option");
		}
	}
	if (a->replay) {
		if (optind < argc)
			return cli_usage_error("run", "--replay takes the task from the export; "
					       "unexpected argument '%s'", argv[optind]);
		if (in->n || a->test_command || a->language)
			return cli_usage_error("run", "--replay takes the task, files and test "
					       "command from the export");
		return 0;
	}
	if (optind >= argc)
		return cli_usage_error("run", "missing the task description");
	a->task = argv[optind++];
	if (optind < argc)
		return cli_usage_error("run", "unexpected argument '%s' (quote the task)",
				       argv[optind]);
	if (!*a->task)
		return cli_usage_error("run", "the task description is empty");
	return 0;
}

int cli_cmd_run(int argc, char **argv)
{
	struct run_args a = { 0 };
	struct inputs in = { 0 };
	struct replay_task rt = { 0 };
	struct tk_config *cfg = NULL;
	struct llm_backend *llm = NULL;
	struct agent_team team;
	bool have_team = false, have_result = false, log_up = false;
	struct tk_sandbox_profiles *profiles = NULL;
	struct agent_file *files = NULL;
	struct agent_result res;
	struct progress pg = { 0 };
	char *script_set = NULL;
	int rc;

	/* --set values plus two for --replay */
	a.sets = calloc((size_t)argc + 3, sizeof *a.sets);
	if (!a.sets)
		return cli_fail("run", "out of memory");
	if ((rc = parse_args(argc, argv, &a, &in)) != 0) {
		rc = rc < 0 ? CLI_OK : rc;
		goto out;
	}
	rc = CLI_FAIL;
	if (a.replay) {
		if (replay_load(a.replay, &rt, &in)) {
			rc = cli_fail("run", "--replay");
			goto out;
		}
		size_t n = strlen(a.replay) + sizeof "llm.script=";
		if (!(script_set = malloc(n))) {
			rc = cli_fail("run", "out of memory");
			goto out;
		}
		snprintf(script_set, n, "llm.script=%s", a.replay);
		/* after the user's --set: the replay decides the backend */
		a.sets[a.n_sets++] = "llm.backend=scripted";
		a.sets[a.n_sets++] = script_set;
	}
	if ((rc = cli_config_load("run", a.config, a.sets, a.n_sets, &cfg)) != 0)
		goto out;
	rc = CLI_FAIL;

	/* The progress lines are the user's view; the log only says what goes
	 * wrong unless log.level is set explicitly. */
	enum tk_log_level lv = TK_LOG_WARNING;
	if (tk_config_source(cfg, "log.level") != TK_CFG_SRC_DEFAULT)
		tk_log_level_parse(tk_config_str(cfg, "log.level"), &lv);
	const char *log_file = tk_config_str(cfg, "log.file");
	if (tk_log_init(*log_file ? log_file : NULL, lv) < 0) {
		rc = cli_fail("run", "log.file");
		goto out;
	}
	log_up = true;
	tk_config_register_secrets(cfg, tk_log_add_secret);

	if (!(llm = llm_backend_from_config(cfg))) {
		rc = cli_fail("run", "llm backend");
		goto out;
	}
	if (agent_team_from_config(cfg, &team) < 0) {
		rc = cli_fail("run", "agents.team");
		goto out;
	}
	have_team = true;
	struct agent_settings settings;
	agent_settings_from_config(cfg, &settings);
	if (!(profiles = malloc(sizeof *profiles))) {
		rc = cli_fail("run", "out of memory");
		goto out;
	}
	tk_sandbox_profiles_defaults(profiles);
	if (tk_sandbox_profiles_load(profiles, tk_config_json(cfg, "sandbox.profiles")) < 0) {
		rc = cli_fail("run", "sandbox.profiles");
		goto out;
	}
	struct tk_sandbox_options sb;
	tk_sandbox_options_defaults(&sb);
	sb.allow_degraded = tk_config_bool(cfg, "sandbox.allow_degraded");
	sb.reuse_cgroups = false; /* one process, one task: nothing to reuse */

	if (in.n && !(files = calloc(in.n, sizeof *files))) {
		rc = cli_fail("run", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < in.n; i++)
		files[i] = (struct agent_file){ in.v[i].path, in.v[i].content, in.v[i].size };
	struct agent_task task = {
		.description = a.task,
		.language = a.language,
		.test_command = a.test_command,
		.files = files,
		.n_files = in.n,
	};
	if (rt.task) {
		task.description = tk_json_get_str(rt.task, "description",
						   tk_json_get_str(rt.task, "task_description", NULL));
		task.context = tk_json_get_str(rt.task, "context", NULL);
		task.language = tk_json_get_str(rt.task, "language", NULL);
		task.test_command = tk_json_get_str(rt.task, "test_command", NULL);
	}

	pg.quiet = a.quiet;
	pg.tty = isatty(STDERR_FILENO) && !getenv("NO_COLOR");
	pg.t0_ns = tk_time_mono_ns();
	if (a.events) {
		pg.events_path = a.events;
		if (!(pg.events = fopen(a.events, "w"))) {
			rc = cli_fail("run", "--events %s: %s", a.events, strerror(errno));
			goto out;
		}
	}
	struct agent_env env = {
		.llm = llm, .team = &team, .settings = &settings, .profiles = profiles,
		.sandbox_opts = &sb, .emit = on_event, .emit_ud = &pg, .cancel = &g_cancel,
	};

	atomic_store(&g_cancel, false);
	struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	signal(SIGPIPE, SIG_IGN);
	int trc = agent_run_task(&env, &task, &res);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (trc < 0) {
		rc = cli_fail("run", "task refused");
		goto out;
	}
	have_result = true;

	size_t n_written = 0;
	int wrc = a.out ? write_out(a.out, &in, res.files, &n_written) : 0;
	if (a.json) {
		json_t *j = agent_result_to_json(&res);
		char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		if (s)
			puts(s);
		free(s);
		json_decref(j);
	} else {
		print_summary(&res, wrc ? NULL : a.out, n_written);
	}
	fflush(stdout);
	if (rt.recorded[0] && !a.quiet)
		fprintf(stderr, "tanuki: run: replay: recorded status %s, replayed %s\n",
			rt.recorded, agent_outcome_name(res.outcome));
	if (wrc) {
		rc = cli_fail("run", "--out %s", a.out);
		goto out;
	}
	rc = res.outcome == AGENT_COMPLETED ? CLI_OK : CLI_FAIL;
out:
	if (pg.events && fclose(pg.events) != 0 && rc == CLI_OK)
		rc = cli_fail("run", "--events %s", a.events);
	if (have_result)
		agent_result_free(&res);
	free(files);
	free(profiles);
	if (have_team)
		agent_team_free(&team);
	llm_backend_free(llm);
	tk_config_free(cfg);
	json_decref(rt.task);
	inputs_free(&in);
	free(script_set);
	free(a.sets);
	if (log_up)
		tk_log_shutdown();
	return rc;
}
