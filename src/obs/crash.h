/*
 * crash.h — last words on a fatal signal.
 *
 * tk_crash_install() makes SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT write
 * ONE critical JSON line to the log's descriptor (tk_log_fd(): the log file,
 * or stderr) before the process dies:
 *
 *   {"ts":"2026-11-28T01:02:03.456Z","level":"critical","severity":"CRITICAL",
 *    "msg":"fatal signal","component":"crash","signal":"SIGSEGV","signo":11,
 *    "si_code":1,"fault_addr":"0x0","pc":"0x55d0c8a1b2c3","pid":4242,
 *    "tid":4242,"task_id":"0193...","backtrace":["0x55d0c8a1b2c3 tanuki+0x1b2c3", ...]}
 *
 * then restores the default action and re-raises the signal, so the exit
 * status stays truthful (WIFSIGNALED, same signal, core dump if enabled).
 *
 * - fault_addr (si_addr) is present when the kernel raised the signal (si_code
 *   > 0): the bad address for SIGSEGV/SIGBUS, the faulting instruction for
 *   SIGFPE/SIGILL. pc (x86-64 and aarch64) is the interrupted instruction.
 * - The crashing thread's log context fields (tk_log_ctx_set: task_id,
 *   request_id, agent, ...) come after tid, escaped and redacted as in any
 *   line (up to 4 KiB of them).
 * - backtrace frames are "ADDRESS MODULE+OFFSET" with the module table taken
 *   at install time; `addr2line -f -e MODULE OFFSET` turns one into a
 *   function and line (static functions included, given debug info).
 *   Addresses in modules loaded after install appear bare.
 *   No symbol names are looked up in the handler: dladdr(),
 *   backtrace_symbols() and backtrace_symbols_fd() take the dynamic loader's
 *   lock or allocate, which may deadlock or crash in a handler, and
 *   backtrace_symbols_fd() writes its own un-JSON lines. See docs/logging.md.
 * - The handler only uses async-signal-safe calls: clock_gettime, write,
 *   sigaction, raise, getpid, gettid (syscall), memcpy/memcmp/strnlen and
 *   backtrace(), which is
 *   called once at install so that libgcc's unwinder is already loaded and
 *   the call in the handler does not allocate.
 * - Stack overflow is reported too: the handler runs on an alternate signal
 *   stack. sigaltstack is per thread: tk_crash_install() gives one to the
 *   calling thread; other long-lived threads call tk_crash_thread_init() when
 *   they start and tk_crash_thread_fini() before they end. A thread without
 *   one still dies truthfully on overflow, only without the line.
 * - If two threads crash at once, the first writes the line and the second
 *   waits for the process to die. A fault inside the handler itself kills the
 *   process with that signal at once.
 *
 * Known weakness: backtrace() walks the stack with libgcc's unwinder, which
 * looks up unwind tables through dl_iterate_phdr and so the loader's lock;
 * a crash while that lock is held (inside dlopen) could hang instead of
 * dying. Install after the libraries are loaded.
 *
 * Threads: tk_crash_install() may be called from any thread, more than once
 * (later calls only add the calling thread's alternate stack).
 */
#ifndef TK_OBS_CRASH_H
#define TK_OBS_CRASH_H

#include <stddef.h>
#include <stdint.h>

/* Installs the handlers (first call) and gives the calling thread an
 * alternate signal stack. 0, TK_ENOMEM (no memory for the stack) or TK_EIO
 * (sigaction/sigaltstack failed). */
int tk_crash_install(void);

/* Gives the calling thread its own alternate signal stack (a no-op when it
 * has one, e.g. from a sanitizer). 0, TK_ENOMEM or TK_EIO. */
int tk_crash_thread_init(void);

/* Removes and frees the stack tk_crash_thread_init() made for the calling
 * thread; a no-op otherwise. */
void tk_crash_thread_fini(void);

/* Async-signal-safe RFC 3339 UTC timestamp with milliseconds, as
 * tk_time_rfc3339() writes it (which calls gmtime_r and snprintf, not safe
 * in a handler). out holds at least TK_RFC3339_LEN (32) bytes; returns the
 * length written (24), NUL not counted. Exposed for tests. */
size_t tk_crash_format_time(int64_t unix_ns, char *out);

#endif
