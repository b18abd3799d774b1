/*
 * quant_k.h — the reference (portable C) kernels of the K-quants Q2_K, Q3_K,
 * Q4_K, Q5_K and of IQ4_NL, defined in quant_k.c. Internal to the engine:
 * callers reach them through tk_type_traits() / tk_type_traits_ref()
 * (quant.h, whose table rows point here); tests use the table too.
 *
 * Block layouts: quant.h (struct tk_block_q2_k ... tk_block_iq4_nl).
 * Arithmetic and quantizer rules: docs/engine.md, "GGUF and tensor types".
 *
 * Contracts are quant.h's tk_to_float_fn / tk_from_float_fn / tk_vec_dot_fn:
 * n a multiple of the block size (256, or 32 for IQ4_NL), rows unaligned,
 * src and dst never overlap. Activation rows are Q8_K for the K-quants and
 * Q8_0 for IQ4_NL. Every function is pure and thread-safe. Any float input
 * (NaN, inf, huge, subnormal) is defined behaviour; finite input whose
 * scales fit a half decodes without NaN.
 */
#ifndef TK_ENGINE_QUANT_K_H
#define TK_ENGINE_QUANT_K_H

#include <stdint.h>

void tk_quant_q2_k_to_float(const void *src, float *dst, int64_t n);
void tk_quant_q2_k_from_float(const float *src, void *dst, int64_t n);
void tk_quant_q2_k_vec_dot(int64_t n, float *out, const void *x, const void *y);

void tk_quant_q3_k_to_float(const void *src, float *dst, int64_t n);
void tk_quant_q3_k_from_float(const float *src, void *dst, int64_t n);
void tk_quant_q3_k_vec_dot(int64_t n, float *out, const void *x, const void *y);

void tk_quant_q4_k_to_float(const void *src, float *dst, int64_t n);
void tk_quant_q4_k_from_float(const float *src, void *dst, int64_t n);
void tk_quant_q4_k_vec_dot(int64_t n, float *out, const void *x, const void *y);

void tk_quant_q5_k_to_float(const void *src, float *dst, int64_t n);
void tk_quant_q5_k_from_float(const float *src, void *dst, int64_t n);
void tk_quant_q5_k_vec_dot(int64_t n, float *out, const void *x, const void *y);

void tk_quant_iq4_nl_to_float(const void *src, float *dst, int64_t n);
void tk_quant_iq4_nl_from_float(const float *src, void *dst, int64_t n);
void tk_quant_iq4_nl_vec_dot(int64_t n, float *out, const void *x, const void *y);

/* Q6_K's quantizer (its other kernels are in quant.c): llama-quantize's
 * least-squares scale search, bytes equal to its output. */
void tk_quant_q6_k_from_float(const float *src, void *dst, int64_t n);

/* The 16 levels of IQ4_NL, index order (quant.h). */
extern const int8_t tk_iq4nl_levels[16];

#endif
