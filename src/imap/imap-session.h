/*
 * imap-session.h — one IMAP4rev1 connection (RFC 3501 with IDLE, UIDPLUS,
 * MOVE, NAMESPACE, SPECIAL-USE, LITERAL+) as a pure state machine: the
 * driver feeds bytes, takes the output, and is called back for what
 * needs the outside world (checking a password, starting TLS).  Mailbox
 * data comes through imap_mbox_ops (imap-mbox.h), message data through
 * imap-msg.h.  No sockets, clocks or threads here.
 *
 * States: not authenticated -> authenticated -> selected -> logout;
 * IDLE is a sub-state of authenticated/selected.  The command table says
 * which commands each state allows; the rest get BAD/NO before any
 * handler runs.
 *
 * The driver:
 *   imap_session_new(); imap_session_greet();
 *   on bytes: imap_session_feed() (takes what it can; while a login is
 *             pending it takes nothing: feed the rest later);
 *   after each call: imap_session_output() / _consumed(), send it;
 *             imap_session_closing() -> close after sending;
 *   on the login callback: check the password (off the loop), then
 *             imap_session_login_done();
 *   on the starttls callback: send the pending output (the OK), start
 *             TLS, discard buffered plaintext, imap_session_tls_started();
 *   when a mailbox changes (new mail synced, another session):
 *             imap_session_changed(): an IDLE session sends EXISTS /
 *             EXPUNGE / FETCH at once, others at their next command;
 *   on a timer: imap_session_timeout() (BYE, closing).
 *
 * Limits: the parser's (imap-parse.h), with literal_max small until
 * login (I1); output is generated per command and bounded by the
 * command's answer (FETCH of 10,000 messages produces its responses in
 * pieces: imap_session_output() is called again after consumed() until
 * the command completes, so memory stays within IMAP_OUT_CHUNK).
 * Wrong passwords: the driver delays the NO (back-off); after
 * auth_fail_max failures: BYE and close.
 */
#ifndef AMP_IMAP_SESSION_H
#define AMP_IMAP_SESSION_H

#include "imap-mbox.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_OUT_CHUNK (256u * 1024u)

typedef struct imap_session imap_session;

typedef struct imap_session_settings {
	const char *greeting;        /* text after "* OK [CAPABILITY ...] " */
	bool starttls;               /* STARTTLS offered (a certificate) */
	bool tls_active;             /* already TLS (implicit) */
	bool login_needs_tls;        /* LOGINDISABLED before TLS (default
					false: 127.0.0.1 only) */
	unsigned auth_fail_max;      /* BYE after this many (0: 3) */
	size_t literal_max_pre_auth; /* 0: 8192 */
	size_t literal_max;          /* after login, APPEND: 0: 64 MiB */
} imap_session_settings;

typedef struct imap_session_callbacks {
	/* LOGIN or AUTHENTICATE PLAIN/LOGIN: check user/password, then call
	 * imap_session_login_done(ok, store, st) — store/st: the user's
	 * mailboxes.  The password is wiped by the session after the call
	 * returns: copy it if the check is asynchronous. */
	void (*login)(void *arg, const char *user, const char *password,
		      size_t password_len);
	/* The OK to STARTTLS is in the output: send it, then start TLS. */
	void (*starttls)(void *arg);
	/* Informational: one line per command for the log ("tag FETCH").*/
	void (*command)(void *arg, const char *tag, const char *name,
			const char *result);
} imap_session_callbacks;

int imap_session_new(const imap_session_settings *set,
		     const imap_session_callbacks *cb, void *arg,
		     imap_session **s_r) __attribute__((warn_unused_result));
void imap_session_free(imap_session **s);

void imap_session_greet(imap_session *s);
/* Bytes from the client: how many were taken (less than len while a
 * login or a long answer is pending: feed the rest later). */
size_t imap_session_feed(imap_session *s, const uint8_t *data, size_t len);
void imap_session_login_done(imap_session *s, bool ok,
			     const imap_mbox_ops *store, void *st);
void imap_session_tls_started(imap_session *s);
void imap_session_changed(imap_session *s);
void imap_session_timeout(imap_session *s);

/* Output to send: *out_r points into the session; then consumed(n).
 * While a long answer is being produced, output() produces more. */
size_t imap_session_output(imap_session *s, const uint8_t **out_r);
void imap_session_output_consumed(imap_session *s, size_t n);
bool imap_session_closing(const imap_session *s);
bool imap_session_idling(const imap_session *s);
/* Mailbox selected now (NULL when none): the driver's IDLE wakeups. */
const char *imap_session_selected(const imap_session *s);

#endif
