/*
 * llm_openai.c — the OpenAI-compatible backend: POST {url}/chat/completions
 * with "stream": true, read as server-sent events ("data: {json}" lines,
 * "data: [DONE]" at the end), stream_options.include_usage for token
 * counts, response_format {type: json_schema} for structured output, and
 * "grammar" (llama.cpp's server extension) for a GBNF grammar. Health is
 * GET {url}/models; so is the model list. Works with llama.cpp's
 * llama-server, vLLM and OpenRouter (url .../v1 as they document it).
 *
 * Owns nothing beyond the request it builds; the SSE parser state lives on
 * the stack of one call. The sampling fields, the POST and the reply's
 * metadata are shared with the Ollama backend (llm_stream.c).
 */
#include "llm/llm_int.h"

#include "core/err.h"
#include "core/json.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_URL "http://127.0.0.1:8080/v1"

static const char *base_url(const struct llm_backend *b)
{
	return b->opt.url ? b->opt.url : DEFAULT_URL;
}

static int openai_init(struct llm_backend *b)
{
	(void)b;
	return llm_http_global_init();
}

static void openai_fini(struct llm_backend *b)
{
	(void)b;
}

/* Builds the request body; a new reference or NULL with a detail. */
static json_t *build_body(const struct llm_message *msgs, size_t n, const struct llm_params *p,
			  const char *model)
{
	json_t *messages = llm_messages_json(msgs, n);
	if (!messages)
		return NULL;
	json_t *body = json_pack("{s:s, s:o, s:b, s:{s:b}}", "model", model, "messages", messages,
				 "stream", 1, "stream_options", "include_usage", 1);
	if (!body) {
		tk_errf(TK_EINVAL, "openai: model name is not valid UTF-8");
		return NULL;
	}
	if (llm_body_set_sampling(body, p, "max_tokens", "openai")) {
		json_decref(body);
		return NULL;
	}
	int bad = 0;
	if (p->grammar) {
		json_t *g = json_string(p->grammar);
		if (!g) {
			json_decref(body);
			tk_errf(TK_EINVAL, "openai: grammar is not valid UTF-8");
			return NULL;
		}
		bad |= json_object_set_new(body, "grammar", g);
	}
	if (p->json_schema) {
		json_t *schema;
		if (llm_schema_parse(p, "openai", &schema)) {
			json_decref(body);
			return NULL;
		}
		json_t *rf = json_pack("{s:s, s:{s:s, s:o, s:b}}", "type", "json_schema",
				       "json_schema", "name", "reply", "schema", schema, "strict", 1);
		bad |= json_object_set_new(body, "response_format", rf);
	}
	if (bad) {
		json_decref(body);
		tk_errf(TK_ENOMEM, "openai: out of memory building the request");
		return NULL;
	}
	return body;
}

/* SSE parser state of one call. */
struct sse {
	struct llm_stream st;   /* text, finish, usage, model */
	bool done;              /* saw data: [DONE] */
	struct tk_buf data;     /* data of the event being read (multi-line) */
};

static int sse_event(struct sse *s)
{
	const char *d = s->data.data ? s->data.data : "";
	size_t len = s->data.len;
	if (!len)
		return 0;
	if (len == 6 && !memcmp(d, "[DONE]", 6)) {
		s->done = true;
		return 0;
	}
	json_error_t e;
	json_t *j = json_loadb(d, len, 0, &e);
	if (!json_is_object(j)) {
		json_decref(j);
		return tk_errf(TK_EFORMAT, "openai: malformed stream event (not a JSON object): "
			       "%.80s", d);
	}
	int rc = 0;
	json_t *err = json_object_get(j, "error");
	if (err) {
		const char *m = json_is_string(err) ? json_string_value(err)
						    : tk_json_get_str(err, "message", "?");
		rc = tk_errf(TK_EIO, "openai: the server reported an error mid-stream: %.300s", m);
		goto out;
	}
	llm_stream_note_model(&s->st, j);
	json_t *usage = json_object_get(j, "usage");
	if (json_is_object(usage)) {
		s->st.prompt_tokens = tk_json_get_int(usage, "prompt_tokens", s->st.prompt_tokens);
		s->st.completion_tokens = tk_json_get_int(usage, "completion_tokens",
							  s->st.completion_tokens);
	}
	json_t *choices = json_object_get(j, "choices");
	if (choices && !json_is_array(choices)) {
		rc = tk_errf(TK_EFORMAT, "openai: stream event: choices is not an array");
		goto out;
	}
	json_t *c0 = json_array_get(choices, 0);
	if (c0) {
		json_t *delta = json_object_get(c0, "delta");
		json_t *content = json_object_get(delta, "content");
		if (content && !json_is_string(content) && !json_is_null(content)) {
			rc = tk_errf(TK_EFORMAT, "openai: stream event: delta.content is %s, "
				     "not a string", tk_json_type_name(content));
			goto out;
		}
		if (json_is_string(content) &&
		    (rc = llm_acc_push(&s->st.acc, json_string_value(content),
				       json_string_length(content))))
			goto out;
		const char *fr = tk_json_get_str(c0, "finish_reason", NULL);
		if (fr)
			s->st.finish = llm_finish_parse(fr);
	}
out:
	json_decref(j);
	return rc;
}

static int sse_line(void *ud, const char *line, size_t len)
{
	struct sse *s = ud;
	if (!len) { /* blank line: end of one event */
		int rc = sse_event(s);
		tk_buf_reset(&s->data);
		return rc;
	}
	if (line[0] == ':') /* comment / keep-alive */
		return 0;
	if (len >= 5 && !memcmp(line, "data:", 5)) {
		const char *v = line + 5;
		size_t n = len - 5;
		if (n && *v == ' ')
			v++, n--;
		int rc = 0;
		if (s->data.len)
			rc = tk_buf_putc(&s->data, '\n');
		if (!rc)
			rc = tk_buf_append(&s->data, v, n);
		if (rc)
			return tk_errf(TK_ELIMIT, "openai: a stream event exceeds %u bytes",
				       LLM_LINE_MAX);
		/* Servers put one JSON per data line and often no blank line
		 * after [DONE]: handle a complete event at once. */
		if (s->data.len == 6 && !memcmp(s->data.data, "[DONE]", 6)) {
			s->done = true;
			tk_buf_reset(&s->data);
		}
		return 0;
	}
	/* event:, id:, retry: fields carry nothing we use. */
	if ((len >= 6 && !memcmp(line, "event:", 6)) || (len >= 3 && !memcmp(line, "id:", 3)) ||
	    (len >= 6 && !memcmp(line, "retry:", 6)))
		return 0;
	return tk_errf(TK_EFORMAT, "openai: malformed stream line: %.80s", line);
}

static bool sse_done(void *ud)
{
	struct sse *s = ud;
	/* A last event without its blank line. */
	if (s->data.len && !s->done) {
		if (sse_event(s))
			return false;
		tk_buf_reset(&s->data);
	}
	return s->done;
}

static void sse_reset(void *ud)
{
	struct sse *s = ud;
	llm_stream_reset(&s->st);
	tk_buf_reset(&s->data);
	s->done = false;
}

static int openai_chat(struct llm_backend *b, const struct llm_message *msgs, size_t n,
		       const struct llm_params *p, llm_token_cb cb, void *ud,
		       const atomic_bool *cancel, struct llm_result *out)
{
	const char *model;
	int rc = llm_pick_model(b, p, &model);
	if (rc)
		return rc;
	json_t *body = build_body(msgs, n, p, model);
	if (!body)
		return tk_err_last() ? tk_err_last() : TK_EINVAL;
	struct sse s;
	memset(&s, 0, sizeof s);
	llm_acc_init(&s.st.acc, b, cb, ud);
	tk_buf_init(&s.data, LLM_LINE_MAX);
	sse_reset(&s);
	const struct llm_stream_parser ps = { .on_line = sse_line, .is_done = sse_done,
					      .on_retry = sse_reset, .ud = &s };
	rc = llm_stream_post(b, base_url(b), "/chat/completions", body, &s.st, &ps, cancel, out);
	json_decref(body);
	tk_buf_free(&s.data);
	llm_acc_free(&s.st.acc);
	return rc;
}

static int get_models(struct llm_backend *b, json_t **out)
{
	*out = NULL;
	struct tk_buf url = TK_BUF_INIT(8192);
	int rc = llm_url_join(&url, base_url(b), "/models");
	if (!rc)
		rc = llm_http_get_json(b, "openai", url.data, out);
	tk_buf_free(&url);
	return rc;
}

static int openai_health(struct llm_backend *b)
{
	json_t *j = NULL;
	int rc = get_models(b, &j);
	json_decref(j);
	return rc;
}

static int openai_list_models(struct llm_backend *b, char ***names, size_t *n)
{
	json_t *j = NULL;
	int rc = get_models(b, &j);
	if (rc)
		return rc;
	rc = llm_models_collect(json_object_get(j, "data"), "id", "openai: /models", names, n);
	json_decref(j);
	return rc;
}

const struct llm_backend_ops llm_openai_ops = {
	.name = "openai",
	.init = openai_init,
	.chat = openai_chat,
	.health = openai_health,
	.list_models = openai_list_models,
	.fini = openai_fini,
};
