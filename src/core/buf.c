/* buf.c — capped growable buffer (see buf.h). */
#include "core/buf.h"

#include "core/err.h"

#include <errno.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tk_buf_init(struct tk_buf *b, size_t max_bytes)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max_bytes = max_bytes;
}

void tk_buf_free(struct tk_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void tk_buf_reset(struct tk_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

int tk_buf_reserve(struct tk_buf *b, size_t n)
{
	if (n > b->max_bytes - b->len)
		return tk_errf(TK_ELIMIT, "buffer cap of %zu bytes reached", b->max_bytes);
	size_t need = b->len + n + 1; /* +1 for the NUL */
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	/* Never allocate much beyond what the cap can use. */
	if (cap > b->max_bytes + 1 && need <= b->max_bytes + 1)
		cap = b->max_bytes + 1;
	char *p = realloc(b->data, cap);
	if (!p)
		return tk_errf(TK_ENOMEM, "buffer: cannot grow to %zu bytes", cap);
	b->data = p;
	b->cap = cap;
	return 0;
}

int tk_buf_append(struct tk_buf *b, const void *p, size_t n)
{
	int rc = tk_buf_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int tk_buf_puts(struct tk_buf *b, const char *s)
{
	return tk_buf_append(b, s, strlen(s));
}

int tk_buf_putc(struct tk_buf *b, char c)
{
	return tk_buf_append(b, &c, 1);
}

int tk_buf_vprintf(struct tk_buf *b, const char *fmt, va_list ap)
{
	char small[256];
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(small, sizeof small, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return tk_errf(TK_EINVAL, "buffer: bad format string");
	if ((size_t)n < sizeof small)
		return tk_buf_append(b, small, (size_t)n);
	int rc = tk_buf_reserve(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int tk_buf_printf(struct tk_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = tk_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void tk_buf_truncate(struct tk_buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

const char *tk_buf_str(const struct tk_buf *b)
{
	return b->data ? b->data : "";
}

char *tk_buf_detach(struct tk_buf *b, size_t *len_out)
{
	char *p = b->data;
	size_t len = b->len;
	if (!p) {
		p = calloc(1, 1);
		len = 0;
	}
	if (len_out)
		*len_out = len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

int tk_buf_append_file(struct tk_buf *b, const char *path)
{
	bool is_stdin = !strcmp(path, "-");
	FILE *f = is_stdin ? stdin : fopen(path, "rbe");
	if (!f)
		return tk_errf_sys(TK_EIO, errno, "cannot open %s", path);
	char chunk[65536];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if ((rc = tk_buf_append(b, chunk, n)))
			break;
	if (!rc && ferror(f))
		rc = tk_errf_sys(TK_EIO, errno, "cannot read %s", path);
	if (!is_stdin)
		fclose(f);
	return rc ? tk_err_wrap(rc, "%s", path) : 0;
}
