/*
 * test-store-log.c — the transparency log's storage (src/store/store-log.c,
 * store.h "Transparency log", issue 8) on real SQLite files: leaves
 * appended by store_register_logged and by store_deliver with a receipt
 * (none for a duplicate); after every append of sizes 1..70, and at
 * ~5000, the root equals a frontier rebuilt from the leaves read back,
 * every log_node row is the hash it must be, and the inclusion and
 * consistency proofs verify (amp_log_verify_*); a failed job in a batch
 * (a trigger refuses one leaf) and a failed batch (the COMMIT cannot
 * write: RLIMIT_FSIZE) leave the tree as it was and the next append
 * right; kill -9 while appending, then reopen: every committed leaf has
 * its nodes, every acknowledged receipt is there, and the root is the
 * leaves'; rotate and revoke (OK, STALE, UNKNOWN, REVOKED; revoked ->
 * not served but taken; concurrent rotations: one winner per
 * prev_index); heads, cosignatures, witness heads and alarms; a database
 * made before the log (user_version 1 without its tables) opens and
 * works; bad leaves and bounds refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store.h"

#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-store-common.h"

static const char *NODE = "did:aftersmtp:alpha.test:node";
static const char *SENDER = "did:aftersmtp:beta.test:sender";
static const char *RCPT = "did:aftersmtp:alpha.test:bob";

/* ------------------------------------------------------------ leaves */

typedef struct leafbuf {
	uint8_t b[AMP_LOG_LEAF_MAX];
	size_t len;
} leafbuf;

static void encode(const amp_log_leaf *l, leafbuf *out)
{
	assert_int_equal(amp_log_leaf_encode(l, out->b, sizeof(out->b),
					     &out->len), AMP_OK);
}

/* A register (v 0), rotate (v >= 1) or revoke leaf of did; the keys and
 * signatures are random bytes (the store does not verify them). */
static void id_leaf(amp_log_type type, const char *did, uint32_t v,
		    leafbuf *out)
{
	amp_log_leaf l;
	memset(&l, 0, sizeof(l));
	l.type = type;
	l.time = 1767225600 + v;
	l.version = v;
	amp_log_did_hash(did, l.subject);
	randombytes_buf(l.sign_pk, 32);
	randombytes_buf(l.enc_pk, 32);
	randombytes_buf(l.sig, 64);
	randombytes_buf(l.prev_sig, 64);
	encode(&l, out);
}

static void receipt_leaf(const uint8_t *env, size_t len, leafbuf *out)
{
	amp_log_leaf l;
	memset(&l, 0, sizeof(l));
	l.type = AMP_LOG_RECEIPT;
	l.time = 1767225600;
	amp_log_envelope_digest(env, len, l.subject);
	snprintf(l.node, sizeof(l.node), "%s", NODE);
	encode(&l, out);
}

/* ------------------------------------------------------- deliveries */

typedef struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending, failures;
	bool dup;
} waiter;

#define WAITER { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, false }

static void on_deliver(void *arg, int result, bool duplicate)
{
	waiter *w = arg;
	pthread_mutex_lock(&w->lock);
	if (result != 0)
		w->failures++;
	w->dup = duplicate;
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

/* The envelope of delivery number id (distinct bytes, so distinct
 * receipts). */
static size_t env_of(uint32_t id, uint8_t env[64])
{
	memset(env, 'e', 64);
	memcpy(env, &id, sizeof(id));
	return 64;
}

/* Queue delivery id (with its receipt when with_receipt) to w. */
static void deliver_async(store *s, uint32_t id, bool with_receipt, waiter *w)
{
	uint8_t env[64], eid[16] = { 0 };
	size_t len = env_of(id, env);
	memcpy(eid, &id, sizeof(id));
	leafbuf r;
	receipt_leaf(env, len, &r);
	const char *local[1] = { RCPT };
	store_delivery d = { .sender = SENDER, .envelope_id = eid, .env = env,
			     .env_len = len, .received = 1767225600,
			     .local = local, .n_local = 1 };
	if (with_receipt) {
		d.receipt = r.b;
		d.receipt_len = r.len;
	}
	pthread_mutex_lock(&w->lock);
	w->pending++;
	pthread_mutex_unlock(&w->lock);
	assert_int_equal(store_deliver(s, &d, on_deliver, w), 0);
}

/* One delivery with a receipt: its result and duplicate flag. */
static int deliver(store *s, uint32_t id, bool *dup_r)
{
	waiter w = WAITER;
	deliver_async(s, id, true, &w);
	wait_all(&w);
	if (dup_r != NULL)
		*dup_r = w.dup;
	return w.failures == 0 ? 0 : -1;
}

static uint64_t reg_logged(store *s, const char *did)
{
	leafbuf l;
	id_leaf(AMP_LOG_REGISTER, did, 0, &l);
	uint8_t token[32];
	randombytes_buf(token, sizeof(token));
	store_reg_res res;
	uint64_t idx = UINT64_MAX;
	assert_int_equal(store_register_logged(s, did, "{\"doc\":0}", 9, token,
					       2000000000, l.b, l.len, &res,
					       &idx), 0);
	assert_int_equal(res, STORE_REG_OK);
	return idx;
}

/* ------------------------------------------------------------ checks */

typedef struct node_check {
	sqlite3_stmt *st;
	uint64_t emitted;
} node_check;

/* log_node's row of the subtree at (level, index): subtrees are numbered
 * in the order appends make them, counted here the slow way: every leaf
 * before the one that completes it made 1 + (trailing ones of its index)
 * subtrees, then this one comes `level` after that leaf. */
static sqlite3_int64 row_of(unsigned level, uint64_t index)
{
	uint64_t last = ((index + 1) << level) - 1, pos = 0;
	for (uint64_t i = 0; i < last; i++) {
		pos++;
		for (uint64_t b = i; b & 1; b >>= 1)
			pos++;
	}
	return (sqlite3_int64)(pos + level);
}

/* The frontier's emit: the store holds exactly this hash at (level, idx);
 * the positions are checked the slow way for small trees, and follow the
 * emit order (each one after the previous) for all. */
static int check_emit(void *ctx, unsigned level, uint64_t index,
		      const uint8_t hash[32])
{
	node_check *c = ctx;
	sqlite3_int64 pos = (sqlite3_int64)c->emitted;
	if (c->emitted < 3000 && row_of(level, index) != pos)
		return -1;
	sqlite3_reset(c->st);
	sqlite3_bind_int64(c->st, 1, pos);
	int ok = sqlite3_step(c->st) == SQLITE_ROW &&
		 sqlite3_column_bytes(c->st, 0) == 32 &&
		 memcmp(sqlite3_column_blob(c->st, 0), hash, 32) == 0;
	sqlite3_reset(c->st);
	c->emitted++;
	return ok ? 0 : -1;
}

/* The whole log read back through the store: every leaf's subject, a
 * frontier rebuilt from the leaves whose every subtree is the store's
 * log_node row, no other log_node row, and its root = store_log_state's.
 * Returns the size; roots[k] (when roots != NULL) = MTH of the first k
 * leaves for k <= size. */
static uint64_t check_tree(store *s, const char *path, uint8_t (*roots)[32])
{
	uint64_t size;
	uint8_t root[32];
	assert_int_equal(store_log_state(s, &size, root), 0);
	sqlite3 *db = raw_open(path);
	node_check c = { NULL, 0 };
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT hash FROM log_node "
						"WHERE pos=?", -1, &c.st, NULL),
			 SQLITE_OK);
	amp_log_frontier f;
	amp_log_frontier_init(&f);
	if (roots != NULL)
		amp_log_empty_root(roots[0]);
	for (uint64_t start = 0; start < size; start += 1000) {
		uint8_t **leaves;
		size_t *lens, n;
		assert_int_equal(store_log_entries(s, start, 1000, &leaves,
						   &lens, &n), 0);
		assert_int_equal(n, size - start < 1000 ? size - start : 1000);
		for (size_t i = 0; i < n; i++) {
			amp_log_leaf l;
			const char *err = NULL;
			assert_int_equal(amp_log_leaf_decode(leaves[i], lens[i],
							     &l, &err), AMP_OK);
			uint8_t h[32];
			amp_log_leaf_hash(leaves[i], lens[i], h);
			assert_int_equal(amp_log_frontier_push(&f, h, check_emit,
							       &c), AMP_OK);
			if (roots != NULL)
				amp_log_frontier_root(&f, roots[start + i + 1]);
		}
		store_log_leaves_free(leaves, lens, n);
	}
	sqlite3_finalize(c.st);
	/* every emitted subtree was there; nothing else is */
	assert_int_equal(raw_count(db, "SELECT count(*) FROM log_node"),
			 (long long)c.emitted);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM log_leaf"),
			 (long long)size);
	sqlite3_close(db);
	uint8_t mine[32];
	amp_log_frontier_root(&f, mine);
	assert_memory_equal(mine, root, 32);
	return size;
}

static void check_inclusion(store *s, uint64_t index, uint64_t size,
			    const uint8_t root[32])
{
	uint8_t path[AMP_LOG_PROOF_MAX][32], h[32];
	size_t n;
	uint8_t *leaf;
	size_t len;
	assert_int_equal(store_log_leaf(s, index, &leaf, &len), 1);
	amp_log_leaf_hash(leaf, len, h);
	free(leaf);
	assert_int_equal(store_log_inclusion(s, index, size, path, &n), 0);
	assert_int_equal(amp_log_verify_inclusion(index, size, h,
						  (const uint8_t (*)[32])path,
						  n, root), AMP_OK);
}

static void check_consistency(store *s, uint64_t first, uint64_t second,
			      const uint8_t r1[32], const uint8_t r2[32])
{
	uint8_t path[AMP_LOG_PROOF_MAX][32];
	size_t n;
	assert_int_equal(store_log_consistency(s, first, second, path, &n), 0);
	assert_int_equal(amp_log_verify_consistency(first, second, r1, r2,
						    (const uint8_t (*)[32])path,
						    n), AMP_OK);
}

/* ------------------------------------------------------------- tests */

/* Sizes 1..70 (across 1, 2, 4, ... 64), alternating registrations and
 * deliveries: after each append the tree checks out and every inclusion
 * proof and every consistency proof to the new size verifies. */
static void test_append_small(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	uint64_t size;
	uint8_t root[32];
	assert_int_equal(store_log_state(s, &size, root), 0);
	assert_int_equal(size, 0);
	uint8_t empty[32];
	amp_log_empty_root(empty);
	assert_memory_equal(root, empty, 32);
	uint8_t roots[71][32];
	for (uint32_t i = 0; i < 70; i++) {
		if (i % 3 == 0) {
			char did[64];
			snprintf(did, sizeof(did), "did:aftersmtp:alpha.test:u%u", i);
			assert_int_equal(reg_logged(s, did), i);
		} else {
			bool dup = true;
			assert_int_equal(deliver(s, i, &dup), 0);
			assert_false(dup);
		}
		uint64_t n = check_tree(s, path, roots);
		assert_int_equal(n, i + 1);
		for (uint64_t k = 0; k < n; k++)
			check_inclusion(s, k, n, roots[n]);
		for (uint64_t m = 1; m <= n; m++)
			check_consistency(s, m, n, roots[m], roots[n]);
		/* proofs against an older size too */
		if (n > 1)
			check_inclusion(s, 0, n - 1, roots[n - 1]);
	}
	/* the subjects: a DID's leaves found by its did_hash */
	uint8_t subj[32];
	amp_log_did_hash("did:aftersmtp:alpha.test:u3", subj);
	uint64_t idx[4];
	size_t n;
	assert_int_equal(store_log_find(s, subj, UINT64_MAX, idx, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(idx[0], 3);
	assert_int_equal(store_log_find(s, subj, 3, idx, 4, &n), 0);
	assert_int_equal(n, 0);
	uint8_t env[64];
	size_t len = env_of(5, env);
	amp_log_envelope_digest(env, len, subj);
	assert_int_equal(store_log_find(s, subj, 70, idx, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(idx[0], 5);
	store_close(&s);
	/* and after reopening */
	s = open_at(path);
	assert_int_equal(check_tree(s, path, NULL), 70);
	store_close(&s);
	rm_db(path);
}

/* A delivery retried (same sender and envelope id) gets no second
 * receipt; a plain delivery (no receipt) adds nothing. */
static void test_duplicate_no_receipt(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	bool dup = true;
	assert_int_equal(deliver(s, 1, &dup), 0);
	assert_false(dup);
	assert_int_equal(deliver(s, 1, &dup), 0);
	assert_true(dup);
	waiter w = WAITER;
	deliver_async(s, 2, false, &w);
	wait_all(&w);
	assert_int_equal(w.failures, 0);
	assert_int_equal(check_tree(s, path, NULL), 1);
	/* 2 was delivered without one: a retry carrying a receipt is a
	 * duplicate and adds none */
	assert_int_equal(deliver(s, 2, &dup), 0);
	assert_true(dup);
	assert_int_equal(check_tree(s, path, NULL), 1);
	store_close(&s);
	rm_db(path);
}

/* ~5000 leaves from concurrent asynchronous deliveries (group commits):
 * the tree checks out; random proofs verify. */
static void test_append_5000(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	waiter w = WAITER;
	for (uint32_t i = 0; i < 5003; i++) {
		deliver_async(s, i, true, &w);
		if (i % 512 == 511)
			wait_all(&w);
	}
	wait_all(&w);
	assert_int_equal(w.failures, 0);
	static uint8_t roots[5004][32];
	assert_int_equal(check_tree(s, path, roots), 5003);
	for (int i = 0; i < 300; i++) {
		uint64_t n = 1 + randombytes_uniform(5003);
		uint64_t k = randombytes_uniform((uint32_t)n);
		check_inclusion(s, k, n, roots[n]);
		uint64_t m = 1 + randombytes_uniform((uint32_t)n);
		check_consistency(s, m, n, roots[m], roots[n]);
	}
	store_close(&s);
	rm_db(path);
}

/* A trigger refuses the leaf of one subject, after the append has
 * written its log_node rows: that job fails alone, its rows are rolled
 * back, the others of its batch commit, and the next append is right. */
static void test_failed_job_in_batch(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	for (uint32_t i = 0; i < 5; i++)
		assert_int_equal(deliver(s, i, NULL), 0);
	uint8_t env[64], subj[32];
	size_t len = env_of(1000, env);
	amp_log_envelope_digest(env, len, subj);
	sqlite3 *db = raw_open(path);
	char sql[300], hex[65];
	sodium_bin2hex(hex, sizeof(hex), subj, 32);
	snprintf(sql, sizeof(sql),
		 "CREATE TRIGGER refuse BEFORE INSERT ON log_leaf "
		 "WHEN NEW.subject = X'%s' BEGIN "
		 "SELECT RAISE(ABORT, 'refused'); END;", hex);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	/* The raw connection holds the write lock while the jobs queue up,
	 * so that the writer takes them in one or two batches.  At size 15
	 * the refused leaf completes (0,15), (1,7), (2,3) and (3,1), and
	 * writes them before its log_leaf row fails. */
	store_stats st0, st1;
	store_get_stats(s, &st0);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
			 SQLITE_OK);
	waiter w = WAITER, bad = WAITER;
	for (uint32_t i = 5; i < 15; i++)
		deliver_async(s, i, true, &w);
	deliver_async(s, 1000, true, &bad);
	for (uint32_t i = 15; i < 40; i++)
		deliver_async(s, i, true, &w);
	usleep(200000);
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	wait_all(&w);
	wait_all(&bad);
	assert_int_equal(w.failures, 0);
	assert_int_equal(bad.failures, 1);
	store_get_stats(s, &st1);
	assert_int_equal(st1.writes - st0.writes, 36);
	assert_true(st1.commits - st0.commits <= 2);
	assert_int_equal(check_tree(s, path, NULL), 40);
	/* the refused delivery stored nothing: a retry is not a duplicate */
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER refuse", NULL, NULL,
				      NULL), SQLITE_OK);
	bool dup = true;
	assert_int_equal(deliver(s, 1000, &dup), 0);
	assert_false(dup);
	assert_int_equal(check_tree(s, path, NULL), 41);
	uint64_t idx[2];
	size_t n;
	assert_int_equal(store_log_find(s, subj, UINT64_MAX, idx, 2, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(idx[0], 40);
	/* a registration whose leaf is refused: no identity either */
	const char *did = "did:aftersmtp:alpha.test:refused";
	amp_log_did_hash(did, subj);
	sodium_bin2hex(hex, sizeof(hex), subj, 32);
	snprintf(sql, sizeof(sql),
		 "CREATE TRIGGER refuse BEFORE INSERT ON log_leaf "
		 "WHEN NEW.subject = X'%s' BEGIN "
		 "SELECT RAISE(ABORT, 'refused'); END;", hex);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	leafbuf l;
	id_leaf(AMP_LOG_REGISTER, did, 0, &l);
	uint8_t token[32] = { 7 };
	store_reg_res res;
	uint64_t index;
	assert_int_equal(store_register_logged(s, did, "{}", 2, token, 1, l.b,
					       l.len, &res, &index), -1);
	char *doc;
	size_t dlen;
	assert_int_equal(store_identity_get(s, did, &doc, &dlen), 0);
	assert_int_equal(check_tree(s, path, NULL), 41);
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER refuse", NULL, NULL,
				      NULL), SQLITE_OK);
	assert_int_equal(store_register_logged(s, did, "{}", 2, token, 1, l.b,
					       l.len, &res, &index), 0);
	assert_int_equal(res, STORE_REG_OK);
	assert_int_equal(index, 41);
	assert_int_equal(check_tree(s, path, NULL), 42);
	sqlite3_close(db);
	store_close(&s);
	rm_db(path);
}

/* The COMMIT of a batch cannot write (RLIMIT_FSIZE: the WAL may not
 * grow): every job of the batch fails, the tree is as it was, and once
 * the disk "has room" again the next appends are right. */
static void test_failed_batch(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	for (uint32_t i = 0; i < 11; i++)
		assert_int_equal(deliver(s, i, NULL), 0);
	uint64_t size0;
	uint8_t root0[32];
	assert_int_equal(store_log_state(s, &size0, root0), 0);
	/* empty the WAL so that the next commit has to grow it */
	sqlite3 *db = raw_open(path);
	int busy = -1;
	assert_int_equal(sqlite3_wal_checkpoint_v2(db, NULL,
						   SQLITE_CHECKPOINT_TRUNCATE,
						   NULL, &busy), SQLITE_OK);
	sqlite3_close(db);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 16;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	waiter w = WAITER;
	for (uint32_t i = 100; i < 140; i++)
		deliver_async(s, i, true, &w);
	wait_all(&w);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, prev);
	assert_int_equal(w.failures, 40);
	uint64_t size;
	uint8_t root[32];
	assert_int_equal(store_log_state(s, &size, root), 0);
	assert_int_equal(size, size0);
	assert_memory_equal(root, root0, 32);
	assert_int_equal(check_tree(s, path, NULL), 11);
	/* room again: the same deliveries are new, and their leaves right */
	waiter w2 = WAITER;
	for (uint32_t i = 100; i < 140; i++)
		deliver_async(s, i, true, &w2);
	wait_all(&w2);
	assert_int_equal(w2.failures, 0);
	static uint8_t roots[52][32];
	assert_int_equal(check_tree(s, path, roots), 51);
	check_consistency(s, 11, 51, root0, roots[51]);
	store_close(&s);
	s = open_at(path);
	assert_int_equal(check_tree(s, path, NULL), 51);
	store_close(&s);
	rm_db(path);
}

/* The child delivers with receipts forever from 4 threads and reports
 * each acknowledged id; the parent kills it with SIGKILL. */
#define CRASH_INFLIGHT 128
typedef struct crash_arg {
	store *s;
	int fd;
	uint32_t id;
	pthread_mutex_t *lock;
} crash_arg;

static void on_crash(void *arg, int result, bool dup)
{
	crash_arg *a = arg;
	(void)dup;
	crash_finished(a->lock, a->fd, result, &a->id, sizeof(a->id));
	free(a);
}

static void *crash_writer(void *arg)
{
	crash_arg *base = arg;
	for (uint32_t i = 0;; i++) {
		crash_arg *a = malloc(sizeof(*a));
		if (a == NULL)
			_exit(5);
		*a = *base;
		a->id = base->id + i;
		uint8_t env[64], eid[16] = { 0 };
		size_t len = env_of(a->id, env);
		memcpy(eid, &a->id, sizeof(a->id));
		leafbuf r;
		receipt_leaf(env, len, &r);
		const char *local[1] = { RCPT };
		store_delivery d = { .sender = SENDER, .envelope_id = eid,
				     .env = env, .env_len = len, .received = 1,
				     .local = local, .n_local = 1,
				     .receipt = r.b, .receipt_len = r.len };
		crash_slot_take(CRASH_INFLIGHT);
		if (store_deliver(base->s, &d, on_crash, a) != 0)
			_exit(4);
	}
	return NULL;
}

static void test_kill9(void **state)
{
	(void)state;
	char *path = tmpdb();
	static uint32_t acked[400000];
	size_t acked_total = 0;
	for (int round = 0; round < 4; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		if (pid == 0) {
			close(p[0]);
			store *s = open_at(path);
			uint32_t ready = UINT32_MAX;
			if (write(p[1], &ready, sizeof(ready)) != sizeof(ready))
				_exit(6);
			pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
			pthread_t t[4];
			crash_arg a[4];
			for (int i = 0; i < 4; i++) {
				a[i] = (crash_arg){ s, p[1],
						    (uint32_t)(round * 10000000 +
							       i * 1000000),
						    &lock };
				pthread_create(&t[i], NULL, crash_writer, &a[i]);
			}
			for (;;)
				pause();
		}
		close(p[1]);
		uint32_t ready = 0;
		assert_int_equal(read(p[0], &ready, sizeof(ready)), sizeof(ready));
		assert_int_equal(ready, UINT32_MAX);
		/* 20 deliveries acknowledged, a random 0-250 ms more, kill -9 */
		const size_t max = sizeof(acked) / sizeof(acked[0]);
		crash_wait_acks(p[0], acked, max, &acked_total, 20);
		usleep((useconds_t)(rand() % 250000));
		kill(pid, SIGKILL);
		crash_drain(p[0], acked, max, &acked_total);
		close(p[0]);
		waitpid(pid, NULL, 0);
	}
	assert_true(acked_total > 50);
	store *s = open_at(path);
	uint64_t size = check_tree(s, path, NULL);
	/* one leaf per committed delivery, and none without one */
	sqlite3 *db = raw_open(path);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM delivered"),
			 (long long)size);
	sqlite3_close(db);
	for (size_t i = 0; i < acked_total; i++) {
		uint8_t env[64], subj[32];
		size_t len = env_of(acked[i], env);
		amp_log_envelope_digest(env, len, subj);
		uint64_t idx[2];
		size_t n;
		assert_int_equal(store_log_find(s, subj, UINT64_MAX, idx, 2, &n), 0);
		assert_int_equal(n, 1);
	}
	print_message("kill -9: %zu receipts acknowledged over 4 crashes, %llu "
		      "leaves after restart, all consistent\n", acked_total,
		      (unsigned long long)size);
	/* and appending goes on correctly */
	assert_int_equal(deliver(s, 99999999, NULL), 0);
	assert_int_equal(check_tree(s, path, NULL), size + 1);
	store_close(&s);
	rm_db(path);
}

static void test_identity_change(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	const char *alice = "did:aftersmtp:alpha.test:alice";
	const char *nobody = "did:aftersmtp:alpha.test:nobody";
	assert_int_equal(deliver(s, 1, NULL), 0);            /* index 0 */
	uint64_t i0 = reg_logged(s, alice);                  /* index 1 */
	assert_int_equal(i0, 1);
	assert_int_equal(deliver(s, 2, NULL), 0);            /* index 2 */
	leafbuf rot;
	id_leaf(AMP_LOG_ROTATE, alice, 1, &rot);
	store_id_res res;
	uint64_t index = 0;
	/* STALE: not the DID's latest leaf */
	assert_int_equal(store_identity_change(s, alice, "{\"v\":1}", 7, rot.b,
					       rot.len, 0, &res, &index), 0);
	assert_int_equal(res, STORE_ID_STALE);
	assert_int_equal(store_identity_change(s, alice, "{\"v\":1}", 7, rot.b,
					       rot.len, STORE_LOG_NONE, &res,
					       &index), 0);
	assert_int_equal(res, STORE_ID_STALE);
	/* UNKNOWN */
	leafbuf other;
	id_leaf(AMP_LOG_ROTATE, nobody, 1, &other);
	assert_int_equal(store_identity_change(s, nobody, "{}", 2, other.b,
					       other.len, 0, &res, &index), 0);
	assert_int_equal(res, STORE_ID_UNKNOWN);
	assert_int_equal(check_tree(s, path, NULL), 3);
	/* OK: the document is replaced, the leaf appended */
	assert_int_equal(store_identity_change(s, alice, "{\"v\":1}", 7, rot.b,
					       rot.len, i0, &res, &index), 0);
	assert_int_equal(res, STORE_ID_OK);
	assert_int_equal(index, 3);
	char *doc;
	size_t len;
	assert_int_equal(store_identity_get(s, alice, &doc, &len), 1);
	assert_string_equal(doc, "{\"v\":1}");
	free(doc);
	uint8_t *leaf;
	size_t leaf_len;
	assert_int_equal(store_log_leaf(s, 3, &leaf, &leaf_len), 1);
	assert_int_equal(leaf_len, rot.len);
	assert_memory_equal(leaf, rot.b, rot.len);
	free(leaf);
	/* the same change again: stale now */
	assert_int_equal(store_identity_change(s, alice, "{\"v\":1}", 7, rot.b,
					       rot.len, i0, &res, &index), 0);
	assert_int_equal(res, STORE_ID_STALE);
	/* a leaf of the wrong type or of another DID: refused */
	leafbuf rev;
	id_leaf(AMP_LOG_REVOKE, alice, 1, &rev);
	assert_int_equal(store_identity_change(s, alice, "{}", 2, rev.b,
					       rev.len, 3, &res, &index), -1);
	assert_int_equal(store_identity_change(s, alice, NULL, 0, rot.b,
					       rot.len, 3, &res, &index), -1);
	assert_int_equal(store_identity_change(s, nobody, NULL, 0, rev.b,
					       rev.len, 3, &res, &index), -1);
	assert_int_equal(store_identity_revoked(s, alice), 0);
	/* revoke */
	assert_int_equal(store_identity_change(s, alice, NULL, 0, rev.b,
					       rev.len, 3, &res, &index), 0);
	assert_int_equal(res, STORE_ID_OK);
	assert_int_equal(index, 4);
	assert_int_equal(store_identity_revoked(s, alice), 1);
	assert_int_equal(store_identity_revoked(s, nobody), 0);
	assert_int_equal(store_identity_get(s, alice, &doc, &len), 0);
	/* REVOKED, also with the right prev_index */
	id_leaf(AMP_LOG_ROTATE, alice, 2, &rot);
	assert_int_equal(store_identity_change(s, alice, "{}", 2, rot.b,
					       rot.len, 4, &res, &index), 0);
	assert_int_equal(res, STORE_ID_REVOKED);
	assert_int_equal(store_identity_change(s, alice, NULL, 0, rev.b,
					       rev.len, 4, &res, &index), 0);
	assert_int_equal(res, STORE_ID_REVOKED);
	/* the DID stays taken */
	leafbuf reg;
	id_leaf(AMP_LOG_REGISTER, alice, 0, &reg);
	uint8_t token[32] = { 9 };
	store_reg_res rr;
	assert_int_equal(store_register_logged(s, alice, "{}", 2, token, 1,
					       reg.b, reg.len, &rr, &index), 0);
	assert_int_equal(rr, STORE_REG_TAKEN);
	assert_int_equal(store_register(s, alice, "{}", 2, token, 1, &rr), 0);
	assert_int_equal(rr, STORE_REG_TAKEN);
	assert_int_equal(check_tree(s, path, NULL), 5);
	/* the history by subject */
	uint8_t subj[32];
	amp_log_did_hash(alice, subj);
	uint64_t idx[8];
	size_t n;
	assert_int_equal(store_log_find(s, subj, UINT64_MAX, idx, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(idx[0], 1);
	assert_int_equal(idx[1], 3);
	assert_int_equal(idx[2], 4);
	assert_int_equal(store_log_find(s, subj, UINT64_MAX, idx, 2, &n), 0);
	assert_int_equal(n, 2);      /* the oldest two */
	assert_int_equal(idx[1], 3);
	/* survives a reopen */
	store_close(&s);
	s = open_at(path);
	assert_int_equal(store_identity_revoked(s, alice), 1);
	assert_int_equal(store_identity_get(s, alice, &doc, &len), 0);
	store_close(&s);
	rm_db(path);
}

/* Several threads rotate one DID from the same prev_index: exactly one
 * wins each round. */
#define ROT_THREADS 6
#define ROT_ROUNDS 8

typedef struct rot_arg {
	store *s;
	const char *did;
	uint32_t version;
	uint64_t prev;
	store_id_res res;
	uint64_t index;
	char doc[32];
	pthread_barrier_t *go;
} rot_arg;

static void *rotate_main(void *arg)
{
	rot_arg *a = arg;
	leafbuf l;
	id_leaf(AMP_LOG_ROTATE, a->did, a->version, &l);
	pthread_barrier_wait(a->go);
	if (store_identity_change(a->s, a->did, a->doc, strlen(a->doc), l.b,
				  l.len, a->prev, &a->res, &a->index) != 0)
		a->res = (store_id_res)-1;
	return NULL;
}

static void test_concurrent_rotations(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	const char *did = "did:aftersmtp:alpha.test:carol";
	uint64_t prev = reg_logged(s, did);
	for (uint32_t round = 1; round <= ROT_ROUNDS; round++) {
		pthread_barrier_t go;
		pthread_barrier_init(&go, NULL, ROT_THREADS);
		rot_arg a[ROT_THREADS];
		pthread_t t[ROT_THREADS];
		for (int i = 0; i < ROT_THREADS; i++) {
			a[i] = (rot_arg){ .s = s, .did = did, .version = round,
					  .prev = prev, .go = &go };
			snprintf(a[i].doc, sizeof(a[i].doc), "{\"r\":%u,\"t\":%d}",
				 round, i);
			pthread_create(&t[i], NULL, rotate_main, &a[i]);
		}
		int ok = 0, winner = -1;
		for (int i = 0; i < ROT_THREADS; i++) {
			pthread_join(t[i], NULL);
			if (a[i].res == STORE_ID_OK) {
				ok++;
				winner = i;
			} else {
				assert_int_equal(a[i].res, STORE_ID_STALE);
			}
		}
		pthread_barrier_destroy(&go);
		assert_int_equal(ok, 1);
		assert_int_equal(a[winner].index, round);
		char *doc;
		size_t len;
		assert_int_equal(store_identity_get(s, did, &doc, &len), 1);
		assert_string_equal(doc, a[winner].doc);
		free(doc);
		prev = a[winner].index;
	}
	assert_int_equal(check_tree(s, path, NULL), ROT_ROUNDS + 1);
	store_close(&s);
	rm_db(path);
}

static void signed_head(const uint8_t sk[64], uint64_t size,
			const uint8_t root[32], uint64_t time, amp_log_head *h)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->log, sizeof(h->log), "%s", NODE);
	h->size = size;
	memcpy(h->root, root, 32);
	h->time = time;
	assert_int_equal(amp_log_head_sign(h, sk), AMP_OK);
}

static void test_heads_cosigs(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	uint8_t pk[32], sk[64];
	crypto_sign_keypair(pk, sk);
	amp_log_head h, got;
	assert_int_equal(store_log_head_latest(s, &got), 0);
	/* the empty tree's head */
	uint8_t roots[11][32];
	amp_log_empty_root(roots[0]);
	signed_head(sk, 0, roots[0], 5, &h);
	assert_int_equal(store_log_head_put(s, &h), 0);
	for (uint32_t i = 0; i < 10; i++)
		assert_int_equal(deliver(s, i, NULL), 0);
	assert_int_equal(check_tree(s, path, roots), 10);
	/* a time beyond INT64_MAX comes back bit for bit */
	signed_head(sk, 5, roots[5], UINT64_MAX - 7, &h);
	assert_int_equal(store_log_head_put(s, &h), 0);
	assert_int_equal(store_log_head_latest(s, &got), 1);
	assert_int_equal(got.size, 5);
	assert_int_equal(got.time, UINT64_MAX - 7);
	assert_true(amp_log_head_verify(&got, pk));
	assert_memory_equal(&got, &h, sizeof(h));
	signed_head(sk, 10, roots[10], 1767225700, &h);
	assert_int_equal(store_log_head_put(s, &h), 0);
	assert_int_equal(store_log_head_latest(s, &got), 1);
	assert_int_equal(got.size, 10);
	assert_true(amp_log_head_verify(&got, pk));
	/* get: exactly that size */
	assert_int_equal(store_log_head_get(s, 5, &got), 1);
	assert_int_equal(got.size, 5);
	assert_int_equal(store_log_head_get(s, 0, &got), 1);
	assert_int_equal(got.size, 0);
	assert_int_equal(store_log_head_get(s, 7, &got), 0);
	assert_int_equal(store_log_head_get(s, UINT64_MAX, &got), 0);
	/* a second head of size 5 replaces nothing */
	signed_head(sk, 5, roots[5], 99, &h);
	assert_int_equal(store_log_head_put(s, &h), 0);
	assert_int_equal(store_log_head_get(s, 5, &got), 1);
	assert_int_equal(got.time, UINT64_MAX - 7);
	/* a root that is not the log's, a size beyond it, a bad name */
	signed_head(sk, 7, roots[6], 99, &h);
	assert_int_equal(store_log_head_put(s, &h), -1);
	signed_head(sk, 11, roots[10], 99, &h);
	assert_int_equal(store_log_head_put(s, &h), -1);
	signed_head(sk, 7, roots[7], 99, &h);
	h.log[0] = '\0';
	assert_int_equal(store_log_head_put(s, &h), -1);
	assert_int_equal(store_log_head_get(s, 7, &got), 0);

	/* cosignatures: per witness, replaced, bounded, of stored heads */
	store_cosig c = { .time = 1 }, out[STORE_COSIG_MAX + 4];
	size_t n;
	assert_int_equal(store_log_cosigs(s, 10, out, 8, &n), 0);
	assert_int_equal(n, 0);
	snprintf(c.witness, sizeof(c.witness), "did:aftersmtp:w1.test:node");
	memset(c.sig, 1, 64);
	assert_int_equal(store_log_cosig_put(s, 10, &c), 0);
	snprintf(c.witness, sizeof(c.witness), "did:aftersmtp:w2.test:node");
	c.time = UINT64_MAX;
	assert_int_equal(store_log_cosig_put(s, 10, &c), 0);
	snprintf(c.witness, sizeof(c.witness), "did:aftersmtp:w1.test:node");
	c.time = 3;
	memset(c.sig, 3, 64);
	assert_int_equal(store_log_cosig_put(s, 10, &c), 0);
	assert_int_equal(store_log_cosigs(s, 10, out, 8, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].witness, "did:aftersmtp:w1.test:node");
	assert_int_equal(out[0].time, 3);
	assert_int_equal(out[0].sig[63], 3);
	assert_string_equal(out[1].witness, "did:aftersmtp:w2.test:node");
	assert_int_equal(out[1].time, UINT64_MAX);
	assert_int_equal(store_log_cosigs(s, 10, out, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_log_cosigs(s, 5, out, 8, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_log_cosig_put(s, 7, &c), -1); /* no head */
	for (unsigned i = 2; i < STORE_COSIG_MAX; i++) {
		snprintf(c.witness, sizeof(c.witness),
			 "did:aftersmtp:x%02u.test:node", i);
		assert_int_equal(store_log_cosig_put(s, 10, &c), 0);
	}
	snprintf(c.witness, sizeof(c.witness), "did:aftersmtp:zz.test:node");
	assert_int_equal(store_log_cosig_put(s, 10, &c), -1); /* one too many */
	snprintf(c.witness, sizeof(c.witness), "did:aftersmtp:w2.test:node");
	assert_int_equal(store_log_cosig_put(s, 10, &c), 0); /* a replacement */
	assert_int_equal(store_log_cosigs(s, 10, out, STORE_COSIG_MAX + 4, &n), 0);
	assert_int_equal(n, STORE_COSIG_MAX);
	store_close(&s);
	rm_db(path);
}

static void test_witness_alarms(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	const char *peer = "did:aftersmtp:beta.test:node";
	amp_log_head h, got;
	assert_int_equal(store_witness_get(s, peer, &got), 0);
	memset(&h, 0, sizeof(h));
	snprintf(h.log, sizeof(h.log), "%s", peer);
	h.size = 12;
	h.time = 1767225600;
	memset(h.root, 0xab, 32);
	memset(h.sig, 0xcd, 64);
	assert_int_equal(store_witness_put(s, &h), 0);
	assert_int_equal(store_witness_get(s, peer, &got), 1);
	assert_memory_equal(&got, &h, sizeof(h));
	h.size = 20;
	h.time = UINT64_MAX;
	assert_int_equal(store_witness_put(s, &h), 0);
	assert_int_equal(store_witness_get(s, peer, &got), 1);
	assert_memory_equal(&got, &h, sizeof(h));
	assert_int_equal(store_witness_get(s, "did:aftersmtp:gamma.test:node",
					   &got), 0);
	assert_int_equal(store_witness_get(s, "", &got), -1);

	store_alarm a[5], out[5];
	size_t n;
	assert_int_equal(store_log_alarms(s, out, 5, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_log_alarmed(s, peer), 0);
	for (int i = 0; i < 3; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].at = 100 + (uint64_t)i;
		snprintf(a[i].reason, sizeof(a[i].reason), "reason %d", i);
		a[i].had = h;
		a[i].got = h;
		a[i].got.size = 5 + (uint64_t)i;
		a[i].got.root[0] = (uint8_t)i;
		if (i == 2)
			snprintf(a[i].had.log, sizeof(a[i].had.log),
				 "did:aftersmtp:delta.test:node");
		assert_int_equal(store_log_alarm_put(s, &a[i]), 0);
	}
	assert_int_equal(store_log_alarms(s, out, 5, &n), 0);
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++) {
		const store_alarm *e = &a[2 - i];
		assert_true(out[i].id > 0);
		if (i > 0)
			assert_true(out[i].id < out[i - 1].id);
		assert_int_equal(out[i].at, e->at);
		assert_string_equal(out[i].reason, e->reason);
		assert_memory_equal(&out[i].had, &e->had, sizeof(e->had));
		assert_memory_equal(&out[i].got, &e->got, sizeof(e->got));
	}
	assert_int_equal(store_log_alarms(s, out, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].reason, "reason 2");
	assert_int_equal(store_log_alarmed(s, peer), 1);
	assert_int_equal(store_log_alarmed(s, "did:aftersmtp:delta.test:node"), 1);
	assert_int_equal(store_log_alarmed(s, "did:aftersmtp:gamma.test:node"), 0);
	/* a reason not terminated within its buffer */
	memset(a[3].reason, 'x', sizeof(a[3].reason));
	a[3].had = h;
	a[3].got = h;
	assert_int_equal(store_log_alarm_put(s, &a[3]), -1);
	store_close(&s);
	s = open_at(path);
	assert_int_equal(store_log_alarmed(s, peer), 1);
	assert_int_equal(store_witness_get(s, peer, &got), 1);
	assert_int_equal(got.size, 20);
	store_close(&s);
	rm_db(path);
}

/* A database made before the log: the same store with the log's tables
 * dropped (user_version 1, as the code before issue 8 left it). */
static void test_old_schema(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	const char *old = "did:aftersmtp:alpha.test:old";
	uint8_t token[32] = { 1 };
	store_reg_res rr;
	assert_int_equal(store_register(s, old, "{\"old\":1}", 9, token, 1, &rr), 0);
	assert_int_equal(rr, STORE_REG_OK);
	waiter w = WAITER;
	deliver_async(s, 1, false, &w);
	wait_all(&w);
	assert_int_equal(w.failures, 0);
	store_close(&s);
	sqlite3 *db = raw_open(path);
	assert_int_equal(sqlite3_exec(db,
		"DROP TABLE log_leaf; DROP TABLE log_node; DROP TABLE log_head;"
		"DROP TABLE log_cosig; DROP TABLE witness; DROP TABLE log_alarm;"
		"DROP TABLE revoked;", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(raw_count(db, "PRAGMA user_version"), 1);
	assert_int_equal(raw_count(db, "SELECT count(*) FROM sqlite_master "
				       "WHERE name LIKE 'log%'"), 0);
	sqlite3_close(db);

	s = open_at(path);
	char *doc;
	size_t len;
	assert_int_equal(store_identity_get(s, old, &doc, &len), 1);
	assert_string_equal(doc, "{\"old\":1}");
	free(doc);
	uint64_t size;
	uint8_t root[32];
	assert_int_equal(store_log_state(s, &size, root), 0);
	assert_int_equal(size, 0);
	bool dup = false;
	assert_int_equal(deliver(s, 1, &dup), 0);   /* delivered before */
	assert_true(dup);
	assert_int_equal(check_tree(s, path, NULL), 0);
	/* the old identity has no leaf: it rotates from STORE_LOG_NONE */
	leafbuf rot;
	id_leaf(AMP_LOG_ROTATE, old, 1, &rot);
	store_id_res res;
	uint64_t index;
	assert_int_equal(store_identity_change(s, old, "{\"old\":2}", 9, rot.b,
					       rot.len, 0, &res, &index), 0);
	assert_int_equal(res, STORE_ID_STALE);
	assert_int_equal(store_identity_change(s, old, "{\"old\":2}", 9, rot.b,
					       rot.len, STORE_LOG_NONE, &res,
					       &index), 0);
	assert_int_equal(res, STORE_ID_OK);
	assert_int_equal(index, 0);
	assert_int_equal(store_identity_get(s, old, &doc, &len), 1);
	assert_string_equal(doc, "{\"old\":2}");
	free(doc);
	assert_int_equal(reg_logged(s, "did:aftersmtp:alpha.test:new"), 1);
	assert_int_equal(deliver(s, 2, NULL), 0);
	assert_int_equal(check_tree(s, path, NULL), 3);
	store_close(&s);
	db = raw_open(path);
	assert_int_equal(raw_count(db, "PRAGMA user_version"), 1);
	sqlite3_close(db);
	rm_db(path);
}

static void test_refused(void **state)
{
	(void)state;
	char *path = tmpdb();
	store *s = open_at(path);
	const char *did = "did:aftersmtp:alpha.test:dave";
	leafbuf reg, rec;
	id_leaf(AMP_LOG_REGISTER, did, 0, &reg);
	uint8_t env[64];
	receipt_leaf(env, env_of(1, env), &rec);
	uint8_t token[32] = { 2 };
	store_reg_res rr;
	uint64_t index;
	/* a register leaf of another DID, of another type, truncated, none */
	assert_int_equal(store_register_logged(s, "did:aftersmtp:alpha.test:eve",
					       "{}", 2, token, 1, reg.b, reg.len,
					       &rr, &index), -1);
	assert_int_equal(store_register_logged(s, did, "{}", 2, token, 1, rec.b,
					       rec.len, &rr, &index), -1);
	assert_int_equal(store_register_logged(s, did, "{}", 2, token, 1, reg.b,
					       reg.len - 1, &rr, &index), -1);
	assert_int_equal(store_register_logged(s, did, "{}", 2, token, 1, NULL,
					       0, &rr, &index), -1);
	/* a receipt that is not one */
	const char *local[1] = { RCPT };
	uint8_t eid[16] = { 0 };
	store_delivery d = { .sender = SENDER, .envelope_id = eid, .env = env,
			     .env_len = 64, .received = 1, .local = local,
			     .n_local = 1, .receipt = reg.b,
			     .receipt_len = reg.len };
	waiter w = WAITER;
	assert_int_equal(store_deliver(s, &d, on_deliver, &w), -1);
	d.receipt = rec.b;
	d.receipt_len = rec.len - 1;
	assert_int_equal(store_deliver(s, &d, on_deliver, &w), -1);
	d.receipt = NULL;
	d.receipt_len = 5;
	assert_int_equal(store_deliver(s, &d, on_deliver, &w), -1);
	assert_int_equal(check_tree(s, path, NULL), 0);
	/* bounds of the reads */
	for (uint32_t i = 0; i < 3; i++)
		assert_int_equal(deliver(s, i, NULL), 0);
	uint8_t path_[AMP_LOG_PROOF_MAX][32];
	size_t n;
	assert_int_equal(store_log_inclusion(s, 0, 4, path_, &n), -1);
	assert_int_equal(store_log_inclusion(s, 3, 3, path_, &n), -1);
	assert_int_equal(store_log_consistency(s, 1, 4, path_, &n), -1);
	assert_int_equal(store_log_consistency(s, 0, 3, path_, &n), -1);
	assert_int_equal(store_log_consistency(s, 3, 3, path_, &n), 0);
	assert_int_equal(n, 0);
	uint8_t **leaves;
	size_t *lens;
	assert_int_equal(store_log_entries(s, 0, 1001, &leaves, &lens, &n), -1);
	assert_int_equal(store_log_entries(s, 2, 1000, &leaves, &lens, &n), 0);
	assert_int_equal(n, 1);
	store_log_leaves_free(leaves, lens, n);
	assert_int_equal(store_log_entries(s, 3, 10, &leaves, &lens, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_log_entries(s, UINT64_MAX, 10, &leaves, &lens,
					   &n), 0);
	assert_int_equal(n, 0);
	uint8_t *leaf;
	size_t len;
	assert_int_equal(store_log_leaf(s, 3, &leaf, &len), 0);
	assert_int_equal(store_log_leaf(s, UINT64_MAX, &leaf, &len), 0);
	store_close(&s);
	rm_db(path);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_small),
		cmocka_unit_test(test_duplicate_no_receipt),
		cmocka_unit_test(test_append_5000),
		cmocka_unit_test(test_failed_job_in_batch),
		cmocka_unit_test(test_failed_batch),
		cmocka_unit_test(test_kill9),
		cmocka_unit_test(test_identity_change),
		cmocka_unit_test(test_concurrent_rotations),
		cmocka_unit_test(test_heads_cosigs),
		cmocka_unit_test(test_witness_alarms),
		cmocka_unit_test(test_old_schema),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
