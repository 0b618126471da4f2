/*
 * dsn.h — delivery status notifications (RFC 3464) as multipart/report
 * messages (RFC 6522), built from what the queue knows.  Pure and
 * deterministic: the same report gives the same bytes (the caller brings
 * the clock and 16 random bytes); no I/O, no logging.
 *
 * The message: Date, From ("Mail Delivery System <from>"), To, Subject,
 * Message-ID, Auto-Submitted: auto-replied, MIME-Version and a
 * multipart/report; report-type=delivery-status with three parts:
 *  1. text/plain (us-ascii): which recipients, what happened (the remote
 *     reply, or the status explained when there is none) and what happens
 *     next (nothing more, or retries until Will-Retry-Until);
 *  2. message/delivery-status: Reporting-MTA, Original-Envelope-Id,
 *     Arrival-Date, then per recipient Original-Recipient,
 *     Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code,
 *     Last-Attempt-Date, Will-Retry-Until (only for "delayed");
 *  3. the original: message/rfc822 when r->full and it fits
 *     max_original, is at most 998 octets a line and has no NUL; else its
 *     header section as text/rfc822-headers (at most DSN_MAX_HEADERS
 *     bytes, whole fields; lines over 998 octets cut, NUL shown as '?').
 *     The header section ends where mail-header.h says (an original with
 *     no empty line and only fields is all header).  Content-Transfer-
 *     Encoding: 8bit when the part has a byte >= 0x80.
 * Subject: "Undelivered Mail Returned to Sender" when a recipient failed,
 * else "Delayed Mail (still being retried)" when one is delayed, else
 * "Successful Mail Delivery Report".
 *
 * Everything is CRLF, lines at most 998 octets (Diagnostic-Code folded at
 * blanks), and 7-bit except an 8-bit original or a UTF-8 `to`.  Text that
 * came from elsewhere cannot add lines or MIME structure:
 *  - diag (the remote reply): CR, LF, HTAB become blanks, runs of blanks
 *    one, other bytes outside printable ASCII '?', cut at DSN_DIAG_MAX;
 *  - remote_mta: bytes outside [A-Za-z0-9.-:[]_] '?', cut at 255
 *    (reporting_mta is ours: it must be a host name, else refused);
 *  - envid: bytes outside printable ASCII '?', cut at 100 (RFC 3461);
 *  - final_rcpt, orcpt's address: as "rfc822; addr" when printable ASCII,
 *    else as "utf-8; " utf-8-addr-xtext (RFC 6533 §3: \x{HHHH}, invalid
 *    UTF-8 as U+FFFD); orcpt "TYPE;addr" (decoded, RFC 3461 §4.2), or a
 *    plain address taken as rfc822;
 *  - and the boundary is checked against every part (never found in one:
 *    a suffix "_N" is added until it is not, at most 100 tries).
 * xtext: ORCPT and ENVID arrive xtext-encoded over SMTP; smtp-addr.c
 * decodes them (smtp_params_check_mail / _rcpt), and the caller passes the
 * decoded text (libampmime does not link libsmtp).
 *
 * Refused (-1 and *error_r, a static sentence): no report; n outside
 * 1..DSN_MAX_RCPTS; a reporting_mta or msgid_domain that is not a host
 * name ([A-Za-z0-9.-], 1..255 / 1..253); a from or to that is missing or
 * empty (never a DSN to the null sender, RFC 5321 §6.1), over
 * DSN_ADDR_MAX, without '@', with a control, a blank or one of
 * ()<>[]:;,\" outside a leading quoted local part, or invalid UTF-8; a
 * missing final_rcpt; a final_rcpt or orcpt over DSN_ADDR_MAX bytes; an
 * action outside the enum; a status that is not class.subject.detail (2,
 * 4 or 5, then 1-3 digits, then 1-3 digits); a date outside 1900..9999;
 * an original over DSN_MAX_ORIGINAL.
 */
#ifndef AMP_DSN_H
#define AMP_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DSN_MAX_RCPTS 1000u
#define DSN_DIAG_MAX 2000u                /* bytes of a remote reply kept */
#define DSN_ADDR_MAX 512u                 /* final_rcpt, orcpt */
#define DSN_MAX_HEADERS (1024u * 1024u)   /* a text/rfc822-headers part */
#define DSN_MAX_ORIGINAL (1024u * 1024u * 1024u) /* original_len */

typedef enum dsn_action {
	DSN_FAILED,
	DSN_DELAYED,
	DSN_DELIVERED,
	DSN_RELAYED,
	DSN_EXPANDED,
} dsn_action;

typedef struct dsn_rcpt {
	const char *final_rcpt;    /* address as sent in RCPT TO */
	const char *orcpt;         /* original recipient "rfc822;addr"
				      (decoded), or NULL */
	dsn_action action;
	const char *status;        /* "5.1.1" */
	const char *remote_mta;    /* host name of the MX that answered, or
				      NULL */
	const char *diag;          /* the remote reply, e.g. "550 5.1.1 <x@y>:
				      no such user", or NULL (then the status
				      is explained in the human part) */
	uint64_t last_attempt;     /* unix seconds, 0 = omit */
	uint64_t will_retry_until; /* DSN_DELAYED only, 0 = omit */
} dsn_rcpt;

typedef struct dsn_report {
	const char *reporting_mta; /* our host name (written "dns; name") */
	const char *from;          /* the DSN's From address, e.g.
				      "MAILER-DAEMON@mx.example.org" */
	const char *to;            /* the original sender (the DSN's To) */
	const char *envid;         /* Original-Envelope-Id (decoded), or
				      NULL */
	const char *msgid_domain;  /* right side of the DSN's Message-ID */
	const uint8_t *random16;   /* 16 random bytes: boundary and
				      Message-ID */
	uint64_t arrival;          /* Arrival-Date, unix seconds (0: omit) */
	uint64_t now;              /* Date: of the DSN */
	const uint8_t *original;   /* the original message as queued */
	size_t original_len;
	bool full;                 /* RET=FULL: attach the whole message */
	size_t max_original;       /* above it only the headers are attached */
	const dsn_rcpt *rcpts;     /* 1..DSN_MAX_RCPTS */
	size_t n;
} dsn_report;

/* Build the DSN for r (everything borrowed for the call).  On success
 * returns 0 and *out_r (malloc'd, owned by the caller, free()) holds
 * *len_r bytes; on failure returns -1, *out_r is NULL and *error_r says
 * why. */
int dsn_build(const dsn_report *r, uint8_t **out_r, size_t *len_r,
	      const char **error_r) __attribute__((warn_unused_result));

/* "failed", "delayed", "delivered", "relayed", "expanded" (RFC 3464
 * §2.3.3); NULL for a value outside the enum. */
const char *dsn_action_name(dsn_action a);

#endif
