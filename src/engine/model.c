/*
 * model.c — loading a model from GGUF (model.h): hyperparameters from
 * metadata, tensors bound by name with shape and type checks.
 *
 * Owns the engine_model struct, its layer array and its path copy; the GGUF
 * handle (and so the mmap every weight points into) is owned through
 * model->gguf.
 */
#include "engine/model.h"

#include "core/err.h"
#include "engine/gguf.h"
#include "obs/log.h"
#include "engine/quant.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sanity caps on hyperparameters read from a file: large enough for any
 * real model, small enough that products of them cannot overflow. */
#define HP_MAX_EMBD (1 << 17)
#define HP_MAX_LAYER 4096
#define HP_MAX_HEAD 4096
#define HP_MAX_FF (1 << 20)
#define HP_MAX_CTX (1 << 24)

struct loader {
	struct engine_model *m;
	const char *name; /* file name for messages */
	char key[160];    /* scratch for "<arch>.<suffix>" */
};

static const char *arch_key(struct loader *ld, const char *suffix)
{
	snprintf(ld->key, sizeof ld->key, "%s.%s", ld->m->arch->name, suffix);
	return ld->key;
}

/* Reads an integer hyperparameter into *out; absent keys take def (def < 0:
 * required). The value must lie in [lo, hi]. */
static int hp_int(struct loader *ld, const char *suffix, int64_t def, int64_t lo, int64_t hi,
		  int32_t *out)
{
	const char *key = arch_key(ld, suffix);
	int64_t v;
	int rc = tk_gguf_get_i64(ld->m->gguf, key, &v);
	if (rc == TK_ENOENT) {
		if (def < 0)
			return tk_errf(TK_EFORMAT, "model: %s: required key '%s' is missing",
				       ld->name, key);
		v = def;
	} else if (rc) {
		return tk_err_wrap(rc, "model: %s", ld->name);
	}
	if (v < lo || v > hi)
		return tk_errf(TK_EFORMAT, "model: %s: key '%s' = %lld is outside %lld..%lld",
			       ld->name, key, (long long)v, (long long)lo, (long long)hi);
	*out = (int32_t)v;
	return 0;
}

static int hp_float(struct loader *ld, const char *suffix, float def, float lo, float hi,
		    float *out)
{
	const char *key = arch_key(ld, suffix);
	float v;
	int rc = tk_gguf_get_f32(ld->m->gguf, key, &v);
	if (rc == TK_ENOENT)
		v = def;
	else if (rc)
		return tk_err_wrap(rc, "model: %s", ld->name);
	if (!(v >= lo && v <= hi))
		return tk_errf(TK_EFORMAT, "model: %s: key '%s' = %g is outside %g..%g",
			       ld->name, key, (double)v, (double)lo, (double)hi);
	*out = v;
	return 0;
}

static int read_hparams(struct loader *ld)
{
	struct engine_hparams *hp = &ld->m->hp;
	int rc;
	if ((rc = hp_int(ld, "context_length", -1, 1, HP_MAX_CTX, &hp->n_ctx_train)) ||
	    (rc = hp_int(ld, "embedding_length", -1, 1, HP_MAX_EMBD, &hp->n_embd)) ||
	    (rc = hp_int(ld, "block_count", -1, 1, HP_MAX_LAYER, &hp->n_layer)) ||
	    (rc = hp_int(ld, "feed_forward_length", -1, 1, HP_MAX_FF, &hp->n_ff)) ||
	    (rc = hp_int(ld, "attention.head_count", -1, 1, HP_MAX_HEAD, &hp->n_head)) ||
	    (rc = hp_int(ld, "attention.head_count_kv", hp->n_head, 1, hp->n_head,
			 &hp->n_head_kv)))
		return rc;
	if (hp->n_head % hp->n_head_kv)
		return tk_errf(TK_EFORMAT, "model: %s: head_count %d is not a multiple of "
			       "head_count_kv %d", ld->name, hp->n_head, hp->n_head_kv);
	if ((rc = hp_int(ld, "attention.key_length", hp->n_embd / hp->n_head, 1, HP_MAX_EMBD,
			 &hp->head_dim)))
		return rc;
	int32_t v_len;
	if ((rc = hp_int(ld, "attention.value_length", hp->head_dim, 1, HP_MAX_EMBD, &v_len)))
		return rc;
	if (v_len != hp->head_dim)
		return tk_errf(TK_EUNSUPPORTED, "model: %s: key_length %d != value_length %d is "
			       "not supported", ld->name, hp->head_dim, v_len);
	if ((rc = hp_int(ld, "rope.dimension_count", hp->head_dim, 2, hp->head_dim, &hp->n_rot)))
		return rc;
	if (hp->n_rot % 2)
		return tk_errf(TK_EFORMAT, "model: %s: rope.dimension_count %d is odd", ld->name,
			       hp->n_rot);
	if ((rc = hp_float(ld, "attention.layer_norm_rms_epsilon", 1e-5f, 0.0f, 1.0f,
			   &hp->rms_eps)) ||
	    (rc = hp_float(ld, "rope.freq_base", 10000.0f, 1.0f, 1e12f, &hp->rope_freq_base)))
		return rc;

	/* RoPE scaling: "none" or "linear" (also the older scale_linear key). */
	hp->rope_scaling = ENGINE_ROPE_SCALING_NONE;
	hp->rope_scale_factor = 1.0f;
	const char *stype = NULL;
	rc = tk_gguf_get_str(ld->m->gguf, arch_key(ld, "rope.scaling.type"), &stype, NULL);
	if (rc && rc != TK_ENOENT)
		return tk_err_wrap(rc, "model: %s", ld->name);
	float factor = 0.0f;
	if (stype && !strcmp(stype, "linear")) {
		if ((rc = hp_float(ld, "rope.scaling.factor", 1.0f, 1e-3f, 1e6f, &factor)))
			return rc;
	} else if (stype && strcmp(stype, "none")) {
		return tk_errf(TK_EUNSUPPORTED, "model: %s: rope scaling type '%s' is not "
			       "supported (none, linear)", ld->name, stype);
	} else if (!stype) {
		if ((rc = hp_float(ld, "rope.scale_linear", 0.0f, 0.0f, 1e6f, &factor)))
			return rc;
	}
	if (factor > 0.0f && factor != 1.0f) {
		hp->rope_scaling = ENGINE_ROPE_SCALING_LINEAR;
		hp->rope_scale_factor = factor;
	}
	return 0;
}

static const struct tk_gguf_tensor *find_tensor(struct loader *ld, const char *name,
						bool required, int *rc)
{
	const struct tk_gguf_tensor *t = tk_gguf_find_tensor(ld->m->gguf, name);
	*rc = 0;
	if (!t && required)
		*rc = tk_errf(TK_EFORMAT, "model: %s: tensor '%s' is missing", ld->name, name);
	return t;
}

/* Binds a matrix [n_in, n_out]. Missing and optional: 0 with out->data NULL. */
static int bind_weight(struct loader *ld, const char *name, int64_t n_in, int64_t n_out,
		       bool required, struct engine_weight *out)
{
	int rc;
	const struct tk_gguf_tensor *t = find_tensor(ld, name, required, &rc);
	memset(out, 0, sizeof *out);
	if (!t)
		return rc;
	if (t->n_dims != 2 || t->ne[0] != n_in || t->ne[1] != n_out)
		return tk_errf(TK_EFORMAT, "model: %s: tensor '%s' has shape [%lld, %lld, %lld], "
			       "expected [%lld, %lld]", ld->name, name, (long long)t->ne[0],
			       (long long)t->ne[1], (long long)t->ne[2], (long long)n_in,
			       (long long)n_out);
	if (!tk_type_can_compute(t->type))
		return tk_errf(TK_EUNSUPPORTED, "model: %s: tensor '%s' has type %s, which this "
			       "build cannot compute", ld->name, name, tk_type_name(t->type));
	if (tk_type_row_size(t->type, n_in, &out->row_bytes))
		return tk_err_wrap(TK_EFORMAT, "model: %s: tensor '%s'", ld->name, name);
	out->data = t->data;
	out->type = t->type;
	out->n_in = n_in;
	out->n_out = n_out;
	ld->m->weights_bytes += t->nbytes;
	return 0;
}

/* Binds a float vector [n]. Missing and optional: 0 with *out NULL. */
static int bind_vec(struct loader *ld, const char *name, int64_t n, bool required,
		    const float **out)
{
	int rc;
	const struct tk_gguf_tensor *t = find_tensor(ld, name, required, &rc);
	*out = NULL;
	if (!t)
		return rc;
	if (t->n_elements != n || t->ne[0] != n)
		return tk_errf(TK_EFORMAT, "model: %s: tensor '%s' has %lld elements, expected %lld",
			       ld->name, name, (long long)t->n_elements, (long long)n);
	if (t->type != TK_TYPE_F32)
		return tk_errf(TK_EUNSUPPORTED, "model: %s: tensor '%s' has type %s, expected f32",
			       ld->name, name, tk_type_name(t->type));
	if ((uintptr_t)t->data % _Alignof(float))
		return tk_errf(TK_EFORMAT, "model: %s: tensor '%s' data is not float-aligned",
			       ld->name, name);
	*out = t->data;
	ld->m->weights_bytes += t->nbytes;
	return 0;
}

static int bind_layer(struct loader *ld, int32_t il, struct engine_layer *L)
{
	const struct engine_hparams *hp = &ld->m->hp;
	const int64_t d_q = (int64_t)hp->n_head * hp->head_dim;     /* query width */
	const int64_t d_kv = (int64_t)hp->n_head_kv * hp->head_dim; /* key/value width */
	const bool bias = ld->m->arch->qkv_bias;
	char n[96];
	int rc;
#define NAME(s) (snprintf(n, sizeof n, "blk.%d." s, (int)il), n)
	if ((rc = bind_vec(ld, NAME("attn_norm.weight"), hp->n_embd, true, &L->attn_norm)) ||
	    (rc = bind_weight(ld, NAME("attn_q.weight"), hp->n_embd, d_q, true, &L->wq)) ||
	    (rc = bind_weight(ld, NAME("attn_k.weight"), hp->n_embd, d_kv, true, &L->wk)) ||
	    (rc = bind_weight(ld, NAME("attn_v.weight"), hp->n_embd, d_kv, true, &L->wv)) ||
	    (rc = bind_vec(ld, NAME("attn_q.bias"), d_q, bias, &L->bq)) ||
	    (rc = bind_vec(ld, NAME("attn_k.bias"), d_kv, bias, &L->bk)) ||
	    (rc = bind_vec(ld, NAME("attn_v.bias"), d_kv, bias, &L->bv)) ||
	    (rc = bind_weight(ld, NAME("attn_output.weight"), d_q, hp->n_embd, true, &L->wo)) ||
	    (rc = bind_vec(ld, NAME("ffn_norm.weight"), hp->n_embd, true, &L->ffn_norm)) ||
	    (rc = bind_weight(ld, NAME("ffn_gate.weight"), hp->n_embd, hp->n_ff, true,
			      &L->w_gate)) ||
	    (rc = bind_weight(ld, NAME("ffn_up.weight"), hp->n_embd, hp->n_ff, true, &L->w_up)) ||
	    (rc = bind_weight(ld, NAME("ffn_down.weight"), hp->n_ff, hp->n_embd, true,
			      &L->w_down)))
		return rc;
#undef NAME
	return 0;
}

static int bind_all(struct loader *ld)
{
	struct engine_model *m = ld->m;
	struct engine_hparams *hp = &m->hp;
	int rc;

	/* token_embd fixes n_vocab: [n_embd, n_vocab] */
	const struct tk_gguf_tensor *te = find_tensor(ld, "token_embd.weight", true, &rc);
	if (!te)
		return rc;
	if (te->n_dims != 2 || te->ne[0] != hp->n_embd || te->ne[1] < 1 || te->ne[1] > INT32_MAX)
		return tk_errf(TK_EFORMAT, "model: %s: tensor 'token_embd.weight' has shape "
			       "[%lld, %lld], expected [%d, n_vocab]", ld->name,
			       (long long)te->ne[0], (long long)te->ne[1], hp->n_embd);
	hp->n_vocab = (int32_t)te->ne[1];
	if ((rc = bind_weight(ld, "token_embd.weight", hp->n_embd, hp->n_vocab, true,
			      &m->tok_embd)) ||
	    (rc = bind_vec(ld, "output_norm.weight", hp->n_embd, true, &m->output_norm)) ||
	    (rc = bind_weight(ld, "output.weight", hp->n_embd, hp->n_vocab, !m->arch->tied_ok,
			      &m->output)))
		return rc;
	hp->tied_output = m->output.data == NULL;
	if (hp->tied_output)
		m->output = m->tok_embd; /* same bytes, counted once */
	if ((rc = bind_vec(ld, "rope_freqs.weight", hp->n_rot / 2, false, &m->rope_freqs)))
		return rc;
	for (int32_t i = 0; m->rope_freqs && i < hp->n_rot / 2; i++)
		if (!(m->rope_freqs[i] > 0.0f) || !isfinite(m->rope_freqs[i]))
			return tk_errf(TK_EFORMAT, "model: %s: rope_freqs.weight[%d] = %g: must be "
				       "a positive number", ld->name, (int)i, (double)m->rope_freqs[i]);
	hp->has_rope_freqs = m->rope_freqs != NULL;

	m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
	if (!m->layers)
		return tk_errf(TK_ENOMEM, "model: %s: out of memory for %d layers", ld->name,
			       hp->n_layer);
	for (int32_t il = 0; il < hp->n_layer; il++)
		if ((rc = bind_layer(ld, il, &m->layers[il])))
			return rc;
	return 0;
}

struct engine_model *engine_model_from_gguf(struct tk_gguf *g, const char *name)
{
	struct engine_model *m = calloc(1, sizeof *m);
	if (!m) {
		tk_gguf_close(g);
		tk_errf(TK_ENOMEM, "model: %s: out of memory", name);
		return NULL;
	}
	m->gguf = g;
	m->path = strdup(name);
	if (!m->path) {
		tk_errf(TK_ENOMEM, "model: %s: out of memory", name);
		goto err;
	}
	struct loader ld = { .m = m, .name = m->path };

	const char *arch = NULL;
	int rc = tk_gguf_get_str(g, "general.architecture", &arch, NULL);
	if (rc == TK_ENOENT) {
		tk_errf(TK_EFORMAT, "model: %s: key 'general.architecture' is missing", name);
		goto err;
	} else if (rc) {
		tk_err_wrap(rc, "model: %s", name);
		goto err;
	}
	m->arch = engine_arch_find(arch);
	if (!m->arch) {
		tk_errf(TK_EUNSUPPORTED, "model: %s: architecture '%s' is not supported "
			"(supported: %s)", name, arch, engine_arch_names());
		goto err;
	}
	if (read_hparams(&ld) || bind_all(&ld))
		goto err;
	tk_logf(TK_LOG_DEBUG, "engine",
		TK_FIELDS(TK_LF_S("model", m->path), TK_LF_S("arch", m->arch->name),
			  TK_LF_I("n_layer", m->hp.n_layer), TK_LF_I("n_embd", m->hp.n_embd),
			  TK_LF_I("n_vocab", m->hp.n_vocab),
			  TK_LF_I("weights_bytes", (int64_t)m->weights_bytes)),
		"model loaded");
	return m;
err:
	engine_model_free(m);
	return NULL;
}

struct engine_model *engine_model_load(const char *path)
{
	struct tk_gguf *g = tk_gguf_open(path);
	if (!g) {
		tk_err_wrap(tk_err_last() ? tk_err_last() : TK_EIO, "model: %s", path);
		return NULL;
	}
	return engine_model_from_gguf(g, path);
}

void engine_model_free(struct engine_model *m)
{
	if (!m)
		return;
	free(m->layers);
	free(m->path);
	tk_gguf_close(m->gguf);
	free(m);
}

void engine_model_rope(const struct engine_model *m, struct engine_rope *out)
{
	*out = (struct engine_rope){
		.style = m->arch->rope_style,
		.n_rot = m->hp.n_rot,
		.freq_base = m->hp.rope_freq_base,
		.freq_scale = 1.0f / m->hp.rope_scale_factor,
		.freq_factors = m->rope_freqs,
	};
}
