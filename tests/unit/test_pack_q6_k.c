/* test_pack_q6_k.c — the q6_kx16 packed layout (pack_q6_k.c) and its
 * products:
 *   - group_size: 16 * 210 bytes per super-block, 0 for a bad n;
 *   - the reference gemm on packed groups against the reference Q6_K
 *     vec_dot on the file rows, every cell, nc = 1..8, odd output and
 *     activation strides, several groups of one matrix, shapes of one,
 *     three and the model's super-block counts (1536, 2048, 5632, 8960);
 *   - extreme values (codes 0 and 63, scales -128 and 127, activation codes
 *     -128 and 127 with unit scales) against an int64 sum computed here from
 *     the dequantization formula, so int32 overflow or a lost offset shows;
 *   - activation rows with arbitrary bsums: no undefined behaviour, the
 *     same (wrapped) sums in every gemm;
 *   - the AVX-512 gemm (when this CPU runs it, skipped with a message
 *     otherwise) against the reference gemm, misaligned pointers included,
 *     in both its variants: the GFNI decoder (the one it picks where GFNI
 *     is present) and the shift decoder (tk_pack_q6_k_avx512_nogfni), and
 *     each variant's gemv against its gemm with one column.
 * Comparisons are exact (bit for bit): the integer sums are exact and every
 * product does the reference vec_dot's float steps in its order (per row
 * and super-block sum += (d * dy) * (float)sumi), documented in
 * pack_q6_k.c; quant_simd.h's Q6_K kernels make the same promise. Cells
 * outside nc columns and outside the 16 rows of ldo must stay untouched.
 */
#include "testutil.h"

#include "engine/fp16.h"
#include "engine/pack_q6_k.h"
#include "engine/quant.h"
#include "engine/quant_pack.h"
#include "engine/quant_simd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q6K 210
#define Q8K 292
#define LDO 21 /* output stride: > 16, odd */
#define SENTINEL -12345.5f

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_u64(void) { return tk_test_rng_u64(&rng_state); }

static float rng_normal(void) { return tk_test_rng_normal(&rng_state); }


static void put_half(uint8_t *p, float f)
{
	const uint16_t h = tk_fp32_to_fp16(f);
	p[0] = (uint8_t)h;
	p[1] = (uint8_t)(h >> 8);
}

/* rows Q6_K rows of n elements, row_bytes apart: random bytes (every code
 * and scale value occurs) with finite random d (mode 0), or the reference
 * quantizer's encoding of normal floats (mode 1). */
static void make_weights(uint8_t *w, int rows, int64_t n, size_t row_bytes, int mode)
{
	const int64_t nb = n / TK_QK_K;
	float *x = tk_test_xmalloc((size_t)n * sizeof(float));
	for (int r = 0; r < rows; r++) {
		uint8_t *row = w + (size_t)r * row_bytes;
		if (mode == 1) {
			for (int64_t i = 0; i < n; i++)
				x[i] = rng_normal();
			tk_type_traits_ref(TK_TYPE_Q6_K)->from_float(x, row, n);
			continue;
		}
		for (size_t i = 0; i < (size_t)nb * Q6K; i++)
			row[i] = (uint8_t)rng_u64();
		for (int64_t i = 0; i < nb; i++)
			put_half(row + i * Q6K + 208, rng_normal() * 0.01f);
	}
	free(x);
}

/* nc Q8_K activation rows of n elements, by bytes apart, encoded from
 * normal floats with tk_act_encode (the active quantizer). */
static void make_acts(uint8_t *y, int nc, int64_t n, size_t by)
{
	float *x = tk_test_xmalloc((size_t)n * sizeof(float));
	for (int c = 0; c < nc; c++) {
		for (int64_t i = 0; i < n; i++)
			x[i] = rng_normal() * (float)(1 + c);
		tk_act_encode(TK_TYPE_Q8_K, x, y + (size_t)c * by, n);
	}
	free(x);
}

/* Packs every group of the matrix w (groups * 16 rows) into one buffer. */
static uint8_t *pack_matrix(const struct tk_pack_traits *pt, const uint8_t *w, int groups,
			    int64_t n, size_t row_bytes, size_t gsize, size_t misalign)
{
	uint8_t *p = tk_test_xmalloc((size_t)groups * gsize + misalign);
	for (int g = 0; g < groups; g++)
		pt->pack(p + misalign + (size_t)g * gsize, w + (size_t)g * TK_PACK_ROWS * row_bytes,
			 row_bytes, n);
	return p;
}

/* Every cell of gemm on each group for nc = 1..8 equals want (want[c][row]
 * for row = 16g + r), and nothing outside the cells is written. */
static void check_gemm(tk_pack_gemm_fn gemm, const uint8_t *packed, int groups, size_t gsize,
		       int64_t n, const uint8_t *y, size_t by, const float *want, int rows,
		       const char *what)
{
	float out[TK_PACK_COLS * LDO];
	for (int g = 0; g < groups; g++) {
		for (int nc = 1; nc <= TK_PACK_COLS; nc++) {
			for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
				out[i] = SENTINEL;
			gemm(n, out, LDO, packed + (size_t)g * gsize, y, by, nc);
			for (int c = 0; c < TK_PACK_COLS; c++)
				for (int r = 0; r < LDO; r++) {
					const float got = out[c * LDO + r];
					if (c >= nc || r >= TK_PACK_ROWS) {
						if (got != SENTINEL)
							fail_msg("%s n=%lld g=%d nc=%d: cell (%d,%d) written",
								 what, (long long)n, g, nc, r, c);
						continue;
					}
					const float w = want[(size_t)c * rows + 16 * g + r];
					if (memcmp(&got, &w, sizeof got) != 0)
						fail_msg("%s n=%lld g=%d nc=%d row %d col %d: %.9g, want %.9g",
							 what, (long long)n, g, nc, r, c, (double)got, (double)w);
				}
		}
	}
}

static void test_group_size(void **state)
{
	(void)state;
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_Q6_K);
	assert_non_null(pt);
	assert_string_equal(pt->name, "q6_kx16");
	assert_int_equal(pt->group_size(256), 16 * 210);
	assert_int_equal(pt->group_size(8960), 35 * 16 * 210);
	assert_int_equal(pt->group_size(0), 0);
	assert_int_equal(pt->group_size(-256), 0);
	assert_int_equal(pt->group_size(255), 0);
	assert_int_equal(pt->group_size(300), 0);
}

struct shape {
	int64_t n;
	int groups;
	int mode;
};

static const struct shape shapes[] = {
	{ 256, 3, 0 }, { 768, 2, 0 }, { 768, 1, 1 }, { 1536, 2, 0 },
	{ 2048, 1, 1 }, { 5632, 1, 0 }, { 8960, 1, 0 },
};

/* Runs the shapes through `gemm` (NULL: the reference gemm), comparing
 * with the reference vec_dot on the file rows. */
static void run_shapes(tk_pack_gemm_fn gemm, const char *what, size_t misalign)
{
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_Q6_K);
	const struct tk_type_traits *rt = tk_type_traits_ref(TK_TYPE_Q6_K);
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		const int64_t n = shapes[si].n;
		const int rows = shapes[si].groups * TK_PACK_ROWS;
		const size_t rb = (size_t)(n / TK_QK_K) * Q6K;
		const size_t row_stride = rb + 3; /* pack reads rows row_bytes apart */
		const size_t by = (size_t)(n / TK_QK_K) * Q8K + 5;
		const size_t gsize = pt->group_size(n);
		uint8_t *w = tk_test_xmalloc((size_t)rows * row_stride);
		uint8_t *yb = tk_test_xmalloc(TK_PACK_COLS * by + misalign);
		uint8_t *y = yb + misalign;
		float *want = tk_test_xmalloc((size_t)TK_PACK_COLS * rows * sizeof(float));
		make_weights(w, rows, n, row_stride, shapes[si].mode);
		make_acts(y, TK_PACK_COLS, n, by);
		for (int c = 0; c < TK_PACK_COLS; c++)
			for (int r = 0; r < rows; r++)
				rt->vec_dot(n, &want[(size_t)c * rows + r], w + (size_t)r * row_stride,
					    y + (size_t)c * by);
		uint8_t *packed = pack_matrix(pt, w, shapes[si].groups, n, row_stride, gsize, misalign);
		check_gemm(gemm ? gemm : pt->gemm, packed + misalign, shapes[si].groups, gsize, n, y,
			   by, want, rows, what);
		free(packed);
		free(want);
		free(yb);
		free(w);
	}
}

static void test_ref_gemm_equals_vec_dot(void **state)
{
	(void)state;
	run_shapes(NULL, "ref", 0);
}

/* Sets element e's code of the Q6_K block at b (quant.h's bit positions). */
static void set_code(uint8_t *b, int e, int q)
{
	const int h = e >> 7, k = (e >> 5) & 3, l = e & 31;
	uint8_t *lo = &b[64 * h + l + 32 * (k & 1)];
	const int sh = 4 * (k >> 1);
	*lo = (uint8_t)((*lo & ~(15 << sh)) | (q & 15) << sh);
	uint8_t *hi = &b[128 + 32 * h + l];
	*hi = (uint8_t)((*hi & ~(3 << 2 * k)) | (q >> 4) << 2 * k);
}

/* Extreme blocks: the code, scale and activation code patterns that reach
 * the integer sums' largest magnitudes (|scale * (code - 32) * y| <= 2^19
 * per element, 2^27 per super-block), d = dy = 1, checked against an
 * int64 sum computed here from the dequantization formula. */
static void test_extremes(void **state)
{
	(void)state;
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_Q6_K);
	const struct tk_type_traits *rt = tk_type_traits_ref(TK_TYPE_Q6_K);
	const int64_t n = 512;
	const size_t rb = 2 * Q6K, by = 2 * Q8K;
	uint8_t *w = tk_test_xmalloc(TK_PACK_ROWS * rb);
	uint8_t *y = tk_test_xmalloc(TK_PACK_COLS * by);
	float want[TK_PACK_COLS * TK_PACK_ROWS];
	static const int codes[] = { 63, 0, 63, 0, 1, 62, 32, 63, 0, 63, 0, 63, 31, 0, 63, 17 };
	static const int scales[] = { -128, -128, 127, 127, -128, 127, 1, -1,
				      -128, 127, -128, 127, 0, -128, 127, 5 };
	for (int r = 0; r < TK_PACK_ROWS; r++) {
		uint8_t *row = w + (size_t)r * rb;
		memset(row, 0, rb);
		for (int i = 0; i < 2; i++) {
			uint8_t *b = row + i * Q6K;
			for (int e = 0; e < 256; e++) /* row 15 mixes codes per element */
				set_code(b, e, r == 15 ? (e * 37 + i) % 64 : codes[r]);
			for (int s = 0; s < 16; s++)
				b[192 + s] = (uint8_t)(int8_t)(r == 15 ? (s & 1 ? -128 : 127) : scales[r]);
			put_half(b + 208, 1.0f);
		}
	}
	/* columns: all -128, all 127, alternating, sub-block-wise sign flips,
	 * -128 / 127 by super-block, 0, ramps */
	for (int c = 0; c < TK_PACK_COLS; c++)
		for (int i = 0; i < 2; i++) {
			uint8_t *b = y + (size_t)c * by + i * Q8K;
			const float one = 1.0f;
			memcpy(b, &one, 4); /* little-endian host (x86, arm64) */
			int8_t *q = (int8_t *)(b + 4);
			for (int e = 0; e < 256; e++) {
				int v;
				switch (c) {
				case 0: v = -128; break;
				case 1: v = 127; break;
				case 2: v = e & 1 ? 127 : -128; break;
				case 3: v = (e / 16) & 1 ? 127 : -128; break;
				case 4: v = i ? 127 : -128; break;
				case 5: v = 0; break;
				case 6: v = e % 256 - 128; break;
				default: v = 127 - e % 256; break;
				}
				q[e] = (int8_t)v;
			}
			for (int s = 0; s < 16; s++) {
				int sum = 0;
				for (int j = 0; j < 16; j++)
					sum += q[16 * s + j];
				const uint16_t u = (uint16_t)(int16_t)sum;
				b[260 + 2 * s] = (uint8_t)u;
				b[261 + 2 * s] = (uint8_t)(u >> 8);
			}
		}
	/* the independent oracle: int64 sum of scale * (code - 32) * y per
	 * super-block, then the reference's float step with d = dy = 1 */
	for (int c = 0; c < TK_PACK_COLS; c++)
		for (int r = 0; r < TK_PACK_ROWS; r++) {
			float sum = 0.0f;
			for (int i = 0; i < 2; i++) {
				const uint8_t *b = w + (size_t)r * rb + i * Q6K;
				const int8_t *q = (const int8_t *)(y + (size_t)c * by + i * Q8K + 4);
				int64_t s64 = 0;
				for (int e = 0; e < 256; e++) {
					const int h = e >> 7, k = (e >> 5) & 3, l = e & 31;
					const int code = (b[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1)) & 15) |
							 (b[128 + 32 * h + l] >> (2 * k) & 3) << 4;
					s64 += (int64_t)(int8_t)b[192 + e / 16] * (code - 32) * q[e];
				}
				assert_true(s64 < INT32_MAX && s64 > INT32_MIN);
				sum += (float)s64;
			}
			want[c * TK_PACK_ROWS + r] = sum;
			/* the reference vec_dot agrees with the oracle */
			float vd;
			rt->vec_dot(n, &vd, w + (size_t)r * rb, y + (size_t)c * by);
			assert_true(memcmp(&vd, &sum, sizeof vd) == 0);
		}
	/* the largest magnitude reached: row 0 (codes 63, scale -128) against
	 * column 0 (all -128): per super-block -128 * 31 * -128 * 256 */
	assert_true(want[0] == 2.0f * 128.0f * 31.0f * 128.0f * 256.0f);
	const size_t gsize = pt->group_size(n);
	uint8_t *packed = pack_matrix(pt, w, 1, n, rb, gsize, 0);
	/* want is [c][row] with rows = 16 */
	check_gemm(pt->gemm, packed, 1, gsize, n, y, by, want, TK_PACK_ROWS, "ref extremes");
#if defined(__x86_64__)
	if (tk_quant_isa_supported(TK_QUANT_ISA_AVX512)) {
		check_gemm(tk_pack_q6_k_avx512.gemm, packed, 1, gsize, n, y, by, want, TK_PACK_ROWS,
			   "avx512 extremes");
		check_gemm(tk_pack_q6_k_avx512_nogfni.gemm, packed, 1, gsize, n, y, by, want,
			   TK_PACK_ROWS, "avx512 nogfni extremes");
	}
#endif
	free(packed);
	free(y);
	free(w);
}

/* Activation rows whose bsums are not their codes' sums (any int16, as a
 * foreign or corrupt row could hold): the integer sums may wrap then, but
 * modulo 2^32 in every gemm alike, never undefined (UBSan build), and the
 * AVX-512 gemm still equals the reference bit for bit. */
static void test_foreign_bsums(void **state)
{
	(void)state;
	const struct tk_pack_traits *pt = tk_pack_traits_ref(TK_TYPE_Q6_K);
	const int64_t n = 1024;
	const size_t rb = 4 * Q6K, by = 4 * Q8K, gsize = pt->group_size(n);
	uint8_t *w = tk_test_xmalloc(TK_PACK_ROWS * rb);
	uint8_t *y = tk_test_xmalloc(TK_PACK_COLS * by);
	make_weights(w, TK_PACK_ROWS, n, rb, 0);
	for (int r = 0; r < TK_PACK_ROWS; r++) /* largest scales: -128 */
		for (int i = 0; i < 4; i++)
			memset(w + (size_t)r * rb + i * Q6K + 192, 0x80, 16);
	make_acts(y, TK_PACK_COLS, n, by);
	for (int c = 0; c < TK_PACK_COLS; c++)
		for (int i = 0; i < 4; i++)
			for (int s = 0; s < 16; s++) {
				const uint16_t u = c & 1 ? (uint16_t)rng_u64() : (c & 2 ? 0x8000 : 0x7fff);
				y[(size_t)c * by + i * Q8K + 260 + 2 * s] = (uint8_t)u;
				y[(size_t)c * by + i * Q8K + 261 + 2 * s] = (uint8_t)(u >> 8);
			}
	uint8_t *packed = pack_matrix(pt, w, 1, n, rb, gsize, 0);
	float want[TK_PACK_COLS * TK_PACK_ROWS];
	float out[TK_PACK_COLS * TK_PACK_ROWS];
	pt->gemm(n, want, TK_PACK_ROWS, packed, y, by, TK_PACK_COLS);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		assert_true(isfinite(want[i]));
#if defined(__x86_64__)
	if (tk_quant_isa_supported(TK_QUANT_ISA_AVX512)) {
		for (int nc = 1; nc <= TK_PACK_COLS; nc++) {
			tk_pack_q6_k_avx512.gemm(n, out, TK_PACK_ROWS, packed, y, by, nc);
			assert_memory_equal(out, want, (size_t)nc * TK_PACK_ROWS * sizeof(float));
			tk_pack_q6_k_avx512_nogfni.gemm(n, out, TK_PACK_ROWS, packed, y, by, nc);
			assert_memory_equal(out, want, (size_t)nc * TK_PACK_ROWS * sizeof(float));
		}
	}
#endif
	(void)out;
	free(packed);
	free(y);
	free(w);
}

#if defined(__x86_64__)
/* The gemv of pt over the first 1..8 groups of an 8-group matrix equals pt's gemm with
 * one column on each group, bit for bit (quant_pack.h's promise). */
static void check_gemv(const struct tk_pack_traits *pt, const char *what)
{
	const int64_t n = 2048;
	const int groups = 8;
	const size_t rb = (size_t)(n / TK_QK_K) * Q6K, by = (size_t)(n / TK_QK_K) * Q8K;
	const size_t gsize = pt->group_size(n);
	uint8_t *w = tk_test_xmalloc((size_t)groups * TK_PACK_ROWS * rb);
	uint8_t *y = tk_test_xmalloc(by);
	make_weights(w, groups * TK_PACK_ROWS, n, rb, 0);
	make_acts(y, 1, n, by);
	uint8_t *packed = pack_matrix(pt, w, groups, n, rb, gsize, 0);
	float want[8 * TK_PACK_ROWS], got[8 * TK_PACK_ROWS];
	for (int g = 0; g < groups; g++)
		pt->gemm(n, want + TK_PACK_ROWS * g, TK_PACK_ROWS, packed + (size_t)g * gsize, y, by,
			 1);
	for (int ng = 1; ng <= groups; ng++) {
		memset(got, 0, sizeof got);
		pt->gemv(n, got, packed, gsize, ng, y);
		if (memcmp(got, want, (size_t)ng * TK_PACK_ROWS * sizeof(float)) != 0)
			fail_msg("%s gemv ng=%d differs from the gemm", what, ng);
	}
	free(packed);
	free(y);
	free(w);
}
#endif

static void test_avx512(void **state)
{
	(void)state;
#if defined(__x86_64__)
	if (!tk_quant_isa_supported(TK_QUANT_ISA_AVX512)) {
		print_message("avx512 not supported: skipped\n");
		skip();
	}
	assert_ptr_equal(tk_pack_q6_k_avx512.group_size, tk_pack_q6_k_ref.group_size);
	assert_ptr_equal(tk_pack_q6_k_avx512.pack, tk_pack_q6_k_ref.pack);
	run_shapes(tk_pack_q6_k_avx512.gemm, "avx512", 0);
	run_shapes(tk_pack_q6_k_avx512.gemm, "avx512 misaligned", 7);
	run_shapes(tk_pack_q6_k_avx512_nogfni.gemm, "avx512 nogfni", 0);
	run_shapes(tk_pack_q6_k_avx512_nogfni.gemm, "avx512 nogfni misaligned", 7);
	check_gemv(&tk_pack_q6_k_avx512, "avx512");
	check_gemv(&tk_pack_q6_k_avx512_nogfni, "avx512 nogfni");
	/* what the active table installs on this CPU, unless capped */
	if (tk_quant_isa_active() == TK_QUANT_ISA_AVX512)
		assert_ptr_equal(tk_type_traits(TK_TYPE_Q6_K)->pack, &tk_pack_q6_k_avx512);
#else
	print_message("not x86-64: skipped\n");
	skip();
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_group_size),
		cmocka_unit_test(test_ref_gemm_equals_vec_dot),
		cmocka_unit_test(test_extremes),
		cmocka_unit_test(test_foreign_bsums),
		cmocka_unit_test(test_avx512),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
