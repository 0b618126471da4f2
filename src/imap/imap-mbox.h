/*
 * imap-mbox.h — the mailbox interface the IMAP session (imap-session.c)
 * works through: a table of functions a store implements (amp bridge:
 * src/bridge/bstore.c over SQLite; the unit tests: a store in memory).
 *
 * Calls are synchronous and made on the session's thread; a store used
 * by several sessions sees them one at a time (one libuv loop).  Every
 * call that changes something returns only once it is durable.
 *
 * Names: the session checks every name before the store sees it (I9):
 * valid modified UTF-7 (RFC 3501 §5.1.3; kept encoded, compared
 * exactly), at most IMAP_MBOX_NAME_MAX bytes, no NUL, CR, LF, '*' or
 * '%', no empty level, no "." or ".." level, no leading or trailing '/'
 * (the hierarchy delimiter); "INBOX" in any case is passed as "INBOX".
 * Names are never used as file names.
 *
 * Flags: the five system flags as bits, keywords as bits from 8 up: bit
 * (8 + i) is keyword i of the store's keyword table (imap_mbox_ops
 * .keywords / .keyword_add), at most IMAP_KEYWORDS_MAX of them.  \Recent
 * is not kept (always 0: RFC 9051 dropped it; docs/bridge-imap.md).
 *
 * Errors: -1 with *error_r a short text for the tagged NO (static, or
 * valid until the next call on the store); IMAP_MBOX_NONEXISTENT when
 * the mailbox does not exist (the session answers NO [NONEXISTENT]),
 * IMAP_MBOX_EXISTS for CREATE/RENAME onto an existing name
 * (NO [ALREADYEXISTS]).
 */
#ifndef AMP_IMAP_MBOX_H
#define AMP_IMAP_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_MBOX_NAME_MAX 512u
#define IMAP_KEYWORDS_MAX 48u
#define IMAP_KEYWORD_LEN_MAX 64u

#define IMAP_FLAG_SEEN     0x01u
#define IMAP_FLAG_ANSWERED 0x02u
#define IMAP_FLAG_FLAGGED  0x04u
#define IMAP_FLAG_DELETED  0x08u
#define IMAP_FLAG_DRAFT    0x10u
#define IMAP_FLAG_SYSTEM   0x1fu
#define IMAP_FLAG_KEYWORD(i) ((uint64_t)1 << (8 + (i)))

#define IMAP_MBOX_NONEXISTENT (-2)
#define IMAP_MBOX_EXISTS (-3)

/* SPECIAL-USE (RFC 6154) attributes of a mailbox. */
typedef enum imap_special {
	IMAP_SPECIAL_NONE = 0,
	IMAP_SPECIAL_SENT, IMAP_SPECIAL_JUNK, IMAP_SPECIAL_TRASH,
	IMAP_SPECIAL_DRAFTS, IMAP_SPECIAL_ARCHIVE,
} imap_special;

typedef struct imap_mbox_info {
	char name[IMAP_MBOX_NAME_MAX + 1];
	imap_special special;
	bool subscribed;
	bool noselect;            /* a parent that exists only as a level */
} imap_mbox_info;

typedef struct imap_mbox_status {
	uint32_t messages, unseen, uidnext, uidvalidity;
} imap_mbox_status;

/* A mailbox's messages in UID order: what SELECT and each resync see. */
typedef struct imap_mbox_view {
	uint32_t uidvalidity, uidnext;
	size_t n;
	uint32_t *uids;           /* ascending */
	uint64_t *flags;          /* per message */
} imap_mbox_view;

/* What the session shows without reading the message: kept by the store
 * from imap_msg_analyze() at append time (imap-msg.h). */
typedef struct imap_mbox_cached {
	int64_t internaldate;     /* Unix seconds */
	int32_t tz_minutes;       /* its zone, east of UTC */
	uint64_t size;            /* RFC822.SIZE */
	int64_t sent;             /* Date: field, Unix seconds; INT64_MIN none */
	const char *envelope;     /* ENVELOPE's parenthesised list */
	const char *bodystructure;/* BODYSTRUCTURE's */
	const char *body;         /* BODY's (no extension data) */
} imap_mbox_cached;

typedef enum imap_store_mode {
	IMAP_STORE_SET, IMAP_STORE_ADD, IMAP_STORE_REMOVE,
} imap_store_mode;

typedef struct imap_mbox_ops {
	/* Every mailbox, INBOX first, then by name.  *list_r freed with
	 * free(). */
	int (*list)(void *st, imap_mbox_info **list_r, size_t *n_r,
		    const char **error_r);
	int (*create)(void *st, const char *name, const char **error_r);
	/* INBOX and special-use mailboxes cannot be deleted (NO). */
	int (*delete)(void *st, const char *name, const char **error_r);
	/* RENAME INBOX moves its messages into a new mailbox (RFC 3501). */
	int (*rename)(void *st, const char *from, const char *to,
		      const char **error_r);
	int (*subscribe)(void *st, const char *name, bool on,
			 const char **error_r);
	int (*status)(void *st, const char *name, imap_mbox_status *s_r,
		      const char **error_r);
	/* The view of a mailbox now (free with imap_mbox_view_free). */
	int (*view)(void *st, const char *name, imap_mbox_view *v_r,
		    const char **error_r);
	/* The keyword table: names[i] is keyword i. */
	int (*keywords)(void *st, const char *const **names_r, size_t *n_r);
	/* Index of keyword (added when new); -1 when the table is full. */
	int (*keyword_add)(void *st, const char *kw, const char **error_r);
	/* Cached data of one message (valid until the next call). */
	int (*cached)(void *st, const char *name, uint32_t uid,
		      imap_mbox_cached *c_r, const char **error_r);
	/* The message's bytes, opened (free with the store's secure free:
	 * release(st, p, len) wipes and frees them). */
	int (*read)(void *st, const char *name, uint32_t uid, uint8_t **msg_r,
		    size_t *len_r, const char **error_r);
	void (*release)(void *st, uint8_t *msg, size_t len);
	/* Flags of the given UIDs; *flags_r (n entries, the new flags of each,
	 * 0 for a UID that no longer exists). */
	int (*store)(void *st, const char *name, const uint32_t *uids, size_t n,
		     imap_store_mode mode, uint64_t flags, uint64_t *flags_r,
		     const char **error_r);
	/* A new message; its UID in *uid_r and the mailbox's UIDVALIDITY in
	 * *uidvalidity_r (UIDPLUS APPENDUID).  internaldate < 0: now. */
	int (*append)(void *st, const char *name, const uint8_t *msg,
		      size_t len, uint64_t flags, int64_t internaldate,
		      int32_t tz_minutes, uint32_t *uid_r,
		      uint32_t *uidvalidity_r, const char **error_r);
	/* Copy (move: and expunge from the source) the UIDs, in order, into
	 * dest; new_uids_r gets n UIDs (0 for one that no longer exists),
	 * *uidvalidity_r dest's (COPYUID). */
	int (*copy)(void *st, const char *from, const uint32_t *uids,
		    size_t n, const char *dest, bool move, uint32_t *new_uids_r,
		    uint32_t *uidvalidity_r, const char **error_r);
	/* Remove these UIDs (the session chose them: \Deleted ones). */
	int (*expunge)(void *st, const char *name, const uint32_t *uids,
		       size_t n, const char **error_r);
} imap_mbox_ops;

void imap_mbox_view_free(imap_mbox_view *v);

#endif
