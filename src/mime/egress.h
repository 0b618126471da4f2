/*
 * egress.h — the outbound rewrite of a message an AMP user sealed to the
 * gateway (issue 5): from the message the user's client wrote to the
 * message the gateway sends over SMTP.  Pure: bytes in, a new message
 * and its envelope recipients out; no I/O, no logging.  The only call out
 * is the caller's map function, made synchronously during egress_prepare
 * and never after it has failed.
 *
 * What changes (everything else is copied byte for byte, so what the user
 * signed stays as it was):
 *  - every header field whose name starts with "AMP-" (any case) is
 *    removed; the AMP-Egress-To fields among them give the SMTP
 *    recipients: comma-separated addr-specs, each optionally in angle
 *    brackets, in order, at most EGRESS_MAX_RCPTS in all, duplicates
 *    (local part exact, domain ASCII case-insensitive) kept once;
 *  - Bcc fields are removed (their addresses are expected in
 *    AMP-Egress-To; they are not added);
 *  - in From, Sender, Reply-To, To, Cc, Resent-From, Resent-Sender,
 *    Resent-To and Resent-Cc each DID token (below) is replaced by the
 *    address the map gives for it, or by LOCAL@DOMAIN;
 *  - Date (from `now`) and Message-ID ("<hex(random16)@msgid_domain>") are
 *    added at the end of the header section when missing;
 *  - line ends: CRLF and bare LF both become CRLF, a CR that ends the
 *    message becomes CRLF; the output always has the empty line after the
 *    header section (added when the input had none).
 *
 * A DID token (PROTOCOL.md §3.1, the grammar of src/lib/amp-did.c, which
 * libampmime does not link): "did:aftersmtp:", then the longest run of
 * [a-z0-9.-], ":", then the longest run of [a-z0-9._-] less its trailing
 * dots (a sentence's full stop), and that must be a canonical DID.  The
 * byte before it must not be atext, '.', '@' or 8-bit (so "xdid:..." is
 * not one) and the byte after it not atext, '@', ':' or 8-bit (so
 * "did:aftersmtp:example.org:aliceX" is not one).  A token thus ends
 * before '>', ',', ')', ';', '"', a blank, a line end or a full stop.
 * Only the canonical lower-case form is a DID (AMP-R-003).
 *
 * Refused (-1 and *error_r: a static sentence, or one naming the
 * recipient kept in res->error, valid as long as res):
 *  - a header section over EGRESS_MAX_HEADER bytes or with more than
 *    EGRESS_MAX_FIELDS fields; a malformed header line (a leading blank
 *    with no field before it, a "From " line), a NUL, or a bare CR (a CR
 *    not before LF) anywhere in the message;
 *  - no recipient, more than EGRESS_MAX_RCPTS, or one that is not an
 *    addr-spec: local part (dot-atom, or a quoted string without blanks
 *    or controls) @ domain (LDH labels, UTF-8 allowed, or an address
 *    literal), at most 64 + 1 + 255 and EGRESS_ADDR_MAX octets in all, no
 *    CR, LF, NUL, blank, '<' or '>'; invalid UTF-8 never;
 *  - no From, more than one From, or more than one Date, Message-ID,
 *    Subject, To, Cc, Sender, Reply-To, In-Reply-To or References (RFC
 *    5322 §3.6);
 *  - a From that is not exactly one mailbox (display name and comments
 *    are fine, a group is not), or whose address is not the sender's
 *    (below); a Sender, when present, likewise;
 *  - a map result that is not a valid address, an invalid sender_did or
 *    msgid_domain.
 *
 * The sender's address: map(arg, sender_did, ...) when it gives one, else
 * LOCAL@DOMAIN of sender_did; only that one is accepted (not both).  The
 * From address (after rewriting, quotes around the local part removed)
 * must have the same local part, byte for byte, and the same domain,
 * ASCII case-insensitive.
 *
 * Not done here: lines over 998 octets are passed on as they are (the SMTP
 * client decides), and no 8-bit conversion is made (see eightbit).
 */
#ifndef AMP_EGRESS_H
#define AMP_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EGRESS_MAX_HEADER (1024u * 1024u) /* bytes of the header section */
#define EGRESS_MAX_FIELDS 10000u          /* fields in it */
#define EGRESS_MAX_RCPTS 1000u            /* AMP-Egress-To addresses */
#define EGRESS_ADDR_MAX 254u              /* octets of one address */

/* Map a DID ("did:aftersmtp:DOMAIN:USER") to a mail address; write it into
 * buf (cap bytes, NUL-terminated) and return buf, or NULL for "no mapping"
 * (then the default USER@DOMAIN is used).  Called only during
 * egress_prepare; it must not block for long (it runs in the caller's
 * thread). */
typedef const char *egress_map_fn(void *arg, const char *did, char *buf,
				  size_t cap);

typedef struct egress_result {
	uint8_t *msg;          /* the rewritten message (malloc), CRLF */
	size_t len;
	char **rcpts;          /* from AMP-Egress-To, in order, deduplicated,
				  each a plain addr-spec (malloc) */
	size_t n_rcpts;
	char *from_domain;     /* domain of the (rewritten) From address,
				  ASCII lower case, for the DKIM key; never
				  NULL after success (From must be one
				  mailbox) */
	bool eightbit;         /* some byte >= 0x80 in msg */
	bool smtputf8;         /* a recipient, or the From address, has a
				  byte >= 0x80 */
	char error[160];       /* where *error_r may point after a failure */
} egress_result;

/* Rewrite in[0..in_len) (borrowed) as above, for the user sender_did.
 * map may be NULL (no mapping at all).  msgid_domain: the right side of
 * an added Message-ID ([A-Za-z0-9.-], 1..253).  random16: 16 bytes for
 * that Message-ID.  now: unix seconds for an added Date.  On success
 * returns 0 and fills *res (the caller frees it with egress_result_free);
 * on failure returns -1, *res holds nothing to free (only the text of
 * res->error) and *error_r says why. */
int egress_prepare(const uint8_t *in, size_t in_len, const char *sender_did,
		   egress_map_fn *map, void *arg, const char *msgid_domain,
		   const uint8_t random16[16], uint64_t now,
		   egress_result *res, const char **error_r)
	__attribute__((warn_unused_result));

/* Free what res holds and zero it; accepts a zeroed result. */
void egress_result_free(egress_result *res);

/* The length of the DID token at s[0..len) (the rule above, without the
 * look at the byte before), or 0 when s does not start with one.  For a
 * whole string (len > 0): egress_did_span(s, len) == len exactly when s
 * is a canonical DID (amp_did_parse accepts it). */
size_t egress_did_span(const char *s, size_t len)
	__attribute__((warn_unused_result));

/* s[0..len) is an address egress accepts as a recipient (above). */
bool egress_addr_ok(const char *s, size_t len)
	__attribute__((warn_unused_result));

#endif
