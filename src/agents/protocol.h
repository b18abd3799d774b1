/*
 * protocol.h — the model's side of the agent protocol (docs/agents.md): what
 * each kind of agent must answer, the JSON Schemas that constrain it on
 * backends that support them, and the parsers that validate every reply on
 * every backend and, when it is malformed, say what to fix (the repair
 * message sent back to the model).
 *
 * Parsers are forgiving of wrapping only: surrounding prose, a ```json code
 * fence, or leading/trailing blanks are skipped, and the first complete JSON
 * object in the text is taken. Inside the object they are strict: unknown
 * fields, wrong types, missing required fields, a tool the agent may not use,
 * paths that escape the workspace are all errors.
 *
 * Every parser returns 0 with its output filled, or TK_EFORMAT with *repair
 * set to a malloc'd, model-facing message ("Your reply was not valid: the
 * field \"args.path\" is required for write_file. Answer with one JSON
 * object: ...") and outputs zeroed; TK_ENOMEM otherwise. The caller frees
 * outputs and *repair. Pure functions: any thread.
 */
#ifndef TK_AGENTS_PROTOCOL_H
#define TK_AGENTS_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agents/agents.h"

#define AGENT_REPLY_MAX (1u << 20) /* bytes of a reply we parse at all */

/* A worker's turn: {"thought": "...", "tool": NAME, "args": {...}}.
 *   list_files {path}            path optional ("" or "." = the root)
 *   read_file  {path}
 *   write_file {path, content}
 *   edit_file  {path, search, replace}
 *   run        {command}
 *   finish     {summary, test_command}  test_command optional: the shell
 *                                command that runs the tests the agent wrote
 * Paths are workspace-relative, validated (no absolute path, no "..", no
 * NUL, at most 255 bytes a component and 4096 in all); args holds them
 * normalised (a leading "./" dropped; list_files: "." -> "", "dir/" -> "dir"). */
struct agent_turn {
	char *thought;      /* owned; "" when absent */
	enum agent_tool tool;
	json_t *args;       /* owned: the validated args object */
};
int agent_parse_turn(const char *text, size_t len, unsigned allowed_tools,
		     struct agent_turn *out, char **repair);
void agent_turn_clear(struct agent_turn *t); /* NULL ok */

/* The planner: {"plans": [{"title": "...", "steps": [{"agent": NAME,
 * "goal": "..."}, ...]}, ...]} with 1..max_plans plans of 1..16 steps, every
 * agent a WORKER or REVIEWER of the team. *plans is the validated array
 * (owned). */
int agent_parse_plans(const char *text, size_t len, const struct agent_team *team,
		      int32_t max_plans, json_t **plans, char **repair);

/* The critic: {"choice": INDEX, "reason": "..."} with 0 <= INDEX < n_plans. */
int agent_parse_choice(const char *text, size_t len, int32_t n_plans, int32_t *choice,
		       char **reason, char **repair);

/* The reviewer: {"verdict": "approve" | "changes", "issues": ["...", ...]}
 * (issues may be empty for approve, must not be for changes). */
int agent_parse_verdict(const char *text, size_t len, bool *approve, json_t **issues,
			char **repair);

/* JSON Schema texts (static storage) for llm_params.json_schema, in the
 * subset llm_schema.c accepts (docs/llm.md). The turn schema lists every
 * tool's args as optional properties of one object; the parser enforces
 * which are required per tool. */
const char *agent_schema_turn(void);
const char *agent_schema_plans(void);
const char *agent_schema_choice(void);
const char *agent_schema_verdict(void);

/* The protocol part of a system prompt for an agent of kind k with tools
 * (a static or malloc'd text the caller frees: always malloc'd). It
 * describes the answer format and, for workers, each allowed tool. NULL on
 * TK_ENOMEM. */
char *agent_protocol_prompt(enum agent_kind k, unsigned tools);

#endif
