/*
 * quic.c — pieces the QUIC server (quic-server.c) and client
 * (quic-client.c) share: the clock, randomness, the TLS session set up
 * for ngtcp2's GnuTLS helper, the ALPN check and the §9.1 exporter.
 *
 * Design of the transport (quic.h is the contract):
 *  - ngtcp2 0.12 does the protocol: datagrams in (ngtcp2_conn_read_pkt),
 *    datagrams out (ngtcp2_conn_writev_stream), one deadline per
 *    connection (ngtcp2_conn_get_expiry).  Our code only moves bytes
 *    between it, the socket, and per-stream frame readers (src/amp/frame).
 *  - TLS 1.3 only, no tickets, no 0-RTT; ALPN "amp/1" mandatory: the
 *    server refuses a ClientHello without it (hook right after the
 *    ClientHello) and both sides check the result when the handshake
 *    completes.
 *  - Server (quic-server.c): one uv_udp_t; connections found by
 *    destination connection ID in a SipHash table (keys: every CID we
 *    issued plus the client's first DCID), per-IP counts in a second
 *    table; one uv_timer_t per connection armed at ngtcp2's expiry (loss
 *    recovery, ACK delay, pacing, idle timeout, handshake timeout all go
 *    through it).  Admission (max_conns, max_conns_per_ip, pause) is
 *    decided from the first Initial, before any state is created; a
 *    refused client gets an Initial CONNECTION_CLOSE (CONNECTION_REFUSED).
 *    Retry is sent when many connections are in handshake.
 *  - Memory per idle connection (measured, 1000 connections from
 *    tests/tools/amp-quic-flood): ~88 KB of heap, ~95 KB of RSS; ngtcp2
 *    holds ~75 KB, the GnuTLS session ~13 KB, our quic_conn (with its
 *    uv_timer_t) ~400 bytes.  An open stream adds ~2.6 KB (mostly
 *    ngtcp2's).  No buffer is sized by a flow-control window.  A stream
 *    holds at most one request frame (allocated from its header, at most
 *    the connection's max frame: worst case per connection max_streams x
 *    max_frame) and one response (owned until ngtcp2 closes the stream).
 *    A connection that closed keeps only its CIDs and close packet for
 *    3 PTO.
 *  - Timers: one per connection (ngtcp2's expiry: loss recovery, ACK
 *    delay, pacing, idle and handshake timeouts); it also runs, at 0 ms,
 *    whatever the node asked for from outside a callback (respond,
 *    close).
 *  - Limits: max_conns and max_conns_per_ip at the first Initial;
 *    max_streams as QUIC's initial_max_streams_bidi, one more granted as
 *    each stream closes; no client unidirectional streams (limit 0);
 *    max_frame per stream from the frame header; idle_timeout_ms as the
 *    transport parameter; handshake_timeout_ms in ngtcp2's settings.
 *  - Client (quic-client.c): a non-blocking engine over a connected UDP
 *    socket, and the blocking quic_client_* API that drives it with
 *    poll(2).
 */
#include "quic-private.h"

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* TLS 1.3 only, ciphers ngtcp2's GnuTLS helper supports, and no
 * middlebox compatibility mode (RFC 9001 §8.4). */
#define QUIC_PRIORITY                                                   \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"       \
	"+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:"                 \
	"%DISABLE_TLS13_COMPAT_MODE"

uint64_t quic_now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		abort(); /* cannot fail for CLOCK_MONOTONIC */
	return (uint64_t)ts.tv_sec * NGTCP2_SECONDS + (uint64_t)ts.tv_nsec;
}

static void oom(size_t n)
{
	fprintf(stderr, "quic: out of memory (%zu bytes)\n", n);
	abort();
}

void *quic_xmalloc(size_t n)
{
	void *p = malloc(n == 0 ? 1 : n);
	if (p == NULL)
		oom(n);
	return p;
}

void *quic_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
	if (p == NULL)
		oom(size);
	return p;
}

void quic_rand_cb(uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *ctx)
{
	(void)ctx;
	randombytes_buf(dest, destlen);
}

int quic_tls_new(gnutls_certificate_credentials_t cred, bool server,
		 const char *alpn, ngtcp2_crypto_conn_ref *ref,
		 gnutls_session_t *s_r, const char **error_r)
{
	gnutls_session_t s = NULL;
	int rc = gnutls_init(&s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
					 GNUTLS_NO_TICKETS);
	if (rc < 0) {
		*error_r = "cannot create a TLS session";
		return -1;
	}
	if (server)
		rc = ngtcp2_crypto_gnutls_configure_server_session(s);
	else
		rc = ngtcp2_crypto_gnutls_configure_client_session(s);
	if (rc == 0)
		rc = gnutls_priority_set_direct(s, QUIC_PRIORITY, NULL);
	if (rc == 0)
		rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
	if (rc == 0 && alpn != NULL) {
		gnutls_datum_t d = { (unsigned char *)alpn,
				     (unsigned)strlen(alpn) };
		rc = gnutls_alpn_set_protocols(s, &d, 1, GNUTLS_ALPN_MANDATORY);
	}
	if (rc != 0) {
		gnutls_deinit(s);
		*error_r = "cannot configure the TLS session for QUIC";
		return -1;
	}
	gnutls_session_set_ptr(s, ref);
	*s_r = s;
	return 0;
}

bool quic_tls_alpn_is(gnutls_session_t s, const char *alpn)
{
	gnutls_datum_t sel;
	size_t n = strlen(alpn);
	return gnutls_alpn_get_selected_protocol(s, &sel) == 0 &&
	       sel.size == n && memcmp(sel.data, alpn, n) == 0 &&
	       gnutls_protocol_get_version(s) == GNUTLS_TLS1_3;
}

int quic_tls_exporter(gnutls_session_t s, uint8_t out[QUIC_EXPORTER_BYTES])
{
	return gnutls_prf_rfc5705(s, sizeof(QUIC_EXPORTER_LABEL) - 1,
				  QUIC_EXPORTER_LABEL, 0, NULL,
				  QUIC_EXPORTER_BYTES, (char *)out) < 0
		       ? -1
		       : 0;
}

int64_t quic_expiry_ms(ngtcp2_conn *conn, uint64_t now)
{
	uint64_t exp = ngtcp2_conn_get_expiry(conn);
	if (exp == UINT64_MAX)
		return -1;
	if (exp <= now)
		return 0;
	/* Round up, so a timer never fires just before its deadline. */
	uint64_t ms = (exp - now + NGTCP2_MILLISECONDS - 1) / NGTCP2_MILLISECONDS;
	return ms > INT32_MAX ? INT32_MAX : (int64_t)ms;
}
