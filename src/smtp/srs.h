/*
 * srs.h — the Sender Rewriting Scheme for forwarded mail, the pure part:
 * the envelope sender of a message we forward is rewritten into our own
 * domain so that SPF passes at the next hop, and a bounce to the rewritten
 * address is turned back into the original sender.  No I/O, no clock (the
 * caller gives the time), no allocation, no logging.
 *
 * Forms (the common scheme of Shevek's libsrs2, with our own hash):
 *     SRS0=HHHH=TT=domain=local@OURS     a sender local@domain
 *     SRS1=HHHH=host==HHH=TT=d=l@OURS    a sender SRS0=HHH=TT=d=l@host
 *                                        (or an SRS1 of host) re-forwarded
 * HHHH: the first hash_len (4..16, default 6) characters of the base32
 * (RFC 4648 alphabet, upper case) of crypto_generichash keyed with the
 * 32-byte secret, over the other fields lower-cased and length-prefixed
 * (SRS0: TT, domain, local; SRS1: host, the rest); compared in constant
 * time, case-insensitively (mail systems may change the case of a local
 * part).  TT: the day (unix time / 86400) modulo 1024 in two base32
 * characters; srs_reverse of an SRS0 address refuses one older than
 * max_age days (default 21; a stamp in the future counts as very old).
 * The separator after SRS0/SRS1 may be '=', '+' or '-' on input; '=' is
 * written.  SRS1 addresses carry no time stamp (the SRS0 inside has one,
 * checked by the host that made it).
 *
 * Addresses are "local@domain" without angle brackets, split at the last
 * '@'.  Accepted local parts: 1..64 bytes of RFC 5322 atext, '.' and valid
 * UTF-8 (no quoted strings); domains: 1..253 bytes of letters, digits, '-',
 * '.', '_' and valid UTF-8, no empty label (no '=' nor address literals).
 * Refused, with a reason: the null sender, anything else, a result whose
 * local part would be longer than SRS_LOCAL_MAX (RFC 5321 §4.5.3.1.1), a
 * bounce address not at our domain, a bad hash, an expired stamp.
 */
#ifndef AMP_SRS_H
#define AMP_SRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRS_KEY_LEN 32u
#define SRS_LOCAL_MAX 64u          /* octets of a local part */
#define SRS_DOMAIN_MAX 253u
#define SRS_ADDR_MAX (SRS_LOCAL_MAX + 1u + SRS_DOMAIN_MAX)
#define SRS_HASH_MIN 4u
#define SRS_HASH_MAX 16u
#define SRS_HASH_DEFAULT 6u        /* 30 bits */
#define SRS_MAX_AGE_DEFAULT 21u    /* days */
#define SRS_DAYS 1024u             /* TT wraps around */

typedef struct srs_config {
	uint8_t key[SRS_KEY_LEN];  /* secret: the caller wipes it
				      (sodium_memzero) when done */
	const char *domain;        /* ours: rewritten addresses end @domain */
	unsigned hash_len;         /* SRS_HASH_MIN..SRS_HASH_MAX; 0: default */
	unsigned max_age;          /* days, 1..SRS_DAYS - 1; 0: default */
} srs_config;

/* The SRS secret of a node, derived from a secret it already keeps (its
 * identity's signing key): BLAKE2b-256 keyed with `secret`, over the text
 * "AMPv1-srs-key".  Every part of a node that makes or reverses SRS
 * addresses (smtpd, outbound DSNs) derives the same key, and a restart
 * keeps it.  The caller wipes key_r when done. */
void srs_key_derive(const uint8_t *secret, size_t secret_len,
		    uint8_t key_r[SRS_KEY_LEN]);

/* Rewrite the envelope sender of a message we forward.  now: unix
 * seconds.  out_r: NUL-terminated.  A sender already at our domain is
 * copied unchanged; an SRS0/SRS1 address of another domain becomes SRS1;
 * any other becomes SRS0 (an SRS-looking local part that does not parse
 * as one is treated as any other).  0, or -1 with *error_r and out_r "". */
int srs_forward(const srs_config *c, const char *sender, uint64_t now,
		char out_r[SRS_ADDR_MAX + 1], const char **error_r)
	__attribute__((warn_unused_result));

/* Turn a bounce recipient at our domain back: SRS0 (hash and age checked)
 * to local@domain, SRS1 (hash checked) to SRS0=...@host.  0, or -1 with
 * *error_r and out_r "". */
int srs_reverse(const srs_config *c, const char *addr, uint64_t now,
		char out_r[SRS_ADDR_MAX + 1], const char **error_r)
	__attribute__((warn_unused_result));

/* Whether the local part of addr begins with SRS0 or SRS1 and a
 * separator (case-insensitive): what srs_reverse is for. */
bool srs_is_srs(const char *addr) __attribute__((warn_unused_result));

#endif
