/*
 * sandbox_int.h — private pieces shared by the sandbox's files: the run's
 * cgroup (cgroup.c), the seccomp program cache (seccomp.c), the plan the
 * cloned child follows (child.c) and the safe workspace walker
 * (workspace.c). Not part of the module's interface.
 */
#ifndef TK_SANDBOX_INT_H
#define TK_SANDBOX_INT_H

#include "sandbox/sandbox.h"

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- cgroup.c ---------------------------------------------------------- */

/* One run's cgroup(s): a directory per v1 controller, or one v2 directory. */
struct sb_cgroup {
	enum tk_sandbox_cgmode mode;
	char mem[TK_SB_PATH_MAX + 64];  /* v1 dirs ("" when not used) */
	char pids[TK_SB_PATH_MAX + 64];
	char cpu[TK_SB_PATH_MAX + 64];
	char v2[TK_SB_PATH_MAX + 64];   /* v2 dir */
	int procs_fd[3];                /* cgroup.procs to join, -1 unused */
	int n_procs_fd;
	struct sb_slot *slot;           /* borrowed slot (slot.c), or NULL */
	int64_t oom_base, pids_base;    /* slot counters before the run */
};

/* Creates the run's cgroup(s) named name under the host's parents and sets
 * the limits (memory incl. swap, pids). 0 or TK_EIO with a detail. On
 * failure nothing is left behind. */
int sb_cgroup_create(struct sb_cgroup *cg, const struct tk_sandbox_host *h, const char *name,
		     const struct tk_sandbox_limits *lim);

/* CPU time used so far (ns), or -1 when not available. */
int64_t sb_cgroup_cpu_ns(const struct sb_cgroup *cg);

/* After the run: peak memory in bytes (0 if unknown), whether the OOM killer
 * fired, whether pids.max refused a fork. */
void sb_cgroup_stats(const struct sb_cgroup *cg, uint64_t *peak_bytes, bool *oom, bool *pids_max);

/* Kills whatever is still inside (should be nothing once the PID
 * namespace's init is gone) and removes the directories. Safe to call on a
 * zeroed or partly created cgroup. */
void sb_cgroup_destroy(struct sb_cgroup *cg);

/* Removes run cgroups under base left by supervisors that no longer exist
 * (named run-<pid>-<n>, pid dead), killing anything still inside. */
void sb_cgroup_sweep(const char *base);

/* ---- slot.c ------------------------------------------------------------ */

struct sb_slot;
struct sb_plan;

/* A free reusable v1 slot (created on demand), or NULL when the host is
 * not v1, the pool is full or creation failed (the caller then makes a
 * per-run cgroup). Release with sb_slot_release. */
struct sb_slot *sb_slot_acquire(const struct tk_sandbox_host *h);
void sb_slot_release(struct sb_slot *s);

/* Sets the run's limits on the slot, resets its counters and describes it
 * in cg (cg->slot set). 0 or TK_EIO (the caller falls back). */
int sb_slot_configure(struct sb_slot *s, const struct tk_sandbox_host *h,
		      const struct tk_sandbox_limits *lim, struct sb_cgroup *cg);

/* Has the slot's spawner thread clone the child with flags; the child runs
 * sb_child_main(plan). The pid, or -1 with errno. */
pid_t sb_slot_clone(struct sb_slot *s, const struct sb_plan *plan, unsigned long flags);

/* Kills any task left in the slot other than our own threads. */
void sb_slot_sweep_tasks(const struct sb_slot *s);

/* ---- seccomp.c --------------------------------------------------------- */

/* The exported BPF program for this network mode, built once per process
 * with libseccomp (under a lock) and then shared read-only. NULL with a
 * detail on failure. */
const struct sock_fprog *sb_seccomp_program(enum tk_sandbox_net net);

/* ---- child.c ----------------------------------------------------------- */

#define SB_MAX_MOUNT_SRCS (TK_SB_MAX_BINDS + 2)

/* A message from inside the sandbox to the supervisor on the report pipe.
 * Small enough for one atomic pipe write. */
enum sb_report_kind { SB_REP_SETUP_ERROR = 1, SB_REP_EXEC_ERROR, SB_REP_STATUS };
struct sb_report {
	int kind;
	int err;       /* errno for the two error kinds */
	int wstatus;   /* wait status of the program for SB_REP_STATUS */
	char what[200];
};

/* Everything the cloned child needs, prepared by the supervisor before the
 * clone: the child must not allocate (another thread may hold the malloc
 * lock at clone time), so every path and string is ready-made here.
 * Sources are reopened inside (a bind needs a source in the caller's own
 * mount namespace) and checked against the device and inode the supervisor
 * saw, so a path swapped in between is refused. */
struct sb_plan {
	/* fds the child inherits */
	int stdin_fd, stdout_fd, stderr_fd, report_fd;
	int ws_fd;                       /* supervisor's O_PATH of the workspace */
	const char *ws_path;             /* reopened inside (borrowed) */
	dev_t ws_dev;                    /* must match what the child opens */
	ino_t ws_ino;
	unsigned long ws_keep;           /* its mount's locked MS_* flags */
	int parent_pidfd;                /* the supervisor, to notice its death */
	const struct sb_cgroup *cg;
	bool userns;                     /* we are not root: map ids ourselves */
	unsigned outer_uid, outer_gid;   /* our ids, for the userns maps */
	unsigned uid, gid;               /* ids of the program */
	char uid_map[64], gid_map[64];
	bool loopback;
	const struct sock_fprog *filter;
	/* binds: staging target paths and resolved source fds (-1 = symlink) */
	struct {
		char target[TK_SB_PATH_MAX + 16];
		char link[TK_SB_PATH_MAX];  /* symlink text when the source is a link */
		bool is_link, is_dir, rw;
		char src[TK_SB_PATH_MAX];   /* host path, reopened inside */
		dev_t dev;                  /* what the supervisor saw there: */
		ino_t ino;                  /* the child checks it is the same */
		int fd;                     /* supervisor's O_PATH fd (planning) */
		unsigned long keep;         /* MS_* flags the source mount has and a
					     * user namespace may not clear */
	} mounts[TK_SB_MAX_BINDS];
	size_t n_mounts;
	char mkdirs[TK_SB_MAX_BINDS * 4][TK_SB_PATH_MAX + 16]; /* parents to create */
	size_t n_mkdirs;
	struct tk_sandbox_limits lim;
	char passwd[512], group[256];
	char tmp_opts[64], shm_opts[64];
	const char *const *argv;         /* borrowed from the spec */
	char *envp[TK_SB_MAX_ENV + 1];   /* point into the profile */
};

/* Runs in the cloned child (PID 1 of the new PID namespace); never returns.
 * Builds the root, drops privileges, installs the filter, forks the program
 * and reaps until it ends, then reports its wait status. */
__attribute__((noreturn)) void sb_child_main(const struct sb_plan *plan);

/* ---- workspace.c ------------------------------------------------------- */

/* Hands every entry of the workspace (not following links, skipping files
 * with more than one link) to uid:gid. 0 or TK_EIO. */
int sb_workspace_chown(int ws_fd, unsigned uid, unsigned gid);

/* Usage of the tree under the O_PATH/directory fd. 0 or TK_EIO; a tree
 * deeper than the walker allows reports TK_ELIMIT. */
int sb_workspace_usage_fd(int ws_fd, uint64_t *bytes, uint64_t *inodes);

#endif
