/* cmd_version.c — `tanuki version`: version, git commit, build date; with
 * --verbose also the CPU's SIMD features and the kernel variant in use. */
#include "cli/cli.h"

#include "core/version.h"
#include "engine/cpu.h"
#include "engine/quant_simd.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

int cli_cmd_version(int argc, char **argv)
{
	bool json = false, verbose = false;
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+jvh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'v': verbose = true; break;
		case 'h':
			puts("usage: tanuki version [--json] [--verbose]\n\n"
			     "Prints the semantic version, the git commit the binary was built\n"
			     "from (\"unknown\" outside a git checkout) and the build date.\n"
			     "--verbose adds the CPU's SIMD features and the tensor kernel\n"
			     "variant in use (ref, avx2, avx512; docs/engine.md).");
			return CLI_OK;
		default: return cli_usage_error("version", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("version", "unexpected argument '%s'", argv[optind]);
	char cpu[256] = "";
	if (verbose)
		tk_cpu_describe(cpu, sizeof cpu);
	const char *isa = verbose ? tk_quant_isa_name(tk_quant_isa_active()) : "";
	if (json && verbose)
		printf("{\"version\":\"%s\",\"commit\":\"%s\",\"build_date\":\"%s\","
		       "\"cpu_features\":\"%s\",\"kernels\":\"%s\"}\n",
		       tk_version(), tk_commit(), tk_build_date(), cpu, isa);
	else if (json)
		printf("{\"version\":\"%s\",\"commit\":\"%s\",\"build_date\":\"%s\"}\n",
		       tk_version(), tk_commit(), tk_build_date());
	else
		printf("tanuki %s (commit %s, built %s)\n", tk_version(), tk_commit(),
		       tk_build_date());
	if (verbose && !json)
		printf("cpu features: %s\nkernels: %s\n", cpu, isa);
	return CLI_OK;
}
