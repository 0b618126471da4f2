/*
 * store-sqlite.c — store.h on SQLite: WAL journal, synchronous=FULL (a
 * COMMIT returns after the WAL is fsync'd), one writer thread doing group
 * commit, one read connection behind a mutex.
 *
 * Keys.  Five subkeys of the storage key K (crypto_kdf, BLAKE2b, context
 * "AMPstore"): 1 = HK for hashing, 2 seals inbox rows, 3 queue rows, 4 DID
 * documents, 5 mail queue rows and bodies (store-mailq.c).  KH(HK, x) is
 * BLAKE2b-256 keyed with HK; a label includes its NUL byte; lp(s) is a
 * 4-byte big-endian length, then s.
 *   seal_T(AD, pt) = nonce ‖ XChaCha20-Poly1305(subkey T, nonce, AD, pt),
 * with a random 24-byte nonce per row (a new one on every rewrite).  AD is
 * the table name with its NUL, then the row's identity, so a row copied to
 * another recipient, queue id or DID fails to open.
 *
 * Tables (PRAGMA user_version = 1):
 *   inbox(seq, rcpt, box)            rcpt = KH(HK, "rcpt" ‖ did)
 *     box = seal_inbox("inbox" ‖ rcpt, 01 ‖ u64 received ‖ envelope)
 *   delivered(dedupe, seq)           kept after acks, so a delivery retried
 *                                    after the ack is still recognised
 *     store_inbox_put: KH(HK, "dedupe" ‖ lp(sender) ‖ id ‖ lp(rcpt)), seq
 *     store_deliver:   KH(HK, "deliver" ‖ lp(sender) ‖ id), first inbox
 *                      seq of the delivery or 0
 *   queue(id, next_attempt, box)     id random in [1, 2^63)
 *     box = seal_queue("queue" ‖ u64 id, 01 ‖ u32 attempts ‖ u64 created ‖
 *                      u64 expires ‖ u8 len ‖ domain ‖ envelope)
 *   quarantine(qid, id, next_attempt, box, at)
 *                                    rows that failed to open, moved as
 *                                    they were (an operator may still open
 *                                    them with the right key); kept.
 *                                    next_attempt: the queue row's, or -1
 *                                    inbox (box = rcpt ‖ box), -2 mail
 *                                    queue row, -3 mail queue body
 *   identity(did, doc)               did = KH(HK, "identity" ‖ did)
 *     doc = seal_doc("identity" ‖ did hash, 01 ‖ document); a rotation
 *     replaces it (sealed anew); a revoked DID keeps its row (taken)
 *   token(token, expires)            token = KH(HK, "token" ‖ token)
 *   mailq, mailq_body                the mail queue: see store-mailq.c
 *                                    (created at every open if missing)
 *   log_leaf, log_node, log_head, log_cosig, witness, log_alarm, revoked
 *                                    the transparency log: see
 *                                    store-log.c (created at every open
 *                                    if missing)
 * In clear on disk: the hashes, inbox seqs, queue ids and next_attempt
 * times, token expiries and quarantine times.  Integers are big-endian.
 * Pruning `delivered` and expired tokens comes with the retention settings.
 * Every statement is prepared with bound parameters.
 *
 * Each write runs inside a SAVEPOINT of the batch transaction, so one
 * failing write (e.g. a full disk) fails alone; if the COMMIT fails, every
 * write of the batch reports failure and nothing was stored.  Rows are
 * sealed and opened on the writer thread (the read side opens its own).
 * The synchronous calls (ack, register, queue_*, most mailq_*) wait for
 * the writer, so they must not be called from a store callback.  The mail
 * queue's and the log's jobs run on the same writer (store-private.h is
 * the seam).  A log leaf (registration, rotation, revocation, a delivery's
 * receipt) is appended by the job that makes the change, inside its
 * savepoint, so both are kept or neither.
 *
 * Limits: envelopes AMP_ENVELOPE_MAX bytes, documents AMP_DIDDOC_MAX, DIDs
 * AMP_DID_MAX, domains AMP_DID_DOMAIN_MAX, local recipients + domains of a
 * delivery AMP_RECIPIENTS_MAX; larger or empty arguments return -1.  A row
 * read from disk is checked before use: an inbox row or a document that
 * fails to open makes the read return -1; a queue row is quarantined.
 */
#include "store-private.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INBOX_HDR 9u                    /* format, u64 received */
/* Inbox rows of format 2 carry a delivery note after the header: u16
 * length, the note's bytes, then the envelope. */
#define ROW_FORMAT_NOTE 2u
#define DOC_HDR 1u                      /* format */
#define SCHEMA_VERSION 1

_Static_assert(DOMAIN_MAX < sizeof(((store_queue_item *)0)->domain),
	       "queue item domain buffer");
_Static_assert(SEAL_NONCE + ROW_MAX + SEAL_TAG < INT_MAX, "row size");
_Static_assert(AMP_DIDDOC_MAX + DOC_HDR <= ROW_MAX, "document size");

static const char pragma_sql[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=FULL;";

static const char schema_sql[] =
	"BEGIN IMMEDIATE;"
	"CREATE TABLE inbox("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  rcpt BLOB NOT NULL,"
	"  box BLOB NOT NULL);"
	"CREATE INDEX inbox_rcpt ON inbox(rcpt, seq);"
	"CREATE TABLE delivered("
	"  dedupe BLOB PRIMARY KEY,"
	"  seq INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE queue("
	"  id INTEGER PRIMARY KEY,"
	"  next_attempt INTEGER NOT NULL,"
	"  box BLOB NOT NULL);"
	"CREATE INDEX queue_due ON queue(next_attempt);"
	"CREATE TABLE quarantine("
	"  qid INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  id INTEGER NOT NULL,"
	"  next_attempt INTEGER NOT NULL,"
	"  box BLOB NOT NULL,"
	"  at INTEGER NOT NULL);"
	"CREATE TABLE identity("
	"  did BLOB PRIMARY KEY,"
	"  doc BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE token("
	"  token BLOB PRIMARY KEY,"
	"  expires INTEGER NOT NULL) WITHOUT ROWID;"
	"PRAGMA user_version=1;"
	"COMMIT;";

typedef struct stmt_def {
	size_t off;             /* of the sqlite3_stmt * in struct store */
	bool read;              /* on the read connection */
	const char *sql;
} stmt_def;

#define W(f, q) { offsetof(store, f), false, q }
#define R(f, q) { offsetof(store, f), true, q }
static const stmt_def stmt_defs[] = {
	W(w_find, "SELECT seq FROM delivered WHERE dedupe=?"),
	W(w_mark, "INSERT INTO delivered(dedupe, seq) VALUES(?, ?)"),
	W(w_inbox_put, "INSERT INTO inbox(rcpt, box) VALUES(?, ?)"),
	W(w_inbox_del, "DELETE FROM inbox WHERE seq=? AND rcpt=?"),
	W(w_q_put, "INSERT INTO queue(id, next_attempt, box) VALUES(?, ?, ?)"),
	W(w_q_due, "SELECT id, box FROM queue WHERE next_attempt<=?1 OR "
		   "next_attempt>?2 ORDER BY next_attempt, id"),
	W(w_q_get, "SELECT box FROM queue WHERE id=?"),
	W(w_q_set, "UPDATE queue SET next_attempt=?2, box=?3 WHERE id=?1"),
	W(w_q_lease, "UPDATE queue SET next_attempt=?2 WHERE id=?1"),
	W(w_q_del, "DELETE FROM queue WHERE id=?"),
	W(w_q_quarantine, "INSERT INTO quarantine(id, next_attempt, box, at) "
			  "SELECT id, next_attempt, box, ?2 FROM queue "
			  "WHERE id=?1"),
	/* an inbox row keeps its recipient hash in front of its box; its
	 * next_attempt is -1 (queue rows have >= 0) */
	W(w_in_quarantine, "INSERT INTO quarantine(id, next_attempt, box, at) "
			   "SELECT seq, -1, rcpt || box, ?3 FROM inbox "
			   "WHERE seq=?1 AND rcpt=?2"),
	W(w_id_find, "SELECT 1 FROM identity WHERE did=?"),
	W(w_id_put, "INSERT INTO identity(did, doc) VALUES(?, ?)"),
	W(w_id_set, "UPDATE identity SET doc=?2 WHERE did=?1"),
	W(w_tok_find, "SELECT 1 FROM token WHERE token=?"),
	W(w_tok_put, "INSERT INTO token(token, expires) VALUES(?, ?)"),
	R(r_fetch, "SELECT seq, box FROM inbox WHERE rcpt=? AND seq>? "
		   "ORDER BY seq LIMIT ?"),
	/* a revoked identity keeps its row but is not served */
	R(r_identity, "SELECT doc FROM identity WHERE did=?1 AND NOT EXISTS "
		      "(SELECT 1 FROM revoked WHERE did=?1)"),
	R(r_next, "SELECT min(next_attempt) FROM queue"),
};
#undef W
#undef R

static sqlite3_stmt **stmt_at(store *s, const stmt_def *d)
{
	return (sqlite3_stmt **)(void *)((char *)s + d->off);
}

/* --------------------------------------------------------------- helpers */

static bool did_ok(const char *did)
{
	if (did == NULL)
		return false;
	size_t n = strnlen(did, AMP_DID_MAX + 1);
	return n > 0 && n <= AMP_DID_MAX;
}

static bool domain_ok(const char *domain)
{
	if (domain == NULL)
		return false;
	size_t n = strnlen(domain, DOMAIN_MAX + 1);
	return n > 0 && n <= DOMAIN_MAX;
}

/* Grow *p (elements of size elem) to hold need, doubling, at most max. */
int store_grow(void **p, size_t *cap, size_t need, size_t elem, size_t max)
{
	if (need <= *cap)
		return 0;
	if (need > max)
		return -1;
	size_t n = *cap != 0 ? *cap : 16;
	while (n < need)
		n = n > SIZE_MAX / 2 ? SIZE_MAX : n * 2;
	if (n > max)
		n = max;
	if (n > SIZE_MAX / elem)
		return -1;
	void *q = realloc(*p, n * elem);
	if (q == NULL)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

/* ------------------------------------------------------- hashing, sealing */

static void did_hash(const store *s, const char *label, const char *did,
		     uint8_t out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, s->hkey, sizeof(s->hkey), 32);
	crypto_generichash_update(&st, (const uint8_t *)label, strlen(label) + 1);
	crypto_generichash_update(&st, (const uint8_t *)did, strlen(did));
	crypto_generichash_final(&st, out, 32);
}

void store_did_hash(const store *s, const char *label, const char *did,
		    uint8_t out[32])
{
	did_hash(s, label, did, out);
}

/* Hash lp(str): a 4-byte big-endian length, then the bytes. */
static void hash_lp(crypto_generichash_state *st, const char *str)
{
	size_t n = strlen(str);
	uint8_t l[4];
	put_u32(l, (uint32_t)n);
	crypto_generichash_update(st, l, 4);
	crypto_generichash_update(st, (const uint8_t *)str, n);
}

/* KH(HK, "dedupe" ‖ lp(sender) ‖ envelope id ‖ lp(rcpt)), or without rcpt
 * KH(HK, "deliver" ‖ lp(sender) ‖ envelope id) for a whole delivery. */
static void dedupe_hash(const store *s, const char *sender,
			const uint8_t envelope_id[16], const char *rcpt,
			uint8_t out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, s->hkey, sizeof(s->hkey), 32);
	if (rcpt != NULL)
		crypto_generichash_update(&st, (const uint8_t *)"dedupe", 7);
	else
		crypto_generichash_update(&st, (const uint8_t *)"deliver", 8);
	hash_lp(&st, sender);
	crypto_generichash_update(&st, envelope_id, 16);
	if (rcpt != NULL)
		hash_lp(&st, rcpt);
	crypto_generichash_final(&st, out, 32);
}

static void token_hash(const store *s, const uint8_t token[32],
		       uint8_t out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, s->hkey, sizeof(s->hkey), 32);
	crypto_generichash_update(&st, (const uint8_t *)"token", 6);
	crypto_generichash_update(&st, token, 32);
	crypto_generichash_final(&st, out, 32);
}

static void ad_queue(ad *a, uint64_t id)
{
	uint8_t b[8];
	put_u64(b, id);
	ad_make(a, "queue", b, 8);
}

uint8_t *store_seal(const uint8_t key[32], const ad *a, const uint8_t *pt,
		    size_t pt_len, size_t *len_r)
{
	if (pt_len > ROW_MAX)
		return NULL;
	size_t n = SEAL_NONCE + pt_len + SEAL_TAG;
	uint8_t *box = malloc(n);
	if (box == NULL)
		return NULL;
	randombytes_buf(box, SEAL_NONCE);
	unsigned long long clen;
	crypto_aead_xchacha20poly1305_ietf_encrypt(box + SEAL_NONCE, &clen, pt,
						   pt_len, a->b, a->len, NULL,
						   box, key);
	*len_r = n;
	return box;
}

int store_unseal(const uint8_t key[32], const ad *a, const void *box,
		 size_t len, uint8_t **pt_r, size_t *pt_len_r)
{
	if (box == NULL || len <= SEAL_NONCE + SEAL_TAG ||
	    len > SEAL_NONCE + ROW_MAX + SEAL_TAG)
		return 0;
	const uint8_t *b = box;
	size_t n = len - SEAL_NONCE - SEAL_TAG;
	uint8_t *pt = malloc(n);
	if (pt == NULL)
		return -1;
	unsigned long long plen;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &plen, NULL,
						       b + SEAL_NONCE,
						       len - SEAL_NONCE, a->b,
						       a->len, b, key) != 0) {
		free(pt);
		return 0;
	}
	*pt_r = pt;
	*pt_len_r = n;
	return 1;
}

/* 01 ‖ u32 attempts ‖ u64 created ‖ u64 expires ‖ u8 len ‖ domain ‖ env */
static uint8_t *queue_plain(uint32_t attempts, uint64_t created,
			    uint64_t expires, const char *domain,
			    const uint8_t *env, size_t env_len, size_t *len_r)
{
	size_t dlen = strlen(domain);
	if (dlen == 0 || dlen > DOMAIN_MAX || env_len > AMP_ENVELOPE_MAX)
		return NULL;
	size_t n = QUEUE_HDR + dlen + env_len;
	uint8_t *p = malloc(n);
	if (p == NULL)
		return NULL;
	p[0] = ROW_FORMAT;
	put_u32(p + 1, attempts);
	put_u64(p + 5, created);
	put_u64(p + 13, expires);
	p[21] = (uint8_t)dlen;
	memcpy(p + QUEUE_HDR, domain, dlen);
	memcpy(p + QUEUE_HDR + dlen, env, env_len);
	*len_r = n;
	return p;
}

/* Open a queue row into it (envelope malloc'ed): 1, 0 bad row, -1 error. */
static int queue_open(store *s, uint64_t id, const void *box, size_t len,
		      store_queue_item *it)
{
	ad a;
	uint8_t *pt;
	size_t n;
	ad_queue(&a, id);
	int r = store_unseal(s->queue_key, &a, box, len, &pt, &n);
	if (r != 1)
		return r;
	size_t dlen = n >= QUEUE_HDR ? pt[21] : 0;
	if (n < QUEUE_HDR || pt[0] != ROW_FORMAT || dlen == 0 ||
	    dlen > DOMAIN_MAX || n - QUEUE_HDR <= dlen ||
	    memchr(pt + QUEUE_HDR, 0, dlen) != NULL) {
		free_wiped(pt, n);
		return 0;
	}
	memset(it, 0, sizeof(*it));
	it->id = id;
	it->attempts = get_u32(pt + 1);
	it->created = get_u64(pt + 5);
	it->expires = get_u64(pt + 13);
	memcpy(it->domain, pt + QUEUE_HDR, dlen);
	it->domain[dlen] = '\0';
	/* The envelope moves to the front of the same buffer. */
	size_t env_len = n - QUEUE_HDR - dlen;
	memmove(pt, pt + QUEUE_HDR + dlen, env_len);
	sodium_memzero(pt + env_len, n - env_len);
	it->envelope = pt;
	it->envelope_len = env_len;
	return 1;
}

/* ---------------------------------------------------------------- writer */

bool store_exec_ok(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* Step a statement that returns no rows, then reset it. */
int store_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int store_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
	if (n > INT_MAX)
		return -1;
	return sqlite3_bind_blob(st, i, p, (int)n, SQLITE_STATIC) == SQLITE_OK
		       ? 0 : -1;
}

/* Whether a row with this 32-byte key exists: 1, 0, or -1 on error. */
static int row_exists(sqlite3_stmt *st, const uint8_t key[32])
{
	sqlite3_reset(st);
	if (store_bind_blob(st, 1, key, 32) != 0)
		return -1;
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int inbox_insert(store *s, const uint8_t rcpt[32], const uint8_t *pt,
			size_t pt_len, uint64_t *seq_r)
{
	ad a;
	size_t len;
	ad_make(&a, "inbox", rcpt, 32);
	uint8_t *box = store_seal(s->inbox_key, &a, pt, pt_len, &len);
	if (box == NULL)
		return -1;
	sqlite3_stmt *st = s->w_inbox_put;
	sqlite3_reset(st);
	int r = -1;
	if (store_bind_blob(st, 1, rcpt, 32) == 0 &&
	    store_bind_blob(st, 2, box, len) == 0)
		r = store_step_done(st);
	free(box);
	if (r == 0)
		*seq_r = (uint64_t)sqlite3_last_insert_rowid(s->wdb);
	return r;
}

/* Insert a queue row under a fresh random id (sealed with it). */
static int queue_insert(store *s, const uint8_t *pt, size_t pt_len,
			uint64_t next_attempt)
{
	for (int tries = 0; tries < QUEUE_ID_TRIES; tries++) {
		uint64_t id;
		randombytes_buf(&id, sizeof(id));
		id &= INT64_MAX;
		if (id == 0)
			continue;
		ad a;
		size_t len;
		ad_queue(&a, id);
		uint8_t *box = store_seal(s->queue_key, &a, pt, pt_len, &len);
		if (box == NULL)
			return -1;
		sqlite3_stmt *st = s->w_q_put;
		sqlite3_reset(st);
		int rc = SQLITE_ERROR;
		if (store_bind_blob(st, 3, box, len) == 0) {
			sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
			sqlite3_bind_int64(st, 2, clamp64(next_attempt));
			rc = sqlite3_step(st);
			if (rc != SQLITE_DONE)
				rc = sqlite3_extended_errcode(s->wdb);
			sqlite3_reset(st);
		}
		free(box);
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_CONSTRAINT_PRIMARYKEY)
			return -1;
	}
	return -1;
}

static int queue_delete(store *s, uint64_t id, int *deleted_r)
{
	sqlite3_stmt *st = s->w_q_del;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, clamp64(id));
	if (store_step_done(st) != 0)
		return -1;
	*deleted_r = sqlite3_changes(s->wdb);
	return 0;
}

/* Move a queue row, as it is, to the quarantine table. */
static int quarantine(store *s, job *j, uint64_t id)
{
	sqlite3_stmt *st = s->w_q_quarantine;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, clamp64(id));
	sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
	int deleted;
	if (store_step_done(st) != 0 || queue_delete(s, id, &deleted) != 0)
		return -1;
	if (deleted > 0) {
		j->quarantined_delta++;
		j->queued_delta--;
	}
	return 0;
}

int store_run_deliver(store *s, job *j, const dlv *d)
{
	sqlite3_stmt *st = s->w_find;
	if (!d->no_dedupe) {
		sqlite3_reset(st);
		if (store_bind_blob(st, 1, d->dedupe, 32) != 0)
			return -1;
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			j->seq = (uint64_t)sqlite3_column_int64(st, 0);
			j->duplicate = true;
			sqlite3_reset(st);
			return 0;
		}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return -1;
	}

	uint64_t first = 0;
	if (d->n_local > 0) {
		/* room for the longest note; rows without one stay format 1 */
		size_t n = INBOX_HDR + 2 + STORE_NOTE_MAX + d->env_len;
		uint8_t *pt = malloc(n);
		if (pt == NULL)
			return -1;
		put_u64(pt + 1, d->received);
		for (size_t i = 0; i < d->n_local; i++) {
			const char *note = d->note != NULL ? d->note[i] : NULL;
			size_t nl = note != NULL ? strlen(note) : 0, len;
			if (nl == 0) {
				pt[0] = ROW_FORMAT;
				memcpy(pt + INBOX_HDR, d->env, d->env_len);
				len = INBOX_HDR + d->env_len;
			} else {
				pt[0] = ROW_FORMAT_NOTE;
				pt[INBOX_HDR] = (uint8_t)(nl >> 8);
				pt[INBOX_HDR + 1] = (uint8_t)nl;
				memcpy(pt + INBOX_HDR + 2, note, nl);
				memcpy(pt + INBOX_HDR + 2 + nl, d->env, d->env_len);
				len = INBOX_HDR + 2 + nl + d->env_len;
			}
			uint64_t seq;
			if (inbox_insert(s, d->rcpt[i], pt, len, &seq) != 0) {
				free_wiped(pt, n);
				return -1;
			}
			if (i == 0)
				first = seq;
		}
		free_wiped(pt, n);
	}
	for (size_t i = 0; i < d->n_domains; i++) {
		size_t n;
		uint8_t *pt = queue_plain(0, d->received, d->expires,
					  d->domain[i], d->env, d->env_len, &n);
		if (pt == NULL)
			return -1;
		int r = queue_insert(s, pt, n, d->received);
		free_wiped(pt, n);
		if (r != 0)
			return -1;
		j->queued_delta++;
	}
	if (d->outbound != NULL && store_mq_insert(s, d->outbound) != 0)
		return -1;
	/* not a duplicate: its receipt (PROTOCOL.md §11.2) */
	uint64_t index;
	if (d->receipt != NULL &&
	    store_log_append(s, d->receipt, d->receipt_len, &index) != 0)
		return -1;
	if (d->no_dedupe)
		return 0;
	st = s->w_mark;
	sqlite3_reset(st);
	if (store_bind_blob(st, 1, d->dedupe, 32) != 0)
		return -1;
	sqlite3_bind_int64(st, 2, (sqlite3_int64)first);
	if (store_step_done(st) != 0)
		return -1;
	j->seq = first;
	return 0;
}

static int run_ack(store *s, job *j)
{
	for (size_t i = 0; i < j->n_seqs; i++) {
		sqlite3_stmt *st = s->w_inbox_del;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, clamp64(j->seqs[i]));
		if (store_bind_blob(st, 2, j->rcpt, 32) != 0 ||
		    store_step_done(st) != 0)
			return -1;
	}
	return 0;
}

/* Move inbox rows that failed to open to the quarantine table. */
static int run_inbox_quarantine(store *s, job *j)
{
	for (size_t i = 0; i < j->n_seqs; i++) {
		sqlite3_stmt *st = s->w_in_quarantine;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, clamp64(j->seqs[i]));
		if (store_bind_blob(st, 2, j->rcpt, 32) != 0)
			return -1;
		sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
		if (store_step_done(st) != 0)
			return -1;
		if (sqlite3_changes(s->wdb) == 0)
			continue; /* acknowledged meanwhile */
		j->quarantined_delta++;
	}
	return run_ack(s, j);
}

/* Seal a document for the identity row of did and write it with st
 * (w_id_put or w_id_set: ?1 did, ?2 the box). */
static int doc_write(store *s, sqlite3_stmt *st, const uint8_t did[32],
		     const char *doc, size_t doc_len)
{
	size_t n = DOC_HDR + doc_len, len;
	uint8_t *pt = malloc(n);
	if (pt == NULL)
		return -1;
	pt[0] = ROW_FORMAT;
	memcpy(pt + DOC_HDR, doc, doc_len);
	ad a;
	ad_make(&a, "identity", did, 32);
	uint8_t *box = store_seal(s->doc_key, &a, pt, n, &len);
	free_wiped(pt, n);
	if (box == NULL)
		return -1;
	sqlite3_reset(st);
	int r = -1;
	if (store_bind_blob(st, 1, did, 32) == 0 &&
	    store_bind_blob(st, 2, box, len) == 0)
		r = store_step_done(st);
	free(box);
	return r;
}

static int run_register(store *s, job *j)
{
	int rc = row_exists(s->w_id_find, j->did);
	if (rc != 0) {
		j->reg = STORE_REG_TAKEN;
		return rc < 0 ? -1 : 0;
	}
	rc = row_exists(s->w_tok_find, j->token);
	if (rc != 0) {
		j->reg = STORE_REG_TOKEN_USED;
		return rc < 0 ? -1 : 0;
	}
	if (doc_write(s, s->w_id_put, j->did, j->doc, j->doc_len) != 0)
		return -1;
	sqlite3_stmt *st = s->w_tok_put;
	sqlite3_reset(st);
	if (store_bind_blob(st, 1, j->token, 32) != 0)
		return -1;
	sqlite3_bind_int64(st, 2, clamp64(j->token_expires));
	if (store_step_done(st) != 0)
		return -1;
	if (j->leaf != NULL &&
	    store_log_append(s, j->leaf, j->leaf_len, &j->index) != 0)
		return -1;
	j->reg = STORE_REG_OK;
	return 0;
}

/* Rotate (j->doc) or revoke (j->doc NULL) a registered identity and
 * append its leaf; the checks first, in the order of store_id_res. */
static int run_identity(store *s, job *j)
{
	int rc = row_exists(s->w_id_find, j->did);
	if (rc <= 0) {
		j->id_res = STORE_ID_UNKNOWN;
		return rc;
	}
	rc = store_log_is_revoked(s, j->did);
	if (rc != 0) {
		j->id_res = STORE_ID_REVOKED;
		return rc < 0 ? -1 : 0;
	}
	uint64_t latest = STORE_LOG_NONE;
	if (store_log_latest(s, j->leaf + LOG_SUBJECT_OFF, &latest) < 0)
		return -1;
	if (latest != j->prev_index) {
		j->id_res = STORE_ID_STALE;
		return 0;
	}
	if (j->doc != NULL
		    ? doc_write(s, s->w_id_set, j->did, j->doc, j->doc_len) != 0
		    : store_log_revoke(s, j->did) != 0)
		return -1;
	if (store_log_append(s, j->leaf, j->leaf_len, &j->index) != 0)
		return -1;
	j->id_res = STORE_ID_OK;
	return 0;
}

/* Collect the due rows that open (at most max) and the ids of those that
 * do not, then -- with the select finished -- lease and quarantine them. */
static int run_lease(store *s, job *j)
{
	uint64_t bad[QUARANTINE_STEP];
	size_t n_bad = 0, cap = 0;
	int r = 0;
	sqlite3_stmt *st = s->w_q_due;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, clamp64(j->now));
	sqlite3_bind_int64(st, 2, clamp64(add_sat(j->now, j->max_delay)));
	while (j->n_items < j->max && n_bad < QUARANTINE_STEP) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			r = -1;
			break;
		}
		uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
		const void *box = sqlite3_column_blob(st, 1);
		size_t len = (size_t)sqlite3_column_bytes(st, 1);
		if (store_grow((void **)&j->items, &cap, j->n_items + 1,
			 sizeof(*j->items), j->max) != 0) {
			r = -1;
			break;
		}
		int o = queue_open(s, id, box, len, &j->items[j->n_items]);
		if (o < 0) {
			r = -1;
			break;
		}
		if (o == 1)
			j->n_items++;
		else
			bad[n_bad++] = id;
	}
	sqlite3_reset(st);
	if (r != 0)
		return -1;
	for (size_t i = 0; i < n_bad; i++) {
		if (quarantine(s, j, bad[i]) != 0)
			return -1;
	}
	sqlite3_int64 until = clamp64(add_sat(j->now, j->lease));
	for (size_t i = 0; i < j->n_items; i++) {
		st = s->w_q_lease;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)j->items[i].id);
		sqlite3_bind_int64(st, 2, until);
		if (store_step_done(st) != 0)
			return -1;
	}
	return 0;
}

static int run_done(store *s, job *j)
{
	int deleted;
	if (queue_delete(s, j->id, &deleted) != 0)
		return -1;
	j->queued_delta -= deleted;
	return 0;
}

/* attempts + 1 and a new next_attempt: the row is opened and sealed anew
 * (fresh nonce).  A row that no longer opens is quarantined instead. */
static int run_retry(store *s, job *j)
{
	sqlite3_stmt *st = s->w_q_get;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, clamp64(j->id));
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? 0 : -1; /* unknown id: ignored */
	}
	store_queue_item it;
	const void *row = sqlite3_column_blob(st, 0); /* then its size */
	int o = queue_open(s, j->id, row, (size_t)sqlite3_column_bytes(st, 0),
			   &it);
	sqlite3_reset(st);
	if (o < 0)
		return -1;
	if (o == 0)
		return quarantine(s, j, j->id);
	uint32_t attempts = it.attempts < UINT32_MAX ? it.attempts + 1
						     : UINT32_MAX;
	size_t n, len;
	uint8_t *pt = queue_plain(attempts, it.created, it.expires, it.domain,
				  it.envelope, it.envelope_len, &n);
	free_wiped(it.envelope, it.envelope_len);
	if (pt == NULL)
		return -1;
	ad a;
	ad_queue(&a, j->id);
	uint8_t *box = store_seal(s->queue_key, &a, pt, n, &len);
	free_wiped(pt, n);
	if (box == NULL)
		return -1;
	st = s->w_q_set;
	sqlite3_reset(st);
	int r = -1;
	if (store_bind_blob(st, 3, box, len) == 0) {
		sqlite3_bind_int64(st, 1, clamp64(j->id));
		sqlite3_bind_int64(st, 2, clamp64(j->next_attempt));
		r = store_step_done(st);
	}
	free(box);
	return r;
}

/* Delete the entry and deliver the ndn; an unknown id delivers nothing
 * (the entry was handled already). */
static int run_bounce(store *s, job *j)
{
	int deleted;
	if (queue_delete(s, j->id, &deleted) != 0)
		return -1;
	if (deleted == 0)
		return 0;
	j->queued_delta--;
	return store_run_deliver(s, j, &j->d);
}

static int run_job(store *s, job *j)
{
	switch (j->kind) {
	case JOB_DELIVER:
		return store_run_deliver(s, j, &j->d);
	case JOB_ACK:
		return run_ack(s, j);
	case JOB_REGISTER:
		return run_register(s, j);
	case JOB_LEASE:
		return run_lease(s, j);
	case JOB_DONE:
		return run_done(s, j);
	case JOB_RETRY:
		return run_retry(s, j);
	case JOB_INBOX_QUARANTINE:
		return run_inbox_quarantine(s, j);
	case JOB_BOUNCE:
		return run_bounce(s, j);
	case JOB_MAILQ:
		return store_mq_run(s, j);
	case JOB_IDENTITY:
		return run_identity(s, j);
	case JOB_LOG:
		return store_log_run(s, j);
	}
	return -1;
}

void store_dlv_free(dlv *d)
{
	free_wiped(d->env, d->env_len);
	for (size_t i = 0; d->note != NULL && i < d->n_local; i++)
		if (d->note[i] != NULL)
			free_wiped(d->note[i], strlen(d->note[i]));
	free(d->note);
	free(d->rcpt);
	free(d->domain);
	store_mq_copy_free(&d->outbound);
	free(d->receipt);
	memset(d, 0, sizeof(*d));
}

static void finish(job *j)
{
	if (j->kind == JOB_DELIVER) {
		if (j->put_cb != NULL)
			j->put_cb(j->arg, j->result, j->seq, j->duplicate);
		else
			j->deliver_cb(j->arg, j->result, j->duplicate);
		store_dlv_free(&j->d);
		free(j);
		return;
	}
	/* The waiting caller owns the job and frees what it holds. */
	pthread_mutex_lock(&j->done_lock);
	j->done = true;
	pthread_cond_signal(&j->done_cond);
	pthread_mutex_unlock(&j->done_lock);
}

static void commit_batch(store *s, job *batch)
{
	bool began = store_exec_ok(s->wdb, "BEGIN IMMEDIATE");
	size_t n = 0;
	for (job *j = batch; j != NULL; j = j->next, n++) {
		if (!began) {
			j->result = -1;
			continue;
		}
		store_exec_ok(s->wdb, "SAVEPOINT w");
		j->result = run_job(s, j);
		if (j->result != 0 && sqlite3_errcode(s->wdb) == SQLITE_FULL)
			j->result = STORE_E_FULL;
		if (j->result != 0)
			store_exec_ok(s->wdb, "ROLLBACK TO w");
		store_exec_ok(s->wdb, "RELEASE w");
	}
	bool committed = began && store_exec_ok(s->wdb, "COMMIT");
	bool full = !committed && sqlite3_errcode(s->wdb) == SQLITE_FULL;
	if (began && !committed)
		store_exec_ok(s->wdb, "ROLLBACK");
	int64_t queued = 0;
	uint64_t quarantined = 0;
	for (job *j = batch; j != NULL; j = j->next) {
		if (!committed) {
			j->result = full || j->result == STORE_E_FULL ? STORE_E_FULL : -1;
			j->duplicate = false;
		}
		if (j->result == 0) {
			queued += j->queued_delta;
			quarantined += j->quarantined_delta;
		}
	}
	pthread_mutex_lock(&s->lock);
	s->stats.writes += n;
	if (began)
		s->stats.commits++;
	if (queued < 0 && (uint64_t)-queued > s->stats.queued)
		s->stats.queued = 0;
	else
		s->stats.queued += (uint64_t)queued;
	s->stats.quarantined += quarantined;
	pthread_mutex_unlock(&s->lock);
	while (batch != NULL) {
		job *next = batch->next;
		finish(batch);
		batch = next;
	}
}

static void *writer_main(void *arg)
{
	store *s = arg;
	for (;;) {
		pthread_mutex_lock(&s->lock);
		while (s->head == NULL && !s->closing)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->head == NULL) {
			pthread_mutex_unlock(&s->lock);
			return NULL;
		}
		/* Take what is queued, up to batch_max: one commit for all. */
		job *batch = s->head, *last = s->head;
		unsigned n = 1;
		while (last->next != NULL && n < s->batch_max) {
			last = last->next;
			n++;
		}
		s->head = last->next;
		if (s->head == NULL)
			s->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&s->lock);
		commit_batch(s, batch);
	}
}

int store_enqueue(store *s, job *j)
{
	pthread_mutex_lock(&s->lock);
	if (s->closing) {
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	j->next = NULL;
	if (s->tail != NULL)
		s->tail->next = j;
	else
		s->head = j;
	s->tail = j;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* Queue a job the caller owns and wait until it has been committed (or
 * failed).  -1 when the store is closing; else the job's result. */
int store_run_sync(store *s, job *j)
{
	pthread_mutex_init(&j->done_lock, NULL);
	pthread_cond_init(&j->done_cond, NULL);
	j->done = false;
	int r = -1;
	if (store_enqueue(s, j) == 0) {
		pthread_mutex_lock(&j->done_lock);
		while (!j->done)
			pthread_cond_wait(&j->done_cond, &j->done_lock);
		pthread_mutex_unlock(&j->done_lock);
		r = j->result;
	}
	pthread_cond_destroy(&j->done_cond);
	pthread_mutex_destroy(&j->done_lock);
	return r;
}

/* ------------------------------------------------------------- lifecycle */

static void finalize_all(store *s)
{
	store_mq_close(s);
	store_log_close(s);
	for (size_t i = 0; i < sizeof(stmt_defs) / sizeof(stmt_defs[0]); i++) {
		sqlite3_stmt **st = stmt_at(s, &stmt_defs[i]);
		sqlite3_finalize(*st);
		*st = NULL;
	}
	sqlite3_close(s->wdb);
	sqlite3_close(s->rdb);
	s->wdb = s->rdb = NULL;
}

static void wipe_free(store *s)
{
	sodium_memzero(s->hkey, sizeof(s->hkey));
	sodium_memzero(s->inbox_key, sizeof(s->inbox_key));
	sodium_memzero(s->queue_key, sizeof(s->queue_key));
	sodium_memzero(s->doc_key, sizeof(s->doc_key));
	sodium_memzero(s->mailq_key, sizeof(s->mailq_key));
	free(s);
}

/* One integer from a query without parameters: 0, or -1 on error. */
static int query_int(sqlite3 *db, const char *sql, sqlite3_int64 *v_r)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v_r = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* Schema, statements and counts; an error message or NULL. */
/* The storage key must be the one the database was made with: a
 * constant sealed under a subkey at the first open is opened again at
 * every later one (a wrong key would otherwise make every row look
 * corrupt). */
static const char *key_check(store *s)
{
	static const char magic[] = "AfterSMTP store key check v1";
	ad a;
	ad_make(&a, "keycheck", (const uint8_t *)"", 0);
	if (!store_exec_ok(s->wdb, "CREATE TABLE IF NOT EXISTS keycheck("
			     "id INTEGER PRIMARY KEY CHECK (id = 1), box BLOB NOT NULL)"))
		return "cannot create the key check";
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->wdb, "SELECT box FROM keycheck WHERE id=1", -1,
			       &st, NULL) != SQLITE_OK)
		return "cannot read the key check";
	const char *err = NULL;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		uint8_t *pt = NULL;
		size_t len = 0;
		int u = store_unseal(s->doc_key, &a, sqlite3_column_blob(st, 0),
			       (size_t)sqlite3_column_bytes(st, 0), &pt, &len);
		if (u != 1 || len != sizeof(magic) || memcmp(pt, magic, len) != 0)
			err = "the storage key does not open this database "
			      "(a different storage.key?)";
		if (u == 1)
			free_wiped(pt, len);
	} else if (rc == SQLITE_DONE) {
		size_t blen;
		uint8_t *box = store_seal(s->doc_key, &a, (const uint8_t *)magic,
				    sizeof(magic), &blen);
		sqlite3_stmt *ins = NULL;
		if (box == NULL ||
		    sqlite3_prepare_v2(s->wdb, "INSERT INTO keycheck(id, box) "
					       "VALUES(1, ?)", -1, &ins,
				       NULL) != SQLITE_OK ||
		    sqlite3_bind_blob(ins, 1, box, (int)blen, SQLITE_STATIC) !=
			    SQLITE_OK ||
		    sqlite3_step(ins) != SQLITE_DONE)
			err = "cannot write the key check";
		sqlite3_finalize(ins);
		free(box);
	} else {
		err = "cannot read the key check";
	}
	sqlite3_finalize(st);
	return err;
}

static const char *open_db(store *s, const char *path)
{
	const int wflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			   SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &s->wdb, wflags, NULL) != SQLITE_OK ||
	    !store_exec_ok(s->wdb, pragma_sql))
		return s->wdb != NULL ? "cannot open or initialise the database "
					"(see the path and its permissions)"
				      : "out of memory";
	sqlite3_busy_timeout(s->wdb, 5000);
	sqlite3_int64 version;
	if (query_int(s->wdb, "PRAGMA user_version", &version) != 0)
		return "cannot read the database";
	if (version == 0 && !store_exec_ok(s->wdb, schema_sql)) {
		store_exec_ok(s->wdb, "ROLLBACK");
		return "cannot create the database tables (an older format?)";
	}
	if (version != 0 && version != SCHEMA_VERSION)
		return "unknown database format (user_version)";
	const char *kc = key_check(s);
	if (kc != NULL)
		return kc;
	sqlite3_int64 queued, quarantined;
	if (query_int(s->wdb, "SELECT count(*) FROM queue", &queued) != 0 ||
	    query_int(s->wdb, "SELECT count(*) FROM quarantine",
		      &quarantined) != 0)
		return "cannot read the database";
	s->stats.queued = (uint64_t)queued;
	s->stats.quarantined = (uint64_t)quarantined;
	if (sqlite3_open_v2(path, &s->rdb,
			    SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK)
		return "cannot open the database for reading";
	sqlite3_busy_timeout(s->rdb, 5000);
	const char *lerr = store_log_open(s); /* before r_identity: revoked */
	if (lerr != NULL)
		return lerr;
	for (size_t i = 0; i < sizeof(stmt_defs) / sizeof(stmt_defs[0]); i++) {
		const stmt_def *d = &stmt_defs[i];
		if (sqlite3_prepare_v2(d->read ? s->rdb : s->wdb, d->sql, -1,
				       stmt_at(s, d), NULL) != SQLITE_OK)
			return "cannot prepare the database statements";
	}
	return store_mq_open(s);
}

int store_open(const store_opts *opts, store **store_r, const char **error_r)
{
	if (opts == NULL || opts->path == NULL || opts->key == NULL) {
		*error_r = "no database path or storage key";
		return -1;
	}
	if (sodium_init() < 0) {
		*error_r = "cannot initialise libsodium";
		return -1;
	}
	store *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	static const char ctx[crypto_kdf_CONTEXTBYTES] = { 'A', 'M', 'P', 's',
							   't', 'o', 'r', 'e' };
	crypto_kdf_derive_from_key(s->hkey, 32, 1, ctx, opts->key);
	crypto_kdf_derive_from_key(s->inbox_key, 32, 2, ctx, opts->key);
	crypto_kdf_derive_from_key(s->queue_key, 32, 3, ctx, opts->key);
	crypto_kdf_derive_from_key(s->doc_key, 32, 4, ctx, opts->key);
	crypto_kdf_derive_from_key(s->mailq_key, 32, 5, ctx, opts->key);
	s->batch_max = opts->batch_max != 0 ? opts->batch_max : STORE_BATCH_MAX;
	const char *err = open_db(s, opts->path);
	if (err != NULL) {
		*error_r = err;
		finalize_all(s);
		wipe_free(s);
		return -1;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->rlock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
		*error_r = "cannot start the store writer thread";
		finalize_all(s);
		pthread_mutex_destroy(&s->lock);
		pthread_mutex_destroy(&s->rlock);
		pthread_cond_destroy(&s->cond);
		wipe_free(s);
		return -1;
	}
	*store_r = s;
	return 0;
}

void store_close(store **sp)
{
	if (sp == NULL || *sp == NULL)
		return;
	store *s = *sp;
	pthread_mutex_lock(&s->lock);
	s->closing = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->writer, NULL); /* drains the queue first */
	finalize_all(s);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->rlock);
	pthread_cond_destroy(&s->cond);
	wipe_free(s);
	*sp = NULL;
}

/* ------------------------------------------------------------ operations */

/* Check and copy d; rcpt != NULL: store_inbox_put's per-recipient dedupe
 * key.  Repeated recipients and domains are stored once. */
int store_dlv_init(store *s, const store_delivery *d, const char *rcpt,
		   dlv *out)
{
	memset(out, 0, sizeof(*out));
	if (d == NULL)
		return -1;
	/* an envelope is needed for inbox copies and relay entries only */
	bool env_needed = d->n_local + d->n_domains > 0 || d->env != NULL;
	if (!did_ok(d->sender) || d->envelope_id == NULL ||
	    (env_needed && (d->env == NULL || d->env_len == 0 ||
			    d->env_len > AMP_ENVELOPE_MAX)) ||
	    d->n_local > AMP_RECIPIENTS_MAX ||
	    d->n_domains > AMP_RECIPIENTS_MAX ||
	    (d->n_local + d->n_domains == 0 && d->outbound == NULL) ||
	    d->n_local + d->n_domains > AMP_RECIPIENTS_MAX ||
	    (d->n_local > 0 && d->local == NULL) ||
	    (d->n_domains > 0 && d->domains == NULL))
		return -1;
	for (size_t i = 0; i < d->n_local; i++) {
		if (!did_ok(d->local[i]))
			return -1;
		if (d->local_note != NULL && d->local_note[i] != NULL &&
		    strlen(d->local_note[i]) > STORE_NOTE_MAX)
			return -1;
	}
	for (size_t i = 0; i < d->n_domains; i++) {
		if (!domain_ok(d->domains[i]))
			return -1;
	}
	if ((d->receipt != NULL || d->receipt_len != 0) &&
	    store_log_leaf_check(d->receipt, d->receipt_len, AMP_LOG_RECEIPT,
				 NULL) != 0)
		return -1;
	if (d->outbound != NULL &&
	    store_mq_copy(d->outbound, &out->outbound) != 0)
		return -1;
	if (d->receipt != NULL) {
		out->receipt = malloc(d->receipt_len);
		if (out->receipt == NULL) {
			store_dlv_free(out);
			return -1;
		}
		memcpy(out->receipt, d->receipt, d->receipt_len);
		out->receipt_len = d->receipt_len;
	}
	if (env_needed)
		out->env = malloc(d->env_len);
	if (d->n_local > 0)
		out->rcpt = calloc(d->n_local, sizeof(*out->rcpt));
	if (d->n_local > 0 && d->local_note != NULL &&
	    (out->note = calloc(d->n_local, sizeof(*out->note))) == NULL)
		abort();
	if (d->n_domains > 0)
		out->domain = calloc(d->n_domains, sizeof(*out->domain));
	if ((env_needed && out->env == NULL) ||
	    (d->n_local > 0 && out->rcpt == NULL) ||
	    (d->n_domains > 0 && out->domain == NULL)) {
		store_dlv_free(out);
		return -1;
	}
	if (env_needed) {
		memcpy(out->env, d->env, d->env_len);
		out->env_len = d->env_len;
	}
	out->received = d->received;
	out->expires = d->expires;
	for (size_t i = 0; i < d->n_local; i++) {
		uint8_t h[32];
		did_hash(s, "rcpt", d->local[i], h);
		bool seen = false;
		for (size_t k = 0; k < out->n_local && !seen; k++)
			seen = memcmp(out->rcpt[k], h, 32) == 0;
		if (seen)
			continue;
		if (out->note != NULL && d->local_note[i] != NULL &&
		    d->local_note[i][0] != '\0' &&
		    (out->note[out->n_local] = strdup(d->local_note[i])) == NULL)
			abort();
		memcpy(out->rcpt[out->n_local++], h, 32);
	}
	for (size_t i = 0; i < d->n_domains; i++) {
		bool seen = false;
		for (size_t k = 0; k < out->n_domains && !seen; k++)
			seen = strcmp(out->domain[k], d->domains[i]) == 0;
		if (!seen)
			memcpy(out->domain[out->n_domains++], d->domains[i],
			       strlen(d->domains[i]) + 1);
	}
	dedupe_hash(s, d->sender, d->envelope_id, rcpt, out->dedupe);
	return 0;
}

static int submit_delivery(store *s, const store_delivery *d,
			   const char *rcpt, store_put_cb *put_cb,
			   store_deliver_cb *deliver_cb, void *arg)
{
	job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -1;
	if (store_dlv_init(s, d, rcpt, &j->d) != 0) {
		free(j);
		return -1;
	}
	j->kind = JOB_DELIVER;
	j->put_cb = put_cb;
	j->deliver_cb = deliver_cb;
	j->arg = arg;
	if (store_enqueue(s, j) != 0) {
		store_dlv_free(&j->d);
		free(j);
		return -1;
	}
	return 0;
}

int store_inbox_put(store *s, const char *rcpt, const char *sender,
		    const uint8_t envelope_id[16], const uint8_t *env,
		    size_t env_len, uint64_t received, store_put_cb *cb,
		    void *arg)
{
	if (!did_ok(rcpt) || cb == NULL)
		return -1;
	const char *local[1] = { rcpt };
	store_delivery d = { .sender = sender, .envelope_id = envelope_id,
			     .env = env, .env_len = env_len,
			     .received = received, .local = local,
			     .n_local = 1 };
	return submit_delivery(s, &d, rcpt, cb, NULL, arg);
}

int store_deliver(store *s, const store_delivery *d, store_deliver_cb *cb,
		  void *arg)
{
	if (cb == NULL)
		return -1;
	return submit_delivery(s, d, NULL, NULL, cb, arg);
}

int store_inbox_ack(store *s, const char *rcpt, const uint64_t *seqs, size_t n)
{
	if (!did_ok(rcpt) || (n > 0 && seqs == NULL))
		return -1;
	job j = { .kind = JOB_ACK, .seqs = seqs, .n_seqs = n };
	did_hash(s, "rcpt", rcpt, j.rcpt);
	return store_run_sync(s, &j);
}

void store_items_free(store_item *items, size_t n)
{
	if (items == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free_wiped(items[i].envelope, items[i].envelope_len);
		if (items[i].note != NULL)
			free_wiped(items[i].note, strlen(items[i].note));
	}
	free(items);
}

int store_inbox_fetch(store *s, const char *rcpt, uint64_t cursor,
		      unsigned limit, store_item **items_r, size_t *n_r)
{
	if (!did_ok(rcpt))
		return -1;
	uint8_t h[32];
	did_hash(s, "rcpt", rcpt, h);
	ad a;
	ad_make(&a, "inbox", h, 32);
	if (limit == 0)
		limit = 1;
	store_item *items = NULL;
	uint64_t *bad = NULL;
	size_t n = 0, cap = 0, n_bad = 0;
	int r = 0;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->r_fetch;
	sqlite3_reset(st);
	sqlite3_bind_blob(st, 1, h, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, clamp64(cursor));
	sqlite3_bind_int64(st, 3, limit);
	for (;;) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW ||
		    store_grow((void **)&items, &cap, n + 1, sizeof(*items),
			 limit) != 0) {
			r = -1;
			break;
		}
		uint8_t *pt;
		size_t len;
		const void *box = sqlite3_column_blob(st, 1); /* then its size */
		int u = store_unseal(s->inbox_key, &a, box,
			       (size_t)sqlite3_column_bytes(st, 1), &pt, &len);
		if (u < 0) {
			r = -1;
			break;
		}
		size_t hdr = INBOX_HDR, note_len = 0;
		if (u == 1 && len > INBOX_HDR + 2 && pt[0] == ROW_FORMAT_NOTE) {
			note_len = (size_t)pt[INBOX_HDR] << 8 | pt[INBOX_HDR + 1];
			hdr = INBOX_HDR + 2 + note_len;
			if (note_len == 0 || note_len > STORE_NOTE_MAX)
				hdr = len; /* malformed */
		} else if (u == 1 && pt[0] != ROW_FORMAT) {
			hdr = len;
		}
		if (u == 1 && len <= hdr) {
			free_wiped(pt, len);
			u = 0;
		}
		if (u == 0) { /* corrupt: quarantined below, the rest served */
			uint64_t *nb = realloc(bad, (n_bad + 1) * sizeof(*bad));
			if (nb == NULL) {
				r = -1;
				break;
			}
			bad = nb;
			bad[n_bad++] = (uint64_t)sqlite3_column_int64(st, 0);
			continue;
		}
		store_item *it = &items[n++];
		it->seq = (uint64_t)sqlite3_column_int64(st, 0);
		it->received = get_u64(pt + 1);
		it->note = NULL;
		if (note_len > 0) {
			it->note = malloc(note_len + 1);
			if (it->note == NULL) {
				free_wiped(pt, len);
				n--;
				r = -1;
				break;
			}
			memcpy(it->note, pt + INBOX_HDR + 2, note_len);
			it->note[note_len] = '\0';
		}
		it->envelope_len = len - hdr;
		memmove(pt, pt + hdr, it->envelope_len);
		sodium_memzero(pt + it->envelope_len, hdr);
		it->envelope = pt;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->rlock);
	if (r == 0 && n_bad > 0) {
		job j = { .kind = JOB_INBOX_QUARANTINE, .seqs = bad, .n_seqs = n_bad };
		memcpy(j.rcpt, h, 32);
		if (store_run_sync(s, &j) != 0)
			r = -1;
	}
	free(bad);
	if (r != 0) {
		store_items_free(items, n);
		return -1;
	}
	*items_r = items;
	*n_r = n;
	return (int)n_bad;
}

static int register_job(store *s, const char *did, const char *doc,
			size_t doc_len, const uint8_t token[32],
			uint64_t token_expires, const uint8_t *leaf,
			size_t leaf_len, store_reg_res *res_r,
			uint64_t *index_r)
{
	if (!did_ok(did) || doc == NULL || doc_len == 0 ||
	    doc_len > AMP_DIDDOC_MAX || token == NULL || res_r == NULL)
		return -1;
	job j = { .kind = JOB_REGISTER, .doc = doc, .doc_len = doc_len,
		  .token_expires = token_expires, .leaf = leaf,
		  .leaf_len = leaf_len };
	did_hash(s, "identity", did, j.did);
	token_hash(s, token, j.token);
	if (store_run_sync(s, &j) != 0)
		return -1;
	*res_r = j.reg;
	if (index_r != NULL && j.reg == STORE_REG_OK)
		*index_r = j.index;
	return 0;
}

int store_register(store *s, const char *did, const char *doc,
		   size_t doc_len, const uint8_t token[32],
		   uint64_t token_expires, store_reg_res *res_r)
{
	return register_job(s, did, doc, doc_len, token, token_expires, NULL,
			    0, res_r, NULL);
}

int store_register_logged(store *s, const char *did, const char *doc,
			  size_t doc_len, const uint8_t token[32],
			  uint64_t token_expires, const uint8_t *leaf,
			  size_t leaf_len, store_reg_res *res_r,
			  uint64_t *index_r)
{
	if (!did_ok(did) || index_r == NULL ||
	    store_log_leaf_check(leaf, leaf_len, AMP_LOG_REGISTER, did) != 0)
		return -1;
	return register_job(s, did, doc, doc_len, token, token_expires, leaf,
			    leaf_len, res_r, index_r);
}

int store_identity_change(store *s, const char *did, const char *doc,
			  size_t doc_len, const uint8_t *leaf, size_t leaf_len,
			  uint64_t prev_index, store_id_res *res_r,
			  uint64_t *index_r)
{
	if (s == NULL || !did_ok(did) || res_r == NULL || index_r == NULL ||
	    (doc != NULL && (doc_len == 0 || doc_len > AMP_DIDDOC_MAX)) ||
	    store_log_leaf_check(leaf, leaf_len,
				 doc != NULL ? AMP_LOG_ROTATE : AMP_LOG_REVOKE,
				 did) != 0)
		return -1;
	job j = { .kind = JOB_IDENTITY, .doc = doc, .doc_len = doc_len,
		  .leaf = leaf, .leaf_len = leaf_len,
		  .prev_index = prev_index };
	did_hash(s, "identity", did, j.did);
	if (store_run_sync(s, &j) != 0)
		return -1;
	*res_r = j.id_res;
	if (j.id_res == STORE_ID_OK)
		*index_r = j.index;
	return 0;
}

int store_identity_get(store *s, const char *did, char **doc_r,
		       size_t *len_r)
{
	if (!did_ok(did))
		return -1;
	uint8_t h[32];
	did_hash(s, "identity", did, h);
	ad a;
	ad_make(&a, "identity", h, 32);
	int r;
	uint8_t *pt = NULL;
	size_t len = 0;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->r_identity;
	sqlite3_reset(st);
	sqlite3_bind_blob(st, 1, h, 32, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *box = sqlite3_column_blob(st, 0); /* then its size */
		r = store_unseal(s->doc_key, &a, box,
			   (size_t)sqlite3_column_bytes(st, 0), &pt, &len) == 1
			    ? 1 : -1;
	} else
		r = rc == SQLITE_DONE ? 0 : -1;
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->rlock);
	if (r != 1)
		return r;
	if (len <= DOC_HDR || pt[0] != ROW_FORMAT) {
		free_wiped(pt, len);
		return -1;
	}
	/* The document moves to the front; the header byte becomes its NUL. */
	size_t doc_len = len - DOC_HDR;
	memmove(pt, pt + DOC_HDR, doc_len);
	pt[doc_len] = '\0';
	*doc_r = (char *)pt;
	*len_r = doc_len;
	return 1;
}

int store_queue_lease(store *s, uint64_t now, uint64_t lease,
		      uint64_t max_delay, unsigned max,
		      store_queue_item **items_r, size_t *n_r)
{
	*items_r = NULL;
	*n_r = 0;
	if (max == 0)
		return 0;
	job j = { .kind = JOB_LEASE, .now = now, .lease = lease,
		  .max_delay = max_delay, .max = max };
	int r = store_run_sync(s, &j);
	if (r != 0 || j.n_items == 0) {
		/* failed, or nothing leased (every row due was quarantined):
		 * the caller gets no array to free */
		store_queue_free(j.items, j.n_items);
		return r;
	}
	*items_r = j.items;
	*n_r = j.n_items;
	return 0;
}

void store_queue_free(store_queue_item *items, size_t n)
{
	if (items == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free_wiped(items[i].envelope, items[i].envelope_len);
	free(items);
}

/* Queue ids are in [1, 2^63): others are unknown, so ignored. */
static bool queue_id_ok(uint64_t id)
{
	return id != 0 && id <= INT64_MAX;
}

int store_queue_done(store *s, uint64_t id)
{
	if (!queue_id_ok(id))
		return 0;
	job j = { .kind = JOB_DONE, .id = id };
	return store_run_sync(s, &j);
}

int store_queue_retry(store *s, uint64_t id, uint64_t next_attempt)
{
	if (!queue_id_ok(id))
		return 0;
	job j = { .kind = JOB_RETRY, .id = id, .next_attempt = next_attempt };
	return store_run_sync(s, &j);
}

int store_queue_bounce(store *s, uint64_t id, const store_delivery *ndn)
{
	job j = { .kind = JOB_BOUNCE, .id = id };
	if (store_dlv_init(s, ndn, NULL, &j.d) != 0)
		return -1;
	if (!queue_id_ok(id)) {
		store_dlv_free(&j.d);
		return 0;
	}
	int r = store_run_sync(s, &j);
	store_dlv_free(&j.d);
	return r;
}

int store_read_time(sqlite3_stmt *st, uint64_t *when_r)
{
	int rc = sqlite3_step(st), r;
	if (rc != SQLITE_ROW)
		r = -1;
	else if (sqlite3_column_type(st, 0) == SQLITE_NULL)
		r = 0;
	else {
		sqlite3_int64 v = sqlite3_column_int64(st, 0);
		*when_r = v < 0 ? 0 : (uint64_t)v;
		r = 1;
	}
	sqlite3_reset(st);
	return r;
}

int store_queue_next(store *s, uint64_t *when_r)
{
	pthread_mutex_lock(&s->rlock);
	sqlite3_reset(s->r_next);
	int r = store_read_time(s->r_next, when_r);
	pthread_mutex_unlock(&s->rlock);
	return r;
}

void store_get_stats(store *s, store_stats *stats_r)
{
	pthread_mutex_lock(&s->lock);
	*stats_r = s->stats;
	pthread_mutex_unlock(&s->lock);
}
