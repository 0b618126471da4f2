/*
 * frame.c — see frame.h.  States: reading the 4 header bytes (hdr_have <
 * 4), then reading `need` payload bytes into buf.  Refuses a zero or
 * over-maximum length from the header alone, before allocating.  The
 * payload buffer grows with the bytes that actually arrive (doubling, at
 * most `need`), so a peer that only sends headers — e.g. on many QUIC
 * streams — holds almost no memory: a reader never holds more than twice
 * the bytes it was given, plus FRAME_FIRST_ALLOC.
 */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

#define FRAME_FIRST_ALLOC 4096u

void frame_reader_init(frame_reader *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	frame_reader_set_max(r, max);
}

void frame_reader_deinit(frame_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

void frame_reader_set_max(frame_reader *r, size_t max)
{
	if (max == 0)
		max = 1;
	r->max = max > FRAME_MAX_LIMIT ? FRAME_MAX_LIMIT : max;
}

bool frame_reader_idle(const frame_reader *r)
{
	return r->hdr_have == 0;
}

void frame_header(size_t len, uint8_t out[FRAME_HEADER_BYTES])
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}

frame_res frame_reader_feed(frame_reader *r, const uint8_t *data, size_t len,
			    size_t *consumed_r, uint8_t **frame_r,
			    size_t *frame_len_r, const char **error_r)
{
	size_t used = 0;

	*consumed_r = 0;
	if (r->failed) {
		*error_r = "frame stream already failed";
		return FRAME_ERROR;
	}
	if (len == 0)
		return FRAME_NEED_MORE;
	if (r->hdr_have < FRAME_HEADER_BYTES) {
		size_t k = FRAME_HEADER_BYTES - r->hdr_have;
		if (k > len)
			k = len;
		memcpy(r->hdr + r->hdr_have, data, k);
		r->hdr_have += k;
		used += k;
		if (r->hdr_have < FRAME_HEADER_BYTES) {
			*consumed_r = used;
			return FRAME_NEED_MORE;
		}
		uint32_t n = ((uint32_t)r->hdr[0] << 24) |
			     ((uint32_t)r->hdr[1] << 16) |
			     ((uint32_t)r->hdr[2] << 8) | r->hdr[3];
		if (n == 0) {
			r->failed = true;
			*consumed_r = used;
			*error_r = "frame has length 0";
			return FRAME_ERROR;
		}
		if (n > r->max) {
			r->failed = true;
			*consumed_r = used;
			*error_r = "frame is larger than the maximum";
			return FRAME_ERROR;
		}
		r->need = n;
		r->have = 0;
		r->cap = 0;
	}
	size_t k = r->need - r->have;
	if (k > len - used)
		k = len - used;
	if (k == 0) {
		*consumed_r = used;
		return FRAME_NEED_MORE;
	}
	if (r->have + k > r->cap) {
		size_t cap = r->cap == 0 ? FRAME_FIRST_ALLOC : r->cap;
		while (cap < r->have + k)
			cap *= 2;
		if (cap > r->need)
			cap = r->need;
		uint8_t *p = realloc(r->buf, cap);
		if (p == NULL) {
			r->failed = true;
			*consumed_r = used;
			*error_r = "out of memory for a frame";
			return FRAME_ERROR;
		}
		r->buf = p;
		r->cap = cap;
	}
	memcpy(r->buf + r->have, data + used, k);
	r->have += k;
	used += k;
	*consumed_r = used;
	if (r->have < r->need)
		return FRAME_NEED_MORE;
	*frame_r = r->buf;
	*frame_len_r = r->need;
	r->buf = NULL;
	r->hdr_have = 0;
	r->need = r->have = r->cap = 0;
	return FRAME_COMPLETE;
}
