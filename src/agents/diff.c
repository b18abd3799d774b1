/*
 * diff.c — agent_diff_unified (tools.h): a unified diff of two texts, in
 * the format of `diff -u` (3 lines of context, hunks merged when at most 6
 * unchanged lines separate them, "\ No newline at end of file"), with
 * "--- a/PATH" / "+++ b/PATH" headers and no timestamps.
 *
 * The algorithm: lines are interned to integers; lines that occur only on
 * one side are changes for certain and are set aside (no common subsequence
 * can use them, so the result stays minimal); what is left goes through
 * Myers' O(ND) algorithm in its linear-space form (the "middle snake",
 * divide and conquer: E. Myers, "An O(ND) Difference Algorithm and Its
 * Variations", 1986). The work is bounded: past DIFF_EFFORT_MAX steps the
 * remaining region is reported as deleted and inserted whole (correct, not
 * minimal). Where several minimal diffs exist (repeated lines such as "}"
 * or blank lines), the choice follows GNU diff's: the same furthest-reaching
 * tie-breaking, diagonals scanned in the same order, the split made at the
 * same end of the middle snake, and runs of changes shifted over equal lines
 * the same way (as far down as they go, then back up to meet a change of
 * the other file). On generated files with repeated lines the output is
 * byte-identical to `diff -u`'s (tests/unit/test_agents_diff.c); on long
 * ones GNU diff's "confusing lines" heuristic sometimes gives a longer,
 * non-minimal diff where ours stays minimal.
 *
 * Owns nothing beyond the call; pure function, any thread.
 */
#include "agents/tools.h"

#include "core/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DIFF_CONTEXT 3
#define DIFF_EFFORT_MAX 50000000ull /* diagonal and snake steps per call */

struct dline {
	const char *p;
	size_t n;     /* bytes, the '\n' included when there is one */
	uint32_t id;  /* equal lines, equal ids */
};

struct intern {
	struct { const char *p; size_t n; uint64_t h; uint32_t id; bool used; } *slot;
	size_t mask;
	uint32_t next_id;
};

static uint64_t hash_bytes(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ull;
	}
	return h;
}

static uint32_t intern_id(struct intern *t, const char *p, size_t n)
{
	uint64_t h = hash_bytes(p, n);
	for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
		if (!t->slot[i].used) {
			t->slot[i].used = true;
			t->slot[i].p = p;
			t->slot[i].n = n;
			t->slot[i].h = h;
			t->slot[i].id = t->next_id++;
			return t->slot[i].id;
		}
		if (t->slot[i].h == h && t->slot[i].n == n && !memcmp(t->slot[i].p, p, n))
			return t->slot[i].id;
	}
}

static size_t count_lines(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += s[i] == '\n';
	return k + (n && s[n - 1] != '\n');
}

static void split(const char *s, size_t n, struct dline *v, struct intern *t)
{
	size_t k = 0, start = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' || i + 1 == n) {
			v[k].p = s + start;
			v[k].n = i + 1 - start;
			v[k].id = intern_id(t, v[k].p, v[k].n);
			k++;
			start = i + 1;
		}
	}
}

/* ---- Myers, linear space ------------------------------------------------ */

struct myers {
	const uint32_t *a, *b; /* the sequences (reduced: only lines on both sides) */
	char *da, *ib;         /* out: a[i] deleted, b[j] inserted */
	long *vf, *vb;         /* furthest x per diagonal, forward and backward */
	long off;              /* index of diagonal 0 in vf/vb */
	uint64_t effort;       /* steps left */
};

/* Finds the middle snake of a[a0..a1) x b[b0..b1) (neither empty, first
 * and last elements differing): the snake from (*xs,*ys) to (*xe,*ye), in
 * coordinates relative to (a0,b0). false when the effort budget ran out. */
static bool middle_snake(struct myers *m, long a0, long a1, long b0, long b1, long *xs,
			 long *ys, long *xe, long *ye, bool *fwd)
{
	const uint32_t *a = m->a + a0, *b = m->b + b0;
	long N = a1 - a0, M = b1 - b0, delta = N - M;
	long dmax = (N + M + 1) / 2;
	long *vf = m->vf + m->off, *vb = m->vb + m->off;
	vf[1] = 0;
	vb[1] = 0;
	for (long d = 0; d <= dmax; d++) {
		if (m->effort < (uint64_t)(2 * d + 2))
			return false;
		m->effort -= (uint64_t)(2 * d + 2);
		for (long k = d; k >= -d; k -= 2) {
			long x = (k == -d || (k != d && vf[k - 1] < vf[k + 1])) ? vf[k + 1]
									     : vf[k - 1] + 1;
			long y = x - k, sx = x, sy = y;
			while (x < N && y < M && a[x] == b[y]) {
				x++;
				y++;
			}
			m->effort -= m->effort > (uint64_t)(x - sx) ? (uint64_t)(x - sx) : m->effort;
			vf[k] = x;
			long c = delta - k; /* the same diagonal, backward */
			if ((delta & 1) && c >= -(d - 1) && c <= d - 1 && x >= N - vb[c]) {
				*xs = sx;
				*ys = sy;
				*xe = x;
				*ye = y;
				*fwd = true;
				return true;
			}
		}
		for (long k = -d; k <= d; k += 2) {
			long x = (k == -d || (k != d && vb[k - 1] < vb[k + 1])) ? vb[k + 1]
									     : vb[k - 1] + 1;
			long y = x - k, sx = x;
			while (x < N && y < M && a[N - 1 - x] == b[M - 1 - y]) {
				x++;
				y++;
			}
			m->effort -= m->effort > (uint64_t)(x - sx) ? (uint64_t)(x - sx) : m->effort;
			vb[k] = x;
			long c = delta - k;
			if (!(delta & 1) && c >= -d && c <= d && vf[c] >= N - x) {
				*xs = N - x;
				*ys = M - y;
				*xe = N - sx;
				*ye = M - (sx - k);
				return true;
			}
		}
	}
	return false; /* not reached for a valid problem */
}

static void mark_all(struct myers *m, long a0, long a1, long b0, long b1)
{
	for (long i = a0; i < a1; i++)
		m->da[i] = 1;
	for (long j = b0; j < b1; j++)
		m->ib[j] = 1;
}

static void compare(struct myers *m, long a0, long a1, long b0, long b1)
{
	for (;;) {
		while (a0 < a1 && b0 < b1 && m->a[a0] == m->b[b0]) {
			a0++;
			b0++;
		}
		while (a0 < a1 && b0 < b1 && m->a[a1 - 1] == m->b[b1 - 1]) {
			a1--;
			b1--;
		}
		if (a0 == a1 || b0 == b1) {
			mark_all(m, a0, a1, b0, b1);
			return;
		}
		long xs, ys, xe, ye;
		bool fwd = false;
		if (!middle_snake(m, a0, a1, b0, b1, &xs, &ys, &xe, &ye, &fwd) ||
		    (xs == a1 - a0 && ys == b1 - b0) || (xe == 0 && ye == 0)) {
			/* Out of effort (or no progress, which a correct snake
			 * never gives): the region is replaced whole. */
			mark_all(m, a0, a1, b0, b1);
			return;
		}
		/* Split where GNU diff does: at the end of a forward snake, at
		 * the start of a backward one; the snake itself is then common
		 * suffix or prefix of a half (ties between equal lines resolve
		 * the same way as there). */
		long xm = fwd ? xe : xs, ym = fwd ? ye : ys;
		if ((xm == a1 - a0 && ym == b1 - b0) || (xm == 0 && ym == 0)) {
			xm = xs;
			ym = ys;
		}
		compare(m, a0, a0 + xm, b0, b0 + ym);
		a0 += xm;
		b0 += ym;
	}
}

/* ---- sliding runs over equal lines ------------------------------------- */

/* A run of changed lines in v (flags ch, n lines) may move by one line
 * when the line it would take in equals the line it would give up: the
 * same edit, reported elsewhere. Like GNU diff, each run is first moved up
 * as far as it goes (joining earlier runs), then down as far as it goes
 * (joining later ones), repeated while it grows; then it is moved back up
 * to the lowest place where it sits next to a run of changes of the other
 * file (flags och, m lines), so that deletions and insertions meet in one
 * block. j tracks the other file's line paired with v[i], the first
 * unchanged line after the run. */
static bool changed_at(const char *ch, long n, long k)
{
	return k >= 0 && k < n && ch[k];
}

static void shift_runs(const struct dline *v, char *ch, long n, const char *och, long m)
{
	long i = 0, j = 0;
	for (;;) {
		while (i < n && !ch[i]) { /* an unchanged line and its partner */
			while (changed_at(och, m, j))
				j++;
			i++;
			j++;
		}
		if (i >= n)
			break;
		long start = i;
		while (changed_at(ch, n, i))
			i++;
		while (changed_at(och, m, j))
			j++;
		long len, corr;
		do {
			len = i - start;
			while (start > 0 && v[start - 1].id == v[i - 1].id) {
				ch[--start] = 1;
				ch[--i] = 0;
				while (changed_at(ch, n, start - 1))
					start--;
				do
					j--;
				while (changed_at(och, m, j));
			}
			corr = changed_at(och, m, j - 1) ? i : n;
			while (i < n && v[start].id == v[i].id) {
				ch[start++] = 0;
				ch[i++] = 1;
				while (changed_at(ch, n, i))
					i++;
				j++;
				while (changed_at(och, m, j)) {
					j++;
					corr = i;
				}
			}
		} while (len != i - start);
		while (corr < i) {
			ch[--start] = 1;
			ch[--i] = 0;
			do
				j--;
			while (changed_at(och, m, j));
		}
	}
}

/* ---- output ------------------------------------------------------------ */

static int put_line(struct tk_buf *out, char tag, const struct dline *l)
{
	int rc = tk_buf_putc(out, tag);
	if (!rc)
		rc = tk_buf_append(out, l->p, l->n);
	if (!rc && (l->n == 0 || l->p[l->n - 1] != '\n'))
		rc = tk_buf_puts(out, "\n\\ No newline at end of file\n");
	return rc;
}

static int put_range(struct tk_buf *out, char sign, size_t start, size_t count)
{
	if (count == 1)
		return tk_buf_printf(out, "%c%zu", sign, start + 1);
	return tk_buf_printf(out, "%c%zu,%zu", sign, count ? start + 1 : start, count);
}

struct block {
	size_t a0, a1, b0, b1;
};

static int emit(struct tk_buf *out, const struct dline *A, size_t na, const struct dline *B,
		const struct block *bl, size_t nbl)
{
	int rc = 0;
	size_t h = 0;
	while (h < nbl && !rc) {
		size_t last = h;
		while (last + 1 < nbl && bl[last + 1].a0 - bl[last].a1 <= 2 * DIFF_CONTEXT)
			last++;
		size_t as = bl[h].a0 > DIFF_CONTEXT ? bl[h].a0 - DIFF_CONTEXT : 0;
		size_t ae = bl[last].a1 + DIFF_CONTEXT < na ? bl[last].a1 + DIFF_CONTEXT : na;
		size_t bs = bl[h].b0 - (bl[h].a0 - as);
		size_t be = bl[last].b1 + (ae - bl[last].a1);
		rc = tk_buf_puts(out, "@@ ");
		if (!rc)
			rc = put_range(out, '-', as, ae - as);
		if (!rc)
			rc = tk_buf_putc(out, ' ');
		if (!rc)
			rc = put_range(out, '+', bs, be - bs);
		if (!rc)
			rc = tk_buf_puts(out, " @@\n");
		size_t i = as;
		for (size_t k = h; k <= last && !rc; k++) {
			for (; i < bl[k].a0 && !rc; i++)
				rc = put_line(out, ' ', &A[i]);
			for (i = bl[k].a0; i < bl[k].a1 && !rc; i++)
				rc = put_line(out, '-', &A[i]);
			for (size_t j = bl[k].b0; j < bl[k].b1 && !rc; j++)
				rc = put_line(out, '+', &B[j]);
		}
		for (; i < ae && !rc; i++)
			rc = put_line(out, ' ', &A[i]);
		h = last + 1;
	}
	return rc;
}

static int header(struct tk_buf *out, const char *path, bool has_old, bool has_new)
{
	int rc = has_old ? tk_buf_printf(out, "--- a/%s\n", path) : tk_buf_puts(out, "--- /dev/null\n");
	if (!rc)
		rc = has_new ? tk_buf_printf(out, "+++ b/%s\n", path)
			     : tk_buf_puts(out, "+++ /dev/null\n");
	return rc;
}

int agent_diff_unified(const char *path, const char *old_text, size_t old_len,
		       const char *new_text, size_t new_len, struct tk_buf *out)
{
	if (!path || !out || (!old_text && old_len) || (!new_text && new_len))
		return tk_errf(TK_EINVAL, "diff: bad arguments");
	bool has_old = old_text != NULL, has_new = new_text != NULL;
	if (!has_old)
		old_text = "";
	if (!has_new)
		new_text = "";
	if (has_old == has_new && old_len == new_len && !memcmp(old_text, new_text, old_len))
		return 0;
	size_t start = out->len;
	int rc = 0;
	if (memchr(old_text, 0, old_len) || memchr(new_text, 0, new_len)) {
		if (old_len == new_len && !memcmp(old_text, new_text, old_len))
			return 0;
		rc = tk_buf_printf(out, "Binary files %s%s and %s%s differ\n",
				   has_old ? "a/" : "/dev/null", has_old ? path : "",
				   has_new ? "b/" : "/dev/null", has_new ? path : "");
		if (rc)
			tk_buf_truncate(out, start);
		return rc;
	}
	size_t na = count_lines(old_text, old_len), nb = count_lines(new_text, new_len);
	struct dline *A = NULL, *B = NULL;
	struct intern t = { NULL, 0, 0 };
	uint32_t *ra = NULL, *rb = NULL;
	size_t *ma = NULL, *mb = NULL;
	char *da = NULL, *ib = NULL, *rda = NULL, *rib = NULL;
	long *vf = NULL, *vb = NULL;
	uint32_t *cnt_a = NULL, *cnt_b = NULL;
	struct block *bl = NULL;

	size_t tsize = 16;
	while (tsize < 2 * (na + nb) + 2)
		tsize <<= 1;
	A = calloc(na + 1, sizeof *A);
	B = calloc(nb + 1, sizeof *B);
	t.slot = calloc(tsize, sizeof *t.slot);
	t.mask = tsize - 1;
	da = calloc(na + 1, 1);
	ib = calloc(nb + 1, 1);
	if (!A || !B || !t.slot || !da || !ib)
		goto nomem;
	split(old_text, old_len, A, &t);
	split(new_text, new_len, B, &t);

	/* Lines found on one side only are changes; the rest is compared. */
	cnt_a = calloc(t.next_id + 1, sizeof *cnt_a);
	cnt_b = calloc(t.next_id + 1, sizeof *cnt_b);
	ra = malloc((na + 1) * sizeof *ra);
	rb = malloc((nb + 1) * sizeof *rb);
	ma = malloc((na + 1) * sizeof *ma);
	mb = malloc((nb + 1) * sizeof *mb);
	rda = calloc(na + 1, 1);
	rib = calloc(nb + 1, 1);
	if (!cnt_a || !cnt_b || !ra || !rb || !ma || !mb || !rda || !rib)
		goto nomem;
	for (size_t i = 0; i < na; i++)
		cnt_a[A[i].id]++;
	for (size_t j = 0; j < nb; j++)
		cnt_b[B[j].id]++;
	size_t n_ra = 0, n_rb = 0;
	for (size_t i = 0; i < na; i++) {
		if (cnt_b[A[i].id]) {
			ra[n_ra] = A[i].id;
			ma[n_ra++] = i;
		} else {
			da[i] = 1;
		}
	}
	for (size_t j = 0; j < nb; j++) {
		if (cnt_a[B[j].id]) {
			rb[n_rb] = B[j].id;
			mb[n_rb++] = j;
		} else {
			ib[j] = 1;
		}
	}
	long off = (long)(n_ra + n_rb) / 2 + 3;
	vf = malloc((size_t)(2 * off + 1) * sizeof *vf);
	vb = malloc((size_t)(2 * off + 1) * sizeof *vb);
	if (!vf || !vb)
		goto nomem;
	struct myers m = { ra, rb, rda, rib, vf, vb, off, DIFF_EFFORT_MAX };
	compare(&m, 0, (long)n_ra, 0, (long)n_rb);
	for (size_t i = 0; i < n_ra; i++)
		if (rda[i])
			da[ma[i]] = 1;
	for (size_t j = 0; j < n_rb; j++)
		if (rib[j])
			ib[mb[j]] = 1;
	shift_runs(A, da, (long)na, ib, (long)nb);
	shift_runs(B, ib, (long)nb, da, (long)na);

	/* Blocks of changes between matched lines. */
	size_t nbl = 0, capbl = 16;
	bl = malloc(capbl * sizeof *bl);
	if (!bl)
		goto nomem;
	for (size_t i = 0, j = 0; i < na || j < nb;) {
		if ((i < na && da[i]) || (j < nb && ib[j])) {
			struct block k = { i, i, j, j };
			while (k.a1 < na && da[k.a1])
				k.a1++;
			while (k.b1 < nb && ib[k.b1])
				k.b1++;
			if (nbl == capbl) {
				struct block *nbv = realloc(bl, 2 * capbl * sizeof *bl);
				if (!nbv)
					goto nomem;
				bl = nbv;
				capbl *= 2;
			}
			bl[nbl++] = k;
			i = k.a1;
			j = k.b1;
		} else {
			i++;
			j++;
		}
	}
	rc = header(out, path, has_old, has_new);
	if (!rc)
		rc = emit(out, A, na, B, bl, nbl);
	goto done;
nomem:
	rc = tk_errf(TK_ENOMEM, "diff: out of memory (%zu and %zu lines)", na, nb);
done:
	if (rc == TK_ELIMIT)
		rc = tk_errf(TK_ELIMIT, "diff: %s: the diff is larger than the output cap", path);
	if (rc)
		tk_buf_truncate(out, start);
	free(bl);
	free(vf);
	free(vb);
	free(rda);
	free(rib);
	free(ma);
	free(mb);
	free(ra);
	free(rb);
	free(cnt_a);
	free(cnt_b);
	free(da);
	free(ib);
	free(t.slot);
	free(A);
	free(B);
	return rc;
}
