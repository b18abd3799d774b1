/*
 * attn_kernel.h — private to the attention SIMD variants: the arguments of
 * one call (struct engine_attn_call) and, when AK_FN is defined, the kernel
 * itself, written once over vec.h's vector vocabulary, which attn_avx2.c
 * and attn_avx512.c name for their ISA before including this file (so both
 * variants are the same algorithm; only the lane count and the register
 * blocking differ).
 *
 * The includer includes its ISA's vocabulary (vec_avx2.h, vec_avx512.h:
 * vf, VF_LANES, v_*, and vec.h's v_exp_parts) and defines:
 *   AK_VL              lanes (VF_LANES); AK_ROWS rows one pass holds (a
 *                      multiple of AK_VL, <= ENGINE_ATTN_ROWS); AK_JB
 *                      positions per score tile and AK_DB head dimensions
 *                      per p.v tile of a pass of several row vectors; a
 *                      pass of one (decode) takes wider tiles (AK_S_ACC
 *                      positions, AK_PV_ACC dimensions)
 *   AK_PVR, AK_PVD     the decode p.v tile (F16 cache, one row vector):
 *                      up to AK_PVR rows x AK_PVD vectors of dimensions
 *                      (AK_PVR 2, 4, 6 or 8)
 *   AK_FN(name)        the variant's name for a function
 *   ak_dsum_add(double *d, vf x): d[l] += (double)x[l] for each lane
 *   ak_dsum_mul(double *d, vf x): d[l] *= (double)x[l]
 *
 * Layout of one pass (R rows r = t * gc + i: token t of the pass, query head
 * i of the chunk; RP = R rounded up to AK_VL; padding rows see nothing):
 *   qt  [head_dim][RP]   q transposed (binary16-rounded with an F16 cache)
 *   acc [head_dim][RP]   p.v sums, transposed; [R][head_dim] (not
 *                      transposed) in a decode pass (pv_dec)
 *   s   [BLOCK][RP]      scores of a block, then its probabilities
 *   kb, vb [BLOCK][head_dim]   the block's K, V rows as floats (F16 cache;
 *                      an F32 cache is read in place)
 *   rpos, mx, msafe, inv [RP]; sumd [RP] doubles
 *   keep [ENGINE_ATTN_KEEP_FLOATS]   the pass's scores [n_kv][RP] between
 *                      its two walks (F16 cache, when they fit)
 */
#ifndef TK_ENGINE_ATTN_KERNEL_H
#define TK_ENGINE_ATTN_KERNEL_H

#include "engine/attn_simd.h"

struct engine_attn_call {
	float *out;        /* [n_tok][n_head][head_dim] (hk's heads written) */
	const float *q;    /* [n_tok][n_head][head_dim] */
	const void *k, *v; /* [..][n_head_kv][head_dim], kv_type */
	enum engine_kv_type kv_type;
	int32_t pos0, n_tok, n_head, n_head_kv, head_dim, hk;
	float scale;
	float *scratch; /* 64-byte aligned, engine_attn_scratch() floats less the slack */
};

/* Floats of a pass's scratch for rows_max rows (padded) and head_dim. */
static inline size_t engine_attn_pass_floats(size_t rows_max, size_t head_dim)
{
	const size_t B = ENGINE_ATTN_BLOCK;
	return 2 * head_dim * rows_max + B * rows_max + 2 * B * head_dim + 4 * rows_max +
	       2 * rows_max /* sumd */ + ENGINE_ATTN_KEEP_FLOATS +
	       7 * 16 /* each part aligned to 64 bytes */;
}

#endif

#ifdef AK_FN

#include "engine/fp16.h"

#include <math.h>
#include <string.h>

#define AK_ALIGN(p) ((float *)(((uintptr_t)(p) + 63) & ~(uintptr_t)63))

/* Accumulators of a score tile and of a p.v tile for a pass of one row
 * vector (decode: one token's query heads of a KV head): AK_S_ACC positions
 * (with a compile-time row stride, see scores_tile) and AK_PV_ACC
 * dimensions per tile, as many accumulators as a full pass's tile holds
 * (at most 16), where the prefill tiles would leave 6 and 4 independent
 * FMA chains (latency ~4 cycles, 2 a cycle: 8 keep both ports busy). Tiles
 * only regroup which sums run side by side; each sum still adds its terms
 * in the same order, so results do not change. */
#define AK_NV_MAX (AK_ROWS / AK_VL)
#define AK_S_ACC (AK_JB * AK_NV_MAX < 16 ? AK_JB * AK_NV_MAX : 16) /* 16: no tail in a block */
#define AK_PV_ACC (AK_DB * AK_NV_MAX)
_Static_assert(AK_S_ACC <= 16 && AK_PV_ACC <= 16, "the tail tiles cover what the full ones leave");

/* The tiles' loops over positions, dimensions and row vectors unrolled in
 * full, so that the accumulators live in registers (gcc leaves 16 of them
 * in a stack array otherwise). Not under AddressSanitizer: the unrolled
 * tiles took clang's fuzzer build of a variant from 2.5 s to 20 s, and a
 * sanitizer build checks behaviour, not speed. */
#if defined(__SANITIZE_ADDRESS__)
#define AK_NO_UNROLL 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AK_NO_UNROLL 1
#endif
#endif
#ifdef AK_NO_UNROLL
#define AK_UNROLL
#else
#define AK_UNROLL _Pragma("GCC unroll 32")
#endif

/* exp(x) for x <= 88: p 2^n from vec.h's v_exp_parts (error under 0.1 ulp
 * before the product), 2^n as one exponent field; x below ln FLT_MIN gives
 * 0. Error bound measured in test_attn_simd.c. */
static inline vf AK_FN(exp)(vf x)
{
	vf n;
	const vf p = v_exp_parts(x, &n);
	const vf lo = v_set1(ENGINE_ATTN_EXP_MIN);
	/* n is clamped so that 2^n stays a normal float where the result is
	 * discarded anyway (x < lo, -inf) */
	const vf y = v_mul(p, v_pow2i(v_max(n, v_set1(-126.0f))));
	return v_sel_lt(x, lo, v_zero(), y);
}

void AK_FN(engine_attn_exp)(float *y, const float *x, size_t n)
{
	size_t i = 0;
	for (; i + AK_VL <= n; i += AK_VL)
		v_store(y + i, AK_FN(exp)(v_load(x + i)));
	if (i < n) {
		float tx[AK_VL], ty[AK_VL];
		for (size_t l = 0; l < AK_VL; l++)
			tx[l] = i + l < n ? x[i + l] : 0.0f;
		v_store(ty, AK_FN(exp)(v_load(tx)));
		for (size_t l = 0; i + l < n; l++)
			y[i + l] = ty[l];
	}
}

/* s[j][r] = (sum over d in order of qt[d][r] * kb[j][d]) * scale for
 * j < nb, NV vectors of rows, JB positions per register tile. K rows are KS
 * floats apart when KS > 0 (a compile-time stride: every position's
 * broadcast is one base register plus a constant, so JB can be large
 * without running out of address registers), kstride apart when KS is 0. */
static inline __attribute__((always_inline)) void
AK_FN(scores_tile)(float *s, const float *qt, const float *kb, size_t kstride, int32_t hd,
		   size_t rp, vf scale, const int NV, const int JB, const size_t KS)
{
	const size_t ks = KS ? KS : kstride;
	vf acc[AK_S_ACC][AK_NV_MAX];
AK_UNROLL
	for (int jj = 0; jj < JB; jj++)
AK_UNROLL
		for (int v = 0; v < NV; v++)
			acc[jj][v] = v_zero();
	for (int32_t d = 0; d < hd; d++) {
		vf qv[AK_NV_MAX];
AK_UNROLL
		for (int v = 0; v < NV; v++)
			qv[v] = v_load(qt + (size_t)d * rp + (size_t)v * AK_VL);
AK_UNROLL
		for (int jj = 0; jj < JB; jj++) {
			const vf kd = v_set1(kb[(size_t)jj * ks + (size_t)d]);
AK_UNROLL
			for (int v = 0; v < NV; v++)
				acc[jj][v] = v_fma(qv[v], kd, acc[jj][v]);
		}
	}
AK_UNROLL
	for (int jj = 0; jj < JB; jj++)
AK_UNROLL
		for (int v = 0; v < NV; v++)
			v_store(s + (size_t)jj * rp + (size_t)v * AK_VL, v_mul(acc[jj][v], scale));
}

/* Tiles of JB = AK_S_ACC / NV positions with a compile-time stride KS,
 * AK_JB with a run-time one (each position would need its own address
 * register). */
static inline __attribute__((always_inline)) void
AK_FN(scores_nv)(float *s, const float *qt, const float *kb, size_t kstride, int32_t nb,
		 int32_t hd, size_t rp, vf scale, const int NV, const size_t KS)
{
	const int JB = KS ? AK_S_ACC / NV : AK_JB; /* KS > 0 only with NV == 1 */
	const size_t ks = KS ? KS : kstride;
	int32_t j = 0;
	for (; j + JB <= nb; j += JB)
		AK_FN(scores_tile)(s + (size_t)j * rp, qt, kb + (size_t)j * ks, kstride, hd, rp,
				   scale, NV, JB, KS);
	/* the rest (< JB <= 16 positions) in tiles of 8, 4, 2, 1, each at most
	 * once (sizes spelled out: every tile's loops have constant bounds) */
#define AK_S_TAIL(T)                                                                        \
	if ((T) < JB && j + (T) <= nb) {                                                    \
		AK_FN(scores_tile)(s + (size_t)j * rp, qt, kb + (size_t)j * ks, kstride, hd, rp, \
				   scale, NV, (T), KS);                                     \
		j += (T);                                                                   \
	}
	AK_S_TAIL(8)
	AK_S_TAIL(4)
	AK_S_TAIL(2)
	AK_S_TAIL(1)
#undef AK_S_TAIL
}

/* The block's scores. One row vector (decode: a token's query heads of
 * one KV head) takes the wide tiles when the rows are packed at the common
 * head sizes 64 and 128 (an F16 cache's converted block); wider passes
 * (prefill) have enough chains with AK_JB positions. */
static void AK_FN(scores)(float *s, const float *qt, const float *kb, size_t kstride,
			  int32_t nb, int32_t hd, size_t rp, float scale)
{
	const vf sc = v_set1(scale);
	switch (rp / AK_VL) {
	case 1:
		if (kstride == 64 && hd == 64)
			AK_FN(scores_nv)(s, qt, kb, kstride, nb, hd, rp, sc, 1, 64);
		else if (kstride == 128 && hd == 128)
			AK_FN(scores_nv)(s, qt, kb, kstride, nb, hd, rp, sc, 1, 128);
		else
			AK_FN(scores_nv)(s, qt, kb, kstride, nb, hd, rp, sc, 1, 0);
		break;
	case 2:
		AK_FN(scores_nv)(s, qt, kb, kstride, nb, hd, rp, sc, 2, 0);
		break;
	case 3:
		AK_FN(scores_nv)(s, qt, kb, kstride, nb, hd, rp, sc, 3, 0);
		break;
	default:
		AK_FN(scores_nv)(s, qt, kb, kstride, nb, hd, rp, sc, 4, 0);
		break;
	}
}

/* acc[d][r] += sum over j < nb in order of s[j][r] * vb[j][d], for DB
 * dimensions d0.. at a time. */
static inline __attribute__((always_inline)) void
AK_FN(pv_tile)(float *acc, const float *s, const float *vb, size_t vstride, int32_t nb,
	       size_t rp, const int NV, const int DB)
{
	vf a[AK_PV_ACC][AK_NV_MAX];
AK_UNROLL
	for (int dd = 0; dd < DB; dd++)
AK_UNROLL
		for (int v = 0; v < NV; v++)
			a[dd][v] = v_load(acc + (size_t)dd * rp + (size_t)v * AK_VL);
	for (int32_t j = 0; j < nb; j++) {
		vf p[AK_NV_MAX];
AK_UNROLL
		for (int v = 0; v < NV; v++)
			p[v] = v_load(s + (size_t)j * rp + (size_t)v * AK_VL);
AK_UNROLL
		for (int dd = 0; dd < DB; dd++) {
			const vf vd = v_set1(vb[(size_t)j * vstride + (size_t)dd]);
AK_UNROLL
			for (int v = 0; v < NV; v++)
				a[dd][v] = v_fma(p[v], vd, a[dd][v]);
		}
	}
AK_UNROLL
	for (int dd = 0; dd < DB; dd++)
AK_UNROLL
		for (int v = 0; v < NV; v++)
			v_store(acc + (size_t)dd * rp + (size_t)v * AK_VL, a[dd][v]);
}

static inline __attribute__((always_inline)) void
AK_FN(pv_nv)(float *acc, const float *s, const float *vb, size_t vstride, int32_t nb,
	     int32_t hd, size_t rp, const int NV)
{
	const int DB = NV == 1 ? AK_PV_ACC : AK_DB;
	int32_t d = 0;
	for (; d + DB <= hd; d += DB)
		AK_FN(pv_tile)(acc + (size_t)d * rp, s, vb + d, vstride, nb, rp, NV, DB);
	/* the rest (< DB <= 16 dimensions) in tiles of 8, 4, 2, 1, each at
	 * most once */
#define AK_PV_TAIL(T)                                                                     \
	if ((T) < DB && d + (T) <= hd) {                                                  \
		AK_FN(pv_tile)(acc + (size_t)d * rp, s, vb + d, vstride, nb, rp, NV, (T)); \
		d += (T);                                                                 \
	}
	AK_PV_TAIL(8)
	AK_PV_TAIL(4)
	AK_PV_TAIL(2)
	AK_PV_TAIL(1)
#undef AK_PV_TAIL
}

static void AK_FN(pv)(float *acc, const float *s, const float *vb, size_t vstride, int32_t nb,
		      int32_t hd, size_t rp)
{
	switch (rp / AK_VL) {
	case 1:
		AK_FN(pv_nv)(acc, s, vb, vstride, nb, hd, rp, 1);
		break;
	case 2:
		AK_FN(pv_nv)(acc, s, vb, vstride, nb, hd, rp, 2);
		break;
	case 3:
		AK_FN(pv_nv)(acc, s, vb, vstride, nb, hd, rp, 3);
		break;
	default:
		AK_FN(pv_nv)(acc, s, vb, vstride, nb, hd, rp, 4);
		break;
	}
}

/* Decode p.v, F16 cache, one row vector (a token's query heads of one KV
 * head, R <= AK_VL rows): acc[r][d] += sum over j < nb in order of s[j][r]
 * * v[j][d], with the dimensions across the lanes and V read straight from
 * the cache (v: the block's first row of head hk, rows vstride halves
 * apart). pv() would put the rows across the lanes, which leaves most of
 * them idle when a KV head has few query heads (qwen2.5: 6 of 16, llama
 * 1B: 4), and convert the block first. Each sum adds the same products
 * in the same order as pv(), so the results are the same bits. */
static inline __attribute__((always_inline)) void
AK_FN(pv_dec_tile)(float *acc, const float *s, const uint16_t *v, size_t vstride, int32_t nb,
		   size_t rp, size_t hd, int32_t r0, int32_t d0, const int RT)
{
	vf a[AK_PVR][AK_PVD];
AK_UNROLL
	for (int rr = 0; rr < RT; rr++)
AK_UNROLL
		for (int dd = 0; dd < AK_PVD; dd++)
			a[rr][dd] = v_load(acc + (size_t)(r0 + rr) * hd + (size_t)d0 +
					   (size_t)dd * AK_VL);
	for (int32_t j = 0; j < nb; j++) {
		const uint16_t *vj = v + (size_t)j * vstride + (size_t)d0;
		const float *sj = s + (size_t)j * rp + (size_t)r0;
		vf vv[AK_PVD];
AK_UNROLL
		for (int dd = 0; dd < AK_PVD; dd++)
			vv[dd] = v_load_f16(vj + (size_t)dd * AK_VL);
AK_UNROLL
		for (int rr = 0; rr < RT; rr++) {
			const vf p = v_set1(sj[rr]);
AK_UNROLL
			for (int dd = 0; dd < AK_PVD; dd++)
				a[rr][dd] = v_fma(p, vv[dd], a[rr][dd]);
		}
	}
AK_UNROLL
	for (int rr = 0; rr < RT; rr++)
AK_UNROLL
		for (int dd = 0; dd < AK_PVD; dd++)
			v_store(acc + (size_t)(r0 + rr) * hd + (size_t)d0 + (size_t)dd * AK_VL,
				a[rr][dd]);
}

/* Whether a pass takes pv_dec: an F16 cache, one row vector, and whole
 * tiles of dimensions. */
static inline bool AK_FN(pv_dec_fits)(bool f16, size_t rp, int32_t hd)
{
	return f16 && rp == AK_VL && hd % (AK_PVD * AK_VL) == 0;
}

static void AK_FN(pv_dec)(float *acc, const float *s, const uint16_t *v, size_t vstride,
			  int32_t nb, size_t rp, int32_t hd, int32_t R)
{
	for (int32_t d0 = 0; d0 < hd; d0 += AK_PVD * AK_VL)
		for (int32_t r0 = 0; r0 < R; r0 += AK_PVR) {
			/* a tile of every row count up to AK_PVR, each with
			 * constant loop bounds */
#define AK_PV_DEC(T)                                                                    \
	case T:                                                                         \
		AK_FN(pv_dec_tile)(acc, s, v, vstride, nb, rp, (size_t)hd, r0, d0, (T)); \
		break;
			switch (R - r0 < AK_PVR ? R - r0 : AK_PVR) {
				AK_PV_DEC(1)
				AK_PV_DEC(2)
#if AK_PVR > 2
				AK_PV_DEC(3)
				AK_PV_DEC(4)
#endif
#if AK_PVR > 4
				AK_PV_DEC(5)
				AK_PV_DEC(6)
#endif
#if AK_PVR > 6
				AK_PV_DEC(7)
				AK_PV_DEC(8)
#endif
			default:
				break;
			}
#undef AK_PV_DEC
		}
}

/* Rows j0 .. j0+nb-1 of head hk of a binary16 cache, as floats: dst[nb][hd]. */
static void AK_FN(f16_block)(float *dst, const uint16_t *src, int32_t j0, int32_t nb,
			     size_t kv_row, int32_t hk, int32_t hd)
{
	for (int32_t j = 0; j < nb; j++) {
		const uint16_t *r = src + (size_t)(j0 + j) * kv_row + (size_t)hk * (size_t)hd;
		float *o = dst + (size_t)j * (size_t)hd;
		int32_t d = 0;
		for (; d + AK_VL <= hd; d += AK_VL)
			v_store(o + d, v_load_f16(r + d));
		for (; d < hd; d++)
			o[d] = tk_fp16_to_fp32(r[d]);
	}
}

/* The block's K rows as floats: where they are and their row stride. */
static const float *AK_FN(block_rows)(float *buf, const void *cache,
				      enum engine_kv_type kv_type, int32_t j0, int32_t nb,
				      size_t kv_row, int32_t hk, int32_t hd, size_t *stride)
{
	if (kv_type == ENGINE_KV_F32) {
		*stride = kv_row;
		return (const float *)cache + (size_t)j0 * kv_row + (size_t)hk * (size_t)hd;
	}
	*stride = (size_t)hd;
	AK_FN(f16_block)(buf, cache, j0, nb, kv_row, hk, hd);
	return buf;
}

/* Positions after a row's own get -inf (the causal mask inside the run). */
static void AK_FN(mask)(float *s, const float *rpos, int32_t j0, int32_t nb, size_t rp)
{
	const vf ninf = v_set1(-INFINITY);
	for (int32_t j = 0; j < nb; j++) {
		const vf jp = v_set1((float)(j0 + j));
		for (size_t r = 0; r < rp; r += AK_VL) {
			float *p = s + (size_t)j * rp + r;
			v_store(p, v_sel_gt(jp, v_load(rpos + r), ninf, v_load(p)));
		}
	}
}

/* One pass: tokens t0 .. t0+nt-1 of the call, query heads i0 .. i0+gc-1 of
 * KV head hk (nt * gc <= AK_ROWS). */
static void AK_FN(pass)(const struct engine_attn_call *a, int32_t t0, int32_t nt, int32_t i0,
			int32_t gc)
{
	const int32_t hd = a->head_dim, B = ENGINE_ATTN_BLOCK;
	const size_t hdz = (size_t)hd, q_dim = (size_t)a->n_head * hdz;
	const size_t kv_row = (size_t)a->n_head_kv * hdz;
	const bool f16 = a->kv_type == ENGINE_KV_F16;
	const int32_t R = nt * gc;
	const size_t rp = ((size_t)R + AK_VL - 1) / AK_VL * AK_VL;
	const int32_t h0 = a->hk * (a->n_head / a->n_head_kv) + i0;
	float *qt = a->scratch;
	float *acc = AK_ALIGN(qt + hdz * rp);
	float *sblk = AK_ALIGN(acc + hdz * rp); /* a block's scores when not kept */
	float *kb = AK_ALIGN(sblk + (size_t)B * rp);
	float *vb = AK_ALIGN(kb + (size_t)B * hdz);
	float *rpos = AK_ALIGN(vb + (size_t)B * hdz);
	float *mx = rpos + rp, *msafe = mx + rp, *inv = msafe + rp;
	double *sumd = (double *)AK_ALIGN(inv + rp);
	float *keep = AK_ALIGN(sumd + rp);

	/* q rows, transposed; padding rows are zero and see no position */
	memset(qt, 0, hdz * rp * sizeof(float));
	for (int32_t t = 0; t < nt; t++)
		for (int32_t i = 0; i < gc; i++) {
			const float *qr = a->q + (size_t)(t0 + t) * q_dim + (size_t)(h0 + i) * hdz;
			const size_t r = (size_t)t * (size_t)gc + (size_t)i;
			int32_t d = 0;
			for (; d + AK_VL <= hd; d += AK_VL) {
				float tmp[AK_VL];
				vf x = v_load(qr + d);
				v_store(tmp, f16 ? v_round_f16(x) : x);
				for (int l = 0; l < AK_VL; l++)
					qt[(size_t)(d + l) * rp + r] = tmp[l];
			}
			for (; d < hd; d++)
				qt[(size_t)d * rp + r] = f16 ? tk_round_fp16(qr[d]) : qr[d];
		}
	for (size_t r = 0; r < rp; r++) {
		rpos[r] = r < (size_t)R ? (float)(a->pos0 + t0 + (int32_t)(r / (size_t)gc)) : -1.0f;
		mx[r] = -INFINITY;
		sumd[r] = 0.0;
	}
	memset(acc, 0, hdz * rp * sizeof(float));

	const int32_t p_first = a->pos0 + t0;  /* the first row's position */
	const int32_t n_kv = p_first + nt;     /* positions the last row sees */
	/* F16 cache: the second walk needs the scores again; kept from the
	 * first when they fit, else computed again (the same values either
	 * way) */
	const bool kept = f16 && (size_t)n_kv * rp <= ENGINE_ATTN_KEEP_FLOATS;
	/* decode: p.v with the dimensions across the lanes, acc[R][hd] */
	const bool dec = AK_FN(pv_dec_fits)(f16, rp, hd);
	/* pass 1, online: running max and double sum of exp(score - max) per
	 * row; with an F32 cache the p.v sum rides along, rescaled with it */
	for (int32_t j0 = 0; j0 < n_kv; j0 += B) {
		const int32_t nb = n_kv - j0 < B ? n_kv - j0 : B;
		size_t ks, vs;
		const float *kr = AK_FN(block_rows)(kb, a->k, a->kv_type, j0, nb, kv_row, a->hk, hd,
						    &ks);
		float *const s = kept ? keep + (size_t)j0 * rp : sblk;
		AK_FN(scores)(s, qt, kr, ks, nb, hd, rp, a->scale);
		if (j0 + nb - 1 > p_first)
			AK_FN(mask)(s, rpos, j0, nb, rp);
		for (size_t r = 0; r < rp; r += AK_VL) {
			vf bmax = v_set1(-INFINITY);
			for (int32_t j = 0; j < nb; j++)
				bmax = v_max(bmax, v_load(s + (size_t)j * rp + r));
			const vf m_old = v_load(mx + r);
			const vf m_new = v_max(m_old, bmax);
			const vf ninf = v_set1(-INFINITY);
			/* a row that has seen nothing yet subtracts 0: exp(-inf) = 0 */
			const vf m_safe = v_sel_gt(m_new, ninf, m_new, v_zero());
			const vf f = AK_FN(exp)(v_sub(m_old, m_safe));
			v_store(mx + r, m_new);
			v_store(msafe + r, m_safe);
			ak_dsum_mul(sumd + r, f);
			if (!f16)
				for (size_t d = 0; d < hdz; d++)
					v_store(acc + d * rp + r, v_mul(v_load(acc + d * rp + r), f));
			for (int32_t j = 0; j < nb; j++) {
				float *sj = s + (size_t)j * rp + r;
				const vf p = AK_FN(exp)(v_sub(v_load(sj), m_safe));
				ak_dsum_add(sumd + r, p);
				if (!f16) /* p.v below; an F16 cache's scores stay */
					v_store(sj, p);
			}
		}
		if (!f16) {
			const float *vr = AK_FN(block_rows)(vb, a->v, a->kv_type, j0, nb, kv_row, a->hk,
							    hd, &vs);
			AK_FN(pv)(acc, s, vr, vs, nb, hd, rp);
		}
	}
	for (size_t r = 0; r < rp; r++)
		inv[r] = sumd[r] > 0.0 ? (float)(1.0 / sumd[r]) : 0.0f;
	if (f16) {
		/* pass 2: probabilities normalized, rounded to binary16 as the
		 * reference (and ggml) rounds them, times V */
		for (int32_t j0 = 0; j0 < n_kv; j0 += B) {
			const int32_t nb = n_kv - j0 < B ? n_kv - j0 : B;
			size_t vs;
			float *const s = kept ? keep + (size_t)j0 * rp : sblk;
			if (!kept) {
				size_t ks;
				const float *kr = AK_FN(block_rows)(kb, a->k, a->kv_type, j0, nb,
								    kv_row, a->hk, hd, &ks);
				AK_FN(scores)(s, qt, kr, ks, nb, hd, rp, a->scale);
				if (j0 + nb - 1 > p_first)
					AK_FN(mask)(s, rpos, j0, nb, rp);
			}
			for (size_t r = 0; r < rp; r += AK_VL) {
				const vf m_safe = v_load(msafe + r), iv = v_load(inv + r);
				for (int32_t j = 0; j < nb; j++) {
					float *sj = s + (size_t)j * rp + r;
					const vf e = AK_FN(exp)(v_sub(v_load(sj), m_safe));
					v_store(sj, v_round_f16(v_mul(e, iv)));
				}
			}
			if (dec) {
				AK_FN(pv_dec)(acc, s,
					      (const uint16_t *)a->v + (size_t)j0 * kv_row +
						      (size_t)a->hk * hdz,
					      kv_row, nb, rp, hd, R);
				continue;
			}
			const float *vr = AK_FN(block_rows)(vb, a->v, a->kv_type, j0, nb, kv_row,
							    a->hk, hd, &vs);
			AK_FN(pv)(acc, s, vr, vs, nb, hd, rp);
		}
		for (size_t r = 0; r < rp; r++)
			inv[r] = 1.0f;
	}
	for (int32_t t = 0; t < nt; t++)
		for (int32_t i = 0; i < gc; i++) {
			float *o = a->out + (size_t)(t0 + t) * q_dim + (size_t)(h0 + i) * hdz;
			const size_t r = (size_t)t * (size_t)gc + (size_t)i;
			/* acc is [R][hd] after pv_dec, [hd][RP] otherwise */
			const float *ar = acc + (dec ? r * hdz : r);
			const size_t step = dec ? 1 : rp;
			for (size_t d = 0; d < hdz; d++)
				o[d] = ar[d * step] * inv[r];
		}
}

void AK_FN(engine_attn_run)(const struct engine_attn_call *a)
{
	const int32_t g = a->n_head / a->n_head_kv;
	const int32_t gc = g < AK_ROWS ? g : AK_ROWS; /* heads per pass */
	const int32_t tc = AK_ROWS / gc;              /* tokens per pass */
	for (int32_t i0 = 0; i0 < g; i0 += gc) {
		const int32_t gi = g - i0 < gc ? g - i0 : gc;
		for (int32_t t0 = 0; t0 < a->n_tok; t0 += tc)
			AK_FN(pass)(a, t0, a->n_tok - t0 < tc ? a->n_tok - t0 : tc, i0, gi);
	}
}

#endif
