/*
 * cmd_tasks.c — `tanuki tasks list|show|cancel|events`: a client of the
 * HTTP API (not of the store), so it works against any running server,
 * with any key, exactly as a program would. `tanuki tasks export` is the
 * exception: it reads a task's events straight from the store of a data
 * directory (an operator's tool, no key), as JSONL for replay.
 */
#include "cli/cli.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/id.h"
#include "core/config.h"
#include "server/client.h"
#include "store/store.h"

#include <errno.h>
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
	"                --key KEY (default $TANUKI_API_KEY)\n"
	"       tanuki tasks export ID [--out FILE] [--data-dir DIR] [--config FILE]\n"
	"                               [--set KEY=VALUE]...\n\n"
	"Prints the server's JSON answer on stdout (events: the raw Server-Sent\n"
	"Events stream until the task ends). Exit 0 on a 2xx answer, 1 otherwise\n"
	"(the server's detail goes to stderr).\n\n"
	"export reads the store of the data directory (--data-dir, default\n"
	"server.data_dir) directly, no server or key needed, and writes the task's\n"
	"events as JSONL, one {\"seq\", \"type\", \"data\", \"created_at\"} a line, to\n"
	"stdout or --out FILE; input file contents the \"task\" event had to leave\n"
	"out (store event cap) are filled in from the store. 'tanuki run --replay\n"
	"FILE' replays it.\n";

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

/* Fills the contents of a "task" event's files that were left out (the
 * runner stores an over-cap event reduced to the paths) from the task's
 * input files in the store. */
static int fill_task_files(struct tk_store *st, const char *id, json_t *data)
{
	json_t *files = json_object_get(data, "files");
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f) {
		const char *path = json_string_value(json_object_get(f, "path"));
		if (!path || json_is_string(json_object_get(f, "content")))
			continue;
		struct tk_task_file tf = { 0 };
		int rc = tk_store_file_get(st, id, TK_FILE_INPUT, path, &tf);
		if (rc < 0)
			return rc;
		json_t *c = json_stringn(tf.content, tf.size);
		tk_task_file_clear(&tf);
		if (!c)
			return tk_errf(TK_EFORMAT, "input file %s: not UTF-8 text", path);
		json_object_set_new(f, "content", c);
	}
	return 0;
}

static int tasks_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "config", required_argument, NULL, 'c' },
		{ "set", required_argument, NULL, 's' },
		{ 0 },
	};
	const char *out_path = NULL, *dir = NULL, *config = NULL;
	char **sets = calloc((size_t)argc + 1, sizeof *sets);
	int n_sets = 0, c, rc = CLI_USAGE;
	struct tk_config *cfg = NULL;
	struct tk_store *st = NULL;
	FILE *out = stdout;
	if (!sets)
		return cli_fail("tasks", "out of memory");
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out_path = optarg; break;
		case 'd': dir = optarg; break;
		case 'c': config = optarg; break;
		case 's': sets[n_sets++] = optarg; break;
		default: rc = cli_usage_error("tasks", "unknown option"); goto done;
		}
	}
	if (optind >= argc) {
		rc = cli_usage_error("tasks", "export: missing task ID");
		goto done;
	}
	const char *id = argv[optind++];
	if (!tk_id_valid(id)) {
		rc = cli_usage_error("tasks", "'%s' is not a task id", id);
		goto done;
	}
	if (optind < argc) {
		rc = cli_usage_error("tasks", "unexpected argument '%s'", argv[optind]);
		goto done;
	}
	if ((rc = cli_config_load("tasks", config, sets, n_sets, &cfg)) != 0)
		goto done;
	rc = CLI_FAIL;
	if (!dir)
		dir = tk_config_str(cfg, "server.data_dir");
	/* tk_store_open_dir would create a missing directory: an export of a
	 * mistyped directory must fail instead. */
	char db[4096];
	snprintf(db, sizeof db, "%s/tanuki.db", dir);
	FILE *probe = fopen(db, "rb");
	if (!probe) {
		rc = cli_fail("tasks", "export: no store at %s", db);
		goto done;
	}
	fclose(probe);
	if (!(st = tk_store_open_dir(dir, NULL))) {
		rc = cli_fail("tasks", "export: cannot open the store in %s", dir);
		goto done;
	}
	struct tk_task t;
	if (tk_store_task_get(st, id, &t) < 0) {
		rc = cli_fail("tasks", "export: task %s", id);
		goto done;
	}
	tk_task_clear(&t);
	if (out_path && !(out = fopen(out_path, "w"))) {
		out = stdout;
		rc = cli_fail("tasks", "export: %s: %s", out_path, strerror(errno));
		goto done;
	}
	int64_t after = 0;
	for (;;) {
		struct tk_task_event *ev = NULL;
		size_t n = 0;
		if (tk_store_events_since(st, id, after, TK_STORE_LIST_MAX, &ev, &n) < 0) {
			rc = cli_fail("tasks", "export: events of %s", id);
			goto done;
		}
		int erc = 0;
		for (size_t i = 0; i < n && !erc; i++) {
			json_t *data = json_loads(ev[i].data_json ? ev[i].data_json : "null",
						  JSON_DECODE_ANY, NULL);
			if (!strcmp(ev[i].type, "task") && json_is_object(data) &&
			    (erc = fill_task_files(st, id, data)) < 0) {
				json_decref(data);
				break;
			}
			json_t *o = json_pack("{s:I, s:s, s:o?, s:s}", "seq", (json_int_t)ev[i].seq,
					      "type", ev[i].type, "data", data, "created_at", ev[i].ts);
			char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
			if (!line)
				erc = tk_errf(TK_ENOMEM, "event %lld", (long long)ev[i].seq);
			else if (fprintf(out, "%s\n", line) < 0)
				erc = tk_errf_sys(TK_EIO, errno, "write");
			free(line);
			json_decref(o);
			after = ev[i].seq;
		}
		tk_task_events_free(ev, n);
		if (erc < 0) {
			rc = cli_fail("tasks", "export");
			goto done;
		}
		if (n < TK_STORE_LIST_MAX)
			break;
	}
	if (fflush(out) != 0) {
		rc = cli_fail("tasks", "export: write: %s", strerror(errno));
		goto done;
	}
	rc = CLI_OK;
done:
	if (out != stdout && fclose(out) != 0 && rc == CLI_OK)
		rc = cli_fail("tasks", "export: %s: %s", out_path, strerror(errno));
	tk_store_close(st);
	tk_config_free(cfg);
	free(sets);
	return rc;
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
	if (!strcmp(sub, "export"))
		return tasks_export(argc, argv);
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
