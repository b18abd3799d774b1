/*
 * chat.h — chat templates: turning a list of {role, content} turns into the
 * prompt text a chat model was trained on.
 *
 * A GGUF model carries its template as Jinja source (tokenizer.chat_template).
 * Tanuki does not run Jinja; it recognises the common families by distinctive
 * substrings of that source and renders them with built-in code:
 *
 *   family          recognised by                      one turn looks like
 *   chatml          "<|im_start|>"                     <|im_start|>ROLE\nTEXT<|im_end|>\n
 *   llama3          "<|start_header_id|>"              <|start_header_id|>ROLE<|end_header_id|>\n\nTEXT<|eot_id|>
 *   mistral         "[INST]"                           [INST] USER [/INST]ASSISTANT</s>
 *   deepseek-coder  "### Instruction:" and             ### Instruction:\nUSER\n / ### Response:\nASSISTANT\n<|EOT|>\n
 *                   "### Response:"
 *
 * (checked in the order llama3, chatml, deepseek-coder, mistral). An absent
 * or unrecognised template uses a configurable fallback family (chatml by
 * default). The exact output of each family, system-message placement and
 * the generation prefix are specified in docs/engine.md, "Tokenizers and chat
 * templates", and pinned by tests/unit/test_chat.c.
 *
 * The rendered text holds no BOS: the tokenizer adds it (encode with the
 * default BOS mode). It does hold the families' turn markers as text
 * (<|im_start|>, [INST], </s>, ...), so encode it with parse_special.
 *
 * Roles are "system", "user" and "assistant"; anything else is TK_EINVAL.
 * Contents are copied verbatim (llama3 trims surrounding whitespace, as
 * llama.cpp does). Pure functions: any thread may call.
 */
#ifndef TK_ENGINE_CHAT_H
#define TK_ENGINE_CHAT_H

#include <stdbool.h>
#include <stddef.h>

struct tk_buf;

enum tk_chat_family {
	TK_CHAT_UNKNOWN = 0, /* only as a detection result */
	TK_CHAT_CHATML,
	TK_CHAT_LLAMA3,
	TK_CHAT_MISTRAL,
	TK_CHAT_DEEPSEEK_CODER,
};

struct tk_chat_msg {
	const char *role;    /* borrowed */
	const char *content; /* borrowed; NULL is "" */
};

/* Caps: turns per conversation and bytes per content. */
#define TK_CHAT_MAX_MESSAGES 4096
#define TK_CHAT_MAX_CONTENT_BYTES (4u << 20)

/* Family of a Jinja template source; TK_CHAT_UNKNOWN for NULL, "" or an
 * unrecognised one. */
enum tk_chat_family tk_chat_detect(const char *tmpl);

/* "chatml", "llama3", "mistral", "deepseek-coder" ("unknown"). */
const char *tk_chat_family_name(enum tk_chat_family f);

/* Parses a family name (as tk_chat_family_name writes it; also "qwen" for
 * chatml, "llama-3" for llama3). 0 or TK_EINVAL. */
int tk_chat_family_parse(const char *name, enum tk_chat_family *out);

/* Renders msgs[0..n) in family f and, when add_generation_prompt, the text
 * that opens the assistant's reply. Appends to out. 0, TK_EINVAL (unknown
 * family or role, NULL role, a system message where the family cannot place
 * it — see docs), TK_ELIMIT (too many turns, content over the cap, or out's
 * cap) or TK_ENOMEM. On error out may hold part of the text. */
int tk_chat_render(enum tk_chat_family f, const struct tk_chat_msg *msgs, size_t n,
		   bool add_generation_prompt, struct tk_buf *out);

/* tk_chat_detect(tmpl), falling back to `fallback` when unknown, then
 * tk_chat_render. *used (may be NULL) gets the family rendered. */
int tk_chat_apply(const char *tmpl, enum tk_chat_family fallback, const struct tk_chat_msg *msgs,
		  size_t n, bool add_generation_prompt, struct tk_buf *out,
		  enum tk_chat_family *used);

#endif
