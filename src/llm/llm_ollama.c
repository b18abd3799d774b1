/*
 * llm_ollama.c — the Ollama backend: POST {url}/api/chat with "stream":
 * true, read as NDJSON (one JSON object per line, the last with "done":
 * true and the counts eval_count / prompt_eval_count and durations in ns),
 * "format" set to the JSON schema for structured output, sampling in
 * "options" (temperature, top_p, top_k, repeat_penalty, seed, num_predict,
 * num_ctx, stop) and "keep_alive". Health is GET / then GET /api/tags; the
 * model list comes from /api/tags. Ollama has no GBNF grammar input, so a
 * grammar is TK_EUNSUPPORTED. An adapter maps to an Ollama model (one made
 * from a Modelfile with ADAPTER) through llm.adapter_models. The sampling
 * fields, the POST and the reply's metadata are shared with the OpenAI
 * backend (llm_stream.c).
 */
#include "llm/llm_int.h"

#include "core/err.h"
#include "core/json.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_URL "http://127.0.0.1:11434"

static const char *base_url(const struct llm_backend *b)
{
	return b->opt.url ? b->opt.url : DEFAULT_URL;
}

static int ollama_init(struct llm_backend *b)
{
	(void)b;
	return llm_http_global_init();
}

static void ollama_fini(struct llm_backend *b)
{
	(void)b;
}

static json_t *build_body(const struct llm_backend *b, const struct llm_message *msgs, size_t n,
			  const struct llm_params *p, const char *model)
{
	json_t *messages = llm_messages_json(msgs, n);
	if (!messages)
		return NULL;
	json_t *body = json_pack("{s:s, s:o, s:b}", "model", model, "messages", messages,
				 "stream", 1);
	json_t *opts = json_object();
	if (!body || !opts) {
		json_decref(body);
		json_decref(opts);
		tk_errf(TK_EINVAL, "ollama: model name is not valid UTF-8 (or out of memory)");
		return NULL;
	}
	/* options owns the sampling fields; body owns options from here */
	int bad = json_object_set_new(body, "options", opts);
	if (bad || llm_body_set_sampling(opts, p, "num_predict", "ollama")) {
		json_decref(body);
		if (bad)
			tk_errf(TK_ENOMEM, "ollama: out of memory building the request");
		return NULL;
	}
	if (b->opt.num_ctx > 0)
		bad |= json_object_set_new(opts, "num_ctx", json_integer(b->opt.num_ctx));
	if (b->opt.keep_alive)
		bad |= json_object_set_new(body, "keep_alive", json_string(b->opt.keep_alive));
	if (p->json_schema) {
		json_t *schema;
		if (llm_schema_parse(p, "ollama", &schema)) {
			json_decref(body);
			return NULL;
		}
		bad |= json_object_set_new(body, "format", schema);
	}
	if (bad) {
		json_decref(body);
		tk_errf(TK_ENOMEM, "ollama: out of memory building the request");
		return NULL;
	}
	return body;
}

/* NDJSON parser state of one call. */
struct nd {
	struct llm_stream st; /* text, finish, usage, model */
	bool done;
};

static int nd_line(void *ud, const char *line, size_t len)
{
	struct nd *s = ud;
	if (!len)
		return 0;
	if (s->done)
		return tk_errf(TK_EFORMAT, "ollama: data after the final (done) line");
	json_error_t e;
	json_t *j = json_loadb(line, len, 0, &e);
	if (!json_is_object(j)) {
		json_decref(j);
		return tk_errf(TK_EFORMAT, "ollama: malformed stream line (not a JSON object): %.80s",
			       line);
	}
	int rc = 0;
	json_t *err = json_object_get(j, "error");
	if (err) {
		rc = tk_errf(TK_EIO, "ollama: the server reported an error mid-stream: %.300s",
			     json_is_string(err) ? json_string_value(err) : "?");
		goto out;
	}
	llm_stream_note_model(&s->st, j);
	json_t *msg = json_object_get(j, "message");
	json_t *content = json_object_get(msg, "content");
	if (msg && (!json_is_object(msg) || (content && !json_is_string(content)))) {
		rc = tk_errf(TK_EFORMAT, "ollama: stream line: message.content is not a string");
		goto out;
	}
	if (content && (rc = llm_acc_push(&s->st.acc, json_string_value(content),
					  json_string_length(content))))
		goto out;
	json_t *done = json_object_get(j, "done");
	if (done && !json_is_boolean(done)) {
		rc = tk_errf(TK_EFORMAT, "ollama: stream line: done is not a boolean");
		goto out;
	}
	if (json_is_true(done)) {
		s->done = true;
		const char *reason = tk_json_get_str(j, "done_reason", "stop");
		s->st.finish = llm_finish_parse(reason);
		s->st.prompt_tokens = tk_json_get_int(j, "prompt_eval_count", -1);
		s->st.completion_tokens = tk_json_get_int(j, "eval_count", -1);
	}
out:
	json_decref(j);
	return rc;
}

static bool nd_done(void *ud)
{
	return ((struct nd *)ud)->done;
}

static void nd_reset(void *ud)
{
	struct nd *s = ud;
	llm_stream_reset(&s->st);
	s->done = false;
}

static int ollama_chat(struct llm_backend *b, const struct llm_message *msgs, size_t n,
		       const struct llm_params *p, llm_token_cb cb, void *ud,
		       const atomic_bool *cancel, struct llm_result *out)
{
	if (p->grammar)
		return tk_errf(TK_EUNSUPPORTED, "ollama: GBNF grammars are not supported by "
			       "Ollama; use json_schema");
	const char *model;
	int rc = llm_pick_model(b, p, &model);
	if (rc)
		return rc;
	json_t *body = build_body(b, msgs, n, p, model);
	if (!body)
		return tk_err_last() ? tk_err_last() : TK_EINVAL;
	struct nd s;
	memset(&s, 0, sizeof s);
	llm_acc_init(&s.st.acc, b, cb, ud);
	nd_reset(&s);
	const struct llm_stream_parser ps = { .on_line = nd_line, .is_done = nd_done,
					      .on_retry = nd_reset, .ud = &s };
	rc = llm_stream_post(b, base_url(b), "/api/chat", body, &s.st, &ps, cancel, out);
	json_decref(body);
	llm_acc_free(&s.st.acc);
	return rc;
}

static int get_tags(struct llm_backend *b, json_t **out)
{
	*out = NULL;
	struct tk_buf url = TK_BUF_INIT(8192);
	int rc = llm_url_join(&url, base_url(b), "/api/tags");
	if (!rc)
		rc = llm_http_get_json(b, "ollama", url.data, out);
	tk_buf_free(&url);
	if (!rc && !json_is_array(json_object_get(*out, "models"))) {
		json_decref(*out);
		*out = NULL;
		rc = tk_errf(TK_EFORMAT, "ollama: /api/tags: no models array");
	}
	return rc;
}

static int ignore_line(void *ud, const char *line, size_t len)
{
	(void)ud, (void)line, (void)len;
	return 0;
}

static int ollama_health(struct llm_backend *b)
{
	/* GET / answers "Ollama is running"; /api/tags proves the API works. */
	struct tk_buf url = TK_BUF_INIT(8192);
	int rc = llm_url_join(&url, base_url(b), "/");
	if (!rc) {
		struct llm_http_req rq = { .who = "ollama", .method = "GET", .url = url.data,
					   .on_line = ignore_line };
		struct llm_http_stats st;
		rc = llm_http_call(b, &rq, &st);
	}
	tk_buf_free(&url);
	if (rc)
		return rc;
	json_t *j = NULL;
	rc = get_tags(b, &j);
	json_decref(j);
	return rc;
}

static int ollama_list_models(struct llm_backend *b, char ***names, size_t *n)
{
	json_t *j = NULL;
	int rc = get_tags(b, &j);
	if (rc)
		return rc;
	/* get_tags has checked that "models" is an array. */
	rc = llm_models_collect(json_object_get(j, "models"), "name", "ollama: /api/tags", names, n);
	json_decref(j);
	return rc;
}

const struct llm_backend_ops llm_ollama_ops = {
	.name = "ollama",
	.init = ollama_init,
	.chat = ollama_chat,
	.health = ollama_health,
	.list_models = ollama_list_models,
	.fini = ollama_fini,
};
