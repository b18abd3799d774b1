/*
 * run.c — the supervisor side of one sandbox run (tk_sandbox_run).
 *
 * Theory of operation (one run, outside):
 *   1. check the spec, probe the host (cached), refuse when the minimum is
 *      missing and degraded runs are not allowed;
 *   2. prepare everything the child needs (struct sb_plan): open the
 *      workspace and every bind source by fd (O_PATH | O_NOFOLLOW), the
 *      stdin file, the stdout/stderr/report pipes, the run's cgroup with
 *      its limits, the cached seccomp program;
 *   3. clone straight into new mount, PID, network, IPC, UTS (and user)
 *      namespaces — no helper binary, no exec of our own — and let the child
 *      (child.c) build the box;
 *   4. supervise with poll(2) on the output pipes and a pidfd of the
 *      namespace's init: capture output up to the caps, count every byte,
 *      and kill the init (which takes the whole namespace with it) when the
 *      output limit, the wall deadline, the cgroup CPU total or the
 *      workspace quota trips. The CPU check is scheduled for the earliest
 *      moment the budget could be spent (remaining / CPUs), so a short run
 *      costs no polling at all;
 *   5. reap the init, read the program's wait status from the report pipe,
 *      read the cgroup's peak memory and OOM count, remove the cgroup, and
 *      classify: OK, RE, SG, TO, ML, OL or XX;
 *   6. one log line and the metrics.
 */
#include "sandbox/sandbox_int.h"

#include "core/err.h"
#include "core/time.h"
#include "obs/log.h"
#include "obs/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SB_CAPTURE_DEFAULT (64u * 1024)
#define SB_DISK_POLL_NS (250 * 1000000LL)

static atomic_uint run_seq;

void tk_sandbox_options_defaults(struct tk_sandbox_options *o)
{
	o->uid = 61000;
	o->gid = 61000;
	o->allow_degraded = false;
	o->chown_workspace = true;
	o->reuse_cgroups = true;
}

/* ---- metrics ----------------------------------------------------------- */

static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;
static struct tk_metric *m_runs, *m_wall, *m_cpu, *m_mem;

static void metrics_init(void)
{
	static const double secs[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
				       0.5,   1,      2.5,   5,    10,    30,   60,  120 };
	static const double bytes[] = { 1 << 20,   4 << 20,   16 << 20,  64 << 20,
					128 << 20, 256 << 20, 512 << 20, 1024.0 * (1 << 20),
					2048.0 * (1 << 20), 4096.0 * (1 << 20) };
	const char *pl[] = { "profile", "status" };
	m_runs = tk_metric_counter(NULL, "tanuki_sandbox_runs_total",
				   "Sandbox runs by profile and result status", pl, 2);
	m_wall = tk_metric_histogram(NULL, "tanuki_sandbox_wall_seconds",
				     "Wall-clock time of sandbox runs", pl, 1, secs,
				     sizeof secs / sizeof secs[0]);
	m_cpu = tk_metric_histogram(NULL, "tanuki_sandbox_cpu_seconds",
				    "CPU time (user+system, all processes) of sandbox runs", pl, 1,
				    secs, sizeof secs / sizeof secs[0]);
	m_mem = tk_metric_histogram(NULL, "tanuki_sandbox_peak_memory_bytes",
				    "Peak memory of sandbox runs (cgroup, else largest RSS)", pl, 1,
				    bytes, sizeof bytes / sizeof bytes[0]);
}

static void account(const struct tk_sandbox_result *r, const char *const *argv)
{
	pthread_once(&metrics_once, metrics_init);
	const char *status = tk_sandbox_status_name(r->status);
	const char *prof = r->profile[0] ? r->profile : "none";
	if (m_runs)
		tk_counter_inc(tk_metric_series(m_runs, (const char *[]){ prof, status }));
	uint64_t mem = r->peak_memory_kb ? r->peak_memory_kb : r->max_rss_kb;
	if (m_wall)
		tk_hist_observe(tk_metric_series(m_wall, (const char *[]){ prof }),
				(double)r->wall_ms / 1000.0);
	if (m_cpu)
		tk_hist_observe(tk_metric_series(m_cpu, (const char *[]){ prof }),
				(double)r->cpu_ms / 1000.0);
	if (m_mem)
		tk_hist_observe(tk_metric_series(m_mem, (const char *[]){ prof }),
				(double)mem * 1024.0);

	/* The command, shortened: argv joined by spaces, at most 200 bytes. */
	char cmd[256];
	size_t n = 0;
	for (size_t i = 0; argv && argv[i] && n < 200; i++) {
		int w = snprintf(cmd + n, sizeof cmd - n, "%s%s", i ? " " : "", argv[i]);
		if (w < 0)
			break;
		n += (size_t)w;
	}
	if (n >= sizeof cmd)
		n = sizeof cmd - 1;
	cmd[n] = '\0';
	enum tk_log_level lvl = r->status == TK_SB_XX && strcmp(r->message, "cancelled")
					? TK_LOG_ERROR
					: TK_LOG_INFO;
	tk_logf(lvl, "sandbox",
		TK_FIELDS(TK_LF_S("profile", prof), TK_LF_S("command", cmd),
			  TK_LF_S("status", status), TK_LF_S("limit", tk_sandbox_limit_name(r->limit)),
			  TK_LF_I("exit_code", r->exit_code), TK_LF_I("signal", r->signal),
			  TK_LF_I("wall_ms", r->wall_ms), TK_LF_I("cpu_ms", r->cpu_ms),
			  TK_LF_I("peak_memory_kb", mem), TK_LF_I("stdout_bytes", r->stdout_bytes),
			  TK_LF_I("stderr_bytes", r->stderr_bytes),
			  TK_LF_S("message", r->message)),
		"sandbox run %s", status);
}

/* ---- preparing the plan ------------------------------------------------ */

static void add_mkdir(struct sb_plan *p, const char *path)
{
	for (size_t i = 0; i < p->n_mkdirs; i++)
		if (!strcmp(p->mkdirs[i], path))
			return;
	if (p->n_mkdirs < sizeof p->mkdirs / sizeof p->mkdirs[0])
		snprintf(p->mkdirs[p->n_mkdirs++], sizeof p->mkdirs[0], "%s", path);
}

/* Flags of the source's mount that a user namespace may not clear; as root
 * they are kept too, which is never less safe. */
static unsigned long locked_flags(int fd)
{
	struct statvfs sv;
	if (fstatvfs(fd, &sv) < 0)
		return 0;
	unsigned long f = 0;
	if (sv.f_flag & ST_RDONLY)
		f |= MS_RDONLY;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

static int plan_binds(struct sb_plan *p, const struct tk_sandbox_profile *prof)
{
	for (size_t i = 0; i < prof->n_binds; i++) {
		const struct tk_sandbox_bind *b = &prof->binds[i];
		const char *dst = b->dst[0] ? b->dst : b->src;
		int fd = open(b->src, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT && b->optional)
				continue;
			return tk_errf_sys(TK_ENOENT, errno, "sandbox: profile '%s': bind %s",
					   prof->name, b->src);
		}
		struct stat st;
		if (fstat(fd, &st) < 0) {
			int e = errno;
			close(fd);
			return tk_errf_sys(TK_EIO, e, "sandbox: stat %s", b->src);
		}
		size_t k = p->n_mounts++;
		memset(&p->mounts[k], 0, sizeof p->mounts[k]);
		p->mounts[k].fd = fd;
		snprintf(p->mounts[k].src, sizeof p->mounts[k].src, "%s", b->src);
		p->mounts[k].dev = st.st_dev;
		p->mounts[k].ino = st.st_ino;
		snprintf(p->mounts[k].target, sizeof p->mounts[k].target, "/tmp%s", dst);
		/* every parent of the target, shallowest first */
		for (const char *s = strchr(dst + 1, '/'); s; s = strchr(s + 1, '/')) {
			char parent[TK_SB_PATH_MAX + 16];
			snprintf(parent, sizeof parent, "/tmp%.*s", (int)(s - dst), dst);
			add_mkdir(p, parent);
		}
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlinkat(fd, "", p->mounts[k].link, sizeof p->mounts[k].link - 1);
			if (n < 0) {
				int e = errno;
				return tk_errf_sys(TK_EIO, e, "sandbox: readlink %s", b->src);
			}
			p->mounts[k].link[n] = '\0';
			p->mounts[k].is_link = true;
			continue;
		}
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
			return tk_errf(TK_EINVAL, "sandbox: bind %s: only directories, files and "
				       "symlinks can be bound", b->src);
		p->mounts[k].is_dir = S_ISDIR(st.st_mode);
		p->mounts[k].rw = b->rw;
		p->mounts[k].keep = locked_flags(fd);
	}
	return 0;
}

static void merge_limits(struct tk_sandbox_limits *out, const struct tk_sandbox_limits *prof,
			 const struct tk_sandbox_limits *over)
{
	const uint64_t *a = (const uint64_t *)prof, *b = (const uint64_t *)over;
	uint64_t *o = (uint64_t *)out;
	for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
		o[i] = b[i] ? b[i] : a[i];
}

/* ---- supervising ------------------------------------------------------- */

struct stream {
	int fd;             /* read end, -1 once at EOF */
	struct tk_buf *cap; /* captured copy */
	uint64_t *bytes;    /* every byte read */
	bool *truncated;
	int which;          /* 1 stdout, 2 stderr */
	const struct tk_sandbox_spec *spec; /* for on_output */
	uint64_t *forward_left; /* bytes on_output may still get (both streams) */
};

/* Reads what is there. Returns the bytes read this call. */
static uint64_t drain(struct stream *s, bool capture)
{
	char buf[65536];
	uint64_t total = 0;
	while (s->fd >= 0) {
		ssize_t n = read(s->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) /* EAGAIN: nothing more for now */
			break;
		if (n == 0) {
			close(s->fd);
			s->fd = -1;
			break;
		}
		*s->bytes += (uint64_t)n;
		total += (uint64_t)n;
		if (capture && s->spec->on_output && *s->forward_left) {
			size_t fw = (uint64_t)n < *s->forward_left ? (size_t)n
								   : (size_t)*s->forward_left;
			s->spec->on_output(s->spec->on_output_arg, s->which, buf, fw);
			*s->forward_left -= fw;
		}
		size_t room = s->cap->max_bytes - s->cap->len;
		size_t take = capture ? ((size_t)n < room ? (size_t)n : room) : 0;
		if (take && tk_buf_append(s->cap, buf, take) != 0)
			take = 0;
		if (take < (size_t)n)
			*s->truncated = true;
	}
	return total;
}

static void set_xx(struct tk_sandbox_result *r, const char *what)
{
	r->status = TK_SB_XX;
	snprintf(r->message, sizeof r->message, "%s: %s", what, tk_err_detail());
}

static void hit(struct tk_sandbox_result *r, enum tk_sandbox_limit l)
{
	r->limits_hit |= 1u << l;
}

int tk_sandbox_run(const struct tk_sandbox_spec *spec, struct tk_sandbox_result *r)
{
	if (!r)
		return tk_errf(TK_EINVAL, "sandbox: no result");
	tk_sandbox_result_init(r);
	if (!spec || !spec->profile || !spec->workspace || !spec->argv || !spec->argv[0] ||
	    !spec->argv[0][0]) {
		int rc = tk_errf(TK_EINVAL, "sandbox: spec needs a profile, a workspace and argv");
		set_xx(r, "bad spec");
		return rc;
	}
	const struct tk_sandbox_profile *prof = spec->profile;
	snprintf(r->profile, sizeof r->profile, "%s", prof->name);
	int rc = tk_sandbox_profile_check(prof);
	if (rc) {
		set_xx(r, "bad profile");
		return rc;
	}
	rc = tk_sandbox_limits_check(&spec->limits, true);
	if (rc) {
		set_xx(r, "bad spec");
		return rc;
	}
	struct tk_sandbox_options defopts;
	tk_sandbox_options_defaults(&defopts);
	const struct tk_sandbox_options *opts = spec->opts ? spec->opts : &defopts;
	size_t cap_bytes = spec->capture_max_bytes ? spec->capture_max_bytes : SB_CAPTURE_DEFAULT;
	tk_buf_init(&r->out, cap_bytes);
	tk_buf_init(&r->err, cap_bytes);

	struct tk_sandbox_host host;
	tk_sandbox_probe(&host, false);
	if (!tk_sandbox_host_secure(&host) && !opts->allow_degraded) {
		rc = tk_errf(TK_EUNSUPPORTED, "sandbox: refusing to run untrusted code: %s "
			     "(see 'tanuki sandbox doctor'; sandbox.allow_degraded overrides)",
			     host.why_not);
		set_xx(r, "host lacks the minimum isolation");
		snprintf(r->message, sizeof r->message, "%s", tk_err_detail());
		account(r, spec->argv);
		return rc;
	}
	if (!host.namespaces) {
		/* Even degraded, we never run without namespaces: there would be
		 * no root, no network isolation, nothing to call a sandbox. */
		rc = tk_errf(TK_EUNSUPPORTED, "sandbox: %s", host.why_not);
		set_xx(r, "no namespaces");
		account(r, spec->argv);
		return rc;
	}

	struct sb_plan *plan = calloc(1, sizeof *plan);
	if (!plan) {
		set_xx(r, "out of memory");
		return 0;
	}
	struct sb_cgroup cg;
	memset(&cg, 0, sizeof cg);
	int out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 }, rep_p[2] = { -1, -1 };
	int stdin_fd = -1, ws_fd = -1, self_pidfd = -1, pidfd = -1;
	pid_t pid = -1;
	bool cg_made = false, sup_failed = false;
	int64_t t0 = tk_time_mono_ns();

	plan->lim = prof->limits;
	merge_limits(&plan->lim, &prof->limits, &spec->limits);
	const struct tk_sandbox_limits *lim = &plan->lim;
	enum tk_sandbox_net net = spec->net != TK_SB_NET_DEFAULT ? spec->net : prof->net;
	if (net != TK_SB_NET_NONE && net != TK_SB_NET_LOOPBACK) {
		rc = tk_errf(TK_EINVAL, "sandbox: bad network mode %d", (int)net);
		set_xx(r, "bad spec");
		goto out;
	}

	/* The workspace, by fd from here on. Its last component must not be
	 * a symlink (whoever made the path is trusted; what is inside is not). */
	ws_fd = open(spec->workspace, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ws_fd < 0) {
		tk_errf_sys(TK_EIO, errno, "open %s", spec->workspace);
		set_xx(r, "workspace");
		goto out;
	}
	plan->ws_fd = ws_fd;
	plan->ws_path = spec->workspace;
	plan->ws_keep = locked_flags(ws_fd);
	struct stat wst_st;
	if (fstat(ws_fd, &wst_st) < 0) {
		tk_errf_sys(TK_EIO, errno, "stat %s", spec->workspace);
		set_xx(r, "workspace");
		goto out;
	}
	plan->ws_dev = wst_st.st_dev;
	plan->ws_ino = wst_st.st_ino;
	if (host.root && opts->chown_workspace) {
		int dfd = openat(ws_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || sb_workspace_chown(dfd, opts->uid, opts->gid)) {
			if (dfd < 0)
				tk_errf_sys(TK_EIO, errno, "open %s", spec->workspace);
			if (dfd >= 0)
				close(dfd);
			set_xx(r, "workspace");
			goto out;
		}
		close(dfd);
	}

	if (spec->stdin_path) {
		stdin_fd = open(spec->stdin_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (stdin_fd < 0) {
			tk_errf_sys(TK_EIO, errno, "open %s", spec->stdin_path);
			set_xx(r, "stdin");
			goto out;
		}
	} else {
		stdin_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (stdin_fd < 0) {
			tk_errf_sys(TK_EIO, errno, "open /dev/null");
			set_xx(r, "stdin");
			goto out;
		}
	}
	if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 ||
	    pipe2(rep_p, O_CLOEXEC) < 0) {
		tk_errf_sys(TK_EIO, errno, "pipe2");
		set_xx(r, "pipes");
		goto out;
	}
	fcntl(out_p[0], F_SETFL, O_NONBLOCK);
	fcntl(err_p[0], F_SETFL, O_NONBLOCK);
	fcntl(rep_p[0], F_SETFL, O_NONBLOCK);

	if (plan_binds(plan, prof)) {
		set_xx(r, "profile binds");
		goto out;
	}
	if (host.seccomp) {
		plan->filter = sb_seccomp_program(net);
		if (!plan->filter) {
			set_xx(r, "system-call filter");
			goto out;
		}
	}
	if (host.cgmode != TK_SB_CG_NONE && opts->reuse_cgroups) {
		struct sb_slot *slot = sb_slot_acquire(&host);
		if (slot && sb_slot_configure(slot, &host, lim, &cg) == 0) {
			cg_made = true;
			plan->cg = &cg;
		} else if (slot) {
			tk_log(TK_LOG_DEBUG, "sandbox", "slot not usable, per-run cgroup: %s",
			       tk_err_detail());
			sb_slot_release(slot);
			memset(&cg, 0, sizeof cg);
		}
	}
	if (host.cgmode != TK_SB_CG_NONE && !cg_made) {
		char name[64];
		snprintf(name, sizeof name, "run-%d-%u", (int)getpid(),
			 atomic_fetch_add(&run_seq, 1u));
		if (sb_cgroup_create(&cg, &host, name, lim)) {
			set_xx(r, "cgroup");
			goto out;
		}
		cg_made = true;
		plan->cg = &cg;
	}

	plan->stdin_fd = stdin_fd;
	plan->stdout_fd = out_p[1];
	plan->stderr_fd = err_p[1];
	plan->report_fd = rep_p[1];
	self_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	plan->parent_pidfd = self_pidfd;
	plan->userns = !host.root;
	plan->outer_uid = (unsigned)geteuid();
	plan->outer_gid = (unsigned)getegid();
	if (host.root) {
		plan->uid = opts->uid;
		plan->gid = opts->gid;
	} else {
		/* In our own user namespace: one id, mapped to ours. */
		plan->uid = plan->gid = 1000;
		snprintf(plan->uid_map, sizeof plan->uid_map, "1000 %u 1\n", plan->outer_uid);
		snprintf(plan->gid_map, sizeof plan->gid_map, "1000 %u 1\n", plan->outer_gid);
	}
	plan->loopback = net == TK_SB_NET_LOOPBACK;
	snprintf(plan->passwd, sizeof plan->passwd,
		 "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
		 "sandbox:x:%u:%u:sandbox:/tmp:/bin/sh\n"
		 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		 plan->uid, plan->gid);
	snprintf(plan->group, sizeof plan->group, "root:x:0:\nsandbox:x:%u:\nnogroup:x:65534:\n",
		 plan->gid);
	/* nr_inodes caps file count as size= caps bytes (inode fill). */
	snprintf(plan->tmp_opts, sizeof plan->tmp_opts, "size=%llum,nr_inodes=%llu,mode=1777",
		 (unsigned long long)lim->tmp_mb, (unsigned long long)(lim->tmp_mb * 256 + 1024));
	snprintf(plan->shm_opts, sizeof plan->shm_opts, "size=%llum,nr_inodes=%llu,mode=1777",
		 (unsigned long long)lim->tmp_mb, (unsigned long long)(lim->tmp_mb * 16 + 64));
	plan->argv = spec->argv;
	for (size_t i = 0; i < prof->n_env; i++)
		plan->envp[i] = (char *)prof->env[i];
	plan->envp[prof->n_env] = NULL;

	unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
			      CLONE_NEWUTS | (plan->userns ? CLONE_NEWUSER : 0);
	t0 = tk_time_mono_ns();
	/* No exit signal: the child is then invisible to a waitpid(-1) elsewhere
	 * in the process and never auto-reaped when SIGCHLD is ignored; only
	 * our wait4(pid, __WALL) collects it. */
	if (cg.slot)
		pid = sb_slot_clone(cg.slot, plan, flags);
	else
		pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
	if (pid < 0) {
		tk_errf_sys(TK_EIO, errno, "clone");
		set_xx(r, "clone into new namespaces");
		goto out;
	}
	if (pid == 0)
		sb_child_main(plan);

	/* The child has its copies; ours of its ends must go, or we would
	 * never see EOF. */
	close(out_p[1]);
	close(err_p[1]);
	close(rep_p[1]);
	out_p[1] = err_p[1] = rep_p[1] = -1;
	close(stdin_fd);
	stdin_fd = -1;
	for (size_t i = 0; i < plan->n_mounts; i++)
		if (plan->mounts[i].fd >= 0) {
			close(plan->mounts[i].fd);
			plan->mounts[i].fd = -1;
		}

	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		kill(pid, SIGKILL);
		tk_errf_sys(TK_EIO, errno, "pidfd_open");
		set_xx(r, "pidfd");
		sup_failed = true;
		goto reap;
	}

	uint64_t out_limit = lim->output_kb * 1024;
	uint64_t forward_left = out_limit;
	struct stream so = { out_p[0], &r->out, &r->stdout_bytes, &r->stdout_truncated, 1, spec,
			     &forward_left };
	struct stream se = { err_p[0], &r->err, &r->stderr_bytes, &r->stderr_truncated, 2, spec,
			     &forward_left };
	out_p[0] = err_p[0] = -1; /* owned by the streams now */
	int64_t deadline = t0 + (int64_t)lim->wall_ms * 1000000;
	int64_t cpu_limit_ns = (int64_t)lim->cpu_ms * 1000000;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	bool cpu_poll = sb_cgroup_cpu_ns(&cg) >= 0;
	int64_t next_cpu = cpu_poll ? t0 + cpu_limit_ns / ncpu : INT64_MAX;
	bool disk_poll = true;
	int64_t next_disk = t0 + SB_DISK_POLL_NS;
	enum tk_sandbox_limit killed_for = TK_SB_LIM_NONE;
	bool exited = false, cancelled = false;
	sup_failed = false;

	while (!exited) {
		int64_t now = tk_time_mono_ns();
		if (killed_for == TK_SB_LIM_NONE) {
			if (now >= deadline) {
				killed_for = TK_SB_LIM_WALL;
			} else if (now >= next_cpu) {
				int64_t used = sb_cgroup_cpu_ns(&cg);
				if (used >= cpu_limit_ns) {
					killed_for = TK_SB_LIM_CPU;
				} else {
					int64_t left = (cpu_limit_ns - (used < 0 ? 0 : used)) / ncpu;
					next_cpu = now + (left < 2000000 ? 2000000 : left);
				}
			} else if (disk_poll && now >= next_disk) {
				uint64_t bytes = 0, inodes = 0;
				int urc = sb_workspace_usage_fd(ws_fd, &bytes, &inodes);
				if (urc == TK_ELIMIT || bytes > lim->disk_mb * 1024 * 1024 ||
				    inodes > lim->disk_inodes)
					killed_for = TK_SB_LIM_DISK;
				else if (urc)
					disk_poll = false; /* cannot measure; checked again at the end */
				/* A big tree costs time to walk: spend at most ~10% of
				 * the supervisor's time on it. */
				int64_t took = tk_time_mono_ns() - now;
				next_disk = now + (took * 10 > SB_DISK_POLL_NS ? took * 10
									 : SB_DISK_POLL_NS);
			}
			if (killed_for != TK_SB_LIM_NONE)
				kill(pid, SIGKILL); /* init: the kernel kills the namespace */
		}
		if (!cancelled && spec->cancel && atomic_load(spec->cancel)) {
			cancelled = true;
			kill(pid, SIGKILL);
		}
		int64_t wake = deadline;
		if (next_cpu < wake)
			wake = next_cpu;
		if (disk_poll && next_disk < wake)
			wake = next_disk;
		int timeout_ms = killed_for != TK_SB_LIM_NONE || cancelled
					 ? 50
					 : (int)((wake - now + 999999) / 1000000);
		if (timeout_ms < 0)
			timeout_ms = 0;
		if (spec->cancel && timeout_ms > 50)
			timeout_ms = 50; /* look at the cancel flag often enough */
		struct pollfd pf[3] = { { pidfd, POLLIN, 0 }, { so.fd, POLLIN, 0 },
					{ se.fd, POLLIN, 0 } };
		int pr = poll(pf, 3, timeout_ms);
		if (pr < 0 && errno != EINTR) {
			kill(pid, SIGKILL);
			tk_errf_sys(TK_EIO, errno, "poll");
			set_xx(r, "supervising");
			sup_failed = true;
			break;
		}
		bool capture = killed_for == TK_SB_LIM_NONE;
		if (pr > 0 && (pf[1].revents || pf[2].revents)) {
			drain(&so, capture);
			drain(&se, capture);
			if (killed_for == TK_SB_LIM_NONE &&
			    r->stdout_bytes + r->stderr_bytes > out_limit) {
				killed_for = TK_SB_LIM_OUTPUT;
				kill(pid, SIGKILL);
			}
		}
		if (pr > 0 && pf[0].revents)
			exited = true;
	}
	/* Every writer is dead now (the namespace died with its init), so
	 * whatever they wrote is already in the pipes. */
	if (!sup_failed) {
		bool capture = killed_for == TK_SB_LIM_NONE;
		drain(&so, capture);
		drain(&se, capture);
		if (killed_for == TK_SB_LIM_NONE && r->stdout_bytes + r->stderr_bytes > out_limit)
			killed_for = TK_SB_LIM_OUTPUT;
	}
	if (so.fd >= 0)
		close(so.fd);
	if (se.fd >= 0)
		close(se.fd);
	if (killed_for != TK_SB_LIM_NONE)
		hit(r, killed_for);

reap:;
	int wst = 0;
	struct rusage ru;
	memset(&ru, 0, sizeof ru);
	while (wait4(pid, &wst, __WALL, &ru) < 0 && errno == EINTR)
		;
	int64_t t1 = tk_time_mono_ns();
	r->wall_ms = (uint64_t)((t1 - t0) / 1000000);
	r->max_rss_kb = (uint64_t)ru.ru_maxrss;
	uint64_t ru_cpu_ms = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
			     (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
	int64_t cg_cpu = cg_made ? sb_cgroup_cpu_ns(&cg) : -1;
	r->cpu_ms = cg_cpu >= 0 ? (uint64_t)(cg_cpu / 1000000) : ru_cpu_ms;
	if (sup_failed)
		goto out; /* already described */

	/* What the inside said. */
	struct sb_report rep;
	bool have_status = false, setup_err = false, exec_err = false;
	int prog_status = 0;
	for (;;) {
		ssize_t n = read(rep_p[0], &rep, sizeof rep);
		if (n != (ssize_t)sizeof rep)
			break;
		rep.what[sizeof rep.what - 1] = '\0';
		if (rep.kind == SB_REP_STATUS) {
			have_status = true;
			prog_status = rep.wstatus;
		} else if (rep.kind == SB_REP_SETUP_ERROR) {
			setup_err = true;
			snprintf(r->message, sizeof r->message, "sandbox setup: %s: %s", rep.what,
				 strerror(rep.err));
		} else if (rep.kind == SB_REP_EXEC_ERROR) {
			exec_err = true;
			snprintf(r->message, sizeof r->message, "cannot execute %s: %s", rep.what,
				 strerror(rep.err));
		}
	}

	uint64_t peak = 0;
	bool oom = false, pids_max = false;
	if (cg_made)
		sb_cgroup_stats(&cg, &peak, &oom, &pids_max);
	r->peak_memory_kb = peak / 1024;
	if (oom)
		hit(r, TK_SB_LIM_MEMORY);
	if (pids_max)
		hit(r, TK_SB_LIM_PIDS);
	if (cpu_limit_ns && r->cpu_ms >= lim->cpu_ms)
		hit(r, TK_SB_LIM_CPU);

	if (setup_err) {
		r->status = TK_SB_XX;
	} else if (cancelled && killed_for == TK_SB_LIM_NONE) {
		r->status = TK_SB_XX;
		r->signal = SIGKILL;
		snprintf(r->message, sizeof r->message, "cancelled");
	} else if (killed_for != TK_SB_LIM_NONE) {
		r->limit = killed_for;
		r->status = (killed_for == TK_SB_LIM_WALL || killed_for == TK_SB_LIM_CPU) ? TK_SB_TO
											   : TK_SB_OL;
		r->signal = SIGKILL;
		snprintf(r->message, sizeof r->message, "%s limit exceeded",
			 tk_sandbox_limit_name(killed_for));
	} else if (!have_status) {
		/* The init died without a word: killed from outside, or by the
		 * OOM killer (it lives in the cgroup too). */
		if (oom) {
			r->status = TK_SB_ML;
			r->limit = TK_SB_LIM_MEMORY;
			r->signal = SIGKILL;
			snprintf(r->message, sizeof r->message, "memory limit exceeded");
		} else {
			r->status = TK_SB_XX;
			snprintf(r->message, sizeof r->message,
				 "sandbox init ended without a report (wait status 0x%x)", wst);
		}
	} else if (WIFEXITED(prog_status)) {
		r->exit_code = WEXITSTATUS(prog_status);
		r->status = r->exit_code == 0 ? TK_SB_OK : TK_SB_RE;
		if (r->status == TK_SB_RE && oom) {
			/* e.g. a shell whose child the OOM killer took */
			r->status = TK_SB_ML;
			r->limit = TK_SB_LIM_MEMORY;
			snprintf(r->message, sizeof r->message, "memory limit exceeded");
		}
		if (exec_err && r->exit_code != 127)
			r->message[0] = '\0';
	} else if (WIFSIGNALED(prog_status)) {
		int sig = WTERMSIG(prog_status);
		r->signal = sig;
		if (sig == SIGXCPU || (sig == SIGKILL && (r->limits_hit & (1u << TK_SB_LIM_CPU)))) {
			r->status = TK_SB_TO;
			r->limit = TK_SB_LIM_CPU;
			hit(r, TK_SB_LIM_CPU);
			snprintf(r->message, sizeof r->message, "cpu limit exceeded");
		} else if (sig == SIGXFSZ) {
			r->status = TK_SB_OL;
			r->limit = TK_SB_LIM_FSIZE;
			hit(r, TK_SB_LIM_FSIZE);
			snprintf(r->message, sizeof r->message, "file size limit exceeded");
		} else if (sig == SIGKILL && oom) {
			r->status = TK_SB_ML;
			r->limit = TK_SB_LIM_MEMORY;
			snprintf(r->message, sizeof r->message, "memory limit exceeded");
		} else {
			r->status = TK_SB_SG;
			snprintf(r->message, sizeof r->message, "killed by signal %d (%s)", sig,
				 strsignal(sig));
		}
	} else {
		r->status = TK_SB_XX;
		snprintf(r->message, sizeof r->message, "odd wait status 0x%x", prog_status);
	}

	/* The quota, once more at the end: a short run never met a poll. */
	if (r->status == TK_SB_OK || r->status == TK_SB_RE) {
		uint64_t bytes = 0, inodes = 0;
		int urc = sb_workspace_usage_fd(ws_fd, &bytes, &inodes);
		if (urc == TK_ELIMIT || bytes > lim->disk_mb * 1024 * 1024 ||
		    inodes > lim->disk_inodes) {
			r->status = TK_SB_OL;
			r->limit = TK_SB_LIM_DISK;
			hit(r, TK_SB_LIM_DISK);
			snprintf(r->message, sizeof r->message,
				 "workspace quota exceeded (%llu bytes, %llu entries)",
				 (unsigned long long)bytes, (unsigned long long)inodes);
		}
	}
	if (r->status != TK_SB_OK && r->status != TK_SB_RE)
		r->exit_code = -1;
out:
	if (pidfd >= 0)
		close(pidfd);
	if (self_pidfd >= 0)
		close(self_pidfd);
	if (cg_made)
		sb_cgroup_destroy(&cg);
	for (size_t i = 0; i < plan->n_mounts; i++)
		if (plan->mounts[i].fd >= 0)
			close(plan->mounts[i].fd);
	int fds[] = { out_p[0], out_p[1], err_p[0], err_p[1], rep_p[0], rep_p[1], stdin_fd, ws_fd };
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(plan);
	if (r->wall_ms == 0 && pid < 0)
		r->wall_ms = (uint64_t)((tk_time_mono_ns() - t0) / 1000000);
	account(r, spec->argv);
	return rc;
}
