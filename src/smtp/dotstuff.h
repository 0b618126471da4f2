/*
 * dotstuff.h — the egress body writer for SMTP DATA (RFC 5321 §4.5.2;
 * TESTING.md E3, F4), pure and streaming: a stored message in, its DATA
 * wire form out, in chunks of whatever size the caller's buffer has.
 *
 *  - Every line ends in CRLF: CRLF stays, a bare LF becomes CRLF, a bare CR
 *    (a CR not followed by LF) becomes CRLF.  The output never holds a CR
 *    without its LF or an LF without its CR.
 *  - A line that starts with '.' gets one more '.', whatever ended the
 *    line before it (CRLF, bare LF or bare CR: CVE-2026-33604 is a missed
 *    dot after a bare CR).
 *  - dotstuff_finish ends the text with CRLF when it does not end with a
 *    line end already, and appends the terminating ".\r\n".  An empty
 *    message is just ".\r\n".
 * Lines longer than RFC 5321's 1000 octets are passed as they are (never
 * folded: that would change the message).  A receiver's unstuffing
 * (src/smtp/smtp-data.h) gives back the input with every line end made
 * CRLF, and finds the end exactly at the appended ".\r\n".
 *
 * State between calls is a few flags: a CR whose meaning depends on the
 * next octet is withheld until then (or until finish).
 */
#ifndef AMP_DOTSTUFF_H
#define AMP_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dotstuff {
	bool bol;           /* the next octet starts a line */
	bool cr;            /* a CR was read, not yet written */
	bool finishing;     /* dotstuff_finish has built the tail */
	uint8_t tail[5];    /* CRLF? ".\r\n" */
	uint8_t tail_len, tail_off;
} dotstuff;

void dotstuff_init(dotstuff *st);

/* Convert in[0..in_len) into out[0..out_cap).  *in_used_r: input octets
 * taken; *out_len_r: octets written.  It stops when the input is used up
 * or the next output would not fit; with out_cap >= 2 and input left, it
 * always takes input or writes output (a withheld CR may be written
 * before any input is taken).  Call with the rest of the input (and a
 * fresh buffer) until all is taken. */
void dotstuff_run(dotstuff *st, const uint8_t *in, size_t in_len,
		  size_t *in_used_r, uint8_t *out, size_t out_cap,
		  size_t *out_len_r);

/* After the last dotstuff_run: write the end (a withheld CR or a missing
 * line end as CRLF, then ".\r\n", at most 5 octets) into out[0..out_cap).
 * Returns true when all of it has been written; false: call again with
 * more room.  dotstuff_run must not be called afterwards. */
bool dotstuff_finish(dotstuff *st, uint8_t *out, size_t out_cap,
		     size_t *out_len_r) __attribute__((warn_unused_result));

/* The message size RFC 1870 declares (SIZE=): the octets of the body with
 * every line end made CRLF and a final CRLF added if missing, without the
 * stuffing dots and without the terminating ".\r\n". */
uint64_t dotstuff_size(const uint8_t *body, size_t len);

#endif
