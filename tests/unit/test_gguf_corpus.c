/* test_gguf_corpus.c — replays the GGUF fuzz target (tests/fuzz/fuzz_gguf.c,
 * compiled in here) over its seed corpus and over every fixture model, in the
 * normal build without libFuzzer. Files named ok-* must open, bad-* must be
 * refused with a message; none may crash (the ASan build checks the rest). */
#include "testutil.h"

#include "core/err.h"
#include "engine/gguf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_gguf.c"

static size_t replay_dir(const char *dir, bool check_names)
{
	DIR *d = opendir(dir);
	if (!d)
		fail_msg("cannot open %s", dir);
	struct dirent *e;
	size_t n = 0;
	char path[1024];
	while ((e = readdir(d))) {
		if (!strstr(e->d_name, ".gguf"))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		size_t len;
		char *data = tk_test_read_file(path, &len);
		assert_int_equal(LLVMFuzzerTestOneInput((const uint8_t *)data, len), 0);
		struct tk_gguf *g = tk_gguf_open_buffer(data, len);
		if (check_names && !strncmp(e->d_name, "ok-", 3) && !g)
			fail_msg("%s refused: %s", e->d_name, tk_err_detail());
		if (check_names && !strncmp(e->d_name, "bad-", 4)) {
			if (g)
				fail_msg("%s accepted", e->d_name);
			assert_true(strncmp(tk_err_detail(), "gguf: ", 6) == 0);
		}
		tk_gguf_close(g);
		free(data);
		n++;
	}
	closedir(d);
	return n;
}

static void test_corpus(void **state)
{
	(void)state;
	assert_true(replay_dir(TK_SOURCE_DIR "/tests/fuzz/corpus/gguf", true) >= 10);
}

static void test_fixtures(void **state)
{
	(void)state;
	assert_true(replay_dir(TK_FIXTURES "/models", false) >= 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_fixtures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
