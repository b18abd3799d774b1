/* cmd_logits.c — `tanuki logits`: the logits of every position of a token
 * list, the whole list evaluated as one batch. Also owns cli_parse_tokens(),
 * the "--tokens" parser the engine commands share. */
#include "cli/cli.h"
#include "cli/cli_adapter.h"

#include "core/err.h"
#include "engine/context.h"
#include "engine/model.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: tanuki logits --model M.gguf --tokens \"1 300 273\" [--json]\n"
	"                     [--threads T] [--ctx N] [--adapter FILE_OR_NAME[:SCALE]]...\n"
	"                     [--adapter-dir DIR]\n\n"
	"Evaluates the token ids (space or comma separated) as one batch and\n"
	"prints the logits of every position: one line per position with n_vocab\n"
	"numbers, or with --json {\"n_vocab\": N, \"logits\": [[...], ...]}. Numbers\n"
	"are printed with %.9g (they read back as the same float); a NaN or\n"
	"infinite logit prints as null in JSON. The context is the number of\n"
	"tokens unless --ctx says more; more tokens than the model's training\n"
	"context (or --ctx) is an error. --adapter applies a LoRA adapter at SCALE\n"
	"(default 1.0); repeat it to stack adapters; a NAME means DIR/NAME.gguf\n"
	"with --adapter-dir DIR (docs/lora.md).";

int cli_parse_tokens(const char *cmd, const char *s, int32_t **out, int32_t *n_out)
{
	size_t cap = 16, n = 0;
	int32_t *v = malloc(cap * sizeof *v);
	if (!v)
		return cli_fail(cmd, "out of memory");
	const char *p = s;
	for (;;) {
		while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		char *end;
		errno = 0;
		long long id = strtoll(p, &end, 10);
		if (end == p || errno || id < 0 || id > INT32_MAX ||
		    (*end && *end != ' ' && *end != ',' && *end != '\t' && *end != '\n')) {
			free(v);
			return cli_usage_error(cmd, "--tokens: expected non-negative token ids "
					       "separated by spaces or commas, at '%.20s'", p);
		}
		if (n == CLI_MAX_TOKENS) {
			free(v);
			return cli_usage_error(cmd, "--tokens: more than %d ids", CLI_MAX_TOKENS);
		}
		if (n == cap) {
			int32_t *nv = realloc(v, 2 * cap * sizeof *v);
			if (!nv) {
				free(v);
				return cli_fail(cmd, "out of memory");
			}
			v = nv;
			cap *= 2;
		}
		v[n++] = (int32_t)id;
		p = end;
	}
	if (n == 0) {
		free(v);
		return cli_usage_error(cmd, "--tokens: no token ids given");
	}
	*out = v;
	*n_out = (int32_t)n;
	return 0;
}

static void print_float(float f, bool json)
{
	if (json && !isfinite(f))
		fputs("null", stdout);
	else
		printf("%.9g", (double)f);
}

int cli_cmd_logits(int argc, char **argv)
{
	const char *model_path = NULL, *tokens_arg = NULL;
	bool json = false;
	long n_threads = 1, n_ctx = 0;
	struct cli_adapters adapters = { 0 };
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "tokens", required_argument, NULL, 't' },
		{ "threads", required_argument, NULL, 'T' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "adapter", required_argument, NULL, 'a' },
		{ "adapter-dir", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+m:t:T:c:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model_path = optarg; break;
		case 't': tokens_arg = optarg; break;
		case 'T':
			if (cli_parse_long("logits", "--threads", optarg, 1, ENGINE_MAX_THREADS,
					   &n_threads))
				return CLI_USAGE;
			break;
		case 'c':
			if (cli_parse_long("logits", "--ctx", optarg, 1, 1 << 20, &n_ctx))
				return CLI_USAGE;
			break;
		case 'j': json = true; break;
		case 'a':
			if (cli_adapters_add("logits", &adapters, optarg))
				return CLI_USAGE;
			break;
		case 'D': adapters.dir = optarg; break;
		case 'h': puts(usage); return CLI_OK;
		default: return cli_usage_error("logits", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("logits", "unexpected argument '%s'", argv[optind]);
	if (!model_path || !tokens_arg)
		return cli_usage_error("logits", "--model and --tokens are required");

	int32_t *toks = NULL, n_tok = 0;
	int rc = cli_parse_tokens("logits", tokens_arg, &toks, &n_tok);
	if (rc)
		return rc;
	int ret = CLI_FAIL;
	struct engine_ctx *ctx = NULL;
	float *logits = NULL;
	struct engine_model *m = engine_model_load(model_path);
	if (!m) {
		cli_fail("logits", "cannot load the model");
		goto out;
	}
	int32_t limit = n_ctx > 0 ? (int32_t)n_ctx : m->hp.n_ctx_train;
	if (n_tok > limit) {
		tk_errf(TK_ELIMIT, "%d tokens exceed the context size %d", n_tok, limit);
		cli_fail("logits", "too many tokens");
		goto out;
	}
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = n_ctx > 0 ? (int32_t)n_ctx : n_tok;
	cp.n_batch = n_tok; /* the whole list as one batch */
	cp.n_threads = (int32_t)n_threads;
	ctx = engine_ctx_new(m, &cp);
	const size_t n_vocab = (size_t)m->hp.n_vocab;
	logits = ctx ? malloc((size_t)n_tok * n_vocab * sizeof *logits) : NULL;
	if (!ctx || !logits) {
		cli_fail("logits", "cannot make a context");
		goto out;
	}
	if ((rc = cli_adapters_apply("logits", &adapters, m, ctx))) {
		ret = rc;
		goto out;
	}
	if (engine_ctx_eval(ctx, toks, n_tok, logits)) {
		cli_fail("logits", "evaluation failed");
		goto out;
	}
	if (json)
		printf("{\"n_vocab\": %zu, \"logits\": [", n_vocab);
	for (int32_t t = 0; t < n_tok; t++) {
		const float *row = logits + (size_t)t * n_vocab;
		if (json)
			fputs(t ? ", [" : "[", stdout);
		for (size_t i = 0; i < n_vocab; i++) {
			if (i)
				fputs(json ? ", " : " ", stdout);
			print_float(row[i], json);
		}
		fputs(json ? "]" : "\n", stdout);
	}
	if (json)
		puts("]}");
	ret = fflush(stdout) ? CLI_FAIL : CLI_OK;
out:
	free(logits);
	engine_ctx_free(ctx);
	cli_adapters_free(&adapters);
	engine_model_free(m);
	free(toks);
	return ret;
}
