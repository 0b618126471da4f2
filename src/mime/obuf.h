/*
 * obuf.h — a growable output buffer with a cap fixed by its user (inside
 * libampmime: dsn.c and egress.c build messages with it).  The cap is
 * computed from the input before writing, so going past it is a bug
 * (abort), and so is running out of memory (STYLE.md: abort loudly).
 * Set `max` before the first write; a zeroed obuf is empty.
 */
#ifndef AMP_OBUF_H
#define AMP_OBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct obuf {
	uint8_t *p;
	size_t len, cap, max;
} obuf;

void ob_reserve(obuf *o, size_t n);
void ob_put(obuf *o, const void *p, size_t n);
void ob_str(obuf *o, const char *s);
void ob_byte(obuf *o, uint8_t c);
void ob_free(obuf *o);

#endif
