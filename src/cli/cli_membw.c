/*
 * cli_membw.c — the read-bandwidth probe (cli_membw.h). A membw_probe owns
 * its buffer (an anonymous mapping) and worker threads from membw_probe_new
 * to membw_probe_free (membw_measure: one call); the summing kernels and
 * the pairing arithmetic are stateless.
 */
#include "cli/cli_membw.h"

#include "core/err.h"
#include "core/time.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MEMBW_X86 1
#endif

/* 32-byte vectors (GCC/clang vector extension): lowered to whatever the
 * target has (two SSE2 loads without AVX). Lanes are 64-bit words, so a
 * vector sum is the word sum whatever the lane order. */
typedef uint64_t membw_v4 __attribute__((vector_size(32)));

#define MEMBW_PAGE 4096u
#define MEMBW_HUGE (2u << 20) /* the mapping starts on a 2 MiB boundary */
#define MEMBW_STEP 256u       /* bytes of one stream per step: 4 lines */
#define MEMBW_DEFAULT_REPS 10
#define MEMBW_FILL_MUL 0x9e3779b97f4a7c15ull

/* ---- kernels --------------------------------------------------------- */

/* Words of [p, p + len) one at a time; a trailing partial word zero-padded. */
static uint64_t sum_words_scalar(const unsigned char *p, size_t len)
{
	uint64_t s = 0;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		s += w;
	}
	if (i < len) {
		uint64_t w = 0;
		memcpy(&w, p + i, len - i);
		s += w;
	}
	return s;
}

/* MEMBW_PLAIN: one sequential stream, four 32-byte accumulators. */
static uint64_t sum_plain(const unsigned char *p, size_t len)
{
	membw_v4 a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	size_t n = len / 128 * 128;
	for (size_t i = 0; i < n; i += 128) {
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
	return s[0] + s[1] + s[2] + s[3] + sum_words_scalar(p + n, len - n);
}

/* The stream kernels: q[0..k) are the regions, each `part` bytes (a
 * multiple of MEMBW_STEP); step i reads bytes [i, i + 256) of every region
 * and prefetches [i + pf, i + pf + 256) of it while that stays inside the
 * region (pf == 0: no prefetch). Locality 3 (prefetcht0), as the decode
 * kernels do (quant_simd.h). */
#define MEMBW_PREFETCH_STEP(r, pf)                                   \
	do {                                                         \
		__builtin_prefetch((r) + (pf), 0, 3);                \
		__builtin_prefetch((r) + (pf) + 64, 0, 3);           \
		__builtin_prefetch((r) + (pf) + 128, 0, 3);          \
		__builtin_prefetch((r) + (pf) + 192, 0, 3);          \
	} while (0)

static uint64_t streams_generic(const unsigned char *const *q, int k, size_t part, size_t pf)
{
	membw_v4 a = { 0 }, b = { 0 };
	for (size_t i = 0; i < part; i += MEMBW_STEP) {
		bool ahead = pf && pf <= part - MEMBW_STEP - i;
		for (int s = 0; s < k; s++) {
			const unsigned char *r = q[s] + i;
			if (ahead)
				MEMBW_PREFETCH_STEP(r, pf);
			membw_v4 x[8];
			memcpy(x, r, sizeof x);
			a += x[0] + x[2] + x[4] + x[6];
			b += x[1] + x[3] + x[5] + x[7];
		}
	}
	membw_v4 t = a + b;
	return t[0] + t[1] + t[2] + t[3];
}

#ifdef MEMBW_X86
__attribute__((target("avx2"))) static uint64_t streams_avx2(const unsigned char *const *q, int k,
							      size_t part, size_t pf)
{
	__m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
	for (size_t i = 0; i < part; i += MEMBW_STEP) {
		bool ahead = pf && pf <= part - MEMBW_STEP - i;
		for (int s = 0; s < k; s++) {
			const unsigned char *r = q[s] + i;
			if (ahead)
				MEMBW_PREFETCH_STEP(r, pf);
			for (int o = 0; o < 256; o += 64) {
				a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(r + o)));
				b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(r + o + 32)));
			}
		}
	}
	uint64_t lanes[4];
	_mm256_storeu_si256((__m256i *)lanes, _mm256_add_epi64(a, b));
	return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

__attribute__((target("avx512f"))) static uint64_t streams_avx512(const unsigned char *const *q,
								  int k, size_t part, size_t pf)
{
	__m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512();
	for (size_t i = 0; i < part; i += MEMBW_STEP) {
		bool ahead = pf && pf <= part - MEMBW_STEP - i;
		for (int s = 0; s < k; s++) {
			const unsigned char *r = q[s] + i;
			if (ahead)
				MEMBW_PREFETCH_STEP(r, pf);
			a = _mm512_add_epi64(a, _mm512_loadu_si512(r));
			b = _mm512_add_epi64(b, _mm512_loadu_si512(r + 64));
			a = _mm512_add_epi64(a, _mm512_loadu_si512(r + 128));
			b = _mm512_add_epi64(b, _mm512_loadu_si512(r + 192));
		}
	}
	uint64_t lanes[8];
	_mm512_storeu_si512(lanes, _mm512_add_epi64(a, b));
	uint64_t s = 0;
	for (int i = 0; i < 8; i++)
		s += lanes[i];
	return s;
}
#endif

typedef uint64_t (*membw_kernel_fn)(const unsigned char *const *, int, size_t, size_t);

/* The widest loads this CPU has; its name in *isa. */
static membw_kernel_fn kernel_pick(const char **isa)
{
#ifdef MEMBW_X86
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) {
		*isa = "avx512";
		return streams_avx512;
	}
	if (__builtin_cpu_supports("avx2")) {
		*isa = "avx2";
		return streams_avx2;
	}
	*isa = "sse2";
#else
	*isa = "generic";
#endif
	return streams_generic;
}

static uint64_t sum_streams(membw_kernel_fn fn, const unsigned char *p, size_t len, int k,
			    size_t pf)
{
	const unsigned char *q[MEMBW_MAX_STREAMS];
	size_t part = len / ((size_t)k * MEMBW_STEP) * MEMBW_STEP;
	for (int s = 0; s < k; s++)
		q[s] = p + (size_t)s * part;
	uint64_t sum = part ? fn(q, k, part, pf) : 0;
	size_t done = (size_t)k * part;
	return sum + sum_words_scalar(p + done, len - done);
}

uint64_t membw_sum(const void *p, size_t len, int streams, int prefetch_bytes)
{
	const char *isa;
	membw_kernel_fn fn = kernel_pick(&isa);
	if (streams < 1)
		streams = 1;
	if (streams > MEMBW_MAX_STREAMS)
		streams = MEMBW_MAX_STREAMS;
	size_t pf = prefetch_bytes > 0 ? (size_t)prefetch_bytes : 0;
	return sum_streams(fn, p, len, streams, pf);
}

/* ---- measurement ------------------------------------------------------ */

struct membw_shared {
	unsigned char *buf; /* bytes, inside the mapping */
	size_t bytes;
	int threads;
	int reps;           /* the default pass count of a run */
	enum membw_method method;
	int streams;
	size_t pf;
	membw_kernel_fn fn;
	pthread_mutex_t mu; /* guards go, quit */
	pthread_cond_t cv;
	int go, quit;       /* every worker started / one could not be */
	int stop;           /* written by the owner before a start barrier,
			     * read by the workers after it: leave */
	pthread_barrier_t start, end;
};

struct membw_worker {
	struct membw_shared *sh;
	int idx;
	uint64_t sum; /* written by the worker between a start and an end
		       * barrier, read and reset by the owner outside */
	int64_t t0_ns, t1_ns; /* this pass: when it began and ended reading
			       * (same rule as sum) */
	pthread_t th;
};

/* This worker's slice: whole 4 KiB pages, the first threads one page more
 * when they do not divide evenly. */
static void slice_of(const struct membw_shared *sh, int idx, size_t *off, size_t *len)
{
	size_t pages = sh->bytes / MEMBW_PAGE;
	size_t per = pages / (size_t)sh->threads, extra = pages % (size_t)sh->threads;
	size_t i = (size_t)idx;
	size_t first = i * per + (i < extra ? i : extra);
	*off = first * MEMBW_PAGE;
	*len = (per + (i < extra ? 1 : 0)) * MEMBW_PAGE;
}

/* A worker: fill its slice, then one pass per start/end barrier pair until
 * `stop`. Between runs it waits at the start barrier (blocked, no CPU). */
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
	/* first touch: the pages of this slice are placed near this thread;
	 * word j of the buffer holds (j + 1) * MEMBW_FILL_MUL */
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = ((off + i) / 8 + 1) * MEMBW_FILL_MUL;
		memcpy(sh->buf + off + i, &v, sizeof v);
	}
	pthread_barrier_wait(&sh->end); /* filled */
	for (;;) {
		pthread_barrier_wait(&sh->start);
		if (sh->stop)
			return NULL;
		w->t0_ns = tk_time_mono_ns();
		if (sh->method == MEMBW_PLAIN)
			w->sum += sum_plain(sh->buf + off, len);
		else
			w->sum += sum_streams(sh->fn, sh->buf + off, len, sh->streams, sh->pf);
		w->t1_ns = tk_time_mono_ns();
		pthread_barrier_wait(&sh->end);
	}
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

static size_t phys_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	return pages > 0 && psz > 0 ? (size_t)pages * (size_t)psz : 0;
}

size_t membw_default_bytes(void)
{
	size_t b = read_llc_bytes() * 4;
	if (b < (256u << 20))
		b = 256u << 20;
	if (b > (2048u << 20))
		b = 2048u << 20;
	size_t phys = phys_bytes();
	if (phys && b > phys / 4)
		b = phys / 4;
	return b & ~(size_t)(MEMBW_PAGE - 1);
}

size_t membw_bytes_for(double working_set)
{
	double lo = 256.0 * (1u << 20), hi = 2048.0 * (1u << 20);
	double b = working_set < lo ? lo : working_set > hi ? hi : working_set;
	size_t phys = phys_bytes();
	if (phys && b > (double)(phys / 4))
		b = (double)(phys / 4);
	return (size_t)b & ~(size_t)(MEMBW_PAGE - 1);
}

int membw_method_parse(const char *s, enum membw_method *out)
{
	if (!strcmp(s, "streams"))
		*out = MEMBW_STREAMS;
	else if (!strcmp(s, "plain"))
		*out = MEMBW_PLAIN;
	else
		return tk_errf(TK_EINVAL, "membw: method '%s': expected streams or plain", s);
	return 0;
}

const char *membw_method_name(enum membw_method m)
{
	return m == MEMBW_PLAIN ? "plain" : "streams";
}

/* Resolves the defaults of *o into *sh and checks every range. */
static int opts_resolve(const struct membw_opts *o, struct membw_shared *sh)
{
	sh->bytes = (o->bytes ? o->bytes : membw_default_bytes()) & ~(size_t)(MEMBW_PAGE - 1);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	sh->threads = o->threads ? o->threads : (ncpu > 0 ? (int)ncpu : 1);
	sh->reps = o->reps ? o->reps : MEMBW_DEFAULT_REPS;
	sh->method = o->method;
	sh->streams = o->method == MEMBW_PLAIN ? 1 : o->streams ? o->streams : MEMBW_DEFAULT_STREAMS;
	int pf = o->prefetch_bytes ? o->prefetch_bytes : MEMBW_DEFAULT_PREFETCH;
	if (o->method == MEMBW_PLAIN || pf < 0)
		pf = 0;
	sh->pf = (size_t)pf;
	size_t half = phys_bytes() / 2;
	if (sh->bytes < MEMBW_MIN_BYTES || (half && sh->bytes > half))
		return tk_errf(TK_EINVAL, "membw: buffer of %zu bytes: expected %u..%zu", sh->bytes,
			       MEMBW_MIN_BYTES, half);
	if (sh->threads < 1 || sh->threads > MEMBW_MAX_THREADS)
		return tk_errf(TK_EINVAL, "membw: %d threads: expected 1..%d", sh->threads,
			       MEMBW_MAX_THREADS);
	if (sh->reps < 1 || sh->reps > MEMBW_MAX_REPS)
		return tk_errf(TK_EINVAL, "membw: %d reps: expected 1..%d", sh->reps,
			       MEMBW_MAX_REPS);
	if (o->method != MEMBW_STREAMS && o->method != MEMBW_PLAIN)
		return tk_errf(TK_EINVAL, "membw: unknown method %d", (int)o->method);
	if (sh->streams < 1 || sh->streams > MEMBW_MAX_STREAMS)
		return tk_errf(TK_EINVAL, "membw: %d streams: expected 1..%d", sh->streams,
			       MEMBW_MAX_STREAMS);
	if (o->prefetch_bytes < -1 || o->prefetch_bytes > MEMBW_MAX_PREFETCH_BYTES ||
	    (o->prefetch_bytes > 0 && o->prefetch_bytes % 64))
		return tk_errf(TK_EINVAL, "membw: prefetch distance %d: expected -1, 0 or a "
			       "multiple of 64 up to %d", o->prefetch_bytes,
			       MEMBW_MAX_PREFETCH_BYTES);
	return 0;
}

struct membw_probe {
	struct membw_shared sh;
	struct membw_worker *w; /* sh.threads, all started */
	void *map;              /* the whole mapping; sh.buf lies inside */
	size_t map_len;
	bool huge;
	const char *isa;
};

/* Frees what membw_probe_new made once its workers are gone (joined, or
 * never started): the barriers, the gate, the mapping, the records. */
static void probe_release(struct membw_probe *p)
{
	struct membw_shared *sh = &p->sh;
	pthread_barrier_destroy(&sh->end);
	pthread_barrier_destroy(&sh->start);
	pthread_cond_destroy(&sh->cv);
	pthread_mutex_destroy(&sh->mu);
	munmap(p->map, p->map_len);
	free(p->w);
	free(p);
}

struct membw_probe *membw_probe_new(const struct membw_opts *o)
{
	struct membw_probe *p = calloc(1, sizeof *p);
	if (!p) {
		tk_errf(TK_ENOMEM, "membw: out of memory");
		return NULL;
	}
	struct membw_shared *sh = &p->sh;
	if (opts_resolve(o, sh))
		goto out_free;
	p->isa = "generic";
	sh->fn = kernel_pick(&p->isa);
	if (sh->method == MEMBW_PLAIN)
		p->isa = "generic"; /* the 32-byte vector extension, as compiled */
	p->w = calloc((size_t)sh->threads, sizeof *p->w);
	if (!p->w) {
		tk_errf(TK_ENOMEM, "membw: out of memory");
		goto out_free;
	}
	/* A private anonymous mapping with room to start on a 2 MiB boundary,
	 * where a transparent huge page can back it. */
	p->map_len = sh->bytes + MEMBW_HUGE;
	p->map = mmap(NULL, p->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->map == MAP_FAILED) {
		tk_errf_sys(TK_ENOMEM, errno, "membw: cannot map %zu bytes", p->map_len);
		goto out_workers;
	}
	uintptr_t at = ((uintptr_t)p->map + MEMBW_HUGE - 1) & ~(uintptr_t)(MEMBW_HUGE - 1);
	sh->buf = (unsigned char *)at;
#ifdef MADV_HUGEPAGE
	/* Advice only: a kernel without transparent huge pages says no and
	 * the probe runs on 4 KiB pages (reported as hugepages false). */
	if (sh->method == MEMBW_STREAMS && !o->no_hugepages)
		p->huge = madvise(sh->buf, sh->bytes, MADV_HUGEPAGE) == 0;
	else
		(void)madvise(sh->buf, sh->bytes, MADV_NOHUGEPAGE);
#endif
	/* The owner's thread is a party of both barriers: it opens each pass
	 * and waits for its end (the workers time it). Workers pass a gate
	 * first, so that a thread that cannot start leaves no one stuck at a
	 * barrier. */
	pthread_mutex_init(&sh->mu, NULL);
	pthread_cond_init(&sh->cv, NULL);
	pthread_barrier_init(&sh->start, NULL, (unsigned)sh->threads + 1);
	pthread_barrier_init(&sh->end, NULL, (unsigned)sh->threads + 1);
	int started = 0;
	for (; started < sh->threads; started++) {
		p->w[started] = (struct membw_worker){ .sh = sh, .idx = started };
		if (pthread_create(&p->w[started].th, NULL, membw_main, &p->w[started]))
			break;
	}
	pthread_mutex_lock(&sh->mu);
	sh->go = started == sh->threads;
	sh->quit = !sh->go;
	pthread_cond_broadcast(&sh->cv);
	pthread_mutex_unlock(&sh->mu);
	if (started < sh->threads) {
		for (int i = 0; i < started; i++)
			pthread_join(p->w[i].th, NULL);
		tk_errf(TK_EIO, "membw: cannot start thread %d of %d", started + 1, sh->threads);
		goto out_sync;
	}
	pthread_barrier_wait(&sh->end); /* buffer filled */
	return p;
out_sync:
	probe_release(p);
	return NULL;
out_workers:
	free(p->w);
out_free:
	free(p);
	return NULL;
}

int membw_probe_run(struct membw_probe *p, int passes, struct membw_result *out,
		    double *pass_gbps, double *wall_ms)
{
	memset(out, 0, sizeof *out);
	if (wall_ms)
		*wall_ms = 0;
	struct membw_shared *sh = &p->sh;
	if (!passes)
		passes = sh->reps;
	if (passes < 1 || passes > MEMBW_MAX_REPS)
		return tk_errf(TK_EINVAL, "membw: %d passes: expected 1..%d", passes,
			       MEMBW_MAX_REPS);
	const int64_t t_call = tk_time_mono_ns();
	/* the workers are parked at the start barrier: their sums are ours */
	for (int i = 0; i < sh->threads; i++)
		p->w[i].sum = 0;
	double best = 0, total = 0;
	for (int r = 0; r < passes; r++) {
		pthread_barrier_wait(&sh->start);
		pthread_barrier_wait(&sh->end);
		/* The pass lasts from the first worker's start to the last one's
		 * end, by the workers' own clocks. Not the owner's window
		 * between the barriers: with as many workers as CPUs, the owner
		 * is a thread too many when the barrier opens and may run again
		 * only after the workers are done (its window then holds part
		 * of the pass or none of it: readings of 50 to 20000 GB/s). */
		int64_t t0 = p->w[0].t0_ns, t1 = p->w[0].t1_ns;
		for (int i = 1; i < sh->threads; i++) {
			if (p->w[i].t0_ns < t0)
				t0 = p->w[i].t0_ns;
			if (p->w[i].t1_ns > t1)
				t1 = p->w[i].t1_ns;
		}
		int64_t dt = t1 - t0;
		double gbps = dt > 0 ? (double)sh->bytes / (double)dt : 0.0; /* bytes/ns = GB/s */
		if (pass_gbps)
			pass_gbps[r] = gbps;
		total += gbps;
		if (gbps > best)
			best = gbps;
	}
	for (int i = 0; i < sh->threads; i++)
		out->checksum += p->w[i].sum;
	out->best_gbps = best;
	out->mean_gbps = total / passes;
	out->bytes = sh->bytes;
	out->threads = sh->threads;
	out->reps = passes;
	out->method = sh->method;
	out->streams = sh->streams;
	out->prefetch_bytes = (int)sh->pf;
	out->hugepages = p->huge;
	out->isa = p->isa;
	if (wall_ms)
		*wall_ms = (double)(tk_time_mono_ns() - t_call) / 1e6;
	return 0;
}

void membw_probe_free(struct membw_probe *p)
{
	if (!p)
		return;
	struct membw_shared *sh = &p->sh;
	sh->stop = 1; /* published by the barrier below */
	pthread_barrier_wait(&sh->start);
	for (int i = 0; i < sh->threads; i++)
		pthread_join(p->w[i].th, NULL);
	probe_release(p);
}

int membw_measure(const struct membw_opts *o, struct membw_result *out)
{
	memset(out, 0, sizeof *out);
	struct membw_probe *p = membw_probe_new(o);
	if (!p)
		return tk_err_last() ? tk_err_last() : TK_ENOMEM;
	int rc = membw_probe_run(p, 0, out, NULL, NULL);
	membw_probe_free(p);
	return rc;
}

/* ---- pairing ------------------------------------------------------------ */

int membw_pair_reps(const double *probe_gbps, const double *decode_gbps, int n_reps,
		    struct membw_pair *pairs, struct membw_pair_stats *st)
{
	if (n_reps < 1)
		return tk_errf(TK_EINVAL, "membw: pairing %d repetitions: expected at least 1",
			       n_reps);
	for (int i = 0; i <= n_reps; i++)
		if (!isfinite(probe_gbps[i]) || probe_gbps[i] <= 0)
			return tk_errf(TK_EINVAL, "membw: probe %d of %d read %g GB/s: expected "
				       "a finite figure > 0", i, n_reps + 1, probe_gbps[i]);
	for (int i = 0; i < n_reps; i++)
		if (!isfinite(decode_gbps[i]) || decode_gbps[i] < 0)
			return tk_errf(TK_EINVAL, "membw: repetition %d read %g GB/s: expected a "
				       "finite figure >= 0", i, decode_gbps[i]);
	struct membw_pair_stats s = { 0 };
	double sum = 0;
	for (int i = 0; i < n_reps; i++) {
		struct membw_pair *q = &pairs[i];
		q->before_gbps = probe_gbps[i];
		q->after_gbps = probe_gbps[i + 1];
		q->ceiling_gbps = (q->before_gbps + q->after_gbps) / 2;
		q->decode_gbps = decode_gbps[i];
		q->pct = 100.0 * q->decode_gbps / q->ceiling_gbps;
		sum += q->pct;
		if (!i || q->pct < s.pct_min)
			s.pct_min = q->pct;
		if (!i || q->pct > s.pct_max)
			s.pct_max = q->pct;
		if (!i || q->ceiling_gbps < s.ceiling_min)
			s.ceiling_min = q->ceiling_gbps;
		if (!i || q->ceiling_gbps > s.ceiling_max)
			s.ceiling_max = q->ceiling_gbps;
	}
	s.pct_mean = sum / n_reps;
	*st = s;
	return 0;
}
