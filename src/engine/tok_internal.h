/*
 * tok_internal.h — private to the tokenizer files (tokenizer.c, tok_spm.c,
 * tok_bpe.c, pretok.c, tokenizer_gguf.c). Not part of the engine's API.
 *
 * Owns the layout of struct tk_tokenizer and the helpers the algorithm
 * files share: the text->id hash, the growable id vector with its cap, and
 * the byte<->code point table of byte-level BPE.
 */
#ifndef TK_ENGINE_TOK_INTERNAL_H
#define TK_ENGINE_TOK_INTERNAL_H

#include "engine/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Extra attributes beside the GGUF type. */
enum {
	TOK_ATTR_RSTRIP = 1u << 0, /* eat whitespace after this special token */
	TOK_ATTR_EOG = 1u << 1,    /* ends generation */
};

struct tok_entry {
	uint32_t text_off;  /* into text_pool; NUL-terminated there */
	uint32_t text_len;
	uint32_t piece_off; /* into piece_pool: what the token decodes to */
	uint32_t piece_len;
	float score;
	uint8_t type;       /* enum tk_tok_type */
	uint8_t attr;       /* TOK_ATTR_* */
};

/* Open-addressing hash of byte strings -> index; slots hold index+1 (0 =
 * empty). The strings live elsewhere; the key function gives them back. */
struct tok_hash {
	uint32_t *slots;
	size_t mask; /* slots - 1; power of two */
};

struct tok_merge {
	uint32_t off;      /* into merge_pool: "left right" */
	uint32_t len;
	uint32_t left_len; /* bytes before the separating space */
};

struct tk_tokenizer {
	enum tk_tok_kind kind;
	enum tk_tok_pre pre;
	size_t n_vocab;
	struct tok_entry *tok;   /* n_vocab */
	char *text_pool;
	char *piece_pool;
	struct tok_hash tok_hash;

	size_t n_merges;
	struct tok_merge *merges;
	char *merge_pool;
	struct tok_hash merge_hash;

	int32_t bos, eos, eot, unk, pad; /* -1 = none */
	bool add_bos, add_eos, add_space_prefix;
	bool ignore_merges;      /* llama-bpe: a whole word in the vocab wins */

	int32_t *specials;       /* control/unknown/user-defined, longest first */
	size_t n_specials;

	int32_t byte_tok[256];   /* token of each raw byte (<0xNN> or mapped char); -1 */
};

/* Growable id vector with a hard cap. */
struct tok_ids {
	int32_t *v;
	size_t n, cap, max;
};
int tok_ids_push(struct tok_ids *ids, int32_t id);

/* FNV-1a, 64-bit folded. */
uint64_t tok_hash_bytes(const void *p, size_t n);

/* Token id of text[0..n), or -1. */
int32_t tok_lookup(const struct tk_tokenizer *t, const char *s, size_t n);

/* Rank of merging left[0..ln) with right[0..rn), or -1. scratch must hold
 * ln + rn + 1 bytes. */
int32_t tok_merge_rank(const struct tk_tokenizer *t, const char *left, size_t ln,
		       const char *right, size_t rn, char *scratch);

/* Byte-level BPE mapping: byte -> code point, and back (-1 if cp is not the
 * image of a byte). */
uint32_t tok_byte_to_cp(unsigned char b);
int tok_cp_to_byte(uint32_t cp);

/* Tokenizes one raw-text fragment, appending to ids. SPM: text is the
 * already-escaped (U+2581) fragment. BPE: the raw fragment. */
/* The merge loops of SPM and BPE (tok_spm.c, tok_bpe.c) share their
 * symbol chain and candidate queue. A symbol is a run of the text; merging
 * two symbols empties the right one (n == 0). */
struct tok_sym {
	int prev, next;  /* neighbours in the live chain; -1 at the ends */
	uint32_t off, n; /* bytes of the text; n == 0 once merged away */
};

/* A candidate merge of two adjacent symbols. The queue pops the lowest key
 * first, the leftmost pair on equal keys: SPM queues -score (best score
 * first), BPE the merge rank (earliest merge first). size is the pair's
 * bytes when queued, so a stale candidate is recognised when popped. */
struct tok_bigram {
	double key;
	int left, right;
	uint32_t size;
};

/* A binary min-heap of candidates; zero-initialise, free(h->v) after. */
struct tok_heap {
	struct tok_bigram *v;
	size_t n, cap;
};

/* Pushes x (may reallocate). 0 or TK_ENOMEM. */
int tok_heap_push(struct tok_heap *h, struct tok_bigram x);
/* Pops the first candidate; h->n must be > 0. */
struct tok_bigram tok_heap_pop(struct tok_heap *h);

int tok_spm_encode(const struct tk_tokenizer *t, const char *text, size_t len,
		   struct tok_ids *ids);
int tok_bpe_encode(const struct tk_tokenizer *t, const char *text, size_t len,
		   struct tok_ids *ids);

#endif
