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
 * Packed weights (quant_pack.h, docs/engine.md "Packed weights"): after
 * binding, every matrix the forward pass multiplies by (attention, FFN,
 * output — a tied output gets its own packed copy, token lookups keep the
 * file rows) with n_out >= TK_PACK_ROWS whose type has a packed layout with
 * a fast product on this CPU (the active traits' .pack) is copied into that
 * layout, on engine_default_threads() threads; engine_weight.packed points
 * at the copy. The model owns the copies: one anonymous mapping
 * (packed_bytes, 64-byte aligned per weight), unmapped with the model.
 * Where the file is mapped (not a buffer), the whole pages of the packed
 * rows are then dropped from the process (MADV_DONTNEED; they are read back
 * from the file if anything touches them again), so resident memory stays
 * about one copy of the weights. TANUKI_NO_REPACK=1 in the environment (any
 * value but "" or "0") or params.repack = ENGINE_REPACK_OFF keeps every
 * weight in the file layout; ENGINE_REPACK_REF packs with the portable
 * reference layouts (tk_pack_traits_ref) whatever the CPU, for tests.
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
	/* packed copies (see above) */
	void *packed;                   /* owned: one anonymous mapping, or NULL */
	size_t packed_bytes;            /* its size in bytes (0: nothing packed) */
	int32_t n_packed;               /* weights with a packed copy */
	double pack_ms;                 /* wall time packing took at load */
	const char *pack_mode;          /* "off", "env-off", "auto", "ref" */
};

/* Whether weights get packed copies at load. */
enum engine_repack {
	ENGINE_REPACK_AUTO = 0, /* the active ISA's layouts, unless TANUKI_NO_REPACK */
	ENGINE_REPACK_OFF,      /* never */
	ENGINE_REPACK_REF,      /* the reference layouts (tk_pack_traits_ref), always:
				 * tests cover the packed path on any CPU */
};

struct engine_model_params {
	enum engine_repack repack;
	int n_threads; /* packing threads; 0: engine_default_threads() */
};

/* AUTO, 0 threads. */
void engine_model_params_default(struct engine_model_params *p);

/* Loads a model. NULL on error with the detail set: TK_EIO (cannot open),
 * TK_EFORMAT (malformed file, missing key or tensor, shape mismatch),
 * TK_EUNSUPPORTED (architecture or tensor type not supported), TK_ENOMEM.
 * path is borrowed. */
struct engine_model *engine_model_load(const char *path);

/* Like engine_model_load, but takes an opened GGUF handle (ownership
 * transferred: closed on failure too). name is used in messages. */
struct engine_model *engine_model_from_gguf(struct tk_gguf *g, const char *name);

/* The same two with explicit parameters (params borrowed; NULL: defaults).
 * The ones above use the defaults. */
struct engine_model *engine_model_load_params(const char *path,
					      const struct engine_model_params *params);
struct engine_model *engine_model_from_gguf_params(struct tk_gguf *g, const char *name,
						   const struct engine_model_params *params);

/* Unmaps and frees. NULL ok. */
void engine_model_free(struct engine_model *m);

/* The RoPE settings of the model, for engine_op_rope(). */
void engine_model_rope(const struct engine_model *m, struct engine_rope *out);

#endif
