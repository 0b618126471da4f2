/*
 * smtpd.h — the Legacy Bridge's inbound SMTP server (issue 4): a libuv
 * TCP driver for the pure session of src/smtp/smtp-server.h.
 *
 * Listeners: every `smtp_listen` address at `smtp_port` (ESMTP, STARTTLS
 * offered when `smtp_starttls`), every `smtps_listen` address at
 * `smtps_port` (implicit TLS, RFC 8314).  TLS is GnuTLS in SMTP mode
 * (TLS 1.2 or 1.3) with `smtp_tls_cert_file` or the node's certificate.
 *
 * Per connection: the session's replies, TLS, one timer for the command /
 * data timeout, the session cap, the TLS handshake timeout and the
 * tarpit delay (after `smtp_soft_error_limit` errors).  Per client IP
 * (IPv6: its /64): concurrent connections, connection rate, message rate.
 *
 * RCPT (docs/bridge.md "What is accepted"): the relay check first (our
 * domains, virtual alias domains, relay_domains, or a client in
 * smtp_relay_networks; otherwise 554 5.7.1), then access_map (client,
 * sender, recipient); then on a worker thread canonical_maps and
 * virtual_alias_maps turn the address into DIDs, each of which must be
 * registered here (550 5.1.1 otherwise).
 *
 * End of DATA: header limits (552 5.3.4), hop count (554 5.4.6),
 * Authentication-Results fields naming our host removed (RFC 8601 §5),
 * a Received: header prepended; then the message is sealed once for every
 * recipient DID by the node identity and stored; the 250 is sent after
 * the store's fsync'd commit, a failure is 451 4.3.0 for the whole
 * message (nothing is half-delivered).
 */
#ifndef AMP_SMTPD_H
#define AMP_SMTPD_H

#include "amp/amp.h"
#include "config.h"
#include "dkimkeys.h"
#include "lanes.h"
#include "mapset.h"
#include "store.h"

#include <uv.h>

typedef struct smtpd smtpd;

/* st, node and maps are read when a connection needs them: the listener
 * is bound (as root, port 25) before the store is opened, the node key
 * loaded and the tables opened (after the privilege drop). */
typedef struct smtpd_params {
	uv_loop_t *loop;
	store *const *st;
	amp_identity *const *node;
	mapset *const *maps;
	/* the node's certificate and key (PEM), used for TLS unless
	 * smtp_tls_cert_file is set; copied */
	const char *node_cert_pem, *node_key_pem;
	/* called on the loop after mail was stored for a local DID */
	void (*notify)(void *arg, const char *did);
	void *notify_arg;
	/* called on the loop after mail was put in the mail queue */
	void (*out_wake)(void *arg);
	void *out_arg;
	/* signs unsigned mail from smtp_relay_networks (dkim_sign_relayed) */
	dkimkeys *dkim;
	const lanes *lanes;          /* lanes by sender (may be NULL) */
	/* the key of an AMP-DID-Signature's signing node: a
	 * mailauth_did_resolve (mailauth.h), called on worker threads;
	 * NULL: every such signature is temperror */
	int (*did_resolve)(void *arg, const char *node_did, uint8_t pk_r[32],
			   const char **why_r);
	void *did_arg;
} smtpd_params;

/* Bind every `smtp_listen` and `smtps_listen` address (none: no
 * listener, *d_r NULL). */
int smtpd_start(const smtpd_params *p, const cfg *conf, smtpd **d_r,
		const char **error_r) __attribute__((warn_unused_result));
/* Stop accepting and close the connections.  Messages already being
 * sealed and stored finish (their answers are dropped): run the loop
 * until smtpd_idle() before closing the store. */
void smtpd_stop(smtpd *d);
bool smtpd_idle(const smtpd *d);
/* After smtpd_stop: freed once its handles have closed (run the loop). */
void smtpd_free(smtpd **d);
/* Port of the first plain / implicit-TLS listener (0: none). */
uint16_t smtpd_port(const smtpd *d);
uint16_t smtpd_tls_port(const smtpd *d);

#endif
