/*
 * test_forward.c — the forward pass without goldens: reference ops against
 * independent double-precision formulas, matmul per type against dequantized
 * float math, prefill-as-one-batch == token-by-token decode, context limits,
 * memory accounting, and load errors on mutated model files (unknown
 * architecture, a tensor type the engine cannot compute, a missing tensor,
 * tied embeddings).
 */
#include "testutil.h"

#include "core/err.h"
#include "engine/context.h"
#include "engine/fp16.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/ops.h"
#include "engine/quant.h"
#include "engine/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX_MODEL(name) TK_FIXTURES "/models/" name ".gguf"

static double max_diff(const float *a, const float *b, size_t n)
{
	double m = 0.0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - (double)b[i]);
		if (d > m || isnan(d))
			m = isnan(d) ? INFINITY : d;
	}
	return m;
}

/* ------------------------------------------------------------ ops */

static void test_rmsnorm_softmax_silu(void **state)
{
	(void)state;
	float x[5] = { 1.0f, -2.0f, 3.0f, 0.5f, -0.25f }, w[5] = { 1, 2, 0.5f, -1, 3 }, out[5];
	double ss = 0;
	for (int i = 0; i < 5; i++)
		ss += (double)x[i] * x[i];
	double inv = 1.0 / sqrt(ss / 5 + 1e-5);
	engine_op_rmsnorm(out, x, w, 5, 1e-5f);
	for (int i = 0; i < 5; i++)
		assert_true(fabs(out[i] - x[i] * inv * w[i]) < 1e-6);

	float s[4] = { 1.0f, 2.0f, -INFINITY, 0.0f };
	double e[4] = { exp(1.0), exp(2.0), 0.0, exp(0.0) }, z = e[0] + e[1] + e[3];
	engine_op_softmax(s, 4);
	for (int i = 0; i < 4; i++)
		assert_true(fabs(s[i] - e[i] / z) < 1e-7);

	float g[3] = { -1.0f, 0.0f, 2.0f }, u[3] = { 2.0f, 5.0f, -1.0f };
	engine_op_silu_mul(g, u, 3);
	assert_true(fabs(g[0] - (-1.0 / (1 + exp(1.0))) * 2.0) < 1e-6);
	assert_true(fabs(g[1]) < 1e-7);
	assert_true(fabs(g[2] - (2.0 / (1 + exp(-2.0))) * -1.0) < 1e-6);
}

static void test_rope_styles(void **state)
{
	(void)state;
	enum { HD = 8, NH = 2 };
	float x[NH * HD], y[NH * HD];
	for (int i = 0; i < NH * HD; i++)
		x[i] = (float)(i + 1) * 0.1f;
	const int pos = 5;
	for (int style = 0; style < 2; style++) {
		struct engine_rope r = { .style = style ? ENGINE_ROPE_NEOX : ENGINE_ROPE_NORM,
					 .n_rot = 6, .freq_base = 10000.0f, .freq_scale = 0.5f };
		memcpy(y, x, sizeof x);
		engine_op_rope(y, NH, HD, pos, &r);
		for (int h = 0; h < NH; h++) {
			const float *xh = x + h * HD, *yh = y + h * HD;
			for (int i = 0; i < 3; i++) {
				double ang = pos * 0.5 * pow(10000.0, -2.0 * i / 6);
				int a = style ? i : 2 * i, b = style ? i + 3 : 2 * i + 1;
				double ea = xh[a] * cos(ang) - xh[b] * sin(ang);
				double eb = xh[a] * sin(ang) + xh[b] * cos(ang);
				assert_true(fabs(yh[a] - ea) < 1e-5);
				assert_true(fabs(yh[b] - eb) < 1e-5);
			}
			/* dims past n_rot are untouched */
			assert_true(yh[6] == xh[6] && yh[7] == xh[7]);
		}
	}
	/* frequency factors divide each pair's angle */
	float ff[3] = { 1.0f, 2.0f, 4.0f };
	struct engine_rope r = { .style = ENGINE_ROPE_NORM, .n_rot = 6, .freq_base = 100.0f,
				 .freq_scale = 1.0f, .freq_factors = ff };
	memcpy(y, x, sizeof x);
	engine_op_rope(y, 1, HD, 3, &r);
	double ang = 3 * pow(100.0, -2.0 / 6) / 2.0;
	assert_true(fabs(y[2] - (x[2] * cos(ang) - x[3] * sin(ang))) < 1e-5);
	/* position 0 is the identity */
	memcpy(y, x, sizeof x);
	engine_op_rope(y, NH, HD, 0, &r);
	assert_true(max_diff(x, y, NH * HD) == 0.0);
}

/* matmul of each computable type against float math on dequantized weights
 * (and, for quantized activations, dequantized activations too) */
static void test_matmul_types(void **state)
{
	(void)state;
	enum { NIN = 64, NOUT = 5, NTOK = 3 };
	const int types[] = { TK_TYPE_F32, TK_TYPE_F16, TK_TYPE_BF16, TK_TYPE_Q8_0,
			      TK_TYPE_Q4_0, TK_TYPE_Q4_1, TK_TYPE_Q5_0, TK_TYPE_Q5_1 };
	float wf[NOUT * NIN], x[NTOK * NIN], y[NTOK * NOUT], wd[NOUT * NIN], xd[NIN];
	for (int i = 0; i < NOUT * NIN; i++)
		wf[i] = sinf((float)i * 0.37f);
	for (int i = 0; i < NTOK * NIN; i++)
		x[i] = cosf((float)i * 0.11f) * 2.0f;
	for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
		int t = types[k];
		if (!tk_type_can_compute(t)) {
			printf("matmul: %s not computable in this build, skipped\n", tk_type_name(t));
			continue;
		}
		const struct tk_type_traits *tr = tk_type_traits(t);
		size_t rb;
		assert_int_equal(tk_type_row_size(t, NIN, &rb), 0);
		unsigned char *wq = malloc(rb * NOUT);
		size_t sb = engine_op_matmul_scratch(t, NIN);
		assert_true(sb > 0);
		void *scratch = malloc(sb * NTOK);
		assert_true(wq && scratch);
		for (int r = 0; r < NOUT; r++)
			tr->from_float(wf + r * NIN, wq + r * rb, NIN);
		tr->to_float(wq, wd, (int64_t)NOUT * NIN / 1); /* rows are contiguous */
		struct engine_weight w = { .data = wq, .type = t, .n_in = NIN, .n_out = NOUT,
					   .row_bytes = rb };
		engine_op_matmul(y, &w, x, NTOK, scratch);
		/* activations as the kernel sees them */
		int at = t == TK_TYPE_F16 ? TK_TYPE_F32 : (int)tr->vec_dot_type;
		const struct tk_type_traits *vt = tk_type_traits(at);
		for (int tok = 0; tok < NTOK; tok++) {
			if (at == TK_TYPE_F32) {
				memcpy(xd, x + tok * NIN, sizeof xd);
			} else {
				unsigned char enc[4 * NIN];
				vt->from_float(x + tok * NIN, enc, NIN);
				vt->to_float(enc, xd, NIN);
			}
			for (int r = 0; r < NOUT; r++) {
				double ref = 0;
				for (int i = 0; i < NIN; i++)
					ref += (double)wd[r * NIN + i] * xd[i];
				if (at == TK_TYPE_Q8_1) {
					/* Q4_1/Q5_1 add each block's minimum m times the
					 * activation block's s = d * sum(q), kept as a half
					 * (quant.h): take s as stored, not as summed here */
					unsigned char enc[4 * NIN];
					vt->from_float(x + tok * NIN, enc, NIN);
					for (int b = 0; b < NIN / 32; b++) {
						const struct tk_block_q8_1 *xb =
							(const void *)(enc + b * sizeof *xb);
						const unsigned char *wb = wq + r * rb + b * tr->type_size;
						uint16_t mh;
						memcpy(&mh, wb + 2, 2); /* d, then m */
						double mm = tk_fp16_to_fp32(mh), sum_x = 0;
						for (int i = 0; i < 32; i++)
							sum_x += xd[b * 32 + i];
						ref += mm * (tk_fp16_to_fp32(xb->s) - sum_x);
					}
				}
				double got = y[tok * NOUT + r];
				if (fabs(got - ref) > 1e-4 * (1 + fabs(ref)))
					fail_msg("matmul %s: tok %d row %d: %g vs %g", tk_type_name(t),
						 tok, r, got, ref);
			}
		}
		/* a row split gives the same numbers */
		float y2[NTOK * NOUT];
		const void *xq = engine_op_matmul_prepare(&w, x, NTOK, scratch);
		engine_op_matmul_run(y2, &w, xq, NTOK, 0, 2);
		engine_op_matmul_run(y2, &w, xq, NTOK, 2, NOUT);
		assert_true(max_diff(y, y2, NTOK * NOUT) == 0.0);
		free(scratch);
		free(wq);
	}
}

static void test_attention_causal_gqa(void **state)
{
	(void)state;
	/* 2 query heads share 1 KV head; 3 positions; head_dim 4 */
	enum { HD = 4, NKV = 3 };
	float q[2 * HD] = { 1, 0, 0, 0, 0, 1, 0, 0 };
	float k[NKV * HD] = { 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0 };
	float v[NKV * HD] = { 1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4 };
	float out[2 * HD], att[NKV], qbuf[HD];
	engine_op_attention(out, q, k, v, ENGINE_KV_F32, NKV, 2, 1, HD, 0.5f, att, qbuf);
	for (int h = 0; h < 2; h++) {
		double s[NKV], z = 0;
		for (int j = 0; j < NKV; j++) {
			double d = 0;
			for (int i = 0; i < HD; i++)
				d += q[h * HD + i] * k[j * HD + i];
			s[j] = exp(d * 0.5);
			z += s[j];
		}
		for (int i = 0; i < HD; i++) {
			double e = 0;
			for (int j = 0; j < NKV; j++)
				e += s[j] / z * v[j * HD + i];
			assert_true(fabs(out[h * HD + i] - e) < 1e-5);
		}
	}
	/* one visible position: the output is that position's value */
	engine_op_attention(out, q, k, v, ENGINE_KV_F32, 1, 2, 1, HD, 0.5f, att, qbuf);
	for (int i = 0; i < HD; i++)
		assert_true(fabs(out[i] - v[i]) < 1e-6 && fabs(out[HD + i] - v[i]) < 1e-6);
}

/* ------------------------------------------------------------ model */

static void test_hparams_and_memory(void **state)
{
	(void)state;
	struct engine_model *m = tk_test_engine_model(FIX_MODEL("tiny-llama-f32"));
	const struct engine_hparams *hp = &m->hp;
	assert_string_equal(m->arch->name, "llama");
	assert_int_equal(hp->n_embd, 256);
	assert_int_equal(hp->n_layer, 2);
	assert_int_equal(hp->n_head, 4);
	assert_int_equal(hp->n_head_kv, 2);
	assert_int_equal(hp->head_dim, 64);
	assert_int_equal(hp->n_rot, 64);
	assert_int_equal(hp->n_ff, 512);
	assert_int_equal(hp->n_vocab, 512);
	assert_int_equal(hp->n_ctx_train, 256);
	assert_true(fabsf(hp->rms_eps - 1e-5f) < 1e-9f);
	assert_true(hp->rope_freq_base == 10000.0f);
	assert_false(hp->tied_output);
	/* every tensor of the file is bound, so the weights are all of them */
	size_t sum = 0;
	for (size_t i = 0; i < tk_gguf_tensor_count(m->gguf); i++)
		sum += tk_gguf_tensor_at(m->gguf, i)->nbytes;
	assert_int_equal(m->weights_bytes, sum);

	struct engine_ctx *c = tk_test_engine_ctx(m, 100, 10, 1, 1);
	struct engine_mem mem;
	engine_ctx_mem(c, &mem);
	assert_int_equal(mem.weights_bytes, sum);
	assert_int_equal(mem.kv_bytes, (size_t)2 * 2 * 100 * (2 * 64) * sizeof(uint16_t));
	assert_true(mem.scratch_bytes >= (size_t)10 * 256 * sizeof(float));
	engine_ctx_free(c);

	struct engine_model *q = tk_test_engine_model(FIX_MODEL("tiny-qwen2-f32"));
	assert_string_equal(q->arch->name, "qwen2");
	assert_true(q->arch->rope_style == ENGINE_ROPE_NEOX);
	assert_non_null(q->layers[1].bq);
	assert_null(m->layers[1].bq);
	engine_model_free(q);
	engine_model_free(m);
}

/* Evaluates toks[0..n) in one batch and one token at a time; the logits of
 * every position must agree. */
static void batch_vs_decode(const char *path, int32_t n_threads)
{
	struct engine_model *m = tk_test_engine_model(path);
	const int32_t V = m->hp.n_vocab;
	enum { N = 24 };
	int32_t toks[N];
	for (int i = 0; i < N; i++)
		toks[i] = (i * 37 + 1) % V;
	float *all = malloc((size_t)N * V * sizeof(float));
	float *seq = malloc((size_t)N * V * sizeof(float));
	float *split = malloc((size_t)N * V * sizeof(float));
	assert_true(all && seq && split);

	struct engine_ctx *c = tk_test_engine_ctx(m, 64, 32, n_threads, 1);
	assert_int_equal(engine_ctx_eval(c, toks, N, all), 0);
	assert_int_equal(engine_ctx_n_past(c), N);
	assert_true(max_diff(engine_ctx_logits(c), all + (size_t)(N - 1) * V, V) == 0.0);
	engine_ctx_free(c);

	c = tk_test_engine_ctx(m, 64, 1, 1, 1);
	for (int i = 0; i < N; i++) {
		assert_int_equal(engine_ctx_eval(c, &toks[i], 1, NULL), 0);
		memcpy(seq + (size_t)i * V, engine_ctx_logits(c), (size_t)V * sizeof(float));
	}
	double d = max_diff(all, seq, (size_t)N * V);
	printf("batch vs decode %s threads %d: max diff %g\n", path, n_threads, d);
	assert_true(d < 1e-5);

	/* uneven batches (n_batch 7) and a rewind give the same again */
	engine_ctx_free(c);
	c = tk_test_engine_ctx(m, 64, 7, 1, 1);
	assert_int_equal(engine_ctx_eval(c, toks, 10, split), 0);
	assert_int_equal(engine_ctx_rewind(c, 6), 0);
	assert_int_equal(engine_ctx_eval(c, toks + 6, N - 6, split + (size_t)6 * V), 0);
	assert_true(max_diff(all, split, (size_t)N * V) < 1e-5);
	assert_int_equal(engine_ctx_rewind(c, N + 1), TK_EINVAL);
	engine_ctx_free(c);
	free(all);
	free(seq);
	free(split);
	engine_model_free(m);
}

static void test_batch_equals_decode(void **state)
{
	(void)state;
	batch_vs_decode(FIX_MODEL("tiny-llama-f32"), 1);
	batch_vs_decode(FIX_MODEL("tiny-qwen2-f32"), 1);
	batch_vs_decode(FIX_MODEL("tiny-llama-Q8_0"), 2); /* threads split rows */
	batch_vs_decode(FIX_MODEL("tiny-llama-F16"), 3);
	batch_vs_decode(FIX_MODEL("tiny-qwen2-Q8_0"), 0); /* 0: physical cores */
}

static void test_context_limits(void **state)
{
	(void)state;
	struct engine_model *m = tk_test_engine_model(FIX_MODEL("tiny-llama-f32"));
	struct engine_ctx *c = tk_test_engine_ctx(m, 8, 4, 1, 1);
	int32_t toks[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	assert_null(engine_ctx_logits(c));
	assert_int_equal(engine_ctx_eval(c, toks, 9, NULL), TK_ELIMIT);
	assert_non_null(strstr(tk_err_detail(), "context size 8"));
	assert_int_equal(engine_ctx_n_past(c), 0);
	assert_int_equal(engine_ctx_eval(c, toks, 8, NULL), 0);
	assert_int_equal(engine_ctx_eval(c, toks, 1, NULL), TK_ELIMIT);
	assert_int_equal(engine_ctx_n_past(c), 8);
	assert_int_equal(engine_ctx_rewind(c, 0), 0);
	int32_t bad[2] = { 1, 512 };
	assert_int_equal(engine_ctx_eval(c, bad, 2, NULL), TK_EINVAL);
	bad[1] = -1;
	assert_int_equal(engine_ctx_eval(c, bad, 2, NULL), TK_EINVAL);
	assert_int_equal(engine_ctx_eval(c, bad, 0, NULL), TK_EINVAL);
	assert_int_equal(engine_ctx_n_past(c), 0);
	engine_ctx_free(c);

	struct engine_ctx_params p;
	engine_ctx_params_default(&p);
	p.n_ctx = 4;
	p.n_batch = 5; /* larger than n_ctx */
	assert_null(engine_ctx_new(m, &p));
	assert_int_equal(tk_err_last(), TK_EINVAL);
	p.n_batch = 0;
	p.n_threads = ENGINE_MAX_THREADS + 1;
	assert_null(engine_ctx_new(m, &p));
	/* n_ctx 0 takes the model's training context */
	p.n_threads = 1;
	p.n_ctx = 0;
	c = engine_ctx_new(m, &p);
	assert_non_null(c);
	assert_int_equal(engine_ctx_n_ctx(c), 256);
	engine_ctx_free(c);
	engine_model_free(m);
}

/* ------------------------------------------------- mutated model files */

enum mutation { MUT_ARCH, MUT_TYPE, MUT_DROP_OUTPUT, MUT_DROP_FFN, MUT_NORM_F16,
		MUT_OUTPUT_IS_EMBD, MUT_KV, MUT_ROPE_FREQS };
static float rope_freqs_value; /* what MUT_ROPE_FREQS fills rope_freqs.weight with */

/* One metadata edit for MUT_KV: key set to a u32, a string or a float. */
struct kv_edit {
	const char *key;
	char kind; /* 'u', 's', 'f' */
	uint32_t u;
	const char *s;
	float f;
	int want_rc;       /* expected load error */
	const char *want;  /* substring of the detail */
};
static const struct kv_edit *cur_edit; /* the edits write_mutant applies */
static size_t cur_n_edits;

struct copy_ctx {
	struct tk_gguf *src;
	enum mutation mut;
};

static bool is_target(enum mutation mut, const char *name)
{
	return (mut == MUT_TYPE && !strcmp(name, "blk.1.attn_q.weight")) ||
	       (mut == MUT_NORM_F16 && !strcmp(name, "blk.0.ffn_norm.weight"));
}

static int fill_copy(void *vctx, size_t i, const struct tk_gguf_tensor *info, void *buf,
		     size_t nbytes)
{
	(void)i;
	struct copy_ctx *cc = vctx;
	if (!strcmp(info->name, "rope_freqs.weight")) {
		float *f = buf;
		for (size_t k = 0; k < nbytes / sizeof *f; k++)
			f[k] = rope_freqs_value;
		return 0;
	}
	const char *from = info->name;
	if (cc->mut == MUT_OUTPUT_IS_EMBD && !strcmp(from, "output.weight"))
		from = "token_embd.weight"; /* same shape and type in this fixture */
	const struct tk_gguf_tensor *t = tk_gguf_find_tensor(cc->src, from);
	if (is_target(cc->mut, info->name) || !t || t->nbytes != nbytes)
		memset(buf, 0, nbytes);
	else
		memcpy(buf, t->data, nbytes);
	return 0;
}

/* Writes a copy of tiny-llama-f32 with one mutation into dir; returns the
 * path in out. */
static void write_mutant(const char *dir, enum mutation mut, char *out, size_t cap)
{
	struct tk_gguf *src = tk_gguf_open(FIX_MODEL("tiny-llama-f32"));
	assert_non_null(src);
	struct tk_gguf_writer *w = tk_gguf_writer_new();
	assert_non_null(w);
	for (size_t i = 0; i < tk_gguf_kv_count(src); i++)
		assert_int_equal(tk_gguf_writer_copy_kv(w, tk_gguf_kv_at(src, i)), 0);
	if (mut == MUT_ARCH)
		assert_int_equal(tk_gguf_writer_set_str(w, "general.architecture", "gpt2"), 0);
	for (size_t k = 0; mut == MUT_KV && k < cur_n_edits; k++) {
		const struct kv_edit *e = &cur_edit[k];
		int rc = e->kind == 'u'   ? tk_gguf_writer_set_u32(w, e->key, e->u)
			 : e->kind == 's' ? tk_gguf_writer_set_str(w, e->key, e->s)
					  : tk_gguf_writer_set_f32(w, e->key, e->f);
		assert_int_equal(rc, 0);
	}
	for (size_t i = 0; i < tk_gguf_tensor_count(src); i++) {
		const struct tk_gguf_tensor *t = tk_gguf_tensor_at(src, i);
		if ((mut == MUT_DROP_OUTPUT && !strcmp(t->name, "output.weight")) ||
		    (mut == MUT_DROP_FFN && !strcmp(t->name, "blk.1.ffn_up.weight")))
			continue;
		int type = t->type;
		if (is_target(mut, t->name))
			type = mut == MUT_TYPE ? TK_TYPE_I32 : TK_TYPE_F16;
		assert_int_equal(tk_gguf_writer_add_tensor(w, t->name, type, t->n_dims, t->ne), 0);
	}
	if (mut == MUT_ROPE_FREQS) {
		const int64_t ne[1] = { 32 }; /* n_rot / 2 */
		assert_int_equal(tk_gguf_writer_add_tensor(w, "rope_freqs.weight", TK_TYPE_F32, 1,
							   ne), 0);
	}
	snprintf(out, cap, "%s/mut%d.gguf", dir, (int)mut);
	struct copy_ctx cc = { .src = src, .mut = mut };
	if (tk_gguf_writer_write(w, out, fill_copy, &cc))
		fail_msg("write %s: %s", out, tk_err_detail());
	tk_gguf_writer_free(w);
	tk_gguf_close(src);
}

static void test_load_errors(void **state)
{
	(void)state;
	char dir[256], path[512];
	tk_test_mkdtemp(dir, sizeof dir);

	write_mutant(dir, MUT_ARCH, path, sizeof path);
	assert_null(engine_model_load(path));
	assert_int_equal(tk_err_last(), TK_EUNSUPPORTED);
	assert_non_null(strstr(tk_err_detail(), "architecture 'gpt2' is not supported"));

	write_mutant(dir, MUT_TYPE, path, sizeof path);
	assert_null(engine_model_load(path));
	assert_int_equal(tk_err_last(), TK_EUNSUPPORTED);
	assert_non_null(strstr(tk_err_detail(), "blk.1.attn_q.weight"));
	assert_non_null(strstr(tk_err_detail(), "i32"));

	write_mutant(dir, MUT_NORM_F16, path, sizeof path);
	assert_null(engine_model_load(path));
	assert_int_equal(tk_err_last(), TK_EUNSUPPORTED);
	assert_non_null(strstr(tk_err_detail(), "blk.0.ffn_norm.weight"));

	write_mutant(dir, MUT_DROP_FFN, path, sizeof path);
	assert_null(engine_model_load(path));
	assert_int_equal(tk_err_last(), TK_EFORMAT);
	assert_non_null(strstr(tk_err_detail(), "'blk.1.ffn_up.weight' is missing"));

	/* without output.weight the logits come from token_embd (tied) */
	write_mutant(dir, MUT_DROP_OUTPUT, path, sizeof path);
	struct engine_model *m = tk_test_engine_model(path);
	assert_true(m->hp.tied_output);
	assert_ptr_equal(m->output.data, m->tok_embd.data);
	struct engine_ctx *c = tk_test_engine_ctx(m, 16, 0, 1, 1);
	int32_t toks[3] = { 1, 300, 273 };
	assert_int_equal(engine_ctx_eval(c, toks, 3, NULL), 0);
	float tied[512];
	assert_int_equal(m->hp.n_vocab, 512);
	memcpy(tied, engine_ctx_logits(c), sizeof tied);
	engine_ctx_free(c);
	engine_model_free(m);
	/* ... which must be exactly what an explicit copy of token_embd as
	 * output.weight gives */
	write_mutant(dir, MUT_OUTPUT_IS_EMBD, path, sizeof path);
	m = tk_test_engine_model(path);
	assert_false(m->hp.tied_output);
	c = tk_test_engine_ctx(m, 16, 0, 1, 1);
	assert_int_equal(engine_ctx_eval(c, toks, 3, NULL), 0);
	assert_true(max_diff(tied, engine_ctx_logits(c), 512) == 0.0);
	engine_ctx_free(c);
	engine_model_free(m);

	assert_null(engine_model_load(TK_FIXTURES "/models/does-not-exist.gguf"));
	assert_non_null(strstr(tk_err_detail(), "does-not-exist.gguf"));
	tk_test_rmtree(dir);
}

/* Hyperparameters that do not fit the tensors, or make no sense, are load
 * errors naming the key or the tensor, never a crash. */
static void test_bad_hparams(void **state)
{
	(void)state;
	static const struct kv_edit edits[] = {
		{ "llama.attention.head_count_kv", 'u', 3, NULL, 0, TK_EFORMAT, "multiple of" },
		{ "llama.attention.head_count_kv", 'u', 8, NULL, 0, TK_EFORMAT, "head_count_kv" },
		{ "llama.attention.head_count", 'u', 0, NULL, 0, TK_EFORMAT, "head_count" },
		{ "llama.embedding_length", 'u', 128, NULL, 0, TK_EFORMAT, "token_embd.weight" },
		{ "llama.block_count", 'u', 3, NULL, 0, TK_EFORMAT, "blk.2.attn_norm.weight" },
		{ "llama.block_count", 'u', 1u << 30, NULL, 0, TK_EFORMAT, "block_count" },
		{ "llama.context_length", 'u', 0, NULL, 0, TK_EFORMAT, "context_length" },
		{ "llama.feed_forward_length", 'u', 511, NULL, 0, TK_EFORMAT, "ffn_gate.weight" },
		{ "llama.rope.dimension_count", 'u', 63, NULL, 0, TK_EFORMAT, "odd" },
		{ "llama.rope.dimension_count", 'u', 65, NULL, 0, TK_EFORMAT, "dimension_count" },
		{ "llama.rope.scaling.type", 's', 0, "yarn", 0, TK_EUNSUPPORTED, "yarn" },
		{ "llama.attention.layer_norm_rms_epsilon", 'f', 0, NULL, -1.0f, TK_EFORMAT, "epsilon" },
		{ "llama.embedding_length", 's', 0, "256", 0, TK_EFORMAT, "embedding_length" },
		{ "general.architecture", 'u', 7, NULL, 0, TK_EFORMAT, "general.architecture" },
	};
	char dir[256], path[512];
	tk_test_mkdtemp(dir, sizeof dir);
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		cur_edit = &edits[i];
		cur_n_edits = 1;
		write_mutant(dir, MUT_KV, path, sizeof path);
		struct engine_model *m = engine_model_load(path);
		if (m || tk_err_last() != edits[i].want_rc ||
		    !strstr(tk_err_detail(), edits[i].want))
			fail_msg("edit %zu (%s): loaded %d, code %d, detail '%s'", i, edits[i].key,
				 m != NULL, tk_err_last(), tk_err_detail());
	}
	/* linear RoPE scaling is read: factor 4 -> freq_scale 1/4 */
	static const struct kv_edit lin[] = {
		{ "llama.rope.scaling.type", 's', 0, "linear", 0, 0, NULL },
		{ "llama.rope.scaling.factor", 'f', 0, NULL, 4.0f, 0, NULL },
	};
	cur_edit = lin;
	cur_n_edits = 1; /* type alone: factor defaults to 1, i.e. none */
	write_mutant(dir, MUT_KV, path, sizeof path);
	struct engine_model *m = tk_test_engine_model(path);
	assert_int_equal(m->hp.rope_scaling, ENGINE_ROPE_SCALING_NONE);
	engine_model_free(m);
	cur_n_edits = 2;
	write_mutant(dir, MUT_KV, path, sizeof path);
	m = tk_test_engine_model(path);
	assert_int_equal(m->hp.rope_scaling, ENGINE_ROPE_SCALING_LINEAR);
	struct engine_rope r;
	engine_model_rope(m, &r);
	assert_true(r.freq_scale == 0.25f);
	/* and it changes the logits (positions are compressed) */
	struct engine_model *base = tk_test_engine_model(FIX_MODEL("tiny-llama-f32"));
	struct engine_ctx *c1 = tk_test_engine_ctx(m, 8, 0, 1, 1);
	struct engine_ctx *c2 = tk_test_engine_ctx(base, 8, 0, 1, 1);
	int32_t toks[4] = { 1, 300, 273, 262 };
	assert_int_equal(engine_ctx_eval(c1, toks, 4, NULL), 0);
	assert_int_equal(engine_ctx_eval(c2, toks, 4, NULL), 0);
	assert_true(max_diff(engine_ctx_logits(c1), engine_ctx_logits(c2), 512) > 1e-4);
	float linear2[512];
	engine_ctx_free(c1);
	engine_model_free(m);
	/* Llama 3 style rope_freqs: every pair's angle divided by 2 is exactly
	 * linear scaling by 2 (both halve the angle, exactly, in float) */
	static const struct kv_edit lin2[] = {
		{ "llama.rope.scaling.type", 's', 0, "linear", 0, 0, NULL },
		{ "llama.rope.scaling.factor", 'f', 0, NULL, 2.0f, 0, NULL },
	};
	cur_edit = lin2;
	cur_n_edits = 2;
	write_mutant(dir, MUT_KV, path, sizeof path);
	m = tk_test_engine_model(path);
	c1 = tk_test_engine_ctx(m, 8, 0, 1, 1);
	assert_int_equal(engine_ctx_eval(c1, toks, 4, NULL), 0);
	memcpy(linear2, engine_ctx_logits(c1), sizeof linear2);
	engine_ctx_free(c1);
	engine_model_free(m);
	rope_freqs_value = 2.0f;
	write_mutant(dir, MUT_ROPE_FREQS, path, sizeof path);
	m = tk_test_engine_model(path);
	assert_true(m->hp.has_rope_freqs);
	c1 = tk_test_engine_ctx(m, 8, 0, 1, 1);
	assert_int_equal(engine_ctx_eval(c1, toks, 4, NULL), 0);
	assert_true(max_diff(linear2, engine_ctx_logits(c1), 512) == 0.0);
	assert_true(max_diff(engine_ctx_logits(c2), engine_ctx_logits(c1), 512) > 1e-4);
	engine_ctx_free(c1);
	engine_model_free(m);
	/* a zero factor would divide by zero: refused at load */
	rope_freqs_value = 0.0f;
	write_mutant(dir, MUT_ROPE_FREQS, path, sizeof path);
	assert_null(engine_model_load(path));
	assert_non_null(strstr(tk_err_detail(), "rope_freqs.weight[0]"));
	engine_ctx_free(c2);
	engine_model_free(base);
	tk_test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rmsnorm_softmax_silu),
		cmocka_unit_test(test_rope_styles),
		cmocka_unit_test(test_matmul_types),
		cmocka_unit_test(test_attention_causal_gqa),
		cmocka_unit_test(test_hparams_and_memory),
		cmocka_unit_test(test_batch_equals_decode),
		cmocka_unit_test(test_context_limits),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_bad_hparams),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
