/*
 * ops.h — the reference math of the forward pass: RMS norm, rotary position
 * embedding (NORM and NEOX layouts), softmax, SiLU, matrix times activations
 * through quant.h's kernels, and causal grouped-query attention over a KV
 * cache.
 *
 * Plain, readable C with float32 accumulation (double where llama.cpp sums in
 * double); every array argument says its shape as [rows][cols] in elements,
 * row-major. These are the reference kernels Engine II's fast path is checked
 * against. Pure functions: no globals, any thread; buffers are borrowed and
 * never kept. Outputs never alias inputs unless said. The exceptions to
 * "reference": engine_op_silu_mul() and engine_op_rmsnorm() run the SIMD
 * variant ops_simd.h chooses once per process (its accuracy is stated
 * there); their scalar loops stay as the _ref functions.
 */
#ifndef TK_ENGINE_OPS_H
#define TK_ENGINE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* out[n] = x[n] / sqrt(mean(x^2) + eps) * w[n] (w NULL: no weight).
 * out may equal x. The sum of squares is taken in double: _ref serially,
 * engine_op_rmsnorm() through ops_simd.h's variant (same up to the double
 * sum's order). */
void engine_op_rmsnorm_ref(float *out, const float *x, const float *w, int64_t n, float eps);
/* The steps after the sum of squares, shared by _ref and every variant:
 * out[n] = x[n] * (1 / sqrt((float)(sumsq / n) + eps)) * w[n]. */
void engine_op_rmsnorm_finish(float *out, const float *x, const float *w, int64_t n, float eps,
			      double sumsq);
void engine_op_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);

/* x[n] = silu(x[n]) * y[n], silu(v) = v / (1 + exp(-v)): _ref with libm's
 * expf per element, engine_op_silu_mul() through ops_simd.h's variant (a
 * few ulp from _ref; bound and special values there). */
void engine_op_silu_mul_ref(float *x, const float *y, int64_t n);
void engine_op_silu_mul(float *x, const float *y, int64_t n);

/* In place: x[n] = exp(x - max) / sum (sum in double). -inf entries get 0. */
void engine_op_softmax(float *x, int64_t n);

/* out[n] += b[n]. */
void engine_op_add(float *out, const float *b, int64_t n);

/* Rotary embedding. Which element pairs rotate together: */
enum engine_rope_style {
	ENGINE_ROPE_NORM, /* adjacent pairs (2i, 2i+1) — llama */
	ENGINE_ROPE_NEOX, /* split halves (i, i + n_rot/2) — qwen2, gpt-neox */
};

struct engine_rope {
	enum engine_rope_style style;
	int32_t n_rot;          /* rotated dimensions per head (even, <= head_dim) */
	float freq_base;        /* theta base (10000) */
	float freq_scale;       /* 1 / linear scaling factor (1: none) */
	const float *freq_factors; /* [n_rot/2] divisors of each pair's angle
				    * (Llama 3 "rope_freqs"), or NULL */
};

/* Rotates every head of x in place for position pos.
 * x: [n_head][head_dim]; dims n_rot..head_dim-1 are left as they are.
 * The angle of pair i is pos * freq_scale * freq_base^(-2i/n_rot) /
 * freq_factors[i], built by repeated multiplication in float the way ggml
 * does, so results match llama.cpp's to the last bits. */
void engine_op_rope(float *x, int32_t n_head, int32_t head_dim, int32_t pos,
		    const struct engine_rope *rope);

/* engine_op_rope() the direct way, as ops.c computed it before the table:
 * cos and sin of every pair again for every head. The same result bit for
 * bit at n_head times the cosf/sinf calls; the oracle test_ops_simd holds
 * the table to and bench_ops' baseline. */
void engine_op_rope_ref(float *x, int32_t n_head, int32_t head_dim, int32_t pos,
			const struct engine_rope *rope);

/* engine_op_rope() in two steps, for callers that rotate several rows at
 * the same position (q and k, or several calls on parts of a row): the
 * cos/sin table of one position once, then any number of heads with it.
 * engine_op_rope() itself makes the table once per call (in chunks of
 * ENGINE_ROPE_CS_PAIRS pairs), not once per head.
 *   engine_op_rope_cs:    cs[2 * n_pairs] = (cos, sin) of pairs i0 ..
 *                         i0 + n_pairs - 1 at position pos (i0 + n_pairs
 *                         <= n_rot / 2), the angles exactly as above
 *   engine_op_rope_apply: rotates those pairs of every head of
 *                         x[n_head][head_dim] with cs (borrowed)
 * Calling both for i0 = 0, n_pairs = n_rot / 2 gives engine_op_rope()'s
 * result bit for bit. */
#define ENGINE_ROPE_CS_PAIRS 128
void engine_op_rope_cs(float *cs, int32_t i0, int32_t n_pairs, int32_t pos,
		       const struct engine_rope *rope);
void engine_op_rope_apply(float *x, int32_t n_head, int32_t head_dim, const float *cs,
			  int32_t i0, int32_t n_pairs, const struct engine_rope *rope);

struct tk_pack_traits; /* quant_pack.h */

/* A 2-D weight in its file encoding (borrowed from the model's mmap), and
 * optionally a packed copy of its first rows (quant_pack.h) that matrix
 * products use instead of those file rows.
 *
 * Packed copy: packed != NULL means rows 0..n_packed-1 are also stored as
 * n_packed / TK_PACK_ROWS groups of group_bytes each, back to back, in
 * pack's layout; n_packed = n_out - n_out % TK_PACK_ROWS. The buffer is
 * 64-byte aligned and owned by the model that made it (model.h: freed with
 * the model, never by a weight). The file rows stay valid and are what
 * everything but engine_op_matmul_run reads (token embedding lookups, LoRA
 * merges, the rows past the last full group). A zero-initialized weight,
 * or one built by hand (LoRA's A and B), has no packed copy. */
struct engine_weight {
	const void *data; /* n_out rows of row_bytes each, type `type` */
	int type;         /* enum tk_type */
	int64_t n_in;     /* elements per row (ggml ne[0]) */
	int64_t n_out;    /* rows (ggml ne[1]) */
	size_t row_bytes; /* bytes per row */
	const void *packed;                /* groups, or NULL (borrowed from the model) */
	const struct tk_pack_traits *pack; /* their layout and gemm; NULL when not packed */
	int64_t n_packed;                  /* rows packed, a multiple of TK_PACK_ROWS */
	size_t group_bytes;                /* pack->group_size(n_in) */
};

/* Bytes one activation row of n_in elements takes once encoded for weight
 * type `type`: in its vec_dot_type, except that F16 weights take float32
 * activations (the one departure from quant.h's scheme; ops.c says why),
 * with the trailer packed kernels need (tk_act_row_size(), quant_pack.h:
 * Q8_0 rows carry their block sums), so one encoding serves packed and
 * file-layout weights alike. 0 for an unknown type or a bad n_in. */
size_t engine_op_matmul_scratch(int type, int64_t n_in);

/* The encoding (a tk_type id) activations take for weights of `type`, or
 * -1 for an unknown type: products whose weights share it can share one
 * encoded copy of the same input. */
int engine_op_matmul_act_type(int type);

/* Encodes n_tok activation rows x[n_tok][w->n_in] for w (see above; through
 * tk_act_encode(), trailer included), in scratch (n_tok *
 * engine_op_matmul_scratch() bytes), row after row. Returns
 * the encoded rows: x itself when activations stay float (F32 and F16
 * weights; nothing copied), else scratch. */
const void *engine_op_matmul_prepare(const struct engine_weight *w, const float *x,
				     int32_t n_tok, void *scratch);

/* y[t][w->n_out] = W x[t] for t < n_tok, for rows r of W in
 * [row_begin, row_end) only (a thread's share), with xq from
 * engine_op_matmul_prepare(): every dot is the type's vec_dot of a weight row
 * with an encoded activation row (llama.cpp's scheme); F16 rows are widened
 * to float and dotted with the float activations. The caller checked
 * the type with tk_type_can_compute() at load.
 * n_tok == 1 (decode) is one streaming pass over the rows. n_tok > 1
 * (prefill, batched decode) walks the rows in chunks of about
 * ENGINE_MM_CHUNK_BYTES of weights; every token passes over a chunk while it
 * is in cache, in tiles of up to TK_TILE_MAX rows x TK_TILE_MAX tokens
 * through the type's vec_dot_tile when it has one (vec_dot otherwise). Each
 * output is one dot, so a row split between threads changes nothing as long
 * as the split points are multiples of TK_TILE_MAX.
 * Packed weights (w->packed): the whole groups inside [row_begin, row_end)
 * go through w->pack->gemm, TK_PACK_COLS tokens at a time (n_tok == 1:
 * nc = 1, one streaming pass over the groups); prefill walks the groups in
 * chunks of about ENGINE_MM_PACK_CHUNK_BYTES, and every block of
 * TK_PACK_COLS tokens passes over a chunk while it is in cache. Rows outside
 * whole groups (past n_packed, or a range that does not start or end on a
 * multiple of TK_PACK_ROWS) take the file-layout path above, so any split
 * is correct; splitting at multiples of TK_PACK_ROWS (which are multiples of
 * TK_TILE_MAX) keeps every output identical to one thread's. */
#define ENGINE_MM_CHUNK_BYTES (64 * 1024)
#ifndef ENGINE_MM_PACK_CHUNK_BYTES /* -D overrides it, for measuring */
#define ENGINE_MM_PACK_CHUNK_BYTES (128 * 1024)
#endif
void engine_op_matmul_run(float *y, const struct engine_weight *w, const void *xq,
			  int32_t n_tok, int64_t row_begin, int64_t row_end);

/* prepare + run over all rows, on the calling thread. */
void engine_op_matmul(float *y, const struct engine_weight *w, const float *x, int32_t n_tok,
		      void *scratch);

/* KV cache element types. */
enum engine_kv_type {
	ENGINE_KV_F32, /* exact */
	ENGINE_KV_F16, /* half the memory; what llama.cpp uses by default */
};

/* Causal grouped-query attention for one query position.
 *   q:      [n_head][head_dim]           (roped)
 *   k, v:   [n_kv][n_head_kv][head_dim]  cache rows for positions 0..n_kv-1,
 *           element type kv_type (float or binary16)
 *   out:    [n_head][head_dim]
 *   att:    [n_kv] scratch floats
 *   qbuf:   [head_dim] scratch (for the F16 rounding of q, below)
 * Query head h reads KV head h / (n_head / n_head_kv). scores = q.k * scale,
 * softmax over positions 0..n_kv-1 (the causal mask: the caller passes only
 * the positions up to and including the query's), out = sum p * v.
 * With an F16 cache, q and the probabilities are rounded to binary16 before
 * their dot products, as ggml's F16 matmuls do (the dots sum in float). */
void engine_op_attention(float *out, const float *q, const void *k, const void *v,
			 enum engine_kv_type kv_type, int32_t n_kv, int32_t n_head,
			 int32_t n_head_kv, int32_t head_dim, float scale, float *att,
			 float *qbuf);

/* Block size (positions) of engine_op_attention_blocked(). */
#define ENGINE_ATT_BLOCK 64

/* Query heads engine_op_attention_blocked() processes together (larger
 * groups go in chunks of this many). */
#define ENGINE_ATT_MAX_GROUP 64

/* Floats of scratch engine_op_attention_blocked() needs. */
size_t engine_op_attention_scratch(int32_t n_head, int32_t n_head_kv, int32_t head_dim);

/* The query heads of KV head hk (heads hk*g .. hk*g+g-1, g = n_head /
 * n_head_kv) of one position, attended over k, v positions 0..n_kv-1 (same
 * shapes and meaning as engine_op_attention, which computes every head),
 * with out rows of those heads written and no other. Positions are walked in
 * blocks of ENGINE_ATT_BLOCK with an online softmax (running max and sum,
 * earlier partial sums rescaled when the max grows), so the scratch is
 * O(block), never O(n_kv); each K/V block is converted to float once for the
 * whole group of query heads that share it. With an F32 cache that is one
 * pass (the weighted sum of V is rescaled along with the sum). With an F16
 * cache, q is rounded to binary16 and, as in the reference (and ggml), the
 * normalized probabilities are rounded to binary16 before p.v: that needs
 * the final max and sum, so a second pass over the blocks recomputes the
 * scores and accumulates V. Equals engine_op_attention up to float
 * summation order. scratch: engine_op_attention_scratch() floats. */
void engine_op_attention_blocked(float *out, const float *q, const void *k, const void *v,
				 enum engine_kv_type kv_type, int32_t n_kv, int32_t n_head,
				 int32_t n_head_kv, int32_t head_dim, float scale, int32_t hk,
				 float *scratch);

#endif
