/*
 * bench_tokenizer.c — tokenizer throughput: vocabulary load time, encode
 * MB/s and tokens/s, decode and streaming-decode tokens/s, for the fixture
 * vocabularies, plus the llama-bpe/qwen2 pre-tokenizers alone. Prints
 * numbers; never fails on time.
 *
 *   bench_tokenizer [FIXTURES_DIR] [TEXT_KIB]
 */
#include "core/buf.h"
#include "core/err.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A mixed text: prose, code, numbers, CJK, emoji. */
static char *make_text(size_t bytes, size_t *len)
{
	static const char *const parts[] = {
		"Once upon a time, there was a little girl named Lily. She loved to play outside. ",
		"int main(void) {\n\tfor (int i = 0; i < 1024; i++)\n\t\tprintf(\"%d\\n\", i * 31337);\n}\n",
		"我想在apple工作1314151天～ 日本語のテキスト。 ",
		"I've been 'told he's there — 3.14159, 2,718,281 😁🦙 ",
		"    def f(x):  # comment\n        return x ** 2\n\n",
	};
	char *s = malloc(bytes + 256);
	size_t n = 0;
	for (size_t k = 0; n < bytes; k++) {
		const char *p = parts[k % 5];
		size_t pl = strlen(p);
		memcpy(s + n, p, pl);
		n += pl;
	}
	s[n] = '\0';
	*len = n;
	return s;
}

static void bench_vocab(const char *dir, const char *name, const char *text, size_t len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf", dir, name);
	double t0 = bench_now_s();
	struct tk_gguf *g = tk_gguf_open(path);
	struct tk_tokenizer *t = g ? tk_tokenizer_from_gguf(g) : NULL;
	double t_load = bench_now_s() - t0;
	if (!t) {
		fprintf(stderr, "%s: %s\n", name, tk_err_detail());
		tk_gguf_close(g);
		return;
	}
	tk_gguf_close(g);

	int32_t *ids;
	size_t n;
	struct tk_tok_encode_opts o = { .bos = TK_TOK_BOS_NONE };
	t0 = bench_now_s();
	if (tk_tokenizer_encode(t, text, len, &o, &ids, &n)) {
		fprintf(stderr, "%s: encode: %s\n", name, tk_err_detail());
		tk_tokenizer_free(t);
		return;
	}
	double t_enc = bench_now_s() - t0;

	struct tk_buf out = TK_BUF_INIT(64u << 20);
	t0 = bench_now_s();
	tk_tokenizer_decode(t, ids, n, 0, &out);
	double t_dec = bench_now_s() - t0;

	tk_buf_reset(&out);
	struct tk_tok_stream *st = tk_tok_stream_new(t, 0);
	t0 = bench_now_s();
	for (size_t i = 0; i < n; i++)
		tk_tok_stream_push(st, ids[i], &out);
	tk_tok_stream_flush(st, &out);
	double t_stream = bench_now_s() - t0;

	printf("%-15s load %7.1f ms | encode %6.2f MB/s %9.0f tok/s (%zu tokens, %.2f B/tok) | "
	       "decode %5.1f Mtok/s | stream %5.1f Mtok/s\n",
	       name, t_load * 1e3, (double)len / t_enc / 1e6, (double)n / t_enc, n,
	       (double)len / (double)n, (double)n / t_dec / 1e6, (double)n / t_stream / 1e6);
	tk_tok_stream_free(st);
	tk_buf_free(&out);
	free(ids);
	tk_tokenizer_free(t);
}

static int count_piece(size_t off, size_t len, void *ctx)
{
	(void)off;
	(void)len;
	(*(size_t *)ctx)++;
	return 0;
}

static void bench_pretok(enum tk_tok_pre pre, const char *text, size_t len)
{
	size_t pieces = 0;
	double t0 = bench_now_s();
	tk_pretokenize(pre, text, len, count_piece, &pieces);
	double dt = bench_now_s() - t0;
	printf("pre-tokenizer %-14s %6.2f MB/s (%zu pieces)\n", tk_tok_pre_name(pre),
	       (double)len / dt / 1e6, pieces);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/fixtures";
	size_t kib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
	size_t len;
	char *text = make_text(kib * 1024, &len);
	printf("text: %zu bytes (mixed prose, code, CJK, emoji)\n", len);
	const char *vocabs[] = { "llama-spm", "phi-3", "gpt-2", "deepseek-coder", "starcoder" };
	for (size_t i = 0; i < 5; i++)
		bench_vocab(dir, vocabs[i], text, len);
	bench_pretok(TK_PRE_GPT2, text, len);
	bench_pretok(TK_PRE_LLAMA3, text, len);
	bench_pretok(TK_PRE_QWEN2, text, len);
	free(text);
	return 0;
}
