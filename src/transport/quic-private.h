/*
 * quic-private.h — what the QUIC transport's own files share (quic.c,
 * quic-server.c, quic-client.c), the non-blocking client connection the
 * blocking client is built on (also used by tests/tools/amp-quic-flood),
 * and test hooks.  Not for the node: it uses quic.h.
 */
#ifndef AMP_QUIC_PRIVATE_H
#define AMP_QUIC_PRIVATE_H

#include "quic.h"

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUIC_ALPN "amp/1"
#define QUIC_EXPORTER_LABEL "EXPORTER-amp-v1"

/* Application error codes this transport puts in RESET_STREAM,
 * STOP_SENDING and CONNECTION_CLOSE (the node may use others with
 * quic_conn_close). */
#define QUIC_APP_NO_ERROR 0x0u
#define QUIC_APP_BAD_FRAME 0x1u  /* zero/oversize frame, data after it, truncated */
#define QUIC_APP_REFUSED 0x2u    /* the node refused the connection */
#define QUIC_APP_SHUTDOWN 0x3u   /* the server is stopping */
#define QUIC_APP_CANCELLED 0x4u  /* the client gave up on a request */

/* Length of the connection IDs the server issues (random, libsodium). */
#define QUIC_SCID_LEN 16u
/* Largest UDP payload we build (ngtcp2's PMTUD ceiling). */
#define QUIC_MAX_PKT 1452u
/* Largest datagram we read. */
#define QUIC_RECV_BUF 65536u
/* Socket buffers asked for (the kernel caps them at [rw]mem_max). */
#define QUIC_SOCK_BUF (4 * 1024 * 1024)

/* Server flow control (per connection).  Received stream data is copied
 * at once into the stream's frame reader and the credit given back, so a
 * frame of any size (up to the connection's maximum) can arrive through
 * a small window; the window only bounds what ngtcp2 itself may hold
 * (data out of order).  Worst case buffered by ngtcp2 per connection:
 * QUIC_SRV_CONN_WINDOW_MAX.  Nothing is allocated for a window up front. */
#define QUIC_SRV_STREAM_WINDOW (256u * 1024u)
#define QUIC_SRV_STREAM_WINDOW_MAX (1024u * 1024u)
#define QUIC_SRV_CONN_WINDOW (1024u * 1024u)
#define QUIC_SRV_CONN_WINDOW_MAX (4u * 1024u * 1024u)
/* Connections in handshake at which new clients must first answer a
 * Retry (address validation) — see quic_server_set_retry_threshold. */
#define QUIC_RETRY_THRESHOLD 64u
/* How long a Retry token stays valid. */
#define QUIC_RETRY_TOKEN_TIMEOUT_MS 10000u
/* Datagrams written per connection before yielding to the loop. */
#define QUIC_MAX_PKTS_PER_WRITE 64u
/* Bytes the server may queue in libuv when the socket is full. */
#define QUIC_SEND_QUEUE_MAX (1024u * 1024u)

/* ------------------------------------------------------------ quic.c */

/* Monotonic clock in nanoseconds (ngtcp2's timestamps). */
uint64_t quic_now(void);
/* malloc/calloc that abort on failure (out of memory is fatal). */
void *quic_xmalloc(size_t n);
void *quic_xcalloc(size_t n, size_t size);
/* ngtcp2 rand callback: libsodium randombytes. */
void quic_rand_cb(uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *ctx);
/* A TLS 1.3 session for ngtcp2: QUIC priorities, credentials, ALPN
 * (alpn NULL: offer none — test hook only), conn_ref as the session
 * pointer (ngtcp2's GnuTLS helper finds the connection through it). */
int quic_tls_new(gnutls_certificate_credentials_t cred, bool server,
		 const char *alpn, ngtcp2_crypto_conn_ref *ref,
		 gnutls_session_t *s_r, const char **error_r)
	__attribute__((warn_unused_result));
/* True when the handshake selected `alpn` (and TLS 1.3). */
bool quic_tls_alpn_is(gnutls_session_t s, const char *alpn);
/* The §9.1 exporter of a completed handshake. */
int quic_tls_exporter(gnutls_session_t s, uint8_t out[QUIC_EXPORTER_BYTES])
	__attribute__((warn_unused_result));
/* An ngtcp2 connection's timer as milliseconds from now (-1: none). */
int64_t quic_expiry_ms(ngtcp2_conn *conn, uint64_t now);

/* ------------------------------------------------- server test hooks */

/* Connections in handshake at which Retry starts (0: always). */
void quic_server_set_retry_threshold(quic_server *s, unsigned n);

/* ---------------------------------------- non-blocking client (engine) */

/* One client connection on its own connected UDP socket, driven by the
 * caller: poll quic_cconn_fd() for POLLIN (and POLLOUT when
 * quic_cconn_want_write()), at most quic_cconn_timeout_ms(), then call
 * quic_cconn_process().  Never blocks. */
typedef struct quic_cconn quic_cconn;
/* One request stream of a client connection. */
typedef struct quic_cstream quic_cstream;

/* Resolve host, open the socket, start the handshake (alpn NULL: offer
 * none, a test hook; the check of the server's choice is skipped then).
 * handshake_timeout_ms bounds the handshake. */
int quic_cconn_new(const char *host, uint16_t port, const char *alpn,
		   unsigned handshake_timeout_ms, quic_cconn **c_r,
		   const char **error_r) __attribute__((warn_unused_result));
/* Free everything (sends nothing: call quic_cconn_close first). */
void quic_cconn_free(quic_cconn **c);
int quic_cconn_fd(const quic_cconn *c);
bool quic_cconn_want_write(const quic_cconn *c);
/* Milliseconds until the connection's next timer, -1 when none. */
int quic_cconn_timeout_ms(const quic_cconn *c);
/* Read what the socket holds, run expired timers, send what can be sent.
 * 0, or -1 once the connection is over (*error_r says why; again -1 on
 * every later call). */
int quic_cconn_process(quic_cconn *c, const char **error_r)
	__attribute__((warn_unused_result));
bool quic_cconn_established(const quic_cconn *c);
void quic_cconn_exporter(const quic_cconn *c,
			 uint8_t out[QUIC_EXPORTER_BYTES]);
/* Send PINGs after ms of silence, so the peer's idle timer never fires
 * (0: half the idle timeout the two ends agreed on). */
void quic_cconn_keep_alive(quic_cconn *c, unsigned ms);
/* Close with CONNECTION_CLOSE (application error code), best effort. */
void quic_cconn_close(quic_cconn *c, uint64_t app_error);

/* Open a stream carrying data (copied; kept until ngtcp2 is done with
 * it), then FIN if fin.  The response frame may hold at most max_resp
 * bytes.  1: no stream credit now (try again later), 0: opened, -1:
 * error.  Needs an established connection. */
int quic_cstream_open(quic_cconn *c, const uint8_t *data, size_t len,
		      bool fin, size_t max_resp, quic_cstream **st_r,
		      const char **error_r) __attribute__((warn_unused_result));
/* 0: still waiting; 1: *resp_r (malloc'ed, now the caller's) holds the
 * response frame's payload; -1: failed (*error_r). */
int quic_cstream_result(quic_cstream *st, uint8_t **resp_r, size_t *len_r,
			const char **error_r) __attribute__((warn_unused_result));
/* The caller is done with st (a stream still running is cancelled).
 * Its memory goes once ngtcp2 has closed the stream, or with the
 * connection. */
void quic_cstream_release(quic_cstream **st);

/* ------------------------------------------- blocking client test hook */

/* quic_client_connect offering `alpn` (NULL: none) instead of "amp/1". */
int quic_client_connect_alpn(const char *host, uint16_t port,
			     unsigned timeout_ms, const char *alpn,
			     quic_client **c_r, const char **error_r)
	__attribute__((warn_unused_result));

#endif
