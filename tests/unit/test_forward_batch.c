/*
 * test_forward_batch.c — multi-sequence batched decode (engine_ctx_decode)
 * against each sequence decoded alone, prompts of several sequences mixed in
 * one batch, wanted-logits selection, per-sequence rewind/clear and limits,
 * LoRA over a batch, and the blocked (online-softmax) attention against the
 * reference attention on a long prompt.
 */
#include "testutil.h"

#include "core/err.h"
#include "engine/context.h"
#include "engine/fp16.h"
#include "engine/lora.h"
#include "engine/model.h"
#include "engine/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX_MODEL(name) TK_FIXTURES "/models/" name ".gguf"

enum { MAX_SEQ = 4, N_STEPS = 6, MAX_PROMPT = 9 };

/* prompt of sequence s: lengths differ so the sequences sit at different
 * positions while they decode together */
static int32_t prompt_of(int s, int32_t V, int32_t *out)
{
	const int32_t len = 3 + 2 * s;
	for (int32_t i = 0; i < len; i++)
		out[i] = (int32_t)((i * 53 + s * 101 + 7) % V);
	return len;
}

/* the token fed at decode step k of sequence s (fixed, not sampled, so both
 * runs feed the same ids) */
static int32_t step_token(int s, int k, int32_t V)
{
	return (int32_t)((s * 31 + k * 17 + 5) % V);
}

/* Decodes n_seq sequences alone (one context each) and together (one
 * context, one batch per step), comparing every step's logits. */
static void batched_vs_alone(const char *path, int n_seq, int32_t n_threads,
			     const struct engine_lora_use *lora)
{
	struct engine_model *m = tk_test_engine_model(path);
	const int32_t V = m->hp.n_vocab;
	float *alone = malloc((size_t)MAX_SEQ * (N_STEPS + 1) * (size_t)V * sizeof(float));
	float *both = malloc((size_t)MAX_SEQ * (size_t)V * sizeof(float));
	assert_true(alone && both);
	int32_t prompt[MAX_SEQ][MAX_PROMPT], plen[MAX_SEQ];
	for (int s = 0; s < n_seq; s++)
		plen[s] = prompt_of(s, V, prompt[s]);

	/* alone: row (s, 0) after the prompt, (s, k + 1) after step k */
	for (int s = 0; s < n_seq; s++) {
		struct engine_ctx *c = tk_test_engine_ctx(m, 32, 8, 1, 1);
		if (lora)
			assert_int_equal(engine_ctx_set_adapters(c, lora, 1), 0);
		assert_int_equal(engine_ctx_eval(c, prompt[s], plen[s], NULL), 0);
		float *row = alone + ((size_t)s * (N_STEPS + 1)) * (size_t)V;
		memcpy(row, engine_ctx_logits(c), (size_t)V * sizeof(float));
		for (int k = 0; k < N_STEPS; k++) {
			int32_t tok = step_token(s, k, V);
			assert_int_equal(engine_ctx_eval(c, &tok, 1, NULL), 0);
			memcpy(row + (size_t)(k + 1) * V, engine_ctx_logits(c),
			       (size_t)V * sizeof(float));
		}
		engine_ctx_free(c);
	}

	/* together: every prompt in one mixed batch (tokens of the sequences
	 * interleaved), then one token per sequence per step */
	struct engine_ctx *c = tk_test_engine_ctx(m, 32, 16, n_threads, n_seq);
	if (lora)
		assert_int_equal(engine_ctx_set_adapters(c, lora, 1), 0);
	int32_t toks[MAX_SEQ * MAX_PROMPT], seqs[MAX_SEQ * MAX_PROMPT];
	int32_t n = 0;
	for (int i = 0; i < MAX_PROMPT; i++)
		for (int s = 0; s < n_seq; s++)
			if (i < plen[s]) {
				toks[n] = prompt[s][i];
				seqs[n++] = s;
			}
	struct engine_batch b = { .n = n, .tokens = toks, .seq = seqs, .want = NULL };
	/* want NULL: the last token of each sequence, in batch order — which
	 * is sequence order here, since the longest prompt ends last */
	assert_int_equal(engine_batch_n_wanted(&b), n_seq);
	assert_int_equal(engine_ctx_decode(c, &b, both), 0);
	double worst = 0.0;
	for (int s = 0; s < n_seq; s++) {
		assert_int_equal(engine_ctx_seq_n_past(c, s), plen[s]);
		double d = tk_test_rel_diff(both + (size_t)s * V,
					    alone + ((size_t)s * (N_STEPS + 1)) * V, (size_t)V);
		worst = d > worst ? d : worst;
	}
	for (int k = 0; k < N_STEPS; k++) {
		for (int s = 0; s < n_seq; s++) {
			toks[s] = step_token(s, k, V);
			seqs[s] = s;
		}
		b = (struct engine_batch){ .n = n_seq, .tokens = toks, .seq = seqs };
		assert_int_equal(engine_ctx_decode(c, &b, both), 0);
		for (int s = 0; s < n_seq; s++) {
			const float *want = alone + ((size_t)s * (N_STEPS + 1) + (size_t)k + 1) * V;
			double d = tk_test_rel_diff(both + (size_t)s * V, want, (size_t)V);
			worst = d > worst ? d : worst;
		}
		/* the context keeps the batch's last wanted row */
		assert_true(tk_test_rel_diff(engine_ctx_logits(c), both + (size_t)(n_seq - 1) * V,
				     (size_t)V) == 0.0);
	}
	printf("batched vs alone %s: %d sequences, %d threads%s: max rel diff %g\n", path,
	       n_seq, n_threads, lora ? ", LoRA" : "", worst);
	assert_true(worst < 1e-4);
	engine_ctx_free(c);
	free(alone);
	free(both);
	engine_model_free(m);
}

static void test_batched_equals_alone(void **state)
{
	(void)state;
	for (int n_seq = 1; n_seq <= MAX_SEQ; n_seq++)
		batched_vs_alone(FIX_MODEL("tiny-llama-Q8_0"), n_seq, 2, NULL);
	batched_vs_alone(FIX_MODEL("tiny-llama-f32"), 3, 1, NULL);
	batched_vs_alone(FIX_MODEL("tiny-llama-F16"), 4, 3, NULL);
	batched_vs_alone(FIX_MODEL("tiny-qwen2-f32"), 2, 2, NULL);
}

static void test_batched_lora(void **state)
{
	(void)state;
	struct engine_model *m = tk_test_engine_model(FIX_MODEL("tiny-llama-f32"));
	struct engine_lora *a = engine_lora_load(FIX_MODEL("tiny-llama-lora-coder"), m);
	if (!a)
		fail_msg("lora: %s", tk_err_detail());
	struct engine_lora_use use = { .lora = a, .user_scale = 0.7f };
	batched_vs_alone(FIX_MODEL("tiny-llama-f32"), 3, 2, &use);
	engine_lora_free(a);
	engine_model_free(m);
}

/* explicit want flags, per-sequence state, errors that evaluate nothing */
static void test_want_rewind_limits(void **state)
{
	(void)state;
	struct engine_model *m = tk_test_engine_model(FIX_MODEL("tiny-llama-f32"));
	const int32_t V = m->hp.n_vocab;
	struct engine_ctx *c = tk_test_engine_ctx(m, 8, 4, 2, 3);
	assert_int_equal(engine_ctx_n_seq_max(c), 3);
	assert_int_equal(engine_ctx_n_threads(c), 2);
	float *lg = malloc((size_t)10 * V * sizeof(float));
	float *ref = malloc((size_t)10 * V * sizeof(float));
	assert_true(lg && ref);

	/* every token wanted, 6 tokens in steps of n_batch 4, two sequences */
	int32_t toks[6] = { 1, 2, 3, 4, 5, 6 }, seqs[6] = { 2, 2, 0, 2, 0, 0 };
	int8_t want[6] = { 1, 1, 1, 1, 1, 1 };
	struct engine_batch b = { .n = 6, .tokens = toks, .seq = seqs, .want = want };
	assert_int_equal(engine_batch_n_wanted(&b), 6);
	assert_int_equal(engine_ctx_decode(c, &b, lg), 0);
	assert_int_equal(engine_ctx_seq_n_past(c, 0), 3);
	assert_int_equal(engine_ctx_seq_n_past(c, 1), 0);
	assert_int_equal(engine_ctx_seq_n_past(c, 2), 3);
	assert_int_equal(engine_ctx_n_past(c), 3); /* sequence 0 */
	/* ... equal to each sequence's tokens evaluated alone with all logits */
	struct engine_ctx *one = tk_test_engine_ctx(m, 8, 4, 1, 1);
	int32_t s0[3] = { 3, 5, 6 }, s2[3] = { 1, 2, 4 };
	assert_int_equal(engine_ctx_eval(one, s2, 3, ref), 0);
	assert_true(tk_test_rel_diff(lg, ref, V) < 1e-4);                       /* token 1 */
	assert_true(tk_test_rel_diff(lg + V, ref + V, V) < 1e-4);               /* token 2 */
	assert_true(tk_test_rel_diff(lg + 3 * V, ref + 2 * (size_t)V, V) < 1e-4); /* token 4 */
	assert_int_equal(engine_ctx_rewind(one, 0), 0);
	assert_int_equal(engine_ctx_eval(one, s0, 3, ref), 0);
	assert_true(tk_test_rel_diff(lg + 2 * (size_t)V, ref, V) < 1e-4);
	assert_true(tk_test_rel_diff(lg + 4 * (size_t)V, ref + V, V) < 1e-4);
	assert_true(tk_test_rel_diff(lg + 5 * (size_t)V, ref + 2 * (size_t)V, V) < 1e-4);
	assert_true(tk_test_rel_diff(engine_ctx_logits(c), lg + 5 * (size_t)V, V) == 0.0);

	/* only one flag set: one row; logits NULL computes just the last */
	int8_t one_want[6] = { 0, 0, 0, 0, 1, 0 };
	assert_int_equal(engine_ctx_seq_clear(c, 0), 0);
	assert_int_equal(engine_ctx_seq_clear(c, 2), 0);
	b.want = one_want;
	assert_int_equal(engine_batch_n_wanted(&b), 1);
	assert_int_equal(engine_ctx_decode(c, &b, NULL), 0);
	assert_true(tk_test_rel_diff(engine_ctx_logits(c), ref + V, V) < 1e-4);

	/* errors leave every sequence where it was */
	int32_t bad_seq[2] = { 0, 3 };
	b = (struct engine_batch){ .n = 2, .tokens = toks, .seq = bad_seq };
	assert_int_equal(engine_ctx_decode(c, &b, NULL), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "sequence 3"));
	int32_t bad_tok[2] = { 1, V };
	b = (struct engine_batch){ .n = 2, .tokens = bad_tok, .seq = seqs };
	assert_int_equal(engine_ctx_decode(c, &b, NULL), TK_EINVAL);
	b = (struct engine_batch){ .n = 0, .tokens = toks };
	assert_int_equal(engine_ctx_decode(c, &b, NULL), TK_EINVAL);
	assert_int_equal(engine_ctx_decode(c, NULL, NULL), TK_EINVAL);
	/* sequence 1 is empty (8 free), sequence 0 holds 3: 6 more overflow */
	int32_t many[6] = { 1, 1, 1, 1, 1, 1 }, on0[6] = { 0, 0, 0, 0, 0, 0 };
	b = (struct engine_batch){ .n = 6, .tokens = many, .seq = on0 };
	assert_int_equal(engine_ctx_decode(c, &b, NULL), TK_ELIMIT);
	assert_non_null(strstr(tk_err_detail(), "sequence 0"));
	assert_int_equal(engine_ctx_seq_n_past(c, 0), 3);
	assert_int_equal(engine_ctx_seq_n_past(c, 1), 0);
	assert_int_equal(engine_ctx_seq_n_past(c, 2), 3);

	/* per-sequence rewind */
	assert_int_equal(engine_ctx_seq_rewind(c, 2, 1), 0);
	assert_int_equal(engine_ctx_seq_n_past(c, 2), 1);
	assert_int_equal(engine_ctx_seq_n_past(c, 0), 3);
	assert_int_equal(engine_ctx_seq_rewind(c, 2, 2), TK_EINVAL);
	assert_int_equal(engine_ctx_seq_rewind(c, 3, 0), TK_EINVAL);
	assert_int_equal(engine_ctx_seq_rewind(c, -1, 0), TK_EINVAL);
	assert_int_equal(engine_ctx_seq_clear(c, 5), TK_EINVAL);
	assert_int_equal(engine_ctx_seq_n_past(c, 3), -1);
	/* a rewound sequence recomputes the same logits */
	int32_t again[2] = { 2, 4 }, on2[2] = { 2, 2 };
	b = (struct engine_batch){ .n = 2, .tokens = again, .seq = on2 };
	assert_int_equal(engine_ctx_decode(c, &b, lg), 0);
	assert_int_equal(engine_ctx_rewind(one, 0), 0);
	assert_int_equal(engine_ctx_eval(one, s2, 3, NULL), 0);
	assert_true(tk_test_rel_diff(lg, engine_ctx_logits(one), V) < 1e-4);

	/* bad n_seq_max */
	struct engine_ctx *d;
	struct engine_ctx_params p;
	engine_ctx_params_default(&p);
	assert_int_equal(p.n_seq_max, 1);
	/* n_batch may reach n_ctx * n_seq_max (every sequence's prompt in one
	 * step), not more */
	p.n_ctx = 4;
	p.n_seq_max = 2;
	p.n_batch = 8;
	d = engine_ctx_new(m, &p);
	assert_non_null(d);
	engine_ctx_free(d);
	p.n_batch = 9;
	assert_null(engine_ctx_new(m, &p));
	assert_int_equal(tk_err_last(), TK_EINVAL);
	p.n_batch = 0;
	p.n_seq_max = ENGINE_MAX_SEQ + 1;
	assert_null(engine_ctx_new(m, &p));
	assert_int_equal(tk_err_last(), TK_EINVAL);
	p.n_seq_max = -1;
	assert_null(engine_ctx_new(m, &p));
	/* n_threads 0 means the physical core count; KV memory scales with
	 * n_seq_max */
	p.n_seq_max = 0;
	p.n_threads = 0;
	p.n_ctx = 16;
	d = engine_ctx_new(m, &p);
	assert_non_null(d);
	assert_int_equal(engine_ctx_n_threads(d), engine_default_threads());
	assert_int_equal(engine_ctx_n_seq_max(d), 1);
	struct engine_mem m1, m3;
	engine_ctx_mem(d, &m1);
	engine_ctx_free(d);
	p.n_seq_max = 3;
	d = engine_ctx_new(m, &p);
	assert_non_null(d);
	engine_ctx_mem(d, &m3);
	assert_int_equal(m3.kv_bytes, 3 * m1.kv_bytes);
	engine_ctx_free(d);

	engine_ctx_free(one);
	engine_ctx_free(c);
	free(lg);
	free(ref);
	engine_model_free(m);
}

/* ---------------------------------------------- blocked attention */

static uint32_t rng_state = 12345;
static float frand(void)
{
	rng_state = rng_state * 1664525u + 1013904223u;
	return (float)((rng_state >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

/* the blocked op over 1000 positions (many blocks, a partial last one)
 * against the reference op, both cache types, GQA groups of 1 and 4 */
static void test_blocked_attention_op(void **state)
{
	(void)state;
	enum { NKV = 1000, HD = 64 };
	const int32_t shapes[][2] = { { 8, 2 }, { 4, 4 } }; /* n_head, n_head_kv */
	for (size_t si = 0; si < 2; si++) {
		const int32_t nh = shapes[si][0], nhk = shapes[si][1];
		const size_t kv_row = (size_t)nhk * HD;
		float *q = malloc((size_t)nh * HD * sizeof(float));
		float *kf = malloc(NKV * kv_row * sizeof(float)), *vf = malloc(NKV * kv_row * sizeof(float));
		uint16_t *kh = malloc(NKV * kv_row * 2), *vh = malloc(NKV * kv_row * 2);
		float *ref = malloc((size_t)nh * HD * sizeof(float)), *got = malloc((size_t)nh * HD * sizeof(float));
		float *att = malloc(NKV * sizeof(float)), qbuf[HD];
		float *scratch = malloc(engine_op_attention_scratch(nh, nhk, HD) * sizeof(float));
		assert_true(q && kf && vf && kh && vh && ref && got && att && scratch);
		for (int i = 0; i < nh * HD; i++)
			q[i] = frand() * 3.0f; /* peaky scores: the running max moves */
		for (size_t i = 0; i < NKV * kv_row; i++) {
			kf[i] = frand() + (i / kv_row == 700 ? 2.0f : 0.0f);
			vf[i] = frand();
			kh[i] = tk_fp32_to_fp16(kf[i]);
			vh[i] = tk_fp32_to_fp16(vf[i]);
		}
		const int32_t lens[] = { 1, 63, 64, 65, 700, 701, NKV };
		for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
			for (int kt = 0; kt < 2; kt++) {
				const enum engine_kv_type type = kt ? ENGINE_KV_F16 : ENGINE_KV_F32;
				const void *k = kt ? (const void *)kh : kf, *v = kt ? (const void *)vh : vf;
				engine_op_attention(ref, q, k, v, type, lens[li], nh, nhk, HD, 0.125f, att,
						    qbuf);
				memset(got, 0, (size_t)nh * HD * sizeof(float));
				for (int32_t hk = 0; hk < nhk; hk++)
					engine_op_attention_blocked(got, q, k, v, type, lens[li], nh, nhk,
								    HD, 0.125f, hk, scratch);
				double d = tk_test_rel_diff(got, ref, (size_t)nh * HD);
				if (d > 1e-5)
					fail_msg("blocked attention n_kv %d %s heads %d/%d: rel diff %g",
						 lens[li], kt ? "f16" : "f32", nh, nhk, d);
			}
		}
		free(q);
		free(kf);
		free(vf);
		free(kh);
		free(vh);
		free(ref);
		free(got);
		free(att);
		free(scratch);
	}
}

/* a long prompt through the model: one batch of 512 queries (blocked
 * attention over up to 512 positions, 8 blocks; threads over (token, KV
 * head)) equals batches of 256 followed by single-token decode of the last 8
 * (the op itself is checked against the reference above on 1000 positions;
 * 512 keeps this test fast in the unoptimized and sanitizer builds) */
static void test_long_prompt(void **state)
{
	(void)state;
	struct engine_model *m = tk_test_engine_model(FIX_MODEL("tiny-llama-f32"));
	const int32_t V = m->hp.n_vocab;
	enum { N = 512, TAIL = 8 };
	int32_t *toks = malloc(N * sizeof *toks);
	float *all = malloc((size_t)N * V * sizeof(float));
	float *split = malloc((size_t)N * V * sizeof(float));
	assert_true(toks && all && split);
	for (int i = 0; i < N; i++)
		toks[i] = (i * 7919 + 13) % V;
	struct engine_ctx *c = tk_test_engine_ctx(m, N, N, 2, 1);
	assert_int_equal(engine_ctx_eval(c, toks, N, all), 0);
	engine_ctx_free(c);
	c = tk_test_engine_ctx(m, N, 256, 2, 1);
	assert_int_equal(engine_ctx_eval(c, toks, N - TAIL, split), 0);
	for (int i = N - TAIL; i < N; i++) {
		assert_int_equal(engine_ctx_eval(c, &toks[i], 1, NULL), 0);
		memcpy(split + (size_t)i * V, engine_ctx_logits(c), (size_t)V * sizeof(float));
	}
	const double d = tk_test_rel_diff(split, all, (size_t)N * V);
	printf("512-token prompt, one batch vs batches of 256 + decode: max rel diff %g\n", d);
	assert_true(d < 1e-4);
	engine_ctx_free(c);
	free(toks);
	free(all);
	free(split);
	engine_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batched_equals_alone),
		cmocka_unit_test(test_batched_lora),
		cmocka_unit_test(test_want_rewind_limits),
		cmocka_unit_test(test_blocked_attention_op),
		cmocka_unit_test(test_long_prompt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
