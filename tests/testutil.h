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

/* Deterministic random numbers for kernel tests (each test file keeps its
 * own state and seed): xorshift64* step of *state; a standard normal by
 * Box-Muller from two successive draws (u, then v). */
uint64_t tk_test_rng_u64(uint64_t *state);
float tk_test_rng_normal(uint64_t *state);

/* malloc(n) (at least 1 byte) that fails the test when out of memory. */
void *tk_test_xmalloc(size_t n);

/* max |a - b| / max(1, max |b|) over n floats (b the reference); INFINITY
 * when a difference is NaN. For comparing whole logit vectors. */
double tk_test_rel_diff(const float *a, const float *b, size_t n);

struct engine_model;

/* engine_model_load(path), failing the test with the error detail when it
 * cannot load. Free with engine_model_free. */
struct engine_model *tk_test_engine_model(const char *path);

/* An engine context on m (engine_ctx_params_default otherwise) that fails
 * the test, with the error detail, when it cannot be made. m is
 * borrowed; free the context with engine_ctx_free. */
struct engine_ctx *tk_test_engine_ctx(const struct engine_model *m, int32_t n_ctx,
				      int32_t n_batch, int32_t n_threads, int32_t n_seq);

#endif
