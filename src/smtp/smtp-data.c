/*
 * smtp-data.c — the DATA content reader (smtp-data.h): end of data,
 * dot-unstuffing, bare CR / bare LF policy, size and line accounting.
 *
 * Pure and streaming: it never buffers a line.  Between calls it keeps only
 * its state number (at most a pending ".", "." CR or CR, whose meaning
 * depends on the next octet); within a call, output is gathered in a small
 * stack buffer (long runs of text go straight from the input) and handed to
 * the callback before the call returns.
 *
 * States (the reader starts in BOL_EOD: DATA's own CRLF precedes):
 *   BOL_EOD  at a line start after CRLF: "." CRLF here is the end
 *   BOL      at a line start after a bare CR or LF turned into CRLF
 *            (NORMALISE only): a "." is unstuffed, but never an end
 *   DOT      "." at BOL_EOD (the dot is withheld)
 *   DOT_CR   "." CR at BOL_EOD (both withheld)
 *   TEXT     inside a line
 *   CR       CR inside a line (withheld until the next octet)
 *   DONE     the end was consumed
 * Every CR followed by LF leads to BOL_EOD or DONE, and BOL_EOD is reached
 * only that way (or at the start), so the end is exactly the first
 * "\r\n.\r\n" of "\r\n" + input, whatever the policy and however the input
 * is split.  A bare CR or LF never starts an end-eligible line.
 *
 * Lines: a text line's length is counted after unstuffing, its CRLF
 * included (RFC 5321 §4.5.3.1.6: 1000); with REJECT_BARE a bare CR or LF is
 * an ordinary octet of the line, with NORMALISE it ends the line.
 */
#include "smtp-data.h"

#include <stdlib.h>
#include <string.h>

enum {
	ST_BOL_EOD = 0,
	ST_BOL,
	ST_DOT,
	ST_DOT_CR,
	ST_TEXT,
	ST_CR,
	ST_DONE,
};

/* Runs shorter than this are copied into the stack buffer; longer ones are
 * handed to the callback directly. */
#define DIRECT_MIN 64u

typedef struct obuf {
	uint8_t b[512];
	size_t n;
} obuf;

void smtp_data_init(smtp_data_reader *r, smtp_data_policy policy,
		    uint64_t max_size, size_t line_max, smtp_data_out_fn *out,
		    void *arg)
{
	memset(r, 0, sizeof(*r));
	r->policy = policy;
	r->max_size = max_size;
	r->line_max = line_max;
	r->out = out;
	r->arg = arg;
	r->st = ST_BOL_EOD;
}

/* Message octets: counted, and passed on while within max_size. */
static void emit(smtp_data_reader *r, const uint8_t *p, size_t n)
{
	if (n == 0)
		return;
	if (r->max_size == 0 ||
	    (r->size <= r->max_size && n <= r->max_size - r->size)) {
		if (r->out != NULL)
			r->out(r->arg, p, n);
	} else {
		if (r->size < r->max_size && r->out != NULL)
			r->out(r->arg, p, (size_t)(r->max_size - r->size));
		r->too_big = true;
	}
	r->size += n;
}

static void flush(smtp_data_reader *r, obuf *ob)
{
	emit(r, ob->b, ob->n);
	ob->n = 0;
}

static void put(smtp_data_reader *r, obuf *ob, const uint8_t *p, size_t n)
{
	if (n >= DIRECT_MIN) {
		flush(r, ob);
		emit(r, p, n);
		return;
	}
	if (sizeof(ob->b) - ob->n < n)
		flush(r, ob);
	memcpy(ob->b + ob->n, p, n);
	ob->n += n;
}

static void line_check(smtp_data_reader *r)
{
	if (r->line_max != 0 &&
	    (r->line_max < 2 || r->line_len > r->line_max - 2))
		r->line_too_long = true;
}

/* Octets of the current line. */
static void text(smtp_data_reader *r, obuf *ob, const uint8_t *p, size_t n)
{
	put(r, ob, p, n);
	r->line_len += n;
	line_check(r);
}

static void line_end(smtp_data_reader *r, obuf *ob)
{
	static const uint8_t crlf[2] = { '\r', '\n' };
	put(r, ob, crlf, 2);
	line_check(r);
	r->line_len = 0;
}

/* A CR that is not followed by LF (the octet after it is still to be
 * processed). */
static void bare_cr(smtp_data_reader *r, obuf *ob)
{
	static const uint8_t cr = '\r';
	r->bare_seen = true;
	if (r->policy == SMTP_DATA_NORMALISE) {
		line_end(r, ob);
		r->st = ST_BOL;
	} else {
		text(r, ob, &cr, 1);
		r->st = ST_TEXT;
	}
}

size_t smtp_data_feed(smtp_data_reader *r, const uint8_t *data, size_t len,
		      bool *done_r)
{
	obuf ob;
	size_t i = 0;
	ob.n = 0;
	while (i < len && r->st != ST_DONE) {
		uint8_t c = data[i];
		switch (r->st) {
		case ST_BOL_EOD:
			if (c == '.') {
				r->st = ST_DOT;
				i++;
			} else {
				r->st = ST_TEXT;
			}
			break;
		case ST_BOL:
			if (c == '.')
				i++; /* stuffing dot, not an end */
			r->st = ST_TEXT;
			break;
		case ST_DOT:
			if (c == '\r') {
				r->st = ST_DOT_CR;
				i++;
			} else {
				r->st = ST_TEXT; /* the dot was stuffing */
			}
			break;
		case ST_DOT_CR:
			if (c == '\n') {
				r->st = ST_DONE;
				r->done = true;
				i++;
			} else {
				bare_cr(r, &ob); /* "." dropped, CR bare */
			}
			break;
		case ST_TEXT: {
			size_t j = i;
			while (j < len && data[j] != '\r' && data[j] != '\n')
				j++;
			if (j > i) {
				text(r, &ob, data + i, j - i);
				i = j;
			} else if (c == '\r') {
				r->st = ST_CR;
				i++;
			} else { /* bare LF */
				r->bare_seen = true;
				if (r->policy == SMTP_DATA_NORMALISE) {
					line_end(r, &ob);
					r->st = ST_BOL;
				} else {
					text(r, &ob, data + i, 1);
				}
				i++;
			}
			break;
		}
		case ST_CR:
			if (c == '\n') {
				line_end(r, &ob);
				r->st = ST_BOL_EOD;
				i++;
			} else {
				bare_cr(r, &ob);
			}
			break;
		default:
			abort(); /* a bug: st is only ever set here */
		}
	}
	flush(r, &ob);
	*done_r = r->done;
	return i;
}
