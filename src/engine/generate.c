/*
 * generate.c — the generation loop (generate.h). Owns, for the duration of
 * one call, the sampler, the stop rules, the incremental decoder and the
 * text buffer; hands the token array and the text to the caller.
 */
#include "engine/generate.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/time.h"
#include "engine/tokenizer.h"

#include <stdlib.h>
#include <string.h>

const char *engine_finish_name(enum engine_finish f)
{
	switch (f) {
	case ENGINE_FINISH_LENGTH: return "length";
	case ENGINE_FINISH_STOP: return "stop";
	case ENGINE_FINISH_CONTEXT: return "context";
	case ENGINE_FINISH_CANCEL: return "cancel";
	}
	return "unknown";
}

void engine_gen_result_free(struct engine_gen_result *r)
{
	if (!r)
		return;
	free(r->tokens);
	free(r->text);
	r->tokens = NULL;
	r->text = NULL;
}

static double ms_since(int64_t t0)
{
	return (double)(tk_time_mono_ns() - t0) / 1e6;
}

int engine_gen_stop_init(struct engine_gen_stop *gs, const struct tk_tokenizer *tok,
			 const struct engine_gen_params *params)
{
	int rc;
	gs->tok = tok;
	engine_stop_init(&gs->stop, params->max_tokens);
	for (size_t i = 0; i < params->n_stop; i++)
		if ((rc = engine_stop_add_string(&gs->stop, params->stop[i])))
			return rc;
	for (size_t i = 0; i < params->n_stop_ids; i++)
		if ((rc = engine_stop_add_token(&gs->stop, params->stop_ids[i])))
			return rc;
	if (tok && ((rc = engine_stop_add_token(&gs->stop, tk_tokenizer_eos(tok))) ||
		    (rc = engine_stop_add_token(&gs->stop, tk_tokenizer_eot(tok)))))
		return rc;
	return 0;
}

int engine_gen_stop_check(const struct engine_gen_stop *gs, struct tk_tok_stream *stream,
			  int32_t id, struct tk_buf *text, enum engine_gen_verdict *verdict,
			  size_t *show)
{
	*verdict = ENGINE_GEN_GO;
	*show = text->len;
	if (engine_stop_is_token(&gs->stop, id) || (gs->tok && tk_tokenizer_is_eog(gs->tok, id))) {
		*verdict = ENGINE_GEN_END_TOKEN;
		return 0;
	}
	int rc = stream ? tk_tok_stream_push(stream, id, text)
			: tk_buf_printf(text, "%s%d", text->len ? " " : "", id);
	if (rc)
		return rc;
	size_t at;
	if (engine_stop_find_string(&gs->stop, text->data, text->len, &at)) {
		tk_buf_truncate(text, at);
		*verdict = ENGINE_GEN_END_STRING;
		*show = text->len;
		return 0;
	}
	*show = text->len - engine_stop_partial_len(&gs->stop, text->data, text->len);
	return 0;
}

/* Streams text[*shown .. upto) and advances *shown. */
static int stream_out(engine_gen_cb cb, void *ud, const struct tk_buf *text, size_t upto,
		      size_t *shown)
{
	if (!cb || upto <= *shown)
		return 0;
	int rc = cb(ud, text->data + *shown, upto - *shown);
	*shown = upto;
	return rc;
}

int engine_generate(struct engine_ctx *ctx, const struct tk_tokenizer *tok,
		    const int32_t *prompt, int32_t n_prompt, const struct engine_gen_params *params,
		    engine_gen_cb cb, void *ud, struct engine_gen_result *out)
{
	memset(out, 0, sizeof *out);
	const struct engine_model *m = engine_ctx_model(ctx);
	int rc = 0;
	struct engine_sampler *smp = NULL;
	struct tk_tok_stream *stream = NULL;
	struct tk_buf text = TK_BUF_INIT(ENGINE_GEN_TEXT_MAX);
	struct engine_gen_stop stop;

	if (params->max_tokens < 0 || n_prompt <= 0)
		return tk_errf(TK_EINVAL, "generate: max_tokens %d, prompt of %d tokens",
			       params->max_tokens, n_prompt);
	if ((rc = engine_gen_stop_init(&stop, tok, params)))
		return rc;
	smp = engine_sampler_new(&params->sampling, m->hp.n_vocab);
	out->tokens = malloc(((size_t)params->max_tokens + 1) * sizeof *out->tokens);
	if (!smp || !out->tokens) {
		rc = smp ? tk_errf(TK_ENOMEM, "generate: out of memory") : tk_err_last();
		goto out;
	}
	if (tok && !(stream = tk_tok_stream_new(tok, 0))) {
		rc = tk_errf(TK_ENOMEM, "generate: out of memory");
		goto out;
	}

	/* prompt */
	int64_t t0 = tk_time_mono_ns();
	if ((rc = engine_ctx_eval(ctx, prompt, n_prompt, NULL)))
		goto out;
	out->prompt_ms = ms_since(t0);
	out->prompt_tokens = n_prompt;
	for (int32_t i = 0; i < n_prompt; i++)
		engine_sampler_accept(smp, prompt[i]);

	/* sample -> stop checks -> decode -> stream -> eval */
	enum engine_finish finish = ENGINE_FINISH_LENGTH;
	bool cut = false;  /* text was cut at a stop string */
	size_t shown = 0;  /* bytes handed to cb */
	t0 = tk_time_mono_ns();
	while (out->n_tokens < params->max_tokens) {
		int32_t id = engine_sampler_sample(smp, engine_ctx_logits(ctx));
		if (id < 0) {
			rc = id;
			goto out;
		}
		engine_sampler_accept(smp, id);
		enum engine_gen_verdict v;
		size_t show;
		if ((rc = engine_gen_stop_check(&stop, stream, id, &text, &v, &show)))
			goto out;
		if (v == ENGINE_GEN_END_TOKEN) {
			finish = ENGINE_FINISH_STOP;
			break;
		}
		out->tokens[out->n_tokens++] = id;
		if (v == ENGINE_GEN_END_STRING) {
			finish = ENGINE_FINISH_STOP;
			cut = true;
			break;
		}
		if (stream_out(cb, ud, &text, show, &shown)) {
			finish = ENGINE_FINISH_CANCEL;
			break;
		}
		if (out->n_tokens >= params->max_tokens)
			break;
		if (engine_ctx_n_past(ctx) >= engine_ctx_n_ctx(ctx)) {
			finish = ENGINE_FINISH_CONTEXT;
			break;
		}
		if ((rc = engine_ctx_eval(ctx, &id, 1, NULL)))
			goto out;
		out->n_decoded++;
	}
	out->decode_ms = ms_since(t0);
	/* bytes the decoder still holds (an unfinished character) */
	if (stream && !cut && (rc = tk_tok_stream_flush(stream, &text)))
		goto out;
	if (finish != ENGINE_FINISH_CANCEL)
		stream_out(cb, ud, &text, text.len, &shown);
	out->finish = finish;
	out->text_len = text.len;
	out->text = tk_buf_detach(&text, NULL);
	if (!out->text)
		rc = tk_errf(TK_ENOMEM, "generate: out of memory");
out:
	tk_buf_free(&text);
	tk_tok_stream_free(stream);
	engine_sampler_free(smp);
	if (rc) {
		engine_gen_result_free(out);
		memset(out, 0, sizeof *out);
	}
	return rc;
}
