/*
 * test-store-common.h — what test-store.c and test-mailq.c share: a
 * store in a fresh temporary directory, its removal, and raw SQLite
 * access to the database file (to count rows and tamper with them).
 * Include after cmocka.h, store.h and sqlite3.h.
 */
#ifndef AMP_TEST_STORE_COMMON_H
#define AMP_TEST_STORE_COMMON_H

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const uint8_t KEY[STORE_KEY_BYTES] = "0123456789abcdef0123456789abcde";

/* <new directory under /tmp>/node.db (a static buffer). */
static inline char *tmpdb(void)
{
	static char path[64];
	char dir[] = "/tmp/amp-store-XXXXXX";
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/node.db", dir);
	return path;
}

static inline store *open_at(const char *path)
{
	store *s;
	const char *err = NULL;
	store_opts o = { .path = path, .key = KEY };
	if (store_open(&o, &s, &err) != 0)
		fail_msg("store_open: %s", err);
	return s;
}

/* Remove the directory tmpdb made. */
static inline void rm_db(const char *path)
{
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf \"$(dirname %s)\"", path);
	assert_int_equal(system(cmd), 0);
}

static inline sqlite3 *raw_open(const char *path)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* The first column of the first row of sql. */
static inline long long raw_count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	long long v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* kill -9 tests: the child's writer threads keep at most `max` writes in
 * flight (crash_slot_take before each), and each write's callback
 * (crash_finished) records the id of an acknowledged write on fd, which
 * the parent reads back after the kill. */
static pthread_mutex_t crash_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t crash_cond = PTHREAD_COND_INITIALIZER;
static int crash_inflight;

static inline void crash_slot_take(int max)
{
	pthread_mutex_lock(&crash_lock);
	while (crash_inflight >= max)
		pthread_cond_wait(&crash_cond, &crash_lock);
	crash_inflight++;
	pthread_mutex_unlock(&crash_lock);
}

static inline void crash_finished(pthread_mutex_t *fd_lock, int fd, int result,
				  const void *id, size_t n)
{
	if (result == 0) {
		pthread_mutex_lock(fd_lock);
		if (write(fd, id, n) != (ssize_t)n)
			_exit(3);
		pthread_mutex_unlock(fd_lock);
	}
	pthread_mutex_lock(&crash_lock);
	crash_inflight--;
	pthread_cond_signal(&crash_cond);
	pthread_mutex_unlock(&crash_lock);
}

/* The parent's side of a kill -9 round: read the child's acknowledged
 * ids (4 bytes each) from fd into ids[*n..max) until `want` arrived in
 * this round, or 120 s passed (then the test's count fails), and return;
 * the caller waits a random moment more, kills the child and drains fd
 * with crash_drain.  Waiting for acknowledgements, not for a fixed time,
 * puts the kill among acknowledged writes whatever the machine's load. */
static inline void crash_wait_acks(int fd, uint32_t *ids, size_t max,
				   size_t *n, size_t want)
{
	size_t got = 0;
	for (int waited = 0; got < want && waited < 120000; waited += 100) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		uint32_t id;
		if (read(fd, &id, sizeof(id)) != (ssize_t)sizeof(id))
			return;
		if (*n < max)
			ids[(*n)++] = id;
		got++;
	}
}

static inline void crash_drain(int fd, uint32_t *ids, size_t max, size_t *n)
{
	uint32_t id;
	while (read(fd, &id, sizeof(id)) == (ssize_t)sizeof(id))
		if (*n < max)
			ids[(*n)++] = id;
}

#endif
