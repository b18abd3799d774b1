/*
 * grammar.h — a GBNF-like grammar engine for constrained decoding: parse a
 * grammar, then follow a text code point by code point and say at each step
 * whether the text so far can still grow into a sentence of the grammar.
 *
 * Syntax (a subset of llama.cpp's GBNF, written from its description):
 *   rule     ::= NAME "::=" alts            (rules may span lines; '#' comments)
 *   alts     ::= seq ("|" seq)*
 *   seq      ::= (item ("*" | "+" | "?")?)*
 *   item     ::= "literal" | [class] | [^class] | NAME | "(" alts ")" | "."
 * Literals and classes take \n \r \t \\ \" \] \- \xHH \uHHHH; a class holds
 * characters and ranges a-z. "." is any code point. The start rule is
 * "root". Names are [a-zA-Z0-9-_]+. Every name used must be defined.
 *
 * Matching state: a set of stacks of positions in the rules (a pushdown
 * automaton run on all alternatives at once). Repetitions become
 * right-recursive helper rules and a rule reference that ends a sequence
 * replaces its frame (tail call), so x* keeps a bounded stack. Left
 * recursion is refused (it would never consume input): the expansion depth
 * is capped at LLM_GRAMMAR_MAX_DEPTH and the number of stacks at
 * LLM_GRAMMAR_MAX_STACKS; hitting a cap is TK_ELIMIT.
 *
 * Ownership: a grammar is immutable after llm_grammar_parse and may be
 * shared by threads; a state belongs to one thread and borrows its grammar.
 */
#ifndef TK_LLM_GRAMMAR_H
#define TK_LLM_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LLM_GRAMMAR_MAX_BYTES (1u << 20)
#define LLM_GRAMMAR_MAX_DEPTH 512
#define LLM_GRAMMAR_MAX_STACKS 4096

struct llm_grammar;
struct llm_gstate;

/* Parses text[0..len). NULL with TK_EINVAL and a detail naming the line and
 * what was expected, TK_ELIMIT (over LLM_GRAMMAR_MAX_BYTES) or TK_ENOMEM. */
struct llm_grammar *llm_grammar_parse(const char *text, size_t len);
void llm_grammar_free(struct llm_grammar *g); /* NULL ok */

/* The state before any text. NULL with a detail (TK_ELIMIT, TK_ENOMEM). */
struct llm_gstate *llm_gstate_new(const struct llm_grammar *g);
/* A copy of s. NULL on TK_ENOMEM. */
struct llm_gstate *llm_gstate_clone(const struct llm_gstate *s);
void llm_gstate_free(struct llm_gstate *s); /* NULL ok */

/* Follows bytes[0..n) (UTF-8). 0 when the text so far is still a prefix of
 * some sentence (s is updated); TK_EINVAL when it is not or the bytes are not
 * complete, valid UTF-8 (s is then unspecified: work on a clone);
 * TK_ELIMIT/TK_ENOMEM. */
int llm_gstate_advance(struct llm_gstate *s, const char *bytes, size_t n);

/* Would bytes[0..n) be allowed next? Leaves s unchanged. 0 (allowed; *next,
 * when not NULL, gets the state after them: free it), TK_EINVAL (not
 * allowed), TK_ELIMIT/TK_ENOMEM. Tokens whose first code point no stack can
 * take are refused without copying the state (the common case when masking
 * a vocabulary). */
int llm_gstate_check(const struct llm_gstate *s, const char *bytes, size_t n,
		     struct llm_gstate **next);

/* True when the text so far is a whole sentence (generation may end). */
bool llm_gstate_accepts(const struct llm_gstate *s);
/* True when nothing more can follow (every continuation is finished). */
bool llm_gstate_done(const struct llm_gstate *s);

/* Whole-string check: 0 when text is a sentence of g, else TK_EINVAL. */
int llm_grammar_match(const struct llm_grammar *g, const char *text, size_t len);

/* ---- depth-first walks (for masking a vocabulary: llm_trie.h) ----
 *
 * A walker holds a stack of matching states ("levels") in one arena: level
 * 0 is a copy of a state, and each push advances the top level by one code
 * point into a new level on top of it; pop drops the top level. Walking a
 * prefix tree of token texts depth-first then costs one advance per edge
 * of an accepted prefix, with no allocation once the arena has grown, and
 * backtracking is free (the arena is cut back). The levels follow exactly
 * the rules of llm_gstate_advance (same stacks, same caps). A walker
 * belongs to one thread; it borrows its grammar, which must outlive it. */
struct llm_gwalk;

/* NULL with TK_ENOMEM. */
struct llm_gwalk *llm_gwalk_new(const struct llm_grammar *g);
void llm_gwalk_free(struct llm_gwalk *w); /* NULL ok */

/* Drops every level and makes a copy of s (borrowed; of w's grammar) level
 * 0. 0 or TK_ENOMEM (the walker is then empty: start again). */
int llm_gwalk_start(struct llm_gwalk *w, const struct llm_gstate *s);

/* Advances the top level by code point cp into a new top level. 0 (pushed),
 * TK_EINVAL (cp is not allowed there; nothing pushed, no error detail set:
 * the common case, kept cheap), TK_ELIMIT/TK_ENOMEM (nothing pushed),
 * TK_ESTATE (not started). */
int llm_gwalk_push(struct llm_gwalk *w, uint32_t cp);

/* Drops the top level (never level 0). */
void llm_gwalk_pop(struct llm_gwalk *w);

/* Could some code point in [lo, hi] be pushed now? False only when none
 * can (a cheap, conservative test: used to prune the continuations of a
 * partial UTF-8 sequence before its code point is known). */
bool llm_gwalk_may(const struct llm_gwalk *w, uint32_t lo, uint32_t hi);

/* llm_gstate_accepts of the top level. */
bool llm_gwalk_accepts(const struct llm_gwalk *w);

/* ---- JSON Schema -> grammar (llm_schema.c) ----
 *
 * Converts a JSON Schema subset into grammar text (appended to out):
 * "type" object (properties, required), string, number, integer, boolean,
 * null, array (items); "enum" and "const" of any JSON values; nesting to
 * depth 32; a schema without "type" (or {}) allows any JSON value. Objects
 * allow only their listed properties (as with additionalProperties:
 * false), in the declared order with the required ones first; each at most
 * once. The output is compact JSON with at most one blank between tokens.
 * Other keywords (minLength, pattern, minimum, anyOf, $ref, ...) are
 * TK_EUNSUPPORTED, so a schema is never silently weakened — except
 * "description", "title", "default", "$schema", "additionalProperties" and
 * "examples", which are ignored. 0, TK_EINVAL (bad schema, with the path of
 * the offending part), TK_EUNSUPPORTED, TK_ELIMIT (out's cap). */
struct tk_buf;
struct json_t;
int llm_schema_to_grammar(const struct json_t *schema, struct tk_buf *out);

#endif
