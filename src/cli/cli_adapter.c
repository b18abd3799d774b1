/* cli_adapter.c — `--adapter FILE[:SCALE]` for the engine commands
 * (cli_adapter.h). */
#include "cli/cli_adapter.h"

#include "cli/cli.h"
#include "core/err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_adapters_add(const char *cmd, struct cli_adapters *a, const char *spec)
{
	if (a->n == ENGINE_LORA_MAX_ACTIVE)
		return cli_usage_error(cmd, "--adapter: at most %d adapters", ENGINE_LORA_MAX_ACTIVE);
	if (!spec[0])
		return cli_usage_error(cmd, "--adapter: empty argument");
	a->spec[a->n++] = spec;
	return CLI_OK;
}

/* Splits spec into a path (copied into path, cap bytes) and a scale. */
static int split_spec(const char *cmd, const char *spec, char *path, size_t cap, float *scale)
{
	*scale = 1.0f;
	const char *colon = strrchr(spec, ':');
	size_t plen = strlen(spec);
	if (colon && colon[1]) {
		char *end;
		errno = 0;
		double v = strtod(colon + 1, &end);
		if (!*end && !errno && end != colon + 1) {
			if (!isfinite(v) || fabs(v) > 1e6)
				return cli_usage_error(cmd, "--adapter %s: scale must be finite and "
						       "within +-1e6", spec);
			*scale = (float)v;
			plen = (size_t)(colon - spec);
		}
	}
	if (plen == 0 || plen >= cap)
		return cli_usage_error(cmd, "--adapter %s: bad file name", spec);
	memcpy(path, spec, plen);
	path[plen] = '\0';
	return CLI_OK;
}

int cli_adapters_apply(const char *cmd, struct cli_adapters *a, const struct engine_model *m,
		       struct engine_ctx *ctx)
{
	for (size_t i = 0; i < a->n; i++) {
		char path[4096];
		float scale;
		int rc = split_spec(cmd, a->spec[i], path, sizeof path, &scale);
		if (rc)
			return rc;
		if (a->dir && !strchr(path, '/') && access(path, F_OK) != 0) {
			char byname[4096];
			if (snprintf(byname, sizeof byname, "%s/%s.gguf", a->dir, path) >=
			    (int)sizeof byname)
				return cli_usage_error(cmd, "--adapter %s: name too long", path);
			memcpy(path, byname, strlen(byname) + 1);
		}
		a->lora[i] = engine_lora_load(path, m);
		if (!a->lora[i])
			return cli_fail(cmd, "cannot use adapter %s", path);
		a->use[i] = (struct engine_lora_use){ a->lora[i], scale };
	}
	if (engine_ctx_set_adapters(ctx, a->use, a->n) < 0)
		return cli_fail(cmd, "cannot set the adapters");
	return CLI_OK;
}

void cli_adapters_free(struct cli_adapters *a)
{
	for (size_t i = 0; i < ENGINE_LORA_MAX_ACTIVE; i++) {
		engine_lora_free(a->lora[i]);
		a->lora[i] = NULL;
	}
}
