/*
 * mail-header.h — the RFC 5322 header section of a message in memory, one
 * field at a time.  Pure: no I/O, no allocation, no logging; O(n) over the
 * whole header section however it is cut into fields.
 *
 * Lines end at LF; a CR just before the LF belongs to the line end (CRLF
 * and bare LF are both accepted), and so does a CR that ends msg (a
 * message cut between CR and LF).  A CR elsewhere, NUL and 8-bit bytes are
 * ordinary bytes of a line (a NUL is reported in mail_field.nul).
 *
 * What is a field (Postfix is_header(), RFC 5322 §2.2 and §4.5):
 *  - a name of bytes 33..126 other than ':', optional blanks (SP, HTAB:
 *    the obsolete "Name :" of RFC 5322 §4.5), then ':';
 *  - the following lines that start with SP or HTAB (continuations,
 *    whitespace-only lines included) belong to it.
 * Malformed fields (mail_field.malformed, name_len 0, value_off = off:
 * the whole text is the "value"):
 *  - a first line that starts with a blank (a continuation with no field
 *    before it), with its own continuations;
 *  - a line starting "From " (an mbox separator, or a pasted one).
 * Where the header section ends (Postfix's rule, cleanup(8) and
 * mime_state): at the first empty line (the body starts after it), at the
 * end of the message (the body is empty, body_off == len), or at the first
 * line that is neither a field nor a continuation: no colon, an empty
 * name, a name byte outside 33..126 (NUL, 8-bit, control, a blank inside
 * the name).  That line is not consumed: it is the first line of the body
 * (body_off is its offset) and it.no_separator is set.  So "X-A\0B: v"
 * starts the body, like in Postfix, rather than being a field with a
 * strange name.
 *
 * A field's bytes are msg[off .. off+len): fields and the separator are
 * contiguous, the first field starts at 0, and body_off is the end of the
 * last field (plus the empty line when there is one).
 */
#ifndef AMP_MAIL_HEADER_H
#define AMP_MAIL_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mail_field {
	size_t off;       /* offset of the field's first byte in msg */
	size_t len;       /* whole field: name, ':', value, continuation
			     lines, final line end (absent at the end of msg) */
	size_t name_len;  /* bytes of the name before ':' and its blanks (0 if
			     the field is malformed) */
	size_t value_off; /* offset in msg of the first byte after ':' (off
			     when malformed) */
	bool malformed;   /* see above */
	bool nul;         /* the field contains a NUL byte */
} mail_field;

typedef struct mail_header_iter {
	const uint8_t *msg;
	size_t len, pos;  /* pos: where the next field starts */
	size_t body_off;  /* valid once done */
	bool done;
	bool no_separator;   /* ended at a non-field line or at the end of
				msg, not at an empty line */
	bool nul_seen;       /* some field had a NUL */
	bool malformed_seen; /* some field was malformed */
	size_t fields;       /* fields returned so far */
} mail_header_iter;

/* Start at msg[0]; msg stays borrowed by the caller for the iteration. */
void mail_header_iter_init(mail_header_iter *it, const uint8_t *msg,
			   size_t len);

/* 1: *f_r is the next field; 0: the end of the header section, with
 * it->body_off the offset of the body (after the empty line; == len if
 * there is none).  After 0 it keeps returning 0. */
int mail_header_next(mail_header_iter *it, mail_field *f_r)
	__attribute__((warn_unused_result));

/* The field's name is `name` (ASCII case-insensitive); never true for a
 * malformed field. */
bool mail_field_is(const uint8_t *msg, const mail_field *f, const char *name)
	__attribute__((warn_unused_result));

/* The value unfolded (each line end, CRLF or LF, removed, and a CR that
 * ends msg; the blanks that follow a line end kept, RFC 5322 §2.2.3),
 * leading and trailing blanks (SP, HTAB) trimmed, written to out
 * NUL-terminated and truncated to out_size - 1 bytes (out may be NULL when
 * out_size is 0).  Other bytes (NUL, a CR not before LF, 8-bit) are copied
 * as they are: with a NUL inside, use the returned length, not strlen.
 * Returns the untruncated length (never more than f->len). */
size_t mail_field_unfold(const uint8_t *msg, const mail_field *f, char *out,
			 size_t out_size);

/* A mailbox-list (RFC 5322 §3.4, with comments and CFWS anywhere) read
 * just far enough to find the address of each mailbox: the angle-addr
 * when there is one, else the addr-spec with blanks and comments taken
 * out.  v[0..n) is an unfolded value.  Returns the number of mailboxes
 * (empty list elements skipped) and the first one's address in
 * first[0..*first_len_r) (first has room for n bytes), or -1 on a syntax
 * error (*why_r: an unclosed comment, quote or '<', a group, ...). */
long mail_mailbox_list(const char *v, size_t n, char *first,
		       size_t *first_len_r, const char **why_r)
	__attribute__((warn_unused_result));

#endif
