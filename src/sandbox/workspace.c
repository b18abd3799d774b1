/*
 * workspace.c — the supervisor's only ways into a workspace that untrusted
 * code has written: reading a result file, measuring usage (quota), handing
 * entries to the sandbox uid, and removing the tree.
 *
 * Rule: never follow what the program may have planted. Every step is one
 * path component relative to an open directory fd, opened with O_NOFOLLOW
 * (or openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), and files with more than one
 * link are refused, since a hardlink may be a host file (the Judge0 escape
 * was a supervisor following a planted symlink). FIFOs are opened
 * non-blocking so that one cannot hang the supervisor.
 */
#include "sandbox/sandbox_int.h"

#include "core/err.h"
#include "obs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WALK_MAX_DEPTH 128

typedef int (*visit_fn)(int dirfd, const char *name, const struct stat *st, void *arg);

struct walker {
	visit_fn pre;   /* every entry, before a directory's contents; may be NULL */
	visit_fn post;  /* every entry, after a directory's contents; may be NULL */
	void *arg;
	int top_fd;     /* the workspace directory */
	bool flatten;   /* removal: move too-deep subtrees up instead of failing */
	bool moved;     /* a subtree was moved up: walk again */
	unsigned moves;
};

/* Walks the entries below dfd (borrowed). Entries that vanish or turn into
 * something else while we look (the program may still be running) are
 * skipped, never followed. */
static int walk(struct walker *w, int dfd, int depth)
{
	int fd = dup(dfd);
	if (fd < 0)
		return tk_errf_sys(TK_EIO, errno, "workspace: dup");
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return tk_errf_sys(TK_EIO, errno, "workspace: fdopendir");
	}
	rewinddir(d);
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			rc = tk_errf_sys(TK_EIO, errno, "workspace: stat %s", e->d_name);
			break;
		}
		if (w->pre && (rc = w->pre(dfd, e->d_name, &st, w->arg)))
			break;
		if (S_ISDIR(st.st_mode)) {
			if (depth + 1 > WALK_MAX_DEPTH) {
				if (!w->flatten) {
					rc = tk_errf(TK_ELIMIT, "workspace: tree deeper than %d levels",
						     WALK_MAX_DEPTH);
					break;
				}
				/* A tree built to exhaust our descriptors: lift the
				 * subtree to the top and deal with it on the next pass. */
				char name[64];
				snprintf(name, sizeof name, ".tk-flat-%u", w->moves++);
				if (renameat(dfd, e->d_name, w->top_fd, name) < 0) {
					rc = tk_errf_sys(TK_EIO, errno, "workspace: lift %s", e->d_name);
					break;
				}
				w->moved = true;
				continue;
			}
			int sub = openat(dfd, e->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
			if (sub < 0 && errno == EACCES) {
				/* A directory the program made unreadable (chmod 0):
				 * open it by O_PATH and fix its mode through that exact
				 * inode, never by name. */
				int pfd = openat(dfd, e->d_name,
						 O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (pfd >= 0) {
					char pp[64];
					snprintf(pp, sizeof pp, "/proc/self/fd/%d", pfd);
					if (chmod(pp, 0700) == 0)
						sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY |
							     O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
					close(pfd);
				}
			}
			if (sub < 0) {
				if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR)
					continue; /* replaced under us: not followed */
				rc = tk_errf_sys(TK_EIO, errno, "workspace: open directory %s",
						 e->d_name);
				break;
			}
			rc = walk(w, sub, depth + 1);
			close(sub);
			if (rc)
				break;
		}
		if (w->post && (rc = w->post(dfd, e->d_name, &st, w->arg)))
			break;
	}
	closedir(d);
	return rc;
}

/* One walk over the tree under the directory fd top. */
static int walk_tree(int top, visit_fn pre, visit_fn post, void *arg)
{
	struct walker w = { pre, post, arg, top, false, false, 0 };
	return walk(&w, top, 0);
}

static int open_ws(const char *workspace, int *out)
{
	if (!workspace || !*workspace)
		return tk_errf(TK_EINVAL, "workspace: no path");
	int fd = open(workspace, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return tk_errf_sys(errno == ENOENT ? TK_ENOENT : TK_EIO, errno, "workspace: open %s",
				   workspace);
	*out = fd;
	return 0;
}

/* ---- usage ------------------------------------------------------------- */

struct usage {
	uint64_t bytes, inodes;
};

static int usage_visit(int dfd, const char *name, const struct stat *st, void *arg)
{
	(void)dfd;
	(void)name;
	struct usage *u = arg;
	u->bytes += (uint64_t)st->st_blocks * 512;
	u->inodes++;
	return 0;
}

int sb_workspace_usage_fd(int ws_fd, uint64_t *bytes, uint64_t *inodes)
{
	struct usage u = { 0, 0 };
	int fd = openat(ws_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return tk_errf_sys(TK_EIO, errno, "workspace: reopen");
	int rc = walk_tree(fd, usage_visit, NULL, &u);
	close(fd);
	*bytes = u.bytes;
	*inodes = u.inodes;
	return rc;
}

int tk_sandbox_workspace_usage(const char *workspace, uint64_t *bytes, uint64_t *inodes)
{
	int fd = -1, rc = open_ws(workspace, &fd);
	if (rc)
		return rc;
	rc = sb_workspace_usage_fd(fd, bytes, inodes);
	close(fd);
	return rc;
}

/* ---- chown ------------------------------------------------------------- */

struct owner {
	unsigned uid, gid;
};

static int chown_visit(int dfd, const char *name, const struct stat *st, void *arg)
{
	const struct owner *o = arg;
	if (st->st_uid == o->uid && st->st_gid == o->gid)
		return 0;
	if (S_ISLNK(st->st_mode))
		return 0; /* a link's owner grants nothing; never touch its target */
	if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
		/* A hardlink may be a host file (/etc/shadow): never chown it. */
		tk_log(TK_LOG_WARNING, "sandbox", "workspace: not handing over %s: it has %lu links",
		       name, (unsigned long)st->st_nlink);
		return 0;
	}
	if (fchownat(dfd, name, o->uid, o->gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT)
		return tk_errf_sys(TK_EIO, errno, "workspace: chown %s", name);
	return 0;
}

int sb_workspace_chown(int ws_fd, unsigned uid, unsigned gid)
{
	struct owner o = { uid, gid };
	struct stat st;
	if (fstat(ws_fd, &st) < 0)
		return tk_errf_sys(TK_EIO, errno, "workspace: stat");
	if ((st.st_uid != uid || st.st_gid != gid) &&
	    fchownat(ws_fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return tk_errf_sys(TK_EIO, errno, "workspace: chown the top directory");
	int fd = openat(ws_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return tk_errf_sys(TK_EIO, errno, "workspace: reopen");
	int rc = walk_tree(fd, chown_visit, NULL, &o);
	close(fd);
	return rc;
}

/* ---- remove ------------------------------------------------------------ */

static int remove_visit(int dfd, const char *name, const struct stat *st, void *arg)
{
	(void)arg;
	/* unlinkat removes the entry itself: a symlink goes, its target
	 * stays. */
	if (unlinkat(dfd, name, S_ISDIR(st->st_mode) ? AT_REMOVEDIR : 0) < 0 && errno != ENOENT)
		return tk_errf_sys(TK_EIO, errno, "workspace: remove %s", name);
	return 0;
}

int tk_sandbox_workspace_remove(const char *workspace)
{
	int fd = -1, rc = open_ws(workspace, &fd);
	if (rc)
		return rc;
	/* Passes until nothing had to be lifted; each pass removes what it
	 * reaches, so the tree shrinks every time. */
	struct walker w = { NULL, remove_visit, NULL, fd, true, false, 0 };
	for (int pass = 0; pass < 1000; pass++) {
		w.moved = false;
		rc = walk(&w, fd, 0);
		if (rc || !w.moved)
			break;
	}
	close(fd);
	if (!rc && rmdir(workspace) < 0)
		rc = tk_errf_sys(TK_EIO, errno, "workspace: rmdir %s", workspace);
	return rc;
}

/* ---- read -------------------------------------------------------------- */

int tk_sandbox_workspace_read(const char *workspace, const char *relpath, struct tk_buf *out)
{
	if (!relpath || !*relpath || relpath[0] == '/')
		return tk_errf(TK_EINVAL, "workspace: read: need a relative path");
	int ws = -1, rc = open_ws(workspace, &ws);
	if (rc)
		return rc;
	struct open_how how;
	memset(&how, 0, sizeof how);
	/* Non-blocking: a FIFO planted under the name must not hang us. */
	how.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
		      RESOLVE_NO_XDEV;
	int fd = (int)syscall(SYS_openat2, ws, relpath, &how, sizeof how);
	int e = errno;
	close(ws);
	if (fd < 0) {
		if (e == ELOOP || e == EXDEV)
			return tk_errf_sys(TK_EPERM, e, "workspace: %s: refusing a link", relpath);
		return tk_errf_sys(e == ENOENT ? TK_ENOENT : TK_EIO, e, "workspace: open %s",
				   relpath);
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		rc = tk_errf_sys(TK_EIO, errno, "workspace: stat %s", relpath);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = tk_errf(TK_EPERM, "workspace: %s: not a regular file", relpath);
		goto out;
	}
	if (st.st_nlink != 1) {
		rc = tk_errf(TK_EPERM, "workspace: %s: has %lu links (could be a host file)",
			     relpath, (unsigned long)st.st_nlink);
		goto out;
	}
	char chunk[16384];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = tk_errf_sys(TK_EIO, errno, "workspace: read %s", relpath);
			goto out;
		}
		if (n == 0)
			break;
		if ((rc = tk_buf_append(out, chunk, (size_t)n)))
			goto out;
	}
out:
	close(fd);
	return rc;
}
