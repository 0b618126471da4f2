/*
 * bsubmit.c — see bsubmit.h.  One uv_tcp_t and one uv_timer_t per
 * connection feeding an smtp_session (src/smtp/smtp-server.c) with AUTH
 * required; replies go out with uv_write, through a tls_session after
 * STARTTLS.  The message is collected in memory (at most size_max octets)
 * and handed to the bridge at the end of DATA; the session waits for the
 * bridge's answer (bsubmit_submit_done) and so does the client.
 *
 * Lifetimes: a connection holds one reference per open handle and one
 * per question the bridge owes (auth, submit), so a request stays valid
 * after the client has gone; the listener lives until its last
 * connection is freed.
 *
 * Limits: max_conns connections (more: 421 and close); input held back
 * while the session waits (BSUBMIT_READ_MAX), reading stops while more
 * than BSUBMIT_WRITE_QUEUE_MAX octets of replies are unsent; one idle
 * timeout per command and for the TLS handshake; a session ends after
 * BSUBMIT_SESSION_MAX_MS.
 */
#include "bsubmit.h"

#include "log.h"
#include "smtp-server.h"
#include "tls.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BSUBMIT_READ_MAX 65536u
#define BSUBMIT_WRITE_QUEUE_MAX (1u << 20)
#define BSUBMIT_SESSION_MAX_MS (3600u * 1000u)
#define BSUBMIT_MAX_RCPT 100u
#define BSUBMIT_ADDR_MAX 520u /* local (quoted, 64 * 2 + 2) @ domain (255) */

typedef struct conn conn;

enum { REQ_NONE, REQ_AUTH, REQ_SUBMIT };

struct bsubmit_req {
	conn *c;
	int kind;
};

struct conn {
	uv_tcp_t h;
	uv_timer_t timer;
	bsubmit *b;
	conn *prev, *next;
	unsigned refs;                  /* handles + the pending request */
	unsigned long long id;
	smtp_session *s;
	tls_session *tls;
	bool closing, shutting, reading, handshaking, starttls_req, eof;
	bool write_full;                /* reading stopped: replies unsent */
	unsigned depth;                 /* session calls on the stack */
	bool delayed;                   /* a tarpit delay before the next reply */
	uint8_t *held;                  /* input the session could not take */
	size_t held_len;
	uint64_t deadline, session_end;
	bsubmit_req req;
	/* the transaction */
	char from[BSUBMIT_ADDR_MAX];
	char *rcpts[BSUBMIT_MAX_RCPT];
	size_t n_rcpts;
	uint8_t *msg;
	size_t msg_len, msg_cap;
	unsigned n_sent, n_refused;
};

struct bsubmit {
	uv_loop_t *loop;
	uv_tcp_t listener;
	bsubmit_settings set;
	char hostname[256];
	bsubmit_callbacks cb;
	void *arg;
	conn *conns;
	unsigned n_conns;
	unsigned long long next_id;
	uint16_t port;
	bool closing, listener_open;
};

static void conn_close(conn *c);
static void conn_unref(conn *c);
static void flush(conn *c);
static void arm(conn *c);
static void resume_input(conn *c);

/* ---------------------------------------------------------- transaction */

static void tx_clear(conn *c)
{
	for (size_t i = 0; i < c->n_rcpts; i++)
		free(c->rcpts[i]);
	c->n_rcpts = 0;
	c->from[0] = '\0';
	if (c->msg != NULL) {
		sodium_memzero(c->msg, c->msg_cap);
		free(c->msg);
	}
	c->msg = NULL;
	c->msg_len = c->msg_cap = 0;
}

/* local@domain, "" for the null path. */
static void path_str(const smtp_path *p, char *out, size_t size)
{
	if (p->null)
		out[0] = '\0';
	else
		snprintf(out, size, "%s@%s", p->local, p->domain);
}

static void cb_mail(void *arg, const smtp_path *from, const smtp_mail_params *p)
{
	conn *c = arg;
	const char *user = smtp_session_user(c->s);
	char addr[BSUBMIT_ADDR_MAX];
	(void)p;
	tx_clear(c);
	path_str(from, addr, sizeof(addr));
	/* B2: Postfix reject_sender_login_mismatch */
	if (user == NULL || !c->b->cb.sender_ok(c->b->arg, user, addr)) {
		char q[LOG_QUOTE_MAX];
		log_msg(LOG_NOTICE, "msg=\"submission: sender not owned\" session=%llu "
			"from=%s", c->id, log_quote(addr, strlen(addr), q));
		smtp_session_reply(c->s, 553, "5.7.1",
				   "Sender address not owned by the authenticated user");
		return;
	}
	memcpy(c->from, addr, strlen(addr) + 1);
	smtp_session_reply(c->s, 250, "2.1.0", "Ok");
}

static void cb_rcpt(void *arg, const smtp_path *to, const smtp_rcpt_params *p)
{
	conn *c = arg;
	char addr[BSUBMIT_ADDR_MAX];
	(void)p;
	if (c->n_rcpts >= BSUBMIT_MAX_RCPT) {
		smtp_session_reply(c->s, 452, "4.5.3", "Too many recipients");
		return;
	}
	path_str(to, addr, sizeof(addr));
	char *r = strdup(addr);
	if (r == NULL)
		abort();
	c->rcpts[c->n_rcpts++] = r;
	smtp_session_reply(c->s, 250, "2.1.5", "Ok");
}

static void cb_begin(void *arg)
{
	conn *c = arg;
	c->msg_len = 0;
}

static void cb_chunk(void *arg, const uint8_t *data, size_t len)
{
	conn *c = arg;
	uint64_t max = c->b->set.size_max;
	if (len > max - c->msg_len || (uint64_t)c->msg_len + len > max)
		return; /* the session refuses the message at its end (552) */
	if (c->msg_len + len > c->msg_cap) {
		size_t cap = c->msg_cap > 0 ? c->msg_cap : 16384;
		while (cap < c->msg_len + len)
			cap *= 2;
		if (cap > max)
			cap = (size_t)max;
		uint8_t *m = malloc(cap);
		if (m == NULL)
			abort();
		if (c->msg != NULL) {
			memcpy(m, c->msg, c->msg_len);
			sodium_memzero(c->msg, c->msg_cap);
			free(c->msg);
		}
		c->msg = m;
		c->msg_cap = cap;
	}
	memcpy(c->msg + c->msg_len, data, len);
	c->msg_len += len;
}

static void cb_end(void *arg)
{
	conn *c = arg;
	const char *user = smtp_session_user(c->s);
	bsubmit_msg m = {
		.user = user != NULL ? user : "",
		.from = c->from,
		.rcpts = (const char *const *)c->rcpts,
		.n_rcpts = c->n_rcpts,
		.data = c->msg != NULL ? c->msg : (const uint8_t *)"",
		.len = c->msg_len,
	};
	c->req.kind = REQ_SUBMIT;
	c->refs++;
	c->b->cb.submit(c->b->arg, &c->req, &m);
}

static void cb_abort(void *arg)
{
	tx_clear(arg);
}

static void cb_starttls(void *arg)
{
	conn *c = arg;
	c->starttls_req = true; /* the driver starts TLS after the 220 */
}

static void cb_auth(void *arg, const char *authzid, const char *user,
		    const char *password, size_t len)
{
	conn *c = arg;
	c->req.kind = REQ_AUTH;
	c->refs++;
	c->b->cb.auth(c->b->arg, &c->req, authzid, user, password, len);
}

static const smtp_callbacks session_cbs = {
	.mail = cb_mail, .rcpt = cb_rcpt, .data_begin = cb_begin,
	.data_chunk = cb_chunk, .data_end = cb_end, .abort = cb_abort,
	.starttls = cb_starttls, .auth = cb_auth,
};

/* After an answer: send it and go on reading, unless we are inside a
 * call into the session (a synchronous answer), whose caller does both. */
static void answered(conn *c)
{
	if (!c->closing && c->depth == 0) {
		flush(c);
		resume_input(c);
	}
	conn_unref(c);
}

void bsubmit_auth_done(bsubmit_req *req, bool ok)
{
	conn *c = req->c;
	if (req->kind != REQ_AUTH)
		abort(); /* a bug in the bridge: answering what was not asked */
	req->kind = REQ_NONE;
	if (!c->closing) {
		const char *u = NULL;
		c->depth++;
		smtp_session_auth_done(c->s, ok);
		c->depth--;
		u = smtp_session_user(c->s);
		char q[LOG_QUOTE_MAX];
		log_msg(ok ? LOG_INFO : LOG_NOTICE, "msg=\"submission: auth %s\" "
			"session=%llu user=%s", ok ? "ok" : "failed", c->id,
			ok && u != NULL ? log_quote(u, strlen(u), q) : "-");
	}
	answered(c);
}

/* Reply text from the bridge: printable ASCII only, cut. */
static void reply_text(const char *text, char *out, size_t size)
{
	size_t o = 0;
	for (const char *p = text != NULL ? text : ""; *p != '\0' && o + 1 < size; p++)
		out[o++] = (*p >= 32 && *p < 127) ? *p : '?';
	out[o] = '\0';
}

void bsubmit_submit_done(bsubmit_req *req, bsubmit_result result,
			 const char *text)
{
	conn *c = req->c;
	if (req->kind != REQ_SUBMIT)
		abort();
	req->kind = REQ_NONE;
	if (!c->closing) {
		char t[SMTP_REPLY_TEXT_MAX - 8];
		reply_text(text, t, sizeof(t));
		log_msg(LOG_INFO, "msg=\"submission: message %s\" session=%llu rcpts=%zu "
			"size=%zu", result == BSUBMIT_OK ? "sent" : "refused", c->id,
			c->n_rcpts, c->msg_len);
		tx_clear(c);
		c->depth++;
		if (result == BSUBMIT_OK) {
			c->n_sent++;
			smtp_session_reply(c->s, 250, "2.0.0", t[0] != '\0' ? t : "Ok: sent");
		} else if (result == BSUBMIT_TEMPFAIL) {
			c->n_refused++;
			smtp_session_reply(c->s, 451, "4.3.0", t[0] != '\0' ? t : "Try again later");
		} else {
			c->n_refused++;
			smtp_session_reply(c->s, 554, "5.0.0", t[0] != '\0' ? t : "Not sent");
		}
		c->depth--;
	}
	answered(c);
}

/* ---------------------------------------------------------------- output */

typedef struct wreq {
	uv_write_t w;
	conn *c;
	uint8_t data[];
} wreq;

static void write_done(uv_write_t *w, int status)
{
	wreq *wr = (wreq *)w;
	conn *c = wr->c;
	(void)status;
	free(wr);
	/* back-pressure: reading resumes once the replies drain */
	if (c->write_full && !c->closing &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->h) <= BSUBMIT_WRITE_QUEUE_MAX / 2) {
		c->write_full = false;
		resume_input(c);
	}
	conn_unref(c);
}

static int write_raw(conn *c, const uint8_t *p, size_t n)
{
	wreq *wr = malloc(sizeof(*wr) + n);
	if (wr == NULL)
		abort();
	memcpy(wr->data, p, n);
	wr->c = c;
	uv_buf_t b = uv_buf_init((char *)wr->data, (unsigned)n);
	if (uv_write(&wr->w, (uv_stream_t *)&c->h, &b, 1, write_done) != 0) {
		free(wr);
		return -1;
	}
	c->refs++;
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->h) > BSUBMIT_WRITE_QUEUE_MAX &&
	    !c->write_full) {
		c->write_full = true;
		if (c->reading) {
			uv_read_stop((uv_stream_t *)&c->h);
			c->reading = false;
		}
	}
	return 0;
}

static int push_tls(conn *c)
{
	const uint8_t *o;
	size_t n;
	while ((n = tls_take_output(c->tls, &o)) > 0) {
		if (write_raw(c, o, n) != 0)
			return -1;
		tls_output_consumed(c->tls, n);
	}
	return 0;
}

static int send_bytes(conn *c, const uint8_t *p, size_t n)
{
	if (c->tls == NULL)
		return write_raw(c, p, n);
	const char *err = NULL;
	if (tls_write(c->tls, p, n, &err) != 0)
		return -1;
	return push_tls(c);
}

static void shutdown_done(uv_shutdown_t *req, int status)
{
	conn *c = req->data;
	(void)status;
	free(req);
	conn_close(c);
	conn_unref(c);
}

/* The session is over: let the replies go out, then close. */
static void finish(conn *c)
{
	if (c->shutting || c->closing)
		return;
	c->shutting = true;
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->h);
		c->reading = false;
	}
	uv_shutdown_t *req = malloc(sizeof(*req));
	if (req == NULL)
		abort();
	req->data = c;
	c->refs++;
	if (uv_shutdown(req, (uv_stream_t *)&c->h, shutdown_done) != 0) {
		free(req);
		c->refs--;
		conn_close(c);
		return;
	}
	c->deadline = uv_now(c->b->loop) + 10000; /* a client that never reads */
	arm(c);
}

static int start_tls(conn *c)
{
	const char *err = NULL;
	if (tls_session_new_mode(c->b->set.creds, true, TLS_MODE_SMTP, &c->tls,
				 &err) != 0) {
		log_msg(LOG_ERR, "msg=\"submission: TLS session\" error=\"%s\"", err);
		return -1;
	}
	c->handshaking = true;
	c->deadline = uv_now(c->b->loop) + c->b->set.timeout_ms;
	arm(c);
	return 0;
}

static void send_output(conn *c)
{
	const uint8_t *o;
	size_t n;
	bool sent = false;
	while (!c->closing && (n = smtp_session_output(c->s, &o)) > 0) {
		if (send_bytes(c, o, n) != 0) {
			conn_close(c);
			return;
		}
		smtp_session_output_consumed(c->s, n);
		sent = true;
	}
	if (c->closing)
		return;
	if (smtp_session_closing(c->s)) {
		finish(c);
		return;
	}
	if (sent)
		c->deadline = uv_now(c->b->loop) + c->b->set.timeout_ms;
	if (c->starttls_req) {
		/* the 220 went out in plaintext; nothing received before
		 * the handshake is kept (T1) */
		c->starttls_req = false;
		free(c->held);
		c->held = NULL;
		c->held_len = 0;
		if (start_tls(c) != 0)
			conn_close(c);
	}
}

/* Send what the session wrote, after its tarpit delay (S14). */
static void flush(conn *c)
{
	const uint8_t *o;
	if (c->closing || c->shutting || c->delayed)
		return;
	unsigned delay = smtp_session_delay_ms(c->s);
	if (delay > 0 && !c->starttls_req && !smtp_session_closing(c->s) &&
	    smtp_session_output(c->s, &o) > 0) {
		c->delayed = true;
		if (c->reading) {
			uv_read_stop((uv_stream_t *)&c->h);
			c->reading = false;
		}
		c->deadline = uv_now(c->b->loop) + delay;
		arm(c);
		return;
	}
	send_output(c);
	arm(c);
}

/* ----------------------------------------------------------------- timer */

static void timer_cb(uv_timer_t *t);

static void arm(conn *c)
{
	if (c->closing)
		return;
	uint64_t now = uv_now(c->b->loop);
	uint64_t at = c->deadline;
	if (!c->delayed && !c->shutting && !c->handshaking) {
		if (smtp_session_pending(c->s)) {
			uv_timer_stop(&c->timer); /* the client waits for the bridge */
			return;
		}
		if (c->session_end < at)
			at = c->session_end;
	}
	uv_timer_start(&c->timer, timer_cb, at > now ? at - now : 1, 0);
}

static void timer_cb(uv_timer_t *t)
{
	conn *c = t->data;
	uint64_t now = uv_now(c->b->loop);
	if (c->closing)
		return;
	if (c->shutting) {
		conn_close(c);
		return;
	}
	if (c->delayed) {
		c->delayed = false;
		send_output(c);
		resume_input(c);
		arm(c);
		return;
	}
	if (c->handshaking) {
		if (now >= c->deadline) {
			log_msg(LOG_INFO, "msg=\"submission: TLS handshake timeout\" "
				"session=%llu", c->id);
			conn_close(c);
			return;
		}
		arm(c);
		return;
	}
	if (now >= c->deadline || now >= c->session_end) {
		log_msg(LOG_INFO, "msg=\"submission: timeout\" session=%llu", c->id);
		smtp_session_timeout(c->s);
		send_output(c);
		return;
	}
	arm(c);
}

/* ----------------------------------------------------------------- input */

/* Plaintext for the session; what it cannot take now (waiting for the
 * bridge with a full buffer) is held and reading stops. */
static void feed(conn *c, const uint8_t *p, size_t len)
{
	size_t off = 0;
	c->deadline = uv_now(c->b->loop) + c->b->set.timeout_ms;
	c->depth++;
	while (off < len && !c->closing && !c->shutting) {
		size_t n = smtp_session_feed(c->s, p + off, len - off);
		off += n;
		if (c->starttls_req)
			break; /* what followed STARTTLS is dropped (T1) */
		if (n == 0) {
			if (c->held == NULL && (c->held = malloc(BSUBMIT_READ_MAX)) == NULL)
				abort();
			c->held_len = len - off;
			memcpy(c->held, p + off, c->held_len);
			if (c->reading) {
				uv_read_stop((uv_stream_t *)&c->h);
				c->reading = false;
			}
			break;
		}
	}
	c->depth--;
	flush(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = malloc(BSUBMIT_READ_MAX);
	buf->len = buf->base != NULL ? BSUBMIT_READ_MAX : 0;
}

/* Ciphertext: the handshake, then records for the session. */
static void tls_input(conn *c, const uint8_t *p, size_t len)
{
	const char *err = NULL;
	if (len > 0 && tls_feed(c->tls, p, len) != 0) {
		conn_close(c);
		return;
	}
	if (c->handshaking) {
		int r = tls_progress(c->tls, &err);
		if (r < 0 || push_tls(c) != 0) {
			log_msg(LOG_INFO, "msg=\"submission: TLS handshake failed\" "
				"session=%llu error=\"%s\"", c->id,
				err != NULL ? err : "write");
			conn_close(c);
			return;
		}
		if (r == 0)
			return;
		c->handshaking = false;
		c->deadline = uv_now(c->b->loop) + c->b->set.timeout_ms;
		c->depth++;
		smtp_session_tls_started(c->s);
		c->depth--;
		flush(c);
	}
	uint8_t buf[16384];
	long n;
	while (!c->closing && !c->shutting && c->held_len == 0 &&
	       !smtp_session_pending(c->s) &&
	       (n = tls_read(c->tls, buf, sizeof(buf), &err)) != 0) {
		if (n < 0) {
			conn_close(c);
			return;
		}
		feed(c, buf, (size_t)n);
	}
	sodium_memzero(buf, sizeof(buf));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	conn *c = (conn *)st;
	if (nread < 0) {
		free(buf->base);
		if (nread == UV_EOF && (smtp_session_pending(c->s) || c->held_len > 0)) {
			/* everything sent and half-closed: answer it, then close */
			c->eof = true;
			uv_read_stop(st);
			c->reading = false;
			return;
		}
		conn_close(c);
		return;
	}
	if (nread > 0) {
		if (c->tls != NULL)
			tls_input(c, (const uint8_t *)buf->base, (size_t)nread);
		else
			feed(c, (const uint8_t *)buf->base, (size_t)nread);
		/* AUTH lines in plaintext: no copy left behind */
		sodium_memzero(buf->base, (size_t)nread);
	}
	free(buf->base);
}

static void resume_input(conn *c)
{
	if (c->closing || c->shutting || c->delayed || c->write_full ||
	    smtp_session_pending(c->s))
		return;
	if (c->held_len > 0) {
		uint8_t *tmp = c->held;
		size_t n = c->held_len;
		c->held = NULL;
		c->held_len = 0;
		feed(c, tmp, n);
		sodium_memzero(tmp, n);
		free(tmp);
		if (c->held_len > 0 || c->closing || c->shutting)
			return;
	}
	if (c->tls != NULL && !c->handshaking)
		tls_input(c, NULL, 0);
	if (c->closing || c->shutting)
		return;
	if (c->eof) {
		if (c->held_len == 0 && !smtp_session_pending(c->s))
			finish(c);
		return;
	}
	if (!c->reading && c->held_len == 0 && !smtp_session_pending(c->s) &&
	    uv_read_start((uv_stream_t *)&c->h, alloc_cb, read_cb) == 0)
		c->reading = true;
}

/* ----------------------------------------------------------- connections */

static void maybe_free(bsubmit *b)
{
	if (b->closing && !b->listener_open && b->n_conns == 0)
		free(b);
}

static void conn_unref(conn *c)
{
	if (--c->refs > 0)
		return;
	bsubmit *b = c->b;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		b->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	log_msg(LOG_INFO, "msg=\"submission: disconnect\" session=%llu sent=%u "
		"refused=%u errors=%u tls=%s", c->id, c->n_sent, c->n_refused,
		c->s != NULL ? smtp_session_errors(c->s) : 0,
		c->tls != NULL && !c->handshaking ? "yes" : "no");
	tx_clear(c);
	smtp_session_free(&c->s);
	tls_session_free(&c->tls);
	if (c->held != NULL)
		sodium_memzero(c->held, BSUBMIT_READ_MAX);
	free(c->held);
	free(c);
	b->n_conns--;
	maybe_free(b);
}

static void conn_handle_closed(uv_handle_t *h)
{
	conn_unref(h->data);
}

static void conn_close(conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->h, conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

/* More connections than allowed: one line, then close. */
static void refuse(conn *c)
{
	static const char line[] = "421 4.7.0 Too many connections, try again later\r\n";
	if (write_raw(c, (const uint8_t *)line, sizeof(line) - 1) == 0)
		finish(c);
	else
		conn_close(c);
}

static void on_connection(uv_stream_t *ls, int status)
{
	bsubmit *b = ls->data;
	if (status < 0) {
		log_msg(LOG_WARN, "msg=\"submission: accept\" error=\"%s\"",
			uv_strerror(status));
		return;
	}
	if (b->closing)
		return;
	conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->b = b;
	c->req.c = c;
	c->id = ++b->next_id;
	c->refs = 2; /* the two handles */
	uv_tcp_init(b->loop, &c->h);
	uv_timer_init(b->loop, &c->timer);
	c->h.data = c;
	c->timer.data = c;
	c->next = b->conns;
	if (b->conns != NULL)
		b->conns->prev = c;
	b->conns = c;
	b->n_conns++;
	if (uv_accept(ls, (uv_stream_t *)&c->h) != 0) {
		conn_close(c);
		return;
	}
	uint64_t now = uv_now(b->loop);
	c->deadline = now + b->set.timeout_ms;
	c->session_end = now + BSUBMIT_SESSION_MAX_MS;
	if (b->n_conns > b->set.max_conns) {
		log_msg(LOG_NOTICE, "msg=\"submission: too many connections\" "
			"session=%llu", c->id);
		refuse(c);
		return;
	}
	smtp_settings set = {
		.hostname = b->hostname, .line_max = 1000, .max_rcpt = BSUBMIT_MAX_RCPT,
		.soft_errors = 5, .hard_errors = 20, .error_delay_ms = 500,
		.offer = { .size_max = b->set.size_max, .eightbit = true,
			   .smtputf8 = true },
		.starttls = b->set.creds != NULL,
		.bare_policy = SMTP_DATA_NORMALISE,
		.auth = true, .auth_required = true,
		.auth_needs_tls = b->set.auth_needs_tls,
	};
	if (smtp_session_new(&set, &session_cbs, c, &c->s) != 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->h, 1);
	log_msg(LOG_INFO, "msg=\"submission: connect\" session=%llu", c->id);
	smtp_session_greet(c->s);
	flush(c);
	resume_input(c);
}

/* ------------------------------------------------------------------ API */

int bsubmit_start(uv_loop_t *loop, const bsubmit_settings *set,
		  const bsubmit_callbacks *cb, void *arg, bsubmit **b_r,
		  const char **error_r)
{
	if (cb->auth == NULL || cb->sender_ok == NULL || cb->submit == NULL) {
		*error_r = "bsubmit: a callback is missing";
		return -1;
	}
	bsubmit *b = calloc(1, sizeof(*b));
	if (b == NULL)
		abort();
	b->loop = loop;
	b->set = *set;
	b->cb = *cb;
	b->arg = arg;
	snprintf(b->hostname, sizeof(b->hostname), "%s",
		 set->hostname != NULL ? set->hostname : "localhost");
	b->set.hostname = b->hostname;
	if (b->set.size_max == 0)
		b->set.size_max = BSUBMIT_SIZE_MAX_DEFAULT;
	if (b->set.size_max > SIZE_MAX / 2)
		b->set.size_max = SIZE_MAX / 2;
	if (b->set.timeout_ms == 0)
		b->set.timeout_ms = BSUBMIT_TIMEOUT_DEFAULT_MS;
	if (b->set.max_conns == 0)
		b->set.max_conns = BSUBMIT_CONNS_DEFAULT;
	const char *host = set->host != NULL ? set->host : "127.0.0.1";
	struct sockaddr_storage sa;
	int e = strchr(host, ':') != NULL
		? uv_ip6_addr(host, set->port, (struct sockaddr_in6 *)&sa)
		: uv_ip4_addr(host, set->port, (struct sockaddr_in *)&sa);
	if (e != 0) {
		free(b);
		*error_r = "bsubmit: not a numeric address";
		return -1;
	}
	b->set.host = NULL; /* borrowed: not kept */
	uv_tcp_init(loop, &b->listener);
	b->listener.data = b;
	b->listener_open = true;
	int sl = (int)sizeof(sa);
	if ((e = uv_tcp_bind(&b->listener, (const struct sockaddr *)&sa, 0)) != 0 ||
	    (e = uv_listen((uv_stream_t *)&b->listener, 64, on_connection)) != 0 ||
	    (e = uv_tcp_getsockname(&b->listener, (struct sockaddr *)&sa, &sl)) != 0) {
		*error_r = uv_strerror(e);
		b->closing = true;
		bsubmit *tmp = b;
		bsubmit_close(&tmp);
		return -1;
	}
	b->port = ntohs(sa.ss_family == AF_INET6
			? ((struct sockaddr_in6 *)&sa)->sin6_port
			: ((struct sockaddr_in *)&sa)->sin_port);
	*b_r = b;
	return 0;
}

uint16_t bsubmit_port(const bsubmit *b)
{
	return b->port;
}

static void listener_closed(uv_handle_t *h)
{
	bsubmit *b = h->data;
	b->listener_open = false;
	maybe_free(b);
}

void bsubmit_close(bsubmit **bp)
{
	bsubmit *b = *bp;
	if (b == NULL)
		return;
	*bp = NULL;
	b->closing = true;
	for (conn *c = b->conns; c != NULL; c = c->next)
		conn_close(c);
	if (!uv_is_closing((uv_handle_t *)&b->listener))
		uv_close((uv_handle_t *)&b->listener, listener_closed);
}
