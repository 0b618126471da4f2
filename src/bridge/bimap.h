/*
 * bimap.h — the IMAP listener of `amp bridge` (issue 6): libuv TCP on
 * 127.0.0.1, one imap_session (src/imap/imap-session.h) per connection,
 * STARTTLS with the bridge's local certificate (src/transport/tls.h,
 * TLS_MODE_SMTP: TLS 1.2/1.3 without ALPN).  It only moves bytes: the
 * session decides, the store (imap_mbox_ops) holds the mail, the bridge
 * (bridge.c) checks passwords.  Everything runs on the loop's thread.
 *
 * Per connection: input is fed to the session (what it cannot take now,
 * during a login check or a long answer, is held and reading stops);
 * output is pumped while libuv's write queue stays under
 * BIMAP_WRITE_QUEUE_MAX (a FETCH 1:* of 10,000 messages is produced piece
 * by piece as the client reads it); an idle timer closes connections
 * silent for BIMAP_IDLE_TIMEOUT_MS (RFC 3501 §5.4: at least 30 minutes;
 * IDLE sessions too, RFC 2177: clients re-issue IDLE within 29 minutes).
 * After STARTTLS's OK every plaintext byte already received is dropped
 * (TESTING.md I6).  At most BIMAP_CONNS_MAX connections; more are closed
 * at once.
 */
#ifndef AMP_BIMAP_H
#define AMP_BIMAP_H

#include "imap-mbox.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct tls_creds;

#define BIMAP_IDLE_TIMEOUT_MS (30u * 60u * 1000u)
#define BIMAP_WRITE_QUEUE_MAX (1024u * 1024u)
#define BIMAP_READ_MAX 65536u
#define BIMAP_CONNS_MAX 64u

typedef struct bimap bimap;
/* One pending password check (bimap_login_done answers it). */
typedef struct bimap_login bimap_login;

typedef struct bimap_settings {
	const char *host;            /* NULL: "127.0.0.1" */
	uint16_t port;               /* 0: any free port (bimap_port) */
	struct tls_creds *creds;     /* STARTTLS when not NULL (borrowed) */
	const imap_mbox_ops *ops;    /* the store every login opens */
	void *st;
	unsigned idle_timeout_ms;    /* 0: BIMAP_IDLE_TIMEOUT_MS */
	/* Check user/password; answer with bimap_login_done(req, ok), now
	 * or later, exactly once.  password (len octets) is wiped when this
	 * returns: copy it for a later check. */
	void (*login)(void *arg, bimap_login *req, const char *user,
		      const char *password, size_t len);
	/* A counter of st that grows with every change to a mailbox (NULL:
	 * none): when a connection's command changed it, every session
	 * learns it as from bimap_changed (an IDLE one at once). */
	uint64_t (*generation)(void *st);
	void *arg;
} bimap_settings;

/* Bind and listen.  0, or -1 with *error_r. */
int bimap_start(uv_loop_t *loop, const bimap_settings *set, bimap **b_r,
		const char **error_r) __attribute__((warn_unused_result));
/* The port bound. */
uint16_t bimap_port(const bimap *b);
/* The store changed (a message synced or sent): every session learns it,
 * an IDLE one at once (EXISTS/EXPUNGE/FETCH). */
void bimap_changed(bimap *b);
/* Close the listener and every connection; the memory goes when the
 * handles have closed (run the loop).  Pending login checks must still
 * be answered (the answer is then dropped).  Accepts NULL; sets *b NULL. */
void bimap_close(bimap **b);

/* The answer to a login callback (loop thread; also when the client has
 * gone meanwhile: req is freed either way). */
void bimap_login_done(bimap_login *req, bool ok);

#endif
