/*
 * attn_simd.h — causal grouped-query attention for a run of consecutive
 * query positions of one sequence, with SIMD variants chosen at run time
 * (AVX-512F, AVX2 + FMA + F16C) and ops.h's blocked reference as the
 * portable path and the test oracle.
 *
 * What it computes: exactly what engine_op_attention_blocked() (ops.h)
 * computes for each token of the run, one call per token: token t of n_tok
 * sits at position pos0 + t and attends over cache positions 0..pos0 + t.
 * The SIMD variants take the query heads of one KV head for several tokens
 * together — up to ENGINE_ATTN_ROWS (token, head) rows — so each block of
 * K and V is converted from binary16 once for all of them:
 *   - scores s[j][r] = (q_r . k_j) * scale for a block of positions j and
 *     all rows r, summed over d in order (the reference's order), with the
 *     rows across SIMD lanes (Q is transposed once per call, K and V are
 *     never transposed) and several positions register-blocked;
 *   - the online softmax (running max and sum per row, in lanes), its exp a
 *     float polynomial (engine_attn_exp_isa(); error bound measured in
 *     tests/unit/test_attn_simd.c);
 *   - p.v as FMAs into an accumulator held transposed, acc[d][r].
 * Numerics: with an F16 cache every product q.k and p.v is exact in float
 * (binary16 x binary16), so in-order FMA sums equal the reference's sums
 * bit for bit; the softmax sum is kept in double as the reference keeps it.
 * What differs is exp (under 1 ulp, measured over every float of the
 * range softmax uses; libm's expf is under 1 ulp too, but not the same
 * function), which moves a probability's binary16 rounding now and then. With an F32 cache the fused
 * multiply-adds round differently from the reference's separate ones.
 * One weakness kept on purpose: rows of the run that must not see a
 * position inside the run's own last block get probability 0 for it, and
 * 0 x v is NaN when that v is inf or NaN (a cache that already overflowed);
 * the reference does not read such a position for that token.
 *
 * Choosing the variant: the best one this CPU supports, capped by
 * TANUKI_NO_AVX512=1 (at avx2) and TANUKI_NO_AVX2=1 (at the reference), as
 * quant_simd.h does; TANUKI_NO_ATTN_SIMD=1 forces the reference for attention
 * alone (for A/B timing). Read once, on the first call.
 *
 * Threads: every function may be called from any thread at once; buffers
 * are borrowed for the call (scratch is the caller's, one per thread).
 */
#ifndef TK_ENGINE_ATTN_SIMD_H
#define TK_ENGINE_ATTN_SIMD_H

#include "engine/cpu.h"
#include "engine/ops.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The levels of cpu.h (tk_isa_level). */
enum engine_attn_isa {
	ENGINE_ATTN_ISA_REF = TK_ISA_REF,       /* engine_op_attention_blocked per token */
	ENGINE_ATTN_ISA_AVX2 = TK_ISA_AVX2,     /* AVX2 + FMA + F16C, 8 lanes */
	ENGINE_ATTN_ISA_AVX512 = TK_ISA_AVX512, /* AVX-512F, 16 lanes */
	ENGINE_ATTN_ISA_COUNT = TK_ISA_COUNT
};

/* (token, query head) rows one SIMD pass holds; larger runs go in chunks. */
#define ENGINE_ATTN_ROWS 64

/* Positions per K/V block of the SIMD variants. */
#define ENGINE_ATTN_BLOCK 64

/* Scratch floats that keep a pass's scores from its first walk over the
 * cache to its second (F16 cache): a pass of R rows (padded to the lanes)
 * over n positions keeps them when n x R fits, and otherwise computes them
 * twice. 256 KiB: decode (16 padded rows) keeps up to 16384 positions,
 * a full prefill pass (64 rows) 4096. */
#define ENGINE_ATTN_KEEP_FLOATS (64 * 1024)

/* "ref", "avx2", "avx512"; "unknown" otherwise. Never NULL. */
const char *engine_attn_isa_name(int isa);

/* True when this build has isa's kernels and this CPU (and OS) runs them. */
bool engine_attn_isa_supported(int isa);

/* The variant engine_attn_tokens() uses (chosen on the first call: the best
 * supported, capped by the TANUKI_* variables above). */
int engine_attn_isa_active(void);

/* Floats of per-thread scratch engine_attn_tokens() needs (any variant;
 * includes engine_op_attention_scratch() and room to align to 64 bytes). */
size_t engine_attn_scratch(int32_t n_head, int32_t n_head_kv, int32_t head_dim);

/* Tokens worth giving one engine_attn_tokens() call: as many as fill
 * ENGINE_ATTN_ROWS rows with this model's query heads per KV head (1 when
 * one token's heads fill them already). */
int32_t engine_attn_tokens_per_call(int32_t n_head, int32_t n_head_kv);

/* Attention of tokens t = 0..n_tok-1 at positions pos0 + t (one sequence)
 * for the query heads of KV head hk:
 *   q, out:  [n_tok][n_head][head_dim]  (out: only hk's heads are written)
 *   k, v:    [>= pos0 + n_tok][n_head_kv][head_dim] cache rows, kv_type
 *   scratch: engine_attn_scratch() floats, any alignment
 * Shapes and the meaning of everything else as engine_op_attention_blocked
 * (n_head a multiple of n_head_kv, n_tok >= 1, pos0 >= 0), which this
 * equals per token up to exp's rounding (see above). */
void engine_attn_tokens(float *out, const float *q, const void *k, const void *v,
			enum engine_kv_type kv_type, int32_t pos0, int32_t n_tok, int32_t n_head,
			int32_t n_head_kv, int32_t head_dim, float scale, int32_t hk,
			float *scratch);

/* The same with a given variant (tests, benchmarks); an unsupported one
 * falls back to the reference. */
void engine_attn_tokens_isa(int isa, float *out, const float *q, const void *k, const void *v,
			    enum engine_kv_type kv_type, int32_t pos0, int32_t n_tok,
			    int32_t n_head, int32_t n_head_kv, int32_t head_dim, float scale,
			    int32_t hk, float *scratch);

/* y[i] = exp(x[i]) for i < n, through isa's vector exp (the reference:
 * expf); error under 1 ulp on [ENGINE_ATTN_EXP_MIN, 0]. Valid for x <= 88; x below ENGINE_ATTN_EXP_MIN (ln FLT_MIN) gives
 * 0 instead of a subnormal (an absolute error under FLT_MIN), -inf gives 0,
 * NaN gives NaN. y may equal x. */
#define ENGINE_ATTN_EXP_MIN (-87.33654f)
void engine_attn_exp_isa(int isa, float *y, const float *x, size_t n);

#if defined(__x86_64__)
/* Per-variant entry points (attn_avx2.c, attn_avx512.c); call only when
 * supported. a: one call's arguments, see attn_kernel.h. */
struct engine_attn_call;
void engine_attn_run_avx2(const struct engine_attn_call *a);
void engine_attn_run_avx512(const struct engine_attn_call *a);
void engine_attn_exp_avx2(float *y, const float *x, size_t n);
void engine_attn_exp_avx512(float *y, const float *x, size_t n);
#endif

#endif
