/*
 * cgroup.c — one cgroup per run: memory (with swap), pids and CPU
 * accounting, on cgroup v2 (one directory) or v1 (one directory per
 * controller). Owns the run directories from sb_cgroup_create() until
 * sb_cgroup_destroy(), which kills any straggler before removing them.
 *
 * The directories are made under the parents tk_sandbox_probe() found
 * ("<controller mount>/<our own cgroup>/tanuki-sandbox"), named after the
 * supervisor's pid and a per-process counter, so concurrent runs and
 * concurrent supervisors never share one.
 *
 * All file I/O here is on cgroupfs, which has no symlinks the sandbox could
 * plant; the sandbox never sees these paths (its cgroup namespace is rooted
 * at its own cgroup and /sys is not mounted inside).
 */
#include "sandbox/sandbox_int.h"

#include "core/err.h"
#include "obs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int write_file(const char *dir, const char *file, const char *val)
{
	char path[TK_SB_PATH_MAX + 128];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return tk_errf_sys(TK_EIO, errno, "cgroup: open %s", path);
	size_t n = strlen(val);
	ssize_t w = write(fd, val, n);
	int e = errno;
	close(fd);
	if (w != (ssize_t)n)
		return tk_errf_sys(TK_EIO, w < 0 ? e : EIO, "cgroup: write '%s' to %s", val, path);
	return 0;
}

/* Reads a small file into buf (NUL-terminated). Bytes read or -1. */
static ssize_t read_file(const char *dir, const char *file, char *buf, size_t cap)
{
	char path[TK_SB_PATH_MAX + 128];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* Value of "key N" in a flat-keyed file (memory.events, pids.events, ...). */
static int64_t read_key(const char *dir, const char *file, const char *key)
{
	char buf[4096];
	if (read_file(dir, file, buf, sizeof buf) < 0)
		return -1;
	size_t kl = strlen(key);
	for (char *line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (!strncmp(line, key, kl) && line[kl] == ' ')
			return strtoll(line + kl + 1, NULL, 10);
		line = nl ? nl + 1 : NULL;
	}
	return -1;
}

static int64_t read_num(const char *dir, const char *file)
{
	char buf[64];
	if (read_file(dir, file, buf, sizeof buf) < 0)
		return -1;
	if (!strncmp(buf, "max", 3))
		return INT64_MAX;
	return strtoll(buf, NULL, 10);
}

static int make_dir(char *dst, size_t cap, const char *parent, const char *name)
{
	snprintf(dst, cap, "%s/%s", parent, name);
	if (mkdir(dst, 0700) < 0) {
		int e = errno;
		dst[0] = '\0';
		return tk_errf_sys(TK_EIO, e, "cgroup: mkdir %s/%s", parent, name);
	}
	return 0;
}

static int open_procs(struct sb_cgroup *cg, const char *dir)
{
	char path[TK_SB_PATH_MAX + 128];
	snprintf(path, sizeof path, "%s/cgroup.procs", dir);
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return tk_errf_sys(TK_EIO, errno, "cgroup: open %s", path);
	cg->procs_fd[cg->n_procs_fd++] = fd;
	return 0;
}

int sb_cgroup_create(struct sb_cgroup *cg, const struct tk_sandbox_host *h, const char *name,
		     const struct tk_sandbox_limits *lim)
{
	memset(cg, 0, sizeof *cg);
	cg->procs_fd[0] = cg->procs_fd[1] = cg->procs_fd[2] = -1;
	cg->mode = h->cgmode;
	char num[32];
	int rc = 0;
	uint64_t mem_bytes = lim->mem_mb * 1024 * 1024;

	if (h->cgmode == TK_SB_CG_V2) {
		rc = make_dir(cg->v2, sizeof cg->v2, h->cg_v2_dir, name);
		if (rc)
			goto fail;
		if (h->cg_memory) {
			snprintf(num, sizeof num, "%llu", (unsigned long long)mem_bytes);
			if ((rc = write_file(cg->v2, "memory.max", num)))
				goto fail;
			/* Swap would let the program exceed memory.max silently
			 * (and slowly): none at all. */
			if (h->cg_swap && (rc = write_file(cg->v2, "memory.swap.max", "0")))
				goto fail;
		}
		if (h->cg_pids) {
			snprintf(num, sizeof num, "%llu", (unsigned long long)lim->pids);
			if ((rc = write_file(cg->v2, "pids.max", num)))
				goto fail;
		}
		if ((rc = open_procs(cg, cg->v2)))
			goto fail;
		return 0;
	}
	if (h->cgmode != TK_SB_CG_V1)
		return 0;
	if (h->cg_memory) {
		if ((rc = make_dir(cg->mem, sizeof cg->mem, h->cg_memory_dir, name)))
			goto fail;
		snprintf(num, sizeof num, "%llu", (unsigned long long)mem_bytes);
		if ((rc = write_file(cg->mem, "memory.limit_in_bytes", num)))
			goto fail;
		/* memsw = memory + swap: equal to the memory limit means no
		 * swap. It must be set after memory.limit_in_bytes. */
		if (h->cg_swap && (rc = write_file(cg->mem, "memory.memsw.limit_in_bytes", num)))
			goto fail;
		if ((rc = open_procs(cg, cg->mem)))
			goto fail;
	}
	if (h->cg_pids) {
		if ((rc = make_dir(cg->pids, sizeof cg->pids, h->cg_pids_dir, name)))
			goto fail;
		snprintf(num, sizeof num, "%llu", (unsigned long long)lim->pids);
		if ((rc = write_file(cg->pids, "pids.max", num)))
			goto fail;
		if ((rc = open_procs(cg, cg->pids)))
			goto fail;
	}
	if (h->cg_cpu) {
		if ((rc = make_dir(cg->cpu, sizeof cg->cpu, h->cg_cpu_dir, name)))
			goto fail;
		if ((rc = open_procs(cg, cg->cpu)))
			goto fail;
	}
	return 0;
fail: {
	char keep[TK_ERR_DETAIL_MAX];
	snprintf(keep, sizeof keep, "%s", tk_err_detail());
	sb_cgroup_destroy(cg);
	return tk_errf(rc, "%s", keep);
}
}

int64_t sb_cgroup_cpu_ns(const struct sb_cgroup *cg)
{
	if (cg->mode == TK_SB_CG_V2 && cg->v2[0]) {
		int64_t us = read_key(cg->v2, "cpu.stat", "usage_usec");
		return us < 0 ? -1 : us * 1000;
	}
	if (cg->mode == TK_SB_CG_V1 && cg->cpu[0])
		return read_num(cg->cpu, "cpuacct.usage");
	return -1;
}

void sb_cgroup_stats(const struct sb_cgroup *cg, uint64_t *peak_bytes, bool *oom, bool *pids_max)
{
	*peak_bytes = 0;
	*oom = false;
	*pids_max = false;
	int64_t v;
	if (cg->mode == TK_SB_CG_V2 && cg->v2[0]) {
		if ((v = read_num(cg->v2, "memory.peak")) > 0 && v != INT64_MAX)
			*peak_bytes = (uint64_t)v;
		*oom = read_key(cg->v2, "memory.events", "oom_kill") > 0;
		*pids_max = read_key(cg->v2, "pids.events", "max") > 0;
	} else if (cg->mode == TK_SB_CG_V1) {
		/* A slot's event counters run across runs: compare with the
		 * baseline taken before this one (0 for a fresh cgroup). */
		int64_t oom_base = cg->slot && cg->oom_base > 0 ? cg->oom_base : 0;
		int64_t pids_base = cg->slot && cg->pids_base > 0 ? cg->pids_base : 0;
		if (cg->mem[0]) {
			if ((v = read_num(cg->mem, "memory.max_usage_in_bytes")) > 0)
				*peak_bytes = (uint64_t)v;
			*oom = read_key(cg->mem, "memory.oom_control", "oom_kill") > oom_base;
		}
		if (cg->pids[0])
			*pids_max = read_key(cg->pids, "pids.events", "max") > pids_base;
	}
}

/* Kills every process listed in dir/cgroup.procs; true when it was empty. */
static bool kill_listed(const char *dir)
{
	char buf[8192];
	if (read_file(dir, "cgroup.procs", buf, sizeof buf) <= 0)
		return true;
	for (char *p = buf; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0)
			kill((pid_t)pid, SIGKILL);
		p = end;
		while (*p == '\n')
			p++;
	}
	return false;
}

static void remove_dir(const char *dir)
{
	if (!dir[0])
		return;
	/* By the time we get here the PID namespace's init has been reaped,
	 * which means the kernel already killed everything inside. This is
	 * the second line of defence; it also covers a cgroup whose run never
	 * got as far as cloning. */
	for (int i = 0; i < 200; i++) {
		if (!kill_listed(dir)) {
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
			continue;
		}
		if (rmdir(dir) == 0 || errno == ENOENT)
			return;
		if (errno != EBUSY)
			break;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	/* Leaving a directory behind is not a security problem (it is empty
	 * or its processes are being killed) but it is a leak worth a word. */
	tk_log(TK_LOG_WARNING, "sandbox", "cannot remove cgroup %s: %s", dir, strerror(errno));
}

void sb_cgroup_destroy(struct sb_cgroup *cg)
{
	if (!cg)
		return;
	if (cg->slot) {
		/* kept for the next run: only make sure nothing is left in it */
		sb_slot_sweep_tasks(cg->slot);
		sb_slot_release(cg->slot);
		cg->slot = NULL;
		cg->mem[0] = cg->pids[0] = cg->cpu[0] = '\0';
		return;
	}
	for (int i = 0; i < cg->n_procs_fd; i++)
		if (cg->procs_fd[i] >= 0)
			close(cg->procs_fd[i]);
	cg->n_procs_fd = 0;
	if (cg->mode == TK_SB_CG_V2 && cg->v2[0]) {
		/* cgroup.kill (5.14+) kills everything inside at once. */
		char path[TK_SB_PATH_MAX + 128];
		snprintf(path, sizeof path, "%s/cgroup.kill", cg->v2);
		if (access(path, F_OK) == 0)
			write_file(cg->v2, "cgroup.kill", "1");
	}
	remove_dir(cg->v2);
	remove_dir(cg->pids);
	remove_dir(cg->cpu);
	remove_dir(cg->mem);
	cg->v2[0] = cg->pids[0] = cg->cpu[0] = cg->mem[0] = '\0';
}

void sb_cgroup_sweep(const char *base)
{
	if (!base || !base[0])
		return;
	DIR *d = opendir(base);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		int pid;
		unsigned seq;
		char tail;
		if ((sscanf(e->d_name, "run-%d-%u%c", &pid, &seq, &tail) != 2 &&
		     sscanf(e->d_name, "slot-%d-%u%c", &pid, &seq, &tail) != 2) || pid <= 0)
			continue;
		/* Only the leftovers of supervisors that are gone (crashed or
		 * killed): a live one's runs are its own business. */
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		char dir[TK_SB_PATH_MAX + 64];
		snprintf(dir, sizeof dir, "%s/%s", base, e->d_name);
		kill_listed(dir);
		if (rmdir(dir) == 0)
			tk_log(TK_LOG_INFO, "sandbox", "removed stale cgroup %s", dir);
	}
	closedir(d);
}
