/*
 * dkim-verify.h — DKIM signature verification (RFC 6376 §6, RFC 8301,
 * RFC 8463), the pure part: bytes in, results out; no I/O, no DNS, no
 * clock, no threads, no logging.  The caller (smtpd) fetches the key
 * records between the two calls:
 *
 *     dkim_verify_prepare(msg, len, &limits, &set, &error)
 *     for each i < set->n with set->sig[i].need_key:
 *         look up the TXT records at set->sig[i].query
 *         dkim_verify_finish(set, i, records, n, &result)
 *     dkim_verify_set_free(&set)
 *
 * prepare finds the DKIM-Signature fields (top first), checks the first
 * DKIM_VERIFY_MAX (or limits.max_sigs) of them and computes everything a
 * key is needed for: the body hash (compared with bh= at once) and the
 * SHA-256 of the header hash input.  The others are counted in
 * set->found but not checked ("not checked").  A signature decided without
 * its key (a syntax error, rsa-sha1, an expired one, a body hash mismatch)
 * has need_key false and its final result already.
 *
 * The DKIM-Signature field (§3.5, §6.1.1), parsed with dkim-tags.h:
 *  - required v=1, a=, b=, bh=, d=, h=, s=; else PERMERROR;
 *  - a= rsa-sha256 or ed25519-sha256; rsa-sha1 is FAIL (RFC 8301 §3.1:
 *    MUST NOT be accepted), anything else PERMERROR;
 *  - c= simple or relaxed, for the header and (after '/') the body;
 *    absent: simple/simple; absent body part: simple;
 *  - d= and s=: dot-separated labels of [A-Za-z0-9_-], 1..63 bytes each,
 *    1..253 bytes in all; the query name s._domainkey.d at most 253;
 *  - h=: 1..DKIM_VERIFY_MAX_H names (field-name bytes), "from" among them;
 *  - i=: [local-part] "@" domain, the domain d= or a subdomain of it
 *    (ASCII case-insensitive); absent: "@" d=;
 *  - l=, t=, x=: decimal, at most 18 digits; x= before t= is PERMERROR;
 *    x= earlier than limits.now (when not 0) is FAIL "signature expired";
 *    l= longer than the canonical body is FAIL;
 *  - q=, if present, lists dns/txt;
 *  - bh= decodes (base64, FWS removed) to 32 bytes; b= to 1..512 bytes
 *    (64 for ed25519-sha256);
 *  - unknown tags are ignored; tag names are case-sensitive.
 * The field must be at most DKIM_VERIFY_SIG_MAX bytes.
 *
 * Canonicalisation: dkim-sign.h's building blocks (simple and relaxed).
 * Line ends: CRLF, a bare LF taken as CRLF (mail-header.h); the message
 * must be the un-dot-stuffed DATA content.  l= limits the canonical body
 * that is hashed; when it does not cover the whole canonical body the
 * signature's result is at best NEUTRAL, flag partial, reason "l= does not
 * cover the whole body" (TESTING.md D3): the appended part is unsigned.
 *
 * Header hash input (§3.7, §5.4.2): for each h= name in order, the
 * bottom-most instance of that name not yet used; an instance that does
 * not exist is hashed as the empty string (so listing a name more often
 * than it appears "over-signs" it); then this DKIM-Signature field with
 * the value of b= (and the blanks around it) removed, canonicalised per
 * c=, without its final CRLF.  At most DKIM_VERIFY_MAX_FIELDS fields and
 * limits.max_header bytes of header section are looked at.
 *
 * The key record (§3.6.1), each TXT record parsed with dkim-tags.h:
 * v= optional, but if present the first tag and "DKIM1"; k= rsa (the
 * default) or ed25519, matching a=; h=, if present, lists sha256; s=, if
 * present, lists "*" or email; t= flags: "s" means the i= domain must be
 * d= itself (else FAIL), "y" (testing) is reported in the result; p=
 * empty: the key is revoked (FAIL); else base64 of a DER
 * SubjectPublicKeyInfo of an RSA key of 1024..8192 bits (smaller: FAIL,
 * RFC 8301 §3.2) or of 32 raw Ed25519 bytes (RFC 8463 §4.2).  Records that
 * do not parse are skipped; none left is PERMERROR.
 *
 * Signature: rsa-sha256 is PKCS#1 v1.5 over the SHA-256 of the header
 * hash input (GnuTLS); ed25519-sha256 is Ed25519 over that 32-byte
 * SHA-256 (libsodium, RFC 8463 §3).
 *
 * Results: PASS only for a valid signature whose l= (if any) covers the
 * whole body, in a message with exactly one From field; with more than one
 * From every signature that would pass is FAIL "multiple From"
 * (TESTING.md D4), with none FAIL "no From field".
 */
#ifndef AMP_DKIM_VERIFY_H
#define AMP_DKIM_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DKIM_VERIFY_MAX 8              /* signatures checked per message */
#define DKIM_VERIFY_MAX_H 64           /* names in h= */
#define DKIM_VERIFY_MAX_FIELDS 2048    /* header fields looked at */
#define DKIM_VERIFY_SIG_MAX (16 * 1024) /* bytes of a DKIM-Signature field */
#define DKIM_VERIFY_MAX_TXT 8          /* TXT records tried per key */
#define DKIM_VERIFY_NAME_MAX 253       /* d=, s=, the query name */
#define DKIM_VERIFY_B_MAX 512          /* bytes of b= (RSA 4096) */
#define DKIM_VERIFY_RSA_MIN_BITS 1024  /* RFC 8301 §3.2 */
#define DKIM_VERIFY_RSA_MAX_BITS 8192  /* bounds the verification cost */

typedef enum dkim_status {
	DKIM_PENDING = 0, /* waiting for its key (need_key) */
	DKIM_PASS,
	DKIM_FAIL,
	DKIM_PERMERROR,
	DKIM_TEMPERROR,
	DKIM_NEUTRAL,
	DKIM_NOT_CHECKED, /* over the limit of signatures checked */
} dkim_status;

typedef enum dkim_verify_alg {
	DKIM_VERIFY_RSA_SHA256,
	DKIM_VERIFY_ED25519_SHA256,
} dkim_verify_alg;

typedef struct dkim_verify_limits {
	size_t max_sigs;   /* 1..DKIM_VERIFY_MAX; 0 means DKIM_VERIFY_MAX */
	size_t max_header; /* bytes of the header section; 0 means
			      DKIM_MAX_HEADER (dkim-sign.h) */
	uint64_t now;      /* Unix time for x=; 0: expiry not checked */
} dkim_verify_limits;

typedef struct dkim_verify_result {
	dkim_status status;
	const char *reason; /* static text, never NULL ("ok" for a pass) */
	bool partial;       /* l= shorter than the canonical body */
	bool testing;       /* the key record says t=y */
	bool multiple_from; /* the message has more than one From field */
	bool crypto_ok;     /* body hash and signature verified (whatever
			       the status says) */
} dkim_verify_result;

typedef struct dkim_verify_sig {
	/* Parsed from the field; empty strings when it did not get that far. */
	char d[DKIM_VERIFY_NAME_MAX + 1];     /* as written */
	char s[DKIM_VERIFY_NAME_MAX + 1];
	char query[DKIM_VERIFY_NAME_MAX + 1]; /* s._domainkey.d */
	char i_domain[DKIM_VERIFY_NAME_MAX + 1]; /* domain of i= (or d=) */
	dkim_verify_alg alg;
	bool need_key;    /* look up query, then dkim_verify_finish */
	dkim_verify_result result;
	/* Private to dkim-verify.c. */
	uint8_t hdr_digest[32];
	uint8_t b[DKIM_VERIFY_B_MAX];
	size_t b_len;
} dkim_verify_sig;

typedef struct dkim_verify_set {
	size_t found;  /* DKIM-Signature fields in the message */
	size_t n;      /* of them checked: min(found, max_sigs) */
	size_t from_count; /* From fields in the message */
	dkim_verify_sig sig[DKIM_VERIFY_MAX];
} dkim_verify_set;

/* Find and check the signatures of msg (borrowed only during the call).
 * *set_r (owned by the caller, dkim_verify_set_free) has set->n entries,
 * top-most signature first.  Returns 0, or -1 with *error_r (and no set)
 * when the header section is over limits->max_header bytes or has more
 * than DKIM_VERIFY_MAX_FIELDS fields: the caller reports dkim=permerror
 * for the message. */
int dkim_verify_prepare(const uint8_t *msg, size_t len,
			const dkim_verify_limits *limits,
			dkim_verify_set **set_r, const char **error_r)
	__attribute__((warn_unused_result));

/* The key lookup for signature i (i < set->n, need_key) is done: txt[k]
 * (len[k] bytes each, k < n, the strings of one TXT record already
 * joined) are the records found at set->sig[i].query; n == 0 means none
 * (NXDOMAIN or no TXT): PERMERROR "no key record"; txt == NULL means the
 * lookup failed (timeout, SERVFAIL): TEMPERROR.  At most
 * DKIM_VERIFY_MAX_TXT records are tried.  Sets set->sig[i].result (and
 * need_key false) and copies it to *result_r.  Calling it for a signature
 * that has no need_key just copies its result. */
void dkim_verify_finish(dkim_verify_set *set, size_t i,
			const uint8_t *const *txt, const size_t *len,
			size_t n, dkim_verify_result *result_r);

/* A building block for other signatures over a header hash input (ARC,
 * arc.h): verify b (b_len bytes, decoded b=) made with alg over digest,
 * the SHA-256 of a header hash input the caller computed, with the
 * records of one key lookup (txt, len, n as for dkim_verify_finish: NULL
 * is TEMPERROR, n == 0 PERMERROR "no key record").  The key record rules
 * are dkim_verify_finish's (k= matching alg, h=, s=, p= empty: FAIL "key
 * revoked", RSA 1024..8192 bits); the message rules (i=, t=s, From) are
 * not applied.  *result_r: PASS with crypto_ok, or why not. */
void dkim_verify_digest(dkim_verify_alg alg, const uint8_t digest[32],
			const uint8_t *b, size_t b_len,
			const uint8_t *const *txt, const size_t *len,
			size_t n, dkim_verify_result *result_r);

/* Frees the set; accepts NULL, sets *set to NULL. */
void dkim_verify_set_free(dkim_verify_set **set);

/* "pass", "fail", "permerror", "temperror", "neutral", "pending",
 * "not-checked". */
const char *dkim_status_name(dkim_status st);

#endif
