/*
 * ops_simd.h — SIMD variants of the element-wise ops of the forward pass
 * (ops.h's SiLU gate and RMS norm), chosen at run time (AVX-512F, AVX2 +
 * FMA), with ops.c's scalar loops as the portable path and the test oracle.
 *
 * SiLU: y[i] = silu(x[i]) * g[i], silu(v) = v / (1 + exp(-v)). The vector
 * variants never take exp of a positive number: with t = exp(-|v|) in (0, 1],
 *   silu(v) = v / (1 + t)       for v >= 0,
 *   silu(v) = v * t / (1 + t)   for v < 0,
 * which is the same function, so nothing overflows and no special case for
 * large |v| is needed. t comes from a Cody-Waite range reduction and a
 * degree-7 Taylor polynomial (truncation under 0.1 ulp), and v t is formed
 * as (v p) 2^n so results below FLT_MIN underflow gradually. Accuracy
 * against the scalar path (libm expf), measured in tests/unit/
 * test_ops_simd.c over a sweep of floats in [-90, 90] and random gates:
 * at most ENGINE_OPS_SILU_MAX_ULP ulp of the result (the test prints the
 * maximum it saw: 4.0 ulp, 3.4 from the exact value, where the scalar path
 * is 2.4 from it) wherever the scalar result is a normal float. Where the
 * scalar result is below FLT_MIN (tiny inputs or gates), the vector result
 * is within 1e-36 of it. Special values as the scalar path: v = +inf gives
 * inf * g, v = -inf gives NaN, v = NaN gives NaN, v = -0 gives -0 * g,
 * v <= -88.7228 (where the scalar's expf(-v) is inf) gives -0 * g although
 * the true silu is a tiny normal number down to v = -92, and an inf or NaN
 * gate propagates as the scalar product does (0 * inf = NaN).
 * Every element is computed the same way wherever it sits (the tail of n
 * that does not fill a vector goes through masked loads, not a scalar loop),
 * so splitting a row between threads changes no output bit.
 *
 * RMS norm: the sum of squares of float products (x*x rounded to float, as
 * the reference) in double, in a different order than the reference's
 * serial sum; the scale and the products as the reference. So outputs equal
 * the reference's except where the double sums' last bits carry into the
 * float mean (the test saw no such case in 9 164 outputs and allows 2 ulp).
 *
 * Choosing the variant: the best one this CPU supports, capped by
 * TANUKI_NO_AVX512=1 (at avx2) and TANUKI_NO_AVX2=1 (at the reference), as
 * cpu.h's tk_isa_choose() does for every module; TANUKI_NO_OPS_SIMD=1 forces
 * the scalar path for these ops alone (for A/B timing). Read once, on the
 * first call.
 *
 * Threads: every function may be called from any thread at once; buffers
 * are borrowed for the call.
 */
#ifndef TK_ENGINE_OPS_SIMD_H
#define TK_ENGINE_OPS_SIMD_H

#include "engine/cpu.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The levels of cpu.h (tk_isa_level). */
enum engine_ops_isa {
	ENGINE_OPS_ISA_REF = TK_ISA_REF,       /* ops.c's scalar loops */
	ENGINE_OPS_ISA_AVX2 = TK_ISA_AVX2,     /* AVX2 + FMA, 8 lanes */
	ENGINE_OPS_ISA_AVX512 = TK_ISA_AVX512, /* AVX-512F, 16 lanes */
	ENGINE_OPS_ISA_COUNT = TK_ISA_COUNT
};

/* The bound test_ops_simd.c holds the vector SiLU to, in ulps of the
 * scalar path's result (where that result is a normal float). */
#define ENGINE_OPS_SILU_MAX_ULP 5

/* True when this build has isa's kernels and this CPU (and OS) runs them. */
bool engine_ops_isa_supported(int isa);

/* The variant engine_op_silu_mul() and engine_op_rmsnorm() use (chosen on
 * the first call: the best supported, capped by the TANUKI_* variables
 * above). */
int engine_ops_isa_active(void);

/* x[n] = silu(x[n]) * g[n] through isa's kernel (an unsupported isa falls
 * back to the reference, engine_op_silu_mul_ref()). */
void engine_op_silu_mul_isa(int isa, float *x, const float *g, int64_t n);

/* out[n] = x[n] / sqrt(mean(x^2) + eps) * w[n] (w NULL: no weight) through
 * isa's kernel (the reference: engine_op_rmsnorm_ref()). out may equal x. */
void engine_op_rmsnorm_isa(int isa, float *out, const float *x, const float *w, int64_t n,
			   float eps);

/* The variants' numbers (ops_avx2.c, ops_avx512.c), defined once (exp's
 * range reduction and polynomial are vec.h's, shared with the attention
 * kernel):
 *   ENGINE_OPS_EXP_CLAMP  exp's argument is clamped here (exp rounds to 0
 *                         long before), which keeps every 2^n in reach;
 *   ENGINE_OPS_SILU_ZERO  the largest v at which the scalar path's
 *                         expf(-v) is inf, so its silu(v) is v / inf = -0
 *                         (and -0 * g); from here down the variants give
 *                         the same -0 (NaN for -inf or an inf gate). */
#define ENGINE_OPS_EXP_CLAMP (-110.0f)
#define ENGINE_OPS_SILU_ZERO (-88.72283935546875f)

#if defined(__x86_64__)
/* Per-variant entry points (ops_avx2.c, ops_avx512.c); call only when
 * supported. Arguments as above. */
void engine_ops_silu_mul_avx2(float *x, const float *g, int64_t n);
void engine_ops_silu_mul_avx512(float *x, const float *g, int64_t n);
double engine_ops_sumsq_avx2(const float *x, int64_t n);
double engine_ops_sumsq_avx512(const float *x, int64_t n);
#endif

#endif
