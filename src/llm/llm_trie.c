/*
 * llm_trie.c — the vocabulary prefix tree of llm_trie.h and the masks it
 * computes with a grammar walker. Owns the node array, the id array and
 * the list of end-of-generation ids; borrows the tokenizer.
 *
 * Build: the ids of every token with a non-empty text (end-of-generation
 * tokens apart) are sorted by text, bytewise, shorter first on a tie of
 * prefixes; one pass over the sorted list then lays the nodes out in
 * preorder, keeping the open path (one node per depth): each text closes
 * the path below its common prefix with the previous text and opens nodes
 * for the rest of its bytes.
 *
 * Walk: depth first, recursion depth = text length (at most
 * TK_TOK_MAX_TOKEN_BYTES). Bytes are gathered into code points along the
 * way (strict UTF-8, as the matcher decodes); a completed code point is one
 * walker push, a refused push drops the subtree. Inside a multi-byte
 * character the subtree is dropped as soon as no stack can take any code
 * point that starts with the bytes so far.
 */
#include "llm/llm_trie.h"

#include "core/err.h"
#include "engine/tokenizer.h"
#include "llm/grammar.h"

#include <stdlib.h>
#include <string.h>

struct tnode {
	uint32_t end;   /* one past the last node of this subtree */
	uint32_t tok0;  /* ids[tok0 .. tok0 + n_tok): tokens whose text ends here */
	uint32_t n_tok;
	uint8_t byte;   /* the edge from the parent (unused at the root) */
};

struct llm_trie {
	const struct tk_tokenizer *tok; /* borrowed */
	size_t n_vocab;
	struct tnode *nodes;            /* [n_nodes], preorder; nodes[0] is the root */
	size_t n_nodes;
	int32_t *ids;                   /* token ids, in text order */
	size_t n_ids;
	int32_t *eog;                   /* end-of-generation ids */
	size_t n_eog;
};

struct entry {
	const unsigned char *text;
	size_t len;
	int32_t id;
};

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = n ? memcmp(x->text, y->text, n) : 0;
	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

void llm_trie_free(struct llm_trie *t)
{
	if (!t)
		return;
	free(t->nodes);
	free(t->ids);
	free(t->eog);
	free(t);
}

size_t llm_trie_n_vocab(const struct llm_trie *t)
{
	return t->n_vocab;
}

size_t llm_trie_n_nodes(const struct llm_trie *t)
{
	return t->n_nodes;
}

/* Lays the sorted entries out as nodes (see the file comment). */
static int trie_layout(struct llm_trie *t, const struct entry *e, size_t n, size_t max_len)
{
	size_t cap = 1;
	for (size_t i = 0; i < n; i++) /* an upper bound: every byte a node */
		cap += e[i].len;
	if (cap >= UINT32_MAX)
		return tk_errf(TK_ELIMIT, "trie: the vocabulary's texts hold %zu bytes, more "
			       "than 2^32 - 2", cap);
	uint32_t *path = malloc((max_len + 1) * sizeof *path);
	t->nodes = malloc(cap * sizeof *t->nodes);
	if (!path || !t->nodes) {
		free(path);
		return tk_errf(TK_ENOMEM, "trie: out of memory");
	}
	t->nodes[0] = (struct tnode){ 0, 0, 0, 0 };
	t->n_nodes = 1;
	path[0] = 0;
	size_t depth = 0; /* path[0..depth] is open */
	const struct entry *prev = NULL;
	for (size_t i = 0; i < n; i++) {
		size_t lcp = 0;
		if (prev)
			while (lcp < prev->len && lcp < e[i].len && prev->text[lcp] == e[i].text[lcp])
				lcp++;
		for (; depth > lcp; depth--) /* close the path below the common prefix */
			t->nodes[path[depth]].end = (uint32_t)t->n_nodes;
		for (; depth < e[i].len; depth++) {
			uint32_t k = (uint32_t)t->n_nodes++;
			t->nodes[k] = (struct tnode){ 0, 0, 0, e[i].text[depth] };
			path[depth + 1] = k;
		}
		struct tnode *at = &t->nodes[path[depth]];
		if (!at->n_tok)
			at->tok0 = (uint32_t)i; /* equal texts are adjacent in e */
		at->n_tok++;
		t->ids[i] = e[i].id;
		prev = &e[i];
	}
	for (;; depth--) {
		t->nodes[path[depth]].end = (uint32_t)t->n_nodes;
		if (!depth)
			break;
	}
	t->n_ids = n;
	free(path);
	return 0;
}

struct llm_trie *llm_trie_new(const struct tk_tokenizer *tok)
{
	size_t n_vocab = tk_tokenizer_n_vocab(tok);
	struct llm_trie *t = calloc(1, sizeof *t);
	struct entry *e = calloc(n_vocab ? n_vocab : 1, sizeof *e);
	int rc = 0;
	if (!t || !e || !(t->ids = malloc((n_vocab ? n_vocab : 1) * sizeof *t->ids)) ||
	    !(t->eog = malloc((n_vocab ? n_vocab : 1) * sizeof *t->eog))) {
		rc = tk_errf(TK_ENOMEM, "trie: out of memory");
		goto fail;
	}
	t->tok = tok;
	t->n_vocab = n_vocab;
	size_t n = 0, max_len = 0;
	for (size_t i = 0; i < n_vocab; i++) {
		int32_t id = (int32_t)i;
		if (tk_tokenizer_is_eog(tok, id)) {
			t->eog[t->n_eog++] = id;
			continue;
		}
		const char *piece;
		size_t len;
		if (tk_tokenizer_piece(tok, id, 0, &piece, &len) || !len)
			continue; /* never allowed under a grammar */
		e[n++] = (struct entry){ (const unsigned char *)piece, len, id };
		if (len > max_len)
			max_len = len;
	}
	qsort(e, n, sizeof *e, entry_cmp);
	if ((rc = trie_layout(t, e, n, max_len)))
		goto fail;
	free(e);
	return t;
fail:
	(void)rc;
	free(e);
	llm_trie_free(t);
	return NULL;
}

/* ---- masks ---- */

/* A code point being gathered from its UTF-8 bytes. */
struct u8acc {
	uint32_t cp;   /* the bits so far */
	uint32_t min;  /* the smallest code point of this length (overlongs) */
	int need;      /* continuation bytes still to come; 0: between characters */
};

struct walk {
	const struct llm_trie *t;
	struct llm_gwalk *w;
	uint8_t *allow;
	size_t n_allowed;
};

static void mark(struct walk *k, const struct tnode *nd)
{
	for (uint32_t i = 0; i < nd->n_tok; i++)
		k->allow[k->t->ids[nd->tok0 + i]] = 1;
	k->n_allowed += nd->n_tok;
}

/* Walks the children of node `at`, the walker's top level being the state
 * after the complete characters of its text and u the character it is in
 * the middle of (if any). */
static int walk_children(struct walk *k, uint32_t at, struct u8acc u)
{
	const struct tnode *nodes = k->t->nodes;
	for (uint32_t c = at + 1; c < nodes[at].end; c = nodes[c].end) {
		unsigned b = nodes[c].byte;
		struct u8acc v = u;
		if (!v.need) {
			if (b < 0x80) {
				v = (struct u8acc){ b, 0, 0 };
			} else if ((b & 0xE0) == 0xC0) {
				v = (struct u8acc){ b & 0x1F, 0x80, 1 };
			} else if ((b & 0xF0) == 0xE0) {
				v = (struct u8acc){ b & 0x0F, 0x800, 2 };
			} else if ((b & 0xF8) == 0xF0) {
				v = (struct u8acc){ b & 0x07, 0x10000, 3 };
			} else {
				continue; /* not a lead byte: never valid */
			}
		} else {
			if ((b & 0xC0) != 0x80)
				continue;
			v.cp = (v.cp << 6) | (b & 0x3F);
			v.need--;
		}
		int rc;
		if (v.need) {
			/* the code points this character can still become */
			unsigned sh = 6u * (unsigned)v.need;
			uint32_t lo = v.cp << sh, hi = lo | ((1u << sh) - 1);
			if (hi < v.min || lo > 0x10FFFF || !llm_gwalk_may(k->w, lo, hi))
				continue;
			if ((rc = walk_children(k, c, v)))
				return rc;
			continue;
		}
		if (v.cp < v.min || v.cp > 0x10FFFF || (v.cp >= 0xD800 && v.cp <= 0xDFFF))
			continue; /* overlong, beyond Unicode, or a surrogate */
		rc = llm_gwalk_push(k->w, v.cp);
		if (rc == TK_EINVAL)
			continue;
		if (rc)
			return rc;
		mark(k, &nodes[c]);
		rc = walk_children(k, c, (struct u8acc){ 0, 0, 0 });
		llm_gwalk_pop(k->w);
		if (rc)
			return rc;
	}
	return 0;
}

static void allow_eog(const struct llm_trie *t, bool can_end, uint8_t *allow, size_t *n)
{
	for (size_t i = 0; i < t->n_eog; i++)
		allow[t->eog[i]] = can_end;
	if (can_end)
		*n += t->n_eog;
}

int llm_trie_allowed(const struct llm_trie *t, const struct llm_gstate *s,
		     struct llm_gwalk *w, uint8_t *allow, size_t *n_allowed)
{
	memset(allow, 0, t->n_vocab);
	struct walk k = { t, w, allow, 0 };
	int rc = llm_gwalk_start(w, s);
	if (!rc)
		rc = walk_children(&k, 0, (struct u8acc){ 0, 0, 0 });
	if (rc)
		return rc;
	allow_eog(t, llm_gstate_accepts(s), allow, &k.n_allowed);
	if (n_allowed)
		*n_allowed = k.n_allowed;
	return 0;
}

int llm_trie_allowed_naive(const struct llm_trie *t, const struct llm_gstate *s,
			   uint8_t *allow, size_t *n_allowed)
{
	bool can_end = llm_gstate_accepts(s);
	size_t n = 0;
	for (size_t i = 0; i < t->n_vocab; i++) {
		int32_t id = (int32_t)i;
		const char *piece;
		size_t len;
		int rc = TK_EINVAL;
		if (tk_tokenizer_is_eog(t->tok, id))
			rc = can_end ? 0 : TK_EINVAL;
		else if (!tk_tokenizer_piece(t->tok, id, 0, &piece, &len))
			rc = llm_gstate_check(s, piece, len, NULL);
		if (rc && rc != TK_EINVAL)
			return rc;
		allow[i] = !rc;
		n += !rc;
	}
	if (n_allowed)
		*n_allowed = n;
	return 0;
}
