/*
 * tlog.h — the node's transparency log duties (docs/ARCHITECTURE.md "The
 * transparency log"): signing tree heads of its own log, and witnessing
 * other nodes' logs (PROTOCOL.md §11.3, AMP-R-061).
 *
 * Two threads, because their work blocks: the signer wakes every
 * log_head_interval and, when the committed log grew (or no head exists
 * yet), signs a head with the node key and stores it; the witness wakes
 * every log_witness_interval and, for each domain of log_witness_of,
 * connects to its node (routes as the relay does), fetches its latest
 * head, checks it against the last head it cosigned (signature, size,
 * consistency proof), cosigns it and sends the cosignature back
 * (authenticated as this node).  A contradiction is kept as evidence in
 * the store (log_alarm), logged at error level, counted, and that log is
 * never cosigned again (its node proved itself untrustworthy; the
 * evidence stays for `amp log alarms`).
 */
#ifndef AMP_TLOG_H
#define AMP_TLOG_H

#include "amp/amp.h"
#include "config.h"
#include "route.h"
#include "store.h"

typedef struct tlog tlog;

typedef struct tlog_params {
	store *st;
	router *routes;
	const amp_identity *node;
} tlog_params;

int tlog_start(const tlog_params *p, const cfg *conf, tlog **t_r,
	       const char **error_r) __attribute__((warn_unused_result));
void tlog_reconfigure(tlog *t, const cfg *conf);
/* Sign a head now if the log grew (tests, and before a clean stop). */
void tlog_wake(tlog *t);
void tlog_stop(tlog **t);

typedef struct tlog_stats {
	uint64_t heads_signed;
	uint64_t cosigned;          /* heads of other logs we cosigned */
	uint64_t witness_failures;  /* checks that could not be made */
	uint64_t alarms;            /* inconsistencies found (ever) */
} tlog_stats;
void tlog_get_stats(tlog *t, tlog_stats *st);

#endif
