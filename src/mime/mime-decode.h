/*
 * mime-decode.h — content and header decoders into the caller's buffer,
 * pure: no I/O, no allocation, no logging, O(n).
 *
 * Each decoder writes at most out_cap (or out_size) bytes, carries on
 * counting past it, and returns the length the whole output needs, so a
 * caller can size a buffer, or learn it was cut (MIME_DEC_TRUNCATED).
 * *flags_r (may be NULL) is set to what was found; every finding is
 * tolerated, never fatal:
 *
 * Quoted-printable (RFC 2045 §6.7), mime_decode_qp:
 *  - "=" and two hex digits (either case) is that byte;
 *  - "=" then optional blanks then a line end (CRLF or LF), or the end of
 *    the input, is a soft line break: all of it is removed (a part's body
 *    ends before the CRLF of the next delimiter, so "=" may well be last);
 *  - any other "=" is kept literally, and decoding goes on with the byte
 *    after it (rule 2's "robust implementation"), MIME_DEC_BAD_ESCAPE;
 *  - blanks at the end of a line, or of the input, are removed (rule 3);
 *  - hard line ends are copied as they are (CRLF stays CRLF, LF stays LF);
 *    every other byte, 8-bit and controls included, is copied.
 *  Output never longer than the input.
 *
 * Base64 (RFC 2045 §6.8), mime_decode_base64:
 *  - blanks and line ends (SP, HTAB, CR, LF) are skipped silently;
 *  - other bytes outside the alphabet are skipped, MIME_DEC_GARBAGE;
 *  - missing padding is tolerated (2 or 3 last sextets give 1 or 2
 *    bytes); a single last sextet is dropped, a "=" where no padding can
 *    be, a missing second "=", or data after the padding (decoded as a new
 *    run: concatenated base64) give MIME_DEC_BAD_PAD.  Non-zero unused
 *    bits are ignored.
 *  Output at most 3/4 of the input.
 *
 * RFC 2047 encoded-words in an unstructured header value (best fed the
 * value from mail_field_unfold), mime_decode_words, into UTF-8 text:
 *  - "=?" charset ["*" language] "?" (B|Q) "?" text "?=", text of
 *    printable ASCII without "?" or space; recognised anywhere, also
 *    touching other text (as most readers do; RFC 2047 §5 wants blanks
 *    around them), no 75-octet limit;
 *  - decoded only for us-ascii, utf-8 (also "ascii", "utf8") and
 *    iso-8859-1 (also "iso_8859-1", "latin1"), the last converted to
 *    UTF-8; any case.  An encoded-word in another charset is copied as it
 *    is, MIME_DEC_CHARSET;
 *  - a decoded word must be valid UTF-8 without control characters (C0
 *    other than HTAB, DEL, C1): otherwise it is copied as it is,
 *    MIME_DEC_BAD_WORD.  So decoding never brings in a CR, LF or NUL;
 *  - Q: "_" is a space, "=XX" a byte, a bad "=" is kept
 *    (MIME_DEC_BAD_ESCAPE); B: as the base64 decoder above;
 *  - blanks (SP, HTAB, CR, LF) between two encoded-words that are both
 *    decoded are removed (RFC 2047 §6.2); kept when either is left as it
 *    is, or next to ordinary text;
 *  - everything else is copied byte for byte (the caller's text may be
 *    raw UTF-8).
 *  The output is NUL-terminated, truncated to out_size - 1 bytes (a cut
 *  can split a UTF-8 sequence: MIME_DECODE_WORDS_SIZE(len) never cuts),
 *  and never longer than 3/2 of the input.
 */
#ifndef AMP_MIME_DECODE_H
#define AMP_MIME_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIME_DEC_TRUNCATED 0x01u  /* the output did not fit */
#define MIME_DEC_BAD_ESCAPE 0x02u /* QP, Q: a "=" kept as it is */
#define MIME_DEC_GARBAGE 0x04u    /* base64, B: bytes outside the alphabet */
#define MIME_DEC_BAD_PAD 0x08u    /* base64, B: padding out of place */
#define MIME_DEC_CHARSET 0x10u    /* 2047: a charset left encoded */
#define MIME_DEC_BAD_WORD 0x20u   /* 2047: a word left encoded (bad text
				     or bad syntax inside) */

/* A buffer size that mime_decode_words never truncates. */
#define MIME_DECODE_WORDS_SIZE(len) ((len) + (len) / 2 + 1)

/* Quoted-printable in[0..len) into out[0..out_cap); returns the whole
 * decoded length. */
size_t mime_decode_qp(const uint8_t *in, size_t len, uint8_t *out,
		      size_t out_cap, unsigned *flags_r)
	__attribute__((warn_unused_result));

/* Base64 in[0..len) into out[0..out_cap); returns the whole decoded
 * length. */
size_t mime_decode_base64(const uint8_t *in, size_t len, uint8_t *out,
			  size_t out_cap, unsigned *flags_r)
	__attribute__((warn_unused_result));

/* An unstructured header value in[0..len) with its encoded-words decoded,
 * into out (NUL-terminated, out_size 0 allowed); returns the whole
 * length (without the NUL). */
size_t mime_decode_words(const uint8_t *in, size_t len, char *out,
			 size_t out_size, unsigned *flags_r)
	__attribute__((warn_unused_result));

#endif
