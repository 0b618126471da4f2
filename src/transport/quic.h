/*
 * quic.h — the AMP transport over QUIC (PROTOCOL.md §8): ngtcp2 0.12 with
 * GnuTLS (Debian's libngtcp2 and libngtcp2-crypto-gnutls), ALPN "amp/1",
 * TLS 1.3 only.
 *
 * One request per client-initiated bidirectional stream: the client sends
 * one frame (u32 big-endian length ‖ payload, src/amp/frame.h) and FIN;
 * the server answers with one frame and FIN.  The transport parses frames
 * (bounded by the connection's current maximum, checked from the header
 * before any payload is buffered) and hands the node whole payloads; it
 * knows nothing of their content.
 *
 * Server: runs on a libuv loop (one UDP handle), single-threaded; every
 * callback runs on the loop thread and quic_respond() must be called
 * there too.  Client: blocking (poll(2) on its own UDP socket), for the
 * `amp` command and the node's relay threads; one request at a time.
 *
 * Limits (server): connections overall and per source IP, concurrent
 * streams per connection (QUIC flow control: initial_max_streams_bidi),
 * per-connection and per-stream flow-control windows, frame size, idle
 * timeout, handshake timeout.  A stateless reset / version negotiation is
 * sent only as the RFC requires; Retry (address validation) is used when
 * the number of connections in handshake is high.
 */
#ifndef AMP_QUIC_H
#define AMP_QUIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define QUIC_EXPORTER_BYTES 32u

typedef struct quic_server quic_server;
typedef struct quic_conn quic_conn;

typedef struct quic_server_opts {
	uv_loop_t *loop;
	const char *host;               /* numeric address, e.g. "127.0.0.1" */
	uint16_t port;                  /* 0: any (see quic_server_port) */
	const char *cert_pem, *key_pem; /* server credentials (PEM text) */
	unsigned max_conns;             /* all connections */
	unsigned max_conns_per_ip;
	unsigned max_streams;           /* concurrent bidi streams per conn */
	size_t max_frame;               /* initial frame maximum per conn */
	unsigned idle_timeout_ms;
	unsigned handshake_timeout_ms;
} quic_server_opts;

typedef struct quic_server_cbs {
	/* A connection completed its handshake.  exporter: the RFC 8446
	 * exporter "EXPORTER-amp-v1" (empty context, 32 bytes) of its TLS
	 * session, for §9 channel binding.  Return the node's per-connection
	 * pointer, or NULL to close the connection. */
	void *(*on_connect)(void *arg, quic_conn *c, const struct sockaddr *peer,
			    const uint8_t exporter[QUIC_EXPORTER_BYTES]);
	/* One complete request frame on stream_id; payload (without the
	 * 4-byte header) is malloc'ed and now owned by the callee. */
	void (*on_request)(void *user, quic_conn *c, int64_t stream_id,
			   uint8_t *payload, size_t len);
	/* The connection is gone (closed by either side, idle, error, or
	 * server stop).  No callback follows for it, and c must not be used
	 * after this returns. */
	void (*on_close)(void *user, quic_conn *c);
} quic_server_cbs;

int quic_server_start(const quic_server_opts *opts, const quic_server_cbs *cbs,
		      void *arg, quic_server **s_r, const char **error_r)
	__attribute__((warn_unused_result));
uint16_t quic_server_port(const quic_server *s);
/* Stop accepting new connections (existing ones continue). */
void quic_server_pause(quic_server *s);
/* Close every connection (on_close for each) and free the server. */
void quic_server_stop(quic_server **s);
unsigned quic_server_conn_count(const quic_server *s);

/* Answer the request on stream_id with one frame (the header is added
 * here) and FIN.  Copies payload.  -1 if the stream or connection is gone
 * (the answer is dropped). */
int quic_respond(quic_conn *c, int64_t stream_id, const uint8_t *payload,
		 size_t len) __attribute__((warn_unused_result));
/* Change the frame maximum for requests not yet started (after auth). */
void quic_conn_set_max_frame(quic_conn *c, size_t max);
/* Close with an application error code; on_close follows. */
void quic_conn_close(quic_conn *c, uint64_t app_error);

/* ---------------------------------------------------------------- client */

typedef struct quic_client quic_client;

/* Connect (blocking, at most timeout_ms) to host:port (host: a numeric
 * address or a name resolved with getaddrinfo).  The server certificate
 * is not checked: the node is authenticated by its node key (§9.1). */
int quic_client_connect(const char *host, uint16_t port, unsigned timeout_ms,
			quic_client **c_r, const char **error_r)
	__attribute__((warn_unused_result));
void quic_client_exporter(const quic_client *c,
			  uint8_t out[QUIC_EXPORTER_BYTES]);
/* Open a stream, send one frame holding payload, FIN, and wait (at most
 * timeout_ms) for the response frame (at most max_resp bytes).  *resp_r is
 * malloc'ed. */
int quic_client_request(quic_client *c, const uint8_t *payload, size_t len,
			size_t max_resp, unsigned timeout_ms, uint8_t **resp_r,
			size_t *resp_len_r, const char **error_r)
	__attribute__((warn_unused_result));
void quic_client_close(quic_client **c);

#endif
