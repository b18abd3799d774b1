/*
 * env.h — the tooling switches read from the environment: TANUKI_NO_*
 * variables (TANUKI_NO_AVX512, TANUKI_NO_REPACK, TANUKI_NO_ATTN_SIMD,
 * TANUKI_NO_GRAMMAR_TRIE, ...), which the config loader lets through as
 * tooling rather than settings (config.c, docs/configuration.md). Kept apart
 * from config.c so small targets (the GGUF fuzzer) link it alone.
 *
 * Thread safety: reads the environment; call it where nothing modifies the
 * environment concurrently (every caller reads it once, at start-up).
 */
#ifndef TK_CORE_ENV_H
#define TK_CORE_ENV_H

#include <stdbool.h>

/* Whether the switch `name` is set: present with a value other than ""
 * or "0". Reads the environment now. */
bool tk_env_flag(const char *name);

#endif
