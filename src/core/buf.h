/*
 * buf.h — a growable byte/string buffer with a hard size cap.
 *
 * Invariants (after tk_buf_init, until tk_buf_free):
 *   - data is NULL (nothing appended yet) or a heap block of cap bytes;
 *   - len <= max_bytes, and data[len] == '\0' whenever data != NULL, so the
 *     content can always be used as a C string (it may also hold NULs);
 *   - appending past max_bytes fails with TK_ELIMIT and leaves the buffer
 *     unchanged: a cap is an error, never a silent truncation.
 *
 * A buffer belongs to one thread at a time; it has no lock.
 */
#ifndef TK_CORE_BUF_H
#define TK_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct tk_buf {
	char *data;       /* owned; NULL until the first append */
	size_t len;       /* bytes in use, excluding the trailing NUL */
	size_t cap;       /* bytes allocated */
	size_t max_bytes; /* hard cap on len, fixed at init */
};

#define TK_BUF_INIT(max) { NULL, 0, 0, (max) }

/* Prepares an empty buffer that may grow to max_bytes of content. */
void tk_buf_init(struct tk_buf *b, size_t max_bytes);

/* Frees the storage; the buffer is empty and reusable afterwards. NULL ok. */
void tk_buf_free(struct tk_buf *b);

/* Empties the buffer, keeping its storage. */
void tk_buf_reset(struct tk_buf *b);

/* Appends n bytes (may reallocate). 0, TK_ELIMIT or TK_ENOMEM. */
int tk_buf_append(struct tk_buf *b, const void *p, size_t n);
int tk_buf_puts(struct tk_buf *b, const char *s);
int tk_buf_putc(struct tk_buf *b, char c);
int tk_buf_printf(struct tk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tk_buf_vprintf(struct tk_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Appends the whole content of the file at path ("-" reads standard input
 * to its end, without closing it). Hitting the cap is TK_ELIMIT; the error
 * detail names the path. 0, TK_EIO, TK_ELIMIT or TK_ENOMEM. */
int tk_buf_append_file(struct tk_buf *b, const char *path);

/* Makes room for n more bytes without changing len. 0, TK_ELIMIT, TK_ENOMEM. */
int tk_buf_reserve(struct tk_buf *b, size_t n);

/* Shortens the content to len bytes (len <= b->len). */
void tk_buf_truncate(struct tk_buf *b, size_t len);

/* The content as a C string; "" when empty. Borrowed: valid until the next
 * call that may reallocate. */
const char *tk_buf_str(const struct tk_buf *b);

/* Hands the storage to the caller (free() it) and empties the buffer. Never
 * NULL unless allocation fails: an empty buffer detaches as "". *len_out gets
 * the length when non-NULL. */
char *tk_buf_detach(struct tk_buf *b, size_t *len_out);

#endif
