/* test_llm_trie.c — the vocabulary trie of src/llm/llm_trie.h and the
 * grammar walker it drives (grammar.h, llm_gwalk): the mask from the trie
 * walk must equal the per-token check (llm_trie_allowed_naive, which asks
 * llm_gstate_check for every token) on the real vocabularies of the
 * fixtures (SentencePiece with byte fallback, byte-level BPE) for many
 * grammar states: the agents' JSON schemas and other llm_schema grammars,
 * GBNF with multi-byte characters, states reached along tokenized valid
 * documents and by random walks that follow the mask itself. Plus the trie's
 * shape (every token with a text is in it once), the walker's levels
 * against llm_gstate_advance, and an error (the depth cap) reported by both
 * masks alike. */
#include "testutil.h"

#include "agents/protocol.h"
#include "core/buf.h"
#include "core/err.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "llm/grammar.h"
#include "llm/llm_trie.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct tk_tokenizer *load_tok(const char *rel)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", TK_FIXTURES, rel);
	struct tk_gguf *g = tk_gguf_open(path);
	if (!g)
		fail_msg("open %s: %s", path, tk_err_detail());
	struct tk_tokenizer *t = tk_tokenizer_from_gguf(g);
	if (!t)
		fail_msg("tokenizer %s: %s", path, tk_err_detail());
	tk_gguf_close(g);
	return t;
}

static struct llm_grammar *schema_grammar(const char *schema)
{
	json_t *js = json_loads(schema, 0, NULL);
	assert_non_null(js);
	struct tk_buf gb = TK_BUF_INIT(1 << 20);
	if (llm_schema_to_grammar(js, &gb))
		fail_msg("schema not converted: %s", tk_err_detail());
	json_decref(js);
	struct llm_grammar *g = llm_grammar_parse(gb.data, gb.len);
	if (!g)
		fail_msg("grammar: %s", tk_err_detail());
	tk_buf_free(&gb);
	return g;
}

static struct llm_grammar *gbnf(const char *src)
{
	struct llm_grammar *g = llm_grammar_parse(src, strlen(src));
	if (!g)
		fail_msg("grammar: %s\n%s", tk_err_detail(), src);
	return g;
}

/* One vocabulary with its trie and the buffers a comparison needs. */
struct vocab {
	const char *name;
	struct tk_tokenizer *tok;
	struct llm_trie *trie;
	uint8_t *a, *b; /* trie mask, per-token mask */
	size_t n_vocab;
	size_t states;  /* states compared so far */
	size_t allowed; /* tokens allowed in them, summed (the test is not vacuous) */
};

static void vocab_open(struct vocab *v, const char *name, const char *rel)
{
	memset(v, 0, sizeof *v);
	v->name = name;
	v->tok = load_tok(rel);
	v->trie = llm_trie_new(v->tok);
	if (!v->trie)
		fail_msg("%s: trie: %s", name, tk_err_detail());
	v->n_vocab = tk_tokenizer_n_vocab(v->tok);
	assert_int_equal(llm_trie_n_vocab(v->trie), v->n_vocab);
	v->a = malloc(v->n_vocab);
	v->b = malloc(v->n_vocab);
	assert_non_null(v->a);
	assert_non_null(v->b);
}

static void vocab_close(struct vocab *v)
{
	free(v->a);
	free(v->b);
	llm_trie_free(v->trie);
	tk_tokenizer_free(v->tok);
}

/* Both masks of state s; they must agree token for token. Returns the
 * number of allowed tokens (v->a holds the mask). */
static size_t compare(struct vocab *v, struct llm_gwalk *w, const struct llm_gstate *s,
		      const char *where)
{
	size_t na = 0, nb = 0;
	memset(v->a, 0xAA, v->n_vocab);
	memset(v->b, 0x55, v->n_vocab);
	if (llm_trie_allowed(v->trie, s, w, v->a, &na))
		fail_msg("%s %s: trie mask: %s", v->name, where, tk_err_detail());
	if (llm_trie_allowed_naive(v->trie, s, v->b, &nb))
		fail_msg("%s %s: naive mask: %s", v->name, where, tk_err_detail());
	for (size_t i = 0; i < v->n_vocab; i++)
		if (v->a[i] != v->b[i]) {
			const char *p = tk_tokenizer_token_text(v->tok, (int32_t)i, NULL);
			fail_msg("%s %s: token %zu '%s': trie %d, per-token %d", v->name, where, i,
				 p ? p : "?", v->a[i], v->b[i]);
		}
	assert_int_equal(na, nb);
	v->states++;
	v->allowed += na;
	return na;
}

static uint64_t rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* From s, takes `steps` random tokens the mask allows (comparing the masks
 * at each state), preferring single-byte tokens half of the time so that
 * walks leave strings and reach structure. s is not changed. */
static void random_walk(struct vocab *v, struct llm_gwalk *w, const struct llm_gstate *s0,
			int steps, uint64_t *seed, const char *where)
{
	struct llm_gstate *s = llm_gstate_clone(s0);
	assert_non_null(s);
	for (int k = 0; k < steps; k++) {
		size_t n = compare(v, w, s, where);
		if (!n)
			break;
		/* pick the r-th allowed non-end token, among the short ones or all */
		bool shorts = rng_next(seed) & 1;
		int32_t pick = -1;
		for (int pass = 0; pass < 2 && pick < 0; pass++) {
			size_t cnt = 0;
			for (size_t i = 0; i < v->n_vocab; i++) {
				size_t len = 0;
				const char *p;
				if (!v->a[i] || tk_tokenizer_is_eog(v->tok, (int32_t)i) ||
				    tk_tokenizer_piece(v->tok, (int32_t)i, 0, &p, &len))
					continue;
				cnt += (!shorts || pass || len == 1);
			}
			if (!cnt)
				continue;
			size_t r = (size_t)(rng_next(seed) % cnt);
			for (size_t i = 0; i < v->n_vocab && pick < 0; i++) {
				size_t len = 0;
				const char *p;
				if (!v->a[i] || tk_tokenizer_is_eog(v->tok, (int32_t)i) ||
				    tk_tokenizer_piece(v->tok, (int32_t)i, 0, &p, &len))
					continue;
				if ((!shorts || pass || len == 1) && !r--)
					pick = (int32_t)i;
			}
		}
		if (pick < 0)
			break; /* only end tokens: the sentence is complete */
		const char *p;
		size_t len;
		assert_int_equal(tk_tokenizer_piece(v->tok, pick, 0, &p, &len), 0);
		if (llm_gstate_advance(s, p, len))
			fail_msg("%s %s: allowed token %d '%.*s' refused by advance: %s", v->name,
				 where, pick, (int)len, p, tk_err_detail());
	}
	llm_gstate_free(s);
}

/* Tokenizes doc (a sentence of g), compares the masks at every token
 * boundary whose text so far is complete UTF-8 (every `stride`-th one), and
 * branches a short random walk off some of them. */
static void follow_doc(struct vocab *v, const struct llm_grammar *g, const char *doc,
		       size_t stride, int walk_steps, uint64_t *seed)
{
	struct tk_tok_encode_opts eo = { .bos = TK_TOK_BOS_NONE, .no_space_prefix = true };
	int32_t *ids = NULL;
	size_t n = 0;
	if (tk_tokenizer_encode(v->tok, doc, strlen(doc), &eo, &ids, &n))
		fail_msg("%s: encode: %s", v->name, tk_err_detail());
	struct llm_gwalk *w = llm_gwalk_new(g);
	struct llm_gstate *s = llm_gstate_new(g);
	assert_non_null(w);
	assert_non_null(s);
	struct tk_buf text = TK_BUF_INIT(1 << 20);
	size_t fed = 0; /* bytes of text already in s */
	for (size_t i = 0; i <= n; i++) {
		if (fed == text.len && i % stride == 0) {
			char where[96];
			snprintf(where, sizeof where, "doc '%.24s' token %zu", doc, i);
			compare(v, w, s, where);
			if (walk_steps && rng_next(seed) % 4 == 0)
				random_walk(v, w, s, walk_steps, seed, where);
		}
		if (i == n)
			break;
		assert_int_equal(tk_tokenizer_decode(v->tok, ids + i, 1, 0, &text), 0);
		/* feed the complete characters decoded so far */
		size_t upto = text.len;
		while (upto > fed && ((unsigned char)text.data[upto - 1] & 0xC0) == 0x80)
			upto--;
		if (upto > fed && (unsigned char)text.data[upto - 1] >= 0xC0)
			upto--; /* a lead byte whose continuation has not come yet */
		if (upto > fed) {
			if (llm_gstate_advance(s, text.data + fed, upto - fed))
				fail_msg("%s: doc '%s' refused at byte %zu: %s", v->name, doc, fed,
					 tk_err_detail());
			fed = upto;
		}
	}
	assert_int_equal(fed, strlen(doc));
	assert_true(llm_gstate_accepts(s));
	tk_buf_free(&text);
	llm_gstate_free(s);
	llm_gwalk_free(w);
	free(ids);
}

static const char *const vocab_files[][2] = {
	{ "tiny-llama", "models/tiny-llama-f32.gguf" },
	{ "llama-spm", "vocab/ggml-vocab-llama-spm.gguf" },
	{ "gpt-2", "vocab/ggml-vocab-gpt-2.gguf" },
	{ "phi-3", "vocab/ggml-vocab-phi-3.gguf" },
	{ "starcoder", "vocab/ggml-vocab-starcoder.gguf" },
	{ "deepseek-coder", "vocab/ggml-vocab-deepseek-coder.gguf" },
};
#define N_VOCABS (sizeof vocab_files / sizeof vocab_files[0])

/* Complete, valid UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF), checked independently of the matcher. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t k;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xC2 && c <= 0xDF) {
			k = 1, cp = c & 0x1F, min = 0x80;
		} else if (c >= 0xE0 && c <= 0xEF) {
			k = 2, cp = c & 0x0F, min = 0x800;
		} else if (c >= 0xF0 && c <= 0xF4) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k + 1;
	}
	return true;
}

/* The trie holds every token with a non-empty text exactly once. */
static void test_shape(void **state)
{
	(void)state;
	for (size_t f = 0; f < N_VOCABS; f++) {
		struct vocab v;
		vocab_open(&v, vocab_files[f][0], vocab_files[f][1]);
		size_t bytes = 0;
		for (size_t i = 0; i < v.n_vocab; i++) {
			const char *p;
			size_t len;
			if (!tk_tokenizer_piece(v.tok, (int32_t)i, 0, &p, &len))
				bytes += len;
		}
		size_t nodes = llm_trie_n_nodes(v.trie);
		/* shared prefixes: far fewer nodes than bytes, and at least one
		 * node per distinct first byte */
		assert_true(nodes > 1 && nodes <= bytes + 1);
		/* "accept anything" allows exactly the tokens whose text is
		 * non-empty, complete UTF-8 (and, the sentence being complete, the
		 * end tokens) */
		struct llm_grammar *g = gbnf("root ::= .*");
		struct llm_gwalk *w = llm_gwalk_new(g);
		struct llm_gstate *s = llm_gstate_new(g);
		assert_non_null(w);
		assert_non_null(s);
		size_t n = compare(&v, w, s, "any");
		size_t want = 0;
		for (size_t i = 0; i < v.n_vocab; i++) {
			const char *p;
			size_t len;
			if (tk_tokenizer_is_eog(v.tok, (int32_t)i)) {
				want++;
				continue;
			}
			if (tk_tokenizer_piece(v.tok, (int32_t)i, 0, &p, &len) || !len)
				continue;
			want += utf8_valid((const unsigned char *)p, len);
		}
		assert_int_equal(n, want);
		assert_true(n > v.n_vocab / 2);
		llm_gstate_free(s);
		llm_gwalk_free(w);
		llm_grammar_free(g);
		vocab_close(&v);
	}
}

struct doc_case {
	const char *schema; /* NULL: gbnf holds a GBNF grammar */
	const char *gbnf;
	const char *docs[4];
};

static void test_masks_equal(void **state)
{
	(void)state;
	const struct doc_case cases[] = {
		{ agent_schema_turn(), NULL,
		  { "{\"thought\": \"list first\", \"tool\": \"list_files\", \"args\": {}}",
		    "{\"thought\":\"write it\",\"tool\":\"write_file\",\"args\":{\"path\":"
		    "\"add.c\",\"content\":\"int add(int a, int b) {\\n\\treturn a + b;\\n}\\n\"}}",
		    "{\"thought\": \"caf\\u00e9 \\\"q\\\"\", \"tool\": \"run\",\n\"args\": "
		    "{\"command\": \"make test\"}}",
		    NULL } },
		{ agent_schema_plans(), NULL,
		  { "{\"plans\": [{\"title\": \"one\", \"steps\": [{\"agent\": \"coder\", "
		    "\"goal\": \"write add.c\"}, {\"agent\": \"tester\", \"goal\": \"test\"}]}]}",
		    NULL } },
		{ agent_schema_choice(), NULL, { "{\"reason\": \"best\", \"choice\": -12}", NULL } },
		{ agent_schema_verdict(), NULL,
		  { "{\"issues\": [\"no tests\", \"leak\"], \"verdict\": \"changes\"}", NULL } },
		{ "{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"number\"}, "
		  "\"any\": {}, \"k\": {\"enum\": [\"a\", 3, null, true]}}}",
		  NULL,
		  { "{\"n\": -1.5e+3, \"any\": [{\"x\": [false]}, \"s\"], \"k\": null}", "{}",
		    NULL } },
		{ NULL,
		  "root ::= (word \" \")* word \".\"\n"
		  "word ::= [a-z]+ | \"été\" | \"日本語\" | [α-ω]+ | \"🦙\"\n",
		  { "été 日本語 🦙 λογος.", "the llama ate.", NULL } },
	};
	uint64_t seed = 0x9E3779B97F4A7C15ull;
	for (size_t f = 0; f < N_VOCABS; f++) {
		struct vocab v;
		vocab_open(&v, vocab_files[f][0], vocab_files[f][1]);
		/* the big vocabularies cost ~vocabulary x checks per state in the
		 * per-token reference (seconds under ASan): look at fewer of their
		 * states — one document per case, every 14th token; the small ones
		 * every other token */
		size_t stride = v.n_vocab > 4096 ? 14 : 2;
		int walk = v.n_vocab > 4096 ? 2 : 8;
		for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
			struct llm_grammar *g = cases[c].schema ? schema_grammar(cases[c].schema)
								: gbnf(cases[c].gbnf);
			size_t n_docs = v.n_vocab > 4096 ? 1 : 4;
			for (size_t d = 0; d < n_docs && cases[c].docs[d]; d++)
				follow_doc(&v, g, cases[c].docs[d], stride, walk, &seed);
			llm_grammar_free(g);
		}
		print_message("%s: %zu tokens, %zu trie nodes, %zu states, %.1f tokens allowed "
			      "per state\n", v.name, v.n_vocab, llm_trie_n_nodes(v.trie), v.states,
			      (double)v.allowed / (double)v.states);
		assert_true(v.states >= 10);
		assert_true(v.allowed > v.states); /* not all states allow nothing */
		vocab_close(&v);
	}
}

/* The walker's levels are the states llm_gstate_advance reaches. */
static void test_walker(void **state)
{
	(void)state;
	struct llm_grammar *g = gbnf("root ::= \"ab\" | \"abc\" | \"a\" [x-z]+ \"é\"");
	struct llm_gwalk *w = llm_gwalk_new(g);
	struct llm_gstate *s = llm_gstate_new(g);
	assert_non_null(w);
	assert_non_null(s);
	assert_int_equal(llm_gwalk_push(w, 'a'), TK_ESTATE); /* not started */
	assert_int_equal(llm_gwalk_start(w, s), 0);
	assert_false(llm_gwalk_accepts(w));
	assert_int_equal(llm_gwalk_push(w, 'b'), TK_EINVAL);
	assert_int_equal(llm_gwalk_push(w, 'a'), 0);
	assert_true(llm_gwalk_may(w, 'b', 'b'));
	assert_true(llm_gwalk_may(w, 'w', 'y'));
	assert_false(llm_gwalk_may(w, 'c', 'w'));
	assert_int_equal(llm_gwalk_push(w, 'b'), 0);
	assert_true(llm_gwalk_accepts(w));
	assert_int_equal(llm_gwalk_push(w, 'c'), 0);
	assert_true(llm_gwalk_accepts(w));
	assert_int_equal(llm_gwalk_push(w, 'c'), TK_EINVAL);
	llm_gwalk_pop(w);
	llm_gwalk_pop(w);
	assert_int_equal(llm_gwalk_push(w, 'y'), 0);
	assert_false(llm_gwalk_accepts(w));
	assert_true(llm_gwalk_may(w, 0xE9, 0xE9));
	assert_false(llm_gwalk_may(w, 0x100, 0x7FF));
	assert_int_equal(llm_gwalk_push(w, 0xE9), 0);
	assert_true(llm_gwalk_accepts(w));
	/* popping past level 0 is a no-op; a restart begins anew */
	for (int i = 0; i < 5; i++)
		llm_gwalk_pop(w);
	assert_false(llm_gwalk_accepts(w));
	assert_int_equal(llm_gwalk_push(w, 'y'), TK_EINVAL);
	assert_int_equal(llm_gstate_advance(s, "ab", 2), 0);
	assert_int_equal(llm_gwalk_start(w, s), 0);
	assert_true(llm_gwalk_accepts(w));
	assert_int_equal(llm_gwalk_push(w, 'c'), 0);
	llm_gstate_free(s);
	llm_gwalk_free(w);
	llm_grammar_free(g);
}

/* A state where one more "(" passes the depth cap: both masks say
 * TK_ELIMIT rather than refusing the token quietly. */
static void test_limit(void **state)
{
	(void)state;
	struct vocab v;
	vocab_open(&v, "tiny-llama", "models/tiny-llama-f32.gguf");
	struct llm_grammar *g = gbnf("root ::= \"(\" root \")\" | \"x\"");
	struct llm_gwalk *w = llm_gwalk_new(g);
	struct llm_gstate *s = llm_gstate_new(g);
	assert_non_null(w);
	assert_non_null(s);
	int rc = 0;
	for (int i = 0; i < 2 * LLM_GRAMMAR_MAX_DEPTH && !rc; i++) {
		rc = llm_gstate_check(s, "(", 1, NULL);
		if (!rc)
			assert_int_equal(llm_gstate_advance(s, "(", 1), 0);
	}
	assert_int_equal(rc, TK_ELIMIT);
	assert_int_equal(llm_trie_allowed(v.trie, s, w, v.a, NULL), TK_ELIMIT);
	assert_int_equal(llm_trie_allowed_naive(v.trie, s, v.b, NULL), TK_ELIMIT);
	/* the walker is still usable after the error */
	llm_gstate_free(s);
	s = llm_gstate_new(g);
	assert_non_null(s);
	assert_true(compare(&v, w, s, "after limit") > 0);
	llm_gstate_free(s);
	llm_gwalk_free(w);
	llm_grammar_free(g);
	vocab_close(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shape),
		cmocka_unit_test(test_walker),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_masks_equal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
