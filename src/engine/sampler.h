/*
 * sampler.h — picks the next token from a row of logits.
 *
 * Owns: the sampling chain (penalties, top-k, top-p, min-p, temperature,
 * random draw), its private PRNG (xoshiro256** seeded through splitmix64, so
 * the same seed gives the same tokens on every machine), the window of recent
 * tokens used by the penalties, and the stop rules of a generation (token ids,
 * end-of-generation tokens, stop strings, a token budget).
 *
 * The chain, in order (the order llama.cpp's default sampler uses):
 *   1. penalties over the last `penalty_last_n` accepted tokens: for a token
 *      seen c > 0 times, logit /= repeat_penalty when logit > 0, else
 *      logit *= repeat_penalty; then logit -= c * freq_penalty + presence_penalty;
 *   2. temp <= 0: greedy — the highest logit wins (lowest id on ties); stop;
 *   3. top-k (k <= 0: off), keeping the k highest logits;
 *   4. top-p (>= 1: off): the smallest prefix of the sorted candidates whose
 *      softmax mass reaches p (at least min_keep = 1 kept);
 *   5. min-p (<= 0: off): drop candidates whose probability is below
 *      min_p * the top probability;
 *   6. temperature: logits / temp, softmax, and one draw from the PRNG.
 *
 * Thread safety: a sampler belongs to one thread at a time (it has no lock).
 */
#ifndef TK_ENGINE_SAMPLER_H
#define TK_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sampling settings; engine_sampler_params_default() gives the documented
 * defaults shown beside each field. */
struct engine_sampler_params {
	float temp;              /* 0.8; <= 0 means greedy */
	int32_t top_k;           /* 40; <= 0 disables */
	float top_p;             /* 0.95; >= 1 disables */
	float min_p;             /* 0.05; <= 0 disables */
	float repeat_penalty;    /* 1.0 (off); > 0 */
	float freq_penalty;      /* 0.0 (off) */
	float presence_penalty;  /* 0.0 (off) */
	int32_t penalty_last_n;  /* 64 tokens of history; 0 disables penalties */
	uint64_t seed;           /* 0x5EED */
};

void engine_sampler_params_default(struct engine_sampler_params *p);

struct engine_sampler;

/* Makes a sampler for a vocabulary of n_vocab tokens. params is copied.
 * NULL with the detail set on bad params (TK_EINVAL) or TK_ENOMEM. */
struct engine_sampler *engine_sampler_new(const struct engine_sampler_params *params,
					  int32_t n_vocab);

/* Frees the sampler; NULL ok. */
void engine_sampler_free(struct engine_sampler *s);

/* Records a token as part of the context (prompt or generated), for the
 * penalty window. Ids outside [0, n_vocab) are ignored by the penalties. */
void engine_sampler_accept(struct engine_sampler *s, int32_t token);

/* Forgets the penalty window and reseeds the PRNG with the original seed. */
void engine_sampler_reset(struct engine_sampler *s);

/* Chooses a token from logits (n_vocab floats, borrowed, not modified).
 * Returns the token id (>= 0) or a negative TK_E* code (TK_EINVAL when every
 * logit is NaN or -inf). Does not accept the token: call
 * engine_sampler_accept() with it. */
int32_t engine_sampler_sample(struct engine_sampler *s, const float *logits);

/* Index of the highest logit (lowest index on ties; NaN never wins). -1 when
 * n <= 0. */
int32_t engine_argmax(const float *logits, int32_t n);

/* --- the PRNG, exposed for tests and for other reproducible draws --- */

struct engine_rng {
	uint64_t s[4];
};

/* Seeds the four words of state through splitmix64 (never all zero). */
void engine_rng_seed(struct engine_rng *r, uint64_t seed);
/* Next 64 random bits (xoshiro256**). */
uint64_t engine_rng_next(struct engine_rng *r);
/* Uniform double in [0, 1), 53 bits. */
double engine_rng_uniform(struct engine_rng *r);

/* --- stop rules of a generation (generate.h applies them and reports
 * why a generation ended) --- */

#define ENGINE_STOP_MAX_TOKENS 16  /* stop token ids */
#define ENGINE_STOP_MAX_STRINGS 8  /* stop strings */
#define ENGINE_STOP_STRING_MAX 256 /* bytes per stop string */

struct engine_stop {
	int32_t max_tokens;                       /* <= 0: no budget */
	int32_t token_ids[ENGINE_STOP_MAX_TOKENS]; /* stop ids (EOS, EOT, ...) */
	size_t n_token_ids;
	char strings[ENGINE_STOP_MAX_STRINGS][ENGINE_STOP_STRING_MAX + 1];
	size_t n_strings;
};

/* Empties the rules (no ids, no strings, no budget). */
void engine_stop_init(struct engine_stop *st, int32_t max_tokens);
/* Adds a stop token id (negative ids are ignored and return 0).
 * 0 or TK_ELIMIT past ENGINE_STOP_MAX_TOKENS. */
int engine_stop_add_token(struct engine_stop *st, int32_t id);
/* Adds a stop string (copied). 0, TK_EINVAL (empty or longer than
 * ENGINE_STOP_STRING_MAX) or TK_ELIMIT past ENGINE_STOP_MAX_STRINGS. */
int engine_stop_add_string(struct engine_stop *st, const char *s);

/* True when id is one of the stop token ids. */
bool engine_stop_is_token(const struct engine_stop *st, int32_t id);

/* Looks for the earliest stop string in text[0..len) (the text generated so
 * far, borrowed). Returns true and sets *at to the offset where the match
 * begins (the caller cuts the output there) when one occurs. */
bool engine_stop_find_string(const struct engine_stop *st, const char *text, size_t len,
			     size_t *at);

/* How many trailing bytes of text[0..len) could still be the beginning of a
 * stop string: a streaming caller holds those bytes back until more text
 * arrives. 0 when none. */
size_t engine_stop_partial_len(const struct engine_stop *st, const char *text, size_t len);

#endif
