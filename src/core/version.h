/*
 * version.h — what this binary is: semantic version, git commit and build
 * date, embedded at build time (cmake/build_info.cmake). Outside a git
 * checkout the commit reads "unknown". Thread-safe, constant strings.
 */
#ifndef TK_CORE_VERSION_H
#define TK_CORE_VERSION_H

const char *tk_version(void);
const char *tk_commit(void);
const char *tk_build_date(void);

#endif
