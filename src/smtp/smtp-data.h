/*
 * smtp-data.h — the DATA content reader (RFC 5321 §4.1.1.4, §4.5.2), pure:
 * bytes in, message bytes and the end-of-data event out.  TESTING.md S3
 * and F3.
 *
 *  - The end of data is recognised ONLY as CRLF "." CRLF (the first line
 *    "." CRLF right after DATA also ends it, since DATA's CRLF precedes).
 *  - Dot-unstuffing: a line starting with "." loses that dot.
 *  - Bare LF or bare CR anywhere in the content (a CR not followed by LF,
 *    an LF not preceded by CR): with SMTP_DATA_REJECT_BARE (the default)
 *    the reader remembers the violation, keeps reading until the real end
 *    of data (so the session stays in sync) and reports it at the end; a
 *    smuggled "\n.\n" is then content, never an end.  With
 *    SMTP_DATA_NORMALISE, a bare LF or bare CR becomes CRLF in the output
 *    and ends the line (a "." after it is unstuffed but never an end).
 *    bare_seen is set under both policies.
 *  - Size: output beyond max_size (0: no limit) is discarded (counted in
 *    size) and reported at the end (552 5.3.4 after the real end, S11);
 *    the callback gets exactly the first max_size octets.
 *  - Line length: text lines longer than line_max (0: no limit) are
 *    reported at the end (S2 policy: accept or reject, configurable by the
 *    caller); the reader itself never buffers a line.  A line's length is
 *    counted after unstuffing with its CRLF included, as RFC 5321
 *    §4.5.3.1.6 counts (line_max 1000 is its limit).
 * The output is delivered through a callback (NULL: count only) in pieces
 * (no buffering inside beyond a few bytes of pending state); the message
 * octets include the CRLF that precedes the final ".".
 */
#ifndef AMP_SMTP_DATA_H
#define AMP_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum smtp_data_policy {
	SMTP_DATA_REJECT_BARE = 0,
	SMTP_DATA_NORMALISE = 1,
} smtp_data_policy;

typedef void smtp_data_out_fn(void *arg, const uint8_t *data, size_t len);

typedef struct smtp_data_reader {
	/* settings */
	smtp_data_policy policy;
	uint64_t max_size;
	size_t line_max;
	smtp_data_out_fn *out;
	void *arg;
	/* state */
	int st;                  /* internal */
	size_t line_len;
	uint64_t size;           /* message octets produced (after unstuffing) */
	bool bare_seen, too_big, line_too_long, done;
} smtp_data_reader;

void smtp_data_init(smtp_data_reader *r, smtp_data_policy policy,
		    uint64_t max_size, size_t line_max, smtp_data_out_fn *out,
		    void *arg);

/* Feed bytes.  Returns how many were consumed: all of them, or fewer when
 * the end of data was reached (*done_r true; the rest belongs to the
 * next command).  Once done, it consumes nothing.  Never blocks; calls out
 * only from inside this call. */
size_t smtp_data_feed(smtp_data_reader *r, const uint8_t *data, size_t len,
		      bool *done_r);

#endif
