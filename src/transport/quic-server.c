/*
 * quic-server.c — the QUIC server of quic.h on a libuv loop (design
 * notes: quic.c).
 *
 * Owns: one UDP handle, the connections (each: an ngtcp2_conn, a GnuTLS
 * session, a uv_timer_t, its streams), two hash tables (connection IDs,
 * connections per source IP), the server credentials.  Calls: ngtcp2,
 * GnuTLS, libuv, libsodium (randomness, SipHash), src/amp/frame.
 *
 * Refuses: a first Initial when paused, at max_conns, or at
 * max_conns_per_ip (CONNECTION_CLOSE with CONNECTION_REFUSED, no state
 * kept); a ClientHello without ALPN "amp/1" (TLS alert 120); streams
 * beyond max_streams and any unidirectional stream (QUIC stream limits);
 * a request frame of length 0 or over the connection's maximum, data
 * after the request frame, a stream ended before its frame is complete
 * (RESET_STREAM + STOP_SENDING with QUIC_APP_BAD_FRAME; the connection
 * goes on).  A handshake not done within handshake_timeout_ms, or
 * silence for idle_timeout_ms, drops the connection.
 *
 * Connection states: HANDSHAKE → OPEN (on_connect returned a pointer) →
 * CLOSING (we sent CONNECTION_CLOSE; it is repeated to late packets) or
 * DRAINING (the peer closed) for 3 PTO, then freed.  Entering CLOSING or
 * DRAINING frees the ngtcp2 and TLS state at once and calls on_close;
 * only the CIDs, the close packet and the timer stay.
 *
 * Re-entrancy: node callbacks run inside ngtcp2 calls (c->busy);
 * quic_respond and quic_conn_close only record what to do and let the
 * connection's timer (0 ms) or the end of the current packet do it, so
 * no callback ever runs inside a call the node made.
 */
#include "quic-private.h"

#include "frame.h"

#include <errno.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --------------------------------------------------------- hash table */

/* One key: a connection ID (-> its connection) or a source IP (-> the
 * number of its connections). */
typedef struct qent {
	struct qent *next;       /* bucket chain */
	struct qent *owner_next; /* the connection's own CIDs */
	quic_conn *conn;
	unsigned count;
	uint8_t klen;
	uint8_t key[NGTCP2_MAX_CIDLEN];
} qent;

typedef struct qmap {
	qent **b;
	size_t nb, n;
	uint8_t k[crypto_shorthash_KEYBYTES]; /* SipHash key: no hash flooding */
} qmap;

static void qmap_init(qmap *m)
{
	m->nb = 64;
	m->n = 0;
	m->b = quic_xcalloc(m->nb, sizeof(*m->b));
	randombytes_buf(m->k, sizeof(m->k));
}

static size_t qmap_slot(const qmap *m, const uint8_t *key, size_t klen)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v = 0;
	crypto_shorthash(h, key, klen, m->k);
	for (size_t i = 0; i < sizeof(h); i++)
		v = (v << 8) | h[i];
	return (size_t)(v & (m->nb - 1));
}

static qent *qmap_find(const qmap *m, const uint8_t *key, size_t klen)
{
	if (klen > NGTCP2_MAX_CIDLEN)
		return NULL;
	for (qent *e = m->b[qmap_slot(m, key, klen)]; e != NULL; e = e->next)
		if (e->klen == klen && memcmp(e->key, key, klen) == 0)
			return e;
	return NULL;
}

static void qmap_insert(qmap *m, qent *e)
{
	if (m->n >= m->nb) { /* grow: load factor stays <= 1 */
		size_t onb = m->nb;
		qent **ob = m->b;
		m->nb *= 2;
		m->b = quic_xcalloc(m->nb, sizeof(*m->b));
		for (size_t i = 0; i < onb; i++) {
			qent *x = ob[i];
			while (x != NULL) {
				qent *nx = x->next;
				size_t j = qmap_slot(m, x->key, x->klen);
				x->next = m->b[j];
				m->b[j] = x;
				x = nx;
			}
		}
		free(ob);
	}
	size_t j = qmap_slot(m, e->key, e->klen);
	e->next = m->b[j];
	m->b[j] = e;
	m->n++;
}

static void qmap_remove(qmap *m, qent *e)
{
	qent **pp = &m->b[qmap_slot(m, e->key, e->klen)];
	while (*pp != NULL && *pp != e)
		pp = &(*pp)->next;
	if (*pp == e) {
		*pp = e->next;
		m->n--;
	}
}

/* ------------------------------------------------------------ objects */

typedef struct sstream {
	struct sstream *prev, *next;
	int64_t id;
	frame_reader rd;
	uint8_t *resp;          /* header ‖ payload, until the stream closes */
	size_t resp_len, resp_off;
	bool requested;         /* the request frame was handed to the node */
	bool failed;            /* reset by us or by the peer */
	bool blocked;           /* flow control: wait for MAX_STREAM_DATA */
	bool write_done;        /* everything and FIN handed to ngtcp2 */
} sstream;

typedef enum conn_state {
	CONN_HANDSHAKE,
	CONN_OPEN,
	CONN_CLOSING,
	CONN_DRAINING,
} conn_state;

struct quic_conn {
	quic_server *s;
	quic_conn *prev, *next;
	ngtcp2_conn *q;
	gnutls_session_t tls;
	ngtcp2_crypto_conn_ref ref;
	uv_timer_t timer;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	qent *cids;             /* keys of s->cids pointing here */
	qent *ip;               /* entry of s->ips counting this connection */
	void *user;             /* from on_connect */
	size_t max_frame;
	sstream *streams;
	uint8_t *close_pkt;
	size_t close_len;
	uint64_t app_error;     /* for close_pending */
	conn_state state;
	bool in_handshake;      /* counted in s->handshaking */
	bool close_pending;     /* quic_conn_close or on_connect said no */
	bool busy;              /* inside an ngtcp2 call */
	bool alpn_refused;
	bool send_blocked;      /* socket full: wait for the queue to drain */
	bool closed_notified;
	bool destroyed;         /* conn_destroy ran; freed by the timer's close */
};

struct quic_server {
	uv_loop_t *loop;
	uv_udp_t udp;
	quic_server_cbs cbs;
	void *arg;
	unsigned max_conns, max_conns_per_ip, max_streams;
	size_t max_frame;
	uint64_t idle_timeout, handshake_timeout; /* ngtcp2 durations */
	gnutls_certificate_credentials_t cred;
	struct sockaddr_storage local;
	socklen_t locallen;
	qmap cids, ips;
	quic_conn *conns;
	unsigned nconns, handshaking, retry_threshold;
	size_t queued;          /* bytes in uv_udp_send requests */
	unsigned handles;       /* uv handles whose close callback is due */
	bool paused, stopping, udp_closing;
	uint8_t reset_secret[32], token_secret[32];
	uint8_t rbuf[QUIC_RECV_BUF];
};

typedef struct send_req {
	uv_udp_send_t req;
	quic_server *s;
	size_t len;
	uint8_t data[];
} send_req;

static void conn_on_timer(uv_timer_t *t);
static void conn_destroy(quic_conn *c);
static void conn_close_app(quic_conn *c);

/* ------------------------------------------------------------ sending */

static socklen_t sa_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					 : sizeof(struct sockaddr_in);
}

static void server_send_done(uv_udp_send_t *req, int status)
{
	send_req *r = (send_req *)req;
	quic_server *s = r->s;
	(void)status;
	s->queued -= r->len;
	free(r);
	if (s->stopping || uv_udp_get_send_queue_count(&s->udp) > 0)
		return;
	for (quic_conn *c = s->conns; c != NULL; c = c->next) {
		if (c->send_blocked) {
			c->send_blocked = false;
			uv_timer_start(&c->timer, conn_on_timer, 0, 0);
		}
	}
}

/* Send one datagram.  0: sent (or dropped as lost); 1: the socket is
 * full and the datagram was queued (or dropped, past the queue limit):
 * the caller should stop sending until the queue drains. */
static int server_send(quic_server *s, const struct sockaddr *to,
		       const uint8_t *p, size_t n)
{
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	if (s->udp_closing)
		return 0;
	int rc = uv_udp_try_send(&s->udp, &b, 1, to);
	if (rc != UV_EAGAIN)
		return 0; /* sent; other errors are like a lost packet */
	if (s->queued + n > QUIC_SEND_QUEUE_MAX)
		return 1;
	send_req *r = quic_xmalloc(sizeof(*r) + n);
	r->s = s;
	r->len = n;
	memcpy(r->data, p, n);
	b = uv_buf_init((char *)r->data, (unsigned)n);
	if (uv_udp_send(&r->req, &s->udp, &b, 1, to, server_send_done) != 0) {
		free(r);
		return 0; /* lost; no completion would wake us */
	}
	s->queued += n;
	return 1;
}

/* ---------------------------------------------------- connection IDs */

static void conn_add_cid(quic_conn *c, const uint8_t *id, size_t len)
{
	qent *e = quic_xcalloc(1, sizeof(*e));
	e->conn = c;
	e->klen = (uint8_t)len;
	memcpy(e->key, id, len);
	qmap_insert(&c->s->cids, e);
	e->owner_next = c->cids;
	c->cids = e;
}

/* A fresh random CID (not in use) and its stateless reset token. */
static int server_new_cid(quic_server *s, ngtcp2_cid *cid, size_t len,
			  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN])
{
	do {
		cid->datalen = len;
		randombytes_buf(cid->data, len);
	} while (qmap_find(&s->cids, cid->data, len) != NULL);
	return ngtcp2_crypto_generate_stateless_reset_token(
		token, s->reset_secret, sizeof(s->reset_secret), cid);
}

static int cb_get_new_cid(ngtcp2_conn *q, ngtcp2_cid *cid, uint8_t *token,
			  size_t cidlen, void *ud)
{
	quic_conn *c = ud;
	(void)q;
	if (server_new_cid(c->s, cid, cidlen, token) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	conn_add_cid(c, cid->data, cid->datalen);
	return 0;
}

static int cb_remove_cid(ngtcp2_conn *q, const ngtcp2_cid *cid, void *ud)
{
	quic_conn *c = ud;
	(void)q;
	for (qent **pp = &c->cids; *pp != NULL; pp = &(*pp)->owner_next) {
		qent *e = *pp;
		if (e->klen == cid->datalen &&
		    memcmp(e->key, cid->data, cid->datalen) == 0) {
			*pp = e->owner_next;
			qmap_remove(&c->s->cids, e);
			free(e);
			break;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ streams */

static sstream *conn_find_stream(quic_conn *c, int64_t id)
{
	for (sstream *st = c->streams; st != NULL; st = st->next)
		if (st->id == id)
			return st;
	return NULL;
}

static void sstream_free(sstream *st)
{
	frame_reader_deinit(&st->rd);
	free(st->resp);
	free(st);
}

/* Refuse the stream (both directions); the connection goes on.  The
 * stream's memory goes when ngtcp2 closes it. */
static void stream_fail(quic_conn *c, sstream *st, uint64_t code)
{
	if (st->failed)
		return;
	st->failed = true;
	st->write_done = true;
	frame_reader_deinit(&st->rd);
	(void)ngtcp2_conn_shutdown_stream(c->q, st->id, code);
}

static int cb_stream_open(ngtcp2_conn *q, int64_t id, void *ud)
{
	quic_conn *c = ud;
	sstream *st = quic_xcalloc(1, sizeof(*st));
	st->id = id;
	frame_reader_init(&st->rd, c->max_frame);
	st->next = c->streams;
	if (c->streams != NULL)
		c->streams->prev = st;
	c->streams = st;
	if (ngtcp2_conn_set_stream_user_data(q, id, st) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int cb_stream_close(ngtcp2_conn *q, uint32_t flags, int64_t id,
			   uint64_t app_error, void *ud, void *sud)
{
	quic_conn *c = ud;
	sstream *st = sud;
	(void)flags;
	(void)app_error;
	if (st != NULL) {
		if (st->prev != NULL)
			st->prev->next = st->next;
		else
			c->streams = st->next;
		if (st->next != NULL)
			st->next->prev = st->prev;
		sstream_free(st);
	}
	/* Give the client its stream credit back (max_streams at a time). */
	if (!ngtcp2_conn_is_local_stream(q, id) && ngtcp2_is_bidi_stream(id))
		ngtcp2_conn_extend_max_streams_bidi(q, 1);
	return 0;
}

static int cb_stream_reset(ngtcp2_conn *q, int64_t id, uint64_t final_size,
			   uint64_t app_error, void *ud, void *sud)
{
	quic_conn *c = ud;
	sstream *st = sud;
	(void)q;
	(void)id;
	(void)final_size;
	(void)app_error;
	/* The client gave up before its request was complete: close our
	 * side too, or the stream would stay open for ever. */
	if (st != NULL && !st->requested)
		stream_fail(c, st, QUIC_APP_CANCELLED);
	return 0;
}

static int cb_extend_max_stream_data(ngtcp2_conn *q, int64_t id,
				     uint64_t max_data, void *ud, void *sud)
{
	sstream *st = sud;
	(void)q;
	(void)id;
	(void)max_data;
	(void)ud;
	if (st != NULL)
		st->blocked = false;
	return 0;
}

static int cb_recv_stream_data(ngtcp2_conn *q, uint32_t flags, int64_t id,
			       uint64_t offset, const uint8_t *data,
			       size_t len, void *ud, void *sud)
{
	quic_conn *c = ud;
	sstream *st = sud;
	(void)offset;

	/* Everything is consumed at once (copied or dropped): give the
	 * flow-control credit back. */
	(void)ngtcp2_conn_extend_max_stream_offset(q, id, len);
	ngtcp2_conn_extend_max_offset(q, len);
	if (st == NULL || st->failed)
		return 0;
	if (c->state != CONN_OPEN || c->close_pending) {
		stream_fail(c, st, QUIC_APP_CANCELLED);
		return 0;
	}
	while (len > 0) {
		if (st->requested) { /* one request frame per stream */
			stream_fail(c, st, QUIC_APP_BAD_FRAME);
			return 0;
		}
		size_t used = 0, plen = 0;
		uint8_t *payload = NULL;
		const char *err = NULL;
		frame_res r = frame_reader_feed(&st->rd, data, len, &used,
						&payload, &plen, &err);
		data += used;
		len -= used;
		/* AMP-R-030: zero or over the maximum, from the header.
		 * Over QUIC the request's stream is refused; the
		 * connection (and its other streams) goes on. */
		if (r == FRAME_ERROR) {
			stream_fail(c, st, QUIC_APP_BAD_FRAME);
			return 0;
		}
		if (r == FRAME_COMPLETE) {
			st->requested = true;
			frame_reader_deinit(&st->rd);
			c->s->cbs.on_request(c->user, c, id, payload, plen);
			if (c->close_pending || st->failed)
				return 0;
		}
	}
	if ((flags & NGTCP2_STREAM_DATA_FLAG_FIN) && !st->requested)
		stream_fail(c, st, QUIC_APP_BAD_FRAME); /* truncated request */
	return 0;
}

/* -------------------------------------------------------- handshake */

static ngtcp2_conn *conn_get_ngtcp2(ngtcp2_crypto_conn_ref *ref)
{
	quic_conn *c = ref->user_data;
	return c->q;
}

/* Right after the ClientHello: refuse a client that did not offer
 * "amp/1" (GnuTLS itself refuses one that offered only others). */
static int server_hello_hook(gnutls_session_t tls, unsigned htype,
			     unsigned when, unsigned incoming,
			     const gnutls_datum_t *msg)
{
	gnutls_datum_t sel;
	(void)msg;
	if (htype != GNUTLS_HANDSHAKE_CLIENT_HELLO || when != GNUTLS_HOOK_POST ||
	    !incoming)
		return 0;
	if (gnutls_alpn_get_selected_protocol(tls, &sel) == 0 &&
	    sel.size == sizeof(QUIC_ALPN) - 1 &&
	    memcmp(sel.data, QUIC_ALPN, sel.size) == 0)
		return 0;
	ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(tls);
	quic_conn *c = ref->user_data;
	c->alpn_refused = true;
	return GNUTLS_E_NO_APPLICATION_PROTOCOL;
}

static int cb_handshake_completed(ngtcp2_conn *q, void *ud)
{
	quic_conn *c = ud;
	quic_server *s = c->s;
	uint8_t x[QUIC_EXPORTER_BYTES];
	(void)q;

	if (!quic_tls_alpn_is(c->tls, QUIC_ALPN)) {
		c->alpn_refused = true;
		return NGTCP2_ERR_CALLBACK_FAILURE;
	}
	if (c->in_handshake) {
		c->in_handshake = false;
		s->handshaking--;
	}
	if (quic_tls_exporter(c->tls, x) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	c->state = CONN_OPEN;
	c->user = s->cbs.on_connect(s->arg, c, (const struct sockaddr *)&c->peer,
				    x);
	sodium_memzero(x, sizeof(x));
	if (c->user == NULL && !c->close_pending) {
		c->close_pending = true;
		c->app_error = QUIC_APP_REFUSED;
	}
	return 0;
}

/* ------------------------------------------------------ connections */

static void conn_notify_closed(quic_conn *c)
{
	if (c->user != NULL && !c->closed_notified) {
		c->closed_notified = true;
		c->s->cbs.on_close(c->user, c);
	}
}

/* Free the protocol state (ngtcp2, TLS, streams); what routes late
 * packets (CIDs, timer, close packet) stays. */
static void conn_release_protocol(quic_conn *c)
{
	if (c->in_handshake) {
		c->in_handshake = false;
		c->s->handshaking--;
	}
	if (c->q != NULL) {
		ngtcp2_conn_del(c->q);
		c->q = NULL;
	}
	if (c->tls != NULL) {
		gnutls_deinit(c->tls);
		c->tls = NULL;
	}
	while (c->streams != NULL) {
		sstream *st = c->streams;
		c->streams = st->next;
		sstream_free(st);
	}
}

static void server_maybe_free(quic_server *s);
static void server_stop_deferred(quic_conn *c);
static void server_udp_closed(uv_handle_t *h);

static void conn_timer_closed(uv_handle_t *h)
{
	quic_conn *c = h->data;
	quic_server *s = c->s;
	free(c);
	s->handles--;
	server_maybe_free(s);
}

/* Forget the connection entirely (on_close first if still due). */
static void conn_destroy(quic_conn *c)
{
	quic_server *s = c->s;
	if (c->destroyed)
		return;
	c->destroyed = true; /* before on_close: it may stop the server */
	conn_release_protocol(c);
	conn_notify_closed(c);
	while (c->cids != NULL) {
		qent *e = c->cids;
		c->cids = e->owner_next;
		qmap_remove(&s->cids, e);
		free(e);
	}
	if (c->ip != NULL && --c->ip->count == 0) {
		qmap_remove(&s->ips, c->ip);
		free(c->ip);
	}
	c->ip = NULL;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->nconns--;
	free(c->close_pkt);
	c->close_pkt = NULL;
	uv_close((uv_handle_t *)&c->timer, conn_timer_closed);
}

/* Enter CLOSING or DRAINING: on_close now, freed after 3 PTO.  Callers
 * must not touch c afterwards (on_close may stop the server). */
static void conn_enter_closing(quic_conn *c, conn_state state)
{
	uint64_t pto = c->q != NULL ? ngtcp2_conn_get_pto(c->q) : 0;
	uint64_t ms = (3 * pto) / NGTCP2_MILLISECONDS + 1;
	c->state = state;
	conn_release_protocol(c);
	uv_timer_start(&c->timer, conn_on_timer, ms, 0);
	conn_notify_closed(c);
}

/* The server is stopping: CONNECTION_CLOSE if still open, then forget. */
static void conn_stop(quic_conn *c)
{
	if (c->destroyed)
		return;
	if (c->state == CONN_HANDSHAKE || c->state == CONN_OPEN) {
		c->app_error = QUIC_APP_SHUTDOWN;
		conn_close_app(c);
	}
	conn_destroy(c);
}

static void conn_send_close(quic_conn *c, const ngtcp2_connection_close_error *cc)
{
	uint8_t buf[QUIC_MAX_PKT];
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;

	if (c->q == NULL || c->state == CONN_CLOSING ||
	    c->state == CONN_DRAINING)
		return;
	ngtcp2_path_storage_zero(&ps);
	ngtcp2_ssize n = ngtcp2_conn_write_connection_close(
		c->q, &ps.path, &pi, buf, sizeof(buf), cc, quic_now());
	if (n <= 0) {
		conn_destroy(c);
		return;
	}
	c->close_pkt = quic_xmalloc((size_t)n);
	memcpy(c->close_pkt, buf, (size_t)n);
	c->close_len = (size_t)n;
	(void)server_send(c->s, (const struct sockaddr *)&c->peer, buf, (size_t)n);
	conn_enter_closing(c, CONN_CLOSING);
}

static void conn_close_app(quic_conn *c)
{
	ngtcp2_connection_close_error cc;
	ngtcp2_connection_close_error_default(&cc);
	ngtcp2_connection_close_error_set_application_error(&cc, c->app_error,
							    NULL, 0);
	c->close_pending = false;
	conn_send_close(c, &cc);
}

/* An error from ngtcp2_conn_read_pkt or _handle_expiry. */
static void conn_on_error(quic_conn *c, int rv)
{
	ngtcp2_connection_close_error cc;

	switch (rv) {
	case NGTCP2_ERR_DRAINING: /* the peer closed */
		conn_enter_closing(c, CONN_DRAINING);
		return;
	case NGTCP2_ERR_IDLE_CLOSE:
	case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
	case NGTCP2_ERR_DROP_CONN:
	case NGTCP2_ERR_RETRY:
		conn_destroy(c); /* silently, as the RFC wants */
		return;
	default:
		break;
	}
	ngtcp2_connection_close_error_default(&cc);
	if (c->alpn_refused)
		ngtcp2_connection_close_error_set_transport_error_tls_alert(
			&cc, GNUTLS_A_NO_APPLICATION_PROTOCOL, NULL, 0);
	else if (rv == NGTCP2_ERR_CRYPTO)
		ngtcp2_connection_close_error_set_transport_error_tls_alert(
			&cc, ngtcp2_conn_get_tls_alert(c->q), NULL, 0);
	else
		ngtcp2_connection_close_error_set_transport_error_liberr(
			&cc, rv, NULL, 0);
	conn_send_close(c, &cc);
}

static void conn_arm_timer(quic_conn *c)
{
	int64_t ms = quic_expiry_ms(c->q, quic_now());
	if (ms < 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, conn_on_timer, (uint64_t)ms, 0);
}

static bool sstream_sendable(const sstream *st)
{
	return st->resp != NULL && !st->write_done && !st->blocked;
}

static void sstream_advance(sstream *st, ngtcp2_ssize n)
{
	if (n < 0)
		return;
	st->resp_off += (size_t)n;
	if (st->resp_off >= st->resp_len)
		st->write_done = true; /* FIN went with the last byte */
}

/* Write what ngtcp2 has to send (handshake, ACKs, responses). */
static void conn_write(quic_conn *c)
{
	quic_server *s = c->s;
	uint8_t buf[QUIC_MAX_PKT];
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	uint64_t ts = quic_now();
	unsigned npkts = 0;
	sstream *st = c->streams;

	if (c->q == NULL || c->send_blocked)
		return;
	ngtcp2_path_storage_zero(&ps);
	for (;;) {
		while (st != NULL && !sstream_sendable(st))
			st = st->next;
		int64_t sid = -1;
		ngtcp2_vec v = { NULL, 0 };
		size_t vcnt = 0;
		uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_NONE;
		if (st != NULL) {
			sid = st->id;
			v.base = st->resp + st->resp_off;
			v.len = st->resp_len - st->resp_off;
			vcnt = 1;
			flags = NGTCP2_WRITE_STREAM_FLAG_MORE |
				NGTCP2_WRITE_STREAM_FLAG_FIN;
		}
		ngtcp2_ssize nd = -1;
		ngtcp2_ssize n = ngtcp2_conn_writev_stream(
			c->q, &ps.path, &pi, buf, sizeof(buf), &nd, flags, sid,
			&v, vcnt, ts);
		if (n < 0) {
			switch (n) {
			case NGTCP2_ERR_WRITE_MORE:
				sstream_advance(st, nd);
				continue;
			case NGTCP2_ERR_STREAM_DATA_BLOCKED:
				st->blocked = true;
				continue;
			case NGTCP2_ERR_STREAM_SHUT_WR:
			case NGTCP2_ERR_STREAM_NOT_FOUND:
				st->write_done = true;
				continue;
			default:
				conn_on_error(c, (int)n);
				return;
			}
		}
		if (n == 0)
			break;
		if (st != NULL)
			sstream_advance(st, nd);
		if (server_send(s, (const struct sockaddr *)&c->peer, buf,
				(size_t)n) != 0) {
			c->send_blocked = true;
			break;
		}
		if (++npkts >= QUIC_MAX_PKTS_PER_WRITE)
			break;
	}
	ngtcp2_conn_update_pkt_tx_time(c->q, ts);
	if (npkts >= QUIC_MAX_PKTS_PER_WRITE)
		uv_timer_start(&c->timer, conn_on_timer, 0, 0); /* fairness */
	else
		conn_arm_timer(c);
}

/* After ngtcp2 processed input: do what the node asked meanwhile. */
static void conn_after_io(quic_conn *c)
{
	if (c->close_pending)
		conn_close_app(c);
	else
		conn_write(c);
}

static void conn_on_timer(uv_timer_t *t)
{
	quic_conn *c = t->data;

	if (c->state == CONN_CLOSING || c->state == CONN_DRAINING) {
		conn_destroy(c);
		return;
	}
	if (c->close_pending) {
		conn_close_app(c);
		return;
	}
	uint64_t now = quic_now();
	if (ngtcp2_conn_get_expiry(c->q) <= now) {
		c->busy = true;
		int rv = ngtcp2_conn_handle_expiry(c->q, now);
		c->busy = false;
		if (c->s->stopping) {
			server_stop_deferred(c);
			return;
		}
		if (rv != 0) {
			conn_on_error(c, rv);
			return;
		}
	}
	conn_after_io(c);
}

static void conn_on_datagram(quic_conn *c, const uint8_t *d, size_t n,
			     const struct sockaddr *sa)
{
	quic_server *s = c->s;

	if (c->state == CONN_CLOSING) {
		if (c->close_pkt != NULL)
			(void)server_send(s, (const struct sockaddr *)&c->peer,
					  c->close_pkt, c->close_len);
		return;
	}
	if (c->state == CONN_DRAINING)
		return;
	ngtcp2_path path = {
		{ (ngtcp2_sockaddr *)&s->local, s->locallen },
		{ (ngtcp2_sockaddr *)sa, sa_len(sa) },
		NULL,
	};
	ngtcp2_pkt_info pi;
	memset(&pi, 0, sizeof(pi));
	c->busy = true;
	int rv = ngtcp2_conn_read_pkt(c->q, &path, &pi, d, n, quic_now());
	c->busy = false;
	if (s->stopping) { /* quic_server_stop ran inside a callback */
		server_stop_deferred(c);
		return;
	}
	if (rv != 0) {
		conn_on_error(c, rv);
		return;
	}
	conn_after_io(c);
}

static const ngtcp2_callbacks server_callbacks = {
	.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
	.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
	.handshake_completed = cb_handshake_completed,
	.encrypt = ngtcp2_crypto_encrypt_cb,
	.decrypt = ngtcp2_crypto_decrypt_cb,
	.hp_mask = ngtcp2_crypto_hp_mask_cb,
	.recv_stream_data = cb_recv_stream_data,
	.stream_open = cb_stream_open,
	.stream_close = cb_stream_close,
	.rand = quic_rand_cb,
	.get_new_connection_id = cb_get_new_cid,
	.remove_connection_id = cb_remove_cid,
	.update_key = ngtcp2_crypto_update_key_cb,
	.stream_reset = cb_stream_reset,
	.extend_max_stream_data = cb_extend_max_stream_data,
	.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
	.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
	.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
	.version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

/* ---------------------------------------------------------- admission */

static size_t ip_key(const struct sockaddr *sa, uint8_t key[16])
{
	if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return 16;
	}
	memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	return 4;
}

static void send_initial_close(quic_server *s, const ngtcp2_pkt_hd *hd,
			       const struct sockaddr *sa, uint64_t code)
{
	uint8_t buf[QUIC_MAX_PKT];
	ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(
		buf, sizeof(buf), hd->version, &hd->scid, &hd->dcid, code, NULL, 0);
	if (n > 0)
		(void)server_send(s, sa, buf, (size_t)n);
}

static void send_retry(quic_server *s, const ngtcp2_pkt_hd *hd,
		       const struct sockaddr *sa)
{
	uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN], buf[QUIC_MAX_PKT];
	uint8_t unused[NGTCP2_STATELESS_RESET_TOKENLEN];
	ngtcp2_cid scid;

	if (server_new_cid(s, &scid, QUIC_SCID_LEN, unused) != 0)
		return;
	ngtcp2_ssize tl = ngtcp2_crypto_generate_retry_token(
		token, s->token_secret, sizeof(s->token_secret), hd->version, sa,
		sa_len(sa), &scid, &hd->dcid, quic_now());
	if (tl < 0)
		return;
	ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, sizeof(buf), hd->version,
						   &hd->scid, &scid, &hd->dcid,
						   token, (size_t)tl);
	if (n > 0)
		(void)server_send(s, sa, buf, (size_t)n);
}

static void send_version_negotiation(quic_server *s, const ngtcp2_version_cid *vc,
				     const struct sockaddr *sa)
{
	uint8_t buf[QUIC_MAX_PKT], r;
	const uint32_t sv[] = { NGTCP2_PROTO_VER_V1 };
	randombytes_buf(&r, 1);
	ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(
		buf, sizeof(buf), r, vc->scid, vc->scidlen, vc->dcid, vc->dcidlen,
		sv, 1);
	if (n > 0)
		(void)server_send(s, sa, buf, (size_t)n);
}

/* A new connection from its first Initial (admission already done).
 * odcid: the original DCID from a valid Retry token, or NULL. */
static void conn_new(quic_server *s, const ngtcp2_pkt_hd *hd,
		     const ngtcp2_cid *odcid, const struct sockaddr *sa,
		     const uint8_t *d, size_t n)
{
	quic_conn *c = quic_xcalloc(1, sizeof(*c));
	ngtcp2_settings st;
	ngtcp2_transport_params p;
	ngtcp2_cid scid;
	const char *err = NULL;

	c->s = s;
	c->peerlen = sa_len(sa);
	memcpy(&c->peer, sa, c->peerlen);
	c->max_frame = s->max_frame;
	c->state = CONN_HANDSHAKE;
	c->ref.get_conn = conn_get_ngtcp2;
	c->ref.user_data = c;

	ngtcp2_settings_default(&st);
	st.initial_ts = quic_now();
	st.handshake_timeout = s->handshake_timeout;
	st.max_window = QUIC_SRV_CONN_WINDOW_MAX;
	st.max_stream_window = QUIC_SRV_STREAM_WINDOW_MAX;
	if (odcid != NULL)
		st.token = hd->token; /* copied by ngtcp2 */

	ngtcp2_transport_params_default(&p);
	p.initial_max_streams_bidi = s->max_streams;
	p.initial_max_streams_uni = 0;
	p.initial_max_stream_data_bidi_remote = QUIC_SRV_STREAM_WINDOW;
	p.initial_max_stream_data_bidi_local = 0;
	p.initial_max_stream_data_uni = 0;
	p.initial_max_data = QUIC_SRV_CONN_WINDOW;
	p.max_idle_timeout = s->idle_timeout;
	p.disable_active_migration = 1;
	if (server_new_cid(s, &scid, QUIC_SCID_LEN, p.stateless_reset_token) != 0) {
		free(c);
		return;
	}
	p.stateless_reset_token_present = 1;
	if (odcid != NULL) {
		p.original_dcid = *odcid;
		p.retry_scid = hd->dcid;
		p.retry_scid_present = 1;
	} else {
		p.original_dcid = hd->dcid;
	}

	ngtcp2_path path = {
		{ (ngtcp2_sockaddr *)&s->local, s->locallen },
		{ (ngtcp2_sockaddr *)&c->peer, c->peerlen },
		NULL,
	};
	if (ngtcp2_conn_server_new(&c->q, &hd->scid, &scid, &path, hd->version,
				   &server_callbacks, &st, &p, NULL, c) != 0) {
		free(c);
		return;
	}
	if (quic_tls_new(s->cred, true, QUIC_ALPN, &c->ref, &c->tls, &err) != 0) {
		ngtcp2_conn_del(c->q);
		free(c);
		return;
	}
	gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_CLIENT_HELLO,
					   GNUTLS_HOOK_POST, server_hello_hook);
	ngtcp2_conn_set_tls_native_handle(c->q, c->tls);

	uv_timer_init(s->loop, &c->timer);
	c->timer.data = c;
	s->handles++;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	c->in_handshake = true;
	s->handshaking++;

	uint8_t key[16];
	size_t klen = ip_key(sa, key);
	qent *ip = qmap_find(&s->ips, key, klen);
	if (ip == NULL) {
		ip = quic_xcalloc(1, sizeof(*ip));
		ip->klen = (uint8_t)klen;
		memcpy(ip->key, key, klen);
		qmap_insert(&s->ips, ip);
	}
	ip->count++;
	c->ip = ip;
	conn_add_cid(c, hd->dcid.data, hd->dcid.datalen);
	conn_add_cid(c, scid.data, scid.datalen);

	conn_on_datagram(c, d, n, sa);
}

static void server_accept(quic_server *s, const uint8_t *d, size_t n,
			  const struct sockaddr *sa)
{
	ngtcp2_pkt_hd hd;
	ngtcp2_cid odcid;
	bool retried = false;
	uint8_t key[16];

	if (ngtcp2_accept(&hd, d, n) != 0 || hd.type != NGTCP2_PKT_INITIAL)
		return; /* not a valid first packet: drop */
	size_t klen = ip_key(sa, key);
	qent *ip = qmap_find(&s->ips, key, klen);
	if (s->paused || s->nconns >= s->max_conns ||
	    (ip != NULL && ip->count >= s->max_conns_per_ip)) {
		send_initial_close(s, &hd, sa, NGTCP2_CONNECTION_REFUSED);
		return;
	}
	if (hd.token.len > 0 &&
	    hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
		if (ngtcp2_crypto_verify_retry_token(
			    &odcid, hd.token.base, hd.token.len, s->token_secret,
			    sizeof(s->token_secret), hd.version, sa, sa_len(sa),
			    &hd.dcid,
			    QUIC_RETRY_TOKEN_TIMEOUT_MS * NGTCP2_MILLISECONDS,
			    quic_now()) != 0) {
			send_initial_close(s, &hd, sa, NGTCP2_INVALID_TOKEN);
			return;
		}
		retried = true;
	} else if (s->handshaking >= s->retry_threshold) {
		send_retry(s, &hd, sa);
		return;
	}
	conn_new(s, &hd, retried ? &odcid : NULL, sa, d, n);
}

static void server_on_datagram(quic_server *s, const uint8_t *d, size_t n,
			       const struct sockaddr *sa)
{
	ngtcp2_version_cid vc;
	int rv = ngtcp2_pkt_decode_version_cid(&vc, d, n, QUIC_SCID_LEN);
	if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
		send_version_negotiation(s, &vc, sa);
		return;
	}
	if (rv != 0)
		return;
	qent *e = qmap_find(&s->cids, vc.dcid, vc.dcidlen);
	if (e != NULL) {
		conn_on_datagram(e->conn, d, n, sa);
		return;
	}
	if (vc.version == 0)
		return; /* short header or VN for no connection we know */
	server_accept(s, d, n, sa);
}

/* ------------------------------------------------------------- loop glue */

static void server_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	quic_server *s = h->data;
	(void)suggested;
	*buf = uv_buf_init((char *)s->rbuf, sizeof(s->rbuf));
}

static void server_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
			const struct sockaddr *addr, unsigned flags)
{
	quic_server *s = u->data;
	if (nread <= 0 || addr == NULL || (flags & UV_UDP_PARTIAL) || s->stopping)
		return;
	if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
		return;
	server_on_datagram(s, (const uint8_t *)buf->base, (size_t)nread, addr);
}

static void server_free(quic_server *s)
{
	free(s->cids.b);
	free(s->ips.b);
	if (s->cred != NULL)
		gnutls_certificate_free_credentials(s->cred);
	sodium_memzero(s->reset_secret, sizeof(s->reset_secret));
	sodium_memzero(s->token_secret, sizeof(s->token_secret));
	free(s);
}

/* The end of a quic_server_stop called from inside c's callback. */
static void server_stop_deferred(quic_conn *c)
{
	quic_server *s = c->s;
	conn_stop(c);
	if (!s->udp_closing) {
		s->udp_closing = true;
		uv_close((uv_handle_t *)&s->udp, server_udp_closed);
	}
}

static void server_maybe_free(quic_server *s)
{
	if (s->stopping && s->handles == 0)
		server_free(s);
}

static void server_udp_closed(uv_handle_t *h)
{
	quic_server *s = h->data;
	s->handles--;
	server_maybe_free(s);
}

/* ---------------------------------------------------------------- API */

int quic_server_start(const quic_server_opts *o, const quic_server_cbs *cbs,
		      void *arg, quic_server **s_r, const char **error_r)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} addr;
	int fd = -1;

	if (o->loop == NULL || o->host == NULL || o->cert_pem == NULL ||
	    o->key_pem == NULL || cbs->on_connect == NULL ||
	    cbs->on_request == NULL || cbs->on_close == NULL) {
		*error_r = "QUIC server options or callbacks missing";
		return -1;
	}
	if (o->max_conns == 0 || o->max_conns_per_ip == 0 ||
	    o->max_streams == 0 || o->max_frame == 0 ||
	    o->max_frame > FRAME_MAX_LIMIT || o->idle_timeout_ms == 0 ||
	    o->handshake_timeout_ms == 0) {
		*error_r = "QUIC server limits must be positive (max_frame at most FRAME_MAX_LIMIT)";
		return -1;
	}
	memset(&addr, 0, sizeof(addr));
	if (uv_ip4_addr(o->host, o->port, &addr.in) != 0 &&
	    uv_ip6_addr(o->host, o->port, &addr.in6) != 0) {
		*error_r = "QUIC listen address is not a numeric IP address";
		return -1;
	}
	if (sodium_init() < 0) {
		*error_r = "libsodium cannot be initialised";
		return -1;
	}

	quic_server *s = quic_xcalloc(1, sizeof(*s));
	s->loop = o->loop;
	s->cbs = *cbs;
	s->arg = arg;
	s->max_conns = o->max_conns;
	s->max_conns_per_ip = o->max_conns_per_ip;
	s->max_streams = o->max_streams;
	s->max_frame = o->max_frame;
	s->idle_timeout = (uint64_t)o->idle_timeout_ms * NGTCP2_MILLISECONDS;
	s->handshake_timeout = (uint64_t)o->handshake_timeout_ms * NGTCP2_MILLISECONDS;
	s->retry_threshold = QUIC_RETRY_THRESHOLD;
	randombytes_buf(s->reset_secret, sizeof(s->reset_secret));
	randombytes_buf(s->token_secret, sizeof(s->token_secret));

	gnutls_datum_t cd = { (unsigned char *)o->cert_pem, (unsigned)strlen(o->cert_pem) };
	gnutls_datum_t kd = { (unsigned char *)o->key_pem, (unsigned)strlen(o->key_pem) };
	if (gnutls_certificate_allocate_credentials(&s->cred) < 0) {
		s->cred = NULL;
		server_free(s);
		*error_r = "cannot allocate TLS credentials";
		return -1;
	}
	if (gnutls_certificate_set_x509_key_mem2(s->cred, &cd, &kd,
						 GNUTLS_X509_FMT_PEM, NULL, 0) < 0) {
		server_free(s);
		*error_r = "cannot load the QUIC server certificate and key";
		return -1;
	}

	/* Bind a plain socket first, so a failure needs no loop turn. */
	fd = socket(addr.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, &addr.sa, sa_len(&addr.sa)) != 0) {
		*error_r = errno == EADDRINUSE ? "QUIC port already in use"
					       : "cannot bind the QUIC UDP socket";
		if (fd >= 0)
			close(fd);
		server_free(s);
		return -1;
	}
	s->locallen = sizeof(s->local);
	if (getsockname(fd, (struct sockaddr *)&s->local, &s->locallen) != 0) {
		close(fd);
		server_free(s);
		*error_r = "cannot read the QUIC socket address";
		return -1;
	}
	qmap_init(&s->cids);
	qmap_init(&s->ips);

	uv_udp_init(s->loop, &s->udp);
	s->udp.data = s;
	s->handles = 1;
	if (uv_udp_open(&s->udp, fd) != 0) {
		close(fd);
		goto uv_fail;
	}
	int sz = QUIC_SOCK_BUF;
	(void)uv_send_buffer_size((uv_handle_t *)&s->udp, &sz);
	sz = QUIC_SOCK_BUF;
	(void)uv_recv_buffer_size((uv_handle_t *)&s->udp, &sz);
	if (uv_udp_recv_start(&s->udp, server_alloc, server_recv) != 0)
		goto uv_fail;
	*s_r = s;
	return 0;

uv_fail:
	/* The handle is live: it is freed by its close callback. */
	s->stopping = true;
	s->udp_closing = true;
	uv_close((uv_handle_t *)&s->udp, server_udp_closed);
	*error_r = "cannot start the QUIC UDP handle";
	return -1;
}

uint16_t quic_server_port(const quic_server *s)
{
	const struct sockaddr *sa = (const struct sockaddr *)&s->local;
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

void quic_server_pause(quic_server *s)
{
	s->paused = true;
}

unsigned quic_server_conn_count(const quic_server *s)
{
	return s->nconns;
}

void quic_server_set_retry_threshold(quic_server *s, unsigned n)
{
	s->retry_threshold = n;
}

void quic_server_stop(quic_server **sp)
{
	if (sp == NULL || *sp == NULL)
		return;
	quic_server *s = *sp;
	*sp = NULL;
	s->paused = true;
	s->stopping = true;
	uv_udp_recv_stop(&s->udp);
	quic_conn *c = s->conns;
	bool deferred = false;
	while (c != NULL) {
		quic_conn *next = c->next;
		/* One inside an ngtcp2 call (stop called from a callback) is
		 * stopped when that call returns, and the socket closed then. */
		if (c->busy)
			deferred = true;
		else
			conn_stop(c);
		c = next;
	}
	if (!deferred) {
		s->udp_closing = true;
		uv_close((uv_handle_t *)&s->udp, server_udp_closed);
	}
}

int quic_respond(quic_conn *c, int64_t stream_id, const uint8_t *payload,
		 size_t len)
{
	if (c->state != CONN_OPEN || c->close_pending || len == 0 ||
	    len > FRAME_MAX_LIMIT)
		return -1;
	sstream *st = conn_find_stream(c, stream_id);
	if (st == NULL || !st->requested || st->failed || st->resp != NULL)
		return -1;
	st->resp = quic_xmalloc(FRAME_HEADER_BYTES + len);
	frame_header(len, st->resp);
	memcpy(st->resp + FRAME_HEADER_BYTES, payload, len);
	st->resp_len = FRAME_HEADER_BYTES + len;
	st->resp_off = 0;
	if (!c->busy) /* written from the timer: never re-enter the node */
		uv_timer_start(&c->timer, conn_on_timer, 0, 0);
	return 0;
}

void quic_conn_set_max_frame(quic_conn *c, size_t max)
{
	if (max == 0)
		max = 1;
	if (max > FRAME_MAX_LIMIT)
		max = FRAME_MAX_LIMIT;
	c->max_frame = max;
	for (sstream *st = c->streams; st != NULL; st = st->next)
		if (!st->requested && !st->failed)
			frame_reader_set_max(&st->rd, max);
}

void quic_conn_close(quic_conn *c, uint64_t app_error)
{
	if (c->state != CONN_OPEN && c->state != CONN_HANDSHAKE)
		return;
	if (c->close_pending)
		return;
	c->close_pending = true;
	c->app_error = app_error;
	if (!c->busy)
		uv_timer_start(&c->timer, conn_on_timer, 0, 0);
}
