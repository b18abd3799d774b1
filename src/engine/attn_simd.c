/*
 * attn_simd.c — choosing the attention variant (attn_simd.h) and the
 * portable path: which variants this build and CPU run, the TANUKI_*
 * overrides, scratch sizing, and engine_attn_tokens(), which hands a run of
 * tokens to the chosen variant or, for the reference, calls
 * engine_op_attention_blocked() once per token. Owns one process-wide
 * choice, made once (atomically) on first use.
 */
#include "engine/attn_simd.h"

#include "core/env.h"

#include "engine/attn_kernel.h"
#include "engine/cpu.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

const char *engine_attn_isa_name(int isa)
{
	return tk_isa_name(isa);
}

bool engine_attn_isa_supported(int isa)
{
	const struct tk_cpu_features *f = tk_cpu_features();
	switch (isa) {
	case ENGINE_ATTN_ISA_REF:
		return true;
#if defined(__x86_64__)
	case ENGINE_ATTN_ISA_AVX2:
		return f->avx2 && f->fma && f->f16c;
	case ENGINE_ATTN_ISA_AVX512:
		return f->avx2 && f->fma && f->f16c && f->avx512f;
#endif
	default:
		(void)f;
		return false;
	}
}

static int attn_isa_choose(void)
{
	return tk_isa_choose(engine_attn_isa_supported, tk_env_flag("TANUKI_NO_ATTN_SIMD"));
}

/* -1 until the first call; every thread that races computes the same value */
static atomic_int attn_isa = -1;

int engine_attn_isa_active(void)
{
	int isa = atomic_load_explicit(&attn_isa, memory_order_relaxed);
	if (isa < 0) {
		isa = attn_isa_choose();
		atomic_store_explicit(&attn_isa, isa, memory_order_relaxed);
	}
	return isa;
}

size_t engine_attn_scratch(int32_t n_head, int32_t n_head_kv, int32_t head_dim)
{
	const size_t ref = engine_op_attention_scratch(n_head, n_head_kv, head_dim);
	const size_t simd = engine_attn_pass_floats(ENGINE_ATTN_ROWS, (size_t)head_dim);
	return (ref > simd ? ref : simd) + 16; /* + 16: aligning the start to 64 bytes */
}

int32_t engine_attn_tokens_per_call(int32_t n_head, int32_t n_head_kv)
{
	const int32_t g = n_head / (n_head_kv > 0 ? n_head_kv : 1);
	return g >= ENGINE_ATTN_ROWS || g < 1 ? 1 : ENGINE_ATTN_ROWS / g;
}

void engine_attn_tokens_isa(int isa, float *out, const float *q, const void *k, const void *v,
			    enum engine_kv_type kv_type, int32_t pos0, int32_t n_tok,
			    int32_t n_head, int32_t n_head_kv, int32_t head_dim, float scale,
			    int32_t hk, float *scratch)
{
	if (!engine_attn_isa_supported(isa))
		isa = ENGINE_ATTN_ISA_REF;
#if defined(__x86_64__)
	if (isa != ENGINE_ATTN_ISA_REF) {
		const struct engine_attn_call a = {
			.out = out, .q = q, .k = k, .v = v, .kv_type = kv_type, .pos0 = pos0,
			.n_tok = n_tok, .n_head = n_head, .n_head_kv = n_head_kv,
			.head_dim = head_dim, .hk = hk, .scale = scale,
			.scratch = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63),
		};
		if (isa == ENGINE_ATTN_ISA_AVX512)
			engine_attn_run_avx512(&a);
		else
			engine_attn_run_avx2(&a);
		return;
	}
#endif
	const size_t q_dim = (size_t)n_head * (size_t)head_dim;
	for (int32_t t = 0; t < n_tok; t++)
		engine_op_attention_blocked(out + (size_t)t * q_dim, q + (size_t)t * q_dim, k, v,
					    kv_type, pos0 + t + 1, n_head, n_head_kv, head_dim,
					    scale, hk, scratch);
}

void engine_attn_tokens(float *out, const float *q, const void *k, const void *v,
			enum engine_kv_type kv_type, int32_t pos0, int32_t n_tok, int32_t n_head,
			int32_t n_head_kv, int32_t head_dim, float scale, int32_t hk,
			float *scratch)
{
	engine_attn_tokens_isa(engine_attn_isa_active(), out, q, k, v, kv_type, pos0, n_tok,
			       n_head, n_head_kv, head_dim, scale, hk, scratch);
}

void engine_attn_exp_isa(int isa, float *y, const float *x, size_t n)
{
	if (!engine_attn_isa_supported(isa))
		isa = ENGINE_ATTN_ISA_REF;
#if defined(__x86_64__)
	if (isa == ENGINE_ATTN_ISA_AVX512) {
		engine_attn_exp_avx512(y, x, n);
		return;
	}
	if (isa == ENGINE_ATTN_ISA_AVX2) {
		engine_attn_exp_avx2(y, x, n);
		return;
	}
#endif
	for (size_t i = 0; i < n; i++)
		y[i] = expf(x[i]);
}
