/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader (src/engine/gguf.c).
 *
 * Feeds the input to tk_gguf_open_buffer() and, when it is accepted, touches
 * every accessor: each key through every typed getter, each array element
 * through every element accessor, each tensor by name and through its data
 * (first and last byte, then a dequantize/quantize/vec_dot of its first row
 * when the type has kernels). Anything the reader accepts must be safe to use
 * this way; ASan/UBSan turn any slip into a crash.
 *
 * Built by tests/fuzz/CMakeLists.txt (-DTANUKI_FUZZ=ON, clang); the same
 * entry point is replayed over the seed corpus by tests/unit/test_gguf_corpus.c
 * in every normal build.
 */
#include "engine/gguf.h"
#include "engine/quant.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keeps the compiler from discarding reads. */
static volatile uint64_t fuzz_sink;

static void touch_key(const struct tk_gguf *g, const struct tk_gguf_kv *kv)
{
	uint32_t u32; int32_t i32; uint64_t u64; int64_t i64; float f; double d; bool b;
	const char *s; size_t len; struct tk_gguf_arr a;
	if (tk_gguf_find_kv(g, kv->key) != kv)
		abort(); /* keys are unique and findable */
	fuzz_sink += !tk_gguf_get_u32(g, kv->key, &u32) ? u32 : 0;
	fuzz_sink += !tk_gguf_get_i32(g, kv->key, &i32) ? (uint64_t)i32 : 0;
	fuzz_sink += !tk_gguf_get_u64(g, kv->key, &u64) ? u64 : 0;
	fuzz_sink += !tk_gguf_get_i64(g, kv->key, &i64) ? (uint64_t)i64 : 0;
	fuzz_sink += !tk_gguf_get_f32(g, kv->key, &f) ? (uint64_t)(f == f) : 0;
	fuzz_sink += !tk_gguf_get_f64(g, kv->key, &d) ? (uint64_t)(d == d) : 0;
	fuzz_sink += !tk_gguf_get_bool(g, kv->key, &b) ? b : 0;
	if (!tk_gguf_get_str(g, kv->key, &s, &len)) {
		if (s[len] != '\0')
			abort();
		fuzz_sink += len ? (uint8_t)s[len - 1] : 0;
	}
	if (tk_gguf_get_arr(g, kv->key, &a))
		return;
	/* every element when few, else the first and last 64 */
	for (size_t i = 0; i < a.n; i++) {
		if (a.n > 128 && i == 64)
			i = a.n - 64;
		fuzz_sink += !tk_gguf_arr_get_u32(&a, i, &u32) ? u32 : 0;
		fuzz_sink += !tk_gguf_arr_get_i32(&a, i, &i32) ? (uint64_t)i32 : 0;
		fuzz_sink += !tk_gguf_arr_get_u64(&a, i, &u64) ? u64 : 0;
		fuzz_sink += !tk_gguf_arr_get_i64(&a, i, &i64) ? (uint64_t)i64 : 0;
		fuzz_sink += !tk_gguf_arr_get_f32(&a, i, &f) ? (uint64_t)(f == f) : 0;
		fuzz_sink += !tk_gguf_arr_get_bool(&a, i, &b) ? b : 0;
		if (!tk_gguf_arr_get_str(&a, i, &s, &len)) {
			if (s[len] != '\0')
				abort();
			fuzz_sink += len ? (uint8_t)s[0] : 0;
		}
	}
	fuzz_sink += tk_gguf_arr_get_u32(&a, a.n, &u32) == 0; /* out of range */
}

static void touch_tensor(const struct tk_gguf *g, const struct tk_gguf_tensor *t)
{
	if (tk_gguf_find_tensor(g, t->name) != t)
		abort();
	const uint8_t *p = t->data;
	fuzz_sink += p[0] + p[t->nbytes - 1];
	const struct tk_type_traits *tr = tk_type_traits(t->type);
	if (!tr)
		abort(); /* the reader only accepts known types */
	if (!tk_type_can_compute(t->type) || t->ne[0] > 4096)
		return;
	const struct tk_type_traits *vt = tk_type_traits(tr->vec_dot_type);
	int64_t n = t->ne[0];
	size_t yb;
	if (tk_type_row_size(tr->vec_dot_type, n, &yb))
		abort();
	float *row = malloc((size_t)n * sizeof *row);
	void *y = malloc(yb);
	if (row && y) {
		float dot;
		tr->to_float(t->data, row, n);
		vt->from_float(row, y, n);
		tr->vec_dot(n, &dot, t->data, y);
		fuzz_sink += dot == dot;
	}
	free(row);
	free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tk_gguf *g = tk_gguf_open_buffer(data, size);
	if (!g)
		return 0;
	fuzz_sink += tk_gguf_version(g) + tk_gguf_alignment(g) + tk_gguf_file_size(g) +
		     tk_gguf_data_offset(g);
	for (size_t i = 0; i < tk_gguf_kv_count(g); i++)
		touch_key(g, tk_gguf_kv_at(g, i));
	for (size_t i = 0; i < tk_gguf_tensor_count(g); i++)
		touch_tensor(g, tk_gguf_tensor_at(g, i));
	if (tk_gguf_kv_at(g, tk_gguf_kv_count(g)) || tk_gguf_tensor_at(g, tk_gguf_tensor_count(g)))
		abort();
	tk_gguf_close(g);
	return 0;
}
