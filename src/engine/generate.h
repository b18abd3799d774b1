/*
 * generate.h — one generation: a prompt evaluated, then tokens sampled,
 * evaluated and decoded to text until a stop rule fires.
 *
 * This is the loop `tanuki generate` and the embedded LLM backend share:
 * prompt prefill (one batch per n_batch), penalties primed with the prompt,
 * sample -> stop checks -> incremental UTF-8-safe decode -> stream -> eval.
 * Stop rules: an end-of-generation token (the tokenizer's EOS/EOT/... or a
 * listed id; never part of the output), a stop string (the text is cut
 * before it; streamed text never shows any of it because bytes that could
 * start a stop string are held back until they cannot), max_tokens, a full
 * context (never a wrap), or the callback asking to stop.
 *
 * Ownership: ctx, tok, prompt and params are borrowed for the call; the
 * result's tokens and text are malloc'd and owned by the caller
 * (engine_gen_result_free). Threads: the caller's context's thread.
 */
#ifndef TK_ENGINE_GENERATE_H
#define TK_ENGINE_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/context.h"
#include "engine/sampler.h"

struct tk_tokenizer;
struct tk_tok_stream;
struct tk_buf;

#define ENGINE_GEN_TEXT_MAX (16u << 20) /* bytes of generated text kept */

struct engine_gen_params {
	struct engine_sampler_params sampling;
	int32_t max_tokens;          /* >= 0; 0 generates nothing */
	const char *const *stop;     /* stop strings (borrowed), n_stop of them */
	size_t n_stop;
	const int32_t *stop_ids;     /* extra end-of-generation ids, n_stop_ids */
	size_t n_stop_ids;
};

/* Why the generation ended. */
enum engine_finish {
	ENGINE_FINISH_LENGTH,  /* max_tokens */
	ENGINE_FINISH_STOP,    /* end-of-generation token or stop string */
	ENGINE_FINISH_CONTEXT, /* the context is full */
	ENGINE_FINISH_CANCEL,  /* the callback asked to stop */
};

/* "length", "stop", "context", "cancel". */
const char *engine_finish_name(enum engine_finish f);

struct engine_gen_result {
	int32_t *tokens;     /* owned: generated ids (stop token excluded) */
	int32_t n_tokens;
	char *text;          /* owned, NUL-terminated: their text (cut at a stop
			      * string); the ids in decimal when tok is NULL */
	size_t text_len;
	enum engine_finish finish;
	int32_t prompt_tokens;
	int32_t n_decoded;   /* single-token evaluations after the prompt */
	double prompt_ms;    /* prompt evaluation */
	double decode_ms;    /* the sampling/decoding loop */
};

/* Streaming callback: text[0..len) is the next piece of final output (valid
 * UTF-8 when a tokenizer is given). Return 0 to go on, non-zero to stop
 * (finish CANCEL). */
typedef int (*engine_gen_cb)(void *ud, const char *text, size_t len);

/* Runs one generation from the context's current position (normally 0).
 * tok may be NULL (no text decoding, no stop strings: the text is the ids).
 * cb may be NULL. On success fills *out (free with engine_gen_result_free)
 * and returns 0; else a negative TK_E* (TK_ELIMIT when the prompt does not
 * fit the context, TK_EINVAL for bad params or ids) with *out zeroed. */
int engine_generate(struct engine_ctx *ctx, const struct tk_tokenizer *tok,
		    const int32_t *prompt, int32_t n_prompt, const struct engine_gen_params *params,
		    engine_gen_cb cb, void *ud, struct engine_gen_result *out);

/* Frees the result's arrays (the struct itself is the caller's). NULL ok. */
void engine_gen_result_free(struct engine_gen_result *r);

/* ---- the stop rules, for loops of their own (the embedded backend's
 * scheduler-driven loop) that must end exactly as engine_generate does ---- */

/* The stop rules of one generation: params' stop strings and stop ids, and
 * with a tokenizer its EOS/EOT and every end-of-generation id. tok is
 * borrowed for the generation (may be NULL). */
struct engine_gen_stop {
	struct engine_stop stop;
	const struct tk_tokenizer *tok;
};

/* Sets up *gs from params (its strings are borrowed for the generation);
 * 0 or TK_EINVAL / TK_ELIMIT (a bad or too many stop strings). */
int engine_gen_stop_init(struct engine_gen_stop *gs, const struct tk_tokenizer *tok,
			 const struct engine_gen_params *params);

enum engine_gen_verdict {
	ENGINE_GEN_GO,         /* keep the token and go on */
	ENGINE_GEN_END_TOKEN,  /* an end-of-generation token: not kept, ends */
	ENGINE_GEN_END_STRING, /* keep the token; the text was cut at a stop
				* string; ends */
};

/* One sampled token id through the stop rules. An end-of-generation id:
 * ENGINE_GEN_END_TOKEN, *text unchanged. Otherwise id's text is appended to
 * *text — decoded through stream, or the id in decimal (space-separated)
 * when stream is NULL — and a stop string found in *text cuts it before
 * the string: ENGINE_GEN_END_STRING. Else ENGINE_GEN_GO. *show gets the
 * bytes of *text that may be streamed now (the rest could still begin a
 * stop string; all of it after END_STRING). max_tokens, a full context and
 * cancelling are the caller's checks. 0, or the decoder's TK_E* (TK_ELIMIT
 * when *text is full). */
int engine_gen_stop_check(const struct engine_gen_stop *gs, struct tk_tok_stream *stream,
			  int32_t id, struct tk_buf *text, enum engine_gen_verdict *verdict,
			  size_t *show);

#endif
