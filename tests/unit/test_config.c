/* test_config.c — defaults < file < env < flags, validation messages, masking. */
#include "testutil.h"

#include "core/config.h"
#include "core/env.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[512];

static const char *write_cfg(const char *name, const char *text)
{
	static char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static int setup(void **state)
{
	(void)state;
	tk_test_mkdtemp(dir, sizeof dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tk_test_rmtree(dir);
	return 0;
}

static char *no_env[] = { NULL };

/* Tooling switches: set by any value but "" and "0", read when asked. */
static void test_env_flag(void **state)
{
	(void)state;
	const char *name = "TANUKI_NO_TEST_ENV_FLAG";
	unsetenv(name);
	assert_false(tk_env_flag(name));
	static const char *const off[] = { "", "0" }, *const on[] = { "1", "yes", "00", " " };
	for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
		assert_int_equal(setenv(name, off[i], 1), 0);
		assert_false(tk_env_flag(name));
	}
	for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
		assert_int_equal(setenv(name, on[i], 1), 0);
		assert_true(tk_env_flag(name));
	}
	unsetenv(name);
	assert_false(tk_env_flag(name));
}

static void test_defaults(void **state)
{
	(void)state;
	struct tk_config *c;
	assert_int_equal(tk_config_load(NULL, no_env, &c), 0);
	/* Every setting's default parses and is reported as the default. */
	size_t n;
	const struct tk_cfg_setting *s = tk_config_settings(&n);
	assert_true(n > 10);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(tk_config_source(c, s[i].key), TK_CFG_SRC_DEFAULT);
	assert_string_equal(tk_config_str(c, "server.listen"), "127.0.0.1:8080");
	assert_int_equal(tk_config_int(c, "server.rate_limit_per_min"), 5);
	assert_false(tk_config_bool(c, "sandbox.allow_degraded"));
	assert_true(json_is_null(tk_config_json(c, "sandbox.profiles")));
	tk_config_free(c);
	tk_config_free(NULL);
}

static void test_precedence(void **state)
{
	(void)state;
	const char *path = write_cfg("p.json",
		"{\"server\":{\"workers\":3,\"listen\":\"0.0.0.0:9000\"},"
		" \"log\":{\"level\":\"debug\"}, \"sandbox\":{\"profiles\":{\"go\":{\"binds\":[\"/usr\"]}}}}");
	char *env[] = { "TANUKI_SERVER_WORKERS=5", "HOME=/root", "TANUKI_LOG_LEVEL=error", NULL };
	struct tk_config *c;
	assert_int_equal(tk_config_load(path, env, &c), 0);
	/* file only */
	assert_string_equal(tk_config_str(c, "server.listen"), "0.0.0.0:9000");
	assert_int_equal(tk_config_source(c, "server.listen"), TK_CFG_SRC_FILE);
	/* env beats file */
	assert_int_equal(tk_config_int(c, "server.workers"), 5);
	assert_int_equal(tk_config_source(c, "server.workers"), TK_CFG_SRC_ENV);
	assert_string_equal(tk_config_str(c, "log.level"), "error");
	/* a free-form JSON section */
	const json_t *p = tk_config_json(c, "sandbox.profiles");
	assert_true(json_is_array(json_object_get(json_object_get(p, "go"), "binds")));
	/* flag beats env */
	assert_int_equal(tk_config_set_arg(c, "server.workers=7"), 0);
	assert_int_equal(tk_config_int(c, "server.workers"), 7);
	assert_int_equal(tk_config_source(c, "server.workers"), TK_CFG_SRC_FLAG);
	/* a lower source cannot override a higher one afterwards */
	assert_int_equal(tk_config_set(c, "server.workers", "9", TK_CFG_SRC_ENV), 0);
	assert_int_equal(tk_config_int(c, "server.workers"), 7);
	tk_config_free(c);
}

static void test_bad_values_name_key_and_source(void **state)
{
	(void)state;
	struct tk_config *c;
	const char *path = write_cfg("bad.json",
		"{\"server\":{\"workers\":\"many\",\"typo\":1,\"rate_limit_per_min\":-1},"
		" \"log\":{\"level\":\"loud\"}}");
	char *env[] = { "TANUKI_SERVER_HTTP_THREADS=lots", "TANUKI_NOPE=1", NULL };
	assert_int_equal(tk_config_load(path, env, &c), TK_EINVAL);
	assert_null(c);
	const char *d = tk_err_detail();
	assert_non_null(strstr(d, "server.workers: expected an integer, got string"));
	assert_non_null(strstr(d, "unknown setting 'server.typo'"));
	assert_non_null(strstr(d, "server.rate_limit_per_min: must be in 0..1000000, got -1"));
	assert_non_null(strstr(d, "log.level: must be one of debug|info|warning|error|critical, got 'loud'"));
	assert_non_null(strstr(d, "TANUKI_SERVER_HTTP_THREADS: server.http_threads: expected an integer, got 'lots'"));
	assert_non_null(strstr(d, "TANUKI_NOPE: not a Tanuki setting"));
	/* The file path is named for file problems. */
	assert_non_null(strstr(d, path));

	assert_int_equal(tk_config_load(write_cfg("syntax.json", "{\"a\":"), no_env, &c), TK_EFORMAT);
	assert_non_null(strstr(tk_err_detail(), "line 1"));
	assert_int_equal(tk_config_load(write_cfg("arr.json", "[1]"), no_env, &c), TK_EFORMAT);
	char missing[700];
	snprintf(missing, sizeof missing, "%s/none.json", dir);
	assert_int_equal(tk_config_load(missing, no_env, &c), TK_EIO);
	assert_non_null(strstr(tk_err_detail(), "none.json"));

	assert_int_equal(tk_config_load(NULL, no_env, &c), 0);
	assert_int_equal(tk_config_set_arg(c, "server.workers"), TK_EINVAL);
	assert_int_equal(tk_config_set_arg(c, "no.such=1"), TK_ENOENT);
	assert_int_equal(tk_config_set_arg(c, "server.workers=0"), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "server.workers: must be in 1..256, got 0"));
	assert_int_equal(tk_config_set_arg(c, "sandbox.allow_degraded=maybe"), TK_EINVAL);
	assert_int_equal(tk_config_set_arg(c, "sandbox.profiles={bad json"), TK_EINVAL);
	assert_int_equal(tk_config_set_arg(c, "sandbox.allow_degraded=yes"), 0);
	assert_true(tk_config_bool(c, "sandbox.allow_degraded"));
	tk_config_free(c);
}

static int seen_secrets;
static int count_secret(const char *v)
{
	if (!strcmp(v, "sk-very-secret-value"))
		seen_secrets++;
	return 0;
}

static void test_dump_masks_secrets(void **state)
{
	(void)state;
	char *env[] = { "TANUKI_SERVER_ADMIN_KEY=sk-very-secret-value", NULL };
	struct tk_config *c;
	assert_int_equal(tk_config_load(NULL, env, &c), 0);
	assert_string_equal(tk_config_str(c, "server.admin_key"), "sk-very-secret-value");
	struct tk_buf b = TK_BUF_INIT(1 << 20);
	assert_int_equal(tk_config_dump(c, true, &b), 0);
	assert_null(strstr(tk_buf_str(&b), "sk-very-secret-value"));
	json_error_t e;
	json_t *root = json_loads(tk_buf_str(&b), 0, &e);
	assert_non_null(root);
	json_t *k = json_object_get(json_object_get(json_object_get(root, "server"), "admin_key"), "value");
	assert_string_equal(json_string_value(k), "********");
	json_t *src = json_object_get(json_object_get(json_object_get(root, "server"), "admin_key"), "source");
	assert_string_equal(json_string_value(src), "env");
	json_decref(root);
	tk_buf_free(&b);
	tk_config_register_secrets(c, count_secret);
	assert_int_equal(seen_secrets, 1);
	tk_config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_bad_values_name_key_and_source),
		cmocka_unit_test(test_dump_masks_secrets),
		cmocka_unit_test(test_env_flag),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
