/*
 * test_adapter_cache.c — the LoRA adapter cache (src/engine/adapter_cache.h):
 * registry (names, sizes, SHA-256), LRU eviction under a small budget,
 * pinning, in-use adapters never evicted or unloaded, an adapter bigger than
 * the budget, preload-all, metrics and concurrent use while evicting.
 */
#include "testutil.h"

#include "core/buf.h"
#include "core/err.h"
#include "engine/adapter_cache.h"
#include "engine/context.h"
#include "engine/model.h"
#include "obs/metrics.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct engine_model *model;
static char dir[256];
static uint64_t coder_bytes, rev_bytes;

static void copy_file(const char *from, const char *to)
{
	size_t len = 0;
	char *data = tk_test_read_file(from, &len);
	FILE *f = fopen(to, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	free(data);
}

static void sha_hex(const char *path, char out[65])
{
	size_t len = 0;
	char *data = tk_test_read_file(path, &len);
	unsigned char md[32];
	unsigned int n = 0;
	assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	free(data);
}

static int setup(void **state)
{
	(void)state;
	char path[512], to[512];
	snprintf(path, sizeof path, "%s/models/tiny-llama-f32.gguf", TK_FIXTURES);
	model = engine_model_load(path);
	assert_non_null(model);
	tk_test_mkdtemp(dir, sizeof dir);
	const char *names[] = { "c1", "c2", "c3" };
	snprintf(path, sizeof path, "%s/models/tiny-llama-lora-coder.gguf", TK_FIXTURES);
	for (int i = 0; i < 3; i++) {
		snprintf(to, sizeof to, "%s/%s.gguf", dir, names[i]);
		copy_file(path, to);
	}
	snprintf(path, sizeof path, "%s/models/tiny-llama-lora-reviewer.gguf", TK_FIXTURES);
	snprintf(to, sizeof to, "%s/r1.gguf", dir);
	copy_file(path, to);
	/* skipped: bad name, not .gguf, a directory */
	snprintf(to, sizeof to, "%s/bad name.gguf", dir);
	copy_file(path, to);
	snprintf(to, sizeof to, "%s/notes.txt", dir);
	copy_file(path, to);
	snprintf(to, sizeof to, "%s/sub.gguf", dir);
	assert_int_equal(mkdir(to, 0700), 0);
	/* what one coder / reviewer adapter takes once loaded */
	struct engine_lora *a = engine_lora_load(path, model);
	assert_non_null(a);
	rev_bytes = engine_lora_bytes(a);
	engine_lora_free(a);
	snprintf(path, sizeof path, "%s/models/tiny-llama-lora-coder.gguf", TK_FIXTURES);
	a = engine_lora_load(path, model);
	assert_non_null(a);
	coder_bytes = engine_lora_bytes(a);
	engine_lora_free(a);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	engine_model_free(model);
	tk_test_rmtree(dir);
	return 0;
}

static bool resident(struct engine_adapter_cache *c, const char *name)
{
	struct engine_adapter_info info;
	assert_int_equal(engine_adapter_cache_find(c, name, &info), 0);
	return info.resident;
}

static void test_registry(void **state)
{
	(void)state;
	struct engine_adapter_cache_opts o;
	engine_adapter_cache_opts_default(&o);
	o.dir = dir;
	struct engine_adapter_cache *c = engine_adapter_cache_new(model, &o);
	assert_non_null(c);
	assert_int_equal(engine_adapter_cache_count(c), 4);
	const char *want[] = { "c1", "c2", "c3", "r1" };
	for (size_t i = 0; i < 4; i++) {
		struct engine_adapter_info info;
		assert_int_equal(engine_adapter_cache_info(c, i, &info), 0);
		assert_string_equal(info.name, want[i]);
		char path[512], hex[65];
		snprintf(path, sizeof path, "%s/%s.gguf", dir, want[i]);
		sha_hex(path, hex);
		assert_string_equal(info.sha256, hex);
		struct stat st;
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(info.file_bytes, (uint64_t)st.st_size);
		assert_int_equal(info.load_bytes, i < 3 ? coder_bytes : rev_bytes);
		assert_false(info.resident);
	}
	struct engine_adapter_info info;
	assert_int_equal(engine_adapter_cache_info(c, 4, &info), TK_EINVAL);
	assert_int_equal(engine_adapter_cache_find(c, "bad name", &info), TK_ENOENT);
	const struct engine_lora *a = NULL;
	assert_int_equal(engine_adapter_cache_acquire(c, "nope", &a), TK_ENOENT);
	assert_int_equal(engine_adapter_cache_acquire(c, "r1", &a), 0);
	assert_non_null(a);
	assert_int_equal(engine_lora_max_rank(a), 4);
	engine_adapter_cache_release(c, a);
	engine_adapter_cache_free(c);

	o.dir = "/nonexistent/adapters";
	assert_null(engine_adapter_cache_new(model, &o));
	assert_int_equal(tk_err_last(), TK_ENOENT);
}

static void test_eviction_pin_refs(void **state)
{
	(void)state;
	struct tk_registry *reg = tk_registry_new();
	assert_non_null(reg);
	struct engine_adapter_cache_opts o;
	engine_adapter_cache_opts_default(&o);
	o.dir = dir;
	o.budget_bytes = coder_bytes * 2 + coder_bytes / 2; /* two coders fit, not three */
	o.metrics = reg;
	struct engine_adapter_cache *c = engine_adapter_cache_new(model, &o);
	assert_non_null(c);
	const struct engine_lora *a1, *a2, *a3;
	assert_int_equal(engine_adapter_cache_load(c, "c1"), 0);
	assert_int_equal(engine_adapter_cache_load(c, "c2"), 0);
	assert_int_equal(engine_adapter_cache_load(c, "c3"), 0); /* evicts c1 (LRU) */
	assert_false(resident(c, "c1"));
	assert_true(resident(c, "c2") && resident(c, "c3"));
	assert_int_equal(engine_adapter_cache_acquire(c, "c2", &a2), 0); /* hit; c3 now LRU */
	engine_adapter_cache_release(c, a2);
	assert_int_equal(engine_adapter_cache_load(c, "c1"), 0); /* evicts c3 */
	assert_true(resident(c, "c1") && resident(c, "c2"));
	assert_false(resident(c, "c3"));
	struct engine_adapter_stats st;
	engine_adapter_cache_stats(c, &st);
	assert_int_equal(st.evictions, 2);
	assert_int_equal(st.loads, 4);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 4);
	assert_int_equal(st.resident, 2);
	assert_true(st.resident_bytes <= o.budget_bytes);

	/* pinned c1 and in-use c2: no room for c3 */
	assert_int_equal(engine_adapter_cache_pin(c, "c1", true), 0);
	assert_int_equal(engine_adapter_cache_acquire(c, "c2", &a2), 0);
	assert_int_equal(engine_adapter_cache_acquire(c, "c3", &a3), TK_EBUSY);
	assert_true(resident(c, "c1") && resident(c, "c2"));
	/* in use: unload refused; released: evictable */
	assert_int_equal(engine_adapter_cache_unload(c, "c2"), TK_EBUSY);
	engine_adapter_cache_release(c, a2);
	assert_int_equal(engine_adapter_cache_acquire(c, "c3", &a3), 0); /* evicts c2, not c1 */
	assert_true(resident(c, "c1"));
	assert_false(resident(c, "c2"));
	/* the small reviewer still fits next to them? no: 2 coders + rev > budget
	 * only if rev > budget/5; either way c1 (pinned) and c3 (held) stay */
	int rc = engine_adapter_cache_acquire(c, "r1", &a1);
	if (rc == 0)
		engine_adapter_cache_release(c, a1);
	else
		assert_int_equal(rc, TK_EBUSY);
	assert_true(resident(c, "c1") && resident(c, "c3"));
	engine_adapter_cache_release(c, a3);
	/* unpin, unload */
	assert_int_equal(engine_adapter_cache_pin(c, "c1", false), 0);
	assert_int_equal(engine_adapter_cache_unload(c, "c1"), 0);
	assert_int_equal(engine_adapter_cache_unload(c, "c1"), TK_ESTATE);
	assert_int_equal(engine_adapter_cache_unload(c, "zz"), TK_ENOENT);

	struct tk_buf out = TK_BUF_INIT(1 << 20);
	assert_int_equal(tk_metrics_expose(reg, &out), 0);
	const char *text = tk_buf_str(&out);
	engine_adapter_cache_stats(c, &st);
	char line[128];
	snprintf(line, sizeof line, "tanuki_adapter_evictions_total %llu",
		 (unsigned long long)st.evictions);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof line, "tanuki_adapter_loads_total %llu", (unsigned long long)st.loads);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof line, "tanuki_adapter_load_seconds_count %llu",
		 (unsigned long long)st.loads);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof line, "tanuki_adapter_resident %zu", st.resident);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof line, "tanuki_adapter_budget_bytes %llu",
		 (unsigned long long)o.budget_bytes);
	assert_non_null(strstr(text, line));
	assert_non_null(strstr(text, "tanuki_adapter_unload_seconds_count"));
	assert_non_null(strstr(text, "tanuki_adapter_hits_total"));
	assert_non_null(strstr(text, "tanuki_adapter_misses_total"));
	assert_non_null(strstr(text, "tanuki_adapter_resident_bytes"));
	tk_buf_free(&out);
	engine_adapter_cache_free(c);
	tk_registry_free(reg);

	/* bigger than the whole budget */
	o.metrics = NULL;
	o.budget_bytes = coder_bytes - 1;
	c = engine_adapter_cache_new(model, &o);
	assert_non_null(c);
	assert_int_equal(engine_adapter_cache_acquire(c, "c1", &a1), TK_ELIMIT);
	assert_non_null(strstr(tk_err_detail(), "more than the whole budget"));
	assert_int_equal(engine_adapter_cache_acquire(c, "r1", &a1), 0);
	engine_adapter_cache_release(c, a1);
	engine_adapter_cache_free(c);
}

static void test_preload_all(void **state)
{
	(void)state;
	struct engine_adapter_cache_opts o;
	engine_adapter_cache_opts_default(&o);
	o.dir = dir;
	o.preload_all = true;
	o.budget_bytes = coder_bytes * 3; /* the reviewer does not fit as well */
	assert_null(engine_adapter_cache_new(model, &o));
	assert_int_equal(tk_err_last(), TK_ELIMIT);
	o.budget_bytes = coder_bytes * 3 + rev_bytes;
	struct engine_adapter_cache *c = engine_adapter_cache_new(model, &o);
	assert_non_null(c);
	struct engine_adapter_stats st;
	engine_adapter_cache_stats(c, &st);
	assert_int_equal(st.resident, 4);
	assert_int_equal(st.resident_bytes, coder_bytes * 3 + rev_bytes);
	const struct engine_lora *a;
	assert_int_equal(engine_adapter_cache_acquire(c, "c3", &a), 0);
	engine_adapter_cache_release(c, a);
	engine_adapter_cache_stats(c, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 0);
	engine_adapter_cache_free(c);
}

struct worker {
	struct engine_adapter_cache *c;
	unsigned seed;
	int ok, busy;
	bool eval; /* run a real forward pass with the adapter */
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const char *names[] = { "c1", "c2", "c3", "r1" };
	struct engine_ctx *ctx = NULL;
	if (w->eval) {
		struct engine_ctx_params cp;
		engine_ctx_params_default(&cp);
		cp.n_ctx = 8;
		ctx = engine_ctx_new(model, &cp);
	}
	for (int i = 0; i < (w->eval ? 12 : 300); i++) {
		w->seed = w->seed * 1103515245u + 12345u;
		const char *name = names[(w->seed >> 16) % 4];
		const struct engine_lora *a = NULL;
		int rc = engine_adapter_cache_acquire(w->c, name, &a);
		if (rc == TK_EBUSY) {
			w->busy++;
			continue;
		}
		if (rc != 0)
			return (void *)1;
		/* touch the adapter's memory while others evict */
		struct engine_weight A, B;
		volatile float sink = 0;
		if (engine_lora_pair(a, 0, ENGINE_LORA_Q, &A, &B))
			sink += ((const float *)A.data)[0] + ((const float *)B.data)[B.n_out - 1];
		(void)sink;
		if (ctx) {
			struct engine_lora_use u = { a, 1.0f };
			int32_t toks[2] = { 1, 42 };
			if (engine_ctx_set_adapters(ctx, &u, 1) || engine_ctx_rewind(ctx, 0) ||
			    engine_ctx_eval(ctx, toks, 2, NULL) || engine_ctx_set_adapters(ctx, NULL, 0))
				return (void *)1;
		}
		engine_adapter_cache_release(w->c, a);
		w->ok++;
	}
	engine_ctx_free(ctx);
	return NULL;
}

static void test_concurrent(void **state)
{
	(void)state;
	struct engine_adapter_cache_opts o;
	engine_adapter_cache_opts_default(&o);
	o.dir = dir;
	o.budget_bytes = coder_bytes * 2; /* constant eviction */
	struct engine_adapter_cache *c = engine_adapter_cache_new(model, &o);
	assert_non_null(c);
	enum { NT = 4 };
	struct worker w[NT];
	pthread_t t[NT];
	for (int i = 0; i < NT; i++) {
		w[i] = (struct worker){ .c = c, .seed = 17u + (unsigned)i, .eval = i == 0 };
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	int ok = 0;
	void *rets[NT];
	int joined[NT];
	for (int i = 0; i < NT; i++) /* all joined before any assertion */
		joined[i] = pthread_join(t[i], &rets[i]);
	for (int i = 0; i < NT; i++) {
		assert_int_equal(joined[i], 0);
		assert_null(rets[i]);
		ok += w[i].ok;
	}
	struct engine_adapter_stats st;
	engine_adapter_cache_stats(c, &st);
	printf("adapter cache concurrent: %d uses, loads %llu evictions %llu hits %llu\n", ok,
	       (unsigned long long)st.loads, (unsigned long long)st.evictions,
	       (unsigned long long)st.hits);
	assert_true(ok > 0);
	assert_true(st.evictions > 0);
	assert_true(st.resident_bytes <= o.budget_bytes);
	for (size_t i = 0; i < engine_adapter_cache_count(c); i++) {
		struct engine_adapter_info info;
		assert_int_equal(engine_adapter_cache_info(c, i, &info), 0);
		assert_int_equal(info.refs, 0);
	}
	engine_adapter_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_eviction_pin_refs),
		cmocka_unit_test(test_preload_all),
		cmocka_unit_test(test_concurrent),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
