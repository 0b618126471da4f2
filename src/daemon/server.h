/*
 * server.h — the AMP node's request core (docs/ARCHITECTURE.md "The
 * node"): per-connection sessions, the operation table with the states in
 * which each operation is allowed (§9), the handlers of §10, the bounded
 * worker pool, rate limits, long-poll fetches, and the link to the store.
 *
 * Transport drivers (TLS over TCP in tcp.c, QUIC in src/transport/quic.c)
 * only move whole frames: they open a session when a connection arrives,
 * mark it ready with the TLS exporter once the handshake is done, hand in
 * each request frame, and close it.  The core answers through the
 * driver's sconn_ops.  Everything here runs on the loop thread, except the
 * handlers' CPU and store work, which runs on libuv's thread pool.
 */
#ifndef AMP_SERVER_H
#define AMP_SERVER_H

#include "amp/amp.h"
#include "config.h"
#include "route.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct server server;
typedef struct sconn sconn;
struct relay;

/* What a transport driver provides for one connection. */
typedef struct sconn_ops {
	/* Queue one response frame (payload; the driver adds the header)
	 * answering the request tagged `tag`.  Copies. */
	void (*send)(void *t, uint64_t tag, const uint8_t *payload, size_t len);
	/* New frame maximum (after authentication). */
	void (*set_max_frame)(void *t, size_t max);
	/* Stop (true) or resume reading requests (per-connection limit). */
	void (*pause)(void *t, bool pause);
	/* Close the connection (the driver calls server_conn_closed later). */
	void (*close)(void *t);
} sconn_ops;

typedef struct server_params {
	uv_loop_t *loop;
	store *st;
	const amp_identity *node;        /* the node identity */
	const uint8_t *storage_key;      /* 32 bytes: invite and token keys */
	router *routes;
	struct gateway *gw;              /* the gateway identity, or NULL */
	struct mapset *maps;             /* canonical_maps for address
					    lookups (§10.3.1), or NULL */
} server_params;

/* The relay to wake when relay entries are queued (set after both exist). */
void server_set_relay(server *s, struct relay *r);
/* Called on the loop after a delivery wrote mail queue entries (the
 * gateway, §10.9). */
void server_set_outbound(server *s, void (*wake)(void *arg), void *arg);

int server_create(const server_params *p, const cfg *conf, server **s_r,
		  const char **error_r) __attribute__((warn_unused_result));
/* Apply the reloadable settings of a new configuration. */
void server_reconfigure(server *s, const cfg *conf);
/* Refuse new requests with RETRY_LATER and call done() on the loop once
 * no request is in progress. */
void server_drain(server *s, void (*done)(void *arg), void *arg);
/* After every connection is closed. */
void server_destroy(server **s);

/* A connection arrived from peer: NULL when a limit refuses it (the
 * driver then closes it without a session). */
sconn *server_conn_open(server *s, const sconn_ops *ops, void *t,
			const struct sockaddr *peer);
/* Its handshake finished: x is the §9.1 TLS exporter. */
void server_conn_ready(sconn *c, const uint8_t x[32]);
/* One request frame (payload without header; ownership passes). */
void server_conn_request(sconn *c, uint64_t tag, uint8_t *payload, size_t len);
/* The transport is gone; the session ends once its requests finished. */
void server_conn_closed(sconn *c);

typedef struct server_stats {
	uint64_t conns, requests, delivered, retry_later, rate_limited;
	unsigned jobs;
} server_stats;
void server_get_stats(server *s, server_stats *st);

/* Thread-safe: mail for the local DID did was stored outside a request
 * (a non-delivery notice); wake its waiting fetches. */
void server_notify(server *s, const char *did);

/* The node's own DID document, for lookups of the node DID. */
const char *server_node_document(server *s);

#endif
