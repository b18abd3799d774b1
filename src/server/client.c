/*
 * client.c — minimal HTTP/1.0 client (see client.h). Owns one socket per
 * call; closes it before returning.
 */
#include "server/client.h"

#include "core/err.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX 16384

int tk_http_url_parse(const char *url, struct tk_http_url *out)
{
	memset(out, 0, sizeof *out);
	if (!strncmp(url, "https://", 8))
		return tk_errf(TK_EUNSUPPORTED, "url %s: https is not supported by this client; "
			       "use a local http address", url);
	if (strncmp(url, "http://", 7))
		return tk_errf(TK_EINVAL, "url %s: must start with http://", url);
	const char *h = url + 7, *p, *end;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end)
			return tk_errf(TK_EINVAL, "url %s: unterminated [", url);
		h++;
		p = end + 1;
	} else {
		end = h + strcspn(h, ":/");
		p = end;
	}
	size_t hl = (size_t)(end - h);
	if (hl == 0 || hl >= sizeof out->host)
		return tk_errf(TK_EINVAL, "url %s: bad host", url);
	memcpy(out->host, h, hl);
	/* A name, an IPv4 address, or (in brackets) IPv6: nothing that could
	 * end up as query, fragment or credentials in the request. */
	if (strspn(out->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") != hl)
		return tk_errf(TK_EINVAL, "url %s: bad character in host", url);
	snprintf(out->port, sizeof out->port, "80");
	if (*p == ':') {
		size_t pl = strspn(p + 1, "0123456789");
		if (pl == 0 || pl >= sizeof out->port)
			return tk_errf(TK_EINVAL, "url %s: bad port", url);
		memcpy(out->port, p + 1, pl);
		out->port[pl] = '\0';
		long pn = strtol(out->port, NULL, 10);
		if (pn < 1 || pn > 65535)
			return tk_errf(TK_EINVAL, "url %s: port must be 1..65535", url);
		p += 1 + pl;
	}
	if (*p && *p != '/')
		return tk_errf(TK_EINVAL, "url %s: unexpected '%c'", url, *p);
	size_t bl = strlen(p);
	while (bl && p[bl - 1] == '/')
		bl--;
	if (bl >= sizeof out->base_path)
		return tk_errf(TK_EINVAL, "url %s: path too long", url);
	memcpy(out->base_path, p, bl);
	return 0;
}

static int wait_fd(int fd, short ev, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = ev };
	for (;;) {
		int n = poll(&pfd, 1, timeout_ms);
		if (n > 0)
			return 0;
		if (n == 0)
			return tk_errf(TK_ETIMEOUT, "http: no answer within %d ms", timeout_ms);
		if (errno != EINTR)
			return tk_errf_sys(TK_EIO, errno, "http: poll");
	}
}

static int connect_to(const struct tk_http_url *u)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(u->host, u->port, &hints, &res);
	if (gai)
		return tk_errf(TK_EIO, "http: cannot resolve %s: %s", u->host, gai_strerror(gai));
	int fd = -1, err = 0;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return tk_errf_sys(TK_EIO, err, "http: cannot connect to %s:%s", u->host, u->port);
	return fd;
}

static int send_all(int fd, const char *p, size_t n, int timeout_ms)
{
	while (n) {
		int rc = wait_fd(fd, POLLOUT, timeout_ms);
		if (rc < 0)
			return rc;
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return tk_errf_sys(TK_EIO, errno, "http: send");
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int deliver(const char *p, size_t n, struct tk_buf *body_out, tk_http_body_fn on_body,
		   void *arg, bool *stop)
{
	if (!n)
		return 0;
	if (on_body) {
		if (on_body(p, n, arg))
			*stop = true;
		return 0;
	}
	if (body_out) {
		int rc = tk_buf_append(body_out, p, n);
		if (rc < 0)
			return tk_errf(rc, "http: response body larger than %zu bytes",
				       body_out->max_bytes);
	}
	return 0;
}

int tk_http_do(const struct tk_http_url *url, const struct tk_http_request *req, int *status,
	       struct tk_buf *body_out, tk_http_body_fn on_body, void *arg)
{
	int tmo = req->timeout_ms == 0 ? 30000 : req->timeout_ms;
	struct tk_buf head = TK_BUF_INIT(HEAD_MAX + 8192);
	int rc = tk_buf_printf(&head, "%s %s%s HTTP/1.0\r\nHost: %s:%s\r\nConnection: close\r\n"
			       "User-Agent: tanuki-cli\r\nAccept: */*\r\n",
			       req->method, url->base_path, req->path, url->host, url->port);
	if (rc == 0 && req->api_key)
		rc = tk_buf_printf(&head, "X-API-Key: %s\r\n", req->api_key);
	if (rc == 0 && req->extra_header)
		rc = tk_buf_printf(&head, "%s\r\n", req->extra_header);
	if (rc == 0 && req->body)
		rc = tk_buf_printf(&head, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
				   req->body_len);
	if (rc == 0)
		rc = tk_buf_puts(&head, "\r\n");
	if (rc < 0) {
		tk_buf_free(&head);
		return tk_errf(rc, "http: request head too large");
	}
	int fd = connect_to(url);
	if (fd < 0) {
		tk_buf_free(&head);
		return fd;
	}
	rc = send_all(fd, head.data, head.len, tmo);
	if (rc == 0 && req->body)
		rc = send_all(fd, req->body, req->body_len, tmo);
	tk_buf_free(&head);
	if (rc < 0)
		goto out;

	char buf[16384];
	struct tk_buf hdr = TK_BUF_INIT(HEAD_MAX);
	bool in_body = false, stop = false;
	while (!stop) {
		if ((rc = wait_fd(fd, POLLIN, tmo)) < 0)
			break;
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			rc = tk_errf_sys(TK_EIO, errno, "http: recv");
			break;
		}
		if (n == 0)
			break;
		if (in_body) {
			if ((rc = deliver(buf, (size_t)n, body_out, on_body, arg, &stop)) < 0)
				break;
			continue;
		}
		if (tk_buf_append(&hdr, buf, (size_t)n) < 0) {
			rc = tk_errf(TK_EFORMAT, "http: response head larger than %d bytes", HEAD_MAX);
			break;
		}
		char *e = strstr(hdr.data, "\r\n\r\n");
		if (!e)
			continue;
		int st = 0;
		if (sscanf(hdr.data, "HTTP/%*d.%*d %d", &st) != 1 || st < 100 || st > 999) {
			rc = tk_errf(TK_EFORMAT, "http: malformed status line");
			break;
		}
		*status = st;
		in_body = true;
		size_t off = (size_t)(e + 4 - hdr.data);
		if ((rc = deliver(hdr.data + off, hdr.len - off, body_out, on_body, arg, &stop)) < 0)
			break;
	}
	if (rc == 0 && !in_body)
		rc = tk_errf(TK_EFORMAT, "http: connection closed before a complete answer");
	tk_buf_free(&hdr);
out:
	close(fd);
	return rc;
}
