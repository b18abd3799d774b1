/*
 * pack_ref.h — the reference packers of the packed layouts (quant_pack.h)
 * and the word helpers the fast packers share.
 *
 * Each layout has these packers, all with the same contract (quant_pack.h's
 * pack(): 16 file rows, row_bytes apart, n elements each -> one group of
 * group_size(n) bytes; pure; any thread; no alignment needed) and all
 * writing the same bytes:
 *   tk_pack_<type>_pack         the one the engine uses at model load (the
 *                               pack pointer of the layout's reference
 *                               traits and of every ISA variant's): the
 *                               AVX-512 packer when tk_pack_load_avx512()
 *                               allows it, else the portable words one
 *                               (all four defined in pack_load.c);
 *   tk_pack_<type>_pack_words   portable: whole words per load and store,
 *                               one pass over each packed super-block;
 *   tk_pack_<type>_pack_avx512  x86-64 builds only, and only where
 *                               tk_pack_load_avx512() is true: 32-bit
 *                               gathers of the 16 rows, one 64-byte line
 *                               of the group per store (pack_load_avx512.c);
 *   tk_pack_<type>_pack_ref     the element-by-element packer written
 *                               straight from the layout's definition in
 *                               pack_<type>.c, kept as the oracle:
 *                               test_pack_load holds the others to its
 *                               bytes on awkward shapes.
 * The portable packers read and write bytes through the little-endian word
 * helpers below, so they are correct on any host and compile to plain
 * loads and stores on little-endian ones.
 */
#ifndef TK_ENGINE_PACK_REF_H
#define TK_ENGINE_PACK_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

void tk_pack_q8_0_pack_ref(void *dst, const void *src, size_t row_bytes, int64_t n);
void tk_pack_q4_k_pack_ref(void *dst, const void *src, size_t row_bytes, int64_t n);
void tk_pack_q6_k_pack_ref(void *dst, const void *src, size_t row_bytes, int64_t n);
void tk_pack_f16_pack_ref(void *dst, const void *src, size_t row_bytes, int64_t n);

void tk_pack_q8_0_pack_words(void *dst, const void *src, size_t row_bytes, int64_t n);
void tk_pack_q4_k_pack_words(void *dst, const void *src, size_t row_bytes, int64_t n);
void tk_pack_q6_k_pack_words(void *dst, const void *src, size_t row_bytes, int64_t n);
void tk_pack_f16_pack_words(void *dst, const void *src, size_t row_bytes, int64_t n);

/* True when the AVX-512 packers may run for rows row_bytes apart: an
 * x86-64 build, a CPU at quant_simd.h's avx512 level (AVX-512 F/BW/VL +
 * VNNI), TANUKI_NO_AVX512 / TANUKI_NO_AVX2 unset (read once per process),
 * and 16 * row_bytes within the gathers' int32 offsets. pack_load.c; any
 * thread. */
bool tk_pack_load_avx512(size_t row_bytes);

#if defined(__x86_64__)
void tk_pack_q8_0_pack_avx512(void *dst, const void *src, size_t row_bytes, int64_t n);
void tk_pack_q4_k_pack_avx512(void *dst, const void *src, size_t row_bytes, int64_t n);
void tk_pack_q6_k_pack_avx512(void *dst, const void *src, size_t row_bytes, int64_t n);
void tk_pack_f16_pack_avx512(void *dst, const void *src, size_t row_bytes, int64_t n);
#endif

/* Little-endian words at any address: byte 0 is the least significant. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
	__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define TK_PACK_LE(bits, v) __builtin_bswap##bits(v)
#else
#define TK_PACK_LE(bits, v) (v)
#endif

static inline uint64_t tk_pack_ld64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return TK_PACK_LE(64, v);
}

static inline uint32_t tk_pack_ld32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	return TK_PACK_LE(32, v);
}

static inline void tk_pack_st64(void *p, uint64_t v)
{
	v = TK_PACK_LE(64, v);
	memcpy(p, &v, sizeof v);
}

static inline void tk_pack_st32(void *p, uint32_t v)
{
	v = TK_PACK_LE(32, v);
	memcpy(p, &v, sizeof v);
}

#endif
