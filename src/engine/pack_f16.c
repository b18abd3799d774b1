/*
 * pack_f16.c — the f16x16 packed layout (quant_pack.h) of F16 weights:
 * its group size, the packer, and the scalar reference product that the
 * fast kernels (pack_f16_avx512.c, pack_f16_avx2.c) reproduce bit for bit.
 * Owns tk_pack_f16_ref and the shared helpers declared in pack_f16.h.
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
 * Activation row c is n float32s. Each cell (row r, column c) keeps
 * TK_PACK_F16_SPLIT = 2 float partial sums: element e is added into partial
 * sum e % 2 with one fused multiply-add, p = fma(w_r[e], y_c[e], p) (w
 * widened exactly from half), in increasing e; the cell is p0 + p1. The
 * order depends on neither nc nor the ISA, so a token's result is the same
 * whether it is computed alone (decode) or beside seven others (prefill,
 * batched decode), and the same on every CPU. Two partial sums are what
 * the widest kernel (nc = 8 columns x 2 = 16 zmm accumulators) can hold
 * with room for the weights, and enough independent FMA chains for a
 * single column to stream from DRAM; they also keep each chain short
 * enough that the result stays as close to a plain float sum as the file
 * kernels' (docs/engine.md, "Packed weights").
 */
#include "engine/pack_f16.h"

#include "engine/fp16.h"

#include <math.h>
#include <string.h>

size_t tk_pack_f16_group_size(int64_t n)
{
	return n > 0 ? (size_t)n * TK_PACK_ROWS * sizeof(uint16_t) : 0;
}

/* dst[32e + 2r .. +1] = file row r's element e. Reads each row once,
 * sequentially; writes 2 bytes per 32-byte stride. */
void tk_pack_f16_pack(void *dst, const void *src, size_t row_bytes, int64_t n)
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

/* The reference product: the arithmetic above, one cell at a time. */
static void f16x16_gemm_ref(int64_t n, float *out, size_t ldo, const void *group, const void *y,
			    size_t by, int nc)
{
	const unsigned char *g = group;
	for (int c = 0; c < nc; c++) {
		const unsigned char *yc = (const unsigned char *)y + (size_t)c * by;
		for (int r = 0; r < TK_PACK_ROWS; r++) {
			float p[TK_PACK_F16_SPLIT] = { 0.0f };
			for (int64_t e = 0; e < n; e++) {
				uint16_t h;
				float a;
				memcpy(&h, g + (size_t)e * 32 + 2 * (size_t)r, 2);
				memcpy(&a, yc + 4 * (size_t)e, 4);
				float *pe = &p[e % TK_PACK_F16_SPLIT];
				*pe = fmaf(tk_fp16_to_fp32(h), a, *pe);
			}
			out[(size_t)c * ldo + (size_t)r] = p[0] + p[1];
		}
	}
}

const struct tk_pack_traits tk_pack_f16_ref = {
	.name = "f16x16",
	.group_size = tk_pack_f16_group_size,
	.pack = tk_pack_f16_pack,
	.gemm = f16x16_gemm_ref,
};
