/*
 * smtp-server.h — the inbound ESMTP session (RFC 5321) as a pure state
 * machine (issue 4): the driver feeds bytes from the network, the session
 * writes replies into its output buffer and calls the driver's callbacks;
 * no sockets, TLS, clocks or files here (STYLE.md: protocol code never
 * does I/O).  src/smtp/smtp-addr.h parses paths and parameters,
 * src/smtp/smtp-data.h reads DATA.
 *
 * Decisions the driver makes (MAIL, RCPT, end of message) may be
 * asynchronous: the callback returns, the session stops reading input,
 * and continues when the driver calls smtp_session_reply().  Pipelined
 * commands wait in the input buffer meanwhile.
 *
 * Defences (TESTING.md rows):
 *  S1  command lines over line_max: 500 5.5.2, the rest of the line is
 *      skipped without buffering; S4 a lone CR or LF never ends a line, a
 *      command line with a bare CR or LF is refused (501 5.5.2).
 *  S3  DATA ends only at CRLF.CRLF (smtp-data); bare CR/LF: 550 5.5.2
 *      after the real end, or normalised (policy).
 *  S5  bytes before the greeting: 554 5.5.0 and close; commands sent
 *      ahead without PIPELINING, or anything after DATA/BDAT-less DATA
 *      before the 354, or after a must-be-last command: 554 5.5.0 and
 *      close.  BDAT only when CHUNKING is offered; exact byte counts.
 *  S6  wrong order: 503 5.5.1; DATA without a valid recipient: 554 5.5.1.
 *  S7  HELO/EHLO argument checked (domain or address literal): 501 5.5.4.
 *  S10 recipients beyond max_rcpt: 452 4.5.3, earlier ones kept.
 *  S11 a message over the size limit: read to its end, then 552 5.3.4.
 *  S14 errors: the driver's tarpit delay grows after soft_errors; 421
 *      4.7.0 and close at hard_errors.
 *  S16 VRFY: 252 2.1.5 (no disclosure); EXPN: 502 5.5.1.
 *  T1  after STARTTLS every buffered byte is discarded before TLS starts.
 *  T2  after TLS the session forgets HELO and the transaction; STARTTLS
 *      is no longer offered.  T3 STARTTLS twice: 503 5.5.1; not offered:
 *      454 4.7.0; with an argument: 501 5.5.4.
 *
 * AUTH (RFC 4954, for submission; off unless settings.auth): PLAIN and
 * LOGIN, with an initial response (SASL-IR) or after "334".  The driver's
 * auth callback decides, now or later, with smtp_session_auth_done (235
 * 2.7.0 / 535 5.7.8); the decoded password is wiped when the callback
 * returns, and the base64 text it came in is wiped from the buffers.
 *  B2  MAIL before AUTH when auth_required: 530 5.7.0; AUTH before TLS
 *      when auth_needs_tls: 538 5.7.11 (and AUTH is not advertised before
 *      TLS then); a sender the user does not own: the driver's mail
 *      callback answers 553 5.7.1.
 *      AUTH twice or inside a transaction: 503 5.5.1; "*" cancels: 501
 *      5.0.0; bad base64 or a response that is not user/password: 501
 *      5.5.2; an exchange line over line_max: 500 5.5.6; an unknown
 *      mechanism: 504 5.5.4.  After STARTTLS the session forgets AUTH
 *      (T2).
 */
#ifndef AMP_SMTP_SERVER_H
#define AMP_SMTP_SERVER_H

#include "smtp-addr.h"
#include "smtp-data.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_INPUT_MAX (64u * 1024u)     /* buffered, unprocessed input */
#define SMTP_OUTPUT_MAX (256u * 1024u)   /* replies not yet taken */
#define SMTP_BUF_START 4096u             /* both buffers start at this */
#define SMTP_REPLY_TEXT_MAX 400u
#define SMTP_AUTH_FIELD_MAX 255u         /* authzid, user, password octets */

typedef struct smtp_session smtp_session;

typedef struct smtp_settings {
	const char *hostname;         /* in the greeting and EHLO */
	size_t line_max;              /* command line incl. CRLF (>= 512) */
	size_t text_line_max;         /* DATA text line, 0: unlimited */
	unsigned max_rcpt;            /* >= 100 (RFC 5321 §4.5.3.1.8) */
	unsigned soft_errors;         /* start delaying after this many */
	unsigned hard_errors;         /* 421 and close at this many */
	unsigned error_delay_ms;      /* tarpit per reply after soft_errors */
	smtp_offer offer;             /* SIZE, CHUNKING, SMTPUTF8, DSN, 8BITMIME */
	bool starttls;                /* TLS can be offered (a certificate) */
	bool tls_active;              /* implicit TLS (port 465) */
	smtp_data_policy bare_policy; /* bare CR/LF in DATA */
	bool auth;                    /* offer AUTH PLAIN LOGIN (submission) */
	bool auth_required;           /* MAIL only after AUTH (530 5.7.0) */
	bool auth_needs_tls;          /* AUTH only under TLS (538 5.7.11) */
} smtp_settings;

typedef struct smtp_callbacks {
	/* HELO/EHLO accepted by the grammar: informational. */
	void (*helo)(void *arg, const char *name, bool esmtp);
	/* Decide MAIL FROM / RCPT TO: call smtp_session_reply (now or
	 * later).  A code >= 400 refuses it. */
	void (*mail)(void *arg, const smtp_path *from, const smtp_mail_params *p);
	void (*rcpt)(void *arg, const smtp_path *to, const smtp_rcpt_params *p);
	/* The message content begins / continues (unstuffed, as received). */
	void (*data_begin)(void *arg);
	void (*data_chunk)(void *arg, const uint8_t *data, size_t len);
	/* The content is complete and within the rules: store it durably and
	 * call smtp_session_reply (250 only once it is on disk). */
	void (*data_end)(void *arg);
	/* The transaction ended without a message (RSET, refused DATA, a new
	 * EHLO, STARTTLS, close): drop what data_begin/data_chunk gave. */
	void (*abort)(void *arg);
	/* Start TLS now: the 220 is in the output buffer; send it, then do
	 * the handshake and call smtp_session_tls_started. */
	void (*starttls)(void *arg);
	/* AUTH (settings.auth): check these credentials and call
	 * smtp_session_auth_done (now or later).  authzid is "" when the
	 * client gave none; password has len octets (NUL-terminated too, no
	 * NUL inside) and is wiped when this returns. */
	void (*auth)(void *arg, const char *authzid, const char *user,
		     const char *password, size_t len);
} smtp_callbacks;

int smtp_session_new(const smtp_settings *set, const smtp_callbacks *cb,
		     void *arg, smtp_session **s_r) __attribute__((warn_unused_result));
void smtp_session_free(smtp_session **s);

/* Send the 220 greeting (the driver may wait first: bytes that arrive
 * before it are an early talker, S5). */
void smtp_session_greet(smtp_session *s);

/* Bytes from the client.  Returns how many were taken (fewer than len
 * when the input buffer is full while a decision is pending: feed the
 * rest later). */
size_t smtp_session_feed(smtp_session *s, const uint8_t *data, size_t len);

/* The driver's decision for the pending MAIL, RCPT or end of data:
 * code (250, 451, 550…), enhanced status ("2.1.0"), text. */
void smtp_session_reply(smtp_session *s, unsigned code, const char *enh,
			const char *text);

/* The driver's answer to the auth callback: 235 2.7.0 or 535 5.7.8. */
void smtp_session_auth_done(smtp_session *s, bool ok);
/* The user of a successful AUTH, else NULL (valid until the session is
 * freed or forgets it: STARTTLS). */
const char *smtp_session_user(const smtp_session *s);

/* TLS is up (after the starttls callback). */
void smtp_session_tls_started(smtp_session *s);

/* The driver's timeout fired: 421 4.4.2 and close. */
void smtp_session_timeout(smtp_session *s);

/* Replies to send: *out_r points into the session; then consumed(n). */
size_t smtp_session_output(smtp_session *s, const uint8_t **out_r);
void smtp_session_output_consumed(smtp_session *s, size_t n);

/* After the output is sent: close the connection. */
bool smtp_session_closing(const smtp_session *s);
/* Waiting for the driver's decision. */
bool smtp_session_pending(const smtp_session *s);
/* Milliseconds the driver should wait before sending the next reply
 * (error_delay_ms once soft_errors is passed), 0 normally. */
unsigned smtp_session_delay_ms(const smtp_session *s);
unsigned smtp_session_errors(const smtp_session *s);

#endif
