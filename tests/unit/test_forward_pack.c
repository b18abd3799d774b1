/*
 * test_forward_pack.c — the engine's packed-weight path (model.h "Packed
 * weights", ops.h engine_op_matmul_run): which weights a model packs, the
 * packed product of any row range against the file-layout product, and
 * whole forward passes (prefill in several batches, decode, batched decode
 * of several sequences) with the reference layouts forced against the same
 * model unpacked. Forcing the reference layouts (ENGINE_REPACK_REF) covers
 * the engine side on any CPU; the fast kernels are checked against those
 * layouts by test_pack_<type>.c.
 */
#include "testutil.h"

#include "core/err.h"
#include "engine/context.h"
#include "engine/model.h"
#include "engine/ops.h"
#include "engine/quant.h"
#include "engine/quant_pack.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX_MODEL(name) TK_FIXTURES "/models/" name ".gguf"

static struct engine_model *load_mode(const char *path, enum engine_repack mode)
{
	struct engine_model_params p;
	engine_model_params_default(&p);
	p.repack = mode;
	p.n_threads = 2;
	struct engine_model *m = engine_model_load_params(path, &p);
	if (!m)
		fail_msg("load %s: %s", path, tk_err_detail());
	return m;
}

/* Every weight the forward pass multiplies by is packed exactly when its
 * type has a reference layout and it has a whole group of rows; returns
 * how many are. */
static int32_t check_packed_set(const struct engine_model *m)
{
	int32_t n = 0;
	const struct engine_weight *ws[1 + 7];
	for (int32_t il = -1; il < m->hp.n_layer; il++) {
		size_t k = 0;
		if (il < 0) {
			ws[k++] = &m->output;
		} else {
			const struct engine_layer *L = &m->layers[il];
			const struct engine_weight *lw[] = { &L->wq, &L->wk, &L->wv, &L->wo,
							     &L->w_gate, &L->w_up, &L->w_down };
			for (size_t i = 0; i < 7; i++)
				ws[k++] = lw[i];
		}
		for (size_t i = 0; i < k; i++) {
			const struct engine_weight *w = ws[i];
			const struct tk_pack_traits *pt = tk_pack_traits_ref(w->type);
			const bool want = pt && w->n_out >= TK_PACK_ROWS;
			assert_int_equal(w->packed != NULL, want);
			if (!want) {
				assert_null(w->pack);
				assert_int_equal(w->n_packed, 0);
				continue;
			}
			assert_ptr_equal(w->pack, pt);
			assert_int_equal(w->n_packed, w->n_out - w->n_out % TK_PACK_ROWS);
			assert_int_equal(w->group_bytes, pt->group_size(w->n_in));
			assert_int_equal((uintptr_t)w->packed % 64, 0);
			n++;
		}
	}
	/* token lookups keep the file rows, also when the output is tied */
	assert_null(m->tok_embd.packed);
	if (m->hp.tied_output)
		assert_ptr_equal(m->output.data, m->tok_embd.data);
	assert_int_equal(m->n_packed, n);
	return n;
}

enum { PROMPT = 21, STEPS = 4, NSEQ = 3 };

/* Logits of one run: a PROMPT-token prompt in batches of 8 (token blocks of
 * 8 and 5: full and partial TK_PACK_COLS runs), every position's logits,
 * then STEPS decode steps; then NSEQ sequences prompted in one mixed batch
 * and decoded together for STEPS steps (batched decode). out receives
 * (PROMPT + STEPS + NSEQ * (1 + STEPS)) rows of n_vocab. */
static void run_model(const struct engine_model *m, int32_t n_threads, float *out)
{
	const int32_t V = m->hp.n_vocab;
	int32_t toks[PROMPT];
	for (int32_t i = 0; i < PROMPT; i++)
		toks[i] = (int32_t)((i * 37 + 11) % V);
	struct engine_ctx *c = tk_test_engine_ctx(m, 64, 8, n_threads, 1);
	assert_int_equal(engine_ctx_eval(c, toks, PROMPT, out), 0);
	float *row = out + (size_t)PROMPT * (size_t)V;
	for (int k = 0; k < STEPS; k++, row += V) {
		int32_t t = (int32_t)((k * 13 + 3) % V);
		assert_int_equal(engine_ctx_eval(c, &t, 1, NULL), 0);
		memcpy(row, engine_ctx_logits(c), (size_t)V * sizeof(float));
	}
	engine_ctx_free(c);

	c = tk_test_engine_ctx(m, 64, 16, n_threads, NSEQ);
	int32_t bt[NSEQ * 4], bs[NSEQ * 4], n = 0;
	for (int i = 0; i < 4; i++)
		for (int s = 0; s < NSEQ; s++) {
			bt[n] = (int32_t)((s * 29 + i * 7 + 1) % V);
			bs[n++] = s;
		}
	struct engine_batch b = { .n = n, .tokens = bt, .seq = bs, .want = NULL };
	assert_int_equal(engine_ctx_decode(c, &b, row), 0);
	row += (size_t)NSEQ * V;
	for (int k = 0; k < STEPS; k++, row += (size_t)NSEQ * V) {
		for (int s = 0; s < NSEQ; s++) {
			bt[s] = (int32_t)((s * 5 + k * 19 + 2) % V);
			bs[s] = s;
		}
		b = (struct engine_batch){ .n = NSEQ, .tokens = bt, .seq = bs };
		assert_int_equal(engine_ctx_decode(c, &b, row), 0);
	}
	engine_ctx_free(c);
}

/* A model with the reference layouts forced against itself unpacked, held
 * to max relative difference tol. The packed products equal the
 * file-layout ones up to float summation order (their integer parts are
 * exact; test_split_ranges checks single products to ~1e-5 of their
 * magnitude). Through a whole model that stays near 1e-4 where activations
 * stay float (F16 weights: measured 1.1e-4 on tiny-llama-F16). Where
 * activations are quantized for the next product (Q8_0, Q8_K), a 1e-7
 * change can move one activation across a rounding boundary, a whole
 * quantization step (~1/127 of the block's largest value), and that flip
 * propagates: measured 1e-3..2e-2 on the tiny Q8_0 and Q4_K_M models,
 * the same "rounding flip" effect the golden test's bounds describe
 * (test_forward_golden.c checks the packed path against llama.cpp's logits
 * with the unpacked path's bounds). */
static void packed_vs_file(const char *path, int32_t n_threads, double tol)
{
	struct engine_model *mf = load_mode(path, ENGINE_REPACK_OFF);
	struct engine_model *mp = load_mode(path, ENGINE_REPACK_REF);
	assert_int_equal(mf->n_packed, 0);
	assert_null(mf->packed);
	const int32_t n = check_packed_set(mp);
	const size_t V = (size_t)mf->hp.n_vocab;
	const size_t rows = PROMPT + STEPS + NSEQ * (1 + STEPS);
	float *a = malloc(rows * V * sizeof(float)), *b = malloc(rows * V * sizeof(float));
	assert_true(a && b);
	run_model(mf, n_threads, a);
	run_model(mp, n_threads, b);
	double worst = 0.0;
	for (size_t r = 0; r < rows; r++) {
		double d = tk_test_rel_diff(b + r * V, a + r * V, V);
		worst = d > worst ? d : worst;
	}
	printf("packed (ref layouts) vs file %s: %d weights packed (%zu bytes), %d threads: max "
	       "rel diff %g\n", path, (int)n, mp->packed_bytes, (int)n_threads, worst);
	if (!(worst < tol))
		fail_msg("%s: packed vs file max rel diff %g (bound %g)", path, worst, tol);
	free(a);
	free(b);
	engine_model_free(mf);
	engine_model_free(mp);
}

static void test_models_packed_vs_file(void **state)
{
	(void)state;
	/* bounds: about 5x the measured worst case (see packed_vs_file).
	 * One model per layout (Q4_K_M has Q4_K and Q6_K tensors), to keep
	 * the scalar reference products affordable in debug and ASan builds;
	 * test_forward_golden runs the others' story case packed. Measured:
	 * llama Q8_0 1.1e-3, qwen2 Q8_0 9.6e-3, F16 1.4e-4, Q6_K 0, llama
	 * Q4_K_M 1.0e-2, qwen2 Q4_K_M 1.9e-2. */
	packed_vs_file(FIX_MODEL("tiny-llama-Q8_0"), 3, 5e-2);
	packed_vs_file(FIX_MODEL("tiny-llama-F16"), 2, 1e-3);
	packed_vs_file(FIX_MODEL("tiny-qwen2-Q4_K_M"), 2, 1e-1);
	packed_vs_file(FIX_MODEL("tiny-llama-f32"), 1, 1e-12); /* nothing packed */
}

/* xorshift, deterministic */
static uint32_t rng_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static float rng_float(uint32_t *s)
{
	return (float)(rng_next(s) >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

/* engine_op_matmul_run over a packed weight of n_out = 3 groups + 5 rows,
 * for row ranges that start and end inside groups, on whole groups, in the
 * tail, and the whole matrix, against the same weight unpacked; every
 * output is compared with a tolerance scaled by the sum of |terms|
 * (products in float, the same block-scale products in another order). */
static void split_case(int type, int32_t n_tok)
{
	const struct tk_pack_traits *pt = tk_pack_traits_ref(type);
	if (!pt) {
		printf("split %s: no reference layout yet, skipped\n", tk_type_name(type));
		return;
	}
	const int64_t n_in = 512, n_out = 3 * TK_PACK_ROWS + 5;
	const struct tk_type_traits *tr = tk_type_traits(type);
	size_t rb = 0;
	assert_int_equal(tk_type_row_size(type, n_in, &rb), 0);
	uint32_t seed = 0x1234567u + (uint32_t)type;
	float *wf = malloc((size_t)(n_in * n_out) * sizeof(float));
	float *x = malloc((size_t)(n_in * n_tok) * sizeof(float));
	unsigned char *wq = malloc(rb * (size_t)n_out);
	assert_true(wf && x && wq);
	for (int64_t i = 0; i < n_in * n_out; i++)
		wf[i] = rng_float(&seed);
	for (int64_t i = 0; i < n_in * n_tok; i++)
		x[i] = rng_float(&seed);
	for (int64_t r = 0; r < n_out; r++)
		tr->from_float(wf + r * n_in, wq + (size_t)r * rb, n_in);
	const size_t gb = pt->group_size(n_in);
	unsigned char *groups = aligned_alloc(64, (3 * gb + 63) / 64 * 64);
	assert_non_null(groups);
	for (int g = 0; g < 3; g++)
		pt->pack(groups + (size_t)g * gb, wq + (size_t)g * TK_PACK_ROWS * rb, rb, n_in);
	struct engine_weight file = { .data = wq, .type = type, .n_in = n_in, .n_out = n_out,
				      .row_bytes = rb };
	struct engine_weight packed = file;
	packed.packed = groups;
	packed.pack = pt;
	packed.n_packed = 3 * TK_PACK_ROWS;
	packed.group_bytes = gb;

	const size_t xrow = engine_op_matmul_scratch(type, n_in);
	assert_true(xrow > 0);
	void *scratch = malloc(xrow * (size_t)n_tok);
	float *want = malloc((size_t)(n_out * n_tok) * sizeof(float));
	float *got = malloc((size_t)(n_out * n_tok) * sizeof(float));
	float *dq = malloc((size_t)n_in * sizeof(float));
	assert_true(scratch && want && got && dq);
	const void *xq = engine_op_matmul_prepare(&file, x, n_tok, scratch);
	engine_op_matmul_run(want, &file, xq, n_tok, 0, n_out);
	/* the tolerance: sum over i of |w_i x_i| (dequantized weights) */
	double *mag = malloc((size_t)n_out * (size_t)n_tok * sizeof(double));
	assert_non_null(mag);
	for (int64_t r = 0; r < n_out; r++) {
		tr->to_float(wq + (size_t)r * rb, dq, n_in);
		for (int32_t t = 0; t < n_tok; t++) {
			double s = 0;
			for (int64_t i = 0; i < n_in; i++)
				s += fabs((double)dq[i] * (double)x[t * n_in + i]);
			mag[t * n_out + r] = s;
		}
	}
	const int64_t ranges[][2] = { { 0, n_out }, { 5, 37 }, { 16, 32 }, { 0, 16 },
				      { 40, n_out }, { 48, n_out }, { 17, 20 }, { 3, 48 } };
	for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
		const float poison = -12345.0f;
		for (int64_t i = 0; i < n_out * n_tok; i++)
			got[i] = poison;
		engine_op_matmul_run(got, &packed, xq, n_tok, ranges[k][0], ranges[k][1]);
		for (int32_t t = 0; t < n_tok; t++)
			for (int64_t r = 0; r < n_out; r++) {
				const size_t i = (size_t)(t * n_out + r);
				if (r < ranges[k][0] || r >= ranges[k][1]) {
					assert_true(got[i] == poison); /* outside: untouched */
					continue;
				}
				/* float32 sums of a few hundred terms: 1e-5 of the
				 * magnitude is ~100 ulps of slack, far below any
				 * integer or indexing error (those are O(terms)) */
				const double tol = 1e-5 * mag[i] + 1e-6;
				if (!(fabs((double)got[i] - (double)want[i]) <= tol))
					fail_msg("%s n_tok %d rows [%lld, %lld): out[%d][%lld] = %g, "
						 "file layout %g", tk_type_name(type), (int)n_tok,
						 (long long)ranges[k][0], (long long)ranges[k][1],
						 (int)t, (long long)r, (double)got[i], (double)want[i]);
			}
	}
	printf("split %s n_tok %d: every range equals the file layout\n", tk_type_name(type),
	       (int)n_tok);
	free(mag);
	free(dq);
	free(got);
	free(want);
	free(scratch);
	free(groups);
	free(wq);
	free(x);
	free(wf);
}

static void test_split_ranges(void **state)
{
	(void)state;
	const int types[] = { TK_TYPE_Q8_0, TK_TYPE_F16, TK_TYPE_Q4_K, TK_TYPE_Q6_K };
	const int32_t toks[] = { 1, 3, TK_PACK_COLS, TK_PACK_COLS + 5 };
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++)
			split_case(types[i], toks[k]);
}

/* TANUKI_NO_REPACK turns the default (AUTO) off, and only it; "0" and ""
 * count as unset. */
static void test_no_repack_env(void **state)
{
	(void)state;
	const char *path = FIX_MODEL("tiny-llama-Q8_0");
	assert_int_equal(setenv("TANUKI_NO_REPACK", "1", 1), 0);
	struct engine_model *m = engine_model_load(path);
	assert_non_null(m);
	assert_int_equal(m->n_packed, 0);
	assert_null(m->packed);
	assert_string_equal(m->pack_mode, "env-off");
	engine_model_free(m);
	m = load_mode(path, ENGINE_REPACK_REF); /* an explicit mode wins */
	assert_true(m->n_packed > 0 || !tk_pack_traits_ref(TK_TYPE_Q8_0));
	engine_model_free(m);
	assert_int_equal(setenv("TANUKI_NO_REPACK", "0", 1), 0);
	m = engine_model_load(path);
	assert_non_null(m);
	assert_string_equal(m->pack_mode, "auto");
	/* AUTO packs with the active ISA's layouts: whatever this CPU has */
	const bool fast = tk_type_traits(TK_TYPE_Q8_0)->pack != NULL;
	assert_int_equal(m->n_packed > 0, fast);
	engine_model_free(m);
	assert_int_equal(unsetenv("TANUKI_NO_REPACK"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_ranges),
		cmocka_unit_test(test_models_packed_vs_file),
		cmocka_unit_test(test_no_repack_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
