/*
 * quant_pack.h — packed ("interleaved") weight layouts for fast matrix
 * products, and the activation rows their kernels read.
 *
 * Why: the file layout keeps each weight row contiguous, so a kernel that
 * dots one row with one activation row must reduce every block's integer
 * lanes and apply that block's scales one (row, column) cell at a time. On
 * 2 cores that scalar scale work, not memory, bounded prefill and batched
 * decode (perf: the 4 x 4 Q8_0 tile spent most of its instructions on
 * per-cell broadcasts, converts and multiplies). A packed group stores
 * TK_PACK_ROWS = 16 rows interleaved in small chunks, so that one 512-bit
 * register holds the same chunk of all 16 rows: one VPDPBUSD against a
 * broadcast 4-byte activation chunk advances 16 row sums at once (lane r =
 * row r), and a block's 16 scales are one vector: the scale work is one
 * multiply-add per 16 cells instead of per cell. Decode (one column) reads
 * the same bytes as before, with far fewer instructions per byte.
 *
 * Ownership and lifetime: a packed copy is made once at model load from the
 * file's rows (the engine keeps the file layout for everything else: token
 * embedding lookups, LoRA merges, the rows past the last full group). Each
 * layout is defined here and in its pack_<type>.c, portable and always
 * built, with a scalar reference product (the test oracle); the fast
 * products live in pack_<type>_<isa>.c and are installed by the ISA's
 * installer (quant_simd.h) into the active type table's `pack` pointer. A
 * type whose active traits have pack == NULL is not packed (the reference
 * table never packs).
 *
 * Contracts shared by every layout:
 *   - A group is TK_PACK_ROWS consecutive weight rows of n elements (n a
 *     multiple of the type's block size), group_size(n) bytes; groups of a
 *     matrix are stored back to back. Rows n_out - n_out % TK_PACK_ROWS ..
 *     n_out - 1 are never packed (the engine uses the file rows).
 *   - pack(dst, src, row_bytes, n): src points at the first of the 16 file
 *     rows, row_bytes apart; dst receives group_size(n) bytes. Pure;
 *     any thread.
 *   - gemm(n, out, ldo, group, y, by, nc): for r < TK_PACK_ROWS and
 *     c < nc (1 <= nc <= TK_PACK_COLS),
 *         out[c * ldo + r] = dot(row r of the group, activation row c)
 *     where activation row c starts at (const char *)y + c * by and is
 *     encoded as tk_act_row_size() describes for the type's vec_dot_type
 *     (F16 weights: n float32s). Results equal the type's vec_dot up to
 *     float rounding and summation order; the integer parts are exact.
 *     Pointers need no alignment (kernels use unaligned loads); groups the
 *     engine allocates are 64-byte aligned.
 *
 * Thread safety: everything here is pure or reads immutable tables.
 */
#ifndef TK_ENGINE_QUANT_PACK_H
#define TK_ENGINE_QUANT_PACK_H

#include "engine/quant.h"

#include <stddef.h>
#include <stdint.h>

#define TK_PACK_ROWS 16 /* rows per packed group (one zmm lane per row) */
#define TK_PACK_COLS 8  /* most activation rows one gemm call takes */

typedef size_t (*tk_pack_size_fn)(int64_t n);
typedef void (*tk_pack_fn)(void *dst, const void *src, size_t row_bytes, int64_t n);
typedef void (*tk_pack_gemm_fn)(int64_t n, float *out, size_t ldo, const void *group,
				const void *y, size_t by, int nc);
/* Decode (one activation row): ng = 1..TK_PACK_GEMV_GROUPS groups, the
 * first at groups, each group_bytes after the previous (the group size
 * for consecutive groups, a multiple of it for groups from separate
 * regions: the engine's decode walk, ops.c), times
 * the activation row y; writes out[0 .. 16 * ng) in row order (group i's
 * row r at 16 * i + r) and nothing else. Each cell must equal what gemm
 * with nc = 1 writes for that group, bit for bit (test_pack_gemv checks
 * every installed kernel): the point is the memory walk, not different
 * arithmetic. A gemv walks its ng groups in lockstep (block b of every
 * group, then block b + 1), so each thread keeps ng streams of DRAM reads
 * in flight instead of one, and the ng accumulator chains are independent
 * (measured, 2-core Xeon VM, llama-1.1B Q8_0 decode: 18.8 -> 22.2 tok/s). */
#define TK_PACK_GEMV_GROUPS 8
typedef void (*tk_pack_gemv_fn)(int64_t n, float *out, const void *groups, size_t group_bytes,
				int ng, const void *y);

/* Batched decode (a few activation rows): ng = 1..TK_PACK_GEMV_GROUPS
 * groups, the first at groups, each group_bytes after the previous (any
 * multiple of the group size, as for gemv), times
 * nc = 1..TK_PACK_COLS activation rows (y, by bytes apart, as for gemm);
 * writes out[c * ldo + 16 * i + r] (group i's row r, activation row c)
 * and nothing else. Each cell must equal what gemm writes for that group
 * bit for bit (test_pack_gemv checks every installed kernel). The kernel
 * picks the walk that reads memory fastest for its nc: one group at a time
 * (the gemm's: one stream per thread) or the groups interleaved by short
 * runs (G streams, as the gemv), which pays where the arithmetic per byte
 * is light (q4_kx16: nc = 2, 3). */
typedef void (*tk_pack_gemmg_fn)(int64_t n, float *out, size_t ldo, const void *groups,
				 size_t group_bytes, int ng, const void *y, size_t by, int nc);

struct tk_pack_traits {
	const char *name;          /* layout name, e.g. "q8_0x16" */
	tk_pack_size_fn group_size; /* bytes of one group of TK_PACK_ROWS rows */
	tk_pack_fn pack;           /* file rows -> one group */
	tk_pack_gemm_fn gemm;      /* group x up to TK_PACK_COLS activation rows */
	tk_pack_gemv_fn gemv;      /* NULL or several groups x one row (decode);
				    * the engine falls back to gemm, nc = 1 */
	tk_pack_gemmg_fn gemmg;    /* NULL or several groups x up to
				    * TK_PACK_COLS rows (batched decode); the
				    * engine falls back to gemm per group */
};

/* The portable reference traits of type t's layout (pack + scalar gemm),
 * whatever the CPU, for tests and tools; NULL when t has no layout. */
const struct tk_pack_traits *tk_pack_traits_ref(int t);

/* ---------------------------------------------------------------------
 * Activation rows. Packed integer kernels cannot afford a horizontal sum
 * per block and column, so an encoded activation row carries what they
 * need after its blocks (the "trailer"); row-at-a-time kernels (vec_dot,
 * vec_dot_tile) read only the blocks and ignore it.
 *   Q8_0 activations: nb = n / 32 blocks (tk_block_q8_0), then nb
 *     little-endian int32 s[b] = sum of block b's 32 qs (unaligned).
 *   Q8_K: no trailer (the block's bsums already hold its sums).
 *   Other types (F32, F16, BF16, Q8_1): no trailer.
 * --------------------------------------------------------------------- */

/* Bytes of one encoded activation row of n elements of act_type (a
 * vec_dot_type) including its trailer; 0 for an unknown type or an n that
 * is not a positive multiple of its block size. */
size_t tk_act_row_size(int act_type, int64_t n);

/* Encodes x[n] as one activation row of act_type at dst
 * (tk_act_row_size() bytes): the type's from_float (the active one), then
 * the trailer. For F32 it copies x. */
void tk_act_encode(int act_type, const float *x, void *dst, int64_t n);

/* Writes the trailer of a row whose blocks are already encoded (no-op for
 * types without one). */
void tk_act_trailer_fill(int act_type, void *row, int64_t n);

/* ---------------------------------------------------------------------
 * Layouts. Each pack_<type>.c defines its layout functions and its
 * reference traits; each pack_<type>_<isa>.c its fast gemm.
 *
 * q8_0x16 (Q8_0 weights, Q8_0 activations): for each block b = 0..nb-1 in
 * order, 544 bytes:
 *     d[16]        half scales of rows 0..15 (32 bytes),
 *     q[8][16][4]  for chunk k = 0..7, row r = 0..15, byte i = 0..3:
 *                  (uint8_t)(x_r[32b + 4k + i] + 128), i.e. the quant
 *                  XOR 0x80, unsigned,
 * so group_size(n) = 16 * row size. A product is, per row and block,
 *     dx * dy * (sum_i u_i * y_i - 128 * s[b])
 * with u the unsigned quants and s[b] the activation trailer, one VPDPBUSD
 * per chunk for all 16 rows.
 * q6_kx16 (Q6_K weights, Q8_K activations): first d[nb][16], the half
 * super-block scales (row r's of super-block i at byte 32i + 2r), then for
 * each super-block i in order, 3328 bytes:
 *     sc[16][16]       int8 sub-block scales, sub-block s of row r at 16s + r,
 *     q[16][3][16][4]  sub-block s, vector v = 0..2, row r, byte j = 0..3:
 *                      the code (0..63) of element 16s + 4v + j in bits
 *                      0..5, bits 2v, 2v+1 of element 16s + 12 + j's code
 *                      in bits 6..7,
 * so group_size(n) = 16 * row size. Per row, super-block and column,
 *     sumi = sum_s sc[s] * (sum_{j in s} q_j * y_j - 32 * bsums[s]),
 *     sum += (d * dy) * (float)sumi,
 * the Q6_K vec_dot's exact integers and float steps (results equal it bit
 * for bit); four VPDPBUSD per sub-block for all 16 rows (pack_q6_k.c).
 * q4_kx16 (Q4_K weights, Q8_K activations): for each super-block i in
 * order, 2368 bytes (16 file blocks + 64):
 *     d[16], dmin[16]  half scales of rows 0..15 (2 x 32 bytes),
 *     sc[8][16]        the 6-bit scale of sub-block j of row r at 16j + r,
 *                      one byte each (128 bytes),
 *     m[2][16][4]      the 6-bit min of sub-block 4h + t of row r at
 *                      64h + 4r + t, one byte each (128 bytes),
 *     q[8][4][16][4]   sub-block j, chunk k = 0..3, row r, byte b = 0..3:
 *                      low nibble the code of element 32j + 4k + b, high
 *                      nibble that of element 32j + 16 + 4k + b.
 * Per row, super-block and column (the Q4_K vec_dot's integers and float
 * steps; results equal it bit for bit),
 *     isum = sum_j sc_j * sum_{e in j} q_e * y_e,
 *     msum = sum_j m_j * (bsums[2j] + bsums[2j + 1]),
 *     sum += (d * dy) * (float)isum - (dmin * dy) * (float)msum;
 * eight VPDPBUSD per sub-block for all 16 rows, the mins six for all 16
 * rows and 8 sub-blocks in the decode gemv (pack_q4_k.c).
 * f16x16 (F16 weights, float32 activations): element e of rows 0..15 is
 * the 16 halfs at byte 32e (row r at 32e + 2r), so group_size(n) = 32n.
 * Per row and column two float partial sums, elements [0, h) and [h, n)
 * with h = 2 * floor(n / 4), each term one fused multiply-add in
 * increasing e, in chunks of 16 summed in order; the cell is the halves'
 * sum. One VCVTPH2PS and one FMA per element and column for all 16 rows
 * (pack_f16.c).
 * Each layout's file and docs/engine.md ("Packed weights") say more.
 * --------------------------------------------------------------------- */

extern const struct tk_pack_traits tk_pack_q8_0_ref;
/* q8_0x16's portable halves (pack_q8_0.c), shared by its ISA traits. */
size_t tk_pack_q8_0_group_size(int64_t n);
void tk_pack_q8_0_pack(void *dst, const void *src, size_t row_bytes, int64_t n);
extern const struct tk_pack_traits tk_pack_q8_0_avx512; /* x86-64 builds only */
extern const struct tk_pack_traits tk_pack_q8_0_avx2; /* x86-64 builds only */
extern const struct tk_pack_traits tk_pack_q4_k_ref;
extern const struct tk_pack_traits tk_pack_q4_k_avx512; /* x86-64 builds only */
extern const struct tk_pack_traits tk_pack_q6_k_ref;
extern const struct tk_pack_traits tk_pack_q6_k_avx512; /* x86-64 builds only */
extern const struct tk_pack_traits tk_pack_f16_ref;
extern const struct tk_pack_traits tk_pack_f16_avx2; /* x86-64 builds only */
extern const struct tk_pack_traits tk_pack_f16_avx512; /* x86-64 builds only */

#endif
