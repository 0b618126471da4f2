/*
 * obuf.c — see obuf.h.
 */
#include "obuf.h"

#include <stdlib.h>
#include <string.h>

void ob_reserve(obuf *o, size_t n)
{
	if (n > o->max - o->len)
		abort(); /* a bug: the cap is computed to cover every write */
	if (o->len + n <= o->cap)
		return;
	size_t cap = o->cap < 4096 ? 4096 : o->cap;
	while (cap < o->len + n)
		cap = cap > o->max / 2 ? o->max : cap * 2;
	uint8_t *q = realloc(o->p, cap);
	if (q == NULL)
		abort(); /* out of memory: STYLE.md, abort loudly */
	o->p = q;
	o->cap = cap;
}

void ob_put(obuf *o, const void *p, size_t n)
{
	if (n == 0)
		return;
	ob_reserve(o, n);
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

void ob_str(obuf *o, const char *s)
{
	ob_put(o, s, strlen(s));
}

void ob_byte(obuf *o, uint8_t c)
{
	ob_put(o, &c, 1);
}

void ob_free(obuf *o)
{
	free(o->p);
	o->p = NULL;
	o->len = o->cap = 0;
}
