/*
 * imap-memstore.c — see imap-memstore.h.  Mailboxes and messages in
 * plain arrays; messages in UID order (found by binary search),
 * mailboxes found by a linear search.
 */
#include "imap-memstore.h"

#include "imap-msg.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct mmsg {
	uint32_t uid;
	uint64_t flags;
	uint8_t *data;
	size_t len;
	int64_t t;
	int32_t tz;
	imap_msg_info info;
} mmsg;

typedef struct mbox {
	char name[IMAP_MBOX_NAME_MAX + 1];
	imap_special special;
	bool subscribed;
	uint32_t uidvalidity, uidnext;
	size_t max;
	mmsg *m;
	size_t n, cap;
} mbox;

struct memstore {
	mbox *b;
	size_t n, cap;
	char *kw[IMAP_KEYWORDS_MAX];
	size_t nkw;
	uint32_t next_validity;
	size_t max;
	unsigned long reads, views;
};

static mbox *find(memstore *ms, const char *name)
{
	for (size_t i = 0; i < ms->n; i++)
		if (strcmp(ms->b[i].name, name) == 0)
			return &ms->b[i];
	return NULL;
}

/* Messages are kept in UID order. */
static mmsg *find_msg(mbox *b, uint32_t uid)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->m[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < b->n && b->m[lo].uid == uid ? &b->m[lo] : NULL;
}

static mbox *add_box(memstore *ms, const char *name, imap_special sp)
{
	if (strlen(name) > IMAP_MBOX_NAME_MAX)
		return NULL;
	if (ms->n == ms->cap) {
		size_t cap = ms->cap ? ms->cap * 2 : 8;
		mbox *b = realloc(ms->b, cap * sizeof(*b));
		if (b == NULL)
			return NULL;
		ms->b = b;
		ms->cap = cap;
	}
	mbox *b = &ms->b[ms->n++];
	memset(b, 0, sizeof(*b));
	memcpy(b->name, name, strlen(name) + 1);
	b->special = sp;
	b->subscribed = true;
	b->uidvalidity = ms->next_validity++;
	b->uidnext = 1;
	b->max = ms->max;
	return b;
}

static void free_msg(mmsg *m)
{
	free(m->data);
	imap_msg_info_free(&m->info);
}

static void free_box(mbox *b)
{
	for (size_t i = 0; i < b->n; i++)
		free_msg(&b->m[i]);
	free(b->m);
}

memstore *memstore_new(void)
{
	memstore *ms = calloc(1, sizeof(*ms));
	if (ms == NULL)
		return NULL;
	ms->next_validity = 1700000000u;
	ms->max = 20000;
	if (add_box(ms, "INBOX", IMAP_SPECIAL_NONE) == NULL ||
	    add_box(ms, "Sent", IMAP_SPECIAL_SENT) == NULL ||
	    add_box(ms, "Trash", IMAP_SPECIAL_TRASH) == NULL ||
	    add_box(ms, "Drafts", IMAP_SPECIAL_DRAFTS) == NULL) {
		memstore_free(&ms);
		return NULL;
	}
	return ms;
}

void memstore_free(memstore **msp)
{
	if (msp == NULL || *msp == NULL)
		return;
	memstore *ms = *msp;
	for (size_t i = 0; i < ms->n; i++)
		free_box(&ms->b[i]);
	free(ms->b);
	for (size_t i = 0; i < ms->nkw; i++)
		free(ms->kw[i]);
	free(ms);
	*msp = NULL;
}

static int put_msg(mbox *b, const uint8_t *data, size_t len, uint64_t flags,
		   int64_t t, int32_t tz, uint32_t *uid_r)
{
	if (b->n >= b->max)
		return -1;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		mmsg *m = realloc(b->m, cap * sizeof(*m));
		if (m == NULL)
			return -1;
		b->m = m;
		b->cap = cap;
	}
	mmsg *m = &b->m[b->n];
	memset(m, 0, sizeof(*m));
	const char *err;
	if (imap_msg_analyze(data, len, &m->info, &err) != 0)
		return -1;
	m->data = malloc(len > 0 ? len : 1);
	if (m->data == NULL) {
		imap_msg_info_free(&m->info);
		return -1;
	}
	memcpy(m->data, data, len);
	m->len = len;
	m->flags = flags;
	m->t = t;
	m->tz = tz;
	m->uid = b->uidnext++;
	b->n++;
	*uid_r = m->uid;
	return 0;
}

uint32_t memstore_add(memstore *ms, const char *mailbox, const char *msg,
		      uint64_t flags, int64_t t)
{
	mbox *b = find(ms, mailbox);
	uint32_t uid = 0;
	if (b == NULL)
		b = add_box(ms, mailbox, IMAP_SPECIAL_NONE);
	if (b == NULL || put_msg(b, (const uint8_t *)msg, strlen(msg), flags, t, 0, &uid) != 0)
		return 0;
	return uid;
}

void memstore_set_max(memstore *ms, size_t max)
{
	ms->max = max;
	for (size_t i = 0; i < ms->n; i++)
		ms->b[i].max = max;
}

unsigned long memstore_reads(const memstore *ms)
{
	return ms->reads;
}

unsigned long memstore_views(const memstore *ms)
{
	return ms->views;
}

/* ---- the ops ---- */

static int cmp_info(const void *a, const void *b)
{
	const imap_mbox_info *x = a, *y = b;
	if (strcmp(x->name, "INBOX") == 0)
		return -1;
	if (strcmp(y->name, "INBOX") == 0)
		return 1;
	return strcmp(x->name, y->name);
}

static int m_list(void *st, imap_mbox_info **list_r, size_t *n_r, const char **error_r)
{
	memstore *ms = st;
	(void)error_r;
	imap_mbox_info *l = calloc(ms->n > 0 ? ms->n : 1, sizeof(*l));
	if (l == NULL)
		return -1;
	for (size_t i = 0; i < ms->n; i++) {
		memcpy(l[i].name, ms->b[i].name, sizeof(l[i].name));
		l[i].special = ms->b[i].special;
		l[i].subscribed = ms->b[i].subscribed;
	}
	qsort(l, ms->n, sizeof(*l), cmp_info);
	*list_r = l;
	*n_r = ms->n;
	return 0;
}

static int m_create(void *st, const char *name, const char **error_r)
{
	memstore *ms = st;
	if (find(ms, name) != NULL)
		return IMAP_MBOX_EXISTS;
	if (add_box(ms, name, IMAP_SPECIAL_NONE) == NULL) {
		*error_r = "Out of memory";
		return -1;
	}
	return 0;
}

static int m_delete(void *st, const char *name, const char **error_r)
{
	memstore *ms = st;
	mbox *b = find(ms, name);
	if (b == NULL)
		return IMAP_MBOX_NONEXISTENT;
	if (strcmp(name, "INBOX") == 0 || b->special != IMAP_SPECIAL_NONE) {
		*error_r = "Special-use mailboxes can't be deleted.";
		return -1;
	}
	free_box(b);
	size_t i = (size_t)(b - ms->b);
	memmove(b, b + 1, (ms->n - i - 1) * sizeof(*b));
	ms->n--;
	return 0;
}

static int m_rename(void *st, const char *from, const char *to, const char **error_r)
{
	memstore *ms = st;
	mbox *b = find(ms, from);
	if (b == NULL)
		return IMAP_MBOX_NONEXISTENT;
	if (find(ms, to) != NULL)
		return IMAP_MBOX_EXISTS;
	if (strcmp(from, "INBOX") == 0) {
		size_t i = (size_t)(b - ms->b);
		mbox *nb = add_box(ms, to, IMAP_SPECIAL_NONE);
		if (nb == NULL) {
			*error_r = "Out of memory";
			return -1;
		}
		b = &ms->b[i];
		nb->m = b->m;
		nb->n = b->n;
		nb->cap = b->cap;
		nb->uidnext = b->uidnext;
		b->m = NULL;
		b->n = b->cap = 0;
		return 0;
	}
	size_t fl = strlen(from);
	for (size_t i = 0; i < ms->n; i++) {
		char *nm = ms->b[i].name;
		if (strcmp(nm, from) == 0) {
			memcpy(nm, to, strlen(to) + 1);
		} else if (strncmp(nm, from, fl) == 0 && nm[fl] == '/') {
			char tmp[IMAP_MBOX_NAME_MAX + 1];
			size_t tl = strlen(to), rl = strlen(nm + fl);
			if (tl + rl > IMAP_MBOX_NAME_MAX)
				continue;
			memcpy(tmp, to, tl);
			memcpy(tmp + tl, nm + fl, rl + 1);
			memcpy(nm, tmp, tl + rl + 1);
		}
	}
	return 0;
}

static int m_subscribe(void *st, const char *name, bool on, const char **error_r)
{
	memstore *ms = st;
	(void)error_r;
	mbox *b = find(ms, name);
	if (b == NULL)
		return IMAP_MBOX_NONEXISTENT;
	b->subscribed = on;
	return 0;
}

static int m_status(void *st, const char *name, imap_mbox_status *s_r, const char **error_r)
{
	memstore *ms = st;
	(void)error_r;
	mbox *b = find(ms, name);
	if (b == NULL)
		return IMAP_MBOX_NONEXISTENT;
	memset(s_r, 0, sizeof(*s_r));
	s_r->messages = (uint32_t)b->n;
	for (size_t i = 0; i < b->n; i++)
		if (!(b->m[i].flags & IMAP_FLAG_SEEN))
			s_r->unseen++;
	s_r->uidnext = b->uidnext;
	s_r->uidvalidity = b->uidvalidity;
	return 0;
}

static int m_view(void *st, const char *name, imap_mbox_view *v_r, const char **error_r)
{
	memstore *ms = st;
	(void)error_r;
	ms->views++;
	memset(v_r, 0, sizeof(*v_r));
	mbox *b = find(ms, name);
	if (b == NULL)
		return IMAP_MBOX_NONEXISTENT;
	v_r->uids = malloc((b->n ? b->n : 1) * sizeof(*v_r->uids));
	v_r->flags = malloc((b->n ? b->n : 1) * sizeof(*v_r->flags));
	if (v_r->uids == NULL || v_r->flags == NULL) {
		imap_mbox_view_free(v_r);
		return -1;
	}
	for (size_t i = 0; i < b->n; i++) {
		v_r->uids[i] = b->m[i].uid;
		v_r->flags[i] = b->m[i].flags;
	}
	v_r->n = b->n;
	v_r->uidvalidity = b->uidvalidity;
	v_r->uidnext = b->uidnext;
	return 0;
}

static int m_keywords(void *st, const char *const **names_r, size_t *n_r)
{
	memstore *ms = st;
	*names_r = (const char *const *)ms->kw;
	*n_r = ms->nkw;
	return 0;
}

static int m_keyword_add(void *st, const char *kw, const char **error_r)
{
	memstore *ms = st;
	for (size_t i = 0; i < ms->nkw; i++)
		if (strcasecmp(ms->kw[i], kw) == 0)
			return (int)i;
	if (ms->nkw >= IMAP_KEYWORDS_MAX) {
		*error_r = "Too many keywords";
		return -1;
	}
	ms->kw[ms->nkw] = strdup(kw);
	if (ms->kw[ms->nkw] == NULL)
		return -1;
	return (int)ms->nkw++;
}

static int m_cached(void *st, const char *name, uint32_t uid, imap_mbox_cached *c_r,
		    const char **error_r)
{
	memstore *ms = st;
	mbox *b = find(ms, name);
	mmsg *m = b != NULL ? find_msg(b, uid) : NULL;
	if (m == NULL) {
		*error_r = "No such message";
		return -1;
	}
	c_r->internaldate = m->t;
	c_r->tz_minutes = m->tz;
	c_r->size = m->len;
	c_r->sent = m->info.sent;
	c_r->envelope = m->info.envelope;
	c_r->bodystructure = m->info.bodystructure;
	c_r->body = m->info.body;
	return 0;
}

static int m_read(void *st, const char *name, uint32_t uid, uint8_t **msg_r,
		  size_t *len_r, const char **error_r)
{
	memstore *ms = st;
	ms->reads++;
	mbox *b = find(ms, name);
	mmsg *m = b != NULL ? find_msg(b, uid) : NULL;
	if (m == NULL) {
		*error_r = "No such message";
		return -1;
	}
	*msg_r = malloc(m->len > 0 ? m->len : 1);
	if (*msg_r == NULL)
		return -1;
	memcpy(*msg_r, m->data, m->len);
	*len_r = m->len;
	return 0;
}

static void m_release(void *st, uint8_t *msg, size_t len)
{
	(void)st;
	if (msg != NULL)
		memset(msg, 0, len);
	free(msg);
}

static int m_store(void *st, const char *name, const uint32_t *uids, size_t n,
		   imap_store_mode mode, uint64_t flags, uint64_t *flags_r,
		   const char **error_r)
{
	memstore *ms = st;
	(void)error_r;
	mbox *b = find(ms, name);
	if (b == NULL)
		return IMAP_MBOX_NONEXISTENT;
	for (size_t i = 0; i < n; i++) {
		mmsg *m = find_msg(b, uids[i]);
		if (m == NULL) {
			flags_r[i] = 0;
			continue;
		}
		if (mode == IMAP_STORE_SET)
			m->flags = flags;
		else if (mode == IMAP_STORE_ADD)
			m->flags |= flags;
		else
			m->flags &= ~flags;
		flags_r[i] = m->flags;
	}
	return 0;
}

static int m_append(void *st, const char *name, const uint8_t *msg, size_t len,
		    uint64_t flags, int64_t t, int32_t tz, uint32_t *uid_r,
		    uint32_t *uidvalidity_r, const char **error_r)
{
	memstore *ms = st;
	mbox *b = find(ms, name);
	if (b == NULL)
		return IMAP_MBOX_NONEXISTENT;
	if (t < 0)
		t = (int64_t)time(NULL);
	if (put_msg(b, msg, len, flags, t, tz, uid_r) != 0) {
		*error_r = "Out of memory";
		return -1;
	}
	*uidvalidity_r = b->uidvalidity;
	return 0;
}

static int m_expunge(void *st, const char *name, const uint32_t *uids, size_t n,
		     const char **error_r)
{
	memstore *ms = st;
	(void)error_r;
	mbox *b = find(ms, name);
	if (b == NULL)
		return IMAP_MBOX_NONEXISTENT;
	for (size_t i = 0; i < n; i++) {
		mmsg *m = find_msg(b, uids[i]);
		if (m == NULL)
			continue;
		free_msg(m);
		size_t k = (size_t)(m - b->m);
		memmove(m, m + 1, (b->n - k - 1) * sizeof(*m));
		b->n--;
	}
	return 0;
}

static int m_copy(void *st, const char *from, const uint32_t *uids, size_t n,
		  const char *dest, bool move, uint32_t *new_uids_r,
		  uint32_t *uidvalidity_r, const char **error_r)
{
	memstore *ms = st;
	if (find(ms, from) == NULL || find(ms, dest) == NULL)
		return IMAP_MBOX_NONEXISTENT;
	for (size_t i = 0; i < n; i++) {
		/* the arrays move when a mailbox grows: look up each time */
		mbox *fb = find(ms, from), *db = find(ms, dest);
		mmsg *m = find_msg(fb, uids[i]);
		new_uids_r[i] = 0;
		if (m == NULL)
			continue;
		uint8_t *copy = malloc(m->len > 0 ? m->len : 1);
		if (copy == NULL) {
			*error_r = "Out of memory";
			return -1;
		}
		memcpy(copy, m->data, m->len);
		size_t len = m->len;
		uint64_t flags = m->flags;
		int64_t t = m->t;
		int32_t tz = m->tz;
		int r = put_msg(db, copy, len, flags, t, tz, &new_uids_r[i]);
		free(copy);
		if (r != 0) {
			*error_r = "Out of memory";
			return -1;
		}
		if (move) {	/* into the same mailbox too: the copy has a new UID */
			const char *e;
			(void)m_expunge(st, from, &uids[i], 1, &e);
		}
	}
	*uidvalidity_r = find(ms, dest)->uidvalidity;
	return 0;
}

const imap_mbox_ops memstore_ops = {
	.list = m_list, .create = m_create, .delete = m_delete, .rename = m_rename,
	.subscribe = m_subscribe, .status = m_status, .view = m_view,
	.keywords = m_keywords, .keyword_add = m_keyword_add, .cached = m_cached,
	.read = m_read, .release = m_release, .store = m_store, .append = m_append,
	.copy = m_copy, .expunge = m_expunge,
};
