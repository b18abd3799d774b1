/*
 * test_cpu.c — cpu.h's GFNI decision: tk_cpu_use_gfni() follows the CPU's
 * flag and the TANUKI_NO_GFNI switch (each case in a child process, since
 * the decision is made once per process), and tk_cpu_describe() names the
 * flag exactly when it is set.
 */
#include "testutil.h"

#include "engine/cpu.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* TANUKI_NO_GFNI=value, then the decision; exits 0 when it equals want. */
struct gfni_case {
	const char *value; /* NULL: unset */
	bool want;
};

static void gfni_child(void *arg)
{
	const struct gfni_case *gc = arg;
	if (gc->value)
		setenv("TANUKI_NO_GFNI", gc->value, 1);
	else
		unsetenv("TANUKI_NO_GFNI");
	exit(tk_cpu_use_gfni() == gc->want ? 0 : 1);
}

static void test_gfni_switch(void **state)
{
	(void)state;
	const bool has = tk_cpu_features()->gfni;
	const struct gfni_case cases[] = {
		{ NULL, has }, { "0", has }, { "", has }, { "1", false }, { "yes", false },
	};
	char dir[256];
	tk_test_mkdtemp(dir, sizeof dir);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const int st = tk_test_run_child(gfni_child, (void *)&cases[i], dir);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail_msg("TANUKI_NO_GFNI=%s: tk_cpu_use_gfni() is not %d (cpu gfni %d)",
				 cases[i].value ? cases[i].value : "(unset)", cases[i].want, has);
	}
	tk_test_rmtree(dir);
	/* the decision is made once: a later change of the environment is not seen */
	const bool first = tk_cpu_use_gfni();
	setenv("TANUKI_NO_GFNI", first ? "1" : "0", 1);
	assert_int_equal(tk_cpu_use_gfni(), first);
	unsetenv("TANUKI_NO_GFNI");
}

static void test_describe_gfni(void **state)
{
	(void)state;
	char buf[512];
	tk_cpu_describe(buf, sizeof buf);
	print_message("cpu: %s\n", buf);
	bool named = false;
	for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " "))
		named = named || !strcmp(tok, "gfni");
	assert_int_equal(named, tk_cpu_features()->gfni);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gfni_switch),
		cmocka_unit_test(test_describe_gfni),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
