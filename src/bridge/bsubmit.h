/*
 * bsubmit.h — the SMTP submission listener of `amp bridge` (issue 6,
 * RFC 6409): libuv TCP on 127.0.0.1, one smtp_session
 * (src/smtp/smtp-server.h) per connection with AUTH PLAIN/LOGIN required
 * before MAIL, STARTTLS with the bridge's local certificate, timeouts, a
 * size limit and write back-pressure.  The bridge (bridge.c) answers three
 * questions through callbacks; everything runs on the loop's thread.
 *
 * Refused here (TESTING.md B2): MAIL before AUTH 530 5.7.0; AUTH before
 * STARTTLS when auth_needs_tls 538 5.7.11; a MAIL FROM the user does not
 * own (sender_ok false) 553 5.7.1; wrong password 535 5.7.8.
 */
#ifndef AMP_BSUBMIT_H
#define AMP_BSUBMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct tls_creds;

#define BSUBMIT_SIZE_MAX_DEFAULT (25u * 1024u * 1024u)
#define BSUBMIT_TIMEOUT_DEFAULT_MS (300u * 1000u) /* RFC 5321 §4.5.3.2.7 */
#define BSUBMIT_CONNS_DEFAULT 32u
/* AUTH fields the bridge may be given (longer ones: 501 before it is
 * asked) */
#define BSUBMIT_USER_MAX 255u
#define BSUBMIT_PASSWORD_MAX 255u

typedef struct bsubmit bsubmit;
/* A question the bridge owes an answer to (one AUTH or one message). */
typedef struct bsubmit_req bsubmit_req;

typedef struct bsubmit_settings {
	const char *host;        /* address to bind: NULL "127.0.0.1" */
	uint16_t port;           /* 0: any free port (see bsubmit_port) */
	const char *hostname;    /* greeting, EHLO: NULL "localhost" */
	struct tls_creds *creds; /* STARTTLS offered when not NULL (borrowed,
				  * must outlive the listener) */
	bool auth_needs_tls;     /* AUTH only after STARTTLS (538 5.7.11) */
	uint64_t size_max;       /* message octets, 0: the default */
	unsigned timeout_ms;     /* idle per command, 0: the default */
	unsigned max_conns;      /* concurrent connections, 0: the default */
} bsubmit_settings;

/* One submitted message; every pointer is valid until
 * bsubmit_submit_done. */
typedef struct bsubmit_msg {
	const char *user;          /* who authenticated */
	const char *from;          /* MAIL FROM address, "" for <> */
	const char *const *rcpts;  /* RCPT TO addresses, as given */
	size_t n_rcpts;
	const uint8_t *data;       /* the message, CRLF lines, unstuffed */
	size_t len;
} bsubmit_msg;

typedef struct bsubmit_callbacks {
	/* Check a password: answer with bsubmit_auth_done(req, ok), now or
	 * later (e.g. after an Argon2id check on a worker and a back-off
	 * delay).  password (len octets, may contain any byte but NUL
	 * terminated too) is wiped when this returns: copy it to check it
	 * later.  authzid is "" or what the client asked to act as. */
	void (*auth)(void *arg, bsubmit_req *req, const char *authzid,
		     const char *user, const char *password, size_t len);
	/* May user send with this MAIL FROM ("" for <>)?  false: 553 5.7.1. */
	bool (*sender_ok)(void *arg, const char *user, const char *mail_from);
	/* Send the message: answer with bsubmit_submit_done, usually from
	 * the after-work callback of a worker running bsend_message.  *m
	 * lives only during the call (copy the struct); the strings and
	 * bytes it points to stay valid until bsubmit_submit_done. */
	void (*submit)(void *arg, bsubmit_req *req, const bsubmit_msg *m);
} bsubmit_callbacks;

/* Bind and listen.  0, or -1 with *error_r. */
int bsubmit_start(uv_loop_t *loop, const bsubmit_settings *set,
		  const bsubmit_callbacks *cb, void *arg, bsubmit **b_r,
		  const char **error_r) __attribute__((warn_unused_result));
/* The port actually bound. */
uint16_t bsubmit_port(const bsubmit *b);
/* Stop listening and close every connection; the memory goes once the
 * handles are closed (run the loop) and every pending request is
 * answered.  Sets *b to NULL; accepts NULL. */
void bsubmit_close(bsubmit **b);

/* The answers.  Each request is answered exactly once, on the loop's
 * thread, also when the client has gone meanwhile (the answer is then
 * dropped; the request is freed by it). */
void bsubmit_auth_done(bsubmit_req *req, bool ok);

typedef enum bsubmit_result {
	BSUBMIT_OK = 0,      /* every recipient accepted: 250 2.0.0 */
	BSUBMIT_TEMPFAIL,    /* 451 4.3.0 text: the client retries */
	BSUBMIT_PERMFAIL,    /* 554 5.0.0 text: the client bounces */
} bsubmit_result;
/* text: the node's reason(s), shown to the user (sanitised, cut). */
void bsubmit_submit_done(bsubmit_req *req, bsubmit_result result,
			 const char *text);

#endif
