/*
 * quant.c — the tensor type table and the portable reference kernels.
 *
 * Owns: ref_traits[] (layouts of every ggml type id, reference kernels for
 * F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q6_K, Q8_K; the rows of
 * Q2_K, Q3_K, Q4_K, Q5_K and IQ4_NL point at quant_k.c) and active[] (the
 * kernels in use, chosen once by tk_quant_init(); today a copy of the
 * reference table — Engine II's SIMD variants plug in there).
 *
 * Conventions in every kernel:
 *   - n is the row length in elements, a multiple of the block size QK;
 *     nb = n / QK blocks; block b covers elements [b*QK, (b+1)*QK).
 *   - Encoded rows are read and written byte by byte (little-endian halves
 *     through rd16/wr16), so rows need no alignment and the code is
 *     endian-independent.
 *   - Float -> small-int conversions go through clamp helpers, so NaN/inf
 *     input yields some in-range code instead of undefined behaviour.
 *
 * Arithmetic mirrors llama.cpp's CPU backend (see docs/engine.md):
 *   - F32/F16/BF16 dots: products in float (exact for half/bf16 inputs),
 *     accumulated in double.
 *   - Q4_0/Q5_0/Q8_0 x Q8_0: per block an exact integer dot sumi, then
 *     sum += sumi * (d_x * d_y) in float.
 *   - Q4_1/Q5_1 x Q8_1: sum += (d_x * d_y) * sumi + m_x * s_y in float,
 *     where s_y = d_y * sum(q_y) is stored in the Q8_1 block.
 *   - Q6_K x Q8_K: per 256-element super-block an exact integer sumi over
 *     its 16 scaled sub-blocks, then sum += (d_x * d_y) * sumi in float.
 */
#include "engine/quant.h"

#include "core/err.h"
#include "engine/fp16.h"
#include "engine/quant_simd.h"
#include "engine/quant_k.h"

#include <strings.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

_Static_assert(sizeof(struct tk_block_q4_0) == 18, "q4_0 block is 18 bytes");
_Static_assert(sizeof(struct tk_block_q4_1) == 20, "q4_1 block is 20 bytes");
_Static_assert(sizeof(struct tk_block_q5_0) == 22, "q5_0 block is 22 bytes");
_Static_assert(sizeof(struct tk_block_q5_1) == 24, "q5_1 block is 24 bytes");
_Static_assert(sizeof(struct tk_block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(struct tk_block_q8_1) == 36, "q8_1 block is 36 bytes");
_Static_assert(sizeof(struct tk_block_q6_k) == 210, "q6_K block is 210 bytes");
_Static_assert(sizeof(struct tk_block_q8_k) == 292, "q8_K block is 292 bytes");

static inline float rd16(const uint8_t *p)
{
	return tk_fp16_to_fp32((uint16_t)(p[0] | (uint16_t)p[1] << 8));
}

static inline void wr16(uint8_t *p, float f)
{
	uint16_t h = tk_fp32_to_fp16(f);
	p[0] = (uint8_t)h;
	p[1] = (uint8_t)(h >> 8);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* trunc(v) clamped to [lo, hi]; NaN gives lo. Used where ggml truncates a
 * value it has already offset by +0.5 (i.e. rounds half up). */
static inline int trunc_clamp(float v, int lo, int hi)
{
	if (!(v >= (float)lo))
		return lo;
	if (v >= (float)hi)
		return hi;
	return (int)v;
}

/* roundf(v) (half away from zero) clamped to [-lim, lim]; NaN gives 0. */
static inline int round_clamp(float v, int lim)
{
	if (v != v)
		return 0;
	float r = roundf(v);
	if (r > (float)lim)
		return lim;
	if (r < (float)-lim)
		return -lim;
	return (int)r;
}

/* round-to-nearest, ties to even (what ggml's nearest_int computes for the
 * magnitudes involved), clamped to [lo, hi]; NaN gives 0. Explicit rather
 * than rintf() so it does not depend on the current rounding mode. */
static inline int round_even_clamp(float v, int lo, int hi)
{
	if (v != v)
		return 0;
	if (v <= (float)lo)
		return lo;
	if (v >= (float)hi)
		return hi;
	float f = floorf(v);
	float frac = v - f; /* exact: v and f are within 2^8 of each other */
	int r = (int)f;
	if (frac > 0.5f || (frac == 0.5f && (r & 1)))
		r++;
	return r;
}

static inline float rdf32(const uint8_t *p)
{
	uint32_t u = rd32(p);
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline void wrf32(uint8_t *p, float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	for (int k = 0; k < 4; k++)
		p[k] = (uint8_t)(u >> (8 * k));
}

/* ================= F32 ================= */

static void f32_to_float(const void *src, float *dst, int64_t n)
{
	memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f32_from_float(const float *src, void *dst, int64_t n)
{
	memcpy(dst, src, (size_t)n * sizeof(float));
}

/* x[n], y[n] float: sum of float products accumulated in double. */
static void f32_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++) {
		float a, b;
		memcpy(&a, x + i * 4, 4);
		memcpy(&b, y + i * 4, 4);
		sum += (double)(a * b);
	}
	*out = (float)sum;
}

/* ================= F16 / BF16 ================= */

static void f16_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *s = src;
	for (int64_t i = 0; i < n; i++)
		dst[i] = rd16(s + 2 * i);
}

static void f16_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *d = dst;
	for (int64_t i = 0; i < n; i++)
		wr16(d + 2 * i, src[i]);
}

/* half x half: each product is exact in float (11 x 11 significant bits). */
static void f16_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)(rd16(x + 2 * i) * rd16(y + 2 * i));
	*out = (float)sum;
}

static inline float rdbf(const uint8_t *p)
{
	return tk_bf16_to_fp32((uint16_t)(p[0] | (uint16_t)p[1] << 8));
}

static void bf16_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *s = src;
	for (int64_t i = 0; i < n; i++)
		dst[i] = rdbf(s + 2 * i);
}

static void bf16_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *d = dst;
	for (int64_t i = 0; i < n; i++) {
		uint16_t b = tk_fp32_to_bf16(src[i]);
		d[2 * i] = (uint8_t)b;
		d[2 * i + 1] = (uint8_t)(b >> 8);
	}
}

/* bf16 x bf16: products exact in float (8 x 8 significant bits). */
static void bf16_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)(rdbf(x + 2 * i) * rdbf(y + 2 * i));
	*out = (float)sum;
}

/* ================= Q8_0 / Q8_1 ================= */
/* block: d (half) [, s (half) for Q8_1], qs[32] int8; x[j] = d * qs[j]. */

/* Quantizes 32 floats with d = amax / 127 (amax = max |x|), q = round(x / d).
 * Returns d (unrounded float, as ggml uses for s) and the sum of the q. */
static float q8_block(const float *x, int8_t *qs, int *sum_out)
{
	float amax = 0.0f;
	for (int j = 0; j < 32; j++) {
		float a = fabsf(x[j]);
		if (a > amax)
			amax = a;
	}
	float d = amax / 127.0f;
	float id = d != 0.0f ? 1.0f / d : 0.0f;
	int sum = 0;
	for (int j = 0; j < 32; j++) {
		qs[j] = (int8_t)round_clamp(x[j] * id, 127);
		sum += qs[j];
	}
	*sum_out = sum;
	return d;
}

static void q8_0_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	for (int64_t i = 0; i < n / 32; i++, b += 34) {
		int sum;
		float d = q8_block(src + i * 32, (int8_t *)(b + 2), &sum);
		wr16(b, d);
	}
}

static void q8_0_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / 32; i++, b += 34) {
		float d = rd16(b);
		for (int j = 0; j < 32; j++)
			dst[i * 32 + j] = d * (float)(int8_t)b[2 + j];
	}
}

/* x: Q8_0 row, y: Q8_0 row. */
static void q8_0_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sum = 0.0f;
	for (int64_t i = 0; i < n / 32; i++, x += 34, y += 34) {
		int sumi = 0;
		for (int j = 0; j < 32; j++)
			sumi += (int8_t)x[2 + j] * (int8_t)y[2 + j];
		sum += (float)sumi * (rd16(x) * rd16(y));
	}
	*out = sum;
}

static void q8_1_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	for (int64_t i = 0; i < n / 32; i++, b += 36) {
		int sum;
		float d = q8_block(src + i * 32, (int8_t *)(b + 4), &sum);
		wr16(b, d);
		wr16(b + 2, (float)sum * d);
	}
}

static void q8_1_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / 32; i++, b += 36) {
		float d = rd16(b);
		for (int j = 0; j < 32; j++)
			dst[i * 32 + j] = d * (float)(int8_t)b[4 + j];
	}
}

/* ================= Q4_0 ================= */
/* block: d (half), qs[16]; q[j] = qs[j] & 15, q[j+16] = qs[j] >> 4;
 * x = d * (q - 8). d = max / -8 where max is the element of largest
 * magnitude (sign kept), so that element maps to q = 0 exactly. */

/* Element of largest magnitude in x[0..31], sign kept (first on ties). */
static float signed_absmax(const float *x)
{
	float amax = 0.0f, max = 0.0f;
	for (int j = 0; j < 32; j++) {
		if (fabsf(x[j]) > amax) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	}
	return max;
}

static void q4_0_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	for (int64_t i = 0; i < n / 32; i++, b += 18) {
		const float *x = src + i * 32;
		float d = signed_absmax(x) / -8.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		wr16(b, d);
		for (int j = 0; j < 16; j++) {
			int q0 = trunc_clamp(x[j] * id + 8.5f, 0, 15);
			int q1 = trunc_clamp(x[j + 16] * id + 8.5f, 0, 15);
			b[2 + j] = (uint8_t)(q0 | q1 << 4);
		}
	}
}

static void q4_0_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / 32; i++, b += 18) {
		float d = rd16(b);
		for (int j = 0; j < 16; j++) {
			dst[i * 32 + j] = d * (float)((b[2 + j] & 15) - 8);
			dst[i * 32 + j + 16] = d * (float)((b[2 + j] >> 4) - 8);
		}
	}
}

/* x: Q4_0 row, y: Q8_0 row. */
static void q4_0_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sum = 0.0f;
	for (int64_t i = 0; i < n / 32; i++, x += 18, y += 34) {
		const int8_t *yq = (const int8_t *)(y + 2);
		int sumi = 0;
		for (int j = 0; j < 16; j++) {
			sumi += ((x[2 + j] & 15) - 8) * yq[j];
			sumi += ((x[2 + j] >> 4) - 8) * yq[j + 16];
		}
		sum += (float)sumi * (rd16(x) * rd16(y));
	}
	*out = sum;
}

/* ================= Q4_1 ================= */
/* block: d, m (half), qs[16] as Q4_0; x = d * q + m, q in 0..15,
 * m = min(x), d = (max - min) / 15. */

static void minmax(const float *x, float *mn, float *mx)
{
	float lo = x[0], hi = x[0];
	for (int j = 1; j < 32; j++) {
		if (x[j] < lo)
			lo = x[j];
		if (x[j] > hi)
			hi = x[j];
	}
	*mn = lo;
	*mx = hi;
}

static void q4_1_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	for (int64_t i = 0; i < n / 32; i++, b += 20) {
		const float *x = src + i * 32;
		float mn, mx;
		minmax(x, &mn, &mx);
		float d = (mx - mn) / 15.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		wr16(b, d);
		wr16(b + 2, mn);
		for (int j = 0; j < 16; j++) {
			int q0 = trunc_clamp((x[j] - mn) * id + 0.5f, 0, 15);
			int q1 = trunc_clamp((x[j + 16] - mn) * id + 0.5f, 0, 15);
			b[4 + j] = (uint8_t)(q0 | q1 << 4);
		}
	}
}

static void q4_1_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / 32; i++, b += 20) {
		float d = rd16(b), m = rd16(b + 2);
		for (int j = 0; j < 16; j++) {
			dst[i * 32 + j] = d * (float)(b[4 + j] & 15) + m;
			dst[i * 32 + j + 16] = d * (float)(b[4 + j] >> 4) + m;
		}
	}
}

/* x: Q4_1 row, y: Q8_1 row. sum_j (d_x q_j + m_x)(d_y p_j)
 *   = d_x d_y sum_j q_j p_j + m_x (d_y sum_j p_j) = d_x d_y sumi + m_x s_y */
static void q4_1_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sum = 0.0f;
	for (int64_t i = 0; i < n / 32; i++, x += 20, y += 36) {
		const int8_t *yq = (const int8_t *)(y + 4);
		int sumi = 0;
		for (int j = 0; j < 16; j++) {
			sumi += (x[4 + j] & 15) * yq[j];
			sumi += (x[4 + j] >> 4) * yq[j + 16];
		}
		sum += (rd16(x) * rd16(y)) * (float)sumi + rd16(x + 2) * rd16(y + 2);
	}
	*out = sum;
}

/* ================= Q5_0 ================= */
/* block: d (half), qh (u32 LE), qs[16]; q[j] = (qs[j] & 15) | bit j of qh << 4,
 * q[j+16] = (qs[j] >> 4) | bit (j+16) of qh << 4; x = d * (q - 16).
 * d = max / -16 with max the signed element of largest magnitude. */

static void q5_0_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	for (int64_t i = 0; i < n / 32; i++, b += 22) {
		const float *x = src + i * 32;
		float d = signed_absmax(x) / -16.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		uint32_t qh = 0;
		wr16(b, d);
		for (int j = 0; j < 16; j++) {
			int q0 = trunc_clamp(x[j] * id + 16.5f, 0, 31);
			int q1 = trunc_clamp(x[j + 16] * id + 16.5f, 0, 31);
			b[6 + j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
			qh |= (uint32_t)(q0 >> 4) << j;
			qh |= (uint32_t)(q1 >> 4) << (j + 16);
		}
		for (int k = 0; k < 4; k++)
			b[2 + k] = (uint8_t)(qh >> (8 * k));
	}
}

static void q5_0_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / 32; i++, b += 22) {
		float d = rd16(b);
		uint32_t qh = rd32(b + 2);
		for (int j = 0; j < 16; j++) {
			int q0 = (b[6 + j] & 15) | (int)((qh >> j) & 1) << 4;
			int q1 = (b[6 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
			dst[i * 32 + j] = d * (float)(q0 - 16);
			dst[i * 32 + j + 16] = d * (float)(q1 - 16);
		}
	}
}

/* x: Q5_0 row, y: Q8_0 row. */
static void q5_0_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sum = 0.0f;
	for (int64_t i = 0; i < n / 32; i++, x += 22, y += 34) {
		const int8_t *yq = (const int8_t *)(y + 2);
		uint32_t qh = rd32(x + 2);
		int sumi = 0;
		for (int j = 0; j < 16; j++) {
			int q0 = (x[6 + j] & 15) | (int)((qh >> j) & 1) << 4;
			int q1 = (x[6 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
			sumi += (q0 - 16) * yq[j] + (q1 - 16) * yq[j + 16];
		}
		sum += (float)sumi * (rd16(x) * rd16(y));
	}
	*out = sum;
}

/* ================= Q5_1 ================= */
/* block: d, m (half), qh (u32 LE), qs[16]; bits as Q5_0; x = d * q + m,
 * m = min(x), d = (max - min) / 31. */

static void q5_1_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	for (int64_t i = 0; i < n / 32; i++, b += 24) {
		const float *x = src + i * 32;
		float mn, mx;
		minmax(x, &mn, &mx);
		float d = (mx - mn) / 31.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		uint32_t qh = 0;
		wr16(b, d);
		wr16(b + 2, mn);
		for (int j = 0; j < 16; j++) {
			int q0 = trunc_clamp((x[j] - mn) * id + 0.5f, 0, 31);
			int q1 = trunc_clamp((x[j + 16] - mn) * id + 0.5f, 0, 31);
			b[8 + j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
			qh |= (uint32_t)(q0 >> 4) << j;
			qh |= (uint32_t)(q1 >> 4) << (j + 16);
		}
		for (int k = 0; k < 4; k++)
			b[4 + k] = (uint8_t)(qh >> (8 * k));
	}
}

static void q5_1_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / 32; i++, b += 24) {
		float d = rd16(b), m = rd16(b + 2);
		uint32_t qh = rd32(b + 4);
		for (int j = 0; j < 16; j++) {
			int q0 = (b[8 + j] & 15) | (int)((qh >> j) & 1) << 4;
			int q1 = (b[8 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
			dst[i * 32 + j] = d * (float)q0 + m;
			dst[i * 32 + j + 16] = d * (float)q1 + m;
		}
	}
}

/* x: Q5_1 row, y: Q8_1 row; same algebra as Q4_1. */
static void q5_1_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sum = 0.0f;
	for (int64_t i = 0; i < n / 32; i++, x += 24, y += 36) {
		const int8_t *yq = (const int8_t *)(y + 4);
		uint32_t qh = rd32(x + 4);
		int sumi = 0;
		for (int j = 0; j < 16; j++) {
			int q0 = (x[8 + j] & 15) | (int)((qh >> j) & 1) << 4;
			int q1 = (x[8 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
			sumi += q0 * yq[j] + q1 * yq[j + 16];
		}
		sum += (rd16(x) * rd16(y)) * (float)sumi + rd16(x + 2) * rd16(y + 2);
	}
	*out = sum;
}

/* ================= Q8_K ================= */
/* block (292 bytes): d (float, 4 bytes LE), qs[256] int8, bsums[16] int16 LE;
 * x[j] = d * qs[j]; bsums[i] = sum(qs[16i .. 16i+15]).
 *
 * Quantizer (ggml's): take the element of largest magnitude, sign kept (max);
 * iscale = -127 / max, q = nearest(iscale * x) (ties to even) capped at 127,
 * d = 1 / iscale. The sign trick: max itself maps to exactly -127, whatever
 * its sign, so d is negative for a block whose extreme element is positive.
 * An all-zero block stores d = 0 and zero codes. */

#define Q8K_BYTES 292
#define Q6K_BYTES 210

static void q8_k_from_float(const float *src, void *dst, int64_t n)
{
	uint8_t *b = dst;
	for (int64_t i = 0; i < n / TK_QK_K; i++, b += Q8K_BYTES) {
		const float *x = src + i * TK_QK_K;
		int8_t *qs = (int8_t *)(b + 4);
		float amax = 0.0f, max = 0.0f;
		for (int j = 0; j < TK_QK_K; j++) {
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		}
		if (amax == 0.0f) {
			memset(b, 0, Q8K_BYTES); /* d = +0.0f, codes and sums 0 */
			continue;
		}
		const float iscale = -127.0f / max;
		for (int j = 0; j < TK_QK_K; j++)
			qs[j] = (int8_t)round_even_clamp(iscale * x[j], -127, 127);
		for (int s = 0; s < 16; s++) {
			int sum = 0;
			for (int j = 0; j < 16; j++)
				sum += qs[16 * s + j];
			/* |sum| <= 16 * 127 fits int16 */
			uint16_t u = (uint16_t)(int16_t)sum;
			b[4 + 256 + 2 * s] = (uint8_t)u;
			b[4 + 256 + 2 * s + 1] = (uint8_t)(u >> 8);
		}
		wrf32(b, 1.0f / iscale);
	}
}

static void q8_k_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / TK_QK_K; i++, b += Q8K_BYTES) {
		float d = rdf32(b);
		for (int j = 0; j < TK_QK_K; j++)
			dst[i * TK_QK_K + j] = d * (float)(int8_t)b[4 + j];
	}
}

/* ================= Q6_K ================= */
/* block (210 bytes): ql[128], qh[64], scales[16] int8, d (half); see
 * struct tk_block_q6_k in quant.h for where element e's bits live:
 *   half h = e / 128, k = (e % 128) / 32, l = e % 32,
 *   low nibble  ql[64h + l + 32 * (k & 1)] >> (4 * (k >> 1)) & 15,
 *   high bits   qh[32h + l] >> (2k) & 3,
 *   q = low | high << 4 (0..63), x = d * scales[e / 16] * (q - 32). */

/* Code q (0..63) of element e of the block at b. */
static inline int q6k_code(const uint8_t *b, int e)
{
	const int h = e >> 7, k = (e >> 5) & 3, l = e & 31;
	const int lo = b[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1)) & 15;
	const int hi = b[128 + 32 * h + l] >> (2 * k) & 3;
	return lo | hi << 4;
}

static void q6_k_to_float(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	for (int64_t i = 0; i < n / TK_QK_K; i++, b += Q6K_BYTES) {
		const float d = rd16(b + 208);
		const int8_t *sc = (const int8_t *)(b + 192);
		float *y = dst + i * TK_QK_K;
		/* (d * scale) * (q - 32), in that order, as ggml evaluates it */
		for (int e = 0; e < TK_QK_K; e++)
			y[e] = d * (float)sc[e / 16] * (float)(q6k_code(b, e) - 32);
	}
}

/* Q6_K's quantizer is tk_quant_q6_k_from_float (quant_k.c): llama-quantize's
 * least-squares scale search, the same bytes as its files. */

/* x: Q6_K row, y: Q8_K row. Per super-block, exact integers as llama.cpp's
 * CPU kernels compute them: the codes are used unsigned (0..63) and the -32
 * offset is folded in through the activations' block sums,
 *     sumi = sum_s scales[s] * (sum_{j in s} q_j * y_j - 32 * bsums[s])
 *          = sum_s scales[s] * sum_{j in s} (q_j - 32) * y_j,
 * (|sumi| < 2^28, no overflow), then sum += (d_x * d_y) * sumi in float.
 * llama.cpp's AVX2 kernel splits sumi into 8 lanes and adds each lane's
 * product in float (FMA), so its result can differ from this one by an ulp
 * or so of each block's magnitude. */
static void q6_k_vec_dot(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sum = 0.0f;
	for (int64_t i = 0; i < n / TK_QK_K; i++, x += Q6K_BYTES, y += Q8K_BYTES) {
		const int8_t *sc = (const int8_t *)(x + 192);
		const int8_t *yq = (const int8_t *)(y + 4);
		int32_t sumi = 0;
		for (int s = 0; s < 16; s++) {
			int32_t dot = 0;
			for (int j = 16 * s; j < 16 * s + 16; j++)
				dot += q6k_code(x, j) * yq[j];
			const int16_t bsum = (int16_t)(uint16_t)(y[4 + 256 + 2 * s] |
							       y[4 + 256 + 2 * s + 1] << 8);
			sumi += sc[s] * (dot - 32 * bsum);
		}
		sum += (rd16(x + 208) * rdf32(y)) * (float)sumi;
	}
	*out = sum;
}

/* ================= the table ================= */

#define LAYOUT(id, nm, bs, ts, q) [id] = { .name = nm, .blck_size = bs, .type_size = ts, .is_quantized = q, .vec_dot_type = id }
#define KERNELS(id, nm, bs, ts, q, pre, vdt) \
	[id] = { .name = nm, .blck_size = bs, .type_size = ts, .is_quantized = q, \
		 .to_float = pre##_to_float, .from_float = pre##_from_float, \
		 .vec_dot = pre##_vec_dot, .vec_dot_type = vdt }

static const struct tk_type_traits ref_traits[TK_TYPE_COUNT] = {
	KERNELS(TK_TYPE_F32, "f32", 1, 4, false, f32, TK_TYPE_F32),
	KERNELS(TK_TYPE_F16, "f16", 1, 2, false, f16, TK_TYPE_F16),
	KERNELS(TK_TYPE_BF16, "bf16", 1, 2, false, bf16, TK_TYPE_BF16),
	KERNELS(TK_TYPE_Q4_0, "q4_0", 32, 18, true, q4_0, TK_TYPE_Q8_0),
	KERNELS(TK_TYPE_Q4_1, "q4_1", 32, 20, true, q4_1, TK_TYPE_Q8_1),
	KERNELS(TK_TYPE_Q5_0, "q5_0", 32, 22, true, q5_0, TK_TYPE_Q8_0),
	KERNELS(TK_TYPE_Q5_1, "q5_1", 32, 24, true, q5_1, TK_TYPE_Q8_1),
	KERNELS(TK_TYPE_Q8_0, "q8_0", 32, 34, true, q8_0, TK_TYPE_Q8_0),
	/* Q8_1 is an activation encoding only: no vec_dot of its own */
	[TK_TYPE_Q8_1] = { .name = "q8_1", .blck_size = 32, .type_size = 36, .is_quantized = true,
			   .to_float = q8_1_to_float, .from_float = q8_1_from_float,
			   .vec_dot_type = TK_TYPE_Q8_1 },
	[TK_TYPE_Q6_K] = { .name = "q6_K", .blck_size = 256, .type_size = 210, .is_quantized = true,
			   .to_float = q6_k_to_float, .from_float = tk_quant_q6_k_from_float,
			   .vec_dot = q6_k_vec_dot, .vec_dot_type = TK_TYPE_Q8_K },
	/* Q8_K is an activation encoding only, like Q8_1 */
	[TK_TYPE_Q8_K] = { .name = "q8_K", .blck_size = 256, .type_size = 292, .is_quantized = true,
			   .to_float = q8_k_to_float, .from_float = q8_k_from_float,
			   .vec_dot_type = TK_TYPE_Q8_K },
	/* K-quants and IQ4_NL: reference kernels in quant_k.c */
	KERNELS(TK_TYPE_Q2_K, "q2_K", 256, 84, true, tk_quant_q2_k, TK_TYPE_Q8_K),
	KERNELS(TK_TYPE_Q3_K, "q3_K", 256, 110, true, tk_quant_q3_k, TK_TYPE_Q8_K),
	KERNELS(TK_TYPE_Q4_K, "q4_K", 256, 144, true, tk_quant_q4_k, TK_TYPE_Q8_K),
	KERNELS(TK_TYPE_Q5_K, "q5_K", 256, 176, true, tk_quant_q5_k, TK_TYPE_Q8_K),
	KERNELS(TK_TYPE_IQ4_NL, "iq4_nl", 32, 18, true, tk_quant_iq4_nl, TK_TYPE_Q8_0),
	/* layouts only */
	LAYOUT(TK_TYPE_IQ2_XXS, "iq2_xxs", 256, 66, true),
	LAYOUT(TK_TYPE_IQ2_XS, "iq2_xs", 256, 74, true),
	LAYOUT(TK_TYPE_IQ3_XXS, "iq3_xxs", 256, 98, true),
	LAYOUT(TK_TYPE_IQ1_S, "iq1_s", 256, 50, true),
	LAYOUT(TK_TYPE_IQ3_S, "iq3_s", 256, 110, true),
	LAYOUT(TK_TYPE_IQ2_S, "iq2_s", 256, 82, true),
	LAYOUT(TK_TYPE_IQ4_XS, "iq4_xs", 256, 136, true),
	LAYOUT(TK_TYPE_I8, "i8", 1, 1, false),
	LAYOUT(TK_TYPE_I16, "i16", 1, 2, false),
	LAYOUT(TK_TYPE_I32, "i32", 1, 4, false),
	LAYOUT(TK_TYPE_I64, "i64", 1, 8, false),
	LAYOUT(TK_TYPE_F64, "f64", 1, 8, false),
	LAYOUT(TK_TYPE_IQ1_M, "iq1_m", 256, 56, true),
	LAYOUT(TK_TYPE_TQ1_0, "tq1_0", 256, 54, true),
	LAYOUT(TK_TYPE_TQ2_0, "tq2_0", 256, 66, true),
	LAYOUT(TK_TYPE_MXFP4, "mxfp4", 32, 17, true),
};

/* ================= active variants ================= */
/* Same results as the reference kernels, bit for bit, only faster. */

/* Every half's float value, indexed by its bit pattern (256 KiB), filled
 * once by quant_select(): replaces the branchy conversion in the F16 hot
 * loops. Exact, so results do not change. */
static float f16_table[65536];

static void f16_to_float_table(const void *src, float *dst, int64_t n)
{
	const uint8_t *s = src;
	for (int64_t i = 0; i < n; i++)
		dst[i] = f16_table[s[2 * i] | s[2 * i + 1] << 8];
}

static void f16_vec_dot_table(int64_t n, float *out, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)(f16_table[x[2 * i] | x[2 * i + 1] << 8] *
				f16_table[y[2 * i] | y[2 * i + 1] << 8]);
	*out = (float)sum;
}

static struct tk_type_traits active[TK_TYPE_COUNT];
static int active_isa = TK_QUANT_ISA_REF;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* The portable table (with the F16 lookup-table kernels), then the best SIMD
 * variant this CPU runs (quant_simd.h: cpu.h's features, capped by
 * TANUKI_NO_AVX512 / TANUKI_NO_AVX2); tk_type_traits_ref() keeps the
 * portable kernels. */
static void quant_select(void)
{
	memcpy(active, ref_traits, sizeof active);
	for (uint32_t h = 0; h < 65536; h++)
		f16_table[h] = tk_fp16_to_fp32((uint16_t)h);
	active[TK_TYPE_F16].to_float = f16_to_float_table;
	active[TK_TYPE_F16].vec_dot = f16_vec_dot_table;
	const int isa = tk_quant_isa_choose();
	if (isa != TK_QUANT_ISA_REF && tk_quant_isa_apply(isa, active) == 0)
		active_isa = isa;
}

int tk_quant_isa_active(void)
{
	tk_quant_init();
	return active_isa;
}

void tk_quant_init(void)
{
	pthread_once(&init_once, quant_select);
}

const struct tk_type_traits *tk_type_traits_ref(int t)
{
	if (t < 0 || t >= TK_TYPE_COUNT || !ref_traits[t].name)
		return NULL;
	return &ref_traits[t];
}

const struct tk_type_traits *tk_type_traits(int t)
{
	if (t < 0 || t >= TK_TYPE_COUNT || !ref_traits[t].name)
		return NULL;
	tk_quant_init();
	return &active[t];
}

const char *tk_type_name(int t)
{
	const struct tk_type_traits *tr = tk_type_traits_ref(t);
	return tr ? tr->name : "unknown";
}

int tk_type_from_name(const char *name)
{
	if (!name)
		return -1;
	for (int t = 0; t < TK_TYPE_COUNT; t++)
		if (ref_traits[t].name && !strcasecmp(ref_traits[t].name, name))
			return t;
	return -1;
}

bool tk_type_can_compute(int t)
{
	const struct tk_type_traits *tr = tk_type_traits(t);
	if (!tr || !tr->to_float || !tr->from_float || !tr->vec_dot)
		return false;
	const struct tk_type_traits *vt = tk_type_traits(tr->vec_dot_type);
	return vt && vt->from_float;
}

int tk_type_row_size(int t, int64_t n, size_t *out)
{
	const struct tk_type_traits *tr = tk_type_traits_ref(t);
	if (!tr)
		return tk_errf(TK_EINVAL, "unknown tensor type id %d", t);
	if (n <= 0 || n % tr->blck_size)
		return tk_errf(TK_EINVAL, "row of %lld elements: not a positive multiple of %s's block size %lld",
			       (long long)n, tr->name, (long long)tr->blck_size);
	size_t sz;
	if (__builtin_mul_overflow((uint64_t)(n / tr->blck_size), (uint64_t)tr->type_size, &sz))
		return tk_errf(TK_EINVAL, "row of %lld %s elements: size overflows", (long long)n,
			       tr->name);
	*out = sz;
	return 0;
}
