/*
 * pack_f16.h — private to the f16x16 layout's files (pack_f16.c and its
 * ISA kernels pack_f16_<isa>.c): the portable halves every traits table of
 * the layout shares. The layout and its arithmetic are described in
 * pack_f16.c; the contract in quant_pack.h. Pure functions, any thread.
 */
#ifndef TK_ENGINE_PACK_F16_H
#define TK_ENGINE_PACK_F16_H

#include "engine/quant_pack.h"
#include "engine/quant_simd.h"

#include <stdint.h>

/* Elements per chunk sum within each half of a row (pack_f16.c). */
#define TK_PACK_F16_CHUNK 16

/* Where the second half of a row of n elements starts: 2 * floor(n / 4)
 * (even, and <= n - h, so the second half is the longer by 0..3). */
static inline int64_t tk_pack_f16_half(int64_t n)
{
	return n / 4 * 2;
}

/* The element schedule of the layout's arithmetic (pack_f16.c), written
 * once for every fast kernel (AVX2 and AVX-512, gemm and gemv): the order
 * in which terms enter the chunk and half sums is what makes them equal
 * the reference bit for bit, so it must not drift between copies. The
 * kernel names:
 *   STEP(acc, s, e, ye)  acc += element e of half s (a literal: 0 is
 *                        [0, h), 1 is [h, n), e counted from the half's
 *                        start) of its weights times activation element
 *                        ye, one fused multiply-add per lane;
 *   ZERO(acc), ADD(p, q) clear an accumulator set; p += q;
 *   PF(e)                once per pair of elements in the chunk loop
 *                        (its software prefetch; may expand to nothing);
 * and four accumulator sets: p0, p1 (the halves' sums) and q0, q1 (their
 * open chunks' sums). Afterwards the cell is p0 + p1. Both halves are
 * walked side by side (two FMA chains and two memory streams). Where the
 * second half's chunk closes exactly at its end, a chunk sum of +0 is
 * added that the reference never forms: a half's sum starts at +0, is
 * never -0, and is unchanged by it. */
#define TK_PACK_F16_SCHEDULE(n, STEP, ZERO, ADD, PF, p0, p1, q0, q1)                            \
	do {                                                                                    \
		const int64_t sh_ = tk_pack_f16_half(n), sn1_ = (n)-sh_;                        \
		ZERO(p0);                                                                       \
		ZERO(p1);                                                                       \
		int64_t se_ = 0;                                                                \
		for (; se_ + TK_PACK_F16_CHUNK <= sh_; se_ += TK_PACK_F16_CHUNK) {              \
			ZERO(q0);                                                               \
			ZERO(q1);                                                               \
			_Pragma("GCC unroll 8") for (int si_ = 0; si_ < TK_PACK_F16_CHUNK;      \
						     si_ += 2)                                  \
			{                                                                       \
				PF(se_ + si_);                                                  \
				STEP(q0, 0, se_ + si_, se_ + si_);                              \
				STEP(q1, 1, se_ + si_, sh_ + se_ + si_);                        \
				STEP(q0, 0, se_ + si_ + 1, se_ + si_ + 1);                      \
				STEP(q1, 1, se_ + si_ + 1, sh_ + se_ + si_ + 1);                \
			}                                                                       \
			ADD(p0, q0);                                                            \
			ADD(p1, q1);                                                            \
		}                                                                               \
		const int64_t sopen1_ = se_; /* where the second half's chunk opened */         \
		ZERO(q1);                                                                       \
		if (se_ < sh_) { /* the halves' last chunks, h % 16 elements */                 \
			ZERO(q0);                                                               \
			for (; se_ < sh_; se_++) {                                              \
				STEP(q0, 0, se_, se_);                                          \
				STEP(q1, 1, se_, sh_ + se_);                                    \
			}                                                                       \
			ADD(p0, q0);                                                            \
		}                                                                               \
		for (int64_t so_ = sh_; so_ < sn1_; so_++) { /* the second half's last 0..3 */  \
			if (so_ % TK_PACK_F16_CHUNK == 0 && so_ != sopen1_) {                   \
				ADD(p1, q1);                                                    \
				ZERO(q1);                                                       \
			}                                                                       \
			STEP(q1, 1, so_, sh_ + so_);                                            \
		}                                                                               \
		ADD(p1, q1);                                                                    \
	} while (0)

/* The schedule's PF hooks of the fast kernels: one cache line of each of
 * the two halves' streams, TK_PREFETCH_AHEAD past element e
 * (tk_prefetch_weights, quant_simd.h). Like the STEP hooks they use the
 * kernel's names:
 *   TK_PACK_F16_PF_HALVES  the gemm's one group, its halves at gh[0], gh[1];
 *   TK_PACK_F16_PF_GROUPS  the gemv's G groups, group i's halves at
 *                          gh[0][i], gh[1][i]; only when PF is non-zero
 *                          (the gemv's prefetch is off by default). */
#define TK_PACK_F16_PF_HALVES(e)                                                               \
	do {                                                                                   \
		tk_prefetch_weights(gh[0] + 32 * (size_t)(e), 64);                             \
		tk_prefetch_weights(gh[1] + 32 * (size_t)(e), 64);                             \
	} while (0)
#define TK_PACK_F16_PF_GROUPS(e)                                                               \
	do {                                                                                   \
		if (PF)                                                                        \
			for (int j_ = 0; j_ < G; j_++) {                                       \
				tk_prefetch_weights(gh[0][j_] + 32 * (size_t)(e), 64);         \
				tk_prefetch_weights(gh[1][j_] + 32 * (size_t)(e), 64);         \
			}                                                                      \
	} while (0)

/* Bytes of one group: 16 rows x n halfs; 0 for n <= 0. */
size_t tk_pack_f16_group_size(int64_t n);

/* quant_pack.h's pack(): 16 file rows (row_bytes apart, n halfs each) into
 * one group at dst (tk_pack_f16_group_size(n) bytes, no alignment needed).
 * src and dst are borrowed and must not overlap. */
void tk_pack_f16_pack(void *dst, const void *src, size_t row_bytes, int64_t n);

#endif
