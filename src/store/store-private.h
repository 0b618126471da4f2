/*
 * store-private.h — what the store's own files share: the store and job
 * structures, the writer-thread entry points, sealing and small helpers.
 * store-sqlite.c owns the database, the writer thread and the inbox,
 * registry and relay queue; store-mailq.c owns the mail queue (issue 5)
 * and store-log.c the transparency log (issue 8); both run their jobs on
 * the same writer thread, in the same group commits.
 * Nothing here is for callers outside src/store.
 */
#ifndef AMP_STORE_PRIVATE_H
#define AMP_STORE_PRIVATE_H

#include "store.h"

#include "amp/amp.h"

#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#define SEAL_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define ROW_FORMAT 1u
#define QUEUE_HDR 22u                   /* format, u32, u64, u64, u8 */
#define DOMAIN_MAX AMP_DID_DOMAIN_MAX
#define MQ_BODY_HDR 1u                  /* mail queue body: format byte */
/* Largest plaintext of any row, and so the largest box read from disk:
 * a relay queue entry or a mail queue body. */
#define ROW_MAX_RELAY ((size_t)AMP_ENVELOPE_MAX + QUEUE_HDR + DOMAIN_MAX)
#define ROW_MAX_MQ ((size_t)MAILQ_BODY_MAX + MQ_BODY_HDR)
#define ROW_MAX (ROW_MAX_RELAY > ROW_MAX_MQ ? ROW_MAX_RELAY : ROW_MAX_MQ)
#define QUARANTINE_STEP 256u            /* bad rows moved per lease call */
#define QUEUE_ID_TRIES 8                /* random ids tried per insert */

/* quarantine.next_attempt of rows that are not relay queue rows (those
 * keep theirs, >= 0) */
#define QUARANTINE_INBOX (-1)
#define QUARANTINE_MAILQ (-2)           /* a mail queue row, box as it was */
#define QUARANTINE_MAILQ_BODY (-3)      /* a mail queue body, box as it was */

typedef enum job_kind {
	JOB_DELIVER,            /* asynchronous: a callback, freed after it */
	JOB_ACK,                /* synchronous: the caller owns and waits */
	JOB_REGISTER,
	JOB_LEASE,
	JOB_DONE,
	JOB_RETRY,
	JOB_BOUNCE,
	JOB_INBOX_QUARANTINE,   /* synchronous: inbox rows that do not open */
	JOB_MAILQ,              /* synchronous: a mail queue job (job.mq) */
	JOB_IDENTITY,           /* synchronous: rotate or revoke (+ leaf) */
	JOB_LOG,                /* synchronous: a log job (job.lg) */
} job_kind;

/* An owned, checked copy of a mailq_msg (store-mailq.c). */
typedef struct mq_copy mq_copy;
/* A mail queue job's arguments and results (store-mailq.c). */
typedef struct mq_job mq_job;
/* A log job's arguments (store-log.c). */
typedef struct lg_job lg_job;

/* An owned copy of a store_delivery with the DIDs hashed. */
typedef struct dlv {
	uint8_t dedupe[32];
	bool no_dedupe;                 /* store_mailq_put: no dedupe key */
	uint8_t *env;                   /* wiped before free */
	size_t env_len;
	uint64_t received, expires;
	uint8_t (*rcpt)[32];
	char **note;                    /* per rcpt, NULL entries: none */
	size_t n_local;
	char (*domain)[DOMAIN_MAX + 1];
	size_t n_domains;
	mq_copy *outbound;              /* or NULL */
	uint8_t *receipt;               /* a checked receipt leaf, or NULL */
	size_t receipt_len;
} dlv;

typedef struct job {
	job_kind kind;
	struct job *next;
	dlv d;                          /* deliver; bounce: the ndn */
	store_put_cb *put_cb;           /* store_inbox_put */
	store_deliver_cb *deliver_cb;   /* store_deliver */
	void *arg;
	/* ack */
	uint8_t rcpt[32];
	const uint64_t *seqs;
	size_t n_seqs;
	/* register, identity (doc and leaf are borrowed: the caller waits) */
	uint8_t did[32], token[32];
	const char *doc;
	size_t doc_len;
	uint64_t token_expires;
	store_reg_res reg;
	const uint8_t *leaf;            /* NULL: no log leaf */
	size_t leaf_len;
	uint64_t prev_index, index;     /* identity; index: the new leaf's */
	store_id_res id_res;
	/* queue */
	uint64_t id, now, lease, max_delay, next_attempt;
	unsigned max;
	store_queue_item *items;
	size_t n_items;
	/* mail queue, log (borrowed: the caller waits) */
	mq_job *mq;
	lg_job *lg;
	/* synchronous jobs: the caller waits for done */
	pthread_mutex_t done_lock;
	pthread_cond_t done_cond;
	bool done;
	/* results; the deltas count only once committed */
	int result;
	uint64_t seq;
	bool duplicate;
	int64_t queued_delta;
	uint64_t quarantined_delta;
} job;

/* The mail queue's prepared statements (store-mailq.c). */
typedef struct mq_stmts mq_stmts;
/* The log's prepared statements (store-log.c). */
typedef struct log_stmts log_stmts;

struct store {
	sqlite3 *wdb, *rdb;
	sqlite3_stmt *w_find, *w_mark, *w_inbox_put, *w_inbox_del;
	sqlite3_stmt *w_q_put, *w_q_due, *w_q_get, *w_q_set, *w_q_lease;
	sqlite3_stmt *w_q_del, *w_q_quarantine, *w_in_quarantine;
	sqlite3_stmt *w_id_find, *w_id_put, *w_id_set, *w_tok_find, *w_tok_put;
	sqlite3_stmt *r_fetch, *r_identity, *r_next;
	mq_stmts *mq;
	log_stmts *lg;
	uint8_t hkey[32], inbox_key[32], queue_key[32], doc_key[32];
	uint8_t mailq_key[32];
	unsigned batch_max;
	pthread_t writer;
	pthread_mutex_t lock;   /* queue, closing, stats */
	pthread_cond_t cond;
	job *head, *tail;
	bool closing;
	pthread_mutex_t rlock;  /* the read connection */
	store_stats stats;
};

/* --------------------------------------------------------------- helpers */

static inline void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* SQLite integers are signed: times beyond INT64_MAX are INT64_MAX. */
static inline sqlite3_int64 clamp64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static inline uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static inline void free_wiped(void *p, size_t len)
{
	if (p == NULL)
		return;
	sodium_memzero(p, len);
	free(p);
}

/* Associated data: the table name with its NUL, then the row's identity. */
typedef struct ad {
	uint8_t b[16 + 32];
	size_t len;
} ad;

static inline void ad_make(ad *a, const char *table, const uint8_t *id,
			   size_t id_len)
{
	size_t t = strlen(table) + 1;
	memcpy(a->b, table, t);
	memcpy(a->b + t, id, id_len);
	a->len = t + id_len;
}

/* nonce ‖ ciphertext ‖ tag, malloc'ed; NULL when too large or no memory. */
uint8_t *store_seal(const uint8_t key[32], const ad *a, const uint8_t *pt,
		    size_t pt_len, size_t *len_r);
/* 1 and the plaintext (malloc'ed; wipe it before free), 0 when the box is
 * malformed, forged, moved or sealed under another key, -1 out of memory. */
int store_unseal(const uint8_t key[32], const ad *a, const void *box,
		 size_t len, uint8_t **pt_r, size_t *pt_len_r);

/* KH(HK, label ‖ did): the keyed hash naming a DID at rest (the registry
 * uses the label "identity"). */
void store_did_hash(const store *s, const char *label, const char *did,
		    uint8_t out[32]);

bool store_exec_ok(sqlite3 *db, const char *sql);
/* Step a statement that returns no rows, then reset it: 0 or -1. */
int store_step_done(sqlite3_stmt *st);
/* Run st (bound already; reset after; the caller holds s->rlock), whose
 * one column is a time or NULL.  1 with *when_r (negative: 0), 0 for
 * NULL, -1 on error. */
int store_read_time(sqlite3_stmt *st, uint64_t *when_r);
int store_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n);
/* Grow *p (elements of size elem) to hold need, doubling, at most max. */
int store_grow(void **p, size_t *cap, size_t need, size_t elem, size_t max);

/* Queue a job for the writer thread: -1 when the store is closing. */
int store_enqueue(store *s, job *j);
/* Queue a job the caller owns and wait until it has been committed (or
 * failed).  -1 when the store is closing; else the job's result. */
int store_run_sync(store *s, job *j);

/* Check and copy a delivery (store_deliver's rules); its outbound part
 * through store_mq_copy. */
int store_dlv_init(store *s, const store_delivery *d, const char *rcpt,
		   dlv *out);
void store_dlv_free(dlv *d);
/* On the writer thread, inside the job's savepoint. */
int store_run_deliver(store *s, job *j, const dlv *d);

/* ------------------------------------------- store-mailq.c, for the rest */

/* Tables (for new and existing databases) and statements: NULL or an
 * error message.  store_mq_close accepts a store whose open failed. */
const char *store_mq_open(store *s);
void store_mq_close(store *s);
/* 0, or -1: invalid message or out of memory. */
int store_mq_copy(const mailq_msg *m, mq_copy **c_r);
void store_mq_copy_free(mq_copy **c);
/* On the writer thread: enqueue c (one body, a row per domain). */
int store_mq_insert(store *s, const mq_copy *c);
/* On the writer thread: a JOB_MAILQ job. */
int store_mq_run(store *s, job *j);

/* --------------------------------------------- store-log.c, for the rest */

/* Leaf layout (PROTOCOL.md §11.2): u8 1 ‖ u8 type ‖ u64 time ‖ subject. */
#define LOG_SUBJECT_OFF 10u

/* Tables (for new and existing databases) and statements: NULL or an
 * error message.  Called once the read connection is open and before the
 * statements of store-sqlite.c are prepared (they read `revoked`).
 * store_log_close accepts a store whose open failed. */
const char *store_log_open(store *s);
void store_log_close(store *s);
/* A leaf of this type that decodes (amp_log_leaf_decode) and, with did,
 * whose subject is amp_log_did_hash(did): 0, else -1.  Pure. */
int store_log_leaf_check(const uint8_t *leaf, size_t len, amp_log_type type,
			 const char *did);
/* On the writer thread, inside the job's savepoint: append a checked leaf
 * (log_node rows of every subtree it completes, then its log_leaf row);
 * *index_r its index.  0, or -1 (the savepoint must then be rolled back). */
int store_log_append(store *s, const uint8_t *leaf, size_t len,
		     uint64_t *index_r);
/* On the writer thread: the index of the latest leaf with this subject:
 * 1 and *index_r, 0 when none, -1 on error. */
int store_log_latest(store *s, const uint8_t subject[32], uint64_t *index_r);
/* On the writer thread, by the registry's keyed DID hash: whether it is
 * revoked (1, 0, -1), and revoking it (0, -1). */
int store_log_is_revoked(store *s, const uint8_t did[32]);
int store_log_revoke(store *s, const uint8_t did[32]);
/* On the writer thread: a JOB_LOG job. */
int store_log_run(store *s, job *j);

#endif
