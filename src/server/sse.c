/*
 * sse.c — GET /tasks/{id}/events as Server-Sent Events.
 *
 * Each stored task event becomes one SSE message:
 *     id: <seq>\nevent: <type>\ndata: <json>\n\n
 * (a data value holding newlines is split over several data: lines, as the
 * SSE format requires). A client that reconnects with Last-Event-ID: N gets
 * the events after N. While nothing happens the stream carries a comment
 * line ": keepalive" every sse_heartbeat_ms. The stream ends after the
 * task's terminal status event (the store guarantees it is the last one) or
 * when the server shuts down.
 *
 * The content reader never blocks: with nothing to send it suspends the
 * connection (hub.c) and returns 0; a new event or the heartbeat timer
 * resumes it. Owns struct srv_sse (freed with the request).
 */
#include "server/server_int.h"

#include "core/err.h"
#include "core/time.h"
#include "obs/log.h"

#include <stdlib.h>
#include <string.h>

#define SSE_BATCH 64
#define SSE_OUT_MAX (4u << 20) /* one batch of formatted events */

struct srv_sse {
	struct srv_req *req;
	char task_id[TK_ID_LEN];
	int64_t last_seq;       /* last seq sent */
	struct tk_buf out;      /* formatted, not yet sent */
	size_t out_off;         /* bytes of out already sent */
	bool ended;             /* terminal event sent: finish after out drains */
	bool counted;           /* counted in the sse_streams gauge */
	int64_t next_beat_ns;
};

void sse_free(struct srv_sse *s)
{
	if (!s)
		return;
	if (s->counted)
		tk_gauge_add(s->req->srv->m.sse_streams, -1);
	tk_buf_free(&s->out);
	free(s);
}

static int format_event(struct tk_buf *out, const struct tk_task_event *ev)
{
	int rc = tk_buf_printf(out, "id: %lld\nevent: %s\n", (long long)ev->seq, ev->type);
	const char *d = ev->data_json ? ev->data_json : "null";
	while (rc == 0) {
		const char *nl = strchr(d, '\n');
		size_t n = nl ? (size_t)(nl - d) : strlen(d);
		rc = tk_buf_puts(out, "data: ");
		if (rc == 0)
			rc = tk_buf_append(out, d, n);
		if (rc == 0)
			rc = tk_buf_putc(out, '\n');
		if (!nl)
			break;
		d = nl + 1;
	}
	if (rc == 0)
		rc = tk_buf_putc(out, '\n');
	return rc;
}

/* Loads the next batch of events into s->out. 0 or TK_E*. */
static int load_events(struct tk_server *srv, struct srv_sse *s)
{
	struct tk_task_event *ev = NULL;
	size_t n = 0;
	int rc = tk_store_events_since(srv->store, s->task_id, s->last_seq, SSE_BATCH, &ev, &n);
	if (rc < 0)
		return rc;
	tk_buf_reset(&s->out);
	s->out_off = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = format_event(&s->out, &ev[i]);
		s->last_seq = ev[i].seq;
	}
	tk_task_events_free(ev, n);
	return rc;
}

static ssize_t copy_out(struct srv_sse *s, char *buf, size_t max)
{
	size_t left = s->out.len - s->out_off;
	size_t n = left < max ? left : max;
	memcpy(buf, s->out.data + s->out_off, n);
	s->out_off += n;
	s->req->bytes += n;
	return (ssize_t)n;
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct srv_sse *s = cls;
	struct tk_server *srv = s->req->srv;

	for (int round = 0; round < 4; round++) {
		if (s->out_off < s->out.len)
			return copy_out(s, buf, max);
		if (s->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;

		uint64_t gen = hub_gen(srv);
		if (load_events(srv, s) < 0) {
			tk_log(TK_LOG_ERROR, "server", "sse: %s", tk_err_detail());
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (s->out.len > 0)
			continue;
		/* Shutting down: what was stored has been sent; end here. */
		if (atomic_load(&srv->stopping))
			return MHD_CONTENT_READER_END_OF_STREAM;
		/* Nothing new: has the task ended? (Its terminal status event is
		 * its last, so having sent everything means we are done.) */
		struct tk_task t = { 0 };
		if (tk_store_task_get(srv->store, s->task_id, &t) < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		bool terminal = tk_task_status_terminal(t.status) && t.last_event_seq <= s->last_seq;
		tk_task_clear(&t);
		if (terminal)
			return MHD_CONTENT_READER_END_OF_STREAM;

		int64_t now = tk_time_mono_ns();
		if (now >= s->next_beat_ns) {
			s->next_beat_ns = now + (int64_t)srv->opts.sse_heartbeat_ms * 1000000LL;
			tk_buf_reset(&s->out);
			s->out_off = 0;
			if (tk_buf_puts(&s->out, ": keepalive\n\n") < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			continue;
		}
		if (hub_suspend(srv, s->req, s->task_id, s->next_beat_ns, &gen))
			return 0; /* resumed on the next event or heartbeat */
		/* something changed while we looked: go round again */
	}
	return 0; /* MHD calls again */
}

enum MHD_Result sse_start(struct srv_req *r, const char *task_id, int64_t after_seq)
{
	struct srv_sse *s = calloc(1, sizeof *s);
	if (!s)
		return srv_send_error(r, 500, "internal", "out of memory");
	s->req = r;
	snprintf(s->task_id, sizeof s->task_id, "%s", task_id);
	s->last_seq = after_seq;
	tk_buf_init(&s->out, SSE_OUT_MAX);
	/* The first line tells EventSource clients how long to wait before
	 * reconnecting; the first heartbeat comes one interval later. */
	s->next_beat_ns = tk_time_mono_ns() + (int64_t)r->srv->opts.sse_heartbeat_ms * 1000000LL;
	if (tk_buf_puts(&s->out, "retry: 2000\n\n") < 0) {
		sse_free(s);
		return srv_send_error(r, 500, "internal", "out of memory");
	}
	r->sse = s;
	s->counted = true;
	tk_gauge_add(r->srv->m.sse_streams, 1);

	struct MHD_Response *resp =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_reader, s, NULL);
	if (!resp)
		return srv_send_error(r, 500, "internal", "cannot create the event stream");
	srv_add_common_headers(r, resp);
	MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	r->status = 200;
	r->responded = true;
	enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}
