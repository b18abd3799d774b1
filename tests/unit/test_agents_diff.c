/*
 * test_agents_diff.c — agent_diff_unified (src/agents/diff.c) against the
 * system's `diff -u` (GNU diffutils) on generated file pairs, plus the edge
 * cases: added/deleted files, missing final newlines, binary, identical
 * texts, the output cap.
 *
 * Two kinds of generated pairs:
 *  - distinct lines with random deletions, insertions and replacements
 *    (with and without a final newline): the minimal edit is unique, so our
 *    output must equal `diff -u`'s byte for byte after the two header lines;
 *  - lines drawn from a small vocabulary ("}", blank, "return 0;", ...) as
 *    in real code, where several minimal diffs exist and GNU diff's choice
 *    comes from its own heuristics: there every diff of ours must apply
 *    (hunk by hunk, with its header counts checked) to turn the old text
 *    into the new one and be no longer than `diff -u`'s (it is minimal);
 *    how often the bytes match exactly is printed, not asserted.
 */
#include "testutil.h"

#include "agents/tools.h"
#include "core/buf.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_dir[512];
static uint32_t g_max_lines = 60;

static int setup(void **state)
{
	(void)state;
	tk_test_mkdtemp(g_dir, sizeof g_dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tk_test_rmtree(g_dir);
	return 0;
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return (uint32_t)(g_rng % n);
}

static char *diff_str(const char *path, const char *a, const char *b)
{
	struct tk_buf out = TK_BUF_INIT(1 << 24);
	assert_int_equal(agent_diff_unified(path, a, a ? strlen(a) : 0, b, b ? strlen(b) : 0,
					    &out),
			 0);
	return tk_buf_detach(&out, NULL);
}

/* ---- fixed cases ------------------------------------------------------- */

static void test_identical_and_headers(void **state)
{
	(void)state;
	char *d = diff_str("x.c", "a\nb\n", "a\nb\n");
	assert_string_equal(d, "");
	free(d);
	d = diff_str("x.c", "a\n", "b\n");
	assert_string_equal(d, "--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n");
	free(d);
	d = diff_str("new.txt", NULL, "one\ntwo\n");
	assert_string_equal(d, "--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1,2 @@\n+one\n+two\n");
	free(d);
	d = diff_str("old.txt", "one\n", NULL);
	assert_string_equal(d, "--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-one\n");
	free(d);
}

static void test_no_newline(void **state)
{
	(void)state;
	char *d = diff_str("f", "a\nb", "a\nb\n");
	assert_string_equal(d, "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n"
			       "\\ No newline at end of file\n+b\n");
	free(d);
	d = diff_str("f", "a\nb", "x\nb");
	assert_string_equal(d, "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a\n+x\n b\n"
			       "\\ No newline at end of file\n");
	free(d);
}

static void test_binary_and_cap(void **state)
{
	(void)state;
	struct tk_buf out = TK_BUF_INIT(64);
	const char bin[] = { 'a', 0, 'b' };
	assert_int_equal(agent_diff_unified("b.bin", bin, 3, "ab", 2, &out), 0);
	assert_string_equal(tk_buf_str(&out), "Binary files a/b.bin and b/b.bin differ\n");
	tk_buf_reset(&out);
	assert_int_equal(agent_diff_unified("b.bin", bin, 3, bin, 3, &out), 0);
	assert_int_equal(out.len, 0);
	/* Over the cap: an error, and out is left as it was. */
	assert_int_equal(tk_buf_puts(&out, "keep"), 0);
	char big[400];
	memset(big, 'x', sizeof big - 2);
	big[sizeof big - 2] = '\n';
	big[sizeof big - 1] = '\0';
	assert_int_equal(agent_diff_unified("c", "a\n", 2, big, strlen(big), &out), TK_ELIMIT);
	assert_string_equal(tk_buf_str(&out), "keep");
	tk_buf_free(&out);
}

/* ---- generated pairs --------------------------------------------------- */

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(s, 1, strlen(s), f), strlen(s));
	assert_int_equal(fclose(f), 0);
}

/* `diff -u` of the two texts without its two header lines. */
static char *gnu_diff(const char *a, const char *b)
{
	char pa[600], pb[600], po[600], cmd[2048];
	snprintf(pa, sizeof pa, "%s/old", g_dir);
	snprintf(pb, sizeof pb, "%s/new", g_dir);
	snprintf(po, sizeof po, "%s/out", g_dir);
	write_file(pa, a);
	write_file(pb, b);
	snprintf(cmd, sizeof cmd, "diff -u '%s' '%s' > '%s'", pa, pb, po);
	int st = system(cmd);
	assert_true(st != -1);
	char *out = tk_test_read_file(po, NULL);
	char *p = out;
	for (int i = 0; i < 2 && *p; i++) {
		char *nl = strchr(p, '\n');
		assert_non_null(nl);
		p = nl + 1;
	}
	char *r = strdup(p);
	free(out);
	return r;
}

static const char *skip_headers(const char *d)
{
	for (int i = 0; i < 2 && *d; i++) {
		const char *nl = strchr(d, '\n');
		assert_non_null(nl);
		d = nl + 1;
	}
	return d;
}

struct lines {
	const char **p;
	size_t *n;
	size_t count;
};

static struct lines split(const char *s)
{
	struct lines l = { NULL, NULL, 0 };
	size_t cap = 1;
	for (const char *c = s; *c; c++)
		cap += *c == '\n';
	l.p = calloc(cap, sizeof *l.p);
	l.n = calloc(cap, sizeof *l.n);
	assert_non_null(l.p);
	assert_non_null(l.n);
	const char *start = s;
	for (const char *c = s;; c++) {
		if (*c == '\n' || (!*c && c > start)) {
			l.p[l.count] = start;
			l.n[l.count++] = (size_t)(c - start) + (*c == '\n');
			if (!*c)
				break;
			start = c + 1;
		}
		if (!*c)
			break;
	}
	return l;
}

/* Applies a unified diff to old and checks it gives new; returns the
 * number of '-' and '+' lines. Each hunk's header counts are checked. */
static size_t apply_check(const char *old, const char *diff, const char *expect)
{
	struct lines o = split(old);
	struct tk_buf res = TK_BUF_INIT(1 << 24);
	const char *d = skip_headers(diff);
	size_t cur = 0, changes = 0;
	while (*d) {
		unsigned long a, b = 1, c, e = 1;
		assert_true(!strncmp(d, "@@ -", 4));
		const char *q = d + 4;
		char *end;
		a = strtoul(q, &end, 10);
		if (*end == ',')
			b = strtoul(end + 1, &end, 10);
		assert_true(!strncmp(end, " +", 2));
		c = strtoul(end + 2, &end, 10);
		if (*end == ',')
			e = strtoul(end + 1, &end, 10);
		(void)c;
		assert_true(!strncmp(end, " @@\n", 4));
		d = end + 4;
		size_t start = b ? a - 1 : a;
		assert_true(start >= cur && start <= o.count);
		for (; cur < start; cur++)
			assert_int_equal(tk_buf_append(&res, o.p[cur], o.n[cur]), 0);
		unsigned long seen_old = 0, seen_new = 0;
		while (*d && *d != '@') {
			char tag = *d;
			const char *nl = strchr(d, '\n');
			assert_non_null(nl);
			const char *content = d + 1;
			size_t len = (size_t)(nl + 1 - content);
			d = nl + 1;
			if (!strncmp(d, "\\ No newline at end of file\n", 28)) {
				len--;
				d += 28;
			}
			if (tag == ' ' || tag == '-') {
				assert_true(cur < o.count);
				assert_int_equal(o.n[cur], len);
				assert_memory_equal(o.p[cur], content, len);
				cur++;
				seen_old++;
			}
			if (tag == ' ' || tag == '+') {
				assert_int_equal(tk_buf_append(&res, content, len), 0);
				seen_new++;
			}
			if (tag != ' ')
				changes++;
			assert_true(tag == ' ' || tag == '-' || tag == '+');
		}
		assert_int_equal(seen_old, b);
		assert_int_equal(seen_new, e);
	}
	for (; cur < o.count; cur++)
		assert_int_equal(tk_buf_append(&res, o.p[cur], o.n[cur]), 0);
	assert_string_equal(tk_buf_str(&res), expect);
	tk_buf_free(&res);
	free(o.p);
	free(o.n);
	return changes;
}

static size_t count_changes(const char *hunks)
{
	size_t n = 0;
	for (const char *p = hunks; *p;) {
		if ((*p == '-' || *p == '+'))
			n++;
		const char *nl = strchr(p, '\n');
		if (!nl)
			break;
		p = nl + 1;
	}
	return n;
}

static const char *const vocab[] = { "}\n", "\n", "\treturn 0;\n", "{\n", "\ti++;\n",
				     "#include <stdio.h>\n", "\tbreak;\n" };

/* A random text of n lines; repeats: draw most lines from vocab. */
static void gen_old(struct tk_buf *b, size_t n, bool repeats, unsigned *uniq)
{
	for (size_t i = 0; i < n; i++) {
		if (repeats && rnd(3))
			tk_buf_puts(b, vocab[rnd(sizeof vocab / sizeof vocab[0])]);
		else
			tk_buf_printf(b, "line %u of the old text\n", (*uniq)++);
	}
}

/* The new text: old with random edits (runs of deletions, insertions and
 * replacements); lines inserted are fresh (or vocab, with repeats). */
static void gen_new(const char *old, struct tk_buf *b, bool repeats, unsigned *uniq)
{
	struct lines o = split(old);
	size_t i = 0;
	while (i < o.count || rnd(8) == 0) {
		uint32_t r = rnd(10);
		if (r == 0 && i < o.count) { /* delete a run */
			i += 1 + rnd(3);
		} else if (r == 1) {          /* insert a run */
			for (uint32_t k = 1 + rnd(3); k; k--) {
				if (repeats && rnd(2))
					tk_buf_puts(b, vocab[rnd(sizeof vocab / sizeof vocab[0])]);
				else
					tk_buf_printf(b, "new line %u\n", (*uniq)++);
			}
		} else if (r == 2 && i < o.count) { /* replace one */
			tk_buf_printf(b, "changed line %u\n", (*uniq)++);
			i++;
		} else if (i < o.count) {
			tk_buf_append(b, o.p[i], o.n[i]);
			i++;
		} else {
			break;
		}
		if (i > o.count)
			i = o.count;
	}
	free(o.p);
	free(o.n);
}

static void strip_final_newline(struct tk_buf *b)
{
	if (b->len && b->data[b->len - 1] == '\n')
		tk_buf_truncate(b, b->len - 1);
}

static void run_pairs(int pairs, bool repeats, int *exact, int *differing)
{
	unsigned uniq = 0;
	*exact = *differing = 0;
	for (int t = 0; t < pairs; t++) {
		struct tk_buf a = TK_BUF_INIT(1 << 20), b = TK_BUF_INIT(1 << 20);
		gen_old(&a, rnd(g_max_lines), repeats, &uniq);
		gen_new(tk_buf_str(&a), &b, repeats, &uniq);
		if (rnd(5) == 0)
			strip_final_newline(&a);
		if (rnd(5) == 0)
			strip_final_newline(&b);
		const char *sa = tk_buf_str(&a), *sb = tk_buf_str(&b);
		char *mine = diff_str("p", sa, sb);
		char *gnu = gnu_diff(sa, sb);
		if (!strcmp(sa, sb)) {
			assert_string_equal(mine, "");
		} else {
			assert_true(!strncmp(mine, "--- a/p\n+++ b/p\n", 16));
			size_t n = apply_check(sa, mine, sb);
			assert_int_equal(n, count_changes(skip_headers(mine)));
			if (!repeats) {
				if (strcmp(skip_headers(mine), gnu))
					fprintf(stderr, "pair %d differs:\n--- old\n%s\n--- new\n%s\n"
						"--- ours\n%s\n--- diff -u\n%s\n", t, sa, sb, mine, gnu);
				assert_string_equal(skip_headers(mine), gnu);
			} else {
				/* several minimal diffs exist: ours must be minimal
				 * too, and (same tie-breaking) the same */
				assert_true(n <= count_changes(gnu));
				if (strcmp(skip_headers(mine), gnu) && (g_max_lines == 60 ||
									getenv("TK_DIFF_SHOW")))
					fprintf(stderr, "pair %d differs:\n--- old\n%s\n--- new\n%s\n"
						"--- ours\n%s\n--- diff -u\n%s\n", t, sa, sb, mine,
						gnu);
				if (g_max_lines == 60)
					assert_string_equal(skip_headers(mine), gnu);
			}
			*exact += !strcmp(skip_headers(mine), gnu);
			++*differing;
		}
		free(mine);
		free(gnu);
		tk_buf_free(&a);
		tk_buf_free(&b);
	}
}

static void test_random_distinct_lines(void **state)
{
	(void)state;
	int exact, n;
	run_pairs(250, false, &exact, &n);
	assert_true(n > 200);
	fprintf(stderr, "distinct lines: %d/%d differing pairs byte-identical to diff -u\n",
		exact, n);
}

static void test_random_repeated_lines(void **state)
{
	(void)state;
	int exact, n;
	if (getenv("TK_DIFF_PAIRS")) { /* exploration: more and longer pairs */
		g_max_lines = 400;
		run_pairs(atoi(getenv("TK_DIFF_PAIRS")), true, &exact, &n);
		fprintf(stderr, "long: %d/%d\n", exact, n);
		g_max_lines = 60;
	}
	run_pairs(250, true, &exact, &n);
	assert_true(n > 200);
	fprintf(stderr, "repeated lines: %d/%d differing pairs byte-identical to diff -u (all "
			"apply and are minimal)\n", exact, n);
}

/* A whole rewrite of a big file stays fast and correct (lines found on one
 * side only never reach the O(ND) search). */
static void test_large_rewrite(void **state)
{
	(void)state;
	struct tk_buf a = TK_BUF_INIT(1 << 22), b = TK_BUF_INIT(1 << 22);
	for (int i = 0; i < 20000; i++) {
		tk_buf_printf(&a, "old %d\n", i);
		tk_buf_printf(&b, i % 1000 ? "new %d\n" : "old %d\n", i);
	}
	char *d = diff_str("big", tk_buf_str(&a), tk_buf_str(&b));
	size_t n = apply_check(tk_buf_str(&a), d, tk_buf_str(&b));
	assert_int_equal(n, 2 * (20000 - 20));
	free(d);
	tk_buf_free(&a);
	tk_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identical_and_headers),
		cmocka_unit_test(test_no_newline),
		cmocka_unit_test(test_binary_and_cap),
		cmocka_unit_test(test_random_distinct_lines),
		cmocka_unit_test(test_random_repeated_lines),
		cmocka_unit_test(test_large_rewrite),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
