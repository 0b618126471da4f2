/*
 * store-log.c — the transparency log (store.h "Transparency log", issue
 * 8; PROTOCOL.md §11) in the store's SQLite database: leaves and every
 * complete subtree hash, signed heads, witness cosignatures, the heads
 * this node cosigned as a witness, alarms, and the revoked DIDs.  The
 * Merkle hashing and proofs are src/lib/amp-log.c's (amp-log.h); this
 * file only stores and reads what they need.  No other I/O.
 *
 * Tables (created if missing at every open, so a database made before
 * the log gets them; its identities simply have no leaves):
 *   log_leaf(idx, subject, leaf)     idx from 0, no gaps; subject = bytes
 *                                    10..41 of the leaf (did_hash or the
 *                                    envelope digest); index (subject, idx)
 *   log_node(pos, hash)              every complete subtree: the one at
 *                                    (level, idx) covers leaves [idx*2^level,
 *                                    (idx+1)*2^level); level 0 = leaf hashes;
 *                                    pos = its rank in the order appends
 *                                    make subtrees (post-order, node_pos)
 *   log_head(size, time, root, log, sig)     every head the node signed
 *   log_cosig(size, witness, time, sig)      cosignatures of those heads
 *   witness(log, size, time, root, sig)      as a witness: the last head
 *                                            of each log we cosigned
 *   log_alarm(id, at, reason, had_*, got_*)  evidence: two heads
 *   revoked(did)                     did = the registry's keyed hash
 *                                    (store-sqlite.c); the identity row
 *                                    stays, so the DID stays taken
 * All of it but `revoked` is public data, stored in clear.  Times are
 * stored as the bits of the u64 (a signed head's time must come back
 * exactly); sizes are below 2^62 (node_pos).
 *
 * Appending (writer thread, inside the job's SAVEPOINT): the tree size
 * is read from log_leaf (max idx + 1) and the frontier from log_node (one
 * row per set bit of the size) every time, never cached, so a ROLLBACK TO
 * or a failed COMMIT cannot leave a stale copy behind; then
 * amp_log_frontier_push INSERTs a log_node row for each subtree the leaf
 * completes (on average 2), then the log_leaf row.  That is popcount(size)
 * + 1 point reads and about 3 inserts per leaf.  Numbering the subtrees
 * in the order they are made keeps every log_node insert an append at
 * the end of one B-tree: a group commit dirties one or two of its pages.
 * Keyed by (level, idx) instead, each level's rows grow at a different
 * place and a commit of 30 appends dirtied about six pages more:
 * deliveries with receipts ran at 0.53 of the rate without instead of
 * 0.64 (bench/bench-log.c, 10^4 leaves).  The remaining extra page
 * writes are mostly the subject index, random by nature (as the
 * `delivered` table's).
 *
 * Reading (read connection, under s->rlock): committed data only.  The
 * log is append-only and a complete subtree never changes, so the size
 * read first and the nodes read after it agree even when a commit lands
 * in between.  Proofs are amp_log_*_proof with a point read of log_node
 * per subtree hash they ask for, against sizes up to the committed one.
 *
 * Refused with -1: leaves that do not decode or are of the wrong type
 * (checked by the callers before the job is queued), entries counts over
 * STORE_LOG_ENTRIES_MAX, DIDs (log, witness) empty or over AMP_DID_MAX,
 * sizes of 2^63 or more, a head whose root is not the log's at its size
 * or whose size is beyond it, a cosignature of a size without a head or
 * of a head with STORE_COSIG_MAX witnesses already, alarm reasons not
 * terminated within their buffer.
 */
#include "store-private.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define STORE_LOG_ENTRIES_MAX 1000u
#define LEAF_MIN (LOG_SUBJECT_OFF + 32u)

_Static_assert(sizeof(((store_alarm *)0)->reason) <= INT_MAX, "reason");

static const char log_schema_sql[] =
	"BEGIN IMMEDIATE;"
	"CREATE TABLE IF NOT EXISTS log_leaf("
	"  idx INTEGER PRIMARY KEY,"
	"  subject BLOB NOT NULL,"
	"  leaf BLOB NOT NULL);"
	"CREATE INDEX IF NOT EXISTS log_leaf_subject ON log_leaf(subject, idx);"
	"CREATE TABLE IF NOT EXISTS log_node("
	"  pos INTEGER PRIMARY KEY,"
	"  hash BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS log_head("
	"  size INTEGER PRIMARY KEY,"
	"  time INTEGER NOT NULL,"
	"  root BLOB NOT NULL,"
	"  log TEXT NOT NULL,"
	"  sig BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS log_cosig("
	"  size INTEGER NOT NULL,"
	"  witness TEXT NOT NULL,"
	"  time INTEGER NOT NULL,"
	"  sig BLOB NOT NULL,"
	"  PRIMARY KEY(size, witness)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS witness("
	"  log TEXT PRIMARY KEY,"
	"  size INTEGER NOT NULL,"
	"  time INTEGER NOT NULL,"
	"  root BLOB NOT NULL,"
	"  sig BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS log_alarm("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  at INTEGER NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  had_log TEXT NOT NULL, had_size INTEGER NOT NULL,"
	"  had_root BLOB NOT NULL, had_time INTEGER NOT NULL,"
	"  had_sig BLOB NOT NULL,"
	"  got_log TEXT NOT NULL, got_size INTEGER NOT NULL,"
	"  got_root BLOB NOT NULL, got_time INTEGER NOT NULL,"
	"  got_sig BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS revoked("
	"  did BLOB PRIMARY KEY) WITHOUT ROWID;"
	"COMMIT;";

struct log_stmts {
	/* writer connection */
	sqlite3_stmt *w_size, *w_node_get, *w_node_put, *w_leaf_put;
	sqlite3_stmt *w_latest, *w_revoked, *w_revoke;
	sqlite3_stmt *w_head_put, *w_head_has, *w_cosig_n, *w_cosig_put;
	sqlite3_stmt *w_witness_put, *w_alarm_put;
	/* read connection */
	sqlite3_stmt *r_size, *r_node, *r_leaf, *r_entries, *r_find;
	sqlite3_stmt *r_head_latest, *r_head_get, *r_cosigs, *r_witness;
	sqlite3_stmt *r_alarms, *r_alarmed, *r_revoked;
};

typedef struct log_stmt_def {
	size_t off;
	bool read;
	const char *sql;
} log_stmt_def;

#define HEAD_COLS "size, time, root, log, sig"
#define ALARM_COLS "id, at, reason, had_log, had_size, had_root, had_time, " \
		   "had_sig, got_log, got_size, got_root, got_time, got_sig"

#define W(f, q) { offsetof(log_stmts, f), false, q }
#define R(f, q) { offsetof(log_stmts, f), true, q }
static const log_stmt_def log_stmt_defs[] = {
	W(w_size, "SELECT max(idx) FROM log_leaf"),
	W(w_node_get, "SELECT hash FROM log_node WHERE pos=?"),
	W(w_node_put, "INSERT INTO log_node(pos, hash) VALUES(?, ?)"),
	W(w_leaf_put, "INSERT INTO log_leaf(idx, subject, leaf) VALUES(?, ?, ?)"),
	W(w_latest, "SELECT max(idx) FROM log_leaf WHERE subject=?"),
	W(w_revoked, "SELECT 1 FROM revoked WHERE did=?"),
	W(w_revoke, "INSERT OR IGNORE INTO revoked(did) VALUES(?)"),
	W(w_head_put, "INSERT OR IGNORE INTO log_head(" HEAD_COLS ") "
		      "VALUES(?, ?, ?, ?, ?)"),
	W(w_head_has, "SELECT 1 FROM log_head WHERE size=?"),
	W(w_cosig_n, "SELECT count(*), "
		     "sum(witness=?2) FROM log_cosig WHERE size=?1"),
	W(w_cosig_put, "INSERT OR REPLACE INTO log_cosig(size, witness, time, "
		       "sig) VALUES(?, ?, ?, ?)"),
	W(w_witness_put, "INSERT OR REPLACE INTO witness(log, size, time, "
			 "root, sig) VALUES(?, ?, ?, ?, ?)"),
	W(w_alarm_put, "INSERT INTO log_alarm(at, reason, had_log, had_size, "
		       "had_root, had_time, had_sig, got_log, got_size, "
		       "got_root, got_time, got_sig) "
		       "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
	R(r_size, "SELECT max(idx) FROM log_leaf"),
	R(r_node, "SELECT hash FROM log_node WHERE pos=?"),
	R(r_leaf, "SELECT leaf FROM log_leaf WHERE idx=?"),
	R(r_entries, "SELECT idx, leaf FROM log_leaf WHERE idx>=? AND idx<? "
		     "ORDER BY idx"),
	R(r_find, "SELECT idx FROM log_leaf WHERE subject=? AND idx<? "
		  "ORDER BY idx LIMIT ?"),
	R(r_head_latest, "SELECT " HEAD_COLS " FROM log_head "
			 "ORDER BY size DESC LIMIT 1"),
	R(r_head_get, "SELECT " HEAD_COLS " FROM log_head WHERE size=?"),
	R(r_cosigs, "SELECT witness, time, sig FROM log_cosig WHERE size=? "
		    "ORDER BY witness LIMIT ?"),
	R(r_witness, "SELECT size, time, root, log, sig FROM witness "
		     "WHERE log=?"),
	R(r_alarms, "SELECT " ALARM_COLS " FROM log_alarm "
		    "ORDER BY id DESC LIMIT ?"),
	R(r_alarmed, "SELECT 1 FROM log_alarm WHERE had_log=?1 OR got_log=?1 "
		     "LIMIT 1"),
	R(r_revoked, "SELECT 1 FROM revoked WHERE did=?"),
};
#undef W
#undef R

static sqlite3_stmt **log_stmt_at(log_stmts *l, const log_stmt_def *d)
{
	return (sqlite3_stmt **)(void *)((char *)l + d->off);
}

/* A log job: one small write, synchronous (the caller's data is
 * borrowed). */
typedef enum lg_op {
	LG_HEAD_PUT,
	LG_COSIG_PUT,
	LG_WITNESS_PUT,
	LG_ALARM_PUT,
} lg_op;

struct lg_job {
	lg_op op;
	const amp_log_head *head;
	uint64_t size;
	const store_cosig *cosig;
	const store_alarm *alarm;
};

/* --------------------------------------------------------------- helpers */

static bool name_ok(const char *s, size_t max)
{
	if (s == NULL)
		return false;
	size_t n = strnlen(s, max + 1);
	return n > 0 && n <= max;
}

static bool head_ok(const amp_log_head *h)
{
	return h != NULL && name_ok(h->log, AMP_DID_MAX) && h->size <= INT64_MAX;
}

/* u64 <-> SQLite integer, every bit kept (times). */
static sqlite3_int64 bits64(uint64_t v)
{
	sqlite3_int64 r;
	memcpy(&r, &v, sizeof(r));
	return r;
}

static uint64_t unbits64(sqlite3_int64 v)
{
	uint64_t r;
	memcpy(&r, &v, sizeof(r));
	return r;
}

/* A blob column of exactly n bytes into out: 0, or -1. */
static int col_fixed(sqlite3_stmt *st, int i, uint8_t *out, size_t n)
{
	const void *p = sqlite3_column_blob(st, i); /* then its size */
	if (p == NULL || (size_t)sqlite3_column_bytes(st, i) != n)
		return -1;
	memcpy(out, p, n);
	return 0;
}

/* A text column of 1 .. max bytes without NUL into out[max + 1]. */
static int col_text(sqlite3_stmt *st, int i, char *out, size_t max)
{
	const unsigned char *p = sqlite3_column_text(st, i); /* then its size */
	size_t n = (size_t)sqlite3_column_bytes(st, i);
	if (p == NULL || n == 0 || n > max || memchr(p, 0, n) != NULL)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) == SQLITE_OK
		       ? 0 : -1;
}

/* Bind a head's five values at first .. first+4 as size, time, root, log,
 * sig (the order of HEAD_COLS; alarms use log, size, root, time, sig). */
static int bind_head(sqlite3_stmt *st, int first, const amp_log_head *h)
{
	sqlite3_bind_int64(st, first, (sqlite3_int64)h->size);
	sqlite3_bind_int64(st, first + 1, bits64(h->time));
	if (store_bind_blob(st, first + 2, h->root, 32) != 0 ||
	    bind_text(st, first + 3, h->log) != 0 ||
	    store_bind_blob(st, first + 4, h->sig, 64) != 0)
		return -1;
	return 0;
}

/* A head from columns size, time, root, log, sig at first ... */
static int col_head(sqlite3_stmt *st, int first, amp_log_head *h)
{
	memset(h, 0, sizeof(*h));
	sqlite3_int64 size = sqlite3_column_int64(st, first);
	if (size < 0)
		return -1;
	h->size = (uint64_t)size;
	h->time = unbits64(sqlite3_column_int64(st, first + 1));
	if (col_fixed(st, first + 2, h->root, 32) != 0 ||
	    col_text(st, first + 3, h->log, AMP_DID_MAX) != 0 ||
	    col_fixed(st, first + 4, h->sig, 64) != 0)
		return -1;
	return 0;
}

/* max(idx) + 1 of log_leaf by st: 0, or -1. */
static int read_size(sqlite3_stmt *st, uint64_t *size_r)
{
	sqlite3_reset(st);
	int rc = sqlite3_step(st), r = -1;
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
			*size_r = 0;
			r = 0;
		} else {
			sqlite3_int64 v = sqlite3_column_int64(st, 0);
			if (v >= 0 && v < INT64_MAX) {
				*size_r = (uint64_t)v + 1;
				r = 0;
			}
		}
	}
	sqlite3_reset(st);
	return r;
}

/* The row of the complete subtree at (level, index): its position in the
 * order appends create subtrees (post-order): the leaf that completes it
 * is last = (index + 1) * 2^level - 1, before which 2 last - popcount(last)
 * subtrees were made; the leaf itself comes first, then one per level.
 * -1 beyond the sizes a log can reach (< 2^62 leaves). */
static sqlite3_int64 node_pos(unsigned level, uint64_t index)
{
	if (level >= 62 || index >= (UINT64_C(1) << (62 - level)))
		return -1;
	uint64_t last = ((index + 1) << level) - 1;
	return (sqlite3_int64)(2 * last - (uint64_t)__builtin_popcountll(last) +
			       level);
}

/* amp_log_node_fn over a "SELECT hash FROM log_node WHERE pos=?"
 * statement (ctx). */
static int node_read(void *ctx, unsigned level, uint64_t index,
		     uint8_t out[32])
{
	sqlite3_stmt *st = ctx;
	sqlite3_int64 pos = node_pos(level, index);
	if (pos < 0)
		return -1;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, pos);
	int r = -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		r = col_fixed(st, 0, out, 32);
	sqlite3_reset(st);
	return r;
}

/* MTH of the first size leaves from the node table behind st. */
static int root_at(sqlite3_stmt *st, uint64_t size, uint8_t root[32])
{
	if (size == 0) {
		amp_log_empty_root(root);
		return 0;
	}
	return amp_log_root(size, node_read, st, root) == AMP_OK ? 0 : -1;
}

int store_log_leaf_check(const uint8_t *leaf, size_t len, amp_log_type type,
			 const char *did)
{
	if (leaf == NULL || len < LEAF_MIN || len > AMP_LOG_LEAF_MAX)
		return -1;
	amp_log_leaf l;
	const char *err = NULL;
	if (amp_log_leaf_decode(leaf, len, &l, &err) != AMP_OK ||
	    l.type != type ||
	    memcmp(l.subject, leaf + LOG_SUBJECT_OFF, 32) != 0)
		return -1;
	if (did != NULL) {
		uint8_t h[32];
		amp_log_did_hash(did, h);
		if (memcmp(h, l.subject, 32) != 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------- writer thread */

static int node_emit(void *ctx, unsigned level, uint64_t index,
		     const uint8_t hash[32])
{
	store *s = ctx;
	sqlite3_stmt *st = s->lg->w_node_put;
	sqlite3_int64 pos = node_pos(level, index);
	if (pos < 0)
		return -1;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, pos);
	if (store_bind_blob(st, 2, hash, 32) != 0)
		return -1;
	return store_step_done(st);
}

int store_log_append(store *s, const uint8_t *leaf, size_t len,
		     uint64_t *index_r)
{
	log_stmts *l = s->lg;
	if (leaf == NULL || len < LEAF_MIN || len > AMP_LOG_LEAF_MAX)
		return -1;
	uint64_t size;
	if (read_size(l->w_size, &size) != 0 || size >= INT64_MAX)
		return -1;
	/* The frontier: the complete subtree of 2^level leaves for each set
	 * bit of size, the largest first in the tree. */
	amp_log_frontier f;
	amp_log_frontier_init(&f);
	f.size = size;
	for (unsigned level = 0; level < AMP_LOG_LEVELS; level++) {
		if ((size >> level & 1) != 0 &&
		    node_read(l->w_node_get, level, (size >> level) - 1,
			      f.hash[level]) != 0)
			return -1; /* a missing subtree: corrupt */
	}
	uint8_t h[32];
	amp_log_leaf_hash(leaf, len, h);
	if (amp_log_frontier_push(&f, h, node_emit, s) != AMP_OK)
		return -1;
	sqlite3_stmt *st = l->w_leaf_put;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
	if (store_bind_blob(st, 2, leaf + LOG_SUBJECT_OFF, 32) != 0 ||
	    store_bind_blob(st, 3, leaf, len) != 0 || store_step_done(st) != 0)
		return -1;
	*index_r = size;
	return 0;
}

int store_log_latest(store *s, const uint8_t subject[32], uint64_t *index_r)
{
	sqlite3_stmt *st = s->lg->w_latest;
	sqlite3_reset(st);
	if (store_bind_blob(st, 1, subject, 32) != 0)
		return -1;
	int rc = sqlite3_step(st), r = -1;
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
			r = 0;
		} else {
			sqlite3_int64 v = sqlite3_column_int64(st, 0);
			if (v >= 0) {
				*index_r = (uint64_t)v;
				r = 1;
			}
		}
	}
	sqlite3_reset(st);
	return r;
}

int store_log_is_revoked(store *s, const uint8_t did[32])
{
	sqlite3_stmt *st = s->lg->w_revoked;
	sqlite3_reset(st);
	if (store_bind_blob(st, 1, did, 32) != 0)
		return -1;
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int store_log_revoke(store *s, const uint8_t did[32])
{
	sqlite3_stmt *st = s->lg->w_revoke;
	sqlite3_reset(st);
	if (store_bind_blob(st, 1, did, 32) != 0)
		return -1;
	return store_step_done(st);
}

/* Store a head we signed: its size must be within the log and its root
 * the log's root at that size (a head that no proof could match is a
 * bug upstream).  A size stored already is kept as it was. */
static int run_head_put(store *s, const amp_log_head *h)
{
	log_stmts *l = s->lg;
	uint64_t size;
	uint8_t root[32];
	if (read_size(l->w_size, &size) != 0 || h->size > size ||
	    root_at(l->w_node_get, h->size, root) != 0 ||
	    sodium_memcmp(root, h->root, 32) != 0)
		return -1;
	sqlite3_stmt *st = l->w_head_put;
	sqlite3_reset(st);
	if (bind_head(st, 1, h) != 0)
		return -1;
	return store_step_done(st);
}

static int run_cosig_put(store *s, uint64_t size, const store_cosig *c)
{
	log_stmts *l = s->lg;
	sqlite3_stmt *st = l->w_head_has;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return -1; /* no head of that size, or an error */
	st = l->w_cosig_n;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
	if (bind_text(st, 2, c->witness) != 0)
		return -1;
	rc = sqlite3_step(st);
	sqlite3_int64 n = 0, mine = 0;
	if (rc == SQLITE_ROW) {
		n = sqlite3_column_int64(st, 0);
		mine = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW || (mine == 0 && n >= STORE_COSIG_MAX))
		return -1; /* an error, or a new witness beyond the bound */
	st = l->w_cosig_put;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
	sqlite3_bind_int64(st, 3, bits64(c->time));
	if (bind_text(st, 2, c->witness) != 0 ||
	    store_bind_blob(st, 4, c->sig, 64) != 0)
		return -1;
	return store_step_done(st);
}

static int run_witness_put(store *s, const amp_log_head *h)
{
	sqlite3_stmt *st = s->lg->w_witness_put;
	sqlite3_reset(st);
	if (bind_text(st, 1, h->log) != 0)
		return -1;
	sqlite3_bind_int64(st, 2, (sqlite3_int64)h->size);
	sqlite3_bind_int64(st, 3, bits64(h->time));
	if (store_bind_blob(st, 4, h->root, 32) != 0 ||
	    store_bind_blob(st, 5, h->sig, 64) != 0)
		return -1;
	return store_step_done(st);
}

/* Bind log, size, root, time, sig of one alarm head at first ... */
static int bind_alarm_head(sqlite3_stmt *st, int first, const amp_log_head *h)
{
	if (bind_text(st, first, h->log) != 0)
		return -1;
	sqlite3_bind_int64(st, first + 1, (sqlite3_int64)h->size);
	sqlite3_bind_int64(st, first + 3, bits64(h->time));
	if (store_bind_blob(st, first + 2, h->root, 32) != 0 ||
	    store_bind_blob(st, first + 4, h->sig, 64) != 0)
		return -1;
	return 0;
}

static int run_alarm_put(store *s, const store_alarm *a)
{
	sqlite3_stmt *st = s->lg->w_alarm_put;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, bits64(a->at));
	if (bind_text(st, 2, a->reason) != 0 ||
	    bind_alarm_head(st, 3, &a->had) != 0 ||
	    bind_alarm_head(st, 8, &a->got) != 0)
		return -1;
	return store_step_done(st);
}

int store_log_run(store *s, job *j)
{
	lg_job *g = j->lg;
	switch (g->op) {
	case LG_HEAD_PUT:
		return run_head_put(s, g->head);
	case LG_COSIG_PUT:
		return run_cosig_put(s, g->size, g->cosig);
	case LG_WITNESS_PUT:
		return run_witness_put(s, g->head);
	case LG_ALARM_PUT:
		return run_alarm_put(s, g->alarm);
	}
	return -1;
}

static int lg_run_sync(store *s, lg_job *g)
{
	job j;
	memset(&j, 0, sizeof(j));
	j.kind = JOB_LOG;
	j.lg = g;
	return store_run_sync(s, &j) == 0 ? 0 : -1;
}

/* --------------------------------------------------------- lifecycle */

const char *store_log_open(store *s)
{
	if (!store_exec_ok(s->wdb, log_schema_sql)) {
		store_exec_ok(s->wdb, "ROLLBACK");
		return "cannot create the transparency log tables";
	}
	s->lg = calloc(1, sizeof(*s->lg));
	if (s->lg == NULL)
		return "out of memory";
	for (size_t i = 0; i < sizeof(log_stmt_defs) / sizeof(log_stmt_defs[0]);
	     i++) {
		const log_stmt_def *d = &log_stmt_defs[i];
		if (sqlite3_prepare_v2(d->read ? s->rdb : s->wdb, d->sql, -1,
				       log_stmt_at(s->lg, d), NULL) != SQLITE_OK)
			return "cannot prepare the transparency log statements";
	}
	return NULL;
}

void store_log_close(store *s)
{
	if (s->lg == NULL)
		return;
	for (size_t i = 0; i < sizeof(log_stmt_defs) / sizeof(log_stmt_defs[0]);
	     i++) {
		sqlite3_stmt **st = log_stmt_at(s->lg, &log_stmt_defs[i]);
		sqlite3_finalize(*st);
		*st = NULL;
	}
	free(s->lg);
	s->lg = NULL;
}

/* -------------------------------------------------------- public API */

int store_log_state(store *s, uint64_t *size_r, uint8_t root[32])
{
	if (s == NULL || size_r == NULL || root == NULL)
		return -1;
	uint64_t size;
	pthread_mutex_lock(&s->rlock);
	int r = read_size(s->lg->r_size, &size);
	if (r == 0)
		r = root_at(s->lg->r_node, size, root);
	pthread_mutex_unlock(&s->rlock);
	if (r == 0)
		*size_r = size;
	return r;
}

int store_log_leaf(store *s, uint64_t index, uint8_t **leaf_r, size_t *len_r)
{
	if (s == NULL || leaf_r == NULL || len_r == NULL)
		return -1;
	if (index > INT64_MAX)
		return 0;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->lg->r_leaf;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)index);
	int rc = sqlite3_step(st), r;
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 0); /* then its size */
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		uint8_t *copy = n > 0 && n <= AMP_LOG_LEAF_MAX ? malloc(n)
							       : NULL;
		r = -1;
		if (copy != NULL && p != NULL) {
			memcpy(copy, p, n);
			*leaf_r = copy;
			*len_r = n;
			r = 1;
		} else {
			free(copy);
		}
	} else {
		r = rc == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->rlock);
	return r;
}

void store_log_leaves_free(uint8_t **leaves, size_t *lens, size_t n)
{
	if (leaves != NULL) {
		for (size_t i = 0; i < n; i++)
			free(leaves[i]);
	}
	free(leaves);
	free(lens);
}

int store_log_entries(store *s, uint64_t start, unsigned count,
		      uint8_t ***leaves_r, size_t **lens_r, size_t *n_r)
{
	if (s == NULL || leaves_r == NULL || lens_r == NULL || n_r == NULL ||
	    count > STORE_LOG_ENTRIES_MAX)
		return -1;
	*leaves_r = NULL;
	*lens_r = NULL;
	*n_r = 0;
	if (count == 0 || start > INT64_MAX)
		return 0;
	uint8_t **leaves = calloc(count, sizeof(*leaves));
	size_t *lens = calloc(count, sizeof(*lens));
	if (leaves == NULL || lens == NULL) {
		free(leaves);
		free(lens);
		return -1;
	}
	size_t n = 0;
	int r = 0;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->lg->r_entries;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)start);
	sqlite3_bind_int64(st, 2, clamp64(start + count));
	for (;;) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		const void *p = rc == SQLITE_ROW ? sqlite3_column_blob(st, 1)
						 : NULL; /* then its size */
		size_t len = p != NULL ? (size_t)sqlite3_column_bytes(st, 1) : 0;
		if (p == NULL || len > AMP_LOG_LEAF_MAX || n >= count ||
		    (leaves[n] = malloc(len)) == NULL) {
			r = -1;
			break;
		}
		memcpy(leaves[n], p, len);
		lens[n++] = len;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->rlock);
	if (r != 0 || n == 0) {
		store_log_leaves_free(leaves, lens, n);
		return r;
	}
	*leaves_r = leaves;
	*lens_r = lens;
	*n_r = n;
	return 0;
}

int store_log_find(store *s, const uint8_t subject[32], uint64_t below,
		   uint64_t *idx, size_t max, size_t *n_r)
{
	if (s == NULL || subject == NULL || n_r == NULL ||
	    (max > 0 && idx == NULL))
		return -1;
	*n_r = 0;
	if (max == 0 || below == 0)
		return 0;
	size_t n = 0;
	int r = 0;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->lg->r_find;
	sqlite3_reset(st);
	sqlite3_bind_blob(st, 1, subject, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, clamp64(below));
	sqlite3_bind_int64(st, 3, clamp64(max));
	for (;;) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		sqlite3_int64 v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0)
						   : -1;
		if (v < 0 || n >= max) {
			r = -1;
			break;
		}
		idx[n++] = (uint64_t)v;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->rlock);
	if (r == 0)
		*n_r = n;
	return r;
}

/* A proof over the committed tree, the larger size (b) within it:
 * inclusion of leaf a in the first b leaves, or consistency from a to b. */
static int proof_read(store *s, bool consistency, uint64_t a, uint64_t b,
		      uint8_t path[][32], size_t *n_r)
{
	if (s == NULL || path == NULL || n_r == NULL)
		return -1;
	uint64_t committed;
	pthread_mutex_lock(&s->rlock);
	int r = read_size(s->lg->r_size, &committed);
	amp_err e = AMP_E_INVALID_ARG;
	if (r == 0 && b <= committed)
		e = consistency
			? amp_log_consistency_proof(a, b, node_read, s->lg->r_node,
						    path, n_r)
			: amp_log_inclusion_proof(a, b, node_read, s->lg->r_node,
						  path, n_r);
	if (e != AMP_OK)
		r = -1;
	pthread_mutex_unlock(&s->rlock);
	return r;
}

int store_log_inclusion(store *s, uint64_t index, uint64_t size,
			uint8_t path[][32], size_t *n_r)
{
	return proof_read(s, false, index, size, path, n_r);
}

int store_log_consistency(store *s, uint64_t first, uint64_t second,
			  uint8_t path[][32], size_t *n_r)
{
	return proof_read(s, true, first, second, path, n_r);
}

int store_log_head_put(store *s, const amp_log_head *h)
{
	if (s == NULL || !head_ok(h))
		return -1;
	lg_job g = { .op = LG_HEAD_PUT, .head = h };
	return lg_run_sync(s, &g);
}

/* One head by st (bound already; reset after; the caller holds
 * s->rlock): 1, 0 none, -1. */
static int head_read(sqlite3_stmt *st, amp_log_head *h_r)
{
	int rc = sqlite3_step(st), r;
	if (rc == SQLITE_ROW)
		r = col_head(st, 0, h_r) == 0 ? 1 : -1;
	else
		r = rc == SQLITE_DONE ? 0 : -1;
	sqlite3_reset(st);
	return r;
}

int store_log_head_latest(store *s, amp_log_head *h_r)
{
	if (s == NULL || h_r == NULL)
		return -1;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->lg->r_head_latest;
	sqlite3_reset(st);
	int r = head_read(st, h_r);
	pthread_mutex_unlock(&s->rlock);
	return r;
}

int store_log_head_get(store *s, uint64_t size, amp_log_head *h_r)
{
	if (s == NULL || h_r == NULL)
		return -1;
	if (size > INT64_MAX)
		return 0;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->lg->r_head_get;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
	int r = head_read(st, h_r);
	pthread_mutex_unlock(&s->rlock);
	return r;
}

int store_log_cosig_put(store *s, uint64_t size, const store_cosig *c)
{
	if (s == NULL || c == NULL || size > INT64_MAX ||
	    !name_ok(c->witness, AMP_DID_MAX))
		return -1;
	lg_job g = { .op = LG_COSIG_PUT, .size = size, .cosig = c };
	return lg_run_sync(s, &g);
}

int store_log_cosigs(store *s, uint64_t size, store_cosig *out, size_t max,
		     size_t *n_r)
{
	if (s == NULL || n_r == NULL || (max > 0 && out == NULL))
		return -1;
	*n_r = 0;
	if (max > STORE_COSIG_MAX)
		max = STORE_COSIG_MAX;
	if (max == 0 || size > INT64_MAX)
		return 0;
	size_t n = 0;
	int r = 0;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->lg->r_cosigs;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	for (;;) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW || n >= max) {
			r = -1;
			break;
		}
		store_cosig *c = &out[n];
		memset(c, 0, sizeof(*c));
		c->time = unbits64(sqlite3_column_int64(st, 1));
		if (col_text(st, 0, c->witness, AMP_DID_MAX) != 0 ||
		    col_fixed(st, 2, c->sig, 64) != 0) {
			r = -1;
			break;
		}
		n++;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->rlock);
	if (r == 0)
		*n_r = n;
	return r;
}

int store_witness_get(store *s, const char *log, amp_log_head *h_r)
{
	if (s == NULL || h_r == NULL || !name_ok(log, AMP_DID_MAX))
		return -1;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->lg->r_witness;
	sqlite3_reset(st);
	int r = bind_text(st, 1, log) == 0 ? head_read(st, h_r) : -1;
	pthread_mutex_unlock(&s->rlock);
	return r;
}

int store_witness_put(store *s, const amp_log_head *h)
{
	if (s == NULL || !head_ok(h))
		return -1;
	lg_job g = { .op = LG_WITNESS_PUT, .head = h };
	return lg_run_sync(s, &g);
}

int store_log_alarm_put(store *s, const store_alarm *a)
{
	if (s == NULL || a == NULL || !head_ok(&a->had) || !head_ok(&a->got) ||
	    memchr(a->reason, 0, sizeof(a->reason)) == NULL)
		return -1;
	lg_job g = { .op = LG_ALARM_PUT, .alarm = a };
	return lg_run_sync(s, &g);
}

/* An alarm head from columns log, size, root, time, sig at first ... */
static int col_alarm_head(sqlite3_stmt *st, int first, amp_log_head *h)
{
	memset(h, 0, sizeof(*h));
	sqlite3_int64 size = sqlite3_column_int64(st, first + 1);
	if (size < 0 || col_text(st, first, h->log, AMP_DID_MAX) != 0 ||
	    col_fixed(st, first + 2, h->root, 32) != 0 ||
	    col_fixed(st, first + 4, h->sig, 64) != 0)
		return -1;
	h->size = (uint64_t)size;
	h->time = unbits64(sqlite3_column_int64(st, first + 3));
	return 0;
}

int store_log_alarms(store *s, store_alarm *out, size_t max, size_t *n_r)
{
	if (s == NULL || n_r == NULL || (max > 0 && out == NULL))
		return -1;
	*n_r = 0;
	if (max == 0)
		return 0;
	size_t n = 0;
	int r = 0;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->lg->r_alarms;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, clamp64(max));
	for (;;) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW || n >= max) {
			r = -1;
			break;
		}
		store_alarm *a = &out[n];
		memset(a, 0, sizeof(*a));
		a->id = (uint64_t)sqlite3_column_int64(st, 0);
		a->at = unbits64(sqlite3_column_int64(st, 1));
		const unsigned char *reason = sqlite3_column_text(st, 2);
		size_t rlen = (size_t)sqlite3_column_bytes(st, 2);
		if (reason == NULL || rlen >= sizeof(a->reason) ||
		    col_alarm_head(st, 3, &a->had) != 0 ||
		    col_alarm_head(st, 8, &a->got) != 0) {
			r = -1;
			break;
		}
		memcpy(a->reason, reason, rlen);
		a->reason[rlen] = '\0';
		n++;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->rlock);
	if (r == 0)
		*n_r = n;
	return r;
}

int store_log_alarmed(store *s, const char *log)
{
	if (s == NULL || !name_ok(log, AMP_DID_MAX))
		return -1;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->lg->r_alarmed;
	sqlite3_reset(st);
	int rc = bind_text(st, 1, log) == 0 ? sqlite3_step(st) : SQLITE_ERROR;
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->rlock);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int store_identity_revoked(store *s, const char *did)
{
	if (s == NULL || !name_ok(did, AMP_DID_MAX))
		return -1;
	uint8_t h[32];
	store_did_hash(s, "identity", did, h);
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->lg->r_revoked;
	sqlite3_reset(st);
	sqlite3_bind_blob(st, 1, h, 32, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->rlock);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}
