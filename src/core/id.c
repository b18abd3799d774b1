/* id.c — UUIDv7 ids and kernel randomness (see id.h). */
#include "core/id.h"

#include "core/err.h"
#include "core/time.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int tk_random_bytes(void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return tk_errf_sys(TK_EIO, errno, "getrandom");
		}
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

/* Guards the last timestamp and counter, so ids stay ordered across threads. */
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t id_last_ms; /* guarded by id_lock */
static uint32_t id_counter; /* guarded by id_lock; 12 bits used */

int tk_id_new_bytes(uint8_t out[16])
{
	uint8_t rnd[10];
	int rc = tk_random_bytes(rnd, sizeof rnd);
	if (rc)
		return rc;
	uint64_t now_ms = (uint64_t)(tk_time_real_ns() / 1000000);

	pthread_mutex_lock(&id_lock);
	if (now_ms > id_last_ms) {
		id_last_ms = now_ms;
		/* Random start in the lower half leaves room to count up. */
		id_counter = ((uint32_t)rnd[8] << 8 | rnd[9]) & 0x7ff;
	} else if (++id_counter > 0xfff) {
		/* Counter spent (or the clock went back): borrow the next ms. */
		id_last_ms++;
		id_counter = 0;
	}
	uint64_t ms = id_last_ms;
	uint32_t ctr = id_counter;
	pthread_mutex_unlock(&id_lock);

	for (int i = 0; i < 6; i++)
		out[i] = (uint8_t)(ms >> (40 - 8 * i));
	out[6] = (uint8_t)(0x70 | (ctr >> 8));
	out[7] = (uint8_t)ctr;
	memcpy(out + 8, rnd, 8);
	out[8] = (uint8_t)(0x80 | (out[8] & 0x3f));
	return 0;
}

int tk_id_new(char out[TK_ID_LEN])
{
	uint8_t b[16];
	int rc = tk_id_new_bytes(b);
	if (rc)
		return rc;
	snprintf(out, TK_ID_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
		 b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

bool tk_id_valid(const char *s)
{
	if (!s || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return false;
		}
	}
	return true;
}
