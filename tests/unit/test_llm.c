/* test_llm.c — the llm module without a network: the scripted backend
 * (matching by agent and turn, streaming, max_tokens, stop strings, errors,
 * cancellation, bad script files), parameter and option checks, the
 * configuration path, metrics, the health probe loop, and the circuit
 * breaker against a refused loopback port. The HTTP backends are tested
 * against a fake server in tests/integration/llm_*.sh. */
#include "testutil.h"

#include "core/config.h"
#include "core/err.h"
#include "llm/llm.h"
#include "obs/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char dir[512];

static const char *write_script(const char *name, const char *text)
{
	static char path[700];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static const char script[] =
	"{\"responses\": ["
	" {\"agent\": \"coder\", \"turn\": 0, \"text\": \"first reply here\","
	"  \"usage\": {\"prompt_tokens\": 9}, \"model\": \"tiny\"},"
	" {\"agent\": \"coder\", \"turn\": 1, \"chunks\": [\"ab\", \"cd\", \"ef\"],"
	"  \"finish_reason\": \"length\"},"
	" {\"agent\": \"tester\", \"error\": {\"code\": \"busy\", \"message\": \"overloaded\"}},"
	" {\"text\": \"fallback\"}"
	"]}";

static struct tk_registry *reg;

static struct llm_backend *scripted(const char *path)
{
	struct llm_options o;
	llm_options_default(&o);
	o.backend = "scripted";
	o.script = path;
	o.metrics = reg;
	return llm_backend_new(&o);
}

static const struct llm_message hello[] = { { "user", "hello" } };

struct pieces {
	char text[256];
	int calls;
	int stop_after; /* cancel at this call (0: never) */
};

static int collect(void *ud, const char *t, size_t n)
{
	struct pieces *p = ud;
	p->calls++;
	strncat(p->text, t, n);
	return p->stop_after && p->calls >= p->stop_after;
}

static int setup(void **state)
{
	(void)state;
	tk_test_mkdtemp(dir, sizeof dir);
	reg = tk_registry_new();
	return reg ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tk_registry_free(reg);
	tk_test_rmtree(dir);
	return 0;
}

static void test_scripted_turns(void **state)
{
	(void)state;
	struct llm_backend *b = scripted(write_script("s.json", script));
	assert_non_null(b);
	assert_string_equal(llm_backend_name(b), "scripted");
	struct llm_params p;
	llm_params_default(&p);
	p.agent = "coder";
	struct pieces pc = { 0 };
	struct llm_result r;
	/* turn 0, counted automatically; streamed word by word */
	assert_int_equal(llm_chat(b, hello, 1, &p, collect, &pc, NULL, &r), 0);
	assert_string_equal(r.text, "first reply here");
	assert_int_equal(r.text_len, strlen("first reply here"));
	assert_string_equal(pc.text, r.text);
	assert_int_equal(pc.calls, 3);
	assert_int_equal(r.finish, LLM_FINISH_STOP);
	assert_int_equal(r.usage.prompt_tokens, 9);
	assert_int_equal(r.usage.completion_tokens, 3);
	assert_string_equal(r.model, "tiny");
	assert_true(r.timings.ttft_ms >= 0 && r.timings.total_ms >= r.timings.ttft_ms);
	llm_result_free(&r);
	/* turn 1: explicit chunks and finish reason */
	memset(&pc, 0, sizeof pc);
	assert_int_equal(llm_chat(b, hello, 1, &p, collect, &pc, NULL, &r), 0);
	assert_string_equal(r.text, "abcdef");
	assert_int_equal(pc.calls, 3);
	assert_int_equal(r.finish, LLM_FINISH_LENGTH);
	llm_result_free(&r);
	/* turn 2 of coder: only the catch-all entry matches */
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), 0);
	assert_string_equal(r.text, "fallback");
	llm_result_free(&r);
	/* an explicit turn replays it again, without moving the counter */
	p.turn = 1;
	p.max_tokens = 2;
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), 0);
	assert_string_equal(r.text, "abcd");
	assert_int_equal(r.finish, LLM_FINISH_LENGTH);
	assert_int_equal(r.usage.completion_tokens, 2);
	llm_result_free(&r);
	/* a stop string cuts inside a chunk */
	p.max_tokens = 0;
	const char *stop[] = { "d" };
	p.stop = stop;
	p.n_stop = 1;
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), 0);
	assert_string_equal(r.text, "abc");
	assert_int_equal(r.finish, LLM_FINISH_STOP);
	llm_result_free(&r);
	/* the error entry of another agent */
	llm_params_default(&p);
	p.agent = "tester";
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), TK_EBUSY);
	assert_non_null(strstr(tk_err_detail(), "overloaded"));
	assert_null(r.text);
	llm_backend_free(b);
}

static void test_scripted_cancel(void **state)
{
	(void)state;
	struct llm_backend *b = scripted(write_script("s.json", script));
	assert_non_null(b);
	struct llm_params p;
	llm_params_default(&p);
	p.agent = "coder";
	p.turn = 0;
	struct pieces pc = { .stop_after = 2 };
	struct llm_result r;
	assert_int_equal(llm_chat(b, hello, 1, &p, collect, &pc, NULL, &r), TK_ECANCELED);
	assert_string_equal(pc.text, "first reply ");
	atomic_bool cancel = true;
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, &cancel, &r), TK_ECANCELED);
	llm_backend_free(b);

	/* both show in the metrics, by outcome */
	struct tk_buf m = TK_BUF_INIT(1 << 20);
	assert_int_equal(tk_metrics_expose(reg, &m), 0);
	assert_non_null(strstr(m.data, "tanuki_llm_requests_total{backend=\"scripted\",model=\"\","
				       "adapter=\"\",outcome=\"cancelled\"} 2"));
	tk_buf_free(&m);
}

static void test_scripted_bad_files(void **state)
{
	(void)state;
	static const struct { const char *text; int code; const char *detail; } cases[] = {
		{ "not json", TK_EFORMAT, "s.json" },
		{ "{\"responses\": 3}", TK_EFORMAT, "responses" },
		{ "{\"responses\": [{\"agent\": \"a\"}]}", TK_EFORMAT, "needs text" },
		{ "{\"responses\": [{\"text\": \"x\", \"extra\": 1}]}", TK_EFORMAT, "extra" },
		{ "{\"responses\": [{\"chunks\": [1]}]}", TK_EFORMAT, "chunks[0]" },
		{ "{\"responses\": [{\"error\": {\"code\": \"nope\"}}]}", TK_EFORMAT, "error.code" },
		{ "{\"responses\": [{\"turn\": -1, \"text\": \"x\"}]}", TK_EFORMAT, "turn" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct llm_backend *b = scripted(write_script("s.json", cases[i].text));
		assert_null(b);
		assert_int_equal(tk_err_last(), cases[i].code);
		if (!strstr(tk_err_detail(), cases[i].detail))
			fail_msg("case %zu: detail '%s' lacks '%s'", i, tk_err_detail(),
				 cases[i].detail);
	}
	struct llm_backend *b = scripted("/nonexistent/script.json");
	assert_null(b);
	assert_int_equal(tk_err_last(), TK_ENOENT);
	/* no match at all */
	b = scripted(write_script("s.json", "{\"responses\": [{\"agent\": \"a\", \"text\": \"x\"}]}"));
	assert_non_null(b);
	struct llm_result r;
	assert_int_equal(llm_chat(b, hello, 1, NULL, NULL, NULL, NULL, &r), TK_ENOENT);
	assert_non_null(strstr(tk_err_detail(), "no reply for agent ''"));
	llm_backend_free(b);
}

static void test_params_checked(void **state)
{
	(void)state;
	struct llm_backend *b = scripted(write_script("s.json", script));
	assert_non_null(b);
	struct llm_params p;
	struct llm_result r;
	llm_params_default(&p);
	assert_int_equal(llm_chat(b, hello, 0, &p, NULL, NULL, NULL, &r), TK_EINVAL);
	const struct llm_message norole[] = { { NULL, "x" } };
	assert_int_equal(llm_chat(b, norole, 1, &p, NULL, NULL, NULL, &r), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "messages[0].role"));
	p.json_schema = "{}";
	p.grammar = "root ::= \"x\"";
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), TK_EINVAL);
	llm_params_default(&p);
	p.sampling.top_p = 1.5;
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), TK_EINVAL);
	llm_params_default(&p);
	const char *stops[LLM_MAX_STOP + 1];
	for (size_t i = 0; i <= LLM_MAX_STOP; i++)
		stops[i] = "x";
	p.stop = stops;
	p.n_stop = LLM_MAX_STOP + 1;
	assert_int_equal(llm_chat(b, hello, 1, &p, NULL, NULL, NULL, &r), TK_EINVAL);
	llm_backend_free(b);

	struct llm_options o;
	llm_options_default(&o);
	o.backend = "telepathy";
	assert_null(llm_backend_new(&o));
	assert_non_null(strstr(tk_err_detail(), "unknown backend 'telepathy'"));
	llm_options_default(&o);
	o.url = "ftp://example";
	assert_null(llm_backend_new(&o));
	assert_non_null(strstr(tk_err_detail(), "llm.url"));
	llm_options_default(&o);
	o.backoff_max_ms = 1;
	assert_null(llm_backend_new(&o));
	/* a remote backend needs a model from somewhere */
	llm_options_default(&o);
	o.metrics = reg;
	b = llm_backend_new(&o);
	assert_non_null(b);
	assert_string_equal(llm_backend_name(b), "openai");
	assert_int_equal(llm_chat(b, hello, 1, NULL, NULL, NULL, NULL, &r), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "no model"));
	llm_backend_free(b);
}

static void test_from_config(void **state)
{
	(void)state;
	char *envp[] = { NULL };
	struct tk_config *c;
	assert_int_equal(tk_config_load(NULL, envp, &c), 0);
	/* the default is a real backend, never the scripted one */
	struct llm_backend *b = llm_backend_from_config(c);
	assert_non_null(b);
	assert_string_equal(llm_backend_name(b), "ollama");
	llm_backend_free(b);
	assert_int_equal(tk_config_set(c, "llm.backend", "scripted", TK_CFG_SRC_FLAG), 0);
	assert_int_equal(tk_config_set(c, "llm.script", write_script("s.json", script),
				       TK_CFG_SRC_FLAG), 0);
	b = llm_backend_from_config(c);
	assert_non_null(b);
	assert_string_equal(llm_backend_name(b), "scripted");
	char **names;
	size_t n;
	assert_int_equal(llm_list_models(b, &names, &n), 0);
	assert_int_equal(n, 1);
	llm_models_free(names, n);
	llm_backend_free(b);
	assert_int_equal(tk_config_set(c, "llm.adapter_models", "[1]", TK_CFG_SRC_FLAG), 0);
	assert_null(llm_backend_from_config(c));
	assert_non_null(strstr(tk_err_detail(), "llm.adapter_models"));
	tk_config_free(c);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

static void test_probe(void **state)
{
	(void)state;
	struct llm_backend *b = scripted(write_script("s.json", script));
	assert_non_null(b);
	assert_int_equal(llm_probe_start(b, 5), TK_EINVAL);
	assert_int_equal(llm_probe_start(b, 10), 0);
	assert_int_equal(llm_probe_start(b, 10), TK_ESTATE);
	struct tk_series *up = tk_metric_series(
		tk_metric_gauge(reg, "tanuki_backend_up", "x", (const char *[]){ "backend" }, 1),
		(const char *[]){ "scripted" });
	for (int i = 0; i < 500 && tk_series_value(up) != 1; i++)
		sleep_ms(10);
	assert_true(tk_series_value(up) == 1);
	llm_probe_stop(b);
	llm_probe_stop(b);
	llm_backend_free(b);
}

static void test_breaker(void **state)
{
	(void)state;
	/* Port 1 on loopback refuses connections: each call fails with
	 * TK_EIO at once. */
	struct llm_options o;
	llm_options_default(&o);
	o.backend = "openai";
	o.url = "http://127.0.0.1:1/v1";
	o.model = "m";
	o.max_retries = 0;
	o.breaker_failures = 2;
	o.breaker_cooldown_ms = 200;
	o.metrics = reg;
	struct llm_backend *b = llm_backend_new(&o);
	assert_non_null(b);
	struct llm_result r;
	assert_int_equal(llm_chat(b, hello, 1, NULL, NULL, NULL, NULL, &r), TK_EIO);
	assert_int_equal(llm_chat(b, hello, 1, NULL, NULL, NULL, NULL, &r), TK_EIO);
	/* open: fails fast without trying */
	assert_int_equal(llm_chat(b, hello, 1, NULL, NULL, NULL, NULL, &r), TK_EBUSY);
	assert_non_null(strstr(tk_err_detail(), "circuit breaker open"));
	/* after the cooldown one trial goes through; it fails, so it opens again */
	sleep_ms(250);
	assert_int_equal(llm_chat(b, hello, 1, NULL, NULL, NULL, NULL, &r), TK_EIO);
	assert_int_equal(llm_chat(b, hello, 1, NULL, NULL, NULL, NULL, &r), TK_EBUSY);
	/* health is not gated by the breaker, and reports down */
	assert_int_equal(llm_health(b), TK_EIO);
	llm_backend_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scripted_turns),
		cmocka_unit_test(test_scripted_cancel),
		cmocka_unit_test(test_scripted_bad_files),
		cmocka_unit_test(test_params_checked),
		cmocka_unit_test(test_from_config),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_breaker),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
