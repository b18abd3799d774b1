/*
 * test_lora.c — LoRA adapters (src/engine/lora.h and the context hook):
 *   - llama.cpp's LoRA goldens (tiny-llama f32 with coder@1.0, coder@0.5,
 *     reviewer@1.0; prefill, then greedy decode one token at a time);
 *   - two contexts over one model, interleaved token by token, each with its
 *     own adapter (and a third with none), each matching its own golden;
 *   - run-time application against a merged-weights reference built here in
 *     double precision, for several base types and ranks, with two adapters
 *     at once; engine_lora_merge_write against the same reference;
 *   - hostile and mismatched adapters refused with the right code.
 *
 * Measured (gcc Debug, docs/lora.md): goldens max_abs <= 2.2e-4, mean_abs
 * <= 6e-6 — the f32 base model's own numbers; run-time vs merged reference
 * max_abs <= 1.2e-5 on logits of magnitude ~1. Bounds below are ~4x those.
 */
#include "testutil.h"

#include "core/err.h"
#include "engine/context.h"
#include "engine/gguf.h"
#include "engine/lora.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/sampler.h"
#include "engine/synth.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOLD_MAX 6e-3
#define GOLD_MEAN 2e-4
#define MERGE_MAX 1e-4

static const char *fixture(const char *name, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/models/%s", TK_FIXTURES, name);
	return buf;
}

/* ------------------------------------------------ goldens */

struct golden {
	int32_t *prompt;
	size_t n_prompt;
	int32_t *greedy;
	size_t n_greedy;
	float *logits; /* [n_prompt][n_vocab] */
};

static void golden_load(struct golden *g, const char *cs, const char *lora, int32_t n_vocab)
{
	char path[512];
	snprintf(path, sizeof path, "%s/golden/tiny-llama-f32.%s.%s.json", TK_FIXTURES, cs, lora);
	json_error_t jerr;
	json_t *j = json_load_file(path, 0, &jerr);
	if (!j)
		fail_msg("%s: %s", path, jerr.text);
	assert_int_equal(json_integer_value(json_object_get(j, "logits_from_position")), 0);
	json_t *p = json_object_get(j, "prompt"), *gr = json_object_get(j, "greedy");
	json_t *rows = json_object_get(j, "logits");
	g->n_prompt = json_array_size(p);
	g->n_greedy = json_array_size(gr);
	assert_true(g->n_prompt > 0 && g->n_greedy > 0);
	assert_int_equal(json_array_size(rows), g->n_prompt);
	g->prompt = malloc(g->n_prompt * sizeof(int32_t));
	g->greedy = malloc(g->n_greedy * sizeof(int32_t));
	g->logits = malloc(g->n_prompt * (size_t)n_vocab * sizeof(float));
	assert_true(g->prompt && g->greedy && g->logits);
	for (size_t i = 0; i < g->n_prompt; i++)
		g->prompt[i] = (int32_t)json_integer_value(json_array_get(p, i));
	for (size_t i = 0; i < g->n_greedy; i++)
		g->greedy[i] = (int32_t)json_integer_value(json_array_get(gr, i));
	for (size_t r = 0; r < g->n_prompt; r++) {
		json_t *row = json_array_get(rows, r);
		assert_int_equal(json_array_size(row), (size_t)n_vocab);
		for (int32_t i = 0; i < n_vocab; i++)
			g->logits[r * (size_t)n_vocab + (size_t)i] =
				(float)json_number_value(json_array_get(row, (size_t)i));
	}
	json_decref(j);
}

static void golden_free(struct golden *g)
{
	free(g->prompt);
	free(g->greedy);
	free(g->logits);
}

/* max and sum of |a - b| over n floats, accumulated into *max / *sum */
static void diff_acc(const float *a, const float *b, size_t n, double *max, double *sum)
{
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - (double)b[i]);
		if (d > *max)
			*max = d;
		*sum += d;
	}
}

/* Greedy continuation from c's current logits must equal g's (or part at a
 * near-tie smaller than GOLD_MAX). Returns tokens that agreed. */
static size_t check_greedy(struct engine_ctx *c, const struct golden *g, int32_t n_vocab,
			   const char *what)
{
	size_t same = 0;
	int32_t tok = engine_argmax(engine_ctx_logits(c), n_vocab);
	for (size_t i = 0; i < g->n_greedy; i++) {
		if (tok != g->greedy[i]) {
			const float *l = engine_ctx_logits(c);
			if (fabs((double)l[tok] - (double)l[g->greedy[i]]) >= GOLD_MAX)
				fail_msg("%s: greedy token %zu is %d, llama.cpp %d", what, i, tok,
					 g->greedy[i]);
			break;
		}
		same++;
		if (i + 1 < g->n_greedy) {
			assert_int_equal(engine_ctx_eval(c, &tok, 1, NULL), 0);
			tok = engine_argmax(engine_ctx_logits(c), n_vocab);
		}
	}
	return same;
}

struct gcase {
	const char *adapter; /* fixture file */
	const char *tag;     /* golden suffix */
	float scale;
};

static const struct gcase gcases[] = {
	{ "tiny-llama-lora-coder.gguf", "tiny-llama-lora-coder@1.0", 1.0f },
	{ "tiny-llama-lora-coder.gguf", "tiny-llama-lora-coder@0.5", 0.5f },
	{ "tiny-llama-lora-reviewer.gguf", "tiny-llama-lora-reviewer@1.0", 1.0f },
};

static void test_goldens(void **state)
{
	(void)state;
	char path[512];
	struct engine_model *m = engine_model_load(fixture("tiny-llama-f32.gguf", path, sizeof path));
	if (!m)
		fail_msg("%s", tk_err_detail());
	const int32_t nv = m->hp.n_vocab;
	const char *cases[] = { "story", "random64" };
	for (size_t k = 0; k < sizeof gcases / sizeof gcases[0]; k++) {
		struct engine_lora *a = engine_lora_load(fixture(gcases[k].adapter, path, sizeof path), m);
		if (!a)
			fail_msg("%s", tk_err_detail());
		for (size_t ci = 0; ci < 2; ci++) {
			struct golden g;
			golden_load(&g, cases[ci], gcases[k].tag, nv);
			struct engine_ctx_params cp;
			engine_ctx_params_default(&cp);
			cp.n_ctx = (int32_t)(g.n_prompt + g.n_greedy);
			struct engine_ctx *c = engine_ctx_new(m, &cp);
			assert_non_null(c);
			struct engine_lora_use u = { a, gcases[k].scale };
			assert_int_equal(engine_ctx_set_adapters(c, &u, 1), 0);
			float *ours = malloc(g.n_prompt * (size_t)nv * sizeof(float));
			assert_non_null(ours);
			assert_int_equal(engine_ctx_eval(c, g.prompt, (int32_t)g.n_prompt, ours), 0);
			double max = 0, sum = 0;
			diff_acc(ours, g.logits, g.n_prompt * (size_t)nv, &max, &sum);
			double mean = sum / (double)(g.n_prompt * (size_t)nv);
			char what[128];
			snprintf(what, sizeof what, "%s %s", gcases[k].tag, cases[ci]);
			size_t same = check_greedy(c, &g, nv, what);
			printf("lora golden %-30s %-8s max_abs %.3g mean_abs %.3g greedy %zu/%zu\n",
			       gcases[k].tag, cases[ci], max, mean, same, g.n_greedy);
			if (max > GOLD_MAX || mean > GOLD_MEAN)
				fail_msg("%s: max_abs %.3g mean_abs %.3g", what, max, mean);
			/* the adapter matters: the base model's logits are far off */
			assert_int_equal(engine_ctx_set_adapters(c, NULL, 0), 0);
			assert_int_equal(engine_ctx_rewind(c, 0), 0);
			assert_int_equal(engine_ctx_eval(c, g.prompt, (int32_t)g.n_prompt, ours), 0);
			double bmax = 0, bsum = 0;
			diff_acc(ours, g.logits, g.n_prompt * (size_t)nv, &bmax, &bsum);
			printf("lora golden %-30s %-8s (no adapter: max_abs %.3g)\n", gcases[k].tag,
			       cases[ci], bmax);
			assert_true(bmax > 10 * GOLD_MAX);
			free(ours);
			engine_ctx_free(c);
			golden_free(&g);
		}
		engine_lora_free(a);
	}
	fflush(stdout);
	engine_model_free(m);
}

/* Two contexts (coder@1.0, reviewer@1.0) and a third with none, fed the
 * story prompt one token at a time in turn: every position's logits match
 * that context's own golden. */
static void test_interleaved(void **state)
{
	(void)state;
	char path[512];
	struct engine_model *m = engine_model_load(fixture("tiny-llama-f32.gguf", path, sizeof path));
	assert_non_null(m);
	const int32_t nv = m->hp.n_vocab;
	struct engine_lora *coder = engine_lora_load(fixture("tiny-llama-lora-coder.gguf", path,
							     sizeof path), m);
	struct engine_lora *rev = engine_lora_load(fixture("tiny-llama-lora-reviewer.gguf", path,
							   sizeof path), m);
	assert_true(coder && rev);
	struct golden g[3];
	golden_load(&g[0], "story", "tiny-llama-lora-coder@1.0", nv);
	golden_load(&g[1], "story", "tiny-llama-lora-reviewer@1.0", nv);
	{
		/* the base golden has no adapter suffix */
		char p2[512];
		snprintf(p2, sizeof p2, "%s/golden/tiny-llama-f32.story.json", TK_FIXTURES);
		json_error_t jerr;
		json_t *j = json_load_file(p2, 0, &jerr);
		assert_non_null(j);
		json_t *rows = json_object_get(j, "logits");
		g[2].n_prompt = g[0].n_prompt;
		g[2].prompt = NULL;
		g[2].greedy = NULL;
		g[2].logits = malloc(g[2].n_prompt * (size_t)nv * sizeof(float));
		assert_non_null(g[2].logits);
		assert_int_equal(json_array_size(rows), g[2].n_prompt);
		for (size_t r = 0; r < g[2].n_prompt; r++)
			for (int32_t i = 0; i < nv; i++)
				g[2].logits[r * (size_t)nv + (size_t)i] = (float)json_number_value(
					json_array_get(json_array_get(rows, r), (size_t)i));
		json_decref(j);
	}
	assert_int_equal(g[0].n_prompt, g[1].n_prompt);
	assert_memory_equal(g[0].prompt, g[1].prompt, g[0].n_prompt * sizeof(int32_t));
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = 64;
	struct engine_ctx *c[3];
	struct engine_lora_use uses[2] = { { coder, 1.0f }, { rev, 1.0f } };
	for (int i = 0; i < 3; i++) {
		c[i] = engine_ctx_new(m, &cp);
		assert_non_null(c[i]);
		if (i < 2)
			assert_int_equal(engine_ctx_set_adapters(c[i], &uses[i], 1), 0);
	}
	double max[3] = { 0, 0, 0 }, sum[3] = { 0, 0, 0 };
	for (size_t t = 0; t < g[0].n_prompt; t++)
		for (int i = 0; i < 3; i++) {
			assert_int_equal(engine_ctx_eval(c[i], &g[0].prompt[t], 1, NULL), 0);
			diff_acc(engine_ctx_logits(c[i]), g[i].logits + t * (size_t)nv, (size_t)nv,
				 &max[i], &sum[i]);
		}
	for (int i = 0; i < 3; i++) {
		printf("lora interleaved ctx %d max_abs %.3g\n", i, max[i]);
		if (max[i] > GOLD_MAX)
			fail_msg("context %d: max_abs %.3g", i, max[i]);
	}
	for (int i = 0; i < 3; i++) {
		engine_ctx_free(c[i]);
		golden_free(&g[i]);
	}
	engine_lora_free(coder);
	engine_lora_free(rev);
	engine_model_free(m);
}

/* ------------------------------------------------ synthetic adapters */

static uint64_t rng_state;

static double rnd(void) /* uniform in [-1, 1) */
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (double)(rng_state >> 11) / (double)(1ULL << 53) * 2.0 - 1.0;
}

struct tspec {
	char name[96];
	int type;
	int64_t ne[2];
	float amp;
};

struct awrite {
	const struct tspec *t;
	size_t n;
	uint64_t seed;
};

static int adapter_fill(void *vctx, size_t i, const struct tk_gguf_tensor *info, void *buf,
			size_t nbytes)
{
	struct awrite *w = vctx;
	(void)nbytes;
	rng_state = w->seed * 1000003u + i;
	size_t n = (size_t)info->ne[0] * (size_t)info->ne[1];
	float *f = malloc(n * sizeof(float));
	assert_non_null(f);
	for (size_t k = 0; k < n; k++)
		f[k] = (float)(rnd() * w->t[i].amp);
	if (info->type == TK_TYPE_F32) {
		memcpy(buf, f, n * sizeof(float));
	} else {
		size_t rb = 0;
		assert_int_equal(tk_type_row_size(info->type, info->ne[0], &rb), 0);
		for (int64_t r = 0; r < info->ne[1]; r++)
			tk_type_traits(info->type)->from_float(f + (size_t)r * (size_t)info->ne[0],
							       (char *)buf + (size_t)r * rb,
							       info->ne[0]);
	}
	free(f);
	return 0;
}

/* Writes an adapter; arch NULL leaves general.architecture out; alpha < 0
 * leaves adapter.lora.alpha out; gtype is general.type. */
static void write_adapter(const char *path, const char *arch, const char *gtype, float alpha,
			  const struct tspec *t, size_t n, uint64_t seed)
{
	struct tk_gguf_writer *w = tk_gguf_writer_new();
	assert_non_null(w);
	if (arch)
		assert_int_equal(tk_gguf_writer_set_str(w, "general.architecture", arch), 0);
	assert_int_equal(tk_gguf_writer_set_str(w, "general.type", gtype), 0);
	assert_int_equal(tk_gguf_writer_set_str(w, "adapter.type", "lora"), 0);
	if (alpha >= 0)
		assert_int_equal(tk_gguf_writer_set_f32(w, "adapter.lora.alpha", alpha), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(tk_gguf_writer_add_tensor(w, t[i].name, t[i].type, 2, t[i].ne), 0);
	struct awrite aw = { t, n, seed };
	assert_int_equal(tk_gguf_writer_write(w, path, adapter_fill, &aw), 0);
	tk_gguf_writer_free(w);
}

/* Adds the pair for base tensor `base` ([n_in, n_out]) at rank r. */
static size_t add_pair(struct tspec *t, size_t n, const char *base, int64_t n_in, int64_t n_out,
		       int64_t r, int type, float amp)
{
	snprintf(t[n].name, sizeof t[n].name, "%s.lora_a", base);
	t[n].type = type;
	t[n].ne[0] = n_in;
	t[n].ne[1] = r;
	t[n].amp = amp;
	snprintf(t[n + 1].name, sizeof t[n + 1].name, "%s.lora_b", base);
	t[n + 1].type = type;
	t[n + 1].ne[0] = r;
	t[n + 1].ne[1] = n_out;
	t[n + 1].amp = amp;
	return n + 2;
}

/* ------------------------------------------------ merged reference */

/* The reference: a copy of the base model with every tensor dequantized to
 * float32 (so no activation rounding of a quantized type can amplify a
 * last-bit difference), in which, with merge = true, each weight an adapter
 * touches is W + sum s B A, computed here in double from the adapter files
 * themselves (read through gguf.h, not lora.c); merge = false gives the
 * dequantized base the run-time path is compared on. */
struct ref_job {
	struct tk_gguf *base;
	struct tk_gguf *ad[2];
	float scale[2]; /* effective */
	size_t n_ad;
	bool merge;
};

static const struct tk_gguf_tensor *ad_half(struct tk_gguf *g, const char *base, char ab)
{
	char nm[160];
	snprintf(nm, sizeof nm, "%s.lora_%c", base, ab);
	return tk_gguf_find_tensor(g, nm);
}

static void to_f32(const struct tk_gguf_tensor *t, float *out)
{
	size_t rb = 0;
	assert_int_equal(tk_type_row_size(t->type, t->ne[0], &rb), 0);
	for (int64_t r = 0; r < t->ne[1]; r++)
		tk_type_traits_ref(t->type)->to_float((const char *)t->data + (size_t)r * rb,
						      out + (size_t)r * (size_t)t->ne[0], t->ne[0]);
}

static bool ref_adapted(const struct ref_job *j, const char *name)
{
	for (size_t a = 0; a < j->n_ad; a++)
		if (ad_half(j->ad[a], name, 'a'))
			return true;
	return false;
}

static int ref_fill(void *vctx, size_t i, const struct tk_gguf_tensor *info, void *buf,
		    size_t nbytes)
{
	struct ref_job *j = vctx;
	const struct tk_gguf_tensor *t = tk_gguf_tensor_at(j->base, i);
	(void)info;
	if (t->type == TK_TYPE_F32 && !ref_adapted(j, t->name)) {
		memcpy(buf, t->data, nbytes);
		return 0;
	}
	const size_t n_in = (size_t)t->ne[0], n_out = (size_t)t->ne[1];
	float *w = buf;
	to_f32(t, w);
	if (!j->merge || !ref_adapted(j, t->name))
		return 0;
	double *acc = calloc(n_in * n_out, sizeof(double));
	assert_non_null(acc);
	for (size_t k = 0; k < n_in * n_out; k++)
		acc[k] = w[k];
	for (size_t a = 0; a < j->n_ad; a++) {
		const struct tk_gguf_tensor *ta = ad_half(j->ad[a], t->name, 'a');
		const struct tk_gguf_tensor *tb = ad_half(j->ad[a], t->name, 'b');
		if (!ta)
			continue;
		const size_t r = (size_t)ta->ne[1];
		float *A = malloc(r * n_in * sizeof(float)), *B = malloc(n_out * r * sizeof(float));
		assert_true(A && B);
		to_f32(ta, A);
		to_f32(tb, B);
		double s = j->scale[a];
		float alpha = 0;
		if (tk_gguf_get_f32(j->ad[a], "adapter.lora.alpha", &alpha) == 0 && alpha > 0)
			s = s * alpha / (double)r;
		for (size_t o = 0; o < n_out; o++)
			for (size_t k = 0; k < r; k++)
				for (size_t c = 0; c < n_in; c++)
					acc[o * n_in + c] += s * (double)B[o * r + k] * (double)A[k * n_in + c];
		free(A);
		free(B);
	}
	for (size_t k = 0; k < n_in * n_out; k++)
		w[k] = (float)acc[k];
	free(acc);
	return 0;
}

static void write_ref(const char *base_path, const char *const *ad_paths, const float *scales,
		      size_t n_ad, bool merge, const char *out)
{
	struct ref_job j = { .n_ad = n_ad, .merge = merge };
	j.base = tk_gguf_open(base_path);
	assert_non_null(j.base);
	for (size_t a = 0; a < n_ad; a++) {
		j.ad[a] = tk_gguf_open(ad_paths[a]);
		assert_non_null(j.ad[a]);
		j.scale[a] = scales[a];
	}
	struct tk_gguf_writer *w = tk_gguf_writer_new();
	assert_non_null(w);
	for (size_t i = 0; i < tk_gguf_kv_count(j.base); i++)
		assert_int_equal(tk_gguf_writer_copy_kv(w, tk_gguf_kv_at(j.base, i)), 0);
	for (size_t i = 0; i < tk_gguf_tensor_count(j.base); i++) {
		const struct tk_gguf_tensor *t = tk_gguf_tensor_at(j.base, i);
		assert_int_equal(tk_gguf_writer_add_tensor(w, t->name, TK_TYPE_F32, t->n_dims, t->ne),
				 0);
	}
	assert_int_equal(tk_gguf_writer_write(w, out, ref_fill, &j), 0);
	tk_gguf_writer_free(w);
	for (size_t a = 0; a < n_ad; a++)
		tk_gguf_close(j.ad[a]);
	tk_gguf_close(j.base);
}

static const int32_t ref_prompt[] = { 1, 17, 200, 5, 99, 3, 140, 250, 60, 61, 7, 31 };
#define REF_N ((int32_t)(sizeof ref_prompt / sizeof ref_prompt[0]))

/* Logits of ref_prompt: prefill of the first 8 then decode one at a time
 * (both paths), with the given adapters. out: [REF_N][n_vocab]. */
static void run_logits(const char *path, struct engine_lora **ads, const float *scales,
		       size_t n_ad, float *out)
{
	struct engine_model *m = engine_model_load(path);
	if (!m)
		fail_msg("%s", tk_err_detail());
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = 32;
	cp.n_batch = 8;
	cp.kv_type = ENGINE_KV_F32;
	struct engine_ctx *c = engine_ctx_new(m, &cp);
	assert_non_null(c);
	struct engine_lora_use u[2];
	for (size_t a = 0; a < n_ad; a++)
		u[a] = (struct engine_lora_use){ ads[a], scales[a] };
	assert_int_equal(engine_ctx_set_adapters(c, u, n_ad), 0);
	const int32_t nv = m->hp.n_vocab;
	assert_int_equal(engine_ctx_eval(c, ref_prompt, 8, out), 0);
	for (int32_t t = 8; t < REF_N; t++)
		assert_int_equal(engine_ctx_eval(c, &ref_prompt[t], 1, out + (size_t)t * (size_t)nv),
				 0);
	engine_ctx_free(c);
	engine_model_free(m);
}

static double max_diff(const float *a, const float *b, size_t n)
{
	double max = 0, sum = 0;
	diff_acc(a, b, n, &max, &sum);
	return max;
}

static void test_merged_reference(void **state)
{
	(void)state;
	char dir[256], base[320], ad1[320], ad2[320], deq[320], ref[320], mw[320];
	tk_test_mkdtemp(dir, sizeof dir);
	snprintf(base, sizeof base, "%s/base.gguf", dir);
	snprintf(ad1, sizeof ad1, "%s/a1.gguf", dir);
	snprintf(ad2, sizeof ad2, "%s/a2.gguf", dir);
	snprintf(deq, sizeof deq, "%s/deq.gguf", dir);
	snprintf(ref, sizeof ref, "%s/ref.gguf", dir);
	snprintf(mw, sizeof mw, "%s/merged.gguf", dir);
	const int types[] = { TK_TYPE_F32, TK_TYPE_F16, TK_TYPE_BF16, TK_TYPE_Q8_0, TK_TYPE_Q4_0,
			     TK_TYPE_Q5_1 };
	const int64_t E = 256, FF = 512;
	for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
		struct tk_synth_opts o;
		tk_synth_opts_default(&o);
		o.type = types[ti];
		o.n_embd = (uint32_t)E;
		o.n_ff = (uint32_t)FF;
		o.n_layer = 2;
		o.n_head = 4;
		o.weight_std = 0.05f;
		o.seed = 7 + ti;
		assert_int_equal(tk_synth_write(&o, base), 0);
		struct engine_model *bm = engine_model_load(base);
		assert_non_null(bm);
		const int64_t NV = bm->hp.n_vocab;
		/* adapter 1: rank 4 (f32) on attention of layer 0 and ffn of
		 * layer 1 and the output; adapter 2: rank 16 (f16 halves, no
		 * alpha) on q/v of both layers and ffn_down of layer 0 */
		struct tspec t1[16], t2[16];
		size_t n1 = 0, n2 = 0;
		n1 = add_pair(t1, n1, "blk.0.attn_q.weight", E, E, 4, TK_TYPE_F32, 0.05f);
		n1 = add_pair(t1, n1, "blk.0.attn_k.weight", E, E, 4, TK_TYPE_F32, 0.05f);
		n1 = add_pair(t1, n1, "blk.0.attn_output.weight", E, E, 4, TK_TYPE_F32, 0.05f);
		n1 = add_pair(t1, n1, "blk.1.ffn_gate.weight", E, FF, 4, TK_TYPE_F32, 0.05f);
		n1 = add_pair(t1, n1, "blk.1.ffn_up.weight", E, FF, 4, TK_TYPE_F32, 0.05f);
		n1 = add_pair(t1, n1, "output.weight", E, NV, 4, TK_TYPE_F32, 0.05f);
		n2 = add_pair(t2, n2, "blk.0.attn_q.weight", E, E, 16, TK_TYPE_F16, 0.03f);
		n2 = add_pair(t2, n2, "blk.1.attn_v.weight", E, E, 16, TK_TYPE_F16, 0.03f);
		n2 = add_pair(t2, n2, "blk.0.ffn_down.weight", FF, E, 16, TK_TYPE_F16, 0.03f);
		write_adapter(ad1, "llama", "adapter", 8.0f, t1, n1, 100 + ti);
		write_adapter(ad2, "llama", "adapter", -1, t2, n2, 200 + ti);
		const char *ads[2] = { ad1, ad2 };
		const float sc[2] = { 0.75f, 1.5f };
		write_ref(base, ads, sc, 2, false, deq);
		write_ref(base, ads, sc, 2, true, ref);

		struct engine_lora *la[2] = { engine_lora_load(ad1, bm), engine_lora_load(ad2, bm) };
		if (!la[0] || !la[1])
			fail_msg("%s", tk_err_detail());
		assert_int_equal(engine_lora_max_rank(la[0]), 4);
		assert_int_equal(engine_lora_max_rank(la[1]), 16);
		assert_int_equal(engine_lora_n_pairs(la[0]), 6);
		assert_true(fabsf(engine_lora_scale(la[0], 0, ENGINE_LORA_Q, 0.75f) - 1.5f) < 1e-6f);
		assert_true(engine_lora_scale(la[1], 0, ENGINE_LORA_Q, 1.5f) == 1.5f);

		const size_t nl = (size_t)REF_N * (size_t)NV;
		float *l_run = malloc(nl * sizeof(float)), *l_ref = malloc(nl * sizeof(float));
		float *l_base = malloc(nl * sizeof(float)), *l_mw = malloc(nl * sizeof(float));
		float *l_q = malloc(nl * sizeof(float));
		assert_true(l_run && l_ref && l_base && l_mw && l_q);
		/* run time on the dequantized base == merged reference */
		run_logits(deq, la, sc, 2, l_run);
		run_logits(ref, NULL, NULL, 0, l_ref);
		run_logits(deq, NULL, NULL, 0, l_base);
		double d_run = max_diff(l_run, l_ref, nl), d_base = max_diff(l_base, l_ref, nl);
		/* run time on the real (quantized) base: the adapters' effect is
		 * there, differing from the reference only by the base type's
		 * activation rounding */
		run_logits(base, la, sc, 2, l_q);
		double d_q = max_diff(l_q, l_ref, nl);
		/* that rounding alone: the quantized base vs its dequantized copy,
		 * no adapters */
		run_logits(base, NULL, NULL, 0, l_mw);
		double noise = max_diff(l_mw, l_base, nl);
		/* engine_lora_merge_write from the real base */
		struct engine_lora_use u[2] = { { la[0], sc[0] }, { la[1], sc[1] } };
		assert_int_equal(engine_lora_merge_write(base, u, 2, mw), 0);
		run_logits(mw, NULL, NULL, 0, l_mw);
		double d_mw = max_diff(l_mw, l_ref, nl);
		printf("lora merged-ref %-5s runtime %.3g merge_write %.3g on-%s-base %.3g "
		       "(base-type rounding alone %.3g; adapter effect %.3g)\n",
		       tk_type_name(types[ti]), d_run, d_mw, tk_type_name(types[ti]), d_q, noise,
		       d_base);
		/* merge_write keeps the untouched weights in the base type: on a
		 * quantized base it carries that type's activation rounding */
		if (d_run > MERGE_MAX || d_mw > 4 * noise + MERGE_MAX)
			fail_msg("%s: runtime %.3g / merge_write %.3g vs reference (type rounding "
				 "%.3g)", tk_type_name(types[ti]), d_run, d_mw, noise);
		assert_true(d_base > 100 * MERGE_MAX); /* the adapters change the logits */
		if (d_q > 4 * noise + MERGE_MAX)
			fail_msg("%s: on the quantized base %.3g vs reference (type rounding %.3g)",
				 tk_type_name(types[ti]), d_q, noise);
		engine_lora_free(la[0]);
		engine_lora_free(la[1]);
		engine_model_free(bm);
		free(l_run);
		free(l_ref);
		free(l_base);
		free(l_mw);
		free(l_q);
	}
	fflush(stdout);
	tk_test_rmtree(dir);
}

/* Scale 0 changes nothing, bit for bit; set_adapters refuses a misfit. */
static void test_scale_zero_and_set(void **state)
{
	(void)state;
	char path[512];
	struct engine_model *m = engine_model_load(fixture("tiny-llama-f32.gguf", path, sizeof path));
	assert_non_null(m);
	struct engine_lora *a = engine_lora_load(fixture("tiny-llama-lora-coder.gguf", path,
							 sizeof path), m);
	assert_non_null(a);
	const size_t nl = (size_t)REF_N * (size_t)m->hp.n_vocab;
	float *x = malloc(nl * sizeof(float)), *y = malloc(nl * sizeof(float));
	assert_true(x && y);
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = 32;
	struct engine_ctx *c = engine_ctx_new(m, &cp);
	assert_non_null(c);
	assert_int_equal(engine_ctx_eval(c, ref_prompt, REF_N, x), 0);
	struct engine_lora_use u = { a, 0.0f };
	assert_int_equal(engine_ctx_set_adapters(c, &u, 1), 0);
	const struct engine_lora_use *cur = NULL;
	assert_int_equal(engine_ctx_adapters(c, &cur), 1);
	assert_ptr_equal(cur[0].lora, a);
	assert_int_equal(engine_ctx_rewind(c, 0), 0);
	assert_int_equal(engine_ctx_eval(c, ref_prompt, REF_N, y), 0);
	assert_memory_equal(x, y, nl * sizeof(float));
	u.user_scale = NAN;
	assert_int_equal(engine_ctx_set_adapters(c, &u, 1), TK_EINVAL);
	assert_int_equal(engine_ctx_adapters(c, &cur), 1); /* unchanged */
	struct engine_lora_use many[ENGINE_LORA_MAX_ACTIVE + 1];
	for (size_t i = 0; i < ENGINE_LORA_MAX_ACTIVE + 1; i++)
		many[i] = (struct engine_lora_use){ a, 1.0f };
	assert_int_equal(engine_ctx_set_adapters(c, many, ENGINE_LORA_MAX_ACTIVE + 1), TK_EINVAL);
	assert_int_equal(engine_ctx_set_adapters(c, many, ENGINE_LORA_MAX_ACTIVE), 0);
	/* an adapter loaded for another model shape does not fit this one */
	char dir[256], other[320];
	tk_test_mkdtemp(dir, sizeof dir);
	snprintf(other, sizeof other, "%s/other.gguf", dir);
	struct tk_synth_opts o;
	tk_synth_opts_default(&o);
	o.n_embd = (uint32_t)m->hp.n_embd * 2;
	o.n_layer = (uint32_t)m->hp.n_layer;
	assert_int_equal(tk_synth_write(&o, other), 0);
	struct engine_model *m2 = engine_model_load(other);
	assert_non_null(m2);
	struct engine_ctx *c2 = engine_ctx_new(m2, &cp);
	assert_non_null(c2);
	u.user_scale = 1.0f;
	assert_int_equal(engine_ctx_set_adapters(c2, &u, 1), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "does not fit"));
	engine_ctx_free(c2);
	engine_model_free(m2);
	tk_test_rmtree(dir);
	engine_ctx_free(c);
	engine_lora_free(a);
	engine_model_free(m);
	free(x);
	free(y);
}

/* ------------------------------------------------ hostile adapters */

static void expect_refused(const char *path, const struct engine_model *m, int code,
			   const char *needle)
{
	struct engine_lora *a = engine_lora_load(path, m);
	if (a)
		fail_msg("%s: accepted, expected '%s'", path, needle);
	if (tk_err_last() != code || !strstr(tk_err_detail(), needle))
		fail_msg("%s: code %d detail '%s'; expected %d '%s'", path, tk_err_last(),
			 tk_err_detail(), code, needle);
}

static void test_hostile(void **state)
{
	(void)state;
	char dir[256], base[320], p[320];
	tk_test_mkdtemp(dir, sizeof dir);
	snprintf(base, sizeof base, "%s/base.gguf", dir);
	struct tk_synth_opts o;
	tk_synth_opts_default(&o);
	o.n_embd = 64;
	o.n_ff = 128;
	o.n_layer = 2;
	assert_int_equal(tk_synth_write(&o, base), 0);
	struct engine_model *m = engine_model_load(base);
	assert_non_null(m);
	struct tspec t[8];
	size_t n;

	snprintf(p, sizeof p, "%s/x.gguf", dir);
	n = add_pair(t, 0, "blk.0.attn_q.weight", 64, 64, 4, TK_TYPE_F32, 0.1f);
	write_adapter(p, "llama", "adapter", 8, t, n, 1);
	struct engine_lora *ok = engine_lora_load(p, m);
	assert_non_null(ok); /* the control is accepted */
	engine_lora_free(ok);

	write_adapter(p, "qwen2", "adapter", 8, t, n, 1);
	expect_refused(p, m, TK_EINVAL, "general.architecture is 'qwen2', expected 'llama'");
	write_adapter(p, NULL, "adapter", 8, t, n, 1);
	expect_refused(p, m, TK_EFORMAT, "general.architecture' missing");
	write_adapter(p, "llama", "model", 8, t, n, 1);
	expect_refused(p, m, TK_EFORMAT, "general.type is 'model'");

	/* half a pair */
	write_adapter(p, "llama", "adapter", 8, t, 1, 1);
	expect_refused(p, m, TK_EFORMAT, "no matching .lora_b half");
	write_adapter(p, "llama", "adapter", 8, t + 1, 1, 1);
	expect_refused(p, m, TK_EFORMAT, "no matching .lora_a half");
	/* wrong shapes: n_in, n_out, ranks that differ */
	n = add_pair(t, 0, "blk.0.attn_q.weight", 32, 64, 4, TK_TYPE_F32, 0.1f);
	write_adapter(p, "llama", "adapter", 8, t, n, 1);
	expect_refused(p, m, TK_EINVAL, "the base weight is [64, 64]");
	n = add_pair(t, 0, "blk.0.ffn_up.weight", 64, 64, 4, TK_TYPE_F32, 0.1f);
	write_adapter(p, "llama", "adapter", 8, t, n, 1);
	expect_refused(p, m, TK_EINVAL, "the base weight is [64, 128]");
	n = add_pair(t, 0, "blk.0.attn_q.weight", 64, 64, 4, TK_TYPE_F32, 0.1f);
	t[1].ne[0] = 8;
	write_adapter(p, "llama", "adapter", 8, t, n, 1);
	expect_refused(p, m, TK_EINVAL, "with the same r");
	/* unknown tensors */
	n = add_pair(t, 0, "blk.2.attn_q.weight", 64, 64, 4, TK_TYPE_F32, 0.1f);
	write_adapter(p, "llama", "adapter", 8, t, n, 1);
	expect_refused(p, m, TK_EINVAL, "'blk.2.attn_q.weight.lora_a' adapts no weight");
	n = add_pair(t, 0, "blk.0.attn_norm.weight", 64, 64, 4, TK_TYPE_F32, 0.1f);
	write_adapter(p, "llama", "adapter", 8, t, n, 1);
	expect_refused(p, m, TK_EINVAL, "adapts no weight");
	n = add_pair(t, 0, "blk.00.attn_q.weight", 64, 64, 4, TK_TYPE_F32, 0.1f);
	write_adapter(p, "llama", "adapter", 8, t, n, 1);
	expect_refused(p, m, TK_EINVAL, "adapts no weight");
	n = add_pair(t, 0, "blk.0.attn_q.weight", 64, 64, 4, TK_TYPE_F32, 0.1f);
	snprintf(t[n].name, sizeof t[n].name, "blk.0.attn_q.weight.extra");
	t[n].type = TK_TYPE_F32;
	t[n].ne[0] = 4;
	t[n].ne[1] = 4;
	t[n].amp = 1;
	write_adapter(p, "llama", "adapter", 8, t, n + 1, 1);
	expect_refused(p, m, TK_EFORMAT, "not a LoRA half");
	/* a type adapters may not use */
	n = add_pair(t, 0, "blk.0.attn_q.weight", 64, 64, 32, TK_TYPE_Q4_0, 0.1f);
	write_adapter(p, "llama", "adapter", 8, t, n, 1);
	expect_refused(p, m, TK_EUNSUPPORTED, "has type q4_0");
	/* no pairs at all */
	write_adapter(p, "llama", "adapter", 8, t, 0, 1);
	expect_refused(p, m, TK_EFORMAT, "no .lora_a/.lora_b tensor pairs");
	/* negative alpha */
	n = add_pair(t, 0, "blk.0.attn_q.weight", 64, 64, 4, TK_TYPE_F32, 0.1f);
	write_adapter(p, "llama", "adapter", -3, t, n, 1); /* -3 < 0: alpha omitted */
	ok = engine_lora_load(p, m);
	assert_non_null(ok);
	assert_true(engine_lora_alpha(ok) == 0.0f);
	engine_lora_free(ok);
	/* a non-finite value in the data */
	t[0].amp = INFINITY;
	write_adapter(p, "llama", "adapter", 8, t, n, 1);
	expect_refused(p, m, TK_EFORMAT, "non-finite");
	/* not a GGUF file, and a truncated one */
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("this is not a gguf file at all, just text\n", f);
	fclose(f);
	expect_refused(p, m, TK_EFORMAT, "lora:");
	t[0].amp = 0.1f;
	write_adapter(p, "llama", "adapter", 8, t, n, 1);
	assert_int_equal(truncate(p, 200), 0);
	expect_refused(p, m, TK_EFORMAT, "lora:");
	snprintf(p, sizeof p, "%s/absent.gguf", dir);
	expect_refused(p, m, TK_ENOENT, "absent.gguf");

	engine_model_free(m);
	tk_test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_scale_zero_and_set),
		cmocka_unit_test(test_merged_reference),
		cmocka_unit_test(test_goldens),
		cmocka_unit_test(test_interleaved),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
