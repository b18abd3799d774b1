/*
 * ops_simd.c — choosing the variant of the element-wise ops (ops_simd.h):
 * which variants this build and CPU run, the TANUKI_* overrides, and the
 * _isa entry points that hand a call to a variant or to ops.c's scalar
 * reference. Owns one process-wide choice, made once (atomically) on first
 * use.
 */
#include "engine/ops_simd.h"

#include "core/env.h"

#include "engine/cpu.h"
#include "engine/ops.h"

#include <stdatomic.h>

bool engine_ops_isa_supported(int isa)
{
	const struct tk_cpu_features *f = tk_cpu_features();
	switch (isa) {
	case ENGINE_OPS_ISA_REF:
		return true;
#if defined(__x86_64__)
	case ENGINE_OPS_ISA_AVX2:
		return f->avx2 && f->fma;
	case ENGINE_OPS_ISA_AVX512:
		return f->avx2 && f->fma && f->avx512f;
#endif
	default:
		(void)f;
		return false;
	}
}

/* -1 until the first call; every thread that races computes the same value */
static atomic_int ops_isa = -1;

int engine_ops_isa_active(void)
{
	int isa = atomic_load_explicit(&ops_isa, memory_order_relaxed);
	if (isa < 0) {
		isa = tk_isa_choose(engine_ops_isa_supported, tk_env_flag("TANUKI_NO_OPS_SIMD"));
		atomic_store_explicit(&ops_isa, isa, memory_order_relaxed);
	}
	return isa;
}

void engine_op_silu_mul_isa(int isa, float *x, const float *g, int64_t n)
{
#if defined(__x86_64__)
	if (isa == ENGINE_OPS_ISA_AVX512 && engine_ops_isa_supported(isa)) {
		engine_ops_silu_mul_avx512(x, g, n);
		return;
	}
	if (isa == ENGINE_OPS_ISA_AVX2 && engine_ops_isa_supported(isa)) {
		engine_ops_silu_mul_avx2(x, g, n);
		return;
	}
#endif
	(void)isa;
	engine_op_silu_mul_ref(x, g, n);
}

void engine_op_rmsnorm_isa(int isa, float *out, const float *x, const float *w, int64_t n,
			   float eps)
{
#if defined(__x86_64__)
	if (isa == ENGINE_OPS_ISA_AVX512 && engine_ops_isa_supported(isa)) {
		engine_op_rmsnorm_finish(out, x, w, n, eps, engine_ops_sumsq_avx512(x, n));
		return;
	}
	if (isa == ENGINE_OPS_ISA_AVX2 && engine_ops_isa_supported(isa)) {
		engine_op_rmsnorm_finish(out, x, w, n, eps, engine_ops_sumsq_avx2(x, n));
		return;
	}
#endif
	(void)isa;
	engine_op_rmsnorm_ref(out, x, w, n, eps);
}
