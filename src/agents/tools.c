/*
 * tools.c — the tools a worker agent calls (tools.h): list_files,
 * read_file, write_file, edit_file (with its exact-then-whitespace-forgiving
 * matcher, agent_edit_apply) and run (agent_ws_run: `sh -c` in the sandbox,
 * output kept head and tail). Each call yields a model-facing text and the
 * tool_result event; a failed call is a result with ok false, not an error.
 *
 * Owns: the strings and JSON of struct agent_tool_result. Workspace access
 * goes through ws_int.h only (never a path that follows links).
 */
#include "agents/tools.h"

#include "agents/ws_int.h"
#include "core/err.h"
#include "core/utf8.h"
#include "obs/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_OUTPUT_MAX 16384u  /* bytes of a list_files answer */
#define EVENT_OUTPUT_MAX 1024u  /* bytes of output a file tool's event keeps */
#define RUN_OUTPUT_DEFAULT 4096u
#define RUN_OUTPUT_MAX (1u << 20)
#define RUN_COMMAND_MAX 65536u  /* bytes of a command line */

void agent_tool_result_clear(struct agent_tool_result *r)
{
	if (!r)
		return;
	free(r->output);
	json_decref(r->event);
	memset(r, 0, sizeof *r);
	r->exit_code = -1;
}

/* ---- text helpers ------------------------------------------------------ */

/* Appends s[0..n) with every ill-formed UTF-8 sequence and every NUL
 * replaced by U+FFFD, so that the text is always valid for JSON. */
static int append_clean(struct tk_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;
	while (i < n) {
		int k = p[i] && p[i] < 0x80 ? 1 : p[i] ? tk_utf8_check(p + i, n - i) : -1;
		if (k > 0) {
			i += (size_t)k;
			continue;
		}
		/* 0: a sequence cut at the end of the view; also replaced. */
		size_t bad = k < 0 ? (size_t)-k : n - i;
		int rc = tk_buf_append(b, s + run, i - run);
		if (!rc)
			rc = tk_buf_append(b, "\xEF\xBF\xBD", 3);
		if (rc)
			return rc;
		i += bad;
		run = i;
	}
	return tk_buf_append(b, s + run, n - run);
}

/* Moves a cut position back (or forward) to the start of a UTF-8 sequence. */
static size_t cut_back(const char *s, size_t at)
{
	size_t k = 0;
	while (at > 0 && k < 3 && ((unsigned char)s[at] & 0xC0) == 0x80) {
		at--;
		k++;
	}
	return at;
}

static size_t cut_fwd(const char *s, size_t n, size_t at)
{
	size_t k = 0;
	while (at < n && k < 3 && ((unsigned char)s[at] & 0xC0) == 0x80) {
		at++;
		k++;
	}
	return at;
}

/* Appends a view of a text that is head[0..hn), then `omitted` bytes we no
 * longer have, then tail[0..tn), in about budget bytes: whole when it fits,
 * else its beginning and its end around a "[... N bytes omitted ...]" line. */
static int append_view(struct tk_buf *b, const char *head, size_t hn, uint64_t omitted,
		       const char *tail, size_t tn, size_t budget)
{
	int rc;
	if (!omitted && hn + tn <= budget) {
		if ((rc = append_clean(b, head, hn)))
			return rc;
		return append_clean(b, tail, tn);
	}
	size_t avail = budget > 48 ? budget - 48 : 0;
	size_t t = tn < avail / 2 ? tn : avail / 2;
	size_t h = hn < avail - t ? hn : avail - t;
	if (h == hn && t < tn) /* the head did not need its half */
		t = tn < avail - h ? tn : avail - h;
	/* Whole lines where that loses little. */
	for (size_t k = h; k > h / 2; k--)
		if (head[k - 1] == '\n') {
			h = k;
			break;
		}
	size_t ts = tn - t;
	for (size_t k = ts; k < tn && k - ts < t / 2; k++)
		if (k > 0 && tail[k - 1] == '\n') {
			ts = k;
			break;
		}
	h = cut_back(head, h);
	ts = cut_fwd(tail, tn, ts);
	uint64_t gone = omitted + (hn - h) + ts;
	if ((rc = append_clean(b, head, h)))
		return rc;
	if ((rc = tk_buf_printf(b, "%s[... %llu bytes omitted ...]\n",
				h && head[h - 1] != '\n' ? "\n" : "", (unsigned long long)gone)))
		return rc;
	return append_clean(b, tail + ts, tn - ts);
}

/* A NUL-terminated copy of a view of s capped at budget bytes. */
static char *capped_copy(const char *s, size_t n, size_t budget)
{
	struct tk_buf b = TK_BUF_INIT(budget * 3 + 256);
	if (append_view(&b, s, n, 0, "", 0, budget)) {
		tk_buf_free(&b);
		return NULL;
	}
	return tk_buf_detach(&b, NULL);
}

/* ---- results ----------------------------------------------------------- */

/* Fills out from a model-facing text (copied) and the event (taken). */
static int result_finish(struct agent_tool_result *out, bool ok, const char *text,
			 size_t text_len, json_t *event)
{
	if (!event) {
		return tk_errf(TK_ENOMEM, "tools: out of memory");
	}
	out->ok = ok;
	struct tk_buf b = TK_BUF_INIT(text_len * 3 + 16);
	if (append_clean(&b, text, text_len) || !(out->output = tk_buf_detach(&b, NULL))) {
		tk_buf_free(&b);
		json_decref(event);
		return tk_errf(TK_ENOMEM, "tools: out of memory");
	}
	char *ev = capped_copy(out->output, strlen(out->output), EVENT_OUTPUT_MAX);
	if (!ev || json_object_set_new(event, "ok", json_boolean(ok)) ||
	    json_object_set_new(event, "output", json_string(ev))) {
		free(ev);
		json_decref(event);
		free(out->output);
		out->output = NULL;
		return tk_errf(TK_ENOMEM, "tools: out of memory");
	}
	free(ev);
	out->event = event;
	return 0;
}

/* A failed file tool call: "<tool>: <detail>". */
static int result_fail(struct agent_tool_result *out, enum agent_tool tool, const char *path,
		       const char *detail)
{
	char msg[TK_ERR_DETAIL_MAX + 64];
	snprintf(msg, sizeof msg, "%s: %s", agent_tool_name(tool), detail);
	json_t *ev = json_pack("{s:s}", "tool", agent_tool_name(tool));
	if (ev && path && json_object_set_new(ev, "path", json_string(path))) {
		json_decref(ev);
		ev = NULL;
	}
	if (ev && json_object_set_new(ev, "error", json_string(msg))) {
		json_decref(ev);
		ev = NULL;
	}
	tk_logf(TK_LOG_DEBUG, "agents",
		TK_FIELDS(TK_LF_S("tool", agent_tool_name(tool)), TK_LF_S("path", path)),
		"tool call refused: %s", detail);
	return result_finish(out, false, msg, strlen(msg), ev);
}

static int result_ok(struct agent_tool_result *out, enum agent_tool tool, const char *path,
		     const char *text, size_t text_len, size_t bytes)
{
	json_t *ev = json_pack("{s:s, s:s, s:I}", "tool", agent_tool_name(tool), "path", path,
			       "bytes", (json_int_t)bytes);
	tk_logf(TK_LOG_DEBUG, "agents",
		TK_FIELDS(TK_LF_S("tool", agent_tool_name(tool)), TK_LF_S("path", path),
			  TK_LF_I("bytes", bytes)),
		"tool call done");
	return result_finish(out, true, text, text_len, ev);
}

/* A string argument; NULL when absent or not a string. *len_ok false when
 * it holds a NUL (JSON "\u0000"), which no path or command may. */
static const char *arg_str(const json_t *args, const char *key, bool *nul)
{
	const json_t *v = json_object_get(args, key);
	if (!json_is_string(v))
		return NULL;
	if (nul)
		*nul = strlen(json_string_value(v)) != json_string_length(v);
	return json_string_value(v);
}

/* ---- edit matcher ------------------------------------------------------ */

struct edit_info {
	bool fuzzy;        /* matched ignoring whitespace */
	size_t line;       /* 1-based first line of the match */
	size_t lines_old;  /* lines the match spans */
};

struct line {
	size_t start; /* offset of the first byte */
	size_t end;   /* offset past the content (before "\r\n" / "\n") */
	size_t next;  /* offset of the next line */
};

/* Splits text into lines; a final "" line follows a last '\n'. */
static struct line *split_lines(const char *s, size_t n, size_t *count)
{
	size_t cap = 1;
	for (size_t i = 0; i < n; i++)
		cap += s[i] == '\n';
	struct line *v = malloc(cap * sizeof *v);
	if (!v)
		return NULL;
	size_t k = 0, start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '\n') {
			size_t end = i;
			if (end > start && s[end - 1] == '\r')
				end--;
			v[k++] = (struct line){ start, end, i < n ? i + 1 : n };
			start = i + 1;
		}
	}
	*count = k;
	return v;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Trimmed view of a line. */
static void trim(const char *s, const struct line *l, size_t *a, size_t *b)
{
	size_t x = l->start, y = l->end;
	while (x < y && is_ws(s[x]))
		x++;
	while (y > x && is_ws(s[y - 1]))
		y--;
	*a = x;
	*b = y;
}

static bool blank(const char *s, const struct line *l)
{
	size_t a, b;
	trim(s, l, &a, &b);
	return a == b;
}

static bool lines_equal_trimmed(const char *s1, const struct line *l1, const char *s2,
				const struct line *l2)
{
	size_t a1, b1, a2, b2;
	trim(s1, l1, &a1, &b1);
	trim(s2, l2, &a2, &b2);
	return b1 - a1 == b2 - a2 && !memcmp(s1 + a1, s2 + a2, b1 - a1);
}

static size_t line_of(const char *text, size_t off)
{
	size_t line = 1;
	for (size_t i = 0; i < off; i++)
		line += text[i] == '\n';
	return line;
}

/* Appends up to 100 bytes of a line for an error message. */
static void quote_line(struct tk_buf *b, const char *s, const struct line *l)
{
	size_t n = l->end - l->start;
	size_t k = n > 100 ? cut_back(s + l->start, 100) : n;
	tk_buf_puts(b, "`");
	append_clean(b, s + l->start, k);
	tk_buf_puts(b, k < n ? "...`" : "`");
}

/* The not-found detail: the text line sharing the most characters with the
 * first non-blank search line (a Dice coefficient on byte counts), and the
 * lines after it, briefly. */
static int not_found(const char *text, const struct line *tl, size_t nt, const char *search,
		     const struct line *sl, size_t m)
{
	unsigned hs[256] = { 0 };
	size_t a, b;
	trim(search, &sl[0], &a, &b);
	for (size_t i = a; i < b; i++)
		hs[(unsigned char)search[i]]++;
	size_t slen = b - a;
	double best = 0;
	size_t bi = 0;
	unsigned ht[256];
	for (size_t i = 0; i < nt; i++) {
		size_t x, y;
		trim(text, &tl[i], &x, &y);
		if (x == y)
			continue;
		memset(ht, 0, sizeof ht);
		for (size_t j = x; j < y; j++)
			ht[(unsigned char)text[j]]++;
		size_t common = 0;
		for (int c = 0; c < 256; c++)
			common += hs[c] < ht[c] ? hs[c] : ht[c];
		double score = 2.0 * (double)common / (double)(slen + (y - x));
		if (score > best) {
			best = score;
			bi = i;
		}
	}
	struct tk_buf msg = TK_BUF_INIT(TK_ERR_DETAIL_MAX - 16);
	tk_buf_puts(&msg, "the search text was not found, not even ignoring whitespace");
	if (best >= 0.5) {
		size_t show = m < 3 ? m : 3;
		if (bi + show > nt)
			show = nt - bi;
		tk_buf_printf(&msg, "; the most similar line is %zu: ", bi + 1);
		quote_line(&msg, text, &tl[bi]);
		for (size_t k = 1; k < show; k++) {
			tk_buf_printf(&msg, ", then %zu: ", bi + k + 1);
			quote_line(&msg, text, &tl[bi + k]);
		}
	} else {
		tk_buf_puts(&msg, "; no line resembles its first line");
	}
	tk_buf_puts(&msg, ". Read the file again and copy the exact lines to replace");
	int rc = tk_errf(TK_ENOENT, "%s", tk_buf_str(&msg));
	tk_buf_free(&msg);
	return rc;
}

static int ambiguous(int *count, size_t n, const size_t *lines, size_t shown, bool fuzzy)
{
	if (count)
		*count = n > 1000000 ? 1000000 : (int)n;
	char where[128] = "";
	size_t o = 0;
	for (size_t i = 0; i < shown && o < sizeof where - 24; i++)
		o += (size_t)snprintf(where + o, sizeof where - o, "%s%zu", i ? ", " : "", lines[i]);
	return tk_errf(TK_EEXIST, "the search text occurs %zu times%s (lines %s%s); include more "
		       "surrounding lines so that it matches exactly once", n,
		       fuzzy ? " when whitespace is ignored" : "", where, n > shown ? ", ..." : "");
}

/* Builds text with [a, b) replaced by rep (rep_len bytes). */
static int splice(const char *text, size_t len, size_t a, size_t b, const char *rep,
		  size_t rep_len, char **out, size_t *out_len)
{
	size_t n = len - (b - a) + rep_len;
	char *r = malloc(n + 1);
	if (!r)
		return tk_errf(TK_ENOMEM, "edit: out of memory");
	memcpy(r, text, a);
	memcpy(r + a, rep, rep_len);
	memcpy(r + a + rep_len, text + b, len - b);
	r[n] = '\0';
	*out = r;
	*out_len = n;
	return 0;
}

/* The whitespace-forgiving replacement for text lines [i, i+m) matched by
 * search lines sl[s0..s0+m): rep's lines, with the blank lines the search
 * had around it dropped the same way, re-indented from the search's first
 * line's indentation to the file's, joined by the file's line ending. When
 * rep has no line left the matched lines go with their line ending. */
static int fuzzy_replace(const char *text, size_t len, const struct line *tl, size_t i,
			 size_t m, const char *search, const struct line *sl,
			 size_t s_lead, size_t s_trail, const char *rep, char **out,
			 size_t *out_len)
{
	size_t nr = 0;
	struct line *rl = split_lines(rep, strlen(rep), &nr);
	if (!rl)
		return tk_errf(TK_ENOMEM, "edit: out of memory");
	size_t r0 = 0, r1 = nr;
	if (strspn(rep, " \t\r\n\v\f") == strlen(rep))
		r1 = 0; /* an empty replacement deletes the lines */
	while (r0 < r1 && r0 < s_lead && blank(rep, &rl[r0]))
		r0++;
	for (size_t k = 0; r1 > r0 && k < s_trail && blank(rep, &rl[r1 - 1]); k++)
		r1--;
	/* Indentation: the search's first line vs the file's matched line. */
	const struct line *s_first = &sl[s_lead];
	size_t si = s_first->start, fi = tl[i].start;
	while (si < s_first->end && is_ws(search[si]))
		si++;
	while (fi < tl[i].end && is_ws(text[fi]))
		fi++;
	const char *S = search + s_first->start, *F = text + tl[i].start;
	size_t Sn = si - s_first->start, Fn = fi - tl[i].start;
	bool reindent = Sn != Fn || memcmp(S, F, Sn);
	const char *eol = tl[i].next > tl[i].end + 1 ? "\r\n" : "\n";

	struct tk_buf b = TK_BUF_INIT(AGENT_FILE_MAX * 2 + 16);
	int rc = 0;
	for (size_t k = r0; k < r1 && !rc; k++) {
		const char *ls = rep + rl[k].start;
		size_t ln = rl[k].end - rl[k].start;
		if (k > r0)
			rc = tk_buf_puts(&b, eol);
		if (!rc && reindent && ln >= Sn && !memcmp(ls, S, Sn) && !blank(rep, &rl[k])) {
			rc = tk_buf_append(&b, F, Fn);
			ls += Sn;
			ln -= Sn;
		}
		if (!rc)
			rc = tk_buf_append(&b, ls, ln);
	}
	size_t a = tl[i].start, e = tl[i + m - 1].end;
	if (!rc && r0 == r1)
		e = tl[i + m - 1].next; /* nothing left: the lines go entirely */
	if (!rc)
		rc = splice(text, len, a, e, b.data ? b.data : "", b.len, out, out_len);
	else if (rc == TK_ELIMIT)
		rc = tk_errf(TK_ELIMIT, "edit: the result would be too big");
	tk_buf_free(&b);
	free(rl);
	return rc;
}

static int edit_apply(const char *text, size_t len, const char *search, const char *replace,
		      char **out, size_t *out_len, int *count, struct edit_info *info)
{
	*out = NULL;
	*out_len = 0;
	if (count)
		*count = 0;
	memset(info, 0, sizeof *info);
	size_t sn = strlen(search);
	if (!sn)
		return tk_errf(TK_EINVAL, "the search text is empty; use write_file to write a "
			       "whole file");
	/* 1. Exact. */
	size_t n = 0, lines[5];
	const char *first = NULL;
	for (const char *p = text, *q; (q = memmem(p, len - (size_t)(p - text), search, sn));
	     p = q + 1) {
		if (n < 5)
			lines[n] = line_of(text, (size_t)(q - text));
		if (!first)
			first = q;
		n++;
	}
	if (n > 1)
		return ambiguous(count, n, lines, n < 5 ? n : 5, false);
	if (n == 1) {
		info->line = lines[0];
		info->lines_old = 1;
		for (size_t i = 0; i + 1 < sn; i++)
			info->lines_old += search[i] == '\n';
		if (count)
			*count = 1;
		size_t a = (size_t)(first - text);
		return splice(text, len, a, a + sn, replace, strlen(replace), out, out_len);
	}
	/* 2. Line by line, each line trimmed, line endings ignored. */
	size_t nt = 0, ns = 0;
	struct line *tl = split_lines(text, len, &nt);
	struct line *sl = split_lines(search, sn, &ns);
	int rc = 0;
	if (!tl || !sl) {
		rc = tk_errf(TK_ENOMEM, "edit: out of memory");
		goto out;
	}
	size_t s0 = 0, s1 = ns;
	while (s0 < s1 && blank(search, &sl[s0]))
		s0++;
	while (s1 > s0 && blank(search, &sl[s1 - 1]))
		s1--;
	if (s0 == s1) {
		rc = tk_errf(TK_EINVAL, "the search text is only whitespace");
		goto out;
	}
	size_t m = s1 - s0, found = 0, at = 0;
	for (size_t i = 0; i + m <= nt; i++) {
		size_t k = 0;
		while (k < m && lines_equal_trimmed(text, &tl[i + k], search, &sl[s0 + k]))
			k++;
		if (k < m)
			continue;
		if (found < 5)
			lines[found] = i + 1;
		if (!found)
			at = i;
		found++;
	}
	if (found > 1) {
		rc = ambiguous(count, found, lines, found < 5 ? found : 5, true);
		goto out;
	}
	if (!found) {
		rc = not_found(text, tl, nt, search, sl + s0, m);
		goto out;
	}
	if (count)
		*count = 1;
	info->fuzzy = true;
	info->line = at + 1;
	info->lines_old = m;
	rc = fuzzy_replace(text, len, tl, at, m, search, sl, s0, ns - s1, replace, out, out_len);
out:
	free(tl);
	free(sl);
	return rc;
}

int agent_edit_apply(const char *text, size_t len, const char *search, const char *replace,
		     char **out, size_t *out_len, int *count)
{
	if (!out || !out_len || (!text && len) || !search || !replace)
		return tk_errf(TK_EINVAL, "edit: bad arguments");
	struct edit_info info;
	return edit_apply(text ? text : "", len, search, replace, out, out_len, count, &info);
}

/* ---- the file tools ---------------------------------------------------- */

static int tool_list(struct agent_ws *ws, const json_t *args, struct agent_tool_result *out)
{
	bool nul = false;
	const char *path = arg_str(args, "path", &nul);
	if (!path)
		path = "";
	char norm[AGENT_PATH_MAX + 1];
	if (nul || agent_ws_path_check(path, true, norm, sizeof norm))
		return result_fail(out, AGENT_TOOL_LIST_FILES, path,
				   nul ? "the path contains a NUL byte" : tk_err_detail());
	struct tk_buf b = TK_BUF_INIT(LIST_OUTPUT_MAX + 256);
	int rc = agent_ws_tree_at(ws, norm, LIST_OUTPUT_MAX, &b);
	if (rc == TK_ENOMEM) {
		tk_buf_free(&b);
		return rc;
	}
	if (rc) {
		tk_buf_free(&b);
		return result_fail(out, AGENT_TOOL_LIST_FILES, norm, tk_err_detail());
	}
	if (!b.len)
		tk_buf_printf(&b, "(no files%s%s)", *norm ? " under " : "", norm);
	rc = result_ok(out, AGENT_TOOL_LIST_FILES, *norm ? norm : ".", tk_buf_str(&b), b.len,
		       b.len);
	tk_buf_free(&b);
	return rc;
}

/* Reads a text file for read_file and edit_file; on failure fills out. */
static int read_text(struct agent_ws *ws, enum agent_tool tool, const char *norm,
		     struct tk_buf *b, struct agent_tool_result *out, bool *failed)
{
	*failed = false;
	int rc = agent_ws_read_file(ws, norm, AGENT_FILE_MAX, b);
	if (rc == TK_ENOMEM)
		return rc;
	if (rc) {
		*failed = true;
		return result_fail(out, tool, norm, tk_err_detail());
	}
	if (!agent_text_ok(b->data ? b->data : "", b->len)) {
		char msg[AGENT_PATH_MAX + 128];
		snprintf(msg, sizeof msg, "%s is binary (%zu bytes, not UTF-8 text); it cannot be "
			 "shown or edited as text", norm, b->len);
		*failed = true;
		return result_fail(out, tool, norm, msg);
	}
	return 0;
}

static int tool_read(struct agent_ws *ws, const json_t *args, struct agent_tool_result *out)
{
	bool nul = false;
	const char *path = arg_str(args, "path", &nul);
	if (!path)
		return tk_errf(TK_EINVAL, "read_file: args.path missing");
	char norm[AGENT_PATH_MAX + 1];
	if (nul || agent_ws_path_check(path, false, norm, sizeof norm))
		return result_fail(out, AGENT_TOOL_READ_FILE, path,
				   nul ? "the path contains a NUL byte" : tk_err_detail());
	struct tk_buf b = TK_BUF_INIT(AGENT_FILE_MAX + 1);
	bool failed;
	int rc = read_text(ws, AGENT_TOOL_READ_FILE, norm, &b, out, &failed);
	if (!rc && !failed)
		rc = result_ok(out, AGENT_TOOL_READ_FILE, norm, b.data ? b.data : "", b.len, b.len);
	tk_buf_free(&b);
	return rc;
}

static int tool_write(struct agent_ws *ws, const json_t *args, struct agent_tool_result *out)
{
	bool nul = false;
	const char *path = arg_str(args, "path", &nul);
	const json_t *content = json_object_get(args, "content");
	if (!path || !json_is_string(content))
		return tk_errf(TK_EINVAL, "write_file: args.path or args.content missing");
	char norm[AGENT_PATH_MAX + 1];
	if (nul || agent_ws_path_check(path, false, norm, sizeof norm))
		return result_fail(out, AGENT_TOOL_WRITE_FILE, path,
				   nul ? "the path contains a NUL byte" : tk_err_detail());
	size_t n = json_string_length(content);
	bool created = false;
	int rc = agent_ws_write_file(ws, norm, json_string_value(content), n, false, &created);
	if (rc == TK_ENOMEM)
		return rc;
	if (rc)
		return result_fail(out, AGENT_TOOL_WRITE_FILE, norm, tk_err_detail());
	char msg[AGENT_PATH_MAX + 96];
	snprintf(msg, sizeof msg, "wrote %s (%zu bytes, %s)", norm, n,
		 created ? "new file" : "replaced the old content");
	return result_ok(out, AGENT_TOOL_WRITE_FILE, norm, msg, strlen(msg), n);
}

static int tool_edit(struct agent_ws *ws, const json_t *args, struct agent_tool_result *out)
{
	bool nul = false, nul_s = false, nul_r = false;
	const char *path = arg_str(args, "path", &nul);
	const char *search = arg_str(args, "search", &nul_s);
	const char *replace = arg_str(args, "replace", &nul_r);
	if (!path || !search || !replace)
		return tk_errf(TK_EINVAL, "edit_file: args.path, args.search or args.replace "
			       "missing");
	char norm[AGENT_PATH_MAX + 1];
	if (nul || agent_ws_path_check(path, false, norm, sizeof norm))
		return result_fail(out, AGENT_TOOL_EDIT_FILE, path,
				   nul ? "the path contains a NUL byte" : tk_err_detail());
	if (nul_s || nul_r)
		return result_fail(out, AGENT_TOOL_EDIT_FILE, norm,
				   "search and replace must not contain NUL bytes");
	struct tk_buf b = TK_BUF_INIT(AGENT_FILE_MAX + 1);
	bool failed;
	char *res = NULL;
	size_t res_len = 0;
	int rc = read_text(ws, AGENT_TOOL_EDIT_FILE, norm, &b, out, &failed);
	if (rc || failed)
		goto out;
	struct edit_info info;
	rc = edit_apply(b.data ? b.data : "", b.len, search, replace, &res, &res_len, NULL, &info);
	if (rc == TK_ENOMEM)
		goto out;
	if (rc) {
		char msg[TK_ERR_DETAIL_MAX + AGENT_PATH_MAX];
		snprintf(msg, sizeof msg, "%s: %s", norm, tk_err_detail());
		rc = result_fail(out, AGENT_TOOL_EDIT_FILE, norm, msg);
		goto out;
	}
	rc = agent_ws_write_file(ws, norm, res, res_len, false, NULL);
	if (rc == TK_ENOMEM)
		goto out;
	if (rc) {
		rc = result_fail(out, AGENT_TOOL_EDIT_FILE, norm, tk_err_detail());
		goto out;
	}
	char msg[AGENT_PATH_MAX + 200];
	snprintf(msg, sizeof msg, "edited %s: replaced %zu line%s at line %zu%s; the file now has "
		 "%zu bytes", norm, info.lines_old, info.lines_old == 1 ? "" : "s", info.line,
		 info.fuzzy ? " (matched ignoring whitespace and line endings)" : "", res_len);
	rc = result_ok(out, AGENT_TOOL_EDIT_FILE, norm, msg, strlen(msg), res_len);
out:
	free(res);
	tk_buf_free(&b);
	return rc;
}

/* ---- run --------------------------------------------------------------- */

/* One output stream as it arrives: the first `keep` bytes and a ring with
 * the last `keep` bytes after those. */
struct capture {
	char *head;
	size_t head_len;
	char *ring;
	size_t ring_len, ring_pos; /* bytes held; next write position */
	size_t keep;
	uint64_t total;
};

struct run_ctx {
	struct capture s[2]; /* stdout, stderr */
	const struct agent_run_opts *ro;
};

static void capture_add(struct capture *c, const char *data, size_t n)
{
	c->total += n;
	size_t h = c->keep - c->head_len;
	if (h > n)
		h = n;
	memcpy(c->head + c->head_len, data, h);
	c->head_len += h;
	data += h;
	n -= h;
	if (n >= c->keep) { /* only the last keep bytes matter */
		data += n - c->keep;
		n = c->keep;
	}
	while (n) {
		size_t k = c->keep - c->ring_pos;
		if (k > n)
			k = n;
		memcpy(c->ring + c->ring_pos, data, k);
		c->ring_pos = (c->ring_pos + k) % c->keep;
		c->ring_len = c->ring_len + k > c->keep ? c->keep : c->ring_len + k;
		data += k;
		n -= k;
	}
}

static void on_output(void *arg, int stream, const char *data, size_t n)
{
	struct run_ctx *ctx = arg;
	if (stream == 1 || stream == 2)
		capture_add(&ctx->s[stream - 1], data, n);
	if (ctx->ro->on_output)
		ctx->ro->on_output(ctx->ro->on_output_arg, stream, data, n);
}

/* Appends the stream in about budget bytes. The ring is made linear in
 * place (its storage is ours). */
static int append_stream(struct tk_buf *b, struct capture *c, size_t budget)
{
	if (c->ring_len == c->keep && c->ring_pos) {
		char *lin = malloc(c->keep);
		if (!lin)
			return TK_ENOMEM;
		memcpy(lin, c->ring + c->ring_pos, c->keep - c->ring_pos);
		memcpy(lin + c->keep - c->ring_pos, c->ring, c->ring_pos);
		memcpy(c->ring, lin, c->keep);
		free(lin);
		c->ring_pos = 0;
	}
	uint64_t omitted = c->total - c->head_len - c->ring_len;
	return append_view(b, c->head, c->head_len, omitted, c->ring, c->ring_len, budget);
}

static uint64_t eff(uint64_t spec, uint64_t prof)
{
	return spec ? spec : prof;
}

/* "exit code 2", "killed by signal 11 (SEGV)", "stopped: ..." */
static int status_line(struct tk_buf *b, const struct tk_sandbox_result *r,
		       const struct tk_sandbox_limits *sl, const struct tk_sandbox_limits *pl)
{
	int rc = 0;
	switch (r->status) {
	case TK_SB_OK:
	case TK_SB_RE:
		rc = tk_buf_printf(b, "exit code %d", r->exit_code);
		if (!rc && r->exit_code == 127)
			rc = tk_buf_puts(b, " (command not found?)");
		if (!rc && r->exit_code > 128 && r->exit_code < 128 + 65) {
			/* sh -c reports a child killed by signal N as 128+N:
			 * name it, and the limit behind it when there is one. */
			int sig = r->exit_code - 128;
			const char *abbr = sigabbrev_np(sig);
			rc = tk_buf_printf(b, " (the shell's way of saying a command was killed by "
					   "signal %d, SIG%s", sig, abbr ? abbr : "?");
			if (!rc && sig == SIGXFSZ)
				rc = tk_buf_printf(b, ": the file size limit (%llu MB) reached",
						   (unsigned long long)eff(sl->fsize_mb, pl->fsize_mb));
			else if (!rc && sig == SIGXCPU)
				rc = tk_buf_printf(b, ": the CPU time limit (%llu ms) reached",
						   (unsigned long long)eff(sl->cpu_ms, pl->cpu_ms));
			if (!rc)
				rc = tk_buf_putc(b, ')');
		}
		break;
	case TK_SB_SG: {
		const char *abbr = sigabbrev_np(r->signal);
		rc = tk_buf_printf(b, "killed by signal %d (SIG%s)", r->signal, abbr ? abbr : "?");
		break;
	}
	case TK_SB_TO:
	case TK_SB_ML:
	case TK_SB_OL: {
		rc = tk_buf_puts(b, "stopped by the sandbox: ");
		switch (r->limit) {
		case TK_SB_LIM_CPU:
			rc = rc ? rc : tk_buf_printf(b, "CPU time limit (%llu ms) reached",
						     (unsigned long long)eff(sl->cpu_ms, pl->cpu_ms));
			break;
		case TK_SB_LIM_WALL:
			rc = rc ? rc : tk_buf_printf(b, "wall-clock time limit (%llu ms) reached",
						     (unsigned long long)eff(sl->wall_ms, pl->wall_ms));
			break;
		case TK_SB_LIM_MEMORY:
			rc = rc ? rc : tk_buf_printf(b, "memory limit (%llu MB) reached",
						     (unsigned long long)eff(sl->mem_mb, pl->mem_mb));
			break;
		case TK_SB_LIM_PIDS:
			rc = rc ? rc : tk_buf_printf(b, "process limit (%llu) reached",
						     (unsigned long long)eff(sl->pids, pl->pids));
			break;
		case TK_SB_LIM_OUTPUT:
			rc = rc ? rc : tk_buf_printf(b, "output limit (%llu KiB) reached",
						     (unsigned long long)eff(sl->output_kb,
									     pl->output_kb));
			break;
		case TK_SB_LIM_FSIZE:
			rc = rc ? rc : tk_buf_printf(b, "file size limit (%llu MB) reached",
						     (unsigned long long)eff(sl->fsize_mb,
									     pl->fsize_mb));
			break;
		case TK_SB_LIM_DISK:
			rc = rc ? rc : tk_buf_printf(b, "workspace quota (%llu MB, %llu files) "
						     "exceeded", (unsigned long long)eff(sl->disk_mb,
											 pl->disk_mb),
						     (unsigned long long)eff(sl->disk_inodes,
									     pl->disk_inodes));
			break;
		default:
			rc = rc ? rc : tk_buf_printf(b, "a limit was reached (%s)",
						     tk_sandbox_status_name(r->status));
		}
		break;
	}
	case TK_SB_XX:
	default:
		rc = tk_buf_puts(b, !strcmp(r->message, "cancelled")
					    ? "cancelled before it finished"
					    : "the sandbox failed to run the command");
		break;
	}
	if (!rc)
		rc = tk_buf_printf(b, " [status %s; wall %llu ms, cpu %llu ms]\n",
				   tk_sandbox_status_name(r->status), (unsigned long long)r->wall_ms,
				   (unsigned long long)r->cpu_ms);
	unsigned along = r->limits_hit & ~(1u << r->limit);
	for (int l = 1; !rc && l < TK_SB_LIM_COUNT_; l++)
		if (along & (1u << l))
			rc = tk_buf_printf(b, "limit hit along the way: %s%s\n",
					   tk_sandbox_limit_name((enum tk_sandbox_limit)l),
					   l == TK_SB_LIM_PIDS ? " (too many processes: a fork "
								 "failed)" : "");
	if (!rc && r->message[0])
		rc = tk_buf_printf(b, "note: %s\n", r->message);
	return rc;
}

static json_t *run_event(const char *command, const struct tk_sandbox_result *r, bool ok,
			 const char *output)
{
	struct tk_buf cb = TK_BUF_INIT(4096);
	size_t cl = strlen(command);
	size_t k = cl < 1020 ? cl : cut_back(command, 1020);
	if (append_clean(&cb, command, k) || (k < cl && tk_buf_puts(&cb, "..."))) {
		tk_buf_free(&cb);
		return NULL;
	}
	const char *cmd = tk_buf_str(&cb);
	json_t *hit = json_array();
	for (int l = 1; hit && l < TK_SB_LIM_COUNT_; l++)
		if ((r->limits_hit & (1u << l)) &&
		    json_array_append_new(hit, json_string(tk_sandbox_limit_name(
						       (enum tk_sandbox_limit)l)))) {
			json_decref(hit);
			hit = NULL;
		}
	if (!hit) {
		tk_buf_free(&cb);
		return NULL;
	}
	json_t *ev = json_pack("{s:s, s:b, s:s, s:s, s:o, s:i, s:I, s:I, s:s, s:o, s:I, s:I, s:s}",
			 "tool", "run", "ok", ok, "command", cmd, "status",
			 tk_sandbox_status_name(r->status), "exit_code",
			 r->status == TK_SB_OK || r->status == TK_SB_RE ? json_integer(r->exit_code)
									: json_null(),
			 "signal", r->signal, "wall_ms", (json_int_t)r->wall_ms, "cpu_ms",
			 (json_int_t)r->cpu_ms, "limit", tk_sandbox_limit_name(r->limit),
			 "limits_hit", hit, "stdout_bytes", (json_int_t)r->stdout_bytes,
			 "stderr_bytes", (json_int_t)r->stderr_bytes, "output", output);
	tk_buf_free(&cb);
	return ev;
}

/* A run that never reached the sandbox (bad command). */
static int run_refused(struct agent_tool_result *out, const char *why)
{
	return result_fail(out, AGENT_TOOL_RUN, NULL, why);
}

int agent_ws_run(struct agent_ws *ws, const char *command, const struct agent_run_opts *ro,
		 struct agent_tool_result *out)
{
	if (!out)
		return tk_errf(TK_EINVAL, "run: no result");
	memset(out, 0, sizeof *out);
	out->exit_code = -1;
	out->status = TK_SB_XX;
	if (!ws || !command || !ro || !ro->profile)
		return tk_errf(TK_EINVAL, "run: needs a workspace, a command and a profile");
	size_t cl = strlen(command);
	if (!cl || strspn(command, " \t\r\n") == cl)
		return run_refused(out, "the command is empty");
	if (cl > RUN_COMMAND_MAX)
		return run_refused(out, "the command is longer than 65536 bytes; put it in a "
				   "script file and run that");
	size_t keep = ro->output_bytes ? ro->output_bytes : RUN_OUTPUT_DEFAULT;
	if (keep > RUN_OUTPUT_MAX)
		keep = RUN_OUTPUT_MAX;
	if (keep < 256)
		keep = 256;
	struct run_ctx ctx;
	memset(&ctx, 0, sizeof ctx);
	ctx.ro = ro;
	int rc = 0;
	char *mem = malloc(4 * keep);
	if (!mem)
		return tk_errf(TK_ENOMEM, "run: out of memory");
	for (int i = 0; i < 2; i++) {
		ctx.s[i].head = mem + (size_t)i * 2 * keep;
		ctx.s[i].ring = mem + (size_t)i * 2 * keep + keep;
		ctx.s[i].keep = keep;
	}
	const char *argv[] = { "sh", "-c", command, NULL };
	struct tk_sandbox_spec spec = {
		.profile = ro->profile,
		.workspace = agent_ws_path(ws),
		.argv = argv,
		.limits = ro->limits,
		.opts = ro->sandbox_opts,
		/* We keep head and tail ourselves (on_output sees every byte up
		 * to the output limit); the sandbox's own copy is head only. */
		.capture_max_bytes = 1,
		.on_output = on_output,
		.on_output_arg = &ctx,
		.cancel = ro->cancel,
	};
	struct tk_sandbox_result r;
	int src = tk_sandbox_run(&spec, &r);
	bool ok = src == 0 && r.status != TK_SB_XX;

	struct tk_buf b = TK_BUF_INIT(16 * keep + 4096);
	if ((rc = status_line(&b, &r, &ro->limits, &ro->profile->limits)))
		goto out;
	uint64_t so = ctx.s[0].total, se = ctx.s[1].total;
	size_t budget = keep > b.len + 64 ? keep - b.len - 64 : 128;
	size_t bo = budget, be = budget;
	if (so + se > budget) { /* the smaller stream first, the rest to the other */
		if (so <= se) {
			bo = so < budget / 2 ? (size_t)so : budget / 2;
			be = budget - bo;
		} else {
			be = se < budget / 2 ? (size_t)se : budget / 2;
			bo = budget - be;
		}
	}
	if (so && !(rc = tk_buf_puts(&b, "--- stdout ---\n")))
		rc = append_stream(&b, &ctx.s[0], bo);
	if (!rc && so && b.data[b.len - 1] != '\n')
		rc = tk_buf_putc(&b, '\n');
	if (!rc && se && !(rc = tk_buf_puts(&b, "--- stderr ---\n")))
		rc = append_stream(&b, &ctx.s[1], be);
	if (!rc && se && b.data[b.len - 1] != '\n')
		rc = tk_buf_putc(&b, '\n');
	if (!rc && !so && !se)
		rc = tk_buf_puts(&b, "(no output)\n");
	if (rc)
		goto out;
	out->ok = ok;
	out->exit_code = r.exit_code;
	out->status = r.status;
	out->sandbox_ms = r.wall_ms;
	out->output = tk_buf_detach(&b, NULL);
	if (!out->output) {
		rc = TK_ENOMEM;
		goto out;
	}
	out->event = run_event(command, &r, ok, out->output);
	if (!out->event)
		rc = TK_ENOMEM;
	tk_logf(TK_LOG_DEBUG, "agents",
		TK_FIELDS(TK_LF_S("tool", "run"), TK_LF_S("status", tk_sandbox_status_name(r.status)),
			  TK_LF_I("exit_code", r.exit_code), TK_LF_I("wall_ms", r.wall_ms)),
		"tool call done");
out:
	if (rc) {
		agent_tool_result_clear(out);
		rc = tk_errf(TK_ENOMEM, "run: out of memory");
	}
	tk_buf_free(&b);
	tk_sandbox_result_free(&r);
	free(mem);
	return rc;
}

/* ---- dispatch ---------------------------------------------------------- */

int agent_tool_exec(struct agent_ws *ws, enum agent_tool tool, const json_t *args,
		    const struct agent_run_opts *ro, struct agent_tool_result *out)
{
	if (!out)
		return tk_errf(TK_EINVAL, "tools: no result");
	memset(out, 0, sizeof *out);
	out->exit_code = -1;
	if (!ws || !json_is_object(args))
		return tk_errf(TK_EINVAL, "tools: needs a workspace and an args object");
	int rc;
	switch (tool) {
	case AGENT_TOOL_LIST_FILES:
		rc = tool_list(ws, args, out);
		break;
	case AGENT_TOOL_READ_FILE:
		rc = tool_read(ws, args, out);
		break;
	case AGENT_TOOL_WRITE_FILE:
		rc = tool_write(ws, args, out);
		break;
	case AGENT_TOOL_EDIT_FILE:
		rc = tool_edit(ws, args, out);
		break;
	case AGENT_TOOL_RUN: {
		bool nul = false;
		const char *cmd = arg_str(args, "command", &nul);
		if (!cmd)
			return tk_errf(TK_EINVAL, "run: args.command missing");
		if (nul)
			return run_refused(out, "the command contains a NUL byte");
		return agent_ws_run(ws, cmd, ro, out);
	}
	case AGENT_TOOL_FINISH:
	default:
		return tk_errf(TK_EINVAL, "tools: %s is not a workspace tool",
			       tool == AGENT_TOOL_FINISH ? "finish" : "an unknown tool");
	}
	if (rc) {
		int code = rc;
		agent_tool_result_clear(out);
		return code;
	}
	return 0;
}
