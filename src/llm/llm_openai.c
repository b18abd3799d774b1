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
 * the stack of one call.
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
	const struct llm_sampling *s = &p->sampling;
	int bad = 0;
	if (s->temperature >= 0)
		bad |= json_object_set_new(body, "temperature", json_real(s->temperature));
	if (s->top_p > 0)
		bad |= json_object_set_new(body, "top_p", json_real(s->top_p));
	if (s->top_k > 0) /* an extension llama.cpp and vLLM accept */
		bad |= json_object_set_new(body, "top_k", json_integer(s->top_k));
	if (s->repeat_penalty > 0)
		bad |= json_object_set_new(body, "repeat_penalty", json_real(s->repeat_penalty));
	if (p->max_tokens > 0)
		bad |= json_object_set_new(body, "max_tokens", json_integer(p->max_tokens));
	if (p->has_seed)
		bad |= json_object_set_new(body, "seed", json_integer((json_int_t)(p->seed &
										 INT64_MAX)));
	if (p->n_stop) {
		json_t *stop = json_array();
		for (size_t i = 0; stop && i < p->n_stop; i++)
			if (json_array_append_new(stop, json_string(p->stop[i])))
				bad = 1;
		bad |= json_object_set_new(body, "stop", stop);
	}
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
		if (tk_json_parse(p->json_schema, strlen(p->json_schema), 1u << 20, &schema)) {
			json_decref(body);
			tk_err_wrap(TK_EINVAL, "openai: json_schema");
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
	struct llm_acc acc;
	bool done;              /* saw data: [DONE] */
	bool finished;          /* saw a finish_reason */
	enum llm_finish finish;
	int64_t prompt_tokens, completion_tokens;
	char model[256];
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
	const char *model = tk_json_get_str(j, "model", NULL);
	if (model && !s->model[0])
		snprintf(s->model, sizeof s->model, "%s", model);
	json_t *usage = json_object_get(j, "usage");
	if (json_is_object(usage)) {
		s->prompt_tokens = tk_json_get_int(usage, "prompt_tokens", s->prompt_tokens);
		s->completion_tokens = tk_json_get_int(usage, "completion_tokens",
						       s->completion_tokens);
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
		    (rc = llm_acc_push(&s->acc, json_string_value(content),
				       json_string_length(content))))
			goto out;
		const char *fr = tk_json_get_str(c0, "finish_reason", NULL);
		if (fr) {
			s->finished = true;
			s->finish = llm_finish_parse(fr);
		}
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
	tk_buf_reset(&s->acc.text);
	tk_buf_reset(&s->data);
	s->done = s->finished = false;
	s->finish = LLM_FINISH_STOP;
	s->prompt_tokens = s->completion_tokens = -1;
	s->model[0] = '\0';
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
	struct tk_buf url = TK_BUF_INIT(8192), req = TK_BUF_INIT(b->opt.max_response_bytes * 2);
	struct sse s;
	memset(&s, 0, sizeof s);
	llm_acc_init(&s.acc, b, cb, ud);
	tk_buf_init(&s.data, LLM_LINE_MAX);
	sse_reset(&s);
	if ((rc = llm_url_join(&url, base_url(b), "/chat/completions")))
		goto out;
	if ((rc = tk_json_dump(body, false, &req))) {
		rc = tk_errf(rc, "openai: request too large");
		goto out;
	}
	struct llm_http_req rq = {
		.who = "openai", .method = "POST", .url = url.data, .body = req.data,
		.api_key = b->opt.api_key, .retry = true, .on_line = sse_line, .ud = &s,
		.committed = &s.acc.committed, .on_retry = sse_reset, .cancel = cancel,
		.is_done = sse_done,
	};
	struct llm_http_stats st;
	rc = llm_http_call(b, &rq, &st);
	out->attempts = st.attempts;
	out->timings.queue_ms = st.queue_ms;
	if (rc)
		goto out;
	out->finish = s.finished ? s.finish : LLM_FINISH_STOP;
	out->usage.prompt_tokens = s.prompt_tokens;
	out->usage.completion_tokens = s.completion_tokens;
	if (s.model[0] && !(out->model = strdup(s.model))) {
		rc = tk_errf(TK_ENOMEM, "openai: out of memory");
		goto out;
	}
	rc = llm_acc_finish(&s.acc, out);
out:
	json_decref(body);
	tk_buf_free(&url);
	tk_buf_free(&req);
	tk_buf_free(&s.data);
	llm_acc_free(&s.acc);
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
