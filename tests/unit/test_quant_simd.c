/* test_quant_simd.c — the SIMD kernel variants (quant_simd.h) against the
 * portable reference kernels (tk_type_traits_ref), variant by variant (every
 * variant this CPU runs is tested directly, not only the one dispatch picks;
 * the others are skipped with a message), plus CPU detection and the
 * TANUKI_NO_AVX512 / TANUKI_NO_AVX2 overrides.
 *
 * Whatever kernel a variant installs in place of the reference one is
 * checked, so new kernels are covered without touching this file:
 *   from_float  bytes identical to the reference quantizer, on random rows,
 *               extreme magnitudes, ties, zeros, inf and NaN;
 *   to_float    values identical;
 *   vec_dot     within float rounding of the reference on random rows of
 *               awkward lengths (one block, odd block counts, 2048/5632/8960),
 *               and exactly equal when every scale is 1 (the integer part
 *               is exact then); Q6_K always exactly equal (documented);
 *   avx512 = avx2 bit for bit for the quantized types (documented);
 *   vec_dot_tile every shape 1..4 x 1..4 with odd strides, within rounding
 *               of the reference and (quantized types) equal to the
 *               variant's own vec_dot bit for bit; cells outside the tile
 *               stay untouched. F16's tile takes float32 activations
 *               (quant.h).
 */
#include "testutil.h"

#include "core/err.h"
#include "engine/cpu.h"
#include "engine/fp16.h"
#include "engine/quant.h"
#include "engine/quant_simd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rng_u64(void) { return tk_test_rng_u64(&rng_state); }

static float rng_uniform(void) /* [-1, 1) */
{
	return (float)((double)(rng_u64() >> 11) / 4503599627370496.0 - 1.0);
}

static float rng_normal(void) { return tk_test_rng_normal(&rng_state); }


/* Where each block keeps its half-precision scales (byte offsets), so that
 * random bytes can be made into valid blocks with finite scales. Types not
 * listed get their weight rows from the reference quantizer only. */
static const struct {
	int type;
	int n_half;
	int off[2];
} half_fields[] = {
	{ TK_TYPE_Q4_0, 1, { 0 } },  { TK_TYPE_Q4_1, 2, { 0, 2 } }, { TK_TYPE_Q5_0, 1, { 0 } },
	{ TK_TYPE_Q5_1, 2, { 0, 2 } }, { TK_TYPE_Q8_0, 1, { 0 } },  { TK_TYPE_Q2_K, 2, { 80, 82 } },
	{ TK_TYPE_Q3_K, 1, { 108 } }, { TK_TYPE_Q4_K, 2, { 0, 2 } }, { TK_TYPE_Q5_K, 2, { 0, 2 } },
	{ TK_TYPE_Q6_K, 1, { 208 } }, { TK_TYPE_IQ4_NL, 1, { 0 } },
};

static int half_field_index(int type)
{
	for (size_t i = 0; i < sizeof half_fields / sizeof half_fields[0]; i++)
		if (half_fields[i].type == type)
			return (int)i;
	return -1;
}

static size_t row_bytes(int type, int64_t n)
{
	size_t b = 0;
	assert_int_equal(tk_type_row_size(type, n, &b), 0);
	return b;
}

static void fill_floats(float *x, int64_t n, int dist)
{
	for (int64_t i = 0; i < n; i++) {
		switch (dist) {
		case 0:
			x[i] = rng_normal();
			break;
		case 1: /* wildly varying magnitudes (scales stay within half range) */
			x[i] = rng_normal() * powf(10.0f, (float)(rng_u64() % 36) - 30.0f);
			break;
		case 2: /* mostly zeros, a few spikes */
			x[i] = rng_u64() % 13 == 0 ? rng_uniform() * 1000.0f : 0.0f;
			break;
		default: /* small integers and halves: rounding ties */
			x[i] = (float)((int)(rng_u64() % 255) - 127) * 0.5f;
			break;
		}
	}
}

/* A weight row of `type`: random bytes with valid scales (mode 0), or the
 * reference quantizer's encoding of random floats (mode 1). With unit_scale
 * every half scale is 1.0 (so dots are exact integer sums). */
static void make_weights(int type, void *dst, int64_t n, int mode, bool unit_scale)
{
	const struct tk_type_traits *rt = tk_type_traits_ref(type);
	uint8_t *b = dst;
	const size_t bytes = row_bytes(type, n);
	const int hf = half_field_index(type);
	if (type == TK_TYPE_F16 || type == TK_TYPE_BF16) {
		for (int64_t i = 0; i < n; i++) {
			const float v = rng_normal();
			const uint16_t h = type == TK_TYPE_F16 ? tk_fp32_to_fp16(v) : tk_fp32_to_bf16(v);
			memcpy(b + 2 * i, &h, 2);
		}
		return;
	}
	if (mode == 0 && hf >= 0) {
		for (size_t i = 0; i < bytes; i++)
			b[i] = (uint8_t)rng_u64();
		const size_t bsz = rt->type_size;
		for (size_t blk = 0; blk < bytes / bsz; blk++)
			for (int k = 0; k < half_fields[hf].n_half; k++) {
				const float s = unit_scale ? 1.0f : rng_normal() * 0.01f;
				const uint16_t h = tk_fp32_to_fp16(s);
				memcpy(b + blk * bsz + (size_t)half_fields[hf].off[k], &h, 2);
			}
		return;
	}
	float *x = tk_test_xmalloc((size_t)n * sizeof *x);
	fill_floats(x, n, 0);
	rt->from_float(x, dst, n);
	free(x);
}

/* An activation row of weight type `type`'s vec_dot_type, through the
 * reference quantizer (codes in -127..127, as every encoder makes them).
 * With unit_scale: random codes with scale 1 (and matching block sums). */
static void make_acts(int vtype, void *dst, int64_t n, int dist, bool unit_scale)
{
	const struct tk_type_traits *vt = tk_type_traits_ref(vtype);
	if (unit_scale && (vtype == TK_TYPE_Q8_0 || vtype == TK_TYPE_Q8_K)) {
		uint8_t *b = dst;
		const size_t bsz = vt->type_size;
		for (int64_t blk = 0; blk < n / vt->blck_size; blk++, b += bsz) {
			int8_t *qs = (int8_t *)(b + (vtype == TK_TYPE_Q8_0 ? 2 : 4));
			for (int j = 0; j < vt->blck_size; j++)
				qs[j] = (int8_t)((int)(rng_u64() % 255) - 127);
			if (vtype == TK_TYPE_Q8_0) {
				const uint16_t one = 0x3c00;
				memcpy(b, &one, 2);
			} else {
				const float one = 1.0f;
				memcpy(b, &one, 4);
				for (int s = 0; s < 16; s++) {
					int16_t sum = 0;
					for (int j = 0; j < 16; j++)
						sum = (int16_t)(sum + qs[16 * s + j]);
					memcpy(b + 260 + 2 * s, &sum, 2);
				}
			}
		}
		return;
	}
	float *x = tk_test_xmalloc((size_t)n * sizeof *x);
	/* half/bfloat16 activations: no magnitudes that overflow to inf */
	fill_floats(x, n, vt->is_quantized || dist != 1 ? dist : 0);
	vt->from_float(x, dst, n);
	free(x);
}

/* sum |x_i y_i| in double, from the reference decodings (y float32 when
 * y_f32). The tolerance of a float-summed dot scales with it. */
static double abs_dot(int type, const void *x, const void *y, int64_t n, bool y_f32)
{
	const struct tk_type_traits *rt = tk_type_traits_ref(type);
	float *xf = tk_test_xmalloc((size_t)n * sizeof *xf), *yf = tk_test_xmalloc((size_t)n * sizeof *yf);
	rt->to_float(x, xf, n);
	if (y_f32)
		memcpy(yf, y, (size_t)n * sizeof *yf);
	else
		tk_type_traits_ref(rt->vec_dot_type)->to_float(y, yf, n);
	double s = 0.0;
	for (int64_t i = 0; i < n; i++)
		s += fabs((double)xf[i] * (double)yf[i]);
	free(xf);
	free(yf);
	return s;
}

/* Reference of F16 weights x float32 activations: widened, summed in double. */
static float f16_f32_ref(const void *x, const float *y, int64_t n)
{
	float *xf = tk_test_xmalloc((size_t)n * sizeof *xf);
	tk_type_traits_ref(TK_TYPE_F16)->to_float(x, xf, n);
	double s = 0.0;
	for (int64_t i = 0; i < n; i++)
		s += (double)(xf[i] * y[i]);
	free(xf);
	return (float)s;
}

static void check_close(const char *what, int type, int64_t n, float got, float want, double scale)
{
	const double tol = 2e-6 * scale + 1e-30;
	if (got == want)
		return;
	if (!(fabs((double)got - (double)want) <= tol))
		fail_msg("%s %s n=%lld: got %.9g, reference %.9g (tol %.3g)", what, tk_type_name(type),
			 (long long)n, (double)got, (double)want, tol);
}

/* Types whose SIMD vec_dot is documented bit-identical to the reference. */
static bool exact_type(int type)
{
	return type == TK_TYPE_Q6_K;
}

/* Whether a variant's tile cells must equal its own vec_dot bit for bit
 * (documented for the quantized types, quant_avx2.c; F16's tile takes
 * float32 activations, so there is no such vec_dot). */
static bool tile_equals_dot(int type)
{
	return tk_type_traits_ref(type)->is_quantized;
}

/* Lengths to test for a block size. */
static int lengths(int64_t blck, int64_t *out)
{
	if (blck == 1) {
		const int64_t l[] = { 1, 7, 15, 16, 17, 33, 100, 257, 2048 + 3 };
		memcpy(out, l, sizeof l);
		return (int)(sizeof l / sizeof l[0]);
	}
	const int64_t m[] = { 1, 2, 3, 7 };
	int k = 0;
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
		out[k++] = m[i] * blck;
	const int64_t big[] = { 2048, 5632, 8960 };
	for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
		if (big[i] % blck == 0)
			out[k++] = big[i];
	return k;
}

/* ---- from_float / to_float ---- */

static void check_from_float(const struct tk_type_traits *tab, int type)
{
	const struct tk_type_traits *rt = tk_type_traits_ref(type);
	int64_t ns[16];
	const int nl = lengths(rt->blck_size, ns);
	for (int li = 0; li < nl; li++) {
		const int64_t n = ns[li];
		const size_t bytes = row_bytes(type, n);
		float *x = tk_test_xmalloc((size_t)n * sizeof *x);
		uint8_t *a = tk_test_xmalloc(bytes), *b = tk_test_xmalloc(bytes);
		/* the conversions (F16, BF16) also get every kind of float:
		 * random bit patterns (NaN payloads, infinities, all exponents),
		 * and multiples of 2^-25 up to 2^-14 in magnitude (binary16
		 * subnormals; the odd ones are ties between two of them) */
		const int n_dist = rt->is_quantized ? 7 : 9;
		for (int dist = 0; dist < n_dist; dist++) {
			if (dist == 7) {
				for (int64_t i = 0; i < n; i++) {
					const uint32_t u = (uint32_t)rng_u64();
					memcpy(&x[i], &u, sizeof u);
				}
			} else if (dist == 8) {
				for (int64_t i = 0; i < n; i++)
					x[i] = ldexpf((float)((int)(rng_u64() % 4096) - 2048), -25);
			} else if (dist < 4) {
				fill_floats(x, n, dist);
			} else if (dist == 6) { /* huge: scales overflow the half range */
				fill_floats(x, n, 1);
				for (int64_t i = 0; i < n; i++)
					x[i] *= 1e25f;
			} else if (dist == 4) { /* non-finite values sprinkled in */
				fill_floats(x, n, 0);
				for (int64_t i = 0; i < n; i += 5)
					x[i] = (i / 5) % 3 == 0 ? NAN : (i / 5) % 3 == 1 ? INFINITY : -0.0f;
			} else { /* ties: one extreme element, the rest at k + 0.5 units */
				for (int64_t i = 0; i < n; i++)
					x[i] = i % 32 == 0 ? 127.0f : (float)((int)(rng_u64() % 254) - 127) + 0.5f;
			}
			memset(a, 0xa5, bytes);
			memset(b, 0x5a, bytes);
			rt->from_float(x, a, n);
			tab[type].from_float(x, b, n);
			if (memcmp(a, b, bytes)) {
				size_t k = 0;
				while (a[k] == b[k])
					k++;
				fail_msg("from_float %s n=%lld dist %d: byte %zu is %u, reference %u",
					 rt->name, (long long)n, dist, k, b[k], a[k]);
			}
		}
		free(x);
		free(a);
		free(b);
	}
}

static void check_to_float(const struct tk_type_traits *tab, int type)
{
	const struct tk_type_traits *rt = tk_type_traits_ref(type);
	int64_t ns[16];
	const int nl = lengths(rt->blck_size, ns);
	for (int li = 0; li < nl; li++) {
		const int64_t n = ns[li];
		uint8_t *w = tk_test_xmalloc(row_bytes(type, n));
		float *a = tk_test_xmalloc((size_t)n * sizeof *a), *b = tk_test_xmalloc((size_t)n * sizeof *b);
		make_weights(type, w, n, 0, false);
		if (type == TK_TYPE_F16) /* every finite half, subnormals included */
			for (int64_t i = 0; i < n; i++) {
				uint16_t h = (uint16_t)rng_u64();
				if ((h & 0x7c00) == 0x7c00)
					h &= 0x83ff;
				memcpy(w + 2 * i, &h, 2);
			}
		rt->to_float(w, a, n);
		tab[type].to_float(w, b, n);
		for (int64_t i = 0; i < n; i++)
			if (memcmp(&a[i], &b[i], sizeof(float)))
				fail_msg("to_float %s n=%lld: element %lld is %.9g, reference %.9g",
					 rt->name, (long long)n, (long long)i, (double)b[i], (double)a[i]);
		free(w);
		free(a);
		free(b);
	}
}

/* ---- vec_dot and tiles ---- */

static void check_vec_dot(const struct tk_type_traits *tab, int type)
{
	const struct tk_type_traits *rt = tk_type_traits_ref(type);
	int64_t ns[16];
	const int nl = lengths(rt->blck_size, ns);
	for (int li = 0; li < nl; li++) {
		const int64_t n = ns[li];
		uint8_t *w = tk_test_xmalloc(row_bytes(type, n)), *y = tk_test_xmalloc(row_bytes(rt->vec_dot_type, n));
		for (int mode = 0; mode < 2; mode++) {
			for (int dist = 0; dist < 4; dist++) {
				make_weights(type, w, n, mode, false);
				make_acts(rt->vec_dot_type, y, n, dist, false);
				float want, got;
				rt->vec_dot(n, &want, w, y);
				tab[type].vec_dot(n, &got, w, y);
				if (exact_type(type) && memcmp(&got, &want, sizeof got))
					fail_msg("vec_dot %s n=%lld: %.9g, reference %.9g (must be equal)",
						 rt->name, (long long)n, (double)got, (double)want);
				check_close("vec_dot", type, n, got, want, abs_dot(type, w, y, n, false));
			}
		}
		/* unit scales: the float steps are exact, so must the integers be */
		if (n <= 1024 && half_field_index(type) >= 0) {
			make_weights(type, w, n, 0, true);
			make_acts(rt->vec_dot_type, y, n, 0, true);
			float want, got;
			rt->vec_dot(n, &want, w, y);
			tab[type].vec_dot(n, &got, w, y);
			if (want != got)
				fail_msg("vec_dot %s n=%lld unit scales: %.9g, reference %.9g", rt->name,
					 (long long)n, (double)got, (double)want);
		}
		free(w);
		free(y);
	}
}

#define PAD 7 /* odd extra bytes between rows: unaligned strides */
#define LDO 6

static void check_tile(const struct tk_type_traits *tab, int type)
{
	const struct tk_type_traits *rt = tk_type_traits_ref(type);
	const bool f32_acts = type == TK_TYPE_F16; /* quant.h: F16's tile takes float32 */
	const int vtype = f32_acts ? TK_TYPE_F32 : (int)rt->vec_dot_type;
	int64_t ns[16];
	const int nl = lengths(rt->blck_size, ns);
	for (int li = 0; li < nl; li++) {
		const int64_t n = ns[li];
		const size_t bx = row_bytes(type, n) + PAD, by = row_bytes(vtype, n) + PAD;
		uint8_t *x = tk_test_xmalloc(bx * TK_TILE_MAX), *y = tk_test_xmalloc(by * TK_TILE_MAX);
		for (int r = 0; r < TK_TILE_MAX; r++)
			make_weights(type, x + (size_t)r * bx, n, r & 1, false);
		for (int c = 0; c < TK_TILE_MAX; c++) {
			if (f32_acts) {
				float *yf = tk_test_xmalloc((size_t)n * sizeof *yf);
				fill_floats(yf, n, c & 1);
				memcpy(y + (size_t)c * by, yf, (size_t)n * sizeof *yf);
				free(yf);
			} else {
				make_acts(vtype, y + (size_t)c * by, n, c, false);
			}
		}
		float want[TK_TILE_MAX][TK_TILE_MAX], self[TK_TILE_MAX][TK_TILE_MAX];
		double scale[TK_TILE_MAX][TK_TILE_MAX];
		for (int r = 0; r < TK_TILE_MAX; r++) {
			for (int c = 0; c < TK_TILE_MAX; c++) {
				const uint8_t *xr = x + (size_t)r * bx, *yc = y + (size_t)c * by;
				if (f32_acts) {
					float *yf = tk_test_xmalloc((size_t)n * sizeof *yf);
					memcpy(yf, yc, (size_t)n * sizeof *yf);
					want[r][c] = f16_f32_ref(xr, yf, n);
					scale[r][c] = abs_dot(type, xr, yf, n, true);
					free(yf);
				} else {
					rt->vec_dot(n, &want[r][c], xr, yc);
					tab[type].vec_dot(n, &self[r][c], xr, yc);
					scale[r][c] = abs_dot(type, xr, yc, n, false);
				}
			}
		}
		for (int nr = 1; nr <= TK_TILE_MAX; nr++) {
			for (int nc = 1; nc <= TK_TILE_MAX; nc++) {
				float out[TK_TILE_MAX * LDO];
				for (int k = 0; k < TK_TILE_MAX * LDO; k++)
					out[k] = -12345.0f;
				tab[type].vec_dot_tile(n, out, LDO, x, bx, y, by, nr, nc);
				for (int c = 0; c < TK_TILE_MAX; c++) {
					for (int r = 0; r < LDO; r++) {
						const float got = out[c * LDO + r];
						if (c >= nc || r >= nr) {
							if (got != -12345.0f)
								fail_msg("tile %s %dx%d wrote outside: [%d][%d]",
									 rt->name, nr, nc, c, r);
							continue;
						}
						check_close("tile", type, n, got, want[r][c], scale[r][c]);
						if (tile_equals_dot(type) && memcmp(&got, &self[r][c], sizeof got))
							fail_msg("tile %s n=%lld %dx%d [%d][%d]: %.9g, its vec_dot %.9g",
								 rt->name, (long long)n, nr, nc, r, c, (double)got,
								 (double)self[r][c]);
					}
				}
			}
		}
		free(x);
		free(y);
	}
}

/* Every kernel tab replaces, checked. Returns how many were. */
static int check_table(const struct tk_type_traits *tab, const char *label)
{
	int checked = 0;
	for (int t = 0; t < TK_TYPE_COUNT; t++) {
		const struct tk_type_traits *rt = tk_type_traits_ref(t);
		if (!rt)
			continue;
		assert_int_equal(tab[t].vec_dot_type, rt->vec_dot_type);
		assert_int_equal(tab[t].blck_size, rt->blck_size);
		if (tab[t].from_float != rt->from_float) {
			assert_non_null(rt->from_float);
			check_from_float(tab, t);
			checked++;
		}
		if (tab[t].to_float != rt->to_float) {
			assert_non_null(rt->to_float);
			check_to_float(tab, t);
			checked++;
		}
		if (tab[t].vec_dot != rt->vec_dot) {
			assert_non_null(rt->vec_dot);
			check_vec_dot(tab, t);
			checked++;
		}
		if (tab[t].vec_dot_tile && tab[t].vec_dot_tile != rt->vec_dot_tile) {
			assert_non_null(rt->vec_dot);
			check_tile(tab, t);
			checked++;
		}
	}
	print_message("%s: %d kernels checked against the reference\n", label, checked);
	return checked;
}

static void test_variant(int isa)
{
	if (!tk_quant_isa_supported(isa)) {
		print_message("variant %s not supported on this CPU/build: skipped\n",
			      tk_quant_isa_name(isa));
		skip();
	}
	static struct tk_type_traits tab[TK_TYPE_COUNT];
	assert_int_equal(tk_quant_isa_traits(isa, tab), 0);
	assert_true(check_table(tab, tk_quant_isa_name(isa)) > 0);
}

static void test_avx2(void **state)
{
	(void)state;
	test_variant(TK_QUANT_ISA_AVX2);
}

static void test_avx512(void **state)
{
	(void)state;
	test_variant(TK_QUANT_ISA_AVX512);
}

/* Documented: for the quantized types, avx512 and avx2 give the same bits
 * (same lane sums, same float steps), so a model's logits do not depend on
 * which of the two a machine picks. */
static void test_avx512_equals_avx2(void **state)
{
	(void)state;
	if (!tk_quant_isa_supported(TK_QUANT_ISA_AVX512)) {
		print_message("avx512 not supported: skipped\n");
		skip();
	}
	static struct tk_type_traits t2[TK_TYPE_COUNT], t5[TK_TYPE_COUNT];
	assert_int_equal(tk_quant_isa_traits(TK_QUANT_ISA_AVX2, t2), 0);
	assert_int_equal(tk_quant_isa_traits(TK_QUANT_ISA_AVX512, t5), 0);
	int compared = 0;
	for (int t = 0; t < TK_TYPE_COUNT; t++) {
		const struct tk_type_traits *rt = tk_type_traits_ref(t);
		if (!rt || !rt->is_quantized || !rt->vec_dot || t2[t].vec_dot == rt->vec_dot)
			continue;
		const int64_t ns[] = { rt->blck_size, 3 * rt->blck_size, 8960 / rt->blck_size * rt->blck_size };
		for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
			const int64_t n = ns[k];
			const size_t bx = row_bytes(t, n), by = row_bytes(rt->vec_dot_type, n);
			uint8_t *x = tk_test_xmalloc(bx * 4), *y = tk_test_xmalloc(by * 4);
			for (int r = 0; r < 4; r++) {
				make_weights(t, x + (size_t)r * bx, n, 0, false);
				make_acts(rt->vec_dot_type, y + (size_t)r * by, n, r, false);
			}
			float a, b, ta[16], tb[16];
			t2[t].vec_dot(n, &a, x, y);
			t5[t].vec_dot(n, &b, x, y);
			if (memcmp(&a, &b, sizeof a))
				fail_msg("%s n=%lld: avx2 %.9g, avx512 %.9g", rt->name, (long long)n,
					 (double)a, (double)b);
			if (t2[t].vec_dot_tile && t5[t].vec_dot_tile) {
				t2[t].vec_dot_tile(n, ta, 4, x, bx, y, by, 4, 4);
				t5[t].vec_dot_tile(n, tb, 4, x, bx, y, by, 4, 4);
				assert_memory_equal(ta, tb, sizeof ta);
			}
			free(x);
			free(y);
			compared++;
		}
	}
	assert_true(compared > 0);
}

/* The table the engine uses: whatever dispatch picked. */
static void test_active(void **state)
{
	(void)state;
	static struct tk_type_traits tab[TK_TYPE_COUNT];
	for (int t = 0; t < TK_TYPE_COUNT; t++) {
		const struct tk_type_traits *a = tk_type_traits(t);
		if (a)
			tab[t] = *a;
		else
			memset(&tab[t], 0, sizeof tab[t]);
	}
	check_table(tab, "active");
	assert_true(tk_quant_isa_supported(tk_quant_isa_active()));
}

static void test_cpu_and_overrides(void **state)
{
	(void)state;
	const struct tk_cpu_features *f = tk_cpu_features();
	char buf[256];
	tk_cpu_describe(buf, sizeof buf);
	print_message("cpu: %s\n", buf);
	assert_true(buf[0] != '\0');
	if (f->avx512f)
		assert_true(f->avx);
	if (f->avx2)
		assert_true(strstr(buf, "avx2") != NULL);
	char tiny[5];
	tk_cpu_describe(tiny, sizeof tiny); /* truncates, stays terminated */
	assert_true(strlen(tiny) < sizeof tiny);

	assert_true(tk_quant_isa_supported(TK_QUANT_ISA_REF));
	if (tk_quant_isa_supported(TK_QUANT_ISA_AVX512))
		assert_true(tk_quant_isa_supported(TK_QUANT_ISA_AVX2));
	assert_false(tk_quant_isa_supported(17));
	static struct tk_type_traits tab[TK_TYPE_COUNT];
	assert_int_equal(tk_quant_isa_traits(17, tab), TK_EUNSUPPORTED);
	assert_string_equal(tk_quant_isa_name(17), "unknown");

	unsetenv("TANUKI_NO_AVX2");
	unsetenv("TANUKI_NO_AVX512");
	int best = TK_QUANT_ISA_REF;
	for (int i = 0; i < TK_QUANT_ISA_COUNT; i++)
		if (tk_quant_isa_supported(i))
			best = i;
	assert_int_equal(tk_quant_isa_choose(), best);
	setenv("TANUKI_NO_AVX512", "0", 1); /* "0" means not set */
	assert_int_equal(tk_quant_isa_choose(), best);
	setenv("TANUKI_NO_AVX512", "1", 1);
	assert_int_equal(tk_quant_isa_choose(),
			 best > TK_QUANT_ISA_AVX2 ? TK_QUANT_ISA_AVX2 : best);
	setenv("TANUKI_NO_AVX2", "1", 1);
	assert_int_equal(tk_quant_isa_choose(), TK_QUANT_ISA_REF);
	unsetenv("TANUKI_NO_AVX2");
	unsetenv("TANUKI_NO_AVX512");

	/* the reference variant is the reference table */
	assert_int_equal(tk_quant_isa_traits(TK_QUANT_ISA_REF, tab), 0);
	for (int t = 0; t < TK_TYPE_COUNT; t++) {
		const struct tk_type_traits *rt = tk_type_traits_ref(t);
		if (rt) {
			assert_ptr_equal(tab[t].vec_dot, rt->vec_dot);
			assert_ptr_equal(tab[t].from_float, rt->from_float);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_and_overrides),
		cmocka_unit_test(test_avx2),
		cmocka_unit_test(test_avx512),
		cmocka_unit_test(test_avx512_equals_avx2),
		cmocka_unit_test(test_active),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
