/*
 * pack_q6_k_kern.h — the q6_kx16 AVX-512 gemm, gemv and gemmg bodies,
 * private to pack_q6_k_avx512.c, which includes this file once per code
 * decoder: before each inclusion it defines
 *   Q6_SFX     the suffix of the functions made here (q6_k_gemm##Q6_SFX,
 *              q6_k_gemv##Q6_SFX, q6_k_gemmg##Q6_SFX),
 *   Q6_CODES   the decoder, q6_codes() or q6_codes_gfni(): the four code
 *              vectors of one sub-block (both give the same bytes),
 *   Q6_TARGET  the function attribute that decoder needs (empty or
 *              __attribute__((target("gfni")))),
 * and undefines them after. An always_inline function cannot take the GFNI
 * decoder into a body compiled without GFNI, so the bodies are stamped out
 * per decoder instead of taking it as a parameter. The arithmetic and its
 * bounds are described at the top of pack_q6_k_avx512.c.
 */
#define Q6_CAT2(a, b) a##b
#define Q6_CAT(a, b) Q6_CAT2(a, b)

/* The column start table of super-block i: off[c][s] = -32 * bsums[s] of
 * activation row c (its Q8_K block at yb[c]), the accumulators' start. */
AINL void Q6_CAT(q6_k_off, Q6_SFX)(const uint8_t *const *yb, int32_t (*off)[16], const int C)
{
	for (int c = 0; c < C; c++) {
		const __m512i bs = _mm512_cvtepi16_epi32(ld256(yb[c] + 260));
		_mm512_store_si512((void *)off[c],
				   _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(bs, 5)));
	}
}

/* Sub-block s of the super-block at sb times C activation rows (their
 * Q8_K blocks at yb[c], start table off): tot[c] += sc_s * (dot - 32 bsum)
 * in int32, exactly (the bounds at the top of pack_q6_k_avx512.c), each
 * code line prefetched `ahead` bytes ahead as it is read. The gemm's body
 * and the interleaved walk's (q6_k_gemmg_kern): the same integers, so the
 * same cells. */
Q6_TARGET AINL void Q6_CAT(q6_k_sub, Q6_SFX)(const uint8_t *sb, int s, const uint8_t *const *yb,
					     const int32_t (*off)[16], __m512i *tot, const int C,
					     const int ahead)
{
	const uint8_t *q = sb + 256 + 192 * s;
	tk_prefetch_ahead(q, 192, ahead);
	__m512i cd[4];
	Q6_CODES(q, cd);
	const __m512i c0 = cd[0], c1 = cd[1], c2 = cd[2], c3 = cd[3];
	const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(sb + 16 * s)));
	for (int c = 0; c < C; c++) {
		const uint8_t *yq = yb[c] + 4 + 16 * s;
		/* two chains of two VPDPBUSD and an add: 11 cycles to the
		 * VPMULLD instead of 20, for one more uop (measured 2% faster
		 * in L2 at nc = 2..8); the activation words as embedded
		 * broadcasts (quant_x86.h): 1.14-1.27x in L2 at nc = 4..8 */
		__m512i acc = _mm512_set1_epi32(off[c][s]);
		__m512i acb = _mm512_setzero_si512();
		acc = dpbusd_bcast(acc, c0, yq);
		acb = dpbusd_bcast(acb, c2, yq + 8);
		acc = dpbusd_bcast(acc, c1, yq + 4);
		acb = dpbusd_bcast(acb, c3, yq + 12);
		acc = _mm512_add_epi32(acc, acb);
		tot[c] = _mm512_add_epi32(tot[c], _mm512_mullo_epi32(acc, sc));
	}
}

/* The end of super-block i for C columns: the reference's float step in its
 * order, fsum[c] += (d * dy) * (float)tot[c] (no FMA: -ffp-contract=off),
 * with d the 16 rows' halves at dxp. Bit-identical to the vec_dot. */
Q6_TARGET AINL void Q6_CAT(q6_k_close, Q6_SFX)(const uint8_t *dxp, const uint8_t *const *yb,
					       const __m512i *tot, __m512 *fsum, const int C)
{
	const __m512 dx = _mm512_cvtph_ps(ld256(dxp));
	for (int c = 0; c < C; c++) {
		const __m512 dxy = _mm512_mul_ps(dx, _mm512_set1_ps(ld_f32(yb[c])));
		fsum[c] = _mm512_add_ps(fsum[c], _mm512_mul_ps(dxy, _mm512_cvtepi32_ps(tot[c])));
	}
}

Q6_TARGET AINL void Q6_CAT(q6_k_gemm_kern, Q6_SFX)(int64_t n, float *out, size_t ldo,
						   const uint8_t *g, const uint8_t *y, size_t by,
						   const int C)
{
	const int64_t nb = n / TK_QK_K;
	const uint8_t *sbs = g + (size_t)nb * 32;
	__m512 fsum[TK_PACK_COLS];
	for (int c = 0; c < C; c++)
		fsum[c] = _mm512_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		const uint8_t *sb = sbs + (size_t)i * TK_PACK_Q6_K_SB_BYTES;
		const uint8_t *yb[TK_PACK_COLS];
		int32_t off[TK_PACK_COLS][16] __attribute__((aligned(64)));
		__m512i tot[TK_PACK_COLS];
		for (int c = 0; c < C; c++) {
			yb[c] = y + (size_t)c * by + (size_t)i * Q8K_BYTES;
			tot[c] = _mm512_setzero_si512();
		}
		Q6_CAT(q6_k_off, Q6_SFX)(yb, off, C);
		tk_prefetch_weights(sb, 256);
		for (int s = 0; s < 16; s++)
			Q6_CAT(q6_k_sub, Q6_SFX)(sb, s, yb, off, tot, C, TK_PREFETCH_AHEAD);
		Q6_CAT(q6_k_close, Q6_SFX)(g + (size_t)i * 32, yb, tot, fsum, C);
	}
	for (int c = 0; c < C; c++)
		_mm512_storeu_ps(out + (size_t)c * ldo, fsum[c]);
}

/* Batched decode with few columns (quant_pack.h's gemmg): G groups gb
 * bytes apart, each super-block walked sub-block by sub-block across the
 * groups (Q6_G_RUN sub-blocks of group 0, of group 1, ... of group G - 1,
 * then the next run), so a thread keeps G streams of short runs in flight,
 * as the gemv does, where the gemm reads one group at a time: one stream.
 * Per group the steps of q6_k_gemm_kern (the same integers; the float step
 * per super-block in the same order), so every cell equals the gemm's bit
 * for bit. Each line is prefetched Q6_GEMV_AHEAD ahead with its loads, the
 * super-block's 4 scale lines at its start. */
Q6_TARGET AINL void Q6_CAT(q6_k_gemmg_kern, Q6_SFX)(int64_t n, float *out, size_t ldo,
						    const uint8_t *g, size_t gb, const uint8_t *y,
						    size_t by, const int C, const int G)
{
	const int64_t nb = n / TK_QK_K;
	const size_t sbs = (size_t)nb * 32;
	__m512 fsum[TK_PACK_GEMV_GROUPS][TK_PACK_COLS];
	for (int k = 0; k < G; k++)
		for (int c = 0; c < C; c++)
			fsum[k][c] = _mm512_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		const size_t sbo = sbs + (size_t)i * TK_PACK_Q6_K_SB_BYTES;
		const uint8_t *yb[TK_PACK_COLS];
		int32_t off[TK_PACK_COLS][16] __attribute__((aligned(64)));
		__m512i tot[TK_PACK_GEMV_GROUPS][TK_PACK_COLS];
		for (int c = 0; c < C; c++)
			yb[c] = y + (size_t)c * by + (size_t)i * Q8K_BYTES;
		Q6_CAT(q6_k_off, Q6_SFX)(yb, off, C);
		for (int k = 0; k < G; k++) {
			const uint8_t *sb = g + (size_t)k * gb + sbo;
			tk_prefetch_ahead(sb, 256, Q6_GEMV_AHEAD);
			for (int c = 0; c < C; c++)
				tot[k][c] = _mm512_setzero_si512();
		}
		for (int s = 0; s < 16; s += Q6_G_RUN)
			for (int k = 0; k < G; k++)
				for (int r = 0; r < Q6_G_RUN; r++)
					Q6_CAT(q6_k_sub, Q6_SFX)(g + (size_t)k * gb + sbo, s + r, yb,
								 off, tot[k], C, Q6_GEMV_AHEAD);
		for (int k = 0; k < G; k++)
			Q6_CAT(q6_k_close, Q6_SFX)(g + (size_t)k * gb + (size_t)i * 32, yb, tot[k],
						   fsum[k], C);
	}
	for (int k = 0; k < G; k++)
		for (int c = 0; c < C; c++)
			_mm512_storeu_ps(out + (size_t)c * ldo + 16 * (size_t)k, fsum[k][c]);
}

/* Decode: G groups gb bytes apart times one activation row, in lockstep
 * (quant_pack.h's gemv). Per cell the same integers and the same float
 * steps in the same order as the gemm with C = 1, so the results are
 * bit-identical to it. What the G groups share is done once per
 * sub-block: the activation's four broadcasts and the -32 * bsums start.
 * Prefetch: each line Q6_GEMV_AHEAD (1 KiB) ahead, with its loads: +7-12%
 * from DRAM (2 threads, 645 MB of groups), 5-10% slower in L2, where decode
 * does not run (docs/benchmarks.md, "q6_kx16 gemv: near prefetch"). An
 * 8 KiB-ahead prefetch measured no faster from DRAM, 25% slower in cache. */
Q6_TARGET AINL void Q6_CAT(q6_k_gemv_kern, Q6_SFX)(int64_t n, float *out, const uint8_t *g,
						   size_t gb, const uint8_t *y, const int G)
{
	const int64_t nb = n / TK_QK_K;
	const size_t sbs = (size_t)nb * 32;
	__m512 fsum[TK_PACK_GEMV_GROUPS];
	for (int k = 0; k < G; k++)
		fsum[k] = _mm512_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		const uint8_t *yb = y + (size_t)i * Q8K_BYTES;
		const size_t sb = sbs + (size_t)i * TK_PACK_Q6_K_SB_BYTES;
		int32_t off[16] __attribute__((aligned(64)));
		const __m512i bs = _mm512_cvtepi16_epi32(ld256(yb + 260));
		_mm512_store_si512((void *)off,
				   _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(bs, 5)));
		__m512i tot[TK_PACK_GEMV_GROUPS];
		for (int k = 0; k < G; k++)
			tot[k] = _mm512_setzero_si512();
		for (int s = 0; s < 16; s++) {
			const uint8_t *yq = yb + 4 + 16 * s;
			const __m512i init = _mm512_set1_epi32(off[s]);
			const __m512i y0 = _mm512_set1_epi32(ld_i32(yq)),
				      y1 = _mm512_set1_epi32(ld_i32(yq + 4)),
				      y2 = _mm512_set1_epi32(ld_i32(yq + 8)),
				      y3 = _mm512_set1_epi32(ld_i32(yq + 12));
			for (int k = 0; k < G; k++) {
				const uint8_t *gs = g + (size_t)k * gb + sb;
				const uint8_t *q = gs + 256 + 192 * s;
				/* each line Q6_GEMV_AHEAD ahead, with its loads */
				if (s % 4 == 0)
					__builtin_prefetch(gs + 16 * s + Q6_GEMV_AHEAD, 0, 3);
				tk_prefetch_ahead(q, 192, Q6_GEMV_AHEAD);
				__m512i cd[4];
				Q6_CODES(q, cd);
				const __m512i sc = _mm512_cvtepi8_epi32(
					_mm_loadu_si128((const __m128i *)(gs + 16 * s)));
				__m512i acc = _mm512_dpbusd_epi32(init, cd[0], y0);
				acc = _mm512_dpbusd_epi32(acc, cd[1], y1);
				acc = _mm512_dpbusd_epi32(acc, cd[2], y2);
				acc = _mm512_dpbusd_epi32(acc, cd[3], y3);
				tot[k] = _mm512_add_epi32(tot[k], _mm512_mullo_epi32(acc, sc));
			}
		}
		/* the gemm's float step with C = 1, in its order */
		const __m512 dy = _mm512_set1_ps(ld_f32(yb));
		for (int k = 0; k < G; k++) {
			const __m512 dx = _mm512_cvtph_ps(ld256(g + (size_t)k * gb + (size_t)i * 32));
			fsum[k] = _mm512_add_ps(fsum[k],
						_mm512_mul_ps(_mm512_mul_ps(dx, dy), _mm512_cvtepi32_ps(tot[k])));
		}
	}
	for (int k = 0; k < G; k++)
		_mm512_storeu_ps(out + 16 * k, fsum[k]);
}

/* The dispatchers on the column count and the group count: every count is
 * its own copy of the kernel, its loops unrolled and its accumulators in
 * registers. quant_pack.h's gemm and gemv signatures, so a traits table can
 * point at them directly. */
Q6_TARGET static void Q6_CAT(q6_k_gemm, Q6_SFX)(int64_t n, float *out, size_t ldo,
						const void *group, const void *y, size_t by,
						int nc)
{
	switch (nc) {
#define Q6_GEMM_CASE(C)                                                              \
	case C:                                                                      \
		Q6_CAT(q6_k_gemm_kern, Q6_SFX)(n, out, ldo, group, y, by, C);        \
		break;
		Q6_GEMM_CASE(1)
		Q6_GEMM_CASE(2)
		Q6_GEMM_CASE(3)
		Q6_GEMM_CASE(4)
		Q6_GEMM_CASE(5)
		Q6_GEMM_CASE(6)
		Q6_GEMM_CASE(7)
		Q6_GEMM_CASE(8)
#undef Q6_GEMM_CASE
	default:
		break;
	}
}

Q6_TARGET static void Q6_CAT(q6_k_gemv, Q6_SFX)(int64_t n, float *out, const void *groups,
						size_t gb, int ng, const void *y)
{
	switch (ng) {
#define Q6_GEMV_CASE(G)                                                        \
	case G:                                                                \
		Q6_CAT(q6_k_gemv_kern, Q6_SFX)(n, out, groups, gb, y, G);      \
		break;
		Q6_GEMV_CASE(1)
		Q6_GEMV_CASE(2)
		Q6_GEMV_CASE(3)
		Q6_GEMV_CASE(4)
		Q6_GEMV_CASE(5)
		Q6_GEMV_CASE(6)
		Q6_GEMV_CASE(7)
		Q6_GEMV_CASE(8)
#undef Q6_GEMV_CASE
	default:
		break;
	}
}

/* quant_pack.h's gemmg: the interleaved walk (q6_k_gemmg_kern) for the nc
 * where Q6_G_WALK(nc) holds (pack_q6_k_avx512.c says which and why), the
 * gemm one group after another for the others. */
Q6_TARGET static void Q6_CAT(q6_k_gemmg, Q6_SFX)(int64_t n, float *out, size_t ldo,
						 const void *groups, size_t gb, int ng,
						 const void *y, size_t by, int nc)
{
	switch (nc) {
#define Q6_G_KERN(C, G)                                                              \
	case G:                                                                      \
		Q6_CAT(q6_k_gemmg_kern, Q6_SFX)(n, out, ldo, groups, gb, y, by, C, G); \
		return;
#define Q6_G_COLS(C)                                                                 \
	case C:                                                                      \
		if (!Q6_G_WALK(C))                                                   \
			break;                                                       \
		switch (ng) {                                                        \
			Q6_G_KERN(C, 1)                                              \
			Q6_G_KERN(C, 2)                                              \
			Q6_G_KERN(C, 3)                                              \
			Q6_G_KERN(C, 4)                                              \
			Q6_G_KERN(C, 5)                                              \
			Q6_G_KERN(C, 6)                                              \
			Q6_G_KERN(C, 7)                                              \
			Q6_G_KERN(C, 8)                                              \
		default:                                                             \
			break;                                                       \
		}                                                                    \
		break;
		Q6_G_COLS(1)
		Q6_G_COLS(2)
		Q6_G_COLS(3)
		Q6_G_COLS(4)
		Q6_G_COLS(5)
		Q6_G_COLS(6)
		Q6_G_COLS(7)
		Q6_G_COLS(8)
#undef Q6_G_COLS
#undef Q6_G_KERN
	default:
		break;
	}
	for (int k = 0; k < ng; k++)
		Q6_CAT(q6_k_gemm, Q6_SFX)(n, out + 16 * (size_t)k, ldo,
					  (const uint8_t *)groups + (size_t)k * gb, y, by, nc);
}

#undef Q6_CAT
#undef Q6_CAT2
