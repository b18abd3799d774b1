/*
 * quantize.c — `tanuki model quantize`: the scheme table (llama.cpp's file
 * types), llama-quantize's per-tensor type rules, and the file rewrite
 * (metadata copied, weight matrices re-encoded on a few threads).
 *
 * Owns nothing beyond one call: tk_quantize_file() opens the input, writes
 * the output through the GGUF writer and closes both. The rules mirror
 * llama.cpp's llama_tensor_get_type() for dense (non-MoE) models of the
 * architectures Tanuki runs; they are our own code, described in
 * docs/engine.md ("tanuki model quantize").
 */
#include "engine/quantize.h"

#include "core/err.h"
#include "engine/gguf.h"
#include "engine/quant.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* llama.cpp's general.file_type values */
enum {
	FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9,
	FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14,
	FT_Q4_K_M = 15, FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_IQ4_NL = 25,
	FT_BF16 = 32,
};

struct tk_quant_scheme {
	const char *name;
	uint32_t ftype;
	int type; /* default type of the weight matrices */
};

static const struct tk_quant_scheme schemes[] = {
	{ "F32", FT_F32, TK_TYPE_F32 },       { "F16", FT_F16, TK_TYPE_F16 },
	{ "BF16", FT_BF16, TK_TYPE_BF16 },    { "Q8_0", FT_Q8_0, TK_TYPE_Q8_0 },
	{ "Q4_0", FT_Q4_0, TK_TYPE_Q4_0 },    { "Q4_1", FT_Q4_1, TK_TYPE_Q4_1 },
	{ "Q5_0", FT_Q5_0, TK_TYPE_Q5_0 },    { "Q5_1", FT_Q5_1, TK_TYPE_Q5_1 },
	{ "Q2_K", FT_Q2_K, TK_TYPE_Q2_K },    { "Q3_K_S", FT_Q3_K_S, TK_TYPE_Q3_K },
	{ "Q3_K_M", FT_Q3_K_M, TK_TYPE_Q3_K }, { "Q3_K_L", FT_Q3_K_L, TK_TYPE_Q3_K },
	{ "Q4_K_S", FT_Q4_K_S, TK_TYPE_Q4_K }, { "Q4_K_M", FT_Q4_K_M, TK_TYPE_Q4_K },
	{ "Q5_K_S", FT_Q5_K_S, TK_TYPE_Q5_K }, { "Q5_K_M", FT_Q5_K_M, TK_TYPE_Q5_K },
	{ "Q6_K", FT_Q6_K, TK_TYPE_Q6_K },    { "IQ4_NL", FT_IQ4_NL, TK_TYPE_IQ4_NL },
};
#define N_SCHEMES (sizeof schemes / sizeof schemes[0])

const struct tk_quant_scheme *tk_quant_scheme_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < N_SCHEMES; i++)
		if (!strcasecmp(schemes[i].name, name))
			return &schemes[i];
	return NULL;
}

const char *tk_quant_scheme_name(const struct tk_quant_scheme *s) { return s->name; }
uint32_t tk_quant_scheme_file_type(const struct tk_quant_scheme *s) { return s->ftype; }

const char *tk_quant_scheme_names(void)
{
	return "F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M "
	       "Q5_K_S Q5_K_M Q6_K IQ4_NL";
}

/* ---- which tensors are weight matrices ---- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !memcmp(s + n - m, suffix, m);
}

static bool is_weight_matrix(const char *name, uint32_t n_dims)
{
	static const char *const never[] = {
		"_norm.weight",          "ffn_gate_inp.weight",     "ssm_conv1d.weight",
		"time_mix_first.weight", "time_mix_w1.weight",      "time_mix_w2.weight",
		"time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
		"time_mix_lerp_fused.weight", "attn_rel_b.weight",
	};
	if (!ends_with(name, "weight") || n_dims < 2)
		return false;
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
		if (strstr(name, never[i]))
			return false;
	return strcmp(name, "position_embd.weight") && strcmp(name, "token_types.weight");
}

/* "blk.N." -> N; -1 for tensors outside the layers */
static int layer_of(const char *name)
{
	if (strncmp(name, "blk.", 4))
		return -1;
	char *end;
	long v = strtol(name + 4, &end, 10);
	if (end == name + 4 || *end != '.' || v < 0 || v > 1000000)
		return -1;
	return (int)v;
}

/* llama.cpp's "use more bits" layers for the *_M mixes: the first and last
 * eighth of the layers and every third one in between. */
static bool more_bits(int i, int n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int64_t blck(int t) { return tk_type_traits_ref(t)->blck_size; }

/* The per-tensor rules of llama-quantize for dense models. */
static int rule_type(const struct tk_quant_scheme *s, const struct tk_quant_model_info *mi,
		     const char *name, int64_t ne0)
{
	const uint32_t ft = s->ftype;
	const int i = layer_of(name) < 0 ? 0 : layer_of(name);
	int t = s->type;
	if (!strcmp(name, "output.weight") || (!mi->has_output && !strcmp(name, "token_embd.weight"))) {
		/* the output projection: Q6_K (Q8_0 kept; Q8_0 when rows do not
		 * split into the default type's blocks) */
		if (ne0 % blck(t))
			t = TK_TYPE_Q8_0;
		else if (t != TK_TYPE_Q8_0)
			t = TK_TYPE_Q6_K;
	} else if (!strcmp(name, "token_embd.weight")) {
		/* the default type */
	} else if (strstr(name, "attn_v.weight")) {
		switch (ft) {
		case FT_Q2_K: t = mi->n_gqa >= 4 ? TK_TYPE_Q4_K : TK_TYPE_Q3_K; break;
		case FT_Q3_K_M: t = i < 2 ? TK_TYPE_Q5_K : TK_TYPE_Q4_K; break;
		case FT_Q3_K_L: t = TK_TYPE_Q5_K; break;
		case FT_IQ4_NL: if (mi->n_gqa >= 4) t = TK_TYPE_Q5_K; break;
		case FT_Q4_K_M: case FT_Q5_K_M: if (more_bits(i, mi->n_attn_v)) t = TK_TYPE_Q6_K; break;
		case FT_Q4_K_S: if (i < 4) t = TK_TYPE_Q5_K; break;
		default: break;
		}
	} else if (strstr(name, "ffn_down")) {
		const int n = mi->n_layer;
		switch (ft) {
		case FT_Q2_K: t = TK_TYPE_Q3_K; break;
		case FT_Q3_K_M: t = i < n / 16 ? TK_TYPE_Q5_K : TK_TYPE_Q4_K; break;
		case FT_Q3_K_L: t = TK_TYPE_Q5_K; break;
		case FT_Q4_K_M: case FT_Q5_K_M: if (more_bits(i, n)) t = TK_TYPE_Q6_K; break;
		case FT_IQ4_NL: case FT_Q4_K_S: if (i < n / 8) t = TK_TYPE_Q5_K; break;
		default: break;
		}
	} else if (strstr(name, "attn_output.weight")) {
		switch (ft) {
		case FT_Q2_K: t = TK_TYPE_Q3_K; break;
		case FT_Q3_K_M: t = TK_TYPE_Q4_K; break;
		case FT_Q3_K_L: t = TK_TYPE_Q5_K; break;
		default: break;
		}
	} else if (strstr(name, "attn_qkv.weight")) {
		switch (ft) {
		case FT_Q3_K_M: case FT_Q3_K_L: t = TK_TYPE_Q4_K; break;
		case FT_Q4_K_M: t = TK_TYPE_Q5_K; break;
		case FT_Q5_K_M: t = TK_TYPE_Q6_K; break;
		default: break;
		}
	}
	if (ne0 % blck(t) == 0)
		return t;
	/* rows that do not split into 256-element super-blocks: llama-quantize's
	 * 32-element stand-ins, then F16 */
	switch (t) {
	case TK_TYPE_Q2_K: case TK_TYPE_Q3_K: t = TK_TYPE_IQ4_NL; break;
	case TK_TYPE_Q4_K: t = TK_TYPE_Q5_0; break;
	case TK_TYPE_Q5_K: t = TK_TYPE_Q5_1; break;
	case TK_TYPE_Q6_K: t = TK_TYPE_Q8_0; break;
	default:
		return tk_errf(TK_EINVAL, "quantize: tensor '%s': rows of %lld elements do not split "
			       "into %s blocks", name, (long long)ne0, tk_type_name(t));
	}
	return ne0 % blck(t) ? TK_TYPE_F16 : t;
}

int tk_quant_tensor_type(const struct tk_quant_scheme *s, const struct tk_quant_model_info *mi,
			 const char *name, uint32_t n_dims, const int64_t *ne, int src_type,
			 bool pure)
{
	if (!is_weight_matrix(name, n_dims))
		return src_type;
	const int def = s->type;
	if (!pure && tk_type_traits_ref(def)->is_quantized) {
		int t = rule_type(s, mi, name, ne[0]);
		return t < 0 ? -1 : t;
	}
	if (ne[0] % blck(def)) {
		tk_errf(TK_EINVAL, "quantize: tensor '%s': rows of %lld elements do not split into %s "
			"blocks", name, (long long)ne[0], tk_type_name(def));
		return -1;
	}
	return def;
}

/* ---- the rewrite ---- */

struct plan {
	const struct tk_gguf_tensor *t;
	int type; /* output type */
};

struct job {
	const struct tk_gguf *g;
	struct plan *p;
	size_t n;
	int n_threads;
};

struct slice {
	const struct tk_gguf_tensor *t;
	int type;
	int64_t r0, r1;   /* rows [r0, r1) */
	size_t src_row, dst_row;
	uint8_t *dst;
	int rc;
};

/* Converts rows [r0, r1) of the source tensor through a float row. */
static void *slice_run(void *arg)
{
	struct slice *s = arg;
	const int64_t ne0 = s->t->ne[0];
	float *row = malloc((size_t)ne0 * sizeof *row);
	if (!row) {
		s->rc = TK_ENOMEM;
		return NULL;
	}
	const struct tk_type_traits *from = tk_type_traits(s->t->type);
	const struct tk_type_traits *to = tk_type_traits(s->type);
	for (int64_t r = s->r0; r < s->r1; r++) {
		const uint8_t *src = (const uint8_t *)s->t->data + (size_t)r * s->src_row;
		if (s->t->type == TK_TYPE_F32)
			memcpy(row, src, (size_t)ne0 * sizeof *row); /* data need not be aligned */
		else
			from->to_float(src, row, ne0);
		to->from_float(row, s->dst + (size_t)r * s->dst_row, ne0);
	}
	free(row);
	s->rc = 0;
	return NULL;
}

static int fill(void *ctx, size_t i, const struct tk_gguf_tensor *info, void *buf, size_t nbytes)
{
	(void)info;
	struct job *j = ctx;
	const struct plan *p = &j->p[i];
	const struct tk_gguf_tensor *t = p->t;
	if (p->type == t->type) {
		memcpy(buf, t->data, nbytes);
		return 0;
	}
	size_t src_row, dst_row;
	if (tk_type_row_size(t->type, t->ne[0], &src_row) || tk_type_row_size(p->type, t->ne[0], &dst_row))
		return tk_errf(TK_EINTERNAL, "quantize: tensor '%s': row size", t->name);
	const int64_t rows = t->n_elements / t->ne[0];
	if ((size_t)rows * dst_row != nbytes)
		return tk_errf(TK_EINTERNAL, "quantize: tensor '%s': %zu bytes, expected %zu", t->name,
			       nbytes, (size_t)rows * dst_row);
	int nt = j->n_threads;
	if (nt > rows)
		nt = (int)rows;
	struct slice sl[64];
	pthread_t th[64];
	bool started[64] = { false };
	int rc = 0;
	for (int k = 0; k < nt; k++) {
		sl[k] = (struct slice){ .t = t, .type = p->type, .r0 = rows * k / nt,
					.r1 = rows * (k + 1) / nt, .src_row = src_row,
					.dst_row = dst_row, .dst = buf, .rc = 0 };
		if (k > 0 && pthread_create(&th[k], NULL, slice_run, &sl[k]) == 0)
			started[k] = true;
	}
	slice_run(&sl[0]);
	for (int k = 1; k < nt; k++) {
		if (started[k])
			pthread_join(th[k], NULL);
		else
			slice_run(&sl[k]); /* no thread: do it here */
	}
	for (int k = 0; k < nt; k++)
		if (sl[k].rc)
			rc = tk_errf(sl[k].rc, "quantize: tensor '%s': out of memory", t->name);
	return rc;
}

/* llama-quantize's tensor order: tensors outside the layers first, then
 * layer by layer; by name within each. */
static int plan_cmp(const void *a, const void *b)
{
	const struct plan *x = a, *y = b;
	int lx = layer_of(x->t->name), ly = layer_of(y->t->name);
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return strcmp(x->t->name, y->t->name);
}

static void model_info(const struct tk_gguf *g, struct tk_quant_model_info *mi)
{
	memset(mi, 0, sizeof *mi);
	mi->n_gqa = 1;
	int n_down = 0;
	for (size_t i = 0; i < tk_gguf_tensor_count(g); i++) {
		const char *nm = tk_gguf_tensor_at(g, i)->name;
		if (strstr(nm, "attn_v.weight") || strstr(nm, "attn_qkv.weight") ||
		    strstr(nm, "attn_kv_b.weight"))
			mi->n_attn_v++;
		else if (!strcmp(nm, "output.weight"))
			mi->has_output = true;
		if (strstr(nm, "ffn_down"))
			n_down++;
	}
	mi->n_layer = n_down;
	const char *arch = NULL;
	if (tk_gguf_get_str(g, "general.architecture", &arch, NULL) || !arch)
		return;
	char key[256];
	uint32_t v, nh = 0, nkv = 0;
	snprintf(key, sizeof key, "%s.block_count", arch);
	if (!tk_gguf_get_u32(g, key, &v) && v > 0 && v < 1000000)
		mi->n_layer = (int)v;
	snprintf(key, sizeof key, "%s.attention.head_count", arch);
	if (tk_gguf_get_u32(g, key, &nh))
		nh = 0;
	snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
	if (tk_gguf_get_u32(g, key, &nkv))
		nkv = nh;
	if (nh && nkv && nh >= nkv)
		mi->n_gqa = (int)(nh / nkv);
}

int tk_quantize_file(const char *in_path, const char *out_path, const struct tk_quant_scheme *s,
		     const struct tk_quantize_opts *o)
{
	if (!in_path || !out_path || !s || !o || o->n_threads < 0)
		return tk_errf(TK_EINVAL, "quantize: bad arguments");
	int n_threads = o->n_threads;
	if (n_threads == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		n_threads = c > 0 ? (int)c : 1;
	}
	if (n_threads > 64)
		n_threads = 64;
	struct tk_gguf_writer *w = NULL;
	struct plan *plan = NULL;
	struct tk_gguf *g = tk_gguf_open(in_path);
	if (!g)
		return tk_err_last() ? tk_err_last() : TK_EIO;
	int rc = 0;
	struct tk_quant_model_info mi;
	model_info(g, &mi);
	const size_t n = tk_gguf_tensor_count(g);
	plan = calloc(n ? n : 1, sizeof *plan);
	w = tk_gguf_writer_new();
	if (!plan || !w) {
		rc = tk_errf(TK_ENOMEM, "quantize: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct tk_gguf_tensor *t = tk_gguf_tensor_at(g, i);
		int type = tk_quant_tensor_type(s, &mi, t->name, t->n_dims, t->ne, t->type, o->pure);
		if (type < 0) {
			rc = tk_err_last() ? tk_err_last() : TK_EINVAL;
			goto out;
		}
		if (type != t->type) {
			const struct tk_type_traits *src = tk_type_traits(t->type);
			if (src->is_quantized)
				rc = tk_errf(TK_EUNSUPPORTED, "quantize: tensor '%s' is %s; requantizing to %s "
					     "is not supported (start from an f32/f16/bf16 model)",
					     t->name, src->name, tk_type_name(type));
			else if (!src->to_float || !tk_type_traits(type)->from_float)
				rc = tk_errf(TK_EUNSUPPORTED, "quantize: tensor '%s': cannot convert %s to %s",
					     t->name, src->name, tk_type_name(type));
			if (rc)
				goto out;
		}
		plan[i] = (struct plan){ .t = t, .type = type };
	}
	qsort(plan, n, sizeof *plan, plan_cmp);

	/* metadata: everything but split.* and the two keys set below, which
	 * go last, as llama-quantize appends them */
	for (size_t i = 0; i < tk_gguf_kv_count(g); i++) {
		const struct tk_gguf_kv *kv = tk_gguf_kv_at(g, i);
		if (!strcmp(kv->key, "general.quantization_version") ||
		    !strcmp(kv->key, "general.file_type") || !strcmp(kv->key, "split.no") ||
		    !strcmp(kv->key, "split.count") || !strcmp(kv->key, "split.tensors.count"))
			continue;
		if ((rc = tk_gguf_writer_copy_kv(w, kv)))
			goto out;
	}
	if ((rc = tk_gguf_writer_set_u32(w, "general.quantization_version", 2)) ||
	    (rc = tk_gguf_writer_set_u32(w, "general.file_type", s->ftype)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct tk_gguf_tensor *t = plan[i].t;
		if ((rc = tk_gguf_writer_add_tensor(w, t->name, plan[i].type, t->n_dims, t->ne)))
			goto out;
	}
	struct job job = { .g = g, .p = plan, .n = n, .n_threads = n_threads };
	rc = tk_gguf_writer_write(w, out_path, fill, &job);
out:
	tk_gguf_writer_free(w);
	free(plan);
	tk_gguf_close(g);
	return rc;
}
