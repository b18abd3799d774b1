/*
 * test_chat.c — chat templates: family detection, the exact text of a
 * 3-turn conversation in each family (written by hand from each family's
 * documented format), system-message placement, fallback, errors.
 */
#include "testutil.h"

#include "core/buf.h"
#include "core/err.h"
#include "engine/chat.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct tk_chat_msg conv[] = {
	{ "system", "You are terse." },
	{ "user", "Hi" },
	{ "assistant", "Hello." },
	{ "user", "Sum 2+2?" },
};

static void expect_render(enum tk_chat_family f, const struct tk_chat_msg *m, size_t n,
			  bool gen, const char *want)
{
	struct tk_buf b = TK_BUF_INIT(1 << 16);
	int rc = tk_chat_render(f, m, n, gen, &b);
	if (rc)
		fail_msg("%s: render failed: %s", tk_chat_family_name(f), tk_err_detail());
	if (strcmp(tk_buf_str(&b), want))
		fail_msg("%s:\nwant [%s]\ngot  [%s]", tk_chat_family_name(f), want, tk_buf_str(&b));
	tk_buf_free(&b);
}

static void test_chatml(void **state)
{
	(void)state;
	expect_render(TK_CHAT_CHATML, conv, 4, true,
		      "<|im_start|>system\nYou are terse.<|im_end|>\n"
		      "<|im_start|>user\nHi<|im_end|>\n"
		      "<|im_start|>assistant\nHello.<|im_end|>\n"
		      "<|im_start|>user\nSum 2+2?<|im_end|>\n"
		      "<|im_start|>assistant\n");
	/* Without the generation prompt, and a system message later on stays in place. */
	const struct tk_chat_msg late[] = { { "user", "a" }, { "system", "b" } };
	expect_render(TK_CHAT_CHATML, late, 2, false,
		      "<|im_start|>user\na<|im_end|>\n<|im_start|>system\nb<|im_end|>\n");
}

static void test_llama3(void **state)
{
	(void)state;
	expect_render(TK_CHAT_LLAMA3, conv, 4, true,
		      "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
		      "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
		      "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
		      "<|start_header_id|>user<|end_header_id|>\n\nSum 2+2?<|eot_id|>"
		      "<|start_header_id|>assistant<|end_header_id|>\n\n");
	/* Contents are trimmed. */
	const struct tk_chat_msg sp[] = { { "user", "  x \n" } };
	expect_render(TK_CHAT_LLAMA3, sp, 1, false,
		      "<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
}

static void test_mistral(void **state)
{
	(void)state;
	/* The system message joins the first user turn; no generation prefix. */
	expect_render(TK_CHAT_MISTRAL, conv, 4, true,
		      "[INST] You are terse.\n\nHi [/INST]Hello.</s>[INST] Sum 2+2? [/INST]");
	expect_render(TK_CHAT_MISTRAL, conv + 1, 3, false,
		      "[INST] Hi [/INST]Hello.</s>[INST] Sum 2+2? [/INST]");
	/* A system message anywhere else, or without a user turn after it, is refused. */
	struct tk_buf b = TK_BUF_INIT(1024);
	const struct tk_chat_msg late[] = { { "user", "a" }, { "system", "b" } };
	assert_int_equal(tk_chat_render(TK_CHAT_MISTRAL, late, 2, true, &b), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "system message must be the first"));
	const struct tk_chat_msg lone[] = { { "system", "b" } };
	assert_int_equal(tk_chat_render(TK_CHAT_MISTRAL, lone, 1, true, &b), TK_EINVAL);
	tk_buf_free(&b);
}

static void test_deepseek_coder(void **state)
{
	(void)state;
	expect_render(TK_CHAT_DEEPSEEK_CODER, conv, 4, true,
		      "You are terse.\n"
		      "### Instruction:\nHi\n"
		      "### Response:\nHello.\n<|EOT|>\n"
		      "### Instruction:\nSum 2+2?\n"
		      "### Response:\n");
	/* A system text that already ends its line gets no second newline. */
	const struct tk_chat_msg s2[] = { { "system", "S\n" }, { "user", "u" } };
	expect_render(TK_CHAT_DEEPSEEK_CODER, s2, 2, false, "S\n### Instruction:\nu\n");
}

static void test_detect_and_fallback(void **state)
{
	(void)state;
	assert_int_equal(tk_chat_detect("{% for m in messages %}<|im_start|>{{ m.role }}"),
			 TK_CHAT_CHATML);
	assert_int_equal(tk_chat_detect("{{ '<|start_header_id|>' + m['role'] }}"), TK_CHAT_LLAMA3);
	assert_int_equal(tk_chat_detect("{{ bos_token }}{{ '[INST] ' + c + ' [/INST]' }}"),
			 TK_CHAT_MISTRAL);
	assert_int_equal(tk_chat_detect("{{'### Instruction:\\n' + c}}{{'### Response:'}}"),
			 TK_CHAT_DEEPSEEK_CODER);
	assert_int_equal(tk_chat_detect("<|user|>{{ c }}<|end|>"), TK_CHAT_UNKNOWN);
	assert_int_equal(tk_chat_detect(NULL), TK_CHAT_UNKNOWN);
	assert_int_equal(tk_chat_detect(""), TK_CHAT_UNKNOWN);

	/* Unknown or absent: the fallback family, ChatML unless configured. */
	struct tk_buf a = TK_BUF_INIT(4096), b = TK_BUF_INIT(4096);
	enum tk_chat_family used;
	assert_int_equal(tk_chat_apply("<|user|>{{ c }}<|end|>", TK_CHAT_CHATML, conv, 4, true, &a,
				       &used), 0);
	assert_int_equal(used, TK_CHAT_CHATML);
	assert_int_equal(tk_chat_render(TK_CHAT_CHATML, conv, 4, true, &b), 0);
	assert_string_equal(tk_buf_str(&a), tk_buf_str(&b));
	tk_buf_reset(&a);
	assert_int_equal(tk_chat_apply(NULL, TK_CHAT_LLAMA3, conv, 4, true, &a, &used), 0);
	assert_int_equal(used, TK_CHAT_LLAMA3);
	assert_int_equal(strncmp(tk_buf_str(&a), "<|start_header_id|>", 19), 0);

	/* The template in a real GGUF (phi-3) is not one we know: fallback. */
	char path[512];
	snprintf(path, sizeof path, "%s/vocab/ggml-vocab-phi-3.gguf", TK_FIXTURES);
	struct tk_gguf *g = tk_gguf_open(path);
	assert_non_null(g);
	const char *tmpl;
	assert_int_equal(tk_gguf_get_str(g, "tokenizer.chat_template", &tmpl, NULL), 0);
	assert_int_equal(tk_chat_detect(tmpl), TK_CHAT_UNKNOWN);
	tk_gguf_close(g);

	enum tk_chat_family f;
	assert_int_equal(tk_chat_family_parse("qwen", &f), 0);
	assert_int_equal(f, TK_CHAT_CHATML);
	assert_int_equal(tk_chat_family_parse("deepseek-coder", &f), 0);
	assert_int_equal(f, TK_CHAT_DEEPSEEK_CODER);
	assert_int_equal(tk_chat_family_parse("jinja", &f), TK_EINVAL);
	assert_string_equal(tk_chat_family_name(TK_CHAT_MISTRAL), "mistral");
	tk_buf_free(&a);
	tk_buf_free(&b);
}

static void test_errors(void **state)
{
	(void)state;
	struct tk_buf b = TK_BUF_INIT(64);
	const struct tk_chat_msg badrole[] = { { "tool", "x" } };
	assert_int_equal(tk_chat_render(TK_CHAT_CHATML, badrole, 1, false, &b), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "unknown role 'tool'"));
	const struct tk_chat_msg norole[] = { { NULL, "x" } };
	assert_int_equal(tk_chat_render(TK_CHAT_CHATML, norole, 1, false, &b), TK_EINVAL);
	assert_int_equal(tk_chat_render(TK_CHAT_UNKNOWN, conv, 4, false, &b), TK_EINVAL);
	/* The output buffer's cap is honoured. */
	assert_int_equal(tk_chat_render(TK_CHAT_CHATML, conv, 4, true, &b), TK_ELIMIT);
	/* NULL content is empty; no messages + generation prompt is just the prefix. */
	struct tk_buf c = TK_BUF_INIT(1024);
	const struct tk_chat_msg nullc[] = { { "user", NULL } };
	assert_int_equal(tk_chat_render(TK_CHAT_CHATML, nullc, 1, false, &c), 0);
	assert_string_equal(tk_buf_str(&c), "<|im_start|>user\n<|im_end|>\n");
	tk_buf_reset(&c);
	assert_int_equal(tk_chat_render(TK_CHAT_LLAMA3, NULL, 0, true, &c), 0);
	assert_string_equal(tk_buf_str(&c), "<|start_header_id|>assistant<|end_header_id|>\n\n");
	tk_buf_free(&c);
	tk_buf_free(&b);
}

/* A rendered ChatML prompt, encoded with parse_special, turns its markers
 * into the special tokens of a vocabulary that has them (starcoder has none:
 * use a tiny hand-made BPE vocabulary). */
static void test_render_then_encode(void **state)
{
	(void)state;
	const char *toks[] = { "<|im_start|>", "<|im_end|>", "u", "s", "e", "r", "x", "Ċ" };
	int32_t types[] = { 3, 3, 1, 1, 1, 1, 1, 1 };
	struct tk_tok_desc d;
	tk_tok_desc_init(&d);
	d.kind = TK_TOK_BPE;
	d.pre = "qwen2";
	d.tokens = toks;
	d.types = types;
	d.n_tokens = 8;
	d.bos_id = d.eos_id = -1;
	struct tk_tokenizer *t = tk_tokenizer_new(&d);
	assert_non_null(t);
	assert_int_equal(tk_tokenizer_eot(t), 1);
	assert_true(tk_tokenizer_is_eog(t, 1));
	struct tk_buf b = TK_BUF_INIT(1024);
	const struct tk_chat_msg m[] = { { "user", "x" } };
	assert_int_equal(tk_chat_render(TK_CHAT_CHATML, m, 1, false, &b), 0);
	struct tk_tok_encode_opts o = { .parse_special = true };
	int32_t *ids;
	size_t n;
	assert_int_equal(tk_tokenizer_encode(t, b.data, b.len, &o, &ids, &n), 0);
	const int32_t want[] = { 0, 2, 3, 4, 5, 7, 6, 1, 7 };
	assert_int_equal(n, 9);
	assert_memory_equal(ids, want, sizeof want);
	free(ids);
	tk_buf_free(&b);
	tk_tokenizer_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chatml),
		cmocka_unit_test(test_llama3),
		cmocka_unit_test(test_mistral),
		cmocka_unit_test(test_deepseek_coder),
		cmocka_unit_test(test_detect_and_fallback),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_render_then_encode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
