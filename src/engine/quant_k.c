/*
 * quant_k.c — reference kernels of Q2_K, Q3_K, Q4_K, Q5_K (x Q8_K) and
 * IQ4_NL (x Q8_0): dequantize, quantize, dot. Portable C; quant.c's type
 * table points at these, SIMD variants are checked against them.
 *
 * Owns the K-quant quantizers. They follow ggml's reference algorithms (a
 * weighted least-squares search over candidate scales per sub-block, then the
 * sub-block scales quantized against one super-block scale; the same float
 * operations in the same order) so that on the fixture models their output
 * equals llama-quantize's byte for byte (tests/unit/test_quant_k.c checks
 * it). The algorithms are described in docs/engine.md; this code is our own.
 *
 * Conventions as in quant.c: blocks are read and written byte by byte
 * (little-endian halves), so rows need no alignment; every float -> int
 * conversion goes through nearest(), which is defined for NaN, inf and huge
 * values, so no input is undefined behaviour.
 *
 * Dots: per super-block (block for IQ4_NL) an exact integer sum, then one
 * or two float multiply-adds with the scales, the way llama.cpp's CPU
 * backend does it (its SIMD lanes sum in a different order, so results can
 * differ from its by float rounding, not by activation rounding).
 */
#include "engine/quant_k.h"

#include "engine/fp16.h"
#include "engine/quant.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

_Static_assert(sizeof(struct tk_block_q2_k) == 84, "q2_K block is 84 bytes");
_Static_assert(sizeof(struct tk_block_q3_k) == 110, "q3_K block is 110 bytes");
_Static_assert(sizeof(struct tk_block_q4_k) == 144, "q4_K block is 144 bytes");
_Static_assert(sizeof(struct tk_block_q5_k) == 176, "q5_K block is 176 bytes");
_Static_assert(sizeof(struct tk_block_iq4_nl) == 18, "iq4_nl block is 18 bytes");

#define QK 256
#define Q2K_BYTES 84
#define Q3K_BYTES 110
#define Q4K_BYTES 144
#define Q5K_BYTES 176
#define Q6K_BYTES 210
#define Q8K_BYTES 292
#define IQ4NL_BYTES 18
#define Q80_BYTES 34

/* a block whose largest |x| is below this is treated as all zero (ggml's) */
#define ZERO_EPS 1e-15f

const int8_t tk_iq4nl_levels[16] = { -127, -104, -83, -65, -49, -35, -22, -10,
				     1,    13,   25,  38,  53,  69,  89,  113 };

static inline float rd16(const uint8_t *p)
{
	return tk_fp16_to_fp32((uint16_t)(p[0] | (uint16_t)p[1] << 8));
}

/* Stores f as a half; returns the stored value as a float. */
static inline float wr16(uint8_t *p, float f)
{
	uint16_t h = tk_fp32_to_fp16(f);
	p[0] = (uint8_t)h;
	p[1] = (uint8_t)(h >> 8);
	return tk_fp16_to_fp32(h);
}

static inline float rdf32(const uint8_t *p)
{
	uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		     (uint32_t)p[3] << 24;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline int rdi16(const uint8_t *p)
{
	return (int16_t)(uint16_t)(p[0] | p[1] << 8);
}

/* Round to nearest, ties to even, for |v| < 2^22 (exactly: adding 1.5 * 2^23
 * leaves the integer part in the low mantissa bits, as ggml does); NaN gives
 * 0 and anything beyond +-4194303 saturates there. */
static inline int nearest(float v)
{
	if (v != v)
		return 0;
	if (v > 4194303.0f)
		return 4194303;
	if (v < -4194303.0f)
		return -4194303;
	float t = v + 12582912.0f;
	int32_t i;
	memcpy(&i, &t, 4);
	return (i & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* ================= shared quantizer: scale and min ================= */

/* Fits x[0..n) ~ scale * L + min with L in 0..nmax and min <= 0, minimising
 * sum w_i * err_i (err = squared error, or absolute error when use_abs):
 *   - start from the grid spanning [min(x, 0), max(x)] with nmax steps;
 *   - for each of nstep + 1 candidate grids (nmax + rmin + rdelta * k steps
 *     over the same range) round every x to it, then solve the 2x2 weighted
 *     least-squares problem for (scale, min) with those codes (min clamped
 *     to 0, re-solving the scale alone, when the solution is positive);
 *   - keep the candidate with the lowest weighted error.
 * Returns scale, stores -min (>= 0) in *neg_min and the codes in L. aux is
 * scratch of n bytes. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
			   float *neg_min, uint8_t *aux, float rmin, float rdelta, int nstep,
			   bool use_abs)
{
	float lo = x[0], hi = x[0];
	float sw = w[0], sx = sw * x[0];
	for (int i = 1; i < n; i++) {
		if (x[i] < lo)
			lo = x[i];
		if (x[i] > hi)
			hi = x[i];
		sw += w[i];
		sx += w[i] * x[i];
	}
	if (lo > 0)
		lo = 0;
	if (hi == lo) {
		memset(L, 0, (size_t)n);
		*neg_min = -lo;
		return 0.0f;
	}
	float inv = (float)nmax / (hi - lo);
	float scale = 1.0f / inv;
	float best = 0;
	for (int i = 0; i < n; i++) {
		L[i] = (uint8_t)clampi(nearest(inv * (x[i] - lo)), 0, nmax);
		float e = scale * (float)L[i] + lo - x[i];
		e = use_abs ? fabsf(e) : e * e;
		best += w[i] * e;
	}
	if (nstep < 1) {
		*neg_min = -lo;
		return scale;
	}
	for (int k = 0; k <= nstep; k++) {
		inv = (rmin + rdelta * (float)k + (float)nmax) / (hi - lo);
		float sl = 0, sl2 = 0, sxl = 0;
		for (int i = 0; i < n; i++) {
			int l = clampi(nearest(inv * (x[i] - lo)), 0, nmax);
			aux[i] = (uint8_t)l;
			const float fl = (float)l;
			sl += w[i] * fl;
			sl2 += w[i] * fl * fl;
			sxl += w[i] * fl * x[i];
		}
		const float det = sw * sl2 - sl * sl;
		if (!(det > 0))
			continue;
		float s = (sw * sxl - sx * sl) / det;
		float m = (sl2 * sx - sl * sxl) / det;
		if (m > 0) {
			m = 0;
			s = sxl / sl2;
		}
		float err = 0;
		for (int i = 0; i < n; i++) {
			float e = s * (float)aux[i] + m - x[i];
			e = use_abs ? fabsf(e) : e * e;
			err += w[i] * e;
		}
		if (err < best) {
			memcpy(L, aux, (size_t)n);
			best = err;
			scale = s;
			lo = m;
		}
	}
	*neg_min = -lo;
	return scale;
}

/* ================= Q4_K / Q5_K: 8 x 32, 6-bit scales and mins ========== */

/* 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes. */
static inline void k4_scale_min(int j, const uint8_t *q, int *sc, int *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (q[j + 4] & 15) | (q[j - 4] >> 6) << 4;
		*m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
	}
}

/* Quantizes one 256-element super-block to Q4_K (bits 4) or Q5_K (bits 5);
 * writes d, dmin and the 12 scale bytes at b and the codes (0..2^bits - 1)
 * into L[256]. The per-sub-block fit weights each element by
 * rms(sub-block) + |x|. */
static void k45_block(const float *x, uint8_t *b, uint8_t *L, int bits)
{
	const int nmax = (1 << bits) - 1;
	const float rmin = bits == 4 ? -1.0f : -0.5f;
	const int nstep = bits == 4 ? 20 : 15;
	float scales[8], mins[8], w[32];
	uint8_t aux[32];
	float max_scale = 0, max_min = 0;
	for (int j = 0; j < 8; j++) {
		const float *xs = x + 32 * j;
		float s2 = 0;
		for (int l = 0; l < 32; l++)
			s2 += xs[l] * xs[l];
		const float rms = sqrtf(s2 / 32);
		for (int l = 0; l < 32; l++)
			w[l] = rms + fabsf(xs[l]);
		scales[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], aux, rmin, 0.1f,
					  nstep, false);
		if (scales[j] > max_scale)
			max_scale = scales[j];
		if (mins[j] > max_min)
			max_min = mins[j];
	}
	const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
	const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
	uint8_t *sc = b + 4;
	memset(sc, 0, 12);
	for (int j = 0; j < 8; j++) {
		/* a byte, as ggml stores it, then capped at 63 */
		int ls = nearest(inv_scale * scales[j]) & 255;
		int lm = nearest(inv_min * mins[j]) & 255;
		ls = ls > 63 ? 63 : ls;
		lm = lm > 63 ? 63 : lm;
		if (j < 4) {
			sc[j] = (uint8_t)ls;
			sc[j + 4] = (uint8_t)lm;
		} else {
			sc[j + 4] = (uint8_t)((ls & 15) | (lm & 15) << 4);
			sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
			sc[j] |= (uint8_t)((lm >> 4) << 6);
		}
	}
	const float d = wr16(b, max_scale / 63.0f);
	const float dmin = wr16(b + 2, max_min / 63.0f);
	/* final codes against the scales as stored */
	for (int j = 0; j < 8; j++) {
		int s, m;
		k4_scale_min(j, sc, &s, &m);
		const float ds = d * (float)s;
		if (ds == 0.0f)
			continue; /* keep the fit's codes; they decode to -dm anyway */
		const float dm = dmin * (float)m;
		for (int l = 0; l < 32; l++)
			L[32 * j + l] = (uint8_t)clampi(nearest((x[32 * j + l] + dm) / ds), 0, nmax);
	}
}

void tk_quant_q4_k_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	uint8_t L[QK];
	for (int64_t i = 0; i < n / QK; i++, b += Q4K_BYTES) {
		k45_block(src + i * QK, b, L, 4);
		uint8_t *qs = b + 16;
		for (int g = 0; g < 4; g++)
			for (int l = 0; l < 32; l++)
				qs[32 * g + l] = (uint8_t)(L[64 * g + l] | L[64 * g + 32 + l] << 4);
	}
}

void tk_quant_q4_k_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / QK; i++, b += Q4K_BYTES) {
		const float d = rd16(b), dmin = rd16(b + 2);
		const uint8_t *qs = b + 16;
		float *y = dst + i * QK;
		for (int j = 0; j < 8; j++) {
			int s, m;
			k4_scale_min(j, b + 4, &s, &m);
			const float ds = d * (float)s, dm = dmin * (float)m;
			const int g = j / 2, sh = 4 * (j & 1);
			for (int l = 0; l < 32; l++)
				y[32 * j + l] = ds * (float)(qs[32 * g + l] >> sh & 15) - dm;
		}
	}
}

/* Sum over the 16 groups of 16 of bsums[s] * min of the 32-element sub-block
 * holding group s: the Q4_K/Q5_K min term, in integers. */
static inline int32_t k45_min_term(const uint8_t *xb, const uint8_t *yb)
{
	int32_t summ = 0;
	for (int s = 0; s < 16; s++) {
		int sc, m;
		k4_scale_min(s / 2, xb + 4, &sc, &m);
		summ += rdi16(yb + 4 + 256 + 2 * s) * m;
	}
	return summ;
}

/* x: Q4_K row, y: Q8_K row. Per super-block
 *   sumi = sum_j sc_j * sum_{e in j} q_e * y_e, summ = sum_s bsums_s * m_{s/2}
 *   sum += (d_x d_y) * sumi - (dmin_x d_y) * summ
 * (|sumi| <= 256 * 15 * 127 * 63 < 2^31). */
void tk_quant_q4_k_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sum = 0.0f;
	for (int64_t i = 0; i < n / QK; i++, x += Q4K_BYTES, y += Q8K_BYTES) {
		const int8_t *yq = (const int8_t *)(y + 4);
		const uint8_t *qs = x + 16;
		int32_t sumi = 0;
		for (int j = 0; j < 8; j++) {
			int sc, m;
			k4_scale_min(j, x + 4, &sc, &m);
			const int g = j / 2, sh = 4 * (j & 1);
			int32_t dot = 0;
			for (int l = 0; l < 32; l++)
				dot += (qs[32 * g + l] >> sh & 15) * yq[32 * j + l];
			sumi += sc * dot;
		}
		const float dy = rdf32(y);
		sum += (rd16(x) * dy) * (float)sumi - (rd16(x + 2) * dy) * (float)k45_min_term(x, y);
	}
	*out = sum;
}

/* Q5_K: low nibbles as Q4_K's (qs at 48), bit 4 of element 64g + 32t + l in
 * qh[l] (at 16) bit 2g + t. */
static inline int q5k_code(const uint8_t *b, int e)
{
	const int g = e >> 6, t = (e >> 5) & 1, l = e & 31;
	return (b[48 + 32 * g + l] >> (4 * t) & 15) | (b[16 + l] >> (2 * g + t) & 1) << 4;
}

void tk_quant_q5_k_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	uint8_t L[QK];
	for (int64_t i = 0; i < n / QK; i++, b += Q5K_BYTES) {
		k45_block(src + i * QK, b, L, 5);
		uint8_t *qh = b + 16, *qs = b + 48;
		memset(qh, 0, 32);
		for (int g = 0; g < 4; g++)
			for (int l = 0; l < 32; l++) {
				const int lo = L[64 * g + l], hi = L[64 * g + 32 + l];
				qs[32 * g + l] = (uint8_t)((lo & 15) | (hi & 15) << 4);
				qh[l] |= (uint8_t)((lo >> 4) << (2 * g) | (hi >> 4) << (2 * g + 1));
			}
	}
}

void tk_quant_q5_k_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / QK; i++, b += Q5K_BYTES) {
		const float d = rd16(b), dmin = rd16(b + 2);
		float *y = dst + i * QK;
		for (int j = 0; j < 8; j++) {
			int s, m;
			k4_scale_min(j, b + 4, &s, &m);
			const float ds = d * (float)s, dm = dmin * (float)m;
			for (int l = 0; l < 32; l++)
				y[32 * j + l] = ds * (float)q5k_code(b, 32 * j + l) - dm;
		}
	}
}

/* x: Q5_K row, y: Q8_K row; same algebra as Q4_K
 * (|sumi| <= 256 * 31 * 127 * 63 < 2^31). */
void tk_quant_q5_k_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sum = 0.0f;
	for (int64_t i = 0; i < n / QK; i++, x += Q5K_BYTES, y += Q8K_BYTES) {
		const int8_t *yq = (const int8_t *)(y + 4);
		int32_t sumi = 0;
		for (int j = 0; j < 8; j++) {
			int sc, m;
			k4_scale_min(j, x + 4, &sc, &m);
			int32_t dot = 0;
			for (int l = 0; l < 32; l++)
				dot += q5k_code(x, 32 * j + l) * yq[32 * j + l];
			sumi += sc * dot;
		}
		const float dy = rdf32(y);
		sum += (rd16(x) * dy) * (float)sumi - (rd16(x + 2) * dy) * (float)k45_min_term(x, y);
	}
	*out = sum;
}

/* ================= Q2_K: 16 x 16, 4-bit scales and mins ================= */

/* 2-bit code of element e: qs (at 16) [32h + l] bits 2k.., e = 128h + 32k + l */
static inline int q2k_code(const uint8_t *b, int e)
{
	return b[16 + 32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3)) & 3;
}

/* Packs 256 2-bit codes the Q2_K/Q3_K way into qs[64]. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
	for (int h = 0; h < 2; h++)
		for (int l = 0; l < 32; l++) {
			const uint8_t *c = L + 128 * h + l;
			qs[32 * h + l] = (uint8_t)(c[0] | c[32] << 2 | c[64] << 4 | c[96] << 6);
		}
}

/* Each sub-block of 16 is fit with weights |x| and absolute error; the
 * sub-block scales and mins are then quantized to 4 bits against
 * d = max scale / 15 and dmin = max min / 15. */
void tk_quant_q2_k_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	uint8_t L[QK], aux[16];
	float w[16], scales[16], mins[16];
	for (int64_t i = 0; i < n / QK; i++, b += Q2K_BYTES) {
		const float *x = src + i * QK;
		float max_scale = 0, max_min = 0;
		for (int j = 0; j < 16; j++) {
			for (int l = 0; l < 16; l++)
				w[l] = fabsf(x[16 * j + l]);
			scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], aux, -0.5f,
						  0.1f, 15, true);
			if (scales[j] > max_scale)
				max_scale = scales[j];
			if (mins[j] > max_min)
				max_min = mins[j];
		}
		uint8_t *sc = b;
		float d = 0, dmin = 0;
		if (max_scale > 0) {
			const float inv = 15.0f / max_scale;
			for (int j = 0; j < 16; j++)
				sc[j] = (uint8_t)(nearest(inv * scales[j]) & 255);
			d = wr16(b + 80, max_scale / 15.0f);
		} else {
			memset(sc, 0, 16);
			d = wr16(b + 80, 0.0f);
		}
		if (max_min > 0) {
			const float inv = 15.0f / max_min;
			for (int j = 0; j < 16; j++)
				sc[j] |= (uint8_t)(((unsigned)nearest(inv * mins[j]) << 4) & 255);
			dmin = wr16(b + 82, max_min / 15.0f);
		} else {
			dmin = wr16(b + 82, 0.0f);
		}
		for (int j = 0; j < 16; j++) {
			const float ds = d * (float)(sc[j] & 15);
			if (ds == 0.0f)
				continue;
			const float dm = dmin * (float)(sc[j] >> 4);
			for (int l = 0; l < 16; l++)
				L[16 * j + l] = (uint8_t)clampi(nearest((x[16 * j + l] + dm) / ds), 0, 3);
		}
		pack_2bit(L, b + 16);
	}
}

void tk_quant_q2_k_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / QK; i++, b += Q2K_BYTES) {
		const float d = rd16(b + 80), dmin = rd16(b + 82);
		float *y = dst + i * QK;
		for (int s = 0; s < 16; s++) {
			const float ds = d * (float)(b[s] & 15), dm = dmin * (float)(b[s] >> 4);
			for (int l = 0; l < 16; l++)
				y[16 * s + l] = ds * (float)q2k_code(b, 16 * s + l) - dm;
		}
	}
}

/* x: Q2_K row, y: Q8_K row.
 *   sumi = sum_s (scales_s & 15) * sum_{e in s} q_e y_e,
 *   summ = sum_s (scales_s >> 4) * bsums_s,
 *   sum += (d_x d_y) * sumi - (dmin_x d_y) * summ. */
void tk_quant_q2_k_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sum = 0.0f;
	for (int64_t i = 0; i < n / QK; i++, x += Q2K_BYTES, y += Q8K_BYTES) {
		const int8_t *yq = (const int8_t *)(y + 4);
		int32_t sumi = 0, summ = 0;
		for (int s = 0; s < 16; s++) {
			int32_t dot = 0;
			for (int l = 0; l < 16; l++)
				dot += q2k_code(x, 16 * s + l) * yq[16 * s + l];
			sumi += (x[s] & 15) * dot;
			summ += (x[s] >> 4) * rdi16(y + 4 + 256 + 2 * s);
		}
		const float dy = rdf32(y);
		sum += (rd16(x + 80) * dy) * (float)sumi - (rd16(x + 82) * dy) * (float)summ;
	}
	*out = sum;
}

/* ================= Q3_K: 16 x 16, signed 6-bit scales ================= */

/* Codes for x ~ scale * c with c in -nmax..nmax-1, weights x^2: start from
 * the grid that maps the extreme element to -nmax, then (up to 5 passes)
 * move single codes to the value that the current least-squares scale
 * prefers whenever that lowers the weighted error. Stores c + nmax in L and
 * returns the scale; a block below ZERO_EPS gets L = 0 (not offset, as in
 * ggml; those codes are never decoded with a nonzero scale) and scale 0. */
static float fit_signed(int n, int nmax, const float *x, int8_t *L)
{
	float amax = 0, max = 0;
	for (int i = 0; i < n; i++)
		if (fabsf(x[i]) > amax) {
			amax = fabsf(x[i]);
			max = x[i];
		}
	if (amax < ZERO_EPS) {
		memset(L, 0, (size_t)n);
		return 0.0f;
	}
	const float inv = (float)-nmax / max;
	float sxl = 0, sl2 = 0;
	for (int i = 0; i < n; i++) {
		const int l = clampi(nearest(inv * x[i]), -nmax, nmax - 1);
		L[i] = (int8_t)l;
		const float w = x[i] * x[i];
		sxl += w * x[i] * (float)l;
		sl2 += w * (float)l * (float)l;
	}
	for (int pass = 0; pass < 5; pass++) {
		int changed = 0;
		for (int i = 0; i < n; i++) {
			const float w = x[i] * x[i];
			float slx = sxl - w * x[i] * (float)L[i];
			if (!(slx > 0))
				continue;
			float s2 = sl2 - w * (float)L[i] * (float)L[i];
			const int nl = clampi(nearest(x[i] * s2 / slx), -nmax, nmax - 1);
			if (nl == L[i])
				continue;
			slx += w * x[i] * (float)nl;
			s2 += w * (float)nl * (float)nl;
			if (s2 > 0 && slx * slx * sl2 > sxl * sxl * s2) {
				L[i] = (int8_t)nl;
				sxl = slx;
				sl2 = s2;
				changed++;
			}
		}
		if (!changed)
			break;
	}
	for (int i = 0; i < n; i++)
		L[i] = (int8_t)(L[i] + nmax);
	return sxl / sl2;
}

/* 6-bit stored scale S_s (0..63) of sub-block s. */
static inline int q3k_scale(const uint8_t *sc, int s)
{
	const int lo = s < 8 ? sc[s] & 15 : sc[s - 8] >> 4;
	return lo | (sc[8 + s % 4] >> (2 * (s / 4)) & 3) << 4;
}

/* signed code (-4..3) of element e = 128h + 32k + l */
static inline int q3k_code(const uint8_t *b, int e)
{
	const int k = (e >> 5) & 3, h = e >> 7, l = e & 31;
	const int lo = b[32 + 32 * h + l] >> (2 * k) & 3;
	return lo - ((b[l] >> (4 * h + k) & 1) ? 0 : 4);
}

void tk_quant_q3_k_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	int8_t L[QK];
	float scales[16];
	for (int64_t i = 0; i < n / QK; i++, b += Q3K_BYTES) {
		const float *x = src + i * QK;
		float amax = 0, max_scale = 0;
		for (int j = 0; j < 16; j++) {
			scales[j] = fit_signed(16, 4, x + 16 * j, L + 16 * j);
			if (fabsf(scales[j]) > amax) {
				amax = fabsf(scales[j]);
				max_scale = scales[j];
			}
		}
		uint8_t *sc = b + 96;
		memset(sc, 0, 12);
		float d;
		if (max_scale != 0.0f) {
			/* the largest scale maps to -32: signed trick, as Q4_0's */
			const float inv = -32.0f / max_scale;
			for (int j = 0; j < 16; j++) {
				/* a signed byte, as ggml stores it, then clamped */
				int l = (int)(int8_t)(uint8_t)(nearest(inv * scales[j]) & 255);
				l = clampi(l, -32, 31) + 32;
				if (j < 8)
					sc[j] = (uint8_t)(l & 15);
				else
					sc[j - 8] |= (uint8_t)((l & 15) << 4);
				sc[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
			}
			d = wr16(b + 108, 1.0f / inv);
		} else {
			d = wr16(b + 108, 0.0f);
		}
		for (int j = 0; j < 16; j++) {
			const float ds = d * (float)(q3k_scale(sc, j) - 32);
			if (ds == 0.0f)
				continue;
			for (int l = 0; l < 16; l++)
				L[16 * j + l] = (int8_t)(clampi(nearest(x[16 * j + l] / ds), -4, 3) + 4);
		}
		/* bit 2 of code e goes to hmask[e % 32] bit e / 32 */
		uint8_t *hm = b, low[QK];
		memset(hm, 0, 32);
		for (int e = 0; e < QK; e++) {
			int c = L[e];
			if (c > 3) {
				hm[e % 32] |= (uint8_t)(1u << (e / 32));
				c -= 4;
			}
			low[e] = (uint8_t)(c & 3);
		}
		pack_2bit(low, b + 32);
	}
}

void tk_quant_q3_k_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / QK; i++, b += Q3K_BYTES) {
		const float d = rd16(b + 108);
		float *y = dst + i * QK;
		for (int s = 0; s < 16; s++) {
			const float ds = d * (float)(q3k_scale(b + 96, s) - 32);
			for (int l = 0; l < 16; l++)
				y[16 * s + l] = ds * (float)q3k_code(b, 16 * s + l);
		}
	}
}

/* x: Q3_K row, y: Q8_K row. sumi = sum_s (S_s - 32) * sum_{e in s} q_e y_e
 * with signed codes; sum += (d_x d_y) * sumi. */
void tk_quant_q3_k_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sum = 0.0f;
	for (int64_t i = 0; i < n / QK; i++, x += Q3K_BYTES, y += Q8K_BYTES) {
		const int8_t *yq = (const int8_t *)(y + 4);
		int32_t sumi = 0;
		for (int s = 0; s < 16; s++) {
			int32_t dot = 0;
			for (int l = 0; l < 16; l++)
				dot += q3k_code(x, 16 * s + l) * yq[16 * s + l];
			sumi += (q3k_scale(x + 96, s) - 32) * dot;
		}
		sum += (rd16(x + 108) * rdf32(y)) * (float)sumi;
	}
	*out = sum;
}

/* ================= Q6_K quantizer ================= */

/* Codes for x ~ scale * c, c in -nmax..nmax-1, weights x^2: the grid that
 * maps the extreme element to -nmax, then 18 more grids (extreme element at
 * -(nmax + k/10), k = -9..9, k != 0); for each, the least-squares scale of
 * its codes; the grid with the largest sum(w x c)^2 / sum(w c^2) (the least
 * weighted error) wins. Stores c + nmax in L and returns the scale; a block
 * below ZERO_EPS gets L = 0 and scale 0. */
static float fit_signed_grid(int n, int nmax, const float *x, int8_t *L)
{
	float amax = 0, max = 0;
	for (int i = 0; i < n; i++)
		if (fabsf(x[i]) > amax) {
			amax = fabsf(x[i]);
			max = x[i];
		}
	if (amax < ZERO_EPS) {
		memset(L, 0, (size_t)n);
		return 0.0f;
	}
	float inv = (float)-nmax / max;
	float sxl = 0, sl2 = 0;
	for (int i = 0; i < n; i++) {
		const int l = clampi(nearest(inv * x[i]), -nmax, nmax - 1);
		L[i] = (int8_t)(l + nmax);
		const float w = x[i] * x[i];
		sxl += w * x[i] * (float)l;
		sl2 += w * (float)l * (float)l;
	}
	float scale = sl2 != 0.0f ? sxl / sl2 : 0.0f;
	float best = scale * sxl;
	for (int k = -9; k <= 9; k++) {
		if (k == 0)
			continue;
		inv = -((float)nmax + 0.1f * (float)k) / max;
		sxl = sl2 = 0;
		for (int i = 0; i < n; i++) {
			const int l = clampi(nearest(inv * x[i]), -nmax, nmax - 1);
			const float w = x[i] * x[i];
			sxl += w * x[i] * (float)l;
			sl2 += w * (float)l * (float)l;
		}
		if (sl2 > 0 && sxl * sxl > best * sl2) {
			for (int i = 0; i < n; i++)
				L[i] = (int8_t)(clampi(nearest(inv * x[i]), -nmax, nmax - 1) + nmax);
			scale = sxl / sl2;
			best = scale * sxl;
		}
	}
	return scale;
}

/* Q6_K (layout in quant.h): each sub-block of 16 gets its weighted
 * least-squares scale from fit_signed_grid (nmax 32); the scale of largest
 * magnitude maps to -128 (d = scale / -128, as half), the others to
 * nearest(scale / d) capped at 127; then every code is re-rounded against
 * its stored d * scales[s], clamped to -32..31 and stored + 32. */
void tk_quant_q6_k_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	int8_t L[QK];
	float scales[16];
	for (int64_t i = 0; i < n / QK; i++, b += Q6K_BYTES) {
		const float *x = src + i * QK;
		float amax = 0, max_scale = 0;
		for (int s = 0; s < 16; s++) {
			scales[s] = fit_signed_grid(16, 32, x + 16 * s, L + 16 * s);
			if (fabsf(scales[s]) > amax) {
				amax = fabsf(scales[s]);
				max_scale = scales[s];
			}
		}
		if (amax < ZERO_EPS) {
			memset(b, 0, Q6K_BYTES);
			continue;
		}
		const float inv = -128.0f / max_scale;
		const float d = wr16(b + 208, 1.0f / inv);
		int8_t *sc = (int8_t *)(b + 192);
		for (int s = 0; s < 16; s++) {
			const int l = nearest(inv * scales[s]);
			/* a signed byte, as ggml stores it */
			sc[s] = (int8_t)(uint8_t)((l > 127 ? 127 : l) & 255);
		}
		for (int s = 0; s < 16; s++) {
			const float ds = d * (float)sc[s];
			if (ds == 0.0f)
				continue;
			for (int l = 0; l < 16; l++)
				L[16 * s + l] = (int8_t)(clampi(nearest(x[16 * s + l] / ds), -32, 31) + 32);
		}
		for (int h = 0; h < 2; h++) {
			const int8_t *c = L + 128 * h;
			for (int l = 0; l < 32; l++) {
				b[64 * h + l] = (uint8_t)((c[l] & 15) | (c[l + 64] & 15) << 4);
				b[64 * h + l + 32] = (uint8_t)((c[l + 32] & 15) | (c[l + 96] & 15) << 4);
				b[128 + 32 * h + l] = (uint8_t)((c[l] >> 4) | (c[l + 32] >> 4) << 2 |
								(c[l + 64] >> 4) << 4 | (c[l + 96] >> 4) << 6);
			}
		}
	}
}

/* ================= IQ4_NL: 32, non-linear 4-bit levels ================= */

/* Index of the level nearest to v (the lower one on a tie; NaN gives 15). */
static inline int iq4nl_index(float v)
{
	const int8_t *lv = tk_iq4nl_levels;
	if (v <= (float)lv[0])
		return 0;
	if (v >= (float)lv[15])
		return 15;
	int lo = 0, hi = 15; /* lv[lo] <= v < lv[hi] */
	while (hi - lo > 1) {
		const int mid = (lo + hi) / 2;
		if (v < (float)lv[mid])
			hi = mid;
		else
			lo = mid;
	}
	return v - (float)lv[hi - 1] < (float)lv[hi] - v ? hi - 1 : hi;
}

/* Per block of 32, weights x^2: the scale that maps the extreme element to
 * the outermost level (-127), refined to the weighted least-squares scale
 * for those indices, then 15 more candidate grids (extreme element at
 * -127 + k, k = -7..7) each with its least-squares scale; the best one is
 * kept and every element re-indexed against it. (llama-quantize's search,
 * 7 tries each way.) */
void tk_quant_iq4_nl_from_float(const float *src, void *dst, int64_t n)
{
	const int8_t *lv = tk_iq4nl_levels;
	uint8_t *b = dst;
	for (int64_t i = 0; i < n / 32; i++, b += IQ4NL_BYTES) {
		const float *x = src + i * 32;
		float amax = 0, max = 0;
		for (int j = 0; j < 32; j++)
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		float d = 0;
		if (amax >= ZERO_EPS) {
			d = -max / (float)lv[0];
			float id = 1 / d, sqx = 0, sq2 = 0;
			for (int j = 0; j < 32; j++) {
				const float q = (float)lv[iq4nl_index(id * x[j])], w = x[j] * x[j];
				sqx += w * q * x[j];
				sq2 += w * q * q;
			}
			const float d0 = d;
			d = sqx / sq2;
			float best = d * sqx;
			for (int t = -7; t <= 7; t++) {
				id = (float)(t + lv[0]) / max;
				sqx = sq2 = 0;
				for (int j = 0; j < 32; j++) {
					const float q = (float)lv[iq4nl_index(id * x[j])], w = x[j] * x[j];
					sqx += w * q * x[j];
					sq2 += w * q * q;
				}
				if (sq2 > 0 && sqx * sqx > best * sq2) {
					d = sqx / sq2;
					best = d * sqx;
				}
			}
			/* weights that underflow to 0 leave no least-squares
			 * answer: keep the first grid's scale (ggml would store
			 * NaN here) */
			if (!isfinite(d))
				d = d0;
		}
		wr16(b, d);
		const float id = d != 0.0f ? 1 / d : 0.0f;
		for (int j = 0; j < 16; j++)
			b[2 + j] = (uint8_t)(iq4nl_index(id * x[j]) | iq4nl_index(id * x[j + 16]) << 4);
	}
}

void tk_quant_iq4_nl_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / 32; i++, b += IQ4NL_BYTES) {
		const float d = rd16(b);
		for (int j = 0; j < 16; j++) {
			dst[32 * i + j] = d * (float)tk_iq4nl_levels[b[2 + j] & 15];
			dst[32 * i + j + 16] = d * (float)tk_iq4nl_levels[b[2 + j] >> 4];
		}
	}
}

/* x: IQ4_NL row, y: Q8_0 row. Per block sumi = sum levels[idx_j] * y_j
 * (exact), sum += (d_x d_y) * sumi. */
void tk_quant_iq4_nl_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sum = 0.0f;
	for (int64_t i = 0; i < n / 32; i++, x += IQ4NL_BYTES, y += Q80_BYTES) {
		const int8_t *yq = (const int8_t *)(y + 2);
		int32_t sumi = 0;
		for (int j = 0; j < 16; j++) {
			sumi += tk_iq4nl_levels[x[2 + j] & 15] * yq[j];
			sumi += tk_iq4nl_levels[x[2 + j] >> 4] * yq[j + 16];
		}
		sum += (rd16(x) * rd16(y)) * (float)sumi;
	}
	*out = sum;
}
