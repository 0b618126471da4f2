/*
 * test-store.c — src/store on SQLite: put/fetch/ack by cursor, idempotent
 * delivery (also after ack), recipients isolated, DIDs not stored in
 * clear, group commit under concurrency, persistence across reopen, and
 * kill -9 while writing: every acknowledged write survives.  Deliveries
 * (issue 3): local and remote recipients in one job, deduplicated as a
 * whole; the registry (taken DIDs, one-time tokens, concurrent
 * registrations); metadata sealed at rest (the file bytes are searched);
 * the relay queue (lease, lease expiry, retry, clock going back, bounce);
 * corrupt, moved or foreign-key rows quarantined.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store.h"

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-store-common.h"

static const char *ALICE = "did:aftersmtp:alpha.test:alice";
static const char *BOB = "did:aftersmtp:beta.test:bob";

typedef struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending;
	int failures;
	uint64_t last_seq;
	bool last_dup;
} waiter;

static void on_put(void *arg, int result, uint64_t seq, bool duplicate)
{
	waiter *w = arg;
	pthread_mutex_lock(&w->lock);
	if (result != 0)
		w->failures++;
	w->last_seq = seq;
	w->last_dup = duplicate;
	w->pending--;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void wait_all(waiter *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->pending > 0)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static void put_sync(store *s, const char *rcpt, const char *sender, int id,
		     const char *env, uint64_t *seq, bool *dup)
{
	waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0, 0, false };
	uint8_t eid[16] = { 0 };
	memcpy(eid, &id, sizeof(id));
	assert_int_equal(store_inbox_put(s, rcpt, sender, eid, (const uint8_t *)env,
					 strlen(env), 1767225600, on_put, &w), 0);
	wait_all(&w);
	assert_int_equal(w.failures, 0);
	*seq = w.last_seq;
	*dup = w.last_dup;
}

static void test_put_fetch_ack(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	uint64_t seq[4];
	bool dup;
	put_sync(s, BOB, ALICE, 1, "env-one", &seq[0], &dup);
	assert_false(dup);
	put_sync(s, BOB, ALICE, 2, "env-two", &seq[1], &dup);
	put_sync(s, ALICE, BOB, 3, "for-alice", &seq[2], &dup);
	put_sync(s, BOB, ALICE, 4, "env-three", &seq[3], &dup);
	assert_true(seq[0] < seq[1] && seq[1] < seq[3]);

	store_item *it;
	size_t n;
	assert_int_equal(store_inbox_fetch(s, BOB, 0, 10, &it, &n), 0);
	assert_int_equal(n, 3); /* alice's item is not bob's */
	assert_memory_equal(it[0].envelope, "env-one", 7);
	assert_memory_equal(it[2].envelope, "env-three", 9);
	assert_int_equal(it[1].received, 1767225600);
	uint64_t cursor = it[0].seq;
	store_items_free(it, n);
	/* cursor and limit */
	assert_int_equal(store_inbox_fetch(s, BOB, cursor, 1, &it, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(it[0].envelope, "env-two", 7);
	store_items_free(it, n);
	/* ack deletes, durably; unknown and foreign seqs are ignored */
	uint64_t acks[] = { seq[0], seq[2], 999999 };
	assert_int_equal(store_inbox_ack(s, BOB, acks, 3), 0);
	assert_int_equal(store_inbox_fetch(s, BOB, 0, 10, &it, &n), 0);
	assert_int_equal(n, 2);
	store_items_free(it, n);
	assert_int_equal(store_inbox_fetch(s, ALICE, 0, 10, &it, &n), 0);
	assert_int_equal(n, 1); /* bob could not ack alice's item */
	store_items_free(it, n);
	/* a retried delivery is recognised, also after the ack */
	uint64_t again;
	put_sync(s, BOB, ALICE, 1, "env-one", &again, &dup);
	assert_true(dup);
	assert_int_equal(again, seq[0]);
	assert_int_equal(store_inbox_fetch(s, BOB, 0, 10, &it, &n), 0);
	assert_int_equal(n, 2);
	store_items_free(it, n);
	/* same id from another sender, or to another recipient: new item */
	put_sync(s, BOB, "did:aftersmtp:gamma.test:carol", 1, "x", &again, &dup);
	assert_false(dup);
	put_sync(s, ALICE, ALICE, 1, "y", &again, &dup);
	assert_false(dup);
	store_close(&s);
	assert_null(s);

	/* persistence across reopen */
	s = open_at(path);
	assert_int_equal(store_inbox_fetch(s, BOB, 0, 10, &it, &n), 0);
	assert_int_equal(n, 3);
	store_items_free(it, n);
	store_close(&s);

	/* DIDs are not stored in clear */
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "cat %s* | grep -c did:aftersmtp >/dev/null", path);
	assert_int_not_equal(system(cmd), 0);
	rm_db(path);
}

typedef struct writer_arg {
	store *s;
	int base;
	waiter *w;
} writer_arg;

static void *writer(void *arg)
{
	writer_arg *a = arg;
	for (int i = 0; i < 200; i++) {
		uint8_t eid[16] = { 0 };
		int id = a->base + i;
		memcpy(eid, &id, sizeof(id));
		char env[32];
		int len = snprintf(env, sizeof(env), "envelope %d", id);
		pthread_mutex_lock(&a->w->lock);
		a->w->pending++;
		pthread_mutex_unlock(&a->w->lock);
		if (store_inbox_put(a->s, BOB, ALICE, eid, (uint8_t *)env,
				    (size_t)len, 1, on_put, a->w) != 0)
			abort();
	}
	return NULL;
}

static void test_group_commit(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, false };
	pthread_t t[8];
	writer_arg a[8];
	for (int i = 0; i < 8; i++) {
		a[i] = (writer_arg){ s, i * 1000, &w };
		assert_int_equal(pthread_create(&t[i], NULL, writer, &a[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	wait_all(&w);
	assert_int_equal(w.failures, 0);
	store_stats st;
	store_get_stats(s, &st);
	assert_int_equal(st.writes, 1600);
	/* Concurrent writes shared commits (fsyncs). */
	print_message("group commit: %llu writes in %llu commits\n",
		      (unsigned long long)st.writes, (unsigned long long)st.commits);
	assert_true(st.commits < st.writes);
	store_item *it;
	size_t n;
	assert_int_equal(store_inbox_fetch(s, BOB, 0, 5000, &it, &n), 0);
	assert_int_equal(n, 1600);
	store_items_free(it, n);
	store_close(&s);
	rm_db(path);
}

/* The child writes forever from 4 threads and reports each acknowledged
 * id on the pipe; the parent kills it with SIGKILL at a random moment.
 * At most CRASH_INFLIGHT writes wait for their commit at a time (as a
 * server's requests would), so that commits keep coming also in a slow
 * (sanitizer) build on a busy machine. */
#define CRASH_INFLIGHT 128
typedef struct crash_arg {
	store *s;
	int fd;
	int base;
	pthread_mutex_t *lock;
} crash_arg;

static void on_crash_put(void *arg, int result, uint64_t seq, bool dup)
{
	crash_arg *a = arg;
	(void)seq;
	(void)dup;
	crash_finished(a->lock, a->fd, result, &a->base, sizeof(a->base));
	free(a);
}

static void *crash_writer(void *arg)
{
	crash_arg *base = arg;
	for (int i = 0;; i++) {
		crash_arg *a = malloc(sizeof(*a));
		*a = *base;
		a->base = base->base + i;
		uint8_t eid[16] = { 0 };
		memcpy(eid, &a->base, sizeof(int));
		char env[600];
		memset(env, 'e', sizeof(env));
		crash_slot_take(CRASH_INFLIGHT);
		if (store_inbox_put(base->s, BOB, ALICE, eid, (uint8_t *)env,
				    sizeof(env), 1, on_crash_put, a) != 0)
			_exit(4);
	}
	return NULL;
}

static void test_kill9_loses_nothing_acked(void **state)
{
	(void)state;
	char *path = tmpdb();
	int acked_total = 0;
	static int acked[400000];
	for (int round = 0; round < 4; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		if (pid == 0) {
			close(p[0]);
			store *s = open_at(path);
			int ready = -1; /* opened: the parent starts its clock */
			if (write(p[1], &ready, sizeof(ready)) != sizeof(ready))
				_exit(6);
			pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
			pthread_t t[4];
			crash_arg a[4];
			for (int i = 0; i < 4; i++) {
				a[i] = (crash_arg){ s, p[1], round * 10000000 + i * 1000000, &lock };
				pthread_create(&t[i], NULL, crash_writer, &a[i]);
			}
			for (;;)
				pause();
		}
		close(p[1]);
		/* Once it has opened the store (slow in a sanitizer build or
		 * on a busy machine), let it write for a random 50-300 ms,
		 * then kill -9. */
		int ready = 0;
		assert_int_equal(read(p[0], &ready, sizeof(ready)), sizeof(ready));
		assert_int_equal(ready, -1);
		usleep(50000 + (useconds_t)(rand() % 250000));
		kill(pid, SIGKILL);
		int id;
		ssize_t r;
		while ((r = read(p[0], &id, sizeof(id))) == sizeof(id)) {
			if (acked_total < (int)(sizeof(acked) / sizeof(acked[0])))
				acked[acked_total++] = id;
		}
		close(p[0]);
		waitpid(pid, NULL, 0);
	}
	assert_true(acked_total > 100);
	/* Every acknowledged envelope is there. */
	store *s = open_at(path);
	store_item *it;
	size_t n;
	int found = 0;
	for (int i = 0; i < acked_total; i++) {
		uint64_t seq;
		bool dup;
		char env[600];
		memset(env, 'e', sizeof(env));
		waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0, 0, false };
		uint8_t eid[16] = { 0 };
		memcpy(eid, &acked[i], sizeof(int));
		/* Re-delivering an acked id must be recognised as a duplicate. */
		assert_int_equal(store_inbox_put(s, BOB, ALICE, eid, (uint8_t *)env,
						 sizeof(env), 1, on_put, &w), 0);
		wait_all(&w);
		seq = w.last_seq;
		dup = w.last_dup;
		(void)seq;
		if (dup)
			found++;
	}
	print_message("kill -9: %d writes acknowledged over 4 crashes, %d found "
		      "after restart\n", acked_total, found);
	assert_int_equal(found, acked_total);
	assert_int_equal(store_inbox_fetch(s, BOB, 0, 1, &it, &n), 0);
	store_items_free(it, n);
	store_close(&s);
	rm_db(path);
}

/* ------------------------------------------------------- deliveries */

static const uint8_t KEY2[STORE_KEY_BYTES] = "another storage key, 32 bytes..";
static const char *CAROL = "did:aftersmtp:alpha.test:carol";
#define T0 UINT64_C(1767225600)

typedef struct dwait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int result;
	bool dup;
} dwait;

static void on_deliver(void *arg, int result, bool duplicate)
{
	dwait *w = arg;
	pthread_mutex_lock(&w->lock);
	w->result = result;
	w->dup = duplicate;
	w->done = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Deliver and wait; returns whether it was a duplicate. */
static bool deliver_sync(store *s, const store_delivery *d)
{
	dwait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, -1, false };
	assert_int_equal(store_deliver(s, d, on_deliver, &w), 0);
	pthread_mutex_lock(&w.lock);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	assert_int_equal(w.result, 0);
	return w.dup;
}


static size_t inbox_count(store *s, const char *rcpt)
{
	store_item *it;
	size_t n;
	assert_int_equal(store_inbox_fetch(s, rcpt, 0, 1000, &it, &n), 0);
	store_items_free(it, n);
	return n;
}

static const store_queue_item *find_domain(const store_queue_item *it,
					   size_t n, const char *domain)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(it[i].domain, domain) == 0)
			return &it[i];
	}
	return NULL;
}

static void test_deliver_local_and_remote(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	const char *local[] = { BOB, CAROL };
	const char *domains[] = { "gamma.example", "delta.example" };
	const char env[] = "sealed envelope bytes";
	uint8_t eid[16] = { 7 };
	store_delivery d = { .sender = ALICE, .envelope_id = eid,
			     .env = (const uint8_t *)env, .env_len = sizeof(env),
			     .received = T0, .local = local, .n_local = 2,
			     .domains = domains, .n_domains = 2,
			     .expires = T0 + 5 * 86400 };
	assert_false(deliver_sync(s, &d));
	store_stats st;
	store_get_stats(s, &st);
	assert_int_equal(st.queued, 2);

	/* both local recipients have it */
	const char *who[] = { BOB, CAROL };
	for (int i = 0; i < 2; i++) {
		store_item *it;
		size_t n;
		assert_int_equal(store_inbox_fetch(s, who[i], 0, 10, &it, &n), 0);
		assert_int_equal(n, 1);
		assert_int_equal(it[0].envelope_len, sizeof(env));
		assert_memory_equal(it[0].envelope, env, sizeof(env));
		assert_int_equal(it[0].received, T0);
		store_items_free(it, n);
	}
	assert_int_equal(inbox_count(s, ALICE), 0);

	/* one queue entry per remote domain */
	store_queue_item *q;
	size_t nq;
	assert_int_equal(store_queue_lease(s, T0, 60, 86400, 10, &q, &nq), 0);
	assert_int_equal(nq, 2);
	for (int i = 0; i < 2; i++) {
		const store_queue_item *e = find_domain(q, nq, domains[i]);
		assert_non_null(e);
		assert_int_equal(e->envelope_len, sizeof(env));
		assert_memory_equal(e->envelope, env, sizeof(env));
		assert_int_equal(e->attempts, 0);
		assert_int_equal(e->created, T0);
		assert_int_equal(e->expires, T0 + 5 * 86400);
		assert_true(e->id > 0 && e->id <= INT64_MAX);
	}
	assert_int_not_equal(q[0].id, q[1].id);
	uint64_t ids[2] = { q[0].id, q[1].id };
	store_queue_free(q, nq);

	/* a duplicate stores nothing: not even with other recipients */
	sqlite3 *db = raw_open(path);
	long long inbox_rows = raw_count(db, "SELECT count(*) FROM inbox");
	assert_int_equal(inbox_rows, 2);
	assert_true(deliver_sync(s, &d));
	const char *other[] = { ALICE };
	store_delivery d2 = d;
	d2.local = other;
	d2.n_local = 1;
	d2.n_domains = 0;
	assert_true(deliver_sync(s, &d2));
	assert_int_equal(raw_count(db, "SELECT count(*) FROM inbox"), inbox_rows);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM queue"), 2);
	assert_int_equal(inbox_count(s, BOB), 1);
	assert_int_equal(inbox_count(s, ALICE), 0);
	store_get_stats(s, &st);
	assert_int_equal(st.queued, 2);

	/* still recognised after the queue entries are done and items acked */
	assert_int_equal(store_queue_done(s, ids[0]), 0);
	assert_int_equal(store_queue_done(s, ids[1]), 0);
	assert_int_equal(store_queue_done(s, ids[1]), 0); /* unknown: ignored */
	store_get_stats(s, &st);
	assert_int_equal(st.queued, 0);
	uint64_t when;
	assert_int_equal(store_queue_next(s, &when), 0);
	assert_true(deliver_sync(s, &d));
	assert_int_equal(raw_count(db, "SELECT count(*) FROM queue"), 0);
	/* the same id from another sender is a new delivery */
	store_delivery d3 = d;
	d3.sender = BOB;
	d3.n_domains = 0;
	assert_false(deliver_sync(s, &d3));
	assert_int_equal(inbox_count(s, BOB), 2);

	/* refused before queueing: nothing to do, bad sizes */
	dwait w;
	store_delivery bad = d;
	bad.n_local = bad.n_domains = 0;
	assert_int_equal(store_deliver(s, &bad, on_deliver, &w), -1);
	bad = d;
	bad.env_len = 0;
	assert_int_equal(store_deliver(s, &bad, on_deliver, &w), -1);
	char longdom[300];
	memset(longdom, 'a', sizeof(longdom) - 1);
	longdom[sizeof(longdom) - 1] = '\0';
	const char *bad_dom[] = { longdom };
	bad = d;
	bad.domains = bad_dom;
	bad.n_domains = 1;
	assert_int_equal(store_deliver(s, &bad, on_deliver, &w), -1);
	sqlite3_close(db);
	store_close(&s);
	rm_db(path);
}

static void test_register(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	const char *doc_a = "{\"id\":\"did:aftersmtp:alpha.test:alice\"}";
	const char *doc_b = "{\"id\":\"did:aftersmtp:beta.test:bob\"}";
	uint8_t t1[32], t2[32];
	memset(t1, 1, 32);
	memset(t2, 2, 32);
	store_reg_res res;
	char *doc;
	size_t len;
	assert_int_equal(store_identity_get(s, ALICE, &doc, &len), 0);
	assert_int_equal(store_register(s, ALICE, doc_a, strlen(doc_a), t1,
					T0 + 3600, &res), 0);
	assert_int_equal(res, STORE_REG_OK);
	assert_int_equal(store_identity_get(s, ALICE, &doc, &len), 1);
	assert_int_equal(len, strlen(doc_a));
	assert_string_equal(doc, doc_a);
	free(doc);
	/* the DID is taken: t2 is not consumed */
	assert_int_equal(store_register(s, ALICE, doc_b, strlen(doc_b), t2,
					T0 + 3600, &res), 0);
	assert_int_equal(res, STORE_REG_TAKEN);
	/* t1 was used: bob is not registered */
	assert_int_equal(store_register(s, BOB, doc_b, strlen(doc_b), t1,
					T0 + 3600, &res), 0);
	assert_int_equal(res, STORE_REG_TOKEN_USED);
	assert_int_equal(store_identity_get(s, BOB, &doc, &len), 0);
	assert_int_equal(store_register(s, BOB, doc_b, strlen(doc_b), t2,
					T0 + 3600, &res), 0);
	assert_int_equal(res, STORE_REG_OK);
	/* not found; bad arguments */
	assert_int_equal(store_identity_get(s, CAROL, &doc, &len), 0);
	assert_int_equal(store_register(s, CAROL, doc_b, 0, t2, 0, &res), -1);
	assert_int_equal(store_register(s, "", doc_b, strlen(doc_b), t2, 0,
					&res), -1);
	store_close(&s);

	/* durable, and the alice document is still hers */
	s = open_at(path);
	assert_int_equal(store_identity_get(s, ALICE, &doc, &len), 1);
	assert_string_equal(doc, doc_a);
	free(doc);
	assert_int_equal(store_identity_get(s, BOB, &doc, &len), 1);
	assert_string_equal(doc, doc_b);
	free(doc);
	sqlite3 *db = raw_open(path);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM identity"), 2);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM token"), 2);
	sqlite3_close(db);
	store_close(&s);
	rm_db(path);
}

typedef struct reg_arg {
	store *s;
	pthread_barrier_t *go;
	int i;
	bool same_did;          /* else: the same token */
	store_reg_res res;
	int rc;
} reg_arg;

static void *registrar(void *arg)
{
	reg_arg *a = arg;
	char did[64], doc[96];
	uint8_t token[32];
	if (a->same_did)
		snprintf(did, sizeof(did), "did:aftersmtp:alpha.test:dave");
	else
		snprintf(did, sizeof(did), "did:aftersmtp:alpha.test:eve%d", a->i);
	snprintf(doc, sizeof(doc), "{\"id\":\"%s\",\"n\":%d}", did, a->i);
	memset(token, a->same_did ? 0x40 + a->i : 0x7f, sizeof(token));
	pthread_barrier_wait(a->go);
	a->rc = store_register(a->s, did, doc, strlen(doc), token, T0, &a->res);
	return NULL;
}

static void test_register_concurrent(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	for (int round = 0; round < 2; round++) {
		bool same_did = round == 0;
		pthread_barrier_t go;
		pthread_barrier_init(&go, NULL, 8);
		pthread_t t[8];
		reg_arg a[8];
		for (int i = 0; i < 8; i++) {
			a[i] = (reg_arg){ s, &go, i, same_did, STORE_REG_OK, -1 };
			assert_int_equal(pthread_create(&t[i], NULL, registrar, &a[i]), 0);
		}
		int ok = 0, lost = 0, winner = -1;
		for (int i = 0; i < 8; i++) {
			pthread_join(t[i], NULL);
			assert_int_equal(a[i].rc, 0);
			if (a[i].res == STORE_REG_OK) {
				ok++;
				winner = i;
			} else if (a[i].res == (same_did ? STORE_REG_TAKEN
							 : STORE_REG_TOKEN_USED))
				lost++;
		}
		pthread_barrier_destroy(&go);
		assert_int_equal(ok, 1);
		assert_int_equal(lost, 7);
		if (same_did) {
			/* the stored document is the winner's */
			char *doc, want[96];
			size_t len;
			snprintf(want, sizeof(want),
				 "{\"id\":\"did:aftersmtp:alpha.test:dave\",\"n\":%d}",
				 winner);
			assert_int_equal(store_identity_get(s,
				"did:aftersmtp:alpha.test:dave", &doc, &len), 1);
			assert_string_equal(doc, want);
			free(doc);
		}
	}
	sqlite3 *db = raw_open(path);
	/* One identity and one token per round: the seven refusals of each
	 * round changed nothing. */
	assert_int_equal(raw_count(db, "SELECT count(*) FROM identity"), 2);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM token"), 2);
	sqlite3_close(db);
	store_close(&s);
	rm_db(path);
}

/* Whether needle occurs in the database file or its WAL. */
static bool db_contains(const char *path, const void *needle, size_t len)
{
	char name[128];
	bool found = false;
	for (int k = 0; k < 2 && !found; k++) {
		snprintf(name, sizeof(name), "%s%s", path, k == 0 ? "" : "-wal");
		FILE *f = fopen(name, "rb");
		if (f == NULL)
			continue;
		assert_int_equal(fseek(f, 0, SEEK_END), 0);
		long size = ftell(f);
		assert_true(size >= 0);
		rewind(f);
		char *buf = malloc((size_t)size + 1);
		assert_non_null(buf);
		assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
		fclose(f);
		found = memmem(buf, (size_t)size, needle, len) != NULL;
		free(buf);
	}
	return found;
}

static void test_encrypted_at_rest(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	const char *sender = "did:aftersmtp:secret.example:zed";
	const char *rcpt = "did:aftersmtp:secret.example:yan";
	const char *domain = "hidden-relay.example";
	const char *regdid = "did:aftersmtp:secret.example:xavier";
	const char *doc = "{\"id\":\"did:aftersmtp:secret.example:xavier\","
			  "\"note\":\"DOCUMENT-PLAINTEXT-MARKER\"}";
	uint8_t env[200];
	for (size_t i = 0; i < sizeof(env); i++)
		env[i] = (uint8_t)(i * 7 + 3);
	memcpy(env, "ENVELOPE-PLAINTEXT-MARKER", 25);
	uint8_t eid[16] = { 0xee, 0x11 };
	const char *local[] = { rcpt };
	const char *domains[] = { domain };
	store_delivery d = { .sender = sender, .envelope_id = eid, .env = env,
			     .env_len = sizeof(env), .received = T0,
			     .local = local, .n_local = 1, .domains = domains,
			     .n_domains = 1, .expires = T0 + 86400 };
	assert_false(deliver_sync(s, &d));
	uint8_t token[32];
	memcpy(token, "TOKEN-PLAINTEXT-MARKER-32-BYTES!", 32);
	store_reg_res res;
	assert_int_equal(store_register(s, regdid, doc, strlen(doc), token,
					T0, &res), 0);
	assert_int_equal(res, STORE_REG_OK);
	/* a retry rewrites the queue row */
	store_queue_item *q;
	size_t nq;
	assert_int_equal(store_queue_lease(s, T0, 60, 86400, 10, &q, &nq), 0);
	assert_int_equal(nq, 1);
	assert_int_equal(store_queue_retry(s, q[0].id, T0 + 600), 0);
	store_queue_free(q, nq);

	const struct { const void *p; size_t n; } secrets[] = {
		{ sender, strlen(sender) }, { rcpt, strlen(rcpt) },
		{ regdid, strlen(regdid) }, { domain, strlen(domain) },
		{ "hidden-relay", 12 }, { "DOCUMENT-PLAINTEXT-MARKER", 25 },
		{ doc, 20 }, { env, sizeof(env) }, { env, 25 },
		{ env + 100, 32 }, { token, 32 }, { token, 16 },
		{ "secret.example", 14 },
	};
	for (int pass = 0; pass < 2; pass++) {
		/* pass 0: open, data in the WAL; pass 1: closed, checkpointed */
		assert_true(db_contains(path, "CREATE TABLE queue", 18)); /* control */
		for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
			if (db_contains(path, secrets[i].p, secrets[i].n))
				fail_msg("secret %zu found in the database file", i);
		}
		if (pass == 0)
			store_close(&s);
	}
	/* and still readable with the key */
	s = open_at(path);
	char *got;
	size_t len;
	assert_int_equal(store_identity_get(s, regdid, &got, &len), 1);
	assert_string_equal(got, doc);
	free(got);
	store_item *it;
	size_t n;
	assert_int_equal(store_inbox_fetch(s, rcpt, 0, 10, &it, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(it[0].envelope, env, sizeof(env));
	store_items_free(it, n);
	store_close(&s);
	rm_db(path);
}

static uint64_t deliver_remote(store *s, int id, const char *domain,
			       uint64_t received)
{
	uint8_t eid[16] = { 0 };
	memcpy(eid, &id, sizeof(id));
	const char *domains[] = { domain };
	char env[32];
	int n = snprintf(env, sizeof(env), "relay %d", id);
	store_delivery d = { .sender = ALICE, .envelope_id = eid,
			     .env = (const uint8_t *)env, .env_len = (size_t)n,
			     .received = received, .domains = domains,
			     .n_domains = 1, .expires = received + 86400 };
	assert_false(deliver_sync(s, &d));
	return received;
}

static size_t lease_n(store *s, uint64_t now, uint64_t max_delay,
		      unsigned max, store_queue_item **q)
{
	size_t n;
	assert_int_equal(store_queue_lease(s, now, 60, max_delay, max, q, &n), 0);
	return n;
}

static void test_queue_lease_retry(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	uint64_t when;
	store_queue_item *q;
	assert_int_equal(store_queue_next(s, &when), 0);
	assert_int_equal(lease_n(s, T0, 86400, 10, &q), 0);
	deliver_remote(s, 1, "gamma.example", T0);
	assert_int_equal(store_queue_next(s, &when), 1);
	assert_int_equal(when, T0);
	/* not due before it was created (within max_delay) */
	assert_int_equal(lease_n(s, T0 - 10, 86400, 10, &q), 0);

	assert_int_equal(lease_n(s, T0, 86400, 10, &q), 1);
	uint64_t id = q[0].id;
	assert_int_equal(q[0].attempts, 0);
	assert_memory_equal(q[0].envelope, "relay 1", 7);
	store_queue_free(q, 1);
	/* leased: not handed out again until the lease runs out */
	assert_int_equal(store_queue_next(s, &when), 1);
	assert_int_equal(when, T0 + 60);
	assert_int_equal(lease_n(s, T0, 86400, 10, &q), 0);
	assert_int_equal(lease_n(s, T0 + 59, 86400, 10, &q), 0);
	/* the worker died: after the lease the entry comes back */
	assert_int_equal(lease_n(s, T0 + 60, 86400, 10, &q), 1);
	assert_int_equal(q[0].id, id);
	assert_int_equal(q[0].attempts, 0);
	store_queue_free(q, 1);

	/* retry: attempts + 1, due at next_attempt */
	assert_int_equal(store_queue_retry(s, id, T0 + 3600), 0);
	assert_int_equal(store_queue_next(s, &when), 1);
	assert_int_equal(when, T0 + 3600);
	assert_int_equal(lease_n(s, T0 + 3599, 86400, 10, &q), 0);
	assert_int_equal(lease_n(s, T0 + 3600, 86400, 10, &q), 1);
	assert_int_equal(q[0].attempts, 1);
	assert_memory_equal(q[0].envelope, "relay 1", 7);
	assert_string_equal(q[0].domain, "gamma.example");
	store_queue_free(q, 1);
	assert_int_equal(store_queue_retry(s, id, T0 + 7200), 0);

	/* the clock went back a day: T0 + 7200 is more than max_delay ahead */
	uint64_t back = T0 - 86400;
	assert_int_equal(lease_n(s, back, 2 * 86400, 10, &q), 0);
	assert_int_equal(lease_n(s, back, 3600, 10, &q), 1);
	assert_int_equal(q[0].id, id);
	assert_int_equal(q[0].attempts, 2);
	store_queue_free(q, 1);
	/* the lease counts from the clock it was given */
	assert_int_equal(store_queue_next(s, &when), 1);
	assert_int_equal(when, back + 60);

	/* unknown ids are ignored */
	assert_int_equal(store_queue_retry(s, id ^ 1, T0), 0);
	assert_int_equal(store_queue_retry(s, 0, T0), 0);
	assert_int_equal(store_queue_done(s, UINT64_MAX), 0);
	store_stats st;
	store_get_stats(s, &st);
	assert_int_equal(st.queued, 1);
	assert_int_equal(store_queue_done(s, id), 0);
	assert_int_equal(store_queue_next(s, &when), 0);
	store_get_stats(s, &st);
	assert_int_equal(st.queued, 0);

	/* max; oldest first */
	for (int i = 0; i < 5; i++)
		deliver_remote(s, 10 + i, "delta.example", T0 + (uint64_t)i);
	assert_int_equal(lease_n(s, T0 + 100, 86400, 2, &q), 2);
	assert_memory_equal(q[0].envelope, "relay 10", 8);
	assert_memory_equal(q[1].envelope, "relay 11", 8);
	store_queue_free(q, 2);
	assert_int_equal(lease_n(s, T0 + 100, 86400, 10, &q), 3);
	store_queue_free(q, 3);
	assert_int_equal(lease_n(s, T0 + 100, 86400, 0, &q), 0);
	store_close(&s);

	/* queued is counted at open */
	s = open_at(path);
	store_get_stats(s, &st);
	assert_int_equal(st.queued, 5);
	assert_int_equal(st.quarantined, 0);
	store_close(&s);
	rm_db(path);
}

static void test_queue_bounce(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	deliver_remote(s, 1, "gamma.example", T0);
	deliver_remote(s, 2, "gamma.example", T0 + 1);
	store_queue_item *q;
	assert_int_equal(lease_n(s, T0 + 10, 86400, 10, &q), 2);
	uint64_t id1 = q[0].id, id2 = q[1].id;
	store_queue_free(q, 2);

	const char *to[] = { ALICE };
	const char ndn_env[] = "non-delivery notice";
	uint8_t ndn_id[16] = { 0xdd };
	store_delivery ndn = { .sender = "did:aftersmtp:alpha.test:postmaster",
			       .envelope_id = ndn_id,
			       .env = (const uint8_t *)ndn_env,
			       .env_len = sizeof(ndn_env), .received = T0 + 20,
			       .local = to, .n_local = 1 };
	/* an invalid notice is refused and changes nothing */
	store_delivery bad = ndn;
	bad.n_local = 0;
	assert_int_equal(store_queue_bounce(s, id1, &bad), -1);
	store_stats st;
	store_get_stats(s, &st);
	assert_int_equal(st.queued, 2);

	assert_int_equal(store_queue_bounce(s, id1, &ndn), 0);
	store_item *it;
	size_t n;
	assert_int_equal(store_inbox_fetch(s, ALICE, 0, 10, &it, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(it[0].envelope, ndn_env, sizeof(ndn_env));
	assert_int_equal(it[0].received, T0 + 20);
	store_items_free(it, n);
	store_get_stats(s, &st);
	assert_int_equal(st.queued, 1);
	/* the entry is gone; the other one is still there */
	assert_int_equal(lease_n(s, T0 + 1000, 86400, 10, &q), 1);
	assert_int_equal(q[0].id, id2);
	store_queue_free(q, 1);
	/* bouncing it again delivers no second notice */
	ndn_id[0] = 0xde;
	assert_int_equal(store_queue_bounce(s, id1, &ndn), 0);
	assert_int_equal(inbox_count(s, ALICE), 1);
	store_close(&s);

	/* both changes were committed together */
	s = open_at(path);
	store_get_stats(s, &st);
	assert_int_equal(st.queued, 1);
	assert_int_equal(inbox_count(s, ALICE), 1);
	store_close(&s);
	rm_db(path);
}

/* Set queue row id's box with the sqlite3 API. */
static void raw_set_box(sqlite3 *db, uint64_t id, const void *box, int len)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE queue SET box=? WHERE id=?",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, box, len, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)id);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
}

/* Row id's box (malloc'ed). */
static uint8_t *raw_get_box(sqlite3 *db, const char *table, uint64_t id,
			    int *len_r)
{
	char sql[100];
	snprintf(sql, sizeof(sql), "SELECT box FROM %s WHERE %s=?", table,
		 strcmp(table, "inbox") == 0 ? "seq" : "id");
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int len = sqlite3_column_bytes(st, 0);
	uint8_t *b = malloc((size_t)len);
	assert_non_null(b);
	memcpy(b, sqlite3_column_blob(st, 0), (size_t)len);
	sqlite3_finalize(st);
	*len_r = len;
	return b;
}

static void test_queue_quarantine(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	const char *names[] = { "a.example", "b.example", "c.example",
				"d.example", "e.example" };
	for (int i = 0; i < 5; i++)
		deliver_remote(s, i, names[i], T0);
	store_queue_item *q;
	assert_int_equal(lease_n(s, T0, 86400, 10, &q), 5);
	uint64_t id[5];
	for (int i = 0; i < 5; i++)
		id[i] = find_domain(q, 5, names[i])->id;
	store_queue_free(q, 5);
	uint64_t seq;
	bool dup;
	put_sync(s, BOB, ALICE, 1, "inbox item", &seq, &dup);
	store_close(&s);

	/* a: a flipped ciphertext byte; b and c: boxes swapped (moved rows);
	 * d: truncated; e: intact.  And bob's inbox row is corrupted. */
	sqlite3 *db = raw_open(path);
	int len_a, len_b, len_c, len_i;
	uint8_t *box_a = raw_get_box(db, "queue", id[0], &len_a);
	uint8_t *box_b = raw_get_box(db, "queue", id[1], &len_b);
	uint8_t *box_c = raw_get_box(db, "queue", id[2], &len_c);
	box_a[30] ^= 0x01;
	raw_set_box(db, id[0], box_a, len_a);
	raw_set_box(db, id[1], box_c, len_c);
	raw_set_box(db, id[2], box_b, len_b);
	raw_set_box(db, id[3], box_b, 10);
	uint8_t *box_i = raw_get_box(db, "inbox", seq, &len_i);
	box_i[len_i - 1] ^= 0x80;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE inbox SET box=? WHERE seq=?",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, box_i, len_i, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	free(box_b);
	free(box_c);
	free(box_i);

	s = open_at(path);
	store_stats stats;
	store_get_stats(s, &stats);
	assert_int_equal(stats.queued, 5);
	assert_int_equal(stats.quarantined, 0);
	/* only the intact row is leased, the four others are quarantined */
	assert_int_equal(lease_n(s, T0 + 60, 86400, 10, &q), 1);
	assert_int_equal(q[0].id, id[4]);
	assert_string_equal(q[0].domain, "e.example");
	store_queue_free(q, 1);
	store_get_stats(s, &stats);
	assert_int_equal(stats.quarantined, 4);
	assert_int_equal(stats.queued, 1);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM queue"), 1);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM quarantine"), 4);
	/* kept as it was */
	int len_q;
	uint8_t *box_q = raw_get_box(db, "quarantine", id[0], &len_q);
	assert_int_equal(len_q, len_a);
	assert_memory_equal(box_q, box_a, (size_t)len_a);
	free(box_q);
	free(box_a);
	/* still leases after the lease runs out */
	assert_int_equal(lease_n(s, T0 + 200, 86400, 10, &q), 1);
	store_queue_free(q, 1);
	/* a row corrupted between lease and retry is quarantined by retry */
	int len_e;
	uint8_t *box_e = raw_get_box(db, "queue", id[4], &len_e);
	box_e[len_e / 2] ^= 0x10;
	raw_set_box(db, id[4], box_e, len_e);
	free(box_e);
	assert_int_equal(store_queue_retry(s, id[4], T0 + 1000), 0);
	store_get_stats(s, &stats);
	assert_int_equal(stats.quarantined, 5);
	assert_int_equal(stats.queued, 0);
	uint64_t when;
	assert_int_equal(store_queue_next(s, &when), 0);
	/* a corrupt inbox row is quarantined; the fetch goes on without it */
	store_item *it;
	size_t n;
	assert_int_equal(store_inbox_fetch(s, BOB, 0, 10, &it, &n), 1);
	assert_int_equal(n, 0);
	store_items_free(it, n);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM inbox"), 0);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM quarantine "
				       "WHERE next_attempt = -1"), 1);
	assert_int_equal(store_inbox_fetch(s, BOB, 0, 10, &it, &n), 0);
	store_items_free(it, n);
	store_close(&s);
	/* counted at open */
	s = open_at(path);
	store_get_stats(s, &stats);
	assert_int_equal(stats.quarantined, 6);
	store_close(&s);
	sqlite3_close(db);
	rm_db(path);
}


static void test_wrong_key(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	deliver_remote(s, 1, "gamma.example", T0);
	deliver_remote(s, 2, "delta.example", T0);
	uint64_t seq1, seq2;
	bool dup;
	put_sync(s, BOB, ALICE, 1, "for bob", &seq1, &dup);
	const char *doc = "{\"id\":\"did:aftersmtp:alpha.test:alice\"}";
	uint8_t token[32] = { 9 }, token2[32] = { 10 };
	store_reg_res res;
	assert_int_equal(store_register(s, ALICE, doc, strlen(doc), token, T0,
					&res), 0);
	assert_int_equal(res, STORE_REG_OK);
	store_close(&s);
	sqlite3 *db = raw_open(path);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT did FROM identity", -1,
					    &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	uint8_t h1[32];
	assert_int_equal(sqlite3_column_bytes(st, 0), 32);
	memcpy(h1, sqlite3_column_blob(st, 0), 32);
	sqlite3_finalize(st);

	/* Another key is refused at open, and nothing is touched. */
	{
		store *s2 = NULL;
		const char *err = NULL;
		store_opts o = { .path = path, .key = KEY2 };
		assert_int_equal(store_open(&o, &s2, &err), -1);
		assert_non_null(strstr(err, "storage key"));
	}
	assert_int_equal(raw_count(db, "SELECT count(*) FROM quarantine"), 0);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM queue"), 2);
	s = open_at(path);
	store_stats stats;
	store_get_stats(s, &stats);
	assert_int_equal(stats.queued, 2);
	char *got;
	size_t len;
	assert_int_equal(store_identity_get(s, ALICE, &got, &len), 1);
	free(got);
	assert_int_equal(inbox_count(s, BOB), 1);
	store_close(&s);
	/* A box moved to another row does not open there (its row identity
	 * is in the associated data): quarantined, not served. */
	s = open_at(path);
	put_sync(s, ALICE, BOB, 2, "x", &seq2, &dup);
	store_close(&s);
	sqlite3_stmt *st2;
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE inbox SET box=(SELECT "
					    "box FROM inbox WHERE seq=?1) "
					    "WHERE seq=?2", -1, &st2, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st2, 1, (sqlite3_int64)seq1);
	sqlite3_bind_int64(st2, 2, (sqlite3_int64)seq2);
	assert_int_equal(sqlite3_step(st2), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st2);
	s = open_at(path);
	store_item *it;
	size_t n;
	assert_int_equal(store_inbox_fetch(s, ALICE, 0, 10, &it, &n), 1);
	assert_int_equal(n, 0);
	store_items_free(it, n);
	assert_int_equal(inbox_count(s, BOB), 1);
	(void)token2;
	(void)h1;
	store_close(&s);
	sqlite3_close(db);

	/* The right key still reads everything else. */
	s = open_at(path);
	store_get_stats(s, &stats);
	assert_int_equal(stats.queued, 2);
	assert_int_equal(stats.quarantined, 1);
	assert_int_equal(store_identity_get(s, ALICE, &got, &len), 1);
	assert_string_equal(got, doc);
	free(got);
	assert_int_equal(store_inbox_fetch(s, BOB, 0, 10, &it, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(it[0].envelope, "for bob", 7);
	store_items_free(it, n);
	store_close(&s);
	rm_db(path);
}

static void test_delivery_note(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	const char *local[] = { BOB, CAROL };
	const char *who[] = { BOB, CAROL };
	const char env[] = "sealed envelope bytes";
	uint8_t eid1[16] = { 9 };
	store_delivery d1 = { .sender = ALICE, .envelope_id = eid1,
			      .env = (const uint8_t *)env, .env_len = sizeof(env),
			      .received = T0, .local = local, .n_local = 2 };
	assert_false(deliver_sync(s, &d1));
	/* a delivery note per recipient, kept with that recipient's copy */
	const char *notes[] = { "rcpt=bob@alpha.test notify=SUCCESS", NULL };
	uint8_t eid2[16] = { 8 };
	store_delivery dn = { .sender = ALICE, .envelope_id = eid2,
			      .env = (const uint8_t *)env, .env_len = sizeof(env),
			      .received = T0, .local = local, .local_note = notes,
			      .n_local = 2 };
	assert_false(deliver_sync(s, &dn));
	for (int i = 0; i < 2; i++) {
		store_item *it;
		size_t n;
		assert_int_equal(store_inbox_fetch(s, who[i], 0, 10, &it, &n), 0);
		assert_int_equal(n, 2);
		assert_null(it[0].note);
		assert_memory_equal(it[1].envelope, env, sizeof(env));
		assert_int_equal(it[1].envelope_len, sizeof(env));
		if (i == 0)
			assert_string_equal(it[1].note, notes[0]);
		else
			assert_null(it[1].note);
		store_items_free(it, n);
	}

	/* a note over the limit is refused */
	char big[STORE_NOTE_MAX + 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	const char *bignotes[] = { big, NULL };
	uint8_t eid3[16] = { 10 };
	store_delivery db = dn;
	db.envelope_id = eid3;
	db.local_note = bignotes;
	assert_int_equal(store_deliver(s, &db, NULL, NULL), -1);
	store_close(&s);
	rm_db(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_fetch_ack),
		cmocka_unit_test(test_group_commit),
		cmocka_unit_test(test_kill9_loses_nothing_acked),
		cmocka_unit_test(test_deliver_local_and_remote),
		cmocka_unit_test(test_delivery_note),
		cmocka_unit_test(test_register),
		cmocka_unit_test(test_register_concurrent),
		cmocka_unit_test(test_encrypted_at_rest),
		cmocka_unit_test(test_queue_lease_retry),
		cmocka_unit_test(test_queue_bounce),
		cmocka_unit_test(test_queue_quarantine),
		cmocka_unit_test(test_wrong_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
