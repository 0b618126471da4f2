/*
 * imap-msg.h — what IMAP shows of one message, computed from its bytes
 * (RFC 3501 §7.4.2): ENVELOPE, BODY and BODYSTRUCTURE, BODY[section]
 * extraction (HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME, part
 * numbers, nested message/rfc822), and the SEARCH text matches.  Pure:
 * bytes in, strings out; the MIME tree comes from src/mime/mime.c.
 *
 * Output strings are IMAP syntax ready to send: strings quoted when
 * they can be (no CR, LF, NUL, '"' or '\\' problem, 8-bit as literal),
 * else literals "{n}\r\n..."; NIL for absent fields.  Output is
 * deterministic and compared with Dovecot's in tests/e2e (byte for byte;
 * imap-msg.c lists the rules).  Sizes and line counts are those of the
 * bytes given: pass the message with CRLF line ends, as stored, to get
 * RFC 3501's octet counts (Dovecot counts a bare LF as two octets).
 *
 * Limits: the MIME limits of mime.h; a message whose MIME tree does not
 * parse within them is shown as one text/plain part (never an error).
 */
#ifndef AMP_IMAP_MSG_H
#define AMP_IMAP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_MSG_CACHE_MAX (1024u * 1024u) /* envelope + structures */

typedef struct imap_msg_info {
	char *envelope;       /* "(date subject from sender ...)" */
	char *bodystructure;  /* with extension data */
	char *body;           /* BODY: without extension data */
	int64_t sent;         /* the Date: field in Unix seconds, INT64_MIN
				 when absent or unparsable (SENTBEFORE...) */
} imap_msg_info;

/* Analyse a message: -1 only when the strings would exceed
 * IMAP_MSG_CACHE_MAX (*error_r; *info_r is then all NULL); running out of
 * memory aborts (STYLE.md). */
int imap_msg_analyze(const uint8_t *msg, size_t len, imap_msg_info *info_r,
		     const char **error_r) __attribute__((warn_unused_result));
void imap_msg_info_free(imap_msg_info *info);

/* BODY[section]: section is what is between the brackets ("", "HEADER",
 * "1.2.MIME", "HEADER.FIELDS (From To)", ...; imap_fetch_att_check in
 * imap-parse.h checked its syntax).  The bytes are either a slice of
 * msg (*out_r points into it, *alloc_r NULL) or built (HEADER.FIELDS:
 * *alloc_r is what to free, *out_r == *alloc_r).  A part that does not
 * exist gives an empty result (0 bytes), as Dovecot does.  -1 with
 * *error_r only for a section that cannot be parsed. */
int imap_msg_section(const uint8_t *msg, size_t len, const char *section,
		     size_t section_len, const uint8_t **out_r, size_t *n_r,
		     uint8_t **alloc_r, const char **error_r)
	__attribute__((warn_unused_result));

/* SEARCH HEADER name needle / FROM / TO / CC / BCC / SUBJECT: does a field
 * called name (case-insensitive) contain needle (case-insensitive ASCII
 * substring, after RFC 2047 decoding of the field's value)?  An empty
 * needle matches any message that has the field. */
bool imap_msg_header_has(const uint8_t *msg, size_t len, const char *name,
			 const char *needle, size_t needle_len);
/* SEARCH BODY (body only) / TEXT (header and body): the needle in the
 * decoded text parts (quoted-printable and base64 undone). */
bool imap_msg_text_has(const uint8_t *msg, size_t len, bool with_header,
		       const char *needle, size_t needle_len);

#endif
