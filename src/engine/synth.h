/*
 * synth.h — writes GGUF models with random weights of a chosen architecture,
 * shape and tensor type (for tests and benchmarks: `tanuki model synth`).
 *
 * The file carries every hyperparameter key llama.cpp reads for the
 * architecture, the tensor names it expects (token_embd, output_norm, output,
 * blk.N.*), and a tokenizer: copied from another GGUF (every tokenizer.* key)
 * or, without one, a minimal SentencePiece-style vocabulary of 3 specials and
 * 256 byte tokens.
 *
 * Weights: 2-D matrices and token_embd are normal(0, weight_std) encoded in
 * the requested type; norm weights are 1.0 and biases normal(0, weight_std),
 * both kept F32 as llama.cpp's quantizer does. The stream of random numbers
 * depends only on the seed and the tensor's position, so a seed reproduces a
 * file byte for byte.
 *
 * Stateless; any thread.
 */
#ifndef TK_ENGINE_SYNTH_H
#define TK_ENGINE_SYNTH_H

#include <stdint.h>

enum tk_synth_arch { TK_SYNTH_LLAMA, TK_SYNTH_QWEN2 };

struct tk_synth_opts {
	enum tk_synth_arch arch; /* default TK_SYNTH_LLAMA */
	int type;                /* enum tk_type of the matrices; default F32 */
	uint32_t n_embd;         /* default 256 */
	uint32_t n_layer;        /* default 2 */
	uint32_t n_head;         /* default 4 */
	uint32_t n_head_kv;      /* default n_head */
	uint32_t n_ff;           /* default 2 * n_embd */
	uint32_t n_ctx;          /* context_length key; default 2048 */
	float weight_std;        /* default 0.02 */
	uint64_t seed;           /* default 1 */
	const char *vocab_from;  /* GGUF to copy tokenizer.* from; NULL: built-in */
	const char *name;        /* general.name; NULL: "tanuki-synth-<arch>-<type>" */
};

/* Fills o with the defaults above. */
void tk_synth_opts_default(struct tk_synth_opts *o);

/* Checks o (shapes divisible by heads and by the type's block size, type
 * quantizable, sizes bounded) and writes the model to path. 0, TK_EINVAL
 * (detail names the option), TK_EIO, TK_ENOMEM, or a GGUF error from
 * vocab_from. */
int tk_synth_write(const struct tk_synth_opts *o, const char *path);

/* llama.cpp's general.file_type value for a model whose matrices are type t
 * (ALL_F32 = 0, MOSTLY_F16 = 1, Q4_0 = 2, ...), or -1 if it has none. */
int tk_synth_file_type(int t);

#endif
