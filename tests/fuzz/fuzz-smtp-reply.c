/*
 * fuzz-smtp-reply.c — TESTING.md E1: the outbound client's reply parser
 * (src/smtp/smtp-reply.c), with a differential oracle.
 *
 * Input: byte 0 seeds the piece sizes; the rest is what a server sends.
 *
 * The reference below reads the whole input at once, as plainly as it
 * can be written: lines end at LF (a CR just before it dropped); each
 * line is checked for NUL, other CRs, three digits in 200..599, the
 * separator, the code of the reply it continues and the line count; a
 * line longer than SMTP_REPLY_LINE_MAX with its LF is an error as soon as
 * its octets arrive.  The streaming parser, fed the same input in pieces,
 * must give the same replies (code, enhanced code, every line's text, the
 * text kept within SMTP_REPLY_KEEP_MAX, the truncation flag), end each
 * reply at the same offset, and fail at the same line with the same
 * reason.  Every reply also holds the parser's invariants: no NUL, CR or
 * LF inside a line, lines inside the text, an enhanced code only of the
 * reply's class.
 */
#include "smtp-reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-smtp-reply: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

/* ------------------------------------------------------------ reference */

typedef struct ref_line {
	size_t off, len;            /* the text after code and separator */
} ref_line;

typedef struct ref_reply {
	size_t end;                 /* offset after its last LF */
	unsigned code;
	size_t first, n_lines;      /* in ref_state.lines */
} ref_reply;

typedef struct ref_state {
	const uint8_t *in;
	size_t n;
	ref_reply *replies;         /* at most one per input line */
	size_t n_replies;
	ref_line *lines;            /* at most one per input octet + 1 */
	size_t n_lines;
	const char *error;          /* NULL: ended needing more (or clean) */
} ref_state;

static bool digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static void reference(ref_state *rs)
{
	const uint8_t *in = rs->in;
	size_t n = rs->n, pos = 0;
	ref_reply cur;
	bool open = false;
	rs->replies = malloc((n + 1) * sizeof(*rs->replies));
	rs->lines = malloc((n + 1) * sizeof(*rs->lines));
	CHECK(rs->replies != NULL && rs->lines != NULL);
	while (pos < n) {
		const uint8_t *nl = memchr(in + pos, '\n', n - pos);
		size_t len = nl != NULL ? (size_t)(nl - (in + pos)) : n - pos;
		if (len > SMTP_REPLY_LINE_MAX - 1) {
			rs->error = "reply line too long";
			return;
		}
		if (nl == NULL)
			return; /* a partial line: more needed */
		const uint8_t *l = in + pos;
		size_t ll = len;
		if (ll > 0 && l[ll - 1] == '\r')
			ll--;
		for (size_t i = 0; i < ll; i++) {
			if (l[i] == 0) {
				rs->error = "NUL byte in a reply";
				return;
			}
			if (l[i] == '\r') {
				rs->error = "bare CR in a reply";
				return;
			}
		}
		if (ll < 3 || !digit(l[0]) || !digit(l[1]) || !digit(l[2])) {
			rs->error = "reply code is not three digits";
			return;
		}
		unsigned code = (unsigned)(l[0] - '0') * 100 +
				(unsigned)(l[1] - '0') * 10 + (unsigned)(l[2] - '0');
		if (code < 200 || code > 599) {
			rs->error = "reply code out of range";
			return;
		}
		bool last;
		if (ll == 3 || l[3] == ' ')
			last = true;
		else if (l[3] == '-')
			last = false;
		else {
			rs->error = "bad separator after the reply code";
			return;
		}
		if (!open) {
			cur.code = code;
			cur.first = rs->n_lines;
			cur.n_lines = 0;
			open = true;
		} else if (cur.code != code) {
			rs->error = "continuation with a different code";
			return;
		}
		if (cur.n_lines == SMTP_REPLY_LINES_MAX) {
			rs->error = "too many lines in one reply";
			return;
		}
		rs->lines[rs->n_lines].off = pos + (ll > 3 ? 4 : 3);
		rs->lines[rs->n_lines].len = ll > 3 ? ll - 4 : 0;
		rs->n_lines++;
		cur.n_lines++;
		pos += len + 1;
		if (last) {
			cur.end = pos;
			rs->replies[rs->n_replies++] = cur;
			open = false;
		}
	}
}

/* The enhanced code the reference expects, from the first line. */
static void ref_enh(const uint8_t *t, size_t n, unsigned code, char *out)
{
	size_t i = 0, k;
	out[0] = '\0';
	if (code / 100 == 3 || n < 5 || t[0] != (uint8_t)('0' + code / 100))
		return;
	i = 1;
	for (int part = 0; part < 2; part++) {
		if (i >= n || t[i] != '.')
			return;
		i++;
		for (k = 0; i < n && digit(t[i]); i++, k++)
			;
		if (k < 1 || k > 3)
			return;
	}
	if (i < n && t[i] != ' ')
		return;
	memcpy(out, t, i);
	out[i] = '\0';
}

/* ------------------------------------------------------------ checks */

static void compare(const ref_state *rs, const ref_reply *want,
		    const smtp_reply *r)
{
	char enh[SMTP_ENH_MAX];
	CHECK(r->code == want->code);
	CHECK(r->n_lines == want->n_lines);
	const ref_line *wl = rs->lines + want->first;
	ref_enh(rs->in + wl[0].off, wl[0].len, want->code, enh);
	CHECK(strcmp(r->enh, enh) == 0);
	/* the kept text: the lines joined by '\n', cut at KEEP_MAX */
	size_t full = 0;
	for (size_t i = 0; i < want->n_lines; i++)
		full += wl[i].len + (i > 0);
	CHECK(r->truncated == (full > SMTP_REPLY_KEEP_MAX));
	CHECK(r->text_len == (full > SMTP_REPLY_KEEP_MAX ? SMTP_REPLY_KEEP_MAX : full));
	CHECK(strlen(r->text) == r->text_len);
	size_t at = 0;
	for (size_t i = 0; i < want->n_lines; i++) {
		size_t len;
		const char *t = smtp_reply_line_text(r, i, &len);
		if (i > 0) {
			if (at < SMTP_REPLY_KEEP_MAX) {
				CHECK(r->text[at] == '\n');
				at++;
			}
		}
		size_t keep = wl[i].len;
		if (keep > SMTP_REPLY_KEEP_MAX - at)
			keep = SMTP_REPLY_KEEP_MAX - at;
		CHECK(len == keep);
		CHECK(t == r->text + at);
		CHECK(memcmp(t, rs->in + wl[i].off, keep) == 0);
		for (size_t j = 0; j < len; j++)
			CHECK(t[j] != '\0' && t[j] != '\r' && t[j] != '\n');
		at += keep;
	}
	CHECK(at == r->text_len);
	CHECK(r->enh[0] == '\0' || (unsigned)(r->enh[0] - '0') == r->code / 100);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[8] = { 1, 2, 3, 7, 64, 600, 3000, 100000 };
	static smtp_reply_parser p;  /* 11 KB: off the stack */
	if (size < 1)
		return 0;
	uint8_t seed = data[0];
	const uint8_t *in = data + 1;
	size_t n = size - 1;

	ref_state rs = { .in = in, .n = n };
	reference(&rs);

	smtp_reply_parser_init(&p);
	uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1u) + n;
	size_t cap = caps[seed & 7], off = 0, got = 0;
	bool failed = false;
	while (off < n && !failed) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		size_t piece = 1 + (size_t)((x >> 33) % cap);
		if (piece > n - off)
			piece = n - off;
		size_t end = off + piece;
		while (off < end) {
			const smtp_reply *r;
			size_t used;
			smtp_reply_status st = smtp_reply_parse(&p, in + off, end - off,
								&used, &r);
			CHECK(used <= end - off);
			off += used;
			if (st == SMTP_REPLY_ERROR) {
				CHECK(r == NULL);
				failed = true;
				break;
			}
			if (st == SMTP_REPLY_NEED_MORE) {
				CHECK(off == end);
				CHECK(r == NULL);
				continue;
			}
			CHECK(got < rs.n_replies);
			CHECK(off == rs.replies[got].end);
			compare(&rs, &rs.replies[got], r);
			CHECK(smtp_reply_parser_idle(&p));
			got++;
		}
	}
	CHECK(got == rs.n_replies);
	CHECK(failed == (rs.error != NULL));
	if (failed) {
		const smtp_reply *r;
		size_t used;
		CHECK(strcmp(smtp_reply_parser_error(&p), rs.error) == 0);
		CHECK(!smtp_reply_parser_idle(&p));
		CHECK(smtp_reply_parse(&p, in, n, &used, &r) == SMTP_REPLY_ERROR &&
		      used == 0);
	} else {
		CHECK(smtp_reply_parser_error(&p) == NULL);
		/* idle exactly when the input ended with a reply */
		CHECK(smtp_reply_parser_idle(&p) ==
		      (n == 0 || (got > 0 && rs.replies[got - 1].end == n)));
	}
	free(rs.replies);
	free(rs.lines);
	return 0;
}
