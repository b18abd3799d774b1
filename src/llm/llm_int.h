/*
 * llm_int.h — private to src/llm/: the backend function table, the backend
 * struct, and the HTTP transport the remote backends share (llm_http.c).
 */
#ifndef TK_LLM_LLM_INT_H
#define TK_LLM_LLM_INT_H

#include "llm/llm.h"

#include <jansson.h>
#include <pthread.h>

#include "core/buf.h"

struct llm_backend_ops {
	const char *name;
	/* Builds b->impl from b->opt (strings there are already copies). */
	int (*init)(struct llm_backend *b);
	/* Fills out (already zeroed, usage -1, ttft -1); timings.total_ms and
	 * the metrics are done by llm_chat. May call cb. */
	int (*chat)(struct llm_backend *b, const struct llm_message *msgs, size_t n,
		    const struct llm_params *p, llm_token_cb cb, void *ud,
		    const atomic_bool *cancel, struct llm_result *out);
	int (*health)(struct llm_backend *b);
	int (*list_models)(struct llm_backend *b, char ***names, size_t *n);
	void (*fini)(struct llm_backend *b); /* frees b->impl */
};

extern const struct llm_backend_ops llm_openai_ops;
extern const struct llm_backend_ops llm_ollama_ops;
extern const struct llm_backend_ops llm_scripted_ops;
extern const struct llm_backend_ops llm_embedded_ops;

/* Circuit breaker state; guarded by mu. */
struct llm_breaker {
	pthread_mutex_t mu;
	int32_t failures;     /* consecutive failed calls */
	int64_t open_until_ns; /* monotonic; 0 when closed */
	bool trial;           /* a half-open trial call is in flight */
};

struct llm_probe;

struct llm_backend {
	const struct llm_backend_ops *ops;
	struct llm_options opt;   /* strings owned (copies) */
	json_t *adapter_models;   /* owned, object or NULL */
	void *impl;               /* the backend's own state */
	struct llm_breaker breaker;
	struct llm_probe *probe;  /* NULL when no probe loop runs */
	struct tk_series *up;     /* tanuki_backend_up{backend} */
};

/* The model to ask for: params->model, else the adapter's mapped model,
 * else opt.model. TK_EINVAL when an adapter has no mapping or no model is
 * known at all. *out is borrowed. */
int llm_pick_model(const struct llm_backend *b, const struct llm_params *p, const char **out);

/* Maps a finish reason string of a server to the enum. */
enum llm_finish llm_finish_parse(const char *s);

/* True when *cancel is set. */
bool llm_cancelled(const atomic_bool *cancel);

/* Joins a base URL and a path ("/chat/completions"), dropping a trailing
 * slash of the base. Appends to out. */
int llm_url_join(struct tk_buf *out, const char *base, const char *path);

/* The string member `field` of every object in arr (a model list answer),
 * as malloc'd names for list_models (free with llm_models_free); objects
 * without it are skipped. who prefixes errors. 0, TK_EFORMAT (arr is not an
 * array) or TK_ENOMEM. */
int llm_models_collect(const json_t *arr, const char *field, const char *who,
		       char ***names, size_t *n);

/* Reply text being streamed: appended (capped at the backend's
 * max_response_bytes) and handed to the caller's callback. */
struct llm_acc {
	struct tk_buf text;
	llm_token_cb cb;
	void *ud;
	bool committed;   /* some text went to cb: no more retries */
	const char *who;
};

void llm_acc_init(struct llm_acc *a, const struct llm_backend *b, llm_token_cb cb, void *ud);
/* 0, TK_ELIMIT (cap) or TK_ECANCELED (the callback asked to stop). */
int llm_acc_push(struct llm_acc *a, const char *s, size_t n);
/* Moves the text into r (r->text, r->text_len). 0 or TK_ENOMEM. */
int llm_acc_finish(struct llm_acc *a, struct llm_result *r);
void llm_acc_free(struct llm_acc *a);

/* [{"role":..,"content":..}, ...] as a new reference, or NULL (TK_ENOMEM). */
json_t *llm_messages_json(const struct llm_message *msgs, size_t n);

/* ---- HTTP transport (llm_http.c) ---- */

/* Called with each complete line of a 2xx body (no '\n', no trailing
 * '\r'); return 0 to go on or a negative TK_E* to stop the transfer (that
 * code is returned by llm_http_call, not retried). */
typedef int (*llm_http_line_fn)(void *ud, const char *line, size_t len);

struct llm_http_req {
	const char *who;        /* "openai", for error details */
	const char *method;     /* "GET" or "POST" */
	const char *url;
	const char *body;       /* POST body (JSON), or NULL */
	const char *api_key;    /* Bearer token or NULL; never logged */
	bool retry;             /* apply the retry policy */
	llm_http_line_fn on_line;
	void *ud;
	/* Retries are only allowed while *committed is false (no text handed
	 * to the caller yet). NULL: always allowed. */
	const bool *committed;
	/* Called before each retry so the parser can forget a partial
	 * attempt; may be NULL. */
	void (*on_retry)(void *ud);
	const atomic_bool *cancel;
	/* A body whose lines all went through on_line is complete only when
	 * the parser says so: is_done() false at the end is a cut stream
	 * (retryable). NULL: any clean end is complete. */
	bool (*is_done)(void *ud);
};

struct llm_http_stats {
	int32_t attempts;
	double queue_ms; /* time spent in backoff before the last attempt */
	long status;     /* last HTTP status, 0 if none */
};

/* Performs the request with b's timeouts, retry policy and circuit breaker
 * (when rq->retry). 0 when a 2xx body was read completely, else a TK_E*
 * with a detail. */
int llm_http_call(struct llm_backend *b, const struct llm_http_req *rq, struct llm_http_stats *st);

/* One-shot GET of a small JSON document (no retries, no breaker); *out
 * gets a new reference. */
int llm_http_get_json(struct llm_backend *b, const char *who, const char *url, json_t **out);

/* Process-wide libcurl initialisation (idempotent, thread-safe). */
int llm_http_global_init(void);

/* ---- streamed chat calls of the remote backends (llm_stream.c) ---- */

/* Sets the sampling fields both HTTP APIs name alike (temperature, top_p,
 * top_k, repeat_penalty, seed, stop) on obj, and p->max_tokens under
 * max_tokens_key ("max_tokens", Ollama's "num_predict"); unset parameters
 * are left out. obj and p are borrowed. 0 or TK_ENOMEM naming who. */
int llm_body_set_sampling(json_t *obj, const struct llm_params *p, const char *max_tokens_key,
			  const char *who);

/* p->json_schema parsed (at most 1 MiB) into *out (a new reference). 0 or
 * TK_EINVAL naming who. */
int llm_schema_parse(const struct llm_params *p, const char *who, json_t **out);

/* A streamed reply as a backend's parser fills it: the text, and what the
 * server said about it. The parser's state embeds one. */
struct llm_stream {
	struct llm_acc acc;
	enum llm_finish finish;                   /* LLM_FINISH_STOP unless told */
	int64_t prompt_tokens, completion_tokens; /* -1: not reported */
	char model[256];                          /* the first model name seen */
};

/* Forgets a partial attempt (before the first and before each retry); the
 * acc must have been initialised (llm_acc_init). */
void llm_stream_reset(struct llm_stream *s);

/* Keeps event's string "model" when none is kept yet. event is borrowed. */
void llm_stream_note_model(struct llm_stream *s, const json_t *event);

/* A backend's wire-format parser for llm_stream_post: lines go to on_line;
 * is_done says whether the stream ended properly; on_retry forgets a
 * partial attempt (it should call llm_stream_reset). ud is the parser
 * state, which holds the llm_stream. */
struct llm_stream_parser {
	llm_http_line_fn on_line;
	bool (*is_done)(void *ud);
	void (*on_retry)(void *ud);
	void *ud;
};

/* POSTs body (serialized, capped at twice max_response_bytes) to base_url
 * + path with b's key, retry policy (while no text was handed on) and
 * cancel flag, the reply read by ps; then fills out: attempts, queue time,
 * and on success finish, usage, model (a copy) and the text (moved out of
 * s->acc). body, s and ps are borrowed; the caller frees s->acc. 0 or the
 * call's TK_E*. */
int llm_stream_post(struct llm_backend *b, const char *base_url, const char *path, json_t *body,
		    struct llm_stream *s, const struct llm_stream_parser *ps,
		    const atomic_bool *cancel, struct llm_result *out);

#endif
