/*
 * ops.c — reference kernels of the forward pass (ops.h).
 *
 * Owns nothing: every function works on borrowed buffers. Numerics follow
 * llama.cpp's CPU backend where it matters for matching its logits (sums of
 * squares and softmax sums in double, RoPE angles by repeated float
 * multiplication, activations encoded to the weight's vec_dot_type).
 */
#include "engine/ops.h"

#include "engine/fp16.h"
#include "engine/quant.h"

#include <math.h>
#include <string.h>

void engine_op_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)(x[i] * x[i]);
	float mean = (float)(sum / (double)n);
	float scale = 1.0f / sqrtf(mean + eps);
	for (int64_t i = 0; i < n; i++)
		out[i] = x[i] * scale * (w ? w[i] : 1.0f);
}

void engine_op_silu_mul(float *x, const float *y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		x[i] = x[i] / (1.0f + expf(-x[i])) * y[i];
}

void engine_op_softmax(float *x, int64_t n)
{
	float max = -INFINITY;
	for (int64_t i = 0; i < n; i++)
		if (x[i] > max)
			max = x[i];
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++) {
		float e = x[i] == -INFINITY ? 0.0f : expf(x[i] - max);
		x[i] = e;
		sum += (double)e;
	}
	float inv = (float)(1.0 / sum);
	for (int64_t i = 0; i < n; i++)
		x[i] *= inv;
}

void engine_op_add(float *out, const float *b, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		out[i] += b[i];
}

void engine_op_rope(float *x, int32_t n_head, int32_t head_dim, int32_t pos,
		    const struct engine_rope *rope)
{
	const int32_t n_rot = rope->n_rot;
	const float theta_scale = powf(rope->freq_base, -2.0f / (float)n_rot);
	for (int32_t h = 0; h < n_head; h++) {
		float *xh = x + (size_t)h * (size_t)head_dim; /* [head_dim] */
		float theta = (float)pos;
		for (int32_t i = 0; i < n_rot / 2; i++) {
			float ff = rope->freq_factors ? rope->freq_factors[i] : 1.0f;
			float angle = rope->freq_scale * (theta / ff);
			float c = cosf(angle), s = sinf(angle);
			/* the two elements rotated together */
			int32_t a = rope->style == ENGINE_ROPE_NORM ? 2 * i : i;
			int32_t b = rope->style == ENGINE_ROPE_NORM ? 2 * i + 1 : i + n_rot / 2;
			float x0 = xh[a], x1 = xh[b];
			xh[a] = x0 * c - x1 * s;
			xh[b] = x0 * s + x1 * c;
			theta *= theta_scale;
		}
	}
}

/* The encoding activations take for weights of `type`: its vec_dot_type,
 * except F16 weights, whose activations stay float32 and are dotted with the
 * weights widened to float. The goldens say llama.cpp computed F16 that way
 * on the machine that made them: rounding activations to F16 measured 10x
 * further from its logits (docs/engine.md, "Golden comparison"). */
static int act_type(const struct tk_type_traits *tr, int type)
{
	return type == TK_TYPE_F16 ? TK_TYPE_F32 : (int)tr->vec_dot_type;
}

size_t engine_op_matmul_scratch(int type, int64_t n_in)
{
	const struct tk_type_traits *tr = tk_type_traits(type);
	size_t bytes;
	if (!tr || tk_type_row_size(act_type(tr, type), n_in, &bytes))
		return 0;
	return bytes;
}

const void *engine_op_matmul_prepare(const struct engine_weight *w, const float *x,
				     int32_t n_tok, void *scratch)
{
	const struct tk_type_traits *tr = tk_type_traits(w->type);
	const int at = act_type(tr, w->type);
	if (at == TK_TYPE_F32)
		return x;
	const struct tk_type_traits *vt = tk_type_traits(at);
	const size_t row = engine_op_matmul_scratch(w->type, w->n_in);
	for (int32_t t = 0; t < n_tok; t++)
		vt->from_float(x + (size_t)t * (size_t)w->n_in, (char *)scratch + (size_t)t * row,
			       w->n_in);
	return scratch;
}

/* F16 rows [row_begin, row_end) of W times float activations x[n_tok][n_in].
 * Each output sums with 4 partial sums (element i adds into lane i % 4;
 * 4 lanes measured as close to the goldens as a plain sum, 8 lanes 3x
 * further). A 64-element chunk of a row is widened to float once and used
 * for up to F16_TOK_GROUP tokens, so a batch does not convert a row per
 * token; the arithmetic per output is the same for any batch size. */
#define F16_TOK_GROUP 16
static void matmul_f16(float *y, const struct engine_weight *w, const float *x, int32_t n_tok,
		       int64_t row_begin, int64_t row_end)
{
	const struct tk_type_traits *tr = tk_type_traits(TK_TYPE_F16);
	const int64_t n = w->n_in;
	float wf[64]; /* a chunk of the row, widened */
	for (int64_t r = row_begin; r < row_end; r++) {
		const uint16_t *wr = (const uint16_t *)((const char *)w->data +
							(size_t)r * w->row_bytes);
		for (int32_t t0 = 0; t0 < n_tok; t0 += F16_TOK_GROUP) {
			const int32_t nt = n_tok - t0 < F16_TOK_GROUP ? n_tok - t0 : F16_TOK_GROUP;
			float acc[F16_TOK_GROUP][4] = { { 0 } }, tail[F16_TOK_GROUP] = { 0 };
			for (int64_t i = 0; i < n; i += 64) {
				const int64_t len = n - i < 64 ? n - i : 64;
				tr->to_float(wr + i, wf, len);
				for (int32_t t = 0; t < nt; t++) {
					const float *xt = x + (size_t)(t0 + t) * (size_t)n + (size_t)i;
					int64_t j = 0;
					for (; j + 4 <= len; j += 4)
						for (int k = 0; k < 4; k++)
							acc[t][k] += wf[j + k] * xt[j + k];
					for (; j < len; j++)
						tail[t] += wf[j] * xt[j];
				}
			}
			for (int32_t t = 0; t < nt; t++)
				y[(size_t)(t0 + t) * (size_t)w->n_out + (size_t)r] =
					((acc[t][0] + acc[t][1]) + (acc[t][2] + acc[t][3])) + tail[t];
		}
	}
}

void engine_op_matmul_run(float *y, const struct engine_weight *w, const void *xq,
			  int32_t n_tok, int64_t row_begin, int64_t row_end)
{
	if (w->type == TK_TYPE_F16) {
		matmul_f16(y, w, xq, n_tok, row_begin, row_end);
		return;
	}
	const struct tk_type_traits *tr = tk_type_traits(w->type);
	const size_t xrow = engine_op_matmul_scratch(w->type, w->n_in); /* encoded row bytes */
	const unsigned char *rows = w->data;
	/* weight row outer: one row of W serves every token while it is hot */
	for (int64_t r = row_begin; r < row_end; r++) {
		const void *wr = rows + (size_t)r * w->row_bytes;
		for (int32_t t = 0; t < n_tok; t++)
			tr->vec_dot(w->n_in, &y[(size_t)t * (size_t)w->n_out + (size_t)r], wr,
				    (const char *)xq + (size_t)t * xrow);
	}
}

void engine_op_matmul(float *y, const struct engine_weight *w, const float *x, int32_t n_tok,
		      void *scratch)
{
	const void *xq = engine_op_matmul_prepare(w, x, n_tok, scratch);
	engine_op_matmul_run(y, w, xq, n_tok, 0, w->n_out);
}

/* dot of a float row with a cache row of kv_type */
static float kv_dot(const float *a, const void *row, enum engine_kv_type kv_type, int32_t n)
{
	float sum = 0.0f;
	if (kv_type == ENGINE_KV_F32) {
		const float *r = row;
		for (int32_t i = 0; i < n; i++)
			sum += a[i] * r[i];
	} else {
		const uint16_t *r = row;
		for (int32_t i = 0; i < n; i++)
			sum += a[i] * tk_fp16_to_fp32(r[i]);
	}
	return sum;
}

void engine_op_attention(float *out, const float *q, const void *k, const void *v,
			 enum engine_kv_type kv_type, int32_t n_kv, int32_t n_head,
			 int32_t n_head_kv, int32_t head_dim, float scale, float *att,
			 float *qbuf)
{
	const int32_t group = n_head / n_head_kv;        /* query heads per KV head */
	const size_t kv_row = (size_t)n_head_kv * (size_t)head_dim; /* elements per position */
	const size_t esz = kv_type == ENGINE_KV_F32 ? sizeof(float) : sizeof(uint16_t);
	for (int32_t h = 0; h < n_head; h++) {
		const int32_t hk = h / group;
		const float *qh = q + (size_t)h * (size_t)head_dim; /* [head_dim] */
		if (kv_type == ENGINE_KV_F16) {
			for (int32_t i = 0; i < head_dim; i++)
				qbuf[i] = tk_round_fp16(qh[i]);
			qh = qbuf;
		}
		/* scores over the visible positions: att[n_kv] */
		for (int32_t j = 0; j < n_kv; j++) {
			const char *kr = (const char *)k +
					 ((size_t)j * kv_row + (size_t)hk * (size_t)head_dim) * esz;
			att[j] = kv_dot(qh, kr, kv_type, head_dim) * scale;
		}
		engine_op_softmax(att, n_kv);
		if (kv_type == ENGINE_KV_F16)
			for (int32_t j = 0; j < n_kv; j++)
				att[j] = tk_round_fp16(att[j]);
		/* out_h[d] = sum_j att[j] * v[j][hk][d], summed over j in order for
		 * every d (the loop nest only changes the memory walk) */
		float *oh = out + (size_t)h * (size_t)head_dim; /* [head_dim] */
		for (int32_t d = 0; d < head_dim; d++)
			oh[d] = 0.0f;
		for (int32_t j = 0; j < n_kv; j++) {
			const size_t base = (size_t)j * kv_row + (size_t)hk * (size_t)head_dim;
			const float p = att[j];
			if (kv_type == ENGINE_KV_F32) {
				const float *vr = (const float *)v + base;
				for (int32_t d = 0; d < head_dim; d++)
					oh[d] += p * vr[d];
			} else {
				const uint16_t *vr = (const uint16_t *)v + base;
				for (int32_t d = 0; d < head_dim; d++)
					oh[d] += p * tk_fp16_to_fp32(vr[d]);
			}
		}
	}
}
