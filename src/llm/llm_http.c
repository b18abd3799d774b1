/*
 * llm_http.c — the HTTP transport of the remote backends (llm_int.h): one
 * libcurl easy handle per attempt, lines of a streamed body handed to the
 * backend's parser, timeouts (connect, read silence, whole call), bounded
 * retries with exponential backoff and jitter, and the circuit breaker.
 *
 * Theory of operation, one llm_http_call:
 *   1. the breaker is asked for permission (closed, or half-open with no
 *      trial in flight) — else TK_EBUSY at once;
 *   2. an attempt runs: status 2xx bodies are split into lines for
 *      rq->on_line, other bodies are kept (64 KiB) for the error detail;
 *      the transfer runs on a private multi handle polled every 25 ms, and
 *      a watchdog aborts it on cancel, on read_timeout_ms of silence and
 *      past the call's deadline;
 *   3. a failed attempt is classified: retryable (429, 500/502/503/504,
 *      connect/receive errors, silence, a stream cut before its end) or
 *      final; a retryable one sleeps backoff_ms * 2^k (jittered to
 *      [d/2, d], at least Retry-After, at most backoff_max_ms) and tries
 *      again, unless text was already handed to the caller (*committed),
 *      retries are used up or the deadline would pass;
 *   4. the breaker learns the outcome: a retryable-kind failure counts, a
 *      success (or an answer from a healthy server, e.g. 400) resets.
 * The API key travels only in the Authorization header: it is never put in
 * a URL, a log line or an error detail.
 */
#include "llm/llm_int.h"

#include "core/err.h"
#include "core/json.h"
#include "core/time.h"
#include "obs/log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERRBODY_MAX 65536
#define AUTH_MAX 8192

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int llm_http_global_init(void)
{
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return tk_errf(TK_EIO, "libcurl: global init failed: %s",
			       curl_easy_strerror(curl_init_rc));
	return 0;
}

/* State of one attempt, shared by the libcurl callbacks. */
struct attempt {
	const struct llm_http_req *rq;
	CURL *h;
	size_t max_bytes;
	size_t body_bytes;
	long status;              /* known once the headers are in */
	struct tk_buf line;       /* partial line of a 2xx body */
	struct tk_buf errbody;    /* body of a non-2xx reply (capped, silently) */
	int stop_rc;              /* why a callback aborted the transfer */
	int64_t last_rx_ns;
	int64_t idle_ns;          /* read timeout */
	int64_t deadline_ns;      /* 0: none */
	int64_t retry_after_ms;   /* from a Retry-After header; -1 if none */
	char stop_what[96];
};

static int deliver_line(struct attempt *a, const char *s, size_t n)
{
	if (n && s[n - 1] == '\r')
		n--;
	return a->rq->on_line ? a->rq->on_line(a->rq->ud, s, n) : 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct attempt *a = ud;
	size_t n = size * nmemb;
	a->last_rx_ns = tk_time_mono_ns();
	if (!a->status)
		curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &a->status);
	if (a->status < 200 || a->status > 299) {
		size_t room = ERRBODY_MAX - a->errbody.len;
		(void)tk_buf_append(&a->errbody, ptr, n < room ? n : room);
		return n;
	}
	a->body_bytes += n;
	if (a->body_bytes > a->max_bytes) {
		a->stop_rc = tk_errf(TK_ELIMIT, "%s: %s: reply exceeds %zu bytes", a->rq->who,
				     a->rq->url, a->max_bytes);
		return 0;
	}
	const char *p = ptr, *end = ptr + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t chunk = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (tk_buf_append(&a->line, p, chunk)) {
			a->stop_rc = tk_errf(TK_ELIMIT, "%s: %s: a reply line exceeds %u bytes",
					     a->rq->who, a->rq->url, LLM_LINE_MAX);
			return 0;
		}
		if (!nl)
			break;
		int rc = deliver_line(a, a->line.data ? a->line.data : "", a->line.len);
		tk_buf_reset(&a->line);
		if (rc) {
			a->stop_rc = rc;
			return 0;
		}
		p = nl + 1;
	}
	return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct attempt *a = ud;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:";
	if (n > sizeof name - 1 && !strncasecmp(ptr, name, sizeof name - 1)) {
		char tmp[32];
		size_t len = n - (sizeof name - 1);
		if (len >= sizeof tmp)
			len = sizeof tmp - 1;
		memcpy(tmp, ptr + sizeof name - 1, len);
		tmp[len] = '\0';
		char *e;
		long v = strtol(tmp, &e, 10);
		/* Only the delta-seconds form; an HTTP date is ignored. */
		if (e != tmp && v >= 0 && v <= 86400)
			a->retry_after_ms = v * 1000;
	}
	return n;
}

/* The attempt's own clock: cancel flag, call deadline, read silence.
 * Nonzero (with stop_rc set) when the transfer must stop. */
static int watchdog(struct attempt *a)
{
	int64_t now = tk_time_mono_ns();
	if (llm_cancelled(a->rq->cancel)) {
		a->stop_rc = tk_errf(TK_ECANCELED, "%s: %s: cancelled", a->rq->who, a->rq->url);
		return 1;
	}
	if (a->deadline_ns && now > a->deadline_ns) {
		a->stop_rc = TK_ETIMEOUT;
		snprintf(a->stop_what, sizeof a->stop_what, "request timeout");
		return 1;
	}
	if (now - a->last_rx_ns > a->idle_ns) {
		a->stop_rc = TK_ETIMEOUT;
		snprintf(a->stop_what, sizeof a->stop_what, "no data for %lld ms (read timeout)",
			 (long long)(a->idle_ns / 1000000));
		return 1;
	}
	return 0;
}

/* Runs the transfer on a private multi handle, waking at least every
 * WATCH_MS to apply the watchdog (libcurl's own progress callback only
 * runs about once a second on an idle connection). */
#define WATCH_MS 25

static CURLcode perform(struct attempt *a)
{
	CURLM *m = curl_multi_init();
	if (!m)
		return CURLE_OUT_OF_MEMORY;
	if (curl_multi_add_handle(m, a->h) != CURLM_OK) {
		curl_multi_cleanup(m);
		return CURLE_OUT_OF_MEMORY;
	}
	CURLcode cc = CURLE_OK;
	int running = 1;
	while (running) {
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			cc = CURLE_RECV_ERROR;
			break;
		}
		if (a->stop_rc) { /* a write callback refused the data */
			cc = CURLE_WRITE_ERROR;
			break;
		}
		if (!running)
			break;
		if (watchdog(a)) {
			cc = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		if (curl_multi_poll(m, NULL, 0, WATCH_MS, NULL) != CURLM_OK) {
			cc = CURLE_RECV_ERROR;
			break;
		}
	}
	if (!running && !a->stop_rc) {
		int left;
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(m, &left)))
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == a->h)
				cc = msg->data.result;
	}
	curl_multi_remove_handle(m, a->h);
	curl_multi_cleanup(m);
	return cc;
}

/* Pulls a human message out of an error body: {"error":{"message":..}},
 * {"error":".."}, {"message":..} or the text itself (first 300 bytes,
 * control characters blanked). */
static void error_message(const struct tk_buf *body, char *out, size_t cap)
{
	out[0] = '\0';
	if (!body->len)
		return;
	json_t *j = json_loadb(body->data, body->len, 0, NULL);
	const char *m = NULL;
	if (j) {
		json_t *e = json_object_get(j, "error");
		if (json_is_string(e))
			m = json_string_value(e);
		else if (json_is_object(e))
			m = tk_json_get_str(e, "message", NULL);
		if (!m)
			m = tk_json_get_str(j, "message", NULL);
	}
	snprintf(out, cap, "%.300s", m ? m : body->data);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	json_decref(j);
}

static int status_code(long st, bool *retryable)
{
	*retryable = false;
	if (st == 429) {
		*retryable = true;
		return TK_EBUSY;
	}
	if (st == 500 || st == 502 || st == 503 || st == 504) {
		*retryable = true;
		return TK_EIO;
	}
	if (st == 401 || st == 403)
		return TK_EPERM;
	if (st == 404)
		return TK_ENOENT;
	if (st == 400 || st == 422)
		return TK_EINVAL;
	if (st == 413)
		return TK_ELIMIT;
	if (st == 501)
		return TK_EUNSUPPORTED;
	return TK_EIO;
}

/* One attempt. Returns 0 or a TK_E* with a detail; *retryable says whether
 * another attempt may help. */
static int attempt_run(struct llm_backend *b, const struct llm_http_req *rq, int64_t deadline_ns,
		       struct attempt *a, bool *retryable)
{
	*retryable = false;
	memset(a, 0, sizeof *a);
	a->rq = rq;
	a->max_bytes = b->opt.max_response_bytes;
	a->idle_ns = b->opt.read_timeout_ms * 1000000;
	a->deadline_ns = deadline_ns;
	a->retry_after_ms = -1;
	a->last_rx_ns = tk_time_mono_ns();
	tk_buf_init(&a->line, LLM_LINE_MAX);
	tk_buf_init(&a->errbody, ERRBODY_MAX);

	int rc = 0;
	struct curl_slist *hdrs = NULL;
	char *auth = NULL;
	a->h = curl_easy_init();
	if (!a->h) {
		rc = tk_errf(TK_ENOMEM, "%s: curl_easy_init failed", rq->who);
		goto out;
	}
	struct curl_slist *t;
	if (rq->body) {
		if (!(t = curl_slist_append(hdrs, "Content-Type: application/json")))
			goto oom;
		hdrs = t;
	}
	if (rq->api_key && *rq->api_key) {
		size_t klen = strlen(rq->api_key);
		if (klen > AUTH_MAX || strpbrk(rq->api_key, "\r\n")) {
			rc = tk_errf(TK_EINVAL, "%s: the API key is malformed (too long or has a "
				     "line break)", rq->who);
			goto out;
		}
		if (!(auth = malloc(klen + 32)))
			goto oom;
		snprintf(auth, klen + 32, "Authorization: Bearer %s", rq->api_key);
		if (!(t = curl_slist_append(hdrs, auth)))
			goto oom;
		hdrs = t;
	}
	if (!(t = curl_slist_append(hdrs, "Expect:")))
		goto oom;
	hdrs = t;

	curl_easy_setopt(a->h, CURLOPT_URL, rq->url);
	curl_easy_setopt(a->h, CURLOPT_NOSIGNAL, 1L);
	/* Only plain HTTP(S): a configured URL must not reach file:// etc. */
	curl_easy_setopt(a->h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(a->h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(a->h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(a->h, CURLOPT_CONNECTTIMEOUT_MS, (long)b->opt.connect_timeout_ms);
	curl_easy_setopt(a->h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(a->h, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(a->h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(a->h, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(a->h, CURLOPT_USERAGENT, "tanuki-llm");
	if (rq->body) {
		curl_easy_setopt(a->h, CURLOPT_POST, 1L);
		curl_easy_setopt(a->h, CURLOPT_POSTFIELDS, rq->body);
		curl_easy_setopt(a->h, CURLOPT_POSTFIELDSIZE, (long)strlen(rq->body));
	}

	CURLcode cc = perform(a);
	if (!a->status)
		curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &a->status);
	if (cc == CURLE_OK && a->status >= 200 && a->status <= 299 && a->line.len) {
		/* A last line without its newline. */
		rc = deliver_line(a, a->line.data, a->line.len);
		if (rc)
			goto out;
	}
	if (cc == CURLE_ABORTED_BY_CALLBACK || (cc == CURLE_WRITE_ERROR && a->stop_rc)) {
		rc = a->stop_rc;
		if (rc == TK_ETIMEOUT) {
			/* Silence is retryable; the call's own deadline is not. */
			*retryable = !strncmp(a->stop_what, "no data", 7);
			rc = tk_errf(TK_ETIMEOUT, "%s: %s: %s", rq->who, rq->url, a->stop_what);
		}
		goto out;
	}
	if (cc != CURLE_OK) {
		switch (cc) {
		case CURLE_OPERATION_TIMEDOUT:
			rc = TK_ETIMEOUT;
			*retryable = true;
			break;
		case CURLE_URL_MALFORMAT:
		case CURLE_UNSUPPORTED_PROTOCOL:
			rc = TK_EINVAL;
			break;
		default:
			rc = TK_EIO;
			*retryable = true;
			break;
		}
		rc = tk_errf(rc, "%s: %s %s: %s%s", rq->who, rq->method, rq->url,
			     curl_easy_strerror(cc),
			     a->status >= 200 && a->status <= 299 ? " (connection cut mid-reply)" : "");
		goto out;
	}
	if (a->status < 200 || a->status > 299) {
		char msg[320];
		error_message(&a->errbody, msg, sizeof msg);
		rc = status_code(a->status, retryable);
		rc = tk_errf(rc, "%s: %s %s: HTTP %ld%s%s", rq->who, rq->method, rq->url, a->status,
			     *msg ? ": " : "", msg);
		goto out;
	}
	if (rq->is_done && !rq->is_done(rq->ud)) {
		*retryable = true;
		rc = tk_errf(TK_EIO, "%s: %s %s: the reply stream ended before its end marker "
			     "(connection cut?)", rq->who, rq->method, rq->url);
	}
	goto out;
oom:
	rc = tk_errf(TK_ENOMEM, "%s: out of memory building the request", rq->who);
out:
	curl_slist_free_all(hdrs);
	if (auth) {
		/* The header held the key: wipe before freeing. */
		memset(auth, 0, strlen(auth));
		free(auth);
	}
	if (a->h)
		curl_easy_cleanup(a->h);
	a->h = NULL;
	tk_buf_free(&a->line);
	tk_buf_free(&a->errbody);
	return rc;
}

/* ---- circuit breaker ---- */

static int breaker_enter(struct llm_backend *b, const char *who)
{
	if (b->opt.breaker_failures <= 0)
		return 0;
	struct llm_breaker *k = &b->breaker;
	int rc = 0;
	pthread_mutex_lock(&k->mu);
	int64_t now = tk_time_mono_ns();
	if (k->open_until_ns) {
		if (now < k->open_until_ns)
			rc = tk_errf(TK_EBUSY, "%s: circuit breaker open after %d consecutive failures; "
				     "retry in %lld ms", who, (int)k->failures,
				     (long long)((k->open_until_ns - now) / 1000000 + 1));
		else if (k->trial)
			rc = tk_errf(TK_EBUSY, "%s: circuit breaker half-open: a trial call is in "
				     "flight", who);
		else
			k->trial = true;
	}
	pthread_mutex_unlock(&k->mu);
	return rc;
}

static void breaker_leave(struct llm_backend *b, bool failed)
{
	if (b->opt.breaker_failures <= 0)
		return;
	struct llm_breaker *k = &b->breaker;
	pthread_mutex_lock(&k->mu);
	bool was_trial = k->trial;
	k->trial = false;
	if (!failed) {
		k->failures = 0;
		k->open_until_ns = 0;
	} else {
		k->failures++;
		if (was_trial || k->failures >= b->opt.breaker_failures) {
			k->open_until_ns = tk_time_mono_ns() + b->opt.breaker_cooldown_ms * 1000000;
			if (k->open_until_ns == 0)
				k->open_until_ns = 1;
		}
	}
	pthread_mutex_unlock(&k->mu);
}

/* ---- backoff ---- */

static uint64_t jitter_next(void)
{
	static _Thread_local uint64_t s;
	if (!s)
		s = (uint64_t)tk_time_mono_ns() ^ (uint64_t)(uintptr_t)&s ^ 0x9e3779b97f4a7c15ull;
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return s;
}

static int64_t backoff_ms(const struct llm_backend *b, int32_t retry, int64_t retry_after_ms)
{
	int64_t d = b->opt.backoff_ms;
	for (int32_t i = 1; i < retry && d < b->opt.backoff_max_ms; i++)
		d *= 2;
	if (d > b->opt.backoff_max_ms)
		d = b->opt.backoff_max_ms;
	/* Jitter in [d/2, d] so clients that failed together spread out. */
	int64_t half = d / 2;
	d = half + (half > 0 ? (int64_t)(jitter_next() % (uint64_t)(d - half + 1)) : 0);
	if (retry_after_ms > d)
		d = retry_after_ms < b->opt.backoff_max_ms ? retry_after_ms : b->opt.backoff_max_ms;
	return d;
}

/* Sleeps ms in short slices; TK_ECANCELED when the cancel flag rises. */
static int sleep_ms(int64_t ms, const atomic_bool *cancel)
{
	int64_t end = tk_time_mono_ns() + ms * 1000000;
	for (;;) {
		if (llm_cancelled(cancel))
			return TK_ECANCELED;
		int64_t left = end - tk_time_mono_ns();
		if (left <= 0)
			return 0;
		if (left > 20000000)
			left = 20000000;
		struct timespec ts = { 0, (long)left };
		nanosleep(&ts, NULL);
	}
}

int llm_http_call(struct llm_backend *b, const struct llm_http_req *rq, struct llm_http_stats *st)
{
	int rc = llm_http_global_init();
	if (rc)
		return rc;
	memset(st, 0, sizeof *st);
	int64_t start = tk_time_mono_ns();
	int64_t deadline = b->opt.request_timeout_ms > 0 ? start + b->opt.request_timeout_ms * 1000000
							 : 0;
	if (rq->retry && (rc = breaker_enter(b, rq->who)))
		return rc;
	int32_t max_attempts = rq->retry ? b->opt.max_retries + 1 : 1;
	bool retryable = false;
	struct attempt a;
	for (int32_t i = 1;; i++) {
		st->attempts = i;
		st->queue_ms = (double)(tk_time_mono_ns() - start) / 1e6;
		rc = attempt_run(b, rq, deadline, &a, &retryable);
		st->status = a.status;
		if (!rc || !retryable || i >= max_attempts || (rq->committed && *rq->committed))
			break;
		int64_t d = backoff_ms(b, i, a.retry_after_ms);
		if (deadline && tk_time_mono_ns() + d * 1000000 >= deadline)
			break;
		tk_logf(TK_LOG_WARNING, "llm",
			TK_FIELDS(TK_LF_S("backend", rq->who), TK_LF_I("attempt", i),
				  TK_LF_I("http_status", a.status), TK_LF_I("backoff_ms", d),
				  TK_LF_S("error", tk_err_detail())),
			"llm request failed; retrying");
		int src = sleep_ms(d, rq->cancel);
		if (src) {
			rc = tk_errf(src, "%s: %s: cancelled while waiting to retry", rq->who, rq->url);
			retryable = false;
			break;
		}
		if (rq->on_retry)
			rq->on_retry(rq->ud);
	}
	if (rq->retry)
		breaker_leave(b, rc && retryable);
	return rc;
}

struct collect {
	struct tk_buf body;
};

static int collect_line(void *ud, const char *line, size_t len)
{
	struct collect *c = ud;
	int rc = tk_buf_append(&c->body, line, len);
	if (!rc)
		rc = tk_buf_putc(&c->body, '\n');
	return rc ? tk_errf(rc, "reply over %zu bytes", c->body.max_bytes) : 0;
}

int llm_http_get_json(struct llm_backend *b, const char *who, const char *url, json_t **out)
{
	*out = NULL;
	struct collect c;
	tk_buf_init(&c.body, b->opt.max_response_bytes);
	struct llm_http_req rq = { .who = who, .method = "GET", .url = url,
				   .api_key = b->opt.api_key, .on_line = collect_line, .ud = &c };
	struct llm_http_stats st;
	int rc = llm_http_call(b, &rq, &st);
	if (!rc) {
		json_error_t e;
		*out = json_loadb(c.body.data ? c.body.data : "", c.body.len, 0, &e);
		if (!*out)
			rc = tk_errf(TK_EFORMAT, "%s: GET %s: reply is not JSON: %s", who, url, e.text);
	}
	tk_buf_free(&c.body);
	return rc;
}
