/*
 * smtpd.h — the Legacy Bridge's inbound SMTP listener (issue 4, first
 * slice): a libuv TCP driver for the pure session of src/smtp/smtp-server.h.
 *
 * What it does now: plain ESMTP (no STARTTLS yet) on `smtp_listen` /
 * `smtp_port`; RCPT is accepted for `user@D` when D is one of the node's
 * domains and did:aftersmtp:D:user is registered (550 5.1.1 otherwise,
 * 554 5.7.1 for other domains: never a relay); at the end of DATA the
 * message, with a Received: header prepended and otherwise byte for byte,
 * is sealed once for every recipient DID by the node identity, and
 * stored; the 250 is sent after the store's fsync'd commit.
 * Not yet: STARTTLS, maps, per-IP limits beyond the connection cap,
 * timeouts other than the idle sweep.
 */
#ifndef AMP_SMTPD_H
#define AMP_SMTPD_H

#include "amp/amp.h"
#include "config.h"
#include "store.h"

#include <uv.h>

typedef struct smtpd smtpd;

/* st and node are read when a connection needs them: the listener is
 * bound (as root, port 25) before the store is opened and the node key
 * loaded (after the privilege drop). */
typedef struct smtpd_params {
	uv_loop_t *loop;
	store *const *st;
	amp_identity *const *node;
	/* called on the loop after mail was stored for a local DID */
	void (*notify)(void *arg, const char *did);
	void *notify_arg;
} smtpd_params;

/* Bind every `smtp_listen` address (none: no listener, *d_r NULL). */
int smtpd_start(const smtpd_params *p, const cfg *conf, smtpd **d_r,
		const char **error_r) __attribute__((warn_unused_result));
/* Stop accepting and close the connections.  Messages already being
 * sealed and stored finish (their answers are dropped): run the loop
 * until smtpd_idle() before closing the store. */
void smtpd_stop(smtpd *d);
bool smtpd_idle(const smtpd *d);
/* After smtpd_stop: freed once its handles have closed (run the loop). */
void smtpd_free(smtpd **d);
uint16_t smtpd_port(const smtpd *d);

#endif
