/* cmd_perplexity.c — `tanuki perplexity`: perplexity of a model on a text
 * file, computed the way llama.cpp's llama-perplexity does. */
#include "cli/cli.h"

#include "core/buf.h"
#include "core/err.h"
#include "engine/context.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: tanuki perplexity --model M.gguf --file F [--ctx N] [--chunks K]\n"
	"                         [--threads T]\n\n"
	"Tokenizes F (BOS first when the model asks for it), cuts the tokens into\n"
	"non-overlapping chunks of N (default 512, at most the training context)\n"
	"and evaluates each chunk from an empty cache, its first token replaced by\n"
	"BOS. Only the second half of each chunk is scored: positions N/2 .. N-2\n"
	"predict the token after them, so every scored token has at least N/2\n"
	"tokens of context. Prints the running estimate after each chunk as\n"
	"\"[i]ppl,\" and then \"Final estimate: PPL = x +/- y\" (y from the spread of\n"
	"the per-token negative log-likelihoods), as llama-perplexity does. The\n"
	"file needs at least 2*N tokens. --threads defaults to the number of\n"
	"physical cores (0 means the same).";

#define PPL_FILE_MAX TK_TOK_MAX_INPUT_BYTES /* bytes of text read: what one encode takes */

/* -log p(target) under logits[n_vocab] (softmax in double). */
static double nll_of(const float *logits, int32_t n_vocab, int32_t target)
{
	float max = logits[0];
	for (int32_t i = 1; i < n_vocab; i++)
		if (logits[i] > max)
			max = logits[i];
	double sum = 0.0;
	for (int32_t i = 0; i < n_vocab; i++)
		sum += exp((double)logits[i] - (double)max);
	return -((double)logits[target] - (double)max - log(sum));
}

int cli_cmd_perplexity(int argc, char **argv)
{
	const char *model_path = NULL, *file = NULL;
	long n_ctx = 0, n_threads = 0, max_chunks = 0;
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "file", required_argument, NULL, 'f' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "chunks", required_argument, NULL, 'k' },
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+m:f:c:k:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model_path = optarg; break;
		case 'f': file = optarg; break;
		case 'c':
			if (cli_parse_long("perplexity", "--ctx", optarg, 4, 1 << 20, &n_ctx))
				return CLI_USAGE;
			break;
		case 'k':
			if (cli_parse_long("perplexity", "--chunks", optarg, 1, 1 << 20, &max_chunks))
				return CLI_USAGE;
			break;
		case 't':
			if (cli_parse_long("perplexity", "--threads", optarg, 0, ENGINE_MAX_THREADS,
					   &n_threads))
				return CLI_USAGE;
			break;
		case 'h': puts(usage); return CLI_OK;
		default: return cli_usage_error("perplexity", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("perplexity", "unexpected argument '%s'", argv[optind]);
	if (!model_path || !file)
		return cli_usage_error("perplexity", "--model and --file are required");

	int ret = CLI_FAIL;
	struct tk_buf text = TK_BUF_INIT(PPL_FILE_MAX);
	struct engine_model *m = NULL;
	struct tk_tokenizer *tok = NULL;
	struct engine_ctx *ctx = NULL;
	int32_t *ids = NULL;
	float *logits = NULL;
	size_t n_ids = 0;

	if (tk_buf_append_file(&text, file)) {
		cli_fail("perplexity", "cannot read the text");
		goto out;
	}
	m = engine_model_load(model_path);
	if (!m) {
		cli_fail("perplexity", "cannot load the model");
		goto out;
	}
	tok = tk_tokenizer_from_gguf(m->gguf);
	if (!tok) {
		cli_fail("perplexity", "the model's tokenizer");
		goto out;
	}
	if (tk_tokenizer_encode(tok, text.data ? text.data : "", text.len, NULL, &ids, &n_ids)) {
		cli_fail("perplexity", "cannot tokenize %s", file);
		goto out;
	}
	const int32_t N = n_ctx ? (int32_t)n_ctx
				: (m->hp.n_ctx_train < 512 ? m->hp.n_ctx_train : 512);
	if (n_ids < 2 * (size_t)N) {
		tk_errf(TK_ELIMIT, "%s has %zu tokens; a context of %d needs at least %d", file,
			n_ids, N, 2 * N);
		cli_fail("perplexity", "text too short");
		goto out;
	}
	size_t n_chunks = n_ids / (size_t)N;
	if (max_chunks && (size_t)max_chunks < n_chunks)
		n_chunks = (size_t)max_chunks;

	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = N;
	cp.n_threads = (int32_t)n_threads;
	ctx = engine_ctx_new(m, &cp);
	const int32_t V = m->hp.n_vocab;
	logits = ctx ? malloc((size_t)N * (size_t)V * sizeof *logits) : NULL;
	if (!ctx || !logits) {
		cli_fail("perplexity", "cannot make a context");
		goto out;
	}
	fprintf(stderr, "perplexity: %zu tokens, %zu chunks of %d, scoring positions %d..%d "
		"of each\n", n_ids, n_chunks, N, N / 2, N - 2);

	const bool add_bos = tk_tokenizer_add_bos(tok) && tk_tokenizer_bos(tok) >= 0;
	const int32_t first = N / 2;
	double nll = 0.0, nll2 = 0.0;
	size_t count = 0;
	for (size_t ch = 0; ch < n_chunks; ch++) {
		int32_t *chunk = ids + ch * (size_t)N;
		const int32_t saved = chunk[0];
		if (add_bos)
			chunk[0] = tk_tokenizer_bos(tok);
		engine_ctx_rewind(ctx, 0);
		int rc = engine_ctx_eval(ctx, chunk, N, logits);
		chunk[0] = saved;
		if (rc) {
			cli_fail("perplexity", "chunk %zu", ch + 1);
			goto out;
		}
		/* position j predicts token j+1 of the chunk */
		for (int32_t j = first; j < N - 1; j++) {
			double v = nll_of(logits + (size_t)j * (size_t)V, V, chunk[j + 1]);
			nll += v;
			nll2 += v * v;
			count++;
		}
		printf("[%zu]%.4f,", ch + 1, exp(nll / (double)count));
		fflush(stdout);
	}
	double mean = nll / (double)count;
	double var = nll2 / (double)count - mean * mean;
	double ppl = exp(mean);
	double err = var > 0 && count > 1 ? sqrt(var / (double)(count - 1)) * ppl : 0.0;
	printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", ppl, err);
	ret = fflush(stdout) ? CLI_FAIL : CLI_OK;
out:
	free(logits);
	free(ids);
	engine_ctx_free(ctx);
	tk_tokenizer_free(tok);
	engine_model_free(m);
	tk_buf_free(&text);
	return ret;
}
