/* cmd_generate.c — `tanuki generate`: prompt in, sampled tokens out,
 * streamed as text while they come (or one JSON object at the end).
 * Plain runs drive the engine directly (engine/generate.h); runs with
 * --json-schema/--grammar or a remote --backend go through the LLM backend
 * interface (llm/llm.h), configured from the flags via --set settings. */
#include "cli/cli.h"
#include "cli/cli_adapter.h"
#include "cli/cli_llm.h"

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "engine/chat.h"
#include "engine/context.h"
#include "engine/generate.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "llm/llm.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: tanuki generate --model M.gguf (-p TEXT | --chat TEXT | --tokens \"ids\")\n"
	"                       [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
	"                       [--repeat-penalty R] [--repeat-last-n N]\n"
	"                       [--frequency-penalty F] [--presence-penalty P]\n"
	"                       [--seed S] [--stop STR]... [--threads T] [--ctx N] [--json]\n"
	"                       [--adapter FILE_OR_NAME[:SCALE]]... [--adapter-dir DIR]\n"
	"                       [--json-schema FILE | --grammar FILE]\n"
	"       tanuki generate --backend ollama|openai --base-url URL --model NAME\n"
	"                       (-p TEXT | --chat TEXT) [-n N] [--temp T] [--top-p P]\n"
	"                       [--top-k K] [--repeat-penalty R] [--seed S] [--stop STR]...\n"
	"                       [--json-schema FILE | --grammar FILE] [--json]\n"
	"                       [--config FILE] [--set KEY=VALUE]...\n\n"
	"Generates up to N tokens (default 128) after the prompt and streams their\n"
	"text to stdout as they come. -p takes plain text (BOS added when the model\n"
	"asks for it; special-token text stays text); --chat wraps TEXT as one user\n"
	"turn in the model's chat template (tokenizer.chat_template; chatml when\n"
	"absent or unrecognised) and opens the assistant's reply; --tokens takes\n"
	"ids as they are. Generation stops at an end-of-generation token (EOS,\n"
	"EOT), at a --stop string (cut before it), after N tokens, or when the\n"
	"context (--ctx, default min(training context, 4096)) is full. --threads\n"
	"defaults to the number of physical cores (0 means the same).\n\n"
	"Sampling: --temp 0 is greedy. Defaults: temp 0.8, top-k 40, top-p 0.95,\n"
	"min-p 0.05, repeat-penalty 1.0 (off) over the last 64 tokens, seed 0x5EED.\n"
	"--json prints {\"tokens\", \"text\", \"finish_reason\", \"usage\", \"timings\"}\n"
	"at the end instead of streaming.\n"
	"--adapter applies a LoRA adapter (llama.cpp GGUF format) at SCALE (default\n"
	"1.0) without changing the model; repeat it to stack adapters; a NAME means\n"
	"DIR/NAME.gguf with --adapter-dir DIR (docs/lora.md).\n\n"
	"Structured output: --json-schema FILE (a JSON Schema subset) or --grammar\n"
	"FILE (GBNF) constrains the reply (docs/llm.md). With either, or with\n"
	"--backend ollama|openai, the run goes through the LLM backend interface\n"
	"(the llm.* settings: --backend, --base-url, --model set llm.backend,\n"
	"llm.url, llm.model; --ctx/--threads set llm.embedded_ctx/_threads):\n"
	"-p and --chat both send TEXT as one user turn (chat template), --tokens,\n"
	"--min-p, --repeat-last-n, the frequency/presence penalties and --adapter\n"
	"are refused, and --json's \"tokens\" is empty (ids are not known) and its\n"
	"timings come from the backend's (prompt_ms = time to first token).\n"
	"Remote backends get only the sampling flags given; Ollama refuses\n"
	"--grammar. --backend embedded (default) is the plain engine path.";

struct gen_opts {
	const char *model, *prompt, *chat, *tokens;
	long n_predict, threads, ctx, top_k, last_n;
	double temp, top_p, min_p, repeat, freq, presence;
	unsigned long long seed;
	bool json;
	const char *stops[ENGINE_STOP_MAX_STRINGS];
	int n_stops;
	struct cli_adapters adapters;
	/* the LLM-interface path */
	const char *backend, *base_url, *schema_path, *grammar_path, *config_path;
	const char *engine_only; /* the first engine-only flag given, or NULL */
	bool has_temp, has_top_k, has_top_p, has_repeat, has_seed, has_threads;
	struct cli_llm_sets sets;
};

static int parse_opts(int argc, char **argv, struct gen_opts *o)
{
	struct engine_sampler_params sp;
	engine_sampler_params_default(&sp);
	*o = (struct gen_opts){ .n_predict = 128, .threads = 0, .ctx = 0, .top_k = sp.top_k,
				.last_n = sp.penalty_last_n, .temp = sp.temp, .top_p = sp.top_p,
				.min_p = sp.min_p, .repeat = sp.repeat_penalty,
				.freq = sp.freq_penalty, .presence = sp.presence_penalty,
				.seed = sp.seed, .backend = "embedded" };
	enum { O_TOPK = 256, O_TOPP, O_MINP, O_REP, O_LASTN, O_FREQ, O_PRES, O_SEED, O_STOP,
	       O_CTX, O_CHAT, O_TOKENS, O_TEMP, O_ADAPTER, O_ADAPTER_DIR, O_SCHEMA, O_GRAMMAR,
	       O_BACKEND, O_BASE_URL, O_CONFIG, O_SET };
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "chat", required_argument, NULL, O_CHAT },
		{ "tokens", required_argument, NULL, O_TOKENS },
		{ "n-predict", required_argument, NULL, 'n' },
		{ "temp", required_argument, NULL, O_TEMP },
		{ "top-k", required_argument, NULL, O_TOPK },
		{ "top-p", required_argument, NULL, O_TOPP },
		{ "min-p", required_argument, NULL, O_MINP },
		{ "repeat-penalty", required_argument, NULL, O_REP },
		{ "repeat-last-n", required_argument, NULL, O_LASTN },
		{ "frequency-penalty", required_argument, NULL, O_FREQ },
		{ "presence-penalty", required_argument, NULL, O_PRES },
		{ "seed", required_argument, NULL, O_SEED },
		{ "stop", required_argument, NULL, O_STOP },
		{ "threads", required_argument, NULL, 't' },
		{ "ctx", required_argument, NULL, O_CTX },
		{ "json", no_argument, NULL, 'j' },
		{ "adapter", required_argument, NULL, O_ADAPTER },
		{ "adapter-dir", required_argument, NULL, O_ADAPTER_DIR },
		{ "json-schema", required_argument, NULL, O_SCHEMA },
		{ "grammar", required_argument, NULL, O_GRAMMAR },
		{ "backend", required_argument, NULL, O_BACKEND },
		{ "base-url", required_argument, NULL, O_BASE_URL },
		{ "config", required_argument, NULL, O_CONFIG },
		{ "set", required_argument, NULL, O_SET },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *cmd = "generate";
#define ENGINE_ONLY(flag) (o->engine_only = o->engine_only ? o->engine_only : (flag))
	optind = 1;
	int c;
	long seed = 0;
	while ((c = getopt_long(argc, argv, "+m:p:n:t:jh", opts, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'p': o->prompt = optarg; break;
		case O_CHAT: o->chat = optarg; break;
		case O_TOKENS: o->tokens = optarg; ENGINE_ONLY("--tokens"); break;
		case 'n': rc = cli_parse_long(cmd, "-n", optarg, 0, 1 << 20, &o->n_predict); break;
		case O_TEMP:
			rc = cli_parse_double(cmd, "--temp", optarg, 0, 100, &o->temp);
			o->has_temp = true;
			break;
		case O_TOPK:
			rc = cli_parse_long(cmd, "--top-k", optarg, 0, 1 << 24, &o->top_k);
			o->has_top_k = true;
			break;
		case O_TOPP:
			rc = cli_parse_double(cmd, "--top-p", optarg, 0, 1, &o->top_p);
			o->has_top_p = true;
			break;
		case O_MINP:
			rc = cli_parse_double(cmd, "--min-p", optarg, 0, 1, &o->min_p);
			ENGINE_ONLY("--min-p");
			break;
		case O_REP:
			rc = cli_parse_double(cmd, "--repeat-penalty", optarg, 0.01, 100, &o->repeat);
			o->has_repeat = true;
			break;
		case O_LASTN:
			rc = cli_parse_long(cmd, "--repeat-last-n", optarg, 0, 1 << 20, &o->last_n);
			ENGINE_ONLY("--repeat-last-n");
			break;
		case O_FREQ:
			rc = cli_parse_double(cmd, "--frequency-penalty", optarg, -100, 100, &o->freq);
			ENGINE_ONLY("--frequency-penalty");
			break;
		case O_PRES:
			rc = cli_parse_double(cmd, "--presence-penalty", optarg, -100, 100,
					      &o->presence);
			ENGINE_ONLY("--presence-penalty");
			break;
		case O_SEED:
			rc = cli_parse_long(cmd, "--seed", optarg, 0, INT64_MAX, &seed);
			o->seed = (unsigned long long)seed;
			o->has_seed = true;
			break;
		case O_STOP:
			if (o->n_stops == ENGINE_STOP_MAX_STRINGS)
				return cli_usage_error(cmd, "at most %d --stop strings",
						       ENGINE_STOP_MAX_STRINGS);
			o->stops[o->n_stops++] = optarg;
			break;
		case 't':
			rc = cli_parse_long(cmd, "--threads", optarg, 0, ENGINE_MAX_THREADS, &o->threads);
			o->has_threads = true;
			break;
		case O_CTX: rc = cli_parse_long(cmd, "--ctx", optarg, 1, 1 << 20, &o->ctx); break;
		case O_ADAPTER:
			rc = cli_adapters_add(cmd, &o->adapters, optarg);
			ENGINE_ONLY("--adapter");
			break;
		case O_ADAPTER_DIR: o->adapters.dir = optarg; ENGINE_ONLY("--adapter-dir"); break;
		case O_SCHEMA: o->schema_path = optarg; break;
		case O_GRAMMAR: o->grammar_path = optarg; break;
		case O_BACKEND: o->backend = optarg; break;
		case O_BASE_URL: o->base_url = optarg; break;
		case O_CONFIG: o->config_path = optarg; break;
		case O_SET: rc = cli_llm_sets_add(cmd, &o->sets, NULL, optarg); break;
		case 'j': o->json = true; break;
		case 'h': puts(usage); return -1;
		default: return cli_usage_error(cmd, "unknown option");
		}
		if (rc)
			return rc;
	}
#undef ENGINE_ONLY
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (!o->model)
		return cli_usage_error(cmd, "--model is required");
	if (!!o->prompt + !!o->chat + !!o->tokens != 1)
		return cli_usage_error(cmd, "give exactly one of -p, --chat, --tokens");
	bool remote = strcmp(o->backend, "embedded") != 0;
	if (remote && strcmp(o->backend, "ollama") && strcmp(o->backend, "openai"))
		return cli_usage_error(cmd, "--backend must be embedded, ollama or openai, not '%s'",
				       o->backend);
	if (remote && !o->base_url)
		return cli_usage_error(cmd, "--backend %s needs --base-url URL", o->backend);
	if (!remote && o->base_url)
		return cli_usage_error(cmd, "--base-url is for --backend ollama|openai");
	if (o->schema_path && o->grammar_path)
		return cli_usage_error(cmd, "--json-schema and --grammar are exclusive");
	bool via_llm = remote || o->schema_path || o->grammar_path;
	if (!via_llm && (o->sets.n_sets || o->config_path))
		return cli_usage_error(cmd, "--set/--config only apply with --json-schema, "
				       "--grammar or a remote --backend");
	if (via_llm && o->engine_only)
		return cli_usage_error(cmd, "%s is not available with --json-schema, --grammar "
				       "or a remote --backend", o->engine_only);
	if (via_llm && o->n_predict < 1)
		return cli_usage_error(cmd, "-n must be at least 1 here");
	if (via_llm && o->n_stops > LLM_MAX_STOP)
		return cli_usage_error(cmd, "at most %d --stop strings here", LLM_MAX_STOP);
	return 0;
}

/* The prompt's token ids (malloc'd into *ids). */
static int make_prompt(const struct gen_opts *o, const struct engine_model *m,
		       const struct tk_tokenizer *tok, int32_t **ids, int32_t *n)
{
	if (o->tokens)
		return cli_parse_tokens("generate", o->tokens, ids, n);
	if (!tok)
		return cli_fail("generate", "-p and --chat need the model's tokenizer");
	struct tk_buf text = TK_BUF_INIT(TK_TOK_MAX_INPUT_BYTES);
	struct tk_tok_encode_opts eo = { .bos = TK_TOK_BOS_DEFAULT };
	const char *src = o->prompt;
	size_t len = o->prompt ? strlen(o->prompt) : 0;
	if (o->chat) {
		const char *tmpl = NULL;
		if (tk_gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl, NULL))
			tmpl = NULL;
		struct tk_chat_msg msg = { .role = "user", .content = o->chat };
		if (tk_chat_apply(tmpl, TK_CHAT_CHATML, &msg, 1, true, &text, NULL)) {
			tk_buf_free(&text);
			return cli_fail("generate", "cannot render the chat template");
		}
		src = tk_buf_str(&text);
		len = text.len;
		eo.parse_special = true; /* the template's turn markers */
	}
	size_t n_ids = 0;
	int rc = tk_tokenizer_encode(tok, src, len, &eo, ids, &n_ids);
	tk_buf_free(&text);
	if (rc)
		return cli_fail("generate", "cannot tokenize the prompt");
	if (n_ids == 0 || n_ids > INT32_MAX) {
		free(*ids);
		return cli_usage_error("generate", "the prompt has no tokens");
	}
	*n = (int32_t)n_ids;
	return 0;
}

/* Streaming: each piece of final text goes to stdout at once. */
static int print_piece(void *ud, const char *text, size_t len)
{
	(void)ud;
	fwrite(text, 1, len, stdout);
	return fflush(stdout) ? -1 : 0;
}

/* --json for the LLM-interface path: the engine path's keys, filled with
 * what llm.h reports (no token ids; timings split at the first token). */
static int print_llm_json(const char *backend, const struct llm_result *r)
{
	const struct llm_timings *t = &r->timings;
	double prompt_ms = t->ttft_ms >= 0 ? t->ttft_ms - t->queue_ms : 0;
	double decode_ms = t->ttft_ms >= 0 ? t->total_ms - t->ttft_ms : 0;
	if (prompt_ms < 0)
		prompt_ms = 0;
	if (decode_ms < 0)
		decode_ms = 0;
	int64_t pt = r->usage.prompt_tokens, ct = r->usage.completion_tokens;
	struct tk_buf js = TK_BUF_INIT((size_t)ENGINE_GEN_TEXT_MAX * 2 + r->text_len * 6);
	int rc = tk_buf_puts(&js, "{\"tokens\": [], \"text\": ");
	if (!rc)
		rc = tk_json_quote(&js, r->text, r->text_len);
	if (!rc)
		rc = tk_buf_printf(
			&js,
			", \"finish_reason\": \"%s\", \"usage\": {\"prompt_tokens\": %lld, "
			"\"completion_tokens\": %lld}, \"timings\": {\"prompt_ms\": %.3f, "
			"\"decode_ms\": %.3f, \"prompt_tokens_per_s\": %.3f, "
			"\"decode_tokens_per_s\": %.3f, \"queue_ms\": %.3f, \"ttft_ms\": %.3f, "
			"\"total_ms\": %.3f}, \"backend\": ",
			llm_finish_name(r->finish), (long long)pt, (long long)ct, prompt_ms, decode_ms,
			pt > 0 && prompt_ms > 0 ? (double)pt / (prompt_ms / 1e3) : 0.0,
			ct > 0 && decode_ms > 0 ? (double)ct / (decode_ms / 1e3) : 0.0, t->queue_ms,
			t->ttft_ms, t->total_ms);
	if (!rc)
		rc = tk_json_quote(&js, backend, strlen(backend));
	if (!rc)
		rc = tk_buf_puts(&js, ", \"model\": ");
	if (!rc)
		rc = tk_json_quote(&js, r->model ? r->model : "", r->model ? strlen(r->model) : 0);
	if (!rc)
		rc = tk_buf_puts(&js, "}");
	if (!rc)
		puts(tk_buf_str(&js));
	tk_buf_free(&js);
	return rc ? cli_fail("generate", "JSON output") : CLI_OK;
}

/* The LLM-interface path: --json-schema/--grammar on the embedded engine, or
 * a remote --backend. The backend is built from configuration only; the
 * flags become llm.* --set settings after the user's own --set flags. */
static int generate_via_llm(struct gen_opts *o)
{
	const char *cmd = "generate";
	bool remote = strcmp(o->backend, "embedded") != 0;
	char *schema = NULL, *grammar = NULL, num[32];
	struct tk_config *cfg = NULL;
	struct llm_backend *be = NULL;
	struct llm_result r;
	bool have_result = false;
	int ret = cli_llm_read_constraint(cmd, o->schema_path, o->grammar_path, &schema, &grammar);
	if (ret)
		goto out;
	struct cli_llm_sets *ss = &o->sets;
	if ((ret = cli_llm_sets_add(cmd, ss, "llm.backend", o->backend)) ||
	    (ret = cli_llm_sets_add(cmd, ss, "llm.model", o->model)) ||
	    (remote && (ret = cli_llm_sets_add(cmd, ss, "llm.url", o->base_url))))
		goto out;
	if (!remote && o->ctx > 0) {
		snprintf(num, sizeof num, "%ld", o->ctx);
		if ((ret = cli_llm_sets_add(cmd, ss, "llm.embedded_ctx", num)))
			goto out;
	}
	if (!remote && o->has_threads) {
		snprintf(num, sizeof num, "%ld", o->threads);
		if ((ret = cli_llm_sets_add(cmd, ss, "llm.embedded_threads", num)))
			goto out;
	}
	if ((ret = cli_config_load(cmd, o->config_path, ss->sets, ss->n_sets, &cfg)))
		goto out;
	if (!(be = llm_backend_from_config(cfg))) {
		ret = cli_fail(cmd, "cannot set up the %s backend", o->backend);
		goto out;
	}
	struct llm_message msg = { "user", o->prompt ? o->prompt : o->chat };
	struct llm_params p;
	llm_params_default(&p);
	p.max_tokens = (int32_t)o->n_predict;
	/* the embedded engine keeps generate's own defaults; a remote server
	 * gets only what was asked for */
	if (!remote || o->has_temp)
		p.sampling.temperature = o->temp;
	if ((!remote || o->has_top_p) && o->top_p > 0)
		p.sampling.top_p = o->top_p;
	if (!remote || o->has_top_k)
		p.sampling.top_k = (int32_t)o->top_k;
	if (!remote || o->has_repeat)
		p.sampling.repeat_penalty = o->repeat;
	if (!remote || o->has_seed) {
		p.has_seed = true;
		p.seed = o->seed;
	}
	p.stop = o->stops;
	p.n_stop = (size_t)o->n_stops;
	p.json_schema = schema;
	p.grammar = grammar;
	int rc = llm_chat(be, &msg, 1, &p, o->json ? NULL : print_piece, NULL, NULL, &r);
	if (rc) {
		if (!o->json)
			fflush(stdout);
		ret = cli_fail(cmd, "generation failed (%s)", tk_err_name(rc));
		goto out;
	}
	have_result = true;
	if (o->json) {
		ret = print_llm_json(o->backend, &r);
	} else {
		putchar('\n');
		if (r.finish == LLM_FINISH_CONTEXT)
			fprintf(stderr, "tanuki: generate: stopped: the context is full\n");
		ret = CLI_OK;
	}
	if (fflush(stdout) && ret == CLI_OK)
		ret = CLI_FAIL;
out:
	if (have_result)
		llm_result_free(&r);
	llm_backend_free(be);
	tk_config_free(cfg);
	free(schema);
	free(grammar);
	return ret;
}

int cli_cmd_generate(int argc, char **argv)
{
	struct gen_opts o;
	int rc = parse_opts(argc, argv, &o);
	if (rc) {
		cli_adapters_free(&o.adapters);
		cli_llm_sets_free(&o.sets);
		return rc < 0 ? CLI_OK : rc;
	}
	if (strcmp(o.backend, "embedded") || o.schema_path || o.grammar_path) {
		rc = generate_via_llm(&o);
		cli_adapters_free(&o.adapters);
		cli_llm_sets_free(&o.sets);
		return rc;
	}

	int ret = CLI_FAIL;
	struct engine_model *m = NULL;
	struct tk_tokenizer *tok = NULL;
	struct engine_ctx *ctx = NULL;
	int32_t *prompt = NULL, n_prompt = 0, eos = -1;
	struct engine_gen_result res = { 0 };
	struct tk_buf js = TK_BUF_INIT(ENGINE_GEN_TEXT_MAX * 2);

	m = engine_model_load(o.model);
	if (!m) {
		cli_fail("generate", "cannot load the model");
		goto out;
	}
	tok = tk_tokenizer_from_gguf(m->gguf);
	if (!tok && !o.tokens) {
		cli_fail("generate", "the model's tokenizer");
		goto out;
	}
	if ((rc = make_prompt(&o, m, tok, &prompt, &n_prompt))) {
		ret = rc;
		goto out;
	}
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = (int32_t)o.ctx;
	cp.n_threads = (int32_t)o.threads;
	ctx = engine_ctx_new(m, &cp);
	if (!ctx) {
		cli_fail("generate", "cannot make a context");
		goto out;
	}
	if ((rc = cli_adapters_apply("generate", &o.adapters, m, ctx))) {
		ret = rc;
		goto out;
	}
	struct engine_gen_params gp = {
		.sampling = { .temp = (float)o.temp, .top_k = (int32_t)o.top_k,
			      .top_p = (float)o.top_p, .min_p = (float)o.min_p,
			      .repeat_penalty = (float)o.repeat, .freq_penalty = (float)o.freq,
			      .presence_penalty = (float)o.presence,
			      .penalty_last_n = (int32_t)o.last_n, .seed = o.seed },
		.max_tokens = (int32_t)o.n_predict,
		.stop = o.stops,
		.n_stop = (size_t)o.n_stops,
	};
	/* without a tokenizer, the file's EOS id still ends the generation */
	if (!tok && !tk_gguf_get_i32(m->gguf, "tokenizer.ggml.eos_token_id", &eos) && eos >= 0) {
		gp.stop_ids = &eos;
		gp.n_stop_ids = 1;
	}
	if (engine_generate(ctx, tok, prompt, n_prompt, &gp, o.json ? NULL : print_piece, NULL,
			    &res)) {
		cli_fail("generate", "generation failed");
		goto out;
	}
	if (!o.json) {
		putchar('\n');
		if (res.finish == ENGINE_FINISH_CONTEXT)
			fprintf(stderr, "tanuki: generate: stopped: the context (%d) is full\n",
				engine_ctx_n_ctx(ctx));
	} else {
		rc = tk_buf_puts(&js, "{\"tokens\": [");
		for (int32_t i = 0; !rc && i < res.n_tokens; i++)
			rc = tk_buf_printf(&js, "%s%d", i ? ", " : "", res.tokens[i]);
		if (!rc)
			rc = tk_buf_puts(&js, "], \"text\": ");
		if (!rc)
			rc = tk_json_quote(&js, res.text, res.text_len);
		if (!rc)
			rc = tk_buf_printf(
				&js,
				", \"finish_reason\": \"%s\", \"usage\": {\"prompt_tokens\": %d, "
				"\"completion_tokens\": %d}, \"timings\": {\"prompt_ms\": %.3f, "
				"\"decode_ms\": %.3f, \"prompt_tokens_per_s\": %.3f, "
				"\"decode_tokens_per_s\": %.3f}}",
				engine_finish_name(res.finish), res.prompt_tokens, res.n_tokens,
				res.prompt_ms, res.decode_ms,
				res.prompt_ms > 0 ? res.prompt_tokens / (res.prompt_ms / 1e3) : 0.0,
				res.decode_ms > 0 ? res.n_decoded / (res.decode_ms / 1e3) : 0.0);
		if (rc) {
			cli_fail("generate", "JSON output");
			goto out;
		}
		puts(tk_buf_str(&js));
	}
	ret = fflush(stdout) ? CLI_FAIL : CLI_OK;
out:
	tk_buf_free(&js);
	engine_gen_result_free(&res);
	free(prompt);
	engine_ctx_free(ctx);
	cli_adapters_free(&o.adapters);
	tk_tokenizer_free(tok);
	engine_model_free(m);
	return ret;
}
