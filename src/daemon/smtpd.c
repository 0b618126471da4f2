/*
 * smtpd.c — see smtpd.h.  One uv_tcp_t per connection feeding an
 * smtp_session; the session's replies go out with uv_write.  The end of
 * a message is sealed and stored on libuv's worker pool; the store's
 * commit callback (writer thread) posts the answer back to the loop with
 * a uv_async, so the 250 follows the fsync.
 */
#include "smtpd.h"

#include "log.h"
#include "smtp-server.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SMTPD_RCPT_MAX 1000u

typedef struct sconn_smtp sconn_smtp;

struct smtpd {
	uv_loop_t *loop;
	store *const *stp;
	amp_identity *const *nodep;
	void (*notify)(void *, const char *);
	void *notify_arg;
	char **domains;
	size_t n_domains;
	char hostname[256];
	uint64_t size_max;
	unsigned max_conns, n_conns;
	uv_tcp_t listener;
	bool listening, stopping, async_closing, freeing;
	int handles;
	unsigned inflight;           /* messages on the workers or the store */
	uv_async_t done_async;
	pthread_mutex_t done_lock;
	struct msg *done_head;
	sconn_smtp *conns;
};

typedef struct msg {
	sconn_smtp *c;
	uv_work_t work;
	uint8_t *body;
	size_t len;
	amp_public_identity *rcpts;
	size_t n;
	int result;                  /* 0 stored; -1 failed */
	char idhex[33];
	struct msg *next;
} msg;

struct sconn_smtp {
	uv_tcp_t h;
	smtpd *d;
	sconn_smtp *prev, *next;
	smtp_session *s;
	char ip[INET6_ADDRSTRLEN];
	char helo[256];
	char from[SMTP_PATH_MAX + 1];
	uint8_t *data;
	size_t data_len, data_cap;
	amp_public_identity *rcpts;
	size_t n_rcpts;
	int refs;                    /* the handle, a message being stored */
	bool closing;
};

/* ---------------------------------------------------------------- output */

typedef struct wreq {
	uv_write_t w;
	uint8_t data[];
} wreq;

static void write_done(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

static void conn_close(sconn_smtp *c);

static void flush(sconn_smtp *c)
{
	const uint8_t *o;
	size_t n;
	while (!c->closing && (n = smtp_session_output(c->s, &o)) > 0) {
		wreq *wr = malloc(sizeof(*wr) + n);
		if (wr == NULL)
			abort();
		memcpy(wr->data, o, n);
		smtp_session_output_consumed(c->s, n);
		uv_buf_t b = uv_buf_init((char *)wr->data, (unsigned)n);
		if (uv_write(&wr->w, (uv_stream_t *)&c->h, &b, 1, write_done) != 0) {
			free(wr);
			conn_close(c);
			return;
		}
	}
	if (!c->closing && smtp_session_closing(c->s))
		conn_close(c); /* libuv sends queued writes before the close */
}

/* -------------------------------------------------------------- a message */

static void tx_clear(sconn_smtp *c)
{
	if (c->data != NULL)
		sodium_memzero(c->data, c->data_len);
	free(c->data);
	c->data = NULL;
	c->data_len = c->data_cap = 0;
	free(c->rcpts);
	c->rcpts = NULL;
	c->n_rcpts = 0;
}

static void conn_unref(sconn_smtp *c);

static void cb_mail(void *arg, const smtp_path *from, const smtp_mail_params *p)
{
	sconn_smtp *c = arg;
	(void)p;
	if (!from->null && !smtp_path_format(from, c->from, sizeof(c->from)))
		c->from[0] = '\0';
	else if (from->null)
		c->from[0] = '\0';
	smtp_session_reply(c->s, 250, "2.1.0", "Ok");
}

static bool is_local(const smtpd *d, const char *domain_lc)
{
	for (size_t i = 0; i < d->n_domains; i++)
		if (strcmp(d->domains[i], domain_lc) == 0)
			return true;
	return false;
}

static void cb_rcpt(void *arg, const smtp_path *to, const smtp_rcpt_params *p)
{
	sconn_smtp *c = arg;
	smtpd *d = c->d;
	(void)p;
	if (to->domain[0] == '\0' || !is_local(d, to->domain_lc)) {
		smtp_session_reply(c->s, 554, "5.7.1", "Relay access denied");
		return;
	}
	/* user@domain is did:aftersmtp:domain:user (lower case) */
	char local[SMTP_LOCAL_MAX * 2 + 3], did[AMP_DID_MAX + 1];
	snprintf(local, sizeof(local), "%s", to->local);
	for (char *q = local; *q != '\0'; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q - 'A' + 'a');
	char *doc = NULL;
	size_t dl;
	amp_public_identity pub;
	if (amp_did_format(to->domain_lc, local, did, sizeof(did), NULL) != AMP_OK ||
	    store_identity_get(*d->stp, did, &doc, &dl) != 1 ||
	    amp_did_document_parse(doc, dl, &pub, NULL) != AMP_OK) {
		free(doc);
		smtp_session_reply(c->s, 550, "5.1.1", "No such user here");
		return;
	}
	free(doc);
	for (size_t i = 0; i < c->n_rcpts; i++) {
		if (strcmp(c->rcpts[i].did, pub.did) == 0) { /* same DID twice */
			smtp_session_reply(c->s, 250, "2.1.5", "Ok");
			return;
		}
	}
	if (c->n_rcpts >= SMTPD_RCPT_MAX) {
		smtp_session_reply(c->s, 452, "4.5.3", "Too many recipients");
		return;
	}
	amp_public_identity *nr = realloc(c->rcpts, (c->n_rcpts + 1) * sizeof(*nr));
	if (nr == NULL) {
		smtp_session_reply(c->s, 451, "4.3.0", "Out of memory, try again");
		return;
	}
	c->rcpts = nr;
	c->rcpts[c->n_rcpts++] = pub;
	smtp_session_reply(c->s, 250, "2.1.5", "Ok");
}

static void cb_begin(void *arg)
{
	sconn_smtp *c = arg;
	c->data_len = 0;
}

static void cb_chunk(void *arg, const uint8_t *data, size_t len)
{
	sconn_smtp *c = arg;
	if (len > c->d->size_max - c->data_len)
		return; /* the reader reports the size at the end */
	if (c->data_len + len > c->data_cap) {
		size_t cap = c->data_cap == 0 ? 16384 : c->data_cap;
		while (cap < c->data_len + len)
			cap *= 2;
		uint8_t *p = realloc(c->data, cap);
		if (p == NULL)
			abort();
		c->data = p;
		c->data_cap = cap;
	}
	memcpy(c->data + c->data_len, data, len);
	c->data_len += len;
}

static void store_done(void *arg, int result, bool duplicate)
{
	msg *m = arg;
	smtpd *d = m->c->d;
	(void)duplicate;
	m->result = result;
	pthread_mutex_lock(&d->done_lock);
	m->next = d->done_head;
	d->done_head = m;
	pthread_mutex_unlock(&d->done_lock);
	uv_async_send(&d->done_async);
}

/* Worker: seal once for every recipient, then hand it to the store. */
static void seal_work(uv_work_t *w)
{
	msg *m = w->data;
	smtpd *d = m->c->d;
	uint8_t *env = NULL;
	size_t env_len = 0;
	amp_envelope *e = NULL;
	const char *err = NULL;
	amp_seal_params sp = { .content_type = "message/rfc822" };
	m->result = -1;
	if (amp_seal(NULL, *d->nodep, m->rcpts, m->n, &sp, m->body, m->len, &env,
		     &env_len, &err) != AMP_OK ||
	    amp_envelope_decode(env, env_len, &e, &err) != AMP_OK) {
		log_msg(LOG_ERR, "msg=\"smtp: cannot seal\" error=\"%s\"", err);
		amp_free(env);
		store_done(m, -1, false);
		return;
	}
	amp_envelope_info info;
	amp_envelope_get_info(e, &info);
	sodium_bin2hex(m->idhex, sizeof(m->idhex), info.envelope_id, 16);
	const char **local = calloc(m->n, sizeof(*local));
	if (local == NULL)
		abort();
	for (size_t i = 0; i < m->n; i++)
		local[i] = m->rcpts[i].did;
	store_delivery sd = {
		.sender = (*d->nodep)->pub.did, .envelope_id = info.envelope_id,
		.env = env, .env_len = env_len, .received = (uint64_t)time(NULL),
		.local = local, .n_local = m->n,
	};
	if (store_deliver(*d->stp, &sd, store_done, m) != 0)
		store_done(m, -1, false);
	free(local);
	amp_envelope_free(&e);
	amp_free(env);
}

static void seal_after(uv_work_t *w, int status)
{
	(void)w;
	(void)status; /* the answer comes through done_async */
}

static void done_async_cb(uv_async_t *a)
{
	smtpd *d = a->data;
	pthread_mutex_lock(&d->done_lock);
	msg *list = d->done_head;
	d->done_head = NULL;
	pthread_mutex_unlock(&d->done_lock);
	while (list != NULL) {
		msg *m = list;
		list = m->next;
		sconn_smtp *c = m->c;
		if (m->result == 0) {
			char text[96];
			snprintf(text, sizeof(text), "Ok: sealed and stored as %s", m->idhex);
			log_msg(LOG_INFO, "msg=\"smtp: message stored\" peer=%s envelope=%s "
				"recipients=%zu bytes=%zu", c->ip, m->idhex, m->n, m->len);
			for (size_t i = 0; d->notify != NULL && i < m->n; i++)
				d->notify(d->notify_arg, m->rcpts[i].did);
			if (!c->closing) {
				smtp_session_reply(c->s, 250, "2.0.0", text);
				flush(c);
			}
		} else if (!c->closing) {
			smtp_session_reply(c->s, 451, "4.3.0", "Could not store the message, try again later");
			flush(c);
		}
		sodium_memzero(m->body, m->len);
		free(m->body);
		free(m->rcpts);
		free(m);
		d->inflight--;
		conn_unref(c);
	}
}

static void cb_end(void *arg)
{
	sconn_smtp *c = arg;
	smtpd *d = c->d;
	/* Received: (RFC 5321 §4.4), then the message byte for byte. */
	char rcv[1024], date[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	int hn = snprintf(rcv, sizeof(rcv),
			  "Received: from %s ([%s])\r\n\tby %s (AfterSMTP) with ESMTP\r\n"
			  "\tfor <%s>; %s\r\n",
			  c->helo[0] != '\0' ? c->helo : "unknown", c->ip, d->hostname,
			  c->n_rcpts == 1 ? c->rcpts[0].did : "multiple recipients", date);
	if (hn < 0 || (size_t)hn >= sizeof(rcv))
		hn = 0;
	msg *m = calloc(1, sizeof(*m));
	if (m == NULL || (m->body = malloc((size_t)hn + c->data_len + 1)) == NULL)
		abort();
	memcpy(m->body, rcv, (size_t)hn);
	if (c->data_len > 0)
		memcpy(m->body + hn, c->data, c->data_len);
	m->len = (size_t)hn + c->data_len;
	m->c = c;
	m->rcpts = c->rcpts;
	m->n = c->n_rcpts;
	c->rcpts = NULL;
	c->n_rcpts = 0;
	tx_clear(c);
	m->work.data = m;
	c->refs++;
	d->inflight++;
	if (uv_queue_work(d->loop, &m->work, seal_work, seal_after) != 0) {
		m->result = -1;
		pthread_mutex_lock(&d->done_lock);
		m->next = d->done_head;
		d->done_head = m;
		pthread_mutex_unlock(&d->done_lock);
		uv_async_send(&d->done_async);
	}
}

static void cb_abort(void *arg)
{
	tx_clear(arg);
}

static void cb_helo(void *arg, const char *name, bool esmtp)
{
	sconn_smtp *c = arg;
	(void)esmtp;
	snprintf(c->helo, sizeof(c->helo), "%s", name);
}

static void cb_starttls(void *arg)
{
	(void)arg; /* not offered yet */
}

static const smtp_callbacks smtp_cbs = {
	.helo = cb_helo, .mail = cb_mail, .rcpt = cb_rcpt,
	.data_begin = cb_begin, .data_chunk = cb_chunk, .data_end = cb_end,
	.abort = cb_abort, .starttls = cb_starttls,
};

/* ----------------------------------------------------------- connections */

static void maybe_free(smtpd *d);
static void handle_closed(uv_handle_t *h);

static void conn_unref(sconn_smtp *c)
{
	if (--c->refs > 0)
		return;
	smtpd *d = c->d;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	tx_clear(c);
	smtp_session_free(&c->s);
	free(c);
	d->n_conns--;
	maybe_free(d);
}

static void conn_closed_cb(uv_handle_t *h)
{
	conn_unref((sconn_smtp *)h);
}

static void conn_close(sconn_smtp *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->h, conn_closed_cb);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = malloc(65536);
	buf->len = buf->base != NULL ? 65536 : 0;
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	sconn_smtp *c = (sconn_smtp *)st;
	if (nread < 0) {
		free(buf->base);
		conn_close(c);
		return;
	}
	size_t off = 0;
	while (off < (size_t)nread && !c->closing) {
		size_t n = smtp_session_feed(c->s, (const uint8_t *)buf->base + off,
					     (size_t)nread - off);
		off += n;
		flush(c);
		if (n == 0) {
			/* the session's buffer is full while a decision is
			 * pending: drop the connection rather than buffer more */
			conn_close(c);
			break;
		}
	}
	free(buf->base);
}

static void on_connection(uv_stream_t *ls, int status)
{
	smtpd *d = ls->data;
	if (status != 0 || d->stopping)
		return;
	sconn_smtp *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->d = d;
	c->refs = 1;
	uv_tcp_init(d->loop, &c->h);
	c->next = d->conns;
	if (d->conns != NULL)
		d->conns->prev = c;
	d->conns = c;
	d->n_conns++;
	if (uv_accept(ls, (uv_stream_t *)&c->h) != 0) {
		conn_close(c);
		return;
	}
	struct sockaddr_storage peer;
	int pl = sizeof(peer);
	if (uv_tcp_getpeername(&c->h, (struct sockaddr *)&peer, &pl) == 0) {
		if (peer.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr,
				  c->ip, sizeof(c->ip));
		else
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&peer)->sin6_addr,
				  c->ip, sizeof(c->ip));
	}
	smtp_settings set = {
		.hostname = d->hostname, .line_max = 1000, .max_rcpt = SMTPD_RCPT_MAX,
		.soft_errors = 10, .hard_errors = 20,
		.offer = { .size_max = d->size_max, .chunking = true, .smtputf8 = true,
			   .dsn = true, .eightbit = true },
		.starttls = false, .bare_policy = SMTP_DATA_REJECT_BARE,
	};
	if (d->n_conns > d->max_conns ||
	    smtp_session_new(&set, &smtp_cbs, c, &c->s) != 0) {
		static const char busy[] = "421 4.3.2 Too many connections, try later\r\n";
		wreq *wr = malloc(sizeof(*wr) + sizeof(busy) - 1);
		if (wr != NULL) {
			memcpy(wr->data, busy, sizeof(busy) - 1);
			uv_buf_t b = uv_buf_init((char *)wr->data, sizeof(busy) - 1);
			if (uv_write(&wr->w, (uv_stream_t *)&c->h, &b, 1, write_done) != 0)
				free(wr);
		}
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->h, 1);
	smtp_session_greet(c->s);
	flush(c);
	uv_read_start((uv_stream_t *)&c->h, alloc_cb, read_cb);
}

/* ------------------------------------------------------------- lifecycle */

/* After smtpd_stop: once the last connection (and the messages it was
 * storing) is gone, close the completion handle; free when both handles
 * have closed. */
static void maybe_free(smtpd *d)
{
	if (!d->freeing || d->conns != NULL || d->inflight > 0)
		return;
	if (!d->async_closing) {
		d->async_closing = true;
		uv_close((uv_handle_t *)&d->done_async, handle_closed);
		return;
	}
	if (d->handles > 0)
		return;
	for (size_t i = 0; d->domains != NULL && i < d->n_domains; i++)
		free(d->domains[i]);
	free(d->domains);
	pthread_mutex_destroy(&d->done_lock);
	free(d);
}

static void handle_closed(uv_handle_t *h)
{
	smtpd *d = h->data;
	d->handles--;
	maybe_free(d);
}

int smtpd_start(const smtpd_params *p, const cfg *conf, smtpd **d_r,
		const char **error_r)
{
	*d_r = NULL;
	size_t nl = cfg_list_len(conf, "smtp_listen");
	if (nl == 0)
		return 0;
	smtpd *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	d->loop = p->loop;
	d->stp = p->st;
	d->nodep = p->node;
	d->notify = p->notify;
	d->notify_arg = p->notify_arg;
	d->size_max = (uint64_t)cfg_int(conf, "smtp_message_size_limit");
	d->max_conns = (unsigned)cfg_int(conf, "smtp_max_connections");
	const char *hn = cfg_str(conf, "smtp_hostname");
	snprintf(d->hostname, sizeof(d->hostname), "%s",
		 *hn != '\0' ? hn : cfg_list_item(conf, "domains", 0));
	d->n_domains = cfg_list_len(conf, "domains");
	d->domains = calloc(d->n_domains + 1, sizeof(char *));
	for (size_t i = 0; d->domains != NULL && i < d->n_domains; i++)
		d->domains[i] = strdup(cfg_list_item(conf, "domains", i));
	pthread_mutex_init(&d->done_lock, NULL);
	uv_async_init(d->loop, &d->done_async, done_async_cb);
	d->done_async.data = d;
	d->handles = 1;
	/* one address for now (the first); more come with the full driver */
	const char *addr = cfg_list_item(conf, "smtp_listen", 0);
	uint16_t port = (uint16_t)cfg_int(conf, "smtp_port");
	struct sockaddr_storage sa;
	if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&sa) != 0 &&
	    uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&sa) != 0) {
		*error_r = "smtp_listen: not a numeric IP address";
		smtpd_free(&d);
		return -1;
	}
	uv_tcp_init(d->loop, &d->listener);
	d->listener.data = d;
	d->handles++;
	d->listening = true;
	int r = uv_tcp_bind(&d->listener, (struct sockaddr *)&sa, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&d->listener, 511, on_connection);
	if (r != 0) {
		*error_r = uv_strerror(r);
		smtpd_free(&d);
		return -1;
	}
	log_msg(LOG_NOTICE, "msg=\"listening\" transport=smtp addr=%s port=%u",
		addr, smtpd_port(d));
	*d_r = d;
	return 0;
}

uint16_t smtpd_port(const smtpd *d)
{
	struct sockaddr_storage sa;
	int len = sizeof(sa);
	if (uv_tcp_getsockname(&d->listener, (struct sockaddr *)&sa, &len) != 0)
		return 0;
	return sa.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&sa)->sin_port)
				       : ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
}

void smtpd_stop(smtpd *d)
{
	if (d == NULL || d->stopping)
		return;
	d->stopping = true;
	for (sconn_smtp *c = d->conns; c != NULL; c = c->next)
		conn_close(c);
	if (d->listening)
		uv_close((uv_handle_t *)&d->listener, handle_closed);
}

bool smtpd_idle(const smtpd *d)
{
	return d == NULL || d->inflight == 0;
}

void smtpd_free(smtpd **dp)
{
	smtpd *d = *dp;
	if (d == NULL)
		return;
	*dp = NULL;
	smtpd_stop(d);
	d->freeing = true;
	maybe_free(d);
}
