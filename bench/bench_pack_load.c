/*
 * bench_pack_load.c — the load-time packers (pack_ref.h) alone: how fast
 * each layout's packer turns one weight's file rows into packed groups:
 * the reference packer, the portable words one and the one the engine
 * calls (AVX-512 where allowed), one thread. Prints numbers
 * only.
 *
 *   bench_pack_load [--shape N_INxN_OUT] [--reps N] [--fresh]
 *   bench_pack_load --touch MIB [--4k]
 *
 *   --shape  the weight (default 2048x5632, llama-1.1B's gate/up)
 *   --reps   timed passes per packer, the best kept (default 5)
 *   --fresh  pack into a new anonymous mapping each pass (MADV_HUGEPAGE,
 *            as model.c does), so the time includes the kernel's zeroing
 *            of the pages at first touch; by default the destination is
 *            written once before timing and the time is the shuffle alone
 *   --touch  no packing: maps MIB of anonymous memory as model.c does
 *            (MADV_HUGEPAGE; --4k: without it), writes one byte per 4 KiB
 *            page and prints the first-touch time and GB/s, then a memset
 *            of the now resident pages; three rounds, each a new mapping
 *            (the first-touch cost of a packed copy, zeroing included)
 *
 * For each of q8_0, q4_k, q6_k, f16: the file rows are random bytes (the
 * packers move bits and never interpret them); the two packers run
 * interleaved within each repetition; GB/s is the weight's file bytes over
 * the best time of the engine's packer. The other packers' groups are
 * compared with the reference's (must be identical) so a broken packer
 * cannot look fast.
 */
#include "bench_util.h"
#include "engine/pack_f16.h"
#include "engine/pack_q4_k.h"
#include "engine/pack_q6_k.h"
#include "engine/pack_ref.h"
#include "engine/quant.h"
#include "engine/quant_pack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct packer {
	const char *name;
	int type;
	tk_pack_fn ref, words, fast;
};

static const struct packer packers[] = {
	{ "q8_0", TK_TYPE_Q8_0, tk_pack_q8_0_pack_ref, tk_pack_q8_0_pack_words, tk_pack_q8_0_pack },
	{ "q4_k", TK_TYPE_Q4_K, tk_pack_q4_k_pack_ref, tk_pack_q4_k_pack_words, tk_pack_q4_k_pack },
	{ "q6_k", TK_TYPE_Q6_K, tk_pack_q6_k_pack_ref, tk_pack_q6_k_pack_words, tk_pack_q6_k_pack },
	{ "f16", TK_TYPE_F16, tk_pack_f16_pack_ref, tk_pack_f16_pack_words, tk_pack_f16_pack },
};

static unsigned char *map_dst(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	(void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
	return p;
}

static int touch_probe(long long mib, int huge)
{
	const size_t n = (size_t)mib << 20;
	for (int round = 0; round < 3; round++) {
		unsigned char *p =
			mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			fprintf(stderr, "bench_pack_load: cannot map %lld MiB\n", mib);
			return 1;
		}
#ifdef MADV_HUGEPAGE
		if (huge)
			(void)madvise(p, n, MADV_HUGEPAGE);
#endif
		const double t0 = bench_now_s();
		for (size_t i = 0; i < n; i += 4096)
			p[i] = 1;
		const double t1 = bench_now_s();
		memset(p, 2, n);
		const double t2 = bench_now_s();
		printf("%s pages, %lld MiB: first touch %.0f ms (%.2f GB/s), memset after %.0f ms "
		       "(%.2f GB/s)\n", huge ? "huge" : "4k", mib, (t1 - t0) * 1e3,
		       (double)n / (t1 - t0) / 1e9, (t2 - t1) * 1e3, (double)n / (t2 - t1) / 1e9);
		munmap(p, n);
	}
	return 0;
}

/* Packs every group of the weight; returns the seconds taken. */
static double pack_all(tk_pack_fn fn, unsigned char *dst, const unsigned char *rows,
		       size_t row_bytes, int64_t n_in, int64_t ng, size_t gsize)
{
	const double t0 = bench_now_s();
	for (int64_t g = 0; g < ng; g++)
		fn(dst + (size_t)g * gsize, rows + (size_t)g * TK_PACK_ROWS * row_bytes, row_bytes,
		   n_in);
	return bench_now_s() - t0;
}

int main(int argc, char **argv)
{
	long long n_in = 2048, n_out = 5632;
	int reps = 5, fresh = 0, huge = 1;
	long long touch = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
			if (sscanf(argv[++i], "%lldx%lld", &n_in, &n_out) != 2 || n_in <= 0 ||
			    n_out < TK_PACK_ROWS || n_in % 256) {
				fprintf(stderr, "bench_pack_load: --shape wants N_INxN_OUT, N_IN a "
						"multiple of 256, N_OUT >= 16\n");
				return 2;
			}
		} else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
			reps = atoi(argv[++i]);
			if (reps < 1 || reps > 1000) {
				fprintf(stderr, "bench_pack_load: --reps wants 1..1000\n");
				return 2;
			}
		} else if (!strcmp(argv[i], "--fresh")) {
			fresh = 1;
		} else if (!strcmp(argv[i], "--touch") && i + 1 < argc) {
			touch = atoll(argv[++i]);
			if (touch < 1 || touch > (1 << 20)) {
				fprintf(stderr, "bench_pack_load: --touch wants 1..1048576 MiB\n");
				return 2;
			}
		} else if (!strcmp(argv[i], "--4k")) {
			huge = 0;
		} else {
			fprintf(stderr, "usage: bench_pack_load [--shape N_INxN_OUT] [--reps N] [--fresh]\n"
					"       bench_pack_load --touch MIB [--4k]\n");
			return 2;
		}
	}
	if (touch)
		return touch_probe(touch, huge);
	const int64_t ng = n_out / TK_PACK_ROWS;
	printf("shape %lldx%lld (%lld groups), one thread, best of %d, destination %s\n", n_in,
	       n_out, (long long)ng, reps, fresh ? "fresh pages each pass" : "pre-faulted");
	printf("packers: ref (element by element), words (portable), fast (what the engine "
	       "calls: %s)\n", tk_pack_load_avx512(4096) ? "avx512" : "words");
	printf("%-6s %8s %8s %9s %8s %10s %8s\n", "type", "MiB", "ref ms", "words ms", "fast ms",
	       "fast GB/s", "speed-up");
	int rc = 0;
	for (size_t k = 0; k < sizeof packers / sizeof packers[0]; k++) {
		const struct packer *P = &packers[k];
		size_t rb = 0;
		if (tk_type_row_size(P->type, n_in, &rb))
			continue;
		const size_t gsize = tk_pack_traits_ref(P->type)->group_size(n_in);
		const size_t file_bytes = (size_t)ng * TK_PACK_ROWS * rb;
		const size_t out_bytes = (size_t)ng * gsize;
		unsigned char *rows = malloc(file_bytes);
		unsigned char *want = map_dst(out_bytes), *got = fresh ? NULL : map_dst(out_bytes);
		if (!rows || !want || (!fresh && !got)) {
			fprintf(stderr, "bench_pack_load: out of memory\n");
			return 1;
		}
		for (size_t i = 0; i < file_bytes; i++)
			rows[i] = (unsigned char)(bench_rnd() * 127.0f);
		double best_ref = 1e30, best_words = 1e30, best_fast = 1e30;
		pack_all(P->ref, want, rows, rb, n_in, ng, gsize); /* faults want in */
		int same_words = 1;
		for (int r = 0; r < reps; r++) {
			unsigned char *d = want;
			if (fresh) {
				munmap(want, out_bytes);
				if (!(want = d = map_dst(out_bytes)))
					return 1;
			}
			const double tr = pack_all(P->ref, d, rows, rb, n_in, ng, gsize);
			if (fresh) {
				if (got)
					munmap(got, out_bytes);
				if (!(got = map_dst(out_bytes)))
					return 1;
			}
			const double tw = pack_all(P->words, got, rows, rb, n_in, ng, gsize);
			same_words = same_words && !memcmp(want, got, out_bytes);
			if (fresh) {
				munmap(got, out_bytes);
				if (!(got = map_dst(out_bytes)))
					return 1;
			}
			const double tf = pack_all(P->fast, got, rows, rb, n_in, ng, gsize);
			best_ref = tr < best_ref ? tr : best_ref;
			best_words = tw < best_words ? tw : best_words;
			best_fast = tf < best_fast ? tf : best_fast;
		}
		const int same = same_words && !memcmp(want, got, out_bytes);
		printf("%-6s %8.1f %8.2f %9.2f %8.2f %10.2f %7.1fx%s\n", P->name,
		       (double)file_bytes / (1 << 20), best_ref * 1e3, best_words * 1e3,
		       best_fast * 1e3, (double)file_bytes / best_fast / 1e9, best_ref / best_fast,
		       same ? "" : "  MISMATCH");
		if (!same)
			rc = 1;
		munmap(want, out_bytes);
		munmap(got, out_bytes);
		free(rows);
	}
	return rc;
}
