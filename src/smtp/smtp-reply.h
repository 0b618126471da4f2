/*
 * smtp-reply.h — the bounded, incremental parser of SMTP replies (RFC 5321
 * §4.2), as the outbound client reads them (issue 5; TESTING.md E1, the
 * lesson of CVE-2020-8794).  Pure: bytes in, a complete reply, "need more"
 * or a protocol error out.  No I/O, no allocation: every buffer is inside
 * the parser, its size fixed below.
 *
 * Grammar accepted (one reply = one or more lines of the same code):
 *     line  = code ( "-" text | " " text | "" ) EOL
 *     code  = 3 DIGIT, 200..599
 *     EOL   = CRLF, or a bare LF
 * The bytes may be split anywhere, even inside CRLF.
 *
 * Refused, as a sticky protocol error (the session must end: the stream is
 * out of sync): a code that is not three digits or not in 200..599; a
 * separator other than '-', ' ' or the end of the line; a continuation
 * line with a different code; a NUL byte; a CR that is not immediately
 * followed by LF (a lone CR never ends a line, nor is it kept as text); a
 * line longer than SMTP_REPLY_LINE_MAX octets with its line end; more than
 * SMTP_REPLY_LINES_MAX lines in one reply.
 *
 * Lenient on purpose: a bare LF ends a line (Postfix's client accepts it
 * too; it cannot be used to smuggle anything into a reply), lines may
 * exceed RFC 5321's 512 octets up to SMTP_REPLY_LINE_MAX, and the text may
 * hold any other byte (8-bit, controls): users of the text sanitise it.
 * Text beyond SMTP_REPLY_KEEP_MAX octets (all lines) is dropped and the
 * reply marked truncated; that is not an error.
 *
 * Enhanced status codes (RFC 3463): when the first line's text starts with
 * class "." subject "." detail (1-3 digits each) followed by a space or
 * the end, and class equals the reply code's first digit (2, 4 or 5), it
 * is taken into enh; otherwise enh is "".  The text keeps it either way.
 */
#ifndef AMP_SMTP_REPLY_H
#define AMP_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_LINE_MAX 2048u   /* one line, with its CRLF (RFC: 512) */
#define SMTP_REPLY_LINES_MAX 128u   /* lines in one reply */
#define SMTP_REPLY_KEEP_MAX 8192u   /* text kept of one reply, all lines */
#define SMTP_ENH_MAX 12u            /* "5.999.999" and its NUL fit */

typedef struct smtp_reply_line {
	uint32_t off, len;          /* in smtp_reply.text */
} smtp_reply_line;

typedef struct smtp_reply {
	unsigned code;              /* 200..599 */
	char enh[SMTP_ENH_MAX];     /* "2.1.5", or "" */
	size_t n_lines;             /* 1..SMTP_REPLY_LINES_MAX */
	bool truncated;             /* some text was not kept */
	/* The text of every line (what follows the code and its separator),
	 * joined by '\n', NUL-terminated; no NUL, CR or LF inside a line. */
	char text[SMTP_REPLY_KEEP_MAX + 1];
	size_t text_len;
	smtp_reply_line line[SMTP_REPLY_LINES_MAX];
} smtp_reply;

typedef enum smtp_reply_status {
	SMTP_REPLY_ERROR = -1,      /* protocol error (sticky) */
	SMTP_REPLY_NEED_MORE = 0,   /* all input consumed, no complete reply */
	SMTP_REPLY_OK = 1,          /* *reply_r is a complete reply */
} smtp_reply_status;

typedef struct smtp_reply_parser {
	smtp_reply reply;           /* being built, or the last one returned */
	uint8_t line[SMTP_REPLY_LINE_MAX];
	size_t line_len;            /* octets of the current line so far */
	bool fresh;                 /* the next line starts a new reply */
	const char *error;          /* static text once failed */
} smtp_reply_parser;

/* Start (or start again: everything buffered is forgotten). */
void smtp_reply_parser_init(smtp_reply_parser *p);

/* Parse data[0..len).  *used_r: octets consumed — up to and including the
 * last line of the reply on SMTP_REPLY_OK (call again with the rest), all
 * of them on NEED_MORE, up to the offending octet on ERROR.  On OK,
 * *reply_r points into the parser and stays valid until the next call
 * with p.  After an error every call returns ERROR and consumes nothing;
 * smtp_reply_parser_error() says why. */
smtp_reply_status smtp_reply_parse(smtp_reply_parser *p, const uint8_t *data,
				   size_t len, size_t *used_r,
				   const smtp_reply **reply_r)
	__attribute__((warn_unused_result));

/* No partial reply is buffered (not inside a line, no continuation lines
 * waiting for their last line). */
bool smtp_reply_parser_idle(const smtp_reply_parser *p);

/* Why parsing failed (a static sentence), or NULL. */
const char *smtp_reply_parser_error(const smtp_reply_parser *p);

/* Line i (0-based, < n_lines) of a reply: its text, *len_r octets, not
 * NUL-terminated. */
const char *smtp_reply_line_text(const smtp_reply *r, size_t i, size_t *len_r);

#endif
