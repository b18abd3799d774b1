/*
 * pack_f16.c — the f16x16 packed layout (quant_pack.h) of F16 weights:
 * its group size, the packer, and the scalar reference product that the
 * fast kernels (pack_f16_avx512.c, pack_f16_avx2.c) reproduce bit for bit.
 * Owns tk_pack_f16_ref and the shared helpers declared in pack_f16.h, and
 * the portable packers of pack_ref.h (tk_pack_f16_pack_ref, the oracle, and
 * tk_pack_f16_pack_words); tk_pack_f16_pack, which picks the packer at
 * load, is pack_load.c's.
 *
 * Layout. A group of 16 rows of n halfs is n * 32 bytes: element e of rows
 * 0..15 is the 16 halfs (32 bytes) at byte offset 32 * e, row r at
 * 32 * e + 2 * r, copied bit for bit from the file. One VCVTPH2PS of a
 * 256-bit load is then element e of all 16 rows as 16 float lanes (lane r =
 * row r), and one FMA with the broadcast activation float y_c[e] advances
 * the 16 row sums of column c. n may be any positive count (F16 has no
 * blocks).
 *
 * Arithmetic (what every kernel of this layout computes, bit for bit).
 * Activation row c is n float32s. The row is cut in two halves at
 * h = tk_pack_f16_half(n) = 2 * floor(n / 4): [0, h) and [h, n). Each half
 * is summed in chunks of TK_PACK_F16_CHUNK = 16 consecutive elements
 * counted from the half's start (the last chunk may be shorter): a chunk
 * sum q starts at +0 and takes each term with one fused multiply-add,
 * q = fma(w_r[e], y_c[e], q) (w widened exactly from half), in increasing
 * e; the half's sum p (from +0) adds its chunk sums in order, p = p + q.
 * The cell is p_first + p_second. The order depends on neither nc nor the
 * ISA, so a token's result is the same whether it is computed alone
 * (decode) or beside seven others (prefill, batched decode), and the same
 * on every CPU.
 * Why halves: a kernel walks both halves at once, which gives each column
 * two independent FMA chains and gives decode two memory streams 32h
 * bytes apart (32 KiB at n = 2048); one stream measured 15-25% slower from
 * DRAM on the 2-core VM (docs/benchmarks.md, "f16x16"). Why two: nc = 8 columns x 2
 * halves are 16 zmm chunk accumulators, which leaves room for the weights.
 * h is even so that the second half starts on a 64-byte boundary of a
 * 64-byte aligned group. Why chunks: one rounding chain of n/2 terms put
 * the tiny F16 model's logits 2e-4 from llama.cpp's (6e-6 through the file
 * kernels, whose 16 lanes each sum every 16th element); chains of <= 16
 * plus n/32 brought them back to 6e-6 (test_forward_golden), for one
 * vector add per 16 FMAs.
 */
#include "engine/pack_f16.h"

#include "engine/fp16.h"
#include "engine/pack_ref.h"

#include <math.h>
#include <string.h>

size_t tk_pack_f16_group_size(int64_t n)
{
	return n > 0 ? (size_t)n * TK_PACK_ROWS * sizeof(uint16_t) : 0;
}

/* The reference packer (pack_ref.h): dst[32e + 2r .. +1] = file row r's
 * element e, 2 bytes at a time. */
void tk_pack_f16_pack_ref(void *dst, const void *src, size_t row_bytes, int64_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	for (int r = 0; r < TK_PACK_ROWS; r++) {
		const unsigned char *row = s + (size_t)r * row_bytes;
		unsigned char *col = d + 2 * (size_t)r;
		for (int64_t e = 0; e < n; e++)
			memcpy(col + (size_t)e * 32, row + 2 * (size_t)e, 2);
	}
}

/* The portable load-time packer (pack_ref.h): the reference's bytes, as 4 x 4
 * transposes of halfs in 64-bit words. Elements e .. e + 3 of rows
 * r .. r + 3 are four 64-bit loads (one per row); two rounds of masks and
 * shifts turn them into four words each holding one element of the four
 * rows, stored at 32e' + 2r. The 16 rows' 4 elements (128 bytes, two
 * cache lines of the group) are written whole before the next 4; a tail
 * of n % 4 elements goes 2 bytes at a time. */
void tk_pack_f16_pack_words(void *dst, const void *src, size_t row_bytes, int64_t n)
{
	const uint64_t m16 = 0x0000ffff0000ffffu, m32 = 0x00000000ffffffffu;
	unsigned char *d = dst;
	const unsigned char *s = src;
	int64_t e = 0;
	for (; e + 4 <= n; e += 4) {
		unsigned char *o = d + (size_t)e * 32;
		const unsigned char *p = s + 2 * (size_t)e;
		for (int r = 0; r < TK_PACK_ROWS; r += 4, o += 8, p += 4 * row_bytes) {
			const uint64_t a = tk_pack_ld64(p), b = tk_pack_ld64(p + row_bytes);
			const uint64_t c = tk_pack_ld64(p + 2 * row_bytes);
			const uint64_t f = tk_pack_ld64(p + 3 * row_bytes);
			/* (a0 b0 a2 b2), (a1 b1 a3 b3), the same for c and f */
			const uint64_t t0 = (a & m16) | (b & m16) << 16;
			const uint64_t t1 = (a >> 16 & m16) | (b & ~m16);
			const uint64_t u0 = (c & m16) | (f & m16) << 16;
			const uint64_t u1 = (c >> 16 & m16) | (f & ~m16);
			tk_pack_st64(o, (t0 & m32) | u0 << 32);
			tk_pack_st64(o + 32, (t1 & m32) | u1 << 32);
			tk_pack_st64(o + 64, t0 >> 32 | (u0 & ~m32));
			tk_pack_st64(o + 96, t1 >> 32 | (u1 & ~m32));
		}
	}
	for (; e < n; e++)
		for (int r = 0; r < TK_PACK_ROWS; r++)
			memcpy(d + (size_t)e * 32 + 2 * (size_t)r, s + (size_t)r * row_bytes + 2 * (size_t)e,
			       2);
}

/* The reference product: the arithmetic above, one cell at a time. */
static void f16x16_gemm_ref(int64_t n, float *out, size_t ldo, const void *group, const void *y,
			    size_t by, int nc)
{
	const unsigned char *g = group;
	for (int c = 0; c < nc; c++) {
		const unsigned char *yc = (const unsigned char *)y + (size_t)c * by;
		for (int r = 0; r < TK_PACK_ROWS; r++) {
			const int64_t h = tk_pack_f16_half(n);
			float p[2] = { 0.0f, 0.0f }; /* the halves' sums */
			float q[2] = { 0.0f, 0.0f }; /* their open chunks' sums */
			for (int64_t e = 0; e < n; e++) {
				const int k = e >= h;
				if ((e - (k ? h : 0)) % TK_PACK_F16_CHUNK == 0 && e > (k ? h : 0)) {
					p[k] = p[k] + q[k]; /* a chunk closes */
					q[k] = 0.0f;
				}
				uint16_t w;
				float a;
				memcpy(&w, g + (size_t)e * 32 + 2 * (size_t)r, 2);
				memcpy(&a, yc + 4 * (size_t)e, 4);
				q[k] = fmaf(tk_fp16_to_fp32(w), a, q[k]);
			}
			out[(size_t)c * ldo + (size_t)r] = (p[0] + q[0]) + (p[1] + q[1]);
		}
	}
}

const struct tk_pack_traits tk_pack_f16_ref = {
	.name = "f16x16",
	.group_size = tk_pack_f16_group_size,
	.pack = tk_pack_f16_pack,
	.gemm = f16x16_gemm_ref,
};
