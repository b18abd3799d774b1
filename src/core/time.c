/* time.c — clocks and RFC 3339 timestamps (see time.h). */
#include "core/time.h"

#include "core/err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t tk_time_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t tk_time_real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Floor division, so times before 1970 format correctly too. */
static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

char *tk_time_rfc3339(int64_t unix_ns, char *out)
{
	int64_t ms_total = floor_div(unix_ns, 1000000);
	time_t secs = (time_t)floor_div(ms_total, 1000);
	int ms = (int)(ms_total - (int64_t)secs * 1000);
	struct tm tm;
	if (!gmtime_r(&secs, &tm)) {
		strcpy(out, "1970-01-01T00:00:00.000Z");
		return out;
	}
	/* Formatted through a roomy scratch buffer: the compiler cannot know
	 * that struct tm's fields are in range. */
	char tmp[128];
	snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ms);
	snprintf(out, TK_RFC3339_LEN, "%.31s", tmp);
	return out;
}

/* Reads exactly n digits from *p; -1 if any is not a digit. */
static int digits(const char **p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	return v;
}

int tk_time_parse_rfc3339(const char *s, int64_t *unix_ns)
{
	const char *p = s;
	int Y = digits(&p, 4);
	if (Y < 0 || *p++ != '-')
		goto bad;
	int M = digits(&p, 2);
	if (M < 1 || M > 12 || *p++ != '-')
		goto bad;
	int D = digits(&p, 2);
	if (D < 1 || D > 31 || (*p != 'T' && *p != 't' && *p != ' '))
		goto bad;
	p++;
	int h = digits(&p, 2);
	if (h < 0 || h > 23 || *p++ != ':')
		goto bad;
	int mi = digits(&p, 2);
	if (mi < 0 || mi > 59 || *p++ != ':')
		goto bad;
	int sec = digits(&p, 2);
	if (sec < 0 || sec > 60)
		goto bad;
	int64_t frac_ns = 0;
	if (*p == '.') {
		p++;
		int nd = 0;
		int64_t scale = 100000000;
		while (*p >= '0' && *p <= '9') {
			if (nd < 9)
				frac_ns += (*p - '0') * scale;
			scale /= 10;
			nd++;
			p++;
		}
		if (nd == 0)
			goto bad;
	}
	int off_min = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;
		p++;
		int oh = digits(&p, 2);
		if (oh < 0 || *p++ != ':')
			goto bad;
		int om = digits(&p, 2);
		if (om < 0)
			goto bad;
		off_min = sign * (oh * 60 + om);
	} else {
		goto bad;
	}
	if (*p)
		goto bad;
	struct tm tm = { .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D,
			 .tm_hour = h, .tm_min = mi, .tm_sec = sec };
	time_t t = timegm(&tm);
	int64_t secs = (int64_t)t - (int64_t)off_min * 60, ns;
	/* int64 nanoseconds span 1677..2262; outside that is an error, not a wrap. */
	if (__builtin_mul_overflow(secs, (int64_t)1000000000, &ns) ||
	    __builtin_add_overflow(ns, frac_ns, &ns))
		return tk_errf(TK_EFORMAT, "timestamp out of range: '%.64s'", s);
	*unix_ns = ns;
	return 0;
bad:
	return tk_errf(TK_EFORMAT, "not an RFC 3339 timestamp: '%.64s'", s);
}
