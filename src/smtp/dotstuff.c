/*
 * dotstuff.c — the DATA body writer (dotstuff.h).
 *
 * A byte at a time for line ends and leading dots; runs of ordinary text
 * are copied in one piece, as far as the output has room.  Each step
 * writes at most two octets and checks for them first, so the output
 * bound is never passed and a step is never half done.
 */
#include "dotstuff.h"

#include <string.h>

void dotstuff_init(dotstuff *st)
{
	memset(st, 0, sizeof(*st));
	st->bol = true;
}

void dotstuff_run(dotstuff *st, const uint8_t *in, size_t in_len,
		  size_t *in_used_r, uint8_t *out, size_t out_cap,
		  size_t *out_len_r)
{
	size_t i = 0, o = 0;
	while (i < in_len && !st->finishing) {
		uint8_t c = in[i];
		if (st->cr) {
			/* the withheld CR: with this LF, or bare, a CRLF */
			if (out_cap - o < 2)
				break;
			out[o++] = '\r';
			out[o++] = '\n';
			st->cr = false;
			st->bol = true;
			if (c == '\n')
				i++;
			continue;
		}
		if (c == '\r') {
			st->cr = true;
			i++;
			continue;
		}
		if (c == '\n' || (c == '.' && st->bol)) {
			if (out_cap - o < 2)
				break;
			out[o++] = c == '\n' ? '\r' : '.';
			out[o++] = c;
			st->bol = c == '\n';
			i++;
			continue;
		}
		/* ordinary text up to the next CR or LF */
		size_t room = out_cap - o, j = i;
		if (room == 0)
			break;
		while (j < in_len && j - i < room && in[j] != '\r' && in[j] != '\n')
			j++;
		memcpy(out + o, in + i, j - i);
		o += j - i;
		i = j;
		st->bol = false;
	}
	*in_used_r = i;
	*out_len_r = o;
}

bool dotstuff_finish(dotstuff *st, uint8_t *out, size_t out_cap,
		     size_t *out_len_r)
{
	if (!st->finishing) {
		uint8_t n = 0;
		if (st->cr || !st->bol) {
			st->tail[n++] = '\r';
			st->tail[n++] = '\n';
		}
		st->tail[n++] = '.';
		st->tail[n++] = '\r';
		st->tail[n++] = '\n';
		st->tail_len = n;
		st->tail_off = 0;
		st->cr = false;
		st->bol = true;
		st->finishing = true;
	}
	size_t k = (size_t)(st->tail_len - st->tail_off);
	if (k > out_cap)
		k = out_cap;
	memcpy(out, st->tail + st->tail_off, k);
	st->tail_off = (uint8_t)(st->tail_off + k);
	*out_len_r = k;
	return st->tail_off == st->tail_len;
}

uint64_t dotstuff_size(const uint8_t *body, size_t len)
{
	uint64_t n = len;
	for (size_t i = 0; i < len; i++) {
		if (body[i] == '\r' && (i + 1 == len || body[i + 1] != '\n'))
			n++; /* bare CR: CRLF */
		else if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r'))
			n++; /* bare LF: CRLF */
	}
	if (len > 0 && body[len - 1] != '\r' && body[len - 1] != '\n')
		n += 2;
	return n;
}
