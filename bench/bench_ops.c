/*
 * bench_ops.c — the element-wise ops of a decode step alone (ops_simd.h):
 * the SiLU gate and the RMS norm through every variant this CPU runs, and
 * RoPE with its per-call cos/sin table against cos/sin per head (the old
 * way, engine_op_rope_ref), interleaved in one run. One thread; prints
 * nanoseconds per element (per head for RoPE) and the speed-up over the
 * reference. Not a test: it never fails on time.
 *
 *   bench_ops [--ffn 5632] [--tok 4] [--embd 2048] [--heads 32] [--dim 64] [-r 5]
 */
#include "engine/ops.h"
#include "engine/ops_simd.h"
#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
	int ffn = 5632, tok = 4, embd = 2048, heads = 32, dim = 64, reps = 5;
	for (int i = 1; i + 1 < argc; i += 2) {
		const int v = atoi(argv[i + 1]);
		if (!strcmp(argv[i], "--ffn"))
			ffn = v;
		else if (!strcmp(argv[i], "--tok"))
			tok = v;
		else if (!strcmp(argv[i], "--embd"))
			embd = v;
		else if (!strcmp(argv[i], "--heads"))
			heads = v;
		else if (!strcmp(argv[i], "--dim"))
			dim = v;
		else if (!strcmp(argv[i], "-r"))
			reps = v;
		else {
			fprintf(stderr, "bench_ops: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (ffn < 1 || tok < 1 || embd < 1 || heads < 1 || dim < 2 || dim % 2 || reps < 1) {
		fprintf(stderr, "bench_ops: bad sizes\n");
		return 2;
	}
	const size_t n = (size_t)ffn * (size_t)tok;
	float *x0 = malloc(n * sizeof *x0), *x = malloc(n * sizeof *x), *g = malloc(n * sizeof *g);
	float *h = malloc((size_t)embd * sizeof *h), *w = malloc((size_t)embd * sizeof *w);
	float *q = malloc((size_t)heads * (size_t)dim * sizeof *q);
	if (!x0 || !x || !g || !h || !w || !q) {
		fprintf(stderr, "bench_ops: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		x0[i] = 4.0f * bench_rnd();
		g[i] = bench_rnd();
	}
	for (int i = 0; i < embd; i++) {
		h[i] = bench_rnd();
		w[i] = 1.0f + 0.1f * bench_rnd();
	}
	for (int i = 0; i < heads * dim; i++)
		q[i] = bench_rnd();
	const int iters_silu = (int)(2e7 / (double)n) + 1, iters_norm = (int)(2e7 / embd) + 1;
	const int iters_rope = 200000 / heads + 1;
	double best_silu[ENGINE_OPS_ISA_COUNT], best_norm[ENGINE_OPS_ISA_COUNT], best_rope[2];
	for (int k = 0; k < ENGINE_OPS_ISA_COUNT; k++)
		best_silu[k] = best_norm[k] = 1e30;
	best_rope[0] = best_rope[1] = 1e30;
	const struct engine_rope rope = { .style = ENGINE_ROPE_NORM, .n_rot = dim,
					  .freq_base = 10000.0f, .freq_scale = 1.0f };
	volatile float sink = 0.0f;
	for (int r = 0; r < reps; r++) {
		for (int isa = 0; isa < ENGINE_OPS_ISA_COUNT; isa++) {
			if (!engine_ops_isa_supported(isa))
				continue;
			double t0 = bench_now_s();
			for (int it = 0; it < iters_silu; it++) {
				memcpy(x, x0, n * sizeof *x);
				engine_op_silu_mul_isa(isa, x, g, (int64_t)n);
			}
			double t = (bench_now_s() - t0) / ((double)iters_silu * (double)n);
			sink += x[n / 2];
			best_silu[isa] = fmin(best_silu[isa], t);
			t0 = bench_now_s();
			for (int it = 0; it < iters_norm; it++)
				engine_op_rmsnorm_isa(isa, x, h, w, embd, 1e-5f);
			t = (bench_now_s() - t0) / ((double)iters_norm * (double)embd);
			sink += x[1];
			best_norm[isa] = fmin(best_norm[isa], t);
		}
		for (int k = 0; k < 2; k++) {
			const double t0 = bench_now_s();
			for (int it = 0; it < iters_rope; it++) {
				if (k)
					engine_op_rope(q, heads, dim, 1000 + it % 7, &rope);
				else
					engine_op_rope_ref(q, heads, dim, 1000 + it % 7, &rope);
			}
			const double t = (bench_now_s() - t0) / ((double)iters_rope * (double)heads);
			best_rope[k] = fmin(best_rope[k], t);
			sink += q[3];
		}
	}
	printf("element-wise ops, best of %d, one thread (active variant: %s)\n", reps,
	       tk_isa_name(engine_ops_isa_active()));
	for (int isa = 0; isa < ENGINE_OPS_ISA_COUNT; isa++) {
		if (!engine_ops_isa_supported(isa))
			continue;
		printf("  silu_mul %-6s n=%zu: %7.3f ns/elem (x%.1f)   rmsnorm n=%d: %7.3f ns/elem "
		       "(x%.1f)\n",
		       tk_isa_name(isa), n, best_silu[isa] * 1e9, best_silu[0] / best_silu[isa], embd,
		       best_norm[isa] * 1e9, best_norm[0] / best_norm[isa]);
	}
	printf("  rope %d heads x %d: cos/sin per head %.1f ns/head, per call %.1f ns/head (x%.1f)\n",
	       heads, dim, best_rope[0] * 1e9, best_rope[1] * 1e9, best_rope[0] / best_rope[1]);
	free(x0);
	free(x);
	free(g);
	free(h);
	free(w);
	free(q);
	return sink == 12345.0f ? 3 : 0;
}
