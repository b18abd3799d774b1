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

#include "agents/agents.h"
#include "core/config.h"
#include "core/err.h"
#include "llm/llm.h"
#include "obs/crash.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "sandbox/sandbox.h"
#include "server/runner_orch.h"
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
	"  --read-rate-per-min N   server.rate_limit_read_per_min (other requests per key)\n"
	"  --admin-rate-per-min N  server.rate_limit_admin_per_min\n"
	"  --auth-failures-per-min N  server.rate_limit_auth_failures_per_min (per\n"
	"                          client address, then 429; 0 = no limit)\n"
	"  --task-timeout-ms N     per-task deadline in ms (overrides server.task_timeout_s)\n"
	"  --http-threads N        server.http_threads\n"
	"  --sse-heartbeat-ms N    server.sse_heartbeat_ms (keepalive on idle streams)\n"
	"  --runner NAME           server.runner: orchestrator (default: the agents on the\n"
	"                          llm.* backend) or noop (tests and benchmarks)\n"
	"  --noop-delay-ms N       server.noop_delay_ms (how long a noop task takes)\n"
	"  --cors-origin ORIGIN    server.cors_origin (default empty: no CORS)\n"
	"  --addr-file FILE        write the bound HOST:PORT here once listening (a\n"
	"                          second line: the metrics address, when separate)\n\n"
	"The admin key in server.admin_key ($TANUKI_SERVER_ADMIN_KEY), when set, is\n"
	"stored on start if absent (key text as printed by 'tanuki keys create').\n";

struct serve_args {
	const char *config_path;
	char **sets;
	int n_sets;
	long task_timeout_ms;   /* -1 = from config */
	const char *addr_file;
};

/* Config values that may change on SIGHUP. */
static int apply_reloadable(const struct tk_config *cfg, struct tk_server_opts *o)
{
	enum tk_log_level lv;
	if (tk_log_level_parse(tk_config_str(cfg, "log.level"), &lv) == 0)
		tk_log_set_level(lv);
	double per_min = (double)tk_config_int(cfg, "server.rate_limit_per_min");
	o->limits[TK_RL_SUBMIT] = (struct tk_rl_limit){ per_min, per_min > 0 ? per_min : 1 };
	double r = (double)tk_config_int(cfg, "server.rate_limit_read_per_min");
	o->limits[TK_RL_READ] = (struct tk_rl_limit){ r, r > 0 ? (r < 120 ? r : 120) : 1 };
	double m = (double)tk_config_int(cfg, "server.rate_limit_admin_per_min");
	o->limits[TK_RL_ADMIN] = (struct tk_rl_limit){ m, m > 0 ? (m < 60 ? m : 60) : 1 };
	double f = (double)tk_config_int(cfg, "server.rate_limit_auth_failures_per_min");
	o->limits[TK_RL_AUTHFAIL] = (struct tk_rl_limit){ f, f > 0 ? f : 1 };
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
	o->http_threads = (unsigned)tk_config_int(cfg, "server.http_threads");
	o->sse_heartbeat_ms = (int)tk_config_int(cfg, "server.sse_heartbeat_ms");
	const char *cors = tk_config_str(cfg, "server.cors_origin");
	o->cors_origin = *cors ? cors : NULL;
	o->addr_file = a->addr_file;
	return apply_reloadable(cfg, o);
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

/* What the orchestrator runner borrows; built from the configuration and
 * released after the server and the runner. */
struct orch_parts {
	struct llm_backend *llm;
	struct agent_team team;
	struct agent_settings settings;
	struct tk_sandbox_profiles *profiles;
	struct tk_sandbox_options sandbox_opts;
	bool have_team;
};

static int build_runner(const struct tk_config *cfg, struct tk_store *st, struct orch_parts *p,
			struct tk_task_runner *runner)
{
	if (!strcmp(tk_config_str(cfg, "server.runner"), "noop")) {
		struct tk_noop_opts no = { .delay_ms = tk_config_int(cfg, "server.noop_delay_ms"),
					   .events = 3 };
		if (tk_runner_noop_init(runner, &no) < 0)
			return cli_fail("serve", "runner");
		return 0;
	}
	/* No network traffic here: a backend that is down fails tasks (and
	 * /readyz), not the start. */
	if (!(p->llm = llm_backend_from_config(cfg)))
		return cli_fail("serve", "llm backend");
	if (agent_team_from_config(cfg, &p->team) < 0)
		return cli_fail("serve", "agents.team");
	p->have_team = true;
	agent_settings_from_config(cfg, &p->settings);
	if (!(p->profiles = malloc(sizeof *p->profiles)))
		return cli_fail("serve", "out of memory");
	tk_sandbox_profiles_defaults(p->profiles);
	if (tk_sandbox_profiles_load(p->profiles, tk_config_json(cfg, "sandbox.profiles")) < 0)
		return cli_fail("serve", "sandbox.profiles");
	tk_sandbox_options_defaults(&p->sandbox_opts);
	p->sandbox_opts.allow_degraded = tk_config_bool(cfg, "sandbox.allow_degraded");
	struct tk_orch_runner_opts o = {
		.llm = p->llm, .team = &p->team, .settings = &p->settings,
		.profiles = p->profiles, .sandbox_opts = &p->sandbox_opts, .store = st,
		.health_interval_ms = tk_config_int(cfg, "server.llm_health_interval_s") * 1000,
	};
	if (tk_runner_orch_init(runner, &o) < 0)
		return cli_fail("serve", "orchestrator runner");
	tk_logf(TK_LOG_INFO, "server", TK_FIELDS(TK_LF_S("backend", llm_backend_name(p->llm))),
		"orchestrator runner ready");
	return 0;
}

static void free_parts(struct orch_parts *p)
{
	if (p->llm)
		tk_sandbox_shutdown(); /* after the server: no run is in progress */
	llm_backend_free(p->llm);
	if (p->have_team)
		agent_team_free(&p->team);
	free(p->profiles);
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
			apply_reloadable(cfg, &o);
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
	struct serve_args a = { .task_timeout_ms = -1 };
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
		{ 'R', "server.rate_limit_read_per_min" }, { 'A', "server.rate_limit_admin_per_min" },
		{ 'F', "server.rate_limit_auth_failures_per_min" }, { 'H', "server.http_threads" },
		{ 'b', "server.sse_heartbeat_ms" }, { 'n', "server.noop_delay_ms" },
		{ 'u', "server.runner" }, { 'o', "server.cors_origin" },
	};
	char **flag_sets = calloc((size_t)argc * 2 + 1, sizeof *flag_sets);
	char **sets = calloc((size_t)argc + 1, sizeof *sets);
	int n_flag_sets = 0, n_sets = 0, rc = CLI_USAGE, c;
	struct tk_config *cfg = NULL;
	struct tk_store *st = NULL;
	struct tk_server *srv = NULL;
	struct tk_task_runner runner = { 0 };
	struct orch_parts parts = { 0 };
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
		case 't':
			if (cli_parse_long("serve", "--task-timeout-ms", optarg, 0, 86400000L, &v))
				goto out;
			a.task_timeout_ms = v;
			break;
		case 'a': a.addr_file = optarg; break;
		case 'h': fputs(usage, stdout); rc = CLI_OK; goto out;
		default: rc = cli_usage_error("serve", "unknown option"); goto out;
		}
	}
	if (optind < argc) {
		rc = cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
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
	if (build_runner(cfg, st, &parts, &runner) != 0)
		goto out;
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
	free_parts(&parts);
	tk_store_close(st);
	tk_config_free(cfg);
	for (int i = 0; i < n_flag_sets; i++)
		free(flag_sets[i]);
	free(flag_sets);
	free(sets);
	tk_log_shutdown();
	return rc;
}
