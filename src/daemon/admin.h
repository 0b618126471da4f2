/*
 * admin.h — the node's admin channel: a Unix stream socket,
 * <data_dir>/admin.sock, served on the node's loop (libuv).  The wire
 * format is admin-proto.h; docs/ARCHITECTURE.md "The admin channel" and
 * docs/node.md "The admin socket" describe it.  `amp map` and `amp queue`
 * are its clients (docs/queue.md for the queue).
 *
 * Who may talk: the socket is made after the privilege drop, mode 0600,
 * in data_dir (0700), and each connection's peer (SO_PEERCRED) must be
 * root or the node's own user.  Limits: ADMIN_CONNS_MAX connections at
 * once (more are answered "error" and closed), ADMIN_IDLE_S seconds
 * without a request, a request line of ADMIN_LINE_MAX bytes (a longer
 * one is answered "error" and skipped to its LF).
 *
 * Commands (a table in admin.c: name, arity, handler):
 *   help
 *   map add TABLE KEY [VALUE]   mapset_add
 *   map del TABLE KEY           mapset_del
 *   map list TABLE              every entry: "* ORIGIN TAB LINE TAB KEY
 *                               TAB VALUE", ORIGIN file, config or
 *                               run-time, in file order then run-time
 *   map test TABLE QUERY        maps_test on the current tables: "* match
 *                               TAB KEY TAB FORM TAB ORIGIN TAB WHERE"
 *                               when an entry matched; "ok RESULT"
 *   map reload                  mapset_reload with the running
 *                               configuration (the maps part of SIGHUP,
 *                               without re-reading the configuration file)
 *   log status                  the log's size and latest signed head
 *                               (with its cosignatures), and the
 *                               signer's and witness's counters
 *   log alarms [N]              the newest N (100) witness alarms with
 *                               their evidence: both signed heads
 *   log sign                    sign a head now if the log grew
 * TABLE: access_map, relay_domains, virtual_alias_maps, canonical_maps,
 * transport_maps, or access, relay, virtual, canonical, transport.
 *
 * The mail queue (store.h "Mail queue"; `amp queue` is the client; IDs are
 * 16 hex digits; times are unix seconds, 0 none; LANE critical, normal or
 * bulk; STATE active, deferred, hold or bounced):
 *   queue list [state=S] [lane=L] [domain=D] [limit=N]
 *                               rows by next attempt, at most N (default
 *                               ADMIN_QUEUE_LIST_DEFAULT, at most
 *                               ADMIN_QUEUE_LIST_MAX): "* ID TAB LANE TAB
 *                               STATE TAB ATTEMPTS TAB NEXT_ATTEMPT TAB
 *                               CREATED TAB EXPIRES TAB DOMAIN TAB SENDER
 *                               TAB RCPTS TAB LAST_REPLY" (SENDER "<>" for
 *                               the null sender; LAST_REPLY the entry's,
 *                               else its first recipient's, else empty);
 *                               "ok N entries[ (limit reached)]"
 *   queue show ID               "* KEY TAB VALUE" for id, domain, lane,
 *                               state, attempts, warned (yes/no), created,
 *                               expires, next_attempt, sender, sender_did,
 *                               envid, ret (full/hdrs/-), msgid and
 *                               last_reply (absent ones: empty); "* rcpt
 *                               TAB ADDR TAB ORCPT TAB NOTIFY TAB REPLY"
 *                               each (NOTIFY "-" when not given, else
 *                               never or a comma list of success, failure,
 *                               delay); the body's header section only,
 *                               "* header TAB LINE" each (at most
 *                               ADMIN_QUEUE_HEADER_MAX bytes; "* header-cut
 *                               TAB BYTES" when longer); "ok ID"
 *   queue flush                 deferred entries due now: "ok N ..."
 *   queue hold ID|all           active and deferred entries held
 *   queue release ID|all        held entries due now (one held during a
 *                               delivery attempt: when its lease ends)
 *   queue delete ID|all         entries removed, in any state, no DSN
 *   queue stats                 "* LANE TAB ACTIVE TAB DEFERRED TAB HOLD
 *                               TAB BOUNCED TAB OLDEST_CREATED" per lane,
 *                               "* bytes TAB BODY_BYTES"; "ok"
 * The store calls run on the loop and are synchronous (a list of N rows
 * opens N rows; show opens one body, up to MAILQ_BODY_MAX bytes); flush
 * and release call queue_changed so that the scheduler looks again.
 * Peer text (replies, headers) is sanitised by admin_format_reply; TABs
 * inside a field become spaces.
 */
#ifndef AMP_ADMIN_H
#define AMP_ADMIN_H

#include "admin-proto.h"
#include "config.h"
#include "mapset.h"
#include "store.h"
#include "tlog.h"

#include <stddef.h>
#include <uv.h>

#define ADMIN_SOCKET_NAME "admin.sock"
#define ADMIN_CONNS_MAX 16u
#define ADMIN_IDLE_S 30u
#define ADMIN_QUEUE_LIST_DEFAULT 1000u  /* queue list without limit= */
#define ADMIN_QUEUE_LIST_MAX 100000u    /* the largest limit= */
#define ADMIN_QUEUE_HEADER_MAX (64u * 1024u) /* queue show: header bytes */

typedef struct admin admin;

typedef struct admin_params {
	uv_loop_t *loop;
	const char *data_dir;    /* the socket is <data_dir>/admin.sock */
	mapset *maps;
	/* the running configuration (for `map reload`), read on the loop */
	const cfg *(*conf)(void *arg);
	void *arg;
	/* the mail queue, for the `queue` commands (NULL: they answer
	 * "error"); the store outlives the admin channel */
	store *st;
	/* called with arg after every `queue flush` and after a `queue
	 * release` that released rows (entries are due now: wake the outbound
	 * scheduler); on the loop; may be NULL */
	void (*queue_changed)(void *arg);
	/* the transparency log duties, for `log status` and `log sign`,
	 * called with arg on the loop (NULL: they answer "error") */
	void (*log_stats)(void *arg, tlog_stats *st);
	void (*log_sign)(void *arg);
} admin_params;

/* Make the socket (a stale one, with nobody listening, is removed; one
 * another node answers on is an error) and listen on it.  0, or -1 with
 * err filled.  Runs on the loop thread; blocks on a few system calls. */
int admin_start(const admin_params *p, admin **a_r, char *err,
		size_t err_size) __attribute__((warn_unused_result));

/* Close the listener and every connection and remove the socket file.
 * The memory is freed once the handles have closed (run the loop).
 * NULL is fine; *a is set to NULL. */
void admin_stop(admin **a);

#endif
