/*
 * lora.c — LoRA adapter loading, validation and merging (lora.h).
 *
 * Owns each adapter's name and the float32 copies of its A and B matrices
 * (one allocation per pair). The per-pair table is indexed
 * [il * ENGINE_LORA_N_SLOTS + slot] for layers, with the output weight last.
 */
#include "engine/lora.h"

#include "core/err.h"
#include "engine/gguf.h"
#include "engine/quant.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lora_pair {
	int32_t rank;   /* 0: absent */
	int64_t n_in, n_out;
	float *a;       /* [rank][n_in] */
	float *b;       /* [n_out][rank] */
};

struct engine_lora {
	char *name;
	float alpha;
	int32_t n_layer;
	int32_t max_rank;
	size_t n_pairs;
	size_t bytes;
	struct lora_pair *pairs; /* [n_layer * N_SLOTS + 1] */
};

static const char *const slot_names[ENGINE_LORA_N_SLOTS] = {
	"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
};

static const struct engine_weight *model_weight(const struct engine_model *m, int32_t il,
						enum engine_lora_slot slot)
{
	if (il < 0)
		return &m->output;
	const struct engine_layer *L = &m->layers[il];
	switch (slot) {
	case ENGINE_LORA_Q: return &L->wq;
	case ENGINE_LORA_K: return &L->wk;
	case ENGINE_LORA_V: return &L->wv;
	case ENGINE_LORA_O: return &L->wo;
	case ENGINE_LORA_GATE: return &L->w_gate;
	case ENGINE_LORA_UP: return &L->w_up;
	case ENGINE_LORA_DOWN: return &L->w_down;
	case ENGINE_LORA_N_SLOTS: break;
	}
	return NULL;
}

/* Maps a base tensor name (without .lora_a/_b, len bytes) to (il, slot):
 * 0, or -1 when it is not an adaptable weight. il = -1 for output.weight. */
static int parse_base_name(const char *s, size_t len, int32_t n_layer, int32_t *il,
			   enum engine_lora_slot *slot)
{
	if (len == strlen("output.weight") && memcmp(s, "output.weight", len) == 0) {
		*il = -1;
		*slot = ENGINE_LORA_Q;
		return 0;
	}
	if (len < 5 || memcmp(s, "blk.", 4) != 0)
		return -1;
	size_t i = 4;
	int64_t v = 0;
	size_t digits = 0;
	while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 7) {
		v = v * 10 + (s[i] - '0');
		i++;
		digits++;
	}
	if (digits == 0 || (digits > 1 && s[4] == '0') || i >= len || s[i] != '.' ||
	    v >= n_layer)
		return -1;
	i++;
	for (int k = 0; k < ENGINE_LORA_N_SLOTS; k++) {
		size_t nl = strlen(slot_names[k]);
		if (len - i == nl + strlen(".weight") && memcmp(s + i, slot_names[k], nl) == 0 &&
		    memcmp(s + i + nl, ".weight", strlen(".weight")) == 0) {
			*il = (int32_t)v;
			*slot = (enum engine_lora_slot)k;
			return 0;
		}
	}
	return -1;
}

static size_t pair_index(const struct engine_lora *a, int32_t il, enum engine_lora_slot slot)
{
	return il < 0 ? (size_t)a->n_layer * ENGINE_LORA_N_SLOTS
		      : (size_t)il * ENGINE_LORA_N_SLOTS + (size_t)slot;
}

static bool type_ok(int t)
{
	return t == TK_TYPE_F32 || t == TK_TYPE_F16 || t == TK_TYPE_BF16 || t == TK_TYPE_Q8_0;
}

/* Decodes a 2-D tensor into rows * cols floats at out. */
static void decode_tensor(const struct tk_gguf_tensor *t, float *out)
{
	const struct tk_type_traits *tr = tk_type_traits(t->type);
	size_t row_bytes = 0;
	(void)tk_type_row_size(t->type, t->ne[0], &row_bytes); /* validated by the reader */
	for (int64_t r = 0; r < t->ne[1]; r++)
		tr->to_float((const char *)t->data + (size_t)r * row_bytes,
			     out + (size_t)r * (size_t)t->ne[0], t->ne[0]);
}

void engine_lora_free(struct engine_lora *a)
{
	if (!a)
		return;
	if (a->pairs) {
		size_t n = (size_t)a->n_layer * ENGINE_LORA_N_SLOTS + 1;
		for (size_t i = 0; i < n; i++) {
			free(a->pairs[i].a);
			free(a->pairs[i].b);
		}
	}
	free(a->pairs);
	free(a->name);
	free(a);
}

/* Checks a metadata string key equals want. */
static int want_str(const struct tk_gguf *g, const char *name, const char *key, const char *want,
		    bool required)
{
	const char *v = NULL;
	int rc = tk_gguf_get_str(g, key, &v, NULL);
	if (rc == TK_ENOENT && !required)
		return 0;
	if (rc == TK_ENOENT)
		return tk_errf(TK_EFORMAT, "lora: %s: key '%s' missing: not a LoRA adapter", name,
			       key);
	if (rc < 0)
		return tk_err_wrap(rc, "lora: %s", name);
	if (strcmp(v, want) != 0)
		return tk_errf(key[0] == 'g' && strcmp(key, "general.architecture") == 0
				       ? TK_EINVAL
				       : TK_EFORMAT,
			       "lora: %s: %s is '%s', expected '%s'", name, key, v, want);
	return 0;
}

struct engine_lora *engine_lora_from_gguf(const struct tk_gguf *g, const char *name,
					  const struct engine_model *m)
{
	struct engine_lora *a = calloc(1, sizeof *a);
	if (!a || !(a->name = strdup(name))) {
		tk_errf(TK_ENOMEM, "lora: %s: out of memory", name);
		goto fail;
	}
	a->n_layer = m->hp.n_layer;
	if (want_str(g, name, "general.type", "adapter", true) < 0 ||
	    want_str(g, name, "adapter.type", "lora", true) < 0 ||
	    want_str(g, name, "general.architecture", m->arch->name, true) < 0)
		goto fail;
	const struct tk_gguf_kv *akv = tk_gguf_find_kv(g, "adapter.lora.alpha");
	if (akv) {
		double alpha = 0;
		if (tk_gguf_get_f64(g, "adapter.lora.alpha", &alpha) < 0) {
			/* some writers store it as an integer */
			int64_t ia = 0;
			if (tk_gguf_get_i64(g, "adapter.lora.alpha", &ia) < 0) {
				tk_errf(TK_EFORMAT, "lora: %s: adapter.lora.alpha is a %s, not a number",
					name, tk_gguf_type_name((int)akv->type));
				goto fail;
			}
			alpha = (double)ia;
		}
		if (!isfinite(alpha) || alpha < 0 || alpha > 1e6) {
			tk_errf(TK_EFORMAT, "lora: %s: adapter.lora.alpha %g is not a finite value in "
				"[0, 1e6]", name, alpha);
			goto fail;
		}
		a->alpha = (float)alpha;
	}
	const size_t n_slots = (size_t)m->hp.n_layer * ENGINE_LORA_N_SLOTS + 1;
	a->pairs = calloc(n_slots, sizeof *a->pairs);
	/* which tensor index holds each half (SIZE_MAX: none yet) */
	size_t *ia = malloc(n_slots * sizeof *ia), *ib = malloc(n_slots * sizeof *ib);
	if (!a->pairs || !ia || !ib) {
		free(ia);
		free(ib);
		tk_errf(TK_ENOMEM, "lora: %s: out of memory", name);
		goto fail;
	}
	for (size_t i = 0; i < n_slots; i++)
		ia[i] = ib[i] = SIZE_MAX;

	const size_t nt = tk_gguf_tensor_count(g);
	int rc = 0;
	for (size_t i = 0; i < nt && rc == 0; i++) {
		const struct tk_gguf_tensor *t = tk_gguf_tensor_at(g, i);
		const size_t L = t->name_len;
		bool is_a = L > 7 && memcmp(t->name + L - 7, ".lora_a", 7) == 0;
		bool is_b = L > 7 && memcmp(t->name + L - 7, ".lora_b", 7) == 0;
		int32_t il = 0;
		enum engine_lora_slot slot = ENGINE_LORA_Q;
		if (!is_a && !is_b) {
			rc = tk_errf(TK_EFORMAT, "lora: %s: tensor '%s' is not a LoRA half (name must "
				     "end in .lora_a or .lora_b)", name, t->name);
		} else if (parse_base_name(t->name, L - 7, m->hp.n_layer, &il, &slot) < 0 ||
			   (il < 0 && m->hp.tied_output)) {
			rc = tk_errf(TK_EINVAL, "lora: %s: tensor '%s' adapts no weight of the model "
				     "%s (%d layers; adaptable: blk.N.{attn_q,attn_k,attn_v,"
				     "attn_output,ffn_gate,ffn_up,ffn_down}.weight%s)", name, t->name,
				     m->path, m->hp.n_layer,
				     m->hp.tied_output ? "" : ", output.weight");
		} else if (!type_ok(t->type)) {
			rc = tk_errf(TK_EUNSUPPORTED, "lora: %s: tensor '%s' has type %s (adapters "
				     "must be f32, f16, bf16 or q8_0)", name, t->name,
				     tk_type_name(t->type));
		} else if (t->n_dims != 2) {
			rc = tk_errf(TK_EFORMAT, "lora: %s: tensor '%s' has %u dimensions, expected 2",
				     name, t->name, t->n_dims);
		} else {
			size_t k = pair_index(a, il, slot);
			(is_a ? ia : ib)[k] = i;
		}
	}
	for (size_t k = 0; k < n_slots && rc == 0; k++) {
		if (ia[k] == SIZE_MAX && ib[k] == SIZE_MAX)
			continue;
		const int32_t il = k == n_slots - 1 ? -1 : (int32_t)(k / ENGINE_LORA_N_SLOTS);
		const enum engine_lora_slot slot = (enum engine_lora_slot)(k % ENGINE_LORA_N_SLOTS);
		const struct tk_gguf_tensor *ta = ia[k] == SIZE_MAX ? NULL : tk_gguf_tensor_at(g, ia[k]);
		const struct tk_gguf_tensor *tb = ib[k] == SIZE_MAX ? NULL : tk_gguf_tensor_at(g, ib[k]);
		if (!ta || !tb) {
			const struct tk_gguf_tensor *have = ta ? ta : tb;
			rc = tk_errf(TK_EFORMAT, "lora: %s: tensor '%s' has no matching .lora_%c half",
				     name, have->name, ta ? 'b' : 'a');
			break;
		}
		const struct engine_weight *w = model_weight(m, il, slot);
		const int64_t rank = ta->ne[1];
		if (ta->ne[0] != w->n_in || tb->ne[1] != w->n_out || tb->ne[0] != rank) {
			rc = tk_errf(TK_EINVAL, "lora: %s: '%s' is [%lld, %lld] and '%s' is [%lld, "
				     "%lld]; the base weight is [%lld, %lld], so expected [%lld, r] and "
				     "[r, %lld] with the same r", name, ta->name,
				     (long long)ta->ne[0], (long long)ta->ne[1], tb->name,
				     (long long)tb->ne[0], (long long)tb->ne[1], (long long)w->n_in,
				     (long long)w->n_out, (long long)w->n_in, (long long)w->n_out);
			break;
		}
		if (rank < 1 || rank > ENGINE_LORA_MAX_RANK) {
			rc = tk_errf(TK_ELIMIT, "lora: %s: '%s' has rank %lld (1..%d supported)", name,
				     ta->name, (long long)rank, ENGINE_LORA_MAX_RANK);
			break;
		}
		struct lora_pair *p = &a->pairs[k];
		p->rank = (int32_t)rank;
		p->n_in = w->n_in;
		p->n_out = w->n_out;
		const size_t na = (size_t)rank * (size_t)w->n_in, nb = (size_t)w->n_out * (size_t)rank;
		p->a = malloc(na * sizeof(float));
		p->b = malloc(nb * sizeof(float));
		if (!p->a || !p->b) {
			rc = tk_errf(TK_ENOMEM, "lora: %s: out of memory for '%s'", name, ta->name);
			break;
		}
		decode_tensor(ta, p->a);
		decode_tensor(tb, p->b);
		for (size_t j = 0; j < na && rc == 0; j++)
			if (!isfinite(p->a[j]))
				rc = tk_errf(TK_EFORMAT, "lora: %s: '%s' holds a non-finite value", name,
					     ta->name);
		for (size_t j = 0; j < nb && rc == 0; j++)
			if (!isfinite(p->b[j]))
				rc = tk_errf(TK_EFORMAT, "lora: %s: '%s' holds a non-finite value", name,
					     tb->name);
		a->bytes += (na + nb) * sizeof(float);
		a->n_pairs++;
		if (p->rank > a->max_rank)
			a->max_rank = p->rank;
	}
	free(ia);
	free(ib);
	if (rc < 0)
		goto fail;
	if (a->n_pairs == 0) {
		tk_errf(TK_EFORMAT, "lora: %s: no .lora_a/.lora_b tensor pairs", name);
		goto fail;
	}
	return a;
fail:
	engine_lora_free(a);
	return NULL;
}

struct engine_lora *engine_lora_load(const char *path, const struct engine_model *m)
{
	struct tk_gguf *g = tk_gguf_open(path);
	if (!g) {
		tk_err_wrap(tk_err_last(), "lora: %s", path);
		return NULL;
	}
	struct engine_lora *a = engine_lora_from_gguf(g, path, m);
	tk_gguf_close(g);
	return a;
}

const char *engine_lora_name(const struct engine_lora *a)
{
	return a->name;
}

float engine_lora_alpha(const struct engine_lora *a)
{
	return a->alpha;
}

int32_t engine_lora_max_rank(const struct engine_lora *a)
{
	return a->max_rank;
}

size_t engine_lora_n_pairs(const struct engine_lora *a)
{
	return a->n_pairs;
}

size_t engine_lora_bytes(const struct engine_lora *a)
{
	return a->bytes;
}

int engine_lora_pair(const struct engine_lora *a, int32_t il, enum engine_lora_slot slot,
		     struct engine_weight *A, struct engine_weight *B)
{
	if (il >= a->n_layer || (il >= 0 && (slot < 0 || slot >= ENGINE_LORA_N_SLOTS)))
		return 0;
	const struct lora_pair *p = &a->pairs[pair_index(a, il, slot)];
	if (p->rank == 0)
		return 0;
	*A = (struct engine_weight){ .data = p->a, .type = TK_TYPE_F32, .n_in = p->n_in,
				     .n_out = p->rank, .row_bytes = (size_t)p->n_in * sizeof(float) };
	*B = (struct engine_weight){ .data = p->b, .type = TK_TYPE_F32, .n_in = p->rank,
				     .n_out = p->n_out, .row_bytes = (size_t)p->rank * sizeof(float) };
	return 1;
}

float engine_lora_scale(const struct engine_lora *a, int32_t il, enum engine_lora_slot slot,
			float u)
{
	if (a->alpha <= 0.0f)
		return u;
	int32_t rank = a->max_rank;
	if (il < a->n_layer && (il < 0 || (slot >= 0 && slot < ENGINE_LORA_N_SLOTS))) {
		const struct lora_pair *p = &a->pairs[pair_index(a, il, slot)];
		if (p->rank > 0)
			rank = p->rank;
	}
	return u * a->alpha / (float)rank;
}

int engine_lora_check_model(const struct engine_lora *a, const struct engine_model *m)
{
	if (a->n_layer != m->hp.n_layer)
		return tk_errf(TK_EINVAL, "lora: %s was loaded for a model of %d layers; %s has %d",
			       a->name, a->n_layer, m->path, m->hp.n_layer);
	for (int32_t il = -1; il < a->n_layer; il++) {
		for (int s = 0; s < (il < 0 ? 1 : ENGINE_LORA_N_SLOTS); s++) {
			const struct lora_pair *p = &a->pairs[pair_index(a, il, (enum engine_lora_slot)s)];
			if (p->rank == 0)
				continue;
			if (il < 0 && m->hp.tied_output)
				return tk_errf(TK_EINVAL, "lora: %s adapts output.weight, which %s ties "
					       "to token_embd", a->name, m->path);
			const struct engine_weight *w = model_weight(m, il, (enum engine_lora_slot)s);
			if (w->n_in != p->n_in || w->n_out != p->n_out)
				return tk_errf(TK_EINVAL, "lora: %s does not fit %s: %s of layer %d is "
					       "[%lld, %lld], the adapter expects [%lld, %lld]", a->name,
					       m->path, il < 0 ? "output" : slot_names[s], il,
					       (long long)w->n_in, (long long)w->n_out,
					       (long long)p->n_in, (long long)p->n_out);
		}
	}
	return 0;
}

/* ------------------------------------------------ merge */

struct merge_job {
	const struct engine_model *m;
	const struct tk_gguf *g;
	const struct engine_lora_use *uses;
	size_t n;
	double *acc; /* [n_in] row accumulator */
};

/* Finds (il, slot) for a model tensor name; 0 or -1. */
static int merge_target(const struct engine_model *m, const char *name, int32_t *il,
			enum engine_lora_slot *slot)
{
	return parse_base_name(name, strlen(name), m->hp.n_layer, il, slot);
}

static bool merge_adapted(const struct merge_job *j, const char *name, int32_t *il,
			  enum engine_lora_slot *slot)
{
	if (merge_target(j->m, name, il, slot) < 0)
		return false;
	if (*il < 0 && j->m->hp.tied_output)
		return false;
	struct engine_weight A, B;
	for (size_t u = 0; u < j->n; u++)
		if (engine_lora_pair(j->uses[u].lora, *il, *slot, &A, &B))
			return true;
	return false;
}

static int merge_fill(void *vctx, size_t i, const struct tk_gguf_tensor *info, void *buf,
		      size_t nbytes)
{
	struct merge_job *j = vctx;
	const struct tk_gguf_tensor *src = tk_gguf_tensor_at(j->g, i);
	int32_t il = 0;
	enum engine_lora_slot slot = ENGINE_LORA_Q;
	if (!merge_adapted(j, src->name, &il, &slot)) {
		if (nbytes != src->nbytes)
			return tk_errf(TK_EINTERNAL, "lora merge: size of '%s' changed", src->name);
		memcpy(buf, src->data, nbytes);
		return 0;
	}
	(void)info;
	const struct engine_weight *w = model_weight(j->m, il, slot);
	const struct tk_type_traits *tr = tk_type_traits(w->type);
	float *out = buf;
	const size_t n_in = (size_t)w->n_in;
	for (int64_t o = 0; o < w->n_out; o++) {
		float *row = out + (size_t)o * n_in;
		tr->to_float((const char *)w->data + (size_t)o * w->row_bytes, row, w->n_in);
		for (size_t c = 0; c < n_in; c++)
			j->acc[c] = row[c];
		for (size_t u = 0; u < j->n; u++) {
			struct engine_weight A, B;
			if (!engine_lora_pair(j->uses[u].lora, il, slot, &A, &B))
				continue;
			const double s = engine_lora_scale(j->uses[u].lora, il, slot,
							   j->uses[u].user_scale);
			const float *brow = (const float *)B.data + (size_t)o * (size_t)A.n_out;
			for (int64_t r = 0; r < A.n_out; r++) {
				const double br = s * brow[r];
				const float *arow = (const float *)A.data + (size_t)r * n_in;
				for (size_t c = 0; c < n_in; c++)
					j->acc[c] += br * arow[c];
			}
		}
		for (size_t c = 0; c < n_in; c++)
			row[c] = (float)j->acc[c];
	}
	return 0;
}

int engine_lora_merge_write(const char *model_path, const struct engine_lora_use *uses,
			    size_t n, const char *out_path)
{
	int rc = 0;
	struct tk_gguf_writer *w = NULL;
	struct merge_job j = { 0 };
	/* the merge reads the file rows only: no packed copies (model.h) */
	const struct engine_model_params mp = { .repack = ENGINE_REPACK_OFF };
	struct engine_model *m = engine_model_load_params(model_path, &mp);
	if (!m)
		return tk_err_last() < 0 ? tk_err_last() : TK_EIO;
	j.m = m;
	j.g = m->gguf;
	j.uses = uses;
	j.n = n;
	for (size_t u = 0; u < n; u++) {
		if ((rc = engine_lora_check_model(uses[u].lora, m)) < 0)
			goto out;
		if (!isfinite(uses[u].user_scale)) {
			rc = tk_errf(TK_EINVAL, "lora merge: scale of %s is not finite",
				     engine_lora_name(uses[u].lora));
			goto out;
		}
	}
	int64_t max_in = 1;
	const size_t nt = tk_gguf_tensor_count(m->gguf);
	for (size_t i = 0; i < nt; i++) {
		const struct tk_gguf_tensor *t = tk_gguf_tensor_at(m->gguf, i);
		if (t->ne[0] > max_in)
			max_in = t->ne[0];
	}
	if (!(j.acc = malloc((size_t)max_in * sizeof(double))) || !(w = tk_gguf_writer_new())) {
		rc = tk_errf(TK_ENOMEM, "lora merge: out of memory");
		goto out;
	}
	for (size_t i = 0; i < tk_gguf_kv_count(m->gguf); i++) {
		const struct tk_gguf_kv *kv = tk_gguf_kv_at(m->gguf, i);
		if (strcmp(kv->key, "general.alignment") == 0)
			continue; /* the writer picks its own */
		if ((rc = tk_gguf_writer_copy_kv(w, kv)) < 0)
			goto out;
	}
	for (size_t i = 0; i < nt; i++) {
		const struct tk_gguf_tensor *t = tk_gguf_tensor_at(m->gguf, i);
		int32_t il = 0;
		enum engine_lora_slot slot = ENGINE_LORA_Q;
		int type = merge_adapted(&j, t->name, &il, &slot) ? TK_TYPE_F32 : t->type;
		if ((rc = tk_gguf_writer_add_tensor(w, t->name, type, t->n_dims, t->ne)) < 0)
			goto out;
	}
	rc = tk_gguf_writer_write(w, out_path, merge_fill, &j);
out:
	tk_gguf_writer_free(w);
	free(j.acc);
	engine_model_free(m);
	return rc;
}
