/*
 * didsig.h — the AMP-DID-Signature header field (issue 7, "Authenticated
 * routing"; PROTOCOL.md §12 is the normative text): the gateway node
 * that sends an AMP user's message as legacy mail signs it with its own
 * node identity (Ed25519) and names the user's DID as the sender it
 * vouches for; a receiving AfterSMTP node resolves the signing node's DID
 * to its Ed25519 public key and verifies.  Pure: bytes in, results out; no
 * I/O, no DNS, no registry, no clock, no logging.  The caller resolves the
 * node DID between the two verification calls:
 *
 *     didsig_verify_prepare(msg, len, &set, &error)
 *     for each i < set->n with set->sig[i].need_key:
 *         resolve set->sig[i].node to its Ed25519 signing key pk
 *         didsig_verify_finish(set, i, pk or NULL, now, &result)
 *     didsig_verify_verdict(set, &index)
 *     didsig_set_free(&set)
 *
 * The field (a tag list, dkim-tags.h; tag names case-sensitive, unknown
 * tags ignored):
 *     AMP-DID-Signature: v=1; a=ed25519-sha256; d=SENDER-DID;
 *         n=NODE-DID; t=UNIXTIME; h=NAME:NAME:...; bh=BASE64; b=BASE64
 *  - d= the sending user's DID, n= the signing node's DID: both canonical
 *    did:aftersmtp:DOMAIN:LOCAL (PROTOCOL.md §3.1), with the same DOMAIN;
 *  - t= decimal, 1..18 digits;
 *  - h= 1..DIDSIG_MAX_H colon-separated field names, "from" among them;
 *  - bh= base64 (FWS ignored) of the SHA-256 of the relaxed-canonicalised
 *    body (RFC 6376 §3.4.4: the value DKIM c=x/relaxed gives), 32 bytes;
 *  - b= base64 (FWS ignored) of the 64-byte Ed25519 signature.
 * Signed: the 32-byte SHA-256 of
 *     "AMPv1-didsig" NUL
 *     for each h= name in order: the bottom-most instance of that name not
 *         yet used, relaxed (RFC 6376 §3.4.2) with its CRLF; a name
 *         listed more often than present adds nothing (over-signing)
 *     this field relaxed, with the value of b= removed (the bytes between
 *         "b=" and the end of its value), without a final CRLF
 * and the signature is Ed25519 (libsodium crypto_sign_detached) over
 * those 32 bytes.
 *
 * Results of one field: PASS only when the syntax is right, the domains
 * match, bh= matches, the signature verifies under the caller's key for
 * n=, the message has exactly one From field and t= is not more than
 * DIDSIG_FUTURE_MAX seconds after the caller's now (0: not checked).
 * FAIL (with a reason) when one of these does not hold; PERMERROR for
 * syntax (a missing or duplicate tag, an unknown v= or a=, bad base64, a
 * DID that is not canonical, a bad t= or h=, a field over
 * DIDSIG_FIELD_MAX bytes); TEMPERROR when the caller could not resolve
 * n= (pk NULL).  There is no expiry: t= only says when it was signed.
 *
 * Limits: a header section of at most DKIM_MAX_HEADER bytes (dkim-sign.h)
 * and DIDSIG_MAX_FIELDS fields (else prepare refuses the message); the
 * first DIDSIG_VERIFY_MAX AMP-DID-Signature fields (top first) are
 * checked, the others only counted; a field of at most DIDSIG_FIELD_MAX
 * bytes; h= of at most DIDSIG_MAX_H names.  Cost: per checked field one
 * pass over the body and at most DIDSIG_MAX_H scans of the field table.
 *
 * Line ends: CRLF, or a bare LF taken as CRLF (mail-header.h); the
 * message is the un-dot-stuffed DATA content.
 */
#ifndef AMP_DIDSIG_H
#define AMP_DIDSIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIDSIG_VERIFY_MAX 4           /* fields checked per message */
#define DIDSIG_MAX_H 64               /* names in h= */
#define DIDSIG_MAX_FIELDS 2048        /* header fields looked at */
#define DIDSIG_FIELD_MAX 4096         /* bytes of one AMP-DID-Signature */
#define DIDSIG_DID_MAX 332            /* PROTOCOL.md §3.1 */
#define DIDSIG_FUTURE_MAX 300         /* seconds t= may be ahead of now */
#define DIDSIG_FIELD_NAME "AMP-DID-Signature"

typedef enum didsig_status {
	DIDSIG_PENDING = 0, /* waiting for the node's key (need_key) */
	DIDSIG_PASS,
	DIDSIG_FAIL,
	DIDSIG_PERMERROR,
	DIDSIG_TEMPERROR,
	DIDSIG_NONE, /* only from didsig_verify_verdict: no field */
} didsig_status;

typedef struct didsig_result {
	didsig_status status;
	const char *reason; /* static text, never NULL ("ok" for a pass) */
	bool crypto_ok;     /* body hash and signature verified (whatever
			       the status says) */
	bool multiple_from; /* the message has more than one From field */
} didsig_result;

typedef struct didsig_sig {
	/* Parsed from the field; empty strings when it did not get that
	 * far or the value is not a canonical DID. */
	char sender[DIDSIG_DID_MAX + 1]; /* d= */
	char node[DIDSIG_DID_MAX + 1];   /* n=: the DID to resolve */
	uint64_t t;                      /* t= (0 until parsed) */
	bool need_key; /* resolve node, then didsig_verify_finish */
	didsig_result result;
	/* Private to didsig.c. */
	uint8_t hdr_digest[32];
	uint8_t b[64];
} didsig_sig;

typedef struct didsig_set {
	size_t found;      /* AMP-DID-Signature fields in the message */
	size_t n;          /* of them checked: min(found, DIDSIG_VERIFY_MAX) */
	size_t from_count; /* From fields in the message */
	didsig_sig sig[DIDSIG_VERIFY_MAX];
} didsig_set;

/* s[0..n) is a canonical DID (PROTOCOL.md §3.1: lower case, labels of
 * [a-z0-9-] not starting or ending with '-', a local part of
 * [a-z0-9._-] starting and ending with [a-z0-9], no ".."). */
bool didsig_did_ok(const char *s, size_t n) __attribute__((warn_unused_result));

/* Sign msg (header section and body, borrowed during the call) as node
 * node_did vouching for sender_did at time t.  sign_sk is the node's
 * Ed25519 secret key in libsodium form (seed || pk), borrowed.  h= lists
 * From, To, Cc, Subject, Date, Message-ID, Reply-To, MIME-Version and
 * Content-Type each once more than present (over-signing).  *field_r
 * (malloc'd, owned by the caller) is the whole field
 * "AMP-DID-Signature: ...\r\n", folded so that lines stay within 78
 * columns (a long DID excepted), to be put before the message.  Refused
 * (-1, *error_r static): a DID not canonical, the two DIDs of different
 * domains, a message without exactly one From, a header section over
 * DKIM_MAX_HEADER bytes or DIDSIG_MAX_FIELDS fields, h= over
 * DIDSIG_MAX_H names, a field over DIDSIG_FIELD_MAX bytes. */
int didsig_sign(const uint8_t sign_sk[64], const char *sender_did,
		const char *node_did, const uint8_t *msg, size_t len,
		uint64_t t, char **field_r, const char **error_r)
	__attribute__((warn_unused_result));

/* Find and check the AMP-DID-Signature fields of msg (borrowed only
 * during the call).  *set_r (owned by the caller, didsig_set_free) has
 * set->n entries, top-most first; each either waits for its key
 * (need_key, node set) or has its final result (syntax, domains, body
 * hash).  Returns 0, or -1 with *error_r (static, and no set) when the
 * header section is over DKIM_MAX_HEADER bytes or has more than
 * DIDSIG_MAX_FIELDS fields: the caller reports permerror. */
int didsig_verify_prepare(const uint8_t *msg, size_t len, didsig_set **set_r,
			  const char **error_r)
	__attribute__((warn_unused_result));

/* Finish field i (i < set->n) with the Ed25519 public key the registry
 * gives for set->sig[i].node, or pk NULL when it could not be resolved
 * (TEMPERROR).  now: Unix time for the t= check (0: not checked).  Sets
 * set->sig[i].result (need_key false) and copies it to *result_r; for a
 * field without need_key it only copies the result. */
void didsig_verify_finish(didsig_set *set, size_t i, const uint8_t *pk,
			  uint64_t now, didsig_result *result_r);

/* The message's result once every field is finished: NONE when set is
 * NULL or found 0; else the first PASS; else the first TEMPERROR (a
 * field still PENDING counts as one); else the first FAIL; else
 * PERMERROR.  *index_r (may be NULL) is that field's index (0 for
 * NONE). */
didsig_status didsig_verify_verdict(const didsig_set *set, size_t *index_r)
	__attribute__((warn_unused_result));

/* Frees the set; accepts NULL, sets *set to NULL. */
void didsig_set_free(didsig_set **set);

/* "pass", "fail", "permerror", "temperror", "none", "pending". */
const char *didsig_status_name(didsig_status st);

#endif
