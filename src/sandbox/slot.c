/*
 * slot.c — reusable cgroup slots for cgroup v1, so that a run's processes
 * are born in their cgroup instead of being moved there.
 *
 * Why: moving a task into a v1 cgroup takes the kernel's threadgroup rwsem
 * for writing, which waits for an RCU grace period whenever no move
 * happened in the last few milliseconds: 5-15 ms on this kind of VM, more
 * than everything else a run costs. cgroup v2 has CLONE_INTO_CGROUP for
 * this; v1 has per-thread membership instead. A slot is a set of v1
 * cgroup directories (memory, pids, cpuacct) plus one long-lived "spawner"
 * thread of ours that moved itself into them once. A run borrows a free
 * slot, the spawner clones the sandbox's init, and the init — and all its
 * descendants — start life inside the slot's cgroups. Nothing is moved per
 * run.
 *
 * Per run the slot is reconfigured (memory and swap limit, pids.max + 1 for
 * the spawner thread itself, counters reset, OOM and pids events taken as
 * a baseline). Page cache charged by earlier runs stays charged to the
 * slot (and counts in its peak) until reclaimed.
 *
 * Owns: the slot pool (at most SB_MAX_SLOTS, created on demand, kept until
 * tk_sandbox_shutdown or process exit; a dead process's slots are swept by
 * the next probe, see sb_cgroup_sweep). Thread-safe.
 */
#include "sandbox/sandbox_int.h"

#include "core/err.h"
#include "obs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SB_MAX_SLOTS 32

enum slot_state { SLOT_IDLE, SLOT_JOB, SLOT_DONE, SLOT_STOP };

struct sb_slot {
	char mem[TK_SB_PATH_MAX + 64], pids[TK_SB_PATH_MAX + 64], cpu[TK_SB_PATH_MAX + 64];
	pthread_t thread;
	pthread_mutex_t mu;    /* guards everything below */
	pthread_cond_t cv;
	bool ready, failed;    /* the spawner moved itself in (or could not) */
	bool busy;             /* lent to a run (guarded by pool_mu) */
	pid_t tid;             /* the spawner's thread id */
	enum slot_state state;
	const struct sb_plan *plan;
	unsigned long flags;
	pid_t pid;             /* result of the clone */
	int err;
};

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sb_slot *pool[SB_MAX_SLOTS];
static int pool_n;
static unsigned slot_seq;
static pid_t pool_pid; /* the process whose threads the pool's spawners are */

static int put(const char *dir, const char *file, const char *val)
{
	char path[TK_SB_PATH_MAX + 128];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return tk_errf_sys(TK_EIO, errno, "slot: open %s", path);
	ssize_t w = write(fd, val, strlen(val));
	int e = errno;
	close(fd);
	if (w != (ssize_t)strlen(val))
		return tk_errf_sys(TK_EIO, w < 0 ? e : EIO, "slot: write '%s' to %s", val, path);
	return 0;
}

static void *spawner(void *arg)
{
	struct sb_slot *s = arg;
	/* Move this one thread into the slot, once: "0" is the writer. */
	bool ok = put(s->mem, "tasks", "0") == 0 && put(s->pids, "tasks", "0") == 0 &&
		  (!s->cpu[0] || put(s->cpu, "tasks", "0") == 0);
	pthread_mutex_lock(&s->mu);
	s->tid = (pid_t)syscall(SYS_gettid);
	s->ready = true;
	s->failed = !ok;
	pthread_cond_broadcast(&s->cv);
	while (ok) {
		while (s->state != SLOT_JOB && s->state != SLOT_STOP)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->state == SLOT_STOP)
			break;
		const struct sb_plan *plan = s->plan;
		unsigned long flags = s->flags;
		pthread_mutex_unlock(&s->mu);
		pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
		if (pid == 0)
			sb_child_main(plan);
		int e = errno;
		pthread_mutex_lock(&s->mu);
		s->pid = pid;
		s->err = e;
		s->state = SLOT_DONE;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void slot_remove_dirs(struct sb_slot *s)
{
	const char *dirs[3] = { s->mem, s->pids, s->cpu };
	for (int i = 0; i < 3; i++) {
		if (!dirs[i][0])
			continue;
		/* A joined thread leaves its cgroups a moment after the join
		 * returns: EBUSY for that moment. */
		int tries = 0;
		while (rmdir(dirs[i]) < 0 && errno == EBUSY && tries++ < 200) {
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
		if (access(dirs[i], F_OK) == 0)
			tk_log(TK_LOG_WARNING, "sandbox", "cannot remove slot cgroup %s: %s", dirs[i],
			       strerror(errno));
	}
}

static struct sb_slot *slot_new(const struct tk_sandbox_host *h)
{
	struct sb_slot *s = calloc(1, sizeof *s);
	if (!s) {
		tk_errf(TK_ENOMEM, "slot: out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	char name[64];
	snprintf(name, sizeof name, "slot-%d-%u", (int)getpid(), slot_seq++);
	snprintf(s->mem, sizeof s->mem, "%s/%s", h->cg_memory_dir, name);
	snprintf(s->pids, sizeof s->pids, "%s/%s", h->cg_pids_dir, name);
	if (h->cg_cpu)
		snprintf(s->cpu, sizeof s->cpu, "%s/%s", h->cg_cpu_dir, name);
	if (mkdir(s->mem, 0700) < 0 || mkdir(s->pids, 0700) < 0 ||
	    (s->cpu[0] && mkdir(s->cpu, 0700) < 0)) {
		tk_errf_sys(TK_EIO, errno, "slot: mkdir %s", name);
		goto fail;
	}
	/* Block every signal in the spawner: they belong to the application's
	 * other threads. (The init resets what it needs.) */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&s->thread, NULL, spawner, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		tk_errf_sys(TK_EIO, rc, "slot: pthread_create");
		goto fail;
	}
	pthread_mutex_lock(&s->mu);
	while (!s->ready)
		pthread_cond_wait(&s->cv, &s->mu);
	bool failed = s->failed;
	pthread_mutex_unlock(&s->mu);
	if (failed) {
		pthread_join(s->thread, NULL);
		tk_errf(TK_EIO, "slot: the spawner could not join %s", name);
		goto fail;
	}
	return s;
fail:
	slot_remove_dirs(s);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
	return NULL;
}

struct sb_slot *sb_slot_acquire(const struct tk_sandbox_host *h)
{
	if (h->cgmode != TK_SB_CG_V1 || !h->cg_memory || !h->cg_pids)
		return NULL;
	pthread_mutex_lock(&pool_mu);
	if (pool_pid != getpid()) {
		/* A forked copy of the process: the spawner threads did not come
		 * along (and the slots are the parent's). Start an empty pool;
		 * the inherited entries are abandoned, not freed (their memory
		 * belongs to a copy of the parent's state). */
		pool_n = 0;
		pool_pid = getpid();
	}
	for (int i = 0; i < pool_n; i++) {
		if (!pool[i]->busy) {
			pool[i]->busy = true;
			pthread_mutex_unlock(&pool_mu);
			return pool[i];
		}
	}
	struct sb_slot *s = NULL;
	if (pool_n < SB_MAX_SLOTS) {
		s = slot_new(h);
		if (s) {
			s->busy = true;
			pool[pool_n++] = s;
		}
	}
	pthread_mutex_unlock(&pool_mu);
	return s;
}

void sb_slot_release(struct sb_slot *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&pool_mu);
	s->busy = false;
	pthread_mutex_unlock(&pool_mu);
}

static int64_t get_key(const char *dir, const char *file, const char *key)
{
	char path[TK_SB_PATH_MAX + 128], buf[4096];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	size_t kl = strlen(key);
	for (char *line = buf; line && *line;) {
		if (!strncmp(line, key, kl) && line[kl] == ' ')
			return strtoll(line + kl + 1, NULL, 10);
		char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : NULL;
	}
	return -1;
}

int sb_slot_configure(struct sb_slot *s, const struct tk_sandbox_host *h,
		      const struct tk_sandbox_limits *lim, struct sb_cgroup *cg)
{
	char num[32];
	int rc;
	memset(cg, 0, sizeof *cg);
	cg->procs_fd[0] = cg->procs_fd[1] = cg->procs_fd[2] = -1;
	cg->mode = TK_SB_CG_V1;
	cg->slot = s;
	snprintf(num, sizeof num, "%llu", (unsigned long long)(lim->mem_mb * 1024 * 1024));
	/* memsw must stay >= the memory limit at every step: lift it, set the
	 * limit, then bring it down to the limit (no swap). */
	if (h->cg_swap && (rc = put(s->mem, "memory.memsw.limit_in_bytes", "-1")))
		return rc;
	if ((rc = put(s->mem, "memory.limit_in_bytes", num)))
		return rc;
	if (h->cg_swap && (rc = put(s->mem, "memory.memsw.limit_in_bytes", num)))
		return rc;
	/* the spawner thread is a task of the slot too */
	snprintf(num, sizeof num, "%llu", (unsigned long long)(lim->pids + 1));
	if ((rc = put(s->pids, "pids.max", num)))
		return rc;
	if ((rc = put(s->mem, "memory.max_usage_in_bytes", "0")))
		return rc;
	if (s->cpu[0] && (rc = put(s->cpu, "cpuacct.usage", "0")))
		return rc;
	cg->oom_base = get_key(s->mem, "memory.oom_control", "oom_kill");
	cg->pids_base = get_key(s->pids, "pids.events", "max");
	snprintf(cg->mem, sizeof cg->mem, "%s", s->mem);
	snprintf(cg->pids, sizeof cg->pids, "%s", s->pids);
	snprintf(cg->cpu, sizeof cg->cpu, "%s", s->cpu);
	return 0;
}

pid_t sb_slot_clone(struct sb_slot *s, const struct sb_plan *plan, unsigned long flags)
{
	pthread_mutex_lock(&s->mu);
	s->plan = plan;
	s->flags = flags;
	s->state = SLOT_JOB;
	pthread_cond_broadcast(&s->cv);
	while (s->state != SLOT_DONE)
		pthread_cond_wait(&s->cv, &s->mu);
	s->state = SLOT_IDLE;
	pid_t pid = s->pid;
	int e = s->err;
	pthread_mutex_unlock(&s->mu);
	if (pid < 0)
		errno = e;
	return pid;
}

void sb_slot_sweep_tasks(const struct sb_slot *s)
{
	/* After a run only the spawner may remain. Anything else (nothing,
	 * normally: the PID namespace died with its init) is killed by thread
	 * id; our own threads are never touched. */
	char path[TK_SB_PATH_MAX + 128], buf[8192];
	snprintf(path, sizeof path, "%s/tasks", s->pids);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (char *p = buf; *p;) {
		char *end;
		long tid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (tid > 0 && tid != s->tid && tid != getpid()) {
			char st[64];
			snprintf(st, sizeof st, "/proc/self/task/%ld", tid);
			if (access(st, F_OK) != 0) /* not one of our threads */
				kill((pid_t)tid, SIGKILL);
		}
		p = end;
		while (*p == '\n')
			p++;
	}
}

void tk_sandbox_shutdown(void)
{
	pthread_mutex_lock(&pool_mu);
	for (int i = 0; i < pool_n; i++) {
		struct sb_slot *s = pool[i];
		pthread_mutex_lock(&s->mu);
		s->state = SLOT_STOP;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
		slot_remove_dirs(s);
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		free(s);
		pool[i] = NULL;
	}
	pool_n = 0;
	pthread_mutex_unlock(&pool_mu);
}
