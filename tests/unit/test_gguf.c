/* test_gguf.c — the GGUF reader and writer: every fixture parses with the
 * documented metadata and tensors, typed getters check types, the writer
 * round-trips every value type, and hostile files (hand-written or mutated
 * from a real model) are refused with a message naming the problem. */
#include "testutil.h"

#include "core/err.h"
#include "engine/gguf.h"
#include "engine/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a little-endian byte builder for hand-written files ---- */

struct bld {
	uint8_t *p;
	size_t n, cap;
};

static void b_bytes(struct bld *b, const void *src, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, src, n);
	b->n += n;
}

static void b_le(struct bld *b, uint64_t v, int n)
{
	uint8_t t[8];
	for (int i = 0; i < n; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	b_bytes(b, t, (size_t)n);
}

static void b_u32(struct bld *b, uint32_t v) { b_le(b, v, 4); }
static void b_u64(struct bld *b, uint64_t v) { b_le(b, v, 8); }

static void b_str(struct bld *b, const char *s)
{
	b_u64(b, strlen(s));
	b_bytes(b, s, strlen(s));
}

static void b_pad(struct bld *b, size_t align)
{
	while (b->n % align)
		b_le(b, 0, 1);
}

static void b_hdr(struct bld *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
	b_bytes(b, "GGUF", 4);
	b_u32(b, version);
	b_u64(b, n_tensors);
	b_u64(b, n_kv);
}

static void b_kv_u32(struct bld *b, const char *key, uint32_t v)
{
	b_str(b, key);
	b_u32(b, TK_GGUF_UINT32);
	b_u32(b, v);
}

static void b_tinfo(struct bld *b, const char *name, uint32_t n_dims, const uint64_t *ne,
		    uint32_t type, uint64_t offset)
{
	b_str(b, name);
	b_u32(b, n_dims);
	for (uint32_t i = 0; i < n_dims; i++)
		b_u64(b, ne[i]);
	b_u32(b, type);
	b_u64(b, offset);
}

/* A small valid file: 2 keys, tensors "a" (f32 [8]) at 0 and "b" (q8_0
 * [32, 2]) at 32, data filled with a byte pattern. */
static void b_valid(struct bld *b)
{
	b_hdr(b, 3, 2, 2);
	b_kv_u32(b, "test.n", 7);
	b_str(b, "general.architecture");
	b_u32(b, TK_GGUF_STRING);
	b_str(b, "llama");
	b_tinfo(b, "a", 1, (const uint64_t[]){ 8 }, TK_TYPE_F32, 0);
	b_tinfo(b, "b", 2, (const uint64_t[]){ 32, 2 }, TK_TYPE_Q8_0, 32);
	b_pad(b, 32);
	for (int i = 0; i < 32 + 68; i++)
		b_le(b, (uint64_t)i, 1);
}

static void expect_reject(const struct bld *b, int code, const char *substr)
{
	tk_err_clear();
	struct tk_gguf *g = tk_gguf_open_buffer(b->p, b->n);
	if (g) {
		tk_gguf_close(g);
		fail_msg("accepted a file that should fail with '%s'", substr);
	}
	if (tk_err_last() != code || !strstr(tk_err_detail(), substr))
		fail_msg("expected code %d with '%s', got %d: %s", code, substr, tk_err_last(),
			 tk_err_detail());
}

static char *fixture(const char *rel)
{
	static char path[1024];
	snprintf(path, sizeof path, "%s/%s", TK_FIXTURES, rel);
	return path;
}

/* ---- fixtures ---- */

static void check_llama_meta(struct tk_gguf *g, const char *arch)
{
	char key[128];
	const char *s;
	uint32_t u;
	float f;
	assert_int_equal(tk_gguf_get_str(g, "general.architecture", &s, NULL), 0);
	assert_string_equal(s, arch);
#define U32(k, v) \
	snprintf(key, sizeof key, "%s." k, arch); \
	assert_int_equal(tk_gguf_get_u32(g, key, &u), 0); \
	assert_int_equal(u, v)
	U32("embedding_length", 256);
	U32("block_count", 2);
	U32("attention.head_count", 4);
	U32("attention.head_count_kv", 2);
	U32("feed_forward_length", 512);
	U32("context_length", 256);
#undef U32
	snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
	assert_int_equal(tk_gguf_get_f32(g, key, &f), 0);
	assert_true(fabsf(f - 1e-5f) < 1e-9f);
	snprintf(key, sizeof key, "%s.rope.freq_base", arch);
	assert_int_equal(tk_gguf_get_f32(g, key, &f), 0);
	assert_true(f == 10000.0f);
	struct tk_gguf_arr tok, scores;
	assert_int_equal(tk_gguf_get_arr(g, "tokenizer.ggml.tokens", &tok), 0);
	assert_int_equal(tok.type, TK_GGUF_STRING);
	assert_int_equal(tok.n, 512);
	assert_int_equal(tk_gguf_get_arr(g, "tokenizer.ggml.scores", &scores), 0);
	assert_int_equal(scores.n, 512);
	size_t len;
	for (size_t i = 0; i < tok.n; i++) {
		assert_int_equal(tk_gguf_arr_get_str(&tok, i, &s, &len), 0);
		assert_int_equal(strlen(s), len); /* no NULs in this vocab */
		assert_int_equal(tk_gguf_arr_get_f32(&scores, i, &f), 0);
		assert_true(isfinite(f));
	}
	/* 256 byte-fallback tokens are spelled <0xNN> */
	size_t bytes = 0;
	for (size_t i = 0; i < tok.n; i++) {
		tk_gguf_arr_get_str(&tok, i, &s, NULL);
		bytes += !strncmp(s, "<0x", 3) && strlen(s) == 6;
	}
	assert_int_equal(bytes, 256);
}

struct shape { const char *suffix; int64_t ne0, ne1; bool bias; };

static const struct shape layer_shapes[] = {
	{ "attn_norm.weight", 256, 1, false }, { "ffn_norm.weight", 256, 1, false },
	{ "attn_q.weight", 256, 256, false },  { "attn_k.weight", 256, 128, false },
	{ "attn_v.weight", 256, 128, false },  { "attn_output.weight", 256, 256, false },
	{ "ffn_gate.weight", 256, 512, false }, { "ffn_up.weight", 256, 512, false },
	{ "ffn_down.weight", 512, 256, false },
	{ "attn_q.bias", 256, 1, true }, { "attn_k.bias", 128, 1, true }, { "attn_v.bias", 128, 1, true },
};

static void check_tensor(struct tk_gguf *g, const char *name, int64_t ne0, int64_t ne1, int want_type)
{
	const struct tk_gguf_tensor *t = tk_gguf_find_tensor(g, name);
	if (!t)
		fail_msg("tensor %s missing", name);
	assert_int_equal(t->ne[0], ne0);
	assert_int_equal(t->ne[1], ne1);
	assert_int_equal(t->n_dims, ne1 == 1 ? 1 : 2);
	assert_int_equal(t->n_elements, ne0 * ne1);
	size_t row;
	assert_int_equal(tk_type_row_size(t->type, ne0, &row), 0);
	assert_int_equal(t->nbytes, row * (size_t)ne1);
	assert_int_equal(t->offset % tk_gguf_alignment(g), 0);
	assert_true((const uint8_t *)t->data + t->nbytes <=
		    (const uint8_t *)tk_gguf_tensor_at(g, 0)->data - tk_gguf_tensor_at(g, 0)->offset +
			    (tk_gguf_file_size(g) - tk_gguf_data_offset(g)));
	if (ne1 == 1) {
		assert_int_equal(t->type, TK_TYPE_F32); /* norms and biases stay f32 */
	} else if (!strcmp(name, "output.weight") && t->type == TK_TYPE_Q6_K) {
		/* llama-quantize keeps the output matrix at q6_K for 4/5-bit files */
	} else if (want_type >= 0 && t->type != want_type) {
		fail_msg("%s: type %s, expected %s", name, tk_type_name(t->type), tk_type_name(want_type));
	}
}

static void check_model(const char *file, const char *arch, const char *type_name)
{
	struct tk_gguf *g = tk_gguf_open(fixture(file));
	if (!g)
		fail_msg("%s: %s", file, tk_err_detail());
	assert_int_equal(tk_gguf_version(g), 3);
	check_llama_meta(g, arch);
	bool qwen = !strcmp(arch, "qwen2");
	int want = -1;
	if (type_name)
		want = !strcmp(type_name, "f32") ? TK_TYPE_F32 : tk_type_from_name(type_name);
	assert_int_equal(tk_gguf_tensor_count(g), qwen ? 27 : 21);
	check_tensor(g, "token_embd.weight", 256, 512, want);
	check_tensor(g, "output.weight", 256, 512, want);
	check_tensor(g, "output_norm.weight", 256, 1, want);
	char name[128];
	for (int l = 0; l < 2; l++)
		for (size_t k = 0; k < sizeof layer_shapes / sizeof layer_shapes[0]; k++) {
			snprintf(name, sizeof name, "blk.%d.%s", l, layer_shapes[k].suffix);
			if (layer_shapes[k].bias && !qwen) {
				assert_null(tk_gguf_find_tensor(g, name));
				continue;
			}
			check_tensor(g, name, layer_shapes[k].ne0, layer_shapes[k].ne1, want);
		}
	/* iteration agrees with lookup */
	for (size_t i = 0; i < tk_gguf_tensor_count(g); i++) {
		const struct tk_gguf_tensor *t = tk_gguf_tensor_at(g, i);
		assert_ptr_equal(tk_gguf_find_tensor(g, t->name), t);
	}
	for (size_t i = 0; i < tk_gguf_kv_count(g); i++) {
		const struct tk_gguf_kv *kv = tk_gguf_kv_at(g, i);
		assert_ptr_equal(tk_gguf_find_kv(g, kv->key), kv);
	}
	assert_null(tk_gguf_tensor_at(g, tk_gguf_tensor_count(g)));
	assert_null(tk_gguf_kv_at(g, tk_gguf_kv_count(g)));
	tk_gguf_close(g);
}

static void test_fixture_models(void **state)
{
	(void)state;
	const char *llama[] = { "f32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
				"Q4_K_M", "Q5_K_M", "Q6_K" };
	char file[128];
	for (size_t i = 0; i < sizeof llama / sizeof llama[0]; i++) {
		snprintf(file, sizeof file, "models/tiny-llama-%s.gguf", llama[i]);
		/* K-quant mixes have several types: only shapes are checked */
		bool mix = strstr(llama[i], "_K") != NULL;
		check_model(file, "llama", mix ? NULL : llama[i]);
	}
	check_model("models/tiny-qwen2-f32.gguf", "qwen2", "f32");
	check_model("models/tiny-qwen2-Q8_0.gguf", "qwen2", "Q8_0");
	check_model("models/tiny-qwen2-Q4_K_M.gguf", "qwen2", NULL);
}

static void test_fixture_lora(void **state)
{
	(void)state;
	const struct { const char *file; uint32_t rank; float alpha; } ad[] = {
		{ "models/tiny-llama-lora-coder.gguf", 8, 16.0f },
		{ "models/tiny-llama-lora-reviewer.gguf", 4, 8.0f },
	};
	for (int i = 0; i < 2; i++) {
		struct tk_gguf *g = tk_gguf_open(fixture(ad[i].file));
		assert_non_null(g);
		const char *s;
		float alpha;
		assert_int_equal(tk_gguf_get_str(g, "general.type", &s, NULL), 0);
		assert_string_equal(s, "adapter");
		assert_int_equal(tk_gguf_get_str(g, "adapter.type", &s, NULL), 0);
		assert_string_equal(s, "lora");
		assert_int_equal(tk_gguf_get_f32(g, "adapter.lora.alpha", &alpha), 0);
		assert_true(alpha == ad[i].alpha);
		/* 2 layers x 7 matrices x (a, b) */
		assert_int_equal(tk_gguf_tensor_count(g), 28);
		const struct tk_gguf_tensor *a = tk_gguf_find_tensor(g, "blk.0.attn_k.weight.lora_a");
		const struct tk_gguf_tensor *b = tk_gguf_find_tensor(g, "blk.0.attn_k.weight.lora_b");
		assert_true(a && b);
		assert_int_equal(a->ne[0], 256);
		assert_int_equal(a->ne[1], ad[i].rank);
		assert_int_equal(b->ne[0], ad[i].rank);
		assert_int_equal(b->ne[1], 128);
		tk_gguf_close(g);
	}
}

static void test_fixture_vocab(void **state)
{
	(void)state;
	const char *files[] = { "llama-spm", "phi-3", "gpt-2", "deepseek-coder", "starcoder" };
	char rel[128];
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", files[i]);
		struct tk_gguf *g = tk_gguf_open(fixture(rel));
		if (!g)
			fail_msg("%s: %s", rel, tk_err_detail());
		assert_int_equal(tk_gguf_tensor_count(g), 0);
		struct tk_gguf_arr tok, types;
		const char *model;
		assert_int_equal(tk_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL), 0);
		assert_true(!strcmp(model, "llama") || !strcmp(model, "gpt2"));
		assert_int_equal(tk_gguf_get_arr(g, "tokenizer.ggml.tokens", &tok), 0);
		assert_int_equal(tk_gguf_get_arr(g, "tokenizer.ggml.token_type", &types), 0);
		assert_int_equal(tok.n, types.n);
		assert_true(tok.n >= 32000);
		int32_t tt;
		assert_int_equal(tk_gguf_arr_get_i32(&types, tok.n - 1, &tt), 0);
		assert_int_equal(tk_gguf_arr_get_i32(&types, tok.n, &tt), TK_EINVAL);
		if (!strcmp(model, "gpt2")) {
			struct tk_gguf_arr merges;
			assert_int_equal(tk_gguf_get_arr(g, "tokenizer.ggml.merges", &merges), 0);
			assert_true(merges.n > 1000);
			const char *m;
			assert_int_equal(tk_gguf_arr_get_str(&merges, 0, &m, NULL), 0);
			assert_non_null(strchr(m, ' ')); /* "a b" pairs */
		}
		tk_gguf_close(g);
	}
}

/* ---- typed getters ---- */

static void test_getters(void **state)
{
	(void)state;
	struct tk_gguf *g = tk_gguf_open(fixture("models/tiny-llama-Q8_0.gguf"));
	assert_non_null(g);
	uint32_t u;
	int32_t i32;
	uint64_t u64;
	int64_t i64;
	float f;
	double d;
	bool b;
	const char *s;
	struct tk_gguf_arr a;
	assert_int_equal(tk_gguf_get_u32(g, "llama.block_count", &u), 0);
	assert_int_equal(u, 2);
	assert_int_equal(tk_gguf_get_i32(g, "llama.block_count", &i32), 0);
	assert_int_equal(i32, 2);
	assert_int_equal(tk_gguf_get_u64(g, "llama.block_count", &u64), 0);
	assert_int_equal(tk_gguf_get_i64(g, "llama.block_count", &i64), 0);
	assert_int_equal(i64, 2);
	/* wrong type: message names key and types */
	assert_int_equal(tk_gguf_get_u32(g, "general.architecture", &u), TK_EFORMAT);
	assert_non_null(strstr(tk_err_detail(), "'general.architecture'"));
	assert_non_null(strstr(tk_err_detail(), "string"));
	assert_int_equal(tk_gguf_get_f32(g, "llama.block_count", &f), TK_EFORMAT);
	assert_int_equal(tk_gguf_get_str(g, "llama.block_count", &s, NULL), TK_EFORMAT);
	assert_int_equal(tk_gguf_get_bool(g, "llama.block_count", &b), TK_EFORMAT);
	assert_int_equal(tk_gguf_get_arr(g, "llama.block_count", &a), TK_EFORMAT);
	assert_int_equal(tk_gguf_get_u32(g, "tokenizer.ggml.tokens", &u), TK_EFORMAT);
	assert_int_equal(tk_gguf_get_f64(g, "llama.rope.freq_base", &d), 0);
	assert_true(d == 10000.0);
	/* absent */
	assert_int_equal(tk_gguf_get_u32(g, "llama.nope", &u), TK_ENOENT);
	assert_non_null(strstr(tk_err_detail(), "llama.nope"));
	assert_null(tk_gguf_find_kv(g, "llama.nope"));
	assert_null(tk_gguf_find_tensor(g, "nope.weight"));
	/* array element types */
	assert_int_equal(tk_gguf_get_arr(g, "tokenizer.ggml.token_type", &a), 0);
	assert_int_equal(a.type, TK_GGUF_INT32);
	assert_int_equal(tk_gguf_arr_get_i32(&a, 0, &i32), 0);
	assert_int_equal(tk_gguf_arr_get_str(&a, 0, &s, NULL), TK_EFORMAT);
	assert_int_equal(tk_gguf_arr_get_f32(&a, 0, &f), TK_EFORMAT);
	assert_int_equal(tk_gguf_get_arr(g, "tokenizer.ggml.tokens", &a), 0);
	assert_int_equal(tk_gguf_arr_get_i64(&a, 0, &i64), TK_EFORMAT);
	assert_int_equal(tk_gguf_arr_get_str(&a, 511, &s, NULL), 0);
	assert_int_equal(tk_gguf_arr_get_str(&a, 512, &s, NULL), TK_EINVAL);
	tk_gguf_close(g);
}

/* ---- writer round trip (every value type) ---- */

struct fill_ctx { int calls; };

static int fill_pattern(void *ctx, size_t i, const struct tk_gguf_tensor *info, void *buf, size_t n)
{
	struct fill_ctx *c = ctx;
	c->calls++;
	(void)info;
	for (size_t k = 0; k < n; k++)
		((uint8_t *)buf)[k] = (uint8_t)(k * 7 + i);
	return 0;
}

static int fill_fail(void *ctx, size_t i, const struct tk_gguf_tensor *info, void *buf, size_t n)
{
	(void)ctx; (void)info; (void)buf; (void)n;
	return i == 1 ? tk_errf(TK_EIO, "injected") : 0;
}

static void test_writer_roundtrip(void **state)
{
	(void)state;
	char dir[512], path[600];
	tk_test_mkdtemp(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/w.gguf", dir);

	struct tk_gguf *src = tk_gguf_open(fixture("models/tiny-llama-f32.gguf"));
	assert_non_null(src);
	struct tk_gguf_writer *w = tk_gguf_writer_new();
	assert_non_null(w);
	assert_int_equal(tk_gguf_writer_set_u32(w, "t.u32", 4000000000u), 0);
	assert_int_equal(tk_gguf_writer_set_i32(w, "t.i32", -5), 0);
	assert_int_equal(tk_gguf_writer_set_u64(w, "t.u64", 1ull << 40), 0);
	assert_int_equal(tk_gguf_writer_set_f32(w, "t.f32", 0.125f), 0);
	assert_int_equal(tk_gguf_writer_set_bool(w, "t.bool", true), 0);
	assert_int_equal(tk_gguf_writer_set_str(w, "t.str", "first"), 0);
	assert_int_equal(tk_gguf_writer_set_str(w, "t.str", "héllo"), 0); /* replaces */
	const uint8_t u8s[] = { 1, 255 };
	const int8_t i8s[] = { -128, 127 };
	const uint16_t u16s[] = { 65535, 2 };
	const int16_t i16s[] = { -32768, 3 };
	const int64_t i64s[] = { INT64_MIN, 9 };
	const uint64_t u64s[] = { UINT64_MAX, 10 };
	const double f64s[] = { 0.1, -1e300 };
	const bool bools[] = { true, false };
	const float f32s[] = { 1.5f, -2.5f };
	assert_int_equal(tk_gguf_writer_set_arr(w, "a.u8", TK_GGUF_UINT8, u8s, 2), 0);
	assert_int_equal(tk_gguf_writer_set_arr(w, "a.i8", TK_GGUF_INT8, i8s, 2), 0);
	assert_int_equal(tk_gguf_writer_set_arr(w, "a.u16", TK_GGUF_UINT16, u16s, 2), 0);
	assert_int_equal(tk_gguf_writer_set_arr(w, "a.i16", TK_GGUF_INT16, i16s, 2), 0);
	assert_int_equal(tk_gguf_writer_set_arr(w, "a.i64", TK_GGUF_INT64, i64s, 2), 0);
	assert_int_equal(tk_gguf_writer_set_arr(w, "a.u64", TK_GGUF_UINT64, u64s, 2), 0);
	assert_int_equal(tk_gguf_writer_set_arr(w, "a.f64", TK_GGUF_FLOAT64, f64s, 2), 0);
	assert_int_equal(tk_gguf_writer_set_arr(w, "a.bool", TK_GGUF_BOOL, bools, 2), 0);
	assert_int_equal(tk_gguf_writer_set_arr(w, "a.f32", TK_GGUF_FLOAT32, f32s, 2), 0);
	assert_int_equal(tk_gguf_writer_set_arr(w, "a.empty", TK_GGUF_INT32, NULL, 0), 0);
	assert_int_equal(tk_gguf_writer_set_arr(w, "a.bad", TK_GGUF_STRING, NULL, 0), TK_EINVAL);
	const char *strs[] = { "x", "", "yz" };
	assert_int_equal(tk_gguf_writer_set_arr_str(w, "a.str", strs, 3), 0);
	/* copy every tokenizer entry from a real model */
	for (size_t i = 0; i < tk_gguf_kv_count(src); i++) {
		const struct tk_gguf_kv *kv = tk_gguf_kv_at(src, i);
		if (!strncmp(kv->key, "tokenizer.", 10))
			assert_int_equal(tk_gguf_writer_copy_kv(w, kv), 0);
	}
	assert_int_equal(tk_gguf_writer_add_tensor(w, "w.f32", TK_TYPE_F32, 1, (const int64_t[]){ 5 }), 0);
	assert_int_equal(tk_gguf_writer_add_tensor(w, "w.q4", TK_TYPE_Q4_0, 3, (const int64_t[]){ 64, 3, 2 }), 0);
	assert_int_equal(tk_gguf_writer_add_tensor(w, "w.q6k", TK_TYPE_Q6_K, 2, (const int64_t[]){ 256, 1 }), 0);
	assert_int_equal(tk_gguf_writer_add_tensor(w, "w.q4", TK_TYPE_F32, 1, (const int64_t[]){ 1 }), TK_EINVAL);
	assert_int_equal(tk_gguf_writer_add_tensor(w, "w.bad", TK_TYPE_Q4_0, 1, (const int64_t[]){ 48 }), TK_EINVAL);
	assert_int_equal(tk_gguf_writer_add_tensor(w, "w.bad", 4, 1, (const int64_t[]){ 32 }), TK_EINVAL);
	assert_int_equal(tk_gguf_writer_add_tensor(w, "w.bad", TK_TYPE_F32, 5, (const int64_t[]){ 1, 1, 1, 1, 1 }), TK_EINVAL);

	/* a failing fill leaves nothing behind */
	assert_int_equal(tk_gguf_writer_write(w, path, fill_fail, NULL), TK_EIO);
	struct stat st;
	assert_int_equal(stat(path, &st), -1);
	char tmp[700];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	assert_int_equal(stat(tmp, &st), -1);

	struct fill_ctx fc = { 0 };
	assert_int_equal(tk_gguf_writer_write(w, path, fill_pattern, &fc), 0);
	assert_int_equal(fc.calls, 3);
	tk_gguf_writer_free(w);

	struct tk_gguf *g = tk_gguf_open(path);
	if (!g)
		fail_msg("reading back: %s", tk_err_detail());
	uint32_t u;
	int32_t i32;
	uint64_t u64;
	int64_t i64;
	float f;
	bool b;
	const char *s;
	struct tk_gguf_arr a;
	assert_int_equal(tk_gguf_get_u32(g, "t.u32", &u), 0);
	assert_int_equal(u, 4000000000u);
	assert_int_equal(tk_gguf_get_i32(g, "t.u32", &i32), TK_EFORMAT); /* does not fit */
	assert_int_equal(tk_gguf_get_i32(g, "t.i32", &i32), 0);
	assert_int_equal(i32, -5);
	assert_int_equal(tk_gguf_get_u32(g, "t.i32", &u), TK_EFORMAT); /* negative */
	assert_int_equal(tk_gguf_get_u64(g, "t.u64", &u64), 0);
	assert_int_equal(u64, 1ull << 40);
	assert_int_equal(tk_gguf_get_u32(g, "t.u64", &u), TK_EFORMAT);
	assert_int_equal(tk_gguf_get_f32(g, "t.f32", &f), 0);
	assert_true(f == 0.125f);
	assert_int_equal(tk_gguf_get_bool(g, "t.bool", &b), 0);
	assert_true(b);
	assert_int_equal(tk_gguf_get_str(g, "t.str", &s, NULL), 0);
	assert_string_equal(s, "héllo");
	assert_int_equal(tk_gguf_get_arr(g, "a.u8", &a), 0);
	assert_int_equal(tk_gguf_arr_get_u32(&a, 1, &u), 0);
	assert_int_equal(u, 255);
	assert_int_equal(tk_gguf_get_arr(g, "a.i8", &a), 0);
	assert_int_equal(tk_gguf_arr_get_i32(&a, 0, &i32), 0);
	assert_int_equal(i32, -128);
	assert_int_equal(tk_gguf_arr_get_u32(&a, 0, &u), TK_EFORMAT);
	assert_int_equal(tk_gguf_get_arr(g, "a.u16", &a), 0);
	assert_int_equal(tk_gguf_arr_get_u32(&a, 0, &u), 0);
	assert_int_equal(u, 65535);
	assert_int_equal(tk_gguf_get_arr(g, "a.i16", &a), 0);
	assert_int_equal(tk_gguf_arr_get_i64(&a, 0, &i64), 0);
	assert_int_equal(i64, -32768);
	assert_int_equal(tk_gguf_get_arr(g, "a.i64", &a), 0);
	assert_int_equal(tk_gguf_arr_get_i64(&a, 0, &i64), 0);
	assert_true(i64 == INT64_MIN);
	assert_int_equal(tk_gguf_get_arr(g, "a.u64", &a), 0);
	assert_int_equal(tk_gguf_arr_get_u64(&a, 0, &u64), 0);
	assert_true(u64 == UINT64_MAX);
	assert_int_equal(tk_gguf_arr_get_i64(&a, 0, &i64), TK_EFORMAT);
	assert_int_equal(tk_gguf_get_arr(g, "a.f64", &a), 0);
	assert_int_equal(tk_gguf_arr_get_f32(&a, 0, &f), 0);
	assert_true(f == 0.1f);
	assert_int_equal(tk_gguf_arr_get_f32(&a, 1, &f), TK_EFORMAT); /* -1e300 */
	assert_int_equal(tk_gguf_get_arr(g, "a.bool", &a), 0);
	assert_int_equal(tk_gguf_arr_get_bool(&a, 0, &b), 0);
	assert_true(b);
	assert_int_equal(tk_gguf_arr_get_bool(&a, 1, &b), 0);
	assert_false(b);
	assert_int_equal(tk_gguf_get_arr(g, "a.f32", &a), 0);
	assert_int_equal(tk_gguf_arr_get_f32(&a, 1, &f), 0);
	assert_true(f == -2.5f);
	assert_int_equal(tk_gguf_get_arr(g, "a.empty", &a), 0);
	assert_int_equal(a.n, 0);
	assert_int_equal(tk_gguf_get_arr(g, "a.str", &a), 0);
	assert_int_equal(a.n, 3);
	size_t len;
	assert_int_equal(tk_gguf_arr_get_str(&a, 1, &s, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(tk_gguf_arr_get_str(&a, 2, &s, &len), 0);
	assert_string_equal(s, "yz");
	/* copied tokenizer arrays are identical */
	struct tk_gguf_arr t1, t2;
	assert_int_equal(tk_gguf_get_arr(src, "tokenizer.ggml.tokens", &t1), 0);
	assert_int_equal(tk_gguf_get_arr(g, "tokenizer.ggml.tokens", &t2), 0);
	assert_int_equal(t1.n, t2.n);
	for (size_t i = 0; i < t1.n; i++) {
		assert_int_equal(t1.strs[i].len, t2.strs[i].len);
		assert_memory_equal(t1.strs[i].s, t2.strs[i].s, t1.strs[i].len);
	}
	assert_int_equal(tk_gguf_get_arr(src, "tokenizer.ggml.scores", &t1), 0);
	assert_int_equal(tk_gguf_get_arr(g, "tokenizer.ggml.scores", &t2), 0);
	assert_memory_equal(t1.data, t2.data, t1.n * 4);
	/* tensors: shapes, sizes, data */
	assert_int_equal(tk_gguf_tensor_count(g), 3);
	const struct tk_gguf_tensor *t = tk_gguf_find_tensor(g, "w.q4");
	assert_non_null(t);
	assert_int_equal(t->n_dims, 3);
	assert_int_equal(t->ne[2], 2);
	assert_int_equal(t->nbytes, 2 * 18 * 3 * 2);
	for (size_t k = 0; k < t->nbytes; k++)
		assert_int_equal(((const uint8_t *)t->data)[k], (uint8_t)(k * 7 + 1));
	t = tk_gguf_find_tensor(g, "w.q6k");
	assert_int_equal(t->nbytes, 210);
	assert_int_equal(t->type, TK_TYPE_Q6_K);
	tk_gguf_close(g);
	tk_gguf_close(src);
	tk_test_rmtree(dir);
}

/* Copying every key and tensor of a llama.cpp-written file through our writer
 * reproduces it byte for byte: same layout, padding and alignment. */
static int fill_copy(void *ctx, size_t i, const struct tk_gguf_tensor *info, void *buf, size_t n)
{
	const struct tk_gguf *g = ctx;
	assert_int_equal(info->nbytes, n);
	memcpy(buf, tk_gguf_tensor_at(g, i)->data, n);
	return 0;
}

static void test_writer_reproduces_fixtures(void **state)
{
	(void)state;
	const char *files[] = { "models/tiny-llama-Q4_K_M.gguf", "models/tiny-qwen2-f32.gguf",
				"models/tiny-llama-BF16.gguf", "models/tiny-llama-lora-coder.gguf",
				"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-gpt-2.gguf" };
	char dir[512], out[600];
	tk_test_mkdtemp(dir, sizeof dir);
	snprintf(out, sizeof out, "%s/copy.gguf", dir);
	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		const char *path = fixture(files[f]);
		struct tk_gguf *g = tk_gguf_open(path);
		assert_non_null(g);
		struct tk_gguf_writer *w = tk_gguf_writer_new();
		for (size_t i = 0; i < tk_gguf_kv_count(g); i++)
			assert_int_equal(tk_gguf_writer_copy_kv(w, tk_gguf_kv_at(g, i)), 0);
		for (size_t i = 0; i < tk_gguf_tensor_count(g); i++) {
			const struct tk_gguf_tensor *t = tk_gguf_tensor_at(g, i);
			assert_int_equal(tk_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne), 0);
		}
		assert_int_equal(tk_gguf_writer_write(w, out, fill_copy, g), 0);
		tk_gguf_writer_free(w);
		size_t n1, n2;
		char *a = tk_test_read_file(path, &n1), *b = tk_test_read_file(out, &n2);
		if (n1 != n2 || memcmp(a, b, n1))
			fail_msg("%s: rewritten copy differs (%zu vs %zu bytes)", files[f], n1, n2);
		free(a);
		free(b);
		tk_gguf_close(g);
	}
	tk_test_rmtree(dir);
}

/* ---- hostile files ---- */

static void test_open_errors(void **state)
{
	(void)state;
	assert_null(tk_gguf_open("/nonexistent/x.gguf"));
	assert_int_equal(tk_err_last(), TK_ENOENT);
	assert_null(tk_gguf_open(TK_FIXTURES));
	assert_int_equal(tk_err_last(), TK_EINVAL);
	char dir[512], path[600];
	tk_test_mkdtemp(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/small.gguf", dir);
	FILE *f = fopen(path, "wb");
	fputs("GGUF", f);
	fclose(f);
	assert_null(tk_gguf_open(path));
	assert_int_equal(tk_err_last(), TK_EFORMAT);
	assert_non_null(strstr(tk_err_detail(), "too small"));
	tk_test_rmtree(dir);
	assert_null(tk_gguf_open_buffer(NULL, 0));
}

static void test_valid_handmade(void **state)
{
	(void)state;
	struct bld b = { 0 };
	b_valid(&b);
	struct tk_gguf *g = tk_gguf_open_buffer(b.p, b.n);
	if (!g)
		fail_msg("%s", tk_err_detail());
	assert_int_equal(tk_gguf_tensor_count(g), 2);
	assert_int_equal(tk_gguf_find_tensor(g, "b")->nbytes, 68);
	tk_gguf_close(g);
	/* every strict prefix is refused, cleanly */
	for (size_t n = 0; n < b.n; n++) {
		tk_err_clear();
		g = tk_gguf_open_buffer(b.p, n);
		if (g)
			fail_msg("prefix of %zu bytes accepted", n);
		assert_int_equal(tk_err_last(), TK_EFORMAT);
		assert_true(strlen(tk_err_detail()) > 10);
	}
	free(b.p);
}

static void test_hostile_handmade(void **state)
{
	(void)state;
	struct bld b = { 0 };
#define CASE(code, msg, ...) \
	do { b.n = 0; __VA_ARGS__; expect_reject(&b, code, msg); } while (0)
	CASE(TK_EFORMAT, "bad magic", b_bytes(&b, "GGUX", 4); b_u32(&b, 3); b_u64(&b, 0); b_u64(&b, 0));
	CASE(TK_EUNSUPPORTED, "version 1", b_hdr(&b, 1, 0, 0));
	CASE(TK_EUNSUPPORTED, "unsupported version 4", b_hdr(&b, 4, 0, 0));
	CASE(TK_EUNSUPPORTED, "big-endian", b_hdr(&b, 0x03000000, 0, 0));
	CASE(TK_EFORMAT, "tensor count", b_hdr(&b, 3, 1ull << 40, 0));
	CASE(TK_EFORMAT, "tensor count", b_hdr(&b, 3, UINT64_MAX, 0));
	CASE(TK_EFORMAT, "metadata count", b_hdr(&b, 3, 0, 1ull << 60));
	CASE(TK_EFORMAT, "metadata count", b_hdr(&b, 3, 0, 5)); /* 5 kvs, no bytes */
	/* huge string lengths */
	CASE(TK_EFORMAT, "string length", b_hdr(&b, 3, 0, 1); b_u64(&b, UINT64_MAX); b_u32(&b, 0); b_u64(&b, 0));
	CASE(TK_EFORMAT, "string length", b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, TK_GGUF_STRING);
	     b_u64(&b, 1ull << 62); b_u64(&b, 0));
	/* exact boundaries: a string one byte longer than what is left */
	CASE(TK_EFORMAT, "runs past end of file", b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, TK_GGUF_STRING);
	     b_u64(&b, 5); b_bytes(&b, "abcd", 4));
	CASE(TK_EFORMAT, "runs past end of file", b_hdr(&b, 3, 0, 1); b_u64(&b, 14); b_bytes(&b, "0123456789abc", 13));
	CASE(TK_EFORMAT, "past end of file", b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, TK_GGUF_ARRAY);
	     b_u32(&b, TK_GGUF_UINT16); b_u64(&b, 3); b_u32(&b, 0); b_le(&b, 0, 1));
	CASE(TK_EFORMAT, "empty", b_hdr(&b, 3, 0, 1); b_str(&b, ""); b_u32(&b, TK_GGUF_UINT8); b_u64(&b, 0));
	CASE(TK_EFORMAT, "contains NUL", b_hdr(&b, 3, 0, 1); b_u64(&b, 3); b_bytes(&b, "a\0b", 3);
	     b_u32(&b, TK_GGUF_UINT8); b_u64(&b, 0));
	CASE(TK_EFORMAT, "unknown value type 13", b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, 13); b_u64(&b, 0));
	CASE(TK_EFORMAT, "bool value 2", b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, TK_GGUF_BOOL);
	     b_le(&b, 2, 1); b_u64(&b, 0));
	CASE(TK_EFORMAT, "duplicate metadata key 'k'", b_hdr(&b, 3, 0, 2); b_kv_u32(&b, "k", 1); b_kv_u32(&b, "k", 2));
	/* arrays */
	CASE(TK_EUNSUPPORTED, "nested arrays", b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, TK_GGUF_ARRAY);
	     b_u32(&b, TK_GGUF_ARRAY); b_u64(&b, 1); b_u64(&b, 0));
	CASE(TK_EFORMAT, "array of", b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, TK_GGUF_ARRAY);
	     b_u32(&b, TK_GGUF_UINT32); b_u64(&b, 1ull << 62); b_u64(&b, 0));
	CASE(TK_EFORMAT, "array of", b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, TK_GGUF_ARRAY);
	     b_u32(&b, TK_GGUF_UINT64); b_u64(&b, (1ull << 61) + 1); b_u64(&b, 0));
	CASE(TK_EFORMAT, "strings cannot fit", b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, TK_GGUF_ARRAY);
	     b_u32(&b, TK_GGUF_STRING); b_u64(&b, UINT64_MAX); b_u64(&b, 0));
	CASE(TK_EFORMAT, "element 1", b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, TK_GGUF_ARRAY);
	     b_u32(&b, TK_GGUF_STRING); b_u64(&b, 2); b_str(&b, "ok"); b_u64(&b, 1000); b_u64(&b, 0));
	CASE(TK_EFORMAT, "unknown array element type", b_hdr(&b, 3, 0, 1); b_str(&b, "k"); b_u32(&b, TK_GGUF_ARRAY);
	     b_u32(&b, 77); b_u64(&b, 0); b_u64(&b, 0));
	/* alignment */
	CASE(TK_EFORMAT, "not a power of two", b_hdr(&b, 3, 0, 1); b_kv_u32(&b, "general.alignment", 24));
	CASE(TK_EFORMAT, "not a power of two", b_hdr(&b, 3, 0, 1); b_kv_u32(&b, "general.alignment", 0));
	CASE(TK_EFORMAT, "general.alignment", b_hdr(&b, 3, 0, 1); b_str(&b, "general.alignment");
	     b_u32(&b, TK_GGUF_STRING); b_str(&b, "32"));
	/* tensor infos */
	const uint64_t one[] = { 32 };
#define T1(name, nd, ne, type, off) \
	b_hdr(&b, 3, 1, 0); b_tinfo(&b, name, nd, ne, type, off); b_pad(&b, 32); \
	for (int i = 0; i < 256; i++) b_le(&b, 0, 1)
	CASE(TK_EFORMAT, "n_dims 5", T1("t", 5, ((const uint64_t[]){ 1, 1, 1, 1, 1 }), 0, 0));
	CASE(TK_EFORMAT, "n_dims 0", T1("t", 0, one, 0, 0));
	CASE(TK_EFORMAT, "ne[1] = 0", T1("t", 2, ((const uint64_t[]){ 4, 0 }), 0, 0));
	CASE(TK_EFORMAT, "not a positive int64", T1("t", 1, ((const uint64_t[]){ 1ull << 63 }), 0, 0));
	CASE(TK_EFORMAT, "element count overflows", T1("t", 2, ((const uint64_t[]){ 1ull << 62, 1ull << 62 }), 0, 0));
	CASE(TK_EFORMAT, "element count overflows",
	     T1("t", 4, ((const uint64_t[]){ 1ull << 20, 1ull << 20, 1ull << 20, 1ull << 20 }), 0, 0));
	CASE(TK_EFORMAT, "byte size overflows", T1("t", 2, ((const uint64_t[]){ 1ull << 61, 2 }), 0, 0));
	CASE(TK_EFORMAT, "unknown tensor type id 4", T1("t", 1, one, 4, 0));
	CASE(TK_EFORMAT, "unknown tensor type id 99", T1("t", 1, one, 99, 0));
	CASE(TK_EFORMAT, "not a multiple of q4_0's block size 32", T1("t", 1, ((const uint64_t[]){ 48 }), TK_TYPE_Q4_0, 0));
	CASE(TK_EFORMAT, "offset 8 is not a multiple of the alignment 32", T1("t", 1, one, 0, 8));
	CASE(TK_EFORMAT, "past end of file", T1("t", 1, one, 0, 1ull << 40));
	CASE(TK_EFORMAT, "past end of file", T1("t", 1, one, 0, UINT64_MAX - 31));
	CASE(TK_EFORMAT, "past end of file", T1("t", 1, ((const uint64_t[]){ 1000 }), 0, 0));
	CASE(TK_EFORMAT, "name is empty", T1("", 1, one, 0, 0));
	CASE(TK_EFORMAT, "duplicate tensor name 'x'", b_hdr(&b, 3, 2, 0); b_tinfo(&b, "x", 1, one, 0, 0);
	     b_tinfo(&b, "x", 1, one, 0, 128); b_pad(&b, 32); for (int i = 0; i < 512; i++) b_le(&b, 0, 1));
	/* tensor name longer than the limit */
	CASE(TK_EFORMAT, "exceeds limit", b_hdr(&b, 3, 1, 0); b_u64(&b, 5000);
	     for (int i = 0; i < 5000; i++) b_le(&b, 'a', 1); b_u32(&b, 1); b_u64(&b, 1); b_u32(&b, 0); b_u64(&b, 0));
#undef T1
#undef CASE
	free(b.p);
}

/* Finds the tensor info of `name` in a raw file and returns the offset of its
 * n_dims field. */
static size_t find_tinfo(const uint8_t *p, size_t n, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 8; i + len + 4 < n; i++) {
		uint64_t l = 0;
		for (int k = 0; k < 8; k++)
			l |= (uint64_t)p[i - 8 + k] << (8 * k);
		if (l == len && !memcmp(p + i, name, len))
			return i + len;
	}
	fail_msg("tensor info %s not found", name);
	return 0;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int k = 0; k < 8; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int k = 0; k < 4; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

/* Mutations of a real model file. */
static void test_hostile_mutated(void **state)
{
	(void)state;
	size_t n;
	uint8_t *orig = (uint8_t *)tk_test_read_file(fixture("models/tiny-llama-Q8_0.gguf"), &n);
	uint8_t *p = malloc(n);
	assert_non_null(p);
	struct tk_gguf *g = tk_gguf_open_buffer(orig, n);
	assert_non_null(g);
	size_t header = (size_t)tk_gguf_data_offset(g);
	tk_gguf_close(g);
	struct bld b = { p, n, n };
	/* blk.0.attn_q.weight: n_dims (2), ne[0], ne[1], type, offset */
	size_t at = find_tinfo(orig, n, "blk.0.attn_q.weight");
#define MUT(code, msg, ...) \
	do { memcpy(p, orig, n); b.n = n; __VA_ARGS__; expect_reject(&b, code, msg); } while (0)
	MUT(TK_EFORMAT, "'blk.0.attn_q.weight': unknown tensor type id 99", put32(p + at + 20, 99));
	MUT(TK_EFORMAT, "'blk.0.attn_q.weight': data", put64(p + at + 24, (uint64_t)n));
	MUT(TK_EFORMAT, "past end of file (size", put64(p + at + 24, (uint64_t)n));
	MUT(TK_EFORMAT, "not a multiple of the alignment", put64(p + at + 24, 32 + 1));
	MUT(TK_EFORMAT, "ne[0] = 0", put64(p + at + 4, 0));
	MUT(TK_EFORMAT, "not a multiple of q8_0's block size", put64(p + at + 4, 100));
	MUT(TK_EFORMAT, "n_dims 7", put32(p + at, 7));
	MUT(TK_EFORMAT, "past end of file", put64(p + at + 12, 1ull << 40));
	MUT(TK_EFORMAT, "bad magic", p[0] = 'X');
	MUT(TK_EUNSUPPORTED, "version", put32(p + 4, 9));
	MUT(TK_EFORMAT, "tensor count", put64(p + 8, 1ull << 50));
	MUT(TK_EFORMAT, "metadata count", put64(p + 16, 1ull << 50));
	/* a tensor name made equal to another's: same length, rename attn_k -> attn_q */
	size_t at_k = find_tinfo(orig, n, "blk.0.attn_k.weight");
	MUT(TK_EFORMAT, "duplicate tensor name 'blk.0.attn_q.weight'", memcpy(p + at_k - strlen("attn_k.weight"), "attn_q", 6));
	/* data section truncated: header intact */
	b.n = header + 100;
	memcpy(p, orig, n);
	expect_reject(&b, TK_EFORMAT, "past end of file");
#undef MUT
	/* every prefix of the header region, then a sample inside the data */
	memcpy(p, orig, n);
	for (size_t len = 0; len < n; len += (len < header + 64 ? 1 : 4099)) {
		tk_err_clear();
		g = tk_gguf_open_buffer(p, len);
		if (g)
			fail_msg("prefix of %zu bytes (file %zu) accepted", len, n);
		assert_true(tk_err_last() == TK_EFORMAT);
	}
	/* random byte flips in the header never crash (results may be either) */
	uint64_t r = 12345;
	for (int i = 0; i < 3000; i++) {
		memcpy(p, orig, header);
		for (int k = 0; k < 4; k++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			p[(r >> 33) % header] ^= (uint8_t)(1u << ((r >> 20) & 7));
		}
		g = tk_gguf_open_buffer(p, n);
		if (g) {
			for (size_t t = 0; t < tk_gguf_tensor_count(g); t++) {
				const struct tk_gguf_tensor *ti = tk_gguf_tensor_at(g, t);
				assert_true((const uint8_t *)ti->data + ti->nbytes <= p + n);
				assert_true((const uint8_t *)ti->data >= p + header);
			}
			tk_gguf_close(g);
		} else {
			assert_true(tk_err_last() < 0);
		}
	}
	free(p);
	free(orig);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_models),
		cmocka_unit_test(test_fixture_lora),
		cmocka_unit_test(test_fixture_vocab),
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_writer_roundtrip),
		cmocka_unit_test(test_writer_reproduces_fixtures),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_valid_handmade),
		cmocka_unit_test(test_hostile_handmade),
		cmocka_unit_test(test_hostile_mutated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
