/*
 * ops.c — reference kernels of the forward pass (ops.h).
 *
 * Owns nothing: every function works on borrowed buffers. Numerics follow
 * llama.cpp's CPU backend where it matters for matching its logits (sums of
 * squares and softmax sums in double, RoPE angles by repeated float
 * multiplication, activations encoded to the weight's vec_dot_type).
 */
#include "engine/ops.h"

#include "core/env.h"
#include "engine/fp16.h"
#include "engine/ops_simd.h"
#include "engine/quant.h"
#include "engine/quant_pack.h"

#include <math.h>
#include <string.h>

void engine_op_rmsnorm_finish(float *out, const float *x, const float *w, int64_t n, float eps,
			      double sumsq)
{
	const float mean = (float)(sumsq / (double)n);
	const float scale = 1.0f / sqrtf(mean + eps);
	if (w) {
		for (int64_t i = 0; i < n; i++)
			out[i] = x[i] * scale * w[i];
	} else {
		for (int64_t i = 0; i < n; i++)
			out[i] = x[i] * scale;
	}
}

void engine_op_rmsnorm_ref(float *out, const float *x, const float *w, int64_t n, float eps)
{
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)(x[i] * x[i]);
	engine_op_rmsnorm_finish(out, x, w, n, eps, sum);
}

void engine_op_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
	engine_op_rmsnorm_isa(engine_ops_isa_active(), out, x, w, n, eps);
}

void engine_op_silu_mul_ref(float *x, const float *y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		x[i] = x[i] / (1.0f + expf(-x[i])) * y[i];
}

void engine_op_silu_mul(float *x, const float *y, int64_t n)
{
	engine_op_silu_mul_isa(engine_ops_isa_active(), x, y, n);
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

void engine_op_rope_cs(float *cs, int32_t i0, int32_t n_pairs, int32_t pos,
		       const struct engine_rope *rope)
{
	const float theta_scale = powf(rope->freq_base, -2.0f / (float)rope->n_rot);
	/* theta of pair i0: pos times theta_scale i0 times, in float, the very
	 * multiplications the per-pair loop below would have made */
	float theta = (float)pos;
	for (int32_t i = 0; i < i0; i++)
		theta *= theta_scale;
	for (int32_t i = i0; i < i0 + n_pairs; i++) {
		const float ff = rope->freq_factors ? rope->freq_factors[i] : 1.0f;
		const float angle = rope->freq_scale * (theta / ff);
		cs[2 * (i - i0)] = cosf(angle);
		cs[2 * (i - i0) + 1] = sinf(angle);
		theta *= theta_scale;
	}
}

void engine_op_rope_apply(float *x, int32_t n_head, int32_t head_dim, const float *cs,
			  int32_t i0, int32_t n_pairs, const struct engine_rope *rope)
{
	const int32_t half = rope->n_rot / 2;
	for (int32_t h = 0; h < n_head; h++) {
		float *xh = x + (size_t)h * (size_t)head_dim; /* [head_dim] */
		if (rope->style == ENGINE_ROPE_NORM) {
			/* pairs (2i, 2i+1) */
			float *p = xh + 2 * (size_t)i0;
			for (int32_t k = 0; k < n_pairs; k++) {
				const float c = cs[2 * k], s = cs[2 * k + 1];
				const float x0 = p[2 * k], x1 = p[2 * k + 1];
				p[2 * k] = x0 * c - x1 * s;
				p[2 * k + 1] = x0 * s + x1 * c;
			}
		} else {
			/* pairs (i, i + n_rot/2) */
			float *a = xh + i0, *b = xh + i0 + half;
			for (int32_t k = 0; k < n_pairs; k++) {
				const float c = cs[2 * k], s = cs[2 * k + 1];
				const float x0 = a[k], x1 = b[k];
				a[k] = x0 * c - x1 * s;
				b[k] = x0 * s + x1 * c;
			}
		}
	}
}

void engine_op_rope(float *x, int32_t n_head, int32_t head_dim, int32_t pos,
		    const struct engine_rope *rope)
{
	/* cos and sin once per pair for all heads, in chunks of pairs so the
	 * table stays on the stack whatever n_rot is */
	float cs[2 * ENGINE_ROPE_CS_PAIRS];
	const int32_t half = rope->n_rot / 2;
	for (int32_t i0 = 0; i0 < half; i0 += ENGINE_ROPE_CS_PAIRS) {
		const int32_t np = half - i0 < ENGINE_ROPE_CS_PAIRS ? half - i0 : ENGINE_ROPE_CS_PAIRS;
		engine_op_rope_cs(cs, i0, np, pos, rope);
		engine_op_rope_apply(x, n_head, head_dim, cs, i0, np, rope);
	}
}

void engine_op_rope_ref(float *x, int32_t n_head, int32_t head_dim, int32_t pos,
			const struct engine_rope *rope)
{
	const int32_t n_rot = rope->n_rot;
	const float theta_scale = powf(rope->freq_base, -2.0f / (float)n_rot);
	for (int32_t h = 0; h < n_head; h++) {
		float *xh = x + (size_t)h * (size_t)head_dim; /* [head_dim] */
		float theta = (float)pos;
		for (int32_t i = 0; i < n_rot / 2; i++) {
			const float ff = rope->freq_factors ? rope->freq_factors[i] : 1.0f;
			const float angle = rope->freq_scale * (theta / ff);
			const float c = cosf(angle), s = sinf(angle);
			const int32_t a = rope->style == ENGINE_ROPE_NORM ? 2 * i : i;
			const int32_t b = rope->style == ENGINE_ROPE_NORM ? 2 * i + 1 : i + n_rot / 2;
			const float x0 = xh[a], x1 = xh[b];
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

int engine_op_matmul_act_type(int type)
{
	const struct tk_type_traits *tr = tk_type_traits(type);
	return tr ? act_type(tr, type) : -1;
}

size_t engine_op_matmul_scratch(int type, int64_t n_in)
{
	const struct tk_type_traits *tr = tk_type_traits(type);
	return tr ? tk_act_row_size(act_type(tr, type), n_in) : 0;
}

const void *engine_op_matmul_prepare(const struct engine_weight *w, const float *x,
				     int32_t n_tok, void *scratch)
{
	const struct tk_type_traits *tr = tk_type_traits(w->type);
	const int at = act_type(tr, w->type);
	if (at == TK_TYPE_F32)
		return x;
	const size_t row = engine_op_matmul_scratch(w->type, w->n_in);
	for (int32_t t = 0; t < n_tok; t++)
		tk_act_encode(at, x + (size_t)t * (size_t)w->n_in, (char *)scratch + (size_t)t * row,
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

/* Rows per cache chunk of a tiled product: about ENGINE_MM_CHUNK_BYTES of
 * weights, a multiple of TK_TILE_MAX, at least one tile. */
static int64_t mm_chunk_rows(size_t row_bytes)
{
	int64_t rows = (int64_t)(ENGINE_MM_CHUNK_BYTES / (row_bytes ? row_bytes : 1));
	rows -= rows % TK_TILE_MAX;
	return rows < TK_TILE_MAX ? TK_TILE_MAX : rows;
}

/* The file-layout product of rows [row_begin, row_end) (engine_op_matmul_run
 * without a packed copy). */
static void matmul_rows(float *y, const struct engine_weight *w, const void *xq, int32_t n_tok,
			int64_t row_begin, int64_t row_end)
{
	const struct tk_type_traits *tr = tk_type_traits(w->type);
	if (w->type == TK_TYPE_F16 && !tr->vec_dot_tile) {
		/* F16 weights with float activations: the portable loop (the
		 * type's vec_dot is F16 x F16; only its tile takes floats) */
		matmul_f16(y, w, xq, n_tok, row_begin, row_end);
		return;
	}
	const size_t xrow = engine_op_matmul_scratch(w->type, w->n_in); /* encoded row bytes */
	const unsigned char *rows = w->data;
	const size_t n_out = (size_t)w->n_out;
	if (n_tok == 1 && w->type != TK_TYPE_F16) {
		/* decode: one streaming pass over the weight rows */
		for (int64_t r = row_begin; r < row_end; r++)
			tr->vec_dot(w->n_in, &y[r], rows + (size_t)r * w->row_bytes, xq);
		return;
	}
	/* prefill / batched decode: a chunk of rows stays in cache while every
	 * token passes over it, in TK_TILE_MAX x TK_TILE_MAX tiles */
	const int64_t chunk = mm_chunk_rows(w->row_bytes);
	for (int64_t r0 = row_begin; r0 < row_end; r0 += chunk) {
		const int64_t r1 = row_end - r0 < chunk ? row_end : r0 + chunk;
		for (int32_t t0 = 0; t0 < n_tok; t0 += TK_TILE_MAX) {
			const int nc = n_tok - t0 < TK_TILE_MAX ? n_tok - t0 : TK_TILE_MAX;
			const char *xt = (const char *)xq + (size_t)t0 * xrow;
			float *yt = y + (size_t)t0 * n_out;
			for (int64_t r = r0; r < r1; r += TK_TILE_MAX) {
				const int nr = r1 - r < TK_TILE_MAX ? (int)(r1 - r) : TK_TILE_MAX;
				const unsigned char *wr = rows + (size_t)r * w->row_bytes;
				if (tr->vec_dot_tile) {
					tr->vec_dot_tile(w->n_in, yt + r, n_out, wr, w->row_bytes, xt,
							 xrow, nr, nc);
					continue;
				}
				for (int c = 0; c < nc; c++)
					for (int i = 0; i < nr; i++)
						tr->vec_dot(w->n_in, &yt[(size_t)c * n_out + (size_t)r + (size_t)i],
							    wr + (size_t)i * w->row_bytes,
							    xt + (size_t)c * xrow);
			}
		}
	}
}

/* The packed product of groups [g_begin, g_end) of w (rows TK_PACK_ROWS *
 * g_begin .. TK_PACK_ROWS * g_end - 1). Decode streams the groups once with
 * nc = 1. Prefill and batched decode take the groups in chunks of about
 * ENGINE_MM_PACK_CHUNK_BYTES (at least one group) that stay in L2 while
 * every block of TK_PACK_COLS encoded tokens (a few KiB to ~70 KiB: in L1
 * or L2) passes over them; the weights are read from memory once. */
_Static_assert(TK_PACK_ROWS % TK_TILE_MAX == 0, "group splits must be tile splits");
/* TANUKI_NO_GEMV=1: decode and batched decode through gemm one group at a
 * time, as before the multi-group kernels (gemv, gemmg; for A/B runs; read
 * once). */
static bool no_gemv(void)
{
	static int v = -1; /* every thread that finds -1 computes the same */
	int r = __atomic_load_n(&v, __ATOMIC_RELAXED);
	if (r < 0) {
		r = tk_env_flag("TANUKI_NO_GEMV");
		__atomic_store_n(&v, r, __ATOMIC_RELAXED);
	}
	return r;
}

/* Decode (n_tok 1, the gemv) and batched decode (2..TK_PACK_COLS, the
 * gemmg) over groups [g_begin, g_end): the range as S =
 * TK_PACK_GEMV_GROUPS regions of R consecutive groups, walked in lockstep
 * (call j takes group j of every region: S groups R * gb bytes apart), so
 * each of the kernel's S streams reads one region front to back instead of
 * starting afresh every S groups; the G - S * R groups left over (fewer
 * than S) go last, side by side. A range of fewer than 2 * S groups is the
 * plain walk of S consecutive groups. Outputs go through a buffer and are
 * scattered to their rows. Each cell is the kernel's, which equals gemm
 * whatever the groups' spacing. From DRAM (2 threads, 590 MB of q4_kx16
 * groups, each thread its half as 8 regions vs 8 consecutive groups a
 * call): 1.03x at n = 2048, up to 1.1x at n = 1536; engine decode +2-8%,
 * 2 sequences 1.1-1.3x, 4 sequences 1.0-1.15x (docs/benchmarks.md,
 * "Decode: long gemv streams", "Batched decode: the region walk"). */
static void matmul_streams(float *y, const struct engine_weight *w, const void *xq, size_t xrow,
			   int32_t n_tok, int64_t g_begin, int64_t g_end)
{
	const size_t gb = w->group_bytes, n_out = (size_t)w->n_out;
	const unsigned char *groups = w->packed;
	const int S = TK_PACK_GEMV_GROUPS;
	const int64_t R = (g_end - g_begin) / S;
	int64_t g = g_begin;
	if (R >= 2) {
		enum { LDO = TK_PACK_GEMV_GROUPS * TK_PACK_ROWS };
		float out[TK_PACK_COLS * LDO];
		for (int64_t j = 0; j < R; j++) {
			const unsigned char *gj = groups + (size_t)(g_begin + j) * gb;
			if (n_tok == 1)
				w->pack->gemv(w->n_in, out, gj, (size_t)R * gb, S, xq);
			else
				w->pack->gemmg(w->n_in, out, LDO, gj, (size_t)R * gb, S, xq, xrow,
					       n_tok);
			for (int32_t c = 0; c < n_tok; c++)
				for (int k = 0; k < S; k++)
					memcpy(y + (size_t)c * n_out +
						       (size_t)(g_begin + j + k * R) * TK_PACK_ROWS,
					       out + c * LDO + k * TK_PACK_ROWS,
					       TK_PACK_ROWS * sizeof(float));
		}
		g = g_begin + S * R;
	}
	for (; g < g_end; g += S) {
		const int ng = g_end - g < S ? (int)(g_end - g) : S;
		if (n_tok == 1)
			w->pack->gemv(w->n_in, y + (size_t)g * TK_PACK_ROWS, groups + (size_t)g * gb,
				      gb, ng, xq);
		else
			w->pack->gemmg(w->n_in, y + (size_t)g * TK_PACK_ROWS, n_out,
				       groups + (size_t)g * gb, gb, ng, xq, xrow, n_tok);
	}
}

static void matmul_packed(float *y, const struct engine_weight *w, const void *xq, int32_t n_tok,
			  int64_t g_begin, int64_t g_end)
{
	const tk_pack_gemm_fn gemm = w->pack->gemm;
	const size_t xrow = engine_op_matmul_scratch(w->type, w->n_in);
	const size_t n_out = (size_t)w->n_out, gb = w->group_bytes;
	const unsigned char *groups = w->packed;
	if (n_tok == 1 && w->pack->gemv && !no_gemv()) {
		matmul_streams(y, w, xq, xrow, 1, g_begin, g_end);
		return;
	}
	if (n_tok == 1) {
		for (int64_t g = g_begin; g < g_end; g++)
			gemm(w->n_in, y + (size_t)g * TK_PACK_ROWS, n_out, groups + (size_t)g * gb, xq,
			     xrow, 1);
		return;
	}
	if (n_tok <= TK_PACK_COLS && w->pack->gemmg && !no_gemv()) {
		matmul_streams(y, w, xq, xrow, n_tok, g_begin, g_end);
		return;
	}
	int64_t chunk = (int64_t)(ENGINE_MM_PACK_CHUNK_BYTES / (gb ? gb : 1));
	if (chunk < 1)
		chunk = 1;
	for (int64_t c0 = g_begin; c0 < g_end; c0 += chunk) {
		const int64_t c1 = g_end - c0 < chunk ? g_end : c0 + chunk;
		for (int32_t t0 = 0; t0 < n_tok; t0 += TK_PACK_COLS) {
			const int nc = n_tok - t0 < TK_PACK_COLS ? n_tok - t0 : TK_PACK_COLS;
			const char *xt = (const char *)xq + (size_t)t0 * xrow;
			float *yt = y + (size_t)t0 * n_out;
			for (int64_t g = c0; g < c1; g++)
				gemm(w->n_in, yt + (size_t)g * TK_PACK_ROWS, n_out,
				     groups + (size_t)g * gb, xt, xrow, nc);
		}
	}
}

void engine_op_matmul_run(float *y, const struct engine_weight *w, const void *xq,
			  int32_t n_tok, int64_t row_begin, int64_t row_end)
{
	if (!w->packed || row_begin >= w->n_packed) {
		matmul_rows(y, w, xq, n_tok, row_begin, row_end);
		return;
	}
	/* whole groups inside the range through the packed copy; the rows
	 * before the first and after the last through the file layout */
	const int64_t g_begin = (row_begin + TK_PACK_ROWS - 1) / TK_PACK_ROWS;
	const int64_t last = row_end < w->n_packed ? row_end : w->n_packed;
	const int64_t g_end = last / TK_PACK_ROWS;
	if (g_end <= g_begin) {
		matmul_rows(y, w, xq, n_tok, row_begin, row_end);
		return;
	}
	if (row_begin < g_begin * TK_PACK_ROWS)
		matmul_rows(y, w, xq, n_tok, row_begin, g_begin * TK_PACK_ROWS);
	matmul_packed(y, w, xq, n_tok, g_begin, g_end);
	if (g_end * TK_PACK_ROWS < row_end)
		matmul_rows(y, w, xq, n_tok, g_end * TK_PACK_ROWS, row_end);
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

/* ------------------------------------------------ blocked attention */

size_t engine_op_attention_scratch(int32_t n_head, int32_t n_head_kv, int32_t head_dim)
{
	size_t g = (size_t)(n_head / (n_head_kv > 0 ? n_head_kv : 1));
	if (g > ENGINE_ATT_MAX_GROUP)
		g = ENGINE_ATT_MAX_GROUP; /* larger groups go in chunks */
	const size_t hd = (size_t)head_dim;
	/* kf [hd][BLOCK] (transposed), vf [BLOCK][hd]; s [g][BLOCK]; acc, qf
	 * [g][hd]; max, inv [g] */
	return 2 * ENGINE_ATT_BLOCK * hd + g * ENGINE_ATT_BLOCK + 2 * g * hd + 2 * g;
}

/* rows [j0, j0 + nb) of head hk of a cache ([n][n_head_kv][hd]) as floats */
static void kv_block_to_f32(float *dst, const void *src, enum engine_kv_type kv_type,
			    int32_t j0, int32_t nb, size_t kv_row, int32_t hk, int32_t hd)
{
	const struct tk_type_traits *f16 = tk_type_traits(TK_TYPE_F16);
	for (int32_t j = 0; j < nb; j++) {
		const size_t base = (size_t)(j0 + j) * kv_row + (size_t)hk * (size_t)hd;
		if (kv_type == ENGINE_KV_F32)
			memcpy(dst + (size_t)j * (size_t)hd, (const float *)src + base,
			       (size_t)hd * sizeof(float));
		else
			f16->to_float((const uint16_t *)src + base, dst + (size_t)j * (size_t)hd, hd);
	}
}

/* K rows [j0, j0 + nb) of head hk, transposed: kt[d][j] (row stride
 * ENGINE_ATT_BLOCK), through row buffer tmp[hd] */
static void k_block_transposed(float *kt, float *tmp, const void *src,
			       enum engine_kv_type kv_type, int32_t j0, int32_t nb, size_t kv_row,
			       int32_t hk, int32_t hd)
{
	for (int32_t j = 0; j < nb; j++) {
		kv_block_to_f32(tmp, src, kv_type, j0 + j, 1, kv_row, hk, hd);
		for (int32_t d = 0; d < hd; d++)
			kt[(size_t)d * ENGINE_ATT_BLOCK + (size_t)j] = tmp[d];
	}
}

/* scores of the g query heads in qf against the transposed block kt of nb
 * positions: s[i][j] = (sum over d in order of qf_i[d] * k_j[d]) * scale —
 * the reference's sum, term by term, vectorized across positions */
static void att_scores(float *s, const float *qf, const float *kt, int32_t g, int32_t nb,
		       int32_t head_dim, float scale)
{
	const size_t hd = (size_t)head_dim;
	for (int32_t i = 0; i < g; i++) {
		float *si = s + (size_t)i * ENGINE_ATT_BLOCK;
		const float *qi = qf + (size_t)i * hd;
		for (int32_t j = 0; j < nb; j++)
			si[j] = 0.0f;
		for (size_t d = 0; d < hd; d++) {
			const float qd = qi[d];
			const float *kd = kt + d * ENGINE_ATT_BLOCK;
			for (int32_t j = 0; j < nb; j++)
				si[j] += qd * kd[j];
		}
		for (int32_t j = 0; j < nb; j++)
			si[j] *= scale;
	}
}

/* engine_op_attention_blocked for query heads h0 .. h0+g-1 (g <=
 * ENGINE_ATT_MAX_GROUP), all reading KV head hk */
static void att_heads(float *out, const float *q, const void *k, const void *v,
		      enum engine_kv_type kv_type, int32_t n_kv, int32_t n_head_kv,
		      int32_t head_dim, float scale, int32_t hk, int32_t h0, int32_t g,
		      float *scratch)
{
	const size_t hd = (size_t)head_dim, B = ENGINE_ATT_BLOCK;
	const size_t kv_row = (size_t)n_head_kv * hd; /* elements per position */
	const bool f16 = kv_type == ENGINE_KV_F16;
	float *kf = scratch, *vf = kf + B * hd, *s = vf + B * hd, *acc = s + (size_t)g * B;
	float *qf = acc + (size_t)g * hd, *mx = qf + (size_t)g * hd, *inv = mx + g;
	double sum[ENGINE_ATT_MAX_GROUP];
	for (int32_t i = 0; i < g; i++) {
		const float *qh = q + (size_t)(h0 + i) * hd;
		for (size_t d = 0; d < hd; d++)
			qf[(size_t)i * hd + d] = f16 ? tk_round_fp16(qh[d]) : qh[d];
		for (size_t d = 0; d < hd; d++)
			acc[(size_t)i * hd + d] = 0.0f;
		mx[i] = -INFINITY;
		sum[i] = 0.0;
	}
	/* pass 1, online: running max and sum of exp(score - max) per head; with
	 * an F32 cache the weighted sum of V rides along (rescaled with the
	 * sum) and this is the only pass */
	for (int32_t j0 = 0; j0 < n_kv; j0 += (int32_t)B) {
		const int32_t nb = n_kv - j0 < (int32_t)B ? n_kv - j0 : (int32_t)B;
		k_block_transposed(kf, vf, k, kv_type, j0, nb, kv_row, hk, head_dim);
		if (!f16)
			kv_block_to_f32(vf, v, kv_type, j0, nb, kv_row, hk, head_dim);
		att_scores(s, qf, kf, g, nb, head_dim, scale);
		for (int32_t i = 0; i < g; i++) {
			float *si = s + (size_t)i * B, *ai = acc + (size_t)i * hd;
			float bmax = -INFINITY;
			for (int32_t j = 0; j < nb; j++)
				if (si[j] > bmax)
					bmax = si[j];
			if (bmax == -INFINITY)
				continue; /* nothing visible in this block */
			if (bmax > mx[i]) {
				/* rescale what was summed under the old max */
				const float f = mx[i] == -INFINITY ? 0.0f : expf(mx[i] - bmax);
				sum[i] *= (double)f;
				if (!f16)
					for (size_t d = 0; d < hd; d++)
						ai[d] *= f;
				mx[i] = bmax;
			}
			for (int32_t j = 0; j < nb; j++) {
				const float p = si[j] == -INFINITY ? 0.0f : expf(si[j] - mx[i]);
				sum[i] += (double)p;
				if (f16)
					continue;
				const float *vj = vf + (size_t)j * hd;
				for (size_t d = 0; d < hd; d++)
					ai[d] += p * vj[d];
			}
		}
	}
	for (int32_t i = 0; i < g; i++)
		inv[i] = sum[i] > 0.0 ? (float)(1.0 / sum[i]) : 0.0f;
	if (f16) {
		/* pass 2 (F16 cache): the normalized probabilities, rounded to
		 * binary16 as ggml rounds them before its F16 p.v product (the
		 * rounding of a probability depends on its final value, so it
		 * cannot ride along in pass 1), times V */
		for (int32_t j0 = 0; j0 < n_kv; j0 += (int32_t)B) {
			const int32_t nb = n_kv - j0 < (int32_t)B ? n_kv - j0 : (int32_t)B;
			k_block_transposed(kf, vf, k, kv_type, j0, nb, kv_row, hk, head_dim);
			kv_block_to_f32(vf, v, kv_type, j0, nb, kv_row, hk, head_dim);
			att_scores(s, qf, kf, g, nb, head_dim, scale);
			for (int32_t i = 0; i < g; i++) {
				const float *si = s + (size_t)i * B;
				float *ai = acc + (size_t)i * hd;
				for (int32_t j = 0; j < nb; j++) {
					const float e = si[j] == -INFINITY ? 0.0f : expf(si[j] - mx[i]);
					const float p = tk_round_fp16(e * inv[i]);
					const float *vj = vf + (size_t)j * hd;
					for (size_t d = 0; d < hd; d++)
						ai[d] += p * vj[d];
				}
			}
		}
		for (int32_t i = 0; i < g; i++)
			inv[i] = 1.0f;
	}
	for (int32_t i = 0; i < g; i++) {
		float *oh = out + (size_t)(h0 + i) * hd;
		for (size_t d = 0; d < hd; d++)
			oh[d] = acc[(size_t)i * hd + d] * inv[i];
	}
}

void engine_op_attention_blocked(float *out, const float *q, const void *k, const void *v,
				 enum engine_kv_type kv_type, int32_t n_kv, int32_t n_head,
				 int32_t n_head_kv, int32_t head_dim, float scale, int32_t hk,
				 float *scratch)
{
	const int32_t group = n_head / n_head_kv; /* query heads sharing KV head hk */
	for (int32_t i0 = 0; i0 < group; i0 += ENGINE_ATT_MAX_GROUP) {
		const int32_t g = group - i0 < ENGINE_ATT_MAX_GROUP ? group - i0
								    : ENGINE_ATT_MAX_GROUP;
		att_heads(out, q, k, v, kv_type, n_kv, n_head_kv, head_dim, scale, hk,
			  hk * group + i0, g, scratch);
	}
}
