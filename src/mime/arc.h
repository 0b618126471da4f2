/*
 * arc.h — Authenticated Received Chain (RFC 8617): validating the chain
 * of a message (cv) and sealing it (a new ARC set).  Pure: bytes in,
 * results out; no I/O, no DNS, no clock, no logging.  The shape is
 * dkim-verify.h's: the caller fetches the key records between the calls.
 *
 *     arc_verify_prepare(msg, len, &limits, &set, &error)
 *     for each q < set->nq: look up the TXT records at set->query[q]
 *     arc_verify_finish(set, answers, &result)   (answers[q] for query q)
 *     ... use result (its strings live in the set) ...
 *     arc_verify_set_free(&set)
 *
 * prepare collects the ARC sets: ARC-Authentication-Results (AAR),
 * ARC-Message-Signature (AMS) and ARC-Seal (AS), grouped by i=.  The chain
 * FAILS without any key (nq == 0, the verdict already made) when (RFC 8617
 * §5.2): an ARC field's i= is not 1..ARC_MAX_INSTANCES ("more than 50 ARC
 * sets" when it is higher; an AAR's i= must come first, an AMS's or AS's
 * is its tag-list's i= tag, wherever it is); there are more than 3 * ARC_MAX_INSTANCES ARC
 * fields; an instance 1..N (N the highest i=) lacks one of the three
 * ("instance 2 missing", "instance 2 has no ARC-Seal") or has one twice
 * ("instance 2 has two ARC-Seal fields"); some AS says cv=fail ("ARC-Seal
 * of instance 2 says cv=fail": a failed chain stays failed); AS 1 does not
 * say cv=none or a later one cv=pass; an AS has h=; an AS or the most
 * recent AMS lacks a required tag (AS: i a b cv d s; AMS: i a b bh d h s),
 * has a= other than rsa-sha256 or ed25519-sha256, a bad d=, s=, b= or
 * bh=, or (AMS) an h= that lists ARC-Seal or does not list From; the
 * most recent AMS's body hash does not match ("AMS of instance 3: body
 * hash mismatch"); an ARC field is over DKIM_VERIFY_SIG_MAX bytes.
 * Otherwise it computes the SHA-256 of the header hash inputs: of AMS N
 * as DKIM does (dkim-verify.h: its c=, default simple/simple, h= bottom-
 * most unused instances, the AMS with b= emptied; l= must cover the whole
 * body), and of each AS i (§5.1.1): AAR 1, AMS 1, AS 1, ..., AAR i, AMS i
 * relaxed, then AS i with b= emptied and no final CRLF; and lists the key
 * queries "s._domainkey.d" of AMS N and AS 1..N, case-insensitively
 * deduplicated (at most ARC_MAX_INSTANCES + 1).  Only the most recent
 * AMS is verified (RFC 8617 §5.2 step 4); older ones may have been broken
 * by later hops, which their seals vouch for.
 *
 * finish verifies AMS N, then AS N .. 1 (dkim_verify_digest: rsa-sha256
 * with a 1024..8192-bit key, or ed25519-sha256; a revoked, absent or bad
 * key is a failure) and gives:
 *   ARC_CV_NONE      no ARC field at all (instances 0);
 *   ARC_CV_PASS      every check passed; sealer[i] and aar[i] filled;
 *   ARC_CV_FAIL      the chain is broken (reason says where);
 *   ARC_CV_TEMPERROR no signature failed, but a key lookup failed
 *                    (answer txt NULL): our DNS, not the chain; try later
 *                    or treat as no verdict, never as fail.
 * A definite failure wins over a temperror.
 *
 * Sealing (arc_seal, RFC 8617 §4.1, §5.1): the caller validates first and
 * passes the cv it found (pass, fail, or none when there is no chain).
 * The new set has i = N + 1 and is returned as the text to PREPEND:
 *     ARC-Seal: i=..; a=..; cv=..; d=..; s=..; t=..; b=..
 *     ARC-Message-Signature: i=..; a=..; c=relaxed/relaxed; d=..; s=..;
 *       t=..; h=..; bh=..; b=..
 *     ARC-Authentication-Results: i=..; PAYLOAD
 * folded within 78 columns (a very long domain or payload word excepted).
 * The AMS signs (relaxed/relaxed) From (once more than it appears), To,
 * Cc, Subject, Date, Message-ID, Reply-To, In-Reply-To, References,
 * MIME-Version, Content-Type, Content-Transfer-Encoding, each when present,
 * and every DKIM-Signature (up to ARC_SEAL_MAX_DKIM of them); never an
 * ARC field (§4.1.2: no ARC-Seal; AAR and AMS are covered by the seal).
 * The AS covers sets 1..N+1 (cv=fail: only the new set, like dkimpy,
 * since no verifier looks past a cv=fail).  Refused: N == 50; cv=none
 * with a chain present, cv=pass without one; cv other than fail when the
 * chain's structure is broken (a missing, duplicate or out-of-range
 * instance, a cv=fail seal); a payload that is empty, over ARC_AAR_MAX
 * bytes or has a control byte; a message without From; a bad domain or
 * selector (dkim_name_ok).  RFC 8617 defines only rsa-sha256; an Ed25519
 * key gives a=ed25519-sha256, which our verifier accepts and dkimpy and
 * Mail::DKIM do not.
 *
 * Line ends: CRLF, a bare LF taken as CRLF (mail-header.h); the message
 * is the un-dot-stuffed DATA content.
 */
#ifndef AMP_ARC_H
#define AMP_ARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dkim-sign.h"
#include "dkim-verify.h"

#define ARC_MAX_INSTANCES 50 /* RFC 8617 §4.2.1 */
#define ARC_MAX_QUERIES (ARC_MAX_INSTANCES + 1)
#define ARC_AAR_MAX 4096     /* bytes of a payload we seal */
#define ARC_SEAL_MAX_DKIM 8  /* DKIM-Signature fields the AMS signs */
#define ARC_REASON_MAX 96

typedef enum arc_cv {
	ARC_CV_NONE = 0,
	ARC_CV_PASS,
	ARC_CV_FAIL,
	ARC_CV_TEMPERROR,
} arc_cv;

typedef struct arc_verify_limits {
	size_t max_header; /* bytes of the header section; 0 means
			      DKIM_MAX_HEADER */
} arc_verify_limits;

/* The answer to one key query: as dkim_verify_finish's txt, len, n (txt
 * NULL: the lookup failed; n == 0: no record). */
typedef struct arc_key_answer {
	const uint8_t *const *txt;
	const size_t *len;
	size_t n;
} arc_key_answer;

typedef struct arc_verify_result {
	arc_cv cv;
	const char *reason;  /* never NULL; "ok" for a pass; lives in the set */
	size_t instances;    /* N, the highest valid i= (0: no chain) */
	/* For a pass, index 1..instances (index 0 unused): the d= of the
	 * ARC-Seal of that instance (for a trusted-sealers list) and that
	 * instance's AAR value unfolded, "i=K; " included (what that hop
	 * found).  Strings live in the set. */
	const char *sealer[ARC_MAX_INSTANCES + 1];
	const char *aar[ARC_MAX_INSTANCES + 1];
} arc_verify_result;

typedef struct arc_inst arc_inst; /* private to arc.c */

typedef struct arc_verify_set {
	size_t instances;   /* N (0: no ARC field) */
	bool decided;       /* the verdict needs no key (cv, reason below) */
	arc_cv cv;
	/* Key queries to answer, in this order (nq == 0 when decided). */
	size_t nq;
	char query[ARC_MAX_QUERIES][DKIM_VERIFY_NAME_MAX + 1];
	/* Private to arc.c. */
	char reason[ARC_REASON_MAX];
	arc_inst *inst; /* [ARC_MAX_INSTANCES + 1] */
	char **aar;     /* [ARC_MAX_INSTANCES + 1], malloc'd strings */
} arc_verify_set;

/* Find and check the ARC sets of msg (borrowed during the call only).
 * *set_r (owned by the caller, arc_verify_set_free).  Returns 0, or -1
 * with *error_r (and no set) when the header section is over
 * limits->max_header bytes or has more than DKIM_VERIFY_MAX_FIELDS
 * fields: treat as cv=fail. */
int arc_verify_prepare(const uint8_t *msg, size_t len,
		       const arc_verify_limits *limits, arc_verify_set **set_r,
		       const char **error_r)
	__attribute__((warn_unused_result));

/* The lookups are done: answers[q] for set->query[q], q < set->nq
 * (answers may be NULL when set->nq == 0).  Fills *result_r, whose
 * strings point into the set.  May be called again (same verdict). */
void arc_verify_finish(arc_verify_set *set, const arc_key_answer *answers,
		       arc_verify_result *result_r);

/* Frees the set; accepts NULL, sets *set to NULL. */
void arc_verify_set_free(arc_verify_set **set);

/* "none", "pass", "fail", "temperror". */
const char *arc_cv_name(arc_cv cv);

/* Seal msg for d=domain, s=selector, t=t, with cv (ARC_CV_NONE, _PASS or
 * _FAIL, as the caller's validation found) and authres_payload, the value
 * of our Authentication-Results field: RFC 8601's authres-payload,
 * "authserv-id; method=result ...; ..." (authserv-id included; no field
 * name, no line end); the AAR is "i=K; " followed by it.
 * *fields_r (malloc'd, the caller frees it) is the three fields to put
 * before the message, ending in CRLF.  Returns 0, or -1 with *error_r. */
int arc_seal(const uint8_t *msg, size_t len, const dkim_key *key,
	     const char *domain, const char *selector,
	     const char *authres_payload, arc_cv cv, uint64_t t,
	     char **fields_r, const char **error_r)
	__attribute__((warn_unused_result));

#endif
