/*
 * llm_embedded.c — the embedded backend: Tanuki's own engine (src/engine/)
 * answering in-process from a GGUF file (llm.model is its path).
 *
 * Owns the model (mmap), its tokenizer, ONE inference context holding
 * llm.embedded_contexts sequences (engine_ctx_params.n_seq_max; made on the
 * first call), and the scheduler thread that runs it.
 *
 * Continuous batching. A call renders the messages with the model's chat
 * template (engine/chat.h), tokenizes, and takes a free sequence ("slot";
 * waiting, cancellably, when all are busy: timings.queue_ms). It then runs
 * its own generation loop on its own thread — sampling, grammar, stop
 * strings, max_tokens, cancel and streaming stay per call — but never
 * evaluates anything itself: it posts "append these tokens to my sequence"
 * (seq_eval) and waits. The scheduler gathers the posted requests of every
 * active sequence into one batch and evaluates it with engine_ctx_decode,
 * one pass over the weights for all of them (decode is bandwidth-bound, so
 * N sequences cost little more than one). A newcomer's prompt joins the
 * same steps in chunks of PREFILL_CHUNK tokens. The scheduler holds a step
 * at most GATHER_NS for active sequences that have not posted yet (they are
 * sampling or streaming), so lockstep decoders share each pass while a slow
 * consumer cannot stall the others for long.
 *
 * Prompt-prefix reuse: each slot remembers the tokens in its sequence's
 * cache. A call takes the free slot sharing the longest prefix with its
 * prompt, rewinds the sequence to that prefix and evaluates only the rest
 * (an agent's next turn re-sends the whole conversation, so this skips most
 * of the prefill); when the whole prompt is cached its last token is still
 * re-evaluated, for the logits. Reused tokens are counted in
 * tanuki_llm_prompt_tokens_reused_total and logged at debug level. The
 * repetition penalties are primed with the whole prompt.
 *
 * Structured output: a grammar (grammar.h), or a JSON schema converted to
 * one, constrains sampling in generate_constrained(): a sampled token is
 * kept only when its text may come next; rejected ones are redrawn, and
 * after GRAMMAR_LAZY_TRIES the whole vocabulary is masked at once by a walk
 * of the vocabulary trie (llm_trie.h: built once with the tokenizer, shared
 * read-only by every call) together with the grammar; the environment
 * variable TANUKI_NO_GRAMMAR_TRIE=1 masks token by token instead (the
 * reference, for A/B timing).
 *
 * Adapters: with llm.adapter_dir, params.adapter names DIR/<name>.gguf in
 * an engine adapter cache (engine/adapter_cache.h: loaded on first use,
 * LRU under llm.adapter_budget_bytes). A context applies one adapter set
 * to a whole pass, so the scheduler batches only requests with the same
 * adapter (or none); other adapters get their own pass in the same step.
 * A slot's cached prefix only counts for the same adapter.
 *
 * Locking: mu guards every slot's busy/active flags and posted request
 * (state machine NONE -> PENDING (holder) -> DONE (scheduler) -> NONE
 * (holder)); a slot's history and logits belong to its holder except while
 * its request is pending. The context and the batch scratch belong to the
 * scheduler thread.
 *
 * Weakness: the generation loop mirrors engine_generate's stop rules
 * (generate.c) rather than calling it, because each step must go through
 * the scheduler; a change to one must be made to the other.
 */
#include "llm/llm_int.h"

#include "core/buf.h"
#include "core/env.h"
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
#include "llm/llm_trie.h"
#include "obs/log.h"
#include "obs/metrics.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROMPT_TEXT_MAX (64u << 20)

/* How long the scheduler holds a step for active sequences that have not
 * posted their next token yet (they are sampling or streaming); past this
 * it runs the step without them. */
#define GATHER_NS 2000000
/* Prompt tokens one sequence puts into a step: a long newcomer prompt is
 * prefilled in chunks, so the sequences already decoding keep going. */
#define PREFILL_CHUNK 256

enum req_state { REQ_NONE, REQ_PENDING, REQ_DONE };

/* One sequence of the shared context, held by one call at a time. */
struct slot {
	int32_t seq;            /* its sequence id in embedded.ctx */
	int32_t *hist;          /* tokens in its KV cache: hist[0..n_hist);
				 * the holder's (n_ctx capacity) */
	int32_t n_hist;
	char adapter[ENGINE_ADAPTER_NAME_MAX + 1]; /* the adapter hist was
						    * computed with; "" none */
	bool busy;              /* mu: held by a call */
	bool active;            /* mu: the holder is generating: the
				 * scheduler briefly waits for its steps */
	/* The posted request (mu guards these; the scheduler reads them while
	 * state is REQ_PENDING, the holder after REQ_DONE): append
	 * req_tok[0..req_n) after rewinding to req_keep (-1: no rewind),
	 * computed with req_lora (NULL: none); logits of the last one land in
	 * logits[n_vocab]. */
	enum req_state state;
	const int32_t *req_tok;
	int32_t req_n;
	int32_t req_done;       /* tokens already evaluated (chunks) */
	int32_t req_keep;
	const struct engine_lora *req_lora;
	int64_t posted_ns;
	int req_rc;
	float *logits;          /* owned, [n_vocab] */
};

struct embedded {
	struct engine_model *m;
	struct tk_tokenizer *tok;
	struct llm_trie *trie;  /* tok's vocabulary trie (grammar masks);
				 * immutable, read by every call */
	bool mask_naive;        /* TANUKI_NO_GRAMMAR_TRIE=1: mask token by
				 * token (A/B timing) */
	const char *tmpl;       /* borrowed from the model's GGUF, or NULL */
	char name[256];
	int32_t n_ctx;          /* positions per sequence */
	int32_t n_vocab;
	int32_t n_threads;       /* of the shared context */
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* a slot was released */
	pthread_cond_t sched_cv; /* a request was posted, or stop (monotonic) */
	pthread_cond_t done_cv; /* a request is done */
	struct slot *slots;
	int32_t n_slots;
	bool stop;              /* mu: the scheduler must exit */
	pthread_t sched;
	bool sched_started;
	/* Scheduler-thread only: */
	struct engine_ctx *ctx; /* n_seq_max = n_slots; made on the first step */
	int32_t *b_tok, *b_seq; /* [n_slots * PREFILL_CHUNK] batch scratch */
	int8_t *b_want;
	float *b_logits;        /* [n_slots][n_vocab] */
	struct slot **plan;     /* [n_slots] the pending requests of a step */
	int32_t *grp, *cnt;     /* [n_slots] per planned request: its adapter
				 * group, tokens it puts in this step */
	struct tk_series *reused; /* tanuki_llm_prompt_tokens_reused_total */
	struct tk_series *steps;  /* tanuki_llm_batch_steps_total */
	struct tk_series *stepped; /* tanuki_llm_batch_sequences_total */
	struct engine_adapter_cache *adapters; /* NULL without llm.adapter_dir */
};

static void *sched_main(void *arg);

static void embedded_release(struct embedded *e)
{
	for (int32_t i = 0; e->slots && i < e->n_slots; i++) {
		free(e->slots[i].hist);
		free(e->slots[i].logits);
	}
	free(e->slots);
	engine_ctx_free(e->ctx);
	free(e->b_tok);
	free(e->b_seq);
	free(e->b_want);
	free(e->b_logits);
	free(e->plan);
	free(e->grp);
	free(e->cnt);
	engine_adapter_cache_free(e->adapters);
	llm_trie_free(e->trie);
	tk_tokenizer_free(e->tok);
	engine_model_free(e->m);
	free(e);
}

static struct tk_series *embedded_counter(const struct llm_backend *b, const char *name,
					  const char *help)
{
	return tk_metric_series(tk_metric_counter(b->opt.metrics, name, help,
						  (const char *const[]){ "backend" }, 1),
				(const char *const[]){ "embedded" });
}

static int embedded_init(struct llm_backend *b)
{
	const char *path = b->opt.model;
	if (!path)
		return tk_errf(TK_EINVAL, "embedded: llm.model must be the path of a GGUF model");
	if (b->opt.embedded_contexts < 1 || b->opt.embedded_contexts > 256 ||
	    b->opt.embedded_contexts > ENGINE_MAX_SEQ)
		return tk_errf(TK_EINVAL, "embedded: llm.embedded_contexts must be in 1..%d",
			       ENGINE_MAX_SEQ < 256 ? ENGINE_MAX_SEQ : 256);
	int rc = 0;
	struct embedded *e = calloc(1, sizeof *e);
	if (!e)
		return tk_errf(TK_ENOMEM, "embedded: out of memory");
	e->slots = calloc((size_t)b->opt.embedded_contexts, sizeof *e->slots);
	if (!e->slots) {
		rc = tk_errf(TK_ENOMEM, "embedded: out of memory");
		goto fail;
	}
	e->n_slots = b->opt.embedded_contexts;
	if (!(e->m = engine_model_load(path))) {
		rc = tk_err_wrap(tk_err_last() ? tk_err_last() : TK_EIO, "embedded");
		goto fail;
	}
	if (!(e->tok = tk_tokenizer_from_gguf(e->m->gguf))) {
		rc = tk_err_wrap(tk_err_last() ? tk_err_last() : TK_EFORMAT,
				 "embedded: %s: tokenizer", path);
		goto fail;
	}
	if (!(e->trie = llm_trie_new(e->tok))) {
		rc = tk_err_wrap(tk_err_last() ? tk_err_last() : TK_ENOMEM,
				 "embedded: %s: vocabulary trie", path);
		goto fail;
	}
	e->mask_naive = tk_env_flag("TANUKI_NO_GRAMMAR_TRIE");
	if (tk_gguf_get_str(e->m->gguf, "tokenizer.chat_template", &e->tmpl, NULL))
		e->tmpl = NULL;
	const char *gname = NULL;
	if (tk_gguf_get_str(e->m->gguf, "general.name", &gname, NULL) || !gname || !*gname) {
		const char *slash = strrchr(path, '/');
		gname = slash ? slash + 1 : path;
	}
	snprintf(e->name, sizeof e->name, "%s", gname);
	/* the engine's own default (context.h), known before the context is
	 * made so calls can check their prompts against it */
	e->n_ctx = b->opt.embedded_n_ctx > 0 ? b->opt.embedded_n_ctx
		   : e->m->hp.n_ctx_train < ENGINE_CTX_DEFAULT_MAX ? e->m->hp.n_ctx_train
								   : ENGINE_CTX_DEFAULT_MAX;
	e->n_vocab = e->m->hp.n_vocab;
	e->n_threads = b->opt.embedded_threads;
	size_t nb = (size_t)e->n_slots * PREFILL_CHUNK;
	e->b_tok = malloc(nb * sizeof *e->b_tok);
	e->b_seq = malloc(nb * sizeof *e->b_seq);
	e->b_want = malloc(nb * sizeof *e->b_want);
	e->b_logits = malloc((size_t)e->n_slots * (size_t)e->n_vocab * sizeof *e->b_logits);
	e->plan = calloc((size_t)e->n_slots, sizeof *e->plan);
	e->grp = calloc((size_t)e->n_slots, sizeof *e->grp);
	e->cnt = calloc((size_t)e->n_slots, sizeof *e->cnt);
	if (!e->b_tok || !e->b_seq || !e->b_want || !e->b_logits || !e->plan || !e->grp ||
	    !e->cnt) {
		rc = tk_errf(TK_ENOMEM, "embedded: out of memory");
		goto fail;
	}
	for (int32_t i = 0; i < e->n_slots; i++) {
		struct slot *s = &e->slots[i];
		s->seq = i;
		s->hist = malloc((size_t)e->n_ctx * sizeof *s->hist);
		s->logits = malloc((size_t)e->n_vocab * sizeof *s->logits);
		if (!s->hist || !s->logits) {
			rc = tk_errf(TK_ENOMEM, "embedded: out of memory");
			goto fail;
		}
	}
	if (b->opt.adapter_dir) {
		struct engine_adapter_cache_opts ao;
		engine_adapter_cache_opts_default(&ao);
		ao.dir = b->opt.adapter_dir;
		ao.budget_bytes = b->opt.adapter_budget_bytes;
		ao.metrics = b->opt.metrics;
		if (!(e->adapters = engine_adapter_cache_new(e->m, &ao))) {
			rc = tk_err_wrap(tk_err_last() ? tk_err_last() : TK_EIO,
					 "embedded: llm.adapter_dir");
			goto fail;
		}
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	pthread_cond_init(&e->sched_cv, &ca);
	pthread_cond_init(&e->done_cv, NULL);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&e->sched, NULL, sched_main, e)) {
		pthread_cond_destroy(&e->done_cv);
		pthread_cond_destroy(&e->sched_cv);
		pthread_cond_destroy(&e->cv);
		pthread_mutex_destroy(&e->mu);
		rc = tk_errf(TK_EIO, "embedded: cannot start the scheduler thread");
		goto fail;
	}
	e->sched_started = true;
	e->reused = embedded_counter(b, "tanuki_llm_prompt_tokens_reused_total",
				     "prompt tokens the embedded backend took from a sequence's "
				     "cache instead of evaluating them");
	e->steps = embedded_counter(b, "tanuki_llm_batch_steps_total",
				    "forward passes the embedded backend's scheduler ran");
	e->stepped = embedded_counter(b, "tanuki_llm_batch_sequences_total",
				      "sequences in those passes (divided by the steps: the mean "
				      "batch)");
	b->impl = e;
	return 0;
fail:
	embedded_release(e);
	return rc;
}

static void embedded_fini(struct llm_backend *b)
{
	struct embedded *e = b->impl;
	if (!e)
		return;
	pthread_mutex_lock(&e->mu);
	e->stop = true;
	pthread_cond_signal(&e->sched_cv);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->sched, NULL);
	pthread_cond_destroy(&e->done_cv);
	pthread_cond_destroy(&e->sched_cv);
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	embedded_release(e);
	b->impl = NULL;
}

/* ---- the scheduler: one thread, one context, every sequence ---- */

/*
 * One step: every pending request contributes its next tokens (a decode
 * token, or up to PREFILL_CHUNK prompt tokens) to one batch, and the batch
 * is evaluated in one pass over the weights. Requests are grouped by
 * adapter: one pass computes every token with the context's one adapter
 * set, so sequences under different adapters go in different passes of the
 * same step. Called without mu; plan[0..n) are slots whose request is
 * pending (their request fields are stable until marked done).
 */
static void sched_step(struct embedded *e, struct slot **plan, int32_t n)
{
	int rc = 0;
	if (!e->ctx) {
		struct engine_ctx_params cp;
		engine_ctx_params_default(&cp);
		cp.n_ctx = e->n_ctx;
		cp.n_threads = e->n_threads;
		cp.n_seq_max = e->n_slots;
		if (!(e->ctx = engine_ctx_new(e->m, &cp)))
			rc = tk_err_wrap(tk_err_last() ? tk_err_last() : TK_ENOMEM,
					 "embedded: context");
	}
	if (rc) {
		for (int32_t i = 0; i < n; i++)
			plan[i]->req_rc = rc;
		return;
	}
	int32_t *grp = e->grp, *cnt = e->cnt;
	for (int32_t i = 0; i < n; i++) {
		grp[i] = -1;
		cnt[i] = 0;
	}
	for (int32_t g = 0; g < n; g++) {
		if (grp[g] >= 0)
			continue;
		const struct engine_lora *lora = plan[g]->req_lora;
		int32_t nb = 0, n_seqs = 0;
		for (int32_t i = g; i < n; i++) {
			struct slot *s = plan[i];
			if (grp[i] >= 0 || s->req_lora != lora)
				continue;
			grp[i] = g;
			if (s->req_done == 0 && s->req_keep >= 0 &&
			    (s->req_rc = engine_ctx_seq_rewind(e->ctx, s->seq, s->req_keep)))
				continue;
			cnt[i] = s->req_n - s->req_done;
			if (cnt[i] > PREFILL_CHUNK)
				cnt[i] = PREFILL_CHUNK;
			for (int32_t t = 0; t < cnt[i]; t++) {
				e->b_tok[nb] = s->req_tok[s->req_done + t];
				e->b_seq[nb] = s->seq;
				e->b_want[nb] = s->req_done + t == s->req_n - 1;
				nb++;
			}
			n_seqs++;
		}
		if (!nb)
			continue;
		struct engine_lora_use use = { lora, 1.0f };
		int prc = engine_ctx_set_adapters(e->ctx, lora ? &use : NULL, lora ? 1 : 0);
		if (!prc) {
			struct engine_batch batch = { .n = nb, .tokens = e->b_tok, .seq = e->b_seq,
						      .want = e->b_want };
			prc = engine_ctx_decode(e->ctx, &batch, e->b_logits);
		}
		if (lora) /* the context must not keep an adapter the call may release */
			(void)engine_ctx_set_adapters(e->ctx, NULL, 0);
		tk_counter_add(e->steps, 1);
		tk_counter_add(e->stepped, (double)n_seqs);
		/* the logits rows are in batch order: one per request whose last
		 * token was in this pass */
		int32_t row = 0;
		for (int32_t i = g; i < n; i++) {
			struct slot *s = plan[i];
			if (grp[i] != g || !cnt[i])
				continue;
			if (prc) {
				s->req_rc = prc;
				continue;
			}
			s->req_done += cnt[i];
			if (s->req_done == s->req_n)
				memcpy(s->logits, e->b_logits + (size_t)row++ * (size_t)e->n_vocab,
				       (size_t)e->n_vocab * sizeof *s->logits);
		}
	}
}

static void *sched_main(void *arg)
{
	struct embedded *e = arg;
	struct slot **plan = e->plan;
	pthread_mutex_lock(&e->mu);
	while (!e->stop) {
		int32_t n_pend = 0, n_active = 0;
		int64_t first = INT64_MAX;
		for (int32_t i = 0; i < e->n_slots; i++) {
			struct slot *s = &e->slots[i];
			n_active += s->active;
			if (s->state == REQ_PENDING) {
				plan[n_pend++] = s;
				if (s->posted_ns < first)
					first = s->posted_ns;
			}
		}
		if (!n_pend) {
			pthread_cond_wait(&e->sched_cv, &e->mu);
			continue;
		}
		/* Wait a little for the active sequences that have not posted
		 * yet, so that lockstep decoders share each pass. */
		int64_t until = first + GATHER_NS;
		if (n_pend < n_active && tk_time_mono_ns() < until) {
			struct timespec ts = { (time_t)(until / 1000000000),
					       (long)(until % 1000000000) };
			pthread_cond_timedwait(&e->sched_cv, &e->mu, &ts);
			continue;
		}
		pthread_mutex_unlock(&e->mu);
		sched_step(e, plan, n_pend);
		pthread_mutex_lock(&e->mu);
		for (int32_t i = 0; i < n_pend; i++) {
			struct slot *s = plan[i];
			if (s->req_rc || s->req_done == s->req_n)
				s->state = REQ_DONE;
		}
		pthread_cond_broadcast(&e->done_cv);
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* Appends tok[0..n) to the slot's sequence (after rewinding it to keep, or
 * -1) and waits for the step(s) that evaluate them; the last token's logits
 * are then in s->logits. Called by the slot's holder. */
static int seq_eval(struct embedded *e, struct slot *s, const int32_t *tok, int32_t n,
		    int32_t keep, const struct engine_lora *lora)
{
	pthread_mutex_lock(&e->mu);
	s->req_tok = tok;
	s->req_n = n;
	s->req_done = 0;
	s->req_keep = keep;
	s->req_lora = lora;
	s->req_rc = 0;
	s->posted_ns = tk_time_mono_ns();
	s->state = REQ_PENDING;
	pthread_cond_signal(&e->sched_cv);
	while (s->state != REQ_DONE)
		pthread_cond_wait(&e->done_cv, &e->mu);
	s->state = REQ_NONE;
	int rc = s->req_rc;
	pthread_mutex_unlock(&e->mu);
	return rc;
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

/* Takes a free slot, waiting (cancellably) while all are busy, and marks
 * it active. The choice scores k - (n_hist - k): tokens reused minus cached
 * tokens thrown away, so a continuation goes back to its own sequence, and a
 * new conversation that merely shares a system prompt with a cached one
 * takes an empty (or the least valuable) sequence rather than evicting it.
 * Ties go to the lowest index. */
static int slot_take(struct embedded *e, const char *adapter, const int32_t *ids, int32_t n,
		     const atomic_bool *cancel, struct slot **out)
{
	pthread_mutex_lock(&e->mu);
	for (;;) {
		struct slot *best = NULL;
		int64_t best_score = 0;
		for (int32_t i = 0; i < e->n_slots; i++) {
			struct slot *s = &e->slots[i];
			if (s->busy)
				continue;
			int64_t k = common_prefix(s, adapter, ids, n);
			int64_t score = k - ((int64_t)s->n_hist - k);
			if (!best || score > best_score) {
				best = s;
				best_score = score;
			}
		}
		if (best) {
			best->busy = true;
			best->active = true;
			*out = best;
			pthread_mutex_unlock(&e->mu);
			return 0;
		}
		if (llm_cancelled(cancel)) {
			pthread_mutex_unlock(&e->mu);
			return tk_errf(TK_ECANCELED, "embedded: cancelled while waiting for a "
				       "sequence");
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
	s->active = false;
	pthread_cond_signal(&e->cv);
	pthread_cond_signal(&e->sched_cv); /* one fewer sequence to wait for */
	pthread_mutex_unlock(&e->mu);
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
 * only when the text so far is a sentence; llm_trie.h says which exactly),
 * with the trie walk (w, allow: the call's scratch) or token by token. */
static int mask_all(const struct embedded *e, const struct llm_gstate *st,
		    struct llm_gwalk *w, uint8_t *allow, float *logits, int32_t n_vocab)
{
	int rc = e->mask_naive ? llm_trie_allowed_naive(e->trie, st, allow, NULL)
			       : llm_trie_allowed(e->trie, st, w, allow, NULL);
	if (rc)
		return tk_err_wrap(rc, "embedded: grammar");
	for (int32_t t = 0; t < n_vocab; t++)
		if (!allow[t])
			logits[t] = -INFINITY;
	return 0;
}

/* The generation loop under a grammar: sample, and keep a token only when
 * the grammar allows its text next (redraw the others: lazily first, then
 * with the whole vocabulary masked). Ends at an end-of-generation token the
 * grammar allows, when the grammar admits nothing more, at max_tokens or a
 * full context. Stop strings do not apply. The prompt is already in the
 * slot's sequence (s->hist, s->logits). */
static int generate_constrained(struct embedded *e, struct slot *s,
				const struct engine_lora *lora, const struct engine_gen_params *gp,
				const struct llm_grammar *g, struct llm_acc *acc,
				const atomic_bool *cancel, struct cgen *out)
{
	int32_t n_vocab = (int32_t)tk_tokenizer_n_vocab(e->tok);
	struct engine_sampler *smp = NULL;
	struct llm_gstate *st = NULL;
	struct llm_gwalk *walk = NULL;
	float *buf = NULL;
	uint8_t *allow = NULL;
	int rc = 0;
	memset(out, 0, sizeof *out);
	out->finish = LLM_FINISH_LENGTH;
	if (!(smp = engine_sampler_new(&gp->sampling, n_vocab)) || !(st = llm_gstate_new(g)) ||
	    !(walk = llm_gwalk_new(g))) {
		rc = tk_err_last() ? tk_err_last() : TK_ENOMEM;
		goto out;
	}
	buf = malloc((size_t)n_vocab * sizeof *buf);
	allow = malloc((size_t)n_vocab);
	out->tokens = malloc(((size_t)gp->max_tokens + 1) * sizeof *out->tokens);
	if (!buf || !allow || !out->tokens) {
		rc = tk_errf(TK_ENOMEM, "embedded: out of memory");
		goto out;
	}
	for (int32_t i = 0; i < s->n_hist; i++)
		engine_sampler_accept(smp, s->hist[i]);
	while (out->n_tokens < gp->max_tokens) {
		if (llm_cancelled(cancel)) {
			rc = tk_errf(TK_ECANCELED, "embedded: cancelled");
			goto out;
		}
		memcpy(buf, s->logits, (size_t)n_vocab * sizeof *buf);
		int32_t tok;
		struct llm_gstate *next = NULL;
		for (int tries = 0;; tries++) {
			if (tries == GRAMMAR_LAZY_TRIES &&
			    (rc = mask_all(e, st, walk, allow, buf, n_vocab)))
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
		if (s->n_hist >= e->n_ctx) {
			out->finish = LLM_FINISH_CONTEXT;
			break;
		}
		if ((rc = seq_eval(e, s, &tok, 1, -1, lora)))
			goto out;
		s->hist[s->n_hist++] = tok;
	}
out:
	llm_gstate_free(st);
	llm_gwalk_free(walk);
	engine_sampler_free(smp);
	free(allow);
	free(buf);
	return rc;
}

/* The plain generation loop, with engine_generate's rules (generate.h; the
 * stop checks are its engine_gen_stop_check): end-of-generation tokens end
 * it (never shown), stop strings cut the text and bytes that could start
 * one are held back from the stream until they cannot, the decode is
 * UTF-8-safe, max_tokens and a full context end it.
 * Each token goes through seq_eval, so the scheduler batches this call's
 * steps with the other calls'. The prompt is already in the sequence. */
static int generate_plain(struct embedded *e, struct slot *s, const struct engine_lora *lora,
			  const struct engine_gen_params *gp, struct llm_acc *acc,
			  const atomic_bool *cancel, struct cgen *out)
{
	struct engine_sampler *smp = NULL;
	struct tk_tok_stream *stream = NULL;
	struct tk_buf text = TK_BUF_INIT(ENGINE_GEN_TEXT_MAX);
	struct engine_gen_stop stop;
	int rc = 0;
	memset(out, 0, sizeof *out);
	out->finish = LLM_FINISH_LENGTH;
	if ((rc = engine_gen_stop_init(&stop, e->tok, gp)))
		return tk_err_wrap(rc, "embedded: stop rules");
	smp = engine_sampler_new(&gp->sampling, e->n_vocab);
	stream = tk_tok_stream_new(e->tok, 0);
	out->tokens = malloc(((size_t)gp->max_tokens + 1) * sizeof *out->tokens);
	if (!smp || !stream || !out->tokens) {
		rc = tk_errf(TK_ENOMEM, "embedded: out of memory");
		goto out;
	}
	for (int32_t i = 0; i < s->n_hist; i++)
		engine_sampler_accept(smp, s->hist[i]);
	bool cut = false;
	size_t shown = 0;
	while (out->n_tokens < gp->max_tokens) {
		if (llm_cancelled(cancel)) {
			rc = tk_errf(TK_ECANCELED, "embedded: cancelled");
			goto out;
		}
		int32_t id = engine_sampler_sample(smp, s->logits);
		if (id < 0) {
			rc = tk_err_wrap(id, "embedded: sampling");
			goto out;
		}
		engine_sampler_accept(smp, id);
		enum engine_gen_verdict v;
		size_t upto;
		if ((rc = engine_gen_stop_check(&stop, stream, id, &text, &v, &upto)))
			goto out;
		if (v == ENGINE_GEN_END_TOKEN) {
			out->finish = LLM_FINISH_STOP;
			break;
		}
		out->tokens[out->n_tokens++] = id;
		if (v == ENGINE_GEN_END_STRING) {
			out->finish = LLM_FINISH_STOP;
			cut = true;
			break;
		}
		if (upto > shown) {
			if ((rc = llm_acc_push(acc, text.data + shown, upto - shown)))
				goto out;
			shown = upto;
		}
		if (out->n_tokens >= gp->max_tokens)
			break;
		if (s->n_hist >= e->n_ctx) {
			out->finish = LLM_FINISH_CONTEXT;
			break;
		}
		if ((rc = seq_eval(e, s, &id, 1, -1, lora)))
			goto out;
		s->hist[s->n_hist++] = id;
	}
	/* bytes the decoder still holds (an unfinished character) */
	if (!cut && (rc = tk_tok_stream_flush(stream, &text)))
		goto out;
	if (text.len > shown)
		rc = llm_acc_push(acc, text.data + shown, text.len - shown);
out:
	tk_buf_free(&text);
	tk_tok_stream_free(stream);
	engine_sampler_free(smp);
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
	if (strlen(adapter) > ENGINE_ADAPTER_NAME_MAX)
		return tk_errf(TK_EINVAL, "embedded: adapter name longer than %d bytes",
			       ENGINE_ADAPTER_NAME_MAX);
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
	if (n_ids > e->n_ctx) {
		free(ids);
		llm_grammar_free(gram);
		return tk_errf(TK_ELIMIT, "embedded: the prompt has %d tokens; the context holds "
			       "%d (llm.embedded_n_ctx)", n_ids, e->n_ctx);
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
	struct cgen res = { 0 };
	const struct engine_lora *lora = NULL;
	if (llm_cancelled(cancel)) {
		rc = tk_errf(TK_ECANCELED, "embedded: cancelled");
		goto out;
	}
	if (*adapter && (rc = engine_adapter_cache_acquire(e->adapters, adapter, &lora))) {
		rc = tk_err_wrap(rc, "embedded: adapter '%s'", adapter);
		goto out;
	}
	/* Prompt-prefix reuse: keep the common prefix of the sequence's cache
	 * (computed with the same adapter) and evaluate the rest — at least
	 * the last prompt token, whose logits the first sample needs. */
	int32_t k = common_prefix(s, adapter, ids, n_ids);
	if (k >= n_ids)
		k = n_ids - 1;
	s->n_hist = k; /* what stays valid whatever happens next */
	snprintf(s->adapter, sizeof s->adapter, "%s", adapter);
	tk_counter_add(e->reused, (double)k);
	tk_logf(TK_LOG_DEBUG, "llm",
		TK_FIELDS(TK_LF_S("backend", "embedded"), TK_LF_I("seq", s->seq),
			  TK_LF_I("prompt_tokens", n_ids), TK_LF_I("reused_tokens", k),
			  TK_LF_S("adapter", adapter)),
		"prompt prefix reuse");
	if ((rc = seq_eval(e, s, ids + k, n_ids - k, k, lora))) {
		rc = tk_err_wrap(rc, "embedded: prompt");
		goto out;
	}
	memcpy(s->hist + k, ids + k, (size_t)(n_ids - k) * sizeof *ids);
	s->n_hist = n_ids;

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
	gp.max_tokens = p->max_tokens > 0 ? p->max_tokens : e->n_ctx;
	gp.stop = p->stop;
	gp.n_stop = p->n_stop;
	rc = gram ? generate_constrained(e, s, lora, &gp, gram, &acc, cancel, &res)
		  : generate_plain(e, s, lora, &gp, &acc, cancel, &res);
	if (rc)
		goto out;
	out->finish = res.finish;
	out->usage.prompt_tokens = n_ids;
	out->usage.completion_tokens = res.n_tokens;
	if (!(out->model = strdup(e->name))) {
		rc = tk_errf(TK_ENOMEM, "embedded: out of memory");
		goto out;
	}
	rc = llm_acc_finish(&acc, out);
out:
	if (rc && rc != TK_ECANCELED)
		s->n_hist = 0; /* the cache may hold anything now: forget it */
	if (lora)
		engine_adapter_cache_release(e->adapters, lora);
	free(res.tokens);
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
