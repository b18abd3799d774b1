/*
 * bench_pack.c — the engine's matrix product (engine_op_matmul_run, ops.h)
 * on a weight in the file layout against the same weight packed
 * (quant_pack.h), one thread, for one type and a few shapes and activation
 * counts. Prints numbers only.
 *
 *   bench_pack [TYPE] [--shape N_INxN_OUT]... [--nc LIST] [--mib MIB]
 *              [--reps N] [--cpu] [--ref]
 *
 *   TYPE     q8_0 (default), f16, q4_k, q6_k: the weight type
 *   --shape  n_in x n_out; repeatable; default the llama-1.1B products:
 *            2048x2048 (wq, wo), 2048x5632 (gate, up), 5632x2048 (down)
 *   --nc     activation rows (tokens) per product, comma-separated;
 *            default 1,2,4,8,64 (1 = decode, 2..8 batched decode, 64 a
 *            prefill batch)
 *   --mib    weights are cycled over copies totalling about this many MiB
 *            (default 128), so decode reads them from DRAM as the engine
 *            does, not from cache
 *   --reps   timed passes per case, the best kept (default 5)
 *   --cpu    time with the thread's CPU clock instead of the wall clock
 *            (for a machine busy with other jobs)
 *   --ref    pack with the reference layout and gemm (tk_pack_traits_ref)
 *            instead of the active CPU's (the default; falls back to the
 *            reference when the active table has none, and says so)
 *
 * For each shape and nc: the file-layout product and the packed one run
 * interleaved within each repetition (a noisy machine disturbs both alike);
 * the best time of each gives GB/s (weight bytes of the file layout /
 * time: what decode streams) and GMAC/s (n_in * n_out * nc / time), and
 * the speed-up. The two results are compared (largest relative
 * difference) so a broken layout cannot look fast.
 */
#include "core/time.h"
#include "engine/ops.h"
#include "engine/quant.h"
#include "engine/quant_pack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SHAPES 8
#define MAX_NC 16

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float next_float(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)(rng >> 40) / (float)(1u << 24) * 2.0f - 1.0f;
}

struct copy {
	struct engine_weight file, packed;
	unsigned char *rows, *groups;
};

static bool use_cpu_time; /* --cpu */

/* Wall time, or with --cpu this thread's CPU time: on a machine shared with
 * other jobs the wall time counts their time slices too, CPU time does not
 * (cache and memory contention still show). */
static double now_s(void)
{
	if (use_cpu_time) {
		struct timespec ts;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
		return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	}
	return (double)tk_time_mono_ns() / 1e9;
}

/* One pass: every copy's product over all rows. */
static double pass(const struct copy *cp, int n_copies, bool packed, float *y, const void *xq,
		   int32_t nc)
{
	const double t0 = now_s();
	for (int i = 0; i < n_copies; i++) {
		const struct engine_weight *w = packed ? &cp[i].packed : &cp[i].file;
		engine_op_matmul_run(y, w, xq, nc, 0, w->n_out);
	}
	return now_s() - t0;
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_pack [q8_0|f16|q4_k|q6_k] [--shape N_INxN_OUT]... "
			"[--nc 1,2,4,8,64] [--mib 128] [--reps 5] [--cpu] [--ref]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int type = TK_TYPE_Q8_0, reps = 5, n_shapes = 0, n_nc = 0;
	long mib = 128;
	bool ref = false;
	int64_t shapes[MAX_SHAPES][2];
	int32_t ncs[MAX_NC];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--ref")) {
			ref = true;
		} else if (!strcmp(a, "--cpu")) {
			use_cpu_time = true;
		} else if (!strcmp(a, "--shape") && i + 1 < argc && n_shapes < MAX_SHAPES) {
			long long ni, no;
			if (sscanf(argv[++i], "%lldx%lld", &ni, &no) != 2 || ni < 1 || no < 1 ||
			    ni > (1 << 20) || no > (1 << 20))
				return usage();
			shapes[n_shapes][0] = ni;
			shapes[n_shapes++][1] = no;
		} else if (!strcmp(a, "--nc") && i + 1 < argc) {
			char *s = argv[++i], *end;
			while (*s && n_nc < MAX_NC) {
				long v = strtol(s, &end, 10);
				if (end == s || v < 1 || v > 4096)
					return usage();
				ncs[n_nc++] = (int32_t)v;
				s = *end == ',' ? end + 1 : end;
			}
		} else if (!strcmp(a, "--mib") && i + 1 < argc) {
			mib = strtol(argv[++i], NULL, 10);
			if (mib < 1 || mib > 65536)
				return usage();
		} else if (!strcmp(a, "--reps") && i + 1 < argc) {
			reps = atoi(argv[++i]);
			if (reps < 1 || reps > 1000)
				return usage();
		} else if (a[0] != '-' && tk_type_from_name(a) >= 0) {
			type = tk_type_from_name(a);
		} else {
			return usage();
		}
	}
	if (!n_shapes) {
		const int64_t def[3][2] = { { 2048, 2048 }, { 2048, 5632 }, { 5632, 2048 } };
		for (int i = 0; i < 3; i++) {
			shapes[i][0] = def[i][0];
			shapes[i][1] = def[i][1];
		}
		n_shapes = 3;
	}
	if (!n_nc) {
		const int32_t def[] = { 1, 2, 4, 8, 64 };
		for (int i = 0; i < 5; i++)
			ncs[i] = def[i];
		n_nc = 5;
	}
	const struct tk_type_traits *tr = tk_type_traits(type);
	if (!tr || !tk_type_can_compute(type)) {
		fprintf(stderr, "bench_pack: type %s cannot be computed\n", tk_type_name(type));
		return 2;
	}
	const struct tk_pack_traits *pt = ref ? tk_pack_traits_ref(type) : tr->pack;
	const char *which = ref ? "reference" : "active";
	if (!pt && !ref) {
		pt = tk_pack_traits_ref(type);
		which = "reference (no fast layout on this CPU)";
	}
	if (!pt) {
		fprintf(stderr, "bench_pack: type %s has no packed layout\n", tk_type_name(type));
		return 2;
	}
	printf("bench_pack %s: layout %s, gemm %s; 1 thread, best of %d, weights cycled over "
	       "~%ld MiB, %s time\n", tk_type_name(type), pt->name, which, reps, mib,
	       use_cpu_time ? "CPU" : "wall");
	printf("%-11s %4s %9s %9s %9s %9s %7s %9s\n", "shape", "nc", "file GB/s", "pack GB/s",
	       "file GMAC", "pack GMAC", "speedup", "rel diff");
	for (int s = 0; s < n_shapes; s++) {
		const int64_t n_in = shapes[s][0], n_out = shapes[s][1];
		size_t rb;
		if (tk_type_row_size(type, n_in, &rb) || n_out < TK_PACK_ROWS) {
			fprintf(stderr, "bench_pack: shape %lldx%lld does not fit %s\n",
				(long long)n_in, (long long)n_out, tk_type_name(type));
			return 2;
		}
		const size_t wbytes = rb * (size_t)n_out;
		int n_copies = (int)(((size_t)mib << 20) / wbytes);
		if (n_copies < 1)
			n_copies = 1;
		const size_t gb = pt->group_size(n_in);
		const int64_t n_groups = n_out / TK_PACK_ROWS;
		struct copy *cp = calloc((size_t)n_copies, sizeof *cp);
		float *row = malloc((size_t)n_in * sizeof(float));
		if (!cp || !row)
			return 1;
		for (int c = 0; c < n_copies; c++) {
			cp[c].rows = malloc(wbytes);
			cp[c].groups = aligned_alloc(64, ((size_t)n_groups * gb + 63) / 64 * 64);
			if (!cp[c].rows || !cp[c].groups) {
				fprintf(stderr, "bench_pack: out of memory\n");
				return 1;
			}
			if (c == 0) {
				for (int64_t r = 0; r < n_out; r++) {
					for (int64_t i = 0; i < n_in; i++)
						row[i] = next_float();
					tr->from_float(row, cp[c].rows + (size_t)r * rb, n_in);
				}
			} else {
				memcpy(cp[c].rows, cp[0].rows, wbytes);
			}
			for (int64_t g = 0; g < n_groups; g++)
				pt->pack(cp[c].groups + (size_t)g * gb,
					 cp[c].rows + (size_t)g * TK_PACK_ROWS * rb, rb, n_in);
			cp[c].file = (struct engine_weight){ .data = cp[c].rows, .type = type,
							     .n_in = n_in, .n_out = n_out,
							     .row_bytes = rb };
			cp[c].packed = cp[c].file;
			cp[c].packed.packed = cp[c].groups;
			cp[c].packed.pack = pt;
			cp[c].packed.n_packed = n_groups * TK_PACK_ROWS;
			cp[c].packed.group_bytes = gb;
		}
		for (int k = 0; k < n_nc; k++) {
			const int32_t nc = ncs[k];
			float *x = malloc((size_t)nc * (size_t)n_in * sizeof(float));
			void *scratch = malloc((size_t)nc * engine_op_matmul_scratch(type, n_in));
			float *ya = malloc((size_t)nc * (size_t)n_out * sizeof(float));
			float *yb = malloc((size_t)nc * (size_t)n_out * sizeof(float));
			if (!x || !scratch || !ya || !yb)
				return 1;
			for (int64_t i = 0; i < (int64_t)nc * n_in; i++)
				x[i] = next_float();
			const void *xq = engine_op_matmul_prepare(&cp[0].file, x, nc, scratch);
			/* copies per timed pass: enough work for ~1 ms+ even at nc = 1 */
			const int use = nc > 8 ? 1 : n_copies;
			double best_a = INFINITY, best_b = INFINITY;
			(void)pass(cp, use, false, ya, xq, nc); /* warm-up */
			(void)pass(cp, use, true, yb, xq, nc);
			for (int r = 0; r < reps; r++) {
				double a = pass(cp, use, false, ya, xq, nc);
				double b = pass(cp, use, true, yb, xq, nc);
				best_a = a < best_a ? a : best_a;
				best_b = b < best_b ? b : best_b;
			}
			double d = 0, m = 1e-30;
			for (int64_t i = 0; i < (int64_t)nc * n_out; i++) {
				double e = fabs((double)ya[i] - (double)yb[i]);
				d = e > d ? e : d;
				m = fabs((double)ya[i]) > m ? fabs((double)ya[i]) : m;
			}
			const double bytes = (double)wbytes * use, macs = (double)n_in * n_out * nc * use;
			char shape[32];
			snprintf(shape, sizeof shape, "%lldx%lld", (long long)n_in, (long long)n_out);
			printf("%-11s %4d %9.2f %9.2f %9.2f %9.2f %6.2fx %9.2g\n", shape, (int)nc,
			       bytes / best_a / 1e9, bytes / best_b / 1e9, macs / best_a / 1e9,
			       macs / best_b / 1e9, best_a / best_b, d / m);
			fflush(stdout);
			free(x);
			free(scratch);
			free(ya);
			free(yb);
		}
		for (int c = 0; c < n_copies; c++) {
			free(cp[c].rows);
			free(cp[c].groups);
		}
		free(cp);
		free(row);
	}
	return 0;
}
