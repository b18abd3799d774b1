/*
 * env.c — tk_env_flag() (env.h): one reading of the TANUKI_NO_* switches.
 */
#include "core/env.h"

#include <stdlib.h>
#include <string.h>

bool tk_env_flag(const char *name)
{
	const char *v = getenv(name);
	return v && *v && strcmp(v, "0") != 0;
}
