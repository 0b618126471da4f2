/*
 * outbound.h — the mail queue's delivery engine (issue 5): on the node's
 * loop it leases due queue rows lane by lane, finds each destination's
 * mail exchangers (transport_maps, then DNS through src/dns), speaks SMTP
 * to them with the pure client of src/smtp/smtp-client.h over libuv TCP
 * and GnuTLS, and records each attempt's outcome in the store: delivered
 * recipients leave the queue, temporary failures wait with exponential
 * backoff, permanent failures and expiry return a delivery status
 * notification (src/mime/dsn.h) to the sender: AMP mail to the sender's
 * DID when the message came through the gateway, else SMTP mail with a
 * null sender.  docs/ARCHITECTURE.md "The Legacy Bridge, outbound" has the
 * picture.
 */
#ifndef AMP_OUTBOUND_H
#define AMP_OUTBOUND_H

#include "amp/amp.h"
#include "config.h"
#include "dkimkeys.h"
#include "mapset.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct outbound outbound;

typedef struct outbound_params {
	uv_loop_t *loop;
	store *st;
	mapset *maps;                  /* transport_maps */
	const amp_identity *node;      /* signs DSNs sent as AMP mail */
	const char *auth_text;         /* smtp_out_auth_file contents, or NULL */
	const char *mtasts_db;         /* <data_dir>/mtasts.db (policy cache) */
	/* a DSN was stored in this local inbox (wake its fetches); any thread */
	void (*notify)(void *arg, const char *did);
	void *arg;
} outbound_params;

/* Start (reads its settings from conf).  0, or -1 with err filled. */
int outbound_start(const outbound_params *p, const cfg *conf, outbound **o_r,
		   char *err, size_t err_size) __attribute__((warn_unused_result));
/* Settings that apply on reload (timeouts, retry times, lifetimes). */
void outbound_reconfigure(outbound *o, const cfg *conf);
/* New queue rows, or rows released by the operator: look again now.  On
 * the loop thread. */
void outbound_wake(outbound *o);
/* Stop: end the attempts in progress (their recipients stay queued, due
 * at once), give back the rows leased but not started, close every handle.
 * Run the loop until outbound_idle before closing the store.  NULL is
 * fine. */
void outbound_stop(outbound *o);
bool outbound_idle(const outbound *o);
void outbound_free(outbound **o);

typedef struct outbound_stats {
	uint64_t delivered, deferred, bounced, dsn_sent, attempts;
	uint64_t late[3];              /* per lane: delivered after its SLA */
	unsigned connections;          /* open now */
} outbound_stats;
void outbound_get_stats(outbound *o, outbound_stats *st);

#endif
