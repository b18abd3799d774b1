/*
 * cmd_sandbox.c — `tanuki sandbox run|doctor|profiles`: run one command in
 * the sandbox from the command line, report what the host enforces, list
 * the effective profiles. A thin layer over src/sandbox/sandbox.h; settings
 * come from the configuration (sandbox.default_profile,
 * sandbox.allow_degraded, sandbox.profiles) and flags.
 */
#include "cli/cli.h"

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "sandbox/sandbox.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
	"usage: tanuki sandbox run [--profile NAME] [--workspace DIR] [--cpu-ms N]\n"
	"                          [--wall-ms N] [--mem-mb N] [--pids N] [--fsize-mb N]\n"
	"                          [--output-kb N] [--net none|loopback] [--stdin FILE]\n"
	"                          [--json] [--allow-degraded] [--profiles-file FILE]\n"
	"                          [--config FILE] [--set KEY=VALUE]... -- CMD [ARGS...]\n"
	"       tanuki sandbox doctor [--json] [--no-selftest]\n"
	"       tanuki sandbox profiles [--json] [--profiles-file FILE]\n\n"
	"run       runs CMD inside the sandbox (namespaces, seccomp, cgroup limits) with\n"
	"          DIR as /workspace (default: a fresh temporary directory, removed\n"
	"          afterwards). Without --json the program's stdout/stderr are passed\n"
	"          through and the exit code is the program's (128+N for signal N,\n"
	"          124 for a time limit, 125 for another limit, 1 for a sandbox\n"
	"          failure). With --json the result record (status, times, memory,\n"
	"          output sizes, capped output) is printed and the exit code is 0\n"
	"          unless the sandbox itself failed.\n"
	"doctor    prints what the host offers and how each limit is enforced, then\n"
	"          runs /bin/true in the sandbox as a self-test; exit 1 when the host\n"
	"          lacks the minimum for untrusted code or the self-test fails.\n"
	"profiles  prints the effective profiles (built-in + sandbox.profiles).\n";

enum {
	OPT_PROFILE = 1000, OPT_WORKSPACE, OPT_CPU, OPT_WALL, OPT_MEM, OPT_PIDS, OPT_FSIZE,
	OPT_OUTPUT, OPT_NET, OPT_STDIN, OPT_JSON, OPT_DEGRADED, OPT_PROFILES_FILE, OPT_CONFIG,
	OPT_SET, OPT_NO_SELFTEST,
};

static const struct option run_opts[] = {
	{ "profile", required_argument, NULL, OPT_PROFILE },
	{ "workspace", required_argument, NULL, OPT_WORKSPACE },
	{ "cpu-ms", required_argument, NULL, OPT_CPU },
	{ "wall-ms", required_argument, NULL, OPT_WALL },
	{ "mem-mb", required_argument, NULL, OPT_MEM },
	{ "pids", required_argument, NULL, OPT_PIDS },
	{ "fsize-mb", required_argument, NULL, OPT_FSIZE },
	{ "output-kb", required_argument, NULL, OPT_OUTPUT },
	{ "net", required_argument, NULL, OPT_NET },
	{ "stdin", required_argument, NULL, OPT_STDIN },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "allow-degraded", no_argument, NULL, OPT_DEGRADED },
	{ "profiles-file", required_argument, NULL, OPT_PROFILES_FILE },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "set", required_argument, NULL, OPT_SET },
	{ "no-selftest", no_argument, NULL, OPT_NO_SELFTEST },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Shared settings of the three subcommands. */
struct sb_cli {
	const char *config_path;
	char *sets[32];
	int n_sets;
	const char *profiles_file;
	bool json;
	bool allow_degraded;
	bool no_selftest;
	struct tk_sandbox_profiles *profiles;
	char default_profile[TK_SB_NAME_MAX];
};

static int read_text_file(const char *path, char **out)
{
	struct tk_buf b = TK_BUF_INIT(1u << 20);
	int rc = tk_buf_append_file(&b, path);
	if (rc) {
		tk_buf_free(&b);
		return rc;
	}
	*out = tk_buf_detach(&b, NULL);
	return *out ? 0 : tk_errf(TK_ENOMEM, "out of memory");
}

/* Configuration, then profiles: built-ins < sandbox.profiles < file. */
static int load_settings(const char *cmd, struct sb_cli *s)
{
	struct tk_config *cfg = NULL;
	int rc = cli_config_load(cmd, s->config_path, s->sets, s->n_sets, &cfg);
	if (rc)
		return rc;
	s->profiles = malloc(sizeof *s->profiles);
	if (!s->profiles) {
		tk_config_free(cfg);
		return cli_fail(cmd, "out of memory");
	}
	tk_sandbox_profiles_defaults(s->profiles);
	snprintf(s->default_profile, sizeof s->default_profile, "%s",
		 tk_config_str(cfg, "sandbox.default_profile"));
	if (tk_config_bool(cfg, "sandbox.allow_degraded"))
		s->allow_degraded = true;
	if (tk_sandbox_profiles_load(s->profiles, tk_config_json(cfg, "sandbox.profiles"))) {
		tk_config_free(cfg);
		return cli_fail(cmd, "configuration");
	}
	tk_config_free(cfg);
	if (s->profiles_file) {
		char *text = NULL;
		if (read_text_file(s->profiles_file, &text))
			return cli_fail(cmd, "--profiles-file");
		rc = tk_sandbox_profiles_load_json(s->profiles, text);
		free(text);
		if (rc)
			return cli_fail(cmd, "%s", s->profiles_file);
	}
	return CLI_OK;
}

static int print_json(json_t *j)
{
	if (!j)
		return CLI_FAIL;
	char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!text)
		return CLI_FAIL;
	puts(text);
	free(text);
	return CLI_OK;
}

static int make_temp_workspace(char *out, size_t cap)
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	int n = snprintf(out, cap, "%s/tanuki-sandbox-XXXXXX", tmp);
	if (n < 0 || (size_t)n >= cap)
		return tk_errf(TK_ELIMIT, "TMPDIR too long");
	if (!mkdtemp(out))
		return tk_errf_sys(TK_EIO, errno, "mkdtemp %s", out);
	return 0;
}

/* Ctrl-C / SIGTERM stop the run cleanly (cgroup and temporary workspace
 * removed) instead of killing us mid-way. */
static atomic_bool interrupted;
static volatile sig_atomic_t interrupt_sig;

static void on_interrupt(int sig)
{
	interrupt_sig = sig;
	atomic_store(&interrupted, true);
}

/* Passes the program's output through as it arrives. */
static void stream_out(void *arg, int stream, const char *data, size_t n)
{
	(void)arg;
	int fd = stream == 1 ? STDOUT_FILENO : STDERR_FILENO;
	while (n > 0) {
		ssize_t w = write(fd, data, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* reader gone: the rest is dropped (still counted) */
		data += w;
		n -= (size_t)w;
	}
}

static int sandbox_run(int argc, char **argv)
{
	static const char cmd[] = "sandbox run";
	struct sb_cli s;
	memset(&s, 0, sizeof s);
	struct tk_sandbox_spec spec;
	memset(&spec, 0, sizeof spec);
	const char *profile_name = NULL, *workspace = NULL;
	long v;
	int opt;
	optind = 1;
	/* "+": stop at the first non-option, so that CMD's own options are
	 * never taken for ours even without "--". */
	while ((opt = getopt_long(argc, argv, "+h", run_opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(usage_text, stdout);
			return CLI_OK;
		case OPT_PROFILE: profile_name = optarg; break;
		case OPT_WORKSPACE: workspace = optarg; break;
#define LIMIT(o, field, max)                                                   \
	case o:                                                                \
		if (cli_parse_long(cmd, "--" #field, optarg, 1, (max), &v))    \
			return CLI_USAGE;                                      \
		spec.limits.field = (uint64_t)v;                               \
		break;
		LIMIT(OPT_CPU, cpu_ms, 86400000L)
		LIMIT(OPT_WALL, wall_ms, 86400000L)
		LIMIT(OPT_MEM, mem_mb, 1L << 20)
		LIMIT(OPT_PIDS, pids, 1L << 16)
		LIMIT(OPT_FSIZE, fsize_mb, 1L << 20)
		LIMIT(OPT_OUTPUT, output_kb, 1L << 20)
#undef LIMIT
		case OPT_NET:
			if (!strcmp(optarg, "none"))
				spec.net = TK_SB_NET_NONE;
			else if (!strcmp(optarg, "loopback"))
				spec.net = TK_SB_NET_LOOPBACK;
			else
				return cli_usage_error(cmd, "--net: expected none or loopback, got '%s'",
						       optarg);
			break;
		case OPT_STDIN: spec.stdin_path = optarg; break;
		case OPT_JSON: s.json = true; break;
		case OPT_DEGRADED: s.allow_degraded = true; break;
		case OPT_PROFILES_FILE: s.profiles_file = optarg; break;
		case OPT_CONFIG: s.config_path = optarg; break;
		case OPT_SET:
			if (s.n_sets >= (int)(sizeof s.sets / sizeof s.sets[0]))
				return cli_usage_error(cmd, "too many --set");
			s.sets[s.n_sets++] = optarg;
			break;
		default:
			return cli_usage_error(cmd, "unknown option");
		}
	}
	if (optind >= argc)
		return cli_usage_error(cmd, "no command given (tanuki sandbox run [options] -- CMD)");
	int rc = load_settings(cmd, &s);
	if (rc)
		goto out;
	if (!profile_name)
		profile_name = s.default_profile;
	spec.profile = tk_sandbox_profile_find(s.profiles, profile_name);
	if (!spec.profile) {
		rc = cli_usage_error(cmd, "no profile '%s'", profile_name);
		goto out;
	}
	struct tk_sandbox_options opts;
	tk_sandbox_options_defaults(&opts);
	opts.allow_degraded = s.allow_degraded;
	opts.reuse_cgroups = false; /* one run per process: a slot would not pay off */
	spec.opts = &opts;
	char tmpws[4096] = "";
	if (!workspace) {
		if (make_temp_workspace(tmpws, sizeof tmpws)) {
			rc = cli_fail(cmd, "workspace");
			goto out;
		}
		workspace = tmpws;
	}
	spec.workspace = workspace;
	spec.argv = (const char *const *)(argv + optind);
	/* Passed through as it arrives (the output limit still caps it); in
	 * JSON a capped excerpt is part of the record. */
	spec.capture_max_bytes = 64 * 1024;
	if (!s.json)
		spec.on_output = stream_out;

	struct sigaction sa, old_int, old_term;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	spec.cancel = &interrupted;
	struct tk_sandbox_result r;
	int run_rc = tk_sandbox_run(&spec, &r);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (tmpws[0] && tk_sandbox_workspace_remove(tmpws))
		fprintf(stderr, "tanuki: %s: cannot remove %s: %s\n", cmd, tmpws, tk_err_detail());
	if (s.json) {
		print_json(tk_sandbox_result_to_json(&r, true));
		rc = r.status == TK_SB_XX ? CLI_FAIL : CLI_OK;
		if (run_rc && r.status == TK_SB_XX)
			fprintf(stderr, "tanuki: %s: %s\n", cmd, r.message);
		tk_sandbox_result_free(&r);
		goto out;
	}
	if (atomic_load(&interrupted) && r.status == TK_SB_XX) {
		fprintf(stderr, "tanuki: sandbox: interrupted\n");
		rc = 128 + (int)interrupt_sig;
		tk_sandbox_result_free(&r);
		goto out;
	}
	switch (r.status) {
	case TK_SB_OK:
	case TK_SB_RE:
		rc = r.exit_code;
		break;
	case TK_SB_SG:
		rc = 128 + r.signal;
		break;
	case TK_SB_TO:
		rc = 124;
		break;
	case TK_SB_ML:
	case TK_SB_OL:
		rc = 125;
		break;
	default:
		rc = CLI_FAIL;
		break;
	}
	if (r.status != TK_SB_OK && r.status != TK_SB_RE)
		fprintf(stderr, "tanuki: sandbox: %s: %s (wall %llu ms, cpu %llu ms)\n",
			tk_sandbox_status_name(r.status), r.message,
			(unsigned long long)r.wall_ms, (unsigned long long)r.cpu_ms);
	else if (r.status == TK_SB_RE && r.message[0])
		fprintf(stderr, "tanuki: sandbox: %s\n", r.message);
	tk_sandbox_result_free(&r);
out:
	free(s.profiles);
	return rc;
}

static int sandbox_doctor(int argc, char **argv)
{
	static const char cmd[] = "sandbox doctor";
	struct sb_cli s;
	memset(&s, 0, sizeof s);
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", run_opts, NULL)) != -1) {
		switch (opt) {
		case 'h': fputs(usage_text, stdout); return CLI_OK;
		case OPT_JSON: s.json = true; break;
		case OPT_NO_SELFTEST: s.no_selftest = true; break;
		case OPT_CONFIG: s.config_path = optarg; break;
		default: return cli_usage_error(cmd, "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	int rc = load_settings(cmd, &s);
	if (rc)
		goto out;
	struct tk_sandbox_host h;
	tk_sandbox_probe(&h, true);
	bool secure = tk_sandbox_host_secure(&h);

	/* The self-test: does a real run work here, end to end? */
	struct tk_sandbox_result r;
	tk_sandbox_result_init(&r);
	bool tested = false;
	if (!s.no_selftest && (secure || s.allow_degraded)) {
		char ws[4096];
		if (make_temp_workspace(ws, sizeof ws) == 0) {
			struct tk_sandbox_options opts;
			tk_sandbox_options_defaults(&opts);
			opts.allow_degraded = s.allow_degraded;
			opts.reuse_cgroups = false;
			struct tk_sandbox_spec spec = {
				.profile = tk_sandbox_profile_find(s.profiles, "shell"),
				.workspace = ws,
				.argv = (const char *const[]){ "/bin/true", NULL },
				.opts = &opts,
			};
			if (spec.profile) {
				tk_sandbox_run(&spec, &r);
				tested = true;
			}
			tk_sandbox_workspace_remove(ws);
		}
	}
	bool test_ok = !tested || r.status == TK_SB_OK;
	if (s.json) {
		json_t *j = tk_sandbox_doctor_json(&h);
		if (j && tested)
			json_object_set_new(j, "selftest", tk_sandbox_result_to_json(&r, false));
		print_json(j);
	} else {
		struct tk_buf out = TK_BUF_INIT(1u << 16);
		tk_sandbox_doctor_text(&h, &out);
		fputs(tk_buf_str(&out), stdout);
		tk_buf_free(&out);
		if (tested)
			printf("selftest: /bin/true in profile shell: %s%s%s (wall %llu ms)\n",
			       tk_sandbox_status_name(r.status), r.message[0] ? ": " : "", r.message,
			       (unsigned long long)r.wall_ms);
		else
			printf("selftest: skipped\n");
	}
	tk_sandbox_result_free(&r);
	rc = secure && test_ok ? CLI_OK : CLI_FAIL;
out:
	free(s.profiles);
	return rc;
}

static int sandbox_profiles(int argc, char **argv)
{
	static const char cmd[] = "sandbox profiles";
	struct sb_cli s;
	memset(&s, 0, sizeof s);
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", run_opts, NULL)) != -1) {
		switch (opt) {
		case 'h': fputs(usage_text, stdout); return CLI_OK;
		case OPT_JSON: s.json = true; break;
		case OPT_PROFILES_FILE: s.profiles_file = optarg; break;
		case OPT_CONFIG: s.config_path = optarg; break;
		default: return cli_usage_error(cmd, "unknown option");
		}
	}
	int rc = load_settings(cmd, &s);
	if (rc)
		goto out;
	if (s.json) {
		json_t *arr = json_array();
		for (size_t i = 0; arr && i < s.profiles->n; i++)
			json_array_append_new(arr, tk_sandbox_profile_to_json(&s.profiles->items[i]));
		rc = print_json(arr);
		goto out;
	}
	for (size_t i = 0; i < s.profiles->n; i++) {
		const struct tk_sandbox_profile *p = &s.profiles->items[i];
		printf("%-10s net=%s cpu_ms=%llu wall_ms=%llu mem_mb=%llu pids=%llu binds:",
		       p->name, p->net == TK_SB_NET_LOOPBACK ? "loopback" : "none",
		       (unsigned long long)p->limits.cpu_ms, (unsigned long long)p->limits.wall_ms,
		       (unsigned long long)p->limits.mem_mb, (unsigned long long)p->limits.pids);
		for (size_t k = 0; k < p->n_binds; k++)
			printf(" %s", p->binds[k].src);
		putchar('\n');
	}
out:
	free(s.profiles);
	return rc;
}

int cli_cmd_sandbox(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (!strcmp(argv[1], "run"))
		return sandbox_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "doctor"))
		return sandbox_doctor(argc - 1, argv + 1);
	if (!strcmp(argv[1], "profiles"))
		return sandbox_profiles(argc - 1, argv + 1);
	return cli_usage_error("sandbox", "unknown subcommand '%s'", argv[1]);
}
