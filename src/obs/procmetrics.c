/*
 * procmetrics.c — the standard process_* metrics and tanuki_build_info
 * (tk_metrics_register_process in metrics.h). A collector refreshes them
 * from /proc before each exposition. Owns no memory: the families live in
 * the registry; the only state is the process start time, cached once known.
 *
 * Every read is bounded (fixed buffers, a cap on bytes and directory
 * entries) and fails soft: the metric keeps its previous value and the
 * failure is logged at debug level, because a scrape must not fail or spam
 * the log when, say, /proc is not mounted in a sandbox.
 */
#include "obs/metrics.h"

#include "core/err.h"
#include "core/version.h"
#include "obs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define PROC_STAT_MAX 4096           /* /proc/self/stat is ~300 bytes */
#define PROC_STATFILE_MAX (8u << 20) /* bytes of /proc/stat scanned for btime */
#define PROC_FD_MAX (1u << 24)       /* directory entries counted in /proc/self/fd */

struct proc_fams {
	struct tk_metric *cpu, *rss, *vms, *open_fds, *max_fds, *start;
};

/* The process start time in seconds since the epoch (double bits), 0 until
 * it could be read; it never changes afterwards. */
static _Atomic uint64_t start_time_bits;

static int proc_families(struct tk_registry *r, struct proc_fams *f)
{
	f->cpu = tk_metric_counter(r, "process_cpu_seconds_total",
				   "Total user and system CPU time spent in seconds.", NULL, 0);
	f->rss = tk_metric_gauge(r, "process_resident_memory_bytes",
				 "Resident memory size in bytes.", NULL, 0);
	f->vms = tk_metric_gauge(r, "process_virtual_memory_bytes",
				 "Virtual memory size in bytes.", NULL, 0);
	f->open_fds = tk_metric_gauge(r, "process_open_fds",
				      "Number of open file descriptors.", NULL, 0);
	f->max_fds = tk_metric_gauge(r, "process_max_fds",
				     "Maximum number of open file descriptors (soft limit).", NULL, 0);
	f->start = tk_metric_gauge(r, "process_start_time_seconds",
				   "Start time of the process since unix epoch in seconds.", NULL, 0);
	if (!f->cpu || !f->rss || !f->vms || !f->open_fds || !f->max_fds || !f->start)
		return tk_err_last() ? tk_err_last() : TK_EINVAL;
	return 0;
}

/* Reads at most cap-1 bytes of path into buf (NUL-terminated). The length,
 * or -1 with errno set; a file that fills the buffer counts as an error
 * (EFBIG) rather than being parsed cut short. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	while (len < cap - 1) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (len == cap - 1) {
		errno = EFBIG;
		return -1;
	}
	return (ssize_t)len;
}

/* Fields of /proc/self/stat we use (see proc(5)). */
struct pstat {
	unsigned long long utime, stime; /* fields 14, 15: clock ticks */
	unsigned long long starttime;    /* field 22: ticks after boot */
};

static int read_pstat(struct pstat *ps)
{
	char buf[PROC_STAT_MAX];
	if (read_small("/proc/self/stat", buf, sizeof buf) < 0)
		return tk_errf_sys(TK_EIO, errno, "/proc/self/stat");
	/* comm (field 2) may hold spaces and parentheses: skip to the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return tk_errf(TK_EFORMAT, "/proc/self/stat: no ')' after comm");
	p++;
	unsigned long long v[23] = { 0 }; /* v[k] = field k, for k in 3..22 */
	for (int field = 3; field <= 22; field++) {
		while (*p == ' ')
			p++;
		if (!*p)
			return tk_errf(TK_EFORMAT, "/proc/self/stat: only %d fields", field - 1);
		if (field == 3) { /* state: a letter */
			while (*p && *p != ' ')
				p++;
			continue;
		}
		char *end;
		errno = 0;
		v[field] = strtoull(p, &end, 10);
		if (end == p || errno)
			return tk_errf(TK_EFORMAT, "/proc/self/stat: field %d is not a number", field);
		p = end;
	}
	ps->utime = v[14];
	ps->stime = v[15];
	ps->starttime = v[22];
	return 0;
}

/* Boot time (seconds since the epoch) from the "btime" line of /proc/stat.
 * The file can be long (one "intr" line with thousands of numbers), so it is
 * read line by line through a small buffer, up to PROC_STATFILE_MAX bytes. */
static int read_btime(unsigned long long *out)
{
	FILE *f = fopen("/proc/stat", "re");
	if (!f)
		return tk_errf_sys(TK_EIO, errno, "/proc/stat");
	char line[256];
	bool at_start = true; /* line[] begins a line of the file */
	size_t total = 0;
	int rc = 1; /* not found yet */
	while (total < PROC_STATFILE_MAX && fgets(line, sizeof line, f)) {
		size_t n = strlen(line);
		total += n;
		if (at_start && !strncmp(line, "btime ", 6)) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(line + 6, &end, 10);
			if (end == line + 6 || errno || v == 0)
				rc = tk_errf(TK_EFORMAT, "/proc/stat: bad btime line");
			else {
				*out = v;
				rc = 0;
			}
			break;
		}
		at_start = n > 0 && line[n - 1] == '\n';
	}
	fclose(f);
	if (rc == 1)
		rc = tk_errf(TK_EFORMAT, "/proc/stat: no btime line in the first %u bytes",
			     PROC_STATFILE_MAX);
	return rc;
}

/* Open descriptors, not counting the one used to list them. */
static int count_fds(unsigned long *out)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return tk_errf_sys(TK_EIO, errno, "/proc/self/fd");
	int self = dirfd(d);
	unsigned long n = 0;
	struct dirent *e;
	for (unsigned i = 0; i < PROC_FD_MAX && (e = readdir(d)); i++) {
		if (e->d_name[0] == '.')
			continue;
		if (atoi(e->d_name) == self)
			continue;
		n++;
	}
	closedir(d);
	*out = n;
	return 0;
}

static void log_soft(const char *what)
{
	tk_log(TK_LOG_DEBUG, "metrics", "process metrics: %s: %s", what, tk_err_detail());
}

static void proc_collect(struct tk_registry *r, void *arg)
{
	(void)arg;
	struct proc_fams f;
	if (proc_families(r, &f)) {
		log_soft("families");
		return;
	}
	long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	if (tck <= 0)
		tck = 100;
	if (page <= 0)
		page = 4096;

	struct pstat ps;
	if (read_pstat(&ps) == 0) {
		tk_counter_set(tk_metric_solo(f.cpu), (double)(ps.utime + ps.stime) / (double)tck);
		if (!atomic_load(&start_time_bits)) {
			unsigned long long bt = 0;
			if (read_btime(&bt) == 0) {
				double st = (double)bt + (double)ps.starttime / (double)tck;
				uint64_t bits;
				memcpy(&bits, &st, sizeof bits);
				atomic_store(&start_time_bits, bits);
			} else {
				log_soft("boot time");
			}
		}
	} else {
		log_soft("stat");
	}
	uint64_t bits = atomic_load(&start_time_bits);
	if (bits) {
		double st;
		memcpy(&st, &bits, sizeof st);
		tk_gauge_set(tk_metric_solo(f.start), st);
	}

	char buf[256];
	unsigned long long size_pages = 0, rss_pages = 0;
	if (read_small("/proc/self/statm", buf, sizeof buf) < 0) {
		tk_errf_sys(TK_EIO, errno, "/proc/self/statm");
		log_soft("statm");
	} else if (sscanf(buf, "%llu %llu", &size_pages, &rss_pages) != 2) {
		tk_errf(TK_EFORMAT, "/proc/self/statm: expected two numbers");
		log_soft("statm");
	} else {
		tk_gauge_set(tk_metric_solo(f.vms), (double)size_pages * (double)page);
		tk_gauge_set(tk_metric_solo(f.rss), (double)rss_pages * (double)page);
	}

	unsigned long nfd = 0;
	if (count_fds(&nfd) == 0)
		tk_gauge_set(tk_metric_solo(f.open_fds), (double)nfd);
	else
		log_soft("fds");

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		tk_gauge_set(tk_metric_solo(f.max_fds), (double)rl.rlim_cur);
	else
		log_soft("rlimit");
}

int tk_metrics_register_process(struct tk_registry *r)
{
	if (!r && !(r = tk_registry_default()))
		return tk_errf(TK_ENOMEM, "metrics: no default registry (out of memory)");
	struct proc_fams f;
	int rc = proc_families(r, &f);
	if (rc)
		return rc;
	struct tk_metric *bi = tk_metric_gauge(r, "tanuki_build_info",
					       "Tanuki build: version and git commit (always 1).",
					       (const char *[]){ "version", "commit" }, 2);
	if (!bi)
		return tk_err_last() ? tk_err_last() : TK_EINVAL;
	tk_gauge_set(tk_metric_series(bi, (const char *[]){ tk_version(), tk_commit() }), 1);
	return tk_metrics_add_collector(r, proc_collect, NULL);
}
