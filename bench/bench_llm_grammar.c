/*
 * bench_llm_grammar.c — the cost of masking a whole vocabulary under a
 * grammar (constrained decoding's fallback, llm_trie.h): the per-token
 * check (every token's text through the matcher) against the trie walk,
 * interleaved state by state, on the agents' turn schema. The states are
 * those after each character of a valid turn, so they mix narrow
 * structural positions (a key, a colon, an enum) and open ones (inside a
 * string, where most of the vocabulary is allowed). Also the trie's build
 * time and size. Prints numbers; never fails on time.
 *
 *   bench_llm_grammar MODEL_OR_VOCAB.gguf...
 */
#include "agents/protocol.h"
#include "core/buf.h"
#include "core/err.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "llm/grammar.h"
#include "llm/llm_trie.h"
#include "bench_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char turn_doc[] =
	"{\"thought\": \"the header declares add; write it and run the tests\", "
	"\"tool\": \"write_file\", \"args\": {\"path\": \"add.c\", \"content\": "
	"\"#include \\\"add.h\\\"\\n\\nint add(int a, int b)\\n{\\n\\treturn a + b;\\n}\\n\"}}";

struct acc {
	double naive_s, trie_s;
	size_t n;
};

static int bench_one(const char *path, const struct llm_grammar *g)
{
	struct tk_gguf *gg = tk_gguf_open(path);
	struct tk_tokenizer *tok = gg ? tk_tokenizer_from_gguf(gg) : NULL;
	tk_gguf_close(gg);
	if (!tok) {
		fprintf(stderr, "%s: %s\n", path, tk_err_detail());
		return 1;
	}
	double t0 = bench_now_s();
	struct llm_trie *trie = llm_trie_new(tok);
	double build_s = bench_now_s() - t0;
	size_t nv = tk_tokenizer_n_vocab(tok);
	uint8_t *a = malloc(nv), *b = malloc(nv);
	struct llm_gwalk *w = llm_gwalk_new(g);
	struct llm_gstate *s = llm_gstate_new(g);
	int rc = 1;
	if (!trie || !a || !b || !w || !s) {
		fprintf(stderr, "%s: %s\n", path, tk_err_detail());
		goto out;
	}
	struct acc narrow = { 0 }, open = { 0 };
	double worst_naive = 0, worst_trie = 0;
	const unsigned char *d = (const unsigned char *)turn_doc;
	size_t len = strlen(turn_doc);
	for (size_t i = 0; i <= len; i++) {
		size_t na = 0, nb = 0;
		double t1 = bench_now_s();
		if (llm_trie_allowed_naive(trie, s, b, &nb))
			goto err;
		double t2 = bench_now_s();
		if (llm_trie_allowed(trie, s, w, a, &na))
			goto err;
		double t3 = bench_now_s();
		if (na != nb || memcmp(a, b, nv)) {
			fprintf(stderr, "%s: the masks differ at byte %zu\n", path, i);
			goto out;
		}
		struct acc *k = na > nv / 4 ? &open : &narrow;
		k->naive_s += t2 - t1;
		k->trie_s += t3 - t2;
		k->n++;
		if (t2 - t1 > worst_naive)
			worst_naive = t2 - t1;
		if (t3 - t2 > worst_trie)
			worst_trie = t3 - t2;
		if (i < len && llm_gstate_advance(s, (const char *)d + i, 1))
			goto err;
	}
	const char *name = strrchr(path, '/');
	name = name ? name + 1 : path;
	printf("%-34s %6zu tokens %7zu nodes, trie built in %6.1f ms\n", name, nv,
	       llm_trie_n_nodes(trie), build_s * 1e3);
	const struct acc *ks[2] = { &narrow, &open };
	const char *kn[2] = { "narrow", "open" };
	for (int j = 0; j < 2; j++)
		if (ks[j]->n)
			printf("  %-6s states %3zu: per-token %8.3f ms/mask, trie %7.3f ms/mask, "
			       "%6.1fx\n",
			       kn[j], ks[j]->n, ks[j]->naive_s * 1e3 / (double)ks[j]->n,
			       ks[j]->trie_s * 1e3 / (double)ks[j]->n,
			       ks[j]->trie_s > 0 ? ks[j]->naive_s / ks[j]->trie_s : 0.0);
	printf("  all    states %3zu: per-token %8.3f ms/mask, trie %7.3f ms/mask, %6.1fx "
	       "(worst %.3f vs %.3f ms)\n",
	       narrow.n + open.n, (narrow.naive_s + open.naive_s) * 1e3 / (double)(narrow.n + open.n),
	       (narrow.trie_s + open.trie_s) * 1e3 / (double)(narrow.n + open.n),
	       (narrow.naive_s + open.naive_s) / (narrow.trie_s + open.trie_s), worst_naive * 1e3,
	       worst_trie * 1e3);
	fflush(stdout);
	rc = 0;
	goto out;
err:
	fprintf(stderr, "%s: %s\n", path, tk_err_detail());
out:
	llm_gstate_free(s);
	llm_gwalk_free(w);
	free(a);
	free(b);
	llm_trie_free(trie);
	tk_tokenizer_free(tok);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_llm_grammar MODEL_OR_VOCAB.gguf...\n");
		return 2;
	}
	json_t *js = json_loads(agent_schema_turn(), 0, NULL);
	struct tk_buf gb = TK_BUF_INIT(1 << 20);
	struct llm_grammar *g = NULL;
	if (!js || llm_schema_to_grammar(js, &gb) || !(g = llm_grammar_parse(gb.data, gb.len))) {
		fprintf(stderr, "turn schema: %s\n", tk_err_detail());
		return 1;
	}
	json_decref(js);
	tk_buf_free(&gb);
	printf("masking the whole vocabulary under the agents' turn schema, at each of the %zu "
	       "characters of a valid turn\n(narrow: at most 1/4 of the vocabulary allowed; "
	       "open: more)\n",
	       strlen(turn_doc) + 1);
	int rc = 0;
	for (int i = 1; i < argc; i++)
		rc |= bench_one(argv[i], g);
	llm_grammar_free(g);
	return rc;
}
