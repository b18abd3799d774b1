/*
 * context.c — KV cache, scratch and the forward pass (context.h).
 *
 * Owns every buffer of a context, all allocated in engine_ctx_new():
 *   k_cache, v_cache  [n_layer][n_ctx][n_head_kv * head_dim]  kv_type elements
 *   x    [n_batch][n_embd]     residual stream
 *   h    [n_batch][n_embd]     normed input of a sub-block
 *   q    [n_batch][n_head * head_dim]
 *   k, v [n_batch][n_head_kv * head_dim]
 *   att_out [n_batch][n_head * head_dim]
 *   gate, up [n_batch][n_ff]
 *   tmp  [n_batch][n_embd]     output of Wo / Wdown before the residual add
 *   xq   [n_batch][encoded row] activations in a weight's vec_dot_type
 *   att  [n_ctx]  qbuf [head_dim]   attention scratch
 *   logits [n_vocab]          last position
 *   lora_r [n_batch][max rank], lora_y [n_batch][widest output]: LoRA
 *        scratch, allocated by engine_ctx_set_adapters (grows only)
 */
#include "engine/context.h"

#include "core/err.h"
#include "engine/fp16.h"
#include "engine/quant.h"
#include "obs/log.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct engine_ctx {
	const struct engine_model *m; /* borrowed */
	struct engine_ctx_params p;   /* n_ctx, n_batch, n_threads resolved */
	struct engine_rope rope;
	int32_t n_past;
	int32_t kv_dim;  /* n_head_kv * head_dim */
	int32_t q_dim;   /* n_head * head_dim */
	size_t kv_esz;   /* bytes per cache element */
	void *k_cache, *v_cache;
	float *x, *h, *q, *k, *v, *att_out, *gate, *up, *tmp, *att, *qbuf, *logits;
	void *xq;
	size_t xq_row_bytes; /* largest encoded activation row */
	bool have_logits;
	size_t kv_bytes, scratch_bytes;
	struct engine_lora_use lora[ENGINE_LORA_MAX_ACTIVE]; /* adapters borrowed */
	size_t n_lora;
	float *lora_r, *lora_y;
	size_t lora_r_cap, lora_y_cap; /* floats */
};

void engine_ctx_params_default(struct engine_ctx_params *p)
{
	*p = (struct engine_ctx_params){ .n_ctx = 0, .n_batch = 0, .n_threads = 1,
					 .kv_type = ENGINE_KV_F16 };
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
		p.n_threads = 1;
	if (p.n_ctx < 1 || p.n_ctx > (1 << 24) || p.n_batch < 1 || p.n_batch > p.n_ctx ||
	    p.n_threads < 1 || p.n_threads > ENGINE_MAX_THREADS ||
	    (p.kv_type != ENGINE_KV_F16 && p.kv_type != ENGINE_KV_F32)) {
		tk_errf(TK_EINVAL, "context: bad parameters (n_ctx %d, n_batch %d, n_threads %d)",
			p.n_ctx, p.n_batch, p.n_threads);
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

	const size_t B = (size_t)p.n_batch;
	const size_t cache_elems = (size_t)hp->n_layer * (size_t)p.n_ctx * (size_t)c->kv_dim;
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
	    !(c->att = ctx_alloc((size_t)p.n_ctx, sizeof(float), sc)) ||
	    !(c->qbuf = ctx_alloc((size_t)hp->head_dim, sizeof(float), sc)) ||
	    !(c->logits = ctx_alloc((size_t)hp->n_vocab, sizeof(float), sc))) {
		tk_errf(TK_ENOMEM, "context: out of memory (n_ctx %d: KV cache %zu bytes so far, "
			"scratch %zu bytes so far)", p.n_ctx, c->kv_bytes, c->scratch_bytes);
		engine_ctx_free(c);
		return NULL;
	}
	tk_logf(TK_LOG_DEBUG, "engine",
		TK_FIELDS(TK_LF_I("n_ctx", p.n_ctx), TK_LF_I("n_batch", p.n_batch),
			  TK_LF_I("n_threads", p.n_threads),
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
	free(c->att);
	free(c->qbuf);
	free(c->logits);
	free(c->lora_r);
	free(c->lora_y);
	free(c);
}

/* ------------------------------------------------ threaded matmul */

struct mm_share {
	float *y;
	const struct engine_weight *w;
	const void *xq;
	int32_t n_tok;
	int64_t row_begin, row_end;
};

static void *mm_worker(void *arg)
{
	struct mm_share *s = arg;
	engine_op_matmul_run(s->y, s->w, s->xq, s->n_tok, s->row_begin, s->row_end);
	return NULL;
}

/* y[n_tok][w->n_out] = W x[n_tok][w->n_in], rows split over the threads.
 * Falls back to the calling thread alone when a thread cannot start. */
static void ctx_matmul(struct engine_ctx *c, float *y, const struct engine_weight *w,
		       const float *x, int32_t n_tok)
{
	const void *xq = engine_op_matmul_prepare(w, x, n_tok, c->xq);
	int32_t nt = c->p.n_threads;
	/* small products are not worth a thread start */
	if ((int64_t)nt > w->n_out / 16)
		nt = (int32_t)(w->n_out / 16 > 0 ? w->n_out / 16 : 1);
	if (nt <= 1) {
		engine_op_matmul_run(y, w, xq, n_tok, 0, w->n_out);
		return;
	}
	struct mm_share share[ENGINE_MAX_THREADS];
	pthread_t tid[ENGINE_MAX_THREADS];
	bool started[ENGINE_MAX_THREADS] = { false };
	for (int32_t i = 0; i < nt; i++) {
		share[i] = (struct mm_share){ .y = y, .w = w, .xq = xq, .n_tok = n_tok,
					      .row_begin = w->n_out * i / nt,
					      .row_end = w->n_out * (i + 1) / nt };
	}
	for (int32_t i = 1; i < nt; i++)
		started[i] = pthread_create(&tid[i], NULL, mm_worker, &share[i]) == 0;
	mm_worker(&share[0]);
	for (int32_t i = 1; i < nt; i++) {
		if (started[i])
			pthread_join(tid[i], NULL);
		else
			mm_worker(&share[i]); /* could not start: do its share here */
	}
}

/* y = W x for layer il's weight `slot` (il < 0: the output weight), plus
 * every active adapter's s * B (A x) (lora.h), added in the set's order. */
static void ctx_matmul_lora(struct engine_ctx *c, float *y, const struct engine_weight *w,
			    int32_t il, enum engine_lora_slot slot, const float *x, int32_t n_tok)
{
	ctx_matmul(c, y, w, x, n_tok);
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

/* Stores one position's k/v rows ([kv_dim] floats) in layer il's cache. */
static void cache_store(struct engine_ctx *c, int32_t il, int32_t pos, const float *k,
			const float *v)
{
	const size_t off = ((size_t)il * (size_t)c->p.n_ctx + (size_t)pos) * (size_t)c->kv_dim;
	if (c->p.kv_type == ENGINE_KV_F32) {
		memcpy((float *)c->k_cache + off, k, (size_t)c->kv_dim * sizeof(float));
		memcpy((float *)c->v_cache + off, v, (size_t)c->kv_dim * sizeof(float));
	} else {
		uint16_t *kd = (uint16_t *)c->k_cache + off, *vd = (uint16_t *)c->v_cache + off;
		for (int32_t i = 0; i < c->kv_dim; i++) {
			kd[i] = tk_fp32_to_fp16(k[i]);
			vd[i] = tk_fp32_to_fp16(v[i]);
		}
	}
}

/* One step: n (<= n_batch) tokens at positions n_past.., tokens validated.
 * logits_out: NULL or [n][n_vocab]; the last row also goes to c->logits. */
static void forward_batch(struct engine_ctx *c, const int32_t *tokens, int32_t n,
			  float *logits_out)
{
	const struct engine_model *m = c->m;
	const struct engine_hparams *hp = &m->hp;
	const int32_t E = hp->n_embd, hd = hp->head_dim;
	const struct tk_type_traits *et = tk_type_traits(m->tok_embd.type);
	const float kq_scale = 1.0f / sqrtf((float)hd);

	/* x[t] = token_embd[tokens[t]]: [n][n_embd] */
	for (int32_t t = 0; t < n; t++)
		et->to_float((const char *)m->tok_embd.data +
			     (size_t)tokens[t] * m->tok_embd.row_bytes,
			     c->x + (size_t)t * (size_t)E, E);

	for (int32_t il = 0; il < hp->n_layer; il++) {
		const struct engine_layer *L = &m->layers[il];

		/* h = rmsnorm(x) * attn_norm: [n][n_embd] */
		for (int32_t t = 0; t < n; t++)
			engine_op_rmsnorm(c->h + (size_t)t * E, c->x + (size_t)t * E, L->attn_norm,
					  E, hp->rms_eps);
		/* q: [n][n_head*hd], k, v: [n][n_head_kv*hd] */
		ctx_matmul_lora(c, c->q, &L->wq, il, ENGINE_LORA_Q, c->h, n);
		ctx_matmul_lora(c, c->k, &L->wk, il, ENGINE_LORA_K, c->h, n);
		ctx_matmul_lora(c, c->v, &L->wv, il, ENGINE_LORA_V, c->h, n);
		for (int32_t t = 0; t < n; t++) {
			float *qt = c->q + (size_t)t * (size_t)c->q_dim;
			float *kt = c->k + (size_t)t * (size_t)c->kv_dim;
			float *vt = c->v + (size_t)t * (size_t)c->kv_dim;
			if (L->bq) {
				engine_op_add(qt, L->bq, c->q_dim);
				engine_op_add(kt, L->bk, c->kv_dim);
				engine_op_add(vt, L->bv, c->kv_dim);
			}
			const int32_t pos = c->n_past + t;
			engine_op_rope(qt, hp->n_head, hd, pos, &c->rope);
			engine_op_rope(kt, hp->n_head_kv, hd, pos, &c->rope);
			cache_store(c, il, pos, kt, vt);
		}
		/* attention of each token over positions 0..its own (causal) */
		const size_t layer_off = (size_t)il * (size_t)c->p.n_ctx * (size_t)c->kv_dim *
					 c->kv_esz;
		for (int32_t t = 0; t < n; t++)
			engine_op_attention(c->att_out + (size_t)t * (size_t)c->q_dim,
					    c->q + (size_t)t * (size_t)c->q_dim,
					    (const char *)c->k_cache + layer_off,
					    (const char *)c->v_cache + layer_off, c->p.kv_type,
					    c->n_past + t + 1, hp->n_head, hp->n_head_kv, hd, kq_scale,
					    c->att, c->qbuf);
		/* x += Wo att_out: [n][n_embd] */
		ctx_matmul_lora(c, c->tmp, &L->wo, il, ENGINE_LORA_O, c->att_out, n);
		engine_op_add(c->x, c->tmp, (int64_t)n * E);

		/* h = rmsnorm(x) * ffn_norm; x += Wdown(silu(Wgate h) * Wup h) */
		for (int32_t t = 0; t < n; t++)
			engine_op_rmsnorm(c->h + (size_t)t * E, c->x + (size_t)t * E, L->ffn_norm,
					  E, hp->rms_eps);
		ctx_matmul_lora(c, c->gate, &L->w_gate, il, ENGINE_LORA_GATE, c->h, n); /* [n][n_ff] */
		ctx_matmul_lora(c, c->up, &L->w_up, il, ENGINE_LORA_UP, c->h, n); /* [n][n_ff] */
		engine_op_silu_mul(c->gate, c->up, (int64_t)n * hp->n_ff);
		ctx_matmul_lora(c, c->tmp, &L->w_down, il, ENGINE_LORA_DOWN, c->gate, n); /* [n][n_embd] */
		engine_op_add(c->x, c->tmp, (int64_t)n * E);
	}

	/* logits = Woutput (rmsnorm(x) * output_norm), for the rows wanted */
	const int32_t first = logits_out ? 0 : n - 1;
	for (int32_t t = first; t < n; t++)
		engine_op_rmsnorm(c->h + (size_t)(t - first) * E, c->x + (size_t)t * E,
				  m->output_norm, E, hp->rms_eps);
	if (logits_out) {
		ctx_matmul_lora(c, logits_out, &m->output, -1, ENGINE_LORA_Q, c->h, n); /* [n][n_vocab] */
		memcpy(c->logits, logits_out + (size_t)(n - 1) * (size_t)hp->n_vocab,
		       (size_t)hp->n_vocab * sizeof(float));
	} else {
		ctx_matmul_lora(c, c->logits, &m->output, -1, ENGINE_LORA_Q, c->h, 1); /* [1][n_vocab] */
	}
	c->have_logits = true;
	c->n_past += n;
}

int engine_ctx_eval(struct engine_ctx *c, const int32_t *tokens, int32_t n, float *logits_all)
{
	const int32_t n_vocab = c->m->hp.n_vocab;
	if (n <= 0)
		return tk_errf(TK_EINVAL, "context: eval of %d tokens", n);
	if (n > c->p.n_ctx - c->n_past)
		return tk_errf(TK_ELIMIT, "context: %d tokens at position %d exceed the context "
			       "size %d", n, c->n_past, c->p.n_ctx);
	for (int32_t i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= n_vocab)
			return tk_errf(TK_EINVAL, "context: token %d at index %d is outside the "
				       "vocabulary (0..%d)", tokens[i], i, n_vocab - 1);
	for (int32_t done = 0; done < n;) {
		int32_t step = n - done < c->p.n_batch ? n - done : c->p.n_batch;
		forward_batch(c, tokens + done, step,
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
	return c->n_past;
}

int32_t engine_ctx_n_ctx(const struct engine_ctx *c)
{
	return c->p.n_ctx;
}

int engine_ctx_rewind(struct engine_ctx *c, int32_t n_past)
{
	if (n_past < 0 || n_past > c->n_past)
		return tk_errf(TK_EINVAL, "context: cannot rewind to %d (at %d)", n_past, c->n_past);
	c->n_past = n_past;
	if (n_past == 0)
		c->have_logits = false;
	return 0;
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
