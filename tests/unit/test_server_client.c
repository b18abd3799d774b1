/*
 * test_server_client.c — the API client's URL parser (tanuki tasks --url):
 * hosts, IPv6 brackets, ports, base paths, and the refusals.
 */
#include "testutil.h"

#include "core/err.h"
#include "server/client.h"

static void test_good(void **state)
{
	(void)state;
	struct tk_http_url u;
	assert_int_equal(tk_http_url_parse("http://127.0.0.1:8080", &u), 0);
	assert_string_equal(u.host, "127.0.0.1");
	assert_string_equal(u.port, "8080");
	assert_string_equal(u.base_path, "");
	assert_int_equal(tk_http_url_parse("http://localhost", &u), 0);
	assert_string_equal(u.host, "localhost");
	assert_string_equal(u.port, "80");
	assert_int_equal(tk_http_url_parse("http://[::1]:9/api/v1/", &u), 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.port, "9");
	assert_string_equal(u.base_path, "/api/v1");
}

static void test_bad(void **state)
{
	(void)state;
	struct tk_http_url u;
	assert_int_equal(tk_http_url_parse("https://x", &u), TK_EUNSUPPORTED);
	const char *bad[] = { "ftp://x", "127.0.0.1:80", "http://", "http://:80", "http://x:",
			      "http://x:123456", "http://[::1", "http://x:80x", "http://x?y" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (tk_http_url_parse(bad[i], &u) != TK_EINVAL)
			fail_msg("'%s' accepted or wrong code", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
