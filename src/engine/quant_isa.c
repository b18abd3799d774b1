/*
 * quant_isa.c — choosing and installing the SIMD kernel variants
 * (quant_simd.h): which variants this build and CPU support, the
 * TANUKI_NO_AVX512 / TANUKI_NO_AVX2 overrides, and filling a type table
 * with one variant's kernels. Owns no state.
 */
#include "engine/quant_simd.h"

#include "core/err.h"
#include "engine/cpu.h"

#include <stdlib.h>
#include <string.h>

const char *tk_quant_isa_name(int isa)
{
	return tk_isa_name(isa);
}

bool tk_quant_isa_supported(int isa)
{
	const struct tk_cpu_features *f = tk_cpu_features();
	switch (isa) {
	case TK_QUANT_ISA_REF:
		return true;
#if defined(__x86_64__)
	case TK_QUANT_ISA_AVX2:
		return f->avx2 && f->fma && f->f16c;
	case TK_QUANT_ISA_AVX512:
		return tk_quant_isa_supported(TK_QUANT_ISA_AVX2) && f->avx512f && f->avx512bw &&
		       f->avx512vl && f->avx512vnni;
#endif
	default:
		(void)f;
		return false;
	}
}

int tk_quant_isa_choose(void)
{
	return tk_isa_choose(tk_quant_isa_supported, false);
}

int tk_quant_isa_apply(int isa, struct tk_type_traits *tab)
{
	if (!tk_quant_isa_supported(isa))
		return tk_errf(TK_EUNSUPPORTED, "kernel variant %s (%d): not supported by this CPU or build",
			       tk_quant_isa_name(isa), isa);
#if defined(__x86_64__)
	if (isa >= TK_QUANT_ISA_AVX2)
		tk_quant_avx2_install(tab);
	if (isa >= TK_QUANT_ISA_AVX512)
		tk_quant_avx512_install(tab);
#else
	(void)tab;
#endif
	return 0;
}

int tk_quant_isa_traits(int isa, struct tk_type_traits *tab)
{
	if (!tk_quant_isa_supported(isa))
		return tk_errf(TK_EUNSUPPORTED, "kernel variant %s (%d): not supported by this CPU or build",
			       tk_quant_isa_name(isa), isa);
	for (int t = 0; t < TK_TYPE_COUNT; t++) {
		const struct tk_type_traits *r = tk_type_traits_ref(t);
		if (r)
			tab[t] = *r;
		else
			memset(&tab[t], 0, sizeof tab[t]);
	}
	return tk_quant_isa_apply(isa, tab);
}
