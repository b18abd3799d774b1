/*
 * context.c — KV cache, scratch, the worker pool and the forward pass
 * (context.h).
 *
 * Owns every buffer of a context, all allocated in engine_ctx_new():
 *   k_cache, v_cache  [n_layer][n_seq_max][n_ctx][n_head_kv * head_dim]
 *                     kv_type elements (sequence s of layer il is one
 *                     contiguous region of n_ctx positions)
 *   x    [n_batch][n_embd]     residual stream
 *   h    [n_batch][n_embd]     normed input of a sub-block (for the output:
 *                              the wanted rows, gathered to the front)
 *   q    [n_batch][n_head * head_dim]
 *   k, v [n_batch][n_head_kv * head_dim]
 *   att_out [n_batch][n_head * head_dim]
 *   gate, up [n_batch][n_ff]
 *   tmp  [n_batch][n_embd]     output of Wo / Wdown before the residual add
 *   xq   [n_batch][encoded row] activations in a weight's vec_dot_type
 *   att_scratch [n_threads][engine_op_attention_scratch()] per-thread
 *                              attention blocks
 *   tok_seq, tok_pos, out_idx [n_batch]   sequence, position and wanted rows
 *                              of the current step
 *   rope_cs [n_batch][n_rot]   RoPE's (cos, sin) per pair at each token's
 *                              position, made once per step for every layer
 *   seq_n_past, seq_count, seq_last [n_seq_max]
 *   logits [n_vocab]          last wanted position
 *   lora_r [n_batch][max rank], lora_y [n_batch][widest output]: LoRA
 *        scratch, allocated by engine_ctx_set_adapters (grows only)
 *   pool  n_threads - 1 persistent workers (pool.h)
 *
 * Parallel structure of one step (every phase is one pool dispatch; phases
 * too small to pay for one run on the caller): per layer
 *   [x += tmp;] h = rmsnorm(x)      tokens split over threads
 *   q, k, v = W h                   one dispatch, rows of each weight split
 *   bias, rope, cache store         tokens split
 *   attention                       (run of tokens, KV head) tasks taken from
 *                                   a shared counter, longest first
 *   tmp = Wo att                    rows split
 *   x += tmp; h = rmsnorm(x)        tokens split
 *   gate, up = W h; silu(gate)*up   one dispatch; each thread applies SiLU to
 *                                   the rows it computed (no LoRA active)
 *   tmp = Wdown gate                rows split
 * and the activation encoding of a product with many tokens is split by
 * tokens first (one more dispatch).
 *
 * Steps of at most MM_UNIT_MAX_TOK tokens (decode, small batches) differ in
 * two ways: the rows of a product are not split into one fixed share per
 * thread but taken in units from a shared counter (mm_job), so the threads
 * finish a product together even when one is slowed; and without LoRA the
 * bias, RoPE and cache store run inside the q, k, v dispatch, each unit's
 * rows (whole heads) finished by the thread that computed them, instead of
 * on the caller alone after it (one token is too few to split by tokens)
 * while the workers wait. Decode dispatches five times per layer (q/k/v,
 * attention, Wo, gate/up, Wdown) plus once for the output; the norms and
 * activation encodings between them run on the caller (~1-2 us each).
 */
#include "engine/context.h"

#include "core/err.h"
#include "engine/attn_simd.h"
#include "engine/quant.h"
#include "engine/quant_pack.h"
#include "engine/quant_simd.h"
#include "obs/log.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct engine_ctx {
	const struct engine_model *m; /* borrowed */
	struct engine_ctx_params p;   /* every field resolved */
	struct engine_rope rope;
	int32_t kv_dim;  /* n_head_kv * head_dim */
	int32_t q_dim;   /* n_head * head_dim */
	size_t kv_esz;   /* bytes per cache element */
	void *k_cache, *v_cache;
	float *x, *h, *q, *k, *v, *att_out, *gate, *up, *tmp, *logits;
	float *att_scratch;
	size_t att_scratch_floats; /* per thread */
	int32_t *tok_seq, *tok_pos, *out_idx;
	float *rope_cs;
	int32_t *seq_n_past, *seq_count, *seq_last;
	void *xq;
	size_t xq_row_bytes; /* largest encoded activation row */
	bool have_logits;
	size_t kv_bytes, scratch_bytes;
	struct engine_pool *pool;
	struct engine_lora_use lora[ENGINE_LORA_MAX_ACTIVE]; /* adapters borrowed */
	size_t n_lora;
	float *lora_r, *lora_y;
	size_t lora_r_cap, lora_y_cap; /* floats */
};

void engine_ctx_params_default(struct engine_ctx_params *p)
{
	*p = (struct engine_ctx_params){ .n_ctx = 0, .n_batch = 0, .n_threads = 0,
					 .kv_type = ENGINE_KV_F16, .n_seq_max = 1 };
}

/* calloc counting bytes, with an overflow check on n * size */
static void *ctx_alloc(size_t n, size_t size, size_t *counter)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p)
		*counter += n * size;
	return p;
}

struct engine_ctx *engine_ctx_new(const struct engine_model *m,
				  const struct engine_ctx_params *params)
{
	const struct engine_hparams *hp = &m->hp;
	struct engine_ctx_params p = *params;
	if (p.n_ctx == 0)
		p.n_ctx = hp->n_ctx_train < ENGINE_CTX_DEFAULT_MAX ? hp->n_ctx_train
								   : ENGINE_CTX_DEFAULT_MAX;
	if (p.n_batch == 0)
		p.n_batch = p.n_ctx < 512 ? p.n_ctx : 512;
	if (p.n_threads == 0)
		p.n_threads = engine_default_threads();
	if (p.n_seq_max == 0)
		p.n_seq_max = 1;
	if (p.n_ctx < 1 || p.n_ctx > (1 << 24) || p.n_seq_max < 1 ||
	    p.n_seq_max > ENGINE_MAX_SEQ || p.n_batch < 1 ||
	    (int64_t)p.n_batch > (int64_t)p.n_ctx * p.n_seq_max || p.n_threads < 1 ||
	    p.n_threads > ENGINE_MAX_THREADS ||
	    (p.kv_type != ENGINE_KV_F16 && p.kv_type != ENGINE_KV_F32)) {
		tk_errf(TK_EINVAL, "context: bad parameters (n_ctx %d, n_batch %d, n_threads %d, "
			"n_seq_max %d)", p.n_ctx, p.n_batch, p.n_threads, p.n_seq_max);
		return NULL;
	}
	struct engine_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		tk_errf(TK_ENOMEM, "context: out of memory");
		return NULL;
	}
	c->m = m;
	c->p = p;
	engine_model_rope(m, &c->rope);
	c->kv_dim = hp->n_head_kv * hp->head_dim;
	c->q_dim = hp->n_head * hp->head_dim;
	c->kv_esz = p.kv_type == ENGINE_KV_F32 ? sizeof(float) : sizeof(uint16_t);
	c->att_scratch_floats = engine_attn_scratch(hp->n_head, hp->n_head_kv, hp->head_dim);

	/* the largest encoded activation row over every weight's input width
	 * (layers may differ in type: mixed quantizations) */
	c->xq_row_bytes = engine_op_matmul_scratch(m->output.type, m->output.n_in);
	for (int32_t il = 0; il < hp->n_layer; il++) {
		const struct engine_layer *L = &m->layers[il];
		const struct engine_weight *lw[] = { &L->wq, &L->wk, &L->wv, &L->wo,
						     &L->w_gate, &L->w_up, &L->w_down };
		for (size_t i = 0; i < sizeof lw / sizeof lw[0]; i++) {
			size_t b = engine_op_matmul_scratch(lw[i]->type, lw[i]->n_in);
			if (b > c->xq_row_bytes)
				c->xq_row_bytes = b;
		}
	}

	const size_t B = (size_t)p.n_batch, S = (size_t)p.n_seq_max;
	size_t cache_elems = (size_t)hp->n_layer * (size_t)p.n_ctx * (size_t)c->kv_dim;
	if (cache_elems > SIZE_MAX / S)
		cache_elems = SIZE_MAX; /* ctx_alloc refuses it */
	else
		cache_elems *= S;
	size_t *sc = &c->scratch_bytes;
	if (!(c->k_cache = ctx_alloc(cache_elems, c->kv_esz, &c->kv_bytes)) ||
	    !(c->v_cache = ctx_alloc(cache_elems, c->kv_esz, &c->kv_bytes)) ||
	    !(c->x = ctx_alloc(B * (size_t)hp->n_embd, sizeof(float), sc)) ||
	    !(c->h = ctx_alloc(B * (size_t)hp->n_embd, sizeof(float), sc)) ||
	    !(c->tmp = ctx_alloc(B * (size_t)hp->n_embd, sizeof(float), sc)) ||
	    !(c->q = ctx_alloc(B * (size_t)c->q_dim, sizeof(float), sc)) ||
	    !(c->att_out = ctx_alloc(B * (size_t)c->q_dim, sizeof(float), sc)) ||
	    !(c->k = ctx_alloc(B * (size_t)c->kv_dim, sizeof(float), sc)) ||
	    !(c->v = ctx_alloc(B * (size_t)c->kv_dim, sizeof(float), sc)) ||
	    !(c->gate = ctx_alloc(B * (size_t)hp->n_ff, sizeof(float), sc)) ||
	    !(c->up = ctx_alloc(B * (size_t)hp->n_ff, sizeof(float), sc)) ||
	    !(c->xq = ctx_alloc(B, c->xq_row_bytes, sc)) ||
	    !(c->att_scratch = ctx_alloc((size_t)p.n_threads * c->att_scratch_floats,
					 sizeof(float), sc)) ||
	    !(c->tok_seq = ctx_alloc(B, sizeof(int32_t), sc)) ||
	    !(c->tok_pos = ctx_alloc(B, sizeof(int32_t), sc)) ||
	    !(c->rope_cs = ctx_alloc(B * (size_t)hp->n_rot, sizeof(float), sc)) ||
	    !(c->out_idx = ctx_alloc(B, sizeof(int32_t), sc)) ||
	    !(c->seq_n_past = ctx_alloc(S, sizeof(int32_t), sc)) ||
	    !(c->seq_count = ctx_alloc(S, sizeof(int32_t), sc)) ||
	    !(c->seq_last = ctx_alloc(S, sizeof(int32_t), sc)) ||
	    !(c->logits = ctx_alloc((size_t)hp->n_vocab, sizeof(float), sc))) {
		tk_errf(TK_ENOMEM, "context: out of memory (n_ctx %d x %d sequences: KV cache %zu "
			"bytes so far, scratch %zu bytes so far)", p.n_ctx, p.n_seq_max,
			c->kv_bytes, c->scratch_bytes);
		engine_ctx_free(c);
		return NULL;
	}
	if (!(c->pool = engine_pool_new(p.n_threads))) {
		engine_ctx_free(c);
		return NULL; /* detail set */
	}
	tk_logf(TK_LOG_DEBUG, "engine",
		TK_FIELDS(TK_LF_I("n_ctx", p.n_ctx), TK_LF_I("n_batch", p.n_batch),
			  TK_LF_I("n_threads", p.n_threads), TK_LF_I("n_seq_max", p.n_seq_max),
			  TK_LF_S("kv_type", p.kv_type == ENGINE_KV_F16 ? "f16" : "f32"),
			  TK_LF_I("weights_bytes", (int64_t)m->weights_bytes),
			  TK_LF_I("kv_bytes", (int64_t)c->kv_bytes),
			  TK_LF_I("scratch_bytes", (int64_t)c->scratch_bytes)),
		"context created");
	return c;
}

void engine_ctx_free(struct engine_ctx *c)
{
	if (!c)
		return;
	engine_pool_free(c->pool);
	free(c->k_cache);
	free(c->v_cache);
	free(c->x);
	free(c->h);
	free(c->tmp);
	free(c->q);
	free(c->att_out);
	free(c->k);
	free(c->v);
	free(c->gate);
	free(c->up);
	free(c->xq);
	free(c->att_scratch);
	free(c->tok_seq);
	free(c->tok_pos);
	free(c->rope_cs);
	free(c->out_idx);
	free(c->seq_n_past);
	free(c->seq_count);
	free(c->seq_last);
	free(c->logits);
	free(c->lora_r);
	free(c->lora_y);
	free(c);
}

/* Runs fn over the pool with at most one thread per `per` items (a phase
 * smaller than that runs on the caller alone). */
static void ctx_par(struct engine_ctx *c, int64_t n_items, int64_t per, engine_pool_fn fn,
		    void *arg)
{
	int64_t nth = n_items / (per > 0 ? per : 1);
	if (nth > c->p.n_threads)
		nth = c->p.n_threads;
	engine_pool_run_n(c->pool, nth < 1 ? 1 : (int)nth, fn, arg);
}

/* ------------------------------------------------ matrix products */

/* Encoding of n_tok activation rows, split by tokens. */
struct enc_job {
	const struct engine_weight *w;
	const float *x;
	int32_t n_tok;
	void *xq;
	size_t row;
};

static void enc_task(void *arg, int ith, int nth)
{
	struct enc_job *j = arg;
	int64_t b, e;
	engine_pool_split(j->n_tok, ith, nth, 1, &b, &e);
	if (e > b)
		(void)engine_op_matmul_prepare(j->w, j->x + (size_t)b * (size_t)j->w->n_in,
					       (int32_t)(e - b), (char *)j->xq + (size_t)b * j->row);
}

/* Up to three products of the same encoded input, one dispatch; with silu,
 * y[0] = silu(y[0]) * y[1] on the rows each thread computed.
 *
 * Two ways to share the rows out:
 *   static  (prefill: more than MM_UNIT_MAX_TOK tokens) each weight's rows
 *           split into nth contiguous parts, one per thread;
 *   units   (decode and small batches) threads take units of whole packed
 *           groups from a shared counter, largest first (up to
 *           MM_UNIT_MAX_GROUPS: the gemv and the gemmg walk a unit as 8
 *           regions read front to back, ops.c) and smaller as the job's
 *           remaining rows shrink (remaining / nth: the first thread takes
 *           up to half, the next half of what is left, and so on), so the
 *           threads finish together even when one of them is slowed (by
 *           DRAM, or by another process taking its core); a unit never
 *           crosses from one weight into the next. Fewer, longer units
 *           stream faster: remaining / nth against remaining / (2 nth),
 *           alternated, tg64 2-6% (q/k/v and Wo, the short products,
 *           read 3-6% closer to the FFN's rate; docs/benchmarks.md,
 *           "Decode units: half of what is left").
 * Either way every split falls on a multiple of TK_PACK_ROWS, so every
 * output is computed by the same kernel calls as with one thread (packed
 * weights run whole groups, the gemv equals gemm nc = 1 for any group
 * count, file-layout rows split at tile boundaries): results do not depend
 * on the thread count nor on which thread took which unit. */
#define MM_MAX_W 3
#define MM_UNIT_MAX_TOK TK_PACK_COLS
#define MM_UNIT_MAX_GROUPS (32 * TK_PACK_GEMV_GROUPS)
struct qkv_epi;
struct mm_job {
	const void *xq;
	int32_t n_tok;
	int n_w;
	const struct engine_weight *w[MM_MAX_W];
	float *y[MM_MAX_W];
	bool silu;
	/* units: weight i (i < n_span) holds groups [g_first[i], g_first[i + 1])
	 * of the job's group count g_first[n_span]; a unit of weight i starts
	 * and (except at the weight's end) ends on a multiple of align[i]
	 * groups. With silu n_span is 1: a unit computes the same rows of y[0]
	 * and y[1] and then their SiLU product. */
	bool units;
	int n_span;
	int64_t g_first[MM_MAX_W + 1];
	int64_t align[MM_MAX_W];
	_Atomic int64_t next; /* the next group to take */
	const struct qkv_epi *epi; /* non-NULL: bias, RoPE and cache store per unit */
};

/* Sets up j's units: weights 0..n_span-1, each aligned to align[i] groups
 * (NULL: 1). */
static void mm_units_init(struct mm_job *j, const int64_t *align)
{
	j->units = true;
	j->n_span = j->silu ? 1 : j->n_w;
	j->g_first[0] = 0;
	for (int i = 0; i < j->n_span; i++) {
		j->align[i] = align ? align[i] : 1;
		j->g_first[i + 1] = j->g_first[i] +
				    (j->w[i]->n_out + TK_PACK_ROWS - 1) / TK_PACK_ROWS;
	}
	atomic_init(&j->next, 0);
}

/* Takes the next unit: weight *wi, its groups [*g0, *g1) counted from the
 * weight's first row; false when none is left. */
static bool mm_unit_take(struct mm_job *j, int nth, int *wi, int64_t *g0, int64_t *g1)
{
	const int64_t total = j->g_first[j->n_span];
	int64_t cur = atomic_load_explicit(&j->next, memory_order_relaxed);
	for (;;) {
		if (cur >= total)
			return false;
		int i = 0;
		while (cur >= j->g_first[i + 1])
			i++;
		const int64_t al = j->align[i];
		int64_t most = MM_UNIT_MAX_GROUPS - MM_UNIT_MAX_GROUPS % al;
		if (most < al)
			most = al;
		int64_t size = (total - cur) / (int64_t)nth;
		if (size > most)
			size = most;
		size -= size % al;
		if (size < al)
			size = al;
		const int64_t end = j->g_first[i + 1] - cur < size ? j->g_first[i + 1] : cur + size;
		if (atomic_compare_exchange_weak_explicit(&j->next, &cur, end, memory_order_relaxed,
							  memory_order_relaxed)) {
			*wi = i;
			*g0 = cur - j->g_first[i];
			*g1 = end - j->g_first[i];
			return true;
		}
	}
}

static void qkv_epi_rows(const struct qkv_epi *e, int wi, int64_t r0, int64_t r1);

/* rows [r0, r1) of y[0] = silu(y[0]) * y[1], every token */
static void mm_silu_rows(const struct mm_job *j, int64_t r0, int64_t r1)
{
	const int64_t n_out = j->w[0]->n_out;
	for (int32_t t = 0; t < j->n_tok && r1 > r0; t++)
		engine_op_silu_mul(j->y[0] + (size_t)t * (size_t)n_out + (size_t)r0,
				   j->y[1] + (size_t)t * (size_t)n_out + (size_t)r0, r1 - r0);
}

static void mm_units_task(struct mm_job *j, int nth)
{
	int wi;
	int64_t g0, g1;
	while (mm_unit_take(j, nth, &wi, &g0, &g1)) {
		const int64_t n_out = j->w[wi]->n_out;
		const int64_t r0 = g0 * TK_PACK_ROWS;
		const int64_t r1 = g1 * TK_PACK_ROWS < n_out ? g1 * TK_PACK_ROWS : n_out;
		engine_op_matmul_run(j->y[wi], j->w[wi], j->xq, j->n_tok, r0, r1);
		if (j->silu) {
			engine_op_matmul_run(j->y[1], j->w[1], j->xq, j->n_tok, r0, r1);
			mm_silu_rows(j, r0, r1);
		}
		if (j->epi)
			qkv_epi_rows(j->epi, wi, r0, r1);
	}
}

static void mm_task(void *arg, int ith, int nth)
{
	struct mm_job *j = arg;
	if (j->units) {
		mm_units_task(j, nth);
		return;
	}
	for (int i = 0; i < j->n_w; i++) {
		int64_t b, e;
		/* splits at whole packed groups (TK_PACK_ROWS, a multiple of
		 * TK_TILE_MAX): packed weights run whole groups on every thread,
		 * and every output equals the one-thread result */
		engine_pool_split(j->w[i]->n_out, ith, nth, TK_PACK_ROWS, &b, &e);
		if (e > b)
			engine_op_matmul_run(j->y[i], j->w[i], j->xq, j->n_tok, b, e);
	}
	if (j->silu) {
		int64_t b, e;
		engine_pool_split(j->w[0]->n_out, ith, nth, TK_PACK_ROWS, &b, &e); /* as above */
		mm_silu_rows(j, b, e);
	}
}

/* Encodes x[n_tok][w->n_in] for w into c->xq (split by tokens when many);
 * returns the encoded rows (x itself for float activations). */
static const void *ctx_encode(struct engine_ctx *c, const struct engine_weight *w,
			      const float *x, int32_t n_tok)
{
	if (engine_op_matmul_act_type(w->type) == TK_TYPE_F32)
		return x;
	struct enc_job j = { .w = w, .x = x, .n_tok = n_tok, .xq = c->xq,
			     .row = engine_op_matmul_scratch(w->type, w->n_in) };
	ctx_par(c, n_tok, 8, enc_task, &j);
	return c->xq;
}

/* ys[i] = ws[i] x for n (1..MM_MAX_W) weights of the same input width; one
 * encoding and one dispatch when their activation encodings agree. */
static void ctx_matmul_n(struct engine_ctx *c, int n, const struct engine_weight *const *ws,
			 float *const *ys, const float *x, int32_t n_tok, bool silu)
{
	bool same = true;
	for (int i = 1; i < n; i++)
		same = same && engine_op_matmul_act_type(ws[i]->type) ==
				       engine_op_matmul_act_type(ws[0]->type);
	struct mm_job j = { .n_tok = n_tok };
	int64_t rows = 0;
	if (same) {
		j.xq = ctx_encode(c, ws[0], x, n_tok);
		j.n_w = n;
		for (int i = 0; i < n; i++) {
			j.w[i] = ws[i];
			j.y[i] = ys[i];
			rows += ws[i]->n_out;
		}
		j.silu = silu;
		if (n_tok <= MM_UNIT_MAX_TOK)
			mm_units_init(&j, NULL);
		ctx_par(c, rows, 16, mm_task, &j);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct mm_job one = { .xq = ctx_encode(c, ws[i], x, n_tok), .n_tok = n_tok, .n_w = 1,
				      .w = { ws[i] }, .y = { ys[i] } };
		if (n_tok <= MM_UNIT_MAX_TOK)
			mm_units_init(&one, NULL);
		ctx_par(c, ws[i]->n_out, 16, mm_task, &one);
	}
	if (silu) {
		struct mm_job s = { .n_tok = n_tok, .n_w = 0, .w = { ws[0], ws[1] },
				    .y = { ys[0], ys[1] }, .silu = true };
		ctx_par(c, ws[0]->n_out, 16, mm_task, &s);
	}
}

static void ctx_matmul(struct engine_ctx *c, float *y, const struct engine_weight *w,
		       const float *x, int32_t n_tok)
{
	ctx_matmul_n(c, 1, &w, &y, x, n_tok, false);
}

/* Adds every active adapter's s * B (A x) to y = W x (layer il's weight
 * `slot`, il < 0: the output weight), in the set's order. */
static void ctx_lora_add(struct engine_ctx *c, float *y, const struct engine_weight *w,
			 int32_t il, enum engine_lora_slot slot, const float *x, int32_t n_tok)
{
	for (size_t i = 0; i < c->n_lora; i++) {
		struct engine_weight A, B;
		if (!engine_lora_pair(c->lora[i].lora, il, slot, &A, &B))
			continue;
		const float s = engine_lora_scale(c->lora[i].lora, il, slot, c->lora[i].user_scale);
		ctx_matmul(c, c->lora_r, &A, x, n_tok);         /* [n_tok][rank] */
		ctx_matmul(c, c->lora_y, &B, c->lora_r, n_tok); /* [n_tok][n_out] */
		const size_t ne = (size_t)n_tok * (size_t)w->n_out;
		for (size_t k = 0; k < ne; k++)
			y[k] += s * c->lora_y[k];
	}
}

/* Products of one layer's weights with the same input, LoRA included.
 * silu: n == 2 (gate, up), ys[0] becomes silu(gate) * up. */
static void ctx_matmul_layer(struct engine_ctx *c, int n, const struct engine_weight *const *ws,
			     const enum engine_lora_slot *slots, float *const *ys, int32_t il,
			     const float *x, int32_t n_tok, bool silu)
{
	const bool fuse = silu && c->n_lora == 0;
	ctx_matmul_n(c, n, ws, ys, x, n_tok, fuse);
	if (c->n_lora == 0)
		return;
	for (int i = 0; i < n; i++)
		ctx_lora_add(c, ys[i], ws[i], il, slots[i], x, n_tok);
	if (silu)
		engine_op_silu_mul(ys[0], ys[1], (int64_t)n_tok * ws[0]->n_out);
}

int engine_ctx_set_adapters(struct engine_ctx *c, const struct engine_lora_use *uses, size_t n)
{
	if (n > ENGINE_LORA_MAX_ACTIVE)
		return tk_errf(TK_EINVAL, "context: %zu adapters at once (at most %d)", n,
			       ENGINE_LORA_MAX_ACTIVE);
	const struct engine_hparams *hp = &c->m->hp;
	int32_t max_rank = 0;
	int64_t max_out = 0;
	for (size_t i = 0; i < n; i++) {
		if (!uses[i].lora)
			return tk_errf(TK_EINVAL, "context: adapter %zu is NULL", i);
		if (!isfinite(uses[i].user_scale))
			return tk_errf(TK_EINVAL, "context: adapter %s: scale is not finite",
				       engine_lora_name(uses[i].lora));
		int rc = engine_lora_check_model(uses[i].lora, c->m);
		if (rc < 0)
			return rc;
		if (engine_lora_max_rank(uses[i].lora) > max_rank)
			max_rank = engine_lora_max_rank(uses[i].lora);
		struct engine_weight A, B;
		int64_t widest = hp->n_embd;
		if (c->q_dim > widest)
			widest = c->q_dim;
		if (hp->n_ff > widest)
			widest = hp->n_ff;
		if (engine_lora_pair(uses[i].lora, -1, ENGINE_LORA_Q, &A, &B) && B.n_out > widest)
			widest = B.n_out;
		if (widest > max_out)
			max_out = widest;
	}
	const size_t B = (size_t)c->p.n_batch;
	const size_t need_r = B * (size_t)max_rank, need_y = B * (size_t)max_out;
	if (need_r > c->lora_r_cap) {
		float *p = calloc(need_r, sizeof(float));
		if (!p)
			return tk_errf(TK_ENOMEM, "context: out of memory for LoRA scratch");
		free(c->lora_r);
		c->scratch_bytes += (need_r - c->lora_r_cap) * sizeof(float);
		c->lora_r = p;
		c->lora_r_cap = need_r;
	}
	if (need_y > c->lora_y_cap) {
		float *p = calloc(need_y, sizeof(float));
		if (!p)
			return tk_errf(TK_ENOMEM, "context: out of memory for LoRA scratch");
		free(c->lora_y);
		c->scratch_bytes += (need_y - c->lora_y_cap) * sizeof(float);
		c->lora_y = p;
		c->lora_y_cap = need_y;
	}
	for (size_t i = 0; i < n; i++)
		c->lora[i] = uses[i];
	c->n_lora = n;
	return 0;
}

size_t engine_ctx_adapters(const struct engine_ctx *c, const struct engine_lora_use **uses)
{
	*uses = c->n_lora ? c->lora : NULL;
	return c->n_lora;
}

/* ------------------------------------------------ forward pass */

/* Byte offset of (layer il, sequence seq, position 0) in a cache. */
static size_t cache_off(const struct engine_ctx *c, int32_t il, int32_t seq)
{
	return (((size_t)il * (size_t)c->p.n_seq_max + (size_t)seq) * (size_t)c->p.n_ctx) *
	       (size_t)c->kv_dim * c->kv_esz;
}

/* Elements [r0, r1) of one position's k or v row into a cache. */
static void cache_store_rows(struct engine_ctx *c, void *cache, int32_t il, int32_t seq,
			     int32_t pos, const float *src, int64_t r0, int64_t r1)
{
	const size_t off = cache_off(c, il, seq) +
			   ((size_t)pos * (size_t)c->kv_dim + (size_t)r0) * c->kv_esz;
	char *dst = (char *)cache + off;
	if (c->p.kv_type == ENGINE_KV_F32) {
		memcpy(dst, src + r0, (size_t)(r1 - r0) * sizeof(float));
		return;
	}
	tk_type_traits(TK_TYPE_F16)->from_float(src + r0, dst, r1 - r0);
}

/* Stores one position's k/v rows ([kv_dim] floats) in layer il's cache. */
static void cache_store(struct engine_ctx *c, int32_t il, int32_t seq, int32_t pos,
			const float *k, const float *v)
{
	cache_store_rows(c, c->k_cache, il, seq, pos, k, 0, c->kv_dim);
	cache_store_rows(c, c->v_cache, il, seq, pos, v, 0, c->kv_dim);
}

/* [x[t] += add[t];] h[k] = rmsnorm(x[t]) * w for k < n, t = idx ? idx[k] : k */
struct norm_job {
	struct engine_ctx *c;
	const int32_t *idx;
	int32_t n;
	const float *add;
	const float *w;
};

static void norm_task(void *arg, int ith, int nth)
{
	struct norm_job *j = arg;
	const int32_t E = j->c->m->hp.n_embd;
	int64_t b, e;
	engine_pool_split(j->n, ith, nth, 1, &b, &e);
	for (int64_t k = b; k < e; k++) {
		const size_t t = (size_t)(j->idx ? j->idx[k] : k);
		float *xt = j->c->x + t * (size_t)E;
		if (j->add)
			engine_op_add(xt, j->add + t * (size_t)E, E);
		engine_op_rmsnorm(j->c->h + (size_t)k * (size_t)E, xt, j->w, E, j->c->m->hp.rms_eps);
	}
}

static void ctx_norm(struct engine_ctx *c, const int32_t *idx, int32_t n, const float *add,
		     const float *w)
{
	struct norm_job j = { .c = c, .idx = idx, .n = n, .add = add, .w = w };
	ctx_par(c, n, 4, norm_task, &j);
}

/* bias, rope of q and k, k/v into the cache, for every token of the step */
struct rope_job {
	struct engine_ctx *c;
	const struct engine_layer *L;
	int32_t il, n;
};

static void rope_task(void *arg, int ith, int nth)
{
	struct rope_job *j = arg;
	struct engine_ctx *c = j->c;
	const struct engine_hparams *hp = &c->m->hp;
	int64_t b, e;
	engine_pool_split(j->n, ith, nth, 1, &b, &e);
	for (int64_t t = b; t < e; t++) {
		float *qt = c->q + (size_t)t * (size_t)c->q_dim;
		float *kt = c->k + (size_t)t * (size_t)c->kv_dim;
		float *vt = c->v + (size_t)t * (size_t)c->kv_dim;
		if (j->L->bq) {
			engine_op_add(qt, j->L->bq, c->q_dim);
			engine_op_add(kt, j->L->bk, c->kv_dim);
			engine_op_add(vt, j->L->bv, c->kv_dim);
		}
		const int32_t pos = c->tok_pos[t];
		const float *cs = c->rope_cs + (size_t)t * (size_t)hp->n_rot;
		engine_op_rope_apply(qt, hp->n_head, hp->head_dim, cs, 0, hp->n_rot / 2, &c->rope);
		engine_op_rope_apply(kt, hp->n_head_kv, hp->head_dim, cs, 0, hp->n_rot / 2, &c->rope);
		cache_store(c, j->il, c->tok_seq[t], pos, kt, vt);
	}
}

/* The per-unit epilogue of the fused q, k, v products (ctx_qkv_fused):
 * rows [r0, r1) of weight wi (0 q, 1 k, 2 v) get their bias, RoPE (q and k;
 * the unit holds whole heads) and, for k and v, their place in layer il's
 * cache, for every token of the step. Per element the same operations as
 * rope_task, which does the whole rows at once. */
struct qkv_epi {
	struct engine_ctx *c;
	const struct engine_layer *L;
	int32_t il, n;
};

static void qkv_epi_rows(const struct qkv_epi *e, int wi, int64_t r0, int64_t r1)
{
	struct engine_ctx *c = e->c;
	const struct engine_hparams *hp = &c->m->hp;
	const int32_t hd = hp->head_dim;
	const float *bias = wi == 0 ? e->L->bq : wi == 1 ? e->L->bk : e->L->bv;
	const int32_t dim = wi == 0 ? c->q_dim : c->kv_dim;
	float *base = wi == 0 ? c->q : wi == 1 ? c->k : c->v;
	for (int32_t t = 0; t < e->n; t++) {
		float *row = base + (size_t)t * (size_t)dim;
		if (bias)
			engine_op_add(row + r0, bias + r0, r1 - r0);
		const int32_t pos = c->tok_pos[t];
		if (wi < 2)
			engine_op_rope_apply(row + r0, (int32_t)((r1 - r0) / hd), hd,
					     c->rope_cs + (size_t)t * (size_t)hp->n_rot, 0,
					     hp->n_rot / 2, &c->rope);
		if (wi > 0)
			cache_store_rows(c, wi == 1 ? c->k_cache : c->v_cache, e->il, c->tok_seq[t],
					 pos, row, r0, r1);
	}
}

/* Greatest common divisor of two positive numbers. */
static int64_t gcd64(int64_t a, int64_t b)
{
	while (b) {
		const int64_t r = a % b;
		a = b;
		b = r;
	}
	return a;
}

/* q, k, v = W h with bias, RoPE and the cache store inside the same
 * dispatch, each unit's rows finished by the thread that computed them
 * (units aligned to whole heads). For steps of at most MM_UNIT_MAX_TOK
 * tokens without LoRA (LoRA adds to q, k, v after the products) whose three
 * weights share an activation encoding; false (nothing done) otherwise. */
static bool ctx_qkv_fused(struct engine_ctx *c, const struct engine_layer *L, int32_t il,
			  int32_t n)
{
	const struct engine_hparams *hp = &c->m->hp;
	const int act = engine_op_matmul_act_type(L->wq.type);
	if (n > MM_UNIT_MAX_TOK || c->n_lora || hp->head_dim < 1 ||
	    engine_op_matmul_act_type(L->wk.type) != act ||
	    engine_op_matmul_act_type(L->wv.type) != act)
		return false;
	/* a head is head_dim rows; units start on multiples of both it and a
	 * packed group */
	const int64_t hd = hp->head_dim;
	const int64_t head_align = hd / gcd64(hd, TK_PACK_ROWS); /* groups */
	const struct qkv_epi epi = { .c = c, .L = L, .il = il, .n = n };
	struct mm_job j = { .xq = ctx_encode(c, &L->wq, c->h, n), .n_tok = n, .n_w = 3,
			    .w = { &L->wq, &L->wk, &L->wv }, .y = { c->q, c->k, c->v },
			    .epi = &epi };
	const int64_t align[3] = { head_align, head_align, 1 };
	mm_units_init(&j, align);
	ctx_par(c, L->wq.n_out + L->wk.n_out + L->wv.n_out, 16, mm_task, &j);
	return true;
}

/* Attention of each token over its sequence's positions 0..its own, in
 * runs: up to per_call consecutive tokens of one sequence at consecutive
 * positions go to one engine_attn_tokens() call per KV head (the SIMD
 * variants convert each K/V block once for all of them). Tasks are (run, KV
 * head) pairs, the last run first (later tokens see more positions), taken
 * from a shared counter so that a thread slowed by other work on the
 * machine delays no one. */
struct att_job {
	struct engine_ctx *c;
	int32_t il, n, per_call, n_runs;
	float scale;
	atomic_int next; /* the next task to take */
};

/* Token t continues the run of token t - 1. */
static bool att_continues(const struct engine_ctx *c, int32_t t)
{
	return t > 0 && c->tok_seq[t] == c->tok_seq[t - 1] &&
	       c->tok_pos[t] == c->tok_pos[t - 1] + 1;
}

/* Runs of tokens 0..n-1 (each at most per_call long); with want >= 0 also
 * run number want's first token and length. */
static int32_t att_runs(const struct engine_ctx *c, int32_t n, int32_t per_call, int32_t want,
			int32_t *t0, int32_t *nt)
{
	int32_t runs = 0, start = 0;
	for (int32_t t = 1; t <= n; t++) {
		if (t < n && att_continues(c, t) && t - start < per_call)
			continue;
		if (runs == want) {
			*t0 = start;
			*nt = t - start;
		}
		runs++;
		start = t;
	}
	return runs;
}

static void att_task(void *arg, int ith, int nth)
{
	(void)nth;
	struct att_job *j = arg;
	struct engine_ctx *c = j->c;
	const struct engine_hparams *hp = &c->m->hp;
	float *scratch = c->att_scratch + (size_t)ith * c->att_scratch_floats;
	const int64_t n_task = (int64_t)j->n_runs * hp->n_head_kv;
	for (;;) {
		const int64_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
		if (i >= n_task)
			break;
		const int32_t run = j->n_runs - 1 - (int32_t)(i / hp->n_head_kv);
		const int32_t hk = (int32_t)(i % hp->n_head_kv);
		int32_t t0 = 0, nt = 1;
		att_runs(c, j->n, j->per_call, run, &t0, &nt);
		const size_t off = cache_off(c, j->il, c->tok_seq[t0]);
		engine_attn_tokens(c->att_out + (size_t)t0 * (size_t)c->q_dim,
				   c->q + (size_t)t0 * (size_t)c->q_dim,
				   (const char *)c->k_cache + off, (const char *)c->v_cache + off,
				   c->p.kv_type, c->tok_pos[t0], nt, hp->n_head, hp->n_head_kv,
				   hp->head_dim, j->scale, hk, scratch);
	}
}

/* One step: n (<= n_batch) validated tokens whose sequences and positions
 * are in c->tok_seq / tok_pos. The n_out rows listed in c->out_idx get their
 * logits into logits_out ([n_out][n_vocab]); the last of them also goes to
 * c->logits. */
static void forward_batch(struct engine_ctx *c, const int32_t *tokens, int32_t n,
			  int32_t n_out, float *logits_out)
{
	const struct engine_model *m = c->m;
	const struct engine_hparams *hp = &m->hp;
	const int32_t E = hp->n_embd;
	const struct tk_type_traits *et = tk_type_traits(m->tok_embd.type);

	/* x[t] = token_embd[tokens[t]]: [n][n_embd] */
	for (int32_t t = 0; t < n; t++)
		et->to_float((const char *)m->tok_embd.data +
			     (size_t)tokens[t] * m->tok_embd.row_bytes,
			     c->x + (size_t)t * (size_t)E, E);
	/* attention runs (att_task); the reference takes one token a call */
	const int32_t att_per_call = engine_attn_isa_active() == ENGINE_ATTN_ISA_REF
					     ? 1
					     : engine_attn_tokens_per_call(hp->n_head, hp->n_head_kv);
	const int32_t att_n_runs = att_runs(c, n, att_per_call, -1, NULL, NULL);
	/* RoPE's cos/sin at each token's position, shared by every layer and head */
	for (int32_t t = 0; t < n; t++)
		engine_op_rope_cs(c->rope_cs + (size_t)t * (size_t)hp->n_rot, 0, hp->n_rot / 2,
				  c->tok_pos[t], &c->rope);

	for (int32_t il = 0; il < hp->n_layer; il++) {
		const struct engine_layer *L = &m->layers[il];

		/* [x += tmp (the previous layer's FFN);] h = rmsnorm(x) * attn_norm */
		ctx_norm(c, NULL, n, il > 0 ? c->tmp : NULL, L->attn_norm);
		/* q: [n][n_head*hd], k, v: [n][n_head_kv*hd] */
		const struct engine_weight *qkv[3] = { &L->wq, &L->wk, &L->wv };
		const enum engine_lora_slot qkv_s[3] = { ENGINE_LORA_Q, ENGINE_LORA_K,
							 ENGINE_LORA_V };
		float *const qkv_y[3] = { c->q, c->k, c->v };
		if (!ctx_qkv_fused(c, L, il, n)) {
			ctx_matmul_layer(c, 3, qkv, qkv_s, qkv_y, il, c->h, n, false);
			struct rope_job rj = { .c = c, .L = L, .il = il, .n = n };
			ctx_par(c, n, 4, rope_task, &rj);
		}
		/* attention of each token over positions 0..its own (causal) */
		struct att_job aj = { .c = c, .il = il, .n = n, .per_call = att_per_call,
				      .n_runs = att_n_runs,
				      .scale = 1.0f / sqrtf((float)hp->head_dim) };
		atomic_init(&aj.next, 0);
		ctx_par(c, (int64_t)att_n_runs * hp->n_head_kv, 1, att_task, &aj);
		/* tmp = Wo att_out: [n][n_embd]; x += tmp; h = rmsnorm(x) * ffn_norm */
		const struct engine_weight *wo = &L->wo;
		const enum engine_lora_slot wo_s = ENGINE_LORA_O;
		float *const wo_y = c->tmp;
		/* the norms' weights are asked for ahead of the product before
		 * them: every token's weight streaming evicts them to DRAM
		 * (decode: a layer's two norms 0.19 -> 0.13 ms a token on
		 * qwen15b; a hint, no effect on results) */
		tk_prefetch_ahead(L->ffn_norm, E * (int)sizeof(float), 0);
		ctx_matmul_layer(c, 1, &wo, &wo_s, &wo_y, il, c->att_out, n, false);
		ctx_norm(c, NULL, n, c->tmp, L->ffn_norm);
		/* gate = silu(Wgate h) * Wup h: [n][n_ff]; tmp = Wdown gate: [n][n_embd] */
		const struct engine_weight *gu[2] = { &L->w_gate, &L->w_up };
		const enum engine_lora_slot gu_s[2] = { ENGINE_LORA_GATE, ENGINE_LORA_UP };
		float *const gu_y[2] = { c->gate, c->up };
		ctx_matmul_layer(c, 2, gu, gu_s, gu_y, il, c->h, n, true);
		const struct engine_weight *wd = &L->w_down;
		const enum engine_lora_slot wd_s = ENGINE_LORA_DOWN;
		float *const wd_y = c->tmp;
		tk_prefetch_ahead(il + 1 < hp->n_layer ? m->layers[il + 1].attn_norm : m->output_norm,
				  E * (int)sizeof(float), 0);
		ctx_matmul_layer(c, 1, &wd, &wd_s, &wd_y, il, c->gate, n, false);
	}
	if (n_out == 0) {
		/* nothing wanted: finish the residual stream anyway (cheap) so
		 * the step's state is complete */
		engine_op_add(c->x, c->tmp, (int64_t)n * E);
		return;
	}
	/* logits = Woutput (rmsnorm(x + tmp) * output_norm), for the wanted
	 * rows, gathered to the front of h */
	ctx_norm(c, c->out_idx, n_out, c->tmp, m->output_norm);
	float *dst = logits_out ? logits_out : c->logits;
	ctx_matmul(c, dst, &m->output, c->h, n_out);
	ctx_lora_add(c, dst, &m->output, -1, ENGINE_LORA_Q, c->h, n_out);
	if (dst != c->logits)
		memcpy(c->logits, dst + (size_t)(n_out - 1) * (size_t)hp->n_vocab,
		       (size_t)hp->n_vocab * sizeof(float));
	c->have_logits = true;
}

int32_t engine_batch_n_wanted(const struct engine_batch *b)
{
	if (!b || b->n <= 0 || !b->tokens)
		return 0;
	if (b->want) {
		int32_t k = 0;
		for (int32_t i = 0; i < b->n; i++)
			k += b->want[i] != 0;
		return k;
	}
	if (!b->seq)
		return 1;
	/* distinct sequences present (quadratic in the worst case; batches
	 * are small and this is not on the hot path) */
	int32_t k = 0;
	for (int32_t i = 0; i < b->n; i++) {
		bool later = false;
		for (int32_t j = i + 1; j < b->n && !later; j++)
			later = b->seq[j] == b->seq[i];
		k += !later;
	}
	return k;
}

int engine_ctx_decode(struct engine_ctx *c, const struct engine_batch *b, float *logits)
{
	const int32_t n_vocab = c->m->hp.n_vocab, S = c->p.n_seq_max;
	if (!b || b->n <= 0 || !b->tokens)
		return tk_errf(TK_EINVAL, "context: decode of %d tokens", b ? b->n : 0);
	const int32_t n = b->n;
	for (int32_t s = 0; s < S; s++) {
		c->seq_count[s] = 0;
		c->seq_last[s] = -1;
	}
	for (int32_t i = 0; i < n; i++) {
		if (b->tokens[i] < 0 || b->tokens[i] >= n_vocab)
			return tk_errf(TK_EINVAL, "context: token %d at index %d is outside the "
				       "vocabulary (0..%d)", b->tokens[i], i, n_vocab - 1);
		const int32_t s = b->seq ? b->seq[i] : 0;
		if (s < 0 || s >= S)
			return tk_errf(TK_EINVAL, "context: sequence %d at index %d is outside "
				       "0..%d", s, i, S - 1);
		c->seq_count[s]++;
		c->seq_last[s] = i;
	}
	for (int32_t s = 0; s < S; s++)
		if (c->seq_count[s] > c->p.n_ctx - c->seq_n_past[s])
			return tk_errf(TK_ELIMIT, "context: %d tokens at position %d of sequence %d "
				       "exceed the context size %d", c->seq_count[s],
				       c->seq_n_past[s], s, c->p.n_ctx);
	/* the last wanted token of the whole batch */
	int32_t last_want = -1;
	for (int32_t i = 0; i < n; i++) {
		const bool want = b->want ? b->want[i] != 0
					  : c->seq_last[b->seq ? b->seq[i] : 0] == i;
		if (want)
			last_want = i;
	}
	size_t row = 0; /* logit rows written so far */
	for (int32_t done = 0; done < n;) {
		const int32_t step = n - done < c->p.n_batch ? n - done : c->p.n_batch;
		int32_t n_out = 0;
		for (int32_t t = 0; t < step; t++) {
			const int32_t i = done + t, s = b->seq ? b->seq[i] : 0;
			c->tok_seq[t] = s;
			c->tok_pos[t] = c->seq_n_past[s]++;
			const bool want = b->want ? b->want[i] != 0 : c->seq_last[s] == i;
			if (want && (logits || i == last_want))
				c->out_idx[n_out++] = t;
		}
		forward_batch(c, b->tokens + done, step, n_out,
			      logits && n_out ? logits + row * (size_t)n_vocab : NULL);
		row += (size_t)n_out;
		done += step;
	}
	return 0;
}

int engine_ctx_eval(struct engine_ctx *c, const int32_t *tokens, int32_t n, float *logits_all)
{
	const int32_t n_vocab = c->m->hp.n_vocab;
	if (n <= 0)
		return tk_errf(TK_EINVAL, "context: eval of %d tokens", n);
	if (n > c->p.n_ctx - c->seq_n_past[0])
		return tk_errf(TK_ELIMIT, "context: %d tokens at position %d exceed the context "
			       "size %d", n, c->seq_n_past[0], c->p.n_ctx);
	for (int32_t i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= n_vocab)
			return tk_errf(TK_EINVAL, "context: token %d at index %d is outside the "
				       "vocabulary (0..%d)", tokens[i], i, n_vocab - 1);
	for (int32_t done = 0; done < n;) {
		const int32_t step = n - done < c->p.n_batch ? n - done : c->p.n_batch;
		int32_t n_out = 0;
		for (int32_t t = 0; t < step; t++) {
			c->tok_seq[t] = 0;
			c->tok_pos[t] = c->seq_n_past[0]++;
			if (logits_all || done + t == n - 1)
				c->out_idx[n_out++] = t;
		}
		forward_batch(c, tokens + done, step, n_out,
			      logits_all ? logits_all + (size_t)done * (size_t)n_vocab : NULL);
		done += step;
	}
	return 0;
}

const float *engine_ctx_logits(const struct engine_ctx *c)
{
	return c->have_logits ? c->logits : NULL;
}

int32_t engine_ctx_n_past(const struct engine_ctx *c)
{
	return c->seq_n_past[0];
}

int32_t engine_ctx_n_ctx(const struct engine_ctx *c)
{
	return c->p.n_ctx;
}

int32_t engine_ctx_n_seq_max(const struct engine_ctx *c)
{
	return c->p.n_seq_max;
}

int32_t engine_ctx_n_threads(const struct engine_ctx *c)
{
	return c->p.n_threads;
}

int32_t engine_ctx_seq_n_past(const struct engine_ctx *c, int32_t seq)
{
	return seq < 0 || seq >= c->p.n_seq_max ? -1 : c->seq_n_past[seq];
}

int engine_ctx_seq_rewind(struct engine_ctx *c, int32_t seq, int32_t n_past)
{
	if (seq < 0 || seq >= c->p.n_seq_max)
		return tk_errf(TK_EINVAL, "context: no sequence %d (0..%d)", seq,
			       c->p.n_seq_max - 1);
	if (n_past < 0 || n_past > c->seq_n_past[seq])
		return tk_errf(TK_EINVAL, "context: cannot rewind sequence %d to %d (at %d)", seq,
			       n_past, c->seq_n_past[seq]);
	c->seq_n_past[seq] = n_past;
	if (seq == 0 && n_past == 0)
		c->have_logits = false;
	return 0;
}

int engine_ctx_seq_clear(struct engine_ctx *c, int32_t seq)
{
	return engine_ctx_seq_rewind(c, seq, 0);
}

int engine_ctx_rewind(struct engine_ctx *c, int32_t n_past)
{
	if (n_past < 0 || n_past > c->seq_n_past[0])
		return tk_errf(TK_EINVAL, "context: cannot rewind to %d (at %d)", n_past,
			       c->seq_n_past[0]);
	return engine_ctx_seq_rewind(c, 0, n_past);
}

void engine_ctx_mem(const struct engine_ctx *c, struct engine_mem *out)
{
	out->weights_bytes = c->m->weights_bytes;
	out->kv_bytes = c->kv_bytes;
	out->scratch_bytes = c->scratch_bytes;
}

const struct engine_model *engine_ctx_model(const struct engine_ctx *c)
{
	return c->m;
}
