/* testutil.c — see testutil.h. */
#include "testutil.h"

#include "core/err.h"
#include "engine/context.h"
#include "engine/model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void tk_test_mkdtemp(char *out, size_t cap)
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	int n = snprintf(out, cap, "%s/tanuki-test-XXXXXX", tmp);
	assert_true(n > 0 && (size_t)n < cap);
	assert_non_null(mkdtemp(out));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

void tk_test_rmtree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tk_test_read_file(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	size_t n;
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len - 1 == 0) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	fclose(f);
	buf[len] = '\0';
	if (len_out)
		*len_out = len;
	return buf;
}

int tk_test_run_child(void (*fn)(void *), void *arg, const char *dir)
{
	char out[4096], err[4096];
	snprintf(out, sizeof out, "%s/stdout", dir);
	snprintf(err, sizeof err, "%s/stderr", dir);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (o < 0 || e < 0)
			_exit(127);
		dup2(o, 1);
		dup2(e, 2);
		fn(arg);
		fflush(NULL);
		_exit(0);
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

uint64_t tk_test_rng_u64(uint64_t *state)
{
	uint64_t s = *state;
	s ^= s >> 12;
	s ^= s << 25;
	s ^= s >> 27;
	*state = s;
	return s * 0x2545f4914f6cdd1dull;
}

float tk_test_rng_normal(uint64_t *state)
{
	const double u = ((double)(tk_test_rng_u64(state) >> 11) + 0.5) / 9007199254740992.0;
	const double v = ((double)(tk_test_rng_u64(state) >> 11) + 0.5) / 9007199254740992.0;
	return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

void *tk_test_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	assert_non_null(p);
	return p;
}

double tk_test_rel_diff(const float *a, const float *b, size_t n)
{
	double d = 0.0, m = 1.0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)a[i] - (double)b[i]);
		if (isnan(e))
			return INFINITY;
		if (e > d)
			d = e;
		if (fabs((double)b[i]) > m)
			m = fabs((double)b[i]);
	}
	return d / m;
}

struct engine_model *tk_test_engine_model(const char *path)
{
	struct engine_model *m = engine_model_load(path);
	if (!m)
		fail_msg("load %s: %s", path, tk_err_detail());
	return m;
}

struct engine_ctx *tk_test_engine_ctx(const struct engine_model *m, int32_t n_ctx,
				      int32_t n_batch, int32_t n_threads, int32_t n_seq)
{
	struct engine_ctx_params p;
	engine_ctx_params_default(&p);
	p.n_ctx = n_ctx;
	p.n_batch = n_batch;
	p.n_threads = n_threads;
	p.n_seq_max = n_seq;
	struct engine_ctx *c = engine_ctx_new(m, &p);
	if (!c)
		fail_msg("engine context: %s", tk_err_detail());
	return c;
}
