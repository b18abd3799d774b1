/*
 * workspace.c — a task's private workspace (tools.h, ws_int.h): creating it
 * from the input files, the link-safe open/read/write primitives every file
 * tool uses, the file tree the briefings show, the snapshot the aggregator
 * diffs, and removing it.
 *
 * Owns: struct agent_ws (its path and the root directory fd).
 *
 * Rule: the workspace's contents are hostile (a program ran there), so no
 * path from it is ever followed: every open is relative to the root fd with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
 * RESOLVE_NO_XDEV), or, where openat2 is missing, a walk one component at a
 * time with O_NOFOLLOW and a device check. Only regular files with a single
 * link are read or written (a hardlink may be a host file), FIFOs are opened
 * non-blocking so they cannot hang us, and removal goes through
 * tk_sandbox_workspace_remove (which removes links, never their targets).
 */
#include "agents/ws_int.h"

#include "core/err.h"
#include "core/utf8.h"
#include "obs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_bool g_no_openat2;   /* the kernel (or a filter) lacks it */
static atomic_bool g_force_walk;   /* tests */

void agent_ws_force_walk(bool on)
{
	atomic_store(&g_force_walk, on);
}

bool agent_text_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		if (p[i] == 0)
			return false;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		int n = tk_utf8_check(p + i, len - i);
		if (n <= 0)
			return false;
		i += (size_t)n;
	}
	return true;
}

/* ---- paths ------------------------------------------------------------- */

int agent_ws_path_check(const char *path, bool allow_root, char *norm, size_t cap)
{
	if (!path)
		return tk_errf(TK_EINVAL, "no path given");
	size_t len = strlen(path);
	if (len > AGENT_PATH_MAX)
		return tk_errf(TK_EINVAL, "path is longer than %d bytes", AGENT_PATH_MAX);
	if (path[0] == '/')
		return tk_errf(TK_EINVAL, "%s: absolute paths are not allowed (paths are relative "
			       "to the workspace root)", path);
	size_t o = 0;
	const char *p = path;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		bool last = !slash;
		if (n == 0) {
			/* "" and "." name the root, and a trailing '/' is fine, for
			 * a directory; "a//b" never. */
			bool whole = len == 0;
			bool trailing = last && p != path;
			if (!(allow_root && (whole || trailing)))
				return tk_errf(TK_EINVAL, "%s: empty path component",
					       len ? path : "\"\"");
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			return tk_errf(TK_EINVAL, "%s: \"..\" is not allowed in paths", path);
		} else if (n > AGENT_NAME_COMP_MAX) {
			return tk_errf(TK_EINVAL, "%s: a path component is longer than %d bytes",
				       path, AGENT_NAME_COMP_MAX);
		} else if (!(n == 1 && p[0] == '.')) {
			if (o + n + 2 > cap)
				return tk_errf(TK_EINVAL, "%s: path too long", path);
			if (o)
				norm[o++] = '/';
			memcpy(norm + o, p, n);
			o += n;
		}
		if (last)
			break;
		p = slash + 1;
	}
	if (cap)
		norm[o < cap ? o : cap - 1] = '\0';
	if (o == 0 && !allow_root)
		return tk_errf(TK_EINVAL, "%s: names no file", len ? path : "\"\"");
	return 0;
}

/* ---- opening without following links ---------------------------------- */

static const char *kind_name(mode_t m)
{
	if (S_ISLNK(m))
		return "a symbolic link";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a fifo";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "not a regular file";
}

/* After an open of norm failed with errno e: finds which component is in the
 * way (a link, a non-directory) and sets a detail naming it. Only
 * fstatat(AT_SYMLINK_NOFOLLOW) on each component: nothing is followed. */
static int explain_open_error(const struct agent_ws *ws, const char *norm, int e)
{
	char buf[AGENT_PATH_MAX + 1];
	snprintf(buf, sizeof buf, "%s", norm);
	int dfd = dup(ws->dir_fd);
	if (dfd < 0)
		return tk_errf_sys(TK_EIO, errno, "%s: open", norm);
	int rc = 0;
	char *p = buf;
	for (;;) {
		char *slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		struct stat st;
		if (fstatat(dfd, p, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = errno == ENOENT ? tk_errf(TK_ENOENT, "%s: no such file or directory", buf)
					     : tk_errf_sys(TK_EIO, errno, "%s", buf);
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			rc = tk_errf(TK_EPERM, "%s is a symbolic link; links in the workspace are "
				     "never followed", buf);
			break;
		}
		if (!slash && e == ENOTDIR) {
			rc = tk_errf(TK_EINVAL, "%s is %s, not a directory", norm,
				     S_ISREG(st.st_mode) ? "a file" : kind_name(st.st_mode));
			break;
		}
		if (!slash) {
			rc = e == ENOENT ? tk_errf(TK_ENOENT, "%s: no such file or directory", norm)
					 : e == EXDEV ? tk_errf(TK_EPERM, "%s: crosses a mount point", norm)
						      : tk_errf_sys(TK_EIO, e, "%s", norm);
			break;
		}
		if (!S_ISDIR(st.st_mode)) {
			rc = tk_errf(e == ENOENT ? TK_ENOENT : TK_EPERM, "%s is %s, not a directory",
				     buf, kind_name(st.st_mode));
			break;
		}
		int nfd = openat(dfd, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0) {
			rc = tk_errf_sys(TK_EIO, errno, "%s", buf);
			break;
		}
		close(dfd);
		dfd = nfd;
		*slash = '/';
		p = slash + 1;
	}
	close(dfd);
	return rc;
}

/* The fallback: one component at a time, each directory opened with
 * O_NOFOLLOW and checked to be on the root's device (no mount crossing). */
static int open_walk(const struct agent_ws *ws, const char *norm, int flags, int *out)
{
	struct stat root;
	if (fstat(ws->dir_fd, &root) < 0)
		return tk_errf_sys(TK_EIO, errno, "workspace: stat");
	char buf[AGENT_PATH_MAX + 1];
	snprintf(buf, sizeof buf, "%s", norm);
	int dfd = dup(ws->dir_fd);
	if (dfd < 0)
		return tk_errf_sys(TK_EIO, errno, "workspace: dup");
	char *p = buf;
	for (;;) {
		char *slash = strchr(p, '/');
		if (!slash)
			break;
		*slash = '\0';
		int nfd = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		int e = errno;
		close(dfd);
		if (nfd < 0)
			return explain_open_error(ws, norm, e);
		struct stat st;
		if (fstat(nfd, &st) < 0 || st.st_dev != root.st_dev) {
			close(nfd);
			return explain_open_error(ws, norm, EXDEV);
		}
		dfd = nfd;
		p = slash + 1;
	}
	int fd = openat(dfd, *p ? p : ".", flags | O_NOFOLLOW | O_CLOEXEC, 0644);
	int e = errno;
	close(dfd);
	if (fd < 0)
		return explain_open_error(ws, norm, e);
	*out = fd;
	return 0;
}

int agent_ws_openat(const struct agent_ws *ws, const char *norm, int flags, int *out)
{
	if (!atomic_load(&g_no_openat2) && !atomic_load(&g_force_walk)) {
		struct open_how how;
		memset(&how, 0, sizeof how);
		how.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC);
		if (flags & O_CREAT)
			how.mode = 0644;
		/* RESOLVE_NO_SYMLINKS: no component may be a link (not just the
		 * last); RESOLVE_BENEATH: no escape by ".." or absolute links;
		 * NO_MAGICLINKS: no /proc/<pid>/fd jumps; NO_XDEV: no mounts. */
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			      RESOLVE_NO_XDEV;
		int fd = (int)syscall(SYS_openat2, ws->dir_fd, *norm ? norm : ".", &how,
				      sizeof how);
		if (fd >= 0) {
			*out = fd;
			return 0;
		}
		int e = errno;
		if (e != ENOSYS && e != E2BIG)
			return explain_open_error(ws, norm, e);
		atomic_store(&g_no_openat2, true);
	}
	return open_walk(ws, norm, flags, out);
}

/* ---- reading and writing ----------------------------------------------- */

static int check_regular(int fd, const char *norm, size_t max_bytes, struct stat *st)
{
	if (fstat(fd, st) < 0)
		return tk_errf_sys(TK_EIO, errno, "%s: stat", norm);
	if (!S_ISREG(st->st_mode))
		return tk_errf(TK_EPERM, "%s is %s, not a regular file", norm,
			       kind_name(st->st_mode));
	/* A second link may be a host file placed there by a program. */
	if (st->st_nlink != 1)
		return tk_errf(TK_EPERM, "%s has %lu hard links; refusing it", norm,
			       (unsigned long)st->st_nlink);
	if (max_bytes && (uint64_t)st->st_size > max_bytes)
		return tk_errf(TK_ELIMIT, "%s is too big (%lld bytes; the limit is %zu)", norm,
			       (long long)st->st_size, max_bytes);
	return 0;
}

static int read_fd(int fd, const char *norm, size_t max_bytes, struct tk_buf *out)
{
	char chunk[16384];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tk_errf_sys(TK_EIO, errno, "%s: read", norm);
		if (n == 0)
			return 0;
		if (out->len + (size_t)n > max_bytes)
			return tk_errf(TK_ELIMIT, "%s is too big (more than %zu bytes)", norm,
				       max_bytes);
		int rc = tk_buf_append(out, chunk, (size_t)n);
		if (rc)
			return rc == TK_ELIMIT ? tk_errf(TK_ELIMIT, "%s is too big", norm) : rc;
	}
}

int agent_ws_read_file(const struct agent_ws *ws, const char *norm, size_t max_bytes,
		       struct tk_buf *out)
{
	tk_buf_reset(out);
	int fd = -1;
	/* O_NONBLOCK: a fifo planted under the name must not hang us. */
	int rc = agent_ws_openat(ws, norm, O_RDONLY | O_NONBLOCK | O_NOCTTY, &fd);
	if (rc)
		return rc;
	struct stat st;
	rc = check_regular(fd, norm, max_bytes, &st);
	if (!rc)
		rc = read_fd(fd, norm, max_bytes, out);
	close(fd);
	return rc;
}

/* Opens (creating as needed) the directory holding norm's last component;
 * *last points into norm at that component. */
static int open_parent_create(const struct agent_ws *ws, const char *norm, int *out,
			      const char **last)
{
	struct stat root;
	if (fstat(ws->dir_fd, &root) < 0)
		return tk_errf_sys(TK_EIO, errno, "workspace: stat");
	char buf[AGENT_PATH_MAX + 1];
	snprintf(buf, sizeof buf, "%s", norm);
	int dfd = dup(ws->dir_fd);
	if (dfd < 0)
		return tk_errf_sys(TK_EIO, errno, "workspace: dup");
	char *p = buf;
	for (;;) {
		char *slash = strchr(p, '/');
		if (!slash)
			break;
		*slash = '\0';
		if (mkdirat(dfd, p, 0755) < 0 && errno != EEXIST) {
			int e = errno;
			close(dfd);
			return e == ENOSPC || e == EDQUOT
				       ? tk_errf_sys(TK_EIO, e, "%s: cannot create directory", buf)
				       : explain_open_error(ws, buf, e);
		}
		int nfd = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		int e = errno;
		close(dfd);
		if (nfd < 0) {
			*slash = '/';
			return explain_open_error(ws, norm, e);
		}
		struct stat st;
		if (fstat(nfd, &st) < 0 || st.st_dev != root.st_dev) {
			close(nfd);
			return tk_errf(TK_EPERM, "%s: crosses a mount point", buf);
		}
		dfd = nfd;
		*slash = '/';
		p = slash + 1;
	}
	*out = dfd;
	*last = norm + (p - buf);
	return 0;
}

int agent_ws_write_file(const struct agent_ws *ws, const char *norm, const char *data, size_t n,
			bool excl, bool *created)
{
	if (created)
		*created = false;
	if (n > AGENT_FILE_MAX)
		return tk_errf(TK_ELIMIT, "%s: content too big (%zu bytes; the limit is %u)", norm, n,
			       AGENT_FILE_MAX);
	int dfd = -1, fd = -1;
	const char *last = NULL;
	int rc = open_parent_create(ws, norm, &dfd, &last);
	if (rc)
		return rc;
	struct stat st;
	bool existed = fstatat(dfd, last, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (existed && excl) {
		rc = tk_errf(TK_EEXIST, "%s: given twice", norm);
		goto out;
	}
	if (existed && !S_ISREG(st.st_mode)) {
		rc = tk_errf(TK_EPERM, "%s is %s; refusing to write there", norm,
			     kind_name(st.st_mode));
		goto out;
	}
	/* No O_TRUNC before the checks: truncating a hardlinked host file
	 * would already be the damage. */
	fd = openat(dfd, last, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
				       (excl ? O_EXCL : 0),
		    0644);
	if (fd < 0) {
		int e = errno;
		rc = e == EEXIST ? tk_errf(TK_EEXIST, "%s: given twice", norm)
				 : e == ELOOP ? tk_errf(TK_EPERM, "%s is a symbolic link; refusing to "
								  "write through it", norm)
					      : tk_errf_sys(TK_EIO, e, "%s: open for writing", norm);
		goto out;
	}
	rc = check_regular(fd, norm, 0, &st);
	if (rc)
		goto out;
	/* Only when there is something to cut: on ext4 a truncate to zero
	 * marks the file for forced allocation at close (auto_da_alloc),
	 * which made creating and removing a 2000-file workspace ten times
	 * slower. */
	if (st.st_size > 0 && ftruncate(fd, 0) < 0) {
		rc = tk_errf_sys(TK_EIO, errno, "%s: truncate", norm);
		goto out;
	}
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(fd, data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = tk_errf_sys(TK_EIO, errno, "%s: write", norm);
			goto out;
		}
		off += (size_t)w;
	}
	if (created)
		*created = !existed;
out:
	if (fd >= 0)
		close(fd);
	close(dfd);
	return rc;
}

/* ---- create, free ------------------------------------------------------ */

int agent_ws_create(const char *parent, const struct agent_file *files, size_t n_files,
		    struct agent_ws **out)
{
	*out = NULL;
	if (n_files && !files)
		return tk_errf(TK_EINVAL, "workspace: files missing");
	if (n_files > AGENT_WS_FILES_MAX)
		return tk_errf(TK_EINVAL, "workspace: %zu input files; at most %d", n_files,
			       AGENT_WS_FILES_MAX);
	if (!parent || !*parent) {
		parent = getenv("TMPDIR");
		if (!parent || !*parent)
			parent = "/tmp";
	}
	struct agent_ws *ws = calloc(1, sizeof *ws);
	if (!ws)
		return tk_errf(TK_ENOMEM, "workspace: out of memory");
	ws->dir_fd = -1;
	int rc = 0;
	size_t plen = strlen(parent) + sizeof "/tanuki-ws-XXXXXX";
	ws->path = malloc(plen);
	if (!ws->path) {
		rc = tk_errf(TK_ENOMEM, "workspace: out of memory");
		goto fail_ws;
	}
	snprintf(ws->path, plen, "%s/tanuki-ws-XXXXXX", parent);
	if (!mkdtemp(ws->path)) {
		rc = tk_errf_sys(TK_EIO, errno, "workspace: mkdtemp under %s", parent);
		goto fail_path;
	}
	ws->dir_fd = open(ws->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ws->dir_fd < 0) {
		rc = tk_errf_sys(TK_EIO, errno, "workspace: open %s", ws->path);
		goto fail_dir;
	}
	uint64_t total = 0;
	for (size_t i = 0; i < n_files; i++) {
		char norm[AGENT_PATH_MAX + 1];
		const struct agent_file *f = &files[i];
		if ((rc = agent_ws_path_check(f->path, false, norm, sizeof norm))) {
			rc = tk_err_wrap(TK_EINVAL, "workspace: files[%zu]", i);
			goto fail_fd;
		}
		if (f->size && !f->content) {
			rc = tk_errf(TK_EINVAL, "workspace: files[%zu] (%s): no content", i, norm);
			goto fail_fd;
		}
		total += f->size;
		if (f->size > AGENT_FILE_MAX || total > AGENT_WS_BYTES_MAX) {
			rc = tk_errf(TK_EINVAL, "workspace: files[%zu] (%s): %s", i, norm,
				     f->size > AGENT_FILE_MAX ? "file too big" : "input files too big "
										 "in all");
			goto fail_fd;
		}
		rc = agent_ws_write_file(ws, norm, f->content ? f->content : "", f->size, true, NULL);
		if (rc) {
			rc = tk_err_wrap(rc == TK_ENOMEM || rc == TK_EIO ? rc : TK_EINVAL,
					 "workspace: files[%zu]", i);
			goto fail_fd;
		}
	}
	*out = ws;
	return 0;
fail_fd:
	close(ws->dir_fd);
fail_dir:
	if (tk_sandbox_workspace_remove(ws->path))
		tk_log(TK_LOG_WARNING, "agents", "workspace: cannot remove %s", ws->path);
fail_path:
	free(ws->path);
fail_ws:
	free(ws);
	return rc;
}

void agent_ws_free(struct agent_ws *ws, bool keep)
{
	if (!ws)
		return;
	if (ws->dir_fd >= 0)
		close(ws->dir_fd);
	if (keep) {
		tk_logf(TK_LOG_INFO, "agents", TK_FIELDS(TK_LF_S("path", ws->path)), "workspace kept");
	} else if (tk_sandbox_workspace_remove(ws->path)) {
		tk_logf(TK_LOG_WARNING, "agents",
			TK_FIELDS(TK_LF_S("path", ws->path), TK_LF_S("error", tk_err_detail())),
			"workspace: cannot remove it");
	}
	free(ws->path);
	free(ws);
}

const char *agent_ws_path(const struct agent_ws *ws)
{
	return ws ? ws->path : NULL;
}

/* ---- walking the tree -------------------------------------------------- */

/* A visitor sees every entry (directory entries sorted by name) with its
 * root-relative path; it returns 0 to go on (and descend into a directory),
 * 1 to skip a directory's contents, or a negative TK_E* to stop. */
typedef int (*ws_visit_fn)(void *arg, int dfd, const char *name, const char *rel,
			   const struct stat *st);

struct ws_walk {
	ws_visit_fn visit;
	void *arg;
	dev_t dev;
	uint64_t too_deep;  /* directories not entered: depth cap */
	uint64_t overflow;  /* entries not looked at: per-directory cap */
	uint64_t vanished;  /* directories that changed under us */
};

#define WS_DIR_ENTRIES_MAX 100000

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ws_walk_dir(struct ws_walk *w, int dfd, char *rel, size_t rel_len, int depth)
{
	int fd = dup(dfd);
	if (fd < 0)
		return tk_errf_sys(TK_EIO, errno, "workspace: dup");
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return tk_errf_sys(TK_EIO, errno, "workspace: read directory %s", rel_len ? rel : ".");
	}
	rewinddir(d);
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n == WS_DIR_ENTRIES_MAX) {
			w->overflow++;
			continue;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 32;
			char **nn = realloc(names, nc * sizeof *nn);
			if (!nn) {
				rc = tk_errf(TK_ENOMEM, "workspace: out of memory");
				goto out;
			}
			names = nn;
			cap = nc;
		}
		if (!(names[n] = strdup(e->d_name))) {
			rc = tk_errf(TK_ENOMEM, "workspace: out of memory");
			goto out;
		}
		n++;
	}
	if (n)
		qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n && !rc; i++) {
		size_t nl = strlen(names[i]);
		if (rel_len + nl + 2 > AGENT_PATH_MAX) {
			w->too_deep++;
			continue;
		}
		memcpy(rel + rel_len, names[i], nl + 1);
		struct stat st;
		if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		rc = w->visit(w->arg, dfd, names[i], rel, &st);
		if (rc < 0)
			break;
		if (rc == 1 || !S_ISDIR(st.st_mode)) {
			rc = 0;
			continue;
		}
		if (depth + 1 >= AGENT_WS_DEPTH_MAX) {
			w->too_deep++;
			continue;
		}
		int sub = openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC |
						   O_NONBLOCK);
		if (sub < 0) {
			w->vanished++; /* replaced by a link meanwhile, or unreadable */
			continue;
		}
		struct stat sst;
		if (fstat(sub, &sst) < 0 || sst.st_dev != w->dev || sst.st_ino != st.st_ino) {
			close(sub);
			w->vanished++;
			continue;
		}
		rel[rel_len + nl] = '/';
		rel[rel_len + nl + 1] = '\0';
		rc = ws_walk_dir(w, sub, rel, rel_len + nl + 1, depth + 1);
		close(sub);
	}
out:
	rel[rel_len] = '\0';
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

/* Walks the directory norm ("" = root). */
static int ws_walk(const struct agent_ws *ws, const char *norm, ws_visit_fn visit, void *arg,
		   struct ws_walk *w)
{
	memset(w, 0, sizeof *w);
	w->visit = visit;
	w->arg = arg;
	int dfd = -1;
	int rc = agent_ws_openat(ws, norm, O_RDONLY | O_DIRECTORY | O_NONBLOCK, &dfd);
	if (rc)
		return rc;
	struct stat st;
	if (fstat(dfd, &st) < 0) {
		close(dfd);
		return tk_errf_sys(TK_EIO, errno, "workspace: stat");
	}
	w->dev = st.st_dev;
	char *rel = malloc(AGENT_PATH_MAX + 2);
	if (!rel) {
		close(dfd);
		return tk_errf(TK_ENOMEM, "workspace: out of memory");
	}
	size_t rl = strlen(norm);
	memcpy(rel, norm, rl + 1);
	if (rl) {
		rel[rl++] = '/';
		rel[rl] = '\0';
	}
	rc = ws_walk_dir(w, dfd, rel, rl, 0);
	free(rel);
	close(dfd);
	return rc;
}

static bool ignored_dir(const char *name)
{
	return !strcmp(name, ".git") || !strcmp(name, "__pycache__") ||
	       !strcmp(name, "node_modules");
}

/* ---- tree -------------------------------------------------------------- */

struct tree_entry {
	char *path;
	char *note;
};

struct tree {
	struct tree_entry *v;
	size_t n, cap;
	uint64_t more; /* entries past AGENT_WS_FILES_MAX */
};

static int tree_visit(void *arg, int dfd, const char *name, const char *rel,
		      const struct stat *st)
{
	struct tree *t = arg;
	if (S_ISDIR(st->st_mode))
		return ignored_dir(name) ? 1 : 0;
	if (t->n >= AGENT_WS_FILES_MAX) {
		t->more++;
		return 0;
	}
	char note[400];
	if (S_ISREG(st->st_mode)) {
		if (st->st_nlink > 1)
			snprintf(note, sizeof note, "%lld bytes; %lu hard links: refused by the tools",
				 (long long)st->st_size, (unsigned long)st->st_nlink);
		else
			snprintf(note, sizeof note, "%lld bytes", (long long)st->st_size);
	} else if (S_ISLNK(st->st_mode)) {
		char target[201];
		ssize_t tl = readlinkat(dfd, name, target, sizeof target - 1);
		target[tl > 0 ? tl : 0] = '\0';
		bool text = tl > 0 && agent_text_ok(target, (size_t)tl);
		snprintf(note, sizeof note, "symbolic link%s%s%s; not followed", text ? " to " : "",
			 text ? target : "", tl == (ssize_t)sizeof target - 1 ? "..." : "");
	} else {
		snprintf(note, sizeof note, "%s; not a regular file",
			 S_ISFIFO(st->st_mode) ? "fifo" : S_ISSOCK(st->st_mode) ? "socket"
						: (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) ? "device"
												  : "special file");
	}
	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 64;
		struct tree_entry *nv = realloc(t->v, nc * sizeof *nv);
		if (!nv)
			return tk_errf(TK_ENOMEM, "workspace: out of memory");
		t->v = nv;
		t->cap = nc;
	}
	/* The path may come from a hostile program: keep the text valid. */
	char *p = strdup(rel);
	char *q = strdup(note);
	if (!p || !q) {
		free(p);
		free(q);
		return tk_errf(TK_ENOMEM, "workspace: out of memory");
	}
	if (!agent_text_ok(p, strlen(p)))
		for (char *c = p; *c; c++)
			if ((unsigned char)*c >= 0x80 || (unsigned char)*c < 0x20)
				*c = '?';
	for (char *c = p; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = '?';
	t->v[t->n++] = (struct tree_entry){ p, q };
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct tree_entry *)a)->path, ((const struct tree_entry *)b)->path);
}

int agent_ws_tree_at(const struct agent_ws *ws, const char *norm, size_t max_bytes,
		     struct tk_buf *out)
{
	if (!ws || !norm || !out)
		return tk_errf(TK_EINVAL, "workspace: tree: bad arguments");
	struct tree t = { 0 };
	struct ws_walk w;
	size_t start = out->len;
	int rc = ws_walk(ws, norm, tree_visit, &t, &w);
	if (rc)
		goto out;
	if (t.n)
		qsort(t.v, t.n, sizeof *t.v, cmp_entry);
	uint64_t more = t.more + w.overflow;
	const size_t reserve = 64; /* room for the "... N more" line */
	size_t i = 0;
	for (; i < t.n; i++) {
		size_t ll = strlen(t.v[i].path) + strlen(t.v[i].note) + 4;
		bool tail = i + 1 < t.n || more || w.too_deep;
		if (max_bytes && (out->len - start) + ll + (tail ? reserve : 0) > max_bytes)
			break;
		if ((rc = tk_buf_printf(out, "%s (%s)\n", t.v[i].path, t.v[i].note)))
			goto fail;
	}
	more += t.n - i;
	if (more && (rc = tk_buf_printf(out, "... %llu more\n", (unsigned long long)more)))
		goto fail;
	if (w.too_deep &&
	    (rc = tk_buf_printf(out, "... %llu directories too deep to list\n",
				(unsigned long long)w.too_deep)))
		goto fail;
	goto out;
fail:
	tk_buf_truncate(out, start);
out:
	for (size_t k = 0; k < t.n; k++) {
		free(t.v[k].path);
		free(t.v[k].note);
	}
	free(t.v);
	return rc;
}

int agent_ws_tree(const struct agent_ws *ws, size_t max_bytes, struct tk_buf *out)
{
	return agent_ws_tree_at(ws, "", max_bytes, out);
}

/* ---- snapshot ---------------------------------------------------------- */

struct snap {
	json_t *files;
	json_t *skipped;
	size_t n_files;
	uint64_t bytes;
	struct tk_buf buf;
};

static int snap_skip(struct snap *s, const char *rel, const char *reason)
{
	json_t *o = json_pack("{s:s%, s:s}", "path", rel, strlen(rel), "reason", reason);
	if (!o) {
		/* A name that is not UTF-8 (a hostile program's): say so. */
		o = json_pack("{s:s, s:s}", "path", "(a name that is not valid UTF-8)", "reason",
			      reason);
		if (!o)
			return tk_errf(TK_ENOMEM, "snapshot: out of memory");
	}
	return json_array_append_new(s->skipped, o) ? tk_errf(TK_ENOMEM, "snapshot: out of memory")
						    : 0;
}

static int snap_visit(void *arg, int dfd, const char *name, const char *rel,
		      const struct stat *st)
{
	struct snap *s = arg;
	char why[160];
	if (S_ISDIR(st->st_mode)) {
		if (ignored_dir(name)) {
			int rc = snap_skip(s, rel, "ignored directory");
			return rc ? rc : 1;
		}
		return 0;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, sizeof why, "%s", kind_name(st->st_mode));
		return snap_skip(s, rel, why);
	}
	if (st->st_nlink != 1) {
		snprintf(why, sizeof why, "%lu hard links", (unsigned long)st->st_nlink);
		return snap_skip(s, rel, why);
	}
	if ((uint64_t)st->st_size > AGENT_FILE_MAX) {
		snprintf(why, sizeof why, "too big (%lld bytes; the limit is %u)",
			 (long long)st->st_size, AGENT_FILE_MAX);
		return snap_skip(s, rel, why);
	}
	if (s->n_files >= AGENT_WS_FILES_MAX) {
		snprintf(why, sizeof why, "file limit (%d) reached", AGENT_WS_FILES_MAX);
		return snap_skip(s, rel, why);
	}
	if (s->bytes + (uint64_t)st->st_size > AGENT_WS_BYTES_MAX) {
		snprintf(why, sizeof why, "byte limit (%u) reached", AGENT_WS_BYTES_MAX);
		return snap_skip(s, rel, why);
	}
	if (!agent_text_ok(rel, strlen(rel)))
		return snap_skip(s, rel, "name is not valid UTF-8");
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return snap_skip(s, rel, errno == ELOOP ? "a symbolic link" : "cannot be opened");
	struct stat fst;
	tk_buf_reset(&s->buf);
	int rc = check_regular(fd, rel, AGENT_FILE_MAX, &fst);
	if (!rc)
		rc = read_fd(fd, rel, AGENT_FILE_MAX, &s->buf);
	close(fd);
	if (rc == TK_ENOMEM)
		return rc;
	if (rc)
		return snap_skip(s, rel, tk_err_detail());
	if (!agent_text_ok(s->buf.data ? s->buf.data : "", s->buf.len))
		return snap_skip(s, rel, "binary (not UTF-8 text)");
	json_t *v = json_stringn(s->buf.data ? s->buf.data : "", s->buf.len);
	if (!v || json_object_set_new(s->files, rel, v))
		return tk_errf(TK_ENOMEM, "snapshot: out of memory");
	s->n_files++;
	s->bytes += s->buf.len;
	return 0;
}

json_t *agent_ws_snapshot(const struct agent_ws *ws, json_t **skipped)
{
	if (skipped)
		*skipped = NULL;
	if (!ws) {
		tk_errf(TK_EINVAL, "snapshot: no workspace");
		return NULL;
	}
	struct snap s = { json_object(), json_array(), 0, 0, TK_BUF_INIT(AGENT_FILE_MAX + 1) };
	if (!s.files || !s.skipped) {
		tk_errf(TK_ENOMEM, "snapshot: out of memory");
		goto fail;
	}
	struct ws_walk w;
	int rc = ws_walk(ws, "", snap_visit, &s, &w);
	if (rc)
		goto fail;
	char why[96];
	if (w.too_deep) {
		snprintf(why, sizeof why, "%llu directories deeper than %d levels",
			 (unsigned long long)w.too_deep, AGENT_WS_DEPTH_MAX);
		if (snap_skip(&s, "", why))
			goto fail;
	}
	if (w.overflow) {
		snprintf(why, sizeof why, "%llu entries past %d in one directory",
			 (unsigned long long)w.overflow, WS_DIR_ENTRIES_MAX);
		if (snap_skip(&s, "", why))
			goto fail;
	}
	tk_buf_free(&s.buf);
	if (skipped)
		*skipped = s.skipped;
	else
		json_decref(s.skipped);
	return s.files;
fail:
	tk_buf_free(&s.buf);
	json_decref(s.files);
	json_decref(s.skipped);
	return NULL;
}
