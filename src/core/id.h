/*
 * id.h — identifiers that sort by creation time (UUIDv7, RFC 9562).
 *
 * Layout: 48-bit Unix milliseconds, version 7, a 12-bit counter (method 1 of
 * RFC 9562 §6.2: restarted at a random value each millisecond and increased
 * for every id within it), the variant, and 62 random bits from getrandom(2).
 * Ids made by one process are strictly increasing, as bytes and as text,
 * even within one millisecond or when the wall clock steps back.
 * Thread-safe.
 */
#ifndef TK_CORE_ID_H
#define TK_CORE_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TK_ID_LEN 37 /* 36 characters plus NUL */

/* Writes a new id as lowercase text "xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx".
 * 0 or TK_EIO when the kernel's random source fails. */
int tk_id_new(char out[TK_ID_LEN]);

/* The same id as 16 raw bytes. */
int tk_id_new_bytes(uint8_t out[16]);

/* Whether s is a well-formed UUID in the text form above (any version). */
bool tk_id_valid(const char *s);

/* Fills buf with n bytes from getrandom(2), retrying short reads.
 * 0 or TK_EIO. */
int tk_random_bytes(void *buf, size_t n);

#endif
