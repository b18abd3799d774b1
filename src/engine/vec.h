/*
 * vec.h — private to the engine's SIMD variants: the small vector
 * vocabulary the kernels shared between ISAs are written over
 * (attn_kernel.h, and the SiLU of ops_avx2.c / ops_avx512.c), and the
 * vector exp's core, written once over it. Include an ISA's header
 * (vec_avx2.h, vec_avx512.h), which names the vocabulary and then includes
 * this file; one ISA per translation unit.
 *
 * The vocabulary:
 *   vf                 the vector of VF_LANES floats
 *   v_zero() v_set1(x) v_load(p) v_store(p, x) (unaligned)
 *   v_fma(a, b, c)     a * b + c, rounded once; v_mul v_sub v_max
 *   v_sel_gt(a, b, t, f) / v_sel_lt: (a > b) / (a < b) ? t : f per lane
 *   v_round(x)         to the nearest integer (ties to even)
 *   v_pow2i(n)         2^n for integral n in -126..127
 *   v_load_f16(p)      VF_LANES binary16 values from memory, widened
 *   v_round_f16(x)     to the nearest binary16, as a float (ties to even)
 */
#ifndef TK_ENGINE_VEC_H
#define TK_ENGINE_VEC_H

#ifndef VF_LANES
#error "include vec_avx2.h or vec_avx512.h, not vec.h"
#endif

/* exp's range reduction: 1 / ln 2, and ln 2 in two parts (the high part
 * has 16 significant bits, so n * ENGINE_EXP_LN2_HI is exact for |n| <
 * 256) */
#define ENGINE_EXP_LOG2E 1.44269504088896341f
#define ENGINE_EXP_LN2_HI 0.693145751953125f
#define ENGINE_EXP_LN2_LO 1.428606820309417232e-6f

/* exp(x) = p 2^n, per lane: n = round(x / ln 2) (returned in *n, integral),
 * r = x - n ln 2 in two FMA steps (|r| <= ln 2 / 2), p = exp(r) by the
 * Taylor polynomial of degree 7 in Horner form (truncation r^8 / 8! <
 * 5.1e-9, under 0.1 ulp). The caller forms 2^n as its
 * range needs (attn_kernel.h: one exponent field; the SiLU: two factors or
 * VSCALEFPS) and keeps x where n stays in that range. */
static inline __attribute__((always_inline)) vf v_exp_parts(vf x, vf *n)
{
	const vf k = v_round(v_mul(x, v_set1(ENGINE_EXP_LOG2E)));
	vf r = v_fma(k, v_set1(-ENGINE_EXP_LN2_HI), x);
	r = v_fma(k, v_set1(-ENGINE_EXP_LN2_LO), r);
	vf p = v_set1(1.0f / 5040.0f);
	p = v_fma(p, r, v_set1(1.0f / 720.0f));
	p = v_fma(p, r, v_set1(1.0f / 120.0f));
	p = v_fma(p, r, v_set1(1.0f / 24.0f));
	p = v_fma(p, r, v_set1(1.0f / 6.0f));
	p = v_fma(p, r, v_set1(0.5f));
	p = v_fma(p, r, v_set1(1.0f));
	p = v_fma(p, r, v_set1(1.0f));
	*n = k;
	return p;
}

#endif
