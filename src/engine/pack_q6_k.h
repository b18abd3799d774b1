/*
 * pack_q6_k.h — private to the q6_kx16 layout's files (pack_q6_k.c and its
 * ISA variants): the layout functions every variant's traits share. The
 * layout itself is described in pack_q6_k.c and docs/engine.md ("Packed
 * weights"); callers outside the engine's pack files use quant_pack.h.
 */
#ifndef TK_ENGINE_PACK_Q6_K_H
#define TK_ENGINE_PACK_Q6_K_H

#include "engine/quant_pack.h"

/* Bytes of one group of 16 rows of n elements (16 * 210 * n / 256), or 0
 * when n is not a positive multiple of 256. Pure. */
size_t tk_pack_q6_k_group_size(int64_t n);

/* quant_pack.h's pack(): the 16 Q6_K file rows at src (row_bytes apart, n
 * elements each) -> one q6_kx16 group at dst (tk_pack_q6_k_group_size(n)
 * bytes). Borrows both; pure, any thread. */
void tk_pack_q6_k_pack(void *dst, const void *src, size_t row_bytes, int64_t n);

#if defined(__x86_64__)
/* tk_pack_q6_k_avx512 without its GFNI decoder: what a CPU with AVX-512
 * VNNI but no GFNI (Cascade Lake) runs; tk_pack_q6_k_avx512 picks between
 * the two per call. Exported so the tests hold this path to the reference
 * on a CPU that has GFNI too. Needs the same CPU as tk_pack_q6_k_avx512. */
extern const struct tk_pack_traits tk_pack_q6_k_avx512_nogfni;
#endif

/* Bytes of one packed super-block after the group's d array: 16 x 16 int8
 * scales, then 16 sub-blocks x 192 code bytes. */
#define TK_PACK_Q6_K_SB_BYTES 3328

#endif
