/*
 * test-store.c — src/store on SQLite: put/fetch/ack by cursor, idempotent
 * delivery (also after ack), recipients isolated, DIDs not stored in
 * clear, group commit under concurrency, persistence across reopen, and
 * kill -9 while writing: every acknowledged write survives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const uint8_t KEY[STORE_KEY_BYTES] = "0123456789abcdef0123456789abcde";
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

static char *tmpdb(void)
{
	static char path[64];
	char dir[] = "/tmp/amp-store-XXXXXX";
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/node.db", dir);
	return path;
}

static store *open_at(const char *path)
{
	store *s;
	const char *err = NULL;
	store_opts o = { .path = path, .key = KEY };
	if (store_open(&o, &s, &err) != 0)
		fail_msg("store_open: %s", err);
	return s;
}

static void rm_db(const char *path)
{
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf \"$(dirname %s)\"", path);
	assert_int_equal(system(cmd), 0);
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
 * id on the pipe; the parent kills it with SIGKILL at a random moment. */
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
	if (result == 0) {
		int id = a->base;
		pthread_mutex_lock(a->lock);
		if (write(a->fd, &id, sizeof(id)) != sizeof(id))
			_exit(3);
		pthread_mutex_unlock(a->lock);
	}
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
		if (store_inbox_put(base->s, BOB, ALICE, eid, (uint8_t *)env,
				    sizeof(env), 1, on_crash_put, a) != 0)
			_exit(4);
		if (i % 16 == 0)
			usleep(100);
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
		/* Let it write for a random 50-300 ms, then kill -9. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_fetch_ack),
		cmocka_unit_test(test_group_commit),
		cmocka_unit_test(test_kill9_loses_nothing_acked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
