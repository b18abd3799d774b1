/*
 * arch.c — the architecture table (arch.h). Owns only static data.
 *
 * Differences from llama that each row captures, checked against
 * llama.cpp's loader: qwen2 adds biases to the Q/K/V projections and rotates
 * NEOX-style (element i with i + n_rot/2); both may tie the output projection
 * to the token embedding when output.weight is missing.
 */
#include "engine/arch.h"

#include <string.h>

static const struct engine_arch arch_table[] = {
	{ .name = "llama", .rope_style = ENGINE_ROPE_NORM, .qkv_bias = false, .tied_ok = true },
	{ .name = "qwen2", .rope_style = ENGINE_ROPE_NEOX, .qkv_bias = true, .tied_ok = true },
};

const struct engine_arch *engine_arch_find(const char *name)
{
	for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
		if (!strcmp(arch_table[i].name, name))
			return &arch_table[i];
	return NULL;
}

const char *engine_arch_names(void)
{
	return "llama, qwen2";
}
