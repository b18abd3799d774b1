/*
 * client.h — a minimal HTTP/1.0 client for Tanuki's own API (the `tanuki
 * tasks` commands and tests). Plain HTTP only — meant for loopback or a
 * trusted network; put TLS in front (a reverse proxy) for anything else.
 *
 * One request per connection ("Connection: close"), so the response body is
 * everything up to EOF (no chunked decoding needed). The body is either
 * collected (capped) or streamed to a callback (SSE). Thread-safe: no global
 * state.
 */
#ifndef TK_SERVER_CLIENT_H
#define TK_SERVER_CLIENT_H

#include <stddef.h>

#include "core/buf.h"

struct tk_http_url {
	char host[256]; /* without brackets for IPv6 */
	char port[8];
	char base_path[256]; /* "" or "/prefix" without a trailing slash */
};

/* Parses "http://HOST[:PORT][/prefix]". 0 or TK_EINVAL (https is refused
 * with TK_EUNSUPPORTED). */
int tk_http_url_parse(const char *url, struct tk_http_url *out);

/* Called with each piece of the response body; return non-zero to stop. */
typedef int (*tk_http_body_fn)(const char *data, size_t len, void *arg);

struct tk_http_request {
	const char *method;       /* "GET", "POST", ... */
	const char *path;         /* "/tasks?limit=5" (appended to base_path) */
	const char *api_key;      /* sent as X-API-Key; NULL = none */
	const char *extra_header; /* one "Name: value" line without CRLF; NULL = none */
	const char *body;         /* NULL = no body */
	size_t body_len;
	int timeout_ms;           /* per read/write; 0 = 30000; -1 = none (streams) */
};

/* Sends req to url. On 0, *status is the HTTP status and the body went to
 * on_body (when non-NULL) or into body_out (when non-NULL; TK_ELIMIT past its
 * cap). TK_EIO for connection problems, TK_EFORMAT for a malformed answer,
 * TK_ETIMEOUT. All pointers borrowed. */
int tk_http_do(const struct tk_http_url *url, const struct tk_http_request *req, int *status,
	       struct tk_buf *body_out, tk_http_body_fn on_body, void *arg);

#endif
