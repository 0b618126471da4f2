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
	/* also enqueue this in the mail queue, in the same transaction (see
	 * "Mail queue" below), or NULL.  With it, n_local + n_domains may be
	 * 0, and env may then be NULL; the (sender, envelope id) duplicate
	 * check covers it too (a duplicate enqueues nothing). */
	const struct mailq_msg *outbound;
	/* a receipt leaf (PROTOCOL.md §11.2, subject = the envelope digest)
	 * to append in the same transaction unless the delivery is a
	 * duplicate; NULL: none */
	const uint8_t *receipt;
	size_t receipt_len;
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
 * (closing, out of memory, invalid input, or n_local + n_domains == 0 and
 * no outbound). */
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
/* The same, appending the registration's log leaf (PROTOCOL.md §11.2,
 * subject = did_hash) in the same transaction: *index_r its index. */
int store_register_logged(store *s, const char *did, const char *doc,
			  size_t doc_len, const uint8_t token[32],
			  uint64_t token_expires, const uint8_t *leaf,
			  size_t leaf_len, store_reg_res *res_r,
			  uint64_t *index_r) __attribute__((warn_unused_result));

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
	uint64_t quarantined;                  /* rows that failed to open (relay
						  queue, inbox, mail queue):
						  the quarantine table's rows */
	uint64_t queued;                       /* queue entries now */
} store_stats;
void store_get_stats(store *s, store_stats *stats_r);

/* ------------------------------------------------------------------
 * Mail queue (issue 5): outbound SMTP messages waiting for delivery.
 * One row per (message, destination domain); the message body is stored
 * once (sealed, like every row) and shared by its domains' rows.
 * The NATS JetStream implementation (a later issue) implements the same
 * functions.
 *
 * At rest: the body, and each row's sender, sender DID, ENVID, Message-ID,
 * recipients (with ORCPT, NOTIFY and reply texts) and last reply are
 * sealed with the row's id as associated data (the sealed part also names
 * the row's domain and body, so a row pointed at another body or domain
 * fails to open).  In clear: id, domain, lane, state, attempts, the warned
 * flag, the times and the body's size.  A row or body that fails to open
 * is moved to the quarantine table (counted in store_stats.quarantined)
 * and skipped; the rows of a body that fails to open go with it.
 *
 * Every function here may be called from any thread but not from a store
 * callback; the synchronous ones wait for the writer thread (one group
 * commit), the read-only ones (list, get, stats, next) use the read
 * connection.
 */
#define MAILQ_RCPTS_MAX 1000u                    /* recipients per message */
#define MAILQ_BODY_MAX (64u * 1024u * 1024u)     /* body bytes */
#define MAILQ_ADDR_MAX 512u      /* an address (no CR, LF, space, <, >, controls) */
#define MAILQ_PARAM_MAX 512u     /* ENVID, ORCPT (xtext: no space, no controls) */
#define MAILQ_MSGID_MAX 998u     /* Message-ID value (no controls but tab) */
#define MAILQ_REPLY_MAX 1024u    /* reply texts: longer ones are cut, control
				    characters (CR, LF...) become spaces */
/* A due row's next_attempt further than this after `now` means the clock
 * went back: the row is due (store_mailq_lease).  A lease may not be
 * longer, and an outcome's next_attempt must stay within it (retry delays
 * are at most smtp_out_retry_max, 7 days, plus jitter). */
#define MAILQ_DELAY_MAX (30u * 86400u)

enum { MAILQ_CRITICAL = 0, MAILQ_NORMAL = 1, MAILQ_BULK = 2, MAILQ_LANES = 3 };

typedef enum mailq_state {
	MAILQ_ACTIVE = 0,     /* due now, or leased by a delivery attempt */
	MAILQ_DEFERRED = 1,   /* a temporary failure: waits for next_attempt */
	MAILQ_HOLD = 2,       /* held by the operator (or policy): never leased */
	MAILQ_BOUNCED = 3,    /* given up: body gone, row kept for inspection
	                         until bounce_keep seconds after it bounced */
} mailq_state;

/* DSN NOTIFY bits (RFC 3461); 0 = not given (default: failure, delay).
 * NEVER is refused together with another bit. */
#define MAILQ_NOTIFY_NEVER   0x1u
#define MAILQ_NOTIFY_SUCCESS 0x2u
#define MAILQ_NOTIFY_FAILURE 0x4u
#define MAILQ_NOTIFY_DELAY   0x8u

typedef struct mailq_rcpt {
	const char *addr;        /* the RCPT TO address, without <> */
	const char *orcpt;       /* ORCPT as given (xtext "rfc822;..."), or NULL */
	unsigned notify;         /* MAILQ_NOTIFY_* bits */
} mailq_rcpt;

typedef struct mailq_msg {
	const char *sender;      /* MAIL FROM address without <>, "" = null sender */
	const char *sender_did;  /* DSNs go to this DID as AMP mail; NULL: by SMTP to sender */
	const char *envid;       /* DSN ENVID (xtext) or NULL */
	unsigned ret;            /* 0 unset, 1 FULL, 2 HDRS */
	const char *msgid;       /* the Message-ID field value, for logs (may be NULL) */
	const mailq_rcpt *rcpts; /* every recipient, any domain: split per domain
	                            (the part after the last '@', lower-cased) */
	size_t n_rcpts;          /* 1..1000 */
	const uint8_t *body;     /* the message as it will be sent */
	size_t body_len;         /* 1 .. 64 MiB */
	unsigned lane;           /* MAILQ_CRITICAL .. MAILQ_BULK */
	uint64_t created;        /* unix seconds: arrival time */
	uint64_t expires;        /* unix seconds: bounce (DSN) when passed */
} mailq_msg;
/* A new row is ACTIVE, due at `created`, attempts 0.  A recipient given
 * twice (same local part, domain in any case) is kept once. */

/* A queue row, as leased, listed or shown.  Owned by the caller: free with
 * mailq_items_free.  A BOUNCED row: next_attempt is when it bounced, and
 * rcpts are the recipients its last outcome finished, with their replies. */
typedef struct mailq_item {
	uint64_t id;             /* > 0, random, unique while the row exists */
	char domain[256];
	unsigned lane;
	mailq_state state;
	unsigned attempts;
	bool warned;             /* a delay DSN was sent */
	uint64_t created, expires, next_attempt;
	char *sender, *sender_did, *envid, *msgid;   /* NULL when absent */
	unsigned ret;
	size_t n_rcpts;          /* recipients still to deliver */
	struct mailq_item_rcpt {
		char *addr, *orcpt;
		unsigned notify;
		char *last_reply;    /* last error text, or NULL */
	} *rcpts;
	char *last_reply;        /* the entry's last error (session-level), or NULL */
	uint8_t *body;           /* only from lease and from get(with_body) */
	size_t body_len;
} mailq_item;

/* Enqueue alone (callback as store_deliver, after fsync; duplicate is
 * always false).  For atomicity with inbox delivery, set
 * store_delivery.outbound instead.  Copies everything; -1 (and no
 * callback) on invalid input, closing or out of memory. */
int store_mailq_put(store *s, const mailq_msg *m, store_deliver_cb *cb,
		    void *arg) __attribute__((warn_unused_result));

/* Due rows of one lane (state ACTIVE or DEFERRED, next_attempt <= now, or
 * next_attempt implausibly far ahead: the clock went back), oldest
 * next_attempt first, at most max: each becomes ACTIVE with next_attempt =
 * now + lease (so a crashed attempt comes back after the lease) and
 * attempts + 1.  Bodies included.  Synchronous (writer thread).
 * (Implausible: more than MAILQ_DELAY_MAX after now; lease <=
 * MAILQ_DELAY_MAX.)  On 0 with *n_r == 0, *items_r is NULL. */
int store_mailq_lease(store *s, unsigned lane, uint64_t now, uint64_t lease,
		      size_t max, mailq_item **items_r, size_t *n_r)
	__attribute__((warn_unused_result));
void mailq_items_free(mailq_item *items, size_t n);   /* wipes bodies */

/* The outcome of one attempt on one row. */
typedef struct mailq_outcome {
	uint64_t id;
	/* per recipient (same order as the leased item's rcpts): */
	const uint8_t *done;     /* n bytes: 1 = finished (delivered or bounced), 0 = keep */
	const char *const *reply;/* per recipient: last reply text kept for a kept one, or NULL */
	size_t n;
	const char *last_reply;  /* session-level reason, or NULL */
	uint64_t next_attempt;   /* for kept recipients: state DEFERRED until then */
	bool warned;             /* set the warned flag */
	bool bounced;            /* no recipients left and it bounced: keep as BOUNCED */
	/* written in the same transaction, or NULL: */
	const store_delivery *dsn_inbox;   /* an AMP DSN into a local inbox */
	const mailq_msg *dsn_mail;         /* a DSN to send by SMTP */
} mailq_outcome;
/* Details: n must be the row's recipient count (else -1, nothing written).
 * reply may be NULL (no replies); a NULL reply[i] leaves recipient i's
 * earlier reply as it was.  last_reply replaces the row's (NULL clears it).
 * A row held meanwhile stays HOLD.  bounced with recipients kept is
 * ignored; a BOUNCED row records next_attempt (pass now; 0: the wall
 * clock) as the time it bounced, for store_mailq_purge. */

/* Record an outcome: finished recipients leave the row; no recipient left
 * -> the row is deleted (or BOUNCED, body dropped) and the body too when no
 * other row uses it.  0, -1 error, 1 the row is gone (deleted by the admin
 * meanwhile: the DSN parts are still written).  Synchronous. */
int store_mailq_update(store *s, const mailq_outcome *o)
	__attribute__((warn_unused_result));

/* Admin operations (synchronous): */
typedef struct mailq_filter {
	int state;               /* -1 any, else mailq_state */
	int lane;                /* -1 any */
	const char *domain;      /* NULL any (compared without case) */
	size_t limit;            /* 0: no limit */
} mailq_filter;
/* Ordered by next_attempt, then id.  *items_r is NULL when *n_r is 0. */
int store_mailq_list(store *s, const mailq_filter *f, mailq_item **items_r,
		     size_t *n_r) __attribute__((warn_unused_result));   /* no bodies */
int store_mailq_get(store *s, uint64_t id, bool with_body, mailq_item **item_r)
	__attribute__((warn_unused_result));   /* 0, 1 not found, -1 */
/* id 0 = every row.  Returns the number of rows changed, or -1. */
int store_mailq_hold(store *s, uint64_t id) __attribute__((warn_unused_result));
/* A row held while leased comes back when its lease ends, not before. */
int store_mailq_release(store *s, uint64_t id, uint64_t now)   /* HOLD -> due now */
	__attribute__((warn_unused_result));
int store_mailq_flush(store *s, uint64_t now)    /* DEFERRED -> due now */
	__attribute__((warn_unused_result));
int store_mailq_delete(store *s, uint64_t id)    /* any state, no DSN */
	__attribute__((warn_unused_result));
int store_mailq_purge(store *s, uint64_t before) /* BOUNCED rows bounced before */
	__attribute__((warn_unused_result));

typedef struct mailq_stats {
	uint64_t count[MAILQ_LANES][4];   /* per lane, per state */
	uint64_t oldest[MAILQ_LANES];     /* created of the oldest non-bounced row, 0 none */
	uint64_t bytes;                   /* body bytes stored */
} mailq_stats;
int store_mailq_stats(store *s, mailq_stats *st) __attribute__((warn_unused_result));

/* The earliest next_attempt of a leasable row in this lane (0 if one is due
 * now), 1 when none, -1 on error.
 * That is: returns 0 with *when_r = the smallest next_attempt of the lane's
 * ACTIVE and DEFERRED rows (<= now: one is due now; a leased row counts
 * with its lease's end), 1 when the lane has none, -1 on error.  After the
 * clock went back *when_r may be far ahead: cap the wait. */
int store_mailq_next(store *s, unsigned lane, uint64_t *when_r)
	__attribute__((warn_unused_result));

/* ------------------------------------------------------------------
 * Transparency log (issue 8, PROTOCOL.md §11): the node's append-only
 * Merkle log, in the same database.  Leaves are appended by the writer
 * thread in the same transaction as the change they record (registration,
 * rotation, revocation, an accepted delivery), so the log and the registry
 * cannot disagree after a crash; a group commit appends all its leaves
 * at once.  Leaves, subtree hashes, heads and cosignatures are public:
 * they are stored in clear (the DIDs only as the log's did_hash).
 *
 * Tables: log_leaf(idx, subject, leaf), log_node(pos, hash) -- every
 * complete subtree, numbered in the order appends make them, so a proof
 * is O(log^2 n) point reads --
 * log_head (every signed head), log_cosig, witness (the last head this
 * node cosigned per witnessed log) and log_alarm (evidence).
 * Reads (proofs, entries, heads) see committed data only.
 */
#include "amp/amp-log.h"

typedef enum store_id_res {
	STORE_ID_OK = 0,
	STORE_ID_TAKEN,         /* register: the DID is registered already */
	STORE_ID_TOKEN_USED,    /* register: the token was consumed before */
	STORE_ID_UNKNOWN,       /* rotate/revoke: not registered */
	STORE_ID_REVOKED,       /* rotate/revoke: revoked before */
	STORE_ID_STALE,         /* rotate/revoke: the DID's latest leaf is not
				   prev_index any more (a concurrent change) */
} store_id_res;

/* prev_index of a DID that has no leaf (registered before the log). */
#define STORE_LOG_NONE UINT64_MAX

/* Rotate or revoke a registered identity, appending its leaf (encoded,
 * subject = did_hash) in the same transaction.  prev_index: the index of
 * the DID's latest leaf the caller checked the change against, or
 * STORE_LOG_NONE when it has none.  Rotate:
 * doc is the new document (replaces the old); revoke: doc is NULL, and
 * from then on store_identity_get answers 0 and the DID stays taken.
 * Synchronous; *index_r the new leaf's index. */
int store_identity_change(store *s, const char *did, const char *doc,
			  size_t doc_len, const uint8_t *leaf, size_t leaf_len,
			  uint64_t prev_index, store_id_res *res_r,
			  uint64_t *index_r) __attribute__((warn_unused_result));

/* 1 when the DID was revoked, 0 when not (registered or not), -1 error. */
int store_identity_revoked(store *s, const char *did)
	__attribute__((warn_unused_result));

/* Committed size and root (MTH) of the log. */
int store_log_state(store *s, uint64_t *size_r, uint8_t root[32])
	__attribute__((warn_unused_result));
/* One leaf: 1 found (*leaf_r malloc'ed), 0 no such index, -1 error. */
int store_log_leaf(store *s, uint64_t index, uint8_t **leaf_r, size_t *len_r)
	__attribute__((warn_unused_result));
/* Leaves [start, start+count) that exist (count <= 1000), in order:
 * *leaves_r an array of *n_r malloc'ed buffers with lens; free with
 * store_log_leaves_free. */
int store_log_entries(store *s, uint64_t start, unsigned count,
		      uint8_t ***leaves_r, size_t **lens_r, size_t *n_r)
	__attribute__((warn_unused_result));
void store_log_leaves_free(uint8_t **leaves, size_t *lens, size_t n);
/* Indexes of the leaves with this subject that are < below, ascending,
 * at most max (the oldest max).  0 with *n_r (maybe 0), or -1. */
int store_log_find(store *s, const uint8_t subject[32], uint64_t below,
		   uint64_t *idx, size_t max, size_t *n_r)
	__attribute__((warn_unused_result));
/* RFC 9162 proofs over the committed tree (see amp-log.h for the bounds);
 * -1 also when a size exceeds the committed size. */
int store_log_inclusion(store *s, uint64_t index, uint64_t size,
			uint8_t path[][32], size_t *n_r)
	__attribute__((warn_unused_result));
int store_log_consistency(store *s, uint64_t first, uint64_t second,
			  uint8_t path[][32], size_t *n_r)
	__attribute__((warn_unused_result));

/* Signed heads.  put: synchronous, durable; a head of a size already
 * stored replaces nothing (returns 0); -1 when its size is beyond the
 * committed log or its root is not the log's at that size.  latest: 1
 * and the head of the largest size, 0 when none yet.  get: the head of
 * exactly this size. */
int store_log_head_put(store *s, const amp_log_head *h)
	__attribute__((warn_unused_result));
int store_log_head_latest(store *s, amp_log_head *h_r)
	__attribute__((warn_unused_result));
int store_log_head_get(store *s, uint64_t size, amp_log_head *h_r)
	__attribute__((warn_unused_result));

/* Witness cosignatures of our heads. */
typedef struct store_cosig {
	char witness[AMP_DID_MAX + 1];
	uint64_t time;
	uint8_t sig[64];
} store_cosig;
#define STORE_COSIG_MAX 32u
/* put: replaces this witness's cosignature of that size; durable.  -1
 * when no head of that size is stored, or when it has STORE_COSIG_MAX
 * other witnesses' already. */
int store_log_cosig_put(store *s, uint64_t size, const store_cosig *c)
	__attribute__((warn_unused_result));
/* The cosignatures of the head of this size (at most STORE_COSIG_MAX). */
int store_log_cosigs(store *s, uint64_t size, store_cosig *out, size_t max,
		     size_t *n_r) __attribute__((warn_unused_result));

/* As a witness: the last head of log `h->log` this node cosigned. */
int store_witness_get(store *s, const char *log, amp_log_head *h_r)
	__attribute__((warn_unused_result));   /* 1, 0 none, -1 */
int store_witness_put(store *s, const amp_log_head *h)
	__attribute__((warn_unused_result));
/* Evidence of a misbehaving log: the head we had and the one that
 * contradicts it, and why.  Kept until deleted by hand. */
typedef struct store_alarm {
	uint64_t id, at;
	char reason[200];
	amp_log_head had, got;
} store_alarm;
int store_log_alarm_put(store *s, const store_alarm *a)
	__attribute__((warn_unused_result));
/* The newest max alarms, newest first. */
int store_log_alarms(store *s, store_alarm *out, size_t max, size_t *n_r)
	__attribute__((warn_unused_result));
/* Is this log alarmed (1), so that we cosign nothing more of it? */
int store_log_alarmed(store *s, const char *log)
	__attribute__((warn_unused_result));

#endif
