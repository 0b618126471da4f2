/*
 * test-mailq.c — the store's mail queue (issue 5): put split per domain
 * with one shared body, lease (next_attempt = now + lease, attempts + 1,
 * not leased again before the lease ends, lanes independent, the clock
 * going back), update (partial success keeps the rest, all done deletes
 * the row and, with the last row, the body; bounced rows kept until
 * purged; DSN parts in the same transaction, also when the row is gone),
 * the admin operations (hold, release, flush, delete, purge, list
 * filters, get, stats, next), store_delivery.outbound in one transaction
 * with the inbox copies (a duplicate enqueues nothing; a failing enqueue
 * stores nothing), input validation, sealing at rest, corrupt rows and
 * bodies quarantined and skipped, tables added to an existing database,
 * reopen, and kill -9 while enqueuing: every acknowledged message is there.
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
#include <time.h>
#include <unistd.h>

#include "test-store-common.h"

static const char *ALICE = "did:aftersmtp:alpha.test:alice";
static const char *BOB = "did:aftersmtp:beta.test:bob";
#define T0 UINT64_C(1767225600)
#define LEASE 300u

/* ------------------------------------------------------------ helpers */

static void raw_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
}

typedef struct dwait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int result;
	bool dup;
} dwait;

static void on_done(void *arg, int result, bool duplicate)
{
	dwait *w = arg;
	pthread_mutex_lock(&w->lock);
	w->result = result;
	w->dup = duplicate;
	w->done = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void dwait_wait(dwait *w)
{
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

#define DWAIT_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, \
		     false, -99, false }

/* Enqueue and wait for the callback: its result. */
static int put_sync(store *s, const mailq_msg *m)
{
	dwait w = DWAIT_INIT;
	if (store_mailq_put(s, m, on_done, &w) != 0)
		return -100;
	dwait_wait(&w);
	assert_false(w.dup);
	return w.result;
}

/* Deliver and wait: the result; *dup_r the duplicate flag. */
static int deliver_sync(store *s, const store_delivery *d, bool *dup_r)
{
	dwait w = DWAIT_INIT;
	if (store_deliver(s, d, on_done, &w) != 0)
		return -100;
	dwait_wait(&w);
	if (dup_r != NULL)
		*dup_r = w.dup;
	return w.result;
}

static const mailq_rcpt RCPTS3[] = {
	{ "ann@a.example", "rfc822;ann@a.example", MAILQ_NOTIFY_FAILURE },
	{ "bob@B.Example", NULL, 0 },
	{ "cat@a.example", NULL, MAILQ_NOTIFY_SUCCESS | MAILQ_NOTIFY_DELAY },
};

/* A message: body "Subject: <tag>\r\n\r\nbody of <tag>\r\n". */
typedef struct tmsg {
	mailq_msg m;
	char body[128];
	char msgid[64];
} tmsg;

static void tmsg_init(tmsg *t, const char *tag, unsigned lane,
		      const mailq_rcpt *r, size_t n)
{
	memset(t, 0, sizeof(*t));
	int k = snprintf(t->body, sizeof(t->body),
			 "Subject: %s\r\n\r\nbody of %s\r\n", tag, tag);
	assert_true(k > 0 && (size_t)k < sizeof(t->body));
	snprintf(t->msgid, sizeof(t->msgid), "<%s@sender.example>", tag);
	t->m = (mailq_msg){ .sender = "sender@origin.example",
			    .sender_did = NULL, .envid = "ENV+2Bid", .ret = 2,
			    .msgid = t->msgid, .rcpts = r, .n_rcpts = n,
			    .body = (const uint8_t *)t->body,
			    .body_len = (size_t)k, .lane = lane,
			    .created = T0, .expires = T0 + 5 * 86400 };
}

static size_t lease_n(store *s, unsigned lane, uint64_t now,
		      mailq_item **it)
{
	size_t n;
	assert_int_equal(store_mailq_lease(s, lane, now, LEASE, 100, it, &n), 0);
	if (n == 0)
		assert_null(*it);
	return n;
}

static const mailq_item *by_domain(const mailq_item *it, size_t n,
				   const char *domain)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(it[i].domain, domain) == 0)
			return &it[i];
	}
	fail_msg("no row for %s", domain);
	return NULL;
}

static size_t list_n(store *s, int state, int lane, const char *domain,
		     size_t limit)
{
	mailq_filter f = { state, lane, domain, limit };
	mailq_item *it;
	size_t n;
	assert_int_equal(store_mailq_list(s, &f, &it, &n), 0);
	mailq_items_free(it, n);
	return n;
}

/* --------------------------------------------------------------- tests */

static void test_put_lease_update(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	sqlite3 *db = raw_open(path);
	tmsg t;
	tmsg_init(&t, "one", MAILQ_NORMAL, RCPTS3, 3);
	assert_int_equal(put_sync(s, &t.m), 0);
	/* two rows (a.example, b.example), one body */
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq"), 2);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq_body"), 1);
	assert_int_equal(raw_count(db, "SELECT count(DISTINCT body) FROM mailq"), 1);

	uint64_t when;
	assert_int_equal(store_mailq_next(s, MAILQ_NORMAL, &when), 0);
	assert_int_equal(when, T0);
	assert_int_equal(store_mailq_next(s, MAILQ_BULK, &when), 1);

	/* not due before created */
	mailq_item *it;
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0 - 1, &it), 0);
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0, &it), 2);
	const mailq_item *a = by_domain(it, 2, "a.example");
	const mailq_item *b = by_domain(it, 2, "b.example");
	assert_true(a->id != 0 && b->id != 0 && a->id != b->id);
	assert_int_equal(a->state, MAILQ_ACTIVE);
	assert_int_equal(a->attempts, 1);
	assert_int_equal(a->next_attempt, T0 + LEASE);
	assert_int_equal(a->lane, MAILQ_NORMAL);
	assert_int_equal(a->created, T0);
	assert_int_equal(a->expires, T0 + 5 * 86400);
	assert_false(a->warned);
	assert_string_equal(a->sender, "sender@origin.example");
	assert_null(a->sender_did);
	assert_string_equal(a->envid, "ENV+2Bid");
	assert_string_equal(a->msgid, "<one@sender.example>");
	assert_int_equal(a->ret, 2);
	assert_null(a->last_reply);
	assert_int_equal(a->n_rcpts, 2);
	assert_string_equal(a->rcpts[0].addr, "ann@a.example");
	assert_string_equal(a->rcpts[0].orcpt, "rfc822;ann@a.example");
	assert_int_equal(a->rcpts[0].notify, MAILQ_NOTIFY_FAILURE);
	assert_string_equal(a->rcpts[1].addr, "cat@a.example");
	assert_null(a->rcpts[1].orcpt);
	assert_int_equal(b->n_rcpts, 1);
	assert_string_equal(b->rcpts[0].addr, "bob@B.Example");
	/* both carry the whole body */
	assert_int_equal(a->body_len, strlen(t.body));
	assert_memory_equal(a->body, t.body, a->body_len);
	assert_memory_equal(b->body, t.body, b->body_len);
	uint64_t ida = a->id, idb = b->id;
	mailq_items_free(it, 2);

	/* leased: not again before the lease ends, then again */
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0 + 10, &it), 0);
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0 + LEASE - 1, &it), 0);
	assert_int_equal(store_mailq_next(s, MAILQ_NORMAL, &when), 0);
	assert_int_equal(when, T0 + LEASE);
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0 + LEASE, &it), 2);
	assert_int_equal(it[0].attempts, 2);
	assert_int_equal(it[0].next_attempt, T0 + 2 * LEASE);
	mailq_items_free(it, 2);

	/* partial success on a.example: ann done, cat kept with its reply */
	uint64_t t1 = T0 + LEASE + 5;
	const uint8_t done1[] = { 1, 0 };
	const char *rep1[] = { NULL, "451 4.2.0 cat: try later" };
	mailq_outcome o = { .id = ida, .done = done1, .reply = rep1, .n = 2,
			    .last_reply = NULL, .next_attempt = t1 + 600,
			    .warned = true };
	assert_int_equal(store_mailq_update(s, &o), 0);
	mailq_item *g;
	assert_int_equal(store_mailq_get(s, ida, false, &g), 0);
	assert_int_equal(g->state, MAILQ_DEFERRED);
	assert_int_equal(g->n_rcpts, 1);
	assert_string_equal(g->rcpts[0].addr, "cat@a.example");
	assert_int_equal(g->rcpts[0].notify,
			 MAILQ_NOTIFY_SUCCESS | MAILQ_NOTIFY_DELAY);
	assert_string_equal(g->rcpts[0].last_reply, "451 4.2.0 cat: try later");
	assert_true(g->warned);
	assert_int_equal(g->next_attempt, t1 + 600);
	assert_null(g->body);
	mailq_items_free(g, 1);
	/* a wrong recipient count is refused, nothing changes */
	o.n = 2;
	assert_int_equal(store_mailq_update(s, &o), -1);
	/* a.example is not due before its next attempt (b.example is) */
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0 + 2 * LEASE, &it), 1);
	assert_int_equal(it[0].id, idb);
	mailq_items_free(it, 1);
	assert_int_equal(lease_n(s, MAILQ_NORMAL, t1 + 600, &it), 2);
	a = by_domain(it, 2, "a.example");
	assert_int_equal(a->id, ida);
	assert_int_equal(a->attempts, 3);
	assert_true(a->warned);
	assert_int_equal(a->n_rcpts, 1);
	mailq_items_free(it, 2);
	/* a NULL reply keeps the earlier one; a session reason is kept */
	const uint8_t keep1[] = { 0 };
	mailq_outcome o2 = { .id = ida, .done = keep1, .n = 1,
			     .last_reply = "connection refused\r\nby peer",
			     .next_attempt = t1 + 1200 };
	assert_int_equal(store_mailq_update(s, &o2), 0);
	assert_int_equal(store_mailq_get(s, ida, false, &g), 0);
	assert_string_equal(g->rcpts[0].last_reply, "451 4.2.0 cat: try later");
	assert_string_equal(g->last_reply, "connection refused  by peer");
	mailq_items_free(g, 1);

	/* all done on b.example: its row goes, the body stays (a uses it) */
	const uint8_t done_all[] = { 1 };
	mailq_outcome ob = { .id = idb, .done = done_all, .n = 1 };
	assert_int_equal(store_mailq_update(s, &ob), 0);
	assert_int_equal(store_mailq_get(s, idb, false, &g), 1);
	assert_null(g);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq_body"), 1);
	/* and gone: 1 */
	assert_int_equal(store_mailq_update(s, &ob), 1);
	/* the last row done: the body goes too */
	mailq_outcome oa = { .id = ida, .done = done_all, .n = 1 };
	assert_int_equal(store_mailq_update(s, &oa), 0);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq"), 0);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq_body"), 0);
	assert_int_equal(store_mailq_next(s, MAILQ_NORMAL, &when), 1);
	sqlite3_close(db);
	store_close(&s);
	rm_db(path);
}

static void test_lanes_and_clock(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	static const mailq_rcpt r1[] = { { "x@c.example", NULL, 0 } };
	tmsg c, k;
	tmsg_init(&c, "crit", MAILQ_CRITICAL, r1, 1);
	tmsg_init(&k, "bulk", MAILQ_BULK, r1, 1);
	assert_int_equal(put_sync(s, &c.m), 0);
	assert_int_equal(put_sync(s, &k.m), 0);
	mailq_item *it;
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0 + 100, &it), 0);
	assert_int_equal(lease_n(s, MAILQ_CRITICAL, T0 + 100, &it), 1);
	assert_string_equal(it[0].msgid, "<crit@sender.example>");
	mailq_items_free(it, 1);
	/* leasing one lane left the other alone */
	assert_int_equal(lease_n(s, MAILQ_BULK, T0 + 100, &it), 1);
	assert_string_equal(it[0].msgid, "<bulk@sender.example>");
	uint64_t idk = it[0].id;
	mailq_items_free(it, 1);
	/* max */
	tmsg m2;
	tmsg_init(&m2, "c2", MAILQ_CRITICAL, r1, 1);
	assert_int_equal(put_sync(s, &m2.m), 0);
	assert_int_equal(put_sync(s, &m2.m), 0);
	size_t n;
	assert_int_equal(store_mailq_lease(s, MAILQ_CRITICAL, T0 + 1000, LEASE,
					   1, &it, &n), 0);
	assert_int_equal(n, 1);
	mailq_items_free(it, n);
	/* bad arguments */
	assert_int_equal(store_mailq_lease(s, MAILQ_LANES, T0, LEASE, 1, &it,
					   &n), -1);
	assert_int_equal(store_mailq_lease(s, MAILQ_BULK, T0, MAILQ_DELAY_MAX + 1,
					   1, &it, &n), -1);
	assert_int_equal(store_mailq_lease(s, MAILQ_BULK, T0, LEASE, 0, &it,
					   &n), 0);
	assert_int_equal(n, 0);

	/* the clock went back: a row leased until T0 + 100 + LEASE is due
	 * when now is more than MAILQ_DELAY_MAX before that; a deferred row a
	 * little ahead is not */
	uint64_t back = T0 - MAILQ_DELAY_MAX - 86400;
	assert_int_equal(lease_n(s, MAILQ_BULK, T0 + 101, &it), 0);
	assert_int_equal(lease_n(s, MAILQ_BULK, back, &it), 1);
	assert_int_equal(it[0].id, idk);
	assert_int_equal(it[0].next_attempt, back + LEASE);
	mailq_items_free(it, 1);
	const uint8_t keep[] = { 0 };
	mailq_outcome o = { .id = idk, .done = keep, .n = 1,
			    .next_attempt = back + 3600 };
	assert_int_equal(store_mailq_update(s, &o), 0);
	assert_int_equal(lease_n(s, MAILQ_BULK, back + 10, &it), 0);
	assert_int_equal(lease_n(s, MAILQ_BULK, back + 3600, &it), 1);
	mailq_items_free(it, 1);
	store_close(&s);
	rm_db(path);
}

static void test_admin(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	sqlite3 *db = raw_open(path);
	static const mailq_rcpt ra[] = { { "a1@a.example", NULL, 0 } };
	static const mailq_rcpt rb[] = { { "b1@b.example", NULL, 0 },
					 { "b2@b.example", NULL, 0 } };
	tmsg m1, m2, m3;
	tmsg_init(&m1, "m1", MAILQ_NORMAL, ra, 1);
	tmsg_init(&m2, "m2", MAILQ_NORMAL, rb, 2);
	tmsg_init(&m3, "m3", MAILQ_BULK, rb, 2);
	m3.m.created = T0 - 500;
	assert_int_equal(put_sync(s, &m1.m), 0);
	assert_int_equal(put_sync(s, &m2.m), 0);
	assert_int_equal(put_sync(s, &m3.m), 0);

	/* list and filters */
	assert_int_equal(list_n(s, -1, -1, NULL, 0), 3);
	assert_int_equal(list_n(s, -1, MAILQ_NORMAL, NULL, 0), 2);
	assert_int_equal(list_n(s, -1, MAILQ_BULK, NULL, 0), 1);
	assert_int_equal(list_n(s, -1, -1, "B.EXAMPLE", 0), 2);
	assert_int_equal(list_n(s, -1, MAILQ_NORMAL, "b.example", 0), 1);
	assert_int_equal(list_n(s, MAILQ_ACTIVE, -1, NULL, 0), 3);
	assert_int_equal(list_n(s, MAILQ_DEFERRED, -1, NULL, 0), 0);
	assert_int_equal(list_n(s, -1, -1, NULL, 2), 2);
	assert_int_equal(list_n(s, -1, -1, "none.example", 0), 0);
	mailq_filter bad = { 7, -1, NULL, 0 };
	mailq_item *it;
	size_t n;
	assert_int_equal(store_mailq_list(s, &bad, &it, &n), -1);
	/* ordered by next_attempt: m3 (created T0 - 500) first */
	assert_int_equal(store_mailq_list(s, NULL, &it, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(it[0].msgid, "<m3@sender.example>");
	assert_null(it[0].body);
	uint64_t id1 = 0, id2 = 0, id3 = it[0].id;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(it[i].msgid, "<m1@sender.example>") == 0)
			id1 = it[i].id;
		if (strcmp(it[i].msgid, "<m2@sender.example>") == 0)
			id2 = it[i].id;
	}
	mailq_items_free(it, n);
	assert_true(id1 != 0 && id2 != 0);

	/* get with and without body */
	mailq_item *g;
	assert_int_equal(store_mailq_get(s, id2, true, &g), 0);
	assert_int_equal(g->n_rcpts, 2);
	assert_memory_equal(g->body, m2.body, strlen(m2.body));
	mailq_items_free(g, 1);
	assert_int_equal(store_mailq_get(s, 12345, true, &g), 1);
	assert_int_equal(store_mailq_get(s, 0, true, &g), 1);

	/* stats */
	mailq_stats st;
	assert_int_equal(store_mailq_stats(s, &st), 0);
	assert_int_equal(st.count[MAILQ_NORMAL][MAILQ_ACTIVE], 2);
	assert_int_equal(st.count[MAILQ_BULK][MAILQ_ACTIVE], 1);
	assert_int_equal(st.count[MAILQ_CRITICAL][MAILQ_ACTIVE], 0);
	assert_int_equal(st.oldest[MAILQ_NORMAL], T0);
	assert_int_equal(st.oldest[MAILQ_BULK], T0 - 500);
	assert_int_equal(st.oldest[MAILQ_CRITICAL], 0);
	assert_int_equal(st.bytes, strlen(m1.body) + strlen(m2.body) +
					   strlen(m3.body));

	/* hold one, then all; held rows are never leased */
	assert_int_equal(store_mailq_hold(s, id1), 1);
	assert_int_equal(store_mailq_hold(s, id1), 0);
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0 + 10, &it), 1);
	assert_int_equal(it[0].id, id2);
	mailq_items_free(it, 1);
	assert_int_equal(store_mailq_hold(s, 0), 2); /* id2 (leased), id3 */
	assert_int_equal(list_n(s, MAILQ_HOLD, -1, NULL, 0), 3);
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0 + 10000, &it), 0);
	assert_int_equal(lease_n(s, MAILQ_BULK, T0 + 10000, &it), 0);
	uint64_t when;
	assert_int_equal(store_mailq_next(s, MAILQ_NORMAL, &when), 1);
	/* the attempt on held id2 reports: kept recipients stay held */
	const uint8_t d2[] = { 1, 0 };
	mailq_outcome o = { .id = id2, .done = d2, .n = 2,
			    .next_attempt = T0 + 700 };
	assert_int_equal(store_mailq_update(s, &o), 0);
	assert_int_equal(store_mailq_get(s, id2, false, &g), 0);
	assert_int_equal(g->state, MAILQ_HOLD);
	assert_int_equal(g->n_rcpts, 1);
	mailq_items_free(g, 1);
	/* release one: due now */
	assert_int_equal(store_mailq_release(s, id1, T0 + 20), 1);
	assert_int_equal(store_mailq_release(s, id1, T0 + 20), 0);
	assert_int_equal(store_mailq_next(s, MAILQ_NORMAL, &when), 0);
	assert_int_equal(when, T0 + 20);
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0 + 20, &it), 1);
	assert_int_equal(it[0].id, id1);
	mailq_items_free(it, 1);
	/* release all */
	assert_int_equal(store_mailq_release(s, 0, T0 + 30), 2);
	assert_int_equal(list_n(s, MAILQ_HOLD, -1, NULL, 0), 0);
	assert_int_equal(lease_n(s, MAILQ_BULK, T0 + 30, &it), 1);
	assert_int_equal(it[0].id, id3);
	mailq_items_free(it, 1);

	/* a row held during its lease comes back when the lease ends */
	assert_int_equal(store_mailq_hold(s, id3), 1);
	assert_int_equal(store_mailq_release(s, id3, T0 + 40), 1);
	assert_int_equal(lease_n(s, MAILQ_BULK, T0 + 40, &it), 0);
	assert_int_equal(lease_n(s, MAILQ_BULK, T0 + 30 + LEASE, &it), 1);
	mailq_items_free(it, 1);

	/* flush: deferred rows due now */
	const uint8_t keep2[] = { 0, 0 };
	o = (mailq_outcome){ .id = id3, .done = keep2, .n = 2,
			     .next_attempt = T0 + 9000 };
	assert_int_equal(store_mailq_update(s, &o), 0);
	assert_int_equal(list_n(s, MAILQ_DEFERRED, -1, NULL, 0), 1);
	assert_int_equal(lease_n(s, MAILQ_BULK, T0 + 1000, &it), 0);
	assert_int_equal(store_mailq_flush(s, T0 + 1000), 1);
	assert_int_equal(list_n(s, MAILQ_DEFERRED, -1, NULL, 0), 0);
	assert_int_equal(lease_n(s, MAILQ_BULK, T0 + 1000, &it), 1);
	mailq_items_free(it, 1);

	/* bounce id3: kept as BOUNCED with its recipients and replies, body
	 * gone; purge removes it */
	const uint8_t d3[] = { 1, 1 };
	const char *rep3[] = { "550 5.1.1 no such user b1",
			       "550 5.1.1 no such user b2" };
	o = (mailq_outcome){ .id = id3, .done = d3, .reply = rep3, .n = 2,
			     .bounced = true, .next_attempt = T0 + 1100 };
	assert_int_equal(store_mailq_update(s, &o), 0);
	assert_int_equal(store_mailq_get(s, id3, true, &g), 0);
	assert_int_equal(g->state, MAILQ_BOUNCED);
	assert_int_equal(g->n_rcpts, 2);
	assert_string_equal(g->rcpts[1].last_reply, "550 5.1.1 no such user b2");
	assert_null(g->body);
	assert_int_equal(g->next_attempt, T0 + 1100);
	mailq_items_free(g, 1);
	assert_int_equal(store_mailq_stats(s, &st), 0);
	assert_int_equal(st.count[MAILQ_BULK][MAILQ_BOUNCED], 1);
	assert_int_equal(st.oldest[MAILQ_BULK], 0);
	assert_int_equal(st.bytes, strlen(m1.body) + strlen(m2.body));
	assert_int_equal(lease_n(s, MAILQ_BULK, T0 + 99999, &it), 0);
	assert_int_equal(store_mailq_hold(s, id3), 0);
	assert_int_equal(store_mailq_update(s, &o), 1); /* bounced: gone */
	assert_int_equal(store_mailq_purge(s, T0 + 1100), 0);
	assert_int_equal(store_mailq_purge(s, T0 + 1101), 1);
	assert_int_equal(store_mailq_get(s, id3, false, &g), 1);

	/* delete one (its body goes), then all */
	assert_int_equal(store_mailq_delete(s, id1), 1);
	assert_int_equal(store_mailq_delete(s, id1), 0);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq_body"), 1);
	assert_int_equal(store_mailq_delete(s, 0), 1);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq"), 0);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq_body"), 0);
	/* an update after the admin deleted the row: 1 */
	o = (mailq_outcome){ .id = id2, .done = d2, .n = 2 };
	assert_int_equal(store_mailq_update(s, &o), 1);
	sqlite3_close(db);
	store_close(&s);
	rm_db(path);
}

static void test_dsn_parts(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	static const mailq_rcpt r1[] = { { "x@d.example", NULL, 0 } };
	tmsg m, dsn;
	tmsg_init(&m, "orig", MAILQ_NORMAL, r1, 1);
	assert_int_equal(put_sync(s, &m.m), 0);
	mailq_item *it;
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0, &it), 1);
	uint64_t id = it[0].id;
	mailq_items_free(it, 1);
	/* bounce with a DSN by SMTP and one into a local inbox, together */
	static const mailq_rcpt back[] = { { "sender@origin.example", NULL,
					     MAILQ_NOTIFY_NEVER } };
	tmsg_init(&dsn, "dsn", MAILQ_CRITICAL, back, 1);
	dsn.m.sender = "";
	uint8_t eid[16] = { 9 };
	const char *local[] = { BOB };
	store_delivery di = { .sender = ALICE, .envelope_id = eid,
			      .env = (const uint8_t *)"dsn-envelope",
			      .env_len = 12, .received = T0, .local = local,
			      .n_local = 1 };
	const uint8_t d1[] = { 1 };
	mailq_outcome o = { .id = id, .done = d1, .n = 1, .bounced = true,
			    .dsn_inbox = &di, .dsn_mail = &dsn.m };
	assert_int_equal(store_mailq_update(s, &o), 0);
	assert_int_equal(lease_n(s, MAILQ_CRITICAL, T0, &it), 1);
	assert_string_equal(it[0].sender, "");
	assert_string_equal(it[0].domain, "origin.example");
	uint64_t dsn_id = it[0].id;
	mailq_items_free(it, 1);
	store_item *in;
	size_t n;
	assert_int_equal(store_inbox_fetch(s, BOB, 0, 10, &in, &n), 0);
	assert_int_equal(n, 1);
	store_items_free(in, n);
	/* a row deleted meanwhile: 1, the DSN parts are still written */
	assert_int_equal(store_mailq_delete(s, dsn_id), 1);
	eid[0] = 10;
	o.id = dsn_id;
	assert_int_equal(store_mailq_update(s, &o), 1);
	assert_int_equal(lease_n(s, MAILQ_CRITICAL, T0, &it), 1);
	mailq_items_free(it, 1);
	assert_int_equal(store_inbox_fetch(s, BOB, 0, 10, &in, &n), 0);
	assert_int_equal(n, 2);
	store_items_free(in, n);
	/* an invalid DSN part refuses the whole update */
	static const mailq_rcpt badr[] = { { "no at sign", NULL, 0 } };
	dsn.m.rcpts = badr;
	assert_int_equal(store_mailq_update(s, &o), -1);
	store_close(&s);
	rm_db(path);
}

static void test_outbound_with_delivery(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	sqlite3 *db = raw_open(path);
	tmsg m;
	tmsg_init(&m, "out", MAILQ_NORMAL, RCPTS3, 3);
	uint8_t eid[16] = { 1 };
	const char *local[] = { BOB };
	store_delivery d = { .sender = ALICE, .envelope_id = eid,
			     .env = (const uint8_t *)"envelope", .env_len = 8,
			     .received = T0, .local = local, .n_local = 1,
			     .outbound = &m.m };
	bool dup;
	assert_int_equal(deliver_sync(s, &d, &dup), 0);
	assert_false(dup);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM inbox"), 1);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq"), 2);
	/* the same (sender, envelope id) again: a duplicate, nothing more */
	assert_int_equal(deliver_sync(s, &d, &dup), 0);
	assert_true(dup);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM inbox"), 1);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq"), 2);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq_body"), 1);
	/* outbound alone: no local recipient, no domain, no envelope */
	eid[0] = 2;
	store_delivery only = { .sender = ALICE, .envelope_id = eid,
				.received = T0, .outbound = &m.m };
	assert_int_equal(deliver_sync(s, &only, &dup), 0);
	assert_false(dup);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq"), 4);
	assert_int_equal(deliver_sync(s, &only, &dup), 0);
	assert_true(dup);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq"), 4);
	/* still nothing at all is refused */
	only.outbound = NULL;
	assert_int_equal(deliver_sync(s, &only, &dup), -100);
	/* an invalid outbound part: refused before anything is written */
	static const mailq_rcpt badr[] = { { "a b@x.example", NULL, 0 } };
	tmsg bad;
	tmsg_init(&bad, "bad", MAILQ_NORMAL, badr, 1);
	eid[0] = 3;
	d.outbound = &bad.m;
	assert_int_equal(deliver_sync(s, &d, &dup), -100);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM inbox"), 1);

	/* all or nothing: the enqueue fails inside the transaction (a
	 * trigger), so the inbox copy is not stored and the delivery is not
	 * marked done */
	raw_exec(db, "CREATE TRIGGER mq_fail BEFORE INSERT ON mailq "
		     "BEGIN SELECT RAISE(ABORT, 'test'); END;");
	eid[0] = 4;
	d.outbound = &m.m;
	assert_int_equal(deliver_sync(s, &d, &dup), -1);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM inbox"), 1);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq"), 4);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq_body"), 2);
	assert_int_equal(put_sync(s, &m.m), -1);
	raw_exec(db, "DROP TRIGGER mq_fail");
	assert_int_equal(deliver_sync(s, &d, &dup), 0);
	assert_false(dup);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM inbox"), 2);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq"), 6);
	sqlite3_close(db);
	store_close(&s);
	rm_db(path);
}

static void test_validation(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	tmsg t;
	const char *bad_addrs[] = { "no-at-sign", "@nolocal.example",
				    "nodomain@", "sp ace@x.example",
				    "lt<@x.example", "gt>@x.example",
				    "cr\r@x.example", "lf@x.exa\nmple",
				    "tab\t@x.example", "del\x7f@x.example",
				    "two@@", "" };
	for (size_t i = 0; i < sizeof(bad_addrs) / sizeof(bad_addrs[0]); i++) {
		mailq_rcpt r = { bad_addrs[i], NULL, 0 };
		tmsg_init(&t, "v", MAILQ_NORMAL, &r, 1);
		assert_int_equal(store_mailq_put(s, &t.m, on_done, NULL), -1);
	}
	static const mailq_rcpt ok1[] = { { "ok@x.example", NULL, 0 } };
	tmsg_init(&t, "v", MAILQ_NORMAL, ok1, 1);
	mailq_msg m = t.m;
	m.sender = "a b@x.example";
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	m = t.m;
	m.sender = NULL;
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	m = t.m;
	m.envid = "has space";
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	m = t.m;
	m.msgid = "<a@b>\r\nBcc: x";
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	m = t.m;
	m.sender_did = "did:with space";
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	m = t.m;
	m.ret = 3;
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	m = t.m;
	m.lane = MAILQ_LANES;
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	m = t.m;
	m.body_len = 0;
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	m = t.m;
	m.body_len = MAILQ_BODY_MAX + 1u;
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	m = t.m;
	m.n_rcpts = 0;
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	assert_int_equal(store_mailq_put(s, &t.m, NULL, NULL), -1);
	mailq_rcpt nv = { "ok@x.example", NULL,
			  MAILQ_NOTIFY_NEVER | MAILQ_NOTIFY_FAILURE };
	m = t.m;
	m.rcpts = &nv;
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	nv.notify = 0x10;
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	nv.notify = 0;
	nv.orcpt = "rfc822;with space";
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	char longaddr[MAILQ_ADDR_MAX + 2];
	memset(longaddr, 'a', sizeof(longaddr) - 1);
	longaddr[sizeof(longaddr) - 1] = '\0';
	memcpy(longaddr + sizeof(longaddr) - 11, "@x.example", 11);
	nv.orcpt = NULL;
	nv.addr = longaddr;
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	/* 1001 recipients refused, 1000 accepted (in 1000 domains) */
	mailq_rcpt *many = calloc(MAILQ_RCPTS_MAX + 1, sizeof(*many));
	char (*addr)[32] = calloc(MAILQ_RCPTS_MAX + 1, sizeof(*addr));
	assert_non_null(many);
	assert_non_null(addr);
	for (size_t i = 0; i <= MAILQ_RCPTS_MAX; i++) {
		snprintf(addr[i], sizeof(addr[i]), "u%zu@d%zu.example", i, i);
		many[i].addr = addr[i];
	}
	m = t.m;
	m.rcpts = many;
	m.n_rcpts = MAILQ_RCPTS_MAX + 1;
	assert_int_equal(store_mailq_put(s, &m, on_done, NULL), -1);
	uint64_t when;
	assert_int_equal(store_mailq_next(s, MAILQ_NORMAL, &when), 1);
	m.n_rcpts = MAILQ_RCPTS_MAX;
	assert_int_equal(put_sync(s, &m), 0);
	assert_int_equal(list_n(s, -1, -1, NULL, 0), MAILQ_RCPTS_MAX);
	assert_int_equal(list_n(s, -1, -1, NULL, 10), 10);
	free(many);
	free(addr);
	/* a recipient given twice (domain in another case) is kept once;
	 * a long reply is cut */
	assert_int_equal(store_mailq_delete(s, 0), MAILQ_RCPTS_MAX);
	static const mailq_rcpt twice[] = { { "Joe@X.example", NULL, 0 },
					    { "Joe@x.EXAMPLE", NULL, 0 },
					    { "joe@x.example", NULL, 0 } };
	tmsg_init(&t, "twice", MAILQ_NORMAL, twice, 3);
	assert_int_equal(put_sync(s, &t.m), 0);
	mailq_item *it;
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0, &it), 1);
	assert_int_equal(it[0].n_rcpts, 2);
	assert_string_equal(it[0].domain, "x.example");
	uint64_t id = it[0].id;
	mailq_items_free(it, 1);
	char *longreply = malloc(3000);
	assert_non_null(longreply);
	memset(longreply, 'r', 2999);
	longreply[2999] = '\0';
	const uint8_t keep[] = { 0, 0 };
	const char *rep[] = { longreply, NULL };
	mailq_outcome o = { .id = id, .done = keep, .reply = rep, .n = 2,
			    .next_attempt = T0 + 60 };
	assert_int_equal(store_mailq_update(s, &o), 0);
	free(longreply);
	mailq_item *g;
	assert_int_equal(store_mailq_get(s, id, false, &g), 0);
	assert_int_equal(strlen(g->rcpts[0].last_reply), MAILQ_REPLY_MAX);
	mailq_items_free(g, 1);
	store_close(&s);
	rm_db(path);
}

static bool file_contains(const char *path, const void *needle, size_t len)
{
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "cat %s %s-wal 2>/dev/null", path, path);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	size_t cap = 1 << 20, n = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	size_t r;
	while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	pclose(f);
	bool found = memmem(buf, n, needle, len) != NULL;
	free(buf);
	return found;
}

static void test_sealed_at_rest(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	static const mailq_rcpt r[] = { { "secret-rcpt@far.example",
					  "rfc822;orcpt-marker@far.example", 0 } };
	tmsg t;
	tmsg_init(&t, "body-marker-xyzzy", MAILQ_NORMAL, r, 1);
	t.m.sender = "secret-sender@origin.example";
	t.m.sender_did = "did:aftersmtp:origin.example:did-marker";
	t.m.envid = "envid-marker";
	assert_int_equal(put_sync(s, &t.m), 0);
	mailq_item *it;
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0, &it), 1);
	const uint8_t keep[] = { 0 };
	const char *rep[] = { "451 reply-marker" };
	mailq_outcome o = { .id = it[0].id, .done = keep, .reply = rep, .n = 1,
			    .next_attempt = T0 + 60 };
	mailq_items_free(it, 1);
	assert_int_equal(store_mailq_update(s, &o), 0);
	store_close(&s);
	const char *secrets[] = { "secret-rcpt", "orcpt-marker", "secret-sender",
				  "did-marker", "envid-marker", "body-marker",
				  "reply-marker", "<body-marker" };
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		if (file_contains(path, secrets[i], strlen(secrets[i])))
			fail_msg("%s found in the database file", secrets[i]);
	}
	/* the domain is in clear (scheduling needs it) */
	assert_true(file_contains(path, "far.example", 11));
	rm_db(path);
}

static uint8_t *raw_box(sqlite3 *db, const char *sql, uint64_t id, int *len_r)
{
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

static void raw_set(sqlite3 *db, const char *sql, uint64_t id,
		    const void *box, int len)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, box, len, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)id);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
}

static uint64_t raw_body_of(sqlite3 *db, uint64_t id)
{
	char sql[100];
	snprintf(sql, sizeof(sql), "SELECT body FROM mailq WHERE id=%llu",
		 (unsigned long long)id);
	return (uint64_t)raw_count(db, sql);
}

static void test_quarantine(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	static const mailq_rcpt r2[] = { { "a@one.example", NULL, 0 },
					 { "b@two.example", NULL, 0 } };
	static const mailq_rcpt r1[] = { { "c@three.example", NULL, 0 } };
	tmsg m1, m2, m3, m4;
	tmsg_init(&m1, "tampered-body", MAILQ_NORMAL, r2, 2);
	tmsg_init(&m2, "intact", MAILQ_NORMAL, r1, 1);
	tmsg_init(&m3, "tampered-meta", MAILQ_NORMAL, r1, 1);
	tmsg_init(&m4, "moved-body", MAILQ_NORMAL, r1, 1);
	assert_int_equal(put_sync(s, &m1.m), 0);
	assert_int_equal(put_sync(s, &m2.m), 0);
	assert_int_equal(put_sync(s, &m3.m), 0);
	assert_int_equal(put_sync(s, &m4.m), 0);
	mailq_item *it;
	size_t n;
	assert_int_equal(store_mailq_list(s, NULL, &it, &n), 0);
	assert_int_equal(n, 5);
	uint64_t id_body = 0, id_ok = 0, id_meta = 0, id_moved = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(it[i].msgid, "<tampered-body@sender.example>") == 0)
			id_body = it[i].id;
		else if (strcmp(it[i].msgid, "<intact@sender.example>") == 0)
			id_ok = it[i].id;
		else if (strcmp(it[i].msgid, "<tampered-meta@sender.example>") == 0)
			id_meta = it[i].id;
		else if (strcmp(it[i].msgid, "<moved-body@sender.example>") == 0)
			id_moved = it[i].id;
	}
	mailq_items_free(it, n);
	store_close(&s);

	sqlite3 *db = raw_open(path);
	/* a flipped byte in m1's body (shared by its two rows) */
	uint64_t b1 = raw_body_of(db, id_body);
	int len;
	uint8_t *box = raw_box(db, "SELECT box FROM mailq_body WHERE id=?",
			       b1, &len);
	box[len / 2] ^= 0x01;
	raw_set(db, "UPDATE mailq_body SET box=? WHERE id=?", b1, box, len);
	free(box);
	/* a flipped byte in m3's row */
	box = raw_box(db, "SELECT box FROM mailq WHERE id=?", id_meta, &len);
	box[len - 1] ^= 0x80;
	raw_set(db, "UPDATE mailq SET box=? WHERE id=?", id_meta, box, len);
	free(box);
	/* m4's row pointed at m2's body (in clear) */
	char sql[200];
	snprintf(sql, sizeof(sql), "UPDATE mailq SET body=%llu WHERE id=%llu",
		 (unsigned long long)raw_body_of(db, id_ok),
		 (unsigned long long)id_moved);
	raw_exec(db, sql);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM quarantine"), 0);

	s = open_at(path);
	/* only the intact row is leased; the others are quarantined */
	assert_int_equal(lease_n(s, MAILQ_NORMAL, T0, &it), 1);
	assert_int_equal(it[0].id, id_ok);
	assert_memory_equal(it[0].body, m2.body, strlen(m2.body));
	mailq_items_free(it, 1);
	store_stats ss;
	store_get_stats(s, &ss);
	/* m1's body and its two rows, m3's row and its body (no other row
	 * uses it), m4's row (m4's own body is left unused: the clear column
	 * no longer names it) */
	assert_int_equal(ss.quarantined, 6);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM quarantine "
				       "WHERE next_attempt=-2"), 4);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM quarantine "
				       "WHERE next_attempt=-3"), 2);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq"), 1);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq_body"), 2);
	mailq_stats st;
	assert_int_equal(store_mailq_stats(s, &st), 0);
	assert_int_equal(st.bytes, strlen(m2.body) + strlen(m4.body));

	/* list and get skip and quarantine too */
	snprintf(sql, sizeof(sql), "UPDATE mailq SET domain='other.example' "
		 "WHERE id=%llu", (unsigned long long)id_ok);
	raw_exec(db, sql);
	assert_int_equal(list_n(s, -1, -1, NULL, 0), 0);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq"), 0);
	mailq_item *g;
	assert_int_equal(store_mailq_get(s, id_ok, false, &g), 1);
	/* a body that fails for get(with_body): quarantined, not found */
	static const mailq_rcpt r3[] = { { "d@four.example", NULL, 0 } };
	tmsg m5;
	tmsg_init(&m5, "get-body", MAILQ_NORMAL, r3, 1);
	assert_int_equal(put_sync(s, &m5.m), 0);
	assert_int_equal(store_mailq_list(s, NULL, &it, &n), 0);
	assert_int_equal(n, 1);
	uint64_t id5 = it[0].id;
	mailq_items_free(it, n);
	uint64_t b5 = raw_body_of(db, id5);
	box = raw_box(db, "SELECT box FROM mailq_body WHERE id=?", b5, &len);
	raw_set(db, "UPDATE mailq_body SET box=? WHERE id=?", b5, box, 20);
	free(box);
	assert_int_equal(store_mailq_get(s, id5, false, &g), 0);
	mailq_items_free(g, 1);
	assert_int_equal(store_mailq_get(s, id5, true, &g), 1);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM mailq"), 0);
	store_get_stats(s, &ss);
	assert_int_equal(ss.quarantined, 10);
	store_close(&s);
	sqlite3_close(db);
	rm_db(path);
}

static void test_reopen_and_upgrade(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	tmsg t;
	tmsg_init(&t, "persist", MAILQ_BULK, RCPTS3, 3);
	assert_int_equal(put_sync(s, &t.m), 0);
	uint8_t eid[16] = { 7 };
	const char *local[] = { BOB };
	store_delivery d = { .sender = ALICE, .envelope_id = eid,
			     .env = (const uint8_t *)"inbox-env", .env_len = 9,
			     .received = T0, .local = local, .n_local = 1 };
	assert_int_equal(deliver_sync(s, &d, NULL), 0);
	assert_int_equal(store_mailq_hold(s, 0), 2);
	store_close(&s);
	/* reopen: everything is there */
	s = open_at(path);
	assert_int_equal(list_n(s, MAILQ_HOLD, MAILQ_BULK, NULL, 0), 2);
	mailq_stats st;
	assert_int_equal(store_mailq_stats(s, &st), 0);
	assert_int_equal(st.bytes, strlen(t.body));
	store_close(&s);

	/* a database made before the mail queue existed: the tables are
	 * added at open, the rest is kept */
	sqlite3 *db = raw_open(path);
	raw_exec(db, "DROP TABLE mailq; DROP TABLE mailq_body;");
	sqlite3_close(db);
	s = open_at(path);
	assert_int_equal(list_n(s, -1, -1, NULL, 0), 0);
	store_item *in;
	size_t n;
	assert_int_equal(store_inbox_fetch(s, BOB, 0, 10, &in, &n), 0);
	assert_int_equal(n, 1);
	store_items_free(in, n);
	assert_int_equal(put_sync(s, &t.m), 0);
	assert_int_equal(list_n(s, -1, -1, NULL, 0), 2);
	store_close(&s);
	db = raw_open(path);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM sqlite_master "
				       "WHERE name IN ('mailq_due', "
				       "'mailq_domain')"), 2);
	sqlite3_close(db);
	rm_db(path);
}

/* The child enqueues from 4 threads and reports each acknowledged
 * message's number on the pipe; the parent kills it with SIGKILL.  At
 * most CRASH_INFLIGHT puts wait for their commit at a time (as a server's
 * sessions would), so commits keep coming also in a slow (sanitizer)
 * build. */
#define CRASH_INFLIGHT 128
typedef struct crash_arg {
	store *s;
	int fd;
	int num;
	pthread_mutex_t *lock;
} crash_arg;

static void crash_msg(int num, mailq_rcpt r[2], char addr[2][48],
		      char msgid[48], char body[700], mailq_msg *m)
{
	snprintf(addr[0], 48, "r%d@one.example", num);
	snprintf(addr[1], 48, "r%d@two.example", num);
	snprintf(msgid, 48, "<%d@crash.example>", num);
	memset(body, 'b', 700);
	memcpy(body, &num, sizeof(num));
	r[0] = (mailq_rcpt){ addr[0], NULL, 0 };
	r[1] = (mailq_rcpt){ addr[1], NULL, 0 };
	*m = (mailq_msg){ .sender = "s@origin.example", .msgid = msgid,
			  .rcpts = r, .n_rcpts = 2, .body = (uint8_t *)body,
			  .body_len = 700, .lane = MAILQ_NORMAL,
			  .created = T0, .expires = T0 + 86400 };
}

static void on_crash_put(void *arg, int result, bool dup)
{
	crash_arg *a = arg;
	(void)dup;
	crash_finished(a->lock, a->fd, result, &a->num, sizeof(a->num));
	free(a);
}

static void *crash_writer(void *arg)
{
	crash_arg *base = arg;
	for (int i = 0;; i++) {
		crash_arg *a = malloc(sizeof(*a));
		if (a == NULL)
			_exit(5);
		*a = *base;
		a->num = base->num + i;
		mailq_rcpt r[2];
		char addr[2][48], msgid[48], body[700];
		mailq_msg m;
		crash_msg(a->num, r, addr, msgid, body, &m);
		crash_slot_take(CRASH_INFLIGHT);
		if (store_mailq_put(base->s, &m, on_crash_put, a) != 0)
			_exit(4);
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static void test_kill9_loses_nothing_acked(void **state)
{
	(void)state;
	char *path = tmpdb();
	size_t acked_total = 0;
	static uint32_t acked[400000];
	srand((unsigned)time(NULL));
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
				a[i] = (crash_arg){ s, p[1],
						    round * 10000000 + i * 1000000,
						    &lock };
				pthread_create(&t[i], NULL, crash_writer, &a[i]);
			}
			for (;;)
				pause();
		}
		close(p[1]);
		/* once the child has opened the store (a sanitizer build takes
		 * a while) and acknowledged 40 writes, a random 0-250 ms more,
		 * then kill -9 */
		int ready = 0;
		assert_int_equal(read(p[0], &ready, sizeof(ready)), sizeof(ready));
		assert_int_equal(ready, -1);
		const size_t max = sizeof(acked) / sizeof(acked[0]);
		crash_wait_acks(p[0], acked, max, &acked_total, 40);
		usleep((useconds_t)(rand() % 250000));
		kill(pid, SIGKILL);
		crash_drain(p[0], acked, max, &acked_total);
		close(p[0]);
		waitpid(pid, NULL, 0);
	}
	assert_true(acked_total > 100);
	qsort(acked, acked_total, sizeof(acked[0]), cmp_u32);

	/* every acknowledged message is there: both domains' rows, the
	 * right body */
	store *s = open_at(path);
	mailq_item *it;
	size_t n;
	mailq_filter f = { -1, -1, "one.example", 0 };
	assert_int_equal(store_mailq_list(s, &f, &it, &n), 0);
	size_t found = 0;
	for (size_t i = 0; i < n; i++) {
		int num = 0;
		const char *p = it[i].msgid + 1;
		while (*p >= '0' && *p <= '9')
			num = num * 10 + (*p++ - '0');
		uint32_t key = (uint32_t)num;
		if (bsearch(&key, acked, acked_total, sizeof(acked[0]),
			    cmp_u32) != NULL)
			found++;
		mailq_item *g;
		assert_int_equal(store_mailq_get(s, it[i].id, true, &g), 0);
		assert_int_equal(g->body_len, 700);
		assert_memory_equal(g->body, &num, sizeof(num));
		mailq_items_free(g, 1);
	}
	mailq_items_free(it, n);
	mailq_stats st;
	assert_int_equal(store_mailq_stats(s, &st), 0);
	print_message("kill -9: %zu enqueues acknowledged over 4 crashes, %zu "
		      "found after restart (%zu rows per domain, %llu body "
		      "bytes)\n", acked_total, found, n,
		      (unsigned long long)st.bytes);
	assert_int_equal(found, acked_total);
	/* nothing half-written: two rows and one body per message */
	assert_int_equal(list_n(s, -1, -1, "two.example", 0), n);
	assert_int_equal(st.bytes, (uint64_t)n * 700);
	store_close(&s);
	rm_db(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_lease_update),
		cmocka_unit_test(test_lanes_and_clock),
		cmocka_unit_test(test_admin),
		cmocka_unit_test(test_dsn_parts),
		cmocka_unit_test(test_outbound_with_delivery),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_sealed_at_rest),
		cmocka_unit_test(test_quarantine),
		cmocka_unit_test(test_reopen_and_upgrade),
		cmocka_unit_test(test_kill9_loses_nothing_acked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
