/*
 * cli_adapter.h — the `--adapter FILE[:SCALE]` option shared by the engine
 * commands (tanuki generate, tanuki logits): collects the specs while the
 * options are parsed, then loads and validates every adapter against the
 * model and sets them on a context.
 *
 * A spec is FILE or FILE:SCALE; the part after the last ':' is the scale
 * when it parses as a finite number (default 1.0), so a path containing ':'
 * still works when given a scale. FILE may also be a NAME: when no such file
 * exists, the name has no '/', and `dir` is set (--adapter-dir), it means
 * dir/NAME.gguf. At most ENGINE_LORA_MAX_ACTIVE adapters.
 * Owns the loaded adapters (cli_adapters_free). One thread.
 */
#ifndef TK_CLI_ADAPTER_H
#define TK_CLI_ADAPTER_H

#include <stddef.h>

#include "engine/context.h"
#include "engine/lora.h"

struct cli_adapters {
	const char *spec[ENGINE_LORA_MAX_ACTIVE]; /* borrowed from argv */
	const char *dir; /* --adapter-dir, borrowed; NULL: names are files only */
	size_t n;
	struct engine_lora *lora[ENGINE_LORA_MAX_ACTIVE]; /* owned after load */
	struct engine_lora_use use[ENGINE_LORA_MAX_ACTIVE];
};

/* Records one --adapter argument. CLI_OK or CLI_USAGE (too many). */
int cli_adapters_add(const char *cmd, struct cli_adapters *a, const char *spec);

/* Loads every recorded adapter for m and sets the set on ctx. CLI_OK,
 * CLI_USAGE (bad scale) or CLI_FAIL (message printed). */
int cli_adapters_apply(const char *cmd, struct cli_adapters *a, const struct engine_model *m,
		       struct engine_ctx *ctx);

/* Frees the loaded adapters (after the context that uses them). */
void cli_adapters_free(struct cli_adapters *a);

#endif
