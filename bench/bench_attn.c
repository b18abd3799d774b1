/*
 * bench_attn.c — attention kernels alone (attn_simd.h), every variant this
 * CPU runs against the portable reference, interleaved in one run: one
 * layer's causal attention of a P-token prefill (all KV heads, the runs of
 * tokens the forward pass hands over), and one decode token at position P.
 * One thread; prints milliseconds and the speed-up over the reference. Not
 * a test: it never fails on time.
 *
 *   bench_attn [-p 512] [--heads 32] [--kv-heads 4] [--dim 64] [--kv f16|f32] [-r 3]
 */
#include "engine/attn_simd.h"
#include "engine/fp16.h"
#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cfg {
	int32_t n_tok, n_head, n_head_kv, hd;
	enum engine_kv_type kv;
	float *q, *out, *scratch;
	void *k, *v;
};

/* one layer of prefill attention through isa; seconds */
static double run_prefill(const struct cfg *c, int isa)
{
	const int32_t per = isa == ENGINE_ATTN_ISA_REF
				    ? 1
				    : engine_attn_tokens_per_call(c->n_head, c->n_head_kv);
	const size_t q_dim = (size_t)c->n_head * (size_t)c->hd;
	const float scale = 1.0f / sqrtf((float)c->hd);
	const double t0 = bench_now_s();
	for (int32_t hk = 0; hk < c->n_head_kv; hk++)
		for (int32_t t = 0; t < c->n_tok; t += per) {
			const int32_t nt = c->n_tok - t < per ? c->n_tok - t : per;
			engine_attn_tokens_isa(isa, c->out + (size_t)t * q_dim,
					       c->q + (size_t)t * q_dim, c->k, c->v, c->kv, t, nt,
					       c->n_head, c->n_head_kv, c->hd, scale, hk, c->scratch);
		}
	return bench_now_s() - t0;
}

/* one decode token at position n_tok - 1, all KV heads, repeated 16 times */
static double run_decode(const struct cfg *c, int isa)
{
	const size_t q_dim = (size_t)c->n_head * (size_t)c->hd;
	const float scale = 1.0f / sqrtf((float)c->hd);
	const double t0 = bench_now_s();
	for (int rep = 0; rep < 16; rep++)
		for (int32_t hk = 0; hk < c->n_head_kv; hk++)
			engine_attn_tokens_isa(isa, c->out, c->q + (size_t)(c->n_tok - 1) * q_dim,
					       c->k, c->v, c->kv, c->n_tok - 1, 1, c->n_head,
					       c->n_head_kv, c->hd, scale, hk, c->scratch);
	return (bench_now_s() - t0) / 16.0;
}

int main(int argc, char **argv)
{
	struct cfg c = { .n_tok = 512, .n_head = 32, .n_head_kv = 4, .hd = 64,
			 .kv = ENGINE_KV_F16 };
	int reps = 3;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];
		if (!strcmp(a, "-p"))
			c.n_tok = atoi(v);
		else if (!strcmp(a, "--heads"))
			c.n_head = atoi(v);
		else if (!strcmp(a, "--kv-heads"))
			c.n_head_kv = atoi(v);
		else if (!strcmp(a, "--dim"))
			c.hd = atoi(v);
		else if (!strcmp(a, "--kv"))
			c.kv = !strcmp(v, "f32") ? ENGINE_KV_F32 : ENGINE_KV_F16;
		else if (!strcmp(a, "-r"))
			reps = atoi(v);
		else {
			fprintf(stderr, "bench_attn: unknown option %s\n", a);
			return 2;
		}
	}
	if (c.n_tok < 1 || c.n_head_kv < 1 || c.n_head < c.n_head_kv ||
	    c.n_head % c.n_head_kv || c.hd < 1 || c.hd > 1024 || reps < 1) {
		fprintf(stderr, "bench_attn: bad shape\n");
		return 2;
	}
	const size_t q_n = (size_t)c.n_tok * (size_t)c.n_head * (size_t)c.hd;
	const size_t kv_n = (size_t)c.n_tok * (size_t)c.n_head_kv * (size_t)c.hd;
	const size_t esz = c.kv == ENGINE_KV_F16 ? 2 : 4;
	c.q = malloc(q_n * sizeof(float));
	c.out = malloc(q_n * sizeof(float));
	c.k = malloc(kv_n * esz);
	c.v = malloc(kv_n * esz);
	c.scratch = malloc(engine_attn_scratch(c.n_head, c.n_head_kv, c.hd) * sizeof(float));
	if (!c.q || !c.out || !c.k || !c.v || !c.scratch) {
		fprintf(stderr, "bench_attn: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < q_n; i++)
		c.q[i] = bench_rnd();
	for (size_t i = 0; i < kv_n; i++) {
		if (c.kv == ENGINE_KV_F16) {
			((uint16_t *)c.k)[i] = tk_fp32_to_fp16(bench_rnd());
			((uint16_t *)c.v)[i] = tk_fp32_to_fp16(bench_rnd());
		} else {
			((float *)c.k)[i] = bench_rnd();
			((float *)c.v)[i] = bench_rnd();
		}
	}
	printf("attention, one layer, 1 thread: p=%d heads=%d kv_heads=%d head_dim=%d kv=%s, "
	       "best of %d (variants interleaved)\n",
	       c.n_tok, c.n_head, c.n_head_kv, c.hd, c.kv == ENGINE_KV_F16 ? "f16" : "f32", reps);
	double best_p[ENGINE_ATTN_ISA_COUNT], best_d[ENGINE_ATTN_ISA_COUNT];
	for (int isa = 0; isa < ENGINE_ATTN_ISA_COUNT; isa++)
		best_p[isa] = best_d[isa] = INFINITY;
	for (int r = 0; r < reps; r++)
		for (int isa = 0; isa < ENGINE_ATTN_ISA_COUNT; isa++) {
			if (!engine_attn_isa_supported(isa))
				continue;
			best_p[isa] = fmin(best_p[isa], run_prefill(&c, isa));
			best_d[isa] = fmin(best_d[isa], run_decode(&c, isa));
		}
	for (int isa = 0; isa < ENGINE_ATTN_ISA_COUNT; isa++) {
		if (!engine_attn_isa_supported(isa))
			continue;
		printf("%-7s prefill %9.2f ms (%5.2fx)   decode at %d: %8.3f ms (%5.2fx)\n",
		       engine_attn_isa_name(isa), best_p[isa] * 1e3, best_p[0] / best_p[isa],
		       c.n_tok - 1, best_d[isa] * 1e3, best_d[0] / best_d[isa]);
	}
	free(c.q);
	free(c.out);
	free(c.k);
	free(c.v);
	free(c.scratch);
	return 0;
}
