/*
 * tokenizer.c — building a tokenizer from its description, the shared
 * lookups, special-token partitioning, encode/decode and the streaming
 * decoder. The merge algorithms live in tok_spm.c and tok_bpe.c, the
 * pre-tokenizers in pretok.c, the GGUF glue in tokenizer_gguf.c.
 *
 * Owns: every tk_tokenizer (its pools, tables and hash indexes) and every
 * tk_tok_stream.
 */
#include "engine/tok_internal.h"
#include "engine/unicode.h"

#include "core/buf.h"
#include "core/err.h"
#include "obs/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small shared helpers ---- */

uint64_t tok_hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

int tok_ids_push(struct tok_ids *ids, int32_t id)
{
	if (ids->n >= ids->max)
		return tk_errf(TK_ELIMIT, "tokenizer: more than %zu tokens", ids->max);
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? ids->cap * 2 : 64;
		int32_t *v = realloc(ids->v, cap * sizeof *v);
		if (!v)
			return tk_errf(TK_ENOMEM, "tokenizer: out of memory for %zu ids", cap);
		ids->v = v;
		ids->cap = cap;
	}
	ids->v[ids->n++] = id;
	return 0;
}

static int hash_init(struct tok_hash *h, size_t n)
{
	size_t slots = 16;
	while (slots < n * 2)
		slots *= 2;
	h->slots = calloc(slots, sizeof *h->slots);
	if (!h->slots)
		return tk_errf(TK_ENOMEM, "tokenizer: cannot allocate a hash of %zu slots", slots);
	h->mask = slots - 1;
	return 0;
}

static const char *tok_text(const struct tk_tokenizer *t, size_t id)
{
	return t->text_pool + t->tok[id].text_off;
}

int32_t tok_lookup(const struct tk_tokenizer *t, const char *s, size_t n)
{
	if (n == 0)
		return -1;
	size_t i = tok_hash_bytes(s, n) & t->tok_hash.mask;
	for (;;) {
		uint32_t v = t->tok_hash.slots[i];
		if (!v)
			return -1;
		const struct tok_entry *e = &t->tok[v - 1];
		if (e->text_len == n && !memcmp(t->text_pool + e->text_off, s, n))
			return (int32_t)(v - 1);
		i = (i + 1) & t->tok_hash.mask;
	}
}

int32_t tok_merge_rank(const struct tk_tokenizer *t, const char *left, size_t ln,
		       const char *right, size_t rn, char *scratch)
{
	if (!t->n_merges)
		return -1;
	memcpy(scratch, left, ln);
	scratch[ln] = ' ';
	memcpy(scratch + ln + 1, right, rn);
	size_t n = ln + 1 + rn;
	size_t i = tok_hash_bytes(scratch, n) & t->merge_hash.mask;
	for (;;) {
		uint32_t v = t->merge_hash.slots[i];
		if (!v)
			return -1;
		const struct tok_merge *m = &t->merges[v - 1];
		if (m->len == n && m->left_len == ln && !memcmp(t->merge_pool + m->off, scratch, n))
			return (int32_t)(v - 1);
		i = (i + 1) & t->merge_hash.mask;
	}
}

/* GPT-2's byte <-> printable code point map: printable Latin-1 bytes map to
 * themselves, the other 68 bytes to U+0100.. in byte order. */
static bool byte_is_printable(unsigned b)
{
	return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t tok_byte_to_cp(unsigned char b)
{
	if (byte_is_printable(b))
		return b;
	uint32_t n = 0;
	for (unsigned i = 0; i < b; i++)
		if (!byte_is_printable(i))
			n++;
	return 256 + n;
}

int tok_cp_to_byte(uint32_t cp)
{
	if (cp < 256)
		return byte_is_printable(cp) ? (int)cp : -1;
	uint32_t n = 0;
	for (unsigned b = 0; b < 256; b++) {
		if (byte_is_printable(b))
			continue;
		if (256 + n == cp)
			return (int)b;
		n++;
	}
	return -1;
}

/* ---- construction ---- */

void tk_tok_desc_init(struct tk_tok_desc *d)
{
	memset(d, 0, sizeof *d);
	d->bos_id = d->eos_id = d->eot_id = d->unk_id = d->pad_id = TK_TOK_ID_DEFAULT;
	d->add_bos = d->add_eos = d->add_space_prefix = TK_TOK_FLAG_DEFAULT;
}

static int parse_byte_token(const char *s, size_t n, unsigned *out)
{
	if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>' || !isxdigit((unsigned char)s[3]) ||
	    !isxdigit((unsigned char)s[4]))
		return -1;
	char hex[3] = { s[3], s[4], 0 };
	*out = (unsigned)strtoul(hex, NULL, 16);
	return 0;
}

/* Turns token text into what it decodes to. */
static size_t make_piece(const struct tk_tokenizer *t, size_t id, char *out)
{
	const struct tok_entry *e = &t->tok[id];
	const char *s = tok_text(t, id);
	size_t n = e->text_len, w = 0;
	unsigned byte;
	switch (e->type) {
	case TK_TOKTYPE_CONTROL:
	case TK_TOKTYPE_UNKNOWN:
	case TK_TOKTYPE_USER_DEFINED:
		memcpy(out, s, n);
		return n;
	case TK_TOKTYPE_BYTE:
		if (parse_byte_token(s, n, &byte) == 0) {
			out[0] = (char)byte;
			return 1;
		}
		return 0;
	case TK_TOKTYPE_NORMAL:
		break;
	default: /* unused, undefined: no text, like llama.cpp */
		return 0;
	}
	if (t->kind == TK_TOK_SPM) {
		for (size_t i = 0; i < n;) {
			if (i + 3 <= n && !memcmp(s + i, "\xE2\x96\x81", 3)) {
				out[w++] = ' ';
				i += 3;
			} else {
				out[w++] = s[i++];
			}
		}
		return w;
	}
	for (size_t i = 0; i < n;) {
		size_t adv;
		uint32_t cp = tk_utf8_decode(s + i, n - i, &adv);
		int b = tok_cp_to_byte(cp);
		if (b >= 0) {
			out[w++] = (char)b;
		} else { /* not a mapped byte: keep the text as it is */
			memcpy(out + w, s + i, adv);
			w += adv;
		}
		i += adv;
	}
	return w;
}

/* Texts that end a turn (llama.cpp's list); EOG tokens get the CONTROL type
 * as llama.cpp gives them. */
#define DEEPSEEK_EOS "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"
static const char *const eot_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
	"<|end_of_text|>", "<EOT>", "_<EOT>", (DEEPSEEK_EOS),
};
/* Also ending generation: <|eom_id|> and the fill-in-the-middle padding,
 * repository and file separators (llama.cpp's lists). */
static const char *const eog_extra_texts[] = {
	"<|eom_id|>", "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "<|fim_repo|>",
	"<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
};
/* DeepSeek-Coder's end of turn (user-defined there; llama.cpp relies on the
 * GGUF's eos id for it): ends generation but keeps its type. */
static const char *const eog_soft_texts[] = { "<|EOT|>" };

static bool text_in(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s, list[i]))
			return true;
	return false;
}

static int resolve_id(const char *what, int64_t given, int32_t def, size_t n_vocab, int32_t *out)
{
	if (given == TK_TOK_ID_DEFAULT) {
		*out = (def >= 0 && (size_t)def < n_vocab) ? def : -1;
		return 0;
	}
	if (given == -1) {
		*out = -1;
		return 0;
	}
	if (given < 0 || (uint64_t)given >= n_vocab)
		return tk_errf(TK_EFORMAT, "tokenizer: %s id %lld out of range (vocab %zu)", what,
			       (long long)given, n_vocab);
	*out = (int32_t)given;
	return 0;
}

static int cmp_special(const void *a, const void *b, void *ctx)
{
	const struct tk_tokenizer *t = ctx;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	uint32_t lx = t->tok[x].text_len, ly = t->tok[y].text_len;
	if (lx != ly)
		return lx > ly ? -1 : 1;
	return x < y ? -1 : (x > y);
}

static bool llama3_family(const char *pre)
{
	static const char *const names[] = { "llama3", "llama-v3", "llama-bpe", "falcon3",
					     "falcon-h1", "pixtral", "midm-2.0", "lfm2" };
	return pre && text_in(pre, names, sizeof names / sizeof names[0]);
}

static int build_tokens(struct tk_tokenizer *t, const struct tk_tok_desc *d)
{
	size_t n = d->n_tokens, pool = 0;
	for (size_t i = 0; i < n; i++) {
		if (!d->tokens[i])
			return tk_errf(TK_EFORMAT, "tokenizer: token %zu: missing text", i);
		size_t len = d->token_lens ? d->token_lens[i] : strlen(d->tokens[i]);
		if (len > TK_TOK_MAX_TOKEN_BYTES)
			return tk_errf(TK_ELIMIT, "tokenizer: token %zu: %zu bytes, over the cap of %u",
				       i, len, TK_TOK_MAX_TOKEN_BYTES);
		pool += len + 1;
	}
	if (pool > UINT32_MAX)
		return tk_errf(TK_ELIMIT, "tokenizer: token texts total %zu bytes", pool);
	t->tok = calloc(n, sizeof *t->tok);
	t->text_pool = malloc(pool);
	if (!t->tok || !t->text_pool)
		return tk_errf(TK_ENOMEM, "tokenizer: out of memory for %zu tokens", n);
	int rc = hash_init(&t->tok_hash, n);
	if (rc)
		return rc;

	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		const char *s = d->tokens[i];
		size_t len = d->token_lens ? d->token_lens[i] : strlen(s);
		struct tok_entry *e = &t->tok[i];
		int32_t type = d->types ? d->types[i] : TK_TOKTYPE_NORMAL;
		if (type < TK_TOKTYPE_UNDEFINED || type > TK_TOKTYPE_BYTE)
			return tk_errf(TK_EFORMAT, "tokenizer: token %zu: unknown type %d", i, (int)type);
		if (!tk_utf8_valid(s, len))
			return tk_errf(TK_EFORMAT, "tokenizer: token %zu: text is not valid UTF-8", i);
		if (memchr(s, '\0', len))
			return tk_errf(TK_EFORMAT, "tokenizer: token %zu: text contains a NUL byte", i);
		unsigned byte;
		if (type == TK_TOKTYPE_BYTE && parse_byte_token(s, len, &byte))
			return tk_errf(TK_EFORMAT, "tokenizer: token %zu: byte token '%.*s' is not <0xNN>",
				       i, (int)(len > 32 ? 32 : len), s);
		float score = d->scores ? d->scores[i] : 0.0f;
		if (score != score)
			return tk_errf(TK_EFORMAT, "tokenizer: token %zu: score is NaN", i);
		memcpy(t->text_pool + off, s, len);
		t->text_pool[off + len] = '\0';
		e->text_off = (uint32_t)off;
		e->text_len = (uint32_t)len;
		e->type = (uint8_t)type;
		e->score = score;
		off += len + 1;
		if (len == 0) /* llama.cpp tolerates these; they never match */
			continue;
		int32_t dup = tok_lookup(t, s, len);
		if (dup >= 0)
			return tk_errf(TK_EFORMAT, "tokenizer: duplicate token '%.*s' (ids %d and %zu)",
				       (int)(len > 32 ? 32 : len), s, (int)dup, i);
		size_t slot = tok_hash_bytes(s, len) & t->tok_hash.mask;
		while (t->tok_hash.slots[slot])
			slot = (slot + 1) & t->tok_hash.mask;
		t->tok_hash.slots[slot] = (uint32_t)i + 1;
	}
	return 0;
}

static int build_merges(struct tk_tokenizer *t, const struct tk_tok_desc *d)
{
	size_t n = d->n_merges, pool = 0;
	if (n > TK_TOK_MAX_MERGES)
		return tk_errf(TK_ELIMIT, "tokenizer: %zu merges, over the cap of %u", n,
			       TK_TOK_MAX_MERGES);
	if (n && !d->merges)
		return tk_errf(TK_EINVAL, "tokenizer: n_merges %zu but no merges", n);
	for (size_t i = 0; i < n; i++) {
		if (!d->merges[i])
			return tk_errf(TK_EFORMAT, "tokenizer: merge %zu: missing", i);
		size_t len = d->merge_lens ? d->merge_lens[i] : strlen(d->merges[i]);
		if (len > 2 * TK_TOK_MAX_TOKEN_BYTES + 1)
			return tk_errf(TK_ELIMIT, "tokenizer: merge %zu: %zu bytes, too long", i, len);
		pool += len;
	}
	t->n_merges = n;
	if (!n)
		return 0;
	if (pool > UINT32_MAX)
		return tk_errf(TK_ELIMIT, "tokenizer: merges total %zu bytes", pool);
	t->merges = calloc(n, sizeof *t->merges);
	t->merge_pool = malloc(pool ? pool : 1);
	if (!t->merges || !t->merge_pool)
		return tk_errf(TK_ENOMEM, "tokenizer: out of memory for %zu merges", n);
	int rc = hash_init(&t->merge_hash, n);
	if (rc)
		return rc;
	char *scratch = malloc(2 * TK_TOK_MAX_TOKEN_BYTES + 2);
	if (!scratch)
		return tk_errf(TK_ENOMEM, "tokenizer: out of memory");
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		const char *s = d->merges[i];
		size_t len = d->merge_lens ? d->merge_lens[i] : strlen(s);
		const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
		if (!sp || (size_t)(sp - s) + 1 >= len) {
			free(scratch);
			return tk_errf(TK_EFORMAT,
				       "tokenizer: merge %zu: '%.*s' is not two strings separated by a space",
				       i, (int)(len > 40 ? 40 : len), s);
		}
		if (!tk_utf8_valid(s, len)) {
			free(scratch);
			return tk_errf(TK_EFORMAT, "tokenizer: merge %zu: not valid UTF-8", i);
		}
		size_t ln = (size_t)(sp - s);
		memcpy(t->merge_pool + off, s, len);
		t->merges[i] = (struct tok_merge){ (uint32_t)off, (uint32_t)len, (uint32_t)ln };
		off += len;
		/* The first rank of a repeated pair wins (as llama.cpp's emplace). */
		if (tok_merge_rank(t, s, ln, sp + 1, len - ln - 1, scratch) >= 0)
			continue;
		size_t slot = tok_hash_bytes(s, len) & t->merge_hash.mask;
		while (t->merge_hash.slots[slot])
			slot = (slot + 1) & t->merge_hash.mask;
		t->merge_hash.slots[slot] = (uint32_t)i + 1;
	}
	free(scratch);
	return 0;
}

static int build_pieces(struct tk_tokenizer *t)
{
	size_t pool = 0;
	for (size_t i = 0; i < t->n_vocab; i++)
		pool += t->tok[i].text_len; /* a piece is never longer than its text */
	t->piece_pool = malloc(pool ? pool : 1);
	if (!t->piece_pool)
		return tk_errf(TK_ENOMEM, "tokenizer: out of memory for pieces");
	size_t off = 0;
	for (size_t i = 0; i < t->n_vocab; i++) {
		size_t n = make_piece(t, i, t->piece_pool + off);
		t->tok[i].piece_off = (uint32_t)off;
		t->tok[i].piece_len = (uint32_t)n;
		off += n;
	}
	return 0;
}

static void build_byte_tokens(struct tk_tokenizer *t)
{
	for (unsigned b = 0; b < 256; b++) {
		char s[8];
		int32_t id = -1;
		if (t->kind == TK_TOK_SPM) {
			snprintf(s, sizeof s, "<0x%02X>", b);
			id = tok_lookup(t, s, 6);
			if (id < 0) {
				s[0] = (char)b;
				id = tok_lookup(t, s, 1);
			}
		} else {
			size_t n = tk_utf8_encode(tok_byte_to_cp((unsigned char)b), s);
			id = tok_lookup(t, s, n);
		}
		t->byte_tok[b] = id;
	}
}

/* Marks end-of-generation tokens; picks the end-of-turn token, when the
 * vocabulary does not name one, as the first text of eot_texts (then the
 * soft list) that it has: <|eot_id|> before <|im_end|> before <|end|> ... */
static void find_eog(struct tk_tokenizer *t, bool eot_given)
{
	for (size_t k = 0; k < sizeof eot_texts / sizeof eot_texts[0]; k++) {
		int32_t id = tok_lookup(t, eot_texts[k], strlen(eot_texts[k]));
		if (id < 0)
			continue;
		t->tok[id].attr |= TOK_ATTR_EOG;
		t->tok[id].type = TK_TOKTYPE_CONTROL;
		if (!eot_given && t->eot < 0)
			t->eot = id;
	}
	for (size_t k = 0; k < sizeof eog_extra_texts / sizeof eog_extra_texts[0]; k++) {
		int32_t id = tok_lookup(t, eog_extra_texts[k], strlen(eog_extra_texts[k]));
		if (id >= 0) {
			t->tok[id].attr |= TOK_ATTR_EOG;
			t->tok[id].type = TK_TOKTYPE_CONTROL;
		}
	}
	for (size_t k = 0; k < sizeof eog_soft_texts / sizeof eog_soft_texts[0]; k++) {
		int32_t id = tok_lookup(t, eog_soft_texts[k], strlen(eog_soft_texts[k]));
		if (id < 0)
			continue;
		t->tok[id].attr |= TOK_ATTR_EOG;
		if (!eot_given && t->eot < 0)
			t->eot = id;
	}
	if (t->eos >= 0)
		t->tok[t->eos].attr |= TOK_ATTR_EOG;
	if (t->eot >= 0)
		t->tok[t->eot].attr |= TOK_ATTR_EOG;
}

static int build_specials(struct tk_tokenizer *t, bool rstrip_quirk)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n_vocab; i++) {
		uint8_t ty = t->tok[i].type;
		if ((ty == TK_TOKTYPE_CONTROL || ty == TK_TOKTYPE_USER_DEFINED ||
		     ty == TK_TOKTYPE_UNKNOWN) && t->tok[i].text_len)
			n++;
	}
	t->specials = malloc((n ? n : 1) * sizeof *t->specials);
	if (!t->specials)
		return tk_errf(TK_ENOMEM, "tokenizer: out of memory");
	t->n_specials = 0;
	for (size_t i = 0; i < t->n_vocab; i++) {
		uint8_t ty = t->tok[i].type;
		if ((ty == TK_TOKTYPE_CONTROL || ty == TK_TOKTYPE_USER_DEFINED ||
		     ty == TK_TOKTYPE_UNKNOWN) && t->tok[i].text_len)
			t->specials[t->n_specials++] = (int32_t)i;
	}
	qsort_r(t->specials, t->n_specials, sizeof *t->specials, cmp_special, t);
	if (rstrip_quirk) {
		/* Phi-3: whitespace after a special token belongs to the token,
		 * except after <unk>, <s> and <|endoftext|>. */
		for (size_t i = 0; i < t->n_specials; i++)
			t->tok[t->specials[i]].attr |= TOK_ATTR_RSTRIP;
		int32_t id = tok_lookup(t, "</s>", 4);
		if (id >= 0)
			t->tok[id].attr |= TOK_ATTR_RSTRIP;
		static const char *const keep[] = { "<unk>", "<s>", "<|endoftext|>" };
		for (size_t k = 0; k < 3; k++) {
			id = tok_lookup(t, keep[k], strlen(keep[k]));
			if (id >= 0)
				t->tok[id].attr &= (uint8_t)~TOK_ATTR_RSTRIP;
		}
	}
	return 0;
}

struct tk_tokenizer *tk_tokenizer_new(const struct tk_tok_desc *d)
{
	if (!d || (d->kind != TK_TOK_SPM && d->kind != TK_TOK_BPE)) {
		tk_errf(TK_EINVAL, "tokenizer: unknown vocabulary kind");
		return NULL;
	}
	if (d->n_tokens == 0 || !d->tokens) {
		tk_errf(TK_EFORMAT, "tokenizer: empty vocabulary");
		return NULL;
	}
	if (d->n_tokens > TK_TOK_MAX_VOCAB) {
		tk_errf(TK_ELIMIT, "tokenizer: %zu tokens, over the cap of %u", d->n_tokens,
			TK_TOK_MAX_VOCAB);
		return NULL;
	}
	struct tk_tokenizer *t = calloc(1, sizeof *t);
	if (!t) {
		tk_errf(TK_ENOMEM, "tokenizer: out of memory");
		return NULL;
	}
	t->kind = d->kind;
	t->n_vocab = d->n_tokens;
	t->pre = TK_PRE_DEFAULT;
	if (d->kind == TK_TOK_BPE && tk_tok_pre_parse(d->pre, &t->pre))
		goto fail;
	if (build_tokens(t, d))
		goto fail;
	if (d->kind == TK_TOK_BPE && build_merges(t, d))
		goto fail;

	bool spm = d->kind == TK_TOK_SPM;
	bool l3 = !spm && llama3_family(d->pre);
	if (resolve_id("bos", d->bos_id, spm ? 1 : 11, t->n_vocab, &t->bos) ||
	    resolve_id("eos", d->eos_id, spm ? 2 : 11, t->n_vocab, &t->eos) ||
	    resolve_id("eot", d->eot_id, -1, t->n_vocab, &t->eot) ||
	    resolve_id("unk", d->unk_id, spm ? 0 : -1, t->n_vocab, &t->unk) ||
	    resolve_id("pad", d->pad_id, -1, t->n_vocab, &t->pad))
		goto fail;
	t->add_bos = d->add_bos == TK_TOK_FLAG_DEFAULT ? (spm || l3) : d->add_bos != 0;
	t->add_eos = d->add_eos == TK_TOK_FLAG_DEFAULT ? false : d->add_eos != 0;
	t->add_space_prefix = spm && (d->add_space_prefix == TK_TOK_FLAG_DEFAULT ||
				      d->add_space_prefix != 0);
	t->ignore_merges = l3;
	if (t->add_bos && t->bos < 0) {
		tk_errf(TK_EFORMAT, "tokenizer: add_bos is set but the vocabulary has no bos token");
		goto fail;
	}
	if (t->add_eos && t->eos < 0) {
		tk_errf(TK_EFORMAT, "tokenizer: add_eos is set but the vocabulary has no eos token");
		goto fail;
	}
	find_eog(t, d->eot_id != TK_TOK_ID_DEFAULT);
	if (build_specials(t, d->special_rstrip) || build_pieces(t))
		goto fail;
	build_byte_tokens(t);
	return t;
fail:
	tk_tokenizer_free(t);
	return NULL;
}

void tk_tokenizer_free(struct tk_tokenizer *t)
{
	if (!t)
		return;
	free(t->tok);
	free(t->text_pool);
	free(t->piece_pool);
	free(t->tok_hash.slots);
	free(t->merges);
	free(t->merge_pool);
	free(t->merge_hash.slots);
	free(t->specials);
	free(t);
}

/* ---- properties ---- */

size_t tk_tokenizer_n_vocab(const struct tk_tokenizer *t) { return t->n_vocab; }
enum tk_tok_kind tk_tokenizer_kind(const struct tk_tokenizer *t) { return t->kind; }
enum tk_tok_pre tk_tokenizer_pre(const struct tk_tokenizer *t) { return t->pre; }
int32_t tk_tokenizer_bos(const struct tk_tokenizer *t) { return t->bos; }
int32_t tk_tokenizer_eos(const struct tk_tokenizer *t) { return t->eos; }
int32_t tk_tokenizer_eot(const struct tk_tokenizer *t) { return t->eot; }
int32_t tk_tokenizer_unk(const struct tk_tokenizer *t) { return t->unk; }
bool tk_tokenizer_add_bos(const struct tk_tokenizer *t) { return t->add_bos; }

static bool id_ok(const struct tk_tokenizer *t, int32_t id)
{
	return id >= 0 && (size_t)id < t->n_vocab;
}

bool tk_tokenizer_is_eog(const struct tk_tokenizer *t, int32_t id)
{
	return id_ok(t, id) && (t->tok[id].attr & TOK_ATTR_EOG);
}

bool tk_tokenizer_is_control(const struct tk_tokenizer *t, int32_t id)
{
	return id_ok(t, id) &&
	       (t->tok[id].type == TK_TOKTYPE_CONTROL || t->tok[id].type == TK_TOKTYPE_UNKNOWN);
}

int32_t tk_tokenizer_find(const struct tk_tokenizer *t, const char *text, size_t len)
{
	return tok_lookup(t, text, len);
}

const char *tk_tokenizer_token_text(const struct tk_tokenizer *t, int32_t id, size_t *len_out)
{
	if (!id_ok(t, id))
		return NULL;
	if (len_out)
		*len_out = t->tok[id].text_len;
	return tok_text(t, (size_t)id);
}

/* ---- encode ---- */

/* A piece of the input: raw text [off, off+len) when id < 0, else a token. */
struct frag {
	size_t off, len;
	int32_t id;
};

struct frags {
	struct frag *v;
	size_t n, cap;
};

static int frags_push(struct frags *f, size_t off, size_t len, int32_t id)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct frag *v = realloc(f->v, cap * sizeof *v);
		if (!v)
			return tk_errf(TK_ENOMEM, "tokenizer: out of memory");
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = (struct frag){ off, len, id };
	return 0;
}

/* Cuts every raw fragment at each occurrence of special token `id`. */
static int partition_one(const struct tk_tokenizer *t, const char *text, int32_t id,
			 const struct frags *in, struct frags *out)
{
	const char *tt = tok_text(t, (size_t)id);
	size_t tl = t->tok[id].text_len;
	bool rstrip = t->tok[id].attr & TOK_ATTR_RSTRIP;
	out->n = 0;
	for (size_t k = 0; k < in->n; k++) {
		struct frag f = in->v[k];
		int rc;
		if (f.id >= 0) {
			if ((rc = frags_push(out, f.off, f.len, f.id)))
				return rc;
			continue;
		}
		size_t pos = f.off, end = f.off + f.len;
		while (pos < end) {
			const char *m = memmem(text + pos, end - pos, tt, tl);
			if (!m)
				break;
			size_t at = (size_t)(m - text);
			if (at > pos && (rc = frags_push(out, pos, at - pos, -1)))
				return rc;
			if ((rc = frags_push(out, at, tl, id)))
				return rc;
			pos = at + tl;
			if (rstrip)
				while (pos < end && isspace((unsigned char)text[pos]))
					pos++;
		}
		if (pos < end && (rc = frags_push(out, pos, end - pos, -1)))
			return rc;
	}
	return 0;
}

static int partition(const struct tk_tokenizer *t, const char *text, size_t len,
		     bool parse_special, struct frags *f)
{
	struct frags tmp = { 0 };
	int rc = 0;
	f->n = 0;
	if (len && (rc = frags_push(f, 0, len, -1)))
		return rc;
	for (size_t i = 0; i < t->n_specials && f->n; i++) {
		int32_t id = t->specials[i];
		uint8_t ty = t->tok[id].type;
		if (!parse_special && ty != TK_TOKTYPE_USER_DEFINED)
			continue;
		/* Cheap pre-check: most specials never occur in the text. */
		if (!memmem(text, len, tok_text(t, (size_t)id), t->tok[id].text_len))
			continue;
		if ((rc = partition_one(t, text, id, f, &tmp)))
			break;
		struct frags sw = *f;
		*f = tmp;
		tmp = sw;
	}
	free(tmp.v);
	return rc;
}

static int encode_spm_fragment(const struct tk_tokenizer *t, const char *s, size_t n,
			       bool prefix, struct tok_ids *ids)
{
	/* Escape: ' ' -> U+2581 (3 bytes), plus the optional leading space. */
	size_t spaces = prefix ? 1 : 0;
	for (size_t i = 0; i < n; i++)
		spaces += s[i] == ' ';
	size_t cap = n + 2 * spaces + (prefix ? 1 : 0);
	char *buf = malloc(cap ? cap : 1);
	if (!buf)
		return tk_errf(TK_ENOMEM, "tokenizer: out of memory");
	size_t w = 0;
	if (prefix) {
		memcpy(buf, "\xE2\x96\x81", 3);
		w = 3;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ') {
			memcpy(buf + w, "\xE2\x96\x81", 3);
			w += 3;
		} else {
			buf[w++] = s[i];
		}
	}
	int rc = tok_spm_encode(t, buf, w, ids);
	free(buf);
	return rc;
}

int tk_tokenizer_encode(const struct tk_tokenizer *t, const char *text, size_t len,
			const struct tk_tok_encode_opts *opts, int32_t **ids_out, size_t *n_out)
{
	static const struct tk_tok_encode_opts defaults = { 0 };
	if (!opts)
		opts = &defaults;
	*ids_out = NULL;
	*n_out = 0;
	if (!text && len)
		return tk_errf(TK_EINVAL, "tokenizer: NULL text");
	if (len > TK_TOK_MAX_INPUT_BYTES)
		return tk_errf(TK_ELIMIT, "tokenizer: input of %zu bytes is over the cap of %u bytes",
			       len, TK_TOK_MAX_INPUT_BYTES);
	struct tok_ids ids = { .max = opts->max_tokens ? opts->max_tokens : TK_TOK_MAX_OUTPUT_TOKENS };
	struct frags f = { 0 };
	int rc = partition(t, text ? text : "", len, opts->parse_special, &f);
	if (rc)
		goto out;

	bool specials = opts->bos != TK_TOK_BOS_NONE;
	bool bos = (opts->bos == TK_TOK_BOS_ALWAYS || (specials && t->add_bos)) && t->bos >= 0;
	if (opts->bos == TK_TOK_BOS_ALWAYS && t->bos < 0) {
		rc = tk_errf(TK_EINVAL, "tokenizer: BOS requested but the vocabulary has none");
		goto out;
	}
	if (bos && (rc = tok_ids_push(&ids, t->bos)))
		goto out;
	bool prev_special = true; /* SPM: the text start counts as after a special */
	for (size_t i = 0; i < f.n; i++) {
		const struct frag *fr = &f.v[i];
		if (fr->id >= 0) {
			rc = tok_ids_push(&ids, fr->id);
			prev_special = true;
		} else if (t->kind == TK_TOK_SPM) {
			bool prefix = t->add_space_prefix && prev_special && !opts->no_space_prefix;
			rc = encode_spm_fragment(t, text + fr->off, fr->len, prefix, &ids);
			prev_special = false;
		} else {
			rc = tok_bpe_encode(t, text + fr->off, fr->len, &ids);
		}
		if (rc)
			goto out;
	}
	if (specials && t->add_eos && (rc = tok_ids_push(&ids, t->eos)))
		goto out;
	if (!ids.v) {
		ids.v = malloc(sizeof *ids.v);
		if (!ids.v) {
			rc = tk_errf(TK_ENOMEM, "tokenizer: out of memory");
			goto out;
		}
	}
	*ids_out = ids.v;
	*n_out = ids.n;
	ids.v = NULL;
out:
	free(ids.v);
	free(f.v);
	return rc;
}

/* ---- decode ---- */

int tk_tokenizer_piece(const struct tk_tokenizer *t, int32_t id, unsigned flags,
		       const char **piece, size_t *len)
{
	if (!id_ok(t, id))
		return tk_errf(TK_EINVAL, "tokenizer: token id %d out of range (vocab %zu)", (int)id,
			       t->n_vocab);
	const struct tok_entry *e = &t->tok[id];
	*piece = t->piece_pool + e->piece_off;
	*len = e->piece_len;
	if (!(flags & TK_TOK_DECODE_SPECIAL) &&
	    (e->type == TK_TOKTYPE_CONTROL || e->type == TK_TOKTYPE_UNKNOWN))
		*len = 0;
	return 0;
}

int tk_tokenizer_decode(const struct tk_tokenizer *t, const int32_t *ids, size_t n,
			unsigned flags, struct tk_buf *out)
{
	for (size_t i = 0; i < n; i++)
		if (!id_ok(t, ids[i]))
			return tk_errf(TK_EINVAL, "tokenizer: token %zu: id %d out of range (vocab %zu)",
				       i, (int)ids[i], t->n_vocab);
	size_t i = 0;
	if ((flags & TK_TOK_DECODE_SKIP_BOS) && n && ids[0] == t->bos)
		i = 1;
	bool strip = (flags & TK_TOK_DECODE_STRIP_SPACE) && t->add_space_prefix;
	for (; i < n; i++) {
		const char *p = "";
		size_t len = 0;
		tk_tokenizer_piece(t, ids[i], flags, &p, &len); /* ids checked above */
		if (strip && len && p[0] == ' ') {
			p++;
			len--;
		}
		strip = false;
		int rc = tk_buf_append(out, p, len);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- streaming ---- */

struct tk_tok_stream {
	const struct tk_tokenizer *t;
	unsigned flags;
	bool started;
	unsigned char pend[4];
	size_t npend;
};

struct tk_tok_stream *tk_tok_stream_new(const struct tk_tokenizer *t, unsigned flags)
{
	struct tk_tok_stream *s = calloc(1, sizeof *s);
	if (!s) {
		tk_errf(TK_ENOMEM, "tokenizer: out of memory");
		return NULL;
	}
	s->t = t;
	s->flags = flags;
	return s;
}

void tk_tok_stream_free(struct tk_tok_stream *s)
{
	free(s);
}

size_t tk_tok_stream_pending(const struct tk_tok_stream *s)
{
	return s->npend;
}

static const char replacement[] = "\xEF\xBF\xBD";

int tk_tok_stream_push(struct tk_tok_stream *s, int32_t id, struct tk_buf *out)
{
	const char *p = "";
	size_t len = 0;
	int rc = tk_tokenizer_piece(s->t, id, s->flags, &p, &len);
	if (rc)
		return rc;
	bool first = !s->started;
	s->started = true;
	if (first && (s->flags & TK_TOK_DECODE_SKIP_BOS) && id == s->t->bos) {
		s->started = false; /* the next token is the first text token */
		return 0;
	}
	if (first && (s->flags & TK_TOK_DECODE_STRIP_SPACE) && s->t->add_space_prefix && len &&
	    p[0] == ' ') {
		p++;
		len--;
	}
	/* Work on held bytes + this piece; a piece is at most a token's text. */
	unsigned char buf[TK_TOK_MAX_TOKEN_BYTES + 4];
	size_t n = s->npend;
	memcpy(buf, s->pend, n);
	memcpy(buf + n, p, len);
	n += len;
	size_t i = 0, run = 0; /* run: start of well-formed bytes not yet written */
	while (i < n) {
		int r = tk_utf8_check(buf + i, n - i);
		if (r > 0) {
			i += (size_t)r;
			continue;
		}
		if ((rc = tk_buf_append(out, buf + run, i - run)))
			return rc;
		if (r == 0) { /* incomplete: hold it for the next token */
			s->npend = n - i;
			memcpy(s->pend, buf + i, s->npend);
			return 0;
		}
		if ((rc = tk_buf_append(out, replacement, 3)))
			return rc;
		i += (size_t)-r;
		run = i;
	}
	s->npend = 0;
	return tk_buf_append(out, buf + run, i - run);
}

int tk_tok_stream_flush(struct tk_tok_stream *s, struct tk_buf *out)
{
	int rc = 0;
	if (s->npend)
		rc = tk_buf_append(out, replacement, 3);
	s->npend = 0;
	s->started = false;
	return rc;
}
