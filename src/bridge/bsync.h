/*
 * bsync.h — the sync of `amp bridge` (issue 6): a worker thread with its
 * own connection to the home node (nclient, authenticated as the user)
 * fetches the inbox from the stored cursor with a long poll, verifies and
 * opens every envelope the way `amp fetch` does (cli_open_fetched:
 * sender's keys resolved, proven key rotations followed, retired keys
 * tried) and hands the result to the loop's thread (uv_async), which
 * stores it (bstore_deliver, committed) in:
 *  - INBOX, or Junk when the node's delivery note says folder=Junk;
 *  - "Unverified" when the envelope fails to decode, verify or open: a
 *    small RFC 5322 message "X-AMP-Verification: failed (REASON)" naming
 *    the sender DID and the envelope id, the sealed envelope attached as
 *    application/octet-stream (never dropped, never shown as verified).
 * Only then is the message acked on the node and the cursor advanced
 * (stored in the bstore); a crash between the two stores nothing twice
 * (bstore_deliver's envelope-id check) and acks it on the next run.
 * A text/plain AMP message (not RFC 5322) is wrapped into a minimal RFC
 * 5322 message (From: the sender's address, To, Date: received, Message-ID
 * from the envelope id, Subject: "(no subject)").
 *
 * Our mail address: at each connection the node is asked for our own
 * DID; the address it names (its canonical_maps reverse entry, else
 * local@domain, PROTOCOL.md §10.3.1) is handed to set.address_cb and
 * used as To: of wrapped text/plain mail.
 *
 * A node that cannot be reached: reconnect with a back-off from 1 s
 * doubling to BSYNC_BACKOFF_MAX_MS.  Log lines key=value (log.h).
 *
 * Threads: bsync_start and bsync_stop on the loop's thread; the bstore
 * is used only from the loop's thread.  bsync_stop interrupts a long
 * poll in progress (SIGUSR1 to the worker, no-op handler) and joins.
 */
#ifndef AMP_BSYNC_H
#define AMP_BSYNC_H

#include "cli.h"
#include "bstore.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define BSYNC_WAIT_MS_DEFAULT 25000u
#define BSYNC_BACKOFF_MAX_MS 60000u
#define BSYNC_BATCH 100u

typedef struct bsync bsync;

typedef struct bsync_settings {
	const cli_env *env;            /* copied: HOME, --doc files */
	cli_conn_opts conn;            /* the home node (client.conf) */
	const amp_identity *id;        /* borrowed: outlives the sync */
	amp_identity *const *retired;  /* borrowed, n_retired of them */
	size_t n_retired;
	const char *address;           /* our local@domain (To: of wrapped
					  text/plain mail), copied */
	uint32_t wait_ms;              /* long poll, 0: the default */
	bstore *store;                 /* used on the loop thread only */
	/* After each stored message (loop thread): wake IDLE sessions. */
	void (*changed)(void *arg);
	/* Our mail address as the node names it (loop thread; may be NULL). */
	void (*address_cb)(void *arg, const char *address);
	void *arg;
} bsync_settings;

int bsync_start(uv_loop_t *loop, const bsync_settings *set, bsync **s_r,
		const char **error_r) __attribute__((warn_unused_result));
/* Stop the worker (interrupting a long poll) and join it; the async
 * handle closes with the loop.  Accepts NULL; sets *s NULL. */
void bsync_stop(bsync **s);

/* ---- pure helpers (tested alone) ---- */

/* The message stored in "Unverified" for an envelope that failed:
 * malloc'ed into *msg_r.  sender/idhex may be "" (undecodable). */
int bsync_unverified_message(const char *reason, const char *sender,
			     const char *idhex, uint64_t received,
			     const uint8_t *envelope, size_t len,
			     uint8_t **msg_r, size_t *len_r)
	__attribute__((warn_unused_result));
/* A text/plain AMP message wrapped as RFC 5322 (malloc'ed). */
int bsync_wrap_text(const char *from_addr, const char *to_addr,
		    const char *idhex, uint64_t received, const uint8_t *body,
		    size_t len, uint8_t **msg_r, size_t *len_r)
	__attribute__((warn_unused_result));
/* did:aftersmtp:domain:local → "local@domain" (false when not such a DID). */
bool bsync_did_address(const char *did, char *out, size_t size);

#endif
