/*
 * bench_engine.c — forward-pass speed of the engine (context.h): prompt
 * processing (one batch of P tokens), single-sequence decode, and
 * aggregate decode of S sequences batched together (engine_ctx_decode),
 * and the cost of one empty dispatch of the worker pool (pool.h).
 *
 *   bench_engine MODEL.gguf [-t THREADS] [-p PROMPT] [-n GEN] [-s 1,2,4]
 *   bench_engine --pool [-t THREADS]
 *
 * THREADS 0 (default) = physical cores. Token ids are fixed (spread over
 * the vocabulary), not sampled, so only the forward pass is timed. Prints
 * numbers only; never fails on time.
 */
#include "core/err.h"
#include "engine/context.h"
#include "engine/model.h"
#include "engine/pool.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct engine_ctx *make_ctx(const struct engine_model *m, int32_t n_ctx, int32_t n_batch,
				   int32_t threads, int32_t n_seq)
{
	struct engine_ctx_params p;
	engine_ctx_params_default(&p);
	p.n_ctx = n_ctx;
	p.n_batch = n_batch;
	p.n_threads = threads;
	p.n_seq_max = n_seq;
	struct engine_ctx *c = engine_ctx_new(m, &p);
	if (!c)
		fprintf(stderr, "bench_engine: context: %s\n", tk_err_detail());
	return c;
}

static void empty_task(void *arg, int ith, int nth)
{
	(void)arg;
	(void)ith;
	(void)nth;
}

/* back-to-back empty dispatches (workers spinning), then dispatches 1 ms
 * apart (workers asleep: a futex wake each) */
static int bench_pool(int threads)
{
	struct engine_pool *p = engine_pool_new(threads ? threads : engine_default_threads());
	if (!p) {
		fprintf(stderr, "bench_engine: %s\n", tk_err_detail());
		return 1;
	}
	enum { N_HOT = 200000, N_COLD = 200 };
	double t0 = bench_now_s();
	for (int i = 0; i < N_HOT; i++)
		engine_pool_run(p, empty_task, NULL);
	double hot = (bench_now_s() - t0) / N_HOT;
	double cold = 0.0;
	for (int i = 0; i < N_COLD; i++) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
		t0 = bench_now_s();
		engine_pool_run(p, empty_task, NULL);
		cold += bench_now_s() - t0;
	}
	printf("pool threads=%d: empty dispatch %.2f us back to back, %.2f us after 1 ms idle\n",
	       engine_pool_n_threads(p), hot * 1e6, cold / N_COLD * 1e6);
	engine_pool_free(p);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "--pool"))
		return bench_pool(argc >= 4 && !strcmp(argv[2], "-t") ? atoi(argv[3]) : 0);
	if (argc < 2) {
		fprintf(stderr, "usage: bench_engine MODEL.gguf [-t THREADS] [-p PROMPT] [-n GEN] "
			"[-s 1,2,4]\n");
		return 2;
	}
	const char *path = argv[1];
	int threads = 0, n_prompt = 64, n_gen = 16;
	char seqs[64] = "1,2,4";
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "-t"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-p"))
			n_prompt = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-n"))
			n_gen = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-s"))
			snprintf(seqs, sizeof seqs, "%s", argv[i + 1]);
	}
	if (n_prompt < 1 || n_gen < 1 || threads < 0) {
		fprintf(stderr, "bench_engine: bad -p/-n/-t\n");
		return 2;
	}
	struct engine_model *m = engine_model_load(path);
	if (!m) {
		fprintf(stderr, "bench_engine: %s\n", tk_err_detail());
		return 1;
	}
	const int32_t V = m->hp.n_vocab;
	int rc = 1;
	struct engine_ctx *c = NULL;
	int32_t *toks = malloc((size_t)(n_prompt + n_gen) * 64 * sizeof *toks);
	int32_t *sq = malloc((size_t)(n_prompt + n_gen) * 64 * sizeof *sq);
	float *logits = malloc((size_t)64 * (size_t)V * sizeof(float));
	if (!toks || !sq || !logits)
		goto out;
	for (int i = 0; i < (n_prompt + n_gen) * 64; i++)
		toks[i] = 1 + (int32_t)(((int64_t)i * 7919) % (V - 1));

	/* pp: the prompt as one batch; tg: then n_gen single tokens */
	c = make_ctx(m, n_prompt + n_gen, n_prompt, threads, 1);
	if (!c)
		goto out;
	double t0 = bench_now_s();
	if (engine_ctx_eval(c, toks, n_prompt, NULL))
		goto eval_err;
	double t1 = bench_now_s();
	for (int i = 0; i < n_gen; i++)
		if (engine_ctx_eval(c, &toks[n_prompt + i], 1, NULL))
			goto eval_err;
	double t2 = bench_now_s();
	printf("%s threads=%d pp%d %.2f tok/s (%.0f ms)  tg%d %.2f tok/s (%.0f ms)\n", path,
	       engine_ctx_n_threads(c), n_prompt, n_prompt / (t1 - t0), (t1 - t0) * 1e3, n_gen,
	       n_gen / (t2 - t1), (t2 - t1) * 1e3);
	fflush(stdout);
	engine_ctx_free(c);

	/* batched decode: S sequences with an 8-token prompt each (one mixed
	 * batch), then n_gen steps of S tokens (one per sequence) */
	for (char *s = seqs; *s;) {
		const int S = atoi(s);
		char *comma = strchr(s, ',');
		s = comma ? comma + 1 : s + strlen(s);
		if (S < 1 || S > 64)
			continue;
		enum { P = 8 };
		c = make_ctx(m, P + n_gen, S * P, threads, S);
		if (!c)
			goto out;
		for (int i = 0; i < S * P; i++)
			sq[i] = i % S;
		struct engine_batch b = { .n = S * P, .tokens = toks, .seq = sq };
		if (engine_ctx_decode(c, &b, logits))
			goto eval_err;
		for (int i = 0; i < S; i++)
			sq[i] = i;
		t0 = bench_now_s();
		for (int k = 0; k < n_gen; k++) {
			b = (struct engine_batch){ .n = S, .tokens = toks + S * P + k * S, .seq = sq };
			if (engine_ctx_decode(c, &b, logits))
				goto eval_err;
		}
		t1 = bench_now_s();
		printf("%s threads=%d batched decode %d seq x %d steps: %.2f tok/s aggregate "
		       "(%.2f steps/s)\n", path, engine_ctx_n_threads(c), S, n_gen,
		       S * n_gen / (t1 - t0), n_gen / (t1 - t0));
		fflush(stdout);
		engine_ctx_free(c);
	}
	c = NULL;
	rc = 0;
	goto out;
eval_err:
	fprintf(stderr, "bench_engine: eval: %s\n", tk_err_detail());
	engine_ctx_free(c);
out:
	free(toks);
	free(sq);
	free(logits);
	engine_model_free(m);
	return rc;
}
