/*
 * store-mailq.c — the mail queue (store.h "Mail queue", issue 5) in the
 * store's SQLite database: outbound SMTP messages, one row per (message,
 * destination domain), the body stored once and shared by the rows.
 * Writes run as jobs of the store's writer thread (store-private.h), in
 * its group commits: store_mailq_put and store_delivery.outbound call
 * back after the fsync'd COMMIT; lease, update and the admin operations
 * wait for theirs.  list, get, stats and next read on the read
 * connection.  No other I/O.
 *
 * Tables (created if missing at every open; existing data is kept):
 *   mailq(id, body, domain, lane, state, attempts, warned, created,
 *         expires, next_attempt, leased_until, box)
 *     id random in [1, 2^63); body = mailq_body.id, NULL once BOUNCED;
 *     domain lower-cased; next_attempt of a BOUNCED row = when it bounced;
 *     leased_until = end of the running lease (0 none), so that releasing
 *     a row held during its attempt does not hand it out twice.
 *     box = seal_mailq("mailq" ‖ u64 id, meta)
 *   mailq_body(id, size, box)         id random in [1, 2^63)
 *     box = seal_mailq("mailq_body" ‖ u64 id, 01 ‖ body)
 * meta = 01 ‖ u64 body id (0: none) ‖ str domain ‖ u8 ret ‖ str sender ‖
 *        str sender_did ‖ str envid ‖ str msgid ‖ str last_reply ‖
 *        u32 n ‖ n × (str addr ‖ str orcpt ‖ u32 notify ‖ str reply)
 * str = u32 length ‖ bytes, or u32 0xffffffff for NULL.  seal_mailq uses
 * subkey 5 (store-sqlite.c, "Keys").  A meta naming another domain or body
 * than its row's clear columns, a lane or state out of range, or a body
 * that does not open is corrupt: the row (and a body that fails, with all
 * its rows) moves to the quarantine table and is skipped.
 *
 * Refused with -1 before anything is written: more than MAILQ_RCPTS_MAX
 * recipients or none, a body of 0 or more than MAILQ_BODY_MAX bytes,
 * strings over their MAILQ_*_MAX, addresses with CR, LF, space, '<', '>'
 * or other control characters, a recipient without local part or domain,
 * lane or ret out of range, unknown NOTIFY bits or NEVER with another.
 * Reply texts are cut to MAILQ_REPLY_MAX bytes (on a UTF-8 boundary) and
 * their control characters become spaces.
 */
#include "store-private.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MQ_FORMAT 1u
#define STR_NULL UINT32_MAX
#define MQ_DOMAIN_MAX 255u
/* the columns row_open reads; next_attempt is the 10th (ORDER BY 10) */
#define MQ_COLS "id, body, domain, lane, state, attempts, warned, created, " \
		"expires, next_attempt, box"

_Static_assert(MQ_DOMAIN_MAX < sizeof(((mailq_item *)0)->domain),
	       "mail queue item domain buffer");
_Static_assert(MAILQ_BODY_MAX + MQ_BODY_HDR <= ROW_MAX, "mail queue body");

typedef struct mq_rc {
	char *addr, *orcpt;
	unsigned notify;
	size_t dom;                     /* index into mq_copy.dom */
} mq_rc;

struct mq_copy {
	char *sender, *sender_did, *envid, *msgid;
	unsigned ret, lane;
	uint64_t created, expires;
	uint8_t *body;                  /* wiped before free */
	size_t body_len;
	mq_rc *rc;
	size_t n_rc;
	char (*dom)[MQ_DOMAIN_MAX + 1];
	size_t n_dom;
};

typedef enum mq_op {
	MQ_LEASE,
	MQ_UPDATE,
	MQ_HOLD,
	MQ_RELEASE,
	MQ_FLUSH,
	MQ_DELETE,
	MQ_PURGE,
	MQ_QUARANTINE,          /* rows and bodies a read found corrupt */
} mq_op;

struct mq_job {
	mq_op op;
	uint64_t id, now, lease;
	unsigned lane;
	size_t max;
	/* lease: results */
	mailq_item *items;
	size_t n_items;
	/* update (the outcome is borrowed; its DSN parts are copies) */
	const mailq_outcome *o;
	dlv dsn_inbox;
	bool has_dsn_inbox;
	mq_copy *dsn_mail;
	/* quarantine */
	const uint64_t *bad_rows, *bad_bodies;
	size_t n_bad_rows, n_bad_bodies;
	/* results */
	int changed;            /* admin: rows changed */
	bool gone;              /* update: the row was not there */
};

struct mq_stmts {
	sqlite3_stmt *w_body_put, *w_body_get, *w_body_gc, *w_body_quar;
	sqlite3_stmt *w_body_del, *w_body_of, *w_rows_of;
	sqlite3_stmt *w_row_put, *w_due, *w_get, *w_lease, *w_set, *w_del;
	sqlite3_stmt *w_row_quar, *w_hold_one, *w_hold_all, *w_rel_one;
	sqlite3_stmt *w_rel_all, *w_flush, *w_del_all, *w_body_del_all;
	sqlite3_stmt *w_purge;
	sqlite3_stmt *r_get, *r_body, *r_count, *r_oldest, *r_bytes, *r_next;
};

static const char mq_schema_sql[] =
	"BEGIN IMMEDIATE;"
	"CREATE TABLE IF NOT EXISTS mailq("
	"  id INTEGER PRIMARY KEY,"
	"  body INTEGER,"
	"  domain TEXT NOT NULL,"
	"  lane INTEGER NOT NULL,"
	"  state INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL,"
	"  warned INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  next_attempt INTEGER NOT NULL,"
	"  leased_until INTEGER NOT NULL,"
	"  box BLOB NOT NULL);"
	"CREATE INDEX IF NOT EXISTS mailq_due"
	"  ON mailq(lane, state, next_attempt);"
	"CREATE INDEX IF NOT EXISTS mailq_domain ON mailq(domain);"
	"CREATE INDEX IF NOT EXISTS mailq_body_ref ON mailq(body);"
	"CREATE TABLE IF NOT EXISTS mailq_body("
	"  id INTEGER PRIMARY KEY,"
	"  size INTEGER NOT NULL,"
	"  box BLOB NOT NULL);"
	"COMMIT;";

typedef struct mq_stmt_def {
	size_t off;
	bool read;
	const char *sql;
} mq_stmt_def;

#define W(f, q) { offsetof(mq_stmts, f), false, q }
#define R(f, q) { offsetof(mq_stmts, f), true, q }
static const mq_stmt_def mq_stmt_defs[] = {
	W(w_body_put, "INSERT INTO mailq_body(id, size, box) VALUES(?, ?, ?)"),
	W(w_body_get, "SELECT box FROM mailq_body WHERE id=?"),
	W(w_body_gc, "DELETE FROM mailq_body WHERE id=?1 AND NOT EXISTS "
		     "(SELECT 1 FROM mailq WHERE body=?1)"),
	W(w_body_quar, "INSERT INTO quarantine(id, next_attempt, box, at) "
		       "SELECT id, -3, box, ?2 FROM mailq_body WHERE id=?1"),
	W(w_body_del, "DELETE FROM mailq_body WHERE id=?"),
	W(w_body_of, "SELECT body FROM mailq WHERE id=?"),
	W(w_rows_of, "SELECT id FROM mailq WHERE body=? LIMIT 1"),
	W(w_row_put, "INSERT INTO mailq(id, body, domain, lane, state, "
		     "attempts, warned, created, expires, next_attempt, "
		     "leased_until, box) "
		     "VALUES(?1, ?2, ?3, ?4, 0, 0, 0, ?5, ?6, ?5, 0, ?7)"),
	/* four index ranges merged in order (no sort of the whole lane):
	 * ACTIVE and DEFERRED rows due, then those implausibly far ahead */
	W(w_due, "SELECT " MQ_COLS " FROM mailq WHERE lane=?1 AND state=0 "
		 "AND next_attempt<=?2 UNION ALL "
		 "SELECT " MQ_COLS " FROM mailq WHERE lane=?1 AND state=1 "
		 "AND next_attempt<=?2 UNION ALL "
		 "SELECT " MQ_COLS " FROM mailq WHERE lane=?1 AND state=0 "
		 "AND next_attempt>?3 UNION ALL "
		 "SELECT " MQ_COLS " FROM mailq WHERE lane=?1 AND state=1 "
		 "AND next_attempt>?3 "
		 "ORDER BY 10, 1 LIMIT ?4"),
	W(w_get, "SELECT " MQ_COLS " FROM mailq WHERE id=?"),
	W(w_lease, "UPDATE mailq SET state=0, attempts=attempts+1, "
		   "next_attempt=?2, leased_until=?2 WHERE id=?1"),
	W(w_set, "UPDATE mailq SET state=?2, next_attempt=?3, leased_until=0, "
		 "warned=?4, body=?5, box=?6 WHERE id=?1"),
	W(w_del, "DELETE FROM mailq WHERE id=?"),
	W(w_row_quar, "INSERT INTO quarantine(id, next_attempt, box, at) "
		      "SELECT id, -2, box, ?2 FROM mailq WHERE id=?1"),
	W(w_hold_one, "UPDATE mailq SET state=2 "
		      "WHERE id=? AND state IN (0, 1)"),
	W(w_hold_all, "UPDATE mailq SET state=2 WHERE state IN (0, 1)"),
	/* a row held during its lease comes back when the lease ends */
	W(w_rel_one, "UPDATE mailq SET state=0, next_attempt=CASE WHEN "
		     "leased_until>?2 AND leased_until<=?3 THEN leased_until "
		     "ELSE ?2 END WHERE id=?1 AND state=2"),
	W(w_rel_all, "UPDATE mailq SET state=0, next_attempt=CASE WHEN "
		     "leased_until>?2 AND leased_until<=?3 THEN leased_until "
		     "ELSE ?2 END WHERE state=2"),
	W(w_flush, "UPDATE mailq SET state=0, next_attempt=? WHERE state=1"),
	W(w_del_all, "DELETE FROM mailq"),
	W(w_body_del_all, "DELETE FROM mailq_body"),
	W(w_purge, "DELETE FROM mailq WHERE state=3 AND next_attempt<?"),
	R(r_get, "SELECT " MQ_COLS " FROM mailq WHERE id=?"),
	R(r_body, "SELECT box FROM mailq_body WHERE id=?"),
	R(r_count, "SELECT lane, state, count(*) FROM mailq "
		   "GROUP BY lane, state"),
	R(r_oldest, "SELECT lane, min(created) FROM mailq WHERE state<3 "
		    "GROUP BY lane"),
	R(r_bytes, "SELECT coalesce(sum(size), 0) FROM mailq_body"),
	R(r_next, "SELECT min(v) FROM ("
		  "SELECT min(next_attempt) AS v FROM mailq "
		  "WHERE lane=?1 AND state=0 UNION ALL "
		  "SELECT min(next_attempt) FROM mailq "
		  "WHERE lane=?1 AND state=1)"),
};
#undef W
#undef R

static sqlite3_stmt **mq_stmt_at(mq_stmts *m, const mq_stmt_def *d)
{
	return (sqlite3_stmt **)(void *)((char *)m + d->off);
}

/* --------------------------------------------------------------- helpers */

/* Small allocations: out of memory aborts (STYLE.md). */
static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n != 0 ? n : 1, size != 0 ? size : 1);
	if (p == NULL)
		abort();
	return p;
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = xcalloc(1, n + 1);
	memcpy(p, s, n);
	return p;
}

static void free_str(char *p)
{
	if (p != NULL)
		free_wiped(p, strlen(p));
}

static bool is_ctl(uint8_t c)
{
	return c < 0x20 || c == 0x7f;
}

/* An address (no CR, LF, space, <, > or other controls), 0..max bytes. */
static bool addr_chars_ok(const char *s, size_t max, size_t *len_r)
{
	size_t n = strnlen(s, max + 1);
	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];
		if (is_ctl(c) || c == ' ' || c == '<' || c == '>')
			return false;
	}
	*len_r = n;
	return true;
}

/* xtext-like parameter (ENVID, ORCPT) or a DID: 1..max, no space or
 * controls. */
static bool token_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (is_ctl((uint8_t)s[i]) || s[i] == ' ')
			return false;
	}
	return true;
}

static bool msgid_ok(const char *s)
{
	size_t n = strnlen(s, MAILQ_MSGID_MAX + 1);
	if (n > MAILQ_MSGID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (is_ctl((uint8_t)s[i]) && s[i] != '\t')
			return false;
	}
	return true;
}

/* A domain as stored: 1..255 bytes, no controls, space, '@', '<', '>'. */
static bool mq_domain_ok(const char *s, size_t n)
{
	if (n == 0 || n > MQ_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];
		if (is_ctl(c) || c == ' ' || c == '@' || c == '<' || c == '>')
			return false;
	}
	return true;
}

static void lower_ascii(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	}
}

/* A reply text as kept: at most MAILQ_REPLY_MAX bytes, cut on a UTF-8
 * boundary, control characters turned into spaces. */
static char *reply_copy(const char *s)
{
	if (s == NULL)
		return NULL;
	size_t n = strnlen(s, MAILQ_REPLY_MAX + 1);
	if (n > MAILQ_REPLY_MAX) {
		n = MAILQ_REPLY_MAX;
		while (n > 0 && ((uint8_t)s[n] & 0xc0) == 0x80)
			n--;
	}
	char *p = xstrndup(s, n);
	for (size_t i = 0; i < n; i++) {
		if (is_ctl((uint8_t)p[i]))
			p[i] = ' ';
	}
	return p;
}

static uint64_t random_id(void)
{
	uint64_t id;
	do {
		randombytes_buf(&id, sizeof(id));
		id &= INT64_MAX;
	} while (id == 0);
	return id;
}

static void ad_mailq(ad *a, const char *table, uint64_t id)
{
	uint8_t b[8];
	put_u64(b, id);
	ad_make(a, table, b, 8);
}

/* ----------------------------------------------------- the owned copy */

void store_mq_copy_free(mq_copy **cp)
{
	if (cp == NULL || *cp == NULL)
		return;
	mq_copy *c = *cp;
	free_str(c->sender);
	free_str(c->sender_did);
	free_str(c->envid);
	free_str(c->msgid);
	free_wiped(c->body, c->body_len);
	for (size_t i = 0; i < c->n_rc; i++) {
		free_str(c->rc[i].addr);
		free_str(c->rc[i].orcpt);
	}
	free(c->rc);
	free(c->dom);
	free(c);
	*cp = NULL;
}

static bool notify_ok(unsigned n)
{
	if ((n & ~0xfu) != 0)
		return false;
	return !((n & MAILQ_NOTIFY_NEVER) != 0 && n != MAILQ_NOTIFY_NEVER);
}

/* Everything is checked before anything is copied. */
static bool msg_ok(const mailq_msg *m)
{
	size_t n;
	if (m == NULL || m->sender == NULL ||
	    !addr_chars_ok(m->sender, MAILQ_ADDR_MAX, &n) ||
	    (m->sender_did != NULL && !token_ok(m->sender_did, AMP_DID_MAX)) ||
	    (m->envid != NULL && !token_ok(m->envid, MAILQ_PARAM_MAX)) ||
	    (m->msgid != NULL && !msgid_ok(m->msgid)) || m->ret > 2 ||
	    m->lane >= MAILQ_LANES || m->rcpts == NULL || m->n_rcpts == 0 ||
	    m->n_rcpts > MAILQ_RCPTS_MAX || m->body == NULL ||
	    m->body_len == 0 || m->body_len > MAILQ_BODY_MAX)
		return false;
	for (size_t i = 0; i < m->n_rcpts; i++) {
		const mailq_rcpt *r = &m->rcpts[i];
		if (r->addr == NULL ||
		    !addr_chars_ok(r->addr, MAILQ_ADDR_MAX, &n) ||
		    (r->orcpt != NULL &&
		     !token_ok(r->orcpt, MAILQ_PARAM_MAX)) ||
		    !notify_ok(r->notify))
			return false;
		const char *at = strrchr(r->addr, '@');
		if (at == NULL || at == r->addr ||
		    !mq_domain_ok(at + 1, strlen(at + 1)))
			return false;
	}
	return true;
}

/* Same local part, domain in any case. */
static bool same_rcpt(const char *a, const char *b)
{
	const char *da = strrchr(a, '@'), *db = strrchr(b, '@');
	size_t la = (size_t)(da - a), lb = (size_t)(db - b);
	if (la != lb || memcmp(a, b, la) != 0 || strlen(da) != strlen(db))
		return false;
	for (size_t i = 0; da[i] != '\0'; i++) {
		char x = da[i], y = db[i];
		if (x >= 'A' && x <= 'Z')
			x = (char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (char)(y - 'A' + 'a');
		if (x != y)
			return false;
	}
	return true;
}

int store_mq_copy(const mailq_msg *m, mq_copy **c_r)
{
	*c_r = NULL;
	if (!msg_ok(m))
		return -1;
	mq_copy *c = xcalloc(1, sizeof(*c));
	c->body = malloc(m->body_len);
	if (c->body == NULL) {
		free(c);
		return -1;
	}
	memcpy(c->body, m->body, m->body_len);
	c->body_len = m->body_len;
	c->sender = xstrndup(m->sender, strlen(m->sender));
	if (m->sender_did != NULL)
		c->sender_did = xstrndup(m->sender_did, strlen(m->sender_did));
	if (m->envid != NULL)
		c->envid = xstrndup(m->envid, strlen(m->envid));
	if (m->msgid != NULL)
		c->msgid = xstrndup(m->msgid, strlen(m->msgid));
	c->ret = m->ret;
	c->lane = m->lane;
	c->created = m->created;
	c->expires = m->expires;
	c->rc = xcalloc(m->n_rcpts, sizeof(*c->rc));
	c->dom = xcalloc(m->n_rcpts, sizeof(*c->dom));
	for (size_t i = 0; i < m->n_rcpts; i++) {
		const mailq_rcpt *r = &m->rcpts[i];
		bool seen = false;
		for (size_t k = 0; k < c->n_rc && !seen; k++)
			seen = same_rcpt(c->rc[k].addr, r->addr);
		if (seen)
			continue;
		char dom[MQ_DOMAIN_MAX + 1];
		const char *at = strrchr(r->addr, '@');
		size_t dl = strlen(at + 1);
		memcpy(dom, at + 1, dl + 1);
		lower_ascii(dom);
		size_t d = 0;
		while (d < c->n_dom && strcmp(c->dom[d], dom) != 0)
			d++;
		if (d == c->n_dom)
			memcpy(c->dom[c->n_dom++], dom, dl + 1);
		mq_rc *o = &c->rc[c->n_rc++];
		o->addr = xstrndup(r->addr, strlen(r->addr));
		if (r->orcpt != NULL)
			o->orcpt = xstrndup(r->orcpt, strlen(r->orcpt));
		o->notify = r->notify;
		o->dom = d;
	}
	*c_r = c;
	return 0;
}

/* ------------------------------------------------------ meta encoding */

typedef struct wr {
	uint8_t *p;             /* NULL: only count */
	size_t len;
} wr;

static void w_bytes(wr *w, const void *b, size_t n)
{
	if (w->p != NULL)
		memcpy(w->p + w->len, b, n);
	w->len += n;
}

static void w_u8(wr *w, uint8_t v)
{
	w_bytes(w, &v, 1);
}

static void w_u32(wr *w, uint32_t v)
{
	uint8_t b[4];
	put_u32(b, v);
	w_bytes(w, b, 4);
}

static void w_u64(wr *w, uint64_t v)
{
	uint8_t b[8];
	put_u64(b, v);
	w_bytes(w, b, 8);
}

static void w_str(wr *w, const char *s)
{
	if (s == NULL) {
		w_u32(w, STR_NULL);
		return;
	}
	size_t n = strlen(s);
	w_u32(w, (uint32_t)n);
	w_bytes(w, s, n);
}

static void meta_write(wr *w, const mailq_item *it, uint64_t body)
{
	w_u8(w, MQ_FORMAT);
	w_u64(w, body);
	w_str(w, it->domain);
	w_u8(w, (uint8_t)it->ret);
	w_str(w, it->sender);
	w_str(w, it->sender_did);
	w_str(w, it->envid);
	w_str(w, it->msgid);
	w_str(w, it->last_reply);
	w_u32(w, (uint32_t)it->n_rcpts);
	for (size_t i = 0; i < it->n_rcpts; i++) {
		w_str(w, it->rcpts[i].addr);
		w_str(w, it->rcpts[i].orcpt);
		w_u32(w, it->rcpts[i].notify);
		w_str(w, it->rcpts[i].last_reply);
	}
}

/* The sealed meta of a row (its strings are borrowed from it), under the
 * row id: malloc'ed box, or NULL. */
static uint8_t *meta_seal(store *s, uint64_t id, const mailq_item *it,
			  uint64_t body, size_t *len_r)
{
	wr w = { NULL, 0 };
	meta_write(&w, it, body);
	if (w.len > ROW_MAX)
		return NULL;
	w.p = malloc(w.len);
	if (w.p == NULL)
		return NULL;
	size_t n = w.len;
	w.len = 0;
	meta_write(&w, it, body);
	ad a;
	ad_mailq(&a, "mailq", id);
	uint8_t *box = store_seal(s->mailq_key, &a, w.p, n, len_r);
	free_wiped(w.p, n);
	return box;
}

typedef struct rd {
	const uint8_t *p;
	size_t len, off;
	bool bad;
} rd;

static const uint8_t *r_take(rd *r, size_t n)
{
	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

static uint8_t r_u8(rd *r)
{
	const uint8_t *p = r_take(r, 1);
	return p != NULL ? p[0] : 0;
}

static uint32_t r_u32(rd *r)
{
	const uint8_t *p = r_take(r, 4);
	return p != NULL ? get_u32(p) : 0;
}

static uint64_t r_u64(rd *r)
{
	const uint8_t *p = r_take(r, 8);
	return p != NULL ? get_u64(p) : 0;
}

/* A string of at most max bytes without NUL, or NULL (absent, or bad). */
static char *r_str(rd *r, size_t max)
{
	uint32_t n = r_u32(r);
	if (r->bad || n == STR_NULL)
		return NULL;
	const uint8_t *p = n <= max ? r_take(r, n) : NULL;
	if (p == NULL || memchr(p, 0, n) != NULL) {
		r->bad = true;
		return NULL;
	}
	return xstrndup((const char *)p, n);
}

static void item_clear(mailq_item *it)
{
	free_str(it->sender);
	free_str(it->sender_did);
	free_str(it->envid);
	free_str(it->msgid);
	free_str(it->last_reply);
	for (size_t i = 0; it->rcpts != NULL && i < it->n_rcpts; i++) {
		free_str(it->rcpts[i].addr);
		free_str(it->rcpts[i].orcpt);
		free_str(it->rcpts[i].last_reply);
	}
	free(it->rcpts);
	free_wiped(it->body, it->body_len);
	memset(it, 0, sizeof(*it));
}

void mailq_items_free(mailq_item *items, size_t n)
{
	if (items == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		item_clear(&items[i]);
	free(items);
}

/* Parse meta into it (domain and body id checked by the caller). */
static bool meta_parse(const uint8_t *pt, size_t len, mailq_item *it,
		       char domain[MQ_DOMAIN_MAX + 1], uint64_t *body_r)
{
	rd r = { pt, len, 0, false };
	if (r_u8(&r) != MQ_FORMAT)
		return false;
	*body_r = r_u64(&r);
	char *d = r_str(&r, MQ_DOMAIN_MAX);
	if (d != NULL) {
		memcpy(domain, d, strlen(d) + 1);
		free(d);
	} else {
		r.bad = true;
	}
	it->ret = r_u8(&r);
	it->sender = r_str(&r, MAILQ_ADDR_MAX);
	it->sender_did = r_str(&r, AMP_DID_MAX);
	it->envid = r_str(&r, MAILQ_PARAM_MAX);
	it->msgid = r_str(&r, MAILQ_MSGID_MAX);
	it->last_reply = r_str(&r, MAILQ_REPLY_MAX);
	uint32_t n = r_u32(&r);
	if (r.bad || n == 0 || n > MAILQ_RCPTS_MAX || it->sender == NULL ||
	    it->ret > 2)
		return false;
	it->rcpts = xcalloc(n, sizeof(*it->rcpts));
	it->n_rcpts = n;
	for (uint32_t i = 0; i < n && !r.bad; i++) {
		struct mailq_item_rcpt *rc = &it->rcpts[i];
		rc->addr = r_str(&r, MAILQ_ADDR_MAX);
		rc->orcpt = r_str(&r, MAILQ_PARAM_MAX);
		rc->notify = r_u32(&r);
		rc->last_reply = r_str(&r, MAILQ_REPLY_MAX);
		if (rc->addr == NULL)
			r.bad = true;
	}
	return !r.bad && r.off == r.len;
}

/* Open the row at the statement's current result (MQ_COLS) into it:
 * 1, 0 corrupt (it is left empty), -1 out of memory.  *body_r: the body
 * id, 0 for none. */
static int row_open(store *s, sqlite3_stmt *st, mailq_item *it,
		    uint64_t *body_r)
{
	memset(it, 0, sizeof(*it));
	uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
	uint64_t body = sqlite3_column_type(st, 1) == SQLITE_NULL
				? 0 : (uint64_t)sqlite3_column_int64(st, 1);
	const unsigned char *dom = sqlite3_column_text(st, 2);
	size_t dom_len = (size_t)sqlite3_column_bytes(st, 2);
	sqlite3_int64 lane = sqlite3_column_int64(st, 3);
	sqlite3_int64 state = sqlite3_column_int64(st, 4);
	sqlite3_int64 attempts = sqlite3_column_int64(st, 5);
	if (dom == NULL || !mq_domain_ok((const char *)dom, dom_len) ||
	    strlen((const char *)dom) != dom_len || lane < 0 ||
	    lane >= MAILQ_LANES || state < MAILQ_ACTIVE ||
	    state > MAILQ_BOUNCED || attempts < 0 ||
	    (state != MAILQ_BOUNCED && body == 0))
		return 0;
	const void *box = sqlite3_column_blob(st, 10); /* then its size */
	size_t box_len = (size_t)sqlite3_column_bytes(st, 10);
	ad a;
	ad_mailq(&a, "mailq", id);
	uint8_t *pt;
	size_t len;
	int u = store_unseal(s->mailq_key, &a, box, box_len, &pt, &len);
	if (u != 1)
		return u;
	char sdom[MQ_DOMAIN_MAX + 1];
	uint64_t sbody = 0;
	bool ok = meta_parse(pt, len, it, sdom, &sbody);
	free_wiped(pt, len);
	if (!ok || sbody != body || strcmp(sdom, (const char *)dom) != 0) {
		item_clear(it);
		return 0;
	}
	it->id = id;
	memcpy(it->domain, dom, dom_len + 1);
	it->lane = (unsigned)lane;
	it->state = (mailq_state)state;
	it->attempts = attempts > UINT_MAX ? UINT_MAX : (unsigned)attempts;
	it->warned = sqlite3_column_int64(st, 6) != 0;
	it->created = (uint64_t)sqlite3_column_int64(st, 7);
	it->expires = (uint64_t)sqlite3_column_int64(st, 8);
	it->next_attempt = (uint64_t)sqlite3_column_int64(st, 9);
	*body_r = body;
	return 1;
}

/* Load body id (from st, a "SELECT box ... WHERE id=?" statement) into
 * it->body: 1, 0 missing or corrupt, -1 error. */
static int body_load(store *s, sqlite3_stmt *st, uint64_t body,
		     mailq_item *it)
{
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, clamp64(body));
	int rc = sqlite3_step(st), r;
	if (rc == SQLITE_ROW) {
		ad a;
		ad_mailq(&a, "mailq_body", body);
		uint8_t *pt;
		size_t len;
		const void *box = sqlite3_column_blob(st, 0); /* then size */
		size_t box_len = (size_t)sqlite3_column_bytes(st, 0);
		r = store_unseal(s->mailq_key, &a, box, box_len, &pt, &len);
		if (r == 1 && (len <= MQ_BODY_HDR || pt[0] != MQ_FORMAT)) {
			free_wiped(pt, len);
			r = 0;
		}
		if (r == 1) {
			it->body_len = len - MQ_BODY_HDR;
			memmove(pt, pt + MQ_BODY_HDR, it->body_len);
			sodium_memzero(pt + it->body_len, MQ_BODY_HDR);
			it->body = pt;
		}
	} else {
		r = rc == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_reset(st);
	return r;
}

/* ---------------------------------------------------- writer: helpers */

static int bind_step_id(sqlite3_stmt *st, uint64_t id)
{
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, clamp64(id));
	return store_step_done(st);
}

/* The body of row id (0 none) into *body_r: 0, or -1. */
static int body_of(store *s, uint64_t id, uint64_t *body_r)
{
	sqlite3_stmt *st = s->mq->w_body_of;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, clamp64(id));
	int rc = sqlite3_step(st);
	*body_r = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
			  ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Delete body when no row uses it any more. */
static int body_gc(store *s, uint64_t body)
{
	if (body == 0)
		return 0;
	return bind_step_id(s->mq->w_body_gc, body);
}

/* Move a body to the quarantine table (as it was) and delete it. */
static int body_quarantine_only(store *s, job *j, uint64_t body)
{
	sqlite3_stmt *st = s->mq->w_body_quar;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, clamp64(body));
	sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
	if (store_step_done(st) != 0)
		return -1;
	if (sqlite3_changes(s->wdb) > 0)
		j->quarantined_delta++;
	return bind_step_id(s->mq->w_body_del, body);
}

/* Move a row to the quarantine table; its body goes too when no other row
 * uses it (it may hold what an operator wants back). */
static int row_quarantine(store *s, job *j, uint64_t id)
{
	uint64_t body;
	if (body_of(s, id, &body) != 0)
		return -1;
	sqlite3_stmt *st = s->mq->w_row_quar;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, clamp64(id));
	sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
	if (store_step_done(st) != 0)
		return -1;
	if (sqlite3_changes(s->wdb) == 0)
		return 0; /* gone meanwhile */
	j->quarantined_delta++;
	if (bind_step_id(s->mq->w_del, id) != 0)
		return -1;
	if (body == 0)
		return 0;
	st = s->mq->w_rows_of;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, clamp64(body));
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE)
		return -1;
	return body_quarantine_only(s, j, body);
}

/* A body that does not open: it and every row using it are quarantined
 * (they cannot be delivered). */
static int body_quarantine(store *s, job *j, uint64_t body)
{
	for (;;) {
		sqlite3_stmt *st = s->mq->w_rows_of;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, clamp64(body));
		int rc = sqlite3_step(st);
		uint64_t id = 0;
		if (rc == SQLITE_ROW)
			id = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW)
			return -1;
		/* row_quarantine moves the body too after the last row */
		if (row_quarantine(s, j, id) != 0 ||
		    bind_step_id(s->mq->w_del, id) != 0)
			return -1;
	}
	return body_quarantine_only(s, j, body);
}

/* The body, sealed under a fresh random id (*id_r): 0, or -1. */
static int insert_body(store *s, const mq_copy *c, uint64_t *id_r)
{
	size_t n = MQ_BODY_HDR + c->body_len;
	uint8_t *pt = malloc(n);
	if (pt == NULL)
		return -1;
	pt[0] = MQ_FORMAT;
	memcpy(pt + MQ_BODY_HDR, c->body, c->body_len);
	int r = -1;
	for (int tries = 0; tries < QUEUE_ID_TRIES; tries++) {
		uint64_t id = random_id();
		ad a;
		size_t len;
		ad_mailq(&a, "mailq_body", id);
		uint8_t *box = store_seal(s->mailq_key, &a, pt, n, &len);
		if (box == NULL)
			break;
		sqlite3_stmt *st = s->mq->w_body_put;
		sqlite3_reset(st);
		int rc = SQLITE_ERROR;
		if (store_bind_blob(st, 3, box, len) == 0) {
			sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)c->body_len);
			rc = sqlite3_step(st);
			if (rc != SQLITE_DONE)
				rc = sqlite3_extended_errcode(s->wdb);
			sqlite3_reset(st);
		}
		free(box);
		if (rc == SQLITE_DONE) {
			*id_r = id;
			r = 0;
			break;
		}
		if (rc != SQLITE_CONSTRAINT_PRIMARYKEY)
			break;
	}
	free_wiped(pt, n);
	return r;
}

static int insert_row(store *s, const mq_copy *c, size_t dom, uint64_t body)
{
	mailq_item it;
	memset(&it, 0, sizeof(it));
	memcpy(it.domain, c->dom[dom], strlen(c->dom[dom]) + 1);
	it.sender = c->sender;
	it.sender_did = c->sender_did;
	it.envid = c->envid;
	it.msgid = c->msgid;
	it.ret = c->ret;
	it.rcpts = xcalloc(c->n_rc, sizeof(*it.rcpts));
	for (size_t i = 0; i < c->n_rc; i++) {
		if (c->rc[i].dom != dom)
			continue;
		struct mailq_item_rcpt *r = &it.rcpts[it.n_rcpts++];
		r->addr = c->rc[i].addr;
		r->orcpt = c->rc[i].orcpt;
		r->notify = c->rc[i].notify;
	}
	int r = -1;
	for (int tries = 0; tries < QUEUE_ID_TRIES; tries++) {
		uint64_t id = random_id();
		size_t len;
		uint8_t *box = meta_seal(s, id, &it, body, &len);
		if (box == NULL)
			break;
		sqlite3_stmt *st = s->mq->w_row_put;
		sqlite3_reset(st);
		int rc = SQLITE_ERROR;
		if (store_bind_blob(st, 7, box, len) == 0 &&
		    sqlite3_bind_text(st, 3, it.domain, -1, SQLITE_STATIC) ==
			    SQLITE_OK) {
			sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)body);
			sqlite3_bind_int64(st, 4, c->lane);
			sqlite3_bind_int64(st, 5, clamp64(c->created));
			sqlite3_bind_int64(st, 6, clamp64(c->expires));
			rc = sqlite3_step(st);
			if (rc != SQLITE_DONE)
				rc = sqlite3_extended_errcode(s->wdb);
			sqlite3_reset(st);
		}
		free(box);
		if (rc == SQLITE_DONE) {
			r = 0;
			break;
		}
		if (rc != SQLITE_CONSTRAINT_PRIMARYKEY)
			break;
	}
	free(it.rcpts); /* the strings are c's */
	return r;
}

int store_mq_insert(store *s, const mq_copy *c)
{
	uint64_t body;
	if (insert_body(s, c, &body) != 0)
		return -1;
	for (size_t d = 0; d < c->n_dom; d++) {
		if (insert_row(s, c, d, body) != 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------ writer: jobs */

static int run_lease(store *s, job *j, mq_job *m)
{
	uint64_t bad_rows[QUARANTINE_STEP], bad_bodies[QUARANTINE_STEP];
	size_t n_rows = 0, n_bodies = 0, cap = 0;
	int r = 0;
	sqlite3_stmt *st = s->mq->w_due;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, m->lane);
	sqlite3_bind_int64(st, 2, clamp64(m->now));
	sqlite3_bind_int64(st, 3, clamp64(add_sat(m->now, MAILQ_DELAY_MAX)));
	sqlite3_bind_int64(st, 4, clamp64(add_sat(m->max, QUARANTINE_STEP)));
	while (m->n_items < m->max && n_rows < QUARANTINE_STEP &&
	       n_bodies < QUARANTINE_STEP) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW ||
		    store_grow((void **)&m->items, &cap, m->n_items + 1,
			       sizeof(*m->items), m->max) != 0) {
			r = -1;
			break;
		}
		mailq_item *it = &m->items[m->n_items];
		uint64_t body;
		int o = row_open(s, st, it, &body);
		if (o < 0) {
			r = -1;
			break;
		}
		if (o == 0) {
			bad_rows[n_rows++] =
				(uint64_t)sqlite3_column_int64(st, 0);
			continue;
		}
		o = body_load(s, s->mq->w_body_get, body, it);
		if (o != 1) {
			item_clear(it);
			if (o < 0) {
				r = -1;
				break;
			}
			bad_bodies[n_bodies++] = body;
			continue;
		}
		m->n_items++;
	}
	sqlite3_reset(st);
	if (r != 0)
		return -1;
	for (size_t i = 0; i < n_bodies; i++) {
		if (body_quarantine(s, j, bad_bodies[i]) != 0)
			return -1;
	}
	for (size_t i = 0; i < n_rows; i++) {
		if (row_quarantine(s, j, bad_rows[i]) != 0)
			return -1;
	}
	uint64_t until = add_sat(m->now, m->lease);
	for (size_t i = 0; i < m->n_items; i++) {
		mailq_item *it = &m->items[i];
		st = s->mq->w_lease;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)it->id);
		sqlite3_bind_int64(st, 2, clamp64(until));
		if (store_step_done(st) != 0)
			return -1;
		it->state = MAILQ_ACTIVE;
		it->next_attempt = until;
		if (it->attempts < UINT_MAX)
			it->attempts++;
	}
	return 0;
}

/* Apply an outcome to the opened row it (id, body). */
static int apply_outcome(store *s, const mailq_outcome *o, mailq_item *it,
			 uint64_t body)
{
	if (o->n != it->n_rcpts || (o->n > 0 && o->done == NULL))
		return -1;
	size_t kept = 0;
	for (size_t i = 0; i < o->n; i++)
		kept += o->done[i] == 0;
	if (kept == 0 && !o->bounced) {
		if (bind_step_id(s->mq->w_del, it->id) != 0)
			return -1;
		return body_gc(s, body);
	}
	/* the recipients the new row keeps: the kept ones, or for a bounce
	 * the ones this outcome finished; replies replaced where given */
	bool bounce = kept == 0;
	mailq_item nw = *it;
	nw.rcpts = xcalloc(o->n, sizeof(*nw.rcpts));
	nw.n_rcpts = 0;
	char **fresh = xcalloc(o->n + 1, sizeof(*fresh));
	for (size_t i = 0; i < o->n; i++) {
		if (!bounce && o->done[i] != 0)
			continue;
		struct mailq_item_rcpt *r = &nw.rcpts[nw.n_rcpts++];
		*r = it->rcpts[i];
		if (o->reply != NULL && o->reply[i] != NULL)
			r->last_reply = fresh[i] = reply_copy(o->reply[i]);
	}
	nw.last_reply = fresh[o->n] = reply_copy(o->last_reply);
	mailq_state state = bounce ? MAILQ_BOUNCED
			   : it->state == MAILQ_HOLD ? MAILQ_HOLD
						     : MAILQ_DEFERRED;
	uint64_t next = o->next_attempt;
	if (bounce && next == 0)
		next = (uint64_t)time(NULL);
	uint64_t nbody = bounce ? 0 : body;
	size_t len;
	uint8_t *box = meta_seal(s, it->id, &nw, nbody, &len);
	for (size_t i = 0; i <= o->n; i++)
		free_str(fresh[i]);
	free(fresh);
	free(nw.rcpts);
	if (box == NULL)
		return -1;
	sqlite3_stmt *st = s->mq->w_set;
	sqlite3_reset(st);
	int r = -1;
	if (store_bind_blob(st, 6, box, len) == 0) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)it->id);
		sqlite3_bind_int64(st, 2, state);
		sqlite3_bind_int64(st, 3, clamp64(next));
		sqlite3_bind_int64(st, 4, it->warned || o->warned);
		if (nbody != 0)
			sqlite3_bind_int64(st, 5, (sqlite3_int64)nbody);
		else
			sqlite3_bind_null(st, 5);
		r = store_step_done(st);
	}
	free(box);
	if (r == 0 && bounce)
		r = body_gc(s, body);
	return r;
}

static int run_update(store *s, job *j, mq_job *m)
{
	sqlite3_stmt *st = s->mq->w_get;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, clamp64(m->o->id));
	int rc = sqlite3_step(st);
	mailq_item it;
	memset(&it, 0, sizeof(it));
	uint64_t body = 0;
	int o = 0;
	if (rc == SQLITE_ROW)
		o = row_open(s, st, &it, &body);
	sqlite3_reset(st);
	if ((rc != SQLITE_ROW && rc != SQLITE_DONE) || o < 0)
		return -1;
	if (rc == SQLITE_ROW && o == 0 &&
	    row_quarantine(s, j, m->o->id) != 0)
		return -1;
	m->gone = o != 1;
	if (o == 1) {
		int r = 0;
		if (it.state != MAILQ_BOUNCED)
			r = apply_outcome(s, m->o, &it, body);
		m->gone = it.state == MAILQ_BOUNCED;
		item_clear(&it);
		if (r != 0)
			return -1;
	}
	if (m->has_dsn_inbox && store_run_deliver(s, j, &m->dsn_inbox) != 0)
		return -1;
	if (m->dsn_mail != NULL && store_mq_insert(s, m->dsn_mail) != 0)
		return -1;
	return 0;
}

static int run_changes(store *s, mq_job *m, sqlite3_stmt *st)
{
	if (store_step_done(st) != 0)
		return -1;
	m->changed = sqlite3_changes(s->wdb);
	return 0;
}

static int run_admin(store *s, mq_job *m)
{
	mq_stmts *q = s->mq;
	sqlite3_stmt *st;
	uint64_t body = 0;
	switch (m->op) {
	case MQ_HOLD:
		st = m->id != 0 ? q->w_hold_one : q->w_hold_all;
		sqlite3_reset(st);
		if (m->id != 0)
			sqlite3_bind_int64(st, 1, clamp64(m->id));
		return run_changes(s, m, st);
	case MQ_RELEASE:
		st = m->id != 0 ? q->w_rel_one : q->w_rel_all;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, clamp64(m->id));
		sqlite3_bind_int64(st, 2, clamp64(m->now));
		sqlite3_bind_int64(st, 3,
				   clamp64(add_sat(m->now, MAILQ_DELAY_MAX)));
		return run_changes(s, m, st);
	case MQ_FLUSH:
		st = q->w_flush;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, clamp64(m->now));
		return run_changes(s, m, st);
	case MQ_DELETE:
		if (m->id == 0) {
			sqlite3_reset(q->w_del_all);
			if (run_changes(s, m, q->w_del_all) != 0)
				return -1;
			sqlite3_reset(q->w_body_del_all);
			return store_step_done(q->w_body_del_all);
		}
		if (body_of(s, m->id, &body) != 0 ||
		    bind_step_id(q->w_del, m->id) != 0)
			return -1;
		m->changed = sqlite3_changes(s->wdb);
		return body_gc(s, body);
	case MQ_PURGE:
		/* BOUNCED rows have no body */
		st = q->w_purge;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, clamp64(m->now));
		return run_changes(s, m, st);
	default:
		return -1;
	}
}

static int run_quarantine(store *s, job *j, mq_job *m)
{
	for (size_t i = 0; i < m->n_bad_bodies; i++) {
		if (body_quarantine(s, j, m->bad_bodies[i]) != 0)
			return -1;
	}
	for (size_t i = 0; i < m->n_bad_rows; i++) {
		if (row_quarantine(s, j, m->bad_rows[i]) != 0)
			return -1;
	}
	return 0;
}

int store_mq_run(store *s, job *j)
{
	mq_job *m = j->mq;
	switch (m->op) {
	case MQ_LEASE:
		return run_lease(s, j, m);
	case MQ_UPDATE:
		return run_update(s, j, m);
	case MQ_QUARANTINE:
		return run_quarantine(s, j, m);
	default:
		return run_admin(s, m);
	}
}

static int mq_run_sync(store *s, mq_job *m)
{
	job j;
	memset(&j, 0, sizeof(j));
	j.kind = JOB_MAILQ;
	j.mq = m;
	return store_run_sync(s, &j);
}

/* --------------------------------------------------------- lifecycle */

const char *store_mq_open(store *s)
{
	if (!store_exec_ok(s->wdb, mq_schema_sql)) {
		store_exec_ok(s->wdb, "ROLLBACK");
		return "cannot create the mail queue tables";
	}
	s->mq = calloc(1, sizeof(*s->mq));
	if (s->mq == NULL)
		return "out of memory";
	for (size_t i = 0; i < sizeof(mq_stmt_defs) / sizeof(mq_stmt_defs[0]);
	     i++) {
		const mq_stmt_def *d = &mq_stmt_defs[i];
		if (sqlite3_prepare_v2(d->read ? s->rdb : s->wdb, d->sql, -1,
				       mq_stmt_at(s->mq, d), NULL) != SQLITE_OK)
			return "cannot prepare the mail queue statements";
	}
	return NULL;
}

void store_mq_close(store *s)
{
	if (s->mq == NULL)
		return;
	for (size_t i = 0; i < sizeof(mq_stmt_defs) / sizeof(mq_stmt_defs[0]);
	     i++) {
		sqlite3_stmt **st = mq_stmt_at(s->mq, &mq_stmt_defs[i]);
		sqlite3_finalize(*st);
		*st = NULL;
	}
	free(s->mq);
	s->mq = NULL;
}

/* -------------------------------------------------------- public API */

int store_mailq_put(store *s, const mailq_msg *m, store_deliver_cb *cb,
		    void *arg)
{
	if (s == NULL || cb == NULL)
		return -1;
	job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -1;
	if (store_mq_copy(m, &j->d.outbound) != 0) {
		free(j);
		return -1;
	}
	j->kind = JOB_DELIVER;
	j->d.no_dedupe = true;
	j->deliver_cb = cb;
	j->arg = arg;
	if (store_enqueue(s, j) != 0) {
		store_dlv_free(&j->d);
		free(j);
		return -1;
	}
	return 0;
}

int store_mailq_lease(store *s, unsigned lane, uint64_t now, uint64_t lease,
		      size_t max, mailq_item **items_r, size_t *n_r)
{
	*items_r = NULL;
	*n_r = 0;
	if (lane >= MAILQ_LANES || lease > MAILQ_DELAY_MAX)
		return -1;
	if (max == 0)
		return 0;
	mq_job m = { .op = MQ_LEASE, .lane = lane, .now = now, .lease = lease,
		     .max = max };
	int r = mq_run_sync(s, &m);
	if (r != 0 || m.n_items == 0) {
		mailq_items_free(m.items, m.n_items);
		return r;
	}
	*items_r = m.items;
	*n_r = m.n_items;
	return 0;
}

int store_mailq_update(store *s, const mailq_outcome *o)
{
	if (o == NULL || o->id == 0 || o->id > INT64_MAX ||
	    o->n > MAILQ_RCPTS_MAX)
		return -1;
	mq_job m = { .op = MQ_UPDATE, .o = o };
	if (o->dsn_inbox != NULL) {
		if (store_dlv_init(s, o->dsn_inbox, NULL, &m.dsn_inbox) != 0)
			return -1;
		m.has_dsn_inbox = true;
	}
	if (o->dsn_mail != NULL &&
	    store_mq_copy(o->dsn_mail, &m.dsn_mail) != 0) {
		store_dlv_free(&m.dsn_inbox);
		return -1;
	}
	int r = mq_run_sync(s, &m);
	store_dlv_free(&m.dsn_inbox);
	store_mq_copy_free(&m.dsn_mail);
	if (r != 0)
		return -1;
	return m.gone ? 1 : 0;
}

static int admin(store *s, mq_op op, uint64_t id, uint64_t now)
{
	if (id > INT64_MAX)
		return 0; /* no such row */
	mq_job m = { .op = op, .id = id, .now = now };
	if (mq_run_sync(s, &m) != 0)
		return -1;
	return m.changed;
}

int store_mailq_hold(store *s, uint64_t id)
{
	return admin(s, MQ_HOLD, id, 0);
}

int store_mailq_release(store *s, uint64_t id, uint64_t now)
{
	return admin(s, MQ_RELEASE, id, now);
}

int store_mailq_flush(store *s, uint64_t now)
{
	return admin(s, MQ_FLUSH, 0, now);
}

int store_mailq_delete(store *s, uint64_t id)
{
	return admin(s, MQ_DELETE, id, 0);
}

int store_mailq_purge(store *s, uint64_t before)
{
	return admin(s, MQ_PURGE, 0, before);
}

/* Quarantine what a read found corrupt. */
static int quarantine_found(store *s, const uint64_t *rows, size_t n_rows,
			    const uint64_t *bodies, size_t n_bodies)
{
	if (n_rows + n_bodies == 0)
		return 0;
	mq_job m = { .op = MQ_QUARANTINE, .bad_rows = rows,
		     .n_bad_rows = n_rows, .bad_bodies = bodies,
		     .n_bad_bodies = n_bodies };
	return mq_run_sync(s, &m);
}

int store_mailq_list(store *s, const mailq_filter *f, mailq_item **items_r,
		     size_t *n_r)
{
	*items_r = NULL;
	*n_r = 0;
	mailq_filter any = { .state = -1, .lane = -1 };
	if (f == NULL)
		f = &any;
	char dom[MQ_DOMAIN_MAX + 1];
	if (f->state < -1 || f->state > MAILQ_BOUNCED || f->lane < -1 ||
	    f->lane >= MAILQ_LANES)
		return -1;
	if (f->domain != NULL) {
		size_t n = strnlen(f->domain, MQ_DOMAIN_MAX + 1);
		if (!mq_domain_ok(f->domain, n))
			return -1;
		memcpy(dom, f->domain, n + 1);
		lower_ascii(dom);
	}
	char sql[256];
	int k = snprintf(sql, sizeof(sql),
			 "SELECT " MQ_COLS " FROM mailq WHERE 1%s%s%s "
			 "ORDER BY next_attempt, id",
			 f->state >= 0 ? " AND state=?1" : "",
			 f->lane >= 0 ? " AND lane=?2" : "",
			 f->domain != NULL ? " AND domain=?3" : "");
	if (k < 0 || (size_t)k >= sizeof(sql))
		return -1;
	mailq_item *items = NULL;
	uint64_t *bad = NULL;
	size_t n = 0, cap = 0, n_bad = 0, bad_cap = 0;
	size_t limit = f->limit != 0 ? f->limit : SIZE_MAX;
	int r = 0;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->rdb, sql, -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->rlock);
		return -1;
	}
	if (f->state >= 0)
		sqlite3_bind_int64(st, 1, f->state);
	if (f->lane >= 0)
		sqlite3_bind_int64(st, 2, f->lane);
	if (f->domain != NULL)
		sqlite3_bind_text(st, 3, dom, -1, SQLITE_STATIC);
	while (n < limit) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW ||
		    store_grow((void **)&items, &cap, n + 1, sizeof(*items),
			       limit) != 0) {
			r = -1;
			break;
		}
		uint64_t body;
		int o = row_open(s, st, &items[n], &body);
		if (o < 0) {
			r = -1;
			break;
		}
		if (o == 1) {
			n++;
			continue;
		}
		if (store_grow((void **)&bad, &bad_cap, n_bad + 1, sizeof(*bad),
			       SIZE_MAX / sizeof(*bad)) != 0) {
			r = -1;
			break;
		}
		bad[n_bad++] = (uint64_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->rlock);
	if (r == 0 && quarantine_found(s, bad, n_bad, NULL, 0) != 0)
		r = -1;
	free(bad);
	if (r != 0 || n == 0) {
		mailq_items_free(items, n);
		return r;
	}
	*items_r = items;
	*n_r = n;
	return 0;
}

int store_mailq_get(store *s, uint64_t id, bool with_body, mailq_item **item_r)
{
	*item_r = NULL;
	if (id == 0 || id > INT64_MAX)
		return 1;
	mailq_item *it = xcalloc(1, sizeof(*it));
	uint64_t body = 0;
	int o = 0, r;
	bool bad_body = false;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->mq->r_get;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		o = row_open(s, st, it, &body);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW && o == 1 && with_body && body != 0) {
		int b = body_load(s, s->mq->r_body, body, it);
		if (b < 0)
			o = -1;
		else if (b == 0)
			bad_body = true;
	}
	pthread_mutex_unlock(&s->rlock);
	if ((rc != SQLITE_ROW && rc != SQLITE_DONE) || o < 0)
		r = -1;
	else if (rc == SQLITE_DONE)
		r = 1;
	else if (o == 0)
		r = quarantine_found(s, &id, 1, NULL, 0) == 0 ? 1 : -1;
	else if (bad_body)
		r = quarantine_found(s, NULL, 0, &body, 1) == 0 ? 1 : -1;
	else
		r = 0;
	if (r != 0) {
		mailq_items_free(it, 1);
		return r;
	}
	*item_r = it;
	return 0;
}

int store_mailq_stats(store *s, mailq_stats *out)
{
	memset(out, 0, sizeof(*out));
	int r = 0;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->mq->r_count;
	sqlite3_reset(st);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_int64 lane = sqlite3_column_int64(st, 0);
		sqlite3_int64 state = sqlite3_column_int64(st, 1);
		if (lane >= 0 && lane < MAILQ_LANES && state >= 0 && state < 4)
			out->count[lane][state] =
				(uint64_t)sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		r = -1;
	st = s->mq->r_oldest;
	sqlite3_reset(st);
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_int64 lane = sqlite3_column_int64(st, 0);
		sqlite3_int64 v = sqlite3_column_int64(st, 1);
		if (lane >= 0 && lane < MAILQ_LANES)
			out->oldest[lane] = v > 0 ? (uint64_t)v : 0;
	}
	sqlite3_reset(st);
	if (r == 0 && rc != SQLITE_DONE)
		r = -1;
	st = s->mq->r_bytes;
	sqlite3_reset(st);
	if (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
		sqlite3_int64 v = sqlite3_column_int64(st, 0);
		out->bytes = v > 0 ? (uint64_t)v : 0;
	} else {
		r = -1;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->rlock);
	return r;
}

int store_mailq_next(store *s, unsigned lane, uint64_t *when_r)
{
	if (lane >= MAILQ_LANES)
		return -1;
	pthread_mutex_lock(&s->rlock);
	sqlite3_stmt *st = s->mq->r_next;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, lane);
	int r = store_read_time(st, when_r);
	pthread_mutex_unlock(&s->rlock);
	/* store_read_time: 1 a time, 0 none; here 0 a time, 1 none */
	return r < 0 ? -1 : r == 1 ? 0 : 1;
}
