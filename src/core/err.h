/*
 * err.h — error codes and the per-thread error detail.
 *
 * Contract used across Tanuki (STYLE.md, "one return contract"):
 *   - actions return 0 or a negative TK_E* code;
 *   - constructors return NULL and leave a code and detail behind;
 *   - the human-readable detail says what failed and on which key, file or
 *     field ("config: server.port: must be 1..65535, got 70000").
 *
 * The detail lives in thread-local storage, like errno: tk_errf() sets it and
 * returns the code, so a failing path reads `return tk_errf(TK_EINVAL, ...)`.
 * It stays valid until the same thread sets another. Any thread may call.
 */
#ifndef TK_CORE_ERR_H
#define TK_CORE_ERR_H

enum {
	TK_OK = 0,
	TK_EINVAL = -1,       /* bad argument or input */
	TK_ENOMEM = -2,       /* allocation failed */
	TK_EIO = -3,          /* read/write/system call failed */
	TK_ENOENT = -4,       /* no such file, key, task, ... */
	TK_EEXIST = -5,       /* already exists */
	TK_EPERM = -6,        /* not allowed */
	TK_ELIMIT = -7,       /* a size, count or budget cap was hit */
	TK_EFORMAT = -8,      /* malformed or corrupt data (file, JSON, protocol) */
	TK_EUNSUPPORTED = -9, /* valid but not supported by this build */
	TK_ETIMEOUT = -10,    /* deadline passed */
	TK_ECANCELED = -11,   /* cancelled by request */
	TK_EBUSY = -12,       /* resource busy or queue full; try later */
	TK_ESTATE = -13,      /* operation not valid in the current state */
	TK_EINTERNAL = -14,   /* broken invariant (a bug) */
	TK_E_MIN_ = -15       /* one past the last code; not an error */
};

/* Static description of a code ("invalid argument"); never NULL. */
const char *tk_strerror(int code);

/* Stable short name of a code for APIs and logs ("invalid_argument"). */
const char *tk_err_name(int code);

/* Sets this thread's detail from fmt and returns code unchanged. The detail
 * is truncated (with "...") past TK_ERR_DETAIL_MAX bytes. */
int tk_errf(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like tk_errf, but appends ": <strerror(errnum)>" from the C library. */
int tk_errf_sys(int code, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes this thread's detail with "<prefix>: " (adds context while an
 * error travels up) and returns code. */
int tk_err_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* This thread's last detail, or "" when none was set; borrowed. */
const char *tk_err_detail(void);

/* The last code passed to tk_errf/tk_errf_sys on this thread (0 if none). */
int tk_err_last(void);

/* Forgets this thread's detail. */
void tk_err_clear(void);

#define TK_ERR_DETAIL_MAX 1024

#endif
