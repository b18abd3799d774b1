/*
 * llm_stream.c — what the two remote backends (llm_openai.c, llm_ollama.c)
 * share around one streamed chat call: the sampling fields and JSON schema
 * of the request body, the reply's metadata (finish reason, token counts,
 * model name) and the POST itself (URL, body cap, retry hooks, copying the
 * result out). The wire formats — server-sent events, NDJSON — stay in the
 * backends. Owns nothing beyond one call; any thread may call.
 */
#include "llm/llm_int.h"

#include "core/err.h"
#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int llm_body_set_sampling(json_t *obj, const struct llm_params *p, const char *max_tokens_key,
			  const char *who)
{
	const struct llm_sampling *s = &p->sampling;
	int bad = 0;
	if (s->temperature >= 0)
		bad |= json_object_set_new(obj, "temperature", json_real(s->temperature));
	if (s->top_p > 0)
		bad |= json_object_set_new(obj, "top_p", json_real(s->top_p));
	if (s->top_k > 0) /* OpenAI's API lacks it; llama.cpp, vLLM and Ollama take it */
		bad |= json_object_set_new(obj, "top_k", json_integer(s->top_k));
	if (s->repeat_penalty > 0)
		bad |= json_object_set_new(obj, "repeat_penalty", json_real(s->repeat_penalty));
	if (p->max_tokens > 0)
		bad |= json_object_set_new(obj, max_tokens_key, json_integer(p->max_tokens));
	if (p->has_seed)
		bad |= json_object_set_new(obj, "seed",
					   json_integer((json_int_t)(p->seed & INT64_MAX)));
	if (p->n_stop) {
		json_t *stop = json_array();
		for (size_t i = 0; stop && i < p->n_stop; i++)
			if (json_array_append_new(stop, json_string(p->stop[i])))
				bad = 1;
		bad |= json_object_set_new(obj, "stop", stop);
	}
	return bad ? tk_errf(TK_ENOMEM, "%s: out of memory building the request (or a stop "
			     "string that is not valid UTF-8)", who) : 0;
}

int llm_schema_parse(const struct llm_params *p, const char *who, json_t **out)
{
	*out = NULL;
	if (tk_json_parse(p->json_schema, strlen(p->json_schema), 1u << 20, out))
		return tk_err_wrap(TK_EINVAL, "%s: json_schema", who);
	return 0;
}

void llm_stream_reset(struct llm_stream *s)
{
	tk_buf_reset(&s->acc.text);
	s->finish = LLM_FINISH_STOP;
	s->prompt_tokens = s->completion_tokens = -1;
	s->model[0] = '\0';
}

void llm_stream_note_model(struct llm_stream *s, const json_t *event)
{
	const char *model = tk_json_get_str(event, "model", NULL);
	if (model && !s->model[0])
		snprintf(s->model, sizeof s->model, "%s", model);
}

int llm_stream_post(struct llm_backend *b, const char *base_url, const char *path, json_t *body,
		    struct llm_stream *s, const struct llm_stream_parser *ps,
		    const atomic_bool *cancel, struct llm_result *out)
{
	const char *who = b->ops->name;
	struct tk_buf url = TK_BUF_INIT(8192), req = TK_BUF_INIT(b->opt.max_response_bytes * 2);
	int rc = llm_url_join(&url, base_url, path);
	if (rc)
		goto out;
	if ((rc = tk_json_dump(body, false, &req))) {
		rc = tk_errf(rc, "%s: request too large", who);
		goto out;
	}
	struct llm_http_req rq = {
		.who = who, .method = "POST", .url = url.data, .body = req.data,
		.api_key = b->opt.api_key, .retry = true, .on_line = ps->on_line, .ud = ps->ud,
		.committed = &s->acc.committed, .on_retry = ps->on_retry, .cancel = cancel,
		.is_done = ps->is_done,
	};
	struct llm_http_stats st;
	rc = llm_http_call(b, &rq, &st);
	out->attempts = st.attempts;
	out->timings.queue_ms = st.queue_ms;
	if (rc)
		goto out;
	out->finish = s->finish;
	out->usage.prompt_tokens = s->prompt_tokens;
	out->usage.completion_tokens = s->completion_tokens;
	if (s->model[0] && !(out->model = strdup(s->model))) {
		rc = tk_errf(TK_ENOMEM, "%s: out of memory", who);
		goto out;
	}
	rc = llm_acc_finish(&s->acc, out);
out:
	tk_buf_free(&url);
	tk_buf_free(&req);
	return rc;
}
