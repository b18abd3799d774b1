/*
 * pretok.c — the pre-tokenizers of byte-level BPE: how a text is cut into
 * pieces before the bytes of each piece are merged.
 *
 * Theory of operation. Each pre-tokenizer is a short list of passes, applied
 * in order; every pass refines the current list of pieces (llama.cpp applies
 * its list of regexes the same way: a regex's matches AND the text between
 * them become pieces). The passes are hand-written matchers over code points
 * and their coarse Unicode category (unicode.h), not a regex engine:
 *
 *   GPT2      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   LLAMA3(k) (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}|
 *             ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *             (k = 3 for llama-bpe, k = 1 for qwen2; the contraction letters
 *             are matched as ASCII, as llama.cpp's adapted regex does)
 *   EACH(c)   every code point of class c on its own ([\r\n], \p{N})
 *   RUN(c)    maximal runs of class c (\p{N}+, the CJK ranges, ...)
 *   WSRUN(c)  \s?c+  (an optional whitespace, then a run of c)
 *   DIGIT3    [0-9][0-9][0-9]
 *
 * The regex alternatives are ordered (first that matches wins, each one
 * greedy), and (?!\S) makes a whitespace run give its last character to the
 * following word; the matchers below encode exactly that. Why not PCRE2: the
 * reference (llama.cpp) does not use a regex engine for GPT-2 and Llama 3
 * either, but hand-written matchers over its own category tables, and for
 * the others std::regex over a category-collapsed copy of the text; matching
 * its results is easiest with the same approach, it keeps the engine free of
 * a dependency, and every pass is linear time with no backtracking blow-up.
 *
 * Malformed UTF-8 in the input is kept byte for byte: such a byte is one
 * code point of category "symbol" (like U+FFFD, which llama.cpp substitutes).
 *
 * Owns nothing beyond one call: all memory is freed before return.
 */
#include "engine/tok_internal.h"
#include "engine/unicode.h"

#include "core/err.h"

#include <stdlib.h>
#include <string.h>

struct cpt {
	uint32_t cp;
	uint32_t off; /* byte offset in the text */
	uint8_t cat;  /* enum tk_ucat */
	bool ws;
};

/* List of piece ends (exclusive code point indices), ascending. */
struct ends {
	uint32_t *v;
	size_t n, cap;
	uint32_t last; /* end of the last piece emitted in the current chunk */
};

static int ends_emit(struct ends *e, size_t end)
{
	if (end <= e->last)
		return 0;
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 64;
		uint32_t *v = realloc(e->v, cap * sizeof *v);
		if (!v)
			return tk_errf(TK_ENOMEM, "pre-tokenizer: out of memory");
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = (uint32_t)end;
	e->last = (uint32_t)end;
	return 0;
}

/* ---- classes ---- */

static bool is_L(const struct cpt *c) { return c->cat == TK_UCAT_LETTER; }
static bool is_N(const struct cpt *c) { return c->cat == TK_UCAT_NUMBER; }
static bool is_P(const struct cpt *c) { return c->cat == TK_UCAT_PUNCT; }
/* [^\s\p{L}\p{N}] */
static bool is_other(const struct cpt *c) { return !c->ws && !is_L(c) && !is_N(c); }
static bool is_crlf(const struct cpt *c) { return c->cp == '\r' || c->cp == '\n'; }

/* [一-龥ࠀ-一가-퟿] of deepseek-coder: U+4E00..U+9FA5, U+0800..U+4E00,
 * U+AC00..U+D7FF. */
static bool is_cjk_dsc(const struct cpt *c)
{
	return (c->cp >= 0x0800 && c->cp <= 0x9FA5) || (c->cp >= 0xAC00 && c->cp <= 0xD7FF);
}

/* [\p{P}\$\+<=>\^~\|] of the default pre-tokenizer. */
static bool is_punct_default(const struct cpt *c)
{
	if (is_P(c))
		return true;
	switch (c->cp) {
	case '$': case '+': case '<': case '=': case '>': case '^': case '~': case '|':
		return true;
	default:
		return false;
	}
}

static bool is_ascii_digit(const struct cpt *c) { return c->cp >= '0' && c->cp <= '9'; }

static uint32_t ascii_lower(uint32_t cp)
{
	return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
}

/* ---- passes over one chunk [b, e) ---- */

/* 's|'t|'re|'ve|'m|'ll|'d at pos: returns the match length (0: none). */
static size_t contraction(const struct cpt *c, size_t pos, size_t e, bool fold_case)
{
	if (c[pos].cp != '\'' || pos + 1 >= e)
		return 0;
	uint32_t n1 = fold_case ? ascii_lower(c[pos + 1].cp) : c[pos + 1].cp;
	if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd')
		return 2;
	if (pos + 2 >= e)
		return 0;
	uint32_t n2 = fold_case ? ascii_lower(c[pos + 2].cp) : c[pos + 2].cp;
	if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l'))
		return 3;
	return 0;
}

/* Whitespace tail shared by GPT2 and LLAMA3: \s+(?!\S) then \s+. Returns
 * the end of the match starting at pos (pos + 1 when nothing matches: the
 * character becomes a piece of its own, as the text between regex matches
 * does). */
static size_t ws_tail(const struct cpt *c, size_t pos, size_t e)
{
	size_t k = 0;
	while (pos + k < e && c[pos + k].ws)
		k++;
	if (k > 1 && pos + k < e)
		return pos + k - 1; /* leave the last space to the next word */
	if (k > 0)
		return pos + k;
	return pos + 1;
}

static int pass_gpt2(const struct cpt *c, size_t b, size_t e, struct ends *out)
{
	size_t pos = b;
	while (pos < e) {
		size_t end;
		size_t n = contraction(c, pos, e, false);
		if (n) {
			end = pos + n;
		} else {
			/* " ?X+": the optional space only when something follows */
			size_t q = c[pos].cp == ' ' ? pos + 1 : pos;
			bool (*cls)(const struct cpt *) = NULL;
			if (q < e) {
				if (is_L(&c[q]))
					cls = is_L;
				else if (is_N(&c[q]))
					cls = is_N;
				else if (is_other(&c[q]))
					cls = is_other;
			}
			if (cls) {
				end = q;
				while (end < e && cls(&c[end]))
					end++;
			} else {
				end = ws_tail(c, pos, e);
			}
		}
		int rc = ends_emit(out, end);
		if (rc)
			return rc;
		pos = end;
	}
	return 0;
}

static int pass_llama3(const struct cpt *c, size_t b, size_t e, size_t max_digits,
		       struct ends *out)
{
	size_t pos = b;
	while (pos < e) {
		size_t end;
		size_t n = contraction(c, pos, e, true);
		const struct cpt *p = &c[pos];
		if (n) {
			end = pos + n;
		} else if (!is_crlf(p) && !is_N(p) &&
			   (is_L(p) || (pos + 1 < e && is_L(&c[pos + 1])))) {
			/* [^\r\n\p{L}\p{N}]?\p{L}+ */
			end = pos + 1;
			while (end < e && is_L(&c[end]))
				end++;
		} else if (is_N(p)) {
			/* \p{N}{1,k}: the next run of at most k digits */
			end = pos;
			while (end < e && end - pos < max_digits && is_N(&c[end]))
				end++;
		} else {
			size_t q = p->cp == ' ' ? pos + 1 : pos;
			if (q < e && is_other(&c[q])) {
				/* ?[^\s\p{L}\p{N}]+[\r\n]* */
				end = q;
				while (end < e && is_other(&c[end]))
					end++;
				while (end < e && is_crlf(&c[end]))
					end++;
			} else {
				/* \s*[\r\n]+ : up to the last newline of the run */
				size_t k = 0, last_nl = 0;
				while (pos + k < e && c[pos + k].ws) {
					if (is_crlf(&c[pos + k]))
						last_nl = pos + k + 1;
					k++;
				}
				end = last_nl ? last_nl : ws_tail(c, pos, e);
			}
		}
		int rc = ends_emit(out, end);
		if (rc)
			return rc;
		pos = end;
	}
	return 0;
}

/* Each code point of class cls on its own. */
static int pass_each(const struct cpt *c, size_t b, size_t e,
		     bool (*cls)(const struct cpt *), struct ends *out)
{
	for (size_t i = b; i < e; i++) {
		if (!cls(&c[i]))
			continue;
		int rc = ends_emit(out, i);
		if (!rc)
			rc = ends_emit(out, i + 1);
		if (rc)
			return rc;
	}
	return 0;
}

/* Maximal runs of cls; with opt_ws, an optional whitespace before a run. */
static int pass_run(const struct cpt *c, size_t b, size_t e,
		    bool (*cls)(const struct cpt *), bool opt_ws, struct ends *out)
{
	size_t i = b;
	while (i < e) {
		size_t start;
		if (cls(&c[i]))
			start = i;
		else if (opt_ws && c[i].ws && i + 1 < e && cls(&c[i + 1]))
			start = i;
		else {
			i++;
			continue;
		}
		size_t end = cls(&c[i]) ? i : i + 1;
		while (end < e && cls(&c[end]))
			end++;
		int rc = ends_emit(out, start);
		if (!rc)
			rc = ends_emit(out, end);
		if (rc)
			return rc;
		i = end;
	}
	return 0;
}

static int pass_digit3(const struct cpt *c, size_t b, size_t e, struct ends *out)
{
	size_t i = b;
	while (i + 3 <= e) {
		if (is_ascii_digit(&c[i]) && is_ascii_digit(&c[i + 1]) &&
		    is_ascii_digit(&c[i + 2])) {
			int rc = ends_emit(out, i);
			if (!rc)
				rc = ends_emit(out, i + 3);
			if (rc)
				return rc;
			i += 3;
		} else {
			i++;
		}
	}
	return 0;
}

/* ---- pre-tokenizer definitions ---- */

enum pass_kind { P_GPT2, P_LLAMA3, P_QWEN2, P_EACH, P_RUN, P_WSRUN, P_DIGIT3 };

struct pass {
	enum pass_kind kind;
	bool (*cls)(const struct cpt *);
};

#define MAX_PASSES 5

struct pre_def {
	enum tk_tok_pre pre;
	size_t n;
	struct pass passes[MAX_PASSES];
};

static const struct pre_def pre_defs[] = {
	{ TK_PRE_DEFAULT, 4, { { P_RUN, is_punct_default }, { P_GPT2, NULL },
			       { P_RUN, is_N }, { P_DIGIT3, NULL } } },
	{ TK_PRE_GPT2, 1, { { P_GPT2, NULL } } },
	{ TK_PRE_LLAMA3, 1, { { P_LLAMA3, NULL } } },
	{ TK_PRE_QWEN2, 1, { { P_QWEN2, NULL } } },
	{ TK_PRE_DEEPSEEK_CODER, 5, { { P_EACH, is_crlf }, { P_WSRUN, is_L }, { P_WSRUN, is_P },
				      { P_RUN, is_cjk_dsc }, { P_EACH, is_N } } },
	{ TK_PRE_STARCODER, 2, { { P_EACH, is_N }, { P_GPT2, NULL } } },
};

static const struct pre_def *pre_def_find(enum tk_tok_pre pre)
{
	for (size_t i = 0; i < sizeof pre_defs / sizeof pre_defs[0]; i++)
		if (pre_defs[i].pre == pre)
			return &pre_defs[i];
	return NULL;
}

static int run_pass(const struct pass *p, const struct cpt *c, size_t b, size_t e,
		    struct ends *out)
{
	switch (p->kind) {
	case P_GPT2: return pass_gpt2(c, b, e, out);
	case P_LLAMA3: return pass_llama3(c, b, e, 3, out);
	case P_QWEN2: return pass_llama3(c, b, e, 1, out);
	case P_EACH: return pass_each(c, b, e, p->cls, out);
	case P_RUN: return pass_run(c, b, e, p->cls, false, out);
	case P_WSRUN: return pass_run(c, b, e, p->cls, true, out);
	case P_DIGIT3: return pass_digit3(c, b, e, out);
	}
	return tk_errf(TK_EINTERNAL, "pre-tokenizer: unknown pass %d", (int)p->kind);
}

int tk_pretokenize(enum tk_tok_pre pre, const char *text, size_t len, tk_pretok_cb cb, void *ctx)
{
	const struct pre_def *def = pre_def_find(pre);
	if (!def)
		return tk_errf(TK_EINVAL, "pre-tokenizer: unknown kind %d", (int)pre);
	if (len > TK_TOK_MAX_INPUT_BYTES)
		return tk_errf(TK_ELIMIT, "pre-tokenizer: input of %zu bytes is over the cap of %u",
			       len, TK_TOK_MAX_INPUT_BYTES);
	if (len == 0)
		return 0;

	int rc = 0;
	struct cpt *c = malloc(len * sizeof *c); /* at most one code point per byte */
	struct ends cur = { 0 }, next = { 0 };
	if (!c) {
		rc = tk_errf(TK_ENOMEM, "pre-tokenizer: cannot hold %zu code points", len);
		goto out;
	}
	size_t n = 0;
	for (size_t off = 0; off < len;) {
		size_t adv;
		uint32_t cp = tk_utf8_decode(text + off, len - off, &adv);
		c[n].cp = cp;
		c[n].off = (uint32_t)off;
		c[n].cat = (uint8_t)tk_unicode_category(cp);
		c[n].ws = tk_unicode_is_space(cp);
		n++;
		off += adv;
	}

	rc = ends_emit(&cur, n); /* one piece: everything */
	if (rc)
		goto out;
	for (size_t pi = 0; pi < def->n; pi++) {
		next.n = 0;
		next.last = 0;
		size_t b = 0;
		for (size_t k = 0; k < cur.n; k++) {
			size_t e = cur.v[k];
			next.last = (uint32_t)b;
			rc = run_pass(&def->passes[pi], c, b, e, &next);
			if (!rc)
				rc = ends_emit(&next, e); /* the text after the last match */
			if (rc)
				goto out;
			b = e;
		}
		struct ends tmp = cur;
		cur = next;
		next = tmp;
	}

	size_t b = 0;
	for (size_t k = 0; k < cur.n; k++) {
		size_t e = cur.v[k];
		size_t boff = c[b].off;
		size_t eoff = e < n ? c[e].off : len;
		rc = cb(boff, eoff - boff, ctx);
		if (rc)
			goto out;
		b = e;
	}
out:
	free(next.v);
	free(cur.v);
	free(c);
	return rc;
}

static const struct {
	const char *name;
	enum tk_tok_pre pre;
} pre_names[] = {
	{ "default", TK_PRE_DEFAULT },
	{ "gpt-2", TK_PRE_GPT2 },
	{ "phi-2", TK_PRE_GPT2 },
	{ "mpt", TK_PRE_GPT2 },
	{ "olmo", TK_PRE_GPT2 },
	{ "jina-es", TK_PRE_GPT2 },
	{ "jina-de", TK_PRE_GPT2 },
	{ "jina-v2-es", TK_PRE_GPT2 },
	{ "jina-v2-de", TK_PRE_GPT2 },
	{ "gigachat", TK_PRE_GPT2 },
	{ "llama-bpe", TK_PRE_LLAMA3 },
	{ "llama3", TK_PRE_LLAMA3 },
	{ "llama-v3", TK_PRE_LLAMA3 },
	{ "falcon3", TK_PRE_LLAMA3 },
	{ "pixtral", TK_PRE_LLAMA3 },
	{ "dbrx", TK_PRE_LLAMA3 },
	{ "smaug-bpe", TK_PRE_LLAMA3 },
	{ "qwen2", TK_PRE_QWEN2 },
	{ "deepseek-r1-qwen", TK_PRE_QWEN2 },
	{ "stablelm2", TK_PRE_QWEN2 },
	{ "deepseek-coder", TK_PRE_DEEPSEEK_CODER },
	{ "starcoder", TK_PRE_STARCODER },
	{ "refact", TK_PRE_STARCODER },
	{ "command-r", TK_PRE_STARCODER },
	{ "smollm", TK_PRE_STARCODER },
	{ "codeshell", TK_PRE_STARCODER },
};

int tk_tok_pre_parse(const char *name, enum tk_tok_pre *out)
{
	if (!name || !*name) {
		*out = TK_PRE_DEFAULT;
		return 0;
	}
	for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++) {
		if (!strcmp(pre_names[i].name, name)) {
			*out = pre_names[i].pre;
			return 0;
		}
	}
	return tk_errf(TK_EUNSUPPORTED, "tokenizer: unknown pre-tokenizer '%.64s'", name);
}

const char *tk_tok_pre_name(enum tk_tok_pre pre)
{
	switch (pre) {
	case TK_PRE_DEFAULT: return "default";
	case TK_PRE_GPT2: return "gpt-2";
	case TK_PRE_LLAMA3: return "llama-bpe";
	case TK_PRE_QWEN2: return "qwen2";
	case TK_PRE_DEEPSEEK_CODER: return "deepseek-coder";
	case TK_PRE_STARCODER: return "starcoder";
	}
	return "unknown";
}
