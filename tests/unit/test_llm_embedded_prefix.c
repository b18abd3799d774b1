/* test_llm_embedded_prefix.c — prompt-prefix reuse in the embedded backend
 * (src/llm/llm_embedded.c): a call evaluates only what its prompt does not
 * share with a sequence's cache, and the count of reused tokens
 * (tanuki_llm_prompt_tokens_reused_total) is exactly the longest common
 * prefix, computed here from the tokenized prompts; the reply equals the
 * engine's own from an empty cache; a different adapter reuses nothing; a
 * new conversation does not evict another's cache when a slot is free. */
#include "testutil.h"

#include "core/buf.h"
#include "engine/chat.h"
#include "engine/context.h"
#include "engine/generate.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "llm/llm.h"
#include "obs/metrics.h"

#include <stdlib.h>
#include <string.h>

#define MODEL TK_FIXTURES "/models/tiny-llama-f32.gguf"

static struct tk_registry *reg;
static struct engine_model *model;
static struct tk_tokenizer *tok;

static const char briefing[] =
	"You are the reviewer of a small C project. Read the diff, say what is wrong, "
	"and answer in one short paragraph. The project builds with CMake and tests "
	"with cmocka.";

static struct llm_backend *embedded(int32_t seqs, bool adapters)
{
	struct llm_options o;
	llm_options_default(&o);
	o.backend = "embedded";
	o.model = MODEL;
	o.embedded_contexts = seqs;
	o.embedded_n_ctx = 512;
	o.adapter_dir = adapters ? TK_FIXTURES "/models" : NULL;
	o.metrics = reg;
	return llm_backend_new(&o);
}

/* The prompt the backend evaluates for msgs: rendered with the model's
 * template (generation prompt added) and tokenized the same way. */
static int32_t *prompt_ids(const struct llm_message *msgs, size_t n, int32_t *n_out)
{
	const char *tmpl = NULL;
	if (tk_gguf_get_str(model->gguf, "tokenizer.chat_template", &tmpl, NULL))
		tmpl = NULL;
	struct tk_chat_msg cm[8];
	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++)
		cm[i] = (struct tk_chat_msg){ msgs[i].role, msgs[i].content };
	struct tk_buf text = TK_BUF_INIT(1 << 20);
	assert_int_equal(tk_chat_apply(tmpl, TK_CHAT_CHATML, cm, n, true, &text, NULL), 0);
	struct tk_tok_encode_opts eo = { .bos = TK_TOK_BOS_DEFAULT, .parse_special = true };
	int32_t *ids;
	size_t cnt;
	assert_int_equal(tk_tokenizer_encode(tok, text.data, text.len, &eo, &ids, &cnt), 0);
	tk_buf_free(&text);
	*n_out = (int32_t)cnt;
	return ids;
}

static int32_t lcp(const int32_t *a, int32_t na, const int32_t *b, int32_t nb)
{
	int32_t k = 0;
	while (k < na && k < nb && a[k] == b[k])
		k++;
	return k;
}

/* What reuse may give a prompt of nb tokens whose longest common prefix
 * with the cache is k: all of it but the last prompt token. */
static double expect_reuse(int32_t k, int32_t nb)
{
	return (double)(k < nb ? k : nb - 1);
}

static double reused(void)
{
	return tk_series_value(tk_metric_series(
		tk_metric_counter(reg, "tanuki_llm_prompt_tokens_reused_total", "x",
				  (const char *const[]){ "backend" }, 1),
		(const char *const[]){ "embedded" }));
}

/* greedy reply of n_gen tokens for ids from an empty cache */
static char *cold_reply(const int32_t *ids, int32_t n, int32_t n_gen)
{
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = 512;
	struct engine_ctx *ctx = engine_ctx_new(model, &cp);
	assert_non_null(ctx);
	struct engine_gen_params gp;
	memset(&gp, 0, sizeof gp);
	engine_sampler_params_default(&gp.sampling);
	gp.sampling.temp = 0;
	gp.max_tokens = n_gen;
	struct engine_gen_result r;
	assert_int_equal(engine_generate(ctx, tok, ids, n, &gp, NULL, NULL, &r), 0);
	char *out = strdup(r.text);
	engine_gen_result_free(&r);
	engine_ctx_free(ctx);
	return out;
}

static char *chat(struct llm_backend *b, const struct llm_message *msgs, size_t n,
		  int32_t max_tokens, const char *adapter)
{
	struct llm_params p;
	llm_params_default(&p);
	p.sampling.temperature = 0;
	p.max_tokens = max_tokens;
	p.adapter = adapter;
	struct llm_result r;
	assert_int_equal(llm_chat(b, msgs, n, &p, NULL, NULL, NULL, &r), 0);
	char *t = strdup(r.text);
	llm_result_free(&r);
	return t;
}

/* The next turn of a conversation re-sends the first: only the new part is
 * evaluated, and the reply is the one an empty cache gives. */
static void test_next_turn_reuses_the_briefing(void **state)
{
	(void)state;
	const struct llm_message turn1[] = { { "system", briefing },
					     { "user", "The diff adds a free() twice." } };
	const struct llm_message turn2[] = { { "system", briefing },
					     { "user", "The diff adds a free() twice." },
					     { "assistant", "That is a double free." },
					     { "user", "And the fix?" } };
	int32_t n1, n2;
	int32_t *p1 = prompt_ids(turn1, 2, &n1), *p2 = prompt_ids(turn2, 4, &n2);
	int32_t k = lcp(p1, n1, p2, n2);
	assert_true(k > n1 / 2); /* the test is about a long shared prefix */
	struct llm_backend *b = embedded(1, false);
	assert_non_null(b);
	double r0 = reused();
	/* max_tokens 1: the one sampled token is never evaluated, so the cache
	 * holds exactly turn 1's prompt */
	free(chat(b, turn1, 2, 1, NULL));
	assert_true(reused() - r0 == 0);
	char *got = chat(b, turn2, 4, 8, NULL);
	assert_true(reused() - r0 == expect_reuse(k, n2));
	char *want = cold_reply(p2, n2, 8);
	assert_string_equal(got, want);
	free(got);
	free(want);
	/* the same prompt again: everything but its last token */
	r0 = reused();
	got = chat(b, turn2, 4, 8, NULL);
	assert_true(reused() - r0 == expect_reuse(n2, n2));
	want = cold_reply(p2, n2, 8);
	assert_string_equal(got, want);
	free(got);
	free(want);
	llm_backend_free(b);
	free(p1);
	free(p2);
}

/* Keys and values computed under an adapter are not reused without it, nor
 * the other way round. */
static void test_adapter_change_reuses_nothing(void **state)
{
	(void)state;
	const struct llm_message msgs[] = { { "system", briefing }, { "user", "Hello" } };
	struct llm_backend *b = embedded(1, true);
	assert_non_null(b);
	int32_t n;
	int32_t *ids = prompt_ids(msgs, 2, &n);
	free(chat(b, msgs, 2, 1, NULL));
	double r0 = reused();
	free(chat(b, msgs, 2, 1, "tiny-llama-lora-coder"));
	assert_true(reused() - r0 == 0);
	free(chat(b, msgs, 2, 1, "tiny-llama-lora-coder"));
	assert_true(reused() - r0 == expect_reuse(n, n));
	r0 = reused();
	free(chat(b, msgs, 2, 1, "tiny-llama-lora-reviewer"));
	assert_true(reused() - r0 == 0);
	llm_backend_free(b);
	free(ids);
}

/* With two sequences, a second conversation that shares only the system
 * prompt with a cached one that has more of its own (reusing would throw
 * away more than it saves) takes the empty sequence, so the first keeps
 * its cache. */
static void test_second_conversation_keeps_the_first(void **state)
{
	(void)state;
	static const char long_user[] =
		"Here is the diff. It changes the parser so that every token is copied into "
		"a new buffer, frees the old buffer at the end of each line, adds a cache of "
		"the last hundred lines, and renames three functions in the lexer; the tests "
		"were updated to match, and a new benchmark prints the time per line.";
	const struct llm_message a[] = { { "system", briefing }, { "user", long_user } };
	const struct llm_message c[] = { { "system", briefing },
					 { "user", "Why is the build slow?" } };
	int32_t na;
	int32_t *pa = prompt_ids(a, 2, &na);
	int32_t nc;
	int32_t *pc = prompt_ids(c, 2, &nc);
	int32_t k = lcp(pa, na, pc, nc);
	assert_true(na - k > k); /* what the test is about */
	free(pc);
	struct llm_backend *b = embedded(2, false);
	assert_non_null(b);
	free(chat(b, a, 2, 1, NULL));
	double r0 = reused();
	free(chat(b, c, 2, 1, NULL));
	assert_true(reused() - r0 == 0); /* a fresh sequence */
	r0 = reused();
	free(chat(b, a, 2, 1, NULL));
	assert_true(reused() - r0 == expect_reuse(na, na));
	llm_backend_free(b);
	free(pa);
}

static int setup(void **state)
{
	(void)state;
	reg = tk_registry_new();
	model = engine_model_load(MODEL);
	tok = model ? tk_tokenizer_from_gguf(model->gguf) : NULL;
	return reg && tok ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tk_tokenizer_free(tok);
	engine_model_free(model);
	tk_registry_free(reg);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_turn_reuses_the_briefing),
		cmocka_unit_test(test_adapter_change_reuses_nothing),
		cmocka_unit_test(test_second_conversation_keeps_the_first),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
