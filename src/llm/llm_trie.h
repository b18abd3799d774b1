/*
 * llm_trie.h — a model's vocabulary as a prefix tree of token texts, for
 * masking the whole vocabulary under a grammar (constrained decoding).
 *
 * Which tokens may come next under a grammar state? Asking each token in
 * turn walks every token's bytes through the matcher: ~vocabulary x piece
 * length work per generated token. The trie shares the work of common
 * prefixes and, walked depth-first together with the grammar (grammar.h,
 * llm_gwalk), drops a whole subtree as soon as its prefix is refused, so a
 * mask costs about the number of accepted prefixes, not the vocabulary.
 *
 * What a mask allows is exactly what the per-token check allows
 * (llm_trie_allowed_naive, kept as the reference and for A/B timing):
 *   - a token whose text (tk_tokenizer_piece, flags 0) is non-empty,
 *     complete and valid UTF-8 and may come next (llm_gstate_check);
 *   - an end-of-generation token (tk_tokenizer_is_eog) only when the text
 *     so far is a whole sentence (llm_gstate_accepts);
 *   - never a token with an empty text (control tokens) or with partial
 *     UTF-8 (a byte token of a multi-byte character): a character split
 *     across tokens is not produced under a grammar.
 *
 * Layout: nodes in depth-first preorder, so a node's subtree is the index
 * range [node, node.end) and its children follow one another by their
 * .end; the tokens whose text ends at a node are a run of one id array.
 * Built once per tokenizer from the texts sorted bytewise.
 *
 * Ownership and threads: the trie borrows its tokenizer (which must outlive
 * it) and is immutable once built, so any number of threads may mask with
 * it at once, each with its own walker (llm_gwalk) and output array.
 */
#ifndef TK_LLM_TRIE_H
#define TK_LLM_TRIE_H

#include <stddef.h>
#include <stdint.h>

struct tk_tokenizer;
struct llm_gstate;
struct llm_gwalk;
struct llm_trie;

/* Builds the trie of tok's vocabulary (tok borrowed). NULL with TK_ELIMIT
 * (more than 2^32 - 2 trie nodes) or TK_ENOMEM. */
struct llm_trie *llm_trie_new(const struct tk_tokenizer *tok);
void llm_trie_free(struct llm_trie *t); /* NULL ok */

/* Tokens in the vocabulary (the length of the allow arrays below). */
size_t llm_trie_n_vocab(const struct llm_trie *t);
/* Nodes in the tree, the root included (for benchmarks and docs). */
size_t llm_trie_n_nodes(const struct llm_trie *t);

/* Fills allow[0..n_vocab) with 1 for each token allowed next under s and 0
 * for the others, walking the trie with w (a walker of s's grammar, owned
 * by the caller, reused between calls; its levels are overwritten). s is
 * borrowed and unchanged. *n_allowed (when not NULL) gets the count of
 * ones. 0, TK_ELIMIT (the grammar's caps), TK_ENOMEM; on error allow is
 * unspecified. */
int llm_trie_allowed(const struct llm_trie *t, const struct llm_gstate *s,
		     struct llm_gwalk *w, uint8_t *allow, size_t *n_allowed);

/* The same answer, token by token with llm_gstate_check (the reference the
 * trie walk is tested against; slow: ~vocabulary x piece length). */
int llm_trie_allowed_naive(const struct llm_trie *t, const struct llm_gstate *s,
			   uint8_t *allow, size_t *n_allowed);

#endif
