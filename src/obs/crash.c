/*
 * crash.c — fatal-signal handler that writes one JSON line (see crash.h).
 *
 * Owns: the handler installation, the module table snapshot, the static line
 * and frame buffers used inside the handler, and the alternate signal stacks
 * it creates.
 *
 * Everything the handler touches is prepared before it can run: the module
 * table is filled at install (under install_lock, before the handlers are
 * set), the line buffer and frame array are static, and the formatting
 * helpers below use no library call at all. Only one thread ever formats
 * into the static buffers: the first to claim crashing_tid.
 */
#include "obs/crash.h"

#include "core/err.h"
#include "core/time.h"
#include "obs/log.h"
#include "obs/log_priv.h"

#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define FRAMES_MAX 64
#define MODULES_MAX 128
#define MODULE_NAME_MAX 64
#define LINE_MAX_BYTES 24576
#define CTX_MAX_BYTES 4096 /* of the line, for the thread's context fields */
#define ALTSTACK_BYTES (128 * 1024)

struct crash_module {
	uintptr_t lo, hi; /* [lo, hi): the module's loaded segments */
	uintptr_t base;   /* load bias: offsets are relative to it */
	char name[MODULE_NAME_MAX];
};

static const int fatal_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static bool installed; /* guarded by install_lock */

/* Written at install (before any handler is set), read-only afterwards. */
static struct crash_module modules[MODULES_MAX];
static size_t n_modules;
static char exe_name[MODULE_NAME_MAX];

/* Used only by the thread that won crashing_tid. */
static char crash_line[LINE_MAX_BYTES];
static void *crash_frames[FRAMES_MAX];
static atomic_int crashing_tid;

/* The alternate stack this thread got from tk_crash_thread_init(). */
static _Thread_local void *tl_altstack;
static _Thread_local size_t tl_altstack_len;

/* ---------------------------------------------------------------------- */
/* Async-signal-safe formatting into a fixed buffer                       */

struct cline {
	char *p;
	size_t len, cap; /* cap keeps room for the closing "]}\n" */
};

static void cput(struct cline *l, const char *s, size_t n)
{
	if (n > l->cap - l->len)
		n = l->cap - l->len;
	for (size_t i = 0; i < n; i++)
		l->p[l->len + i] = s[i];
	l->len += n;
}

static size_t cstrlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

static void cputs(struct cline *l, const char *s)
{
	cput(l, s, cstrlen(s));
}

static void cput_dec(struct cline *l, int64_t v)
{
	char b[LOG_INT_MAX];
	size_t n = log_fmt_int(b, v);
	cput(l, b + LOG_INT_MAX - n, n);
}

static void cput_hex(struct cline *l, uintptr_t v)
{
	static const char hex[] = "0123456789abcdef";
	char b[2 + 2 * sizeof v];
	size_t n = 0;
	do {
		b[sizeof b - 1 - n++] = hex[v & 15];
		v >>= 4;
	} while (v);
	b[sizeof b - 1 - n++] = 'x';
	b[sizeof b - 1 - n++] = '0';
	cput(l, b + sizeof b - n, n);
}

/* Module names come from the file system: keep printable ASCII except the
 * two characters JSON must escape, replace anything else by '?'. */
static void cput_safe_name(struct cline *l, const char *s)
{
	for (; *s; s++) {
		char c = *s;
		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
			c = '?';
		cput(l, &c, 1);
	}
}

static void put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

/* Days since 1970-01-01 to a proleptic Gregorian date, by counting 400-year
 * eras of 146097 days from 0000-03-01 (a March-based year puts the leap day
 * last, so month lengths follow a fixed 153-days-per-5-months pattern). */
static void civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
	days += 719468; /* 0000-03-01 to 1970-01-01 */
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	unsigned doe = (unsigned)(days - era * 146097);                     /* [0, 146096] */
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);             /* [0, 365] */
	unsigned mp = (5 * doy + 2) / 153;                                  /* March = 0 */
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

size_t tk_crash_format_time(int64_t unix_ns, char *out)
{
	int64_t ms = unix_ns / 1000000;
	if (unix_ns % 1000000 < 0)
		ms--; /* floor, for times before 1970 */
	int64_t secs = ms / 1000, msr = ms % 1000;
	if (msr < 0) {
		msr += 1000;
		secs--;
	}
	int64_t days = secs / 86400, sod = secs % 86400;
	if (sod < 0) {
		sod += 86400;
		days--;
	}
	int64_t y;
	unsigned mo, d;
	civil_from_days(days, &y, &mo, &d);
	if (y < 0)
		y = 0; /* RFC 3339 has no year outside 0000..9999 */
	if (y > 9999)
		y = 9999;
	unsigned yy = (unsigned)y;
	char *p = out;
	put2(p, yy / 100);
	put2(p + 2, yy % 100);
	p[4] = '-';
	put2(p + 5, mo);
	p[7] = '-';
	put2(p + 8, d);
	p[10] = 'T';
	put2(p + 11, (unsigned)(sod / 3600));
	p[13] = ':';
	put2(p + 14, (unsigned)(sod / 60 % 60));
	p[16] = ':';
	put2(p + 17, (unsigned)(sod % 60));
	p[19] = '.';
	p[20] = (char)('0' + msr / 100);
	put2(p + 21, (unsigned)(msr % 100));
	p[23] = 'Z';
	p[24] = '\0';
	return 24;
}

static const char *signal_name(int signo)
{
	switch (signo) {
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGFPE: return "SIGFPE";
	case SIGILL: return "SIGILL";
	case SIGABRT: return "SIGABRT";
	default: return "SIGUNKNOWN";
	}
}

static uintptr_t context_pc(const void *uctx)
{
	const ucontext_t *uc = uctx;
	if (!uc)
		return 0;
#if defined(__x86_64__)
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	return (uintptr_t)uc->uc_mcontext.pc;
#else
	return 0;
#endif
}

static void cput_frame(struct cline *l, uintptr_t addr)
{
	cputs(l, "\"");
	cput_hex(l, addr);
	for (size_t i = 0; i < n_modules; i++) {
		if (addr >= modules[i].lo && addr < modules[i].hi) {
			cputs(l, " ");
			cput_safe_name(l, modules[i].name);
			cputs(l, "+");
			cput_hex(l, addr - modules[i].base);
			break;
		}
	}
	cputs(l, "\"");
}

static void write_all_raw(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* noinline: the frames skipped below are this function and the handler. */
__attribute__((noinline)) static void write_report(int signo, const siginfo_t *si, const void *uctx, int tid)
{
	struct cline l = { .p = crash_line, .len = 0, .cap = sizeof crash_line - 4 };
	struct timespec now;
	char ts[TK_RFC3339_LEN];
	clock_gettime(CLOCK_REALTIME, &now);
	tk_crash_format_time((int64_t)now.tv_sec * 1000000000 + now.tv_nsec, ts);

	cputs(&l, "{\"ts\":\"");
	cputs(&l, ts);
	cputs(&l, "\",\"level\":\"critical\",\"severity\":\"CRITICAL\",\"msg\":\"fatal signal\","
		  "\"component\":\"crash\",\"signal\":\"");
	cputs(&l, signal_name(signo));
	cputs(&l, "\",\"signo\":");
	cput_dec(&l, signo);
	if (si) {
		cputs(&l, ",\"si_code\":");
		cput_dec(&l, si->si_code);
		/* si_code > 0: raised by the kernel for a fault, so si_addr
		 * means something; <= 0: sent by kill/raise/abort. */
		if (si->si_code > 0 && signo != SIGABRT) {
			cputs(&l, ",\"fault_addr\":\"");
			cput_hex(&l, (uintptr_t)si->si_addr);
			cputs(&l, "\"");
		}
	}
	uintptr_t pc = context_pc(uctx);
	if (pc) {
		cputs(&l, ",\"pc\":\"");
		cput_hex(&l, pc);
		cputs(&l, "\"");
	}
	cputs(&l, ",\"pid\":");
	cput_dec(&l, getpid());
	cputs(&l, ",\"tid\":");
	cput_dec(&l, tid);
	/* The crashing thread's log context (task_id, request_id, ...). */
	size_t room = l.cap - l.len;
	l.len += log_ctx_format_for_crash(l.p + l.len, room < CTX_MAX_BYTES ? room : CTX_MAX_BYTES);
	cputs(&l, ",\"backtrace\":[");
	int n = backtrace(crash_frames, FRAMES_MAX);
	/* Frames 0 and 1 are write_report and crash_handler; frame 2 is the
	 * kernel's signal trampoline, then comes the interrupted code. */
	int first = n > 2 ? 2 : 0;
	for (int i = first; i < n; i++) {
		size_t mark = l.len;
		if (i > first)
			cputs(&l, ",");
		cput_frame(&l, (uintptr_t)crash_frames[i]);
		if (l.len == l.cap) {
			l.len = mark; /* never leave a frame string open */
			break;
		}
	}
	/* The closing always fits: cap was kept 4 bytes back. */
	l.cap = sizeof crash_line;
	cputs(&l, "]}\n");
	write_all_raw(tk_log_fd(), l.p, l.len);
}

static void reset_and_reraise(int signo)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(signo, &sa, NULL);
	/* signo is blocked while its handler runs: the raise stays pending and
	 * is delivered, with the default action, as the handler returns (for a
	 * real fault the faulting instruction would also fault again). */
	raise(signo);
}

static void crash_handler(int signo, siginfo_t *si, void *uctx)
{
	int saved_errno = errno;
	int tid = (int)syscall(SYS_gettid);
	int expected = 0;
	if (!atomic_compare_exchange_strong(&crashing_tid, &expected, tid)) {
		if (expected != tid) {
			/* Another thread is writing the report and will end
			 * the process; wait for that. */
			for (;;)
				pause();
		}
		/* A fault inside our own handler: die of it now. */
		reset_and_reraise(signo);
		errno = saved_errno;
		return;
	}
	write_report(signo, si, uctx, tid);
	reset_and_reraise(signo);
	errno = saved_errno;
}

/* ---------------------------------------------------------------------- */
/* Installation                                                           */

static void copy_basename(char *dst, const char *path)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	size_t n = strnlen(b, MODULE_NAME_MAX - 1);
	memcpy(dst, b, n);
	dst[n] = '\0';
}

static int add_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	if (n_modules >= MODULES_MAX)
		return 1;
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	for (size_t i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t s = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
		if (s < lo)
			lo = s;
		if (s + ph->p_memsz > hi)
			hi = s + ph->p_memsz;
	}
	if (lo >= hi)
		return 0;
	struct crash_module *m = &modules[n_modules++];
	m->lo = lo;
	m->hi = hi;
	m->base = (uintptr_t)info->dlpi_addr;
	/* The main program comes with an empty name. */
	if (info->dlpi_name && info->dlpi_name[0])
		copy_basename(m->name, info->dlpi_name);
	else
		memcpy(m->name, exe_name, sizeof m->name);
	return 0;
}

static void snapshot_modules(void)
{
	char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
	if (n > 0) {
		path[n] = '\0';
		copy_basename(exe_name, path);
	} else {
		memcpy(exe_name, "exe", 4);
	}
	n_modules = 0;
	dl_iterate_phdr(add_module, NULL);
}

int tk_crash_thread_init(void)
{
	stack_t cur;
	if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
		return 0; /* this thread has one already */
	long page = sysconf(_SC_PAGESIZE);
	size_t pg = page > 0 ? (size_t)page : 4096;
	size_t len = ALTSTACK_BYTES;
	if ((size_t)SIGSTKSZ > len)
		len = ((size_t)SIGSTKSZ + pg - 1) / pg * pg;
	/* One guard page below the stack: an overflow of the handler itself
	 * faults instead of writing over other memory. */
	char *mem = mmap(NULL, len + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return tk_errf_sys(TK_ENOMEM, errno, "crash: cannot map a %zu-byte signal stack", len);
	if (mprotect(mem, pg, PROT_NONE) < 0) {
		int e = errno;
		munmap(mem, len + pg);
		return tk_errf_sys(TK_EIO, e, "crash: cannot protect the signal stack guard page");
	}
	stack_t ss = { .ss_sp = mem + pg, .ss_size = len, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL) < 0) {
		int e = errno;
		munmap(mem, len + pg);
		return tk_errf_sys(TK_EIO, e, "crash: sigaltstack failed");
	}
	tl_altstack = mem;
	tl_altstack_len = len + pg;
	return 0;
}

void tk_crash_thread_fini(void)
{
	if (!tl_altstack)
		return;
	stack_t ss = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
	sigaltstack(&ss, NULL);
	munmap(tl_altstack, tl_altstack_len);
	tl_altstack = NULL;
	tl_altstack_len = 0;
}

int tk_crash_install(void)
{
	int rc = 0;
	pthread_mutex_lock(&install_lock);
	if (!installed) {
		/* Load the unwinder now: its first use dlopens libgcc_s and
		 * allocates, neither of which a signal handler may do. */
		void *warm[4];
		(void)backtrace(warm, 4);
		snapshot_modules();
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = crash_handler;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
			if (sigaction(fatal_signals[i], &sa, NULL) < 0) {
				rc = tk_errf_sys(TK_EIO, errno, "crash: sigaction(%s) failed",
						 signal_name(fatal_signals[i]));
				goto out;
			}
		}
		installed = true;
	}
	rc = tk_crash_thread_init();
out:
	pthread_mutex_unlock(&install_lock);
	return rc;
}
