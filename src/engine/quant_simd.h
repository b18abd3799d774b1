/*
 * quant_simd.h — the SIMD variants of quant.h's kernels and how one is
 * chosen (run-time CPU dispatch).
 *
 * A variant ("ISA") is a set of kernels that replace some of the reference
 * pointers of the type table; whatever a variant does not replace stays the
 * reference kernel. Variants, from slowest to fastest:
 *   ref     portable C (quant.c, quant_k.c), always built, always available;
 *   avx2    AVX2 + FMA + F16C (quant_avx2.c);
 *   avx512  the avx2 set, with AVX-512F/BW/VL + VNNI kernels where they were
 *           measured faster (quant_avx512.c); AVX512_BF16 for BF16 dots when
 *           the CPU also has it.
 * tk_quant_init() (quant.c) installs the best variant the CPU supports,
 * lowered by the environment: TANUKI_NO_AVX512=1 caps it at avx2,
 * TANUKI_NO_AVX2=1 at ref (any value but "" or "0" counts as set).
 *
 * Every variant computes what the reference computes: integer parts of the
 * quantized dots exactly, the float parts up to summation order
 * (docs/engine.md, "SIMD kernels"). Activation quantizers (from_float of
 * Q8_0 and Q8_K) produce the reference's bytes exactly.
 *
 * Thread safety: all functions may be called from any thread; the tables
 * they fill are the caller's.
 */
#ifndef TK_ENGINE_QUANT_SIMD_H
#define TK_ENGINE_QUANT_SIMD_H

#include "engine/cpu.h"
#include "engine/quant.h"

/* The levels of cpu.h (tk_isa_level); avx512 here needs AVX-512 F, BW, VL
 * and VNNI besides AVX2 + FMA + F16C. */
enum tk_quant_isa {
	TK_QUANT_ISA_REF = TK_ISA_REF,
	TK_QUANT_ISA_AVX2 = TK_ISA_AVX2,
	TK_QUANT_ISA_AVX512 = TK_ISA_AVX512,
	TK_QUANT_ISA_COUNT = TK_ISA_COUNT
};

/* "ref", "avx2", "avx512"; "unknown" for anything else. Never NULL. */
const char *tk_quant_isa_name(int isa);

/* True when this build contains isa's kernels and this CPU (with its OS)
 * can run them. Ignores the TANUKI_NO_* variables. */
bool tk_quant_isa_supported(int isa);

/* The variant tk_quant_init() installs: the best supported one, capped by
 * TANUKI_NO_AVX512 / TANUKI_NO_AVX2 as read from the environment now. */
int tk_quant_isa_choose(void);

/* The variant the active table (tk_type_traits) uses. Initializes it. */
int tk_quant_isa_active(void);

/* Overwrites tab[TK_TYPE_COUNT], which the caller has filled (with the
 * reference traits, or a lower variant's), with isa's kernels, lower
 * variants' first (avx512 installs avx2's, then its own). 0 on success;
 * TK_EUNSUPPORTED (detail set) when isa is not supported here, tab unchanged. */
int tk_quant_isa_apply(int isa, struct tk_type_traits *tab);

/* Fills tab[TK_TYPE_COUNT] with the reference traits and applies isa: the
 * whole table of that variant, for tests and benchmarks that compare
 * variants directly. 0 or TK_EUNSUPPORTED as above. */
int tk_quant_isa_traits(int isa, struct tk_type_traits *tab);

#if defined(__x86_64__)
/* Per-ISA installers (quant_avx2.c, quant_avx512.c): replace the pointers of
 * the kernels that file implements. Call only when the CPU supports them
 * (tk_quant_isa_apply checks). */
void tk_quant_avx2_install(struct tk_type_traits *tab);
void tk_quant_avx512_install(struct tk_type_traits *tab);
#endif

/* Decode reads every weight once, straight from DRAM, and a single core's
 * hardware prefetcher does not run far enough ahead to keep its share of
 * the bandwidth busy while the kernel also does integer work. Kernels
 * prefetch the weight bytes TK_PREFETCH_AHEAD ahead of the block they
 * read (measured on the 2-core Xeon VM, Q8_0 1.1B decode: 6.7 -> 11.4
 * tok/s on one thread; 4 KiB gave 9.7). A prefetch never faults, so
 * running past the end of a row or the tensor is harmless. No arithmetic
 * changes: results stay bit-identical. */
#define TK_PREFETCH_AHEAD 8192
/* The lines of bytes at p (one prefetch per 64 bytes), ahead bytes ahead:
 * TK_PREFETCH_AHEAD for one stream, or the near 1 KiB that the interleaved
 * walks (gemv, gemmg) issue with each load. */
static inline void tk_prefetch_ahead(const void *p, int bytes, int ahead)
{
	for (int o = 0; o < bytes; o += 64)
		__builtin_prefetch((const char *)p + ahead + o, 0, 3);
}

static inline void tk_prefetch_weights(const void *p, int bytes)
{
	tk_prefetch_ahead(p, bytes, TK_PREFETCH_AHEAD);
}

#endif
