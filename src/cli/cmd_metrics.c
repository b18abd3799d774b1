/*
 * cmd_metrics.c — `tanuki metrics`: registers the process metrics in the
 * default registry and prints the Prometheus text exposition to stdout, so
 * `tanuki metrics | promtool check metrics` works without a server.
 */
#include "cli/cli.h"

#include "core/buf.h"
#include "obs/metrics.h"

#include <getopt.h>
#include <stdio.h>

/* An exposition larger than this is a bug (label explosion), not output. */
#define METRICS_OUT_MAX ((size_t)64 << 20)

int cli_cmd_metrics(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			puts("usage: tanuki metrics\n\n"
			     "Prints this process's metrics in the Prometheus text format 0.0.4:\n"
			     "the standard process_* metrics (CPU, memory, file descriptors, start\n"
			     "time) and tanuki_build_info. Useful to check the format offline:\n"
			     "  tanuki metrics | promtool check metrics\n"
			     "A running server serves the same format, with its own metrics, on\n"
			     "GET /metrics.");
			return CLI_OK;
		default: return cli_usage_error("metrics", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("metrics", "unexpected argument '%s'", argv[optind]);

	if (tk_metrics_register_process(NULL))
		return cli_fail("metrics", "cannot register the process metrics");
	struct tk_buf out = TK_BUF_INIT(METRICS_OUT_MAX);
	int rc = CLI_OK;
	if (tk_metrics_expose(NULL, &out)) {
		rc = cli_fail("metrics", "cannot build the exposition");
		goto out;
	}
	if (fwrite(tk_buf_str(&out), 1, out.len, stdout) != out.len || fflush(stdout)) {
		rc = cli_fail("metrics", "cannot write to stdout");
		goto out;
	}
out:
	tk_buf_free(&out);
	return rc;
}
