/*
 * bstore.h — the local store of `amp bridge` (issue 6): the user's
 * mailboxes and messages in one SQLite database, HOME/bridge/store.db
 * (0600), behind the imap_mbox_ops interface of src/imap/imap-mbox.h.
 *
 * At rest: every message's bytes and its cached IMAP data (ENVELOPE,
 * BODYSTRUCTURE: they hold subjects and addresses) are sealed with
 * crypto_secretbox (XSalsa20-Poly1305) under a 32-byte key the caller
 * derives from the keystore (bridge.c: crypto_kdf from the identity's
 * secret, context "ampbrdg1"); a fresh random nonce per blob, the
 * message's mailbox-independent id as additional binding (a blob moved
 * to another row fails to open).  Mailbox names, flags, sizes, dates and
 * UIDs are not sealed (Dovecot's index holds as much).
 *
 * UIDs: UIDVALIDITY is chosen when a mailbox is created (the creation
 * time in seconds, made strictly greater than any earlier one of the
 * store) and never changes; UIDNEXT only grows, also across DELETE and
 * CREATE of the same name (a new UIDVALIDITY then).  Every change is
 * one transaction, committed (synchronous=FULL) before the call returns.
 *
 * Mailboxes made at creation: INBOX, Sent (\Sent), Drafts (\Drafts),
 * Trash (\Trash), Junk (\Junk), Archive (\Archive) and "Unverified"
 * (messages whose envelope failed to verify, bsync.c).
 *
 * The sync state: the node inbox cursor and, per stored message, the
 * envelope id it came from (so a message fetched again after a crash
 * between store and ack is not stored twice).
 */
#ifndef AMP_BSTORE_H
#define AMP_BSTORE_H

#include "imap-mbox.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BSTORE_KEY_BYTES 32u
#define BSTORE_UNVERIFIED "Unverified"

/* Limits (a call beyond one fails with -1): a message's bytes (an
 * Unverified message carries a whole sealed envelope, AMP_ENVELOPE_MAX,
 * in base64), mailboxes, levels of a name, messages of one mailbox (a
 * view holds 12 bytes per message). */
#define BSTORE_MSG_MAX (96u * 1024u * 1024u)
#define BSTORE_MAILBOXES_MAX 1024u
#define BSTORE_DEPTH_MAX 16u
#define BSTORE_MESSAGES_MAX 1000000u

typedef struct bstore bstore;

/* Open (creating when missing) the database at path with key (copied,
 * wiped on close).  A database sealed under another key: -1 "wrong
 * key" (a check blob is opened at start). */
int bstore_open(const char *path, const uint8_t key[BSTORE_KEY_BYTES],
		bstore **b_r, const char **error_r)
	__attribute__((warn_unused_result));
void bstore_close(bstore **b);

/* The interface for imap-session.c; st is the bstore. */
const imap_mbox_ops *bstore_ops(void);

/* A message from the node: stored in mailbox (INBOX, Junk or
 * Unverified) unless envelope_id was stored before (then 1, nothing
 * done); 0 stored; -1 error. */
int bstore_deliver(bstore *b, const char *mailbox,
		   const uint8_t envelope_id[16], const uint8_t *msg,
		   size_t len, int64_t internaldate, uint32_t *uid_r,
		   const char **error_r) __attribute__((warn_unused_result));

/* The node inbox cursor (0 at first). */
int bstore_cursor_get(bstore *b, uint64_t *cursor_r)
	__attribute__((warn_unused_result));
int bstore_cursor_set(bstore *b, uint64_t cursor)
	__attribute__((warn_unused_result));

/* A counter that grows with every change to any mailbox: sessions
 * compare it to know whether to resync their view. */
uint64_t bstore_generation(const bstore *b);

#endif
