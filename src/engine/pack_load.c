/*
 * pack_load.c — which load-time packer runs (pack_ref.h): whether the
 * AVX-512 packers of pack_load_avx512.c may, decided once per process from
 * the CPU and the TANUKI_NO_AVX512 / TANUKI_NO_AVX2 switches (the same
 * choice as the kernel tables', quant_simd.h). Owns that one decision and
 * the packers the engine calls at load, tk_pack_<type>_pack for q8_0, q4_k,
 * q6_k and f16: the AVX-512 packer where it may run, else the portable
 * words one; the same bytes either way.
 */
#include "engine/pack_ref.h"

#include "engine/pack_f16.h"
#include "engine/pack_q4_k.h"
#include "engine/pack_q6_k.h"
#include "engine/quant_pack.h"
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

#if defined(__x86_64__)
#define PACK_LOAD_AVX512(type)                                            \
	if (tk_pack_load_avx512(row_bytes)) {                             \
		tk_pack_##type##_pack_avx512(dst, src, row_bytes, n);      \
		return;                                                   \
	}
#else
#define PACK_LOAD_AVX512(type)
#endif

#define PACK_LOAD(type)                                                          \
	void tk_pack_##type##_pack(void *dst, const void *src, size_t row_bytes,  \
				   int64_t n)                                     \
	{                                                                         \
		PACK_LOAD_AVX512(type)                                            \
		tk_pack_##type##_pack_words(dst, src, row_bytes, n);               \
	}

PACK_LOAD(q8_0)
PACK_LOAD(q4_k)
PACK_LOAD(q6_k)
PACK_LOAD(f16)
