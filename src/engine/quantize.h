/*
 * quantize.h — re-encodes a GGUF model's weight matrices in another tensor
 * type (`tanuki model quantize`), with llama-quantize's per-tensor choices.
 *
 * A scheme is one of llama.cpp's file types ("Q4_K_M", "Q8_0", "F16", ...;
 * tk_quant_scheme_find). It names a default type for the weight matrices
 * and, for the quantized schemes, the rules llama-quantize applies on top
 * (docs/engine.md, "tanuki model quantize", lists them): e.g. Q4_K_M puts
 * output.weight in Q6_K, and attn_v / ffn_down in Q6_K on the layers where
 * more bits pay off. Which tensors are weight matrices follows llama.cpp
 * too: names ending in "weight" with at least 2 dimensions, except norms
 * and a few special tensors; everything else is copied unchanged.
 *
 * The output file carries every metadata entry of the input (split.* keys
 * dropped) plus general.quantization_version = 2 and general.file_type =
 * the scheme's id, tensors in llama-quantize's order (layer by layer, by
 * name), 32-byte alignment: for the schemes and models of the test fixtures
 * the file equals llama-quantize's byte for byte (tests/slow/
 * quantize_llama.sh checks it where llama-quantize is installed).
 *
 * Sources: F32, F16 and BF16 tensors are converted; a quantized source
 * tensor that would need a different type is refused (TK_EUNSUPPORTED; no
 * requantizing, as llama-quantize by default). No importance matrix.
 *
 * Threads: tk_quantize_file() is reentrant; it quantizes each tensor on
 * o->n_threads threads of its own, rows split evenly.
 */
#ifndef TK_ENGINE_QUANTIZE_H
#define TK_ENGINE_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

struct tk_quant_scheme; /* opaque; static storage */

/* The scheme named `name` (case-insensitive: "q4_k_m", "Q4_K_M"), or NULL. */
const struct tk_quant_scheme *tk_quant_scheme_find(const char *name);

/* Name ("Q4_K_M") and llama.cpp's general.file_type value of s. */
const char *tk_quant_scheme_name(const struct tk_quant_scheme *s);
uint32_t tk_quant_scheme_file_type(const struct tk_quant_scheme *s);

/* Space-separated names of every scheme, for usage text. Static. */
const char *tk_quant_scheme_names(void);

/* What the per-tensor rules need to know about the model. */
struct tk_quant_model_info {
	int n_layer;    /* <arch>.block_count */
	int n_attn_v;   /* number of attn_v / attn_qkv tensors */
	int n_gqa;      /* head_count / head_count_kv (1 when unknown) */
	bool has_output; /* an output.weight tensor exists */
};

/* The type tensor `name` (n_dims, ne[0..n_dims)) gets under scheme s, or
 * src_type when it is not a weight matrix (kept as is); pure: the scheme's
 * default type for every weight matrix, no per-tensor rules. The layer of
 * attn_v / ffn_down is parsed from "blk.N.". -1 (detail set, TK_EINVAL) when
 * no type fits the row length ne[0]. */
int tk_quant_tensor_type(const struct tk_quant_scheme *s, const struct tk_quant_model_info *mi,
			 const char *name, uint32_t n_dims, const int64_t *ne, int src_type,
			 bool pure);

struct tk_quantize_opts {
	bool pure;      /* no per-tensor rules (llama-quantize --pure) */
	int n_threads;  /* >= 1; 0: the number of online CPUs */
};

/* Writes in_path re-encoded under scheme s to out_path (PATH.tmp, then
 * renamed; out_path untouched on error). 0, or TK_ENOENT/TK_EFORMAT/... from
 * reading in_path, TK_EINVAL (bad options, a row length no type fits),
 * TK_EUNSUPPORTED (requantizing a quantized tensor), TK_EIO/TK_ENOMEM
 * writing; the detail names the tensor or file. out_path may equal in_path
 * (the input stays mapped until the rename). */
int tk_quantize_file(const char *in_path, const char *out_path, const struct tk_quant_scheme *s,
		     const struct tk_quantize_opts *o);

#endif
