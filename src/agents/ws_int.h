/*
 * ws_int.h — private to workspace.c and tools.c: the workspace object and
 * the link-safe file primitives the tools are built on. Not part of the
 * module's public API (tools.h is).
 *
 * Every primitive works relative to the workspace's directory fd and never
 * follows a symbolic link: openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) where the kernel has it, else a
 * walk one component at a time with O_NOFOLLOW. Errors come back as TK_E*
 * codes with a model-readable detail (tk_err_detail()) that names the path.
 */
#ifndef TK_AGENTS_WS_INT_H
#define TK_AGENTS_WS_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "agents/tools.h"
#include "core/buf.h"

#define AGENT_PATH_MAX 4096     /* bytes of a workspace-relative path */
#define AGENT_NAME_COMP_MAX 255 /* bytes of one path component */
#define AGENT_WS_DEPTH_MAX 64   /* directory levels the tools walk */

struct agent_ws {
	char *path; /* owned: host path of the root */
	int dir_fd; /* owned: O_DIRECTORY fd of the root, held for the ws's life */
};

/* Checks a workspace-relative path and writes its normal form to norm (cap
 * bytes): "." components dropped, no empty component, no "..", no leading
 * '/', no NUL, components <= 255 bytes, <= 4096 bytes in all. allow_root:
 * "", "." (and a trailing '/') are accepted and name the root (norm "").
 * 0 or TK_EINVAL with a detail naming the path. */
int agent_ws_path_check(const char *path, bool allow_root, char *norm, size_t cap);

/* Opens the normalized path norm under the root with flags (O_NOFOLLOW and
 * O_CLOEXEC are always added); norm "" opens the root itself. Refuses links
 * in any component. 0 with *fd set, or TK_ENOENT, TK_EPERM (a link, a mount
 * crossing, a non-directory in the middle), TK_EIO. */
int agent_ws_openat(const struct agent_ws *ws, const char *norm, int flags, int *fd);

/* Reads the regular file norm (one link only, at most max_bytes) into out,
 * which is reset first. TK_EPERM for a link, fifo, device, directory or a
 * hardlinked file; TK_ELIMIT when larger than max_bytes. */
int agent_ws_read_file(const struct agent_ws *ws, const char *norm, size_t max_bytes,
		       struct tk_buf *out);

/* Writes data (n bytes) to norm, creating missing parent directories (0755)
 * and the file (0644); an existing entry must be a regular file with one
 * link (a link, fifo or directory there is refused, never followed).
 * excl: fail with TK_EEXIST when it exists. *created tells whether it was
 * new (may be NULL). */
int agent_ws_write_file(const struct agent_ws *ws, const char *norm, const char *data, size_t n,
			bool excl, bool *created);

/* agent_ws_tree of the directory norm ("" = the root); paths in the text are
 * relative to the root. */
int agent_ws_tree_at(const struct agent_ws *ws, const char *norm, size_t max_bytes,
		     struct tk_buf *out);

/* Whether len bytes are valid UTF-8 without NUL. */
bool agent_text_ok(const char *s, size_t len);

/* Tests only: true forces the component walk instead of openat2. */
void agent_ws_force_walk(bool on);

#endif
