/*
 * llm_grammar.c — the grammar engine of grammar.h: a GBNF-subset parser
 * into flat rule tables, and a pushdown matcher over all alternatives at
 * once (a set of stacks). Owns the grammar's tables; a state owns its
 * stacks.
 *
 * Layout: every sequence of every rule is a run of elements in els[]
 * closed by a G_END element; a rule lists the start index of each of its
 * alternatives. A stack frame is an index into els[] (the next element to
 * match). Expansion turns a stack whose top is a rule reference into one
 * stack per alternative, until every top is a character set (or the stack
 * is empty: the sentence may end there).
 */
#include "llm/grammar.h"

#include "core/err.h"

#include <stdlib.h>
#include <string.h>

enum { G_END, G_SET, G_RULE };

struct gel {
	uint8_t type;
	uint32_t v; /* G_SET: set index; G_RULE: rule index */
};

struct gset {
	bool neg;
	uint32_t *r; /* n pairs lo, hi (inclusive) */
	size_t n;
};

struct grule {
	char *name;      /* NULL for a generated helper rule */
	bool defined;
	uint32_t *alts;  /* start index in els[] of each alternative */
	size_t n_alts;
	int line;        /* where it was first used, for "undefined" errors */
};

struct llm_grammar {
	struct gel *els;
	size_t n_els, cap_els;
	struct gset *sets;
	size_t n_sets, cap_sets;
	struct grule *rules;
	size_t n_rules, cap_rules;
	uint32_t root;
};

/* ---- small growable arrays ---- */

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 16;
	while (c < need)
		c *= 2;
	void *q = realloc(*p, c * size);
	if (!q)
		return tk_errf(TK_ENOMEM, "grammar: out of memory");
	*p = q;
	*cap = c;
	return 0;
}

struct seq {
	struct gel *e;
	size_t n, cap;
};

static int seq_push(struct seq *s, uint8_t type, uint32_t v)
{
	int rc = grow((void **)&s->e, &s->cap, s->n + 1, sizeof *s->e);
	if (!rc)
		s->e[s->n++] = (struct gel){ type, v };
	return rc;
}

/* ---- parser ---- */

struct parser {
	struct llm_grammar *g;
	const char *p, *end;
	int line;
	int depth;
};

static int perr(struct parser *ps, const char *what)
{
	return tk_errf(TK_EINVAL, "grammar: line %d: %s", ps->line, what);
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end) {
		char c = *ps->p;
		if (c == '#') {
			while (ps->p < ps->end && *ps->p != '\n')
				ps->p++;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (c == '\n')
				ps->line++;
			ps->p++;
		} else {
			break;
		}
	}
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

static size_t name_len(const struct parser *ps, const char *p)
{
	size_t n = 0;
	while (p + n < ps->end && name_char(p[n]))
		n++;
	return n;
}

/* Is there "NAME ::=" at p (after blanks)? */
static bool at_rule_start(const struct parser *ps)
{
	size_t n = name_len(ps, ps->p);
	if (!n)
		return false;
	const char *q = ps->p + n;
	while (q < ps->end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
		q++;
	return ps->end - q >= 3 && !memcmp(q, "::=", 3);
}

static int rule_new(struct llm_grammar *g, const char *name, size_t len, int line, uint32_t *out)
{
	int rc = grow((void **)&g->rules, &g->cap_rules, g->n_rules + 1, sizeof *g->rules);
	if (rc)
		return rc;
	struct grule *r = &g->rules[g->n_rules];
	memset(r, 0, sizeof *r);
	r->line = line;
	if (name) {
		if (!(r->name = strndup(name, len)))
			return tk_errf(TK_ENOMEM, "grammar: out of memory");
	} else {
		r->defined = true;
	}
	*out = (uint32_t)g->n_rules++;
	return 0;
}

static int rule_find(struct llm_grammar *g, const char *name, size_t len, int line, uint32_t *out)
{
	for (size_t i = 0; i < g->n_rules; i++)
		if (g->rules[i].name && strlen(g->rules[i].name) == len &&
		    !memcmp(g->rules[i].name, name, len)) {
			*out = (uint32_t)i;
			return 0;
		}
	return rule_new(g, name, len, line, out);
}

/* Appends seq + END as a new alternative of rule r. */
static int rule_add_alt(struct llm_grammar *g, uint32_t r, const struct seq *s)
{
	int rc = grow((void **)&g->els, &g->cap_els, g->n_els + s->n + 1, sizeof *g->els);
	if (rc)
		return rc;
	struct grule *ru = &g->rules[r];
	size_t cap = ru->n_alts; /* exact-size growth: alternatives are few */
	uint32_t *a = realloc(ru->alts, (cap + 1) * sizeof *a);
	if (!a)
		return tk_errf(TK_ENOMEM, "grammar: out of memory");
	ru->alts = a;
	ru->alts[ru->n_alts++] = (uint32_t)g->n_els;
	if (s->n)
		memcpy(g->els + g->n_els, s->e, s->n * sizeof *s->e);
	g->n_els += s->n;
	g->els[g->n_els++] = (struct gel){ G_END, 0 };
	return 0;
}

static int set_new(struct llm_grammar *g, bool neg, const uint32_t *r, size_t n, uint32_t *out)
{
	int rc = grow((void **)&g->sets, &g->cap_sets, g->n_sets + 1, sizeof *g->sets);
	if (rc)
		return rc;
	struct gset *s = &g->sets[g->n_sets];
	s->neg = neg;
	s->n = n;
	s->r = malloc((n ? n : 1) * 2 * sizeof *s->r);
	if (!s->r)
		return tk_errf(TK_ENOMEM, "grammar: out of memory");
	if (n)
		memcpy(s->r, r, n * 2 * sizeof *r);
	*out = (uint32_t)g->n_sets++;
	return 0;
}

/* Strict UTF-8 decode of one code point; 0 bytes on error. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (!n)
		return 0;
	unsigned char b = s[0];
	size_t len;
	uint32_t c, min;
	if (b < 0x80) {
		*cp = b;
		return 1;
	} else if ((b & 0xE0) == 0xC0) {
		len = 2, c = b & 0x1F, min = 0x80;
	} else if ((b & 0xF0) == 0xE0) {
		len = 3, c = b & 0x0F, min = 0x800;
	} else if ((b & 0xF8) == 0xF0) {
		len = 4, c = b & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return len;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One (possibly escaped) character of a literal or class. */
static int parse_char(struct parser *ps, uint32_t *cp)
{
	if (ps->p >= ps->end)
		return perr(ps, "unexpected end inside a literal or class");
	if (*ps->p != '\\') {
		size_t k = utf8_next((const unsigned char *)ps->p, (size_t)(ps->end - ps->p), cp);
		if (!k)
			return perr(ps, "invalid UTF-8");
		if (*cp == '\n')
			ps->line++;
		ps->p += k;
		return 0;
	}
	ps->p++;
	if (ps->p >= ps->end)
		return perr(ps, "unfinished escape");
	char c = *ps->p++;
	int digits = 0;
	switch (c) {
	case 'n': *cp = '\n'; return 0;
	case 'r': *cp = '\r'; return 0;
	case 't': *cp = '\t'; return 0;
	case '\\': case '"': case ']': case '[': case '-': case '^': *cp = (uint32_t)c; return 0;
	case 'x': digits = 2; break;
	case 'u': digits = 4; break;
	case 'U': digits = 8; break;
	default: return perr(ps, "unknown escape");
	}
	uint32_t v = 0;
	for (int i = 0; i < digits; i++) {
		int h = ps->p < ps->end ? hexval(*ps->p) : -1;
		if (h < 0)
			return perr(ps, "bad hex escape");
		v = v * 16 + (uint32_t)h;
		ps->p++;
	}
	if (v > 0x10FFFF)
		return perr(ps, "escape beyond U+10FFFF");
	*cp = v;
	return 0;
}

static int parse_alts(struct parser *ps, uint32_t rule);

/* Wraps elements into a helper rule (one alternative) and returns a
 * reference to it. */
static int wrap_rule(struct parser *ps, const struct seq *s, uint32_t *ref)
{
	int rc = rule_new(ps->g, NULL, 0, ps->line, ref);
	return rc ? rc : rule_add_alt(ps->g, *ref, s);
}

/* One item into `it` (one or more elements). */
static int parse_item(struct parser *ps, struct seq *it)
{
	struct llm_grammar *g = ps->g;
	char c = *ps->p;
	int rc;
	if (c == '"') {
		ps->p++;
		while (ps->p < ps->end && *ps->p != '"') {
			uint32_t cp = 0, set = 0;
			if ((rc = parse_char(ps, &cp)))
				return rc;
			uint32_t r[2] = { cp, cp };
			if ((rc = set_new(g, false, r, 1, &set)) || (rc = seq_push(it, G_SET, set)))
				return rc;
		}
		if (ps->p >= ps->end)
			return perr(ps, "unterminated literal");
		ps->p++;
		return 0;
	}
	if (c == '[') {
		ps->p++;
		bool neg = ps->p < ps->end && *ps->p == '^';
		if (neg)
			ps->p++;
		uint32_t *r = NULL;
		size_t n = 0, cap = 0;
		while (ps->p < ps->end && *ps->p != ']') {
			uint32_t lo = 0, hi = 0;
			if ((rc = parse_char(ps, &lo)))
				goto class_out;
			hi = lo;
			if (ps->end - ps->p >= 2 && ps->p[0] == '-' && ps->p[1] != ']') {
				ps->p++;
				if ((rc = parse_char(ps, &hi)))
					goto class_out;
				if (hi < lo) {
					rc = perr(ps, "class range upside down");
					goto class_out;
				}
			}
			if ((rc = grow((void **)&r, &cap, (n + 1) * 2, sizeof *r)))
				goto class_out;
			r[2 * n] = lo;
			r[2 * n + 1] = hi;
			n++;
		}
		if (ps->p >= ps->end) {
			rc = perr(ps, "unterminated character class");
			goto class_out;
		}
		ps->p++;
		uint32_t set = 0;
		if (!(rc = set_new(g, neg, r, n, &set)))
			rc = seq_push(it, G_SET, set);
class_out:
		free(r);
		return rc;
	}
	if (c == '.') {
		ps->p++;
		uint32_t set = 0;
		return (rc = set_new(g, true, NULL, 0, &set)) ? rc : seq_push(it, G_SET, set);
	}
	if (c == '(') {
		ps->p++;
		if (++ps->depth > 64)
			return perr(ps, "groups nested deeper than 64");
		uint32_t r = 0;
		if ((rc = rule_new(g, NULL, 0, ps->line, &r)) || (rc = parse_alts(ps, r)))
			return rc;
		ps->depth--;
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != ')')
			return perr(ps, "expected ')'");
		ps->p++;
		return seq_push(it, G_RULE, r);
	}
	size_t n = name_len(ps, ps->p);
	if (!n)
		return perr(ps, "expected a literal, a class, a name or '('");
	uint32_t r = 0;
	if ((rc = rule_find(g, ps->p, n, ps->line, &r)))
		return rc;
	ps->p += n;
	return seq_push(it, G_RULE, r);
}

/* Applies a repetition operator to it (turning it into one reference). */
static int repeat(struct parser *ps, struct seq *it, char op)
{
	uint32_t x = 0, r = 0;
	int rc;
	if (it->n == 1) {
		x = 0; /* use the element itself */
	} else if ((rc = wrap_rule(ps, it, &x))) {
		return rc;
	} else {
		it->n = 0;
		if ((rc = seq_push(it, G_RULE, x)))
			return rc;
	}
	struct gel e = it->e[0];
	if ((rc = rule_new(ps->g, NULL, 0, ps->line, &r)))
		return rc;
	struct seq a = { 0 };
	/* x* : r ::= x r | ()      x+ : r ::= x r | x      x? : r ::= x | () */
	if ((rc = seq_push(&a, e.type, e.v)))
		goto out;
	if (op != '?' && (rc = seq_push(&a, G_RULE, r)))
		goto out;
	if ((rc = rule_add_alt(ps->g, r, &a)))
		goto out;
	a.n = 0;
	if (op == '+' && (rc = seq_push(&a, e.type, e.v)))
		goto out;
	if ((rc = rule_add_alt(ps->g, r, &a)))
		goto out;
	it->n = 0;
	rc = seq_push(it, G_RULE, r);
out:
	free(a.e);
	return rc;
}

static int parse_seq(struct parser *ps, struct seq *s)
{
	int rc;
	for (;;) {
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p == '|' || *ps->p == ')' || at_rule_start(ps))
			return 0;
		struct seq it = { 0 };
		if ((rc = parse_item(ps, &it)))
			goto fail;
		if (ps->p < ps->end && (*ps->p == '*' || *ps->p == '+' || *ps->p == '?')) {
			if ((rc = repeat(ps, &it, *ps->p++)))
				goto fail;
		}
		for (size_t i = 0; i < it.n; i++)
			if ((rc = seq_push(s, it.e[i].type, it.e[i].v)))
				goto fail;
		free(it.e);
		continue;
fail:
		free(it.e);
		return rc;
	}
}

static int parse_alts(struct parser *ps, uint32_t rule)
{
	for (;;) {
		struct seq s = { 0 };
		int rc = parse_seq(ps, &s);
		if (!rc)
			rc = rule_add_alt(ps->g, rule, &s);
		free(s.e);
		if (rc)
			return rc;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == '|') {
			ps->p++;
			continue;
		}
		return 0;
	}
}

void llm_grammar_free(struct llm_grammar *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_rules; i++) {
		free(g->rules[i].name);
		free(g->rules[i].alts);
	}
	for (size_t i = 0; i < g->n_sets; i++)
		free(g->sets[i].r);
	free(g->rules);
	free(g->sets);
	free(g->els);
	free(g);
}

struct llm_grammar *llm_grammar_parse(const char *text, size_t len)
{
	if (len > LLM_GRAMMAR_MAX_BYTES) {
		tk_errf(TK_ELIMIT, "grammar: %zu bytes, at most %u", len, LLM_GRAMMAR_MAX_BYTES);
		return NULL;
	}
	struct llm_grammar *g = calloc(1, sizeof *g);
	if (!g) {
		tk_errf(TK_ENOMEM, "grammar: out of memory");
		return NULL;
	}
	struct parser ps = { g, text, text + len, 1, 0 };
	int rc = 0;
	for (;;) {
		skip_ws(&ps);
		if (ps.p >= ps.end)
			break;
		size_t n = name_len(&ps, ps.p);
		if (!n || !at_rule_start(&ps)) {
			rc = perr(&ps, "expected 'name ::= ...'");
			goto fail;
		}
		uint32_t r = 0;
		if ((rc = rule_find(g, ps.p, n, ps.line, &r)))
			goto fail;
		if (g->rules[r].defined) {
			rc = perr(&ps, "rule defined twice");
			goto fail;
		}
		g->rules[r].defined = true;
		ps.p += n;
		skip_ws(&ps);
		ps.p += 3; /* "::=" (checked by at_rule_start) */
		if ((rc = parse_alts(&ps, r)))
			goto fail;
		skip_ws(&ps);
		if (ps.p < ps.end && *ps.p == ')') {
			rc = perr(&ps, "unbalanced ')'");
			goto fail;
		}
	}
	bool have_root = false;
	for (size_t i = 0; i < g->n_rules; i++) {
		struct grule *r = &g->rules[i];
		if (!r->defined) {
			rc = tk_errf(TK_EINVAL, "grammar: line %d: rule '%s' is used but not defined",
				     r->line, r->name);
			goto fail;
		}
		if (r->name && !strcmp(r->name, "root")) {
			g->root = (uint32_t)i;
			have_root = true;
		}
	}
	if (!have_root) {
		rc = tk_errf(TK_EINVAL, "grammar: no 'root' rule");
		goto fail;
	}
	return g;
fail:
	(void)rc;
	llm_grammar_free(g);
	return NULL;
}

/* ---- matching ---- */

struct gstack {
	uint32_t *f; /* frames, bottom first */
	uint32_t n;
};

struct llm_gstate {
	const struct llm_grammar *g;
	struct gstack *s;
	size_t n, cap;
};

static void stacks_clear(struct llm_gstate *st)
{
	for (size_t i = 0; i < st->n; i++)
		free(st->s[i].f);
	st->n = 0;
}

static int stacks_add(struct llm_gstate *st, const uint32_t *f, uint32_t n)
{
	for (size_t i = 0; i < st->n; i++)
		if (st->s[i].n == n && !memcmp(st->s[i].f, f, n * sizeof *f))
			return 0;
	if (st->n >= LLM_GRAMMAR_MAX_STACKS)
		return tk_errf(TK_ELIMIT, "grammar: more than %d parse stacks (too ambiguous)",
			       LLM_GRAMMAR_MAX_STACKS);
	int rc = grow((void **)&st->s, &st->cap, st->n + 1, sizeof *st->s);
	if (rc)
		return rc;
	uint32_t *c = malloc((n ? n : 1) * sizeof *c);
	if (!c)
		return tk_errf(TK_ENOMEM, "grammar: out of memory");
	if (n)
		memcpy(c, f, n * sizeof *f);
	st->s[st->n++] = (struct gstack){ c, n };
	return 0;
}

/* Adds every stack reachable from f[0..n) without consuming input whose top
 * is a character set (or that is empty). f is not modified. */
static int expand(struct llm_gstate *out, const uint32_t *f, uint32_t n, int depth)
{
	const struct llm_grammar *g = out->g;
	for (;;) {
		if (depth > LLM_GRAMMAR_MAX_DEPTH || n > LLM_GRAMMAR_MAX_DEPTH)
			return tk_errf(TK_ELIMIT, "grammar: nesting deeper than %d (left recursion?)",
				       LLM_GRAMMAR_MAX_DEPTH);
		if (!n || g->els[f[n - 1]].type == G_SET)
			return stacks_add(out, f, n);
		if (g->els[f[n - 1]].type == G_END) {
			n--; /* this sequence is done: back to the caller's frame */
			depth++;
			continue;
		}
		break;
	}
	uint32_t top = f[n - 1];
	const struct grule *r = &g->rules[g->els[top].v];
	uint32_t *nf = malloc((n + 1) * sizeof *nf);
	if (!nf)
		return tk_errf(TK_ENOMEM, "grammar: out of memory");
	memcpy(nf, f, (n - 1) * sizeof *f);
	uint32_t m = n - 1;
	if (g->els[top + 1].type != G_END) /* else a tail call: drop the frame */
		nf[m++] = top + 1;
	int rc = 0;
	for (size_t a = 0; !rc && a < r->n_alts; a++) {
		nf[m] = r->alts[a];
		rc = expand(out, nf, m + 1, depth + 1);
	}
	free(nf);
	return rc;
}

struct llm_gstate *llm_gstate_new(const struct llm_grammar *g)
{
	struct llm_gstate *st = calloc(1, sizeof *st);
	if (!st) {
		tk_errf(TK_ENOMEM, "grammar: out of memory");
		return NULL;
	}
	st->g = g;
	const struct grule *root = &g->rules[g->root];
	for (size_t a = 0; a < root->n_alts; a++) {
		const uint32_t f[1] = { root->alts[a] };
		if (expand(st, f, 1, 0)) {
			llm_gstate_free(st);
			return NULL;
		}
	}
	return st;
}

struct llm_gstate *llm_gstate_clone(const struct llm_gstate *s)
{
	struct llm_gstate *c = calloc(1, sizeof *c);
	if (!c)
		goto oom;
	c->g = s->g;
	for (size_t i = 0; i < s->n; i++)
		if (stacks_add(c, s->s[i].f, s->s[i].n))
			goto oom;
	return c;
oom:
	llm_gstate_free(c);
	tk_errf(TK_ENOMEM, "grammar: out of memory");
	return NULL;
}

void llm_gstate_free(struct llm_gstate *s)
{
	if (!s)
		return;
	stacks_clear(s);
	free(s->s);
	free(s);
}

static bool set_has(const struct gset *s, uint32_t cp)
{
	bool in = false;
	for (size_t i = 0; i < s->n && !in; i++)
		in = cp >= s->r[2 * i] && cp <= s->r[2 * i + 1];
	return in != s->neg;
}

static int advance_cp(struct llm_gstate *st, uint32_t cp)
{
	struct llm_gstate next = { .g = st->g };
	int rc = 0;
	for (size_t i = 0; !rc && i < st->n; i++) {
		struct gstack *k = &st->s[i];
		if (!k->n)
			continue;
		uint32_t top = k->f[k->n - 1];
		if (!set_has(&st->g->sets[st->g->els[top].v], cp))
			continue;
		k->f[k->n - 1] = top + 1; /* matched: on to the next element */
		rc = expand(&next, k->f, k->n, 0);
		k->f[k->n - 1] = top;
	}
	if (!rc && !next.n)
		rc = tk_errf(TK_EINVAL, "grammar: U+%04X is not allowed here", (unsigned)cp);
	stacks_clear(st);
	free(st->s);
	st->s = next.s;
	st->n = next.n;
	st->cap = next.cap;
	return rc;
}

int llm_gstate_advance(struct llm_gstate *s, const char *bytes, size_t n)
{
	const unsigned char *p = (const unsigned char *)bytes;
	while (n) {
		uint32_t cp = 0;
		size_t k = utf8_next(p, n, &cp);
		if (!k)
			return tk_errf(TK_EINVAL, "grammar: text is not complete, valid UTF-8");
		int rc = advance_cp(s, cp);
		if (rc)
			return rc;
		p += k;
		n -= k;
	}
	return 0;
}

int llm_gstate_check(const struct llm_gstate *s, const char *bytes, size_t n,
		     struct llm_gstate **next)
{
	if (next)
		*next = NULL;
	uint32_t cp = 0;
	if (!n || !utf8_next((const unsigned char *)bytes, n, &cp))
		return TK_EINVAL;
	bool any = false;
	for (size_t i = 0; i < s->n && !any; i++)
		any = s->s[i].n &&
		      set_has(&s->g->sets[s->g->els[s->s[i].f[s->s[i].n - 1]].v], cp);
	if (!any)
		return TK_EINVAL;
	struct llm_gstate *c = llm_gstate_clone(s);
	if (!c)
		return TK_ENOMEM;
	int rc = llm_gstate_advance(c, bytes, n);
	if (rc || !next)
		llm_gstate_free(c);
	else
		*next = c;
	return rc;
}

bool llm_gstate_accepts(const struct llm_gstate *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (!s->s[i].n)
			return true;
	return false;
}

bool llm_gstate_done(const struct llm_gstate *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->s[i].n)
			return false;
	return s->n > 0;
}

int llm_grammar_match(const struct llm_grammar *g, const char *text, size_t len)
{
	struct llm_gstate *s = llm_gstate_new(g);
	if (!s)
		return tk_err_last() ? tk_err_last() : TK_ENOMEM;
	int rc = llm_gstate_advance(s, text, len);
	if (!rc && !llm_gstate_accepts(s))
		rc = tk_errf(TK_EINVAL, "grammar: the text ends too early");
	llm_gstate_free(s);
	return rc;
}

/* ---- depth-first walker (grammar.h, llm_gwalk_*) ----
 *
 * All levels share three arrays that only grow at their ends: frames fr[],
 * stack descriptors sk[] (a run of frames each) and levels lv[] (where each
 * level's stacks and frames begin). The top level's stacks are
 * sk[lv[top].sk0 .. n_sk). A push appends the new level's stacks; a pop or
 * a refused push cuts the arrays back to the marks. Expansion works in
 * place in a scratch array: each recursion overwrites one frame (and the
 * scratch above the stack) and restores it before returning. */

struct wstack {
	uint32_t off, n; /* frames fr[off .. off + n), bottom first */
};

struct wlevel {
	size_t sk0, fr0; /* where this level's stacks and frames begin */
};

struct llm_gwalk {
	const struct llm_grammar *g;
	uint32_t *fr;
	size_t n_fr, cap_fr;
	struct wstack *sk;
	size_t n_sk, cap_sk;
	struct wlevel *lv;
	size_t n_lv, cap_lv;
	uint32_t scratch[LLM_GRAMMAR_MAX_DEPTH + 2];
};

struct llm_gwalk *llm_gwalk_new(const struct llm_grammar *g)
{
	struct llm_gwalk *w = calloc(1, sizeof *w);
	if (!w) {
		tk_errf(TK_ENOMEM, "grammar: out of memory");
		return NULL;
	}
	w->g = g;
	return w;
}

void llm_gwalk_free(struct llm_gwalk *w)
{
	if (!w)
		return;
	free(w->fr);
	free(w->sk);
	free(w->lv);
	free(w);
}

/* Adds stack f[0..n) to the top level unless it is there already. */
static int wadd(struct llm_gwalk *w, const uint32_t *f, uint32_t n)
{
	size_t sk0 = w->lv[w->n_lv - 1].sk0;
	for (size_t i = sk0; i < w->n_sk; i++)
		if (w->sk[i].n == n && !memcmp(w->fr + w->sk[i].off, f, n * sizeof *f))
			return 0;
	if (w->n_sk - sk0 >= LLM_GRAMMAR_MAX_STACKS)
		return tk_errf(TK_ELIMIT, "grammar: more than %d parse stacks (too ambiguous)",
			       LLM_GRAMMAR_MAX_STACKS);
	int rc = grow((void **)&w->fr, &w->cap_fr, w->n_fr + n, sizeof *w->fr);
	if (!rc)
		rc = grow((void **)&w->sk, &w->cap_sk, w->n_sk + 1, sizeof *w->sk);
	if (rc)
		return rc;
	if (n)
		memcpy(w->fr + w->n_fr, f, n * sizeof *f);
	w->sk[w->n_sk++] = (struct wstack){ (uint32_t)w->n_fr, n };
	w->n_fr += n;
	return 0;
}

/* expand() for the walker: the same stacks, built in place in f (which has
 * room for LLM_GRAMMAR_MAX_DEPTH + 2 frames); f[0..n) is as it was on
 * return. */
static int wexpand(struct llm_gwalk *w, uint32_t *f, uint32_t n, int depth)
{
	const struct llm_grammar *g = w->g;
	for (;;) {
		if (depth > LLM_GRAMMAR_MAX_DEPTH || n > LLM_GRAMMAR_MAX_DEPTH)
			return tk_errf(TK_ELIMIT, "grammar: nesting deeper than %d (left recursion?)",
				       LLM_GRAMMAR_MAX_DEPTH);
		if (!n || g->els[f[n - 1]].type == G_SET)
			return wadd(w, f, n);
		if (g->els[f[n - 1]].type == G_END) {
			n--;
			depth++;
			continue;
		}
		break;
	}
	uint32_t top = f[n - 1];
	const struct grule *r = &g->rules[g->els[top].v];
	uint32_t m = n - 1;
	if (g->els[top + 1].type != G_END) /* else a tail call */
		f[m++] = top + 1;
	int rc = 0;
	for (size_t a = 0; !rc && a < r->n_alts; a++) {
		f[m] = r->alts[a];
		rc = wexpand(w, f, m + 1, depth + 1);
	}
	f[n - 1] = top;
	return rc;
}

static int wlevel_open(struct llm_gwalk *w)
{
	int rc = grow((void **)&w->lv, &w->cap_lv, w->n_lv + 1, sizeof *w->lv);
	if (!rc)
		w->lv[w->n_lv++] = (struct wlevel){ w->n_sk, w->n_fr };
	return rc;
}

/* Drops the top level and everything it holds. */
static void wlevel_cut(struct llm_gwalk *w)
{
	struct wlevel l = w->lv[--w->n_lv];
	w->n_sk = l.sk0;
	w->n_fr = l.fr0;
}

int llm_gwalk_start(struct llm_gwalk *w, const struct llm_gstate *s)
{
	w->n_fr = w->n_sk = w->n_lv = 0;
	int rc = wlevel_open(w);
	for (size_t i = 0; !rc && i < s->n; i++)
		rc = wadd(w, s->s[i].f, s->s[i].n);
	if (rc)
		w->n_fr = w->n_sk = w->n_lv = 0;
	return rc;
}

int llm_gwalk_push(struct llm_gwalk *w, uint32_t cp)
{
	const struct llm_grammar *g = w->g;
	if (!w->n_lv)
		return tk_errf(TK_ESTATE, "grammar: walker not started");
	size_t s0 = w->lv[w->n_lv - 1].sk0, s1 = w->n_sk;
	/* the cheap refusal first: no stack's top takes cp */
	bool any = false;
	for (size_t i = s0; i < s1 && !any; i++) {
		struct wstack k = w->sk[i];
		any = k.n && set_has(&g->sets[g->els[w->fr[k.off + k.n - 1]].v], cp);
	}
	if (!any)
		return TK_EINVAL;
	int rc = wlevel_open(w);
	if (rc)
		return rc;
	for (size_t i = s0; !rc && i < s1; i++) {
		struct wstack k = w->sk[i]; /* a copy: sk may move as it grows */
		if (!k.n)
			continue;
		uint32_t top = w->fr[k.off + k.n - 1];
		if (!set_has(&g->sets[g->els[top].v], cp))
			continue;
		memcpy(w->scratch, w->fr + k.off, k.n * sizeof *w->fr);
		w->scratch[k.n - 1] = top + 1;
		rc = wexpand(w, w->scratch, k.n, 0);
	}
	if (!rc && w->n_sk == w->lv[w->n_lv - 1].sk0)
		rc = TK_EINVAL;
	if (rc)
		wlevel_cut(w);
	return rc;
}

void llm_gwalk_pop(struct llm_gwalk *w)
{
	if (w->n_lv > 1)
		wlevel_cut(w);
}

/* Conservative: a negated set is taken to meet any range unless one of its
 * ranges covers all of it. */
static bool set_meets(const struct gset *s, uint32_t lo, uint32_t hi)
{
	for (size_t i = 0; i < s->n; i++) {
		uint32_t a = s->r[2 * i], b = s->r[2 * i + 1];
		if (s->neg && a <= lo && hi <= b)
			return false;
		if (!s->neg && a <= hi && lo <= b)
			return true;
	}
	return s->neg;
}

bool llm_gwalk_may(const struct llm_gwalk *w, uint32_t lo, uint32_t hi)
{
	const struct llm_grammar *g = w->g;
	if (!w->n_lv)
		return false;
	for (size_t i = w->lv[w->n_lv - 1].sk0; i < w->n_sk; i++) {
		struct wstack k = w->sk[i];
		if (k.n && set_meets(&g->sets[g->els[w->fr[k.off + k.n - 1]].v], lo, hi))
			return true;
	}
	return false;
}

bool llm_gwalk_accepts(const struct llm_gwalk *w)
{
	if (!w->n_lv)
		return false;
	for (size_t i = w->lv[w->n_lv - 1].sk0; i < w->n_sk; i++)
		if (!w->sk[i].n)
			return true;
	return false;
}
