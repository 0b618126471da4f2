/*
 * store-sqlite.c — store.h on SQLite: WAL journal, synchronous=FULL (a
 * COMMIT returns after the WAL is fsync'd), one writer thread doing group
 * commit, one read connection behind a mutex.
 *
 * Tables:
 *   inbox(seq, rcpt, received, envelope)   rcpt = KH(key, "rcpt" ‖ did)
 *   delivered(dedupe, seq)                 dedupe = KH(key, "dedupe" ‖
 *                                          lp(sender) ‖ id ‖ lp(rcpt))
 * `delivered` outlives acks, so a delivery retried after the recipient
 * fetched and acked it is still recognised (pruning comes with the
 * retention settings).  Every statement is prepared with bound parameters.
 *
 * Each write runs inside a SAVEPOINT of the batch transaction, so one
 * failing write (e.g. a full disk) fails alone; if the COMMIT fails, every
 * write of the batch reports failure and nothing was stored.
 */
#include "store.h"

#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

typedef enum job_kind { JOB_PUT, JOB_ACK } job_kind;

typedef struct job {
	job_kind kind;
	struct job *next;
	uint8_t rcpt[32];
	/* put */
	uint8_t dedupe[32];
	uint8_t *env;
	size_t env_len;
	uint64_t received;
	store_put_cb *cb;
	void *arg;
	/* ack (synchronous: the caller waits on done) */
	uint64_t *seqs;
	size_t n_seqs;
	pthread_mutex_t *done_lock;
	pthread_cond_t *done_cond;
	bool *done;
	int *done_result;
	/* results */
	int result;
	uint64_t seq;
	bool duplicate;
} job;

struct store {
	sqlite3 *wdb, *rdb;
	sqlite3_stmt *w_find, *w_insert, *w_mark, *w_delete;
	sqlite3_stmt *r_fetch;
	uint8_t key[STORE_KEY_BYTES];
	unsigned batch_max;
	pthread_t writer;
	pthread_mutex_t lock;   /* queue, closing, stats */
	pthread_cond_t cond;
	job *head, *tail;
	bool closing;
	pthread_mutex_t rlock;  /* the read connection */
	store_stats stats;
};

static const char schema_sql[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=FULL;"
	"CREATE TABLE IF NOT EXISTS inbox("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  rcpt BLOB NOT NULL,"
	"  received INTEGER NOT NULL,"
	"  envelope BLOB NOT NULL);"
	"CREATE INDEX IF NOT EXISTS inbox_rcpt ON inbox(rcpt, seq);"
	"CREATE TABLE IF NOT EXISTS delivered("
	"  dedupe BLOB PRIMARY KEY,"
	"  seq INTEGER NOT NULL) WITHOUT ROWID;";

static void did_hash(const store *s, const char *label, const char *did,
		     uint8_t out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, s->key, STORE_KEY_BYTES, 32);
	crypto_generichash_update(&st, (const uint8_t *)label, strlen(label) + 1);
	crypto_generichash_update(&st, (const uint8_t *)did, strlen(did));
	crypto_generichash_final(&st, out, 32);
}

/* Hash lp(str): a 4-byte big-endian length, then the bytes. */
static void hash_lp(crypto_generichash_state *st, const char *str)
{
	size_t n = strlen(str);
	uint8_t l[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16),
			 (uint8_t)(n >> 8), (uint8_t)n };
	crypto_generichash_update(st, l, 4);
	crypto_generichash_update(st, (const uint8_t *)str, n);
}

/* KH(key, "dedupe" ‖ lp(sender) ‖ envelope id ‖ lp(rcpt)). */
static void dedupe_hash(const store *s, const char *sender,
			const uint8_t envelope_id[16], const char *rcpt,
			uint8_t out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, s->key, STORE_KEY_BYTES, 32);
	crypto_generichash_update(&st, (const uint8_t *)"dedupe", 7);
	hash_lp(&st, sender);
	crypto_generichash_update(&st, envelope_id, 16);
	hash_lp(&st, rcpt);
	crypto_generichash_final(&st, out, 32);
}

/* ---------------------------------------------------------------- writer */

static bool exec_ok(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

static int run_put(store *s, job *j)
{
	sqlite3_stmt *st = s->w_find;
	sqlite3_reset(st);
	sqlite3_bind_blob(st, 1, j->dedupe, 32, SQLITE_STATIC);
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
	st = s->w_insert;
	sqlite3_reset(st);
	sqlite3_bind_blob(st, 1, j->rcpt, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)j->received);
	sqlite3_bind_blob(st, 3, j->env, (int)j->env_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return -1;
	j->seq = (uint64_t)sqlite3_last_insert_rowid(s->wdb);
	st = s->w_mark;
	sqlite3_reset(st);
	sqlite3_bind_blob(st, 1, j->dedupe, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)j->seq);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int run_ack(store *s, job *j)
{
	for (size_t i = 0; i < j->n_seqs; i++) {
		sqlite3_stmt *st = s->w_delete;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)j->seqs[i]);
		sqlite3_bind_blob(st, 2, j->rcpt, 32, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return -1;
	}
	return 0;
}

static void finish(job *j)
{
	if (j->kind == JOB_PUT) {
		j->cb(j->arg, j->result, j->seq, j->duplicate);
		sodium_memzero(j->env, j->env_len);
		free(j->env);
		free(j);
	} else {
		pthread_mutex_lock(j->done_lock);
		*j->done_result = j->result;
		*j->done = true;
		pthread_cond_signal(j->done_cond);
		pthread_mutex_unlock(j->done_lock);
		/* the waiting caller owns and frees the job */
	}
}

static void commit_batch(store *s, job *batch)
{
	bool began = exec_ok(s->wdb, "BEGIN IMMEDIATE");
	size_t n = 0;
	for (job *j = batch; j != NULL; j = j->next, n++) {
		if (!began) {
			j->result = -1;
			continue;
		}
		exec_ok(s->wdb, "SAVEPOINT w");
		j->result = j->kind == JOB_PUT ? run_put(s, j) : run_ack(s, j);
		if (j->result != 0)
			exec_ok(s->wdb, "ROLLBACK TO w");
		exec_ok(s->wdb, "RELEASE w");
	}
	if (began && !exec_ok(s->wdb, "COMMIT")) {
		exec_ok(s->wdb, "ROLLBACK");
		for (job *j = batch; j != NULL; j = j->next) {
			j->result = -1;
			j->duplicate = false;
		}
	}
	pthread_mutex_lock(&s->lock);
	s->stats.writes += n;
	if (began)
		s->stats.commits++;
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

static int enqueue(store *s, job *j)
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

/* ------------------------------------------------------------- lifecycle */

static void finalize_all(store *s)
{
	sqlite3_finalize(s->w_find);
	sqlite3_finalize(s->w_insert);
	sqlite3_finalize(s->w_mark);
	sqlite3_finalize(s->w_delete);
	sqlite3_finalize(s->r_fetch);
	sqlite3_close(s->wdb);
	sqlite3_close(s->rdb);
}

int store_open(const store_opts *opts, store **store_r, const char **error_r)
{
	store *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	memcpy(s->key, opts->key, STORE_KEY_BYTES);
	s->batch_max = opts->batch_max != 0 ? opts->batch_max : STORE_BATCH_MAX;
	const int wflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			   SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(opts->path, &s->wdb, wflags, NULL) != SQLITE_OK ||
	    !exec_ok(s->wdb, schema_sql) ||
	    sqlite3_prepare_v2(s->wdb, "SELECT seq FROM delivered WHERE dedupe=?",
			       -1, &s->w_find, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->wdb,
			       "INSERT INTO inbox(rcpt, received, envelope) "
			       "VALUES(?, ?, ?)",
			       -1, &s->w_insert, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->wdb,
			       "INSERT INTO delivered(dedupe, seq) VALUES(?, ?)",
			       -1, &s->w_mark, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->wdb,
			       "DELETE FROM inbox WHERE seq=? AND rcpt=?", -1,
			       &s->w_delete, NULL) != SQLITE_OK ||
	    sqlite3_open_v2(opts->path, &s->rdb,
			    SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->rdb,
			       "SELECT seq, received, envelope FROM inbox "
			       "WHERE rcpt=? AND seq>? ORDER BY seq LIMIT ?",
			       -1, &s->r_fetch, NULL) != SQLITE_OK) {
		*error_r = s->wdb != NULL ? "cannot open or initialise the "
					    "database (see the path and its "
					    "permissions)"
					  : "out of memory";
		finalize_all(s);
		sodium_memzero(s->key, sizeof(s->key));
		free(s);
		return -1;
	}
	sqlite3_busy_timeout(s->rdb, 5000);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->rlock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
		*error_r = "cannot start the store writer thread";
		finalize_all(s);
		free(s);
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
	sodium_memzero(s->key, sizeof(s->key));
	free(s);
	*sp = NULL;
}

/* ------------------------------------------------------------ operations */

int store_inbox_put(store *s, const char *rcpt, const char *sender,
		    const uint8_t envelope_id[16], const uint8_t *env,
		    size_t env_len, uint64_t received, store_put_cb *cb,
		    void *arg)
{
	if (env_len == 0 || env_len > INT32_MAX)
		return -1;
	job *j = calloc(1, sizeof(*j));
	uint8_t *copy = malloc(env_len);
	if (j == NULL || copy == NULL) {
		free(j);
		free(copy);
		return -1;
	}
	memcpy(copy, env, env_len);
	j->kind = JOB_PUT;
	did_hash(s, "rcpt", rcpt, j->rcpt);
	dedupe_hash(s, sender, envelope_id, rcpt, j->dedupe);
	j->env = copy;
	j->env_len = env_len;
	j->received = received;
	j->cb = cb;
	j->arg = arg;
	if (enqueue(s, j) != 0) {
		free(copy);
		free(j);
		return -1;
	}
	return 0;
}

int store_inbox_ack(store *s, const char *rcpt, const uint64_t *seqs, size_t n)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
	bool done = false;
	int result = -1;
	job j = { .kind = JOB_ACK, .seqs = (uint64_t *)seqs, .n_seqs = n,
		  .done_lock = &lock, .done_cond = &cond, .done = &done,
		  .done_result = &result };
	did_hash(s, "rcpt", rcpt, j.rcpt);
	if (enqueue(s, &j) != 0)
		return -1;
	pthread_mutex_lock(&lock);
	while (!done)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	return result;
}

void store_items_free(store_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i].envelope);
	free(items);
}

int store_inbox_fetch(store *s, const char *rcpt, uint64_t cursor,
		      unsigned limit, store_item **items_r, size_t *n_r)
{
	uint8_t h[32];
	did_hash(s, "rcpt", rcpt, h);
	if (limit == 0)
		limit = 1;
	store_item *items = calloc(limit, sizeof(*items));
	if (items == NULL)
		return -1;
	size_t n = 0;
	int rc;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->r_fetch;
	sqlite3_reset(st);
	sqlite3_bind_blob(st, 1, h, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)(cursor > INT64_MAX ? INT64_MAX : cursor));
	sqlite3_bind_int64(st, 3, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_item *it = &items[n];
		int len = sqlite3_column_bytes(st, 2);
		const void *blob = sqlite3_column_blob(st, 2);
		it->seq = (uint64_t)sqlite3_column_int64(st, 0);
		it->received = (uint64_t)sqlite3_column_int64(st, 1);
		it->envelope = malloc(len > 0 ? (size_t)len : 1);
		if (it->envelope == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		memcpy(it->envelope, blob, (size_t)len);
		it->envelope_len = (size_t)len;
		n++;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->rlock);
	if (rc != SQLITE_DONE) {
		store_items_free(items, n);
		return -1;
	}
	*items_r = items;
	*n_r = n;
	return 0;
}

void store_get_stats(store *s, store_stats *stats_r)
{
	pthread_mutex_lock(&s->lock);
	*stats_r = s->stats;
	pthread_mutex_unlock(&s->lock);
}
