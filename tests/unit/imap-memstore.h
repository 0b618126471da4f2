/*
 * imap-memstore.h — a mailbox store in memory implementing imap_mbox_ops
 * (src/imap/imap-mbox.h) for test-imap-session and fuzz-imap-session.
 * Cached data (ENVELOPE, BODYSTRUCTURE...) comes from imap_msg_analyze
 * at append time, as the real store (src/bridge/bstore.c) keeps it.
 * Not thread-safe; one limit, messages per mailbox (memstore_set_max:
 * APPEND and COPY fail beyond it, so fuzz-imap-session's COPY 1:* loops
 * stay small); counts the calls a test may want to check (reads, views).
 */
#ifndef AMP_IMAP_MEMSTORE_H
#define AMP_IMAP_MEMSTORE_H

#include "imap-mbox.h"

#include <stddef.h>
#include <stdint.h>

typedef struct memstore memstore;

extern const imap_mbox_ops memstore_ops;

/* A store with INBOX, Sent (\Sent), Trash (\Trash) and Drafts
 * (\Drafts); NULL when out of memory. */
memstore *memstore_new(void);
void memstore_free(memstore **ms);

/* Append msg to mailbox (created if missing) with flags, internal date
 * t (Unix seconds); the new UID, 0 on failure. */
uint32_t memstore_add(memstore *ms, const char *mailbox, const char *msg,
		      uint64_t flags, int64_t t);

/* At most max messages in one mailbox (default 20,000). */
void memstore_set_max(memstore *ms, size_t max);

/* Calls of ops->read and ops->view so far. */
unsigned long memstore_reads(const memstore *ms);
unsigned long memstore_views(const memstore *ms);

#endif
