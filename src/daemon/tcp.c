/*
 * tcp.c — see tcp.h.  Each connection: uv_tcp_t → tls_feed →
 * tls_progress (handshake) → tls_read → frame_reader → server core; the
 * core's answers: header+payload → tls_write (in parts, because the TLS
 * output queue is bounded) → uv_write of a copy.  A frame over the limit,
 * a TLS failure (no "amp/1" ALPN, bad record) or EOF closes the
 * connection.  Memory per idle connection: the uv handle, the TLS
 * session, a frame reader and a 64 KiB read buffer (allocated per read
 * by the alloc callback and freed after).
 */
#include "tcp.h"

#include "frame.h"
#include "log.h"
#include "nodeproto.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK 65536u
#define WRITE_PART (1024u * 1024u)

typedef struct tconn {
	uv_tcp_t h;
	tcp_listener *l;
	struct tconn *prev, *next;
	tls_session *tls;
	frame_reader fr;
	sconn *sc;
	bool closing, ready, reading, paused_core, paused_write, pumping;
} tconn;

struct tcp_listener {
	uv_tcp_t h;
	uv_loop_t *loop;
	server **srv;
	tls_creds *creds;
	tconn *conns;
	bool closing;
	int open_handles;
};

static void conn_close(tconn *c);

static void maybe_free_listener(tcp_listener *l)
{
	if (l->closing && l->open_handles == 0)
		free(l);
}

/* ---------------------------------------------------------------- write */

typedef struct wreq {
	uv_write_t w;
	tconn *c;
	size_t len;
	uint8_t data[];
} wreq;

static void update_reading(tconn *c);

static void write_done(uv_write_t *w, int status)
{
	wreq *wr = (wreq *)w;
	tconn *c = wr->c;
	(void)status;
	free(wr);
	if (!c->closing && c->paused_write &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->h) < TCP_WRITE_QUEUE_MAX) {
		c->paused_write = false;
		update_reading(c);
	}
}

/* Hand the TLS output to libuv. */
static int flush(tconn *c)
{
	const uint8_t *out;
	size_t n;
	while ((n = tls_take_output(c->tls, &out)) > 0) {
		wreq *wr = malloc(sizeof(*wr) + n);
		if (wr == NULL)
			return -1;
		wr->c = c;
		wr->len = n;
		memcpy(wr->data, out, n);
		tls_output_consumed(c->tls, n);
		uv_buf_t b = uv_buf_init((char *)wr->data, (unsigned)n);
		if (uv_write(&wr->w, (uv_stream_t *)&c->h, &b, 1, write_done) != 0) {
			free(wr);
			return -1;
		}
	}
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->h) >= TCP_WRITE_QUEUE_MAX &&
	    !c->paused_write) {
		c->paused_write = true;
		update_reading(c);
	}
	return 0;
}

static void op_send(void *t, uint64_t tag, const uint8_t *payload, size_t len)
{
	tconn *c = t;
	const char *err = NULL;
	uint8_t hdr[FRAME_HEADER_BYTES];
	(void)tag;
	if (c->closing)
		return;
	frame_header(len, hdr);
	if (tls_write(c->tls, hdr, sizeof(hdr), &err) != 0)
		goto fail;
	while (len > 0) {
		size_t part = len > WRITE_PART ? WRITE_PART : len;
		if (tls_write(c->tls, payload, part, &err) != 0 || flush(c) != 0)
			goto fail;
		payload += part;
		len -= part;
	}
	if (flush(c) == 0)
		return;
fail:
	log_msg(LOG_INFO, "msg=\"cannot send; closing\" error=\"%s\"",
		err != NULL ? err : "write failed");
	conn_close(c);
}

/* ----------------------------------------------------------------- read */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = malloc(READ_CHUNK);
	buf->len = buf->base != NULL ? READ_CHUNK : 0;
}

/* Decrypted bytes → frames → core.  Stops between reads while the core
 * has max_streams requests of this connection (the rest waits in the TLS
 * session, whose buffer is bounded). */
static int pump_frames(tconn *c)
{
	uint8_t buf[16384];
	const char *err = NULL;
	for (;;) {
		if (c->paused_core)
			return 0;
		long n = tls_read(c->tls, buf, sizeof(buf), &err);
		if (n < 0)
			goto fail;
		if (n == 0)
			return 0;
		size_t off = 0;
		while (off < (size_t)n) {
			size_t used;
			uint8_t *frame;
			size_t flen;
			frame_res r = frame_reader_feed(&c->fr, buf + off,
							(size_t)n - off, &used,
							&frame, &flen, &err);
			if (r == FRAME_ERROR)
				goto fail;
			off += used;
			if (r == FRAME_COMPLETE && !c->closing)
				server_conn_request(c->sc, 0, frame, flen);
			else if (r == FRAME_COMPLETE)
				free(frame);
			if (c->closing)
				return -1;
		}
	}
fail:
	log_msg(LOG_INFO, "msg=\"bad input; closing\" error=\"%s\"", err);
	return -1;
}

static int pump(tconn *c)
{
	if (c->pumping)
		return 0;
	c->pumping = true;
	int r = pump_frames(c);
	c->pumping = false;
	return r;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	tconn *c = (tconn *)s;
	const char *err = NULL;
	if (nread < 0) {
		free(buf->base);
		conn_close(c);
		return;
	}
	if (nread == 0 || c->closing) {
		free(buf->base);
		return;
	}
	int r = tls_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread);
	free(buf->base);
	if (r != 0) {
		conn_close(c);
		return;
	}
	int p = tls_progress(c->tls, &err);
	if (p < 0 || flush(c) != 0) {
		log_msg(LOG_INFO, "msg=\"TLS failed; closing\" error=\"%s\"",
			err != NULL ? err : "write failed");
		conn_close(c);
		return;
	}
	if (p == 1 && !c->ready) {
		uint8_t x[NP_X_BYTES];
		if (tls_exporter(c->tls, x) != 0) {
			conn_close(c);
			return;
		}
		c->ready = true;
		server_conn_ready(c->sc, x);
	}
	if (c->ready && pump(c) != 0)
		conn_close(c);
}

static void update_reading(tconn *c)
{
	bool want = !c->closing && !c->paused_core && !c->paused_write;
	if (want && !c->reading)
		c->reading = uv_read_start((uv_stream_t *)&c->h, alloc_cb, read_cb) == 0;
	else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->h);
		c->reading = false;
	}
}

static void op_pause(void *t, bool pause)
{
	tconn *c = t;
	c->paused_core = pause;
	update_reading(c);
	if (!pause && c->ready && !c->closing && pump(c) != 0)
		conn_close(c);
}

static void op_set_max_frame(void *t, size_t max)
{
	tconn *c = t;
	frame_reader_set_max(&c->fr, max);
}

static void op_close(void *t)
{
	conn_close(t);
}

static const sconn_ops tcp_ops = {
	.send = op_send,
	.set_max_frame = op_set_max_frame,
	.pause = op_pause,
	.close = op_close,
};

/* ------------------------------------------------------------ lifecycle */

static void conn_closed_cb(uv_handle_t *h)
{
	tconn *c = (tconn *)h;
	tcp_listener *l = c->l;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->sc != NULL)
		server_conn_closed(c->sc);
	tls_session_free(&c->tls);
	frame_reader_deinit(&c->fr);
	free(c);
	l->open_handles--;
	maybe_free_listener(l);
}

static void conn_close(tconn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->h, conn_closed_cb);
}

static void on_connection(uv_stream_t *ls, int status)
{
	tcp_listener *l = (tcp_listener *)ls;
	if (status != 0 || l->closing)
		return;
	tconn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->l = l;
	uv_tcp_init(l->loop, &c->h);
	l->open_handles++;
	c->next = l->conns;
	if (l->conns != NULL)
		l->conns->prev = c;
	l->conns = c;
	frame_reader_init(&c->fr, NP_PREAUTH_FRAME_MAX);
	if (uv_accept(ls, (uv_stream_t *)&c->h) != 0) {
		conn_close(c);
		return;
	}
	struct sockaddr_storage peer;
	int plen = sizeof(peer);
	const char *err = NULL;
	if (uv_tcp_getpeername(&c->h, (struct sockaddr *)&peer, &plen) != 0 ||
	    *l->srv == NULL ||
	    (c->sc = server_conn_open(*l->srv, &tcp_ops, c,
				      (struct sockaddr *)&peer)) == NULL) {
		conn_close(c);
		return;
	}
	if (tls_session_new(l->creds, true, &c->tls, &err) != 0) {
		log_msg(LOG_ERR, "msg=\"cannot start TLS\" error=\"%s\"", err);
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->h, 1);
	update_reading(c);
}

int tcp_listen(uv_loop_t *loop, server **srv, tls_creds *creds,
	       const char *addr, uint16_t port, tcp_listener **l_r,
	       const char **error_r)
{
	struct sockaddr_storage sa;
	if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&sa) != 0 &&
	    uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&sa) != 0) {
		*error_r = "not a numeric IP address";
		return -1;
	}
	tcp_listener *l = calloc(1, sizeof(*l));
	if (l == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	l->loop = loop;
	l->srv = srv;
	l->creds = creds;
	uv_tcp_init(loop, &l->h);
	l->open_handles = 1;
	int r = uv_tcp_bind(&l->h, (struct sockaddr *)&sa, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&l->h, 511, on_connection);
	if (r != 0) {
		*error_r = uv_strerror(r);
		tcp_listener_close(&l);
		return -1;
	}
	*l_r = l;
	return 0;
}

uint16_t tcp_listener_port(const tcp_listener *l)
{
	struct sockaddr_storage sa;
	int len = sizeof(sa);
	if (uv_tcp_getsockname(&l->h, (struct sockaddr *)&sa, &len) != 0)
		return 0;
	if (sa.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&sa)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
}

static void listener_closed_cb(uv_handle_t *h)
{
	tcp_listener *l = (tcp_listener *)h;
	l->open_handles--;
	maybe_free_listener(l);
}

void tcp_listener_pause(tcp_listener *l)
{
	if (!uv_is_closing((uv_handle_t *)&l->h))
		uv_close((uv_handle_t *)&l->h, listener_closed_cb);
}

void tcp_listener_close(tcp_listener **lp)
{
	tcp_listener *l = *lp;
	if (l == NULL)
		return;
	*lp = NULL;
	l->closing = true;
	for (tconn *c = l->conns; c != NULL; c = c->next)
		conn_close(c);
	if (!uv_is_closing((uv_handle_t *)&l->h))
		uv_close((uv_handle_t *)&l->h, listener_closed_cb);
	maybe_free_listener(l);
}
