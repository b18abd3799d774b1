/*
 * main.c — entry point of the `tanuki` command: global options and the
 * subcommand table. Adding a subcommand: write src/cli/cmd_<name>.c with
 * cli_cmd_<name>(), declare it in cli.h, add one row to `commands` below.
 */
#include "cli/cli.h"

#include "core/err.h"
#include "obs/crash.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct cli_command commands[] = {
	{ "version", cli_cmd_version, "print version, git commit and build date" },
	{ "config", cli_cmd_config, "show the effective configuration or check a file" },
	{ "metrics", cli_cmd_metrics, "print the current Prometheus exposition" },
	{ "run", cli_cmd_run, "run a programming task through the agents here (no server)" },
	{ "serve", cli_cmd_serve, "run the HTTP API server" },
	{ "tasks", cli_cmd_tasks, "list, show, cancel tasks or follow their events (API client)" },
	{ "keys", cli_cmd_keys, "create, list or revoke API keys in a data directory" },
	{ "model", cli_cmd_model, "inspect a GGUF model (info) or write a random-weight one (synth)" },
	{ "sandbox", cli_cmd_sandbox, "run a command in the sandbox; doctor; profiles" },
	{ "tokenize", cli_cmd_tokenize, "print the token ids of a text under a model's tokenizer" },
	{ "logits", cli_cmd_logits, "print a model's logits for a list of token ids" },
	{ "generate", cli_cmd_generate, "generate text from a prompt with a local GGUF model" },
	{ "perplexity", cli_cmd_perplexity, "perplexity of a model on a text file (llama.cpp's method)" },
	{ "bench", cli_cmd_bench, "engine speed: pp/tg tokens/s like llama-bench, roofline, batching" },
	{ "adapters", cli_cmd_adapters, "LoRA adapters: list, info, load, unload, merge" },
	{ "llm", cli_cmd_llm, "chat with the configured LLM backend (openai, ollama, embedded, scripted)" },
};

static void print_usage(FILE *out)
{
	fputs("usage: tanuki <command> [options]\n"
	      "       tanuki --version | --help | help <command>\n\n"
	      "Tanuki: a self-hosted AI programming service.\n\ncommands:\n", out);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fputs("\nEvery command takes --help. Exit codes: 0 success, 1 runtime failure,\n"
	      "2 usage error.\n", out);
}

static const struct cli_command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	/* Every command leaves a critical JSON line with a backtrace if it dies
	 * of a fatal signal (docs/logging.md); the exit status stays truthful. */
	if (tk_crash_install() < 0)
		fprintf(stderr, "tanuki: warning: crash handler not installed: %s\n",
			tk_err_detail());
	if (argc < 2) {
		print_usage(stderr);
		return CLI_USAGE;
	}
	const char *name = argv[1];
	if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
		print_usage(stdout);
		return CLI_OK;
	}
	if (!strcmp(name, "--version") || !strcmp(name, "-V"))
		return cli_cmd_version(1, (char *[]){ "version", NULL });
	if (!strcmp(name, "help")) {
		if (argc < 3) {
			print_usage(stdout);
			return CLI_OK;
		}
		const struct cli_command *c = find_command(argv[2]);
		if (!c)
			return cli_usage_error("help", "unknown command '%s'", argv[2]);
		return c->run(2, (char *[]){ (char *)c->name, "--help", NULL });
	}
	const struct cli_command *c = find_command(name);
	if (!c) {
		fprintf(stderr, "tanuki: unknown command '%s'\n\n", name);
		print_usage(stderr);
		return CLI_USAGE;
	}
	return c->run(argc - 1, argv + 1);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "tanuki: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see 'tanuki %s --help')\n", cmd);
	return CLI_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "tanuki: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	const char *d = tk_err_detail();
	fprintf(stderr, "%s%s\n", *d ? ": " : "", d);
	return CLI_FAIL;
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	}
	return false;
}

int cli_parse_long(const char *cmd, const char *opt, const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return cli_usage_error(cmd, "%s: expected an integer in %ld..%ld, got '%s'",
				       opt, min, max, s);
	*out = v;
	return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min && v <= max))
		return cli_usage_error(cmd, "%s: expected a number in %g..%g, got '%s'",
				       opt, min, max, s);
	*out = v;
	return 0;
}
