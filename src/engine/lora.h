/*
 * lora.h — LoRA adapters in llama.cpp's GGUF adapter format: load, validate
 * against a base model, and the run-time delta y += s * B (A x).
 *
 * File format (what engine_lora_load accepts):
 *   general.type = "adapter", adapter.type = "lora",
 *   general.architecture = the base model's architecture,
 *   adapter.lora.alpha (optional float, >= 0),
 *   for each adapted base weight W named N (ne = [n_in, n_out]):
 *     N.lora_a  ne = [n_in, rank]   (rank rows of n_in)
 *     N.lora_b  ne = [rank, n_out]  (n_out rows of rank)
 *   in F32, F16, BF16 or Q8_0. Adaptable weights: blk.L.attn_q / attn_k /
 *   attn_v / attn_output / ffn_gate / ffn_up / ffn_down .weight (L <
 *   n_layer) and output.weight (not when the model ties it to token_embd).
 * Anything else is refused with a detail naming the file and the tensor:
 * another architecture, an unknown or unadaptable tensor, half a pair, a
 * rank that differs between the halves, a shape that does not fit the base
 * weight, a type outside the list, no pairs at all.
 *
 * Scale. The effective scale of an adapter used at user scale u is
 * u * alpha / rank when alpha > 0, else u (engine_lora_scale()); rank is the
 * pair's own rank, so an adapter whose pairs differ in rank scales each pair
 * by its rank, as llama.cpp does.
 *
 * Storage. At load every pair is decoded to float32 (A [rank][n_in], B
 * [n_out][rank]) into memory the adapter owns; the file is closed before
 * engine_lora_load returns. engine_lora_bytes() is that memory. The base
 * model is never written: the delta is added to each product's output.
 *
 * Thread safety: a loaded adapter is immutable; any number of contexts on any
 * threads may use it at once. Free it only after every context using it has
 * dropped it (engine_ctx_set_adapters with another set, or engine_ctx_free);
 * adapter_cache.h counts those uses for you.
 */
#ifndef TK_ENGINE_LORA_H
#define TK_ENGINE_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "engine/ops.h"

/* The weights of a layer an adapter may touch. */
enum engine_lora_slot {
	ENGINE_LORA_Q,
	ENGINE_LORA_K,
	ENGINE_LORA_V,
	ENGINE_LORA_O,
	ENGINE_LORA_GATE,
	ENGINE_LORA_UP,
	ENGINE_LORA_DOWN,
	ENGINE_LORA_N_SLOTS
};

#define ENGINE_LORA_MAX_RANK 4096  /* larger ranks are refused */
#define ENGINE_LORA_MAX_ACTIVE 8   /* adapters one context applies at once */

struct engine_lora;

/* One adapter in a context's set, with its effective scale. */
struct engine_lora_use {
	const struct engine_lora *lora; /* borrowed; must outlive its use */
	float user_scale;               /* the scale asked for (1.0 = as trained) */
};

/* Loads path and validates it against m (borrowed; only read during the
 * call). NULL with the detail set: TK_ENOENT / TK_EIO (file), TK_EFORMAT
 * (malformed GGUF, not a LoRA adapter, shape or pairing error),
 * TK_EINVAL (architecture or tensor that does not fit m), TK_EUNSUPPORTED
 * (tensor type), TK_ELIMIT (rank > ENGINE_LORA_MAX_RANK), TK_ENOMEM. */
struct engine_lora *engine_lora_load(const char *path, const struct engine_model *m);

/* The same from an opened GGUF handle (borrowed, not closed; only read during
 * the call). name is used in messages and kept as the adapter's name. */
struct engine_lora *engine_lora_from_gguf(const struct tk_gguf *g, const char *name,
					  const struct engine_model *m);

/* Frees; NULL ok. */
void engine_lora_free(struct engine_lora *a);

const char *engine_lora_name(const struct engine_lora *a); /* borrowed */
float engine_lora_alpha(const struct engine_lora *a);      /* 0 when absent */
int32_t engine_lora_max_rank(const struct engine_lora *a);
size_t engine_lora_n_pairs(const struct engine_lora *a);
size_t engine_lora_bytes(const struct engine_lora *a);     /* float storage held */

/* The pair adapting layer il's weight `slot` (il < 0: output.weight; slot is
 * then ignored). Returns 1 and fills *A ([n_in] -> [rank], F32) and *B
 * ([rank] -> [n_out], F32), pointing into the adapter; 0 when the adapter
 * leaves that weight alone (or il is out of range). */
int engine_lora_pair(const struct engine_lora *a, int32_t il, enum engine_lora_slot slot,
		     struct engine_weight *A, struct engine_weight *B);

/* Effective scale of pair (il, slot) of a at user scale u (see top). */
float engine_lora_scale(const struct engine_lora *a, int32_t il, enum engine_lora_slot slot,
			float u);

/* Checks that a fits model m (every pair's n_in / n_out equals the base
 * weight's). 0 or TK_EINVAL naming the first mismatch. */
int engine_lora_check_model(const struct engine_lora *a, const struct engine_model *m);

/* Writes a copy of the model file at model_path with n adapters merged into
 * its weights (W' = W + sum s_i B_i A_i, summed in double) to out_path.
 * Adapted weights are written in float32 (exact); every other tensor and all
 * metadata are copied unchanged. 0 or a TK_E* error with the detail set. */
int engine_lora_merge_write(const char *model_path, const struct engine_lora_use *uses,
			    size_t n, const char *out_path);

#endif
