/*
 * cli.h — the `tanuki` command: shared pieces of the subcommands.
 *
 * Every subcommand is `int cli_cmd_<name>(int argc, char **argv)` in its own
 * file src/cli/cmd_<name>.c, listed once in the table in main.c. argv[0] is
 * the subcommand's name; options are parsed with getopt_long.
 *
 * Exit codes (documented in docs/cli.md):
 *   0 success, 1 runtime failure, 2 usage error.
 */
#ifndef TK_CLI_H
#define TK_CLI_H

#include <stdbool.h>

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Prints "tanuki: <cmd>: <message>" and a hint to stderr; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "tanuki: <cmd>: <message>: <tk_err_detail()>" to stderr; returns CLI_FAIL. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when argv holds -h or --help before any "--". */
bool cli_wants_help(int argc, char **argv);

/* Parses a non-negative decimal integer option value in [min, max]. 0 on
 * success; on error prints a usage message and returns CLI_USAGE. */
int cli_parse_long(const char *cmd, const char *opt, const char *s, long min, long max, long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *s, double min, double max, double *out);

struct tk_config;
/* Builds the configuration every command uses: defaults < file (path, or
 * $TANUKI_CONFIG when path is NULL) < TANUKI_* environment < the n_sets
 * "KEY=VALUE" strings of --set flags. Prints the problems and returns
 * CLI_FAIL (bad file/env) or CLI_USAGE (bad --set); CLI_OK with *out set. */
int cli_config_load(const char *cmd, const char *path, char *const *sets, int n_sets,
		    struct tk_config **out);

/* Subcommands (one per cmd_*.c). */
int cli_cmd_version(int argc, char **argv);
int cli_cmd_config(int argc, char **argv);
int cli_cmd_metrics(int argc, char **argv);
int cli_cmd_run(int argc, char **argv);
int cli_cmd_serve(int argc, char **argv);
int cli_cmd_tasks(int argc, char **argv);
int cli_cmd_keys(int argc, char **argv);
int cli_cmd_model(int argc, char **argv);
int cli_cmd_sandbox(int argc, char **argv);
int cli_cmd_tokenize(int argc, char **argv);
int cli_cmd_logits(int argc, char **argv);
int cli_cmd_generate(int argc, char **argv);
int cli_cmd_perplexity(int argc, char **argv);
int cli_cmd_bench(int argc, char **argv);
int cli_cmd_adapters(int argc, char **argv);
int cli_cmd_llm(int argc, char **argv);

/* Parses a --tokens list ("1 300 273", spaces or commas) of at most
 * CLI_MAX_TOKENS non-negative ids into a malloc'd array (*out, caller frees).
 * 0, or prints the problem and returns CLI_USAGE / CLI_FAIL (cmd_logits.c). */
#include <stdint.h>
#define CLI_MAX_TOKENS (1 << 20)
int cli_parse_tokens(const char *cmd, const char *s, int32_t **out, int32_t *n_out);

#endif
