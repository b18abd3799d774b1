/*
 * cmd_config.c — `tanuki config show|check`, and cli_config_load(), the one
 * way every command builds its configuration (file < env < --set flags).
 */
#include "cli/cli.h"

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_config_load(const char *cmd, const char *path, char *const *sets, int n_sets,
		    struct tk_config **out)
{
	if (!path || !*path)
		path = getenv("TANUKI_CONFIG");
	if (path && !*path)
		path = NULL;
	struct tk_config *c;
	if (tk_config_load(path, NULL, &c)) {
		fprintf(stderr, "tanuki: %s: invalid configuration:\n%s\n", cmd, tk_err_detail());
		return CLI_FAIL;
	}
	for (int i = 0; i < n_sets; i++) {
		if (tk_config_set_arg(c, sets[i])) {
			tk_config_free(c);
			return cli_usage_error(cmd, "%s", tk_err_detail());
		}
	}
	*out = c;
	return CLI_OK;
}

static const char usage[] =
	"usage: tanuki config show [--config FILE] [--set KEY=VALUE]... [--sources]\n"
	"       tanuki config check FILE\n"
	"       tanuki config keys\n\n"
	"show   prints the effective configuration as JSON: defaults, overridden by\n"
	"       the file (--config or $TANUKI_CONFIG), by TANUKI_* environment\n"
	"       variables, by --set flags. Secrets are shown as \"********\".\n"
	"       --sources adds where each value came from.\n"
	"check  validates FILE and the environment; prints every problem with its\n"
	"       key and reason; exit 0 when valid, 1 otherwise.\n"
	"keys   lists every setting with its type, default and meaning.\n";

static int config_show(int argc, char **argv)
{
	const char *path = NULL;
	bool sources = false;
	char **sets = calloc((size_t)argc + 1, sizeof *sets);
	int n_sets = 0, rc;
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "set", required_argument, NULL, 's' },
		{ "sources", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	if (!sets)
		return cli_fail("config", "out of memory");
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+c:s:Sh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 's': sets[n_sets++] = optarg; break;
		case 'S': sources = true; break;
		case 'h': fputs(usage, stdout); free(sets); return CLI_OK;
		default: free(sets); return cli_usage_error("config", "unknown option");
		}
	}
	if (optind < argc) {
		free(sets);
		return cli_usage_error("config", "unexpected argument '%s'", argv[optind]);
	}
	struct tk_config *cfg;
	rc = cli_config_load("config", path, sets, n_sets, &cfg);
	free(sets);
	if (rc)
		return rc;
	struct tk_buf out = TK_BUF_INIT(1u << 24);
	rc = tk_config_dump(cfg, sources, &out);
	tk_config_free(cfg);
	if (rc) {
		tk_buf_free(&out);
		return cli_fail("config", "cannot print the configuration");
	}
	fputs(tk_buf_str(&out), stdout);
	tk_buf_free(&out);
	return CLI_OK;
}

static int config_check(int argc, char **argv)
{
	if (argc != 2)
		return cli_usage_error("config", "check takes exactly one FILE");
	struct tk_config *cfg;
	if (tk_config_load(argv[1], NULL, &cfg)) {
		fprintf(stderr, "%s: invalid:\n%s\n", argv[1], tk_err_detail());
		return CLI_FAIL;
	}
	tk_config_free(cfg);
	printf("%s: ok\n", argv[1]);
	return CLI_OK;
}

static int config_keys(void)
{
	static const char *const types[] = { "string", "int", "number", "bool", "enum", "json" };
	size_t n;
	const struct tk_cfg_setting *s = tk_config_settings(&n);
	for (size_t i = 0; i < n; i++) {
		printf("%-34s %-6s default=%s%s\n    %s", s[i].key, types[s[i].type],
		       s[i].secret ? "(secret)" : s[i].default_text,
		       s[i].secret ? "" : "", s[i].help);
		if (s[i].type == TK_CFG_ENUM)
			printf(" (%s)", s[i].choices);
		if (s[i].type == TK_CFG_INT)
			printf(" (%.0f..%.0f)", s[i].min, s[i].max);
		putchar('\n');
	}
	return CLI_OK;
}

int cli_cmd_config(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (!strcmp(argv[1], "show"))
		return config_show(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check")) {
		if (cli_wants_help(argc - 1, argv + 1)) {
			fputs(usage, stdout);
			return CLI_OK;
		}
		return config_check(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "keys"))
		return config_keys();
	return cli_usage_error("config", "unknown subcommand '%s'", argv[1]);
}
