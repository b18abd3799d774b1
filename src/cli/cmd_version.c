/* cmd_version.c — `tanuki version`: version, git commit, build date. */
#include "cli/cli.h"

#include "core/version.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

int cli_cmd_version(int argc, char **argv)
{
	bool json = false;
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h':
			puts("usage: tanuki version [--json]\n\n"
			     "Prints the semantic version, the git commit the binary was built\n"
			     "from (\"unknown\" outside a git checkout) and the build date.");
			return CLI_OK;
		default: return cli_usage_error("version", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("version", "unexpected argument '%s'", argv[optind]);
	if (json)
		printf("{\"version\":\"%s\",\"commit\":\"%s\",\"build_date\":\"%s\"}\n",
		       tk_version(), tk_commit(), tk_build_date());
	else
		printf("tanuki %s (commit %s, built %s)\n", tk_version(), tk_commit(),
		       tk_build_date());
	return CLI_OK;
}
