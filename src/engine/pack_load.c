/*
 * pack_load.c — which load-time packer runs (pack_ref.h): whether the
 * AVX-512 packers of pack_load_avx512.c may, decided once per process from
 * the CPU and the TANUKI_NO_AVX512 / TANUKI_NO_AVX2 switches (the same
 * choice as the kernel tables', quant_simd.h). Owns that one decision.
 */
#include "engine/pack_ref.h"

#include "engine/quant_simd.h"

#include <pthread.h>
#include <stdint.h>

static bool use_avx512;
static pthread_once_t use_avx512_once = PTHREAD_ONCE_INIT;

static void decide(void)
{
#if defined(__x86_64__)
	use_avx512 = tk_quant_isa_choose() >= TK_QUANT_ISA_AVX512;
#endif
}

bool tk_pack_load_avx512(size_t row_bytes)
{
	pthread_once(&use_avx512_once, decide);
	/* a gather's offsets (row r at r * row_bytes from row 0) are int32 */
	return use_avx512 && row_bytes <= (size_t)(INT32_MAX - 4096) / 16;
}
