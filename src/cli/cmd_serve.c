/*
 * cmd_serve.c — `tanuki serve`: opens the store, bootstraps the admin key,
 * runs the HTTP API server (src/server/) until SIGTERM/SIGINT, then drains.
 *
 * Signals are blocked in every thread and taken synchronously by the main
 * thread with sigwait(), so no handler runs in async-signal context:
 *   SIGTERM, SIGINT  graceful drain (server.drain_grace_s), exit 0;
 *   SIGHUP           reopen the log file, re-read the configuration and apply
 *                    what can change safely: log level and rate limits.
 */
#include "cli/cli.h"

#include "core/config.h"
#include "core/err.h"
#include "obs/crash.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "server/server.h"
#include "store/store.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: tanuki serve [--listen HOST:PORT] [--data-dir DIR] [--config FILE]\n"
	"                    [--set KEY=VALUE]... [options]\n\n"
	"Runs the HTTP API (docs/http-api.md) until SIGTERM or SIGINT, then drains:\n"
	"no new tasks, running tasks get server.drain_grace_s to finish, the rest\n"
	"are stored as failed or re-queued; exit 0. SIGHUP reopens the log file and\n"
	"reloads the log level and rate limits from the configuration.\n\n"
	"  --listen HOST:PORT      server.listen (port 0 picks a free port)\n"
	"  --data-dir DIR          server.data_dir (the task database lives here)\n"
	"  --config FILE           configuration file (default $TANUKI_CONFIG)\n"
	"  --set KEY=VALUE         any configuration key\n"
	"  --workers N             server.workers\n"
	"  --queue-max N           server.queue_max\n"
	"  --drain-grace-s N       server.drain_grace_s\n"
	"  --rate-limit-per-min N  server.rate_limit_per_min (task submissions; 0 = off)\n"
	"  --read-rate-per-min N   other authenticated requests per key (default 600)\n"
	"  --admin-rate-per-min N  admin requests per key (default 120)\n"
	"  --auth-failures-per-min N  failed authentications per client address before\n"
	"                          it gets 429 (default 30; 0 = no limit)\n"
	"  --task-timeout-ms N     per-task deadline in ms (overrides server.task_timeout_s)\n"
	"  --http-threads N        HTTP pool threads (default 4)\n"
	"  --sse-heartbeat-ms N    keepalive comment interval on idle streams (default 15000)\n"
	"  --runner NAME           task runner: noop (the only one until the orchestrator)\n"
	"  --noop-delay-ms N       how long a noop task takes (default 0)\n"
	"  --cors-origin ORIGIN    send Access-Control-Allow-Origin (default: no CORS)\n"
	"  --addr-file FILE        write the bound HOST:PORT here once listening (a\n"
	"                          second line: the metrics address, when separate)\n\n"
	"The admin key in server.admin_key ($TANUKI_SERVER_ADMIN_KEY), when set, is\n"
	"stored on start if absent (key text as printed by 'tanuki keys create').\n";

struct serve_args {
	const char *config_path;
	char **sets;
	int n_sets;
	long task_timeout_ms;   /* -1 = from config */
	long read_per_min;      /* -1 = default */
	long authfail_per_min;  /* -1 = default */
	long admin_per_min;     /* -1 = default */
	long http_threads;      /* -1 = default */
	long heartbeat_ms;      /* -1 = default */
	long noop_delay_ms;
	const char *runner;
	const char *cors_origin;
	const char *addr_file;
};

/* Config values that may change on SIGHUP. */
static int apply_reloadable(const struct tk_config *cfg, const struct serve_args *a,
			    struct tk_server_opts *o)
{
	enum tk_log_level lv;
	if (tk_log_level_parse(tk_config_str(cfg, "log.level"), &lv) == 0)
		tk_log_set_level(lv);
	double per_min = (double)tk_config_int(cfg, "server.rate_limit_per_min");
	o->limits[TK_RL_SUBMIT] = (struct tk_rl_limit){ per_min, per_min > 0 ? per_min : 1 };
	if (a->read_per_min >= 0) {
		double r = (double)a->read_per_min;
		o->limits[TK_RL_READ] = (struct tk_rl_limit){ r, r > 0 ? (r < 120 ? r : 120) : 1 };
	}
	if (a->admin_per_min >= 0) {
		double m = (double)a->admin_per_min;
		o->limits[TK_RL_ADMIN] = (struct tk_rl_limit){ m, m > 0 ? (m < 60 ? m : 60) : 1 };
	}
	if (a->authfail_per_min >= 0) {
		double f = (double)a->authfail_per_min;
		o->limits[TK_RL_AUTHFAIL] = (struct tk_rl_limit){ f, f > 0 ? f : 1 };
	}
	return 0;
}

static int build_opts(const struct tk_config *cfg, const struct serve_args *a,
		      struct tk_server_opts *o)
{
	tk_server_opts_default(o);
	if (tk_server_opts_set_listen(o, tk_config_str(cfg, "server.listen")) < 0)
		return cli_usage_error("serve", "%s", tk_err_detail());
	if (tk_server_opts_set_metrics_listen(o, tk_config_str(cfg, "server.metrics_listen")) < 0)
		return cli_usage_error("serve", "server.metrics_listen: %s", tk_err_detail());
	o->workers = (unsigned)tk_config_int(cfg, "server.workers");
	o->queue_max = (size_t)tk_config_int(cfg, "server.queue_max");
	o->task_timeout_ms = tk_config_int(cfg, "server.task_timeout_s") * 1000;
	if (a->task_timeout_ms >= 0)
		o->task_timeout_ms = a->task_timeout_ms;
	o->max_body_bytes = (size_t)tk_config_int(cfg, "server.max_body_bytes");
	o->max_connections = (unsigned)tk_config_int(cfg, "server.max_connections");
	o->connection_timeout_s = (unsigned)tk_config_int(cfg, "server.connection_timeout_s");
	if (a->http_threads > 0)
		o->http_threads = (unsigned)a->http_threads;
	if (a->heartbeat_ms > 0)
		o->sse_heartbeat_ms = (int)a->heartbeat_ms;
	o->cors_origin = a->cors_origin;
	o->addr_file = a->addr_file;
	return apply_reloadable(cfg, a, o);
}

static int bootstrap_admin(struct tk_store *st, const struct tk_config *cfg)
{
	const char *k = tk_config_str(cfg, "server.admin_key");
	if (!k || !*k) {
		int64_t n = 0;
		if (tk_store_key_count(st, true, &n) == 0 && n == 0)
			tk_log(TK_LOG_WARNING, "server", "no admin API key; create one with "
			       "'tanuki keys create --role admin' or set server.admin_key");
		return 0;
	}
	tk_log_add_secret(k); /* never let the bootstrap key reach a log line */
	struct tk_api_key rec;
	int rc = tk_store_key_import(st, k, "bootstrap-admin", TK_ROLE_ADMIN, &rec);
	if (rc == TK_EEXIST)
		return 0;
	if (rc < 0)
		return cli_fail("serve", "server.admin_key");
	tk_logf(TK_LOG_INFO, "server", TK_FIELDS(TK_LF_S("key_id", rec.id)),
		"bootstrap admin key stored");
	return 0;
}

static int serve_loop(struct tk_server *srv, const struct serve_args *a, sigset_t *set)
{
	for (;;) {
		int sig = 0;
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			tk_log_reopen();
			struct tk_config *cfg = NULL;
			struct tk_server_opts o;
			if (cli_config_load("serve", a->config_path, a->sets, a->n_sets, &cfg) != 0) {
				tk_log(TK_LOG_ERROR, "server", "SIGHUP: configuration not reloaded");
				continue;
			}
			tk_server_opts_default(&o);
			apply_reloadable(cfg, a, &o);
			if (tk_server_reload(srv, &o) < 0)
				tk_log(TK_LOG_ERROR, "server", "SIGHUP: %s", tk_err_detail());
			else
				tk_log(TK_LOG_INFO, "server", "SIGHUP: log reopened, settings reloaded");
			tk_config_free(cfg);
			continue;
		}
		tk_logf(TK_LOG_INFO, "server", TK_FIELDS(TK_LF_S("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT")),
			"signal received: draining");
		return 0;
	}
}

int cli_cmd_serve(int argc, char **argv)
{
	struct serve_args a = { .task_timeout_ms = -1, .read_per_min = -1, .authfail_per_min = -1,
				.admin_per_min = -1,
				.http_threads = -1,
				.heartbeat_ms = -1, .runner = "noop" };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "config", required_argument, NULL, 'c' },
		{ "set", required_argument, NULL, 's' },
		{ "workers", required_argument, NULL, 'w' },
		{ "queue-max", required_argument, NULL, 'q' },
		{ "drain-grace-s", required_argument, NULL, 'g' },
		{ "rate-limit-per-min", required_argument, NULL, 'r' },
		{ "read-rate-per-min", required_argument, NULL, 'R' },
		{ "auth-failures-per-min", required_argument, NULL, 'F' },
		{ "admin-rate-per-min", required_argument, NULL, 'A' },
		{ "task-timeout-ms", required_argument, NULL, 't' },
		{ "http-threads", required_argument, NULL, 'H' },
		{ "sse-heartbeat-ms", required_argument, NULL, 'b' },
		{ "runner", required_argument, NULL, 'u' },
		{ "noop-delay-ms", required_argument, NULL, 'n' },
		{ "cors-origin", required_argument, NULL, 'o' },
		{ "addr-file", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	/* flag -> config key, for the flags that are plain config settings */
	struct { int c; const char *key; } keyed[] = {
		{ 'l', "server.listen" }, { 'd', "server.data_dir" }, { 'w', "server.workers" },
		{ 'q', "server.queue_max" }, { 'g', "server.drain_grace_s" },
		{ 'r', "server.rate_limit_per_min" },
	};
	char **flag_sets = calloc((size_t)argc * 2 + 1, sizeof *flag_sets);
	char **sets = calloc((size_t)argc + 1, sizeof *sets);
	int n_flag_sets = 0, n_sets = 0, rc = CLI_USAGE, c;
	struct tk_config *cfg = NULL;
	struct tk_store *st = NULL;
	struct tk_server *srv = NULL;
	struct tk_task_runner runner = { 0 };
	if (!flag_sets || !sets) {
		rc = cli_fail("serve", "out of memory");
		goto out;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		bool done = false;
		for (size_t i = 0; i < sizeof keyed / sizeof keyed[0]; i++) {
			if (keyed[i].c != c)
				continue;
			size_t n = strlen(keyed[i].key) + strlen(optarg) + 2;
			char *s = malloc(n);
			if (!s) {
				rc = cli_fail("serve", "out of memory");
				goto out;
			}
			snprintf(s, n, "%s=%s", keyed[i].key, optarg);
			flag_sets[n_flag_sets++] = s;
			done = true;
		}
		if (done)
			continue;
		long v;
		switch (c) {
		case 'c': a.config_path = optarg; break;
		case 's': sets[n_sets++] = optarg; break;
		case 'R':
			if (cli_parse_long("serve", "--read-rate-per-min", optarg, 0, 1000000, &v))
				goto out;
			a.read_per_min = v;
			break;
		case 'A':
			if (cli_parse_long("serve", "--admin-rate-per-min", optarg, 0, 1000000, &v))
				goto out;
			a.admin_per_min = v;
			break;
		case 'F':
			if (cli_parse_long("serve", "--auth-failures-per-min", optarg, 0, 1000000, &v))
				goto out;
			a.authfail_per_min = v;
			break;
		case 't':
			if (cli_parse_long("serve", "--task-timeout-ms", optarg, 0, 86400000L, &v))
				goto out;
			a.task_timeout_ms = v;
			break;
		case 'H':
			if (cli_parse_long("serve", "--http-threads", optarg, 1, 256, &v))
				goto out;
			a.http_threads = v;
			break;
		case 'b':
			if (cli_parse_long("serve", "--sse-heartbeat-ms", optarg, 10, 3600000L, &v))
				goto out;
			a.heartbeat_ms = v;
			break;
		case 'n':
			if (cli_parse_long("serve", "--noop-delay-ms", optarg, 0, 86400000L, &v))
				goto out;
			a.noop_delay_ms = v;
			break;
		case 'u': a.runner = optarg; break;
		case 'o': a.cors_origin = optarg; break;
		case 'a': a.addr_file = optarg; break;
		case 'h': fputs(usage, stdout); rc = CLI_OK; goto out;
		default: rc = cli_usage_error("serve", "unknown option"); goto out;
		}
	}
	if (optind < argc) {
		rc = cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (strcmp(a.runner, "noop")) {
		rc = cli_usage_error("serve", "--runner: only 'noop' exists in this build");
		goto out;
	}
	/* --set first, then the dedicated flags: both are TK_CFG_SRC_FLAG and
	 * the later one wins. */
	for (int i = 0; i < n_flag_sets; i++)
		sets[n_sets++] = flag_sets[i];
	a.sets = sets;
	a.n_sets = n_sets;
	if ((rc = cli_config_load("serve", a.config_path, sets, n_sets, &cfg)) != 0)
		goto out;
	struct tk_server_opts so;
	if ((rc = build_opts(cfg, &a, &so)) != 0)
		goto out;
	rc = CLI_FAIL;
	const char *log_file = tk_config_str(cfg, "log.file");
	enum tk_log_level lv = TK_LOG_INFO;
	tk_log_level_parse(tk_config_str(cfg, "log.level"), &lv);
	if (tk_log_init(*log_file ? log_file : NULL, lv) < 0) {
		rc = cli_fail("serve", "log.file");
		goto out;
	}
	tk_config_register_secrets(cfg, tk_log_add_secret);
	if (tk_crash_install() < 0)
		tk_log(TK_LOG_WARNING, "server", "crash handler not installed: %s", tk_err_detail());

	/* Block the signals before any thread exists so that every thread
	 * inherits the mask and only sigwait() below receives them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	const char *dir = tk_config_str(cfg, "server.data_dir");
	st = tk_store_open_dir(dir, NULL);
	if (!st) {
		rc = cli_fail("serve", "cannot open the store in %s", dir);
		goto out;
	}
	if (bootstrap_admin(st, cfg) != 0)
		goto out;
	tk_metrics_register_process(NULL);
	struct tk_noop_opts no = { .delay_ms = a.noop_delay_ms, .events = 3 };
	if (tk_runner_noop_init(&runner, &no) < 0) {
		rc = cli_fail("serve", "runner");
		goto out;
	}
	srv = tk_server_new(&so, st, &runner);
	if (!srv) {
		rc = cli_fail("serve", "cannot create the server");
		goto out;
	}
	if (tk_server_start(srv) < 0) {
		rc = cli_fail("serve", "cannot start");
		goto out;
	}
	serve_loop(srv, &a, &set);
	double grace = (double)tk_config_int(cfg, "server.drain_grace_s");
	rc = tk_server_shutdown(srv, grace) == 0 ? CLI_OK : CLI_FAIL;
out:
	tk_server_free(srv);
	if (runner.free)
		runner.free(runner.ctx);
	tk_store_close(st);
	tk_config_free(cfg);
	for (int i = 0; i < n_flag_sets; i++)
		free(flag_sets[i]);
	free(flag_sets);
	free(sets);
	tk_log_shutdown();
	return rc;
}
