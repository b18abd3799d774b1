/*
 * chat.c — recognising chat-template families and rendering conversations
 * in them (see chat.h for the families and docs/engine.md for the exact
 * formats). Owns no state.
 */
#include "engine/chat.h"

#include "core/buf.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

static int parse_role(const char *r, size_t i, enum role *out)
{
	if (!r)
		return tk_errf(TK_EINVAL, "chat: message %zu: no role", i);
	if (!strcmp(r, "system"))
		*out = ROLE_SYSTEM;
	else if (!strcmp(r, "user"))
		*out = ROLE_USER;
	else if (!strcmp(r, "assistant"))
		*out = ROLE_ASSISTANT;
	else
		return tk_errf(TK_EINVAL, "chat: message %zu: unknown role '%.32s'", i, r);
	return 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Appends s[0..n) without leading and trailing whitespace. */
static int put_trimmed(struct tk_buf *out, const char *s, size_t n)
{
	while (n && is_space(*s)) {
		s++;
		n--;
	}
	while (n && is_space(s[n - 1]))
		n--;
	return tk_buf_append(out, s, n);
}

static int render_chatml(const struct tk_chat_msg *m, size_t n, bool gen, struct tk_buf *out)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if ((rc = tk_buf_puts(out, "<|im_start|>")) || (rc = tk_buf_puts(out, m[i].role)) ||
		    (rc = tk_buf_putc(out, '\n')) || (rc = tk_buf_puts(out, m[i].content)))
			break;
		rc = tk_buf_puts(out, "<|im_end|>\n");
	}
	if (!rc && gen)
		rc = tk_buf_puts(out, "<|im_start|>assistant\n");
	return rc;
}

static int render_llama3(const struct tk_chat_msg *m, size_t n, bool gen, struct tk_buf *out)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if ((rc = tk_buf_puts(out, "<|start_header_id|>")) ||
		    (rc = tk_buf_puts(out, m[i].role)) ||
		    (rc = tk_buf_puts(out, "<|end_header_id|>\n\n")) ||
		    (rc = put_trimmed(out, m[i].content, strlen(m[i].content))))
			break;
		rc = tk_buf_puts(out, "<|eot_id|>");
	}
	if (!rc && gen)
		rc = tk_buf_puts(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
	return rc;
}

/* Mistral has no system turn: a system message must come first and is
 * prepended to the first user message, separated by a blank line. */
static int render_mistral(const struct tk_chat_msg *m, const enum role *roles, size_t n,
			  bool gen, struct tk_buf *out)
{
	int rc = 0;
	const char *system = NULL;
	for (size_t i = 0; i < n && !rc; i++) {
		switch (roles[i]) {
		case ROLE_SYSTEM:
			if (i != 0)
				return tk_errf(TK_EINVAL,
					       "chat: mistral: a system message must be the first (message %zu)",
					       i);
			if (n < 2 || roles[1] != ROLE_USER)
				return tk_errf(TK_EINVAL,
					       "chat: mistral: a system message must be followed by a user message");
			system = m[i].content;
			break;
		case ROLE_USER:
			if ((rc = tk_buf_puts(out, "[INST] ")))
				break;
			if (system && ((rc = tk_buf_puts(out, system)) || (rc = tk_buf_puts(out, "\n\n"))))
				break;
			system = NULL;
			if ((rc = tk_buf_puts(out, m[i].content)))
				break;
			rc = tk_buf_puts(out, " [/INST]");
			break;
		case ROLE_ASSISTANT:
			if (!(rc = tk_buf_puts(out, m[i].content)))
				rc = tk_buf_puts(out, "</s>");
			break;
		}
	}
	(void)gen; /* the reply follows "[/INST]" directly: no prefix */
	return rc;
}

static int render_deepseek(const struct tk_chat_msg *m, const enum role *roles, size_t n,
			   bool gen, struct tk_buf *out)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const char *c = m[i].content;
		size_t len = strlen(c);
		switch (roles[i]) {
		case ROLE_SYSTEM:
			/* Verbatim, ended by a newline when it lacks one. */
			if (!(rc = tk_buf_append(out, c, len)) && (!len || c[len - 1] != '\n'))
				rc = tk_buf_putc(out, '\n');
			break;
		case ROLE_USER:
			if (!(rc = tk_buf_puts(out, "### Instruction:\n")) &&
			    !(rc = tk_buf_append(out, c, len)))
				rc = tk_buf_putc(out, '\n');
			break;
		case ROLE_ASSISTANT:
			if (!(rc = tk_buf_puts(out, "### Response:\n")) &&
			    !(rc = tk_buf_append(out, c, len)))
				rc = tk_buf_puts(out, "\n<|EOT|>\n");
			break;
		}
	}
	if (!rc && gen)
		rc = tk_buf_puts(out, "### Response:\n");
	return rc;
}

int tk_chat_render(enum tk_chat_family f, const struct tk_chat_msg *msgs, size_t n,
		   bool add_generation_prompt, struct tk_buf *out)
{
	if (n > TK_CHAT_MAX_MESSAGES)
		return tk_errf(TK_ELIMIT, "chat: %zu messages, over the cap of %d", n,
			       TK_CHAT_MAX_MESSAGES);
	if (n && !msgs)
		return tk_errf(TK_EINVAL, "chat: NULL messages");
	enum role *rv = malloc((n ? n : 1) * sizeof *rv);
	struct tk_chat_msg *m = malloc((n ? n : 1) * sizeof *m);
	int rc = 0;
	if (!rv || !m) {
		rc = tk_errf(TK_ENOMEM, "chat: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if ((rc = parse_role(msgs[i].role, i, &rv[i])))
			goto out;
		m[i].role = msgs[i].role;
		m[i].content = msgs[i].content ? msgs[i].content : "";
		if (strlen(m[i].content) > TK_CHAT_MAX_CONTENT_BYTES) {
			rc = tk_errf(TK_ELIMIT, "chat: message %zu: content over the cap of %u bytes", i,
				     TK_CHAT_MAX_CONTENT_BYTES);
			goto out;
		}
	}
	switch (f) {
	case TK_CHAT_CHATML: rc = render_chatml(m, n, add_generation_prompt, out); break;
	case TK_CHAT_LLAMA3: rc = render_llama3(m, n, add_generation_prompt, out); break;
	case TK_CHAT_MISTRAL: rc = render_mistral(m, rv, n, add_generation_prompt, out); break;
	case TK_CHAT_DEEPSEEK_CODER:
		rc = render_deepseek(m, rv, n, add_generation_prompt, out);
		break;
	default: rc = tk_errf(TK_EINVAL, "chat: unknown template family %d", (int)f); break;
	}
out:
	free(rv);
	free(m);
	return rc;
}

enum tk_chat_family tk_chat_detect(const char *tmpl)
{
	if (!tmpl || !*tmpl)
		return TK_CHAT_UNKNOWN;
	if (strstr(tmpl, "<|start_header_id|>"))
		return TK_CHAT_LLAMA3;
	if (strstr(tmpl, "<|im_start|>"))
		return TK_CHAT_CHATML;
	if (strstr(tmpl, "### Instruction:") && strstr(tmpl, "### Response:"))
		return TK_CHAT_DEEPSEEK_CODER;
	if (strstr(tmpl, "[INST]"))
		return TK_CHAT_MISTRAL;
	return TK_CHAT_UNKNOWN;
}

const char *tk_chat_family_name(enum tk_chat_family f)
{
	switch (f) {
	case TK_CHAT_CHATML: return "chatml";
	case TK_CHAT_LLAMA3: return "llama3";
	case TK_CHAT_MISTRAL: return "mistral";
	case TK_CHAT_DEEPSEEK_CODER: return "deepseek-coder";
	default: return "unknown";
	}
}

int tk_chat_family_parse(const char *name, enum tk_chat_family *out)
{
	static const struct {
		const char *name;
		enum tk_chat_family f;
	} names[] = {
		{ "chatml", TK_CHAT_CHATML }, { "qwen", TK_CHAT_CHATML },
		{ "llama3", TK_CHAT_LLAMA3 }, { "llama-3", TK_CHAT_LLAMA3 },
		{ "mistral", TK_CHAT_MISTRAL }, { "deepseek-coder", TK_CHAT_DEEPSEEK_CODER },
	};
	for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++) {
		if (!strcmp(name, names[i].name)) {
			*out = names[i].f;
			return 0;
		}
	}
	return tk_errf(TK_EINVAL, "chat: unknown template family '%.32s' (chatml, llama3, mistral, deepseek-coder)",
		       name ? name : "(null)");
}

int tk_chat_apply(const char *tmpl, enum tk_chat_family fallback, const struct tk_chat_msg *msgs,
		  size_t n, bool add_generation_prompt, struct tk_buf *out,
		  enum tk_chat_family *used)
{
	enum tk_chat_family f = tk_chat_detect(tmpl);
	if (f == TK_CHAT_UNKNOWN)
		f = fallback;
	if (used)
		*used = f;
	return tk_chat_render(f, msgs, n, add_generation_prompt, out);
}
