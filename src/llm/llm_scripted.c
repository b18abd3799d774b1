/*
 * llm_scripted.c — the scripted backend: replays recorded replies from a
 * JSON file (llm.script), matched by agent and turn, for tests and demos.
 * Never the default backend. File format (docs/llm.md):
 *
 *   {"responses": [
 *     {"agent": "coder", "turn": 0, "text": "def f(): ...",
 *      "finish_reason": "stop", "usage": {"prompt_tokens": 12, "completion_tokens": 5}},
 *     {"agent": "coder", "chunks": ["a", "b"]},            (any turn)
 *     {"turn": 3, "error": {"code": "timeout", "message": "..."}},  (any agent)
 *     {"text": "fallback"}                                 (anything)
 *   ]}
 *
 * The first entry whose agent (absent or "*": any) and turn (absent: any)
 * match wins. A call with params.turn < 0 uses the agent's next turn: a
 * per-backend counter per agent name, starting at 0. The text streams as
 * its "chunks", else word by word; max_tokens counts chunks; stop strings
 * cut the text. Owns the parsed script and the counters (under mu).
 *
 * Replay: llm.script may instead be a `tanuki tasks export` file (JSONL, one
 * event object {"seq", "type", "data", ...} a line; told apart by content:
 * the first non-blank byte opens an object that has "type" and no
 * "responses"). Every "agent_turn" event becomes a response of its agent
 * ("agent"), in order: its reply text ("text", or "raw", "reply", "output"),
 * as one chunk so that max_tokens never cuts a recorded reply, with its
 * usage ("usage" {prompt_tokens, completion_tokens}, or those two fields at
 * the top of data) and "finish_reason"; an event with "error" and no text
 * replays as a failed call. In replay mode every call takes its agent's next
 * recorded turn whatever params.turn says: the trajectory is replayed in the
 * order it was recorded. Other event types are ignored.
 */
#include "llm/llm_int.h"

#include "core/err.h"
#include "core/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRIPT_MAX_BYTES (16u << 20)
#define AGENTS_MAX 1024 /* distinct agent names with a turn counter */

struct scripted {
	json_t *responses; /* array, validated at load */
	bool replay;       /* built from an events export: calls take turns in order */
	pthread_mutex_t mu;
	json_t *turns;     /* object agent -> next turn; guarded by mu */
};

static int read_file(const char *path, struct tk_buf *out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return tk_errf_sys(TK_ENOENT, errno, "scripted: %s", path);
	char chunk[65536];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (tk_buf_append(out, chunk, n)) {
			rc = tk_errf(TK_ELIMIT, "scripted: %s: larger than %u bytes", path,
				     SCRIPT_MAX_BYTES);
			break;
		}
	if (!rc && ferror(f))
		rc = tk_errf_sys(TK_EIO, errno, "scripted: %s: read", path);
	fclose(f);
	return rc;
}

static int error_code_of(const char *name)
{
	for (int c = -1; c > TK_E_MIN_; c--)
		if (!strcmp(tk_err_name(c), name))
			return c;
	return 0;
}

static int check_entry(const char *path, size_t i, json_t *e)
{
	if (!json_is_object(e))
		return tk_errf(TK_EFORMAT, "scripted: %s: responses[%zu]: not an object", path, i);
	static const struct tk_json_field fields[] = {
		{ .name = "agent", .type = TK_JT_STRING },
		{ .name = "turn", .type = TK_JT_INT, .has_range = true, .min = 0, .max = 1e9 },
		{ .name = "text", .type = TK_JT_STRING },
		{ .name = "chunks", .type = TK_JT_ARRAY },
		{ .name = "finish_reason", .type = TK_JT_STRING },
		{ .name = "usage", .type = TK_JT_OBJECT },
		{ .name = "error", .type = TK_JT_OBJECT },
		{ .name = "model", .type = TK_JT_STRING },
	};
	char where[64];
	snprintf(where, sizeof where, "responses[%zu]", i);
	if (tk_json_validate(e, fields, sizeof fields / sizeof fields[0], TK_JSON_REJECT_UNKNOWN,
			     where))
		return tk_err_wrap(TK_EFORMAT, "scripted: %s", path);
	json_t *chunks = json_object_get(e, "chunks");
	size_t k;
	json_t *c;
	json_array_foreach(chunks, k, c)
		if (!json_is_string(c))
			return tk_errf(TK_EFORMAT, "scripted: %s: responses[%zu].chunks[%zu]: not a "
				       "string", path, i, k);
	json_t *err = json_object_get(e, "error");
	if (err) {
		const char *code = tk_json_get_str(err, "code", NULL);
		if (!code || !error_code_of(code))
			return tk_errf(TK_EFORMAT, "scripted: %s: responses[%zu].error.code: must be "
				       "an error name such as \"timeout\" or \"busy\"", path, i);
	} else if (!json_object_get(e, "text") && !chunks) {
		return tk_errf(TK_EFORMAT, "scripted: %s: responses[%zu]: needs text, chunks or "
			       "error", path, i);
	}
	return 0;
}

/* ---- replay of an events export (JSONL) ---- */

#define REPLAY_LINE_MAX (8u << 20) /* one event line */

/* Whether text looks like an events export rather than a script: its first
 * line is a JSON object with a "type" field and no "responses". */
static bool looks_like_events(const char *text, size_t len)
{
	size_t i = 0;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	if (i >= len || text[i] != '{')
		return false;
	const char *nl = memchr(text + i, '\n', len - i);
	size_t end = nl ? (size_t)(nl - text) : len;
	json_t *first = NULL;
	bool yes = false;
	if (tk_json_parse(text + i, end - i, REPLAY_LINE_MAX, &first) == 0)
		yes = json_is_object(first) && json_is_string(json_object_get(first, "type")) &&
		      !json_object_get(first, "responses");
	json_decref(first);
	tk_err_clear();
	return yes;
}

static const char *replay_text(const json_t *data)
{
	static const char *const keys[] = { "text", "raw", "reply", "output" };
	for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
		const json_t *v = json_object_get(data, keys[k]);
		if (json_is_string(v))
			return json_string_value(v);
	}
	return NULL;
}

/* The response entry for one agent_turn event's data (new reference). */
static int replay_entry(const char *path, size_t line, const json_t *data, json_int_t turn,
			json_t **out)
{
	const char *agent = tk_json_get_str(data, "agent", NULL);
	if (!agent || !*agent)
		return tk_errf(TK_EFORMAT, "scripted: %s: line %zu: agent_turn without \"agent\"",
			       path, line);
	const char *text = replay_text(data);
	json_t *err = json_object_get(data, "error");
	if (!text && !err)
		return tk_errf(TK_EFORMAT, "scripted: %s: line %zu: agent_turn of '%s' records no "
			       "reply text (\"text\")", path, line, agent);
	json_t *e = json_pack("{s:s, s:I}", "agent", agent, "turn", turn);
	if (!e)
		return tk_errf(TK_ENOMEM, "scripted: out of memory");
	int rc = 0;
	if (text) {
		json_t *chunks = json_pack("[s]", text);
		if (!chunks || json_object_set_new(e, "chunks", chunks))
			rc = tk_errf(TK_ENOMEM, "scripted: out of memory");
		const char *fin = tk_json_get_str(data, "finish_reason", NULL);
		if (!rc && fin && json_object_set_new(e, "finish_reason", json_string(fin)))
			rc = tk_errf(TK_ENOMEM, "scripted: out of memory");
		const json_t *u = json_object_get(data, "usage");
		int64_t pt = tk_json_get_int(json_is_object(u) ? u : data, "prompt_tokens", -1);
		int64_t ct = tk_json_get_int(json_is_object(u) ? u : data, "completion_tokens", -1);
		json_t *usage = json_object();
		if (!rc && (!usage || (pt >= 0 && json_object_set_new(usage, "prompt_tokens",
									    json_integer(pt))) ||
			    (ct >= 0 && json_object_set_new(usage, "completion_tokens",
							    json_integer(ct))) ||
			    json_object_set(e, "usage", usage)))
			rc = tk_errf(TK_ENOMEM, "scripted: out of memory");
		json_decref(usage);
	} else {
		/* A failed call: its code when it names one, else an I/O error. */
		const char *code = json_is_object(err) ? tk_json_get_str(err, "code", "") : "";
		const char *msg = json_is_string(err) ? json_string_value(err)
			: json_is_object(err) ? tk_json_get_str(err, "message", "replayed error")
			: "replayed error";
		if (!error_code_of(code))
			code = tk_err_name(TK_EIO);
		if (json_object_set_new(e, "error", json_pack("{s:s, s:s}", "code", code,
							      "message", msg)))
			rc = tk_errf(TK_ENOMEM, "scripted: out of memory");
	}
	if (rc) {
		json_decref(e);
		return rc;
	}
	*out = e;
	return 0;
}

/* Builds the responses array from an events export; turns are numbered per
 * agent in the order of the file. */
static int replay_parse(const char *path, const char *text, size_t len, json_t **out)
{
	json_t *resp = json_array(), *turns = json_object();
	int rc = 0;
	size_t line = 0;
	if (!resp || !turns) {
		rc = tk_errf(TK_ENOMEM, "scripted: out of memory");
		goto out;
	}
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		size_t a = pos, z = end;
		pos = end + 1;
		line++;
		while (a < z && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r'))
			a++;
		while (z > a && (text[z - 1] == ' ' || text[z - 1] == '\t' || text[z - 1] == '\r'))
			z--;
		if (a == z)
			continue;
		json_t *ev = NULL;
		if (tk_json_parse(text + a, z - a, REPLAY_LINE_MAX, &ev)) {
			rc = tk_err_wrap(TK_EFORMAT, "scripted: %s: line %zu", path, line);
			goto out;
		}
		if (!json_is_object(ev) || !json_is_string(json_object_get(ev, "type"))) {
			json_decref(ev);
			rc = tk_errf(TK_EFORMAT, "scripted: %s: line %zu: not an event object with "
				     "a \"type\"", path, line);
			goto out;
		}
		if (strcmp(tk_json_get_str(ev, "type", ""), "agent_turn")) {
			json_decref(ev);
			continue;
		}
		json_t *data = json_object_get(ev, "data");
		const char *agent = tk_json_get_str(data, "agent", "");
		json_t *t = json_object_get(turns, agent);
		json_int_t turn = t ? json_integer_value(t) : 0;
		json_t *e = NULL;
		if (!json_is_object(data))
			rc = tk_errf(TK_EFORMAT, "scripted: %s: line %zu: agent_turn data is not an "
				     "object", path, line);
		else if (!(rc = replay_entry(path, line, data, turn, &e)) &&
			 (json_object_set_new(turns, agent, json_integer(turn + 1)) ||
			  json_array_append_new(resp, e)))
			rc = tk_errf(TK_ENOMEM, "scripted: out of memory");
		json_decref(ev);
		if (rc)
			goto out;
	}
	if (json_array_size(resp) == 0) {
		rc = tk_errf(TK_EFORMAT, "scripted: %s: an events export without any agent_turn "
			     "event", path);
		goto out;
	}
	*out = resp;
	resp = NULL;
out:
	json_decref(resp);
	json_decref(turns);
	return rc;
}

static int scripted_init(struct llm_backend *b)
{
	const char *path = b->opt.script;
	if (!path)
		return tk_errf(TK_EINVAL, "scripted: llm.script: no script file configured");
	struct tk_buf text = TK_BUF_INIT(SCRIPT_MAX_BYTES);
	json_t *doc = NULL;
	int rc = read_file(path, &text);
	bool replay = false;
	json_t *resp;
	if (rc)
		goto out;
	if (looks_like_events(text.data ? text.data : "", text.len)) {
		replay = true;
		if ((rc = replay_parse(path, text.data, text.len, &doc)))
			goto out;
		resp = doc;
	} else {
		if ((rc = tk_json_parse(text.data ? text.data : "", text.len, SCRIPT_MAX_BYTES,
					&doc))) {
			rc = tk_err_wrap(TK_EFORMAT, "scripted: %s", path);
			goto out;
		}
		resp = json_object_get(doc, "responses");
		if (!json_is_array(resp)) {
			rc = tk_errf(TK_EFORMAT, "scripted: %s: needs a \"responses\" array", path);
			goto out;
		}
	}
	size_t i;
	json_t *e;
	json_array_foreach(resp, i, e)
		if ((rc = check_entry(path, i, e)))
			goto out;
	struct scripted *s = calloc(1, sizeof *s);
	if (!s || !(s->turns = json_object())) {
		free(s);
		rc = tk_errf(TK_ENOMEM, "scripted: out of memory");
		goto out;
	}
	s->responses = json_incref(resp);
	s->replay = replay;
	pthread_mutex_init(&s->mu, NULL);
	b->impl = s;
out:
	json_decref(doc);
	tk_buf_free(&text);
	return rc;
}

static void scripted_fini(struct llm_backend *b)
{
	struct scripted *s = b->impl;
	if (!s)
		return;
	json_decref(s->responses);
	json_decref(s->turns);
	pthread_mutex_destroy(&s->mu);
	free(s);
	b->impl = NULL;
}

/* The agent's next turn (counted), or TK_ELIMIT past AGENTS_MAX agents. */
static int next_turn(struct scripted *s, const char *agent, json_int_t *turn)
{
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	json_t *t = json_object_get(s->turns, agent);
	*turn = t ? json_integer_value(t) : 0;
	if (!t && json_object_size(s->turns) >= AGENTS_MAX)
		rc = tk_errf(TK_ELIMIT, "scripted: more than %d agents", AGENTS_MAX);
	else if (json_object_set_new(s->turns, agent, json_integer(*turn + 1)))
		rc = tk_errf(TK_EINVAL, "scripted: agent name is not valid UTF-8");
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static json_t *find_entry(const struct scripted *s, const char *agent, json_int_t turn)
{
	size_t i;
	json_t *e;
	json_array_foreach(s->responses, i, e) {
		const char *a = tk_json_get_str(e, "agent", "*");
		json_t *t = json_object_get(e, "turn");
		if (strcmp(a, "*") && strcmp(a, agent))
			continue;
		if (t && json_integer_value(t) != turn)
			continue;
		return e;
	}
	return NULL;
}

/* Splits text into word pieces: each word with the spaces after it. */
static int split_words(const char *text, json_t *out)
{
	const char *p = text;
	while (*p) {
		const char *q = p;
		while (*q && *q != ' ' && *q != '\n' && *q != '\t')
			q++;
		while (*q == ' ' || *q == '\n' || *q == '\t')
			q++;
		if (json_array_append_new(out, json_stringn(p, (size_t)(q - p))))
			return tk_errf(TK_ENOMEM, "scripted: out of memory");
		p = q;
	}
	return 0;
}

static int scripted_chat(struct llm_backend *b, const struct llm_message *msgs, size_t n,
			 const struct llm_params *p, llm_token_cb cb, void *ud,
			 const atomic_bool *cancel, struct llm_result *out)
{
	(void)msgs, (void)n;
	struct scripted *s = b->impl;
	const char *agent = p->agent ? p->agent : "";
	json_int_t turn = s->replay ? -1 : p->turn;
	int rc = 0;
	if (turn < 0 && (rc = next_turn(s, agent, &turn)))
		return rc;
	json_t *e = find_entry(s, agent, turn);
	if (!e)
		return tk_errf(TK_ENOENT, "scripted: no reply for agent '%s' turn %lld in %s", agent,
			       (long long)turn, b->opt.script);
	json_t *err = json_object_get(e, "error");
	if (err)
		return tk_errf(error_code_of(tk_json_get_str(err, "code", "")),
			       "scripted: %s", tk_json_get_str(err, "message", "scripted error"));
	json_t *chunks = json_object_get(e, "chunks");
	json_t *owned = NULL;
	if (!chunks) {
		if (!(owned = json_array()))
			return tk_errf(TK_ENOMEM, "scripted: out of memory");
		if ((rc = split_words(tk_json_get_str(e, "text", ""), owned)))
			goto out;
		chunks = owned;
	}
	/* Where the first stop string starts in the whole text (SIZE_MAX: none). */
	size_t total = 0, cut = (size_t)-1;
	struct tk_buf whole = TK_BUF_INIT(b->opt.max_response_bytes);
	size_t i;
	json_t *c;
	json_array_foreach(chunks, i, c)
		if (tk_buf_append(&whole, json_string_value(c), json_string_length(c))) {
			tk_buf_free(&whole);
			rc = tk_errf(TK_ELIMIT, "scripted: reply over %zu bytes",
				     b->opt.max_response_bytes);
			goto out;
		}
	for (size_t k = 0; k < p->n_stop; k++) {
		const char *hit = whole.data ? strstr(whole.data, p->stop[k]) : NULL;
		if (hit && (size_t)(hit - whole.data) < cut)
			cut = (size_t)(hit - whole.data);
	}
	tk_buf_free(&whole);
	struct llm_acc acc;
	llm_acc_init(&acc, b, cb, ud);
	out->finish = llm_finish_parse(tk_json_get_str(e, "finish_reason", "stop"));
	int32_t emitted = 0;
	json_array_foreach(chunks, i, c) {
		if (llm_cancelled(cancel)) {
			rc = tk_errf(TK_ECANCELED, "scripted: cancelled");
			break;
		}
		if (p->max_tokens > 0 && emitted >= p->max_tokens) {
			out->finish = LLM_FINISH_LENGTH;
			break;
		}
		size_t len = json_string_length(c);
		if (total + len > cut)
			len = cut - total;
		if ((rc = llm_acc_push(&acc, json_string_value(c), len)))
			break;
		total += len;
		emitted++;
		if (total == cut) {
			out->finish = LLM_FINISH_STOP;
			break;
		}
	}
	if (!rc)
		rc = llm_acc_finish(&acc, out);
	llm_acc_free(&acc);
	if (rc)
		goto out;
	json_t *usage = json_object_get(e, "usage");
	out->usage.prompt_tokens = tk_json_get_int(usage, "prompt_tokens", -1);
	out->usage.completion_tokens = tk_json_get_int(usage, "completion_tokens", emitted);
	const char *model = tk_json_get_str(e, "model", NULL);
	if (model && !(out->model = strdup(model)))
		rc = tk_errf(TK_ENOMEM, "scripted: out of memory");
out:
	json_decref(owned);
	return rc;
}

static int scripted_health(struct llm_backend *b)
{
	(void)b;
	return 0;
}

static int scripted_list_models(struct llm_backend *b, char ***names, size_t *n)
{
	char **v = calloc(1, sizeof *v);
	if (!v || !(v[0] = strdup(b->opt.model ? b->opt.model : "scripted"))) {
		free(v);
		return tk_errf(TK_ENOMEM, "scripted: out of memory");
	}
	*names = v;
	*n = 1;
	return 0;
}

const struct llm_backend_ops llm_scripted_ops = {
	.name = "scripted",
	.init = scripted_init,
	.chat = scripted_chat,
	.health = scripted_health,
	.list_models = scripted_list_models,
	.fini = scripted_fini,
};
