/*
 * store.h — the node's storage interface (docs/ARCHITECTURE.md, "The
 * node").  This first part holds inboxes: envelopes stored for local
 * recipients, fetched by cursor and deleted by ack, with idempotent
 * delivery by (sender, envelope id).
 *
 * Durability: a write is acknowledged (its callback runs with result 0)
 * only after the transaction holding it has been committed with fsync.
 * One writer thread owns the write connection and commits the writes that
 * arrived together in one transaction (group commit), so concurrent
 * deliveries share a disk flush.  Reads use their own connection and may
 * run on any thread (one reader at a time per store; callers serialise).
 *
 * At rest, recipient and sender DIDs are stored only as keyed BLAKE2b
 * hashes under the node storage key; envelopes are end-to-end ciphertext
 * already, and are sealed again with their metadata (see "Deliveries").
 *
 * Implementation: store-sqlite.c (SQLite, WAL, synchronous=FULL).
 */
#ifndef AMP_STORE_H
#define AMP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_KEY_BYTES 32u
#define STORE_BATCH_MAX 256u  /* writes per group commit, at most */

typedef struct store store;

typedef struct store_opts {
	const char *path;                      /* database file */
	const uint8_t *key;                    /* STORE_KEY_BYTES */
	unsigned batch_max;                    /* 0: STORE_BATCH_MAX */
} store_opts;

int store_open(const store_opts *opts, store **store_r, const char **error_r)
	__attribute__((warn_unused_result));
/* Finishes every queued write (their callbacks run), then closes. */
void store_close(store **s);

/* Called on the writer thread once the write is durable (result 0) or has
 * failed (result -1, nothing stored).  seq: the item's sequence number in
 * the recipient's inbox; duplicate: the same (sender, envelope id) was
 * stored for this recipient before, and seq is the first one's. */
typedef void store_put_cb(void *arg, int result, uint64_t seq, bool duplicate);

/* Queue an envelope for recipient rcpt.  Copies everything it needs; the
 * callback runs exactly once, on the writer thread.  Returns -1 (and the
 * callback never runs) only when the store is closing or out of memory. */
int store_inbox_put(store *s, const char *rcpt, const char *sender,
		    const uint8_t envelope_id[16], const uint8_t *env,
		    size_t env_len, uint64_t received, store_put_cb *cb,
		    void *arg) __attribute__((warn_unused_result));

#define STORE_NOTE_MAX 2048u

typedef struct store_item {
	uint64_t seq;
	uint64_t received;
	uint8_t *envelope;                     /* free with store_items_free */
	size_t envelope_len;
	char *note;                            /* the delivery note, or NULL */
} store_item;

/* Items of rcpt with seq > cursor, oldest first, at most limit.  A row
 * that fails to open (corrupt) is moved to the quarantine table and
 * skipped: the others are still served (TESTING.md Q5).  Returns the
 * number of rows quarantined by this call (>= 0), or -1 on error.  (A
 * wrong storage key is refused by store_open, so it cannot make every row
 * look corrupt.) */
int store_inbox_fetch(store *s, const char *rcpt, uint64_t cursor,
		      unsigned limit, store_item **items_r, size_t *n_r)
	__attribute__((warn_unused_result));
void store_items_free(store_item *items, size_t n);

/* Delete rcpt's items with these seqs; durable when it returns 0.
 * Unknown seqs are ignored.  (Synchronous: waits for its group commit.) */
int store_inbox_ack(store *s, const char *rcpt, const uint64_t *seqs,
		    size_t n) __attribute__((warn_unused_result));


/* ------------------------------------------------------------------
 * Deliveries (issue 3): one job stores an envelope for its local
 * recipients and queues it for each remote domain, atomically, deduplicated
 * by (sender, envelope id) as a whole (AMP-R-033).
 *
 * At rest every envelope, inbox `received` time and queue entry is sealed
 * (XChaCha20-Poly1305) under a subkey of the storage key, with the row's
 * identity (table, recipient hash or queue id) as associated data, so a
 * row moved or altered on disk fails to open.  DIDs appear only as keyed
 * hashes.
 */
typedef struct store_delivery {
	const char *sender;                    /* canonical DID */
	const uint8_t *envelope_id;            /* 16 bytes */
	const uint8_t *env;                    /* canonical envelope bytes */
	size_t env_len;
	uint64_t received;                     /* unix seconds */
	const char *const *local;              /* local recipient DIDs */
	/* per local recipient, a note kept with its copy and returned by
	 * store_inbox_fetch (at most STORE_NOTE_MAX bytes); NULL: none */
	const char *const *local_note;
	size_t n_local;
	const char *const *domains;            /* remote domains to relay to */
	size_t n_domains;
	uint64_t expires;                      /* queue entries: give up after */
} store_delivery;

/* A write failed because the disk (or the database's size limit) is
 * full: SMTP answers 452 4.3.1 instead of 451 4.3.0. */
#define STORE_E_FULL (-2)

/* Writer thread, once durable (result 0) or failed (-1, or STORE_E_FULL;
 * nothing stored).
 * duplicate: (sender, envelope id) was delivered before; nothing was
 * stored this time. */
typedef void store_deliver_cb(void *arg, int result, bool duplicate);

/* Copies everything; the callback runs exactly once unless -1 is returned
 * (closing, out of memory, or n_local + n_domains == 0). */
int store_deliver(store *s, const store_delivery *d, store_deliver_cb *cb,
		  void *arg) __attribute__((warn_unused_result));

/* ------------------------------------------------------------------
 * Identity registry.  The DID document is sealed at rest; the DID is only
 * a keyed hash.  Registration consumes a one-time token (the hash of a
 * proof-of-work stamp or of an invite, chosen by the caller) in the same
 * transaction, so neither a DID nor a token can be used twice, also under
 * concurrent requests.
 */
typedef enum store_reg_res {
	STORE_REG_OK = 0,
	STORE_REG_TAKEN,        /* the DID is registered already */
	STORE_REG_TOKEN_USED,   /* the token was consumed before */
} store_reg_res;

/* Synchronous; durable when it returns 0 with *res_r == STORE_REG_OK.
 * token_expires: the token may be forgotten after this (unix seconds). */
int store_register(store *s, const char *did, const char *doc,
		   size_t doc_len, const uint8_t token[32],
		   uint64_t token_expires, store_reg_res *res_r)
	__attribute__((warn_unused_result));

/* 1 and the document (malloc'ed, NUL-terminated) when registered, 0 when
 * not, -1 on error (also when the document fails to open). */
int store_identity_get(store *s, const char *did, char **doc_r,
		       size_t *len_r) __attribute__((warn_unused_result));

/* ------------------------------------------------------------------
 * Relay queue: entries written by store_deliver, one per remote domain.
 * A new entry has created = the delivery's received time and is due then.
 * Ids are in [1, 2^63); done, retry and bounce ignore unknown ids.
 */
typedef struct store_queue_item {
	uint64_t id;
	char domain[256];
	uint8_t *envelope;                     /* free with store_queue_free */
	size_t envelope_len;
	uint32_t attempts;                     /* failed attempts so far */
	uint64_t created, expires;             /* unix seconds */
} store_queue_item;

/* Lease up to max entries that are due: next_attempt <= now, or
 * next_attempt > now + max_delay (the clock went back).  A leased entry's
 * next_attempt becomes now + lease, so the entries of a worker that died
 * come back after the lease.  Rows that fail to open (corrupt, or sealed
 * under another key) are moved to the quarantine table, counted in
 * store_stats.quarantined and skipped. */
int store_queue_lease(store *s, uint64_t now, uint64_t lease,
		      uint64_t max_delay, unsigned max,
		      store_queue_item **items_r, size_t *n_r)
	__attribute__((warn_unused_result));
void store_queue_free(store_queue_item *items, size_t n);

/* Delivered: delete the entry (durable on return). */
int store_queue_done(store *s, uint64_t id) __attribute__((warn_unused_result));
/* Failed for now: attempts + 1, next try at next_attempt.  (An entry that
 * no longer opens is quarantined instead.) */
int store_queue_retry(store *s, uint64_t id, uint64_t next_attempt)
	__attribute__((warn_unused_result));
/* Failed for good: delete the entry and deliver the non-delivery notice
 * ndn (to the sender, a local recipient) in the same transaction.  If the
 * entry is gone already, nothing is delivered.  -1 if ndn is invalid. */
int store_queue_bounce(store *s, uint64_t id, const store_delivery *ndn)
	__attribute__((warn_unused_result));
/* The earliest next_attempt of any entry: 1 and *when_r, or 0 if the
 * queue is empty, -1 on error. */
int store_queue_next(store *s, uint64_t *when_r) __attribute__((warn_unused_result));

typedef struct store_stats {
	uint64_t writes, commits;              /* commits <= writes */
	uint64_t quarantined;                  /* queue rows that failed to open
						  (quarantine table rows) */
	uint64_t queued;                       /* queue entries now */
} store_stats;
void store_get_stats(store *s, store_stats *stats_r);

#endif
