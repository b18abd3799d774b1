/*
 * bench_lora.c — LoRA adapter costs on a given base model: load time vs file
 * size (MB/s), switch latency between resident adapters (context set and
 * cache acquire/release), and decode tokens/s with 0, 1 and 2 adapters at
 * several ranks (REPS rounds of an 8-token prefill and N_DECODE tokens
 * decoded, the three set-ups interleaved token by token). Adapters are
 * written here with random values (F16 halves,
 * on all seven weights of every layer), into a temporary directory.
 *
 * usage: bench_lora MODEL.gguf [N_DECODE=8] [THREADS=1] [RANKS=8,16,64] [REPS=3]
 * With TK_BENCH_LORA_KEEP=1 in the environment the adapter files are kept
 * (one per rank; the directory is printed) for running llama.cpp on them.
 * Prints numbers; never passes or fails on time. docs/benchmarks.md
 * ("LoRA adapters") records results.
 */
#include "core/err.h"
#include "engine/adapter_cache.h"
#include "engine/context.h"
#include "engine/fp16.h"
#include "engine/gguf.h"
#include "engine/lora.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "bench_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng = 88172645463325252ull;

static float rndf(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((double)(rng >> 11) / (double)(1ull << 53) - 0.5) * 0.02f;
}

static int fill(void *ctx, size_t i, const struct tk_gguf_tensor *info, void *buf, size_t nbytes)
{
	(void)ctx;
	(void)i;
	(void)nbytes;
	uint16_t *h = buf;
	for (int64_t k = 0; k < info->n_elements; k++)
		h[k] = tk_fp32_to_fp16(rndf());
	return 0;
}

static int write_adapter(const struct engine_model *m, int64_t rank, const char *path)
{
	static const char *const w[] = { "attn_q", "attn_k", "attn_v", "attn_output",
					 "ffn_gate", "ffn_up", "ffn_down" };
	struct tk_gguf_writer *g = tk_gguf_writer_new();
	if (!g)
		return TK_ENOMEM;
	tk_gguf_writer_set_str(g, "general.architecture", m->arch->name);
	tk_gguf_writer_set_str(g, "general.type", "adapter");
	tk_gguf_writer_set_str(g, "adapter.type", "lora");
	tk_gguf_writer_set_f32(g, "adapter.lora.alpha", (float)rank);
	for (int32_t il = 0; il < m->hp.n_layer; il++) {
		const struct engine_layer *L = &m->layers[il];
		const struct engine_weight *ws[] = { &L->wq, &L->wk, &L->wv, &L->wo,
						     &L->w_gate, &L->w_up, &L->w_down };
		for (int k = 0; k < 7; k++) {
			char name[96];
			int64_t nea[2] = { ws[k]->n_in, rank }, neb[2] = { rank, ws[k]->n_out };
			snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", il, w[k]);
			tk_gguf_writer_add_tensor(g, name, TK_TYPE_F16, 2, nea);
			snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", il, w[k]);
			tk_gguf_writer_add_tensor(g, name, TK_TYPE_F16, 2, neb);
		}
	}
	int rc = tk_gguf_writer_write(g, path, fill, NULL);
	tk_gguf_writer_free(g);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s MODEL.gguf [N_DECODE] [THREADS] [RANKS] [REPS]\n", argv[0]);
		return 2;
	}
	int n_dec = argc > 2 ? atoi(argv[2]) : 8;
	int threads = argc > 3 ? atoi(argv[3]) : 1;
	const char *ranks_s = argc > 4 ? argv[4] : "8,16,64";
	const bool keep = getenv("TK_BENCH_LORA_KEEP") != NULL;
	int reps = argc > 5 ? atoi(argv[5]) : 3;
	if (reps < 1)
		reps = 1;
	struct engine_model *m = engine_model_load(argv[1]);
	if (!m) {
		fprintf(stderr, "%s\n", tk_err_detail());
		return 1;
	}
	char dir[] = "/tmp/bench-lora-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = 8 + (n_dec > 0 ? n_dec : 1);
	cp.n_threads = threads;
	struct engine_ctx *c = engine_ctx_new(m, &cp);
	if (!c)
		return 1;
	printf("model %s, %d threads, %d x %d decode tokens\n", argv[1], threads, reps, n_dec);
	char rs[64];
	snprintf(rs, sizeof rs, "%s", ranks_s);
	for (char *tok = strtok(rs, ","); tok; tok = strtok(NULL, ",")) {
		int64_t r = atoll(tok);
		char p1[256], p2[256];
		snprintf(p1, sizeof p1, "%s/r%lld-a.gguf", dir, (long long)r);
		snprintf(p2, sizeof p2, "%s/r%lld-b.gguf", dir, (long long)r);
		if (write_adapter(m, r, p1) || write_adapter(m, r, p2)) {
			fprintf(stderr, "write: %s\n", tk_err_detail());
			return 1;
		}
		struct stat st;
		stat(p1, &st);
		/* load (file in the page cache: it was just written) */
		double t0 = bench_now_s();
		struct engine_lora *a = engine_lora_load(p1, m);
		double t_load = bench_now_s() - t0;
		struct engine_lora *b = engine_lora_load(p2, m);
		if (!a || !b) {
			fprintf(stderr, "load: %s\n", tk_err_detail());
			return 1;
		}
		printf("rank %lld: file %.1f MB (f16), resident %.1f MB (f32), load %.1f ms = %.0f MB/s "
		       "of file\n", (long long)r, (double)st.st_size / 1e6,
		       (double)engine_lora_bytes(a) / 1e6, t_load * 1e3,
		       (double)st.st_size / 1e6 / t_load);
		/* switch latency: set_adapters alternating a and b */
		struct engine_lora_use ua = { a, 1.0f }, ub = { b, 1.0f };
		const int n_sw = 200000;
		t0 = bench_now_s();
		for (int i = 0; i < n_sw; i++)
			engine_ctx_set_adapters(c, (i & 1) ? &ub : &ua, 1);
		double sw = (bench_now_s() - t0) / n_sw;
		printf("rank %lld: switch (engine_ctx_set_adapters) %.0f ns\n", (long long)r, sw * 1e9);
		/* decode: three contexts (0, 1, 2 adapters) fed one token each in
		 * turn, so load from other processes on this shared machine falls
		 * on all three alike; per set-up, the mean and the fastest token */
		struct engine_lora_use two[2] = { ua, ub };
		struct engine_ctx *cc[3] = { c, engine_ctx_new(m, &cp), engine_ctx_new(m, &cp) };
		if (!cc[1] || !cc[2])
			return 1;
		engine_ctx_set_adapters(cc[0], NULL, 0);
		engine_ctx_set_adapters(cc[1], two, 1);
		engine_ctx_set_adapters(cc[2], two, 2);
		double sum[3] = { 0, 0, 0 }, best[3] = { 1e9, 1e9, 1e9 };
		const int32_t nv = m->hp.n_vocab;
		for (int rep = 0; rep < reps; rep++) {
			int32_t prompt[8];
			for (int k = 0; k < 3; k++) {
				for (int i = 0; i < 8; i++)
					prompt[i] = (1 + 97 * i + 13 * rep) % nv;
				engine_ctx_rewind(cc[k], 0);
				if (engine_ctx_eval(cc[k], prompt, 8, NULL))
					return 1;
			}
			for (int i = 0; i < n_dec; i++) {
				int32_t tk = (int32_t)((100 + 37 * i + rep) % nv);
				for (int k = 0; k < 3; k++) {
					double t1 = bench_now_s();
					if (engine_ctx_eval(cc[k], &tk, 1, NULL))
						return 1;
					double dt = bench_now_s() - t1;
					sum[k] += dt;
					if (dt < best[k])
						best[k] = dt;
				}
			}
		}
		const double nn = (double)reps * n_dec;
		printf("rank %lld: decode mean 0 adapters %.3f tok/s, 1 adapter %.3f (%+.1f%% time), "
		       "2 adapters %.3f (%+.1f%% time); fastest token %.1f / %.1f / %.1f ms\n",
		       (long long)r, nn / sum[0], nn / sum[1], (sum[1] / sum[0] - 1) * 100,
		       nn / sum[2], (sum[2] / sum[0] - 1) * 100, best[0] * 1e3, best[1] * 1e3,
		       best[2] * 1e3);
		engine_ctx_set_adapters(c, NULL, 0);
		engine_ctx_free(cc[1]);
		engine_ctx_free(cc[2]);
		engine_lora_free(a);
		engine_lora_free(b);
		if (!keep)
			unlink(p2);
	}
	/* cache hit latency: acquire + release of resident adapters */
	struct engine_adapter_cache_opts o;
	engine_adapter_cache_opts_default(&o);
	o.dir = dir;
	o.preload_all = true;
	struct engine_adapter_cache *ac = engine_adapter_cache_new(m, &o);
	if (ac && engine_adapter_cache_count(ac) > 0) {
		struct engine_adapter_info info;
		engine_adapter_cache_info(ac, 0, &info);
		const int n = 200000;
		double t0 = bench_now_s();
		for (int i = 0; i < n; i++) {
			const struct engine_lora *x;
			if (engine_adapter_cache_acquire(ac, info.name, &x) == 0)
				engine_adapter_cache_release(ac, x);
		}
		printf("cache hit (acquire + release, %zu adapters registered): %.0f ns\n",
		       engine_adapter_cache_count(ac), (bench_now_s() - t0) / n * 1e9);
		for (size_t i = 0; i < engine_adapter_cache_count(ac); i++) {
			engine_adapter_cache_info(ac, i, &info);
			char p[300];
			snprintf(p, sizeof p, "%s/%s.gguf", dir, info.name);
			if (!keep)
				unlink(p);
		}
	}
	engine_adapter_cache_free(ac);
	if (keep)
		printf("adapters kept in %s\n", dir);
	else
		rmdir(dir);
	engine_ctx_free(c);
	engine_model_free(m);
	return 0;
}
