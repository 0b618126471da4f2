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
 * Limits: max_conns connections (more: 421 and close); the socket is not
 * read while the session waits for the bridge or has not taken the last
 * read (BSUBMIT_READ_MAX), nor while more than BSUBMIT_OUT_HIGH octets of
 * replies are unsent (BSUBMIT_OUT_MAX: dropped); one idle timeout per
 * command and for the TLS handshake; a session ends after
 * BSUBMIT_SESSION_MAX_MS.  Input and the message are wiped after use.
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

#define BSUBMIT_READ_MAX 16384u          /* one read, plaintext waiting */
#define BSUBMIT_CIPHER_MAX (16384u + 2048u) /* one read under TLS: a record */
#define BSUBMIT_OUT_HIGH (256u * 1024u)   /* replies queued: stop reading */
#define BSUBMIT_OUT_MAX (8u * 1024u * 1024u) /* ... and drop the client */
#define BSUBMIT_SESSION_MAX_MS (3600u * 1000u)
#define BSUBMIT_MAX_RCPT 100u
#define BSUBMIT_ADDR_MAX 520u /* local (quoted, 64 * 2 + 2) @ domain (255) */

_Static_assert(BSUBMIT_USER_MAX == SMTP_AUTH_FIELD_MAX &&
	       BSUBMIT_PASSWORD_MAX == SMTP_AUTH_FIELD_MAX, "AUTH field limits");

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
	bool closing;                   /* uv_close called */
	bool draining;                  /* last reply queued: close once sent */
	bool reading, writing, handshaking, starttls_req, eof;
	bool delayed;                   /* a tarpit delay before the next reply */
	bool delay_done;                /* ... which is over: send */
	unsigned depth;                 /* calls into the session on the stack */
	uint64_t deadline, session_end;
	uint8_t in[BSUBMIT_READ_MAX];   /* plaintext not yet taken */
	size_t in_off, in_len;
	uint8_t cipher[BSUBMIT_CIPHER_MAX];
	uint8_t *out, *wbuf;            /* queued; in flight */
	size_t out_len, out_cap, wlen, wcap;
	uv_write_t wr;
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
static void settle(conn *c);

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

static void pump(conn *c);

/* After an answer: the session may go on with pipelined input, then
 * settle (both wait when the answer came from inside the session). */
static void answered(conn *c)
{
	if (!c->closing && c->depth == 0) {
		pump(c);
		settle(c);
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

/* ------------------------------------------------------------------ I/O
 *
 * One state-driven pump instead of a chain of callbacks: every event (a
 * read, a write finished, the timer, an answer of the bridge) changes the
 * connection's state and then calls settle(), which moves the session's
 * replies to the output queue, starts the next write, decides whether the
 * socket should be read and re-arms the timer.
 *
 * Output: the session's replies (encrypted once TLS is up) are appended to
 * out[]; one uv_write is in flight at a time, over the bytes moved to
 * wbuf[].  Reading stops while out[] holds more than BSUBMIT_OUT_HIGH
 * octets; beyond BSUBMIT_OUT_MAX the client is dropped.
 * Input: plaintext waits in in[] (a read lands there directly when there
 * is no TLS); the socket is read only when in[] is empty and the session
 * is not waiting for the bridge, so one buffer per connection suffices.
 */

static bool want_read(const conn *c)
{
	return !c->closing && !c->draining && !c->delayed && !c->eof &&
	       c->s != NULL && c->in_len == 0 && c->out_len < BSUBMIT_OUT_HIGH &&
	       (c->handshaking || !smtp_session_pending(c->s));
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	conn *c = h->data;
	(void)suggested;
	if (c->tls != NULL)
		*buf = uv_buf_init((char *)c->cipher, sizeof(c->cipher));
	else
		*buf = uv_buf_init((char *)c->in, sizeof(c->in));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void update_reading(conn *c)
{
	bool want = want_read(c);
	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->h, alloc_cb, read_cb) == 0)
			c->reading = true;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->h);
		c->reading = false;
	}
}

static void write_cb(uv_write_t *w, int status);

/* Start the next write when none is in flight. */
static void out_kick(conn *c)
{
	if (c->closing || c->writing || c->out_len == 0)
		return;
	uint8_t *t = c->wbuf;
	size_t tcap = c->wcap;
	c->wbuf = c->out;
	c->wcap = c->out_cap;
	c->wlen = c->out_len;
	c->out = t;
	c->out_cap = tcap;
	c->out_len = 0;
	uv_buf_t b = uv_buf_init((char *)c->wbuf, (unsigned)c->wlen);
	if (uv_write(&c->wr, (uv_stream_t *)&c->h, &b, 1, write_cb) != 0) {
		conn_close(c);
		return;
	}
	c->writing = true;
	c->refs++;
}

static int out_append(conn *c, const uint8_t *p, size_t n)
{
	if (n > BSUBMIT_OUT_MAX - c->out_len)
		return -1; /* a client that does not read what it asked for */
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap > 0 ? c->out_cap : 4096;
		while (cap < c->out_len + n)
			cap *= 2;
		uint8_t *o = realloc(c->out, cap);
		if (o == NULL)
			abort();
		c->out = o;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return 0;
}

/* Ciphertext the TLS session has for the peer. */
static int out_tls(conn *c)
{
	const uint8_t *o;
	for (size_t n; (n = tls_take_output(c->tls, &o)) > 0; tls_output_consumed(c->tls, n))
		if (out_append(c, o, n) != 0)
			return -1;
	return 0;
}

/* The session's replies into the queue (after its tarpit delay, S14). */
static void take_replies(conn *c)
{
	const uint8_t *o;
	size_t n;
	const char *err = NULL;
	if (c->s == NULL || c->delayed || c->draining)
		return;
	unsigned delay = smtp_session_delay_ms(c->s);
	if (delay > 0 && !c->delay_done && !c->starttls_req &&
	    !smtp_session_closing(c->s) && smtp_session_output(c->s, &o) > 0) {
		c->delayed = true;
		c->deadline = uv_now(c->b->loop) + delay;
		return;
	}
	c->delay_done = false;
	bool any = false;
	while ((n = smtp_session_output(c->s, &o)) > 0) {
		if (c->tls != NULL ? tls_write(c->tls, o, n, &err) != 0 || out_tls(c) != 0
				   : out_append(c, o, n) != 0) {
			conn_close(c);
			return;
		}
		smtp_session_output_consumed(c->s, n);
		any = true;
	}
	if (any) /* the client's turn */
		c->deadline = uv_now(c->b->loop) + c->b->set.timeout_ms;
	if (smtp_session_closing(c->s)) {
		c->draining = true;
		c->deadline = uv_now(c->b->loop) + 10000; /* to read the last reply */
	} else if (c->starttls_req) {
		/* the 220 is queued in plaintext; what follows is TLS, and
		 * nothing read before the handshake is kept (T1) */
		c->starttls_req = false;
		sodium_memzero(c->in, sizeof(c->in));
		c->in_len = c->in_off = 0;
		if (tls_session_new_mode(c->b->set.creds, true, TLS_MODE_SMTP,
					 &c->tls, &err) != 0) {
			log_msg(LOG_ERR, "msg=\"submission: TLS session\" error=\"%s\"", err);
			conn_close(c);
			return;
		}
		c->handshaking = true;
		c->deadline = uv_now(c->b->loop) + c->b->set.timeout_ms;
	}
}

static void timer_cb(uv_timer_t *t);

static void arm(conn *c)
{
	uint64_t now = uv_now(c->b->loop), at = c->deadline;
	if (!c->delayed && !c->draining && !c->handshaking && c->s != NULL) {
		if (smtp_session_pending(c->s)) {
			uv_timer_stop(&c->timer); /* the client waits for the bridge */
			return;
		}
		if (c->session_end < at)
			at = c->session_end;
	}
	uv_timer_start(&c->timer, timer_cb, at > now ? at - now : 1, 0);
}

static void pump(conn *c);

/* After every event: replies out, reading on or off, the timer. */
static void settle(conn *c)
{
	if (c->closing || c->depth > 0)
		return;
	take_replies(c);
	if (c->closing)
		return;
	out_kick(c);
	if (c->closing)
		return;
	if (c->draining && !c->writing && c->out_len == 0) {
		conn_close(c);
		return;
	}
	if (c->eof && !c->draining && c->in_len == 0 && c->s != NULL &&
	    !smtp_session_pending(c->s)) {
		/* the client half-closed: it gets every answer, then we close */
		c->draining = true;
		c->deadline = uv_now(c->b->loop) + 10000;
		if (!c->writing && c->out_len == 0) {
			conn_close(c);
			return;
		}
	}
	update_reading(c);
	arm(c);
}

/* Feed the plaintext waiting in in[] (and, under TLS, what GnuTLS has
 * decrypted) to the session while it takes it. */
static void pump(conn *c)
{
	const char *err = NULL;
	c->depth++;
	while (!c->closing && !c->draining && !c->handshaking && !c->delayed) {
		if (c->in_len == 0 && c->tls != NULL && !smtp_session_pending(c->s)) {
			long n = tls_read(c->tls, c->in, sizeof(c->in), &err);
			if (n < 0) {
				conn_close(c);
				break;
			}
			c->in_off = 0;
			c->in_len = (size_t)n;
		}
		if (c->in_len == 0)
			break;
		size_t n = smtp_session_feed(c->s, c->in + c->in_off, c->in_len);
		sodium_memzero(c->in + c->in_off, n); /* AUTH lines */
		c->in_off += n;
		c->in_len -= n;
		if (c->in_len == 0)
			c->in_off = 0;
		if (c->starttls_req || smtp_session_closing(c->s)) {
			sodium_memzero(c->in, sizeof(c->in));
			c->in_len = c->in_off = 0; /* T1: the rest is never run */
			break;
		}
		if (n == 0)
			break; /* full while the bridge decides */
	}
	c->depth--;
}

static void handshake(conn *c)
{
	const char *err = NULL;
	int r = tls_progress(c->tls, &err);
	if (r < 0 || out_tls(c) != 0) {
		log_msg(LOG_INFO, "msg=\"submission: TLS handshake failed\" "
			"session=%llu error=\"%s\"", c->id, err != NULL ? err : "queue");
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
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	conn *c = st->data;
	(void)buf;
	if (nread == UV_EOF) {
		c->eof = true;
	} else if (nread < 0) {
		conn_close(c);
		return;
	} else if (nread > 0) {
		c->deadline = uv_now(c->b->loop) + c->b->set.timeout_ms;
		if (c->tls == NULL) {
			c->in_off = 0;
			c->in_len = (size_t)nread;
		} else if (tls_feed(c->tls, c->cipher, (size_t)nread) != 0) {
			conn_close(c);
			return;
		} else if (c->handshaking) {
			handshake(c);
		}
		pump(c);
	}
	settle(c);
}

static void write_cb(uv_write_t *w, int status)
{
	conn *c = w->data;
	c->writing = false;
	c->wlen = 0;
	if (status < 0)
		conn_close(c);
	else
		settle(c);
	conn_unref(c);
}

static void timer_cb(uv_timer_t *t)
{
	conn *c = t->data;
	uint64_t now = uv_now(c->b->loop);
	if (c->closing)
		return;
	if (c->delayed) {
		c->delayed = false;
		c->delay_done = true;
		settle(c);    /* the replies that waited */
		pump(c);      /* then the commands that came meanwhile */
	} else if (c->draining || (c->handshaking && now >= c->deadline)) {
		if (c->handshaking)
			log_msg(LOG_INFO, "msg=\"submission: TLS handshake timeout\" "
				"session=%llu", c->id);
		conn_close(c);
		return;
	} else if (!c->handshaking && (now >= c->deadline || now >= c->session_end)) {
		log_msg(LOG_INFO, "msg=\"submission: timeout\" session=%llu", c->id);
		smtp_session_timeout(c->s);
	}
	settle(c);
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
	sodium_memzero(c->in, sizeof(c->in));
	free(c->out);
	free(c->wbuf);
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
	c->reading = false;
	uv_close((uv_handle_t *)&c->h, conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

/* More connections than allowed: one line, then close. */
static void refuse(conn *c)
{
	static const char line[] = "421 4.7.0 Too many connections, try again later\r\n";
	if (out_append(c, (const uint8_t *)line, sizeof(line) - 1) != 0) {
		conn_close(c);
		return;
	}
	c->draining = true;
	c->deadline = uv_now(c->b->loop) + 10000;
	settle(c);
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
	c->wr.data = c;
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
	settle(c);
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
