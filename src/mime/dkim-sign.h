/*
 * dkim-sign.h — DKIM signatures (RFC 6376) with rsa-sha256 and
 * ed25519-sha256 (RFC 8463), relaxed/relaxed canonicalisation, and DKIM
 * key generation.  Pure: bytes in, results out; no I/O, no logging.  The
 * private key lives behind dkim_key so that signing can later move into its
 * own process (STYLE.md "Security architecture").
 *
 * Line ends: CRLF, and a bare LF taken as CRLF (the header iterator's
 * rule, mail-header.h); callers that send the message should send it with
 * CRLF line ends.
 *
 * What is signed (h=): From, To, Cc, Subject, Date, Message-ID,
 * MIME-Version, Content-Type, Content-Transfer-Encoding, Reply-To,
 * In-Reply-To, References, each only when present and then its
 * bottom-most instance (RFC 6376 §5.4.2); From is listed once more than it
 * appears (over-signing), so a From added later breaks the signature.
 *
 * Refused: a header section over DKIM_MAX_HEADER bytes, a message without
 * From, more than DKIM_MAX_FROM From fields, a domain or selector that is
 * empty, longer than 253 bytes or has a byte outside [A-Za-z0-9._-], RSA
 * keys under 1024 bits (RFC 8301), keys other than RSA and Ed25519.
 */
#ifndef AMP_DKIM_SIGN_H
#define AMP_DKIM_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail-header.h"

#define DKIM_MAX_HEADER (1024 * 1024) /* bytes of the header section */
#define DKIM_MAX_FROM 8               /* From fields in one message */
#define DKIM_BH_SIZE 45               /* base64 SHA-256 and its NUL */

typedef struct dkim_key dkim_key;

typedef enum {
	DKIM_RSA2048,
	DKIM_ED25519,
} dkim_alg;

/* Load a PEM private key (PKCS#8 "PRIVATE KEY", or PKCS#1 "RSA PRIVATE
 * KEY"), RSA or Ed25519.  pem is borrowed; the caller wipes it.  On
 * success *k_r is owned by the caller (dkim_key_free). */
int dkim_key_load_pem(const char *pem, size_t len, dkim_key **k_r,
		      const char **error_r) __attribute__((warn_unused_result));
/* Frees the key (GnuTLS wipes its key material); accepts NULL, sets *k to
 * NULL. */
void dkim_key_free(dkim_key **k);
/* DKIM_RSA2048 or DKIM_ED25519. */
dkim_alg dkim_key_alg(const dkim_key *k) __attribute__((warn_unused_result));

/* A domain or selector dkim_sign accepts: [A-Za-z0-9._-], 1-253 bytes. */
bool dkim_name_ok(const char *s);

/* Sign msg (header section and body) for d=domain, s=selector, t=t.
 * *header_r (malloc'd, owned by the caller) is the whole field
 * "DKIM-Signature: ...\r\n", folded so that lines stay within 78 columns
 * (a very long domain excepted), to be put before the message.  The body is
 * hashed in place, never copied.  Returns 0, or -1 with *error_r. */
int dkim_sign(const dkim_key *k, const char *domain, const char *selector,
	      const uint8_t *msg, size_t len, uint64_t t, char **header_r,
	      const char **error_r) __attribute__((warn_unused_result));

/* Generate a key: *key_pem_r is a PKCS#8 PEM private key (free it with
 * dkim_pem_free, which wipes it), *txt_record_r the DNS TXT record text
 * "v=DKIM1; k=rsa; p=..." (malloc'd). */
int dkim_keygen(dkim_alg alg, char **key_pem_r, char **txt_record_r,
		const char **error_r) __attribute__((warn_unused_result));
/* Wipe and free a PEM string; accepts NULL, sets *pem to NULL. */
void dkim_pem_free(char **pem);

/* ---- Building blocks, exposed for tests and for other signers ---- */

typedef void dkim_emit_fn(void *ctx, const uint8_t *p, size_t n);

/* Relaxed header canonicalisation of one field (RFC 6376 §3.4.2): name in
 * lower case, line ends removed, WSP runs to one SP, WSP at the ends of
 * the value and around the colon removed; then CRLF if crlf. */
void dkim_canon_header_relaxed(const uint8_t *msg, const mail_field *f,
			       bool crlf, dkim_emit_fn *emit, void *ctx);
/* Relaxed body canonicalisation (RFC 6376 §3.4.4): WSP runs to one SP,
 * WSP at line ends removed, empty lines at the end removed, a CRLF added
 * to a non-empty body that lacks one; an empty body stays empty. */
void dkim_canon_body_relaxed(const uint8_t *body, size_t len,
			     dkim_emit_fn *emit, void *ctx);

/* Simple header canonicalisation of one field (RFC 6376 §3.4.1): the
 * field as it is, but every line end written as CRLF (a bare LF, like
 * mail-header.h, is one) and the field's final line end removed; then
 * CRLF if crlf. */
void dkim_canon_header_simple(const uint8_t *msg, const mail_field *f,
			      bool crlf, dkim_emit_fn *emit, void *ctx);
/* Simple body canonicalisation (RFC 6376 §3.4.3): the body with every
 * line end written as CRLF (a bare LF is one), empty lines at the end
 * removed, a CRLF added to a last line that lacks one; an empty body
 * becomes one CRLF. */
void dkim_canon_body_simple(const uint8_t *body, size_t len,
			    dkim_emit_fn *emit, void *ctx);

/* bh= of msg's body: base64 of SHA-256 of its relaxed canonical form. */
int dkim_body_hash(const uint8_t *msg, size_t len, char bh_r[DKIM_BH_SIZE],
		   const char **error_r) __attribute__((warn_unused_result));

/* The b= value for msg with a caller-chosen h= list (names, in h= order)
 * and DKIM-Signature field text sig_field ("DKIM-Signature: v=1; ... b=",
 * folded or not, ending at "b=").  *b_r: malloc'd base64. */
int dkim_sign_raw(const dkim_key *k, const uint8_t *msg, size_t len,
		  const char *const *h, size_t h_count, const char *sig_field,
		  char **b_r, const char **error_r)
	__attribute__((warn_unused_result));

/* Sign digest, the SHA-256 of a header hash input the caller computed
 * (ARC, arc.h), with k: rsa-sha256 (PKCS#1 v1.5) or ed25519-sha256 (RFC
 * 8463: Ed25519 over the 32 bytes).  *b_r: malloc'd base64. */
int dkim_sign_digest(const dkim_key *k, const uint8_t digest[32],
		     char **b_r, const char **error_r)
	__attribute__((warn_unused_result));

#endif
