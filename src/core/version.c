/* version.c — build identity (see version.h). */
#include "core/version.h"

#include "tk_build_info.h"

const char *tk_version(void) { return TK_VERSION; }
const char *tk_commit(void) { return TK_COMMIT; }
const char *tk_build_date(void) { return TK_BUILD_DATE; }
