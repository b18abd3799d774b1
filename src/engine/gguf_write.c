/*
 * gguf_write.c — the GGUF writer (gguf.h, "writer"): collects metadata and
 * tensor declarations, then streams a GGUF v3 file.
 *
 * Owns: copies of every key, string and array payload set on it (stored
 * already encoded little-endian, ready to write), and the tensor
 * declarations. Tensor data is never held here: tk_gguf_writer_write() asks
 * the caller for one tensor at a time through a fill callback.
 *
 * One thread at a time per writer.
 */
#include "engine/gguf.h"

#include "core/err.h"
#include "engine/quant.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct wstr {
	char *s; /* owned, NUL-terminated */
	size_t len;
};

struct wkv {
	char *key;                /* owned */
	enum tk_gguf_type type;
	uint8_t scalar[8];        /* scalar value, little-endian */
	struct wstr str;          /* STRING */
	enum tk_gguf_type arr_type;
	size_t n;                 /* ARRAY element count */
	uint8_t *arr;             /* numeric elements, little-endian (owned) */
	struct wstr *strs;        /* string elements (owned) */
};

struct wtensor {
	char *name;
	int type;
	uint32_t n_dims;
	int64_t ne[TK_GGUF_MAX_DIMS];
	size_t nbytes;
	uint64_t offset;
};

struct tk_gguf_writer {
	struct wkv *kv;
	size_t n_kv, cap_kv;
	struct wtensor *t;
	size_t n_t, cap_t;
};

struct tk_gguf_writer *tk_gguf_writer_new(void)
{
	struct tk_gguf_writer *w = calloc(1, sizeof *w);
	if (!w)
		tk_errf(TK_ENOMEM, "gguf writer: out of memory");
	return w;
}

static void wkv_clear(struct wkv *kv)
{
	free(kv->str.s);
	free(kv->arr);
	for (size_t i = 0; kv->strs && i < kv->n; i++)
		free(kv->strs[i].s);
	free(kv->strs);
	char *key = kv->key;
	memset(kv, 0, sizeof *kv);
	kv->key = key;
}

void tk_gguf_writer_free(struct tk_gguf_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n_kv; i++) {
		wkv_clear(&w->kv[i]);
		free(w->kv[i].key);
	}
	free(w->kv);
	for (size_t i = 0; i < w->n_t; i++)
		free(w->t[i].name);
	free(w->t);
	free(w);
}

static char *dup_bytes(const char *s, size_t len)
{
	char *p = malloc(len + 1);
	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

/* The entry for key: existing one cleared, or a new one appended. */
static struct wkv *slot(struct tk_gguf_writer *w, const char *key)
{
	if (!key || !*key) {
		tk_errf(TK_EINVAL, "gguf writer: empty key");
		return NULL;
	}
	for (size_t i = 0; i < w->n_kv; i++) {
		if (!strcmp(w->kv[i].key, key)) {
			wkv_clear(&w->kv[i]);
			return &w->kv[i];
		}
	}
	if (w->n_kv == w->cap_kv) {
		size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
		struct wkv *nk = realloc(w->kv, cap * sizeof *nk);
		if (!nk) {
			tk_errf(TK_ENOMEM, "gguf writer: out of memory");
			return NULL;
		}
		w->kv = nk;
		w->cap_kv = cap;
	}
	struct wkv *kv = &w->kv[w->n_kv];
	memset(kv, 0, sizeof *kv);
	kv->key = dup_bytes(key, strlen(key));
	if (!kv->key) {
		tk_errf(TK_ENOMEM, "gguf writer: out of memory");
		return NULL;
	}
	w->n_kv++;
	return kv;
}

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int set_scalar(struct tk_gguf_writer *w, const char *key, enum tk_gguf_type t, uint64_t bits)
{
	struct wkv *kv = slot(w, key);
	if (!kv)
		return tk_err_last();
	kv->type = t;
	put_le(kv->scalar, bits, tk_gguf_type_size(t));
	return 0;
}

int tk_gguf_writer_set_u32(struct tk_gguf_writer *w, const char *key, uint32_t v)
{
	return set_scalar(w, key, TK_GGUF_UINT32, v);
}

int tk_gguf_writer_set_i32(struct tk_gguf_writer *w, const char *key, int32_t v)
{
	return set_scalar(w, key, TK_GGUF_INT32, (uint32_t)v);
}

int tk_gguf_writer_set_u64(struct tk_gguf_writer *w, const char *key, uint64_t v)
{
	return set_scalar(w, key, TK_GGUF_UINT64, v);
}

int tk_gguf_writer_set_f32(struct tk_gguf_writer *w, const char *key, float v)
{
	uint32_t u;
	memcpy(&u, &v, 4);
	return set_scalar(w, key, TK_GGUF_FLOAT32, u);
}

int tk_gguf_writer_set_bool(struct tk_gguf_writer *w, const char *key, bool v)
{
	return set_scalar(w, key, TK_GGUF_BOOL, v ? 1 : 0);
}

static int set_str_len(struct tk_gguf_writer *w, const char *key, const char *v, size_t len)
{
	struct wkv *kv = slot(w, key);
	if (!kv)
		return tk_err_last();
	kv->type = TK_GGUF_STRING;
	kv->str.s = dup_bytes(v, len);
	if (!kv->str.s)
		return tk_errf(TK_ENOMEM, "gguf writer: out of memory");
	kv->str.len = len;
	return 0;
}

int tk_gguf_writer_set_str(struct tk_gguf_writer *w, const char *key, const char *v)
{
	if (!v)
		return tk_errf(TK_EINVAL, "gguf writer: key '%s': NULL string", key ? key : "");
	return set_str_len(w, key, v, strlen(v));
}

/* Stores n elements of scalar type t; src_le: data is already little-endian
 * GGUF bytes (copy), else host-order values (encode). */
static int set_arr_raw(struct tk_gguf_writer *w, const char *key, enum tk_gguf_type t,
		       const void *data, size_t n, bool src_le)
{
	size_t esz = tk_gguf_type_size(t);
	if (!esz)
		return tk_errf(TK_EINVAL, "gguf writer: key '%s': %s is not a numeric element type",
			       key ? key : "", tk_gguf_type_name(t));
	size_t bytes;
	if (__builtin_mul_overflow(n, esz, &bytes))
		return tk_errf(TK_EINVAL, "gguf writer: key '%s': array too large", key);
	struct wkv *kv = slot(w, key);
	if (!kv)
		return tk_err_last();
	kv->type = TK_GGUF_ARRAY;
	kv->arr_type = t;
	kv->n = n;
	kv->arr = malloc(bytes ? bytes : 1);
	if (!kv->arr)
		return tk_errf(TK_ENOMEM, "gguf writer: out of memory");
	const uint8_t *src = data;
	for (size_t i = 0; i < n; i++) {
		uint64_t v = 0;
		if (src_le) {
			for (size_t b = 0; b < esz; b++)
				v |= (uint64_t)src[i * esz + b] << (8 * b);
		} else {
			switch (esz) {
			case 1: v = src[i]; break;
			case 2: { uint16_t x; memcpy(&x, src + 2 * i, 2); v = x; break; }
			case 4: { uint32_t x; memcpy(&x, src + 4 * i, 4); v = x; break; }
			default: memcpy(&v, src + 8 * i, 8); break;
			}
		}
		put_le(kv->arr + i * esz, v, esz);
	}
	return 0;
}

int tk_gguf_writer_set_arr(struct tk_gguf_writer *w, const char *key, enum tk_gguf_type type,
			   const void *data, size_t n)
{
	return set_arr_raw(w, key, type, data, n, false);
}

static int set_arr_strs(struct tk_gguf_writer *w, const char *key, size_t n,
			const char *(*get)(const void *src, size_t i, size_t *len), const void *src)
{
	struct wkv *kv = slot(w, key);
	if (!kv)
		return tk_err_last();
	kv->type = TK_GGUF_ARRAY;
	kv->arr_type = TK_GGUF_STRING;
	kv->strs = calloc(n ? n : 1, sizeof *kv->strs);
	if (!kv->strs)
		return tk_errf(TK_ENOMEM, "gguf writer: out of memory");
	kv->n = n;
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *s = get(src, i, &len);
		kv->strs[i].s = dup_bytes(s, len);
		if (!kv->strs[i].s)
			return tk_errf(TK_ENOMEM, "gguf writer: out of memory");
		kv->strs[i].len = len;
	}
	return 0;
}

static const char *get_cstr(const void *src, size_t i, size_t *len)
{
	const char *const *strs = src;
	*len = strlen(strs[i]);
	return strs[i];
}

static const char *get_gstr(const void *src, size_t i, size_t *len)
{
	const struct tk_gguf_str *strs = src;
	*len = strs[i].len;
	return strs[i].s;
}

int tk_gguf_writer_set_arr_str(struct tk_gguf_writer *w, const char *key,
			       const char *const *strs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strs[i])
			return tk_errf(TK_EINVAL, "gguf writer: key '%s': NULL string %zu", key, i);
	return set_arr_strs(w, key, n, get_cstr, strs);
}

int tk_gguf_writer_copy_kv(struct tk_gguf_writer *w, const struct tk_gguf_kv *kv)
{
	switch (kv->type) {
	case TK_GGUF_STRING:
		return set_str_len(w, kv->key, kv->str.s, kv->str.len);
	case TK_GGUF_ARRAY:
		if (kv->arr.type == TK_GGUF_STRING)
			return set_arr_strs(w, kv->key, kv->arr.n, get_gstr, kv->arr.strs);
		return set_arr_raw(w, kv->key, kv->arr.type, kv->arr.data, kv->arr.n, true);
	case TK_GGUF_FLOAT32:
		return tk_gguf_writer_set_f32(w, kv->key, (float)kv->v.f);
	case TK_GGUF_FLOAT64: {
		uint64_t u;
		memcpy(&u, &kv->v.f, 8);
		return set_scalar(w, kv->key, TK_GGUF_FLOAT64, u);
	}
	case TK_GGUF_BOOL:
		return set_scalar(w, kv->key, TK_GGUF_BOOL, kv->v.b);
	case TK_GGUF_INT8: case TK_GGUF_INT16: case TK_GGUF_INT32: case TK_GGUF_INT64:
		return set_scalar(w, kv->key, kv->type, (uint64_t)kv->v.i);
	case TK_GGUF_UINT8: case TK_GGUF_UINT16: case TK_GGUF_UINT32: case TK_GGUF_UINT64:
		return set_scalar(w, kv->key, kv->type, kv->v.u);
	default:
		return tk_errf(TK_EINVAL, "gguf writer: key '%s': bad type %d", kv->key, kv->type);
	}
}

int tk_gguf_writer_add_tensor(struct tk_gguf_writer *w, const char *name, int type,
			      uint32_t n_dims, const int64_t *ne)
{
	if (!name || !*name)
		return tk_errf(TK_EINVAL, "gguf writer: empty tensor name");
	if (n_dims < 1 || n_dims > TK_GGUF_MAX_DIMS)
		return tk_errf(TK_EINVAL, "gguf writer: tensor '%s': n_dims %u not in 1..4", name, n_dims);
	for (size_t i = 0; i < w->n_t; i++)
		if (!strcmp(w->t[i].name, name))
			return tk_errf(TK_EINVAL, "gguf writer: duplicate tensor '%s'", name);
	struct wtensor t = { .type = type, .n_dims = n_dims, .ne = { 1, 1, 1, 1 } };
	uint64_t rows = 1;
	for (uint32_t d = 0; d < n_dims; d++) {
		if (ne[d] <= 0)
			return tk_errf(TK_EINVAL, "gguf writer: tensor '%s': ne[%u] = %lld", name, d,
				       (long long)ne[d]);
		t.ne[d] = ne[d];
		if (d > 0 && __builtin_mul_overflow(rows, (uint64_t)ne[d], &rows))
			return tk_errf(TK_EINVAL, "gguf writer: tensor '%s': too large", name);
	}
	size_t row;
	int rc = tk_type_row_size(type, t.ne[0], &row);
	if (rc)
		return tk_err_wrap(rc, "gguf writer: tensor '%s'", name);
	if (__builtin_mul_overflow(row, rows, &t.nbytes))
		return tk_errf(TK_EINVAL, "gguf writer: tensor '%s': too large", name);
	if (w->n_t == w->cap_t) {
		size_t cap = w->cap_t ? w->cap_t * 2 : 64;
		struct wtensor *nt = realloc(w->t, cap * sizeof *nt);
		if (!nt)
			return tk_errf(TK_ENOMEM, "gguf writer: out of memory");
		w->t = nt;
		w->cap_t = cap;
	}
	t.name = dup_bytes(name, strlen(name));
	if (!t.name)
		return tk_errf(TK_ENOMEM, "gguf writer: out of memory");
	w->t[w->n_t++] = t;
	return 0;
}

/* ---- output ---- */

struct out {
	FILE *f;
	uint64_t pos;
	int err; /* first errno */
};

static void out_bytes(struct out *o, const void *p, size_t n)
{
	if (o->err || !n)
		return;
	if (fwrite(p, 1, n, o->f) != n)
		o->err = errno ? errno : EIO;
	o->pos += n;
}

static void out_u32(struct out *o, uint32_t v)
{
	uint8_t b[4];
	put_le(b, v, 4);
	out_bytes(o, b, 4);
}

static void out_u64(struct out *o, uint64_t v)
{
	uint8_t b[8];
	put_le(b, v, 8);
	out_bytes(o, b, 8);
}

static void out_str(struct out *o, const char *s, size_t len)
{
	out_u64(o, len);
	out_bytes(o, s, len);
}

static void out_pad(struct out *o, size_t align)
{
	static const uint8_t zeros[256];
	while (o->pos % align) {
		size_t n = align - (size_t)(o->pos % align);
		out_bytes(o, zeros, n > sizeof zeros ? sizeof zeros : n);
	}
}

static size_t writer_alignment(const struct tk_gguf_writer *w)
{
	for (size_t i = 0; i < w->n_kv; i++) {
		const struct wkv *kv = &w->kv[i];
		if (!strcmp(kv->key, "general.alignment") && kv->type == TK_GGUF_UINT32) {
			uint32_t a = (uint32_t)kv->scalar[0] | (uint32_t)kv->scalar[1] << 8 |
				     (uint32_t)kv->scalar[2] << 16 | (uint32_t)kv->scalar[3] << 24;
			if (a && !(a & (a - 1)))
				return a;
		}
	}
	return TK_GGUF_DEFAULT_ALIGNMENT;
}

int tk_gguf_writer_write(struct tk_gguf_writer *w, const char *path, tk_gguf_fill_fn fill, void *ctx)
{
	int rc = 0;
	size_t align = writer_alignment(w);
	char *tmp = NULL;
	void *buf = NULL;
	size_t buf_cap = 0;
	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return tk_errf(TK_ENOMEM, "gguf writer: out of memory");
	struct out o = { .f = fopen(tmp, "wbx") };
	if (!o.f && errno == EEXIST) {
		unlink(tmp); /* a leftover from a crashed run */
		o.f = fopen(tmp, "wbx");
	}
	if (!o.f) {
		rc = tk_errf_sys(TK_EIO, errno, "gguf writer: create %s", tmp);
		goto out_tmp;
	}
	/* tensor offsets: each aligned, in declaration order */
	uint64_t off = 0;
	for (size_t i = 0; i < w->n_t; i++) {
		off = (off + align - 1) / align * align;
		w->t[i].offset = off;
		off += w->t[i].nbytes;
	}
	out_u32(&o, 0x46554747u); /* "GGUF" */
	out_u32(&o, 3);
	out_u64(&o, w->n_t);
	out_u64(&o, w->n_kv);
	for (size_t i = 0; i < w->n_kv; i++) {
		const struct wkv *kv = &w->kv[i];
		out_str(&o, kv->key, strlen(kv->key));
		out_u32(&o, kv->type);
		if (kv->type == TK_GGUF_STRING) {
			out_str(&o, kv->str.s, kv->str.len);
		} else if (kv->type == TK_GGUF_ARRAY) {
			out_u32(&o, kv->arr_type);
			out_u64(&o, kv->n);
			if (kv->arr_type == TK_GGUF_STRING)
				for (size_t j = 0; j < kv->n; j++)
					out_str(&o, kv->strs[j].s, kv->strs[j].len);
			else
				out_bytes(&o, kv->arr, kv->n * tk_gguf_type_size(kv->arr_type));
		} else {
			out_bytes(&o, kv->scalar, tk_gguf_type_size(kv->type));
		}
	}
	for (size_t i = 0; i < w->n_t; i++) {
		const struct wtensor *t = &w->t[i];
		out_str(&o, t->name, strlen(t->name));
		out_u32(&o, t->n_dims);
		for (uint32_t d = 0; d < t->n_dims; d++)
			out_u64(&o, (uint64_t)t->ne[d]);
		out_u32(&o, (uint32_t)t->type);
		out_u64(&o, t->offset);
	}
	if (w->n_t) /* like llama.cpp: a file without tensors has no data section */
		out_pad(&o, align);
	uint64_t data_start = o.pos;
	for (size_t i = 0; i < w->n_t && !o.err; i++) {
		const struct wtensor *t = &w->t[i];
		if (t->nbytes > buf_cap) {
			free(buf);
			buf = malloc(t->nbytes);
			if (!buf) {
				buf_cap = 0;
				rc = tk_errf(TK_ENOMEM, "gguf writer: tensor '%s': out of memory for %zu bytes",
					     t->name, t->nbytes);
				goto out_file;
			}
			buf_cap = t->nbytes;
		}
		out_pad(&o, align);
		if (o.pos - data_start != t->offset) {
			rc = tk_errf(TK_EINTERNAL, "gguf writer: tensor '%s': offset mismatch", t->name);
			goto out_file;
		}
		struct tk_gguf_tensor info = {
			.name = t->name, .name_len = strlen(t->name), .type = t->type,
			.n_dims = t->n_dims, .offset = t->offset, .nbytes = t->nbytes, .data = NULL,
		};
		memcpy(info.ne, t->ne, sizeof info.ne);
		info.n_elements = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
		if ((rc = fill(ctx, i, &info, buf, t->nbytes)))
			goto out_file;
		out_bytes(&o, buf, t->nbytes);
	}
	if (!o.err && fflush(o.f))
		o.err = errno ? errno : EIO;
	if (!o.err && fsync(fileno(o.f)))
		o.err = errno;
out_file:
	if (fclose(o.f) && !o.err)
		o.err = errno ? errno : EIO;
	if (!rc && o.err)
		rc = tk_errf_sys(TK_EIO, o.err, "gguf writer: write %s", tmp);
	if (!rc && rename(tmp, path))
		rc = tk_errf_sys(TK_EIO, errno, "gguf writer: rename %s to %s", tmp, path);
	if (rc)
		unlink(tmp);
out_tmp:
	free(buf);
	free(tmp);
	return rc;
}
