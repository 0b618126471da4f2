/*
 * bimap.c — see bimap.h.  Each connection: uv_tcp_t → (after STARTTLS:
 * tls_feed → tls_progress → tls_read) → the held buffer →
 * imap_session_feed; the session's output → (tls_write →
 * tls_take_output) → uv_write of a copy.  One function, process(), moves
 * both directions until neither can move: output while the write queue
 * has room, then input while the session takes it.  Reading stops while
 * held bytes wait (a login check or a long answer in progress) or the
 * write queue is full, so memory per connection stays within two
 * BIMAP_READ_MAX buffers, the TLS buffers and the write queue's limit.
 */
#include "bimap.h"

#include "imap-session.h"
#include "log.h"
#include "tls.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#define BIMAP_TLS_PART 65536u
#define BIMAP_LINGER_MS 10000u /* after a timeout's BYE: then closed hard */

typedef struct iconn {
	uv_tcp_t h;
	uv_timer_t timer;
	bimap *b;
	struct iconn *prev, *next;
	imap_session *s;
	tls_session *tls;
	bimap_login *login;
	uv_shutdown_t shut;
	uint64_t id;
	unsigned handles;        /* open uv handles (h, timer) */
	unsigned commands;
	size_t held_off, held_len;
	bool closing, shutting, reading, handshaking, starttls_req;
	bool processing, timed_out;
	uint8_t held[BIMAP_READ_MAX];
	uint8_t rbuf[BIMAP_READ_MAX];
} iconn;

struct bimap_login {
	iconn *c;
};

struct bimap {
	uv_tcp_t h;
	uv_loop_t *loop;
	bimap_settings set;
	iconn *conns;
	unsigned n_conns;
	uint64_t next_id;
	uint64_t generation;         /* set.generation's value last seen */
	int open_handles;
	bool closing;
};

static void conn_close(iconn *c);
static void process(iconn *c);

static void maybe_free(bimap *b)
{
	if (b->closing && b->open_handles == 0)
		free(b);
}

/* ---------------------------------------------------------------- write */

typedef struct wreq {
	uv_write_t w;
	iconn *c;
	uint8_t data[];
} wreq;

static bool write_full(iconn *c)
{
	return uv_stream_get_write_queue_size((uv_stream_t *)&c->h) >=
	       BIMAP_WRITE_QUEUE_MAX;
}

static void write_done(uv_write_t *w, int status)
{
	wreq *wr = (wreq *)w;
	iconn *c = wr->c;
	free(wr);
	if (status != 0) {
		conn_close(c); /* a no-op once closing (ECANCELED) */
		return;
	}
	if (!c->closing && !c->shutting && !write_full(c))
		process(c);
}

static int send_raw(iconn *c, const uint8_t *p, size_t n)
{
	wreq *wr = malloc(sizeof(*wr) + n);
	if (wr == NULL)
		return -1;
	wr->c = c;
	memcpy(wr->data, p, n);
	uv_buf_t buf = uv_buf_init((char *)wr->data, (unsigned)n);
	if (uv_write(&wr->w, (uv_stream_t *)&c->h, &buf, 1, write_done) != 0) {
		free(wr);
		return -1;
	}
	return 0;
}

/* The TLS session's ciphertext to the socket. */
static int push_tls(iconn *c)
{
	const uint8_t *o;
	size_t n;
	while ((n = tls_take_output(c->tls, &o)) > 0) {
		if (send_raw(c, o, n) != 0)
			return -1;
		tls_output_consumed(c->tls, n);
	}
	return 0;
}

static int send_out(iconn *c, const uint8_t *p, size_t n)
{
	const char *err = NULL;
	if (c->tls == NULL)
		return send_raw(c, p, n);
	while (n > 0) {
		size_t part = n > BIMAP_TLS_PART ? BIMAP_TLS_PART : n;
		if (tls_write(c->tls, p, part, &err) != 0 || push_tls(c) != 0)
			return -1;
		p += part;
		n -= part;
	}
	return 0;
}

/* ----------------------------------------------------------------- read */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	iconn *c = h->data;
	(void)suggested;
	buf->base = (char *)c->rbuf;
	buf->len = sizeof(c->rbuf);
}

static void update_reading(iconn *c);

static void arm(iconn *c, unsigned ms);
static void timer_cb(uv_timer_t *t);

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	iconn *c = st->data;
	const char *err = NULL;
	(void)buf;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (nread == 0 || c->closing || c->shutting)
		return;
	arm(c, c->b->set.idle_timeout_ms);
	if (c->tls == NULL) {
		/* reading happens only while nothing is held */
		memcpy(c->held, c->rbuf, (size_t)nread);
		c->held_off = 0;
		c->held_len = (size_t)nread;
		process(c);
		return;
	}
	if (tls_feed(c->tls, c->rbuf, (size_t)nread) != 0) {
		conn_close(c);
		return;
	}
	if (c->handshaking) {
		int r = tls_progress(c->tls, &err);
		if (r < 0 || push_tls(c) != 0) {
			log_msg(LOG_INFO, "msg=\"imap: TLS handshake failed\" "
				"session=%llu error=\"%s\"", (unsigned long long)c->id,
				err != NULL ? err : "write failed");
			conn_close(c);
			return;
		}
		if (r == 0)
			return;
		c->handshaking = false;
		imap_session_tls_started(c->s);
	}
	process(c);
}

static void update_reading(iconn *c)
{
	bool want = !c->closing && !c->shutting && c->held_len == 0 &&
		    !write_full(c);
	if (want && !c->reading)
		c->reading = uv_read_start((uv_stream_t *)&c->h, alloc_cb,
					   read_cb) == 0;
	else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->h);
		c->reading = false;
	}
}

/* ------------------------------------------------------------ the pump */

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	(void)status;
	conn_close(req->data);
}

/* The session said BYE: close once what it wrote has been sent. */
static void finish(iconn *c)
{
	c->shutting = true;
	update_reading(c);
	/* a client that does not read the rest: closed after a while */
	uv_timer_start(&c->timer, timer_cb, BIMAP_LINGER_MS, 0);
	c->shut.data = c;
	if (uv_shutdown(&c->shut, (uv_stream_t *)&c->h, shutdown_cb) != 0)
		conn_close(c);
}

static int start_tls(iconn *c)
{
	const char *err = NULL;
	if (tls_session_new_mode(c->b->set.creds, true, TLS_MODE_SMTP, &c->tls,
				 &err) != 0) {
		log_msg(LOG_ERR, "msg=\"imap: TLS session\" error=\"%s\"", err);
		return -1;
	}
	c->handshaking = true;
	c->held_off = c->held_len = 0; /* plaintext after STARTTLS: dropped (I6) */
	return 0;
}

static void process(iconn *c)
{
	const char *err = NULL;
	if (c->processing || c->closing || c->shutting)
		return;
	c->processing = true;
	for (;;) {
		bool progress = false;
		const uint8_t *o;
		size_t n;
		while (!c->closing && !write_full(c) &&
		       (n = imap_session_output(c->s, &o)) > 0) {
			if (send_out(c, o, n) != 0) {
				conn_close(c);
				break;
			}
			imap_session_output_consumed(c->s, n);
			progress = true;
		}
		if (c->closing)
			break;
		bool drained = imap_session_output(c->s, &o) == 0;
		if (c->starttls_req && drained) {
			c->starttls_req = false;
			if (start_tls(c) != 0) {
				conn_close(c);
				break;
			}
		}
		if (imap_session_closing(c->s) && drained) {
			finish(c);
			break;
		}
		if (c->held_len == 0 && c->tls != NULL && !c->handshaking) {
			long r = tls_read(c->tls, c->held, sizeof(c->held), &err);
			if (r < 0) {
				conn_close(c);
				break;
			}
			c->held_off = 0;
			c->held_len = (size_t)r;
		}
		if (c->held_len > 0 && !write_full(c) && !c->starttls_req &&
		    !imap_session_closing(c->s)) {
			size_t k = imap_session_feed(c->s, c->held + c->held_off,
						     c->held_len);
			c->held_off += k;
			c->held_len -= k;
			if (k > 0)
				progress = true;
		}
		if (!progress)
			break;
	}
	c->processing = false;
	/* a command changed a mailbox: every session (IDLE ones at once)
	 * learns it; commands they then run may start this again */
	bimap *b = c->b;
	if (b->set.generation != NULL &&
	    b->set.generation(b->set.st) != b->generation)
		bimap_changed(b);
	if (!c->closing)
		update_reading(c);
}

/* ------------------------------------------------------ session hooks */

static void cb_login(void *arg, const char *user, const char *password,
		     size_t len)
{
	iconn *c = arg;
	bimap_login *req = calloc(1, sizeof(*req));
	if (req == NULL)
		abort(); /* out of memory: loudly */
	req->c = c;
	c->login = req;
	c->b->set.login(c->b->set.arg, req, user, password, len);
}

void bimap_login_done(bimap_login *req, bool ok)
{
	iconn *c = req->c;
	free(req);
	if (c == NULL)
		return;
	c->login = NULL;
	log_msg(LOG_INFO, "msg=\"imap: login\" session=%llu result=%s",
		(unsigned long long)c->id, ok ? "ok" : "refused");
	imap_session_login_done(c->s, ok, c->b->set.ops, c->b->set.st);
	process(c);
}

static void cb_starttls(void *arg)
{
	iconn *c = arg;
	c->starttls_req = true; /* started once the OK has been sent */
}

static void cb_command(void *arg, const char *tag, const char *name,
		       const char *result)
{
	iconn *c = arg;
	(void)tag;
	(void)name;
	(void)result;
	c->commands++;
}

static const imap_session_callbacks session_cbs = {
	.login = cb_login, .starttls = cb_starttls, .command = cb_command,
};

/* ------------------------------------------------------------ lifecycle */

static void timer_cb(uv_timer_t *t)
{
	iconn *c = t->data;
	if (c->closing)
		return;
	if (c->timed_out || c->shutting) {
		conn_close(c);
		return;
	}
	c->timed_out = true;
	log_msg(LOG_INFO, "msg=\"imap: idle timeout\" session=%llu",
		(unsigned long long)c->id);
	imap_session_timeout(c->s);
	process(c);
	if (!c->closing)
		uv_timer_start(&c->timer, timer_cb, BIMAP_LINGER_MS, 0);
}

static void arm(iconn *c, unsigned ms)
{
	if (!c->timed_out)
		uv_timer_start(&c->timer, timer_cb, ms, 0);
}

static void conn_handle_closed(uv_handle_t *h)
{
	iconn *c = h->data;
	bimap *b = c->b;
	if (--c->handles > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		b->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	b->n_conns--;
	if (c->login != NULL)
		c->login->c = NULL; /* answered later, then dropped */
	imap_session_free(&c->s);
	tls_session_free(&c->tls);
	free(c);
	b->open_handles--;
	maybe_free(b);
}

static void conn_close(iconn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->s != NULL)
		log_msg(LOG_INFO, "msg=\"imap: disconnected\" session=%llu "
			"commands=%u", (unsigned long long)c->id, c->commands);
	uv_close((uv_handle_t *)&c->h, conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void on_connection(uv_stream_t *ls, int status)
{
	bimap *b = ls->data;
	const char *err = NULL;
	if (status != 0 || b->closing)
		return;
	iconn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->b = b;
	c->id = ++b->next_id;
	c->h.data = c;
	c->timer.data = c;
	uv_tcp_init(b->loop, &c->h);
	uv_timer_init(b->loop, &c->timer);
	c->handles = 2;
	b->open_handles++;
	b->n_conns++;
	c->next = b->conns;
	if (b->conns != NULL)
		b->conns->prev = c;
	b->conns = c;
	if (uv_accept(ls, (uv_stream_t *)&c->h) != 0) {
		conn_close(c);
		return;
	}
	if (b->n_conns > BIMAP_CONNS_MAX) {
		log_msg(LOG_WARN, "msg=\"imap: too many connections\" max=%u",
			BIMAP_CONNS_MAX);
		conn_close(c);
		return;
	}
	imap_session_settings set = {
		.greeting = "AfterSMTP bridge ready",
		.starttls = b->set.creds != NULL,
	};
	if (imap_session_new(&set, &session_cbs, c, &c->s) != 0) {
		conn_close(c);
		return;
	}
	(void)err;
	uv_tcp_nodelay(&c->h, 1);
	log_msg(LOG_INFO, "msg=\"imap: connected\" session=%llu",
		(unsigned long long)c->id);
	arm(c, b->set.idle_timeout_ms);
	imap_session_greet(c->s);
	process(c);
}

int bimap_start(uv_loop_t *loop, const bimap_settings *set, bimap **b_r,
		const char **error_r)
{
	struct sockaddr_storage sa;
	const char *host = set->host != NULL ? set->host : "127.0.0.1";
	if (set->ops == NULL || set->login == NULL) {
		*error_r = "no store or no login check";
		return -1;
	}
	if (uv_ip4_addr(host, set->port, (struct sockaddr_in *)&sa) != 0 &&
	    uv_ip6_addr(host, set->port, (struct sockaddr_in6 *)&sa) != 0) {
		*error_r = "not a numeric IP address";
		return -1;
	}
	bimap *b = calloc(1, sizeof(*b));
	if (b == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	b->loop = loop;
	b->set = *set;
	b->set.host = NULL; /* not kept */
	if (b->set.idle_timeout_ms == 0)
		b->set.idle_timeout_ms = BIMAP_IDLE_TIMEOUT_MS;
	uv_tcp_init(loop, &b->h);
	b->h.data = b;
	b->open_handles = 1;
	int r = uv_tcp_bind(&b->h, (struct sockaddr *)&sa, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&b->h, 64, on_connection);
	if (r != 0) {
		*error_r = uv_strerror(r);
		bimap_close(&b);
		return -1;
	}
	*b_r = b;
	return 0;
}

uint16_t bimap_port(const bimap *b)
{
	struct sockaddr_storage sa;
	int len = sizeof(sa);
	if (uv_tcp_getsockname(&b->h, (struct sockaddr *)&sa, &len) != 0)
		return 0;
	if (sa.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&sa)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
}

void bimap_changed(bimap *b)
{
	iconn *next;
	if (b->set.generation != NULL)
		b->generation = b->set.generation(b->set.st);
	for (iconn *c = b->conns; c != NULL; c = next) {
		next = c->next; /* process() may close c (freed later) */
		if (c->closing || c->shutting || c->s == NULL)
			continue;
		imap_session_changed(c->s);
		process(c);
	}
}

static void listener_closed(uv_handle_t *h)
{
	bimap *b = h->data;
	b->open_handles--;
	maybe_free(b);
}

void bimap_close(bimap **bp)
{
	bimap *b = *bp;
	if (b == NULL)
		return;
	*bp = NULL;
	b->closing = true;
	for (iconn *c = b->conns; c != NULL; c = c->next)
		conn_close(c);
	if (!uv_is_closing((uv_handle_t *)&b->h))
		uv_close((uv_handle_t *)&b->h, listener_closed);
}
