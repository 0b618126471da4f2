/*
 * fuzz-smtp-data.c — libFuzzer target for src/smtp/smtp-data.c, the DATA
 * reader (TESTING.md F3), with a differential oracle.
 *
 * Input: byte 0 chooses the policy (bit 0), max_size (bits 1-3) and
 * line_max (bits 4-7); byte 1 seeds the piece sizes; the rest is the
 * stream after "DATA\r\n", to which "\r\n.\r\n" is appended so that an end
 * always exists.
 *
 * The reference below reads the whole stream at once, as plainly as it can
 * be written: the end is the first "\r\n.\r\n" of "\r\n" + stream; the
 * content before it is cut into lines (at CRLF; under NORMALISE also at a
 * lone CR or LF); a line's leading dot is removed; each line is written
 * with CRLF.  The streaming reader, fed the same stream in pieces whose
 * sizes come from the input, must agree exactly: the same end position,
 * the same output octets (the first max_size of them), the same size and
 * the same three flags; before the piece holding the end, every piece is
 * consumed whole and the output so far is a prefix of the reference's.
 */
#include "smtp-data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-smtp-data: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

/* ------------------------------------------------------------ reference */

typedef struct ref_result {
	size_t end;          /* octets of the stream up to the end marker */
	uint8_t *out;        /* all the message octets */
	size_t out_len;
	bool bare, too_long;
} ref_result;

static void reference(const uint8_t *in, size_t n, bool normalise,
		      size_t line_max, ref_result *res)
{
	/* the end: "\r\n" + in, first "\r\n.\r\n" */
	uint8_t *buf = malloc(n + 2);
	CHECK(buf != NULL);
	buf[0] = '\r';
	buf[1] = '\n';
	memcpy(buf + 2, in, n);
	size_t at = 0;
	bool found = false;
	for (size_t i = 0; i + 5 <= n + 2; i++) {
		if (memcmp(buf + i, "\r\n.\r\n", 5) == 0) {
			at = i;
			found = true;
			break;
		}
	}
	CHECK(found);
	free(buf);
	res->end = at + 3;
	/* the content: in[0..at) (it ends with the CRLF before the dot) */
	const uint8_t *c = in;
	size_t clen = at;

	res->bare = false;
	for (size_t i = 0; i < clen; i++) {
		if (c[i] == '\r' && (i + 1 == clen || c[i + 1] != '\n'))
			res->bare = true;
		if (c[i] == '\n' && (i == 0 || c[i - 1] != '\r'))
			res->bare = true;
	}

	res->out = malloc(2 * clen + 1);
	CHECK(res->out != NULL);
	res->out_len = 0;
	res->too_long = false;
	size_t start = 0;
	while (start < clen) {
		/* find the end of this line and the length of its ending */
		size_t e = start, term = 0;
		while (e < clen) {
			if (c[e] == '\r' && e + 1 < clen && c[e + 1] == '\n') {
				term = 2;
				break;
			}
			if (normalise && (c[e] == '\r' || c[e] == '\n')) {
				term = 1;
				break;
			}
			e++;
		}
		CHECK(term != 0); /* the content ends with CRLF */
		size_t ls = start;
		if (ls < e && c[ls] == '.')
			ls++;
		memcpy(res->out + res->out_len, c + ls, e - ls);
		res->out_len += e - ls;
		res->out[res->out_len++] = '\r';
		res->out[res->out_len++] = '\n';
		if (line_max != 0 && (e - ls) + 2 > line_max)
			res->too_long = true;
		start = e + term;
	}
}

/* ------------------------------------------------------------ streaming */

typedef struct sink {
	const uint8_t *want;  /* the reference output */
	size_t want_len;
	size_t got;
} sink;

/* The output must follow the reference octet by octet. */
static void out_fn(void *arg, const uint8_t *d, size_t n)
{
	sink *s = arg;
	CHECK(n > 0);
	CHECK(s->got + n <= s->want_len);
	CHECK(memcmp(s->want + s->got, d, n) == 0);
	s->got += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t maxes[8] = { 0, 1, 2, 5, 17, 64, 300, 4096 };
	static const size_t line_maxes[16] = { 0, 1, 2, 3, 4, 5, 8, 13,
					       40, 78, 80, 998, 1000, 1001,
					       4096, 0 };
	static const size_t caps[8] = { 1, 2, 3, 5, 16, 64, 1000, 100000 };
	if (size < 2)
		return 0;
	bool normalise = (data[0] & 1) != 0;
	uint64_t max_size = maxes[(data[0] >> 1) & 7];
	size_t line_max = line_maxes[data[0] >> 4];
	uint8_t seed = data[1];
	size_t n = size - 2 + 5;
	uint8_t *in = malloc(n);
	CHECK(in != NULL);
	memcpy(in, data + 2, size - 2);
	memcpy(in + size - 2, "\r\n.\r\n", 5);

	ref_result ref;
	reference(in, n, normalise, line_max, &ref);
	size_t kept = ref.out_len;
	if (max_size != 0 && max_size < kept)
		kept = (size_t)max_size;

	sink s = { .want = ref.out, .want_len = kept, .got = 0 };
	smtp_data_reader r;
	smtp_data_init(&r,
		       normalise ? SMTP_DATA_NORMALISE : SMTP_DATA_REJECT_BARE,
		       max_size, line_max, out_fn, &s);
	uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1u) + n;
	size_t cap = caps[seed & 7], from = 0, consumed = 0;
	bool done = false;
	while (from < n) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		size_t piece = 1 + (size_t)((x >> 33) % cap);
		if (piece > n - from)
			piece = n - from;
		size_t used = smtp_data_feed(&r, in + from, piece, &done);
		CHECK(used <= piece);
		consumed += used;
		if (done) {
			CHECK(from + used == ref.end);
			break;
		}
		CHECK(used == piece);
		CHECK(from + piece < ref.end);
		from += piece;
	}
	CHECK(done && r.done);
	CHECK(consumed == ref.end);
	CHECK(s.got == kept);
	CHECK(r.size == ref.out_len);
	CHECK(r.too_big == (max_size != 0 && ref.out_len > max_size));
	CHECK(r.bare_seen == ref.bare);
	CHECK(r.line_too_long == ref.too_long);
	/* after the end, nothing more is taken */
	CHECK(smtp_data_feed(&r, in, n, &done) == 0 && done);
	CHECK(s.got == kept);

	free(ref.out);
	free(in);
	return 0;
}
