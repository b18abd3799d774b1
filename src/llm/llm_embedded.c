/*
 * llm_embedded.c — the embedded backend: Tanuki's own engine (src/engine/)
 * answering in-process from a GGUF file (llm.model is its path).
 *
 * Owns the model (mmap), its tokenizer and a pool of at most
 * llm.embedded_contexts inference contexts, each made on first use. A call
 * renders the messages with the model's chat template (engine/chat.h),
 * tokenizes, takes a free context (waiting, cancellably, when all are busy:
 * that wait is timings.queue_ms), and runs engine_generate (generate.h).
 *
 * Prompt-prefix reuse: each context remembers the tokens in its KV cache.
 * A call picks the free context sharing the longest prefix with its prompt,
 * rewinds to that prefix and evaluates only the rest (an agent's next turn
 * re-sends the whole conversation, so this skips most of the prefill). The
 * tokens skipped are counted in tanuki_llm_prompt_cache_tokens_total. The
 * repetition penalties are primed with the evaluated suffix only (they are
 * off by default).
 *
 * Structured output: a grammar (grammar.h), or a JSON schema converted to
 * one, constrains sampling in generate_constrained(): a sampled token is
 * kept only when its text may come next; rejected ones are redrawn, and
 * after GRAMMAR_LAZY_TRIES the whole vocabulary is masked at once.
 *
 * Adapters: with llm.adapter_dir, params.adapter names DIR/<name>.gguf in
 * an engine adapter cache (engine/adapter_cache.h: loaded on first use,
 * LRU under llm.adapter_budget_bytes); the context applies it for the
 * call. A context's cached prefix only counts for the same adapter.
 *
 * Locking: mu guards every slot's busy flag; a busy slot's context and
 * history belong to the thread that took it.
 */
#include "llm/llm_int.h"

#include "core/err.h"
#include "core/time.h"
#include "engine/adapter_cache.h"
#include "engine/chat.h"
#include "engine/context.h"
#include "engine/generate.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "llm/grammar.h"
#include "obs/metrics.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROMPT_TEXT_MAX (64u << 20)

struct slot {
	struct engine_ctx *ctx; /* NULL until first used */
	int32_t *hist;          /* tokens in the KV cache: hist[0..n_hist) */
	int32_t n_hist;
	char adapter[ENGINE_ADAPTER_NAME_MAX + 1]; /* the adapter hist was
						    * computed with; "" none */
	bool busy;              /* guarded by embedded.mu */
};

struct embedded {
	struct engine_model *m;
	struct tk_tokenizer *tok;
	const char *tmpl;       /* borrowed from the model's GGUF, or NULL */
	char name[256];
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* a slot was released */
	struct slot *slots;
	int32_t n_slots;
	struct tk_series *reused; /* tanuki_llm_prompt_cache_tokens_total */
	struct engine_adapter_cache *adapters; /* NULL without llm.adapter_dir */
};

static int embedded_init(struct llm_backend *b)
{
	const char *path = b->opt.model;
	if (!path)
		return tk_errf(TK_EINVAL, "embedded: llm.model must be the path of a GGUF model");
	if (b->opt.embedded_contexts < 1 || b->opt.embedded_contexts > 256)
		return tk_errf(TK_EINVAL, "embedded: llm.embedded_contexts must be in 1..256");
	struct embedded *e = calloc(1, sizeof *e);
	if (!e)
		return tk_errf(TK_ENOMEM, "embedded: out of memory");
	e->slots = calloc((size_t)b->opt.embedded_contexts, sizeof *e->slots);
	if (!e->slots) {
		free(e);
		return tk_errf(TK_ENOMEM, "embedded: out of memory");
	}
	e->n_slots = b->opt.embedded_contexts;
	if (!(e->m = engine_model_load(path))) {
		int rc = tk_err_wrap(tk_err_last() ? tk_err_last() : TK_EIO, "embedded");
		free(e->slots);
		free(e);
		return rc;
	}
	if (!(e->tok = tk_tokenizer_from_gguf(e->m->gguf))) {
		int rc = tk_err_wrap(tk_err_last() ? tk_err_last() : TK_EFORMAT,
				     "embedded: %s: tokenizer", path);
		engine_model_free(e->m);
		free(e->slots);
		free(e);
		return rc;
	}
	if (tk_gguf_get_str(e->m->gguf, "tokenizer.chat_template", &e->tmpl, NULL))
		e->tmpl = NULL;
	const char *gname = NULL;
	if (tk_gguf_get_str(e->m->gguf, "general.name", &gname, NULL) || !gname || !*gname) {
		const char *slash = strrchr(path, '/');
		gname = slash ? slash + 1 : path;
	}
	snprintf(e->name, sizeof e->name, "%s", gname);
	if (b->opt.adapter_dir) {
		struct engine_adapter_cache_opts ao;
		engine_adapter_cache_opts_default(&ao);
		ao.dir = b->opt.adapter_dir;
		ao.budget_bytes = b->opt.adapter_budget_bytes;
		ao.metrics = b->opt.metrics;
		if (!(e->adapters = engine_adapter_cache_new(e->m, &ao))) {
			int rc = tk_err_wrap(tk_err_last() ? tk_err_last() : TK_EIO,
					     "embedded: llm.adapter_dir");
			tk_tokenizer_free(e->tok);
			engine_model_free(e->m);
			free(e->slots);
			free(e);
			return rc;
		}
	}
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	e->reused = tk_metric_series(
		tk_metric_counter(b->opt.metrics, "tanuki_llm_prompt_cache_tokens_total",
				  "prompt tokens the embedded backend reused from a context's cache",
				  (const char *const[]){ "backend" }, 1),
		(const char *const[]){ "embedded" });
	b->impl = e;
	return 0;
}

static void embedded_fini(struct llm_backend *b)
{
	struct embedded *e = b->impl;
	if (!e)
		return;
	for (int32_t i = 0; i < e->n_slots; i++) {
		engine_ctx_free(e->slots[i].ctx);
		free(e->slots[i].hist);
	}
	free(e->slots);
	engine_adapter_cache_free(e->adapters);
	tk_tokenizer_free(e->tok);
	engine_model_free(e->m);
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
	b->impl = NULL;
}

static int32_t common_prefix(const struct slot *s, const char *adapter, const int32_t *ids,
			     int32_t n)
{
	if (strcmp(s->adapter, adapter))
		return 0; /* keys and values were computed with other weights */
	int32_t k = 0;
	while (k < s->n_hist && k < n && s->hist[k] == ids[k])
		k++;
	return k;
}

/* Takes the free slot sharing the longest prefix with ids (a made one
 * before an unmade one), waiting while all are busy. */
static int slot_take(struct embedded *e, const char *adapter, const int32_t *ids, int32_t n,
		     const atomic_bool *cancel, struct slot **out)
{
	pthread_mutex_lock(&e->mu);
	for (;;) {
		struct slot *best = NULL;
		int32_t best_k = -1;
		for (int32_t i = 0; i < e->n_slots; i++) {
			struct slot *s = &e->slots[i];
			if (s->busy)
				continue;
			int32_t k = s->ctx ? common_prefix(s, adapter, ids, n) : -1;
			if (!best || k > best_k || (k == best_k && s->ctx && !best->ctx)) {
				best = s;
				best_k = k;
			}
		}
		if (best) {
			best->busy = true;
			*out = best;
			pthread_mutex_unlock(&e->mu);
			return 0;
		}
		if (llm_cancelled(cancel)) {
			pthread_mutex_unlock(&e->mu);
			return tk_errf(TK_ECANCELED, "embedded: cancelled while waiting for a context");
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&e->cv, &e->mu, &ts);
	}
}

static void slot_give(struct embedded *e, struct slot *s)
{
	pthread_mutex_lock(&e->mu);
	s->busy = false;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

static int slot_ready(const struct llm_backend *b, struct embedded *e, struct slot *s)
{
	if (s->ctx)
		return 0;
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = b->opt.embedded_n_ctx;
	cp.n_threads = b->opt.embedded_threads;
	if (!(s->ctx = engine_ctx_new(e->m, &cp)))
		return tk_err_wrap(tk_err_last() ? tk_err_last() : TK_ENOMEM, "embedded: context");
	s->hist = calloc((size_t)engine_ctx_n_ctx(s->ctx), sizeof *s->hist);
	if (!s->hist) {
		engine_ctx_free(s->ctx);
		s->ctx = NULL;
		return tk_errf(TK_ENOMEM, "embedded: out of memory");
	}
	s->n_hist = 0;
	return 0;
}

struct gen_tap {
	struct llm_acc *acc;
	const atomic_bool *cancel;
	int rc; /* why we asked the loop to stop */
};

static int gen_piece(void *ud, const char *text, size_t len)
{
	struct gen_tap *g = ud;
	if (llm_cancelled(g->cancel)) {
		g->rc = tk_errf(TK_ECANCELED, "embedded: cancelled");
		return 1;
	}
	g->rc = llm_acc_push(g->acc, text, len);
	return g->rc != 0;
}

/* Renders and tokenizes the conversation. *ids is malloc'd. */
static int make_prompt(struct embedded *e, const struct llm_message *msgs, size_t n,
		       int32_t **ids, int32_t *n_ids)
{
	struct tk_chat_msg *cm = calloc(n, sizeof *cm);
	if (!cm)
		return tk_errf(TK_ENOMEM, "embedded: out of memory");
	for (size_t i = 0; i < n; i++)
		cm[i] = (struct tk_chat_msg){ msgs[i].role, msgs[i].content };
	struct tk_buf text = TK_BUF_INIT(PROMPT_TEXT_MAX);
	int rc = tk_chat_apply(e->tmpl, TK_CHAT_CHATML, cm, n, true, &text, NULL);
	free(cm);
	if (rc) {
		tk_buf_free(&text);
		return tk_err_wrap(rc, "embedded: chat template");
	}
	struct tk_tok_encode_opts eo = { .bos = TK_TOK_BOS_DEFAULT, .parse_special = true };
	size_t cnt = 0;
	rc = tk_tokenizer_encode(e->tok, text.data ? text.data : "", text.len, &eo, ids, &cnt);
	tk_buf_free(&text);
	if (rc)
		return tk_err_wrap(rc, "embedded: tokenize");
	if (cnt == 0 || cnt > INT32_MAX) {
		free(*ids);
		*ids = NULL;
		return tk_errf(TK_EINVAL, "embedded: the prompt has no tokens");
	}
	*n_ids = (int32_t)cnt;
	return 0;
}

/* Grammar used by a call: from p->grammar or converted from p->json_schema;
 * NULL *out when the call has neither. */
static int call_grammar(const struct llm_params *p, struct llm_grammar **out)
{
	*out = NULL;
	if (!p->grammar && !p->json_schema)
		return 0;
	struct tk_buf text = TK_BUF_INIT(LLM_GRAMMAR_MAX_BYTES);
	const char *src = p->grammar;
	size_t len = src ? strlen(src) : 0;
	int rc = 0;
	if (!src) {
		json_t *schema;
		json_error_t je;
		if (!(schema = json_loads(p->json_schema, 0, &je))) {
			rc = tk_errf(TK_EINVAL, "embedded: json_schema: %s (line %d)", je.text,
				     je.line);
			goto out;
		}
		rc = llm_schema_to_grammar(schema, &text);
		json_decref(schema);
		if (rc)
			goto out;
		src = text.data;
		len = text.len;
	}
	if (!(*out = llm_grammar_parse(src, len)))
		rc = tk_err_wrap(tk_err_last() ? tk_err_last() : TK_EINVAL, "embedded");
out:
	tk_buf_free(&text);
	return rc;
}

/* Tries after which a sampled token is no longer redrawn one at a time but
 * the whole vocabulary is masked at once. */
#define GRAMMAR_LAZY_TRIES 16

struct cgen {
	int32_t *tokens; /* generated ids (malloc'd) */
	int32_t n_tokens;
	enum llm_finish finish;
};

/* Masks logits[0..n_vocab) to the tokens the grammar allows next (EOG ones
 * only when the text so far is a sentence). */
static int mask_all(const struct embedded *e, const struct llm_gstate *st, float *logits,
		    int32_t n_vocab)
{
	bool can_end = llm_gstate_accepts(st);
	for (int32_t t = 0; t < n_vocab; t++) {
		if (logits[t] == -INFINITY)
			continue;
		if (tk_tokenizer_is_eog(e->tok, t)) {
			if (!can_end)
				logits[t] = -INFINITY;
			continue;
		}
		const char *piece;
		size_t len;
		if (tk_tokenizer_piece(e->tok, t, 0, &piece, &len)) {
			logits[t] = -INFINITY;
			continue;
		}
		int rc = llm_gstate_check(st, piece, len, NULL);
		if (rc == TK_EINVAL)
			logits[t] = -INFINITY;
		else if (rc)
			return tk_err_wrap(rc, "embedded: grammar");
	}
	return 0;
}

/* The generation loop under a grammar: sample, and keep a token only when
 * the grammar allows its text next (redraw the others: lazily first, then
 * with the whole vocabulary masked). Ends at an end-of-generation token the
 * grammar allows, when the grammar admits nothing more, at max_tokens or a
 * full context. Stop strings do not apply. ids[k..n_ids) are evaluated
 * first. */
static int generate_constrained(struct embedded *e, struct slot *s, const int32_t *ids,
				int32_t n_ids, int32_t k, const struct engine_gen_params *gp,
				const struct llm_grammar *g, struct llm_acc *acc,
				const atomic_bool *cancel, struct cgen *out)
{
	int32_t n_vocab = (int32_t)tk_tokenizer_n_vocab(e->tok);
	struct engine_sampler *smp = NULL;
	struct llm_gstate *st = NULL;
	float *buf = NULL;
	int rc = 0;
	memset(out, 0, sizeof *out);
	out->finish = LLM_FINISH_LENGTH;
	if (n_ids - k > 0 && (rc = engine_ctx_eval(s->ctx, ids + k, n_ids - k, NULL))) {
		rc = tk_err_wrap(rc, "embedded: prompt");
		goto out;
	}
	if (!(smp = engine_sampler_new(&gp->sampling, n_vocab)) || !(st = llm_gstate_new(g))) {
		rc = tk_err_last() ? tk_err_last() : TK_ENOMEM;
		goto out;
	}
	buf = malloc((size_t)n_vocab * sizeof *buf);
	out->tokens = malloc(((size_t)gp->max_tokens + 1) * sizeof *out->tokens);
	if (!buf || !out->tokens) {
		rc = tk_errf(TK_ENOMEM, "embedded: out of memory");
		goto out;
	}
	for (int32_t i = 0; i < n_ids; i++)
		engine_sampler_accept(smp, ids[i]);
	while (out->n_tokens < gp->max_tokens) {
		if (llm_cancelled(cancel)) {
			rc = tk_errf(TK_ECANCELED, "embedded: cancelled");
			goto out;
		}
		memcpy(buf, engine_ctx_logits(s->ctx), (size_t)n_vocab * sizeof *buf);
		int32_t tok;
		struct llm_gstate *next = NULL;
		for (int tries = 0;; tries++) {
			if (tries == GRAMMAR_LAZY_TRIES && (rc = mask_all(e, st, buf, n_vocab)))
				goto out;
			tok = engine_sampler_sample(smp, buf);
			if (tok < 0) {
				rc = tk_errf(TK_ESTATE, "embedded: no token of the vocabulary can "
					     "continue the grammar here");
				goto out;
			}
			if (tk_tokenizer_is_eog(e->tok, tok)) {
				if (llm_gstate_accepts(st))
					break;
				buf[tok] = -INFINITY;
				continue;
			}
			const char *piece;
			size_t len;
			int crc = tk_tokenizer_piece(e->tok, tok, 0, &piece, &len);
			if (!crc)
				crc = llm_gstate_check(st, piece, len, &next);
			if (!crc)
				break;
			if (crc != TK_EINVAL) {
				rc = tk_err_wrap(crc, "embedded: grammar");
				goto out;
			}
			buf[tok] = -INFINITY;
		}
		if (!next) { /* an end-of-generation token */
			out->finish = LLM_FINISH_STOP;
			break;
		}
		llm_gstate_free(st);
		st = next;
		engine_sampler_accept(smp, tok);
		out->tokens[out->n_tokens++] = tok;
		const char *piece;
		size_t len;
		(void)tk_tokenizer_piece(e->tok, tok, 0, &piece, &len);
		if ((rc = llm_acc_push(acc, piece, len)))
			goto out;
		if (llm_gstate_done(st)) {
			out->finish = LLM_FINISH_STOP;
			break;
		}
		if (out->n_tokens >= gp->max_tokens)
			break;
		if (engine_ctx_n_past(s->ctx) >= engine_ctx_n_ctx(s->ctx)) {
			out->finish = LLM_FINISH_CONTEXT;
			break;
		}
		if ((rc = engine_ctx_eval(s->ctx, &tok, 1, NULL)))
			goto out;
	}
out:
	llm_gstate_free(st);
	engine_sampler_free(smp);
	free(buf);
	return rc;
}

static int embedded_chat(struct llm_backend *b, const struct llm_message *msgs, size_t n,
			 const struct llm_params *p, llm_token_cb cb, void *ud,
			 const atomic_bool *cancel, struct llm_result *out)
{
	struct embedded *e = b->impl;
	const char *adapter = p->adapter && *p->adapter ? p->adapter : "";
	if (*adapter && !e->adapters)
		return tk_errf(TK_EINVAL, "embedded: adapter '%s' asked for, but llm.adapter_dir "
			       "is not set", adapter);
	if (p->model && *p->model && strcmp(p->model, e->name) && strcmp(p->model, b->opt.model))
		return tk_errf(TK_ENOENT, "embedded: model '%s' is not loaded (this backend serves "
			       "'%s')", p->model, e->name);
	struct llm_grammar *gram = NULL;
	int rc = call_grammar(p, &gram);
	if (rc)
		return rc;
	int32_t *ids = NULL, n_ids = 0;
	if ((rc = make_prompt(e, msgs, n, &ids, &n_ids))) {
		llm_grammar_free(gram);
		return rc;
	}
	int64_t q0 = tk_time_mono_ns();
	struct slot *s = NULL;
	if ((rc = slot_take(e, adapter, ids, n_ids, cancel, &s))) {
		free(ids);
		llm_grammar_free(gram);
		return rc;
	}
	out->timings.queue_ms = (double)(tk_time_mono_ns() - q0) / 1e6;
	struct llm_acc acc;
	llm_acc_init(&acc, b, cb, ud);
	struct engine_gen_result res = { 0 };
	const struct engine_lora *lora = NULL;
	if (llm_cancelled(cancel)) {
		rc = tk_errf(TK_ECANCELED, "embedded: cancelled");
		goto out;
	}
	if ((rc = slot_ready(b, e, s)))
		goto out;
	if (*adapter) {
		if ((rc = engine_adapter_cache_acquire(e->adapters, adapter, &lora))) {
			rc = tk_err_wrap(rc, "embedded: adapter '%s'", adapter);
			goto out;
		}
		struct engine_lora_use use = { lora, 1.0f };
		rc = engine_ctx_set_adapters(s->ctx, &use, 1);
	} else {
		rc = engine_ctx_set_adapters(s->ctx, NULL, 0);
	}
	if (rc) {
		rc = tk_err_wrap(rc, "embedded: adapter");
		goto out;
	}
	/* Reuse the cached prefix; at least one token is evaluated so the
	 * sampler has fresh logits. */
	int32_t k = common_prefix(s, adapter, ids, n_ids);
	if (k >= n_ids)
		k = n_ids - 1;
	if (k > engine_ctx_n_past(s->ctx))
		k = engine_ctx_n_past(s->ctx);
	if ((rc = engine_ctx_rewind(s->ctx, k)))
		goto out;
	s->n_hist = k;
	snprintf(s->adapter, sizeof s->adapter, "%s", adapter);
	tk_counter_add(e->reused, (double)k);

	struct engine_gen_params gp;
	memset(&gp, 0, sizeof gp);
	engine_sampler_params_default(&gp.sampling);
	if (p->sampling.temperature >= 0)
		gp.sampling.temp = (float)p->sampling.temperature;
	if (p->sampling.top_p > 0)
		gp.sampling.top_p = (float)p->sampling.top_p;
	if (p->sampling.top_k > 0)
		gp.sampling.top_k = p->sampling.top_k;
	if (p->sampling.repeat_penalty > 0)
		gp.sampling.repeat_penalty = (float)p->sampling.repeat_penalty;
	if (p->has_seed)
		gp.sampling.seed = p->seed;
	gp.max_tokens = p->max_tokens > 0 ? p->max_tokens : engine_ctx_n_ctx(s->ctx);
	gp.stop = p->stop;
	gp.n_stop = p->n_stop;
	if (gram) {
		struct cgen cg;
		rc = generate_constrained(e, s, ids, n_ids, k, &gp, gram, &acc, cancel, &cg);
		res.tokens = cg.tokens;
		res.n_tokens = cg.n_tokens;
		res.finish = cg.finish == LLM_FINISH_STOP     ? ENGINE_FINISH_STOP
			     : cg.finish == LLM_FINISH_CONTEXT ? ENGINE_FINISH_CONTEXT
							       : ENGINE_FINISH_LENGTH;
		if (rc)
			goto out;
	} else {
		struct gen_tap g = { &acc, cancel, 0 };
		rc = engine_generate(s->ctx, e->tok, ids + k, n_ids - k, &gp, gen_piece, &g, &res);
		if (rc) {
			rc = tk_err_wrap(rc, "embedded");
			goto out;
		}
		if (res.finish == ENGINE_FINISH_CANCEL) {
			rc = g.rc ? g.rc : tk_errf(TK_ECANCELED, "embedded: cancelled");
			goto out;
		}
	}
	/* What the cache now holds: the prompt, then the generated tokens
	 * (the last sampled one may not have been evaluated). */
	int32_t n_past = engine_ctx_n_past(s->ctx);
	if (n_past >= n_ids && n_past - n_ids <= res.n_tokens) {
		memcpy(s->hist, ids, (size_t)n_ids * sizeof *ids);
		if (n_past > n_ids)
			memcpy(s->hist + n_ids, res.tokens, (size_t)(n_past - n_ids) * sizeof *ids);
		s->n_hist = n_past;
	} else {
		(void)engine_ctx_rewind(s->ctx, 0);
		s->n_hist = 0;
	}
	out->finish = res.finish == ENGINE_FINISH_LENGTH    ? LLM_FINISH_LENGTH
		      : res.finish == ENGINE_FINISH_CONTEXT ? LLM_FINISH_CONTEXT
							    : LLM_FINISH_STOP;
	out->usage.prompt_tokens = n_ids;
	out->usage.completion_tokens = res.n_tokens;
	if (!(out->model = strdup(e->name))) {
		rc = tk_errf(TK_ENOMEM, "embedded: out of memory");
		goto out;
	}
	rc = llm_acc_finish(&acc, out);
out:
	if (rc && s->ctx) {
		/* The cache may hold anything now: forget it. */
		(void)engine_ctx_rewind(s->ctx, 0);
		s->n_hist = 0;
	}
	if (lora) {
		/* The context must not point at an adapter we no longer hold. */
		(void)engine_ctx_set_adapters(s->ctx, NULL, 0);
		engine_adapter_cache_release(e->adapters, lora);
	}
	engine_gen_result_free(&res);
	llm_acc_free(&acc);
	slot_give(e, s);
	free(ids);
	llm_grammar_free(gram);
	return rc;
}

static int embedded_health(struct llm_backend *b)
{
	return b->impl ? 0 : tk_errf(TK_ESTATE, "embedded: no model loaded");
}

static int embedded_list_models(struct llm_backend *b, char ***names, size_t *n)
{
	struct embedded *e = b->impl;
	char **v = calloc(1, sizeof *v);
	if (!v || !(v[0] = strdup(e->name))) {
		free(v);
		return tk_errf(TK_ENOMEM, "embedded: out of memory");
	}
	*names = v;
	*n = 1;
	return 0;
}

const struct llm_backend_ops llm_embedded_ops = {
	.name = "embedded",
	.init = embedded_init,
	.chat = embedded_chat,
	.health = embedded_health,
	.list_models = embedded_list_models,
	.fini = embedded_fini,
};
