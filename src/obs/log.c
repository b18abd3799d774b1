/*
 * log.c — the structured JSON logger (see log.h for the contract).
 *
 * Owns: the output descriptor and its path, the run-time level, the shared
 * secret list, and each thread's context fields and line buffers.
 *
 * Theory of operation, for one line:
 *   1. tk_log_write() loads the level (one relaxed atomic) and returns at
 *      once when the line is below it.
 *   2. The message is formatted with vsnprintf into the thread's capture
 *      buffer (TK_LOG_MSG_MAX plus some slack, see MSG_SLACK).
 *   3. The line is built in the thread's line buffer (TK_LOG_LINE_MAX): fixed
 *      fields, then context fields, then call fields. Every text goes through
 *      put_text(), which redacts secrets, replaces invalid UTF-8 with U+FFFD,
 *      escapes for JSON and truncates at a UTF-8 boundary with a marker.
 *   4. Under out_lock the whole line goes out with one write(2) (looping only
 *      on short writes and EINTR), so lines of this process never interleave.
 *
 * Locks and shared state:
 *   - out_lock guards out_fd changes, out_path and every write of a line.
 *     out_fd itself is atomic so that tk_log_fd() (the crash handler) can read
 *     it without the lock. Reopen keeps the descriptor number: the new file is
 *     dup3()ed over the old descriptor.
 *   - secret_lock serialises tk_log_add_secret(). Readers take no lock: they
 *     load the current immutable secret set with one acquire load. A set is
 *     never freed once published (older sets are kept on a retired list), so
 *     a reader can never see freed memory; the cost is that every add keeps
 *     the previous array: a few KiB for the usual handful of secrets, at
 *     most ~0.7 MiB at the TK_LOG_SECRETS_MAX cap.
 *   - Thread state (context, buffers) is one heap block per thread, made on
 *     first use and freed by a pthread key destructor at thread exit. It is
 *     not static TLS on purpose: ~75 KiB of static TLS would be carved out of
 *     every thread's stack, including threads that never log.
 */
#include "obs/log.h"

#include "core/err.h"
#include "core/utf8.h"
#include "core/time.h"
#include "obs/log_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Bytes captured past TK_LOG_MSG_MAX so that a secret straddling the cut can
 * be recognised in full (a partial match at the very end of what was
 * captured is redacted anyway, see secret_match()). */
#define MSG_SLACK 256
#define COMPONENT_MAX 64 /* bytes of component kept */
#define KEY_MAX 128      /* bytes of a field key kept */
/* Bytes kept free at the end of the line buffer for the closing of the
 * line: `,"log_fields_dropped":N}` and the newline. */
#define LINE_TAIL 64
#define TRUNC_MARK "...[truncated]"
#define REDACTED "[REDACTED]"

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the SIGHUP flag must be a lock-free atomic");

/* ---------------------------------------------------------------------- */
/* Global state                                                           */

static atomic_int log_level = TK_LOG_INFO;
static atomic_int out_fd = STDERR_FILENO; /* written under out_lock */
static atomic_int hup_pending;            /* set by the SIGHUP handler */
static atomic_uint_fast64_t lines_written[TK_LOG_CRITICAL + 1];
static atomic_uint_fast64_t lines_dropped;

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static char *out_path; /* guarded by out_lock; NULL when on stderr */

struct secret {
	const char *s; /* owned by the logger for the life of the process */
	size_t len;
};
/* An immutable snapshot of the registered secrets, grouped by first byte
 * (secrets starting with byte c are v[start[c]] .. v[start[c + 1] - 1]) and
 * longest first within a group, so the longest of overlapping secrets wins
 * and a byte no secret starts with costs one comparison. */
struct secret_set {
	struct secret_set *retired_next; /* guarded by secret_lock */
	uint16_t start[257];
	size_t n;
	struct secret v[];
};
_Static_assert(TK_LOG_SECRETS_MAX < UINT16_MAX, "secret_set.start holds indexes");
static pthread_mutex_t secret_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct secret_set *) secrets; /* published with release */
static struct secret_set *secrets_retired;   /* guarded by secret_lock */

static const char *const level_names[] = { "debug", "info", "warning", "error", "critical" };
static const char *const severity_names[] = { "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL" };

/* Keys the logger writes itself; context keys may not take them and call
 * fields that use them are written with a leading underscore. */
static const char *const core_keys[] = { "ts", "level", "severity", "msg", "component" };

/* ---------------------------------------------------------------------- */
/* Per-thread state                                                       */

struct ctx_entry {
	char key[TK_LOG_CTX_KEY_MAX + 1];
	char val[TK_LOG_CTX_VALUE_MAX + 1];
	size_t val_len;
};

struct log_thread {
	struct ctx_entry ctx[TK_LOG_CTX_MAX];
	size_t n_ctx;
	/* "YYYY-MM-DDTHH:MM:SS." of ts_sec: formatting it costs a gmtime_r
	 * (and glibc's time zone lock), so it is done once a second. */
	bool ts_valid;
	int64_t ts_sec;
	char ts_prefix[20];
	char msg[TK_LOG_MSG_MAX + MSG_SLACK + 1];
	char line[TK_LOG_LINE_MAX];
};

static _Thread_local struct log_thread *tl_state;
static pthread_key_t tl_key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void log_atfork_prepare(void)
{
	pthread_mutex_lock(&secret_lock);
	pthread_mutex_lock(&out_lock);
}

static void log_atfork_release(void)
{
	pthread_mutex_unlock(&out_lock);
	pthread_mutex_unlock(&secret_lock);
}

/* Runs at thread exit. Clearing tl_state matters: another key's destructor
 * may still log after this one ran; it then gets a fresh block, which
 * pthread frees by running the destructors again. */
static void log_thread_free(void *p)
{
	if (tl_state == p)
		tl_state = NULL;
	free(p);
}

static void log_once_init(void)
{
	(void)pthread_key_create(&tl_key, log_thread_free);
	/* A fork while another thread holds a lock would leave the child's
	 * copy locked forever; the handlers make fork wait for the write. */
	(void)pthread_atfork(log_atfork_prepare, log_atfork_release, log_atfork_release);
}

/* This thread's block, made on first use; NULL if allocation fails. */
static struct log_thread *log_thread_get(void)
{
	if (tl_state)
		return tl_state;
	pthread_once(&once, log_once_init);
	struct log_thread *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	(void)pthread_setspecific(tl_key, t);
	tl_state = t;
	return t;
}

/* ---------------------------------------------------------------------- */
/* Line building                                                          */

/* A line under construction. Content never passes limit; the bytes between
 * limit and the real end are reserved for the closing of the line. */
struct line {
	char *p;
	size_t len;
	size_t limit;
	bool space_hit; /* something was cut or skipped for lack of room */
};

static bool line_room(const struct line *l, size_t n)
{
	return n <= l->limit - l->len;
}

static void line_put(struct line *l, const char *s, size_t n)
{
	if (!line_room(l, n)) {
		l->space_hit = true;
		return;
	}
	memcpy(l->p + l->len, s, n);
	l->len += n;
}

static void line_puts(struct line *l, const char *s)
{
	line_put(l, s, strlen(s));
}

/* Length of a secret of set that starts at s (avail bytes known, more: the
 * text goes on past them), or 0. When only a prefix of a secret is visible
 * before the end of what is known and the text goes on, that prefix counts
 * as a match: it is redacted rather than half shown. */
static size_t secret_match(const struct secret_set *set, const char *s, size_t avail, bool more)
{
	unsigned char c = (unsigned char)s[0];
	for (size_t k = set->start[c]; k < set->start[c + 1]; k++) {
		const struct secret *sec = &set->v[k];
		if (sec->len <= avail) {
			if (!memcmp(s, sec->s, sec->len))
				return sec->len;
		} else if (more && !memcmp(s, sec->s, avail)) {
			return avail;
		}
	}
	return 0;
}

/* Checks the UTF-8 sequence at s (avail > 0 bytes). Returns its length when
 * it is a valid, shortest-form scalar value (so no overlongs, surrogates or
 * values past U+10FFFF). Otherwise returns 0 and sets *bad to the length of
 * the maximal invalid subpart (>= 1) that one U+FFFD replaces, and *short_in
 * when the sequence was only cut off by the end of the input. */
static size_t utf8_check(const unsigned char *s, size_t avail, size_t *bad, bool *short_in)
{
	int r = tk_utf8_check(s, avail);
	*short_in = r == 0;
	if (r > 0)
		return (size_t)r;
	*bad = r == 0 ? avail : (size_t)-r;
	return 0;
}

/* A byte copied as is: printable ASCII other than '"' and '\\', and not
 * the first byte of any secret. */
static inline bool plain_byte(unsigned char c, const struct secret_set *set)
{
	if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
		return false;
	return !set || set->start[c] == set->start[c + 1];
}

/*
 * Writes s as a JSON string (with its quotes): secrets redacted, invalid
 * UTF-8 replaced by U+FFFD, everything escaped. avail: bytes of s known;
 * more: the text goes on past them; cap: bytes of input kept. Input past cap
 * (or past avail when more), or that does not fit in the line, is cut at a
 * character boundary and TRUNC_MARK appended. Never leaves the string open.
 */
static void put_text(struct line *l, const char *s, size_t avail, bool more, size_t cap,
		     const struct secret_set *set)
{
	static const char hex[] = "0123456789abcdef";
	const size_t tail = 1 + sizeof TRUNC_MARK - 1; /* closing quote + marker */
	if (!line_room(l, 1 + tail)) {
		l->space_hit = true;
		return;
	}
	bool cut = more || avail > cap;
	size_t end = avail > cap ? cap : avail;
	line_put(l, "\"", 1);
	size_t i = 0;
	while (i < end) {
		/* Fast path: a run of bytes that need no escaping and start no
		 * secret is copied in one go (when it fits). */
		if (plain_byte((unsigned char)s[i], set)) {
			size_t j = i + 1;
			while (j < end && plain_byte((unsigned char)s[j], set))
				j++;
			if (line_room(l, j - i + tail)) {
				memcpy(l->p + l->len, s + i, j - i);
				l->len += j - i;
				i = j;
				continue;
			}
		}
		char tmp[8];
		const char *out = tmp;
		size_t n = 0, adv = 1;
		unsigned char c = (unsigned char)s[i];
		size_t m = set && set->n ? secret_match(set, s + i, avail - i, more) : 0;
		if (m) {
			out = REDACTED;
			n = sizeof REDACTED - 1;
			adv = m;
		} else if (c < 0x80) {
			switch (c) {
			case '"': out = "\\\""; n = 2; break;
			case '\\': out = "\\\\"; n = 2; break;
			case '\n': out = "\\n"; n = 2; break;
			case '\t': out = "\\t"; n = 2; break;
			case '\r': out = "\\r"; n = 2; break;
			default:
				if (c < 0x20) {
					memcpy(tmp, "\\u00", 4);
					tmp[4] = hex[c >> 4];
					tmp[5] = hex[c & 15];
					n = 6;
				} else {
					tmp[0] = (char)c;
					n = 1;
				}
			}
		} else {
			size_t bad = 0;
			bool short_in = false;
			size_t len = utf8_check((const unsigned char *)s + i, avail - i, &bad, &short_in);
			if (len) {
				if (len > end - i) {
					cut = true; /* a character across the cap */
					break;
				}
				out = s + i;
				n = len;
				adv = len;
			} else {
				if (short_in && more)
					break; /* cut by capture, not invalid: cut stays true */
				out = "\xEF\xBF\xBD";
				n = 3;
				adv = bad;
			}
		}
		if (!line_room(l, n + tail)) {
			cut = true;
			l->space_hit = true;
			break;
		}
		memcpy(l->p + l->len, out, n);
		l->len += n;
		i += adv;
	}
	if (cut)
		line_put(l, TRUNC_MARK, sizeof TRUNC_MARK - 1);
	line_put(l, "\"", 1);
}

/* A NUL-terminated string of unknown length, read no further than needed. */
static void put_cstr(struct line *l, const char *s, size_t cap, const struct secret_set *set)
{
	size_t probe = cap + MSG_SLACK;
	size_t n = strnlen(s, probe);
	put_text(l, s, n, n == probe, cap, set);
}

size_t log_fmt_int(char out[LOG_INT_MAX], int64_t v)
{
	size_t n = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do {
		out[LOG_INT_MAX - 1 - n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		out[LOG_INT_MAX - 1 - n++] = '-';
	return n;
}

static void put_int(struct line *l, int64_t v)
{
	char b[LOG_INT_MAX];
	size_t n = log_fmt_int(b, v);
	line_put(l, b + LOG_INT_MAX - n, n);
}

/* ts of a line, with the per-thread second cache when t is not NULL. */
static void format_ts(struct log_thread *t, char out[TK_RFC3339_LEN])
{
	int64_t ns = tk_time_real_ns();
	int64_t ms = ns / 1000000 - (ns % 1000000 < 0);
	int64_t sec = ms / 1000 - (ms % 1000 < 0);
	int msr = (int)(ms - sec * 1000);
	if (t && t->ts_valid && t->ts_sec == sec) {
		memcpy(out, t->ts_prefix, sizeof t->ts_prefix);
		out[20] = (char)('0' + msr / 100);
		out[21] = (char)('0' + msr / 10 % 10);
		out[22] = (char)('0' + msr % 10);
		out[23] = 'Z';
		out[24] = '\0';
		return;
	}
	tk_time_rfc3339(ns, out);
	/* Only the fixed-width form (years 1000..9999) is cached. */
	if (t && strlen(out) == 24 && out[19] == '.') {
		memcpy(t->ts_prefix, out, sizeof t->ts_prefix);
		t->ts_sec = sec;
		t->ts_valid = true;
	}
}

/* Shortest of %.15g / %.17g that reads back exactly; NaN and infinities as
 * null. The decimal point is forced to '.' whatever LC_NUMERIC says. */
static void put_double(struct line *l, double d)
{
	if (!isfinite(d)) {
		line_puts(l, "null");
		return;
	}
	char b[48], o[48];
	snprintf(b, sizeof b, "%.15g", d);
	if (strtod(b, NULL) != d)
		snprintf(b, sizeof b, "%.17g", d);
	size_t n = 0;
	for (const char *p = b; *p && n < sizeof o - 1; p++) {
		if ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == 'e' || *p == 'E')
			o[n++] = *p;
		else if (n == 0 || o[n - 1] != '.')
			o[n++] = '.'; /* a locale's decimal point, however many bytes */
	}
	line_put(l, o, n);
}

/* ASCII-only case folding: locale-free, and so usable from the crash
 * handler (strncasecmp is neither). */
static bool ascii_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y + 32);
		if (x != y)
			return false;
	}
	return true;
}

static bool str_ieq_n(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);
	return an == bn && ascii_ieq(a, b, an);
}

static bool str_iends(const char *a, size_t an, const char *suffix)
{
	size_t sn = strlen(suffix);
	return an > sn && ascii_ieq(a + an - sn, suffix, sn);
}

bool tk_log_key_is_credential(const char *key)
{
	static const char *const names[] = {
		"api_key", "apikey", "api-key", "x-api-key", "authorization",
		"proxy-authorization", "password", "passwd", "secret", "token",
		"cookie", "set-cookie",
	};
	static const char *const suffixes[] = {
		"_key", "-key", "_secret", "-secret", "_token", "-token", "_password",
	};
	if (!key)
		return false;
	size_t n = strnlen(key, KEY_MAX + 1);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (str_ieq_n(key, n, names[i]))
			return true;
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
		if (str_iends(key, n, suffixes[i]))
			return true;
	return false;
}

static bool is_core_key(const char *key)
{
	for (size_t i = 0; i < sizeof core_keys / sizeof core_keys[0]; i++)
		if (!strcmp(key, core_keys[i]))
			return true;
	return false;
}

/* `,"key":` with the key escaped (and a leading underscore on a core key). */
static void put_key(struct line *l, const char *key, const struct secret_set *set)
{
	if (!key || !*key)
		key = "_";
	line_put(l, ",", 1);
	if (is_core_key(key)) {
		char tmp[16];
		snprintf(tmp, sizeof tmp, "_%s", key);
		put_cstr(l, tmp, KEY_MAX, set);
	} else {
		put_cstr(l, key, KEY_MAX, set);
	}
	line_put(l, ":", 1);
}

static void put_field(struct line *l, const struct tk_log_field *f, const struct secret_set *set)
{
	put_key(l, f->key, set);
	if (tk_log_key_is_credential(f->key)) {
		line_puts(l, "\"" REDACTED "\"");
		return;
	}
	switch (f->type) {
	case TK_LF_STR:
		if (f->v.s)
			put_cstr(l, f->v.s, TK_LOG_VALUE_MAX, set);
		else
			line_puts(l, "null");
		break;
	case TK_LF_INT:
		put_int(l, f->v.i);
		break;
	case TK_LF_DBL:
		put_double(l, f->v.d);
		break;
	case TK_LF_BOOL:
		line_puts(l, f->v.b ? "true" : "false");
		break;
	default:
		line_puts(l, "null"); /* an out-of-range type from a caller */
		break;
	}
}

/* Appends one field or context entry whole, or not at all: when it does not
 * fit it is rolled back and counted in *dropped. */
static void put_whole(struct line *l, size_t *dropped, const struct tk_log_field *f,
		      const struct secret_set *set)
{
	size_t mark = l->len;
	bool hit = l->space_hit;
	l->space_hit = false;
	put_field(l, f, set);
	if (l->space_hit) {
		l->len = mark;
		(*dropped)++;
	}
	l->space_hit = hit || l->space_hit;
}

static bool field_key_in(const char *key, const struct tk_log_field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fields[i].key && !strcmp(fields[i].key, key))
			return true;
	return false;
}

/* Builds a whole line into buf (cap bytes, cap > LINE_TAIL + 256) and
 * returns its length, newline included. */
static size_t build_line(char *buf, size_t cap, enum tk_log_level level, const char *component,
			 struct log_thread *t, const struct tk_log_field *fields,
			 size_t n_fields, const char *msg, size_t msg_avail, bool msg_more)
{
	const struct secret_set *set = atomic_load_explicit(&secrets, memory_order_acquire);
	struct line l = { .p = buf, .len = 0, .limit = cap - LINE_TAIL, .space_hit = false };
	char ts[TK_RFC3339_LEN];
	format_ts(t, ts);
	line_puts(&l, "{\"ts\":\"");
	line_puts(&l, ts);
	line_puts(&l, "\",\"level\":\"");
	line_puts(&l, level_names[level]);
	line_puts(&l, "\",\"severity\":\"");
	line_puts(&l, severity_names[level]);
	line_puts(&l, "\",\"msg\":");
	put_text(&l, msg, msg_avail, msg_more, TK_LOG_MSG_MAX, set);
	line_puts(&l, ",\"component\":");
	put_cstr(&l, component ? component : "", COMPONENT_MAX, set);

	size_t dropped = 0;
	for (size_t i = 0; t && i < t->n_ctx; i++) {
		const struct ctx_entry *e = &t->ctx[i];
		if (field_key_in(e->key, fields, n_fields))
			continue; /* the call's own value is more specific */
		struct tk_log_field f = TK_LF_S(e->key, e->val);
		put_whole(&l, &dropped, &f, set);
	}
	for (size_t i = 0; i < n_fields; i++)
		put_whole(&l, &dropped, &fields[i], set);

	/* The tail reserve always holds the rest. */
	l.limit = cap;
	if (dropped) {
		line_puts(&l, ",\"log_fields_dropped\":");
		put_int(&l, (int64_t)dropped);
	}
	line_puts(&l, "}\n");
	return l.len;
}

/* See log_priv.h. Only pure code here (memcpy/memcmp/strnlen/strlen and
 * our own loops): it runs inside the crash handler. */
size_t log_ctx_format_for_crash(char *out, size_t cap)
{
	const struct log_thread *t = tl_state;
	if (!t || cap < LINE_TAIL)
		return 0;
	const struct secret_set *set = atomic_load_explicit(&secrets, memory_order_acquire);
	struct line l = { .p = out, .len = 0, .limit = cap, .space_hit = false };
	size_t n = t->n_ctx < TK_LOG_CTX_MAX ? t->n_ctx : TK_LOG_CTX_MAX;
	for (size_t i = 0; i < n; i++) {
		const struct ctx_entry *e = &t->ctx[i];
		size_t mark = l.len;
		l.space_hit = false;
		/* Bounded reads: the entry may be half-written if the thread
		 * crashed inside tk_log_ctx_set. */
		size_t klen = strnlen(e->key, sizeof e->key - 1);
		size_t vlen = strnlen(e->val, sizeof e->val - 1);
		line_put(&l, ",", 1);
		put_text(&l, e->key, klen, false, KEY_MAX, set);
		line_put(&l, ":", 1);
		char key[sizeof e->key];
		memcpy(key, e->key, klen);
		key[klen] = '\0';
		if (tk_log_key_is_credential(key))
			line_puts(&l, "\"" REDACTED "\"");
		else
			put_text(&l, e->val, vlen, false, TK_LOG_CTX_VALUE_MAX, set);
		if (l.space_hit)
			l.len = mark;
	}
	return l.len;
}

/* ---------------------------------------------------------------------- */
/* Output                                                                 */

/* Writes all of p, looping on short writes and EINTR. 0 or an errno. */
static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (w == 0)
			return EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void emit(enum tk_log_level level, const char *p, size_t n)
{
	pthread_mutex_lock(&out_lock);
	int err = write_all(atomic_load_explicit(&out_fd, memory_order_relaxed), p, n);
	pthread_mutex_unlock(&out_lock);
	if (err)
		atomic_fetch_add_explicit(&lines_dropped, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&lines_written[level], 1, memory_order_relaxed);
}

static int open_log_file(const char *path, int *fd_out)
{
	/* O_APPEND: other writers (logrotate's copytruncate, a second process)
	 * never get overwritten; O_CLOEXEC: sandboxed children never inherit
	 * the log; 0640: logs may hold request metadata, not for everyone. */
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return errno;
	*fd_out = fd;
	return 0;
}

/* Reopens out_path over the current descriptor; caller holds out_lock.
 * 0 (also when on stderr) or an errno. */
static int reopen_locked(void)
{
	if (!out_path)
		return 0;
	int nfd = -1, err = open_log_file(out_path, &nfd);
	if (err)
		return err;
	int cur = atomic_load_explicit(&out_fd, memory_order_relaxed);
	/* dup3 keeps the descriptor number (the crash handler may be reading
	 * it right now) and keeps it close-on-exec, which dup2 would drop. */
	while (dup3(nfd, cur, O_CLOEXEC) < 0) {
		if (errno != EINTR) {
			err = errno;
			close(nfd);
			return err;
		}
	}
	close(nfd);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Public API                                                             */

int tk_log_init(const char *path, enum tk_log_level level)
{
	if ((int)level < TK_LOG_DEBUG || (int)level > TK_LOG_CRITICAL)
		return tk_errf(TK_EINVAL, "log: level %d out of range", (int)level);
	pthread_once(&once, log_once_init);
	char *copy = NULL;
	int fd = STDERR_FILENO;
	if (path && strcmp(path, "-") != 0) {
		if (!*path || strlen(path) >= PATH_MAX)
			return tk_errf(TK_EINVAL, "log: bad file path '%.64s'", path);
		copy = strdup(path);
		if (!copy)
			return tk_errf(TK_ENOMEM, "log: out of memory for path '%.64s'", path);
		int err = open_log_file(path, &fd);
		if (err) {
			free(copy);
			return tk_errf_sys(TK_EIO, err, "log: cannot open '%s'", path);
		}
	}
	pthread_mutex_lock(&out_lock);
	int old = atomic_load_explicit(&out_fd, memory_order_relaxed);
	atomic_store_explicit(&out_fd, fd, memory_order_relaxed);
	if (out_path && old != STDERR_FILENO)
		close(old);
	free(out_path);
	out_path = copy;
	pthread_mutex_unlock(&out_lock);
	tk_log_set_level(level);
	return 0;
}

int tk_log_reopen(void)
{
	pthread_mutex_lock(&out_lock);
	int err = reopen_locked();
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s", out_path ? out_path : "-");
	pthread_mutex_unlock(&out_lock);
	if (err)
		return tk_errf_sys(TK_EIO, err, "log: cannot reopen '%s'", path);
	return 0;
}

void tk_log_shutdown(void)
{
	pthread_mutex_lock(&out_lock);
	if (out_path) {
		int old = atomic_load_explicit(&out_fd, memory_order_relaxed);
		atomic_store_explicit(&out_fd, STDERR_FILENO, memory_order_relaxed);
		close(old);
		free(out_path);
		out_path = NULL;
	}
	pthread_mutex_unlock(&out_lock);
}

int tk_log_fd(void)
{
	return atomic_load_explicit(&out_fd, memory_order_relaxed);
}

static void on_sighup(int signo)
{
	(void)signo;
	atomic_store_explicit(&hup_pending, 1, memory_order_relaxed);
}

int tk_log_watch_sighup(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sighup;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGHUP, &sa, NULL) < 0)
		return tk_errf_sys(TK_EIO, errno, "log: cannot install the SIGHUP handler");
	return 0;
}

void tk_log_set_level(enum tk_log_level level)
{
	int v = (int)level;
	if (v < TK_LOG_DEBUG)
		v = TK_LOG_DEBUG;
	if (v > TK_LOG_CRITICAL)
		v = TK_LOG_CRITICAL;
	atomic_store_explicit(&log_level, v, memory_order_relaxed);
}

enum tk_log_level tk_log_get_level(void)
{
	return (enum tk_log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

bool tk_log_enabled(enum tk_log_level level)
{
	return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

const char *tk_log_level_name(enum tk_log_level level)
{
	if ((int)level < TK_LOG_DEBUG || (int)level > TK_LOG_CRITICAL)
		return "unknown";
	return level_names[level];
}

int tk_log_level_parse(const char *s, enum tk_log_level *out)
{
	if (!s)
		return tk_errf(TK_EINVAL, "log level: missing");
	for (int i = TK_LOG_DEBUG; i <= TK_LOG_CRITICAL; i++) {
		if (!strcasecmp(s, level_names[i])) {
			*out = (enum tk_log_level)i;
			return 0;
		}
	}
	if (!strcasecmp(s, "warn")) {
		*out = TK_LOG_WARNING;
		return 0;
	}
	return tk_errf(TK_EINVAL,
		       "log level: unknown '%.32s' (debug, info, warning, error, critical)", s);
}

uint64_t tk_log_lines_written(enum tk_log_level level)
{
	if ((int)level < TK_LOG_DEBUG || (int)level > TK_LOG_CRITICAL)
		return 0;
	return atomic_load_explicit(&lines_written[level], memory_order_relaxed);
}

uint64_t tk_log_lines_dropped(void)
{
	return atomic_load_explicit(&lines_dropped, memory_order_relaxed);
}

static bool secret_before(const struct secret *a, const struct secret *b)
{
	unsigned char fa = (unsigned char)a->s[0], fb = (unsigned char)b->s[0];
	return fa != fb ? fa < fb : a->len > b->len;
}

int tk_log_add_secret(const char *value)
{
	if (!value)
		return tk_errf(TK_EINVAL, "log secret: NULL");
	size_t len = strnlen(value, TK_LOG_SECRET_MAX + 1);
	if (len < 4)
		return tk_errf(TK_EINVAL, "log secret: shorter than 4 bytes (%zu)", len);
	if (len > TK_LOG_SECRET_MAX)
		return tk_errf(TK_ELIMIT, "log secret: longer than %d bytes", TK_LOG_SECRET_MAX);
	int rc = 0;
	pthread_mutex_lock(&secret_lock);
	struct secret_set *cur = atomic_load_explicit(&secrets, memory_order_relaxed);
	size_t n = cur ? cur->n : 0;
	for (size_t i = 0; i < n; i++)
		if (cur->v[i].len == len && !memcmp(cur->v[i].s, value, len))
			goto out; /* already known */
	if (n >= TK_LOG_SECRETS_MAX) {
		rc = tk_errf(TK_ELIMIT, "log secret: at most %d secrets", TK_LOG_SECRETS_MAX);
		goto out;
	}
	char *copy = malloc(len + 1);
	struct secret_set *next = calloc(1, sizeof *next + (n + 1) * sizeof next->v[0]);
	if (!copy || !next) {
		free(copy);
		free(next);
		rc = tk_errf(TK_ENOMEM, "log secret: out of memory");
		goto out;
	}
	memcpy(copy, value, len + 1);
	/* Insert in (first byte, longest first) order. */
	struct secret add = { copy, len };
	size_t j = 0;
	bool placed = false;
	for (size_t i = 0; i < n; i++) {
		if (!placed && secret_before(&add, &cur->v[i])) {
			next->v[j++] = add;
			placed = true;
		}
		next->v[j++] = cur->v[i];
	}
	if (!placed)
		next->v[j++] = add;
	next->n = j;
	/* start[c] = index of the first secret whose first byte is >= c. */
	size_t k = 0;
	for (unsigned c = 0; c <= 256; c++) {
		while (k < j && (unsigned char)next->v[k].s[0] < c)
			k++;
		next->start[c] = (uint16_t)k;
	}
	atomic_store_explicit(&secrets, next, memory_order_release);
	/* Readers may still hold cur: retire it, never free it. */
	if (cur) {
		cur->retired_next = secrets_retired;
		secrets_retired = cur;
	}
out:
	pthread_mutex_unlock(&secret_lock);
	return rc;
}

int tk_log_ctx_set(const char *key, const char *value)
{
	if (!key || !*key)
		return tk_errf(TK_EINVAL, "log context: empty key");
	size_t klen = strnlen(key, TK_LOG_CTX_KEY_MAX + 1);
	if (klen > TK_LOG_CTX_KEY_MAX)
		return tk_errf(TK_EINVAL, "log context: key '%.32s...' longer than %d bytes", key,
			       TK_LOG_CTX_KEY_MAX);
	if (is_core_key(key))
		return tk_errf(TK_EINVAL, "log context: key '%s' is reserved", key);
	struct log_thread *t = value ? log_thread_get() : tl_state;
	if (!t)
		return value ? tk_errf(TK_ENOMEM, "log context: out of memory") : 0;
	size_t at = t->n_ctx;
	for (size_t i = 0; i < t->n_ctx; i++)
		if (!strcmp(t->ctx[i].key, key))
			at = i;
	if (!value) {
		if (at < t->n_ctx) {
			memmove(&t->ctx[at], &t->ctx[at + 1], (t->n_ctx - at - 1) * sizeof t->ctx[0]);
			t->n_ctx--;
		}
		return 0;
	}
	size_t vlen = strnlen(value, TK_LOG_CTX_VALUE_MAX + 1);
	if (vlen > TK_LOG_CTX_VALUE_MAX)
		return tk_errf(TK_ELIMIT, "log context: value of '%s' longer than %d bytes", key,
			       TK_LOG_CTX_VALUE_MAX);
	if (at == t->n_ctx) {
		if (t->n_ctx >= TK_LOG_CTX_MAX)
			return tk_errf(TK_ELIMIT, "log context: at most %d fields (adding '%s')",
				       TK_LOG_CTX_MAX, key);
		memcpy(t->ctx[at].key, key, klen + 1);
		t->n_ctx++;
	}
	memcpy(t->ctx[at].val, value, vlen + 1);
	t->ctx[at].val_len = vlen;
	return 0;
}

void tk_log_ctx_clear_all(void)
{
	if (tl_state)
		tl_state->n_ctx = 0;
}

/* After a SIGHUP: reopen, and say so in the log when that failed. */
static void reopen_after_hup(void)
{
	if (!atomic_load_explicit(&hup_pending, memory_order_relaxed))
		return;
	if (!atomic_exchange_explicit(&hup_pending, 0, memory_order_relaxed))
		return;
	pthread_mutex_lock(&out_lock);
	int err = reopen_locked();
	pthread_mutex_unlock(&out_lock);
	if (!err)
		return;
	char buf[1024], msg[256];
	int n = snprintf(msg, sizeof msg, "cannot reopen the log file after SIGHUP: %s",
			 strerror(err));
	size_t mlen = n < 0 ? 0 : (size_t)n >= sizeof msg ? sizeof msg - 1 : (size_t)n;
	size_t len = build_line(buf, sizeof buf, TK_LOG_ERROR, "log", NULL, NULL, 0, msg, mlen,
				false);
	emit(TK_LOG_ERROR, buf, len);
}

void tk_log_write(enum tk_log_level level, const char *component,
		  const struct tk_log_field *fields, size_t n_fields, const char *fmt, ...)
{
	if (!tk_log_enabled(level))
		return;
	int saved_errno = errno; /* for %m, and callers never see ours */
	if ((int)level > TK_LOG_CRITICAL)
		level = TK_LOG_CRITICAL;
	if (!fields)
		n_fields = 0;

	struct log_thread *t = log_thread_get();
	/* Without the thread block (out of memory) the line is still written,
	 * from small stack buffers with less room for the message. */
	char small_line[4096], small_msg[1024];
	char *line = t ? t->line : small_line;
	size_t line_cap = t ? sizeof t->line : sizeof small_line;
	char *msg = t ? t->msg : small_msg;
	size_t msg_cap = t ? sizeof t->msg : sizeof small_msg;

	size_t avail = 0;
	bool more = false;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		errno = saved_errno;
		int n = vsnprintf(msg, msg_cap, fmt, ap);
		va_end(ap);
		if (n < 0) {
			snprintf(msg, msg_cap, "[unformattable log message: %.64s]", fmt);
			avail = strlen(msg);
		} else {
			avail = (size_t)n < msg_cap ? (size_t)n : msg_cap - 1;
			more = (size_t)n > avail;
		}
	}
	reopen_after_hup();
	size_t len = build_line(line, line_cap, level, component, t, fields, n_fields,
				fmt ? msg : "", avail, more);
	emit(level, line, len);
	errno = saved_errno;
}
