/*
 * relay.h — delivery of the relay queue to peer nodes (docs/ARCHITECTURE.md
 * "The node").  relay_threads threads lease due entries from the store,
 * connect to the domain's node (route.h; the peer's hello is checked
 * against a pinned key when the transport map has one), authenticate as
 * this node, and deliver.  Outcomes:
 *   delivered (or the peer already had it)    entry deleted
 *   refused for good (BAD_REQUEST, NOT_FOUND,  entry deleted and a signed
 *   FORBIDDEN, TOO_LARGE) or past its lifetime non-delivery notice sealed by
 *                                              the node to the sender, in
 *                                              one transaction
 *   anything else (unreachable, RETRY_LATER)   retried after an exponential
 *                                              backoff with jitter
 * A lease that is never completed (crash, kill -9) expires and the entry
 * is tried again; the peer's dedupe by envelope id makes that delivery
 * count once.  Notices are never sent about notices (node senders).
 */
#ifndef AMP_RELAY_H
#define AMP_RELAY_H

#include "amp/amp.h"
#include "config.h"
#include "route.h"
#include "store.h"

typedef struct relay relay;

typedef struct relay_params {
	store *st;
	router *routes;
	const amp_identity *node;
	/* Called (from a relay thread) after a notice was stored for the
	 * local DID did, so waiting fetches can be woken. */
	void (*notify)(void *arg, const char *did);
	void *notify_arg;
} relay_params;

int relay_start(const relay_params *p, const cfg *conf, relay **r_r,
		const char **error_r) __attribute__((warn_unused_result));
void relay_reconfigure(relay *r, const cfg *conf);
/* New entries were queued: look now. */
void relay_wake(relay *r);
/* Finish the attempts in progress and stop the threads. */
void relay_stop(relay **r);

typedef struct relay_stats {
	uint64_t delivered, retried, bounced;
} relay_stats;
void relay_get_stats(relay *r, relay_stats *st);

#endif
