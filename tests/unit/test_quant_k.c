/* test_quant_k.c — the K-quants Q2_K, Q3_K, Q4_K, Q5_K and IQ4_NL
 * (src/engine/quant_k.c): hand-packed blocks decode to the values the
 * layouts in quant.h define; dequantize(quantize(x)) stays within each
 * type's RMS error bound on random and structured inputs of awkward sizes;
 * zero, constant, huge and tiny blocks; NaN/inf input is defined behaviour;
 * vec_dot against the float dot of the dequantized operands; and our
 * quantizers reproduce llama-quantize's bytes on the fixture models (and
 * llama.cpp's file decodes within the bound against its f32 source). */
#include "testutil.h"

#include "core/err.h"
#include "engine/fp16.h"
#include "engine/gguf.h"
#include "engine/quant.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- deterministic random numbers (xorshift64*, Box-Muller) ---- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rng_u64(void) { return tk_test_rng_u64(&rng_state); }

static double rng_unit(void) /* (0, 1) */
{
	return ((double)(rng_u64() >> 11) + 0.5) / 9007199254740992.0;
}

static float rng_normal(void)
{
	return (float)(sqrt(-2.0 * log(rng_unit())) * cos(6.283185307179586 * rng_unit()));
}

/* Input shapes: the random ones set the RMS bounds; the structured ones
 * (ramps, a sine, blocks of mixed magnitude, sparse spikes) must meet them
 * too. */
enum dist { D_NORMAL, D_UNIFORM, D_OUTLIERS, D_POSITIVE, D_RAMP, D_SINE, D_MIXED, D_SPARSE,
	    D_COUNT };
static const char *const dist_name[] = { "normal", "uniform", "outliers", "positive",
					 "ramp",   "sine",    "mixed",    "sparse" };

static void fill(float *x, int64_t n, enum dist d, float scale)
{
	for (int64_t i = 0; i < n; i++) {
		float v = 0;
		switch (d) {
		case D_NORMAL: v = rng_normal(); break;
		case D_UNIFORM: v = (float)(rng_unit() * 2.0 - 1.0); break;
		case D_OUTLIERS: v = rng_normal() * ((rng_u64() % 17 == 0) ? 20.0f : 1.0f); break;
		case D_POSITIVE: v = 3.0f + (float)rng_unit(); break;
		case D_RAMP: v = (float)(i % 97) / 48.0f - 1.0f; break;
		case D_SINE: v = (float)sin((double)i * 0.37); break;
		case D_MIXED: v = rng_normal() * ((i / 32) % 3 == 0 ? 0.01f : 1.0f); break;
		case D_SPARSE: v = (rng_u64() % 9 == 0) ? rng_normal() : 0.0f; break;
		default: break;
		}
		x[i] = v * scale;
	}
}

static const int k_types[] = { TK_TYPE_Q2_K, TK_TYPE_Q3_K, TK_TYPE_Q4_K, TK_TYPE_Q5_K,
			       TK_TYPE_IQ4_NL };
#define N_TYPES (sizeof k_types / sizeof k_types[0])

/* Relative RMS error bound sqrt(sum e^2 / sum x^2) per type: one for the
 * light-tailed inputs (normal, uniform, positive, ramp, sine, mixed) and one
 * for the heavy-tailed ones (outliers, sparse: a few large values stretch
 * the grid). Each is the worst case this test measured (it prints them;
 * docs/engine.md records them) plus 20%:
 *            light   heavy
 *   q2_K     0.336   0.489
 *   q3_K     0.158   0.154
 *   q4_K     0.0747  0.106
 *   q5_K     0.0401  0.0584
 *   iq4_nl   0.0817  0.129
 * A quantizer that loses its scale search drifts past them. */
static double rms_bound(int t, bool heavy)
{
	switch (t) {
	case TK_TYPE_Q2_K: return heavy ? 0.59 : 0.40;
	case TK_TYPE_Q3_K: return 0.19;
	case TK_TYPE_Q4_K: return heavy ? 0.127 : 0.09;
	case TK_TYPE_Q5_K: return heavy ? 0.07 : 0.048;
	case TK_TYPE_IQ4_NL: return heavy ? 0.155 : 0.098;
	default: return 0;
	}
}

static double worst_rms[2][TK_TYPE_COUNT];

/* Quantizes and dequantizes x[n]; returns the relative RMS error and checks
 * every output is finite. */
static double roundtrip(int type, const float *x, int64_t n, float *y)
{
	const struct tk_type_traits *tr = tk_type_traits(type);
	size_t bytes;
	assert_int_equal(tk_type_row_size(type, n, &bytes), 0);
	uint8_t *q = malloc(bytes);
	assert_non_null(q);
	tr->from_float(x, q, n);
	tr->to_float(q, y, n);
	double se = 0, sx = 0;
	for (int64_t i = 0; i < n; i++) {
		if (!isfinite(y[i]))
			fail_msg("%s n=%lld: element %lld decodes to %g", tr->name, (long long)n,
				 (long long)i, (double)y[i]);
		se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
		sx += (double)x[i] * x[i];
	}
	free(q);
	return sx > 0 ? sqrt(se / sx) : sqrt(se);
}

/* one super-block, two, an odd count, and a long row (IQ4_NL: also a single
 * 32-element block and an odd number of them) */
static const int64_t sizes[] = { 256, 512, 256 * 7, 4096 };

static void test_roundtrip_rms(void **state)
{
	(void)state;
	for (size_t t = 0; t < N_TYPES; t++) {
		const int type = k_types[t];
		for (size_t s = 0; s < sizeof sizes / sizeof sizes[0] + 2; s++) {
			int64_t n = s < 4 ? sizes[s] : s == 4 ? 32 : 32 * 13;
			if (n % tk_type_traits(type)->blck_size)
				continue;
			float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
			assert_true(x && y);
			for (int d = 0; d < D_COUNT; d++) {
				fill(x, n, (enum dist)d, 0.05f);
				const bool heavy = d == D_OUTLIERS || d == D_SPARSE;
				double r = roundtrip(type, x, n, y);
				if (r > worst_rms[heavy][type])
					worst_rms[heavy][type] = r;
				if (!(r <= rms_bound(type, heavy)))
					fail_msg("%s n=%lld %s: rms rel error %.4g > bound %.4g",
						 tk_type_name(type), (long long)n, dist_name[d], r,
						 rms_bound(type, heavy));
			}
			free(x);
			free(y);
		}
		printf("%-7s worst rms rel error: light-tailed %.4g (bound %.4g), heavy-tailed "
		       "%.4g (bound %.4g)\n", tk_type_name(type), worst_rms[0][type],
		       rms_bound(type, false), worst_rms[1][type], rms_bound(type, true));
	}
	fflush(stdout);
}

/* All-zero blocks decode to exact zeros; constant blocks (positive and
 * negative) within 1% of the constant; huge (1e3) and tiny (1e-3) magnitudes
 * keep the normal bound; values so small that the half scale underflows
 * (1e-7) decode finite with error at most the input's magnitude. */
static void test_special_blocks(void **state)
{
	(void)state;
	const int64_t n = 512;
	float x[512], y[512];
	for (size_t t = 0; t < N_TYPES; t++) {
		const int type = k_types[t];
		memset(x, 0, sizeof x);
		roundtrip(type, x, n, y);
		for (int i = 0; i < n; i++)
			assert_true(y[i] == 0.0f);
		const float consts[] = { 0.375f, -0.375f, 1000.0f, -2e-3f };
		for (size_t c = 0; c < 4; c++) {
			for (int i = 0; i < n; i++)
				x[i] = consts[c];
			roundtrip(type, x, n, y);
			for (int i = 0; i < n; i++)
				if (!(fabsf(y[i] - x[i]) <= 0.01f * fabsf(x[i])))
					fail_msg("%s constant %g decodes to %g", tk_type_name(type),
						 (double)x[i], (double)y[i]);
		}
		const float mags[] = { 1e3f, 1e-3f };
		for (size_t m = 0; m < 2; m++) {
			fill(x, n, D_NORMAL, mags[m]);
			double r = roundtrip(type, x, n, y);
			if (!(r <= rms_bound(type, false)))
				fail_msg("%s at magnitude %g: rms %g", tk_type_name(type), (double)mags[m], r);
		}
		fill(x, n, D_NORMAL, 1e-7f);
		roundtrip(type, x, n, y);
		for (int i = 0; i < n; i++)
			assert_true(fabsf(y[i] - x[i]) <= fabsf(x[i]) * 1.01f + 1e-9f);
	}
}

/* NaN and inf in the input are defined behaviour (UBSan would object to a
 * float -> int conversion out of range); the other blocks of the row are
 * unaffected. */
static void test_nonfinite_input(void **state)
{
	(void)state;
	const int64_t n = 768;
	float x[768], y[768], ref[768];
	uint8_t q[768 * 2];
	const float bad[] = { NAN, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX };
	for (size_t t = 0; t < N_TYPES; t++) {
		const struct tk_type_traits *tr = tk_type_traits(k_types[t]);
		for (size_t b = 0; b < 5; b++) {
			fill(x, n, D_NORMAL, 0.1f);
			tr->from_float(x, q, n);
			tr->to_float(q, ref, n);
			x[300] = bad[b];
			x[301] = bad[(b + 1) % 5];
			tr->from_float(x, q, n);
			tr->to_float(q, y, n);
			/* block 0 (0..255) and the last (512..767) untouched */
			assert_memory_equal(y, ref, 256 * sizeof(float));
			assert_memory_equal(y + 512, ref + 512, 256 * sizeof(float));
		}
	}
}

/* ---- hand-packed blocks (independent of quant_k.c: packed from the layout
 * comments in quant.h) ---- */

static void put16(uint8_t *p, uint16_t h)
{
	p[0] = (uint8_t)h;
	p[1] = (uint8_t)(h >> 8);
}

static const uint16_t H_D = 0x2c00;    /* 0.0625 */
static const uint16_t H_DMIN = 0x2400; /* 0.015625 */

static void test_known_blocks(void **state)
{
	(void)state;
	int q[256], sc[16], mn[16];
	float y[256];
	const float d = tk_fp16_to_fp32(H_D), dmin = tk_fp16_to_fp32(H_DMIN);
	for (int rep = 0; rep < 20; rep++) {
		/* Q2_K: scales[s] = sc | mn << 4; code of e = 128h + 32k + l in
		 * qs[32h + l] bits 2k, 2k + 1 */
		uint8_t b2[84] = { 0 };
		for (int s = 0; s < 16; s++) {
			sc[s] = (int)(rng_u64() % 16);
			mn[s] = (int)(rng_u64() % 16);
			b2[s] = (uint8_t)(sc[s] | mn[s] << 4);
		}
		for (int e = 0; e < 256; e++) {
			q[e] = (int)(rng_u64() % 4);
			b2[16 + 32 * (e / 128) + e % 32] |= (uint8_t)(q[e] << (2 * ((e % 128) / 32)));
		}
		put16(b2 + 80, H_D);
		put16(b2 + 82, H_DMIN);
		tk_type_traits(TK_TYPE_Q2_K)->to_float(b2, y, 256);
		for (int e = 0; e < 256; e++)
			assert_true(y[e] == d * (float)sc[e / 16] * (float)q[e] - dmin * (float)mn[e / 16]);

		/* Q3_K: code c in -4..3 stored as c + 4: low 2 bits in qs,
		 * bit 2 in hmask[l] bit 4h + k; 6-bit scales S split 4 + 2 */
		uint8_t b3[110] = { 0 };
		for (int s = 0; s < 16; s++) {
			sc[s] = (int)(rng_u64() % 64);
			if (s < 8)
				b3[96 + s] |= (uint8_t)(sc[s] & 15);
			else
				b3[96 + s - 8] |= (uint8_t)((sc[s] & 15) << 4);
			b3[96 + 8 + s % 4] |= (uint8_t)((sc[s] >> 4) << (2 * (s / 4)));
		}
		for (int e = 0; e < 256; e++) {
			q[e] = (int)(rng_u64() % 8) - 4;
			const int u = q[e] + 4, h = e / 128, k = (e % 128) / 32, l = e % 32;
			b3[32 + 32 * h + l] |= (uint8_t)((u & 3) << (2 * k));
			if (u & 4)
				b3[l] |= (uint8_t)(1u << (4 * h + k));
		}
		put16(b3 + 108, H_D);
		tk_type_traits(TK_TYPE_Q3_K)->to_float(b3, y, 256);
		for (int e = 0; e < 256; e++)
			assert_true(y[e] == d * (float)(sc[e / 16] - 32) * (float)q[e]);

		/* Q4_K / Q5_K: 6-bit scale and min per 32, "scale-min k4" */
		for (int five = 0; five < 2; five++) {
			uint8_t b[176] = { 0 };
			uint8_t *scb = b + 4, *qs = b + (five ? 48 : 16), *qh = b + 16;
			for (int j = 0; j < 8; j++) {
				sc[j] = (int)(rng_u64() % 64);
				mn[j] = (int)(rng_u64() % 64);
				if (j < 4) {
					scb[j] |= (uint8_t)sc[j];
					scb[j + 4] |= (uint8_t)mn[j];
				} else {
					scb[j + 4] |= (uint8_t)((sc[j] & 15) | (mn[j] & 15) << 4);
					scb[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
					scb[j] |= (uint8_t)((mn[j] >> 4) << 6);
				}
			}
			for (int e = 0; e < 256; e++) {
				q[e] = (int)(rng_u64() % (five ? 32 : 16));
				const int g = e / 64, t = (e % 64) / 32, l = e % 32;
				qs[32 * g + l] |= (uint8_t)((q[e] & 15) << (4 * t));
				if (q[e] & 16)
					qh[l] |= (uint8_t)(1u << (2 * g + t));
			}
			put16(b, H_D);
			put16(b + 2, H_DMIN);
			tk_type_traits(five ? TK_TYPE_Q5_K : TK_TYPE_Q4_K)->to_float(b, y, 256);
			for (int e = 0; e < 256; e++)
				assert_true(y[e] == d * (float)sc[e / 32] * (float)q[e] -
							    dmin * (float)mn[e / 32]);
		}

		/* IQ4_NL: nibble i / i + 16 index the fixed level table */
		static const int levels[16] = { -127, -104, -83, -65, -49, -35, -22, -10,
						1,    13,   25,  38,  53,  69,  89,  113 };
		uint8_t bn[18] = { 0 };
		put16(bn, H_D);
		for (int j = 0; j < 32; j++) {
			q[j] = (int)(rng_u64() % 16);
			bn[2 + j % 16] |= (uint8_t)(q[j] << (j < 16 ? 0 : 4));
		}
		tk_type_traits(TK_TYPE_IQ4_NL)->to_float(bn, y, 32);
		for (int j = 0; j < 32; j++)
			assert_true(y[j] == d * (float)levels[q[j]]);
	}
}

/* The quantizer's choices on simple blocks: a Q4_K ramp 0..15 * 0.25 is
 * exact (min 0, one sub-block scale); the largest IQ4_NL element maps to the
 * -127 level with d = -max / 127 when that fits best. */
static void test_quantizer_choices(void **state)
{
	(void)state;
	float x[256], y[256];
	uint8_t q[176];
	for (int e = 0; e < 256; e++)
		x[e] = 0.25f * (float)(e % 16);
	const struct tk_type_traits *t4 = tk_type_traits(TK_TYPE_Q4_K);
	t4->from_float(x, q, 256);
	t4->to_float(q, y, 256);
	for (int e = 0; e < 256; e++)
		assert_true(fabsf(y[e] - x[e]) <= 3.75f * 0x1p-10f);
	/* every code is the element's position in the ramp */
	for (int e = 0; e < 256; e++)
		assert_int_equal(q[16 + 32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32)) & 15, e % 16);
	/* IQ4_NL: elements exactly on the levels times 0.5 */
	static const int levels[16] = { -127, -104, -83, -65, -49, -35, -22, -10,
					1,    13,   25,  38,  53,  69,  89,  113 };
	for (int j = 0; j < 32; j++)
		x[j] = 0.5f * (float)levels[j % 16];
	tk_type_traits(TK_TYPE_IQ4_NL)->from_float(x, q, 32);
	tk_type_traits(TK_TYPE_IQ4_NL)->to_float(q, y, 32);
	for (int j = 0; j < 32; j++) {
		assert_int_equal(j < 16 ? q[2 + j] & 15 : q[2 + j - 16] >> 4, j % 16);
		assert_true(y[j] == x[j]);
	}
}

/* ---- vec_dot ---- */

/* vec_dot(x, y) against the double dot of to_float(x) and to_float(y): the
 * kernels compute exact integer sums per block, so only float rounding of
 * the per-block products separates them. */
static void check_vec_dot(int type, int64_t n, enum dist dx)
{
	const struct tk_type_traits *tr = tk_type_traits(type);
	const struct tk_type_traits *vt = tk_type_traits(tr->vec_dot_type);
	size_t bx, by;
	assert_int_equal(tk_type_row_size(type, n, &bx), 0);
	assert_int_equal(tk_type_row_size(tr->vec_dot_type, n, &by), 0);
	float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
	float *xd = malloc((size_t)n * 4), *yd = malloc((size_t)n * 4);
	uint8_t *xq = malloc(bx), *yq = malloc(by);
	assert_true(x && y && xd && yd && xq && yq);
	fill(x, n, dx, 0.05f);
	fill(y, n, D_OUTLIERS, 1.0f);
	tr->from_float(x, xq, n);
	vt->from_float(y, yq, n);
	tr->to_float(xq, xd, n);
	vt->to_float(yq, yd, n);
	double ref = 0, mag = 0;
	for (int64_t i = 0; i < n; i++) {
		ref += (double)xd[i] * yd[i];
		mag += fabs((double)xd[i] * yd[i]);
	}
	float got;
	tr->vec_dot(n, &got, xq, yq);
	const double tol = 1e-5 * mag + 1e-30;
	if (!(fabs(got - ref) <= tol))
		fail_msg("%s n=%lld %s: vec_dot %.9g, dequantized dot %.9g (tol %g)", tr->name,
			 (long long)n, dist_name[dx], (double)got, ref, tol);
	/* the reference table's kernel is the same function or an equal one */
	float got_ref;
	tk_type_traits_ref(type)->vec_dot(n, &got_ref, xq, yq);
	assert_true(fabsf(got_ref - got) <= 1e-5 * mag + 1e-30);
	free(x);
	free(y);
	free(xd);
	free(yd);
	free(xq);
	free(yq);
}

static void test_vec_dot(void **state)
{
	(void)state;
	for (size_t t = 0; t < N_TYPES; t++) {
		const struct tk_type_traits *tr = tk_type_traits(k_types[t]);
		assert_true(tk_type_can_compute(k_types[t]));
		assert_int_equal(tr->vec_dot_type,
				 k_types[t] == TK_TYPE_IQ4_NL ? TK_TYPE_Q8_0 : TK_TYPE_Q8_K);
		for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
			for (int d = 0; d < D_COUNT; d++)
				check_vec_dot(k_types[t], sizes[s], (enum dist)d);
		if (k_types[t] == TK_TYPE_IQ4_NL) {
			check_vec_dot(TK_TYPE_IQ4_NL, 32, D_NORMAL);
			check_vec_dot(TK_TYPE_IQ4_NL, 32 * 13, D_UNIFORM);
		}
	}
	/* quantized dot vs the exact float dot, within both operands' errors */
	const int64_t n = 1024;
	static float x[1024], y[1024], xd[1024], yd[1024];
	static uint8_t xq[4 * 292], yq[4 * 292];
	for (size_t t = 0; t < N_TYPES; t++) {
		const struct tk_type_traits *tr = tk_type_traits(k_types[t]);
		const struct tk_type_traits *vt = tk_type_traits(tr->vec_dot_type);
		for (int rep = 0; rep < 10; rep++) {
			fill(x, n, D_NORMAL, 0.05f);
			fill(y, n, rep % 2 ? D_NORMAL : D_OUTLIERS, 1.0f);
			tr->from_float(x, xq, n);
			vt->from_float(y, yq, n);
			tr->to_float(xq, xd, n);
			vt->to_float(yq, yd, n);
			double exact = 0, bound = 0;
			for (int64_t i = 0; i < n; i++) {
				exact += (double)x[i] * y[i];
				double ex = fabs(xd[i] - x[i]), ey = fabs(yd[i] - y[i]);
				bound += ex * fabs(y[i]) + ey * fabs(x[i]) + ex * ey +
					 fabs(x[i] * y[i]) * 1e-5;
			}
			float got;
			tr->vec_dot(n, &got, xq, yq);
			if (!(fabs(got - exact) <= bound + 1e-12))
				fail_msg("%s: dot %g vs exact %g, bound %g", tr->name, (double)got, exact,
					 bound);
		}
	}
}

/* ---- llama-quantize's files ---- */

/* tests/fixtures/models/tiny-{llama,qwen2}-Q4_K_M.gguf and
 * tiny-llama-Q5_K_M.gguf were written by llama.cpp's llama-quantize from the
 * f32 models next to them. Every quantized tensor in them (Q4_K or Q5_K,
 * and Q6_K) must equal what our from_float makes of the f32 tensor, byte
 * for byte; and decoding their Q4_K/Q5_K tensors must give the f32 values
 * within the type's RMS bound. */
static void test_matches_llama_quantize(void **state)
{
	(void)state;
	const char *pairs[][2] = { { "tiny-llama-f32", "tiny-llama-Q4_K_M" },
				   { "tiny-llama-f32", "tiny-llama-Q5_K_M" },
				   { "tiny-qwen2-f32", "tiny-qwen2-Q4_K_M" } };
	for (size_t k = 0; k < 3; k++) {
		char path[1024];
		snprintf(path, sizeof path, "%s/models/%s.gguf", TK_FIXTURES, pairs[k][0]);
		struct tk_gguf *f32 = tk_gguf_open(path);
		if (!f32)
			fail_msg("%s: %s", path, tk_err_detail());
		snprintf(path, sizeof path, "%s/models/%s.gguf", TK_FIXTURES, pairs[k][1]);
		struct tk_gguf *q = tk_gguf_open(path);
		if (!q)
			fail_msg("%s: %s", path, tk_err_detail());
		size_t same = 0, decoded = 0;
		for (size_t i = 0; i < tk_gguf_tensor_count(q); i++) {
			const struct tk_gguf_tensor *t = tk_gguf_tensor_at(q, i);
			if (t->type == TK_TYPE_F32)
				continue;
			const struct tk_gguf_tensor *s = tk_gguf_find_tensor(f32, t->name);
			assert_non_null(s);
			assert_int_equal(s->type, TK_TYPE_F32);
			const size_t n = (size_t)t->n_elements;
			const struct tk_type_traits *tr = tk_type_traits(t->type);
			float *src = malloc(n * 4), *y = malloc(n * 4);
			uint8_t *ours = malloc(t->nbytes);
			assert_true(src && y && ours);
			memcpy(src, s->data, n * 4);
			tr->to_float(t->data, y, (int64_t)n);
			double se = 0, sx = 0;
			for (size_t j = 0; j < n; j++) {
				se += ((double)y[j] - src[j]) * ((double)y[j] - src[j]);
				sx += (double)src[j] * src[j];
			}
			if (t->type == TK_TYPE_Q4_K || t->type == TK_TYPE_Q5_K) {
				const double r = sqrt(se / sx);
				if (!(r <= rms_bound(t->type, false)))
					fail_msg("%s %s: llama.cpp's %s decodes with rms %g", pairs[k][1],
						 t->name, tr->name, r);
				decoded++;
			}
			/* Q6_K too: its quantizer (quant_k.c) is llama-quantize's */
			tr->from_float(src, ours, (int64_t)n);
			if (memcmp(ours, t->data, t->nbytes))
				fail_msg("%s: tensor %s (%s) differs from llama-quantize's", pairs[k][1],
					 t->name, tr->name);
			same++;
			free(src);
			free(y);
			free(ours);
		}
		printf("%s: %zu quantized tensors equal llama-quantize's bytes\n", pairs[k][1], same);
		assert_int_equal(same, 16); /* every 2-D weight */
		assert_int_equal(decoded, 13); /* all but the three Q6_K ones */
		tk_gguf_close(q);
		tk_gguf_close(f32);
	}
	fflush(stdout);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_blocks),
		cmocka_unit_test(test_quantizer_choices),
		cmocka_unit_test(test_roundtrip_rms),
		cmocka_unit_test(test_special_blocks),
		cmocka_unit_test(test_nonfinite_input),
		cmocka_unit_test(test_vec_dot),
		cmocka_unit_test(test_matches_llama_quantize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
