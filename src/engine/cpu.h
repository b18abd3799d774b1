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
};

/* The features of this CPU (borrowed, static storage, never NULL). */
const struct tk_cpu_features *tk_cpu_features(void);

/* Writes the set flags as space-separated lower-case names ("avx2 fma f16c
 * avx512f ...", or "none") into buf[cap], truncating; returns buf. */
char *tk_cpu_describe(char *buf, size_t cap);

#endif
