/*
 * test-bstore.c — the bridge's local store (src/bridge/bstore.c) through
 * bstore.h and its imap_mbox_ops: every operation; UIDVALIDITY and
 * UIDNEXT across close/open and DELETE+CREATE; a wrong key refused; a
 * sealed blob swapped between two rows (raw SQL on the file) refused;
 * no plaintext in the database files; node deliveries deduplicated by
 * envelope id; RENAME INBOX and of a tree; COPY/MOVE UIDs in order;
 * EXPUNGE; the keyword table full; a view of 10,000 messages, with the
 * time of each append and of cached() printed (BSTORE_BENCH=n for
 * another count).
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bstore.h"
#include "imap-msg.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const uint8_t KEY[BSTORE_KEY_BYTES] = "0123456789abcdef0123456789abcde";
static const uint8_t KEY2[BSTORE_KEY_BYTES] = "fedcba9876543210fedcba987654321";

#define MARKER "Zebra-Quokka-7781"

typedef struct fx {
	char dir[64];
	char path[96];
	bstore *b;
	const imap_mbox_ops *ops;
} fx;

static void fx_open(fx *f)
{
	const char *err = NULL;
	if (bstore_open(f->path, KEY, &f->b, &err) != 0)
		fail_msg("bstore_open: %s", err);
	f->ops = bstore_ops();
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/amp-bstore-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	/* the store makes its own directory, 0700 */
	snprintf(f->path, sizeof(f->path), "%s/bridge/store.db", f->dir);
	fx_open(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	bstore_close(&f->b);
	assert_null(f->b);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void reopen(fx *f)
{
	bstore_close(&f->b);
	fx_open(f);
}

static char *make_msg(const char *subject, const char *body, size_t *len_r)
{
	char *m = malloc(1024 + strlen(body));
	assert_non_null(m);
	int n = snprintf(m, 1024 + strlen(body),
			 "From: Alice <alice@example.org>\r\n"
			 "To: bob@example.net\r\n"
			 "Subject: %s\r\n"
			 "Date: Thu, 01 Jan 2026 10:00:00 +0100\r\n"
			 "Message-ID: <%s@example.org>\r\n"
			 "\r\n%s\r\n", subject, subject, body);
	assert_true(n > 0);
	*len_r = (size_t)n;
	return m;
}

static uint32_t append(fx *f, const char *box, const char *subject,
		       uint64_t flags)
{
	size_t len;
	char *m = make_msg(subject, "hello " MARKER " body", &len);
	uint32_t uid = 0, uv = 0;
	const char *err = NULL;
	int r = f->ops->append(f->b, box, (const uint8_t *)m, len, flags,
			       1767225600, 60, &uid, &uv, &err);
	if (r != 0)
		fail_msg("append: %s", err);
	free(m);
	assert_true(uid > 0);
	assert_true(uv > 0);
	return uid;
}

static void st(fx *f, const char *box, imap_mbox_status *s)
{
	const char *err = NULL;
	if (f->ops->status(f->b, box, s, &err) != 0)
		fail_msg("status %s: %s", box, err);
}

static void view(fx *f, const char *box, imap_mbox_view *v)
{
	const char *err = NULL;
	if (f->ops->view(f->b, box, v, &err) != 0)
		fail_msg("view %s: %s", box, err);
}

/* The subject a cached ENVELOPE shows contains s. */
static void assert_subject(fx *f, const char *box, uint32_t uid,
			   const char *s)
{
	imap_mbox_cached c;
	const char *err = NULL;
	if (f->ops->cached(f->b, box, uid, &c, &err) != 0)
		fail_msg("cached %s %u: %s", box, uid, err);
	if (strstr(c.envelope, s) == NULL)
		fail_msg("envelope %s lacks %s", c.envelope, s);
}

/* ------------------------------------------------------------ the tests */

static void test_created(void **state)
{
	fx *f = *state;
	struct stat sb;
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	char dir[96];
	snprintf(dir, sizeof(dir), "%s/bridge", f->dir);
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);

	imap_mbox_info *l;
	size_t n;
	const char *err = NULL;
	assert_int_equal(f->ops->list(f->b, &l, &n, &err), 0);
	static const char *const names[] = { "INBOX", "Archive", "Drafts",
		"Junk", "Sent", "Trash", "Unverified" };
	static const imap_special sp[] = { IMAP_SPECIAL_NONE,
		IMAP_SPECIAL_ARCHIVE, IMAP_SPECIAL_DRAFTS, IMAP_SPECIAL_JUNK,
		IMAP_SPECIAL_SENT, IMAP_SPECIAL_TRASH, IMAP_SPECIAL_NONE };
	assert_int_equal(n, 7);
	uint32_t uvs[7];
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(l[i].name, names[i]);
		assert_int_equal(l[i].special, sp[i]);
		assert_true(l[i].subscribed);
		assert_false(l[i].noselect);
		imap_mbox_status s;
		st(f, names[i], &s);
		assert_int_equal(s.messages, 0);
		assert_int_equal(s.uidnext, 1);
		uvs[i] = s.uidvalidity;
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(uvs[i], uvs[j]);
	}
	free(l);
	/* one process at a time (the lock is per open file) */
	bstore *b2 = NULL;
	err = NULL;
	assert_int_equal(bstore_open(f->path, KEY, &b2, &err), -1);
	assert_null(b2);
	assert_non_null(strstr(err, "in use"));
	/* a second open of the same file: nothing new */
	reopen(f);
	assert_int_equal(f->ops->list(f->b, &l, &n, &err), 0);
	assert_int_equal(n, 7);
	free(l);
}

static void test_append_cached_read(void **state)
{
	fx *f = *state;
	size_t len;
	char *m = make_msg("Greetings", "hello " MARKER, &len);
	uint32_t uid, uv;
	const char *err = NULL;
	uint64_t g0 = bstore_generation(f->b);
	assert_int_equal(f->ops->append(f->b, "INBOX", (const uint8_t *)m, len,
					IMAP_FLAG_SEEN | 0x80, 1767225600, -300,
					&uid, &uv, &err), 0);
	assert_true(bstore_generation(f->b) > g0);
	assert_int_equal(uid, 1);
	imap_mbox_status s;
	st(f, "INBOX", &s);
	assert_int_equal(s.uidvalidity, uv);
	assert_int_equal(s.uidnext, 2);
	assert_int_equal(s.messages, 1);
	assert_int_equal(s.unseen, 0);

	imap_msg_info info;
	assert_int_equal(imap_msg_analyze((const uint8_t *)m, len, &info, &err), 0);
	imap_mbox_cached c;
	assert_int_equal(f->ops->cached(f->b, "INBOX", 1, &c, &err), 0);
	assert_int_equal(c.internaldate, 1767225600);
	assert_int_equal(c.tz_minutes, -300);
	assert_int_equal(c.size, len);
	assert_true(c.sent == info.sent);
	assert_string_equal(c.envelope, info.envelope);
	assert_string_equal(c.bodystructure, info.bodystructure);
	assert_string_equal(c.body, info.body);
	imap_msg_info_free(&info);

	uint8_t *p;
	size_t n;
	assert_int_equal(f->ops->read(f->b, "INBOX", 1, &p, &n, &err), 0);
	assert_int_equal(n, len);
	assert_memory_equal(p, m, len);
	f->ops->release(f->b, p, n);

	/* flags beyond the system ones and known keywords are dropped */
	imap_mbox_view v;
	view(f, "INBOX", &v);
	assert_int_equal(v.n, 1);
	assert_int_equal(v.uids[0], 1);
	assert_int_equal(v.flags[0], IMAP_FLAG_SEEN);
	assert_int_equal(v.uidvalidity, uv);
	assert_int_equal(v.uidnext, 2);
	imap_mbox_view_free(&v);

	/* errors: no mailbox, no message, empty message, now as date */
	assert_int_equal(f->ops->cached(f->b, "Nope", 1, &c, &err),
			 IMAP_MBOX_NONEXISTENT);
	assert_int_equal(f->ops->cached(f->b, "INBOX", 9, &c, &err), -1);
	assert_int_equal(f->ops->read(f->b, "INBOX", 9, &p, &n, &err), -1);
	assert_int_equal(f->ops->read(f->b, "Nope", 1, &p, &n, &err),
			 IMAP_MBOX_NONEXISTENT);
	assert_int_equal(f->ops->append(f->b, "Nope", (const uint8_t *)m, len,
					0, -1, 0, &uid, &uv, &err),
			 IMAP_MBOX_NONEXISTENT);
	assert_int_equal(f->ops->append(f->b, "INBOX", (const uint8_t *)m, 0,
					0, -1, 0, &uid, &uv, &err), -1);
	int64_t now = (int64_t)time(NULL);
	assert_int_equal(f->ops->append(f->b, "INBOX", (const uint8_t *)m, len,
					0, -1, 0, &uid, &uv, &err), 0);
	assert_int_equal(uid, 2);
	assert_int_equal(f->ops->cached(f->b, "INBOX", 2, &c, &err), 0);
	assert_true(c.internaldate >= now && c.internaldate <= now + 5);
	st(f, "INBOX", &s);
	assert_int_equal(s.unseen, 1);
	free(m);
}

static void test_uids_persist(void **state)
{
	fx *f = *state;
	const char *err = NULL;
	assert_int_equal(f->ops->create(f->b, "Work", &err), 0);
	assert_int_equal(f->ops->create(f->b, "Work", &err), IMAP_MBOX_EXISTS);
	assert_int_equal(f->ops->create(f->b, "INBOX", &err), IMAP_MBOX_EXISTS);
	imap_mbox_status s0, s1;
	st(f, "Work", &s0);
	for (int i = 0; i < 3; i++)
		append(f, "Work", "w", 0);
	reopen(f);
	st(f, "Work", &s1);
	assert_int_equal(s1.uidvalidity, s0.uidvalidity);
	assert_int_equal(s1.uidnext, 4);
	assert_int_equal(s1.messages, 3);

	/* DELETE + CREATE: UIDNEXT goes on, UIDVALIDITY grows */
	assert_int_equal(f->ops->delete(f->b, "Work", &err), 0);
	assert_int_equal(f->ops->status(f->b, "Work", &s1, &err),
			 IMAP_MBOX_NONEXISTENT);
	assert_int_equal(f->ops->create(f->b, "Work", &err), 0);
	st(f, "Work", &s1);
	assert_int_equal(s1.uidnext, 4);
	assert_int_equal(s1.messages, 0);
	assert_true(s1.uidvalidity > s0.uidvalidity);
	/* also across a close and a second deletion */
	reopen(f);
	uint32_t uid = append(f, "Work", "w2", 0);
	assert_int_equal(uid, 4);
	assert_int_equal(f->ops->delete(f->b, "Work", &err), 0);
	reopen(f);
	assert_int_equal(f->ops->create(f->b, "Work", &err), 0);
	imap_mbox_status s2;
	st(f, "Work", &s2);
	assert_int_equal(s2.uidnext, 5);
	assert_true(s2.uidvalidity > s1.uidvalidity);
	/* every UIDVALIDITY the store gave is new */
	assert_int_equal(f->ops->create(f->b, "Other", &err), 0);
	imap_mbox_status s3;
	st(f, "Other", &s3);
	assert_true(s3.uidvalidity > s2.uidvalidity);
}

static void test_wrong_key(void **state)
{
	fx *f = *state;
	append(f, "INBOX", "secret", 0);
	bstore_close(&f->b);
	bstore *b = NULL;
	const char *err = NULL;
	assert_int_equal(bstore_open(f->path, KEY2, &b, &err), -1);
	assert_null(b);
	assert_non_null(strstr(err, "wrong key"));
	fx_open(f);
	assert_subject(f, "INBOX", 1, "secret");
}

static void test_delete_refused(void **state)
{
	fx *f = *state;
	const char *err = NULL;
	static const char *const fixed[] = { "INBOX", "Sent", "Drafts",
		"Trash", "Junk", "Archive", "Unverified" };
	for (size_t i = 0; i < 7; i++) {
		err = NULL;
		assert_int_equal(f->ops->delete(f->b, fixed[i], &err), -1);
		assert_non_null(err);
		if (i > 0)
			assert_int_equal(f->ops->rename(f->b, fixed[i], "X", &err),
					 -1);
	}
	assert_int_equal(f->ops->delete(f->b, "Nope", &err),
			 IMAP_MBOX_NONEXISTENT);
	imap_mbox_info *l;
	size_t n;
	assert_int_equal(f->ops->list(f->b, &l, &n, &err), 0);
	assert_int_equal(n, 7);
	free(l);
}

/* I9: names are SQL values, never paths; the store's own bounds hold
 * even when the session's checks are bypassed. */
static void test_names(void **state)
{
	fx *f = *state;
	const char *err = NULL;
	static const char sql[] = "a'b\"; DROP TABLE message; --";
	const char *const odd[] = { "../x", "..", sql, "&-&", "x/../../y" };
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		assert_int_equal(f->ops->create(f->b, odd[i], &err), 0);
		append(f, odd[i], "odd", 0);
		assert_subject(f, odd[i], 1, "odd");
	}
	char path[160];
	snprintf(path, sizeof(path), "%s/x", f->dir);
	assert_int_not_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/bridge/x", f->dir);
	assert_int_not_equal(access(path, F_OK), 0);
	char *big = malloc(10240 + 1);
	assert_non_null(big);
	memset(big, 'n', 10240);
	big[10240] = '\0';
	assert_int_equal(f->ops->create(f->b, big, &err), -1);
	assert_int_equal(f->ops->status(f->b, big, &(imap_mbox_status){0}, &err),
			 IMAP_MBOX_NONEXISTENT);
	big[IMAP_MBOX_NAME_MAX] = '\0';
	assert_int_equal(f->ops->create(f->b, big, &err), 0);
	assert_int_equal(f->ops->rename(f->b, big, "short", &err), 0);
	free(big);
	/* at most BSTORE_DEPTH_MAX levels */
	char deep[2 * BSTORE_DEPTH_MAX + 2] = "";
	for (unsigned i = 0; i <= BSTORE_DEPTH_MAX; i++)
		memcpy(deep + (i == 0 ? 0 : 2 * i - 1), i == 0 ? "d" : "/d",
		       i == 0 ? 1 : 2);
	deep[2 * BSTORE_DEPTH_MAX + 1] = '\0';
	assert_int_equal(f->ops->create(f->b, deep, &err), -1);
	deep[2 * BSTORE_DEPTH_MAX - 1] = '\0';
	assert_int_equal(f->ops->create(f->b, deep, &err), 0);
	imap_mbox_info *l;
	size_t n;
	assert_int_equal(f->ops->list(f->b, &l, &n, &err), 0);
	free(l);
}

static void test_rename_inbox(void **state)
{
	fx *f = *state;
	const char *err = NULL;
	for (int i = 0; i < 3; i++)
		append(f, "INBOX", i == 0 ? "one" : i == 1 ? "two" : "three",
		       i == 1 ? IMAP_FLAG_FLAGGED : 0);
	uint32_t del[] = { 2 };
	assert_int_equal(f->ops->expunge(f->b, "INBOX", del, 1, &err), 0);
	imap_mbox_status in0;
	st(f, "INBOX", &in0);
	assert_int_equal(f->ops->rename(f->b, "INBOX", "Sent", &err),
			 IMAP_MBOX_EXISTS);
	assert_int_equal(f->ops->rename(f->b, "INBOX", "Old/Inbox", &err), 0);
	imap_mbox_status in1, o;
	st(f, "INBOX", &in1);
	assert_int_equal(in1.messages, 0);
	assert_int_equal(in1.uidnext, in0.uidnext);
	assert_int_equal(in1.uidvalidity, in0.uidvalidity);
	st(f, "Old/Inbox", &o);
	assert_int_equal(o.messages, 2);
	assert_true(o.uidvalidity > in0.uidvalidity);
	imap_mbox_view v;
	view(f, "Old/Inbox", &v);
	assert_int_equal(v.n, 2);
	assert_int_equal(v.uids[0], 1);
	assert_int_equal(v.uids[1], 2);
	imap_mbox_view_free(&v);
	assert_subject(f, "Old/Inbox", 1, "one");
	assert_subject(f, "Old/Inbox", 2, "three");
	uint8_t *p;
	size_t n;
	assert_int_equal(f->ops->read(f->b, "Old/Inbox", 2, &p, &n, &err), 0);
	assert_non_null(memmem(p, n, "three", 5));
	f->ops->release(f->b, p, n);
	/* new mail goes on in INBOX */
	assert_int_equal(append(f, "INBOX", "four", 0), in0.uidnext);
	/* the parent level is listed \Noselect */
	imap_mbox_info *l;
	size_t ln;
	assert_int_equal(f->ops->list(f->b, &l, &ln, &err), 0);
	bool seen_old = false;
	for (size_t i = 0; i < ln; i++)
		if (strcmp(l[i].name, "Old") == 0) {
			assert_true(l[i].noselect);
			seen_old = true;
		}
	assert_true(seen_old);
	free(l);
	/* not under INBOX (as Dovecot) */
	assert_int_equal(f->ops->rename(f->b, "INBOX", "INBOX/Later", &err), -1);
	assert_int_equal(f->ops->rename(f->b, "INBOX", "Later", &err), 0);
	imap_mbox_status e;
	st(f, "Later", &e);
	assert_int_equal(e.messages, 1);
	assert_subject(f, "Later", 1, "four");
	st(f, "INBOX", &e);
	assert_int_equal(e.messages, 0);
	assert_int_equal(e.uidnext, in0.uidnext + 1);
}

static void test_rename_tree(void **state)
{
	fx *f = *state;
	const char *err = NULL;
	assert_int_equal(f->ops->create(f->b, "a", &err), 0);
	assert_int_equal(f->ops->create(f->b, "a/b", &err), 0);
	assert_int_equal(f->ops->create(f->b, "a/b/c", &err), 0);
	assert_int_equal(f->ops->create(f->b, "ab", &err), 0);
	append(f, "a/b", "inner", 0);
	append(f, "a/b", "inner2", 0);
	imap_mbox_status s0;
	st(f, "a/b", &s0);
	assert_int_equal(f->ops->rename(f->b, "a", "ab", &err), IMAP_MBOX_EXISTS);
	assert_int_equal(f->ops->rename(f->b, "a", "a/x", &err), -1);
	assert_int_equal(f->ops->rename(f->b, "zz", "yy", &err),
			 IMAP_MBOX_NONEXISTENT);
	assert_int_equal(f->ops->rename(f->b, "a", "z/q", &err), 0);
	imap_mbox_info *l;
	size_t n;
	assert_int_equal(f->ops->list(f->b, &l, &n, &err), 0);
	const char *want[] = { "INBOX", "Archive", "Drafts", "Junk", "Sent",
		"Trash", "Unverified", "ab", "z", "z/q", "z/q/b", "z/q/b/c" };
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(l[i].name, want[i]);
		assert_int_equal(l[i].noselect, strcmp(want[i], "z") == 0);
	}
	free(l);
	imap_mbox_status s1;
	st(f, "z/q/b", &s1);
	assert_int_equal(s1.uidvalidity, s0.uidvalidity);
	assert_int_equal(s1.messages, 2);
	assert_subject(f, "z/q/b", 2, "inner2");
	assert_int_equal(f->ops->status(f->b, "a/b", &s1, &err),
			 IMAP_MBOX_NONEXISTENT);
	/* a name renamed away keeps its UIDNEXT for a new mailbox */
	assert_int_equal(f->ops->create(f->b, "a/b", &err), 0);
	st(f, "a/b", &s1);
	assert_int_equal(s1.uidnext, 3);
	/* deleting a parent keeps the children; the name becomes a level */
	assert_int_equal(f->ops->delete(f->b, "z/q", &err), 0);
	assert_int_equal(f->ops->list(f->b, &l, &n, &err), 0);
	bool level = false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i].name, "z/q") == 0)
			level = l[i].noselect;
	assert_true(level);
	free(l);
	st(f, "z/q/b", &s1);
	assert_int_equal(s1.messages, 2);
	/* a level without a mailbox renames its inferiors (as Dovecot) */
	assert_int_equal(f->ops->rename(f->b, "z/q", "lv", &err), 0);
	st(f, "lv/b/c", &s1);
	assert_int_equal(f->ops->status(f->b, "lv", &s1, &err),
			 IMAP_MBOX_NONEXISTENT);
	assert_subject(f, "lv/b", 1, "inner");
	assert_int_equal(f->ops->rename(f->b, "none/such", "x", &err),
			 IMAP_MBOX_NONEXISTENT);
	assert_int_equal(f->ops->rename(f->b, "lv/b/c", "lv/b/c/d", &err), -1);
}

static void test_subscribe(void **state)
{
	fx *f = *state;
	const char *err = NULL;
	assert_int_equal(f->ops->create(f->b, "News", &err), 0);
	assert_int_equal(f->ops->subscribe(f->b, "News", false, &err), 0);
	assert_int_equal(f->ops->subscribe(f->b, "Nope", true, &err),
			 IMAP_MBOX_NONEXISTENT);
	reopen(f);
	imap_mbox_info *l;
	size_t n;
	assert_int_equal(f->ops->list(f->b, &l, &n, &err), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(l[i].subscribed, strcmp(l[i].name, "News") != 0);
	free(l);
	assert_int_equal(f->ops->subscribe(f->b, "News", true, &err), 0);
}

static void test_copy_move(void **state)
{
	fx *f = *state;
	const char *err = NULL;
	assert_int_equal(f->ops->create(f->b, "Dest", &err), 0);
	append(f, "Dest", "already", 0);
	for (int i = 1; i <= 5; i++) {
		char s[16];
		snprintf(s, sizeof(s), "msg%d", i);
		append(f, "INBOX", s, i == 3 ? IMAP_FLAG_ANSWERED : 0);
	}
	/* COPY 4, 99 (gone), 2, in that order */
	uint32_t uids[] = { 4, 99, 2 }, nu[3], uv;
	assert_int_equal(f->ops->copy(f->b, "INBOX", uids, 3, "Dest", false,
				      nu, &uv, &err), 0);
	imap_mbox_status d;
	st(f, "Dest", &d);
	assert_int_equal(uv, d.uidvalidity);
	assert_int_equal(nu[0], 2);
	assert_int_equal(nu[1], 0);
	assert_int_equal(nu[2], 3);
	assert_int_equal(d.messages, 3);
	assert_subject(f, "Dest", 2, "msg4");
	assert_subject(f, "Dest", 3, "msg2");
	uint8_t *p;
	size_t n;
	assert_int_equal(f->ops->read(f->b, "Dest", 3, &p, &n, &err), 0);
	assert_non_null(memmem(p, n, "msg2", 4));
	f->ops->release(f->b, p, n);
	imap_mbox_status in;
	st(f, "INBOX", &in);
	assert_int_equal(in.messages, 5);

	/* MOVE 5, 3: flags kept, gone from INBOX */
	uint32_t mv[] = { 5, 3 };
	assert_int_equal(f->ops->copy(f->b, "INBOX", mv, 2, "Dest", true, nu,
				      &uv, &err), 0);
	assert_int_equal(nu[0], 4);
	assert_int_equal(nu[1], 5);
	st(f, "INBOX", &in);
	assert_int_equal(in.messages, 3);
	assert_int_equal(in.uidnext, 6);
	st(f, "Dest", &d);
	assert_int_equal(d.messages, 5);
	assert_int_equal(d.uidnext, 6);
	imap_mbox_view v;
	view(f, "Dest", &v);
	assert_int_equal(v.n, 5);
	assert_int_equal(v.uids[3], 4);
	assert_int_equal(v.flags[4], IMAP_FLAG_ANSWERED);
	imap_mbox_view_free(&v);
	assert_subject(f, "Dest", 4, "msg5");
	assert_subject(f, "Dest", 5, "msg3");
	assert_int_equal(f->ops->read(f->b, "Dest", 5, &p, &n, &err), 0);
	assert_non_null(memmem(p, n, "msg3", 4));
	f->ops->release(f->b, p, n);
	view(f, "INBOX", &v);
	assert_int_equal(v.n, 3);
	assert_int_equal(v.uids[0], 1);
	assert_int_equal(v.uids[1], 2);
	assert_int_equal(v.uids[2], 4);
	imap_mbox_view_free(&v);
	/* into the same mailbox: new UIDs */
	uint32_t one[] = { 1 };
	assert_int_equal(f->ops->copy(f->b, "INBOX", one, 1, "INBOX", false,
				      nu, &uv, &err), 0);
	assert_int_equal(nu[0], 6);
	assert_subject(f, "INBOX", 6, "msg1");
	assert_int_equal(f->ops->copy(f->b, "INBOX", one, 1, "Nope", false, nu,
				      &uv, &err), IMAP_MBOX_NONEXISTENT);
	assert_int_equal(f->ops->copy(f->b, "Nope", one, 1, "INBOX", true, nu,
				      &uv, &err), IMAP_MBOX_NONEXISTENT);
}

static void test_expunge_store(void **state)
{
	fx *f = *state;
	const char *err = NULL;
	for (int i = 0; i < 4; i++)
		append(f, "INBOX", "x", 0);
	uint32_t uids[] = { 1, 3, 7 };
	uint64_t fl[3];
	assert_int_equal(f->ops->store(f->b, "INBOX", uids, 3, IMAP_STORE_ADD,
				       IMAP_FLAG_DELETED | IMAP_FLAG_SEEN, fl,
				       &err), 0);
	assert_int_equal(fl[0], IMAP_FLAG_DELETED | IMAP_FLAG_SEEN);
	assert_int_equal(fl[2], 0);
	assert_int_equal(f->ops->store(f->b, "INBOX", uids, 1,
				       IMAP_STORE_REMOVE, IMAP_FLAG_SEEN, fl,
				       &err), 0);
	assert_int_equal(fl[0], IMAP_FLAG_DELETED);
	int kw = f->ops->keyword_add(f->b, "$Label1", &err);
	assert_int_equal(kw, 0);
	uint32_t four[] = { 4 };
	assert_int_equal(f->ops->store(f->b, "INBOX", four, 1, IMAP_STORE_SET,
				       IMAP_FLAG_KEYWORD(0) | IMAP_FLAG_KEYWORD(5)
				       | IMAP_FLAG_DRAFT, fl, &err), 0);
	assert_int_equal(fl[0], IMAP_FLAG_KEYWORD(0) | IMAP_FLAG_DRAFT);
	assert_int_equal(f->ops->store(f->b, "Nope", four, 1, IMAP_STORE_SET,
				       0, fl, &err), IMAP_MBOX_NONEXISTENT);
	imap_mbox_status s;
	st(f, "INBOX", &s);
	assert_int_equal(s.unseen, 3);

	uint32_t gone[] = { 1, 3, 42 };
	assert_int_equal(f->ops->expunge(f->b, "INBOX", gone, 3, &err), 0);
	reopen(f);
	imap_mbox_view v;
	view(f, "INBOX", &v);
	assert_int_equal(v.n, 2);
	assert_int_equal(v.uids[0], 2);
	assert_int_equal(v.uids[1], 4);
	assert_int_equal(v.flags[1], IMAP_FLAG_KEYWORD(0) | IMAP_FLAG_DRAFT);
	imap_mbox_view_free(&v);
	st(f, "INBOX", &s);
	assert_int_equal(s.messages, 2);
	assert_int_equal(s.uidnext, 5);
	imap_mbox_cached c;
	assert_int_equal(f->ops->cached(f->b, "INBOX", 3, &c, &err), -1);
	assert_int_equal(f->ops->expunge(f->b, "Nope", gone, 1, &err),
			 IMAP_MBOX_NONEXISTENT);
}

static void test_keywords_full(void **state)
{
	fx *f = *state;
	const char *err = NULL;
	const char *const *names;
	size_t n;
	assert_int_equal(f->ops->keywords(f->b, &names, &n), 0);
	assert_int_equal(n, 0);
	for (unsigned i = 0; i < IMAP_KEYWORDS_MAX; i++) {
		char kw[32];
		snprintf(kw, sizeof(kw), "kw%u", i);
		assert_int_equal(f->ops->keyword_add(f->b, kw, &err), (int)i);
	}
	assert_int_equal(f->ops->keyword_add(f->b, "one-more", &err), -1);
	assert_non_null(strstr(err, "too many"));
	/* known ones still answer, in any case */
	assert_int_equal(f->ops->keyword_add(f->b, "KW7", &err), 7);
	char big[IMAP_KEYWORD_LEN_MAX + 2];
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(f->ops->keyword_add(f->b, big, &err), -1);
	reopen(f);
	assert_int_equal(f->ops->keywords(f->b, &names, &n), 0);
	assert_int_equal(n, IMAP_KEYWORDS_MAX);
	assert_string_equal(names[0], "kw0");
	assert_string_equal(names[47], "kw47");
	/* the last keyword's bit is kept */
	append(f, "INBOX", "k", IMAP_FLAG_KEYWORD(47) | IMAP_FLAG_SEEN);
	imap_mbox_view v;
	view(f, "INBOX", &v);
	assert_int_equal(v.flags[0], IMAP_FLAG_KEYWORD(47) | IMAP_FLAG_SEEN);
	imap_mbox_view_free(&v);
}

static void test_deliver_dedup(void **state)
{
	fx *f = *state;
	const char *err = NULL;
	uint8_t id1[16], id2[16];
	memset(id1, 1, 16);
	memset(id2, 2, 16);
	size_t len;
	char *m = make_msg("delivered", "node mail", &len);
	uint32_t uid = 0;
	assert_int_equal(bstore_deliver(f->b, "INBOX", id1, (const uint8_t *)m,
					len, 1767225600, &uid, &err), 0);
	assert_int_equal(uid, 1);
	assert_int_equal(bstore_deliver(f->b, "INBOX", id1, (const uint8_t *)m,
					len, 1767225600, &uid, &err), 1);
	assert_int_equal(bstore_deliver(f->b, "Junk", id1, (const uint8_t *)m,
					len, 1767225600, &uid, &err), 1);
	assert_int_equal(bstore_deliver(f->b, BSTORE_UNVERIFIED, id2,
					(const uint8_t *)m, len, 1767225600,
					&uid, &err), 0);
	assert_int_equal(bstore_deliver(f->b, "Nope", (const uint8_t *)"xxxxxxxxxxxxxxxx",
					(const uint8_t *)m, len, 1767225600,
					&uid, &err), -1);
	assert_string_equal(err, "no such mailbox");
	imap_mbox_status s;
	st(f, "INBOX", &s);
	assert_int_equal(s.messages, 1);
	assert_int_equal(s.unseen, 1);
	/* still a duplicate after it was expunged, and after a reopen */
	uint32_t one[] = { 1 };
	assert_int_equal(f->ops->expunge(f->b, "INBOX", one, 1, &err), 0);
	reopen(f);
	assert_int_equal(bstore_deliver(f->b, "INBOX", id1, (const uint8_t *)m,
					len, 1767225600, &uid, &err), 1);
	st(f, "INBOX", &s);
	assert_int_equal(s.messages, 0);
	free(m);
}

static void test_cursor_generation(void **state)
{
	fx *f = *state;
	uint64_t c = 7;
	assert_int_equal(bstore_cursor_get(f->b, &c), 0);
	assert_int_equal(c, 0);
	assert_int_equal(bstore_cursor_set(f->b, UINT64_C(0xfedcba9876543210)), 0);
	reopen(f);
	assert_int_equal(bstore_cursor_get(f->b, &c), 0);
	assert_true(c == UINT64_C(0xfedcba9876543210));
	uint64_t g = bstore_generation(f->b);
	const char *err = NULL;
	assert_int_equal(f->ops->create(f->b, "G", &err), 0);
	assert_true(bstore_generation(f->b) > g);
	g = bstore_generation(f->b);
	assert_int_equal(f->ops->create(f->b, "G", &err), IMAP_MBOX_EXISTS);
	assert_int_equal(bstore_generation(f->b), g);
	append(f, "G", "x", 0);
	assert_true(bstore_generation(f->b) > g);
}

static sqlite3 *raw(fx *f)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void test_swapped_blob(void **state)
{
	fx *f = *state;
	const char *err = NULL;
	append(f, "INBOX", "first", 0);
	append(f, "INBOX", "second", 0);
	bstore_close(&f->b);
	sqlite3 *db = raw(f);
	/* swap the sealed bytes of the two rows, then their caches */
	assert_int_equal(sqlite3_exec(db,
		"CREATE TEMP TABLE o AS SELECT id, body, cache FROM message;"
		"UPDATE message SET body=(SELECT body FROM o "
		"WHERE o.id<>message.id);", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_changes(db), 2);
	assert_int_equal(sqlite3_exec(db,
		"UPDATE message SET cache=(SELECT cache FROM o "
		"WHERE o.id<>message.id) WHERE uid=2", NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	fx_open(f);
	uint8_t *p = NULL;
	size_t n;
	assert_int_equal(f->ops->read(f->b, "INBOX", 1, &p, &n, &err), -1);
	assert_null(p);
	assert_non_null(strstr(err, "does not open"));
	assert_int_equal(f->ops->read(f->b, "INBOX", 2, &p, &n, &err), -1);
	imap_mbox_cached c;
	err = NULL;
	assert_int_equal(f->ops->cached(f->b, "INBOX", 2, &c, &err), -1);
	assert_non_null(strstr(err, "does not open"));
	assert_int_equal(f->ops->cached(f->b, "INBOX", 1, &c, &err), 0);
	/* a copied row does not carry a bad blob into a new seal */
	uint32_t two[] = { 2 }, nu[1], uv;
	assert_int_equal(f->ops->copy(f->b, "INBOX", two, 1, "Trash", false, nu,
				      &uv, &err), -1);
	assert_non_null(strstr(err, "does not open"));
	/* a truncated blob */
	bstore_close(&f->b);
	db = raw(f);
	assert_int_equal(sqlite3_exec(db, "UPDATE message SET "
				      "cache=substr(cache, 1, 20) WHERE uid=1",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	fx_open(f);
	assert_int_equal(f->ops->cached(f->b, "INBOX", 1, &c, &err), -1);
}

static uint8_t *slurp(const char *path, size_t *n_r)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL) {
		*n_r = 0;
		return NULL;
	}
	size_t cap = 1 << 20, n = 0;
	uint8_t *p = malloc(cap);
	assert_non_null(p);
	size_t r;
	while ((r = fread(p + n, 1, cap - n, fp)) > 0) {
		n += r;
		if (n == cap) {
			cap *= 2;
			p = realloc(p, cap);
			assert_non_null(p);
		}
	}
	fclose(fp);
	*n_r = n;
	return p;
}

static void test_no_plaintext(void **state)
{
	fx *f = *state;
	append(f, "INBOX", "Subject-" MARKER, 0);
	uint8_t id[16] = { 9 };
	size_t len;
	char *m = make_msg("Delivered-" MARKER, MARKER, &len);
	const char *err = NULL;
	uint32_t uid;
	assert_int_equal(bstore_deliver(f->b, "INBOX", id, (const uint8_t *)m,
					len, 1767225600, &uid, &err), 0);
	free(m);
	uint32_t one[] = { 1 }, nu[1], uv;
	assert_int_equal(f->ops->copy(f->b, "INBOX", one, 1, "Archive", false,
				      nu, &uv, &err), 0);
	/* the WAL before a checkpoint, then the database after close */
	static const char *const sfx[] = { "", "-wal" };
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < 2; i++) {
			char path[128];
			snprintf(path, sizeof(path), "%s%s", f->path, sfx[i]);
			size_t n;
			uint8_t *p = slurp(path, &n);
			if (p == NULL)
				continue;
			assert_null(memmem(p, n, MARKER, strlen(MARKER)));
			assert_null(memmem(p, n, "alice@example.org", 17));
			free(p);
		}
		bstore_close(&f->b);
		if (pass == 0)
			fx_open(f);
	}
	fx_open(f);
	assert_subject(f, "Archive", 1, MARKER);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 10,000 appends (one transaction each), a view, cached() of each. */
static void test_big_view(void **state)
{
	fx *f = *state;
	const char *env = getenv("BSTORE_BENCH");
	unsigned count = 10000;
	if (env != NULL && env[0] >= '1' && env[0] <= '9')
		count = (unsigned)strtoul(env, NULL, 10);
	size_t len;
	char *m = make_msg("bulk message with a longer subject line", "body "
			   "text of a typical size, repeated a little: lorem "
			   "ipsum dolor sit amet consectetur", &len);
	const char *err = NULL;
	double t0 = now_s();
	for (unsigned i = 0; i < count; i++) {
		uint8_t id[16] = { 0 };
		memcpy(id, &i, sizeof(i));
		uint32_t uid;
		int r = i % 2 == 0
			? bstore_deliver(f->b, "INBOX", id, (const uint8_t *)m,
					 len, 1767225600 + i, &uid, &err)
			: f->ops->append(f->b, "INBOX", (const uint8_t *)m, len,
					 IMAP_FLAG_SEEN, 1767225600 + i, 0, &uid,
					 NULL, &err);
		if (r != 0)
			fail_msg("message %u: %s", i, err);
		assert_int_equal(uid, i + 1);
	}
	double t1 = now_s();
	imap_mbox_view v;
	view(f, "INBOX", &v);
	double t2 = now_s();
	assert_int_equal(v.n, count);
	for (unsigned i = 0; i < count; i++) {
		assert_int_equal(v.uids[i], i + 1);
		assert_int_equal(v.flags[i], i % 2 ? IMAP_FLAG_SEEN : 0);
	}
	double t3 = now_s();
	size_t total = 0;
	for (unsigned i = 0; i < count; i++) {
		imap_mbox_cached c;
		if (f->ops->cached(f->b, "INBOX", v.uids[i], &c, &err) != 0)
			fail_msg("cached %u: %s", v.uids[i], err);
		total += strlen(c.envelope);
		assert_int_equal(c.internaldate, 1767225600 + i);
	}
	double t4 = now_s();
	imap_mbox_view_free(&v);
	assert_true(total > 0);
	imap_mbox_status s;
	st(f, "INBOX", &s);
	assert_int_equal(s.messages, count);
	assert_int_equal(s.unseen, (count + 1) / 2);
	fprintf(stderr, "bstore bench: %u messages of %zu bytes: append/deliver "
		"%.3f s (%.2f ms each, one fsync'd transaction), view %.2f ms, "
		"cached() %.2f ms total (%.1f us each)\n", count, len, t1 - t0,
		(t1 - t0) * 1e3 / count, (t2 - t1) * 1e3, (t4 - t3) * 1e3,
		(t4 - t3) * 1e6 / count);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_created, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_cached_read, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_uids_persist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_inbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge_store, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keywords_full, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deliver_dedup, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cursor_generation, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_swapped_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_plaintext, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_view, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
