/*
 * sampler.c — the sampling chain, the PRNG and the stop rules (sampler.h).
 *
 * Owns the candidate array (n_vocab id/logit pairs), the per-token counts
 * used by the penalties and the ring of recent tokens; all allocated once in
 * engine_sampler_new.
 */
#include "engine/sampler.h"

#include "core/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cand {
	int32_t id;
	float logit;
};

struct engine_sampler {
	struct engine_sampler_params p;
	int32_t n_vocab;
	struct cand *cands;  /* [n_vocab] working candidates */
	int32_t *counts;     /* [n_vocab] occurrences in the penalty window */
	int32_t *ring;       /* [penalty_last_n] recent tokens, oldest first at ring_head */
	int32_t ring_len;    /* tokens in the ring (<= penalty_last_n) */
	int32_t ring_head;   /* index of the oldest token */
	struct engine_rng rng;
};

/* ---------------------------------------------------------------- PRNG */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void engine_rng_seed(struct engine_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
	if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
		r->s[0] = 1; /* xoshiro's only forbidden state */
}

static uint64_t rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t engine_rng_next(struct engine_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

double engine_rng_uniform(struct engine_rng *r)
{
	return (double)(engine_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ------------------------------------------------------------- sampler */

void engine_sampler_params_default(struct engine_sampler_params *p)
{
	*p = (struct engine_sampler_params){
		.temp = 0.8f,
		.top_k = 40,
		.top_p = 0.95f,
		.min_p = 0.05f,
		.repeat_penalty = 1.0f,
		.freq_penalty = 0.0f,
		.presence_penalty = 0.0f,
		.penalty_last_n = 64,
		.seed = 0x5EED,
	};
}

struct engine_sampler *engine_sampler_new(const struct engine_sampler_params *params,
					  int32_t n_vocab)
{
	if (n_vocab <= 0) {
		tk_errf(TK_EINVAL, "sampler: n_vocab must be > 0, got %d", n_vocab);
		return NULL;
	}
	const struct engine_sampler_params *p = params;
	if (isnan(p->temp) || isnan(p->top_p) || isnan(p->min_p) || p->min_p > 1.0f ||
	    !(p->repeat_penalty > 0.0f) || !isfinite(p->freq_penalty) ||
	    !isfinite(p->presence_penalty) || p->penalty_last_n < 0 ||
	    p->penalty_last_n > (1 << 20)) {
		tk_errf(TK_EINVAL, "sampler: invalid parameters (temp %g, top_p %g, min_p %g, "
			"repeat_penalty %g, penalty_last_n %d)", (double)p->temp,
			(double)p->top_p, (double)p->min_p, (double)p->repeat_penalty,
			p->penalty_last_n);
		return NULL;
	}
	struct engine_sampler *s = calloc(1, sizeof *s);
	if (!s)
		goto err_nomem;
	s->p = *p;
	s->n_vocab = n_vocab;
	s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
	if (!s->cands)
		goto err_free;
	s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
	if (!s->counts)
		goto err_free;
	if (p->penalty_last_n > 0) {
		s->ring = malloc((size_t)p->penalty_last_n * sizeof *s->ring);
		if (!s->ring)
			goto err_free;
	}
	engine_rng_seed(&s->rng, p->seed);
	return s;
err_free:
	engine_sampler_free(s);
err_nomem:
	tk_errf(TK_ENOMEM, "sampler: out of memory for %d candidates", n_vocab);
	return NULL;
}

void engine_sampler_free(struct engine_sampler *s)
{
	if (!s)
		return;
	free(s->ring);
	free(s->counts);
	free(s->cands);
	free(s);
}

void engine_sampler_reset(struct engine_sampler *s)
{
	s->ring_len = 0;
	s->ring_head = 0;
	memset(s->counts, 0, (size_t)s->n_vocab * sizeof *s->counts);
	engine_rng_seed(&s->rng, s->p.seed);
}

void engine_sampler_accept(struct engine_sampler *s, int32_t token)
{
	int32_t cap = s->p.penalty_last_n;
	if (cap <= 0)
		return;
	if (s->ring_len == cap) { /* drop the oldest */
		int32_t old = s->ring[s->ring_head];
		if (old >= 0 && old < s->n_vocab)
			s->counts[old]--;
		s->ring[s->ring_head] = token;
		s->ring_head = (s->ring_head + 1) % cap;
	} else {
		s->ring[(s->ring_head + s->ring_len) % cap] = token;
		s->ring_len++;
	}
	if (token >= 0 && token < s->n_vocab)
		s->counts[token]++;
}

int32_t engine_argmax(const float *logits, int32_t n)
{
	int32_t best = -1;
	for (int32_t i = 0; i < n; i++)
		if (!isnan(logits[i]) && (best < 0 || logits[i] > logits[best]))
			best = i;
	return best;
}

/* Sort order: higher logit first, lower id on ties (deterministic). */
static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->logit != y->logit)
		return x->logit > y->logit ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

static bool cand_before(const struct cand *x, const struct cand *y)
{
	return cand_cmp(x, y) < 0;
}

/* Min-heap on "before" order: the root is the worst of the kept k. */
static void heap_sift_down(struct cand *h, int32_t n, int32_t i)
{
	for (;;) {
		int32_t l = 2 * i + 1, r = l + 1, w = i;
		if (l < n && cand_before(&h[w], &h[l]))
			w = l;
		if (r < n && cand_before(&h[w], &h[r]))
			w = r;
		if (w == i)
			return;
		struct cand t = h[i];
		h[i] = h[w];
		h[w] = t;
		i = w;
	}
}

/* Moves the k best candidates of c[0..n) to the front, sorted. Returns k. */
static int32_t select_top(struct cand *c, int32_t n, int32_t k)
{
	if (k <= 0 || k >= n) {
		qsort(c, (size_t)n, sizeof *c, cand_cmp);
		return n;
	}
	for (int32_t i = k / 2 - 1; i >= 0; i--)
		heap_sift_down(c, k, i);
	for (int32_t i = k; i < n; i++) {
		if (cand_before(&c[i], &c[0])) {
			c[0] = c[i];
			heap_sift_down(c, k, 0);
		}
	}
	qsort(c, (size_t)k, sizeof *c, cand_cmp);
	return k;
}

int32_t engine_sampler_sample(struct engine_sampler *s, const float *logits)
{
	const struct engine_sampler_params *p = &s->p;
	int32_t n = 0;
	/* Candidates: every token with a usable logit, penalties applied. */
	for (int32_t i = 0; i < s->n_vocab; i++) {
		float l = logits[i];
		if (isnan(l) || l == -INFINITY)
			continue;
		int32_t c = s->counts[i];
		if (c > 0) {
			l = l > 0.0f ? l / p->repeat_penalty : l * p->repeat_penalty;
			l -= (float)c * p->freq_penalty + p->presence_penalty;
		}
		s->cands[n++] = (struct cand){ .id = i, .logit = l };
	}
	if (n == 0)
		return tk_errf(TK_EINVAL, "sampler: no token has a finite logit");

	if (p->temp <= 0.0f) { /* greedy */
		struct cand best = s->cands[0];
		for (int32_t i = 1; i < n; i++)
			if (cand_before(&s->cands[i], &best))
				best = s->cands[i];
		return best.id;
	}

	n = select_top(s->cands, n, p->top_k);
	struct cand *c = s->cands; /* sorted, best first */

	/* Softmax at temperature 1 for top-p / min-p. */
	double max_l = c[0].logit, sum = 0.0;
	for (int32_t i = 0; i < n; i++)
		sum += exp((double)c[i].logit - max_l);
	if (p->top_p < 1.0f) {
		double cum = 0.0;
		int32_t keep = n;
		for (int32_t i = 0; i < n; i++) {
			cum += exp((double)c[i].logit - max_l) / sum;
			if (cum >= p->top_p) {
				keep = i + 1;
				break;
			}
		}
		n = keep;
	}
	if (p->min_p > 0.0f) {
		/* p_i >= min_p * p_max  <=>  l_i >= l_max + log(min_p) */
		double min_l = max_l + log((double)p->min_p);
		int32_t keep = 1;
		while (keep < n && c[keep].logit >= min_l)
			keep++;
		n = keep;
	}

	/* Temperature and one draw. */
	double total = 0.0;
	for (int32_t i = 0; i < n; i++)
		total += exp(((double)c[i].logit - max_l) / p->temp);
	double u = engine_rng_uniform(&s->rng) * total, acc = 0.0;
	for (int32_t i = 0; i < n; i++) {
		acc += exp(((double)c[i].logit - max_l) / p->temp);
		if (u < acc)
			return c[i].id;
	}
	return c[n - 1].id; /* rounding left u at the very top */
}

/* ---------------------------------------------------------- stop rules */

void engine_stop_init(struct engine_stop *st, int32_t max_tokens)
{
	memset(st, 0, sizeof *st);
	st->max_tokens = max_tokens;
}

int engine_stop_add_token(struct engine_stop *st, int32_t id)
{
	if (id < 0 || engine_stop_is_token(st, id))
		return 0;
	if (st->n_token_ids >= ENGINE_STOP_MAX_TOKENS)
		return tk_errf(TK_ELIMIT, "stop: more than %d stop token ids",
			       ENGINE_STOP_MAX_TOKENS);
	st->token_ids[st->n_token_ids++] = id;
	return 0;
}

int engine_stop_add_string(struct engine_stop *st, const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > ENGINE_STOP_STRING_MAX)
		return tk_errf(TK_EINVAL, "stop: stop string must be 1..%d bytes, got %zu",
			       ENGINE_STOP_STRING_MAX, len);
	if (st->n_strings >= ENGINE_STOP_MAX_STRINGS)
		return tk_errf(TK_ELIMIT, "stop: more than %d stop strings",
			       ENGINE_STOP_MAX_STRINGS);
	memcpy(st->strings[st->n_strings++], s, len + 1);
	return 0;
}

bool engine_stop_is_token(const struct engine_stop *st, int32_t id)
{
	for (size_t i = 0; i < st->n_token_ids; i++)
		if (st->token_ids[i] == id)
			return true;
	return false;
}

bool engine_stop_find_string(const struct engine_stop *st, const char *text, size_t len,
			     size_t *at)
{
	bool found = false;
	size_t best = 0;
	for (size_t k = 0; k < st->n_strings; k++) {
		const char *m = memmem(text, len, st->strings[k], strlen(st->strings[k]));
		if (m && (!found || (size_t)(m - text) < best)) {
			found = true;
			best = (size_t)(m - text);
		}
	}
	if (found)
		*at = best;
	return found;
}

size_t engine_stop_partial_len(const struct engine_stop *st, const char *text, size_t len)
{
	size_t hold = 0;
	for (size_t k = 0; k < st->n_strings; k++) {
		size_t sl = strlen(st->strings[k]);
		/* longest proper prefix of the stop string that ends the text */
		for (size_t n = sl - 1; n > hold; n--) {
			if (n <= len && !memcmp(text + len - n, st->strings[k], n)) {
				hold = n;
				break;
			}
		}
	}
	return hold;
}
