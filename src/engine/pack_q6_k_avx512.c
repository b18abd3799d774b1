/*
 * pack_q6_k_avx512.c — the AVX-512 (F/BW/VL + VNNI) product of the q6_kx16
 * layout (pack_q6_k.c): tk_pack_q6_k_avx512, the portable size and packer
 * with this gemm, gemv and gemmg. Compiled with the AVX-512 flags for this file only
 * (src/engine/CMakeLists.txt, by its name); empty on a non-x86 build.
 * Installed by tk_quant_avx512_install() into the active Q6_K traits.
 *
 * One zmm lane per row of the group. Per super-block i and sub-block s:
 *   - decode: three 64-byte loads q[s][0..2]; chunks 0..2 are AND 0x3F,
 *     chunk 3 is (q0 >> 6) | (q1 >> 4 & 0x0C) | (q2 >> 2 & 0x30), built with
 *     three 16-bit shifts, two VPTERNLOGD bit-selects and an AND (the
 *     shifts pull bits across byte boundaries; the selects and the AND keep
 *     only the bits that came from the right byte): 9 instructions for
 *     16 rows x 16 codes, shared by all columns; one VPMOVSXBD load gives
 *     the 16 rows' scales of s. Where the CPU has GFNI, chunk 3 is three
 *     VGF2P8AFFINEQB and one OR instead (q6_codes_gfni): the same bytes in
 *     7 instructions instead of 9;
 *   - per column c: an accumulator starts at -32 * bsums[s] (broadcast from
 *     a small table made once per super-block and column), takes four
 *     VPDPBUSD (codes unsigned 0..63, the column's 4-byte chunk broadcast
 *     as the signed operand; in the gemm as two chains of two, added),
 *     is multiplied by the scales (VPMULLD) and added to the super-block's
 *     int32 sum. These are the reference's exact
 *     integers: |sum q*y - 32 bsum| < 2^18, times |sc| <= 128 below 2^25,
 *     sixteen of them below 2^29 (VPDPBUSD does not saturate; no lane can
 *     overflow).
 *   - per super-block and column: sum = sum + (d * dy) * (float)sumi on
 *     16 lanes, the reference vec_dot's float steps in its order (no FMA:
 *     -ffp-contract=off), so every cell equals the Q6_K vec_dot bit for bit.
 * nc = 1..8 are compiled separately (the columns' accumulators stay in
 * registers: 8 int32 sums + 8 float sums + 4 code vectors + scales and
 * masks fit the 32 zmm registers), once per decoder (pack_q6_k_kern.h
 * holds the bodies); the traits' gemm and gemv pick the GFNI copy per call
 * when the CPU has it (tk_pack_q6_k_avx512_nogfni is the other, for tests).
 * What bounds it (measured on the Sapphire Rapids VM, docs/benchmarks.md,
 * "q6_kx16 gemm for batched decode"): zmm VPDPBUSD, VPMULLD's two uops,
 * adds, logic, converts and FMAs all issue on ports 0 and 5, two per
 * cycle; only the shifts and VGF2P8AFFINEQB (port 0) and shuffles and
 * VPMOVSX (port 5) have one port. So the count that matters is all zmm
 * uops: per super-block and column 16 x (4 VPDPBUSD + 2 VPMULLD + 2 adds)
 * = 128 plus ~7 for the bsums start and the float step; per super-block
 * for all columns 16 x 10 = 160 to decode with shifts, 16 x 8 = 128 with
 * GFNI: nc = 4 ~668 uops. Every gemm call prefetches the weights
 * TK_PREFETCH_AHEAD ahead (quant_simd.h).
 * Decode (one activation row) has its own kernel, q6_k_gemv_kern
 * (quant_pack.h's gemv): up to 8 groups in lockstep, sub-block s of every
 * group before s + 1, so a thread keeps 8 streams of DRAM reads in flight
 * instead of one; per cell the same steps as the gemm with nc = 1.
 * Batched decode (quant_pack.h's gemmg, nc = 2..5) walks the groups the
 * same way with the gemm's own sub-block body (q6_k_sub) and float step
 * (q6_k_close), so its cells are the gemm's bit for bit; nc = 1, 6..8 call
 * the gemm group by group.
 */
#if defined(__x86_64__)

#include "engine/pack_q6_k.h"
#include "engine/quant_simd.h"
#include "engine/quant_x86.h"

#include <immintrin.h>
#include <string.h>

#define Q8K_BYTES 292
#define SEL 0xCA /* VPTERNLOGD: a ? b : c, bit by bit (a is the mask) */
#define OR3 0xFE /* VPTERNLOGD: a | b | c */
/* The gemv's prefetch distance (pack_q6_k_kern.h): near, as q4_kx16's gemv;
 * the G streams keep the hardware prefetchers going, the prefetches only
 * keep more lines in flight. */
#ifndef Q6_GEMV_AHEAD
#define Q6_GEMV_AHEAD 1024
#endif
/* gemmg (pack_q6_k_kern.h): the column counts that take the interleaved
 * walk, and the sub-blocks it reads from one group before the next.
 * Measured from DRAM (2 threads, 22400 groups of n = 2048, 602 MB, 8 groups
 * per call; medians): against the gemm per group 1.23-1.31x at nc = 2, 3,
 * 1.04-1.26x at nc = 4, 0.97-1.10x at nc = 5, 0.96-0.99x at nc = 6 and
 * 0.82-0.92x at nc = 7, 8 (runs of 2 or 4 sub-blocks no better within the
 * noise), so nc >= 6 keep the gemm. In L2 the walk is 0.95-1.0x the gemm
 * at nc = 2, 0.85-0.94x at nc = 4, 5 (the G x nc sums live on the stack);
 * batched decode reads its weights from DRAM (docs/benchmarks.md, "q6_kx16
 * gemmg: interleaved groups (seventh session)"). */
#ifndef Q6_G_WALK
#define Q6_G_WALK(nc) ((nc) >= 2 && (nc) <= 5)
#endif
#ifndef Q6_G_RUN
#define Q6_G_RUN 1
#endif
_Static_assert(16 % Q6_G_RUN == 0, "Q6_G_RUN divides the 16 sub-blocks");

/* The four code vectors of one sub-block (192 bytes at q, the layout's
 * q[s][3][16][4]): chunks 0..2 are the low six bits of the three 64-byte
 * lines; chunk 3 gathers bits 0-1 from line 0's top, 2-3 from line 1's,
 * 4-5 from line 2's. Codes 0..63, one per byte. */
AINL void q6_codes(const uint8_t *q, __m512i c[4])
{
	const __m512i m3f = _mm512_set1_epi8(0x3f), m03 = _mm512_set1_epi8(0x03),
		      m0f = _mm512_set1_epi8(0x0f);
	const __m512i v0 = _mm512_loadu_si512((const void *)q);
	const __m512i v1 = _mm512_loadu_si512((const void *)(q + 64));
	const __m512i v2 = _mm512_loadu_si512((const void *)(q + 128));
	const __m512i u = _mm512_ternarylogic_epi32(m03, _mm512_srli_epi16(v0, 6),
						    _mm512_srli_epi16(v1, 4), SEL);
	const __m512i w = _mm512_ternarylogic_epi32(m0f, u, _mm512_srli_epi16(v2, 2), SEL);
	c[0] = _mm512_and_si512(v0, m3f);
	c[1] = _mm512_and_si512(v1, m3f);
	c[2] = _mm512_and_si512(v2, m3f);
	c[3] = _mm512_and_si512(w, m3f);
}

/* q6_codes with chunk 3 built by GFNI: one VGF2P8AFFINEQB per line moves
 * its top-bit pair (bits 6, 7) to bits 2v, 2v + 1 and clears every other
 * bit (a bit matrix per byte: output bit j takes the input bit whose mask
 * sits in matrix byte 7 - j), and one VPTERNLOGD ORs the three: 4
 * instructions where q6_codes takes 6 (three shifts, two selects, an AND),
 * for the same bytes. */
__attribute__((target("gfni"))) AINL void q6_codes_gfni(const uint8_t *q, __m512i c[4])
{
	const __m512i m3f = _mm512_set1_epi8(0x3f);
	const __m512i a0 = _mm512_set1_epi64(0x4080000000000000ll), /* 6,7 -> 0,1 */
		      a1 = _mm512_set1_epi64(0x0000408000000000ll), /* 6,7 -> 2,3 */
		      a2 = _mm512_set1_epi64(0x0000000040800000ll); /* 6,7 -> 4,5 */
	const __m512i v0 = _mm512_loadu_si512((const void *)q);
	const __m512i v1 = _mm512_loadu_si512((const void *)(q + 64));
	const __m512i v2 = _mm512_loadu_si512((const void *)(q + 128));
	c[0] = _mm512_and_si512(v0, m3f);
	c[1] = _mm512_and_si512(v1, m3f);
	c[2] = _mm512_and_si512(v2, m3f);
	c[3] = _mm512_ternarylogic_epi32(_mm512_gf2p8affine_epi64_epi8(v0, a0, 0),
					 _mm512_gf2p8affine_epi64_epi8(v1, a1, 0),
					 _mm512_gf2p8affine_epi64_epi8(v2, a2, 0), OR3);
}

/* q6_k_gemm_sh / q6_k_gemv_sh: the shift decoder, AVX-512 F/BW/VL + VNNI */
#define Q6_SFX _sh
#define Q6_CODES q6_codes
#define Q6_TARGET
#include "engine/pack_q6_k_kern.h"
#undef Q6_SFX
#undef Q6_CODES
#undef Q6_TARGET

/* q6_k_gemm_gfni / q6_k_gemv_gfni: the same with the GFNI decoder */
#define Q6_SFX _gfni
#define Q6_CODES q6_codes_gfni
#define Q6_TARGET __attribute__((target("gfni")))
#include "engine/pack_q6_k_kern.h"
#undef Q6_SFX
#undef Q6_CODES
#undef Q6_TARGET

/* GFNI is checked per call (cpu.h's decision, made once: the CPU's flag
 * and TANUKI_NO_GFNI): Ice Lake and later have it, Skylake-SP and Cascade
 * Lake do not. */
static void q6_k_gemm_avx512(int64_t n, float *out, size_t ldo, const void *vgroup,
			     const void *vy, size_t by, int nc)
{
	if (tk_cpu_use_gfni())
		q6_k_gemm_gfni(n, out, ldo, vgroup, vy, by, nc);
	else
		q6_k_gemm_sh(n, out, ldo, vgroup, vy, by, nc);
}

static void q6_k_gemv_avx512(int64_t n, float *out, const void *vgroups, size_t gb, int ng,
			     const void *vy)
{
	if (tk_cpu_use_gfni())
		q6_k_gemv_gfni(n, out, vgroups, gb, ng, vy);
	else
		q6_k_gemv_sh(n, out, vgroups, gb, ng, vy);
}

static void q6_k_gemmg_avx512(int64_t n, float *out, size_t ldo, const void *vgroups, size_t gb,
			      int ng, const void *vy, size_t by, int nc)
{
	if (tk_cpu_use_gfni())
		q6_k_gemmg_gfni(n, out, ldo, vgroups, gb, ng, vy, by, nc);
	else
		q6_k_gemmg_sh(n, out, ldo, vgroups, gb, ng, vy, by, nc);
}

const struct tk_pack_traits tk_pack_q6_k_avx512 = {
	.name = "q6_kx16",
	.group_size = tk_pack_q6_k_group_size,
	.pack = tk_pack_q6_k_pack,
	.gemm = q6_k_gemm_avx512,
	.gemv = q6_k_gemv_avx512,
	.gemmg = q6_k_gemmg_avx512,
};

const struct tk_pack_traits tk_pack_q6_k_avx512_nogfni = {
	.name = "q6_kx16",
	.group_size = tk_pack_q6_k_group_size,
	.pack = tk_pack_q6_k_pack,
	.gemm = q6_k_gemm_sh,
	.gemv = q6_k_gemv_sh,
	.gemmg = q6_k_gemmg_sh,
};

#else
/* Not x86-64: nothing to build (ISO C wants one declaration). */
typedef int tk_pack_q6_k_avx512_absent;
#endif /* __x86_64__ */
