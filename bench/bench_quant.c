/*
 * bench_quant.c — speed of the tensor-type kernels (src/engine/quant.c): a
 * matrix-vector product y = W x done the engine's way (quantize x once to the
 * weight type's vec_dot_type, then one vec_dot per row), plus dequantize and
 * quantize throughput, for every type with kernels. One thread. Prints
 * numbers only; the baseline Engine II's SIMD kernels are compared with.
 * Uses the active kernels (tk_type_traits), i.e. what the engine runs.
 *
 *   bench_quant [rows, default 1024] [cols, default 4096] [repeats, default 5]
 */
#include "core/time.h"
#include "engine/quant.h"

#include <stdio.h>
#include <stdlib.h>

static volatile float sink;

int main(int argc, char **argv)
{
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
