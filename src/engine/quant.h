/*
 * quant.h — tensor element types (ggml's type ids) and their kernels.
 *
 * Owns the type table: for every ggml type id, its name, block layout and,
 * for the types this build computes with, the row kernels
 *   to_float   dequantize a row          (block-encoded -> float)
 *   from_float quantize a row            (float -> block-encoded)
 *   vec_dot    dot of one weight row with one activation row that is already
 *              encoded in the weight type's vec_dot_type.
 *
 * Ids are ggml's (they are what GGUF files store). The table knows the block
 * layout of every id ggml has assigned (so a file with K-quant or i-quant
 * tensors parses and its sizes are checked) but only some have kernels; a
 * NULL kernel pointer means "layout known, not computable in this build".
 * tk_type_can_compute() says whether a weight type is usable.
 *
 * Computing a matrix-vector product y = W x with W of type T (llama.cpp's
 * scheme, which we mirror so logits match theirs):
 *     tr = tk_type_traits(T); vt = tk_type_traits(tr->vec_dot_type);
 *     vt->from_float(x, xq, n);            // activation row, once per x
 *     for each row r of W: tr->vec_dot(n, &y[r], W_row(r), xq);
 * vec_dot_type per weight type:
 *     F32 -> F32, F16 -> F16, BF16 -> BF16, Q8_0/Q4_0/Q5_0 -> Q8_0,
 *     Q4_1/Q5_1 -> Q8_1, Q2_K/Q3_K/Q4_K/Q5_K/Q6_K -> Q8_K, IQ4_NL -> Q8_0.
 * See docs/engine.md ("GGUF and tensor types") for each block layout and the
 * exact arithmetic of every kernel.
 *
 * Row lengths n (in elements) must be a multiple of the type's blck_size;
 * kernels do not check it (callers validate shapes once, e.g. at model load;
 * tk_type_row_size() does the check). Pointers to encoded rows need no
 * alignment. Rows never overlap between src and dst.
 *
 * Run-time CPU dispatch (Engine II): tk_type_traits() returns the active
 * kernels, which tk_quant_init() may switch to SIMD variants once at start;
 * tk_type_traits_ref() always returns the portable reference kernels, which
 * tests use to check every optimized kernel. Adding a variant changes only
 * quant.c's selection (or a new quant_<isa>.c file), never callers.
 *
 * Thread safety: the table is immutable after tk_quant_init() (called
 * implicitly, once, by the first tk_type_traits()); kernels are pure and
 * may run on any number of threads at once.
 */
#ifndef TK_ENGINE_QUANT_H
#define TK_ENGINE_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ggml type ids as stored in GGUF tensor infos. Gaps are ids ggml retired. */
enum tk_type {
	TK_TYPE_F32 = 0,
	TK_TYPE_F16 = 1,
	TK_TYPE_Q4_0 = 2,
	TK_TYPE_Q4_1 = 3,
	TK_TYPE_Q5_0 = 6,
	TK_TYPE_Q5_1 = 7,
	TK_TYPE_Q8_0 = 8,
	TK_TYPE_Q8_1 = 9,
	TK_TYPE_Q2_K = 10,
	TK_TYPE_Q3_K = 11,
	TK_TYPE_Q4_K = 12,
	TK_TYPE_Q5_K = 13,
	TK_TYPE_Q6_K = 14,
	TK_TYPE_Q8_K = 15,
	TK_TYPE_IQ2_XXS = 16,
	TK_TYPE_IQ2_XS = 17,
	TK_TYPE_IQ3_XXS = 18,
	TK_TYPE_IQ1_S = 19,
	TK_TYPE_IQ4_NL = 20,
	TK_TYPE_IQ3_S = 21,
	TK_TYPE_IQ2_S = 22,
	TK_TYPE_IQ4_XS = 23,
	TK_TYPE_I8 = 24,
	TK_TYPE_I16 = 25,
	TK_TYPE_I32 = 26,
	TK_TYPE_I64 = 27,
	TK_TYPE_F64 = 28,
	TK_TYPE_IQ1_M = 29,
	TK_TYPE_BF16 = 30,
	TK_TYPE_TQ1_0 = 34,
	TK_TYPE_TQ2_0 = 35,
	TK_TYPE_MXFP4 = 39,
	TK_TYPE_COUNT = 40 /* one past the largest id; not a type */
};

/* Block sizes of the implemented quantized formats (elements per block). */
#define TK_QK4_0 32
#define TK_QK4_1 32
#define TK_QK5_0 32
#define TK_QK5_1 32
#define TK_QK8_0 32
#define TK_QK8_1 32
#define TK_QK_K 256

/* Block layouts (little-endian, packed, no padding; sizes are asserted in
 * quant.c). "half" is an IEEE binary16 bit pattern (fp16.h). Element j of a
 * block is x[j], j in 0..31.
 *
 * Q4_0: x[j] = d * (q[j] - 8), q in 0..15;
 *       qs[i] low nibble = q[i], high nibble = q[i + 16], i in 0..15. */
struct tk_block_q4_0 {
	uint16_t d;     /* half: scale */
	uint8_t qs[16]; /* 32 x 4-bit */
};
/* Q4_1: x[j] = d * q[j] + m, q in 0..15; nibbles as Q4_0. */
struct tk_block_q4_1 {
	uint16_t d;     /* half: scale */
	uint16_t m;     /* half: minimum */
	uint8_t qs[16];
};
/* Q5_0: x[j] = d * (q[j] - 16), q in 0..31; low 4 bits as Q4_0's nibbles,
 * bit 4 of q[j] is bit j of qh (qh read as a little-endian uint32). */
struct tk_block_q5_0 {
	uint16_t d;
	uint8_t qh[4];
	uint8_t qs[16];
};
/* Q5_1: x[j] = d * q[j] + m, q in 0..31; bits as Q5_0. */
struct tk_block_q5_1 {
	uint16_t d;
	uint16_t m;
	uint8_t qh[4];
	uint8_t qs[16];
};
/* Q8_0: x[j] = d * qs[j]. */
struct tk_block_q8_0 {
	uint16_t d;
	int8_t qs[32];
};
/* Q8_1 (activation type for Q4_1/Q5_1): x[j] = d * qs[j], and
 * s = d * sum(qs) (both half) so a Q4_1/Q5_1 dot can add the weights' minimum
 * term without touching the activations again. */
struct tk_block_q8_1 {
	uint16_t d;
	uint16_t s;
	int8_t qs[32];
};

/* K-quants: super-blocks of TK_QK_K = 256 elements.
 *
 * Q6_K: x = d * scales[s] * (q - 32), q in 0..63 (6 bits), s = element / 16
 * (16 sub-blocks of 16, each with a signed 8-bit scale). The 6-bit codes are
 * split into a low nibble (ql) and two high bits (qh). The block is two
 * halves of 128 elements; in half h (h = 0, 1), for l in 0..31 and k in 0..3
 * element e = 128h + 32k + l takes
 *     low 4 bits  from ql[64h + l + 32 * (k & 1)], low nibble for k < 2,
 *                 high nibble for k >= 2;
 *     high 2 bits from qh[32h + l] bits 2k, 2k + 1.
 * Field order in the 210 bytes: ql, qh, scales, d. */
struct tk_block_q6_k {
	uint8_t ql[128]; /* low 4 bits of the codes */
	uint8_t qh[64];  /* high 2 bits of the codes, four per byte */
	int8_t scales[16]; /* per 16 elements */
	uint16_t d;      /* half: super-block scale */
};
/* Q2_K (84 bytes): 16 sub-blocks of 16; scales[s] holds sub-block s's
 * 4-bit scale (low nibble) and 4-bit min (high nibble);
 *     x = d * (scales[s] & 15) * q - dmin * (scales[s] >> 4), q in 0..3.
 * Element e = 128h + 32k + l (h = 0, 1; k = 0..3; l = 0..31) has its code in
 * qs[32h + l] bits 2k, 2k + 1; s = e / 16. */
struct tk_block_q2_k {
	uint8_t scales[16]; /* scale | min << 4, per 16 elements */
	uint8_t qs[64];     /* 2-bit codes, four per byte */
	uint16_t d;         /* half: scale of the scales */
	uint16_t dmin;      /* half: scale of the mins */
};
/* Q3_K (110 bytes): 16 sub-blocks of 16 with signed 6-bit scales;
 *     x = d * (S_s - 32) * q, q in -4..3, S_s in 0..63 (s = e / 16).
 * Element e = 128h + 32k + l: low 2 bits of (q + 4) in qs[32h + l] bits
 * 2k, 2k + 1; the high bit (bit 2 of q + 4) is hmask[l] bit 4h + k.
 * S_s: low 4 bits in scales[s] (s < 8, low nibble) or scales[s - 8]
 * (s >= 8, high nibble); high 2 bits in scales[8 + s % 4] bits
 * 2(s / 4), 2(s / 4) + 1. */
struct tk_block_q3_k {
	uint8_t hmask[32];  /* bit 2 of every code */
	uint8_t qs[64];     /* low 2 bits of every code */
	uint8_t scales[12]; /* 16 x 6-bit scales, packed as above */
	uint16_t d;         /* half: super-block scale */
};
/* Q4_K (144 bytes): 8 sub-blocks of 32, each with a 6-bit scale sc_j and a
 * 6-bit min m_j;  x = d * sc_j * q - dmin * m_j, q in 0..15, j = e / 32.
 * Element e = 64g + 32t + l (g = 0..3, t = 0, 1, l = 0..31): q is
 * qs[32g + l] low nibble (t = 0) or high nibble (t = 1).
 * sc_j, m_j ("scale-min k4" packing of 12 bytes):
 *     j < 4:  sc = scales[j] & 63,  m = scales[j + 4] & 63;
 *     j >= 4: sc = (scales[j + 4] & 15) | (scales[j - 4] >> 6) << 4,
 *             m  = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4. */
struct tk_block_q4_k {
	uint16_t d;         /* half: scale of the sub-block scales */
	uint16_t dmin;      /* half: scale of the sub-block mins */
	uint8_t scales[12]; /* 8 x (6-bit scale, 6-bit min) */
	uint8_t qs[128];    /* 4-bit codes */
};
/* Q5_K (176 bytes): Q4_K with 5-bit codes, q in 0..31: the low 4 bits as
 * Q4_K's, the high bit of element e = 64g + 32t + l is qh[l] bit 2g + t. */
struct tk_block_q5_k {
	uint16_t d;
	uint16_t dmin;
	uint8_t scales[12];
	uint8_t qh[32];  /* bit 4 of every code */
	uint8_t qs[128]; /* low 4 bits of every code */
};
/* IQ4_NL (18 bytes, 32 elements; activation type Q8_0): a 4-bit index into
 * a fixed non-uniform table of 16 int8 levels, TK_IQ4NL_LEVELS
 * = {-127 -104 -83 -65 -49 -35 -22 -10 1 13 25 38 53 69 89 113};
 *     x[j] = d * levels[idx_j]; nibbles as Q4_0's (qs[i] low nibble =
 *     idx_i, high nibble = idx_{i+16}). */
#define TK_QK4_NL 32
struct tk_block_iq4_nl {
	uint16_t d;     /* half: scale */
	uint8_t qs[16]; /* 32 x 4-bit indices */
};
/* Q8_K (activation type for the K-quants; 292 bytes): x[j] = d * qs[j] with a
 * float (not half) d, and bsums[i] = sum of qs[16i .. 16i+15] so a dot can
 * fold a weight offset (Q6_K's -32) in with one multiply per 16 elements.
 * d is a binary32 bit pattern stored little-endian; bsums are little-endian
 * int16. */
struct tk_block_q8_k {
	uint8_t d[4];      /* float: scale */
	int8_t qs[256];
	uint8_t bsums[32]; /* 16 x int16 */
};

/* Dequantize n elements of src (n a multiple of blck_size) into dst[n]. */
typedef void (*tk_to_float_fn)(const void *src, float *dst, int64_t n);
/* Quantize src[n] into n / blck_size blocks at dst. */
typedef void (*tk_from_float_fn)(const float *src, void *dst, int64_t n);
/* *out = dot(x, y) over n elements: x a row of this type, y a row of this
 * type's vec_dot_type. */
typedef void (*tk_vec_dot_fn)(int64_t n, float *out, const void *x, const void *y);
/* A register-tiled block of dots for matrix-matrix products (prefill and
 * batched decode): for r < nr and c < nc (1 <= nr, nc <= TK_TILE_MAX),
 *     out[c * ldo + r] = dot(x row r, y row c)
 * where x row r starts at (const char *)x + r * bx (a row of this type) and
 * y row c at (const char *)y + c * by (a row of vec_dot_type), n elements
 * each. Each weight block is loaded once for nc activation rows, which is
 * what makes prefill compute-bound. Results equal vec_dot's up to float
 * summation order. NULL: callers loop over vec_dot.
 * One exception, F16: its y rows are float32 (n floats, by >= 4n bytes),
 * because F16 weights take float32 activations in the engine (ops.h); there
 * is no F16 x F16 tile. With nc = 1 it is the F16 decode kernel. The SIMD
 * tiles of the quantized types give exactly vec_dot's result in every cell
 * (quant_simd.h). */
#define TK_TILE_MAX 4
typedef void (*tk_vec_dot_tile_fn)(int64_t n, float *out, size_t ldo, const void *x, size_t bx,
				   const void *y, size_t by, int nr, int nc);

struct tk_pack_traits; /* quant_pack.h */

struct tk_type_traits {
	const char *name;        /* ggml's name: "f32", "q4_0", "bf16", ... */
	int64_t blck_size;       /* elements per block (1 for plain types) */
	size_t type_size;        /* bytes per block */
	bool is_quantized;       /* block-scaled format */
	tk_to_float_fn to_float;     /* NULL: not implemented in this build */
	tk_from_float_fn from_float; /* NULL: not implemented in this build */
	tk_vec_dot_fn vec_dot;       /* NULL: not usable as a weight type */
	tk_vec_dot_tile_fn vec_dot_tile; /* NULL: no tiled kernel (see above) */
	enum tk_type vec_dot_type;   /* encoding vec_dot expects for y */
	/* Packed layout with a fast product on this CPU (quant_pack.h), or
	 * NULL: weights of this type stay in the file layout. Always NULL in
	 * the reference table. */
	const struct tk_pack_traits *pack;
};

/* Selects the kernels for this CPU (idempotent, thread-safe). Called by the
 * first tk_type_traits(); calling it early just moves the cost. */
void tk_quant_init(void);

/* The active traits of type id t, or NULL when t is not a ggml type id
 * (out of range or a retired id). Borrowed, static storage. */
const struct tk_type_traits *tk_type_traits(int t);

/* The portable reference traits of t (never SIMD), or NULL as above. */
const struct tk_type_traits *tk_type_traits_ref(int t);

/* Name of t ("q8_0"), or "unknown" for an invalid id. Never NULL. */
const char *tk_type_name(int t);

/* Type id for a name, case-insensitive ("Q8_0", "f16", "BF16"), or -1. */
int tk_type_from_name(const char *name);

/* True when t is a known id whose to_float, from_float and vec_dot exist and
 * whose vec_dot_type has from_float: tensors of t can be used in matmuls. */
bool tk_type_can_compute(int t);

/* Bytes of a row of n elements of type t, in *out. 0 on success;
 * TK_EINVAL (detail says why) for an unknown t, n <= 0, n not a multiple of
 * the block size, or a size that overflows. */
int tk_type_row_size(int t, int64_t n, size_t *out);

#endif
