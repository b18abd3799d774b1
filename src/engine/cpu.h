/*
 * cpu.h — what the CPU running us can execute: x86 SIMD feature detection
 * (CPUID) confirmed against what the operating system saves on a context
 * switch (XGETBV), for choosing kernel variants at run time (quant_simd.h).
 *
 * Owns one immutable feature record, filled once on first use
 * (thread-safe, any thread may call). On a non-x86 build every flag is false.
 * A flag is true only when the CPU reports the instructions AND the OS has
 * enabled the register state they need (YMM for the AVX family, ZMM and
 * opmask registers for AVX-512), so code may use them when it is set.
 */
#ifndef TK_ENGINE_CPU_H
#define TK_ENGINE_CPU_H

#include <stdbool.h>
#include <stddef.h>

struct tk_cpu_features {
	bool avx;        /* AVX with OS-enabled YMM state */
	bool avx2;
	bool fma;        /* FMA3 */
	bool f16c;       /* half <-> float conversions */
	bool avx_vnni;   /* VEX-encoded VPDPBUSD on YMM */
	bool avx512f;    /* and OS-enabled ZMM/opmask state */
	bool avx512bw;
	bool avx512vl;
	bool avx512vnni;
	bool avx512bf16;
	bool gfni;       /* GF(2^8) affine and multiply; the YMM and ZMM forms
			  * also need avx and avx512f */
};

/* The features of this CPU (borrowed, static storage, never NULL). */
const struct tk_cpu_features *tk_cpu_features(void);

/* Kernel variant levels, shared by every module with per-ISA kernels (the
 * quantized products, quant_simd.h; attention, attn_simd.h). What a level
 * requires of the CPU is each module's own rule (attention's AVX-512 needs
 * only AVX-512F, the products' also BW, VL and VNNI). */
enum tk_isa_level {
	TK_ISA_REF = 0,    /* portable C, always built */
	TK_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C (and more, per module) */
	TK_ISA_AVX512 = 2, /* AVX-512 (which subsets, per module) */
	TK_ISA_COUNT
};

/* "ref", "avx2", "avx512"; "unknown" for anything else. Never NULL. */
const char *tk_isa_name(int isa);

/* The highest level for which supported(level) holds, capped by the
 * environment now: TANUKI_NO_AVX2 (or off = true) -> TK_ISA_REF,
 * TANUKI_NO_AVX512 -> at most TK_ISA_AVX2. */
int tk_isa_choose(bool (*supported)(int isa), bool off);

/* Whether kernels may use GFNI (the q6_kx16 gemm's decoder,
 * pack_q6_k_avx512.c): tk_cpu_features()->gfni, and TANUKI_NO_GFNI unset
 * (any value but "" or "0" turns it off, for A/B timing and for testing
 * the path of CPUs without GFNI). Decided once, on the first call
 * (thread-safe, any thread may call); the environment is not read again. */
bool tk_cpu_use_gfni(void);

/* Writes the set flags as space-separated lower-case names ("avx2 fma f16c
 * avx512f ... gfni", or "none") into buf[cap], truncating; returns buf. */
char *tk_cpu_describe(char *buf, size_t cap);

#endif
