/* cmd_metrics.c — PLACEHOLDER until the metrics work lands. */
#include "cli/cli.h"

#include <stdio.h>

int cli_cmd_metrics(int argc, char **argv)
{
	(void)argc; (void)argv;
	fputs("tanuki metrics: not built yet\n", stderr);
	return CLI_FAIL;
}
