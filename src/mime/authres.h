/*
 * authres.h — the Authentication-Results header field (RFC 8601), the
 * pure part: our own field built from the verifiers' results, and the
 * authserv-id of an existing field read so that the caller can delete
 * the fields that claim our id (RFC 8601 §5; TESTING.md S20), also for
 * ARC-Authentication-Results (RFC 8617 §4.1.1: "i=N;" first).  No I/O,
 * no allocation, no logging.
 *
 * Built (authres_build):
 *     Authentication-Results: ID; spf=R smtp.mailfrom=V;
 *         dkim=R header.d=V header.i=V header.s=V header.a=V header.b=V;
 *         dmarc=R header.from=V; arc=R;
 *         amp-did=R header.d="SENDER-DID"
 * (one dkim resinfo per signature, each part only when given, "ID; none"
 * when no method is given).  amp-did is an extension method (RFC 8601
 * §2.7.6) for the AMP-DID-Signature field (docs/PROTOCOL.md §12): its
 * header.d is the d= (the sending user's DID) of the field the result is
 * about.  (Only one quoted value per resinfo, and last: python3-authres
 * 1.2 reads a quoted-string only when ';' or the end follows it.)  The
 * field is folded with CRLF SP so that no line is longer
 * than 78 characters unless a single item is, and ending in CRLF.  Result
 * keywords are checked against RFC 8601 §2.7 / RFC 8617 §4.1.3 (a bad one
 * is refused: a caller's bug).  The authserv-id must be a token of 1..255
 * bytes (RFC 2045: printable ASCII but tspecials), e.g. a host name.
 * Values are made safe: CR, LF, other controls, DEL and bytes that are not
 * valid UTF-8 become '?'; at most AUTHRES_VALUE_MAX bytes are kept (cut at
 * a character boundary); header.b keeps the first AUTHRES_B_LEN characters
 * of b= with its blanks and line ends removed (RFC 6008).  A value is
 * written as it is when it is a token or local-part@domain with a
 * dot-atom local-part and a token domain (RFC 8601 pvalue), otherwise as a
 * quoted-string with '"' and '\' escaped.
 *
 * Read (authres_parse_id, authres_claims_id): the field's value, folded or
 * not (CRLF or LF followed by WSP), a final line end allowed:
 *     [CFWS] authserv-id [CFWS authres-version] [CFWS] (";" ... / "none")
 *     ARC:  [CFWS] "i" [CFWS] "=" [CFWS] 1*2DIGIT [CFWS] ";" and the above
 * authserv-id = token / quoted-string (quoted-pairs resolved, folding
 * removed, 8-bit allowed inside quotes: RFC 6532), 1..AUTHRES_ID_MAX bytes;
 * comments nest up to AUTHRES_COMMENT_DEPTH.  Only the head is checked:
 * what follows the ';' is not parsed.  Refused, with a reason: a value over
 * AUTHRES_PARSE_MAX bytes, NUL, a bare CR or LF, an unclosed comment or
 * quoted string, a missing or too long id, an id not followed by a
 * version, ';' or "none", an ARC instance outside 1..50.
 */
#ifndef AMP_AUTHRES_H
#define AMP_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail-header.h"

#define AUTHRES_ID_MAX 255u          /* bytes of an authserv-id */
#define AUTHRES_VALUE_MAX 320u       /* bytes of one property value kept */
#define AUTHRES_B_LEN 8u             /* characters of header.b */
#define AUTHRES_DKIM_MAX 16u         /* dkim resinfos in our field */
#define AUTHRES_FIELD_MAX 8192u      /* our field fits in this */
#define AUTHRES_PARSE_MAX 65536u     /* bytes of a value read */
#define AUTHRES_COMMENT_DEPTH 16u    /* nested comments */
#define AUTHRES_ARC_I_MAX 50u        /* RFC 8617 §4.2.1 */

typedef struct authres_dkim {
	const char *result;   /* none pass fail policy neutral temperror
				 permerror */
	const char *d;        /* header.d; NULL: left out (so are the rest) */
	const char *i;        /* header.i */
	const char *s;        /* header.s */
	const char *a;        /* header.a, e.g. "rsa-sha256" */
	const char *b;        /* the signature's b= (first 8 chars used) */
} authres_dkim;

typedef struct authres_results {
	const char *spf;          /* none neutral pass fail softfail
				     temperror permerror; NULL: no spf */
	const char *spf_mailfrom; /* smtp.mailfrom */
	const char *spf_helo;     /* smtp.helo (when the sender was null) */
	const authres_dkim *dkim; /* n_dkim resinfos, at most DKIM_MAX */
	size_t n_dkim;
	const char *dmarc;        /* none pass fail temperror permerror */
	const char *dmarc_from;   /* header.from */
	const char *arc;          /* none pass fail; NULL: no arc */
	const char *amp_did;      /* AMP-DID-Signature: none pass fail
				     temperror permerror; NULL: left out */
	const char *amp_did_d;    /* header.d: the sender DID (d=) */
} authres_results;

/* Build our field into out[0..cap): "Authentication-Results: ...\r\n",
 * NUL-terminated, *len_r its length without the NUL.  0, or -1 with
 * *error_r (a bad id or result keyword, more than AUTHRES_DKIM_MAX dkim
 * results, or cap too small: AUTHRES_FIELD_MAX is always enough). */
int authres_build(const char *authserv_id, const authres_results *r,
		  char *out, size_t cap, size_t *len_r, const char **error_r)
	__attribute__((warn_unused_result));

/* Read the authserv-id at the head of a field value (the bytes after the
 * colon).  arc: an ARC-Authentication-Results value (instance first, in
 * *instance_r; 0 otherwise).  *version_r: the authres-version, 1 when
 * absent (RFC 8601 §2.2: a field of another version is to be ignored,
 * which is the caller's choice).  0 and id_r (NUL-terminated; it may
 * contain 8-bit bytes, never NUL), or -1 with *error_r and id_r "". */
int authres_parse_id(const uint8_t *value, size_t len, bool arc,
		     char id_r[AUTHRES_ID_MAX + 1], unsigned *instance_r,
		     unsigned *version_r, const char **error_r)
	__attribute__((warn_unused_result));

/* Whether two authserv-ids are the same: ASCII case-insensitive, one
 * trailing dot ignored on either. */
bool authres_id_equal(const char *a, const char *b)
	__attribute__((warn_unused_result));

/* Whether the field value claims our_id: its authserv-id reads (even if
 * what follows it is malformed) and equals our_id. */
bool authres_claims_id(const uint8_t *value, size_t len, bool arc,
		       const char *our_id) __attribute__((warn_unused_result));

/* The Authentication-Results fields of a message's header section (read
 * with mail-header.h) that claim our_id, in order, into found_r[0..cap);
 * with drop_unreadable, also those whose authserv-id cannot be read.
 * Returns the number of such fields (which may exceed cap: then only the
 * first cap are stored).  ARC-Authentication-Results fields are never
 * listed (they belong to ARC sets). */
size_t authres_scan(const uint8_t *msg, size_t len, const char *our_id,
		    bool drop_unreadable, mail_field *found_r, size_t cap)
	__attribute__((warn_unused_result));

#endif
