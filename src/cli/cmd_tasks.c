/*
 * cmd_tasks.c — `tanuki tasks list|show|cancel|events`: a client of the
 * HTTP API (not of the store), so it works against any running server,
 * with any key, exactly as a program would.
 */
#include "cli/cli.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/id.h"
#include "server/client.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: tanuki tasks list [--status S] [--limit N] [--cursor C]\n"
	"       tanuki tasks show ID\n"
	"       tanuki tasks cancel ID\n"
	"       tanuki tasks events ID [--last-event-id N]\n"
	"common options: --url URL (default $TANUKI_URL or http://127.0.0.1:8080)\n"
	"                --key KEY (default $TANUKI_API_KEY)\n\n"
	"Prints the server's JSON answer on stdout (events: the raw Server-Sent\n"
	"Events stream until the task ends). Exit 0 on a 2xx answer, 1 otherwise\n"
	"(the server's detail goes to stderr).\n";

static int print_chunk(const char *data, size_t len, void *arg)
{
	(void)arg;
	fwrite(data, 1, len, stdout);
	fflush(stdout);
	return 0;
}

static int report(int status, struct tk_buf *body)
{
	json_t *j = json_loadb(body->data ? body->data : "", body->len, 0, NULL);
	if (status >= 200 && status < 300) {
		if (j) {
			char *s = json_dumps(j, JSON_INDENT(2));
			if (s)
				puts(s);
			free(s);
		} else {
			fwrite(tk_buf_str(body), 1, body->len, stdout);
		}
		json_decref(j);
		return CLI_OK;
	}
	const char *d = json_string_value(json_object_get(j, "detail"));
	fprintf(stderr, "tanuki: tasks: HTTP %d: %s\n", status, d ? d : tk_buf_str(body));
	json_decref(j);
	return CLI_FAIL;
}

int cli_cmd_tasks(int argc, char **argv)
{
	const char *url_s = getenv("TANUKI_URL"), *key = getenv("TANUKI_API_KEY");
	const char *status = NULL, *limit = NULL, *cursor = NULL, *last_id = NULL;
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "key", required_argument, NULL, 'k' },
		{ "status", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'l' },
		{ "cursor", required_argument, NULL, 'c' },
		{ "last-event-id", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	const char *sub = argv[1];
	optind = 2;
	int c;
	/* GNU permutation (no '+'): options may follow the task id. */
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'u': url_s = optarg; break;
		case 'k': key = optarg; break;
		case 's': status = optarg; break;
		case 'l': limit = optarg; break;
		case 'c': cursor = optarg; break;
		case 'e': last_id = optarg; break;
		default: return cli_usage_error("tasks", "unknown option");
		}
	}
	if (!url_s || !*url_s)
		url_s = "http://127.0.0.1:8080";
	struct tk_http_url url;
	if (tk_http_url_parse(url_s, &url) < 0)
		return cli_usage_error("tasks", "%s", tk_err_detail());
	if (!key || !*key)
		return cli_usage_error("tasks", "no API key: pass --key or set TANUKI_API_KEY");

	const char *id = NULL;
	bool wants_id = strcmp(sub, "list") != 0;
	if (!strcmp(sub, "list") || !strcmp(sub, "show") || !strcmp(sub, "cancel") ||
	    !strcmp(sub, "events")) {
		if (wants_id) {
			if (optind >= argc)
				return cli_usage_error("tasks", "%s: missing task ID", sub);
			id = argv[optind++];
			if (!tk_id_valid(id))
				return cli_usage_error("tasks", "'%s' is not a task id", id);
		}
		if (optind < argc)
			return cli_usage_error("tasks", "unexpected argument '%s'", argv[optind]);
	} else {
		return cli_usage_error("tasks", "unknown subcommand '%s'", sub);
	}

	char path[512], hdr[96];
	struct tk_http_request req = { .method = "GET", .path = path, .api_key = key };
	if (!strcmp(sub, "list")) {
		/* status/limit/cursor values are checked by the server; they are
		 * only passed on if made of URL-safe characters. */
		const char *vals[] = { status, limit, cursor };
		for (size_t i = 0; i < 3; i++)
			if (vals[i] && strspn(vals[i], "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
					       strlen(vals[i]))
				return cli_usage_error("tasks", "bad option value '%s'", vals[i]);
		snprintf(path, sizeof path, "/tasks?x=1%s%s%s%s%s%s", status ? "&status=" : "",
			 status ? status : "", limit ? "&limit=" : "", limit ? limit : "",
			 cursor ? "&cursor=" : "", cursor ? cursor : "");
	} else if (!strcmp(sub, "show")) {
		snprintf(path, sizeof path, "/tasks/%s", id);
	} else if (!strcmp(sub, "cancel")) {
		snprintf(path, sizeof path, "/tasks/%s/cancel", id);
		req.method = "POST";
		req.body = "";
		req.body_len = 0;
	} else {
		snprintf(path, sizeof path, "/tasks/%s/events", id);
		if (last_id) {
			long v;
			if (cli_parse_long("tasks", "--last-event-id", last_id, 0, 1L << 62, &v))
				return CLI_USAGE;
			snprintf(hdr, sizeof hdr, "Last-Event-ID: %ld", v);
			req.extra_header = hdr;
		}
		req.timeout_ms = -1;
	}

	int st = 0, rc;
	struct tk_buf body = TK_BUF_INIT(64u << 20);
	if (!strcmp(sub, "events")) {
		/* Stream, but collect an error answer to report it. */
		rc = tk_http_do(&url, &req, &st, NULL, print_chunk, NULL);
		if (rc < 0)
			return cli_fail("tasks", "%s", url_s);
		return st >= 200 && st < 300 ? CLI_OK : CLI_FAIL;
	}
	rc = tk_http_do(&url, &req, &st, &body, NULL, NULL);
	if (rc < 0) {
		tk_buf_free(&body);
		return cli_fail("tasks", "%s", url_s);
	}
	rc = report(st, &body);
	tk_buf_free(&body);
	return rc;
}
