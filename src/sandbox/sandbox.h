/*
 * sandbox.h — running untrusted build and test commands (the module's manual).
 *
 * One call, tk_sandbox_run(), runs one command from a profile inside a fresh
 * set of namespaces (mount, PID, network, IPC, UTS, cgroup, and user when not
 * root), on a read-only root built from the profile's binds, with the task's
 * workspace read-write at /workspace, a size-capped tmpfs /tmp and /dev/shm,
 * a minimal /dev and a fresh /proc. The program runs as an unprivileged uid
 * with no capabilities, no_new_privs, a seccomp filter, rlimits, and its own
 * cgroup (memory, pids, CPU accounting). The call blocks until the command
 * ends or a limit trips; then every process it started is dead, its IPC
 * objects are gone (the IPC namespace died with it) and its cgroup is
 * removed. The workspace stays. See docs/sandbox.md for the theory of
 * operation and the threat model.
 *
 * Ownership: every pointer in a spec is borrowed for the duration of the
 * call. A result owns its captured output buffers; release them with
 * tk_sandbox_result_free().
 *
 * Threads: tk_sandbox_run may be called from several threads at once; each
 * run has its own cgroup (or cgroup v1 slot), pipes and namespaces. The
 * process-wide seccomp program cache is built once under a lock. With
 * reuse_cgroups the module keeps up to 32 spawner threads (one per slot,
 * all signals blocked) until tk_sandbox_shutdown. Profiles are plain data:
 * a profile set must not change while a run borrows one of its profiles.
 *
 * The calling process must not reap children it did not start with
 * waitpid(-1, ..., __WALL): the sandbox's init is a child without an exit
 * signal, collected only by tk_sandbox_run itself. A plain waitpid(-1) or
 * an ignored SIGCHLD is fine.
 *
 * Errors: tk_sandbox_run returns 0 whenever it produced a result record,
 * including status XX (sandbox failure; the record's message says why). It
 * returns a negative TK_E* code only for bad arguments (TK_EINVAL) or when
 * the host lacks the minimum isolation and degraded runs are not allowed
 * (TK_EUNSUPPORTED); the result then still holds status XX and the reason.
 */
#ifndef TK_SANDBOX_SANDBOX_H
#define TK_SANDBOX_SANDBOX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"

/* ---- limits, profiles ------------------------------------------------- */

/* Resource limits. In a spec, a 0 field means "the profile's value"; in a
 * profile every field is set (tk_sandbox_profile_check enforces it). */
struct tk_sandbox_limits {
	uint64_t cpu_ms;      /* CPU time of all processes together */
	uint64_t wall_ms;     /* monotonic wall-clock time */
	uint64_t mem_mb;      /* memory of all processes (cgroup), no swap */
	uint64_t pids;        /* processes + threads alive at once */
	uint64_t fsize_mb;    /* largest file the program may write */
	uint64_t output_kb;   /* stdout + stderr bytes; more stops the run (OL) */
	uint64_t nofile;      /* open files per process */
	uint64_t tmp_mb;      /* size of the /tmp and /dev/shm tmpfs, each */
	uint64_t disk_mb;     /* workspace quota (bytes allocated), polled */
	uint64_t disk_inodes; /* workspace quota (files and directories), polled */
};

enum tk_sandbox_net {
	TK_SB_NET_DEFAULT = 0, /* in a spec: use the profile's */
	TK_SB_NET_NONE,        /* empty network namespace; only AF_UNIX sockets */
	TK_SB_NET_LOOPBACK,    /* namespace with lo up; AF_INET/AF_INET6 allowed */
};

#define TK_SB_NAME_MAX 32
#define TK_SB_PATH_MAX 256
#define TK_SB_ENV_MAX 512 /* bytes of one "KEY=value" */
#define TK_SB_MAX_BINDS 24
#define TK_SB_MAX_ENV 24
#define TK_SB_MAX_PROFILES 16

/* A host path made visible inside the sandbox. When the source is a symbolic
 * link (e.g. /lib -> usr/lib on merged-/usr systems) the same link is
 * created inside instead of a mount. Binds are read-only unless rw. */
struct tk_sandbox_bind {
	char src[TK_SB_PATH_MAX]; /* absolute host path */
	char dst[TK_SB_PATH_MAX]; /* absolute path inside; "" = same as src */
	bool rw;                  /* writable (still nosuid, nodev) */
	bool optional;            /* skip silently when src does not exist */
};

struct tk_sandbox_profile {
	char name[TK_SB_NAME_MAX];
	struct tk_sandbox_bind binds[TK_SB_MAX_BINDS];
	size_t n_binds;
	char env[TK_SB_MAX_ENV][TK_SB_ENV_MAX]; /* the whole environment */
	size_t n_env;
	struct tk_sandbox_limits limits;
	enum tk_sandbox_net net; /* NONE or LOOPBACK */
};

struct tk_sandbox_profiles {
	struct tk_sandbox_profile items[TK_SB_MAX_PROFILES];
	size_t n;
};

/* Fills set with the built-in profiles: "c", "python", "shell". */
void tk_sandbox_profiles_defaults(struct tk_sandbox_profiles *set);

/* Merges profiles from JSON text: an object of name -> profile, i.e. the
 * value of the "sandbox.profiles" config key. A profile is
 *   { "extends": "c",                    (optional: start from that one)
 *     "binds": ["/usr", {"src": "/opt/x", "dst": "/opt/x", "rw": false,
 *                        "optional": true}],
 *     "env": {"PATH": "/usr/bin:/bin"},   (replaces the inherited env)
 *     "limits": {"cpu_ms": 10000, ...},   (fields of tk_sandbox_limits)
 *     "net": "none" | "loopback" }
 * A name already in set is replaced; a new name is added. Every field is
 * checked; on any error set is left unchanged and the detail names the
 * profile and field. 0, TK_EFORMAT, TK_EINVAL or TK_ELIMIT. */
int tk_sandbox_profiles_load_json(struct tk_sandbox_profiles *set, const char *json_text);

/* Same, from a parsed value (borrowed). */
int tk_sandbox_profiles_load(struct tk_sandbox_profiles *set, const json_t *obj);

/* The profile called name, or NULL. Borrowed from set. */
const struct tk_sandbox_profile *tk_sandbox_profile_find(const struct tk_sandbox_profiles *set,
							 const char *name);

/* Checks limits against their ranges (cpu_ms and wall_ms up to a day,
 * mem_mb up to 1 TiB, ...). zero_ok: 0 means "not set" (spec overrides).
 * 0 or TK_EINVAL naming the field. */
int tk_sandbox_limits_check(const struct tk_sandbox_limits *l, bool zero_ok);

/* Checks a profile for use: name, absolute normalized paths without "..",
 * env entries "KEY=value", every limit set and in range. 0 or TK_EINVAL. */
int tk_sandbox_profile_check(const struct tk_sandbox_profile *p);

/* The profile as a JSON object in the loader's format (new reference,
 * NULL on TK_ENOMEM). */
json_t *tk_sandbox_profile_to_json(const struct tk_sandbox_profile *p);

/* ---- host capabilities ------------------------------------------------ */

enum tk_sandbox_cgmode { TK_SB_CG_NONE = 0, TK_SB_CG_V1, TK_SB_CG_V2 };

/* What the host offers, found by tk_sandbox_probe(). */
struct tk_sandbox_host {
	bool root;               /* effective uid 0 */
	bool userns;             /* unprivileged user namespaces allowed */
	bool seccomp;            /* seccomp filter mode available */
	bool namespaces;         /* mount/pid/net/ipc/uts/cgroup usable */
	bool pidfd;              /* pidfd_open works */
	enum tk_sandbox_cgmode cgmode;
	bool cg_memory;          /* memory limit through the cgroup */
	bool cg_swap;            /* swap limit (v1 memsw / v2 memory.swap.max) */
	bool cg_pids;            /* pids.max */
	bool cg_cpu;             /* CPU usage accounting (v1 cpuacct / v2 cpu.stat) */
	bool cg_kill;            /* v2 cgroup.kill */
	/* Parent directories the run cgroups are made under ("" if unusable). */
	char cg_memory_dir[TK_SB_PATH_MAX];
	char cg_pids_dir[TK_SB_PATH_MAX];
	char cg_cpu_dir[TK_SB_PATH_MAX];
	char cg_v2_dir[TK_SB_PATH_MAX];
	char why_not[256];       /* first missing minimum, "" when secure */
	char cg_note[320];       /* why cgroup v2 was not usable, if it was there */
};

/* Detects what the host offers. Cheap (a few stat/read calls); the result
 * is cached per process after the first call unless refresh. Thread-safe. */
void tk_sandbox_probe(struct tk_sandbox_host *out, bool refresh);

/* Whether h offers the minimum for untrusted code: all namespaces, seccomp,
 * a cgroup memory limit and a cgroup pids limit. */
bool tk_sandbox_host_secure(const struct tk_sandbox_host *h);

/* The doctor report: what is available and exactly how each limit is
 * enforced on this host. human text (appended to out) or JSON (new ref). */
int tk_sandbox_doctor_text(const struct tk_sandbox_host *h, struct tk_buf *out);
json_t *tk_sandbox_doctor_json(const struct tk_sandbox_host *h);

/* ---- running ---------------------------------------------------------- */

/* Process-wide settings (config "sandbox.*"). */
struct tk_sandbox_options {
	unsigned uid;        /* uid the program runs as when we are root (61000) */
	unsigned gid;        /* its gid (61000) */
	bool allow_degraded; /* run even when the host lacks the minimum (false) */
	bool chown_workspace; /* as root: hand workspace entries to uid (true) */
	bool reuse_cgroups;  /* cgroup v1: run in reusable slots whose spawner
			      * thread already sits in the cgroups, so no task is
			      * moved per run (true; see slot.c). A one-run
			      * process gains nothing from it. */
};

/* Stops the slot spawner threads and removes their cgroups. Call only when
 * no run is in progress (e.g. at shutdown). */
void tk_sandbox_shutdown(void);

/* The defaults above. */
void tk_sandbox_options_defaults(struct tk_sandbox_options *o);

struct tk_sandbox_spec {
	const struct tk_sandbox_profile *profile; /* required */
	const char *workspace;       /* required: existing host directory */
	const char *const *argv;     /* required: NULL-terminated, argv[0] != NULL;
				      * found through the profile's PATH when it
				      * has no '/' */
	const char *stdin_path;      /* host file for stdin; NULL = /dev/null */
	struct tk_sandbox_limits limits; /* overrides; 0 fields = profile's */
	enum tk_sandbox_net net;     /* DEFAULT = profile's */
	const struct tk_sandbox_options *opts; /* NULL = defaults */
	size_t capture_max_bytes;    /* per stream kept in the result; 0 = 64 KiB */
	/* Optional: called on the calling thread as output arrives (stream 1 =
	 * stdout, 2 = stderr), with at most output_kb bytes in all; data is
	 * borrowed for the call. For streaming to a terminal or over SSE. */
	void (*on_output)(void *arg, int stream, const char *data, size_t n);
	void *on_output_arg;
	/* Optional: set to true from any thread to stop the run (noticed within
	 * 50 ms). The result is then XX with the message "cancelled". */
	const atomic_bool *cancel;
};

enum tk_sandbox_status {
	TK_SB_OK = 0, /* exited 0 */
	TK_SB_RE,     /* exited non-zero (including 127: command not found) */
	TK_SB_SG,     /* killed by a signal (not one of ours) */
	TK_SB_TO,     /* CPU or wall limit */
	TK_SB_ML,     /* memory limit */
	TK_SB_OL,     /* output, file-size or workspace-quota limit */
	TK_SB_XX,     /* the sandbox itself failed */
};

/* Which limit stopped the run (result.limit) or was hit along the way
 * (result.limits_hit, a bit mask of 1u << enum value). */
enum tk_sandbox_limit {
	TK_SB_LIM_NONE = 0,
	TK_SB_LIM_CPU,
	TK_SB_LIM_WALL,
	TK_SB_LIM_MEMORY,
	TK_SB_LIM_PIDS,
	TK_SB_LIM_OUTPUT,
	TK_SB_LIM_FSIZE,
	TK_SB_LIM_DISK,
	TK_SB_LIM_COUNT_
};

struct tk_sandbox_result {
	enum tk_sandbox_status status;
	enum tk_sandbox_limit limit; /* what ended the run, NONE if nothing */
	unsigned limits_hit;         /* bit mask, includes limit */
	int exit_code;               /* valid for OK and RE, else -1 */
	int signal;                  /* terminating signal, else 0 */
	uint64_t cpu_ms;             /* user + system, all processes */
	uint64_t wall_ms;
	uint64_t max_rss_kb;         /* largest single process */
	uint64_t peak_memory_kb;     /* cgroup peak (all processes); 0 if unknown */
	uint64_t stdout_bytes;       /* bytes the program wrote (read by us) */
	uint64_t stderr_bytes;
	bool stdout_truncated;       /* captured copy shorter than stdout_bytes */
	bool stderr_truncated;
	struct tk_buf out;           /* captured stdout (owned) */
	struct tk_buf err;           /* captured stderr (owned) */
	char profile[TK_SB_NAME_MAX];
	char message[512];           /* why, for XX and limits; "" otherwise */
};

/* Initializes r to an empty result (needed before tk_sandbox_run only if
 * the caller may free it without running). */
void tk_sandbox_result_init(struct tk_sandbox_result *r);

/* Frees the captured output. NULL ok. */
void tk_sandbox_result_free(struct tk_sandbox_result *r);

/* Runs spec and fills r (initialized by the call). Blocks. See the file
 * comment for the return contract. */
int tk_sandbox_run(const struct tk_sandbox_spec *spec, struct tk_sandbox_result *r);

/* "OK", "RE", ... and "none", "cpu", "wall", ... */
const char *tk_sandbox_status_name(enum tk_sandbox_status s);
const char *tk_sandbox_limit_name(enum tk_sandbox_limit l);

/* The result record as JSON (new reference, NULL on TK_ENOMEM). With
 * with_output the captured stdout/stderr are included (already capped). */
json_t *tk_sandbox_result_to_json(const struct tk_sandbox_result *r, bool with_output);

/* ---- the workspace, read safely --------------------------------------- */

/* Reads workspace/relpath into out (capped by out's max) without following
 * any symbolic link, magic link or mount crossing, and refusing anything but
 * a regular file with a single link (a hardlink could point at a host
 * file). 0, TK_EPERM (link, hardlink, not regular), TK_ENOENT, TK_ELIMIT,
 * TK_EIO. */
int tk_sandbox_workspace_read(const char *workspace, const char *relpath, struct tk_buf *out);

/* Removes the workspace tree (and the directory itself) without following
 * symbolic links: links are removed, never their targets. 0 or TK_EIO. */
int tk_sandbox_workspace_remove(const char *workspace);

/* Sums the workspace's allocated bytes and entries without following links.
 * 0 or TK_EIO. */
int tk_sandbox_workspace_usage(const char *workspace, uint64_t *bytes, uint64_t *inodes);

#endif
