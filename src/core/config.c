/*
 * config.c — the settings table and the file < env < flags layering
 * (see config.h). A module that needs a new setting adds one row to
 * `settings` below and documents it in docs/configuration.md.
 */
#include "core/config.h"

#include "core/err.h"
#include "core/json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

#define NOLIM 0, 0

static const struct tk_cfg_setting settings[] = {
	/* logging */
	{ "log.level", TK_CFG_ENUM, "info", NOLIM, "debug|info|warning|error|critical", false,
	  "lowest level written" },
	{ "log.file", TK_CFG_STRING, "", NOLIM, NULL, false,
	  "log file path; empty means stderr" },
	/* HTTP server */
	{ "server.listen", TK_CFG_STRING, "127.0.0.1:8080", NOLIM, NULL, false,
	  "HOST:PORT the API listens on" },
	{ "server.metrics_listen", TK_CFG_STRING, "", NOLIM, NULL, false,
	  "separate HOST:PORT for /metrics; empty serves it on the API port" },
	{ "server.data_dir", TK_CFG_STRING, "./tanuki-data", NOLIM, NULL, false,
	  "directory of the task database and workspaces" },
	{ "server.workers", TK_CFG_INT, "2", 1, 256, NULL, false,
	  "tasks run at once" },
	{ "server.queue_max", TK_CFG_INT, "64", 1, 100000, NULL, false,
	  "queued tasks before submissions get 503" },
	{ "server.task_timeout_s", TK_CFG_INT, "1800", 1, 86400, NULL, false,
	  "deadline of one task" },
	{ "server.max_body_bytes", TK_CFG_INT, "8388608", 1024, 1073741824, NULL, false,
	  "largest request body accepted" },
	{ "server.max_connections", TK_CFG_INT, "256", 1, 65536, NULL, false,
	  "open connections at once" },
	{ "server.connection_timeout_s", TK_CFG_INT, "30", 1, 3600, NULL, false,
	  "idle or slow connection timeout" },
	{ "server.rate_limit_per_min", TK_CFG_INT, "5", 0, 1000000, NULL, false,
	  "task submissions per key per minute; 0 disables" },
	{ "server.drain_grace_s", TK_CFG_INT, "30", 0, 3600, NULL, false,
	  "time running tasks get to finish after SIGTERM" },
	{ "server.admin_key", TK_CFG_STRING, "", NOLIM, NULL, true,
	  "bootstrap admin API key, created on first start if set" },
	{ "server.http_threads", TK_CFG_INT, "4", 1, 256, NULL, false,
	  "HTTP worker threads (libmicrohttpd pool)" },
	{ "server.rate_limit_read_per_min", TK_CFG_INT, "600", 0, 1000000, NULL, false,
	  "read requests per key per minute (burst up to 120); 0 disables" },
	{ "server.rate_limit_admin_per_min", TK_CFG_INT, "120", 0, 1000000, NULL, false,
	  "admin requests per key per minute (burst up to 60); 0 disables" },
	{ "server.rate_limit_auth_failures_per_min", TK_CFG_INT, "30", 0, 1000000, NULL, false,
	  "failed authentications per client address per minute before 429" },
	{ "server.sse_heartbeat_ms", TK_CFG_INT, "15000", 10, 3600000, NULL, false,
	  "comment line sent on idle event streams" },
	{ "server.runner", TK_CFG_ENUM, "orchestrator", NOLIM, "orchestrator|noop", false,
	  "what runs tasks: orchestrator (the agents, llm.* backend) or noop (tests, benchmarks)" },
	{ "server.llm_health_interval_s", TK_CFG_INT, "15", 0, 86400, NULL, false,
	  "orchestrator runner: seconds between backend health probes for /readyz; 0: none" },
	{ "server.noop_delay_ms", TK_CFG_INT, "0", 0, 86400000, NULL, false,
	  "how long a task of the noop runner takes" },
	{ "server.cors_origin", TK_CFG_STRING, "", NOLIM, NULL, false,
	  "allowed CORS origin; empty turns CORS off" },
	/* sandbox */
	{ "sandbox.default_profile", TK_CFG_STRING, "shell", NOLIM, NULL, false,
	  "profile used when a task names none" },
	{ "sandbox.allow_degraded", TK_CFG_BOOL, "false", NOLIM, NULL, false,
	  "run untrusted code even when the host lacks a required isolation feature" },
	{ "sandbox.profiles", TK_CFG_JSON, "null", NOLIM, NULL, false,
	  "extra or overriding sandbox profiles (object of name -> profile)" },
	/* LLM backend (src/llm/, docs/llm.md) */
	{ "llm.backend", TK_CFG_ENUM, "ollama", NOLIM, "openai|ollama|embedded|scripted", false,
	  "which LLM backend answers: openai (compatible servers), ollama, embedded (the engine, "
	  "llm.model is a GGUF path), scripted (tests)" },
	{ "llm.url", TK_CFG_STRING, "", NOLIM, NULL, false,
	  "backend base URL; empty: http://127.0.0.1:11434 (ollama), http://127.0.0.1:8080/v1 (openai)" },
	{ "llm.api_key", TK_CFG_STRING, "", NOLIM, NULL, true,
	  "bearer token for the openai backend; never logged" },
	{ "llm.model", TK_CFG_STRING, "", NOLIM, NULL, false,
	  "model name asked for when a call names none" },
	{ "llm.script", TK_CFG_STRING, "", NOLIM, NULL, false,
	  "scripted backend: the JSON file of recorded replies" },
	{ "llm.adapter_models", TK_CFG_JSON, "null", NOLIM, NULL, false,
	  "object adapter -> model name for remote backends (e.g. an Ollama model per adapter)" },
	{ "llm.keep_alive", TK_CFG_STRING, "", NOLIM, NULL, false,
	  "ollama: keep_alive of the model (\"5m\", \"-1\"); empty leaves Ollama's default" },
	{ "llm.num_ctx", TK_CFG_INT, "0", 0, 1048576, NULL, false,
	  "ollama: options.num_ctx; 0 leaves the model's default" },
	{ "llm.connect_timeout_ms", TK_CFG_INT, "5000", 1, 600000, NULL, false,
	  "TCP connect timeout of remote backends" },
	{ "llm.read_timeout_ms", TK_CFG_INT, "60000", 1, 3600000, NULL, false,
	  "longest silence while reading a reply before the attempt fails" },
	{ "llm.request_timeout_ms", TK_CFG_INT, "0", 0, 86400000, NULL, false,
	  "deadline of one call, retries included; 0: none" },
	{ "llm.max_retries", TK_CFG_INT, "3", 0, 100, NULL, false,
	  "extra attempts on 429, 5xx, connection errors and cut streams" },
	{ "llm.backoff_ms", TK_CFG_INT, "500", 0, 600000, NULL, false,
	  "first retry backoff (doubles each retry, jittered)" },
	{ "llm.backoff_max_ms", TK_CFG_INT, "8000", 0, 3600000, NULL, false,
	  "longest single backoff (also caps Retry-After)" },
	{ "llm.breaker_failures", TK_CFG_INT, "5", 0, 1000, NULL, false,
	  "consecutive failed calls that open the circuit breaker; 0 disables it" },
	{ "llm.breaker_cooldown_ms", TK_CFG_INT, "30000", 0, 3600000, NULL, false,
	  "how long an open breaker fails calls fast" },
	{ "llm.max_response_bytes", TK_CFG_INT, "8388608", 1024, 1073741824, NULL, false,
	  "largest reply accepted from a backend" },
	{ "llm.embedded_contexts", TK_CFG_INT, "1", 1, 256, NULL, false,
	  "embedded: sequences of the one shared context, i.e. calls served and batched at once" },
	{ "llm.embedded_ctx", TK_CFG_INT, "0", 0, 1048576, NULL, false,
	  "embedded: positions per sequence; 0: min(training context, 4096)" },
	{ "llm.embedded_threads", TK_CFG_INT, "0", 0, 64, NULL, false,
	  "embedded: threads of one context's forward pass; 0: physical cores" },
	{ "llm.adapter_dir", TK_CFG_STRING, "", NOLIM, NULL, false,
	  "embedded: directory of <adapter>.gguf LoRA files; empty: no adapters" },
	{ "llm.adapter_budget_bytes", TK_CFG_INT, "0", 0, 1099511627776.0, NULL, false,
	  "embedded: resident adapter bytes before LRU eviction; 0: unlimited" },
	/* agents (src/agents/, docs/agents.md) */
	{ "agents.team", TK_CFG_JSON, "null", NOLIM, NULL, false,
	  "array of agent objects that override agents of the default team by name or add "
	  "new ones (docs/agents.md)" },
	{ "agents.plans", TK_CFG_INT, "2", 1, 8, NULL, false,
	  "candidate plans the planner proposes (the critic picks one when more than 1)" },
	{ "agents.max_iterations", TK_CFG_INT, "6", 1, 100, NULL, false,
	  "verification rounds (build, test, review, fix) per task before it fails" },
	{ "agents.max_tokens", TK_CFG_INT, "200000", 1, 1000000000, NULL, false,
	  "LLM tokens (prompt + completion) per task before it times out" },
	{ "agents.wall_s", TK_CFG_INT, "1800", 1, 604800, NULL, false,
	  "wall-clock seconds per task before it times out" },
	{ "agents.sandbox_s", TK_CFG_INT, "600", 1, 604800, NULL, false,
	  "seconds of sandbox runs (tools and tests together) per task before it times out" },
	{ "agents.context_tokens", TK_CFG_INT, "8192", 256, 10485760, NULL, false,
	  "the model's context window every briefing (plus the reply) must fit in" },
	{ "agents.max_repairs", TK_CFG_INT, "2", 0, 20, NULL, false,
	  "malformed replies in a row that get a repair message before the agent's turn ends" },
	{ "agents.tool_output_bytes", TK_CFG_INT, "4096", 256, 1048576, NULL, false,
	  "bytes of each tool or test output kept in briefings and results" },
	{ "agents.profile", TK_CFG_STRING, "", NOLIM, NULL, false,
	  "sandbox profile for every task; empty: the task language's, else "
	  "sandbox.default_profile" },
	{ "agents.work_dir", TK_CFG_STRING, "", NOLIM, NULL, false,
	  "parent directory of task workspaces; empty: $TMPDIR or /tmp" },
	{ "agents.keep_workspace", TK_CFG_BOOL, "false", NOLIM, NULL, false,
	  "keep each task's workspace directory after the task (debugging)" },
	{ "agents.seed", TK_CFG_INT, "0", 0, 9007199254740991.0, NULL, false,
	  "base of the sampling seed of every model call (0: no seed is sent)" },
};

#define N_SETTINGS (sizeof settings / sizeof settings[0])

struct cfg_value {
	enum tk_cfg_source src;
	union {
		char *s; /* STRING, ENUM: owned */
		int64_t i;
		double d;
		bool b;
		json_t *j; /* JSON: owned reference */
	} u;
};

struct tk_config {
	struct cfg_value v[N_SETTINGS];
};

const struct tk_cfg_setting *tk_config_settings(size_t *n)
{
	*n = N_SETTINGS;
	return settings;
}

static int find_setting(const char *key)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (!strcmp(settings[i].key, key))
			return (int)i;
	return -1;
}

static const char *source_name(enum tk_cfg_source s)
{
	static const char *const names[] = { "default", "file", "env", "flag" };
	return names[s];
}

static bool choice_ok(const char *choices, const char *s)
{
	size_t n = strlen(s);
	for (const char *p = choices; *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && !strncmp(p, s, n))
			return true;
		if (!bar)
			break;
		p = bar + 1;
	}
	return false;
}

/* Parses text into a value for setting i. 0 or TK_EINVAL naming the key. */
static int parse_value(size_t i, const char *text, struct cfg_value *out)
{
	const struct tk_cfg_setting *s = &settings[i];
	char *end;
	switch (s->type) {
	case TK_CFG_STRING:
		out->u.s = strdup(text);
		return out->u.s ? 0 : tk_errf(TK_ENOMEM, "%s: out of memory", s->key);
	case TK_CFG_ENUM:
		if (!choice_ok(s->choices, text))
			return tk_errf(TK_EINVAL, "%s: must be one of %s, got '%s'", s->key,
				       s->choices, text);
		out->u.s = strdup(text);
		return out->u.s ? 0 : tk_errf(TK_ENOMEM, "%s: out of memory", s->key);
	case TK_CFG_INT: {
		errno = 0;
		long long v = strtoll(text, &end, 10);
		if (errno || end == text || *end)
			return tk_errf(TK_EINVAL, "%s: expected an integer, got '%s'", s->key, text);
		if ((double)v < s->min || (double)v > s->max)
			return tk_errf(TK_EINVAL, "%s: must be in %.0f..%.0f, got %lld", s->key,
				       s->min, s->max, v);
		out->u.i = v;
		return 0;
	}
	case TK_CFG_DOUBLE: {
		errno = 0;
		double v = strtod(text, &end);
		if (errno || end == text || *end || !isfinite(v))
			return tk_errf(TK_EINVAL, "%s: expected a number, got '%s'", s->key, text);
		if (v < s->min || v > s->max)
			return tk_errf(TK_EINVAL, "%s: must be in %g..%g, got %g", s->key, s->min,
				       s->max, v);
		out->u.d = v;
		return 0;
	}
	case TK_CFG_BOOL:
		if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes") ||
		    !strcmp(text, "on"))
			out->u.b = true;
		else if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "no") ||
			 !strcmp(text, "off"))
			out->u.b = false;
		else
			return tk_errf(TK_EINVAL, "%s: expected true or false, got '%s'", s->key,
				       text);
		return 0;
	case TK_CFG_JSON: {
		json_t *j;
		if (tk_json_parse(text, strlen(text), 16u << 20, &j))
			return tk_err_wrap(TK_EINVAL, "%s", s->key);
		out->u.j = j;
		return 0;
	}
	}
	return tk_errf(TK_EINTERNAL, "%s: bad setting type", s->key);
}

static void release_value(size_t i, struct cfg_value *v)
{
	switch (settings[i].type) {
	case TK_CFG_STRING:
	case TK_CFG_ENUM:
		free(v->u.s);
		v->u.s = NULL;
		break;
	case TK_CFG_JSON:
		json_decref(v->u.j);
		v->u.j = NULL;
		break;
	default:
		break;
	}
}

void tk_config_free(struct tk_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < N_SETTINGS; i++)
		release_value(i, &c->v[i]);
	free(c);
}

static int set_index(struct tk_config *c, size_t i, const char *text, enum tk_cfg_source src)
{
	if (c->v[i].src > src)
		return 0; /* a higher-precedence source already decided */
	struct cfg_value nv = { .src = src };
	int rc = parse_value(i, text, &nv);
	if (rc)
		return rc;
	release_value(i, &c->v[i]);
	c->v[i] = nv;
	return 0;
}

int tk_config_set(struct tk_config *c, const char *key, const char *text, enum tk_cfg_source src)
{
	int i = find_setting(key);
	if (i < 0)
		return tk_errf(TK_ENOENT, "unknown setting '%s'", key);
	return set_index(c, (size_t)i, text, src);
}

int tk_config_set_arg(struct tk_config *c, const char *assignment)
{
	const char *eq = strchr(assignment, '=');
	if (!eq || eq == assignment)
		return tk_errf(TK_EINVAL, "--set: expected KEY=VALUE, got '%s'", assignment);
	char key[128];
	size_t klen = (size_t)(eq - assignment);
	if (klen >= sizeof key)
		return tk_errf(TK_EINVAL, "--set: key too long");
	memcpy(key, assignment, klen);
	key[klen] = '\0';
	int rc = tk_config_set(c, key, eq + 1, TK_CFG_SRC_FLAG);
	return rc ? tk_err_wrap(rc, "--set %s", key) : 0;
}

/* Appends one problem line to errs (capped; the cap only shortens the list). */
static void add_problem(struct tk_buf *errs, int *first_rc, int rc, const char *prefix)
{
	if (!*first_rc)
		*first_rc = rc;
	if (errs->len)
		tk_buf_putc(errs, '\n');
	tk_buf_printf(errs, "%s%s", prefix, tk_err_detail());
}

/* A JSON file value as the text form parse_value takes. */
static char *value_text(size_t i, const json_t *v)
{
	if (settings[i].type == TK_CFG_JSON)
		return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_integer(v) || json_is_real(v) || json_is_boolean(v))
		return json_dumps(v, JSON_ENCODE_ANY);
	return NULL;
}

/* Walks the file's object; prefix is the dotted path so far. */
static void apply_file_object(struct tk_config *c, const json_t *obj, const char *prefix,
			      const char *path, struct tk_buf *errs, int *first_rc)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		char key[256];
		snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", k);
		char where[512];
		snprintf(where, sizeof where, "%s: ", path);
		int i = find_setting(key);
		if (i < 0 && json_is_object(v)) {
			apply_file_object(c, v, key, path, errs, first_rc);
			continue;
		}
		if (i < 0) {
			tk_errf(TK_ENOENT, "unknown setting '%s'", key);
			add_problem(errs, first_rc, TK_ENOENT, where);
			continue;
		}
		enum tk_cfg_type t = settings[i].type;
		bool ok = t == TK_CFG_JSON ||
			  ((t == TK_CFG_STRING || t == TK_CFG_ENUM) && json_is_string(v)) ||
			  (t == TK_CFG_INT && json_is_integer(v)) ||
			  (t == TK_CFG_DOUBLE && json_is_number(v)) ||
			  (t == TK_CFG_BOOL && json_is_boolean(v));
		if (!ok) {
			static const char *const want[] = { "a string", "an integer", "a number",
							    "a boolean", "a string", "any" };
			tk_errf(TK_EINVAL, "%s: expected %s, got %s", key, want[t],
				tk_json_type_name(v));
			add_problem(errs, first_rc, TK_EINVAL, where);
			continue;
		}
		char *text = value_text((size_t)i, v);
		if (!text) {
			tk_errf(TK_ENOMEM, "%s: out of memory", key);
			add_problem(errs, first_rc, TK_ENOMEM, where);
			continue;
		}
		int rc = set_index(c, (size_t)i, text, TK_CFG_SRC_FILE);
		free(text);
		if (rc)
			add_problem(errs, first_rc, rc, where);
	}
}

static void apply_file(struct tk_config *c, const char *path, struct tk_buf *errs, int *first_rc)
{
	json_error_t e;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
	if (!root) {
		if (e.line <= 0)
			tk_errf(TK_EIO, "%s: %s", path, e.text);
		else
			tk_errf(TK_EFORMAT, "%s: line %d column %d: %s", path, e.line, e.column,
				e.text);
		add_problem(errs, first_rc, e.line <= 0 ? TK_EIO : TK_EFORMAT, "");
		return;
	}
	if (!json_is_object(root)) {
		tk_errf(TK_EFORMAT, "%s: the configuration must be a JSON object", path);
		add_problem(errs, first_rc, TK_EFORMAT, "");
	} else {
		apply_file_object(c, root, "", path, errs, first_rc);
	}
	json_decref(root);
}

/* "TANUKI_SERVER_LISTEN" -> index of "server.listen", or -1. */
static int find_env_setting(const char *name, size_t name_len)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const char *k = settings[i].key;
		size_t j = 0;
		for (; k[j] && j < name_len; j++) {
			char want = (k[j] == '.' || k[j] == '-') ? '_' : (char)toupper((unsigned char)k[j]);
			if (name[j] != want)
				break;
		}
		if (!k[j] && j == name_len)
			return (int)i;
	}
	return -1;
}

/* TANUKI_* variables that are not settings: the CLI client's and the test
 * tooling's own. A name ending in '=' must match whole; the rest are
 * prefixes. Documented in docs/configuration.md. */
static bool is_tooling_var(const char *name)
{
	static const char *const tooling[] = {
		"CONFIG=", "BIN=", "DATA_DIR=", "URL=", "API_KEY=",
		"TEST_", "SKIP_", "SLOW_", "NO_", "SANDBOX_TESTS_",
	};
	for (size_t i = 0; i < sizeof tooling / sizeof tooling[0]; i++)
		if (!strncmp(name, tooling[i], strlen(tooling[i])))
			return true;
	return false;
}

static void apply_env(struct tk_config *c, char *const *envp, struct tk_buf *errs, int *first_rc)
{
	static const char prefix[] = "TANUKI_";
	for (; envp && *envp; envp++) {
		const char *e = *envp;
		if (strncmp(e, prefix, sizeof prefix - 1))
			continue;
		const char *eq = strchr(e, '=');
		if (!eq)
			continue;
		const char *name = e + sizeof prefix - 1;
		size_t name_len = (size_t)(eq - name);
		if (is_tooling_var(name))
			continue;
		char where[160];
		snprintf(where, sizeof where, "%.*s: ", (int)(eq - e), e);
		int i = find_env_setting(name, name_len);
		if (i < 0) {
			tk_errf(TK_ENOENT, "not a Tanuki setting");
			add_problem(errs, first_rc, TK_ENOENT, where);
			continue;
		}
		int rc = set_index(c, (size_t)i, eq + 1, TK_CFG_SRC_ENV);
		if (rc)
			add_problem(errs, first_rc, rc, where);
	}
}

int tk_config_load(const char *path, char *const *envp, struct tk_config **out)
{
	*out = NULL;
	struct tk_config *c = calloc(1, sizeof *c);
	if (!c)
		return tk_errf(TK_ENOMEM, "config: out of memory");
	int first_rc = 0;
	struct tk_buf errs = TK_BUF_INIT(16384);
	for (size_t i = 0; i < N_SETTINGS && !first_rc; i++) {
		int rc = set_index(c, i, settings[i].default_text, TK_CFG_SRC_DEFAULT);
		if (rc) /* a bad default is a bug in the table above */
			add_problem(&errs, &first_rc, rc, "default: ");
	}
	if (!first_rc && path)
		apply_file(c, path, &errs, &first_rc);
	apply_env(c, envp ? envp : environ, &errs, &first_rc);
	if (first_rc) {
		tk_errf(first_rc, "%s", tk_buf_str(&errs));
		tk_buf_free(&errs);
		tk_config_free(c);
		return first_rc;
	}
	tk_buf_free(&errs);
	*out = c;
	return 0;
}

static const struct cfg_value *get_checked(const struct tk_config *c, const char *key,
					   enum tk_cfg_type t1, enum tk_cfg_type t2)
{
	int i = find_setting(key);
	if (i < 0 || (settings[i].type != t1 && settings[i].type != t2)) {
		/* A typo in code, not in input: fail loudly at once. */
		fprintf(stderr, "tanuki: BUG: config key '%s' unknown or of another type\n", key);
		abort();
	}
	return &c->v[i];
}

const char *tk_config_str(const struct tk_config *c, const char *key)
{
	return get_checked(c, key, TK_CFG_STRING, TK_CFG_ENUM)->u.s;
}

int64_t tk_config_int(const struct tk_config *c, const char *key)
{
	return get_checked(c, key, TK_CFG_INT, TK_CFG_INT)->u.i;
}

double tk_config_double(const struct tk_config *c, const char *key)
{
	return get_checked(c, key, TK_CFG_DOUBLE, TK_CFG_DOUBLE)->u.d;
}

bool tk_config_bool(const struct tk_config *c, const char *key)
{
	return get_checked(c, key, TK_CFG_BOOL, TK_CFG_BOOL)->u.b;
}

const json_t *tk_config_json(const struct tk_config *c, const char *key)
{
	return get_checked(c, key, TK_CFG_JSON, TK_CFG_JSON)->u.j;
}

enum tk_cfg_source tk_config_source(const struct tk_config *c, const char *key)
{
	int i = find_setting(key);
	return i < 0 ? TK_CFG_SRC_DEFAULT : c->v[i].src;
}

static json_t *value_json(size_t i, const struct cfg_value *v)
{
	const struct tk_cfg_setting *s = &settings[i];
	if (s->secret)
		return json_string(v->u.s && *v->u.s ? "********" : "");
	switch (s->type) {
	case TK_CFG_STRING:
	case TK_CFG_ENUM: return json_string(v->u.s);
	case TK_CFG_INT: return json_integer(v->u.i);
	case TK_CFG_DOUBLE: return json_real(v->u.d);
	case TK_CFG_BOOL: return json_boolean(v->u.b);
	case TK_CFG_JSON: return json_incref(v->u.j);
	}
	return json_null();
}

int tk_config_dump(const struct tk_config *c, bool with_sources, struct tk_buf *out)
{
	json_t *root = json_object();
	int rc = 0;
	for (size_t i = 0; i < N_SETTINGS && root; i++) {
		/* Walk/create the section objects of "a.b.c". */
		json_t *parent = root;
		char key[128];
		snprintf(key, sizeof key, "%s", settings[i].key);
		char *part = key, *dot;
		while ((dot = strchr(part, '.'))) {
			*dot = '\0';
			json_t *sec = json_object_get(parent, part);
			if (!sec) {
				sec = json_object();
				json_object_set_new(parent, part, sec);
			}
			parent = sec;
			part = dot + 1;
		}
		json_t *val = value_json(i, &c->v[i]);
		if (with_sources)
			val = json_pack("{s:o,s:s}", "value", val, "source",
					source_name(c->v[i].src));
		json_object_set_new(parent, part, val);
	}
	if (!root)
		return tk_errf(TK_ENOMEM, "config: out of memory");
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text)
		return tk_errf(TK_ENOMEM, "config: out of memory");
	rc = tk_buf_puts(out, text);
	if (!rc)
		rc = tk_buf_putc(out, '\n');
	free(text);
	return rc;
}

void tk_config_register_secrets(const struct tk_config *c, int (*add_secret)(const char *value))
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (settings[i].secret && c->v[i].u.s && *c->v[i].u.s)
			add_secret(c->v[i].u.s);
}
