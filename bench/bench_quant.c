/*
 * bench_quant.c — speed of the tensor-type kernels (src/engine/quant.c): a
 * matrix-vector product y = W x done the engine's way (quantize x once to the
 * weight type's vec_dot_type, then one vec_dot per row), plus dequantize and
 * quantize throughput, for every type with kernels. One thread. Prints
 * numbers only; the baseline Engine II's SIMD kernels are compared with.
 * Uses the active kernels (tk_type_traits), i.e. what the engine runs.
 *
 *   bench_quant [rows, default 1024] [cols, default 4096] [repeats, default 5]
 *
 * With --isa, compares the kernel variants of quant_simd.h instead (ref vs
 * avx2 vs avx512, each that this CPU runs), one thread, at the row lengths
 * of real models (n = 2048, 5632, 8960), for the types decode and prefill
 * spend their time in: per type, n and variant,
 *   dot   one vec_dot per weight row (a matrix-vector product, decode):
 *         ns per row and weight GB/s;
 *   tile  4 x 4 vec_dot_tile blocks over the same matrix with 4 activation
 *         rows (prefill / batched decode): ns per row for all 4 tokens, and
 *         the speed-up over 4 separate dots. Variants without a tile run 4
 *         vec_dots (F16's tile takes float32 activations, ops.h's scheme).
 *   q     ns to quantize one activation row (the vec_dot_type's from_float).
 * The weight matrix is about 8 MiB (random codes, finite scales; speed does
 * not depend on values), so on most server CPUs it stays in L3: these are
 * kernel speeds, not DRAM bandwidth. The SIMD variants run interleaved
 * within each repetition, the reference after them, and the best time is
 * kept (a noisy machine disturbs the interleaved ones alike).
 *
 *   bench_quant --isa [repeats, default 15]
 */
#include "core/time.h"
#include "engine/cpu.h"
#include "engine/fp16.h"
#include "engine/quant.h"
#include "engine/quant_simd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile float sink;

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_u64(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Offsets of the half scales in a block (so random bytes decode to finite
 * numbers); -1 ends the list. */
static const int *half_offsets(int type)
{
	static const int q8_0[] = { 0, -1 }, q6_k[] = { 208, -1 }, q45k[] = { 0, 2, -1 };
	switch (type) {
	case TK_TYPE_Q8_0:
	case TK_TYPE_Q4_0:
		return q8_0;
	case TK_TYPE_Q6_K:
		return q6_k;
	case TK_TYPE_Q4_K:
	case TK_TYPE_Q5_K:
		return q45k;
	default:
		return NULL;
	}
}

static void random_row(int type, uint8_t *w, int64_t n, size_t bytes)
{
	if (type == TK_TYPE_F16 || type == TK_TYPE_BF16) {
		for (int64_t i = 0; i < n; i++) {
			const float v = (float)((double)(next_u64() >> 11) / 9007199254740992.0 - 0.5);
			const uint16_t h = type == TK_TYPE_F16 ? tk_fp32_to_fp16(v) : tk_fp32_to_bf16(v);
			memcpy(w + 2 * i, &h, 2);
		}
		return;
	}
	for (size_t i = 0; i < bytes; i++)
		w[i] = (uint8_t)next_u64();
	const int *off = half_offsets(type);
	const size_t bs = tk_type_traits_ref(type)->type_size;
	for (size_t b = 0; off && b < bytes / bs; b++)
		for (int k = 0; off[k] >= 0; k++) {
			const uint16_t h = tk_fp32_to_fp16(0.01f);
			memcpy(w + b * bs + (size_t)off[k], &h, 2);
		}
}

static double best_of(double cur, int64_t t0)
{
	const double dt = (double)(tk_time_mono_ns() - t0);
	return dt < cur ? dt : cur;
}

/* One (type, n) across the variants. */
static int bench_isa_case(int type, int64_t n, long reps)
{
	const struct tk_type_traits *rt = tk_type_traits_ref(type);
	size_t rb, qb, fb;
	if (!rt || !rt->vec_dot || tk_type_row_size(type, n, &rb) ||
	    tk_type_row_size(rt->vec_dot_type, n, &qb) || tk_type_row_size(TK_TYPE_F32, n, &fb))
		return 0;
	const bool f32_tile = type == TK_TYPE_F16;
	long rows = (long)((8u << 20) / rb) & ~3L;
	if (rows < 4)
		rows = 4;
	uint8_t *w = malloc(rb * (size_t)rows), *xq = malloc(4 * (qb > fb ? qb : fb));
	float *x = malloc(4 * fb), *y = malloc((size_t)rows * 4 * sizeof(float));
	if (!w || !xq || !x || !y)
		return -1;
	for (long r = 0; r < rows; r++)
		random_row(type, w + (size_t)r * rb, n, rb);
	for (int64_t i = 0; i < 4 * n; i++)
		x[i] = (float)((double)(next_u64() >> 11) / 9007199254740992.0 - 0.5);
	/* the tile's activations: float32 for F16 (ops.h), else encoded */
	const uint8_t *ya = f32_tile ? (const uint8_t *)x : xq;
	const size_t by = f32_tile ? fb : qb;
	static struct tk_type_traits tabs[TK_QUANT_ISA_COUNT][TK_TYPE_COUNT];
	bool have[TK_QUANT_ISA_COUNT];
	double t_dot[TK_QUANT_ISA_COUNT], t_tile[TK_QUANT_ISA_COUNT], t_q[TK_QUANT_ISA_COUNT];
	for (int isa = 0; isa < TK_QUANT_ISA_COUNT; isa++) {
		have[isa] = tk_quant_isa_traits(isa, tabs[isa]) == 0;
		t_dot[isa] = t_tile[isa] = t_q[isa] = 1e30;
	}
	/* variants interleaved within each repetition, best time kept: a
	 * shared, noisy machine disturbs them alike */
	for (long rep = 0; rep < 2 * reps; rep++) {
		/* the SIMD variants interleaved (first half), the scalar
		 * reference alone after them (second half): a vector kernel
		 * timed right after the scalar one measured up to 2x slow */
		for (int isa = 0; isa < TK_QUANT_ISA_COUNT; isa++) {
			if (!have[isa] || (rep < reps) == (isa == TK_QUANT_ISA_REF))
				continue;
			const struct tk_type_traits *tr = &tabs[isa][type];
			const struct tk_type_traits *vt = &tabs[isa][rt->vec_dot_type];
			int64_t t0 = tk_time_mono_ns();
			for (int c = 0; c < 4; c++)
				vt->from_float(x + c * n, xq + (size_t)c * qb, n);
			t_q[isa] = best_of(t_q[isa], t0);
			t0 = tk_time_mono_ns();
			for (long r = 0; r < rows; r++)
				tr->vec_dot(n, &y[r], w + (size_t)r * rb, xq);
			t_dot[isa] = best_of(t_dot[isa], t0);
			sink += y[rows - 1];
			t0 = tk_time_mono_ns();
			if (tr->vec_dot_tile) {
				for (long r = 0; r < rows; r += 4)
					tr->vec_dot_tile(n, y + r, (size_t)rows, w + (size_t)r * rb, rb, ya, by,
							 4, 4);
			} else if (!f32_tile) {
				for (long r = 0; r < rows; r++)
					for (int c = 0; c < 4; c++)
						tr->vec_dot(n, &y[(size_t)c * (size_t)rows + (size_t)r],
							    w + (size_t)r * rb, xq + (size_t)c * qb);
			} else {
				continue;
			}
			t_tile[isa] = best_of(t_tile[isa], t0);
			sink += y[rows - 1];
		}
	}
	for (int isa = 0; isa < TK_QUANT_ISA_COUNT; isa++) {
		if (!have[isa])
			continue;
		char tile[64] = "-";
		if (t_tile[isa] < 1e30)
			snprintf(tile, sizeof tile, "%9.1f %6.2fx", t_tile[isa] / (double)rows,
				 4.0 * t_dot[isa] / t_tile[isa]);
		printf("%-6s %5lld %-7s %10.1f %8.2f %7.2fx %18s %9.1f\n", rt->name, (long long)n,
		       tk_quant_isa_name(isa), t_dot[isa] / (double)rows,
		       (double)rb * (double)rows / t_dot[isa], t_dot[0] / t_dot[isa], tile,
		       t_q[isa] / 4.0);
	}
	free(w);
	free(xq);
	free(x);
	free(y);
	return 0;
}

static int bench_isa(long reps)
{
	char feats[256];
	printf("kernel variants, 1 thread, ~8 MiB weight matrix, best of %ld interleaved; cpu: %s; "
	       "dispatch picks %s\n", reps,
	       tk_cpu_describe(feats, sizeof feats), tk_quant_isa_name(tk_quant_isa_active()));
	printf("%-6s %5s %-7s %10s %8s %8s %18s %9s\n", "type", "n", "isa", "dot_ns/row", "GB/s",
	       "vs_ref", "tile4x4_ns/row spd", "q_ns/row");
	const int types[] = { TK_TYPE_F16, TK_TYPE_BF16, TK_TYPE_Q8_0, TK_TYPE_Q4_0,
			      TK_TYPE_Q6_K, TK_TYPE_Q4_K, TK_TYPE_Q5_K };
	const int64_t ns[] = { 2048, 5632, 8960 };
	for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
		for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
			if (bench_isa_case(types[t], ns[k], reps))
				return 1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--isa"))
		return bench_isa(argc > 2 ? atol(argv[2]) : 15) ? 1 : 0;
	long rows = argc > 1 ? atol(argv[1]) : 1024;
	long cols = argc > 2 ? atol(argv[2]) : 4096;
	long reps = argc > 3 ? atol(argv[3]) : 5;
	if (rows <= 0 || cols <= 0 || cols % 256 || reps <= 0) {
		fprintf(stderr, "usage: bench_quant [rows] [cols, multiple of 256] [repeats]\n");
		return 2;
	}
	const int types[] = { TK_TYPE_F32, TK_TYPE_F16, TK_TYPE_BF16, TK_TYPE_Q8_0, TK_TYPE_Q4_0,
			      TK_TYPE_Q4_1, TK_TYPE_Q5_0, TK_TYPE_Q5_1 };
	float *wf = malloc((size_t)rows * (size_t)cols * sizeof *wf);
	float *x = malloc((size_t)cols * sizeof *x), *y = malloc((size_t)rows * sizeof *y);
	float *deq = malloc((size_t)cols * sizeof *deq);
	if (!wf || !x || !y || !deq)
		return 1;
	uint64_t s = 88172645463325252ull;
	for (long i = 0; i < rows * cols; i++) {
		s ^= s << 13; s ^= s >> 7; s ^= s << 17;
		wf[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5) * 0.04f;
	}
	for (long i = 0; i < cols; i++)
		x[i] = wf[i] * 25.0f;
	printf("matvec %ld x %ld, %ld repeats, 1 thread (active kernels)\n", rows, cols, reps);
	printf("%-6s %12s %12s %12s %14s %14s\n", "type", "matvec_ms", "weights_GB/s", "GFLOP/s",
	       "to_float_GB/s", "from_float_GB/s");
	for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
		const struct tk_type_traits *tr = tk_type_traits(types[k]);
		const struct tk_type_traits *vt = tk_type_traits(tr->vec_dot_type);
		size_t row_bytes, xq_bytes;
		tk_type_row_size(types[k], cols, &row_bytes);
		tk_type_row_size(tr->vec_dot_type, cols, &xq_bytes);
		uint8_t *w = malloc(row_bytes * (size_t)rows), *xq = malloc(xq_bytes);
		if (!w || !xq)
			return 1;
		int64_t t0 = tk_time_mono_ns();
		for (long r = 0; r < rows; r++)
			tr->from_float(wf + r * cols, w + (size_t)r * row_bytes, cols);
		int64_t t_from = tk_time_mono_ns() - t0;
		double best = 1e30;
		for (long rep = 0; rep < reps; rep++) {
			t0 = tk_time_mono_ns();
			vt->from_float(x, xq, cols);
			for (long r = 0; r < rows; r++)
				tr->vec_dot(cols, &y[r], w + (size_t)r * row_bytes, xq);
			double dt = (double)(tk_time_mono_ns() - t0);
			if (dt < best)
				best = dt;
			sink += y[rows - 1];
		}
		t0 = tk_time_mono_ns();
		for (long r = 0; r < rows; r++) {
			tr->to_float(w + (size_t)r * row_bytes, deq, cols);
			sink += deq[0];
		}
		int64_t t_to = tk_time_mono_ns() - t0;
		double wbytes = (double)row_bytes * (double)rows;
		printf("%-6s %12.2f %12.2f %12.2f %14.2f %14.2f\n", tr->name, best / 1e6, wbytes / best,
		       2.0 * (double)rows * (double)cols / best,
		       (double)rows * (double)cols * 4 / (double)t_to,
		       (double)rows * (double)cols * 4 / (double)t_from);
		free(w);
		free(xq);
	}
	free(wf); free(x); free(y); free(deq);
	return 0;
}
