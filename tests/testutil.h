/*
 * testutil.h — helpers shared by the unit tests.
 *
 * Every unit test is a cmocka program; include this after the cmocka
 * prelude. Paths: TK_SOURCE_DIR, TK_FIXTURES and TK_BINARY_DIR are compile-time
 * strings set by tests/CMakeLists.txt.
 */
#ifndef TK_TESTUTIL_H
#define TK_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Makes a fresh private directory under $TMPDIR (or /tmp); returns it in
 * out (cap bytes). Fails the test on error. */
void tk_test_mkdtemp(char *out, size_t cap);

/* Removes a directory tree made by tk_test_mkdtemp (best effort). */
void tk_test_rmtree(const char *path);

/* Reads a whole file into a malloc'd NUL-terminated buffer (caller frees);
 * *len_out gets the length when non-NULL. Fails the test on error. */
char *tk_test_read_file(const char *path, size_t *len_out);

/* Runs fn(arg) in a forked child with stdout/stderr redirected to files in
 * dir ("stdout", "stderr"); returns the raw wait status. */
int tk_test_run_child(void (*fn)(void *), void *arg, const char *dir);

#endif
