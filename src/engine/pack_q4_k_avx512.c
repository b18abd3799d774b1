/*
 * pack_q4_k_avx512.c — the AVX-512 VNNI products of the q4_kx16 packed
 * layout (quant_pack.h, pack_q4_k.c): the gemm, 16 Q4_K weight rows x 1..8
 * Q8_K activation rows, and the decode gemv, 1..8 groups x one activation
 * row. Compiled with the AVX-512 flags (and -ffp-contract=off) for this
 * file only (src/engine/CMakeLists.txt); empty on a non-x86 build. Uses
 * AVX-512 F/BW/VL + VNNI only (no VBMI or GFNI: Cascade Lake has VNNI
 * without them).
 *
 * Owns tk_pack_q4_k_avx512 (the portable group size and packer with this
 * gemm and gemv), installed for Q4_K by tk_quant_avx512_install().
 *
 * gemm, per packed super-block (256 elements of 16 rows, lane r = row r):
 *   - per sub-block j: 4 chunk loads of 64 bytes; each gives, masked with
 *     0x0F and shifted right by 4, the codes of elements 32j + 4k .. +3 and
 *     32j + 16 + 4k .. +3 of all 16 rows; per column c one VPDPBUSD per
 *     nibble half against the column's 4 activation bytes broadcast (the
 *     embedded {1to16} memory operand, dpbusd_bcast() in quant_x86.h; the
 *     compiler's separate VPBROADCASTD was 1.1-1.25x slower in cache at
 *     nc = 2..8, docs/benchmarks.md "Embedded broadcasts"): per column
 *     two chains of 4 VPDPBUSD from zero, dl over the low nibbles
 *     (elements 32j .. 32j + 15) and dh over the high ones (32j + 16 ..),
 *     each an int16 (bounds below); then isum += sc_j * dl + sc_j * dh by
 *     two VPDPWSSD against the scales zero-extended to 32-bit lanes, i.e.
 *     (sc_j, 0) int16 pairs: the low half of each lane is dl (or dh) as an
 *     int16, the high half (its sign) meets the 0. One exact int32 isum per
 *     column, 2 uops per sub-block and column. This replaced (docs/
 *     benchmarks.md, "q4_kx16 gemm: scales by VPDPWSSD") an add of the two
 *     chains, VCVTDQ2PS and an FMA into two exact float partial sums (3
 *     uops and 2 registers per column), which had replaced VPMULLD (2 uops
 *     on port 0 alone; VPDPBUSD issues on ports 0 and 5, two per cycle);
 *   - the mins: the two 64-byte lines of mins (4 per row lane); per j one
 *     VPSHUFB makes (m_j, m_j) int16 pairs; per column one VPDPWSSD
 *     against the column's bsums 2j, 2j + 1 broadcast (they are adjacent
 *     int16s in the Q8_K block): msum += m_j * (bsums[2j] + bsums[2j + 1]);
 *   - per column: (d * dy) * (float)isum - (dmin * dy) * (float)msum added
 *     to the column's float sum, with d, dmin the 16 rows' halves (one
 *     VCVTPH2PS each). These are the reference vec_dot's float steps in its
 *     order, not fused (-ffp-contract=off), so every cell equals
 *     tk_quant_q4_k_vec_dot's reference result bit for bit; they cost 8
 *     float operations per 4096 multiply-adds.
 * gemv: see q4kp_gemv — the same integers computed in fewer instructions
 * (16 x each sub-block's dot, the min term by VPDPBUSD on split sums) and
 * the same float steps, so it equals the gemm with nc = 1 bit for bit.
 *
 * Integer bounds (codes q <= 15, scales and mins <= 63, activations in
 * -128..127 although the Q8_K quantizer stops at -127, bsums any int16
 * although the quantizer's are sums of 16 codes, within +-2048):
 *     one VPDPBUSD step adds at most 4 * 15 * 128 = 7680 (gemm), 4 * 240
 *     * 128 = 122880 (gemv's high nibbles, 16 x code), 4 * 63 * 128 (the
 *     gemv's mins): no saturation (VPDPBUSD wraps), nothing comes near it;
 *     |dl|, |dh| <= 16 * 15 * 128 = 30720 < 2^15: each is its lane's low
 *     int16 exactly (the gemm's VPDPWSSD); |sub-block dot| <= 61440 (gemv:
 *     16 x that, 983040); VPDPWSSD products <= 63 * 30720 (no saturation:
 *     VPDPWSSD wraps, and nothing comes near 2^31);
 *     |isum| <= 8 * 63 * 61440 = 30965760 < 2^31 (gemv: 16 x that,
 *     495452160 < 2^31, then shifted right by 4, exactly: a multiple of 16);
 *     |bsums[2j] + bsums[2j + 1]| <= 65536, |msum| <= 8 * 63 * 65536
 *     = 33030144 < 2^31; the gemv's partial min sums are smaller still
 *     (|8 * 63 * a| <= 2016, x 128 + 8 * 63 * 127 <= 322056, x 128 +
 *     64008 = the exact msum);
 *     VPDPWSSD (gemm's mins): products <= 63 * 32768, 16 of them per lane.
 * All exact, so the integer sums equal the reference's in any order.
 *
 * nc is a compile-time constant in each specialization (1..8). Registers
 * with nc = 8: 8 float sums, 8 isums, 2 x 8 chains, the nibble operands,
 * the mask and the scales: more than 32, so the compiler keeps some on the
 * stack (loads and stores take no vector ALU port). Every gemm call prefetches the
 * weights TK_PREFETCH_AHEAD ahead (quant_simd.h): a group of a long row is
 * streamed once per call, so batched decode (nc = 2..4) reads from DRAM
 * too. The prefetches are spread, one per line as the kernel reads it (the
 * 5 lines of scales, mins and halves at the super-block's start, each code
 * line with its chunk load), not the super-block's 37 lines at once: a
 * burst of 37 waits for fill buffers and stalls the arithmetic behind it;
 * spread, the gemm read 1.15-1.3x faster from DRAM at nc = 2..8 (2
 * threads) and 4 decoded sequences ran 1.1-1.3x faster (docs/benchmarks.md,
 * "q4_kx16 gemm: spread prefetch"). The gemv (ng = 1..8 specialized)
 * prefetches each line 1 KiB ahead (q4kp_gemv).
 */
#if defined(__x86_64__)

#include "engine/pack_q4_k.h"
#include "engine/quant_simd.h"
#include "engine/quant_x86.h"

#include <immintrin.h>

#define Y_BLOCK 292 /* bytes of one Q8_K activation block */
#define Y_QS 4      /* its int8 codes */
#define Y_BSUMS 260 /* its 16 int16 sums of 16 codes */

AINL __m512i ld_bytes_epi32(const uint8_t *p) /* 16 bytes -> 16 int32 */
{
	return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}

/* The prefetch distance of the interleaved walks (q4kp_gemv, q4kp_kern_g);
 * the gemm's is TK_PREFETCH_AHEAD. */
#define Q4KP_NEAR_AHEAD 1024

/* Sub-block j of the super-block at g times C activation rows (the
 * super-block's Q8_K blocks at y, by bytes apart): isum[c] += sc_j * dot,
 * exactly, prefetching each code line `ahead` bytes ahead as it is read. */
AINL void q4kp_sub(const uint8_t *g, int j, const uint8_t *y, size_t by, __m512i *isum,
		   const int C, const int ahead)
{
	const __m512i nib = _mm512_set1_epi8(0x0f);
	const uint8_t *q = g + TK_PQ4K_Q + 256 * j;
	const uint8_t *yj = y + Y_QS + 32 * j;
	__m512i dl[TK_PACK_COLS], dh[TK_PACK_COLS];
	for (int c = 0; c < C; c++) {
		dl[c] = _mm512_setzero_si512();
		dh[c] = _mm512_setzero_si512();
	}
	for (int k = 0; k < 4; k++) {
		const __m512i v = _mm512_loadu_si512(q + 64 * k);
		tk_prefetch_ahead(q + 64 * k, 64, ahead);
		const __m512i lo = _mm512_and_si512(v, nib);
		const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
		for (int c = 0; c < C; c++) {
			const uint8_t *yc = yj + (size_t)c * by + 4 * k;
			dl[c] = dpbusd_bcast(dl[c], lo, yc);
			dh[c] = dpbusd_bcast(dh[c], hi, yc + 16);
		}
	}
	/* (sc_j, 0) int16 pairs: the 16 rows' scales zero-extended to 32 bits */
	const __m512i sc = ld_bytes_epi32(g + TK_PQ4K_SC + 16 * j);
	for (int c = 0; c < C; c++) {
		isum[c] = _mm512_dpwssd_epi32(isum[c], dl[c], sc);
		isum[c] = _mm512_dpwssd_epi32(isum[c], dh[c], sc);
	}
}

/* The end of the super-block at g for C columns: the min term and the
 * reference's float step, accf[c] += (d dy)(float)isum - (dmin dy) msum. */
AINL void q4kp_close(const uint8_t *g, const uint8_t *y, size_t by, const __m512i *isum,
		     __m512 *accf, const int C)
{
	/* VPSHUFB control: in every 32-bit lane, byte 0 of the lane zero-extended
	 * twice (add t * 0x10001 for byte t) */
	const __m512i pair_idx = _mm512_set4_epi32((int)0x800c800c, (int)0x80088008,
						   (int)0x80048004, (int)0x80008000);
	__m512i msum[TK_PACK_COLS];
	for (int c = 0; c < C; c++)
		msum[c] = _mm512_setzero_si512();
	const __m512i m4[2] = { _mm512_loadu_si512(g + TK_PQ4K_M),
				_mm512_loadu_si512(g + TK_PQ4K_M + 64) };
	for (int j = 0; j < 8; j++) {
		/* (m_j, m_j) as two int16 in every row lane */
		const __m512i mm = _mm512_shuffle_epi8(
			m4[j / 4], _mm512_add_epi32(pair_idx, _mm512_set1_epi32((j % 4) * 0x10001)));
		for (int c = 0; c < C; c++)
			msum[c] = dpwssd_bcast(msum[c], mm, y + (size_t)c * by + Y_BSUMS + 4 * j);
	}
	const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + TK_PQ4K_D)));
	const __m512 mx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + TK_PQ4K_DMIN)));
	for (int c = 0; c < C; c++) {
		const __m512 dy = _mm512_set1_ps(ld_f32(y + (size_t)c * by));
		const __m512 a = _mm512_mul_ps(_mm512_mul_ps(dx, dy), _mm512_cvtepi32_ps(isum[c]));
		const __m512 s = _mm512_mul_ps(_mm512_mul_ps(mx, dy), _mm512_cvtepi32_ps(msum[c]));
		accf[c] = _mm512_add_ps(accf[c], _mm512_sub_ps(a, s));
	}
}

AINL void q4kp_kern(int64_t nb, float *out, size_t ldo, const uint8_t *g, const uint8_t *y,
		    size_t by, const int C)
{
	__m512 accf[TK_PACK_COLS];
	for (int c = 0; c < C; c++)
		accf[c] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nb; b++, g += TK_PQ4K_BYTES, y += Y_BLOCK) {
		/* the scales, mins and halves now; each code line as its
		 * chunk is read (q4kp_sub) */
		tk_prefetch_ahead(g, TK_PQ4K_Q, TK_PREFETCH_AHEAD);
		__m512i isum[TK_PACK_COLS];
		for (int c = 0; c < C; c++)
			isum[c] = _mm512_setzero_si512();
		for (int j = 0; j < 8; j++)
			q4kp_sub(g, j, y, by, isum, C, TK_PREFETCH_AHEAD);
		q4kp_close(g, y, by, isum, accf, C);
	}
	for (int c = 0; c < C; c++)
		_mm512_storeu_ps(out + (size_t)c * ldo, accf[c]);
}

/* Batched decode with few columns (quant_pack.h's gemmg, nc = 2, 3): G
 * groups gb bytes apart, each super-block's sub-blocks walked group by
 * group (sub-block j of groups 0..G-1, then j + 1), so each thread keeps G
 * streams of 256-byte runs in flight, as the gemv does, where the gemm
 * walks one group at a time: one stream. Per group the steps of q4kp_kern
 * in the same order, so every cell equals the gemm's bit for bit; the G x
 * C isums live on the stack (8 x 3 would not fit the registers). Each line
 * is prefetched
 * Q4KP_NEAR_AHEAD ahead. From DRAM (2 threads, 606 MB of groups) 1.16-1.20x
 * the gemm at nc = 2 and 1.13-1.16x at nc = 3; at nc = 4 0.96-0.97x then,
 * the stack traffic costing more than the streams gain (in L2 this walk is
 * 0.7-0.8x the gemm; docs/benchmarks.md, "q4_kx16: interleaved groups for
 * nc = 2, 3"). Since the engine walks a unit as 8 regions (ops.c
 * matmul_streams), the groups of one call are far apart and the gemm, one
 * group after another, opens a new stream per group: with this walk 4
 * decoded sequences run 1.08-1.21x faster (llama1b Q4_K_M; "Batched decode:
 * interleaved q4_kx16 groups at nc = 4"), so nc = 2..4 take it. */
AINL void q4kp_kern_g(int64_t nb, float *out, size_t ldo, const uint8_t *g, size_t gb,
		      const uint8_t *y, size_t by, const int C, const int G)
{
	__m512 accf[TK_PACK_GEMV_GROUPS][TK_PACK_COLS];
	__m512i isum[TK_PACK_GEMV_GROUPS][TK_PACK_COLS];
	for (int i = 0; i < G; i++)
		for (int c = 0; c < C; c++)
			accf[i][c] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nb; b++, g += TK_PQ4K_BYTES, y += Y_BLOCK) {
		for (int i = 0; i < G; i++) {
			tk_prefetch_ahead(g + (size_t)i * gb, TK_PQ4K_Q, Q4KP_NEAR_AHEAD);
			for (int c = 0; c < C; c++)
				isum[i][c] = _mm512_setzero_si512();
		}
		for (int j = 0; j < 8; j++)
			for (int i = 0; i < G; i++)
				q4kp_sub(g + (size_t)i * gb, j, y, by, isum[i], C, Q4KP_NEAR_AHEAD);
		for (int i = 0; i < G; i++)
			q4kp_close(g + (size_t)i * gb, y, by, isum[i], accf[i], C);
	}
	for (int i = 0; i < G; i++)
		for (int c = 0; c < C; c++)
			_mm512_storeu_ps(out + (size_t)c * ldo + 16 * (size_t)i, accf[i][c]);
}

/* The min term's activation side of one Q8_K block for the gemv: the 8
 * sums bs_j = bsums[2j] + bsums[2j + 1] (any int16 bsums: -65536 ..
 * 65534), each split as bs_j = 16384 a_j + 128 b_j + c_j with a_j in
 * -4..3 and b_j, c_j in 0..127, so that each part is a signed byte; w[4h]
 * holds a_{4h..4h+3} (byte t = a_{4h+t}), w[4h + 1] the b's, w[4h + 2]
 * the c's (h = 0, 1; w[3], w[7] unused). */
AINL void mins_split(const uint8_t *yb, uint32_t w[8])
{
	const __m256i bs = _mm256_loadu_si256((const __m256i *)(yb + Y_BSUMS));
	const __m256i u = _mm256_add_epi32(_mm256_madd_epi16(bs, _mm256_set1_epi16(1)),
					   _mm256_set1_epi32(65536)); /* 0 .. 131070 */
	const __m256i m7 = _mm256_set1_epi32(127);
	const __m256i c = _mm256_and_si256(u, m7);
	const __m256i b = _mm256_and_si256(_mm256_srli_epi32(u, 7), m7);
	const __m256i a = _mm256_sub_epi32(_mm256_srli_epi32(u, 14), _mm256_set1_epi32(4));
	const __m256i abc = _mm256_or_si256(
		_mm256_or_si256(c, _mm256_slli_epi32(b, 8)),
		_mm256_slli_epi32(_mm256_and_si256(a, _mm256_set1_epi32(255)), 16));
	/* per 128-bit half (j = 4h .. 4h + 3): byte 2 of each lane, then byte
	 * 1, then byte 0 */
	const __m256i idx = _mm256_setr_epi8(2, 6, 10, 14, 1, 5, 9, 13, 0, 4, 8, 12, -1, -1, -1, -1,
					     2, 6, 10, 14, 1, 5, 9, 13, 0, 4, 8, 12, -1, -1, -1, -1);
	_mm256_storeu_si256((__m256i *)w, _mm256_shuffle_epi8(abc, idx));
}

/* Decode: G groups gb bytes apart times one activation row, in lockstep
 * (quant_pack.h's gemv): for each super-block, each sub-block, each chunk,
 * the same step for the G groups one after the other, so G independent
 * accumulator chains are in flight and each thread reads G streams. Per
 * group and super-block the integers are q4kp_kern's (C = 1) computed
 * another way, exactly; the float steps are the same in the same order,
 * so every cell equals the gemm with nc = 1 bit for bit. Per sub-block
 * (lane r = row r of a group):
 *   dot = sum_k VPDPBUSD(chunk_k & 0x0f, y[4k ..]) (the low nibbles),
 *   dot <<= 4,
 *   dot += sum_k VPDPBUSD(chunk_k & 0xf0, y[16 + 4k ..]) (16 x the high
 *   nibbles): 16 x the sub-block's dot, one mask per VPDPBUSD and one
 *   shift per sub-block instead of a shift and a mask per high nibble
 *   operand (the chunk is loaded twice; the second load hits L1);
 *   isum16 += VPMULLD(dot, sc_j) = 16 x isum, shifted back (exactly) once
 *   per super-block.
 * The min term: the two 64-byte lines of mins (4 per row lane) against
 * mins_split()'s bytes, three passes of two VPDPBUSD with a shift by 7
 * between them: msum = sum_j m_j (16384 a_j + 128 b_j + c_j) exactly.
 * Prefetch: each line Q4KP_NEAR_AHEAD (1 KiB) ahead, issued with its load
 * (the header's 5 lines per group at the super-block's start): +5-13% from
 * DRAM (2 threads, 606 MB of groups), not slower in L2. The 8 KiB burst of
 * the gemm measured slower here (in L2 0.55x, from DRAM no faster); the G
 * streams keep the hardware prefetchers going, the near prefetch only keeps
 * more lines in flight (docs/benchmarks.md, "q4_kx16 gemv: near prefetch"). */
AINL void q4kp_gemv(int64_t nb, float *out, const uint8_t *g, size_t gb, const uint8_t *y,
		    const int G)
{
	const __m512i nib = _mm512_set1_epi8(0x0f);
	__m512 accf[TK_PACK_GEMV_GROUPS];
	for (int i = 0; i < G; i++)
		accf[i] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nb; b++, g += TK_PQ4K_BYTES, y += Y_BLOCK) {
		__m512i isum[TK_PACK_GEMV_GROUPS]; /* 16 x isum */
		for (int i = 0; i < G; i++) {
			isum[i] = _mm512_setzero_si512();
			tk_prefetch_ahead(g + (size_t)i * gb, TK_PQ4K_Q, Q4KP_NEAR_AHEAD);
		}
		for (int j = 0; j < 8; j++) {
			const uint8_t *q = g + TK_PQ4K_Q + 256 * j;
			const uint8_t *yj = y + Y_QS + 32 * j;
			__m512i dot[TK_PACK_GEMV_GROUPS];
#pragma GCC unroll 4
			for (int k = 0; k < 4; k++) {
				const __m512i yk = _mm512_set1_epi32(ld_i32(yj + 4 * k));
#pragma GCC unroll 8
				for (int i = 0; i < G; i++) {
					const __m512i lo = _mm512_and_si512(
						_mm512_loadu_si512(q + (size_t)i * gb + 64 * k), nib);
					tk_prefetch_ahead(q + (size_t)i * gb + 64 * k, 64, Q4KP_NEAR_AHEAD);
					dot[i] = _mm512_dpbusd_epi32(k ? dot[i] : _mm512_setzero_si512(),
								     lo, yk);
				}
			}
#pragma GCC unroll 8
			for (int i = 0; i < G; i++)
				dot[i] = _mm512_slli_epi32(dot[i], 4);
#pragma GCC unroll 4
			for (int k = 0; k < 4; k++) {
				const __m512i yk = _mm512_set1_epi32(ld_i32(yj + 16 + 4 * k));
#pragma GCC unroll 8
				for (int i = 0; i < G; i++) {
					const __m512i hi = _mm512_andnot_si512(
						nib, _mm512_loadu_si512(q + (size_t)i * gb + 64 * k));
					dot[i] = _mm512_dpbusd_epi32(dot[i], hi, yk);
				}
			}
#pragma GCC unroll 8
			for (int i = 0; i < G; i++) {
				const __m512i p = _mm512_mullo_epi32(
					dot[i], ld_bytes_epi32(g + (size_t)i * gb + TK_PQ4K_SC + 16 * j));
				isum[i] = _mm512_add_epi32(isum[i], p);
			}
		}
		uint32_t w[8];
		mins_split(y, w);
		const __m512i aA = _mm512_set1_epi32((int)w[0]), bA = _mm512_set1_epi32((int)w[1]),
			      cA = _mm512_set1_epi32((int)w[2]), aB = _mm512_set1_epi32((int)w[4]),
			      bB = _mm512_set1_epi32((int)w[5]), cB = _mm512_set1_epi32((int)w[6]);
		const __m512 dy = _mm512_set1_ps(ld_f32(y));
#pragma GCC unroll 8
		for (int i = 0; i < G; i++) {
			const uint8_t *gi = g + (size_t)i * gb;
			const __m512i mA = _mm512_loadu_si512(gi + TK_PQ4K_M);
			const __m512i mB = _mm512_loadu_si512(gi + TK_PQ4K_M + 64);
			__m512i ms = _mm512_dpbusd_epi32(_mm512_setzero_si512(), mA, aA);
			ms = _mm512_dpbusd_epi32(ms, mB, aB);
			ms = _mm512_slli_epi32(ms, 7);
			ms = _mm512_dpbusd_epi32(ms, mA, bA);
			ms = _mm512_dpbusd_epi32(ms, mB, bB);
			ms = _mm512_slli_epi32(ms, 7);
			ms = _mm512_dpbusd_epi32(ms, mA, cA);
			ms = _mm512_dpbusd_epi32(ms, mB, cB);
			const __m512i is = _mm512_srai_epi32(isum[i], 4);
			const __m512 dx =
				_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(gi + TK_PQ4K_D)));
			const __m512 mx =
				_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(gi + TK_PQ4K_DMIN)));
			const __m512 a = _mm512_mul_ps(_mm512_mul_ps(dx, dy), _mm512_cvtepi32_ps(is));
			const __m512 s = _mm512_mul_ps(_mm512_mul_ps(mx, dy), _mm512_cvtepi32_ps(ms));
			accf[i] = _mm512_add_ps(accf[i], _mm512_sub_ps(a, s));
		}
	}
	for (int i = 0; i < G; i++)
		_mm512_storeu_ps(out + 16 * i, accf[i]);
}

#define Q4KP_GEMV_CASE(G)                                                         \
	case G:                                                                   \
		q4kp_gemv(nb, out, (const uint8_t *)groups, gb, (const uint8_t *)y, G); \
		break;

static void q4_kx16_gemv_avx512(int64_t n, float *out, const void *groups, size_t gb, int ng,
				const void *y)
{
	const int64_t nb = n / TK_QK_K;
	switch (ng) {
	Q4KP_GEMV_CASE(1)
	Q4KP_GEMV_CASE(2)
	Q4KP_GEMV_CASE(3)
	Q4KP_GEMV_CASE(4)
	Q4KP_GEMV_CASE(5)
	Q4KP_GEMV_CASE(6)
	Q4KP_GEMV_CASE(7)
	Q4KP_GEMV_CASE(8)
	default:
		break;
	}
}

#define Q4KP_CASE(C)                                                \
	case C:                                                     \
		q4kp_kern(nb, out, ldo, (const uint8_t *)group,     \
			  (const uint8_t *)y, by, C);               \
		break;

static void q4_kx16_gemm_avx512(int64_t n, float *out, size_t ldo, const void *group,
				const void *y, size_t by, int nc)
{
	const int64_t nb = n / TK_QK_K;
	switch (nc) {
	Q4KP_CASE(1)
	Q4KP_CASE(2)
	Q4KP_CASE(3)
	Q4KP_CASE(4)
	Q4KP_CASE(5)
	Q4KP_CASE(6)
	Q4KP_CASE(7)
	Q4KP_CASE(8)
	default:
		break;
	}
}

#define Q4KP_G_CASE(C, G)                                                           \
	case G:                                                                     \
		q4kp_kern_g(nb, out, ldo, (const uint8_t *)groups, gb, (const uint8_t *)y, by, \
			    C, G);                                                  \
		break;
#define Q4KP_G_CASES(C)                                                             \
	switch (ng) {                                                               \
		Q4KP_G_CASE(C, 1)                                                   \
		Q4KP_G_CASE(C, 2)                                                   \
		Q4KP_G_CASE(C, 3)                                                   \
		Q4KP_G_CASE(C, 4)                                                   \
		Q4KP_G_CASE(C, 5)                                                   \
		Q4KP_G_CASE(C, 6)                                                   \
		Q4KP_G_CASE(C, 7)                                                   \
		Q4KP_G_CASE(C, 8)                                                   \
	default:                                                                    \
		break;                                                              \
	}

/* nc = 2..4 interleave the groups (q4kp_kern_g); otherwise the gemm, one
 * group after another, is faster (see q4kp_kern_g; at nc = 6 and 8 the
 * interleaved walk's stack traffic made 6 and 8 decoded sequences
 * 0.67-0.86x, docs/benchmarks.md). */
static void q4_kx16_gemmg_avx512(int64_t n, float *out, size_t ldo, const void *groups, size_t gb,
				 int ng, const void *y, size_t by, int nc)
{
	const int64_t nb = n / TK_QK_K;
	if (nc == 2) {
		Q4KP_G_CASES(2)
	} else if (nc == 3) {
		Q4KP_G_CASES(3)
	} else if (nc == 4) {
		Q4KP_G_CASES(4)
	} else {
		for (int i = 0; i < ng; i++)
			q4_kx16_gemm_avx512(n, out + 16 * (size_t)i, ldo,
					    (const uint8_t *)groups + (size_t)i * gb, y, by, nc);
	}
}

const struct tk_pack_traits tk_pack_q4_k_avx512 = {
	.name = "q4_kx16",
	.group_size = tk_pack_q4_k_group_size,
	.pack = tk_pack_q4_k_pack,
	.gemm = q4_kx16_gemm_avx512,
	.gemv = q4_kx16_gemv_avx512,
	.gemmg = q4_kx16_gemmg_avx512,
};

#else
/* Not x86-64: nothing to build (ISO C wants one declaration). */
typedef int tk_pack_q4_k_avx512_absent;
#endif /* __x86_64__ */
