/*
 * model.c — loading a model from GGUF (model.h): hyperparameters from
 * metadata, tensors bound by name with shape and type checks.
 *
 * Owns the engine_model struct, its layer array and its path copy; the GGUF
 * handle (and so the mmap every weight points into) is owned through
 * model->gguf; the packed copies of the weights (model.h) are one anonymous
 * mapping owned through model->packed.
 */
#include "engine/model.h"

#include "core/env.h"
#include "core/err.h"
#include "engine/gguf.h"
#include "engine/pool.h"
#include "obs/log.h"
#include "engine/quant.h"
#include "engine/quant_pack.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

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

/* ------------------------------------------------ packed copies */

#define PACK_ALIGN 64 /* bytes: each weight's groups start on a cache line */

/* The matrices the forward pass multiplies by, in model order: the output
 * first, then each layer's seven. out has room for 1 + 7 * n_layer. */
static size_t matmul_weights(struct engine_model *m, struct engine_weight **out)
{
	size_t n = 0;
	out[n++] = &m->output;
	for (int32_t il = 0; il < m->hp.n_layer; il++) {
		struct engine_layer *L = &m->layers[il];
		struct engine_weight *lw[] = { &L->wq, &L->wk, &L->wv, &L->wo,
					       &L->w_gate, &L->w_up, &L->w_down };
		for (size_t i = 0; i < sizeof lw / sizeof lw[0]; i++)
			out[n++] = lw[i];
	}
	return n;
}

/* The layout w gets under mode, or NULL: not packed. */
static const struct tk_pack_traits *pack_choice(const struct engine_weight *w,
						enum engine_repack mode)
{
	if (!w->data || w->n_out < TK_PACK_ROWS)
		return NULL;
	const struct tk_pack_traits *pt;
	if (mode == ENGINE_REPACK_REF)
		pt = tk_pack_traits_ref(w->type);
	else
		pt = tk_type_traits(w->type)->pack;
	if (!pt || !pt->group_size || !pt->pack || !pt->gemm || !pt->group_size(w->n_in))
		return NULL;
	return pt;
}

/* Packing work: the groups of every packed weight cut into chunks of about
 * PACK_CHUNK_BYTES of packed output (whole groups, never across two
 * weights), numbered one after the other over the weights (first[i] is
 * weight i's first chunk, per[i] its groups per chunk). The threads take
 * the next chunk from one atomic counter until none is left: groups differ
 * in size between weights and in cost between layouts (a q6_k byte costs
 * more than a q8_0 byte), and a thread of a shared machine may be held up,
 * so a fixed split left one thread idle while the other finished. */
#define PACK_CHUNK_BYTES ((size_t)2 << 20) /* one huge page of the copy */

struct pack_job {
	struct engine_weight *const *ws;
	unsigned char *const *dst; /* [n] where weight i's groups go */
	const int64_t *first;      /* [n + 1] first chunk of weight i; [n] the total */
	const int64_t *per;        /* [n] groups per chunk of weight i */
	size_t n;
	atomic_int_fast64_t next; /* the next chunk nobody has taken */
	bool drop; /* drop the file pages of packed rows (a file mapping) */
};

/* Drops the whole pages inside [p, p + bytes) of the file mapping from this
 * process (read back from the file if touched again). */
static void drop_file_pages(const void *p, size_t bytes)
{
	const long pg = sysconf(_SC_PAGESIZE);
	if (pg <= 0)
		return;
	const uintptr_t a = (uintptr_t)p, z = a + bytes;
	const uintptr_t pa = (a + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg;
	const uintptr_t pz = z / (uintptr_t)pg * (uintptr_t)pg;
	if (pz > pa)
		(void)madvise((void *)pa, pz - pa, MADV_DONTNEED); /* advice only */
}

static void pack_task(void *arg, int ith, int nth)
{
	struct pack_job *j = arg;
	(void)ith;
	(void)nth;
	size_t i = 0; /* the chunks a thread takes only grow: so does i */
	for (;;) {
		const int64_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
		if (c >= j->first[j->n])
			break;
		while (c >= j->first[i + 1])
			i++;
		const struct engine_weight *w = j->ws[i];
		const int64_t ng = w->n_packed / TK_PACK_ROWS;
		const int64_t g0 = (c - j->first[i]) * j->per[i];
		const int64_t g1 = g0 + j->per[i] < ng ? g0 + j->per[i] : ng;
		const size_t span = TK_PACK_ROWS * w->row_bytes; /* file bytes of a group */
		for (int64_t g = g0; g < g1; g++)
			w->pack->pack(j->dst[i] + (size_t)g * w->group_bytes,
				      (const char *)w->data + (size_t)g * span, w->row_bytes, w->n_in);
		/* this chunk's rows, done: its inner pages belong to no other
		 * chunk, and dropping them now keeps the peak resident memory
		 * near one copy of the weights instead of two */
		if (j->drop)
			drop_file_pages((const char *)w->data + (size_t)g0 * span,
					(size_t)(g1 - g0) * span);
	}
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Makes the packed copies (model.h). A weight that cannot be packed (no
 * layout, too few rows) keeps the file layout; so does every weight when
 * memory for the copies is lacking (logged: the model still works, only
 * slower). */
static void pack_weights(struct engine_model *m, const struct engine_model_params *p)
{
	enum engine_repack mode = p->repack;
	m->pack_mode = mode == ENGINE_REPACK_OFF ? "off" : mode == ENGINE_REPACK_REF ? "ref" : "auto";
	if (mode == ENGINE_REPACK_AUTO && tk_env_flag("TANUKI_NO_REPACK")) {
		m->pack_mode = "env-off";
		return;
	}
	if (mode == ENGINE_REPACK_OFF)
		return;
	const double t0 = now_ms();
	const size_t cap = 1 + 7 * (size_t)m->hp.n_layer;
	struct engine_weight **all = calloc(cap, sizeof *all);
	struct engine_weight **ws = calloc(cap, sizeof *ws);
	unsigned char **dst = calloc(cap, sizeof *dst);
	int64_t *first = calloc(cap + 1, sizeof *first);
	int64_t *per = calloc(cap, sizeof *per);
	struct engine_pool *pool = NULL;
	size_t n = 0;
	int rc = 0;
	if (!all || !ws || !dst || !first || !per) {
		rc = tk_errf(TK_ENOMEM, "model: %s: out of memory", m->path);
		goto out;
	}
	const size_t n_all = matmul_weights(m, all);
	size_t bytes = 0;
	int64_t total = 0;
	for (size_t i = 0; i < n_all; i++) {
		struct engine_weight *w = all[i];
		const struct tk_pack_traits *pt = pack_choice(w, mode);
		if (!pt)
			continue;
		const int64_t ng = w->n_out / TK_PACK_ROWS;
		const size_t gb = pt->group_size(w->n_in);
		if ((uint64_t)ng > (SIZE_MAX - bytes - PACK_ALIGN) / gb) {
			rc = tk_errf(TK_ENOMEM, "model: %s: packed weights overflow", m->path);
			goto out;
		}
		w->pack = pt;
		w->group_bytes = gb;
		w->n_packed = ng * TK_PACK_ROWS;
		dst[n] = (unsigned char *)(uintptr_t)bytes; /* offset for now */
		bytes += ((size_t)ng * gb + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN;
		per[n] = gb >= PACK_CHUNK_BYTES ? 1 : (int64_t)(PACK_CHUNK_BYTES / gb);
		first[n] = total;
		total += (ng + per[n] - 1) / per[n];
		ws[n++] = w;
	}
	first[n] = total;
	if (!n)
		goto out;
	void *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		buf = NULL;
		rc = tk_errf(TK_ENOMEM, "model: %s: cannot allocate %zu bytes for packed weights",
			     m->path, bytes);
		goto out;
	}
#ifdef MADV_HUGEPAGE
	(void)madvise(buf, bytes, MADV_HUGEPAGE); /* fewer TLB misses streaming; advice only */
#endif
	m->packed = buf;
	m->packed_bytes = bytes;
	for (size_t i = 0; i < n; i++) {
		dst[i] = (unsigned char *)buf + (uintptr_t)dst[i];
		ws[i]->packed = dst[i];
	}
	const bool mapped = tk_gguf_is_mapped(m->gguf);
	struct pack_job job = { .ws = ws, .dst = dst, .first = first, .per = per, .n = n,
				.drop = mapped };
	atomic_init(&job.next, 0);
	int nth = p->n_threads > 0 ? p->n_threads : engine_default_threads();
	if (nth > ENGINE_POOL_MAX_THREADS)
		nth = ENGINE_POOL_MAX_THREADS;
	if (nth > 1 && (pool = engine_pool_new(nth)))
		engine_pool_run(pool, pack_task, &job);
	else
		pack_task(&job, 0, 1); /* one thread, or no pool: pack on the caller */
	/* the pages straddling two threads' ranges, now that all are done */
	for (size_t i = 0; mapped && i < n; i++)
		drop_file_pages(ws[i]->data, (size_t)ws[i]->n_packed * ws[i]->row_bytes);
	m->n_packed = (int32_t)n;
	m->pack_ms = now_ms() - t0;
	tk_logf(TK_LOG_INFO, "engine",
		TK_FIELDS(TK_LF_S("model", m->path), TK_LF_S("mode", m->pack_mode),
			  TK_LF_I("weights", (int64_t)n), TK_LF_I("packed_bytes", (int64_t)bytes),
			  TK_LF_I("threads", pool ? nth : 1), TK_LF_D("ms", m->pack_ms),
			  TK_LF_B("file_pages_dropped", mapped)),
		"weights packed");
out:
	if (rc) { /* nothing half-packed: every weight back to the file layout */
		for (size_t i = 0; i < n; i++) {
			ws[i]->packed = NULL;
			ws[i]->pack = NULL;
			ws[i]->n_packed = 0;
			ws[i]->group_bytes = 0;
		}
		tk_logf(TK_LOG_WARNING, "engine",
			TK_FIELDS(TK_LF_S("model", m->path), TK_LF_S("error", tk_err_detail())),
			"weights not packed: using the file layout");
		m->pack_mode = "failed";
	}
	engine_pool_free(pool);
	free(all);
	free(ws);
	free(dst);
	free(first);
	free(per);
}

struct engine_model *engine_model_from_gguf(struct tk_gguf *g, const char *name)
{
	return engine_model_from_gguf_params(g, name, NULL);
}

void engine_model_params_default(struct engine_model_params *p)
{
	*p = (struct engine_model_params){ .repack = ENGINE_REPACK_AUTO, .n_threads = 0 };
}

struct engine_model *engine_model_from_gguf_params(struct tk_gguf *g, const char *name,
						   const struct engine_model_params *params)
{
	struct engine_model_params p;
	if (params)
		p = *params;
	else
		engine_model_params_default(&p);
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
	pack_weights(m, &p);
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
	return engine_model_load_params(path, NULL);
}

struct engine_model *engine_model_load_params(const char *path,
					      const struct engine_model_params *params)
{
	struct tk_gguf *g = tk_gguf_open(path);
	if (!g) {
		tk_err_wrap(tk_err_last() ? tk_err_last() : TK_EIO, "model: %s", path);
		return NULL;
	}
	return engine_model_from_gguf_params(g, path, params);
}

void engine_model_free(struct engine_model *m)
{
	if (!m)
		return;
	if (m->packed)
		munmap(m->packed, m->packed_bytes);
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
