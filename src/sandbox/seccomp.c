/*
 * seccomp.c — the sandbox's system-call filter, built with libseccomp and
 * exported once per process as a classic BPF program (sb_seccomp_program),
 * which the cloned child loads with a single prctl(). Building the filter
 * takes far longer than loading it, so it is never built per run.
 *
 * Policy: allow by default and deny what builds and tests never need but an
 * escape or an attack on the host would. Every rule says why. The arch is
 * checked by libseccomp: a system call made through another ABI (i386 int
 * 0x80, x32) kills the process, so the rules cannot be bypassed that way.
 */
#include "sandbox/sandbox_int.h"

#include "core/err.h"

#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sock_fprog cache[3]; /* by enum tk_sandbox_net; filter NULL = not built */

struct deny {
	const char *name; /* by name so that a syscall this libseccomp lacks is skipped */
	int err;
	/* why is only for the reader: every denied call keeps its reason here */
	const char *why;
};

static const struct deny denied[] = {
	/* Filesystem namespace changes: a program that can mount can undo the
	 * read-only root, reach hidden host paths or stack a new /proc. */
	{ "mount", EPERM, "remount the root rw, expose host paths" },
	{ "umount2", EPERM, "uncover what our mounts hide" },
	{ "pivot_root", EPERM, "swap the root the sandbox built" },
	{ "chroot", EPERM, "classic chroot escapes with an open directory" },
	{ "open_tree", EPERM, "new mount API: clone a mount tree" },
	{ "move_mount", EPERM, "new mount API: attach a mount" },
	{ "fsopen", EPERM, "new mount API: create a filesystem context" },
	{ "fsconfig", EPERM, "new mount API: configure it" },
	{ "fsmount", EPERM, "new mount API: turn it into a mount" },
	{ "fspick", EPERM, "new mount API: reconfigure an existing mount" },
	{ "mount_setattr", EPERM, "new mount API: clear read-only or nosuid" },
	/* Namespaces: new user namespaces are the gateway to most kernel
	 * privilege-escalation bugs; setns could join a host namespace through
	 * a leaked fd. */
	{ "unshare", EPERM, "make new namespaces (user ns: kernel attack surface)" },
	{ "setns", EPERM, "join another namespace" },
	/* clone3 passes its flags in memory, which a filter cannot read; ENOSYS
	 * makes the C library fall back to clone(), whose flags we can check. */
	{ "clone3", ENOSYS, "flags out of the filter's reach" },
	/* Looking into or writing other processes (the PID namespace keeps the
	 * host out of sight, but not the sandbox's own init). */
	{ "ptrace", EPERM, "debug-attach: read/write another process" },
	{ "process_vm_readv", EPERM, "read another process's memory" },
	{ "process_vm_writev", EPERM, "write another process's memory" },
	{ "kcmp", EPERM, "probe other processes' kernel objects" },
	{ "pidfd_getfd", EPERM, "steal a file descriptor from another process" },
	{ "process_madvise", EPERM, "act on another process's memory" },
	/* The kernel keyring is not namespaced: keys can leak across tasks. */
	{ "keyctl", EPERM, "kernel keyring is shared with the host" },
	{ "add_key", EPERM, "kernel keyring is shared with the host" },
	{ "request_key", EPERM, "kernel keyring is shared with the host" },
	/* Large kernel attack surfaces no build needs. */
	{ "bpf", EPERM, "eBPF: verifier bugs are a known escalation path" },
	{ "perf_event_open", EPERM, "perf: side channels and kernel bugs" },
	{ "io_uring_setup", EPERM, "io_uring: bypasses syscall filtering, many CVEs" },
	{ "io_uring_enter", EPERM, "io_uring" },
	{ "io_uring_register", EPERM, "io_uring" },
	{ "userfaultfd", EPERM, "used to widen kernel race windows in exploits" },
	/* Host administration. */
	{ "kexec_load", EPERM, "replace the running kernel" },
	{ "kexec_file_load", EPERM, "replace the running kernel" },
	{ "init_module", EPERM, "load kernel code" },
	{ "finit_module", EPERM, "load kernel code" },
	{ "delete_module", EPERM, "unload kernel code" },
	{ "reboot", EPERM, "reboot the host" },
	{ "swapon", EPERM, "change host swap" },
	{ "swapoff", EPERM, "change host swap" },
	{ "acct", EPERM, "host process accounting" },
	{ "settimeofday", EPERM, "host clock" },
	{ "clock_settime", EPERM, "host clock" },
	{ "clock_adjtime", EPERM, "host clock" },
	{ "adjtimex", EPERM, "host clock" },
	{ "syslog", EPERM, "read the kernel log (addresses, other tenants)" },
	{ "quotactl", EPERM, "host quotas" },
	{ "quotactl_fd", EPERM, "host quotas" },
	{ "iopl", EPERM, "raw I/O port access" },
	{ "ioperm", EPERM, "raw I/O port access" },
	{ "vhangup", EPERM, "terminal hang-up" },
	{ "lookup_dcookie", EPERM, "kernel profiling interface" },
	{ "uselib", EPERM, "obsolete loader interface, old bugs" },
	{ "fanotify_init", EPERM, "watch file access beyond the task's needs" },
	/* Open a file by handle ignores the mount namespace: the "shocker"
	 * container escape. */
	{ "open_by_handle_at", EPERM, "open host files by handle, past the mount ns" },
	{ "name_to_handle_at", EPERM, "companion of open_by_handle_at" },
};

static int rule(scmp_filter_ctx ctx, int err, const char *name, unsigned n,
		const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return 0; /* unknown to this libseccomp: no such call to deny */
	int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO((unsigned)err), nr, n, cmp);
	if (rc < 0)
		return tk_errf_sys(TK_EINTERNAL, -rc, "seccomp: rule for %s", name);
	return 0;
}

static int build(enum tk_sandbox_net net, struct sock_fprog *out)
{
	int rc = 0;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return tk_errf(TK_ENOMEM, "seccomp: seccomp_init failed");
	/* No trailing "exec would gain privileges" surprises: the loader sets
	 * no_new_privs itself, before loading, and so must not libseccomp. */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);

	for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
		rc = rule(ctx, denied[i].err, denied[i].name, 0, NULL);
		if (rc)
			goto out;
	}

	/* clone with a namespace flag: same reason as unshare. CLONE_NEWTIME
	 * shares its bit with the exit signal in clone()'s first argument, so
	 * it can only be made through unshare/clone3, both denied above. */
	static const unsigned long ns_flags[] = { CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID,
						  CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS,
						  CLONE_NEWCGROUP };
	for (size_t i = 0; i < sizeof ns_flags / sizeof ns_flags[0]; i++) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]);
		rc = rule(ctx, EPERM, "clone", 1, &c);
		if (rc)
			goto out;
	}

	/* TIOCSTI pushes bytes into a terminal's input queue: with a terminal
	 * shared with the supervisor's user, that types commands for them.
	 * TIOCLINUX can do the same on a virtual console. ioctl's request is an
	 * int: compare the low 32 bits only. */
	struct scmp_arg_cmp sti = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI);
	rc = rule(ctx, EPERM, "ioctl", 1, &sti);
	if (rc)
		goto out;
	struct scmp_arg_cmp lnx = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX);
	rc = rule(ctx, EPERM, "ioctl", 1, &lnx);
	if (rc)
		goto out;

	/* Sockets: AF_UNIX always (builds use it for local IPC); AF_INET and
	 * AF_INET6 only with a loopback profile (the namespace has nothing but
	 * lo, so they cannot leave the box); never netlink, packet, raw, ...
	 * A filter rule cannot say "not in {a, b}" about one argument, so every
	 * other family is denied by its own rule, and any number past the ones
	 * this libc knows by a range rule. */
	for (int fam = 0; fam < AF_MAX; fam++) {
		if (fam == AF_UNIX)
			continue;
		if (net == TK_SB_NET_LOOPBACK && (fam == AF_INET || fam == AF_INET6))
			continue;
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fam, 0);
		rc = rule(ctx, EAFNOSUPPORT, "socket", 1, &c);
		if (rc)
			goto out;
	}
	struct scmp_arg_cmp past = SCMP_A0(SCMP_CMP_GE, (scmp_datum_t)AF_MAX, 0);
	rc = rule(ctx, EAFNOSUPPORT, "socket", 1, &past);
	if (rc)
		goto out;
	if (net == TK_SB_NET_LOOPBACK) {
		/* Raw IP sockets forge packets; they need CAP_NET_RAW anyway,
		 * which the program lacks: belt and braces. */
		static const int inet[] = { AF_INET, AF_INET6 };
		for (size_t i = 0; i < 2; i++) {
			struct scmp_arg_cmp r[2] = { SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)inet[i], 0),
						     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW) };
			rc = rule(ctx, EPERM, "socket", 2, r);
			if (rc)
				goto out;
		}
	}

	/* Export to memory: a memfd keeps this free of temporary files. */
	int fd = memfd_create("tk-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		rc = tk_errf_sys(TK_EIO, errno, "seccomp: memfd_create");
		goto out;
	}
	int erc = seccomp_export_bpf(ctx, fd);
	if (erc < 0) {
		close(fd);
		rc = tk_errf_sys(TK_EINTERNAL, -erc, "seccomp: export");
		goto out;
	}
	off_t len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (off_t)sizeof(struct sock_filter) || len > 65536) {
		close(fd);
		rc = tk_errf(TK_EINTERNAL, "seccomp: exported program has odd size %lld",
			     (long long)len);
		goto out;
	}
	struct sock_filter *prog = malloc((size_t)len);
	if (!prog) {
		close(fd);
		rc = tk_errf(TK_ENOMEM, "seccomp: out of memory");
		goto out;
	}
	if (pread(fd, prog, (size_t)len, 0) != len) {
		free(prog);
		close(fd);
		rc = tk_errf_sys(TK_EIO, errno, "seccomp: read back");
		goto out;
	}
	close(fd);
	out->len = (unsigned short)((size_t)len / sizeof(struct sock_filter));
	out->filter = prog;
out:
	seccomp_release(ctx);
	return rc;
}

const struct sock_fprog *sb_seccomp_program(enum tk_sandbox_net net)
{
	if (net != TK_SB_NET_NONE && net != TK_SB_NET_LOOPBACK) {
		tk_errf(TK_EINVAL, "seccomp: bad network mode %d", (int)net);
		return NULL;
	}
	const struct sock_fprog *res = NULL;
	pthread_mutex_lock(&cache_lock);
	if (cache[net].filter || build(net, &cache[net]) == 0)
		res = &cache[net];
	pthread_mutex_unlock(&cache_lock);
	return res;
}
