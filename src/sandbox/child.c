/*
 * child.c — the inside of the sandbox: code that runs in the cloned child,
 * which is PID 1 ("init") of the new PID namespace.
 *
 * Theory of operation (one run, inside):
 *   1. die with the supervisor (PR_SET_PDEATHSIG), map ids when we are in a
 *      user namespace, become the first OOM victim, join the run's cgroup
 *      (unless we were born in a slot's), then make a cgroup namespace
 *      rooted there; start a new session (no controlling terminal);
 *   2. build the new root on a tmpfs staged at /tmp of our private mount
 *      namespace: read-only binds of the profile's paths (sources opened by
 *      the supervisor, bound through /proc/self/fd so that nothing planted
 *      can redirect them), the workspace rw at /workspace, tmpfs /tmp and
 *      /dev/shm with size caps, a /dev with five device nodes, a synthetic
 *      /etc (passwd, group, hosts), a fresh /proc; pivot into it, detach
 *      the old root, make the root and /dev read-only;
 *   3. set rlimits (hard = soft, so they cannot be raised), drop every
 *      capability and the bounding set, switch to the unprivileged ids, set
 *      no_new_privs and load the seccomp program;
 *   4. fork the program (raw clone: no atfork handlers, no malloc locks),
 *      which resets signals, keeps only fds 0-2 and execs;
 *   5. reap every child until the program itself ends, report its wait
 *      status on the report pipe and exit. The kernel then kills whatever
 *      is left in the namespace (daemons, double forks, setsid children)
 *      before our own exit completes.
 *
 * Nothing here may allocate or take a lock: the supervisor may be
 * multi-threaded, and a lock held by another thread at clone time stays
 * held forever in this copy. Every string was prepared in struct sb_plan.
 * Failures are reported as text on the report pipe, then _exit.
 */
#include "sandbox/sandbox_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define STAGE "/tmp" /* where the new root is assembled (private mount ns) */
#define REPORT_FD 3  /* the report pipe's number once fds are arranged */
#define PIDFD_FD 4   /* the supervisor's pidfd, likewise */

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void report(int fd, int kind, int err, int wstatus, const char *what)
{
	struct sb_report rep;
	memset(&rep, 0, sizeof rep);
	rep.kind = kind;
	rep.err = err;
	rep.wstatus = wstatus;
	if (what)
		copy_str(rep.what, sizeof rep.what, what);
	ssize_t w;
	do {
		w = write(fd, &rep, sizeof rep);
	} while (w < 0 && errno == EINTR);
}

/* Setup failed: say what and why, and end the namespace. */
__attribute__((noreturn)) static void die(int fd, const char *what)
{
	report(fd, SB_REP_SETUP_ERROR, errno, 0, what);
	_exit(1);
}

static int write_all(const char *path, const char *data, int flags)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | flags, 0644);
	if (fd < 0)
		return -1;
	size_t n = strlen(data);
	ssize_t w = write(fd, data, n);
	int e = errno;
	close(fd);
	if (w != (ssize_t)n) {
		errno = w < 0 ? e : EIO;
		return -1;
	}
	return 0;
}

/* "/proc/self/fd/N" without snprintf. */
static void fd_path(char *buf, size_t cap, int fd)
{
	char digits[16];
	int n = 0;
	unsigned v = (unsigned)fd;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < (int)sizeof digits);
	const char *pre = "/proc/self/fd/";
	size_t pl = strlen(pre);
	if (pl + (size_t)n + 1 > cap) {
		buf[0] = '\0';
		return;
	}
	memcpy(buf, pre, pl);
	for (int i = 0; i < n; i++)
		buf[pl + (size_t)i] = digits[n - 1 - i];
	buf[pl + (size_t)n] = '\0';
}

static void join_cgroup(const struct sb_plan *p, int rfd)
{
	if (!p->cg)
		return;
	/* "0" means "the writer": no pid translation across namespaces. */
	for (int i = 0; i < p->cg->n_procs_fd; i++)
		if (p->cg->procs_fd[i] >= 0 && write(p->cg->procs_fd[i], "0", 1) != 1)
			die(rfd, "join the run's cgroup");
	/* Root the cgroup namespace here, so /proc/self/cgroup shows "/" and
	 * nothing of the host's hierarchy. */
	if (unshare(CLONE_NEWCGROUP) < 0)
		die(rfd, "unshare(CLONE_NEWCGROUP)");
}

static void map_ids(const struct sb_plan *p, int rfd)
{
	if (!p->userns)
		return;
	/* setgroups must be denied before an unprivileged gid_map write. */
	if (write_all("/proc/self/setgroups", "deny", 0) < 0)
		die(rfd, "write /proc/self/setgroups");
	if (write_all("/proc/self/uid_map", p->uid_map, 0) < 0)
		die(rfd, "write /proc/self/uid_map");
	if (write_all("/proc/self/gid_map", p->gid_map, 0) < 0)
		die(rfd, "write /proc/self/gid_map");
}

/* Opens path without following a final symlink and checks that it is the
 * object the supervisor planned with. Returns an O_PATH fd. */
static int reopen(const char *path, dev_t dev, ino_t ino, int flags, int rfd)
{
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC | flags);
	if (fd < 0)
		die(rfd, path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		die(rfd, path);
	if (st.st_dev != dev || st.st_ino != ino) {
		errno = ESTALE;
		die(rfd, path);
	}
	return fd;
}

static void bind_fd(int fd, const char *target, unsigned long flags, int rfd, const char *what)
{
	char src[32];
	fd_path(src, sizeof src, fd);
	if (mount(src, target, NULL, MS_BIND, NULL) < 0)
		die(rfd, what);
	/* A bind mount takes its flags only on a remount. */
	if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | flags, NULL) < 0)
		die(rfd, what);
}

static void make_dev(int rfd)
{
	static const char *const nodes[] = { "null", "zero", "full", "random", "urandom" };
	char src[32], dst[64];
	if (mount("tanuki-dev", STAGE "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
		  "size=64k,nr_inodes=64,mode=0755") < 0)
		die(rfd, "mount tmpfs /dev");
	for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
		copy_str(src, sizeof src, "/dev/");
		copy_str(src + 5, sizeof src - 5, nodes[i]);
		copy_str(dst, sizeof dst, STAGE "/dev/");
		copy_str(dst + strlen(STAGE) + 5, sizeof dst - strlen(STAGE) - 5, nodes[i]);
		int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0)
			die(rfd, "create a /dev node");
		close(fd);
		if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
			die(rfd, "bind a /dev node");
		if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC, NULL) < 0)
			die(rfd, "remount a /dev node");
	}
	if (symlink("/proc/self/fd", STAGE "/dev/fd") < 0 ||
	    symlink("/proc/self/fd/0", STAGE "/dev/stdin") < 0 ||
	    symlink("/proc/self/fd/1", STAGE "/dev/stdout") < 0 ||
	    symlink("/proc/self/fd/2", STAGE "/dev/stderr") < 0)
		die(rfd, "symlinks in /dev");
	if (mkdir(STAGE "/dev/shm", 01777) < 0)
		die(rfd, "mkdir /dev/shm");
}

static void build_root(const struct sb_plan *p, int rfd)
{
	/* Nothing we mount may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die(rfd, "make / private");
	/* Sources first: the staging tmpfs is about to cover /tmp, where a
	 * workspace often lives. */
	int src_fd[TK_SB_MAX_BINDS];
	for (size_t i = 0; i < p->n_mounts; i++)
		src_fd[i] = p->mounts[i].is_link ? -1
						 : reopen(p->mounts[i].src, p->mounts[i].dev,
							  p->mounts[i].ino, 0, rfd);
	int ws = reopen(p->ws_path, p->ws_dev, p->ws_ino, O_DIRECTORY, rfd);
	/* The new root: a small tmpfs, read-only once populated. */
	if (mount("tanuki-root", STAGE, "tmpfs", MS_NOSUID | MS_NODEV,
		  "size=1m,nr_inodes=4096,mode=0755") < 0)
		die(rfd, "mount the root tmpfs");
	static const char *const dirs[] = { STAGE "/proc", STAGE "/dev", STAGE "/tmp",
					    STAGE "/workspace", STAGE "/etc" };
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
		if (mkdir(dirs[i], 0755) < 0)
			die(rfd, "mkdir in the new root");
	for (size_t i = 0; i < p->n_mkdirs; i++)
		if (mkdir(p->mkdirs[i], 0755) < 0 && errno != EEXIST)
			die(rfd, p->mkdirs[i]);

	for (size_t i = 0; i < p->n_mounts; i++) {
		const char *t = p->mounts[i].target;
		if (p->mounts[i].is_link) {
			if (symlink(p->mounts[i].link, t) < 0)
				die(rfd, t);
			continue;
		}
		if (p->mounts[i].is_dir) {
			if (mkdir(t, 0755) < 0 && errno != EEXIST)
				die(rfd, t);
		} else {
			int fd = open(t, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
			if (fd < 0)
				die(rfd, t);
			close(fd);
		}
		unsigned long fl = MS_NOSUID | MS_NODEV | p->mounts[i].keep;
		if (!p->mounts[i].rw)
			fl |= MS_RDONLY;
		bind_fd(src_fd[i], t, fl, rfd, t);
		close(src_fd[i]);
	}

	/* The workspace: read-write, but nothing in it can be setuid or a
	 * device. */
	bind_fd(ws, STAGE "/workspace", MS_NOSUID | MS_NODEV | p->ws_keep, rfd,
		"bind the workspace");
	close(ws);

	if (mount("tanuki-tmp", STAGE "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, p->tmp_opts) < 0)
		die(rfd, "mount tmpfs /tmp");
	make_dev(rfd);
	if (mount("tanuki-shm", STAGE "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, p->shm_opts) < 0)
		die(rfd, "mount tmpfs /dev/shm");

	/* A synthetic /etc: names for our ids and localhost, nothing else of
	 * the host's. */
	if (write_all(STAGE "/etc/passwd", p->passwd, O_CREAT | O_EXCL) < 0 ||
	    write_all(STAGE "/etc/group", p->group, O_CREAT | O_EXCL) < 0 ||
	    write_all(STAGE "/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n",
		      O_CREAT | O_EXCL) < 0 ||
	    write_all(STAGE "/etc/hostname", "tanuki\n", O_CREAT | O_EXCL) < 0 ||
	    write_all(STAGE "/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n",
		      O_CREAT | O_EXCL) < 0)
		die(rfd, "write /etc files");

	/* A fresh /proc shows only this PID namespace. */
	if (mount("proc", STAGE "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		die(rfd, "mount /proc");

	/* pivot_root(".", ".") stacks the old root under the new one; the
	 * detach then drops it, so no path leads back to the host tree. */
	if (chdir(STAGE) < 0)
		die(rfd, "chdir to the new root");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		die(rfd, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		die(rfd, "detach the old root");
	if (chdir("/") < 0)
		die(rfd, "chdir /");
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		die(rfd, "remount / read-only");
	if (mount(NULL, "/dev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
		  NULL) < 0)
		die(rfd, "remount /dev read-only");
}

static void bring_up_lo(int rfd)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		die(rfd, "socket for lo");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	copy_str(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		die(rfd, "SIOCGIFFLAGS lo");
	ifr.ifr_flags = (short)(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		die(rfd, "bring lo up");
	close(s);
}

/* soft = hard = v, but never above the current hard limit: raising it
 * needs CAP_SYS_RESOURCE, which a supervisor may not have (and lowering is
 * all we want). */
static void set_limit2(int res, uint64_t soft, uint64_t hard, int rfd)
{
	struct rlimit cur;
	if (getrlimit(res, &cur) < 0)
		die(rfd, "getrlimit");
	if (cur.rlim_max != RLIM_INFINITY && hard > cur.rlim_max)
		hard = cur.rlim_max;
	if (soft > hard)
		soft = hard;
	struct rlimit rl = { (rlim_t)soft, (rlim_t)hard };
	if (setrlimit(res, &rl) < 0)
		die(rfd, "setrlimit");
}

static void set_limit(int res, uint64_t v, int rfd)
{
	set_limit2(res, v, v, rfd);
}

static void set_limits(const struct sb_plan *p, int rfd)
{
	const struct tk_sandbox_limits *l = &p->lim;
	set_limit(RLIMIT_CORE, 0, rfd);
	set_limit(RLIMIT_FSIZE, l->fsize_mb * 1024 * 1024, rfd);
	set_limit(RLIMIT_NOFILE, l->nofile, rfd);
	/* Per process, a backstop to the cgroup's total: soft sends SIGXCPU,
	 * hard one second later SIGKILL. */
	set_limit2(RLIMIT_CPU, (l->cpu_ms + 999) / 1000, (l->cpu_ms + 999) / 1000 + 1, rfd);
	set_limit(RLIMIT_RTPRIO, 0, rfd);
	set_limit(RLIMIT_NICE, 0, rfd);
	set_limit(RLIMIT_MSGQUEUE, 1 << 20, rfd);
	/* The weak fallbacks, only when the cgroup cannot do it. */
	if (!p->cg || !p->cg->mem[0]) {
		if (!p->cg || !p->cg->v2[0])
			set_limit(RLIMIT_AS, l->mem_mb * 1024 * 1024, rfd);
	}
	if (!p->cg || (!p->cg->pids[0] && !p->cg->v2[0]))
		set_limit(RLIMIT_NPROC, l->pids, rfd);
}

static void drop_privileges(const struct sb_plan *p, int rfd)
{
	/* Empty the bounding set first (needs CAP_SETPCAP, which we still
	 * have): no later exec can gain a capability back. */
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno == EINVAL)
			break;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		die(rfd, "clear ambient capabilities");
	/* Raw system calls, not the C library's wrappers: in a process that
	 * had threads, glibc's setuid family signals every thread it knows
	 * of and waits for them, forever here, where none of them exist. */
	if (!p->userns && syscall(SYS_setgroups, 0, NULL) < 0)
		die(rfd, "setgroups");
	if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0)
		die(rfd, "setresgid");
	if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
		die(rfd, "setresuid");
	/* In a user namespace the uid did not change from 0, so the kernel
	 * kept our capabilities: clear them explicitly, always. */
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof data);
	if (syscall(SYS_capset, &hdr, data) < 0)
		die(rfd, "capset");
	/* Our /proc/1 stays closed to the program (same uid): not dumpable. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		die(rfd, "PR_SET_DUMPABLE");
	/* Credentials changed, which clears the parent-death signal: set it
	 * again now. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		die(rfd, "PR_SET_PDEATHSIG");
	if (p->parent_pidfd >= 0) {
		struct pollfd pf = { PIDFD_FD, POLLIN, 0 };
		if (poll(&pf, 1, 0) > 0)
			_exit(1); /* the supervisor died before we armed the signal */
		close(PIDFD_FD);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die(rfd, "PR_SET_NO_NEW_PRIVS");
	if (p->filter && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, p->filter, 0, 0) < 0)
		die(rfd, "load the seccomp filter");
}

/* Moves the fds we keep to 0-4 (stdin, stdout, stderr, report pipe,
 * supervisor pidfd) and closes every other one. 3 and 4 are close-on-exec,
 * so the program starts with 0-2 only. */
static void arrange_fds(const struct sb_plan *p, int rfd)
{
	int src[5] = { p->stdin_fd, p->stdout_fd, p->stderr_fd, rfd, p->parent_pidfd };
	int n = p->parent_pidfd >= 0 ? 5 : 4;
	int hi[5];
	/* Go through fresh high numbers first so that no dup2 clobbers a
	 * source that happens to sit on 0-4. */
	for (int i = 0; i < n; i++) {
		hi[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 5);
		if (hi[i] < 0)
			die(rfd, "dup");
	}
	for (int i = 0; i < n; i++)
		if (dup2(hi[i], i) < 0)
			die(hi[3], "dup2");
	if (fcntl(REPORT_FD, F_SETFD, FD_CLOEXEC) < 0 ||
	    (n == 5 && fcntl(PIDFD_FD, F_SETFD, FD_CLOEXEC) < 0))
		die(REPORT_FD, "cloexec");
	if (syscall(SYS_close_range, (unsigned)n, ~0u, 0u) < 0)
		die(REPORT_FD, "close_range");
}

__attribute__((noreturn)) static void exec_program(const struct sb_plan *p)
{
	/* Dispositions set to "ignore" survive exec (a supervisor ignoring
	 * SIGPIPE would break every `yes | head`): back to defaults. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &sa, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (chdir("/workspace") < 0) {
		report(REPORT_FD, SB_REP_SETUP_ERROR, errno, 0, "chdir /workspace");
		_exit(127);
	}
	execvpe(p->argv[0], (char *const *)p->argv, (char *const *)p->envp);
	report(REPORT_FD, SB_REP_EXEC_ERROR, errno, 0, p->argv[0]);
	_exit(127);
}

void sb_child_main(const struct sb_plan *p)
{
	int rfd = p->report_fd;
	/* A supervisor that ignores SIGCHLD would make the kernel reap the
	 * program behind our back: we need its status. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &dfl, NULL);
	/* Until we change credentials, the signal also covers a supervisor
	 * that dies during setup. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	map_ids(p, rfd);
	/* The first victim of any OOM killer, whatever the supervisor's own
	 * protection (an inherited -1000 would make a memory-limited cgroup
	 * hang instead of killing). Raising needs no privilege. */
	if (write_all("/proc/self/oom_score_adj", "1000", 0) < 0)
		die(rfd, "write /proc/self/oom_score_adj");
	join_cgroup(p, rfd);
	if (setsid() < 0)
		die(rfd, "setsid");
	build_root(p, rfd);
	if (sethostname("tanuki", 6) < 0)
		die(rfd, "sethostname");
	if (p->loopback)
		bring_up_lo(rfd);
	arrange_fds(p, rfd);
	rfd = REPORT_FD;
	set_limits(p, rfd);
	drop_privileges(p, rfd);

	pid_t prog = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0, 0, 0, 0);
	if (prog < 0)
		die(rfd, "fork the program");
	if (prog == 0)
		exec_program(p);
	/* The init's own stdio is not needed any more. */
	close(0);
	close(1);
	close(2);
	for (;;) {
		int st = 0;
		pid_t w = wait4(-1, &st, 0, NULL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die(rfd, "wait for the program");
		}
		if (w == prog) {
			report(rfd, SB_REP_STATUS, 0, st, NULL);
			_exit(0);
		}
		/* an orphan reparented to us: reaped, keep waiting */
	}
}
