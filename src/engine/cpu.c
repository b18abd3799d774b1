/*
 * cpu.c — x86 feature detection through CPUID and XGETBV (cpu.h).
 *
 * Owns the static feature record, filled once under pthread_once, and the
 * GFNI decision (tk_cpu_use_gfni), made once under another. CPUID leaves
 * read: 1 (FMA, OSXSAVE, AVX, F16C in ECX), 7.0 (AVX2, AVX512F/BW/VL in
 * EBX, AVX512_VNNI and GFNI in ECX) and 7.1 (AVX-VNNI, AVX512_BF16 in
 * EAX). XCR0 bits 1-2 (SSE and AVX state) must be set for any AVX
 * instruction and bits 5-7 (opmask, upper ZMM halves, ZMM16-31) for
 * AVX-512.
 */
#include "engine/cpu.h"

#include "core/env.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static struct tk_cpu_features feats;
static pthread_once_t feats_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
static unsigned long long read_xcr0(void)
{
	unsigned int lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (unsigned long long)hi << 32 | lo;
}

static void detect(void)
{
	unsigned int a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return;
	const bool osxsave = c & (1u << 27);
	const bool cpu_avx = c & (1u << 28);
	const bool cpu_fma = c & (1u << 12);
	const bool cpu_f16c = c & (1u << 29);
	if (!osxsave || !cpu_avx)
		return;
	const unsigned long long xcr0 = read_xcr0();
	if ((xcr0 & 0x6) != 0x6) /* XMM and YMM state */
		return;
	const bool os_zmm = (xcr0 & 0xe0) == 0xe0;
	feats.avx = true;
	feats.fma = cpu_fma;
	feats.f16c = cpu_f16c;
	unsigned int max_leaf = __get_cpuid_max(0, NULL);
	if (max_leaf < 7)
		return;
	__cpuid_count(7, 0, a, b, c, d);
	const unsigned int sub_max = a;
	feats.avx2 = b & (1u << 5);
	feats.gfni = c & (1u << 8);
	if (os_zmm) {
		feats.avx512f = b & (1u << 16);
		feats.avx512bw = feats.avx512f && (b & (1u << 30));
		feats.avx512vl = feats.avx512f && (b & (1u << 31));
		feats.avx512vnni = feats.avx512f && (c & (1u << 11));
	}
	if (sub_max >= 1) {
		__cpuid_count(7, 1, a, b, c, d);
		feats.avx_vnni = a & (1u << 4);
		feats.avx512bf16 = feats.avx512f && (a & (1u << 5));
	}
}
#else
static void detect(void)
{
}
#endif

const struct tk_cpu_features *tk_cpu_features(void)
{
	pthread_once(&feats_once, detect);
	return &feats;
}

static bool use_gfni;
static pthread_once_t use_gfni_once = PTHREAD_ONCE_INIT;

static void decide_gfni(void)
{
	use_gfni = tk_cpu_features()->gfni && !tk_env_flag("TANUKI_NO_GFNI");
}

bool tk_cpu_use_gfni(void)
{
	pthread_once(&use_gfni_once, decide_gfni);
	return use_gfni;
}

char *tk_cpu_describe(char *buf, size_t cap)
{
	const struct tk_cpu_features *f = tk_cpu_features();
	const struct {
		bool on;
		const char *name;
	} flags[] = {
		{ f->avx, "avx" },           { f->avx2, "avx2" },
		{ f->fma, "fma" },           { f->f16c, "f16c" },
		{ f->avx_vnni, "avx_vnni" }, { f->avx512f, "avx512f" },
		{ f->avx512bw, "avx512bw" }, { f->avx512vl, "avx512vl" },
		{ f->avx512vnni, "avx512_vnni" }, { f->avx512bf16, "avx512_bf16" },
		{ f->gfni, "gfni" },
	};
	if (!cap)
		return buf;
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
		if (!flags[i].on)
			continue;
		int w = snprintf(buf + len, cap - len, "%s%s", len ? " " : "", flags[i].name);
		if (w < 0 || (size_t)w >= cap - len) {
			buf[cap - 1] = '\0';
			return buf;
		}
		len += (size_t)w;
	}
	if (!len)
		snprintf(buf, cap, "none");
	return buf;
}

const char *tk_isa_name(int isa)
{
	switch (isa) {
	case TK_ISA_REF:
		return "ref";
	case TK_ISA_AVX2:
		return "avx2";
	case TK_ISA_AVX512:
		return "avx512";
	default:
		return "unknown";
	}
}

int tk_isa_choose(bool (*supported)(int isa), bool off)
{
	int cap = TK_ISA_COUNT - 1;
	if (off || tk_env_flag("TANUKI_NO_AVX2"))
		cap = TK_ISA_REF;
	else if (tk_env_flag("TANUKI_NO_AVX512"))
		cap = TK_ISA_AVX2;
	for (int isa = cap; isa > TK_ISA_REF; isa--)
		if (supported(isa))
			return isa;
	return TK_ISA_REF;
}
