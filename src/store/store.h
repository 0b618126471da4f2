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
 * already and are stored as they are.
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

typedef struct store_item {
	uint64_t seq;
	uint64_t received;
	uint8_t *envelope;                     /* free with store_items_free */
	size_t envelope_len;
} store_item;

/* Items of rcpt with seq > cursor, oldest first, at most limit. */
int store_inbox_fetch(store *s, const char *rcpt, uint64_t cursor,
		      unsigned limit, store_item **items_r, size_t *n_r)
	__attribute__((warn_unused_result));
void store_items_free(store_item *items, size_t n);

/* Delete rcpt's items with these seqs; durable when it returns 0.
 * Unknown seqs are ignored.  (Synchronous: waits for its group commit.) */
int store_inbox_ack(store *s, const char *rcpt, const uint64_t *seqs,
		    size_t n) __attribute__((warn_unused_result));

typedef struct store_stats {
	uint64_t writes, commits;              /* commits <= writes */
} store_stats;
void store_get_stats(store *s, store_stats *stats_r);

#endif
