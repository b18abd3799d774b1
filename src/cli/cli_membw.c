/*
 * cli_membw.c — the read-bandwidth probe (cli_membw.h). Owns its buffer and
 * worker threads for the length of one membw_measure call.
 */
#include "cli/cli_membw.h"

#include "core/err.h"
#include "core/time.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 32-byte vectors (GCC/clang vector extension): lowered to whatever the
 * target has (two SSE2 loads without AVX), enough to saturate memory. */
typedef uint64_t membw_v4 __attribute__((vector_size(32)));

#define MEMBW_ALIGN 64

struct membw_shared {
	unsigned char *buf;
	size_t bytes;
	int threads;
	int reps;
	pthread_mutex_t mu; /* guards go, quit */
	pthread_cond_t cv;
	int go, quit;       /* every worker started / one could not be */
	pthread_barrier_t start, end;
};

struct membw_worker {
	struct membw_shared *sh;
	int idx;
	uint64_t sum;
	pthread_t th;
};

/* This worker's slice: a whole number of 128-byte steps. */
static void slice_of(const struct membw_shared *sh, int idx, size_t *off, size_t *len)
{
	size_t steps = sh->bytes / 128;
	size_t per = steps / (size_t)sh->threads, extra = steps % (size_t)sh->threads;
	size_t i = (size_t)idx;
	size_t first = i * per + (i < extra ? i : extra);
	*off = first * 128;
	*len = (per + (i < extra ? 1 : 0)) * 128;
}

static uint64_t sum_slice(const unsigned char *p, size_t len)
{
	membw_v4 a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	for (size_t i = 0; i < len; i += 128) {
		membw_v4 x0, x1, x2, x3;
		memcpy(&x0, p + i, 32);
		memcpy(&x1, p + i + 32, 32);
		memcpy(&x2, p + i + 64, 32);
		memcpy(&x3, p + i + 96, 32);
		a += x0;
		b += x1;
		c += x2;
		d += x3;
	}
	membw_v4 s = a + b + c + d;
	return s[0] + s[1] + s[2] + s[3];
}

static void *membw_main(void *arg)
{
	struct membw_worker *w = arg;
	struct membw_shared *sh = w->sh;
	pthread_mutex_lock(&sh->mu);
	while (!sh->go && !sh->quit)
		pthread_cond_wait(&sh->cv, &sh->mu);
	int quit = sh->quit;
	pthread_mutex_unlock(&sh->mu);
	if (quit)
		return NULL;
	size_t off, len;
	slice_of(sh, w->idx, &off, &len);
	/* first touch: the pages of this slice are placed near this thread */
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = (uint64_t)(off + i) * 0x9e3779b97f4a7c15ull;
		memcpy(sh->buf + off + i, &v, sizeof v);
	}
	pthread_barrier_wait(&sh->end); /* filled */
	for (int r = 0; r < sh->reps; r++) {
		pthread_barrier_wait(&sh->start);
		w->sum += sum_slice(sh->buf + off, len);
		pthread_barrier_wait(&sh->end);
	}
	return NULL;
}

static size_t read_llc_bytes(void)
{
	size_t best = 0;
	for (int i = 0; i < 8; i++) {
		char path[96], line[64];
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(line, sizeof line, f)) {
			char *end;
			unsigned long long v = strtoull(line, &end, 10);
			if (*end == 'K')
				v <<= 10;
			else if (*end == 'M')
				v <<= 20;
			if (v > best)
				best = (size_t)v;
		}
		fclose(f);
	}
	return best;
}

size_t membw_default_bytes(void)
{
	size_t b = read_llc_bytes() * 4;
	if (b < (256u << 20))
		b = 256u << 20;
	if (b > (2048u << 20))
		b = 2048u << 20;
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	if (pages > 0 && psz > 0) {
		size_t quarter = (size_t)pages / 4 * (size_t)psz;
		if (b > quarter)
			b = quarter;
	}
	return b & ~(size_t)127;
}

int membw_measure(const struct membw_opts *o, struct membw_result *out)
{
	memset(out, 0, sizeof *out);
	struct membw_shared sh = { 0 };
	sh.bytes = o->bytes ? o->bytes : membw_default_bytes();
	sh.bytes &= ~(size_t)127;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	sh.threads = o->threads ? o->threads : (ncpu > 0 ? (int)ncpu : 1);
	sh.reps = o->reps ? o->reps : 5;
	if (sh.bytes < MEMBW_MIN_BYTES || sh.threads < 1 || sh.threads > MEMBW_MAX_THREADS ||
	    sh.reps < 1 || sh.reps > 1000)
		return tk_errf(TK_EINVAL, "membw: bad options (%zu bytes, %d threads, %d reps)",
			       sh.bytes, sh.threads, sh.reps);
	int rc = 0, started = 0;
	struct membw_worker *w = calloc((size_t)sh.threads, sizeof *w);
	sh.buf = aligned_alloc(MEMBW_ALIGN, sh.bytes);
	if (!w || !sh.buf) {
		rc = tk_errf(TK_ENOMEM, "membw: cannot allocate %zu bytes", sh.bytes);
		goto out_free;
	}
	/* The main thread is a party of both barriers: it times the reps.
	 * Workers pass a gate first, so that a thread that cannot start
	 * leaves no one stuck at a barrier. */
	pthread_mutex_init(&sh.mu, NULL);
	pthread_cond_init(&sh.cv, NULL);
	pthread_barrier_init(&sh.start, NULL, (unsigned)sh.threads + 1);
	pthread_barrier_init(&sh.end, NULL, (unsigned)sh.threads + 1);
	for (; started < sh.threads; started++) {
		w[started] = (struct membw_worker){ .sh = &sh, .idx = started };
		if (pthread_create(&w[started].th, NULL, membw_main, &w[started]))
			break;
	}
	pthread_mutex_lock(&sh.mu);
	sh.go = started == sh.threads;
	sh.quit = !sh.go;
	pthread_cond_broadcast(&sh.cv);
	pthread_mutex_unlock(&sh.mu);
	if (started < sh.threads) {
		for (int i = 0; i < started; i++)
			pthread_join(w[i].th, NULL);
		rc = tk_errf(TK_EIO, "membw: cannot start thread %d of %d", started + 1,
			     sh.threads);
		goto out_barriers;
	}
	pthread_barrier_wait(&sh.end); /* buffer filled */
	double best = 0, total = 0;
	for (int r = 0; r < sh.reps; r++) {
		pthread_barrier_wait(&sh.start);
		int64_t t0 = tk_time_mono_ns();
		pthread_barrier_wait(&sh.end);
		int64_t dt = tk_time_mono_ns() - t0;
		double gbps = dt > 0 ? (double)sh.bytes / (double)dt : 0.0; /* bytes/ns = GB/s */
		total += gbps;
		if (gbps > best)
			best = gbps;
	}
	for (int i = 0; i < sh.threads; i++) {
		pthread_join(w[i].th, NULL);
		out->checksum += w[i].sum;
	}
	out->best_gbps = best;
	out->mean_gbps = total / sh.reps;
	out->bytes = sh.bytes;
	out->threads = sh.threads;
	out->reps = sh.reps;
out_barriers:
	pthread_barrier_destroy(&sh.end);
	pthread_barrier_destroy(&sh.start);
	pthread_cond_destroy(&sh.cv);
	pthread_mutex_destroy(&sh.mu);
out_free:
	free(sh.buf);
	free(w);
	return rc;
}
