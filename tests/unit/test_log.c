/* test_log.c — the JSON logger: escaping, UTF-8 repair, truncation,
 * redaction, levels, context, concurrency, rotation (reopen and SIGHUP).
 * Every line the logger writes is parsed back with jansson. */
#include "testutil.h"

#include "core/err.h"
#include "core/time.h"
#include "obs/log.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------- */

struct cap {
	char dir[512];
	char path[600];
};

/* Sends the log to a fresh file at level debug. */
static void cap_open(struct cap *c)
{
	tk_test_mkdtemp(c->dir, sizeof c->dir);
	snprintf(c->path, sizeof c->path, "%s/tanuki.log", c->dir);
	assert_int_equal(tk_log_init(c->path, TK_LOG_DEBUG), 0);
}

static void cap_close(struct cap *c)
{
	tk_log_shutdown();
	tk_test_rmtree(c->dir);
}

struct lines {
	json_t **v;
	char **raw;
	size_t n;
};

/* Parses every line of path; fails the test on any line that is not one
 * JSON object without duplicate keys. */
static struct lines read_lines(const char *path)
{
	size_t len;
	char *text = tk_test_read_file(path, &len);
	struct lines ls = { NULL, NULL, 0 };
	size_t cap = 16;
	ls.v = malloc(cap * sizeof *ls.v);
	ls.raw = malloc(cap * sizeof *ls.raw);
	assert_non_null(ls.v);
	assert_non_null(ls.raw);
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] != '\n')
			continue;
		if (ls.n == cap) {
			cap *= 2;
			ls.v = realloc(ls.v, cap * sizeof *ls.v);
			ls.raw = realloc(ls.raw, cap * sizeof *ls.raw);
			assert_non_null(ls.v);
			assert_non_null(ls.raw);
		}
		json_error_t err;
		json_t *j = json_loadb(text + start, i - start,
				       JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
		if (!j || !json_is_object(j))
			fail_msg("line %zu is not a JSON object (%s): %.200s", ls.n + 1, err.text,
				 text + start);
		ls.raw[ls.n] = strndup(text + start, i - start);
		ls.v[ls.n++] = j;
		start = i + 1;
	}
	/* Every line ends with a newline: nothing may trail. */
	assert_int_equal(start, len);
	free(text);
	return ls;
}

static void lines_free(struct lines *ls)
{
	for (size_t i = 0; i < ls->n; i++) {
		json_decref(ls->v[i]);
		free(ls->raw[i]);
	}
	free(ls->v);
	free(ls->raw);
}

static const char *jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!v || !json_is_string(v))
		fail_msg("field '%s' missing or not a string", key);
	return json_string_value(v);
}

/* Writes one message (as "%s" of msg) with no fields and returns the parsed
 * msg (malloc'd, with its length in *len_out). */
static char *roundtrip_msg(const char *msg, size_t *len_out)
{
	struct cap c;
	cap_open(&c);
	tk_log(TK_LOG_INFO, "test", "%s", msg);
	struct lines ls = read_lines(c.path);
	assert_int_equal(ls.n, 1);
	json_t *m = json_object_get(ls.v[0], "msg");
	assert_true(json_is_string(m));
	size_t n = json_string_length(m);
	char *out = malloc(n + 1);
	assert_non_null(out);
	memcpy(out, json_string_value(m), n + 1);
	*len_out = n;
	lines_free(&ls);
	cap_close(&c);
	return out;
}

/* ---- format ------------------------------------------------------------ */

static void test_line_format(void **state)
{
	(void)state;
	struct cap c;
	cap_open(&c);
	int64_t before = tk_time_real_ns();
	tk_logf(TK_LOG_WARNING, "server",
		TK_FIELDS(TK_LF_S("route", "/run_task"), TK_LF_I("status", 503),
			  TK_LF_D("ratio", 0.1), TK_LF_B("draining", true),
			  TK_LF_S("nothing", NULL)),
		"draining: %d tasks left", 3);
	int64_t after = tk_time_real_ns();
	struct lines ls = read_lines(c.path);
	assert_int_equal(ls.n, 1);
	json_t *o = ls.v[0];
	assert_string_equal(jstr(o, "level"), "warning");
	assert_string_equal(jstr(o, "severity"), "WARNING");
	assert_string_equal(jstr(o, "msg"), "draining: 3 tasks left");
	assert_string_equal(jstr(o, "component"), "server");
	assert_string_equal(jstr(o, "route"), "/run_task");
	assert_int_equal(json_integer_value(json_object_get(o, "status")), 503);
	assert_true(json_is_real(json_object_get(o, "ratio")));
	assert_true(json_real_value(json_object_get(o, "ratio")) == 0.1);
	assert_true(json_is_true(json_object_get(o, "draining")));
	assert_true(json_is_null(json_object_get(o, "nothing")));
	/* ts is RFC 3339 with ms, between the clock readings around the call. */
	const char *ts = jstr(o, "ts");
	assert_int_equal(strlen(ts), 24);
	assert_int_equal(ts[23], 'Z');
	int64_t t;
	assert_int_equal(tk_time_parse_rfc3339(ts, &t), 0);
	assert_true(t >= before / 1000000 * 1000000);
	assert_true(t <= after);
	/* Key order: ts, level, severity, msg, component, then fields. */
	const char *raw = ls.raw[0];
	const char *order[] = { "\"ts\"", "\"level\"", "\"severity\"", "\"msg\"",
				"\"component\"", "\"route\"", "\"status\"", "\"ratio\"" };
	for (size_t i = 1; i < sizeof order / sizeof order[0]; i++)
		assert_true(strstr(raw, order[i - 1]) < strstr(raw, order[i]));
	assert_int_equal(raw[0], '{');
	lines_free(&ls);
	cap_close(&c);
}

static void test_every_level_name(void **state)
{
	(void)state;
	static const char *const sev[] = { "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL" };
	struct cap c;
	cap_open(&c);
	for (int l = TK_LOG_DEBUG; l <= TK_LOG_CRITICAL; l++)
		tk_log((enum tk_log_level)l, "lv", "level %d", l);
	struct lines ls = read_lines(c.path);
	assert_int_equal(ls.n, 5);
	for (int l = TK_LOG_DEBUG; l <= TK_LOG_CRITICAL; l++) {
		assert_string_equal(jstr(ls.v[l], "level"), tk_log_level_name((enum tk_log_level)l));
		assert_string_equal(jstr(ls.v[l], "severity"), sev[l]);
		enum tk_log_level back;
		assert_int_equal(tk_log_level_parse(tk_log_level_name((enum tk_log_level)l), &back), 0);
		assert_int_equal(back, l);
	}
	lines_free(&ls);
	cap_close(&c);
	enum tk_log_level x;
	assert_int_equal(tk_log_level_parse("verbose", &x), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "verbose"));
	assert_int_equal(tk_log_level_parse("WARN", &x), 0);
	assert_int_equal(x, TK_LOG_WARNING);
	assert_string_equal(tk_log_level_name((enum tk_log_level)42), "unknown");
}

static void test_numbers(void **state)
{
	(void)state;
	const double ds[] = { 0.0, -0.0, 1.0, -2.5, 0.1, 1.0 / 3.0, 1e300, -1e-300, 6.02214076e23,
			      123456789012345678.0, 5e-324 };
	struct cap c;
	cap_open(&c);
	for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
		tk_logf(TK_LOG_INFO, "num", TK_FIELDS(TK_LF_D("d", ds[i])), "d");
	tk_logf(TK_LOG_INFO, "num",
		TK_FIELDS(TK_LF_D("nan", NAN), TK_LF_D("inf", INFINITY), TK_LF_D("ninf", -INFINITY),
			  TK_LF_I("min", INT64_MIN), TK_LF_I("max", INT64_MAX), TK_LF_B("f", false)),
		"special");
	struct lines ls = read_lines(c.path);
	assert_int_equal(ls.n, sizeof ds / sizeof ds[0] + 1);
	for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
		json_t *d = json_object_get(ls.v[i], "d");
		assert_true(json_is_number(d));
		/* Exactly the same double after the round trip. */
		assert_true(json_number_value(d) == ds[i]);
	}
	json_t *o = ls.v[ls.n - 1];
	assert_true(json_is_null(json_object_get(o, "nan")));
	assert_true(json_is_null(json_object_get(o, "inf")));
	assert_true(json_is_null(json_object_get(o, "ninf")));
	assert_true(json_integer_value(json_object_get(o, "min")) == INT64_MIN);
	assert_true(json_integer_value(json_object_get(o, "max")) == INT64_MAX);
	assert_true(json_is_false(json_object_get(o, "f")));
	lines_free(&ls);
	cap_close(&c);
}

/* ---- escaping and UTF-8 ------------------------------------------------ */

static void test_escape_controls_quotes(void **state)
{
	(void)state;
	/* Every control character 0x01..0x1f, DEL, quote and backslash. */
	char in[64];
	size_t n = 0;
	for (int ch = 1; ch < 0x20; ch++)
		in[n++] = (char)ch;
	in[n++] = 0x7f;
	in[n++] = '"';
	in[n++] = '\\';
	in[n++] = '/';
	in[n] = '\0';
	size_t got_len;
	char *got = roundtrip_msg(in, &got_len);
	assert_int_equal(got_len, n);
	assert_memory_equal(got, in, n);
	free(got);

	/* The short forms are used for \n \t \r, \u00XX for the rest. */
	struct cap c;
	cap_open(&c);
	tk_log(TK_LOG_INFO, "t", "a\nb\tc\rd\x01" "e\x1f" "f\"g\\h");
	struct lines ls = read_lines(c.path);
	assert_non_null(strstr(ls.raw[0], "a\\nb\\tc\\rd\\u0001e\\u001ff\\\"g\\\\h"));
	lines_free(&ls);
	/* A NUL inside the formatted message is kept, as \u0000. */
	tk_log(TK_LOG_INFO, "t", "x%cy", 0);
	ls = read_lines(c.path);
	assert_int_equal(ls.n, 1 + 1);
	json_t *m = json_object_get(ls.v[1], "msg");
	assert_int_equal(json_string_length(m), 3);
	assert_memory_equal(json_string_value(m), "x\0y", 3);
	assert_non_null(strstr(ls.raw[1], "x\\u0000y"));
	lines_free(&ls);
	cap_close(&c);
}

static void test_escape_in_fields_keys_component(void **state)
{
	(void)state;
	struct cap c;
	cap_open(&c);
	tk_logf(TK_LOG_INFO, "comp\"\n\x80",
		TK_FIELDS(TK_LF_S("k\"ey\x01", "v\"al\\\n\xff")), "m");
	struct lines ls = read_lines(c.path);
	assert_string_equal(jstr(ls.v[0], "component"), "comp\"\n\xEF\xBF\xBD");
	assert_string_equal(jstr(ls.v[0], "k\"ey\x01"), "v\"al\\\n\xEF\xBF\xBD");
	lines_free(&ls);
	cap_close(&c);
}

static void test_invalid_utf8_replaced(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		const char *want; /* per the Unicode "maximal subpart" practice */
	} cases[] = {
		{ "a\x80z", "a\xEF\xBF\xBDz" },                   /* lone continuation */
		{ "a\xC3", "a\xEF\xBF\xBD" },                     /* truncated at the end */
		{ "\xC0\xAF!", "\xEF\xBF\xBD\xEF\xBF\xBD!" },     /* overlong '/' */
		{ "\xC1\xBF", "\xEF\xBF\xBD\xEF\xBF\xBD" },       /* overlong */
		{ "\xE0\x80\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" }, /* overlong, 3 bytes */
		{ "\xF0\x80\x80\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" },
		{ "\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" }, /* surrogate D800 */
		{ "\xED\xBF\xBF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" }, /* surrogate DFFF */
		{ "\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" }, /* > 10FFFF */
		{ "\xF5\x80", "\xEF\xBF\xBD\xEF\xBF\xBD" },       /* bad lead F5 */
		{ "\xFF\xFE", "\xEF\xBF\xBD\xEF\xBF\xBD" },       /* bad leads */
		{ "\xE2\x82x", "\xEF\xBF\xBDx" },                 /* truncated 3-byte, then ASCII */
		{ "\xF0\x9F\x98" "A", "\xEF\xBF\xBD" "A" },       /* truncated 4-byte */
		{ "\xE2\x82\xAC\xE2", "\xE2\x82\xAC\xEF\xBF\xBD" }, /* valid then cut */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n;
		char *got = roundtrip_msg(cases[i].in, &n);
		if (n != strlen(cases[i].want) || memcmp(got, cases[i].want, n))
			fail_msg("case %zu: wrong replacement (%zu bytes)", i, n);
		free(got);
	}
}

static void test_valid_utf8_kept(void **state)
{
	(void)state;
	/* 2-, 3- and 4-byte forms and the edges of the valid ranges. */
	const char *in = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF "
			 "\xEF\xBF\xBF \xED\x9F\xBF \xEE\x80\x80 \xC2\x80 \xE0\xA0\x80 \xF0\x90\x80\x80";
	struct cap c;
	cap_open(&c);
	tk_log(TK_LOG_INFO, "t", "%s", in);
	struct lines ls = read_lines(c.path);
	assert_string_equal(jstr(ls.v[0], "msg"), in);
	/* Kept as raw bytes, not escaped. */
	assert_non_null(strstr(ls.raw[0], "\xF0\x9F\x98\x80"));
	lines_free(&ls);
	cap_close(&c);
}

/* Encodes cp as UTF-8 into out; returns the length. */
static size_t utf8_put(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

static void test_random_valid_text_roundtrips(void **state)
{
	(void)state;
	uint64_t rng = 0x9E3779B97F4A7C15u;
	for (int round = 0; round < 50; round++) {
		char text[3000];
		size_t n = 0;
		while (n < sizeof text - 8) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			uint32_t cp;
			switch (rng % 4) {
			case 0: cp = (uint32_t)(rng >> 8) % 0x80; break;
			case 1: cp = 0x80 + (uint32_t)(rng >> 8) % (0x800 - 0x80); break;
			case 2: cp = 0x800 + (uint32_t)(rng >> 8) % (0x10000 - 0x800); break;
			default: cp = 0x10000 + (uint32_t)(rng >> 8) % (0x110000 - 0x10000); break;
			}
			if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
				continue; /* NUL ends the C string; surrogates are not text */
			n += utf8_put(cp, text + n);
		}
		text[n] = '\0';
		size_t got_len;
		char *got = roundtrip_msg(text, &got_len);
		assert_int_equal(got_len, n);
		assert_memory_equal(got, text, n);
		free(got);
	}
}

/* Arbitrary bytes — controls, stray high bytes, valid sequences, pieces of
 * a registered secret — at lengths around the caps: every line must be
 * valid JSON (jansson also rejects invalid UTF-8), no line may show the
 * secret, and whenever jansson itself accepts the input as UTF-8 (an
 * independent validator), holds no secret and fits the cap, the message
 * must come back byte for byte. */
static void test_random_bytes_always_valid(void **state)
{
	(void)state;
	static const char secret[] = "Zq-fuzz-secret-9876";
	static const char *const seqs[] = { "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
					    "\xED\x9F\xBF", "\xF4\x8F\xBF\xBF" };
	assert_int_equal(tk_log_add_secret(secret), 0);
	enum { ROUNDS = 300 };
	size_t maxlen = TK_LOG_MSG_MAX + 600;
	char *buf = malloc(maxlen + 32);
	char **inputs = calloc(ROUNDS, sizeof *inputs);
	assert_non_null(buf);
	assert_non_null(inputs);
	uint64_t x = 0x243F6A8885A308D3u;
#define NEXT() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
	struct cap c;
	cap_open(&c);
	for (int r = 0; r < ROUNDS; r++) {
		size_t want;
		switch (NEXT() % 3) {
		case 0: want = NEXT() % 200; break;
		case 1: want = TK_LOG_MSG_MAX - 300 + NEXT() % 600; break;
		default: want = NEXT() % maxlen; break;
		}
		size_t n = 0;
		int mode = (int)(NEXT() % 3); /* 0: clean text only, else anything */
		while (n < want) {
			unsigned k = (unsigned)(NEXT() % 100);
			if (k < 40 || mode == 0) {
				buf[n++] = (char)(0x20 + NEXT() % 95);
			} else if (k < 55) {
				buf[n++] = (char)(1 + NEXT() % 31);
			} else if (k < 75) {
				buf[n++] = (char)(0x80 + NEXT() % 128);
			} else if (k < 90) {
				const char *q = seqs[NEXT() % 5];
				memcpy(buf + n, q, strlen(q));
				n += strlen(q);
			} else {
				size_t part = 1 + NEXT() % (sizeof secret - 1);
				memcpy(buf + n, secret, part);
				n += part;
			}
		}
		buf[n] = '\0';
		inputs[r] = strdup(buf);
		assert_non_null(inputs[r]);
		tk_logf(TK_LOG_INFO, "fuzz", TK_FIELDS(TK_LF_S("v", buf), TK_LF_I("r", r)), "%s", buf);
	}
#undef NEXT
	struct lines ls = read_lines(c.path);
	assert_int_equal(ls.n, ROUNDS);
	size_t exact = 0;
	for (int r = 0; r < ROUNDS; r++) {
		assert_int_equal(json_integer_value(json_object_get(ls.v[r], "r")), r);
		assert_null(strstr(ls.raw[r], secret));
		assert_true(strlen(ls.raw[r]) + 1 <= TK_LOG_LINE_MAX);
		const char *in = inputs[r];
		size_t len = strlen(in);
		json_t *oracle = json_stringn(in, len); /* NULL: not valid UTF-8 */
		if (oracle && !strstr(in, secret) && len <= TK_LOG_MSG_MAX) {
			assert_string_equal(jstr(ls.v[r], "msg"), in);
			exact++;
		}
		json_decref(oracle);
		free(inputs[r]);
	}
	/* The generator does produce clean cases, so the exact check ran. */
	assert_true(exact > 10);
	lines_free(&ls);
	cap_close(&c);
	free(inputs);
	free(buf);
}

/* ---- truncation -------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

static void test_truncation(void **state)
{
	(void)state;
	const char *mark = "...[truncated]";
	/* ASCII: cut at exactly TK_LOG_MSG_MAX bytes. */
	size_t big = TK_LOG_MSG_MAX + 1000;
	char *msg = malloc(big + 1);
	assert_non_null(msg);
	for (size_t i = 0; i < big; i++)
		msg[i] = (char)('a' + i % 26);
	msg[big] = '\0';
	size_t n;
	char *got = roundtrip_msg(msg, &n);
	assert_true(ends_with(got, mark));
	assert_int_equal(n, TK_LOG_MSG_MAX + strlen(mark));
	assert_memory_equal(got, msg, TK_LOG_MSG_MAX);
	free(got);

	/* Exactly at the cap: nothing is cut. */
	msg[TK_LOG_MSG_MAX] = '\0';
	got = roundtrip_msg(msg, &n);
	assert_int_equal(n, TK_LOG_MSG_MAX);
	assert_false(ends_with(got, mark));
	free(got);

	/* Three-byte characters: the cut falls on a character boundary. */
	for (size_t i = 0; i + 3 <= big; i += 3)
		memcpy(msg + i, "\xE2\x82\xAC", 3);
	msg[big / 3 * 3] = '\0';
	got = roundtrip_msg(msg, &n);
	assert_true(ends_with(got, mark));
	size_t kept = n - strlen(mark);
	assert_true(kept % 3 == 0);
	assert_true(kept <= TK_LOG_MSG_MAX && kept > TK_LOG_MSG_MAX - 3);
	assert_memory_equal(got, msg, kept);
	free(got);

	/* A huge message of control characters: every byte escapes to six,
	 * and the line is still whole and valid. */
	size_t huge = 1 << 20;
	char *ctl = malloc(huge + 1);
	assert_non_null(ctl);
	memset(ctl, 0x01, huge);
	ctl[huge] = '\0';
	got = roundtrip_msg(ctl, &n);
	assert_true(ends_with(got, mark));
	assert_int_equal(n, TK_LOG_MSG_MAX + strlen(mark));
	free(got);

	/* Field values are capped at TK_LOG_VALUE_MAX the same way. */
	struct cap c;
	cap_open(&c);
	tk_logf(TK_LOG_INFO, "t", TK_FIELDS(TK_LF_S("output", ctl), TK_LF_I("after", 7)), "m");
	struct lines ls = read_lines(c.path);
	const char *v = jstr(ls.v[0], "output");
	assert_true(ends_with(v, mark));
	assert_int_equal(strlen(v), TK_LOG_VALUE_MAX + strlen(mark));
	assert_int_equal(json_integer_value(json_object_get(ls.v[0], "after")), 7);
	lines_free(&ls);

	/* Many big fields: the line stays under TK_LOG_LINE_MAX, the message
	 * is kept, whole fields are left out and counted. */
	struct tk_log_field fs[40];
	char keys[40][16];
	for (int i = 0; i < 40; i++) {
		snprintf(keys[i], sizeof keys[i], "f%d", i);
		fs[i] = TK_LF_S(keys[i], ctl);
	}
	tk_log_write(TK_LOG_INFO, "t", fs, 40, "%s", ctl);
	ls = read_lines(c.path);
	assert_int_equal(ls.n, 2);
	assert_true(strlen(ls.raw[1]) + 1 <= TK_LOG_LINE_MAX);
	assert_true(ends_with(jstr(ls.v[1], "msg"), mark));
	json_int_t dropped = json_integer_value(json_object_get(ls.v[1], "log_fields_dropped"));
	size_t present = 0;
	for (int i = 0; i < 40; i++)
		present += json_object_get(ls.v[1], keys[i]) != NULL;
	assert_true(dropped > 0);
	assert_int_equal(present + (size_t)dropped, 40);
	lines_free(&ls);
	cap_close(&c);
	free(ctl);
	free(msg);
}

/* ---- redaction --------------------------------------------------------- */

static void test_redact_secret_values(void **state)
{
	(void)state;
	const char *secret = "sk-live-7f3a9c21e0";
	assert_int_equal(tk_log_add_secret(secret), 0);
	assert_int_equal(tk_log_add_secret(secret), 0); /* twice: no-op */
	assert_int_equal(tk_log_add_secret("abc"), TK_EINVAL);
	assert_int_equal(tk_log_add_secret(NULL), TK_EINVAL);
	struct cap c;
	cap_open(&c);
	assert_int_equal(tk_log_ctx_set("request_id", "req sk-live-7f3a9c21e0"), 0);
	tk_logf(TK_LOG_INFO, "auth sk-live-7f3a9c21e0",
		TK_FIELDS(TK_LF_S("header", "Bearer sk-live-7f3a9c21e0, again sk-live-7f3a9c21e0")),
		"key=%s; end", secret);
	tk_log_ctx_clear_all();
	struct lines ls = read_lines(c.path);
	assert_null(strstr(ls.raw[0], secret));
	assert_null(strstr(ls.raw[0], "7f3a9c21e0"));
	assert_string_equal(jstr(ls.v[0], "msg"), "key=[REDACTED]; end");
	assert_string_equal(jstr(ls.v[0], "component"), "auth [REDACTED]");
	assert_string_equal(jstr(ls.v[0], "header"), "Bearer [REDACTED], again [REDACTED]");
	assert_string_equal(jstr(ls.v[0], "request_id"), "req [REDACTED]");
	lines_free(&ls);
	cap_close(&c);
}

static void test_redact_secret_with_json_chars_and_overlap(void **state)
{
	(void)state;
	/* Matched on raw bytes, before escaping; the longer of two overlapping
	 * secrets wins. */
	assert_int_equal(tk_log_add_secret("pa\"ss\nword!"), 0);
	assert_int_equal(tk_log_add_secret("tok-1234"), 0);
	assert_int_equal(tk_log_add_secret("tok-1234-5678"), 0);
	struct cap c;
	cap_open(&c);
	tk_log(TK_LOG_INFO, "t", "a pa\"ss\nword! b tok-1234-5678 c tok-1234 d");
	struct lines ls = read_lines(c.path);
	assert_string_equal(jstr(ls.v[0], "msg"), "a [REDACTED] b [REDACTED] c [REDACTED] d");
	assert_null(strstr(ls.raw[0], "5678"));
	lines_free(&ls);
	cap_close(&c);
}

static void test_redact_secret_across_truncation(void **state)
{
	(void)state;
	const char *secret = "ghp_Zq81kLmN0pQrStUv";
	assert_int_equal(tk_log_add_secret(secret), 0);
	/* The secret starts 5 bytes before the cut: neither it nor any part of
	 * it may show. */
	size_t n = TK_LOG_MSG_MAX + 200;
	char *msg = malloc(n + 1);
	assert_non_null(msg);
	memset(msg, 'x', n);
	memcpy(msg + TK_LOG_MSG_MAX - 5, secret, strlen(secret));
	msg[n] = '\0';
	size_t got_len;
	char *got = roundtrip_msg(msg, &got_len);
	assert_null(strstr(got, "ghp_Z"));
	assert_non_null(strstr(got, "[REDACTED]"));
	assert_true(ends_with(got, "...[truncated]"));
	free(got);
	/* Same for a field value cut at TK_LOG_VALUE_MAX. */
	memset(msg, 'y', n);
	memcpy(msg + TK_LOG_VALUE_MAX - 3, secret, strlen(secret));
	struct cap c;
	cap_open(&c);
	tk_logf(TK_LOG_INFO, "t", TK_FIELDS(TK_LF_S("out", msg)), "m");
	struct lines ls = read_lines(c.path);
	assert_null(strstr(ls.raw[0], "ghp"));
	assert_non_null(strstr(jstr(ls.v[0], "out"), "[REDACTED]"));
	lines_free(&ls);
	cap_close(&c);
	free(msg);
}

static void test_redact_credential_keys(void **state)
{
	(void)state;
	static const char *const cred[] = {
		"api_key", "APIKEY", "X-Api-Key", "Authorization", "password", "Secret", "token",
		"openai_api_key", "client_secret", "refresh_token", "AWS_SECRET", "x-auth-token",
		"proxy-authorization", "cookie",
	};
	static const char *const plain[] = {
		"tokens_total", "keyboard", "monkey", "key", "secretary", "token_count",
		"passwords_checked", "author",
	};
	size_t nc = sizeof cred / sizeof cred[0], np = sizeof plain / sizeof plain[0];
	struct tk_log_field fs[32];
	size_t n = 0;
	for (size_t i = 0; i < nc; i++)
		fs[n++] = TK_LF_S(cred[i], "hunter2-value");
	for (size_t i = 0; i < np; i++)
		fs[n++] = TK_LF_S(plain[i], "visible");
	fs[n++] = TK_LF_I("session_token", 123456789);
	struct cap c;
	cap_open(&c);
	assert_int_equal(tk_log_ctx_set("upstream_api_key", "ctx-value-1"), 0);
	tk_log_write(TK_LOG_INFO, "t", fs, n, "creds");
	tk_log_ctx_clear_all();
	struct lines ls = read_lines(c.path);
	assert_null(strstr(ls.raw[0], "hunter2"));
	assert_null(strstr(ls.raw[0], "ctx-value-1"));
	assert_null(strstr(ls.raw[0], "123456789"));
	for (size_t i = 0; i < nc; i++) {
		assert_true(tk_log_key_is_credential(cred[i]));
		assert_string_equal(jstr(ls.v[0], cred[i]), "[REDACTED]");
	}
	for (size_t i = 0; i < np; i++) {
		assert_false(tk_log_key_is_credential(plain[i]));
		assert_string_equal(jstr(ls.v[0], plain[i]), "visible");
	}
	assert_string_equal(jstr(ls.v[0], "session_token"), "[REDACTED]");
	assert_string_equal(jstr(ls.v[0], "upstream_api_key"), "[REDACTED]");
	lines_free(&ls);
	cap_close(&c);
}

struct secret_race {
	int id;
	const char *path;
};

static void *add_secrets_while_logging(void *arg)
{
	struct secret_race *r = arg;
	char s[32];
	for (int i = 0; i < 40; i++) {
		snprintf(s, sizeof s, "race-secret-%d-%03d", r->id, i);
		if (tk_log_add_secret(s) != 0)
			return (void *)1;
		tk_log(TK_LOG_INFO, "race", "after adding it: %s", s);
	}
	return NULL;
}

static void test_secrets_added_concurrently(void **state)
{
	(void)state;
	struct cap c;
	cap_open(&c);
	pthread_t th[4];
	struct secret_race r[4];
	for (int i = 0; i < 4; i++) {
		r[i] = (struct secret_race){ i, c.path };
		assert_int_equal(pthread_create(&th[i], NULL, add_secrets_while_logging, &r[i]), 0);
	}
	void *rets[4];
	for (int i = 0; i < 4; i++) /* all joined before any assertion */
		pthread_join(th[i], &rets[i]);
	for (int i = 0; i < 4; i++)
		assert_null(rets[i]);
	struct lines ls = read_lines(c.path);
	assert_int_equal(ls.n, 160);
	for (size_t i = 0; i < ls.n; i++) {
		assert_null(strstr(ls.raw[i], "race-secret-"));
		assert_string_equal(jstr(ls.v[i], "msg"), "after adding it: [REDACTED]");
	}
	lines_free(&ls);
	cap_close(&c);
}

/* ---- levels ------------------------------------------------------------ */

static void test_level_filtering_and_runtime_change(void **state)
{
	(void)state;
	struct cap c;
	cap_open(&c);
	tk_log_set_level(TK_LOG_WARNING);
	assert_int_equal(tk_log_get_level(), TK_LOG_WARNING);
	assert_false(tk_log_enabled(TK_LOG_INFO));
	assert_true(tk_log_enabled(TK_LOG_ERROR));
	uint64_t dbg_before = tk_log_lines_written(TK_LOG_DEBUG);
	tk_log(TK_LOG_DEBUG, "t", "d1");
	tk_log(TK_LOG_INFO, "t", "i1");
	tk_log(TK_LOG_WARNING, "t", "w1");
	tk_log(TK_LOG_ERROR, "t", "e1");
	tk_log_set_level(TK_LOG_DEBUG);
	tk_log(TK_LOG_DEBUG, "t", "d2");
	tk_log_set_level(TK_LOG_CRITICAL);
	tk_log(TK_LOG_ERROR, "t", "e2");
	tk_log(TK_LOG_CRITICAL, "t", "c1");
	tk_log_set_level((enum tk_log_level)99); /* clamped */
	assert_int_equal(tk_log_get_level(), TK_LOG_CRITICAL);
	tk_log_set_level(TK_LOG_DEBUG);
	struct lines ls = read_lines(c.path);
	const char *want[] = { "w1", "e1", "d2", "c1" };
	assert_int_equal(ls.n, 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(jstr(ls.v[i], "msg"), want[i]);
	assert_int_equal(tk_log_lines_written(TK_LOG_DEBUG) - dbg_before, 1);
	lines_free(&ls);
	cap_close(&c);
	assert_int_equal(tk_log_init(NULL, (enum tk_log_level)7), TK_EINVAL);
}

/* ---- context ----------------------------------------------------------- */

static void *log_from_other_thread(void *arg)
{
	(void)arg;
	tk_log(TK_LOG_INFO, "other", "from another thread");
	return NULL;
}

static void test_context_fields(void **state)
{
	(void)state;
	struct cap c;
	cap_open(&c);
	assert_int_equal(tk_log_ctx_set("request_id", "r-1"), 0);
	assert_int_equal(tk_log_ctx_set("task_id", "t-9"), 0);
	tk_logf(TK_LOG_INFO, "srv", TK_FIELDS(TK_LF_I("n", 1)), "one");
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, log_from_other_thread, NULL), 0);
	pthread_join(th, NULL);
	assert_int_equal(tk_log_ctx_set("request_id", "r-2"), 0); /* replaced in place */
	/* A call field with a context key wins over the context value. */
	tk_logf(TK_LOG_INFO, "srv", TK_FIELDS(TK_LF_S("task_id", "t-call"), TK_LF_S("msg", "x")),
		"two");
	assert_int_equal(tk_log_ctx_set("request_id", NULL), 0);
	assert_int_equal(tk_log_ctx_set("never_set", NULL), 0);
	tk_log(TK_LOG_INFO, "srv", "three");
	tk_log_ctx_clear_all();
	tk_log(TK_LOG_INFO, "srv", "four");

	struct lines ls = read_lines(c.path);
	assert_int_equal(ls.n, 5);
	json_t *one = ls.v[0];
	assert_string_equal(jstr(one, "request_id"), "r-1");
	assert_string_equal(jstr(one, "task_id"), "t-9");
	const char *raw = ls.raw[0];
	assert_true(strstr(raw, "\"component\"") < strstr(raw, "\"request_id\""));
	assert_true(strstr(raw, "\"request_id\"") < strstr(raw, "\"task_id\""));
	assert_true(strstr(raw, "\"task_id\"") < strstr(raw, "\"n\""));
	/* The other thread has its own (empty) context. */
	assert_null(json_object_get(ls.v[1], "request_id"));
	assert_null(json_object_get(ls.v[1], "task_id"));
	assert_string_equal(jstr(ls.v[2], "request_id"), "r-2");
	assert_string_equal(jstr(ls.v[2], "task_id"), "t-call");
	assert_string_equal(jstr(ls.v[2], "msg"), "two");
	assert_string_equal(jstr(ls.v[2], "_msg"), "x");
	assert_null(json_object_get(ls.v[3], "request_id"));
	assert_string_equal(jstr(ls.v[3], "task_id"), "t-9");
	assert_null(json_object_get(ls.v[4], "task_id"));
	assert_int_equal(json_object_size(ls.v[4]), 5);
	lines_free(&ls);
	cap_close(&c);
}

static void test_context_limits(void **state)
{
	(void)state;
	char key[16];
	for (int i = 0; i < TK_LOG_CTX_MAX; i++) {
		snprintf(key, sizeof key, "k%d", i);
		assert_int_equal(tk_log_ctx_set(key, "v"), 0);
	}
	assert_int_equal(tk_log_ctx_set("one_too_many", "v"), TK_ELIMIT);
	assert_non_null(strstr(tk_err_detail(), "one_too_many"));
	assert_int_equal(tk_log_ctx_set("k0", "replacing is fine"), 0);
	tk_log_ctx_clear_all();
	assert_int_equal(tk_log_ctx_set("", "v"), TK_EINVAL);
	assert_int_equal(tk_log_ctx_set(NULL, "v"), TK_EINVAL);
	assert_int_equal(tk_log_ctx_set("msg", "v"), TK_EINVAL);
	char longkey[TK_LOG_CTX_KEY_MAX + 2];
	memset(longkey, 'k', sizeof longkey - 1);
	longkey[sizeof longkey - 1] = '\0';
	assert_int_equal(tk_log_ctx_set(longkey, "v"), TK_EINVAL);
	char longval[TK_LOG_CTX_VALUE_MAX + 2];
	memset(longval, 'v', sizeof longval - 1);
	longval[sizeof longval - 1] = '\0';
	assert_int_equal(tk_log_ctx_set("task_id", longval), TK_ELIMIT);
	longval[TK_LOG_CTX_VALUE_MAX] = '\0'; /* exactly at the cap: fine */
	assert_int_equal(tk_log_ctx_set("task_id", longval), 0);
	tk_log_ctx_clear_all();
}

/* ---- concurrency ------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 2000

static char pad[3000]; /* filled before the threads start */

static void *hammer(void *arg)
{
	int id = (int)(intptr_t)arg;
	char ctx[16];
	snprintf(ctx, sizeof ctx, "w%d", id);
	tk_log_ctx_set("worker", ctx);
	/* Lines of different lengths, up to a few kilobytes. */
	for (int i = 0; i < PER_THREAD; i++)
		tk_logf(TK_LOG_INFO, "hammer", TK_FIELDS(TK_LF_I("t", id), TK_LF_I("seq", i)),
			"line %d of %d %.*s", i, id, (i * 37) % 2900, pad);
	tk_log_ctx_clear_all();
	return NULL;
}

static void test_threads_never_interleave(void **state)
{
	(void)state;
	memset(pad, 'p', sizeof pad - 1);
	struct cap c;
	cap_open(&c);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	struct lines ls = read_lines(c.path);
	assert_int_equal(ls.n, THREADS * PER_THREAD);
	static bool seen[THREADS][PER_THREAD];
	memset(seen, 0, sizeof seen);
	for (size_t i = 0; i < ls.n; i++) {
		json_int_t t = json_integer_value(json_object_get(ls.v[i], "t"));
		json_int_t s = json_integer_value(json_object_get(ls.v[i], "seq"));
		assert_true(t >= 0 && t < THREADS && s >= 0 && s < PER_THREAD);
		assert_false(seen[t][s]);
		seen[t][s] = true;
		char want[16];
		snprintf(want, sizeof want, "w%d", (int)t);
		assert_string_equal(jstr(ls.v[i], "worker"), want);
	}
	lines_free(&ls);
	cap_close(&c);
}

/* ---- rotation ---------------------------------------------------------- */

static size_t count_lines_with(const char *path, const char *msg)
{
	struct lines ls = read_lines(path);
	size_t n = 0;
	for (size_t i = 0; i < ls.n; i++)
		n += !strcmp(jstr(ls.v[i], "msg"), msg);
	lines_free(&ls);
	return n;
}

static void test_reopen_after_rename(void **state)
{
	(void)state;
	struct cap c;
	cap_open(&c);
	char rotated[700];
	snprintf(rotated, sizeof rotated, "%s.1", c.path);
	int fd_before = tk_log_fd();
	tk_log(TK_LOG_INFO, "t", "one");
	assert_int_equal(rename(c.path, rotated), 0);
	tk_log(TK_LOG_INFO, "t", "two"); /* still the old (renamed) file */
	assert_int_equal(tk_log_reopen(), 0);
	tk_log(TK_LOG_INFO, "t", "three");
	assert_int_equal(tk_log_fd(), fd_before);
	assert_int_equal(count_lines_with(rotated, "one"), 1);
	assert_int_equal(count_lines_with(rotated, "two"), 1);
	assert_int_equal(count_lines_with(rotated, "three"), 0);
	struct lines ls = read_lines(c.path);
	assert_int_equal(ls.n, 1);
	assert_string_equal(jstr(ls.v[0], "msg"), "three");
	lines_free(&ls);
	/* The new file has mode 0640 (under a umask that allows it). */
	struct stat st;
	assert_int_equal(stat(c.path, &st), 0);
	assert_int_equal(st.st_mode & 0137, 0);
	/* Reopen fails while the directory is gone: error, old fd kept. */
	char moved[700];
	snprintf(moved, sizeof moved, "%s-moved", c.dir);
	assert_int_equal(rename(c.dir, moved), 0);
	assert_int_equal(tk_log_reopen(), TK_EIO);
	assert_non_null(strstr(tk_err_detail(), "tanuki.log"));
	tk_log(TK_LOG_INFO, "t", "four");
	assert_int_equal(rename(moved, c.dir), 0);
	assert_int_equal(count_lines_with(c.path, "four"), 1);
	cap_close(&c);
}

static void test_sighup_reopens(void **state)
{
	(void)state;
	struct cap c;
	cap_open(&c);
	assert_int_equal(tk_log_watch_sighup(), 0);
	char rotated[700];
	snprintf(rotated, sizeof rotated, "%s.1", c.path);
	tk_log(TK_LOG_INFO, "t", "before");
	assert_int_equal(rename(c.path, rotated), 0);
	assert_int_equal(raise(SIGHUP), 0); /* the handler only sets a flag */
	/* The file is not reopened by the signal itself... */
	assert_int_equal(access(c.path, F_OK), -1);
	/* ...but by the next line. */
	tk_log(TK_LOG_INFO, "t", "after");
	assert_int_equal(count_lines_with(rotated, "before"), 1);
	assert_int_equal(count_lines_with(rotated, "after"), 0);
	assert_int_equal(count_lines_with(c.path, "after"), 1);
	signal(SIGHUP, SIG_DFL);
	cap_close(&c);
}

/* ---- destinations and failures ----------------------------------------- */

static void child_logs_to_stderr(void *arg)
{
	(void)arg;
	tk_log_shutdown(); /* back to stderr, as before any tk_log_init */
	tk_log_set_level(TK_LOG_INFO);
	tk_log(TK_LOG_DEBUG, "child", "hidden");
	tk_log(TK_LOG_INFO, "child", "on stderr %d", 42);
	tk_log_set_level(TK_LOG_DEBUG);
}

static void test_stderr_destination(void **state)
{
	(void)state;
	char dir[512], err[600];
	tk_test_mkdtemp(dir, sizeof dir);
	int st = tk_test_run_child(child_logs_to_stderr, NULL, dir);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(err, sizeof err, "%s/stderr", dir);
	struct lines ls = read_lines(err);
	assert_int_equal(ls.n, 1);
	assert_string_equal(jstr(ls.v[0], "msg"), "on stderr 42");
	lines_free(&ls);
	tk_test_rmtree(dir);
}

static void test_init_errors_and_write_failures(void **state)
{
	(void)state;
	assert_int_equal(tk_log_init("/nonexistent-dir/x/tanuki.log", TK_LOG_INFO), TK_EIO);
	assert_non_null(strstr(tk_err_detail(), "/nonexistent-dir/x/tanuki.log"));
	assert_int_equal(tk_log_fd(), 2);
	/* /dev/full fails every write with ENOSPC: lines are counted as
	 * dropped, the caller's errno is untouched, nothing crashes. */
	if (access("/dev/full", W_OK) == 0) {
		assert_int_equal(tk_log_init("/dev/full", TK_LOG_DEBUG), 0);
		uint64_t before = tk_log_lines_dropped();
		errno = 4242;
		tk_log(TK_LOG_ERROR, "t", "into the void");
		assert_int_equal(errno, 4242);
		assert_int_equal(tk_log_lines_dropped() - before, 1);
		tk_log_shutdown();
	}
	assert_int_equal(tk_log_fd(), 2);
}

static void test_errno_preserved_and_percent_m(void **state)
{
	(void)state;
	struct cap c;
	cap_open(&c);
	errno = ENOENT;
	tk_log(TK_LOG_INFO, "t", "open failed: %m");
	assert_int_equal(errno, ENOENT);
	tk_log_write(TK_LOG_INFO, NULL, NULL, 3, NULL); /* NULLs are tolerated */
	struct lines ls = read_lines(c.path);
	assert_string_equal(jstr(ls.v[0], "msg"), "open failed: No such file or directory");
	assert_string_equal(jstr(ls.v[1], "msg"), "");
	assert_string_equal(jstr(ls.v[1], "component"), "");
	lines_free(&ls);
	cap_close(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_format),
		cmocka_unit_test(test_every_level_name),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_escape_controls_quotes),
		cmocka_unit_test(test_escape_in_fields_keys_component),
		cmocka_unit_test(test_invalid_utf8_replaced),
		cmocka_unit_test(test_valid_utf8_kept),
		cmocka_unit_test(test_random_valid_text_roundtrips),
		cmocka_unit_test(test_random_bytes_always_valid),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_redact_secret_values),
		cmocka_unit_test(test_redact_secret_with_json_chars_and_overlap),
		cmocka_unit_test(test_redact_secret_across_truncation),
		cmocka_unit_test(test_redact_credential_keys),
		cmocka_unit_test(test_secrets_added_concurrently),
		cmocka_unit_test(test_level_filtering_and_runtime_change),
		cmocka_unit_test(test_context_fields),
		cmocka_unit_test(test_context_limits),
		cmocka_unit_test(test_threads_never_interleave),
		cmocka_unit_test(test_reopen_after_rename),
		cmocka_unit_test(test_sighup_reopens),
		cmocka_unit_test(test_stderr_destination),
		cmocka_unit_test(test_init_errors_and_write_failures),
		cmocka_unit_test(test_errno_preserved_and_percent_m),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
