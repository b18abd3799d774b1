/*
 * llm.c — the backend-independent half of llm.h: options (defaults and
 * config), making and freeing backends, llm_chat's checks, timings and
 * metrics, health, model lists and the health probe thread.
 */
#include "llm/llm_int.h"

#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/time.h"
#include "obs/log.h"
#include "obs/metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct llm_backend_ops *const backends[] = {
	&llm_openai_ops,
	&llm_ollama_ops,
	&llm_embedded_ops,
	&llm_scripted_ops,
};

void llm_params_default(struct llm_params *p)
{
	memset(p, 0, sizeof *p);
	p->turn = -1;
	p->sampling.temperature = -1;
	p->sampling.top_p = -1;
	p->sampling.top_k = 0;
	p->sampling.repeat_penalty = -1;
}

const char *llm_finish_name(enum llm_finish f)
{
	switch (f) {
	case LLM_FINISH_STOP:
		return "stop";
	case LLM_FINISH_LENGTH:
		return "length";
	case LLM_FINISH_CONTEXT:
		return "context";
	case LLM_FINISH_OTHER:
		break;
	}
	return "other";
}

enum llm_finish llm_finish_parse(const char *s)
{
	if (!s || !strcmp(s, "stop") || !strcmp(s, "eos"))
		return LLM_FINISH_STOP;
	if (!strcmp(s, "length"))
		return LLM_FINISH_LENGTH;
	if (!strcmp(s, "context"))
		return LLM_FINISH_CONTEXT;
	return LLM_FINISH_OTHER;
}

void llm_result_free(struct llm_result *r)
{
	if (!r)
		return;
	free(r->text);
	free(r->model);
	r->text = NULL;
	r->model = NULL;
	r->text_len = 0;
}

bool llm_cancelled(const atomic_bool *cancel)
{
	return cancel && atomic_load_explicit(cancel, memory_order_relaxed);
}

int llm_url_join(struct tk_buf *out, const char *base, const char *path)
{
	size_t n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	int rc = tk_buf_append(out, base, n);
	if (!rc)
		rc = tk_buf_puts(out, path);
	return rc ? tk_errf(rc, "url: %s%s is too long", base, path) : 0;
}

void llm_options_default(struct llm_options *o)
{
	memset(o, 0, sizeof *o);
	o->connect_timeout_ms = 5000;
	o->read_timeout_ms = 60000;
	o->request_timeout_ms = 0;
	o->max_retries = 3;
	o->backoff_ms = 500;
	o->backoff_max_ms = 8000;
	o->breaker_failures = 5;
	o->breaker_cooldown_ms = 30000;
	o->max_response_bytes = LLM_RESPONSE_MAX_DEFAULT;
	o->embedded_contexts = 1;
	o->embedded_n_ctx = 0;
	o->embedded_threads = 0; /* engine_default_threads() */
}

static const char *nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

void llm_options_from_config(const struct tk_config *c, struct llm_options *o)
{
	llm_options_default(o);
	o->backend = tk_config_str(c, "llm.backend");
	o->url = nonempty(tk_config_str(c, "llm.url"));
	o->api_key = nonempty(tk_config_str(c, "llm.api_key"));
	o->model = nonempty(tk_config_str(c, "llm.model"));
	o->script = nonempty(tk_config_str(c, "llm.script"));
	const json_t *am = tk_config_json(c, "llm.adapter_models");
	o->adapter_models = am && !json_is_null(am) ? am : NULL;
	o->keep_alive = nonempty(tk_config_str(c, "llm.keep_alive"));
	o->num_ctx = (int32_t)tk_config_int(c, "llm.num_ctx");
	o->connect_timeout_ms = tk_config_int(c, "llm.connect_timeout_ms");
	o->read_timeout_ms = tk_config_int(c, "llm.read_timeout_ms");
	o->request_timeout_ms = tk_config_int(c, "llm.request_timeout_ms");
	o->max_retries = (int32_t)tk_config_int(c, "llm.max_retries");
	o->backoff_ms = tk_config_int(c, "llm.backoff_ms");
	o->backoff_max_ms = tk_config_int(c, "llm.backoff_max_ms");
	o->breaker_failures = (int32_t)tk_config_int(c, "llm.breaker_failures");
	o->breaker_cooldown_ms = tk_config_int(c, "llm.breaker_cooldown_ms");
	o->max_response_bytes = (size_t)tk_config_int(c, "llm.max_response_bytes");
	o->embedded_contexts = (int32_t)tk_config_int(c, "llm.embedded_contexts");
	o->embedded_n_ctx = (int32_t)tk_config_int(c, "llm.embedded_ctx");
	o->embedded_threads = (int32_t)tk_config_int(c, "llm.embedded_threads");
	o->adapter_dir = nonempty(tk_config_str(c, "llm.adapter_dir"));
	o->adapter_budget_bytes = (uint64_t)tk_config_int(c, "llm.adapter_budget_bytes");
}

/* ---- metrics ---- */

struct llm_metrics {
	struct tk_metric *calls, *duration, *ttft, *prompt_tokens, *completion_tokens, *up, *retries;
};

static const double dur_buckets[] = { 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300 };
static const double ttft_buckets[] = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };

static void metrics_get(struct tk_registry *r, struct llm_metrics *m)
{
	static const char *const lbl[] = { "backend", "model", "adapter", "outcome" };
	m->calls = tk_metric_counter(r, "tanuki_llm_requests_total",
				     "LLM calls by backend, model, adapter and outcome", lbl, 4);
	m->duration = tk_metric_histogram(r, "tanuki_llm_request_duration_seconds",
					  "LLM call duration, retries included", lbl, 3,
					  dur_buckets, sizeof dur_buckets / sizeof dur_buckets[0]);
	m->ttft = tk_metric_histogram(r, "tanuki_llm_time_to_first_token_seconds",
				      "time from an LLM call's start to its first streamed text",
				      lbl, 3, ttft_buckets,
				      sizeof ttft_buckets / sizeof ttft_buckets[0]);
	m->prompt_tokens = tk_metric_counter(r, "tanuki_llm_prompt_tokens_total",
					     "prompt tokens reported by LLM backends", lbl, 3);
	m->completion_tokens = tk_metric_counter(r, "tanuki_llm_completion_tokens_total",
						 "completion tokens reported by LLM backends",
						 lbl, 3);
	m->retries = tk_metric_counter(r, "tanuki_llm_retries_total",
				       "extra HTTP attempts made by LLM calls", lbl, 1);
	m->up = tk_metric_gauge(r, "tanuki_backend_up",
				"1 when the last health probe of the LLM backend succeeded", lbl, 1);
}

/* ---- backends ---- */

static char *dup_opt(const char *s, int *rc)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*rc = TK_ENOMEM;
	return d;
}

static void free_opt_strings(struct llm_options *o)
{
	free((char *)o->backend);
	free((char *)o->url);
	if (o->api_key) {
		memset((char *)o->api_key, 0, strlen(o->api_key));
		free((char *)o->api_key);
	}
	free((char *)o->model);
	free((char *)o->script);
	free((char *)o->keep_alive);
	free((char *)o->adapter_dir);
}

static int check_options(const struct llm_options *o)
{
	if (o->connect_timeout_ms < 1 || o->read_timeout_ms < 1)
		return tk_errf(TK_EINVAL, "llm: connect and read timeouts must be >= 1 ms");
	if (o->request_timeout_ms < 0 || o->max_retries < 0 || o->max_retries > 100)
		return tk_errf(TK_EINVAL, "llm: request_timeout_ms >= 0, max_retries 0..100");
	if (o->backoff_ms < 0 || o->backoff_max_ms < o->backoff_ms)
		return tk_errf(TK_EINVAL, "llm: need 0 <= backoff_ms <= backoff_max_ms");
	if (o->breaker_failures < 0 || o->breaker_cooldown_ms < 0)
		return tk_errf(TK_EINVAL, "llm: breaker settings must be >= 0");
	if (o->max_response_bytes < 1024)
		return tk_errf(TK_EINVAL, "llm: max_response_bytes must be >= 1024");
	if (o->url && strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8))
		return tk_errf(TK_EINVAL, "llm.url: must start with http:// or https://, got '%s'",
			       o->url);
	return 0;
}

struct llm_backend *llm_backend_new(const struct llm_options *o)
{
	const char *name = o->backend && *o->backend ? o->backend : "openai";
	const struct llm_backend_ops *ops = NULL;
	for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
		if (!strcmp(backends[i]->name, name))
			ops = backends[i];
	if (!ops) {
		tk_errf(TK_EINVAL, "llm.backend: unknown backend '%s' (openai, ollama, embedded, "
			"scripted)",
			name);
		return NULL;
	}
	if (check_options(o))
		return NULL;
	struct llm_backend *b = calloc(1, sizeof *b);
	if (!b) {
		tk_errf(TK_ENOMEM, "llm: out of memory");
		return NULL;
	}
	b->ops = ops;
	b->opt = *o;
	int rc = 0;
	b->opt.backend = dup_opt(name, &rc);
	b->opt.url = dup_opt(o->url, &rc);
	b->opt.api_key = dup_opt(nonempty(o->api_key), &rc);
	b->opt.model = dup_opt(o->model, &rc);
	b->opt.script = dup_opt(o->script, &rc);
	b->opt.adapter_models = NULL;
	b->opt.keep_alive = dup_opt(o->keep_alive, &rc);
	b->opt.adapter_dir = dup_opt(o->adapter_dir, &rc);
	pthread_mutex_init(&b->breaker.mu, NULL);
	if (rc) {
		tk_errf(TK_ENOMEM, "llm: out of memory");
		goto fail;
	}
	if (b->opt.api_key && strlen(b->opt.api_key) >= 4)
		(void)tk_log_add_secret(b->opt.api_key); /* never shown in a log line */
	if (o->adapter_models) {
		const char *k;
		json_t *v;
		b->adapter_models = json_deep_copy((const json_t *)o->adapter_models);
		if (!b->adapter_models) {
			tk_errf(TK_ENOMEM, "llm.adapter_models: out of memory");
			goto fail;
		}
		if (!json_is_object(b->adapter_models)) {
			tk_errf(TK_EINVAL, "llm.adapter_models: must be an object adapter -> model");
			goto fail;
		}
		json_object_foreach(b->adapter_models, k, v) {
			if (!json_is_string(v)) {
				tk_errf(TK_EINVAL, "llm.adapter_models.%s: must be a model name", k);
				goto fail;
			}
		}
	}
	struct llm_metrics m;
	metrics_get(o->metrics, &m);
	b->up = tk_metric_series(m.up, (const char *const[]){ name });
	if (ops->init(b))
		goto fail;
	return b;
fail:
	json_decref(b->adapter_models);
	pthread_mutex_destroy(&b->breaker.mu);
	free_opt_strings(&b->opt);
	free(b);
	return NULL;
}

struct llm_backend *llm_backend_from_config(const struct tk_config *c)
{
	struct llm_options o;
	llm_options_from_config(c, &o);
	return llm_backend_new(&o);
}

void llm_backend_free(struct llm_backend *b)
{
	if (!b)
		return;
	llm_probe_stop(b);
	b->ops->fini(b);
	json_decref(b->adapter_models);
	pthread_mutex_destroy(&b->breaker.mu);
	free_opt_strings(&b->opt);
	free(b);
}

const char *llm_backend_name(const struct llm_backend *b)
{
	return b->ops->name;
}

int llm_pick_model(const struct llm_backend *b, const struct llm_params *p, const char **out)
{
	*out = NULL;
	if (p->model && *p->model) {
		*out = p->model;
		return 0;
	}
	if (p->adapter && *p->adapter) {
		const char *m = json_string_value(json_object_get(b->adapter_models, p->adapter));
		if (!m)
			return tk_errf(TK_EINVAL, "%s: adapter '%s' has no model in llm.adapter_models",
				       b->ops->name, p->adapter);
		*out = m;
		return 0;
	}
	if (!b->opt.model)
		return tk_errf(TK_EINVAL, "%s: no model: set llm.model or name one in the call",
			       b->ops->name);
	*out = b->opt.model;
	return 0;
}

static int check_params(const struct llm_backend *b, const struct llm_message *msgs, size_t n,
			const struct llm_params *p)
{
	const char *w = b->ops->name;
	if (!n || !msgs)
		return tk_errf(TK_EINVAL, "%s: no messages", w);
	if (n > LLM_MAX_MESSAGES)
		return tk_errf(TK_ELIMIT, "%s: %zu messages, at most %d", w, n, LLM_MAX_MESSAGES);
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].role || !*msgs[i].role)
			return tk_errf(TK_EINVAL, "%s: messages[%zu].role: missing", w, i);
	if (p->n_stop > LLM_MAX_STOP || (p->n_stop && !p->stop))
		return tk_errf(TK_EINVAL, "%s: at most %d stop strings", w, LLM_MAX_STOP);
	for (size_t i = 0; i < p->n_stop; i++)
		if (!p->stop[i] || !*p->stop[i])
			return tk_errf(TK_EINVAL, "%s: stop[%zu]: empty", w, i);
	if (p->json_schema && p->grammar)
		return tk_errf(TK_EINVAL, "%s: json_schema and grammar are exclusive", w);
	if (p->max_tokens < 0)
		return tk_errf(TK_EINVAL, "%s: max_tokens must be >= 0", w);
	const struct llm_sampling *s = &p->sampling;
	if (s->top_p > 1 || s->top_p == 0 || s->top_k < 0 || s->repeat_penalty == 0 ||
	    s->temperature > 100)
		return tk_errf(TK_EINVAL, "%s: sampling out of range (temperature <= 100, "
			       "top_p in (0, 1], top_k >= 0, repeat_penalty > 0)", w);
	return 0;
}

struct stream_tap {
	llm_token_cb cb;
	void *ud;
	int64_t start_ns;
	int64_t first_ns;
};

static int tap_cb(void *ud, const char *text, size_t len)
{
	struct stream_tap *t = ud;
	if (!t->first_ns && len)
		t->first_ns = tk_time_mono_ns();
	return t->cb ? t->cb(t->ud, text, len) : 0;
}

int llm_chat(struct llm_backend *b, const struct llm_message *msgs, size_t n,
	     const struct llm_params *params, llm_token_cb cb, void *ud,
	     const atomic_bool *cancel, struct llm_result *out)
{
	struct llm_params defaults;
	if (!params) {
		llm_params_default(&defaults);
		params = &defaults;
	}
	memset(out, 0, sizeof *out);
	int rc = check_params(b, msgs, n, params);
	if (rc)
		return rc;
	struct stream_tap tap = { cb, ud, tk_time_mono_ns(), 0 };
	struct llm_result r;
	memset(&r, 0, sizeof r);
	r.usage.prompt_tokens = r.usage.completion_tokens = -1;
	r.timings.ttft_ms = -1;
	r.attempts = 1;
	rc = b->ops->chat(b, msgs, n, params, tap_cb, &tap, cancel, &r);
	char detail[TK_ERR_DETAIL_MAX + 1] = "";
	if (rc) {
		strncpy(detail, tk_err_detail(), sizeof detail - 1);
		detail[sizeof detail - 1] = '\0';
	}
	int64_t end = tk_time_mono_ns();
	r.timings.total_ms = (double)(end - tap.start_ns) / 1e6;
	if (tap.first_ns)
		r.timings.ttft_ms = (double)(tap.first_ns - tap.start_ns) / 1e6;

	const char *model = r.model ? r.model : NULL;
	if (!model && (!params->model || !*params->model) && (!params->adapter || !*params->adapter))
		model = b->opt.model;
	if (!model && params->model)
		model = params->model;
	if (!model)
		model = "";
	const char *adapter = params->adapter ? params->adapter : "";
	const char *outcome = rc ? tk_err_name(rc) : "ok";
	struct llm_metrics m;
	metrics_get(b->opt.metrics, &m);
	const char *const lbl[] = { b->ops->name, model, adapter, outcome };
	tk_counter_inc(tk_metric_series(m.calls, lbl));
	tk_hist_observe(tk_metric_series(m.duration, lbl), r.timings.total_ms / 1e3);
	if (r.timings.ttft_ms >= 0)
		tk_hist_observe(tk_metric_series(m.ttft, lbl), r.timings.ttft_ms / 1e3);
	if (r.attempts > 1)
		tk_counter_add(tk_metric_series(m.retries, lbl), r.attempts - 1);
	if (!rc) {
		if (r.usage.prompt_tokens > 0)
			tk_counter_add(tk_metric_series(m.prompt_tokens, lbl),
				       (double)r.usage.prompt_tokens);
		if (r.usage.completion_tokens > 0)
			tk_counter_add(tk_metric_series(m.completion_tokens, lbl),
				       (double)r.usage.completion_tokens);
	}
	if (rc) {
		int code = rc;
		tk_logf(TK_LOG_WARNING, "llm",
			TK_FIELDS(TK_LF_S("backend", b->ops->name), TK_LF_S("model", model),
				  TK_LF_S("error", detail), TK_LF_I("attempts", r.attempts),
				  TK_LF_D("duration_ms", r.timings.total_ms)),
			"llm call failed");
		llm_result_free(&r);
		/* Logging must not change what the caller sees. */
		return tk_errf(code, "%s", detail);
	}
	if (!r.model && *model && !(r.model = strdup(model))) {
		llm_result_free(&r);
		return tk_errf(TK_ENOMEM, "%s: out of memory", b->ops->name);
	}
	tk_logf(TK_LOG_DEBUG, "llm",
		TK_FIELDS(TK_LF_S("backend", b->ops->name), TK_LF_S("model", model),
			  TK_LF_S("finish", llm_finish_name(r.finish)),
			  TK_LF_I("completion_tokens", r.usage.completion_tokens),
			  TK_LF_D("ttft_ms", r.timings.ttft_ms),
			  TK_LF_D("duration_ms", r.timings.total_ms)),
		"llm call done");
	*out = r;
	return 0;
}

int llm_health(struct llm_backend *b)
{
	int rc = b->ops->health(b);
	tk_gauge_set(b->up, rc ? 0 : 1);
	return rc;
}

int llm_list_models(struct llm_backend *b, char ***names, size_t *n)
{
	*names = NULL;
	*n = 0;
	return b->ops->list_models(b, names, n);
}

void llm_models_free(char **names, size_t n)
{
	if (!names)
		return;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int llm_models_collect(const json_t *arr, const char *field, const char *who,
		       char ***names, size_t *n)
{
	if (!json_is_array(arr))
		return tk_errf(TK_EFORMAT, "%s: model list: no array", who);
	size_t cnt = json_array_size(arr), k = 0;
	char **v = calloc(cnt ? cnt : 1, sizeof *v);
	if (!v)
		return tk_errf(TK_ENOMEM, "%s: out of memory", who);
	for (size_t i = 0; i < cnt; i++) {
		const char *name = tk_json_get_str(json_array_get(arr, i), field, NULL);
		if (!name)
			continue;
		if (!(v[k++] = strdup(name))) {
			llm_models_free(v, k);
			return tk_errf(TK_ENOMEM, "%s: out of memory", who);
		}
	}
	*names = v;
	*n = k;
	return 0;
}

/* ---- health probe loop ---- */

struct llm_probe {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* signalled by llm_probe_stop */
	bool stop;           /* guarded by mu */
	int64_t interval_ms;
	struct llm_backend *b;
};

static void *probe_main(void *arg)
{
	struct llm_probe *p = arg;
	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		pthread_mutex_unlock(&p->mu);
		(void)llm_health(p->b);
		pthread_mutex_lock(&p->mu);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t ns = ts.tv_nsec + (p->interval_ms % 1000) * 1000000;
		ts.tv_sec += (time_t)(p->interval_ms / 1000 + ns / 1000000000);
		ts.tv_nsec = (long)(ns % 1000000000);
		while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int llm_probe_start(struct llm_backend *b, int64_t interval_ms)
{
	if (interval_ms < 10)
		return tk_errf(TK_EINVAL, "llm probe: interval must be >= 10 ms");
	if (b->probe)
		return tk_errf(TK_ESTATE, "llm probe: already running");
	struct llm_probe *p = calloc(1, sizeof *p);
	if (!p)
		return tk_errf(TK_ENOMEM, "llm probe: out of memory");
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&p->mu, NULL);
	p->interval_ms = interval_ms;
	p->b = b;
	int e = pthread_create(&p->thread, NULL, probe_main, p);
	if (e) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return tk_errf_sys(TK_EIO, e, "llm probe: pthread_create");
	}
	b->probe = p;
	return 0;
}

void llm_probe_stop(struct llm_backend *b)
{
	struct llm_probe *p = b->probe;
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
	b->probe = NULL;
}

/* ---- helpers shared by the backends ---- */

void llm_acc_init(struct llm_acc *a, const struct llm_backend *b, llm_token_cb cb, void *ud)
{
	tk_buf_init(&a->text, b->opt.max_response_bytes);
	a->cb = cb;
	a->ud = ud;
	a->committed = false;
	a->who = b->ops->name;
}

int llm_acc_push(struct llm_acc *a, const char *s, size_t n)
{
	if (!n)
		return 0;
	if (tk_buf_append(&a->text, s, n))
		return tk_errf(TK_ELIMIT, "%s: reply text exceeds %zu bytes", a->who,
			       a->text.max_bytes);
	a->committed = true;
	if (a->cb && a->cb(a->ud, s, n))
		return tk_errf(TK_ECANCELED, "%s: cancelled by the token callback", a->who);
	return 0;
}

int llm_acc_finish(struct llm_acc *a, struct llm_result *r)
{
	r->text = tk_buf_detach(&a->text, &r->text_len);
	return r->text ? 0 : tk_errf(TK_ENOMEM, "%s: out of memory", a->who);
}

void llm_acc_free(struct llm_acc *a)
{
	tk_buf_free(&a->text);
}

json_t *llm_messages_json(const struct llm_message *msgs, size_t n)
{
	json_t *arr = json_array();
	if (!arr)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		json_t *role = json_string(msgs[i].role);
		json_t *content = json_string(msgs[i].content ? msgs[i].content : "");
		if (!role || !content) {
			json_decref(role);
			json_decref(content);
			json_decref(arr);
			tk_errf(TK_EINVAL, "llm: messages[%zu]: role and content must be valid UTF-8",
				i);
			return NULL;
		}
		json_t *m = json_object();
		if (!m || json_object_set_new(m, "role", role) ||
		    json_object_set_new(m, "content", content) || json_array_append_new(arr, m)) {
			json_decref(arr);
			goto oom;
		}
	}
	return arr;
oom:
	tk_errf(TK_ENOMEM, "llm: out of memory building messages");
	return NULL;
}
