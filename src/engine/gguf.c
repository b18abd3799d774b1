/*
 * gguf.c — the GGUF reader: maps a file read-only, validates every field and
 * builds the key/value and tensor tables that gguf.h hands out.
 *
 * Owns: the mapping (or borrows the caller's buffer), the kv and tensor
 * arrays, a string arena with NUL-terminated copies of every string, and two
 * open-addressing hash tables (key -> kv, name -> tensor) used both for
 * lookups and to refuse duplicates while parsing.
 *
 * File layout (all little-endian):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x { str key | u32 type | value }
 *   n_tensors x { str name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   padding to `alignment` | tensor data (each tensor at data_start + offset)
 * where str = u64 len | len bytes, and an array value = u32 elem_type |
 * u64 n | n values.
 *
 * Every read goes through struct cursor, which checks the bytes left before
 * touching memory; every size computation uses the overflow builtins.
 */
#include "engine/gguf.h"

#include "core/err.h"
#include "engine/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <float.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as little-endian u32 */

/* Absolute caps on top of the "fits in the bytes left" checks: they bound the
 * memory a hostile header can make us allocate. Real models have < 100 keys
 * and a few thousand tensors. */
#define GGUF_MAX_KV (1u << 16)
#define GGUF_MAX_TENSORS (1u << 20)
#define GGUF_MAX_KEY_LEN 65535u  /* the GGUF spec's limit for keys */
#define GGUF_MAX_NAME_LEN 4096u  /* tensor names (ggml itself uses 64) */
#define GGUF_MIN_KV_BYTES 13u    /* u64 len + >=1 byte key + u32 type */
#define GGUF_MIN_TENSOR_BYTES 32u /* u64 len + 1 + u32 + u64 + u32 + u64 - 1 */

/* ---- string arena ---- */

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	char mem[];
};

struct arena {
	struct arena_chunk *head;
};

static char *arena_strdup(struct arena *a, const uint8_t *src, size_t len)
{
	size_t need;
	if (__builtin_add_overflow(len, (size_t)1, &need))
		return NULL;
	struct arena_chunk *c = a->head;
	if (!c || c->cap - c->used < need) {
		size_t cap = need > 65536 ? need : 65536;
		size_t total;
		if (__builtin_add_overflow(cap, sizeof *c, &total))
			return NULL;
		c = malloc(total);
		if (!c)
			return NULL;
		c->next = a->head;
		c->used = 0;
		c->cap = cap;
		a->head = c;
	}
	char *p = c->mem + c->used;
	if (len)
		memcpy(p, src, len);
	p[len] = '\0';
	c->used += need;
	return p;
}

static void arena_free(struct arena *a)
{
	struct arena_chunk *c = a->head;
	while (c) {
		struct arena_chunk *n = c->next;
		free(c);
		c = n;
	}
	a->head = NULL;
}

/* ---- hash index: name -> position, open addressing, power-of-two size ---- */

struct index {
	uint32_t *slots; /* position + 1; 0 = empty */
	size_t mask;
};

static uint64_t hash_str(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static int index_init(struct index *ix, size_t n)
{
	size_t cap = 16;
	while (cap < n * 2)
		cap <<= 1;
	ix->slots = calloc(cap, sizeof *ix->slots);
	if (!ix->slots)
		return TK_ENOMEM;
	ix->mask = cap - 1;
	return 0;
}

/* ---- the handle ---- */

struct tk_gguf {
	const uint8_t *base;
	size_t size;
	bool mapped; /* base is our mmap (unmap on close) */
	uint32_t version;
	size_t alignment;
	uint64_t data_offset;
	size_t n_kv;
	struct tk_gguf_kv *kv;
	size_t n_tensors;
	struct tk_gguf_tensor *tensors;
	struct arena strings;
	struct index kv_ix, tensor_ix;
};

typedef const char *(*name_of_fn)(const struct tk_gguf *g, size_t i, size_t *len);

static const char *kv_name(const struct tk_gguf *g, size_t i, size_t *len)
{
	*len = g->kv[i].key_len;
	return g->kv[i].key;
}

static const char *tensor_name(const struct tk_gguf *g, size_t i, size_t *len)
{
	*len = g->tensors[i].name_len;
	return g->tensors[i].name;
}

/* Finds name; returns its position or SIZE_MAX. */
static size_t index_find(const struct tk_gguf *g, const struct index *ix, name_of_fn name_of,
			 const char *name, size_t len)
{
	if (!ix->slots)
		return SIZE_MAX;
	for (size_t h = (size_t)hash_str(name, len) & ix->mask;; h = (h + 1) & ix->mask) {
		uint32_t s = ix->slots[h];
		if (!s)
			return SIZE_MAX;
		size_t l;
		const char *n = name_of(g, s - 1, &l);
		if (l == len && !memcmp(n, name, len))
			return s - 1;
	}
}

/* Inserts position pos (whose name is already stored); false if the name is
 * already present. */
static bool index_insert(const struct tk_gguf *g, struct index *ix, name_of_fn name_of, size_t pos)
{
	size_t len;
	const char *name = name_of(g, pos, &len);
	for (size_t h = (size_t)hash_str(name, len) & ix->mask;; h = (h + 1) & ix->mask) {
		uint32_t s = ix->slots[h];
		if (!s) {
			ix->slots[h] = (uint32_t)pos + 1;
			return true;
		}
		size_t l;
		const char *n = name_of(g, s - 1, &l);
		if (l == len && !memcmp(n, name, len))
			return false;
	}
}

/* ---- bounded reading ---- */

struct cursor {
	const uint8_t *p;
	size_t size;
	size_t pos;
};

static size_t cur_left(const struct cursor *c)
{
	return c->size - c->pos;
}

static int cur_need(const struct cursor *c, size_t n, const char *what)
{
	if (cur_left(c) < n)
		return tk_errf(TK_EFORMAT, "gguf: %s at offset %zu: needs %zu bytes, file ends at %zu",
			       what, c->pos, n, c->size);
	return 0;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static int rd_u32(struct cursor *c, uint32_t *out, const char *what)
{
	int rc = cur_need(c, 4, what);
	if (rc)
		return rc;
	*out = le32(c->p + c->pos);
	c->pos += 4;
	return 0;
}

static int rd_u64(struct cursor *c, uint64_t *out, const char *what)
{
	int rc = cur_need(c, 8, what);
	if (rc)
		return rc;
	*out = le64(c->p + c->pos);
	c->pos += 8;
	return 0;
}

/* Reads a GGUF string of at most max_len bytes into the arena. */
static int rd_str(struct tk_gguf *g, struct cursor *c, struct tk_gguf_str *out, uint64_t max_len,
		  const char *what)
{
	size_t at = c->pos;
	uint64_t len;
	int rc = rd_u64(c, &len, what);
	if (rc)
		return rc;
	if (len > cur_left(c))
		return tk_errf(TK_EFORMAT,
			       "gguf: %s at offset %zu: string length %llu runs past end of file (size %zu)",
			       what, at, (unsigned long long)len, c->size);
	if (len > max_len)
		return tk_errf(TK_EFORMAT, "gguf: %s at offset %zu: string length %llu exceeds limit %llu",
			       what, at, (unsigned long long)len, (unsigned long long)max_len);
	char *s = arena_strdup(&g->strings, c->p + c->pos, (size_t)len);
	if (!s)
		return tk_errf(TK_ENOMEM, "gguf: %s: out of memory copying %llu bytes", what,
			       (unsigned long long)len);
	out->s = s;
	out->len = (size_t)len;
	c->pos += (size_t)len;
	return 0;
}

/* ---- type helpers ---- */

size_t tk_gguf_type_size(int type)
{
	switch (type) {
	case TK_GGUF_UINT8: case TK_GGUF_INT8: case TK_GGUF_BOOL: return 1;
	case TK_GGUF_UINT16: case TK_GGUF_INT16: return 2;
	case TK_GGUF_UINT32: case TK_GGUF_INT32: case TK_GGUF_FLOAT32: return 4;
	case TK_GGUF_UINT64: case TK_GGUF_INT64: case TK_GGUF_FLOAT64: return 8;
	default: return 0;
	}
}

const char *tk_gguf_type_name(int type)
{
	static const char *const names[TK_GGUF_TYPE_COUNT] = {
		"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
		"bool", "string", "array", "uint64", "int64", "float64",
	};
	if (type < 0 || type >= TK_GGUF_TYPE_COUNT)
		return "unknown";
	return names[type];
}

static bool type_is_signed_int(int t)
{
	return t == TK_GGUF_INT8 || t == TK_GGUF_INT16 || t == TK_GGUF_INT32 || t == TK_GGUF_INT64;
}

static bool type_is_unsigned_int(int t)
{
	return t == TK_GGUF_UINT8 || t == TK_GGUF_UINT16 || t == TK_GGUF_UINT32 || t == TK_GGUF_UINT64;
}

/* Decodes one little-endian scalar element at p into the kv value union. */
static void decode_scalar(int type, const uint8_t *p, struct tk_gguf_kv *kv)
{
	switch (type) {
	case TK_GGUF_UINT8: kv->v.u = p[0]; break;
	case TK_GGUF_INT8: kv->v.i = (int8_t)p[0]; break;
	case TK_GGUF_UINT16: kv->v.u = le16(p); break;
	case TK_GGUF_INT16: kv->v.i = (int16_t)le16(p); break;
	case TK_GGUF_UINT32: kv->v.u = le32(p); break;
	case TK_GGUF_INT32: kv->v.i = (int32_t)le32(p); break;
	case TK_GGUF_UINT64: kv->v.u = le64(p); break;
	case TK_GGUF_INT64: kv->v.i = (int64_t)le64(p); break;
	case TK_GGUF_BOOL: kv->v.b = p[0] != 0; break;
	case TK_GGUF_FLOAT32: {
		float f;
		uint32_t u = le32(p);
		memcpy(&f, &u, 4);
		kv->v.f = f;
		break;
	}
	case TK_GGUF_FLOAT64: {
		double d;
		uint64_t u = le64(p);
		memcpy(&d, &u, 8);
		kv->v.f = d;
		break;
	}
	default: break;
	}
}

/* ---- parsing ---- */

static int parse_value(struct tk_gguf *g, struct cursor *c, struct tk_gguf_kv *kv)
{
	int rc;
	if (kv->type == TK_GGUF_STRING)
		return rd_str(g, c, &kv->str, SIZE_MAX, kv->key);
	if (kv->type != TK_GGUF_ARRAY) {
		size_t sz = tk_gguf_type_size(kv->type);
		if ((rc = cur_need(c, sz, kv->key)))
			return tk_err_wrap(rc, "gguf: key '%s'", kv->key);
		decode_scalar(kv->type, c->p + c->pos, kv);
		if (kv->type == TK_GGUF_BOOL && c->p[c->pos] > 1)
			return tk_errf(TK_EFORMAT, "gguf: key '%s': bool value %u is not 0 or 1",
				       kv->key, c->p[c->pos]);
		c->pos += sz;
		return 0;
	}
	uint32_t et;
	uint64_t n;
	if ((rc = rd_u32(c, &et, "array type")) || (rc = rd_u64(c, &n, "array length")))
		return tk_err_wrap(rc, "gguf: key '%s'", kv->key);
	if (et == TK_GGUF_ARRAY)
		return tk_errf(TK_EUNSUPPORTED, "gguf: key '%s': nested arrays are not supported",
			       kv->key);
	if (et >= TK_GGUF_TYPE_COUNT)
		return tk_errf(TK_EFORMAT, "gguf: key '%s': unknown array element type %u", kv->key,
			       et);
	kv->arr.type = (enum tk_gguf_type)et;
	if (et == TK_GGUF_STRING) {
		/* each element needs at least its 8-byte length */
		if (n > cur_left(c) / 8)
			return tk_errf(TK_EFORMAT,
				       "gguf: key '%s': array of %llu strings cannot fit in the %zu bytes left",
				       kv->key, (unsigned long long)n, cur_left(c));
		kv->arr.n = (size_t)n;
		return 0; /* elements parsed by parse_string_array once tables exist */
	}
	size_t esz = tk_gguf_type_size((int)et);
	if (n > cur_left(c) / esz)
		return tk_errf(TK_EFORMAT,
			       "gguf: key '%s': array of %llu %s runs past end of file (%zu bytes left)",
			       kv->key, (unsigned long long)n, tk_gguf_type_name((int)et),
			       cur_left(c));
	kv->arr.n = (size_t)n;
	kv->arr.data = c->p + c->pos;
	if (et == TK_GGUF_BOOL) {
		for (size_t i = 0; i < kv->arr.n; i++)
			if (c->p[c->pos + i] > 1)
				return tk_errf(TK_EFORMAT, "gguf: key '%s': element %zu: bool value %u is not 0 or 1",
					       kv->key, i, c->p[c->pos + i]);
	}
	c->pos += (size_t)n * esz;
	return 0;
}

static int parse_string_array(struct tk_gguf *g, struct cursor *c, struct tk_gguf_kv *kv,
			      struct tk_gguf_str *table)
{
	kv->arr.strs = table;
	for (size_t i = 0; i < kv->arr.n; i++) {
		int rc = rd_str(g, c, &table[i], SIZE_MAX, "array string");
		if (rc)
			return tk_err_wrap(rc, "gguf: key '%s': element %zu", kv->key, i);
	}
	return 0;
}

static bool has_nul(const struct tk_gguf_str *s)
{
	return memchr(s->s, '\0', s->len) != NULL;
}

static int parse_kvs(struct tk_gguf *g, struct cursor *c)
{
	int rc;
	for (size_t i = 0; i < g->n_kv; i++) {
		struct tk_gguf_kv *kv = &g->kv[i];
		size_t at = c->pos;
		struct tk_gguf_str key;
		if ((rc = rd_str(g, c, &key, GGUF_MAX_KEY_LEN, "metadata key")))
			return tk_err_wrap(rc, "gguf: metadata entry %zu", i);
		if (key.len == 0 || has_nul(&key))
			return tk_errf(TK_EFORMAT, "gguf: metadata entry %zu at offset %zu: key is empty or contains NUL",
				       i, at);
		kv->key = key.s;
		kv->key_len = key.len;
		if (!index_insert(g, &g->kv_ix, kv_name, i))
			return tk_errf(TK_EFORMAT, "gguf: duplicate metadata key '%s'", kv->key);
		uint32_t t;
		if ((rc = rd_u32(c, &t, "value type")))
			return tk_err_wrap(rc, "gguf: key '%s'", kv->key);
		if (t >= TK_GGUF_TYPE_COUNT)
			return tk_errf(TK_EFORMAT, "gguf: key '%s': unknown value type %u", kv->key, t);
		kv->type = (enum tk_gguf_type)t;
		if ((rc = parse_value(g, c, kv)))
			return rc;
		if (kv->type == TK_GGUF_ARRAY && kv->arr.type == TK_GGUF_STRING && kv->arr.n) {
			/* owned by kv (freed in tk_gguf_close through arr.strs) */
			struct tk_gguf_str *table = calloc(kv->arr.n, sizeof *table);
			if (!table)
				return tk_errf(TK_ENOMEM, "gguf: key '%s': out of memory for %zu strings",
					       kv->key, kv->arr.n);
			if ((rc = parse_string_array(g, c, kv, table)))
				return rc;
		}
	}
	return 0;
}

static int parse_tensor_info(struct tk_gguf *g, struct cursor *c, size_t i)
{
	struct tk_gguf_tensor *t = &g->tensors[i];
	struct tk_gguf_str name;
	size_t at = c->pos;
	int rc;
	if ((rc = rd_str(g, c, &name, GGUF_MAX_NAME_LEN, "tensor name")))
		return tk_err_wrap(rc, "gguf: tensor info %zu", i);
	if (name.len == 0 || has_nul(&name))
		return tk_errf(TK_EFORMAT, "gguf: tensor info %zu at offset %zu: name is empty or contains NUL",
			       i, at);
	t->name = name.s;
	t->name_len = name.len;
	if (!index_insert(g, &g->tensor_ix, tensor_name, i))
		return tk_errf(TK_EFORMAT, "gguf: duplicate tensor name '%s'", t->name);
	uint32_t n_dims;
	if ((rc = rd_u32(c, &n_dims, "n_dims")))
		return tk_err_wrap(rc, "gguf: tensor '%s'", t->name);
	if (n_dims < 1 || n_dims > TK_GGUF_MAX_DIMS)
		return tk_errf(TK_EFORMAT, "gguf: tensor '%s': n_dims %u not in 1..%d", t->name, n_dims,
			       TK_GGUF_MAX_DIMS);
	t->n_dims = n_dims;
	int64_t n_el = 1;
	for (int d = 0; d < TK_GGUF_MAX_DIMS; d++) {
		t->ne[d] = 1;
		if ((uint32_t)d >= n_dims)
			continue;
		uint64_t ne;
		if ((rc = rd_u64(c, &ne, "dimension")))
			return tk_err_wrap(rc, "gguf: tensor '%s'", t->name);
		if (ne == 0 || ne > INT64_MAX)
			return tk_errf(TK_EFORMAT, "gguf: tensor '%s': ne[%d] = %llu is not a positive int64",
				       t->name, d, (unsigned long long)ne);
		t->ne[d] = (int64_t)ne;
		if (__builtin_mul_overflow(n_el, t->ne[d], &n_el))
			return tk_errf(TK_EFORMAT, "gguf: tensor '%s': element count overflows", t->name);
	}
	t->n_elements = n_el;
	uint32_t type;
	if ((rc = rd_u32(c, &type, "tensor type")))
		return tk_err_wrap(rc, "gguf: tensor '%s'", t->name);
	const struct tk_type_traits *tr = tk_type_traits((int)type);
	if (!tr)
		return tk_errf(TK_EFORMAT, "gguf: tensor '%s': unknown tensor type id %u", t->name, type);
	t->type = (int)type;
	size_t row;
	if (tk_type_row_size(t->type, t->ne[0], &row))
		return tk_errf(TK_EFORMAT, "gguf: tensor '%s': row length ne[0] = %lld is not a multiple of %s's block size %lld",
			       t->name, (long long)t->ne[0], tr->name, (long long)tr->blck_size);
	int64_t rows = t->ne[1] * t->ne[2] * t->ne[3]; /* <= n_el, no overflow */
	size_t nbytes;
	if (__builtin_mul_overflow(row, (uint64_t)rows, &nbytes))
		return tk_errf(TK_EFORMAT, "gguf: tensor '%s': byte size overflows", t->name);
	t->nbytes = nbytes;
	if ((rc = rd_u64(c, &t->offset, "tensor offset")))
		return tk_err_wrap(rc, "gguf: tensor '%s'", t->name);
	if (t->offset % g->alignment)
		return tk_errf(TK_EFORMAT, "gguf: tensor '%s': offset %llu is not a multiple of the alignment %zu",
			       t->name, (unsigned long long)t->offset, g->alignment);
	return 0;
}

/* Alignment from general.alignment, if present. */
static int read_alignment(struct tk_gguf *g)
{
	g->alignment = TK_GGUF_DEFAULT_ALIGNMENT;
	const struct tk_gguf_kv *kv = tk_gguf_find_kv(g, "general.alignment");
	if (!kv)
		return 0;
	uint32_t a;
	int rc = tk_gguf_get_u32(g, "general.alignment", &a);
	if (rc)
		return rc;
	if (a == 0 || (a & (a - 1)))
		return tk_errf(TK_EFORMAT, "gguf: general.alignment %u is not a power of two", a);
	g->alignment = a;
	return 0;
}

static int parse(struct tk_gguf *g)
{
	struct cursor c = { g->base, g->size, 0 };
	uint32_t magic, version;
	uint64_t n_tensors, n_kv;
	int rc;
	if ((rc = rd_u32(&c, &magic, "magic")))
		return rc;
	if (magic != GGUF_MAGIC)
		return tk_errf(TK_EFORMAT, "gguf: bad magic 0x%08x (not a GGUF file)", magic);
	if ((rc = rd_u32(&c, &version, "version")))
		return rc;
	if (version == 1)
		return tk_errf(TK_EUNSUPPORTED, "gguf: version 1 files are not supported (re-convert with a current llama.cpp)");
	if (version != 2 && version != 3)
		return tk_errf(TK_EUNSUPPORTED, "gguf: unsupported version %u%s", version,
			       (version & 0xffff) == 0 ? " (big-endian file?)" : "");
	g->version = version;
	if ((rc = rd_u64(&c, &n_tensors, "tensor count")) || (rc = rd_u64(&c, &n_kv, "metadata count")))
		return rc;
	if (n_kv > GGUF_MAX_KV || n_kv > cur_left(&c) / GGUF_MIN_KV_BYTES)
		return tk_errf(TK_EFORMAT, "gguf: metadata count %llu is impossible for a file of %zu bytes (limit %u)",
			       (unsigned long long)n_kv, g->size, GGUF_MAX_KV);
	if (n_tensors > GGUF_MAX_TENSORS || n_tensors > cur_left(&c) / GGUF_MIN_TENSOR_BYTES)
		return tk_errf(TK_EFORMAT, "gguf: tensor count %llu is impossible for a file of %zu bytes (limit %u)",
			       (unsigned long long)n_tensors, g->size, GGUF_MAX_TENSORS);
	g->n_kv = (size_t)n_kv;
	g->n_tensors = (size_t)n_tensors;
	if ((g->n_kv && !(g->kv = calloc(g->n_kv, sizeof *g->kv))) ||
	    (g->n_tensors && !(g->tensors = calloc(g->n_tensors, sizeof *g->tensors))) ||
	    index_init(&g->kv_ix, g->n_kv) || index_init(&g->tensor_ix, g->n_tensors))
		return tk_errf(TK_ENOMEM, "gguf: out of memory for %zu keys and %zu tensors", g->n_kv,
			       g->n_tensors);
	if ((rc = parse_kvs(g, &c)))
		return rc;
	if ((rc = read_alignment(g)))
		return rc;
	for (size_t i = 0; i < g->n_tensors; i++)
		if ((rc = parse_tensor_info(g, &c, i)))
			return rc;
	/* data section: header end rounded up to the alignment */
	uint64_t start;
	if (__builtin_add_overflow((uint64_t)c.pos, (uint64_t)g->alignment - 1, &start))
		return tk_errf(TK_EFORMAT, "gguf: data offset overflows");
	start -= start % g->alignment;
	g->data_offset = start;
	if (g->n_tensors && start > g->size)
		return tk_errf(TK_EFORMAT, "gguf: data section starts at %llu, past end of file (size %zu)",
			       (unsigned long long)start, g->size);
	for (size_t i = 0; i < g->n_tensors; i++) {
		struct tk_gguf_tensor *t = &g->tensors[i];
		uint64_t off, end;
		if (__builtin_add_overflow(start, t->offset, &off) ||
		    __builtin_add_overflow(off, (uint64_t)t->nbytes, &end) || end > g->size)
			return tk_errf(TK_EFORMAT,
				       "gguf: tensor '%s': data [%llu, %llu+%zu) past end of file (size %zu)",
				       t->name, (unsigned long long)off, (unsigned long long)off,
				       t->nbytes, g->size);
		t->data = g->base + off;
	}
	return 0;
}

static struct tk_gguf *open_common(struct tk_gguf *g, const char *label)
{
	int rc = parse(g);
	if (rc) {
		if (label)
			tk_err_wrap(rc, "%s", label);
		tk_gguf_close(g);
		return NULL;
	}
	return g;
}

struct tk_gguf *tk_gguf_open_buffer(const void *data, size_t size)
{
	if (!data && size) {
		tk_errf(TK_EINVAL, "gguf: NULL buffer");
		return NULL;
	}
	struct tk_gguf *g = calloc(1, sizeof *g);
	if (!g) {
		tk_errf(TK_ENOMEM, "gguf: out of memory");
		return NULL;
	}
	g->base = data;
	g->size = size;
	return open_common(g, NULL);
}

struct tk_gguf *tk_gguf_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		tk_errf_sys(errno == ENOENT ? TK_ENOENT : TK_EIO, errno, "gguf: open %s", path);
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		tk_errf_sys(TK_EIO, errno, "gguf: stat %s", path);
		goto out_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		tk_errf(TK_EINVAL, "gguf: %s: not a regular file", path);
		goto out_fd;
	}
	if (st.st_size < 24) {
		tk_errf(TK_EFORMAT, "gguf: %s: file too small (%lld bytes) for a GGUF header", path,
			(long long)st.st_size);
		goto out_fd;
	}
	if ((uint64_t)st.st_size > SIZE_MAX) {
		tk_errf(TK_ELIMIT, "gguf: %s: file too large to map", path);
		goto out_fd;
	}
	size_t size = (size_t)st.st_size;
	/* read-only private mapping: weights are used in place, never copied */
	void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED) {
		tk_errf_sys(TK_EIO, errno, "gguf: mmap %s", path);
		goto out_fd;
	}
	close(fd);
	struct tk_gguf *g = calloc(1, sizeof *g);
	if (!g) {
		munmap(m, size);
		tk_errf(TK_ENOMEM, "gguf: out of memory");
		return NULL;
	}
	g->base = m;
	g->size = size;
	g->mapped = true;
	return open_common(g, path);
out_fd:
	close(fd);
	return NULL;
}

void tk_gguf_close(struct tk_gguf *g)
{
	if (!g)
		return;
	for (size_t i = 0; g->kv && i < g->n_kv; i++)
		if (g->kv[i].type == TK_GGUF_ARRAY && g->kv[i].arr.type == TK_GGUF_STRING)
			free((void *)g->kv[i].arr.strs);
	free(g->kv);
	free(g->tensors);
	free(g->kv_ix.slots);
	free(g->tensor_ix.slots);
	arena_free(&g->strings);
	if (g->mapped)
		munmap((void *)g->base, g->size);
	free(g);
}

/* ---- accessors ---- */

uint32_t tk_gguf_version(const struct tk_gguf *g) { return g->version; }
size_t tk_gguf_alignment(const struct tk_gguf *g) { return g->alignment; }
uint64_t tk_gguf_file_size(const struct tk_gguf *g) { return g->size; }
uint64_t tk_gguf_data_offset(const struct tk_gguf *g) { return g->data_offset; }
size_t tk_gguf_kv_count(const struct tk_gguf *g) { return g->n_kv; }
size_t tk_gguf_tensor_count(const struct tk_gguf *g) { return g->n_tensors; }
bool tk_gguf_is_mapped(const struct tk_gguf *g) { return g->mapped; }

const struct tk_gguf_kv *tk_gguf_kv_at(const struct tk_gguf *g, size_t i)
{
	return i < g->n_kv ? &g->kv[i] : NULL;
}

const struct tk_gguf_kv *tk_gguf_find_kv(const struct tk_gguf *g, const char *key)
{
	size_t i = index_find(g, &g->kv_ix, kv_name, key, strlen(key));
	return i == SIZE_MAX ? NULL : &g->kv[i];
}

const struct tk_gguf_tensor *tk_gguf_tensor_at(const struct tk_gguf *g, size_t i)
{
	return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct tk_gguf_tensor *tk_gguf_find_tensor(const struct tk_gguf *g, const char *name)
{
	size_t i = index_find(g, &g->tensor_ix, tensor_name, name, strlen(name));
	return i == SIZE_MAX ? NULL : &g->tensors[i];
}

/* A scalar widened for range checks. A non-negative integer of any type is
 * in mag; a negative one in sval (neg set). */
struct wide {
	bool is_int, is_float;
	bool neg;
	uint64_t mag;
	int64_t sval;
	double f;
};

static struct wide widen(int type, const struct tk_gguf_kv *kv)
{
	struct wide w = { 0 };
	if (type_is_unsigned_int(type)) {
		w.is_int = true;
		w.mag = kv->v.u;
	} else if (type_is_signed_int(type)) {
		w.is_int = true;
		w.sval = kv->v.i;
		w.neg = kv->v.i < 0;
		if (!w.neg)
			w.mag = (uint64_t)kv->v.i;
	} else if (type == TK_GGUF_FLOAT32 || type == TK_GGUF_FLOAT64) {
		w.is_float = true;
		w.f = kv->v.f;
	}
	return w;
}

static int want(const char *key, int type, const char *what)
{
	return tk_errf(TK_EFORMAT, "gguf: key '%s': has type %s, expected %s", key,
		       tk_gguf_type_name(type), what);
}

static int range(const char *key, const char *what)
{
	return tk_errf(TK_EFORMAT, "gguf: key '%s': value out of range for %s", key, what);
}

static int conv_int(const char *key, int type, struct wide w, int64_t min, uint64_t max,
		    const char *what, int64_t *s_out, uint64_t *u_out)
{
	if (!w.is_int)
		return want(key, type, what);
	if (w.neg) {
		if (w.sval < min)
			return range(key, what);
		if (s_out)
			*s_out = w.sval;
		if (u_out)
			*u_out = 0;
		return 0;
	}
	if (w.mag > max)
		return range(key, what);
	if (s_out)
		*s_out = (int64_t)w.mag;
	if (u_out)
		*u_out = w.mag;
	return 0;
}

static const struct tk_gguf_kv *lookup(const struct tk_gguf *g, const char *key, int *rc)
{
	const struct tk_gguf_kv *kv = tk_gguf_find_kv(g, key);
	*rc = kv ? 0 : tk_errf(TK_ENOENT, "gguf: key '%s' not found", key);
	return kv;
}

int tk_gguf_get_u32(const struct tk_gguf *g, const char *key, uint32_t *out)
{
	int rc;
	const struct tk_gguf_kv *kv = lookup(g, key, &rc);
	uint64_t u = 0;
	if (!kv || (rc = conv_int(key, kv->type, widen(kv->type, kv), 0, UINT32_MAX, "uint32", NULL, &u)))
		return rc;
	*out = (uint32_t)u;
	return 0;
}

int tk_gguf_get_i32(const struct tk_gguf *g, const char *key, int32_t *out)
{
	int rc;
	const struct tk_gguf_kv *kv = lookup(g, key, &rc);
	int64_t s = 0;
	if (!kv || (rc = conv_int(key, kv->type, widen(kv->type, kv), INT32_MIN, INT32_MAX, "int32", &s, NULL)))
		return rc;
	*out = (int32_t)s;
	return 0;
}

int tk_gguf_get_u64(const struct tk_gguf *g, const char *key, uint64_t *out)
{
	int rc;
	const struct tk_gguf_kv *kv = lookup(g, key, &rc);
	uint64_t u = 0;
	if (!kv || (rc = conv_int(key, kv->type, widen(kv->type, kv), 0, UINT64_MAX, "uint64", NULL, &u)))
		return rc;
	*out = u;
	return 0;
}

int tk_gguf_get_i64(const struct tk_gguf *g, const char *key, int64_t *out)
{
	int rc;
	const struct tk_gguf_kv *kv = lookup(g, key, &rc);
	int64_t s = 0;
	if (!kv || (rc = conv_int(key, kv->type, widen(kv->type, kv), INT64_MIN, INT64_MAX, "int64", &s, NULL)))
		return rc;
	*out = s;
	return 0;
}

static int conv_f32(const char *key, int type, double d, float *out)
{
	if (type != TK_GGUF_FLOAT32 && type != TK_GGUF_FLOAT64)
		return want(key, type, "float32");
	if (isfinite(d) && fabs(d) > FLT_MAX)
		return range(key, "float32");
	*out = (float)d;
	return 0;
}

int tk_gguf_get_f32(const struct tk_gguf *g, const char *key, float *out)
{
	int rc;
	const struct tk_gguf_kv *kv = lookup(g, key, &rc);
	if (!kv)
		return rc;
	return conv_f32(key, kv->type, kv->v.f, out);
}

int tk_gguf_get_f64(const struct tk_gguf *g, const char *key, double *out)
{
	int rc;
	const struct tk_gguf_kv *kv = lookup(g, key, &rc);
	if (!kv)
		return rc;
	if (kv->type != TK_GGUF_FLOAT32 && kv->type != TK_GGUF_FLOAT64)
		return want(key, kv->type, "float64");
	*out = kv->v.f;
	return 0;
}

int tk_gguf_get_bool(const struct tk_gguf *g, const char *key, bool *out)
{
	int rc;
	const struct tk_gguf_kv *kv = lookup(g, key, &rc);
	if (!kv)
		return rc;
	if (kv->type != TK_GGUF_BOOL)
		return want(key, kv->type, "bool");
	*out = kv->v.b;
	return 0;
}

int tk_gguf_get_str(const struct tk_gguf *g, const char *key, const char **out, size_t *len_out)
{
	int rc;
	const struct tk_gguf_kv *kv = lookup(g, key, &rc);
	if (!kv)
		return rc;
	if (kv->type != TK_GGUF_STRING)
		return want(key, kv->type, "string");
	*out = kv->str.s;
	if (len_out)
		*len_out = kv->str.len;
	return 0;
}

int tk_gguf_get_arr(const struct tk_gguf *g, const char *key, struct tk_gguf_arr *out)
{
	int rc;
	const struct tk_gguf_kv *kv = lookup(g, key, &rc);
	if (!kv)
		return rc;
	if (kv->type != TK_GGUF_ARRAY)
		return want(key, kv->type, "array");
	*out = kv->arr;
	return 0;
}

/* Decodes element i of a numeric/bool array into a temporary kv. */
static int arr_elem(const struct tk_gguf_arr *a, size_t i, struct tk_gguf_kv *tmp)
{
	if (i >= a->n)
		return tk_errf(TK_EINVAL, "gguf: array index %zu out of range (n = %zu)", i, a->n);
	size_t esz = tk_gguf_type_size(a->type);
	if (!esz)
		return tk_errf(TK_EFORMAT, "gguf: array of %s has no numeric elements",
			       tk_gguf_type_name(a->type));
	memset(tmp, 0, sizeof *tmp);
	tmp->type = a->type;
	decode_scalar(a->type, (const uint8_t *)a->data + i * esz, tmp);
	return 0;
}

int tk_gguf_arr_get_i64(const struct tk_gguf_arr *a, size_t i, int64_t *out)
{
	struct tk_gguf_kv t = { 0 };
	int rc = arr_elem(a, i, &t);
	int64_t s = 0;
	if (rc || (rc = conv_int("array element", t.type, widen(t.type, &t), INT64_MIN, INT64_MAX, "int64", &s, NULL)))
		return rc;
	*out = s;
	return 0;
}

int tk_gguf_arr_get_u64(const struct tk_gguf_arr *a, size_t i, uint64_t *out)
{
	struct tk_gguf_kv t = { 0 };
	int rc = arr_elem(a, i, &t);
	uint64_t u = 0;
	if (rc || (rc = conv_int("array element", t.type, widen(t.type, &t), 0, UINT64_MAX, "uint64", NULL, &u)))
		return rc;
	*out = u;
	return 0;
}

int tk_gguf_arr_get_i32(const struct tk_gguf_arr *a, size_t i, int32_t *out)
{
	struct tk_gguf_kv t = { 0 };
	int rc = arr_elem(a, i, &t);
	int64_t s = 0;
	if (rc || (rc = conv_int("array element", t.type, widen(t.type, &t), INT32_MIN, INT32_MAX, "int32", &s, NULL)))
		return rc;
	*out = (int32_t)s;
	return 0;
}

int tk_gguf_arr_get_u32(const struct tk_gguf_arr *a, size_t i, uint32_t *out)
{
	struct tk_gguf_kv t = { 0 };
	int rc = arr_elem(a, i, &t);
	uint64_t u = 0;
	if (rc || (rc = conv_int("array element", t.type, widen(t.type, &t), 0, UINT32_MAX, "uint32", NULL, &u)))
		return rc;
	*out = (uint32_t)u;
	return 0;
}

int tk_gguf_arr_get_f32(const struct tk_gguf_arr *a, size_t i, float *out)
{
	struct tk_gguf_kv t = { 0 };
	int rc = arr_elem(a, i, &t);
	if (rc)
		return rc;
	return conv_f32("array element", t.type, t.v.f, out);
}

int tk_gguf_arr_get_bool(const struct tk_gguf_arr *a, size_t i, bool *out)
{
	struct tk_gguf_kv t = { 0 };
	int rc = arr_elem(a, i, &t);
	if (rc)
		return rc;
	if (t.type != TK_GGUF_BOOL)
		return want("array element", t.type, "bool");
	*out = t.v.b;
	return 0;
}

int tk_gguf_arr_get_str(const struct tk_gguf_arr *a, size_t i, const char **out, size_t *len_out)
{
	if (i >= a->n)
		return tk_errf(TK_EINVAL, "gguf: array index %zu out of range (n = %zu)", i, a->n);
	if (a->type != TK_GGUF_STRING)
		return want("array element", a->type, "string");
	*out = a->strs[i].s;
	if (len_out)
		*len_out = a->strs[i].len;
	return 0;
}
