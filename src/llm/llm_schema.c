/*
 * llm_schema.c — JSON Schema subset -> grammar text (grammar.h,
 * llm_schema_to_grammar). One rule per schema node ("n1", "n2", ...) plus
 * shared rules for the JSON lexemes. Owns nothing past the call.
 */
#include "llm/grammar.h"

#include "core/buf.h"
#include "core/err.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define SCHEMA_MAX_DEPTH 32

static const char lexemes[] =
	"ws ::= [ \\n]?\n"
	"jstring ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" hex hex hex hex ) )* \"\\\"\"\n"
	"hex ::= [0-9a-fA-F]\n"
	"jinteger ::= \"-\"? ( \"0\" | [1-9] [0-9]* )\n"
	"jnumber ::= jinteger ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]+ )?\n"
	"jboolean ::= \"true\" | \"false\"\n"
	"jnull ::= \"null\"\n"
	"jvalue ::= jobject | jarray | jstring | jnumber | jboolean | jnull\n"
	"jobject ::= \"{\" ws ( jstring ws \":\" ws jvalue ws ( \",\" ws jstring ws \":\" ws jvalue ws )* )? \"}\"\n"
	"jarray ::= \"[\" ws ( jvalue ws ( \",\" ws jvalue ws )* )? \"]\"\n";

struct conv {
	struct tk_buf *out;
	int next; /* next rule number */
};

/* Writes s as a grammar literal ("..." with escapes). */
static int put_literal(struct tk_buf *out, const char *s, size_t n)
{
	int rc = tk_buf_putc(out, '"');
	for (size_t i = 0; !rc && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			rc = tk_buf_printf(out, "\\%c", c);
		else if (c < 0x20)
			rc = tk_buf_printf(out, "\\x%02x", c);
		else
			rc = tk_buf_putc(out, (char)c);
	}
	return rc ? rc : tk_buf_putc(out, '"');
}

static int put_json_literal(struct tk_buf *out, const json_t *v)
{
	char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		return tk_errf(TK_ENOMEM, "schema: out of memory");
	int rc = put_literal(out, text, strlen(text));
	free(text);
	return rc;
}

static bool ignored_key(const char *k)
{
	static const char *const keys[] = { "description", "title", "default", "$schema",
					    "additionalProperties", "examples", "$id",
					    "$comment" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (!strcmp(k, keys[i]))
			return true;
	return false;
}

static int node(struct conv *c, const json_t *s, const char *path, int depth, int *rule_out);

static int check_keys(const json_t *s, const char *path, const char *const *allowed, size_t n)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)s, k, v) {
		bool ok = ignored_key(k);
		for (size_t i = 0; !ok && i < n; i++)
			ok = !strcmp(k, allowed[i]);
		if (!ok)
			return tk_errf(TK_EUNSUPPORTED, "schema: %s: keyword '%s' is not supported",
				       path, k);
	}
	return 0;
}

static int object_rule(struct conv *c, const json_t *s, const char *path, int depth, int me)
{
	static const char *const allowed[] = { "type", "properties", "required" };
	int rc = check_keys(s, path, allowed, 3);
	if (rc)
		return rc;
	const json_t *props = json_object_get(s, "properties");
	const json_t *req = json_object_get(s, "required");
	if (props && !json_is_object(props))
		return tk_errf(TK_EINVAL, "schema: %s.properties: must be an object", path);
	if (req && !json_is_array(req))
		return tk_errf(TK_EINVAL, "schema: %s.required: must be an array", path);
	size_t n = json_object_size(props);
	if (n > 256)
		return tk_errf(TK_ELIMIT, "schema: %s: more than 256 properties", path);
	/* kv rules: n<me>k<i> ::= "\"name\"" ws ":" ws <value> ws */
	bool required[256] = { false };
	size_t i = 0;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)props, k, v) {
		char sub[512];
		snprintf(sub, sizeof sub, "%s.%s", path, k);
		int vr = 0;
		if ((rc = node(c, v, sub, depth + 1, &vr)))
			return rc;
		required[i] = false;
		for (size_t j = 0; j < json_array_size(req); j++)
			if (json_is_string(json_array_get(req, j)) &&
			    !strcmp(json_string_value(json_array_get(req, j)), k))
				required[i] = true;
		json_t *quoted = json_string(k);
		if (!quoted)
			return tk_errf(TK_EINVAL, "schema: %s: bad property name", sub);
		if ((rc = tk_buf_printf(c->out, "n%dk%zu ::= ", me, i)) ||
		    (rc = put_json_literal(c->out, quoted)) ||
		    (rc = tk_buf_printf(c->out, " ws \":\" ws n%d ws\n", vr))) {
			json_decref(quoted);
			return rc;
		}
		json_decref(quoted);
		i++;
	}
	for (size_t j = 0; j < json_array_size(req); j++) {
		const char *r = json_string_value(json_array_get(req, j));
		if (!r || !json_object_get(props, r))
			return tk_errf(TK_EINVAL, "schema: %s.required[%zu]: not a listed property",
				       path, j);
	}
	size_t n_req = 0;
	for (i = 0; i < n; i++)
		n_req += required[i];
	if ((rc = tk_buf_printf(c->out, "n%d ::= \"{\" ws ", me)))
		return rc;
	if (n_req) {
		/* required ones in order, then each optional one maybe */
		bool first = true;
		for (i = 0; i < n && !rc; i++)
			if (required[i]) {
				rc = tk_buf_printf(c->out, "%sn%dk%zu ", first ? "" : "\",\" ws ", me, i);
				first = false;
			}
		for (i = 0; i < n && !rc; i++)
			if (!required[i])
				rc = tk_buf_printf(c->out, "( \",\" ws n%dk%zu )? ", me, i);
		if (!rc)
			rc = tk_buf_puts(c->out, "\"}\"\n");
		return rc;
	}
	if (!n)
		return tk_buf_puts(c->out, "\"}\"\n");
	/* all optional: start with any one, then any later ones in order */
	if ((rc = tk_buf_printf(c->out, "n%dbody? \"}\"\nn%dbody ::= ", me, me)))
		return rc;
	for (i = 0; i < n && !rc; i++) {
		rc = tk_buf_printf(c->out, "%sn%dk%zu ", i ? "| " : "", me, i);
		for (size_t j = i + 1; j < n && !rc; j++)
			rc = tk_buf_printf(c->out, "( \",\" ws n%dk%zu )? ", me, j);
	}
	return rc ? rc : tk_buf_putc(c->out, '\n');
}

static int node(struct conv *c, const json_t *s, const char *path, int depth, int *rule_out)
{
	if (depth > SCHEMA_MAX_DEPTH)
		return tk_errf(TK_ELIMIT, "schema: %s: nested deeper than %d", path,
			       SCHEMA_MAX_DEPTH);
	if (json_is_true(s)) {
		s = NULL;
	} else if (!json_is_object(s)) {
		return tk_errf(TK_EINVAL, "schema: %s: must be an object", path);
	}
	int me = c->next++;
	*rule_out = me;
	int rc;
	const json_t *en = s ? json_object_get(s, "enum") : NULL;
	const json_t *cn = s ? json_object_get(s, "const") : NULL;
	if (en || cn) {
		static const char *const allowed[] = { "type", "enum", "const" };
		if ((rc = check_keys(s, path, allowed, 3)))
			return rc;
		if (en && (!json_is_array(en) || !json_array_size(en)))
			return tk_errf(TK_EINVAL, "schema: %s.enum: must be a non-empty array", path);
		if ((rc = tk_buf_printf(c->out, "n%d ::= ", me)))
			return rc;
		if (cn)
			rc = put_json_literal(c->out, cn);
		for (size_t i = 0; en && !rc && i < json_array_size(en); i++) {
			if (i && (rc = tk_buf_puts(c->out, " | ")))
				break;
			rc = put_json_literal(c->out, json_array_get(en, i));
		}
		return rc ? rc : tk_buf_putc(c->out, '\n');
	}
	const json_t *t = s ? json_object_get(s, "type") : NULL;
	if (!t) {
		if (s) {
			static const char *const none[] = { "type" };
			if ((rc = check_keys(s, path, none, 1)))
				return rc;
		}
		return tk_buf_printf(c->out, "n%d ::= jvalue\n", me);
	}
	if (!json_is_string(t))
		return tk_errf(TK_EUNSUPPORTED, "schema: %s.type: only a single type name is "
			       "supported", path);
	const char *type = json_string_value(t);
	if (!strcmp(type, "object"))
		return object_rule(c, s, path, depth, me);
	if (!strcmp(type, "array")) {
		static const char *const allowed[] = { "type", "items" };
		if ((rc = check_keys(s, path, allowed, 2)))
			return rc;
		const json_t *items = json_object_get(s, "items");
		char sub[512];
		snprintf(sub, sizeof sub, "%s[]", path);
		int ir = 0;
		if (items) {
			if ((rc = node(c, items, sub, depth + 1, &ir)))
				return rc;
			return tk_buf_printf(c->out, "n%d ::= \"[\" ws ( n%d ws ( \",\" ws n%d ws )* )? "
					     "\"]\"\n", me, ir, ir);
		}
		return tk_buf_printf(c->out, "n%d ::= jarray\n", me);
	}
	static const struct { const char *type, *rule; } scalars[] = {
		{ "string", "jstring" }, { "number", "jnumber" }, { "integer", "jinteger" },
		{ "boolean", "jboolean" }, { "null", "jnull" },
	};
	for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
		if (!strcmp(type, scalars[i].type)) {
			static const char *const allowed[] = { "type" };
			if ((rc = check_keys(s, path, allowed, 1)))
				return rc;
			return tk_buf_printf(c->out, "n%d ::= %s\n", me, scalars[i].rule);
		}
	return tk_errf(TK_EINVAL, "schema: %s.type: unknown type '%s'", path, type);
}

int llm_schema_to_grammar(const struct json_t *schema, struct tk_buf *out)
{
	struct conv c = { out, 1 };
	int root = 0;
	int rc = node(&c, (const json_t *)schema, "$", 0, &root);
	if (!rc)
		rc = tk_buf_printf(out, "root ::= ws n%d ws\n", root);
	if (!rc)
		rc = tk_buf_puts(out, lexemes);
	if (rc == TK_ELIMIT && !strstr(tk_err_detail(), "schema"))
		rc = tk_errf(TK_ELIMIT, "schema: the grammar exceeds its buffer");
	return rc;
}
