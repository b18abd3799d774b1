/*
 * context.h — an inference context over a loaded model: the KV cache, the
 * scratch buffers, and the forward pass (prefill a batch, decode a token).
 *
 * Everything is allocated once in engine_ctx_new() from n_ctx and n_batch;
 * evaluation never allocates. The context remembers how many positions are
 * in its cache (n_past); engine_ctx_eval() appends tokens at n_past and
 * returns their logits. Going past n_ctx is an error (TK_ELIMIT) — the
 * cache never wraps or shifts.
 *
 * The forward pass (llama family, see docs/engine.md "Forward pass and
 * sampling"): x = embd[tok]; per layer: h = rmsnorm(x)*w; q,k,v = Wq h, Wk h,
 * Wv h (+bias); rope(q,k); k,v into the cache; causal grouped-query attention
 * scaled by 1/sqrt(head_dim); x += Wo att; h = rmsnorm(x)*w;
 * x += Wdown(silu(Wgate h) * Wup h); logits = Woutput rmsnorm(x)*w.
 *
 * Sequences (continuous batching): a context holds n_seq_max independent
 * sequences, each with its own KV region of n_ctx positions and its own
 * n_past. engine_ctx_decode() evaluates a batch whose tokens may belong to
 * different sequences in one pass over the weights (every matrix product
 * takes all the batch's rows at once). The single-sequence calls
 * (engine_ctx_eval, _n_past, _rewind, _logits) work on sequence 0.
 *
 * Threads: a context belongs to one thread at a time. It owns a persistent
 * pool of n_threads - 1 workers (pool.h), started in engine_ctx_new() and
 * joined in engine_ctx_free(); matrix products are split by weight rows,
 * attention by (token, KV head), and the per-token ops of large batches by
 * tokens. The model may be shared by many contexts.
 */
#ifndef TK_ENGINE_CONTEXT_H
#define TK_ENGINE_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/lora.h"
#include "engine/model.h"
#include "engine/ops.h"
#include "engine/pool.h"

#define ENGINE_CTX_DEFAULT_MAX 4096 /* n_ctx when 0 is asked: min(train, this) */
#define ENGINE_MAX_THREADS ENGINE_POOL_MAX_THREADS
#define ENGINE_MAX_SEQ 256 /* largest n_seq_max */

struct engine_ctx_params {
	int32_t n_ctx;     /* positions in the KV cache of each sequence;
			    * 0: min(n_ctx_train, 4096) */
	int32_t n_batch;   /* tokens per forward step (scratch rows), at most
			    * n_ctx * n_seq_max; 0: min(n_ctx, 512) */
	int32_t n_threads; /* 1..ENGINE_MAX_THREADS; 0: engine_default_threads()
			    * (physical cores) */
	enum engine_kv_type kv_type; /* ENGINE_KV_F16 (llama.cpp's default) or F32 */
	int32_t n_seq_max; /* sequences (1..ENGINE_MAX_SEQ); 0: 1. The KV cache
			    * takes n_seq_max * n_ctx positions. */
};

void engine_ctx_params_default(struct engine_ctx_params *p);

/* Bytes a context holds, by kind (the weights are the model's, in the mmap). */
struct engine_mem {
	size_t weights_bytes; /* model tensors (mapped, shared between contexts) */
	size_t kv_bytes;      /* K and V cache of every layer */
	size_t scratch_bytes; /* activations, encoded activations, logits */
};

struct engine_ctx;

/* Makes a context. m is borrowed and must outlive the context; params is
 * copied. NULL with the detail set: TK_EINVAL (bad params), TK_ENOMEM,
 * TK_EIO (a worker thread could not be started). */
struct engine_ctx *engine_ctx_new(const struct engine_model *m,
				  const struct engine_ctx_params *params);

/* Frees the context; NULL ok. */
void engine_ctx_free(struct engine_ctx *c);

/* Evaluates n tokens at positions n_past .. n_past+n-1 (in steps of n_batch)
 * and advances n_past. logits_all: NULL, or n * n_vocab floats that receive
 * the logits of every position (row i for tokens[i]). The last position's
 * logits are always kept in the context (engine_ctx_logits()).
 * 0, TK_EINVAL (n <= 0 or a token id outside the vocabulary: nothing is
 * evaluated), TK_ELIMIT (n_past + n > n_ctx: nothing is evaluated). tokens
 * and logits_all are borrowed. */
int engine_ctx_eval(struct engine_ctx *c, const int32_t *tokens, int32_t n, float *logits_all);

/* Logits of the last evaluated position (after engine_ctx_decode: of the
 * batch's last wanted token): n_vocab floats, borrowed, valid until the next
 * eval or decode; NULL before the first and after a rewind of sequence 0 to
 * 0. */
const float *engine_ctx_logits(const struct engine_ctx *c);

/* Positions in the cache (of sequence 0). */
int32_t engine_ctx_n_past(const struct engine_ctx *c);
int32_t engine_ctx_n_ctx(const struct engine_ctx *c);

/* Forgets positions n_past.. of sequence 0 (0 empties it); later evals
 * overwrite them. 0 or TK_EINVAL when n_past is negative or beyond the current one. */
int engine_ctx_rewind(struct engine_ctx *c, int32_t n_past);

/* A batch for engine_ctx_decode(): n tokens, token i appended to sequence
 * seq[i] at that sequence's next position (its n_past, advanced token by
 * token in batch order, so a sequence may have several tokens in a batch —
 * a prompt chunk — and each attends to the ones before it). All arrays are
 * borrowed for the call.
 *   want: NULL, or [n] flags: nonzero = compute token i's logits. NULL
 *         means the last token of each sequence present in the batch. */
struct engine_batch {
	int32_t n;
	const int32_t *tokens; /* [n] token ids */
	const int32_t *seq;    /* [n] sequence ids 0..n_seq_max-1; NULL: all 0 */
	const int8_t *want;    /* [n] or NULL (see above) */
};

/* Evaluates a batch (in steps of n_batch tokens; each step is one pass over
 * the weights for all its tokens, whatever their sequences) and advances
 * each sequence's n_past by its tokens. logits: NULL, or one row of n_vocab
 * floats per wanted token, in batch order (engine_batch_n_wanted() rows).
 * With logits NULL only the last wanted token's row is computed. Either
 * way the last wanted token's logits are kept (engine_ctx_logits()).
 * Adapters (engine_ctx_set_adapters) apply to every token of the batch:
 * sequences that need different adapters need different contexts.
 * 0, TK_EINVAL (n <= 0, a token id outside the vocabulary or a sequence id
 * outside 0..n_seq_max-1), TK_ELIMIT (a sequence would pass n_ctx); on an
 * error nothing is evaluated. */
int engine_ctx_decode(struct engine_ctx *c, const struct engine_batch *b, float *logits);

/* Rows of logits a batch produces (its wanted tokens); 0 for a bad batch. */
int32_t engine_batch_n_wanted(const struct engine_batch *b);

/* Positions in sequence seq's cache; -1 for a bad seq. */
int32_t engine_ctx_seq_n_past(const struct engine_ctx *c, int32_t seq);

/* Forgets positions n_past.. of sequence seq (like engine_ctx_rewind).
 * 0 or TK_EINVAL (bad seq, n_past negative or beyond the current one). */
int engine_ctx_seq_rewind(struct engine_ctx *c, int32_t seq, int32_t n_past);

/* Empties sequence seq (rewind to 0). 0 or TK_EINVAL (bad seq). */
int engine_ctx_seq_clear(struct engine_ctx *c, int32_t seq);

/* n_seq_max and n_threads as resolved at creation. */
int32_t engine_ctx_n_seq_max(const struct engine_ctx *c);
int32_t engine_ctx_n_threads(const struct engine_ctx *c);

/* Memory held, by kind. */
void engine_ctx_mem(const struct engine_ctx *c, struct engine_mem *out);

const struct engine_model *engine_ctx_model(const struct engine_ctx *c);

/* LoRA adapters (lora.h) applied by this context's later evals: y = W x +
 * sum_i s_i B_i (A_i x) on every weight an adapter covers, in prefill and
 * decode; the model is not touched, so other contexts over the same model
 * run their own sets (or none) at the same time. uses[0..n) is copied (n <=
 * ENGINE_LORA_MAX_ACTIVE, n = 0 clears the set); the adapters are borrowed
 * and must stay alive until replaced or the context is freed. Each must fit
 * the context's model and have a finite scale. Switching is a copy of n
 * pointers, plus a one-time scratch allocation when a larger rank or output
 * width than any before is set. The KV cache is kept: positions already
 * evaluated keep the keys/values of the set they were computed with (rewind
 * to recompute them). 0, TK_EINVAL (too many, misfit, bad scale; the set is
 * left unchanged) or TK_ENOMEM. */
int engine_ctx_set_adapters(struct engine_ctx *c, const struct engine_lora_use *uses, size_t n);

/* The current set: *uses (borrowed, may be NULL when 0) and its count. */
size_t engine_ctx_adapters(const struct engine_ctx *c, const struct engine_lora_use **uses);

#endif
