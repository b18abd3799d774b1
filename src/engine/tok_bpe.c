/*
 * tok_bpe.c — byte-level BPE (the "gpt2" vocabulary kind).
 *
 * The text is cut by the vocabulary's pre-tokenizer (pretok.c); each piece's
 * bytes are mapped to printable code points (GPT-2's byte map), the mapped
 * word is cut into characters, and adjacent pairs are merged lowest merge
 * rank first (leftmost on ties) until no listed merge applies. Each final
 * symbol is its token; a symbol with no token falls back to one token per
 * byte of its mapped text when such tokens exist (as llama.cpp does).
 * Llama-3-style vocabularies take a whole word as one token when it is in
 * the vocabulary (ignore_merges).
 *
 * Owns nothing beyond one call.
 */
#include "engine/tok_internal.h"
#include "engine/unicode.h"

#include "core/err.h"

#include <stdlib.h>
#include <string.h>

/* Per-call scratch shared by every word of one encode. */
struct work {
	const struct tk_tokenizer *t;
	const char *text;
	struct tok_ids *ids;
	char *word;      /* mapped word */
	size_t word_cap;
	struct tok_sym *syms;
	size_t syms_cap;
	char *scratch;   /* for merge lookups */
	size_t scratch_cap;
	struct tok_heap h;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	void *q = realloc(*p, c * elem);
	if (!q)
		return tk_errf(TK_ENOMEM, "tokenizer: out of memory");
	*p = q;
	*cap = c;
	return 0;
}

static int try_pair(struct work *w, int left, int right)
{
	if (left < 0 || right < 0)
		return 0;
	const struct tok_sym *l = &w->syms[left], *r = &w->syms[right];
	int32_t rank = tok_merge_rank(w->t, w->word + l->off, l->n, w->word + r->off, r->n,
				      w->scratch);
	if (rank < 0)
		return 0;
	return tok_heap_push(&w->h, (struct tok_bigram){ (double)rank, left, right, l->n + r->n });
}

static int emit_symbol(struct work *w, const char *p, size_t n)
{
	int32_t id = tok_lookup(w->t, p, n);
	if (id >= 0)
		return tok_ids_push(w->ids, id);
	/* No token: one token per byte of the mapped text, where one exists. */
	for (size_t i = 0; i < n; i++) {
		id = tok_lookup(w->t, p + i, 1);
		if (id < 0)
			continue;
		int rc = tok_ids_push(w->ids, id);
		if (rc)
			return rc;
	}
	return 0;
}

static int bpe_word(size_t off, size_t len, void *ctx)
{
	struct work *w = ctx;
	const unsigned char *raw = (const unsigned char *)w->text + off;
	/* A byte maps to <= 2 bytes of UTF-8; a replaced one to 3 x 2. */
	int rc = grow((void **)&w->word, &w->word_cap, 6 * len, 1);
	if (rc)
		return rc;
	/* Map bytes to code points. A byte of ill-formed UTF-8 whose mapped
	 * character is not in the vocabulary (some vocabularies leave out the
	 * bytes valid UTF-8 never uses) becomes U+FFFD, which is what llama.cpp
	 * does with every ill-formed byte; otherwise it is kept. */
	size_t wl = 0;
	for (size_t i = 0; i < len;) {
		size_t adv;
		uint32_t cp = tk_utf8_decode((const char *)raw + i, len - i, &adv);
		if (cp == TK_UNICODE_REPLACEMENT && adv == 1 && w->t->byte_tok[raw[i]] < 0) {
			for (const char *f = "\xEF\xBF\xBD"; *f; f++)
				wl += tk_utf8_encode(tok_byte_to_cp((unsigned char)*f), w->word + wl);
			i++;
			continue;
		}
		for (size_t k = 0; k < adv; k++)
			wl += tk_utf8_encode(tok_byte_to_cp(raw[i + k]), w->word + wl);
		i += adv;
	}
	if (w->t->ignore_merges) {
		int32_t id = tok_lookup(w->t, w->word, wl);
		if (id >= 0)
			return tok_ids_push(w->ids, id);
	}
	if ((rc = grow((void **)&w->syms, &w->syms_cap, wl, sizeof *w->syms)) ||
	    (rc = grow((void **)&w->scratch, &w->scratch_cap, wl + 1, 1)))
		return rc;
	struct tok_sym *s = w->syms;
	int n = 0;
	for (size_t o = 0; o < wl;) {
		size_t cl = tk_utf8_lead_len((unsigned char)w->word[o]);
		if (cl > wl - o)
			cl = wl - o;
		s[n] = (struct tok_sym){ n - 1, o + cl == wl ? -1 : n + 1, (uint32_t)o, (uint32_t)cl };
		n++;
		o += cl;
	}
	w->h.n = 0;
	for (int i = 1; i < n; i++)
		if ((rc = try_pair(w, i - 1, i)))
			return rc;
	while (w->h.n) {
		struct tok_bigram b = tok_heap_pop(&w->h);
		struct tok_sym *l = &s[b.left], *r = &s[b.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue; /* stale */
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			s[r->next].prev = b.left;
		if ((rc = try_pair(w, l->prev, b.left)) || (rc = try_pair(w, b.left, l->next)))
			return rc;
	}
	for (int i = 0; i != -1 && n > 0; i = s[i].next)
		if ((rc = emit_symbol(w, w->word + s[i].off, s[i].n)))
			return rc;
	return 0;
}

int tok_bpe_encode(const struct tk_tokenizer *t, const char *text, size_t len,
		   struct tok_ids *ids)
{
	struct work w = { .t = t, .text = text, .ids = ids };
	int rc = tk_pretokenize(t->pre, text, len, bpe_word, &w);
	free(w.word);
	free(w.syms);
	free(w.scratch);
	free(w.h.v);
	return rc;
}
