/*
 * smtp-client.h — one outbound SMTP transaction over one connection
 * (RFC 5321, issue 5), as a pure state machine: the driver feeds the
 * server's bytes in, writes what the client puts out, and tells it about
 * TLS, timeouts and the end of the connection.  No sockets, TLS, DNS,
 * clocks or files here (STYLE.md: protocol code never does I/O).
 * src/smtp/smtp-reply.h reads the replies, src/smtp/dotstuff.h writes the
 * body.
 *
 * The driver's loop:
 *   1. smtp_client_new(settings, message) — both stay the caller's and
 *      must stay valid (strings and body) until smtp_client_free;
 *   2. every byte read from the server: smtp_client_feed;
 *   3. while smtp_client_output gives bytes: write them, then
 *      smtp_client_output_consumed (call it as soon as the bytes are
 *      handed to the transport, before feeding any later read: a reply
 *      to a command not yet handed over is taken as premature, E2);
 *   4. when smtp_client_want_tls: the output is empty; do the TLS
 *      handshake, then smtp_client_tls_started or smtp_client_tls_failed;
 *   5. after each feed / consume / TLS call, arm a timer for
 *      smtp_client_timeout_ms (0: none) and call smtp_client_timeout when
 *      it fires;
 *   6. when the connection closes: smtp_client_eof;
 *   7. when smtp_client_done: read the results, close, smtp_client_free.
 *
 * The session: wait for the 220 greeting; EHLO (HELO when EHLO gets a
 * 5xx; then no extensions); STARTTLS per the policy, then EHLO again with
 * the old capabilities forgotten; AUTH PLAIN (else LOGIN) when
 * credentials are set, only over TLS; MAIL FROM, RCPT TO each recipient,
 * DATA — in one group with PIPELINING (RFC 2920; as many commands as the
 * output buffer holds at a time, replies matched in order), else one at a
 * time; the dot-stuffed body; the final reply; QUIT.  The 221 is not
 * waited for: results are final once the end-of-data reply is read, and
 * smtp_client_done is true once QUIT has been handed over.
 *
 * Results, one per recipient: the RCPT reply if it was refused, else the
 * end-of-data reply (or the DATA command's, if DATA was refused), else the
 * MAIL reply if MAIL was refused, else the session's failure.  A 2xx code
 * is delivered, 4xx temporary (try again later, maybe another MX), 5xx
 * permanent.  Texts are printable ASCII only, bounded (they go into DSNs
 * and logs); an enhanced code is synthesised as X.0.0 when the peer gave
 * none.
 *
 * Decisions (and where they come from):
 *  - Greeting other than 220: a temporary session failure whatever its
 *    class — a 5xx greeting (RFC 5321 §3.1 "554 no service") says this
 *    host will not talk to us, not that the recipients are bad, so the
 *    driver tries the next MX (Postfix's smtp_skip_5xx_greeting does the
 *    same); the code becomes 4xx, the peer's text is kept.  QUIT is sent
 *    (except after 421).
 *  - EHLO 5xx: HELO.  EHLO/HELO 4xx: temporary; HELO 5xx: permanent.
 *  - TLS (T6): SMTPC_TLS_MUST never goes on in cleartext: no STARTTLS
 *    offered, STARTTLS refused or a failed handshake are temporary
 *    failures.  SMTPC_TLS_MAY: STARTTLS when offered; refused (4xx/5xx):
 *    go on in cleartext on the same connection; a failed handshake ends
 *    the session (temporary, reason "TLS handshake failed: ..."; the
 *    driver may retry with SMTPC_TLS_NONE).
 *  - T5: after the 220 to STARTTLS, every byte already read or read until
 *    smtp_client_tls_started is discarded, never parsed.
 *  - AUTH only over TLS ("AUTH needs TLS": temporary); credentials set but
 *    neither PLAIN nor LOGIN offered: temporary.  535 (and any 5xx):
 *    permanent, 5.7.8 when the peer gave no enhanced code; 4xx temporary.
 *  - Before MAIL, without sending anything: an SMTPUTF8 message to a peer
 *    without SMTPUTF8: 554 5.6.7; an 8-bit body to a peer without
 *    8BITMIME: 554 5.6.3 (the 8th bit is never stripped); a body larger
 *    than the peer's SIZE: 552 5.3.4.  These results are local (made
 *    here) and permanent, phase MAIL.
 *  - No recipient accepted: no body.  If DATA (sent in a pipelined group)
 *    gets 354 anyway, the client sends an empty message (".") as
 *    RFC 2920 §3.1 requires, and its reply does not change the results.
 *  - Session failures, temporary for every recipient without a final
 *    result: a reply the parser refuses (E1), the connection closed or a
 *    timeout before the final reply — also after the final dot (E2,
 *    RFC 5321 §4.2.5 and §6.1: as if 451 had been received): 451, local;
 *    421 at any point (the peer's reply); any byte from the server while
 *    the body is being sent, or before the command it would answer was
 *    handed over (premature reply, E2): 451 protocol error.  After a
 *    failure the connection is closed without QUIT unless the stream is
 *    still in step.
 *  - E4: every string is checked at creation (no CR, LF, NUL, '<', '>',
 *    space or other control in addresses, HELO name, ENVID, ORCPT; paths
 *    checked by smtp-addr's parser; 8-bit only with smtputf8); a bad one
 *    is an error from smtp_client_new and nothing is sent.  Addresses
 *    with a quoted local part that contains a space are refused too.
 *
 * Limits: SMTPC_RCPT_MAX recipients (the caller splits), replies as
 * smtp-reply.h bounds them, an output buffer of SMTPC_OUT_MAX octets.
 * Secrets: the AUTH lines are wiped from the output buffer once handed
 * over, and the credentials' encodings on the stack after use.
 */
#ifndef AMP_SMTP_CLIENT_H
#define AMP_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTPC_RCPT_MAX 1000u
#define SMTPC_TEXT_MAX 512u          /* result, greeting and reason texts,
					with their NUL */
#define SMTPC_OUT_MAX (64u * 1024u)  /* output buffer */
#define SMTPC_AUTH_MAX 255u          /* user name and password, octets */
#define SMTPC_ENVID_MAX 100u         /* RFC 3461 §4.4 */
#define SMTPC_ORCPT_MAX 500u         /* RFC 3461 §4.2 */

/* RFC 5321 §4.5.3.2 defaults, in milliseconds. */
#define SMTPC_GREETING_MS (300u * 1000u)
#define SMTPC_COMMAND_MS (300u * 1000u)    /* EHLO, STARTTLS, AUTH, MAIL,
					      RCPT, QUIT, TLS handshake */
#define SMTPC_DATA_INIT_MS (120u * 1000u)  /* the reply to DATA */
#define SMTPC_DATA_BLOCK_MS (180u * 1000u) /* each block of the body */
#define SMTPC_DATA_END_MS (600u * 1000u)   /* the reply after the dot */

typedef enum smtpc_tls_policy {
	SMTPC_TLS_NONE = 0,      /* never STARTTLS */
	SMTPC_TLS_MAY = 1,       /* STARTTLS if offered, else cleartext */
	SMTPC_TLS_MUST = 2,      /* TLS or a temporary failure (T6) */
} smtpc_tls_policy;

typedef struct smtpc_settings {
	const char *helo;        /* our host name: a domain or address
				    literal, printable ASCII, no space */
	smtpc_tls_policy tls;
	bool tls_active;         /* the connection is TLS already (465) */
	const char *auth_user;   /* NULL: no AUTH; both or neither */
	const char *auth_pass;
	/* timeouts in ms; 0: the RFC 5321 default above */
	unsigned greeting_ms, command_ms, data_init_ms, data_block_ms,
		data_end_ms;
} smtpc_settings;

/* DSN NOTIFY bits (RFC 3461), as the queue and smtp-addr number them. */
#define SMTPC_NOTIFY_NEVER 0x1u
#define SMTPC_NOTIFY_SUCCESS 0x2u
#define SMTPC_NOTIFY_FAILURE 0x4u
#define SMTPC_NOTIFY_DELAY 0x8u

enum { SMTPC_RET_NONE = 0, SMTPC_RET_FULL = 1, SMTPC_RET_HDRS = 2 };

typedef struct smtpc_rcpt {
	const char *addr;        /* without <> */
	unsigned notify;         /* SMTPC_NOTIFY_* bits, 0: not given */
	const char *orcpt;       /* "rfc822;..." as xtext, or NULL */
} smtpc_rcpt;

typedef struct smtpc_message {
	const char *mail_from;   /* without <>; "" is the null sender */
	const smtpc_rcpt *rcpts;
	size_t n_rcpts;          /* 1..SMTPC_RCPT_MAX */
	const char *envid;       /* xtext, or NULL */
	unsigned ret;            /* SMTPC_RET_* */
	const uint8_t *body;     /* the RFC 5322 message; any line ends */
	size_t body_len;
	bool eightbit;           /* the body has 8-bit octets */
	bool smtputf8;           /* an address or header needs SMTPUTF8 */
} smtpc_message;

typedef enum smtpc_phase {
	SMTPC_PHASE_NONE = 0,    /* no result yet */
	SMTPC_PHASE_SESSION,     /* greeting, EHLO, TLS, AUTH, connection */
	SMTPC_PHASE_MAIL,        /* MAIL FROM, or a refusal before it */
	SMTPC_PHASE_RCPT,        /* this recipient's RCPT TO */
	SMTPC_PHASE_DATA,        /* DATA or the end of the message */
} smtpc_phase;

typedef struct smtpc_result {
	unsigned code;           /* 2xx delivered, 4xx temporary, 5xx
				    permanent; 0 while phase is NONE */
	char enh[12];            /* "5.1.1"; synthesised when absent */
	char text[SMTPC_TEXT_MAX]; /* printable ASCII, without code and enh */
	smtpc_phase phase;
	bool local;              /* made here, not the peer's reply */
} smtpc_result;

typedef struct smtpc_caps {
	bool esmtp;              /* EHLO was accepted */
	bool pipelining, eightbitmime, smtputf8, dsn, starttls;
	bool enhancedstatuscodes, chunking, size;
	uint64_t size_max;       /* SIZE's value, 0: none given */
	bool auth_plain, auth_login, auth_other;
} smtpc_caps;

typedef struct smtp_client smtp_client;

/* Check the settings and the message and make a client that waits for
 * the greeting.  Returns 0, or -1 with *error_r a static sentence (a
 * string that fails E4's checks, a missing field, out of range values);
 * nothing is sent then. */
int smtp_client_new(const smtpc_settings *set, const smtpc_message *msg,
		    smtp_client **c_r, const char **error_r)
	__attribute__((warn_unused_result));
/* Wipes the buffers (they held the AUTH lines) and frees; NULL is fine. */
void smtp_client_free(smtp_client **c);

/* Bytes read from the server; all are taken (after the session's end or
 * the 220 to STARTTLS, they are dropped). */
void smtp_client_feed(smtp_client *c, const uint8_t *data, size_t len);

/* Bytes to write: *out_r points into the client, valid until the next
 * call with c.  Returns 0 when there is nothing to write now.  Then
 * smtp_client_output_consumed(n), n <= what was returned. */
size_t smtp_client_output(smtp_client *c, const uint8_t **out_r);
void smtp_client_output_consumed(smtp_client *c, size_t n);

/* The 220 to STARTTLS was read and the output is empty: start TLS. */
bool smtp_client_want_tls(const smtp_client *c);
void smtp_client_tls_started(smtp_client *c);
/* why: the TLS library's message (copied, sanitised). */
void smtp_client_tls_failed(smtp_client *c, const char *why);

/* The timer for the current wait, in ms (0: no timer). */
unsigned smtp_client_timeout_ms(const smtp_client *c);
void smtp_client_timeout(smtp_client *c);
/* The connection closed (or failed). */
void smtp_client_eof(smtp_client *c);

/* Every recipient has its final result; nothing more to write. */
bool smtp_client_done(const smtp_client *c);

/* Recipient i's result (i < n_rcpts): phase NONE until it is final. */
const smtpc_result *smtp_client_result(const smtp_client *c, size_t i);
/* The server accepted MAIL FROM on this connection: the transaction had
 * begun, so a later failure (a lost connection after the dot, a 421) is
 * final for this attempt — trying another MX at once could deliver it
 * twice. */
bool smtp_client_transaction(const smtp_client *c);
/* A session-level failure happened (then smtp_client_reason says what);
 * permanent when its code was 5xx. */
bool smtp_client_failed(const smtp_client *c);
bool smtp_client_failed_permanent(const smtp_client *c);
/* A short reason for the session's failure ("timeout waiting for
 * greeting", "protocol error: continuation with a different code"), or
 * "" when there was none. */
const char *smtp_client_reason(const smtp_client *c);

/* For logs: the peer's capabilities (after the last EHLO) and as text
 * ("PIPELINING SIZE=10240000 8BITMIME ..."), whether TLS was in use, the
 * greeting's text and the last reply ("250 2.0.0 Ok"), sanitised. */
const smtpc_caps *smtp_client_caps(const smtp_client *c);
const char *smtp_client_caps_text(const smtp_client *c);
bool smtp_client_tls_used(const smtp_client *c);
const char *smtp_client_greeting(const smtp_client *c);
const char *smtp_client_last_reply(const smtp_client *c);

#endif
