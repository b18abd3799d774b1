/* cli_llm.c — shared CLI helpers for LLM calls (see cli_llm.h): --set
 * lists built from shorthand flags and schema/grammar file reading. */
#include "cli/cli_llm.h"

#include "cli/cli.h"
#include "core/buf.h"
#include "core/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_llm_sets_add(const char *cmd, struct cli_llm_sets *s, const char *key,
		     const char *value)
{
	if (s->n_sets >= CLI_LLM_MAX_SETS)
		return cli_usage_error(cmd, "too many --set flags (at most %d)", CLI_LLM_MAX_SETS);
	if (!key) {
		s->sets[s->n_sets++] = (char *)value;
		return CLI_OK;
	}
	size_t n = strlen(key) + strlen(value) + 2;
	char *str = malloc(n);
	if (!str)
		return cli_fail(cmd, "out of memory");
	snprintf(str, n, "%s=%s", key, value);
	s->owned[s->n_owned++] = str;
	s->sets[s->n_sets++] = str;
	return CLI_OK;
}

void cli_llm_sets_free(struct cli_llm_sets *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n_owned; i++)
		free(s->owned[i]);
	s->n_owned = 0;
	s->n_sets = 0;
}

char *cli_llm_read_file(const char *cmd, const char *what, const char *path)
{
	FILE *f = fopen(path, "rb");
	struct tk_buf b = TK_BUF_INIT(CLI_LLM_FILE_MAX);
	if (!f) {
		tk_errf_sys(TK_ENOENT, errno, "%s", path);
		cli_fail(cmd, "cannot read %s", what);
		return NULL;
	}
	char chunk[8192];
	size_t n;
	int rc = 0;
	while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		rc = tk_buf_append(&b, chunk, n);
	int rd_err = ferror(f);
	fclose(f);
	if (rc || rd_err) {
		tk_buf_free(&b);
		if (rc)
			tk_errf(TK_ELIMIT, "%s: larger than %u bytes", path, CLI_LLM_FILE_MAX);
		else
			tk_errf(TK_EIO, "%s: read error", path);
		cli_fail(cmd, "cannot read %s", what);
		return NULL;
	}
	char *out = tk_buf_detach(&b, NULL);
	if (!out)
		cli_fail(cmd, "out of memory");
	return out;
}

int cli_llm_read_constraint(const char *cmd, const char *schema_path, const char *grammar_path,
			    char **schema, char **grammar)
{
	*schema = NULL;
	*grammar = NULL;
	if (schema_path && grammar_path)
		return cli_usage_error(cmd, "--json-schema and --grammar are exclusive");
	if (schema_path && !(*schema = cli_llm_read_file(cmd, "--json-schema", schema_path)))
		return CLI_FAIL;
	if (grammar_path && !(*grammar = cli_llm_read_file(cmd, "--grammar", grammar_path)))
		return CLI_FAIL;
	return CLI_OK;
}
