/* cmd_generate.c — `tanuki generate`: prompt in, sampled tokens out,
 * streamed as text while they come (or one JSON object at the end). */
#include "cli/cli.h"
#include "cli/cli_adapter.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "engine/chat.h"
#include "engine/context.h"
#include "engine/generate.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

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
	"                       [--adapter FILE_OR_NAME[:SCALE]]... [--adapter-dir DIR]\n\n"
	"Generates up to N tokens (default 128) after the prompt and streams their\n"
	"text to stdout as they come. -p takes plain text (BOS added when the model\n"
	"asks for it; special-token text stays text); --chat wraps TEXT as one user\n"
	"turn in the model's chat template (tokenizer.chat_template; chatml when\n"
	"absent or unrecognised) and opens the assistant's reply; --tokens takes\n"
	"ids as they are. Generation stops at an end-of-generation token (EOS,\n"
	"EOT), at a --stop string (cut before it), after N tokens, or when the\n"
	"context (--ctx, default min(training context, 4096)) is full.\n\n"
	"Sampling: --temp 0 is greedy. Defaults: temp 0.8, top-k 40, top-p 0.95,\n"
	"min-p 0.05, repeat-penalty 1.0 (off) over the last 64 tokens, seed 0x5EED.\n"
	"--json prints {\"tokens\", \"text\", \"finish_reason\", \"usage\", \"timings\"}\n"
	"at the end instead of streaming.\n"
	"--adapter applies a LoRA adapter (llama.cpp GGUF format) at SCALE (default\n"
	"1.0) without changing the model; repeat it to stack adapters; a NAME means\n"
	"DIR/NAME.gguf with --adapter-dir DIR (docs/lora.md).";

struct gen_opts {
	const char *model, *prompt, *chat, *tokens;
	long n_predict, threads, ctx, top_k, last_n;
	double temp, top_p, min_p, repeat, freq, presence;
	unsigned long long seed;
	bool json;
	const char *stops[ENGINE_STOP_MAX_STRINGS];
	int n_stops;
	struct cli_adapters adapters;
};

static int parse_opts(int argc, char **argv, struct gen_opts *o)
{
	struct engine_sampler_params sp;
	engine_sampler_params_default(&sp);
	*o = (struct gen_opts){ .n_predict = 128, .threads = 1, .ctx = 0, .top_k = sp.top_k,
				.last_n = sp.penalty_last_n, .temp = sp.temp, .top_p = sp.top_p,
				.min_p = sp.min_p, .repeat = sp.repeat_penalty,
				.freq = sp.freq_penalty, .presence = sp.presence_penalty,
				.seed = sp.seed };
	enum { O_TOPK = 256, O_TOPP, O_MINP, O_REP, O_LASTN, O_FREQ, O_PRES, O_SEED, O_STOP,
	       O_CTX, O_CHAT, O_TOKENS, O_TEMP, O_ADAPTER, O_ADAPTER_DIR };
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
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *cmd = "generate";
	optind = 1;
	int c;
	long seed = 0;
	while ((c = getopt_long(argc, argv, "+m:p:n:t:jh", opts, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'p': o->prompt = optarg; break;
		case O_CHAT: o->chat = optarg; break;
		case O_TOKENS: o->tokens = optarg; break;
		case 'n': rc = cli_parse_long(cmd, "-n", optarg, 0, 1 << 20, &o->n_predict); break;
		case O_TEMP: rc = cli_parse_double(cmd, "--temp", optarg, 0, 100, &o->temp); break;
		case O_TOPK: rc = cli_parse_long(cmd, "--top-k", optarg, 0, 1 << 24, &o->top_k); break;
		case O_TOPP: rc = cli_parse_double(cmd, "--top-p", optarg, 0, 1, &o->top_p); break;
		case O_MINP: rc = cli_parse_double(cmd, "--min-p", optarg, 0, 1, &o->min_p); break;
		case O_REP:
			rc = cli_parse_double(cmd, "--repeat-penalty", optarg, 0.01, 100, &o->repeat);
			break;
		case O_LASTN:
			rc = cli_parse_long(cmd, "--repeat-last-n", optarg, 0, 1 << 20, &o->last_n);
			break;
		case O_FREQ:
			rc = cli_parse_double(cmd, "--frequency-penalty", optarg, -100, 100, &o->freq);
			break;
		case O_PRES:
			rc = cli_parse_double(cmd, "--presence-penalty", optarg, -100, 100,
					      &o->presence);
			break;
		case O_SEED:
			rc = cli_parse_long(cmd, "--seed", optarg, 0, INT64_MAX, &seed);
			o->seed = (unsigned long long)seed;
			break;
		case O_STOP:
			if (o->n_stops == ENGINE_STOP_MAX_STRINGS)
				return cli_usage_error(cmd, "at most %d --stop strings",
						       ENGINE_STOP_MAX_STRINGS);
			o->stops[o->n_stops++] = optarg;
			break;
		case 't':
			rc = cli_parse_long(cmd, "--threads", optarg, 1, ENGINE_MAX_THREADS, &o->threads);
			break;
		case O_CTX: rc = cli_parse_long(cmd, "--ctx", optarg, 1, 1 << 20, &o->ctx); break;
		case O_ADAPTER: rc = cli_adapters_add(cmd, &o->adapters, optarg); break;
		case O_ADAPTER_DIR: o->adapters.dir = optarg; break;
		case 'j': o->json = true; break;
		case 'h': puts(usage); return -1;
		default: return cli_usage_error(cmd, "unknown option");
		}
		if (rc)
			return rc;
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (!o->model)
		return cli_usage_error(cmd, "--model is required");
	if (!!o->prompt + !!o->chat + !!o->tokens != 1)
		return cli_usage_error(cmd, "give exactly one of -p, --chat, --tokens");
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

int cli_cmd_generate(int argc, char **argv)
{
	struct gen_opts o;
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc < 0 ? CLI_OK : rc;

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
