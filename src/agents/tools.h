/*
 * tools.h — a task's private workspace and the tools the agents act on it
 * with (list_files, read_file, write_file, edit_file, run), plus the
 * unified diff the aggregator reports.
 *
 * A workspace is a fresh directory (mkdtemp under a parent) that only this
 * task touches. File tools never follow symbolic links, never leave the
 * workspace, and cap what they read and write; `run` executes a command
 * with `sh -c` in the sandbox (sandbox.h) with the workspace mounted at
 * /workspace, the task's profile and limits, and reports status, exit code,
 * duration and capped output. A hostile program can only hurt the
 * workspace: whatever it leaves there (links, fifos, huge files) is refused
 * by the file tools and by agent_ws_snapshot with a clear message.
 *
 * Threads: one workspace belongs to one task (one thread at a time).
 */
#ifndef TK_AGENTS_TOOLS_H
#define TK_AGENTS_TOOLS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agents/agents.h"
#include "core/buf.h"
#include "sandbox/sandbox.h"

#define AGENT_FILE_MAX (1u << 20)   /* bytes of one file a tool reads/writes */
#define AGENT_WS_FILES_MAX 2000     /* files a snapshot/listing takes */
#define AGENT_WS_BYTES_MAX (32u << 20) /* bytes a snapshot takes in all */

struct agent_ws;

/* Makes a fresh workspace directory under parent (NULL: $TMPDIR or /tmp)
 * and writes the input files into it (creating directories). 0, TK_EINVAL
 * (a bad path: detail names it), TK_EIO. */
int agent_ws_create(const char *parent, const struct agent_file *files, size_t n_files,
		    struct agent_ws **out);

/* Removes the directory tree (unless keep) and frees ws. NULL ok. */
void agent_ws_free(struct agent_ws *ws, bool keep);

/* The host path of the workspace root (borrowed). */
const char *agent_ws_path(const struct agent_ws *ws);

/* The file tree as text, one relative path per line with its size
 * ("src/main.c (1234 bytes)"), sorted, directories of ignored names (.git,
 * __pycache__, node_modules) skipped; at most max_bytes of text (then a
 * "... N more" line). Appends to out. 0 or TK_E*. */
int agent_ws_tree(const struct agent_ws *ws, size_t max_bytes, struct tk_buf *out);

/* Every regular text file (valid UTF-8, no NUL) under the root as
 * {path: content} (new reference), capped by AGENT_WS_FILES_MAX and
 * AGENT_WS_BYTES_MAX; files skipped (binary, link, too big) are listed in
 * *skipped (new array reference, may be empty). NULL on TK_ENOMEM/TK_EIO. */
json_t *agent_ws_snapshot(const struct agent_ws *ws, json_t **skipped);

/* What a tool call did. */
struct agent_tool_result {
	bool ok;            /* the call did what was asked (for run: the
			     * sandbox ran it, whatever the exit code) */
	char *output;       /* owned, model-facing text: file content,
			     * listing, command output (capped), or the error
			     * message ("edit_file: the search text occurs 3
			     * times in src/a.c; include more context") */
	json_t *event;      /* owned: the tool_result event data: {tool, ok,
			     * path?, bytes?, status?, exit_code?, wall_ms?,
			     * cpu_ms?, limit?, output (truncated)} */
	uint64_t sandbox_ms; /* wall ms spent in the sandbox (run only) */
	int exit_code;      /* run: exit code, -1 when not exited */
	enum tk_sandbox_status status; /* run only */
};
void agent_tool_result_clear(struct agent_tool_result *r); /* NULL ok */

/* How `run` runs. */
struct agent_run_opts {
	const struct tk_sandbox_profile *profile;  /* required for run */
	const struct tk_sandbox_options *sandbox_opts; /* NULL: defaults */
	struct tk_sandbox_limits limits;           /* 0 fields: profile's */
	const atomic_bool *cancel;                 /* NULL: none */
	size_t output_bytes;                       /* kept in result->output
						    * (head and tail); 0: 4096 */
	void (*on_output)(void *arg, int stream, const char *data, size_t n);
	void *on_output_arg;
};

/* Executes one validated tool call (protocol.h's agent_turn: tool and
 * args). finish is not a tool here (the orchestrator handles it). Returns 0
 * when a result was produced (even a failed one: ok false and output says
 * why, for the model to read) or TK_ENOMEM / TK_EINVAL (a programming
 * error: args not validated). */
int agent_tool_exec(struct agent_ws *ws, enum agent_tool tool, const json_t *args,
		    const struct agent_run_opts *ro, struct agent_tool_result *out);

/* Runs a shell command line in the sandbox (what `run` and the
 * orchestrator's test runs use). */
int agent_ws_run(struct agent_ws *ws, const char *command, const struct agent_run_opts *ro,
		 struct agent_tool_result *out);

/* edit_file's matcher, exposed for tests: replaces the single occurrence of
 * search in text with replace. An exact match is tried first; then a match
 * that ignores differences in leading/trailing whitespace of each line and
 * in line endings. 0 with *out (malloc'd) set, or TK_ENOENT ("not found")
 * or TK_EEXIST (more than one match; *count set) with a detail. */
int agent_edit_apply(const char *text, size_t len, const char *search, const char *replace,
		     char **out, size_t *out_len, int *count);

/* Unified diff (like `diff -u`, 3 lines of context, "--- a/PATH" and
 * "+++ b/PATH" headers; /dev/null for an added or deleted file) of old ->
 * new, appended to out. old or new NULL means the file does not exist on
 * that side. 0, TK_ENOMEM or TK_ELIMIT (out's cap). */
int agent_diff_unified(const char *path, const char *old_text, size_t old_len,
		       const char *new_text, size_t new_len, struct tk_buf *out);

#endif
