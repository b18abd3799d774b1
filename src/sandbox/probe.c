/*
 * probe.c — what the host offers the sandbox (namespaces, user namespaces,
 * seccomp, pidfd, cgroup v2 or v1 controllers and where we may create
 * cgroups), and the doctor report that says exactly which limit is enforced
 * by which mechanism. The probe result is cached for the process.
 */
#include "sandbox/sandbox_int.h"

#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SB_CG_BASE "tanuki-sandbox"

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static bool probed;
static struct tk_sandbox_host cached;

static long read_long_file(const char *path, long def)
{
	char buf[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return def;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return def;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/* Whether the comma-separated list has the token. */
static bool has_token(const char *list, const char *tok)
{
	size_t n = strlen(tok);
	for (const char *p = list; p && *p;) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		if (len == n && !strncmp(p, tok, n))
			return true;
		p = c ? c + 1 : NULL;
	}
	return false;
}

/* Our own cgroup path for a v1 controller (or "" for the v2 line) from
 * /proc/self/cgroup. */
static bool own_cgroup(const char *ctrl, char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return false;
	char line[1024];
	bool found = false;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctrls = c1 + 1;
		bool match = ctrl[0] ? has_token(ctrls, ctrl) : ctrls[0] == '\0';
		if (match) {
			int n = snprintf(out, cap, "%s", c2 + 1);
			found = n > 0 && (size_t)n < cap;
			break;
		}
	}
	fclose(f);
	return found;
}

/* Mount point of the v1 hierarchy holding ctrl, or of cgroup2 (ctrl ""). */
static bool cg_mount(const char *ctrl, char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	if (!f)
		return false;
	char line[1024];
	bool found = false;
	while (fgets(line, sizeof line, f)) {
		char dev[256], dir[512], type[64], opts[512];
		if (sscanf(line, "%255s %511s %63s %511s", dev, dir, type, opts) != 4)
			continue;
		if (ctrl[0] ? (!strcmp(type, "cgroup") && has_token(opts, ctrl))
			    : !strcmp(type, "cgroup2")) {
			int n = snprintf(out, cap, "%s", dir);
			found = n > 0 && (size_t)n < cap;
			break;
		}
	}
	fclose(f);
	return found;
}

/* "<mount><own path>/tanuki-sandbox", created when missing; true when we
 * may create run cgroups in it. */
static bool cg_base(const char *mnt, const char *own, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s%s/" SB_CG_BASE, mnt, strcmp(own, "/") ? own : "");
	if (n < 0 || (size_t)n >= cap - 64) {
		out[0] = '\0';
		return false;
	}
	if (mkdir(out, 0755) < 0 && errno != EEXIST) {
		out[0] = '\0';
		return false;
	}
	if (access(out, W_OK) < 0) {
		out[0] = '\0';
		return false;
	}
	return true;
}

static void probe_v2(struct tk_sandbox_host *h)
{
	char mnt[256], own[512], dir[1024], buf[512];
	if (!cg_mount("", mnt, sizeof mnt) || !own_cgroup("", own, sizeof own))
		return;
	snprintf(dir, sizeof dir, "%s%s", mnt, strcmp(own, "/") ? own : "");
	char path[1100];
	snprintf(path, sizeof path, "%s/cgroup.controllers", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	bool mem = strstr(buf, "memory") != NULL, pids = strstr(buf, "pids") != NULL;
	if (!mem || !pids) {
		/* the controllers live on v1 (hybrid) or are not delegated */
		snprintf(h->cg_note, sizeof h->cg_note,
			 "cgroup v2 at %s offers no memory+pids controllers here", mnt);
		return;
	}
	/* Enable them for our children. This fails with EBUSY when our own
	 * cgroup holds processes and is not the root (the "no internal
	 * processes" rule): then the supervisor must be started in a delegated
	 * cgroup with a leaf for itself; we do not move ourselves. */
	snprintf(path, sizeof path, "%s/cgroup.subtree_control", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	bool ok = fd >= 0 && write(fd, "+memory +pids", 13) == 13;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (!ok) {
		snprintf(h->cg_note, sizeof h->cg_note,
			 "cgroup v2: cannot enable memory+pids below %.120s (%s)%s", dir, strerror(e),
			 e == EBUSY ? ": it holds processes; start the supervisor in a delegated "
				      "cgroup with a leaf of its own"
				    : "");
		return;
	}
	if (!cg_base(mnt, own, h->cg_v2_dir, sizeof h->cg_v2_dir)) {
		snprintf(h->cg_note, sizeof h->cg_note, "cgroup v2: cannot create %.120s/%s",
			 dir, SB_CG_BASE);
		return;
	}
	snprintf(path, sizeof path, "%s/cgroup.subtree_control", h->cg_v2_dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ok = write(fd, "+memory +pids", 13) == 13;
	close(fd);
	if (!ok)
		return;
	h->cgmode = TK_SB_CG_V2;
	h->cg_memory = h->cg_pids = h->cg_cpu = true;
	snprintf(path, sizeof path, "%s/memory.swap.max", h->cg_v2_dir);
	h->cg_swap = access(path, F_OK) == 0;
	snprintf(path, sizeof path, "%s/cgroup.kill", h->cg_v2_dir);
	h->cg_kill = access(path, F_OK) == 0;
}

static void probe_v1(struct tk_sandbox_host *h)
{
	char mnt[256], own[512];
	if (cg_mount("memory", mnt, sizeof mnt) && own_cgroup("memory", own, sizeof own) &&
	    cg_base(mnt, own, h->cg_memory_dir, sizeof h->cg_memory_dir)) {
		h->cg_memory = true;
		char path[TK_SB_PATH_MAX + 64];
		snprintf(path, sizeof path, "%s/memory.memsw.limit_in_bytes", h->cg_memory_dir);
		h->cg_swap = access(path, F_OK) == 0;
	}
	if (cg_mount("pids", mnt, sizeof mnt) && own_cgroup("pids", own, sizeof own) &&
	    cg_base(mnt, own, h->cg_pids_dir, sizeof h->cg_pids_dir))
		h->cg_pids = true;
	if (cg_mount("cpuacct", mnt, sizeof mnt) && own_cgroup("cpuacct", own, sizeof own) &&
	    cg_base(mnt, own, h->cg_cpu_dir, sizeof h->cg_cpu_dir))
		h->cg_cpu = true;
	if (h->cg_memory || h->cg_pids || h->cg_cpu)
		h->cgmode = TK_SB_CG_V1;
}

static void probe_now(struct tk_sandbox_host *h)
{
	memset(h, 0, sizeof *h);
	h->root = geteuid() == 0;
	/* Unprivileged user namespaces: the kernel limit, Debian's switch and
	 * Ubuntu's AppArmor restriction, whichever exist. */
	h->userns = read_long_file("/proc/sys/user/max_user_namespaces", 0) > 0 &&
		    read_long_file("/proc/sys/kernel/unprivileged_userns_clone", 1) == 1 &&
		    read_long_file("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", 0) == 0;
	h->seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 0 &&
		     access("/proc/sys/kernel/seccomp/actions_avail", F_OK) == 0;
	static const char *const ns[] = { "mnt", "pid", "net", "ipc", "uts", "cgroup" };
	bool all_ns = true;
	for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/self/ns/%s", ns[i]);
		if (access(path, F_OK) < 0)
			all_ns = false;
	}
	h->namespaces = all_ns && (h->root || h->userns);
	long pfd = syscall(SYS_pidfd_open, getpid(), 0);
	if (pfd >= 0) {
		h->pidfd = true;
		close((int)pfd);
	}
	probe_v2(h);
	if (h->cgmode == TK_SB_CG_NONE)
		probe_v1(h);
	/* once per process: leftovers of crashed supervisors */
	sb_cgroup_sweep(h->cg_v2_dir);
	sb_cgroup_sweep(h->cg_memory_dir);
	sb_cgroup_sweep(h->cg_pids_dir);
	sb_cgroup_sweep(h->cg_cpu_dir);

	if (!h->namespaces)
		snprintf(h->why_not, sizeof h->why_not, "%s",
			 h->root ? "namespaces are not available"
				 : "not root and unprivileged user namespaces are disabled");
	else if (!h->seccomp)
		snprintf(h->why_not, sizeof h->why_not, "seccomp filters are not available");
	else if (!h->pidfd)
		snprintf(h->why_not, sizeof h->why_not, "pidfd_open is not available (kernel < 5.3)");
	else if (!h->cg_memory)
		snprintf(h->why_not, sizeof h->why_not,
			 "no writable cgroup memory controller (v2 delegated or v1)");
	else if (!h->cg_pids)
		snprintf(h->why_not, sizeof h->why_not,
			 "no writable cgroup pids controller (v2 delegated or v1)");
}

void tk_sandbox_probe(struct tk_sandbox_host *out, bool refresh)
{
	pthread_mutex_lock(&probe_lock);
	if (!probed || refresh) {
		probe_now(&cached);
		probed = true;
	}
	*out = cached;
	pthread_mutex_unlock(&probe_lock);
}

bool tk_sandbox_host_secure(const struct tk_sandbox_host *h)
{
	return h->namespaces && h->seccomp && h->pidfd && h->cg_memory && h->cg_pids;
}

/* ---- doctor ------------------------------------------------------------ */

struct doc_line {
	const char *what;
	bool enforced; /* false: only a weak fallback, or nothing */
	char how[256];
};

/* The limit table, as it applies on this host. Returns the count. */
static size_t limit_lines(const struct tk_sandbox_host *h, struct doc_line *l)
{
	size_t n = 0;
	bool v1 = h->cgmode == TK_SB_CG_V1, v2 = h->cgmode == TK_SB_CG_V2;

	l[n].what = "memory";
	l[n].enforced = true;
	if (h->cg_memory && v2)
		snprintf(l[n].how, sizeof l[n].how, "cgroup v2 memory.max%s",
			 h->cg_swap ? " + memory.swap.max=0" : " (no swap control: swap may be used)");
	else if (h->cg_memory && v1)
		snprintf(l[n].how, sizeof l[n].how, "cgroup v1 memory.limit_in_bytes%s",
			 h->cg_swap ? " + memory.memsw.limit_in_bytes (no swap)"
				    : " (no memsw: swap may be used)");
	else {
		l[n].enforced = false;
		snprintf(l[n].how, sizeof l[n].how,
			 "RLIMIT_AS per process only (weak: address space, not RSS; "
			 "many processes multiply it)");
	}
	n++;

	l[n].what = "processes";
	l[n].enforced = true;
	if (h->cg_pids)
		snprintf(l[n].how, sizeof l[n].how, "cgroup %s pids.max (processes and threads)",
			 v2 ? "v2" : "v1");
	else {
		l[n].enforced = false;
		snprintf(l[n].how, sizeof l[n].how, "RLIMIT_NPROC only (per uid, not per run)");
	}
	n++;

	l[n].what = "cpu time";
	l[n].enforced = true;
	if (h->cg_cpu)
		snprintf(l[n].how, sizeof l[n].how, "cgroup %s polled by the supervisor "
			 "(all processes together) + RLIMIT_CPU per process",
			 v2 ? "v2 cpu.stat usage_usec" : "v1 cpuacct.usage");
	else {
		l[n].enforced = false;
		snprintf(l[n].how, sizeof l[n].how,
			 "RLIMIT_CPU per process only (a program with many processes can exceed it; "
			 "the wall limit still bounds it)");
	}
	n++;

	l[n].what = "wall time";
	l[n].enforced = true;
	snprintf(l[n].how, sizeof l[n].how, "supervisor deadline on CLOCK_MONOTONIC, SIGKILL "
		 "to the namespace's init");
	n++;

	l[n].what = "file size";
	l[n].enforced = true;
	snprintf(l[n].how, sizeof l[n].how, "RLIMIT_FSIZE");
	n++;

	l[n].what = "workspace quota";
	l[n].enforced = true;
	snprintf(l[n].how, sizeof l[n].how, "bytes and inodes polled by the supervisor "
		 "(may overshoot by what is written between two polls)");
	n++;

	l[n].what = "/tmp, /dev/shm";
	l[n].enforced = true;
	snprintf(l[n].how, sizeof l[n].how, "tmpfs size= and nr_inodes=");
	n++;

	l[n].what = "open files";
	l[n].enforced = true;
	snprintf(l[n].how, sizeof l[n].how, "RLIMIT_NOFILE");
	n++;

	l[n].what = "output";
	l[n].enforced = true;
	snprintf(l[n].how, sizeof l[n].how, "supervisor counts stdout+stderr pipe bytes");
	n++;

	l[n].what = "core dumps";
	l[n].enforced = true;
	snprintf(l[n].how, sizeof l[n].how, "RLIMIT_CORE=0");
	n++;

	l[n].what = "network";
	l[n].enforced = h->namespaces;
	snprintf(l[n].how, sizeof l[n].how, "%s", h->namespaces
		 ? "empty network namespace (or lo only) + seccomp socket-family filter"
		 : "none: no namespaces");
	n++;
	return n;
}

int tk_sandbox_doctor_text(const struct tk_sandbox_host *h, struct tk_buf *out)
{
	struct doc_line lines[16];
	size_t n = limit_lines(h, lines);
	int rc = 0;
	rc |= tk_buf_printf(out, "host:\n");
	rc |= tk_buf_printf(out, "  %-18s %s\n", "running as",
			    h->root ? "root: programs run as an unprivileged uid, no user namespace"
				    : "non-root: programs run in a user namespace");
	rc |= tk_buf_printf(out, "  %-18s %s\n", "namespaces",
			    h->namespaces ? "yes (mount pid net ipc uts cgroup)" : "NO");
	rc |= tk_buf_printf(out, "  %-18s %s\n", "user namespaces",
			    h->userns ? "yes" : (h->root ? "no (not needed as root)" : "NO"));
	rc |= tk_buf_printf(out, "  %-18s %s\n", "seccomp-bpf", h->seccomp ? "yes" : "NO");
	rc |= tk_buf_printf(out, "  %-18s %s\n", "pidfd", h->pidfd ? "yes" : "NO");
	if (h->cgmode == TK_SB_CG_V2)
		rc |= tk_buf_printf(out, "  %-18s v2, runs under %s%s\n", "cgroups", h->cg_v2_dir,
				    h->cg_kill ? " (cgroup.kill)" : "");
	else if (h->cgmode == TK_SB_CG_V1)
		rc |= tk_buf_printf(out, "  %-18s v1: memory %s, pids %s, cpuacct %s\n", "cgroups",
				    h->cg_memory ? h->cg_memory_dir : "NO",
				    h->cg_pids ? h->cg_pids_dir : "NO",
				    h->cg_cpu ? h->cg_cpu_dir : "NO");
	else
		rc |= tk_buf_printf(out, "  %-18s NONE usable (not delegated, not writable)\n",
				    "cgroups");
	if (h->cg_note[0])
		rc |= tk_buf_printf(out, "  %-18s %s\n", "", h->cg_note);
	rc |= tk_buf_printf(out, "limits:\n");
	for (size_t i = 0; i < n; i++)
		rc |= tk_buf_printf(out, "  %-16s %-9s %s\n", lines[i].what,
				    lines[i].enforced ? "enforced" : "WEAK", lines[i].how);
	if (tk_sandbox_host_secure(h))
		rc |= tk_buf_printf(out, "verdict: OK: the minimum for untrusted code is present\n");
	else
		rc |= tk_buf_printf(out, "verdict: INSECURE: %s; runs are refused unless "
				    "sandbox.allow_degraded is set\n", h->why_not);
	return rc ? TK_ELIMIT : 0;
}

json_t *tk_sandbox_doctor_json(const struct tk_sandbox_host *h)
{
	struct doc_line lines[16];
	size_t n = limit_lines(h, lines);
	const char *mode = h->cgmode == TK_SB_CG_V2 ? "v2" : h->cgmode == TK_SB_CG_V1 ? "v1"
										     : "none";
	json_t *o = json_pack("{s:b,s:b,s:b,s:b,s:b,s:{s:s,s:b,s:b,s:b,s:b,s:b},s:b,s:s?}",
			      "root", h->root, "namespaces", h->namespaces, "user_namespaces",
			      h->userns, "seccomp", h->seccomp, "pidfd", h->pidfd, "cgroups",
			      "mode", mode, "memory", h->cg_memory, "swap", h->cg_swap, "pids",
			      h->cg_pids, "cpu", h->cg_cpu, "kill", h->cg_kill, "secure",
			      tk_sandbox_host_secure(h), "why_not",
			      h->why_not[0] ? h->why_not : NULL);
	json_t *lim = json_object();
	if (o && h->cg_note[0])
		json_object_set_new(o, "cgroup_note", json_string(h->cg_note));
	if (!o || !lim || json_object_set_new(o, "limits", lim)) {
		json_decref(o);
		tk_errf(TK_ENOMEM, "sandbox doctor: out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		json_object_set_new(lim, lines[i].what,
				    json_pack("{s:b,s:s}", "enforced", lines[i].enforced, "how",
					      lines[i].how));
	return o;
}
