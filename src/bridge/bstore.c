/*
 * bstore.c — the local mail store of `amp bridge` (bstore.h): mailboxes,
 * messages and the sync state in one SQLite database, exported to the
 * IMAP session as imap_mbox_ops (imap-mbox.h).  Owns the database handle,
 * its prepared statements, a copy of the store key and the last opened
 * cache blob; calls SQLite, libsodium and imap_msg_analyze (imap-msg.h),
 * nothing else.  One thread (the bridge's loop) uses a store at a time.
 *
 * File: created 0600 (opened with O_NOFOLLOW, made 0600 when it exists),
 * its directory created 0700 when missing, flock()ed while open (one
 * process: a second open fails "in use"); journal_mode=WAL,
 * synchronous=FULL: every change is one BEGIN IMMEDIATE ... COMMIT and
 * is on disk when the call returns.
 *
 * Tables (PRAGMA user_version = 1):
 *   mailbox(id, name, uidvalidity, uidnext, special, subscribed, messages)
 *   message(id AUTOINCREMENT, mailbox, uid, flags, internaldate, tz, size,
 *           sent, body, cache, envelope_id)   UNIQUE(mailbox, uid)
 *   uidfloor(name, uidnext)    the UIDNEXT a deleted (or renamed away)
 *                              name had: a new mailbox of that name starts
 *                              there, so UIDNEXT never goes back
 *   delivered(envelope_id, at) node deliveries stored (kept after the
 *                              message is expunged or moved)
 *   keyword(idx, name)         the keyword table, idx 0..n-1
 *   state(k, v)                'cursor', 'uidvalidity' (the last one
 *                              given), 'check' (the key check blob)
 *
 * Sealing: blob = nonce(24) ‖ crypto_secretbox_easy(pt, nonce, subkey)
 * with a fresh random nonce per blob and subkey = crypto_kdf(store key,
 * subkey id = the message's row id, context "bstbody1" for the bytes,
 * "bstcach1" for the cache).  Row ids come from AUTOINCREMENT and are
 * never reused, so a blob copied or swapped into another row does not
 * open (error "sealed data does not open ...").  COPY re-seals under the
 * new row's id; MOVE and RENAME INBOX keep the row (and its seal).  The
 * cache plaintext is ENVELOPE NUL BODYSTRUCTURE NUL BODY NUL.  The check
 * blob: "amp bridge store 1" under subkey 0 of context "bstchck1".
 * In clear: mailbox names, UIDs, flags, dates, sizes, envelope ids.
 *
 * Mailboxes: the seven of bstore.h made with the database.  INBOX, the
 * special-use mailboxes and Unverified can be neither deleted nor renamed
 * (RENAME INBOX moves its messages, RFC 3501 §6.3.5; not under INBOX, as
 * Dovecot).  A parent level without a mailbox of its own is listed
 * \Noselect; RENAME of it moves its inferiors, DELETE of it is
 * NONEXISTENT (Dovecot's maildir does the same).
 *
 * Limits: a message 1..BSTORE_MSG_MAX bytes; BSTORE_MAILBOXES_MAX
 * mailboxes, BSTORE_DEPTH_MAX levels per name; BSTORE_MESSAGES_MAX
 * messages per mailbox (a view is 12 bytes per message); UIDs and
 * UIDVALIDITY below 2^32.  Beyond these a call fails with -1.
 */
#include "bstore.h"

#include "imap-msg.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 1
#define NONCE crypto_secretbox_NONCEBYTES
#define MAC crypto_secretbox_MACBYTES
#define CTX_BODY "bstbody1"
#define CTX_CACHE "bstcach1"
#define CTX_CHECK "bstchck1"
#define CHECK_TEXT "amp bridge store 1"

_Static_assert(BSTORE_KEY_BYTES == crypto_kdf_KEYBYTES, "store key size");
_Static_assert(crypto_kdf_BYTES_MIN <= crypto_secretbox_KEYBYTES &&
	       crypto_secretbox_KEYBYTES <= crypto_kdf_BYTES_MAX, "subkey");
_Static_assert(BSTORE_MSG_MAX + NONCE + MAC < INT_MAX, "blob size");
_Static_assert(IMAP_MSG_CACHE_MAX + 3 + NONCE + MAC < INT_MAX, "cache size");

/* One process uses the store (flock, below): exclusive locking saves the
 * file-lock calls of every statement and keeps the WAL index in memory
 * (it must come before journal_mode); a 32 MiB page cache and reads
 * through mmap keep FETCH 1:* of a large mailbox off pread. */
static const char pragma_sql[] =
	"PRAGMA locking_mode=EXCLUSIVE;"
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=FULL;"
	"PRAGMA cache_size=-32768;"
	"PRAGMA mmap_size=268435456;";

static const char schema_sql[] =
	"CREATE TABLE mailbox("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  uidvalidity INTEGER NOT NULL,"
	"  uidnext INTEGER NOT NULL,"
	"  special INTEGER NOT NULL,"
	"  subscribed INTEGER NOT NULL,"
	"  messages INTEGER NOT NULL);"
	"CREATE TABLE message("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  mailbox INTEGER NOT NULL,"
	"  uid INTEGER NOT NULL,"
	"  flags INTEGER NOT NULL,"
	"  internaldate INTEGER NOT NULL,"
	"  tz INTEGER NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  sent INTEGER,"
	"  envelope_id BLOB,"
	/* the cache before the body: reading a column SQLite has to walk
	 * the overflow pages of every column before it */
	"  cache BLOB NOT NULL,"
	"  body BLOB NOT NULL,"
	"  UNIQUE(mailbox, uid));"
	"CREATE TABLE uidfloor("
	"  name TEXT PRIMARY KEY,"
	"  uidnext INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE delivered("
	"  envelope_id BLOB PRIMARY KEY,"
	"  at INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE keyword("
	"  idx INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE);"
	"CREATE TABLE state("
	"  k TEXT PRIMARY KEY,"
	"  v) WITHOUT ROWID;"
	"PRAGMA user_version=1;";

enum stmt {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_MBOX_GET, S_MBOX_COUNT, S_MBOX_INSERT, S_MBOX_DELETE,
	S_MBOX_NEXT, S_MBOX_ADJ, S_MBOX_RENAME, S_MBOX_SUB, S_MBOX_LIST,
	S_FLOOR_GET, S_FLOOR_PUT,
	S_MSG_CACHED, S_MSG_BODY, S_MSG_GET, S_MSG_INSERT, S_MSG_SEAL,
	S_MSG_FLAGS, S_MSG_MOVE, S_MSG_DEL, S_MSG_DEL_ALL, S_MSG_UIDS,
	S_MSG_UNSEEN, S_VIEW,
	S_DELIV_FIND, S_DELIV_PUT,
	S_KW_LIST, S_KW_PUT,
	S_STATE_GET, S_STATE_SET,
	S_NSTMT
};

static const char *const stmt_sql[S_NSTMT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_MBOX_GET] = "SELECT id, uidvalidity, uidnext, special, messages "
		       "FROM mailbox WHERE name=?",
	[S_MBOX_COUNT] = "SELECT count(*) FROM mailbox",
	[S_MBOX_INSERT] = "INSERT INTO mailbox(name, uidvalidity, uidnext, "
			  "special, subscribed, messages) "
			  "VALUES(?, ?, ?, ?, ?, 0)",
	[S_MBOX_DELETE] = "DELETE FROM mailbox WHERE id=?",
	[S_MBOX_NEXT] = "UPDATE mailbox SET uidnext=?2 WHERE id=?1",
	[S_MBOX_ADJ] = "UPDATE mailbox SET messages=messages+?2 WHERE id=?1",
	[S_MBOX_RENAME] = "UPDATE mailbox SET name=?2, uidnext=max(uidnext, "
			  "coalesce((SELECT uidnext FROM uidfloor "
			  "WHERE name=?2), 1)) WHERE id=?1",
	[S_MBOX_SUB] = "UPDATE mailbox SET subscribed=?2 WHERE name=?1",
	[S_MBOX_LIST] = "SELECT name, special, subscribed FROM mailbox",
	[S_FLOOR_GET] = "SELECT uidnext FROM uidfloor WHERE name=?",
	[S_FLOOR_PUT] = "INSERT INTO uidfloor(name, uidnext) VALUES(?1, ?2) "
			"ON CONFLICT(name) DO UPDATE SET "
			"uidnext=max(uidnext, excluded.uidnext)",
	/* the hot path of FETCH: one indexed lookup */
	[S_MSG_CACHED] = "SELECT id, internaldate, tz, size, sent, cache "
			 "FROM message WHERE mailbox=(SELECT id FROM mailbox "
			 "WHERE name=?1) AND uid=?2",
	[S_MSG_BODY] = "SELECT id, body FROM message WHERE mailbox=(SELECT id "
		       "FROM mailbox WHERE name=?1) AND uid=?2",
	[S_MSG_GET] = "SELECT id, flags, internaldate, tz, size, sent, body, "
		      "cache, envelope_id FROM message WHERE mailbox=? AND uid=?",
	[S_MSG_INSERT] = "INSERT INTO message(mailbox, uid, flags, "
			 "internaldate, tz, size, sent, body, cache, "
			 "envelope_id) VALUES(?, ?, ?, ?, ?, ?, ?, x'', x'', ?)",
	[S_MSG_SEAL] = "UPDATE message SET body=?2, cache=?3 WHERE id=?1",
	[S_MSG_FLAGS] = "UPDATE message SET flags=?2 WHERE id=?1",
	[S_MSG_MOVE] = "UPDATE message SET mailbox=?2, uid=?3 WHERE id=?1",
	[S_MSG_DEL] = "DELETE FROM message WHERE id=?",
	[S_MSG_DEL_ALL] = "DELETE FROM message WHERE mailbox=?",
	[S_MSG_UIDS] = "SELECT id FROM message WHERE mailbox=? ORDER BY uid",
	[S_MSG_UNSEEN] = "SELECT count(*) FROM message WHERE mailbox=? AND "
			 "(flags & 1)=0",
	[S_VIEW] = "SELECT uid, flags FROM message WHERE mailbox=? ORDER BY uid",
	[S_DELIV_FIND] = "SELECT 1 FROM delivered WHERE envelope_id=?",
	[S_DELIV_PUT] = "INSERT INTO delivered(envelope_id, at) VALUES(?, ?)",
	[S_KW_LIST] = "SELECT idx, name FROM keyword ORDER BY idx",
	[S_KW_PUT] = "INSERT INTO keyword(idx, name) VALUES(?, ?)",
	[S_STATE_GET] = "SELECT v FROM state WHERE k=?",
	[S_STATE_SET] = "INSERT OR REPLACE INTO state(k, v) VALUES(?, ?)",
};

struct bstore {
	sqlite3 *db;
	int lock_fd;              /* the file, flock()ed: one process */
	sqlite3_stmt *st[S_NSTMT];
	uint8_t key[BSTORE_KEY_BYTES];
	uint64_t generation;
	size_t nkw;
	char *kw[IMAP_KEYWORDS_MAX];
	const char *kwp[IMAP_KEYWORDS_MAX];
	uint8_t *cache;           /* the last cached() plaintext */
	size_t cache_cap;
};

/* A mailbox row. */
typedef struct mbox {
	int64_t id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	imap_special special;
	int64_t messages;
} mbox;

static const struct {
	const char *name;
	imap_special special;
} initial[] = {
	{ "INBOX", IMAP_SPECIAL_NONE },
	{ "Sent", IMAP_SPECIAL_SENT },
	{ "Drafts", IMAP_SPECIAL_DRAFTS },
	{ "Trash", IMAP_SPECIAL_TRASH },
	{ "Junk", IMAP_SPECIAL_JUNK },
	{ "Archive", IMAP_SPECIAL_ARCHIVE },
	{ BSTORE_UNVERIFIED, IMAP_SPECIAL_NONE },
};

static const char E_DB[] = "store database error";
static const char E_NOMEM[] = "out of memory";
static const char E_NOBOX[] = "no such mailbox";
static const char E_EXISTS[] = "mailbox already exists";
static const char E_SEAL[] = "sealed data does not open (damaged, or moved "
			     "from another message)";

/* --------------------------------------------------------------- helpers */

static void free_wiped(void *p, size_t len)
{
	if (p == NULL)
		return;
	sodium_memzero(p, len);
	free(p);
}

static sqlite3_stmt *stmt(bstore *b, enum stmt i)
{
	sqlite3_reset(b->st[i]);
	sqlite3_clear_bindings(b->st[i]);
	return b->st[i];
}

/* Step a statement that returns no row. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) == SQLITE_OK
		       ? 0 : -1;
}

static int bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
	if (n > INT_MAX)
		return -1;
	return sqlite3_bind_blob(st, i, p, (int)n, SQLITE_STATIC) == SQLITE_OK
		       ? 0 : -1;
}

static int bind_i64(sqlite3_stmt *st, int i, int64_t v)
{
	return sqlite3_bind_int64(st, i, v) == SQLITE_OK ? 0 : -1;
}

static int tx_begin(bstore *b)
{
	return step_done(stmt(b, S_BEGIN));
}

static void tx_rollback(bstore *b)
{
	if (!sqlite3_get_autocommit(b->db))
		(void)step_done(stmt(b, S_ROLLBACK));
}

/* Commit (durable when it returns 0); on failure nothing was stored. */
static int tx_commit(bstore *b)
{
	if (step_done(stmt(b, S_COMMIT)) != 0) {
		tx_rollback(b);
		return -1;
	}
	b->generation++;
	return 0;
}

/* Fail the running transaction with err (rc: -1 or an IMAP_MBOX_ code). */
static int tx_fail(bstore *b, int rc, const char *err, const char **error_r)
{
	tx_rollback(b);
	if (error_r != NULL)
		*error_r = err;
	return rc;
}

static bool name_ok(const char *name)
{
	return name != NULL && name[0] != '\0' &&
	       strnlen(name, IMAP_MBOX_NAME_MAX + 1) <= IMAP_MBOX_NAME_MAX;
}

static size_t levels(const char *name)
{
	size_t n = 1;
	for (const char *p = name; *p != '\0'; p++)
		n += *p == '/';
	return n;
}

/* Look a mailbox up: 1 found, 0 not there, -1 error. */
static int mbox_get(bstore *b, const char *name, mbox *m)
{
	sqlite3_stmt *st = stmt(b, S_MBOX_GET);
	if (bind_text(st, 1, name) != 0)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		m->id = sqlite3_column_int64(st, 0);
		m->uidvalidity = (uint32_t)sqlite3_column_int64(st, 1);
		m->uidnext = (uint32_t)sqlite3_column_int64(st, 2);
		m->special = (imap_special)sqlite3_column_int(st, 3);
		m->messages = sqlite3_column_int64(st, 4);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* A mailbox that must exist: 0, or the error code with *error_r set. */
static int mbox_need(bstore *b, const char *name, mbox *m,
		     const char **error_r)
{
	if (!name_ok(name)) {
		*error_r = E_NOBOX;
		return IMAP_MBOX_NONEXISTENT;
	}
	int r = mbox_get(b, name, m);
	if (r == 1)
		return 0;
	*error_r = r == 0 ? E_NOBOX : E_DB;
	return r == 0 ? IMAP_MBOX_NONEXISTENT : -1;
}

static bool fixed_mailbox(const char *name, const mbox *m)
{
	return strcmp(name, "INBOX") == 0 || m->special != IMAP_SPECIAL_NONE ||
	       strcmp(name, BSTORE_UNVERIFIED) == 0;
}

static int state_get_i64(bstore *b, const char *k, int64_t *v_r, bool *found)
{
	sqlite3_stmt *st = stmt(b, S_STATE_GET);
	if (bind_text(st, 1, k) != 0)
		return -1;
	int rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (*found)
		*v_r = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int state_set_i64(bstore *b, const char *k, int64_t v)
{
	sqlite3_stmt *st = stmt(b, S_STATE_SET);
	if (bind_text(st, 1, k) != 0 || bind_i64(st, 2, v) != 0)
		return -1;
	return step_done(st);
}

/* The flags a message may carry: system flags and defined keywords. */
static uint64_t flags_mask(const bstore *b)
{
	uint64_t m = IMAP_FLAG_SYSTEM;
	for (size_t i = 0; i < b->nkw; i++)
		m |= IMAP_FLAG_KEYWORD(i);
	return m;
}

static int32_t local_tz(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (localtime_r(&tt, &tm) == NULL)
		return 0;
	return (int32_t)(tm.tm_gmtoff / 60);
}

/* --------------------------------------------------------------- sealing */

static void subkey(const bstore *b, const char *ctx, uint64_t id,
		   uint8_t k[crypto_secretbox_KEYBYTES])
{
	crypto_kdf_derive_from_key(k, crypto_secretbox_KEYBYTES, id, ctx,
				   b->key);
}

/* Seal pt under (ctx, id) into a new blob (free with free()). */
static uint8_t *seal(const bstore *b, const char *ctx, uint64_t id,
		     const uint8_t *pt, size_t len, size_t *blob_len_r)
{
	if (len > SIZE_MAX - NONCE - MAC)
		return NULL;
	uint8_t *blob = malloc(NONCE + MAC + len);
	if (blob == NULL)
		return NULL;
	uint8_t k[crypto_secretbox_KEYBYTES];
	subkey(b, ctx, id, k);
	randombytes_buf(blob, NONCE);
	crypto_secretbox_easy(blob + NONCE, pt, len, blob, k);
	sodium_memzero(k, sizeof(k));
	*blob_len_r = NONCE + MAC + len;
	return blob;
}

/* Open a blob into out (blob_len - NONCE - MAC bytes): 0, or -1 when it
 * is too short or does not authenticate under (ctx, id). */
static int unseal(const bstore *b, const char *ctx, uint64_t id,
		  const uint8_t *blob, size_t blob_len, uint8_t *out)
{
	if (blob == NULL || blob_len < NONCE + MAC)
		return -1;
	uint8_t k[crypto_secretbox_KEYBYTES];
	subkey(b, ctx, id, k);
	int r = crypto_secretbox_open_easy(out, blob + NONCE, blob_len - NONCE,
					   blob, k);
	sodium_memzero(k, sizeof(k));
	return r == 0 ? 0 : -1;
}

/* A cache plaintext holds exactly three NUL-terminated strings. */
static bool cache_ok(const uint8_t *p, size_t n)
{
	size_t nuls = 0;
	for (size_t i = 0; i < n; i++)
		nuls += p[i] == 0;
	return n >= 3 && nuls == 3 && p[n - 1] == 0;
}

/* ------------------------------------------------------------- messages */

/* Insert a message row into m at UID m->uidnext and seal its bytes and
 * cache under the new row's id; advances m->uidnext.  Inside a
 * transaction. */
static int msg_insert(bstore *b, mbox *m, uint64_t flags, int64_t idate,
		      int32_t tz, int64_t sent, const uint8_t *msg, size_t len,
		      const uint8_t *cache, size_t cache_len,
		      const uint8_t *envelope_id, const char **error_r)
{
	if (m->uidnext == 0 || m->uidnext >= UINT32_MAX) {
		*error_r = "the mailbox has no UIDs left";
		return -1;
	}
	if (m->messages >= (int64_t)BSTORE_MESSAGES_MAX) {
		*error_r = "mailbox full";
		return -1;
	}
	*error_r = E_DB;
	sqlite3_stmt *st = stmt(b, S_MSG_INSERT);
	if (bind_i64(st, 1, m->id) != 0 || bind_i64(st, 2, m->uidnext) != 0 ||
	    bind_i64(st, 3, (int64_t)flags) != 0 || bind_i64(st, 4, idate) != 0 ||
	    bind_i64(st, 5, tz) != 0 || bind_i64(st, 6, (int64_t)len) != 0 ||
	    (sent != INT64_MIN && bind_i64(st, 7, sent) != 0) ||
	    (envelope_id != NULL && bind_blob(st, 8, envelope_id, 16) != 0) ||
	    step_done(st) != 0)
		return -1;
	int64_t id = sqlite3_last_insert_rowid(b->db);
	size_t blen, clen;
	uint8_t *bbox = seal(b, CTX_BODY, (uint64_t)id, msg, len, &blen);
	uint8_t *cbox = seal(b, CTX_CACHE, (uint64_t)id, cache, cache_len,
			     &clen);
	int r = -1;
	if (bbox == NULL || cbox == NULL) {
		*error_r = E_NOMEM;
	} else {
		st = stmt(b, S_MSG_SEAL);
		if (bind_i64(st, 1, id) == 0 && bind_blob(st, 2, bbox, blen) == 0 &&
		    bind_blob(st, 3, cbox, clen) == 0 && step_done(st) == 0)
			r = 0;
		sqlite3_clear_bindings(st);
	}
	free(bbox);
	free(cbox);
	if (r != 0)
		return -1;
	m->uidnext++;
	m->messages++;
	st = stmt(b, S_MBOX_NEXT);
	if (bind_i64(st, 1, m->id) != 0 || bind_i64(st, 2, m->uidnext) != 0 ||
	    step_done(st) != 0)
		return -1;
	st = stmt(b, S_MBOX_ADJ);
	if (bind_i64(st, 1, m->id) != 0 || bind_i64(st, 2, 1) != 0 ||
	    step_done(st) != 0)
		return -1;
	return 0;
}

/* The cache plaintext of a message (free with free_wiped). */
static uint8_t *analyze(const uint8_t *msg, size_t len, int64_t *sent_r,
			size_t *cache_len_r, const char **error_r)
{
	imap_msg_info info;
	if (imap_msg_analyze(msg, len, &info, error_r) != 0)
		return NULL;
	size_t e = strlen(info.envelope), s = strlen(info.bodystructure),
	       y = strlen(info.body);
	uint8_t *p = NULL;
	if (e + s + y <= IMAP_MSG_CACHE_MAX)
		p = malloc(e + s + y + 3);
	if (p != NULL) {
		memcpy(p, info.envelope, e + 1);
		memcpy(p + e + 1, info.bodystructure, s + 1);
		memcpy(p + e + s + 2, info.body, y + 1);
		*cache_len_r = e + s + y + 3;
		*sent_r = info.sent;
	} else {
		*error_r = e + s + y <= IMAP_MSG_CACHE_MAX
				   ? E_NOMEM : "message structure too large";
	}
	sodium_memzero(info.envelope, e);
	sodium_memzero(info.bodystructure, s);
	sodium_memzero(info.body, y);
	imap_msg_info_free(&info);
	return p;
}

/* Append (or deliver, with envelope_id) a message already checked. */
static int add_message(bstore *b, const char *name, const uint8_t *msg,
		       size_t len, uint64_t flags, int64_t idate, int32_t tz,
		       const uint8_t *envelope_id, uint32_t *uid_r,
		       uint32_t *uidvalidity_r, const char **error_r)
{
	const char *err = NULL;
	if (msg == NULL || len == 0 || len > BSTORE_MSG_MAX) {
		*error_r = len == 0 ? "empty message" : "message too large";
		return -1;
	}
	if (idate < 0) {
		idate = (int64_t)time(NULL);
		tz = local_tz(idate);
	}
	int64_t sent;
	size_t cache_len;
	uint8_t *cache = analyze(msg, len, &sent, &cache_len, &err);
	if (cache == NULL) {
		*error_r = err != NULL ? err : E_NOMEM;
		return -1;
	}
	int r = -1;
	mbox m;
	if (tx_begin(b) != 0) {
		*error_r = E_DB;
		goto out;
	}
	if (envelope_id != NULL) {
		sqlite3_stmt *st = stmt(b, S_DELIV_FIND);
		int rc = bind_blob(st, 1, envelope_id, 16) == 0
				 ? sqlite3_step(st) : SQLITE_ERROR;
		sqlite3_reset(st);
		if (rc == SQLITE_ROW) {
			tx_rollback(b);
			r = 1;
			goto out;
		}
		if (rc != SQLITE_DONE) {
			r = tx_fail(b, -1, E_DB, error_r);
			goto out;
		}
	}
	int rc = mbox_need(b, name, &m, &err);
	if (rc != 0) {
		r = tx_fail(b, rc, err, error_r);
		goto out;
	}
	uint32_t uid = m.uidnext;
	if (msg_insert(b, &m, flags & flags_mask(b), idate, tz, sent, msg, len,
		       cache, cache_len, envelope_id, &err) != 0) {
		r = tx_fail(b, -1, err, error_r);
		goto out;
	}
	if (envelope_id != NULL) {
		sqlite3_stmt *st = stmt(b, S_DELIV_PUT);
		if (bind_blob(st, 1, envelope_id, 16) != 0 ||
		    bind_i64(st, 2, (int64_t)time(NULL)) != 0 ||
		    step_done(st) != 0) {
			r = tx_fail(b, -1, E_DB, error_r);
			goto out;
		}
	}
	if (tx_commit(b) != 0) {
		*error_r = E_DB;
		goto out;
	}
	if (uid_r != NULL)
		*uid_r = uid;
	if (uidvalidity_r != NULL)
		*uidvalidity_r = m.uidvalidity;
	r = 0;
out:
	free_wiped(cache, cache_len);
	return r;
}

/* ------------------------------------------------------------- mailboxes */

/* The next UIDVALIDITY: now, or one more than the last one given. */
static int next_uidvalidity(bstore *b, uint32_t *v_r)
{
	int64_t last = 0;
	bool found;
	if (state_get_i64(b, "uidvalidity", &last, &found) != 0)
		return -1;
	int64_t v = (int64_t)time(NULL);
	if (found && v <= last)
		v = last + 1;
	if (v < 1 || v > (int64_t)UINT32_MAX)
		return -1;
	if (state_set_i64(b, "uidvalidity", v) != 0)
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

/* Insert a new mailbox row (inside a transaction). */
static int mbox_insert(bstore *b, const char *name, imap_special special,
		       bool subscribed, mbox *m_r)
{
	uint32_t uv;
	if (next_uidvalidity(b, &uv) != 0)
		return -1;
	int64_t next = 1;
	sqlite3_stmt *st = stmt(b, S_FLOOR_GET);
	if (bind_text(st, 1, name) != 0)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		next = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if ((rc != SQLITE_ROW && rc != SQLITE_DONE) || next < 1 ||
	    next > (int64_t)UINT32_MAX)
		return -1;
	st = stmt(b, S_MBOX_INSERT);
	if (bind_text(st, 1, name) != 0 || bind_i64(st, 2, uv) != 0 ||
	    bind_i64(st, 3, next) != 0 || bind_i64(st, 4, special) != 0 ||
	    bind_i64(st, 5, subscribed) != 0 || step_done(st) != 0)
		return -1;
	if (m_r != NULL) {
		m_r->id = sqlite3_last_insert_rowid(b->db);
		m_r->uidvalidity = uv;
		m_r->uidnext = (uint32_t)next;
		m_r->special = special;
		m_r->messages = 0;
	}
	return 0;
}

/* Remember a name's UIDNEXT for a later mailbox of the same name. */
static int floor_put(bstore *b, const char *name, uint32_t uidnext)
{
	sqlite3_stmt *st = stmt(b, S_FLOOR_PUT);
	if (bind_text(st, 1, name) != 0 || bind_i64(st, 2, uidnext) != 0)
		return -1;
	return step_done(st);
}

static int mbox_count(bstore *b, int64_t *n_r)
{
	sqlite3_stmt *st = stmt(b, S_MBOX_COUNT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*n_r = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int op_create(void *st, const char *name, const char **error_r)
{
	bstore *b = st;
	if (!name_ok(name) || levels(name) > BSTORE_DEPTH_MAX) {
		*error_r = "mailbox name too long or too deep";
		return -1;
	}
	if (tx_begin(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	mbox m;
	int64_t n;
	int r = mbox_get(b, name, &m);
	if (r != 0)
		return tx_fail(b, r == 1 ? IMAP_MBOX_EXISTS : -1,
			       r == 1 ? E_EXISTS : E_DB, error_r);
	if (mbox_count(b, &n) != 0)
		return tx_fail(b, -1, E_DB, error_r);
	if (n >= (int64_t)BSTORE_MAILBOXES_MAX)
		return tx_fail(b, -1, "too many mailboxes", error_r);
	if (mbox_insert(b, name, IMAP_SPECIAL_NONE, true, NULL) != 0)
		return tx_fail(b, -1, E_DB, error_r);
	if (tx_commit(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	return 0;
}

static int op_delete(void *st, const char *name, const char **error_r)
{
	bstore *b = st;
	if (tx_begin(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	mbox m;
	const char *err;
	int r = mbox_need(b, name, &m, &err);
	if (r != 0)
		return tx_fail(b, r, err, error_r);
	if (fixed_mailbox(name, &m))
		return tx_fail(b, -1, strcmp(name, "INBOX") == 0
				? "INBOX cannot be deleted"
				: "special-use mailboxes cannot be deleted",
				error_r);
	sqlite3_stmt *s = stmt(b, S_MSG_DEL_ALL);
	if (bind_i64(s, 1, m.id) != 0 || step_done(s) != 0 ||
	    floor_put(b, name, m.uidnext) != 0)
		return tx_fail(b, -1, E_DB, error_r);
	s = stmt(b, S_MBOX_DELETE);
	if (bind_i64(s, 1, m.id) != 0 || step_done(s) != 0)
		return tx_fail(b, -1, E_DB, error_r);
	if (tx_commit(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	return 0;
}

/* RENAME INBOX: a new mailbox `to` gets INBOX's messages, in UID order;
 * INBOX stays, empty, its UIDNEXT unchanged. */
static int rename_inbox(bstore *b, const mbox *inbox, const char *to,
			const char **error_r)
{
	mbox m;
	if (mbox_insert(b, to, IMAP_SPECIAL_NONE, true, &m) != 0)
		return tx_fail(b, -1, E_DB, error_r);
	sqlite3_stmt *s = stmt(b, S_MSG_UIDS);
	if (bind_i64(s, 1, inbox->id) != 0)
		return tx_fail(b, -1, E_DB, error_r);
	/* Collect the row ids first: rows are rewritten below. */
	size_t n = (size_t)inbox->messages, k = 0;
	int64_t *ids = malloc((n != 0 ? n : 1) * sizeof(*ids));
	if (ids == NULL)
		return tx_fail(b, -1, E_NOMEM, error_r);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && k < n)
		ids[k++] = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE || k != n) {
		free(ids);
		return tx_fail(b, -1, E_DB, error_r);
	}
	if (n > 0 && m.uidnext > UINT32_MAX - n) {
		free(ids);
		return tx_fail(b, -1, "the mailbox has no UIDs left", error_r);
	}
	for (size_t i = 0; i < n; i++) {
		s = stmt(b, S_MSG_MOVE);
		if (bind_i64(s, 1, ids[i]) != 0 || bind_i64(s, 2, m.id) != 0 ||
		    bind_i64(s, 3, m.uidnext + i) != 0 || step_done(s) != 0) {
			free(ids);
			return tx_fail(b, -1, E_DB, error_r);
		}
	}
	free(ids);
	s = stmt(b, S_MBOX_NEXT);
	if (bind_i64(s, 1, m.id) != 0 || bind_i64(s, 2, m.uidnext + n) != 0 ||
	    step_done(s) != 0)
		return tx_fail(b, -1, E_DB, error_r);
	s = stmt(b, S_MBOX_ADJ);
	if (bind_i64(s, 1, m.id) != 0 || bind_i64(s, 2, (int64_t)n) != 0 ||
	    step_done(s) != 0)
		return tx_fail(b, -1, E_DB, error_r);
	s = stmt(b, S_MBOX_ADJ);
	if (bind_i64(s, 1, inbox->id) != 0 || bind_i64(s, 2, -(int64_t)n) != 0 ||
	    step_done(s) != 0)
		return tx_fail(b, -1, E_DB, error_r);
	return 0;
}

typedef struct ren {
	int64_t id;
	uint32_t uidnext;
	char *old_name, *new_name;
} ren;

static void ren_free(ren *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].old_name);
		free(r[i].new_name);
	}
	free(r);
}

/* RENAME of another mailbox (fm; NULL: a level without a mailbox): it
 * and its inferiors (from/...) take the new names; the old names keep
 * their UIDNEXT as floors.  A level without inferiors does not exist. */
static int rename_tree(bstore *b, const mbox *fm, const char *from,
		       const char *to, const char **error_r)
{
	size_t flen = strlen(from), tlen = strlen(to);
	size_t cap = 16, n = 0;
	ren *r = calloc(cap, sizeof(*r));
	if (r == NULL)
		return tx_fail(b, -1, E_NOMEM, error_r);
	const char *err = E_DB;
	sqlite3_stmt *s = stmt(b, S_MBOX_LIST);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *nm = (const char *)sqlite3_column_text(s, 0);
		if (nm == NULL || strncmp(nm, from, flen) != 0 || nm[flen] != '/')
			continue;
		if (n == cap) {
			ren *q = n < BSTORE_MAILBOXES_MAX
					 ? realloc(r, 2 * cap * sizeof(*r)) : NULL;
			if (q == NULL) {
				err = E_NOMEM;
				rc = SQLITE_ERROR;
				break;
			}
			memset(q + cap, 0, cap * sizeof(*q));
			r = q;
			cap *= 2;
		}
		size_t nl = strlen(nm);
		r[n].old_name = strdup(nm);
		r[n].new_name = malloc(tlen + nl - flen + 1);
		n++;
		if (r[n - 1].old_name == NULL || r[n - 1].new_name == NULL) {
			err = E_NOMEM;
			rc = SQLITE_ERROR;
			break;
		}
		memcpy(r[n - 1].new_name, to, tlen);
		memcpy(r[n - 1].new_name + tlen, nm + flen, nl - flen + 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		ren_free(r, n);
		return tx_fail(b, -1, err, error_r);
	}
	/* each inferior: its id and UIDNEXT; the new name must be free */
	for (size_t i = 0; i < n; i++) {
		mbox m;
		if (strlen(r[i].new_name) > IMAP_MBOX_NAME_MAX ||
		    levels(r[i].new_name) > BSTORE_DEPTH_MAX) {
			ren_free(r, n);
			return tx_fail(b, -1, "mailbox name too long or too deep",
				       error_r);
		}
		int g = mbox_get(b, r[i].new_name, &m);
		if (g != 0) {
			ren_free(r, n);
			return tx_fail(b, g == 1 ? IMAP_MBOX_EXISTS : -1,
				       g == 1 ? E_EXISTS : E_DB, error_r);
		}
		if (mbox_get(b, r[i].old_name, &m) != 1) {
			ren_free(r, n);
			return tx_fail(b, -1, E_DB, error_r);
		}
		r[i].id = m.id;
		r[i].uidnext = m.uidnext;
	}
	if (fm == NULL && n == 0) {
		ren_free(r, n);
		return tx_fail(b, IMAP_MBOX_NONEXISTENT, E_NOBOX, error_r);
	}
	int ok = 1;
	if (fm != NULL) {
		ok = floor_put(b, from, fm->uidnext) == 0;
		s = stmt(b, S_MBOX_RENAME);
		ok = ok && bind_i64(s, 1, fm->id) == 0 &&
		     bind_text(s, 2, to) == 0 && step_done(s) == 0;
	}
	for (size_t i = 0; ok && i < n; i++) {
		ok = floor_put(b, r[i].old_name, r[i].uidnext) == 0;
		s = stmt(b, S_MBOX_RENAME);
		ok = ok && bind_i64(s, 1, r[i].id) == 0 &&
		     bind_text(s, 2, r[i].new_name) == 0 && step_done(s) == 0;
	}
	ren_free(r, n);
	return ok ? 0 : tx_fail(b, -1, E_DB, error_r);
}

static int op_rename(void *st, const char *from, const char *to,
		     const char **error_r)
{
	bstore *b = st;
	if (!name_ok(to) || levels(to) > BSTORE_DEPTH_MAX) {
		*error_r = "mailbox name too long or too deep";
		return -1;
	}
	if (tx_begin(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	mbox fm, tm;
	const char *err;
	int r = mbox_need(b, from, &fm, &err);
	/* a level without a mailbox of its own: its inferiors move */
	bool level = r == IMAP_MBOX_NONEXISTENT && name_ok(from) &&
		     strcmp(from, "INBOX") != 0;
	if (r != 0 && !level)
		return tx_fail(b, r, err, error_r);
	r = mbox_get(b, to, &tm);
	if (r != 0)
		return tx_fail(b, r == 1 ? IMAP_MBOX_EXISTS : -1,
			       r == 1 ? E_EXISTS : E_DB, error_r);
	/* (Dovecot refuses RENAME INBOX INBOX/x too) */
	size_t flen = strlen(from);
	if (strncmp(to, from, flen) == 0 && to[flen] == '/')
		return tx_fail(b, -1, "Can't rename mailbox under its own child",
			       error_r);
	if (level) {
		r = rename_tree(b, NULL, from, to, error_r);
	} else if (strcmp(from, "INBOX") == 0) {
		int64_t n;
		if (mbox_count(b, &n) != 0)
			return tx_fail(b, -1, E_DB, error_r);
		if (n >= (int64_t)BSTORE_MAILBOXES_MAX)
			return tx_fail(b, -1, "too many mailboxes", error_r);
		r = rename_inbox(b, &fm, to, error_r);
	} else if (fixed_mailbox(from, &fm)) {
		return tx_fail(b, -1, "special-use mailboxes cannot be renamed",
			       error_r);
	} else {
		r = rename_tree(b, &fm, from, to, error_r);
	}
	if (r != 0)
		return r; /* rolled back */
	if (tx_commit(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	return 0;
}

static int op_subscribe(void *st, const char *name, bool on,
			const char **error_r)
{
	bstore *b = st;
	if (!name_ok(name)) {
		*error_r = E_NOBOX;
		return IMAP_MBOX_NONEXISTENT;
	}
	if (tx_begin(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	sqlite3_stmt *s = stmt(b, S_MBOX_SUB);
	if (bind_text(s, 1, name) != 0 || bind_i64(s, 2, on) != 0 ||
	    step_done(s) != 0)
		return tx_fail(b, -1, E_DB, error_r);
	if (sqlite3_changes(b->db) == 0)
		return tx_fail(b, IMAP_MBOX_NONEXISTENT, E_NOBOX, error_r);
	if (tx_commit(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	return 0;
}

static int info_cmp(const void *pa, const void *pb)
{
	const imap_mbox_info *a = pa, *b = pb;
	bool ai = strcmp(a->name, "INBOX") == 0, bi = strcmp(b->name, "INBOX") == 0;
	if (ai != bi)
		return ai ? -1 : 1;
	int c = strcmp(a->name, b->name);
	if (c != 0)
		return c;
	return (int)a->noselect - (int)b->noselect; /* the real one first */
}

static int op_list(void *st, imap_mbox_info **list_r, size_t *n_r,
		   const char **error_r)
{
	bstore *b = st;
	int64_t count;
	if (mbox_count(b, &count) != 0) {
		*error_r = E_DB;
		return -1;
	}
	/* each mailbox and at most BSTORE_DEPTH_MAX - 1 parent levels */
	size_t cap = ((size_t)count + 1) * BSTORE_DEPTH_MAX, n = 0;
	imap_mbox_info *l = calloc(cap, sizeof(*l));
	if (l == NULL) {
		*error_r = E_NOMEM;
		return -1;
	}
	sqlite3_stmt *s = stmt(b, S_MBOX_LIST);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *nm = (const char *)sqlite3_column_text(s, 0);
		size_t len = nm != NULL ? strlen(nm) : 0;
		if (len == 0 || len > IMAP_MBOX_NAME_MAX)
			continue;
		/* the name's parent levels, then the name itself */
		for (size_t i = 1; i <= len && n < cap; i++) {
			if (i < len && nm[i] != '/')
				continue;
			imap_mbox_info *e = &l[n++];
			memcpy(e->name, nm, i);
			e->name[i] = '\0';
			e->noselect = i < len;
			if (i == len) {
				e->special = (imap_special)sqlite3_column_int(s, 1);
				e->subscribed = sqlite3_column_int(s, 2) != 0;
			}
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		free(l);
		*error_r = E_DB;
		return -1;
	}
	qsort(l, n, sizeof(*l), info_cmp);
	/* drop repeated names (a real mailbox sorts before its levels) */
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && strcmp(l[k - 1].name, l[i].name) == 0)
			continue;
		if (k != i)
			l[k] = l[i];
		k++;
	}
	*list_r = l;
	*n_r = k;
	return 0;
}

static int op_status(void *st, const char *name, imap_mbox_status *s_r,
		     const char **error_r)
{
	bstore *b = st;
	mbox m;
	int r = mbox_need(b, name, &m, error_r);
	if (r != 0)
		return r;
	sqlite3_stmt *s = stmt(b, S_MSG_UNSEEN);
	if (bind_i64(s, 1, m.id) != 0 || sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		*error_r = E_DB;
		return -1;
	}
	s_r->unseen = (uint32_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	s_r->messages = (uint32_t)m.messages;
	s_r->uidnext = m.uidnext;
	s_r->uidvalidity = m.uidvalidity;
	return 0;
}

static int op_view(void *st, const char *name, imap_mbox_view *v_r,
		   const char **error_r)
{
	bstore *b = st;
	mbox m;
	memset(v_r, 0, sizeof(*v_r));
	int r = mbox_need(b, name, &m, error_r);
	if (r != 0)
		return r;
	size_t n = m.messages > 0 ? (size_t)m.messages : 0;
	if (n > BSTORE_MESSAGES_MAX) {
		*error_r = E_DB;
		return -1;
	}
	uint32_t *uids = malloc((n != 0 ? n : 1) * sizeof(*uids));
	uint64_t *flags = malloc((n != 0 ? n : 1) * sizeof(*flags));
	if (uids == NULL || flags == NULL) {
		free(uids);
		free(flags);
		*error_r = E_NOMEM;
		return -1;
	}
	sqlite3_stmt *s = stmt(b, S_VIEW);
	size_t k = 0;
	int rc = bind_i64(s, 1, m.id) == 0 ? SQLITE_ROW : SQLITE_ERROR;
	while (rc == SQLITE_ROW && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (k == n) {
			rc = SQLITE_CORRUPT; /* messages count out of step */
			break;
		}
		uids[k] = (uint32_t)sqlite3_column_int64(s, 0);
		flags[k] = (uint64_t)sqlite3_column_int64(s, 1);
		k++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE || k != n) {
		free(uids);
		free(flags);
		*error_r = E_DB;
		return -1;
	}
	v_r->uidvalidity = m.uidvalidity;
	v_r->uidnext = m.uidnext;
	v_r->n = n;
	v_r->uids = uids;
	v_r->flags = flags;
	return 0;
}

static int op_keywords(void *st, const char *const **names_r, size_t *n_r)
{
	bstore *b = st;
	*names_r = b->kwp;
	*n_r = b->nkw;
	return 0;
}

static int op_keyword_add(void *st, const char *kw, const char **error_r)
{
	bstore *b = st;
	size_t len = kw != NULL ? strnlen(kw, IMAP_KEYWORD_LEN_MAX + 1) : 0;
	if (len == 0 || len > IMAP_KEYWORD_LEN_MAX) {
		*error_r = "bad keyword";
		return -1;
	}
	for (size_t i = 0; i < b->nkw; i++)
		if (strcasecmp(b->kw[i], kw) == 0)
			return (int)i;
	if (b->nkw >= IMAP_KEYWORDS_MAX) {
		*error_r = "too many keywords";
		return -1;
	}
	char *copy = strdup(kw);
	if (copy == NULL) {
		*error_r = E_NOMEM;
		return -1;
	}
	if (tx_begin(b) != 0) {
		free(copy);
		*error_r = E_DB;
		return -1;
	}
	sqlite3_stmt *s = stmt(b, S_KW_PUT);
	if (bind_i64(s, 1, (int64_t)b->nkw) != 0 || bind_text(s, 2, copy) != 0 ||
	    step_done(s) != 0 || tx_commit(b) != 0) {
		free(copy);
		return tx_fail(b, -1, E_DB, error_r);
	}
	b->kw[b->nkw] = copy;
	b->kwp[b->nkw] = copy;
	return (int)b->nkw++;
}

/* After a failed one-row lookup by (name, uid): which error it was. */
static int lookup_error(bstore *b, const char *name, int rc,
			const char **error_r)
{
	mbox m;
	if (rc != SQLITE_DONE) {
		*error_r = E_DB;
		return -1;
	}
	int r = mbox_need(b, name, &m, error_r);
	if (r != 0)
		return r;
	*error_r = "no such message";
	return -1;
}

static int op_cached(void *st, const char *name, uint32_t uid,
		     imap_mbox_cached *c_r, const char **error_r)
{
	bstore *b = st;
	sqlite3_stmt *s = stmt(b, S_MSG_CACHED);
	if (!name_ok(name) || bind_text(s, 1, name) != 0 ||
	    bind_i64(s, 2, uid) != 0) {
		*error_r = E_NOBOX;
		return IMAP_MBOX_NONEXISTENT;
	}
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return lookup_error(b, name, rc, error_r);
	}
	int64_t id = sqlite3_column_int64(s, 0);
	const uint8_t *blob = sqlite3_column_blob(s, 5);
	size_t blen = (size_t)sqlite3_column_bytes(s, 5);
	int r = -1;
	*error_r = E_SEAL;
	if (blen >= NONCE + MAC + 3 && blen - NONCE - MAC <= IMAP_MSG_CACHE_MAX + 3) {
		size_t n = blen - NONCE - MAC;
		if (n > b->cache_cap) {
			free_wiped(b->cache, b->cache_cap);
			b->cache_cap = 0;
			size_t cap = n < 4096 ? 4096 : n;
			b->cache = malloc(cap);
			if (b->cache != NULL)
				b->cache_cap = cap;
			else
				*error_r = E_NOMEM;
		}
		if (b->cache != NULL && n <= b->cache_cap &&
		    unseal(b, CTX_CACHE, (uint64_t)id, blob, blen, b->cache) == 0 &&
		    cache_ok(b->cache, n)) {
			const char *p = (const char *)b->cache;
			c_r->internaldate = sqlite3_column_int64(s, 1);
			c_r->tz_minutes = (int32_t)sqlite3_column_int64(s, 2);
			c_r->size = (uint64_t)sqlite3_column_int64(s, 3);
			c_r->sent = sqlite3_column_type(s, 4) == SQLITE_NULL
					    ? INT64_MIN
					    : sqlite3_column_int64(s, 4);
			c_r->envelope = p;
			p += strlen(p) + 1;
			c_r->bodystructure = p;
			p += strlen(p) + 1;
			c_r->body = p;
			r = 0;
		}
	}
	sqlite3_reset(s);
	return r;
}

static int op_read(void *st, const char *name, uint32_t uid, uint8_t **msg_r,
		   size_t *len_r, const char **error_r)
{
	bstore *b = st;
	sqlite3_stmt *s = stmt(b, S_MSG_BODY);
	if (!name_ok(name) || bind_text(s, 1, name) != 0 ||
	    bind_i64(s, 2, uid) != 0) {
		*error_r = E_NOBOX;
		return IMAP_MBOX_NONEXISTENT;
	}
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return lookup_error(b, name, rc, error_r);
	}
	int64_t id = sqlite3_column_int64(s, 0);
	const uint8_t *blob = sqlite3_column_blob(s, 1);
	size_t blen = (size_t)sqlite3_column_bytes(s, 1);
	int r = -1;
	*error_r = E_SEAL;
	if (blen > NONCE + MAC && blen - NONCE - MAC <= BSTORE_MSG_MAX) {
		size_t n = blen - NONCE - MAC;
		uint8_t *p = malloc(n);
		if (p == NULL) {
			*error_r = E_NOMEM;
		} else if (unseal(b, CTX_BODY, (uint64_t)id, blob, blen, p) != 0) {
			free_wiped(p, n);
		} else {
			*msg_r = p;
			*len_r = n;
			r = 0;
		}
	}
	sqlite3_reset(s);
	return r;
}

static void op_release(void *st, uint8_t *msg, size_t len)
{
	(void)st;
	free_wiped(msg, len);
}

static int op_store(void *st, const char *name, const uint32_t *uids,
		    size_t n, imap_store_mode mode, uint64_t flags,
		    uint64_t *flags_r, const char **error_r)
{
	bstore *b = st;
	if (tx_begin(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	mbox m;
	const char *err;
	int r = mbox_need(b, name, &m, &err);
	if (r != 0)
		return tx_fail(b, r, err, error_r);
	flags &= flags_mask(b);
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *s = stmt(b, S_MSG_GET);
		if (bind_i64(s, 1, m.id) != 0 || bind_i64(s, 2, uids[i]) != 0)
			return tx_fail(b, -1, E_DB, error_r);
		int rc = sqlite3_step(s);
		if (rc == SQLITE_DONE) {
			sqlite3_reset(s);
			flags_r[i] = 0;
			continue;
		}
		if (rc != SQLITE_ROW) {
			sqlite3_reset(s);
			return tx_fail(b, -1, E_DB, error_r);
		}
		int64_t id = sqlite3_column_int64(s, 0);
		uint64_t old = (uint64_t)sqlite3_column_int64(s, 1);
		sqlite3_reset(s);
		uint64_t nf = mode == IMAP_STORE_SET ? flags
			      : mode == IMAP_STORE_ADD ? old | flags
			      : old & ~flags;
		flags_r[i] = nf;
		if (nf == old)
			continue;
		s = stmt(b, S_MSG_FLAGS);
		if (bind_i64(s, 1, id) != 0 || bind_i64(s, 2, (int64_t)nf) != 0 ||
		    step_done(s) != 0)
			return tx_fail(b, -1, E_DB, error_r);
	}
	if (tx_commit(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	return 0;
}

static int op_append(void *st, const char *name, const uint8_t *msg,
		     size_t len, uint64_t flags, int64_t internaldate,
		     int32_t tz_minutes, uint32_t *uid_r,
		     uint32_t *uidvalidity_r, const char **error_r)
{
	return add_message(st, name, msg, len, flags, internaldate, tz_minutes,
			   NULL, uid_r, uidvalidity_r, error_r);
}

/* Copy one message row (sealed under its id) into dest: open both
 * blobs, re-seal them under the new row's id. */
static int copy_row(bstore *b, sqlite3_stmt *s, mbox *dest,
		    const char **error_r)
{
	int64_t id = sqlite3_column_int64(s, 0);
	const uint8_t *body = sqlite3_column_blob(s, 6);
	size_t blen = (size_t)sqlite3_column_bytes(s, 6);
	const uint8_t *cache = sqlite3_column_blob(s, 7);
	size_t clen = (size_t)sqlite3_column_bytes(s, 7);
	*error_r = E_SEAL;
	if (blen <= NONCE + MAC || blen - NONCE - MAC > BSTORE_MSG_MAX ||
	    clen < NONCE + MAC + 3 || clen - NONCE - MAC > IMAP_MSG_CACHE_MAX + 3)
		return -1;
	size_t bn = blen - NONCE - MAC, cn = clen - NONCE - MAC;
	uint8_t *bp = malloc(bn), *cp = malloc(cn);
	int r = -1;
	if (bp == NULL || cp == NULL)
		*error_r = E_NOMEM;
	else if (unseal(b, CTX_BODY, (uint64_t)id, body, blen, bp) == 0 &&
		 unseal(b, CTX_CACHE, (uint64_t)id, cache, clen, cp) == 0 &&
		 cache_ok(cp, cn)) {
		uint64_t flags = (uint64_t)sqlite3_column_int64(s, 1);
		int64_t idate = sqlite3_column_int64(s, 2);
		int32_t tz = (int32_t)sqlite3_column_int64(s, 3);
		int64_t sent = sqlite3_column_type(s, 5) == SQLITE_NULL
				       ? INT64_MIN : sqlite3_column_int64(s, 5);
		/* the statement's row must stay valid: copy what we need
		 * before the INSERT (bp, cp are ours) */
		sqlite3_reset(s);
		r = msg_insert(b, dest, flags, idate, tz, sent, bp, bn, cp, cn,
			       NULL, error_r);
	}
	sqlite3_reset(s);
	free_wiped(bp, bn);
	free_wiped(cp, cn);
	return r;
}

static int op_copy(void *st, const char *from, const uint32_t *uids,
		   size_t n, const char *dest, bool move, uint32_t *new_uids_r,
		   uint32_t *uidvalidity_r, const char **error_r)
{
	bstore *b = st;
	if (tx_begin(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	mbox fm, dm;
	const char *err;
	int r = mbox_need(b, from, &fm, &err);
	if (r == 0)
		r = mbox_need(b, dest, &dm, &err);
	if (r != 0)
		return tx_fail(b, r, err, error_r);
	bool same = fm.id == dm.id;
	for (size_t i = 0; i < n; i++) {
		new_uids_r[i] = 0;
		sqlite3_stmt *s = stmt(b, S_MSG_GET);
		if (bind_i64(s, 1, fm.id) != 0 || bind_i64(s, 2, uids[i]) != 0)
			return tx_fail(b, -1, E_DB, error_r);
		int rc = sqlite3_step(s);
		if (rc == SQLITE_DONE) {
			sqlite3_reset(s);
			continue;
		}
		if (rc != SQLITE_ROW) {
			sqlite3_reset(s);
			return tx_fail(b, -1, E_DB, error_r);
		}
		uint32_t uid = dm.uidnext;
		if (!move) {
			if (copy_row(b, s, &dm, &err) != 0)
				return tx_fail(b, -1, err, error_r);
			if (same)
				fm = dm;
			new_uids_r[i] = uid;
			continue;
		}
		/* MOVE keeps the row, so its seal stays valid */
		int64_t id = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		if (dm.uidnext == 0 || dm.uidnext >= UINT32_MAX)
			return tx_fail(b, -1, "the mailbox has no UIDs left",
				       error_r);
		if (!same && dm.messages >= (int64_t)BSTORE_MESSAGES_MAX)
			return tx_fail(b, -1, "mailbox full", error_r);
		s = stmt(b, S_MSG_MOVE);
		if (bind_i64(s, 1, id) != 0 || bind_i64(s, 2, dm.id) != 0 ||
		    bind_i64(s, 3, uid) != 0 || step_done(s) != 0)
			return tx_fail(b, -1, E_DB, error_r);
		dm.uidnext++;
		if (!same) {
			dm.messages++;
			fm.messages--;
		}
		new_uids_r[i] = uid;
	}
	sqlite3_stmt *s = stmt(b, S_MBOX_NEXT);
	if (bind_i64(s, 1, dm.id) != 0 || bind_i64(s, 2, dm.uidnext) != 0 ||
	    step_done(s) != 0)
		return tx_fail(b, -1, E_DB, error_r);
	if (move && !same) {
		/* msg_insert kept the counts for COPY; MOVE sets them here */
		int64_t moved = 0;
		for (size_t i = 0; i < n; i++)
			moved += new_uids_r[i] != 0;
		s = stmt(b, S_MBOX_ADJ);
		if (bind_i64(s, 1, dm.id) != 0 || bind_i64(s, 2, moved) != 0 ||
		    step_done(s) != 0)
			return tx_fail(b, -1, E_DB, error_r);
		s = stmt(b, S_MBOX_ADJ);
		if (bind_i64(s, 1, fm.id) != 0 || bind_i64(s, 2, -moved) != 0 ||
		    step_done(s) != 0)
			return tx_fail(b, -1, E_DB, error_r);
	}
	if (tx_commit(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	if (uidvalidity_r != NULL)
		*uidvalidity_r = dm.uidvalidity;
	return 0;
}

static int op_expunge(void *st, const char *name, const uint32_t *uids,
		      size_t n, const char **error_r)
{
	bstore *b = st;
	if (tx_begin(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	mbox m;
	const char *err;
	int r = mbox_need(b, name, &m, &err);
	if (r != 0)
		return tx_fail(b, r, err, error_r);
	int64_t gone = 0;
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *s = stmt(b, S_MSG_GET);
		if (bind_i64(s, 1, m.id) != 0 || bind_i64(s, 2, uids[i]) != 0)
			return tx_fail(b, -1, E_DB, error_r);
		int rc = sqlite3_step(s);
		int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
		sqlite3_reset(s);
		if (rc == SQLITE_DONE)
			continue;
		if (rc != SQLITE_ROW)
			return tx_fail(b, -1, E_DB, error_r);
		s = stmt(b, S_MSG_DEL);
		if (bind_i64(s, 1, id) != 0 || step_done(s) != 0)
			return tx_fail(b, -1, E_DB, error_r);
		gone++;
	}
	sqlite3_stmt *s = stmt(b, S_MBOX_ADJ);
	if (bind_i64(s, 1, m.id) != 0 || bind_i64(s, 2, -gone) != 0 ||
	    step_done(s) != 0)
		return tx_fail(b, -1, E_DB, error_r);
	if (tx_commit(b) != 0) {
		*error_r = E_DB;
		return -1;
	}
	return 0;
}

static const imap_mbox_ops ops = {
	.list = op_list,
	.create = op_create,
	.delete = op_delete,
	.rename = op_rename,
	.subscribe = op_subscribe,
	.status = op_status,
	.view = op_view,
	.keywords = op_keywords,
	.keyword_add = op_keyword_add,
	.cached = op_cached,
	.read = op_read,
	.release = op_release,
	.store = op_store,
	.append = op_append,
	.copy = op_copy,
	.expunge = op_expunge,
};

const imap_mbox_ops *bstore_ops(void)
{
	return &ops;
}

/* ------------------------------------------------------------ the store */

int bstore_deliver(bstore *b, const char *mailbox,
		   const uint8_t envelope_id[16], const uint8_t *msg,
		   size_t len, int64_t internaldate, uint32_t *uid_r,
		   const char **error_r)
{
	if (envelope_id == NULL) {
		*error_r = "no envelope id";
		return -1;
	}
	if (internaldate < 0)
		internaldate = (int64_t)time(NULL);
	int r = add_message(b, mailbox, msg, len, 0, internaldate,
			    local_tz(internaldate), envelope_id, uid_r, NULL,
			    error_r);
	return r < 0 ? -1 : r; /* bstore.h: 1, 0 or -1 */
}

int bstore_cursor_get(bstore *b, uint64_t *cursor_r)
{
	int64_t v = 0;
	bool found;
	if (state_get_i64(b, "cursor", &v, &found) != 0)
		return -1;
	*cursor_r = found ? (uint64_t)v : 0;
	return 0;
}

int bstore_cursor_set(bstore *b, uint64_t cursor)
{
	if (tx_begin(b) != 0)
		return -1;
	if (state_set_i64(b, "cursor", (int64_t)cursor) != 0) {
		tx_rollback(b);
		return -1;
	}
	uint64_t gen = b->generation; /* no mailbox changed */
	int r = tx_commit(b);
	b->generation = gen;
	return r;
}

uint64_t bstore_generation(const bstore *b)
{
	return b->generation;
}

/* A new database (inside the transaction that made the schema): the
 * mailboxes and the check blob, then COMMIT. */
static const char *db_init(bstore *b)
{
	for (size_t i = 0; i < sizeof(initial) / sizeof(initial[0]); i++)
		if (mbox_insert(b, initial[i].name, initial[i].special, true,
				NULL) != 0)
			return "cannot create the mailboxes";
	size_t len;
	uint8_t *blob = seal(b, CTX_CHECK, 0, (const uint8_t *)CHECK_TEXT,
			     sizeof(CHECK_TEXT) - 1, &len);
	if (blob == NULL)
		return E_NOMEM;
	sqlite3_stmt *s = stmt(b, S_STATE_SET);
	int r = bind_text(s, 1, "check") == 0 ? bind_blob(s, 2, blob, len) : -1;
	if (r == 0)
		r = step_done(s);
	sqlite3_clear_bindings(s);
	free(blob);
	if (r != 0)
		return "cannot write the key check";
	return tx_commit(b) == 0 ? NULL : "cannot create the store";
}

static const char *key_check(bstore *b)
{
	sqlite3_stmt *s = stmt(b, S_STATE_GET);
	if (bind_text(s, 1, "check") != 0 || sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return "the store has no key check (damaged?)";
	}
	const uint8_t *blob = sqlite3_column_blob(s, 0);
	size_t len = (size_t)sqlite3_column_bytes(s, 0);
	uint8_t out[sizeof(CHECK_TEXT) - 1];
	const char *err = "wrong key (the store was sealed under another key)";
	if (len == NONCE + MAC + sizeof(out) &&
	    unseal(b, CTX_CHECK, 0, blob, len, out) == 0 &&
	    memcmp(out, CHECK_TEXT, sizeof(out)) == 0)
		err = NULL;
	sqlite3_reset(s);
	return err;
}

static const char *load_keywords(bstore *b)
{
	sqlite3_stmt *s = stmt(b, S_KW_LIST);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *kw = (const char *)sqlite3_column_text(s, 1);
		if (b->nkw >= IMAP_KEYWORDS_MAX || kw == NULL ||
		    sqlite3_column_int64(s, 0) != (int64_t)b->nkw)
			break;
		if ((b->kw[b->nkw] = strdup(kw)) == NULL)
			break;
		b->kwp[b->nkw] = b->kw[b->nkw];
		b->nkw++;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? NULL : "the keyword table is damaged";
}

/* Create the directory (0700) when missing and the file (0600), and
 * hold an flock() on it: a second process (a second `amp bridge`) would
 * not see this one's generation counter.  (flock and SQLite's POSIX
 * locks do not interact on Linux.) */
static const char *make_file(bstore *b, const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash != NULL && slash != path) {
		size_t dl = (size_t)(slash - path);
		char *dir = malloc(dl + 1);
		if (dir == NULL)
			return E_NOMEM;
		memcpy(dir, path, dl);
		dir[dl] = '\0';
		int r = util_mkdirs(dir, 0700);
		free(dir);
		if (r != 0)
			return "cannot create the store's directory";
	}
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return "cannot open the store file (see its path and "
		       "permissions)";
	b->lock_fd = fd;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0)
		return errno == EWOULDBLOCK ? "the store is in use by another "
					      "process"
					    : "cannot lock the store file";
	return fchmod(fd, 0600) == 0 ? NULL : "cannot make the store file 0600";
}

static const char *db_open(bstore *b, const char *path)
{
	const char *err = make_file(b, path);
	if (err != NULL)
		return err;
	if (sqlite3_open_v2(path, &b->db, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
	    sqlite3_exec(b->db, pragma_sql, NULL, NULL, NULL) != SQLITE_OK)
		return b->db != NULL ? "cannot open the store database"
				     : E_NOMEM;
	sqlite3_busy_timeout(b->db, 5000);
	sqlite3_stmt *v;
	int64_t version = -1;
	if (sqlite3_prepare_v2(b->db, "PRAGMA user_version", -1, &v, NULL) !=
	    SQLITE_OK)
		return "cannot read the store database";
	if (sqlite3_step(v) == SQLITE_ROW)
		version = sqlite3_column_int64(v, 0);
	sqlite3_finalize(v);
	bool fresh = version == 0;
	if (fresh) {
		/* BEGIN is prepared below; the schema goes first */
		if (sqlite3_exec(b->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
			    SQLITE_OK ||
		    sqlite3_exec(b->db, schema_sql, NULL, NULL, NULL) !=
			    SQLITE_OK) {
			sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
			return "cannot create the store tables";
		}
	} else if (version != SCHEMA_VERSION) {
		return "unknown store format (user_version)";
	}
	for (size_t i = 0; i < S_NSTMT; i++)
		if (sqlite3_prepare_v3(b->db, stmt_sql[i], -1,
				       SQLITE_PREPARE_PERSISTENT, &b->st[i],
				       NULL) != SQLITE_OK) {
			if (fresh)
				sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
			return "cannot prepare the store statements";
		}
	if (fresh && (err = db_init(b)) != NULL) {
		tx_rollback(b);
		return err;
	}
	if ((err = key_check(b)) != NULL)
		return err;
	return load_keywords(b);
}

static void destroy(bstore *b)
{
	for (size_t i = 0; i < S_NSTMT; i++)
		sqlite3_finalize(b->st[i]);
	if (b->db != NULL)
		sqlite3_close(b->db);
	for (size_t i = 0; i < b->nkw; i++)
		free(b->kw[i]);
	free_wiped(b->cache, b->cache_cap);
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	sodium_memzero(b, sizeof(*b));
	free(b);
}

int bstore_open(const char *path, const uint8_t key[BSTORE_KEY_BYTES],
		bstore **b_r, const char **error_r)
{
	if (sodium_init() < 0) {
		*error_r = "libsodium cannot start";
		return -1;
	}
	bstore *b = calloc(1, sizeof(*b));
	if (b == NULL) {
		*error_r = E_NOMEM;
		return -1;
	}
	memcpy(b->key, key, BSTORE_KEY_BYTES);
	b->generation = 1;
	b->lock_fd = -1;
	const char *err = path != NULL ? db_open(b, path) : "no store path";
	if (err != NULL) {
		*error_r = err;
		destroy(b);
		return -1;
	}
	*b_r = b;
	return 0;
}

void bstore_close(bstore **bp)
{
	if (bp == NULL || *bp == NULL)
		return;
	destroy(*bp);
	*bp = NULL;
}
