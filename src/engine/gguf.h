/*
 * gguf.h — GGUF model files: a validating reader over a read-only mmap, and a
 * streaming writer.
 *
 * Reader. tk_gguf_open() maps the file read-only and parses the header,
 * metadata (key/value pairs) and tensor infos. Everything is validated before
 * the handle is returned (see docs/engine.md for the list): counts and string
 * lengths are bounded by the bytes left in the file, every size computation is
 * overflow-checked, tensor types are known ggml ids, shapes are sane, the row
 * length is a multiple of the type's block size, tensor data is aligned and
 * lies inside the file, names and keys are unique. A file that fails any check
 * is refused with TK_EFORMAT (TK_EUNSUPPORTED for a valid but unsupported
 * version or a nested array) and a detail naming the offending item:
 *   "gguf: tensor 'blk.0.attn_q.weight': data [off, off+size) past end of file (size N)"
 * GGUF versions 2 and 3 are accepted (little-endian files only); v1 is refused.
 *
 * Ownership and lifetime: the handle owns the mapping and a copy of every
 * string (keys, string values, tensor names), NUL-terminated. Tensor data and
 * numeric array payloads are NOT copied: those pointers point into the mapping
 * (or into the caller's buffer for tk_gguf_open_buffer) and are valid until
 * tk_gguf_close(). Every pointer returned by this API is borrowed from the
 * handle.
 *
 * Thread safety: a handle is immutable after open; any number of threads may
 * read it concurrently. open/close belong to one thread.
 *
 * Writer. tk_gguf_writer collects metadata and tensor declarations, then
 * tk_gguf_writer_write() streams the file: header, metadata, tensor infos,
 * then each tensor's bytes from a caller callback, one tensor at a time (a
 * large model is never held in memory). It writes PATH.tmp and renames it
 * over PATH when complete. Files are GGUF v3, alignment 32 unless
 * general.alignment is set.
 */
#ifndef TK_ENGINE_GGUF_H
#define TK_ENGINE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* GGUF metadata value types (ids as stored in the file). */
enum tk_gguf_type {
	TK_GGUF_UINT8 = 0,
	TK_GGUF_INT8 = 1,
	TK_GGUF_UINT16 = 2,
	TK_GGUF_INT16 = 3,
	TK_GGUF_UINT32 = 4,
	TK_GGUF_INT32 = 5,
	TK_GGUF_FLOAT32 = 6,
	TK_GGUF_BOOL = 7,
	TK_GGUF_STRING = 8,
	TK_GGUF_ARRAY = 9,
	TK_GGUF_UINT64 = 10,
	TK_GGUF_INT64 = 11,
	TK_GGUF_FLOAT64 = 12,
	TK_GGUF_TYPE_COUNT = 13
};

#define TK_GGUF_MAX_DIMS 4
#define TK_GGUF_DEFAULT_ALIGNMENT 32

/* A string: s is NUL-terminated (a copy owned by the handle); len excludes
 * the NUL. Value strings may contain NUL bytes (use len); keys and tensor
 * names never do (refused at open). */
struct tk_gguf_str {
	const char *s;
	size_t len;
};

/* An array value. Numeric/bool payloads point into the file (little-endian,
 * possibly unaligned: read them with the tk_gguf_arr_get_* accessors);
 * string elements are copied (strs[i]). */
struct tk_gguf_arr {
	enum tk_gguf_type type;        /* element type; never ARRAY */
	size_t n;                      /* element count */
	const void *data;              /* numeric/bool elements, n * elem size */
	const struct tk_gguf_str *strs; /* string elements (type STRING), else NULL */
};

/* One metadata entry. Exactly one of the value members is meaningful,
 * chosen by type: u (UINT*), i (INT*), f (FLOAT*), b (BOOL), str, arr. */
struct tk_gguf_kv {
	const char *key; /* NUL-terminated, unique in the file */
	size_t key_len;
	enum tk_gguf_type type;
	union {
		uint64_t u;
		int64_t i;
		double f;
		bool b;
	} v;
	struct tk_gguf_str str;
	struct tk_gguf_arr arr;
};

/* One tensor. ne[0] is the row length (innermost, contiguous); dims beyond
 * n_dims are 1. nbytes = row_size(type, ne[0]) * ne[1] * ne[2] * ne[3]. */
struct tk_gguf_tensor {
	const char *name; /* NUL-terminated, unique in the file */
	size_t name_len;
	int type;         /* enum tk_type (quant.h), a known ggml id */
	uint32_t n_dims;  /* 1..TK_GGUF_MAX_DIMS */
	int64_t ne[TK_GGUF_MAX_DIMS];
	int64_t n_elements;
	uint64_t offset;  /* from the start of the data section; aligned */
	size_t nbytes;
	const void *data; /* into the mapping; nbytes readable bytes */
};

struct tk_gguf;

/* Opens and validates path (mmap, read-only, MAP_PRIVATE). NULL on error,
 * with the code and detail set: TK_ENOENT (no such file), TK_EINVAL (not a
 * regular file), TK_EIO (cannot open/stat/map), TK_EFORMAT (not valid GGUF),
 * TK_EUNSUPPORTED (GGUF v1, big-endian, nested arrays) or TK_ENOMEM.
 * The file must not be truncated while mapped (reads would fault). */
struct tk_gguf *tk_gguf_open(const char *path);

/* Parses a GGUF image held in memory. data is borrowed: it must stay valid
 * and unchanged until tk_gguf_close(). Same validation as tk_gguf_open. */
struct tk_gguf *tk_gguf_open_buffer(const void *data, size_t size);

/* Unmaps and frees. NULL ok. */
void tk_gguf_close(struct tk_gguf *g);

/* True when g maps a file (tk_gguf_open: read-only, MAP_PRIVATE, so pages
 * of it may be dropped with madvise(MADV_DONTNEED) and are read back from
 * the file when touched again); false for tk_gguf_open_buffer's images. */
bool tk_gguf_is_mapped(const struct tk_gguf *g);

uint32_t tk_gguf_version(const struct tk_gguf *g);
size_t tk_gguf_alignment(const struct tk_gguf *g);
uint64_t tk_gguf_file_size(const struct tk_gguf *g);
uint64_t tk_gguf_data_offset(const struct tk_gguf *g); /* data section start */

/* Metadata, in file order. */
size_t tk_gguf_kv_count(const struct tk_gguf *g);
const struct tk_gguf_kv *tk_gguf_kv_at(const struct tk_gguf *g, size_t i); /* NULL if i out of range */
const struct tk_gguf_kv *tk_gguf_find_kv(const struct tk_gguf *g, const char *key); /* NULL: absent (no error set) */

/* Typed getters by key. Each returns 0 and stores the value, TK_ENOENT when
 * the key is absent, or TK_EFORMAT when its type does not fit (the detail
 * names the key, its type and what was wanted); *out is untouched on error.
 *   get_u32/get_i32/get_u64/get_i64: any integer type (not bool) whose value
 *     fits the target range;
 *   get_f32: FLOAT32 or FLOAT64 (rounded to float; finite f64 beyond float
 *     range is an error); get_f64 likewise;
 *   get_bool: BOOL only;
 *   get_str: STRING only; *out borrowed, *len_out (may be NULL) its length;
 *   get_arr: ARRAY only; *out filled with a borrowed description. */
int tk_gguf_get_u32(const struct tk_gguf *g, const char *key, uint32_t *out);
int tk_gguf_get_i32(const struct tk_gguf *g, const char *key, int32_t *out);
int tk_gguf_get_u64(const struct tk_gguf *g, const char *key, uint64_t *out);
int tk_gguf_get_i64(const struct tk_gguf *g, const char *key, int64_t *out);
int tk_gguf_get_f32(const struct tk_gguf *g, const char *key, float *out);
int tk_gguf_get_f64(const struct tk_gguf *g, const char *key, double *out);
int tk_gguf_get_bool(const struct tk_gguf *g, const char *key, bool *out);
int tk_gguf_get_str(const struct tk_gguf *g, const char *key, const char **out, size_t *len_out);
int tk_gguf_get_arr(const struct tk_gguf *g, const char *key, struct tk_gguf_arr *out);

/* Array element access. 0, TK_EINVAL (i >= n), or TK_EFORMAT (element type
 * does not fit, same rules as the getters above). */
int tk_gguf_arr_get_i64(const struct tk_gguf_arr *a, size_t i, int64_t *out);
int tk_gguf_arr_get_u64(const struct tk_gguf_arr *a, size_t i, uint64_t *out);
int tk_gguf_arr_get_i32(const struct tk_gguf_arr *a, size_t i, int32_t *out);
int tk_gguf_arr_get_u32(const struct tk_gguf_arr *a, size_t i, uint32_t *out);
int tk_gguf_arr_get_f32(const struct tk_gguf_arr *a, size_t i, float *out);
int tk_gguf_arr_get_bool(const struct tk_gguf_arr *a, size_t i, bool *out);
int tk_gguf_arr_get_str(const struct tk_gguf_arr *a, size_t i, const char **out, size_t *len_out);

/* Size in bytes of one element of a scalar type (0 for STRING/ARRAY or an
 * unknown id), and its name ("uint32", "string", ...; "unknown"). */
size_t tk_gguf_type_size(int type);
const char *tk_gguf_type_name(int type);

/* Tensors, in file order. */
size_t tk_gguf_tensor_count(const struct tk_gguf *g);
const struct tk_gguf_tensor *tk_gguf_tensor_at(const struct tk_gguf *g, size_t i); /* NULL if out of range */
const struct tk_gguf_tensor *tk_gguf_find_tensor(const struct tk_gguf *g, const char *name); /* NULL: absent (no error set) */

/* ---- writer ---- */

struct tk_gguf_writer;

/* Fills buf (nbytes, the tensor's encoded size) with tensor i's data, in
 * declaration order. Returns 0 or a negative TK_E* (aborts the write). */
typedef int (*tk_gguf_fill_fn)(void *ctx, size_t i, const struct tk_gguf_tensor *info,
			       void *buf, size_t nbytes);

/* NULL on allocation failure. */
struct tk_gguf_writer *tk_gguf_writer_new(void);
void tk_gguf_writer_free(struct tk_gguf_writer *w); /* NULL ok */

/* Metadata setters (key and string values copied). Setting an existing key
 * replaces its value in place. 0, TK_EINVAL (empty key, bad type), TK_ENOMEM. */
int tk_gguf_writer_set_u32(struct tk_gguf_writer *w, const char *key, uint32_t v);
int tk_gguf_writer_set_i32(struct tk_gguf_writer *w, const char *key, int32_t v);
int tk_gguf_writer_set_u64(struct tk_gguf_writer *w, const char *key, uint64_t v);
int tk_gguf_writer_set_f32(struct tk_gguf_writer *w, const char *key, float v);
int tk_gguf_writer_set_bool(struct tk_gguf_writer *w, const char *key, bool v);
int tk_gguf_writer_set_str(struct tk_gguf_writer *w, const char *key, const char *v);
/* Numeric array: n elements of scalar type `type` from data (host order). */
int tk_gguf_writer_set_arr(struct tk_gguf_writer *w, const char *key, enum tk_gguf_type type,
			   const void *data, size_t n);
/* String array: n strings (lengths from strlen). */
int tk_gguf_writer_set_arr_str(struct tk_gguf_writer *w, const char *key,
			       const char *const *strs, size_t n);
/* Copies one entry read from another file (any type, arrays included). */
int tk_gguf_writer_copy_kv(struct tk_gguf_writer *w, const struct tk_gguf_kv *kv);

/* Declares a tensor (name copied). ne[0] must be a multiple of the type's
 * block size. 0, TK_EINVAL (bad shape/type/duplicate name), TK_ENOMEM. */
int tk_gguf_writer_add_tensor(struct tk_gguf_writer *w, const char *name, int type,
			      uint32_t n_dims, const int64_t *ne);

/* Writes the file (see top). fill is called once per tensor with a buffer of
 * the tensor's size. 0 or TK_EIO / TK_ENOMEM / TK_ELIMIT / fill's error; on
 * error PATH is left untouched and PATH.tmp removed. */
int tk_gguf_writer_write(struct tk_gguf_writer *w, const char *path, tk_gguf_fill_fn fill,
			 void *ctx);

#endif
