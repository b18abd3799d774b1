/*
 * synth.c — random-weight GGUF models (synth.h): builds the metadata and
 * tensor list of a llama or qwen2 model and streams the weights through the
 * GGUF writer, one tensor and one row at a time.
 *
 * Owns nothing beyond one call: the writer, the optional vocabulary source
 * and a row buffer, all freed before returning.
 */
#include "engine/synth.h"

#include "core/err.h"
#include "engine/gguf.h"
#include "engine/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tk_synth_opts_default(struct tk_synth_opts *o)
{
	memset(o, 0, sizeof *o);
	o->arch = TK_SYNTH_LLAMA;
	o->type = 0; /* TK_TYPE_F32 */
	o->n_embd = 256;
	o->n_layer = 2;
	o->n_head = 4;
	o->n_ctx = 2048;
	o->weight_std = 0.02f;
	o->seed = 1;
}

int tk_synth_file_type(int t)
{
	switch (t) {
	case TK_TYPE_F32: return 0;
	case TK_TYPE_F16: return 1;
	case TK_TYPE_Q4_0: return 2;
	case TK_TYPE_Q4_1: return 3;
	case TK_TYPE_Q8_0: return 7;
	case TK_TYPE_Q5_0: return 8;
	case TK_TYPE_Q5_1: return 9;
	case TK_TYPE_BF16: return 32;
	default: return -1;
	}
}

/* ---- random numbers: splitmix64 seeding a xoshiro256+ stream ---- */

struct rng {
	uint64_t s[4];
	bool has_spare;
	float spare;
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&x);
	r->has_spare = false;
	r->spare = 0.0f;
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t res = r->s[0] + r->s[3];
	uint64_t t = r->s[1] << 17;
	r->s[2] ^= r->s[0];
	r->s[3] ^= r->s[1];
	r->s[1] ^= r->s[2];
	r->s[0] ^= r->s[3];
	r->s[2] ^= t;
	r->s[3] = rotl(r->s[3], 45);
	return res;
}

/* Standard normal by Box-Muller (pairs). */
static float rng_normal(struct rng *r)
{
	if (r->has_spare) {
		r->has_spare = false;
		return r->spare;
	}
	double u1 = ((double)(rng_next(r) >> 11) + 0.5) / 9007199254740992.0; /* (0,1) */
	double u2 = (double)(rng_next(r) >> 11) / 9007199254740992.0;
	double m = sqrt(-2.0 * log(u1));
	r->spare = (float)(m * sin(6.283185307179586 * u2));
	r->has_spare = true;
	return (float)(m * cos(6.283185307179586 * u2));
}

/* ---- tensors ---- */

enum init { INIT_NORMAL, INIT_ONES };

struct synth_fill {
	const struct tk_synth_opts *o;
	float *row;     /* scratch, max row length */
	enum init *how; /* per tensor */
};

static int fill_tensor(void *ctx, size_t i, const struct tk_gguf_tensor *t, void *buf, size_t nbytes)
{
	struct synth_fill *f = ctx;
	const struct tk_type_traits *tr = tk_type_traits(t->type);
	size_t row_bytes;
	int rc = tk_type_row_size(t->type, t->ne[0], &row_bytes);
	if (rc)
		return rc;
	int64_t rows = t->n_elements / t->ne[0];
	struct rng r;
	rng_seed(&r, f->o->seed, i + 1);
	for (int64_t k = 0; k < rows; k++) {
		for (int64_t j = 0; j < t->ne[0]; j++)
			f->row[j] = f->how[i] == INIT_ONES ? 1.0f : f->o->weight_std * rng_normal(&r);
		tr->from_float(f->row, (uint8_t *)buf + (size_t)k * row_bytes, t->ne[0]);
	}
	(void)nbytes;
	return 0;
}

/* Built-in vocabulary: <unk>, <s>, </s> and the 256 byte tokens <0xNN>. */
static int builtin_vocab(struct tk_gguf_writer *w, uint32_t *n_vocab)
{
	enum { N = 259 };
	char names[N][8];
	const char *ptrs[N];
	float scores[N];
	int32_t types[N];
	strcpy(names[0], "<unk>");
	strcpy(names[1], "<s>");
	strcpy(names[2], "</s>");
	types[0] = 2; /* unknown */
	types[1] = types[2] = 3; /* control */
	for (int i = 0; i < 256; i++) {
		snprintf(names[3 + i], sizeof names[0], "<0x%02X>", i);
		types[3 + i] = 6; /* byte */
	}
	for (int i = 0; i < N; i++) {
		ptrs[i] = names[i];
		scores[i] = 0.0f;
	}
	int rc;
	if ((rc = tk_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama")) ||
	    (rc = tk_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", ptrs, N)) ||
	    (rc = tk_gguf_writer_set_arr(w, "tokenizer.ggml.scores", TK_GGUF_FLOAT32, scores, N)) ||
	    (rc = tk_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", TK_GGUF_INT32, types, N)) ||
	    (rc = tk_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0)) ||
	    (rc = tk_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1)) ||
	    (rc = tk_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2)))
		return rc;
	*n_vocab = N;
	return 0;
}

static int copy_vocab(struct tk_gguf_writer *w, const char *path, uint32_t *n_vocab)
{
	struct tk_gguf *src = tk_gguf_open(path);
	if (!src)
		return tk_err_wrap(tk_err_last(), "synth: --vocab-from");
	int rc = 0;
	struct tk_gguf_arr tok;
	if ((rc = tk_gguf_get_arr(src, "tokenizer.ggml.tokens", &tok)))
		goto out;
	if (tok.n == 0 || tok.n > 1u << 24) {
		rc = tk_errf(TK_EINVAL, "synth: %s: vocabulary of %zu tokens", path, tok.n);
		goto out;
	}
	*n_vocab = (uint32_t)tok.n;
	for (size_t i = 0; i < tk_gguf_kv_count(src); i++) {
		const struct tk_gguf_kv *kv = tk_gguf_kv_at(src, i);
		if (!strncmp(kv->key, "tokenizer.", 10) && (rc = tk_gguf_writer_copy_kv(w, kv)))
			goto out;
	}
out:
	tk_gguf_close(src);
	return rc;
}

static int check_opts(const struct tk_synth_opts *o)
{
	const struct tk_type_traits *tr = tk_type_traits(o->type);
	if (!tr || !tr->from_float || tk_synth_file_type(o->type) < 0)
		return tk_errf(TK_EINVAL, "synth: --type %s: not a type this build can write (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1)",
			       tk_type_name(o->type));
	if (o->arch != TK_SYNTH_LLAMA && o->arch != TK_SYNTH_QWEN2)
		return tk_errf(TK_EINVAL, "synth: unknown architecture");
	if (!o->n_embd || !o->n_layer || !o->n_head || !o->n_head_kv || !o->n_ff || !o->n_ctx)
		return tk_errf(TK_EINVAL, "synth: sizes must be positive");
	if (o->n_embd > 65536 || o->n_ff > 262144 || o->n_layer > 512 || o->n_head > 1024)
		return tk_errf(TK_EINVAL, "synth: sizes too large (n_embd <= 65536, n_ff <= 262144, n_layer <= 512, n_head <= 1024)");
	if (o->n_embd % o->n_head)
		return tk_errf(TK_EINVAL, "synth: --n-embd %u is not a multiple of --n-head %u", o->n_embd, o->n_head);
	if (o->n_head % o->n_head_kv)
		return tk_errf(TK_EINVAL, "synth: --n-head %u is not a multiple of --n-head-kv %u", o->n_head,
			       o->n_head_kv);
	if ((o->n_embd / o->n_head) % 2)
		return tk_errf(TK_EINVAL, "synth: head dimension %u must be even (rope)", o->n_embd / o->n_head);
	if (o->n_embd % tr->blck_size || o->n_ff % tr->blck_size)
		return tk_errf(TK_EINVAL, "synth: --n-embd %u and --n-ff %u must be multiples of %s's block size %lld",
			       o->n_embd, o->n_ff, tr->name, (long long)tr->blck_size);
	if (!(o->weight_std > 0.0f) || !isfinite(o->weight_std))
		return tk_errf(TK_EINVAL, "synth: weight_std must be positive");
	return 0;
}

int tk_synth_write(const struct tk_synth_opts *opts, const char *path)
{
	struct tk_synth_opts o = *opts;
	if (!o.n_head_kv)
		o.n_head_kv = o.n_head;
	if (!o.n_ff)
		o.n_ff = 2 * o.n_embd;
	int rc = check_opts(&o);
	if (rc)
		return rc;
	const char *arch = o.arch == TK_SYNTH_QWEN2 ? "qwen2" : "llama";
	bool qwen = o.arch == TK_SYNTH_QWEN2;
	uint32_t head_dim = o.n_embd / o.n_head, kv_dim = head_dim * o.n_head_kv;
	struct synth_fill f = { .o = &o };
	struct tk_gguf_writer *w = tk_gguf_writer_new();
	if (!w)
		return tk_err_last();
	uint32_t n_vocab = 0;
	rc = o.vocab_from ? copy_vocab(w, o.vocab_from, &n_vocab) : builtin_vocab(w, &n_vocab);
	if (rc)
		goto out;
	char key[128], name[128];
	if (o.name)
		snprintf(name, sizeof name, "%s", o.name);
	else
		snprintf(name, sizeof name, "tanuki-synth-%s-%s", arch, tk_type_name(o.type));
#define SETU(k, v) \
	(snprintf(key, sizeof key, "%s." k, arch), tk_gguf_writer_set_u32(w, key, (v)))
#define SETF(k, v) \
	(snprintf(key, sizeof key, "%s." k, arch), tk_gguf_writer_set_f32(w, key, (v)))
	if ((rc = tk_gguf_writer_set_str(w, "general.architecture", arch)) ||
	    (rc = tk_gguf_writer_set_str(w, "general.name", name)) ||
	    (rc = tk_gguf_writer_set_u32(w, "general.file_type", (uint32_t)tk_synth_file_type(o.type))) ||
	    (rc = tk_gguf_writer_set_u32(w, "general.quantization_version", 2)) ||
	    (rc = SETU("vocab_size", n_vocab)) ||
	    (rc = SETU("context_length", o.n_ctx)) ||
	    (rc = SETU("embedding_length", o.n_embd)) ||
	    (rc = SETU("block_count", o.n_layer)) ||
	    (rc = SETU("feed_forward_length", o.n_ff)) ||
	    (rc = SETU("attention.head_count", o.n_head)) ||
	    (rc = SETU("attention.head_count_kv", o.n_head_kv)) ||
	    (rc = SETU("rope.dimension_count", head_dim)) ||
	    (rc = SETF("rope.freq_base", qwen ? 1000000.0f : 10000.0f)) ||
	    (rc = SETF("attention.layer_norm_rms_epsilon", qwen ? 1e-6f : 1e-5f)))
		goto out;
#undef SETU
#undef SETF
	/* tensor list, in llama.cpp's usual order; `how` parallels it */
	size_t max_t = 3 + (size_t)o.n_layer * 12;
	f.how = calloc(max_t, sizeof *f.how);
	f.row = malloc((size_t)(o.n_ff > o.n_embd ? o.n_ff : o.n_embd) * sizeof(float));
	if (!f.how || !f.row) {
		rc = tk_errf(TK_ENOMEM, "synth: out of memory");
		goto out;
	}
	size_t nt = 0;
#define ADD(nm, t, init, ...) \
	do { \
		const int64_t ne_[] = { __VA_ARGS__ }; \
		if ((rc = tk_gguf_writer_add_tensor(w, nm, t, (uint32_t)(sizeof ne_ / sizeof ne_[0]), ne_))) \
			goto out; \
		f.how[nt++] = init; \
	} while (0)
	ADD("token_embd.weight", o.type, INIT_NORMAL, o.n_embd, n_vocab);
	ADD("output_norm.weight", TK_TYPE_F32, INIT_ONES, o.n_embd);
	ADD("output.weight", o.type, INIT_NORMAL, o.n_embd, n_vocab);
	for (uint32_t l = 0; l < o.n_layer; l++) {
		char tn[96];
#define BLK(suffix) (snprintf(tn, sizeof tn, "blk.%u." suffix, l), tn)
		ADD(BLK("attn_norm.weight"), TK_TYPE_F32, INIT_ONES, o.n_embd);
		ADD(BLK("attn_q.weight"), o.type, INIT_NORMAL, o.n_embd, o.n_embd);
		ADD(BLK("attn_k.weight"), o.type, INIT_NORMAL, o.n_embd, kv_dim);
		ADD(BLK("attn_v.weight"), o.type, INIT_NORMAL, o.n_embd, kv_dim);
		if (qwen) {
			ADD(BLK("attn_q.bias"), TK_TYPE_F32, INIT_NORMAL, o.n_embd);
			ADD(BLK("attn_k.bias"), TK_TYPE_F32, INIT_NORMAL, kv_dim);
			ADD(BLK("attn_v.bias"), TK_TYPE_F32, INIT_NORMAL, kv_dim);
		}
		ADD(BLK("attn_output.weight"), o.type, INIT_NORMAL, o.n_embd, o.n_embd);
		ADD(BLK("ffn_norm.weight"), TK_TYPE_F32, INIT_ONES, o.n_embd);
		ADD(BLK("ffn_gate.weight"), o.type, INIT_NORMAL, o.n_embd, o.n_ff);
		ADD(BLK("ffn_up.weight"), o.type, INIT_NORMAL, o.n_embd, o.n_ff);
		ADD(BLK("ffn_down.weight"), o.type, INIT_NORMAL, o.n_ff, o.n_embd);
#undef BLK
	}
#undef ADD
	rc = tk_gguf_writer_write(w, path, fill_tensor, &f);
out:
	free(f.how);
	free(f.row);
	tk_gguf_writer_free(w);
	return rc;
}
