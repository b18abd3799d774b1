/*
 * tok_spm.c — SentencePiece-style merging (the "llama" vocabulary kind).
 *
 * The escaped text (spaces already U+2581) is cut into UTF-8 characters;
 * every adjacent pair whose concatenation is a token is a candidate,
 * queued by that token's score (highest first; on equal scores the leftmost
 * pair first). Popping a candidate merges the pair if both sides are still
 * what they were, and queues the new pairs with its neighbours. At the end
 * each symbol is its token, or — when no token has that text — one byte
 * token per byte (<0xNN>, else the single-byte token, else <unk>). Bytes of
 * ill-formed UTF-8 are symbols of their own, so they come back byte for byte.
 *
 * Owns nothing beyond one call.
 */
#include "engine/tok_internal.h"
#include "engine/unicode.h"

#include "core/err.h"

#include <stdlib.h>

static int try_pair(const struct tk_tokenizer *t, const char *text, const struct tok_sym *s,
		    int left, int right, struct tok_heap *h)
{
	if (left < 0 || right < 0)
		return 0;
	uint32_t size = s[left].n + s[right].n;
	int32_t id = tok_lookup(t, text + s[left].off, size);
	if (id < 0)
		return 0;
	return tok_heap_push(h, (struct tok_bigram){ -(double)t->tok[id].score, left, right, size });
}

static int emit_bytes(const struct tk_tokenizer *t, const char *p, size_t n, struct tok_ids *ids)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)p[i];
		int32_t id = t->byte_tok[b] >= 0 ? t->byte_tok[b] : t->unk;
		if (id < 0)
			return tk_errf(TK_EFORMAT,
				       "tokenizer: byte 0x%02X has no token and the vocabulary has no <unk>",
				       b);
		int rc = tok_ids_push(ids, id);
		if (rc)
			return rc;
	}
	return 0;
}

int tok_spm_encode(const struct tk_tokenizer *t, const char *text, size_t len,
		   struct tok_ids *ids)
{
	if (len == 0)
		return 0;
	int rc = 0;
	struct tok_heap h = { 0 };
	struct tok_sym *s = malloc(len * sizeof *s);
	if (!s)
		return tk_errf(TK_ENOMEM, "tokenizer: out of memory for %zu symbols", len);
	int n = 0;
	for (size_t off = 0; off < len;) {
		/* One well-formed character, or one byte of an ill-formed one.
		 * (llama.cpp trusts the lead byte alone, which can swallow the
		 * next character into a byte-fallback run: for valid UTF-8 the
		 * two agree, for invalid input this one stays lossless.) */
		int r = tk_utf8_check((const unsigned char *)text + off, len - off);
		size_t cl = r > 0 ? (size_t)r : 1;
		s[n] = (struct tok_sym){ n - 1, off + cl == len ? -1 : n + 1, (uint32_t)off, (uint32_t)cl };
		n++;
		off += cl;
	}
	for (int i = 1; i < n; i++)
		if ((rc = try_pair(t, text, s, i - 1, i, &h)))
			goto out;
	while (h.n) {
		struct tok_bigram b = tok_heap_pop(&h);
		struct tok_sym *l = &s[b.left], *r = &s[b.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue; /* stale: one side changed since it was queued */
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			s[r->next].prev = b.left;
		if ((rc = try_pair(t, text, s, l->prev, b.left, &h)) ||
		    (rc = try_pair(t, text, s, b.left, l->next, &h)))
			goto out;
	}
	for (int i = 0; i != -1; i = s[i].next) {
		int32_t id = tok_lookup(t, text + s[i].off, s[i].n);
		rc = id >= 0 ? tok_ids_push(ids, id) : emit_bytes(t, text + s[i].off, s[i].n, ids);
		if (rc)
			goto out;
	}
out:
	free(h.v);
	free(s);
	return rc;
}
