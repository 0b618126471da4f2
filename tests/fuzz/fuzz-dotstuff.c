/*
 * fuzz-dotstuff.c — TESTING.md F4 (and E3): the egress body writer
 * (src/smtp/dotstuff.c), round-tripped through our DATA reader
 * (src/smtp/smtp-data.c).
 *
 * Input: byte 0 picks the output buffer size, byte 1 seeds the input
 * piece sizes; the rest is a stored message (any octets, any line ends).
 *
 * Checked: the stuffed output holds no bare CR and no bare LF, and ends
 * with ".\r\n"; a reader that refuses bare line ends (REJECT_BARE) finds
 * no violation, takes every octet and finds the end exactly at the last
 * one (nothing ends early: no smuggled end of data); what it unstuffs is
 * the input with every line end made CRLF and a final CRLF added when
 * missing (a reference written here); dotstuff_size is that length;
 * every output piece fits its buffer.
 */
#include "dotstuff.h"
#include "smtp-data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-dotstuff: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

/* The reference: CRLF, bare CR and bare LF each become CRLF. */
static size_t normalise(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\r' || in[i] == '\n') {
			if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n')
				i++;
			out[o++] = '\r';
			out[o++] = '\n';
		} else {
			out[o++] = in[i];
		}
	}
	if (o > 0 && out[o - 1] != '\n') {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	return o;
}

typedef struct sink {
	const uint8_t *want;
	size_t want_len, got;
} sink;

static void out_fn(void *arg, const uint8_t *d, size_t n)
{
	sink *s = arg;
	CHECK(s->got + n <= s->want_len);
	CHECK(memcmp(s->want + s->got, d, n) == 0);
	s->got += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[8] = { 2, 3, 4, 5, 16, 512, 4096, 65536 };
	if (size < 2)
		return 0;
	size_t cap = caps[data[0] & 7];
	uint8_t seed = data[1];
	const uint8_t *in = data + 2;
	size_t n = size - 2;

	uint8_t *norm = malloc(2 * n + 2);
	/* at most two octets out per octet in, plus CRLF ".\r\n" */
	size_t wire_max = 2 * n + 5;
	uint8_t *wire = malloc(wire_max);
	uint8_t *buf = malloc(cap);
	CHECK(norm != NULL && wire != NULL && buf != NULL);
	size_t nn = normalise(in, n, norm);
	CHECK(dotstuff_size(in, n) == nn);

	dotstuff st;
	dotstuff_init(&st);
	uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1u) + n;
	size_t off = 0, wn = 0;
	while (off < n) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		size_t piece = 1 + (size_t)((x >> 33) % 97);
		if (piece > n - off)
			piece = n - off;
		size_t used, w;
		dotstuff_run(&st, in + off, piece, &used, buf, cap, &w);
		CHECK(used <= piece && w <= cap);
		CHECK(used > 0 || w > 0);  /* progress (cap >= 2) */
		CHECK(wn + w <= wire_max);
		memcpy(wire + wn, buf, w);
		wn += w;
		off += used;
	}
	for (;;) {
		size_t w;
		bool end = dotstuff_finish(&st, buf, cap, &w);
		CHECK(w <= cap && wn + w <= wire_max);
		memcpy(wire + wn, buf, w);
		wn += w;
		if (end)
			break;
		CHECK(w > 0);
	}
	/* finishing twice writes nothing more */
	{
		size_t w;
		CHECK(dotstuff_finish(&st, buf, cap, &w) && w == 0);
	}

	/* no bare CR, no bare LF; the end marker last */
	for (size_t i = 0; i < wn; i++) {
		if (wire[i] == '\r')
			CHECK(i + 1 < wn && wire[i + 1] == '\n');
		if (wire[i] == '\n')
			CHECK(i > 0 && wire[i - 1] == '\r');
	}
	CHECK(wn >= 3 && memcmp(wire + wn - 3, ".\r\n", 3) == 0);
	CHECK(wn == 3 || (wn >= 5 && wire[wn - 5] == '\r' && wire[wn - 4] == '\n'));

	/* the receiving side, fed in pieces */
	sink s = { .want = norm, .want_len = nn, .got = 0 };
	smtp_data_reader r;
	smtp_data_init(&r, SMTP_DATA_REJECT_BARE, 0, 0, out_fn, &s);
	bool done = false;
	size_t from = 0;
	while (from < wn) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		size_t piece = 1 + (size_t)((x >> 33) % 61);
		if (piece > wn - from)
			piece = wn - from;
		size_t used = smtp_data_feed(&r, wire + from, piece, &done);
		from += used;
		if (done)
			break;
		CHECK(used == piece);
	}
	CHECK(done && from == wn);   /* ended exactly at our end */
	CHECK(!r.bare_seen);
	CHECK(s.got == nn && r.size == nn);

	free(buf);
	free(wire);
	free(norm);
	return 0;
}
