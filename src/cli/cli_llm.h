/* cli_llm.h — helpers shared by the commands that call an LLM backend
 * through src/llm/llm.h (`tanuki llm chat`, `tanuki generate` with
 * --json-schema/--grammar/--backend): a list of --set strings that
 * shorthand flags add to, and reading a schema or grammar file.
 *
 * Single-threaded CLI code; nothing here is meant for other threads.
 */
#ifndef TK_CLI_CLI_LLM_H
#define TK_CLI_CLI_LLM_H

#define CLI_LLM_MAX_SETS 64
#define CLI_LLM_FILE_MAX (1u << 20) /* schema/grammar files at most 1 MiB */

/* "KEY=VALUE" strings for cli_config_load. sets[i] are either borrowed
 * argv strings or ones this struct owns (freed by cli_llm_sets_free).
 * Zero-initialise before use. */
struct cli_llm_sets {
	char *sets[CLI_LLM_MAX_SETS];
	int n_sets;
	char *owned[CLI_LLM_MAX_SETS];
	int n_owned;
};

/* Appends a setting: key NULL means value is already "KEY=VALUE" (borrowed
 * for the struct's life); otherwise "key=value" is built and owned.
 * CLI_OK, CLI_USAGE (more than CLI_LLM_MAX_SETS) or CLI_FAIL (memory),
 * with the message printed under cmd. */
int cli_llm_sets_add(const char *cmd, struct cli_llm_sets *s, const char *key,
		     const char *value);

/* Frees the owned strings and empties s. NULL ok. */
void cli_llm_sets_free(struct cli_llm_sets *s);

/* Reads a whole text file (at most CLI_LLM_FILE_MAX bytes) into a malloc'd
 * NUL-terminated string; NULL after printing "cannot read" with the detail
 * (missing, unreadable, too large). what names the flag ("--grammar"). */
char *cli_llm_read_file(const char *cmd, const char *what, const char *path);

/* Checks that at most one of schema_path/grammar_path is given (else
 * CLI_USAGE) and reads the one given into *schema or *grammar (the other
 * stays NULL; the caller frees both). CLI_OK, CLI_USAGE or CLI_FAIL. */
int cli_llm_read_constraint(const char *cmd, const char *schema_path, const char *grammar_path,
			    char **schema, char **grammar);

#endif
