/*
 * mailauth.h — the authentication checks of a message taken in over SMTP
 * (issue 7): SPF (RFC 7208), DKIM (RFC 6376, RFC 8463), ARC chain
 * validation (RFC 8617), DMARC (RFC 7489) and the AMP-DID-Signature
 * field (docs/PROTOCOL.md §12, "authenticated routing"), and the one
 * Authentication-Results field (RFC 8601) that records them.  The thin
 * driver around the pure parts: src/smtp/spf.c, src/mime/dkim-verify.c,
 * src/mime/arc.c, src/mime/dmarc.c, src/mime/didsig.c,
 * src/mime/authres.c.
 *
 * One check runs on the loop:
 *   - SPF at once: the evaluator's queries one after the other (TXT, A,
 *     AAAA, MX, PTR through src/dns), for the MAIL FROM domain, or the
 *     HELO name when the reverse path is null;
 *   - on a worker thread: the DKIM signatures found and their body and
 *     header hashes (dkim_verify_prepare: the CPU part, proportional to
 *     the message), the ARC sets and their hashes (arc_verify_prepare),
 *     the AMP-DID-Signature fields and their hashes
 *     (didsig_verify_prepare), and the From fields DMARC needs;
 *   - then on the loop: every DKIM signature's key record (TXT
 *     s._domainkey.d, all at once), each checked when it arrives
 *     (dkim_verify_finish), every ARC key (at most 51, deduplicated),
 *     checked together once all have answered (arc_verify_finish), and
 *     DMARC policy discovery (_dmarc.FROM, then _dmarc.ORG);
 *   - at the same time, on another worker: the signing node DID (n=) of
 *     every AMP-DID-Signature field that needs its key, one after the
 *     other through settings.did_resolve (it may block: it asks the
 *     DID's home node); then on the loop didsig_verify_finish;
 *   - once everything has answered, the DMARC verdict and the field.
 * A check that has not finished after its deadline (settings.timeout_ms)
 * ends at once: whatever has not answered counts as a DNS temporary
 * failure (temperror), never as a pass; so does a DID signature whose
 * node has not been resolved (a resolver that answers later is ignored).
 *
 * The callback runs exactly once per started check, on the loop, always
 * after mailauth_start has returned, unless the check is cancelled.
 * mailauth_stop (the node is stopping) ends every check at once with what
 * is known, as the deadline would.
 *
 * Not thread-safe: every function is called on the loop's thread.
 */
#ifndef AMP_MAILAUTH_H
#define AMP_MAILAUTH_H

#include "arc.h"
#include "didsig.h"
#include "dkim-verify.h"
#include "dmarc.h"
#include "dns.h"
#include "spf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct mailauth mailauth;
typedef struct mailauth_check mailauth_check;

#define MAILAUTH_TIMEOUT_DEFAULT_MS 30000u
#define MAILAUTH_DID_REASON_MAX 127u

/* The Ed25519 signing key of node_did, the n= of an AMP-DID-Signature
 * (a canonical DID).  Called on a uv worker thread, one call at a time
 * per check but several checks at once (it must be thread-safe); it may
 * block (a lookup at the DID's home node) but should give up within the
 * check's deadline, after which its answer is ignored.  Returns
 *    1  pk_r is the key of a node of n='s domain;
 *    0  definitely no key: n= is not a node or gateway DID of its domain,
 *       or its home node says it does not exist (the field fails);
 *   -1  not now: unreachable, a store error, no lookup possible
 *       (temperror, never a pass);
 * with *why_r (static text) for 0 and -1. */
typedef int mailauth_did_resolve(void *arg, const char *node_did,
				 uint8_t pk_r[32], const char **why_r);

typedef struct mailauth_settings {
	const char *authserv_id;  /* our name in Authentication-Results */
	dns_settings dns;
	bool spf, dkim, dmarc, arc; /* which checks run */
	bool did;                 /* AMP-DID-Signature fields verified */
	mailauth_did_resolve *did_resolve; /* NULL: every node unresolved
				     (temperror) */
	void *did_arg;            /* for did_resolve; must outlive every
				     check's worker (see mailauth_free) */
	unsigned timeout_ms;      /* a whole check; 0: the default */
} mailauth_settings;

/* 0, or -1 with a message in err (the DNS resolver did not start, a bad
 * authserv-id). */
int mailauth_new(uv_loop_t *loop, const mailauth_settings *s, mailauth **ma_r,
		 char *err, size_t err_size) __attribute__((warn_unused_result));
/* Ends every check at once (callbacks run, as by the deadline). */
void mailauth_stop(mailauth *ma);
/* Cancels what is left WITHOUT callbacks and frees (run the loop
 * afterwards so handles close).  NULL is fine.  A resolver call still
 * running on a worker finishes there (its answer is dropped): the
 * caller keeps did_arg valid until it has returned (node-run.c waits for
 * its resolver calls before it frees the server they use). */
void mailauth_free(mailauth **ma);

typedef struct mailauth_input {
	const struct sockaddr_storage *client;
	const char *helo;         /* "" when none */
	const char *mail_from;    /* the reverse-path address, "" when null */
	const uint8_t *msg;       /* header section and body, as received */
	size_t len;               /* msg is borrowed until the callback */
} mailauth_input;

typedef struct mailauth_dkim {
	dkim_status status;
	const char *reason;       /* static */
	char d[DKIM_VERIFY_NAME_MAX + 1], s[DKIM_VERIFY_NAME_MAX + 1];
	char i_domain[DKIM_VERIFY_NAME_MAX + 1];
	const char *a;            /* "rsa-sha256", "ed25519-sha256" */
	char b[9];                /* first 8 characters of b= (header.b) */
	bool partial, testing;
} mailauth_dkim;

typedef struct mailauth_result {
	/* SPF: ran only when settings.spf */
	bool spf_checked;
	spf_result spf;
	const char *spf_reason;   /* static */
	bool spf_helo;            /* the HELO name was checked (null sender) */
	char spf_domain[SPF_NAME_MAX + 1];
	/* DKIM: found <= DKIM_VERIFY_MAX of them checked */
	bool dkim_checked;
	size_t dkim_found, n_dkim;
	mailauth_dkim dkim[DKIM_VERIFY_MAX];
	const char *dkim_error;   /* the message could not be read, or NULL */
	/* ARC (RFC 8617): the chain's validation */
	bool arc_checked;
	arc_cv arc;
	char arc_reason[ARC_REASON_MAX + 32];
	size_t arc_instances;
	char arc_sealer[DKIM_VERIFY_NAME_MAX + 1]; /* with a pass: d= of the
				    most recent ARC-Seal */
	/* AMP-DID-Signature (docs/PROTOCOL.md §12): the message's verdict
	 * (didsig_verify_verdict: NONE when it has no such field) and the
	 * field it is about */
	bool did_checked;
	didsig_status did;
	size_t did_found;         /* AMP-DID-Signature fields */
	char did_reason[MAILAUTH_DID_REASON_MAX + 1];
	char did_sender[DIDSIG_DID_MAX + 1]; /* its d=: the sender's DID
				    ("" when unreadable) */
	char did_node[DIDSIG_DID_MAX + 1];   /* its n=: the signing node */
	/* DMARC */
	bool dmarc_checked;
	dmarc_from from;
	dmarc_verdict dmarc;
	char dmarc_domain[DMARC_DOMAIN_MAX + 1]; /* where the record was */
	/* the check ran out of time or the node stopped */
	bool timed_out;
	/* "Authentication-Results: ID; ...\r\n", to put at the top */
	char authres[1024 * 8];
	size_t authres_len;
} mailauth_result;

typedef void mailauth_cb(void *arg, const mailauth_result *r);

/* Start a check (never fails; aborts when out of memory).  q_r: the
 * handle, valid until the callback has returned or mailauth_cancel. */
mailauth_check *mailauth_start(mailauth *ma, const mailauth_input *in,
			       mailauth_cb *cb, void *arg);
/* No callback after this; NULL is fine.  Not from inside the callback. */
void mailauth_cancel(mailauth_check *c);

/* A one-line summary for logs: "spf=pass dkim=pass:example.org
 * dmarc=pass amp-did=pass:did:aftersmtp:example.org:alice" (amp-did only
 * for a message with an AMP-DID-Signature field; out NUL-terminated, cut
 * to size). */
void mailauth_summary(const mailauth_result *r, char *out, size_t size);

#endif
