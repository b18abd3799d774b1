/*
 * llm.h — the llm_backend interface: one way for agents to talk to a
 * language model, whether it answers from a scripted file, from Ollama or
 * from an OpenAI-compatible server (llama.cpp's llama-server, vLLM,
 * OpenRouter), or from Tanuki's own engine in-process (embedded).
 *
 * A backend is a table of function pointers (struct llm_backend_ops, one per
 * file llm_<name>.c) behind an opaque struct llm_backend. Which backend runs
 * is configuration only (llm.backend and friends, see llm_options_from_config
 * and docs/llm.md); callers never name one in code.
 *
 *   struct llm_backend *b = llm_backend_from_config(cfg);
 *   struct llm_params p; llm_params_default(&p);
 *   p.max_tokens = 256;
 *   struct llm_result r;
 *   int rc = llm_chat(b, msgs, n, &p, on_token, ud, &cancel, &r);
 *   ... r.text ...
 *   llm_result_free(&r);
 *   llm_backend_free(b);
 *
 * Invariants and contracts:
 *   - llm_chat returns 0 with *out filled, or a negative TK_E* with *out
 *     zeroed and a detail naming the backend and what failed
 *     ("openai: http://h/v1/chat/completions: HTTP 401: invalid key"). The
 *     callback may have seen part of the text before an error.
 *   - Remote backends retry 429, 5xx, connection errors and cut streams with
 *     exponential backoff and jitter, but only while no token has been handed
 *     to the callback: a reply is never streamed twice. After
 *     breaker_failures consecutive failed calls a circuit breaker fails calls
 *     fast (TK_EBUSY) for breaker_cooldown_ms, then lets one trial through.
 *   - Error codes: TK_ETIMEOUT (connect/read/total deadline), TK_EBUSY (429
 *     after retries, or the breaker is open), TK_EIO (5xx, connection
 *     refused or cut), TK_EPERM (401/403), TK_ENOENT (404, unknown model),
 *     TK_EINVAL (400 or bad params), TK_EFORMAT (malformed reply),
 *     TK_ELIMIT (reply over max_response_bytes), TK_ECANCELED (cancel flag
 *     or callback), TK_EUNSUPPORTED (a feature the backend lacks, e.g. a
 *     grammar on Ollama).
 *   - The API key is never logged nor put in an error detail; it is
 *     registered with the logger's redaction when the backend is made.
 *   - Every reply is capped (max_response_bytes; one stream line at most
 *     LLM_LINE_MAX bytes).
 *
 * Threads: a backend may be shared by any number of threads; llm_chat,
 * llm_health and llm_list_models may run concurrently (each call owns its
 * own connection; the breaker and scripted turn counters are locked).
 * llm_backend_free must not race with anything else on that backend.
 */
#ifndef TK_LLM_LLM_H
#define TK_LLM_LLM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_t;
struct tk_config;
struct tk_registry;

#define LLM_LINE_MAX (1u << 20)               /* one SSE/NDJSON line */
#define LLM_RESPONSE_MAX_DEFAULT (8u << 20)   /* bytes of one reply body */
#define LLM_MAX_MESSAGES 4096
#define LLM_MAX_STOP 16

/* One chat turn. Both strings borrowed for the call; role is "system",
 * "user", "assistant" (or "tool"; passed through to remote backends). */
struct llm_message {
	const char *role;
	const char *content; /* NULL is "" */
};

/* Sampling; a negative value (or 0 for top_k) means "the backend's
 * default" and is not sent. */
struct llm_sampling {
	double temperature;    /* >= 0 */
	double top_p;          /* (0, 1] */
	int32_t top_k;         /* > 0 */
	double repeat_penalty; /* > 0 */
};

struct llm_params {
	const char *model;       /* NULL: the configured llm.model */
	const char *adapter;     /* NULL: none; mapped to a model name by
				  * llm.adapter_models for remote backends;
				  * embedded: a file in llm.adapter_dir */
	const char *agent;       /* who asks (metrics label is not this; the
				  * scripted backend matches on it); NULL ok */
	int32_t turn;            /* scripted: the turn to replay; < 0: the
				  * agent's next turn (per-backend counter) */
	struct llm_sampling sampling;
	int32_t max_tokens;      /* > 0; 0: backend default */
	const char *const *stop; /* stop strings, n_stop <= LLM_MAX_STOP */
	size_t n_stop;
	const char *json_schema; /* JSON Schema text the reply must satisfy, or
				  * NULL; exclusive with grammar */
	const char *grammar;     /* GBNF grammar text, or NULL */
	bool has_seed;
	uint64_t seed;
};

/* Fills p with: every pointer NULL, turn -1, sampling "backend default",
 * max_tokens 0, no seed. */
void llm_params_default(struct llm_params *p);

enum llm_finish {
	LLM_FINISH_STOP,    /* natural end or a stop string */
	LLM_FINISH_LENGTH,  /* max_tokens */
	LLM_FINISH_CONTEXT, /* the context window is full */
	LLM_FINISH_OTHER,   /* a reason the server gave that we don't know
			     * (content_filter, tool_calls, ...) */
};

/* "stop", "length", "context", "other". */
const char *llm_finish_name(enum llm_finish f);

struct llm_usage {
	int64_t prompt_tokens;     /* -1 when the backend did not say */
	int64_t completion_tokens; /* -1 when the backend did not say */
};

struct llm_timings {
	double queue_ms; /* waiting for a slot/the breaker/retries before the
			  * attempt that answered */
	double ttft_ms;  /* call start to the first streamed text; -1 if none */
	double total_ms; /* call start to the end */
};

struct llm_result {
	char *text;           /* owned, NUL-terminated; the whole reply */
	size_t text_len;
	enum llm_finish finish;
	struct llm_usage usage;
	struct llm_timings timings;
	char *model;          /* owned: the model that answered (as the server
			       * named it, else the one asked for) */
	int32_t attempts;     /* HTTP attempts made (1 = no retry) */
};

/* Frees the result's strings (the struct is the caller's). NULL ok. */
void llm_result_free(struct llm_result *r);

/* Streaming: text[0..len) is the next piece of the reply (borrowed for the
 * call). Return 0 to go on, non-zero to cancel (llm_chat then returns
 * TK_ECANCELED). Runs on the calling thread. */
typedef int (*llm_token_cb)(void *ud, const char *text, size_t len);

/* Everything a backend is built from. Strings are copied by
 * llm_backend_new. */
struct llm_options {
	const char *backend;         /* "openai", "ollama", "embedded",
				      * "scripted" */
	const char *url;             /* base URL; NULL/"": the backend's default
				      * (openai: http://127.0.0.1:8080/v1,
				      * ollama: http://127.0.0.1:11434) */
	const char *api_key;         /* openai: Bearer token; NULL/"": none */
	const char *model;           /* default model name; embedded: the
				      * path of the GGUF file */
	const char *script;          /* scripted: path of the script file */
	const struct json_t *adapter_models; /* object adapter -> model name,
				      * or NULL (borrowed; copied by
				      * llm_backend_new) */
	const char *keep_alive;      /* ollama: keep_alive ("5m"); NULL: unset */
	int32_t num_ctx;             /* ollama: options.num_ctx; 0: unset */
	int64_t connect_timeout_ms;  /* TCP connect; default 5000 */
	int64_t read_timeout_ms;     /* longest silence while reading; 60000 */
	int64_t request_timeout_ms;  /* whole call, retries included; 0: none */
	int32_t max_retries;         /* extra attempts; default 3 */
	int64_t backoff_ms;          /* first backoff; doubles; default 500 */
	int64_t backoff_max_ms;      /* cap of one backoff; default 8000 */
	int32_t breaker_failures;    /* consecutive failed calls that open the
				      * breaker; 0 disables; default 5 */
	int64_t breaker_cooldown_ms; /* open time; default 30000 */
	size_t max_response_bytes;   /* default LLM_RESPONSE_MAX_DEFAULT */
	int32_t embedded_contexts;   /* embedded: sequences of the one shared
				      * context, i.e. calls decoded together in
				      * each batched pass; default 1 */
	int32_t embedded_n_ctx;      /* embedded: positions per sequence; 0:
				      * min(training context, 4096) */
	int32_t embedded_threads;    /* embedded: threads of the shared context;
				      * 0 (default): physical cores */
	const char *adapter_dir;     /* embedded: directory of <adapter>.gguf
				      * LoRA files; NULL: no adapters */
	uint64_t adapter_budget_bytes; /* embedded: resident adapter bytes; 0:
				      * unlimited */
	struct tk_registry *metrics; /* NULL: the default registry */
};

/* Documented defaults, every string NULL (backend NULL means "openai"). */
void llm_options_default(struct llm_options *o);

/* Fills o from the llm.* settings of c. Strings are borrowed from c (keep
 * c alive until llm_backend_new returned). */
void llm_options_from_config(const struct tk_config *c, struct llm_options *o);

struct llm_backend;

/* Makes a backend (it copies what it needs from o). NULL with TK_EINVAL
 * (unknown backend, bad URL or adapter map), TK_ENOENT/TK_EFORMAT (scripted
 * file) or TK_ENOMEM and a detail. No network traffic happens here. */
struct llm_backend *llm_backend_new(const struct llm_options *o);

/* llm_options_from_config + llm_backend_new. */
struct llm_backend *llm_backend_from_config(const struct tk_config *c);

void llm_backend_free(struct llm_backend *b); /* NULL ok */

/* "openai", "ollama", "embedded", "scripted". */
const char *llm_backend_name(const struct llm_backend *b);

/* One chat completion (see the contract at the top). msgs[0..n) and params
 * are borrowed for the call; params NULL means llm_params_default. cb and
 * cancel may be NULL; cancel is polled while waiting and between chunks.
 * Records the llm metrics (docs/llm.md). */
int llm_chat(struct llm_backend *b, const struct llm_message *msgs, size_t n,
	     const struct llm_params *params, llm_token_cb cb, void *ud,
	     const atomic_bool *cancel, struct llm_result *out);

/* Is the backend reachable and serving? 0 or a negative TK_E* with detail.
 * Sets tanuki_backend_up{backend} to 1 or 0. */
int llm_health(struct llm_backend *b);

/* The models the backend offers: *names gets a malloc'd array of *n
 * malloc'd strings (free with llm_models_free). 0 or TK_E*. */
int llm_list_models(struct llm_backend *b, char ***names, size_t *n);
void llm_models_free(char **names, size_t n); /* NULL ok */

/* Health probe loop: a thread calling llm_health every interval_ms (>= 10)
 * until llm_probe_stop. One probe per backend; the backend must outlive it.
 * 0, TK_ESTATE (already running), TK_EINVAL or TK_EIO. */
int llm_probe_start(struct llm_backend *b, int64_t interval_ms);
void llm_probe_stop(struct llm_backend *b); /* no-op when not running */

#endif
