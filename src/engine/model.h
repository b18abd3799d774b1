/*
 * model.h — a language model loaded from a GGUF file: hyperparameters,
 * weights bound by name, and the bytes they take.
 *
 * engine_model_load() opens the file through gguf.h (read-only mmap), picks
 * the architecture row (arch.h) from `general.architecture`, reads the
 * hyperparameters under that prefix, and binds every tensor the forward pass
 * uses, checking each one's shape and type. Weights are never copied: every
 * engine_weight points into the mapping, which the model owns.
 *
 * Errors name what is wrong: an unknown architecture ("model: x.gguf:
 * architecture 'gpt2' is not supported (supported: llama, qwen2)"), a
 * missing tensor, a shape that does not fit the hyperparameters, a tensor
 * type this build cannot compute ("... type q4_k: not supported").
 *
 * Thread safety: a loaded model is immutable; any number of contexts
 * (context.h) on any threads may share it. Free it after all of them.
 */
#ifndef TK_ENGINE_MODEL_H
#define TK_ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/arch.h"
#include "engine/ops.h"

struct tk_gguf;

/* How RoPE positions are scaled (the GGUF `<arch>.rope.scaling.type`). */
enum engine_rope_scaling {
	ENGINE_ROPE_SCALING_NONE,
	ENGINE_ROPE_SCALING_LINEAR, /* positions divided by the factor */
};

struct engine_hparams {
	int32_t n_ctx_train;  /* <arch>.context_length */
	int32_t n_embd;       /* <arch>.embedding_length */
	int32_t n_layer;      /* <arch>.block_count */
	int32_t n_head;       /* <arch>.attention.head_count */
	int32_t n_head_kv;    /* <arch>.attention.head_count_kv (default n_head) */
	int32_t n_ff;         /* <arch>.feed_forward_length */
	int32_t head_dim;     /* <arch>.attention.key_length (default n_embd / n_head) */
	int32_t n_rot;        /* <arch>.rope.dimension_count (default head_dim) */
	int32_t n_vocab;      /* token_embd.weight ne[1] */
	float rms_eps;        /* <arch>.attention.layer_norm_rms_epsilon */
	float rope_freq_base; /* <arch>.rope.freq_base (default 10000) */
	enum engine_rope_scaling rope_scaling;
	float rope_scale_factor; /* linear factor (1 when none) */
	bool tied_output;     /* output.weight absent: logits use token_embd */
	bool has_rope_freqs;  /* rope_freqs.weight present (Llama 3 style) */
};

/* Weights of one decoder block. Shapes in ggml order [n_in, n_out]; norm and
 * bias vectors are float arrays. */
struct engine_layer {
	const float *attn_norm;   /* [n_embd] */
	struct engine_weight wq;  /* [n_embd, n_head * head_dim] */
	struct engine_weight wk;  /* [n_embd, n_head_kv * head_dim] */
	struct engine_weight wv;  /* [n_embd, n_head_kv * head_dim] */
	const float *bq;          /* [n_head * head_dim] or NULL (no bias) */
	const float *bk;          /* [n_head_kv * head_dim] or NULL */
	const float *bv;          /* [n_head_kv * head_dim] or NULL */
	struct engine_weight wo;  /* [n_head * head_dim, n_embd] */
	const float *ffn_norm;    /* [n_embd] */
	struct engine_weight w_gate; /* [n_embd, n_ff] */
	struct engine_weight w_up;   /* [n_embd, n_ff] */
	struct engine_weight w_down; /* [n_ff, n_embd] */
};

struct engine_model {
	struct tk_gguf *gguf;           /* owned: the mapping every weight points into */
	const struct engine_arch *arch; /* static table row */
	struct engine_hparams hp;
	struct engine_weight tok_embd;  /* [n_embd, n_vocab] (row t is token t's vector) */
	const float *output_norm;       /* [n_embd] */
	struct engine_weight output;    /* [n_embd, n_vocab]; == tok_embd when tied */
	const float *rope_freqs;        /* [n_rot / 2] or NULL */
	struct engine_layer *layers;    /* owned: [n_layer] */
	size_t weights_bytes;           /* bytes of every tensor bound, in the mmap */
	char *path;                     /* owned copy of the file name, for messages */
};

/* Loads a model. NULL on error with the detail set: TK_EIO (cannot open),
 * TK_EFORMAT (malformed file, missing key or tensor, shape mismatch),
 * TK_EUNSUPPORTED (architecture or tensor type not supported), TK_ENOMEM.
 * path is borrowed. */
struct engine_model *engine_model_load(const char *path);

/* Like engine_model_load, but takes an opened GGUF handle (ownership
 * transferred: closed on failure too). name is used in messages. */
struct engine_model *engine_model_from_gguf(struct tk_gguf *g, const char *name);

/* Unmaps and frees. NULL ok. */
void engine_model_free(struct engine_model *m);

/* The RoPE settings of the model, for engine_op_rope(). */
void engine_model_rope(const struct engine_model *m, struct engine_rope *out);

#endif
