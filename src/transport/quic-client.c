/*
 * quic-client.c — the QUIC client: a non-blocking engine (quic_cconn,
 * quic-private.h: one connection on its own connected UDP socket, driven
 * by the caller's poll loop) and the blocking quic_client_* API of
 * quic.h on top of it (poll(2) on that one socket).
 *
 * Owns per connection: the socket, the ngtcp2_conn, the GnuTLS session
 * and credentials (no certificate check: the node is authenticated by
 * its node key, §9.1), its streams.  A stream keeps a copy of what it
 * sends until ngtcp2 closes it (ngtcp2 may retransmit from it until the
 * peer acknowledged it), and reads the response into a frame_reader
 * bounded by max_resp (checked from the header).
 *
 * Refuses: a server that does not select "amp/1"; a response frame over
 * max_resp, of length 0, followed by more data, or cut short.
 * Errors are static sentences.
 */
#include "quic-private.h"

#include "frame.h"

#include <errno.h>
#include <netdb.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Client flow control: responses may be large (a whole mailbox fetch);
 * received data is consumed at once. */
#define QUIC_CLI_STREAM_WINDOW (1024u * 1024u)
#define QUIC_CLI_STREAM_WINDOW_MAX (16u * 1024u * 1024u)
#define QUIC_CLI_CONN_WINDOW (4u * 1024u * 1024u)
#define QUIC_CLI_CONN_WINDOW_MAX (32u * 1024u * 1024u)
#define QUIC_CLI_IDLE_TIMEOUT_MS 60000u
/* Datagrams read per quic_cconn_process call (then the caller polls). */
#define QUIC_CLI_READ_BATCH 64

struct quic_cstream {
	struct quic_cstream *prev, *next;
	quic_cconn *c;
	int64_t id;
	uint8_t *tx;
	size_t tx_len, tx_off;
	bool tx_fin, tx_done, tx_blocked;
	frame_reader rd;
	uint8_t *resp;
	size_t resp_len;
	int result;             /* 0 waiting, 1 response complete, -1 failed */
	const char *error;
	bool released;          /* the caller let go */
	bool closed;            /* ngtcp2 is done with it */
};

struct quic_cconn {
	int fd;
	struct sockaddr_storage local, remote;
	socklen_t locallen, remotelen;
	gnutls_certificate_credentials_t cred;
	gnutls_session_t tls;
	ngtcp2_conn *q;
	ngtcp2_crypto_conn_ref ref;
	const char *alpn;       /* what we offered (NULL: nothing) */
	quic_cstream *streams;
	uint8_t exporter[QUIC_EXPORTER_BYTES];
	uint8_t pending[QUIC_MAX_PKT]; /* a datagram the socket refused */
	size_t pending_len;
	bool completed;         /* our side of the handshake is done */
	bool established;       /* ... and confirmed by the server */
	bool closed;
	const char *error;
};

/* ------------------------------------------------------------ streams */

static void cstream_unlink_free(quic_cstream *st)
{
	quic_cconn *c = st->c;
	if (st->prev != NULL)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next != NULL)
		st->next->prev = st->prev;
	frame_reader_deinit(&st->rd);
	free(st->tx);
	free(st->resp);
	free(st);
}

static void cstream_fail(quic_cstream *st, const char *why)
{
	if (st->result != 0)
		return;
	st->result = -1;
	st->error = why;
	frame_reader_deinit(&st->rd);
}

static int cb_recv_stream_data(ngtcp2_conn *q, uint32_t flags, int64_t id,
			       uint64_t offset, const uint8_t *data,
			       size_t len, void *ud, void *sud)
{
	quic_cstream *st = sud;
	(void)ud;
	(void)offset;

	(void)ngtcp2_conn_extend_max_stream_offset(q, id, len);
	ngtcp2_conn_extend_max_offset(q, len);
	if (st == NULL || st->result < 0)
		return 0;
	while (len > 0) {
		if (st->result == 1) {
			cstream_fail(st, "the server sent data after its response frame");
			(void)ngtcp2_conn_shutdown_stream(q, id, QUIC_APP_BAD_FRAME);
			return 0;
		}
		size_t used = 0, plen = 0;
		uint8_t *payload = NULL;
		const char *err = NULL;
		frame_res r = frame_reader_feed(&st->rd, data, len, &used,
						&payload, &plen, &err);
		data += used;
		len -= used;
		if (r == FRAME_ERROR) {
			cstream_fail(st, "the response frame is empty or larger than allowed");
			(void)ngtcp2_conn_shutdown_stream(q, id, QUIC_APP_BAD_FRAME);
			return 0;
		}
		if (r == FRAME_COMPLETE) {
			st->resp = payload;
			st->resp_len = plen;
			st->result = 1;
		}
	}
	if ((flags & NGTCP2_STREAM_DATA_FLAG_FIN) && st->result == 0)
		cstream_fail(st, "the server ended the stream before a whole response");
	return 0;
}

static int cb_stream_close(ngtcp2_conn *q, uint32_t flags, int64_t id,
			   uint64_t app_error, void *ud, void *sud)
{
	quic_cstream *st = sud;
	(void)q;
	(void)flags;
	(void)id;
	(void)app_error;
	(void)ud;
	if (st == NULL)
		return 0;
	if (st->result == 0)
		cstream_fail(st, "the stream closed before a whole response");
	st->closed = true;
	if (st->released)
		cstream_unlink_free(st);
	return 0;
}

static int cb_stream_reset(ngtcp2_conn *q, int64_t id, uint64_t final_size,
			   uint64_t app_error, void *ud, void *sud)
{
	quic_cstream *st = sud;
	(void)q;
	(void)id;
	(void)final_size;
	(void)app_error;
	(void)ud;
	if (st != NULL)
		cstream_fail(st, "the server refused the request (stream reset)");
	return 0;
}

static int cb_stream_stop_sending(ngtcp2_conn *q, int64_t id,
				  uint64_t app_error, void *ud, void *sud)
{
	quic_cstream *st = sud;
	(void)q;
	(void)id;
	(void)app_error;
	(void)ud;
	if (st != NULL) {
		st->tx_done = true; /* ngtcp2 resets our side itself */
		cstream_fail(st, "the server refused the request (stop sending)");
	}
	return 0;
}

static int cb_extend_max_stream_data(ngtcp2_conn *q, int64_t id,
				     uint64_t max_data, void *ud, void *sud)
{
	quic_cstream *st = sud;
	(void)q;
	(void)id;
	(void)max_data;
	(void)ud;
	if (st != NULL)
		st->tx_blocked = false;
	return 0;
}

/* -------------------------------------------------------- connection */

static ngtcp2_conn *cconn_get_ngtcp2(ngtcp2_crypto_conn_ref *ref)
{
	quic_cconn *c = ref->user_data;
	return c->q;
}

static int cb_handshake_completed(ngtcp2_conn *q, void *ud)
{
	quic_cconn *c = ud;
	(void)q;
	/* Without an offer (test hook) there is nothing to check. */
	if (c->alpn != NULL && !quic_tls_alpn_is(c->tls, c->alpn))
		return NGTCP2_ERR_CALLBACK_FAILURE;
	if (quic_tls_exporter(c->tls, c->exporter) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	c->completed = true;
	return 0;
}

/* The server has seen our Finished (HANDSHAKE_DONE): it has completed
 * its side too, so the node knows the connection when connect returns. */
static int cb_handshake_confirmed(ngtcp2_conn *q, void *ud)
{
	quic_cconn *c = ud;
	(void)q;
	if (c->completed)
		c->established = true;
	return 0;
}

static int cb_get_new_cid(ngtcp2_conn *q, ngtcp2_cid *cid, uint8_t *token,
			  size_t cidlen, void *ud)
{
	(void)q;
	(void)ud;
	cid->datalen = cidlen;
	randombytes_buf(cid->data, cidlen);
	randombytes_buf(token, NGTCP2_STATELESS_RESET_TOKENLEN);
	return 0;
}

static const ngtcp2_callbacks client_callbacks = {
	.client_initial = ngtcp2_crypto_client_initial_cb,
	.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
	.handshake_completed = cb_handshake_completed,
	.encrypt = ngtcp2_crypto_encrypt_cb,
	.decrypt = ngtcp2_crypto_decrypt_cb,
	.hp_mask = ngtcp2_crypto_hp_mask_cb,
	.recv_stream_data = cb_recv_stream_data,
	.stream_close = cb_stream_close,
	.recv_retry = ngtcp2_crypto_recv_retry_cb,
	.rand = quic_rand_cb,
	.get_new_connection_id = cb_get_new_cid,
	.update_key = ngtcp2_crypto_update_key_cb,
	.stream_reset = cb_stream_reset,
	.extend_max_stream_data = cb_extend_max_stream_data,
	.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
	.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
	.handshake_confirmed = cb_handshake_confirmed,
	.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
	.stream_stop_sending = cb_stream_stop_sending,
	.version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

static int open_socket(quic_cconn *c, const char *host, uint16_t port,
		       const char **error_r)
{
	struct addrinfo hints, *res = NULL;
	char portstr[8];

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_protocol = IPPROTO_UDP;
	int pn = snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
	if (pn < 0 || (size_t)pn >= sizeof(portstr) ||
	    getaddrinfo(host, portstr, &hints, &res) != 0 || res == NULL) {
		*error_r = "cannot resolve the server's name";
		return -1;
	}
	c->fd = -1;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(c->remote))
			continue;
		int fd = socket(ai->ai_family,
				ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			close(fd);
			continue;
		}
		c->fd = fd;
		memcpy(&c->remote, ai->ai_addr, ai->ai_addrlen);
		c->remotelen = ai->ai_addrlen;
		break;
	}
	freeaddrinfo(res);
	if (c->fd < 0) {
		*error_r = "cannot open a UDP socket to the server";
		return -1;
	}
	c->locallen = sizeof(c->local);
	if (getsockname(c->fd, (struct sockaddr *)&c->local, &c->locallen) != 0) {
		*error_r = "cannot read the local UDP address";
		return -1;
	}
	int sz = QUIC_SOCK_BUF;
	(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	(void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	return 0;
}

int quic_cconn_new(const char *host, uint16_t port, const char *alpn,
		   unsigned handshake_timeout_ms, quic_cconn **c_r,
		   const char **error_r)
{
	ngtcp2_settings st;
	ngtcp2_transport_params p;
	ngtcp2_cid dcid, scid;

	if (sodium_init() < 0) {
		*error_r = "libsodium cannot be initialised";
		return -1;
	}
	quic_cconn *c = quic_xcalloc(1, sizeof(*c));
	c->fd = -1;
	c->alpn = alpn;
	c->ref.get_conn = cconn_get_ngtcp2;
	c->ref.user_data = c;
	if (open_socket(c, host, port, error_r) != 0)
		goto fail;
	if (gnutls_certificate_allocate_credentials(&c->cred) < 0) {
		c->cred = NULL;
		*error_r = "cannot allocate TLS credentials";
		goto fail;
	}

	dcid.datalen = NGTCP2_MIN_INITIAL_DCIDLEN + 8;
	randombytes_buf(dcid.data, dcid.datalen);
	scid.datalen = QUIC_SCID_LEN;
	randombytes_buf(scid.data, scid.datalen);

	ngtcp2_settings_default(&st);
	st.initial_ts = quic_now();
	st.handshake_timeout = (uint64_t)handshake_timeout_ms * NGTCP2_MILLISECONDS;
	st.max_window = QUIC_CLI_CONN_WINDOW_MAX;
	st.max_stream_window = QUIC_CLI_STREAM_WINDOW_MAX;

	ngtcp2_transport_params_default(&p);
	p.initial_max_streams_bidi = 0; /* the server opens no streams */
	p.initial_max_streams_uni = 0;
	p.initial_max_stream_data_bidi_local = QUIC_CLI_STREAM_WINDOW;
	p.initial_max_stream_data_bidi_remote = 0;
	p.initial_max_stream_data_uni = 0;
	p.initial_max_data = QUIC_CLI_CONN_WINDOW;
	p.max_idle_timeout = (uint64_t)QUIC_CLI_IDLE_TIMEOUT_MS * NGTCP2_MILLISECONDS;

	ngtcp2_path path = {
		{ (ngtcp2_sockaddr *)&c->local, c->locallen },
		{ (ngtcp2_sockaddr *)&c->remote, c->remotelen },
		NULL,
	};
	if (ngtcp2_conn_client_new(&c->q, &dcid, &scid, &path,
				   NGTCP2_PROTO_VER_V1, &client_callbacks, &st,
				   &p, NULL, c) != 0) {
		c->q = NULL;
		*error_r = "cannot create the QUIC connection";
		goto fail;
	}
	if (quic_tls_new(c->cred, false, alpn, &c->ref, &c->tls, error_r) != 0)
		goto fail;
	ngtcp2_conn_set_tls_native_handle(c->q, c->tls);
	*c_r = c;
	return 0;

fail:
	quic_cconn_free(&c);
	return -1;
}

void quic_cconn_free(quic_cconn **cp)
{
	if (cp == NULL || *cp == NULL)
		return;
	quic_cconn *c = *cp;
	*cp = NULL;
	if (c->q != NULL)
		ngtcp2_conn_del(c->q);
	if (c->tls != NULL)
		gnutls_deinit(c->tls);
	if (c->cred != NULL)
		gnutls_certificate_free_credentials(c->cred);
	while (c->streams != NULL)
		cstream_unlink_free(c->streams);
	if (c->fd >= 0)
		close(c->fd);
	sodium_memzero(c->exporter, sizeof(c->exporter));
	free(c);
}

int quic_cconn_fd(const quic_cconn *c)
{
	return c->fd;
}

bool quic_cconn_want_write(const quic_cconn *c)
{
	return c->pending_len > 0;
}

int quic_cconn_timeout_ms(const quic_cconn *c)
{
	if (c->closed || c->q == NULL)
		return -1;
	return (int)quic_expiry_ms(c->q, quic_now());
}

bool quic_cconn_established(const quic_cconn *c)
{
	return c->established && !c->closed;
}

void quic_cconn_exporter(const quic_cconn *c, uint8_t out[QUIC_EXPORTER_BYTES])
{
	memcpy(out, c->exporter, QUIC_EXPORTER_BYTES);
}

void quic_cconn_keep_alive(quic_cconn *c, unsigned ms)
{
	uint64_t t = (uint64_t)ms * NGTCP2_MILLISECONDS;
	if (c->q == NULL)
		return;
	if (t == 0) { /* half the idle timeout both ends agreed on */
		const ngtcp2_transport_params *rp =
			ngtcp2_conn_get_remote_transport_params(c->q);
		t = (uint64_t)QUIC_CLI_IDLE_TIMEOUT_MS * NGTCP2_MILLISECONDS;
		if (rp != NULL && rp->max_idle_timeout > 0 &&
		    rp->max_idle_timeout < t)
			t = rp->max_idle_timeout;
		t /= 2;
	}
	ngtcp2_conn_set_keep_alive_timeout(c->q, t);
}

/* The connection is over: fail every stream still waiting. */
static void cconn_set_closed(quic_cconn *c, const char *why)
{
	if (c->closed)
		return;
	c->closed = true;
	c->error = why;
	for (quic_cstream *st = c->streams; st != NULL; st = st->next)
		cstream_fail(st, why);
}

/* 0: sent (or lost); 1: the socket is full, kept in c->pending. */
static int cconn_send(quic_cconn *c, const uint8_t *p, size_t n)
{
	for (;;) {
		ssize_t w = send(c->fd, p, n, 0);
		if (w >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			memcpy(c->pending, p, n);
			c->pending_len = n;
			return 1;
		}
		return 0; /* ECONNREFUSED etc.: like a lost datagram */
	}
}

static void cconn_write_close(quic_cconn *c, const ngtcp2_connection_close_error *cc)
{
	uint8_t buf[QUIC_MAX_PKT];
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;

	if (c->q == NULL || ngtcp2_conn_is_in_closing_period(c->q) ||
	    ngtcp2_conn_is_in_draining_period(c->q))
		return;
	ngtcp2_path_storage_zero(&ps);
	ngtcp2_ssize n = ngtcp2_conn_write_connection_close(
		c->q, &ps.path, &pi, buf, sizeof(buf), cc, quic_now());
	if (n > 0)
		(void)send(c->fd, buf, (size_t)n, 0);
}

/* Why the server closed the connection, from its CONNECTION_CLOSE. */
static const char *peer_close_reason(quic_cconn *c)
{
	ngtcp2_connection_close_error cc;
	ngtcp2_conn_get_connection_close_error(c->q, &cc);
	if (cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT) {
		if (cc.error_code == NGTCP2_CONNECTION_REFUSED)
			return "the server refused the connection";
		if ((cc.error_code & ~(uint64_t)0xff) == NGTCP2_CRYPTO_ERROR)
			return "the server refused the TLS handshake (TLS 1.3 with ALPN amp/1 required)";
		if (cc.error_code == NGTCP2_INVALID_TOKEN)
			return "the server refused the address validation token";
	}
	if (cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION) {
		if (cc.error_code == QUIC_APP_SHUTDOWN)
			return "the server is shutting down";
		if (cc.error_code == QUIC_APP_REFUSED)
			return "the node refused the connection";
	}
	return "the server closed the connection";
}

/* An error from ngtcp2_conn_read_pkt / _handle_expiry / _writev_stream. */
static void cconn_on_error(quic_cconn *c, int rv)
{
	ngtcp2_connection_close_error cc;

	switch (rv) {
	case NGTCP2_ERR_DRAINING:
		cconn_set_closed(c, peer_close_reason(c));
		return;
	case NGTCP2_ERR_IDLE_CLOSE:
		cconn_set_closed(c, "the connection timed out (idle)");
		return;
	case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
		cconn_set_closed(c, "the QUIC handshake timed out");
		return;
	case NGTCP2_ERR_RECV_VERSION_NEGOTIATION:
		cconn_set_closed(c, "the server does not speak QUIC version 1");
		return;
	default:
		break;
	}
	ngtcp2_connection_close_error_default(&cc);
	if (rv == NGTCP2_ERR_CRYPTO)
		ngtcp2_connection_close_error_set_transport_error_tls_alert(
			&cc, ngtcp2_conn_get_tls_alert(c->q), NULL, 0);
	else
		ngtcp2_connection_close_error_set_transport_error_liberr(
			&cc, rv, NULL, 0);
	cconn_write_close(c, &cc);
	if (rv == NGTCP2_ERR_CALLBACK_FAILURE && !c->completed)
		cconn_set_closed(c, "the server did not select ALPN amp/1");
	else if (rv == NGTCP2_ERR_CRYPTO)
		cconn_set_closed(c, "the TLS handshake failed");
	else
		cconn_set_closed(c, "QUIC protocol error");
}

static int cconn_read(quic_cconn *c)
{
	uint8_t buf[QUIC_RECV_BUF];
	ngtcp2_path path = {
		{ (ngtcp2_sockaddr *)&c->local, c->locallen },
		{ (ngtcp2_sockaddr *)&c->remote, c->remotelen },
		NULL,
	};
	ngtcp2_pkt_info pi;

	for (int i = 0; i < QUIC_CLI_READ_BATCH; i++) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return 0; /* EAGAIN, or ICMP errors: nothing to read */
		}
		if (n == 0)
			continue;
		memset(&pi, 0, sizeof(pi));
		int rv = ngtcp2_conn_read_pkt(c->q, &path, &pi, buf, (size_t)n,
					      quic_now());
		if (rv != 0) {
			cconn_on_error(c, rv);
			return -1;
		}
	}
	return 0;
}

static bool cstream_sendable(const quic_cstream *st)
{
	return !st->tx_done && !st->tx_blocked && st->result >= 0;
}

static void cstream_advance(quic_cstream *st, ngtcp2_ssize n)
{
	if (n < 0)
		return;
	st->tx_off += (size_t)n;
	if (st->tx_off >= st->tx_len)
		st->tx_done = true;
}

static int cconn_write(quic_cconn *c)
{
	uint8_t buf[QUIC_MAX_PKT];
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	uint64_t ts = quic_now();
	quic_cstream *st = c->streams;

	if (c->pending_len > 0) {
		uint8_t again[QUIC_MAX_PKT];
		size_t n = c->pending_len;
		memcpy(again, c->pending, n);
		c->pending_len = 0;
		if (cconn_send(c, again, n) != 0)
			return 0;
	}
	ngtcp2_path_storage_zero(&ps);
	for (;;) {
		while (st != NULL && !cstream_sendable(st))
			st = st->next;
		int64_t sid = -1;
		ngtcp2_vec v = { NULL, 0 };
		size_t vcnt = 0;
		uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_NONE;
		if (st != NULL) {
			sid = st->id;
			v.base = st->tx + st->tx_off;
			v.len = st->tx_len - st->tx_off;
			vcnt = 1;
			flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
			if (st->tx_fin)
				flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
		}
		ngtcp2_ssize nd = -1;
		ngtcp2_ssize n = ngtcp2_conn_writev_stream(
			c->q, &ps.path, &pi, buf, sizeof(buf), &nd, flags, sid,
			&v, vcnt, ts);
		if (n < 0) {
			switch (n) {
			case NGTCP2_ERR_WRITE_MORE:
				cstream_advance(st, nd);
				continue;
			case NGTCP2_ERR_STREAM_DATA_BLOCKED:
				st->tx_blocked = true;
				continue;
			case NGTCP2_ERR_STREAM_SHUT_WR:
			case NGTCP2_ERR_STREAM_NOT_FOUND:
				st->tx_done = true;
				continue;
			default:
				cconn_on_error(c, (int)n);
				return -1;
			}
		}
		if (n == 0)
			break;
		if (st != NULL)
			cstream_advance(st, nd);
		if (cconn_send(c, buf, (size_t)n) != 0)
			break;
	}
	ngtcp2_conn_update_pkt_tx_time(c->q, ts);
	return 0;
}

int quic_cconn_process(quic_cconn *c, const char **error_r)
{
	if (!c->closed && cconn_read(c) == 0) {
		uint64_t now = quic_now();
		if (ngtcp2_conn_get_expiry(c->q) <= now) {
			int rv = ngtcp2_conn_handle_expiry(c->q, now);
			if (rv != 0)
				cconn_on_error(c, rv);
		}
		if (!c->closed)
			(void)cconn_write(c);
	}
	if (c->closed) {
		*error_r = c->error;
		return -1;
	}
	return 0;
}

void quic_cconn_close(quic_cconn *c, uint64_t app_error)
{
	ngtcp2_connection_close_error cc;
	if (c->closed || c->q == NULL)
		return;
	ngtcp2_connection_close_error_default(&cc);
	ngtcp2_connection_close_error_set_application_error(&cc, app_error,
							    NULL, 0);
	cconn_write_close(c, &cc);
	cconn_set_closed(c, "the connection was closed");
}

int quic_cstream_open(quic_cconn *c, const uint8_t *data, size_t len,
		      bool fin, size_t max_resp, quic_cstream **st_r,
		      const char **error_r)
{
	int64_t id;

	if (c->closed || !c->established) {
		*error_r = c->closed ? c->error : "the connection is not established";
		return -1;
	}
	quic_cstream *st = quic_xcalloc(1, sizeof(*st));
	int rv = ngtcp2_conn_open_bidi_stream(c->q, &id, st);
	if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) {
		free(st);
		return 1;
	}
	if (rv != 0) {
		free(st);
		*error_r = "cannot open a QUIC stream";
		return -1;
	}
	st->c = c;
	st->id = id;
	st->tx = quic_xmalloc(len);
	if (len > 0)
		memcpy(st->tx, data, len);
	st->tx_len = len;
	st->tx_fin = fin;
	st->tx_done = len == 0 && !fin;
	frame_reader_init(&st->rd, max_resp);
	st->next = c->streams;
	if (c->streams != NULL)
		c->streams->prev = st;
	c->streams = st;
	*st_r = st;
	return 0;
}

int quic_cstream_result(quic_cstream *st, uint8_t **resp_r, size_t *len_r,
			const char **error_r)
{
	if (st->result < 0) {
		*error_r = st->error;
		return -1;
	}
	if (st->result == 0)
		return 0;
	*resp_r = st->resp;
	*len_r = st->resp_len;
	st->resp = NULL;
	st->resp_len = 0;
	return 1;
}

void quic_cstream_release(quic_cstream **stp)
{
	if (stp == NULL || *stp == NULL)
		return;
	quic_cstream *st = *stp;
	*stp = NULL;
	quic_cconn *c = st->c;
	st->released = true;
	if (st->closed || c->closed || c->q == NULL) {
		if (st->closed)
			cstream_unlink_free(st);
		return; /* else freed with the connection */
	}
	if (st->result != 1 || !st->tx_done) {
		/* Still running: cancel it; memory goes at stream close. */
		st->tx_done = true;
		(void)ngtcp2_conn_shutdown_stream(c->q, st->id, QUIC_APP_CANCELLED);
		cstream_fail(st, "cancelled");
	}
}

/* ------------------------------------------------------ blocking client */

/* Process without waiting; a connection that ended shows in its streams. */
static void cconn_flush(quic_cconn *c)
{
	const char *err;
	if (quic_cconn_process(c, &err) != 0)
		return;
}

struct quic_client {
	quic_cconn *c;
};

/* Wait (at most until deadline_ns) for input or the next timer, then
 * process.  -1 when the connection is over (*error_r). */
static int client_step(quic_cconn *c, uint64_t deadline_ns, const char **error_r)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	uint64_t now = quic_now();

	if (c->closed) {
		*error_r = c->error;
		return -1;
	}
	int timeout = quic_cconn_timeout_ms(c);
	int64_t left = deadline_ns > now
			       ? (int64_t)((deadline_ns - now + NGTCP2_MILLISECONDS - 1) /
					   NGTCP2_MILLISECONDS)
			       : 0;
	if (timeout < 0 || timeout > left)
		timeout = (int)(left > INT32_MAX ? INT32_MAX : left);
	if (quic_cconn_want_write(c))
		pfd.events |= POLLOUT;
	if (poll(&pfd, 1, timeout) < 0 && errno != EINTR) {
		*error_r = "poll failed";
		return -1;
	}
	return quic_cconn_process(c, error_r);
}

int quic_client_connect_alpn(const char *host, uint16_t port,
			     unsigned timeout_ms, const char *alpn,
			     quic_client **c_r, const char **error_r)
{
	quic_cconn *c = NULL;
	uint64_t deadline = quic_now() + (uint64_t)timeout_ms * NGTCP2_MILLISECONDS;

	if (quic_cconn_new(host, port, alpn, timeout_ms, &c, error_r) != 0)
		return -1;
	if (quic_cconn_process(c, error_r) != 0) { /* send the first flight */
		quic_cconn_free(&c);
		return -1;
	}
	while (!quic_cconn_established(c)) {
		if (quic_now() >= deadline) {
			*error_r = "the QUIC handshake timed out";
			quic_cconn_close(c, QUIC_APP_CANCELLED);
			quic_cconn_free(&c);
			return -1;
		}
		if (client_step(c, deadline, error_r) != 0) {
			quic_cconn_free(&c);
			return -1;
		}
	}
	quic_client *qc = quic_xcalloc(1, sizeof(*qc));
	qc->c = c;
	*c_r = qc;
	return 0;
}

int quic_client_connect(const char *host, uint16_t port, unsigned timeout_ms,
			quic_client **c_r, const char **error_r)
{
	return quic_client_connect_alpn(host, port, timeout_ms, QUIC_ALPN, c_r,
					error_r);
}

void quic_client_exporter(const quic_client *c, uint8_t out[QUIC_EXPORTER_BYTES])
{
	quic_cconn_exporter(c->c, out);
}

int quic_client_request(quic_client *qc, const uint8_t *payload, size_t len,
			size_t max_resp, unsigned timeout_ms, uint8_t **resp_r,
			size_t *resp_len_r, const char **error_r)
{
	quic_cconn *c = qc->c;
	quic_cstream *st = NULL;
	uint64_t deadline = quic_now() + (uint64_t)timeout_ms * NGTCP2_MILLISECONDS;
	int rv;

	if (len == 0 || len > FRAME_MAX_LIMIT) {
		*error_r = "request payload size out of range";
		return -1;
	}
	if (max_resp == 0)
		max_resp = 1;
	/* Take in what arrived meanwhile (a close, an idle timeout). */
	if (quic_cconn_process(c, error_r) != 0)
		return -1;
	uint8_t *frame = quic_xmalloc(FRAME_HEADER_BYTES + len);
	frame_header(len, frame);
	memcpy(frame + FRAME_HEADER_BYTES, payload, len);
	for (;;) {
		rv = quic_cstream_open(c, frame, FRAME_HEADER_BYTES + len, true,
				       max_resp, &st, error_r);
		if (rv != 1)
			break;
		/* No stream credit: wait for the server to grant some. */
		if (quic_now() >= deadline) {
			*error_r = "the request timed out waiting for a stream";
			rv = -1;
			break;
		}
		if (client_step(c, deadline, error_r) != 0) {
			rv = -1;
			break;
		}
	}
	free(frame);
	if (rv != 0)
		return -1;

	/* Send at once; then wait.  When the connection ends, the stream
	 * is failed with the reason, and the loop ends on its result. */
	int res;
	const char *ignored;
	cconn_flush(c);
	for (;;) {
		res = quic_cstream_result(st, resp_r, resp_len_r, error_r);
		if (res != 0)
			break;
		if (quic_now() >= deadline) {
			*error_r = "the request timed out";
			res = -1;
			break;
		}
		(void)client_step(c, deadline, &ignored);
	}
	quic_cstream_release(&st);
	cconn_flush(c); /* let the cancel / final ACKs go out */
	return res == 1 ? 0 : -1;
}

void quic_client_close(quic_client **qcp)
{
	if (qcp == NULL || *qcp == NULL)
		return;
	quic_client *qc = *qcp;
	*qcp = NULL;
	quic_cconn_close(qc->c, QUIC_APP_NO_ERROR);
	quic_cconn_free(&qc->c);
	free(qc);
}
