/*
 * arch.h — the table of model architectures the forward pass understands.
 *
 * One row per GGUF `general.architecture` value. A row says how that family
 * differs from the llama baseline (pre-norm decoder, RMS norm, rotary
 * embedding, grouped-query attention, SwiGLU feed-forward): the RoPE pairing,
 * which optional tensors it carries, and which it may omit. Model loading
 * (model.c) reads hyperparameters under the prefix "<name>." and binds tensor
 * names from this table; the forward pass (context.c) branches only on these
 * flags. Adding a family (phi3, gemma2, qwen3, ...) is one row here plus, if
 * it needs one, a new flag read at the one place that uses it.
 *
 * The table is static and immutable: any thread may read it.
 */
#ifndef TK_ENGINE_ARCH_H
#define TK_ENGINE_ARCH_H

#include <stdbool.h>

#include "engine/ops.h"

struct engine_arch {
	const char *name;                 /* general.architecture value and key prefix */
	enum engine_rope_style rope_style; /* NORM (adjacent pairs) or NEOX (halves) */
	bool qkv_bias;   /* blk.N.attn_{q,k,v}.bias are required (qwen2) */
	bool tied_ok;    /* output.weight may be absent: logits use token_embd */
};

/* The row for an architecture name, or NULL when unsupported (no error set:
 * the caller names the file). */
const struct engine_arch *engine_arch_find(const char *name);

/* The supported names, comma-separated ("llama, qwen2"), for messages. */
const char *engine_arch_names(void);

#endif
