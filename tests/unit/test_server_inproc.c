/*
 * test_server_inproc.c — the server's C API in one process: options
 * parsing, start on a free port, a submit-and-wait through the real HTTP
 * stack (tk_http_do), drain, reload, shutdown and free (ASan's leak checker
 * sees every allocation of the server's life cycle here).
 */
#include "testutil.h"

#include "core/err.h"
#include "obs/log.h"
#include "server/client.h"
#include "server/server.h"
#include "store/store.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static void test_listen_parse(void **state)
{
	(void)state;
	struct tk_server_opts o;
	tk_server_opts_default(&o);
	assert_int_equal(tk_server_opts_set_listen(&o, "0.0.0.0:9000"), 0);
	assert_string_equal(o.listen_host, "0.0.0.0");
	assert_int_equal(o.port, 9000);
	assert_int_equal(tk_server_opts_set_listen(&o, "[::1]:0"), 0);
	assert_string_equal(o.listen_host, "::1");
	assert_int_equal(o.port, 0);
	const char *bad[] = { "", "host", ":80", "h:", "h:65536", "h:-1", "[::1]80", "[::1", "h:8x" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (tk_server_opts_set_listen(&o, bad[i]) != TK_EINVAL)
			fail_msg("'%s' accepted", bad[i]);
	assert_int_equal(tk_server_opts_set_metrics_listen(&o, ""), 0);
	assert_string_equal(o.metrics_host, "");
}

static int post(struct tk_server *srv, const char *key, const char *body, struct tk_buf *out)
{
	struct tk_http_url u;
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d", tk_server_port(srv));
	assert_int_equal(tk_http_url_parse(url, &u), 0);
	struct tk_http_request rq = { .method = "POST", .path = "/run_task", .api_key = key,
				      .body = body, .body_len = strlen(body) };
	int status = 0;
	tk_buf_reset(out);
	assert_int_equal(tk_http_do(&u, &rq, &status, out, NULL, NULL), 0);
	return status;
}

static void test_life_cycle(void **state)
{
	(void)state;
	struct tk_store *st = tk_store_open(":memory:", NULL);
	assert_non_null(st);
	char key[TK_KEY_TEXT_LEN];
	assert_int_equal(tk_store_key_create(st, "t", TK_ROLE_USER, key, NULL), 0);

	struct tk_server_opts o;
	tk_server_opts_default(&o);
	assert_int_equal(tk_server_opts_set_listen(&o, "127.0.0.1:0"), 0);
	o.workers = 1;
	o.http_threads = 2;
	o.limits[TK_RL_SUBMIT] = (struct tk_rl_limit){ 0, 1 };
	struct tk_task_runner runner;
	assert_int_equal(tk_runner_noop_init(&runner, NULL), 0);
	struct tk_server *srv = tk_server_new(&o, st, &runner);
	assert_non_null(srv);
	assert_null(runner.run); /* moved into the server */
	assert_int_equal(tk_server_port(srv), 0);
	assert_int_equal(tk_server_start(srv), 0);
	assert_true(tk_server_port(srv) > 0);
	assert_int_equal(tk_server_start(srv), TK_ESTATE);

	struct tk_buf out = TK_BUF_INIT(1 << 20);
	assert_int_equal(post(srv, key, "{\"task_description\":\"in process\",\"wait\":10}", &out),
			 200);
	json_t *j = json_loads(tk_buf_str(&out), 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "completed");
	assert_string_equal(json_string_value(json_object_get(j, "result")), "noop: in process");
	char id[TK_ID_LEN];
	snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "task_id")));
	json_decref(j);
	struct tk_task t = { 0 };
	assert_int_equal(tk_store_task_get(st, id, &t), 0);
	assert_int_equal(t.status, TK_TASK_COMPLETED);
	tk_task_clear(&t);

	assert_int_equal(post(srv, "tk_wrong", "{\"task_description\":\"x\"}", &out), 401);

	/* Reload: bad limits are refused and change nothing. */
	struct tk_server_opts bad = o;
	bad.limits[TK_RL_SUBMIT] = (struct tk_rl_limit){ 5, 0 };
	assert_int_equal(tk_server_reload(srv, &bad), TK_EINVAL);
	assert_int_equal(tk_server_reload(srv, &o), 0);

	assert_false(tk_server_draining(srv));
	tk_server_begin_drain(srv);
	assert_true(tk_server_draining(srv));
	assert_int_equal(post(srv, key, "{\"task_description\":\"late\"}", &out), 503);
	assert_int_equal(tk_server_shutdown(srv, 1), 0);
	assert_int_equal(tk_server_shutdown(srv, 1), 0); /* idempotent */
	tk_server_free(srv);
	tk_server_free(NULL);
	tk_buf_free(&out);
	tk_store_close(st);
}

int main(void)
{
	tk_log_set_level(TK_LOG_WARNING); /* the access lines are not the subject */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_parse),
		cmocka_unit_test(test_life_cycle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
