/*
 * config.h — Tanuki's configuration: typed settings with defaults, from one
 * JSON file, overridden by TANUKI_* environment variables, overridden by
 * command-line flags.
 *
 * Every setting has a dotted key ("server.listen"), a type, a safe default,
 * validation (range, choices) and a secret flag. In the file, keys nest by
 * their dots: {"server": {"listen": "127.0.0.1:8080"}}. In the environment
 * the key is upper-cased with dots and dashes turned into underscores:
 * TANUKI_SERVER_LISTEN. On the command line: --set server.listen=... (and
 * whatever dedicated flags a command maps onto keys with tk_config_set).
 *
 * A bad value is reported with its key, its source and the reason:
 *     "TANUKI_SERVER_WORKERS: server.workers: must be in 1..256, got 0"
 * Unknown keys in the file or in TANUKI_* variables are errors (they are
 * usually typos), except inside settings of type JSON (free-form sections
 * such as sandbox.profiles or agents, validated by their modules).
 *
 * The settings table lives in config.c: a module that needs a setting adds
 * one row there. A tk_config is immutable after loading except through
 * tk_config_set; it has no lock, so build it on one thread and then share it
 * read-only.
 */
#ifndef TK_CORE_CONFIG_H
#define TK_CORE_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum tk_cfg_type { TK_CFG_STRING, TK_CFG_INT, TK_CFG_DOUBLE, TK_CFG_BOOL, TK_CFG_ENUM, TK_CFG_JSON };

/* Where a value came from, lowest precedence first. */
enum tk_cfg_source { TK_CFG_SRC_DEFAULT, TK_CFG_SRC_FILE, TK_CFG_SRC_ENV, TK_CFG_SRC_FLAG };

struct tk_cfg_setting {
	const char *key;           /* dotted, lower case: "server.listen" */
	enum tk_cfg_type type;
	const char *default_text;  /* default, written as it would be in the env */
	double min, max;           /* INT and DOUBLE: inclusive range */
	const char *choices;       /* ENUM: "a|b|c" */
	bool secret;               /* masked by tk_config_dump, never logged */
	const char *help;          /* one line, for `tanuki config show --help` */
};

struct tk_config;

/* Loads the configuration: defaults, then path (NULL: no file), then every
 * TANUKI_* entry of envp (NULL: the process environment). On failure returns
 * a negative code with all problems found listed in the error detail, one
 * per line, and *out is NULL. */
int tk_config_load(const char *path, char *const *envp, struct tk_config **out);

void tk_config_free(struct tk_config *c); /* NULL ok */

/* Sets key from its text form (as for an env variable; JSON text for JSON
 * settings) with the given source, unless a higher-precedence source already
 * set it. 0, or TK_ENOENT (unknown key) / TK_EINVAL (bad value) with detail. */
int tk_config_set(struct tk_config *c, const char *key, const char *text,
		  enum tk_cfg_source src);

/* Parses "key=value" (the --set flag) and calls tk_config_set with
 * TK_CFG_SRC_FLAG. */
int tk_config_set_arg(struct tk_config *c, const char *assignment);

/* Typed getters. The key must exist in the table with that type: asking for
 * an unknown key or the wrong type is a programming error and aborts. Strings
 * and JSON values are borrowed from the config. */
const char *tk_config_str(const struct tk_config *c, const char *key);
int64_t tk_config_int(const struct tk_config *c, const char *key);
double tk_config_double(const struct tk_config *c, const char *key);
bool tk_config_bool(const struct tk_config *c, const char *key);
const json_t *tk_config_json(const struct tk_config *c, const char *key);
enum tk_cfg_source tk_config_source(const struct tk_config *c, const char *key);

/* The settings table and its size. */
const struct tk_cfg_setting *tk_config_settings(size_t *n);

/* Appends the effective configuration as pretty JSON nested by section,
 * secrets shown as "********" when set. With sources, each value becomes
 * {"value": ..., "source": "default|file|env|flag"}. */
int tk_config_dump(const struct tk_config *c, bool with_sources, struct tk_buf *out);

/* Registers every non-empty secret value with the logger's redaction. */
void tk_config_register_secrets(const struct tk_config *c,
				int (*add_secret)(const char *value));

#endif
