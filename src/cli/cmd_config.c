/* cmd_config.c — PLACEHOLDER until the config work lands. */
#include "cli/cli.h"

#include <stdio.h>

int cli_cmd_config(int argc, char **argv)
{
	(void)argc; (void)argv;
	fputs("tanuki config: not built yet\n", stderr);
	return CLI_FAIL;
}
