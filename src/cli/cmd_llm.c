/* cmd_llm.c — `tanuki llm chat|health|models`: one call to the configured
 * LLM backend (src/llm/llm.h), for trying a backend and for tests. The
 * backend comes from the configuration; --backend/--url/--model/--script
 * are shorthands for --set llm.*=... . */
#include "cli/cli.h"
#include "cli/cli_llm.h"

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "llm/llm.h"
#include "obs/metrics.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: tanuki llm chat -m TEXT [--system TEXT] [--agent NAME] [--turn N] [--adapter A]\n"
	"                       [--max-tokens N] [--temperature T] [--top-p P] [--top-k K]\n"
	"                       [--seed S] [--stop STR]... [--json-schema FILE | --grammar FILE]\n"
	"                       [--json] [--metrics-out FILE] [COMMON]\n"
	"       tanuki llm health [COMMON]\n"
	"       tanuki llm models [COMMON]\n"
	"COMMON: [--config FILE] [--set KEY=VALUE]... [--backend openai|ollama|embedded|scripted]\n"
	"        [--url URL] [--model NAME] [--script FILE]\n\n"
	"chat    sends one user message (after an optional system message) to the\n"
	"        configured backend and streams the reply to stdout; --json prints\n"
	"        {\"text\", \"finish_reason\", \"model\", \"usage\", \"timings\", \"attempts\"}\n"
	"        at the end instead. Ctrl-C cancels the call.\n"
	"health  exits 0 when the backend answers its health check, 1 otherwise.\n"
	"models  lists the models the backend offers, one per line.\n\n"
	"The backend and its settings are the llm.* configuration keys (see\n"
	"'tanuki config keys' and docs/llm.md); --backend, --url, --model and\n"
	"--script set llm.backend, llm.url, llm.model and llm.script.\n"
	"--metrics-out writes the Prometheus exposition after the call.\n";

struct llm_cli {
	const char *config_path;
	struct cli_llm_sets sets; /* --set flags and the shorthands' settings */
	const char *message, *system, *agent, *adapter, *schema_path, *grammar_path, *metrics_out;
	long turn, max_tokens, top_k;
	double temperature, top_p;
	bool has_seed, json;
	unsigned long long seed;
	const char *stop[LLM_MAX_STOP];
	int n_stop;
};

static atomic_bool g_cancel;

static void on_sigint(int sig)
{
	(void)sig;
	atomic_store(&g_cancel, true);
}

static int parse(const char *cmd, int argc, char **argv, struct llm_cli *o)
{
	enum { O_SYSTEM = 256, O_AGENT, O_TURN, O_MAXTOK, O_TEMP, O_TOPP, O_TOPK, O_SEED, O_STOP,
	       O_SCHEMA, O_GRAMMAR, O_JSON, O_METRICS, O_CONFIG, O_SET, O_BACKEND, O_URL,
	       O_MODEL, O_SCRIPT, O_ADAPTER };
	static const struct option opts[] = {
		{ "message", required_argument, NULL, 'm' },
		{ "system", required_argument, NULL, O_SYSTEM },
		{ "agent", required_argument, NULL, O_AGENT },
		{ "adapter", required_argument, NULL, O_ADAPTER },
		{ "turn", required_argument, NULL, O_TURN },
		{ "max-tokens", required_argument, NULL, O_MAXTOK },
		{ "temperature", required_argument, NULL, O_TEMP },
		{ "top-p", required_argument, NULL, O_TOPP },
		{ "top-k", required_argument, NULL, O_TOPK },
		{ "seed", required_argument, NULL, O_SEED },
		{ "stop", required_argument, NULL, O_STOP },
		{ "json-schema", required_argument, NULL, O_SCHEMA },
		{ "grammar", required_argument, NULL, O_GRAMMAR },
		{ "json", no_argument, NULL, O_JSON },
		{ "metrics-out", required_argument, NULL, O_METRICS },
		{ "config", required_argument, NULL, O_CONFIG },
		{ "set", required_argument, NULL, O_SET },
		{ "backend", required_argument, NULL, O_BACKEND },
		{ "url", required_argument, NULL, O_URL },
		{ "model", required_argument, NULL, O_MODEL },
		{ "script", required_argument, NULL, O_SCRIPT },
		{ NULL, 0, NULL, 0 },
	};
	o->turn = -1;
	o->temperature = -1;
	o->top_p = -1;
	optind = 1;
	int c, rc = 0;
	long v;
	while ((c = getopt_long(argc, argv, "m:", opts, NULL)) != -1) {
		switch (c) {
		case 'm': o->message = optarg; break;
		case O_SYSTEM: o->system = optarg; break;
		case O_AGENT: o->agent = optarg; break;
		case O_ADAPTER: o->adapter = optarg; break;
		case O_TURN:
			rc = cli_parse_long(cmd, "--turn", optarg, 0, 1000000000, &o->turn);
			break;
		case O_MAXTOK:
			rc = cli_parse_long(cmd, "--max-tokens", optarg, 1, 1 << 24, &o->max_tokens);
			break;
		case O_TEMP:
			rc = cli_parse_double(cmd, "--temperature", optarg, 0, 100, &o->temperature);
			break;
		case O_TOPP:
			rc = cli_parse_double(cmd, "--top-p", optarg, 1e-9, 1, &o->top_p);
			break;
		case O_TOPK:
			rc = cli_parse_long(cmd, "--top-k", optarg, 1, 1 << 20, &o->top_k);
			break;
		case O_SEED:
			rc = cli_parse_long(cmd, "--seed", optarg, 0, 0x7fffffffL, &v);
			o->seed = (unsigned long long)v;
			o->has_seed = true;
			break;
		case O_STOP:
			if (o->n_stop >= LLM_MAX_STOP)
				return cli_usage_error(cmd, "at most %d --stop strings", LLM_MAX_STOP);
			o->stop[o->n_stop++] = optarg;
			break;
		case O_SCHEMA: o->schema_path = optarg; break;
		case O_GRAMMAR: o->grammar_path = optarg; break;
		case O_JSON: o->json = true; break;
		case O_METRICS: o->metrics_out = optarg; break;
		case O_CONFIG: o->config_path = optarg; break;
		case O_SET: rc = cli_llm_sets_add(cmd, &o->sets, NULL, optarg); break;
		case O_BACKEND: rc = cli_llm_sets_add(cmd, &o->sets, "llm.backend", optarg); break;
		case O_URL: rc = cli_llm_sets_add(cmd, &o->sets, "llm.url", optarg); break;
		case O_MODEL: rc = cli_llm_sets_add(cmd, &o->sets, "llm.model", optarg); break;
		case O_SCRIPT: rc = cli_llm_sets_add(cmd, &o->sets, "llm.script", optarg); break;
		default: return cli_usage_error(cmd, "unknown option");
		}
		if (rc)
			return rc;
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	return 0;
}

static int print_piece(void *ud, const char *text, size_t len)
{
	(void)ud;
	fwrite(text, 1, len, stdout);
	fflush(stdout);
	return 0;
}

static int write_metrics(const char *cmd, const char *path)
{
	struct tk_buf b = TK_BUF_INIT(16u << 20);
	int rc = tk_metrics_expose(NULL, &b);
	FILE *f = rc ? NULL : fopen(path, "w");
	if (f) {
		fwrite(b.data ? b.data : "", 1, b.len, f);
		if (fclose(f))
			f = NULL;
	}
	tk_buf_free(&b);
	if (!f)
		return cli_fail(cmd, "cannot write metrics to %s", path);
	return 0;
}

static int print_json(const char *cmd, const struct llm_result *r)
{
	json_t *j = json_pack("{s:s%, s:s, s:s?, s:{s:I, s:I}, s:{s:f, s:f, s:f}, s:i}",
			      "text", r->text, r->text_len, "finish_reason",
			      llm_finish_name(r->finish), "model", r->model,
			      "usage", "prompt_tokens", (json_int_t)r->usage.prompt_tokens,
			      "completion_tokens", (json_int_t)r->usage.completion_tokens,
			      "timings", "queue_ms", r->timings.queue_ms, "ttft_ms",
			      r->timings.ttft_ms, "total_ms", r->timings.total_ms,
			      "attempts", (int)r->attempts);
	if (!j) {
		tk_errf(TK_EFORMAT, "the reply is not valid UTF-8");
		return cli_fail(cmd, "cannot print the reply as JSON");
	}
	struct tk_buf b = TK_BUF_INIT(64u << 20);
	int rc = tk_json_dump(j, false, &b);
	json_decref(j);
	if (!rc)
		printf("%s\n", b.data);
	tk_buf_free(&b);
	return rc ? cli_fail(cmd, "cannot print the reply") : CLI_OK;
}

static int do_chat(const char *cmd, struct llm_backend *be, const struct llm_cli *o)
{
	if (!o->message)
		return cli_usage_error(cmd, "chat needs -m TEXT");
	char *schema = NULL, *grammar = NULL;
	int crc = cli_llm_read_constraint(cmd, o->schema_path, o->grammar_path, &schema, &grammar);
	if (crc) {
		free(schema);
		return crc;
	}
	struct llm_message msgs[2];
	size_t n = 0;
	if (o->system)
		msgs[n++] = (struct llm_message){ "system", o->system };
	msgs[n++] = (struct llm_message){ "user", o->message };
	struct llm_params p;
	llm_params_default(&p);
	p.agent = o->agent;
	p.adapter = o->adapter;
	p.turn = (int32_t)o->turn;
	p.max_tokens = (int32_t)o->max_tokens;
	p.sampling.temperature = o->temperature;
	p.sampling.top_p = o->top_p;
	p.sampling.top_k = (int32_t)o->top_k;
	p.has_seed = o->has_seed;
	p.seed = o->seed;
	p.stop = o->stop;
	p.n_stop = (size_t)o->n_stop;
	p.json_schema = schema;
	p.grammar = grammar;

	struct sigaction sa = { .sa_handler = on_sigint }, old;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	struct llm_result r;
	int rc = llm_chat(be, msgs, n, &p, o->json ? NULL : print_piece, NULL, &g_cancel, &r);
	sigaction(SIGINT, &old, NULL);
	int ret = CLI_OK;
	if (rc) {
		if (!o->json)
			fflush(stdout);
		ret = cli_fail(cmd, "chat failed (%s)", tk_err_name(rc));
	} else if (o->json) {
		ret = print_json(cmd, &r);
	} else {
		if (r.text_len && r.text[r.text_len - 1] != '\n')
			putchar('\n');
		fflush(stdout);
		fprintf(stderr, "[finish=%s prompt_tokens=%lld completion_tokens=%lld "
			"ttft_ms=%.1f total_ms=%.1f attempts=%d]\n", llm_finish_name(r.finish),
			(long long)r.usage.prompt_tokens, (long long)r.usage.completion_tokens,
			r.timings.ttft_ms, r.timings.total_ms, (int)r.attempts);
	}
	llm_result_free(&r);
	free(schema);
	free(grammar);
	if (o->metrics_out) {
		int mrc = write_metrics(cmd, o->metrics_out);
		if (mrc && ret == CLI_OK)
			ret = mrc;
	}
	return ret;
}

int cli_cmd_llm(int argc, char **argv)
{
	const char *cmd = "llm";
	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "chat") && strcmp(sub, "health") && strcmp(sub, "models"))
		return cli_usage_error(cmd, "unknown subcommand '%s' (chat, health, models)", sub);
	struct llm_cli o;
	memset(&o, 0, sizeof o);
	int ret = parse(cmd, argc - 1, argv + 1, &o);
	struct tk_config *cfg = NULL;
	struct llm_backend *be = NULL;
	if (ret)
		goto out;
	if ((ret = cli_config_load(cmd, o.config_path, o.sets.sets, o.sets.n_sets, &cfg)))
		goto out;
	if (!(be = llm_backend_from_config(cfg))) {
		ret = cli_fail(cmd, "cannot set up the LLM backend");
		goto out;
	}
	if (!strcmp(sub, "chat")) {
		ret = do_chat(cmd, be, &o);
	} else if (!strcmp(sub, "health")) {
		if (llm_health(be))
			ret = cli_fail(cmd, "%s backend is down", llm_backend_name(be));
		else
			printf("%s: up\n", llm_backend_name(be));
	} else {
		char **names;
		size_t n;
		if (llm_list_models(be, &names, &n)) {
			ret = cli_fail(cmd, "cannot list models");
		} else {
			for (size_t i = 0; i < n; i++)
				printf("%s\n", names[i]);
			llm_models_free(names, n);
		}
	}
out:
	llm_backend_free(be);
	tk_config_free(cfg);
	cli_llm_sets_free(&o.sets);
	return ret;
}
