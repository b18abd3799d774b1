/*
 * profile.c — sandbox profiles: the built-in table (c, python, shell), the
 * JSON loader for the "sandbox.profiles" config section, and validation.
 *
 * A profile is plain data (fixed-size arrays, no heap), so a profile set can
 * be copied, and a failed load leaves the caller's set untouched: the loader
 * works on a copy and commits it only when every field checked out.
 */
#include "sandbox/sandbox.h"

#include "core/err.h"
#include "core/json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SB_PROFILE_JSON_MAX (1u << 20) /* 1 MiB of profile text is plenty */

/* Paths the sandbox builds itself; a bind may not cover or replace them.
 * "/etc" as a whole is refused: it holds host secrets (shadow, ssh keys,
 * credentials of services); bind the few files a toolchain needs instead. */
static const char *const reserved_dsts[] = { "/", "/proc", "/dev", "/tmp", "/workspace", "/etc",
					     "/etc/passwd", "/etc/group", "/etc/hosts",
					     "/etc/hostname", "/etc/nsswitch.conf" };
/* Host trees that must never be shown to untrusted code. */
static const char *const refused_srcs[] = { "/", "/proc", "/sys", "/dev", "/etc", "/root",
					    "/home", "/run", "/var/run", "/boot" };

struct builtin_bind {
	const char *src;
	bool optional;
};

static const struct builtin_bind base_binds[] = {
	{ "/usr", false },  { "/bin", false },   { "/lib", false },
	{ "/lib64", true }, { "/sbin", true },   { "/etc/ld.so.cache", true },
	{ "/etc/alternatives", true },
};
static const struct builtin_bind python_binds[] = {
	{ "/etc/python3", true }, { "/etc/python3.11", true },
	{ "/etc/python3.12", true }, { "/etc/python3.13", true },
};

static const char *const base_env[] = {
	"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8",
	"USER=sandbox", "LOGNAME=sandbox", "SHELL=/bin/sh",
};

static void add_bind(struct tk_sandbox_profile *p, const char *src, bool optional)
{
	struct tk_sandbox_bind *b = &p->binds[p->n_binds++];
	memset(b, 0, sizeof *b);
	snprintf(b->src, sizeof b->src, "%s", src);
	b->optional = optional;
}

static void add_env(struct tk_sandbox_profile *p, const char *kv)
{
	snprintf(p->env[p->n_env++], TK_SB_ENV_MAX, "%s", kv);
}

static void base_profile(struct tk_sandbox_profile *p, const char *name)
{
	memset(p, 0, sizeof *p);
	snprintf(p->name, sizeof p->name, "%s", name);
	for (size_t i = 0; i < sizeof base_binds / sizeof base_binds[0]; i++)
		add_bind(p, base_binds[i].src, base_binds[i].optional);
	for (size_t i = 0; i < sizeof base_env / sizeof base_env[0]; i++)
		add_env(p, base_env[i]);
	p->net = TK_SB_NET_NONE;
}

void tk_sandbox_profiles_defaults(struct tk_sandbox_profiles *set)
{
	memset(set, 0, sizeof *set);
	struct tk_sandbox_profile *p;

	/* c: cc/gcc, make, binutils and the standard headers all live in /usr
	 * (cc is reached through /etc/alternatives). Builds get more room. */
	p = &set->items[set->n++];
	base_profile(p, "c");
	p->limits = (struct tk_sandbox_limits){ .cpu_ms = 60000, .wall_ms = 120000,
						.mem_mb = 1024, .pids = 256, .fsize_mb = 256,
						.output_kb = 1024, .nofile = 512, .tmp_mb = 256,
						.disk_mb = 1024, .disk_inodes = 50000 };

	/* python: python3 and its standard library (/usr/lib/python3.*), with
	 * Debian's site configuration in /etc/python3*. */
	p = &set->items[set->n++];
	base_profile(p, "python");
	for (size_t i = 0; i < sizeof python_binds / sizeof python_binds[0]; i++)
		add_bind(p, python_binds[i].src, python_binds[i].optional);
	add_env(p, "PYTHONDONTWRITEBYTECODE=1");
	add_env(p, "PYTHONUNBUFFERED=1");
	p->limits = (struct tk_sandbox_limits){ .cpu_ms = 30000, .wall_ms = 60000,
						.mem_mb = 1024, .pids = 128, .fsize_mb = 64,
						.output_kb = 1024, .nofile = 256, .tmp_mb = 128,
						.disk_mb = 512, .disk_inodes = 20000 };

	/* shell: sh/bash and coreutils. */
	p = &set->items[set->n++];
	base_profile(p, "shell");
	p->limits = (struct tk_sandbox_limits){ .cpu_ms = 10000, .wall_ms = 30000,
						.mem_mb = 512, .pids = 128, .fsize_mb = 64,
						.output_kb = 1024, .nofile = 256, .tmp_mb = 64,
						.disk_mb = 512, .disk_inodes = 20000 };
}

const struct tk_sandbox_profile *tk_sandbox_profile_find(const struct tk_sandbox_profiles *set,
							 const char *name)
{
	if (!set || !name)
		return NULL;
	for (size_t i = 0; i < set->n; i++)
		if (!strcmp(set->items[i].name, name))
			return &set->items[i];
	return NULL;
}

/* Absolute, no empty, "." or ".." components, no trailing slash. */
static bool path_clean(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= TK_SB_PATH_MAX || s[0] != '/')
		return false;
	if (n == 1)
		return true;
	if (s[n - 1] == '/')
		return false;
	const char *c = s + 1;
	while (*c) {
		const char *e = strchr(c, '/');
		size_t len = e ? (size_t)(e - c) : strlen(c);
		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		c += len;
		if (*c == '/')
			c++;
	}
	for (const char *q = s; *q; q++)
		if ((unsigned char)*q < 0x20)
			return false;
	return true;
}

static bool path_is_or_under(const char *path, const char *top)
{
	size_t n = strlen(top);
	if (!strcmp(top, "/"))
		return !strcmp(path, "/");
	return !strncmp(path, top, n) && (path[n] == '\0' || path[n] == '/');
}

static bool env_ok(const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv)
		return false;
	if (!(isalpha((unsigned char)kv[0]) || kv[0] == '_'))
		return false;
	for (const char *q = kv; q < eq; q++)
		if (!(isalnum((unsigned char)*q) || *q == '_'))
			return false;
	return true;
}

struct limit_field {
	const char *name;
	size_t off;
	uint64_t max;
};

#define LF(n, m) { #n, offsetof(struct tk_sandbox_limits, n), (m) }
static const struct limit_field limit_fields[] = {
	LF(cpu_ms, 86400000), LF(wall_ms, 86400000), LF(mem_mb, 1u << 20),
	LF(pids, 1u << 16), LF(fsize_mb, 1u << 20), LF(output_kb, 1u << 20),
	LF(nofile, 1u << 16), LF(tmp_mb, 1u << 20), LF(disk_mb, 1u << 24),
	LF(disk_inodes, 1u << 26),
};
#undef LF

_Static_assert(sizeof(struct tk_sandbox_limits) ==
		       sizeof limit_fields / sizeof limit_fields[0] * sizeof(uint64_t),
	       "every limit has a row");

int tk_sandbox_limits_check(const struct tk_sandbox_limits *l, bool zero_ok)
{
	for (size_t i = 0; i < sizeof limit_fields / sizeof limit_fields[0]; i++) {
		uint64_t v = *(const uint64_t *)((const char *)l + limit_fields[i].off);
		if ((v == 0 && !zero_ok) || v > limit_fields[i].max)
			return tk_errf(TK_EINVAL, "limits.%s: must be in %d..%llu, got %llu",
				       limit_fields[i].name, zero_ok ? 0 : 1,
				       (unsigned long long)limit_fields[i].max,
				       (unsigned long long)v);
	}
	return 0;
}

int tk_sandbox_profile_check(const struct tk_sandbox_profile *p)
{
	if (!p)
		return tk_errf(TK_EINVAL, "sandbox profile: NULL");
	size_t nl = strnlen(p->name, sizeof p->name);
	if (nl == 0 || nl >= sizeof p->name)
		return tk_errf(TK_EINVAL, "sandbox profile: empty or too long name");
	for (size_t i = 0; i < nl; i++)
		if (!(isalnum((unsigned char)p->name[i]) || p->name[i] == '_' || p->name[i] == '-'))
			return tk_errf(TK_EINVAL, "sandbox profile '%s': name may hold only "
				       "letters, digits, '_' and '-'", p->name);
	if (p->n_binds > TK_SB_MAX_BINDS || p->n_env > TK_SB_MAX_ENV)
		return tk_errf(TK_EINVAL, "sandbox profile '%s': too many binds or env", p->name);
	for (size_t i = 0; i < p->n_binds; i++) {
		const struct tk_sandbox_bind *b = &p->binds[i];
		const char *dst = b->dst[0] ? b->dst : b->src;
		if (!path_clean(b->src) || !path_clean(dst))
			return tk_errf(TK_EINVAL, "sandbox profile '%s': binds[%zu]: paths must be "
				       "absolute and normalized (no '.', '..', '//', trailing '/')",
				       p->name, i);
		for (size_t k = 0; k < sizeof refused_srcs / sizeof refused_srcs[0]; k++)
			if (!strcmp(b->src, refused_srcs[k]))
				return tk_errf(TK_EINVAL, "sandbox profile '%s': binds[%zu]: host "
					       "path %s may not be shown to the sandbox",
					       p->name, i, b->src);
		for (size_t k = 0; k < sizeof reserved_dsts / sizeof reserved_dsts[0]; k++)
			if (!strcmp(dst, reserved_dsts[k]))
				return tk_errf(TK_EINVAL, "sandbox profile '%s': binds[%zu]: %s is "
					       "made by the sandbox itself", p->name, i, dst);
		if (path_is_or_under(dst, "/proc") || path_is_or_under(dst, "/dev") ||
		    path_is_or_under(dst, "/tmp") || path_is_or_under(dst, "/workspace"))
			return tk_errf(TK_EINVAL, "sandbox profile '%s': binds[%zu]: %s lies in a "
				       "tree the sandbox mounts itself", p->name, i, dst);
	}
	for (size_t i = 0; i < p->n_env; i++)
		if (strnlen(p->env[i], TK_SB_ENV_MAX) >= TK_SB_ENV_MAX || !env_ok(p->env[i]))
			return tk_errf(TK_EINVAL, "sandbox profile '%s': env[%zu]: expected "
				       "KEY=value", p->name, i);
	int rc = tk_sandbox_limits_check(&p->limits, false);
	if (rc)
		return tk_err_wrap(rc, "sandbox profile '%s'", p->name);
	if (p->net != TK_SB_NET_NONE && p->net != TK_SB_NET_LOOPBACK)
		return tk_errf(TK_EINVAL, "sandbox profile '%s': net must be none or loopback",
			       p->name);
	return 0;
}

/* ---- JSON ------------------------------------------------------------- */

static int load_bind(struct tk_sandbox_profile *p, const char *pname, size_t i, const json_t *v)
{
	if (p->n_binds >= TK_SB_MAX_BINDS)
		return tk_errf(TK_ELIMIT, "sandbox.profiles.%s.binds: more than %d", pname,
			       TK_SB_MAX_BINDS);
	struct tk_sandbox_bind b;
	memset(&b, 0, sizeof b);
	const char *src = NULL, *dst = NULL;
	if (json_is_string(v)) {
		src = json_string_value(v);
	} else if (json_is_object(v)) {
		static const struct tk_json_field fields[] = {
			{ .name = "src", .type = TK_JT_STRING, .required = true,
			  .max_len = TK_SB_PATH_MAX - 1, .min_len = 1 },
			{ .name = "dst", .type = TK_JT_STRING, .max_len = TK_SB_PATH_MAX - 1 },
			{ .name = "rw", .type = TK_JT_BOOL },
			{ .name = "optional", .type = TK_JT_BOOL },
		};
		char where[96];
		snprintf(where, sizeof where, "sandbox.profiles.%s.binds[%zu]", pname, i);
		int rc = tk_json_validate(v, fields, sizeof fields / sizeof fields[0],
					  TK_JSON_REJECT_UNKNOWN, where);
		if (rc)
			return rc;
		src = tk_json_get_str(v, "src", NULL);
		dst = tk_json_get_str(v, "dst", NULL);
		b.rw = tk_json_get_bool(v, "rw", false);
		b.optional = tk_json_get_bool(v, "optional", false);
	} else {
		return tk_errf(TK_EINVAL, "sandbox.profiles.%s.binds[%zu]: expected a path or an "
			       "object, got %s", pname, i, tk_json_type_name(v));
	}
	if (strlen(src) >= sizeof b.src || (dst && strlen(dst) >= sizeof b.dst))
		return tk_errf(TK_ELIMIT, "sandbox.profiles.%s.binds[%zu]: path longer than %d",
			       pname, i, TK_SB_PATH_MAX - 1);
	snprintf(b.src, sizeof b.src, "%s", src);
	if (dst)
		snprintf(b.dst, sizeof b.dst, "%s", dst);
	p->binds[p->n_binds++] = b;
	return 0;
}

static int load_one(struct tk_sandbox_profiles *set, const char *name, const json_t *v)
{
	static const struct tk_json_field fields[] = {
		{ .name = "extends", .type = TK_JT_STRING, .max_len = TK_SB_NAME_MAX - 1 },
		{ .name = "binds", .type = TK_JT_ARRAY, .max_len = TK_SB_MAX_BINDS },
		{ .name = "env", .type = TK_JT_OBJECT },
		{ .name = "limits", .type = TK_JT_OBJECT },
		{ .name = "net", .type = TK_JT_STRING, .max_len = 16 },
	};
	char where[96];
	if (strlen(name) >= TK_SB_NAME_MAX)
		return tk_errf(TK_EINVAL, "sandbox.profiles: name '%.40s...' too long", name);
	snprintf(where, sizeof where, "sandbox.profiles.%s", name);
	if (!json_is_object(v))
		return tk_errf(TK_EINVAL, "%s: expected an object, got %s", where,
			       tk_json_type_name(v));
	int rc = tk_json_validate(v, fields, sizeof fields / sizeof fields[0],
				  TK_JSON_REJECT_UNKNOWN, where);
	if (rc)
		return rc;

	struct tk_sandbox_profile *p = malloc(sizeof *p);
	if (!p)
		return tk_errf(TK_ENOMEM, "%s: out of memory", where);
	const char *ext = tk_json_get_str(v, "extends", NULL);
	if (ext) {
		const struct tk_sandbox_profile *base = tk_sandbox_profile_find(set, ext);
		if (!base) {
			rc = tk_errf(TK_EINVAL, "%s.extends: no profile '%s'", where, ext);
			goto out;
		}
		*p = *base;
	} else {
		memset(p, 0, sizeof *p);
		p->net = TK_SB_NET_NONE;
	}
	snprintf(p->name, sizeof p->name, "%s", name);

	const json_t *binds = json_object_get(v, "binds");
	if (binds) {
		/* Listed binds are added to the inherited ones. */
		size_t i;
		const json_t *b;
		json_array_foreach(binds, i, b) {
			rc = load_bind(p, name, i, b);
			if (rc)
				goto out;
		}
	}
	const json_t *env = json_object_get(v, "env");
	if (env) {
		/* The environment is replaced as a whole: what the program sees
		 * is exactly what the profile says. */
		p->n_env = 0;
		const char *k;
		const json_t *ev;
		json_object_foreach((json_t *)env, k, ev) {
			if (!json_is_string(ev)) {
				rc = tk_errf(TK_EINVAL, "%s.env.%s: expected a string, got %s", where,
					     k, tk_json_type_name(ev));
				goto out;
			}
			if (p->n_env >= TK_SB_MAX_ENV) {
				rc = tk_errf(TK_ELIMIT, "%s.env: more than %d variables", where,
					     TK_SB_MAX_ENV);
				goto out;
			}
			int n = snprintf(p->env[p->n_env], TK_SB_ENV_MAX, "%s=%s", k,
					 json_string_value(ev));
			if (n < 0 || n >= TK_SB_ENV_MAX) {
				rc = tk_errf(TK_ELIMIT, "%s.env.%s: longer than %d bytes", where, k,
					     TK_SB_ENV_MAX - 1);
				goto out;
			}
			p->n_env++;
		}
	}
	const json_t *lim = json_object_get(v, "limits");
	if (lim) {
		const char *k;
		const json_t *lv;
		json_object_foreach((json_t *)lim, k, lv) {
			const struct limit_field *f = NULL;
			for (size_t i = 0; i < sizeof limit_fields / sizeof limit_fields[0]; i++)
				if (!strcmp(limit_fields[i].name, k))
					f = &limit_fields[i];
			if (!f) {
				rc = tk_errf(TK_EINVAL, "%s.limits.%s: unknown limit", where, k);
				goto out;
			}
			if (!json_is_integer(lv) || json_integer_value(lv) < 1 ||
			    (uint64_t)json_integer_value(lv) > f->max) {
				rc = tk_errf(TK_EINVAL, "%s.limits.%s: expected an integer in "
					     "1..%llu", where, k, (unsigned long long)f->max);
				goto out;
			}
			*(uint64_t *)((char *)&p->limits + f->off) = (uint64_t)json_integer_value(lv);
		}
	}
	const char *net = tk_json_get_str(v, "net", NULL);
	if (net) {
		if (!strcmp(net, "none")) {
			p->net = TK_SB_NET_NONE;
		} else if (!strcmp(net, "loopback")) {
			p->net = TK_SB_NET_LOOPBACK;
		} else {
			rc = tk_errf(TK_EINVAL, "%s.net: expected \"none\" or \"loopback\", got "
				     "\"%s\"", where, net);
			goto out;
		}
	}
	rc = tk_sandbox_profile_check(p);
	if (rc) {
		rc = tk_err_wrap(rc, "sandbox.profiles");
		goto out;
	}
	struct tk_sandbox_profile *slot = (struct tk_sandbox_profile *)tk_sandbox_profile_find(set, name);
	if (!slot) {
		if (set->n >= TK_SB_MAX_PROFILES) {
			rc = tk_errf(TK_ELIMIT, "sandbox.profiles: more than %d profiles",
				     TK_SB_MAX_PROFILES);
			goto out;
		}
		slot = &set->items[set->n++];
	}
	*slot = *p;
out:
	free(p);
	return rc;
}

int tk_sandbox_profiles_load(struct tk_sandbox_profiles *set, const json_t *obj)
{
	if (!set)
		return tk_errf(TK_EINVAL, "sandbox.profiles: no profile set");
	if (!obj || json_is_null(obj))
		return 0;
	if (!json_is_object(obj))
		return tk_errf(TK_EINVAL, "sandbox.profiles: expected an object of name -> "
			       "profile, got %s", tk_json_type_name(obj));
	/* Work on a copy: a half-applied load must never be seen. */
	struct tk_sandbox_profiles *tmp = malloc(sizeof *tmp);
	if (!tmp)
		return tk_errf(TK_ENOMEM, "sandbox.profiles: out of memory");
	*tmp = *set;
	int rc = 0;
	const char *name;
	const json_t *v;
	json_object_foreach((json_t *)obj, name, v) {
		rc = load_one(tmp, name, v);
		if (rc)
			break;
	}
	if (!rc)
		*set = *tmp;
	free(tmp);
	return rc;
}

int tk_sandbox_profiles_load_json(struct tk_sandbox_profiles *set, const char *json_text)
{
	if (!json_text)
		return tk_errf(TK_EINVAL, "sandbox.profiles: no text");
	json_t *obj = NULL;
	int rc = tk_json_parse(json_text, strlen(json_text), SB_PROFILE_JSON_MAX, &obj);
	if (rc)
		return tk_err_wrap(rc, "sandbox.profiles");
	rc = tk_sandbox_profiles_load(set, obj);
	json_decref(obj);
	return rc;
}

json_t *tk_sandbox_profile_to_json(const struct tk_sandbox_profile *p)
{
	/* The containers are attached first and filled through borrowed
	 * pointers, so one decref of o frees everything on any failure. */
	json_t *o = json_object();
	json_t *binds = json_array(), *env = json_object(), *lim = json_object();
	if (!o || json_object_set_new(o, "binds", binds) || json_object_set_new(o, "env", env) ||
	    json_object_set_new(o, "limits", lim))
		goto fail;
	if (json_object_set_new(o, "name", json_string(p->name)) ||
	    json_object_set_new(o, "net", json_string(p->net == TK_SB_NET_LOOPBACK ? "loopback"
										    : "none")))
		goto fail;
	for (size_t i = 0; i < p->n_binds; i++) {
		const struct tk_sandbox_bind *b = &p->binds[i];
		json_t *bo = json_pack("{s:s,s:s,s:b,s:b}", "src", b->src, "dst",
				       b->dst[0] ? b->dst : b->src, "rw", b->rw, "optional",
				       b->optional);
		if (!bo || json_array_append_new(binds, bo))
			goto fail;
	}
	for (size_t i = 0; i < p->n_env; i++) {
		const char *eq = strchr(p->env[i], '=');
		if (!eq)
			continue;
		char key[TK_SB_ENV_MAX];
		snprintf(key, sizeof key, "%.*s", (int)(eq - p->env[i]), p->env[i]);
		if (json_object_set_new(env, key, json_string(eq + 1)))
			goto fail;
	}
	for (size_t i = 0; i < sizeof limit_fields / sizeof limit_fields[0]; i++) {
		uint64_t val = *(const uint64_t *)((const char *)&p->limits + limit_fields[i].off);
		if (json_object_set_new(lim, limit_fields[i].name, json_integer((json_int_t)val)))
			goto fail;
	}
	return o;
fail:
	if (!o) {
		json_decref(binds);
		json_decref(env);
		json_decref(lim);
	}
	json_decref(o);
	tk_errf(TK_ENOMEM, "sandbox profile: out of memory building JSON");
	return NULL;
}
